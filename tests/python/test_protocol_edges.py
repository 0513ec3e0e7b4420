"""Raw-socket requests: bad input, version negotiation, old formats, long polls.

Each bad input must close its own connection (or get an error answered) while a well-behaved
client on another connection keeps producing and the broker keeps running.
"""

from __future__ import annotations

import os
import socket
import struct
import threading

import pytest

import kafka_wire as kw
from helpers import create_topic, produce_all, producer, unique, wait_until, watermarks

# APIs issue 2 requires, by key.
REQUIRED_APIS = {
    0: "Produce",
    1: "Fetch",
    2: "ListOffsets",
    3: "Metadata",
    18: "ApiVersions",
    19: "CreateTopics",
    20: "DeleteTopics",
    21: "DeleteRecords",
    23: "OffsetForLeaderEpoch",
    32: "DescribeConfigs",
    33: "AlterConfigs",
    37: "CreatePartitions",
    44: "IncrementalAlterConfigs",
    60: "DescribeCluster",
}


class SteadyProducer:
    """A confluent-kafka producer on its own connection, one acks=all record at a time."""

    def __init__(self, bootstrap: str, topic: str):
        self.topic = topic
        self.delivered = 0
        self.errors: list[str] = []
        self._stop = threading.Event()
        self._p = producer(bootstrap, **{"acks": "all", "linger.ms": 0, "message.timeout.ms": 10000})
        self._thread = threading.Thread(target=self._run, daemon=True, name="steady-producer")

    def _run(self) -> None:
        i = 0
        while not self._stop.is_set():
            outcome = produce_all(self._p, self.topic, [{"value": f"{i}".encode()}],
                                  timeout_s=20, expect_success=False)
            self.delivered += len(outcome.delivered)
            self.errors += [str(e) for e, _ in outcome.errors]
            i += 1

    def __enter__(self) -> SteadyProducer:
        self._thread.start()
        wait_until(lambda: self.delivered >= 3, 30, what="the steady producer to deliver")
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(30)

    def still_delivering(self, timeout_s: float = 30.0) -> None:
        start = self.delivered
        wait_until(lambda: self.delivered >= start + 3, timeout_s,
                   what="the well-behaved producer to keep delivering")
        assert not self.errors, f"the well-behaved producer got errors: {self.errors[:5]}"


def assert_closed(conn: kw.RawConnection, what: str, allow_answer: bool = False) -> None:
    try:
        received = conn.wait_closed(timeout_s=10)
    except socket.timeout:
        pytest.fail(f"{what}: the broker kept the connection open for 10 s")
    if received and not allow_answer:
        pytest.fail(f"{what}: expected the connection closed, got {len(received)} bytes first")
    if received:
        (size,) = struct.unpack(">i", received[:4])
        assert size == len(received) - 4, f"{what}: answered with a malformed frame"


def assert_closed_or_answered(addr: str, payload: bytes, what: str) -> None:
    with kw.RawConnection(addr) as conn:
        conn.send_raw(payload)
        assert_closed(conn, what, allow_answer=True)


def assert_alive(spate) -> None:
    assert spate.running(), "the broker process died\n" + spate.log_tail()
    assert spate.health_status() == 200
    with kw.RawConnection(spate.kafka_addr) as conn:
        assert conn.api_versions(0).error_code == 0


# --- version negotiation ----------------------------------------------------------------------


def test_api_versions_v0_and_v3(spate):
    with kw.RawConnection(spate.kafka_addr) as conn:
        v0 = conn.api_versions(0)
        v3 = conn.api_versions(3)
    assert v0.error_code == 0 and v3.error_code == 0
    assert v0.versions == v3.versions
    missing = {name for key, name in REQUIRED_APIS.items() if key not in v0.versions}
    assert not missing, f"not advertised: {sorted(missing)}"
    # librdkafka turns compression off unless Produce v0 is advertised (KAFKA-18659).
    assert v0.versions[0][0] == 0, f"Produce versions {v0.versions[0]}"
    assert v0.versions[0][1] >= 3
    assert v0.versions[18][1] >= 3, "ApiVersions v3 (flexible) should be supported"
    for key, (lo, hi) in v0.versions.items():
        assert 0 <= lo <= hi, f"api {key}: versions {lo}..{hi}"


def test_api_versions_unknown_version_gets_v0_answer(spate):
    with kw.RawConnection(spate.kafka_addr) as conn:
        body = kw.compact_string("future-client") + kw.compact_string("9.9") + kw.uvarint(0)
        cid = conn.send_request(kw.API_API_VERSIONS, 99, body, flexible=True)
        answer = kw.parse_api_versions_v0(conn.recv_response(cid))
        assert answer.error_code == kw.ERROR_UNSUPPORTED_VERSION
        assert 18 in answer.versions and 0 in answer.versions, answer.versions
        # The client then asks again with a version it finds in the list, on the same connection.
        retry = conn.api_versions(answer.versions[18][1])
        assert retry.error_code == 0


