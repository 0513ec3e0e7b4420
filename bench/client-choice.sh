#!/usr/bin/env bash
# The measurement behind the pillars' client (ARCHITECTURE.md, "Why librdkafka for the
# pillars"): the `rdkafka` crate (librdkafka 2.12.1, bundled) against Spate's own
# `spate-client`, producing then consuming the same records through one fresh `spate serve`.
# Prints one line per step; run by hand, not in CI.
#
# Usage: bench/client-choice.sh [COUNT_SMALL] [COUNT_LARGE]
set -euo pipefail

bench_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$bench_dir/.." && pwd)
small=${1:-2000000}
large=${2:-300000}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/spate/target}

cargo build --release --locked --manifest-path "$root/Cargo.toml" -p spate-cli >&2
spate="$CARGO_TARGET_DIR/release/spate"
echo "building the clients (librdkafka from source the first time, ~90 s on 2 cores)" >&2
start=$(date +%s)
CARGO_TARGET_DIR="$bench_dir/build/client-choice" \
    cargo build --release --manifest-path "$bench_dir/client-choice/Cargo.toml" >&2
echo "client build: $(( $(date +%s) - start )) s" >&2
bin="$bench_dir/build/client-choice/release/client-choice"

work=$(mktemp -d)
trap 'kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; rm -rf "$work"' EXIT
"$spate" serve --data-dir "$work/data" --kafka-listen 127.0.0.1:0 --http-listen 127.0.0.1:0 \
    --registry-listen 127.0.0.1:0 --connect-listen off >"$work/serve.log" 2>&1 &
pid=$!
for _ in $(seq 1 600); do
    addr=$(grep -o 'kafka_addr=[0-9.:]*' "$work/serve.log" | head -1 | cut -d= -f2 || true)
    [[ -n $addr ]] && break
    sleep 0.1
done
[[ -n $addr ]] || { cat "$work/serve.log" >&2; exit 1; }
for run in 1 2; do
    "$bin" "$addr" "small$run" "$small" 100
    "$bin" "$addr" "large$run" "$large" 1024
done
