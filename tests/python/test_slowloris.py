"""Slow senders (slowloris) are closed, logged and audited, and do not stall other clients.

Each slow connection announces a large request and then sends one byte a second. The broker's
request memory is deliberately small: if it took a request's whole announced size up front
(as Kafka's memory pool does), the slow connections would hold all of it and every other
client's requests would wait behind them. With memory granted as bytes arrive they hold next
to nothing, a confluent-kafka producer goes on being acknowledged meanwhile, and each slow
connection is closed once it falls behind the minimum rate (a short request-read-timeout-ms
keeps the test quick). A SASL client that connects and never authenticates is closed in the
same time (while one that authenticates is served), and one that sends a large frame before
authenticating is refused at once.
"""

from __future__ import annotations

import socket
import struct
import threading
import time
import urllib.request


from helpers import MIB, audit_events, create_topic, produce_all, producer, unique, wait_until
from kafka_wire import split_addr
from test_sasl import create_user, listeners_of, sasl_conf

READ_TIMEOUT_S = 5
MIN_RATE_BYTES_PER_S = 1024
FRAME_BYTES = MIB
# Connections that announce a frame at once and dribble its body; one more dribbles the length.
BODY_DRIBBLERS = 4
SLOW_SENDERS = BODY_DRIBBLERS + 1
# Exactly the body dribblers' announced frames: taken up front, they would use it all.
QUEUED_BYTES = BODY_DRIBBLERS * FRAME_BYTES
# The pace of a slowloris; it is the behaviour under test, not a wait for a condition.
DRIBBLE_INTERVAL_S = 1.0
# How long after its first byte a slow connection may stay open: the read timeout, what its
# few bytes earn at the minimum rate, and slack for a busy machine.
CLOSE_BOUND_S = READ_TIMEOUT_S + 5


class SlowClient:
    """One connection on its own thread: sends `opening` at once, then `dribble` a byte per
    interval, until the broker closes the connection. `closed_at` is when it saw the close."""

    def __init__(self, address: str, opening: bytes, dribble: bytes):
        self.sock = socket.create_connection(split_addr(address), timeout=10)
        self.opening = opening
        self.dribble = dribble
        self.first_byte_at: float | None = None
        self.closed_at: float | None = None
        self.sent = 0
        self.thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> SlowClient:
        self.thread.start()
        return self

    def _run(self) -> None:
        self.sock.settimeout(DRIBBLE_INTERVAL_S)
        pending = list(self.dribble)
        try:
            if self.opening:
                self.sock.sendall(self.opening)
                self.sent += len(self.opening)
            self.first_byte_at = time.monotonic()
            while True:
                if pending:
                    self.sock.sendall(bytes([pending.pop(0)]))
                    self.sent += 1
                # Waiting for the close paces the dribble: one byte per interval.
                try:
                    if self.sock.recv(1) == b"":
                        break
                except socket.timeout:
                    pass
        except OSError:
            pass  # reset or broken pipe: closed by the broker
        self.closed_at = time.monotonic()
        self.sock.close()

    @property
    def closed(self) -> bool:
        return self.closed_at is not None


def announce(length: int) -> bytes:
    return struct.pack(">i", length)


def metric(broker, name: str) -> float:
    with urllib.request.urlopen(f"http://{broker.http_addr}/metrics", timeout=10) as resp:
        for line in resp.read().decode().splitlines():
            if line.startswith(name + " "):
                return float(line.split()[1])
    raise AssertionError(f"{name} not in /metrics")


