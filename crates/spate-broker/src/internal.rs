//! Writing to and reading back the platform's own compacted topics (`__consumer_offsets`,
//! `__transaction_state`, and for other components such as the schema registry `_schemas`):
//! an append is acknowledged to the caller only once durable, and a replay visits every
//! record from the log start, so coordinators rebuild their state on start. A component that
//! must also see what others append while it runs reads on from an offset
//! ([`Broker::read_state_records`]) whenever the high watermark moves
//! ([`Broker::watch_state_topic`]).

use std::collections::BTreeMap;
use std::sync::Arc;

use spate_log::{AppendInfo, BatchBuilder, BatchHeader, Log};
use tokio::sync::watch;

use crate::Broker;
use crate::error::BrokerError;
use crate::topics::{Partition, TopicRegistry};

impl Broker {
    /// Creates a single-partition compacted internal topic for a component's state (the
    /// schema registry's `_schemas`) if it does not exist. Blocking.
    pub fn ensure_state_topic(&self, name: &str) -> Result<(), BrokerError> {
        if self.topics.get(name).is_some() {
            return Ok(());
        }
        let configs = BTreeMap::from([
            ("cleanup.policy".to_string(), "compact".to_string()),
            ("segment.bytes".to_string(), "104857600".to_string()),
        ]);
        match self.topics.create(name, 1, configs, self.now_ms()) {
            Ok(_) | Err(BrokerError::TopicAlreadyExists { .. }) => Ok(()),
            Err(err) => Err(err),
        }
    }

    /// Appends keyed records (a `None` value is a tombstone) to a state topic created by
    /// [`Broker::ensure_state_topic`] as one batch, so they land all together or not at all,
    /// and waits until they are durable. Returns the offset of the first.
    pub async fn append_state_records(
        self: &Arc<Self>,
        topic: &str,
        records: &[(Vec<u8>, Option<Vec<u8>>)],
    ) -> Result<i64, BrokerError> {
        let mut builder = BatchBuilder::new(0, self.now_ms());
        for (key, value) in records {
            builder.push(0, Some(key), value.as_deref());
        }
        self.append_internal(topic, 0, builder).await
    }

    /// Visits every record of a state topic, oldest first: its offset, key and value.
    pub fn replay_state_topic(
        &self,
        topic: &str,
        mut visit: impl FnMut(i64, Option<&[u8]>, Option<&[u8]>),
    ) -> Result<(), BrokerError> {
        replay_topic(&self.topics, topic, |header, offset, key, value| {
            if !header.is_control() {
                visit(offset, key, value);
            }
        })
    }

    /// Reads the records of a single-partition state topic from offset `from` (or its log
    /// start, if later) below its high watermark, about `max_bytes` of batches at a time (at
    /// least one batch): their offsets, keys and values, oldest first, and the offset to read
    /// from next. Reading again from that offset continues where this read stopped; an empty
    /// answer means `from` is at the high watermark. Blocking: call it off the async workers.
    ///
    /// This is how a component follows its state topic while it runs (the schema registry
    /// tails `_schemas`), seeing what other writers appended as well as its own records.
    pub fn read_state_records(
        &self,
        topic: &str,
        from: i64,
        max_bytes: usize,
    ) -> Result<(Vec<StateRecord>, i64), BrokerError> {
        let partition = self.state_partition(topic)?;
        let mut records = Vec::new();
        let start = from.max(partition.log.offsets().log_start_offset);
        let next = read_batches(
            &partition.log,
            start,
            max_bytes,
            |header, offset, key, value| {
                if offset >= from && !header.is_control() {
                    records.push(StateRecord {
                        offset,
                        key: key.map(<[u8]>::to_vec),
                        value: value.map(<[u8]>::to_vec),
                    });
                }
            },
        )?;
        Ok((records, next.max(from)))
    }

    /// A receiver of a single-partition state topic's high watermark: it changes whenever
    /// records become readable by [`Broker::read_state_records`].
    pub fn watch_state_topic(&self, topic: &str) -> Result<watch::Receiver<i64>, BrokerError> {
        Ok(self.state_partition(topic)?.log.watch_high_watermark())
    }

    fn state_partition(&self, topic: &str) -> Result<Arc<Partition>, BrokerError> {
        self.topics
            .get(topic)
            .and_then(|t| t.partition(0))
            .ok_or_else(|| BrokerError::UnknownTopicOrPartition {
                name: format!("{topic}-0"),
            })
    }

    /// Creates an internal topic the first time something is written to it, as Kafka creates
    /// `__consumer_offsets` when a group first needs it: a fresh broker lists no topics, and
    /// replaying a topic that does not exist yet replays nothing.
    pub(crate) async fn ensure_internal_topic(
        self: &Arc<Self>,
        name: &str,
    ) -> Result<(), BrokerError> {
        if self.topics.get(name).is_some() {
            return Ok(());
        }
        let (partitions, configs) = self.internal_topic_spec(name);
        let broker = Arc::clone(self);
        let topic = name.to_string();
        let now = self.now_ms();
        let created = tokio::task::spawn_blocking(move || {
            broker.topics.create(&topic, partitions, configs, now)
        })
        .await
        .map_err(|e| BrokerError::InvalidRequest {
            reason: e.to_string(),
        })?;
        match created {
            Ok(_) => {
                tracing::info!(
                    topic = name,
                    partitions,
                    "created internal topic on first use"
                );
                Ok(())
            }
            Err(BrokerError::TopicAlreadyExists { .. }) => Ok(()),
            Err(err) => Err(err),
        }
    }

