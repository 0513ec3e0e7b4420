"""The schema registry with Confluent's own Python clients.

confluent-kafka's `SchemaRegistryClient` and its Avro, JSON Schema and Protobuf serializers talk
to Spate's registry listener exactly as they would to Confluent Schema Registry: serializers
register schemas on first use, producers write Confluent's wire format (magic byte, schema id)
to a Spate topic, and deserializers fetch the writer's schema by id to decode. Raw HTTP (with
`requests`) pins the REST details clients depend on: error codes and bodies, soft and
permanent deletes, configs and modes, and that bad input writes nothing to `_schemas`.
"""

from __future__ import annotations

import json
import struct
from typing import Any

import pytest
import requests
from confluent_kafka import Producer
from confluent_kafka.schema_registry import Schema, SchemaReference, SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer, AvroSerializer
from confluent_kafka.schema_registry.error import SchemaRegistryError
from confluent_kafka.schema_registry.json_schema import JSONDeserializer, JSONSerializer
from confluent_kafka.schema_registry.protobuf import ProtobufDeserializer, ProtobufSerializer
from confluent_kafka.serialization import MessageField, SerializationContext
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

from helpers import create_topic, group_round_trip, unique, watermarks

HEADERS = {"Content-Type": "application/vnd.schemaregistry.v1+json"}


def url(spate) -> str:
    return f"http://{spate.registry_addr}"


def registry(spate) -> SchemaRegistryClient:
    return SchemaRegistryClient({"url": url(spate)})


def rest(spate, method: str, path: str, body: Any = None, data: bytes | None = None):
    response = requests.request(
        method,
        url(spate) + path,
        headers=HEADERS,
        data=data if data is not None else (json.dumps(body) if body is not None else None),
        timeout=30,
    )
    try:
        return response.status_code, response.json()
    except ValueError:
        return response.status_code, response.text


def round_trip(spate, topic: str, values: list[bytes]) -> list[bytes]:
    """Produces the serialized values, then reads them back through a consumer group."""
    return group_round_trip({"bootstrap.servers": spate.bootstrap}, topic, values)


def schemas_end_offset(spate) -> int:
    return watermarks(spate.bootstrap, "_schemas")[1]


# --- serializers end to end -----------------------------------------------------------------

ORDER_AVRO = json.dumps(
    {
        "type": "record",
        "name": "Order",
        "namespace": "shop",
        "fields": [
            {"name": "id", "type": "long"},
            {"name": "item", "type": "string"},
            {"name": "quantity", "type": "int", "default": 1},
            {"name": "note", "type": ["null", "string"], "default": None},
        ],
    }
)


def test_avro_serializer_registers_and_round_trips_through_a_topic(spate):
    topic = unique("orders")
    create_topic(spate.bootstrap, topic)
    sr = registry(spate)
    serializer = AvroSerializer(sr, ORDER_AVRO)
    deserializer = AvroDeserializer(sr)
    ctx = SerializationContext(topic, MessageField.VALUE)
    orders = [{"id": i, "item": f"item-{i}", "quantity": i + 1, "note": None if i % 2 else "gift"} for i in range(20)]
    values = round_trip(spate, topic, [serializer(o, ctx) for o in orders])

    latest = sr.get_latest_version(f"{topic}-value")
    assert latest.version == 1
    for value in values:
        magic, schema_id = struct.unpack(">bI", value[:5])
        assert (magic, schema_id) == (0, latest.schema_id), "Confluent wire format"
    assert [deserializer(v, ctx) for v in values] == orders
    # The stored schema is the canonical (compact) text of what was registered.
    assert json.loads(sr.get_schema(latest.schema_id).schema_str) == json.loads(ORDER_AVRO)


ORDER_JSON = json.dumps(
    {
        "$schema": "http://json-schema.org/draft-07/schema#",
        "title": "Order",
        "type": "object",
        "properties": {
            "id": {"type": "integer"},
            "item": {"type": "string", "maxLength": 40},
            "tags": {"type": "array", "items": {"type": "string"}},
        },
        "required": ["id", "item"],
        "additionalProperties": False,
    }
)


def test_json_schema_serializer_registers_and_round_trips_through_a_topic(spate):
    topic = unique("orders-json")
    create_topic(spate.bootstrap, topic)
    sr = registry(spate)
    serializer = JSONSerializer(ORDER_JSON, sr)
    deserializer = JSONDeserializer(ORDER_JSON, schema_registry_client=sr)
    ctx = SerializationContext(topic, MessageField.VALUE)
    orders = [{"id": i, "item": f"thing {i}", "tags": ["a"] * (i % 3)} for i in range(10)]
    values = round_trip(spate, topic, [serializer(o, ctx) for o in orders])

    latest = sr.get_latest_version(f"{topic}-value")
    assert latest.schema.schema_type == "JSON"
    assert [deserializer(v, ctx) for v in values] == orders
    assert {struct.unpack(">bI", v[:5])[1] for v in values} == {latest.schema_id}


def order_message_class():
    """shop.Order and shop.Line as a message class built from a descriptor (no protoc)."""
    F = descriptor_pb2.FieldDescriptorProto
    file = descriptor_pb2.FileDescriptorProto(name="shop/order.proto", package="shop", syntax="proto3")
    line = file.message_type.add(name="Line")
    line.field.add(name="sku", number=1, type=F.TYPE_STRING, label=F.LABEL_OPTIONAL)
    line.field.add(name="count", number=2, type=F.TYPE_INT32, label=F.LABEL_OPTIONAL)
    order = file.message_type.add(name="Order")
    order.field.add(name="id", number=1, type=F.TYPE_INT64, label=F.LABEL_OPTIONAL)
    order.field.add(name="customer", number=2, type=F.TYPE_STRING, label=F.LABEL_OPTIONAL)
    order.field.add(
        name="lines", number=3, type=F.TYPE_MESSAGE, type_name=".shop.Line", label=F.LABEL_REPEATED
    )
    pool = descriptor_pool.DescriptorPool()
    pool.Add(file)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName("shop.Order"))


