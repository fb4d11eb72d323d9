#!/usr/bin/env bash
# sha256_of FILE: the file's SHA-256 in hex. Sourced by the scripts that pin
# downloaded files by checksum (setup-models.sh, vendor-web.sh).

sha256_of() {
    if command -v sha256sum >/dev/null 2>&1; then
        sha256sum "$1" | cut -d' ' -f1
    else
        shasum -a 256 "$1" | cut -d' ' -f1
    fi
}
