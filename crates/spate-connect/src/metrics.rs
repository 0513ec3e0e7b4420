//! Connect's metrics in Prometheus' text format (`spate_connect_*`): per task, records and
//! bytes moved, records that failed and records dead-lettered, a source's lag (bytes or
//! records, where the task knows it), and the task's state; per
//! worker, rebalances. Served on the worker's REST listener at `/metrics` and, for the worker
//! `spate serve` runs, on the server's `/metrics` too. A sink's lag is its consumer group's
//! (`connect-<name>`), which the broker already reports per group. Recording is a relaxed
//! atomic add.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::Mutex;

/// One task's counters.
#[derive(Debug, Default)]
pub struct TaskMetrics {
    /// Records produced (source) or put (sink).
    pub records: AtomicU64,
    /// Key and value bytes of those records.
    pub bytes: AtomicU64,
    /// Records a converter, transform or the task failed on (tolerated or not).
    pub errors: AtomicU64,
    /// Records written to the dead letter queue.
    pub dlq_records: AtomicU64,
    /// A source's lag behind its system in bytes, plus one (0: not reported).
    source_lag: AtomicU64,
    /// A source's lag behind its system in records, plus one (0: not reported).
    source_lag_records: AtomicU64,
    state: Mutex<&'static str>,
}

impl TaskMetrics {
    /// Adds `records` records of `bytes` bytes.
    pub fn moved(&self, records: u64, bytes: u64) {
        self.records.fetch_add(records, Ordering::Relaxed);
        self.bytes.fetch_add(bytes, Ordering::Relaxed);
    }

    /// Sets how far a source is behind its system, in bytes.
    pub fn set_source_lag(&self, bytes: u64) {
        self.source_lag
            .store(bytes.saturating_add(1), Ordering::Relaxed);
    }

    /// Sets how far a source is behind its system, in records.
    pub fn set_source_lag_records(&self, records: u64) {
        self.source_lag_records
            .store(records.saturating_add(1), Ordering::Relaxed);
    }

    /// Sets the task's state as its status reports it.
    pub fn set_state(&self, state: &'static str) {
        *self.state.lock() = state;
    }
}

/// Tasks by (connector, task): their kind (`source` or `sink`) and counters.
type Tasks = BTreeMap<(String, usize), (&'static str, Arc<TaskMetrics>)>;

/// A worker's metrics.
#[derive(Debug, Default)]
pub struct ConnectMetrics {
    tasks: Mutex<Tasks>,
    /// Times the worker joined its group.
    pub rebalances: AtomicU64,
}

impl ConnectMetrics {
    /// The counters of task `task` of `connector` (`kind` source or sink), kept across its
    /// restarts.
    pub fn task(&self, connector: &str, task: usize, kind: &'static str) -> Arc<TaskMetrics> {
        let mut tasks = self.tasks.lock();
        let entry = tasks
            .entry((connector.to_string(), task))
            .or_insert_with(|| (kind, Arc::new(TaskMetrics::default())));
        Arc::clone(&entry.1)
    }

    /// Sets a known task's state.
    pub fn set_state(&self, connector: &str, task: usize, state: &'static str) {
        if let Some((_, metrics)) = self.tasks.lock().get(&(connector.to_string(), task)) {
            metrics.set_state(state);
        }
    }

    /// Forgets a task that no longer runs here.
    pub fn remove(&self, connector: &str, task: usize) {
        self.tasks.lock().remove(&(connector.to_string(), task));
    }

    /// Appends the metrics in Prometheus' text format.
    pub fn render(&self, out: &mut String) {
        let tasks = self.tasks.lock();
        type Field = fn(&TaskMetrics) -> u64;
        let counters: [(&str, &str, Field); 4] = [
            (
                "spate_connect_task_records_total",
                "Records a task produced (source) or put (sink).",
                |m| m.records.load(Ordering::Relaxed),
            ),
            (
                "spate_connect_task_bytes_total",
                "Key and value bytes of those records.",
                |m| m.bytes.load(Ordering::Relaxed),
            ),
            (
                "spate_connect_task_errors_total",
                "Records a converter, transform or the task failed on.",
                |m| m.errors.load(Ordering::Relaxed),
            ),
            (
                "spate_connect_task_dlq_records_total",
                "Records written to the dead letter queue.",
                |m| m.dlq_records.load(Ordering::Relaxed),
            ),
        ];
        for (name, help, value) in counters {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
            for ((connector, task), (kind, metrics)) in tasks.iter() {
                let _ = writeln!(
                    out,
                    "{name}{{connector=\"{}\",task=\"{task}\",type=\"{kind}\"}} {}",
                    escape(connector),
                    value(metrics)
                );
            }
        }
        let name = "spate_connect_task_running";
        let _ = writeln!(
            out,
            "# HELP {name} 1 when a task on this worker is RUNNING, else 0 (state label).\n# TYPE {name} gauge"
        );
        for ((connector, task), (kind, metrics)) in tasks.iter() {
            let state = *metrics.state.lock();
            let _ = writeln!(
                out,
                "{name}{{connector=\"{}\",task=\"{task}\",type=\"{kind}\",state=\"{state}\"}} {}",
                escape(connector),
                u8::from(state == "RUNNING")
            );
        }
        let name = "spate_connect_source_lag_bytes";
        let _ = writeln!(
            out,
            "# HELP {name} How far a source task is behind its system, in bytes (PostgreSQL CDC: WAL not yet confirmed).\n# TYPE {name} gauge"
        );
        for ((connector, task), (_, metrics)) in tasks.iter() {
            let lag = metrics.source_lag.load(Ordering::Relaxed);
            if lag > 0 {
                let _ = writeln!(
                    out,
                    "{name}{{connector=\"{}\",task=\"{task}\"}} {}",
                    escape(connector),
                    lag - 1
                );
            }
        }
        let name = "spate_connect_source_lag_records";
        let _ = writeln!(
            out,
            "# HELP {name} How far a source task is behind its system, in records (Mirror source: the source partitions' ends minus the next offsets to copy).\n# TYPE {name} gauge"
        );
        for ((connector, task), (_, metrics)) in tasks.iter() {
            let lag = metrics.source_lag_records.load(Ordering::Relaxed);
            if lag > 0 {
                let _ = writeln!(
                    out,
                    "{name}{{connector=\"{}\",task=\"{task}\"}} {}",
                    escape(connector),
                    lag - 1
                );
            }
        }
        let name = "spate_connect_rebalances_total";
        let _ = writeln!(
            out,
            "# HELP {name} Times this worker joined its worker group.\n# TYPE {name} counter\n{name} {}",
            self.rebalances.load(Ordering::Relaxed)
        );
    }
}

fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_per_task_with_escaped_labels() {
        let metrics = ConnectMetrics::default();
        let task = metrics.task("a\"b", 0, "sink");
        task.moved(3, 30);
        task.set_state("RUNNING");
        let mut out = String::new();
        metrics.render(&mut out);
        assert!(
            out.contains(
                r#"spate_connect_task_records_total{connector="a\"b",task="0",type="sink"} 3"#
            ),
            "{out}"
        );
        assert!(out.contains(
            r#"spate_connect_task_bytes_total{connector="a\"b",task="0",type="sink"} 30"#
        ));
        assert!(out.contains(
            r#"spate_connect_task_running{connector="a\"b",task="0",type="sink",state="RUNNING"} 1"#
        ));
    }
}
