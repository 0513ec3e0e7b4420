"""Consumer groups (classic protocol) driven by real clients: confluent-kafka, kafka-python, kcat.

Members run in their own threads, as applications run them, and commit synchronously after
processing each batch. Every delivery is recorded, so the tests can state Kafka's guarantee
exactly: no produced record is missed, and a record is delivered again only across a rebalance
boundary when the commit that covered it did not succeed.
"""

from __future__ import annotations

import collections
import re
import threading
import time
import urllib.request
from typing import Any, Callable

import pytest
from confluent_kafka import (
    ConsumerGroupState,
    ConsumerGroupTopicPartitions,
    Consumer,
    KafkaError,
    KafkaException,
    TopicPartition,
)

import kafka_wire as wire
from helpers import (
    admin,
    create_topic,
    future_error_code,
    produce_all,
    producer,
    unique,
    wait_until,
    watermarks,
)
from test_kcat import kcat

# Error codes (Kafka's protocol table).
NONE = 0
UNKNOWN_TOPIC_OR_PARTITION = 3
ILLEGAL_GENERATION = 22
UNKNOWN_MEMBER_ID = 25
INVALID_SESSION_TIMEOUT = 26
REBALANCE_IN_PROGRESS = 27
NON_EMPTY_GROUP = 68
GROUP_ID_NOT_FOUND = 69
GROUP_SUBSCRIBED_TO_TOPIC = 86
MEMBER_ID_REQUIRED = 79

# Heartbeats every 500 ms so members notice a rebalance quickly; sessions well above the
# broker's 6 s minimum so a busy 2-core machine never expires a live member.
CK_GROUP_CONF = {"session.timeout.ms": 10000, "heartbeat.interval.ms": 500}


# --- who consumed what ------------------------------------------------------------------------


class ConsumeLog:
    """Every delivery to every member, and which of them a successful commit covered.

    A redelivery is legitimate only if the earlier delivery was never covered by a successful
    commit and a rebalance lies between the two (another member, or the same member after a new
    assignment). Anything else is recorded in `violations` as it happens.
    """

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.deliveries: dict[tuple[int, int], list[tuple[str, int]]] = collections.defaultdict(list)
        self.values: dict[tuple[int, int], bytes] = {}
        self.committed: set[tuple[int, int]] = set()
        self.floor: dict[int, int] = {}  # highest offset successfully committed, per partition
        self.commit_failures: list[str] = []
        self.redelivered: list[tuple[int, int]] = []
        self.violations: list[str] = []

    def delivered(self, member: str, epoch: int, records: list[tuple[int, int, bytes]]) -> None:
        with self.lock:
            for partition, offset, value in records:
                key = (partition, offset)
                earlier = self.deliveries[key]
                if earlier:
                    self.redelivered.append(key)
                    if key in self.committed:
                        self.violations.append(
                            f"{member} got {key} again although a commit covered it "
                            f"(committed offset {self.floor.get(partition)})"
                        )
                    if (member, epoch) in earlier:
                        self.violations.append(
                            f"{member} got {key} twice without a rebalance in between"
                        )
                    if self.values[key] != value:
                        self.violations.append(f"{key} came back with another value")
                if offset < self.floor.get(partition, 0):
                    self.violations.append(
                        f"{member} got {key} below the committed offset {self.floor[partition]}"
                    )
                earlier.append((member, epoch))
                self.values[key] = value

    def commit_done(
        self, records: list[tuple[int, int, bytes]], next_offsets: dict[int, int], failed: dict[int, str]
    ) -> None:
        with self.lock:
            for partition, reason in failed.items():
                self.commit_failures.append(f"partition {partition}: {reason}")
            for partition, offset, _ in records:
                if partition not in failed and offset < next_offsets[partition]:
                    self.committed.add((partition, offset))
            for partition, offset in next_offsets.items():
                if partition not in failed:
                    self.floor[partition] = max(self.floor.get(partition, 0), offset)

    def seen(self) -> set[tuple[int, int]]:
        with self.lock:
            return set(self.deliveries)


class Member:
    """A group consumer in its own thread: poll a batch, record it, commit it synchronously.

    Subclasses wrap one client. `assigned` follows the rebalance callbacks (eager protocols
    revoke everything before assigning, cooperative ones add and remove increments, so
    `assigned -= revoked; assigned |= added` is right for both).
    """

    def __init__(self, name: str, log: ConsumeLog):
        self.name = name
        self.log = log
        self.lock = threading.Lock()
        self.assigned: set[int] = set()
        self.assign_events: list[set[int]] = []
        self.revoke_events: list[set[int]] = []
        self.lost_events: list[set[int]] = []
        self.consumed = 0
        self.error: BaseException | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"member-{name}", daemon=True)

    # --- called by the client's rebalance callbacks (in the member's thread) -------------------

    def on_assigned(self, partitions: set[int]) -> None:
        with self.lock:
            self.assigned |= partitions
            self.assign_events.append(set(partitions))

    def on_revoked(self, partitions: set[int]) -> None:
        with self.lock:
            self.assigned -= partitions
            if partitions:
                self.revoke_events.append(set(partitions))

    def on_lost(self, partitions: set[int]) -> None:
        with self.lock:
            self.assigned -= partitions
            self.lost_events.append(set(partitions))

    # --- what the main thread reads ------------------------------------------------------------

    def assignment(self) -> set[int]:
        self.check()
        with self.lock:
            return set(self.assigned)

    def consumed_count(self) -> int:
        self.check()
        with self.lock:
            return self.consumed

    def revoked_partitions(self) -> list[set[int]]:
        with self.lock:
            return [set(r) for r in self.revoke_events]

    def assigns(self) -> int:
        with self.lock:
            return len(self.assign_events)

    def check(self) -> None:
        """Fails the test (not just the wait) if the member's thread died."""
        if self.error is not None:
            raise RuntimeError(f"member {self.name} failed: {self.error!r}") from self.error

    # --- lifecycle -----------------------------------------------------------------------------

    def start(self) -> Member:
        self._thread.start()
        return self

    def stop(self, timeout_s: float = 60.0) -> None:
        """Stops polling and closes the client cleanly (in the member's thread)."""
        self._stop.set()
        self._thread.join(timeout_s)
        assert not self._thread.is_alive(), f"member {self.name} did not close within {timeout_s}s"
        self.check()

    def _run(self) -> None:
        try:
            self.open()
            try:
                while not self._stop.is_set():
                    records = self.poll_batch()
                    if not records:
                        continue
                    with self.lock:
                        epoch = len(self.assign_events)
                        self.consumed += len(records)
                    self.log.delivered(self.name, epoch, records)
                    next_offsets: dict[int, int] = {}
                    for partition, offset, _ in records:
                        next_offsets[partition] = max(next_offsets.get(partition, 0), offset + 1)
                    failed = self.commit(next_offsets)
                    self.log.commit_done(records, next_offsets, failed)
            finally:
                self.close()
        except BaseException as e:  # reported to the main thread by check()
            self.error = e

    # --- one client ----------------------------------------------------------------------------

    def open(self) -> None:
        raise NotImplementedError

    def poll_batch(self) -> list[tuple[int, int, bytes]]:
        raise NotImplementedError

    def commit(self, next_offsets: dict[int, int]) -> dict[int, str]:
        """Commits synchronously; returns the partitions whose commit failed, with the reason."""
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError


