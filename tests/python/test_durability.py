"""Restart (SIGTERM) and crash (SIGKILL) on the same data directory: nothing acknowledged is lost."""

from __future__ import annotations

import collections
import threading

from confluent_kafka import OFFSET_BEGINNING, KafkaError, TopicPartition

from helpers import (
    consume_from,
    consumer,
    create_topic,
    describe,
    produce_all,
    producer,
    topic_id,
    unique,
    wait_until,
    watermarks,
)


def test_restart_keeps_everything(spate):
    topics = {unique("keep-a"): 1, unique("keep-b"): 3}
    for name, partitions in topics.items():
        create_topic(spate.bootstrap, name, partitions, {"retention.ms": "123456789"})
    ids = {name: topic_id(spate.bootstrap, name) for name in topics}
    sent: dict[tuple[str, int], list[bytes]] = collections.defaultdict(list)
    p = producer(spate.bootstrap, **{"acks": "all"})
    for name, partitions in topics.items():
        records = [
            {"key": f"k{i}".encode(), "value": f"{name}-{i}".encode(), "partition": i % partitions}
            for i in range(300)
        ]
        for d in sorted(produce_all(p, name, records).delivered, key=lambda d: d.offset):
            sent[(name, d.partition)].append(d.value)

    spate.stop()  # SIGTERM: exit code 0 is asserted
    spate.start()

    for (name, partition), values in sent.items():
        assert watermarks(spate.bootstrap, name, partition) == (0, len(values))
    for name in topics:
        assert topic_id(spate.bootstrap, name) == ids[name], "topic id changed across a restart"
        assert describe(spate.bootstrap, name)["retention.ms"].value == "123456789"
    c = consumer(spate.bootstrap)
    try:
        tps = [TopicPartition(n, p, OFFSET_BEGINNING) for (n, p) in sent]
        msgs = consume_from(c, tps, sum(len(v) for v in sent.values()))
    finally:
        c.close()
    got: dict[tuple[str, int], list[bytes]] = collections.defaultdict(list)
    for m in sorted(msgs, key=lambda m: (m.topic(), m.partition(), m.offset())):
        got[(m.topic(), m.partition())].append(m.value())
    assert got == sent

    # Offsets continue where they stopped.
    name = next(iter(topics))
    outcome = produce_all(producer(spate.bootstrap), name, [{"value": b"after restart", "partition": 0}])
    assert outcome.delivered[0].offset == len(sent[(name, 0)])


class NumberedProducer:
    """Produces "0", "1", "2", ... with acks=all from a thread; records what was acknowledged."""

    def __init__(self, bootstrap: str, topic: str, first: int):
        self.topic = topic
        self.first = first
        self.next = first
        self.acked: list[tuple[int, int]] = []  # (number, offset) confirmed by delivery reports
        self.failed = 0
        self.other_errors: list[str] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._producer = producer(
            bootstrap,
            **{
                "acks": "all",
                "enable.idempotence": False,
                # Ordering without idempotence: one request in flight.
                "max.in.flight.requests.per.connection": 1,
                "linger.ms": 2,
                "message.timeout.ms": 5000,
                "retries": 0,
            },
        )
        self._thread = threading.Thread(target=self._run, name="numbered-producer", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def acked_count(self) -> int:
        with self._lock:
            return len(self.acked)

    def in_flight(self) -> int:
        """Produced but neither acknowledged nor failed yet (queued or sent)."""
        with self._lock:
            return self.next - self.first - len(self.acked) - self.failed

    def _on_delivery(self, err, msg) -> None:
        with self._lock:
            if err is None:
                self.acked.append((int(msg.value()), msg.offset()))
            else:
                self.failed += 1
                if err.code() not in (
                    KafkaError._MSG_TIMED_OUT,
                    KafkaError._TRANSPORT,
                    KafkaError._TIMED_OUT,
                    KafkaError._ALL_BROKERS_DOWN,
                    KafkaError.REQUEST_TIMED_OUT,
                ):
                    self.other_errors.append(str(err))

    def _run(self) -> None:
        p = self._producer
        while not self._stop.is_set():
            # A steady stream: at most 1000 records in flight, so acknowledgements keep coming
            # while new records keep going out.
            if self.in_flight() > 1000:
                p.poll(0.01)
                continue
            try:
                p.produce(self.topic, value=str(self.next).encode(), partition=0,
                          on_delivery=self._on_delivery)
                self.next += 1
            except BufferError:
                p.poll(0.01)
            p.poll(0)

    def stop(self) -> None:
        """Stops producing and waits until every record is acknowledged or has failed."""
        self._stop.set()
        self._thread.join(30)
        assert not self._thread.is_alive()
        remaining = self._producer.flush(60)
        assert remaining == 0, f"{remaining} records neither acknowledged nor failed after 60 s"


def test_sigkill_loses_no_acknowledged_record(spate):
    topic = unique("crash")
    create_topic(spate.bootstrap, topic, 1)
    spate.allow_errors(r"(?i)torn|truncat")
    acked: list[tuple[int, int]] = []
    first = 0
    started = 0
    kills = 3
    cut_off = 0  # records in flight at a kill that never got acknowledged
    for round_ in range(kills):
        run = NumberedProducer(spate.bootstrap, topic, first)
        run.start()
        target = 3000
        wait_until(lambda: run.acked_count() >= target, 120, 0.01,
                   what=f"{target} acknowledged records in round {round_}")
        # Kill mid-stream: while records are on their way.
        wait_until(lambda: run.in_flight() >= 50, 30, 0.001, what="records in flight")
        spate.kill()  # SIGKILL while the producer keeps sending
        run.stop()
        assert not run.other_errors, f"unexpected delivery errors: {run.other_errors[:5]}"
        produced = run.next - first
        cut_off += produced - run.acked_count()
        acked += run.acked
        first = run.next
        started += produced
        spate.start()
    assert cut_off > 0, "no kill caught a record in flight: the test did not crash mid-stream"

    lo, hi = watermarks(spate.bootstrap, topic)
    assert lo == 0
    c = consumer(spate.bootstrap)
    try:
        msgs = consume_from(c, [TopicPartition(topic, 0, OFFSET_BEGINNING)], hi, timeout_s=120)
    finally:
        c.close()
    assert [m.offset() for m in msgs] == list(range(hi)), "offsets in the log are not contiguous"
    log = [int(m.value()) for m in msgs]
    where: dict[int, list[int]] = collections.defaultdict(list)
    for offset, n in enumerate(log):
        where[n].append(offset)

    missing = [n for n, _ in acked if n not in where]
    assert not missing, f"{len(missing)} acknowledged records lost, first: {missing[:10]}"
    duplicated = [n for n, _ in acked if len(where[n]) > 1]
    assert not duplicated, f"acknowledged records stored more than once: {duplicated[:10]}"
    moved = [(n, off, where[n][0]) for n, off in acked if where[n][0] != off]
    assert not moved, f"acknowledged at one offset, found at another (n, acked, found): {moved[:10]}"
    acked_positions = [where[n][0] for n, _ in sorted(acked)]
    assert acked_positions == sorted(acked_positions), "acknowledged records are out of order"
    assert log == sorted(log), "records of one producer with one request in flight are out of order"
    assert len(set(log)) == len(log), "a record is stored twice"
    print(f"produced {started}, acknowledged {len(acked)}, in the log {len(log)} after {kills} kills")
