"""PostgreSQL change data capture end to end: Debian's PostgreSQL 15 (`wal_level=logical`, a
private cluster per test), the connector created over plain HTTP with the config Debezium's
tutorial uses, on the Connect worker `spate serve` runs in-process; the change events read back
with confluent-kafka and checked against Debezium's envelope, record by record."""

from __future__ import annotations

import json
import threading
from decimal import Decimal
import urllib.request

import psycopg
from confluent_kafka import Consumer

from helpers import wait_until
from test_connect import InProcess, connector_state

CONNECTOR = "io.debezium.connector.postgresql.PostgresConnector"


def cdc_config(pg, **extra: str) -> dict[str, str]:
    """Debezium's tutorial config, pointed at the test's cluster."""
    config = {
        "connector.class": CONNECTOR,
        "tasks.max": "1",
        "database.hostname": pg.host,
        "database.port": str(pg.port),
        "database.user": pg.user,
        "database.password": pg.password,
        "database.dbname": pg.dbname,
        "topic.prefix": "dbserver1",
        "plugin.name": "pgoutput",
        "table.include.list": "inventory.customers",
        # The user owns its tables but is no superuser: a publication of just those tables.
        "publication.autocreate.mode": "filtered",
        "retriable.restart.connector.wait.ms": "300",
    }
    config.update(extra)
    return config


class Events:
    """A consumer of change events (JsonConverter with schemas: `{"schema", "payload"}`)."""

    def __init__(self, brokers: str, topic: str, read_committed: bool = False):
        self.consumer = Consumer({
            "bootstrap.servers": brokers, "group.id": f"check-{topic}",
            "auto.offset.reset": "earliest", "enable.auto.commit": False,
            "isolation.level": "read_committed" if read_committed else "read_uncommitted",
        })
        self.consumer.subscribe([topic])
        # By offset: a consumer that rejoins its group (the broker restarted) reads again from
        # its last commit, and this one commits nothing; the topic's records are what counts.
        self.by_offset: dict[tuple[int, int], tuple[dict | None, dict | None]] = {}

    @property
    def events(self) -> list[tuple[dict | None, dict | None]]:
        return [self.by_offset[k] for k in sorted(self.by_offset)]

    def until(self, count: int, timeout_s: float = 60) -> list[tuple[dict | None, dict | None]]:
        def enough() -> bool:
            message = self.consumer.poll(0.2)
            if message is not None and message.error() is None:
                assert message.partition() == 0, "one partition: one order"
                key = json.loads(message.key()) if message.key() else None
                value = json.loads(message.value()) if message.value() else None
                self.by_offset[(message.partition(), message.offset())] = (key, value)
            return len(self.by_offset) >= count
        wait_until(enough, timeout_s=timeout_s, what=f"{count} change events")
        return self.events

    def close(self) -> None:
        self.consumer.close()


def create(w, name: str, config: dict) -> None:
    code, body = w.call("POST", "/connectors", {"name": name, "config": config})
    assert code == 201, body