def test_slow_senders_are_closed_and_do_not_stall_other_clients(spate_factory):
    broker = spate_factory(args=[
        "--max-request-bytes", str(FRAME_BYTES),
        "--max-queued-request-bytes", str(QUEUED_BYTES),
        "--request-read-timeout-ms", str(READ_TIMEOUT_S * 1000),
        "--request-read-min-bytes-per-second", str(MIN_RATE_BYTES_PER_S),
    ])
    topic = unique("besieged")
    create_topic(broker.bootstrap, topic)

    body = b"x" * 64
    slow = [
        # The length prefix at once, then the body a byte at a time.
        *[SlowClient(broker.bootstrap, announce(FRAME_BYTES), body) for _ in range(BODY_DRIBBLERS)],
        # The length prefix itself a byte at a time.
        SlowClient(broker.bootstrap, b"", announce(FRAME_BYTES) + body),
    ]
    for client in slow:
        client.start()
    wait_until(lambda: all(c.first_byte_at is not None for c in slow), 10, what="slow clients started")

    p = producer(broker.bootstrap, acks="all")
    batches = 0
    acknowledged = 0
    first_ack_while_all_open = None
    deadline = time.monotonic() + CLOSE_BOUND_S + 10
    while not all(c.closed for c in slow):
        assert time.monotonic() < deadline, "slow connections still open"
        records = [{"value": f"b{batches}-{i}".encode()} for i in range(20)]
        outcome = produce_all(p, topic, records, timeout_s=30)
        acknowledged += len(outcome.delivered)
        if first_ack_while_all_open is None:
            first_ack_while_all_open = not any(c.closed for c in slow)
        batches += 1
    assert first_ack_while_all_open, "the producer was acknowledged only after the slow clients were closed"
    assert acknowledged == 20 * batches

    for client in slow:
        open_for = client.closed_at - client.first_byte_at
        assert open_for <= CLOSE_BOUND_S, f"a slow client stayed open {open_for:.1f}s after its first byte"
        assert client.sent < len(announce(FRAME_BYTES) + body), "the broker waited for the whole frame"

    log = broker.log_text()
    assert "closing a slow connection" in log and "arrived too slowly" in log, broker.log_tail()
    assert metric(broker, "spate_connections_closed_slow_total") == SLOW_SENDERS

    def slow_closure(e: dict) -> bool:
        d = e["data"]
        return (e["type"] == "io.spate.kafka/authentication" and d["method"] == "Connection"
                and d["granted"] is False and "too slowly" in d.get("detail", ""))

    events = audit_events(broker.bootstrap, lambda es: sum(map(slow_closure, es)) >= SLOW_SENDERS,
                          what="the slow connections' records in _audit")
    assert sum(map(slow_closure, events)) == SLOW_SENDERS
    assert all(e["data"]["client_address"] == "127.0.0.1" for e in events if slow_closure(e))


def test_a_sasl_client_must_authenticate_in_time_with_small_frames(spate_factory):
    broker = spate_factory(args=[
        "--listener", "INSIDE=SASL_PLAINTEXT://127.0.0.1:0",
        "--request-read-timeout-ms", str(READ_TIMEOUT_S * 1000),
    ])
    inside = listeners_of(broker)["INSIDE"]

    # Within max-request-bytes (100 MiB) but above sasl-server-max-receive-size (512 KiB):
    # refused at once.
    with socket.create_connection(split_addr(inside), timeout=10) as sock:
        sock.sendall(announce(MIB))
        assert sock.recv(1) == b"", "the broker kept the connection open"
    wait_until(lambda: "sasl-server-max-receive-size" in broker.log_text(), 10,
               what="the refusal in the log")

    # Connects and never authenticates: closed after request-read-timeout-ms; a client that
    # authenticates meanwhile is served.
    silent = SlowClient(inside, b"", b"").start()
    create_user(broker.bootstrap, "prompt", "prompt-secret")
    conf = sasl_conf(inside, "SASL_PLAINTEXT", "SCRAM-SHA-512", "prompt", "prompt-secret")
    topic = unique("prompt")
    create_topic(broker.bootstrap, topic)
    p = producer(inside, acks="all", **{k: v for k, v in conf.items() if k != "bootstrap.servers"})
    assert len(produce_all(p, topic, [{"value": b"v"}] * 10).delivered) == 10
    wait_until(lambda: silent.closed, CLOSE_BOUND_S + 5, what="the unauthenticated client closed")
    assert silent.closed_at - silent.first_byte_at <= CLOSE_BOUND_S
    assert "SASL authentication not completed" in broker.log_text(), broker.log_tail()

    def unauthenticated(e: dict) -> bool:
        d = e["data"]
        return (d["method"] == "SaslAuthenticate" and d["granted"] is False
                and d.get("listener") == "INSIDE" and "not completed" in d.get("detail", ""))

    audit_events(broker.bootstrap, lambda es: any(map(unauthenticated, es)))
