"""Authentication on the schema registry and HTTP admin listeners (`--http-auth`).

The registry checks the principals the Kafka listeners check: HTTP basic credentials against
the users' SCRAM credentials (users created with confluent-kafka's AdminClient, as for SASL),
or a bearer JWT checked as OAUTHBEARER tokens are. Driven by confluent-kafka's
SchemaRegistryClient with `basic.auth.user.info` and with a static bearer token, and by raw
HTTP for what the clients hide: the 401 body and challenge, which must be the same for an
unknown user and a wrong password, and `/health` staying open while `/metrics` needs
credentials.
"""

from __future__ import annotations

import json
import os
import re
import subprocess

import pytest
import requests
from confluent_kafka.admin import AdminClient, ScramMechanism, UserScramCredentialDeletion
from confluent_kafka.schema_registry import Schema, SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer, AvroSerializer
from confluent_kafka.schema_registry.error import SchemaRegistryError
from confluent_kafka.serialization import MessageField, SerializationContext

from conftest import spate_binary
from helpers import unique, wait_until
from test_sasl import create_user, jwt_and_jwks

UNAUTHORIZED = {"error_code": 401, "message": "Unauthorized"}
BASIC_CHALLENGE = 'Basic realm="spate", charset="UTF-8"'
BEARER_CHALLENGE = 'Bearer realm="spate"'

ORDER = json.dumps(
    {
        "type": "record",
        "name": "Order",
        "namespace": "shop",
        "fields": [{"name": "id", "type": "long"}, {"name": "item", "type": "string"}],
    }
)


def registry_url(broker) -> str:
    return f"http://{broker.registry_addr}"


def basic_client(broker, user: str, password: str) -> SchemaRegistryClient:
    return SchemaRegistryClient({"url": registry_url(broker), "basic.auth.user.info": f"{user}:{password}"})


def bearer_client(broker, token: str) -> SchemaRegistryClient:
    return SchemaRegistryClient(
        {
            "url": registry_url(broker),
            "bearer.auth.credentials.source": "STATIC_TOKEN",
            "bearer.auth.token": token,
            # Confluent Cloud's routing header; the client insists on it, Spate ignores it.
            "bearer.auth.logical.cluster": "lsrc-spate",
        }
    )


def refused(call) -> SchemaRegistryError:
    """Runs a client call that must fail with 401; returns the error."""
    with pytest.raises(SchemaRegistryError) as info:
        call()
    error = info.value
    assert (error.http_status_code, error.error_code, error.error_message) == (401, 401, "Unauthorized")
    return error


def raw(broker, path: str, auth=None, headers: dict | None = None, admin: bool = False) -> requests.Response:
    base = f"http://{broker.http_addr}" if admin else registry_url(broker)
    return requests.get(base + path, auth=auth, headers=headers or {}, timeout=30)


def round_trip_order(client: SchemaRegistryClient, subject_prefix: str) -> None:
    """Registers the Order schema under a new subject through the serializer, fetches it back by
    id and by subject, and decodes what was encoded (the deserializer fetches by id too)."""
    topic = unique(subject_prefix)
    serializer = AvroSerializer(client, ORDER)
    ctx = SerializationContext(topic, MessageField.VALUE)
    order = {"id": 7, "item": "kettle"}
    payload = serializer(order, ctx)
    schema_id = int.from_bytes(payload[1:5], "big")
    assert json.loads(client.get_schema(schema_id).schema_str)["name"] == "Order"
    assert client.get_latest_version(f"{topic}-value").schema_id == schema_id
    assert AvroDeserializer(client)(payload, ctx) == order


def allow(bootstrap: str, principal: str, operation, resource_type=None, name: str = "kafka-cluster") -> None:
    """Grants `principal` `operation` on a resource (the cluster unless said), as an admin would."""
    from confluent_kafka.admin import AclBinding, AclPermissionType, ResourcePatternType, ResourceType

    binding = AclBinding(resource_type or ResourceType.BROKER, name, ResourcePatternType.LITERAL, principal, "*",
                         operation, AclPermissionType.ALLOW)
    admin = AdminClient({"bootstrap.servers": bootstrap})
    for future in admin.create_acls([binding]).values():
        future.result(timeout=30)


def authentication_logged(broker, reason: str, provoke) -> None:
    """Refusal lines are limited to one a second per client address: provokes refusals until
    one with `reason` is logged."""

    def logged() -> bool:
        if reason in broker.log_text():
            return True
        provoke()
        return reason in broker.log_text()

    wait_until(logged, 15, interval_s=0.2, what=f"a refusal logged with {reason!r}")


