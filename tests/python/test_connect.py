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
from confluent_kafka import Consumer, TopicPartition
from confluent_kafka.admin import AdminClient, ConfigResource

from conftest import _die_with_parent, spate_binary
from helpers import wait_until

READY = re.compile(r"spate connect worker is ready.*?rest_addr=(\S+)")
SOURCE = "org.apache.kafka.connect.file.FileStreamSourceConnector"
SINK = "org.apache.kafka.connect.file.FileStreamSinkConnector"


class Worker:
    """One `spate connect worker` process."""

    def __init__(self, brokers: str, log_path: Path, extra: list[str] | None = None):
        self.lines: list[str] = []
        self.allowed: list[str] = []
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
def broker(spate_factory):
    """A broker without its in-process worker, so the `spate connect worker`s are the group."""
    return spate_factory(connect_listen="off")


@pytest.fixture
def worker(broker, tmp_path):
    started: list[Worker] = []

    def start(*extra: str) -> Worker:
        w = Worker(broker.kafka_addr, tmp_path / f"worker{len(started)}.log", list(extra))
        started.append(w)
        return w

    yield start
    for w in started:
        w.kill()
        errors = [line for line in w.lines if (" ERROR " in line or "panicked" in line)
                  and not any(re.search(allowed, line) for allowed in w.allowed)]
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


def test_file_source_to_topic_to_file_sink_with_pause_resume_stop_and_offsets(broker, worker, tmp_path):
    spate = broker
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


def test_a_restarted_worker_resumes_from_its_committed_offsets_without_rereading(broker, worker, tmp_path):
    spate = broker
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


class InProcess(Worker):
    """The worker `spate serve` runs in-process, reached on its --connect-listen address."""

    def __init__(self, broker):  # noqa: D107 - no process of its own
        self.url = "http://" + wait_until(lambda: broker.connect_addr, what="connect worker is ready")
        self.lines = []


def test_spate_serve_runs_a_worker_in_process_and_stops_it_first(spate, tmp_path):
    w = InProcess(spate)
    code, root = w.call("GET", "/")
    assert code == 200 and root["kafka_cluster_id"]
    source_file = tmp_path / "in.txt"
    source_file.write_text("one\ntwo\n")
    assert w.call("POST", "/connectors", {"name": "inproc", "config": {
        "connector.class": "FileStreamSource", "file": str(source_file), "topic": "inproc",
        "value.converter": "org.apache.kafka.connect.storage.StringConverter"}})[0] == 201
    assert consume_values(spate.kafka_addr, "inproc", 2) == [b"one", b"two"]
    wait_until(lambda: connector_state(w, "inproc") == ("RUNNING", ["RUNNING"]), what="running")
    # The worker's metrics are on the server's /metrics.
    with urllib.request.urlopen(f"http://{spate.http_addr}/metrics", timeout=30) as response:
        metrics = response.read().decode()
    assert 'spate_connect_task_records_total{connector="inproc",task="0",type="source"} 2' in metrics
    assert 'spate_connect_task_running{connector="inproc",task="0",type="source",state="RUNNING"} 1' in metrics
    # A clean stop stops the worker (committing its offsets) before the broker's listeners.
    spate.stop()
    spate.keep_ports()
    spate.restart()
    with open(source_file, "a") as f:
        f.write("three\n")
    w = InProcess(spate)
    assert w.call("GET", "/connectors") == (200, ["inproc"])
    assert consume_values(spate.kafka_addr, "inproc", 3) == [b"one", b"two", b"three"]


def task_worker(w: Worker, name: str) -> str | None:
    code, status = w.call("GET", f"/connectors/{name}/status")
    if code != 200 or not status["tasks"] or status["tasks"][0]["state"] != "RUNNING":
        return None
    return status["tasks"][0]["worker_id"]


