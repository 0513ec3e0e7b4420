//! The HTTP listener: health, `/metrics` (Prometheus text format) and `/v1/usage`.
//!
//! It serves from the moment its socket is bound, before the broker has opened its data, so
//! an orchestrator can tell a broker that is starting (recovering a large log can take
//! minutes) from one that is dead:
//!
//! - `/health/live`: 200 whenever the process answers (liveness);
//! - `/health/ready` and `/health`: 200 once the broker has opened its data and every listener
//!   is bound, 503 while starting or shutting down (readiness);
//! - every other path answers 503 until the server is ready, then goes to the full router.
//!
//! All answer JSON (`{"status":"ok"}`, `"starting"`, `"stopping"`). With `http-auth` on,
//! everything but the health endpoints needs credentials (`http_auth.rs`).

use std::fmt::Write;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Instant;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use spate_broker::Broker;
use spate_metrics::{escape_label, write_single};
use tower::ServiceExt;

use crate::build_info;
use crate::http_auth::{self, HttpAuth};
use crate::kafka::ConnectionMetrics;

/// Where the server is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Phase {
    /// Binding listeners, opening the broker's data.
    Starting,
    /// Serving.
    Ready,
    /// Shutting down.
    Stopping,
}

/// The server's [`Phase`], shared with the health endpoints.
#[derive(Debug, Default)]
pub(crate) struct Lifecycle(AtomicU8);

impl Lifecycle {
    pub(crate) fn set(&self, phase: Phase) {
        self.0.store(phase as u8, Ordering::Release);
    }

    pub(crate) fn phase(&self) -> Phase {
        match self.0.load(Ordering::Acquire) {
            0 => Phase::Starting,
            1 => Phase::Ready,
            _ => Phase::Stopping,
        }
    }
}

/// What the HTTP listener serves before and after the broker is open: the health endpoints,
/// and `app` (set once the server is ready) for everything else.
pub(crate) fn outer_router(lifecycle: Arc<Lifecycle>, app: Arc<OnceLock<Router>>) -> Router {
    Router::new()
        .route("/health", get(ready))
        .route("/health/ready", get(ready))
        .route("/health/live", get(live))
        .with_state(lifecycle)
        .fallback(move |request: Request| {
            let app = app.get().cloned();
            async move {
                match app {
                    Some(app) => match app.oneshot(request).await {
                        Ok(response) => response,
                        Err(never) => match never {},
                    },
                    None => status(StatusCode::SERVICE_UNAVAILABLE, "starting"),
                }
            }
        })
}

fn status(code: StatusCode, status: &str) -> Response {
    (
        code,
        [(header::CONTENT_TYPE, "application/json")],
        format!("{{\"status\":\"{status}\"}}\n"),
    )
        .into_response()
}

async fn live() -> Response {
    status(StatusCode::OK, "ok")
}

async fn ready(State(lifecycle): State<Arc<Lifecycle>>) -> Response {
    match lifecycle.phase() {
        Phase::Ready => status(StatusCode::OK, "ok"),
        Phase::Starting => status(StatusCode::SERVICE_UNAVAILABLE, "starting"),
        Phase::Stopping => status(StatusCode::SERVICE_UNAVAILABLE, "stopping"),
    }
}

#[derive(Clone)]
pub(crate) struct HttpState {
    pub broker: Arc<Broker>,
    pub connections: Arc<ConnectionMetrics>,
    pub auth: Arc<HttpAuth>,
    /// When the server started, for `spate_uptime_seconds`.
    pub started: Instant,
    /// The data directory, whose filesystem's space `/metrics` reports.
    pub data_dir: PathBuf,
    /// The in-process Connect worker's metrics, when it runs.
    pub connect: Option<Arc<spate_connect::metrics::ConnectMetrics>>,
    /// The in-process SQL worker, once it runs.
    pub sql: Arc<OnceLock<Arc<spate_sql::engine::Engine>>>,
    /// The AI pillar: its models and the OpenAI-compatible API under `/v1/`.
    pub ai: Arc<spate_ai::Ai>,
    /// The AI gateway (`/v1/chat/completions`).
    pub gateway: Arc<spate_ai::gateway::Gateway>,
}

/// The routes served once the broker is open (behind `http-auth` when it is on).
pub(crate) fn router(state: HttpState) -> Router {
    let auth = Arc::clone(&state.auth);
    let broker = Arc::clone(&state.broker);
    let ai = spate_ai::api::router(Arc::clone(&state.ai))
        .merge(spate_ai::gateway::router(Arc::clone(&state.gateway)));
    let guarded = Router::new()
        .route("/metrics", get(metrics))
        .route("/v1/usage", get(crate::usage::usage))
        .with_state(state)
        .merge(ai);
    let guarded = http_auth::authorize(guarded, broker, http_auth::Listener::Admin);
    http_auth::protect(guarded, auth, http_auth::Listener::Admin)
}

