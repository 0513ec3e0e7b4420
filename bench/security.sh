#!/usr/bin/env bash
# Spate benchmark for issue 5, run by hand (not in CI): produce throughput over SASL_SSL
# (SCRAM-SHA-512, TLS by rustls with ring) against PLAINTEXT, on the same broker and the same
# workload. Same conventions as bench/run.sh: a release build, one `spate serve` on a fresh data
# directory, librdkafka's `rdkafka_performance` as the client (here built with OpenSSL:
# SPATE_BENCH_CLIENT_SSL=1 bench/build-client.sh), waits for a quiet machine, medians.
#
#   bench/security.sh
#
# The broker listens on PLAINTEXT and on SASL_SSL (a certificate from a throwaway CA made with
# openssl in a temporary directory); the SCRAM user is created with `spate user create` over
# PLAINTEXT. Each repetition runs PLAINTEXT and SASL_SSL back to back, for acks=all and acks=1,
# each into a new topic. Writes bench/results/security-<timestamp>.md (raw logs under
# bench/results/security-<timestamp>/) and prints the table. Knobs (environment):
#   SPATE_BENCH_REPS=3                repetitions of each run (the median is reported)
#   SPATE_BENCH_SEC_MSGS=1000000      1 KiB records per run (~1 GB)
#   SPATE_BENCH_PERF=auto             one extra perf-profiled SASL_SSL run (auto|0|1)
#   SPATE_BENCH_QUIET_WAIT_S=1800     how long, in all, to wait for other load to stop
#   SPATE_BENCH_DATA_DIR=bench/build/data   where the broker's data goes
#   SPATE_BENCH_CLIENT_TIMEOUT_S=900  a client run taking longer is killed and reported
set -euo pipefail

bench_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$bench_dir/.." && pwd)
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/spate/target}

REPS=${SPATE_BENCH_REPS:-3}
MSGS=${SPATE_BENCH_SEC_MSGS:-1000000}
PERF=${SPATE_BENCH_PERF:-auto}
QUIET_WAIT_S=${SPATE_BENCH_QUIET_WAIT_S:-1800}
CLIENT_TIMEOUT_S=${SPATE_BENCH_CLIENT_TIMEOUT_S:-900}
USER_NAME=bench
USER_PASSWORD=bench-secret-$RANDOM$RANDOM

# Client settings as bench/run.sh's produce runs, acks aside.
PRODUCE_ARGS=(-X linger.ms=5 -X batch.size=1000000
    -X queue.buffering.max.messages=2000000 -X queue.buffering.max.kbytes=2097151)

timestamp=$(date -u +%Y%m%dT%H%M%SZ)
out=$bench_dir/results/security-$timestamp
results_md=$bench_dir/results/security-$timestamp.md
runs=$out/runs.tsv
data_dir=${SPATE_BENCH_DATA_DIR:-$bench_dir/build/data}/security-$timestamp
pki=$(mktemp -d)
mkdir -p "$out" "$data_dir"
exec > >(tee -a "$out/run.log") 2>&1

log() { printf '[bench %(%H:%M:%S)T] %s\n' -1 "$*"; }
notes=()
note() { notes+=("$*"); log "note: $*"; }

# shellcheck source=bench/lib.sh
source "$bench_dir/lib.sh" # hz, ncpu, wait_quiet
bpid=

cleanup() {
    if [[ -n $bpid ]] && kill -0 "$bpid" 2>/dev/null; then
        kill -TERM "$bpid" 2>/dev/null || true
        wait "$bpid" 2>/dev/null || true
    fi
    rm -rf "$data_dir" "$pki"
}
trap cleanup EXIT
trap 'log "failed at line $LINENO: $BASH_COMMAND"' ERR

# --- builds and certificates -----------------------------------------------------------------

rp=$(SPATE_BENCH_CLIENT_SSL=1 "$bench_dir/build-client.sh" | tail -n 1)
log "client: $rp"
log "building spate (release) in $CARGO_TARGET_DIR"
(cd "$repo" && cargo build --release -p spate-cli)
spate=$CARGO_TARGET_DIR/release/spate
git_commit=$(git -C "$repo" rev-parse --short HEAD 2>/dev/null || echo unknown)
if [[ -n $(git -C "$repo" status --porcelain --untracked-files=no 2>/dev/null) ]]; then
    git_commit="$git_commit (with uncommitted changes)"
