"""The object storage sink end to end: Confluent's S3 sink config, run by a `spate connect
worker`, writing to moto's S3 server (from PyPI) through a relay the test can cut; the files
read back with the readers people use (json, fastavro, pyarrow)."""

from __future__ import annotations

import io
import json

import fastavro
import pyarrow.parquet as pq
import pytest
from confluent_kafka import Producer

from helpers import wait_until
from s3 import CREDENTIALS, REGION, S3Server
from test_connect import broker, worker  # noqa: F401  (the fixtures)

S3_SINK = "io.confluent.connect.s3.S3SinkConnector"
FORMATS = {
    "json": "io.confluent.connect.s3.format.json.JsonFormat",
    "avro": "io.confluent.connect.s3.format.avro.AvroFormat",
    "parquet": "io.confluent.connect.s3.format.parquet.ParquetFormat",
}
ORDER_SCHEMA = {
    "type": "struct", "name": "com.example.Order", "optional": False, "fields": [
        {"field": "id", "type": "int64", "optional": False},
        {"field": "customer", "type": "string", "optional": False},
        {"field": "note", "type": "string", "optional": True},
        {"field": "items", "type": "array", "optional": False,
         "items": {"type": "string", "optional": False}},
        {"field": "address", "type": "struct", "optional": True, "fields": [
            {"field": "city", "type": "string", "optional": False},
            {"field": "zip", "type": "int32", "optional": True}]},
    ]}


@pytest.fixture
def s3():
    server = S3Server()
    yield server
    server.stop()


def order(i: int) -> dict:
    return {"id": i, "customer": f"c{i % 3}", "note": None if i % 2 else f"note {i}",
            "items": [f"sku-{i}-{n}" for n in range(i % 3)],
            "address": None if i % 4 == 3 else {"city": "Oslo", "zip": None if i % 2 else 150 + i}}


def produce_orders(brokers: str, topic: str, ids: range, with_schema: bool = True) -> None:
    producer = Producer({"bootstrap.servers": brokers})
    for i in ids:
        value = {"schema": ORDER_SCHEMA, "payload": order(i)} if with_schema else order(i)
        producer.produce(topic, key=str(i).encode(), value=json.dumps(value).encode())
    assert producer.flush(30) == 0


def sink_config(s3: S3Server, bucket: str, topic: str, fmt: str, **extra: str) -> dict:
    return {
        "connector.class": S3_SINK, "topics": topic, "tasks.max": "1",
        "s3.bucket.name": bucket, "s3.region": REGION, "store.url": s3.url,
        "aws.access.key.id": CREDENTIALS["aws_access_key_id"],
        "aws.secret.access.key": CREDENTIALS["aws_secret_access_key"],
        "storage.class": "io.confluent.connect.s3.storage.S3Storage",
        "format.class": FORMATS[fmt], "flush.size": "4",
        "key.converter": "org.apache.kafka.connect.storage.StringConverter",
        "value.converter": "org.apache.kafka.connect.json.JsonConverter",
        "value.converter.schemas.enable": "true",
        **extra,
    }


def committed(w, name: str) -> int | None:
    code, answer = w.call("GET", f"/connectors/{name}/offsets")
    if code != 200 or not answer["offsets"]:
        return None
    return answer["offsets"][0]["offset"]["kafka_offset"]


def task_state(w, name: str) -> dict:
    code, status = w.call("GET", f"/connectors/{name}/status")
    assert code == 200, status
    return status["tasks"][0] if status["tasks"] else {}


def test_s3_sink_writes_json_avro_and_parquet_under_confluents_object_names(broker, worker, s3):  # noqa: F811
    w = worker()
    s3.create_bucket("lake")
    produce_orders(broker.kafka_addr, "orders", range(10))
    extensions = {"json": ".json", "avro": ".avro", "parquet": ".snappy.parquet"}
    for fmt in FORMATS:
        code, created = w.call("POST", "/connectors", {"name": f"to-{fmt}", "config": sink_config(
            s3, "lake", "orders", fmt, **{"topics.dir": f"{fmt}-topics", "avro.codec": "snappy"})})
        assert code == 201, created

    # Ten records, flush.size 4: two files of four, named by their first offset; the last two
    # wait for the next file, and the committed offset stops before them.
    for fmt, ext in extensions.items():
        expected = [f"{fmt}-topics/orders/partition=0/orders+0+{o:010d}{ext}" for o in (0, 4)]
        wait_until(lambda: s3.keys("lake", f"{fmt}-topics/") == expected, timeout_s=60,
                   what=f"two {fmt} files")
        wait_until(lambda: committed(w, f"to-{fmt}") == 8, timeout_s=60,
                   what=f"to-{fmt}'s offset committed after its files")

    def read(fmt: str, key: str) -> list[dict]:
        data = s3.get("lake", key)
        if fmt == "json":
            return [json.loads(line) for line in data.decode().splitlines()]
        if fmt == "avro":
            reader = fastavro.reader(io.BytesIO(data))
            assert reader.codec == "snappy"
            return list(reader)
        return pq.read_table(io.BytesIO(data)).to_pylist()

    for fmt, ext in extensions.items():
        records = []
        for key in s3.keys("lake", f"{fmt}-topics/"):
            records += read(fmt, key)
        assert records == [order(i) for i in range(8)], fmt
    table = pq.read_table(io.BytesIO(s3.get(
        "lake", "parquet-topics/orders/partition=0/orders+0+0000000000.snappy.parquet")))
    assert str(table.schema.field("items").type) == "list<element: string not null>"
    assert table.schema.field("address").type.num_fields == 2

    # Two more: the third file.
    produce_orders(broker.kafka_addr, "orders", range(10, 12))
    for fmt, ext in extensions.items():
        wait_until(lambda: f"{fmt}-topics/orders/partition=0/orders+0+0000000008{ext}"
                   in s3.keys("lake", f"{fmt}-topics/"), timeout_s=60, what=f"the third {fmt} file")
        wait_until(lambda: committed(w, f"to-{fmt}") == 12, timeout_s=60, what="offset 12")


