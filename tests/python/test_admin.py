"""Topics, configs, auto-creation and DeleteRecords through confluent-kafka's AdminClient."""

from __future__ import annotations

import time
import warnings

from confluent_kafka import (
    OFFSET_BEGINNING,
    KafkaError,
    KafkaException,
    TopicPartition,
)
from confluent_kafka.admin import (
    AlterConfigOpType,
    ConfigEntry,
    ConfigResource,
    ConfigSource,
    NewPartitions,
    NewTopic,
    ResourceType,
)

from helpers import (
    admin,
    consume_from,
    consumer,
    create_topic,
    describe,
    future_error_code,
    incompressible_bytes,
    kafka_error_code,
    produce_all,
    producer,
    topic_id,
    unique,
    wait_until,
    watermarks,
)


def source_of(entry: ConfigEntry) -> ConfigSource:
    return entry.source if isinstance(entry.source, ConfigSource) else ConfigSource(entry.source)


def incremental(bootstrap: str, topic: str, *ops: tuple[str, str | None, AlterConfigOpType]):
    resource = ConfigResource(
        ResourceType.TOPIC,
        topic,
        incremental_configs=[
            ConfigEntry(name, value, incremental_operation=op) for name, value, op in ops
        ],
    )
    return admin(bootstrap).incremental_alter_configs([resource], request_timeout=30)[resource]


def topic_names(bootstrap: str) -> set[str]:
    return set(admin(bootstrap).list_topics(timeout=10).topics)


# --- configs ----------------------------------------------------------------------------------


def test_topic_configs_altered_and_read_back(spate):
    topic = unique("cfg")
    create_topic(spate.bootstrap, topic, 1, {"retention.ms": "3600000", "cleanup.policy": "compact"})
    fresh = unique("cfg-default")
    create_topic(spate.bootstrap, fresh, 1)
    defaults = describe(spate.bootstrap, fresh)
    assert defaults["cleanup.policy"].value == "delete"
    default_max_message_bytes = defaults["max.message.bytes"].value
    assert int(default_max_message_bytes) > 0

    # Configs given at creation.
    entries = describe(spate.bootstrap, topic)
    assert entries["retention.ms"].value == "3600000"
    assert entries["cleanup.policy"].value == "compact"
    assert source_of(entries["retention.ms"]) == ConfigSource.DYNAMIC_TOPIC_CONFIG
    assert source_of(entries["segment.bytes"]) != ConfigSource.DYNAMIC_TOPIC_CONFIG

    # IncrementalAlterConfigs: SET two, DELETE one (back to its default).
    incremental(
        spate.bootstrap,
        topic,
        ("retention.ms", "7200000", AlterConfigOpType.SET),
        ("max.message.bytes", "2097152", AlterConfigOpType.SET),
        ("cleanup.policy", None, AlterConfigOpType.DELETE),
    ).result(30)
    entries = describe(spate.bootstrap, topic)
    assert entries["retention.ms"].value == "7200000"
    assert entries["max.message.bytes"].value == "2097152"
    assert entries["cleanup.policy"].value == "delete"
    assert source_of(entries["max.message.bytes"]) == ConfigSource.DYNAMIC_TOPIC_CONFIG

    # AlterConfigs (the old API) replaces the whole set: what it does not name goes back to the
    # default, as in Kafka.
    resource = ConfigResource(ResourceType.TOPIC, topic, set_config={"retention.ms": "1000000"})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        admin(spate.bootstrap).alter_configs([resource], request_timeout=30)[resource].result(30)
    entries = describe(spate.bootstrap, topic)
    assert entries["retention.ms"].value == "1000000"
    assert entries["max.message.bytes"].value == default_max_message_bytes

    # A restart keeps them.
    spate.restart()
    entries = describe(spate.bootstrap, topic)
    assert entries["retention.ms"].value == "1000000"


