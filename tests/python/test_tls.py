"""SSL listeners with real clients: TLS, mutual TLS, several listeners at once.

A broker runs a PLAINTEXT listener and an SSL listener side by side, with certificates made by
`openssl` for the test: a CA, the server's certificate for 127.0.0.1, and a client certificate
for `CN=alice,O=acme`. confluent-kafka and kafka-python produce and consume over TLS; Metadata
on the SSL listener must advertise the SSL address (or clients would reconnect in plaintext).
With client certificates required, a client without one is refused while plaintext clients
carry on; TLS spoken to the plaintext port and plaintext spoken to the TLS port are each closed
with one clear log line.
"""

from __future__ import annotations

import re
import socket
import subprocess
from pathlib import Path

import pytest
from confluent_kafka import KafkaException, Producer
from confluent_kafka.admin import AdminClient

from helpers import group_round_trip, kafka_python_round_trip, unique, wait_until

LISTENERS = re.compile(r"listeners=(\S+)")


def openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


@pytest.fixture(scope="module")
def pki(tmp_path_factory) -> dict[str, str]:
    """A CA, a server certificate for 127.0.0.1/localhost and a client certificate."""
    d = tmp_path_factory.mktemp("pki")
    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=Spate Test CA",
            "-keyout", "ca.key", "-out", "ca.pem", cwd=d)
    # Extensions make X.509 v3 certificates, which webpki (rustls) requires.
    (d / "server.ext").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n")
    (d / "client.ext").write_text("extendedKeyUsage=clientAuth\n")
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=localhost", "-keyout", "server.key",
            "-out", "server.csr", cwd=d)
    openssl("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
            "-days", "2", "-extfile", "server.ext", "-out", "server.pem", cwd=d)
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/O=acme/CN=alice", "-keyout", "client.key",
            "-out", "client.csr", cwd=d)
    openssl("x509", "-req", "-in", "client.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
            "-days", "2", "-extfile", "client.ext", "-out", "client.pem", cwd=d)
    return {name: str(d / name) for name in ["ca.pem", "server.pem", "server.key", "client.pem", "client.key"]}


def start_with_ssl(spate_factory, pki, client_auth: str):
    broker = spate_factory(
        args=[
            "--listener", "SECURE=SSL://127.0.0.1:0",
            "--tls-cert", pki["server.pem"],
            "--tls-key", pki["server.key"],
            "--tls-client-ca", pki["ca.pem"],
            "--tls-client-auth", client_auth,
            "--log", "info,spate_server::kafka=debug",
        ]
    )
    match = LISTENERS.search(broker.log_text())
    assert match, "the ready line lists the listeners"
    listeners = dict(entry.split(":", 1) for entry in match.group(1).split(","))
    assert listeners["PLAINTEXT"].startswith("PLAINTEXT://")
    assert listeners["SECURE"].startswith("SSL://")
    return broker, listeners["SECURE"].removeprefix("SSL://")


def ssl_conf(pki, address: str, with_cert: bool) -> dict:
    conf = {
        "bootstrap.servers": address,
        "security.protocol": "SSL",
        "ssl.ca.location": pki["ca.pem"],
    }
    if with_cert:
        conf["ssl.certificate.location"] = pki["client.pem"]
        conf["ssl.key.location"] = pki["client.key"]
    return conf


def secrets(count: int) -> list[bytes]:
    return [f"secret-{i}".encode() for i in range(count)]


def test_confluent_kafka_produces_and_consumes_over_mutual_tls(spate_factory, pki):
    broker, secure = start_with_ssl(spate_factory, pki, "required")
    conf = ssl_conf(pki, secure, with_cert=True)
    # Metadata through the SSL listener advertises the SSL address.
    metadata = AdminClient(conf).list_topics(timeout=15)
    assert [f"{b.host}:{b.port}" for b in metadata.brokers.values()] == [secure]
    topic = unique("tls")
    assert group_round_trip(conf, topic, secrets(20)) == secrets(20)
    # The certificate's subject is the principal, in Kafka's RFC 2253 form.
    assert "principal=User:CN=alice,O=acme" in broker.log_text()
    # The plaintext listener serves at the same time, and advertises its own address.
    plain = AdminClient({"bootstrap.servers": broker.bootstrap}).list_topics(timeout=15)
    assert [f"{b.host}:{b.port}" for b in plain.brokers.values()] == [broker.bootstrap]
    assert topic in plain.topics


