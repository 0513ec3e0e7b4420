//! ListOffsets (earliest, latest, by timestamp, max timestamp), OffsetForLeaderEpoch and
//! DeleteRecords.
//!
//! Spate leads every partition with leader epoch 0 for its whole life (one broker, no
//! elections), so epoch questions have simple answers.

use std::collections::HashSet;
use std::sync::Arc;

use kafka_protocol::ResponseError;
use kafka_protocol::messages::delete_records_response::{
    DeleteRecordsPartitionResult, DeleteRecordsResponse, DeleteRecordsTopicResult,
};
use kafka_protocol::messages::list_offsets_response::{
    ListOffsetsPartitionResponse, ListOffsetsResponse, ListOffsetsTopicResponse,
};
use kafka_protocol::messages::offset_for_leader_epoch_response::{
    EpochEndOffset, OffsetForLeaderEpochResponse, OffsetForLeaderTopicResult,
};
use kafka_protocol::messages::{
    DeleteRecordsRequest, ListOffsetsRequest, OffsetForLeaderEpochRequest,
};

use spate_auth::acl::{Operation, ResourceType};

use crate::Broker;
use crate::authz::Caller;
use crate::error::BrokerError;
use crate::topics::Partition;

const LATEST: i64 = -1;
const EARLIEST: i64 = -2;
const MAX_TIMESTAMP: i64 = -3;
const EARLIEST_LOCAL: i64 = -4;
const LATEST_TIERED: i64 = -5;
const EARLIEST_PENDING_UPLOAD: i64 = -6;
/// The only leader epoch a partition has here.
const LEADER_EPOCH: i32 = 0;

fn epoch_error(current_leader_epoch: i32) -> Option<ResponseError> {
    match current_leader_epoch {
        epoch if epoch > LEADER_EPOCH => Some(ResponseError::UnknownLeaderEpoch),
        _ => None,
    }
}

impl Broker {
    fn partition_of(&self, topic: &str, index: i32) -> Result<Arc<Partition>, ResponseError> {
        self.topics
            .get(topic)
            .and_then(|t| t.partition(index))
            .ok_or(ResponseError::UnknownTopicOrPartition)
    }

    pub(crate) async fn list_offsets(
        self: &Arc<Self>,
        req: ListOffsetsRequest,
        version: i16,
        caller: &Caller,
    ) -> ListOffsetsResponse {
        let describable = self.topics_allowed(
            caller,
            Operation::Describe,
            req.topics.iter().map(|t| t.name.as_str()),
        );
        let broker = Arc::clone(self);
        let read_committed = req.isolation_level == 1;
        let work = move || {
            let mut response = ListOffsetsResponse::default();
            for topic in req.topics {
                let mut topic_response =
                    ListOffsetsTopicResponse::default().with_name(topic.name.clone());
                for partition in topic.partitions {
                    let mut result = ListOffsetsPartitionResponse::default()
                        .with_partition_index(partition.partition_index)
                        .with_timestamp(-1)
                        .with_offset(-1)
                        .with_leader_epoch(-1);
                    let lookup = authorized(&describable, &topic.name)
                        .and_then(|()| broker.partition_of(&topic.name, partition.partition_index))
                        .and_then(|p| match epoch_error(partition.current_leader_epoch) {
                            Some(err) => Err(err),
                            None => Ok(p),
                        })
                        .and_then(|p| lookup_offset(&p, partition.timestamp, read_committed));
                    match lookup {
                        Ok(Some((offset, timestamp))) => {
                            result.offset = offset;
                            result.timestamp = timestamp;
                            if version >= 4 {
                                result.leader_epoch = LEADER_EPOCH;
                            }
                        }
                        Ok(None) => {}
                        Err(err) => result.error_code = err.code(),
                    }
                    topic_response.partitions.push(result);
                }
                response.topics.push(topic_response);
            }
            response
        };
        tokio::task::spawn_blocking(work)
            .await
            .unwrap_or_else(|err| {
                tracing::error!(error = %err, "list offsets task failed");
                ListOffsetsResponse::default()
            })
    }

