"""TLS to PostgreSQL: Debian's PostgreSQL 15 with `ssl=on` and a certificate from a CA made by
`openssl` for the test. The Debezium connector (`database.sslmode`, `database.sslrootcert`) and
the JDBC sink (pgjdbc's `sslmode`/`sslrootcert` URL parameters) capture and write over TLS, which
the server's own `pg_stat_ssl` confirms for every session Spate opened, the replication one
included; the modes that check certificates refuse the ones they should, saying what to fix."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest

from helpers import wait_until
from postgres import OS_USER
from test_connect import InProcess, connector_state
from test_connect_postgres import Events, cdc_config, create
from test_tls import openssl

JDBC = "io.confluent.connect.jdbc.JdbcSinkConnector"


@pytest.fixture(scope="module")
def pg_pki():
    """A CA and a server certificate it signed for 127.0.0.1 only (so `localhost` does not match
    it), and a second CA that signed nothing here. In a directory the `postgres` OS user can
    read (the cluster runs as that user under root), the key its own, as PostgreSQL demands."""
    d = Path(tempfile.mkdtemp(prefix="spate-pg-pki-"))
    os.chmod(d, 0o755)
    for ca in ("ca", "other-ca"):
        openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", f"/CN=Spate {ca}",
                "-keyout", f"{ca}.key", "-out", f"{ca}.pem", cwd=d)
    (d / "server.ext").write_text("subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n")
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=postgres", "-keyout", "server.key",
            "-out", "server.csr", cwd=d)
    openssl("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
            "-days", "2", "-extfile", "server.ext", "-out", "server.pem", cwd=d)
    for name in ("server.pem", "server.key"):
        os.chmod(d / name, 0o600)
        if os.geteuid() == 0:
            shutil.chown(d / name, OS_USER, OS_USER)
    yield {name: str(d / name) for name in ("ca.pem", "other-ca.pem", "server.pem", "server.key")}
    shutil.rmtree(d, ignore_errors=True)


def tls_postgres(postgres_factory, pki):
    return postgres_factory(settings={
        "ssl": "on", "ssl_cert_file": pki["server.pem"], "ssl_key_file": pki["server.key"]})


def sessions(pg, application: str) -> list[tuple[str, bool]]:
    """(backend type, encrypted) of the server's sessions whose application name starts so."""
    return pg.sql(
        "SELECT a.backend_type, s.ssl FROM pg_stat_activity a JOIN pg_stat_ssl s USING (pid) "
        "WHERE a.application_name LIKE %s ORDER BY 1",
        (application + "%",), as_superuser=True)


def failed_trace(w, name: str) -> str:
    def failed() -> str | None:
        code, status = w.call("GET", f"/connectors/{name}/status")
        tasks = status.get("tasks", []) if code == 200 else []
        return tasks[0]["trace"] if tasks and tasks[0]["state"] == "FAILED" else None
    return wait_until(failed, what=f"{name} failed")


def test_cdc_and_the_jdbc_sink_run_over_verified_tls(spate, postgres_factory, pg_pki):
    pg = tls_postgres(postgres_factory, pg_pki)
    pg.sql("""
        CREATE SCHEMA inventory; CREATE SCHEMA replica;
        CREATE TABLE inventory.customers (id int PRIMARY KEY, email text NOT NULL);
        INSERT INTO inventory.customers VALUES (1, 'sally@example.com'), (2, 'george@example.com');
    """)
    w = InProcess(spate)
    create(w, "cdc", cdc_config(pg, **{
        "database.sslmode": "verify-full", "database.sslrootcert": pg_pki["ca.pem"]}))
    events = Events(spate.kafka_addr, "dbserver1.inventory.customers")
    assert [k["payload"]["id"] for k, _ in events.until(2)] == [1, 2]
    pg.sql("INSERT INTO inventory.customers VALUES (3, 'anne@example.com')")
    streamed = events.until(3)[2][1]["payload"]
    assert (streamed["op"], streamed["after"]["email"]) == ("c", "anne@example.com")
    events.close()
    # The snapshot's SQL session is closed by now; the one that confirms the slot and the
    # walsender stream remain, both encrypted.
    spate_sessions = wait_until(
        lambda: (s := sessions(pg, "spate-connect")) and any(t == "walsender" for t, _ in s) and s,
        what="spate's sessions listed")
    assert all(encrypted for _, encrypted in spate_sessions), spate_sessions

    create(w, "replica", {
        "connector.class": JDBC,
        "topics": "dbserver1.inventory.customers",
        "connection.url": f"jdbc:postgresql://{pg.host}:{pg.port}/{pg.dbname}"
                          f"?sslmode=verify-full&sslrootcert={pg_pki['ca.pem']}",
        "connection.user": pg.user, "connection.password": pg.password,
        "insert.mode": "upsert", "pk.mode": "record_key", "auto.create": "true",
        "table.name.format": "replica.customers",
        "transforms": "unwrap",
        "transforms.unwrap.type": "io.debezium.transforms.ExtractNewRecordState",
    })
    source = "SELECT id, email FROM inventory.customers ORDER BY id"

    def replicated() -> bool:
        try:
            return pg.sql("SELECT id, email FROM replica.customers ORDER BY id") == pg.sql(source)
        except Exception:  # the table is made by the sink's first write
            return False
    wait_until(replicated, what="the table replicated over TLS")
    assert sessions(pg, "spate-connect-jdbc") == [("client backend", True)]
    assert connector_state(w, "replica") == ("RUNNING", ["RUNNING"])


