//! The one place where internal errors become Kafka error codes.
//!
//! Every variant of the storage and broker errors maps here, by exhaustive match, so a new
//! variant does not compile until someone decides what clients see.

use kafka_protocol::ResponseError;
use spate_log::{BatchError, LogError};

/// Broker-level failures of a request on one resource (topic, partition, config).
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum BrokerError {
    /// The topic or partition does not exist here.
    #[error("unknown topic or partition {name}")]
    UnknownTopicOrPartition {
        /// Topic (and partition) as named by the client.
        name: String,
    },
    /// No topic with this id.
    #[error("unknown topic id {id}")]
    UnknownTopicId {
        /// The id as sent.
        id: String,
    },
    /// A topic name Kafka would refuse.
    #[error("invalid topic name {name:?}: {reason}")]
    InvalidTopic {
        /// The name as sent.
        name: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The topic exists already.
    #[error("topic {name} already exists")]
    TopicAlreadyExists {
        /// The name.
        name: String,
    },
    /// A partition count that cannot be used.
    #[error("invalid partition count: {reason}")]
    InvalidPartitions {
        /// What is wrong.
        reason: String,
    },
    /// A replication factor other than 1 on a single broker.
    #[error("replication factor {factor} is larger than the {brokers} available broker(s)")]
    InvalidReplicationFactor {
        /// Requested factor.
        factor: i16,
        /// Live brokers.
        brokers: usize,
    },
    /// A manual replica assignment naming other brokers.
    #[error("invalid replica assignment: {reason}")]
    InvalidReplicaAssignment {
        /// What is wrong.
        reason: String,
    },
    /// An invalid config name or value.
    #[error("{reason}")]
    InvalidConfig {
        /// The validator's message.
        reason: String,
    },
    /// A request field with an invalid value.
    #[error("invalid request: {reason}")]
    InvalidRequest {
        /// What is wrong.
        reason: String,
    },
    /// acks other than -1, 0 or 1.
    #[error("acks must be -1 (all), 0 or 1, not {acks}")]
    InvalidRequiredAcks {
        /// The value sent.
        acks: i16,
    },
    /// The broker could not finish in the request's timeout.
    #[error("request timed out after {timeout_ms} ms")]
    RequestTimedOut {
        /// The request's timeout.
        timeout_ms: i32,
    },
    /// The internal topic's operation is not allowed.
    #[error("{reason}")]
    PolicyViolation {
        /// Why.
        reason: String,
    },
    /// The principal may not perform the operation on the topic (ACLs).
    #[error("not authorized to {operation} topic {name}")]
    TopicAuthorizationFailed {
        /// The topic.
        name: String,
        /// What was refused, in words (`create`, `delete`, ...).
        operation: &'static str,
    },
    /// The principal may not perform the operation on the cluster (ACLs).
    #[error("not authorized to {operation}")]
    ClusterAuthorizationFailed {
        /// What was refused, in words.
        operation: &'static str,
    },
    /// A storage error.
    #[error(transparent)]
    Log(LogErrorKind),
}

/// A cloneable summary of a [`LogError`] (which holds an `io::Error`).
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
#[error("{message}")]
pub struct LogErrorKind {
    /// The Kafka error this maps to.
    pub code: i16,
    /// The error's text.
    pub message: String,
}

impl From<&LogError> for BrokerError {
    fn from(err: &LogError) -> BrokerError {
        BrokerError::Log(LogErrorKind {
            code: log_error_code(err).code(),
            message: err.to_string(),
        })
    }
}

impl From<LogError> for BrokerError {
    fn from(err: LogError) -> BrokerError {
        BrokerError::from(&err)
    }
}

/// The Kafka error a storage error becomes.
pub fn log_error_code(err: &LogError) -> ResponseError {
    match err {
        LogError::Io { .. } => ResponseError::KafkaStorageError,
        LogError::Batch(batch) => batch_error_code(batch),
        LogError::MessageTooLarge { .. } => ResponseError::MessageTooLarge,
        LogError::BatchLargerThanSegment { .. } => ResponseError::RecordListTooLarge,
        LogError::InvalidTimestamp { .. } => ResponseError::InvalidTimestamp,
        LogError::OffsetOutOfRange { .. } => ResponseError::OffsetOutOfRange,
        LogError::Offline { .. } => ResponseError::KafkaStorageError,
        LogError::InvalidProducerEpoch { .. } => ResponseError::InvalidProducerEpoch,
        LogError::OutOfOrderSequence { .. } => ResponseError::OutOfOrderSequenceNumber,
        // Confluent's mirror topics refuse produces too; no Kafka code says "read-only topic".
        LogError::MissingSourceOffset { .. } => ResponseError::InvalidRequest,
        LogError::InvalidSourceOffset { .. } => ResponseError::InvalidRecord,
        // The log went away under the request: the topic was deleted.
        LogError::Closed => ResponseError::UnknownTopicOrPartition,
    }
}

/// The Kafka error an invalid batch becomes.
pub fn batch_error_code(err: &BatchError) -> ResponseError {
    match err {
        BatchError::Truncated { .. }
        | BatchError::InvalidLength { .. }
        | BatchError::CorruptCrc { .. }
        | BatchError::UnknownCompression { .. }
        | BatchError::Decompress { .. } => ResponseError::CorruptMessage,
        BatchError::UnsupportedMagic { .. } => ResponseError::UnsupportedForMessageFormat,
        BatchError::RecordsRefused { errors } if errors.iter().any(|e| e.is_timestamp()) => {
            ResponseError::InvalidTimestamp
        }
        BatchError::InvalidRecords { .. }
        | BatchError::RecordsRefused { .. }
        | BatchError::NotOneBatch { .. }
        | BatchError::DecompressedTooLarge { .. } => ResponseError::InvalidRecord,
    }
}

impl BrokerError {
    /// The Kafka error code clients see.
    pub fn code(&self) -> i16 {
        let error = match self {
            BrokerError::UnknownTopicOrPartition { .. } => ResponseError::UnknownTopicOrPartition,
            BrokerError::UnknownTopicId { .. } => ResponseError::UnknownTopicId,
            BrokerError::InvalidTopic { .. } => ResponseError::InvalidTopicException,
            BrokerError::TopicAlreadyExists { .. } => ResponseError::TopicAlreadyExists,
            BrokerError::InvalidPartitions { .. } => ResponseError::InvalidPartitions,
            BrokerError::InvalidReplicationFactor { .. } => ResponseError::InvalidReplicationFactor,
            BrokerError::InvalidReplicaAssignment { .. } => ResponseError::InvalidReplicaAssignment,
            BrokerError::InvalidConfig { .. } => ResponseError::InvalidConfig,
            BrokerError::InvalidRequest { .. } => ResponseError::InvalidRequest,
            BrokerError::InvalidRequiredAcks { .. } => ResponseError::InvalidRequiredAcks,
            BrokerError::RequestTimedOut { .. } => ResponseError::RequestTimedOut,
            BrokerError::PolicyViolation { .. } => ResponseError::PolicyViolation,
            BrokerError::TopicAuthorizationFailed { .. } => ResponseError::TopicAuthorizationFailed,
            BrokerError::ClusterAuthorizationFailed { .. } => {
                ResponseError::ClusterAuthorizationFailed
            }
            BrokerError::Log(kind) => return kind.code,
        };
        error.code()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    #[test]
    fn storage_errors_map_to_the_codes_kafka_sends() {
        let io = LogError::Io {
            op: "append",
            path: PathBuf::from("x"),
            source: std::io::Error::from_raw_os_error(28),
        };
        assert!(io.is_disk_full());
        let cases = [
            (io, 56),
            (
                LogError::Batch(BatchError::CorruptCrc {
                    stored: 1,
                    computed: 2,
                }),
                2,
            ),
            (
                LogError::Batch(BatchError::UnsupportedMagic { magic: 1 }),
                43,
            ),
            (LogError::Batch(BatchError::NotOneBatch { count: 2 }), 87),
            (
                LogError::MessageTooLarge {
                    size_bytes: 2,
                    limit_bytes: 1,
                },
                10,
            ),
            (
                LogError::BatchLargerThanSegment {
                    size_bytes: 2,
                    segment_bytes: 1,
                },
                18,
            ),
            (
                LogError::InvalidTimestamp {
                    timestamp_ms: 0,
                    now_ms: 1,
                },
                32,
            ),
            (
                LogError::OffsetOutOfRange {
                    offset: 9,
                    log_start_offset: 0,
                    log_end_offset: 1,
                },
                1,
            ),
            (LogError::Offline { reason: "x".into() }, 56),
            (
                LogError::InvalidProducerEpoch {
                    producer_id: 1,
                    epoch: 0,
                    current_epoch: 1,
                },
                47,
            ),
            (
                LogError::OutOfOrderSequence {
                    producer_id: 1,
                    expected: 1,
                    received: 3,
                },
                45,
            ),
            (LogError::Closed, 3),
        ];
        for (err, code) in cases {
            assert_eq!(BrokerError::from(&err).code(), code, "{err}");
        }
    }
}
