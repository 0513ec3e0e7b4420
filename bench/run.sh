#!/usr/bin/env bash
# Spate benchmark, run by hand (not in CI): throughput, latency, CPU and memory of a real
# `spate serve` driven by librdkafka's own `rdkafka_performance` example, plus the machine's own
# limits (fsync'd write bandwidth, loopback TCP) measured in the same run.
#
#   bench/run.sh
#
# Writes bench/results/<timestamp>.md (and raw logs under bench/results/<timestamp>/), prints a
# summary table. What is measured and why: BENCHMARKS.md. Knobs (environment):
#   SPATE_BENCH_REPS=3               repetitions of each throughput run (the median is reported)
#   SPATE_BENCH_1K_MSGS=2000000      1 KiB records per produce run (~2 GB)
#   SPATE_BENCH_100B_MSGS=10000000   100 B records per produce run (1 GB)
#   SPATE_BENCH_LAT_MSGS=30000       messages in the latency run (at SPATE_BENCH_LAT_RATE/s)
#   SPATE_BENCH_LAT_RATE=1000        producer rate for the latency run, msgs/s
#   SPATE_BENCH_LAT_SKIP=1000        first messages of a latency run left out as warm-up
#   SPATE_BENCH_FETCH_BYTES=4194304  consumer fetch size for the throughput runs
#   SPATE_BENCH_RSS_BYTES=3000000000 bytes stored across 100 partitions for the memory run
#   SPATE_BENCH_PERF=auto            one extra perf-profiled run per workload (auto|0|1)
#   SPATE_BENCH_QUIET_WAIT_S=1800    how long, in all, to wait for other load (builds, tests) to stop
#   SPATE_BENCH_DATA_DIR=bench/build/data   where the broker's data and dd's file go
#   SPATE_BENCH_KEEP_DATA=0          keep the broker's data directory afterwards
#   SPATE_BENCH_CLIENT_TIMEOUT_S=900 a client run taking longer is killed and reported as a stall
#   SPATE_BENCH_BIN=                 measure this spate binary instead of building one (side-by-side
#                                    runs of two commits); SPATE_BENCH_COMMIT names its commit
#                                    when its --version does not
set -euo pipefail

bench_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$bench_dir/.." && pwd)
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/spate/target}
export DEBIAN_FRONTEND=noninteractive

REPS=${SPATE_BENCH_REPS:-3}
MSGS_1K=${SPATE_BENCH_1K_MSGS:-2000000}
MSGS_100B=${SPATE_BENCH_100B_MSGS:-10000000}
LAT_MSGS=${SPATE_BENCH_LAT_MSGS:-30000}
LAT_RATE=${SPATE_BENCH_LAT_RATE:-1000}
LAT_SKIP=${SPATE_BENCH_LAT_SKIP:-1000}
RSS_BYTES=${SPATE_BENCH_RSS_BYTES:-3000000000}
RSS_PARTITIONS=100
PERF=${SPATE_BENCH_PERF:-auto}
QUIET_WAIT_S=${SPATE_BENCH_QUIET_WAIT_S:-1800}
CLIENT_TIMEOUT_S=${SPATE_BENCH_CLIENT_TIMEOUT_S:-900}
KEEP_DATA=${SPATE_BENCH_KEEP_DATA:-0}

# Client settings. Tuning the client is fair; every setting is written to the results file.
# Producer: acks=all; rdkafka_performance's own default linger.ms=1000 replaced by 5 ms;
# batch.size at librdkafka's 1,000,000-byte maximum request size; a deep local queue so that
# produce() never blocks on the 100,000-message default.
PRODUCE_ARGS=(-a -1 -X linger.ms=5 -X batch.size=1000000
    -X queue.buffering.max.messages=2000000 -X queue.buffering.max.kbytes=2097151)
