#!/usr/bin/env bash
# Colloquy side by side with the gateways teams write (bench/peers): the same
# `colloquy-bench` load against each, every server pinned to one core and the
# load generator with the fake upstream pinned to the other, then one table.
#
#   bench/compare.sh            # 100 sockets x 5 turns, and a 1,000-turn burst
#   SERVER_CPU=0 LOAD_CPU=1 bench/compare.sh
#   SERVERS="colloquy fastify" bench/compare.sh
#
# Server CPU per turn is the server process's user+system time (all its
# threads, /proc/<pid>/stat) from the release of the turns to the last final
# message, divided by the turns. On a shared machine trust it (and the
# instruction counts of bench/callgrind.sh) over the latencies.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
bench_dir="$root/bench"
work_dir="$bench_dir/.work"
results="$work_dir/results/$(date -u +%Y%m%dT%H%M%SZ)"
target="${CARGO_TARGET_DIR:-$root/target}"
server_cpu="${SERVER_CPU:-0}"
load_cpu="${LOAD_CPU:-1}"
servers="${SERVERS:-colloquy fastapi fastify}"
tokens=20
upstream_port="${UPSTREAM_PORT:-9390}"
peer_port="${PEER_PORT:-9391}"
mkdir -p "$results"
# Every socket is a file descriptor, in the server and in the load generator.
ulimit -n "$(ulimit -Hn)"

echo "building (release)" >&2
(cd "$root" && cargo build --release -q -p colloquy -p colloquy-client)
colloquy="$target/release/colloquy"
bench="$target/release/colloquy-bench"

venv="$work_dir/venv"
requirements="$bench_dir/peers/fastapi/requirements.txt"
if ! cmp -s "$requirements" "$venv/.installed" 2>/dev/null; then
    echo "installing the FastAPI peer's packages" >&2
    python3 -m venv "$venv"
    "$venv/bin/pip" install -q -r "$requirements"
    cp "$requirements" "$venv/.installed"
fi
fastify_dir="$bench_dir/peers/fastify"
if [ ! -f "$fastify_dir/node_modules/.installed" ] \
    || [ "$fastify_dir/package-lock.json" -nt "$fastify_dir/node_modules/.installed" ]; then
    echo "installing the Fastify peer's packages" >&2
    (cd "$fastify_dir" && npm ci --silent && touch node_modules/.installed)
fi

pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
}
trap cleanup EXIT

wait_healthy() {
    local url=$1
    for _ in $(seq 1 100); do
        curl -fs -o /dev/null "$url/healthz" && return 0
        sleep 0.1
    done
    echo "no answer from $url/healthz" >&2
    return 1
}

# The peers' upstream: the same fake the bench starts in-process for Colloquy.
taskset -c "$load_cpu" "$bench" upstream --addr "127.0.0.1:$upstream_port" --tokens "$tokens" >/dev/null &
pids+=($!)
upstream_url="http://127.0.0.1:$upstream_port/v1"

# Start peer $1 on the server core with a fresh database; prints its pid.
start_peer() {
    local name=$1 db="$results/$1.db"
    case "$name" in
        fastapi)
            (cd "$bench_dir/peers/fastapi" && OPENAI_API_KEY=bench OPENAI_BASE_URL="$upstream_url" \
                PEER_DB_PATH="$db" exec taskset -c "$server_cpu" "$venv/bin/uvicorn" app:app \
                --host 127.0.0.1 --port "$peer_port" --log-level warning --no-access-log) >>"$results/$name.log" 2>&1 &
            ;;
        fastify)
            (cd "$fastify_dir" && OPENAI_API_KEY=bench OPENAI_BASE_URL="$upstream_url" \
                PEER_DB_PATH="$db" PORT="$peer_port" exec taskset -c "$server_cpu" node server.js) >>"$results/$name.log" 2>&1 &
            ;;
    esac
    echo $!
}

# Colloquy is started by the bench (with the limits it raises to fit the
# run), through a wrapper that pins it; `exec` keeps the pid the bench reads.
pinned_colloquy="$results/colloquy-pinned"
printf '#!/bin/sh\nexec taskset -c %s %q "$@"\n' "$server_cpu" "$colloquy" >"$pinned_colloquy"
chmod +x "$pinned_colloquy"

# run SERVER LOAD-NAME BENCH-ARGS...: one bench run, its report kept.
run() {
    local server=$1 load=$2
    shift 2
    local out="$results/$server-$load.txt" status=0
    echo "== $server: $load" >&2
    if [ "$server" = colloquy ]; then
        taskset -c "$load_cpu" "$bench" run --colloquy-bin "$pinned_colloquy" --tokens "$tokens" "$@" >"$out" || status=$?
    else
        local pid
        pid=$(start_peer "$server")
        pids+=("$pid")
        wait_healthy "http://127.0.0.1:$peer_port"
        taskset -c "$load_cpu" "$bench" run --server "http://127.0.0.1:$peer_port" --server-pid "$pid" \
            --tokens "$tokens" "$@" >"$out" || status=$?
        # Started in a subshell, so not this shell's child to `wait` for.
        kill "$pid" 2>/dev/null || true
        while kill -0 "$pid" 2>/dev/null; do sleep 0.1; done
    fi
    echo "$status" >"$out.status"
}

loads=(
    "100x5|--sockets 100 --turns 5 --connect-rate 500"
    "burst1000|--sockets 1000 --turns 1 --connect-rate 1000 --turn-concurrency 1000"
)
for server in $servers; do
    for load in "${loads[@]}"; do
        # shellcheck disable=SC2086 # the load's arguments are words
        run "$server" "${load%%|*}" ${load#*|}
    done
done

# One line of a report: the number after `label`, or the two after p50/p99.
field() { grep -m1 -- "$2" "$1" | sed -E "s/.*$2 +//" | awk '{print $1}'; }
pair() { grep -m1 -- "$2" "$1" | sed -E 's/.*p50 ([0-9.]+) ms +p99 ([0-9.]+) ms.*/\1 \/ \2/'; }

verdict=0
table="$results/table.md"
{
    echo "| server | load | turns completed | lost / dup / out of order | server CPU per turn | first delta p50 / p99 | final p50 / p99 | RSS per idle socket |"
    echo "|---|---|---|---|---|---|---|---|"
    for server in $servers; do
        for load in "${loads[@]}"; do
            name=${load%%|*}
            out="$results/$server-$name.txt"
            turns=$(grep -m1 "turns completed" "$out" | sed -E 's/.*completed +([0-9]+ of [0-9]+).*/\1/')
            errors="$(field "$out" lost) / $(field "$out" duplicated) / $(field "$out" 'out of order')"
            echo "| $server | $name | $turns | $errors | $(field "$out" 'server CPU per turn') ms | $(pair "$out" 'time to first delta') ms | $(pair "$out" 'time to final') ms | $(field "$out" 'memory per idle socket') KiB |"
        done
    done
} >"$table"
cat "$table"
# A run with a failed turn or a lost, duplicated or reordered event fails the script.
for status in "$results"/*.status; do
    [ "$(cat "$status")" = 0 ] || verdict=1
done
echo "reports: $results" >&2
exit "$verdict"
