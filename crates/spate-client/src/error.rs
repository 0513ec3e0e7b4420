//! The client's error type and the readable form of Kafka error codes.
//!
//! Every failure the client can report is a variant of [`Error`], with the broker, API and
//! limits involved as fields. An error code returned by a broker becomes a [`KafkaError`],
//! which prints Kafka's own name for it (`UNKNOWN_TOPIC_OR_PARTITION`), a short explanation
//! and the broker's message when it sent one. This module does no I/O.

use kafka_protocol::ResponseError;
use kafka_protocol::messages::ApiKey;

/// Anything that can go wrong talking to a Kafka cluster.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A `--brokers` entry that is not `HOST:PORT`.
    #[error("invalid broker address {address:?}: expected HOST:PORT")]
    InvalidBrokerAddress {
        /// The address as given.
        address: String,
    },
    /// The TCP connection could not be opened.
    #[error("cannot connect to {broker}: {source}")]
    Connect {
        /// `HOST:PORT` of the broker.
        broker: String,
        /// The socket error.
        #[source]
        source: std::io::Error,
    },
    /// Opening the TCP connection took too long.
    #[error("timed out after {timeout_ms} ms connecting to {broker}")]
    ConnectTimeout {
        /// `HOST:PORT` of the broker.
        broker: String,
        /// The connect timeout.
        timeout_ms: u64,
    },
    /// None of the bootstrap brokers answered.
    #[error(
        "no broker reachable (tried {brokers}): {last_error}; check --brokers or SPATE_BROKERS"
    )]
    NoBrokerReachable {
        /// The bootstrap list, comma separated.
        brokers: String,
        /// Why the last one failed.
        last_error: Box<Error>,
    },
    /// The connection broke while a request was outstanding (or before it was sent).
    #[error("connection to {broker} failed: {reason}")]
    ConnectionClosed {
        /// `HOST:PORT` of the broker.
        broker: String,
        /// What happened.
        reason: String,
    },
    /// No response arrived in time. The connection is closed afterwards, as Kafka clients do.
    #[error("{api:?} request to {broker} timed out after {timeout_ms} ms")]
    RequestTimeout {
        /// `HOST:PORT` of the broker.
        broker: String,
        /// Which API.
        api: ApiKey,
        /// The request timeout.
        timeout_ms: u64,
    },
    /// A response frame larger than the client accepts.
    #[error(
        "response of {size_bytes} bytes from {broker} exceeds the limit of {limit_bytes} bytes"
    )]
    ResponseTooLarge {
        /// `HOST:PORT` of the broker.
        broker: String,
        /// Declared frame size.
        size_bytes: i64,
        /// The client's limit.
        limit_bytes: usize,
    },
    /// A response whose correlation id is not the one expected next.
    #[error("response from {broker} has correlation id {actual}, expected {expected}")]
    CorrelationMismatch {
        /// `HOST:PORT` of the broker.
        broker: String,
        /// The id of the oldest outstanding request.
        expected: i32,
        /// The id in the response.
        actual: i32,
    },
    /// A request that the `kafka-protocol` crate refused to encode (a bug in this client).
    #[error("cannot encode {api:?} v{version} request: {reason}")]
    Encode {
        /// Which API.
        api: ApiKey,
        /// The negotiated version.
        version: i16,
        /// Encoder message.
        reason: String,
    },
    /// A response that does not parse.
    #[error("malformed {api:?} v{version} response from {broker}: {reason}")]
    Decode {
        /// `HOST:PORT` of the broker.
        broker: String,
        /// Which API.
        api: ApiKey,
        /// The negotiated version.
        version: i16,
        /// Decoder message.
        reason: String,
    },
    /// The broker does not offer a version of the API this client speaks.
    #[error(
        "broker {broker} does not support {api:?} in a version this client speaks \
         (client {client_min}..={client_max}, broker {broker_versions})"
    )]
    UnsupportedApi {
        /// `HOST:PORT` of the broker.
        broker: String,
        /// Which API.
        api: ApiKey,
        /// Lowest version the client speaks.
        client_min: i16,
        /// Highest version the client speaks.
        client_max: i16,
        /// What the broker advertised, e.g. `0..=3` or `none`.
        broker_versions: String,
    },
    /// An error code returned by a broker.
    #[error("{context}: {error}")]
    Kafka {
        /// What was being done, e.g. `create topic "orders"`.
        context: String,
        /// The code and message.
        error: KafkaError,
    },
    /// The topic is not in the cluster metadata.
    #[error("topic {topic:?} does not exist")]
    UnknownTopic {
        /// The topic.
        topic: String,
    },
    /// The topic does not exist and the cluster did not create it when asked to (topic
    /// auto-creation is off, or the principal may not create topics).
    #[error(
        "topic {topic:?} does not exist and the cluster does not create topics on first use; \
         create it first (spate topic create {topic})"
    )]
    TopicNotAutoCreated {
        /// The topic.
        topic: String,
    },
    /// A partition number outside the topic.
    #[error("topic {topic:?} has no partition {partition} (it has {partition_count})")]
    UnknownPartition {
        /// The topic.
        topic: String,
        /// The partition asked for.
        partition: i32,
        /// How many partitions the topic has.
        partition_count: usize,
    },
    /// The partition has no leader right now.
    #[error(
        "partition {partition} of topic {topic:?} has no leader; retry when the cluster has recovered"
    )]
    NoLeader {
        /// The topic.
        topic: String,
        /// The partition.
        partition: i32,
    },
    /// Metadata names a broker id without an address.
    #[error("broker {node_id} is not in the cluster metadata")]
    UnknownBroker {
        /// The node id.
        node_id: i32,
    },
    /// Records could not be encoded into a batch.
    #[error("cannot encode a record batch: {reason}")]
    RecordEncode {
        /// Encoder message.
        reason: String,
    },
    /// A fetched record batch that does not parse (bad CRC, unknown codec, truncated record).
    #[error("corrupt record batch in {topic}-{partition} at offset {offset}: {reason}")]
    RecordDecode {
        /// The topic.
        topic: String,
        /// The partition.
        partition: i32,
        /// Base offset of the batch.
        offset: i64,
        /// Decoder message.
        reason: String,
    },
    /// A single record batch larger than the fetch size: fetching cannot make progress.
    #[error(
        "record batch at offset {offset} in {topic}-{partition} is larger than the fetch size \
         ({size_bytes} > {limit_bytes} bytes)"
    )]
    BatchTooLarge {
        /// The topic.
        topic: String,
        /// The partition.
        partition: i32,
        /// Base offset of the batch.
        offset: i64,
        /// The batch's size.
        size_bytes: usize,
        /// The fetch size.
        limit_bytes: usize,
    },
    /// A legacy (magic 0 or 1) message set, which this client does not read.
    #[error(
        "{topic}-{partition} at offset {offset} holds a message set of format v{magic}; \
         only record batches (v2) can be read"
    )]
    LegacyMessageFormat {
        /// The topic.
        topic: String,
        /// The partition.
        partition: i32,
        /// Base offset of the message set.
        offset: i64,
        /// The magic byte.
        magic: i8,
    },
    /// An argument the client cannot act on.
    #[error("{0}")]
    InvalidArgument(String),
    /// The TLS settings cannot be used (a certificate file missing or unreadable).
    #[error("TLS setup: {reason}")]
    TlsSetup {
        /// What is wrong, naming the file.
        reason: String,
    },
    /// The TLS handshake with a broker failed (an untrusted certificate, a name that does not
    /// match, a broker that does not speak TLS on that port).
    #[error(
        "TLS handshake with {broker} failed: {reason}; check --tls-ca-file and that the port is \
         an SSL or SASL_SSL listener"
    )]
    TlsHandshake {
        /// `HOST:PORT` of the broker.
        broker: String,
        /// rustls's reason.
        reason: String,
    },
    /// The broker does not enable the SASL mechanism asked for (or the listener has no SASL).
    #[error(
        "broker {broker} does not accept SASL mechanism {mechanism} on this listener \
         (it offers: {offered}); check --sasl-mechanism and --security-protocol"
    )]
    SaslMechanismNotEnabled {
        /// `HOST:PORT` of the broker.
        broker: String,
        /// The mechanism asked for.
        mechanism: String,
        /// The mechanisms the broker listed, comma-separated, or `none`.
        offered: String,
    },
    /// SASL authentication failed: the broker refused the credentials, or the client refused
    /// the broker's answers.
    #[error("SASL/{mechanism} authentication to {broker} failed: {message}")]
    Authentication {
        /// `HOST:PORT` of the broker.
        broker: String,
        /// The mechanism.
        mechanism: String,
        /// The broker's error message, or what the client found wrong.
        message: String,
    },
}

