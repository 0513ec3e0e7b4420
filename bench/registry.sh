#!/usr/bin/env bash
# Spate benchmark for issue 4, run by hand (not in CI): schema registry lookups per second with
# wrk, and produce throughput with schema validation off and on with bench/txn_perf.c. Same
# conventions as bench/run.sh and bench/groups.sh: a release build, one `spate serve` with
# default settings on a fresh data directory, waits for a quiet machine.
#
#   bench/registry.sh
#
# Writes bench/results/registry-<timestamp>.md (raw logs under bench/results/registry-<timestamp>/),
# prints the tables. What is measured and why: BENCHMARKS.md, "Schema registry (issue 4)".
# Knobs (environment):
#   SPATE_BENCH_SCHEMAS=100           Avro schemas registered, one subject each
#   SPATE_BENCH_WRK_REPS=3            runs of each lookup endpoint (the median is reported)
#   SPATE_BENCH_WRK_SECONDS=15        length of a loaded wrk run
#   SPATE_BENCH_WRK_THREADS=2         wrk threads ...
#   SPATE_BENCH_WRK_CONNS=32          ... and connections for the loaded runs
#   SPATE_BENCH_WRK_SINGLE_SECONDS=10 length of a single-connection run (0: none)
#   SPATE_BENCH_VAL_REPS=5            repetitions of each produce mode
#   SPATE_BENCH_VAL_MSGS=1000000      records per produce run
#   SPATE_BENCH_VAL_SIZE=1024         bytes per record (header and Avro length included)
#   SPATE_BENCH_VAL_CLIENTS="idempotent|-i 1;not idempotent|-i 0;idempotent, lz4|-i 1 -X compression.type=lz4"
#                                     producer variants, label|txn_perf arguments, ';'-separated
#   SPATE_BENCH_PERF=auto             one extra perf-profiled run per produce mode and lookup
#                                     endpoint (auto|0|1)
#   SPATE_BENCH_PROF_MSGS=4000000     records in a profiled produce run (longer, for more samples)
#   SPATE_BENCH_FILL_PAGE_CACHE=1     fill the page cache before the produce runs (0: don't)
#   SPATE_BENCH_QUIET_WAIT_S=1800     how long, in all, to wait for other load to stop
#   SPATE_BENCH_DATA_DIR=bench/build/data   where the broker's data goes
#   SPATE_BENCH_KEEP_DATA=0           keep the broker's data directory afterwards
set -euo pipefail

bench_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$bench_dir/.." && pwd)
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/spate/target}
export DEBIAN_FRONTEND=noninteractive

SCHEMAS=${SPATE_BENCH_SCHEMAS:-100}
WRK_REPS=${SPATE_BENCH_WRK_REPS:-3}
WRK_SECONDS=${SPATE_BENCH_WRK_SECONDS:-15}
WRK_THREADS=${SPATE_BENCH_WRK_THREADS:-2}
WRK_CONNS=${SPATE_BENCH_WRK_CONNS:-32}
WRK_SINGLE_SECONDS=${SPATE_BENCH_WRK_SINGLE_SECONDS:-10}
VAL_REPS=${SPATE_BENCH_VAL_REPS:-5}
VAL_MSGS=${SPATE_BENCH_VAL_MSGS:-1000000}
VAL_SIZE=${SPATE_BENCH_VAL_SIZE:-1024}
IFS=';' read -r -a VAL_CLIENTS <<<"${SPATE_BENCH_VAL_CLIENTS:-idempotent|-i 1;not idempotent|-i 0;idempotent, lz4|-i 1 -X compression.type=lz4}"
PERF=${SPATE_BENCH_PERF:-auto}
PROF_MSGS=${SPATE_BENCH_PROF_MSGS:-4000000}
FILL_PAGE_CACHE=${SPATE_BENCH_FILL_PAGE_CACHE:-1}
QUIET_WAIT_S=${SPATE_BENCH_QUIET_WAIT_S:-1800}
KEEP_DATA=${SPATE_BENCH_KEEP_DATA:-0}

timestamp=$(date -u +%Y%m%dT%H%M%SZ)
out=$bench_dir/results/registry-$timestamp
results_md=$bench_dir/results/registry-$timestamp.md
records=$out/records.jsonl
notes=$out/notes.md
data_dir=${SPATE_BENCH_DATA_DIR:-$bench_dir/build/data}/registry-$timestamp
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

