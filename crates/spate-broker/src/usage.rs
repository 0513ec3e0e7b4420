//! Usage metering: bytes and records in and out, and requests, per principal and topic, in
//! hourly buckets, kept in the internal compacted topic `__usage` so a restart does not reset a
//! billing period.
//!
//! The produce and fetch paths add to the current hour's counters of (principal, topic);
//! requests count under (principal, no topic). [`Broker::run_usage`] writes the buckets that
//! changed every few seconds (and at shutdown) as one record per (hour, principal, topic) with
//! the bucket's totals, so compaction keeps exactly the latest totals; [`Broker::open`] replays
//! them. A crash loses at most the last flush interval of counts. Storage bytes per topic are a
//! gauge read from the logs when asked.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

use crate::Broker;
use crate::error::BrokerError;

/// The internal topic usage buckets live in.
pub const USAGE_TOPIC: &str = "__usage";

/// Length of one bucket: an hour, the unit usage is reported and billed in.
pub const BUCKET_MS: i64 = 3_600_000;

/// How often changed buckets are written.
const FLUSH_INTERVAL: Duration = Duration::from_secs(5);

/// Version of the stored key format.
const KEY_VERSION: u32 = 1;

/// What one principal did to one topic in one hour (or, with no topic, its requests).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counters {
    /// Record-batch bytes produced.
    pub bytes_in: u64,
    /// Record-batch bytes fetched.
    pub bytes_out: u64,
    /// Records produced.
    pub records_in: u64,
    /// Records fetched.
    pub records_out: u64,
    /// Requests made (counted under no topic).
    pub requests: u64,
}

impl Counters {
    /// Adds `other` to these.
    pub fn add(&mut self, other: &Counters) {
        self.bytes_in += other.bytes_in;
        self.bytes_out += other.bytes_out;
        self.records_in += other.records_in;
        self.records_out += other.records_out;
        self.requests += other.requests;
    }
}

/// One bucket's totals, as [`Broker::usage`] returns them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsageRow {
    /// Start of the hour, ms since the epoch.
    pub hour_ms: i64,
    /// `User:alice`.
    pub principal: Arc<str>,
    /// The topic, or empty for requests.
    pub topic: Arc<str>,
    /// The counts.
    pub counters: Counters,
}

#[derive(Serialize, Deserialize)]
struct StoredKey {
    version: u32,
    hour_ms: i64,
    principal: String,
    topic: String,
}

type BucketKey = (i64, Arc<str>, Arc<str>);

/// The counters of one (hour, principal), by topic; the flag says changed since the last flush.
type Topics = HashMap<Arc<str>, (Counters, bool)>;

/// The counters, by bucket.
#[derive(Default)]
pub(crate) struct Usage {
    buckets: Mutex<HashMap<(i64, Arc<str>), Topics>>,
}

impl Usage {
    fn add(&self, now_ms: i64, principal: &Arc<str>, topic: &str, counters: Counters) {
        let hour = now_ms - now_ms.rem_euclid(BUCKET_MS);
        let mut buckets = self.buckets.lock();
        let topics = buckets.entry((hour, Arc::clone(principal))).or_default();
        // The topic name is copied only for a new bucket.
        let entry = match topics.get_mut(topic) {
            Some(entry) => entry,
            None => topics.entry(Arc::from(topic)).or_default(),
        };
        entry.0.add(&counters);
        entry.1 = true;
    }

    fn insert(&self, (hour, principal, topic): BucketKey, counters: Counters) {
        self.buckets
            .lock()
            .entry((hour, principal))
            .or_default()
            .insert(topic, (counters, false));
    }

    /// Every bucket: key, counters, changed since the last flush.
    fn rows(&self) -> Vec<(BucketKey, Counters, bool)> {
        let buckets = self.buckets.lock();
        buckets
            .iter()
            .flat_map(|((hour, principal), topics)| {
                topics.iter().map(|(topic, (counters, dirty))| {
                    (
                        (*hour, Arc::clone(principal), Arc::clone(topic)),
                        *counters,
                        *dirty,
                    )
                })
            })
            .collect()
    }

    /// The changed buckets, marked clean.
    fn take_dirty(&self) -> Vec<(BucketKey, Counters)> {
        let mut buckets = self.buckets.lock();
        let mut dirty = Vec::new();
        for ((hour, principal), topics) in buckets.iter_mut() {
            for (topic, (counters, changed)) in topics.iter_mut().filter(|(_, (_, c))| *c) {
                *changed = false;
                dirty.push(((*hour, Arc::clone(principal), Arc::clone(topic)), *counters));
            }
        }
        dirty
    }

    /// Marks buckets changed again after a failed write.
    fn mark_dirty(&self, keys: &[(BucketKey, Counters)]) {
        let mut buckets = self.buckets.lock();
        for ((hour, principal, topic), _) in keys {
            if let Some(entry) = buckets
                .get_mut(&(*hour, Arc::clone(principal)))
                .and_then(|topics| topics.get_mut(topic))
            {
                entry.1 = true;
            }
        }
    }
}

impl Broker {
    /// Counts records `principal` produced to `topic`.
    pub(crate) fn meter_produce(
        &self,
        principal: &Arc<str>,
        topic: &str,
        bytes: usize,
        records: u64,
    ) {
        let counters = Counters {
            bytes_in: bytes as u64,
            records_in: records,
            ..Counters::default()
        };
        self.usage.add(self.now_ms(), principal, topic, counters);
    }

    /// Counts records `principal` fetched from `topic`.
    pub(crate) fn meter_fetch(
        &self,
        principal: &Arc<str>,
        topic: &str,
        bytes: usize,
        records: u64,
    ) {
        let counters = Counters {
            bytes_out: bytes as u64,
            records_out: records,
            ..Counters::default()
        };
        self.usage.add(self.now_ms(), principal, topic, counters);
    }