impl Error {
    /// Whether retrying after a metadata refresh can help: leadership moved, the topic is still
    /// being created, or the connection dropped before a request was written.
    pub fn is_retriable(&self) -> bool {
        match self {
            Error::Kafka { error, .. } => error.is_retriable(),
            Error::NoLeader { .. }
            | Error::Connect { .. }
            | Error::ConnectTimeout { .. }
            | Error::ConnectionClosed { .. }
            | Error::RequestTimeout { .. } => true,
            _ => false,
        }
    }

    /// Whether the error is about reaching one broker (so another may do better), rather than
    /// about the client's settings or credentials, which every broker would refuse alike.
    pub fn is_connect_failure(&self) -> bool {
        matches!(
            self,
            Error::Connect { .. }
                | Error::ConnectTimeout { .. }
                | Error::ConnectionClosed { .. }
                | Error::RequestTimeout { .. }
        )
    }

    /// The Kafka error code behind this error, if it came from a broker.
    pub fn kafka_code(&self) -> Option<i16> {
        match self {
            Error::Kafka { error, .. } => Some(error.code),
            _ => None,
        }
    }
}

/// The crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Kafka error codes the client acts on.
pub mod code {
    /// No error.
    pub const NONE: i16 = 0;
    /// The fetch offset is outside the log.
    pub const OFFSET_OUT_OF_RANGE: i16 = 1;
    /// The topic or partition does not exist (yet) on this broker.
    pub const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;
    /// The partition has no leader at the moment.
    pub const LEADER_NOT_AVAILABLE: i16 = 5;
    /// This broker is not the leader of the partition.
    pub const NOT_LEADER_OR_FOLLOWER: i16 = 6;
    /// The group coordinator is still loading the group's state.
    pub const COORDINATOR_LOAD_IN_PROGRESS: i16 = 14;
    /// The group coordinator is not available.
    pub const COORDINATOR_NOT_AVAILABLE: i16 = 15;
    /// This broker is not the group's coordinator.
    pub const NOT_COORDINATOR: i16 = 16;
    /// The generation of the group is not the one given.
    pub const ILLEGAL_GENERATION: i16 = 22;
    /// The member id is not known to the group.
    pub const UNKNOWN_MEMBER_ID: i16 = 25;
    /// The request asked for an API version the broker does not support.
    pub const UNSUPPORTED_VERSION: i16 = 35;
    /// The topic already exists.
    pub const TOPIC_ALREADY_EXISTS: i16 = 36;
    /// The broker is not the controller.
    pub const NOT_CONTROLLER: i16 = 41;
    /// The group is rebalancing; rejoin.
    pub const REBALANCE_IN_PROGRESS: i16 = 27;
    /// The group still has members.
    pub const NON_EMPTY_GROUP: i16 = 68;
    /// The group does not exist.
    pub const GROUP_ID_NOT_FOUND: i16 = 69;
    /// The client's leader epoch is older than the broker's.
    pub const FENCED_LEADER_EPOCH: i16 = 74;
    /// The client's leader epoch is newer than the broker's.
    pub const UNKNOWN_LEADER_EPOCH: i16 = 75;
    /// A transaction is committing offsets of the partition; retry shortly.
    pub const UNSTABLE_OFFSET_COMMIT: i16 = 88;
    /// The member must rejoin with the member id the coordinator gave it (KIP-394).
    pub const MEMBER_ID_REQUIRED: i16 = 79;
    /// The topic id is not known to the broker.
    pub const UNKNOWN_TOPIC_ID: i16 = 100;
    /// The topic id in the request does not match the topic name.
    pub const INCONSISTENT_TOPIC_ID: i16 = 103;
}

