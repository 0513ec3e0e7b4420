"""Confluent's registry-backed converters end to end: a `spate connect worker` whose FileStream
(and Datagen) connectors use AvroConverter / JsonSchemaConverter / ProtobufConverter against the
registry of a real `spate serve`, with confluent-kafka's own serializers and deserializers on the
other side of the topic."""

from __future__ import annotations

import base64
import json
import urllib.request

import pytest

from confluent_kafka import Consumer, Producer
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer, AvroSerializer
from confluent_kafka.schema_registry.json_schema import JSONDeserializer, JSONSerializer
from confluent_kafka.schema_registry.protobuf import ProtobufDeserializer
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from confluent_kafka.serialization import MessageField, SerializationContext

from helpers import wait_until
from test_connect import SINK, SOURCE, connector_state, broker, worker  # noqa: F401  (fixture)


@pytest.fixture
def spate(broker):
    """The workers' broker (run without its in-process worker, which would join their group)."""
    return broker

AVRO = "io.confluent.connect.avro.AvroConverter"
JSON_SCHEMA = "io.confluent.connect.json.JsonSchemaConverter"
PROTOBUF = "io.confluent.connect.protobuf.ProtobufConverter"

USER_AVRO = json.dumps({
    "type": "record", "name": "User", "namespace": "app",
    "fields": [
        {"name": "name", "type": ["null", "string"], "default": None},
        {"name": "visits", "type": "long"},
    ],
})

USER_JSON = json.dumps({
    "type": "object", "title": "User",
    "properties": {"name": {"type": "string"}, "visits": {"type": "integer"}},
    "required": ["visits"],
})


def consume_raw(brokers: str, topic: str, count: int) -> list[bytes]:
    consumer = Consumer({"bootstrap.servers": brokers, "group.id": f"check-{topic}",
                         "auto.offset.reset": "earliest", "enable.auto.commit": False})
    consumer.subscribe([topic])
    values: list[bytes] = []
    try:
        def enough() -> bool:
            message = consumer.poll(0.5)
            if message is not None and message.error() is None:
                values.append(message.value())
            return len(values) >= count
        wait_until(enough, timeout_s=60, what=f"{count} records in {topic}")
    finally:
        consumer.close()
    return values


def produce(brokers: str, topic: str, serializer, records: list[dict]) -> None:
    producer = Producer({"bootstrap.servers": brokers})
    for record in records:
        value = serializer(record, SerializationContext(topic, MessageField.VALUE))
        producer.produce(topic, value=value)
    assert producer.flush(30) == 0


def registry_config(spate, converter: str) -> dict[str, str]:
    return {"value.converter": converter,
            "value.converter.schema.registry.url": f"http://{spate.registry_addr}"}


def test_avro_converter_writes_what_confluents_deserializer_reads(spate, worker, tmp_path):
    w = worker()
    source_file = tmp_path / "in.txt"
    source_file.write_text("".join(f"line {i}\n" for i in range(5)))
    code, created = w.call("POST", "/connectors", {"name": "avro-in", "config": {
        "connector.class": SOURCE, "file": str(source_file), "topic": "avro-lines",
        **registry_config(spate, AVRO)}})
    assert code == 201, created

    values = consume_raw(spate.kafka_addr, "avro-lines", 5)
    sr = SchemaRegistryClient({"url": f"http://{spate.registry_addr}"})
    registered = sr.get_latest_version("avro-lines-value")
    assert json.loads(registered.schema.schema_str) == "string"
    assert all(v[0] == 0 and int.from_bytes(v[1:5], "big") == registered.schema_id for v in values)
    deserialize = AvroDeserializer(sr)
    ctx = SerializationContext("avro-lines", MessageField.VALUE)
    assert [deserialize(v, ctx) for v in values] == [f"line {i}" for i in range(5)]
    wait_until(lambda: connector_state(w, "avro-in") == ("RUNNING", ["RUNNING"]), what="running")


def test_avro_converter_reads_what_confluents_serializer_writes(spate, worker, tmp_path):
    sr = SchemaRegistryClient({"url": f"http://{spate.registry_addr}"})
    records = [{"name": "ada", "visits": 3}, {"name": None, "visits": 2**40}]
    produce(spate.kafka_addr, "avro-users", AvroSerializer(sr, USER_AVRO), records)

    w = worker()
    sink_file = tmp_path / "out.txt"
    code, created = w.call("PUT", "/connectors/avro-out/config", {
        "connector.class": SINK, "file": str(sink_file), "topics": "avro-users",
        **registry_config(spate, AVRO)})
    assert code == 201, created
    wait_until(lambda: sink_file.exists() and len(sink_file.read_text().splitlines()) >= 2,
               what="the sink file")
    assert [json.loads(line) for line in sink_file.read_text().splitlines()] == records


