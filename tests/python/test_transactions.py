"""Transactions (KIP-98, transaction version 1) with real clients against `spate serve`.

confluent-kafka (librdkafka 2.16) and kafka-python 3 drive the transaction coordinator:
commit and abort as read_committed and read_uncommitted consumers see them, the last stable
offset, fencing by epoch, transaction timeouts, restarts, the admin APIs, and the exactly-once
consume–transform–produce loop of issue 3 run in separate processes (`eos_worker.py`) with an
injected abort and a producer killed mid-transaction.

How absence is asserted without sleeping: after the transactions under test have ended, a
plain (non-transactional) sentinel record is appended and a consumer reads until it sees the
sentinel; anything a read_committed consumer could wrongly see lies before it. While a
transaction is still open, a consumer reads until librdkafka's partition-EOF event, which a
read_committed consumer gets at the last stable offset.
"""

from __future__ import annotations

import json
import queue
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import (
    OFFSET_BEGINNING,
    Consumer,
    IsolationLevel,
    KafkaError,
    KafkaException,
    Producer,
    TopicPartition,
)
from confluent_kafka.admin import OffsetSpec
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer
from kafka import TopicPartition as KTopicPartition
from kafka.errors import KafkaError as KPKafkaError
from kafka.errors import ProducerFencedError
from kafka.structs import OffsetAndMetadata

import kafka_wire as wire
from helpers import admin, consumer, create_topic, produce_all, producer, unique, wait_until

WORKER = Path(__file__).with_name("eos_worker.py")

# --- confluent-kafka helpers ------------------------------------------------------------------


def txn_producer(bootstrap: str, transactional_id: str, **conf: Any) -> Producer:
    """A transactional producer, initialised (InitProducerId with the transactional id).

    No message.timeout.ms: librdkafka requires it not to exceed transaction.timeout.ms and
    adjusts the default itself."""
    base = {"bootstrap.servers": bootstrap, "transactional.id": transactional_id, "linger.ms": 5}
    base.update(conf)
    p = Producer(base)
    p.init_transactions(30)
    return p


def send(p: Producer, topic: str, values: list[bytes], partition: int = 0) -> list[int]:
    """Produces `values` and waits until every one is on the broker; returns their offsets.

    Inside a transaction this matters for aborts: librdkafka purges records still queued in the
    client when abort_transaction() is called, so without the flush nothing would reach the
    broker and the abort would prove nothing."""
    offsets: dict[bytes, int] = {}
    errors: list[KafkaError] = []

    def on_delivery(err: KafkaError | None, msg: Any) -> None:
        if err is not None:
            errors.append(err)
        else:
            offsets[msg.value()] = msg.offset()

    for v in values:
        p.produce(topic, value=v, partition=partition, on_delivery=on_delivery)
    remaining = p.flush(30)
    assert remaining == 0, f"{remaining} records still queued after 30 s"
    assert not errors, f"delivery failed: {[str(e) for e in errors]}"
    return [offsets[v] for v in values]


def append_sentinel(bootstrap: str, topic: str, partition: int = 0) -> bytes:
    """Appends a plain record after everything else; readers stop when they reach it."""
    sentinel = unique("sentinel").encode()
    record = {"value": sentinel, "partition": partition}
    produce_all(producer(bootstrap, acks="all"), topic, [record])
    return sentinel


def read_until_sentinel(
    bootstrap: str,
    topic: str,
    partition: int,
    isolation: str,
    sentinel: bytes,
    timeout_s: float = 30,
) -> list[tuple[int, bytes]]:
    """(offset, value) of every data record before `sentinel`, as a consumer with this
    isolation level sees them from the beginning of the partition."""
    c = consumer(bootstrap, **{"isolation.level": isolation})
    try:
        c.assign([TopicPartition(topic, partition, OFFSET_BEGINNING)])
        out: list[tuple[int, bytes]] = []
        deadline = time.monotonic() + timeout_s
        while True:
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"{isolation} consumer did not reach the sentinel of {topic}[{partition}] "
                    f"within {timeout_s}s; got {out}"
                )
            for m in c.consume(num_messages=500, timeout=0.5):
                if m.error():
                    raise AssertionError(f"consume error: {m.error()}")
                if m.value() == sentinel:
                    return out
                out.append((m.offset(), m.value()))
    finally:
        c.close()


def values_upto(
    bootstrap: str, topic: str, partition: int, isolation: str, sentinel: bytes
) -> list[bytes]:
    """Just the values of `read_until_sentinel`."""
    return [v for _, v in read_until_sentinel(bootstrap, topic, partition, isolation, sentinel)]


def eof_consumer(bootstrap: str, topic: str, partition: int, isolation: str) -> Consumer:
    c = consumer(bootstrap, **{"isolation.level": isolation, "enable.partition.eof": True})
    c.assign([TopicPartition(topic, partition, OFFSET_BEGINNING)])
    return c


