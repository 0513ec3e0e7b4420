//! A batching producer for one topic.
//!
//! Records are buffered per partition and sent as one record batch per partition, with all
//! ready partitions of one leader in one Produce request. A partition's buffer is sent when it
//! reaches `batch_size_bytes` or when the owner calls [`Producer::send_buffered`] (its linger
//! timer) or [`Producer::flush`]. At most `max_in_flight_requests` requests are outstanding;
//! beyond that `send` waits, so memory stays bounded by the batch size times the in-flight
//! limit. Partition choice follows the Java client (see `partitioner.rs`).
//!
//! Batches that fail with a retriable error the broker raised before writing anything
//! (NOT_LEADER_OR_FOLLOWER, LEADER_NOT_AVAILABLE, UNKNOWN_TOPIC_OR_PARTITION, a connection
//! that could not be opened) are re-sent after a metadata refresh, up to `max_attempts` in
//! all. Other failures are reported through [`Producer::take_failures`]. The producer is not
//! idempotent: a retry after a timeout could duplicate, so timeouts are not retried.

use std::collections::{BTreeMap, HashMap};
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::FutureExt;
use futures::stream::{FuturesUnordered, StreamExt};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{ApiKey, ProduceRequest, ProduceResponse, TopicName};
use kafka_protocol::protocol::{Message, StrBytes};
use kafka_protocol::records::Compression;

use crate::client::{Client, TopicMetadata};
use crate::connection::PendingResponse;
use crate::error::{Error, KafkaError, Result, code};
use crate::partitioner::{StickyPartitioner, partition_for_key};
use crate::records::{ProducerRecord, encode_batch};

/// How many replicas must have a batch before the broker answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Acks {
    /// All in-sync replicas (`acks=all`, `-1`).
    All,
    /// The leader only (`acks=1`).
    Leader,
    /// No answer at all (`acks=0`): failures on the broker go unnoticed.
    None,
}

impl Acks {
    fn wire(self) -> i16 {
        match self {
            Acks::All => -1,
            Acks::Leader => 1,
            Acks::None => 0,
        }
    }
}

/// Producer settings.
#[derive(Debug, Clone)]
pub struct ProducerConfig {
    /// Acknowledgement level.
    pub acks: Acks,
    /// Codec for record batches.
    pub compression: Compression,
    /// A partition's buffer is sent once its records reach this many (uncompressed) bytes.
    pub batch_size_bytes: usize,
    /// Produce requests outstanding at most, over all brokers.
    pub max_in_flight_requests: usize,
    /// Sends of one batch at most (1 = no retry).
    pub max_attempts: usize,
    /// Ask the broker to create the topic if it does not exist.
    pub allow_auto_create: bool,
    /// How long the broker may take to replicate (`timeout_ms` of the request).
    pub timeout: Duration,
}

impl Default for ProducerConfig {
    fn default() -> Self {
        ProducerConfig {
            acks: Acks::All,
            compression: Compression::None,
            batch_size_bytes: 256 * 1024,
            max_in_flight_requests: 5,
            max_attempts: 3,
            allow_auto_create: true,
            timeout: Duration::from_secs(30),
        }
    }
}

/// What the brokers acknowledged for one partition.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AckedPartition {
    /// Records acknowledged.
    pub records: u64,
    /// Offset of the last record acknowledged (the highest), `None` with `acks=0` (no answer
    /// carries offsets).
    pub last_offset: Option<i64>,
}

/// Records that could not be produced.
#[derive(Debug, Clone)]
pub struct ProduceFailure {
    /// The partition.
    pub partition: i32,
    /// How many records the failed batch held.
    pub record_count: usize,
    /// Why.
    pub error: Arc<Error>,
}

#[derive(Default)]
struct Buffer {
    records: Vec<ProducerRecord>,
    size_bytes: usize,
}

struct ReadyBatch {
    partition: i32,
    record_count: usize,
    data: Bytes,
    attempt: usize,
}

struct Outcome {
    leader: i32,
    batches: Vec<ReadyBatch>,
    /// Per-partition error of the answer, or the request's error.
    result: Result<HashMap<i32, PartitionAnswer>>,
}

type OutcomeFuture = Pin<Box<dyn std::future::Future<Output = Outcome> + Send>>;