class CkMember(Member):
    """confluent-kafka (librdkafka 2.16)."""

    def __init__(self, name: str, log: ConsumeLog, bootstrap: str, group: str, topic: str, **conf: Any):
        super().__init__(name, log)
        self.topic = topic
        self.conf = {
            "bootstrap.servers": bootstrap,
            "group.id": group,
            "client.id": name,
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
            **CK_GROUP_CONF,
            **conf,
        }
        if self.conf.get("group.protocol") == "consumer":
            # KIP-848: the broker sets session and heartbeat timing; librdkafka refuses them.
            for key in CK_GROUP_CONF:
                self.conf.pop(key, None)
        self.consumer: Consumer | None = None

    def open(self) -> None:
        self.consumer = Consumer(self.conf)
        self.consumer.subscribe(
            [self.topic],
            on_assign=lambda c, ps: self.on_assigned({tp.partition for tp in ps}),
            on_revoke=lambda c, ps: self.on_revoked({tp.partition for tp in ps}),
            on_lost=lambda c, ps: self.on_lost({tp.partition for tp in ps}),
        )

    def poll_batch(self) -> list[tuple[int, int, bytes]]:
        assert self.consumer is not None
        out = []
        for m in self.consumer.consume(num_messages=200, timeout=0.1):
            if m.error():
                raise KafkaException(m.error())
            out.append((m.partition(), m.offset(), m.value()))
        return out

    def commit(self, next_offsets: dict[int, int]) -> dict[int, str]:
        assert self.consumer is not None
        offsets = [TopicPartition(self.topic, p, o) for p, o in next_offsets.items()]
        try:
            result = self.consumer.commit(offsets=offsets, asynchronous=False)
        except KafkaException as e:
            return {p: str(e.args[0]) for p in next_offsets}
        return {tp.partition: str(tp.error) for tp in result if tp.error is not None}

    def close(self) -> None:
        if self.consumer is not None:
            self.consumer.close()


class KpMember(Member):
    """kafka-python 3.0.12 (pure Python)."""

    def __init__(self, name: str, log: ConsumeLog, bootstrap: str, group: str, topic: str, **conf: Any):
        super().__init__(name, log)
        self.topic = topic
        self.conf = {
            "bootstrap_servers": bootstrap,
            "group_id": group,
            "client_id": name,
            "enable_auto_commit": False,
            "auto_offset_reset": "earliest",
            "session_timeout_ms": 10000,
            "heartbeat_interval_ms": 500,
            **conf,
        }
        self.consumer = None

    def open(self) -> None:
        from kafka import KafkaConsumer
        from kafka.consumer.subscription_state import ConsumerRebalanceListener

        member = self

        class Listener(ConsumerRebalanceListener):
            def on_partitions_revoked(self, revoked):
                member.on_revoked({tp.partition for tp in revoked})

            def on_partitions_assigned(self, assigned):
                member.on_assigned({tp.partition for tp in assigned})

        self.consumer = KafkaConsumer(**self.conf)
        self.consumer.subscribe([self.topic], listener=Listener())

    def poll_batch(self) -> list[tuple[int, int, bytes]]:
        out = []
        for records in self.consumer.poll(timeout_ms=100, max_records=200).values():
            out.extend((r.partition, r.offset, r.value) for r in records)
        return out

    def commit(self, next_offsets: dict[int, int]) -> dict[int, str]:
        from kafka import TopicPartition as KTopicPartition
        from kafka.errors import KafkaError as KError
        from kafka.structs import OffsetAndMetadata

        offsets = {
            KTopicPartition(self.topic, p): OffsetAndMetadata(o, "", -1) for p, o in next_offsets.items()
        }
        try:
            self.consumer.commit(offsets)
        except KError as e:
            return {p: repr(e) for p in next_offsets}
        return {}

    def close(self) -> None:
        if self.consumer is not None:
            self.consumer.close()


# --- a steady producer ------------------------------------------------------------------------


class SteadyProducer:
    """Produces numbered records round-robin over the partitions from a thread, a bounded number
    in flight, and records the (partition, offset) of every acknowledged record."""

    def __init__(self, bootstrap: str, topic: str, partitions: int, max_in_flight: int = 60):
        self.topic = topic
        self.partitions = partitions
        self.max_in_flight = max_in_flight
        self.lock = threading.Lock()
        self.acked: dict[tuple[int, int], bytes] = {}
        self.errors: list[str] = []
        self.sent = 0
        self._producer = producer(bootstrap, **{"acks": "all", "linger.ms": 2})
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="steady-producer", daemon=True)

    def start(self) -> SteadyProducer:
        self._thread.start()
        return self

    def acked_count(self) -> int:
        with self.lock:
            return len(self.acked)

    def _on_delivery(self, err: KafkaError | None, msg: Any) -> None:
        with self.lock:
            if err is not None:
                self.errors.append(str(err))
            else:
                self.acked[(msg.partition(), msg.offset())] = msg.value()

    def _run(self) -> None:
        p = self._producer
        while not self._stop.is_set():
            with self.lock:
                in_flight = self.sent - len(self.acked) - len(self.errors)
            if in_flight >= self.max_in_flight:
                p.poll(0.01)
                continue
            n = self.sent
            p.produce(self.topic, value=str(n).encode(), partition=n % self.partitions,
                      on_delivery=self._on_delivery)
            with self.lock:
                self.sent += 1
            p.poll(0)

    def stop(self) -> dict[tuple[int, int], bytes]:
        self._stop.set()
        self._thread.join(30)
        assert not self._thread.is_alive(), "the producer thread did not stop"
        remaining = self._producer.flush(60)
        assert remaining == 0, f"{remaining} records without a delivery report after 60 s"
        assert not self.errors, f"delivery failed: {self.errors[:5]}"
        with self.lock:
            return dict(self.acked)


