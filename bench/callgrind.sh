#!/usr/bin/env bash
# Instructions the server executes per chat turn, counted by valgrind's
# callgrind: repeatable on a noisy shared machine, where CPU time is not.
#
#   bench/callgrind.sh            # prints instructions per turn and the top inclusive costs
#   TURNS=40 TOP=60 bench/callgrind.sh
#
# The release `colloquy` runs under callgrind against `colloquy-bench
# upstream` (20 tokens per reply). One socket runs WARMUP turns, then, with
# the counters zeroed, TURNS more on a new socket; a second run of
# WARMUP+TURNS turns makes the difference that leaves out the connect and
# the sign-up: (Ir(long) - Ir(short)) / TURNS is the cost of one turn.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
target="${CARGO_TARGET_DIR:-$root/target}"
turns="${TURNS:-20}"
short="${SHORT:-5}"
top="${TOP:-40}"
upstream_port="${UPSTREAM_PORT:-9392}"
server_port="${SERVER_PORT:-9393}"
out="$root/bench/.work/callgrind/$(date -u +%Y%m%dT%H%M%SZ)"
mkdir -p "$out/data"

echo "building (release)" >&2
(cd "$root" && cargo build --release -q -p colloquy -p colloquy-client)
colloquy="$target/release/colloquy"
bench="$target/release/colloquy-bench"

pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
}
trap cleanup EXIT

"$bench" upstream --addr "127.0.0.1:$upstream_port" --tokens 20 >/dev/null &
pids+=($!)

COLLOQUY_ADDR="127.0.0.1:$server_port" COLLOQUY_DATA_DIR="$out/data" COLLOQUY_LOG=warn \
    COLLOQUY_MODEL=openai:bench OPENAI_BASE_URL="http://127.0.0.1:$upstream_port/v1" \
    valgrind --tool=callgrind --callgrind-out-file="$out/callgrind.out" "$colloquy" serve \
    2>"$out/valgrind.log" &
server=$!
pids+=("$server")
url="http://127.0.0.1:$server_port"
for _ in $(seq 1 600); do
    curl -fs -o /dev/null "$url/healthz" && break
    sleep 0.2
done
curl -fs -o /dev/null "$url/healthz" || { echo "the server did not start; see $out/valgrind.log" >&2; exit 1; }

# Zero the counters, run `n` turns on one new socket, dump what they cost.
measure() {
    local n=$1
    callgrind_control -z "$server" >/dev/null
    "$bench" run --server "$url" --sockets 1 --turns "$n" --tokens 20 >"$out/bench-$n.txt"
    callgrind_control -d "turns-$n" "$server" >/dev/null
}
# The dump made with hint turns-N.
dump_of() { grep -l "turns-$1\$" "$out"/callgrind.out.*; }
# Its total of the one event counted, Ir.
instructions() { awk '/^summary:/ {print $2; exit}' "$(dump_of "$1")"; }
measure "$short"
measure "$((short + turns))"
ir_short=$(instructions "$short")
ir_long=$(instructions "$((short + turns))")
per_turn=$(((ir_long - ir_short) / turns))
long_dump=$(dump_of "$((short + turns))")

echo "instructions: $short turns $ir_short, $((short + turns)) turns $ir_long"
echo "instructions per turn (20-token reply): $per_turn"
echo
echo "top inclusive costs over $((short + turns)) turns (and one connect):"
callgrind_annotate --inclusive=yes --threshold=100 "$long_dump" >"$out/inclusive.txt" 2>/dev/null
# awk reads to the end: `head` would stop the pipe early and fail it (pipefail).
awk -v top="$top" '/^ *[0-9,]+ / && n++ < top' "$out/inclusive.txt"
echo "dumps and reports: $out" >&2