def test_protobuf_serializer_registers_and_round_trips_through_a_topic(spate):
    topic = unique("orders-proto")
    create_topic(spate.bootstrap, topic)
    sr = registry(spate)
    Order = order_message_class()
    serializer = ProtobufSerializer(Order, sr, {"use.deprecated.format": False})
    deserializer = ProtobufDeserializer(Order, {"use.deprecated.format": False})
    ctx = SerializationContext(topic, MessageField.VALUE)
    orders = []
    for i in range(10):
        order = Order(id=i, customer=f"c{i}")
        for j in range(i % 3):
            order.lines.add(sku=f"sku-{j}", count=j + 1)
        orders.append(order)
    values = round_trip(spate, topic, [serializer(o, ctx) for o in orders])

    latest = sr.get_latest_version(f"{topic}-value")
    assert latest.schema.schema_type == "PROTOBUF"
    # Registered as a base64 descriptor, served back as .proto source.
    assert "message Order" in latest.schema.schema_str
    assert [deserializer(v, ctx) for v in values] == orders


# --- ids, versions, restart ---------------------------------------------------------------


def test_ids_are_shared_by_equal_schemas_and_survive_a_restart(spate):
    sr = registry(spate)
    a, b = unique("a"), unique("b")
    first = sr.register_schema(a, Schema(ORDER_AVRO, "AVRO"))
    # The same schema, written differently (whitespace), in another subject: the same id.
    spaced = json.dumps(json.loads(ORDER_AVRO), indent=4)
    assert sr.register_schema(b, Schema(spaced, "AVRO")) == first
    # Registering again in the same subject adds no version.
    assert sr.register_schema(a, Schema(ORDER_AVRO, "AVRO")) == first
    evolved = json.loads(ORDER_AVRO)
    evolved["fields"].append({"name": "coupon", "type": ["null", "string"], "default": None})
    second = sr.register_schema(a, Schema(json.dumps(evolved), "AVRO"))
    assert second != first

    spate.restart()
    after = registry(spate)
    assert after.get_versions(a) == [1, 2]
    assert after.get_versions(b) == [1]
    assert after.get_version(a, 2).schema_id == second
    assert json.loads(after.get_schema(first).schema_str) == json.loads(ORDER_AVRO)
    third = after.register_schema(unique("c"), Schema('"string"', "AVRO"))
    assert third > max(first, second), "ids are never reused after a restart"
    # Lookup finds the version a schema is registered as.
    found = after.lookup_schema(a, Schema(json.dumps(evolved), "AVRO"))
    assert (found.schema_id, found.version) == (second, 2)


# --- compatibility levels, both ways, all three formats --------------------------------------


def avro_record(*fields: dict) -> str:
    return json.dumps({"type": "record", "name": "User", "fields": [{"name": "id", "type": "int"}, *fields]})


A_NO_DEFAULT = {"name": "email", "type": "string"}
A_DEFAULT = {"name": "email", "type": "string", "default": ""}
B_DEFAULT = {"name": "age", "type": "int", "default": 0}


def json_object(properties: dict, required: list[str] | None = None, closed: bool = True) -> str:
    schema: dict[str, Any] = {"type": "object", "properties": {"id": {"type": "integer"}, **properties}}
    if required:
        schema["required"] = required
    if closed:
        schema["additionalProperties"] = False
    return json.dumps(schema)


def proto(fields: str) -> str:
    return f'syntax = "proto3";\npackage users;\nmessage User {{\n  int64 id = 1;\n{fields}\n}}\n'


