//! Spate Connect: a Kafka Connect-compatible runtime with built-in connectors.
//!
//! The runtime is a Kafka client of the broker, as Kafka Connect is (DESIGN.md, "Pillars above
//! the broker"): connector configs, source offsets and statuses live in the compacted topics
//! Kafka Connect uses, sink tasks consume in consumer groups, and the same code runs in-process
//! under `spate serve` or as `spate connect worker` against any Kafka-compatible cluster. This
//! crate never depends on the broker's internals.
//!
//! - [`data`]: Connect's schemas, values and records.
//! - [`config`]: connector and worker configuration values and the problems found in them.
//! - [`convert`]: converters under Kafka's class names (`JsonConverter`, `StringConverter`, ...).
//! - [`transforms`]: single message transforms and predicates under Kafka's class names.

pub mod api;
pub mod config;
pub mod connectors;
pub mod convert;
pub mod data;
pub mod errors;
pub mod group;
pub mod herder;
pub mod metrics;
pub mod plugin;
pub mod server;
pub mod store;
pub mod task;
pub mod topic_creation;
pub mod transforms;
pub mod validate;
pub mod worker_config;

/// `directives` (a tracing filter) plus what silences libraries that log what Connect already
/// reports: `pgwire-replication` logs an ERROR of its own whenever a replication session ends
/// with an error, which the PostgreSQL task reports (one WARN line, and it connects again). A
/// filter that names the library keeps the user's choice.
pub fn log_directives(directives: &str) -> String {
    if directives.contains("pgwire_replication") {
        directives.to_string()
    } else {
        format!("{directives},pgwire_replication::client::tokio_client=off")
    }
}