fi
if [[ $PERF == auto ]]; then
    if command -v perf >/dev/null && perf record -a -o /dev/null -- true >/dev/null 2>&1; then PERF=1; else PERF=0; fi
fi

# A CA and a server certificate for 127.0.0.1 and localhost signed by it (librdkafka checks
# the host name); RSA 2048, as most deployments.
openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=spate bench CA" \
    -keyout "$pki/ca.key" -out "$pki/ca.pem" 2>/dev/null
openssl req -newkey rsa:2048 -nodes -subj "/CN=localhost" \
    -keyout "$pki/server.key" -out "$pki/server.csr" 2>/dev/null
printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\n' >"$pki/san.ext"
openssl x509 -req -in "$pki/server.csr" -CA "$pki/ca.pem" -CAkey "$pki/ca.key" -CAcreateserial \
    -days 2 -extfile "$pki/san.ext" -out "$pki/server.pem" 2>/dev/null

# --- broker ----------------------------------------------------------------------------------

log_file=$out/broker.log
"$spate" serve --data-dir "$data_dir/spate" --kafka-listen 127.0.0.1:0 \
    --listener SECURE=SASL_SSL://127.0.0.1:0 --tls-cert "$pki/server.pem" --tls-key "$pki/server.key" \
    --sasl-mechanisms SCRAM-SHA-512 \
    --http-listen 127.0.0.1:0 --registry-listen 127.0.0.1:0 >"$out/broker.stdout" 2>>"$log_file" &
bpid=$!
line=
for ((i = 0; i < 1200; i++)); do
    line=$(sed 's/\x1b\[[0-9;]*m//g' "$log_file" | grep 'spate is ready' | tail -n 1 || true)
    [[ -n $line ]] && break
    kill -0 "$bpid" 2>/dev/null || { log "broker exited before it was ready:"; tail "$log_file"; exit 1; }
    sleep 0.1
done
[[ -n $line ]] || { log "broker not ready after 120 s"; tail "$log_file"; exit 1; }
plain_addr=$(grep -o 'kafka_addr=[^ ]*' <<<"$line" | cut -d= -f2)
secure_addr=$(grep -o 'SECURE:SASL_SSL://[^ ,]*' <<<"$line" | sed 's|.*://||')
log "broker pid $bpid: PLAINTEXT $plain_addr, SASL_SSL $secure_addr"

"$spate" user create "$USER_NAME" --password-stdin --mechanism SCRAM-SHA-512 \
    --brokers "$plain_addr" <<<"$USER_PASSWORD" >>"$out/admin.log" 2>&1 ||
    { log "creating the SCRAM user failed:"; tail "$out/admin.log"; exit 1; }
SECURE_ARGS=(-X security.protocol=SASL_SSL -X sasl.mechanisms=SCRAM-SHA-512
    -X "sasl.username=$USER_NAME" -X "sasl.password=$USER_PASSWORD" -X "ssl.ca.location=$pki/ca.pem")
tls_session=$(openssl s_client -connect "$secure_addr" -CAfile "$pki/ca.pem" -brief </dev/null 2>&1 |
    awk -F': ' '/^Protocol version/{p=$2} /^Ciphersuite/{c=$2} END {print p " " c}')
aes_speed=$(openssl speed -seconds 2 -bytes 16384 -evp aes-256-gcm 2>/dev/null |
    awk '/^AES-256-GCM/{v=$NF; sub(/k$/, "", v); printf "%.0f", v * 1000 / 1e6}')
log "TLS session: $tls_session; openssl speed aes-256-gcm, 16 KiB blocks, one core: ${aes_speed} MB/s"

