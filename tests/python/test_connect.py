"""Spate Connect end to end: a `spate connect worker` process against a real `spate serve`,
driven through Kafka Connect's REST API with plain HTTP as its documentation shows, records
checked with confluent-kafka, files written and read by the FileStream connectors."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import threading
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from confluent_kafka import Consumer

from conftest import _die_with_parent, spate_binary
from helpers import wait_until

READY = re.compile(r"spate connect worker is ready.*?rest_addr=(\S+)")
SOURCE = "org.apache.kafka.connect.file.FileStreamSourceConnector"
SINK = "org.apache.kafka.connect.file.FileStreamSinkConnector"


class Worker:
    """One `spate connect worker` process."""

    def __init__(self, brokers: str, log_path: Path, extra: list[str] | None = None):
        self.lines: list[str] = []
        self.log_path = log_path
        ready = threading.Event()
        self.url = ""
        self.proc = subprocess.Popen(
            [str(spate_binary()), "connect", "worker", "--brokers", brokers,
             "--listen", "127.0.0.1:0", "--set", "offset.flush.interval.ms=200", *(extra or [])],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            preexec_fn=_die_with_parent,
        )

        def read() -> None:
            assert self.proc.stdout is not None
            for raw in self.proc.stdout:
                line = raw.decode("utf-8", "replace").rstrip("\n")
                self.lines.append(line)
                with open(self.log_path, "a") as f:
                    f.write(line + "\n")
                m = READY.search(line)
                if m and not ready.is_set():
                    self.url = "http://" + m.group(1)
                    ready.set()

        threading.Thread(target=read, daemon=True).start()
        if not ready.wait(60):
            self.proc.kill()
            raise AssertionError("worker did not become ready:\n" + "\n".join(self.lines[-30:]))

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(60)

    def kill(self) -> None:
        self.proc.kill()
        self.proc.wait(10)

    def call(self, method: str, path: str, body: object | None = None) -> tuple[int, object]:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.url + path, data=data, method=method)
        request.add_header("Content-Type", "application/json")
        request.add_header("Accept", "application/json")
        try:
            with urllib.request.urlopen(request, timeout=60) as response:
                text = response.read()
                return response.status, (json.loads(text) if text else None)
        except urllib.error.HTTPError as e:
            text = e.read()
            return e.code, (json.loads(text) if text else None)


@pytest.fixture
def worker(spate, tmp_path):
    started: list[tuple[Worker, tuple[str, ...]]] = []

    def start(allowed_errors: tuple[str, ...] = ()) -> Worker:
        """`allowed_errors`: patterns of the ERROR lines a test causes on purpose (a task it
        makes fail logs one)."""
        w = Worker(spate.kafka_addr, tmp_path / f"worker{len(started)}.log")
        started.append((w, allowed_errors))
        return w

    yield start
    for w, allowed in started:
        w.kill()
        errors = [line for line in w.lines if (" ERROR " in line or "panicked" in line)
                  and not any(re.search(pattern, line) for pattern in allowed)]
        assert not errors, f"worker logged errors: {errors}"


def consume_values(brokers: str, topic: str, count: int) -> list[bytes]:
    consumer = Consumer({"bootstrap.servers": brokers, "group.id": f"check-{topic}",
                         "auto.offset.reset": "earliest", "enable.auto.commit": False})
    consumer.subscribe([topic])
    values: list[bytes] = []
    try:
        def enough() -> bool:
            message = consumer.poll(0.5)
            if message is not None and message.error() is None:
                values.append(message.value())
            return len(values) >= count
        wait_until(enough, timeout_s=60, what=f"{count} records in {topic}")
        extra = consumer.poll(1.0)
        assert extra is None or extra.error() is not None, "more records than expected"
    finally:
        consumer.close()
    return values


def connector_state(w: Worker, name: str) -> tuple[str, list[str]]:
    code, status = w.call("GET", f"/connectors/{name}/status")
    assert code == 200, status
    return status["connector"]["state"], [t["state"] for t in status["tasks"]]


def test_rest_api_root_and_plugins_answer_as_kafka_connect(worker):
    w = worker()
    code, root = w.call("GET", "/")
    assert code == 200 and root["version"] and root["kafka_cluster_id"]
    code, plugins = w.call("GET", "/connector-plugins")
    assert code == 200
    assert {"class": SOURCE, "type": "source"}.items() <= next(p for p in plugins if p["class"] == SOURCE).items()
    assert any(p["class"] == SINK and p["type"] == "sink" for p in plugins)
    code, everything = w.call("GET", "/connector-plugins?connectorsOnly=false")
    classes = {p["class"]: p["type"] for p in everything}
    assert classes["org.apache.kafka.connect.json.JsonConverter"] == "converter"
    assert classes["org.apache.kafka.connect.transforms.InsertField$Value"] == "transformation"
    code, definitions = w.call("GET", "/connector-plugins/FileStreamSource/config")
    assert code == 200 and any(d["name"] == "topic" and d["required"] for d in definitions)
    code, error = w.call("GET", "/connectors/nope")
    assert (code, error) == (404, {"error_code": 404, "message": "Connector nope not found"})


def test_an_invalid_config_gets_400_naming_every_bad_field_and_starts_nothing(worker, tmp_path):
    w = worker()
    code, error = w.call("POST", "/connectors", {"name": "bad", "config": {
        "connector.class": SINK, "tasks.max": "many", "file": str(tmp_path / "out"),
        "transforms": "t", "transforms.t.type": "org.example.Nope"}})
    assert code == 400, error
    assert error["error_code"] == 400
    message = error["message"]
    assert message.startswith("Connector configuration is invalid and contains the following 3 error(s):")
    assert "tasks.max" in message and "org.example.Nope" in message and "topics" in message
    assert w.call("GET", "/connectors") == (200, [])
    code, validated = w.call("PUT", f"/connector-plugins/{SINK}/config/validate", {
        "name": "v", "connector.class": SINK, "tasks.max": "many", "topics": "x", "file": "f"})
    errors = [(c["definition"]["name"], c["value"]["errors"]) for c in validated["configs"] if c["value"]["errors"]]
    assert code == 200 and validated["error_count"] == 1, errors
    tasks_max = next(c for c in validated["configs"] if c["definition"]["name"] == "tasks.max")
    assert tasks_max["value"]["errors"] and tasks_max["value"]["value"] == "many"


def test_file_source_to_topic_to_file_sink_with_pause_resume_stop_and_offsets(spate, worker, tmp_path):
    w = worker()
    source_file, sink_file = tmp_path / "in.txt", tmp_path / "out.txt"
    source_file.write_text("".join(f"line {i}\n" for i in range(100)))
    code, created = w.call("POST", "/connectors", {"name": "file-in", "config": {
        "connector.class": SOURCE, "file": str(source_file), "topic": "lines"}})
    assert code == 201, created
    assert created["name"] == "file-in" and created["type"] == "source"
    assert created["config"]["connector.class"] == SOURCE

    values = consume_values(spate.kafka_addr, "lines", 100)
    # The worker's default converter is JsonConverter with schemas, as connect-distributed.properties.
    assert json.loads(values[0]) == {"schema": {"type": "string", "optional": False}, "payload": "line 0"}
    assert [json.loads(v)["payload"] for v in values] == [f"line {i}" for i in range(100)]
    wait_until(lambda: connector_state(w, "file-in") == ("RUNNING", ["RUNNING"]), what="source running")
    assert w.call("GET", "/connectors") == (200, ["file-in"])
    code, topics = w.call("GET", "/connectors/file-in/topics")
    assert code == 200 and topics == {"file-in": {"topics": ["lines"]}}

    code, created = w.call("PUT", "/connectors/file-out/config", {
        "connector.class": SINK, "file": str(sink_file), "topics": "lines",
        "value.converter": "org.apache.kafka.connect.json.JsonConverter",
        "value.converter.schemas.enable": "true"})
    assert code == 201, created
    wait_until(lambda: sink_file.exists() and len(sink_file.read_text().splitlines()) >= 100,
               what="the sink file")
    assert sink_file.read_text().splitlines() == [f"line {i}" for i in range(100)]

    # Pause: appended lines wait; resume: they flow.
    assert w.call("PUT", "/connectors/file-in/pause")[0] == 202
    wait_until(lambda: connector_state(w, "file-in") == ("PAUSED", ["PAUSED"]), what="paused")
    with open(source_file, "a") as f:
        f.write("line 100\n")
    assert w.call("PUT", "/connectors/file-in/resume")[0] == 202
    wait_until(lambda: len(sink_file.read_text().splitlines()) == 101, what="the line after resume")

    # Offsets can only change once stopped (KIP-875).
    code, error = w.call("PATCH", "/connectors/file-in/offsets", {"offsets": []})
    assert code == 400 and "STOPPED" in error["message"]
    assert w.call("PUT", "/connectors/file-in/stop")[0] == 202
    wait_until(lambda: connector_state(w, "file-in")[0] == "STOPPED", what="stopped")
    wait_until(lambda: w.call("GET", "/connectors/file-in/offsets")[1]["offsets"] ==
               [{"partition": {"filename": str(source_file)},
                 "offset": {"position": source_file.stat().st_size}}], what="the source offset")
    # Rewind the file source to the start: everything is read again.
    code, answer = w.call("DELETE", "/connectors/file-in/offsets")
    assert code == 200 and answer["message"] == "The offsets for this connector have been reset successfully"
    assert w.call("GET", "/connectors/file-in/offsets") == (200, {"offsets": []})
    assert w.call("PUT", "/connectors/file-in/resume")[0] == 202
    wait_until(lambda: len(sink_file.read_text().splitlines()) == 202, what="the file read again")

    # The sink's offsets are its consumer group's, connect-file-out.
    wait_until(lambda: w.call("GET", "/connectors/file-out/offsets")[1]["offsets"] ==
               [{"partition": {"kafka_topic": "lines", "kafka_partition": 0},
                 "offset": {"kafka_offset": 202}}], what="the sink's committed offset")

    assert w.call("DELETE", "/connectors/file-in") == (204, None)
    assert w.call("GET", "/connectors/file-in")[0] == 404
    assert w.call("GET", "/connectors") == (200, ["file-out"])


def test_a_restarted_worker_resumes_from_its_committed_offsets_without_rereading(spate, worker, tmp_path):
    source_file = tmp_path / "in.txt"
    source_file.write_text("".join(f"a{i}\n" for i in range(50)))
    w = worker()
    assert w.call("POST", "/connectors", {"name": "src", "config": {
        "connector.class": "FileStreamSource", "file": str(source_file), "topic": "restart",
        "value.converter": "org.apache.kafka.connect.storage.StringConverter"}})[0] == 201
    assert consume_values(spate.kafka_addr, "restart", 50)[-1] == b"a49"
    w.stop()  # a clean stop commits the offsets of everything produced

    with open(source_file, "a") as f:
        f.write("".join(f"b{i}\n" for i in range(10)))
    w2 = worker()
    assert w2.call("GET", "/connectors") == (200, ["src"])
    values = consume_values(spate.kafka_addr, "restart", 60)
    assert values == [f"a{i}".encode() for i in range(50)] + [f"b{i}".encode() for i in range(10)]
    wait_until(lambda: connector_state(w2, "src") == ("RUNNING", ["RUNNING"]), what="running again")
