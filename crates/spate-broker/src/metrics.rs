//! Counters the broker keeps, rendered in Prometheus text format by the HTTP listener.
//!
//! Names follow `spate_<subsystem>_<thing>_<unit>`, counters end in `_total`.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};

use kafka_protocol::messages::ApiKey;

const API_SLOTS: usize = 128;

/// Per-API request counters.
#[derive(Debug)]
pub struct ApiMetrics {
    requests: [AtomicU64; API_SLOTS],
}

impl Default for ApiMetrics {
    fn default() -> ApiMetrics {
        ApiMetrics {
            requests: std::array::from_fn(|_| AtomicU64::new(0)),
        }
    }
}

/// The broker's counters.
#[derive(Debug, Default)]
pub struct Metrics {
    apis: ApiMetrics,
    /// Record batch bytes appended.
    pub produce_bytes: AtomicU64,
    /// Records appended.
    pub produce_records: AtomicU64,
    /// Produce partitions refused.
    pub produce_errors: AtomicU64,
    /// Record bytes returned by fetches.
    pub fetch_bytes: AtomicU64,
}

impl Metrics {
    pub(crate) fn record_request(&self, api_key: ApiKey) {
        if let Some(slot) = self.apis.requests.get(api_key as usize) {
            slot.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Appends the counters in Prometheus text format.
    pub fn render(&self, out: &mut String) {
        let _ = writeln!(
            out,
            "# HELP spate_kafka_requests_total Kafka requests handled, by API."
        );
        let _ = writeln!(out, "# TYPE spate_kafka_requests_total counter");
        for key in ApiKey::iter() {
            let count = self
                .apis
                .requests
                .get(key as usize)
                .map_or(0, |c| c.load(Ordering::Relaxed));
            if count > 0 {
                let _ = writeln!(out, "spate_kafka_requests_total{{api=\"{key:?}\"}} {count}");
            }
        }
        for (name, help, counter) in [
            (
                "spate_produce_bytes_total",
                "Record batch bytes appended.",
                &self.produce_bytes,
            ),
            (
                "spate_produce_records_total",
                "Records appended.",
                &self.produce_records,
            ),
            (
                "spate_produce_errors_total",
                "Produce partitions refused with an error.",
                &self.produce_errors,
            ),
            (
                "spate_fetch_bytes_total",
                "Record bytes returned to fetches.",
                &self.fetch_bytes,
            ),
        ] {
            let _ = writeln!(out, "# HELP {name} {help}");
            let _ = writeln!(out, "# TYPE {name} counter");
            let _ = writeln!(out, "{name} {}", counter.load(Ordering::Relaxed));
        }
    }
}