def test_invalid_config_values_are_rejected(spate):
    topic = unique("cfg-bad")
    create_topic(spate.bootstrap, topic, 1, {"retention.ms": "3600000"})
    for name, value in [
        ("retention.ms", "not-a-number"),
        ("cleanup.policy", "sometimes"),
        ("max.message.bytes", "-5"),
        ("no.such.config", "1"),
    ]:
        code = future_error_code(incremental(spate.bootstrap, topic, (name, value, AlterConfigOpType.SET)))
        assert code == KafkaError.INVALID_CONFIG, f"{name}={value}: error {KafkaError(code)}"
    # Nothing changed.
    assert describe(spate.bootstrap, topic)["retention.ms"].value == "3600000"

    # CreateTopics with an invalid config creates nothing.
    bad = unique("cfg-bad-create")
    futures = admin(spate.bootstrap).create_topics(
        [NewTopic(bad, 1, 1, config={"retention.ms": "soon"})], request_timeout=30
    )
    assert future_error_code(futures[bad]) == KafkaError.INVALID_CONFIG
    assert bad not in topic_names(spate.bootstrap)


def test_configs_of_unknown_topic(spate):
    ghost = unique("no-such-topic")
    resource = ConfigResource(ResourceType.TOPIC, ghost)
    code = future_error_code(admin(spate.bootstrap).describe_configs([resource])[resource])
    assert code == KafkaError.UNKNOWN_TOPIC_OR_PART, KafkaError(code)
    code = future_error_code(
        incremental(spate.bootstrap, ghost, ("retention.ms", "1000", AlterConfigOpType.SET))
    )
    assert code == KafkaError.UNKNOWN_TOPIC_OR_PART, KafkaError(code)


def test_record_over_max_message_bytes_is_rejected(spate):
    topic = unique("too-large")
    create_topic(spate.bootstrap, topic, 1, {"max.message.bytes": "100000"})
    p = producer(spate.bootstrap, **{"message.max.bytes": 4 << 20, "acks": "all"})
    big = {"value": incompressible_bytes(200_000), "partition": 0}
    outcome = produce_all(p, topic, [big], expect_success=False)
    assert [e.code() for e, _ in outcome.errors] == [KafkaError.MSG_SIZE_TOO_LARGE], outcome.errors
    produce_all(p, topic, [{"value": b"small", "partition": 0}])
    # The limit is live: raise it and the same record goes in.
    incremental(spate.bootstrap, topic, ("max.message.bytes", "400000", AlterConfigOpType.SET)).result(30)
    outcome = produce_all(p, topic, [big])
    assert outcome.delivered[0].offset == 1


# --- topics -----------------------------------------------------------------------------------


def test_create_list_delete_recreate(spate):
    topic = unique("life")
    create_topic(spate.bootstrap, topic, 3, {"retention.ms": "86400000"})
    assert topic in topic_names(spate.bootstrap)
    first_id = topic_id(spate.bootstrap, topic)
    produce_all(producer(spate.bootstrap), topic, [{"value": b"old", "partition": p} for p in range(3)] * 5)
    assert watermarks(spate.bootstrap, topic, 1) == (0, 5)

    futures = admin(spate.bootstrap).delete_topics([topic], operation_timeout=30)
    futures[topic].result(30)
    wait_until(lambda: topic not in topic_names(spate.bootstrap), 30, what="topic gone from metadata")

    create_topic(spate.bootstrap, topic, 2)
    assert topic_id(spate.bootstrap, topic) != first_id, "a recreated topic needs a new topic id"
    assert "retention.ms" not in {
        n for n, e in describe(spate.bootstrap, topic).items()
        if source_of(e) == ConfigSource.DYNAMIC_TOPIC_CONFIG
    }, "the old topic's configs leaked into the new one"
    for p in range(2):
        assert watermarks(spate.bootstrap, topic, p) == (0, 0), f"partition {p} is not empty"
    outcome = produce_all(producer(spate.bootstrap), topic, [{"value": b"new", "partition": 0}])
    assert outcome.delivered[0].offset == 0
    c = consumer(spate.bootstrap)
    try:
        (m,) = consume_from(c, [TopicPartition(topic, 0, OFFSET_BEGINNING)], 1)
        assert (m.offset(), m.value()) == (0, b"new")
    finally:
        c.close()

    # The deletion survives a restart, and so does the new topic.
    spate.restart()
    md = admin(spate.bootstrap).list_topics(timeout=10)
    assert len(md.topics[topic].partitions) == 2
    assert watermarks(spate.bootstrap, topic, 0) == (0, 1)


