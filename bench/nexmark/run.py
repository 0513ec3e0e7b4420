#!/usr/bin/env python3
"""Nexmark on Spate SQL: throughput of each query, and its result checked against DuckDB.

It starts a private `spate serve` (Kafka, HTTP and SQL API on ports the kernel picks), generates
`--events` Nexmark events into the topics person, auction and bid (and the q13 side input) and
into Parquet files, declares the source tables (queries/ddl.sql), then runs each selected query
on its own:

1. POST queries/qN.sql to /statements (the sink table, then INSERT INTO: a continuous job);
   a statement the engine refuses is reported as "unsupported: <its message>";
2. poll GET /jobs/{id} until the job has read every record of its input topics and a checkpoint
   found it caught up (`recordsIn` = the input's records, `checkpoints` >= 1, `lagRecords` = 0),
   then stop the job. seconds = from the POST to that poll; events/s = the input's records / seconds;
   cores = CPU time of the spate process (user + system, /proc/PID/stat) / seconds, so
   events/s per core = events/s / cores;
3. read the sink topic to its end (read_committed; an upsert topic is applied as a changelog, the
   last value of each key, tombstones deleting), load the rows into DuckDB with the types of
   check/qN.sql's result, and compare them with check/qN.sql as multisets (EXCEPT ALL both ways).
   Windowed queries: only windows the final watermark closed can be in the sink, so the checks keep
   only those (`end - 1 ms <= watermark`, the watermark being min over the input partitions of
   their largest dateTime, minus the DDL's 4 s); run.py also checks that the job reports that
   watermark.

  ~/.cache/spate/venv/bin/python bench/nexmark/run.py --events 1000000 --json /tmp/nexmark.json
  ~/.cache/spate/venv/bin/python bench/nexmark/run.py --events 20000 --rate 1000 q0 q1 q2
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

import generate  # noqa: E402 - the generator next to this file
from spate_process import Spate, find_binary  # noqa: E402 - bench/spate_process.py

QUERIES = [f"q{i}" for i in range(23)]
WATERMARK_DELAY_MS = 4000  # queries/ddl.sql: WATERMARK FOR dateTime AS dateTime - INTERVAL '4' SECOND
SIDE_INPUT = "side_input"

# The topics each query reads (its job's recordsIn counts each record of them once).
INPUTS: dict[str, tuple[str, ...]] = {
    "q0": ("bid",), "q1": ("bid",), "q2": ("bid",), "q3": ("auction", "person"),
    "q4": ("auction", "bid"), "q5": ("bid",), "q6": ("auction", "bid"), "q7": ("bid",),
    "q8": ("person", "auction"), "q9": ("auction", "bid"), "q10": ("bid",), "q11": ("bid",),
    "q12": ("bid",), "q13": ("bid", SIDE_INPUT), "q14": ("bid",), "q15": ("bid",),
    "q16": ("bid",), "q17": ("bid",), "q18": ("bid",), "q19": ("bid",),
    "q20": ("bid", "auction"), "q21": ("bid",), "q22": ("bid",),
}
# q12 windows by processing time: what can be checked is each bidder's total over its windows,
# once every window has fired, i.e. once the counts in the sink add up to the bids (polled for up
# to TOTALS_WAIT_S: a processing-time window closes 10 s of wall time after it opened).
TOTALS = {"q12": ("bidder", "bid_count")}
TOTALS_WAIT_S = 60.0
# q13 joins each bid with the side input FOR SYSTEM_TIME AS OF its processing time. Flink's side
# input is a file, whole at every lookup; here it is a topic the job reads alongside the bids, so
# a bid processed before its side input row has been read finds none (an inner join drops it),
# and how many do depends on the order the job's consumer fetched the two topics. What must hold:
# every sink row is a right one (the sink is a sub-multiset of the check's rows).
SUBSET = {"q13"}
# Queries whose result depends on the arrival order of rows with equal sort keys (deduplication,
# top-N, winning bid). The checks break ties by position in the topic (_seq), which is the arrival
# order with one partition; with several, rows of different partitions arrive in no set order, so
# only these columns (what the ORDER BY decides) are compared.
TIES: dict[str, tuple[str, ...]] = {
    "q6": ("seller",),
    "q9": ("id", "price", "bid_dateTime"),
    "q18": ("auction", "bidder", "dateTime"),
    "q19": ("auction", "price", "rank_number"),
}


# --- the SQL API ----------------------------------------------------------------------------------


class ApiError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class SqlApi:
    def __init__(self, addr: str) -> None:
        self.base = f"http://{addr}"

    def _request(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(
            self.base + path, data=data, method=method, headers={"Content-Type": "application/json"}
        )
        try:
            with urllib.request.urlopen(request, timeout=120) as response:
                return json.loads(response.read())
        except urllib.error.HTTPError as e:
            text = e.read().decode("utf-8", "replace")
            try:
                message = json.loads(text).get("message", text)
            except ValueError:
                message = text
            raise ApiError(e.code, message) from e

    def statements(self, sql: str) -> list[dict[str, Any]]:
        return self._request("POST", "/statements", {"sql": sql})

    def job(self, job_id: str) -> dict[str, Any]:
        return self._request("GET", f"/jobs/{job_id}")

    def stop_job(self, job_id: str) -> None:
        self._request("POST", f"/jobs/{job_id}/stop", {})


# --- queries --------------------------------------------------------------------------------------


@dataclass
class Sink:
    table: str
    topic: str
    upsert: bool


def sink_of(sql: str) -> Sink:
    """The table INSERT INTO writes, its topic and whether it is an upsert table."""
    m = re.search(r"INSERT\s+INTO\s+`?(\w+)`?", sql, re.IGNORECASE)
    if not m:
        raise ValueError("the query has no INSERT INTO")
    table = m.group(1)
    ddl = re.search(
        rf"CREATE\s+TABLE\s+`?{re.escape(table)}`?\s*\((.*?)\)\s*WITH\s*\((.*?)\)\s*;",
        sql,
        re.IGNORECASE | re.DOTALL,
    )
    if not ddl:
        raise ValueError(f"no CREATE TABLE {table} in the query file")
    options = dict(re.findall(r"'([^']+)'\s*=\s*'([^']*)'", ddl.group(2)))
    return Sink(table, options.get("topic", table), options.get("connector") == "upsert-kafka")


def expected_watermark_ms(manifest: generate.Result, inputs: tuple[str, ...]) -> int | None:
    """The watermark a job reaches once it read all of `inputs`: per source the smallest over its
    partitions of the largest rowtime (minus the delay); over sources the smallest."""
    per_source = [
        min(manifest.max_time[t].values()) - WATERMARK_DELAY_MS
        for t in inputs
        if t in manifest.max_time and manifest.max_time[t]
    ]
    return min(per_source) if per_source else None


@dataclass
class QueryResult:
    query: str
    status: str  # ok | unsupported | failed | timeout
    message: str = ""
    events: int = 0
    seconds: float = 0.0
    events_per_s: float = 0.0
    cores: float = 0.0
    events_per_s_per_core: float = 0.0
    match: bool | None = None
    sink_rows: int = 0
    expected_rows: int = 0
    details: dict[str, Any] = field(default_factory=dict)


Record = tuple[bytes | None, bytes | None]  # key, value


def read_topic(bootstrap: str, topic: str, timeout_s: float = 300.0) -> Iterator[Record]:
    """Every record of `topic`, read_committed, from the beginning to the end."""
    from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"nexmark-check-{uuid.uuid4().hex[:8]}",
            "isolation.level": "read_committed",
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
        }
    )
    try:
        metadata = consumer.list_topics(topic, timeout=30).topics[topic]
        if metadata.error is not None:
            raise RuntimeError(f"topic {topic}: {metadata.error}")
        partitions = sorted(metadata.partitions)
        high = {p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=30)[1] for p in partitions}
        wanted = [p for p in partitions if high[p] > 0]
        if not wanted:
            return
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in wanted])
        deadline = time.monotonic() + timeout_s
        while True:
            for message in consumer.consume(num_messages=10_000, timeout=0.5):
                if message.error() is not None:
                    raise RuntimeError(f"reading {topic}: {message.error()}")
                yield message.key(), message.value()
            # The position passes the transaction markers too: done at the high watermarks.
            positions = consumer.position([TopicPartition(topic, p) for p in wanted])
            if all(tp.offset >= high[tp.partition] for tp in positions):
                return
            if time.monotonic() > deadline:
                raise RuntimeError(f"reading {topic} did not reach its end within {timeout_s} s")
    finally:
        consumer.close()


def wait_for_totals(bootstrap: str, sink: Sink, count_column: str, total: int) -> None:
    """Polls the sink until its rows' `count_column` adds up to `total` (or TOTALS_WAIT_S pass)."""
    deadline = time.monotonic() + TOTALS_WAIT_S
    while time.monotonic() < deadline:
        rows = sink_rows(read_topic(bootstrap, sink.topic), sink.upsert)
        if sum(int(json.loads(r).get(count_column) or 0) for r in rows) >= total:
            return
        time.sleep(0.5)


