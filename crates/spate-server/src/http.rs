//! The HTTP listener: `/health`, `/metrics` (Prometheus text format) and `/v1/usage`. With
//! `http-auth` on, everything but `/health` needs credentials (`http_auth.rs`); `/health` stays
//! open for load balancers.

use std::fmt::Write;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use spate_broker::Broker;

use crate::http_auth::{self, HttpAuth};
use crate::kafka::ConnectionMetrics;

#[derive(Clone)]
pub(crate) struct HttpState {
    pub broker: Arc<Broker>,
    pub connections: Arc<ConnectionMetrics>,
    pub auth: Arc<HttpAuth>,
}

pub(crate) fn router(state: HttpState) -> Router {
    let auth = Arc::clone(&state.auth);
    let broker = Arc::clone(&state.broker);
    let guarded = Router::new()
        .route("/metrics", get(metrics))
        .route("/v1/usage", get(crate::usage::usage))
        .with_state(state);
    let guarded = http_auth::authorize(guarded, broker, http_auth::Listener::Admin);
    // Routes added after `protect` are open.
    http_auth::protect(guarded, auth, http_auth::Listener::Admin).route("/health", get(health))
}

async fn health() -> impl IntoResponse {
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json")],
        "{\"status\":\"ok\"}\n",
    )
}

async fn metrics(State(state): State<HttpState>) -> impl IntoResponse {
    let mut out = String::with_capacity(4096);
    state.broker.render_metrics(&mut out);
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
            c.group, c.topic, c.partition
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
