//! Latency histograms that the hot paths can afford, and the Prometheus text format.
//!
//! A [`Histogram`] is a fixed set of buckets, each an atomic counter, plus an atomic sum of
//! nanoseconds. Recording an observation is a search over [`BOUNDS`] (19 entries, in cache) and
//! two relaxed atomic adds: no lock, no allocation, so a request path can record several per
//! request. The buckets are the same for every histogram (10 µs to 10 s), so any two of them
//! can be compared or summed in PromQL. A scrape reads the counters while writers go on: it
//! may count an observation in one bucket whose nanoseconds its `_sum` does not hold yet,
//! which Prometheus tolerates; `_count` always equals the `+Inf` bucket.
//!
//! This crate does no I/O and knows nothing of HTTP or the Kafka protocol: it keeps counters
//! and writes text into a `String`, so the storage engine can record into it.

use std::borrow::Cow;
use std::fmt::{Display, Write};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// The buckets' upper bounds: the `le` label as Prometheus clients write it, and the bound in
/// nanoseconds. An observation equal to a bound falls in that bound's bucket.
pub const BOUNDS: [(&str, u64); 19] = [
    ("1e-05", 10_000),
    ("2.5e-05", 25_000),
    ("5e-05", 50_000),
    ("0.0001", 100_000),
    ("0.00025", 250_000),
    ("0.0005", 500_000),
    ("0.001", 1_000_000),
    ("0.0025", 2_500_000),
    ("0.005", 5_000_000),
    ("0.01", 10_000_000),
    ("0.025", 25_000_000),
    ("0.05", 50_000_000),
    ("0.1", 100_000_000),
    ("0.25", 250_000_000),
    ("0.5", 500_000_000),
    ("1", 1_000_000_000),
    ("2.5", 2_500_000_000),
    ("5", 5_000_000_000),
    ("10", 10_000_000_000),
];

/// Buckets kept: one per bound and one above them all (`+Inf`).
const BUCKETS: usize = BOUNDS.len() + 1;

/// A latency histogram in seconds with the fixed [`BOUNDS`].
#[derive(Debug)]
pub struct Histogram {
    /// Observations per bucket, not cumulative; the last bucket is above every bound.
    counts: [AtomicU64; BUCKETS],
    /// Sum of all observations in nanoseconds (wraps after 584 years of latency).
    sum_ns: AtomicU64,
}

impl Default for Histogram {
    fn default() -> Histogram {
        Histogram::new()
    }
}

impl Histogram {
    /// An empty histogram; `const`, so it can be a `static`.
    pub const fn new() -> Histogram {
        Histogram {
            counts: [const { AtomicU64::new(0) }; BUCKETS],
            sum_ns: AtomicU64::new(0),
        }
    }

    /// Records one observation.
    pub fn observe(&self, elapsed: Duration) {
        let ns = u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX);
        let bucket = BOUNDS.partition_point(|&(_, bound)| bound < ns);
        if let Some(count) = self.counts.get(bucket) {
            count.fetch_add(1, Ordering::Relaxed);
        }
        self.sum_ns.fetch_add(ns, Ordering::Relaxed);
    }

    /// Records the time since `start`.
    pub fn observe_since(&self, start: Instant) {
        self.observe(start.elapsed());
    }

    /// Observations recorded so far.
    pub fn count(&self) -> u64 {
        self.counts.iter().map(|c| c.load(Ordering::Relaxed)).sum()
    }

    /// The counters as Prometheus reports them.
    pub fn snapshot(&self) -> Snapshot {
        let mut cumulative = [0u64; BUCKETS];
        let mut total = 0u64;
        for (slot, count) in cumulative.iter_mut().zip(&self.counts) {
            total = total.wrapping_add(count.load(Ordering::Relaxed));
            *slot = total;
        }
        Snapshot {
            cumulative,
            count: total,
            sum_seconds: self.sum_ns.load(Ordering::Relaxed) as f64 / 1e9,
        }
    }
}

/// A histogram read at one moment.
#[derive(Debug, Clone, PartialEq)]
pub struct Snapshot {
    /// Observations at or below each bound, then all of them (`+Inf`).
    pub cumulative: [u64; BUCKETS],
    /// All observations.
    pub count: u64,
    /// Their sum in seconds.
    pub sum_seconds: f64,
}

