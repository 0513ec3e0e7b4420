"""Spate SQL end to end: statements through the HTTP API (port 8088 in production) and the
`spate sql` shell, input produced with confluent-kafka (and the registry's Avro serializer),
results read back read_committed and compared with the same query computed independently —
by DuckDB where the query is SQL it also speaks, by plain Python otherwise."""

from __future__ import annotations

import json
import re
import subprocess
import threading
import time
from datetime import datetime, timezone
from typing import Any

import duckdb
import pytest
import requests
from confluent_kafka import TopicPartition
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer, AvroSerializer
from confluent_kafka.serialization import MessageField, SerializationContext

from conftest import spate_binary
from helpers import consumer, create_topic, produce_all, producer, unique, wait_until

pytestmark = pytest.mark.timeout(300)

BASE_MS = 1_700_000_000_000  # 2023-11-14 22:13:20 UTC


def ts_text(ms: int) -> str:
    dt = datetime.fromtimestamp(ms / 1000, tz=timezone.utc)
    return dt.strftime("%Y-%m-%d %H:%M:%S.") + f"{ms % 1000:03d}"


class Sql:
    """The SQL API of one spate serve."""

    def __init__(self, broker: Any) -> None:
        wait_until(lambda: broker.sql_addr, timeout_s=60, what="the sql worker's address")
        self.url = f"http://{broker.sql_addr}"
        self.bootstrap = broker.kafka_addr

    def run(self, sql: str, expect_status: int = 200) -> Any:
        r = requests.post(f"{self.url}/statements", json={"sql": sql}, timeout=60)
        assert r.status_code == expect_status, f"{r.status_code}: {r.text}"
        return r.json()

    def query(self, sql: str) -> tuple[dict, list[list[Any]]]:
        """A bounded query (LIMIT): its header and rows."""
        r = requests.post(f"{self.url}/query-stream", json={"sql": sql}, timeout=60, stream=True)
        assert r.status_code == 200, r.text
        lines = [json.loads(line) for line in r.iter_lines() if line]
        assert lines, "no header line"
        for line in lines[1:]:
            assert not isinstance(line, dict), f"the query failed: {line}"
        return lines[0], lines[1:]

    def job(self, job_id: str) -> dict:
        r = requests.get(f"{self.url}/jobs/{job_id}", timeout=10)
        assert r.status_code == 200, r.text
        return r.json()


def produce_json(bootstrap: str, topic: str, rows: list[dict], keys: list[Any] | None = None) -> None:
    p = producer(bootstrap)
    records = []
    for i, row in enumerate(rows):
        rec: dict[str, Any] = {"value": json.dumps(row).encode()}
        if keys is not None:
            rec["key"] = json.dumps(keys[i]).encode()
        records.append(rec)
    produce_all(p, topic, records)


def read_committed(bootstrap: str, topic: str, partitions: int = 1) -> list[tuple[Any, Any]]:
    """Every committed record of `topic` as (key, value) JSON (None for a tombstone)."""
    c = consumer(bootstrap, **{"isolation.level": "read_committed"})
    out = []
    try:
        ends = {}
        for p in range(partitions):
            _, high = c.get_watermark_offsets(TopicPartition(topic, p), timeout=10, cached=False)
            ends[p] = high
        c.assign([TopicPartition(topic, p, 0) for p in range(partitions)])
        deadline = time.monotonic() + 30
        done = {p for p, h in ends.items() if h == 0}
        while len(done) < partitions:
            assert time.monotonic() < deadline, f"reading {topic} timed out"
            for m in c.consume(num_messages=500, timeout=0.5):
                assert not m.error(), m.error()
                key = json.loads(m.key()) if m.key() else None
                value = json.loads(m.value()) if m.value() is not None else None
                out.append((key, value))
            for p, high in ends.items():
                pos = c.position([TopicPartition(topic, p)])[0].offset
                # The last stable offset can stop short of the end by a transaction marker.
                if pos >= high - 1 or pos >= high:
                    if pos >= high or p in done or not c.consume(num_messages=1, timeout=0.2):
                        done.add(p)
    finally:
        c.close()
    return out


BIDS_DDL = """CREATE TABLE {name} (
  auction BIGINT,
  bidder BIGINT,
  price DOUBLE,
  channel STRING,
  ts TIMESTAMP(3),
  WATERMARK FOR ts AS ts - INTERVAL '1' SECOND
) WITH ('topic' = '{topic}', 'value.format' = 'json', 'scan.startup.mode' = 'earliest-offset')"""


def bids(n: int, start_ms: int = BASE_MS, step_ms: int = 250) -> list[dict]:
    channels = ["google", "facebook", "baidu", "apple"]
    return [
        {
            "auction": 1000 + i % 7,
            "bidder": i % 13,
            "price": float((i * 37) % 500) + 0.5,
            "channel": channels[i % 4],
            "ts": ts_text(start_ms + i * step_ms),
        }
        for i in range(n)
    ]


@pytest.fixture
def sql_broker(spate_factory):
    return spate_factory(sql_listen="127.0.0.1:0", connect_listen="off")


def test_filters_and_projections_stream_to_the_caller(sql_broker) -> None:
    sql = Sql(sql_broker)
    topic = unique("bids")
    create_topic(sql.bootstrap, topic)
    rows = bids(200)
    produce_json(sql.bootstrap, topic, rows)
    sql.run(BIDS_DDL.format(name="bids", topic=topic))
    header, got = sql.query(
        "SELECT auction, UPPER(channel) AS channel, price * 2 AS doubled, "
        "CASE WHEN price > 250 THEN 'high' ELSE 'low' END AS band, DATE_FORMAT(ts, 'HH:mm:ss') AS t "
        "FROM bids WHERE channel IN ('google', 'apple') AND price BETWEEN 10 AND 400 LIMIT 40"
    )
    assert header["columnNames"] == ["auction", "channel", "doubled", "band", "t"]
    assert header["columnTypes"][0] == "BIGINT"
    expected = [
        [
            r["auction"],
            r["channel"].upper(),
            r["price"] * 2,
            "high" if r["price"] > 250 else "low",
            r["ts"][11:19],
        ]
        for r in rows
        if r["channel"] in ("google", "apple") and 10 <= r["price"] <= 400
    ][:40]
    assert got == expected


def test_an_open_query_ends_with_a_reason_when_the_server_stops(sql_broker) -> None:
    sql = Sql(sql_broker)
    topic = unique("bids")
    create_topic(sql.bootstrap, topic)
    produce_json(sql.bootstrap, topic, bids(5))
    sql.run(BIDS_DDL.format(name="bids", topic=topic))
    # No LIMIT: the query streams until the caller leaves, or the server stops.
    r = requests.post(f"{sql.url}/query-stream", json={"sql": "SELECT auction FROM bids"}, timeout=60, stream=True)
    assert r.status_code == 200, r.text
    lines = r.iter_lines()
    assert "queryId" in json.loads(next(lines))
    got = []
    while len(got) < 5:
        got.append(json.loads(next(lines)))
    assert got == [[b["auction"]] for b in bids(5)]
    # A graceful stop (stop() asserts exit code 0 within its deadline) ends the stream with a
    # last line that says why, rather than waiting for the caller.
    sql_broker.stop()
    rest = [json.loads(line) for line in lines if line]
    assert rest and rest[-1]["@type"] == "query_error", rest
    assert "stopping" in rest[-1]["message"], rest