def test_snapshot_then_inserts_updates_deletes_and_a_truncate_arrive_in_commit_order(spate, postgres):
    postgres.sql("""
        CREATE SCHEMA inventory;
        CREATE TABLE inventory.customers (
            id serial PRIMARY KEY, email text NOT NULL, note text,
            balance numeric(10, 2), joined timestamptz, tags text[]);
        CREATE TABLE inventory.ignored (id int PRIMARY KEY);
        INSERT INTO inventory.customers (email, balance, joined) VALUES
            ('sally@example.com', 12.50, '2024-01-15 10:20:30.25+02'),
            ('george@example.com', NULL, NULL);
        INSERT INTO inventory.ignored VALUES (1);
    """)
    w = InProcess(spate)
    create(w, "inventory-connector", cdc_config(postgres, **{"skipped.operations": "none"}))
    events = Events(spate.kafka_addr, "dbserver1.inventory.customers")
    snapshot = events.until(2)
    keys = [k["payload"] for k, _ in snapshot]
    assert keys == [{"id": 1}, {"id": 2}]
    first = snapshot[0][1]
    assert first["schema"]["name"] == "dbserver1.inventory.customers.Envelope"
    assert snapshot[0][0]["schema"]["name"] == "dbserver1.inventory.customers.Key"
    payload = first["payload"]
    assert payload["op"] == "r" and payload["before"] is None
    assert payload["after"]["email"] == "sally@example.com"
    assert payload["after"]["joined"] == "2024-01-15T08:20:30.25Z"
    # Decimal as Kafka Connect writes it in JSON: base64 of the unscaled integer (1250).
    assert payload["after"]["balance"] == "BOI="
    source = payload["source"]
    assert (source["connector"], source["name"], source["db"], source["schema"], source["table"]) == (
        "postgresql", "dbserver1", "inventory", "inventory", "customers")
    assert [e[1]["payload"]["source"]["snapshot"] for e in snapshot] == ["first", "last"]

    with postgres.connect() as conn:
        conn.execute("INSERT INTO inventory.customers (email, tags) VALUES ('anne@example.com', '{a,b}')")
        conn.commit()
        conn.execute("UPDATE inventory.customers SET note = 'vip' WHERE id = 1")
        conn.execute("DELETE FROM inventory.customers WHERE id = 2")
        conn.commit()
        conn.execute("UPDATE inventory.customers SET id = 10 WHERE id = 3")
        conn.commit()
        conn.execute("TRUNCATE inventory.customers")
        conn.commit()
    # c(3), u(1), d(2) + tombstone, key change 3→10: d(3) + tombstone + c(10), t.
    streamed = events.until(2 + 8)[2:]
    ops = [(v["payload"]["op"] if v else None, k["payload"] if k else None) for k, v in streamed]
    assert ops == [
        ("c", {"id": 3}), ("u", {"id": 1}), ("d", {"id": 2}), (None, {"id": 2}),
        ("d", {"id": 3}), (None, {"id": 3}), ("c", {"id": 10}), ("t", None),
    ], ops
    insert = streamed[0][1]["payload"]
    assert insert["after"]["tags"] == ["a", "b"] and insert["source"]["snapshot"] == "false"
    assert insert["source"]["lsn"] > 0 and insert["source"]["txId"] > 0
    update = streamed[1][1]["payload"]
    assert update["before"] is None and update["after"]["note"] == "vip"
    delete = streamed[2][1]["payload"]
    assert delete["before"]["id"] == 2 and delete["after"] is None
    # Commit order: each event's commit LSN is at or after the one before.
    lsns = [v["payload"]["source"]["lsn"] for _, v in streamed if v and v["payload"]["op"] != "t"]
    assert lsns == sorted(lsns)
    events.close()

    # The table outside table.include.list made no topic; the lag is on /metrics.
    with urllib.request.urlopen(f"{w.url}/metrics", timeout=10) as response:
        metrics = response.read().decode()
    assert 'spate_connect_source_lag_bytes{connector="inventory-connector",task="0"}' in metrics
    assert connector_state(w, "inventory-connector") == ("RUNNING", ["RUNNING"])
    code, topics = w.call("GET", "/connectors/inventory-connector/topics")
    assert topics["inventory-connector"]["topics"] == ["dbserver1.inventory.customers"]