def test_basic_auth_with_schema_registry_client_against_scram_users(spate_factory):
    broker = spate_factory(args=["--http-auth", "basic"])
    create_user(broker.bootstrap, "alice", "alice-secret")
    create_user(broker.bootstrap, "bob", "bob-secret", ScramMechanism.SCRAM_SHA_256)

    round_trip_order(basic_client(broker, "alice", "alice-secret"), "basic-512")
    # A user with only a SCRAM-SHA-256 credential authenticates too.
    round_trip_order(basic_client(broker, "bob", "bob-secret"), "basic-256")

    # Wrong password, unknown user, no credentials: one answer, so nothing tells them apart.
    refused(lambda: basic_client(broker, "alice", "wrong").get_subjects())
    refused(lambda: basic_client(broker, "mallory", "alice-secret").get_subjects())
    refused(lambda: SchemaRegistryClient({"url": registry_url(broker)}).get_subjects())
    answers = [
        raw(broker, "/subjects", auth=("alice", "wrong")),
        raw(broker, "/subjects", auth=("mallory", "alice-secret")),
        raw(broker, "/subjects"),
        raw(broker, "/subjects", headers={"Authorization": "Digest username=alice"}),
    ]
    for answer in answers:
        assert answer.status_code == 401
        assert answer.json() == UNAUTHORIZED
        assert answer.headers["WWW-Authenticate"] == BASIC_CHALLENGE
        assert answer.headers["Content-Type"] == "application/vnd.schemaregistry.v1+json"
    without_date = {
        (a.content, frozenset((k.lower(), v) for k, v in a.headers.items() if k.lower() != "date")) for a in answers
    }
    assert len(without_date) == 1, without_date
    # Every path needs credentials, unknown ones too (no probing what exists).
    assert raw(broker, "/no-such-path").status_code == 401
    assert raw(broker, "/no-such-path", auth=("alice", "alice-secret")).status_code == 404

    # The broker logs why (rate-limited per address), never the password.
    authentication_logged(
        broker, 'reason=wrong password for user "alice"', lambda: raw(broker, "/subjects", auth=("alice", "wrong"))
    )
    authentication_logged(
        broker, 'reason=unknown user "mallory"', lambda: raw(broker, "/subjects", auth=("mallory", "pw"))
    )
    assert "alice-secret" not in broker.log_text()
    assert re.search(r"WARN.*http authentication failed.*listener=\"?registry", broker.log_text())


def test_changed_and_deleted_credentials_take_effect_at_once(spate_factory):
    broker = spate_factory(args=["--http-auth", "basic"])
    create_user(broker.bootstrap, "carol", "first")
    assert raw(broker, "/subjects", auth=("carol", "first")).status_code == 200
    assert raw(broker, "/subjects", auth=("carol", "first")).status_code == 200  # from the cache

    create_user(broker.bootstrap, "carol", "second")
    assert raw(broker, "/subjects", auth=("carol", "first")).status_code == 401
    assert raw(broker, "/subjects", auth=("carol", "second")).status_code == 200

    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    futures = admin.alter_user_scram_credentials([UserScramCredentialDeletion("carol", ScramMechanism.SCRAM_SHA_512)])
    for future in futures.values():
        future.result(timeout=30)
    assert raw(broker, "/subjects", auth=("carol", "second")).status_code == 401

    # Cache hits and key derivations are on /metrics: three derivations (first, the refused
    # old password, second), one hit.
    metrics = raw(broker, "/metrics", admin=True, auth=("dave", "x"))
    assert metrics.status_code == 401
    create_user(broker.bootstrap, "dave", "dave-secret")
    text = raw(broker, "/metrics", admin=True, auth=("dave", "dave-secret")).text
    assert re.search(r"^spate_http_auth_cache_hits_total 1$", text, re.M), text
    assert re.search(r"^spate_http_auth_refused_total [1-9]", text, re.M), text


def test_bearer_jwt_with_schema_registry_client(spate_factory, tmp_path):
    jwks, sign = jwt_and_jwks(tmp_path)
    broker = spate_factory(
        args=[
            "--http-auth", "basic,bearer",
            "--oauthbearer-jwks-file", str(jwks),
            "--oauthbearer-issuer", "https://issuer.test",
            "--oauthbearer-audience", "spate",
        ]
    )
    token, _ = sign("erin")
    round_trip_order(bearer_client(broker, token), "bearer")

    # Expired, from another issuer, signed by another key: refused, with the reason logged.
    expired, _ = sign("erin", lifetime_s=-120)
    refused(lambda: bearer_client(broker, expired).get_subjects())
    authentication_logged(
        broker, "token expired", lambda: raw(broker, "/subjects", headers={"Authorization": f"Bearer {expired}"})
    )
    foreign, _ = sign("erin", iss="https://elsewhere.test")
    refused(lambda: bearer_client(broker, foreign).get_subjects())
    (tmp_path / "other").mkdir()
    _, other_sign = jwt_and_jwks(tmp_path / "other")
    forged, _ = other_sign("erin")
    refused(lambda: bearer_client(broker, forged).get_subjects())
    assert token not in broker.log_text() and expired not in broker.log_text()

    # Both schemes are offered, and basic still works beside bearer.
    answer = raw(broker, "/subjects")
    assert answer.status_code == 401
    assert answer.headers["WWW-Authenticate"] == f"{BASIC_CHALLENGE}, {BEARER_CHALLENGE}"
    create_user(broker.bootstrap, "frank", "frank-secret")
    assert basic_client(broker, "frank", "frank-secret").get_subjects() != []


