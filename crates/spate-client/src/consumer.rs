//! Reading partitions of one topic from given offsets, without a consumer group.
//!
//! Each [`Consumer::poll`] sends one Fetch per partition leader (concurrently), long-polling
//! up to `max_wait`. Positions advance past every complete batch, so control records and
//! compacted gaps never stall reading. Fetch v13+ names the topic by id, older versions by
//! name. A partition whose leader moved is retried after a metadata refresh; if errors persist
//! for `max_consecutive_errors` polls the poll fails. OFFSET_OUT_OF_RANGE resets the position
//! to the log start or end, as `auto.offset.reset` does, and is reported to the caller.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::{ApiKey, FetchRequest, TopicName};
use kafka_protocol::protocol::{Message, StrBytes};

use crate::admin::OffsetSpec;
use crate::client::{Client, TopicMetadata};
use crate::error::{Error, KafkaError, Result, code};
use crate::records::{ConsumedRecord, PartitionRef, decode_fetched};

/// Where to go when a position falls outside the log (retention deleted it, or the log was
/// truncated).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OffsetReset {
    /// To the log start offset.
    Earliest,
    /// To the log end offset.
    Latest,
    /// Fail the poll.
    Fail,
}

/// Fetch settings.
#[derive(Debug, Clone)]
pub struct ConsumerConfig {
    /// Long-poll wait when no data is available.
    pub max_wait: Duration,
    /// Bytes per response at most (Kafka's `fetch.max.bytes`); one oversized batch may
    /// exceed it, as in Kafka.
    pub max_bytes: i32,
    /// Bytes per partition at most (`max.partition.fetch.bytes`).
    pub partition_max_bytes: i32,
    /// What OFFSET_OUT_OF_RANGE does.
    pub offset_reset: OffsetReset,
    /// Polls in a row with a retriable error before giving up.
    pub max_consecutive_errors: u32,
}

impl Default for ConsumerConfig {
    fn default() -> Self {
        ConsumerConfig {
            max_wait: Duration::from_millis(500),
            max_bytes: 16 * 1024 * 1024,
            partition_max_bytes: 1024 * 1024,
            offset_reset: OffsetReset::Earliest,
            max_consecutive_errors: 10,
        }
    }
}

/// What one poll returned for one partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionRecords {
    /// The partition.
    pub partition: i32,
    /// Records in offset order.
    pub records: Vec<ConsumedRecord>,
    /// The partition's high watermark as of this fetch (`-1` if not reported).
    pub high_watermark: i64,
}

/// Something the caller may want to tell the user about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConsumerEvent {
    /// A position was out of range and was reset.
    OffsetReset {
        /// The partition.
        partition: i32,
        /// The position that was out of range.
        from: i64,
        /// The new position.
        to: i64,
    },
}

/// The result of a poll.
#[derive(Debug, Default)]
pub struct Poll {
    /// Partitions that returned data or a high watermark, by partition.
    pub partitions: Vec<PartitionRecords>,
    /// Resets and other notices.
    pub events: Vec<ConsumerEvent>,
}

/// Reads a set of partitions of one topic.
pub struct Consumer {
    client: Client,
    topic: TopicMetadata,
    config: ConsumerConfig,
    positions: BTreeMap<i32, i64>,
    consecutive_errors: u32,
    last_error: Option<Error>,
}

impl std::fmt::Debug for Consumer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Consumer")
            .field("topic", &self.topic.name)
            .field("positions", &self.positions)
            .finish_non_exhaustive()
    }
}

/// One leader's answer: per partition, records and high watermark or an error.
type LeaderAnswer =
    std::result::Result<Vec<(i32, Result<PartitionRecords, KafkaError>, Option<i64>)>, Error>;

impl Consumer {
    /// A consumer of `positions` (partition to next offset) of `topic`.
    pub fn new(
        client: Client,
        topic: TopicMetadata,
        positions: BTreeMap<i32, i64>,
        config: ConsumerConfig,
    ) -> Consumer {
        Consumer {
            client,
            topic,
            config,
            positions,
            consecutive_errors: 0,
            last_error: None,
        }
    }

    /// Next offset to read per partition.
    pub fn positions(&self) -> &BTreeMap<i32, i64> {
        &self.positions
    }

    /// Stops reading `partition`.
    pub fn remove_partition(&mut self, partition: i32) {
        self.positions.remove(&partition);
    }

