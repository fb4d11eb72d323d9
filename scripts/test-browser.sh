#!/usr/bin/env bash
# Browser tests: the chat UI in real headless Chromium and the AI SDK
# transport with the real `ai` package, both against the real server binary.
# The voice tests talk to the page through Chromium's fake microphone (a
# sentence spoken by espeak-ng) and need the real local voice engines: the
# server is built with `--features voice-local` and the models fetched by
# `scripts/setup-models.sh` (in data/models, or COLLOQUY_AUDIO__MODELS_DIR).
#
# Installs what a fresh machine lacks (Debian's chromium and espeak-ng, the
# npm packages pinned in tests/browser/package-lock.json, the UI's vendored
# modules in web/vendor: scripts/vendor-web.sh, the OpenAI Python SDK pinned
# in tests/sdk/requirements.txt), builds the server,
# type-checks web/ and runs the tests. Screenshots land in tests/artifacts/.
#
# Environment: CARGO_TARGET_DIR (where the server is built), COLLOQUY_BIN
# (use this server binary instead of building), CHROMIUM_PATH (browser).
# Extra arguments go to `node --test` (e.g. a single test file).
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '\n==> %s\n' "$*"; }

missing=()
if [ -z "${CHROMIUM_PATH:-}" ] && ! command -v chromium >/dev/null 2>&1; then
    missing+=(chromium)
fi
# The voice tests' fake microphone says a sentence spoken by espeak-ng.
command -v espeak-ng >/dev/null 2>&1 || missing+=(espeak-ng)
if ((${#missing[@]})); then
    log "installing ${missing[*]} (Debian packages)"
    if [ "$(id -u)" -ne 0 ]; then
        echo "${missing[*]} missing and this is not root: run 'sudo apt-get install ${missing[*]}'" >&2
        exit 1
    fi
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi
command -v node >/dev/null 2>&1 || { echo "node (20.10 or newer) and npm are required" >&2; exit 1; }

# The official OpenAI Python SDK for the SDK test, pinned in
# tests/sdk/requirements.txt; installed again only when that file changes.
sdk_dir=tests/sdk/.packages
if ! cmp -s tests/sdk/requirements.txt "$sdk_dir/.requirements" 2>/dev/null; then
    log "pip install (tests/sdk/requirements.txt)"
    rm -rf "$sdk_dir"
    "${PYTHON:-python3}" -m pip install --quiet --disable-pip-version-check --no-warn-conflicts --root-user-action=ignore --target "$sdk_dir" -r tests/sdk/requirements.txt
    cp tests/sdk/requirements.txt "$sdk_dir/.requirements"
fi

log "npm ci (tests/browser)"
(cd tests/browser && npm ci --no-audit --no-fund --loglevel=error)

log "vendoring the UI's highlighting and math modules (scripts/vendor-web.sh)"
scripts/vendor-web.sh

if [ -z "${COLLOQUY_BIN:-}" ]; then
    export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-target}"
    log "building the server (cargo build -p colloquy --features voice-local)"
    cargo build -p colloquy --features voice-local
    COLLOQUY_BIN="$(cd "$CARGO_TARGET_DIR" && pwd)/debug/colloquy"
    export COLLOQUY_BIN
fi

log "type-checking web/ (tsc --checkJs)"
(cd tests/browser && npx --no-install tsc -p tsconfig.json)

log "browser and AI SDK tests (node --test)"
cd tests/browser
# The AI SDK test needs a global WebSocket: built in from Node 22, behind a
# flag in Node 20.
# A test that hangs fails after 5 minutes instead of stalling the run.
node_flags=(--test --test-concurrency=1 --test-timeout=300000)
if ! node -e 'process.exit(typeof WebSocket === "function" ? 0 : 1)'; then
    node_flags=(--experimental-websocket "${node_flags[@]}")
fi
if [ "$#" -gt 0 ]; then
    exec node "${node_flags[@]}" "$@"
fi
exec node "${node_flags[@]}" test/*.test.js