def test_metrics_need_credentials_and_health_does_not(spate_factory):
    broker = spate_factory(args=["--http-auth", "basic"])
    create_user(broker.bootstrap, "ops", "ops-secret")
    for probe in ["/health", "/health/live", "/health/ready"]:
        assert raw(broker, probe, admin=True).status_code == 200, probe
    refused_metrics = raw(broker, "/metrics", admin=True)
    assert refused_metrics.status_code == 401
    assert refused_metrics.json() == UNAUTHORIZED
    assert refused_metrics.headers["WWW-Authenticate"] == BASIC_CHALLENGE
    assert "spate_" not in refused_metrics.text
    assert raw(broker, "/metrics", admin=True, auth=("ops", "wrong")).status_code == 401
    metrics = raw(broker, "/metrics", admin=True, auth=("ops", "ops-secret"))
    assert metrics.status_code == 200
    assert "spate_http_auth_refused_total" in metrics.text


def test_without_http_auth_everything_is_open(spate):
    assert raw(spate, "/metrics", admin=True).status_code == 200
    assert raw(spate, "/health", admin=True).status_code == 200
    round_trip_order(SchemaRegistryClient({"url": registry_url(spate)}), "open")
    # Credentials are ignored rather than refused, as before.
    assert raw(spate, "/subjects", auth=("nobody", "nothing")).status_code == 200


def test_bearer_without_a_jwks_file_is_refused_at_start(tmp_path):
    result = subprocess.run(
        [str(spate_binary()), "serve", "--data-dir", str(tmp_path / "data"), "--http-auth", "bearer",
         "--kafka-listen", "127.0.0.1:0", "--http-listen", "127.0.0.1:0", "--registry-listen", "127.0.0.1:0", "--connect-listen", "off"],
        capture_output=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )
    assert result.returncode != 0
    assert "http-auth" in result.stderr.decode() and "oauthbearer.jwks-file" in result.stderr.decode()


def test_with_acls_the_registry_needs_read_or_write_on_schemas_and_metrics_needs_describe_cluster(spate_factory):
    from confluent_kafka.admin import AclOperation, ResourceType

    broker = spate_factory(args=["--http-auth", "basic", "--authorizer", "acl", "--super-user", "User:ANONYMOUS"])
    for user in ("reader", "writer"):
        create_user(broker.bootstrap, user, f"{user}-secret")

    def grant(principal: str, operation: AclOperation, resource=ResourceType.TOPIC, name="_schemas"):
        allow(broker.bootstrap, principal, operation, resource, name)

    subject = unique("orders") + "-value"
    writer = basic_client(broker, "writer", "writer-secret")
    reader = basic_client(broker, "reader", "reader-secret")
    with pytest.raises(SchemaRegistryError) as denied:
        writer.register_schema(subject, Schema(ORDER, "AVRO"))
    assert denied.value.http_status_code == 403 and denied.value.error_code == 40301

    grant("User:writer", AclOperation.WRITE)
    grant("User:reader", AclOperation.READ)
    schema_id = writer.register_schema(subject, Schema(ORDER, "AVRO"))
    assert json.loads(reader.get_schema(schema_id).schema_str)["name"] == "Order"
    with pytest.raises(SchemaRegistryError) as read_only:
        reader.delete_subject(subject)
    assert read_only.value.http_status_code == 403

    # The admin API: DESCRIBE on the cluster.
    metrics = f"http://{broker.http_addr}/metrics"
    assert requests.get(metrics, auth=("reader", "reader-secret"), timeout=10).status_code == 403
    grant("User:reader", AclOperation.DESCRIBE, ResourceType.BROKER, "kafka-cluster")
    assert requests.get(metrics, auth=("reader", "reader-secret"), timeout=10).status_code == 200
    assert "authorization denied" in broker.log_text()


