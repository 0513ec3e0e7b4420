"""Shared helpers: waiting on conditions, topics, and the clients' produce/consume loops.

Tests never sleep to wait for something: they poll a condition until a deadline.
"""

from __future__ import annotations

import os
import random
import time
import uuid
from dataclasses import dataclass, field
from typing import Any, Callable, TypeVar

from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka import TopicCollection
from confluent_kafka.admin import AdminClient, ConfigEntry, ConfigResource, NewTopic, ResourceType

T = TypeVar("T")

MIB = 1 << 20
# Room for a 1 MiB record plus batch overhead, on the topic and in every client.
BIG_LIMIT_BYTES = 4 * MIB
CODECS = ["none", "gzip", "snappy", "lz4", "zstd"]


def wait_until(
    condition: Callable[[], T], timeout_s: float = 30.0, interval_s: float = 0.05, what: str = ""
) -> T:
    """Polls `condition` until it returns something truthy; fails after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    last_error: Exception | None = None
    while True:
        try:
            result = condition()
            if result:
                return result
        except AssertionError as e:
            last_error = e
        if time.monotonic() > deadline:
            detail = f" (last: {last_error})" if last_error else ""
            raise AssertionError(f"timed out after {timeout_s}s waiting for {what or condition}{detail}")
        time.sleep(interval_s)


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def compressible_bytes(size: int, seed: int = 7) -> bytes:
    """Random-looking but compressible by every codec (a 4 KiB random block repeated)."""
    rng = random.Random(seed)
    block = bytes(rng.getrandbits(8) for _ in range(4096))
    return (block * (size // len(block) + 1))[:size]


def incompressible_bytes(size: int) -> bytes:
    return os.urandom(size)


def ascii_payload(size: int, seed: int = 11) -> bytes:
    """Printable ASCII without newlines, for kcat's line-based input and JSON output."""
    rng = random.Random(seed)
    alphabet = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
    block = bytes(rng.choice(alphabet) for _ in range(4096))
    return (block * (size // len(block) + 1))[:size]


# --- confluent-kafka --------------------------------------------------------------------------


_ADMINS: dict[str, AdminClient] = {}


def admin(bootstrap: str) -> AdminClient:
    """One AdminClient per broker address, kept alive for the test.

    A confluent-kafka client destroyed while its futures are pending fails them with _DESTROY,
    so `admin(b).describe_configs(...)[r].result()` needs the client to outlive the expression.
    """
    client = _ADMINS.get(bootstrap)
    if client is None:
        client = _ADMINS[bootstrap] = AdminClient({"bootstrap.servers": bootstrap})
    return client


def forget_clients() -> None:
    """Drops the cached clients (at the end of each test)."""
    _ADMINS.clear()


def producer(bootstrap: str, **conf: Any) -> Producer:
    base = {
        "bootstrap.servers": bootstrap,
        "linger.ms": 5,
        "message.timeout.ms": 30000,
    }
    base.update(conf)
    return Producer(base)


def consumer(bootstrap: str, **conf: Any) -> Consumer:
    """A consumer that reads assigned partitions; the group is never joined or committed to."""
    base = {
        "bootstrap.servers": bootstrap,
        # confluent-kafka insists on a group id even for assign(); nothing is committed.
        "group.id": unique("spate-tests"),
        "enable.auto.commit": False,
        "enable.auto.offset.store": False,
        "auto.offset.reset": "earliest",
        "enable.partition.eof": False,
    }
    base.update(conf)
    return Consumer(base)


def create_topic(
    bootstrap: str,
    name: str,
    partitions: int = 1,
    config: dict[str, str] | None = None,
    timeout_s: float = 30.0,
) -> None:
    """Creates a topic with confluent-kafka's AdminClient and waits until metadata shows it."""
    client = admin(bootstrap)
    futures = client.create_topics(
        [NewTopic(name, num_partitions=partitions, replication_factor=1, config=config or {})],
        request_timeout=timeout_s,
    )
    futures[name].result(timeout=timeout_s)

    def visible() -> bool:
        md = client.list_topics(topic=name, timeout=10)
        t = md.topics.get(name)
        return t is not None and t.error is None and len(t.partitions) == partitions

    wait_until(visible, timeout_s, what=f"topic {name} in metadata with {partitions} partitions")


def describe(bootstrap: str, topic: str) -> dict[str, ConfigEntry]:
    resource = ConfigResource(ResourceType.TOPIC, topic)
    return admin(bootstrap).describe_configs([resource], request_timeout=30)[resource].result(30)


def topic_id(bootstrap: str, topic: str) -> str:
    futures = admin(bootstrap).describe_topics(TopicCollection([topic]), request_timeout=30)
    return str(futures[topic].result(30).topic_id)


def kafka_error_code(exc: BaseException) -> int:
    """The Kafka error code carried by a confluent-kafka exception."""
    assert isinstance(exc, KafkaException), f"expected a KafkaException, got {exc!r}"
    err = exc.args[0]
    assert isinstance(err, KafkaError), f"KafkaException without KafkaError: {exc!r}"
    return err.code()


def future_error_code(future: Any, timeout_s: float = 30.0) -> int:
    """Waits for an admin future that must fail; returns its Kafka error code."""
    try:
        result = future.result(timeout=timeout_s)
    except KafkaException as e:
        return kafka_error_code(e)
    raise AssertionError(f"expected the request to fail, it returned {result!r}")


@dataclass
class Delivered:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    timestamp_ms: int


@dataclass
class Outcome:
    delivered: list[Delivered] = field(default_factory=list)
    errors: list[tuple[KafkaError, bytes | None]] = field(default_factory=list)


def produce_all(
    p: Producer,
    topic: str,
    records: list[dict[str, Any]],
    timeout_s: float = 60.0,
    expect_success: bool = True,
) -> Outcome:
    """Produces `records` (dicts of produce() arguments) and waits for every delivery report."""
    outcome = Outcome()

    def on_delivery(err: KafkaError | None, msg: Any) -> None:
        if err is not None:
            outcome.errors.append((err, msg.value()))
        else:
            outcome.delivered.append(
                Delivered(
                    msg.topic(), msg.partition(), msg.offset(), msg.key(), msg.value(),
                    msg.timestamp()[1],
                )
            )

    for rec in records:
        while True:
            try:
                p.produce(topic, on_delivery=on_delivery, **rec)
                break
            except BufferError:
                p.poll(0.1)
        p.poll(0)
    deadline = time.monotonic() + timeout_s
    while len(outcome.delivered) + len(outcome.errors) < len(records):
        if time.monotonic() > deadline:
            raise AssertionError(
                f"only {len(outcome.delivered) + len(outcome.errors)} of {len(records)} "
                f"delivery reports within {timeout_s}s"
            )
        p.flush(0.5)
    if expect_success:
        assert not outcome.errors, f"delivery failed: {[str(e) for e, _ in outcome.errors[:5]]}"
    return outcome


def consume_from(
    c: Consumer,
    partitions: list[TopicPartition],
    count: int,
    timeout_s: float = 60.0,
) -> list[Any]:
    """Assigns `partitions` (with their start offsets) and polls until `count` messages."""
    c.assign(partitions)
    out: list[Any] = []
    deadline = time.monotonic() + timeout_s
    while len(out) < count:
        if time.monotonic() > deadline:
            raise AssertionError(f"consumed {len(out)} of {count} messages within {timeout_s}s")
        msgs = c.consume(num_messages=min(1000, count - len(out)), timeout=0.5)
        for m in msgs:
            if m.error():
                raise AssertionError(f"consume error: {m.error()}")
            out.append(m)
    return out


def watermarks(bootstrap: str, topic: str, partition: int = 0) -> tuple[int, int]:
    c = consumer(bootstrap)
    try:
        return c.get_watermark_offsets(TopicPartition(topic, partition), timeout=10, cached=False)
    finally:
        c.close()


def group_round_trip(
    conf: dict[str, Any], topic: str, values: list[bytes], timeout_s: float = 30.0
) -> list[bytes]:
    """Produces `values` to `topic` (acks=all) with `conf`, which may carry TLS or SASL
    settings, then reads them back with a new consumer group that subscribes, so
    FindCoordinator and the group protocol go through the same listener. Returns the values
    read, in order."""
    settings = {k: v for k, v in conf.items() if k != "bootstrap.servers"}
    p = producer(conf["bootstrap.servers"], acks="all", **settings)
    produce_all(p, topic, [{"value": v} for v in values], timeout_s=timeout_s)
    c = Consumer(
        {
            **conf,
            "group.id": unique("round-trip"),
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    c.subscribe([topic])
    seen: list[bytes] = []
    try:
        def got_all() -> bool:
            m = c.poll(0.5)
            if m is not None and not m.error():
                seen.append(m.value())
            return len(seen) >= len(values)

        wait_until(got_all, timeout_s, what=f"{len(values)} records of {topic} through a group")
    finally:
        c.close()
    return seen


def audit_events(bootstrap: str, want: Callable[[list[dict]], bool], what: str = "") -> list[dict]:
    """Reads `_audit` from offset 0 (as a client allowed to) until `want(events)` holds; returns
    the events read (the CloudEvents envelopes, decoded)."""
    import json

    c = Consumer({"bootstrap.servers": bootstrap, "group.id": unique("auditor"),
                  "auto.offset.reset": "earliest", "enable.partition.eof": False})
    c.assign([TopicPartition("_audit", 0, 0)])
    events: list[dict] = []
    try:
        def enough() -> bool:
            m = c.poll(0.5)
            if m is not None:
                assert not m.error(), f"reading _audit: {m.error()}"
                events.append(json.loads(m.value()))
            return want(events)

        wait_until(enough, 30, what=what or "the expected events in _audit")
    finally:
        c.close()
    return events


# --- kafka-python -----------------------------------------------------------------------------


def kafka_python_round_trip(settings: dict[str, Any], topic: str, values: list[bytes]) -> list[bytes]:
    """Produces `values` to `topic` (acks=all) with kafka-python and `settings` (bootstrap
    servers, security), reads the topic back from the start with the same settings and checks
    it holds nothing else; returns the values read, in order."""
    from kafka import KafkaConsumer, KafkaProducer
    from kafka import TopicPartition as KafkaTopicPartition

    producer = KafkaProducer(acks="all", **settings)
    for value in values:
        producer.send(topic, value).get(timeout=30)
    producer.close()
    consumer = KafkaConsumer(topic, auto_offset_reset="earliest", consumer_timeout_ms=30_000, **settings)
    seen: list[bytes] = []
    try:
        for message in consumer:
            seen.append(message.value)
            if len(seen) == len(values):
                break
        partition = KafkaTopicPartition(topic, 0)
        end = consumer.end_offsets([partition])[partition]
    finally:
        consumer.close()
    assert end == len(values), f"{topic} holds {end} records, {len(values)} were produced"
    return seen
