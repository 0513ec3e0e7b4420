"""What an operator watches: /metrics after real clients used the broker, the liveness and
readiness endpoints, JSON logs, and the Grafana dashboard and Prometheus alerts in ops/,
checked against a live /metrics and with promtool (scripts/test's deps phase fetches it).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import yaml
from confluent_kafka import Consumer

from conftest import spate_binary
from helpers import create_topic, produce_all, producer, unique, wait_until
from kafka_wire import RawConnection

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "ops" / "grafana" / "spate.json"
ALERTS = ROOT / "ops" / "prometheus" / "alerts.yml"
ALERT_TESTS = ROOT / "ops" / "prometheus" / "alerts_test.yml"

SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+(\S+)$")
LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')
# Metric names in PromQL: Spate's own and the process_* ones. `up` and the like come from
# Prometheus itself, not from /metrics.
METRIC_NAME = re.compile(r"\b((?:spate|process)_[a-zA-Z0-9_]+)\b")


# --- /metrics --------------------------------------------------------------------------------


def scrape_text(http_addr: str) -> str:
    with urllib.request.urlopen(f"http://{http_addr}/metrics", timeout=10) as resp:
        assert resp.status == 200
        assert resp.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        return resp.read().decode()


def parse(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Exposition text → {(name, labels): value}; fails on a line that is not a sample."""
    out = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = SAMPLE.match(line)
        assert m, f"not a Prometheus sample: {line!r}"
        labels = frozenset(LABEL.findall(m.group(2) or ""))
        out[(m.group(1), labels)] = float(m.group(3))
    return out