def test_two_workers_share_the_tasks_and_a_killed_workers_tasks_move_to_the_other(broker, worker, tmp_path):
    w1, w2 = worker(), worker()
    ids = {w.url.removeprefix("http://") for w in (w1, w2)}
    files = {name: tmp_path / f"{name}.txt" for name in ("a", "b")}
    for name, path in files.items():
        path.write_text("".join(f"{name}{i}\n" for i in range(20)))
        assert w1.call("POST", "/connectors", {"name": f"src-{name}", "config": {
            "connector.class": "FileStreamSource", "file": str(path), "topic": f"t{name}",
            "value.converter": "org.apache.kafka.connect.storage.StringConverter"}})[0] == 201
    # Both workers answer for both connectors, and the two tasks run on different workers.
    owners = wait_until(
        lambda: (lambda o: o if None not in o.values() and set(o.values()) == ids else None)(
            {name: task_worker(w2, f"src-{name}") for name in files}),
        timeout_s=60, what="one task on each worker")
    for name in files:
        assert consume_values(broker.kafka_addr, f"t{name}", 20)[-1] == f"{name}19".encode()

    # kill -9 the worker running src-a's task: the other takes it over and goes on.
    victim = w1 if owners["a"] == w1.url.removeprefix("http://") else w2
    survivor = w2 if victim is w1 else w1
    victim.kill()
    with open(files["a"], "a") as f:
        f.write("".join(f"a{i}\n" for i in range(20, 30)))
    survivor_id = survivor.url.removeprefix("http://")
    wait_until(lambda: task_worker(survivor, "src-a") == survivor_id, timeout_s=90,
               what="src-a's task running on the surviving worker")
    consumer = Consumer({"bootstrap.servers": broker.kafka_addr, "group.id": "check-moved",
                         "auto.offset.reset": "earliest"})
    consumer.subscribe(["ta"])
    seen: set[bytes] = set()

    def all_lines() -> bool:
        message = consumer.poll(0.5)
        if message is not None and message.error() is None:
            seen.add(message.value())
        return seen >= {f"a{i}".encode() for i in range(30)}

    try:
        wait_until(all_lines, timeout_s=60, what="every line of a.txt, none lost")
    finally:
        consumer.close()
    assert seen == {f"a{i}".encode() for i in range(30)}


def produce(brokers: str, topic: str, values: list[bytes]) -> None:
    from confluent_kafka import Producer
    producer = Producer({"bootstrap.servers": brokers})
    for value in values:
        producer.produce(topic, value)
    assert producer.flush(30) == 0


