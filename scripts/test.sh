#!/usr/bin/env bash
# Run the whole test suite: unit tests next to the code, the end-to-end tests
# that start the real server on ephemeral ports (including the embedded model,
# fetched by scripts/setup-models.sh), then the browser tests in headless
# Chromium (scripts/test-browser.sh installs what they need).
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/system-deps.sh
source scripts/system-deps.sh
ensure_system_deps || exit 1
scripts/setup-models.sh
cargo test --workspace --all-features "$@"
scripts/test-browser.sh
