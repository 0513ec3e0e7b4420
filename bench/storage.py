#!/usr/bin/env python3
"""The object storage sink, measured (issue 11), for bench/storage.sh.

One release `spate serve` with its in-process Connect worker. A topic is filled with RECORDS
Avro records of about 1 KB (Confluent's wire format against Spate's registry: an order with a
~700-byte description, a tag array and a nested address), then one S3 sink per format reads it
from the start, with AvroConverter, into a local directory (`store.url=file://...`: the sink,
not a network, is measured). Throughput is the topic's bytes (keys and values) over the time
from the first file written to the last: records consumed, converted and written as files of
`flush.size` records at the task's steady rate (the task's start and the consumer group's join
before the first file, and the offset commit after the last, which waits for
`offset.flush.interval.ms`, are not timed).

The ceiling it is compared with, in the same run: ByteArrayFormat with ByteArrayConverter
(consume and write the raw bytes, no conversion).

Prints a Markdown table and writes JSON lines to --out.
"""

from __future__ import annotations

import argparse
import io
import json
import shutil
import signal
import struct
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))

import fastavro  # noqa: E402
from confluent_kafka import Producer  # noqa: E402
from confluent_kafka.schema_registry import Schema, SchemaRegistryClient  # noqa: E402

from cdc import rest, start_spate  # noqa: E402

SCHEMA = {
    "type": "record", "name": "Order", "namespace": "bench", "fields": [
        {"name": "id", "type": "long"},
        {"name": "customer", "type": "string"},
        {"name": "amount", "type": "double"},
        {"name": "at", "type": {"type": "long", "logicalType": "timestamp-millis"}},
        {"name": "tags", "type": {"type": "array", "items": "string"}},
        {"name": "description", "type": "string"},
        {"name": "address", "type": ["null", {"type": "record", "name": "Address", "fields": [
            {"name": "city", "type": "string"}, {"name": "zip", "type": ["null", "int"]}]}]},
    ]}
WORDS = ("stream connect process govern broker partition offset schema registry topic "
         "consumer producer durable replicated compacted").split()


def fill(kafka: str, registry: str, topic: str, records: int) -> int:
    """Produces the records; returns the bytes of keys and values."""
    sr = SchemaRegistryClient({"url": f"http://{registry}"})
    schema_id = sr.register_schema(f"{topic}-value", Schema(json.dumps(SCHEMA), "AVRO"))
    parsed = fastavro.parse_schema(SCHEMA)
    header = struct.pack(">bI", 0, schema_id)
    producer = Producer({"bootstrap.servers": kafka, "linger.ms": 20, "batch.size": 1_000_000,
                         "compression.type": "lz4", "queue.buffering.max.messages": 500_000})
    total = 0
    for i in range(records):
        description = " ".join(WORDS[(i + n) % len(WORDS)] for n in range(90))
        value = {"id": i, "customer": f"customer-{i % 5000}", "amount": i * 0.25,
                 "at": 1_714_557_600_000 + i, "tags": [WORDS[i % 7], WORDS[i % 11]],
                 "description": description,
                 "address": None if i % 10 == 0 else {"city": "Oslo", "zip": i % 9000}}
        buf = io.BytesIO()
        buf.write(header)
        fastavro.schemaless_writer(buf, parsed, value)
        key = str(i).encode()
        data = buf.getvalue()
        total += len(key) + len(data)
        while True:
            try:
                producer.produce(topic, key=key, value=data)
                break
            except BufferError:
                producer.poll(0.05)
    assert producer.flush(120) == 0
    return total


def committed(connect: str, name: str) -> int:
    answer = rest(connect, "GET", f"/connectors/{name}/offsets")
    return sum(o["offset"]["kafka_offset"] for o in answer["offsets"])


