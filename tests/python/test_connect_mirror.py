"""MirrorMaker 2's connectors on Spate Connect, between two real `spate serve` processes: A is
the source, B the target, whose in-process Connect worker runs MirrorSourceConnector and
MirrorCheckpointConnector with `source.cluster.bootstrap.servers` = A, configured with MM2's
own keys. With `spate.offset.preserving.enabled=true` every committed record of A is on B at
its source offset (aborted transactions and markers leave gaps), and a consumer group that
committed on A moves to B and continues with no loss and no re-read."""

from __future__ import annotations

import json
import struct
import threading
import urllib.request
from pathlib import Path

import pytest
from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AlterConfigOpType, ConfigEntry, ConfigResource, NewPartitions, ResourceType

from helpers import admin, consumer, create_topic, describe, produce_all, producer, unique, wait_until
from test_connect import InProcess, connector_state

SOURCE = "org.apache.kafka.connect.mirror.MirrorSourceConnector"
CHECKPOINT = "org.apache.kafka.connect.mirror.MirrorCheckpointConnector"


@pytest.fixture
def clusters(spate_factory, tmp_path):
    """A (source, no Connect worker) and B (target, with its in-process worker)."""
    a = spate_factory(connect_listen="off")
    worker_config = tmp_path / "worker.properties"
    worker_config.write_text("offset.flush.interval.ms=200\n")
    b = spate_factory(args=["--connect-worker-config", str(worker_config)])
    return a, b


def mirror_config(a, **extra: str) -> dict[str, str]:
    config = {
        "connector.class": SOURCE,
        "source.cluster.alias": "A",
        "target.cluster.alias": "B",
        "source.cluster.bootstrap.servers": a.kafka_addr,
        "topics": "orders.*",
        "replication.factor": "1",
        "refresh.topics.interval.seconds": "1",
        "sync.topic.configs.interval.seconds": "1",
        "spate.offset.preserving.enabled": "true",
        "tasks.max": "2",
    }
    config.update(extra)
    return config


def start_connector(w: InProcess, name: str, config: dict[str, str]) -> None:
    code, body = w.call("POST", "/connectors", {"name": name, "config": config})
    assert code == 201, body
    wait_until(lambda: connector_state(w, name)[0] == "RUNNING" and connector_state(w, name)[1]
               and all(s == "RUNNING" for s in connector_state(w, name)[1]),
               timeout_s=60, what=f"{name} running")


def read_committed(bootstrap: str, topic: str, partition: int, count: int, start: int = 0) -> list[tuple]:
    """`count` records of one partition from `start`, read_committed, as comparable tuples."""
    c = consumer(bootstrap, **{"isolation.level": "read_committed"})
    out: list[tuple] = []
    try:
        c.assign([TopicPartition(topic, partition, start)])

        def enough() -> bool:
            for m in c.consume(num_messages=500, timeout=0.2):
                assert m.error() is None, m.error()
                out.append((m.offset(), m.key(), m.value(), m.headers() or [], m.timestamp()[1]))
            return len(out) >= count
        wait_until(enough, timeout_s=60, what=f"{count} records of {topic}-{partition} at {bootstrap}")
        assert not [m for m in c.consume(num_messages=10, timeout=0.5) if m.error() is None], \
            f"more than {count} records in {topic}-{partition}"
    finally:
        c.close()
    return out


def produce_history(a_addr: str, topic: str) -> dict[int, int]:
    """Writes records with keys, headers and timestamps to the three partitions of `topic` on A:
    plain records, an aborted transaction, a committed one, and on partition 2 a committed
    transaction last, so its last offset is a marker. Returns committed records per partition."""
    plain = producer(a_addr, **{"enable.idempotence": True})
    base_ts = 1_700_000_000_000

    def records(partition: int, start: int, count: int, tag: str) -> list[dict]:
        return [{"partition": partition, "key": f"k{partition}-{start + i}".encode(),
                 "value": f"{tag}-{partition}-{start + i}".encode(),
                 "headers": [("h", f"v{start + i}".encode()), ("dup", b"1"), ("dup", None)],
                 "timestamp": base_ts + start + i} for i in range(count)]

    produce_all(plain, topic, records(0, 0, 5, "plain") + records(1, 0, 4, "plain") + records(2, 0, 3, "plain"))
    tx = Producer({"bootstrap.servers": a_addr, "transactional.id": unique("tx")})
    tx.init_transactions(30)
    tx.begin_transaction()
    for r in records(0, 100, 3, "aborted") + records(2, 100, 2, "aborted"):
        tx.produce(topic, **r)
    tx.flush(30)
    tx.abort_transaction(30)
    tx.begin_transaction()
    for r in records(0, 200, 2, "committed") + records(1, 200, 2, "committed"):
        tx.produce(topic, **r)
    tx.commit_transaction(30)
    produce_all(plain, topic, records(0, 300, 3, "plain") + records(1, 300, 1, "plain"))
    tx.begin_transaction()
    for r in records(2, 400, 2, "committed"):
        tx.produce(topic, **r)
    tx.commit_transaction(30)
    return {0: 5 + 2 + 3, 1: 4 + 2 + 1, 2: 3 + 2}


