"""Debian's kcat (librdkafka 2.0.2): the old client every Debian user has.

librdkafka 2.0.2 parses ApiVersions strictly and turns compression off unless Produce v0 is
advertised, so it catches protocol mistakes that librdkafka 2.16 forgives.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from helpers import BIG_LIMIT_BYTES, CODECS, MIB, ascii_payload, create_topic, unique, watermarks
from roundtrip import Rec, check_round_trip, check_stored_codec

KCAT_TIMEOUT_S = 120


def kcat_binary() -> str:
    path = shutil.which("kcat")
    if path is None:
        pytest.fail("kcat not found: scripts/test installs it (apt-get install kcat)", pytrace=False)
    return path


def kcat(args: list[str], stdin: bytes | None = None, check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run(
        [kcat_binary(), *args],
        input=stdin if stdin is not None else b"",
        capture_output=True,
        timeout=KCAT_TIMEOUT_S,
    )
    if check and proc.returncode != 0:
        raise AssertionError(
            f"kcat {' '.join(args)} exited with {proc.returncode}\n"
            f"stderr:\n{proc.stderr.decode(errors='replace')[-4000:]}"
        )
    return proc


def kcat_produce(bootstrap: str, topic: str, codec: str, extra: list[str], stdin: bytes = b"",
                 files: list[str] = ()) -> str:
    """Produces with kcat (debug 'msg' on) and returns its stderr."""
    proc = kcat(
        [
            "-P", "-b", bootstrap, "-t", topic, "-p", "0", "-z", codec, "-d", "msg",
            "-X", f"message.max.bytes={BIG_LIMIT_BYTES}",
            "-X", "message.timeout.ms=30000",
            "-X", "linger.ms=5",
            *extra, *files,
        ],
        stdin=stdin,
    )
    log = proc.stderr.decode(errors="replace")
    assert "Delivery failed" not in log, log[-4000:]
    # librdkafka 2.0.2 silently sends uncompressed batches when it thinks the broker cannot
    # take compressed ones (Produce v0..v2 not advertised): it says so only at debug level.
    assert "does not support compression" not in log, log[-4000:]
    return log


def kcat_consume(bootstrap: str, topic: str, count: int) -> list[dict]:
    proc = kcat(
        [
            "-C", "-b", bootstrap, "-t", topic, "-p", "0", "-o", "beginning", "-e", "-J", "-q",
            "-c", str(count),
            "-X", f"fetch.message.max.bytes={BIG_LIMIT_BYTES}",
        ]
    )
    lines = [line for line in proc.stdout.decode().split("\n") if line.strip()]
    return [json.loads(line) for line in lines]


def kcat_headers(msg: dict) -> tuple[tuple[str, bytes | None], ...]:
    raw = msg.get("headers") or []
    if isinstance(raw, dict):
        raw = [x for kv in raw.items() for x in kv]
    pairs = []
    for i in range(0, len(raw), 2):
        value = raw[i + 1]
        pairs.append((raw[i], None if value is None else value.encode()))
    return tuple(pairs)


def kcat_rec(msg: dict) -> Rec:
    key = msg.get("key")
    value = msg.get("payload")
    return Rec(
        None if key is None else key.encode(),
        None if value is None else value.encode(),
        kcat_headers(msg),
    )


def test_kcat_is_debians_librdkafka_2_0():
    out = kcat(["-V"]).stdout.decode() + kcat(["-V"]).stderr.decode()
    m = re.search(r"librdkafka (\d+\.\d+\.\d+)", out)
    assert m, out
    assert m.group(1).startswith("2.0."), f"expected Debian's librdkafka 2.0.x, got {m.group(1)}"


@pytest.mark.parametrize("codec", CODECS)
def test_kcat_round_trip(spate, tmp_path: Path, codec: str):
    topic = unique(f"kcat-{codec}")
    create_topic(spate.bootstrap, topic, 1, {"max.message.bytes": str(BIG_LIMIT_BYTES)})
    headers = (("trace-id", b"abc123"), ("dup", b"1"), ("dup", b"2"))
    header_args = [a for name, value in headers for a in ("-H", f"{name}={value.decode()}")]

    sent: list[Rec] = []
    logs = []
    # Keys and headers, an empty value, and a long ordered run.
    keyed = [Rec(b"plain", b"hello", headers), Rec(b"empty-value", b"", headers)]
    keyed += [Rec(f"k{i % 7}".encode(), f"seq-{i:05d}".encode(), headers) for i in range(300)]
    stdin = b"".join(r.key + b":" + r.value + b"\n" for r in keyed)
    logs.append(kcat_produce(spate.bootstrap, topic, codec, ["-K", ":", *header_args], stdin))
    sent += keyed
    # -Z: an empty value is sent as NULL, a tombstone.
    logs.append(kcat_produce(spate.bootstrap, topic, codec, ["-K", ":", "-Z"], b"tombstone:\n"))
    sent.append(Rec(b"tombstone", None))
    # No key.
    logs.append(kcat_produce(spate.bootstrap, topic, codec, [], b"no key at all\n"))
    sent.append(Rec(None, b"no key at all"))
    # A 1 MiB record: a file argument is sent as one message.
    big = ascii_payload(MIB)
    big_file = tmp_path / "big.txt"
    big_file.write_bytes(big)
    logs.append(kcat_produce(spate.bootstrap, topic, codec, ["-k", "big"], files=[str(big_file)]))
    sent.append(Rec(b"big", big))

    if codec != "none":
        # "Produce MessageSet with N message(s) (... , <codec or uncompressed>)"
        sets = [
            (int(m.group(1)), line)
            for log in logs
            for line in log.splitlines()
            if (m := re.search(r"Produce MessageSet with (\d+) message", line))
        ]
        big_sets = [line for n, line in sets if n >= 10]
        assert big_sets, f"kcat -d msg logged no batch of 10+ messages: {sets[:5]}"
        plain = [line for line in big_sets if codec not in line]
        assert not plain, f"kcat sent batches of 10+ text records without {codec}: {plain[:3]}"

    got = [(m["offset"], kcat_rec(m)) for m in kcat_consume(spate.bootstrap, topic, len(sent))]
    check_round_trip(sent, got)
    # Everything kcat sent is text: every batch worth compressing must be compressed.
    check_stored_codec(spate.kafka_addr, topic, codec, len(sent))
    assert watermarks(spate.bootstrap, topic) == (0, len(sent))


def test_kcat_metadata(spate):
    topic = unique("kcat-meta")
    create_topic(spate.bootstrap, topic, 3)
    md = json.loads(kcat(["-L", "-b", spate.bootstrap, "-J"]).stdout)
    brokers = md["brokers"]
    assert len(brokers) == 1, brokers
    assert brokers[0]["name"] == spate.kafka_addr, brokers
    leader = brokers[0]["id"]
    topics = {t["topic"]: t for t in md["topics"]}
    assert topic in topics, sorted(topics)
    parts = sorted(topics[topic]["partitions"], key=lambda p: p["partition"])
    assert [p["partition"] for p in parts] == [0, 1, 2]
    assert all(p["leader"] == leader for p in parts)
    assert "error" not in topics[topic] or not topics[topic]["error"], topics[topic]

    # Metadata for one topic, as text: what people read.
    text = kcat(["-L", "-b", spate.bootstrap, "-t", topic]).stdout.decode()
    assert f'topic "{topic}" with 3 partitions' in text, text


def test_kcat_offsets_by_timestamp(spate):
    topic = unique("kcat-times")
    create_topic(spate.bootstrap, topic, 1)
    base = int(time.time() * 1000) - 60_000
    # kcat -P takes no per-message timestamp from stdin; produce five batches one by one with
    # confluent-kafka's timestamps, then ask kcat.
    from confluent_kafka import Producer

    p = Producer({"bootstrap.servers": spate.bootstrap, "linger.ms": 0})
    for i in range(5):
        p.produce(topic, value=f"{i}".encode(), partition=0, timestamp=base + i * 1000)
    assert p.flush(30) == 0

    def query(ts: int) -> int:
        out = kcat(["-Q", "-b", spate.bootstrap, "-t", f"{topic}:0:{ts}"]).stdout.decode()
        m = re.search(r"\[0\]\s+offset\s+(-?\d+)", out)
        assert m, out
        return int(m.group(1))

    assert query(base) == 0
    assert query(base + 2500) == 3
    assert query(base + 4000) == 4
    assert query(base + 5000) == -1


@pytest.mark.parametrize("codec", ["zstd", "lz4"])
def test_kcat_reads_what_new_clients_wrote(spate, codec):
    """Old librdkafka fetches batches written by librdkafka 2.16 and by kafka-python."""
    from confluent_kafka import Producer
    from kafka import KafkaProducer

    topic = unique(f"kcat-interop-{codec}")
    create_topic(spate.bootstrap, topic, 1)
    sent = [
        Rec(f"k{i}".encode(), f"from-librdkafka-2.16-{i}".encode(), (("client", b"confluent"),))
        for i in range(100)
    ]
    p = Producer({"bootstrap.servers": spate.bootstrap, "compression.type": codec, "linger.ms": 5})
    for r in sent:
        p.produce(topic, key=r.key, value=r.value, headers=list(r.headers), partition=0)
    assert p.flush(30) == 0
    more = [
        Rec(f"k{i}".encode(), f"from-kafka-python-{i}".encode(), (("client", b"kafka-python"),))
        for i in range(100)
    ]
    kp = KafkaProducer(bootstrap_servers=spate.bootstrap, compression_type=codec, linger_ms=5)
    try:
        for r in more:
            kp.send(topic, key=r.key, value=r.value, headers=list(r.headers), partition=0)
        kp.flush(timeout=30)
    finally:
        kp.close(timeout=10)
    sent += more
    got = [(m["offset"], kcat_rec(m)) for m in kcat_consume(spate.bootstrap, topic, len(sent))]
    check_round_trip(sent, got)