def test_create_existing_topic(spate):
    topic = unique("twice")
    create_topic(spate.bootstrap, topic, 1)
    futures = admin(spate.bootstrap).create_topics([NewTopic(topic, 4, 1)], request_timeout=30)
    assert future_error_code(futures[topic]) == KafkaError.TOPIC_ALREADY_EXISTS
    assert len(admin(spate.bootstrap).list_topics(timeout=10).topics[topic].partitions) == 1


def test_invalid_topic_names(spate):
    bad = ["bad/name", "..", ".", "a" * 250, "has space", "ümlaut", "colon:name"]
    futures = admin(spate.bootstrap).create_topics([NewTopic(n, 1, 1) for n in bad], request_timeout=30)
    for name in bad:
        code = future_error_code(futures[name])
        assert code == KafkaError.TOPIC_EXCEPTION, f"{name[:30]!r}: {KafkaError(code)}"
    names = topic_names(spate.bootstrap)
    assert not set(bad) & names
    # The longest legal name (249 characters) and every legal character work.
    longest = "b" * 249
    create_topic(spate.bootstrap, longest, 1)
    create_topic(spate.bootstrap, "Legal.name_with-all-09", 1)
    produce_all(producer(spate.bootstrap), longest, [{"value": b"x"}])


def test_invalid_partition_counts(spate):
    futures = admin(spate.bootstrap).create_topics(
        [NewTopic("zero-partitions", 0, 1)], request_timeout=30
    )
    assert future_error_code(futures["zero-partitions"]) == KafkaError.INVALID_PARTITIONS


def test_create_partitions_grows_a_topic(spate):
    topic = unique("grow")
    create_topic(spate.bootstrap, topic, 2)
    produce_all(producer(spate.bootstrap), topic, [{"value": b"before", "partition": 1}])
    a = admin(spate.bootstrap)
    a.create_partitions([NewPartitions(topic, 5)], request_timeout=30)[topic].result(30)
    wait_until(
        lambda: len(a.list_topics(topic=topic, timeout=10).topics[topic].partitions) == 5,
        30,
        what="5 partitions in metadata",
    )
    outcome = produce_all(
        producer(spate.bootstrap, **{"topic.metadata.refresh.interval.ms": 500}),
        topic,
        [{"value": f"p{p}".encode(), "partition": p} for p in range(5)],
    )
    assert sorted((d.partition, d.offset) for d in outcome.delivered) == [
        (0, 0), (1, 1), (2, 0), (3, 0), (4, 0)
    ]
    # Shrinking is not allowed.
    code = future_error_code(a.create_partitions([NewPartitions(topic, 3)], request_timeout=30)[topic])
    assert code == KafkaError.INVALID_PARTITIONS, KafkaError(code)
    ghost = unique("ghost")
    code = future_error_code(a.create_partitions([NewPartitions(ghost, 3)], request_timeout=30)[ghost])
    assert code == KafkaError.UNKNOWN_TOPIC_OR_PART, KafkaError(code)


def test_delete_unknown_topic(spate):
    ghost = unique("ghost")
    futures = admin(spate.bootstrap).delete_topics([ghost], operation_timeout=30)
    assert future_error_code(futures[ghost]) == KafkaError.UNKNOWN_TOPIC_OR_PART


def test_describe_cluster(spate):
    result = admin(spate.bootstrap).describe_cluster(request_timeout=30).result(30)
    assert len(result.nodes) == 1
    node = result.nodes[0]
    assert f"{node.host}:{node.port}" == spate.kafka_addr
    assert result.controller is not None and result.controller.id == node.id
    assert result.cluster_id


# --- auto-creation ----------------------------------------------------------------------------


def test_auto_create_on_produce(spate):
    topic = unique("auto")
    assert topic not in topic_names(spate.bootstrap)
    outcome = produce_all(producer(spate.bootstrap), topic, [{"value": b"created on use"}])
    assert outcome.delivered[0].offset == 0
    md = admin(spate.bootstrap).list_topics(timeout=10)
    assert topic in md.topics and md.topics[topic].error is None
    assert len(md.topics[topic].partitions) >= 1