# (format, level, earlier versions, candidate, allowed, a word the refusal must contain)
COMPATIBILITY_CASES = [
    # Avro: the classic reader/writer rules.
    ("AVRO", "BACKWARD", [avro_record()], avro_record(A_DEFAULT), True, None),
    ("AVRO", "BACKWARD", [avro_record()], avro_record(A_NO_DEFAULT), False, "email"),
    ("AVRO", "FORWARD", [avro_record()], avro_record(A_NO_DEFAULT), True, None),
    ("AVRO", "FORWARD", [avro_record(A_NO_DEFAULT)], avro_record(), False, "email"),
    ("AVRO", "FULL", [avro_record()], avro_record(A_DEFAULT), True, None),
    ("AVRO", "FULL", [avro_record()], avro_record(A_NO_DEFAULT), False, "email"),
    ("AVRO", "NONE", [avro_record()], json.dumps({"type": "enum", "name": "E", "symbols": ["A"]}), True, None),
    # Transitive levels: the candidate suits the latest version but not the first.
    ("AVRO", "BACKWARD", [avro_record(), avro_record(A_DEFAULT)], avro_record(A_NO_DEFAULT), True, None),
    ("AVRO", "BACKWARD_TRANSITIVE", [avro_record(), avro_record(A_DEFAULT)], avro_record(A_NO_DEFAULT), False, "email"),
    ("AVRO", "FORWARD", [avro_record(A_NO_DEFAULT), avro_record(A_DEFAULT)], avro_record(), True, None),
    ("AVRO", "FORWARD_TRANSITIVE", [avro_record(A_NO_DEFAULT), avro_record(A_DEFAULT)], avro_record(), False, "email"),
    ("AVRO", "FULL", [avro_record(A_NO_DEFAULT), avro_record(A_DEFAULT)], avro_record(), True, None),
    ("AVRO", "FULL_TRANSITIVE", [avro_record(A_NO_DEFAULT), avro_record(A_DEFAULT)], avro_record(), False, "email"),
    ("AVRO", "FULL_TRANSITIVE", [avro_record(), avro_record(A_DEFAULT)], avro_record(A_DEFAULT, B_DEFAULT), True, None),
    ("AVRO", "BACKWARD_TRANSITIVE", [avro_record(), avro_record(A_DEFAULT)], avro_record(A_DEFAULT, B_DEFAULT), True, None),
    ("AVRO", "FORWARD_TRANSITIVE", [avro_record(), avro_record(A_DEFAULT)], avro_record(A_DEFAULT, {"name": "age", "type": "int"}), True, None),
    # JSON Schema, Confluent's rules: a closed content model may gain an optional property
    # (new readers accept old data); a new required property breaks old data.
    ("JSON", "BACKWARD", [json_object({})], json_object({"email": {"type": "string"}}), True, None),
    ("JSON", "BACKWARD", [json_object({})], json_object({"email": {"type": "string"}}, ["email"]), False, "email"),
    ("JSON", "FORWARD", [json_object({"email": {"type": "string"}})], json_object({"email": {"type": "string"}}, ["email"]), True, None),
    ("JSON", "FORWARD", [json_object({})], json_object({"email": {"type": "string"}}), False, "email"),
    ("JSON", "FULL", [json_object({"n": {"type": "integer"}})], json_object({"n": {"type": "integer", "description": "count"}}), True, None),
    ("JSON", "FULL", [json_object({"n": {"type": "integer"}})], json_object({"n": {"type": "string"}}), False, "n"),
    ("JSON", "NONE", [json_object({})], json.dumps({"type": "string"}), True, None),
    ("JSON", "BACKWARD_TRANSITIVE", [json_object({"n": {"type": "integer"}}), json_object({"n": {"type": ["integer", "string"]}})], json_object({"n": {"type": "string"}}), False, "n"),
    ("JSON", "BACKWARD", [json_object({"n": {"type": "integer"}}), json_object({"n": {"type": ["integer", "string"]}})], json_object({"n": {"type": ["integer", "string", "null"]}}), True, None),
    ("JSON", "FORWARD", [json_object({"n": {"type": "integer"}}), json_object({"n": {"type": ["integer", "string"]}})], json_object({"n": {"type": "string"}}), True, None),
    ("JSON", "FORWARD_TRANSITIVE", [json_object({"n": {"type": "integer"}}), json_object({"n": {"type": ["integer", "string"]}})], json_object({"n": {"type": "string"}}), False, "n"),
    ("JSON", "FULL", [json_object({"n": {"type": "integer"}}), json_object({"n": {"type": "string"}})], json_object({"n": {"type": "string", "description": "d"}}), True, None),
    ("JSON", "FULL_TRANSITIVE", [json_object({"n": {"type": "integer"}}), json_object({"n": {"type": "string"}})], json_object({"n": {"type": "string", "description": "d"}}), False, "n"),
    ("JSON", "BACKWARD_TRANSITIVE", [json_object({"n": {"type": "integer"}}), json_object({"n": {"type": ["integer", "string"]}})], json_object({"n": {"type": ["integer", "string", "null"]}}), True, None),
    ("JSON", "FORWARD_TRANSITIVE", [json_object({"n": {"type": ["integer", "string"]}}), json_object({"n": {"type": ["integer", "string"], "description": "d"}})], json_object({"n": {"type": "integer"}}), True, None),
    ("JSON", "FULL_TRANSITIVE", [json_object({"n": {"type": "integer"}}), json_object({"n": {"type": "integer", "description": "d"}})], json_object({"n": {"type": "integer", "description": "e"}}), True, None),
    # Protobuf: fields are matched by number; wire-compatible type changes are allowed.
    ("PROTOBUF", "BACKWARD", [proto("  string name = 2;")], proto("  string name = 2;\n  int32 age = 3;"), True, None),
    ("PROTOBUF", "BACKWARD", [proto("  string name = 2;")], proto("  int32 name = 2;"), False, "name"),
    ("PROTOBUF", "FORWARD", [proto("  int32 count = 2;")], proto("  int64 count = 2;"), True, None),
    ("PROTOBUF", "FORWARD", [proto("  string name = 2;")], proto("  double name = 2;"), False, "name"),
    ("PROTOBUF", "FULL", [proto("  string name = 2;")], proto("  bytes name = 2;"), True, None),
    ("PROTOBUF", "FULL", [proto("  string name = 2;")], proto("  bool name = 2;"), False, "name"),
    ("PROTOBUF", "NONE", [proto("  string name = 2;")], proto("  bool name = 2;"), True, None),
    ("PROTOBUF", "BACKWARD", [proto("  string name = 2;"), proto("")], proto("  int32 size = 2;"), True, None),
    ("PROTOBUF", "BACKWARD_TRANSITIVE", [proto("  string name = 2;"), proto("")], proto("  int32 size = 2;"), False, "2"),
    ("PROTOBUF", "FORWARD_TRANSITIVE", [proto("  string name = 2;"), proto("")], proto("  int32 size = 2;"), False, "2"),
    ("PROTOBUF", "FULL_TRANSITIVE", [proto("  string name = 2;"), proto("")], proto("  int32 size = 2;"), False, "2"),
    ("PROTOBUF", "BACKWARD_TRANSITIVE", [proto("  string name = 2;"), proto("")], proto("  string name = 2;\n  int32 age = 3;"), True, None),
    ("PROTOBUF", "FORWARD_TRANSITIVE", [proto("  string name = 2;"), proto("")], proto("  string name = 2;\n  int32 age = 3;"), True, None),
    ("PROTOBUF", "FULL_TRANSITIVE", [proto("  string name = 2;"), proto("")], proto("  string name = 2;\n  int32 age = 3;"), True, None),
]


@pytest.mark.parametrize(
    "schema_type,level,earlier,candidate,allowed,word",
    COMPATIBILITY_CASES,
    ids=[f"{c[0]}-{c[1]}-{i}-{'allowed' if c[4] else 'refused'}" for i, c in enumerate(COMPATIBILITY_CASES)],
)
def test_compatibility_levels(spate_shared, schema_type, level, earlier, candidate, allowed, word):
    sr = registry(spate_shared)
    subject = unique("compat")
    # The earlier versions go in under NONE, then the level under test is set: levels can
    # change over a subject's life, and transitive cases need histories the level itself
    # would not have allowed.
    sr.set_compatibility(subject, "NONE")
    for text in earlier:
        sr.register_schema(subject, Schema(text, schema_type))
    assert len(sr.get_versions(subject)) == len(earlier)
    sr.set_compatibility(subject, level)
    # The test API and registration agree.
    verdict = sr.test_compatibility_all_versions(subject, Schema(candidate, schema_type))
    assert verdict is allowed
    if allowed:
        sr.register_schema(subject, Schema(candidate, schema_type))
        assert len(sr.get_versions(subject)) == len(earlier) + 1
        return
    before = schemas_end_offset(spate_shared)
    with pytest.raises(SchemaRegistryError) as refused:
        sr.register_schema(subject, Schema(candidate, schema_type))
    assert refused.value.http_status_code == 409
    assert refused.value.error_code == 409
    assert word in refused.value.error_message, refused.value.error_message
    assert len(sr.get_versions(subject)) == len(earlier)
    assert schemas_end_offset(spate_shared) == before, "a refused schema writes nothing"