def test_bad_records_fail_the_task_naming_where_or_go_to_the_dead_letter_queue_with_context(broker, worker, tmp_path):
    w = worker()
    good = [json.dumps({"n": i}).encode() for i in range(5)]
    produce(broker.kafka_addr, "mixed", good[:2] + [b"{not json"] + good[2:])
    base = {"connector.class": SINK, "topics": "mixed",
            "value.converter": "org.apache.kafka.connect.json.JsonConverter",
            "value.converter.schemas.enable": "false"}

    # errors.tolerance=none (the default): the task fails and says which record.
    w.allowed.append("task failed")
    assert w.call("POST", "/connectors", {"name": "strict", "config": {
        **base, "file": str(tmp_path / "strict.txt")}})[0] == 201
    wait_until(lambda: connector_state(w, "strict")[1] == ["FAILED"], what="the task failed")
    trace = w.call("GET", "/connectors/strict/tasks/0/status")[1]["trace"]
    assert "topic mixed partition 0 offset 2" in trace and "VALUE_CONVERTER" in trace, trace

    # errors.tolerance=all with a dead letter queue: good records are written, the bad one is
    # dead-lettered as consumed, with Kafka's context headers.
    assert w.call("POST", "/connectors", {"name": "tolerant", "config": {
        **base, "file": str(tmp_path / "tolerant.txt"), "errors.tolerance": "all",
        "errors.log.enable": "true",
        "errors.deadletterqueue.topic.name": "mixed-dlq",
        "errors.deadletterqueue.topic.replication.factor": "1",
        "errors.deadletterqueue.context.headers.enable": "true"}})[0] == 201
    out = tmp_path / "tolerant.txt"
    wait_until(lambda: out.exists() and len(out.read_text().splitlines()) == 5, what="the good records")
    assert [json.loads(line) for line in out.read_text().splitlines()] == [{"n": i} for i in range(5)]
    consumer = Consumer({"bootstrap.servers": broker.kafka_addr, "group.id": "dlq-check",
                         "auto.offset.reset": "earliest"})
    consumer.subscribe(["mixed-dlq"])
    try:
        message = wait_until(lambda: (lambda m: m if m is not None and m.error() is None else None)(
            consumer.poll(0.5)), timeout_s=60, what="the dead-lettered record")
    finally:
        consumer.close()
    assert message.value() == b"{not json"
    headers = {k: v.decode() for k, v in message.headers()}
    assert headers["__connect.errors.topic"] == "mixed"
    assert headers["__connect.errors.partition"] == "0"
    assert headers["__connect.errors.offset"] == "2"
    assert headers["__connect.errors.connector.name"] == "tolerant"
    assert headers["__connect.errors.task.id"] == "0"
    assert headers["__connect.errors.stage"] == "VALUE_CONVERTER"
    assert headers["__connect.errors.exception.message"]
    assert connector_state(w, "tolerant") == ("RUNNING", ["RUNNING"])
    with urllib.request.urlopen(w.url + "/metrics", timeout=30) as response:
        metrics = response.read().decode()
    assert 'spate_connect_task_dlq_records_total{connector="tolerant",task="0",type="sink"} 1' in metrics
    assert 'spate_connect_task_errors_total{connector="tolerant",task="0",type="sink"} 1' in metrics
    assert 'spate_connect_task_records_total{connector="tolerant",task="0",type="sink"} 5' in metrics
    assert any("error encountered at topic mixed partition 0 offset 2" in line for line in w.lines)

    # The failed task resumes past the bad record once its group's offset is moved on (KIP-875).
    assert w.call("PUT", "/connectors/strict/stop")[0] == 202
    wait_until(lambda: w.call("GET", "/connectors/strict/offsets")[0] == 200 and
               connector_state(w, "strict")[0] == "STOPPED", what="stopped")
    assert w.call("PATCH", "/connectors/strict/offsets", {"offsets": [
        {"partition": {"kafka_topic": "mixed", "kafka_partition": 0}, "offset": {"kafka_offset": 3}}]})[0] == 200
    assert w.call("PUT", "/connectors/strict/resume")[0] == 202
    strict = tmp_path / "strict.txt"
    wait_until(lambda: strict.exists() and len(strict.read_text().splitlines()) == 3, what="the rest")
    assert [json.loads(line) for line in strict.read_text().splitlines()] == [{"n": i} for i in (2, 3, 4)]