    /// Fetches once from every leader of the assigned partitions. Returns no partitions when
    /// none is assigned.
    pub async fn poll(&mut self) -> Result<Poll> {
        let mut poll = Poll::default();
        if self.positions.is_empty() {
            return Ok(poll);
        }
        let mut by_leader: BTreeMap<i32, Vec<(i32, i64)>> = BTreeMap::new();
        let mut need_refresh = false;
        for (&partition, &offset) in &self.positions {
            match self.topic.leader_of(partition) {
                Ok(leader) => by_leader
                    .entry(leader)
                    .or_default()
                    .push((partition, offset)),
                Err(error) => {
                    need_refresh = true;
                    self.last_error = Some(error);
                }
            }
        }
        let fetches = by_leader
            .into_iter()
            .map(|(leader, parts)| self.fetch_from(leader, parts));
        let answers = futures::future::join_all(fetches).await;
        let mut resets = Vec::new();
        for (leader, answer) in answers {
            match answer {
                Ok(partitions) => {
                    for (partition, result, next_offset) in partitions {
                        match result {
                            Ok(records) => {
                                if let Some(next) = next_offset {
                                    self.positions.insert(partition, next);
                                }
                                poll.partitions.push(records);
                            }
                            Err(error) if error.code == code::OFFSET_OUT_OF_RANGE => {
                                resets.push((partition, error));
                            }
                            Err(error) if error.is_retriable() => {
                                need_refresh = true;
                                self.last_error = Some(Error::Kafka {
                                    context: format!("fetch from {}-{partition}", self.topic.name),
                                    error,
                                });
                            }
                            Err(error) => {
                                return Err(Error::Kafka {
                                    context: format!("fetch from {}-{partition}", self.topic.name),
                                    error,
                                });
                            }
                        }
                    }
                }
                Err(error) if error.is_retriable() => {
                    self.client.drop_connection(leader);
                    need_refresh = true;
                    self.last_error = Some(error);
                }
                Err(error) => return Err(error),
            }
        }
        for (partition, error) in resets {
            poll.events.push(self.reset(partition, error).await?);
        }
        if need_refresh {
            self.consecutive_errors += 1;
            if self.consecutive_errors >= self.config.max_consecutive_errors {
                return Err(self.last_error.take().unwrap_or(Error::UnknownTopic {
                    topic: self.topic.name.clone(),
                }));
            }
            let backoff = Duration::from_millis(100 * u64::from(self.consecutive_errors.min(10)));
            tokio::time::sleep(backoff).await;
            match self.client.topic_metadata(&self.topic.name, false).await {
                Ok(metadata) => self.topic = metadata,
                Err(error) if error.is_retriable() => self.last_error = Some(error),
                Err(error) => return Err(error),
            }
        } else {
            self.consecutive_errors = 0;
        }
        poll.partitions.sort_by_key(|p| p.partition);
        Ok(poll)
    }

    async fn reset(&mut self, partition: i32, error: KafkaError) -> Result<ConsumerEvent> {
        let from = self.positions.get(&partition).copied().unwrap_or(-1);
        let spec = match self.config.offset_reset {
            OffsetReset::Earliest => OffsetSpec::Earliest,
            OffsetReset::Latest => OffsetSpec::Latest,
            OffsetReset::Fail => {
                return Err(Error::Kafka {
                    context: format!(
                        "fetch from {}-{partition} at offset {from}",
                        self.topic.name
                    ),
                    error,
                });
            }
        };
        let offsets = self
            .client
            .list_offsets(&self.topic, &[(partition, spec)])
            .await?;
        let to = offsets.get(&partition).and_then(|o| o.offset).unwrap_or(0);
        self.positions.insert(partition, to);
        Ok(ConsumerEvent::OffsetReset {
            partition,
            from,
            to,
        })
    }

    async fn fetch_from(&self, leader: i32, parts: Vec<(i32, i64)>) -> (i32, LeaderAnswer) {
        (leader, self.fetch_from_inner(leader, parts).await)
    }

    async fn fetch_from_inner(&self, leader: i32, parts: Vec<(i32, i64)>) -> LeaderAnswer {
        let conn = self.client.broker(leader).await?;
        // v13+ names the topic by id; without an id, stay at v12.
        let max = if self.topic.topic_id.is_nil() {
            12
        } else {
            FetchRequest::VERSIONS.max
        };
        let version = conn.version_within(ApiKey::Fetch, FetchRequest::VERSIONS.min, max)?;
        let partitions = parts
            .iter()
            .map(|&(partition, offset)| {
                FetchPartition::default()
                    .with_partition(partition)
                    .with_fetch_offset(offset)
                    .with_partition_max_bytes(self.config.partition_max_bytes)
            })
            .collect();
        let topic = FetchTopic::default().with_partitions(partitions);
        let topic = if version >= 13 {
            topic.with_topic_id(self.topic.topic_id)
        } else {
            topic.with_topic(TopicName(StrBytes::from_string(self.topic.name.clone())))
        };
        let max_wait_ms = self.config.max_wait.as_millis().min(i32::MAX as u128) as i32;
        let request = FetchRequest::default()
            .with_max_wait_ms(max_wait_ms)
            .with_min_bytes(1)
            .with_max_bytes(self.config.max_bytes)
            .with_isolation_level(0)
            .with_session_id(0)
            .with_session_epoch(-1)
            .with_topics(vec![topic]);
        let timeout = self.client.config().timeouts.request + self.config.max_wait;
        let response = conn.send_with_timeout(&request, version, timeout).await?;
        if let Some(error) = KafkaError::from_code(response.error_code, None) {
            return Err(Error::Kafka {
                context: format!("fetch from broker {leader}"),
                error,
            });
        }
        let offsets: HashMap<i32, i64> = parts.into_iter().collect();
        let mut out = Vec::new();
        for topic in response.responses {
            for p in topic.partitions {
                let partition = p.partition_index;
                let Some(&fetch_offset) = offsets.get(&partition) else {
                    continue;
                };
                if let Some(error) = KafkaError::from_code(p.error_code, None) {
                    out.push((partition, Err(error), None));
                    continue;
                }
                let fetched = match p.records {
                    Some(data) if !data.is_empty() => decode_fetched(
                        PartitionRef {
                            topic: &self.topic.name,
                            partition,
                        },
                        fetch_offset,
                        data,
                        self.config.partition_max_bytes.max(self.config.max_bytes) as usize,
                    )?,
                    _ => Default::default(),
                };
                out.push((
                    partition,
                    Ok(PartitionRecords {
                        partition,
                        records: fetched.records,
                        high_watermark: p.high_watermark,
                    }),
                    fetched.next_offset,
                ));
            }
        }
        Ok(out)
    }
}
