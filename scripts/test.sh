#!/usr/bin/env bash
# Run the whole test suite: unit tests next to the code and the end-to-end
# tests that start the real server on ephemeral ports.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo test --workspace "$@"
