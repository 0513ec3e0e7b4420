//! Produce: validate each partition's batch, append it, then acknowledge per `acks`.
//!
//! Validation and appends run on a blocking thread before `handle` returns, so requests on one
//! connection append in the order they arrived. With acks=all on a topic that syncs every
//! write (the default), the response waits until the group-commit fsync covers the batch.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::ResponseError;
use kafka_protocol::messages::ProduceRequest;
use kafka_protocol::messages::produce_response::{
    BatchIndexAndErrorMessage, PartitionProduceResponse, ProduceResponse, TopicProduceResponse,
};
use kafka_protocol::messages::{ResponseKind, TopicName};
use kafka_protocol::protocol::StrBytes;
use spate_auth::acl::{Operation, ResourceType};
use spate_log::batch::{RecordError, RecordRules, TimestampWindow};
use spate_log::{AppendInfo, BatchError, Log, TimestampType, batch};

use crate::authz::Caller;
use crate::error::{BrokerError, batch_error_code};
use crate::{Broker, Reply};

/// Upper bound for decompressing a batch to check its records (keys of compacted topics,
/// timestamps).
const MAX_VALIDATION_DECOMPRESSED_BYTES: usize = 64 << 20;

struct Slot {
    topic: usize,
    partition: usize,
    /// Topic name and partition index, once resolved.
    target: Option<(String, i32)>,
    log: Option<Arc<Log>>,
    records: Option<Bytes>,
    outcome: Outcome,
}

enum Outcome {
    Pending,
    Failed(i16, String),
    Appended(AppendInfo),
    /// Records refused one by one (keys, timestamps, schemas): the partition's error code and
    /// message, and each refused record's index and reason (KIP-467's `record_errors`).
    Invalid(i16, String, Vec<(i32, String)>),
}