@pytest.fixture(scope="module")
def spate_shared(tmp_path_factory):
    """One broker for the many small compatibility cases."""
    from conftest import SpateBroker, spate_binary

    root = tmp_path_factory.mktemp("registry")
    broker = SpateBroker(spate_binary(), root / "data", root / "broker.log", []).start()
    yield broker
    broker.ensure_dead()


def test_verbose_compatibility_says_which_field_broke_which_rule(spate):
    subject = unique("verbose")
    status, _ = rest(spate, "POST", f"/subjects/{subject}/versions", {"schema": avro_record()})
    assert status == 200
    status, body = rest(
        spate,
        "POST",
        f"/compatibility/subjects/{subject}/versions/latest?verbose=true",
        {"schema": avro_record(A_NO_DEFAULT)},
    )
    assert status == 200
    assert body["is_compatible"] is False
    text = " ".join(body["messages"])
    assert "READER_FIELD_MISSING_DEFAULT_VALUE" in text and "email" in text, text


# --- references -----------------------------------------------------------------------------


def test_avro_references_resolve_and_protect_what_they_reference(spate):
    sr = registry(spate)
    topic = unique("ref-topic")
    customer_subject, order_subject = unique("customer"), f"{topic}-value"
    customer = json.dumps(
        {"type": "record", "name": "Customer", "namespace": "shop", "fields": [{"name": "name", "type": "string"}]}
    )
    sr.register_schema(customer_subject, Schema(customer, "AVRO"))
    order = json.dumps(
        {"type": "record", "name": "Order", "namespace": "shop", "fields": [{"name": "customer", "type": "shop.Customer"}]}
    )
    refs = [SchemaReference("shop.Customer", customer_subject, 1)]
    order_id = sr.register_schema(order_subject, Schema(order, "AVRO", refs))
    fetched = sr.get_schema(order_id)
    assert [(r.name, r.subject, r.version) for r in fetched.references] == [("shop.Customer", customer_subject, 1)]
    assert sr.get_referenced_by(customer_subject, 1) == [order_id]

    # Serialize (looking the schema up in the topic's subject) and deserialize with the reference.
    ctx = SerializationContext(topic, MessageField.VALUE)
    serializer = AvroSerializer(sr, Schema(order, "AVRO", refs), conf={"auto.register.schemas": False, "use.latest.version": False})
    value = serializer({"customer": {"name": "Ada"}}, ctx)
    assert struct.unpack(">bI", value[:5]) == (0, order_id)
    assert AvroDeserializer(sr)(value, ctx) == {"customer": {"name": "Ada"}}

    with pytest.raises(SchemaRegistryError) as referenced:
        sr.delete_version(customer_subject, 1)
    assert referenced.value.error_code == 42206

    # A reference to something that does not exist is an invalid schema, and writes nothing.
    before = schemas_end_offset(spate)
    with pytest.raises(SchemaRegistryError) as missing:
        sr.register_schema(unique("o"), Schema(order, "AVRO", [SchemaReference("shop.Customer", "nope", 1)]))
    assert missing.value.error_code == 42201
    assert schemas_end_offset(spate) == before


# --- deletes, configs, modes, errors --------------------------------------------------------


def test_soft_and_permanent_deletes_follow_confluent(spate):
    sr = registry(spate)
    subject = unique("del")
    sr.set_compatibility(subject, "NONE")
    sr.register_schema(subject, Schema('"string"', "AVRO"))
    sr.register_schema(subject, Schema('"int"', "AVRO"))

    with pytest.raises(SchemaRegistryError) as not_soft:
        sr.delete_version(subject, 1, permanent=True)
    assert not_soft.value.error_code == 40407
    assert sr.delete_version(subject, 1) == 1
    assert sr.get_versions(subject) == [2]
    status, body = rest(spate, "GET", f"/subjects/{subject}/versions?deleted=true")
    assert (status, body) == (200, [1, 2])
    status, body = rest(spate, "GET", f"/subjects/{subject}/versions/1")
    assert (status, body["error_code"]) == (404, 40402)
    status, body = rest(spate, "GET", f"/subjects/{subject}/versions/1?deleted=true")
    assert (status, body["version"]) == (200, 1)
    with pytest.raises(SchemaRegistryError) as again:
        sr.delete_version(subject, 1)
    assert again.value.error_code == 40406
    assert sr.delete_version(subject, 1, permanent=True) == 1

    assert sr.delete_subject(subject) == [2]
    assert subject not in sr.get_subjects()
    status, body = rest(spate, "GET", f"/subjects?deleted=true")
    assert subject in body
    with pytest.raises(SchemaRegistryError) as soft_again:
        sr.delete_subject(subject)
    assert soft_again.value.error_code == 40404
    assert sr.delete_subject(subject, permanent=True) == [2]
    status, body = rest(spate, "GET", f"/subjects/{subject}/versions?deleted=true")
    assert (status, body["error_code"]) == (404, 40401)

    spate.restart()
    status, body = rest(spate, "GET", "/subjects?deleted=true")
    assert subject not in body, "the permanent delete survives a restart"