def read_to_eof(c: Consumer, timeout_s: float = 30) -> tuple[list[tuple[int, bytes]], int]:
    """Polls until the partition-EOF event; returns the records before it and the EOF offset
    (the high watermark for read_uncommitted, the last stable offset for read_committed)."""
    out: list[tuple[int, bytes]] = []
    deadline = time.monotonic() + timeout_s
    while True:
        if time.monotonic() > deadline:
            raise AssertionError(f"no partition EOF within {timeout_s}s; got {out}")
        m = c.poll(0.5)
        if m is None:
            continue
        if m.error():
            if m.error().code() == KafkaError._PARTITION_EOF:
                return out, m.offset()
            raise AssertionError(f"consume error: {m.error()}")
        out.append((m.offset(), m.value()))


def latest_offset(bootstrap: str, topic: str, partition: int, isolation: IsolationLevel) -> int:
    """ListOffsets(latest) through the AdminClient: the LSO under read_committed."""
    tp = TopicPartition(topic, partition)
    futures = admin(bootstrap).list_offsets(
        {tp: OffsetSpec.latest()}, isolation_level=isolation, request_timeout=10
    )
    return futures[tp].result(timeout=30).offset


def lso(bootstrap: str, topic: str, partition: int = 0) -> int:
    return latest_offset(bootstrap, topic, partition, IsolationLevel.READ_COMMITTED)


def high_watermark(bootstrap: str, topic: str, partition: int = 0) -> int:
    return latest_offset(bootstrap, topic, partition, IsolationLevel.READ_UNCOMMITTED)


def committed_offset(bootstrap: str, group: str, topic: str, partition: int = 0) -> int:
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False})
    try:
        return c.committed([TopicPartition(topic, partition)], timeout=30)[0].offset
    finally:
        c.close()


def describe_txn(bootstrap: str, transactional_id: str) -> wire.TransactionDescription:
    with wire.RawConnection(bootstrap) as conn:
        (state,) = conn.describe_transactions([transactional_id])
    assert state.error_code == wire.ERROR_NONE, f"DescribeTransactions({transactional_id}): {state}"
    return state


def kafka_error(excinfo: pytest.ExceptionInfo[KafkaException]) -> KafkaError:
    err = excinfo.value.args[0]
    assert isinstance(err, KafkaError), excinfo.value
    return err


def assert_fenced(err: KafkaError) -> None:
    """librdkafka turns PRODUCER_FENCED and INVALID_PRODUCER_EPOCH into the fatal _FENCED."""
    assert err.fatal() and err.code() == KafkaError._FENCED, (
        f"expected a fatal fenced error (_FENCED, from PRODUCER_FENCED or INVALID_PRODUCER_EPOCH),"
        f" got {err.name()} fatal={err.fatal()} abortable={err.txn_requires_abort()}: {err.str()}"
    )


# --- commit, abort, interleaving --------------------------------------------------------------


def test_committed_transaction_is_seen_by_read_committed(spate):
    topic = unique("txn-commit")
    create_topic(spate.bootstrap, topic, 1)
    p = txn_producer(spate.bootstrap, unique("tid"))
    values = [f"c-{i}".encode() for i in range(20)]
    p.begin_transaction()
    offsets = send(p, topic, values)
    p.commit_transaction(30)

    sentinel = append_sentinel(spate.bootstrap, topic)
    for isolation in ("read_committed", "read_uncommitted"):
        got = read_until_sentinel(spate.bootstrap, topic, 0, isolation, sentinel)
        assert got == list(zip(offsets, values)), isolation
    # The commit marker is a control batch: it takes an offset but is never delivered.
    assert high_watermark(spate.bootstrap, topic) == offsets[-1] + 3  # marker + sentinel
    assert lso(spate.bootstrap, topic) == high_watermark(spate.bootstrap, topic)


def test_aborted_transaction_is_hidden_from_read_committed_only(spate):
    topic = unique("txn-abort")
    create_topic(spate.bootstrap, topic, 1)
    p = txn_producer(spate.bootstrap, unique("tid"))
    aborted = [f"a-{i}".encode() for i in range(10)]
    committed = [f"c-{i}".encode() for i in range(5)]
    p.begin_transaction()
    aborted_offsets = send(p, topic, aborted)
    p.abort_transaction(30)
    p.begin_transaction()
    committed_offsets = send(p, topic, committed)
    p.commit_transaction(30)

    sentinel = append_sentinel(spate.bootstrap, topic)
    assert read_until_sentinel(spate.bootstrap, topic, 0, "read_committed", sentinel) == list(
        zip(committed_offsets, committed)
    )
    assert read_until_sentinel(spate.bootstrap, topic, 0, "read_uncommitted", sentinel) == list(
        zip(aborted_offsets + committed_offsets, aborted + committed)
    )


