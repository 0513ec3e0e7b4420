#!/usr/bin/env bash
# Object storage sink benchmark for issue 11, run by hand (not in CI): MB/s of a topic of ~1 KB
# Avro records written by the S3 sink as JSON, Avro and Parquet files (local directory), next to
# the raw-bytes ceiling (ByteArrayFormat) in the same run. A release build, one `spate serve`
# with its in-process Connect worker. What is measured and why: BENCHMARKS.md, "Object storage
# sink (issue 11)".
#
#   bench/storage.sh
#
# Knobs (environment):
#   SPATE_BENCH_STORAGE_RECORDS=600000   records in the topic
#   SPATE_BENCH_STORAGE_FLUSH=10000      flush.size
#   SPATE_VENV=~/.cache/spate/venv       the venv with confluent-kafka and fastavro
set -euo pipefail

bench_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$bench_dir/.." && pwd)
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/spate/target}
SPATE_VENV=${SPATE_VENV:-$HOME/.cache/spate/venv}

cargo build --release --locked --manifest-path "$repo/Cargo.toml" -p spate-cli >&2
mkdir -p "$bench_dir/results"
out="$bench_dir/results/storage-$(date -u +%Y%m%dT%H%M%SZ).jsonl"
"$SPATE_VENV/bin/python" "$bench_dir/storage.py" --spate "$CARGO_TARGET_DIR/release/spate" \
    --records "${SPATE_BENCH_STORAGE_RECORDS:-600000}" \
    --flush-size "${SPATE_BENCH_STORAGE_FLUSH:-10000}" --out "$out"
echo "results: $out" >&2
