#!/usr/bin/env bash
# Spate benchmark for issue 3, run by hand (not in CI): consumer-group join and rebalance times
# (classic protocol and KIP-848) with confluent-kafka, and transactional produce throughput
# against plain idempotent acks=all produce with bench/txn_perf.c. Same conventions as
# bench/run.sh: a release build, one `spate serve` with default settings on a fresh data
# directory, waits for a quiet machine.
#
#   bench/groups.sh
#
# Writes bench/results/groups-<timestamp>.md (raw logs and every client event under
# bench/results/groups-<timestamp>/), prints the tables. What is measured and why:
# BENCHMARKS.md, "Consumer groups and transactions (issue 3)". Knobs (environment):
#   SPATE_BENCH_JOIN_REPS=10          new groups whose first member is timed, per client setting
#   SPATE_BENCH_CHURN_CYCLES=10       leave + join cycles of the 3-member group, per client setting
#   SPATE_BENCH_CHURN_RATE=1200       records/s produced across the 6 partitions meanwhile
#   SPATE_BENCH_FAST_HEARTBEAT_MS=500 extra classic run with this heartbeat.interval.ms (0: none)
#   SPATE_BENCH_TXN_REPS=5            repetitions of each produce mode
#   SPATE_BENCH_TXN_MSGS=1000000      1 KiB records per produce run (~1 GB)
#   SPATE_BENCH_TXN_SIZES="10000 1000"  records per transaction, one mode each
#   SPATE_BENCH_QUIET_WAIT_S=1800     how long, in all, to wait for other load to stop
#   SPATE_BENCH_DATA_DIR=bench/build/data   where the broker's data goes
#   SPATE_BENCH_KEEP_DATA=0           keep the broker's data directory afterwards
#   SPATE_VENV=~/.cache/spate/venv    the venv with confluent-kafka (scripts/test venv makes it)
set -euo pipefail

bench_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$bench_dir/.." && pwd)
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/spate/target}

JOIN_REPS=${SPATE_BENCH_JOIN_REPS:-10}
CHURN_CYCLES=${SPATE_BENCH_CHURN_CYCLES:-10}
CHURN_RATE=${SPATE_BENCH_CHURN_RATE:-1200}
FAST_HB_MS=${SPATE_BENCH_FAST_HEARTBEAT_MS:-500}
TXN_REPS=${SPATE_BENCH_TXN_REPS:-5}
TXN_MSGS=${SPATE_BENCH_TXN_MSGS:-1000000}
read -r -a TXN_SIZES <<<"${SPATE_BENCH_TXN_SIZES:-10000 1000}"
QUIET_WAIT_S=${SPATE_BENCH_QUIET_WAIT_S:-1800}
KEEP_DATA=${SPATE_BENCH_KEEP_DATA:-0}
SPATE_VENV=${SPATE_VENV:-$HOME/.cache/spate/venv}
py=$SPATE_VENV/bin/python

timestamp=$(date -u +%Y%m%dT%H%M%SZ)
out=$bench_dir/results/groups-$timestamp
results_md=$bench_dir/results/groups-$timestamp.md
records=$out/records.jsonl
notes=$out/notes.md
data_dir=${SPATE_BENCH_DATA_DIR:-$bench_dir/build/data}/groups-$timestamp
mkdir -p "$out" "$data_dir"
: >"$notes"
exec > >(tee -a "$out/run.log") 2>&1

log() { printf '[bench %(%H:%M:%S)T] %s\n' -1 "$*"; }
note() { printf -- '- %s\n' "$*" >>"$notes"; log "note: $*"; }
record() { python3 "$bench_dir/report.py" record "$records" "$@"; }
info() { record kind=info "$@"; }

# shellcheck source=bench/lib.sh
source "$bench_dir/lib.sh" # hz, ncpu, wait_quiet
bpid=

cleanup() {
    if [[ -n $bpid ]] && kill -0 "$bpid" 2>/dev/null; then
        kill -TERM "$bpid" 2>/dev/null || true
        wait "$bpid" 2>/dev/null || true
    fi
    if [[ $KEEP_DATA != 1 ]]; then rm -rf "$data_dir"; fi
}
trap cleanup EXIT
trap 'log "failed at line $LINENO: $BASH_COMMAND"' ERR

# --- builds ----------------------------------------------------------------------------------

if [[ ! -x $py ]] || ! "$py" -c 'import confluent_kafka' 2>/dev/null; then
    log "no confluent-kafka in $SPATE_VENV; making the venv with scripts/test venv"
    SPATE_VENV=$SPATE_VENV "$repo/scripts/test" venv
fi
"$bench_dir/build-client.sh" >/dev/null
txn_perf=$bench_dir/build/bin/txn_perf
log "building spate (release) in $CARGO_TARGET_DIR"
(cd "$repo" && cargo build --release -p spate-cli)
spate=$CARGO_TARGET_DIR/release/spate
git_commit=$(git -C "$repo" rev-parse --short HEAD 2>/dev/null || echo unknown)
if [[ -n $(git -C "$repo" status --porcelain --untracked-files=no 2>/dev/null) ]]; then
    git_commit="$git_commit (with uncommitted changes)"