def test_configs_and_modes(spate):
    sr = registry(spate)
    subject = unique("cfg")
    assert sr.get_compatibility() == "BACKWARD"
    status, body = rest(spate, "GET", f"/config/{subject}")
    assert (status, body["error_code"]) == (404, 40408)
    assert sr.set_compatibility(subject, "FULL") == {"compatibility": "FULL"}
    assert sr.get_compatibility(subject) == "FULL"
    status, body = rest(spate, "PUT", f"/config/{subject}", {"compatibility": "SIDEWAYS"})
    assert (status, body["error_code"]) == (422, 42203)
    status, body = rest(spate, "DELETE", f"/config/{subject}")
    assert (status, body) == (200, {"compatibilityLevel": "FULL"})
    status, body = rest(spate, "GET", f"/config/{subject}?defaultToGlobal=true")
    assert (status, body) == (200, {"compatibilityLevel": "BACKWARD"})

    assert sr.get_global_mode() == "READWRITE"
    assert sr.update_mode(subject, "READONLY") == "READONLY"
    with pytest.raises(SchemaRegistryError) as readonly:
        sr.register_schema(subject, Schema('"string"', "AVRO"))
    assert readonly.value.error_code == 42205
    assert sr.delete_mode(subject) == "READONLY"
    sr.register_schema(subject, Schema('"string"', "AVRO"))
    status, body = rest(spate, "PUT", f"/mode/{subject}", {"mode": "SOMETIMES"})
    assert (status, body["error_code"]) == (422, 42204)

    spate.restart()
    status, body = rest(spate, "GET", f"/config/{subject}")
    assert (status, body["error_code"]) == (404, 40408), "the config delete survived the restart"


def test_bad_requests_get_confluent_error_bodies_and_write_nothing(spate):
    subject = unique("bad")
    before = schemas_end_offset(spate)
    cases = [
        # (request, expected status, expected error_code)
        (("POST", f"/subjects/{subject}/versions", {"schema": "{not json"}), 422, 42201),
        (("POST", f"/subjects/{subject}/versions", {"schema": '{"type": "record", "name": "R"}'}), 422, 42201),
        (("POST", f"/subjects/{subject}/versions", {"schema": '{"type":"nope"}'}), 422, 42201),
        (("POST", f"/subjects/{subject}/versions", {"schema": "message {", "schemaType": "PROTOBUF"}), 422, 42201),
        (("POST", f"/subjects/{subject}/versions", {"schema": '{"type": 12}', "schemaType": "JSON"}), 422, 42201),
        (("POST", f"/subjects/{subject}/versions", {"schema": '"int"', "schemaType": "XML"}), 422, 422),
        (("POST", f"/subjects/{subject}/versions", {"schema": 12}), 422, 422),
        (("POST", f"/subjects/{subject}/versions", {"schemaa": '"int"'}), 422, 422),
        (("POST", f"/subjects/{subject}/versions", {"schema": '"int"', "references": "x"}), 422, 422),
        (("POST", f"/subjects/{subject}/versions", [1, 2]), 422, 422),
        # A schema cannot reference itself or anything not yet registered, so no cycle forms.
        (("POST", f"/subjects/{subject}/versions", {"schema": '"int"', "references": [{"name": "x", "subject": subject, "version": 1}]}), 422, 42201),
        (("GET", f"/subjects/{subject}/versions", None), 404, 40401),
        (("GET", f"/subjects/{subject}/versions/abc", None), 422, 42202),
        (("GET", "/schemas/ids/987654", None), 404, 40403),
        (("POST", f"/subjects/{subject}", {"schema": '"int"'}), 404, 40401),
    ]
    for (method, path, body), status, code in cases:
        got_status, got = rest(spate, method, path, body)
        assert (got_status, got.get("error_code") if isinstance(got, dict) else got) == (status, code), (
            method,
            path,
            body,
            got,
        )
        assert isinstance(got["message"], str) and got["message"]

    status, body = rest(spate, "POST", f"/subjects/{subject}/versions", data=b"{\"schema\": ")
    assert (status, body["error_code"]) == (400, 400)
    huge = json.dumps({"schema": json.dumps({"type": "enum", "name": "E", "symbols": [f"S{i}" for i in range(2_000_000)]})})
    status, body = rest(spate, "POST", f"/subjects/{subject}/versions", data=huge.encode())
    assert (status, body["error_code"]) == (413, 413)

    assert schemas_end_offset(spate) == before, "nothing half-written to _schemas"
    assert rest(spate, "GET", "/schemas/types") == (200, ["JSON", "PROTOBUF", "AVRO"])
    # The broker kept serving Kafka clients throughout.
    assert round_trip(spate, unique("still-serving"), [b"ok"]) == [b"ok"]


# --- validation on produce ------------------------------------------------------------------


def produce_outcomes(spate, topic: str, values: list[bytes], key: bytes | None = None) -> list[int]:
    """Produces each value in its own request (so one refusal does not take others with it);
    returns each one's error code (0 when acknowledged)."""
    producer = Producer(
        {"bootstrap.servers": spate.bootstrap, "acks": "all", "linger.ms": 0, "retries": 0}
    )
    codes: list[int] = []
    for value in values:
        outcome: list[int] = []
        producer.produce(
            topic, key=key, value=value, on_delivery=lambda e, _m: outcome.append(e.code() if e else 0)
        )
        assert producer.flush(30) == 0
        codes.extend(outcome)
    return codes


def test_validation_on_produce_refuses_records_without_a_registered_schema_id(spate):
    from confluent_kafka import KafkaError

    topic = unique("validated")
    create_topic(spate.bootstrap, topic, config={"confluent.value.schema.validation": "true"})
    sr = registry(spate)
    ctx = SerializationContext(topic, MessageField.VALUE)
    good = AvroSerializer(sr, ORDER_AVRO)({"id": 1, "item": "tea", "quantity": 2, "note": None}, ctx)
    schema_id = struct.unpack(">bI", good[:5])[1]
    other_id = sr.register_schema(unique("elsewhere"), Schema('"string"', "AVRO"))

    outcomes = produce_outcomes(
        spate,
        topic,
        [
            good,
            b"plain text, no wire format",
            struct.pack(">bI", 0, 987654) + good[5:],  # an id nobody registered
            struct.pack(">bI", 0, other_id) + good[5:],  # registered, but not for this topic
            struct.pack(">bI", 0, schema_id) + b"\xff\xff",  # right id; payload not checked
        ],
    )
    invalid = KafkaError.INVALID_RECORD
    assert outcomes == [0, invalid, invalid, invalid, 0]
    assert watermarks(spate.bootstrap, topic)[1] == 2, "refused records never reach the log"
    log = spate.log_text()
    assert "is not registered" in log and "wire format" in log

    # Keys are not checked unless asked; the topic keeps serving good records.
    assert produce_outcomes(spate, topic, [good], key=b"any key") == [0]


