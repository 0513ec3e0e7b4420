//! Background upkeep: retention, compaction and `flush.ms`, off the async workers.

use std::sync::Arc;
use std::time::Duration;

use crate::Broker;

/// How often `flush.ms` deadlines are checked.
const FLUSH_CHECK_INTERVAL: Duration = Duration::from_millis(100);

pub(crate) async fn run(
    broker: Arc<Broker>,
    interval_ms: u64,
    shutdown: impl std::future::Future<Output = ()>,
) {
    tokio::pin!(shutdown);
    let mut retention = tokio::time::interval(Duration::from_millis(interval_ms.max(1)));
    retention.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut flush = tokio::time::interval(FLUSH_CHECK_INTERVAL);
    flush.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        tokio::select! {
            _ = &mut shutdown => return,
            _ = flush.tick() => {
                broker.request_due_flushes();
                broker.tick_groups().await;
                broker.tick_transactions().await;
            }
            _ = retention.tick() => {
                let worker = Arc::clone(&broker);
                if let Err(err) = tokio::task::spawn_blocking(move || worker.clean_and_retain()).await {
                    tracing::error!(error = %err, "retention task failed");
                }
            }
        }
    }
}

impl Broker {
    fn request_due_flushes(&self) {
        let now = self.now_ms();
        for topic in self.topics.list() {
            for partition in topic.partitions() {
                if partition.log.flush_due(now) {
                    self.syncer.request(&partition.log);
                }
            }
        }
    }

    /// One pass of retention and compaction over every partition; blocking.
    pub fn clean_and_retain(&self) {
        for topic in self.topics.list() {
            for partition in topic.partitions() {
                let now = self.now_ms();
                match partition.log.enforce_retention(now) {
                    Ok(report) if report.deleted_segments > 0 => tracing::info!(
                        topic = %partition.topic,
                        partition = partition.index,
                        segments = report.deleted_segments,
                        bytes = report.deleted_bytes,
                        log_start_offset = partition.log.offsets().log_start_offset,
                        "retention deleted old segments"
                    ),
                    Ok(_) => {}
                    Err(err) => {
                        tracing::error!(topic = %partition.topic, partition = partition.index, error = %err, "retention failed")
                    }
                }
                if let Err(err) = spate_log::clean(&partition.log, now) {
                    tracing::error!(topic = %partition.topic, partition = partition.index, error = %err, "compaction failed");
                }
            }
        }
    }
}
