#!/usr/bin/env bash
# Run Colloquy with its embedded defaults: the local model and voice engines (fetched on first
# run by scripts/setup-models.sh), the UI's highlighting and math modules (vendored into
# web/vendor by scripts/vendor-web.sh), SQLite in ./data, the web UI and API on
# http://127.0.0.1:8080. Extra arguments go to `colloquy serve`.
#
# First run on a bare machine: the Debian packages the build needs are
# installed (as root) or named with the command to install them (otherwise),
# before anything is downloaded or built; the release build then takes about
# 25 minutes on 2 cores (llama.cpp, candle and the ONNX bindings).
set -euo pipefail
cd "$(dirname "$0")/.."

# shellcheck source=scripts/system-deps.sh
source scripts/system-deps.sh
ensure_system_deps || exit 1
if ! command -v cargo >/dev/null 2>&1; then
    echo "Colloquy is built with Rust (1.89 or newer): install it from https://rustup.rs, then run this again." >&2
    exit 1
fi

scripts/setup-models.sh
# Before the build: a release binary embeds web/, vendored modules included.
scripts/vendor-web.sh
if [ ! -x "${CARGO_TARGET_DIR:-target}/release/colloquy" ]; then
    echo "==> building the release binary; the first build takes about 25 minutes on 2 cores" >&2
fi
exec cargo run --release -p colloquy --features local-llm,voice-local -- serve "$@"
