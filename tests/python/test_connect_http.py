"""The HTTP sink end to end: a `spate connect worker` sends a topic's records to a webhook (a
Python `http.server` that records what it gets and answers with the statuses a test scripts),
configured with the keys of Confluent's HTTP Sink connector."""

from __future__ import annotations

import base64
import http.server
import json
import threading
from dataclasses import dataclass

from confluent_kafka import Producer

from helpers import wait_until
from test_connect import broker, worker  # noqa: F401  (the fixtures)

HTTP_SINK = "io.confluent.connect.http.HttpSinkConnector"


@dataclass
class Request:
    method: str
    path: str
    headers: dict[str, str]  # names in lowercase
    body: bytes
    status: int


class Hook:
    """A webhook endpoint: records every request and answers the statuses in `script` first,
    then `default`."""

    def __init__(self) -> None:
        self.requests: list[Request] = []
        self.script: list[int] = []
        self.default = 200
        self.lock = threading.Lock()
        hook = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def answer(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                with hook.lock:
                    status = hook.script.pop(0) if hook.script else hook.default
                    headers = {k.lower(): v for k, v in self.headers.items()}
                    hook.requests.append(Request(self.command, self.path, headers, body, status))
                payload = b"accepted" if status < 300 else b'{"error": "rejected by the test"}'
                self.send_response(status)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            do_POST = do_PUT = do_PATCH = do_DELETE = answer

            def log_message(self, *args: object) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_port}"

    def seen(self) -> list[Request]:
        with self.lock:
            return list(self.requests)

    def accepted_ids(self) -> list[int]:
        """The ids of the records in the requests answered with a success, in order."""
        return [record["id"] for r in self.seen() if r.status < 300 for record in json.loads(r.body)]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def produce(brokers: str, topic: str, ids: range) -> None:
    producer = Producer({"bootstrap.servers": brokers})
    for i in ids:
        producer.produce(topic, json.dumps({"id": i, "name": f"event {i}"}).encode())
    assert producer.flush(30) == 0


def task_status(w, name: str) -> dict:
    code, status = w.call("GET", f"/connectors/{name}/status")
    assert code == 200, status
    return status["tasks"][0] if status["tasks"] else {}


def test_http_sink_batches_retries_and_fails_the_task_on_a_client_error(broker, worker):  # noqa: F811
    spate = broker
    hook = Hook()
    try:
        w = worker()
        w.allowed.append(r"task failed: the HTTP sink could not deliver .* 400 Bad Request")
        produce(spate.kafka_addr, "events", range(20))
        code, created = w.call("POST", "/connectors", {"name": "hook", "config": {
            "connector.class": HTTP_SINK, "topics": "events",
            "http.api.url": hook.url + "/ingest/${topic}",
            "value.converter": "org.apache.kafka.connect.json.JsonConverter",
            "value.converter.schemas.enable": "false",
            "request.body.format": "json", "batch.json.as.array": "true", "batch.max.size": "5",
            "headers": "X-Source:spate|X-Tenant:acme",
            "auth.type": "BASIC", "connection.user": "alice", "connection.password": "s3cret",
            "retry.on.status.codes": "500-", "retry.backoff.ms": "50", "max.retries": "5",
            "behavior.on.error": "fail"}})
        assert code == 201, created

        # All 20 in 4 requests of 5, in order, with the configured headers and credentials.
        wait_until(lambda: len(hook.accepted_ids()) >= 20, timeout_s=60, what="20 records at the hook")
        requests = hook.seen()
        assert len(requests) == 4, [r.body for r in requests]
        assert hook.accepted_ids() == list(range(20))
        basic = "Basic " + base64.b64encode(b"alice:s3cret").decode()
        for r in requests:
            assert (r.method, r.path) == ("POST", "/ingest/events")
            assert r.headers["content-type"] == "application/json"
            assert r.headers["x-source"] == "spate" and r.headers["x-tenant"] == "acme"
            assert r.headers["authorization"] == basic
            for record in json.loads(r.body):
                assert record == {"id": record["id"], "name": f"event {record['id']}"}

        # Two 503s, then a 200: the retry delivers the batch, and each record arrives once.
        with hook.lock:
            hook.script = [503, 503]
        produce(spate.kafka_addr, "events", range(20, 25))
        wait_until(lambda: len(hook.accepted_ids()) >= 25, timeout_s=60, what="the retried records")
        retried = hook.seen()[4:]
        assert [r.status for r in retried[:3]] == [503, 503, 200]
        assert retried[0].body == retried[1].body == retried[2].body
        assert hook.accepted_ids() == list(range(25))
        assert task_status(w, "hook")["state"] == "RUNNING"

        # A 400 is not retried (retry.on.status.codes is 500-): the task fails, saying why.
        with hook.lock:
            hook.default = 400
        produce(spate.kafka_addr, "events", range(25, 30))
        wait_until(lambda: task_status(w, "hook").get("state") == "FAILED", timeout_s=60,
                   what="the task failed")
        trace = task_status(w, "hook")["trace"]
        assert "400 Bad Request" in trace and hook.url + "/ingest/events" in trace, trace
        assert "rejected by the test" in trace, trace
        assert hook.accepted_ids() == list(range(25))
        assert [r.status for r in hook.seen()[len(retried) + 4:]] == [400]
    finally:
        hook.close()


def test_an_invalid_http_sink_config_is_refused_naming_every_bad_key(worker):  # noqa: F811
    w = worker()
    code, error = w.call("POST", "/connectors", {"name": "bad-hook", "config": {
        "connector.class": HTTP_SINK, "topics": "events", "http.api.url": "localhost:8080/hook",
        "auth.type": "KERBEROS", "batch.max.size": "0", "behavior.on.error": "explode"}})
    assert code == 400, error
    message = error["message"]
    assert "contains the following 4 error(s)" in message, message
    for key in ["http.api.url", "auth.type", "batch.max.size", "behavior.on.error"]:
        assert key in message, (key, message)
    assert w.call("GET", "/connectors") == (200, [])