def metrics(broker) -> str:
    with urllib.request.urlopen(f"http://{broker.http_addr}/metrics", timeout=30) as response:
        return response.read().decode()


def test_mirror_preserves_offsets_and_a_consumer_group_moves_to_the_mirror(clusters):
    a, b = clusters
    create_topic(a.kafka_addr, "orders", partitions=3, config={"retention.ms": "86400000"})
    counts = produce_history(a.kafka_addr, "orders")
    w = InProcess(b)
    start_connector(w, "mirror", mirror_config(a))

    # Record by record: every committed record of A is on B at its source offset.
    for partition, count in counts.items():
        source = read_committed(a.kafka_addr, "orders", partition, count)
        mirrored = read_committed(b.kafka_addr, "A.orders", partition, count)
        assert mirrored == source, f"partition {partition}"
    offsets_0 = [r[0] for r in read_committed(a.kafka_addr, "orders", 0, counts[0])]
    assert offsets_0 != list(range(len(offsets_0))), "the source has gaps the mirror kept"
    entries = describe(b.kafka_addr, "A.orders")
    assert entries["spate.mirror.offsets"].value == "preserve"
    assert entries["retention.ms"].value == "86400000", "topic configs synced"
    # Partition 2 ends with a commit marker, which is not copied: B ends one short of A.
    a_end = Consumer({"bootstrap.servers": a.kafka_addr, "group.id": "x"}).get_watermark_offsets(
        TopicPartition("orders", 2), timeout=10)[1]
    b_end = Consumer({"bootstrap.servers": b.kafka_addr, "group.id": "x"}).get_watermark_offsets(
        TopicPartition("A.orders", 2), timeout=10)[1]
    assert b_end == a_end - 1

    # A normal producer cannot write to the mirror topic.
    refused = produce_all(producer(b.kafka_addr), "A.orders", [{"value": b"x", "partition": 0}],
                          expect_success=False)
    assert len(refused.errors) == 1
    error = refused.errors[0][0]
    assert error.code() == KafkaError.INVALID_REQUEST, error
    # librdkafka's delivery report carries only the code; the broker says why in its log.
    wait_until(lambda: "cannot append records to read-only mirror topic" in b.log_text(),
               what="the refusal in B's log")

    # A group reads part of A and commits; on partition 2 past the trailing marker, as a Java
    # consumer's position does.
    app = Consumer({"bootstrap.servers": a.kafka_addr, "group.id": "app", "enable.auto.commit": False,
                    "isolation.level": "read_committed", "auto.offset.reset": "earliest"})
    app.assign([TopicPartition("orders", p, 0) for p in range(3)])
    seen: dict[int, list[int]] = {0: [], 1: [], 2: []}

    def read_some() -> bool:
        for m in app.consume(num_messages=100, timeout=0.2):
            assert m.error() is None
            if len(seen[m.partition()]) < {0: 6, 1: 3, 2: 99}[m.partition()]:
                seen[m.partition()].append(m.offset())
        return len(seen[0]) == 6 and len(seen[1]) == 3 and len(seen[2]) == counts[2]
    wait_until(read_some, what="the group's first reads")
    committed_on_a = {0: seen[0][-1] + 1, 1: seen[1][-1] + 1, 2: a_end}
    app.commit(offsets=[TopicPartition("orders", p, o) for p, o in committed_on_a.items()], asynchronous=False)
    app.close()

    start_connector(w, "checkpoints", {
        "connector.class": CHECKPOINT, "source.cluster.alias": "A", "target.cluster.alias": "B",
        "source.cluster.bootstrap.servers": a.kafka_addr, "topics": "orders.*", "groups": "app",
        "sync.group.offsets.enabled": "true", "sync.group.offsets.interval.seconds": "1",
        "emit.checkpoints.interval.seconds": "1", "checkpoints.topic.replication.factor": "1"})
    expected_on_b = {0: committed_on_a[0], 1: committed_on_a[1], 2: b_end}
    probe = Consumer({"bootstrap.servers": b.kafka_addr, "group.id": "app"})

    def synced() -> bool:
        got = probe.committed([TopicPartition("A.orders", p) for p in range(3)], timeout=10)
        return {t.partition: t.offset for t in got} == expected_on_b
    wait_until(synced, timeout_s=60, what=f"group app's offsets on B to be {expected_on_b}")
    probe.close()

    # MM2's checkpoint records on B.
    checkpoints = read_committed(b.kafka_addr, "A.checkpoints.internal", 0, 3)
    decoded = set()
    for _, key, value, _, _ in checkpoints:
        glen = struct.unpack(">h", key[:2])[0]
        group = key[2:2 + glen].decode()
        tlen = struct.unpack(">h", key[2 + glen:4 + glen])[0]
        topic = key[4 + glen:4 + glen + tlen].decode()
        partition = struct.unpack(">i", key[4 + glen + tlen:])[0]
        version, upstream, downstream = struct.unpack(">hqq", value[:18])
        assert version == 0
        decoded.add((group, topic, partition, upstream, downstream))
    for p in range(3):
        assert ("app", "A.orders", p, committed_on_a[p], expected_on_b[p]) in decoded

    # The group moves to B and continues: exactly the records after its commits.
    more = producer(a.kafka_addr)
    produce_all(more, "orders", [{"partition": p, "value": f"after-{p}".encode()} for p in range(3)])
    rest = {p: [r for r in read_committed(a.kafka_addr, "orders", p, counts[p] + 1)
                if r[0] >= committed_on_a[p]] for p in range(3)}
    moved = Consumer({"bootstrap.servers": b.kafka_addr, "group.id": "app", "enable.auto.commit": False,
                      "auto.offset.reset": "latest"})
    moved.subscribe(["A.orders"])
    got: dict[int, list[tuple]] = {0: [], 1: [], 2: []}

    def continued() -> bool:
        for m in moved.consume(num_messages=100, timeout=0.2):
            assert m.error() is None, m.error()
            got[m.partition()].append((m.offset(), m.key(), m.value(), m.headers() or [], m.timestamp()[1]))
        return all(len(got[p]) >= len(rest[p]) for p in range(3))
    wait_until(continued, timeout_s=60, what="the group to read the rest on B")
    assert not [m for m in moved.consume(num_messages=10, timeout=0.5) if m.error() is None]
    # While the group has a member on B, a pass that translates a newer commit on A leaves
    # the group's offsets on B alone (Kafka refuses commits from outside a live group; MM2
    # skips such groups). The pass is seen by its checkpoint record, which it emits after
    # syncing.
    on_a = Consumer({"bootstrap.servers": a.kafka_addr, "group.id": "app", "enable.auto.commit": False})
    newer = committed_on_a[0] + 2
    on_a.commit(offsets=[TopicPartition("orders", 0, newer)], asynchronous=False)
    on_a.close()
    tail = consumer(b.kafka_addr)
    tail.assign([TopicPartition("A.checkpoints.internal", 0, 0)])

    def newer_checkpoint() -> bool:
        for m in tail.consume(num_messages=100, timeout=0.2):
            glen = struct.unpack(">h", m.key()[:2])[0]
            partition = struct.unpack(">i", m.key()[-4:])[0]
            upstream = struct.unpack(">q", m.value()[2:10])[0]
            if m.key()[2:2 + glen] == b"app" and partition == 0 and upstream == newer:
                return True
        return False
    wait_until(newer_checkpoint, timeout_s=60, what="a checkpoint of the newer commit")
    tail.close()
    still = Consumer({"bootstrap.servers": b.kafka_addr, "group.id": "app"})
    assert still.committed([TopicPartition("A.orders", 0)], timeout=10)[0].offset == expected_on_b[0]
    still.close()
    moved.close()
    assert got == rest
    assert rest[2] and rest[2][0][2] == b"after-2", "the record after the marker is read, not skipped"

    # Topic configs changed on A follow (sync.topic.configs.interval.seconds=1).
    resource = ConfigResource(ResourceType.TOPIC, "orders", incremental_configs=[
        ConfigEntry("retention.ms", "172800000", incremental_operation=AlterConfigOpType.SET)])
    admin(a.kafka_addr).incremental_alter_configs([resource])[resource].result(30)
    wait_until(lambda: describe(b.kafka_addr, "A.orders")["retention.ms"].value == "172800000",
               what="retention.ms synced to B")
    assert describe(b.kafka_addr, "A.orders")["spate.mirror.offsets"].value == "preserve"

    # A topic made on A later is picked up by the refresh (refresh.topics.interval.seconds=1).
    create_topic(a.kafka_addr, "orders-late", partitions=2)
    produce_all(producer(a.kafka_addr), "orders-late", [{"partition": p, "value": b"late"} for p in range(2)])
    for p in range(2):
        assert read_committed(b.kafka_addr, "A.orders-late", p, 1) == read_committed(a.kafka_addr, "orders-late", p, 1)

    # So are partitions added to a mirrored topic: the target topic grows to match.
    admin(a.kafka_addr).create_partitions([NewPartitions("orders-late", 3)])["orders-late"].result(30)
    produce_all(producer(a.kafka_addr), "orders-late", [{"partition": 2, "value": b"grown"}])
    assert read_committed(b.kafka_addr, "A.orders-late", 2, 1) == read_committed(a.kafka_addr, "orders-late", 2, 1)

    # A topic deleted on A stops being copied; its copy on B stays, as MM2 leaves it.
    admin(a.kafka_addr).delete_topics(["orders-late"])["orders-late"].result(30)
    wait_until(lambda: "stopped mirroring partitions of topics gone from the source" in b.log_text(),
               what="the mirror to drop the deleted topic")
    assert read_committed(b.kafka_addr, "A.orders-late", 2, 1)[0][2] == b"grown"

    text = metrics(b)
    assert 'spate_connect_task_records_total{connector="mirror"' in text
    assert "spate_connect_source_lag_records{connector=\"mirror\"" in text


