//! Calls to providers: a chat request sent to each provider configured for its model in turn,
//! each attempt under the provider's timeout, retried with doubling backoff on 429, 5xx,
//! connection errors and timeouts, then the next provider (fallback). Translates Anthropic's
//! requests, answers and errors to OpenAI's shapes (through [`super::anthropic`]); streams are
//! handed back open for the caller to pass through.

use std::time::Duration;

use axum::body::Bytes;
use axum::http::StatusCode;
use serde_json::{Map, Value as Json, json};

use super::anthropic;
use super::config::{Provider, ProviderKind};

/// The largest non-streamed answer read from a provider.
pub const MAX_ANSWER_BYTES: usize = 32 << 20;

/// The longest wait between attempts (a provider's `retry-after` included).
const MAX_BACKOFF: Duration = Duration::from_secs(10);

/// A provider and the model it is asked for.
#[derive(Debug, Clone)]
pub struct Route {
    /// Index into the gateway's providers.
    pub provider: usize,
    /// The model as the provider names it.
    pub model: String,
}

/// How a call ended.
pub enum Outcome {
    /// An answer in OpenAI's shape (the provider's bytes, or Anthropic's translated).
    Answer {
        /// `chat.completion` JSON.
        body: Bytes,
        /// Prompt and completion tokens.
        usage: (u64, u64),
    },
    /// A stream, open.
    Stream(reqwest::Response),
    /// The provider refused the request itself (a 4xx other than 429): its status and an
    /// OpenAI error body, passed to the client.
    Refused {
        /// The provider's status.
        status: StatusCode,
        /// OpenAI's error body.
        body: Bytes,
    },
    /// Every provider failed: 502 (or 504 when the last attempt timed out) and why.
    Failed {
        /// 502 or 504.
        status: StatusCode,
        /// The last failure, for the error body.
        message: String,
    },
}

/// A call's outcome, with the route that gave it and the attempts made.
pub struct Called {
    /// How it ended.
    pub outcome: Outcome,
    /// The route of the last attempt.
    pub route: Route,
    /// Attempts over all providers.
    pub attempts: u32,
    /// Retries (attempts after a provider's first).
    pub retries: u32,
    /// Providers given up on before the last.
    pub fallbacks: u32,
}

enum Failure {
    Timeout,
    Transport(String),
    Status(StatusCode, String, Option<Duration>),
}

impl Failure {
    fn text(&self, provider: &str) -> String {
        match self {
            Failure::Timeout => format!("provider {provider} did not answer in time"),
            Failure::Transport(e) => format!("provider {provider} could not be reached: {e}"),
            Failure::Status(status, body, _) => {
                format!("provider {provider} answered {status}: {body}")
            }
        }
    }
}

/// The request a provider is sent: its URL, headers and body.
struct Outgoing {
    url: String,
    headers: Vec<(&'static str, String)>,
    body: Json,
}

fn build(
    provider: &Provider,
    model: &str,
    request: &Map<String, Json>,
    stream: bool,
) -> Result<Outgoing, anthropic::Untranslatable> {
    let base = provider.config.base_url.trim_end_matches('/');
    match provider.config.kind {
        ProviderKind::Openai => {
            let mut body = request.clone();
            body.insert("model".into(), json!(model));
            if stream {
                // Usage comes as a last chunk only when asked for; the gateway always wants it
                // (and drops that chunk for clients that did not ask).
                body.insert("stream_options".into(), json!({"include_usage": true}));
            }
            let mut headers = Vec::new();
            if let Some(key) = &provider.api_key {
                headers.push(("authorization", format!("Bearer {key}")));
            }
            Ok(Outgoing {
                url: format!("{base}/chat/completions"),
                headers,
                body: Json::Object(body),
            })
        }
        ProviderKind::Anthropic => {
            let body = anthropic::request(request, model, provider.config.default_max_tokens)?;
            let mut headers = vec![("anthropic-version", anthropic::VERSION.to_string())];
            if let Some(key) = &provider.api_key {
                headers.push(("x-api-key", key.clone()));
            }
            Ok(Outgoing {
                url: format!("{base}/v1/messages"),
                headers,
                body,
            })
        }
    }
}

/// Reads a body whole, up to [`MAX_ANSWER_BYTES`].
async fn read_body(mut response: reqwest::Response) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(|e| e.to_string())? {
        if out.len() + chunk.len() > MAX_ANSWER_BYTES {
            return Err(format!(
                "the answer is larger than {MAX_ANSWER_BYTES} bytes"
            ));
        }
        out.extend_from_slice(&chunk);
    }
    Ok(out)
}

/// The usage of an OpenAI `chat.completion` (or final chunk).
pub fn usage_of(value: &Json) -> Option<(u64, u64)> {
    let usage = value.get("usage").filter(|u| u.is_object())?;
    Some((
        usage
            .get("prompt_tokens")
            .and_then(Json::as_u64)
            .unwrap_or(0),
        usage
            .get("completion_tokens")
            .and_then(Json::as_u64)
            .unwrap_or(0),
    ))
}

/// A provider's error body in OpenAI's shape.
fn error_body(kind: ProviderKind, status: StatusCode, bytes: &[u8]) -> Bytes {
    let parsed: Option<Json> = serde_json::from_slice(bytes).ok();
    let body = match (kind, parsed) {
        (ProviderKind::Openai, Some(v)) if v.get("error").is_some() => {
            return Bytes::from(bytes.to_vec());
        }
        (ProviderKind::Anthropic, Some(v)) if v.get("error").is_some() => json!({"error": {
            "message": v.pointer("/error/message").cloned().unwrap_or(Json::Null),
            "type": v.pointer("/error/type").cloned().unwrap_or(json!("invalid_request_error")),
            "param": null,
            "code": null,
        }}),
        _ => json!({"error": {
            "message": format!("the provider answered {status}: {}", String::from_utf8_lossy(bytes)),
            "type": "invalid_request_error",
            "param": null,
            "code": null,
        }}),
    };
    Bytes::from(body.to_string())
}

fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    let secs: f64 = headers
        .get("retry-after")?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()?;
    (secs.is_finite() && secs >= 0.0).then(|| Duration::from_secs_f64(secs).min(MAX_BACKOFF))
}

/// Calls `routes` in turn for `request` (OpenAI's chat body); `created` stamps translated
/// answers.
pub async fn call(
    client: &reqwest::Client,
    providers: &[Provider],
    routes: &[Route],
    request: &Map<String, Json>,
    stream: bool,
    created: i64,
) -> Called {
    let mut attempts = 0;
    let mut retries = 0;
    let mut last: Option<(String, Failure)> = None;
    for (n, route) in routes.iter().enumerate() {
        let Some(provider) = providers.get(route.provider) else {
            continue;
        };
        let name = provider.config.name.as_str();
        let Outgoing { url, headers, body } = match build(provider, &route.model, request, stream) {
            Ok(b) => b,
            Err(e) => {
                let body = json!({"error": {
                    "message": e.message, "type": "invalid_request_error", "param": e.param, "code": null,
                }});
                return Called {
                    outcome: Outcome::Refused {
                        status: StatusCode::BAD_REQUEST,
                        body: Bytes::from(body.to_string()),
                    },
                    route: route.clone(),
                    attempts,
                    retries,
                    fallbacks: n as u32,
                };
            }
        };
        let body = Bytes::from(body.to_string());
        let timeout = Duration::from_millis(provider.config.timeout_ms);
        let mut backoff = Duration::from_millis(provider.config.retry_backoff_ms);
        for attempt in 0..=provider.config.retries {
            if attempt > 0 {
                let wait = match &last {
                    Some((_, Failure::Status(_, _, Some(after)))) => (*after).max(backoff),
                    _ => backoff,
                };
                tokio::time::sleep(wait.min(MAX_BACKOFF)).await;
                backoff = (backoff * 2).min(MAX_BACKOFF);
                retries += 1;
            }
            attempts += 1;
            let mut builder = client
                .post(&url)
                .header("content-type", "application/json")
                .body(body.clone());
            for (k, v) in &headers {
                builder = builder.header(*k, v);
            }
            let sent = tokio::time::timeout(timeout, async {
                let response = builder
                    .send()
                    .await
                    .map_err(|e| Failure::Transport(e.to_string()))?;
                let status = StatusCode::from_u16(response.status().as_u16())
                    .unwrap_or(StatusCode::BAD_GATEWAY);
                if status == StatusCode::OK && stream {
                    return Ok((status, None, Some(response)));
                }
                let after = retry_after(response.headers());
                let bytes = read_body(response).await.map_err(Failure::Transport)?;
                if status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error() {
                    let text = String::from_utf8_lossy(&bytes[..bytes.len().min(300)]).into_owned();
                    return Err(Failure::Status(status, text, after));
                }
                Ok((status, Some(bytes), None))
            })
            .await
            .unwrap_or(Err(Failure::Timeout));
            let outcome = match sent {
                Err(failure) => {
                    tracing::debug!(provider = name, attempt, "{}", failure.text(name));
                    last = Some((name.to_string(), failure));
                    continue;
                }
                Ok((_, _, Some(response))) => Outcome::Stream(response),
                Ok((status, Some(bytes), None)) if status.is_success() => {
                    let parsed: Result<Json, _> = serde_json::from_slice(&bytes);
                    match (provider.config.kind, parsed) {
                        (ProviderKind::Openai, Ok(v)) => Outcome::Answer {
                            usage: usage_of(&v).unwrap_or((0, 0)),
                            body: Bytes::from(bytes),
                        },
                        (ProviderKind::Anthropic, Ok(v)) => {
                            let answer = anthropic::response(&v, created);
                            Outcome::Answer {
                                usage: usage_of(&answer).unwrap_or((0, 0)),
                                body: Bytes::from(answer.to_string()),
                            }
                        }
                        (_, Err(e)) => {
                            last = Some((
                                name.to_string(),
                                Failure::Transport(format!("the answer is not JSON: {e}")),
                            ));
                            continue;
                        }
                    }
                }
                Ok((status, bytes, _)) => Outcome::Refused {
                    status,
                    body: error_body(provider.config.kind, status, &bytes.unwrap_or_default()),
                },
            };
            return Called {
                outcome,
                route: route.clone(),
                attempts,
                retries,
                fallbacks: n as u32,
            };
        }
        if n + 1 < routes.len() {
            if let Some((p, f)) = &last {
                tracing::warn!(provider = %p, "falling back to the next provider: {}", f.text(p));
            }
        }
    }
    let (status, message) = match &last {
        Some((_, Failure::Timeout)) => (
            StatusCode::GATEWAY_TIMEOUT,
            last.as_ref().map(|(p, f)| f.text(p)),
        ),
        Some((p, f)) => (StatusCode::BAD_GATEWAY, Some(f.text(p))),
        None => (StatusCode::BAD_GATEWAY, None),
    };
    Called {
        outcome: Outcome::Failed {
            status,
            message: message.unwrap_or_else(|| "no provider serves this model".to_string()),
        },
        route: routes.last().cloned().unwrap_or(Route {
            provider: 0,
            model: String::new(),
        }),
        attempts,
        retries,
        fallbacks: routes.len().saturating_sub(1) as u32,
    }
}
