"""SASL with real clients: SCRAM-SHA-512 over TLS, SCRAM-SHA-256 and PLAIN without it.

Users are created the way Kafka operators do it: confluent-kafka's AdminClient sends
AlterUserScramCredentials (the password is salted and hashed by the client) over the internal
PLAINTEXT listener, and `spate user create` does the same. Clients then authenticate on
SASL_SSL and SASL_PLAINTEXT listeners; a wrong password and an unknown user fail with the same
message, requests before authentication close the connection, and credentials survive a
restart.
"""

from __future__ import annotations

import logging
import re
import socket
import time
import subprocess

import pytest
from confluent_kafka import KafkaException
from confluent_kafka.admin import (
    AdminClient,
    ScramCredentialInfo,
    ScramMechanism,
    UserScramCredentialUpsertion,
)

from conftest import spate_binary
from helpers import group_round_trip, kafka_python_round_trip, unique, wait_until
from test_kcat import kcat
from test_tls import pki  # noqa: F401  (the certificate fixture)

LISTENERS = re.compile(r"listeners=(\S+)")


def start(spate_factory, pki):  # noqa: F811
    broker = spate_factory(
        args=[
            "--listener", "SECURE=SASL_SSL://127.0.0.1:0",
            "--listener", "INSIDE=SASL_PLAINTEXT://127.0.0.1:0",
            "--tls-cert", pki["server.pem"],
            "--tls-key", pki["server.key"],
            "--sasl-mechanisms", "SCRAM-SHA-512,SCRAM-SHA-256,PLAIN",
        ]
    )
    return broker, listeners_of(broker)


def listeners_of(broker) -> dict[str, str]:
    lines = [m.group(1) for m in LISTENERS.finditer(broker.log_text())]
    entries = dict(entry.split(":", 1) for entry in lines[-1].split(","))
    return {name: url.split("://", 1)[1] for name, url in entries.items()}


def create_user(bootstrap: str, user: str, password: str, mechanism=ScramMechanism.SCRAM_SHA_512) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    futures = admin.alter_user_scram_credentials(
        [UserScramCredentialUpsertion(user, ScramCredentialInfo(mechanism, 8192), password.encode())]
    )
    for future in futures.values():
        future.result(timeout=30)


def sasl_conf(address: str, protocol: str, mechanism: str, user: str, password: str, pki=None) -> dict:  # noqa: F811
    conf = {
        "bootstrap.servers": address,
        "security.protocol": protocol,
        "sasl.mechanism": mechanism,
        "sasl.username": user,
        "sasl.password": password,
    }
    if pki is not None:
        conf["ssl.ca.location"] = pki["ca.pem"]
    return conf


def round_trip(conf: dict, count: int = 10) -> list[bytes]:
    """Produces v0, v1, ... to a new topic and reads them back through a group; returns what
    was read."""
    return group_round_trip(conf, unique("sasl"), [f"v{i}".encode() for i in range(count)])