broker_ticks() { awk '{print $14, $15}' "/proc/$bpid/stat"; }
create_topic() {
    "$spate" topic create --brokers "$plain_addr" --partitions 1 "$1" >>"$out/admin.log" 2>&1 ||
        { log "creating topic $1 failed:"; tail "$out/admin.log"; exit 1; }
}
delete_topic() { "$spate" topic delete --brokers "$plain_addr" "$1" >>"$out/admin.log" 2>&1 || true; }

printf 'protocol\tacks\trep\tok\tmb_s\tmsgs_s\twall_s\tbroker_user_s\tbroker_sys_s\tclient_cpu_s\tother_cpu_s\n' >"$runs"

# run PROTOCOL ACKS REP: one measured produce run into a new topic.
run() {
    local protocol=$1 acks=$2 rep=$3 addr extra=()
    local name=$protocol-acks${acks/#-1/all}-$rep
    local topic=bench-$name
    if [[ $protocol == SASL_SSL ]]; then addr=$secure_addr; extra=("${SECURE_ARGS[@]}"); else addr=$plain_addr; fi
    create_topic "$topic"
    wait_quiet "$name"
    local u0 s0 u1 s1 b0 b1 t0 t1 rc=0
    read -r u0 s0 < <(broker_ticks); b0=$(busy_ticks); t0=$(date +%s%N)
    /usr/bin/time -f '%U %S' -o "$out/$name.time" timeout "$CLIENT_TIMEOUT_S" \
        "$rp" -P -t "$topic" -p 0 -s 1024 -c "$MSGS" -a "$acks" "${PRODUCE_ARGS[@]}" "${extra[@]}" \
        -b "$addr" >"$out/$name.log" 2>&1 || rc=$?
    read -r u1 s1 < <(broker_ticks); b1=$(busy_ticks); t1=$(date +%s%N)
    local msgs bytes ms delivered failed ok=1
    read -r msgs bytes ms delivered failed < <(python3 "$bench_dir/report.py" parse-produce "$out/$name.log")
    ((delivered == MSGS && failed == 0)) || ok=0
    ((rc == 0 || rc == 1)) || ok=0 # exit 1: a librdkafka request still queued at the end (see run.sh)
    local client_cpu wall
    client_cpu=$(awk 'END {printf "%.2f", $1 + $2}' "$out/$name.time")
    wall=$(awk -v a="$t0" -v b="$t1" 'BEGIN {printf "%.2f", (b - a) / 1e9}')
    awk -v OFS='\t' -v p="$protocol" -v a="$acks" -v r="$rep" -v ok="$ok" -v b="$bytes" -v n="$delivered" \
        -v ms="$ms" -v w="$wall" -v u0="$u0" -v u1="$u1" -v s0="$s0" -v s1="$s1" -v hz="$hz" \
        -v c="$client_cpu" -v b0="$b0" -v b1="$b1" 'BEGIN {
            bu = (u1 - u0) / hz; bs = (s1 - s0) / hz; o = (b1 - b0) / hz - bu - bs - c
            print p, a, r, ok, (ms > 0 ? sprintf("%.1f", b / ms / 1000) : 0),
                (ms > 0 ? sprintf("%.0f", n * 1000 / ms) : 0), w, sprintf("%.2f", bu),
                sprintf("%.2f", bs), c, sprintf("%.2f", (o < 0 ? 0 : o)) }' >>"$runs"
    log "$name: $(tail -n 1 "$runs" | awk '{print $5 " MB/s, broker CPU s " $8 " user + " $9 " sys, client " $10 ", other " $11}')$( ((ok)) || echo " FAILED: delivered $delivered of $MSGS, exit $rc")"
    delete_topic "$topic"
}

for rep in $(seq "$REPS"); do
    for acks in -1 1; do
        run PLAINTEXT "$acks" "$rep"
        run SASL_SSL "$acks" "$rep"
    done
done