def scrape(http_addr: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    return parse(scrape_text(http_addr))


def value(samples, name: str, **labels: str) -> float:
    key = (name, frozenset(labels.items()))
    assert key in samples, f"no {name}{labels} on /metrics"
    return samples[key]


def histogram(samples, name: str, **labels: str) -> tuple[list[tuple[float, float]], float, float]:
    """(buckets as (le, cumulative count) in order, count, sum) of one histogram series."""
    buckets = []
    for (sample, sample_labels), v in samples.items():
        if sample != f"{name}_bucket":
            continue
        d = dict(sample_labels)
        le = d.pop("le")
        if d == labels:
            buckets.append((float(le), v))
    assert buckets, f"no {name}{labels} buckets on /metrics"
    buckets.sort()
    return buckets, value(samples, f"{name}_count", **labels), value(samples, f"{name}_sum", **labels)


def check_histogram(samples, name: str, **labels: str) -> float:
    """Asserts a histogram is well formed; returns its count."""
    buckets, count, total = histogram(samples, name, **labels)
    counts = [c for _, c in buckets]
    assert counts == sorted(counts), f"{name}{labels} buckets are not cumulative: {buckets}"
    assert buckets[-1] == (float("inf"), count), f"{name}{labels}: +Inf bucket is not the count"
    assert total >= 0
    return count


def promtool() -> str:
    path = os.environ.get("PROMTOOL") or shutil.which("promtool")
    cached = Path.home() / ".cache" / "spate" / "bin" / "promtool"
    if not path and cached.is_file():
        path = str(cached)
    if not path or not os.access(path, os.X_OK):
        pytest.fail("promtool not found: scripts/test's deps phase fetches it (or set PROMTOOL)", pytrace=False)
    return path


def run_promtool(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [promtool(), *args], input=stdin, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, f"promtool {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}"
    return result


def use_the_broker(bootstrap: str) -> tuple[str, str]:
    """Produces with confluent-kafka (acks=all) and reads everything back through a consumer
    group that commits, so produce, fetch, fsync and lag series all exist. Returns (topic,
    group)."""
    topic, group = unique("observed"), unique("observers")
    create_topic(bootstrap, topic, 2)
    p = producer(bootstrap, acks="all")
    produce_all(p, topic, [{"key": f"k{i}".encode(), "value": b"v" * 100} for i in range(200)])
    c = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": group,
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    try:
        c.subscribe([topic])
        seen = []

        def all_read() -> bool:
            for m in c.consume(num_messages=200, timeout=0.5):
                assert not m.error(), m.error()
                seen.append(m)
            return len(seen) >= 200

        wait_until(all_read, 60, what="200 records through the group")
        c.commit(asynchronous=False)
    finally:
        c.close()
    return topic, group


def test_metrics_show_latency_process_build_and_disk_after_real_clients(spate):
    before = scrape(spate.http_addr)
    use_the_broker(spate.bootstrap)

    def moved() -> dict:
        after = scrape(spate.http_addr)
        fetch = after.get(("spate_kafka_request_duration_seconds_count", frozenset({("api", "Fetch")})), 0)
        return after if fetch > 0 else {}

    after = wait_until(moved, 30, what="Fetch in the request histogram")
    text = scrape_text(spate.http_addr)

    # Request time per API moved for the APIs the clients used.
    for api in ["Produce", "Fetch", "Metadata", "OffsetCommit", "JoinGroup"]:
        count = check_histogram(after, "spate_kafka_request_duration_seconds", api=api)
        was = before.get(("spate_kafka_request_duration_seconds_count", frozenset({("api", api)})), 0)
        assert count > was, f"{api}: request count did not move ({was} → {count})"
    assert check_histogram(after, "spate_kafka_request_queue_seconds", api="Produce") > 0
    assert check_histogram(after, "spate_kafka_request_queue_seconds", api="Fetch") > 0
    produces = value(after, "spate_kafka_request_duration_seconds_count", api="Produce")
    # Every produce appended at least one partition's batch, and acks=all waited for fsyncs.
    assert check_histogram(after, "spate_produce_append_seconds") >= produces
    assert check_histogram(after, "spate_log_fsync_seconds") > value(before, "spate_log_fsync_seconds_count")
    assert check_histogram(after, "spate_fetch_wait_seconds") > value(before, "spate_fetch_wait_seconds_count")

    # The process, as every Prometheus client library names it.
    for name in [
        "process_cpu_seconds_total",
        "process_resident_memory_bytes",
        "process_virtual_memory_bytes",
        "process_open_fds",
        "process_max_fds",
        "process_threads",
    ]:
        assert value(after, name) > 0, name
    assert value(after, "process_open_fds") <= value(after, "process_max_fds")
    assert value(after, "process_resident_memory_bytes") <= value(after, "process_virtual_memory_bytes")
    start = value(after, "process_start_time_seconds")
    assert time.time() - 3600 < start <= time.time(), f"process started at {start}"

    # Build info carries what `spate --version` says; uptime runs.
    version_line = subprocess.run(
        [str(spate_binary()), "--version"], capture_output=True, text=True, check=True
    ).stdout
    m = re.match(r"spate (\S+) \(commit (\S+)\)", version_line)
    assert m, version_line
    assert value(after, "spate_build_info", version=m.group(1), commit=m.group(2)) == 1
    assert value(after, "spate_uptime_seconds") > 0

    # The data directory's filesystem.
    free, total = value(after, "spate_data_dir_free_bytes"), value(after, "spate_data_dir_total_bytes")
    assert 0 < free <= total
    disk = shutil.disk_usage(spate.data_dir)
    assert total == disk.total

    # The exposition passes Prometheus' own linter.
    run_promtool("check", "metrics", stdin=text)


# --- liveness and readiness ------------------------------------------------------------------


def get(http_addr: str, path: str) -> tuple[int, dict]:
    try:
        with urllib.request.urlopen(f"http://{http_addr}{path}", timeout=5) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def test_liveness_holds_while_readiness_turns_away_a_stopping_broker(spate):
    assert get(spate.http_addr, "/health/live") == (200, {"status": "ok"})
    assert get(spate.http_addr, "/health/ready") == (200, {"status": "ok"})
    assert get(spate.http_addr, "/health") == (200, {"status": "ok"})

    # A fetch long-polling on an empty topic keeps the broker in its shutdown for up to 5 s.
    topic = unique("stopping")
    create_topic(spate.bootstrap, topic)
    conn = RawConnection(spate.bootstrap)

    def fetches() -> float:
        return scrape(spate.http_addr).get(
            ("spate_kafka_requests_total", frozenset({("api", "Fetch")})), 0
        )

    before = fetches()
    correlation_id = conn.send_fetch_v4(topic, 0, 0, max_wait_ms=5000)
    wait_until(lambda: fetches() > before, 10, what="the fetch reaching the broker")

    assert spate.proc is not None
    spate.proc.send_signal(signal.SIGTERM)
    wait_until(
        lambda: get(spate.http_addr, "/health/ready") == (503, {"status": "stopping"}),
        4,
        what="/health/ready answering 503 stopping",
    )
    assert get(spate.http_addr, "/health") == (503, {"status": "stopping"})
    assert get(spate.http_addr, "/health/live") == (200, {"status": "ok"})
    # The long poll still gets its (empty) answer, then the broker exits cleanly.
    error_code, _, records = conn.recv_fetch_v4(correlation_id, timeout_s=30)
    assert (error_code, records) == (0, b"")
    conn.close()
    assert spate.proc.wait(60) == 0


# --- JSON logs -------------------------------------------------------------------------------


def test_json_logs_are_one_object_per_line_with_the_ready_event(spate_factory, tmp_path):
    config = tmp_path / "spate.toml"
    config.write_text('log-format = "json"\n')
    broker = spate_factory(args=["--config", str(config)])
    topic = unique("json-logs")
    create_topic(broker.bootstrap, topic)
    broker.stop()

    events = []
    for line in broker.log_text().splitlines():
        if line.startswith("----- "):  # the fixture's own markers
            continue
        event = json.loads(line)
        assert isinstance(event, dict), line
        assert {"timestamp", "level", "message", "target"} <= event.keys(), line
        events.append(event)
    ready = [e for e in events if e["message"] == "spate is ready"]
    assert len(ready) == 1, events
    ready = ready[0]
    assert ready["level"] == "INFO" and ready["target"] == "spate_server"
    assert ready["kafka_addr"] == broker.kafka_addr
    assert ready["http_addr"] == broker.http_addr
    assert ready["registry_addr"] == broker.registry_addr
    assert ready["data_dir"] == str(broker.data_dir)
    assert re.fullmatch(r"\d+\.\d+\.\d+", ready["version"]) and ready["commit"]
    assert any(e["message"] == "created topic" and e.get("topic") == topic for e in events)
    messages = [e["message"] for e in events]
    assert messages[-1] == "stopped" and "shutting down" in messages, messages[-5:]


def test_log_format_is_checked_before_anything_starts(tmp_path):
    result = subprocess.run(
        [str(spate_binary()), "serve", "--data-dir", str(tmp_path / "data")],
        env={**os.environ, "SPATE_LOG_FORMAT": "xml"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert 'unknown log format "xml": text or json' in result.stderr
    assert not (tmp_path / "data").exists(), "nothing was opened"


# --- the dashboard and the alerts ------------------------------------------------------------


def panels(dashboard: dict) -> list[dict]:
    out = []
    for panel in dashboard["panels"]:
        out.append(panel)
        out.extend(panel.get("panels", []))  # collapsed rows hold their panels
    return out


def test_dashboard_and_alerts_name_only_metrics_a_live_broker_serves(spate):
    dashboard = json.loads(DASHBOARD.read_text())
    rules = yaml.safe_load(ALERTS.read_text())
    run_promtool("check", "rules", str(ALERTS))
    # The rules' own unit tests: each alert fires on the series it is about, not on a healthy
    # broker's.
    run_promtool("test", "rules", str(ALERT_TESTS))

    wanted: dict[str, set[str]] = {}  # metric → where it is used
    exprs = []
    for panel in panels(dashboard):
        if panel["type"] == "row":
            continue
        targets = panel.get("targets", [])
        assert targets, f"panel {panel['title']!r} has no query"
        for target in targets:
            exprs.append((f"panel {panel['title']!r}", target["expr"]))
    for variable in dashboard["templating"]["list"]:
        if variable["type"] == "query":
            exprs.append((f"variable {variable['name']}", variable["definition"]))
    alerts = [rule for group in rules["groups"] for rule in group["rules"]]
    for rule in alerts:
        exprs.append((f"alert {rule['alert']}", rule["expr"]))
    for where, expr in exprs:
        names = METRIC_NAME.findall(expr)
        assert names or where.startswith("alert"), f"{where} names no metric: {expr}"
        for name in names:
            wanted.setdefault(name, set()).add(where)

    # The alerts an operator needs are there.
    names = {rule["alert"] for rule in alerts}
    for needed in [
        "SpateDown",
        "SpateDataDirAlmostFull",
        "SpateProduceLatencyHigh",
        "SpateConsumerLagGrowing",
        "SpateAuditEventsDropped",
    ]:
        assert needed in names, f"alert {needed} missing from {ALERTS}"
    for rule in alerts:
        assert rule["labels"]["severity"] in {"warning", "critical"}, rule["alert"]
        assert rule["annotations"]["summary"] and rule["annotations"]["description"], rule["alert"]

    # The dashboard's queries are valid PromQL too: promtool checks them as recording rules.
    recording = {
        "groups": [
            {
                "name": "dashboard",
                "rules": [
                    {
                        "record": f"dashboard:query_{i}",
                        "expr": expr.replace("$__rate_interval", "5m").replace("$instance", ".*"),
                    }
                    for i, (_, expr) in enumerate(exprs)
                    if not expr.startswith("label_values(")
                ],
            }
        ]
    }
    dashboard_rules = spate.data_dir.parent / "dashboard-queries.yml"
    dashboard_rules.write_text(yaml.safe_dump(recording))
    run_promtool("check", "rules", str(dashboard_rules))

    # A broker that served a produce, a fetch and a group has every series they name.
    use_the_broker(spate.bootstrap)

    def all_served() -> bool:
        served = {name for name, _ in scrape(spate.http_addr)}
        missing = {name: sorted(wanted[name]) for name in sorted(wanted) if name not in served}
        assert not missing, f"not on /metrics: {missing}"
        return True

    wait_until(all_served, 30, what="every metric the dashboard and alerts name")
    assert len(wanted) >= 25, sorted(wanted)