def test_tumbling_windows_match_duckdb_and_late_rows_are_dropped_and_counted(sql_broker) -> None:
    sql = Sql(sql_broker)
    topic, sink = unique("bids"), unique("per-window")
    create_topic(sql.bootstrap, topic)
    rows = bids(400)
    produce_json(sql.bootstrap, topic, rows)
    sql.run(BIDS_DDL.format(name="bids", topic=topic))
    sql.run(
        f"CREATE TABLE per_window (window_start TIMESTAMP(3), window_end TIMESTAMP(3), channel STRING, "
        f"n BIGINT, total DOUBLE, top DOUBLE, bidders BIGINT) WITH ('topic' = '{sink}', 'value.format' = 'json')"
    )
    create_topic(sql.bootstrap, sink)
    [answer] = sql.run(
        "INSERT INTO per_window SELECT window_start, window_end, channel, COUNT(*), SUM(price), "
        "MAX(price), COUNT(DISTINCT bidder) "
        "FROM TABLE(TUMBLE(TABLE bids, DESCRIPTOR(ts), INTERVAL '10' SECOND)) "
        "GROUP BY window_start, window_end, channel"
    )
    job = answer["jobId"]
    last_ms = BASE_MS + 399 * 250
    # Wait until the watermark passed the input, then send rows for closed windows: late.
    wait_until(
        lambda: sql.job(job)["metrics"]["watermark"] == ts_text(last_ms - 1000),
        timeout_s=60,
        what="the job's watermark to reach the input's end",
    )
    late = bids(5, start_ms=BASE_MS, step_ms=1000)
    produce_json(sql.bootstrap, topic, late)
    wait_until(
        lambda: sql.job(job)["metrics"]["lateRecordsDropped"] == 5,
        timeout_s=60,
        what="five late rows dropped",
    )
    # Windows that closed: end - 1 ms <= watermark.
    watermark = last_ms - 1000
    con = duckdb.connect()
    con.execute("CREATE TABLE bids AS SELECT * FROM read_json_auto(?)", [json_file(rows)])
    expected = con.execute(
        f"""SELECT epoch_ms(time_bucket(INTERVAL 10 SECOND, ts::TIMESTAMP)) AS ws, channel,
                   COUNT(*), SUM(price), MAX(price), COUNT(DISTINCT bidder)
            FROM bids GROUP BY ws, channel
            HAVING ws + 10000 - 1 <= {watermark} ORDER BY ws, channel"""
    ).fetchall()
    wait_until(
        lambda: len(read_committed(sql.bootstrap, sink)) == len(expected),
        timeout_s=60,
        what=f"{len(expected)} windows in {sink}",
    )
    got = sorted(
        (
            to_ms(v["window_start"]), v["channel"], v["n"], v["total"], v["top"], v["bidders"]
        )
        for _, v in read_committed(sql.bootstrap, sink)
    )
    assert got == [tuple(r) for r in expected]
    assert all(to_ms(v["window_end"]) - to_ms(v["window_start"]) == 10_000 for _, v in read_committed(sql.bootstrap, sink))


def json_file(rows: list[dict]) -> str:
    import tempfile

    f = tempfile.NamedTemporaryFile("w", suffix=".json", delete=False)
    for r in rows:
        f.write(json.dumps(r) + "\n")
    f.close()
    return f.name


def to_ms(text: str) -> int:
    dt = datetime.strptime(text, "%Y-%m-%d %H:%M:%S.%f").replace(tzinfo=timezone.utc)
    return int(dt.timestamp() * 1000)


def python_windows(rows: list[dict], kind: str, size: int, step: int) -> dict[tuple[int, int], int]:
    """Counts per window, as Flink assigns HOP and CUMULATE windows."""
    counts: dict[tuple[int, int], int] = {}
    for r in rows:
        t = to_ms(r["ts"])
        if kind == "hop":
            start = t - t % step
            while start > t - size:
                counts[(start, start + size)] = counts.get((start, start + size), 0) + 1
                start -= step
        else:  # cumulate
            start = t - t % size
            end = t - t % step + step
            while end <= start + size:
                counts[(start, end)] = counts.get((start, end), 0) + 1
                end += step
    return counts


@pytest.mark.parametrize(
    "kind,tvf,size,step",
    [
        ("hop", "HOP(TABLE bids, DESCRIPTOR(ts), INTERVAL '5' SECOND, INTERVAL '20' SECOND)", 20_000, 5_000),
        ("cumulate", "CUMULATE(TABLE bids, DESCRIPTOR(ts), INTERVAL '5' SECOND, INTERVAL '20' SECOND)", 20_000, 5_000),
    ],
)
def test_hop_and_cumulate_windows(sql_broker, kind: str, tvf: str, size: int, step: int) -> None:
    sql = Sql(sql_broker)
    topic = unique("bids")
    create_topic(sql.bootstrap, topic)
    rows = bids(300)
    produce_json(sql.bootstrap, topic, rows)
    sql.run(BIDS_DDL.format(name="bids", topic=topic))
    watermark = to_ms(rows[-1]["ts"]) - 1000
    expected = {w: n for w, n in python_windows(rows, kind, size, step).items() if w[1] - 1 <= watermark}
    header, got = sql.query(
        f"SELECT window_start, window_end, COUNT(*) AS n FROM TABLE({tvf}) "
        f"GROUP BY window_start, window_end LIMIT {len(expected)}"
    )
    assert header["columnNames"] == ["window_start", "window_end", "n"]
    assert {(to_ms(s), to_ms(e)): n for s, e, n in got} == expected


def test_session_windows_close_after_the_gap(sql_broker) -> None:
    sql = Sql(sql_broker)
    topic = unique("clicks")
    create_topic(sql.bootstrap, topic)
    # user a: a session of 3 clicks, a gap, then 2; user b: one session of 2; then time moves on.
    clicks = [("a", 0), ("b", 1_000), ("a", 2_000), ("a", 5_000), ("b", 3_000), ("a", 30_000), ("a", 31_000), ("z", 100_000)]
    produce_json(
        sql.bootstrap, topic, [{"user": u, "ts": ts_text(BASE_MS + t)} for u, t in clicks]
    )
    sql.run(
        f"CREATE TABLE clicks (`user` STRING, ts TIMESTAMP(3), WATERMARK FOR ts AS ts) "
        f"WITH ('topic' = '{topic}', 'value.format' = 'json')"
    )
    _, got = sql.query(
        "SELECT `user`, window_start, window_end, COUNT(*) AS n FROM TABLE(SESSION(TABLE clicks PARTITION BY `user`, "
        "DESCRIPTOR(ts), INTERVAL '10' SECOND)) GROUP BY `user`, window_start, window_end LIMIT 3"
    )
    sessions = sorted((u, to_ms(s) - BASE_MS, to_ms(e) - BASE_MS, n) for u, s, e, n in got)
    assert sessions == [("a", 0, 15_000, 3), ("a", 30_000, 41_000, 2), ("b", 1_000, 13_000, 2)]
    # Flink's deprecated group window syntax (Nexmark q11's) is the same query.
    _, legacy = sql.query(
        "SELECT C.`user`, SESSION_START(C.ts, INTERVAL '10' SECOND) AS s, SESSION_END(C.ts, INTERVAL '10' SECOND) AS e, "
        "COUNT(*) AS n FROM clicks C GROUP BY C.`user`, SESSION(C.ts, INTERVAL '10' SECOND) LIMIT 3"
    )
    assert sorted((u, to_ms(s) - BASE_MS, to_ms(e) - BASE_MS, n) for u, s, e, n in legacy) == sessions
    _, tumbling = sql.query(
        "SELECT TUMBLE_START(ts, INTERVAL '10' SECOND), TUMBLE_END(ts, INTERVAL '10' SECOND), COUNT(*) "
        "FROM clicks GROUP BY TUMBLE(ts, INTERVAL '10' SECOND) LIMIT 2"
    )
    assert sorted((to_ms(s) - BASE_MS, to_ms(e) - BASE_MS, n) for s, e, n in tumbling) == [(0, 10_000, 5), (30_000, 40_000, 2)]


def test_processing_time_windows_close_by_the_clock(sql_broker) -> None:
    """TUMBLE over PROCTIME() (Nexmark q12's view): each row counts in the window of the wall
    clock when it passed, and a window closes when the clock passes its end, with no new input."""
    sql = Sql(sql_broker)
    topic, sink = unique("bids"), unique("per-second")
    create_topic(sql.bootstrap, topic)
    create_topic(sql.bootstrap, sink)
    rows = bids(60)
    produce_json(sql.bootstrap, topic, rows)
    sql.run(BIDS_DDL.format(name="bids", topic=topic))
    sql.run("CREATE VIEW b AS SELECT *, PROCTIME() AS p_time FROM bids")
    sql.run(
        f"CREATE TABLE per_second (bidder BIGINT, n BIGINT, starttime TIMESTAMP(3), endtime TIMESTAMP(3)) "
        f"WITH ('topic' = '{sink}', 'value.format' = 'json')"
    )
    sql.run(
        "INSERT INTO per_second SELECT bidder, COUNT(*), window_start, window_end "
        "FROM TABLE(TUMBLE(TABLE b, DESCRIPTOR(p_time), INTERVAL '1' SECOND)) GROUP BY bidder, window_start, window_end"
    )

    def per_bidder() -> dict[int, int]:
        out: dict[int, int] = {}
        for _, v in read_committed(sql.bootstrap, sink):
            assert to_ms(v["endtime"]) - to_ms(v["starttime"]) == 1000, v
            out[v["bidder"]] = out.get(v["bidder"], 0) + v["n"]
        return out

    expected: dict[int, int] = {}
    for r in rows:
        expected[r["bidder"]] = expected.get(r["bidder"], 0) + 1
    wait_until(lambda: per_bidder() == expected, timeout_s=60, what="every row counted once in a closed window")
    # Event-time windows over a time without a watermark, and not PROCTIME(), say both ways.
    e = sql.run("EXPLAIN SELECT COUNT(*) FROM TABLE(TUMBLE(TABLE b, DESCRIPTOR(`ts`), INTERVAL '1' SECOND)) GROUP BY window_start, window_end", expect_status=400)
    assert "PROCTIME()" in e["message"] and "WATERMARK" in e["message"], e


