#!/usr/bin/env python3
"""Consumer-group join and rebalance times against a running broker, for bench/groups.sh.

Real clients: confluent-kafka (librdkafka) from the repo's venv. Every consumer runs in its own
process and reports what happens to it (subscribe, assignments, revocations, the first record
from each newly assigned partition, close) with time.monotonic(), which on Linux is
CLOCK_MONOTONIC and so comparable across processes on one machine.

  groups.py join-first --bootstrap ADDR --topic T --label L --reps N [--conf K=V]... --out F
      N times: a new group; one consumer is created and subscribes at once to a topic that
      already holds records; measures subscribe() -> first record.
  groups.py churn --bootstrap ADDR --topic T --partitions P --label L --cycles N [--conf K=V]...
                  --out F [--rate MSGS_S]
      A producer writes to every partition at a steady rate; 3 members form a group and settle.
      Then N cycles of: a pause; the longest-standing member leaves with close(), measured
      until the other two consume its partitions again; the group settles; a pause; a new
      member joins the stable 2-member group, measured until it receives its first record; the
      group settles. The pauses place the leaves and joins at spread-out points of the
      members' heartbeat cycles (--jitter-s, 3 s: librdkafka's default heartbeat interval).
  groups.py render RESULTS.jsonl OUT.md     tables of the results (also printed)

Results are JSON lines appended to --out; every event of every member goes to --out's
.events.jsonl sibling, for checking a number against what the clients saw.
"""

import argparse
import json
import math
import multiprocessing as mp
import os
import queue
import random
import sys
import time

# Settings this benchmark changes from librdkafka's defaults, for every consumer. The group
# starts with no committed offsets, and with the default `latest` a new group would wait for
# new records instead of reading the ones already in the topic. It plays no part in the
# protocol's timing.
BASE_CONF = {"auto.offset.reset": "earliest"}

SETTLE_QUIET_S = 4.0  # a group is settled when nothing changed for this long (> 3 s heartbeat)
WAIT_TIMEOUT_S = 60.0


def now():
    return time.monotonic()


# --- processes -----------------------------------------------------------------------------


def member_main(name, conf, topic, events, commands):
    """One consumer: created, subscribed at once, polled until told to close."""
    from confluent_kafka import Consumer

    t_create = now()
    consumer = Consumer(conf)
    owned, fresh = set(), set()

    def on_assign(_c, parts):
        ps = sorted(p.partition for p in parts)
        owned.update(ps)
        fresh.update(ps)
        events.put(("assign", name, now(), ps))

    def on_revoke(_c, parts):
        ps = sorted(p.partition for p in parts)
        owned.difference_update(ps)
        fresh.difference_update(ps)
        events.put(("revoke", name, now(), ps))

    def on_lost(_c, parts):
        ps = sorted(p.partition for p in parts)
        owned.difference_update(ps)
        fresh.difference_update(ps)
        events.put(("lost", name, now(), ps))

    t_sub = now()
    consumer.subscribe([topic], on_assign=on_assign, on_revoke=on_revoke, on_lost=on_lost)
    events.put(("subscribed", name, t_sub, {"create_s": t_sub - t_create}))
    while True:
        try:
            command = commands.get_nowait()
        except queue.Empty:
            command = None
        if command == "close":
            t = now()
            events.put(("closing", name, t, sorted(owned)))
            consumer.close()
            events.put(("closed", name, now(), None))
            return
        msg = consumer.poll(0.05)
        if msg is None:
            continue
        if msg.error():
            events.put(("error", name, now(), str(msg.error())))
            continue
        p = msg.partition()
        if p in fresh:
            fresh.discard(p)
            events.put(("first", name, now(), [p, msg.offset()]))


