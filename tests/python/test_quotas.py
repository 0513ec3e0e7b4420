"""Client quotas against Spate with real clients (KIP-13, KIP-55, KIP-124, KIP-219, KIP-546,
KIP-612).

Neither confluent-kafka's AdminClient nor kafka-python's KafkaAdminClient has calls for
DescribeClientQuotas or AlterClientQuotas, so quotas are set with `spate quota` (the CLI of
this checkout), and the wire format is checked with kafka-python's own generated request and
response classes sent through its connection manager. The throttling tests measure real
clients: a confluent-kafka producer and consumer held at their byte rates, the throttle time
they are told, and a connection flood from one address cut at its connection rate.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import threading
import time
import urllib.request
from typing import Any

import json
import pytest
from confluent_kafka import Producer, TopicPartition
from kafka import KafkaAdminClient
from kafka.protocol.admin import AlterClientQuotasRequest, DescribeClientQuotasRequest
from kafka.protocol.metadata import MetadataRequest

from conftest import SpateBroker, spate_binary
from helpers import consumer, create_topic, unique, wait_until
from kafka_wire import frame, request_header_v1

KIB = 1024
INVALID_REQUEST = 42
UNSUPPORTED_VERSION = 35


def quota_cli(broker: SpateBroker, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run(
        [str(spate_binary()), "quota", "--brokers", broker.bootstrap, *args],
        capture_output=True,
        text=True,
        timeout=60,
    )
    if check:
        assert proc.returncode == 0, f"spate quota {' '.join(args)} failed: {proc.stderr}"
    return proc


def listed(broker: SpateBroker, *filters: str) -> set[tuple[str, str, str, str, str]]:
    """`spate quota list` rows as (user, client-id, ip, key, value)."""
    lines = quota_cli(broker, "list", *filters).stdout.splitlines()
    assert lines[0].split() == ["USER", "CLIENT-ID", "IP", "KEY", "VALUE"]
    return {tuple(line.split()) for line in lines[1:]}  # type: ignore[misc]


class KafkaPython:
    """kafka-python's generated protocol classes, sent through its connection manager (its
    admin client has no quota calls)."""

    def __init__(self, bootstrap: str):
        self.admin = KafkaAdminClient(bootstrap_servers=bootstrap, client_id="quota-tests")

    def send(self, request: Any) -> Any:
        manager = self.admin._manager
        return manager.run(manager.send, request)

    def close(self) -> None:
        self.admin.close()


def entity(**components: str | None) -> list[Any]:
    return [
        AlterClientQuotasRequest.EntryData.EntityData(entity_type=t.replace("_", "-"), entity_name=n)
        for t, n in components.items()
    ]


def alter(entries: list[tuple[list[Any], list[tuple[str, float | None]]]], validate_only: bool = False) -> Any:
    return AlterClientQuotasRequest(
        entries=[
            AlterClientQuotasRequest.EntryData(
                entity=e,
                ops=[
                    AlterClientQuotasRequest.EntryData.OpData(key=k, value=v or 0.0, remove=v is None)
                    for k, v in ops
                ],
            )
            for e, ops in entries
        ],
        validate_only=validate_only,
    )


def describe(*components: tuple[str, int, str | None], strict: bool = False) -> Any:
    return DescribeClientQuotasRequest(
        components=[
            DescribeClientQuotasRequest.ComponentData(entity_type=t, match_type=m, match=n)
            for t, m, n in components
        ],
        strict=strict,
    )


def described(response: Any) -> dict[tuple[tuple[str, str | None], ...], dict[str, float]]:
    assert response.error_code == 0, response
    return {
        tuple((e.entity_type, e.entity_name) for e in entry.entity): {v.key: v.value for v in entry.values}
        for entry in response.entries
    }


def test_quotas_are_set_listed_removed_and_kept_across_a_restart(spate):
    quota_cli(spate, "set", "--user", "alice", "--client-id", "app", "producer_byte_rate=1048576",
              "request_percentage=12.5")
    quota_cli(spate, "set", "--user-default", "consumer_byte_rate=2097152")
    quota_cli(spate, "set", "--client-default", "producer_byte_rate=65536")
    quota_cli(spate, "set", "--ip", "10.0.0.1", "connection_creation_rate=10")
    everything = {
        ("alice", "app", "-", "producer_byte_rate", "1048576"),
        ("alice", "app", "-", "request_percentage", "12.5"),
        ("<default>", "-", "-", "consumer_byte_rate", "2097152"),
        ("-", "<default>", "-", "producer_byte_rate", "65536"),
        ("-", "-", "10.0.0.1", "connection_creation_rate", "10"),
    }
    assert listed(spate) == everything
    assert listed(spate, "--user", "alice") == {r for r in everything if r[0] == "alice"}
    assert listed(spate, "--user", "alice", "--strict") == set(), "strict: only user-only entities"
    assert listed(spate, "--client-default") == {("-", "<default>", "-", "producer_byte_rate", "65536")}

    # The same through kafka-python's codec: defaults are null names, values are doubles.
    client = KafkaPython(spate.bootstrap)
    try:
        quotas = described(client.send(describe()))
        assert quotas[(("user", "alice"), ("client-id", "app"))] == {
            "producer_byte_rate": 1048576.0, "request_percentage": 12.5}
        assert quotas[(("user", None),)] == {"consumer_byte_rate": 2097152.0}
        assert quotas[(("ip", "10.0.0.1"),)] == {"connection_creation_rate": 10.0}
        default_users = described(client.send(describe(("user", 1, None))))
        assert list(default_users) == [(("user", None),)]
        any_client = described(client.send(describe(("client-id", 2, None))))
        assert set(any_client) == {(("user", "alice"), ("client-id", "app")), (("client-id", None),)}
    finally:
        client.close()

    spate.restart()
    assert listed(spate) == everything, "quotas survive a restart"
    quota_cli(spate, "remove", "--user", "alice", "--client-id", "app", "request_percentage")
    quota_cli(spate, "remove", "--ip", "10.0.0.1", "connection_creation_rate")
    spate.restart()
    assert listed(spate) == everything - {
        ("alice", "app", "-", "request_percentage", "12.5"),
        ("-", "-", "10.0.0.1", "connection_creation_rate", "10"),
    }, "removals survive too"


def test_bad_quota_input_is_refused_with_invalid_request(spate):
    client = KafkaPython(spate.bootstrap)
    try:
        response = client.send(alter([
            (entity(user="alice"), [("producer_byte_rate", -1.0)]),
            (entity(user="alice", ip="10.0.0.1"), [("producer_byte_rate", 1.0)]),
            (entity(user="bob"), [("no_such_rate", 1.0)]),
            (entity(client_id="app"), [("producer_byte_rate", 1024.5)]),
            (entity(user=""), [("producer_byte_rate", 1.0)]),
            (entity(ip="10.0.0.2"), [("producer_byte_rate", 1.0)]),
            (entity(user="carol"), [("consumer_byte_rate", 4096.0)]),
        ]))
        results = [(e.error_code, e.error_message) for e in response.entries]
        assert results == [
            (INVALID_REQUEST, "Quota producer_byte_rate must be greater than 0"),
            (INVALID_REQUEST,
             "Invalid quota entity combination, IP entity should not be combined with User or ClientId"),
            (INVALID_REQUEST, "Invalid configuration key no_such_rate"),
            (INVALID_REQUEST, "producer_byte_rate cannot be a fractional value."),
            (INVALID_REQUEST, "Empty user not supported"),
            (INVALID_REQUEST, "Invalid configuration key producer_byte_rate"),
            (0, None),
        ]
        # validate_only checks without storing.
        checked = client.send(alter([(entity(user="dave"), [("producer_byte_rate", 1024.0)])], validate_only=True))
        assert [e.error_code for e in checked.entries] == [0]
        assert described(client.send(describe())) == {(("user", "carol"),): {"consumer_byte_rate": 4096.0}}

        bad_filter = client.send(describe(("ip", 2, None), ("user", 2, None)))
        assert bad_filter.error_code == INVALID_REQUEST
        assert "IP filter component should not be used with user or clientId" in bad_filter.error_message
        unknown_type = client.send(describe(("topic", 2, None)))
        assert unknown_type.error_code == UNSUPPORTED_VERSION
    finally:
        client.close()

    refused = quota_cli(spate, "set", "--user", "alice", "producer_byte_rate=0", check=False)
    assert refused.returncode != 0
    assert "INVALID_REQUEST: Quota producer_byte_rate must be greater than 0" in refused.stderr


class Stats:
    """The largest broker throttle librdkafka reported through stats_cb."""

    def __init__(self) -> None:
        self.max_throttle_ms = 0
        self.reports = 0

    def __call__(self, text: str) -> None:
        self.reports += 1
        for broker in json.loads(text).get("brokers", {}).values():
            self.max_throttle_ms = max(self.max_throttle_ms, broker.get("throttle", {}).get("max", 0))


def rate_between(events: list[tuple[float, int]], start: float, end: float) -> float:
    return sum(n for t, n in events if start <= t < end) / (end - start)


# 256 KiB/s measured over 10 s after 2 s of warm-up: 16 KiB batches make ~16 requests a second,
# so one request more or less moves the measurement by well under 1 %.
RATE = 256 * KIB
WARM_UP_S = 2.0
MEASURE_S = 10.0
VALUE_BYTES = 1000


def test_a_producer_is_held_at_its_producer_byte_rate_and_told_its_throttle(spate):
    topic = unique("throttled")
    create_topic(spate.bootstrap, topic)
    quota_cli(spate, "set", "--client-id", "throttled-producer", f"producer_byte_rate={RATE}")
    stats = Stats()
    acked: list[tuple[float, int]] = []

    def on_delivery(err: Any, msg: Any) -> None:
        assert err is None, err
        acked.append((time.monotonic(), len(msg.value())))

    p = Producer({
        "bootstrap.servers": spate.bootstrap,
        "client.id": "throttled-producer",
        "acks": "all",
        "linger.ms": 5,
        "batch.size": 16 * KIB,
        "statistics.interval.ms": 500,
        "stats_cb": stats,
    })
    value = os.urandom(VALUE_BYTES)
    start = time.monotonic()
    end = start + WARM_UP_S + MEASURE_S
    # Always a backlog: the producer is limited by the broker, not by this loop.
    while time.monotonic() < end:
        if len(p) < 512:
            p.produce(topic, value, on_delivery=on_delivery)
        else:
            p.poll(0.005)
        p.poll(0)
    assert p.flush(60) == 0
    measured = rate_between(acked, start + WARM_UP_S, end)
    print(f"producer_byte_rate {RATE} B/s: acknowledged {measured:.0f} B/s of values "
          f"({measured / RATE:.3f} of the quota), max throttle {stats.max_throttle_ms} ms")
    assert 0.9 * RATE <= measured <= 1.1 * RATE, f"{measured:.0f} B/s against a quota of {RATE} B/s"
    wait_until(lambda: stats.max_throttle_ms > 0, 10, what="librdkafka's stats to show a broker throttle")

    # Another client id has no quota: never throttled.
    free_stats = Stats()
    free = Producer({"bootstrap.servers": spate.bootstrap, "client.id": "free", "linger.ms": 5,
                     "statistics.interval.ms": 200, "stats_cb": free_stats})
    for _ in range(2000):
        while True:
            try:
                free.produce(topic, value)
                break
            except BufferError:
                free.poll(0.01)
    assert free.flush(60) == 0
    reports = free_stats.reports
    wait_until(lambda: free.poll(0.1) is not None and free_stats.reports > reports + 1, 10,
               what="stats after the produce")
    assert free_stats.max_throttle_ms == 0


def test_a_consumer_is_held_at_its_consumer_byte_rate(spate):
    topic = unique("slow-reads")
    create_topic(spate.bootstrap, topic)
    count = int(RATE * (WARM_UP_S + MEASURE_S) * 1.5 / VALUE_BYTES)
    filler = Producer({"bootstrap.servers": spate.bootstrap, "linger.ms": 20, "batch.size": 16 * KIB})
    value = os.urandom(VALUE_BYTES)
    for _ in range(count):
        while True:
            try:
                filler.produce(topic, value)
                break
            except BufferError:
                filler.poll(0.01)
    assert filler.flush(60) == 0
    quota_cli(spate, "set", "--user", "ANONYMOUS", "--client-id", "throttled-consumer",
              f"consumer_byte_rate={RATE}")
    stats = Stats()
    c = consumer(spate.bootstrap, **{
        "client.id": "throttled-consumer",
        "max.partition.fetch.bytes": 32 * KIB,
        "statistics.interval.ms": 500,
        "stats_cb": stats,
    })
    received: list[tuple[float, int]] = []
    try:
        c.assign([TopicPartition(topic, 0, 0)])
        start = time.monotonic()
        end = start + WARM_UP_S + MEASURE_S
        while time.monotonic() < end:
            for m in c.consume(num_messages=500, timeout=0.1):
                assert m.error() is None, m.error()
                received.append((time.monotonic(), len(m.value())))
        assert len(received) < count, "the consumer never ran out of records to read"
        measured = rate_between(received, start + WARM_UP_S, end)
        print(f"consumer_byte_rate {RATE} B/s: consumed {measured:.0f} B/s of values "
              f"({measured / RATE:.3f} of the quota), max throttle {stats.max_throttle_ms} ms")
        assert 0.9 * RATE <= measured <= 1.1 * RATE, f"{measured:.0f} B/s against a quota of {RATE} B/s"
        wait_until(lambda: (c.poll(0.1), stats.max_throttle_ms > 0)[1], 10,
                   what="librdkafka's stats to show a fetch throttle")
    finally:
        c.close()


def test_request_percentage_throttles_a_busy_client(spate):
    """A client at 0.01 % of a thread is throttled; kafka-python sees the throttle_time_ms."""
    quota_cli(spate, "set", "--client-id", "busy", "request_percentage=0.01")
    admin = KafkaAdminClient(bootstrap_servers=spate.bootstrap, client_id="busy")
    try:
        manager = admin._manager

        def throttled() -> bool:
            response = manager.run(manager.send, MetadataRequest(topics=None))
            return response.throttle_time_ms > 0

        wait_until(throttled, 30, interval_s=0, what="a Metadata response with a throttle")
    finally:
        admin.close()


def api_versions_or_closed(s: socket.socket, timeout_s: float) -> str:
    """Sends ApiVersions v0 and returns "answered" or "closed"."""
    s.settimeout(timeout_s)
    try:
        s.sendall(frame(request_header_v1(18, 0, 1, "flood")))
        head = s.recv(4)
    except (ConnectionResetError, BrokenPipeError):
        return "closed"
    return "answered" if len(head) == 4 else "closed"


def test_connections_above_an_address_rate_are_closed_while_others_keep_producing(spate):
    """An IP quota of 5 connections a second: a flood from 127.0.0.2 gets about 5 connections
    served and the rest closed, while a producer on 127.0.0.1 keeps producing."""
    quota_cli(spate, "set", "--ip", "127.0.0.2", "connection_creation_rate=5")
    host, port = spate.bootstrap.rsplit(":", 1)
    topic = unique("beside-the-flood")
    p = Producer({"bootstrap.servers": spate.bootstrap, "acks": "all", "linger.ms": 0})
    p.produce(topic, b"before")
    assert p.flush(30) == 0

    flood: list[socket.socket] = []
    try:
        began = time.monotonic()
        for _ in range(40):
            s = socket.socket()
            s.bind(("127.0.0.2", 0))
            s.connect((host, int(port)))
            flood.append(s)
        flood_s = time.monotonic() - began
        for i in range(50):
            p.produce(topic, f"during-{i}".encode())
        assert p.flush(30) == 0, "the producer on another address is unaffected"
        outcomes = [api_versions_or_closed(s, 10) for s in flood]
    finally:
        for s in flood:
            s.close()
    served = outcomes.count("answered")
    allowed = 5 + int(5 * flood_s) + 1
    print(f"flood of 40 in {flood_s * 1000:.0f} ms: {served} served, {outcomes.count('closed')} closed")
    assert 1 <= served <= allowed, f"{served} connections served, at most {allowed} expected"
    assert outcomes.count("closed") == 40 - served
    wait_until(
        lambda: "connections refused: connection_creation_rate quota of the address exceeded" in spate.log_text(),
        15,
        what="the refusal logged",
    )
    lines = spate.log_text().count("connection_creation_rate quota of the address exceeded")
    assert lines < 5, f"refusals are logged at most once a second, got {lines} lines"
    metrics = urllib.request.urlopen(f"http://{spate.http_addr}/metrics", timeout=10).read().decode()
    refused = re.search(r"^spate_connections_rate_limited_total (\d+)$", metrics, re.M)
    assert refused and int(refused.group(1)) == 40 - served


def test_max_connection_creation_rate_delays_accepting_without_refusing(spate_factory):
    broker = spate_factory(args=["--max-connection-creation-rate", "10"])
    host, port = broker.bootstrap.rsplit(":", 1)
    sockets: list[socket.socket] = []
    try:
        for _ in range(30):
            sockets.append(socket.create_connection((host, int(port)), timeout=10))
        outcomes = [api_versions_or_closed(s, 30) for s in sockets]
    finally:
        for s in sockets:
            s.close()
    assert outcomes == ["answered"] * 30, "accepting waits; nothing is refused"
    metrics = urllib.request.urlopen(f"http://{broker.http_addr}/metrics", timeout=10).read().decode()
    delays = re.search(r"^spate_connection_accept_delays_total (\d+)$", metrics, re.M)
    assert delays and int(delays.group(1)) > 0, "30 connections at once are above 10 a second"
