"""confluent-kafka (librdkafka 2.16 inside the wheel) against a real `spate serve`."""

from __future__ import annotations

import collections
import json
import struct
import time

import confluent_kafka
import pytest
from confluent_kafka import OFFSET_BEGINNING, OFFSET_END, TopicPartition
from confluent_kafka.admin import OffsetSpec

import kafka_wire
from helpers import (
    BIG_LIMIT_BYTES,
    CODECS,
    admin,
    consume_from,
    consumer,
    create_topic,
    produce_all,
    producer,
    unique,
    wait_until,
    watermarks,
)
from roundtrip import (
    BIG_RANDOM_KEY,
    Rec,
    check_round_trip,
    check_stored_codec,
    normalize_headers,
    standard_records,
)


def test_client_is_librdkafka_2_16():
    assert confluent_kafka.libversion()[0].startswith("2.16."), confluent_kafka.libversion()


def big_producer(bootstrap: str, codec: str):
    return producer(
        bootstrap,
        **{
            "compression.type": codec,
            "acks": "all",
            "message.max.bytes": BIG_LIMIT_BYTES,
        },
    )


def big_consumer(bootstrap: str):
    return consumer(
        bootstrap,
        **{
            "fetch.message.max.bytes": BIG_LIMIT_BYTES,
            "fetch.max.bytes": 4 * BIG_LIMIT_BYTES,
        },
    )


@pytest.mark.parametrize("codec", CODECS)
def test_round_trip_every_kind_of_record(spate, codec):
    topic = unique(f"ck-{codec}")
    create_topic(spate.bootstrap, topic, 1, {"max.message.bytes": str(BIG_LIMIT_BYTES)})
    sent = standard_records()

    outcome = produce_all(
        big_producer(spate.bootstrap, codec),
        topic,
        [
            {"key": r.key, "value": r.value, "headers": list(r.headers) or None, "partition": 0}
            for r in sent
        ],
    )
    # Delivery reports of one partition come in produce order, with the offsets assigned.
    assert [d.offset for d in outcome.delivered] == list(range(len(sent)))
    assert [d.value for d in outcome.delivered] == [r.value for r in sent]

    c = big_consumer(spate.bootstrap)
    try:
        msgs = consume_from(c, [TopicPartition(topic, 0, OFFSET_BEGINNING)], len(sent))
    finally:
        c.close()
    got = [(m.offset(), Rec(m.key(), m.value(), normalize_headers(m.headers()))) for m in msgs]
    check_round_trip(sent, got)

    big_random = next(i for i, r in enumerate(sent) if r.key == BIG_RANDOM_KEY)
    check_stored_codec(spate.kafka_addr, topic, codec, len(sent), incompressible={big_random})
    assert watermarks(spate.bootstrap, topic) == (0, len(sent))


def test_keyed_records_keep_their_order_per_partition(spate):
    topic = unique("ck-order")
    create_topic(spate.bootstrap, topic, 4)
    keys = [f"key-{k}".encode() for k in range(10)]
    records = [{"key": keys[i % 10], "value": f"{i}".encode()} for i in range(2000)]
    outcome = produce_all(producer(spate.bootstrap, **{"acks": "all"}), topic, records)

    by_partition: dict[int, list[bytes]] = collections.defaultdict(list)
    for d in sorted(outcome.delivered, key=lambda d: (d.partition, d.offset)):
        by_partition[d.partition].append(d.value)
    c = consumer(spate.bootstrap)
    try:
        msgs = consume_from(
            c, [TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(4)], len(records)
        )
    finally:
        c.close()
    seen: dict[int, list[bytes]] = collections.defaultdict(list)
    last_per_key: dict[bytes, int] = {}
    for m in msgs:
        seen[m.partition()].append(m.value())
        n = int(m.value())
        assert last_per_key.get(m.key(), -1) < n, f"key {m.key()!r}: {n} came after a later record"
        last_per_key[m.key()] = n
    assert dict(seen) == dict(by_partition)


def test_idempotent_producer(spate):
    """enable.idempotence=true: InitProducerId, then sequenced batches, stored once, in order."""
    topic = unique("ck-idempotent")
    create_topic(spate.bootstrap, topic, 3)
    p = producer(spate.bootstrap, **{"enable.idempotence": True, "compression.type": "lz4"})
    records = [{"key": f"k{i % 5}".encode(), "value": f"{i}".encode()} for i in range(3000)]
    outcome = produce_all(p, topic, records)
    per_partition: dict[int, list[int]] = collections.defaultdict(list)
    for d in outcome.delivered:
        per_partition[d.partition].append(d.offset)
    for partition, offsets in per_partition.items():
        assert sorted(offsets) == list(range(len(offsets))), f"partition {partition} has gaps"
    c = consumer(spate.bootstrap)
    try:
        msgs = consume_from(
            c, [TopicPartition(topic, q, OFFSET_BEGINNING) for q in range(3)], len(records)
        )
    finally:
        c.close()
    values = sorted(int(m.value()) for m in msgs)
    assert values == list(range(len(records))), "records lost or stored twice"
    batches = kafka_wire.fetch_all_batches(spate.kafka_addr, topic, 0, len(per_partition[0]))
    producer_ids = {struct.unpack_from(">q", b.raw, 43)[0] for b in batches}
    assert len(producer_ids) == 1 and producer_ids.pop() >= 0, "batches carry no producer id"