impl Broker {
    pub(crate) async fn produce(
        self: &Arc<Self>,
        req: ProduceRequest,
        version: i16,
        caller: &Caller,
        received: Option<std::time::Instant>,
    ) -> Reply {
        let acks = req.acks;
        let mut response = ProduceResponse::default();
        let mut slots = Vec::new();
        for (t, topic_data) in req.topic_data.into_iter().enumerate() {
            let topic = if version >= 13 {
                self.topics.get_by_id(&topic_data.topic_id)
            } else {
                self.topics.get(&topic_data.name)
            };
            let mut topic_response = TopicProduceResponse::default()
                .with_name(topic_data.name.clone())
                .with_topic_id(topic_data.topic_id);
            if version >= 13 {
                topic_response.name = TopicName(StrBytes::default());
            } else {
                topic_response.topic_id = uuid::Uuid::nil();
            }
            let name = topic
                .as_ref()
                .map_or(topic_data.name.as_str(), |t| t.name.as_str());
            let authorized = (version >= 13 && topic.is_none())
                || self.allows(caller, Operation::Write, ResourceType::Topic, name);
            for (p, partition_data) in topic_data.partition_data.into_iter().enumerate() {
                topic_response
                    .partition_responses
                    .push(PartitionProduceResponse::default().with_index(partition_data.index));
                let mut slot = Slot {
                    topic: t,
                    partition: p,
                    target: None,
                    log: None,
                    records: partition_data.records,
                    outcome: Outcome::Pending,
                };
                let unknown = if version >= 13 {
                    ResponseError::UnknownTopicId
                } else {
                    ResponseError::UnknownTopicOrPartition
                };
                match topic.as_ref().map(|t| t.partition(partition_data.index)) {
                    _ if !authorized => {
                        slot.outcome = Outcome::Failed(
                            ResponseError::TopicAuthorizationFailed.code(),
                            "not authorized to write to the topic".into(),
                        )
                    }
                    None => slot.outcome = Outcome::Failed(unknown.code(), "unknown topic".into()),
                    Some(_) if topic.as_ref().is_some_and(|t| t.is_internal()) => {
                        slot.outcome = Outcome::Failed(
                            ResponseError::InvalidTopicException.code(),
                            "clients cannot write to an internal topic".into(),
                        )
                    }
                    Some(None) => {
                        slot.outcome = Outcome::Failed(
                            ResponseError::UnknownTopicOrPartition.code(),
                            format!("partition {} does not exist", partition_data.index),
                        )
                    }
                    Some(Some(partition)) => {
                        slot.log = Some(Arc::clone(&partition.log));
                        slot.target = Some((partition.topic.clone(), partition.index));
                    }
                }
                if !matches!(acks, -1..=1) {
                    let err = BrokerError::InvalidRequiredAcks { acks };
                    slot.outcome = Outcome::Failed(err.code(), err.to_string());
                }
                slots.push(slot);
            }
            response.responses.push(topic_response);
        }

        let now = self.now_ms();
        let broker = Arc::clone(self);
        let principal = Arc::clone(&caller.principal);
        let appended = tokio::task::spawn_blocking(move || {
            if let Some(received) = received {
                broker.metrics.observe_queue(
                    kafka_protocol::messages::ApiKey::Produce,
                    received.elapsed(),
                );
            }
            for slot in &mut slots {
                if let (Outcome::Pending, Some(log), Some(target)) =
                    (&slot.outcome, &slot.log, &slot.target)
                {
                    slot.outcome =
                        broker.append_one(log, target, slot.records.take(), acks, now, &principal);
                }
            }
            slots
        })
        .await;
        let slots = match appended {
            Ok(slots) => slots,
            Err(err) => {
                // A panic while appending is a bug; the append lock was never poisoned
                // (parking_lot), but this request cannot be answered honestly.
                tracing::error!(error = %err, "produce task failed");
                return Reply::Now(ResponseKind::Produce(fail_all(
                    response,
                    ResponseError::UnknownServerError.code(),
                )));
            }
        };

        let mut waits = Vec::new();
        for slot in slots {
            let partition = &mut response.responses[slot.topic].partition_responses[slot.partition];
            match slot.outcome {
                Outcome::Appended(info) => {
                    partition.base_offset = info.base_offset;
                    partition.log_append_time_ms = info.log_append_time_ms;
                    partition.log_start_offset = info.log_start_offset;
                    if info.wait_for_durable && acks == -1 {
                        if let Some(log) = slot.log {
                            waits.push((slot.topic, slot.partition, log, info.last_offset + 1));
                        }
                    }
                }
                Outcome::Failed(code, message) => {
                    self.metrics.produce_errors.fetch_add(1, Ordering::Relaxed);
                    partition.error_code = code;
                    partition.error_message = Some(StrBytes::from_string(message));
                    partition.base_offset = -1;
                    partition.log_append_time_ms = -1;
                    partition.log_start_offset = -1;
                }
                Outcome::Invalid(code, message, records) => {
                    self.metrics.produce_errors.fetch_add(1, Ordering::Relaxed);
                    partition.error_code = code;
                    partition.record_errors = records
                        .into_iter()
                        .map(|(index, reason)| {
                            BatchIndexAndErrorMessage::default()
                                .with_batch_index(index)
                                .with_batch_index_error_message(Some(StrBytes::from_string(reason)))
                        })
                        .collect();
                    partition.error_message = Some(StrBytes::from_string(message));
                    partition.base_offset = -1;
                    partition.log_append_time_ms = -1;
                    partition.log_start_offset = -1;
                }
                Outcome::Pending => unreachable!("every slot is appended or failed"),
            }
        }
        match acks {
            0 => Reply::Nothing,
            -1 if !waits.is_empty() => {
                let version_fix = version;
                let timeout_ms = req.timeout_ms.max(0);
                Reply::Later(Box::pin(async move {
                    for (t, p, log, offset) in waits {
                        let waited = tokio::time::timeout(
                            Duration::from_millis(timeout_ms as u64),
                            log.wait_durable(offset),
                        )
                        .await;
                        let error = match waited {
                            Ok(Ok(())) => None,
                            Ok(Err(err)) => Some(BrokerError::from(&err)),
                            Err(_) => Some(BrokerError::RequestTimedOut { timeout_ms }),
                        };
                        if let Some(err) = error {
                            let partition = &mut response.responses[t].partition_responses[p];
                            partition.error_code = err.code();
                            partition.error_message = Some(StrBytes::from_string(err.to_string()));
                            partition.base_offset = -1;
                        }
                    }
                    downgrade(&mut response, version_fix);
                    ResponseKind::Produce(response)
                }))
            }
            _ => {
                downgrade(&mut response, version);
                Reply::Now(ResponseKind::Produce(response))
            }
        }
    }