    pub(crate) fn offset_for_leader_epoch(
        &self,
        req: OffsetForLeaderEpochRequest,
        caller: &Caller,
    ) -> OffsetForLeaderEpochResponse {
        let mut response = OffsetForLeaderEpochResponse::default();
        for topic in req.topics {
            let mut topic_result =
                OffsetForLeaderTopicResult::default().with_topic(topic.topic.clone());
            for partition in topic.partitions {
                let mut result = EpochEndOffset::default()
                    .with_partition(partition.partition)
                    .with_leader_epoch(-1)
                    .with_end_offset(-1);
                let authorized = self.allows(
                    caller,
                    Operation::Describe,
                    ResourceType::Topic,
                    &topic.topic,
                );
                match self.partition_of(&topic.topic, partition.partition) {
                    _ if !authorized => {
                        result.error_code = ResponseError::TopicAuthorizationFailed.code();
                    }
                    Err(err) => result.error_code = err.code(),
                    Ok(_) if epoch_error(partition.current_leader_epoch).is_some() => {
                        result.error_code = ResponseError::UnknownLeaderEpoch.code();
                    }
                    Ok(p) => {
                        // Epoch 0 ends at the log end; a later epoch is unknown (-1/-1), and an
                        // earlier one cannot exist.
                        if partition.leader_epoch == LEADER_EPOCH {
                            result.leader_epoch = LEADER_EPOCH;
                            result.end_offset = p.log.offsets().log_end_offset;
                        }
                    }
                }
                topic_result.partitions.push(result);
            }
            response.topics.push(topic_result);
        }
        response
    }

    pub(crate) async fn delete_records(
        self: &Arc<Self>,
        req: DeleteRecordsRequest,
        caller: &Caller,
    ) -> DeleteRecordsResponse {
        let deletable = self.topics_allowed(
            caller,
            Operation::Delete,
            req.topics.iter().map(|t| t.name.as_str()),
        );
        let broker = Arc::clone(self);
        let caller = caller.clone();
        let work = move || {
            let mut response = DeleteRecordsResponse::default();
            for topic in req.topics {
                let mut topic_result =
                    DeleteRecordsTopicResult::default().with_name(topic.name.clone());
                for partition in topic.partitions {
                    let mut result = DeleteRecordsPartitionResult::default()
                        .with_partition_index(partition.partition_index)
                        .with_low_watermark(-1);
                    let target = authorized(&deletable, &topic.name)
                        .and_then(|()| broker.partition_of(&topic.name, partition.partition_index));
                    match target {
                        Err(err) => result.error_code = err.code(),
                        Ok(p) => match p.log.delete_records_before(partition.offset) {
                            Ok(low_watermark) => {
                                result.low_watermark = low_watermark;
                                broker.audit_change(
                                    &caller,
                                    format!("TOPIC:{}", &*topic.name),
                                    "DELETE_RECORDS",
                                    format!(
                                        "partition {} before offset {low_watermark}",
                                        partition.partition_index
                                    ),
                                );
                            }
                            Err(err) => result.error_code = BrokerError::from(&err).code(),
                        },
                    }
                    topic_result.partitions.push(result);
                }
                response.topics.push(topic_result);
            }
            response
        };
        tokio::task::spawn_blocking(work)
            .await
            .unwrap_or_else(|err| {
                tracing::error!(error = %err, "delete records task failed");
                DeleteRecordsResponse::default()
            })
    }
}

/// `Ok` when `topic` is among the `allowed`, else TOPIC_AUTHORIZATION_FAILED.
fn authorized(allowed: &HashSet<String>, topic: &str) -> Result<(), ResponseError> {
    if allowed.contains(topic) {
        Ok(())
    } else {
        Err(ResponseError::TopicAuthorizationFailed)
    }
}

/// Answers one ListOffsets query; `None` means no such offset (-1/-1).
fn lookup_offset(
    partition: &Partition,
    timestamp: i64,
    read_committed: bool,
) -> Result<Option<(i64, i64)>, ResponseError> {
    let offsets = partition.log.offsets();
    let storage = |err: spate_log::LogError| {
        ResponseError::try_from_code(BrokerError::from(&err).code())
            .unwrap_or(ResponseError::UnknownServerError)
    };
    match timestamp {
        EARLIEST | EARLIEST_LOCAL => Ok(Some((offsets.log_start_offset, -1))),
        LATEST if read_committed => Ok(Some((offsets.last_stable_offset, -1))),
        LATEST => Ok(Some((offsets.high_watermark, -1))),
        // Nothing is tiered or waiting for upload in a local log.
        LATEST_TIERED | EARLIEST_PENDING_UPLOAD => Ok(Some((-1, -1))),
        MAX_TIMESTAMP => partition.log.max_timestamp_offset().map_err(storage),
        ts if ts >= 0 => partition.log.offset_for_timestamp(ts).map_err(storage),
        _ => Err(ResponseError::InvalidRequest),
    }
}