def test_killing_the_target_mid_mirror_loses_and_duplicates_nothing(clusters):
    a, b = clusters
    create_topic(a.kafka_addr, "orders", partitions=2)
    total = 4000
    stop = threading.Event()
    produced: list[int] = []

    def write() -> None:
        p = producer(a.kafka_addr, **{"enable.idempotence": True})
        for i in range(total):
            if stop.is_set():
                break
            while True:
                try:
                    p.produce("orders", value=f"r{i}".encode(), partition=i % 2)
                    break
                except BufferError:
                    p.poll(0.05)
            produced.append(i)
            if i % 200 == 0:
                p.flush(30)
        p.flush(30)

    writer = threading.Thread(target=write)
    writer.start()
    w = InProcess(b)
    start_connector(w, "mirror", mirror_config(a, **{"tasks.max": "1"}))

    def mirrored_some() -> bool:
        c = Consumer({"bootstrap.servers": b.kafka_addr, "group.id": "x"})
        try:
            return c.get_watermark_offsets(TopicPartition("A.orders", 0), timeout=10)[1] >= 400
        except KafkaException:
            return False  # the topic is not made yet
        finally:
            c.close()
    wait_until(mirrored_some, timeout_s=60, what="part of the topic mirrored")
    b.kill()
    b.restart()
    writer.join(120)
    assert not writer.is_alive()
    for partition in range(2):
        count = len([i for i in produced if i % 2 == partition])
        source = read_committed(a.kafka_addr, "orders", partition, count)
        mirrored = read_committed(b.kafka_addr, "A.orders", partition, count)
        assert mirrored == source, f"partition {partition}"


