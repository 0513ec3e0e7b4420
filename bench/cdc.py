#!/usr/bin/env python3
"""PostgreSQL change data capture, measured (issue 11), for bench/cdc.sh.

One private PostgreSQL 15 cluster (tests/python/postgres.py: Debian's server, fsync on, as a
user runs it) and one release `spate serve` with its in-process Connect worker; the connector is
created with Debezium's tutorial config over the REST API; events are read with confluent-kafka.

1. Bulk load: one INSERT ... SELECT generate_series of ROWS rows in one transaction. Spate: from
   the commit to the last event consumed (decode, convert to JSON, produce acks=all, consume).
   PostgreSQL's own decoding of the same changes: `pg_recvlogical` with pgoutput on a second slot
   made before the load, from the start to --endpos at the load's commit, written to /dev/null.
2. pgbench: `pgbench -T S` (TPC-B-like: 3 updates and an insert per transaction) with the four
   tables captured; row changes/s is the events consumed over the time from pgbench's start to
   the last event.
3. Latency at RATE rows/s: one row per transaction, each carrying the client's clock just before
   its COMMIT; p50/p99 of (consumed - committed) over DURATION seconds.

Prints a Markdown table and writes JSON lines to --out.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests" / "python"))

from confluent_kafka import Consumer  # noqa: E402

from postgres import PG_BINDIR, Postgres  # noqa: E402


def start_spate(binary: str, work: Path,
                worker_config: str | None = None) -> tuple[subprocess.Popen, str, str]:
    log = open(work / "serve.log", "w")
    extra = ["--connect-worker-config", worker_config] if worker_config else []
    proc = subprocess.Popen(
        [binary, "serve", "--data-dir", str(work / "data"), "--kafka-listen", "127.0.0.1:0",
         "--http-listen", "127.0.0.1:0", "--registry-listen", "127.0.0.1:0",
         "--connect-listen", "127.0.0.1:0", *extra],
        stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 60
    kafka = connect = ""
    while time.monotonic() < deadline and not (kafka and connect):
        text = (work / "serve.log").read_text()
        m = re.search(r"kafka_addr=([0-9.:]+)", text)
        kafka = m.group(1) if m else ""
        m = re.search(r"connect worker is ready.*?connect_addr=([0-9.:]+)", text)
        connect = m.group(1) if m else ""
        time.sleep(0.05)
    if not (kafka and connect):
        raise SystemExit("spate serve did not start:\n" + (work / "serve.log").read_text()[-3000:])
    return proc, kafka, connect


def rest(connect: str, method: str, path: str, body: object | None = None) -> object:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(f"http://{connect}{path}", data=data, method=method,
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=60) as response:
        text = response.read()
        return json.loads(text) if text else None


# Partitions of each table's topic (`--partitions`): Debezium's configs set them through KIP-158's
# topic.creation.default.partitions; 0 leaves the topics to the broker's auto-creation (one).
PARTITIONS = 0


def connector(pg: Postgres, name: str, tables: str) -> dict:
    creation = {"topic.creation.default.partitions": str(PARTITIONS),
                "topic.creation.default.replication.factor": "-1"} if PARTITIONS else {}
    return {"name": name, "config": {**creation,
        "connector.class": "io.debezium.connector.postgresql.PostgresConnector",
        "database.hostname": pg.host, "database.port": str(pg.port),
        "database.user": pg.user, "database.password": pg.password,
        "database.dbname": pg.dbname, "topic.prefix": name, "plugin.name": "pgoutput",
        "slot.name": name, "publication.name": name,
        "publication.autocreate.mode": "filtered", "table.include.list": tables,
        "snapshot.mode": "no_data"}}


def wait_streaming(pg: Postgres, slot: str) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        rows = pg.sql("SELECT active FROM pg_replication_slots WHERE slot_name = %s", (slot,))
        if rows and rows[0][0]:
            return
        time.sleep(0.05)
    raise SystemExit(f"slot {slot} never became active")


def consumer(kafka: str, topics: list[str]) -> Consumer:
    c = Consumer({"bootstrap.servers": kafka, "group.id": f"bench-{time.monotonic_ns()}",
                  "auto.offset.reset": "earliest", "enable.auto.commit": False,
                  "fetch.wait.max.ms": 10,
                  # Topics a connector has not written yet are looked for again every second,
                  # not every 5 minutes (librdkafka's default): a subscription made before the
                  # first change would otherwise wait that long for its topics.
                  "topic.metadata.refresh.interval.ms": 1000})
    c.subscribe(topics)
    return c


def count_until(c: Consumer, n: int, timeout_s: float) -> tuple[int, float]:
    """Consumes until n records (tombstones included) or the timeout; (count, time of last)."""
    got, last = 0, time.monotonic()
    deadline = time.monotonic() + timeout_s
    while got < n and time.monotonic() < deadline:
        for m in c.consume(10000, 0.2):
            if m.error() is None:
                got += 1
                last = time.monotonic()
    return got, last


def bulk(pg: Postgres, kafka: str, connect: str, rows: int, out: list[dict]) -> None:
    pg.sql("CREATE SCHEMA IF NOT EXISTS bench; CREATE TABLE bench.bulk (id int PRIMARY KEY, "
           "name text NOT NULL, amount numeric(12,2), at timestamptz NOT NULL)")
    rest(connect, "POST", "/connectors", connector(pg, "bulk", "bench.bulk"))
    wait_streaming(pg, "bulk")
    # PostgreSQL's own decoding of the same changes: a second slot, read after the load.
    pg.sql("SELECT pg_create_logical_replication_slot('recv', 'pgoutput')")
    c = consumer(kafka, ["bulk.bench.bulk"])
    with pg.connect() as conn:
        conn.execute("INSERT INTO bench.bulk SELECT i, 'customer ' || i, i * 1.25, now() "
                     "FROM generate_series(1, %s) i", (rows,))
        conn.commit()
        committed = time.monotonic()
        end_lsn = conn.execute("SELECT pg_current_wal_insert_lsn()").fetchone()[0]
    got, last = count_until(c, rows, 600)
    c.close()
    spate_s = last - committed
    env = dict(os.environ, PGPASSWORD=pg.password)
    cmd = [str(PG_BINDIR / "pg_recvlogical"), "-h", pg.host, "-p", str(pg.port), "-U", pg.user,
           "-d", pg.dbname, "--slot", "recv", "--start", "--endpos", str(end_lsn),
           "-o", "proto_version=1", "-o", "publication_names=bulk", "-f", "/dev/null",
           "--no-loop"]
    start = time.monotonic()
    subprocess.run(cmd, env=env, check=True)
    recv_s = time.monotonic() - start
    pg.sql("SELECT pg_drop_replication_slot('recv')")
    rest(connect, "DELETE", "/connectors/bulk")
    out.append({"test": "bulk", "rows": rows, "consumed": got, "spate_s": spate_s,
                "spate_rows_s": got / spate_s, "pg_recvlogical_s": recv_s,
                "pg_recvlogical_rows_s": rows / recv_s})


def pgbench(pg: Postgres, kafka: str, connect: str, seconds: int, out: list[dict]) -> None:
    env = dict(os.environ, PGPASSWORD=pg.password)
    base = [str(PG_BINDIR / "pgbench"), "-h", pg.host, "-p", str(pg.port), "-U", pg.user]
    subprocess.run(base + ["-i", "-s", "1", "-q", pg.dbname], env=env, check=True,
                   capture_output=True)
    tables = "public.pgbench_accounts,public.pgbench_branches,public.pgbench_tellers,public.pgbench_history"
    rest(connect, "POST", "/connectors", connector(pg, "pgb", tables))
    wait_streaming(pg, "pgb")
    c = consumer(kafka, [f"pgb.public.pgbench_{t}" for t in ("accounts", "branches", "tellers", "history")])
    start = time.monotonic()
    run = subprocess.run(base + ["-T", str(seconds), "-c", "4", "-j", "2", pg.dbname], env=env,
                         check=True, capture_output=True, text=True)
    tx = int(re.search(r"number of transactions actually processed: (\d+)", run.stdout).group(1))
    got, last = count_until(c, tx * 4, 600)
    c.close()
    rest(connect, "DELETE", "/connectors/pgb")
    out.append({"test": "pgbench", "transactions": tx, "row_changes": tx * 4, "consumed": got,
                "seconds": last - start, "rows_s": got / (last - start)})


def latency(pg: Postgres, kafka: str, connect: str, rate: int, seconds: int, out: list[dict]) -> None:
    pg.sql("CREATE SCHEMA IF NOT EXISTS bench; CREATE TABLE bench.lat (id int PRIMARY KEY, sent_ns bigint NOT NULL)")
    rest(connect, "POST", "/connectors", connector(pg, "lat", "bench.lat"))
    wait_streaming(pg, "lat")
    c = consumer(kafka, ["lat.bench.lat"])
    # A first row, consumed before the clock starts: the topic exists and the consumer has
    # joined its group and been assigned (a join takes seconds; it is not CDC's latency).
    pg.sql("INSERT INTO bench.lat VALUES (-1, 0)")
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        m = c.poll(0.5)
        if m is not None and m.error() is None:
            break
    else:
        raise SystemExit("the warm-up row never arrived")
    n = rate * seconds
    lat_ms: list[float] = []
    done = threading.Event()

    def read() -> None:
        # poll(), not consume(n, timeout): consume waits for n records or the whole timeout,
        # which would add up to the timeout to every record's latency.
        while len(lat_ms) < n and not done.is_set():
            m = c.poll(0.1)
            if m is not None and m.error() is None and m.value():
                now = time.time_ns()
                after = json.loads(m.value())["payload"]["after"]
                lat_ms.append((now - after["sent_ns"]) / 1e6)

    reader = threading.Thread(target=read)
    reader.start()
    with pg.connect() as conn:
        start = time.monotonic()
        for i in range(n):
            due = start + i / rate
            delay = due - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            conn.execute("INSERT INTO bench.lat VALUES (%s, %s)", (i, time.time_ns()))
            conn.commit()
        achieved = n / (time.monotonic() - start)
    deadline = time.monotonic() + 60
    while len(lat_ms) < n and time.monotonic() < deadline:
        time.sleep(0.1)
    done.set()
    reader.join()
    c.close()
    rest(connect, "DELETE", "/connectors/lat")
    lat_ms.sort()
    pick = lambda q: lat_ms[min(len(lat_ms) - 1, int(q * len(lat_ms)))]  # noqa: E731
    out.append({"test": "latency", "rate": rate, "achieved_rate": achieved, "rows": n,
                "consumed": len(lat_ms), "p50_ms": pick(0.50), "p99_ms": pick(0.99),
                "max_ms": lat_ms[-1] if lat_ms else None})


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--spate", required=True)
    parser.add_argument("--rows", type=int, default=500_000)
    parser.add_argument("--pgbench-seconds", type=int, default=20)
    parser.add_argument("--rate", type=int, default=1000)
    parser.add_argument("--seconds", type=int, default=30)
    parser.add_argument("--out", required=True)
    parser.add_argument("--only", choices=["bulk", "pgbench", "latency"], help="run one part")
    parser.add_argument("--perf", help="record `perf record -g` of spate during the run into this file")
    parser.add_argument("--worker-config",
                        help="the in-process Connect worker's properties file (producer.* tuning)")
    parser.add_argument("--partitions", type=int, default=0,
                        help="partitions per table topic, through topic.creation (default: the broker's one)")
    args = parser.parse_args()
    global PARTITIONS
    PARTITIONS = args.partitions
    work = Path(tempfile.mkdtemp(prefix="spate-bench-cdc-"))
    pg = Postgres(log_path=work / "postgres.log",
                  settings={"fsync": "on", "synchronous_commit": "on", "max_wal_size": "4GB"})
    pg.start()
    proc, kafka, connect = start_spate(args.spate, work, args.worker_config)
    results: list[dict] = []
    perf = None
    if args.perf:
        perf = subprocess.Popen(["perf", "record", "-F", "499", "-g", "-a", "-o", args.perf],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        if args.only in (None, "bulk"):
            bulk(pg, kafka, connect, args.rows, results)
        if args.only in (None, "pgbench"):
            pgbench(pg, kafka, connect, args.pgbench_seconds, results)
        if args.only in (None, "latency"):
            latency(pg, kafka, connect, args.rate, args.seconds, results)
    finally:
        if perf is not None:
            perf.send_signal(signal.SIGINT)
            perf.wait(60)
        proc.send_signal(signal.SIGTERM)
        proc.wait(60)
        pg.cleanup()
    for r in results:
        r["partitions"] = PARTITIONS or 1
    with open(args.out, "a") as f:
        for r in results:
            f.write(json.dumps(r) + "\n")
    for r in results:
        print(json.dumps(r))


if __name__ == "__main__":
    main()
