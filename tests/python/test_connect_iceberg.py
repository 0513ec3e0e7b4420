"""Topics as Iceberg tables end to end: Apache Iceberg's Kafka Connect sink config, run by a
`spate connect worker`, writing Parquet data files to moto's S3 server and committing through
Iceberg's JDBC catalog in a private PostgreSQL; pyiceberg (its SqlCatalog, as a user would)
reads the table back."""

from __future__ import annotations

import json

from confluent_kafka import Producer
from pyiceberg.catalog.sql import SqlCatalog

from helpers import wait_until
from s3 import CREDENTIALS, REGION
from test_connect import broker, worker  # noqa: F401  (the fixtures)
from test_connect_s3 import s3  # noqa: F401  (the fixture)

ICEBERG_SINK = "org.apache.iceberg.connect.IcebergSinkConnector"


def schema(with_channel: bool) -> dict:
    fields = [
        {"field": "id", "type": "int64", "optional": False},
        {"field": "customer", "type": "string", "optional": False},
        {"field": "amount", "type": "double", "optional": True},
        {"field": "at", "type": "int64", "optional": False,
         "name": "org.apache.kafka.connect.data.Timestamp", "version": 1},
        {"field": "tags", "type": "array", "optional": True,
         "items": {"type": "string", "optional": False}},
    ]
    if with_channel:
        fields.append({"field": "channel", "type": "string", "optional": True})
    return {"type": "struct", "name": "shop.Order", "optional": False, "fields": fields}


def order(i: int, with_channel: bool = False) -> dict:
    value = {"id": i, "customer": f"c{i % 3}", "amount": None if i % 5 == 0 else i * 1.5,
             "at": 1_714_557_600_000 + i * 1000, "tags": [f"t{i}"] if i % 2 else []}
    if with_channel:
        value["channel"] = "web" if i % 2 else "store"
    return value


def produce(brokers: str, topic: str, ids: range, with_channel: bool = False) -> None:
    producer = Producer({"bootstrap.servers": brokers})
    for i in ids:
        producer.produce(topic, key=str(i).encode(), value=json.dumps(
            {"schema": schema(with_channel), "payload": order(i, with_channel)}).encode())
    assert producer.flush(30) == 0


def sink_config(postgres, s3, **extra: str) -> dict:
    return {
        "connector.class": ICEBERG_SINK, "topics": "orders", "tasks.max": "1",
        "iceberg.tables": "shop.orders",
        "iceberg.tables.auto-create-enabled": "true",
        "iceberg.tables.evolve-schema-enabled": "true",
        "iceberg.control.commit.interval-ms": "500",
        "iceberg.catalog": "lake",
        "iceberg.catalog.catalog-impl": "org.apache.iceberg.jdbc.JdbcCatalog",
        "iceberg.catalog.uri": f"jdbc:postgresql://{postgres.host}:{postgres.port}/{postgres.dbname}",
        "iceberg.catalog.jdbc.user": postgres.user,
        "iceberg.catalog.jdbc.password": postgres.password,
        "iceberg.catalog.warehouse": "s3://lake/warehouse",
        "iceberg.catalog.io-impl": "org.apache.iceberg.aws.s3.S3FileIO",
        "iceberg.catalog.s3.endpoint": s3.url,
        "iceberg.catalog.s3.access-key-id": CREDENTIALS["aws_access_key_id"],
        "iceberg.catalog.s3.secret-access-key": CREDENTIALS["aws_secret_access_key"],
        "iceberg.catalog.s3.path-style-access": "true",
        "iceberg.catalog.client.region": REGION,
        "key.converter": "org.apache.kafka.connect.storage.StringConverter",
        "value.converter": "org.apache.kafka.connect.json.JsonConverter",
        "value.converter.schemas.enable": "true",
        **extra,
    }


def open_catalog(postgres, s3) -> SqlCatalog:
    return SqlCatalog("lake", **{
        "uri": f"postgresql+psycopg://{postgres.user}:{postgres.password}@{postgres.host}:"
               f"{postgres.port}/{postgres.dbname}",
        "warehouse": "s3://lake/warehouse",
        "s3.endpoint": s3.direct_url, "s3.region": REGION,
        "s3.access-key-id": CREDENTIALS["aws_access_key_id"],
        "s3.secret-access-key": CREDENTIALS["aws_secret_access_key"],
    })


