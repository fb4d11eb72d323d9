#!/usr/bin/env bash
# The services the tests talk to for real: PostgreSQL (the store and API
# tests run on it as well as on SQLite) and NATS with JetStream (the cluster
# tests). Sourced by scripts/test.sh and scripts/cluster.sh.
#
#   source scripts/services.sh
#   ensure_postgres   # reachable already, started, or installed and started
#                     # (as root); otherwise says what to do and returns 1
#   ensure_nats       # the same for NATS on 127.0.0.1:4222
#
# COLLOQUY_TEST_POSTGRES_URL names another server to use instead of the
# local one (tests create and drop their own databases on it);
# COLLOQUY_TEST_NATS_URL another NATS server (tests use namespaces of their own).

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

NATS_HOST=127.0.0.1
NATS_PORT=4222

ensure_nats() {
    if [ -n "${COLLOQUY_TEST_NATS_URL:-}" ] || port_open "$NATS_HOST" "$NATS_PORT"; then
        return 0
    fi
    if ! command -v nats-server >/dev/null 2>&1 && [ ! -x /usr/sbin/nats-server ]; then
        if [ "$(id -u)" -ne 0 ]; then
            printf 'The tests need NATS with JetStream on %s:%s, or COLLOQUY_TEST_NATS_URL.\nInstall it with: sudo apt-get install nats-server\n' \
                "$NATS_HOST" "$NATS_PORT" >&2
            return 1
        fi
        printf '==> installing nats-server (Debian package)\n' >&2
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nats-server >/dev/null
    fi
    printf '==> starting NATS with JetStream\n' >&2
    local server
    server=$(command -v nats-server || echo /usr/sbin/nats-server)
    mkdir -p /var/lib/nats-server 2>/dev/null || true
    if [ -w /var/lib/nats-server ] && [ -w /var/log ]; then
        start-stop-daemon --start --oknodo --background --exec "$server" -- \
            -a "$NATS_HOST" -p "$NATS_PORT" -js -sd /var/lib/nats-server -l /var/log/nats-server.log
    else
        # Not root: keep its data under the user's cache.
        local dir="${XDG_CACHE_HOME:-$HOME/.cache}/colloquy/nats"
        mkdir -p "$dir"
        nohup "$server" -a "$NATS_HOST" -p "$NATS_PORT" -js -sd "$dir" -l "$dir/nats-server.log" >/dev/null 2>&1 &
    fi
    wait_for_port "$NATS_HOST" "$NATS_PORT" 30 || {
        echo "NATS did not come up on $NATS_HOST:$NATS_PORT" >&2
        return 1
    }
}
