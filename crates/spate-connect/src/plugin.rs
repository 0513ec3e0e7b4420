//! What a connector is to the runtime: a [`Connector`] validates its config and splits the work
//! into task configs; its [`SourceTask`]s poll records from a system, its [`SinkTask`]s put
//! records into one. Connectors are known by their Java class name (so existing Kafka Connect
//! configs work unchanged) and by the short aliases Kafka Connect accepts: the simple class
//! name and the simple name without `Connector`.

use serde_json::Value as Json;

use crate::config::{ConfigProblem, Props};
use crate::data::ConnectRecord;

/// Whether a connector reads from a system into topics or from topics into a system.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnectorKind {
    /// Into topics.
    Source,
    /// Out of topics.
    Sink,
}

impl ConnectorKind {
    /// `source` or `sink`, as the REST API writes it.
    pub fn name(self) -> &'static str {
        match self {
            ConnectorKind::Source => "source",
            ConnectorKind::Sink => "sink",
        }
    }
}

/// A configuration key as `GET /connector-plugins/{p}/config` describes it (Kafka's ConfigDef).
#[derive(Debug, Clone, PartialEq)]
pub struct ConfigKey {
    /// The key.
    pub name: &'static str,
    /// `STRING`, `INT`, `LONG`, `DOUBLE`, `BOOLEAN`, `LIST`, `CLASS`, `PASSWORD`.
    pub kind: &'static str,
    /// The default, if the key has one; keys without one are required.
    pub default: Option<&'static str>,
    /// `HIGH`, `MEDIUM`, `LOW`.
    pub importance: &'static str,
    /// What the key does.
    pub documentation: &'static str,
    /// The group the key is shown in.
    pub group: &'static str,
}

impl ConfigKey {
    /// A required key.
    pub const fn required(
        name: &'static str,
        kind: &'static str,
        documentation: &'static str,
    ) -> ConfigKey {
        ConfigKey {
            name,
            kind,
            default: None,
            importance: "HIGH",
            documentation,
            group: "Common",
        }
    }

    /// A key with a default.
    pub const fn optional(
        name: &'static str,
        kind: &'static str,
        default: &'static str,
        documentation: &'static str,
    ) -> ConfigKey {
        ConfigKey {
            name,
            kind,
            default: Some(default),
            importance: "MEDIUM",
            documentation,
            group: "Common",
        }
    }
}

/// A task failed; `retriable` failures are retried within `errors.retry.timeout`, and a sink's
/// `redeliver` failures until they pass or the task stops.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct TaskError {
    /// What went wrong and what to do.
    pub message: String,
    /// Whether trying again may succeed.
    pub retriable: bool,
    /// Kafka Connect's `RetriableException` from a sink's `put`: the runtime gives the same
    /// records again, with backoff, for as long as it takes (a store that is down).
    pub redeliver: bool,
}

impl TaskError {
    /// A failure that retrying will not fix.
    pub fn fatal(message: impl Into<String>) -> TaskError {
        TaskError {
            message: message.into(),
            retriable: false,
            redeliver: false,
        }
    }

    /// A failure that may pass.
    pub fn retriable(message: impl Into<String>) -> TaskError {
        TaskError {
            message: message.into(),
            retriable: true,
            redeliver: false,
        }
    }

    /// A sink's failure that passes when the system it writes to is back: the runtime puts
    /// the same records again until it does (or the task stops), as Kafka Connect does after a
    /// `RetriableException`.
    pub fn redeliver(message: impl Into<String>) -> TaskError {
        TaskError {
            message: message.into(),
            retriable: true,
            redeliver: true,
        }
    }
}

/// The committed offsets of a source connector, as its tasks see them at start.
pub trait OffsetReader {
    /// The last committed offset of `partition`.
    fn offset(&self, partition: &Json) -> Option<Json>;
    /// Every committed (partition, offset) of the connector, for tasks that find their
    /// partitions only later (a mirror lists its source's topics after `start`).
    fn all(&self) -> Vec<(Json, Json)> {
        Vec::new()
    }
}

/// A connector plugin.
pub trait Connector: Send + Sync {
    /// The Java class name (`org.apache.kafka.connect.file.FileStreamSourceConnector`).
    fn class(&self) -> &'static str;
    /// Source or sink.
    fn kind(&self) -> ConnectorKind;
    /// The version reported by `GET /connector-plugins`.
    fn version(&self) -> &'static str {
        env!("CARGO_PKG_VERSION")
    }
    /// The connector's own config keys (the runtime adds the common ones).
    fn config_keys(&self) -> Vec<ConfigKey>;
    /// Problems with the connector's own keys beyond required/type checks.
    fn validate(&self, _props: &Props) -> Vec<ConfigProblem> {
        Vec::new()
    }
    /// The configs of at most `max_tasks` tasks that share the work.
    fn task_configs(&self, props: &Props, max_tasks: usize) -> Result<Vec<Props>, TaskError>;
    /// The converter for keys and values when neither the connector nor the worker names one
    /// (MirrorMaker 2's connectors copy bytes: `ByteArrayConverter`); `None` for the worker's.
    fn default_converter(&self) -> Option<&'static str> {
        None
    }
    /// Whether the connector's records are exactly-once without the runtime's transactions (a
    /// mirror that places each record at its source offset, where the broker drops re-sends):
    /// its producer is then idempotent, never transactional, whatever
    /// `exactly.once.source.support` says.
    fn exactly_once_by_offsets(&self, _props: &Props) -> bool {
        false
    }
    /// A new source task (source connectors).
    fn source_task(&self) -> Option<Box<dyn SourceTask>> {
        None
    }
    /// A new sink task (sink connectors).
    fn sink_task(&self) -> Option<Box<dyn SinkTask>> {
        None
    }
}

