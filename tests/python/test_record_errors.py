"""Records refused one by one: Kafka checks every record of a batch (LogValidator) and names
each refused one in the Produce response's `record_errors` (KIP-467); the batch is refused
whole, so nothing of it is stored. kafka-python hands each record its own exception — the
reason for the refused ones, a generic "part of a batch" error for the others; librdkafka's
delivery report carries only the error code's generic text."""

from __future__ import annotations

import time

import kafka.errors as kerrors
import pytest
from confluent_kafka import KafkaError

from helpers import create_topic, producer, unique, watermarks
from test_kafka_python import kp_producer

DAY_MS = 86_400_000
HOUR_MS = 3_600_000
GENERIC = "part of a batch which had one more more invalid records"


def outcomes(futures) -> list[BaseException | None]:
    out = []
    for future in futures:
        try:
            future.get(timeout=30)
            out.append(None)
        except kerrors.KafkaError as e:
            out.append(e)
    return out


def send_one_batch(bootstrap: str, topic: str, records: list[tuple[bytes | None, int]]):
    """Sends (key, timestamp_ms) records as one batch: a long linger, then flush."""
    p = kp_producer(bootstrap, linger_ms=60_000, enable_idempotence=False, retries=0)
    try:
        futures = [p.send(topic, key=k, value=b"v", partition=0, timestamp_ms=ts) for k, ts in records]
        p.flush(timeout=30)
        return outcomes(futures)
    finally:
        p.close(timeout=5)


def test_a_day_old_record_between_current_ones_is_refused_and_only_it_is_named(spate):
    topic = unique("ts-window")
    create_topic(spate.bootstrap, topic, 1, {"message.timestamp.before.max.ms": str(HOUR_MS)})
    now = int(time.time() * 1000)
    got = send_one_batch(spate.bootstrap, topic, [(b"a", now), (b"b", now - DAY_MS), (b"c", now)])

    assert isinstance(got[1], kerrors.InvalidTimestampError), got
    assert f"Timestamp {now - DAY_MS} of message with offset 1 is out of range" in str(got[1]), got[1]
    for other in (got[0], got[2]):
        assert other is not None and GENERIC in str(other), got
    assert watermarks(spate.bootstrap, topic) == (0, 0), "a refused batch leaves nothing behind"
    assert "refused a record batch" in spate.log_text()

    # The same records, all current, are taken.
    assert send_one_batch(spate.bootstrap, topic, [(b"a", now), (b"b", now), (b"c", now)]) == [None] * 3
    assert watermarks(spate.bootstrap, topic) == (0, 3)


def test_keyless_records_on_a_compacted_topic_are_named_one_by_one(spate):
    topic = unique("compact-keys")
    create_topic(spate.bootstrap, topic, 1, {"cleanup.policy": "compact"})
    now = int(time.time() * 1000)
    got = send_one_batch(
        spate.bootstrap, topic, [(b"k0", now), (None, now), (b"k2", now), (None, now), (b"k4", now)]
    )
    for index in (1, 3):
        assert isinstance(got[index], kerrors.InvalidRecordError), got
        assert "Compacted topic cannot accept message without key in topic partition" in str(got[index])
    for index in (0, 2, 4):
        assert got[index] is not None and GENERIC in str(got[index]), got
    assert watermarks(spate.bootstrap, topic) == (0, 0)


def test_confluent_kafka_delivery_report_carries_the_code_not_the_reason(spate):
    topic = unique("ts-ck")
    create_topic(spate.bootstrap, topic, 1, {"message.timestamp.before.max.ms": str(HOUR_MS)})
    reports: list = []
    p = producer(spate.bootstrap, acks="all")
    now = int(time.time() * 1000)
    p.produce(topic, b"v", partition=0, timestamp=now - DAY_MS, on_delivery=lambda err, msg: reports.append(err))
    assert p.flush(30) == 0
    assert len(reports) == 1 and reports[0] is not None, reports
    assert reports[0].code() == KafkaError.INVALID_TIMESTAMP, reports
    assert "out of range" not in str(reports[0]), "librdkafka now shows the reason: update FINDINGS"
    assert watermarks(spate.bootstrap, topic) == (0, 0)