def producer_main(bootstrap, topic, partitions, rate, stop):
    """A steady producer: `rate` records a second, round-robin over the partitions."""
    from confluent_kafka import Producer

    producer = Producer({"bootstrap.servers": bootstrap})
    value = b"x" * 100
    period = 1.0 / rate
    start = now()
    i = 0
    while not stop.is_set():
        for _ in range(partitions):
            producer.produce(topic, value, partition=i % partitions)
            i += 1
        producer.poll(0)
        pause = start + i * period - now()
        if pause > 0:
            time.sleep(pause)
    producer.flush(30)


# --- the controller's view of the group ----------------------------------------------------


class Group:
    def __init__(self, ctx, args, events_path):
        self.ctx = ctx
        self.args = args
        self.events = ctx.Queue()
        self.members = {}  # name -> {"proc", "commands", "owned", "pending", "alive", "since"}
        self.log = []  # every event, in arrival order
        self.last_change = now()
        self.seq = 0
        self.events_file = open(events_path, "a")
        self.conf = dict(BASE_CONF)
        self.conf["bootstrap.servers"] = args.bootstrap
        for kv in args.conf or []:
            key, _, value = kv.partition("=")
            self.conf[key] = value

    def spawn(self, group_id):
        self.seq += 1
        name = f"m{self.seq}"
        conf = dict(self.conf, **{"group.id": group_id, "client.id": f"bench-{name}"})
        commands = self.ctx.Queue()
        proc = self.ctx.Process(target=member_main,
                                args=(name, conf, self.args.topic, self.events, commands),
                                daemon=True)
        proc.start()
        self.members[name] = {"proc": proc, "commands": commands, "owned": set(),
                              "pending": set(), "alive": True, "since": now()}
        self.last_change = now()
        return name

    def close(self, name):
        self.members[name]["commands"].put("close")

    def pump(self, timeout_s):
        """Apply the events that arrive until timeout_s has passed."""
        deadline = now() + timeout_s
        while True:
            try:
                kind, name, t, data = self.events.get(timeout=max(0.0, deadline - now()))
            except queue.Empty:
                return
            self.log.append((kind, name, t, data))
            self.events_file.write(json.dumps({"label": self.args.label, "kind": kind,
                                               "member": name, "t": t, "data": data}) + "\n")
            m = self.members[name]
            if kind == "assign":
                m["owned"].update(data)
                m["pending"].update(data)
                self.last_change = t
            elif kind in ("revoke", "lost"):
                m["owned"].difference_update(data)
                m["pending"].difference_update(data)
                self.last_change = t
            elif kind == "first":
                m["pending"].discard(data[0])
            elif kind == "closed":
                m["alive"] = False
                m["owned"].clear()
                m["pending"].clear()
                self.last_change = t
            elif kind == "error":
                print(f"[groups] {name}: {data}", file=sys.stderr)
            if now() >= deadline:
                return

    def alive(self):
        return [n for n, m in self.members.items() if m["alive"]]

    def consuming_everything(self, count):
        """`count` live members own every partition once, each owns some (there are more
        partitions than members), and each has read from every partition it owns."""
        alive = self.alive()
        owned = [p for n in alive for p in self.members[n]["owned"]]
        return (len(alive) == count and sorted(owned) == list(range(self.args.partitions))
                and all(self.members[n]["owned"] and not self.members[n]["pending"]
                        for n in alive))

    def wait(self, predicate, what):
        deadline = now() + WAIT_TIMEOUT_S
        while not predicate():
            if now() > deadline:
                raise TimeoutError(f"{what}: not within {WAIT_TIMEOUT_S:.0f} s; "
                                   f"members {self.describe()}")
            self.pump(0.05)

    def settle(self, count):
        """Until `count` members consume every partition and nothing changed for a while."""
        self.wait(lambda: self.consuming_everything(count)
                  and now() - self.last_change >= SETTLE_QUIET_S, f"settling with {count}")

    def describe(self):
        return {n: {"alive": m["alive"], "owned": sorted(m["owned"]),
                    "pending": sorted(m["pending"])} for n, m in self.members.items()}

    def stop_all(self):
        for name in self.alive():
            self.close(name)
        deadline = now() + 30
        while self.alive() and now() < deadline:
            self.pump(0.1)
        for m in self.members.values():
            m["proc"].join(timeout=5)
            if m["proc"].is_alive():
                m["proc"].terminate()