# --- old formats ------------------------------------------------------------------------------


def test_produce_v2_closes_the_connection(spate):
    topic = unique("old-format")
    create_topic(spate.bootstrap, topic, 1)
    with kw.RawConnection(spate.kafka_addr) as conn:
        body = (
            kw.i16(1) + kw.i32(30_000)
            + kw.array([kw.string(topic) + kw.array([kw.i32(0) + kw.kbytes(kw.message_set_v1(b"k", b"v"))])])
        )
        conn.send_request(kw.API_PRODUCE, 2, body)
        assert_closed(conn, "Produce v2")
    assert watermarks(spate.bootstrap, topic) == (0, 0)
    assert_alive(spate)


def test_old_message_format_in_produce_v3_is_rejected(spate):
    topic = unique("old-magic")
    create_topic(spate.bootstrap, topic, 1)
    with kw.RawConnection(spate.kafka_addr) as conn:
        try:
            error_code, _ = conn.produce(3, topic, 0, kw.message_set_v1(b"k", b"v"))
        except kw.ConnectionClosed:
            error_code = None  # closing the connection is a rejection too
    assert error_code in (None, 2, 43, 87), f"magic 1 records answered with error {error_code}"
    assert watermarks(spate.bootstrap, topic) == (0, 0)


def test_batch_with_wrong_crc_is_corrupt_message(spate):
    topic = unique("crc")
    create_topic(spate.bootstrap, topic, 1)
    good = kw.record_batch([(b"k", b"good")])
    bad = kw.record_batch([(b"k", b"bad")], corrupt_crc=True)
    with kw.RawConnection(spate.kafka_addr) as conn:
        assert conn.produce(3, topic, 0, good) == (0, 0)
        error_code, _ = conn.produce(3, topic, 0, bad)
        assert error_code == kw.ERROR_CORRUPT_MESSAGE
        # The connection stays usable after an error answer.
        assert conn.produce(3, topic, 0, good) == (0, 1)
    assert watermarks(spate.bootstrap, topic) == (0, 2)


# --- bad input --------------------------------------------------------------------------------


def test_bad_input_closes_only_its_own_connection(spate):
    # No ERROR line is allowed: a client's bad bytes are the client's problem (a WARN at most).
    topic = unique("steady")
    create_topic(spate.bootstrap, topic, 1)
    addr = spate.kafka_addr
    with SteadyProducer(spate.bootstrap, topic) as steady:
        # Sizes no Kafka broker accepts: closed at once, without waiting for (or allocating) a body.
        for what, size in [
            ("size prefix of 100 MiB + 1", (100 << 20) + 1),
            ("size prefix of 2 GiB - 1", 0x7FFFFFFF),
            ("negative size prefix", -1),
        ]:
            with kw.RawConnection(addr) as conn:
                conn.send_raw(kw.i32(size) + b"\x00\x12\x00\x00")
                assert_closed(conn, what)
        with kw.RawConnection(addr) as conn:
            conn.send_raw(b"GET /health HTTP/1.1\r\nHost: spate\r\n\r\n")  # HTTP to the Kafka port
            assert_closed(conn, "an HTTP request")

        # Frames of a sane size with nonsense inside: closed, or an error answered.
        rng = os.urandom
        cases = [
            ("random bytes", kw.frame(rng(64))),
            ("unknown API key 9999", kw.frame(kw.request_header_v1(9999, 0, 1, "x"))),
            ("unknown API key -1", kw.frame(kw.request_header_v1(-1, 0, 1, "x"))),
            ("empty frame", kw.frame(b"")),
            ("client id longer than the frame", kw.frame(kw.i16(18) + kw.i16(0) + kw.i32(1) + kw.i16(30000))),
            ("Metadata v12 with a garbage body", kw.frame(kw.request_header_v2(3, 12, 1, "x") + rng(40))),
            (
                "Produce v9 claiming 2^31-1 topics",
                kw.frame(kw.request_header_v2(0, 9, 1, "x") + kw.uvarint(0) + kw.i16(1) + kw.i32(1000)
                         + kw.uvarint(0x7FFFFFFF)),
            ),
            (
                "Produce v3 with a records length past the frame",
                kw.frame(kw.request_header_v1(0, 3, 1, "x") + kw.string(None) + kw.i16(1) + kw.i32(1000)
                         + kw.i32(1) + kw.string(topic) + kw.i32(1) + kw.i32(0) + kw.i32(50_000_000)),
            ),
        ]
        for what, payload in cases:
            assert_closed_or_answered(addr, payload, what)

        # Truncated frames: half a frame and half a size prefix, then the client goes away.
        for payload in [kw.i32(1000) + b"\x00\x12\x00\x00\x00\x00\x00\x01", b"\x00\x00"]:
            with kw.RawConnection(addr) as conn:
                conn.send_raw(payload)
        # A connection that sends nothing and one that closes at once.
        idle = kw.RawConnection(addr)
        kw.RawConnection(addr).close()

        steady.still_delivering()
        idle.close()
    assert_alive(spate)


