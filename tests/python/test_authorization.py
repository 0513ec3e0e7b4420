"""ACL enforcement with real clients (confluent-kafka and kafka-python).

The broker runs with `--authorizer acl`: an internal PLAINTEXT listener whose principal
(User:ANONYMOUS) is a super user, as Kafka operators run an inter-broker listener, and a
SASL_PLAINTEXT listener where users authenticate with SCRAM-SHA-512. A user without ACLs is
refused (TOPIC_AUTHORIZATION_FAILED, GROUP_AUTHORIZATION_FAILED) and sees no topics; prefixed
ACLs let the same user produce, consume through a group and commit; a DENY wins over an ALLOW;
the credentials topic is never readable by ordinary users.
"""

from __future__ import annotations

import pytest
from confluent_kafka import Consumer, KafkaError, TopicPartition
from confluent_kafka.admin import (
    AclBinding,
    AclOperation,
    AclPermissionType,
    AdminClient,
    ResourcePatternType,
    ResourceType,
)

from helpers import audit_events, create_topic, producer, produce_all, unique, wait_until
from test_sasl import create_user, listeners_of, sasl_conf

SUPER = "User:ANONYMOUS"


def start(spate_factory, *extra: str):
    broker = spate_factory(
        args=[
            "--listener", "INSIDE=SASL_PLAINTEXT://127.0.0.1:0",
            "--sasl-mechanisms", "SCRAM-SHA-512",
            "--authorizer", "acl",
            "--super-user", SUPER,
            *extra,
        ]
    )
    return broker, listeners_of(broker)["INSIDE"]


def allow(resource: ResourceType, name: str, pattern: ResourcePatternType, operation: AclOperation,
          principal: str, permission=AclPermissionType.ALLOW) -> AclBinding:
    return AclBinding(resource, name, pattern, principal, "*", operation, permission)


def create_acls(bootstrap: str, bindings: list[AclBinding]) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    for future in admin.create_acls(bindings).values():
        assert future.result(timeout=30) is None


def produce_error(conf: dict, topic: str) -> int:
    """Produces one record with `conf`; it must fail; returns the delivery error code."""
    settings = {k: v for k, v in conf.items() if k != "bootstrap.servers"}
    p = producer(conf["bootstrap.servers"], acks="all", **settings, **{"message.timeout.ms": 10000})
    outcome = produce_all(p, topic, [{"value": b"x"}], timeout_s=30, expect_success=False)
    assert not outcome.delivered, "the write must be refused"
    return outcome.errors[0][0].code()


def subscribe_error(conf: dict, topic: str, group: str) -> int:
    """Subscribes with `conf` to `topic` in `group`; returns the first error code seen."""
    errors: list[KafkaError] = []
    c = Consumer({**conf, "group.id": group, "auto.offset.reset": "earliest",
                  "error_cb": errors.append})
    c.subscribe([topic])
    try:
        def failed():
            m = c.poll(0.5)
            if m is not None and m.error():
                errors.append(m.error())
            return errors
        wait_until(failed, 30, what=f"an error consuming {topic} in {group}")
    finally:
        c.close()
    return errors[0].code()


def test_a_principal_without_acls_is_refused_and_prefixed_acls_let_it_work(spate_factory):
    broker, inside = start(spate_factory)
    create_user(broker.bootstrap, "alice", "alice-secret")
    alice = sasl_conf(inside, "SASL_PLAINTEXT", "SCRAM-SHA-512", "alice", "alice-secret")
    topic, other = unique("alice-orders"), unique("bob-orders")
    create_topic(broker.bootstrap, topic)
    create_topic(broker.bootstrap, other)

    # No ACLs: nothing visible, writes and reads refused.
    md = AdminClient(alice).list_topics(timeout=10)
    assert topic not in md.topics and other not in md.topics, "topics are filtered out of Metadata"
    assert produce_error(alice, topic) == KafkaError.TOPIC_AUTHORIZATION_FAILED
    assert subscribe_error(alice, topic, unique("alice-group")) == KafkaError.GROUP_AUTHORIZATION_FAILED

    # Prefixed ACLs on topics and groups named alice-*.
    prefixed = ResourcePatternType.PREFIXED
    create_acls(broker.bootstrap, [
        allow(ResourceType.TOPIC, "alice-", prefixed, AclOperation.WRITE, "User:alice"),
        allow(ResourceType.TOPIC, "alice-", prefixed, AclOperation.READ, "User:alice"),
        allow(ResourceType.GROUP, "alice-", prefixed, AclOperation.READ, "User:alice"),
    ])
    # READ and WRITE imply DESCRIBE: the topic is visible now, the other one still is not.
    md = AdminClient(alice).list_topics(timeout=10)
    assert topic in md.topics and other not in md.topics
    values = [f"v{i}".encode() for i in range(5)]
    settings = {k: v for k, v in alice.items() if k != "bootstrap.servers"}
    produce_all(producer(inside, acks="all", **settings), topic, [{"value": v} for v in values])
    seen = consume_with_group(alice, topic, unique("alice-group"), len(values))
    assert seen == values

    # Outside the prefix, still refused; a group outside the prefix too.
    assert produce_error(alice, other) == KafkaError.TOPIC_AUTHORIZATION_FAILED
    assert subscribe_error(alice, topic, unique("shared-group")) == KafkaError.GROUP_AUTHORIZATION_FAILED

    # A DENY wins over the prefixed ALLOW.
    create_acls(broker.bootstrap, [
        allow(ResourceType.TOPIC, topic, ResourcePatternType.LITERAL, AclOperation.WRITE, "User:alice",
              AclPermissionType.DENY),
    ])
    assert produce_error(alice, topic) == KafkaError.TOPIC_AUTHORIZATION_FAILED
    assert "authorization denied" in broker.log_text() and "User:alice" in broker.log_text()