def test_auto_create_disabled(spate_factory):
    broker = spate_factory(args=["--auto-create-topics", "false"])
    topic = unique("not-auto")
    p = producer(
        broker.bootstrap,
        **{"topic.metadata.propagation.max.ms": 1000, "message.timeout.ms": 10000},
    )
    # The producer asks for the topic with allow_auto_topic_creation=true: the broker says no.
    md = p.list_topics(topic=topic, timeout=10)
    assert md.topics[topic].error is not None
    assert md.topics[topic].error.code() == KafkaError.UNKNOWN_TOPIC_OR_PART
    # librdkafka fails the record locally with _UNKNOWN_TOPIC once the broker said the topic does
    # not exist: at produce() when it already knows, else in the delivery report.
    try:
        outcome = produce_all(p, topic, [{"value": b"nowhere"}], expect_success=False)
        codes = [e.code() for e, _ in outcome.errors]
    except KafkaException as e:
        codes = [kafka_error_code(e)]
    assert codes in ([KafkaError.UNKNOWN_TOPIC_OR_PART], [KafkaError._UNKNOWN_TOPIC]), codes
    assert topic not in topic_names(broker.bootstrap)
    # Explicit creation still works.
    create_topic(broker.bootstrap, topic, 1)
    produce_all(producer(broker.bootstrap), topic, [{"value": b"now it exists"}])


# --- DeleteRecords ----------------------------------------------------------------------------


def test_delete_records_moves_the_low_watermark(spate):
    topic = unique("trim")
    create_topic(spate.bootstrap, topic, 2)
    produce_all(producer(spate.bootstrap, **{"linger.ms": 0}), topic,
                [{"value": f"{i}".encode(), "partition": 0} for i in range(10)])
    a = admin(spate.bootstrap)
    tp = TopicPartition(topic, 0, 4)
    result = a.delete_records([tp], request_timeout=30)
    (future,) = result.values()
    assert future.result(30).low_watermark == 4
    assert watermarks(spate.bootstrap, topic) == (4, 10)

    c = consumer(spate.bootstrap)
    try:
        msgs = consume_from(c, [TopicPartition(topic, 0, OFFSET_BEGINNING)], 6)
        assert [m.offset() for m in msgs] == list(range(4, 10))
    finally:
        c.close()

    # OFFSET_END (-1) deletes everything; beyond the high watermark is out of range.
    (future,) = a.delete_records([TopicPartition(topic, 0, -1)], request_timeout=30).values()
    assert future.result(30).low_watermark == 10
    (future,) = a.delete_records([TopicPartition(topic, 1, 5)], request_timeout=30).values()
    assert future_error_code(future) == KafkaError.OFFSET_OUT_OF_RANGE

    spate.restart()
    assert watermarks(spate.bootstrap, topic) == (10, 10)
    outcome = produce_all(producer(spate.bootstrap), topic, [{"value": b"next", "partition": 0}])
    assert outcome.delivered[0].offset == 10


# --- broker-wide defaults, retention and compaction --------------------------------------------


def test_topic_defaults_from_the_command_line(spate_factory):
    broker = spate_factory(args=["--topic-default", "retention.ms=12345678"])
    topic = unique("defaults")
    create_topic(broker.bootstrap, topic, 1)
    entry = describe(broker.bootstrap, topic)["retention.ms"]
    assert entry.value == "12345678"
    assert source_of(entry) != ConfigSource.DYNAMIC_TOPIC_CONFIG, "it is a broker default"


