"""kafka-python (pure Python, its own protocol code) against a real `spate serve`."""

from __future__ import annotations

import time

import kafka
import pytest
from kafka import KafkaConsumer, KafkaProducer
from kafka import TopicPartition as KTopicPartition

from helpers import BIG_LIMIT_BYTES, CODECS, create_topic, unique, wait_until
from roundtrip import (
    BIG_RANDOM_KEY,
    Rec,
    check_round_trip,
    check_stored_codec,
    normalize_headers,
    standard_records,
)


def test_client_is_kafka_python_3():
    assert kafka.__version__.split(".")[0] in {"2", "3"}, kafka.__version__


def kp_producer(bootstrap: str, **conf) -> KafkaProducer:
    """kafka-python 3 enables idempotence by default (KIP-679): the round trips keep that default,
    the other tests pass enable_idempotence=False, so both produce paths are exercised."""
    base = dict(
        bootstrap_servers=bootstrap,
        acks="all",
        linger_ms=5,
        max_request_size=BIG_LIMIT_BYTES,
        request_timeout_ms=30000,
        client_id="spate-tests-kafka-python",
    )
    base.update(conf)
    return KafkaProducer(**base)


def kp_consumer(bootstrap: str, **conf) -> KafkaConsumer:
    base = dict(
        bootstrap_servers=bootstrap,
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        max_partition_fetch_bytes=BIG_LIMIT_BYTES,
        fetch_max_bytes=4 * BIG_LIMIT_BYTES,
        client_id="spate-tests-kafka-python",
    )
    base.update(conf)
    return KafkaConsumer(**base)


def consume(c: KafkaConsumer, count: int, timeout_s: float = 60.0) -> list:
    out = []
    deadline = time.monotonic() + timeout_s
    while len(out) < count:
        if time.monotonic() > deadline:
            raise AssertionError(f"consumed {len(out)} of {count} records within {timeout_s}s")
        for records in c.poll(timeout_ms=500).values():
            out.extend(records)
    out.sort(key=lambda r: (r.partition, r.offset))
    return out


def test_producer_with_default_settings(spate):
    """kafka-python 3 as people use it: defaults, so idempotence on (InitProducerId first)."""
    topic = unique("kp-defaults")
    create_topic(spate.bootstrap, topic, 1)
    p = KafkaProducer(bootstrap_servers=spate.bootstrap, client_id="spate-tests-defaults")
    try:
        assert p.config["enable_idempotence"], "kafka-python's default changed"
        futures = [p.send(topic, value=f"{i}".encode(), partition=0) for i in range(100)]
        p.flush(timeout=30)
        assert [f.get(timeout=30).offset for f in futures] == list(range(100))
    finally:
        p.close(timeout=10)
    c = kp_consumer(spate.bootstrap)
    try:
        tp = KTopicPartition(topic, 0)
        c.assign([tp])
        c.seek_to_beginning(tp)
        assert [r.value for r in consume(c, 100)] == [f"{i}".encode() for i in range(100)]
    finally:
        c.close()


@pytest.mark.parametrize("codec", CODECS)
def test_round_trip_every_kind_of_record(spate, codec):
    topic = unique(f"kp-{codec}")
    create_topic(spate.bootstrap, topic, 1, {"max.message.bytes": str(BIG_LIMIT_BYTES)})
    # kafka-python refuses a record with neither key nor value (ValueError in send()).
    sent = [r for r in standard_records(null_header_values=False) if (r.key, r.value) != (None, None)]

    p = kp_producer(spate.bootstrap, compression_type=None if codec == "none" else codec)
    try:
        assert p.config["enable_idempotence"]
        futures = [
            p.send(topic, key=r.key, value=r.value, headers=list(r.headers), partition=0)
            for r in sent
        ]
        p.flush(timeout=60)
        offsets = [f.get(timeout=60).offset for f in futures]
    finally:
        p.close(timeout=10)
    assert offsets == list(range(len(sent)))

    c = kp_consumer(spate.bootstrap)
    try:
        tp = KTopicPartition(topic, 0)
        c.assign([tp])
        c.seek_to_beginning(tp)
        records = consume(c, len(sent))
        assert c.end_offsets([tp]) == {tp: len(sent)}
        assert c.beginning_offsets([tp]) == {tp: 0}
    finally:
        c.close()
    got = [(r.offset, Rec(r.key, r.value, normalize_headers(r.headers))) for r in records]
    check_round_trip(sent, got)

    big_random = next(i for i, r in enumerate(sent) if r.key == BIG_RANDOM_KEY)
    check_stored_codec(spate.kafka_addr, topic, codec, len(sent), incompressible={big_random})


