#!/usr/bin/env bash
# Iceberg sink commit latency for issue 11, run by hand (not in CI): p50/p99 of the sink's
# commits (data file, manifest, manifest list, metadata, the JDBC catalog's compare-and-set)
# while records arrive at a steady rate. A release build, one `spate serve` with its in-process
# Connect worker, one private PostgreSQL 15 cluster as the catalog, a local warehouse. What is
# measured and why: BENCHMARKS.md, "Iceberg sink (issue 11)".
#
#   bench/iceberg.sh
#
# Knobs (environment):
#   SPATE_BENCH_ICEBERG_RATE=5000        records/s
#   SPATE_BENCH_ICEBERG_SECONDS=60       seconds of producing
#   SPATE_BENCH_ICEBERG_INTERVAL=1000    iceberg.control.commit.interval-ms
#   SPATE_VENV=~/.cache/spate/venv       the venv with confluent-kafka and psycopg
set -euo pipefail

bench_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$bench_dir/.." && pwd)
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/spate/target}
SPATE_VENV=${SPATE_VENV:-$HOME/.cache/spate/venv}

cargo build --release --locked --manifest-path "$repo/Cargo.toml" -p spate-cli >&2
mkdir -p "$bench_dir/results"
out="$bench_dir/results/iceberg-$(date -u +%Y%m%dT%H%M%SZ).jsonl"
"$SPATE_VENV/bin/python" "$bench_dir/iceberg.py" --spate "$CARGO_TARGET_DIR/release/spate" \
    --rate "${SPATE_BENCH_ICEBERG_RATE:-5000}" --seconds "${SPATE_BENCH_ICEBERG_SECONDS:-60}" \
    --interval-ms "${SPATE_BENCH_ICEBERG_INTERVAL:-1000}" --out "$out"
echo "results: $out" >&2