def test_s3_down_then_back_and_a_killed_worker_lose_nothing_and_write_nothing_twice(broker, worker, s3):  # noqa: F811
    s3.create_bucket("events")
    # A short max.poll.interval.ms, which the outage below outlasts: the worker keeps polling
    # (its partitions paused) while it retries, so it stays in its group, as Kafka Connect's.
    w = worker("--set", "consumer.max.poll.interval.ms=6000",
               "--set", "consumer.session.timeout.ms=6000")
    w.allowed.append("put failed")
    config = sink_config(s3, "events", "clicks", "json", **{
        "flush.size": "5", "s3.part.retries": "1", "s3.retry.backoff.ms": "50",
        "errors.retry.delay.max.ms": "500"})
    assert w.call("POST", "/connectors", {"name": "clicks-s3", "config": config})[0] == 201
    produce_orders(broker.kafka_addr, "clicks", range(10))
    wait_until(lambda: committed(w, "clicks-s3") == 10, timeout_s=60, what="two files committed")

    # The store goes away: the task keeps its records, retries, stays RUNNING, commits nothing.
    s3.relay.cut()
    produce_orders(broker.kafka_addr, "clicks", range(10, 20))
    # Retries 0.5 s apart at most: twenty of them outlast max.poll.interval.ms.
    wait_until(lambda: sum("put failed and will be retried" in line for line in w.lines) >= 20,
               timeout_s=60, what="failed writes retried for longer than max.poll.interval.ms")
    assert not [line for line in w.lines if "poll interval" in line], "the worker stopped polling"
    assert task_state(w, "clicks-s3")["state"] == "RUNNING"
    assert committed(w, "clicks-s3") == 10
    assert len(s3.keys("events")) == 2

    # Back: the files are written, then their offsets committed.
    s3.relay.restore()
    wait_until(lambda: committed(w, "clicks-s3") == 20, timeout_s=90, what="the files after the outage")

    # kill -9 with a file half full; another worker reads again from the last commit.
    produce_orders(broker.kafka_addr, "clicks", range(20, 23))
    wait_until(lambda: committed(w, "clicks-s3") == 20 and task_state(w, "clicks-s3")["state"] == "RUNNING",
               what="the worker running")
    w.kill()
    produce_orders(broker.kafka_addr, "clicks", range(23, 30))
    w2 = worker()
    wait_until(lambda: committed(w2, "clicks-s3") == 30, timeout_s=90, what="all 30 committed")

    keys = s3.keys("events")
    assert keys == [f"topics/clicks/partition=0/clicks+0+{o:010d}.json" for o in range(0, 30, 5)]
    ids = [json.loads(line)["id"] for key in keys for line in s3.get("events", key).decode().splitlines()]
    assert ids == list(range(30)), "every record once, in order"


def test_bad_s3_configs_get_400_naming_each_field_and_bad_records_fail_the_task_saying_where(broker, worker, s3):  # noqa: F811
    w = worker()
    w.allowed.append("task failed: the Parquet format needs records with a value schema")
    s3.create_bucket("lake")
    bad = sink_config(s3, "lake", "orders", "json", **{
        "flush.size": "0", "format.class": "io.confluent.connect.s3.format.csv.CsvFormat",
        "partitioner.class": "io.confluent.connect.storage.partitioner.TimeBasedPartitioner",
        "timezone": "Mars/Olympus", "store.url": "ftp://example"})
    code, error = w.call("POST", "/connectors", {"name": "bad", "config": bad})
    assert code == 400, error
    for field in ("flush.size", "format.class", "timezone", "path.format", "partition.duration.ms",
                  "store.url"):
        assert field in error["message"], (field, error["message"])
    assert w.call("GET", "/connectors") == (200, [])
    code, validated = w.call("PUT", f"/connector-plugins/{S3_SINK}/config/validate",
                             {"name": "bad", **bad})
    assert code == 200
    named = {c["definition"]["name"] for c in validated["configs"] if c["value"]["errors"]}
    assert {"flush.size", "format.class", "timezone", "store.url"} <= named, named

    # Schemaless JSON cannot be Parquet: the task fails naming the record.
    produce_orders(broker.kafka_addr, "loose", range(3), with_schema=False)
    assert w.call("POST", "/connectors", {"name": "loose", "config": sink_config(
        s3, "lake", "loose", "parquet", **{"value.converter.schemas.enable": "false"})})[0] == 201
    wait_until(lambda: task_state(w, "loose").get("state") == "FAILED", timeout_s=60,
               what="the task failed")
    trace = task_state(w, "loose")["trace"]
    assert "topic loose partition 0 offset 0" in trace, trace
    assert s3.keys("lake", "topics/loose/") == []