def test_validation_can_also_decode_payloads(spate):
    from confluent_kafka import KafkaError

    topic = unique("decoded")
    create_topic(
        spate.bootstrap,
        topic,
        config={
            "confluent.value.schema.validation": "true",
            "spate.schema.validation.decode": "true",
        },
    )
    sr = registry(spate)
    ctx = SerializationContext(topic, MessageField.VALUE)
    good = AvroSerializer(sr, ORDER_AVRO)({"id": 1, "item": "tea", "quantity": 2, "note": None}, ctx)
    truncated = good[:-3]
    outcomes = produce_outcomes(spate, topic, [good, truncated, good + b"\x00"])
    assert outcomes == [0, KafkaError.INVALID_RECORD, KafkaError.INVALID_RECORD]
    assert "does not decode" in spate.log_text()


def test_key_validation_and_record_name_strategy(spate):
    from confluent_kafka import KafkaError

    topic = unique("keyed")
    create_topic(
        spate.bootstrap,
        topic,
        config={
            "confluent.key.schema.validation": "true",
            "confluent.value.schema.validation": "true",
            "confluent.value.subject.name.strategy": "io.confluent.kafka.serializers.subject.RecordNameStrategy",
        },
    )
    sr = registry(spate)
    key_id = sr.register_schema(f"{topic}-key", Schema('"string"', "AVRO"))
    value_id = sr.register_schema("shop.Order", Schema(ORDER_AVRO, "AVRO"))
    key = struct.pack(">bI", 0, key_id) + b"\x06abc"
    value = struct.pack(">bI", 0, value_id) + b"\x02"
    assert produce_outcomes(spate, topic, [value], key=key) == [0]
    assert produce_outcomes(spate, topic, [value], key=b"raw key") == [KafkaError.INVALID_RECORD]
    # The value's schema must be registered under its record name, not the topic's subject.
    topic_subject_id = sr.register_schema(f"{topic}-value", Schema('"int"', "AVRO"))
    wrong = struct.pack(">bI", 0, topic_subject_id) + b"\x02"
    assert produce_outcomes(spate, topic, [wrong], key=key) == [KafkaError.INVALID_RECORD]


# --- parity with Confluent Schema Registry --------------------------------------------------
#
# Each test pins one answer third-party suites (a client library's, a schema registry's)
# found different from Confluent's: the exact status, error_code and message.


def test_error_messages_are_confluents(spate):
    sr = registry(spate)
    subject = unique("msgs")
    sr.register_schema(subject, Schema('"string"', "AVRO"))
    cases = [
        (("GET", f"/subjects/{subject}-none/versions"), 404, 40401, f"Subject '{subject}-none' not found."),
        (("GET", f"/subjects/{subject}/versions/3"), 404, 40402, "Version 3 not found."),
        (("DELETE", f"/subjects/{subject}/versions/3"), 404, 40402, "Version 3 not found."),
        (("GET", "/schemas/ids/987654"), 404, 40403, "Schema 987654 not found"),
        (("GET", "/schemas/ids/987654/schema"), 404, 40403, "Schema 987654 not found"),
        # Confluent names no id for these two.
        (("GET", "/schemas/ids/987654/subjects"), 404, 40403, "Schema not found"),
        (("GET", "/schemas/ids/987654/versions"), 404, 40403, "Schema not found"),
        (
            ("GET", f"/subjects/{subject}/versions/abc"),
            422,
            42202,
            "The specified version 'abc' is not a valid version id. "
            'Allowed values are between [1, 2^31-1] and the string "latest"',
        ),
        (
            ("GET", f"/config/{subject}"),
            404,
            40408,
            f"Subject '{subject}' does not have subject-level compatibility configured",
        ),
    ]
    for (method, path), status, code, message in cases:
        assert rest(spate, method, path) == (status, {"error_code": code, "message": message}), path
    # A lookup of a schema the subject does not have: 40403 without an id (Spate once said
    # "Schema not found not found").
    status, body = rest(spate, "POST", f"/subjects/{subject}", {"schema": '"int"'})
    assert (status, body) == (404, {"error_code": 40403, "message": "Schema not found"})
    with pytest.raises(SchemaRegistryError) as missing:
        sr.lookup_schema(subject, Schema('"int"', "AVRO"))
    assert (missing.value.http_status_code, missing.value.error_code) == (404, 40403)
    assert missing.value.error_message == "Schema not found"


def test_a_schema_id_that_is_not_a_number_is_a_plain_404(spate):
    # Confluent's `@PathParam("id") Integer id` does not match, and Jersey answers 404.
    plain = (404, {"error_code": 404, "message": "HTTP 404 Not Found"})
    for path in [
        "/schemas/ids/abc",
        "/schemas/ids/abc/schema",
        "/schemas/ids/abc/subjects",
        "/schemas/ids/abc/versions",
        "/schemas/ids/1.5",
        "/schemas/ids/99999999999",  # beyond a 32-bit integer
    ]:
        assert rest(spate, "GET", path) == plain, path
    assert rest(spate, "GET", "/schemas/ids/-3")[1]["error_code"] == 40403