fi

info timestamp="$timestamp" command="bench/groups.sh" git_commit="$git_commit" \
    spate_version="$("$spate" --version)" \
    txn_perf_librdkafka="$(cat "$bench_dir/build/bin/rdkafka_performance.version")" \
    confluent_kafka="$("$py" -c 'import confluent_kafka as c; print(c.version()[0], "with librdkafka", c.libversion()[0])')" \
    cpu_model="$(awk -F': ' '/^model name/{print $2; exit}' /proc/cpuinfo)" \
    cpu_cores="$ncpu" kernel="$(uname -sr)" \
    mem_total="$(awk '/^MemTotal/{printf "%.1f GiB", $2 / 1048576}' /proc/meminfo)" \
    load_at_start="$(cut -d' ' -f1-3 /proc/loadavg)"

# --- broker (as in run.sh) -------------------------------------------------------------------

start_broker() {
    local log_file=$1 i line
    "$spate" serve --data-dir "$data_dir/spate" --kafka-listen 127.0.0.1:0 \
        --http-listen 127.0.0.1:0 --registry-listen 127.0.0.1:0 >"$out/broker.stdout" 2>>"$log_file" &
    bpid=$!
    for ((i = 0; i < 1200; i++)); do
        line=$(sed 's/\x1b\[[0-9;]*m//g' "$log_file" | grep 'spate is ready' | tail -n 1 || true)
        [[ -n $line ]] && break
        kill -0 "$bpid" 2>/dev/null || { log "broker exited before it was ready:"; tail "$log_file"; exit 1; }
        sleep 0.1
    done
    [[ -n $line ]] || { log "broker not ready after 120 s"; tail "$log_file"; exit 1; }
    kafka_addr=$(grep -o 'kafka_addr=[^ ]*' <<<"$line" | cut -d= -f2)
    log "broker pid $bpid ready at $kafka_addr"
}
stop_broker() {
    local t0=$SECONDS rc=0 i
    kill -TERM "$bpid"
    for ((i = 0; i < 600; i++)); do kill -0 "$bpid" 2>/dev/null || break; sleep 0.1; done
    if kill -0 "$bpid" 2>/dev/null; then
        note "broker did not exit within 60 s of SIGTERM; killed"
        kill -KILL "$bpid"
    fi
    wait "$bpid" || rc=$?
    bpid=
    broker_exit="exit code $rc after $((SECONDS - t0)) s"
}
broker_cpu_ticks() { awk '{print $14 + $15}' "/proc/$bpid/stat"; }
create_topic() { # name partitions
    "$spate" topic create --brokers "$kafka_addr" --partitions "$2" "$1" >>"$out/topics.log" 2>&1 ||
        { log "creating topic $1 failed:"; tail "$out/topics.log"; exit 1; }
}

start_broker "$out/broker.log"

# --- consumer groups -------------------------------------------------------------------------

# label and librdkafka settings, as "label|k=v k=v". librdkafka's defaults otherwise (groups.py
# adds auto.offset.reset=earliest so that a new group reads the records already there).
variants=("classic|" "kip848|group.protocol=consumer")
((FAST_HB_MS > 0)) && variants+=("classic, heartbeat.interval.ms=$FAST_HB_MS (not default)|heartbeat.interval.ms=$FAST_HB_MS")

group_scenario() { # scenario label topic conf...
    local scenario=$1 label=$2 topic=$3 rc=0 b0 b1 c0 c1 t0 t1
    shift 3
    local conf_args=()
    for kv in "$@"; do conf_args+=(--conf "$kv"); done
    wait_quiet "$scenario ($label)"
    b0=$(busy_ticks); c0=$(broker_cpu_ticks); t0=$(date +%s%N)
    timeout 900 "$py" "$bench_dir/groups.py" "$scenario" --bootstrap "$kafka_addr" --topic "$topic" \
        --label "$label" --reps "$JOIN_REPS" --cycles "$CHURN_CYCLES" --rate "$CHURN_RATE" \
        "${conf_args[@]}" --out "$out/groups.jsonl" >>"$out/groups.log" 2>&1 || rc=$?
    b1=$(busy_ticks); c1=$(broker_cpu_ticks); t1=$(date +%s%N)
    local wall busy broker_cpu
    wall=$(awk -v a="$t0" -v b="$t1" 'BEGIN {printf "%.1f", (b - a) / 1e9}')
    busy=$(awk -v a="$b0" -v b="$b1" -v hz="$hz" -v w="$wall" 'BEGIN {printf "%.2f", (b - a) / hz / w}')
    broker_cpu=$(awk -v a="$c0" -v b="$c1" -v hz="$hz" 'BEGIN {printf "%.2f", (b - a) / hz}')
    record kind=group_run scenario="$scenario" label="$label" exit_code="$rc" wall_s="$wall" \
        busy_cores="$busy" broker_cpu_s="$broker_cpu" conf="$*"
    log "$scenario ($label): exit $rc in ${wall} s; machine busy ${busy} cores on average (clients included), broker ${broker_cpu} CPU-s"
    ((rc == 0)) || { note "$scenario ($label) failed with exit code $rc; see $out/groups.log"; tail -n 5 "$out/groups.log"; }
}