# --- shared checks ----------------------------------------------------------------------------


def balanced(members: list[Member], partitions: int) -> bool:
    """Every partition assigned to exactly one member, sizes differing by at most one."""
    sets = [m.assignment() for m in members]
    sizes = [len(s) for s in sets]
    union = set().union(*sets)
    return sum(sizes) == partitions and union == set(range(partitions)) and max(sizes) - min(sizes) <= 1


def wait_balanced_and_consuming(members: list[Member], partitions: int, producer_: SteadyProducer,
                                what: str) -> None:
    """Waits for a balanced, complete assignment, then for every member to consume more."""
    wait_until(lambda: balanced(members, partitions), 60, what=f"balanced assignment {what}")
    marks = [m.consumed_count() for m in members]
    acked = producer_.acked_count()
    wait_until(
        lambda: producer_.acked_count() > acked + 50
        and all(m.consumed_count() > mark for m, mark in zip(members, marks)),
        60,
        what=f"every member consuming {what}",
    )
    assert balanced(members, partitions), f"assignment changed {what}: {[m.assignment() for m in members]}"


def check_every_record_once(log: ConsumeLog, produced: dict[tuple[int, int], bytes]) -> None:
    """At-least-once with no gaps, and redeliveries only where a commit failed."""
    wait_until(lambda: set(produced) <= log.seen(), 90,
               what=f"all {len(produced)} produced records consumed")
    with log.lock:
        seen = set(log.deliveries)
        phantom = seen - set(produced)
        assert not phantom, f"consumed records nobody produced: {sorted(phantom)[:10]}"
        wrong = [k for k in produced if log.values[k] != produced[k]]
        assert not wrong, f"records consumed with another value: {wrong[:10]}"
        assert not log.violations, "\n".join(log.violations[:20])
        if not log.commit_failures:
            assert not log.redelivered, (
                f"every commit succeeded, yet {len(log.redelivered)} records came twice: "
                f"{log.redelivered[:10]}"
            )
        redelivered = len(log.redelivered)
        failures = list(log.commit_failures)
    print(f"{len(produced)} records, {redelivered} redelivered after {len(failures)} failed "
          f"commits: {failures[:5]}")


def committed_offsets(bootstrap: str, group: str) -> dict[tuple[str, int], int]:
    request = ConsumerGroupTopicPartitions(group)
    result = admin(bootstrap).list_consumer_group_offsets([request], request_timeout=30)[group].result(30)
    return {(tp.topic, tp.partition): tp.offset for tp in result.topic_partitions}


def join_and_leave(spate, make: Callable[[ConsumeLog, str], Member], topic: str, group: str,
                   partitions: int, cooperative: bool = False) -> None:
    """One member, then three, then one leaves cleanly, while records keep coming."""
    log = ConsumeLog()
    steady = SteadyProducer(spate.bootstrap, topic, partitions).start()
    members: list[Member] = []
    try:
        first = make(log, "m1")
        members.append(first.start())
        wait_balanced_and_consuming([first], partitions, steady, "with one member")
        assert first.assignment() == set(range(partitions))

        joined = [make(log, "m2"), make(log, "m3")]
        members.extend(m.start() for m in joined)
        trio = [first, *joined]
        wait_balanced_and_consuming(trio, partitions, steady, "with three members")
        if cooperative:
            kept = first.assignment()
            revoked = set().union(*first.revoked_partitions())
            assert not (revoked & kept), (
                f"cooperative rebalance revoked partitions m1 kept: revoked {revoked}, kept {kept}"
            )
            assert not first.lost_events, f"m1 lost partitions: {first.lost_events}"
        revokes_before_leave = {m.name: len(m.revoked_partitions()) for m in trio}

        leaving = joined[0]
        leaving.stop()  # a clean close: LeaveGroup
        staying = [first, joined[1]]
        wait_balanced_and_consuming(staying, partitions, steady, "after m2 left")
        if cooperative:
            for m in staying:
                assert len(m.revoked_partitions()) == revokes_before_leave[m.name], (
                    f"{m.name} had partitions revoked when m2 left (cooperative rebalances only "
                    f"hand out m2's partitions): {m.revoked_partitions()}"
                )

        produced = steady.stop()
        check_every_record_once(log, produced)
        for m in staying:
            m.stop()
    finally:
        steady._stop.set()
        for m in members:
            m._stop.set()
        for m in members:
            m._thread.join(30)
    for m in members:
        m.check()
    # Every batch was committed after processing, so the group's offsets are the end of the log.
    expected = {(topic, p): watermarks(spate.bootstrap, topic, p)[1] for p in range(partitions)}
    assert committed_offsets(spate.bootstrap, group) == expected


# --- 1, 2: join and leave with every client ---------------------------------------------------


def test_confluent_kafka_group_consumes_every_record_once_while_members_join_and_leave(spate):
    topic, group = unique("grp-ck"), unique("g-ck")
    create_topic(spate.bootstrap, topic, 6)

    def make(log: ConsumeLog, name: str) -> Member:
        return CkMember(name, log, spate.bootstrap, group, topic)

    join_and_leave(spate, make, topic, group, 6)


def test_confluent_kafka_cooperative_sticky_rebalances_incrementally(spate):
    topic, group = unique("grp-coop"), unique("g-coop")
    create_topic(spate.bootstrap, topic, 6)

    def make(log: ConsumeLog, name: str) -> Member:
        return CkMember(name, log, spate.bootstrap, group, topic,
                        **{"partition.assignment.strategy": "cooperative-sticky"})

    join_and_leave(spate, make, topic, group, 6, cooperative=True)


