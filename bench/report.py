#!/usr/bin/env python3
"""Helpers for bench/run.sh: record measurements, compute percentiles, probe fsync latency,
and render the results file and summary table. Standard library only.

  report.py record FILE key=value...          append one JSON object to FILE (JSON lines)
  report.py percentiles FILE [SKIP]           p50 p99 p99.9 max count (ms) of a file of
                                              microsecond latencies, one a line
  report.py stalls FILE [SKIP]                episodes of latencies over 5 ms in such a file
  report.py sample OUT PID SECONDS            10 Hz samples of broker/kdamond/jbd2 CPU, Dirty
  report.py fsync-probe DIR [COUNT] [RATE]    p50 p99 p99.9 max (ms) and count over 5 ms of
                                              100-byte append+fdatasync, RATE a second
  report.py touch-probe                       seconds to fault in 1 GiB of new memory
  report.py parse-produce LOG                 msgs bytes ms delivered failed, from the summary
  report.py parse-consume LOG                 msgs bytes ms, from the summary
  report.py render RECORDS OUT.md             write the results file, print the summary table
"""

import json
import math
import os
import re
import statistics
import sys
import time


def typed(value):
    for kind in (int, float):
        try:
            return kind(value)
        except ValueError:
            pass
    return value


def cmd_record(path, *pairs):
    obj = {}
    for pair in pairs:
        key, _, value = pair.partition("=")
        obj[key] = typed(value)
    with open(path, "a") as f:
        f.write(json.dumps(obj) + "\n")


def nearest_rank(sorted_values, q):
    """Nearest-rank percentile: the smallest value with at least q of the data at or below it."""
    idx = max(0, math.ceil(q * len(sorted_values)) - 1)
    return sorted_values[idx]


def cmd_percentiles(path, skip="0"):
    with open(path) as f:
        values = [int(line) for line in f if line.strip()]
    values = values[int(skip):]
    if not values:
        print("nan nan nan nan 0")
        return
    values.sort()
    ms = [nearest_rank(values, q) / 1000 for q in (0.50, 0.99, 0.999)]
    print(" ".join(f"{v:.3f}" for v in ms), f"{values[-1] / 1000:.3f}", len(values))


def cmd_stalls(path, skip="0", threshold_us="5000"):
    """Episodes of consecutive messages over the threshold: how many, the worst, and the median
    number of messages between episode starts (at a fixed rate, a period)."""
    with open(path) as f:
        values = [int(line) for line in f if line.strip()][int(skip):]
    limit = int(threshold_us)
    starts, worst = [], []
    for i, v in enumerate(values):
        if v > limit:
            if not starts or i - 1 != last:
                starts.append(i)
                worst.append(v)
            else:
                worst[-1] = max(worst[-1], v)
            last = i
    if not starts:
        print(f"none over {limit / 1000:g} ms")
        return
    gaps = [b - a for a, b in zip(starts, starts[1:])]
    gap = f", every ~{statistics.median(gaps):.0f} messages" if gaps else ""
    print(f"{len(starts)} episodes over {limit / 1000:g} ms, worst {max(worst) / 1000:.1f} ms{gap}")


def cmd_sample(out_path, pid, seconds):
    """Every 100 ms: wall clock, CPU ticks of the broker, of kdamond and of jbd2 (kernel threads
    that run on their own schedule), Dirty and Writeback kB. For explaining latency stalls."""
    def ticks(p):
        try:
            fields = open(f"/proc/{p}/stat").read().rsplit(")", 1)[1].split()
            return int(fields[11]) + int(fields[12])
        except OSError:
            return 0

    def kthreads(prefix):
        found = []
        for p in os.listdir("/proc"):
            if p.isdigit():
                try:
                    if open(f"/proc/{p}/comm").read().startswith(prefix):
                        found.append(p)
                except OSError:
                    pass
        return found

    kdamond, jbd2 = kthreads("kdamond"), kthreads("jbd2")
    deadline = time.time() + float(seconds)
    with open(out_path, "w") as out:
        out.write("time broker_ticks kdamond_ticks jbd2_ticks dirty_kb writeback_kb\n")
        while time.time() < deadline:
            mem = {}
            for line in open("/proc/meminfo"):
                key, value = line.split(":", 1)
                if key in ("Dirty", "Writeback"):
                    mem[key] = value.split()[0]
            out.write(f"{time.time():.3f} {ticks(pid)} {sum(map(ticks, kdamond))} "
                      f"{sum(map(ticks, jbd2))} {mem.get('Dirty')} {mem.get('Writeback')}\n")
            time.sleep(0.1)