def test_retention_deletes_old_segments(spate_factory):
    broker = spate_factory(args=["--retention-check-interval-ms", "100"])
    topic = unique("retention")
    create_topic(broker.bootstrap, topic, 1, {"retention.ms": "60000", "internal.segment.bytes": "4096"})
    old = int(time.time() * 1000) - 3_600_000
    p = producer(broker.bootstrap, **{"linger.ms": 0, "batch.size": 1000})
    produce_all(p, topic, [{"value": b"x" * 500, "timestamp": old, "partition": 0}] * 40)
    produce_all(p, topic, [{"value": b"fresh", "partition": 0}])
    wait_until(lambda: watermarks(broker.bootstrap, topic)[0] > 0, 60,
               what="retention to delete the hour-old segments")
    lo, hi = watermarks(broker.bootstrap, topic)
    assert hi == 41 and lo <= 40, (lo, hi)
    # Retention may delete more segments while this reads (every 100 ms): read from whatever the
    # start is then, up to the fresh record, which is in the active segment and stays.
    c = consumer(broker.bootstrap)
    try:
        c.assign([TopicPartition(topic, 0, OFFSET_BEGINNING)])
        msgs = []

        def read_to_fresh():
            for m in c.consume(num_messages=100, timeout=0.5):
                assert not m.error(), m.error()
                msgs.append(m)
            return msgs and msgs[-1].value() == b"fresh"

        wait_until(read_to_fresh, 60, what="the fresh record")
        offsets = [m.offset() for m in msgs]
        assert offsets[0] >= lo and offsets == list(range(offsets[0], 41)), offsets
    finally:
        c.close()


def test_retention_by_size_deletes_old_segments(spate_factory):
    """internal.segment.bytes=4096 (segment.bytes has a 1 MiB floor, as in Kafka 4) rolls a segment every ~6 batches of one 500-byte record; retention.bytes=8192
    then keeps only the newest few segments: the low watermark moves past most of the 60.
    batch.size keeps each batch to one record: a batch is never split across segments, and one
    larger than segment.bytes is refused (RECORD_LIST_TOO_LARGE), as in Kafka."""
    broker = spate_factory(args=["--retention-check-interval-ms", "100"])
    topic = unique("retention-bytes")
    create_topic(broker.bootstrap, topic, 1, {"retention.bytes": "8192", "internal.segment.bytes": "4096"})
    produce_all(producer(broker.bootstrap, **{"linger.ms": 0, "batch.size": 1000}), topic,
                [{"value": b"x" * 500, "partition": 0}] * 60)
    wait_until(lambda: watermarks(broker.bootstrap, topic)[0] >= 30, 60,
               what="size retention to delete old segments (low watermark >= 30 of 60)")
    lo, hi = watermarks(broker.bootstrap, topic)
    assert hi == 60 and lo < 60, (lo, hi)


def test_compaction_keeps_the_last_record_per_key(spate_factory):
    broker = spate_factory(args=["--retention-check-interval-ms", "100"])
    topic = unique("compact")
    create_topic(
        broker.bootstrap, topic, 1,
        {"cleanup.policy": "compact", "internal.segment.bytes": "4096", "min.cleanable.dirty.ratio": "0.01"},
    )
    keys = [f"key-{k}".encode() for k in range(5)]
    records = [{"key": keys[i % 5], "value": f"{i}".encode() + b"." * 200, "partition": 0}
               for i in range(500)]
    # Small batches, so the 500 records span many 4 KiB segments (only sealed ones are compacted).
    produce_all(producer(broker.bootstrap, **{"linger.ms": 0, "batch.size": 1000}), topic, records)
    latest = {keys[i % 5]: f"{i}".encode() + b"." * 200 for i in range(500)}

    def read_all() -> list:
        c = consumer(broker.bootstrap)
        try:
            lo, hi = c.get_watermark_offsets(TopicPartition(topic, 0), timeout=10, cached=False)
            c.assign([TopicPartition(topic, 0, OFFSET_BEGINNING)])
            out = []
            deadline = time.monotonic() + 30
            while (not out or out[-1].offset() < hi - 1) and time.monotonic() < deadline:
                for m in c.consume(500, timeout=0.5):
                    assert m.error() is None, m.error()
                    out.append(m)
            return out
        finally:
            c.close()

    compacted = wait_until(lambda: (msgs := read_all()) and len(msgs) < 250 and msgs, 60,
                           what="compaction to drop overwritten records")
    offsets = [m.offset() for m in compacted]
    assert offsets == sorted(offsets), "compaction must keep offsets in order"
    assert offsets[-1] == 499, "the last offset survives compaction"
    last_seen = {}
    for m in compacted:
        last_seen[m.key()] = m.value()
    assert last_seen == latest, "compaction lost the latest value of a key"