# Consumer: rdkafka_performance's simple consumer (no group), from offset 0, with larger fetches.
FETCH_BYTES=${SPATE_BENCH_FETCH_BYTES:-4194304}
CONSUME_ARGS=(-o beginning -e -X fetch.max.bytes=$FETCH_BYTES
    -X max.partition.fetch.bytes=$FETCH_BYTES -X receive.message.max.bytes=$((FETCH_BYTES + 1048576)))
# Latency: one message at a time (linger.ms=0), acks=all. The consumer keeps librdkafka's
# defaults (fetch.wait.max.ms=500, fetch.min.bytes=1); rdkafka_performance raises
# queued.min.messages to 1,000,000, which is set back to librdkafka's default of 100,000.
LAT_PRODUCE_ARGS=(-a -1 -s 100 -r "$LAT_RATE" -X linger.ms=0)
LAT_CONSUME_ARGS=(-o end -X queued.min.messages=100000)

timestamp=$(date -u +%Y%m%dT%H%M%SZ)
out=$bench_dir/results/$timestamp
results_md=$bench_dir/results/$timestamp.md
records=$out/records.jsonl
notes=$out/notes.md
data_dir=${SPATE_BENCH_DATA_DIR:-$bench_dir/build/data}/$timestamp
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
iperf_pid=

cleanup() {
    [[ -n $iperf_pid ]] && kill "$iperf_pid" 2>/dev/null || true
    if [[ -n $bpid ]] && kill -0 "$bpid" 2>/dev/null; then
        kill -TERM "$bpid" 2>/dev/null || true
        wait "$bpid" 2>/dev/null || true
    fi
    if [[ $KEEP_DATA != 1 ]]; then rm -rf "$data_dir"; fi
}
trap cleanup EXIT
trap 'log "failed at line $LINENO: $BASH_COMMAND"' ERR

# --- tools -----------------------------------------------------------------------------------

