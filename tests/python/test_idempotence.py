"""Idempotent producers across a broker crash: retries leave no duplicates and no gaps.

A producer keeps sending numbered records while the broker is killed with SIGKILL and started
again on the same data directory and the same port, so the producer's retries reach the new
process. Whatever the crash cut off, the partition must end up holding every record exactly
once, in the order produced. A raw-protocol test pins the broker side: a retried batch is
answered with its original offset, before and after the crash.
"""

from __future__ import annotations

import json
import threading
import time
from typing import Any

import pytest
from confluent_kafka import OFFSET_BEGINNING, KafkaError, Producer, TopicPartition

import kafka_wire as wire
from helpers import consume_from, consumer, create_topic, unique, wait_until, watermarks

API_INIT_PRODUCER_ID = 22
NONE = 0
OUT_OF_ORDER_SEQUENCE_NUMBER = 45

# Long enough that no record times out while the broker is down and restarting.
DELIVERY_TIMEOUT_MS = 120_000


class NumberedRun:
    """Sends "0", "1", "2", ... to partition 0 from a thread, a bounded number in flight, and
    records every delivery report. Subclasses wrap one client."""

    def __init__(self, bootstrap: str, topic: str):
        self.bootstrap = bootstrap
        self.topic = topic
        self.next = 0
        self.acked: list[tuple[int, int]] = []  # (number, offset)
        self.errors: list[str] = []
        self.lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="numbered-run", daemon=True)
        self.failure: BaseException | None = None

    def start(self) -> NumberedRun:
        self._thread.start()
        return self

    def acked_count(self) -> int:
        self.check()
        with self.lock:
            return len(self.acked)

    def in_flight(self) -> int:
        with self.lock:
            return self.next - len(self.acked) - len(self.errors)

    def check(self) -> None:
        if self.failure is not None:
            raise RuntimeError(f"the producer thread failed: {self.failure!r}") from self.failure

    def delivered(self, number: int, offset: int) -> None:
        with self.lock:
            self.acked.append((number, offset))

    def failed(self, reason: str) -> None:
        with self.lock:
            self.errors.append(reason)

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                if self.in_flight() >= 500:
                    self.serve(0.01)
                    continue
                with self.lock:
                    n = self.next
                    self.next += 1
                self.send(n)
        except BaseException as e:  # reported by check()
            self.failure = e

    def stop(self) -> None:
        """Stops sending and waits until every record is acknowledged or has failed."""
        self._stop.set()
        self._thread.join(30)
        assert not self._thread.is_alive(), "the producer thread did not stop"
        self.check()
        self.flush(DELIVERY_TIMEOUT_MS / 1000 + 30)
        with self.lock:
            settled = len(self.acked) + len(self.errors)
        assert settled == self.next, f"{self.next - settled} records without a delivery report"

    def send(self, n: int) -> None:
        raise NotImplementedError

    def serve(self, timeout_s: float) -> None:
        raise NotImplementedError

    def flush(self, timeout_s: float) -> None:
        raise NotImplementedError


class ConfluentRun(NumberedRun):
    def __init__(self, bootstrap: str, topic: str):
        super().__init__(bootstrap, topic)
        self.producer = Producer({
            "bootstrap.servers": bootstrap,
            "enable.idempotence": True,
            "linger.ms": 2,
            # Small requests, so that several (up to 5) are always on the wire: the kill then
            # cuts requests off rather than records still waiting in the client.
            "batch.num.messages": 40,
            "message.timeout.ms": DELIVERY_TIMEOUT_MS,
            # Find the restarted broker quickly.
            "reconnect.backoff.max.ms": 500,
            "statistics.interval.ms": 200,
            "stats_cb": self._on_stats,
        })
        self.tx_retries = 0

    def _on_stats(self, raw: str) -> None:
        # Per partition, librdkafka counts records produced (`msgs`) and records transmitted
        # (`txmsgs`); the difference is records sent again after a failed request.
        partition = json.loads(raw).get("topics", {}).get(self.topic, {}).get("partitions", {}).get("0")
        if partition:
            with self.lock:
                self.tx_retries = max(self.tx_retries, partition["txmsgs"] - partition["msgs"])

    def retransmitted(self) -> int:
        self.producer.poll(0)
        with self.lock:
            return self.tx_retries

    def _on_delivery(self, err: KafkaError | None, msg: Any) -> None:
        if err is None:
            self.delivered(int(msg.value()), msg.offset())
        else:
            self.failed(f"{int(msg.value())}: {err}")

    def send(self, n: int) -> None:
        while True:
            try:
                self.producer.produce(self.topic, value=str(n).encode(), partition=0,
                                      on_delivery=self._on_delivery)
                break
            except BufferError:
                self.producer.poll(0.01)
        self.producer.poll(0)

    def serve(self, timeout_s: float) -> None:
        self.producer.poll(timeout_s)

    def flush(self, timeout_s: float) -> None:
        remaining = self.producer.flush(timeout_s)
        assert remaining == 0, f"{remaining} records still queued after {timeout_s}s"