def test_bad_mirror_configs_get_400_naming_the_field_and_a_non_mirror_target_fails_the_task(clusters):
    a, b = clusters
    w = InProcess(b)
    config = mirror_config(a)
    del config["source.cluster.bootstrap.servers"]
    code, error = w.call("POST", "/connectors", {"name": "bad", "config": config})
    assert code == 400, error
    assert "source.cluster.bootstrap.servers" in error["message"]
    code, error = w.call("POST", "/connectors", {"name": "bad", "config": mirror_config(a, topics="ok,(unclosed")})
    assert code == 400, error
    assert "topics" in error["message"] and "(unclosed" in error["message"]
    code, validated = w.call("PUT", f"/connector-plugins/{SOURCE}/config/validate",
                             {"name": "v", **mirror_config(a, **{"replication.policy.class": "com.example.Custom"})})
    assert code == 200
    errors = {c["definition"]["name"]: c["value"]["errors"] for c in validated["configs"] if c["value"]["errors"]}
    assert list(errors) == ["replication.policy.class"], errors
    code, _ = w.call("PUT", "/connector-plugins/MirrorSourceConnector/config/validate",
                     {"name": "v", **mirror_config(a, **{"connector.class": "MirrorSourceConnector"})})
    assert code == 200
    code, error = w.call("POST", "/connectors", {"name": "bad", "config": {
        "connector.class": CHECKPOINT, "source.cluster.bootstrap.servers": a.kafka_addr,
        "sync.group.offsets.enabled": "true", "spate.offset.preserving.enabled": "false"}})
    assert code == 400 and "spate.offset.preserving.enabled" in error["message"], error
    assert w.call("GET", "/connectors") == (200, [])

    # A target topic that exists and is not a mirror topic cannot take preserved offsets.
    create_topic(a.kafka_addr, "orders-plain")
    create_topic(b.kafka_addr, "A.orders-plain")
    code, body = w.call("POST", "/connectors", {"name": "plain", "config": mirror_config(
        a, topics="orders-plain", **{"tasks.max": "1"})})
    assert code == 201, body
    b.allow_errors(r"is not a mirror topic")

    def failed() -> str | None:
        code, status = w.call("GET", "/connectors/plain/status")
        tasks = status.get("tasks") or []
        if tasks and tasks[0]["state"] == "FAILED":
            return tasks[0].get("trace", "")
        return None
    trace = wait_until(failed, timeout_s=60, what="the task to fail")
    assert "A.orders-plain exists and is not a mirror topic" in trace, trace


