"""The `spate` CLI side by side with confluent-kafka and kafka-python.

`spate consume --group` shares a consumer group with a confluent-kafka consumer (the
classic protocol, librdkafka's default range/roundrobin assignors): they split the
partitions and together read every record once. `spate produce --value-schema-subject`
writes Avro, JSON Schema and Protobuf in Confluent's wire format that confluent-kafka's
deserializers read, `spate consume` decodes what its serializers write, and a topic with
`confluent.value.schema.validation=true` takes the CLI's records. `spate cluster txn` shows a
confluent-kafka transaction, and `spate topic describe` reports the sizes kafka-python's
DescribeLogDirs sees.

The CLI runs as a subprocess against the test's broker, the way a user runs it.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
from pathlib import Path
from typing import Any

from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.schema_registry import Schema, SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer, AvroSerializer
from confluent_kafka.schema_registry.json_schema import JSONDeserializer, JSONSerializer
from confluent_kafka.schema_registry.protobuf import ProtobufDeserializer, ProtobufSerializer
from confluent_kafka.serialization import MessageField, SerializationContext

from conftest import spate_binary
from helpers import consume_from, create_topic, produce_all, producer, unique, wait_until
from test_registry import ORDER_AVRO, ORDER_JSON, order_message_class

COMMAND_TIMEOUT_S = 120

ORDER_PROTO = """syntax = "proto3";
package shop;

message Line {
  string sku = 1;
  int32 count = 2;
}

