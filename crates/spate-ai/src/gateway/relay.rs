//! A provider's stream passed to the client event by event as it arrives (Anthropic's events
//! translated to `chat.completion.chunk`s on the way), its tokens counted, its text kept for
//! the record, and its chunks cached once it has ended well. A stream that breaks, stalls or
//! ends early ends with OpenAI's error chunk instead of `[DONE]`. The client's pace holds the
//! provider back (a bounded queue between them); a client that leaves ends the reading.

use std::convert::Infallible;
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::response::Response;
use serde_json::{Value as Json, json};

use super::{Answer, Call, Ended, anthropic, config, sse, sse_response, upstream};

/// Chunks waiting for a slow client before the upstream is read further.
const STREAM_QUEUE: usize = 64;

/// A stream passed from a provider to the client event by event (Anthropic's translated),
/// counted, recorded, and cached once it ends well.
pub(super) struct Relay {
    /// The call, recorded when the stream ends.
    pub call: Call,
    /// The provider streaming.
    pub provider: String,
    /// The model as the provider names it.
    pub upstream_model: String,
    /// Attempts it took to open the stream.
    pub attempts: u32,
    /// Whether the client asked for the usage chunk.
    pub include_usage: bool,
    /// The cache key and time to live in seconds, when the stream is to be cached.
    pub cache: Option<(String, u64)>,
}

impl Relay {
    pub(super) fn start(
        self,
        mut upstream: reqwest::Response,
        kind: config::ProviderKind,
        idle: Duration,
    ) -> Response {
        let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(STREAM_QUEUE);
        tokio::spawn(async move {
            let mut parser = sse::Parser::default();
            let mut translator = anthropic::Stream::new(self.call.at_ms / 1000, self.include_usage);
            let mut usage = (0, 0);
            let mut parts: Vec<Bytes> = Vec::new();
            let mut part_bytes = 0usize;
            let mut text = String::new();
            let mut failure: Option<String> = None;
            let mut done = false;
            let max_cached = self.call.gateway.config.cache.max_bytes;
            'read: while !done {
                let chunk = match tokio::time::timeout(idle, upstream.chunk()).await {
                    Ok(Ok(Some(c))) => c,
                    Ok(Ok(None)) => break,
                    Ok(Err(e)) => {
                        failure = Some(format!("the provider's stream broke: {e}"));
                        break;
                    }
                    Err(_) => {
                        failure = Some("the provider's stream stalled".into());
                        break;
                    }
                };
                let events = match parser.push(&chunk) {
                    Ok(e) => e,
                    Err(e) => {
                        failure = Some(e.to_string());
                        break;
                    }
                };
                for event in events {
                    let chunks: Vec<String> = match kind {
                        config::ProviderKind::Openai => {
                            if event.data.trim() == sse::DONE {
                                done = true;
                                break;
                            }
                            let value: Json =
                                serde_json::from_str(&event.data).unwrap_or(Json::Null);
                            if let Some(u) = upstream::usage_of(&value) {
                                usage = u;
                            }
                            let usage_only = value
                                .get("choices")
                                .and_then(Json::as_array)
                                .is_some_and(Vec::is_empty)
                                && value.get("usage").is_some_and(Json::is_object);
                            if let Some(t) = value
                                .pointer("/choices/0/delta/content")
                                .and_then(Json::as_str)
                            {
                                text.push_str(t);
                            }
                            if usage_only && !self.include_usage {
                                Vec::new()
                            } else {
                                vec![event.data]
                            }
                        }
                        config::ProviderKind::Anthropic => {
                            match translator.event(&event.name, &event.data) {
                                Ok(chunks) => {
                                    usage =
                                        (translator.prompt_tokens, translator.completion_tokens);
                                    if event.name == "message_stop" {
                                        done = true;
                                    }
                                    for c in &chunks {
                                        if let Some(t) =
                                            serde_json::from_str::<Json>(c).ok().and_then(|v| {
                                                v.pointer("/choices/0/delta/content")
                                                    .and_then(Json::as_str)
                                                    .map(str::to_string)
                                            })
                                        {
                                            text.push_str(&t);
                                        }
                                    }
                                    chunks
                                }
                                Err(message) => {
                                    failure =
                                        Some(format!("the provider's stream failed: {message}"));
                                    break 'read;
                                }
                            }
                        }
                    };
                    for c in chunks {
                        part_bytes += c.len();
                        let bytes = Bytes::from(sse::frame(&c));
                        if part_bytes <= max_cached {
                            parts.push(Bytes::from(c));
                        }
                        if tx.send(bytes).await.is_err() {
                            failure = Some("the client went away".into());
                            break 'read;
                        }
                    }
                }
            }
            if failure.is_none() && !done {
                failure = Some("the provider's stream ended before its end".into());
            }
            let complete = failure.is_none();
            if complete {
                let _ = tx.send(Bytes::from(sse::frame(sse::DONE))).await;
            } else if let Some(message) = failure.as_deref().filter(|_| !tx.is_closed()) {
                // As OpenAI reports an error in a stream: a chunk holding `error`, which the
                // openai clients raise.
                let body = json!({"error": {
                    "message": message, "type": "server_error", "param": null, "code": "upstream_error",
                }});
                let _ = tx.send(Bytes::from(sse::frame(&body.to_string()))).await;
            }
            if complete
                && part_bytes <= max_cached
                && let Some((key, ttl)) = self.cache
            {
                let answer = Answer {
                    stream: true,
                    parts,
                    provider: self.provider.clone(),
                    model: self.upstream_model.clone(),
                    usage,
                };
                self.call.gateway.cache.lock().insert(
                    key,
                    answer,
                    part_bytes,
                    Duration::from_secs(ttl),
                    Instant::now(),
                );
            }
            let logged = self
                .call
                .gateway
                .config
                .log
                .bodies
                .then(|| json!({"content": text}));
            self.call.finish(Ended {
                status: if complete { 200 } else { 502 },
                provider: self.provider,
                upstream_model: self.upstream_model,
                usage,
                cache_hit: false,
                attempts: self.attempts,
                response: logged,
                error: failure,
            });
        });
        let body = futures::stream::unfold(rx, |mut rx| async move {
            rx.recv().await.map(|b| (Ok::<_, Infallible>(b), rx))
        });
        sse_response(Body::from_stream(body))
    }
}