def test_kip848_group_consumes_every_record_once_while_members_join_and_leave(spate):
    """group.protocol=consumer: the broker assigns (uniform assignor) and moves partitions one
    member at a time, revoking before reassigning, so the cooperative checks apply too."""
    topic, group = unique("grp-848"), unique("g-848")
    create_topic(spate.bootstrap, topic, 6)

    def make(log: ConsumeLog, name: str) -> Member:
        return CkMember(name, log, spate.bootstrap, group, topic, **{"group.protocol": "consumer"})

    join_and_leave(spate, make, topic, group, 6, cooperative=True)


def test_kip848_regex_and_literal_subscription_literal_first_regex_resolved_after(spate):
    """As Kafka's coordinator: a member subscribing to a regex and a literal topic gets the
    literal topic at once; the regex is resolved apart from heartbeats and its matches (never
    internal topics) follow, and so does a matching topic created later."""
    prefix = unique("rx")
    literal = unique("lit")
    for name, partitions in ((f"{prefix}-a", 2), (f"{prefix}-b", 1), (literal, 1)):
        create_topic(spate.bootstrap, name, partitions)
    c = Consumer({
        "bootstrap.servers": spate.bootstrap,
        "group.id": unique("g-rx"),
        "group.protocol": "consumer",
        "auto.offset.reset": "earliest",
    })
    seen: list[list[tuple[str, int]]] = []

    def assignment_is(want: set[tuple[str, int]]) -> bool:
        c.poll(0.1)
        got = sorted((tp.topic, tp.partition) for tp in c.assignment())
        if got and (not seen or seen[-1] != got):
            seen.append(got)
        return set(got) == want

    try:
        c.subscribe([f"^{prefix}-.*", literal])
        everything = {(f"{prefix}-a", 0), (f"{prefix}-a", 1), (f"{prefix}-b", 0), (literal, 0)}
        wait_until(lambda: assignment_is(everything), 30, what=f"the full assignment (seen {seen})")
        assert seen[0] == [(literal, 0)], f"the literal topic comes first, alone: {seen}"

        create_topic(spate.bootstrap, f"{prefix}-c", 1)
        wait_until(
            lambda: assignment_is(everything | {(f"{prefix}-c", 0)}),
            30,
            what=f"a new matching topic assigned (seen {seen})",
        )
    finally:
        c.close()


def test_kip848_committed_offsets_survive_restart_and_crash(spate):
    topic, group = unique("grp-848-restart"), unique("g-848-restart")
    create_topic(spate.bootstrap, topic, 3)
    produce_per_partition(spate.bootstrap, topic, 3, 30)

    def consumer() -> Consumer:
        return Consumer({
            "bootstrap.servers": spate.bootstrap,
            "group.id": group,
            "group.protocol": "consumer",
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
        })

    c = consumer()
    try:
        consume_subscribed(c, topic, 90)
        first = {0: 5, 1: 11, 2: 29}
        commit_sync(c, [TopicPartition(topic, p, o) for p, o in first.items()])
    finally:
        c.close()
    for stop in (spate.stop, spate.kill):  # SIGTERM, then SIGKILL
        stop()
        spate.start()
        c = consumer()
        try:
            msgs = consume_subscribed(c, topic, sum(30 - o for o in first.values()))
            assert offsets_by_partition(msgs) == {p: list(range(o, 30)) for p, o in first.items()}, (
                "the KIP-848 group did not resume at its committed offsets after a restart"
            )
        finally:
            c.close()


def test_kafka_python_group_consumes_every_record_once_while_members_join_and_leave(spate):
    topic, group = unique("grp-kp"), unique("g-kp")
    create_topic(spate.bootstrap, topic, 6)

    def make(log: ConsumeLog, name: str) -> Member:
        return KpMember(name, log, spate.bootstrap, group, topic)

    join_and_leave(spate, make, topic, group, 6)


# --- plain consumers, metrics -----------------------------------------------------------------


def group_consumer(bootstrap: str, group: str, **conf: Any) -> Consumer:
    return Consumer({
        "bootstrap.servers": bootstrap,
        "group.id": group,
        "enable.auto.commit": False,
        "auto.offset.reset": "earliest",
        **CK_GROUP_CONF,
        **conf,
    })


def consume_subscribed(c: Consumer, topic: str, count: int, timeout_s: float = 60.0) -> list[Any]:
    """Subscribes and polls until `count` records arrived."""
    c.subscribe([topic])
    out: list[Any] = []
    deadline = time.monotonic() + timeout_s
    while len(out) < count:
        assert time.monotonic() < deadline, f"consumed {len(out)} of {count} records within {timeout_s}s"
        for m in c.consume(num_messages=500, timeout=0.2):
            if m.error():
                raise KafkaException(m.error())
            out.append(m)
    return out


def offsets_by_partition(msgs: list[Any]) -> dict[int, list[int]]:
    out: dict[int, list[int]] = collections.defaultdict(list)
    for m in msgs:
        out[m.partition()].append(m.offset())
    return {p: sorted(o) for p, o in out.items()}


def produce_per_partition(bootstrap: str, topic: str, partitions: int, count: int, tag: str = "") -> None:
    records = [{"value": f"{tag}{p}-{i}".encode(), "partition": p}
               for i in range(count) for p in range(partitions)]
    produce_all(producer(bootstrap, **{"acks": "all"}), topic, records)


def commit_sync(c: Consumer, offsets: list[TopicPartition]) -> None:
    result = c.commit(offsets=offsets, asynchronous=False)
    failed = [tp for tp in result if tp.error is not None]
    assert not failed, f"commit failed: {failed}"


def committed_with_metadata(c: Consumer, topic: str, partitions: int) -> dict[int, tuple[int, str | None]]:
    got = c.committed([TopicPartition(topic, p) for p in range(partitions)], timeout=30)
    return {tp.partition: (tp.offset, tp.metadata) for tp in got}


METRIC_LINE = re.compile(r"^(\w+)(?:\{([^}]*)\})?\s+(\S+)$")