def consume_with_group(conf: dict, topic: str, group: str, count: int) -> list[bytes]:
    """Reads `count` records of `topic` through `group` and commits them."""
    c = Consumer({**conf, "group.id": group, "auto.offset.reset": "earliest", "enable.auto.commit": False})
    c.subscribe([topic])
    seen: list[bytes] = []
    try:
        def got_all():
            m = c.poll(0.5)
            if m is not None:
                assert not m.error(), f"consume error: {m.error()}"
                seen.append(m.value())
            return len(seen) >= count
        wait_until(got_all, 30, what=f"{count} records of {topic}")
        committed = c.commit(asynchronous=False)
        assert all(tp.error is None for tp in committed), committed
    finally:
        c.close()
    return seen


def test_kafka_python_sees_the_authorization_errors_and_works_with_acls(spate_factory):
    from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer
    from kafka.errors import GroupAuthorizationFailedError, TopicAuthorizationFailedError

    broker, inside = start(spate_factory)
    create_user(broker.bootstrap, "carol", "carol-secret")
    sasl = {
        "bootstrap_servers": inside,
        "security_protocol": "SASL_PLAINTEXT",
        "sasl_mechanism": "SCRAM-SHA-512",
        "sasl_plain_username": "carol",
        "sasl_plain_password": "carol-secret",
    }
    topic = unique("team-a-events")
    create_topic(broker.bootstrap, topic)

    # kafka-python 3 is idempotent by default, and an idempotent producer without WRITE on any
    # topic fails for good at InitProducerId (CLUSTER_AUTHORIZATION_FAILED); this one is not.
    producer = KafkaProducer(acks="all", max_block_ms=10_000, enable_idempotence=False, **sasl)
    with pytest.raises(TopicAuthorizationFailedError):
        producer.send(topic, b"refused").get(timeout=30)
    producer.close()
    group = unique("team-a-readers")
    consumer = KafkaConsumer(group_id=group, auto_offset_reset="earliest", **sasl)
    consumer.subscribe([topic])
    with pytest.raises((GroupAuthorizationFailedError, TopicAuthorizationFailedError)):
        consumer.poll(timeout_ms=10_000)
        consumer.poll(timeout_ms=10_000)
    consumer.close()

    prefixed = ResourcePatternType.PREFIXED
    create_acls(broker.bootstrap, [
        allow(ResourceType.TOPIC, "team-a-", prefixed, AclOperation.ALL, "User:carol"),
        allow(ResourceType.GROUP, "team-a-", prefixed, AclOperation.READ, "User:carol"),
    ])
    producer = KafkaProducer(acks="all", **sasl)
    for i in range(3):
        producer.send(topic, f"c{i}".encode()).get(timeout=30)
    producer.close()
    consumer = KafkaConsumer(topic, group_id=group, auto_offset_reset="earliest", consumer_timeout_ms=10_000,
                             enable_auto_commit=False, **sasl)
    assert [m.value for m in consumer] == [b"c0", b"c1", b"c2"]
    consumer.commit()
    consumer.close()

    # Topic administration needs its own operations: CREATE is not granted on the cluster.
    admin = KafkaAdminClient(**sasl)
    assert topic in admin.list_topics()
    with pytest.raises(TopicAuthorizationFailedError):
        admin.create_topics({"elsewhere": {"num_partitions": 1}})
    assert "elsewhere" not in admin.list_topics()
    admin.close()