def auth_error(conf: dict, expect: str = "Authentication failed") -> str:
    """Connects with `conf`, which must fail to authenticate; returns the client's error text."""
    errors: list[str] = []

    class Capture(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            errors.append(record.getMessage())

    # librdkafka reports some failures (OAUTHBEARER's) only in its log, not to error_cb.
    logger = logging.getLogger(unique("rdkafka"))
    logger.addHandler(Capture())
    logger.propagate = False
    admin = AdminClient({**conf, "error_cb": lambda e: errors.append(str(e)), "logger": logger})
    with pytest.raises(KafkaException):
        admin.list_topics(timeout=5)

    def failed() -> bool:
        admin.poll(0.2)  # serves error_cb
        return any(expect in e for e in errors)

    wait_until(failed, 15, what=f"an authentication error with {expect!r} (seen: {errors[-3:]})")
    return next(e for e in errors if expect in e)


def test_scram_sha_512_over_tls_with_confluent_kafka(spate_factory, pki):  # noqa: F811
    broker, listeners = start(spate_factory, pki)
    create_user(broker.bootstrap, "alice", "alice-secret")
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    info = admin.describe_user_scram_credentials(["alice"])["alice"].result(timeout=30)
    assert [(c.mechanism, c.iterations) for c in info.scram_credential_infos] == [
        (ScramMechanism.SCRAM_SHA_512, 8192)
    ]
    conf = sasl_conf(listeners["SECURE"], "SASL_SSL", "SCRAM-SHA-512", "alice", "alice-secret", pki)
    assert round_trip(conf) == [f"v{i}".encode() for i in range(10)]
    assert "principal=User:alice" in broker.log_text()

    # Wrong password and unknown user: the same answer, so nothing tells them apart.
    wrong = auth_error(sasl_conf(listeners["SECURE"], "SASL_SSL", "SCRAM-SHA-512", "alice", "nope", pki))
    unknown = auth_error(sasl_conf(listeners["SECURE"], "SASL_SSL", "SCRAM-SHA-512", "mallory", "nope", pki))
    strip = lambda e: re.sub(r"^.*?Authentication failed", "Authentication failed", e).split(" (after")[0]  # noqa: E731
    assert strip(wrong) == strip(unknown)
    assert "invalid credentials with SASL mechanism SCRAM-SHA-512" in strip(wrong)

    # Credentials survive a restart.
    broker.restart()
    listeners = listeners_of(broker)
    conf = sasl_conf(listeners["SECURE"], "SASL_SSL", "SCRAM-SHA-512", "alice", "alice-secret", pki)
    assert round_trip(conf, 3) == [b"v0", b"v1", b"v2"]


@pytest.mark.parametrize("mechanism", ["SCRAM-SHA-256", "SCRAM-SHA-512"])
def test_debians_kcat_logs_in_with_scram_over_sasl_plaintext_and_sasl_ssl(spate_factory, pki, mechanism):  # noqa: F811
    """Debian 12's kcat links librdkafka 2.0.2, which repeats the client nonce in the
    client-final message (fixed in librdkafka 2.6.1); Kafka accepts it since 3.8.1."""
    broker, listeners = start(spate_factory, pki)
    scram = ScramMechanism.SCRAM_SHA_256 if mechanism == "SCRAM-SHA-256" else ScramMechanism.SCRAM_SHA_512
    create_user(broker.bootstrap, "carol", "carol-secret", scram)
    for name, protocol in (("INSIDE", "SASL_PLAINTEXT"), ("SECURE", "SASL_SSL")):
        topic = unique(f"kcat-{protocol.lower()}")
        conf = [
            "-b", listeners[name],
            "-X", f"security.protocol={protocol}",
            "-X", f"sasl.mechanisms={mechanism}",
            "-X", "sasl.username=carol",
            "-X", "sasl.password=carol-secret",
        ]
        if protocol == "SASL_SSL":
            conf += ["-X", f"ssl.ca.location={pki['ca.pem']}"]
        kcat(["-P", "-t", topic, *conf], stdin=b"one\ntwo\n")
        out = kcat(["-C", "-t", topic, "-o", "beginning", "-e", "-q", *conf]).stdout
        assert out.split() == [b"one", b"two"], out
    # And a wrong password is still refused.
    bad = kcat(["-L", "-b", listeners["INSIDE"], "-X", "security.protocol=SASL_PLAINTEXT",
                "-X", f"sasl.mechanisms={mechanism}", "-X", "sasl.username=carol",
                "-X", "sasl.password=wrong", "-m", "5"], check=False)
    assert bad.returncode != 0
    assert b"Authentication failed" in bad.stderr, bad.stderr


def test_spate_user_create_and_scram_sha_256_and_plain_with_kafka_python(spate_factory, pki):  # noqa: F811

    broker, listeners = start(spate_factory, pki)
    created = subprocess.run(
        [str(spate_binary()), "user", "create", "bob", "--mechanism", "SCRAM-SHA-256", "--password-stdin",
         "--brokers", broker.bootstrap],
        input=b"bob-secret\n",
        capture_output=True,
        timeout=60,
    )
    assert created.returncode == 0, created.stderr.decode()
    listed = subprocess.run(
        [str(spate_binary()), "user", "list", "--brokers", broker.bootstrap], capture_output=True, timeout=60
    )
    assert listed.stdout.decode().split("\n")[0].startswith("bob\tSCRAM-SHA-256 (iterations 8192)")

    sasl = {
        "bootstrap_servers": listeners["INSIDE"],
        "security_protocol": "SASL_PLAINTEXT",
        "sasl_mechanism": "SCRAM-SHA-256",
        "sasl_plain_username": "bob",
        "sasl_plain_password": "bob-secret",
    }
    values = [b"b0", b"b1", b"b2"]
    assert kafka_python_round_trip(sasl, unique("kp-sasl"), values) == values

    # PLAIN checks the password against the same credentials.
    conf = sasl_conf(listeners["INSIDE"], "SASL_PLAINTEXT", "PLAIN", "bob", "bob-secret")
    assert round_trip(conf, 2) == [b"v0", b"v1"]
    wrong = auth_error(sasl_conf(listeners["INSIDE"], "SASL_PLAINTEXT", "PLAIN", "bob", "wrong"))
    assert "Invalid username or password" in wrong


def test_requests_before_authentication_close_the_connection(spate_factory, pki):  # noqa: F811
    broker, listeners = start(spate_factory, pki)
    host, port = listeners["INSIDE"].rsplit(":", 1)
    # Metadata v1, correlation id 7, client id null, all topics: not allowed before SASL.
    metadata = bytes.fromhex("0003" "0001" "00000007" "ffff" "ffffffff")
    with socket.create_connection((host, int(port)), timeout=10) as s:
        s.sendall(len(metadata).to_bytes(4, "big") + metadata)
        assert s.recv(64) == b"", "closed without an answer"
    wait_until(
        lambda: "unexpected Metadata request before SASL authentication" in broker.log_text(),
        15,
        what="the log line",
    )


def jwt_and_jwks(tmp_path):
    """An RSA key, its JWKS file, and a function that signs RS256 tokens with it."""
    import base64
    import json
    import time

    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import padding, rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    numbers = key.public_key().public_numbers()

    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    def int_b64(value: int) -> str:
        return b64(value.to_bytes((value.bit_length() + 7) // 8, "big"))

    jwks = {"keys": [{"kty": "RSA", "kid": "test-key", "alg": "RS256", "use": "sig",
                      "n": int_b64(numbers.n), "e": int_b64(numbers.e)}]}
    path = tmp_path / "jwks.json"
    path.write_text(json.dumps(jwks))

    def sign(sub: str, lifetime_s: int = 600, **claims) -> tuple[str, float]:
        now = int(time.time())
        header = {"alg": "RS256", "typ": "JWT", "kid": "test-key"}
        payload = {"sub": sub, "iss": "https://issuer.test", "aud": "spate", "iat": now,
                   "exp": now + lifetime_s, **claims}
        signing_input = f"{b64(json.dumps(header).encode())}.{b64(json.dumps(payload).encode())}"
        signature = key.sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256())
        return f"{signing_input}.{b64(signature)}", float(now + lifetime_s)

    return path, sign


def test_oauthbearer_with_a_locally_signed_jwt(spate_factory, pki, tmp_path):  # noqa: F811
    jwks, sign = jwt_and_jwks(tmp_path)
    broker = spate_factory(
        args=[
            "--listener", "SECURE=SASL_SSL://127.0.0.1:0",
            "--tls-cert", pki["server.pem"],
            "--tls-key", pki["server.key"],
            "--sasl-mechanisms", "OAUTHBEARER,SCRAM-SHA-512",
            "--oauthbearer-jwks-file", str(jwks),
            "--oauthbearer-issuer", "https://issuer.test",
            "--oauthbearer-audience", "spate",
        ]
    )
    secure = listeners_of(broker)["SECURE"]

    def conf(token_fn) -> dict:
        return {
            "bootstrap.servers": secure,
            "security.protocol": "SASL_SSL",
            "ssl.ca.location": pki["ca.pem"],
            "sasl.mechanism": "OAUTHBEARER",
            "oauth_cb": lambda _config: token_fn(),
        }

    assert round_trip(conf(lambda: sign("carol")), 3) == [b"v0", b"v1", b"v2"]
    assert "principal=User:carol" in broker.log_text()

    # Tokens from the wrong issuer, already expired, or signed by another key are refused.
    # RFC 7628: the client is told only {"status":"invalid_token"}; the broker logs why.
    auth_error(conf(lambda: sign("carol", iss="https://elsewhere.test")), expect="invalid_token")
    # An expired JWT, with a future expiry told to librdkafka (which refuses to send a token it
    # knows has expired).
    auth_error(conf(lambda: (sign("carol", lifetime_s=-120)[0], time.time() + 600)), expect="invalid_token")
    (tmp_path / "other").mkdir()
    _other_jwks, other_sign = jwt_and_jwks(tmp_path / "other")
    auth_error(conf(lambda: other_sign("carol")), expect="invalid_token")
    log = broker.log_text()
    for reason in ["InvalidIssuer", "token expired", "InvalidSignature"]:
        assert reason in log, f"the broker logs why ({reason})"


def test_kafka_python_scram_sha_512_over_tls(spate_factory, pki):  # noqa: F811

    broker, listeners = start(spate_factory, pki)
    create_user(broker.bootstrap, "dave", "dave-secret")
    tls = {"ssl_cafile": pki["ca.pem"]}
    sasl = {
        "bootstrap_servers": listeners["SECURE"],
        "security_protocol": "SASL_SSL",
        "sasl_mechanism": "SCRAM-SHA-512",
        "sasl_plain_username": "dave",
        "sasl_plain_password": "dave-secret",
        **tls,
    }
    values = [b"d0", b"d1", b"d2"]
    assert kafka_python_round_trip(sasl, unique("kp-scram512"), values) == values
    assert "principal=User:dave" in broker.log_text()


def test_kafka_python_oauthbearer_with_a_locally_signed_jwt(spate_factory, pki, tmp_path):  # noqa: F811
    from kafka import KafkaProducer
    from kafka.errors import KafkaError as KafkaPythonError
    from kafka.net.sasl.oauth import AbstractTokenProvider

    jwks, sign = jwt_and_jwks(tmp_path)
    broker = spate_factory(
        args=[
            "--listener", "SECURE=SASL_SSL://127.0.0.1:0",
            "--tls-cert", pki["server.pem"],
            "--tls-key", pki["server.key"],
            "--sasl-mechanisms", "OAUTHBEARER",
            "--oauthbearer-jwks-file", str(jwks),
            "--oauthbearer-issuer", "https://issuer.test",
            "--oauthbearer-audience", "spate",
        ]
    )
    secure = listeners_of(broker)["SECURE"]

    class Tokens(AbstractTokenProvider):
        def __init__(self, token: str):
            super().__init__()
            self._token = token

        def token(self) -> str:
            return self._token

    def settings(token: str) -> dict:
        return {"bootstrap_servers": secure, "security_protocol": "SASL_SSL", "ssl_cafile": pki["ca.pem"],
                "sasl_mechanism": "OAUTHBEARER", "sasl_oauth_token_provider": Tokens(token)}

    topic = unique("kp-oauth")
    values = [b"d0", b"d1", b"d2"]
    assert kafka_python_round_trip(settings(sign("dana")[0]), topic, values) == values
    assert "principal=User:dana" in broker.log_text()

    # An expired token is refused (the client gives up bootstrapping).
    with pytest.raises(KafkaPythonError):
        KafkaProducer(bootstrap_timeout_ms=3_000, max_block_ms=3_000,
                      **settings(sign("dana", lifetime_s=-120)[0])).send(topic, b"refused").get(timeout=10)

    wait_until(lambda: "token expired" in broker.log_text(), 10, what="the expired token in the log")