# --- tools -----------------------------------------------------------------------------------

pkgs=()
command -v wrk >/dev/null || pkgs+=(wrk)
command -v curl >/dev/null || pkgs+=(curl)
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

"$bench_dir/build-client.sh" >/dev/null
txn_perf=$bench_dir/build/bin/txn_perf
log "building spate (release) in $CARGO_TARGET_DIR"
(cd "$repo" && cargo build --release -p spate-cli)
spate=$CARGO_TARGET_DIR/release/spate
git_commit=$(git -C "$repo" rev-parse --short HEAD 2>/dev/null || echo unknown)
if [[ -n $(git -C "$repo" status --porcelain --untracked-files=no 2>/dev/null) ]]; then
    git_commit="$git_commit (with uncommitted changes)"
fi

info timestamp="$timestamp" command="bench/registry.sh" git_commit="$git_commit" \
    spate_version="$("$spate" --version)" \
    librdkafka="$(cat "$bench_dir/build/bin/rdkafka_performance.version")" \
    wrk_version="$(wrk -v 2>&1 | head -n 1 | awk '{print $1, $2}')" \
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
    registry_addr=$(grep -o 'registry_addr=[^ ]*' <<<"$line" | cut -d= -f2)
    [[ -n $registry_addr ]] || { log "no registry_addr in the ready line: $line"; exit 1; }
    log "broker pid $bpid ready at $kafka_addr, registry at $registry_addr"
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
broker_sys_ticks() { awk '{print $15}' "/proc/$bpid/stat"; }
create_topic() { # name partitions config...
    local name=$1 partitions=$2 args=()
    shift 2
    for kv in "$@"; do args+=(--config "$kv"); done
    "$spate" topic create --brokers "$kafka_addr" --partitions "$partitions" "${args[@]}" "$name" \
        >>"$out/topics.log" 2>&1 || { log "creating topic $name failed:"; tail "$out/topics.log"; exit 1; }
}
# register SUBJECT BODY: prints the schema id (the caller's `id=$(register ...)` fails with it)
register() {
    local response
    response=$(curl -sS --fail-with-body -X POST \
        -H 'Content-Type: application/vnd.schemaregistry.v1+json' \
        --data-binary "$2" "http://$registry_addr/subjects/$1/versions") ||
        { log "registering under $1 failed: $response" >&2; exit 1; }
    grep -o '"id":[0-9]*' <<<"$response" | cut -d: -f2
}

start_broker "$out/broker.log"

# --- lookups ---------------------------------------------------------------------------------

log "registering $SCHEMAS Avro schemas"
schemas_tsv=$out/schemas.tsv
: >"$schemas_tsv"
while IFS=$'\t' read -r subject body; do
    id=$(register "$subject" "$body")
    printf '%s\t%s\t%s\n' "$id" "$subject" "$body" >>"$schemas_tsv"