def firsts_after(log, t0, exclude=None):
    """(time, member, partition) of each 'first' event after t0, not from `exclude`."""
    return [(t, n, d[0]) for kind, n, t, d in log
            if kind == "first" and t > t0 and n != exclude]


def write(out, record):
    with open(out, "a") as f:
        f.write(json.dumps(record) + "\n")
    print("[groups] " + " ".join(f"{k}={v}" for k, v in record.items()), flush=True)


def ms(seconds):
    return round(seconds * 1000, 1)


# --- scenarios -----------------------------------------------------------------------------


def prefill(bootstrap, topic, partitions, per_partition):
    from confluent_kafka import Producer

    producer = Producer({"bootstrap.servers": bootstrap})
    for i in range(per_partition * partitions):
        producer.produce(topic, b"x" * 100, partition=i % partitions)
    left = producer.flush(30)
    if left:
        raise RuntimeError(f"prefill: {left} records not delivered")


def cmd_join_first(args):
    ctx = mp.get_context("spawn")
    prefill(args.bootstrap, args.topic, args.partitions, 100)
    group = Group(ctx, args, args.out + ".events.jsonl")
    for rep in range(1, args.reps + 1):
        gid = f"bench-first-{args.label}-{os.getpid()}-{rep}"
        start = len(group.log)
        name = group.spawn(gid)
        group.wait(lambda: any(k == "first" and n == name for k, n, _, _ in group.log[start:]),
                   f"first record of {name}")
        ev = {k: (t, d) for k, n, t, d in reversed(group.log[start:]) if n == name}
        t_sub = ev["subscribed"][0]
        write(args.out, {"kind": "join_first", "label": args.label, "rep": rep, "group": gid,
                         "assigned_ms": ms(ev["assign"][0] - t_sub),
                         "first_record_ms": ms(ev["first"][0] - t_sub),
                         "partitions": len(ev["assign"][1])})
        group.close(name)
        group.wait(lambda: not group.members[name]["alive"], f"close of {name}")
        group.members[name]["proc"].join(timeout=10)
    group.stop_all()