    /// Validates and appends one partition's records; blocking.
    fn append_one(
        &self,
        log: &Arc<Log>,
        target: &(String, i32),
        records: Option<Bytes>,
        acks: i16,
        now_ms: i64,
        principal: &Arc<str>,
    ) -> Outcome {
        let Some(records) = records.filter(|r| !r.is_empty()) else {
            return Outcome::Failed(
                ResponseError::InvalidRecord.code(),
                "produce request carries no record batch for the partition".into(),
            );
        };
        let config = log.config();
        if acks == -1 && config.min_insync_replicas > 1 {
            // One node is one in-sync replica: Kafka refuses acks=all below
            // min.insync.replicas before appending anything.
            return Outcome::Failed(
                ResponseError::NotEnoughReplicas.code(),
                format!(
                    "The size of the current ISR : 1 is insufficient to satisfy the min.isr requirement of {} for partition {}-{}, live replica(s) broker.id are : Set({})",
                    config.min_insync_replicas, target.0, target.1, self.options.node_id
                ),
            );
        }
        if records.len() > config.max_message_bytes {
            let err = BrokerError::from(spate_log::LogError::MessageTooLarge {
                size_bytes: records.len(),
                limit_bytes: config.max_message_bytes,
            });
            return Outcome::Failed(err.code(), err.to_string());
        }
        let rules = RecordRules {
            require_keys: config.compact,
            timestamps: (config.timestamp_type == TimestampType::CreateTime).then(|| {
                TimestampWindow::around(
                    now_ms,
                    config.timestamp_before_max_ms,
                    config.timestamp_after_max_ms,
                )
            }),
        };
        let header = match batch::validate_produce_batch_with(
            &records,
            &rules,
            MAX_VALIDATION_DECOMPRESSED_BYTES,
        ) {
            Ok(header) if header.is_transactional() && config.mirror_offsets => {
                // Its offsets are the source's: a transaction marker would take an offset a
                // source record may need (the mirror copies only committed records, without
                // transactions).
                return Outcome::Failed(
                    ResponseError::InvalidRequest.code(),
                    format!(
                        "cannot append transactional records to mirror topic {}: a mirror topic's offsets are its source's, and a transaction marker would take one",
                        target.0
                    ),
                );
            }
            Ok(header) if header.is_transactional() => {
                // KIP-890 part 1: only a transaction that added this partition may write to it.
                if let Err(error) = self.transactions.allows(
                    header.producer_id,
                    header.producer_epoch,
                    &target.0,
                    target.1,
                ) {
                    return Outcome::Failed(
                        error.code(),
                        format!(
                            "producer {} epoch {} has no ongoing transaction that added this partition",
                            header.producer_id, header.producer_epoch
                        ),
                    );
                }
                header
            }
            Ok(header) => header,
            Err(BatchError::RecordsRefused { errors }) => {
                return refused_records(log.name(), &errors);
            }
            Err(err) => {
                tracing::warn!(log = log.name(), error = %err, "refused a record batch");
                return Outcome::Failed(batch_error_code(&err).code(), err.to_string());
            }
        };
        if config.schema_validation.enabled() {
            if let Err((index, reason)) =
                self.validate_schemas(&target.0, &records, &header, &config.schema_validation)
            {
                tracing::warn!(log = log.name(), %reason, "refused a record batch: schema validation");
                return Outcome::Invalid(
                    ResponseError::InvalidRecord.code(),
                    reason.clone(),
                    vec![(index, reason)],
                );
            }
        }
        let started = std::time::Instant::now();
        let appended = if config.mirror_offsets {
            // A mirror topic: each record goes to its source offset, and only a mirror writer
            // (records carrying the offset) may append (see `spate_log::mirror`).
            log.append_at_source_offsets(
                &records,
                &header,
                now_ms,
                MAX_VALIDATION_DECOMPRESSED_BYTES,
            )
        } else {
            log.append(&records, &header, now_ms)
        };
        self.metrics.produce_append.observe_since(started);
        match appended {
            Ok(info) => {
                if info.needs_sync {
                    self.syncer.request(log);
                }
                if info.duplicate {
                    tracing::debug!(
                        log = log.name(),
                        base_offset = info.base_offset,
                        "answered a retried idempotent batch"
                    );
                    return Outcome::Appended(info);
                }
                self.metrics
                    .produce_bytes
                    .fetch_add(records.len() as u64, Ordering::Relaxed);
                self.metrics
                    .produce_records
                    .fetch_add(header.record_count as u64, Ordering::Relaxed);
                self.meter_produce(
                    principal,
                    &target.0,
                    records.len(),
                    u64::try_from(header.record_count).unwrap_or(0),
                );
                Outcome::Appended(info)
            }
            Err(
                err @ (spate_log::LogError::MissingSourceOffset { .. }
                | spate_log::LogError::InvalidSourceOffset { .. }),
            ) => {
                // Clients show only the code (librdkafka drops the message): say it here.
                tracing::warn!(log = log.name(), error = %err, "refused a record batch for a mirror topic");
                let err = BrokerError::from(&err);
                Outcome::Failed(err.code(), err.to_string())
            }
            Err(err) => {
                if err.is_disk_full()
                    || matches!(
                        err,
                        spate_log::LogError::Io { .. } | spate_log::LogError::Offline { .. }
                    )
                {
                    tracing::error!(log = log.name(), error = %err, "append failed");
                }
                let err = BrokerError::from(&err);
                Outcome::Failed(err.code(), err.to_string())
            }
        }
    }
}