def test_interleaved_transactions_of_two_producers_on_one_partition(spate):
    """Two producers' transactions overlap on one partition, one commits while the other
    aborts; read_committed must drop exactly the aborted ranges (the aborted-transactions list
    of each Fetch response) and keep offset order."""
    topic = unique("txn-interleave")
    create_topic(spate.bootstrap, topic, 1)
    p1 = txn_producer(spate.bootstrap, unique("tid-1"))
    p2 = txn_producer(spate.bootstrap, unique("tid-2"))
    plain = producer(spate.bootstrap, acks="all")
    committed: list[tuple[int, bytes]] = []
    everything: list[tuple[int, bytes]] = []

    for round_no, (p_commit, p_abort) in enumerate([(p1, p2), (p2, p1), (p1, p2)]):
        p_commit.begin_transaction()
        p_abort.begin_transaction()
        keep: list[tuple[int, bytes]] = []
        for i in range(4):
            # One record at a time, each flushed, so the two transactions' batches alternate.
            kept = f"r{round_no}-commit-{i}".encode()
            dropped = f"r{round_no}-abort-{i}".encode()
            keep += list(zip(send(p_commit, topic, [kept]), [kept]))
            everything += keep[-1:]
            everything += list(zip(send(p_abort, topic, [dropped]), [dropped]))
            if i == 1:
                # A plain record inside both transactions' ranges is always visible.
                v = f"r{round_no}-plain".encode()
                outcome = produce_all(plain, topic, [{"value": v, "partition": 0}])
                keep.append((outcome.delivered[0].offset, v))
                everything.append(keep[-1])
        if round_no % 2 == 0:
            p_commit.commit_transaction(30)
            p_abort.abort_transaction(30)
        else:
            p_abort.abort_transaction(30)
            p_commit.commit_transaction(30)
        committed += keep

    sentinel = append_sentinel(spate.bootstrap, topic)
    got = read_until_sentinel(spate.bootstrap, topic, 0, "read_committed", sentinel)
    assert got == sorted(committed)
    got = read_until_sentinel(spate.bootstrap, topic, 0, "read_uncommitted", sentinel)
    assert got == sorted(everything)


# --- last stable offset ------------------------------------------------------------------------


def test_open_transaction_holds_read_committed_at_the_last_stable_offset(spate):
    topic = unique("txn-lso")
    create_topic(spate.bootstrap, topic, 1)
    plain = producer(spate.bootstrap, acks="all")

    def append_plain(values: list[bytes]) -> list[int]:
        outcome = produce_all(plain, topic, [{"value": v, "partition": 0} for v in values])
        return sorted(d.offset for d in outcome.delivered)

    before = [b"before-0", b"before-1", b"before-2"]
    assert append_plain(before) == [0, 1, 2]
    p = txn_producer(spate.bootstrap, unique("tid"))
    p.begin_transaction()
    txn = [f"txn-{i}".encode() for i in range(5)]
    assert send(p, topic, txn) == [3, 4, 5, 6, 7]
    after = [b"after-0", b"after-1"]
    assert append_plain(after) == [8, 9]

    # ListOffsets(latest): the high watermark for read_uncommitted, the LSO (the first offset
    # of the open transaction) for read_committed; the same through a consumer's watermarks.
    assert high_watermark(spate.bootstrap, topic) == 10
    assert lso(spate.bootstrap, topic) == 3
    for isolation, end in (("read_committed", 3), ("read_uncommitted", 10)):
        c = consumer(spate.bootstrap, **{"isolation.level": isolation})
        try:
            got = c.get_watermark_offsets(TopicPartition(topic, 0), timeout=10, cached=False)
            assert got == (0, end), isolation
        finally:
            c.close()

    # A read_committed consumer stops at the LSO: not even the later plain records.
    rc = eof_consumer(spate.bootstrap, topic, 0, "read_committed")
    try:
        got, eof_at = read_to_eof(rc)
        assert got == list(enumerate(before)) and eof_at == 3
        ru = eof_consumer(spate.bootstrap, topic, 0, "read_uncommitted")
        try:
            got_ru, eof_ru = read_to_eof(ru)
        finally:
            ru.close()
        assert [v for _, v in got_ru] == before + txn + after and eof_ru == 10

        p.commit_transaction(30)
        # The same consumer now gets the transaction and what was written behind it.
        got, eof_at = read_to_eof(rc)
        assert got == list(zip(range(3, 10), txn + after))
        assert eof_at == 11  # after the commit marker at 10
    finally:
        rc.close()
    assert lso(spate.bootstrap, topic) == high_watermark(spate.bootstrap, topic) == 11


# --- exactly once: consume–transform–produce in separate processes ----------------------------