    /// Partitions and configs of an internal topic when it is created.
    fn internal_topic_spec(&self, name: &str) -> (i32, BTreeMap<String, String>) {
        let compacted = || {
            BTreeMap::from([
                ("cleanup.policy".to_string(), "compact".to_string()),
                ("segment.bytes".to_string(), "104857600".to_string()),
            ])
        };
        match name {
            crate::groups::store::OFFSETS_TOPIC => {
                let mut configs = compacted();
                configs.insert("compression.type".to_string(), "producer".to_string());
                (self.options.groups.offsets_topic_partitions, configs)
            }
            crate::transactions::TRANSACTIONS_TOPIC => {
                (self.options.transactions.partitions, compacted())
            }
            crate::audit::AUDIT_TOPIC => (
                1,
                BTreeMap::from([
                    ("cleanup.policy".to_string(), "delete".to_string()),
                    (
                        "retention.ms".to_string(),
                        crate::audit::AUDIT_RETENTION_MS.to_string(),
                    ),
                ]),
            ),
            _ => (1, compacted()),
        }
    }

    /// Partitions of an internal topic: as it is, or as it will be created.
    pub(crate) fn internal_partitions(&self, name: &str) -> i32 {
        self.topics
            .get(name)
            .map_or_else(|| self.internal_topic_spec(name).0, |t| t.partition_count())
    }

    /// Appends a batch to a partition of an internal topic (created on first use) and waits
    /// until it is durable. Returns the offset of its first record.
    pub(crate) async fn append_internal(
        self: &Arc<Self>,
        topic: &str,
        partition: i32,
        builder: BatchBuilder,
    ) -> Result<i64, BrokerError> {
        self.ensure_internal_topic(topic).await?;
        let partition = self
            .topics
            .get(topic)
            .and_then(|t| t.partition(partition))
            .ok_or_else(|| BrokerError::UnknownTopicOrPartition {
                name: format!("{topic}-{partition}"),
            })?;
        let bytes = builder
            .build()
            .map_err(|e| BrokerError::from(spate_log::LogError::Batch(e)))?;
        let header = BatchHeader::parse(&bytes)
            .map_err(|e| BrokerError::from(spate_log::LogError::Batch(e)))?;
        let now = self.now_ms();
        let info = self
            .append_blocking(&partition.log, move |log| log.append(&bytes, &header, now))
            .await?;
        if info.wait_for_durable {
            partition.log.wait_durable(info.last_offset + 1).await?;
        }
        Ok(info.base_offset)
    }

    /// Runs an append on a blocking thread and asks for the fsync it needs. The caller waits
    /// for durability (`Log::wait_durable`) when the answer says so, so several appends can
    /// share one wait.
    pub(crate) async fn append_blocking(
        &self,
        log: &Arc<Log>,
        append: impl FnOnce(&Log) -> Result<AppendInfo, spate_log::LogError> + Send + 'static,
    ) -> Result<AppendInfo, BrokerError> {
        let writer = Arc::clone(log);
        let info = tokio::task::spawn_blocking(move || append(&writer))
            .await
            .map_err(|e| BrokerError::InvalidRequest {
                reason: e.to_string(),
            })??;
        if info.needs_sync {
            self.syncer.request(log);
        }
        Ok(info)
    }
}

/// One record of a state topic, as [`Broker::read_state_records`] returns it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateRecord {
    /// Its offset.
    pub offset: i64,
    /// Its key.
    pub key: Option<Vec<u8>>,
    /// Its value; `None` is a tombstone.
    pub value: Option<Vec<u8>>,
}

/// Reads every record of a compacted internal topic, oldest first.
pub(crate) fn replay_topic(
    topics: &TopicRegistry,
    name: &str,
    mut visit: impl FnMut(&BatchHeader, i64, Option<&[u8]>, Option<&[u8]>),
) -> Result<(), BrokerError> {
    let Some(topic) = topics.get(name) else {
        return Ok(());
    };
    for partition in topic.partitions() {
        let mut next = partition.log.offsets().log_start_offset;
        loop {
            let after = read_batches(&partition.log, next, 4 << 20, &mut visit)?;
            if after == next {
                break;
            }
            next = after;
        }
    }
    Ok(())
}

/// Visits the records of the whole batches one read from `from` returns (about `max_bytes`,
/// at least one batch, below the high watermark); returns the offset after the last batch, or
/// `from` when there was none.
fn read_batches(
    log: &Log,
    from: i64,
    max_bytes: usize,
    mut visit: impl FnMut(&BatchHeader, i64, Option<&[u8]>, Option<&[u8]>),
) -> Result<i64, BrokerError> {
    let batch_error = |e| BrokerError::from(spate_log::LogError::Batch(e));
    let read = log.read(from, max_bytes, true)?;
    let mut next = from;
    let mut rest = &read.records[..];
    while !rest.is_empty() {
        let header = BatchHeader::parse(rest).map_err(batch_error)?;
        let batch = &rest[..header.total_len()];
        let records = spate_log::batch::record_bytes(batch, 64 << 20).map_err(batch_error)?;
        for record in spate_log::batch::parse_records(&records, &header).map_err(batch_error)? {
            visit(
                &header,
                header.base_offset + i64::from(record.offset_delta),
                record.key,
                record.value,
            );
        }
        next = header.last_offset() + 1;
        rest = &rest[header.total_len()..];
    }
    Ok(next)
}
