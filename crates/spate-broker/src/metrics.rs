//! Counters and latency histograms the broker keeps, rendered in Prometheus text format by the
//! HTTP listener.
//!
//! Names follow `spate_<subsystem>_<thing>_<unit>`, counters end in `_total`, latencies are
//! histograms in seconds ([`spate_metrics::Histogram`]: an observation is two relaxed atomic
//! adds). Per-API series appear once the API has been used.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use kafka_protocol::messages::ApiKey;
use spate_metrics::{Histogram, write_header, write_histogram};

const API_SLOTS: usize = 128;

/// Per-API request counters and latencies.
#[derive(Debug)]
pub struct ApiMetrics {
    requests: [AtomicU64; API_SLOTS],
    /// From the frame read to the response written (or dropped, for acks=0).
    duration: Box<[Histogram; API_SLOTS]>,
    /// From the frame read to the broker starting on it.
    queue: Box<[Histogram; API_SLOTS]>,
}

impl Default for ApiMetrics {
    fn default() -> ApiMetrics {
        ApiMetrics {
            requests: std::array::from_fn(|_| AtomicU64::new(0)),
            duration: Box::new(std::array::from_fn(|_| Histogram::new())),
            queue: Box::new(std::array::from_fn(|_| Histogram::new())),
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
    /// Time to append one partition's batch to its log (lock wait, write; a roll's fsync).
    pub produce_append: Histogram,
    /// Time a fetch spent waiting for data (long poll); 0 for one answered at once.
    pub fetch_wait: Histogram,
}

impl Metrics {
    pub(crate) fn record_request(&self, api_key: ApiKey) {
        if let Some(slot) = self.apis.requests.get(api_key as usize) {
            slot.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Records a request's whole time: from its frame read to its response written.
    pub fn observe_request(&self, api_key: ApiKey, elapsed: Duration) {
        if let Some(histogram) = self.apis.duration.get(api_key as usize) {
            histogram.observe(elapsed);
        }
    }

    /// Records how long a request waited between its frame read and the broker starting on it.
    pub fn observe_queue(&self, api_key: ApiKey, elapsed: Duration) {
        if let Some(histogram) = self.apis.queue.get(api_key as usize) {
            histogram.observe(elapsed);
        }
    }

    /// Requests of an API whose whole time was recorded.
    pub fn request_count(&self, api_key: ApiKey) -> u64 {
        self.apis
            .duration
            .get(api_key as usize)
            .map_or(0, Histogram::count)
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
        for (name, help, family) in [
            (
                "spate_kafka_request_duration_seconds",
                "Time from a request's frame read to its response written, by API.",
                &self.apis.duration,
            ),
            (
                "spate_kafka_request_queue_seconds",
                "Time a request waited between its frame read and the broker starting on it (for Produce, the append thread), by API.",
                &self.apis.queue,
            ),
        ] {
            write_header(out, name, "histogram", help);
            for key in ApiKey::iter() {
                if let Some(histogram) = family.get(key as usize)
                    && histogram.count() > 0
                {
                    write_histogram(out, name, &format!("api=\"{key:?}\""), histogram);
                }
            }
        }
        for (name, help, histogram) in [
            (
                "spate_produce_append_seconds",
                "Time to append one partition's batch to its log (waiting for the partition's lock included).",
                &self.produce_append,
            ),
            (
                "spate_fetch_wait_seconds",
                "Time a fetch waited for data before answering (long poll); 0 when data was there.",
                &self.fetch_wait,
            ),
        ] {
            write_header(out, name, "histogram", help);
            write_histogram(out, name, "", histogram);
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn per_api_histograms_appear_once_used() {
        let metrics = Metrics::default();
        let mut before = String::new();
        metrics.render(&mut before);
        assert!(before.contains("# TYPE spate_kafka_request_duration_seconds histogram"));
        assert!(!before.contains("spate_kafka_request_duration_seconds_count"));
        assert!(before.contains("spate_produce_append_seconds_count 0"));

        metrics.observe_request(ApiKey::Produce, Duration::from_millis(2));
        metrics.observe_queue(ApiKey::Produce, Duration::from_micros(20));
        assert_eq!(metrics.request_count(ApiKey::Produce), 1);
        assert_eq!(metrics.request_count(ApiKey::Fetch), 0);
        let mut after = String::new();
        metrics.render(&mut after);
        for line in [
            "spate_kafka_request_duration_seconds_bucket{api=\"Produce\",le=\"0.001\"} 0",
            "spate_kafka_request_duration_seconds_bucket{api=\"Produce\",le=\"0.0025\"} 1",
            "spate_kafka_request_duration_seconds_count{api=\"Produce\"} 1",
            "spate_kafka_request_queue_seconds_bucket{api=\"Produce\",le=\"2.5e-05\"} 1",
        ] {
            assert!(after.lines().any(|l| l == line), "missing {line}\n{after}");
        }
        assert!(!after.contains("api=\"Fetch\""));
    }
}