profile_txt=
if [[ $PERF == 1 ]]; then
    log "profiling one extra SASL_SSL acks=all run"
    create_topic bench-prof
    wait_quiet "the profile"
    perf record -a -F 499 -o "$out/perf.data" -- timeout "$CLIENT_TIMEOUT_S" \
        "$rp" -P -t bench-prof -p 0 -s 1024 -c "$MSGS" -a -1 "${PRODUCE_ARGS[@]}" "${SECURE_ARGS[@]}" \
        -b "$secure_addr" >"$out/perf-client.log" 2>&1 || true
    perf report -i "$out/perf.data" --stdio --sort comm >"$out/perf.comm.txt" 2>/dev/null || true
    perf report -i "$out/perf.data" --stdio --pid "$bpid" --percentage relative \
        --sort dso,sym >"$out/perf.broker.txt" 2>/dev/null || true
    # librdkafka does a broker connection's I/O, TLS included, on that broker's thread.
    perf report -i "$out/perf.data" --stdio --comm rdk:broker1 --percentage relative \
        --sort dso,sym >"$out/perf.client.txt" 2>/dev/null || true
    profile_txt=$out/profile.txt
    {
        echo "== CPU samples by thread name, whole machine (swapper = idle)"
        grep -v -e '^#' -e '^$' "$out/perf.comm.txt" | head -n 8 || true
        echo "== broker's hottest functions (share of the broker's samples)"
        grep -v -e '^#' -e '^$' "$out/perf.broker.txt" | head -n 20 || true
        echo "== client's broker thread (rdk:broker1): hottest functions (share of its samples)"
        grep -v -e '^#' -e '^$' "$out/perf.client.txt" | head -n 12 || true
    } >"$profile_txt"
    rm -f "$out/perf.data"
fi

kill -TERM "$bpid"
wait "$bpid" || true
bpid=

python3 - "$runs" "$results_md" <<EOF
import csv, statistics, sys
rows = list(csv.DictReader(open(sys.argv[1]), delimiter="\t"))
def med(protocol, acks, key):
    vals = [float(r[key]) for r in rows if r["protocol"] == protocol and r["acks"] == acks and r["ok"] == "1"]
    return statistics.median(vals) if vals else float("nan")
def each(protocol, acks):
    return ", ".join(r["mb_s"] for r in rows if r["protocol"] == protocol and r["acks"] == acks)
lines = [
    "# Security benchmark $timestamp",
    "",
    "- command: bench/security.sh (SPATE_BENCH_REPS=$REPS SPATE_BENCH_SEC_MSGS=$MSGS)",
    "- git commit: $git_commit; $("$spate" --version)",
    "- client: rdkafka_performance, librdkafka $(cat "$rp.version") with OpenSSL $(openssl version | awk '{print $2}')",
    "- machine: $(awk -F': ' '/^model name/{print $2; exit}' /proc/cpuinfo), $ncpu cores, $(uname -sr)",
    "- TLS session: $tls_session; openssl speed aes-256-gcm (16 KiB, one core): $aes_speed MB/s",
    "- produce: 1 partition, $MSGS x 1 KiB per run, ${PRODUCE_ARGS[*]}",
    "",
    "| acks | protocol | MB/s per run | median MB/s | vs PLAINTEXT | broker CPU s per GB (user+sys) | client CPU s per GB |",
    "|---|---|---|---|---|---|---|",
]
gb = $MSGS * 1024 / 1e9
for acks in ("-1", "1"):
    base = med("PLAINTEXT", acks, "mb_s")
    for protocol in ("PLAINTEXT", "SASL_SSL"):
        m = med(protocol, acks, "mb_s")
        cpu = (med(protocol, acks, "broker_user_s") + med(protocol, acks, "broker_sys_s")) / gb
        client = med(protocol, acks, "client_cpu_s") / gb
        name = "all" if acks == "-1" else acks
        lines.append(f"| {name} | {protocol} | {each(protocol, acks)} | {m:.0f} | {m / base:.0%} | {cpu:.2f} | {client:.2f} |")
notes = """$(printf '%s\n' "${notes[@]+"${notes[@]}"}")""".strip()
if notes:
    lines += ["", "Notes:", notes]
if "$profile_txt":
    lines += ["", "Profile of one extra SASL_SSL acks=all run:", "", "\`\`\`", open("$profile_txt").read().rstrip(), "\`\`\`"]
open(sys.argv[2], "w").write("\n".join(lines) + "\n")
print("\n".join(lines))
EOF
log "results: $results_md"