class Worker:
    """One eos_worker.py process; its JSON events are read from stdout by a thread."""

    def __init__(self, args: list[str], log_path: Path):
        self.log_path = log_path
        self.log = open(log_path, "ab")
        self.proc = subprocess.Popen(
            [sys.executable, str(WORKER), *args],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=self.log,
        )
        self.events: queue.Queue[dict[str, Any]] = queue.Queue()
        self.seen: list[dict[str, Any]] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for raw in self.proc.stdout:
            line = raw.decode(errors="replace").strip()
            if line:
                self.events.put(json.loads(line))

    def wait_for(self, event: str, timeout_s: float = 120) -> dict[str, Any]:
        deadline = time.monotonic() + timeout_s
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(
                    f"worker sent no {event!r} event within {timeout_s}s\n{self.stderr()}"
                )
            try:
                e = self.events.get(timeout=min(remaining, 0.5))
            except queue.Empty:
                if self.proc.poll() is not None and self.events.empty():
                    raise AssertionError(
                        f"worker exited with {self.proc.returncode} before {event!r}\n"
                        + self.stderr()
                    )
                continue
            self.seen.append(e)
            if e["event"] == event:
                return e

    def wait_exit(self, timeout_s: float = 120) -> int:
        try:
            return self.proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"worker still running after {timeout_s}s\n{self.stderr()}")

    def kill(self) -> None:
        self.proc.kill()
        self.proc.wait()

    def stderr(self) -> str:
        self.log.flush()
        return "--- worker stderr ---\n" + self.log_path.read_text(errors="replace")[-4000:]

    def close(self) -> None:
        if self.proc.poll() is None:
            self.kill()
        self._reader.join(5)
        self.log.close()


def test_exactly_once_across_an_injected_abort_and_a_producer_crash(spate, tmp_path):
    """Issue 3's Done means: a consume–transform–produce loop with transactional.id and a
    read_committed input consumer delivers every input record exactly once, across an abort
    it does on purpose and a SIGKILL in the middle of a transaction."""
    n, partitions = 300, 3
    src, dst = unique("eos-in"), unique("eos-out")
    create_topic(spate.bootstrap, src, partitions)
    create_topic(spate.bootstrap, dst, partitions)
    inputs = [f"in-{i:04d}".encode() for i in range(n)]
    produce_all(
        producer(spate.bootstrap, acks="all"),
        src,
        [
            {"key": f"k{i}".encode(), "value": v, "partition": i % partitions}
            for i, v in enumerate(inputs)
        ],
    )
    group, tid = unique("eos-group"), unique("eos-tid")
    common = [
        "--bootstrap", spate.bootstrap, "--input", src, "--output", dst, "--group", group,
        "--transactional-id", tid, "--input-partitions", str(partitions), "--expect", str(n),
        "--batch", "10",
    ]  # fmt: skip

    first = Worker([*common, "--abort-batch", "2", "--stall-batch", "5"], tmp_path / "worker-1.log")
    try:
        aborted = first.wait_for("aborted")
        stalled = first.wait_for("stalled")
        # The zombie's records are on the broker inside its open transaction.
        zombie = describe_txn(spate.bootstrap, tid)
        assert zombie.state == "Ongoing"
        first.kill()  # SIGKILL mid-transaction
    finally:
        first.close()

    second = Worker(common, tmp_path / "worker-2.log")
    try:
        second.wait_for("initialized")
        # The new InitProducerId bumped the epoch and aborted the zombie's transaction.
        fenced = describe_txn(spate.bootstrap, tid)
        assert fenced.producer_id == zombie.producer_id
        assert fenced.producer_epoch > zombie.producer_epoch
        done = second.wait_for("done")
        assert second.wait_exit() == 0
    finally:
        second.close()
    assert sum(done["committed"].values()) == n

    # The group's committed offsets are the end of the input, partition by partition.
    for p in range(partitions):
        assert committed_offset(spate.bootstrap, group, src, p) == n // partitions, f"partition {p}"

    out_committed: list[bytes] = []
    out_everything: list[bytes] = []
    for p in range(partitions):
        sentinel = append_sentinel(spate.bootstrap, dst, p)
        rc = values_upto(spate.bootstrap, dst, p, "read_committed", sentinel)
        # Each output partition holds its input partition's records, once each, in order.
        assert rc == [b"out-" + v[3:] for v in inputs[p::partitions]], f"output partition {p}"
        out_committed += rc
        out_everything += values_upto(spate.bootstrap, dst, p, "read_uncommitted", sentinel)
    assert sorted(out_committed) == sorted(b"out-" + v[3:] for v in inputs)

    # The faults really happened: the aborted batch and the zombie's batch were written (a
    # read_uncommitted consumer sees them twice) and read_committed saw them once.
    for v in aborted["values"] + stalled["values"]:
        out = ("out-" + v[3:]).encode()
        assert out_everything.count(out) == 2, f"{out!r} should be in the log twice"
        assert out_committed.count(out) == 1


# --- fencing -----------------------------------------------------------------------------------


def test_new_producer_fences_the_old_one_and_aborts_its_transaction(spate):
    topic = unique("txn-fence")
    create_topic(spate.bootstrap, topic, 1)
    tid = unique("tid")
    old = txn_producer(spate.bootstrap, tid)
    old.begin_transaction()
    send(old, topic, [b"zombie-0", b"zombie-1"])
    before = describe_txn(spate.bootstrap, tid)

    new = txn_producer(spate.bootstrap, tid)  # InitProducerId: epoch bump, abort
    after = describe_txn(spate.bootstrap, tid)
    assert after.producer_id == before.producer_id and after.producer_epoch > before.producer_epoch

    with pytest.raises(KafkaException) as excinfo:
        old.commit_transaction(30)
    assert_fenced(kafka_error(excinfo))

    new.begin_transaction()
    new_offsets = send(new, topic, [b"new-0"])
    new.commit_transaction(30)
    sentinel = append_sentinel(spate.bootstrap, topic)
    assert read_until_sentinel(spate.bootstrap, topic, 0, "read_committed", sentinel) == [
        (new_offsets[0], b"new-0")
    ]