def test_tls_settings_that_cannot_work_are_refused_saying_what_to_fix(spate, postgres_factory, pg_pki):
    secure = tls_postgres(postgres_factory, pg_pki)
    plain = postgres_factory()
    for pg in (secure, plain):
        pg.sql("CREATE SCHEMA inventory; CREATE TABLE inventory.customers (id int PRIMARY KEY)")
    w = InProcess(spate)

    # Checked before anything starts: a mode that is not libpq's, a root certificate file that
    # is not there; both named by key.
    code, body = w.call("POST", "/connectors", {"name": "bad", "config": cdc_config(secure, **{
        "database.sslmode": "required", "database.sslrootcert": "/nonexistent/ca.pem"})})
    assert code == 400, body
    assert "database.sslmode" in body["message"] and "database.sslrootcert" in body["message"], body
    code, body = w.call("POST", "/connectors", {"name": "bad-url", "config": {
        "connector.class": JDBC, "topics": "t",
        "connection.url": f"jdbc:postgresql://{plain.host}:{plain.port}/{plain.dbname}?sslmode=sometimes"}})
    assert code == 400 and "sslmode" in body["message"], body

    cases = {
        # A certificate no trusted CA signed.
        "untrusted": (cdc_config(secure, **{
            "database.sslmode": "verify-ca", "database.sslrootcert": pg_pki["other-ca.pem"]}),
            "check sslrootcert"),
        # The right CA, but the certificate is for 127.0.0.1, not localhost.
        "wrong-name": (cdc_config(secure, **{
            "database.hostname": "localhost", "database.sslmode": "verify-full",
            "database.sslrootcert": pg_pki["ca.pem"]}), "check sslrootcert"),
        # TLS required of a server without it.
        "no-tls": (cdc_config(plain, **{"database.sslmode": "require"}),
                   "does not accept TLS connections"),
    }
    for name, (config, _) in cases.items():
        config["slot.name"] = name.replace("-", "_")
        create(w, name, config)
    for name, (_, message) in cases.items():
        trace = failed_trace(w, name)
        assert message in trace, (name, trace)
    spate.allow_errors("check sslrootcert", "does not accept TLS connections")

    # verify-ca checks the chain, not the name: localhost is fine there; and `prefer` (the
    # default) against the server without TLS connects unencrypted.
    create(w, "chain-only", cdc_config(secure, **{
        "database.hostname": "localhost", "database.sslmode": "verify-ca",
        "database.sslrootcert": pg_pki["ca.pem"], "slot.name": "chain_only"}))
    create(w, "preferred", cdc_config(plain, **{"slot.name": "preferred"}))
    for name in ("chain-only", "preferred"):
        wait_until(lambda: connector_state(w, name) == ("RUNNING", ["RUNNING"]), what=f"{name} running")
    slot = "SELECT active FROM pg_replication_slots WHERE slot_name = %s"
    wait_until(lambda: secure.sql(slot, ("chain_only",)) == [(True,)], what="verify-ca streaming")
    wait_until(lambda: plain.sql(slot, ("preferred",)) == [(True,)], what="prefer streaming")
