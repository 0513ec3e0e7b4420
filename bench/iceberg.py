#!/usr/bin/env python3
"""The Iceberg sink's commit latency, measured (issue 11), for bench/iceberg.sh.

One private PostgreSQL 15 cluster (the JDBC catalog; tests/python/postgres.py, fsync on) and one
release `spate serve` with its in-process Connect worker; the warehouse is a local directory.
Records (JSON with Connect's schema envelope, ~250 bytes) are produced at RATE/s for SECONDS
while the sink commits every INTERVAL ms. A commit's latency is the sink's own measure, logged
at debug for each snapshot: from the start of the commit (finishing the Parquet file) through
writing the data file, manifest, manifest list and metadata file to the catalog's
compare-and-set, i.e. how long records wait beyond the commit interval before readers see them.

Prints a Markdown table and writes JSON lines to --out.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))
sys.path.insert(0, str(ROOT / "tests" / "python"))

from confluent_kafka import Producer  # noqa: E402

from cdc import rest, start_spate  # noqa: E402
from postgres import Postgres  # noqa: E402

SCHEMA = {"type": "struct", "name": "bench.Click", "optional": False, "fields": [
    {"field": "id", "type": "int64", "optional": False},
    {"field": "user", "type": "string", "optional": False},
    {"field": "page", "type": "string", "optional": False},
    {"field": "ms", "type": "int64", "optional": False}]}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--spate", required=True)
    parser.add_argument("--rate", type=int, default=5000)
    parser.add_argument("--seconds", type=int, default=60)
    parser.add_argument("--interval-ms", type=int, default=1000)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="spate-bench-iceberg-"))
    pg = Postgres(log_path=work / "postgres.log", settings={"fsync": "on"})
    pg.start()
    os.environ["SPATE_LOG"] = "info,spate_connect::connectors::iceberg=debug"
    proc, kafka, connect = start_spate(args.spate, work)
    results: list[dict] = []
    try:
        rest(connect, "POST", "/connectors", {"name": "clicks-lake", "config": {
            "connector.class": "org.apache.iceberg.connect.IcebergSinkConnector",
            "topics": "clicks", "iceberg.tables": "bench.clicks",
            "iceberg.tables.auto-create-enabled": "true",
            "iceberg.control.commit.interval-ms": str(args.interval_ms),
            "iceberg.catalog.catalog-impl": "org.apache.iceberg.jdbc.JdbcCatalog",
            "iceberg.catalog.uri": f"jdbc:postgresql://{pg.host}:{pg.port}/{pg.dbname}",
            "iceberg.catalog.jdbc.user": pg.user, "iceberg.catalog.jdbc.password": pg.password,
            "iceberg.catalog.warehouse": f"file://{work}/warehouse",
            "value.converter": "org.apache.kafka.connect.json.JsonConverter"}})
        producer = Producer({"bootstrap.servers": kafka, "linger.ms": 5})
        total = args.rate * args.seconds
        started = time.monotonic()
        for i in range(total):
            due = started + i / args.rate
            if (delay := due - time.monotonic()) > 0:
                time.sleep(delay)
            producer.produce("clicks", json.dumps({"schema": SCHEMA, "payload": {
                "id": i, "user": f"user-{i % 1000}", "page": f"/products/{i % 5000}",
                "ms": int(time.time() * 1000)}}).encode())
            producer.poll(0)
        assert producer.flush(60) == 0
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            offsets = rest(connect, "GET", "/connectors/clicks-lake/offsets")["offsets"]
            if sum(o["offset"]["kafka_offset"] for o in offsets) >= total:
                break
            time.sleep(0.2)
        else:
            raise SystemExit("the sink did not commit every record")
        log = (work / "serve.log").read_text()
        commits = [int(m.group(1)) for m in re.finditer(
            r"committed a snapshot.*?millis=(\d+)", log)]
        records = sum(int(m.group(1)) for m in re.finditer(
            r"committed a snapshot.*?records=(\d+)", log))
        commits.sort()
        results.append({
            "bench": "iceberg-commit", "rate": args.rate, "seconds": args.seconds,
            "interval_ms": args.interval_ms, "records": records, "snapshots": len(commits),
            "commit_p50_ms": statistics.median(commits),
            "commit_p99_ms": commits[min(len(commits) - 1, int(len(commits) * 0.99))],
            "commit_max_ms": commits[-1]})
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(60)
        pg.cleanup()
        shutil.rmtree(work, ignore_errors=True)
    with open(args.out, "a") as f:
        for r in results:
            f.write(json.dumps(r) + "\n")
    for r in results:
        print(json.dumps(r))


if __name__ == "__main__":
    main()