/// A producer for one topic. Create with [`Producer::new`], then `send`, then `flush`.
pub struct Producer {
    client: Client,
    topic: TopicMetadata,
    config: ProducerConfig,
    buffers: BTreeMap<i32, Buffer>,
    sticky: StickyPartitioner,
    in_flight: FuturesUnordered<OutcomeFuture>,
    retries: Vec<ReadyBatch>,
    failures: Vec<ProduceFailure>,
    acked_records: u64,
    acked_partitions: BTreeMap<i32, AckedPartition>,
    failed_records: u64,
}

impl std::fmt::Debug for Producer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Producer")
            .field("topic", &self.topic.name)
            .field("in_flight", &self.in_flight.len())
            .finish_non_exhaustive()
    }
}

impl Producer {
    /// A producer for `topic` (created by the broker first if it allows and
    /// `allow_auto_create` is set).
    pub async fn new(client: Client, topic: &str, config: ProducerConfig) -> Result<Producer> {
        if config.batch_size_bytes == 0
            || config.max_in_flight_requests == 0
            || config.max_attempts == 0
        {
            return Err(Error::InvalidArgument(
                "batch size, in-flight limit and attempts must be positive".to_string(),
            ));
        }
        let metadata = client
            .topic_metadata(topic, config.allow_auto_create)
            .await?;
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        let sticky = StickyPartitioner::new(seed, metadata.partitions.len().max(1) as i32);
        Ok(Producer {
            client,
            topic: metadata,
            config,
            buffers: BTreeMap::new(),
            sticky,
            in_flight: FuturesUnordered::new(),
            retries: Vec::new(),
            failures: Vec::new(),
            acked_records: 0,
            acked_partitions: BTreeMap::new(),
            failed_records: 0,
        })
    }

    /// Partitions of the topic.
    pub fn partition_count(&self) -> i32 {
        self.topic.partitions.len() as i32
    }

    /// Buffers a record for `partition`, or for the partition its key (or the sticky
    /// partitioner) picks. May send a full batch, and wait for a request slot.
    pub async fn send(&mut self, record: ProducerRecord, partition: Option<i32>) -> Result<()> {
        let partition_count = self.partition_count();
        if partition_count == 0 {
            return Err(Error::UnknownTopic {
                topic: self.topic.name.clone(),
            });
        }
        let partition = match (partition, &record.key) {
            (Some(p), _) => {
                if self.topic.partition(p).is_none() {
                    return Err(Error::UnknownPartition {
                        topic: self.topic.name.clone(),
                        partition: p,
                        partition_count: partition_count as usize,
                    });
                }
                p
            }
            (None, Some(key)) => partition_for_key(key, partition_count),
            (None, None) => self.sticky.partition(),
        };
        let buffer = self.buffers.entry(partition).or_default();
        buffer.size_bytes += record.estimated_size_bytes();
        buffer.records.push(record);
        if buffer.size_bytes >= self.config.batch_size_bytes {
            self.dispatch(&[partition]).await;
            self.resend_retries().await;
        }
        Ok(())
    }

    /// Whether records are buffered and not yet sent.
    pub fn has_buffered(&self) -> bool {
        self.buffers.values().any(|b| !b.records.is_empty())
    }

    /// Whether requests are outstanding.
    pub fn has_in_flight(&self) -> bool {
        !self.in_flight.is_empty()
    }

    /// Sends every buffered record without waiting for the answers (the linger timer).
    pub async fn send_buffered(&mut self) {
        let partitions: Vec<i32> = self.buffers.keys().copied().collect();
        self.dispatch(&partitions).await;
        self.resend_retries().await;
    }

    /// Waits for one outstanding request and handles its answer (retries included). Returns
    /// immediately when nothing is outstanding.
    pub async fn complete_one(&mut self) {
        self.handle_next().await;
        self.resend_retries().await;
    }

    /// Sends everything buffered and waits for every answer.
    pub async fn flush(&mut self) {
        self.send_buffered().await;
        while !self.in_flight.is_empty() || !self.retries.is_empty() {
            self.handle_next().await;
            self.resend_retries().await;
        }
    }

    /// Failures since the last call.
    pub fn take_failures(&mut self) -> Vec<ProduceFailure> {
        std::mem::take(&mut self.failures)
    }

    /// Records the brokers acknowledged (with `acks=0`: written to the socket).
    pub fn acked_records(&self) -> u64 {
        self.acked_records
    }

    /// Acknowledged records per partition, with the last offset of each.
    pub fn acked_partitions(&self) -> &BTreeMap<i32, AckedPartition> {
        &self.acked_partitions
    }

    /// Records that failed.
    pub fn failed_records(&self) -> u64 {
        self.failed_records
    }

