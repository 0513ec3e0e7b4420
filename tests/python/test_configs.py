"""Kafka's configs end to end: every Kafka 4 topic config, min.insync.replicas, broker configs
changed at runtime (defaults, connection limits, log levels), and KIP-848 group configs, through
confluent-kafka's AdminClient and kafka-python's (for the resource types confluent-kafka lacks)."""

from __future__ import annotations

import socket
import time

import kafka_wire
from confluent_kafka import KafkaError
from confluent_kafka.admin import (
    AlterConfigOpType,
    ConfigEntry,
    ConfigResource,
    ConfigSource,
    NewTopic,
    ResourceType,
)
from kafka.admin import ConfigResource as KpConfigResource
from kafka.admin import ConfigResourceType, KafkaAdminClient

from helpers import (
    admin,
    consumer,
    create_topic,
    describe,
    future_error_code,
    produce_all,
    producer,
    unique,
    wait_until,
    watermarks,
)

# `kafka-configs --describe --all` of a topic on Apache Kafka 4.0 (every name=value pair of its
# output, defaults of a fresh topic), applied to Spate as a Java user's config set would be.
KAFKA_4_TOPIC_CONFIGS = {
    "cleanup.policy": "delete",
    "compression.gzip.level": "-1",
    "compression.lz4.level": "9",
    "compression.type": "producer",
    "compression.zstd.level": "3",
    "delete.retention.ms": "86400000",
    "file.delete.delay.ms": "60000",
    "flush.messages": "9223372036854775807",
    "flush.ms": "9223372036854775807",
    "follower.replication.throttled.replicas": "",
    "index.interval.bytes": "4096",
    "leader.replication.throttled.replicas": "",
    "local.retention.bytes": "-2",
    "local.retention.ms": "-2",
    "max.compaction.lag.ms": "9223372036854775807",
    "max.message.bytes": "1048588",
    "message.timestamp.after.max.ms": "3600000",
    "message.timestamp.before.max.ms": "9223372036854775807",
    "message.timestamp.type": "CreateTime",
    "min.cleanable.dirty.ratio": "0.5",
    "min.compaction.lag.ms": "0",
    "min.insync.replicas": "1",
    "preallocate": "false",
    "remote.log.copy.disable": "false",
    "remote.log.delete.on.disable": "false",
    "remote.storage.enable": "false",
    "retention.bytes": "-1",
    "retention.ms": "604800000",
    "segment.bytes": "1073741824",
    "segment.index.bytes": "10485760",
    "segment.jitter.ms": "0",
    "segment.ms": "604800000",
    "unclean.leader.election.enable": "false",
}

API_DESCRIBE_CONFIGS = 32
API_INCREMENTAL_ALTER_CONFIGS = 44
SET, DELETE = 0, 1

# What Spate cannot act on (one node, no tiered storage, batches stored as sent).
NO_EFFECT = {
    "compression.gzip.level",
    "compression.lz4.level",
    "compression.type",
    "compression.zstd.level",
    "file.delete.delay.ms",
    "follower.replication.throttled.replicas",
    "leader.replication.throttled.replicas",
    "local.retention.bytes",
    "local.retention.ms",
    "preallocate",
    "remote.log.copy.disable",
    "remote.log.delete.on.disable",
    "remote.storage.enable",
    "segment.index.bytes",
    "segment.jitter.ms",
    "unclean.leader.election.enable",
}


def source_of(entry: ConfigEntry) -> ConfigSource:
    return entry.source if isinstance(entry.source, ConfigSource) else ConfigSource(entry.source)


def raw_alter(bootstrap: str, resource_type: int, name: str, *ops) -> tuple[int, str | None]:
    """IncrementalAlterConfigs v0 over a raw socket, for the cluster-default broker resource
    ("", which librdkafka refuses to send): (error code, message)."""
    configs = [
        kafka_wire.string(n) + kafka_wire.i8(op) + kafka_wire.string(v) for n, v, op in ops
    ]
    body = kafka_wire.array(
        [kafka_wire.i8(resource_type) + kafka_wire.string(name) + kafka_wire.array(configs)]
    ) + kafka_wire.i8(0)
    with kafka_wire.RawConnection(bootstrap) as conn:
        r = conn.recv_response(conn.send_request(API_INCREMENTAL_ALTER_CONFIGS, 0, body))
    r.i32()
    assert r.i32() == 1
    return r.i16(), r.string()