def test_fenced_producer_cannot_produce(spate):
    """A zombie that keeps producing after the new instance's InitProducerId must be told it is
    fenced (Kafka: INVALID_PRODUCER_EPOCH on Produce, fatal in every client)."""
    topic = unique("txn-fence-produce")
    create_topic(spate.bootstrap, topic, 1)
    tid = unique("tid")
    old = txn_producer(spate.bootstrap, tid)
    old.begin_transaction()
    send(old, topic, [b"zombie-0"])
    txn_producer(spate.bootstrap, tid)

    # The broker answers INVALID_PRODUCER_EPOCH; librdkafka turns it into a fatal _FENCED error,
    # which confluent-kafka raises from whichever call meets it first (flush or commit). (No
    # delivery callback: confluent-kafka 2.16 calls it with the fatal exception already set,
    # which surfaces as a SystemError instead.)
    with pytest.raises(KafkaException) as excinfo:
        old.produce(topic, value=b"zombie-1", partition=0)
        old.flush(30)
        old.commit_transaction(30)
    assert_fenced(kafka_error(excinfo))

    sentinel = append_sentinel(spate.bootstrap, topic)
    assert read_until_sentinel(spate.bootstrap, topic, 0, "read_committed", sentinel) == []


# --- transaction timeout -----------------------------------------------------------------------


def test_transaction_timeout_aborts_a_stalled_producer(spate):
    topic = unique("txn-timeout")
    create_topic(spate.bootstrap, topic, 1)
    tid = unique("tid")
    p = txn_producer(spate.bootstrap, tid, **{"transaction.timeout.ms": 2000})
    p.begin_transaction()
    offsets = send(p, topic, [b"stalled-0", b"stalled-1"])
    started = describe_txn(spate.bootstrap, tid)
    assert started.state == "Ongoing" and started.timeout_ms == 2000

    # The producer stalls; the coordinator aborts the transaction once it is past its timeout.
    aborted = wait_until(
        lambda: (d := describe_txn(spate.bootstrap, tid)).state == "CompleteAbort" and d,
        timeout_s=30,
        what="DescribeTransactions to show CompleteAbort",
    )
    assert aborted.producer_id == started.producer_id
    assert aborted.producer_epoch > started.producer_epoch, "a timeout abort bumps the epoch"
    assert lso(spate.bootstrap, topic) == high_watermark(spate.bootstrap, topic) == offsets[-1] + 2

    # The stalled producer learns it when it tries to commit.
    with pytest.raises(KafkaException) as excinfo:
        p.commit_transaction(30)
    err = kafka_error(excinfo)
    assert not err.retriable(), err
    assert_fenced(err)

    sentinel = append_sentinel(spate.bootstrap, topic)
    assert read_until_sentinel(spate.bootstrap, topic, 0, "read_committed", sentinel) == []
    assert values_upto(spate.bootstrap, topic, 0, "read_uncommitted", sentinel) == [
        b"stalled-0",
        b"stalled-1",
    ]


# --- restarts ----------------------------------------------------------------------------------


def test_transactions_and_their_offsets_survive_a_restart(spate):
    topic, offsets_topic = unique("txn-restart"), unique("txn-restart-src")
    create_topic(spate.bootstrap, topic, 1)
    create_topic(spate.bootstrap, offsets_topic, 1)
    tid, group = unique("tid"), unique("txn-group")
    meta_consumer = Consumer({"bootstrap.servers": spate.bootstrap, "group.id": group})
    group_meta = meta_consumer.consumer_group_metadata()

    p = txn_producer(spate.bootstrap, tid)
    p.begin_transaction()
    first = [f"before-{i}".encode() for i in range(10)]
    send(p, topic, first)
    p.send_offsets_to_transaction([TopicPartition(offsets_topic, 0, 42)], group_meta, 30)
    p.commit_transaction(30)
    before = describe_txn(spate.bootstrap, tid)
    meta_consumer.close()

    spate.stop()  # SIGTERM, clean exit asserted
    spate.start()

    assert describe_txn(spate.bootstrap, tid).state == "CompleteCommit"
    assert committed_offset(spate.bootstrap, group, offsets_topic) == 42

    # A new instance with the same transactional id picks up where the old one left off.
    meta_consumer = Consumer({"bootstrap.servers": spate.bootstrap, "group.id": group})
    p2 = txn_producer(spate.bootstrap, tid)
    after_init = describe_txn(spate.bootstrap, tid)
    assert after_init.producer_id == before.producer_id
    assert after_init.producer_epoch > before.producer_epoch
    p2.begin_transaction()
    second = [f"after-{i}".encode() for i in range(10)]
    send(p2, topic, second)
    p2.send_offsets_to_transaction(
        [TopicPartition(offsets_topic, 0, 84)], meta_consumer.consumer_group_metadata(), 30
    )
    p2.commit_transaction(30)
    meta_consumer.close()

    sentinel = append_sentinel(spate.bootstrap, topic)
    assert values_upto(spate.bootstrap, topic, 0, "read_committed", sentinel) == first + second
    assert committed_offset(spate.bootstrap, group, offsets_topic) == 84