def test_avro_converter_round_trips_between_source_and_sink(spate, worker, tmp_path):
    w = worker()
    source_file, sink_file = tmp_path / "in.txt", tmp_path / "out.txt"
    source_file.write_text("alpha\nbeta\n")
    assert w.call("POST", "/connectors", {"name": "rt-in", "config": {
        "connector.class": SOURCE, "file": str(source_file), "topic": "rt",
        **registry_config(spate, AVRO)}})[0] == 201
    # The sink task fails on a topic that does not exist yet; let the source create it first.
    consume_raw(spate.kafka_addr, "rt", 2)
    assert w.call("POST", "/connectors", {"name": "rt-out", "config": {
        "connector.class": SINK, "file": str(sink_file), "topics": "rt",
        **registry_config(spate, AVRO)}})[0] == 201
    wait_until(lambda: sink_file.exists() and sink_file.read_text().splitlines() == ["alpha", "beta"],
               what="the round trip")


def test_a_registry_converter_without_a_url_is_refused_by_name(worker, tmp_path):
    w = worker()
    code, error = w.call("PUT", "/connector-plugins/FileStreamSinkConnector/config/validate", {
        "connector.class": SINK, "file": str(tmp_path / "x"), "topics": "t",
        "value.converter": AVRO})
    assert code == 200, error
    problems = [v for c in error["configs"] for v in c["value"]["errors"]]
    assert any("schema.registry.url" in p for p in problems), error


def test_json_schema_converter_both_ways_with_confluents_serializers(spate, worker, tmp_path):
    sr = SchemaRegistryClient({"url": f"http://{spate.registry_addr}"})
    w = worker()
    source_file = tmp_path / "in.txt"
    source_file.write_text("one\ntwo\n")
    assert w.call("POST", "/connectors", {"name": "js-in", "config": {
        "connector.class": SOURCE, "file": str(source_file), "topic": "js-lines",
        **registry_config(spate, JSON_SCHEMA)}})[0] == 201
    values = consume_raw(spate.kafka_addr, "js-lines", 2)
    deserialize = JSONDeserializer(None, schema_registry_client=sr)
    ctx = SerializationContext("js-lines", MessageField.VALUE)
    assert [deserialize(v, ctx) for v in values] == ["one", "two"]
    assert sr.get_latest_version("js-lines-value").schema.schema_type == "JSON"

    records = [{"name": "ada", "visits": 3}, {"visits": 4}]
    produce(spate.kafka_addr, "js-users", JSONSerializer(USER_JSON, sr), records)
    sink_file = tmp_path / "out.txt"
    assert w.call("PUT", "/connectors/js-out/config", {
        "connector.class": SINK, "file": str(sink_file), "topics": "js-users",
        **registry_config(spate, JSON_SCHEMA)})[0] == 201
    wait_until(lambda: sink_file.exists() and len(sink_file.read_text().splitlines()) >= 2,
               what="the sink file")
    assert [json.loads(line) for line in sink_file.read_text().splitlines()] == [
        {"name": "ada", "visits": 3}, {"name": None, "visits": 4}]


def test_protobuf_converter_writes_what_confluents_deserializer_reads(spate, worker):
    """Datagen's users as Protobuf: the record's Connect schema registered as a proto3 schema,
    each value in Confluent's wire format (header, message indexes, message), read by
    confluent-kafka's ProtobufDeserializer with a message class built from the registered
    schema by the protobuf package itself."""
    w = worker()
    code, created = w.call("POST", "/connectors", {"name": "proto-users", "config": {
        "connector.class": "io.confluent.kafka.connect.datagen.DatagenConnector",
        "quickstart": "users", "kafka.topic": "proto-users", "max.interval": "1",
        "iterations": "5", **registry_config(spate, PROTOBUF)}})
    assert code == 201, created
    values = consume_raw(spate.kafka_addr, "proto-users", 5)

    sr = SchemaRegistryClient({"url": f"http://{spate.registry_addr}"})
    registered = sr.get_latest_version("proto-users-value")
    assert registered.schema.schema_type == "PROTOBUF"
    assert "message users" in registered.schema.schema_str, registered.schema.schema_str
    # The FileDescriptorProto, as the REST API serves it (the client caches the text form).
    url = f"http://{spate.registry_addr}/subjects/proto-users-value/versions/latest?format=serialized"
    with urllib.request.urlopen(url, timeout=30) as response:
        serialized = json.loads(response.read())["schema"]
    pool = descriptor_pool.DescriptorPool()
    pool.Add(descriptor_pb2.FileDescriptorProto.FromString(base64.b64decode(serialized)))
    users = message_factory.GetMessageClass(pool.FindMessageTypeByName("ksql.users"))
    deserialize = ProtobufDeserializer(users, {"use.deprecated.format": False})
    ctx = SerializationContext("proto-users", MessageField.VALUE)
    for value in values:
        assert value[0] == 0 and int.from_bytes(value[1:5], "big") == registered.schema_id
        user = deserialize(value, ctx)
        assert user.userid.startswith("User_") and user.regionid.startswith("Region_"), user
        assert user.gender in {"MALE", "FEMALE", "OTHER"} and user.registertime > 0, user