def sink_rows(records: Iterator[Record], upsert: bool) -> Iterator[bytes]:
    """The sink's rows: every value, or for an upsert topic the last value of each key."""
    if not upsert:
        yield from (v for _, v in records if v is not None)
        return
    state: dict[bytes | None, bytes] = {}
    for key, value in records:
        if value is None:
            state.pop(key, None)
        else:
            state[key] = value
    yield from state.values()


def write_rows(rows: Iterator[bytes], path: Path) -> int:
    """Writes JSON rows one per line; returns how many."""
    n = 0
    with path.open("wb") as f:
        for row in rows:
            f.write(row)
            f.write(b"\n")
            n += 1
    return n


class Checker:
    """DuckDB over the generated Parquet files."""

    def __init__(self, data_dir: Path, work_dir: Path) -> None:
        import duckdb

        self.work_dir = work_dir
        self.con = duckdb.connect()
        for t in generate.TOPICS:
            path = str(data_dir / f"{t}.parquet").replace("'", "''")
            self.con.execute(
                f"CREATE VIEW {t} AS SELECT * EXCLUDE (file_row_number), file_row_number AS _seq "
                f"FROM read_parquet('{path}', file_row_number = true)"
            )
        self.con.execute(
            f'CREATE VIEW side_input AS SELECT range AS key, CAST(range AS VARCHAR) AS "value" '
            f"FROM range({generate.SIDE_INPUT_ROWS})"
        )

    def compare(
        self, query: str, rows_path: Path, n_rows: int, watermark_ms: int | None, loose_ties: bool
    ) -> tuple[bool, int, int, dict[str, Any]]:
        """(match, sink rows, expected rows, details) for the sink rows in `rows_path` (JSON
        lines). `loose_ties`: compare only the TIES columns of a tie-sensitive query."""
        con = self.con
        wm = generate.format_time(watermark_ms) if watermark_ms is not None else "infinity"
        con.execute(f"CREATE OR REPLACE TABLE wm AS SELECT TIMESTAMP '{wm}' AS watermark")
        check_sql = (HERE / "check" / f"{query}.sql").read_text()
        con.execute(f"CREATE OR REPLACE TABLE expected AS {strip_semicolon(check_sql)}")
        columns = [(name, str(kind)) for name, kind, *_ in con.execute("DESCRIBE expected").fetchall()]
        raw = ", ".join(f"'{name}': 'VARCHAR'" for name, _ in columns)
        casts = ", ".join(f'CAST("{name}" AS {kind}) AS "{name}"' for name, kind in columns)
        path = str(rows_path).replace("'", "''")
        con.execute(
            f"CREATE OR REPLACE TABLE actual AS SELECT {casts} FROM read_json("
            f"'{path}', format = 'newline_delimited', columns = {{{raw}}})"
            if n_rows
            else "CREATE OR REPLACE TABLE actual AS SELECT * FROM expected WHERE false"
        )
        if query in TOTALS:
            key, count = TOTALS[query]
            con.execute(
                f'CREATE OR REPLACE TABLE actual AS SELECT "{key}", CAST(sum("{count}") AS BIGINT) AS "{count}" '
                f'FROM actual GROUP BY "{key}"'
            )
        n_actual = con.execute("SELECT count(*) FROM actual").fetchone()[0]
        n_expected = con.execute("SELECT count(*) FROM expected").fetchone()[0]
        compared = "*"
        details: dict[str, Any] = {}
        if loose_ties and query in TIES:
            compared = ", ".join(f'"{c}"' for c in TIES[query])
            details["compared_columns"] = list(TIES[query])
        con.execute(
            f"CREATE OR REPLACE TABLE missing AS SELECT {compared} FROM expected "
            f"EXCEPT ALL SELECT {compared} FROM actual"
        )
        con.execute(
            f"CREATE OR REPLACE TABLE unexpected AS SELECT {compared} FROM actual "
            f"EXCEPT ALL SELECT {compared} FROM expected"
        )
        n_missing = con.execute("SELECT count(*) FROM missing").fetchone()[0]
        n_unexpected = con.execute("SELECT count(*) FROM unexpected").fetchone()[0]
        if n_missing or n_unexpected:
            details |= {
                "missing_from_sink": n_missing,
                "unexpected_in_sink": n_unexpected,
                "missing_sample": [repr(r) for r in con.execute("SELECT * FROM missing LIMIT 3").fetchall()],
                "unexpected_sample": [repr(r) for r in con.execute("SELECT * FROM unexpected LIMIT 3").fetchall()],
            }
        if query in SUBSET:
            details["subset"] = True
            return not n_unexpected, n_actual, n_expected, details
        return not n_missing and not n_unexpected, n_actual, n_expected, details