def test_updating_aggregates_are_upserts_and_read_back_as_a_table(sql_broker) -> None:
    sql = Sql(sql_broker)
    topic, sink = unique("bids"), unique("totals")
    create_topic(sql.bootstrap, topic)
    create_topic(sql.bootstrap, sink)
    rows = bids(150)
    produce_json(sql.bootstrap, topic, rows)
    sql.run(BIDS_DDL.format(name="bids", topic=topic))
    sql.run(
        f"CREATE TABLE totals (channel STRING, n BIGINT, total DOUBLE, PRIMARY KEY (channel) NOT ENFORCED) "
        f"WITH ('connector' = 'upsert-kafka', 'topic' = '{sink}', 'key.format' = 'json', 'value.format' = 'json')"
    )
    sql.run("INSERT INTO totals SELECT channel, COUNT(*), SUM(price) FROM bids GROUP BY channel")
    expected: dict[str, tuple[int, float]] = {}
    for r in rows:
        n, total = expected.get(r["channel"], (0, 0.0))
        expected[r["channel"]] = (n + 1, total + r["price"])

    def latest() -> dict[str, tuple[int, float]]:
        out: dict[str, tuple[int, float]] = {}
        for key, value in read_committed(sql.bootstrap, sink):
            assert key == {"channel": value["channel"]}, (key, value)
            out[value["channel"]] = (value["n"], value["total"])
        return out

    wait_until(lambda: latest() == expected, timeout_s=60, what="the final totals per channel")
    # Read back as a table: a changelog (op first), the latest row per key inserted once.
    header, got = sql.query("SELECT channel, n FROM totals WHERE n > 0 LIMIT 4")
    assert header["columnNames"] == ["op", "channel", "n"]
    assert sorted(got) == sorted(["+I", c, n] for c, (n, _) in expected.items())
    # An appending table cannot take updates: Flink's rule, said by name.
    append = unique("append")
    sql.run(f"CREATE TABLE appending (channel STRING, n BIGINT) WITH ('topic' = '{append}')")
    [error] = [sql.run("INSERT INTO appending SELECT channel, COUNT(*) FROM bids GROUP BY channel", expect_status=400)]
    assert "append-only" in error["message"] and "upsert-kafka" in error["message"]


def test_materialized_views_are_looked_up_by_key(sql_broker) -> None:
    sql = Sql(sql_broker)
    topic = unique("bids")
    create_topic(sql.bootstrap, topic)
    produce_json(sql.bootstrap, topic, bids(70))
    sql.run(BIDS_DDL.format(name="bids", topic=topic))
    [answer] = sql.run(
        "CREATE MATERIALIZED VIEW by_auction AS SELECT auction, COUNT(*) AS bids, MAX(price) AS top FROM bids GROUP BY auction"
    )
    assert answer["type"] == "job"

    def lookup(key: int) -> dict | None:
        r = requests.get(f"{sql.url}/views/by_auction/keys/{key}", timeout=10)
        return r.json() if r.status_code == 200 else None

    wait_until(lambda: lookup(1000) == {"auction": 1000, "bids": 10, "top": max(r["price"] for r in bids(70) if r["auction"] == 1000)}, timeout_s=60, what="auction 1000's row")
    # New input updates the view.
    produce_json(sql.bootstrap, topic, [dict(bids(1)[0], price=9999.0)])
    wait_until(lambda: (lookup(1000) or {}).get("top") == 9999.0, timeout_s=60, what="the view to see the new bid")
    scan = requests.get(f"{sql.url}/views/by_auction", timeout=10).json()
    assert sorted(r["auction"] for r in scan["rows"]) == list(range(1000, 1007))
    missing = requests.get(f"{sql.url}/views/by_auction/keys/42", timeout=10)
    assert missing.status_code == 404 and "42" in missing.json()["message"]
    views = sql.run("SHOW VIEWS")[0]
    assert views["rows"][0][0] == "by_auction"
    # A graceful stop closes the views' readers and the worker's clients before the broker
    # stops: no client logs the broker going away.
    sql_broker.stop()
    assert sql_broker.unexpected_errors() == []


def windows_match_duckdb(
    bootstrap: str, p: Any, topic: str, partitions: int, sink: str, sink_partitions: int, sent: list[dict]
) -> None:
    """Closes every one-second window of `topic` (one more event per partition far ahead), then
    waits until the read_committed windows in `sink` are exactly DuckDB's over `sent`."""
    produce_all(p, topic, [{"value": json.dumps({"k": "end", "v": 0, "ts": ts_text(BASE_MS + 10_000_000)}).encode(), "partition": q} for q in range(partitions)])
    con = duckdb.connect()
    con.execute("CREATE TABLE events AS SELECT * FROM read_json_auto(?)", [json_file(sent)])
    expected = con.execute(
        "SELECT epoch_ms(time_bucket(INTERVAL 1 SECOND, ts::TIMESTAMP)), k, COUNT(*), SUM(v)::BIGINT "
        "FROM events GROUP BY ALL ORDER BY ALL"
    ).fetchall()

    def output() -> list[tuple]:
        rows = read_committed(bootstrap, sink, partitions=sink_partitions)
        return sorted((to_ms(v["window_start"]), v["k"], v["n"], v["total"]) for _, v in rows)

    wait_until(lambda: len(output()) >= len(expected), timeout_s=120, what=f"{len(expected)} windows")
    assert output() == [tuple(r) for r in expected]


def test_a_job_is_exactly_once_across_kill_9(spate_factory) -> None:
    broker = spate_factory(sql_listen="127.0.0.1:0", connect_listen="off", args=["--sql-checkpoint-interval-ms", "300"])
    sql = Sql(broker)
    broker.keep_ports()
    topic, sink = unique("events"), unique("counts")
    create_topic(sql.bootstrap, topic, partitions=3)
    create_topic(sql.bootstrap, sink)
    sql.run(
        f"CREATE TABLE events (k STRING, v BIGINT, ts TIMESTAMP(3), WATERMARK FOR ts AS ts) "
        f"WITH ('topic' = '{topic}', 'value.format' = 'json')"
    )
    sql.run(
        f"CREATE TABLE counts (window_start TIMESTAMP(3), k STRING, n BIGINT, total BIGINT) "
        f"WITH ('topic' = '{sink}', 'value.format' = 'json')"
    )
    [answer] = sql.run(
        "INSERT INTO counts SELECT window_start, k, COUNT(*), SUM(v) FROM TABLE(TUMBLE(TABLE events, "
        "DESCRIPTOR(ts), INTERVAL '1' SECOND)) GROUP BY window_start, window_end, k"
    )
    job = answer["jobId"]
    # A producer writes 30,000 events (in event-time order per partition) while Spate is killed.
    total = 30_000
    sent: list[dict] = []
    delivered: list[int] = []
    errors: list[str] = []
    p = producer(sql.bootstrap, **{"enable.idempotence": True, "acks": "all", "message.timeout.ms": 120000})

    def on_delivery(err: Any, _msg: Any) -> None:
        if err is not None:
            errors.append(str(err))
        else:
            delivered.append(1)

    def produce() -> None:
        for i in range(total):
            row = {"k": f"k{i % 5}", "v": i, "ts": ts_text(BASE_MS + i * 10)}
            sent.append(row)
            while True:
                try:
                    p.produce(topic, key=str(i % 3).encode(), value=json.dumps(row).encode(), partition=i % 3, on_delivery=on_delivery)
                    break
                except BufferError:
                    p.poll(0.05)
            if i % 120 == 0:
                p.poll(0)
                time.sleep(0.03)
        p.flush(120)

    writer = threading.Thread(target=produce)
    writer.start()
    wait_until(lambda: sql.job(job)["metrics"]["checkpoints"] >= 2, timeout_s=120, what="two checkpoints")
    assert len(sent) < total, "the input finished before the kill; the test would prove nothing"
    broker.kill()
    broker.start()
    sql = Sql(broker)
    writer.join(180)
    assert not errors, errors[:3]
    assert len(delivered) == total
    windows_match_duckdb(sql.bootstrap, p, topic, 3, sink, 1, sent)
    assert sql.job(job)["status"] == "RUNNING"


