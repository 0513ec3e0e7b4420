"""An exactly-once consume–transform–produce worker, run as its own process by
test_transactions.py (this file is not a test module: pytest collects only test_*.py).

It subscribes to the input topic with a read_committed consumer in a consumer group and, for
each batch it polls, runs one transaction: produce the transformed records ("in-N" becomes
"out-N", same key, same partition number) to the output topic, `send_offsets_to_transaction`
with the batch's next offsets, commit. It exits 0 once the group's committed offsets add up to
`--expect` input records.

Faults the test injects:
- `--abort-batch K`: batch K is produced and flushed (the records reach the broker inside the
  transaction), then aborted on purpose; the worker seeks back and processes it again.
- `--stall-batch K`: batch K is produced and flushed, then the worker stops mid-transaction and
  waits to be killed (SIGKILL from the test).

Every event is one JSON line on stdout, so the test can follow along.
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import signal
import sys
import time

from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition


def die_with_parent() -> None:
    """SIGKILL this process if the test process dies (no orphaned workers)."""
    pr_set_pdeathsig = 1
    ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGKILL)


def emit(event: str, **fields: object) -> None:
    print(json.dumps({"event": event, **fields}), flush=True)


def transform(value: bytes) -> bytes:
    text = value.decode()
    assert text.startswith("in-"), f"unexpected input record {text!r}"
    return ("out-" + text[len("in-") :]).encode()


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--bootstrap", required=True)
    ap.add_argument("--input", required=True)
    ap.add_argument("--output", required=True)
    ap.add_argument("--group", required=True)
    ap.add_argument("--transactional-id", required=True)
    ap.add_argument("--input-partitions", type=int, required=True)
    ap.add_argument("--expect", type=int, required=True, help="input records in all")
    ap.add_argument("--batch", type=int, default=10, help="most records per transaction")
    ap.add_argument("--abort-batch", type=int, default=-1)
    ap.add_argument("--stall-batch", type=int, default=-1)
    ap.add_argument("--timeout-s", type=float, default=120.0)
    args = ap.parse_args()
    die_with_parent()

    consumer = Consumer(
        {
            "bootstrap.servers": args.bootstrap,
            "group.id": args.group,
            "isolation.level": "read_committed",
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
            # The broker's minimum: Kafka drops a member killed by the test after this.
            "session.timeout.ms": 6000,
            "heartbeat.interval.ms": 500,
            # The rebalance timeout. The next worker's JoinGroup waits for the killed member, and
            # Spate (2026-11-23, compat/FINDINGS.md) drops a member that does not rejoin only
            # after the rebalance timeout, not after its session timeout as Kafka does; with the
            # default (300 s) the test would time out.
            "max.poll.interval.ms": 10000,
            # EOS_WORKER_DEBUG=cgrp,eos turns on librdkafka debug logs (stderr, the worker log).
            **({"debug": debug} if (debug := os.environ.get("EOS_WORKER_DEBUG")) else {}),
        }
    )
    producer = Producer(
        {
            "bootstrap.servers": args.bootstrap,
            "transactional.id": args.transactional_id,
            "linger.ms": 5,
        }
    )
    producer.init_transactions(60)
    emit("initialized")
    consumer.subscribe([args.input])

    all_input = [TopicPartition(args.input, p) for p in range(args.input_partitions)]
    deadline = time.monotonic() + args.timeout_s
    batch_no = 0
    while True:
        if time.monotonic() > deadline:
            emit("timeout", batch=batch_no)
            return 2
        msgs = consumer.consume(num_messages=args.batch, timeout=0.5)
        records = []
        for m in msgs:
            if m.error():
                if m.error().code() == KafkaError._PARTITION_EOF:
                    continue
                raise RuntimeError(f"consume error: {m.error()}")
            records.append(m)
        if not records:
            if not consumer.assignment():
                continue  # still joining the group
            try:
                committed = consumer.committed(all_input, timeout=10)
            except KafkaException as e:
                if e.args[0].code() != KafkaError._TIMED_OUT:
                    raise
                continue  # behind a rebalance's JoinGroup on the coordinator connection
            total = sum(max(tp.offset, 0) for tp in committed)
            if total == args.expect:
                emit("done", committed={tp.partition: tp.offset for tp in committed})
                break
            continue

        first: dict[int, int] = {}
        next_offsets: dict[int, int] = {}
        for m in records:
            first.setdefault(m.partition(), m.offset())
            next_offsets[m.partition()] = m.offset() + 1
        values = [m.value().decode() for m in records]

        producer.begin_transaction()
        for m in records:
            producer.produce(
                args.output, key=m.key(), value=transform(m.value()), partition=m.partition()
            )
        producer.send_offsets_to_transaction(
            [TopicPartition(args.input, p, o) for p, o in sorted(next_offsets.items())],
            consumer.consumer_group_metadata(),
            30,
        )
        if batch_no == args.stall_batch:
            # Make sure the records are on the broker inside the open transaction, then wait to
            # be killed: this is the crash the next worker has to clean up after.
            remaining = producer.flush(30)
            assert remaining == 0, f"{remaining} records not delivered before the stall"
            emit("stalled", batch=batch_no, values=values)
            while True:
                signal.pause()
        if batch_no == args.abort_batch:
            remaining = producer.flush(30)
            assert remaining == 0, f"{remaining} records not delivered before the abort"
            producer.abort_transaction(30)
            for p, offset in first.items():
                consumer.seek(TopicPartition(args.input, p, offset))
            emit("aborted", batch=batch_no, values=values)
        else:
            producer.commit_transaction(30)
            emit("committed", batch=batch_no, count=len(records))
        batch_no += 1

    consumer.close()
    producer.flush(10)
    return 0


if __name__ == "__main__":
    sys.exit(main())
