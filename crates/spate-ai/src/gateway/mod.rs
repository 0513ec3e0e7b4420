//! The AI gateway: `POST /v1/chat/completions` in OpenAI's shape, answered by configured
//! providers (OpenAI-compatible upstreams and Anthropic's Messages API), so the `openai`
//! client libraries reach any of them by changing their base URL. Per request, in order:
//! who is calling (Spate's principal, or a virtual key), the model's routes, the caller's
//! rate limits, the exact-match cache, then the providers with retries and fallback
//! ([`upstream`]); streams are passed through chunk by chunk. Every call becomes a record in
//! `_ai_requests` ([`record`]) and counts in `/metrics` and `/v1/usage`.
//!
//! - [`config`]: the `[ai-gateway]` settings;
//! - [`anthropic`]: OpenAI ⇄ Messages translation;
//! - [`cache`], [`limits`], [`sse`]: pure pieces with their own tests;
//! - `relay`: a stream passed from a provider to the client as it arrives.

pub mod anthropic;
pub mod cache;
pub mod config;
pub mod limits;
pub mod record;
mod relay;
pub mod sse;
pub mod upstream;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Extension, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use parking_lot::Mutex;
use serde_json::{Map, Value as Json, json};
use spate_auth::http::{AuthMethod, Principal};
use spate_metrics::{Histogram, escape_label, write_header, write_histogram, write_single};

use crate::api::error;
use crate::kafka::now_ms;
use config::{ConfigError, GatewayConfig, Key, Provider};
use limits::{Exceeded, Limits, RateLimiter, Refused, Status};
use relay::Relay;
use upstream::{Outcome, Route};

/// The largest chat request body.
const MAX_BODY_BYTES: usize = 32 << 20;

/// Hours × principals × models of token counts kept for `/v1/usage`; the oldest go first.
const MAX_USAGE_ROWS: usize = 100_000;

/// Series of `spate_ai_gateway_requests_total` and `_tokens_total` at most: `provider/model`
/// names are the client's to choose, so further models are counted as `_other`.
const MAX_SERIES: usize = 10_000;

/// An hour, in milliseconds (`/v1/usage`'s buckets).
const HOUR_MS: i64 = 3_600_000;

/// A cached answer: the body of a `chat.completion`, or a stream's chunks.
struct Answer {
    stream: bool,
    /// The body, or the stream's `data:` payloads (without `[DONE]`).
    parts: Vec<Bytes>,
    provider: String,
    model: String,
    usage: (u64, u64),
}

/// Token counts of a principal (or virtual key) and model.
#[derive(Debug, Default, Clone, Copy)]
struct Counts {
    requests: u64,
    cache_hits: u64,
    errors: u64,
    prompt_tokens: u64,
    completion_tokens: u64,
    cost_usd: f64,
}

#[derive(Default)]
struct Metrics {
    /// By provider, model and status.
    requests: Mutex<BTreeMap<(String, String, u16), u64>>,
    /// Prompt and completion tokens by provider and model.
    tokens: Mutex<BTreeMap<(String, String), (u64, u64)>>,
    cache_hits: AtomicU64,
    cache_misses: AtomicU64,
    rate_limited: AtomicU64,
    retries: AtomicU64,
    fallbacks: AtomicU64,
    /// A request's time to the last byte, by provider (`cache` for hits).
    seconds: Mutex<BTreeMap<String, Arc<Histogram>>>,
}

/// Who is calling, and their limits.
struct Caller {
    principal: String,
    key: Option<String>,
    /// Whose buckets the request takes from: the virtual key's, or the principal's.
    subject: String,
    limits: Limits,
}

/// The gateway.
pub struct Gateway {
    config: GatewayConfig,
    providers: Vec<Provider>,
    keys: Vec<Key>,
    client: reqwest::Client,
    cache: Mutex<cache::Cache<Answer>>,
    limiter: Mutex<RateLimiter>,
    recorder: Arc<record::Recorder>,
    metrics: Metrics,
    usage: Mutex<BTreeMap<(i64, String, String, String), Counts>>,
    sequence: AtomicU64,
}