done < <(python3 "$bench_dir/registry.py" schemas "$SCHEMAS" bench)
schema_bytes_mean=$(python3 -c 'import json, sys
rows = [l.rstrip("\n").split("\t") for l in open(sys.argv[1])]
print(round(sum(len(json.loads(r[2])["schema"]) for r in rows) / len(rows)))' "$schemas_tsv")
info schemas="$(wc -l <"$schemas_tsv")" schema_bytes_mean="$schema_bytes_mean"
log "registered $(wc -l <"$schemas_tsv") schemas, ids $(head -n 1 "$schemas_tsv" | cut -f1)..$(tail -n 1 "$schemas_tsv" | cut -f1), $schema_bytes_mean bytes of schema text on average"

DISTURBED_CORES=0.25
# wrk_run LOAD MODE REP THREADS CONNECTIONS SECONDS: one measured wrk run, repeated (up to 3
# attempts) while other load disturbed it.
wrk_run() {
    local load=$1 mode=$2 rep=$3 threads=$4 conns=$5 secs=$6 attempt name rc line c0 c1 s0 s1 b0 b1 t0 t1
    local client wall broker_cpu other disturbed
    for attempt in 1 2 3; do
        name=wrk-$load-$mode-$rep.$attempt
        wait_quiet "$name"
        rc=0
        c0=$(broker_cpu_ticks); s0=$(broker_sys_ticks); b0=$(busy_ticks); t0=$(date +%s%N)
        REGISTRY_BENCH_MODE=$mode REGISTRY_BENCH_SCHEMAS=$schemas_tsv \
            /usr/bin/time -f '%U %S' -o "$out/$name.time" \
            wrk -t"$threads" -c"$conns" -d"${secs}s" --timeout 10s -s "$bench_dir/registry.lua" \
            "http://$registry_addr" >"$out/$name.log" 2>&1 || rc=$?
        c1=$(broker_cpu_ticks); s1=$(broker_sys_ticks); b1=$(busy_ticks); t1=$(date +%s%N)
        line=$(grep '^mode=' "$out/$name.log" || true)
        client=$(awk 'END {print $1 + $2}' "$out/$name.time")
        wall=$(awk -v a="$t0" -v b="$t1" 'BEGIN {printf "%.3f", (b - a) / 1e9}')
        broker_cpu=$(awk -v a="$c0" -v b="$c1" -v hz="$hz" 'BEGIN {printf "%.2f", (b - a) / hz}')
        other=$(awk -v a="$b0" -v b="$b1" -v hz="$hz" -v x="$broker_cpu" -v y="$client" \
            'BEGIN {o = (b - a) / hz - x - y; printf "%.2f", (o < 0 ? 0 : o)}')
        disturbed=$(awk -v o="$other" -v w="$wall" -v c="$DISTURBED_CORES" 'BEGIN {print (w > 0 && o / w > c) ? 1 : 0}')
        # shellcheck disable=SC2086 # the summary line is key=value words
        record kind=lookup load="$load" rep="$rep" attempt="$attempt" exit_code="$rc" \
            threads="$threads" connections="$conns" seconds="$secs" disturbed="$disturbed" \
            wall_s="$wall" broker_cpu_s="$broker_cpu" broker_sys_s="$(awk -v a="$s0" -v b="$s1" -v hz="$hz" 'BEGIN {printf "%.2f", (b - a) / hz}')" \
            client_cpu_s="$client" other_cpu_s="$other" $line
        log "$name: ${line:-no summary} (exit $rc; CPU s broker $broker_cpu wrk $client other $other)"
        if ((rc != 0)) || [[ -z $line ]]; then note "$name failed (exit $rc): $(tail -n 3 "$out/$name.log" | tr '\n' ' ')"; fi
        ((disturbed == 0)) && return 0
        log "disturbed by other load; again"
    done
    note "$load $mode rep $rep: other load on the machine during all 3 attempts"
}

lookup_modes=(by-id latest lookup)
for mode in "${lookup_modes[@]}"; do
    # Warm-up, not recorded: connections, the allocator, and any cache the registry keeps.
    REGISTRY_BENCH_MODE=$mode REGISTRY_BENCH_SCHEMAS=$schemas_tsv \
        wrk -t"$WRK_THREADS" -c"$WRK_CONNS" -d3s -s "$bench_dir/registry.lua" \
        "http://$registry_addr" >"$out/wrk-warmup-$mode.log" 2>&1 || true
done
for rep in $(seq "$WRK_REPS"); do
    n=${#lookup_modes[@]}
    for ((j = 0; j < n; j++)); do
        mode=${lookup_modes[$(((j + rep - 1) % n))]}
        wrk_run loaded "$mode" "$rep" "$WRK_THREADS" "$WRK_CONNS" "$WRK_SECONDS"
    done
done
if ((WRK_SINGLE_SECONDS > 0)); then
    for rep in $(seq "$WRK_REPS"); do
        for mode in "${lookup_modes[@]}"; do
            wrk_run single "$mode" "$rep" 1 1 "$WRK_SINGLE_SECONDS"
        done
    done
fi

# --- produce with validation -----------------------------------------------------------------

# Every mode writes the same bytes: each value is Confluent's wire format around an Avro `bytes`
# datum (txn_perf -V), registered as "bytes" under <topic>-value for every topic, so that only
# what the broker does with them differs.
val_modes=("off|"
    "on|confluent.value.schema.validation=true"
    "on, decode|confluent.value.schema.validation=true spate.schema.validation.decode=true")

# On this VM, writing into memory the guest has not touched lately (free pages go back to the
# host) costs about twice the kernel CPU of writing into pages reclaimed from the page cache
# (see the issue-2 section of BENCHMARKS.md). Left alone, the produce runs switch from the first
# to the second once ~16 GB have been written, and that swings a run's throughput by more than
# validation does. So the page cache is filled first, with a file kept until the end: every
# produce run then writes into reclaimed pages, as on a broker that has been running a while.
if ((FILL_PAGE_CACHE == 1)); then
    fill_mb=$(awk '/^MemAvailable/ {printf "%d", $2 / 1024 - 3072}' /proc/meminfo)
    if ((fill_mb > 0)); then
        wait_quiet "filling the page cache"
        log "filling the page cache: $fill_mb MiB written to $data_dir/fill.tmp and kept"
        LC_ALL=C dd if=/dev/zero of="$data_dir/fill.tmp" bs=1M count="$fill_mb" conv=fdatasync 2>&1 | tail -n 1
        info page_cache_fill_mb="$fill_mb" \
            mem_after_fill="$(awk '/^(MemFree|Cached):/ {printf "%s %.1f GiB ", $1, $2 / 1048576}' /proc/meminfo)"
    fi
fi

val_run() { # rep client_label validation_label "topic configs" txn_perf args...
    local rep=$1 client=$2 vlabel=$3 configs=$4 attempt topic id name line rc c0 c1 b0 b1 t0 t1
    local cpu wall broker_cpu other disturbed stored
    shift 4
    local cfg=()
    read -r -a cfg <<<"$configs"
    for attempt in 1 2 3; do
        topic=val-$rep-$((++val_topic))
        name=produce-$val_topic
        create_topic "$topic" 1 "${cfg[@]}"
        id=$(register "$topic-value" '{"schema": "\"bytes\""}')
        wait_quiet "$client / $vlabel, rep $rep"
        rc=0
        c0=$(broker_cpu_ticks); b0=$(busy_ticks); t0=$(date +%s%N)
        /usr/bin/time -f '%U %S' -o "$out/$name.time" \
            timeout 900 "$txn_perf" -b "$kafka_addr" -t "$topic" -n "$VAL_MSGS" -s "$VAL_SIZE" \
            -k 0 -V "$id" "$@" >"$out/$name.log" 2>&1 || rc=$?
        c1=$(broker_cpu_ticks); b1=$(busy_ticks); t1=$(date +%s%N)
        line=$(grep '^mode=' "$out/$name.log" || true)
        cpu=$(awk 'END {print $1 + $2}' "$out/$name.time")
        wall=$(awk -v a="$t0" -v b="$t1" 'BEGIN {printf "%.3f", (b - a) / 1e9}')
        broker_cpu=$(awk -v a="$c0" -v b="$c1" -v hz="$hz" 'BEGIN {printf "%.2f", (b - a) / hz}')
        other=$(awk -v a="$b0" -v b="$b1" -v hz="$hz" -v x="$broker_cpu" -v y="$cpu" \
            'BEGIN {o = (b - a) / hz - x - y; printf "%.2f", (o < 0 ? 0 : o)}')
        disturbed=$(awk -v o="$other" -v w="$wall" -v c="$DISTURBED_CORES" 'BEGIN {print (w > 0 && o / w > c) ? 1 : 0}')
        stored=$(du -sb "$data_dir/spate/topics/$topic" 2>/dev/null | awk '{printf "%.3f", $1 / 1e9}')
        # shellcheck disable=SC2086 # the summary line is key=value words
        record kind=produce rep="$rep" attempt="$attempt" client="$client" validation="$vlabel" \
            ok=$((rc == 0 ? 1 : 0)) exit_code="$rc" disturbed="$disturbed" wall_s="$wall" \
            broker_cpu_s="$broker_cpu" client_cpu_s="$cpu" other_cpu_s="$other" topic="$topic" \
            topic_configs="$configs" stored_gb="${stored:-nan}" $line
        log "$client / validation $vlabel, rep $rep.$attempt: ${line:-no summary} (exit $rc; CPU s broker $broker_cpu client $cpu other $other; stored ${stored:-?} GB)"
        ((rc == 0)) || note "$client / $vlabel rep $rep failed (exit $rc): $(tail -n 3 "$out/$name.log" | tr '\n' ' ')"
        ((disturbed == 0)) && return 0
        log "disturbed by other load; again"
    done
    note "$client / $vlabel rep $rep: other load on the machine during all 3 attempts"
}

val_topic=0
for rep in $(seq "$VAL_REPS"); do
    for c in "${VAL_CLIENTS[@]}"; do
        read -r -a cargs <<<"${c#*|}"
        # Rotate the order so that no mode always runs first (the first writes after memory is
        # freed are cheaper on this VM, see the issue-2 section of BENCHMARKS.md).
        n=${#val_modes[@]}
        for ((j = 0; j < n; j++)); do
            m=${val_modes[$(((j + rep - 1) % n))]}
            val_run "$rep" "${c%%|*}" "${m%%|*}" "${m#*|}" "${cargs[@]}"
        done
    done
done

# --- where the time goes ---------------------------------------------------------------------

# profile NAME COMMAND...: one extra run under system-wide perf, summarised as in run.sh.
profile() {
    local name=$1
    shift
    wait_quiet "profile $name"
    perf record -a -F 999 -o "$out/perf-$name.data" -- "$@" >"$out/perf-$name.log" 2>&1 || true
    # Reports go to files first: `perf report | head` would fail the pipeline with SIGPIPE.
    perf report -i "$out/perf-$name.data" --stdio --sort comm >"$out/perf-$name.comm.txt" 2>/dev/null || true
    perf report -i "$out/perf-$name.data" --stdio --pid "$bpid" --percentage relative \
        --sort dso,sym >"$out/perf-$name.broker.txt" 2>/dev/null || true
    {
        echo "== $name: CPU samples by thread name, whole machine (swapper = idle)"
        grep -v -e '^#' -e '^$' "$out/perf-$name.comm.txt" | head -n 8 || true
        echo "== $name: broker's hottest functions (share of the broker's samples)"
        grep -v -e '^#' -e '^$' "$out/perf-$name.broker.txt" | head -n 20 || true
        echo
    } >>"$out/profile.txt"
    rm -f "$out/perf-$name.data"
}
if [[ $PERF == 1 ]]; then
    log "profiling one extra run of each produce mode and of each lookup endpoint"
    # The first producer variant, and the same with lz4 (decompression is validation's own cost).
    read -r -a cargs <<<"${VAL_CLIENTS[0]#*|}"
    for compression in none lz4; do
        for m in "${val_modes[@]}"; do
            read -r -a cfg <<<"${m#*|}"
            topic=val-prof-$((++val_topic))
            create_topic "$topic" 1 "${cfg[@]}"
            id=$(register "$topic-value" '{"schema": "\"bytes\""}')
            label=${m%%|*}
            profile "produce-$compression-${label//[ ,]/}" "$txn_perf" -b "$kafka_addr" -t "$topic" \
                -n "$PROF_MSGS" -s "$VAL_SIZE" -k 0 -V "$id" "${cargs[@]}" -X compression.type="$compression"
        done
    done
    for mode in "${lookup_modes[@]}"; do
        profile "lookup-$mode" env REGISTRY_BENCH_MODE="$mode" REGISTRY_BENCH_SCHEMAS="$schemas_tsv" \
            wrk -t"$WRK_THREADS" -c"$WRK_CONNS" -d10s -s "$bench_dir/registry.lua" "http://$registry_addr"
    done
    info profile="$out/profile.txt"
fi

rm -f "$data_dir/fill.tmp"
stop_broker
sed 's/\x1b\[[0-9;]*m//g' "$out/broker.log" | grep -E ' (WARN|ERROR) ' | head -n 20 >"$out/broker-warnings.txt" || true
info broker_exit="$broker_exit" broker_log="$out/broker.log" \
    broker_warn_lines="$(sed 's/\x1b\[[0-9;]*m//g' "$out/broker.log" | grep -cE ' (WARN|ERROR) ' || true)" \
    notes="$notes"

python3 "$bench_dir/registry.py" render "$records" "$results_md"
{
    echo "Run registry-$timestamp, $git_commit; notes:"
    cat "$notes"
} >>"$results_md"
log "results: $results_md"