def test_kill_9_spate_and_restart_postgres_mid_stream_lose_and_duplicate_nothing(
        spate_factory, postgres, tmp_path):
    worker_config = tmp_path / "worker.properties"
    worker_config.write_text("exactly.once.source.support=enabled\noffset.flush.interval.ms=200\n")
    spate = spate_factory(args=["--connect-worker-config", str(worker_config)])
    postgres.sql("""
        CREATE SCHEMA inventory;
        CREATE TABLE inventory.customers (id int PRIMARY KEY, v int NOT NULL);
    """)
    total = 600
    w = InProcess(spate)
    spate.keep_ports()
    create(w, "cdc", cdc_config(postgres))
    wait_until(lambda: connector_state(w, "cdc") == ("RUNNING", ["RUNNING"]), what="task running")
    # Nothing to snapshot; the slot exists once the task streams.
    wait_until(lambda: postgres.sql("SELECT count(*) FROM pg_replication_slots WHERE active")[0][0] == 1,
               what="slot in use")

    written = threading.Event()
    progress = {"n": 0}

    def connect():
        try:
            return postgres.connect()
        except psycopg.OperationalError:
            return None

    def write() -> None:
        # One transaction per row; through PostgreSQL's restart the writer connects again and
        # goes on after the last row that committed.
        conn = postgres.connect()
        i = 1
        while i <= total:
            try:
                conn.execute("INSERT INTO inventory.customers VALUES (%s, %s)", (i, i))
                if i % 3 == 0:
                    conn.execute("UPDATE inventory.customers SET v = v + 1 WHERE id = %s", (i - 1,))
                conn.commit()
            except psycopg.OperationalError:
                conn = wait_until(connect, what="PostgreSQL back")
                committed = conn.execute("SELECT 1 FROM inventory.customers WHERE id = %s", (i,)).fetchone()
                conn.rollback()
                if not committed:
                    continue
            progress["n"] = i
            i += 1
        written.set()

    writer = threading.Thread(target=write, daemon=True)
    writer.start()
    events = Events(spate.kafka_addr, "dbserver1.inventory.customers", read_committed=True)
    events.until(150)
    spate.kill()
    spate.start()
    events.until(min(len(events.by_offset) + 150, total))
    wait_until(lambda: progress["n"] > total // 2, what="half written")
    postgres.restart()
    assert written.wait(120), "the writer did not finish"
    expected = []
    for i in range(1, total + 1):
        expected.append(("c", i))
        if i % 3 == 0:
            expected.append(("u", i - 1))
    got = events.until(len(expected), timeout_s=120)
    seen = [(v["payload"]["op"], v["payload"]["after"]["id"]) for _, v in got]
    assert seen[:len(expected)] == expected, next(
        (i, a, b) for i, (a, b) in enumerate(zip(seen, expected)) if a != b)
    # Nothing beyond: the topic holds each change once (any record after the last expected
    # one would be a duplicate; the consumer keeps every record by offset).
    for _ in range(10):
        message = events.consumer.poll(0.2)
        if message is not None and message.error() is None:
            events.by_offset[(message.partition(), message.offset())] = (None, None)
    assert len(events.by_offset) == len(expected), (len(events.by_offset), len(expected))
    events.close()
    # The slot is confirmed up to what Spate has: it advanced past the start.
    wait_until(lambda: postgres.sql(
        "SELECT confirmed_flush_lsn >= pg_current_wal_insert_lsn() - 100000 FROM pg_replication_slots"
    )[0][0], what="slot confirmed near the end of the WAL")


def test_replication_connections_cut_mid_transaction_lose_nothing(spate, postgres):
    """The walsender is terminated again and again while a large transaction streams: each
    poll that fails part-way must leave the task where it was (the changes it had decoded are
    not yet written), so the reconnected stream re-reads them. Every row arrives; at-least-once
    may repeat some."""
    postgres.sql("CREATE SCHEMA inventory; CREATE TABLE inventory.customers (id int PRIMARY KEY)")
    w = InProcess(spate)
    create(w, "cdc", cdc_config(postgres, **{"retriable.restart.connector.wait.ms": "100"}))
    active = "SELECT count(*) FROM pg_replication_slots WHERE slot_name = 'debezium' AND active"
    wait_until(lambda: postgres.sql(active)[0][0] == 1, what="streaming")
    total = 40_000
    events = Events(spate.kafka_addr, "dbserver1.inventory.customers")
    postgres.sql(f"INSERT INTO inventory.customers SELECT generate_series(1, {total})")
    cuts = 0

    def all_arrived() -> bool:
        nonlocal cuts
        # Cut the stream while it is still behind: the connector reconnects after each cut.
        if cuts < 5 and len(events.by_offset) < total:
            cuts += postgres.sql(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_replication "
                "WHERE application_name LIKE 'spate-connect%'", as_superuser=True)[0][0]
        for message in events.consumer.consume(5000, 0.5):
            if message.error() is None and message.value():
                events.by_offset[(message.partition(), message.offset())] = (
                    None, json.loads(message.value()))
        ids = {v["payload"]["after"]["id"] for _, v in events.by_offset.values() if v}
        return len(ids) == total
    wait_until(all_arrived, timeout_s=240, what=f"all {total} rows after cuts")
    assert cuts >= 1, "the stream was never cut"
    events.close()
    spate.allow_errors("terminating connection", "replication", "connection")


def test_a_misconfigured_server_or_login_fails_the_task_saying_what_to_fix(spate, postgres_factory):
    w = InProcess(spate)
    replica = postgres_factory(wal_level="replica")
    replica.sql("CREATE SCHEMA inventory; CREATE TABLE inventory.customers (id int PRIMARY KEY)")
    cases = {
        "walreplica": (cdc_config(replica), "wal_level"),
        "password": (cdc_config(replica, **{"database.password": "wrong"}), "password authentication failed"),
        "unreachable": (cdc_config(replica, **{"database.port": "1", "errors.max.retries": "0"}),
                        "cannot reach PostgreSQL"),
    }
    for name, (config, _) in cases.items():
        create(w, name, config)
    for name, (_, message) in cases.items():
        def failed() -> dict | None:
            code, status = w.call("GET", f"/connectors/{name}/status")
            tasks = status.get("tasks", []) if code == 200 else []
            return tasks[0] if tasks and tasks[0]["state"] == "FAILED" else None
        task = wait_until(failed, what=f"{name} failed")
        assert message in task["trace"], (name, task["trace"])
    spate.allow_errors("wal_level", "password authentication failed", "cannot reach PostgreSQL")

    code, error = w.call("PUT", f"/connector-plugins/{CONNECTOR}/config/validate", {
        "connector.class": CONNECTOR, "topic.prefix": "x", "snapshot.mode": "sometimes",
        "plugin.name": "decoderbufs"})
    assert code == 200
    errors = {c["value"]["name"]: c["value"]["errors"] for c in error["configs"] if c["value"]["errors"]}
    assert {"database.hostname", "database.user", "database.dbname", "snapshot.mode", "plugin.name"} <= set(errors)
    # One problem per bad field: the runtime reports missing keys, the connector its own checks.
    assert all(len(e) == 1 for e in errors.values()), errors
    assert error["error_count"] == len(errors)


def test_deleting_a_connector_drops_its_temporary_slot(spate, postgres):
    postgres.sql("CREATE SCHEMA inventory; CREATE TABLE inventory.customers (id int PRIMARY KEY)")
    w = InProcess(spate)
    create(w, "temp", cdc_config(postgres, **{"slot.name": "temp_slot", "slot.drop.on.stop": "true"}))
    slots = "SELECT count(*) FROM pg_replication_slots WHERE slot_name = 'temp_slot'"
    wait_until(lambda: postgres.sql(slots)[0][0] == 1, what="slot made")
    assert w.call("DELETE", "/connectors/temp")[0] == 204
    wait_until(lambda: postgres.sql(slots)[0][0] == 0, what="slot dropped")


def test_debezium_to_jdbc_sink_replicates_a_table_with_upserts_deletes_and_a_new_column(spate, postgres):
    """The pipeline Debezium's tutorial builds: CDC from one table, ExtractNewRecordState, and
    Confluent's JDBC sink upserting by the key into another (auto.create, auto.evolve, deletes
    from tombstones)."""
    postgres.sql("""
        CREATE SCHEMA inventory; CREATE SCHEMA replica;
        CREATE TABLE inventory.customers (id int PRIMARY KEY, email text NOT NULL,
                                          balance numeric(10, 2));
        INSERT INTO inventory.customers VALUES (1, 'sally@example.com', 10.50),
                                               (2, 'george@example.com', NULL);
    """)
    w = InProcess(spate)
    create(w, "cdc", cdc_config(postgres))
    create(w, "replica", {
        "connector.class": "io.confluent.connect.jdbc.JdbcSinkConnector",
        "topics": "dbserver1.inventory.customers",
        "connection.url": f"jdbc:postgresql://{postgres.host}:{postgres.port}/{postgres.dbname}",
        "connection.user": postgres.user, "connection.password": postgres.password,
        "insert.mode": "upsert", "pk.mode": "record_key", "delete.enabled": "true",
        "auto.create": "true", "auto.evolve": "true",
        "table.name.format": "replica.customers",
        "transforms": "unwrap",
        "transforms.unwrap.type": "io.debezium.transforms.ExtractNewRecordState",
        "transforms.unwrap.drop.tombstones": "false",
    })
    source = "SELECT id, email, balance FROM inventory.customers ORDER BY id"
    replica = "SELECT id, email, balance FROM replica.customers ORDER BY id"

    def same(query_source: str = source, query_replica: str = replica) -> bool:
        try:
            return postgres.sql(query_replica) == postgres.sql(query_source)
        except (psycopg.errors.UndefinedTable, psycopg.errors.UndefinedColumn):
            return False
    wait_until(same, what="the snapshot replicated")
    with postgres.connect() as conn:
        conn.execute("INSERT INTO inventory.customers VALUES (3, 'anne@example.com', 1.25)")
        conn.execute("UPDATE inventory.customers SET balance = 99.99 WHERE id = 1")
        conn.execute("DELETE FROM inventory.customers WHERE id = 2")
        conn.commit()
    wait_until(same, what="insert, update and delete replicated")
    assert postgres.sql(replica) == [(1, "sally@example.com", Decimal("99.99")),
                                     (3, "anne@example.com", Decimal("1.25"))]
    with postgres.connect() as conn:
        conn.execute("ALTER TABLE inventory.customers ADD COLUMN vip boolean")
        conn.execute("UPDATE inventory.customers SET vip = true WHERE id = 3")
        conn.commit()
    wait_until(lambda: same("SELECT id, vip FROM inventory.customers ORDER BY id",
                            "SELECT id, vip FROM replica.customers ORDER BY id"),
               what="the new column added and filled")
    # The sink's consumer group is Kafka Connect's, with its lag.
    assert connector_state(w, "replica") == ("RUNNING", ["RUNNING"])


def test_heartbeats_and_snapshot_mode_no_data(spate, postgres):
    """`heartbeat.interval.ms` writes Debezium's heartbeat records (and so commits offsets while
    captured tables are quiet); `snapshot.mode=no_data` streams from now, without the rows that
    were there."""
    postgres.sql("""
        CREATE SCHEMA inventory;
        CREATE TABLE inventory.customers (id int PRIMARY KEY);
        INSERT INTO inventory.customers VALUES (1);
    """)
    w = InProcess(spate)
    create(w, "beat", cdc_config(postgres, **{"heartbeat.interval.ms": "200", "snapshot.mode": "no_data"}))
    wait_until(lambda: postgres.sql("SELECT count(*) FROM pg_replication_slots WHERE active")[0][0] == 1,
               what="streaming")
    postgres.sql("INSERT INTO inventory.customers VALUES (2)")
    changes = Events(spate.kafka_addr, "dbserver1.inventory.customers").until(1)
    assert [v["payload"]["after"]["id"] for _, v in changes] == [2]
    beats = Events(spate.kafka_addr, "__debezium-heartbeat.dbserver1").until(2)
    key, value = beats[0]
    assert key["payload"] == {"serverName": "dbserver1"}
    assert key["schema"]["name"] == "io.debezium.connector.common.ServerNameKey"
    assert value["schema"]["name"] == "io.debezium.connector.common.Heartbeat"
    assert value["payload"]["ts_ms"] > 0