def metrics(http_addr: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """GET /metrics, parsed: (name, labels) → value."""
    with urllib.request.urlopen(f"http://{http_addr}/metrics", timeout=10) as resp:
        text = resp.read().decode()
    out = {}
    for line in text.splitlines():
        m = METRIC_LINE.match(line)
        if not m:
            continue
        labels = frozenset(re.findall(r'(\w+)="([^"]*)"', m.group(2) or ""))
        out[(m.group(1), labels)] = float(m.group(3))
    return out


def metric(http_addr: str, name: str, **labels: str) -> float | None:
    return metrics(http_addr).get((name, frozenset(labels.items())))


# --- 3: committed offsets across a restart and a crash ----------------------------------------


def test_committed_offsets_and_metadata_survive_restart_and_crash(spate):
    spate.allow_errors(r"(?i)torn|truncat")
    topic, group = unique("grp-restart"), unique("g-restart")
    create_topic(spate.bootstrap, topic, 3)
    produce_per_partition(spate.bootstrap, topic, 3, 40)

    c = group_consumer(spate.bootstrap, group)
    try:
        consume_subscribed(c, topic, 120)
        first = {0: 7, 1: 19, 2: 33}
        commit_sync(c, [TopicPartition(topic, p, o, metadata=f"first-{p}") for p, o in first.items()])
        assert committed_with_metadata(c, topic, 3) == {p: (o, f"first-{p}") for p, o in first.items()}
    finally:
        c.close()

    spate.stop()  # SIGTERM
    spate.start()

    c = group_consumer(spate.bootstrap, group)
    try:
        assert committed_with_metadata(c, topic, 3) == {p: (o, f"first-{p}") for p, o in first.items()}
        msgs = consume_subscribed(c, topic, sum(40 - o for o in first.values()))
        assert offsets_by_partition(msgs) == {p: list(range(o, 40)) for p, o in first.items()}, (
            "after a restart the group did not resume at its committed offsets"
        )
        second = {0: 20, 1: 30, 2: 40}
        commit_sync(c, [TopicPartition(topic, p, o, metadata=f"second-{p}") for p, o in second.items()])
    finally:
        c.close()

    spate.kill()  # SIGKILL right after the commit was acknowledged
    spate.start()

    produce_per_partition(spate.bootstrap, topic, 3, 5, tag="after-crash-")
    c = group_consumer(spate.bootstrap, group)
    try:
        assert committed_with_metadata(c, topic, 3) == {p: (o, f"second-{p}") for p, o in second.items()}
        msgs = consume_subscribed(c, topic, sum(45 - o for o in second.values()))
        assert offsets_by_partition(msgs) == {p: list(range(o, 45)) for p, o in second.items()}, (
            "after a crash the group did not resume at its committed offsets"
        )
    finally:
        c.close()


def test_pipelined_async_commits_take_effect_in_the_order_they_were_sent(spate):
    """librdkafka pipelines asynchronous OffsetCommits on the coordinator connection; Kafka
    applies a connection's requests one at a time, so the last commit sent is the one read
    back — never an earlier one that happened to be appended last."""
    topic, group = unique("grp-pipelined"), unique("g-pipelined")
    create_topic(spate.bootstrap, topic, 1)
    produce_per_partition(spate.bootstrap, topic, 1, 100)
    answered: list[Any] = []
    c = group_consumer(
        spate.bootstrap, group, on_commit=lambda err, parts: answered.append((err, parts))
    )
    try:
        c.assign([TopicPartition(topic, 0, 0)])
        for round_ in range(3):
            for offset in range(1, 101):
                c.commit(offsets=[TopicPartition(topic, 0, offset + round_ * 100)], asynchronous=True)
            wait_until(
                lambda: (c.poll(0.1), len(answered) >= 100 * (round_ + 1))[1],
                60,
                what="answers to 100 asynchronous commits",
            )
            errors = [err for err, _ in answered if err is not None]
            assert not errors, f"asynchronous commits failed: {errors[:3]}"
            got = c.committed([TopicPartition(topic, 0)], timeout=30)[0].offset
            assert got == 100 + round_ * 100, (
                f"round {round_}: 100 pipelined commits ending at {100 + round_ * 100} read back as {got}"
            )
    finally:
        c.close()


# --- 4: static membership ---------------------------------------------------------------------


def test_static_member_rejoins_with_its_assignment_without_a_rebalance(spate):
    topic, group = unique("grp-static"), unique("g-static")
    create_topic(spate.bootstrap, topic, 6)
    log = ConsumeLog()
    steady = SteadyProducer(spate.bootstrap, topic, 6, max_in_flight=12).start()

    def make(name: str) -> CkMember:
        # The session outlives the restart, so the broker keeps the member's place.
        return CkMember(name, log, spate.bootstrap, group, topic,
                        **{"group.instance.id": f"instance-{name}", "session.timeout.ms": 45000})

    members: list[Member] = []
    try:
        # b joins first and leads; a, the member that restarts, is a follower.
        b = make("b").start()
        members.append(b)
        wait_until(lambda: b.assignment() == set(range(6)), 60, what="b owning every partition")
        c, a = make("c").start(), make("a").start()
        members += [c, a]
        wait_balanced_and_consuming([a, b, c], 6, steady, "with three static members")

        def described() -> Any:
            futures = admin(spate.bootstrap).describe_consumer_groups([group], request_timeout=30)
            return futures[group].result(30)

        d = described()
        assert d.state == ConsumerGroupState.STABLE
        assert sorted(m.group_instance_id for m in d.members) == ["instance-a", "instance-b", "instance-c"]
        a_partitions = a.assignment()
        others = {m.name: (m.assigns(), len(m.revoked_partitions()), m.assignment()) for m in (b, c)}
        leaves = metric(spate.http_addr, "spate_kafka_requests_total", api="LeaveGroup") or 0

        a.stop()  # close(): a static member does not leave the group
        assert (metric(spate.http_addr, "spate_kafka_requests_total", api="LeaveGroup") or 0) == leaves, (
            "librdkafka sent LeaveGroup for a static member on close"
        )
        d = described()
        assert d.state == ConsumerGroupState.STABLE
        assert sorted(m.group_instance_id for m in d.members) == ["instance-a", "instance-b", "instance-c"], (
            "the closed static member was removed before its session timed out"
        )

        a2 = make("a").start()
        members.append(a2)
        wait_until(lambda: a2.assignment() == a_partitions, 60,
                   what=f"the restarted static member getting its partitions {a_partitions} back")
        # Let the group run a while before judging that no rebalance happened: every member
        # consuming new records, and a few heartbeats from each (a rebalance would reach b and c
        # as REBALANCE_IN_PROGRESS on one).
        beats = metric(spate.http_addr, "spate_kafka_requests_total", api="Heartbeat") or 0
        wait_balanced_and_consuming([a2, b, c], 6, steady, "after the static member came back")
        wait_until(lambda: (metric(spate.http_addr, "spate_kafka_requests_total", api="Heartbeat") or 0)
                   >= beats + 9, 30, what="three more heartbeats per member")
        assert len(a2.assign_events) == 1, f"the restarted member was assigned {a2.assign_events}"
        for m in (b, c):
            now = (m.assigns(), len(m.revoked_partitions()), m.assignment())
            assert now == others[m.name], (
                f"{m.name} saw a rebalance when a static member rejoined: "
                f"(assigns, revokes, partitions) went from {others[m.name]} to {now}"
            )
        assert described().state == ConsumerGroupState.STABLE
        produced = steady.stop()
        check_every_record_once(log, produced)
    finally:
        steady._stop.set()
        for m in members:
            m._stop.set()
        for m in members:
            m._thread.join(30)
    for m in members:
        m.check()


# --- 5: group administration with AdminClient -------------------------------------------------


def test_group_admin_lists_describes_alters_and_deletes(spate):
    from kafka import KafkaAdminClient
    from kafka import TopicPartition as KTopicPartition
    from kafka.errors import GroupIdNotFoundError

    topic, active, empty = unique("grp-admin"), unique("g-active"), unique("g-empty")
    create_topic(spate.bootstrap, topic, 3)
    produce_per_partition(spate.bootstrap, topic, 3, 10)
    a = admin(spate.bootstrap)
    log = ConsumeLog()
    member = CkMember("admin-m", log, spate.bootstrap, active, topic).start()
    try:
        wait_until(lambda: member.assignment() == {0, 1, 2} and member.consumed_count() == 30, 60,
                   what="the active group's member consuming every record")
        wait_until(lambda: committed_offsets(spate.bootstrap, active)
                   == {(topic, p): 10 for p in range(3)}, 30, what="the member's commits")

        # alter_consumer_group_offsets on a group nobody is in: the group exists with offsets only.
        altered = a.alter_consumer_group_offsets(
            [ConsumerGroupTopicPartitions(empty, [TopicPartition(topic, 0, 5), TopicPartition(topic, 1, 6)])],
            request_timeout=30,
        )[empty].result(30)
        assert [(tp.partition, tp.offset, tp.error) for tp in altered.topic_partitions] == [
            (0, 5, None), (1, 6, None)
        ]
        assert committed_offsets(spate.bootstrap, empty) == {(topic, 0): 5, (topic, 1): 6}

        # ...but not on a group with members: only members commit there.
        busy = a.alter_consumer_group_offsets(
            [ConsumerGroupTopicPartitions(active, [TopicPartition(topic, 0, 1)])], request_timeout=30
        )[active].result(30)
        assert [(tp.partition, tp.error and tp.error.code()) for tp in busy.topic_partitions] == [
            (0, UNKNOWN_MEMBER_ID)
        ]
        assert committed_offsets(spate.bootstrap, active)[(topic, 0)] == 10

        listed = a.list_consumer_groups(request_timeout=30).result(30)
        assert not listed.errors
        states = {g.group_id: g.state for g in listed.valid}
        assert states.get(active) == ConsumerGroupState.STABLE
        assert states.get(empty) == ConsumerGroupState.EMPTY
        simple = {g.group_id: g.is_simple_consumer_group for g in listed.valid}
        stable = a.list_consumer_groups(request_timeout=30, states={ConsumerGroupState.STABLE}).result(30)
        assert active in {g.group_id for g in stable.valid}
        assert empty not in {g.group_id for g in stable.valid}

        futures = a.describe_consumer_groups([active, empty], request_timeout=30)
        d = futures[active].result(30)
        assert d.state == ConsumerGroupState.STABLE
        assert not d.is_simple_consumer_group
        assert d.partition_assignor == "range"
        assert [(m.client_id, m.group_instance_id) for m in d.members] == [("admin-m", None)]
        assert sorted((tp.topic, tp.partition) for tp in d.members[0].assignment.topic_partitions) == [
            (topic, p) for p in range(3)
        ]
        e = futures[empty].result(30)
        assert e.state == ConsumerGroupState.EMPTY
        assert e.members == []

        # Deleting: a group with members is refused; an empty one goes.
        assert future_error_code(a.delete_consumer_groups([active], request_timeout=30)[active]) == NON_EMPTY_GROUP
        a.delete_consumer_groups([empty], request_timeout=30)[empty].result(30)
        assert empty not in {g.group_id for g in a.list_consumer_groups(request_timeout=30).result(30).valid}
        assert committed_offsets(spate.bootstrap, empty) == {}
        missing = unique("g-missing")
        assert future_error_code(a.delete_consumer_groups([missing], request_timeout=30)[missing]) == GROUP_ID_NOT_FOUND

        # OffsetDelete (confluent-kafka has no call for it; kafka-python's admin does).
        kadmin = KafkaAdminClient(bootstrap_servers=spate.bootstrap)
        try:
            result = kadmin.delete_group_offsets(active, [KTopicPartition(topic, 0)])
            assert {tp.partition: err.errno for tp, err in result.items()} == {0: GROUP_SUBSCRIBED_TO_TOPIC}
            member.stop()
            wait_until(lambda: a.describe_consumer_groups([active], request_timeout=30)[active].result(30).state
                       == ConsumerGroupState.EMPTY, 30, what="the active group empty after its member left")
            result = kadmin.delete_group_offsets(active, [KTopicPartition(topic, 0)])
            assert {tp.partition: err.errno for tp, err in result.items()} == {0: NONE}
            assert committed_offsets(spate.bootstrap, active) == {(topic, 1): 10, (topic, 2): 10}
            with pytest.raises(GroupIdNotFoundError):
                kadmin.delete_group_offsets(unique("g-missing"), [KTopicPartition(topic, 0)])
        finally:
            kadmin.close()
    finally:
        member._stop.set()
        member._thread.join(30)
    member.check()

    # The protocol type, last: a group made by offset commits alone is a "simple" group (empty
    # protocol type); a consumer group keeps "consumer" when its members leave (Kafka keeps the
    # type of an Empty group). ListGroups and DescribeGroups must agree.
    kept = a.describe_consumer_groups([active], request_timeout=30)[active].result(30)
    assert (simple[active], simple[empty], e.is_simple_consumer_group, kept.is_simple_consumer_group) == (
        False, True, True, False
    ), (
        "is_simple_consumer_group (ListGroups active, ListGroups offsets-only, DescribeGroups "
        "offsets-only, DescribeGroups consumer group after its members left)"
    )


# --- 6: kcat's balanced consumer --------------------------------------------------------------


def test_kcat_balanced_consumer_commits_are_visible_to_confluent_kafka(spate):
    topic, group = unique("grp-kcat"), unique("g-kcat")
    create_topic(spate.bootstrap, topic, 3)
    produce_per_partition(spate.bootstrap, topic, 3, 25)
    proc = kcat([
        "-b", spate.bootstrap, "-G", group, "-o", "beginning", "-e", "-q",
        "-f", "%p %o\\n",
        "-X", "session.timeout.ms=10000", "-X", "heartbeat.interval.ms=500",
        topic,
    ])
    lines = proc.stdout.decode().split()
    got = sorted(zip(map(int, lines[::2]), map(int, lines[1::2])))
    assert got == [(p, o) for p in range(3) for o in range(25)], "kcat -G did not consume every record once"
    # kcat commits on close (auto commit); a confluent-kafka consumer in the group sees it.
    c = group_consumer(spate.bootstrap, group)
    try:
        assert committed_with_metadata(c, topic, 3) == {p: (25, None) for p in range(3)}
    finally:
        c.close()


# --- 7: lag on /metrics -----------------------------------------------------------------------


def test_lag_metric_is_high_watermark_minus_committed_offset(spate):
    topic, group = unique("grp-lag"), unique("g-lag")
    create_topic(spate.bootstrap, topic, 2)
    produce_per_partition(spate.bootstrap, topic, 2, 30)
    labels = {"group": group, "topic": topic}

    def lag(partition: int) -> float | None:
        return metric(spate.http_addr, "spate_consumer_group_lag", partition=str(partition), **labels)

    def committed(partition: int) -> float | None:
        return metric(spate.http_addr, "spate_consumer_group_committed_offset", partition=str(partition), **labels)

    c = group_consumer(spate.bootstrap, group)
    try:
        consume_subscribed(c, topic, 60)
        commit_sync(c, [TopicPartition(topic, 0, 12), TopicPartition(topic, 1, 30)])
        wait_until(lambda: (lag(0), committed(0), lag(1), committed(1)) == (18, 12, 0, 30), 30,
                   what="lag 18 and 0 for committed offsets 12 and 30 of 30 records")

        produce_per_partition(spate.bootstrap, topic, 2, 7, tag="more-")
        assert watermarks(spate.bootstrap, topic, 0)[1] == 37
        wait_until(lambda: (lag(0), lag(1)) == (25, 7), 30, what="lag growing with the high watermark")

        commit_sync(c, [TopicPartition(topic, 0, 37)])
        wait_until(lambda: (lag(0), committed(0)) == (0, 37), 30, what="lag 0 after committing the end")
    finally:
        c.close()


# --- 8: bad input -----------------------------------------------------------------------------

API_OFFSET_COMMIT = 8
API_JOIN_GROUP = 11
API_HEARTBEAT = 12
API_SYNC_GROUP = 14


class RawMember:
    """One member of a group spoken by hand (JoinGroup v5, SyncGroup v3, Heartbeat v3,
    OffsetCommit v7: the last versions before flexible encoding)."""

    def __init__(self, addr: str, group: str, session_timeout_ms: int = 30000,
                 rebalance_timeout_ms: int = 60000):
        self.conn = wire.RawConnection(addr, timeout_s=30)
        self.group = group
        self.session_timeout_ms = session_timeout_ms
        self.rebalance_timeout_ms = rebalance_timeout_ms
        self.member_id = ""
        self.generation = -1
        self.leader = ""
        self.members: list[str] = []

    def close(self) -> None:
        self.conn.close()

    def send_join(self, session_timeout_ms: int | None = None) -> int:
        body = (
            wire.string(self.group)
            + wire.i32(self.session_timeout_ms if session_timeout_ms is None else session_timeout_ms)
            + wire.i32(self.rebalance_timeout_ms)
            + wire.string(self.member_id)
            + wire.string(None)  # group instance id
            + wire.string("consumer")
            + wire.array([wire.string("range") + wire.kbytes(b"\x00\x00")])
        )
        return self.conn.send_request(API_JOIN_GROUP, 5, body)

    def recv_join(self, cid: int, timeout_s: float = 30) -> int:
        r = self.conn.recv_response(cid, timeout_s=timeout_s)
        r.i32()  # throttle
        error = r.i16()
        generation = r.i32()
        r.string()  # protocol name
        leader = r.string()
        member_id = r.string()
        members = []
        for _ in range(r.i32()):
            members.append(r.string())
            r.string()
            r.kbytes()
        if member_id:
            self.member_id = member_id
        if error == NONE:
            self.generation, self.leader, self.members = generation, leader, members
        return error

    def join(self, session_timeout_ms: int | None = None) -> int:
        """JoinGroup, answering MEMBER_ID_REQUIRED (KIP-394) by joining again with the id."""
        error = self.recv_join(self.send_join(session_timeout_ms))
        if error == MEMBER_ID_REQUIRED:
            assert self.member_id, "MEMBER_ID_REQUIRED without a member id"
            error = self.recv_join(self.send_join(session_timeout_ms))
        return error

    def sync(self, assignments: dict[str, bytes] | None = None) -> int:
        body = (
            wire.string(self.group) + wire.i32(self.generation) + wire.string(self.member_id)
            + wire.string(None)
            + wire.array([wire.string(m) + wire.kbytes(a) for m, a in (assignments or {}).items()])
        )
        r = self.conn.recv_response(self.conn.send_request(API_SYNC_GROUP, 3, body))
        r.i32()
        error = r.i16()
        r.kbytes()
        return error

    def heartbeat(self, member_id: str | None = None, generation: int | None = None) -> int:
        body = (
            wire.string(self.group)
            + wire.i32(self.generation if generation is None else generation)
            + wire.string(self.member_id if member_id is None else member_id)
            + wire.string(None)
        )
        r = self.conn.recv_response(self.conn.send_request(API_HEARTBEAT, 3, body))
        r.i32()
        return r.i16()

    def commit(self, offsets: dict[str, dict[int, int]], generation: int | None = None) -> dict[str, dict[int, int]]:
        body = (
            wire.string(self.group)
            + wire.i32(self.generation if generation is None else generation)
            + wire.string(self.member_id)
            + wire.string(None)
            + wire.array([
                wire.string(topic) + wire.array([
                    wire.i32(p) + wire.i64(o) + wire.i32(-1) + wire.string(None) for p, o in parts.items()
                ])
                for topic, parts in offsets.items()
            ])
        )
        r = self.conn.recv_response(self.conn.send_request(API_OFFSET_COMMIT, 7, body))
        r.i32()
        out: dict[str, dict[int, int]] = {}
        for _ in range(r.i32()):
            name = r.string()
            out[name] = {}
            for _ in range(r.i32()):
                partition = r.i32()
                out[name][partition] = r.i16()
        return out


def test_group_requests_with_bad_input_get_kafka_error_codes(spate):
    topic, group = unique("grp-bad"), unique("g-bad")
    create_topic(spate.bootstrap, topic, 2)

    leader = RawMember(spate.bootstrap, group)
    follower = RawMember(spate.bootstrap, group)
    try:
        assert leader.join(session_timeout_ms=1) == INVALID_SESSION_TIMEOUT
        assert leader.join(session_timeout_ms=1_800_001) == INVALID_SESSION_TIMEOUT

        assert leader.join() == NONE
        assert leader.generation == 1 and leader.leader == leader.member_id
        assert leader.sync({leader.member_id: b"a"}) == NONE
        assert leader.heartbeat() == NONE
        assert leader.heartbeat(member_id="no-such-member") == UNKNOWN_MEMBER_ID

        # A second member joins (after MEMBER_ID_REQUIRED, KIP-394): its JoinGroup waits while
        # the leader learns of the rebalance from its heartbeat and rejoins.
        assert follower.recv_join(follower.send_join()) == MEMBER_ID_REQUIRED
        follower_join = follower.send_join()
        wait_until(lambda: leader.heartbeat() == REBALANCE_IN_PROGRESS, 30,
                   what="REBALANCE_IN_PROGRESS on the leader's heartbeat")
        assert leader.join() == NONE
        assert follower.recv_join(follower_join) == NONE
        assert leader.generation == follower.generation == 2
        assert leader.sync({leader.member_id: b"a", follower.member_id: b"b"}) == NONE
        assert follower.sync() == NONE
        assert leader.heartbeat() == NONE
        assert follower.heartbeat() == NONE

        # Stale generation.
        assert follower.heartbeat(generation=1) == ILLEGAL_GENERATION
        assert follower.commit({topic: {0: 1}}, generation=1) == {topic: {0: ILLEGAL_GENERATION}}

        # A commit naming partitions that do not exist fails for those partitions only.
        missing_topic = unique("no-such-topic")
        result = leader.commit({topic: {0: 1, 1: 2, 99: 3}, missing_topic: {0: 4}})
        assert result == {
            topic: {0: NONE, 1: NONE, 99: UNKNOWN_TOPIC_OR_PARTITION},
            missing_topic: {0: UNKNOWN_TOPIC_OR_PARTITION},
        }
        assert committed_offsets(spate.bootstrap, group) == {(topic, 0): 1, (topic, 1): 2}
    finally:
        leader.close()
        follower.close()


def test_a_stuck_group_never_blocks_another_group(spate):
    topic = unique("grp-stuck")
    create_topic(spate.bootstrap, topic, 3)
    produce_per_partition(spate.bootstrap, topic, 3, 20)
    stuck, healthy = unique("g-stuck"), unique("g-healthy")

    # Group `stuck`: a member that joined and then went silent (no heartbeats, no rejoin), and
    # a newcomer whose JoinGroup waits for it, for up to a 5-minute rebalance timeout.
    silent = RawMember(spate.bootstrap, stuck, session_timeout_ms=120000, rebalance_timeout_ms=300000)
    newcomer = RawMember(spate.bootstrap, stuck, session_timeout_ms=120000, rebalance_timeout_ms=300000)
    try:
        assert silent.join() == NONE
        assert silent.sync({silent.member_id: b""}) == NONE
        assert newcomer.recv_join(newcomer.send_join()) == MEMBER_ID_REQUIRED
        parked = newcomer.send_join()  # answered only when `silent` rejoins or times out
        wait_until(
            lambda: admin(spate.bootstrap).describe_consumer_groups([stuck], request_timeout=30)[stuck]
            .result(30).state == ConsumerGroupState.PREPARING_REBALANCING,
            30, what="the stuck group rebalancing",
        )

        # Meanwhile another group joins, consumes and commits as if nothing happened.
        c = group_consumer(spate.bootstrap, healthy)
        try:
            msgs = consume_subscribed(c, topic, 60)
            assert offsets_by_partition(msgs) == {p: list(range(20)) for p in range(3)}
            commit_sync(c, [TopicPartition(topic, p, 20) for p in range(3)])
        finally:
            c.close()
        assert committed_offsets(spate.bootstrap, healthy) == {(topic, p): 20 for p in range(3)}

        # The stuck group is still where it was: the newcomer's join is still parked.
        d = admin(spate.bootstrap).describe_consumer_groups([stuck], request_timeout=30)[stuck].result(30)
        assert d.state == ConsumerGroupState.PREPARING_REBALANCING
        with pytest.raises(TimeoutError):
            newcomer.recv_join(parked, timeout_s=0.01)
    finally:
        silent.close()
        newcomer.close()