def cmd_churn(args):
    ctx = mp.get_context("spawn")
    stop = ctx.Event()
    producer = ctx.Process(target=producer_main,
                           args=(args.bootstrap, args.topic, args.partitions, args.rate, stop),
                           daemon=True)
    producer.start()
    group = Group(ctx, args, args.out + ".events.jsonl")
    gid = f"bench-churn-{args.label}-{os.getpid()}"
    try:
        for _ in range(3):
            group.spawn(gid)
        group.settle(3)
        # Settling ends a fixed time after the last change, so without a pause every leave and
        # join would fall at the same point of the members' heartbeat cycles. A pause drawn
        # from [0, jitter) spreads them over the cycle: stratified (one draw from each of
        # `cycles` equal slices, in shuffled order, for leaves and for joins) so that a few
        # cycles already cover it.
        rng = random.Random(args.seed)

        def stratified():
            slices = list(range(args.cycles))
            rng.shuffle(slices)
            return [args.jitter_s * (k + rng.random()) / args.cycles for k in slices]

        leave_pauses, join_pauses = stratified(), stratified()
        for cycle in range(1, args.cycles + 1):
            group.pump(leave_pauses[cycle - 1])
            # Leave: the longest-standing member closes.
            leaver = min(group.alive(), key=lambda n: group.members[n]["since"])
            start = len(group.log)
            group.close(leaver)
            group.wait(lambda: any(k == "closing" for k, _, _, _ in group.log[start:]),
                       f"close of {leaver}")
            _, _, t0, leaver_parts = next(e for e in group.log[start:] if e[0] == "closing")
            group.settle(2)
            log = group.log[start:]
            t_closed = next(t for k, n, t, _ in log if k == "closed" and n == leaver)
            firsts = firsts_after(log, t0, exclude=leaver)
            per_partition = {}
            for t, _, p in firsts:
                if p in leaver_parts and p not in per_partition:
                    per_partition[p] = t - t0
            revoked = sorted({p for k, n, _, d in log if k in ("revoke", "lost") and n != leaver
                              for p in d})
            write(args.out, {
                "kind": "leave", "label": args.label, "cycle": cycle, "leaver": leaver,
                "pause_ms": ms(leave_pauses[cycle - 1]),
                "leaver_partitions": leaver_parts, "close_ms": ms(t_closed - t0),
                "leaver_resumed_ms": ms(max(per_partition.values())),
                "leaver_resumed_min_ms": ms(min(per_partition.values())),
                "all_resumed_ms": ms(max(t for t, _, _ in firsts) - t0),
                "others_revoked": revoked,
            })
            # Join: a new member joins the stable 2-member group.
            group.pump(join_pauses[cycle - 1])
            start = len(group.log)
            newcomer = group.spawn(gid)
            group.settle(3)
            log = group.log[start:]
            t_sub = next(t for k, n, t, _ in log if k == "subscribed" and n == newcomer)
            new_firsts = [t for t, n, _ in firsts_after(log, t_sub) if n == newcomer]
            t_assigned = next(t for k, n, t, d in log if k == "assign" and n == newcomer and d)
            revoked = sorted({p for k, n, _, d in log if k in ("revoke", "lost") and n != newcomer
                              for p in d})
            write(args.out, {
                "kind": "join_stable", "label": args.label, "cycle": cycle,
                "pause_ms": ms(join_pauses[cycle - 1]),
                "newcomer": newcomer, "assigned_ms": ms(t_assigned - t_sub),
                "first_record_ms": ms(min(new_firsts) - t_sub),
                "newcomer_all_ms": ms(max(new_firsts) - t_sub),
                "all_resumed_ms": ms(max(t for t, _, _ in firsts_after(log, t_sub)) - t_sub),
                "others_revoked": revoked,
            })
    finally:
        group.stop_all()
        stop.set()
        producer.join(timeout=30)


# --- render --------------------------------------------------------------------------------


def nearest_rank(sorted_values, q):
    return sorted_values[max(0, math.ceil(q * len(sorted_values)) - 1)]


def stats(values):
    v = sorted(values)
    if not v:
        return "—"
    return (f"{nearest_rank(v, 0.5) / 1000:.2f} / {nearest_rank(v, 0.9) / 1000:.2f} / "
            f"{v[-1] / 1000:.2f} ({len(v)})")


