"""The `postgres` fixture itself: a private PostgreSQL 15 cluster ready for logical decoding,
reachable as the connector's login user, that keeps committed rows through a crash."""

from __future__ import annotations

import psycopg
import pytest


def test_login_user_creates_writes_and_reads_a_table(postgres):
    postgres.sql("CREATE TABLE customers (id int PRIMARY KEY, name text NOT NULL)")
    postgres.sql("INSERT INTO customers VALUES (%s, %s), (%s, %s)", (1, "ada", 2, "grace"))
    assert postgres.sql("SELECT id, name FROM customers ORDER BY id") == [(1, "ada"), (2, "grace")]
    # Several statements without parameters: the rows of the last one.
    assert postgres.sql("DELETE FROM customers WHERE id = 2; SELECT count(*) FROM customers") == [
        (1,)
    ]
    with postgres.connect() as conn:
        assert conn.execute("SELECT current_user, current_database()").fetchone() == (
            postgres.user,
            postgres.dbname,
        )
        assert conn.info.host == "127.0.0.1" and conn.info.port == postgres.port


def test_server_is_set_up_for_logical_decoding(postgres):
    assert postgres.sql("SHOW wal_level") == [("logical",)]
    assert postgres.sql("SHOW max_replication_slots") == [("10",)]
    assert postgres.sql("SHOW max_wal_senders") == [("10",)]
    # The login user is no superuser, but may replicate.
    assert postgres.sql(
        "SELECT rolsuper, rolreplication FROM pg_roles WHERE rolname = current_user"
    ) == [(False, True)]


def test_login_user_creates_and_drops_a_pgoutput_slot(postgres):
    [(slot, lsn)] = postgres.sql(
        "SELECT slot_name, lsn FROM pg_create_logical_replication_slot(%s, 'pgoutput')",
        ("spate_fixture",),
    )
    assert slot == "spate_fixture" and lsn is not None
    assert postgres.sql(
        "SELECT plugin, slot_type, database FROM pg_replication_slots WHERE slot_name = %s",
        ("spate_fixture",),
    ) == [("pgoutput", "logical", postgres.dbname)]
    postgres.sql("SELECT pg_drop_replication_slot(%s)", ("spate_fixture",))
    assert postgres.sql("SELECT count(*) FROM pg_replication_slots") == [(0,)]


def test_replication_connection_authenticates_with_password(postgres):
    # What a connector's streaming connection does: replication=database, scram-sha-256.
    with postgres.connect(autocommit=True, replication="database") as conn:
        [(system_id, timeline, _lsn, dbname)] = conn.execute("IDENTIFY_SYSTEM").fetchall()
        assert dbname == postgres.dbname and int(timeline) >= 1 and system_id


def test_wrong_password_is_refused(postgres):
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        postgres.connect(password="not-the-password")


def test_committed_row_survives_a_crash(postgres):
    port = postgres.port
    postgres.sql("CREATE TABLE orders (id int PRIMARY KEY, amount_cents bigint)")
    postgres.sql("INSERT INTO orders VALUES (1, 4200)")
    postgres.kill()
    assert not postgres.running()
    postgres.start()
    assert postgres.port == port, "a restart keeps the port, so clients find the server again"
    assert postgres.sql("SELECT id, amount_cents FROM orders") == [(1, 4200)]
    assert "database system was interrupted" in postgres.log_text()


def test_stop_then_restart_keeps_data(postgres):
    postgres.sql("CREATE TABLE t (v text)")
    postgres.sql("INSERT INTO t VALUES ('kept')")
    postgres.stop()
    postgres.restart()
    assert postgres.sql("SELECT v FROM t") == [("kept",)]


def test_replica_wal_level_refuses_logical_slots(postgres_factory):
    misconfigured = postgres_factory(wal_level="replica")
    assert misconfigured.sql("SHOW wal_level") == [("replica",)]
    with pytest.raises(psycopg.errors.ObjectNotInPrerequisiteState, match="wal_level"):
        misconfigured.sql("SELECT pg_create_logical_replication_slot('s', 'pgoutput')")
