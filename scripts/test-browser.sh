#!/usr/bin/env bash
# Browser tests: the chat UI in real headless Chromium and the AI SDK
# transport with the real `ai` package, both against the real server binary.
#
# Installs what a fresh machine lacks (Debian's chromium, the npm packages
# pinned in tests/browser/package-lock.json), builds the server, type-checks
# web/ and runs the tests. Screenshots land in tests/artifacts/.
#
# Environment: CARGO_TARGET_DIR (where the server is built), COLLOQUY_BIN
# (use this server binary instead of building), CHROMIUM_PATH (browser).
# Extra arguments go to `node --test` (e.g. a single test file).
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '\n==> %s\n' "$*"; }

if [ -z "${CHROMIUM_PATH:-}" ] && ! command -v chromium >/dev/null 2>&1; then
    log "installing chromium (Debian package)"
    if [ "$(id -u)" -ne 0 ]; then
        echo "chromium is missing and this is not root: run 'sudo apt-get install chromium'" >&2
        exit 1
    fi
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
fi
command -v node >/dev/null 2>&1 || { echo "node (20.10 or newer) and npm are required" >&2; exit 1; }

log "npm ci (tests/browser)"
(cd tests/browser && npm ci --no-audit --no-fund --loglevel=error)

if [ -z "${COLLOQUY_BIN:-}" ]; then
    export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-target}"
    log "building the server (cargo build -p colloquy)"
    cargo build -p colloquy
    COLLOQUY_BIN="$(cd "$CARGO_TARGET_DIR" && pwd)/debug/colloquy"
    export COLLOQUY_BIN
fi

log "type-checking web/ (tsc --checkJs)"
(cd tests/browser && npx --no-install tsc -p tsconfig.json)

log "browser and AI SDK tests (node --test)"
cd tests/browser
# The AI SDK test needs a global WebSocket: built in from Node 22, behind a
# flag in Node 20.
node_flags=(--test --test-concurrency=1)
if ! node -e 'process.exit(typeof WebSocket === "function" ? 0 : 1)'; then
    node_flags=(--experimental-websocket "${node_flags[@]}")
fi
if [ "$#" -gt 0 ]; then
    exec node "${node_flags[@]}" "$@"
fi
exec node "${node_flags[@]}" test/*.test.js
