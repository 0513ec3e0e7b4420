//! A small async Kafka client for the `spate` user commands; it works against Spate and any
//! Apache Kafka compatible cluster.
//!
//! It owns the client side of the wire protocol: connections with version negotiation
//! ([`connection`]) secured with TLS and SASL as Kafka's clients secure them ([`security`]),
//! cluster metadata and routing to partition leaders ([`client`]), topic and ACL
//! administration and offset lookups ([`admin`]), broker configs, record deletion, log
//! directories and transactions ([`cluster`]), consumer-group administration ([`groups`]),
//! membership of a consumer group ([`member`]), a batching producer ([`producer`]) and a
//! consumer of given partitions ([`consumer`]). Message and record-batch codecs are the `kafka-protocol`
//! crate's; this crate adds framing, routing, batching and error handling around them. It
//! knows nothing about the broker's internals and never prints: callers decide what users see.
//! Errors are [`Error`] values; every network call has a timeout.

pub mod admin;
pub mod client;
pub mod cluster;
pub mod connection;
pub mod consumer;
pub mod error;
pub mod groups;
pub mod member;
pub mod partitioner;
pub mod producer;
pub mod records;
pub mod security;

pub use admin::{
    ConfigChange, ConfigEntry, ConfigSource, CreatedTopic, ListedOffset, NewTopic, OffsetSpec,
};
pub use client::{
    BrokerMetadata, Client, ClientConfig, ClusterMetadata, PartitionMetadata, TopicMetadata,
};
pub use cluster::{
    BrokerConfigTarget, BrokerLogDirs, ListedTransaction, LogDir, ProducerDescription, ReplicaSize,
    TransactionDescription,
};
pub use connection::{Connection, Timeouts};
pub use consumer::{Consumer, ConsumerConfig, ConsumerEvent, OffsetReset, PartitionRecords, Poll};
pub use error::{Error, KafkaError, Result};
pub use groups::{
    CommittedOffset, Coordinator, GroupDescription, GroupMember, GroupType, ListedGroup,
    MemberAssignment,
};
pub use kafka_protocol::records::{Compression, TimestampType};
pub use member::{Assignor, Generation, GroupProtocol, Membership, MembershipConfig};
pub use producer::{AckedPartition, Acks, ProduceFailure, Producer, ProducerConfig};
pub use records::{ConsumedRecord, ProducerRecord};
pub use security::{
    SaslConfig, SaslMechanism, Security, SecurityConfig, SecurityProtocol, TlsConfig,
};
/// Kafka's ACL vocabulary, as the ACL admin calls take and return it.
pub use spate_auth::acl::{
    AclBinding, AclBindingFilter, Operation as AclOperation, PatternType as AclPatternType,
    Permission as AclPermission, ResourceType as AclResourceType,
};
pub use uuid::Uuid;
