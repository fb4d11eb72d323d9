#!/usr/bin/env bash
# The services the tests talk to for real: PostgreSQL (the store and API
# tests run on it as well as on SQLite). Sourced by scripts/test.sh.
#
#   source scripts/services.sh
#   ensure_postgres   # reachable already, started, or installed and started
#                     # (as root); otherwise says what to do and returns 1
#
# COLLOQUY_TEST_POSTGRES_URL names another server to use instead of the
# local one (tests create and drop their own databases on it).

POSTGRES_HOST=127.0.0.1
POSTGRES_PORT=5432

# Is something listening on host $1, port $2?
port_open() {
    (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null
}

# Wait up to $3 seconds for host $1, port $2 to accept connections.
wait_for_port() {
    local waited=0
    until port_open "$1" "$2"; do
        ((waited++ < $3)) || return 1
        sleep 1
    done
}

ensure_postgres() {
    if [ -n "${COLLOQUY_TEST_POSTGRES_URL:-}" ] || port_open "$POSTGRES_HOST" "$POSTGRES_PORT"; then
        return 0
    fi
    if ! command -v pg_ctlcluster >/dev/null 2>&1; then
        if [ "$(id -u)" -ne 0 ]; then
            printf 'The tests need PostgreSQL on %s:%s (trust auth for user postgres), or COLLOQUY_TEST_POSTGRES_URL.\nInstall it with: sudo apt-get install postgresql\n' \
                "$POSTGRES_HOST" "$POSTGRES_PORT" >&2
            return 1
        fi
        printf '==> installing postgresql (Debian package)\n' >&2
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
        # A cluster this script just installed: let the tests' user in over
        # loopback without a password, as on the CI machines.
        local hba
        for hba in /etc/postgresql/*/main/pg_hba.conf; do
            grep -q '^host all postgres 127.0.0.1/32 trust' "$hba" ||
                sed -i '1i host all postgres 127.0.0.1/32 trust' "$hba"
        done
    fi
    printf '==> starting PostgreSQL\n' >&2
    local version
    for version in $(ls /etc/postgresql); do
        pg_ctlcluster --skip-systemctl-redirect "$version" main start || true
    done
    wait_for_port "$POSTGRES_HOST" "$POSTGRES_PORT" 30 || {
        echo "PostgreSQL did not come up on $POSTGRES_HOST:$POSTGRES_PORT" >&2
        return 1
    }
}