def strip_semicolon(sql: str) -> str:
    body = "\n".join(line for line in sql.splitlines() if not line.strip().startswith("--"))
    return body.strip().rstrip(";")


def run_query(
    query: str,
    api: SqlApi,
    spate: Spate,
    checker: Checker,
    manifest: generate.Result,
    timeout_s: float,
    parallelism: int = 1,
) -> QueryResult:
    sql = (HERE / "queries" / f"{query}.sql").read_text()
    if parallelism > 1:
        sql = f"SET 'parallelism.default' = '{parallelism}';\n{sql}"
    sink = sink_of(sql)
    inputs = INPUTS[query]
    events = sum(
        generate.SIDE_INPUT_ROWS if t == SIDE_INPUT else manifest.counts[t] for t in inputs
    )
    result = QueryResult(query, "ok", events=events)

    cpu_before = spate.cpu_seconds()
    started = time.monotonic()
    try:
        answers = api.statements(sql)
    except ApiError as e:
        result.status, result.message = "unsupported", e.message
        return result
    job_id = next((a["jobId"] for a in answers if a.get("type") == "job"), None)
    if job_id is None:
        result.status, result.message = "failed", f"no job in the answer: {answers}"
        return result

    # Caught up: every input record read, a checkpoint after that found no lag, and (where the
    # inputs have event time) the job's watermark is the final one — a parallel job's last stage
    # gets it through the exchanges after its first stage has caught up. Stopping the job then
    # commits what the final watermark fired.
    final_wm = expected_watermark_ms(manifest, tuple(t for t in inputs if t != SIDE_INPUT))
    final_text = generate.format_time(final_wm) if final_wm is not None and SIDE_INPUT not in inputs else None
    deadline = started + timeout_s
    job: dict[str, Any] = {}
    while True:
        job = api.job(job_id)
        metrics = job["metrics"]
        if job["status"] == "FAILED":
            result.status, result.message = "failed", str(job.get("error"))
            return result
        if (
            metrics["recordsIn"] >= events
            and metrics["checkpoints"] >= 1
            and metrics["lagRecords"] == 0
            and (final_text is None or parallelism == 1 or metrics.get("watermark") == final_text)
        ):
            break
        if time.monotonic() > deadline:
            result.status = "timeout"
            result.message = f"not caught up within {timeout_s:.0f} s: {json.dumps(metrics)}"
            api.stop_job(job_id)
            return result
        time.sleep(0.02)
    result.seconds = time.monotonic() - started
    cpu = spate.cpu_seconds() - cpu_before
    result.events_per_s = events / result.seconds
    result.cores = cpu / result.seconds
    result.events_per_s_per_core = result.events_per_s / result.cores if result.cores > 0 else 0.0
    metrics = job["metrics"]
    result.details["job"] = {"id": job_id, **metrics}

    if query in TOTALS:
        wait_for_totals(spate.kafka_addr, sink, TOTALS[query][1], manifest.counts["bid"])
    api.stop_job(job_id)

    expected_wm = expected_watermark_ms(manifest, tuple(t for t in inputs if t != SIDE_INPUT))
    if SIDE_INPUT in inputs:
        expected_wm = None  # a source without a watermark holds the job's watermark back
    if expected_wm is not None and metrics.get("watermark") != generate.format_time(expected_wm):
        result.details["watermark_mismatch"] = {
            "job": metrics.get("watermark"),
            "expected": generate.format_time(expected_wm),
        }
    rows_path = checker.work_dir / f"{query}-sink.jsonl"
    n_rows = write_rows(sink_rows(read_topic(spate.kafka_addr, sink.topic), sink.upsert), rows_path)
    try:
        match, n_actual, n_expected, details = checker.compare(
            query, rows_path, n_rows, expected_wm, loose_ties=manifest.partitions > 1
        )
    except Exception as e:  # noqa: BLE001 - a DuckDB error (a cast of a sink value) is a mismatch
        result.match = False
        result.details["check_error"] = str(e)
        result.sink_rows = n_rows
        return result
    result.match = match and "watermark_mismatch" not in result.details
    result.sink_rows, result.expected_rows = n_actual, n_expected
    result.details.update(details)
    return result