/// Why the gateway could not start.
#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    /// A setting is wrong.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The HTTP client could not be made.
    #[error("building the gateway's http client: {0}")]
    Client(String),
}

impl Gateway {
    /// A gateway for `config` (none of its providers configured: every model is unknown).
    pub fn new(config: &GatewayConfig) -> Result<Gateway, GatewayError> {
        let (providers, keys) = config.validate(&|var| std::env::var(var).ok())?;
        // reqwest is built without a TLS provider of its own; ring is Spate's.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let client = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .build()
            .map_err(|e| GatewayError::Client(e.to_string()))?;
        Ok(Gateway {
            cache: Mutex::new(cache::Cache::new(
                config.cache.max_entries,
                config.cache.max_bytes,
            )),
            limiter: Mutex::new(RateLimiter::default()),
            recorder: Arc::new(record::Recorder::new(config.log.queue)),
            metrics: Metrics::default(),
            usage: Mutex::new(BTreeMap::new()),
            sequence: AtomicU64::new(0),
            config: config.clone(),
            providers,
            keys,
            client,
        })
    }

    /// Whether any provider is configured.
    pub fn enabled(&self) -> bool {
        !self.providers.is_empty()
    }

    /// The models requests may name, each once, with the first provider serving it: models and
    /// aliases (`provider/model` names are not listed).
    pub fn models(&self) -> Vec<(String, String)> {
        let mut out: Vec<(String, String)> = Vec::new();
        for p in &self.providers {
            for name in p.config.models.iter().chain(p.config.aliases.keys()) {
                if !out.iter().any(|(n, _)| n == name) {
                    out.push((name.clone(), p.config.name.clone()));
                }
            }
        }
        out
    }

    /// The records' producer, to run once the cluster is reachable
    /// ([`record::Recorder::run`]).
    pub fn recorder(&self) -> Arc<record::Recorder> {
        Arc::clone(&self.recorder)
    }

    /// The providers and models a request's `model` reaches, in fallback order: every provider
    /// listing it (or an alias of it), or the one named by a `provider/model` prefix.
    fn routes(&self, model: &str) -> Vec<Route> {
        let mut routes = Vec::new();
        for (i, p) in self.providers.iter().enumerate() {
            if let Some(upstream) = p.config.aliases.get(model) {
                routes.push(Route {
                    provider: i,
                    model: upstream.clone(),
                });
            } else if p.config.models.iter().any(|m| m == model) {
                routes.push(Route {
                    provider: i,
                    model: model.to_string(),
                });
            }
        }
        if routes.is_empty()
            && let Some((name, rest)) = model.split_once('/')
            && let Some(i) = self.providers.iter().position(|p| p.config.name == name)
        {
            let upstream = self.providers[i]
                .config
                .aliases
                .get(rest)
                .cloned()
                .unwrap_or_else(|| rest.to_string());
            routes.push(Route {
                provider: i,
                model: upstream,
            });
        }
        routes
    }

