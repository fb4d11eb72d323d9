#!/usr/bin/env bash
# Run the whole test suite: unit tests next to the code, the end-to-end tests
# that start the real server on ephemeral ports (including the embedded model,
# fetched by scripts/setup-models.sh), the multi-node tests on PostgreSQL and
# NATS, the store and API tests again on PostgreSQL (scripts/services.sh
# starts both services if they are down), then the browser tests in headless
# Chromium (scripts/test-browser.sh installs what they need).
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/system-deps.sh
source scripts/system-deps.sh
ensure_system_deps || exit 1
# shellcheck source=scripts/services.sh
source scripts/services.sh
ensure_postgres || exit 1
ensure_nats || exit 1
scripts/setup-models.sh
cargo test --workspace --all-features "$@"
printf '\n==> the store and API tests on PostgreSQL\n'
COLLOQUY_TEST_DATABASE=postgres cargo test -p colloquy --all-features --lib -- store::
# The cluster tests always use PostgreSQL: they ran in the first pass.
COLLOQUY_TEST_DATABASE=postgres cargo test -p colloquy --all-features --test api -- --skip cluster
scripts/test-browser.sh
