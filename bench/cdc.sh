#!/usr/bin/env bash
# PostgreSQL change data capture benchmark for issue 11, run by hand (not in CI): CDC row
# changes/s from a bulk load (next to pg_recvlogical decoding the same changes, in the same run)
# and from pgbench, and PostgreSQL-commit -> consumer latency at a steady rate. A release build,
# one `spate serve` with its in-process Connect worker, one private PostgreSQL 15 cluster (fsync
# on). What is measured and why: BENCHMARKS.md, "PostgreSQL change data capture (issue 11)".
#
#   bench/cdc.sh
#
# Knobs (environment):
#   SPATE_BENCH_CDC_ROWS=500000        rows of the bulk load (one transaction)
#   SPATE_BENCH_CDC_PGBENCH_S=20       seconds of pgbench (4 clients)
#   SPATE_BENCH_CDC_RATE=1000          rows/s of the latency run, one row per transaction
#   SPATE_BENCH_CDC_SECONDS=30         seconds of the latency run
#   SPATE_VENV=~/.cache/spate/venv     the venv with confluent-kafka and psycopg (scripts/test venv)
set -euo pipefail

bench_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$bench_dir/.." && pwd)
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/spate/target}
SPATE_VENV=${SPATE_VENV:-$HOME/.cache/spate/venv}

cargo build --release --locked --manifest-path "$repo/Cargo.toml" -p spate-cli >&2
mkdir -p "$bench_dir/results"
out="$bench_dir/results/cdc-$(date -u +%Y%m%dT%H%M%SZ).jsonl"
"$SPATE_VENV/bin/python" "$bench_dir/cdc.py" --spate "$CARGO_TARGET_DIR/release/spate" \
    --rows "${SPATE_BENCH_CDC_ROWS:-500000}" \
    --pgbench-seconds "${SPATE_BENCH_CDC_PGBENCH_S:-20}" \
    --rate "${SPATE_BENCH_CDC_RATE:-1000}" --seconds "${SPATE_BENCH_CDC_SECONDS:-30}" \
    --out "$out"
echo "results: $out" >&2