i=0
for variant in "${variants[@]}"; do
    i=$((i + 1))
    label=${variant%%|*}
    read -r -a conf <<<"${variant#*|}"
    create_topic "join-$i" 6
    create_topic "churn-$i" 6
    log "consumer groups: $label"
    group_scenario join-first "$label" "join-$i" "${conf[@]}"
    group_scenario churn "$label" "churn-$i" "${conf[@]}"
done
grep '^\[groups\]' "$out/groups.log" | tail -n 5 || true

# --- transactional produce -------------------------------------------------------------------

# mode label and txn_perf arguments. The baseline is what a transactional producer does without
# transactions: acks=all with idempotence. Without idempotence for reference (issue 2's runs).
modes=("plain, idempotent|-k 0")
for k in "${TXN_SIZES[@]}"; do modes+=("transactions of $k|-k $k"); done
modes+=("plain, not idempotent|-k 0 -i 0")

DISTURBED_CORES=0.25
txn_run() { # rep mode_label args...
    local rep=$1 label=$2 attempt topic line rc c0 c1 b0 b1 t0 t1 client wall broker_cpu other disturbed
    shift 2
    for attempt in 1 2 3; do
        topic=txn-$rep-$((++txn_topic))
        create_topic "$topic" 1
        wait_quiet "$label, rep $rep"
        rc=0
        c0=$(broker_cpu_ticks); b0=$(busy_ticks); t0=$(date +%s%N)
        /usr/bin/time -f '%U %S' -o "$out/txn-$rep-$txn_topic.time" \
            timeout 900 "$txn_perf" -b "$kafka_addr" -t "$topic" -n "$TXN_MSGS" -s 1024 "$@" \
            >"$out/txn-$rep-$txn_topic.log" 2>&1 || rc=$?
        c1=$(broker_cpu_ticks); b1=$(busy_ticks); t1=$(date +%s%N)
        line=$(grep '^mode=' "$out/txn-$rep-$txn_topic.log" || true)
        client=$(awk 'END {print $1 + $2}' "$out/txn-$rep-$txn_topic.time")
        wall=$(awk -v a="$t0" -v b="$t1" 'BEGIN {printf "%.3f", (b - a) / 1e9}')
        broker_cpu=$(awk -v a="$c0" -v b="$c1" -v hz="$hz" 'BEGIN {printf "%.2f", (b - a) / hz}')
        other=$(awk -v a="$b0" -v b="$b1" -v hz="$hz" -v x="$broker_cpu" -v y="$client" \
            'BEGIN {o = (b - a) / hz - x - y; printf "%.2f", (o < 0 ? 0 : o)}')
        disturbed=$(awk -v o="$other" -v w="$wall" -v c="$DISTURBED_CORES" 'BEGIN {print (w > 0 && o / w > c) ? 1 : 0}')
        # shellcheck disable=SC2086 # the summary line is key=value words
        record kind=txn rep="$rep" attempt="$attempt" mode_label="$label" ok=$((rc == 0 ? 1 : 0)) \
            exit_code="$rc" disturbed="$disturbed" wall_s="$wall" broker_cpu_s="$broker_cpu" \
            client_cpu_s="$client" other_cpu_s="$other" topic="$topic" $line
        log "$label, rep $rep.$attempt: ${line:-no summary} (exit $rc; CPU s broker $broker_cpu client $client other $other)"
        ((rc == 0)) || { note "$label rep $rep failed (exit $rc): $(tail -n 3 "$out/txn-$rep-$txn_topic.log" | tr '\n' ' ')"; }
        ((disturbed == 0)) && return 0
        log "disturbed by other load; again"
    done
    note "$label rep $rep: other load on the machine during all 3 attempts"
}

txn_topic=0
for rep in $(seq "$TXN_REPS"); do
    # Rotate the order so that no mode always runs first (the first writes after memory is
    # freed are cheaper on this VM, see the issue-2 section of BENCHMARKS.md).
    n=${#modes[@]}
    for ((j = 0; j < n; j++)); do
        m=${modes[$(((j + rep - 1) % n))]}
        read -r -a margs <<<"${m#*|}"
        txn_run "$rep" "${m%%|*}" "${margs[@]}"
    done
done

stop_broker
sed 's/\x1b\[[0-9;]*m//g' "$out/broker.log" | grep -E ' (WARN|ERROR) ' | head -n 20 >"$out/broker-warnings.txt" || true
info broker_exit="$broker_exit" broker_log="$out/broker.log" \
    broker_warn_lines="$(sed 's/\x1b\[[0-9;]*m//g' "$out/broker.log" | grep -cE ' (WARN|ERROR) ' || true)" \
    notes="$notes"

cat "$out/groups.jsonl" "$records" >"$out/all.jsonl"
"$py" "$bench_dir/groups.py" render "$out/all.jsonl" "$results_md"
{
    echo
    echo "Run $timestamp, $git_commit; notes:"
    cat "$notes"
} >>"$results_md"
log "results: $results_md"
