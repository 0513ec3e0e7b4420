//! Fetch: read whole batches from each partition, long-polling until `min_bytes` arrive.
//!
//! A fetch subscribes to the high watermark of every partition it reads before reading, so an
//! append that lands between the read and the wait still wakes it: the consumer is answered as
//! soon as data arrives, not when `max_wait_ms` runs out. Spate never creates incremental fetch
//! sessions (KIP-227): answering session id 0 tells clients to send full fetches, which every
//! client supports.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::ResponseError;
use kafka_protocol::messages::fetch_response::{
    AbortedTransaction, FetchResponse, FetchableTopicResponse, PartitionData,
};
use kafka_protocol::messages::{BrokerId, FetchRequest, ProducerId, ResponseKind, TopicName};

use kafka_protocol::protocol::StrBytes;
use spate_log::{Log, LogError};
use tokio::sync::watch;

use crate::authz::Caller;
use crate::error::log_error_code;
use crate::{Broker, Reply};

const READ_COMMITTED: i8 = 1;

struct Target {
    topic: usize,
    partition: usize,
    log: Option<Arc<Log>>,
    /// The partition read, for usage metering (set with `log`).
    partition_read: Option<Arc<crate::topics::Partition>>,
    fetch_offset: i64,
    max_bytes: usize,
}

impl Broker {
    pub(crate) fn fetch(
        self: &Arc<Self>,
        req: FetchRequest,
        version: i16,
        caller: &Caller,
    ) -> Reply {
        if req.session_id != 0 || req.session_epoch > 0 {
            let code = if req.session_id != 0 {
                ResponseError::FetchSessionIdNotFound
            } else {
                ResponseError::InvalidFetchSessionEpoch
            };
            let response = FetchResponse::default()
                .with_error_code(code.code())
                .with_session_id(0);
            return Reply::Now(ResponseKind::Fetch(response));
        }
        // READ on each topic, decided now: the long poll outlives the request's caller.
        let readable = req
            .topics
            .iter()
            .map(|fetch_topic| {
                let topic = if version >= 13 {
                    self.topics.get_by_id(&fetch_topic.topic_id)
                } else {
                    self.topics.get(&fetch_topic.topic)
                };
                match topic {
                    Some(topic) => self.allows_topic_read(caller, &topic.name),
                    None if version >= 13 => true,
                    None => self.allows_topic_read(caller, &fetch_topic.topic),
                }
            })
            .collect();
        let broker = Arc::clone(self);
        let principal = Arc::clone(&caller.principal);
        Reply::Later(Box::pin(async move {
            ResponseKind::Fetch(broker.long_poll(req, version, readable, principal).await)
        }))
    }