/// An error code from a broker, with the message the broker attached (if any).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KafkaError {
    /// Kafka's numeric error code (never 0).
    pub code: i16,
    /// The broker's `error_message`, when the response carries one.
    pub message: Option<String>,
}

impl KafkaError {
    /// `None` for code 0, else the error.
    pub fn from_code(code: i16, message: Option<&str>) -> Option<KafkaError> {
        (code != code::NONE).then(|| KafkaError {
            code,
            message: message.filter(|m| !m.is_empty()).map(str::to_string),
        })
    }

    /// Kafka's name for the code, e.g. `UNKNOWN_TOPIC_OR_PARTITION`.
    pub fn name(&self) -> String {
        error_name(self.code)
    }

    /// Whether Kafka classifies the error as retriable.
    pub fn is_retriable(&self) -> bool {
        ResponseError::try_from_code(self.code).is_some_and(|e| e.is_retriable())
    }
}

impl std::fmt::Display for KafkaError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.name())?;
        match (&self.message, explanation(self.code)) {
            (Some(message), _) => write!(f, ": {message}"),
            (None, Some(text)) => write!(f, ": {text}"),
            (None, None) => Ok(()),
        }
    }
}

impl std::error::Error for KafkaError {}

/// Kafka's name for an error code, e.g. `UNKNOWN_TOPIC_OR_PARTITION`, or `UNKNOWN_CODE_<n>`.
pub fn error_name(code: i16) -> String {
    match ResponseError::try_from_code(code) {
        None => "NONE".to_string(),
        Some(ResponseError::Unknown(code)) => format!("UNKNOWN_CODE_{code}"),
        Some(error) => screaming_snake(&format!("{error}")),
    }
}