def spate_connect(url: str, *args: str, ok: bool = True) -> subprocess.CompletedProcess:
    run = subprocess.run([str(spate_binary()), "connect", *args, "--url", url],
                         capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
    assert (run.returncode == 0) == ok, f"spate connect {' '.join(args)}: {run.returncode}\n{run.stdout}\n{run.stderr}"
    return run


def test_spate_connect_manages_connectors_as_kcctl_does(spate, tmp_path):
    url = "http://" + wait_until(lambda: spate.connect_addr, what="connect worker is ready")
    source_file = tmp_path / "in.txt"
    source_file.write_text("x\ny\n")
    config = tmp_path / "src.json"
    config.write_text(json.dumps({"name": "cli-src", "config": {
        "connector.class": SOURCE, "file": str(source_file), "topic": "cli",
        "value.converter": "org.apache.kafka.connect.storage.StringConverter"}}))
    assert "the config is valid" in spate_connect(url, "validate", "-f", str(config)).stdout
    assert "created connector cli-src" in spate_connect(url, "create", "-f", str(config)).stdout
    assert consume_values(spate.kafka_addr, "cli", 2) == [b"x", b"y"]
    wait_until(lambda: "RUNNING" in spate_connect(url, "list").stdout.splitlines()[1], what="listed RUNNING")
    listed = spate_connect(url, "list").stdout.splitlines()
    assert listed[1].split()[:3] == ["cli-src", "source", "RUNNING"], listed
    assert "task 0: RUNNING" in spate_connect(url, "status", "cli-src").stdout
    described = spate_connect(url, "describe", "cli-src").stdout
    assert f"file = {source_file}" in described
    assert "paused connector cli-src" in spate_connect(url, "pause", "cli-src").stdout
    wait_until(lambda: "task 0: PAUSED" in spate_connect(url, "status", "cli-src").stdout, what="paused")
    spate_connect(url, "stop", "cli-src")
    wait_until(lambda: "STOPPED" in spate_connect(url, "status", "cli-src").stdout, what="stopped")
    offsets = json.loads(spate_connect(url, "offsets", "cli-src", "--json").stdout)
    assert offsets == {"offsets": [{"partition": {"filename": str(source_file)}, "offset": {"position": 4}}]}
    assert "reset successfully" in spate_connect(url, "offsets", "cli-src", "--reset").stdout
    plugins = spate_connect(url, "plugins", "--all").stdout
    assert SINK in plugins and "org.apache.kafka.connect.transforms.Cast$Value" in plugins
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"name": "bad", "connector.class": SINK, "file": "f"}))
    failed = spate_connect(url, "create", "-f", str(bad), ok=False)
    assert "Must configure one of topics or topics.regex" in failed.stderr and "HTTP 400" in failed.stderr
    assert "deleted connector cli-src" in spate_connect(url, "delete", "cli-src").stdout
    failed = spate_connect(url, "status", "cli-src", ok=False)
    assert "Connector cli-src not found (HTTP 404)" in failed.stderr

    # A sink's progress is its consumer group's: `spate group describe connect-<name>`.
    sink = tmp_path / "sink.json"
    sink.write_text(json.dumps({"name": "cli-sink", "connector.class": SINK, "topics": "cli",
                                "file": str(tmp_path / "out.txt"),
                                "value.converter": "org.apache.kafka.connect.storage.StringConverter"}))
    spate_connect(url, "apply", "-f", str(sink))

    def described() -> dict:
        run = subprocess.run([str(spate_binary()), "group", "describe", "connect-cli-sink", "--format", "json",
                              "--brokers", spate.kafka_addr], capture_output=True, text=True, timeout=60)
        return json.loads(run.stdout) if run.returncode == 0 else {}
    group = wait_until(
        lambda: (lambda d: d if any(o["topic"] == "cli" and o["lag"] == 0 for o in d.get("offsets", [])) else None)(
            described()), timeout_s=60, what="the sink's group committed to the end")
    assert [(o["topic"], o["partition"], o["current_offset"], o["lag"]) for o in group["offsets"]] == [("cli", 0, 2, 0)], json.dumps(group)
    assert group["offsets"][0]["client_id"] == "connector-consumer-cli-sink-0", group


def test_exactly_once_source_survives_kill_9_without_losing_or_duplicating_a_record(broker, worker, tmp_path):
    eos = ("--set", "exactly.once.source.support=enabled")
    source_file = tmp_path / "in.txt"
    lines = [f"r{i}" for i in range(1000)]
    source_file.write_text("".join(line + "\n" for line in lines))
    w = worker(*eos)
    assert w.call("POST", "/connectors", {"name": "eos", "config": {
        "connector.class": SOURCE, "file": str(source_file), "topic": "eos", "batch.size": "25",
        "exactly.once.support": "required",
        "value.converter": "org.apache.kafka.connect.storage.StringConverter"}})[0] == 201
    consumer = Consumer({"bootstrap.servers": broker.kafka_addr, "group.id": "eos-check",
                         "auto.offset.reset": "earliest", "isolation.level": "read_committed"})
    consumer.subscribe(["eos"])
    seen: list[bytes] = []

    def read_until(count: int) -> bool:
        message = consumer.poll(0.5)
        if message is not None and message.error() is None:
            seen.append(message.value())
        return len(seen) >= count

    try:
        wait_until(lambda: read_until(200), timeout_s=60, what="the first transactions")
        w.kill()  # mid-stream: a transaction may be open
        worker(*eos)
        try:
            wait_until(lambda: read_until(len(lines)), timeout_s=240, what="every line")
        except AssertionError:
            raise AssertionError(f"seen {len(seen)} ({len(set(seen))} distinct), position "
                                 f"{consumer.position([TopicPartition('eos', 0)])}") from None
        extra = consumer.poll(2.0)
        assert extra is None or extra.error() is not None, f"a record beyond the file: {extra.value()!r}"
    finally:
        consumer.close()
    assert seen == [line.encode() for line in lines], "records lost, duplicated or out of order"

    # A connector that requires exactly once is refused by a worker without it.
    plain = worker()
    code, error = plain.call("PUT", "/connector-plugins/FileStreamSource/config/validate", {
        "name": "x", "connector.class": SOURCE, "file": "f", "topic": "t", "exactly.once.support": "required"})
    assert code == 200 and error["error_count"] == 1