def run_sink(connect: str, registry: str, topic: str, fmt: str, out_dir: Path, records: int,
             flush_size: int) -> float:
    name = f"bench-{fmt}"
    converter = ({"value.converter": "org.apache.kafka.connect.converters.ByteArrayConverter"}
                 if fmt == "bytearray" else
                 {"value.converter": "io.confluent.connect.avro.AvroConverter",
                  "value.converter.schema.registry.url": f"http://{registry}"})
    config = {
        "connector.class": "io.confluent.connect.s3.S3SinkConnector", "topics": topic,
        "tasks.max": "1", "s3.bucket.name": "bench", "store.url": f"file://{out_dir / fmt}",
        "flush.size": str(flush_size),
        "format.class": {
            "json": "io.confluent.connect.s3.format.json.JsonFormat",
            "parquet": "io.confluent.connect.s3.format.parquet.ParquetFormat",
            "avro": "io.confluent.connect.s3.format.avro.AvroFormat",
            "bytearray": "io.confluent.connect.s3.format.bytearray.ByteArrayFormat",
        }[fmt],
        "key.converter": "org.apache.kafka.connect.storage.StringConverter", **converter}
    started = time.monotonic()
    rest(connect, "POST", "/connectors", {"name": name, "config": config})
    # Timed to the last file written (object_store's local store writes a file under a
    # `#`-suffixed name and renames it); the offset commit after them waits for offset.flush.interval.ms (10 s in
    # `spate serve`), which is not the sink's speed.
    files = records // flush_size
    deadline = started + 1800
    first = None
    while time.monotonic() < deadline:
        done = sum(1 for p in (out_dir / fmt).rglob("*") if p.is_file() and "#" not in p.name) \
            if (out_dir / fmt).exists() else 0
        if done and first is None:
            first = time.monotonic()
        if done >= files:
            break
        time.sleep(0.01)
    else:
        raise SystemExit(f"{name} did not write {files} files in time")
    # From the first file to the last: the task's steady rate, without its start and the
    # consumer group's join (a second or more, most of a short run).
    elapsed = time.monotonic() - first
    while time.monotonic() < deadline and committed(connect, name) < records:
        time.sleep(0.2)
    rest(connect, "DELETE", f"/connectors/{name}")
    shutil.rmtree(out_dir / fmt, ignore_errors=True)
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--spate", required=True)
    parser.add_argument("--records", type=int, default=600_000)
    parser.add_argument("--flush-size", type=int, default=10_000)
    parser.add_argument("--formats", default="bytearray,json,avro,parquet")
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="spate-bench-storage-"))
    proc, kafka, connect = start_spate(args.spate, work)
    log = (work / "serve.log").read_text()
    registry = log.split("registry_addr=")[1].split()[0]
    results: list[dict] = []
    try:
        # The flush size must divide the record count for the last offset to be committed.
        records = args.records - args.records % args.flush_size
        topic_bytes = fill(kafka, registry, "orders", records)
        for fmt in args.formats.split(","):
            seconds = run_sink(connect, registry, "orders", fmt, work / "out", records,
                               args.flush_size)
            # The rate over the files after the first.
            timed = records - args.flush_size
            timed_bytes = topic_bytes * timed / records
            results.append({"bench": "s3-sink", "format": fmt, "records": timed,
                            "bytes": round(timed_bytes), "seconds": round(seconds, 2),
                            "records_per_s": round(timed / seconds),
                            "mb_per_s": round(timed_bytes / seconds / 1e6, 1)})
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(60)
        shutil.rmtree(work, ignore_errors=True)
    with open(args.out, "a") as f:
        for r in results:
            f.write(json.dumps(r) + "\n")
    print("| format | records | MB | seconds | records/s | MB/s |")
    print("|---|---|---|---|---|---|")
    for r in results:
        print(f"| {r['format']} | {r['records']} | {r['bytes'] / 1e6:.0f} | {r['seconds']} | "
              f"{r['records_per_s']} | {r['mb_per_s']} |")


if __name__ == "__main__":
    main()