def test_kafka_connects_api_takes_the_same_authentication_and_acls(spate_factory, tmp_path):
    """The in-process Connect worker's REST API (port 8083): credentials as the registry's, and
    with ACLs DESCRIBE on the cluster to look, ALTER on the cluster to change connectors."""
    from confluent_kafka.admin import AclOperation

    broker = spate_factory(args=["--http-auth", "basic", "--authorizer", "acl", "--super-user", "User:ANONYMOUS"])
    create_user(broker.bootstrap, "ops", "ops-secret")
    url = "http://" + wait_until(lambda: broker.connect_addr, what="connect worker is ready")
    assert requests.get(f"{url}/connectors", timeout=10).status_code == 401
    wrong = requests.get(f"{url}/connectors", auth=("ops", "wrong"), timeout=10)
    assert (wrong.status_code, wrong.json()) == (401, UNAUTHORIZED)
    assert wrong.headers["WWW-Authenticate"] == BASIC_CHALLENGE
    denied = requests.get(f"{url}/connectors", auth=("ops", "ops-secret"), timeout=10)
    assert denied.status_code == 403
    assert denied.json() == {"error_code": 403, "message": "User is denied operation DESCRIBE on CLUSTER: kafka-cluster"}

    def grant(operation: AclOperation) -> None:
        allow(broker.bootstrap, "User:ops", operation)

    grant(AclOperation.DESCRIBE)
    assert requests.get(f"{url}/connectors", auth=("ops", "ops-secret"), timeout=10).json() == []
    config = {"connector.class": "FileStreamSink", "topics": "t", "file": str(tmp_path / "out.txt")}
    create = lambda: requests.post(f"{url}/connectors", json={"name": "sink", "config": config},  # noqa: E731
                                   auth=("ops", "ops-secret"), timeout=30)
    assert create().status_code == 403
    grant(AclOperation.ALTER)
    assert create().status_code == 201
    # `spate connect` takes the credentials from the environment (or the URL).
    command = [str(spate_binary()), "connect", "list", "--url", url, "--json"]
    env = dict(os.environ, SPATE_CONNECT_USER="ops", SPATE_CONNECT_PASSWORD="ops-secret")
    listed = subprocess.run(command, env=env, capture_output=True, text=True, timeout=60)
    assert listed.returncode == 0 and list(json.loads(listed.stdout)) == ["sink"], listed.stderr
    refused_cli = subprocess.run(command, capture_output=True, text=True, timeout=60)
    assert refused_cli.returncode != 0 and "Unauthorized (HTTP 401)" in refused_cli.stderr
    assert "ops-secret" not in broker.log_text()


def test_the_sql_api_takes_the_same_authentication_and_acls(spate_factory):
    """The in-process SQL worker's API (port 8088): credentials as the registry's; with ACLs,
    DESCRIBE on the cluster to look and query, ALTER on the cluster to run statements."""
    from confluent_kafka.admin import AclOperation

    broker = spate_factory(
        args=["--http-auth", "basic", "--authorizer", "acl", "--super-user", "User:ANONYMOUS"],
        sql_listen="127.0.0.1:0",
    )
    create_user(broker.bootstrap, "analyst", "analyst-secret")
    url = "http://" + wait_until(lambda: broker.sql_addr, what="sql worker is ready")
    auth = ("analyst", "analyst-secret")
    assert requests.get(f"{url}/jobs", timeout=10).status_code == 401
    denied = requests.get(f"{url}/jobs", auth=auth, timeout=10)
    assert denied.status_code == 403
    assert denied.json() == {"error_code": 403, "message": "User is denied operation DESCRIBE on CLUSTER: kafka-cluster"}
    def grant(operation: AclOperation) -> None:
        allow(broker.bootstrap, "User:analyst", operation)

    grant(AclOperation.DESCRIBE)
    assert requests.get(f"{url}/jobs", auth=auth, timeout=10).json() == []
    statement = {"sql": "CREATE TABLE t (a INT) WITH ('topic' = 't')"}
    assert requests.post(f"{url}/statements", json=statement, auth=auth, timeout=30).status_code == 403
    grant(AclOperation.ALTER)
    assert requests.post(f"{url}/statements", json=statement, auth=auth, timeout=30).status_code == 200
    # `spate sql` takes the credentials from the environment (or the URL).
    command = [str(spate_binary()), "sql", "--url", url, "-e", "SHOW TABLES"]
    env = dict(os.environ, SPATE_SQL_USER="analyst", SPATE_SQL_PASSWORD="analyst-secret")
    shown = subprocess.run(command, env=env, capture_output=True, text=True, timeout=60)
    assert shown.returncode == 0 and re.search(r"\|\s+t \|", shown.stdout), shown.stderr
    refused_cli = subprocess.run(command, capture_output=True, text=True, timeout=60)
    assert refused_cli.returncode != 0 and "Unauthorized" in refused_cli.stderr