def test_transactional_and_idempotent_producers_need_their_acls(spate_factory):
    broker, inside = start(spate_factory)
    create_user(broker.bootstrap, "dave", "dave-secret")
    dave = sasl_conf(inside, "SASL_PLAINTEXT", "SCRAM-SHA-512", "dave", "dave-secret")
    settings = {k: v for k, v in dave.items() if k != "bootstrap.servers"}
    topic = unique("dave-tx")
    create_topic(broker.bootstrap, topic)
    create_acls(broker.bootstrap, [
        allow(ResourceType.TOPIC, topic, ResourcePatternType.LITERAL, AclOperation.WRITE, "User:dave"),
    ])

    # WRITE on a topic is enough for an idempotent producer (KIP-679).
    idempotent = producer(inside, acks="all", **settings, **{"enable.idempotence": True})
    produce_all(idempotent, topic, [{"value": b"once"}])

    transactional_id = unique("dave-txn")
    tx = producer(inside, **settings, **{"transactional.id": transactional_id})
    with pytest.raises(Exception) as refused:
        tx.init_transactions(15)
    assert refused.value.args[0].code() == KafkaError.TRANSACTIONAL_ID_AUTHORIZATION_FAILED

    create_acls(broker.bootstrap, [
        allow(ResourceType.TRANSACTIONAL_ID, "dave-", ResourcePatternType.PREFIXED, AclOperation.WRITE, "User:dave"),
    ])
    tx = producer(inside, **settings, **{"transactional.id": transactional_id})
    tx.init_transactions(30)
    tx.begin_transaction()
    tx.produce(topic, b"in a transaction")
    tx.commit_transaction(30)


def test_the_credentials_topic_is_not_readable_without_being_a_super_user(spate_factory):
    # Authorisation off: every other topic is open, the credentials topic is not.
    broker = spate_factory()
    create_user(broker.bootstrap, "erin", "erin-secret")
    c = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": unique("snoop"),
                  "auto.offset.reset": "earliest", "enable.partition.eof": False})
    c.assign([TopicPartition("__user_credentials", 0, 0)])
    try:
        def refused():
            m = c.poll(0.5)
            assert m is None or m.error() is not None, "a credential record was served"
            return m is not None and m.error().code() == KafkaError.TOPIC_AUTHORIZATION_FAILED
        wait_until(refused, 30, what="TOPIC_AUTHORIZATION_FAILED on __user_credentials")
    finally:
        c.close()


def test_the_audit_topic_holds_denials_authentications_and_admin_changes(spate_factory):
    from test_sasl import auth_error

    broker, inside = start(spate_factory)
    create_user(broker.bootstrap, "frank", "frank-secret")
    frank = sasl_conf(inside, "SASL_PLAINTEXT", "SCRAM-SHA-512", "frank", "frank-secret")
    topic = unique("audited")
    create_topic(broker.bootstrap, topic)
    assert produce_error(frank, topic) == KafkaError.TOPIC_AUTHORIZATION_FAILED
    auth_error(sasl_conf(inside, "SASL_PLAINTEXT", "SCRAM-SHA-512", "frank", "wrong"))

    def denial(e):
        return (e["type"] == "io.spate.kafka/authorization" and e["data"]["principal"] == "User:frank"
                and e["subject"] == f"TOPIC:{topic}" and e["data"]["operation"] in ("WRITE", "DESCRIBE")
                and e["data"]["granted"] is False)

    def failed_login(e):
        return (e["type"] == "io.spate.kafka/authentication" and e["data"]["principal"] == "User:frank"
                and e["data"]["granted"] is False and e["data"]["listener"] == "INSIDE")

    def login(e):
        return (e["type"] == "io.spate.kafka/authentication" and e["data"]["principal"] == "User:frank"
                and e["data"]["granted"] is True)

    def created(e):
        return (e["type"] == "io.spate.kafka/admin" and e["subject"] == f"TOPIC:{topic}"
                and e["data"]["operation"] == "CREATE" and e["data"]["principal"] == SUPER)

    def user_changed(e):
        return e["type"] == "io.spate.kafka/admin" and e["subject"] == "USER:frank"

    def garbage(e):
        return (e["type"] == "io.spate.kafka/authentication" and e["data"]["method"] == "Connection"
                and e["data"]["granted"] is False and "frame" in e["data"].get("detail", ""))

    # A malformed frame closes the connection with an audit record too.
    import socket
    host, port = broker.bootstrap.rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(b"\x7f\xff\xff\xff")  # a 2 GiB frame
        assert sock.recv(1) == b"", "the broker closes the connection"

    checks = [denial, failed_login, login, created, user_changed, garbage]
    events = audit_events(broker.bootstrap, lambda es: all(any(check(e) for e in es) for check in checks))
    sample = next(e for e in events if denial(e))
    assert sample["specversion"] == "1.0" and sample["source"].startswith("spate://")
    assert sample["data"]["method"] in ("Produce", "Metadata")
    assert "no ACL" in sample["data"]["detail"] or "denied" in sample["data"]["detail"]

    # Clients cannot write to the audit topic.
    p = producer(broker.bootstrap, acks="all")
    outcome = produce_all(p, "_audit", [{"value": b"forged"}], expect_success=False)
    assert outcome.errors and not outcome.delivered