# --- output ---------------------------------------------------------------------------------------


def table(results: list[QueryResult]) -> str:
    header = ["query", "events", "seconds", "events/s", "cores", "events/s/core", "result"]
    lines = []
    for r in results:
        if r.status == "ok":
            if "check_error" in r.details:
                verdict = f"MISMATCH: {r.details['check_error'].splitlines()[0]}"
            else:
                verdict = "match" if r.match else "MISMATCH"
                if r.details.get("subset"):
                    verdict += f" (subset: {r.sink_rows:,} of {r.expected_rows:,} rows)"
                else:
                    verdict += f" ({r.sink_rows:,} rows" + ("" if r.match else f", expected {r.expected_rows:,}") + ")"
            lines.append(
                [r.query, f"{r.events:,}", f"{r.seconds:.2f}", f"{r.events_per_s:,.0f}",
                 f"{r.cores:.2f}", f"{r.events_per_s_per_core:,.0f}", verdict]
            )
        else:
            lines.append([r.query, f"{r.events:,}", "-", "-", "-", "-", f"{r.status}: {r.message}"])
    widths = [max(len(h), *(len(line[i]) for line in lines)) if lines else len(h) for i, h in enumerate(header)]
    out = [" | ".join(h.ljust(w) for h, w in zip(header, widths)).rstrip()]
    out.append("-|-".join("-" * w for w in widths))
    for line in lines:
        cells = [c.rjust(w) if 0 < i < 6 else c.ljust(w) for i, (c, w) in enumerate(zip(line, widths))]
        out.append(" | ".join(cells).rstrip())
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("queries", nargs="*", help=f"queries to run [all: {' '.join(QUERIES)}]")
    parser.add_argument(
        "--spate",
        help="the spate binary [target/release/spate, else $CARGO_TARGET_DIR/release/spate, "
        "else $CARGO_TARGET_DIR/debug/spate, CARGO_TARGET_DIR defaulting to ~/.cache/spate/target]",
    )
    parser.add_argument("--events", type=int, default=1_000_000, help="Nexmark events to generate [1000000]")
    parser.add_argument("--rate", type=float, default=10_000.0, help="events per second of event time [10000]")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--partitions", type=int, default=1, help="partitions of person, auction and bid [1]")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="generator processes [cpus]")
    parser.add_argument("--parallelism", type=int, default=1, help="each job's tasks per stage ('parallelism.default') [1]")
    parser.add_argument("--checkpoint-ms", type=int, help="spate --sql-checkpoint-interval-ms [spate's default, 1000]")
    parser.add_argument("--timeout", type=float, default=900.0, help="seconds a query may take to catch up [900]")
    parser.add_argument("--json", type=Path, help="write the results here as JSON")
    parser.add_argument("--work-dir", type=Path, help="data, logs and spate's data directory [a temporary directory]")
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    args = parser.parse_args(argv)

    queries = args.queries or QUERIES
    unknown = [q for q in queries if q not in INPUTS]
    if unknown:
        parser.error(f"unknown queries: {' '.join(unknown)}")
    binary = find_binary(args.spate)
    work = args.work_dir or Path(tempfile.mkdtemp(prefix="nexmark-"))
    work.mkdir(parents=True, exist_ok=True)
    extra = ["--sql-checkpoint-interval-ms", str(args.checkpoint_ms)] if args.checkpoint_ms else []
    spate = Spate(binary, work / "spate-data", work / "spate.log", extra, sql=True)
    debug = "/debug/" in str(binary)
    print(f"spate: {binary}{' (a debug build: not representative numbers)' if debug else ''}", file=sys.stderr)
    print(f"work directory: {work}", file=sys.stderr)
    results: list[QueryResult] = []
    manifest: generate.Result | None = None
    try:
        spate.start()
        print(f"spate {spate.commit}: kafka {spate.kafka_addr}, sql {spate.sql_addr}", file=sys.stderr)
        config = generate.Config(
            events=args.events, rate=args.rate, seed=args.seed,
            base_time_ms=generate.parse_time(generate.DEFAULT_BASE_TIME),
        )
        print(f"generating {args.events:,} events ...", file=sys.stderr)
        manifest = generate.generate(
            config,
            bootstrap=spate.kafka_addr,
            partitions=args.partitions,
            parquet=work / "data",
            workers=args.workers,
        )
        generate.produce_side_input(spate.kafka_addr)
        (work / "data" / "manifest.json").write_text(manifest.to_json())
        print(
            f"generated {sum(manifest.counts.values()):,} events in {manifest.seconds:.1f} s "
            f"({', '.join(f'{t} {n:,}' for t, n in manifest.counts.items())})",
            file=sys.stderr,
        )
        api = SqlApi(spate.sql_addr)
        api.statements((HERE / "queries" / "ddl.sql").read_text())
        checker = Checker(work / "data", work)
        for query in queries:
            print(f"{query} ...", file=sys.stderr)
            result = run_query(query, api, spate, checker, manifest, args.timeout, args.parallelism)
            results.append(result)
            print(table([result]).splitlines()[-1], file=sys.stderr)
    except BaseException:
        print(f"failed; the work directory is kept: {work}", file=sys.stderr)
        raise
    finally:
        spate.stop()
    print(table(results))
    errors = spate.error_lines
    if errors:
        print(f"\nspate logged {len(errors)} ERROR lines, the first:", file=sys.stderr)
        for line in errors[:5]:
            print(f"  {line[:300]}", file=sys.stderr)
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "spate": str(binary),
                    "spate_commit": spate.commit,
                    "debug_build": debug,
                    "cpus": os.cpu_count(),
                    "events": args.events,
                    "rate": args.rate,
                    "seed": args.seed,
                    "partitions": args.partitions,
                    "parallelism": args.parallelism,
                    "generated": asdict(manifest) if manifest else None,
                    "spate_error_lines": errors[:20],
                    "queries": [asdict(r) for r in results],
                },
                indent=2,
            )
        )
    if not args.keep and not args.work_dir:
        shutil.rmtree(work, ignore_errors=True)
    return 0 if all(r.match is not False and r.status in ("ok", "unsupported") for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