def describe_with_docs(
    bootstrap: str, topic: str, resource_type: int = 2
) -> dict[str, tuple[str | None, int, str | None]]:
    """DescribeConfigs v3 with include_documentation (neither confluent-kafka nor kafka-python
    asks for it): name -> (value, source, documentation)."""
    body = (
        kafka_wire.array([kafka_wire.i8(resource_type) + kafka_wire.string(topic) + kafka_wire.i32(-1)])
        + kafka_wire.i8(0)  # include_synonyms
        + kafka_wire.i8(1)  # include_documentation
    )
    with kafka_wire.RawConnection(bootstrap) as conn:
        r = conn.recv_response(conn.send_request(API_DESCRIBE_CONFIGS, 3, body))
    r.i32()  # throttle_time_ms
    assert r.i32() == 1
    error_code, error_message = r.i16(), r.string()
    assert error_code == 0, error_message
    r.i8()
    r.string()
    configs = {}
    for _ in range(r.i32()):
        name, value = r.string(), r.string()
        r.i8()  # read_only
        source = r.i8()
        r.i8()  # is_sensitive
        for _ in range(r.i32()):
            r.string(), r.string(), r.i8()
        r.i8()  # config_type
        configs[name] = (value, source, r.string())
    return configs


def alter(bootstrap: str, resource_type: ResourceType, name: str, *ops):
    resource = ConfigResource(
        resource_type,
        name,
        incremental_configs=[ConfigEntry(n, v, incremental_operation=op) for n, v, op in ops],
    )
    return admin(bootstrap).incremental_alter_configs([resource], request_timeout=30)[resource]


def describe_broker(bootstrap: str, name: str = "1") -> dict[str, ConfigEntry]:
    resource = ConfigResource(ResourceType.BROKER, name)
    return admin(bootstrap).describe_configs([resource], request_timeout=30)[resource].result(30)


def kafka_python_admin(bootstrap: str) -> KafkaAdminClient:
    return KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=30000)


# --- every Kafka 4 topic config ----------------------------------------------------------------


def test_every_kafka_4_topic_config_is_accepted_stored_and_described(spate):
    topic = unique("kafka4")
    create_topic(spate.bootstrap, topic, 1, KAFKA_4_TOPIC_CONFIGS)
    entries = describe_with_docs(spate.bootstrap, topic)
    for name, value in KAFKA_4_TOPIC_CONFIGS.items():
        assert name in entries, f"{name} is not described"
        described, source, doc = entries[name]
        assert described == value, (name, described)
        assert source == ConfigSource.DYNAMIC_TOPIC_CONFIG.value, name
        assert (doc or "").startswith("no effect on Spate") == (name in NO_EFFECT), (name, doc)

    # The same set through IncrementalAlterConfigs on a fresh topic, with other values.
    other = unique("kafka4-alter")
    create_topic(spate.bootstrap, other, 1)
    changed = dict(KAFKA_4_TOPIC_CONFIGS)
    changed.update({
        "compression.gzip.level": "9",
        "compression.lz4.level": "17",
        "compression.zstd.level": "-5",
        "leader.replication.throttled.replicas": "0:1",
        "follower.replication.throttled.replicas": "*",
        "local.retention.ms": "3600000",
        "local.retention.bytes": "-1",
        "preallocate": "true",
        "segment.index.bytes": "4096",
        "remote.log.copy.disable": "true",
    })
    alter(
        spate.bootstrap,
        ResourceType.TOPIC,
        other,
        *[(n, v, AlterConfigOpType.SET) for n, v in changed.items()],
    ).result(30)
    entries = describe(spate.bootstrap, other)
    for name, value in changed.items():
        assert entries[name].value == value, (name, entries[name].value)

    # A restart keeps them all.
    spate.restart()
    entries = describe(spate.bootstrap, other)
    for name, value in changed.items():
        assert entries[name].value == value, (name, entries[name].value)