pkgs=()
command -v python3 >/dev/null || pkgs+=(python3)
command -v iperf3 >/dev/null || pkgs+=(iperf3)
[[ -x /usr/bin/time ]] || pkgs+=(time)
if ((${#pkgs[@]})); then
    log "installing ${pkgs[*]} with apt-get"
    apt-get install -y --no-install-recommends "${pkgs[@]}" ||
        { apt-get update && apt-get install -y --no-install-recommends "${pkgs[@]}"; }
fi
if [[ $PERF == auto ]]; then
    if command -v perf >/dev/null && perf record -a -o /dev/null -- true >/dev/null 2>&1; then
        PERF=1
    else
        PERF=0
        note "perf is not usable here; no profiles"
    fi
fi

# --- builds ----------------------------------------------------------------------------------

rp=$("$bench_dir/build-client.sh" | tail -n 1)
log "client: $rp"
if [[ -n ${SPATE_BENCH_BIN:-} ]]; then
    # A side-by-side comparison runs the same script on two builds (say, before and after a
    # change): the binary says which commit it is.
    spate=$SPATE_BENCH_BIN
    git_commit=${SPATE_BENCH_COMMIT:-$("$spate" --version | sed -n 's/.*(commit \([^)]*\)).*/\1/p')}
    log "measuring $spate (commit $git_commit)"
else
    log "building spate (release) in $CARGO_TARGET_DIR"
    (cd "$repo" && cargo build --release -p spate-cli)
    spate=$CARGO_TARGET_DIR/release/spate
    git_commit=$(git -C "$repo" rev-parse --short HEAD 2>/dev/null || echo unknown)
    if [[ -n $(git -C "$repo" status --porcelain --untracked-files=no 2>/dev/null) ]]; then
        git_commit="$git_commit (with uncommitted changes)"
    fi
fi

# --- machine ---------------------------------------------------------------------------------

df_line=$(df -hT "$data_dir" | awk 'NR == 2 {print $1 " " $2 ", " $3 " total, " $5 " free"}')
info timestamp="$timestamp" command="bench/run.sh" git_commit="$git_commit" \
    spate_version="$("$spate" --version)" \
    librdkafka_version="$(cat "$bench_dir/build/bin/rdkafka_performance.version")" \
    cpu_model="$(awk -F': ' '/^model name/{print $2; exit}' /proc/cpuinfo)" \
    cpu_cores="$ncpu" kernel="$(uname -sr)" \
    mem_total="$(awk '/^MemTotal/{printf "%.1f GiB", $2 / 1048576}' /proc/meminfo)" \
    disk="$df_line" load_at_start="$(cut -d' ' -f1-3 /proc/loadavg)" \
    produce_args="${PRODUCE_ARGS[*]}" consume_args="${CONSUME_ARGS[*]}" \
    lat_produce_args="-l ${LAT_PRODUCE_ARGS[*]}" lat_consume_args="-l ${LAT_CONSUME_ARGS[*]}"

# --- machine limits --------------------------------------------------------------------------

wait_quiet "the machine limits"
# On this VM, writing into pages the kernel has just freed is about twice as cheap as writing
# into new ones (see BENCHMARKS.md). So that dd and the broker's produce runs both measure the
# steady state, the probes that free memory run first, and dd's three files are kept until the
# produce runs are over: neither dd's later runs nor the broker can recycle the page cache.
dd_mb_s() { awk '/copied/{for (i = 1; i <= NF; i++) if ($i ~ /^[GM]B\/s$/) print ($i == "GB/s" ? $(i-1) * 1000 : $(i-1))}'; }
dd_dsync=$(LC_ALL=C dd if=/dev/zero of="$data_dir/dd.tmp" bs=1M count=1024 oflag=dsync 2>&1 | dd_mb_s)
rm -f "$data_dir/dd.tmp"
touch_s=$(python3 "$bench_dir/report.py" touch-probe)
read -r f50 f99 f999 fmax fover < <(python3 "$bench_dir/report.py" fsync-probe "$data_dir" 20000 1000)
fsync_ms="$f50/$f99/$f999/$fmax"
dd_runs=()
for i in 1 2 3; do
    mbs=$(LC_ALL=C dd if=/dev/zero of="$data_dir/dd.$i.tmp" bs=1M count=2048 conv=fdatasync 2>&1 | dd_mb_s)
    dd_runs+=("$mbs")
    log "dd conv=fdatasync run $i: $mbs MB/s"
done
dd_median=$(printf '%s\n' "${dd_runs[@]}" | sort -n | sed -n 2p)
log "dd median $dd_median MB/s; dd oflag=dsync $dd_dsync MB/s; 100 B fdatasync at 1000/s p50/p99/p99.9/max $fsync_ms ms ($fover over 5 ms); first touch of 1 GiB $touch_s s"

loopback=
for port in 5201 15201 25201 35201; do
    iperf3 -s -1 -p "$port" >"$out/iperf3-server.log" 2>&1 &
    iperf_pid=$!
    sleep 1
    if kill -0 "$iperf_pid" 2>/dev/null &&
        iperf3 -c 127.0.0.1 -p "$port" -t 5 -J >"$out/iperf3.json" 2>/dev/null; then
        loopback=$(python3 -c 'import json, sys
print(round(json.load(open(sys.argv[1]))["end"]["sum_received"]["bits_per_second"] / 8e6))' "$out/iperf3.json")
        wait "$iperf_pid" 2>/dev/null || true
        iperf_pid=
        break
    fi
    kill "$iperf_pid" 2>/dev/null || true
    wait "$iperf_pid" 2>/dev/null || true
    iperf_pid=
done
log "loopback TCP (iperf3, 1 stream): ${loopback:-?} MB/s"
info dd_runs="${dd_runs[*]}" dd_fdatasync_mb_s="$dd_median" dd_dsync_1m_mb_s="$dd_dsync" \
    fsync_100b_ms="$fsync_ms" fsync_100b_over_5ms="$fover" fsync_probe_count=20000 \
    fsync_probe_rate=1000 touch_1g_s="$touch_s" loopback_mb_s="${loopback:-nan}"

# --- broker ----------------------------------------------------------------------------------

start_broker() {
    local log_file=$1 i line
    "$spate" serve --data-dir "$data_dir/spate" --kafka-listen 127.0.0.1:0 \
        --http-listen 127.0.0.1:0 --registry-listen 127.0.0.1:0 >"$out/broker.stdout" 2>>"$log_file" &
    bpid=$!
    broker_t0=$(date +%s%N)
    for ((i = 0; i < 1200; i++)); do
        line=$(sed 's/\x1b\[[0-9;]*m//g' "$log_file" | grep 'spate is ready' | tail -n 1 || true)
        [[ -n $line ]] && break
        kill -0 "$bpid" 2>/dev/null || { log "broker exited before it was ready:"; tail "$log_file"; exit 1; }
        sleep 0.1
    done
    [[ -n $line ]] || { log "broker not ready after 120 s"; tail "$log_file"; exit 1; }
    kafka_addr=$(grep -o 'kafka_addr=[^ ]*' <<<"$line" | cut -d= -f2)
    broker_ready_ms=$((($(date +%s%N) - broker_t0) / 1000000))
    log "broker pid $bpid ready at $kafka_addr"
}
stop_broker() { # sets broker_exit: how the broker exited on SIGTERM
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
broker_sys_ticks() { awk '{print $15}' "/proc/$bpid/stat"; }
ticks_s() { awk -v a="$1" -v b="$2" -v hz="$hz" 'BEGIN {printf "%.2f", (b - a) / hz}'; }
status_mb() { awk -v k="$1:" '$1 == k {printf "%.1f", $2 / 1024}' "/proc/$bpid/status"; }
reset_peak_rss() { echo 5 >"/proc/$bpid/clear_refs" 2>/dev/null || note "cannot reset VmHWM; peaks include earlier phases"; }
create_topic() { # name partitions
    "$spate" topic create --brokers "$kafka_addr" --partitions "$2" "$1" >>"$out/topics.log" 2>&1 ||
        { log "creating topic $1 failed:"; tail "$out/topics.log"; exit 1; }
}

# --- runs ------------------------------------------------------------------------------------

# run_client PHASE REP KIND(produce|consume) EXPECTED_MSGS ARGS...: one measured client run.
# Sets `disturbed` when other processes used more than DISTURBED_CORES on average meanwhile
# (kernel threads working for the broker, such as ksoftirqd or jbd2, count as other too).
DISTURBED_CORES=0.25
attempt=1
run_client() {
    local phase=$1 rep=$2 kind=$3 expected=$4
    shift 4
    local name=$phase-$rep.$attempt rc=0 c0 c1 s0 s1 b0 b1 t0 t1
    c0=$(broker_cpu_ticks); s0=$(broker_sys_ticks); b0=$(busy_ticks); t0=$(date +%s%N)
    /usr/bin/time -f '%U %S %e' -o "$out/$name.time" \
        timeout "$CLIENT_TIMEOUT_S" "$rp" "$@" -b "$kafka_addr" >"$out/$name.log" 2>&1 || rc=$?
    c1=$(broker_cpu_ticks); s1=$(broker_sys_ticks); b1=$(busy_ticks); t1=$(date +%s%N)
    local client_cpu wall broker_cpu other ok=1 error=""
    client_cpu=$(awk 'END {print $1 + $2}' "$out/$name.time")
    wall=$(awk -v a="$t0" -v b="$t1" 'BEGIN {printf "%.3f", (b - a) / 1e9}')
    broker_cpu=$(awk -v a="$c0" -v b="$c1" -v hz="$hz" 'BEGIN {printf "%.2f", (b - a) / hz}')
    other=$(awk -v a="$b0" -v b="$b1" -v hz="$hz" -v x="$broker_cpu" -v y="$client_cpu" \
        'BEGIN {o = (b - a) / hz - x - y; printf "%.2f", (o < 0 ? 0 : o)}')
    local msgs bytes ms delivered failed
    if [[ $kind == produce ]]; then
        read -r msgs bytes ms delivered failed < <(python3 "$bench_dir/report.py" parse-produce "$out/$name.log")
        if ((delivered != expected || failed != 0)); then ok=0; error="delivered $delivered of $expected, $failed failed"; fi
        msgs=$delivered
        # rdkafka_performance exits 1 when a librdkafka request (not a message) is still queued
        # at the end; the delivery count above is what matters.
        ((ok == 1 && rc == 1)) && rc=0
    else
        read -r msgs bytes ms < <(python3 "$bench_dir/report.py" parse-consume "$out/$name.log")
        if ((msgs != expected)); then ok=0; error="consumed $msgs of $expected"; fi
    fi
    if ((rc == 124)); then ok=0; error="client timed out after ${CLIENT_TIMEOUT_S}s; $error"; fi
    if ((rc != 0 && rc != 124)) && [[ -z $error ]]; then ok=0; error="client exit code $rc"; fi
    if ! kill -0 "$bpid" 2>/dev/null; then ok=0; error="broker died; $error"; fi
    local mb_s msgs_s
    mb_s=$(awk -v b="$bytes" -v ms="$ms" 'BEGIN {printf "%.1f", (ms > 0 ? b / ms / 1000 : 0)}')
    msgs_s=$(awk -v n="$msgs" -v ms="$ms" 'BEGIN {printf "%.0f", (ms > 0 ? n * 1000 / ms : 0)}')
    disturbed=$(awk -v o="$other" -v w="$wall" -v c="$DISTURBED_CORES" 'BEGIN {print (w > 0 && o / w > c) ? 1 : 0}')
    record kind=run phase="$phase" rep="$rep" attempt="$attempt" ok="$ok" disturbed="$disturbed" \
        error="$error" msgs="$msgs" bytes="$bytes" \
        client_ms="$ms" mb_s="$mb_s" msgs_s="$msgs_s" wall_s="$wall" broker_cpu_s="$broker_cpu" \
        broker_sys_s="$(ticks_s "$s0" "$s1")" \
        client_cpu_s="$client_cpu" other_cpu_s="$other"
    log "$name: $msgs msgs, $mb_s MB/s, $msgs_s msgs/s in ${ms} ms; CPU s broker $broker_cpu client $client_cpu other $other${error:+; FAILED: $error}$( ((disturbed)) && echo "; disturbed by other load")"
    if ((ok == 0)); then
        note "$name failed: $error (client log $out/$name.log)"
        tail -n 5 "$out/$name.log" | sed 's/^/    /'
    fi
}

# measure PHASE REP KIND EXPECTED ARGS...: run_client after waiting for a quiet machine, again
# (up to 3 attempts) while other load disturbed it. The report prefers undisturbed attempts.
measure() {
    for attempt in 1 2 3; do
        wait_quiet "$1"
        run_client "$@"
        ((disturbed == 0)) && break
    done
    ((disturbed == 0)) || note "$1-$2: other load on the machine during all 3 attempts"
    attempt=1
}

# profile NAME ARGS...: one extra client run under system-wide perf, summarised.
profile() {
    local name=$1
    shift
    [[ $PERF == 1 ]] || return 0
    wait_quiet "profile $name"
    perf record -a -F 499 -o "$out/perf-$name.data" -- \
        timeout "$CLIENT_TIMEOUT_S" "$rp" "$@" -b "$kafka_addr" >"$out/perf-$name.log" 2>&1 || true
    # Reports go to files first: `perf report | head` would fail the pipeline with SIGPIPE.
    perf report -i "$out/perf-$name.data" --stdio --sort comm >"$out/perf-$name.comm.txt" 2>/dev/null || true
    perf report -i "$out/perf-$name.data" --stdio --pid "$bpid" --percentage relative \
        --sort dso,sym >"$out/perf-$name.broker.txt" 2>/dev/null || true
    {
        echo "== $name: CPU samples by thread name, whole machine (swapper = idle)"
        grep -v -e '^#' -e '^$' "$out/perf-$name.comm.txt" | head -n 8 || true
        echo "== $name: broker's hottest functions (share of the broker's samples)"
        grep -v -e '^#' -e '^$' "$out/perf-$name.broker.txt" | head -n 12 || true
        echo
    } >>"$out/profile.txt"
    rm -f "$out/perf-$name.data"
}

# Latency: a consumer waiting at the end of an empty topic, a producer at a fixed rate; both
# stamp each message with the wall clock (rdkafka_performance -l) and write per-message
# latencies: the producer from produce() to its delivery report, the consumer end to end.
# Run twice: on the fresh broker before the throughput runs, and again after them (~15 GB
# stored and in the page cache), since the two differ on this machine (see BENCHMARKS.md).
latency_run() { # label; repeated once when other load disturbed it
    local try
    for try in 1 2; do
        latency_attempt "$1" "$try"
        ((disturbed == 0)) && return 0
    done
    note "latency ($1): other load on the machine during both attempts"
}
latency_attempt() { # label attempt
    local label=$1 name=$1.$2 topic=bench-lat-$1-$2 cpid spid c0 c1 s0 s1 b0 b1 t0 t1 i other lat_ms a50 a99 a999 amax e50 e99 e999 emax en
    log "latency run ($label): $LAT_MSGS messages at $LAT_RATE msgs/s"
    create_topic "$topic" 1
    wait_quiet "the latency run ($label)"
    /usr/bin/time -f '%U %S' -o "$out/latency-consumer-$name.time" stdbuf -oL "$rp" -C -l -t "$topic" -p 0 -c "$LAT_MSGS" "${LAT_CONSUME_ARGS[@]}" \
        -A "$out/e2e-$name.lat" -b "$kafka_addr" >"$out/latency-consumer-$name.log" 2>&1 &
    cpid=$!
    for ((i = 0; i < 300; i++)); do
        grep -q 'reached end' "$out/latency-consumer-$name.log" && break
        sleep 0.1
    done
    c0=$(broker_cpu_ticks); s0=$(broker_sys_ticks); b0=$(busy_ticks); t0=$(date +%s%N)
    date +%s.%N >"$out/latency-$name.start"
    python3 "$bench_dir/report.py" sample "$out/latency-$name.samples" "$bpid" \
        "$((LAT_MSGS / LAT_RATE + 15))" &
    spid=$!
    /usr/bin/time -f '%U %S' -o "$out/latency-producer-$name.time" \
        timeout "$CLIENT_TIMEOUT_S" "$rp" -P -l -t "$topic" -p 0 -c "$LAT_MSGS" "${LAT_PRODUCE_ARGS[@]}" \
        -A "$out/ack-$name.lat" -b "$kafka_addr" >"$out/latency-producer-$name.log" 2>&1 ||
        note "latency producer ($label) exited with $?"
    for ((i = 0; i < 300; i++)); do kill -0 "$cpid" 2>/dev/null || break; sleep 0.1; done
    if kill -0 "$cpid" 2>/dev/null; then
        note "latency consumer ($label) had not received all $LAT_MSGS messages 30 s after the producer finished"
        pkill -TERM -P "$cpid" || true
    fi
    wait "$cpid" 2>/dev/null || true
    kill "$spid" 2>/dev/null || true
    wait "$spid" 2>/dev/null || true
    c1=$(broker_cpu_ticks); s1=$(broker_sys_ticks); b1=$(busy_ticks); t1=$(date +%s%N)
    # Other load: all busy CPU minus the broker's and the two clients' (the producer's rate
    # limiter polls without sleeping, so the producer uses most of a core).
    local client_cpu
    client_cpu=$(cat "$out/latency-producer-$name.time" "$out/latency-consumer-$name.time" 2>/dev/null |
        awk '$1 ~ /^[0-9.]+$/ {s += $1 + $2} END {printf "%.2f", s}')
    other=$(awk -v a="$b0" -v b="$b1" -v c0="$c0" -v c1="$c1" -v hz="$hz" -v x="$client_cpu" \
        'BEGIN {o = ((b - a) - (c1 - c0)) / hz - x; printf "%.2f", (o < 0 ? 0 : o)}')
    disturbed=$(awk -v o="$other" -v t0="$t0" -v t1="$t1" -v c="$DISTURBED_CORES" \
        'BEGIN {print (o / ((t1 - t0) / 1e9) > c) ? 1 : 0}')
    read -r _ _ lat_ms _ _ < <(python3 "$bench_dir/report.py" parse-produce "$out/latency-producer-$name.log")
    read -r a50 a99 a999 amax _ < <(python3 "$bench_dir/report.py" percentiles "$out/ack-$name.lat" "$LAT_SKIP")
    read -r e50 e99 e999 emax en < <(python3 "$bench_dir/report.py" percentiles "$out/e2e-$name.lat" "$LAT_SKIP")
    record kind=latency label="$label" attempt="$2" disturbed="$disturbed" other_cpu_s="$other" client_cpu_s="$client_cpu" msgs="$LAT_MSGS" skip="$LAT_SKIP" samples="$en" \
        rate_msgs_s="$(awk -v n="$LAT_MSGS" -v ms="$lat_ms" 'BEGIN {printf "%.0f", (ms > 0 ? n * 1000 / ms : 0)}')" \
        ack_p50_ms="$a50" ack_p99_ms="$a99" ack_p999_ms="$a999" ack_max_ms="$amax" \
        e2e_p50_ms="$e50" e2e_p99_ms="$e99" e2e_p999_ms="$e999" e2e_max_ms="$emax" \
        stalls="$(python3 "$bench_dir/report.py" stalls "$out/ack-$name.lat" "$LAT_SKIP")" \
        broker_cpu_s="$(ticks_s "$c0" "$c1")" broker_sys_s="$(ticks_s "$s0" "$s1")" \
        wall_s="$(awk -v t0="$t0" -v t1="$t1" 'BEGIN {printf "%.0f", (t1 - t0) / 1e9}')"
    local flag=""
    ((disturbed)) && flag=", disturbed by other load"
    log "latency ($label, attempt $2$flag): produce-ack p50/p99/p99.9/max $a50/$a99/$a999/$amax ms; end-to-end $e50/$e99/$e999/$emax ms ($en samples)"
}

log "starting the broker"
start_broker "$out/broker.log"
reset_peak_rss
latency_run fresh

for rep in $(seq "$REPS"); do create_topic "bench-1k-$rep" 1; create_topic "bench-100b-$rep" 1; done

for rep in $(seq "$REPS"); do
    measure produce_1k "$rep" produce "$MSGS_1K" -P -t "bench-1k-$rep" -p 0 -s 1024 -c "$MSGS_1K" "${PRODUCE_ARGS[@]}"
done
for rep in $(seq "$REPS"); do
    measure produce_100b "$rep" produce "$MSGS_100B" -P -t "bench-100b-$rep" -p 0 -s 100 -c "$MSGS_100B" "${PRODUCE_ARGS[@]}"
done
rm -f "$data_dir"/dd.*.tmp
for rep in $(seq "$REPS"); do
    measure consume_1k "$rep" consume "$MSGS_1K" -C -t "bench-1k-$rep" -p 0 -c "$MSGS_1K" "${CONSUME_ARGS[@]}"
done
for rep in $(seq "$REPS"); do
    measure consume_100b "$rep" consume "$MSGS_100B" -C -t "bench-100b-$rep" -p 0 -c "$MSGS_100B" "${CONSUME_ARGS[@]}"
done
info rss_throughput_peak_mb="$(status_mb VmHWM)"

if [[ $PERF == 1 ]]; then
    log "profiling one extra run of each throughput workload"
    create_topic bench-1k-prof 1
    create_topic bench-100b-prof 1
    profile produce_1k -P -t bench-1k-prof -p 0 -s 1024 -c "$MSGS_1K" "${PRODUCE_ARGS[@]}"
    profile produce_100b -P -t bench-100b-prof -p 0 -s 100 -c "$MSGS_100B" "${PRODUCE_ARGS[@]}"
    profile consume_1k -C -t bench-1k-1 -p 0 -c "$MSGS_1K" "${CONSUME_ARGS[@]}"
    profile consume_100b -C -t bench-100b-1 -p 0 -c "$MSGS_100B" "${CONSUME_ARGS[@]}"
    info profile="$out/profile.txt"
fi
latency_run after-throughput

# Memory with 100 partitions and ~3 GB stored: produce across the partitions (librdkafka's
# default partitioner, no key), read everything back, then restart on the same data.
log "memory run: $RSS_BYTES bytes across $RSS_PARTITIONS partitions"
rss_msgs=$((RSS_BYTES / 1024))
create_topic bench-100p "$RSS_PARTITIONS"
partition_args=()
for ((p = 0; p < RSS_PARTITIONS; p++)); do partition_args+=(-p "$p"); done
wait_quiet "the memory run"
reset_peak_rss
run_client produce_100p 1 produce "$rss_msgs" -P -t bench-100p -s 1024 -c "$rss_msgs" "${PRODUCE_ARGS[@]}"
rss_after_produce=$(status_mb VmRSS)
run_client consume_100p 1 consume "$rss_msgs" -C -t bench-100p "${partition_args[@]}" -c "$rss_msgs" "${CONSUME_ARGS[@]}"
stored=$(du -sb "$data_dir/spate/topics/bench-100p" 2>/dev/null | awk '{printf "%.2f", $1 / 1e9}')
info rss_100p_peak_mb="$(status_mb VmHWM)" rss_100p_after_produce_mb="$rss_after_produce" \
    rss_100p_after_consume_mb="$(status_mb VmRSS)" rss_100p_anon_mb="$(status_mb RssAnon)" \
    rss_100p_file_mb="$(status_mb RssFile)" rss_100p_stored_gb="${stored:-nan}"
log "100 partitions, $stored GB stored: VmHWM $(status_mb VmHWM) MB, VmRSS $(status_mb VmRSS) MB"

stop_broker
exit1=$broker_exit
log "broker stopped: $exit1; restarting on the same data"
start_broker "$out/broker-restart.log"
note "restart with $(du -sh "$data_dir/spate" | cut -f1) stored: ready in ~${broker_ready_ms} ms, VmRSS $(status_mb VmRSS) MB idle after start"
stop_broker
exit2=$broker_exit

cat "$out/broker.log" "$out/broker-restart.log" | sed 's/\x1b\[[0-9;]*m//g' |
    grep -E ' (WARN|ERROR) ' | head -n 20 >"$out/broker-warnings.txt" || true
info broker_exit="first: $exit1; after restart: $exit2" broker_log="$out/broker.log" \
    broker_warn_lines="$(cat "$out/broker.log" "$out/broker-restart.log" | sed 's/\x1b\[[0-9;]*m//g' | grep -cE ' (WARN|ERROR) ' || true)" \
    broker_warn_sample="$out/broker-warnings.txt" notes="$notes"

python3 "$bench_dir/report.py" render "$records" "$results_md"
log "results: $results_md"