def test_transaction_open_at_a_crash_is_aborted_after_restart(spate):
    topic, offsets_topic = unique("txn-crash"), unique("txn-crash-src")
    create_topic(spate.bootstrap, topic, 1)
    create_topic(spate.bootstrap, offsets_topic, 1)
    tid, group = unique("tid"), unique("txn-group")
    meta_consumer = Consumer({"bootstrap.servers": spate.bootstrap, "group.id": group})
    group_meta = meta_consumer.consumer_group_metadata()

    p = txn_producer(spate.bootstrap, tid)
    p.begin_transaction()
    committed = [f"committed-{i}".encode() for i in range(5)]
    send(p, topic, committed)
    p.send_offsets_to_transaction([TopicPartition(offsets_topic, 0, 10)], group_meta, 30)
    p.commit_transaction(30)
    p.begin_transaction()
    open_values = [f"open-{i}".encode() for i in range(5)]
    open_offsets = send(p, topic, open_values)
    p.send_offsets_to_transaction([TopicPartition(offsets_topic, 0, 99)], group_meta, 30)
    meta_consumer.close()

    spate.kill()  # SIGKILL with the transaction open
    spate.start()

    # Before anyone touches the transactional id again, the open transaction still holds
    # read_committed readers back: its records are not visible and neither are its offsets.
    rc = eof_consumer(spate.bootstrap, topic, 0, "read_committed")
    try:
        got, eof_at = read_to_eof(rc)
    finally:
        rc.close()
    assert [v for _, v in got] == committed
    assert eof_at <= open_offsets[0]
    with wire.RawConnection(spate.bootstrap) as conn:
        # KIP-447: a read_committed consumer (require_stable) must wait for the transaction;
        # without require_stable the last stable commit is answered.
        assert conn.offset_fetch_v7(group, offsets_topic, [0], require_stable=True) == {
            0: (-1, wire.ERROR_UNSTABLE_OFFSET_COMMIT)
        }
        assert conn.offset_fetch_v7(group, offsets_topic, [0], require_stable=False) == {
            0: (10, wire.ERROR_NONE)
        }

    p2 = txn_producer(spate.bootstrap, tid)  # fences the old epoch, aborts the open transaction
    p2.begin_transaction()
    later = [b"later-0", b"later-1"]
    send(p2, topic, later)
    p2.commit_transaction(30)

    sentinel = append_sentinel(spate.bootstrap, topic)
    assert values_upto(spate.bootstrap, topic, 0, "read_committed", sentinel) == committed + later
    assert values_upto(spate.bootstrap, topic, 0, "read_uncommitted", sentinel) == (
        committed + open_values + later
    )
    with wire.RawConnection(spate.bootstrap) as conn:
        assert conn.offset_fetch_v7(group, offsets_topic, [0], require_stable=True) == {
            0: (10, wire.ERROR_NONE)
        }
    assert committed_offset(spate.bootstrap, group, offsets_topic) == 10


# --- kafka-python ------------------------------------------------------------------------------


def kp_txn_producer(bootstrap: str, transactional_id: str) -> KafkaProducer:
    p = KafkaProducer(
        bootstrap_servers=bootstrap,
        transactional_id=transactional_id,
        linger_ms=5,
        request_timeout_ms=30000,
        client_id="spate-tests-kafka-python-txn",
    )
    p.init_transactions()
    return p


def kp_read_until_sentinel(
    bootstrap: str, topic: str, isolation: str, sentinel: bytes
) -> list[bytes]:
    c = KafkaConsumer(
        bootstrap_servers=bootstrap,
        group_id=None,
        enable_auto_commit=False,
        isolation_level=isolation,
        client_id="spate-tests-kafka-python-txn",
    )
    try:
        tp = KTopicPartition(topic, 0)
        c.assign([tp])
        c.seek_to_beginning(tp)
        out: list[bytes] = []
        deadline = time.monotonic() + 30
        while True:
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"{isolation} kafka-python consumer did not reach the sentinel; got {out}"
                )
            for records in c.poll(timeout_ms=500).values():
                for r in records:
                    if r.value == sentinel:
                        return out
                    out.append(r.value)
    finally:
        c.close()