def test_a_compacted_source_keeps_its_offsets_on_the_mirror(spate_factory, tmp_path):
    a = spate_factory(connect_listen="off", args=["--retention-check-interval-ms", "100"])
    b = spate_factory()
    create_topic(a.kafka_addr, "orders-compacted", 1, {
        "cleanup.policy": "compact", "internal.segment.bytes": "4096", "min.cleanable.dirty.ratio": "0.01"})
    keys = [f"key-{k}".encode() for k in range(5)]
    produce_all(producer(a.kafka_addr, **{"linger.ms": 0, "batch.size": 1000}), "orders-compacted",
                [{"key": keys[i % 5], "value": f"{i}".encode() + b"." * 200, "partition": 0} for i in range(500)])

    def compacted() -> list[tuple] | None:
        c = consumer(a.kafka_addr)
        try:
            c.assign([TopicPartition("orders-compacted", 0, 0)])
            out = []
            for _ in range(20):
                out += [(m.offset(), m.key(), m.value()) for m in c.consume(500, timeout=0.2) if m.error() is None]
                if out and out[-1][0] == 499:
                    break
            return out if out and out[-1][0] == 499 and len(out) < 250 else None
        finally:
            c.close()
    wait_until(compacted, timeout_s=60, what="compaction on A")
    # Compaction stops, so the source stays what the mirror is compared with.
    resource = ConfigResource(ResourceType.TOPIC, "orders-compacted", incremental_configs=[
        ConfigEntry("cleanup.policy", "delete", incremental_operation=AlterConfigOpType.SET)])
    admin(a.kafka_addr).incremental_alter_configs([resource])[resource].result(30)
    source = wait_until(compacted, timeout_s=60, what="A's compacted log")
    w = InProcess(b)
    # The copy need not be compacted itself: it shows the source's gaps as they were.
    start_connector(w, "mirror", mirror_config(a, topics="orders-compacted", **{
        "sync.topic.configs.enabled": "false", "tasks.max": "1"}))
    mirrored = [(o, k, v) for o, k, v, _, _ in read_committed(b.kafka_addr, "A.orders-compacted", 0, len(source))]
    assert mirrored == source
