"""The AI gateway end to end: `spate serve` with `[ai-gateway]` in its config file, driven by
the `openai` Python package pointed at Spate's /v1, in front of stub providers started here
(hosted model providers are the one thing a test cannot reach): one speaking OpenAI's
/v1/chat/completions, one Anthropic's /v1/messages, both with streaming, able to fail or be
slow, counting their calls. Records are read back from `_ai_requests` with confluent-kafka."""

from __future__ import annotations

import base64
import json
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import openai
import pytest
import requests
from confluent_kafka import TopicPartition

from conftest import spate_binary
from helpers import consumer, unique, wait_until
from test_sasl import create_user

pytestmark = pytest.mark.timeout(300)


class Stub:
    """A provider: `kind` "openai" or "anthropic"; `fail` statuses are answered first, one per
    call; `delay_s` holds each answer back; `calls` holds each request's path, headers, body."""

    def __init__(self, name: str, kind: str):
        self.name = name
        self.kind = kind
        self.fail: list[int] = []
        self.delay_s = 0.0
        # Streams: `hold` set -> wait for it after the first word; `cut` -> end before finishing.
        self.hold: threading.Event | None = None
        self.cut = False
        self.calls: list[dict] = []
        self.lock = threading.Lock()
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # quiet
                pass

            def do_POST(self):
                length = int(self.headers.get("content-length", "0"))
                body = json.loads(self.rfile.read(length) or b"{}")
                with stub.lock:
                    stub.calls.append({"path": self.path, "headers": {k.lower(): v for k, v in self.headers.items()}, "body": body})
                    status = stub.fail.pop(0) if stub.fail else 200
                    delay = stub.delay_s
                try:
                    if delay:
                        time.sleep(delay)  # a slow provider, not a wait for a condition
                    if status != 200:
                        self.reply(status, {"error": {"message": f"{stub.name} fails", "type": "server_error"}})
                    elif stub.kind == "openai" and self.path == "/v1/chat/completions":
                        stub.openai(self, body)
                    elif stub.kind == "anthropic" and self.path == "/v1/messages":
                        stub.anthropic(self, body)
                    else:
                        self.reply(404, {"error": {"message": f"no {self.path}"}})
                except (BrokenPipeError, ConnectionResetError):
                    pass

            def reply(self, status: int, value: dict) -> None:
                data = json.dumps(value).encode()
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def events(self, events: list[tuple[str | None, str]]) -> None:
                self.send_response(200)
                self.send_header("content-type", "text/event-stream")
                self.end_headers()
                for i, (name, data) in enumerate(events):
                    head = f"event: {name}\n" if name else ""
                    self.wfile.write(f"{head}data: {data}\n\n".encode())
                    self.wfile.flush()
                    if i == 2 and stub.hold is not None:
                        assert stub.hold.wait(30), "the test never released the stream"
                    if i == 2 and stub.cut:
                        return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def text(self, body: dict) -> str:
        last = body["messages"][-1]["content"]
        if isinstance(last, list):
            last = " ".join(p["text"] for p in last)
        return f"{self.name} says: {last}"

    def openai(self, handler, body: dict) -> None:
        text = self.text(body)
        base = {"id": "chatcmpl-stub", "created": 1, "model": body["model"]}
        usage = {"prompt_tokens": 11, "completion_tokens": 7, "total_tokens": 18}
        if not body.get("stream"):
            handler.reply(200, {**base, "object": "chat.completion", "usage": usage, "choices": [
                {"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}]})
            return
        chunk = {**base, "object": "chat.completion.chunk"}
        events = [(None, json.dumps({**chunk, "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}}]}))]
        for word in text.split(" "):
            events.append((None, json.dumps({**chunk, "choices": [{"index": 0, "delta": {"content": word + " "}}]})))
        events.append((None, json.dumps({**chunk, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})))
        if (body.get("stream_options") or {}).get("include_usage"):
            events.append((None, json.dumps({**chunk, "choices": [], "usage": usage})))
        events.append((None, "[DONE]"))
        handler.events(events)

    def anthropic(self, handler, body: dict) -> None:
        text = self.text(body)
        if not body.get("stream"):
            handler.reply(200, {
                "id": "msg_stub", "type": "message", "role": "assistant", "model": body["model"],
                "content": [{"type": "text", "text": text}], "stop_reason": "end_turn",
                "usage": {"input_tokens": 13, "output_tokens": 5},
            })
            return
        events = [("message_start", json.dumps({"type": "message_start", "message": {
            "id": "msg_stub", "type": "message", "role": "assistant", "model": body["model"], "content": [],
            "usage": {"input_tokens": 13, "output_tokens": 1}}})),
            ("content_block_start", json.dumps({"type": "content_block_start", "index": 0,
                                                "content_block": {"type": "text", "text": ""}})),
            ("ping", json.dumps({"type": "ping"}))]
        for word in text.split(" "):
            events.append(("content_block_delta", json.dumps({
                "type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": word + " "}})))
        events += [
            ("content_block_stop", json.dumps({"type": "content_block_stop", "index": 0})),
            ("message_delta", json.dumps({"type": "message_delta", "delta": {"stop_reason": "end_turn"},
                                          "usage": {"output_tokens": 5}})),
            ("message_stop", json.dumps({"type": "message_stop"})),
        ]
        handler.events(events)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def gateway(spate_factory, tmp_path):
    """A spate serve whose gateway fronts three stubs, and an openai client pointed at it."""
    primary, secondary, claude = Stub("primary", "openai"), Stub("secondary", "openai"), Stub("claude", "anthropic")
    config = tmp_path / "spate.toml"
    config.write_text(f"""
[ai-gateway]
[ai-gateway.cache]
ttl-seconds = 300
[ai-gateway.log]
bodies = true
redact = ["content"]

[[ai-gateway.providers]]
name = "primary"
kind = "openai"
base-url = "{primary.url}/v1"
api-key = "sk-upstream-primary"
models = ["gpt-stub", "gpt-fallback"]
timeout-ms = 1000
retries = 1
retry-backoff-ms = 10
input-price-per-1m = 1.0
output-price-per-1m = 2.0

[[ai-gateway.providers]]
name = "claude"
kind = "anthropic"
base-url = "{claude.url}"
api-key = "sk-ant-stub"
models = ["claude-stub"]
aliases = {{ claude = "claude-stub" }}

[[ai-gateway.providers]]
name = "secondary"
kind = "openai"
base-url = "{secondary.url}/v1"
models = ["gpt-fallback"]
retries = 0

[[ai-gateway.keys]]
name = "team-a"
key = "sk-team-a"

[[ai-gateway.keys]]
name = "limited"
key = "sk-limited"
requests-per-minute = 2

[[ai-gateway.keys]]
name = "frugal"
key = "sk-frugal"
tokens-per-minute = 20
""")
    broker = spate_factory(args=["--config", str(config)])
    client = openai.OpenAI(base_url=f"http://{broker.http_addr}/v1", api_key="sk-team-a", max_retries=0)
    yield broker, client, primary, secondary, claude
    for stub in (primary, secondary, claude):
        stub.close()


def ask(text: str) -> list[dict]:
    return [{"role": "user", "content": text}]


def test_openai_provider_answers_and_streams(gateway):
    broker, client, primary, _, _ = gateway
    prompt = unique("hello")
    answer = client.chat.completions.create(model="gpt-stub", messages=ask(prompt))
    assert answer.choices[0].message.content == f"primary says: {prompt}"
    assert (answer.usage.prompt_tokens, answer.usage.completion_tokens) == (11, 7)
    # The provider saw its own key, not the client's virtual key.
    assert primary.calls[-1]["headers"]["authorization"] == "Bearer sk-upstream-primary"

    prompt = unique("stream")
    chunks = list(client.chat.completions.create(model="gpt-stub", messages=ask(prompt), stream=True))
    assert len(chunks) >= 3
    assert all(c.object == "chat.completion.chunk" for c in chunks)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text.strip() == f"primary says: {prompt}"
    # Without include_usage the client gets no usage chunk (the gateway asked for it anyway).
    assert all(not c.choices == [] for c in chunks)
    assert primary.calls[-1]["body"]["stream_options"] == {"include_usage": True}

    chunks = list(client.chat.completions.create(
        model="gpt-stub", messages=ask(unique("usage")), stream=True, stream_options={"include_usage": True}))
    assert chunks[-1].choices == []
    assert chunks[-1].usage.prompt_tokens == 11 and chunks[-1].usage.completion_tokens == 7


def test_models_lists_the_gateway_models(gateway):
    broker, client, _, _, _ = gateway
    models = {m.id: m.owned_by for m in client.models.list()}
    assert models == {"gpt-stub": "primary", "gpt-fallback": "primary", "claude-stub": "claude", "claude": "claude"}
    assert client.models.retrieve("claude").owned_by == "claude"


def test_anthropic_provider_is_translated_both_ways(gateway):
    broker, client, _, _, claude = gateway
    prompt = unique("bonjour")
    answer = client.chat.completions.create(
        model="claude", messages=[{"role": "system", "content": "be brief"}, *ask(prompt)])
    assert answer.object == "chat.completion"
    assert answer.choices[0].message.content == f"claude says: {prompt}"
    assert answer.choices[0].finish_reason == "stop"
    assert (answer.usage.prompt_tokens, answer.usage.completion_tokens, answer.usage.total_tokens) == (13, 5, 18)
    call = claude.calls[-1]
    assert call["path"] == "/v1/messages"
    assert call["headers"]["x-api-key"] == "sk-ant-stub"
    assert call["headers"]["anthropic-version"] == "2023-06-01"
    assert call["body"]["model"] == "claude-stub"
    assert call["body"]["system"] == "be brief"
    assert call["body"]["max_tokens"] == 1024
    assert call["body"]["messages"] == [{"role": "user", "content": prompt}]

    prompt = unique("flux")
    chunks = list(client.chat.completions.create(
        model="claude/claude-stub", messages=ask(prompt), stream=True, stream_options={"include_usage": True}))
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text.strip() == f"claude says: {prompt}"
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finishes == ["stop"]
    assert chunks[-1].usage.prompt_tokens == 13 and chunks[-1].usage.completion_tokens == 5


def test_cache_hits_skips_and_expires(gateway):
    broker, client, primary, _, _ = gateway
    messages = ask(unique("cache me"))
    first = client.chat.completions.with_raw_response.create(model="gpt-stub", messages=messages)
    assert first.headers["cf-aig-cache-status"] == "MISS"
    second = client.chat.completions.with_raw_response.create(model="gpt-stub", messages=messages)
    assert second.headers["cf-aig-cache-status"] == "HIT"
    assert second.parse().choices[0].message.content == first.parse().choices[0].message.content
    assert sum(c["body"]["messages"] == messages for c in primary.calls) == 1

    skipped = client.chat.completions.with_raw_response.create(
        model="gpt-stub", messages=messages, extra_headers={"cf-aig-skip-cache": "true"})
    assert skipped.headers["cf-aig-cache-status"] == "MISS"
    assert sum(c["body"]["messages"] == messages for c in primary.calls) == 2

    # A stream is cached too, and replayed as server-sent events.
    streamed = ask(unique("stream me"))
    live = list(client.chat.completions.create(model="gpt-stub", messages=streamed, stream=True))
    again = client.chat.completions.with_raw_response.create(model="gpt-stub", messages=streamed, stream=True)
    assert again.headers["cf-aig-cache-status"] == "HIT"
    replayed = list(again.parse())
    assert [c.choices[0].delta.content for c in replayed if c.choices] == \
        [c.choices[0].delta.content for c in live if c.choices]
    assert sum(c["body"]["messages"] == streamed for c in primary.calls) == 1

    # cf-aig-cache-ttl: this answer lives one second.
    short = ask(unique("short-lived"))
    ttl = {"cf-aig-cache-ttl": "1"}
    client.chat.completions.create(model="gpt-stub", messages=short, extra_headers=ttl)
    hit = client.chat.completions.with_raw_response.create(model="gpt-stub", messages=short, extra_headers=ttl)
    assert hit.headers["cf-aig-cache-status"] == "HIT"
    wait_until(
        lambda: client.chat.completions.with_raw_response.create(
            model="gpt-stub", messages=short, extra_headers=ttl).headers["cf-aig-cache-status"] == "MISS",
        timeout_s=10, interval_s=0.2, what="the entry to expire")
    assert sum(c["body"]["messages"] == short for c in primary.calls) == 2


def test_rate_limit_answers_429_with_openai_headers(gateway):
    broker, _, _, _, _ = gateway
    limited = openai.OpenAI(base_url=f"http://{broker.http_addr}/v1", api_key="sk-limited", max_retries=0)
    ok = limited.chat.completions.with_raw_response.create(model="gpt-stub", messages=ask(unique("one")))
    assert ok.headers["x-ratelimit-limit-requests"] == "2"
    assert ok.headers["x-ratelimit-remaining-requests"] == "1"
    limited.chat.completions.create(model="gpt-stub", messages=ask(unique("two")))
    with pytest.raises(openai.RateLimitError) as refused:
        limited.chat.completions.create(model="gpt-stub", messages=ask(unique("three")))
    response = refused.value.response
    assert response.status_code == 429
    assert response.headers["x-ratelimit-limit-requests"] == "2"
    assert response.headers["x-ratelimit-remaining-requests"] == "0"
    assert response.headers["x-ratelimit-reset-requests"].endswith("s")
    assert int(response.headers["retry-after"]) >= 1
    body = response.json()["error"]
    assert body["type"] == "requests" and body["code"] == "rate_limit_exceeded"
    # Another key has its own budget.
    other = openai.OpenAI(base_url=f"http://{broker.http_addr}/v1", api_key="sk-team-a", max_retries=0)
    assert other.chat.completions.create(model="gpt-stub", messages=ask(unique("four"))).choices


def test_tokens_per_minute_hold_back_a_key_that_spent_them(gateway):
    broker, _, _, _, _ = gateway
    frugal = openai.OpenAI(base_url=f"http://{broker.http_addr}/v1", api_key="sk-frugal", max_retries=0)
    first = frugal.chat.completions.with_raw_response.create(model="gpt-stub", messages=ask(unique("a")))
    assert first.headers["x-ratelimit-limit-tokens"] == "20"
    assert first.headers["x-ratelimit-remaining-tokens"] == "20"
    # 18 tokens spent, 2 left: one more request passes and spends 18 more.
    frugal.chat.completions.create(model="gpt-stub", messages=ask(unique("b")))
    with pytest.raises(openai.RateLimitError) as refused:
        frugal.chat.completions.create(model="gpt-stub", messages=ask(unique("c")))
    response = refused.value.response
    assert response.json()["error"]["type"] == "tokens"
    assert response.json()["error"]["code"] == "rate_limit_exceeded"
    assert response.headers["x-ratelimit-remaining-tokens"] == "0"
    assert int(response.headers["retry-after"]) > 1


def test_fallback_to_the_next_provider_and_errors(gateway):
    broker, client, primary, secondary, _ = gateway
    # 500 twice (the first attempt and its retry): the secondary answers.
    primary.fail = [500, 500]
    prompt = unique("fall back")
    answer = client.chat.completions.create(model="gpt-fallback", messages=ask(prompt))
    assert answer.choices[0].message.content == f"secondary says: {prompt}"
    assert sum(c["body"]["messages"] == ask(prompt) for c in primary.calls) == 2

    # Too slow (timeout-ms = 1000, twice): the secondary answers.
    primary.delay_s = 1.5
    prompt = unique("slow")
    answer = client.chat.completions.create(model="gpt-fallback", messages=ask(prompt))
    assert answer.choices[0].message.content == f"secondary says: {prompt}"
    primary.delay_s = 0

    # Everything fails: 502 with OpenAI's error body naming the provider's status.
    primary.fail = [503, 503]
    secondary.fail = [500]
    with pytest.raises(openai.APIStatusError) as failed:
        client.chat.completions.create(model="gpt-fallback", messages=ask(unique("doomed")))
    assert failed.value.status_code == 502
    assert "500" in failed.value.response.json()["error"]["message"]

    # Only the primary, named by prefix, and too slow every time: 504.
    primary.delay_s = 1.5
    with pytest.raises(openai.APIStatusError) as slow:
        client.chat.completions.create(model="primary/gpt-stub", messages=ask(unique("too slow")))
    primary.delay_s = 0
    assert slow.value.status_code == 504
    assert slow.value.response.json()["error"]["code"] == "upstream_timeout"

    with pytest.raises(openai.NotFoundError) as missing:
        client.chat.completions.create(model="no-such-model", messages=ask("x"))
    assert missing.value.response.json()["error"]["code"] == "model_not_found"

    bad = requests.post(f"http://{broker.http_addr}/v1/chat/completions", data=b"{not json", timeout=10,
                        headers={"content-type": "application/json"})
    assert bad.status_code == 400
    assert bad.json()["error"]["type"] == "invalid_request_error"


def test_calls_are_records_and_tokens_are_usage(gateway):
    broker, client, _, _, _ = gateway
    prompt = unique("recorded")
    client.chat.completions.create(model="gpt-stub", messages=[{"role": "system", "content": "secret"}, *ask(prompt)])
    client.chat.completions.create(model="gpt-stub", messages=[{"role": "system", "content": "secret"}, *ask(prompt)])
    client.chat.completions.create(model="claude", messages=ask(unique("recorded too")))

    c = consumer(broker.bootstrap)
    c.assign([TopicPartition("_ai_requests", 0, 0)])
    records: list[dict] = []

    def three() -> bool:
        for m in c.consume(num_messages=100, timeout=0.5):
            assert not m.error(), m.error()
            records.append(json.loads(m.value()))
        return len(records) >= 3

    wait_until(three, timeout_s=60, what="three records in _ai_requests")
    c.close()
    first, hit, claude = records[:3]
    assert first["principal"] == "User:ANONYMOUS" and first["virtual_key"] == "team-a"
    assert first["provider"] == "primary" and first["model"] == "gpt-stub"
    assert (first["prompt_tokens"], first["completion_tokens"], first["total_tokens"]) == (11, 7, 18)
    assert first["status"] == 200 and first["attempts"] == 1 and first["cache_hit"] is False
    assert first["cost_usd"] == pytest.approx((11 * 1.0 + 7 * 2.0) / 1e6)
    assert isinstance(first["latency_ms"], int) and isinstance(first["timestamp"], int)
    # Bodies are logged, with the configured fields (here every `content`) redacted.
    assert first["request"]["model"] == "gpt-stub"
    assert [m["content"] for m in first["request"]["messages"]] == ["[REDACTED]", "[REDACTED]"]
    assert first["response"]["choices"][0]["message"] == {"role": "assistant", "content": "[REDACTED]"}
    assert hit["cache_hit"] is True and hit["cost_usd"] == 0 and hit["attempts"] == 0
    assert claude["provider"] == "claude" and claude["upstream_model"] == "claude-stub"
    assert (claude["prompt_tokens"], claude["completion_tokens"]) == (13, 5)

    usage = requests.get(f"http://{broker.http_addr}/v1/usage", timeout=10).json()
    assert "principals" in usage and "topics" in usage  # the Kafka fields are still there
    rows = {(r["virtual_key"], r["model"]): r for r in usage["ai"]}
    gpt = rows[("team-a", "gpt-stub")]
    assert gpt["requests"] == 2 and gpt["cache_hits"] == 1
    assert (gpt["prompt_tokens"], gpt["completion_tokens"]) == (11, 7)
    assert rows[("team-a", "claude")]["total_tokens"] == 18

    metrics = requests.get(f"http://{broker.http_addr}/metrics", timeout=10).text
    assert 'spate_ai_gateway_requests_total{provider="primary",model="gpt-stub",status="200"} 2' in metrics
    assert 'spate_ai_gateway_tokens_total{provider="claude",model="claude",kind="prompt"} 13' in metrics
    assert "spate_ai_gateway_cache_hits_total 1" in metrics
    assert 'spate_ai_gateway_request_seconds_count{provider="primary"} 1' in metrics


def test_a_client_that_leaves_early_is_still_recorded(gateway):
    broker, _, primary, _, _ = gateway
    primary.delay_s = 0.6
    impatient = openai.OpenAI(base_url=f"http://{broker.http_addr}/v1", api_key="sk-team-a",
                              max_retries=0, timeout=0.2)
    with pytest.raises(openai.APITimeoutError):
        impatient.chat.completions.create(model="gpt-stub", messages=ask(unique("gone")))
    c = consumer(broker.bootstrap)
    c.assign([TopicPartition("_ai_requests", 0, 0)])
    seen: list[dict] = []

    def left() -> bool:
        seen.extend(json.loads(m.value()) for m in c.consume(num_messages=100, timeout=0.5) if not m.error())
        return any(r["status"] == 499 for r in seen)

    wait_until(left, timeout_s=60, what="a record with status 499")
    c.close()
    record = next(r for r in seen if r["status"] == 499)
    assert record["virtual_key"] == "team-a" and record["model"] == "gpt-stub"


def test_require_key_refuses_other_bearer_tokens(spate_factory, tmp_path):
    stub = Stub("only", "openai")
    config = tmp_path / "spate.toml"
    config.write_text(f"""
[ai-gateway]
require-key = true
[[ai-gateway.providers]]
name = "only"
base-url = "{stub.url}/v1"
models = ["gpt-stub"]
[[ai-gateway.keys]]
name = "team-a"
key = "sk-team-a"
""")
    try:
        broker = spate_factory(args=["--config", str(config)])
        url = f"http://{broker.http_addr}/v1"
        stranger = openai.OpenAI(base_url=url, api_key="sk-not-a-key", max_retries=0)
        with pytest.raises(openai.AuthenticationError) as refused:
            stranger.chat.completions.create(model="gpt-stub", messages=ask("hi"))
        assert refused.value.response.json()["error"]["code"] == "invalid_api_key"
        assert stub.calls == []
        member = openai.OpenAI(base_url=url, api_key="sk-team-a", max_retries=0)
        assert member.chat.completions.create(model="gpt-stub", messages=ask("hi")).choices
    finally:
        stub.close()


def test_a_bad_gateway_setting_stops_start_up_naming_it(tmp_path):
    config = tmp_path / "spate.toml"
    config.write_text("""
[[ai-gateway.providers]]
name = "nowhere"
base-url = "ftp://example.com"
models = ["m"]
""")
    listen = ["--kafka-listen", "127.0.0.1:0", "--http-listen", "127.0.0.1:0", "--registry-listen", "127.0.0.1:0",
              "--connect-listen", "off", "--sql-listen", "off"]
    done = subprocess.run(
        [str(spate_binary()), "serve", "--config", str(config), "--data-dir", str(tmp_path / "d"), *listen],
        capture_output=True, text=True, timeout=60)
    assert done.returncode != 0
    assert "ai-gateway.providers[0].base-url" in done.stdout + done.stderr


def test_with_http_auth_the_principal_is_spates(spate_factory, tmp_path):
    """Spate's own authentication names the caller; limits and records follow the principal.
    The gateway's settings come from their own file (--ai-gateway-config)."""
    stub = Stub("only", "openai")
    settings = tmp_path / "gateway.toml"
    settings.write_text(f"""
[limits]
requests-per-minute = 1
[[providers]]
name = "only"
base-url = "{stub.url}/v1"
models = ["gpt-stub"]
""")
    try:
        broker = spate_factory(args=["--http-auth", "basic", "--ai-gateway-config", str(settings)])
        create_user(broker.bootstrap, "alice", "alice-secret")
        url = f"http://{broker.http_addr}/v1"
        basic = "Basic " + base64.b64encode(b"alice:alice-secret").decode()
        alice = openai.OpenAI(base_url=url, api_key="unused", max_retries=0,
                              default_headers={"Authorization": basic})
        assert alice.chat.completions.create(model="gpt-stub", messages=ask("hi")).choices
        with pytest.raises(openai.RateLimitError):
            alice.chat.completions.create(model="gpt-stub", messages=ask("again"))
        # Without credentials Spate's http-auth refuses before the gateway.
        with pytest.raises(openai.AuthenticationError):
            openai.OpenAI(base_url=url, api_key="sk-anything", max_retries=0).chat.completions.create(
                model="gpt-stub", messages=ask("hi"))
        usage = requests.get(f"{url}/usage", auth=("alice", "alice-secret"), timeout=10).json()
        rows = [r for r in usage["ai"] if r["principal"] == "User:alice"]
        assert len(rows) == 1 and rows[0]["requests"] == 2 and rows[0]["errors"] == 1
        assert rows[0]["virtual_key"] is None and rows[0]["total_tokens"] == 18
    finally:
        stub.close()


def test_streams_pass_through_as_they_arrive_and_broken_ones_are_errors(gateway):
    broker, client, primary, _, _ = gateway
    # The provider holds its stream after the first words: they reach the client anyway.
    primary.hold = threading.Event()
    prompt = unique("live")
    stream = iter(client.chat.completions.create(model="gpt-stub", messages=ask(prompt), stream=True))
    first = [next(stream), next(stream)]
    assert first[1].choices[0].delta.content == "primary "
    primary.hold.set()
    rest = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in first + rest if c.choices)
    assert text.strip() == f"primary says: {prompt}"
    primary.hold = None

    # A stream that ends before its end is an error for the client, and is not cached.
    primary.cut = True
    messages = ask(unique("cut"))
    with pytest.raises(openai.APIError) as broken:
        list(client.chat.completions.create(model="gpt-stub", messages=messages, stream=True))
    assert "ended before its end" in str(broken.value)
    primary.cut = False
    again = client.chat.completions.with_raw_response.create(model="gpt-stub", messages=messages, stream=True)
    assert again.headers["cf-aig-cache-status"] == "MISS"
    list(again.parse())
    assert sum(c["body"]["messages"] == messages for c in primary.calls) == 2
