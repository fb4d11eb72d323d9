#!/usr/bin/env bash
# Vendor the browser UI's third-party modules into web/vendor/: highlight.js
# (core and a chosen set of grammars, for code blocks) and KaTeX (math), both
# loaded by the page on demand from this server, never from a CDN.
#
# The versions are pinned in web-vendor/package.json and its lockfile (npm
# checks each tarball's sha512 there); the files copied out of them are
# pinned again, one sha256 each, in web-vendor/checksums.sha256, which is also
# the list of what gets copied: a line `<sha256>  highlight/<path>` takes
# <path> from the package @highlightjs/cdn-assets, `katex/<path>` from katex.
# Any mismatch stops with an error and leaves web/vendor/ as it was.
#
# Idempotent and quick: when web/vendor/ already holds exactly the listed
# files with their checksums, nothing is installed or touched (so release
# builds, which embed web/, are not invalidated).
#
# Usage: scripts/vendor-web.sh            make web/vendor/ match the list
#        scripts/vendor-web.sh --rehash   after changing a version or the
#            list: copy the listed files and rewrite their checksums (review
#            the diff before committing it)
set -euo pipefail
cd "$(dirname "$0")/.."

PACKAGE_DIR=web-vendor
LIST="${PACKAGE_DIR}/checksums.sha256"
DEST=web/vendor

log() { printf '[vendor-web] %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

# shellcheck source=scripts/sha256.sh
source scripts/sha256.sh

# The listed paths, one a line.
listed() { awk 'NF { print $2 }' "$LIST"; }

# Where a listed path comes from inside the installed packages.
source_of() {
    case "$1" in
        highlight/*) echo "${PACKAGE_DIR}/node_modules/@highlightjs/cdn-assets/${1#highlight/}" ;;
        katex/*) echo "${PACKAGE_DIR}/node_modules/katex/${1#katex/}" ;;
        *) die "${LIST} names ${1}, which is from no known package" ;;
    esac
}

# Do the files under DIR match the list exactly (same set, same checksums)?
# matches DIR [--say]   (with --say, names the first difference)
matches() {
    local dir=$1 say=${2:-} sha path got
    [ -d "$dir" ] || return 1
    if [ "$(listed | sort)" != "$(cd "$dir" && find . -type f | sed 's|^\./||' | sort)" ]; then
        [ -z "$say" ] || log "${dir} does not hold exactly the files ${LIST} lists"
        return 1
    fi
    while read -r sha path; do
        [ -n "$path" ] || continue
        got=$(sha256_of "${dir}/${path}")
        if [ "$got" != "$sha" ]; then
            [ -z "$say" ] || log "checksum mismatch for ${path}: expected ${sha}, got ${got}"
            return 1
        fi
    done <"$LIST"
}

# npm ci the pinned packages and copy the listed files into a fresh DIR.
stage() {
    local dir=$1 path src
    command -v npm >/dev/null 2>&1 || die "npm is not installed; install it (Debian: apt-get install npm)"
    log "npm ci (${PACKAGE_DIR}: versions and sha512 pinned by its lockfile)"
    # No install scripts: only files are taken from these packages.
    (cd "$PACKAGE_DIR" && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error >&2)
    rm -rf "$dir"
    while read -r path; do
        src=$(source_of "$path")
        [ -f "$src" ] || die "${src} is missing from the installed package"
        mkdir -p "${dir}/$(dirname "$path")"
        cp "$src" "${dir}/${path}"
    done < <(listed)
}

main() {
    local staging="${DEST}.staging"
    if [ "${1:-}" = "--rehash" ]; then
        stage "$staging"
        listed | while read -r path; do
            printf '%s  %s\n' "$(sha256_of "${staging}/${path}")" "$path"
        done >"${LIST}.new"
        mv -f "${LIST}.new" "$LIST"
        log "rewrote ${LIST}; review it with git diff"
    elif matches "$DEST"; then
        log "${DEST} is present and verified"
        return 0
    else
        stage "$staging"
    fi
    if ! matches "$staging" --say; then
        rm -rf "$staging"
        die "the pinned packages do not match ${LIST}; ${DEST} left as it was"
    fi
    rm -rf "$DEST"
    mv "$staging" "$DEST"
    log "${DEST} is ready ($(listed | wc -l | tr -d ' ') files verified)"
}

main "$@"