def test_kafka_4_validation_of_topic_configs(spate):
    topic = unique("kafka4-bad")
    create_topic(spate.bootstrap, topic, 1, {"retention.ms": "3600000"})
    for name, value in [
        ("segment.bytes", "1000"),  # Kafka 4: at least 1 MiB
        ("compression.gzip.level", "0"),
        ("compression.lz4.level", "18"),
        ("compression.zstd.level", "23"),
        ("local.retention.ms", "-3"),
        ("leader.replication.throttled.replicas", "zero:one"),
        ("message.downconversion.enable", "true"),  # removed in Kafka 4
        ("message.timestamp.difference.max.ms", "1000"),  # removed in Kafka 4
        ("remote.storage.enable", "true"),  # no tiered storage: refused as Kafka refuses it
    ]:
        future = alter(spate.bootstrap, ResourceType.TOPIC, topic, (name, value, AlterConfigOpType.SET))
        code = future_error_code(future)
        assert code == KafkaError.INVALID_CONFIG, f"{name}={value}: {KafkaError(code)}"
    assert describe(spate.bootstrap, topic)["retention.ms"].value == "3600000"


# --- min.insync.replicas -----------------------------------------------------------------------


def test_min_insync_replicas_above_one_fails_acks_all(spate):
    topic = unique("min-isr")
    create_topic(spate.bootstrap, topic, 1, {"min.insync.replicas": "2"})
    errors = []

    def report(err, _msg):
        errors.append(err)

    p = producer(spate.bootstrap, **{"acks": "all", "retries": 0, "message.timeout.ms": 10000})
    p.produce(topic, b"refused", partition=0, on_delivery=report)
    p.flush(30)
    assert len(errors) == 1 and errors[0] is not None, errors
    assert errors[0].code() == KafkaError.NOT_ENOUGH_REPLICAS, errors[0]
    assert watermarks(spate.bootstrap, topic) == (0, 0), "nothing was appended"

    # acks=1 and acks=0 do not wait for replicas. acks=1 is answered before the fsync, and the
    # high watermark is the durable mark, so it follows a moment later.
    produce_all(producer(spate.bootstrap, acks="1"), topic, [{"value": b"one", "partition": 0}])
    wait_until(lambda: watermarks(spate.bootstrap, topic)[1] == 1, 30, what="the acks=1 record durable")


# --- broker configs at runtime -----------------------------------------------------------------


def test_log_retention_ms_default_changes_at_runtime_and_survives_a_restart(spate_factory):
    broker = spate_factory(args=["--retention-check-interval-ms", "100"])
    topic = unique("dyn-retention")
    create_topic(broker.bootstrap, topic, 1, {"internal.segment.bytes": "4096"})
    assert describe(broker.bootstrap, topic)["retention.ms"].value == "604800000"

    # kafka-configs --entity-type brokers --entity-default (librdkafka cannot name "").
    assert raw_alter(broker.bootstrap, 4, "", ("log.retention.ms", "60000", SET)) == (0, None)
    entry = describe(broker.bootstrap, topic)["retention.ms"]
    assert entry.value == "60000"
    assert source_of(entry) == ConfigSource.DYNAMIC_DEFAULT_BROKER_CONFIG
    default = describe_with_docs(broker.bootstrap, "", resource_type=4)
    assert default["log.retention.ms"][:2] == ("60000", ConfigSource.DYNAMIC_DEFAULT_BROKER_CONFIG.value)
    per_broker = describe_broker(broker.bootstrap)["log.retention.ms"]
    assert per_broker.value == "60000" and not per_broker.is_read_only

    # Retention uses it: hour-old records go, the fresh one stays.
    old = int(time.time() * 1000) - 3_600_000
    p = producer(broker.bootstrap, **{"linger.ms": 0, "batch.size": 1000})
    produce_all(p, topic, [{"value": b"x" * 500, "timestamp": old, "partition": 0}] * 20)
    produce_all(p, topic, [{"value": b"fresh", "partition": 0}])
    wait_until(lambda: watermarks(broker.bootstrap, topic)[0] > 0, 60,
               what="retention by the new broker default")

    # This broker's own value wins over the cluster default.
    alter(broker.bootstrap, ResourceType.BROKER, "1", ("log.retention.ms", "120000", AlterConfigOpType.SET)).result(30)
    entry = describe(broker.bootstrap, topic)["retention.ms"]
    assert entry.value == "120000"
    assert source_of(entry) == ConfigSource.DYNAMIC_BROKER_CONFIG

    broker.restart()
    assert describe(broker.bootstrap, topic)["retention.ms"].value == "120000"
    assert describe_with_docs(broker.bootstrap, "", resource_type=4)["log.retention.ms"][0] == "60000"


