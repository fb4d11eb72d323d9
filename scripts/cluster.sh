#!/usr/bin/env bash
# Run a local cluster of N Colloquy nodes (default 3) on ports 8081.. against
# the local PostgreSQL (database `colloquy_cluster`, created if missing) and
# NATS with JetStream, both on 127.0.0.1 and started if they are down. Every
# node serves the UI, the API and the sockets; put any load balancer in front
# (no sticky sessions needed) or use the nodes directly. Ctrl-C stops them all
# (SIGTERM: each finishes its replies, then closes its sockets with 1012).
#
#   scripts/cluster.sh [N]
#
# The nodes share one token secret (data/cluster/jwt_secret) so a token from
# one is good on all. Set COLLOQUY_MODEL / OPENAI_* as for scripts/serve.sh.
# COLLOQUY_BUILD_PROFILE=dev uses a debug build (quicker to build, slower to run).
set -euo pipefail
cd "$(dirname "$0")/.."

nodes="${1:-3}"
if ! [[ "$nodes" =~ ^[1-9]$ ]]; then
    echo "usage: scripts/cluster.sh [number of nodes, 1 to 9]" >&2
    exit 2
fi

# shellcheck source=scripts/system-deps.sh
source scripts/system-deps.sh
ensure_system_deps || exit 1
# shellcheck source=scripts/services.sh
source scripts/services.sh
ensure_postgres || exit 1
ensure_nats || exit 1

postgres_server="${COLLOQUY_CLUSTER_POSTGRES:-postgres://postgres@127.0.0.1:5432}"
database="colloquy_cluster"
if ! psql "$postgres_server/postgres" -Atc "SELECT 1 FROM pg_database WHERE datname = '$database'" | grep -q 1; then
    echo "==> creating database $database" >&2
    psql "$postgres_server/postgres" -qc "CREATE DATABASE $database"
fi

scripts/setup-models.sh
scripts/vendor-web.sh
profile="${COLLOQUY_BUILD_PROFILE:-release}"
profile_dir=$([ "$profile" = dev ] && echo debug || echo "$profile")
binary="${CARGO_TARGET_DIR:-target}/$profile_dir/colloquy"
if [ ! -x "$binary" ]; then
    echo "==> building the $profile binary; a first release build takes about 25 minutes on 2 cores" >&2
fi
cargo build --profile "$profile" -p colloquy --features local-llm,voice-local

mkdir -p data/cluster
secret_file=data/cluster/jwt_secret
if [ ! -s "$secret_file" ]; then
    head -c 48 /dev/urandom | base64 | tr -d '\n/+=' >"$secret_file"
    chmod 600 "$secret_file"
fi

pids=()
stop_all() {
    trap - INT TERM EXIT
    for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    wait
}
trap 'stop_all; exit 0' INT TERM
trap stop_all EXIT

for ((i = 1; i <= nodes; i++)); do
    port=$((8080 + i))
    mkdir -p "data/cluster/node$i"
    # Every node reads the shared models from ./data/models.
    DATABASE_URL="$postgres_server/$database" \
        COLLOQUY_NATS_URL="${COLLOQUY_NATS_URL:-nats://127.0.0.1:4222}" \
        COLLOQUY_JWT_SECRET="$(cat "$secret_file")" \
        COLLOQUY_LOCAL__MODEL_PATH="data/models/SmolLM2-135M-Instruct.Q4_1.gguf" \
        COLLOQUY_AUDIO__MODELS_DIR="data/models" \
        "$binary" serve --addr "127.0.0.1:$port" --data-dir "data/cluster/node$i" &
    pids+=("$!")
    echo "==> node $i on http://127.0.0.1:$port/" >&2
done
wait -n "${pids[@]}" || true
echo "a node stopped; stopping the others" >&2