def cmd_fsync_probe(directory, count="20000", rate="1000"):
    """The disk alone, paced like the latency run: append 100 bytes and fdatasync, `rate` times a
    second. Prints p50 p99 p99.9 max (ms) and how many took over 5 ms."""
    path = os.path.join(directory, "fsync-probe.tmp")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    record = b"x" * 100
    period = 1 / float(rate)
    samples = []
    start = time.perf_counter()
    try:
        for i in range(int(count)):
            t0 = time.perf_counter()
            os.write(fd, record)
            os.fdatasync(fd)
            samples.append(time.perf_counter() - t0)
            pause = start + (i + 1) * period - time.perf_counter()
            if pause > 0:
                time.sleep(pause)
    finally:
        os.close(fd)
        os.unlink(path)
    over = sum(1 for s in samples if s > 0.005)
    samples.sort()
    print(" ".join(f"{nearest_rank(samples, q) * 1000:.3f}" for q in (0.50, 0.99, 0.999)),
          f"{samples[-1] * 1000:.3f}", over)


def cmd_touch_probe():
    """Seconds to fault in 1 GiB of fresh anonymous memory, one write per 4 KiB page: the price
    of every new page, page-cache pages included."""
    import mmap
    size = 1 << 30
    m = mmap.mmap(-1, size)
    t0 = time.perf_counter()
    for off in range(0, size, 4096):
        m[off] = 1
    elapsed = time.perf_counter() - t0
    m.close()
    print(f"{elapsed:.2f}")


PRODUCE_RE = re.compile(
    r"(\d+) messages produced \((\d+) bytes\), (\d+) delivered "
    r"\(offset -?\d+, (\d+) failed\) in (\d+)ms"
)
CONSUME_RE = re.compile(r"(\d+) messages \((\d+) bytes\) consumed in (\d+)ms")


def last_match(path, pattern):
    found = None
    with open(path, errors="replace") as f:
        for line in f:
            m = pattern.search(line)
            if m:
                found = m
    return found


def cmd_parse_produce(path):
    m = last_match(path, PRODUCE_RE)
    if not m:
        print("0 0 0 0 0")
        return
    msgs, nbytes, delivered, failed, ms = m.groups()
    print(msgs, nbytes, ms, delivered, failed)


def cmd_parse_consume(path):
    m = last_match(path, CONSUME_RE)
    print(" ".join(m.groups()) if m else "0 0 0")


# --- rendering -------------------------------------------------------------------------------

TARGETS = {
    # key: (description, target text, predicate(value, limits) -> bool, tansu reference)
    "produce_1k_mb_s": ("produce 1 KiB, 1 partition, acks=all (MB/s)",
                        "≥ 80% of dd fsync'd write",
                        lambda v, lim: v >= 0.8 * lim["dd_mb_s"], "418 MB/s (in memory)"),
    "produce_100b_msgs_s": ("produce 100 B, 1 partition, acks=all (msgs/s)", "≥ 2,000,000",
                            lambda v, lim: v >= 2_000_000, "1.9 M msgs/s (in memory)"),
    "consume_1k_mb_s": ("consume 1 KiB from offset 0 (MB/s)", "≥ 1,200",
                        lambda v, lim: v >= 1200, "822 MB/s"),
    "consume_100b_msgs_s": ("consume 100 B from offset 0 (msgs/s)", "≥ 2,500,000",
                            lambda v, lim: v >= 2_500_000, "—"),
    "e2e_p99_ms": ("end-to-end p99 at 1,000 msgs/s, default consumer (ms)", "≤ 5",
                   lambda v, lim: v <= 5, "504 ms"),
    "rss_100p_mb": ("broker peak RSS, 100 partitions, ~3 GB stored (MB)", "≤ 150",
                    lambda v, lim: v <= 150, "2.97 GB"),
}