def test_kafka_python_transactions(spate):
    topic, src = unique("kp-txn"), unique("kp-txn-src")
    create_topic(spate.bootstrap, topic, 1)
    create_topic(spate.bootstrap, src, 1)
    group = unique("kp-txn-group")
    tp = KTopicPartition(src, 0)
    p = kp_txn_producer(spate.bootstrap, unique("kp-tid"))
    try:
        p.begin_transaction()
        first = [f"c1-{i}".encode() for i in range(5)]
        for v in first:
            p.send(topic, value=v, partition=0)
        p.send_offsets_to_transaction({tp: OffsetAndMetadata(7, "", -1)}, group)
        p.commit_transaction()

        p.begin_transaction()
        for i in range(5):
            p.send(topic, value=f"a-{i}".encode(), partition=0)
        p.flush(timeout=30)  # on the broker before the abort
        p.send_offsets_to_transaction({tp: OffsetAndMetadata(99, "", -1)}, group)
        p.abort_transaction()

        p.begin_transaction()
        second = [f"c2-{i}".encode() for i in range(5)]
        for v in second:
            p.send(topic, value=v, partition=0)
        p.commit_transaction()
    finally:
        p.close(timeout=10)

    sentinel = append_sentinel(spate.bootstrap, topic)
    got = kp_read_until_sentinel(spate.bootstrap, topic, "read_committed", sentinel)
    assert got == first + second
    assert kp_read_until_sentinel(spate.bootstrap, topic, "read_uncommitted", sentinel) == (
        first + [f"a-{i}".encode() for i in range(5)] + second
    )
    assert committed_offset(spate.bootstrap, group, src) == 7


def test_kafka_python_consume_transform_produce_with_group_metadata(spate):
    """kafka-python's own loop: a read_committed group consumer and send_offsets_to_transaction
    with the consumer's group metadata (KIP-447: generation and member id are checked)."""
    src, dst = unique("kp-eos-in"), unique("kp-eos-out")
    create_topic(spate.bootstrap, src, 1)
    create_topic(spate.bootstrap, dst, 1)
    n = 50
    produce_all(
        producer(spate.bootstrap, acks="all"),
        src,
        [{"value": f"in-{i}".encode(), "partition": 0} for i in range(n)],
    )
    group = unique("kp-eos-group")
    c = KafkaConsumer(
        src,
        bootstrap_servers=spate.bootstrap,
        group_id=group,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        isolation_level="read_committed",
        client_id="spate-tests-kafka-python-txn",
    )
    p = kp_txn_producer(spate.bootstrap, unique("kp-tid"))
    try:
        done = 0
        deadline = time.monotonic() + 60
        while done < n:
            assert time.monotonic() < deadline, f"processed {done} of {n} within 60 s"
            polled = c.poll(timeout_ms=500, max_records=10)
            records = [r for batch in polled.values() for r in batch]
            if not records:
                continue
            p.begin_transaction()
            for r in records:
                p.send(dst, value=b"out-" + r.value[3:], partition=0)
            p.send_offsets_to_transaction(
                {KTopicPartition(src, 0): OffsetAndMetadata(records[-1].offset + 1, "", -1)},
                c.group_metadata(),
            )
            p.commit_transaction()
            done += len(records)
    finally:
        p.close(timeout=10)
        c.close()

    sentinel = append_sentinel(spate.bootstrap, dst)
    assert kp_read_until_sentinel(spate.bootstrap, dst, "read_committed", sentinel) == [
        f"out-{i}".encode() for i in range(n)
    ]
    assert committed_offset(spate.bootstrap, group, src) == n


def test_kafka_python_fenced_producer(spate):
    topic = unique("kp-fence")
    create_topic(spate.bootstrap, topic, 1)
    tid = unique("kp-tid")
    old = kp_txn_producer(spate.bootstrap, tid)
    new = None
    try:
        old.begin_transaction()
        old.send(topic, value=b"zombie", partition=0)
        old.flush(timeout=30)
        new = kp_txn_producer(spate.bootstrap, tid)
        with pytest.raises(KPKafkaError) as excinfo:
            old.commit_transaction()
        assert isinstance(excinfo.value, ProducerFencedError), repr(excinfo.value)
        new.begin_transaction()
        new.send(topic, value=b"new", partition=0)
        new.commit_transaction()
    finally:
        old.close(timeout=10)
        if new is not None:
            new.close(timeout=10)
    sentinel = append_sentinel(spate.bootstrap, topic)
    assert kp_read_until_sentinel(spate.bootstrap, topic, "read_committed", sentinel) == [b"new"]


# --- admin: ListTransactions, DescribeTransactions, DescribeProducers --------------------------


def ids(listed: wire.ListedTransactions) -> list[str]:
    return [t.transactional_id for t in listed.transactions]


def of_producer(partition: wire.PartitionProducers, producer_id: int) -> list[wire.ActiveProducer]:
    return [x for x in partition.producers if x.producer_id == producer_id]


