#!/usr/bin/env python3
"""Capture request frames and record batches from real Kafka clients as fuzz seeds.

Starts `spate serve` behind a recording TCP proxy (the broker advertises the proxy, so every
client connection goes through it), drives kcat, confluent-kafka and kafka-python through a
produce/consume/admin session, and writes:

- corpus/decode_request/<client>-<api>-v<version>: one request frame body per client, API
  and version (the first seen);
- corpus/record_batch/<codec>: one stored record batch per compression codec.

Usage: fuzz/capture_frames.py [path-to-spate-binary]   (needs the test venv's clients)
"""

import os
import pathlib
import re
import socket
import struct
import subprocess
import sys
import tempfile
import threading

HERE = pathlib.Path(__file__).resolve().parent
TARGET = pathlib.Path(os.environ.get("CARGO_TARGET_DIR", pathlib.Path.home() / ".cache/spate/target"))
SPATE = pathlib.Path(sys.argv[1]) if len(sys.argv) > 1 else TARGET / "debug/spate"

seen = set()
client_tag = "unknown"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def pump(src, dst, record):
    buf = b""
    try:
        while True:
            data = src.recv(65536)
            if not data:
                break
            dst.sendall(data)
            if record:
                buf += data
                while len(buf) >= 4:
                    (size,) = struct.unpack(">i", buf[:4])
                    if len(buf) < 4 + size:
                        break
                    frame, buf = buf[4 : 4 + size], buf[4 + size :]
                    api, version = struct.unpack(">hh", frame[:4])
                    key = (client_tag, api, version)
                    if key not in seen:
                        seen.add(key)
                        out = HERE / "corpus/decode_request" / f"{client_tag}-api{api}-v{version}"
                        out.write_bytes(frame)
    except OSError:
        pass
    finally:
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


def proxy(listen_port, broker_port):
    server = socket.socket()
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind(("127.0.0.1", listen_port))
    server.listen()
    while True:
        client, _ = server.accept()
        upstream = socket.create_connection(("127.0.0.1", broker_port))
        threading.Thread(target=pump, args=(client, upstream, True), daemon=True).start()
        threading.Thread(target=pump, args=(upstream, client, False), daemon=True).start()


def main():
    global client_tag
    (HERE / "corpus/decode_request").mkdir(parents=True, exist_ok=True)
    (HERE / "corpus/record_batch").mkdir(parents=True, exist_ok=True)
    data_dir = tempfile.mkdtemp(prefix="spate-capture-")
    proxy_port, broker_port = free_port(), free_port()
    broker = subprocess.Popen(
        [str(SPATE), "serve", "--data-dir", data_dir, "--kafka-listen", f"127.0.0.1:{broker_port}",
         "--http-listen", "127.0.0.1:0", "--registry-listen", "127.0.0.1:0", "--advertised-kafka", f"127.0.0.1:{proxy_port}"],
        stderr=subprocess.PIPE, text=True)
    for line in broker.stderr:
        if "spate is ready" in line:
            break
    threading.Thread(target=lambda: [None for _ in broker.stderr], daemon=True).start()
    threading.Thread(target=proxy, args=(proxy_port, broker_port), daemon=True).start()
    bootstrap = f"127.0.0.1:{proxy_port}"
    try:
        client_tag = "kcat"
        for codec in ["none", "gzip", "snappy", "lz4", "zstd"]:
            subprocess.run(["kcat", "-b", bootstrap, "-P", "-t", f"codec-{codec}", "-z", codec, "-K:"],
                           input="".join(f"k{i}:value {i} {'x' * 40}\n" for i in range(20)), text=True, check=True)
        subprocess.run(["kcat", "-b", bootstrap, "-C", "-t", "codec-gzip", "-o", "beginning", "-e", "-q"], check=True,
                       stdout=subprocess.DEVNULL)
        subprocess.run(["kcat", "-b", bootstrap, "-L"], check=True, stdout=subprocess.DEVNULL)

        client_tag = "confluent"
        from confluent_kafka import Consumer, Producer, TopicPartition
        from confluent_kafka.admin import AdminClient, ConfigResource, NewTopic
        admin = AdminClient({"bootstrap.servers": bootstrap})
        admin.create_topics([NewTopic("admin-topic", 3, 1, config={"retention.ms": "100000"})])["admin-topic"].result(10)
        admin.describe_configs([ConfigResource("topic", "admin-topic")])
        producer = Producer({"bootstrap.servers": bootstrap, "compression.type": "zstd", "linger.ms": 5})
        for i in range(10):
            producer.produce("admin-topic", key=f"k{i}", value=f"v{i}", headers={"h": b"1"})
        producer.flush(10)
        consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "capture", "enable.auto.commit": False})
        consumer.assign([TopicPartition("admin-topic", 0, 0)])
        consumer.poll(2)
        consumer.offsets_for_times([TopicPartition("admin-topic", 0, 0)], 5)
        consumer.close()

        client_tag = "kafkapython"
        from kafka import KafkaConsumer, KafkaProducer
        kp = KafkaProducer(bootstrap_servers=bootstrap, compression_type="lz4", enable_idempotence=False)
        kp.send("kp-topic", key=b"k", value=b"v").get(10)
        kp.close()
        kc = KafkaConsumer("kp-topic", bootstrap_servers=bootstrap, auto_offset_reset="earliest",
                           consumer_timeout_ms=2000)
        for _ in kc:
            break
        kc.close()
    finally:
        broker.terminate()
        broker.wait(30)
    # One stored batch per codec, straight from the segment files.
    for codec in ["none", "gzip", "snappy", "lz4", "zstd"]:
        segment = next(pathlib.Path(data_dir, "topics", f"codec-{codec}", "0").glob("*.log"))
        data = segment.read_bytes()
        (size,) = struct.unpack(">i", data[8:12])
        (HERE / "corpus/record_batch" / codec).write_bytes(data[: 12 + size])
    print(f"captured {len(seen)} request frames")


if __name__ == "__main__":
    main()