def test_a_sink_waits_for_a_topic_that_does_not_exist_yet(broker, worker, tmp_path):
    w = worker()
    out = tmp_path / "later.txt"
    assert w.call("POST", "/connectors", {"name": "later", "config": {
        "connector.class": SINK, "topics": "later", "file": str(out),
        "value.converter": "org.apache.kafka.connect.storage.StringConverter"}})[0] == 201
    wait_until(lambda: connector_state(w, "later") == ("RUNNING", ["RUNNING"]), what="running")
    produce(broker.kafka_addr, "later", [b"finally"])
    wait_until(lambda: out.exists() and out.read_text() == "finally\n", timeout_s=60, what="the record")
    assert connector_state(w, "later") == ("RUNNING", ["RUNNING"])


def test_source_topics_are_made_by_the_connectors_topic_creation_groups(spate, tmp_path):
    """KIP-158: `topic.creation.default.*` and named groups (`include`/`exclude` regexes, their
    own partitions and topic configs) make a source's topics before its first record."""
    w = InProcess(spate)
    creation = {
        "topic.creation.groups": "short",
        "topic.creation.default.replication.factor": "-1",
        "topic.creation.default.partitions": "3",
        "topic.creation.default.retention.ms": "3600000",
        "topic.creation.short.include": "tmp-.*",
        "topic.creation.short.partitions": "1",
        "topic.creation.short.retention.ms": "60000",
        "topic.creation.short.compression.type": "zstd",
    }
    for topic in ("events", "tmp-users"):
        path = tmp_path / f"{topic}.txt"
        path.write_text("a\nb\n")
        assert w.call("POST", "/connectors", {"name": topic, "config": {
            "connector.class": "FileStreamSource", "file": str(path), "topic": topic,
            "value.converter": "org.apache.kafka.connect.storage.StringConverter", **creation}})[0] == 201
        assert sorted(consume_values(spate.kafka_addr, topic, 2)) == [b"a", b"b"]
    admin = AdminClient({"bootstrap.servers": spate.kafka_addr})
    topics = admin.list_topics(timeout=30).topics
    assert (len(topics["events"].partitions), len(topics["tmp-users"].partitions)) == (3, 1)
    configs = {}
    for resource, future in admin.describe_configs([
            ConfigResource("topic", "events"), ConfigResource("topic", "tmp-users")]).items():
        entries = future.result(timeout=30)
        configs[resource.name] = (entries["retention.ms"].value, entries["compression.type"].value)
    assert configs == {"events": ("3600000", "producer"), "tmp-users": ("60000", "zstd")}

    # Half a default group, a group without its include list: refused, each key named.
    code, body = w.call("POST", "/connectors", {"name": "bad", "config": {
        "connector.class": "FileStreamSource", "file": str(tmp_path / "x"), "topic": "x",
        "topic.creation.default.partitions": "0", "topic.creation.groups": "g"}})
    assert code == 400, body
    for key in ("topic.creation.default.replication.factor", "topic.creation.default.partitions",
                "topic.creation.g.include"):
        assert key in body["message"], (key, body)