message Order {
  int64 id = 1;
  string customer = 2;
  repeated Line lines = 3;
}
"""


def cli_env(spate, config_home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SPATE_")}
    env["SPATE_BROKERS"] = spate.bootstrap
    env["SPATE_REGISTRY"] = f"http://{spate.registry_addr}"
    # No connection profile of the machine applies.
    env["XDG_CONFIG_HOME"] = str(config_home)
    return env


def cli(spate, tmp_path: Path, *args: str, stdin: bytes = b"", ok: bool = True) -> subprocess.CompletedProcess:
    done = subprocess.run(
        [str(spate_binary()), *args],
        input=stdin,
        capture_output=True,
        timeout=COMMAND_TIMEOUT_S,
        env=cli_env(spate, tmp_path),
    )
    if ok:
        assert done.returncode == 0, (
            f"spate {' '.join(args)} exited {done.returncode}: {done.stderr.decode()}"
        )
    return done


def cli_json_lines(spate, tmp_path: Path, *args: str) -> list[dict]:
    out = cli(spate, tmp_path, *args).stdout.decode()
    return [json.loads(line) for line in out.splitlines()]


def registry(spate) -> SchemaRegistryClient:
    return SchemaRegistryClient({"url": f"http://{spate.registry_addr}"})


def raw_values(spate, topic: str, count: int, partitions: int = 1) -> list[Any]:
    c = Consumer(
        {
            "bootstrap.servers": spate.bootstrap,
            "group.id": unique("raw"),
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
        }
    )
    try:
        return consume_from(c, [TopicPartition(topic, p, 0) for p in range(partitions)], count)
    finally:
        c.close()


# --- consumer groups --------------------------------------------------------------------------


class CliConsumer:
    """`spate consume --group` running in the background; its stdout lines are collected."""

    def __init__(self, spate, tmp_path: Path, *args: str):
        self.proc = subprocess.Popen(
            [str(spate_binary()), "consume", *args],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=cli_env(spate, tmp_path),
        )
        self.lines: list[str] = []
        self.stderr: list[str] = []
        self._lock = threading.Lock()
        self._threads = [
            threading.Thread(target=self._read, args=(self.proc.stdout, self.lines), daemon=True),
            threading.Thread(target=self._read, args=(self.proc.stderr, self.stderr), daemon=True),
        ]
        for t in self._threads:
            t.start()

    def _read(self, pipe, into: list[str]) -> None:
        for raw in pipe:
            with self._lock:
                into.append(raw.decode().rstrip("\n"))

    def records(self) -> list[dict]:
        with self._lock:
            return [json.loads(line) for line in self.lines]

    def stderr_text(self) -> str:
        with self._lock:
            return "\n".join(self.stderr)

    def stop(self) -> int:
        """SIGTERM, as a service manager stops it; the command commits and leaves."""
        self.proc.send_signal(signal.SIGTERM)
        code = self.proc.wait(COMMAND_TIMEOUT_S)
        for t in self._threads:
            t.join(10)
        return code

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def group_description(spate, tmp_path: Path, group: str) -> dict:
    done = cli(spate, tmp_path, "group", "describe", group, "--format", "json", ok=False)
    return json.loads(done.stdout) if done.returncode == 0 else {}


def test_cli_group_member_splits_partitions_with_a_confluent_kafka_consumer(spate, tmp_path):
    topic, group = unique("shared"), unique("mixed-group")
    create_topic(spate.bootstrap, topic, partitions=4)
    theirs = Consumer(
        {
            "bootstrap.servers": spate.bootstrap,
            "group.id": group,
            "auto.offset.reset": "earliest",
            "enable.auto.commit": True,
            "auto.commit.interval.ms": 200,
            "client.id": "confluent-member",
        }
    )
    theirs.subscribe([topic])
    ours = CliConsumer(spate, tmp_path, topic, "--group", group, "--from-beginning", "--format", "json")
    try:
        received: list[Any] = []

        def poll_theirs() -> None:
            m = theirs.poll(0.2)
            if m is not None and not m.error():
                received.append(m)

        def both_assigned() -> bool:
            poll_theirs()
            d = group_description(spate, tmp_path, group)
            members = d.get("members", [])
            return (
                d.get("state") == "Stable"
                and len(members) == 2
                and all(m["assignment"] and m["assignment"][0]["partitions"] for m in members)
            )

        wait_until(both_assigned, timeout_s=60, interval_s=0, what="both members assigned partitions")
        description = group_description(spate, tmp_path, group)
        assert description["type"] == "classic", description
        assert description["protocol"] in ("range", "roundrobin"), description

        count = 200
        p = producer(spate.bootstrap)
        produce_all(p, topic, [{"key": f"k{i}", "value": f"v{i}"} for i in range(count)])

        def all_read() -> bool:
            poll_theirs()
            return len(received) + len(ours.records()) >= count

        wait_until(all_read, timeout_s=60, interval_s=0, what=f"{count} records read by the two members")
        cli_records = ours.records()
        values = [r["value"] for r in cli_records] + [m.value().decode() for m in received]
        assert sorted(values) == sorted(f"v{i}" for i in range(count)), "every record once"
        cli_partitions = {r["partition"] for r in cli_records}
        their_partitions = {m.partition() for m in received}
        assert cli_partitions and their_partitions, (cli_partitions, their_partitions)
        assert not cli_partitions & their_partitions, "the members split the partitions"
        assert "assigned partitions" in ours.stderr_text()

        assert ours.stop() == 0, ours.stderr_text()
        # The CLI committed what it printed before leaving: the group has no lag on its partitions.
        def cli_partitions_committed() -> bool:
            poll_theirs()
            rows = group_description(spate, tmp_path, group).get("offsets", [])
            return all(
                r["lag"] == 0 for r in rows if r["partition"] in cli_partitions
            ) and len(rows) >= len(cli_partitions)

        wait_until(cli_partitions_committed, timeout_s=30, interval_s=0, what="the CLI's commits")
        # Nothing is read twice after the CLI left and confluent-kafka took its partitions.
        for _ in range(10):
            poll_theirs()
        assert len(received) + len(cli_records) == count
    finally:
        ours.kill()
        theirs.close()

    def no_lag() -> bool:
        return group_description(spate, tmp_path, group).get("total_lag") == 0

    wait_until(no_lag, timeout_s=30, what="every record committed by one member or the other")


# --- schema'd records ---------------------------------------------------------------------------


def test_cli_writes_avro_json_and_protobuf_that_confluent_deserializers_read(spate, tmp_path):
    sr = registry(spate)
    for kind, schema, lines, expected, deserializer in [
        (
            "avro",
            Schema(ORDER_AVRO, "AVRO"),
            [
                '{"id": 1, "item": "pen", "note": {"string": "gift"}}',
                '{"id": 2, "item": "ink", "quantity": 5, "note": null}',
                '{"id": 3, "item": "pad", "note": "bare union value"}',
            ],
            [
                {"id": 1, "item": "pen", "quantity": 1, "note": "gift"},
                {"id": 2, "item": "ink", "quantity": 5, "note": None},
                {"id": 3, "item": "pad", "quantity": 1, "note": "bare union value"},
            ],
            lambda: AvroDeserializer(sr),
        ),
        (
            "json",
            Schema(ORDER_JSON, "JSON"),
            ['{"id": 1, "item": "thing", "tags": ["a"]}', '{"id": 2, "item": "other"}'],
            [{"id": 1, "item": "thing", "tags": ["a"]}, {"id": 2, "item": "other"}],
            lambda: JSONDeserializer(ORDER_JSON, schema_registry_client=sr),
        ),
    ]:
        topic = unique(f"cli-{kind}")
        create_topic(spate.bootstrap, topic)
        schema_id = sr.register_schema(f"{topic}-value", schema)
        cli(
            spate, tmp_path, "produce", topic, "--value-schema-subject", f"{topic}-value",
            stdin=("\n".join(lines) + "\n").encode(),
        )
        messages = raw_values(spate, topic, len(lines))
        ctx = SerializationContext(topic, MessageField.VALUE)
        d = deserializer()
        assert [d(m.value(), ctx) for m in messages] == expected, kind
        assert {m.value()[1:5] for m in messages} == {schema_id.to_bytes(4, "big")}, kind

    # Protobuf, by id, with the message named.
    topic = unique("cli-proto")
    create_topic(spate.bootstrap, topic)
    schema_id = sr.register_schema(f"{topic}-value", Schema(ORDER_PROTO, "PROTOBUF"))
    lines = [
        '{"id": "7", "customer": "ann", "lines": [{"sku": "a", "count": 2}]}',
        '{"id": 8, "customer": "bob"}',
    ]
    cli(
        spate, tmp_path, "produce", topic, "--value-schema-id", str(schema_id),
        "--value-schema-message", "shop.Order", stdin=("\n".join(lines) + "\n").encode(),
    )
    Order = order_message_class()
    d = ProtobufDeserializer(Order, {"use.deprecated.format": False})
    ctx = SerializationContext(topic, MessageField.VALUE)
    orders = [d(m.value(), ctx) for m in raw_values(spate, topic, 2)]
    assert [(o.id, o.customer, [(l.sku, l.count) for l in o.lines]) for o in orders] == [
        (7, "ann", [("a", 2)]),
        (8, "bob", []),
    ]

    # Keys too, and input that does not fit the schema is refused line by line.
    topic = unique("cli-keys")
    create_topic(spate.bootstrap, topic)
    sr.register_schema(f"{topic}-key", Schema('"string"', "AVRO"))
    sr.register_schema(f"{topic}-value", Schema(ORDER_AVRO, "AVRO"))
    done = cli(
        spate, tmp_path, "produce", topic, "--key-separator", "|",
        "--key-schema-subject", f"{topic}-key", "--value-schema-subject", f"{topic}-value",
        stdin=b'"order-1"|{"id": 1, "item": "pen"}\n"order-2"|{"id": "two", "item": "pen"}\n',
        ok=False,
    )
    assert done.returncode != 0
    assert "line 2 skipped" in done.stderr.decode() and "$.id" in done.stderr.decode(), done.stderr
    [message] = raw_values(spate, topic, 1)
    key = AvroDeserializer(sr)(message.key(), SerializationContext(topic, MessageField.KEY))
    assert key == "order-1"


def order_with_line(Order):
    order = Order(id=5, customer="c5")
    order.lines.add(sku="s", count=3)
    return order


def test_cli_reads_what_confluent_serializers_write(spate, tmp_path):
    sr = registry(spate)
    Order = order_message_class()
    cases = [
        (
            "avro",
            AvroSerializer(sr, ORDER_AVRO),
            [{"id": 1, "item": "pen", "quantity": 2, "note": "gift"}, {"id": 2, "item": "ink", "quantity": 1, "note": None}],
            [
                {"id": 1, "item": "pen", "quantity": 2, "note": {"string": "gift"}},
                {"id": 2, "item": "ink", "quantity": 1, "note": None},
            ],
        ),
        (
            "json",
            JSONSerializer(ORDER_JSON, sr),
            [{"id": 1, "item": "thing", "tags": ["x"]}],
            [{"id": 1, "item": "thing", "tags": ["x"]}],
        ),
        (
            "proto",
            ProtobufSerializer(Order, sr, {"use.deprecated.format": False}),
            [order_with_line(Order), Order(id=6)],
            [
                {"id": "5", "customer": "c5", "lines": [{"sku": "s", "count": 3}]},
                {"id": "6", "customer": "", "lines": []},
            ],
        ),
    ]
    for kind, serializer, values, expected in cases:
        topic = unique(f"from-confluent-{kind}")
        create_topic(spate.bootstrap, topic)
        ctx = SerializationContext(topic, MessageField.VALUE)
        produce_all(producer(spate.bootstrap), topic, [{"value": serializer(v, ctx)} for v in values])
        records = cli_json_lines(
            spate, tmp_path, "consume", topic, "--from-beginning", "--exit-at-end", "--format", "json"
        )
        assert [r["value"] for r in records] == expected, kind
        assert {r["value_encoding"] for r in records} == {"json"}, kind
        schema_id = sr.get_latest_version(f"{topic}-value").schema_id
        assert {r["value_schema_id"] for r in records} == {schema_id}, kind
        # A format string prints the decoded value; --no-decode the bytes as they are.
        text = cli(
            spate, tmp_path, "consume", topic, "--from-beginning", "--exit-at-end", "--count", "1",
            "--format", r"%s\n",
        ).stdout
        assert json.loads(text) == expected[0], kind
        raw = cli(
            spate, tmp_path, "consume", topic, "--from-beginning", "--exit-at-end", "--count", "1",
            "--no-decode", "--format", "json",
        ).stdout
        raw = json.loads(raw)
        assert raw["value_encoding"] != "json" and "value_schema_id" not in raw, kind

    # What the CLI reads it can write again: a JSON dump copies the topic with its schema ids.
    source = unique("from-confluent-avro-copy")
    create_topic(spate.bootstrap, source)
    ctx = SerializationContext(source, MessageField.VALUE)
    produce_all(producer(spate.bootstrap), source, [{"value": cases[0][1](v, ctx)} for v in cases[0][2]])
    dump = cli(spate, tmp_path, "consume", source, "--from-beginning", "--exit-at-end", "--format", "json").stdout
    copy = unique("copy")
    create_topic(spate.bootstrap, copy)
    cli(spate, tmp_path, "produce", copy, "--input-format", "json", stdin=dump)
    d = AvroDeserializer(sr)
    copied = [d(m.value(), SerializationContext(copy, MessageField.VALUE)) for m in raw_values(spate, copy, 2)]
    assert copied == cases[0][2]


def test_cli_writes_to_a_topic_that_validates_schemas(spate, tmp_path):
    sr = registry(spate)
    topic = unique("validated")
    create_topic(spate.bootstrap, topic, config={"confluent.value.schema.validation": "true"})
    sr.register_schema(f"{topic}-value", Schema(ORDER_AVRO, "AVRO"))
    cli(
        spate, tmp_path, "produce", topic, "--value-schema-subject", f"{topic}-value",
        stdin=b'{"id": 1, "item": "pen"}\n',
    )
    refused = cli(spate, tmp_path, "produce", topic, stdin=b'{"id": 2}\n', ok=False)
    assert refused.returncode != 0
    assert "INVALID_RECORD" in refused.stderr.decode(), refused.stderr
    records = cli_json_lines(spate, tmp_path, "consume", topic, "--from-beginning", "--exit-at-end", "--format", "json")
    assert [r["value"] for r in records] == [{"id": 1, "item": "pen", "quantity": 1, "note": None}]


# --- transactions and storage -------------------------------------------------------------------


def test_cli_txn_commands_show_a_confluent_kafka_transaction(spate, tmp_path):
    topic, txn_id = unique("txn-topic"), unique("txn")
    create_topic(spate.bootstrap, topic)
    p = Producer({"bootstrap.servers": spate.bootstrap, "transactional.id": txn_id})
    p.init_transactions(30)
    p.begin_transaction()
    p.produce(topic, b"in flight")
    p.flush(30)

    listed = json.loads(cli(spate, tmp_path, "cluster", "txn", "list", "--format", "json").stdout)
    mine = [t for t in listed if t["transactional_id"] == txn_id]
    assert len(mine) == 1 and mine[0]["state"] == "Ongoing", listed
    producer_id = mine[0]["producer_id"]
    ongoing = json.loads(
        cli(spate, tmp_path, "cluster", "txn", "list", "--state", "Ongoing", "--format", "json").stdout
    )
    assert txn_id in {t["transactional_id"] for t in ongoing}

    [described] = json.loads(cli(spate, tmp_path, "cluster", "txn", "describe", txn_id, "--format", "json").stdout)
    assert described["state"] == "Ongoing"
    assert described["producer_id"] == producer_id
    assert described["partitions"] == [f"{topic}-0"]
    assert described["start_time_ms"] is not None

    producers = json.loads(
        cli(spate, tmp_path, "cluster", "txn", "describe-producers", "--topic", topic, "--format", "json").stdout
    )
    assert [(x["producer_id"], x["current_transaction_start_offset"]) for x in producers] == [(producer_id, 0)]

    p.commit_transaction(30)
    [described] = json.loads(cli(spate, tmp_path, "cluster", "txn", "describe", txn_id, "--format", "json").stdout)
    assert described["state"] == "CompleteCommit"
    assert described["partitions"] == []
    producers = json.loads(
        cli(spate, tmp_path, "cluster", "txn", "describe-producers", "--topic", topic, "--format", "json").stdout
    )
    assert producers[0]["current_transaction_start_offset"] is None

    missing = cli(spate, tmp_path, "cluster", "txn", "describe", "no-such-txn", ok=False)
    assert missing.returncode != 0
    assert "TRANSACTIONAL_ID_NOT_FOUND" in missing.stderr.decode(), missing.stderr


def test_topic_sizes_match_what_kafka_python_reads_with_describe_log_dirs(spate, tmp_path):
    from kafka import KafkaAdminClient

    topic = unique("sizes")
    create_topic(spate.bootstrap, topic, partitions=2)
    produce_all(producer(spate.bootstrap), topic, [{"value": b"x" * 100, "partition": 0} for _ in range(20)])
    described = json.loads(cli(spate, tmp_path, "topic", "describe", topic, "--format", "json").stdout)
    ours = {p["partition"]: p["size_bytes"] for p in described["partitions"]}
    assert ours[0] > 2000 and ours[1] == 0, ours

    client = KafkaAdminClient(bootstrap_servers=spate.bootstrap)
    try:
        answers = client.describe_log_dirs(topic_partitions=[topic])
    finally:
        client.close()
    theirs: dict[int, int] = {}
    for answer in answers:
        for log_dir in answer["log_dirs"]:
            assert log_dir["error_code"] == 0, log_dir
            for t in log_dir["topics"]:
                assert t["name"] == topic, "only the topic asked for"
                for part in t["partitions"]:
                    theirs[part["partition_index"]] = part["partition_size"]
    assert theirs == ours