async fn metrics(State(state): State<HttpState>) -> impl IntoResponse {
    let mut out = String::with_capacity(4096);
    state.broker.render_metrics(&mut out);
    if let Some(connect) = &state.connect {
        connect.render(&mut out);
    }
    if let Some(sql) = state.sql.get() {
        sql.render_metrics(&mut out);
    }
    state.ai.render_metrics(&mut out);
    state.gateway.render_metrics(&mut out);
    let c = &state.connections;
    for (name, kind, help, value) in [
        (
            "spate_connections_accepted_total",
            "counter",
            "Kafka connections accepted.",
            c.accepted.load(Ordering::Relaxed),
        ),
        (
            "spate_connections_refused_total",
            "counter",
            "Kafka connections refused at max-connections.",
            c.refused.load(Ordering::Relaxed),
        ),
        (
            "spate_connections_active",
            "gauge",
            "Open Kafka connections.",
            c.active.load(Ordering::Relaxed),
        ),
        (
            "spate_connections_rate_limited_total",
            "counter",
            "Kafka connections refused by their address's connection_creation_rate quota.",
            c.rate_limited.load(Ordering::Relaxed),
        ),
        (
            "spate_connection_accept_delays_total",
            "counter",
            "Times accepting waited for max-connection-creation-rate.",
            c.accept_delays.load(Ordering::Relaxed),
        ),
        (
            "spate_connections_closed_slow_total",
            "counter",
            "Kafka connections closed for sending a request too slowly or not authenticating in time.",
            c.closed_slow.load(Ordering::Relaxed),
        ),
        (
            "spate_request_decode_errors_total",
            "counter",
            "Frames that could not be decoded (connection closed).",
            c.decode_errors.load(Ordering::Relaxed),
        ),
        (
            "spate_audit_events_total",
            "counter",
            "Audit events recorded for the _audit topic.",
            state.broker.audit_counts().0,
        ),
        (
            "spate_audit_events_dropped_total",
            "counter",
            "Audit events dropped (queue full or the write failed).",
            state.broker.audit_counts().1,
        ),
        (
            "spate_http_auth_refused_total",
            "counter",
            "Registry and HTTP requests refused by http-auth (401, or 503 when checks queue up).",
            state.auth.metrics.refused.load(Ordering::Relaxed),
        ),
        (
            "spate_http_auth_cache_hits_total",
            "counter",
            "Basic credentials accepted from the cache of verified passwords.",
            state.auth.metrics.cache_hits.load(Ordering::Relaxed),
        ),
        (
            "spate_http_auth_password_checks_total",
            "counter",
            "Basic passwords checked by key derivation (cache misses).",
            state.auth.metrics.password_checks.load(Ordering::Relaxed),
        ),
    ] {
        let _ = writeln!(
            out,
            "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}"
        );
    }
    let _ = writeln!(
        out,
        "# HELP spate_log_end_offset Offset after the last record of each partition."
    );
    let _ = writeln!(out, "# TYPE spate_log_end_offset gauge");
    let mut sizes = String::new();
    let mut starts = String::new();
    for topic in state.broker.topics().list() {
        for partition in topic.partitions() {
            let offsets = partition.log.offsets();
            let labels = format!("topic=\"{}\",partition=\"{}\"", topic.name, partition.index);
            let _ = writeln!(
                out,
                "spate_log_end_offset{{{labels}}} {}",
                offsets.log_end_offset
            );
            let _ = writeln!(
                starts,
                "spate_log_start_offset{{{labels}}} {}",
                offsets.log_start_offset
            );
            let _ = writeln!(
                sizes,
                "spate_log_size_bytes{{{labels}}} {}",
                partition.log.size_bytes()
            );
        }
    }
    let _ = writeln!(
        out,
        "# HELP spate_log_start_offset First offset held by each partition.\n# TYPE spate_log_start_offset gauge"
    );
    out.push_str(&starts);
    let _ = writeln!(
        out,
        "# HELP spate_log_size_bytes Bytes of segment files of each partition.\n# TYPE spate_log_size_bytes gauge"
    );
    out.push_str(&sizes);
    render_lag(&state, &mut out);
    crate::usage::render_metrics(&state.broker, &mut out);
    let _ = writeln!(
        out,
        "# HELP spate_build_info The version and git commit of this binary.\n# TYPE spate_build_info gauge\nspate_build_info{{version=\"{}\",commit=\"{}\"}} 1",
        escape_label(build_info::VERSION),
        escape_label(build_info::COMMIT)
    );
    write_single(
        &mut out,
        "spate_uptime_seconds",
        "gauge",
        "Seconds since the server started.",
        state.started.elapsed().as_secs_f64(),
    );
    // /proc and statvfs are file reads: off the async workers.
    let data_dir = state.data_dir.clone();
    let out = match tokio::task::spawn_blocking(move || {
        crate::process::render(&mut out, &data_dir);
        out
    })
    .await
    {
        Ok(out) => out,
        Err(err) => {
            tracing::error!(error = %err, "reading process metrics failed");
            return (
                StatusCode::INTERNAL_SERVER_ERROR,
                [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
                String::from("reading process metrics failed\n"),
            );
        }
    };
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        out,
    )
}

/// Committed offsets and lag per group and partition, so no separate lag exporter is needed.
fn render_lag(state: &HttpState, out: &mut String) {
    let committed = state.broker.committed_offsets();
    let _ = writeln!(
        out,
        "# HELP spate_consumer_group_committed_offset Committed offset per group and partition.\n# TYPE spate_consumer_group_committed_offset gauge"
    );
    let mut lags = String::new();
    for c in &committed {
        let labels = format!(
            "group=\"{}\",topic=\"{}\",partition=\"{}\"",
            escape_label(&c.group),
            c.topic,
            c.partition
        );
        let _ = writeln!(
            out,
            "spate_consumer_group_committed_offset{{{labels}}} {}",
            c.offset
        );
        let end = state
            .broker
            .topics()
            .get(&c.topic)
            .and_then(|t| t.partition(c.partition))
            .map(|p| p.log.offsets().high_watermark);
        if let Some(end) = end {
            let _ = writeln!(
                lags,
                "spate_consumer_group_lag{{{labels}}} {}",
                (end - c.offset).max(0)
            );
        }
    }
    let _ = writeln!(
        out,
        "# HELP spate_consumer_group_lag Records between the committed offset and the partition's high watermark.\n# TYPE spate_consumer_group_lag gauge"
    );
    out.push_str(&lags);
}