/// Kafka's answer when records are refused one by one (LogValidator's `processRecordErrors`):
/// INVALID_TIMESTAMP if any timestamp is out of range, else INVALID_RECORD, with every
/// refused record in `record_errors`. Logged once per batch.
fn refused_records(topic_partition: &str, errors: &[RecordError]) -> Outcome {
    let records: Vec<(i32, String)> = errors
        .iter()
        .map(|e| (e.index, e.message(topic_partition)))
        .collect();
    let (code, message) = if errors.iter().any(RecordError::is_timestamp) {
        (
            ResponseError::InvalidTimestamp,
            "One or more records have been rejected due to invalid timestamp".to_string(),
        )
    } else {
        let shown: Vec<String> = records
            .iter()
            .take(3)
            .map(|(index, reason)| format!("RecordError(batchIndex={index}, message='{reason}')"))
            .collect();
        (
            ResponseError::InvalidRecord,
            format!(
                "One or more records have been rejected due to {} record errors in total, and only showing the first three errors at most: [{}]",
                records.len(),
                shown.join(", ")
            ),
        )
    };
    tracing::warn!(
        log = topic_partition,
        refused = records.len(),
        first = %records.first().map_or("", |(_, reason)| reason.as_str()),
        "refused a record batch"
    );
    Outcome::Invalid(code.code(), message, records)
}

fn fail_all(mut response: ProduceResponse, code: i16) -> ProduceResponse {
    for topic in &mut response.responses {
        for partition in &mut topic.partition_responses {
            partition.error_code = code;
            partition.base_offset = -1;
        }
    }
    response
}

/// Clears fields the response version does not carry (the encoder refuses them).
fn downgrade(response: &mut ProduceResponse, version: i16) {
    for topic in &mut response.responses {
        for partition in &mut topic.partition_responses {
            if version < 5 {
                partition.log_start_offset = -1;
            }
            if version < 8 {
                partition.error_message = None;
                partition.record_errors.clear();
            }
        }
    }
}