class KafkaPythonRun(NumberedRun):
    def __init__(self, bootstrap: str, topic: str):
        from kafka import KafkaProducer

        super().__init__(bootstrap, topic)
        # kafka-python 3 is idempotent by default (acks=all, retries); nothing to switch on.
        self.producer = KafkaProducer(
            bootstrap_servers=bootstrap,
            linger_ms=2,
            batch_size=512,  # ~40 records a request, as for confluent-kafka
            delivery_timeout_ms=DELIVERY_TIMEOUT_MS,
            reconnect_backoff_max_ms=500,
        )
        assert self.producer.config["enable_idempotence"], "kafka-python 3 should default to idempotence"

    def send(self, n: int) -> None:
        future = self.producer.send(self.topic, value=str(n).encode(), partition=0)
        future.add_callback(lambda md: self.delivered(n, md.offset))
        future.add_errback(lambda e: self.failed(f"{n}: {e!r}"))

    def serve(self, timeout_s: float) -> None:
        # Delivery callbacks run on kafka-python's sender thread; just yield the CPU.
        self._stop.wait(timeout_s)

    def flush(self, timeout_s: float) -> None:
        self.producer.flush(timeout=timeout_s)
        self.producer.close(timeout=10)


@pytest.mark.parametrize("client", ["confluent-kafka", "kafka-python"])
def test_idempotent_producer_retrying_through_a_crash_leaves_no_duplicates_and_no_gaps(
    spate_factory, client
):
    # Debug for the produce path: the broker says when it answers a retried batch from memory.
    spate = spate_factory(args=["--log", "info,spate_broker::produce=debug"])
    spate.allow_errors(r"(?i)torn|truncat")
    spate.keep_ports()  # the producer keeps its bootstrap address across the restart
    topic = unique("idem")
    create_topic(spate.bootstrap, topic, 1)
    run = (ConfluentRun if client == "confluent-kafka" else KafkaPythonRun)(spate.bootstrap, topic)
    run.start()
    kills = 3  # each kill is a new chance to cut off a batch that was written but not answered
    cut_off = 0
    try:
        for round_ in range(kills):
            target = run.acked_count() + 2000
            wait_until(lambda: run.acked_count() >= target, 120, 0.01,
                       what=f"2000 more acknowledged records (round {round_})")
            wait_until(lambda: run.in_flight() >= 50, 30, 0.001, what="records in flight")
            spate.kill()  # SIGKILL mid-stream
            with run.lock:
                sent_at_kill = run.next
                cut_off += run.next - len(run.acked) - len(run.errors)
            spate.start()
            assert spate.bootstrap == run.bootstrap
            # Every record that was on its way at the kill gets its answer; the stream goes on.
            wait_until(lambda: run.acked_count() >= sent_at_kill, 180, 0.01,
                       what=f"the producer's retries completing after kill {round_ + 1}")
    finally:
        run._stop.set()
    run.stop()
    assert not run.errors, f"{len(run.errors)} records failed: {run.errors[:5]}"
    assert cut_off > 0, "no record was in flight at a kill"
    if isinstance(run, ConfluentRun):
        wait_until(lambda: run.retransmitted() > 0, 10,
                   what="librdkafka statistics showing records sent again after a kill")

    produced = run.next
    lo, hi = watermarks(spate.bootstrap, topic)
    c = consumer(spate.bootstrap)
    try:
        msgs = consume_from(c, [TopicPartition(topic, 0, OFFSET_BEGINNING)], hi - lo, timeout_s=120)
    finally:
        c.close()
    log = [int(m.value()) for m in msgs]
    duplicated = len(log) - len(set(log))
    assert duplicated == 0, f"{duplicated} records stored twice (log has {len(log)} of {produced})"
    missing = sorted(set(range(produced)) - set(log))
    assert not missing, f"{len(missing)} acknowledged records missing, first {missing[:10]}"
    assert log == list(range(produced)), "records are out of order"
    moved = [(n, off) for n, off in run.acked if log[off - lo] != n]
    assert not moved, f"acknowledged at one offset, stored at another: {moved[:10]}"
    answered = spate.log_text().count("answered a retried idempotent batch")
    again = f", {run.retransmitted()} records sent again" if isinstance(run, ConfluentRun) else ""
    print(f"{client}: {produced} records, {cut_off} in flight at {kills} kills{again}, "
          f"{answered} retried batches answered as duplicates")