def rows(postgres, s3) -> list[dict]:
    try:
        table = open_catalog(postgres, s3).load_table("shop.orders")
    except Exception:  # noqa: BLE001 - not created yet
        return []
    return sorted(table.scan().to_arrow().to_pylist(), key=lambda r: r["id"])


def committed(w, name: str) -> int | None:
    code, answer = w.call("GET", f"/connectors/{name}/offsets")
    if code != 200 or not answer["offsets"]:
        return None
    return answer["offsets"][0]["offset"]["kafka_offset"]


def test_iceberg_sink_makes_a_table_pyiceberg_reads_evolves_it_and_commits_exactly_once(broker, worker, s3, postgres):  # noqa: F811
    s3.create_bucket("lake")
    w = worker()
    produce(broker.kafka_addr, "orders", range(10))
    code, created = w.call("POST", "/connectors", {"name": "orders-lake",
                                                   "config": sink_config(postgres, s3)})
    assert code == 201, created

    # The table appears with the ten rows, typed from the Connect schema.
    wait_until(lambda: len(rows(postgres, s3)) == 10, timeout_s=90, what="ten rows in the table")
    table = open_catalog(postgres, s3).load_table("shop.orders")
    types = {f.name: str(f.field_type) for f in table.schema().fields}
    assert types == {"id": "long", "customer": "string", "amount": "double",
                     "at": "timestamptz", "tags": "list<string>"}, types
    got = rows(postgres, s3)
    assert [r["id"] for r in got] == list(range(10))
    assert got[3]["customer"] == "c0" and got[3]["amount"] == 4.5 and got[3]["tags"] == ["t3"]
    assert got[5]["amount"] is None and got[4]["tags"] == []
    assert int(got[2]["at"].timestamp() * 1000) == 1_714_557_602_000
    wait_until(lambda: committed(w, "orders-lake") == 10, what="the group follows the table")
    summary = table.current_snapshot().summary
    assert json.loads(summary["spate.connect.offsets.orders-lake"]) == {"orders": {"0": 10}}

    # A record schema with a new optional field: the table gains the column.
    produce(broker.kafka_addr, "orders", range(10, 15), with_channel=True)
    wait_until(lambda: len(rows(postgres, s3)) == 15, timeout_s=60, what="15 rows")
    got = rows(postgres, s3)
    assert got[0]["channel"] is None and got[11]["channel"] == "web"
    table = open_catalog(postgres, s3).load_table("shop.orders")
    assert len(table.metadata.schemas) == 2

    # kill -9 the worker with records taken and not committed; the next one goes on from the
    # offsets the table holds: every id once.
    produce(broker.kafka_addr, "orders", range(15, 40), with_channel=True)
    w.kill()
    w2 = worker()
    wait_until(lambda: len(rows(postgres, s3)) >= 40, timeout_s=90, what="40 rows")
    wait_until(lambda: committed(w2, "orders-lake") == 40, timeout_s=60, what="offset 40")
    assert [r["id"] for r in rows(postgres, s3)] == list(range(40)), "every record once"


def test_iceberg_sink_names_what_is_wrong(broker, worker, s3, postgres):  # noqa: F811
    w = worker()
    bad = sink_config(postgres, s3, **{
        "iceberg.catalog.catalog-impl": "", "iceberg.catalog.type": "rest",
        "iceberg.tables": "orders", "iceberg.catalog.warehouse": "hdfs://nn/warehouse"})
    code, error = w.call("POST", "/connectors", {"name": "bad", "config": bad})
    assert code == 400, error
    for field in ("catalog", "namespace.table", "warehouse"):
        assert field in error["message"], (field, error["message"])

    # Without auto-create, a missing table fails the task saying what to do.
    s3.create_bucket("lake")
    w.allowed.append("task failed: table shop.orders does not exist")
    produce(broker.kafka_addr, "orders", range(2))
    config = sink_config(postgres, s3, **{"iceberg.tables.auto-create-enabled": "false"})
    assert w.call("POST", "/connectors", {"name": "no-table", "config": config})[0] == 201

    def failed() -> str | None:
        status = w.call("GET", "/connectors/no-table/status")[1]
        task = status["tasks"][0] if status.get("tasks") else {}
        return task.get("trace") if task.get("state") == "FAILED" else None

    trace = wait_until(failed, timeout_s=60, what="the task failed")
    assert "auto-create-enabled" in trace, trace
