"""Usage metering: what each principal produced and fetched, per topic, on `GET /v1/usage` and
`/metrics`, kept across a restart.

alice (SCRAM) produces with confluent-kafka and bob reads it all back with kafka-python; the
bytes alice produced are the record batches the broker stored verbatim, so they equal the
topic's size on disk, and bob, reading each batch once, fetched the same bytes.
"""

from __future__ import annotations

import json
import re
import urllib.error
import urllib.request

from helpers import create_topic, producer, produce_all, unique, wait_until
from test_sasl import create_user, listeners_of, sasl_conf


def get_usage(broker, **params) -> dict:
    query = "&".join(f"{k}={urllib.request.quote(str(v))}" for k, v in params.items())
    with urllib.request.urlopen(f"http://{broker.http_addr}/v1/usage?{query}", timeout=10) as resp:
        assert resp.headers["Content-Type"] == "application/json"
        return json.loads(resp.read())


def topic_usage(report: dict, topic: str) -> dict:
    return next(t for t in report["topics"] if t["topic"] == topic)


def principal_usage(report: dict, principal: str) -> dict:
    return next(p for p in report["principals"] if p["principal"] == principal)


def test_usage_per_principal_and_topic_matches_what_was_produced_and_survives_a_restart(spate_factory):
    from kafka import KafkaConsumer

    broker = spate_factory(args=["--listener", "INSIDE=SASL_PLAINTEXT://127.0.0.1:0",
                                 "--sasl-mechanisms", "SCRAM-SHA-512"])
    inside = listeners_of(broker)["INSIDE"]
    for user in ("alice", "bob"):
        create_user(broker.bootstrap, user, f"{user}-secret")
    topic = unique("metered")
    create_topic(broker.bootstrap, topic)

    alice = sasl_conf(inside, "SASL_PLAINTEXT", "SCRAM-SHA-512", "alice", "alice-secret")
    settings = {k: v for k, v in alice.items() if k != "bootstrap.servers"}
    values = [f"record-{i}".encode() * 10 for i in range(200)]
    produce_all(producer(inside, acks="all", **settings), topic, [{"value": v} for v in values])

    bob = KafkaConsumer(
        topic, bootstrap_servers=inside, security_protocol="SASL_PLAINTEXT", sasl_mechanism="SCRAM-SHA-512",
        sasl_plain_username="bob", sasl_plain_password="bob-secret", auto_offset_reset="earliest",
        enable_auto_commit=False, group_id=None, consumer_timeout_ms=10_000,
    )
    assert len(list(bob)) == len(values)
    bob.close()

    report = get_usage(broker, topic=topic)
    metered = topic_usage(report, topic)
    assert metered["records_in"] == len(values)
    assert metered["bytes_in"] >= sum(len(v) for v in values)
    assert metered["bytes_in"] == metered["storage_bytes"], "produced batches are stored verbatim"
    assert metered["records_out"] == len(values)
    assert metered["bytes_out"] == metered["bytes_in"], "bob read every batch once"
    by_alice = get_usage(broker, principal="User:alice", topic=topic)
    assert principal_usage(by_alice, "User:alice")["bytes_in"] == metered["bytes_in"]
    assert principal_usage(by_alice, "User:alice")["bytes_out"] == 0
    assert principal_usage(by_alice, "User:alice")["requests"] > 0
    by_bob = get_usage(broker, principal="User:bob", topic=topic)
    assert principal_usage(by_bob, "User:bob")["bytes_out"] == metered["bytes_in"]
    assert principal_usage(by_bob, "User:bob")["bytes_in"] == 0

    # The same numbers as Prometheus counters.
    with urllib.request.urlopen(f"http://{broker.http_addr}/metrics", timeout=10) as resp:
        metrics = resp.read().decode()
    line = re.search(rf'spate_usage_bytes_in_total{{principal="User:alice",topic="{topic}"}} (\d+)', metrics)
    assert line and int(line.group(1)) == metered["bytes_in"]

    # A time range before any of it holds nothing; bad times are refused.
    before = get_usage(broker, to="2000-01-01T00:00:00Z")
    assert before["principals"] == [] and before["buckets"] == []
    try:
        get_usage(broker, **{"from": "yesterday"})
        raise AssertionError("a bad time must be refused")
    except urllib.error.HTTPError as e:
        assert e.code == 400 and "RFC 3339" in json.loads(e.read())["error"]

    # A restart does not reset the billing period.
    broker.restart()
    after = topic_usage(get_usage(broker, topic=topic), topic)
    assert (after["bytes_in"], after["records_in"], after["bytes_out"]) == (
        metered["bytes_in"], metered["records_in"], metered["bytes_out"]
    )