    /// The caller: Spate's authenticated principal when http-auth is on, else the virtual key
    /// in `Authorization: Bearer`, else anonymous.
    fn caller(
        &self,
        principal: Option<Principal>,
        headers: &HeaderMap,
    ) -> Result<Caller, Box<Response>> {
        let default_limits = Limits {
            requests: self.config.limits.requests_per_minute,
            tokens: self.config.limits.tokens_per_minute,
        };
        if let Some(p) = principal
            .as_ref()
            .filter(|p| p.method() != AuthMethod::Anonymous)
        {
            return Ok(Caller {
                principal: p.name().to_string(),
                key: None,
                subject: p.name().to_string(),
                limits: default_limits,
            });
        }
        let principal = principal.map_or_else(
            || spate_auth::http::ANONYMOUS.to_string(),
            |p| p.name().to_string(),
        );
        let token = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| {
                v.strip_prefix("Bearer ")
                    .or_else(|| v.strip_prefix("bearer "))
            })
            .map(str::trim);
        let key = token.and_then(|t| self.keys.iter().find(|k| k.secret == t));
        match key {
            Some(k) => Ok(Caller {
                principal,
                key: Some(k.config.name.clone()),
                subject: format!("key:{}", k.config.name),
                limits: Limits {
                    requests: k.config.requests_per_minute.or(default_limits.requests),
                    tokens: k.config.tokens_per_minute.or(default_limits.tokens),
                },
            }),
            None if self.config.require_key => Err(Box::new(error(
                StatusCode::UNAUTHORIZED,
                "invalid_request_error",
                Some("invalid_api_key"),
                None,
                "Incorrect API key provided: send one of the gateway's virtual keys as `Authorization: Bearer <key>`".into(),
            ))),
            None => Ok(Caller {
                subject: principal.clone(),
                principal,
                key: None,
                limits: default_limits,
            }),
        }
    }

    fn histogram(&self, provider: &str) -> Arc<Histogram> {
        Arc::clone(
            self.metrics
                .seconds
                .lock()
                .entry(provider.to_string())
                .or_default(),
        )
    }

    /// Writes the `spate_ai_gateway_*` metrics.
    pub fn render_metrics(&self, out: &mut String) {
        let m = &self.metrics;
        write_header(
            out,
            "spate_ai_gateway_requests_total",
            "counter",
            "Chat completion requests answered, by provider, model (as requested) and HTTP status.",
        );
        for ((provider, model, status), n) in m.requests.lock().iter() {
            let _ = writeln!(
                out,
                "spate_ai_gateway_requests_total{{provider=\"{}\",model=\"{}\",status=\"{status}\"}} {n}",
                escape_label(provider),
                escape_label(model)
            );
        }
        write_header(
            out,
            "spate_ai_gateway_tokens_total",
            "counter",
            "Tokens providers counted, by provider, model and kind (prompt or completion).",
        );
        for ((provider, model), (prompt, completion)) in m.tokens.lock().iter() {
            let labels = format!(
                "provider=\"{}\",model=\"{}\"",
                escape_label(provider),
                escape_label(model)
            );
            let _ = writeln!(
                out,
                "spate_ai_gateway_tokens_total{{{labels},kind=\"prompt\"}} {prompt}"
            );
            let _ = writeln!(
                out,
                "spate_ai_gateway_tokens_total{{{labels},kind=\"completion\"}} {completion}"
            );
        }
        for (name, help, value) in [
            (
                "spate_ai_gateway_cache_hits_total",
                "Requests answered from the cache.",
                &m.cache_hits,
            ),
            (
                "spate_ai_gateway_cache_misses_total",
                "Cacheable requests the cache did not hold.",
                &m.cache_misses,
            ),
            (
                "spate_ai_gateway_rate_limited_total",
                "Requests refused with 429 by the gateway's own limits.",
                &m.rate_limited,
            ),
            (
                "spate_ai_gateway_retries_total",
                "Attempts repeated on a provider after 429, 5xx, a connection error or a timeout.",
                &m.retries,
            ),
            (
                "spate_ai_gateway_fallbacks_total",
                "Times a request moved on to the next provider of its model.",
                &m.fallbacks,
            ),
            (
                "spate_ai_gateway_records_dropped_total",
                "Records of calls not written to _ai_requests (queue full or produce failed).",
                &self.recorder.dropped,
            ),
        ] {
            write_single(out, name, "counter", help, value.load(Ordering::Relaxed));
        }
        write_single(
            out,
            "spate_ai_gateway_cache_entries",
            "gauge",
            "Answers the cache holds.",
            self.cache.lock().len(),
        );
        write_header(
            out,
            "spate_ai_gateway_request_seconds",
            "histogram",
            "Time from a request's arrival to its answer's last byte, by provider (cache for hits).",
        );
        for (provider, h) in m.seconds.lock().iter() {
            let labels = format!("provider=\"{}\"", escape_label(provider));
            write_histogram(out, "spate_ai_gateway_request_seconds", &labels, h);
        }
    }

    /// Token counts per principal, virtual key and model between `from_ms` and `to_ms`
    /// (hours that overlap count whole), for `/v1/usage`'s `ai` section.
    pub fn usage(&self, from_ms: i64, to_ms: i64, principal: Option<&str>) -> Json {
        let mut totals: BTreeMap<(String, String, String), Counts> = BTreeMap::new();
        for ((hour, p, key, model), c) in self.usage.lock().iter() {
            if *hour + HOUR_MS <= from_ms || *hour > to_ms {
                continue;
            }
            if principal.is_some_and(|want| want != p && want != key) {
                continue;
            }
            let t = totals
                .entry((p.clone(), key.clone(), model.clone()))
                .or_default();
            t.requests += c.requests;
            t.cache_hits += c.cache_hits;
            t.errors += c.errors;
            t.prompt_tokens += c.prompt_tokens;
            t.completion_tokens += c.completion_tokens;
            t.cost_usd += c.cost_usd;
        }
        let rows: Vec<Json> = totals
            .into_iter()
            .map(|((principal, key, model), c)| {
                json!({
                    "principal": principal,
                    "virtual_key": if key.is_empty() { Json::Null } else { json!(key) },
                    "model": model,
                    "requests": c.requests,
                    "cache_hits": c.cache_hits,
                    "errors": c.errors,
                    "prompt_tokens": c.prompt_tokens,
                    "completion_tokens": c.completion_tokens,
                    "total_tokens": c.prompt_tokens + c.completion_tokens,
                    "cost_usd": c.cost_usd,
                })
            })
            .collect();
        json!({ "usage": rows })
    }
}

