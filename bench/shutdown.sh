#!/usr/bin/env bash
# How long `spate serve` takes to stop cleanly (SIGTERM) and to start again, with many topics
# (issue 10: ~700 topics took 4 to 50 s to stop). Run by hand, not in CI:
#
#   bench/shutdown.sh                       builds spate (release) and measures it
#   SPATE_BENCH_BIN=path bench/shutdown.sh  measures that binary
#
# With SPATE_BENCH_TOPICS (700) one-partition topics: stop with nothing written since a clean
# start, stop after one record to each topic, and the clean start that follows each. Times are
# from the signal to the process's exit, and from exec to the "spate is ready" line. Needs the
# test venv (confluent-kafka) at $SPATE_VENV (default ~/.cache/spate/venv).
set -euo pipefail

bench_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$bench_dir/.." && pwd)
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/spate/target}
TOPICS=${SPATE_BENCH_TOPICS:-700}
REPS=${SPATE_BENCH_REPS:-3}
QUIET_WAIT_S=${SPATE_BENCH_QUIET_WAIT_S:-1800}
venv=${SPATE_VENV:-$HOME/.cache/spate/venv}
log() { printf '[shutdown %(%H:%M:%S)T] %s\n' -1 "$*"; }
note() { log "note: $*"; }
# shellcheck source=bench/lib.sh
source "$bench_dir/lib.sh"

if [[ -n ${SPATE_BENCH_BIN:-} ]]; then
    spate=$SPATE_BENCH_BIN
else
    (cd "$repo" && cargo build --release -p spate-cli)
    spate=$CARGO_TARGET_DIR/release/spate
fi
data=$(mktemp -d "${TMPDIR:-/tmp}/spate-shutdown.XXXXXX")
logf=$data.log
trap 'pkill -KILL -f -- "--data-dir $data " 2>/dev/null || true; rm -rf "$data" "$logf"' EXIT

now() { date +%s.%N; }
# Both set `elapsed` (not printed: the server must stay this shell's child).
start() { # seconds from exec to the ready line
    : >"$logf"
    local t0
    t0=$(now)
    "$spate" serve --data-dir "$data" --kafka-listen 127.0.0.1:19199 --http-listen 127.0.0.1:0 \
        --registry-listen 127.0.0.1:0 >"$logf" 2>&1 &
    pid=$!
    until grep -q "spate is ready" "$logf"; do
        kill -0 "$pid" 2>/dev/null || { cat "$logf"; exit 1; }
        sleep 0.01
    done
    elapsed=$(echo "$(now) - $t0" | bc)
}
stop() { # seconds from SIGTERM to exit
    local t0 code
    t0=$(now)
    kill -TERM "$pid"
    code=0; wait "$pid" || code=$?
    [[ $code -eq 0 ]] || { echo "spate exited with $code" >&2; cat "$logf" >&2; exit 1; }
    elapsed=$(echo "$(now) - $t0" | bc)
}
python_run() { "$venv/bin/python" -c "$1" 127.0.0.1:19199 "$TOPICS"; }

log "$spate: $("$spate" --version)"
start
python_run '
import sys
from confluent_kafka.admin import AdminClient, NewTopic
a = AdminClient({"bootstrap.servers": sys.argv[1]})
fs = a.create_topics([NewTopic(f"t{i}", 1, 1) for i in range(int(sys.argv[2]))], request_timeout=300)
for f in fs.values(): f.result()'
stop
log "$TOPICS topics created"

printf '| run | clean start to ready (s) | stop, untouched (s) | stop after a write to every topic (s) |\n|---|---|---|---|\n'
for rep in $(seq 1 "$REPS"); do
    wait_quiet "shutdown rep $rep"
    start; up=$elapsed
    stop; untouched=$elapsed
    start
    python_run '
import sys
from confluent_kafka import Producer
p = Producer({"bootstrap.servers": sys.argv[1], "linger.ms": 5})
for i in range(int(sys.argv[2])): p.produce(f"t{i}", b"x")
assert p.flush(60) == 0'
    stop; written=$elapsed
    printf '| %s | %.3f | %.3f | %.3f |\n' "$rep" "$up" "$untouched" "$written"
done
