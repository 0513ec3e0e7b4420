#!/usr/bin/env python3
"""Helpers for bench/registry.sh. Standard library only.

  registry.py schemas N PREFIX     N Avro record schemas, one a line: the subject
                                   (PREFIX-<i>-value) and the JSON body to register it, by a tab
  registry.py render RECORDS OUT.md  write the results file, print its tables

RECORDS is the JSON-lines file bench/report.py record writes: kind=info, kind=lookup (one wrk
run), kind=produce (one txn_perf run).
"""

import json
import statistics
import sys

FIELD_TYPES = [
    "long",
    "string",
    "double",
    "boolean",
    "int",
    {"type": "long", "logicalType": "timestamp-millis"},
    ["null", "string"],
    {"type": "array", "items": "string"},
    {"type": "map", "values": "long"},
    "bytes",
]


def schema(i):
    """A record of 12-20 fields, one enum and one nested record: about 1 KB of schema text, the
    size of a typical event schema."""
    fields = [{"name": "id", "type": "string"}]
    for j in range(11 + i % 9):
        t = FIELD_TYPES[(i + j) % len(FIELD_TYPES)]
        field = {"name": f"field_{j}", "type": t}
        if t == ["null", "string"]:
            field["default"] = None
        fields.append(field)
    fields.append(
        {
            "name": "status",
            "type": {"type": "enum", "name": f"Status{i}", "symbols": ["NEW", "ACTIVE", "DONE"]},
        }
    )
    fields.append(
        {
            "name": "source",
            "type": {
                "type": "record",
                "name": f"Source{i}",
                "fields": [
                    {"name": "host", "type": "string"},
                    {"name": "port", "type": "int"},
                ],
            },
        }
    )
    return {
        "type": "record",
        "name": f"Event{i}",
        "namespace": "bench.registry",
        "doc": f"benchmark schema {i}",
        "fields": fields,
    }


def cmd_schemas(n, prefix):
    for i in range(1, int(n) + 1):
        body = json.dumps({"schema": json.dumps(schema(i), separators=(",", ":"))})
        print(f"{prefix}-{i}-value\t{body}")


def load(path):
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def median(values):
    return statistics.median(values) if values else float("nan")


def fmt(v, digits=0):
    if v is None or v != v:
        return "—"
    return f"{v:,.{digits}f}"


def best_attempts(runs, key_fields):
    """One run per key: the last undisturbed attempt, else the last attempt."""
    by_key = {}
    for r in runs:
        by_key.setdefault(tuple(r.get(k) for k in key_fields), []).append(r)
    chosen = []
    for rs in by_key.values():
        clean = [r for r in rs if not r.get("disturbed")]
        chosen.append((clean or rs)[-1])
    return chosen


