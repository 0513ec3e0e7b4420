"""Confluent's datagen source connector end to end: a `spate connect worker` against a real
`spate serve`, the connector created over plain HTTP with the config Confluent's quickstart
uses, the generated records read back with confluent-kafka."""

from __future__ import annotations

import pytest

import json
import re

from confluent_kafka import Consumer

from helpers import wait_until
from test_connect import connector_state, broker, worker  # noqa: F401  (the `worker` fixture)


@pytest.fixture
def spate(broker):
    """The workers' broker (run without its in-process worker, which would join their group)."""
    return broker

DATAGEN = "io.confluent.kafka.connect.datagen.DatagenConnector"


def consume(brokers: str, topic: str, count: int) -> list[tuple[bytes | None, bytes, dict]]:
    consumer = Consumer({"bootstrap.servers": brokers, "group.id": f"check-{topic}",
                         "auto.offset.reset": "earliest", "enable.auto.commit": False})
    consumer.subscribe([topic])
    records: list[tuple[bytes | None, bytes, dict]] = []
    try:
        def enough() -> bool:
            message = consumer.poll(0.5)
            if message is not None and message.error() is None:
                headers = {k: v for k, v in (message.headers() or [])}
                records.append((message.key(), message.value(), headers))
            return len(records) >= count
        wait_until(enough, timeout_s=60, what=f"{count} records in {topic}")
        extra = consumer.poll(2.0)
        assert extra is None or extra.error() is not None, "more records than iterations"
    finally:
        consumer.close()
    return records


def key_text(raw: bytes | None) -> str | None:
    """The key's string: JsonConverter writes it bare or in its schema envelope."""
    if raw is None:
        return None
    decoded = json.loads(raw)
    return decoded["payload"] if isinstance(decoded, dict) else decoded


def test_users_quickstart_generates_its_iterations_as_json(spate, worker):
    w = worker()
    code, created = w.call("POST", "/connectors", {"name": "datagen-users", "config": {
        "connector.class": DATAGEN, "quickstart": "users", "kafka.topic": "users",
        "max.interval": "10", "iterations": "50",
        "value.converter": "org.apache.kafka.connect.json.JsonConverter",
        "value.converter.schemas.enable": "false"}})
    assert code == 201, created
    assert created["type"] == "source"

    records = consume(spate.kafka_addr, "users", 50)
    user = re.compile(r"^User_[1-9]$")
    region = re.compile(r"^Region_[1-9]$")
    for i, (key, value, headers) in enumerate(records):
        row = json.loads(value)
        assert set(row) == {"registertime", "userid", "regionid", "gender"}, row
        assert 1487715775521 <= row["registertime"] < 1519273364600
        assert user.match(row["userid"]) and region.match(row["regionid"]), row
        assert row["gender"] in {"MALE", "FEMALE", "OTHER"}
        assert key_text(key) == row["userid"], (key, row)
        assert headers["task.id"] == b"0" and headers["task.generation"] == b"0"
        assert headers["current.iteration"] == str(i).encode()

    # After its iterations the task stays up and idle rather than failing.
    assert connector_state(w, "datagen-users") == ("RUNNING", ["RUNNING"])
    code, offsets = w.call("GET", "/connectors/datagen-users/offsets")
    assert code == 200, offsets

    def committed() -> bool:
        _, found = w.call("GET", "/connectors/datagen-users/offsets")
        return any(o["offset"].get("current.iteration") == 50 for o in found["offsets"])
    wait_until(committed, timeout_s=30, what="the 50th iteration committed as the source offset")


def test_an_unknown_quickstart_is_refused_naming_the_key(worker):
    w = worker()
    code, error = w.call("POST", "/connectors", {"name": "bad", "config": {
        "connector.class": "Datagen", "quickstart": "nope", "kafka.topic": "t"}})
    assert code == 400, error
    assert "quickstart" in error["message"]
    assert w.call("GET", "/connectors") == (200, [])
