#!/usr/bin/env bash
# Run Colloquy with its embedded defaults (SQLite in ./data, web UI and API on
# http://127.0.0.1:8080). Extra arguments go to `colloquy serve`.
set -euo pipefail
cd "$(dirname "$0")/.."
exec cargo run --release -p colloquy -- serve "$@"