def test_invalid_and_read_only_broker_configs_are_refused_whole(spate):
    before = describe_broker(spate.bootstrap)
    # Kafka answers INVALID_REQUEST for broker config changes it cannot apply (KAFKA-13609).
    for ops in [
        [("log.retention.ms", "soon", SET)],
        [("log.retention.ms", "1000", SET), ("auto.create.topics.enable", "false", SET)],
        [("log.retention.hours", "1", SET)],
        [("log.segment.bytes", "1000", SET)],
        [("max.connections.per.ip", "-1", SET)],
    ]:
        code, message = raw_alter(spate.bootstrap, 4, "", *ops)
        assert code == KafkaError.INVALID_REQUEST, (ops, code, message)
    code, message = raw_alter(spate.bootstrap, 4, "", ("auto.create.topics.enable", "false", SET))
    assert message == "Cannot update these configs dynamically: Set(auto.create.topics.enable)"
    code, message = raw_alter(spate.bootstrap, 4, "7", ("log.retention.ms", "1", SET))
    assert (code, message) == (KafkaError.INVALID_REQUEST, "Unexpected broker id, expected 1, but received 7")
    after = describe_broker(spate.bootstrap)
    assert after["log.retention.ms"].value == before["log.retention.ms"].value
    assert after["auto.create.topics.enable"].is_read_only
    assert describe_with_docs(spate.bootstrap, "", resource_type=4) == {}, "nothing was stored"


def test_max_connections_per_ip_applies_to_new_connections(spate_factory):
    # Without the in-process Connect worker, whose own connections come from 127.0.0.1 too.
    spate = spate_factory(connect_listen="off")
    first = [socket.create_connection(tuple(spate.bootstrap.rsplit(":", 1))) for _ in range(2)]
    try:
        assert raw_alter(spate.bootstrap, 4, "", ("max.connections.per.ip", "4", SET)) == (0, None)
        assert describe_broker(spate.bootstrap)["max.connections.per.ip"].value == "4"
        # The admin client holds connections too; open more until one is refused.
        extra = []
        refused = False
        for _ in range(6):
            s = socket.create_connection(tuple(spate.bootstrap.rsplit(":", 1)))
            s.settimeout(5)
            try:
                closed = s.recv(1) == b""
            except TimeoutError:
                closed = False
            extra.append(s)
            if closed:
                refused = True
                break
        assert refused, "a connection beyond max.connections.per.ip was accepted"
        for s in extra:
            s.close()
        # The first connections still work: an ApiVersions request on one of them answers.
        payload = kafka_wire.request_header_v1(kafka_wire.API_API_VERSIONS, 0, 1, "t")
        first[0].sendall(kafka_wire.frame(payload))
        first[0].settimeout(10)
        assert len(first[0].recv(4)) == 4, "an early connection stopped working"
        spate.allow_errors()
    finally:
        for s in first:
            s.close()

    # The broker notices the closed sockets as it reads them; until then a new one may still
    # be over the limit, so the reset is retried until a connection gets through.
    def reset() -> bool:
        try:
            return raw_alter(spate.bootstrap, 4, "", ("max.connections.per.ip", None, DELETE)) == (0, None)
        except (kafka_wire.ConnectionClosed, ConnectionError):
            return False

    wait_until(reset, 30, what="the limit removed over a new connection")