def test_compatibility_against_missing_versions_answers_as_confluent(spate):
    sr = registry(spate)
    missing = unique("nothing-here")
    schema = {"schema": avro_record()}
    # `latest` of a subject without versions: nothing to be incompatible with.
    assert rest(spate, "POST", f"/compatibility/subjects/{missing}/versions/latest", schema) == (
        200,
        {"is_compatible": True},
    )
    assert rest(spate, "POST", f"/compatibility/subjects/{missing}/versions/-1", schema) == (
        200,
        {"is_compatible": True},
    )
    assert sr.test_compatibility(missing, Schema(avro_record(), "AVRO")) is True
    assert rest(spate, "POST", f"/compatibility/subjects/{missing}/versions", schema) == (
        200,
        {"is_compatible": True},
    )
    # A numbered version is looked up first: 40402 even when the subject does not exist.
    assert rest(spate, "POST", f"/compatibility/subjects/{missing}/versions/1", schema) == (
        404,
        {"error_code": 40402, "message": "Version 1 not found."},
    )
    subject = unique("compat-missing")
    sr.register_schema(subject, Schema(avro_record(), "AVRO"))
    assert rest(spate, "POST", f"/compatibility/subjects/{subject}/versions/100", schema) == (
        404,
        {"error_code": 40402, "message": "Version 100 not found."},
    )
    assert rest(spate, "POST", f"/compatibility/subjects/{subject}/versions/abc", schema)[1]["error_code"] == 42202
    # Soft-deleted versions are not checked against: `latest` is compatible again, and the
    # deleted version number is not found.
    sr.delete_subject(subject)
    assert rest(spate, "POST", f"/compatibility/subjects/{subject}/versions/latest", {"schema": '"int"'}) == (
        200,
        {"is_compatible": True},
    )
    assert rest(spate, "POST", f"/compatibility/subjects/{subject}/versions/1", schema)[1]["error_code"] == 40402
    # An invalid schema with verbose=true is an incompatible answer with the reason.
    status, body = rest(
        spate, "POST", f"/compatibility/subjects/{missing}/versions/latest?verbose=true", {"schema": "{nope"}
    )
    assert status == 200 and body["is_compatible"] is False
    assert len(body["messages"]) == 1 and body["messages"][0].startswith("Invalid schema"), body
    assert rest(spate, "POST", f"/compatibility/subjects/{missing}/versions/latest", {"schema": "{nope"})[1][
        "error_code"
    ] == 42201


def test_a_reference_to_version_minus_one_is_the_latest_version(spate):
    sr = registry(spate)
    customer_subject = unique("customer")
    customer = {"type": "record", "name": "Customer", "namespace": "shop", "fields": [{"name": "name", "type": "string"}]}
    sr.register_schema(customer_subject, Schema(json.dumps(customer), "AVRO"))
    customer["fields"].append({"name": "email", "type": ["null", "string"], "default": None})
    sr.register_schema(customer_subject, Schema(json.dumps(customer), "AVRO"))
    order = json.dumps(
        {"type": "record", "name": "Order", "namespace": "shop", "fields": [{"name": "customer", "type": "shop.Customer"}]}
    )
    subject = unique("order")
    latest = [{"name": "shop.Customer", "subject": customer_subject, "version": -1}]
    status, body = rest(spate, "POST", f"/subjects/{subject}/versions", {"schema": order, "references": latest})
    assert status == 200, body
    # Stored, and served, with the version it resolved to, as Confluent does.
    stored = sr.get_schema(body["id"])
    assert [(r.name, r.subject, r.version) for r in stored.references] == [("shop.Customer", customer_subject, 2)]
    assert sr.get_referenced_by(customer_subject, 2) == [body["id"]]
    # Lookups and compatibility checks resolve -1 the same way.
    status, found = rest(spate, "POST", f"/subjects/{subject}", {"schema": order, "references": latest})
    assert (status, found["id"], found["version"]) == (200, body["id"], 1)
    status, verdict = rest(
        spate, "POST", f"/compatibility/subjects/{subject}/versions/latest", {"schema": order, "references": latest}
    )
    assert (status, verdict) == (200, {"is_compatible": True})
    # Latest of a subject that has no versions: the reference cannot resolve.
    before = schemas_end_offset(spate)
    nowhere = [{"name": "shop.Customer", "subject": unique("nobody"), "version": -1}]
    status, body = rest(spate, "POST", f"/subjects/{unique('o')}/versions", {"schema": order, "references": nowhere})
    assert (status, body["error_code"]) == (422, 42201)
    assert schemas_end_offset(spate) == before


def test_avro_primitives_written_as_objects_are_the_plain_primitive(spate):
    # Avro's parser ignores reserved attributes (name, doc, ...) on a primitive, so Confluent
    # canonicalises {"type": "int", "name": ...} to "int": one schema, one id.
    sr = registry(spate)
    a, b = unique("prim-a"), unique("prim-b")
    spelled_out = sr.register_schema(a, Schema('{"type": "int", "name": "count", "doc": "d"}', "AVRO"))
    bare = sr.register_schema(b, Schema('"int"', "AVRO"))
    assert spelled_out == bare
    assert sr.get_schema(bare).schema_str == '"int"'
    found = sr.lookup_schema(a, Schema('"int"', "AVRO"))
    assert (found.schema_id, found.version) == (bare, 1)
    # Properties Avro keeps (logicalType) keep the schema apart.
    timestamp = sr.register_schema(unique("prim-c"), Schema('{"type": "long", "logicalType": "timestamp-millis", "name": "t"}', "AVRO"))
    assert timestamp != bare
    assert json.loads(sr.get_schema(timestamp).schema_str) == {"type": "long", "logicalType": "timestamp-millis"}


def test_json_schema_list_becoming_a_tuple_is_incompatible(spate):
    sr = registry(spate)
    subject = unique("json-items")
    sr.register_schema(subject, Schema(json.dumps({"type": "array", "items": {"type": "string"}}), "JSON"))
    tuple_schema = json.dumps({"type": "array", "items": [{"type": "string"}]})
    status, body = rest(
        spate,
        "POST",
        f"/compatibility/subjects/{subject}/versions/latest?verbose=true",
        {"schema": tuple_schema, "schemaType": "JSON"},
    )
    assert status == 200 and body["is_compatible"] is False
    assert any("ITEM_ADDED_TO_OPEN_CONTENT_MODEL" in m and "#/items/0" in m for m in body["messages"]), body
    with pytest.raises(SchemaRegistryError) as refused:
        sr.register_schema(subject, Schema(tuple_schema, "JSON"))
    assert (refused.value.http_status_code, refused.value.error_code) == (409, 409)