def cmd_render(records_path, out_path):
    records = [json.loads(line) for line in open(records_path) if line.strip()]
    labels = []
    for r in records:
        if r.get("label") and r["label"] not in labels and r["kind"] != "txn":
            labels.append(r["label"])
    lines = ["## Consumer groups", "",
             "Seconds, p50 / p90 / max (samples), from the client's monotonic clock.", "",
             "| client | first member of a new group: subscribe → first record "
             "| 1 of 3 leaves: close() → its partitions consumed again "
             "| … every partition consumed again "
             "| newcomer to a stable 2-member group: subscribe → first record |",
             "|---|---|---|---|---|"]
    for label in labels:
        of = lambda kind, key: [r[key] for r in records if r["kind"] == kind and r["label"] == label]
        lines.append(f"| {label} | {stats(of('join_first', 'first_record_ms'))} "
                     f"| {stats(of('leave', 'leaver_resumed_ms'))} "
                     f"| {stats(of('leave', 'all_resumed_ms'))} "
                     f"| {stats(of('join_stable', 'first_record_ms'))} |")
    # Per repetition and mode, the first attempt not disturbed by other load (else the last).
    chosen = {}
    for r in records:
        if r["kind"] == "txn":
            key = (r["rep"], r["mode_label"])
            if key not in chosen or chosen[key].get("disturbed", 0) == 1:
                chosen[key] = r
    txn = list(chosen.values())
    if txn:
        lines += ["", "## Transactional produce (txn_perf, 1 KiB records, 1 partition)", "",
                  "MB = 10^6 bytes of record payload; medians over the repetitions.", "",
                  "| mode | MB/s per repetition | median MB/s | median msgs/s "
                  "| vs plain idempotent | commit_transaction() ms, median of means / max |",
                  "|---|---|---|---|---|---|"]
        modes = []
        for r in txn:
            if r["mode_label"] not in modes:
                modes.append(r["mode_label"])
        modes.sort(key=lambda m: (not m.startswith("plain, idempotent"), m.startswith("plain"), m))
        median = lambda xs: sorted(xs)[(len(xs) - 1) // 2] if len(xs) % 2 else \
            (sorted(xs)[len(xs) // 2 - 1] + sorted(xs)[len(xs) // 2]) / 2
        ok = lambda m: sorted((r for r in txn if r["mode_label"] == m and r.get("ok") == 1),
                              key=lambda r: r["rep"])
        base = [r["mb_s"] for r in ok("plain, idempotent")]
        for m in modes:
            rs = ok(m)
            failed = sum(1 for r in txn if r["mode_label"] == m and r.get("ok") != 1)
            if not rs:
                lines.append(f"| {m} | all {failed} failed | | | | |")
                continue
            mbs = [r["mb_s"] for r in rs]
            ratio = f"{median(mbs) / median(base) * 100:.0f}%" if base else "—"
            commits = [r for r in rs if "commit_ms_mean" in r]
            commit = (f"{median([r['commit_ms_mean'] for r in commits]):.1f} / "
                      f"{max(r['commit_ms_max'] for r in commits):.1f}") if commits else "—"
            marks = "".join("*" if r.get("disturbed") == 1 else "" for r in rs)
            lines.append(f"| {m} | {', '.join(f'{x:.0f}' for x in mbs)}"
                         f"{f' ({failed} failed)' if failed else ''}{' (* disturbed)' if marks else ''} "
                         f"| {median(mbs):.0f} | {median([r['msgs_s'] for r in rs]):,.0f} "
                         f"| {ratio} | {commit} |")
        pairs = []
        for m in modes:
            if m == "plain, idempotent":
                continue
            for r in ok(m):
                b = chosen.get((r["rep"], "plain, idempotent"))
                if b and b.get("ok") == 1:
                    pairs.append(f"{r['mb_s'] / b['mb_s'] * 100:.0f}%")
            if pairs:
                lines.append("")
                lines.append(f"{m}, each repetition against the same repetition's plain "
                             f"idempotent run: {', '.join(pairs)}.")
            pairs = []
    text = "\n".join(lines) + "\n"
    with open(out_path, "w") as f:
        f.write(text)
    print(text)


def main():
    if len(sys.argv) > 1 and sys.argv[1] == "render":
        cmd_render(*sys.argv[2:4])
        return
    parser = argparse.ArgumentParser()
    parser.add_argument("scenario", choices=["join-first", "churn"])
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--topic", required=True)
    parser.add_argument("--partitions", type=int, default=6)
    parser.add_argument("--label", required=True)
    parser.add_argument("--reps", type=int, default=10)
    parser.add_argument("--cycles", type=int, default=10)
    parser.add_argument("--rate", type=int, default=1200, help="churn producer, records/s")
    parser.add_argument("--jitter-s", type=float, default=3.0,
                        help="churn: pauses before each leave and join spread over [0, this)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--conf", action="append", help="librdkafka setting K=V (repeatable)")
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    if args.scenario == "join-first":
        cmd_join_first(args)
    else:
        cmd_churn(args)


if __name__ == "__main__":
    main()