def worker_group(bootstrap: str, group: str) -> dict[str, list[int]]:
    """The members of a consumer group and the partitions each is assigned."""
    from confluent_kafka.admin import AdminClient

    admin = AdminClient({"bootstrap.servers": bootstrap})
    [future] = admin.describe_consumer_groups([group], request_timeout=10).values()
    described = future.result()
    return {
        m.member_id: sorted(tp.partition for tp in m.assignment.topic_partitions)
        for m in described.members
    }


def start_worker(broker: Any, tmp_path: Any, name: str) -> tuple[subprocess.Popen, str]:
    """`spate sql worker` against `broker`'s cluster; returns the process and its API's URL."""
    log_path = tmp_path / f"{name}.log"
    with open(log_path, "w") as log:  # the worker writes through its own descriptor
        worker = subprocess.Popen(
            [str(spate_binary()), "sql", "worker", "--brokers", broker.kafka_addr, "--listen", "127.0.0.1:0",
             "--schema-registry-url", f"http://{broker.registry_addr}", "--checkpoint-interval-ms", "300"],
            stdout=log, stderr=subprocess.STDOUT, env={"PATH": "/usr/bin:/bin"},
        )

    def address() -> str | None:
        for line in log_path.read_text().splitlines():
            if "spate sql worker is ready" in line:
                return line.split("sql_addr=")[1].split()[0]
        assert worker.poll() is None, "the worker exited:\n" + log_path.read_text()
        return None

    return worker, "http://" + wait_until(address, timeout_s=60, what=f"{name}'s address")


def test_a_parallel_job_is_shared_by_workers_and_exactly_once_across_kill_9(spate_factory, tmp_path) -> None:
    """With 'parallelism.default' a job runs as tasks per stage, an exchange topic between the
    stages; a second worker takes a share of the tasks, and when it is killed -9 mid-stream the
    first takes them back. The read_committed output equals DuckDB's over the same input."""
    broker = spate_factory(sql_listen="127.0.0.1:0", connect_listen="off", args=["--sql-checkpoint-interval-ms", "300"])
    sql = Sql(broker)
    topic, sink = unique("events"), unique("counts")
    create_topic(sql.bootstrap, topic, partitions=4)
    create_topic(sql.bootstrap, sink, partitions=2)
    sql.run(
        f"CREATE TABLE events (k STRING, v BIGINT, ts TIMESTAMP(3), WATERMARK FOR ts AS ts) "
        f"WITH ('topic' = '{topic}', 'value.format' = 'json')"
    )
    sql.run(
        f"CREATE TABLE counts (window_start TIMESTAMP(3), k STRING, n BIGINT, total BIGINT) "
        f"WITH ('topic' = '{sink}', 'value.format' = 'json')"
    )
    e = sql.run("SET 'parallelism.default' = 'many'", expect_status=400)
    assert "parallelism.default" in e["message"] and "1 to 256" in e["message"]
    answers = sql.run(
        "SET 'parallelism.default' = '2'; "
        "INSERT INTO counts SELECT window_start, k, COUNT(*), SUM(v) FROM TABLE(TUMBLE(TABLE events, "
        "DESCRIPTOR(ts), INTERVAL '1' SECOND)) GROUP BY window_start, window_end, k"
    )
    job = answers[-1]["jobId"]
    plan = sql.run("EXPLAIN SELECT k, COUNT(*) FROM events GROUP BY k")[0]["plan"]
    assert "Exchange(hash=[$0])" in plan, plan
    # A HOP window copies each row per window: the exchange sits below the copying.
    hop = sql.run(
        "EXPLAIN SELECT k, COUNT(*) FROM TABLE(HOP(TABLE events, DESCRIPTOR(ts), INTERVAL '1' SECOND, "
        "INTERVAL '5' SECOND)) GROUP BY k, window_start, window_end"
    )[0]["plan"]
    assert hop.index("WindowTableFunction") < hop.index("Exchange(hash=[$0])"), hop
    group = f"spate-sql-{job}-workers"
    # Two stages of two tasks: all four on the only worker.
    wait_until(lambda: list(worker_group(sql.bootstrap, group).values()) == [[0, 1, 2, 3]], timeout_s=60, what="one worker with the four tasks")

    sent: list[dict] = []
    p = producer(sql.bootstrap, **{"enable.idempotence": True, "acks": "all"})

    def produce(start: int, end: int, pause_every: int) -> None:
        for i in range(start, end):
            row = {"k": f"k{i % 5}", "v": i, "ts": ts_text(BASE_MS + i * 10)}
            sent.append(row)
            while True:
                try:
                    p.produce(topic, value=json.dumps(row).encode(), partition=i % 4)
                    break
                except BufferError:
                    p.poll(0.05)
            if pause_every and i % pause_every == 0:
                p.poll(0)
                time.sleep(0.03)
        p.flush(60)

    produce(0, 10_000, 0)
    worker, url = start_worker(broker, tmp_path, "worker-b")
    try:
        def shared() -> bool:
            members = worker_group(sql.bootstrap, group)
            return len(members) == 2 and all(members.values())

        wait_until(shared, timeout_s=60, what="the second worker to take a share of the tasks")

        def checkpoints_b() -> int:
            r = requests.get(f"{url}/jobs/{job}", timeout=10)
            return r.json()["metrics"]["checkpoints"] if r.status_code == 200 else 0

        wait_until(lambda: checkpoints_b() >= 1, timeout_s=60, what="the second worker to commit its tasks' work")
        total = 25_000
        writer = threading.Thread(target=produce, args=(10_000, total, 60))
        writer.start()
        before = checkpoints_b()
        wait_until(lambda: checkpoints_b() >= before + 2, timeout_s=60, what="the second worker to work on new input")
        assert len(sent) < total, "the input finished before the kill; the test would prove nothing"
        worker.kill()
        worker.wait()
        writer.join(120)
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait()
    # The first worker takes every task back once the second's session expires.
    wait_until(lambda: list(worker_group(sql.bootstrap, group).values()) == [[0, 1, 2, 3]], timeout_s=60, what="the first worker to take the tasks back")
    windows_match_duckdb(sql.bootstrap, p, topic, 4, sink, 2, sent)
    assert sql.job(job)["status"] == "RUNNING"
    # The exchange's records are deleted once the tasks reading them committed past them.
    c = consumer(sql.bootstrap)
    try:
        def purged() -> bool:
            lows = [c.get_watermark_offsets(TopicPartition(f"spate-sql-{job}-exchange-0", q), timeout=10, cached=False)[0] for q in range(2)]
            return all(low > 0 for low in lows)

        wait_until(purged, timeout_s=30, what="the exchange topic's consumed records deleted")
    finally:
        c.close()


def test_workers_follow_each_others_statements(spate_factory, tmp_path) -> None:
    """A table created on one worker is known to the other; a job started on one runs on both
    (its tasks shared); STOP JOB on either stops it everywhere."""
    broker = spate_factory(sql_listen="127.0.0.1:0", connect_listen="off", args=["--sql-checkpoint-interval-ms", "300"])
    sql = Sql(broker)
    topic, sink = unique("bids"), unique("per-channel")
    create_topic(sql.bootstrap, topic, partitions=2)
    create_topic(sql.bootstrap, sink)
    produce_json(sql.bootstrap, topic, bids(40))
    worker, url = start_worker(broker, tmp_path, "worker-b")
    try:
        def on_b(statement: str) -> Any:
            r = requests.post(f"{url}/statements", json={"sql": statement}, timeout=60)
            assert r.status_code == 200, r.text
            return r.json()

        on_b(BIDS_DDL.format(name="bids", topic=topic))
        on_b(f"CREATE TABLE per_channel (channel STRING, n BIGINT, PRIMARY KEY (channel) NOT ENFORCED) "
             f"WITH ('connector' = 'upsert-kafka', 'topic' = '{sink}', 'key.format' = 'json')")

        def tables_on_a() -> list[str]:
            return [r[0] for r in sql.run("SHOW TABLES")[0]["rows"]]

        wait_until(lambda: tables_on_a() == ["bids", "per_channel"], timeout_s=30, what="worker A to know B's tables")
        [_, answer] = sql.run("SET 'parallelism.default' = '2'; INSERT INTO per_channel SELECT channel, COUNT(*) FROM bids GROUP BY channel")
        job = answer["jobId"]
        group = f"spate-sql-{job}-workers"

        def shared() -> bool:
            members = worker_group(sql.bootstrap, group)
            return len(members) == 2 and all(members.values())

        wait_until(shared, timeout_s=60, what="both workers to run a share of the job's tasks")
        assert sql.job(job)["parallelism"] == 2
        wait_until(lambda: 1 <= sql.job(job)["metrics"]["tasks"] <= 3, timeout_s=30, what="worker A to say it runs a share of the tasks")

        def counts() -> dict:
            return {v["channel"]: v["n"] for _, v in read_committed(sql.bootstrap, sink)}

        wait_until(lambda: counts() == {"google": 10, "facebook": 10, "baidu": 10, "apple": 10}, timeout_s=60, what="the counts")
        # Stopped on B: A's share stops as well, and A says so.
        on_b(f"STOP JOB '{job}'")
        wait_until(lambda: sql.job(job)["status"] == "STOPPED", timeout_s=30, what="worker A to stop its share")
        wait_until(lambda: worker_group(sql.bootstrap, group) == {}, timeout_s=30, what="no worker in the job's group")
    finally:
        worker.terminate()
        assert worker.wait(30) == 0, (tmp_path / "worker-b.log").read_text()


