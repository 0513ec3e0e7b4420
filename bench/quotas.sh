#!/usr/bin/env bash
# What client quotas cost on the produce path, run by hand (not in CI): produce throughput of
# librdkafka's `rdkafka_performance` against a release `spate serve` with
#   none       no quota configured at all (the hot path is one atomic load per request),
#   other      a quota on another client id (every request resolves the client's quota, cached
#              per connection),
#   measured   a producer_byte_rate quota on the benchmark's own client id, far above what it
#              sends (every request is recorded in its rate and checked, never throttled),
# in rounds, each in a different order, so background load and warm-up hit all three alike.
#
#   bench/quotas.sh
#
# Knobs (environment): SPATE_BENCH_QUOTA_MSGS=500000 1 KiB records per run;
# SPATE_BENCH_QUOTA_ROUNDS=3; RDKAFKA_PERFORMANCE=path (else bench/build-client.sh builds it).
# Prints one line per run and the median of each mode.
set -euo pipefail

bench_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$bench_dir/.." && pwd)
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/spate/target}
MSGS=${SPATE_BENCH_QUOTA_MSGS:-500000}
ROUNDS=${SPATE_BENCH_QUOTA_ROUNDS:-3}
rp=${RDKAFKA_PERFORMANCE:-$("$bench_dir/build-client.sh" | tail -n 1)}
spate=${SPATE_BIN:-}
if [[ -z $spate ]]; then
    (cd "$repo" && cargo build --release -p spate-cli)
    spate=$CARGO_TARGET_DIR/release/spate
fi

work=$(mktemp -d)
bpid=
cleanup() {
    [[ -n $bpid ]] && kill "$bpid" 2>/dev/null && wait "$bpid" 2>/dev/null
    rm -rf "$work"
}
trap cleanup EXIT

port=$((20000 + RANDOM % 20000))
"$spate" serve --data-dir "$work/data" --kafka-listen "127.0.0.1:$port" \
    --http-listen 127.0.0.1:0 --registry-listen 127.0.0.1:0 --log warn >"$work/broker.log" 2>&1 &
bpid=$!
broker=127.0.0.1:$port
for _ in $(seq 100); do
    "$spate" topic list --brokers "$broker" >/dev/null 2>&1 && break
    sleep 0.1
done

quota() { "$spate" quota --brokers "$broker" "$@"; }
set_mode() {
    case $1 in
    none)
        quota remove --client-id elsewhere producer_byte_rate
        quota remove --client-id bench producer_byte_rate
        ;;
    other)
        quota remove --client-id bench producer_byte_rate
        quota set --client-id elsewhere producer_byte_rate=1048576
        ;;
    measured)
        quota remove --client-id elsewhere producer_byte_rate
        quota set --client-id bench producer_byte_rate=100000000000
        ;;
    esac
}

declare -A results
modes=(none other measured)
for round in $(seq "$ROUNDS"); do
    for i in 0 1 2; do
        mode=${modes[$(((round + i) % 3))]}
        set_mode "$mode"
        topic=quota-bench-$round-$mode
        "$rp" -P -t "$topic" -b "$broker" -s 1024 -c "$MSGS" -a -1 \
            -X client.id=bench -X linger.ms=5 -X batch.size=1000000 \
            -X queue.buffering.max.messages=2000000 -X queue.buffering.max.kbytes=2097151 \
            >"$work/$topic.log" 2>&1 || true
        read -r msgs bytes ms delivered failed < <(python3 "$bench_dir/report.py" parse-produce "$work/$topic.log")
        mb_s=$(awk -v b="$bytes" -v ms="$ms" 'BEGIN {printf "%.1f", (ms > 0 ? b / ms / 1000 : 0)}')
        echo "round $round $mode: $delivered of $MSGS delivered ($failed failed) in $ms ms: $mb_s MB/s"
        results[$mode]+="$mb_s "
    done
done
for mode in none other measured; do
    # shellcheck disable=SC2086
    median=$(printf '%s\n' ${results[$mode]} | sort -n | awk '{a[NR] = $1} END {print a[int((NR + 1) / 2)]}')
    echo "median $mode: $median MB/s (runs: ${results[$mode]})"
done
echo "load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