def fmt(v, digits=1):
    if isinstance(v, str):
        return v
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "—"
    if abs(v) >= 1000:
        return f"{v:,.0f}"
    return f"{v:.{digits}f}" if isinstance(v, float) else str(v)


def cmd_render(records_path, out_path):
    recs = [json.loads(line) for line in open(records_path) if line.strip()]
    info = {}
    for r in recs:
        if r.get("kind") == "info":
            info.update({k: v for k, v in r.items() if k != "kind"})
    runs = [r for r in recs if r.get("kind") == "run"]
    lats = [r for r in recs if r.get("kind") == "latency"]
    # Per label, the last attempt (an attempt is repeated only when other load disturbed it).
    final_lats = list({r["label"]: r for r in lats}.values())
    e2e_p99s = [r["e2e_p99_ms"] for r in final_lats if isinstance(r.get("e2e_p99_ms"), (int, float))]
    by_phase = {}
    for r in runs:
        by_phase.setdefault(r["phase"], []).append(r)

    def med(phase, key):
        """Median over successful runs, undisturbed ones if there are any."""
        good = [r for r in by_phase.get(phase, [])
                if r.get("ok") == 1 and isinstance(r.get(key), (int, float))]
        quiet = [r for r in good if r.get("disturbed") != 1]
        vals = [r[key] for r in (quiet or good)]
        return statistics.median(vals) if vals else float("nan")

    dd = info.get("dd_fdatasync_mb_s")
    lim = {"dd_mb_s": float(dd) if isinstance(dd, (int, float)) else float("nan")}
    headline = {
        "produce_1k_mb_s": med("produce_1k", "mb_s"),
        "produce_100b_msgs_s": med("produce_100b", "msgs_s"),
        "consume_1k_mb_s": med("consume_1k", "mb_s"),
        "consume_100b_msgs_s": med("consume_100b", "msgs_s"),
        "e2e_p99_ms": max(e2e_p99s) if e2e_p99s else float("nan"),
        "rss_100p_mb": info.get("rss_100p_peak_mb", float("nan")),
    }

    lines = []
    w = lines.append
    w(f"# Spate benchmark {info.get('timestamp', '')}")
    w("")
    w(f"Command: `{info.get('command', 'bench/run.sh')}`  ")
    w(f"Spate: {info.get('spate_version', '?')} at commit {info.get('git_commit', '?')}  ")
    w(f"Client: librdkafka {info.get('librdkafka_version', '?')} `rdkafka_performance` example")
    w("")
    w("## Machine")
    w("")
    for key, label in [("cpu_model", "CPU"), ("cpu_cores", "cores"), ("kernel", "kernel"),
                       ("mem_total", "memory"), ("disk", "data disk"),
                       ("load_at_start", "load average at start")]:
        w(f"- {label}: {info.get(key, '?')}")
    w("")
    w("## Machine limits (same run)")
    w("")
    w(f"- sequential write, `dd bs=1M count=2048 conv=fdatasync`, 3 files kept until the end (median of runs "
      f"{info.get('dd_runs', '?')} MB/s): **{fmt(lim['dd_mb_s'])} MB/s**")
    w(f"- 1 MiB writes each fdatasync'd, `dd bs=1M oflag=dsync`: "
      f"{fmt(info.get('dd_dsync_1m_mb_s'))} MB/s")
    w(f"- the disk alone, paced like the latency run: 100-byte append + fdatasync, "
      f"{fmt(info.get('fsync_probe_count'))} times at {fmt(info.get('fsync_probe_rate'))}/s, "
      f"p50/p99/p99.9/max: {info.get('fsync_100b_ms', '?')} ms; "
      f"{info.get('fsync_100b_over_5ms', '?')} took over 5 ms")
    w(f"- loopback TCP, iperf3 single stream: {fmt(info.get('loopback_mb_s'))} MB/s")
    w(f"- first touch of 1 GiB of new memory (page faults, one write per 4 KiB page): "
      f"{fmt(info.get('touch_1g_s'), 2)} s")
    w("")
    w("## Results against the targets (issue 2)")
    w("")
    w("Median of the repetitions; acks=all, fsync before every ack (the default).")
    w("")
    w("| measure | Spate | target | met | tansu (issue 2) |")
    w("|---|---|---|---|---|")
    summary_rows = []
    for key, (desc, target, ok, tansu) in TARGETS.items():
        v = headline[key]
        if not isinstance(v, (int, float)):
            v = float("nan")
        if math.isnan(v) or (key == "produce_1k_mb_s" and math.isnan(lim["dd_mb_s"])):
            met = "no data"
        else:
            met = "yes" if ok(v, lim) else "no"
        shown = fmt(v, 2 if key == "e2e_p99_ms" else 1)
        if key == "e2e_p99_ms" and len(final_lats) > 1:
            shown = " / ".join(f"{r['e2e_p99_ms']:.2f} ({r['label']})" for r in final_lats)
        if key == "produce_1k_mb_s" and not math.isnan(lim["dd_mb_s"]) and not math.isnan(v):
            shown += f" ({100 * v / lim['dd_mb_s']:.0f}% of dd)"
        w(f"| {desc} | {shown} | {target} | {met} | {tansu} |")
        summary_rows.append((desc, shown, target, met))
    w("")

    w("## Throughput runs")
    w("")
    w("CPU seconds over each run's wall time (client = rdkafka_performance user+sys; "
      "other = every other process on the machine, from /proc/stat). "
      "MB = 10^6 bytes of record payload. A run is *disturbed* when other processes used more "
      "than a quarter of a core on average; it is then repeated (up to 3 attempts) and the "
      "medians above use undisturbed runs where there are any.")
    w("")
    w("| phase | rep.attempt | msgs | MB/s | msgs/s | wall s | broker CPU s (of it kernel) | client CPU s | other CPU s | ok |")
    w("|---|---|---|---|---|---|---|---|---|---|")
    for phase in ("produce_1k", "produce_100b", "consume_1k", "consume_100b",
                  "produce_100p", "consume_100p"):
        for r in by_phase.get(phase, []):
            w(f"| {phase} | {r.get('rep', '')}.{r.get('attempt', 1)} | {fmt(r.get('msgs'))} | {fmt(r.get('mb_s'))} | "
              f"{fmt(r.get('msgs_s'))} | {fmt(r.get('wall_s'), 2)} | {fmt(r.get('broker_cpu_s'), 2)} ({fmt(r.get('broker_sys_s'), 2)}) | "
              f"{fmt(r.get('client_cpu_s'), 2)} | {fmt(r.get('other_cpu_s'), 2)} | "
              f"{('yes' if r.get('disturbed') != 1 else 'disturbed') if r.get('ok') == 1 else 'NO: ' + str(r.get('error', ''))} |")
    w("")

    w("## Latency (1,000 msgs/s target rate, 100 B records)")
    w("")
    w("Produce-ack: produce() call to delivery report (linger.ms=0, acks=all, so fsync included). "
      "End-to-end: produce() call to the consumer's callback, consumer on default settings. "
      "Percentiles in ms; the first messages of each run are skipped as warm-up.")
    w("")
    w("| run.attempt | msgs/s | samples | ack p50 | ack p99 | ack p99.9 | ack max | e2e p50 | e2e p99 | e2e p99.9 | e2e max | broker CPU s (of it kernel) / wall s | client CPU s | other CPU s | acks over 5 ms |")
    w("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in lats:
        w(f"| {r['label']}.{r.get('attempt', 1)}{' (disturbed)' if r.get('disturbed') == 1 else ''} | {fmt(r.get('rate_msgs_s'))} | {fmt(r.get('samples'))} | "
          f"{r.get('ack_p50_ms')} | {r.get('ack_p99_ms')} | {r.get('ack_p999_ms')} | {r.get('ack_max_ms')} | "
          f"{r.get('e2e_p50_ms')} | {r.get('e2e_p99_ms')} | {r.get('e2e_p999_ms')} | {r.get('e2e_max_ms')} | "
          f"{fmt(r.get('broker_cpu_s'), 2)} ({fmt(r.get('broker_sys_s'), 2)}) / {r.get('wall_s')} | "
          f"{fmt(r.get('client_cpu_s'), 2)} | {fmt(r.get('other_cpu_s'), 2)} | {r.get('stalls')} |")
    w("")

    w("## Memory")
    w("")
    w(f"- peak RSS (VmHWM) over the throughput phases: {fmt(info.get('rss_throughput_peak_mb'))} MB")
    w(f"- 100 partitions, {fmt(info.get('rss_100p_stored_gb'), 2)} GB stored: peak RSS (VmHWM) "
      f"{fmt(info.get('rss_100p_peak_mb'))} MB; after produce VmRSS "
      f"{fmt(info.get('rss_100p_after_produce_mb'))} MB; after consuming everything VmRSS "
      f"{fmt(info.get('rss_100p_after_consume_mb'))} MB "
      f"(anonymous {fmt(info.get('rss_100p_anon_mb'))} MB, file-backed "
      f"{fmt(info.get('rss_100p_file_mb'))} MB)")
    w("")

    w("## Client settings")
    w("")
    for key in ("produce_args", "consume_args", "lat_produce_args", "lat_consume_args"):
        if key in info:
            w(f"- {key}: `{info[key]}`")
    w("")
    if info.get("profile"):
        w("## Profile (perf, one extra run per workload, not in the numbers above)")
        w("")
        w("```")
        w(open(info["profile"]).read().rstrip())
        w("```")
        w("")
    w("## Broker log")
    w("")
    w(f"- exit on SIGTERM: {info.get('broker_exit', '?')}")
    w(f"- WARN/ERROR lines: {info.get('broker_warn_lines', '?')} "
      f"(full log: {info.get('broker_log', '?')})")
    if info.get("broker_warn_sample") and os.path.getsize(info["broker_warn_sample"]):
        w("")
        w("```")
        w(open(info["broker_warn_sample"]).read().rstrip())
        w("```")
    w("")
    if info.get("notes") and os.path.getsize(info["notes"]):
        w("## Notes")
        w("")
        w(open(info["notes"]).read().rstrip())
        w("")

    with open(out_path, "w") as f:
        f.write("\n".join(lines))

    width = max(len(r[0]) for r in summary_rows)
    print(f"{'measure':<{width}}  {'Spate':>22}  {'target':<26} met")
    for desc, shown, target, met in summary_rows:
        print(f"{desc:<{width}}  {shown:>22}  {target:<26} {met}")


def main():
    cmds = {
        "record": cmd_record,
        "percentiles": cmd_percentiles,
        "fsync-probe": cmd_fsync_probe,
        "stalls": cmd_stalls,
        "sample": cmd_sample,
        "touch-probe": cmd_touch_probe,
        "parse-produce": cmd_parse_produce,
        "parse-consume": cmd_parse_consume,
        "render": cmd_render,
    }
    if len(sys.argv) < 2 or sys.argv[1] not in cmds:
        sys.exit(__doc__)
    cmds[sys.argv[1]](*sys.argv[2:])


if __name__ == "__main__":
    main()