    /// Encodes the buffers of `partitions` and sends them, one request per leader.
    async fn dispatch(&mut self, partitions: &[i32]) {
        let mut ready = Vec::new();
        for &partition in partitions {
            let Some(buffer) = self.buffers.remove(&partition) else {
                continue;
            };
            if buffer.records.is_empty() {
                continue;
            }
            if partition == self.sticky.partition() {
                self.sticky.next_batch(self.partition_count().max(1));
            }
            let record_count = buffer.records.len();
            match encode_batch(&buffer.records, self.config.compression) {
                Ok(data) => ready.push(ReadyBatch {
                    partition,
                    record_count,
                    data,
                    attempt: 1,
                }),
                Err(error) => self.fail(partition, record_count, Arc::new(error)),
            }
        }
        self.submit(ready).await;
    }

    async fn submit(&mut self, batches: Vec<ReadyBatch>) {
        let mut by_leader: BTreeMap<i32, Vec<ReadyBatch>> = BTreeMap::new();
        for batch in batches {
            match self.topic.leader_of(batch.partition) {
                Ok(leader) => by_leader.entry(leader).or_default().push(batch),
                Err(error) => self.retry_or_fail(batch, Arc::new(error)),
            }
        }
        for (leader, batches) in by_leader {
            while self.in_flight.len() >= self.config.max_in_flight_requests {
                self.handle_next().await;
            }
            // The request is written here, in dispatch order; only the wait for its answer
            // runs concurrently. So batches of one partition reach the broker in order.
            match self.start_request(leader, &batches).await {
                Ok(Some(pending)) => {
                    self.in_flight.push(Box::pin(async move {
                        let result = pending.response().await.map(partition_errors);
                        Outcome {
                            leader,
                            batches,
                            result,
                        }
                    }));
                }
                Ok(None) => {
                    for batch in &batches {
                        self.acked(batch.partition, batch.record_count, None);
                    }
                }
                Err(error) => self.handle(Outcome {
                    leader,
                    batches,
                    result: Err(error),
                }),
            }
        }
    }

    /// Writes one Produce request with `batches` to `leader`; `None` with `acks=0`, which
    /// has no answer.
    async fn start_request(
        &self,
        leader: i32,
        batches: &[ReadyBatch],
    ) -> Result<Option<PendingResponse<ProduceRequest>>> {
        let conn = self.client.broker(leader).await?;
        // v13 names topics by id only; without an id, stay at v12.
        let max = if self.topic.topic_id.is_nil() {
            12
        } else {
            ProduceRequest::VERSIONS.max
        };
        let version = conn.version_within(ApiKey::Produce, ProduceRequest::VERSIONS.min, max)?;
        let partitions = batches
            .iter()
            .map(|b| {
                PartitionProduceData::default()
                    .with_index(b.partition)
                    .with_records(Some(b.data.clone()))
            })
            .collect();
        let topic_data = TopicProduceData::default().with_partition_data(partitions);
        let topic_data = if version >= 13 {
            topic_data.with_topic_id(self.topic.topic_id)
        } else {
            topic_data.with_name(TopicName(StrBytes::from_string(self.topic.name.clone())))
        };
        let request = ProduceRequest::default()
            .with_acks(self.config.acks.wire())
            .with_timeout_ms(self.config.timeout.as_millis().min(i32::MAX as u128) as i32)
            .with_topic_data(vec![topic_data]);
        if self.config.acks == Acks::None {
            conn.send_without_response(&request, version).await?;
            return Ok(None);
        }
        let timeout = self.client.config().timeouts.request + self.config.timeout;
        Ok(Some(conn.start(&request, version, timeout).await?))
    }

    /// Handles the answers that have already arrived, without waiting for others.
    pub async fn complete_ready(&mut self) {
        while let Some(Some(outcome)) = self.in_flight.next().now_or_never() {
            self.handle(outcome);
        }
        self.resend_retries().await;
    }

    async fn handle_next(&mut self) {
        if let Some(outcome) = self.in_flight.next().await {
            self.handle(outcome);
        }
    }