# --- long poll ---------------------------------------------------------------------------------


def test_fetch_returns_at_max_wait_with_no_data(spate):
    topic = unique("empty-wait")
    create_topic(spate.bootstrap, topic, 1)
    with kw.RawConnection(spate.kafka_addr) as conn:
        error_code, hw, records = conn.fetch_v4(topic, 0, 0, max_wait_ms=500, timeout_s=10)
    assert (error_code, hw, records) == (0, 0, b"")


def test_fetch_long_poll_answers_when_data_arrives(spate):
    """A Fetch waiting up to 25 s is answered within 10 s of a produce: as soon as data arrives."""
    topic = unique("raw-longpoll")
    create_topic(spate.bootstrap, topic, 1)
    p = producer(spate.bootstrap, **{"linger.ms": 0, "acks": "all"})
    produce_all(p, topic, [{"value": b"warm-up", "partition": 0}])  # connection and metadata ready
    with kw.RawConnection(spate.kafka_addr) as conn:
        cid = conn.send_fetch_v4(topic, 0, 1, max_wait_ms=25_000, min_bytes=1)
        # Nothing to answer yet: the fetch must still be waiting.
        conn.sock.settimeout(0.2)
        with pytest.raises(socket.timeout):
            conn.sock.recv(1, socket.MSG_PEEK)
        produce_all(p, topic, [{"value": b"wake up", "partition": 0}])
        try:
            error_code, hw, records = conn.recv_fetch_v4(cid, timeout_s=10)
        except socket.timeout:
            pytest.fail("a Fetch waiting 25 s was not answered within 10 s of new data")
    assert error_code == 0 and hw == 2
    (batch,) = kw.parse_batches(records)
    assert batch.base_offset == 1


def test_fetch_errors(spate):
    topic = unique("fetch-errors")
    create_topic(spate.bootstrap, topic, 1)
    produce_all(producer(spate.bootstrap), topic, [{"value": b"x", "partition": 0}])
    with kw.RawConnection(spate.kafka_addr) as conn:
        assert conn.fetch_v4(topic, 0, 5)[0] == 1  # OFFSET_OUT_OF_RANGE
        assert conn.fetch_v4(unique("ghost"), 0, 0)[0] == 3  # UNKNOWN_TOPIC_OR_PARTITION
        assert conn.fetch_v4(topic, 7, 0)[0] == 3
        error_code, hw, records = conn.fetch_v4(topic, 0, 0)
        assert (error_code, hw) == (0, 1) and records


def test_many_connections_at_once(spate):
    """Two hundred idle connections do not stop a real client from working."""
    topic = unique("crowd")
    create_topic(spate.bootstrap, topic, 1)
    conns = [kw.RawConnection(spate.kafka_addr) for _ in range(200)]
    try:
        produce_all(producer(spate.bootstrap), topic, [{"value": b"still served"}])
        for conn in conns[:10]:
            assert conn.api_versions(0).error_code == 0
    finally:
        for conn in conns:
            conn.close()
    assert_alive(spate)


def test_offset_for_leader_epoch(spate):
    """The end offset of the leader epoch stamped on stored batches is the log end offset."""
    topic = unique("epoch")
    create_topic(spate.bootstrap, topic, 1)
    produce_all(producer(spate.bootstrap, **{"linger.ms": 0}), topic,
                [{"value": f"{i}".encode(), "partition": 0} for i in range(5)])
    (first, *_) = kw.fetch_all_batches(spate.kafka_addr, topic, 0, 5)
    (epoch,) = struct.unpack_from(">i", first.raw, 12)  # partitionLeaderEpoch
    assert epoch >= 0, f"stored batches carry leader epoch {epoch}"
    with kw.RawConnection(spate.kafka_addr) as conn:
        # OffsetForLeaderEpoch v2: topics [name, partitions [index, current epoch, epoch]].
        body = kw.array([kw.string(topic) + kw.array([kw.i32(0) + kw.i32(-1) + kw.i32(epoch)])])
        cid = conn.send_request(23, 2, body)
        r = conn.recv_response(cid)
        r.i32()  # throttle
        assert r.i32() == 1 and r.string() == topic and r.i32() == 1
        error_code, partition, leader_epoch, end_offset = r.i16(), r.i32(), r.i32(), r.i64()
    assert (error_code, partition, leader_epoch, end_offset) == (0, 0, epoch, 5)