def test_hundred_partitions(spate):
    topic = unique("ck-100")
    create_topic(spate.bootstrap, topic, 100)
    records = [{"key": f"key-{i}".encode(), "value": f"value-{i}".encode()} for i in range(5000)]
    outcome = produce_all(producer(spate.bootstrap, **{"acks": "all"}), topic, records)
    produced = collections.Counter(d.partition for d in outcome.delivered)
    assert set(produced) == set(range(100)), f"partitions never written: {set(range(100)) - set(produced)}"

    c = consumer(spate.bootstrap)
    try:
        msgs = consume_from(
            c, [TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(100)], len(records)
        )
    finally:
        c.close()
    # Watermarks from a consumer that is not fetching: a busy one queues each ListOffsets
    # behind its long-polling Fetch on the same connection (requests are answered in order).
    idle = consumer(spate.bootstrap)
    try:
        for p in range(100):
            lo, hi = idle.get_watermark_offsets(TopicPartition(topic, p), timeout=10, cached=False)
            assert (lo, hi) == (0, produced[p]), f"partition {p} watermarks"
    finally:
        idle.close()
    consumed = collections.Counter(m.partition() for m in msgs)
    assert consumed == produced
    # Same key, same partition: the partitioner's choice is what the broker stored.
    where = {d.key: d.partition for d in outcome.delivered}
    assert all(where[m.key()] == m.partition() for m in msgs)


def test_list_offsets_by_timestamp_and_watermarks(spate):
    topic = unique("ck-times")
    create_topic(spate.bootstrap, topic, 1)
    base = int(time.time() * 1000) - 3_600_000
    # Ten records one second apart, then one back in time: max timestamp is not the last offset.
    stamps = [base + i * 1000 for i in range(10)] + [base + 5500]
    produce_all(
        producer(spate.bootstrap, **{"linger.ms": 0}),
        topic,
        [{"value": f"{i}".encode(), "timestamp": ts, "partition": 0} for i, ts in enumerate(stamps)],
    )
    c = consumer(spate.bootstrap)
    try:

        def offset_for(ts: int) -> int:
            (tp,) = c.offsets_for_times([TopicPartition(topic, 0, ts)], timeout=10)
            assert tp.error is None, tp.error
            return tp.offset

        assert offset_for(base - 10_000) == 0
        assert offset_for(base) == 0
        assert offset_for(base + 3000) == 3  # exact hit
        assert offset_for(base + 3500) == 4  # first at/after
        assert offset_for(base + 9000) == 9
        assert offset_for(base + 9001) == OFFSET_END  # none at/after: -1
        assert c.get_watermark_offsets(TopicPartition(topic, 0), timeout=10, cached=False) == (0, 11)
    finally:
        c.close()

    # AdminClient.list_offsets: earliest, latest, max timestamp, by timestamp.
    a = admin(spate.bootstrap)
    tp = TopicPartition(topic, 0)

    def list_offset(spec):
        result = a.list_offsets({tp: spec}, request_timeout=10)[tp].result(timeout=30)
        return result.offset, result.timestamp

    assert list_offset(OffsetSpec.earliest())[0] == 0
    assert list_offset(OffsetSpec.latest())[0] == 11
    assert list_offset(OffsetSpec.max_timestamp()) == (9, base + 9000)
    assert list_offset(OffsetSpec.for_timestamp(base + 5200))[0] == 6


def test_consumer_long_poll_is_answered_when_data_arrives(spate):
    """fetch.wait.max.ms=25000: the record produced while the fetch waits arrives well before."""
    topic = unique("ck-longpoll")
    create_topic(spate.bootstrap, topic, 1)
    p = producer(spate.bootstrap, **{"linger.ms": 0})
    produce_all(p, topic, [{"value": b"warm-up", "partition": 0}])

    stats: list[dict] = []
    c = consumer(
        spate.bootstrap,
        **{
            "fetch.wait.max.ms": 25000,
            "fetch.min.bytes": 1,
            "socket.timeout.ms": 60000,
            "statistics.interval.ms": 100,
            "stats_cb": lambda s: stats.append(json.loads(s)),
        },
    )
    try:
        (first,) = consume_from(c, [TopicPartition(topic, 0, 0)], 1, timeout_s=30)
        assert first.value() == b"warm-up"
        for round_ in range(3):
            # Wait until stats taken after the last record show the consumer's next Fetch parked
            # at the broker (a request awaiting its response on the leader's connection).
            mark = len(stats)

            def fetch_parked() -> bool:
                m = c.poll(0.1)
                assert m is None, f"unexpected message {m.value() if m else None!r}"
                return _fetch_in_flight(stats[mark:])

            wait_until(fetch_parked, timeout_s=20, what="a Fetch waiting at the broker")
            value = f"after-wait-{round_}".encode()
            produce_all(p, topic, [{"value": value, "partition": 0}])
            sent_at = time.monotonic()
            got = None
            while got is None and time.monotonic() - sent_at < 10:
                m = c.poll(0.1)
                if m is not None:
                    assert m.error() is None, m.error()
                    got = m
            assert got is not None, (
                "the record produced during a 25 s long poll was not delivered within 10 s: "
                "the broker does not answer a waiting Fetch when data arrives"
            )
            assert got.value() == value
    finally:
        c.close()


def _fetch_in_flight(stats: list[dict]) -> bool:
    """The newest of these stats shows a Fetch awaiting its response on the leader."""
    if not stats:
        return False
    for b in stats[-1].get("brokers", {}).values():
        if b.get("nodeid", -1) >= 0 and b.get("req", {}).get("Fetch", 0) > 0:
            return b.get("waitresp_cnt", 0) >= 1
    return False