/// A source task: polled by the runtime, which converts, transforms and produces the records
/// and commits their source offsets once the cluster has them. `start` runs while the worker's
/// state is locked: a task that talks to other systems before its first record does it in
/// `poll`.
pub trait SourceTask: Send {
    /// Starts with the task's config and the connector's committed offsets.
    fn start(&mut self, props: &Props, offsets: &dyn OffsetReader) -> Result<(), TaskError>;
    /// The next records; empty when there is nothing now (the runtime waits a little).
    fn poll(&mut self) -> Result<Vec<ConnectRecord>, TaskError>;
    /// Called after the offsets of everything polled so far are committed.
    fn commit(&mut self) -> Result<(), TaskError> {
        Ok(())
    }
    /// How long the runtime waits after a poll that returned nothing (zero for a task whose
    /// poll waits for data itself).
    fn idle_wait(&self) -> std::time::Duration {
        std::time::Duration::from_millis(100)
    }
    /// How far the task is behind its system, in bytes (a CDC task's WAL not yet confirmed),
    /// if it knows.
    fn lag_bytes(&self) -> Option<u64> {
        None
    }
    /// How far the task is behind its system, in records (a mirror's source partitions), if
    /// it knows.
    fn lag_records(&self) -> Option<u64> {
        None
    }
    /// The client settings of the cluster the runtime produces the task's records to, given
    /// before `start`, for tasks that manage topics or groups there (a mirror).
    fn target_cluster(&mut self, _client: rdkafka::ClientConfig) {}
    /// Releases what the task holds.
    fn stop(&mut self) {}
}

/// A sink task: given records, it writes them; the runtime commits their offsets after a
/// successful flush.
pub trait SinkTask: Send {
    /// Starts with the task's config.
    fn start(&mut self, props: &Props) -> Result<(), TaskError>;
    /// Writes (or buffers) records. Called with no records too when none came for a while,
    /// so a task can act on time (rotate a file on schedule).
    fn put(&mut self, records: &[ConnectRecord]) -> Result<(), TaskError>;
    /// Makes everything put so far durable.
    fn flush(&mut self) -> Result<(), TaskError>;
    /// The offsets the runtime may commit, given the next offset of each partition after
    /// everything put so far: Kafka Connect's `preCommit`. The default flushes and returns them
    /// all; a task that writes whole files returns, per partition, where its oldest file not yet
    /// written begins.
    fn pre_commit(&mut self, offsets: &SinkOffsets) -> Result<SinkOffsets, TaskError> {
        self.flush()?;
        Ok(offsets.clone())
    }
    /// Partitions a rebalance took from this task: what the task holds for them is dropped
    /// (their new owner reads them again from the last commit). Kafka Connect's `close`.
    fn close(&mut self, _partitions: &[(String, i32)]) {}
    /// Releases what the task holds.
    fn stop(&mut self) {}
}

/// Next offsets of topic partitions, as a sink commits them.
pub type SinkOffsets = std::collections::BTreeMap<(String, i32), i64>;

/// The connectors built in.
pub fn connectors() -> Vec<Box<dyn Connector>> {
    vec![
        Box::new(crate::connectors::file::FileStreamSource),
        Box::new(crate::connectors::file::FileStreamSink),
        // First of the two HTTP sinks, so the alias `HttpSinkConnector` means Confluent's.
        Box::new(crate::connectors::http::ConfluentHttpSink),
        Box::new(crate::connectors::http::AivenHttpSink),
        Box::new(crate::connectors::datagen::Datagen),
        Box::new(crate::connectors::postgres::PostgresConnector),
        Box::new(crate::connectors::jdbc::JdbcSink),
        Box::new(crate::connectors::storage::StorageSink(
            crate::connectors::storage::Cloud::S3,
        )),
        Box::new(crate::connectors::storage::StorageSink(
            crate::connectors::storage::Cloud::Gcs,
        )),
        Box::new(crate::connectors::storage::StorageSink(
            crate::connectors::storage::Cloud::Azure,
        )),
        Box::new(crate::connectors::iceberg::IcebergSink),
        Box::new(crate::connectors::mirror::MirrorSource),
        Box::new(crate::connectors::mirror::MirrorCheckpoint),
    ]
}

/// The connector `class`: its full name or an alias Kafka Connect accepts.
pub fn find_connector(class: &str) -> Option<Box<dyn Connector>> {
    connectors().into_iter().find(|c| {
        let full = c.class();
        let simple = full.rsplit('.').next().unwrap_or(full);
        class == full || class == simple || Some(class) == simple.strip_suffix("Connector")
    })
}