    /// Counts one request by `principal`.
    pub(crate) fn meter_request(&self, principal: &Arc<str>) {
        let counters = Counters {
            requests: 1,
            ..Counters::default()
        };
        self.usage.add(self.now_ms(), principal, "", counters);
    }

    /// The buckets whose hour overlaps `[from_ms, to_ms)`, in no particular order.
    pub fn usage(&self, from_ms: i64, to_ms: i64) -> Vec<UsageRow> {
        self.usage
            .rows()
            .into_iter()
            .filter(|((hour, _, _), _, _)| *hour + BUCKET_MS > from_ms && *hour < to_ms)
            .map(|((hour_ms, principal, topic), counters, _)| UsageRow {
                hour_ms,
                principal,
                topic,
                counters,
            })
            .collect()
    }

    /// Bytes on disk per topic (every partition's segments).
    pub fn storage_bytes(&self) -> Vec<(String, u64)> {
        self.topics
            .list()
            .into_iter()
            .map(|topic| {
                let bytes = topic.partitions().iter().map(|p| p.log.size_bytes()).sum();
                (topic.name.clone(), bytes)
            })
            .collect()
    }

    /// Rebuilds the buckets from `__usage` (created at the first write). Blocking.
    pub(crate) fn load_usage(&self) -> Result<(), BrokerError> {
        self.replay_state_topic(USAGE_TOPIC, |offset, key, value| {
            let decoded = key
                .and_then(|k| serde_json::from_slice::<StoredKey>(k).ok())
                .filter(|k| k.version == KEY_VERSION)
                .zip(value.and_then(|v| serde_json::from_slice::<Counters>(v).ok()));
            match decoded {
                Some((key, counters)) => self.usage.insert(
                    (key.hour_ms, key.principal.into(), key.topic.into()),
                    counters,
                ),
                None => {
                    tracing::warn!(
                        topic = USAGE_TOPIC,
                        offset,
                        "skipped an unreadable usage record"
                    )
                }
            }
        })
    }

    /// Writes changed buckets to `__usage` every few seconds until `shutdown` resolves, then
    /// once more.
    pub async fn run_usage(self: Arc<Self>, shutdown: impl std::future::Future<Output = ()>) {
        tokio::pin!(shutdown);
        let mut ticks = tokio::time::interval(FLUSH_INTERVAL);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let stopping = tokio::select! {
                _ = &mut shutdown => true,
                _ = ticks.tick() => false,
            };
            self.flush_usage().await;
            if stopping {
                return;
            }
        }
    }

    async fn flush_usage(self: &Arc<Self>) {
        let dirty = self.usage.take_dirty();
        if dirty.is_empty() {
            return;
        }
        let records: Vec<(Vec<u8>, Option<Vec<u8>>)> = dirty
            .iter()
            .filter_map(|((hour, principal, topic), counters)| {
                let key = serde_json::to_vec(&StoredKey {
                    version: KEY_VERSION,
                    hour_ms: *hour,
                    principal: principal.to_string(),
                    topic: topic.to_string(),
                })
                .ok()?;
                Some((key, Some(serde_json::to_vec(counters).ok()?)))
            })
            .collect();
        if let Err(err) = self.append_state_records(USAGE_TOPIC, &records).await {
            tracing::error!(error = %err, buckets = records.len(), "could not store usage; will retry");
            self.usage.mark_dirty(&dirty);
        }
    }
}

/// The number of records in the whole batches of `records` (a fetch may end with a partial
/// batch, which is not counted).
pub(crate) fn record_count(records: &[u8]) -> u64 {
    let mut rest = records;
    let mut count = 0u64;
    while let Ok(header) = spate_log::BatchHeader::parse(rest) {
        if header.total_len() > rest.len() {
            break;
        }
        count += u64::try_from(header.record_count).unwrap_or(0);
        rest = &rest[header.total_len()..];
    }
    count
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_land_in_hourly_buckets_and_ranges_select_overlapping_hours() {
        let usage = Usage::default();
        let alice: Arc<str> = Arc::from("User:alice");
        let hour = 5 * BUCKET_MS;
        let produced = Counters {
            bytes_in: 100,
            records_in: 2,
            ..Counters::default()
        };
        usage.add(hour + 10, &alice, "orders", produced);
        usage.add(hour + BUCKET_MS - 1, &alice, "orders", produced);
        usage.add(hour + BUCKET_MS, &alice, "orders", produced);
        let rows = usage.rows();
        assert_eq!(rows.len(), 2, "two hours");
        let first = rows
            .iter()
            .find(|(key, _, _)| key.0 == hour)
            .expect("first hour");
        assert_eq!(
            (first.1.bytes_in, first.1.records_in, first.2),
            (200, 4, true)
        );
        let dirty = usage.take_dirty();
        assert_eq!(dirty.len(), 2);
        assert!(usage.take_dirty().is_empty(), "taken buckets are clean");
        usage.mark_dirty(&dirty[..1]);
        assert_eq!(usage.take_dirty().len(), 1);
    }

    #[test]
    fn record_count_counts_whole_batches_only() {
        let mut builder = spate_log::BatchBuilder::new(0, 0);
        builder.push(0, None, Some(b"a"));
        builder.push(0, None, Some(b"b"));
        let batch = builder.build().expect("batch");
        let mut two = batch.to_vec();
        two.extend_from_slice(&batch);
        assert_eq!(record_count(&two), 4);
        assert_eq!(
            record_count(&two[..two.len() - 3]),
            2,
            "a torn last batch is not counted"
        );
        assert_eq!(record_count(&[]), 0);
    }
}