/// The gateway's routes, to be merged into the HTTP listener's router.
pub fn router(gateway: Arc<Gateway>) -> Router {
    Router::new()
        .route(
            "/v1/chat/completions",
            post(chat_completions).layer(axum::extract::DefaultBodyLimit::max(MAX_BODY_BYTES)),
        )
        .with_state(gateway)
}

/// One call on its way: what its record and counters need.
struct Call {
    gateway: Arc<Gateway>,
    id: String,
    started: Instant,
    at_ms: i64,
    caller: Caller,
    model: String,
    stream: bool,
    request: Json,
    /// Set once its record is made; a call dropped before (the client went away while the
    /// providers were asked) is recorded with status 499, as nginx logs it.
    finished: std::sync::atomic::AtomicBool,
}

impl Drop for Call {
    fn drop(&mut self) {
        if !self.finished.load(Ordering::Relaxed) {
            self.finish(Ended {
                status: 499,
                provider: String::new(),
                upstream_model: String::new(),
                usage: (0, 0),
                cache_hit: false,
                attempts: 0,
                response: None,
                error: Some("the client closed the request before the answer".into()),
            });
        }
    }
}

/// How a call ended, for its record.
struct Ended {
    status: u16,
    provider: String,
    upstream_model: String,
    usage: (u64, u64),
    cache_hit: bool,
    attempts: u32,
    response: Option<Json>,
    error: Option<String>,
}