/// `UnknownTopicOrPartition` -> `UNKNOWN_TOPIC_OR_PARTITION`.
fn screaming_snake(camel: &str) -> String {
    let mut out = String::with_capacity(camel.len() + 8);
    for (i, c) in camel.chars().enumerate() {
        if c.is_ascii_uppercase() && i > 0 {
            out.push('_');
        }
        out.push(c.to_ascii_uppercase());
    }
    out
}

/// A short explanation of the errors users meet, with what to do where that is clear.
fn explanation(code: i16) -> Option<&'static str> {
    Some(match code {
        -1 => "the broker hit an unexpected error; see its log",
        1 => "the offset is outside the partition's log",
        2 => "the batch failed its checksum or is otherwise corrupt",
        3 => "the topic or partition does not exist",
        5 => "the partition has no leader right now; retry shortly",
        6 => "this broker is not the partition's leader",
        7 => "the broker did not finish the request in time",
        10 => "the record batch is larger than the broker or topic accepts (max.message.bytes)",
        14 => "the group coordinator is still loading; retry shortly",
        15 => "the group coordinator is not available; retry shortly",
        16 => "this broker is not the group's coordinator",
        19 => "not enough in-sync replicas for acks=all",
        22 => "the group has moved to a newer generation",
        24 => "the group id is invalid",
        25 => "the member is not known to the group",
        27 => "the group is rebalancing",
        29 => "not authorized to access the topic",
        30 => "not authorized to access the group",
        31 => "not authorized for this cluster operation",
        33 => "the broker does not enable this SASL mechanism",
        34 => "the SASL exchange is out of order",
        35 => "the broker does not support this request version",
        36 => "the topic already exists",
        37 => "the partition count is invalid",
        38 => "the replication factor is invalid",
        40 => "the config is invalid",
        41 => "this broker is not the controller",
        42 => "the request is invalid",
        44 => "the policy refused the request",
        53 => "not authorized to use the transactional id",
        54 => "the broker has no authorizer configured, so it keeps no ACLs",
        58 => "authentication failed",
        68 => "the group still has active members; stop its consumers first",
        69 => "the group does not exist",
        87 => "the record was rejected by the broker",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_kafka() {
        assert_eq!(error_name(3), "UNKNOWN_TOPIC_OR_PARTITION");
        assert_eq!(error_name(36), "TOPIC_ALREADY_EXISTS");
        assert_eq!(error_name(-1), "UNKNOWN_SERVER_ERROR");
        assert_eq!(error_name(0), "NONE");
        assert_eq!(error_name(30000), "UNKNOWN_CODE_30000");
    }

    #[test]
    fn display_prefers_the_broker_message() {
        let error = KafkaError::from_code(36, Some("Topic 'a' already exists.")).expect("error");
        assert_eq!(
            error.to_string(),
            "TOPIC_ALREADY_EXISTS: Topic 'a' already exists."
        );
        let error = KafkaError::from_code(36, Some("")).expect("error");
        assert_eq!(
            error.to_string(),
            "TOPIC_ALREADY_EXISTS: the topic already exists"
        );
        assert!(KafkaError::from_code(0, None).is_none());
    }

    #[test]
    fn retriable_follows_kafka() {
        assert!(KafkaError::from_code(6, None).is_some_and(|e| e.is_retriable()));
        assert!(!KafkaError::from_code(36, None).is_some_and(|e| e.is_retriable()));
    }
}