def test_protobuf_google_type_imports_need_no_references(spate):
    """confluent-kafka's ProtobufSerializer skips google/type/* imports (they are built into
    Confluent's registry), so the registry must resolve them itself."""
    from google.type import date_pb2, money_pb2  # noqa: F401  (puts them in the default pool)

    topic = unique("events-proto")
    create_topic(spate.bootstrap, topic)
    F = descriptor_pb2.FieldDescriptorProto
    file = descriptor_pb2.FileDescriptorProto(
        name=f"shop/{topic}.proto",
        package=topic.replace("-", "_"),
        syntax="proto3",
        dependency=["google/type/date.proto", "google/type/money.proto"],
    )
    event = file.message_type.add(name="Payment")
    event.field.add(name="day", number=1, type=F.TYPE_MESSAGE, type_name=".google.type.Date", label=F.LABEL_OPTIONAL)
    event.field.add(name="amount", number=2, type=F.TYPE_MESSAGE, type_name=".google.type.Money", label=F.LABEL_OPTIONAL)
    pool = descriptor_pool.Default()
    pool.Add(file)
    Payment = message_factory.GetMessageClass(pool.FindMessageTypeByName(f"{file.package}.Payment"))

    sr = registry(spate)
    serializer = ProtobufSerializer(Payment, sr, {"use.deprecated.format": False})
    deserializer = ProtobufDeserializer(Payment, {"use.deprecated.format": False})
    ctx = SerializationContext(topic, MessageField.VALUE)
    payments = [Payment(day={"year": 2026, "month": 11, "day": i + 1}, amount={"currency_code": "EUR", "units": i}) for i in range(5)]
    values = round_trip(spate, topic, [serializer(p, ctx) for p in payments])
    assert [deserializer(v, ctx) for v in values] == payments

    latest = sr.get_latest_version(f"{topic}-value")
    assert latest.schema.references == []
    assert 'import "google/type/date.proto";' in latest.schema.schema_str
    # As .proto text too, and Confluent's own confluent/meta.proto.
    text = (
        'syntax = "proto3";\npackage geo;\nimport "google/type/latlng.proto";\nimport "confluent/meta.proto";\n'
        'message Place {\n  google.type.LatLng at = 1 [(confluent.field_meta).doc = "where"];\n}\n'
    )
    assert sr.register_schema(unique("place"), Schema(text, "PROTOBUF")) > 0


def test_protobuf_custom_options_nobody_defines_are_ignored(spate):
    sr = registry(spate)
    subject = unique("proto-options")
    text = (
        'syntax = "proto3";\npackage shop;\noption (acme.owner) = "billing";\n'
        'message Order {\n  option (acme.table) = { name: "orders" };\n'
        '  string id = 1 [(acme.pii) = true];\n}\n'
    )
    schema_id = sr.register_schema(subject, Schema(text, "PROTOBUF"))
    found = sr.lookup_schema(subject, Schema(text, "PROTOBUF"))
    assert (found.schema_id, found.version) == (schema_id, 1)
    # An option that is not a custom one and does not exist is still refused.
    status, body = rest(
        spate,
        "POST",
        f"/subjects/{subject}/versions",
        {"schemaType": "PROTOBUF", "schema": 'syntax = "proto3";\noption no_such_option = true;\nmessage M { int32 a = 1; }\n'},
    )
    assert (status, body["error_code"]) == (422, 42201)


def test_media_types_are_negotiated_as_confluent_does(spate):
    subject = unique("media")
    base = url(spate)
    v1 = "application/vnd.schemaregistry.v1+json"

    def get(path: str, accept: str | None):
        headers = {} if accept is None else {"Accept": accept}
        return requests.get(base + path, headers=headers, timeout=30)

    # Responses: the registry's own type unless the client prefers another one it produces.
    assert get("/subjects", None).headers["Content-Type"] == v1
    assert get("/subjects", "application/json").headers["Content-Type"] == "application/json"
    assert get("/subjects", "application/vnd.schemaregistry+json").headers["Content-Type"] == "application/vnd.schemaregistry+json"
    confluent_clients = "application/vnd.schemaregistry.v1+json, application/vnd.schemaregistry+json, application/json"
    assert get("/subjects", confluent_clients).headers["Content-Type"] == v1
    # Error bodies are negotiated too.
    missing = get(f"/subjects/{subject}/versions", "application/json")
    assert (missing.status_code, missing.headers["Content-Type"], missing.json()["error_code"]) == (404, "application/json", 40401)
    # Nothing acceptable: 406. An unknown path is still 404 (paths match first).
    refused = get("/subjects", "text/html")
    assert (refused.status_code, refused.json()) == (406, {"error_code": 406, "message": "HTTP 406 Not Acceptable"})
    assert get("/no/such/path", "text/html").status_code == 404

    # Request bodies: Confluent's four types (no Content-Type counts as octet-stream), else 415.
    before = schemas_end_offset(spate)
    body = json.dumps({"schema": '"string"'}).encode()
    post = lambda content_type, accept=None: requests.post(  # noqa: E731
        f"{base}/subjects/{subject}/versions",
        data=body,
        headers={k: v for k, v in {"Content-Type": content_type, "Accept": accept}.items() if v},
        timeout=30,
    )
    unsupported = post("text/plain", "application/json")
    assert (unsupported.status_code, unsupported.json()) == (
        415,
        {"error_code": 415, "message": "HTTP 415 Unsupported Media Type"},
    )
    assert unsupported.headers["Content-Type"] == "application/json"
    assert post("application/x-www-form-urlencoded").status_code == 415
    assert schemas_end_offset(spate) == before, "a refused body writes nothing"
    for content_type in [v1, "application/vnd.schemaregistry+json", "application/json; charset=utf-8", "application/octet-stream", None]:
        answer = post(content_type)
        assert (answer.status_code, answer.json()) == (200, {"id": answer.json()["id"]}), content_type
    # GET and DELETE read no body, so their Content-Type does not matter.
    assert requests.get(f"{base}/subjects/{subject}/versions", headers={"Content-Type": "text/plain"}, timeout=30).json() == [1]