def cmd_render(records_path, out_path):
    recs = load(records_path)
    info = {}
    for r in recs:
        if r.get("kind") == "info":
            info.update({k: v for k, v in r.items() if k != "kind"})
    lookups = best_attempts([r for r in recs if r.get("kind") == "lookup"], ["load", "mode", "rep"])
    produces = best_attempts(
        [r for r in recs if r.get("kind") == "produce"], ["client", "validation", "rep"]
    )
    lines = []
    w = lines.append
    w(f"# Schema registry benchmark, run {info.get('timestamp', '?')}")
    w("")
    w(f"Command: `{info.get('command', 'bench/registry.sh')}`; {info.get('spate_version', 'spate ?')}, "
      f"commit {info.get('git_commit', '?')}; txn_perf on librdkafka {info.get('librdkafka', '?')}; "
      f"{info.get('wrk_version', 'wrk')}.")
    w(f"Machine: {info.get('cpu_model', '?')}, {info.get('cpu_cores', '?')} cores shared by clients "
      f"and broker, {info.get('mem_total', '?')}, {info.get('kernel', '?')}; "
      f"load at start {info.get('load_at_start', '?')}.")
    w(f"Schemas: {info.get('schemas', '?')} Avro records in as many subjects, "
      f"{info.get('schema_bytes_mean', '?')} bytes of schema text on average.")
    if info.get("page_cache_fill_mb"):
        w(f"Page cache filled before the produce runs: {fmt(info['page_cache_fill_mb'])} MiB written "
          f"and kept ({info.get('mem_after_fill', '').strip()}).")
    w("")

    endpoints = {
        "by-id": "`GET /schemas/ids/{id}`",
        "latest": "`GET /subjects/{s}/versions/latest`",
        "lookup": "`POST /subjects/{s}` (schema in the body)",
    }
    for load_name in sorted({r["load"] for r in lookups}, key=lambda s: (s != "loaded", s)):
        rs = [r for r in lookups if r["load"] == load_name]
        example = rs[0]
        heading = {"loaded": "loaded", "single": "one connection"}.get(load_name, load_name)
        w(f"## Lookups, {heading}: wrk -t{example.get('threads')} -c{example.get('connections')} "
          f"-d{example.get('seconds')}s, random schemas")
        w("")
        w("| endpoint | req/s per run | median req/s | p50 ms | p99 ms | broker CPU µs/req | "
          "broker cores | wrk cores | non-2xx |")
        w("|---|---|---|---|---|---|---|---|---|")
        for mode in ["by-id", "latest", "lookup"]:
            mr = sorted((r for r in rs if r["mode"] == mode), key=lambda r: r["rep"])
            if not mr:
                continue
            rates = [r["req_s"] for r in mr]
            med = sorted(mr, key=lambda r: r["req_s"])[len(mr) // 2]
            w(f"| {endpoints[mode]} | {', '.join(fmt(x) for x in rates)} | **{fmt(median(rates))}** | "
              f"{fmt(med['p50_ms'], 3)} | {fmt(med['p99_ms'], 3)} | "
              f"{fmt(med['broker_cpu_s'] * 1e6 / max(med['requests'], 1), 1)} | "
              f"{fmt(med['broker_cpu_s'] / med['wall_s'], 2)} | "
              f"{fmt(med['client_cpu_s'] / med['wall_s'], 2)} | "
              f"{sum(r['non_2xx'] + r['read_errors'] + r['timeouts'] for r in mr)} |")
        w("")

    if produces:
        w(f"## Produce with validation: txn_perf, {fmt(produces[0].get('records'))} records of "
          f"{produces[0].get('size')} B per run, 1 partition, acks=all")
        w("")
        w("| client | validation | MB/s per repetition | median MB/s | vs off (medians) | vs off, per repetition | broker CPU s per GB, median | client CPU s per GB, median | stored MB per run |")
        w("|---|---|---|---|---|---|---|---|---|")
        clients = []
        for r in produces:
            if r["client"] not in clients:
                clients.append(r["client"])
        vmodes = []
        for r in produces:
            if r["validation"] not in vmodes:
                vmodes.append(r["validation"])
        for c in clients:
            base = None
            for v in vmodes:
                rs = sorted((r for r in produces if r["client"] == c and r["validation"] == v),
                            key=lambda r: r["rep"])
                if not rs:
                    continue
                rates = [r.get("mb_s", 0) if r.get("ok") else 0 for r in rs]
                m = median(rates)
                if base is None:
                    base = m
                cpu_gb = median([r["broker_cpu_s"] / (r["bytes"] / 1e9) for r in rs if r.get("bytes")])
                stored = median([r.get("stored_gb", float("nan")) * 1000 for r in rs])
                # Against the same repetition's run without validation: the repetitions differ
                # more from each other (fresh against recycled page cache) than the modes do.
                off = {r["rep"]: r.get("mb_s", 0) for r in produces
                       if r["client"] == c and r["validation"] == vmodes[0] and r.get("ok")}
                per_rep = [100 * r.get("mb_s", 0) / off[r["rep"]] for r in rs
                           if r.get("ok") and off.get(r["rep"])]
                client_gb = median([r["client_cpu_s"] / (r["bytes"] / 1e9) for r in rs if r.get("bytes")])
                per_rep_text = ("—" if v == vmodes[0] else
                                f"{', '.join(fmt(x) for x in per_rep)} (median {fmt(median(per_rep))}%)")
                w(f"| {c} | {v} | {', '.join(fmt(x) for x in rates)} | **{fmt(m)}** | "
                  f"{fmt(100 * m / base) if base else '—'}% | {per_rep_text} | "
                  f"{fmt(cpu_gb, 2)} | {fmt(client_gb, 2)} | {fmt(stored)} |")
        failed = [r for r in produces if not r.get("ok")]
        w("")
        w(f"Runs that did not deliver every record: {len(failed)}"
          + ("" if not failed else " (" + "; ".join(
              f"{r['client']}/{r['validation']} rep {r['rep']}: {r.get('first_error', r.get('exit_code'))}"
              for r in failed) + ")"))
        disturbed = [r for r in produces + lookups if r.get("disturbed")]
        w(f"Runs disturbed by other load in all attempts: {len(disturbed)}")
        w("")

    w("## Broker")
    w("")
    w(f"- exit on SIGTERM: {info.get('broker_exit', '?')}; WARN/ERROR lines: {info.get('broker_warn_lines', '?')}")
    if info.get("profile"):
        w(f"- profiles: {info['profile']}")
    w("")
    text = "\n".join(lines) + "\n"
    with open(out_path, "w") as f:
        f.write(text)
    print(text)


def main():
    cmds = {"schemas": cmd_schemas, "render": cmd_render}
    if len(sys.argv) < 2 or sys.argv[1] not in cmds:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    cmds[sys.argv[1]](*sys.argv[2:])


if __name__ == "__main__":
    main()