    async fn long_poll(
        self: Arc<Self>,
        req: FetchRequest,
        version: i16,
        readable: Vec<bool>,
        principal: Arc<str>,
    ) -> FetchResponse {
        let mut template = FetchResponse::default().with_session_id(0);
        let mut targets = Vec::new();
        for (t, fetch_topic) in req.topics.iter().enumerate() {
            let topic = if version >= 13 {
                self.topics.get_by_id(&fetch_topic.topic_id)
            } else {
                self.topics.get(&fetch_topic.topic)
            };
            let mut topic_response = FetchableTopicResponse::default()
                .with_topic(fetch_topic.topic.clone())
                .with_topic_id(fetch_topic.topic_id);
            if version >= 13 {
                topic_response.topic = TopicName(StrBytes::default());
            } else {
                topic_response.topic_id = uuid::Uuid::nil();
            }
            for (p, fetch_partition) in fetch_topic.partitions.iter().enumerate() {
                let mut data = PartitionData::default()
                    .with_partition_index(fetch_partition.partition)
                    .with_high_watermark(-1)
                    .with_last_stable_offset(-1)
                    .with_log_start_offset(-1)
                    .with_preferred_read_replica(BrokerId(-1))
                    .with_records(Some(Bytes::new()));
                if req.isolation_level == READ_COMMITTED {
                    data.aborted_transactions = Some(Vec::new());
                }
                let partition = topic
                    .as_ref()
                    .and_then(|t| t.partition(fetch_partition.partition));
                let error = match (&topic, &partition) {
                    _ if !readable[t] => Some(ResponseError::TopicAuthorizationFailed),
                    (None, _) if version >= 13 => Some(ResponseError::UnknownTopicId),
                    (None, _) | (Some(_), None) => Some(ResponseError::UnknownTopicOrPartition),
                    _ if fetch_partition.current_leader_epoch > 0 => {
                        Some(ResponseError::UnknownLeaderEpoch)
                    }
                    _ => None,
                };
                if let Some(error) = error {
                    data.error_code = error.code();
                }
                topic_response.partitions.push(data);
                targets.push(Target {
                    topic: t,
                    partition: p,
                    log: if error.is_none() {
                        partition.as_ref().map(|p| Arc::clone(&p.log))
                    } else {
                        None
                    },
                    partition_read: if error.is_none() { partition } else { None },
                    fetch_offset: fetch_partition.fetch_offset,
                    max_bytes: fetch_partition.partition_max_bytes.max(0) as usize,
                });
            }
            template.responses.push(topic_response);
        }
        let has_errors = targets.iter().any(|t| t.log.is_none());
        let response_max_bytes = (req.max_bytes.max(0) as usize).min(self.options.fetch_max_bytes);
        let min_bytes = req.min_bytes.max(0) as usize;
        let deadline =
            tokio::time::Instant::now() + Duration::from_millis(req.max_wait_ms.max(0) as u64);
        let mut watches: Vec<watch::Receiver<i64>> = targets
            .iter()
            .filter_map(|t| t.log.as_ref().map(|log| log.watch_high_watermark()))
            .collect();
        let targets = Arc::new(targets);
        let mut waited = Duration::ZERO;
        loop {
            for rx in &mut watches {
                rx.borrow_and_update();
            }
            let reads = {
                let targets = Arc::clone(&targets);
                let committed_only = req.isolation_level == READ_COMMITTED;
                tokio::task::spawn_blocking(move || {
                    read_all(&targets, response_max_bytes, committed_only)
                })
                .await
            };
            let reads = match reads {
                Ok(reads) => reads,
                Err(err) => {
                    tracing::error!(error = %err, "fetch read task failed");
                    return template.with_error_code(ResponseError::UnknownServerError.code());
                }
            };
            let total: usize = reads
                .iter()
                .map(|r| r.records.as_ref().map_or(0, Bytes::len))
                .sum();
            let read_error = reads.iter().any(|r| r.error_code != 0);
            if total >= min_bytes
                || has_errors
                || read_error
                || tokio::time::Instant::now() >= deadline
                || watches.is_empty()
            {
                let mut response = template;
                for (target, read) in targets.iter().zip(reads) {
                    if let (Some(partition), Some(records)) =
                        (&target.partition_read, &read.records)
                        && !records.is_empty()
                    {
                        self.meter_fetch(
                            &principal,
                            &partition.topic,
                            records.len(),
                            crate::usage::record_count(records),
                        );
                    }
                    let data = &mut response.responses[target.topic].partitions[target.partition];
                    if target.log.is_some() {
                        data.error_code = read.error_code;
                        data.high_watermark = read.high_watermark;
                        data.last_stable_offset = read.last_stable_offset;
                        if version >= 5 {
                            data.log_start_offset = read.log_start_offset;
                        }
                        if req.isolation_level == READ_COMMITTED {
                            data.aborted_transactions = Some(
                                read.aborted
                                    .iter()
                                    .map(|a| {
                                        AbortedTransaction::default()
                                            .with_producer_id(ProducerId(a.producer_id))
                                            .with_first_offset(a.first_offset)
                                    })
                                    .collect(),
                            );
                        }
                        data.records = read.records.or_else(|| Some(Bytes::new()));
                    }
                }
                self.metrics
                    .fetch_bytes
                    .fetch_add(total as u64, Ordering::Relaxed);
                self.metrics.fetch_wait.observe(waited);
                return response;
            }
            let changed =
                futures::future::select_all(watches.iter_mut().map(|rx| Box::pin(rx.changed())));
            let waiting = std::time::Instant::now();
            tokio::select! {
                _ = tokio::time::sleep_until(deadline) => {}
                _ = changed => {}
            }
            waited += waiting.elapsed();
        }
    }
}

struct Read {
    error_code: i16,
    high_watermark: i64,
    last_stable_offset: i64,
    log_start_offset: i64,
    records: Option<Bytes>,
    /// For read_committed: aborted transactions overlapping the records returned.
    aborted: Vec<spate_log::AbortedTxn>,
}

fn read_all(targets: &[Target], response_max_bytes: usize, committed_only: bool) -> Vec<Read> {
    let mut remaining = response_max_bytes;
    let mut any_data = false;
    let mut reads = Vec::with_capacity(targets.len());
    for target in targets {
        let Some(log) = &target.log else {
            reads.push(Read {
                error_code: 0,
                high_watermark: -1,
                last_stable_offset: -1,
                log_start_offset: -1,
                records: None,
                aborted: Vec::new(),
            });
            continue;
        };
        let max_bytes = target.max_bytes.min(remaining);
        // KIP-74: the first batch of the response is returned whole even when larger than the
        // limits, so a consumer never gets stuck behind a big batch.
        match log.read_isolated(target.fetch_offset, max_bytes, !any_data, committed_only) {
            Ok(result) => {
                remaining = remaining.saturating_sub(result.records.len());
                any_data |= !result.records.is_empty();
                let aborted = if committed_only && !result.records.is_empty() {
                    log.aborted_transactions(target.fetch_offset, last_offset_in(&result.records))
                } else {
                    Vec::new()
                };
                reads.push(Read {
                    error_code: 0,
                    high_watermark: result.high_watermark,
                    last_stable_offset: result.last_stable_offset,
                    log_start_offset: result.log_start_offset,
                    records: Some(result.records),
                    aborted,
                });
            }
            Err(err) => {
                if !matches!(err, LogError::OffsetOutOfRange { .. } | LogError::Closed) {
                    tracing::error!(log = log.name(), error = %err, "fetch read failed");
                }
                let offsets = log.offsets();
                reads.push(Read {
                    error_code: log_error_code(&err).code(),
                    high_watermark: offsets.high_watermark,
                    last_stable_offset: offsets.last_stable_offset,
                    log_start_offset: offsets.log_start_offset,
                    records: Some(Bytes::new()),
                    aborted: Vec::new(),
                });
            }
        }
    }
    reads
}

/// The last offset of the last whole batch in `records`.
fn last_offset_in(records: &Bytes) -> i64 {
    let mut rest = &records[..];
    let mut last = -1;
    while let Ok(header) = spate_log::BatchHeader::parse(rest) {
        last = header.last_offset();
        if header.total_len() > rest.len() {
            break;
        }
        rest = &rest[header.total_len()..];
    }
    last
}