/// Writes a metric family's `# HELP` and `# TYPE` lines.
pub fn write_header(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

/// Writes a metric with one sample and no labels, header included.
pub fn write_single(out: &mut String, name: &str, kind: &str, help: &str, value: impl Display) {
    write_header(out, name, kind, help);
    let _ = writeln!(out, "{name} {value}");
}

/// Writes one histogram's `_bucket`, `_sum` and `_count` samples (the header is the
/// caller's, once per family). `labels` is `key="value"` pairs joined by commas, or empty.
pub fn write_histogram(out: &mut String, name: &str, labels: &str, histogram: &Histogram) {
    let snapshot = histogram.snapshot();
    let sep = if labels.is_empty() { "" } else { "," };
    for ((le, _), count) in BOUNDS.iter().zip(&snapshot.cumulative) {
        let _ = writeln!(out, "{name}_bucket{{{labels}{sep}le=\"{le}\"}} {count}");
    }
    let _ = writeln!(
        out,
        "{name}_bucket{{{labels}{sep}le=\"+Inf\"}} {}",
        snapshot.count
    );
    let braces = |labels: &str| {
        if labels.is_empty() {
            String::new()
        } else {
            format!("{{{labels}}}")
        }
    };
    let _ = writeln!(out, "{name}_sum{} {}", braces(labels), snapshot.sum_seconds);
    let _ = writeln!(out, "{name}_count{} {}", braces(labels), snapshot.count);
}

/// A label value as the text format needs it: backslash, double quote and newline escaped.
pub fn escape_label(value: &str) -> Cow<'_, str> {
    if !value.contains(['\\', '"', '\n']) {
        return Cow::Borrowed(value);
    }
    let mut escaped = String::with_capacity(value.len() + 2);
    for c in value.chars() {
        match c {
            '\\' => escaped.push_str("\\\\"),
            '"' => escaped.push_str("\\\""),
            '\n' => escaped.push_str("\\n"),
            c => escaped.push(c),
        }
    }
    Cow::Owned(escaped)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn bounds_ascend_and_their_labels_are_their_values() {
        for pair in BOUNDS.windows(2) {
            assert!(pair[0].1 < pair[1].1, "{pair:?}");
        }
        for (le, ns) in BOUNDS {
            let seconds: f64 = le.parse().expect(le);
            assert!(
                (seconds * 1e9 - ns as f64).abs() < 1e-3,
                "{le} is not {ns} ns"
            );
        }
    }

    #[test]
    fn an_observation_lands_in_the_first_bucket_whose_bound_it_does_not_exceed() {
        let h = Histogram::new();
        h.observe(Duration::ZERO);
        h.observe(Duration::from_micros(10));
        h.observe(Duration::from_nanos(10_001));
        h.observe(ms(1));
        h.observe(ms(700));
        h.observe(Duration::from_secs(11));
        h.observe(Duration::MAX);
        let s = h.snapshot();
        let at = |le: &str| {
            let i = BOUNDS.iter().position(|(l, _)| *l == le).expect(le);
            s.cumulative[i]
        };
        assert_eq!(at("1e-05"), 2, "0 and exactly 10 µs");
        assert_eq!(at("2.5e-05"), 3);
        assert_eq!(at("0.0005"), 3);
        assert_eq!(at("0.001"), 4, "exactly 1 ms");
        assert_eq!(at("0.5"), 4);
        assert_eq!(at("1"), 5);
        assert_eq!(at("10"), 5);
        assert_eq!(s.cumulative[BOUNDS.len()], 7, "+Inf holds everything");
        assert_eq!(s.count, 7);
        assert_eq!(h.count(), 7);
        assert!(s.cumulative.windows(2).all(|w| w[0] <= w[1]), "cumulative");
    }

    #[test]
    fn the_sum_is_in_seconds() {
        let h = Histogram::new();
        h.observe(ms(250));
        h.observe(ms(1500));
        let s = h.snapshot();
        assert!((s.sum_seconds - 1.75).abs() < 1e-9, "{}", s.sum_seconds);
    }

    #[test]
    fn observations_from_many_threads_are_all_counted() {
        let h = std::sync::Arc::new(Histogram::new());
        let threads: Vec<_> = (0..4)
            .map(|t| {
                let h = std::sync::Arc::clone(&h);
                std::thread::spawn(move || {
                    for i in 0..10_000u64 {
                        h.observe(Duration::from_micros((i * 7 + t) % 20_000));
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().expect("thread");
        }
        assert_eq!(h.count(), 40_000);
    }

    #[test]
    fn renders_buckets_sum_and_count_with_and_without_labels() {
        let h = Histogram::new();
        h.observe(ms(3));
        let mut out = String::new();
        write_header(&mut out, "spate_x_seconds", "histogram", "X.");
        write_histogram(&mut out, "spate_x_seconds", "api=\"Produce\"", &h);
        write_histogram(&mut out, "spate_y_seconds", "", &h);
        expect_lines(
            &out,
            &[
                "# HELP spate_x_seconds X.",
                "# TYPE spate_x_seconds histogram",
                "spate_x_seconds_bucket{api=\"Produce\",le=\"0.0025\"} 0",
                "spate_x_seconds_bucket{api=\"Produce\",le=\"0.005\"} 1",
                "spate_x_seconds_bucket{api=\"Produce\",le=\"+Inf\"} 1",
                "spate_x_seconds_sum{api=\"Produce\"} 0.003",
                "spate_x_seconds_count{api=\"Produce\"} 1",
                "spate_y_seconds_bucket{le=\"1e-05\"} 0",
                "spate_y_seconds_bucket{le=\"+Inf\"} 1",
                "spate_y_seconds_sum 0.003",
                "spate_y_seconds_count 1",
            ],
        );
        assert_eq!(
            out.lines()
                .filter(|l| l.starts_with("spate_y_seconds_bucket"))
                .count(),
            BOUNDS.len() + 1
        );
    }

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(escape_label("orders"), "orders");
        assert!(matches!(escape_label("orders"), Cow::Borrowed(_)));
        assert_eq!(escape_label("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }

    fn expect_lines(out: &str, want: &[&str]) {
        let lines: Vec<&str> = out.lines().collect();
        for line in want {
            assert!(lines.contains(line), "missing {line:?} in\n{out}");
        }
    }
}