    fn handle(&mut self, outcome: Outcome) {
        match outcome.result {
            Ok(errors) => {
                for batch in outcome.batches {
                    match errors.get(&batch.partition) {
                        Some((None, base_offset)) => {
                            let last = (*base_offset >= 0)
                                .then(|| base_offset + batch.record_count as i64 - 1);
                            self.acked(batch.partition, batch.record_count, last);
                        }
                        Some((Some(error), _)) => {
                            let partition = batch.partition;
                            let error = Arc::new(Error::Kafka {
                                context: format!("produce to {}-{partition}", self.topic.name),
                                error: error.clone(),
                            });
                            self.retry_or_fail(batch, error);
                        }
                        None => {
                            let error = Arc::new(Error::Kafka {
                                context: format!(
                                    "produce to {}-{}",
                                    self.topic.name, batch.partition
                                ),
                                error: KafkaError {
                                    code: code::UNKNOWN_TOPIC_OR_PARTITION,
                                    message: Some(
                                        "the broker did not answer for this partition".to_string(),
                                    ),
                                },
                            });
                            self.fail(batch.partition, batch.record_count, error);
                        }
                    }
                }
            }
            Err(error) => {
                let error = Arc::new(error);
                if matches!(
                    *error,
                    Error::ConnectionClosed { .. } | Error::RequestTimeout { .. }
                ) {
                    self.client.drop_connection(outcome.leader);
                }
                for batch in outcome.batches {
                    self.retry_or_fail(batch, Arc::clone(&error));
                }
            }
        }
    }

    /// Queues `batch` for another attempt if the error says nothing was written, else
    /// records the failure.
    fn retry_or_fail(&mut self, batch: ReadyBatch, error: Arc<Error>) {
        let nothing_written = match &*error {
            Error::Kafka { error, .. } => matches!(
                error.code,
                code::NOT_LEADER_OR_FOLLOWER
                    | code::LEADER_NOT_AVAILABLE
                    | code::UNKNOWN_TOPIC_OR_PARTITION
                    | code::UNKNOWN_TOPIC_ID
            ),
            Error::NoLeader { .. }
            | Error::UnknownBroker { .. }
            | Error::Connect { .. }
            | Error::ConnectTimeout { .. } => true,
            _ => false,
        };
        if nothing_written && batch.attempt < self.config.max_attempts {
            tracing::debug!(partition = batch.partition, error = %error, "retrying batch");
            self.retries.push(ReadyBatch {
                attempt: batch.attempt + 1,
                ..batch
            });
        } else {
            self.fail(batch.partition, batch.record_count, error);
        }
    }

    fn acked(&mut self, partition: i32, record_count: usize, last_offset: Option<i64>) {
        self.acked_records += record_count as u64;
        let acked = self.acked_partitions.entry(partition).or_default();
        acked.records += record_count as u64;
        acked.last_offset = acked.last_offset.max(last_offset);
    }

    fn fail(&mut self, partition: i32, record_count: usize, error: Arc<Error>) {
        self.failed_records += record_count as u64;
        self.failures.push(ProduceFailure {
            partition,
            record_count,
            error,
        });
    }

    /// Refreshes metadata and re-sends batches queued for retry.
    async fn resend_retries(&mut self) {
        while !self.retries.is_empty() {
            let batches = std::mem::take(&mut self.retries);
            let attempt = batches.iter().map(|b| b.attempt).max().unwrap_or(1);
            tokio::time::sleep(Duration::from_millis(100 * attempt as u64)).await;
            match self
                .client
                .topic_metadata(&self.topic.name, self.config.allow_auto_create)
                .await
            {
                Ok(metadata) => self.topic = metadata,
                Err(error) => {
                    let error = Arc::new(error);
                    for batch in batches {
                        self.retry_or_fail(batch, Arc::clone(&error));
                    }
                    continue;
                }
            }
            self.submit(batches).await;
        }
    }
}

/// A partition's error (with the broker's messages) or none, and the base offset of the batch.
type PartitionAnswer = (Option<KafkaError>, i64);

/// The answer of each partition in a Produce response.
fn partition_errors(response: ProduceResponse) -> HashMap<i32, PartitionAnswer> {
    let mut errors = HashMap::new();
    for topic_response in response.responses {
        for p in topic_response.partition_responses {
            let mut message = p.error_message.map(|m| m.to_string());
            if let Some(first) = p.record_errors.first() {
                let detail = first
                    .batch_index_error_message
                    .as_ref()
                    .map_or(String::new(), |m| format!(": {m}"));
                let record = format!("record {} of the batch{detail}", first.batch_index);
                message = Some(match message {
                    Some(m) => format!("{m} ({record})"),
                    None => record,
                });
            }
            errors.insert(
                p.index,
                (
                    KafkaError::from_code(p.error_code, message.as_deref()),
                    p.base_offset,
                ),
            );
        }
    }
    errors
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn acks_on_the_wire() {
        assert_eq!(Acks::All.wire(), -1);
        assert_eq!(Acks::Leader.wire(), 1);
        assert_eq!(Acks::None.wire(), 0);
    }
}
