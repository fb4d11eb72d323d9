#!/usr/bin/env bash
# Run Colloquy with its embedded defaults: the local model and voice engines (fetched on first
# run by scripts/setup-models.sh), SQLite in ./data, the web UI and API on
# http://127.0.0.1:8080. Extra arguments go to `colloquy serve`.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup-models.sh
exec cargo run --release -p colloquy --features local-llm,voice-local -- serve "$@"