def test_log_levels_change_at_runtime(spate):
    client = kafka_python_admin(spate.bootstrap)
    try:
        logger = KpConfigResource(ConfigResourceType.BROKER_LOGGER, "1")
        loggers = client.describe_configs([logger], config_filter="all")["broker_logger"]["1"]
        assert loggers["root"]["value"] == "INFO", loggers["root"]
        marker = "spate_broker::groups"
        assert " DEBUG spate_broker::groups" not in spate.log_text()
        result = client.alter_configs(
            [KpConfigResource(ConfigResourceType.BROKER_LOGGER, "1", {marker: "DEBUG"})],
            raise_on_unknown=False,
        )
        assert result["broker_logger"]["1"] == "OK", result
        loggers = client.describe_configs([logger], config_filter="all")["broker_logger"]["1"]
        assert loggers[marker]["value"] == "DEBUG"
        # The broker now logs DEBUG lines of that module (a KIP-848 heartbeat makes one).
        group = unique("debug-group")
        c = consumer(spate.bootstrap, **{"group.id": group, "group.protocol": "consumer"})
        c.subscribe([unique("none")])
        c.poll(1.0)
        c.close()
        wait_until(lambda: " DEBUG spate_broker::groups" in spate.log_text(), 30,
                   what="a DEBUG line from spate_broker::groups")
        bad = client.alter_configs(
            [KpConfigResource(ConfigResourceType.BROKER_LOGGER, "1", {marker: "LOUD"})],
            raise_on_unknown=False,
        )
        assert "InvalidConfiguration" in bad["broker_logger"]["1"], bad
    finally:
        client.close()


# --- group configs -----------------------------------------------------------------------------


def test_group_configs_set_the_kip848_heartbeat_interval(spate):
    group = unique("group-cfg")
    client = kafka_python_admin(spate.bootstrap)
    try:
        resource = KpConfigResource(
            ConfigResourceType.GROUP, group, {"consumer.heartbeat.interval.ms": "2500"}
        )
        assert client.alter_configs([resource])["group"][group] == "OK"
        described = client.describe_configs(
            [KpConfigResource(ConfigResourceType.GROUP, group)], config_filter="all"
        )["group"][group]
        assert described["consumer.heartbeat.interval.ms"]["value"] == "2500"
        assert described["consumer.session.timeout.ms"]["value"] == "45000"
        bad = client.alter_configs([
            KpConfigResource(ConfigResourceType.GROUP, group, {"consumer.session.timeout.ms": "1000"})
        ])
        assert "InvalidConfiguration" in bad["group"][group], bad
    finally:
        client.close()

    # A KIP-848 member is told the group's interval.

    topic = unique("group-cfg-topic")
    create_topic(spate.bootstrap, topic, 1)
    client = kafka_python_admin(spate.bootstrap)
    try:
        client.alter_configs(
            [KpConfigResource(ConfigResourceType.BROKER_LOGGER, "1", {"spate_broker::groups": "DEBUG"})],
            raise_on_unknown=False,
        )
    finally:
        client.close()
    c = consumer(spate.bootstrap, **{"group.id": group, "group.protocol": "consumer"})
    try:
        c.subscribe([topic])
        wait_until(lambda: (c.poll(0.2), c.assignment())[1], 60, what="an assignment")
    finally:
        c.close()
    told = f"group={group}"
    wait_until(
        lambda: any(told in line and "heartbeat_interval_ms=2500" in line for line in spate.log_text().splitlines()),
        30,
        what="the member told heartbeat_interval_ms=2500",
    )
    spate.restart()
    client = kafka_python_admin(spate.bootstrap)
    try:
        described = client.describe_configs(
            [KpConfigResource(ConfigResourceType.GROUP, group)], config_filter="all"
        )["group"][group]
        assert described["consumer.heartbeat.interval.ms"]["value"] == "2500", "restart keeps it"
    finally:
        client.close()