def test_admin_apis_describe_an_open_and_a_committed_transaction(spate):
    """confluent-kafka 2.16's AdminClient has no transaction admin calls, so raw requests:
    ListTransactions v0..v2, DescribeTransactions v0, DescribeProducers v0."""
    a = admin(spate.bootstrap)
    assert not hasattr(a, "list_transactions") and not hasattr(a, "describe_transactions"), (
        "confluent-kafka gained transaction admin calls: test them here"
    )
    topic = unique("txn-admin")
    create_topic(spate.bootstrap, topic, 2)
    tid, idle_tid = unique("tid-open"), unique("tid-idle")
    idle = txn_producer(spate.bootstrap, idle_tid)  # initialised, no transaction yet: Empty
    p = txn_producer(spate.bootstrap, tid, **{"transaction.timeout.ms": 45000})
    p.begin_transaction()
    p0 = send(p, topic, [b"x-0", b"x-1"], partition=0)
    send(p, topic, [b"y-0"], partition=1)

    with wire.RawConnection(spate.bootstrap) as conn:
        (desc,) = conn.describe_transactions([tid])
        assert desc.error_code == wire.ERROR_NONE
        assert desc.state == "Ongoing"
        assert desc.timeout_ms == 45000
        assert desc.start_time_ms > 0
        assert desc.producer_id >= 0 and desc.producer_epoch >= 0
        assert {t: sorted(ps) for t, ps in desc.partitions.items()} == {topic: [0, 1]}

        (missing,) = conn.describe_transactions([unique("no-such-tid")])
        assert missing.error_code == wire.ERROR_TRANSACTIONAL_ID_NOT_FOUND

        listed = {t.transactional_id: t for t in conn.list_transactions(0).transactions}
        assert listed[tid].state == "Ongoing" and listed[tid].producer_id == desc.producer_id
        assert listed[idle_tid].state == "Empty"

        ongoing = conn.list_transactions(0, state_filters=["Ongoing", "NoSuchState"])
        assert ongoing.error_code == wire.ERROR_NONE
        assert ongoing.unknown_state_filters == ["NoSuchState"]
        assert ids(ongoing) == [tid]
        by_pid = conn.list_transactions(0, producer_id_filters=[desc.producer_id])
        assert ids(by_pid) == [tid]
        # v1: only transactions running longer than the duration filter.
        assert tid not in ids(conn.list_transactions(1, duration_filter_ms=3_600_000))
        assert tid in ids(conn.list_transactions(1, duration_filter_ms=-1))
        # v2: a regular expression the whole transactional id must match.
        assert ids(conn.list_transactions(2, transactional_id_pattern=tid)) == [tid]
        assert conn.list_transactions(2, transactional_id_pattern=tid[:-1]).transactions == []

        producers = conn.describe_producers(topic, [0, 1])
        for partition, first_offset in ((0, p0[0]), (1, 0)):
            assert producers[partition].error_code == wire.ERROR_NONE
            (active,) = of_producer(producers[partition], desc.producer_id)
            assert active.producer_epoch == desc.producer_epoch
            assert active.current_txn_start_offset == first_offset, f"partition {partition}"
            if partition == 0:
                assert active.last_sequence == 1  # two records, sequences 0 and 1

    p.commit_transaction(30)
    with wire.RawConnection(spate.bootstrap) as conn:
        (done,) = conn.describe_transactions([tid])
        assert done.state == "CompleteCommit"
        assert (done.producer_id, done.producer_epoch) == (desc.producer_id, desc.producer_epoch)
        assert ids(conn.list_transactions(0, state_filters=["Ongoing"])) == []
        producers = conn.describe_producers(topic, [0, 1])
        for partition in (0, 1):
            (active,) = of_producer(producers[partition], desc.producer_id)
            assert active.current_txn_start_offset == -1, "no open transaction after the commit"


def test_kafka_python_admin_describes_transactions(spate):
    """kafka-python 3's KafkaAdminClient has the KIP-664 calls; they must parse Spate's answers."""
    topic = unique("kp-txn-admin")
    create_topic(spate.bootstrap, topic, 1)
    tid = unique("tid")
    p = txn_producer(spate.bootstrap, tid, **{"transaction.timeout.ms": 30000})
    p.begin_transaction()
    (first,) = send(p, topic, [b"x"])

    ka = KafkaAdminClient(
        bootstrap_servers=spate.bootstrap, client_id="spate-tests-kafka-python-txn"
    )
    try:
        desc = ka.describe_transactions([tid])[tid]
        assert desc.state == "Ongoing"
        assert desc.transaction_timeout_ms == 30000
        assert desc.topic_partitions == {KTopicPartition(topic, 0)}
        listings = [t for per_broker in ka.list_transactions().values() for t in per_broker]
        assert any(t.transactional_id == tid and t.state == "Ongoing" for t in listings), listings
        states = ka.describe_producers([KTopicPartition(topic, 0)])[KTopicPartition(topic, 0)]
        (active,) = [s for s in states.active_producers if s.producer_id == desc.producer_id]
        assert active.producer_epoch == desc.producer_epoch
        assert active.current_transaction_start_offset == first
        # Not hanging: it started just now, well within the 15-minute threshold.
        assert ka.find_hanging_transactions() == []

        p.commit_transaction(30)
        assert ka.describe_transactions([tid])[tid].state == "CompleteCommit"
    finally:
        ka.close()