# --- the broker's side, spoken by hand --------------------------------------------------------


def idempotent_batch(values: list[bytes], producer_id: int, epoch: int, base_sequence: int) -> bytes:
    """An uncompressed RecordBatch v2 from an idempotent producer, base offset 0."""
    ts = int(time.time() * 1000)
    body = bytearray()
    for delta, value in enumerate(values):
        rec = (wire.i8(0) + wire.varint(0) + wire.varint(delta) + wire.varint(-1)
               + wire.varint(len(value)) + value + wire.varint(0))
        body += wire.varint(len(rec)) + rec
    after_crc = (
        wire.i16(0) + wire.i32(len(values) - 1) + wire.i64(ts) + wire.i64(ts)
        + wire.i64(producer_id) + wire.i16(epoch) + wire.i32(base_sequence)
        + wire.i32(len(values)) + bytes(body)
    )
    after_length = wire.i32(0) + wire.i8(2) + wire.u32(wire.crc32c(after_crc)) + after_crc
    return wire.i64(0) + wire.i32(len(after_length)) + after_length


def init_producer_id(conn: wire.RawConnection) -> tuple[int, int]:
    """InitProducerId v1 without a transactional id: (producer id, epoch)."""
    cid = conn.send_request(API_INIT_PRODUCER_ID, 1, wire.string(None) + wire.i32(60_000))
    r = conn.recv_response(cid)
    r.i32()  # throttle
    error = r.i16()
    assert error == NONE, f"InitProducerId failed with error {error}"
    return r.i64(), r.i16()


def test_retried_batches_get_their_original_offsets_even_after_a_crash(spate):
    spate.allow_errors(r"(?i)torn|truncat")
    topic = unique("idem-raw")
    create_topic(spate.bootstrap, topic, 1)
    with wire.RawConnection(spate.bootstrap) as conn:
        pid, epoch = init_producer_id(conn)
        first = idempotent_batch([b"a", b"b", b"c"], pid, epoch, 0)
        second = idempotent_batch([b"d", b"e"], pid, epoch, 3)
        assert conn.produce(7, topic, 0, first) == (NONE, 0)
        assert conn.produce(7, topic, 0, second) == (NONE, 3)
        # Retries of batches already written: answered with the offsets they got, not written again.
        assert conn.produce(7, topic, 0, second) == (NONE, 3)
        assert conn.produce(7, topic, 0, first) == (NONE, 0)
        # A gap in the sequence is refused.
        error, _ = conn.produce(7, topic, 0, idempotent_batch([b"x"], pid, epoch, 10))
        assert error == OUT_OF_ORDER_SEQUENCE_NUMBER

    spate.kill()  # no clean shutdown: the producer state is rebuilt from the log
    spate.start()

    with wire.RawConnection(spate.bootstrap) as conn:
        assert conn.produce(7, topic, 0, second) == (NONE, 3), "retry after a crash written again"
        assert conn.produce(7, topic, 0, first) == (NONE, 0), "retry after a crash written again"
        assert conn.produce(7, topic, 0, idempotent_batch([b"f"], pid, epoch, 5)) == (NONE, 5)
        error, _ = conn.produce(7, topic, 0, idempotent_batch([b"y"], pid, epoch, 10))
        assert error == OUT_OF_ORDER_SEQUENCE_NUMBER
    assert watermarks(spate.bootstrap, topic) == (0, 6)