impl Call {
    fn finish(&self, ended: Ended) {
        if self.finished.swap(true, Ordering::Relaxed) {
            return;
        }
        let gw = &self.gateway;
        let price = gw
            .providers
            .iter()
            .find(|p| p.config.name == ended.provider)
            .map_or((0.0, 0.0), |p| {
                (p.config.input_price_per_1m, p.config.output_price_per_1m)
            });
        let (prompt, completion) = ended.usage;
        let cost = if ended.cache_hit {
            0.0
        } else {
            (prompt as f64 * price.0 + completion as f64 * price.1) / 1e6
        };
        let latency = self.started.elapsed();
        if !ended.cache_hit && prompt + completion > 0 {
            gw.limiter.lock().spend_tokens(
                &self.caller.subject,
                self.caller.limits,
                prompt + completion,
                Instant::now(),
            );
            let mut tokens = gw.metrics.tokens.lock();
            let mut key = (ended.provider.clone(), self.model.clone());
            if tokens.len() >= MAX_SERIES && !tokens.contains_key(&key) {
                key.1 = "_other".into();
            }
            let t = tokens.entry(key).or_default();
            t.0 += prompt;
            t.1 += completion;
        }
        {
            let mut requests = gw.metrics.requests.lock();
            let mut key = (ended.provider.clone(), self.model.clone(), ended.status);
            if requests.len() >= MAX_SERIES && !requests.contains_key(&key) {
                key.1 = "_other".into();
            }
            *requests.entry(key).or_default() += 1;
        }
        if !ended.provider.is_empty() {
            let label = if ended.cache_hit {
                "cache"
            } else {
                &ended.provider
            };
            gw.histogram(label).observe(latency);
        }
        {
            let mut usage = gw.usage.lock();
            let hour = self.at_ms - self.at_ms.rem_euclid(HOUR_MS);
            let c = usage
                .entry((
                    hour,
                    self.caller.principal.clone(),
                    self.caller.key.clone().unwrap_or_default(),
                    self.model.clone(),
                ))
                .or_default();
            c.requests += 1;
            c.cache_hits += u64::from(ended.cache_hit);
            c.errors += u64::from(ended.status >= 400);
            if !ended.cache_hit {
                c.prompt_tokens += prompt;
                c.completion_tokens += completion;
            }
            c.cost_usd += cost;
            while usage.len() > MAX_USAGE_ROWS {
                usage.pop_first();
            }
        }
        let log = &gw.config.log;
        let mut record = json!({
            "id": self.id,
            "timestamp": self.at_ms,
            "principal": self.caller.principal,
            "virtual_key": self.caller.key,
            "provider": if ended.provider.is_empty() { Json::Null } else { json!(ended.provider) },
            "model": self.model,
            "upstream_model": if ended.upstream_model.is_empty() { Json::Null } else { json!(ended.upstream_model) },
            "stream": self.stream,
            "status": ended.status,
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "total_tokens": prompt + completion,
            "latency_ms": latency.as_millis() as u64,
            "cache_hit": ended.cache_hit,
            "attempts": ended.attempts,
            "cost_usd": cost,
            "error": ended.error,
        });
        if log.bodies
            && let Some(r) = record.as_object_mut()
        {
            let mut request = self.request.clone();
            record::redact(&mut request, &log.redact);
            r.insert("request".into(), request);
            let mut response = ended.response.unwrap_or(Json::Null);
            record::redact(&mut response, &log.redact);
            r.insert("response".into(), response);
        }
        if gw.enabled() {
            gw.recorder.record(self.id.clone(), &record);
        }
    }
}

/// `x-ratelimit-*` headers for `status`.
fn limit_headers(status: &Status, headers: &mut HeaderMap) {
    let mut put = |name: &'static str, value: String| {
        if let Ok(v) = HeaderValue::from_str(&value) {
            headers.insert(name, v);
        }
    };
    if let Some(w) = status.requests {
        put("x-ratelimit-limit-requests", w.limit.to_string());
        put("x-ratelimit-remaining-requests", w.remaining.to_string());
        put("x-ratelimit-reset-requests", limits::reset_text(w.reset));
    }
    if let Some(w) = status.tokens {
        put("x-ratelimit-limit-tokens", w.limit.to_string());
        put("x-ratelimit-remaining-tokens", w.remaining.to_string());
        put("x-ratelimit-reset-tokens", limits::reset_text(w.reset));
    }
}

/// OpenAI's 429: `type` `requests` or `tokens`, code `rate_limit_exceeded`, with the
/// windows and `retry-after`.
fn rate_limited(caller: &Caller, model: &str, refused: &Refused) -> Response {
    let (kind, what, window) = match refused.exceeded {
        Exceeded::Requests => (
            "requests",
            "requests per min (RPM)",
            refused.status.requests,
        ),
        Exceeded::Tokens => ("tokens", "tokens per min (TPM)", refused.status.tokens),
    };
    let limit = window.map_or(0, |w| w.limit);
    let mut response = error(
        StatusCode::TOO_MANY_REQUESTS,
        kind,
        Some("rate_limit_exceeded"),
        None,
        format!(
            "Rate limit reached for {model} for {} on {what}: Limit {limit}. Please try again in {}.",
            caller.subject,
            limits::reset_text(refused.retry_after)
        ),
    );
    let headers = response.headers_mut();
    limit_headers(&refused.status, headers);
    let secs = refused.retry_after.as_secs_f64().ceil().max(1.0) as u64;
    if let Ok(v) = HeaderValue::from_str(&secs.to_string()) {
        headers.insert(header::RETRY_AFTER, v);
    }
    response
}