def test_bad_statements_say_what_and_where(sql_broker) -> None:
    sql = Sql(sql_broker)
    topic = unique("bids")
    create_topic(sql.bootstrap, topic)
    sql.run(BIDS_DDL.format(name="bids", topic=topic))
    e = sql.run("SELECT auction,\n  FROM bids", expect_status=400)
    assert e["error_code"] == 40001 and "line 2" in e["message"] and "FROM" in e["message"]
    e = sql.run("INSERT INTO bids SELECT nope FROM bids", expect_status=400)
    assert "column nope not found" in e["message"] and "bids.auction" in e["message"]
    e = sql.run("INSERT INTO missing SELECT * FROM bids", expect_status=404)
    assert "table missing does not exist" in e["message"]
    e = sql.run("CREATE TABLE t (a INT) WITH ('topik' = 'x')", expect_status=400)
    assert "unsupported option 'topik'" in e["message"]
    e = sql.run("SELECT * FROM bids", expect_status=400)
    assert "/query-stream" in e["message"]
    r = requests.post(f"{sql.url}/query-stream", json={"sql": "SELECT a.x FROM bids a JOIN bids b ON a.auction = b.auction"}, timeout=10)
    assert r.status_code == 400 and "column a.x not found" in r.json()["message"], r.text
    r = requests.post(f"{sql.url}/query-stream", json={"sql": "SELECT * FROM bids a, bids b WHERE a.price > b.price"}, timeout=10)
    assert r.status_code == 400 and "not supported: a join without an equality" in r.json()["message"], r.text
    r = requests.post(f"{sql.url}/query-stream", json={"sql": "SELECT price + channel FROM bids"}, timeout=10)
    assert r.status_code == 400 and "type error" in r.json()["message"]
    e = sql.run(BIDS_DDL.format(name="bids", topic=topic), expect_status=409)
    assert "already exists" in e["message"]


def test_a_record_that_does_not_decode_fails_the_job_with_the_reason(sql_broker) -> None:
    sql_broker.allow_errors("the job failed", "does not decode")
    sql = Sql(sql_broker)
    topic, sink = unique("bids"), unique("out")
    create_topic(sql.bootstrap, topic)
    create_topic(sql.bootstrap, sink)
    produce_all(producer(sql.bootstrap), topic, [{"value": b'{"auction": "not a number"}'}])
    sql.run(BIDS_DDL.format(name="bids", topic=topic))
    sql.run(f"CREATE TABLE out_t (auction BIGINT) WITH ('topic' = '{sink}')")
    [answer] = sql.run("INSERT INTO out_t SELECT auction FROM bids")
    job = wait_until(lambda: (j := sql.job(answer["jobId"]))["status"] == "FAILED" and j, timeout_s=60, what="the job to fail")
    assert "column auction is BIGINT" in job["error"] and f"{topic}/0@0" in job["error"]


def test_topics_with_registered_schemas_are_tables_and_avro_sinks_register(sql_broker) -> None:
    sql = Sql(sql_broker)
    registry = SchemaRegistryClient({"url": f"http://{sql_broker.registry_addr}"})
    topic, sink = unique("orders"), unique("big-orders")
    create_topic(sql.bootstrap, topic)
    create_topic(sql.bootstrap, sink)
    schema = json.dumps({
        "type": "record", "name": "Order", "fields": [
            {"name": "id", "type": "long"},
            {"name": "customer", "type": {"type": "record", "name": "Customer", "fields": [{"name": "name", "type": "string"}]}},
            {"name": "amount", "type": "double"},
        ],
    })
    serializer = AvroSerializer(registry, schema)
    p = producer(sql.bootstrap)
    orders = [{"id": i, "customer": {"name": f"c{i % 3}"}, "amount": i * 1.5} for i in range(20)]
    produce_all(p, topic, [{"value": serializer(o, SerializationContext(topic, MessageField.VALUE))} for o in orders])
    # No DDL: the topic is a table with its schema's columns.
    header, got = sql.query(f"SELECT id, customer.name AS who, amount FROM `{topic}` WHERE amount > 20 LIMIT 6")
    assert header["columnTypes"] == ["BIGINT", "STRING", "DOUBLE"]
    assert got == [[o["id"], o["customer"]["name"], o["amount"]] for o in orders if o["amount"] > 20][:6]
    described = sql.run(f"DESCRIBE `{topic}`")[0]
    assert ["$rowtime", "TIMESTAMP_LTZ(3)"] == described["rows"][-1][:2]
    # An Avro sink: its schema is registered, readers deserialize it with the registry.
    sql.run(
        f"CREATE TABLE big (id BIGINT, who STRING) WITH ('topic' = '{sink}', 'value.format' = 'avro-confluent')"
    )
    sql.run(f"INSERT INTO big SELECT id, customer.name FROM `{topic}` WHERE amount > 20")
    deserializer = AvroDeserializer(registry)
    c = consumer(sql.bootstrap, **{"isolation.level": "read_committed"})
    c.assign([TopicPartition(sink, 0, 0)])
    out: list[dict] = []
    deadline = time.monotonic() + 60
    while len(out) < 6:
        assert time.monotonic() < deadline, f"read {len(out)} of 6 Avro rows"
        for m in c.consume(num_messages=10, timeout=0.5):
            out.append(deserializer(m.value(), SerializationContext(sink, MessageField.VALUE)))
    c.close()
    assert out == [{"id": o["id"], "who": o["customer"]["name"]} for o in orders if o["amount"] > 20][:6]
    assert registry.get_latest_version(f"{sink}-value").schema.schema_type == "AVRO"