def test_kafka_python_over_mutual_tls(spate_factory, pki):
    broker, secure = start_with_ssl(spate_factory, pki, "required")
    topic = unique("tls-kp")
    tls = {
        "bootstrap_servers": secure,
        "security_protocol": "SSL",
        "ssl_cafile": pki["ca.pem"],
        "ssl_certfile": pki["client.pem"],
        "ssl_keyfile": pki["client.key"],
    }
    values = [f"kp-{i}".encode() for i in range(5)]
    assert kafka_python_round_trip(tls, topic, values) == values
    assert "principal=User:CN=alice,O=acme" in broker.log_text()


def test_required_client_certificates_refuse_clients_without_one(spate_factory, pki):
    broker, secure = start_with_ssl(spate_factory, pki, "required")
    admin = AdminClient({**ssl_conf(pki, secure, with_cert=False), "socket.timeout.ms": 5000})
    with pytest.raises(KafkaException):
        admin.list_topics(timeout=5)
    wait_until(lambda: "TLS handshake failed" in broker.log_text(), 15, what="the refusal logged")
    # Everyone else is unaffected.
    plain = {"bootstrap.servers": broker.bootstrap}
    assert group_round_trip(plain, unique("plain"), secrets(3)) == secrets(3)


def test_tls_to_the_plaintext_port_and_plaintext_to_the_tls_port_are_closed_clearly(spate_factory, pki):
    broker, secure = start_with_ssl(spate_factory, pki, "none")
    # A TLS client hello on the plaintext listener.
    host, port = broker.bootstrap.rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=10) as s:
        s.sendall(bytes.fromhex("16030100c4010000c00303") + b"\x00" * 64)
        assert s.recv(16) == b"", "the broker closes the connection"
    wait_until(
        lambda: "a TLS handshake arrived on the listener PLAINTEXT, which does not use TLS" in broker.log_text(),
        15,
        what="the plaintext listener's log line",
    )
    # A Kafka request in plaintext on the SSL listener.
    host, port = secure.rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=10) as s:
        s.sendall(b"\x00\x00\x00\x0c\x00\x12\x00\x00\x00\x00\x00\x01\x00\x00\x00\x00")
        # rustls may send a TLS alert first; then the connection must close.
        received = b""
        while chunk := s.recv(4096):
            received += chunk
        assert not received.startswith(b"\x00\x00"), "no Kafka response over a TLS port"
    wait_until(lambda: "TLS handshake failed" in broker.log_text(), 15, what="the SSL listener's log line")
    conf = ssl_conf(pki, secure, with_cert=False)
    assert group_round_trip(conf, unique("after"), secrets(2)) == secrets(2)


def test_a_connection_flood_from_one_address_hits_its_limit_while_others_keep_producing(spate_factory):
    """Kafka's max.connections.per.ip: a client opening hundreds of connections from 127.0.0.2
    is cut off at the limit; a producer on 127.0.0.1 keeps producing throughout."""
    broker = spate_factory(args=["--max-connections-per-ip", "20"])
    host, port = broker.bootstrap.rsplit(":", 1)
    producer = Producer({"bootstrap.servers": broker.bootstrap, "acks": "all", "linger.ms": 0})
    topic = unique("flood")
    producer.produce(topic, b"before")
    assert producer.flush(30) == 0

    flood: list[socket.socket] = []
    closed = 0
    try:
        for _ in range(300):
            s = socket.socket()
            s.bind(("127.0.0.2", 0))
            s.connect((host, int(port)))
            flood.append(s)
        # Each flood connection is either held open (20 of them) or closed by the broker.
        open_ones = list(flood)

        def all_but_limit_closed() -> bool:
            nonlocal closed
            for s in list(open_ones):
                s.setblocking(False)
                try:
                    if s.recv(1) == b"":
                        closed += 1
                        open_ones.remove(s)
                except BlockingIOError:
                    pass
            return closed >= 300 - 20

        wait_until(all_but_limit_closed, 15, what="the broker closing connections past the limit")
        for i in range(50):
            producer.produce(topic, f"during-{i}".encode())
        assert producer.flush(30) == 0, "the well-behaved producer is unaffected"
    finally:
        for s in flood:
            s.close()
    assert closed == 300 - 20
    wait_until(
        lambda: "connections refused: max-connections-per-ip reached" in broker.log_text(),
        15,
        what="the refusal logged",
    )
    refusals = broker.log_text().count("max-connections-per-ip reached")
    assert refusals < 10, f"refusals are logged at most once a second, got {refusals} lines"
