//! `GET /v1/usage` and the usage counters on `/metrics`: what each principal produced, fetched
//! and asked, per topic, from the broker's hourly buckets (`spate_broker::usage`).
//!
//! `from` and `to` take RFC 3339 times or milliseconds since the epoch (default: everything
//! up to now); buckets are hours, and an hour that overlaps the range counts whole.
//! `principal` and `topic` narrow the answer. `ai` holds the AI gateway's requests, tokens and
//! estimated cost per principal, virtual key and model (counted since the server started).

use std::collections::BTreeMap;
use std::fmt::Write;
use std::time::{Duration, UNIX_EPOCH};

use axum::extract::{Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use spate_broker::Broker;
use spate_broker::usage::{BUCKET_MS, Counters};

use crate::http::HttpState;

#[derive(Debug, Deserialize)]
pub(crate) struct UsageQuery {
    from: Option<String>,
    to: Option<String>,
    principal: Option<String>,
    topic: Option<String>,
}

#[derive(Serialize)]
struct PrincipalUsage {
    principal: String,
    #[serde(flatten)]
    counters: Counters,
}

#[derive(Serialize)]
struct TopicUsage {
    topic: String,
    #[serde(flatten)]
    counters: Counters,
    /// Bytes on disk now (not a function of the range).
    storage_bytes: u64,
}

#[derive(Serialize)]
struct Bucket {
    hour: String,
    principal: String,
    topic: String,
    #[serde(flatten)]
    counters: Counters,
}

#[derive(Serialize)]
struct UsageReport {
    from: String,
    to: String,
    granularity_ms: i64,
    principals: Vec<PrincipalUsage>,
    topics: Vec<TopicUsage>,
    buckets: Vec<Bucket>,
    /// The AI gateway's calls and tokens per principal (or virtual key) and model.
    ai: serde_json::Value,
}

fn rfc3339(ms: i64) -> String {
    let time = UNIX_EPOCH + Duration::from_millis(u64::try_from(ms).unwrap_or(0));
    humantime::format_rfc3339_millis(time).to_string()
}

/// Milliseconds since the epoch from `1764000000000` or `2026-11-24T10:00:00Z`.
fn parse_time(name: &str, value: &str) -> Result<i64, String> {
    if let Ok(ms) = value.parse::<i64>() {
        return Ok(ms);
    }
    humantime::parse_rfc3339_weak(value)
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .and_then(|d| i64::try_from(d.as_millis()).ok())
        .ok_or_else(|| {
            format!(
                "{name} must be an RFC 3339 time or milliseconds since the epoch, not {value:?}"
            )
        })
}

pub(crate) async fn usage(
    State(state): State<HttpState>,
    Query(query): Query<UsageQuery>,
) -> Response {
    let now = i64::try_from(
        std::time::SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_millis(),
    )
    .unwrap_or(i64::MAX);
    let range = (|| {
        let from = query
            .from
            .as_deref()
            .map_or(Ok(0), |v| parse_time("from", v))?;
        let to = query
            .to
            .as_deref()
            .map_or(Ok(now), |v| parse_time("to", v))?;
        if from > to {
            return Err("from must not be after to".to_string());
        }
        Ok((from, to))
    })();
    let (from, to) = match range {
        Ok(range) => range,
        Err(message) => {
            return json(
                StatusCode::BAD_REQUEST,
                &serde_json::json!({ "error": message }),
            );
        }
    };
    let mut rows = state.broker.usage(from, to.saturating_add(1));
    rows.retain(|row| {
        query
            .principal
            .as_deref()
            .is_none_or(|p| *row.principal == *p)
            && query
                .topic
                .as_deref()
                .is_none_or(|t| *row.topic == *t || row.topic.is_empty())
    });
    rows.sort_by(|a, b| {
        (a.hour_ms, &a.principal, &a.topic).cmp(&(b.hour_ms, &b.principal, &b.topic))
    });
    let mut principals: BTreeMap<String, Counters> = BTreeMap::new();
    let mut topics: BTreeMap<String, Counters> = BTreeMap::new();
    for row in &rows {
        principals
            .entry(row.principal.to_string())
            .or_default()
            .add(&row.counters);
        if !row.topic.is_empty() {
            topics
                .entry(row.topic.to_string())
                .or_default()
                .add(&row.counters);
        }
    }
    let storage: BTreeMap<String, u64> = state.broker.storage_bytes().into_iter().collect();
    for topic in storage.keys() {
        if query.topic.as_deref().is_none_or(|t| t == topic) && query.principal.is_none() {
            topics.entry(topic.clone()).or_default();
        }
    }
    let ai = state
        .gateway
        .usage(from, to, query.principal.as_deref())
        .get("usage")
        .cloned()
        .unwrap_or_default();
    let report = UsageReport {
        ai,
        from: rfc3339(from),
        to: rfc3339(to),
        granularity_ms: BUCKET_MS,
        principals: principals
            .into_iter()
            .map(|(principal, counters)| PrincipalUsage {
                principal,
                counters,
            })
            .collect(),
        topics: topics
            .into_iter()
            .map(|(topic, counters)| TopicUsage {
                storage_bytes: storage.get(&topic).copied().unwrap_or(0),
                topic,
                counters,
            })
            .collect(),
        buckets: rows
            .into_iter()
            .map(|row| Bucket {
                hour: rfc3339(row.hour_ms),
                principal: row.principal.to_string(),
                topic: row.topic.to_string(),
                counters: row.counters,
            })
            .collect(),
    };
    json(StatusCode::OK, &report)
}

fn json(status: StatusCode, body: &impl Serialize) -> Response {
    match serde_json::to_vec(body) {
        Ok(bytes) => (status, [(header::CONTENT_TYPE, "application/json")], bytes).into_response(),
        Err(err) => (StatusCode::INTERNAL_SERVER_ERROR, err.to_string()).into_response(),
    }
}

/// A Prometheus label value: backslash, quote and newline escaped.
fn label(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// Usage counters for `/metrics`: totals since metering began (restarts included), per
/// principal and topic, and requests per principal.
pub(crate) fn render_metrics(broker: &Broker, out: &mut String) {
    let mut totals: BTreeMap<(String, String), Counters> = BTreeMap::new();
    for row in broker.usage(i64::MIN, i64::MAX) {
        totals
            .entry((row.principal.to_string(), row.topic.to_string()))
            .or_default()
            .add(&row.counters);
    }
    type Field = fn(&Counters) -> u64;
    let series: [(&str, &str, Field); 4] = [
        (
            "spate_usage_bytes_in_total",
            "Record bytes produced, per principal and topic.",
            |c| c.bytes_in,
        ),
        (
            "spate_usage_bytes_out_total",
            "Record bytes fetched, per principal and topic.",
            |c| c.bytes_out,
        ),
        (
            "spate_usage_records_in_total",
            "Records produced, per principal and topic.",
            |c| c.records_in,
        ),
        (
            "spate_usage_records_out_total",
            "Records fetched, per principal and topic.",
            |c| c.records_out,
        ),
    ];
    for (name, help, field) in series {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
        for ((principal, topic), counters) in totals.iter().filter(|((_, t), _)| !t.is_empty()) {
            let _ = writeln!(
                out,
                "{name}{{principal=\"{}\",topic=\"{}\"}} {}",
                label(principal),
                label(topic),
                field(counters)
            );
        }
    }
    let name = "spate_usage_requests_total";
    let _ = writeln!(
        out,
        "# HELP {name} Requests per principal.\n# TYPE {name} counter"
    );
    for ((principal, _), counters) in totals.iter().filter(|((_, t), _)| t.is_empty()) {
        let _ = writeln!(
            out,
            "{name}{{principal=\"{}\"}} {}",
            label(principal),
            counters.requests
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_rfc3339_or_epoch_milliseconds() {
        assert_eq!(parse_time("from", "1764000000000"), Ok(1_764_000_000_000));
        assert_eq!(parse_time("from", "1970-01-01T00:00:01Z"), Ok(1000));
        assert!(
            parse_time("from", "yesterday")
                .expect_err("not a time")
                .contains("RFC 3339")
        );
    }

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(label("User:CN=a\"b\\c"), "User:CN=a\\\"b\\\\c");
    }
}