def test_the_shell_runs_files_and_statements(sql_broker, tmp_path) -> None:
    sql = Sql(sql_broker)
    topic = unique("bids")
    create_topic(sql.bootstrap, topic)
    produce_json(sql.bootstrap, topic, bids(10))
    script = tmp_path / "setup.sql"
    script.write_text(BIDS_DDL.format(name="bids", topic=topic) + ";\nSHOW TABLES;\n")
    spate = str(spate_binary())
    out = subprocess.run([spate, "sql", "--url", sql.url, "-f", str(script)], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "[INFO] table bids created" in out.stdout and re.search(r"\|\s+bids \|", out.stdout), out.stdout
    out = subprocess.run(
        [spate, "sql", "--url", sql.url, "-e", "SELECT auction, channel FROM bids WHERE bidder < 3 LIMIT 3"],
        capture_output=True, text=True, timeout=60,
    )
    assert out.returncode == 0, out.stderr
    lines = [line for line in out.stdout.splitlines() if line.startswith("|")]
    assert [c.strip() for c in lines[0].strip("|").split("|")] == ["auction", "channel"]
    assert [c.strip() for c in lines[1].strip("|").split("|")] == ["1000", "google"]
    assert "3 rows in set" in out.stdout
    # The interactive shell reads statements ending with ';' from stdin.
    out = subprocess.run(
        [spate, "sql", "--url", sql.url], input="DESCRIBE\n bids;\nSELECT nope FROM bids;\nQUIT;\n",
        capture_output=True, text=True, timeout=60, env={"HOME": str(tmp_path)},
    )
    assert re.search(r"\|\s+auction \|\s+BIGINT \|", out.stdout), out.stdout
    assert "column nope not found" in out.stderr
    assert out.returncode == 1
    assert (tmp_path / ".local/state/spate/sql_history").read_text().count("bids") == 2
    out = subprocess.run([spate, "sql", "--url", sql.url, "-e", "SELEC 1"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 1 and "syntax error at line 1, column 1" in out.stderr


def test_the_shell_edits_lines_and_recalls_history(sql_broker, tmp_path) -> None:
    """On a terminal, `spate sql` edits lines: the up arrow recalls a statement of an earlier
    session from the history file, and what is run is added to it."""
    import os
    import pty
    import select

    sql = Sql(sql_broker)
    topic = unique("bids")
    create_topic(sql.bootstrap, topic)
    sql.run(BIDS_DDL.format(name="bids", topic=topic))
    history = tmp_path / ".local/state/spate/sql_history"
    history.parent.mkdir(parents=True)
    history.write_text("SHOW TABLES;\n")  # an earlier session's
    master, slave = pty.openpty()
    shell = subprocess.Popen(
        [str(spate_binary()), "sql", "--url", sql.url], stdin=slave, stdout=slave, stderr=slave,
        env={"HOME": str(tmp_path), "TERM": "xterm", "PATH": "/usr/bin:/bin"}, close_fds=True,
    )
    os.close(slave)
    screen = bytearray()

    def shown(text: str) -> bool:
        while select.select([master], [], [], 0.2)[0]:
            try:
                chunk = os.read(master, 4096)
            except OSError:
                break
            if not chunk:
                break
            screen.extend(chunk)
        return text.encode() in screen

    try:
        wait_until(lambda: shown("spate-sql> "), timeout_s=30, what="the prompt")
        os.write(master, b"\x1b[A\r")  # up arrow, enter: the earlier session's statement
        wait_until(lambda: shown("1 row in set"), timeout_s=30, what="SHOW TABLES recalled and run")
        os.write(master, b"DESCRIBE bids;\r")
        wait_until(lambda: shown("BIGINT"), timeout_s=30, what="DESCRIBE's answer")
        os.write(master, b"QUIT;\r")
        assert shell.wait(30) == 0, screen.decode(errors="replace")
    finally:
        if shell.poll() is None:
            shell.kill()
        os.close(master)
    assert "DESCRIBE bids;" in history.read_text()


def test_jobs_are_listed_stopped_and_measured(sql_broker) -> None:
    sql = Sql(sql_broker)
    topic, sink = unique("bids"), unique("copy")
    create_topic(sql.bootstrap, topic)
    create_topic(sql.bootstrap, sink)
    produce_json(sql.bootstrap, topic, bids(25))
    sql.run(BIDS_DDL.format(name="bids", topic=topic))
    sql.run(f"CREATE TABLE copy_t (auction BIGINT, price DOUBLE) WITH ('topic' = '{sink}')")
    [answer] = sql.run("INSERT INTO copy_t SELECT auction, price FROM bids")
    job = answer["jobId"]
    wait_until(lambda: sql.job(job)["metrics"]["recordsOut"] == 25, timeout_s=60, what="25 rows out")
    metrics = requests.get(f"http://{sql_broker.http_addr}/metrics", timeout=10).text
    assert f'spate_sql_job_records_in_total{{job="{job}"}} 25' in metrics
    assert f'spate_sql_job_records_out_total{{job="{job}"}} 25' in metrics
    jobs = sql.run("SHOW JOBS")[0]["rows"]
    assert [job, "RUNNING"] == jobs[0][:2]
    explain = sql.run("EXPLAIN SELECT auction, COUNT(*) FROM bids GROUP BY auction")[0]["plan"]
    assert "GroupAggregate" in explain and "Scan(table=[bids]" in explain
    sql.run(f"STOP JOB '{job}'")
    assert sql.job(job)["status"] == "STOPPED"
    assert len(read_committed(sql.bootstrap, sink)) == 25
    # A stopped job stays stopped across a restart; its table is still there.
    sql_broker.stop()
    sql_broker.start()
    sql = Sql(sql_broker)
    assert sql.job(job)["status"] == "STOPPED"
    assert "copy_t" in [r[0] for r in sql.run("SHOW TABLES")[0]["rows"]]


def changelog_until(sql: Sql, query: str, want: list[tuple], timeout_s: float = 60) -> list[tuple]:
    """Streams an updating (or appending) query and applies its changelog until the rows it
    holds equal `want` (as a multiset); returns them."""
    r = requests.post(f"{sql.url}/query-stream", json={"sql": query}, timeout=timeout_s, stream=True)
    assert r.status_code == 200, r.text
    rows: list[tuple] = []
    target = sorted(want, key=repr)
    deadline = time.monotonic() + timeout_s
    lines = r.iter_lines()
    header = json.loads(next(lines))
    updating = header["columnNames"][0] == "op"
    try:
        for line in lines:
            if not line:
                continue
            row = json.loads(line)
            assert isinstance(row, list), row
            if updating:
                op, values = row[0], tuple(row[1:])
                if op in ("+I", "+U"):
                    rows.append(values)
                else:
                    rows.remove(values)
            else:
                rows.append(tuple(row))
            if sorted(rows, key=repr) == target:
                return rows
            assert time.monotonic() < deadline, f"timed out: {sorted(rows, key=repr)} != {target}"
    finally:
        r.close()
    raise AssertionError(f"the query ended with {rows}")


@pytest.mark.parametrize("kind", ["INNER", "LEFT", "RIGHT", "FULL"])
def test_regular_joins_match_duckdb(sql_broker, kind: str) -> None:
    sql = Sql(sql_broker)
    orders_topic, customers_topic = unique("orders"), unique("customers")
    create_topic(sql.bootstrap, orders_topic)
    create_topic(sql.bootstrap, customers_topic)
    orders = [{"id": i, "customer": i % 6, "amount": i * 10} for i in range(12)]
    customers = [{"id": c, "name": f"n{c}"} for c in (0, 1, 2, 3, 9)]
    produce_json(sql.bootstrap, orders_topic, orders)
    produce_json(sql.bootstrap, customers_topic, customers)
    sql.run(f"CREATE TABLE orders (id BIGINT, customer BIGINT, amount BIGINT) WITH ('topic' = '{orders_topic}')")
    sql.run(f"CREATE TABLE customers (id BIGINT, name STRING) WITH ('topic' = '{customers_topic}')")
    con = duckdb.connect()
    con.execute("CREATE TABLE orders AS SELECT * FROM read_json_auto(?)", [json_file(orders)])
    con.execute("CREATE TABLE customers AS SELECT * FROM read_json_auto(?)", [json_file(customers)])
    query = (
        f"SELECT o.id, o.amount, c.name FROM orders o {kind} JOIN customers c ON o.customer = c.id "
        "AND o.amount > 5"
    )
    expected = [tuple(r) for r in con.execute(query).fetchall()]
    got = changelog_until(sql, query, expected)
    assert sorted(got, key=repr) == sorted(expected, key=repr)


def test_interval_and_window_joins_match_duckdb(sql_broker) -> None:
    sql = Sql(sql_broker)
    a_topic, b_topic = unique("impressions"), unique("clicks")
    create_topic(sql.bootstrap, a_topic)
    create_topic(sql.bootstrap, b_topic)
    impressions = [{"ad": i % 4, "id": i, "ts": ts_text(BASE_MS + i * 1000)} for i in range(40)]
    clicks = [{"ad": i % 4, "id": i, "ts": ts_text(BASE_MS + i * 1000 + (i % 7) * 700)} for i in range(0, 40, 3)]
    produce_json(sql.bootstrap, a_topic, impressions)
    produce_json(sql.bootstrap, b_topic, clicks)
    for name, topic in (("impressions", a_topic), ("clicks", b_topic)):
        sql.run(
            f"CREATE TABLE {name} (ad BIGINT, id BIGINT, ts TIMESTAMP(3), WATERMARK FOR ts AS ts - INTERVAL '10' SECOND) "
            f"WITH ('topic' = '{topic}')"
        )
    con = duckdb.connect()
    con.execute("CREATE TABLE impressions AS SELECT ad, id, ts::TIMESTAMP AS ts FROM read_json_auto(?)", [json_file(impressions)])
    con.execute("CREATE TABLE clicks AS SELECT ad, id, ts::TIMESTAMP AS ts FROM read_json_auto(?)", [json_file(clicks)])
    interval = (
        "SELECT i.id, c.id FROM impressions i JOIN clicks c ON i.ad = c.ad "
        "AND c.ts BETWEEN i.ts AND i.ts + INTERVAL '3' SECOND"
    )
    expected = [tuple(r) for r in con.execute(interval).fetchall()]
    assert expected, "the data makes no interval matches"
    explain = sql.run("EXPLAIN " + interval)[0]["plan"]
    assert "IntervalJoin" in explain, explain
    assert sorted(changelog_until(sql, interval, expected)) == sorted(expected)
    window = (
        "SELECT i.window_start, i.ad, i.n, c.n FROM "
        "(SELECT window_start, window_end, ad, COUNT(*) AS n FROM TABLE(TUMBLE(TABLE impressions, DESCRIPTOR(ts), INTERVAL '10' SECOND)) GROUP BY window_start, window_end, ad) i "
        "JOIN "
        "(SELECT window_start, window_end, ad, COUNT(*) AS n FROM TABLE(TUMBLE(TABLE clicks, DESCRIPTOR(ts), INTERVAL '10' SECOND)) GROUP BY window_start, window_end, ad) c "
        "ON i.window_start = c.window_start AND i.window_end = c.window_end AND i.ad = c.ad"
    )
    assert "WindowJoin" in sql.run("EXPLAIN " + window)[0]["plan"]
    duck = con.execute(
        """SELECT epoch_ms(i.ws), i.ad, i.n, c.n FROM
           (SELECT time_bucket(INTERVAL 10 SECOND, ts) ws, ad, COUNT(*) n FROM impressions GROUP BY ALL) i
           JOIN (SELECT time_bucket(INTERVAL 10 SECOND, ts) ws, ad, COUNT(*) n FROM clicks GROUP BY ALL) c
           ON i.ws = c.ws AND i.ad = c.ad"""
    ).fetchall()
    # Only windows the watermark closed (the last event minus the 10 s delay).
    watermark = BASE_MS + 39 * 1000 - 10_000
    expected = [tuple(r) for r in duck if r[0] + 10_000 - 1 <= watermark]
    got = changelog_until(sql, window, [(ts_text(w), a, n, m) for w, a, n, m in expected])
    assert len(got) == len(expected)


def test_temporal_join_uses_the_version_valid_at_the_order_time(sql_broker) -> None:
    sql = Sql(sql_broker)
    rates_topic, orders_topic = unique("rates"), unique("orders")
    create_topic(sql.bootstrap, rates_topic)
    create_topic(sql.bootstrap, orders_topic)
    rates = [("EUR", 1.10, 0), ("GBP", 1.30, 0), ("EUR", 1.20, 10_000), ("EUR", 1.25, 20_000), ("XXX", 0.0, 100_000)]
    produce_json(
        sql.bootstrap, rates_topic,
        [{"currency": c, "rate": r, "ts": ts_text(BASE_MS + t)} for c, r, t in rates],
        keys=[{"currency": c} for c, _, _ in rates],
    )
    orders = [(1, "EUR", 5_000), (2, "EUR", 15_000), (3, "GBP", 16_000), (4, "EUR", 25_000), (5, "USD", 26_000), (6, "EUR", 100_000)]
    produce_json(sql.bootstrap, orders_topic, [{"id": i, "currency": c, "amount": 100, "ts": ts_text(BASE_MS + t)} for i, c, t in orders])
    sql.run(
        f"CREATE TABLE rates (currency STRING, rate DOUBLE, ts TIMESTAMP(3), WATERMARK FOR ts AS ts, "
        f"PRIMARY KEY (currency) NOT ENFORCED) WITH ('connector' = 'upsert-kafka', 'topic' = '{rates_topic}', "
        f"'key.format' = 'json', 'value.format' = 'json')"
    )
    sql.run(
        f"CREATE TABLE orders (id BIGINT, currency STRING, amount BIGINT, ts TIMESTAMP(3), WATERMARK FOR ts AS ts) "
        f"WITH ('topic' = '{orders_topic}')"
    )
    _, got = sql.query(
        "SELECT o.id, o.amount * r.rate AS converted FROM orders AS o "
        "LEFT JOIN rates FOR SYSTEM_TIME AS OF o.ts AS r ON o.currency = r.currency LIMIT 5"
    )
    assert sorted(got) == [[1, pytest.approx(110.0)], [2, pytest.approx(120.0)], [3, pytest.approx(130.0)], [4, pytest.approx(125.0)], [5, None]]


def test_top_n_and_deduplication_match_duckdb(sql_broker) -> None:
    sql = Sql(sql_broker)
    topic = unique("bids")
    create_topic(sql.bootstrap, topic)
    rows = bids(120)
    produce_json(sql.bootstrap, topic, rows)
    sql.run(BIDS_DDL.format(name="bids", topic=topic))
    con = duckdb.connect()
    con.execute("CREATE TABLE bids AS SELECT auction, bidder, price, channel, ts::TIMESTAMP AS ts FROM read_json_auto(?)", [json_file(rows)])
    # Top 2 prices per auction: an updating result; its final rows are DuckDB's.
    top = (
        "SELECT auction, price, rn FROM (SELECT auction, price, bidder, "
        "ROW_NUMBER() OVER (PARTITION BY auction ORDER BY price DESC) AS rn FROM bids) WHERE rn <= 2"
    )
    expected = [tuple(r) for r in con.execute(
        "SELECT auction, price, rn FROM (SELECT auction, price, ROW_NUMBER() OVER (PARTITION BY auction ORDER BY price DESC, rowid) rn FROM bids) WHERE rn <= 2"
    ).fetchall()]
    assert sorted(changelog_until(sql, top, expected)) == sorted(expected)
    # Deduplication: each bidder's first bid.
    first = (
        "SELECT bidder, auction FROM (SELECT *, ROW_NUMBER() OVER (PARTITION BY bidder ORDER BY ts ASC) AS rn FROM bids) WHERE rn = 1"
    )
    expected = [tuple(r) for r in con.execute(
        "SELECT bidder, auction FROM (SELECT *, ROW_NUMBER() OVER (PARTITION BY bidder ORDER BY ts) rn FROM bids) WHERE rn = 1"
    ).fetchall()]
    assert sorted(changelog_until(sql, first, expected)) == sorted(expected)
    # Window Top-N: the two busiest channels of each closed 10 s window, appended once.
    window_top = (
        "SELECT window_start, channel, n, rn FROM (SELECT *, ROW_NUMBER() OVER (PARTITION BY window_start, window_end "
        "ORDER BY n DESC, channel ASC) AS rn FROM (SELECT window_start, window_end, channel, COUNT(*) AS n "
        "FROM TABLE(TUMBLE(TABLE bids, DESCRIPTOR(ts), INTERVAL '10' SECOND)) GROUP BY window_start, window_end, channel)) "
        "WHERE rn <= 2"
    )
    watermark = to_ms(rows[-1]["ts"]) - 1000
    duck = con.execute(
        """SELECT epoch_ms(ws), channel, n, rn FROM (SELECT ws, channel, n, ROW_NUMBER() OVER (PARTITION BY ws ORDER BY n DESC, channel) rn
           FROM (SELECT time_bucket(INTERVAL 10 SECOND, ts) ws, channel, COUNT(*) n FROM bids GROUP BY ALL)) WHERE rn <= 2"""
    ).fetchall()
    expected = [(ts_text(w), c, n, rn) for w, c, n, rn in duck if w + 10_000 - 1 <= watermark]
    header, got = sql.query(window_top + f" LIMIT {len(expected)}")
    assert header["columnNames"] == ["window_start", "channel", "n", "rn"], "a window Top-N only appends"
    assert sorted(tuple(r) for r in got) == sorted(expected)


def test_records_that_do_not_decode_are_skipped_or_dead_lettered(sql_broker) -> None:
    sql = Sql(sql_broker)
    topic, sink, dlq = unique("bids"), unique("out"), unique("bids-dlq")
    create_topic(sql.bootstrap, topic)
    create_topic(sql.bootstrap, sink)
    good = bids(3)
    produce_all(
        producer(sql.bootstrap), topic,
        [{"value": json.dumps(good[0]).encode()}, {"value": b"not json", "headers": [("trace", b"t1")]},
         {"value": json.dumps(good[1]).encode()}, {"value": b'{"auction": "x"}'}, {"value": json.dumps(good[2]).encode()}],
    )
    sql.run(
        f"CREATE TABLE dl (auction BIGINT, price DOUBLE) WITH ('topic' = '{topic}', "
        f"'scan.error-policy' = 'dlq', 'scan.error-policy.dlq-topic' = '{dlq}')"
    )
    sql.run(f"CREATE TABLE skipping (auction BIGINT, price DOUBLE) WITH ('topic' = '{topic}', 'json.ignore-parse-errors' = 'true')")
    sql.run(f"CREATE TABLE out_t (auction BIGINT, price DOUBLE) WITH ('topic' = '{sink}')")
    [answer] = sql.run("INSERT INTO out_t SELECT auction, price FROM dl")
    wait_until(lambda: sql.job(answer["jobId"])["metrics"]["recordsOut"] == 3, timeout_s=60, what="the three good rows")
    assert sql.job(answer["jobId"])["metrics"]["recordsSkipped"] == 2
    c = consumer(sql.bootstrap, **{"isolation.level": "read_committed"})
    c.assign([TopicPartition(dlq, 0, 0)])
    letters = []
    deadline = time.monotonic() + 30
    while len(letters) < 2:
        assert time.monotonic() < deadline, "the dead letters"
        letters.extend(m for m in c.consume(num_messages=10, timeout=0.5) if not m.error())
    c.close()
    assert [m.value() for m in letters] == [b"not json", b'{"auction": "x"}']
    headers = dict(letters[0].headers())
    assert headers["trace"] == b"t1" and headers["__spate.source"] == f"{topic}/0@1".encode()
    assert b"does not decode" in headers["__spate.error"]
    header, rows = sql.query("SELECT auction FROM skipping LIMIT 3")
    assert [r[0] for r in rows] == [g["auction"] for g in good]
    e = sql.run(f"CREATE TABLE bad (a INT) WITH ('topic' = '{topic}', 'scan.error-policy' = 'ignore')", expect_status=400)
    assert "fail, skip or dlq" in e["message"]


def test_state_ttl_forgets_idle_keys(sql_broker) -> None:
    sql = Sql(sql_broker)
    topic, sink = unique("bids"), unique("counts")
    create_topic(sql.bootstrap, topic)
    create_topic(sql.bootstrap, sink)
    sql.run(BIDS_DDL.format(name="bids", topic=topic))
    sql.run(
        f"CREATE TABLE c (channel STRING, n BIGINT, PRIMARY KEY (channel) NOT ENFORCED) "
        f"WITH ('connector' = 'upsert-kafka', 'topic' = '{sink}', 'key.format' = 'json')"
    )
    e = sql.run("SET 'table.exec.state.tll' = '1 s'", expect_status=400)
    assert "unsupported property 'table.exec.state.tll'" in e["message"]
    [_, answer] = sql.run(
        "SET 'table.exec.state.ttl' = '500 ms'; INSERT INTO c SELECT channel, COUNT(*) FROM bids GROUP BY channel"
    )
    job = answer["jobId"]

    def google() -> list[int]:
        return [v["n"] for k, v in read_committed(sql.bootstrap, sink) if k == {"channel": "google"}]

    produce_json(sql.bootstrap, topic, bids(1))
    wait_until(lambda: google() == [1], timeout_s=60, what="google's first count")

    # Only another key is touched from now on: google's state expires at a checkpoint.
    def expired() -> bool:
        produce_json(sql.bootstrap, topic, [dict(bids(2)[1], channel="other")])
        return sql.job(job)["metrics"]["stateEntries"] == 1

    wait_until(expired, timeout_s=60, interval_s=0.3, what="google's state to expire")
    produce_json(sql.bootstrap, topic, bids(1))
    # Without the TTL the count would go on to 2.
    wait_until(lambda: google() == [1, 1], timeout_s=60, what="google counted from 1 again")


def test_a_separate_sql_worker_runs_against_the_cluster(spate_factory, tmp_path) -> None:
    """`spate sql worker --brokers` is the same engine as a process of its own (here against
    Spate; any Kafka-compatible cluster would do), its state in the cluster's topics."""
    broker = spate_factory(connect_listen="off")  # no in-process SQL worker
    topic, sink = unique("bids"), unique("per-channel")
    create_topic(broker.kafka_addr, topic)
    create_topic(broker.kafka_addr, sink)
    produce_json(broker.kafka_addr, topic, bids(20))
    worker, url = start_worker(broker, tmp_path, "worker")
    try:
        r = requests.post(f"{url}/statements", json={"sql": BIDS_DDL.format(name="bids", topic=topic) + ";"
                          f"CREATE TABLE per_channel (channel STRING, n BIGINT, PRIMARY KEY (channel) NOT ENFORCED) "
                          f"WITH ('connector' = 'upsert-kafka', 'topic' = '{sink}', 'key.format' = 'json');"
                          "INSERT INTO per_channel SELECT channel, COUNT(*) FROM bids GROUP BY channel"}, timeout=60)
        assert r.status_code == 200, r.text

        def counts() -> dict:
            return {v["channel"]: v["n"] for _, v in read_committed(broker.kafka_addr, sink)}

        wait_until(lambda: counts() == {"google": 5, "facebook": 5, "baidu": 5, "apple": 5}, timeout_s=60, what="the counts")
    finally:
        worker.terminate()
        assert worker.wait(30) == 0, (tmp_path / "worker.log").read_text()


def test_rank_columns_views_and_keep_last_deduplication(sql_broker) -> None:
    sql = Sql(sql_broker)
    topic = unique("bids")
    create_topic(sql.bootstrap, topic)
    rows = bids(40)
    # Three bids of one bidder at one time: keep-last deduplication keeps the last to arrive.
    same = [dict(rows[0], bidder=99, auction=a) for a in (1, 2, 3)]
    produce_json(sql.bootstrap, topic, rows + same)
    sql.run(BIDS_DDL.format(name="bids", topic=topic))
    top = "SELECT * FROM (SELECT *, ROW_NUMBER() OVER (PARTITION BY auction ORDER BY price DESC) AS rank_number FROM bids) WHERE rank_number <= 1"
    plan = sql.run("EXPLAIN " + top)[0]["plan"]
    assert "updating, key [\"auction\", \"rank_number\"]" in plan, plan
    header, _ = sql.query(top + " LIMIT 1")
    assert header["columnNames"] == ["op", "auction", "bidder", "price", "channel", "ts", "rank_number"]
    last = "SELECT bidder, auction FROM (SELECT *, ROW_NUMBER() OVER (PARTITION BY bidder ORDER BY ts DESC) AS rn FROM bids) WHERE rn = 1"
    got = changelog_until(sql, last + " AND bidder = 99", [(99, 3)])
    assert got == [(99, 3)]
    # OVER reads the FROM rows: qualified columns and a qualified wildcard, as Nexmark q9.
    sql.run(f"CREATE TABLE auctions (id BIGINT, seller BIGINT) WITH ('topic' = '{topic}-a')")
    create_topic(sql.bootstrap, f"{topic}-a")
    produce_json(sql.bootstrap, f"{topic}-a", [{"id": 1000 + i, "seller": i} for i in range(7)])
    best = (
        "SELECT id, seller, price FROM (SELECT A.*, B.price, ROW_NUMBER() OVER (PARTITION BY A.id ORDER BY B.price DESC) AS rownum "
        "FROM auctions A, bids B WHERE A.id = B.auction) WHERE rownum <= 1"
    )
    expected = {}
    for r in rows:
        expected[r["auction"]] = max(expected.get(r["auction"], 0.0), r["price"])
    want = [(a, a - 1000, p) for a, p in expected.items()]
    assert sorted(changelog_until(sql, best, want)) == sorted(want)
    # A view is its query, planned where it is used.
    sql.run("CREATE VIEW cheap AS SELECT auction, price FROM bids WHERE price < 100")
    _, got = sql.query("SELECT c.auction FROM cheap AS c LIMIT 3")
    assert [r[0] for r in got] == [r["auction"] for r in rows if r["price"] < 100][:3]
    assert ["cheap", None, None] in sql.run("SHOW VIEWS")[0]["rows"]
    # WITH: common table expressions, a later one reading an earlier one.
    _, got = sql.query(
        "WITH low AS (SELECT auction, price FROM bids WHERE price < 100), few AS (SELECT auction FROM low) "
        "SELECT auction FROM few LIMIT 3"
    )
    assert [r[0] for r in got] == [r["auction"] for r in rows if r["price"] < 100][:3]
    # UNION ALL: both inputs' rows.
    union = (
        "SELECT channel, COUNT(*) AS n FROM (SELECT channel FROM bids WHERE price < 100 "
        "UNION ALL SELECT channel FROM bids WHERE price >= 400) GROUP BY channel"
    )
    counts: dict[str, int] = {}
    for r in rows + same:
        if r["price"] < 100 or r["price"] >= 400:
            counts[r["channel"]] = counts.get(r["channel"], 0) + 1
    want = list(counts.items())
    assert sorted(changelog_until(sql, union, want)) == sorted(want)
    e = sql.run("EXPLAIN SELECT a FROM bids UNION SELECT a FROM bids", expect_status=400)
    assert "UNION ALL runs" in e["message"]
    # A group window over a join has no table to window: the message says what to write.
    e = sql.run("EXPLAIN SELECT COUNT(*) FROM bids b JOIN bids c ON b.auction = c.auction GROUP BY SESSION(b.ts, INTERVAL '1' SECOND)", expect_status=400)
    assert "window table function" in e["message"]