fn cache_status(response: &mut Response, hit: bool) {
    response.headers_mut().insert(
        "cf-aig-cache-status",
        HeaderValue::from_static(if hit { "HIT" } else { "MISS" }),
    );
}

fn sse_response(body: Body) -> Response {
    (
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, "text/event-stream"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        body,
    )
        .into_response()
}

fn json_response(status: StatusCode, body: Bytes) -> Response {
    (status, [(header::CONTENT_TYPE, "application/json")], body).into_response()
}

async fn chat_completions(
    State(gw): State<Arc<Gateway>>,
    principal: Option<Extension<Principal>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let started = Instant::now();
    let caller = match gw.caller(principal.map(|Extension(p)| p), &headers) {
        Ok(c) => c,
        Err(response) => return *response,
    };
    let request: Map<String, Json> = match serde_json::from_slice(&body) {
        Ok(Json::Object(m)) => m,
        Ok(_) => {
            return crate::api::invalid(None, "the body must be a JSON object".into());
        }
        Err(e) => {
            return crate::api::invalid(
                None,
                format!("the body is not a chat completion request (JSON): {e}"),
            );
        }
    };
    let Some(model) = request
        .get("model")
        .and_then(Json::as_str)
        .map(str::to_string)
    else {
        return crate::api::invalid(Some("model"), "`model` is required (a string)".into());
    };
    if !request.get("messages").is_some_and(Json::is_array) {
        return crate::api::invalid(
            Some("messages"),
            "`messages` is required (a list of messages)".into(),
        );
    }
    let stream = request.get("stream").and_then(Json::as_bool) == Some(true);
    let include_usage = request
        .get("stream_options")
        .and_then(|o| o.get("include_usage"))
        .and_then(Json::as_bool)
        == Some(true);
    let routes = gw.routes(&model);
    if routes.is_empty() {
        return error(
            StatusCode::NOT_FOUND,
            "invalid_request_error",
            Some("model_not_found"),
            Some("model"),
            format!(
                "The model `{model}` does not exist or you do not have access to it (the gateway's providers list the models they serve; `provider/model` names one)"
            ),
        );
    }
    // The cache: skipped on `cf-aig-skip-cache: true`; `cf-aig-cache-ttl` sets the time to
    // live of what this request stores.
    let header_text = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let skip =
        header_text("cf-aig-skip-cache").is_some_and(|v| v.trim().eq_ignore_ascii_case("true"));
    let ttl = match header_text("cf-aig-cache-ttl") {
        Some(v) => match v.trim().parse::<u64>() {
            Ok(secs) => secs,
            Err(_) => {
                return crate::api::invalid(
                    None,
                    format!("cf-aig-cache-ttl is a number of seconds, not {v:?}"),
                );
            }
        },
        None => gw.config.cache.ttl_seconds,
    };
    let seq = gw.sequence.fetch_add(1, Ordering::Relaxed);
    let at_ms = now_ms();
    let call = Call {
        gateway: Arc::clone(&gw),
        id: format!("{at_ms:x}-{seq}"),
        started,
        at_ms,
        caller,
        model: model.clone(),
        stream,
        request: Json::Object(request.clone()),
        finished: std::sync::atomic::AtomicBool::new(false),
    };
    let limits_now =
        gw.limiter
            .lock()
            .admit(&call.caller.subject, call.caller.limits, Instant::now());
    let limit_status = match limits_now {
        Ok(status) => status,
        Err(refused) => {
            gw.metrics.rate_limited.fetch_add(1, Ordering::Relaxed);
            let response = rate_limited(&call.caller, &model, &refused);
            call.finish(Ended {
                status: 429,
                provider: String::new(),
                upstream_model: String::new(),
                usage: (0, 0),
                cache_hit: false,
                attempts: 0,
                response: None,
                error: Some("rate limited by the gateway".into()),
            });
            return response;
        }
    };

    let key = (!skip && ttl > 0).then(|| cache::key(&request));
    if let Some(key) = &key {
        let hit = gw.cache.lock().get(key, Instant::now());
        match hit {
            Some(answer) => {
                gw.metrics.cache_hits.fetch_add(1, Ordering::Relaxed);
                return replay(call, &answer, &limit_status);
            }
            None => {
                gw.metrics.cache_misses.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    let created = at_ms / 1000;
    let called = upstream::call(
        &gw.client,
        &gw.providers,
        &routes,
        &request,
        stream,
        created,
    )
    .await;
    gw.metrics
        .retries
        .fetch_add(u64::from(called.retries), Ordering::Relaxed);
    gw.metrics
        .fallbacks
        .fetch_add(u64::from(called.fallbacks), Ordering::Relaxed);
    let provider = gw
        .providers
        .get(called.route.provider)
        .map(|p| p.config.name.clone())
        .unwrap_or_default();
    let ended = |status: u16, usage, response, error| Ended {
        status,
        provider: provider.clone(),
        upstream_model: called.route.model.clone(),
        usage,
        cache_hit: false,
        attempts: called.attempts,
        response,
        error,
    };
    let mut response = match called.outcome {
        Outcome::Answer { body, usage } => {
            if let Some(key) = key {
                let answer = Answer {
                    stream: false,
                    parts: vec![body.clone()],
                    provider: provider.clone(),
                    model: called.route.model.clone(),
                    usage,
                };
                gw.cache.lock().insert(
                    key,
                    answer,
                    body.len(),
                    Duration::from_secs(ttl),
                    Instant::now(),
                );
            }
            let logged = gw
                .config
                .log
                .bodies
                .then(|| serde_json::from_slice(&body).unwrap_or(Json::Null));
            call.finish(ended(200, usage, logged, None));
            json_response(StatusCode::OK, body)
        }
        Outcome::Refused { status, body } => {
            let logged = serde_json::from_slice(&body).ok();
            call.finish(ended(
                status.as_u16(),
                (0, 0),
                logged,
                Some(format!("the provider answered {status}")),
            ));
            json_response(status, body)
        }
        Outcome::Failed { status, message } => {
            tracing::warn!(model = %model, "chat completion failed: {message}");
            call.finish(ended(status.as_u16(), (0, 0), None, Some(message.clone())));
            error(
                status,
                "server_error",
                Some(if status == StatusCode::GATEWAY_TIMEOUT {
                    "upstream_timeout"
                } else {
                    "upstream_error"
                }),
                None,
                message,
            )
        }
        Outcome::Stream(upstream) => {
            let kind = gw
                .providers
                .get(called.route.provider)
                .map(|p| (p.config.kind, p.config.timeout_ms))
                .unwrap_or_default();
            let relay = Relay {
                call,
                provider,
                upstream_model: called.route.model.clone(),
                attempts: called.attempts,
                include_usage,
                cache: key.map(|k| (k, ttl)),
            };
            relay.start(upstream, kind.0, Duration::from_millis(kind.1.max(1)))
        }
    };
    cache_status(&mut response, false);
    limit_headers(&limit_status, response.headers_mut());
    response
}

/// A cached answer served again: the same body, or the same chunks as server-sent events.
fn replay(call: Call, answer: &Answer, limit_status: &Status) -> Response {
    let mut response = if answer.stream {
        let mut out = Vec::new();
        for part in &answer.parts {
            out.extend_from_slice(b"data: ");
            out.extend_from_slice(part);
            out.extend_from_slice(b"\n\n");
        }
        out.extend_from_slice(&sse::frame(sse::DONE));
        sse_response(Body::from(out))
    } else {
        json_response(
            StatusCode::OK,
            answer.parts.first().cloned().unwrap_or_default(),
        )
    };
    let logged = (call.gateway.config.log.bodies && !answer.stream)
        .then(|| {
            answer
                .parts
                .first()
                .and_then(|b| serde_json::from_slice(b).ok())
        })
        .flatten();
    call.finish(Ended {
        status: 200,
        provider: answer.provider.clone(),
        upstream_model: answer.model.clone(),
        usage: answer.usage,
        cache_hit: true,
        attempts: 0,
        response: logged,
        error: None,
    });
    cache_status(&mut response, true);
    limit_headers(limit_status, response.headers_mut());
    response
}