def test_hundred_partitions_consumed_by_kafka_python(spate):
    topic = unique("kp-100")
    create_topic(spate.bootstrap, topic, 100)
    p = kp_producer(spate.bootstrap, enable_idempotence=False)
    try:
        futures = [p.send(topic, key=f"k{i}".encode(), value=f"v{i}".encode()) for i in range(3000)]
        p.flush(timeout=60)
        metas = [f.get(timeout=60) for f in futures]
    finally:
        p.close(timeout=10)
    produced: dict[int, int] = {}
    for m in metas:
        produced[m.partition] = produced.get(m.partition, 0) + 1
    assert set(produced) == set(range(100))

    c = kp_consumer(spate.bootstrap)
    try:
        tps = [KTopicPartition(topic, n) for n in range(100)]
        c.assign(tps)
        c.seek_to_beginning(*tps)
        records = consume(c, len(metas))
        ends = c.end_offsets(tps)
    finally:
        c.close()
    consumed: dict[int, int] = {}
    for r in records:
        consumed[r.partition] = consumed.get(r.partition, 0) + 1
    assert consumed == produced
    assert {tp.partition: n for tp, n in ends.items()} == produced


def test_offsets_for_times(spate):
    topic = unique("kp-times")
    create_topic(spate.bootstrap, topic, 1)
    base = int(time.time() * 1000) - 7_200_000
    p = kp_producer(spate.bootstrap, linger_ms=0, enable_idempotence=False)
    try:
        futures = [
            p.send(topic, value=f"{i}".encode(), partition=0, timestamp_ms=base + i * 1000)
            for i in range(10)
        ]
        p.flush(timeout=30)
        assert [f.get(timeout=30).offset for f in futures] == list(range(10))
    finally:
        p.close(timeout=10)

    c = kp_consumer(spate.bootstrap)
    try:
        tp = KTopicPartition(topic, 0)

        def lookup(ts: int):
            return c.offsets_for_times({tp: ts})[tp]

        assert lookup(base - 1).offset == 0
        hit = lookup(base + 4000)
        assert (hit.offset, hit.timestamp) == (4, base + 4000)
        after = lookup(base + 4001)
        assert (after.offset, after.timestamp) == (5, base + 5000)
        assert lookup(base + 9001) is None  # nothing at or after
        assert c.beginning_offsets([tp]) == {tp: 0}
        assert c.end_offsets([tp]) == {tp: 10}
    finally:
        c.close()


def test_long_poll_is_answered_when_data_arrives(spate):
    """fetch_max_wait_ms=25000: a record produced while the fetch waits arrives within 10 s."""
    topic = unique("kp-longpoll")
    create_topic(spate.bootstrap, topic, 1)
    p = kp_producer(spate.bootstrap, linger_ms=0, enable_idempotence=False)
    c = kp_consumer(spate.bootstrap, fetch_max_wait_ms=25000, request_timeout_ms=60000)
    try:
        p.send(topic, value=b"warm-up", partition=0).get(timeout=30)
        tp = KTopicPartition(topic, 0)
        c.assign([tp])
        c.seek(tp, 0)
        (first,) = consume(c, 1, timeout_s=30)
        assert first.value == b"warm-up"
        for round_ in range(3):
            # This poll sends the next Fetch (nothing to read: it parks at the broker for up to
            # 25 s) and returns empty after 300 ms; the Fetch stays outstanding.
            assert c.poll(timeout_ms=300) == {}
            value = f"after-wait-{round_}".encode()
            p.send(topic, value=value, partition=0).get(timeout=30)
            sent_at = time.monotonic()
            got = []
            while not got and time.monotonic() - sent_at < 10:
                for records in c.poll(timeout_ms=100).values():
                    got.extend(records)
            assert got, (
                "the record produced during a 25 s long poll was not delivered within 10 s: "
                "the broker does not answer a waiting Fetch when data arrives"
            )
            assert [r.value for r in got] == [value]
    finally:
        c.close()
        p.close(timeout=10)


def test_admin_client(spate):
    """kafka-python's own admin client: create (with configs), alter, describe, delete."""
    from kafka.admin import ConfigResource, ConfigResourceType, KafkaAdminClient, NewTopic
    from kafka.errors import TopicAlreadyExistsError

    topic = unique("kp-admin")
    a = KafkaAdminClient(bootstrap_servers=spate.bootstrap, client_id="spate-tests-kafka-python")
    try:
        created = a.create_topics([NewTopic(topic, 2, 1, topic_configs={"retention.ms": "5000000"})])
        (result,) = created["topics"]
        assert (result["name"], result["error_code"], result["num_partitions"]) == (topic, 0, 2)
        assert topic in a.list_topics()

        def retention() -> dict:
            described = a.describe_configs([ConfigResource(ConfigResourceType.TOPIC, topic)])
            return described["topic"][topic]["retention.ms"]

        assert retention()["value"] == "5000000"
        assert retention()["config_source"] == "DYNAMIC_TOPIC_CONFIG"
        altered = a.alter_configs(
            [ConfigResource(ConfigResourceType.TOPIC, topic, configs={"retention.ms": "6000000"})]
        )
        assert altered == {"topic": {topic: "OK"}}
        assert retention()["value"] == "6000000"

        with pytest.raises(TopicAlreadyExistsError):
            a.create_topics([NewTopic(topic, 2, 1)])

        a.delete_topics([topic])
        wait_until(lambda: topic not in a.list_topics(), 30, what="the topic to disappear")
    finally:
        a.close()
