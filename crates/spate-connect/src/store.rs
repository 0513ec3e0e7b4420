//! The worker's state in Kafka Connect's three compacted topics, in Kafka Connect's record
//! formats, so tools that read those topics (and a later Kafka Connect) understand them:
//!
//! - `connect-configs` (one partition): `connector-<c>` → `{"properties": {...}}`,
//!   `task-<c>-<n>` → `{"properties": {...}}`, `commit-<c>` → `{"tasks": N}` (task configs take
//!   effect only once committed), `target-state-<c>` → `{"state": "STARTED|PAUSED|STOPPED",
//!   "state.v2": ...}`, `restart-connector-<c>` → `{"include-tasks": b, "only-failed": b}`.
//! - `connect-offsets`: key `["<c>", {source partition}]` → the source offset (null deletes).
//! - `connect-status`: `status-connector-<c>` and `status-task-<c>-<n>` →
//!   `{"state", "trace", "worker_id", "generation"}`; `status-topic-<t>:connector-<c>` → the
//!   connector's active topics.
//!
//! [`StateLog`] is the narrow interface to the topics ([`KafkaStateLog`] over librdkafka,
//! [`MemoryStateLog`] for tests); [`ClusterState`] is what the records say, rebuilt by
//! replaying them. Nothing here starts connectors.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::Message;
use rdkafka::producer::{BaseRecord, DeliveryResult, ProducerContext, ThreadedProducer};
use rdkafka::{ClientContext, Offset, TopicPartitionList};
use serde_json::{Value as Json, json};

use crate::config::Props;
use crate::worker_config::WorkerConfig;

/// How long a write to a state topic may take before it is reported as failed.
const WRITE_TIMEOUT: Duration = Duration::from_secs(30);

/// A state topic could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The Kafka client failed.
    #[error("{context}: {source}")]
    Kafka {
        /// What was being done.
        context: String,
        /// librdkafka's error.
        source: KafkaError,
    },
    /// An operation did not finish in time.
    #[error("{0} did not finish within {1:?}")]
    Timeout(String, Duration),
}

fn kafka(context: impl Into<String>) -> impl FnOnce(KafkaError) -> StoreError {
    let context = context.into();
    move |source| StoreError::Kafka { context, source }
}

/// A record read from a state topic.
#[derive(Debug, Clone, PartialEq)]
pub struct StateRecord {
    /// The topic.
    pub topic: String,
    /// The partition.
    pub partition: i32,
    /// The offset.
    pub offset: i64,
    /// The key.
    pub key: Vec<u8>,
    /// The value; `None` is a tombstone.
    pub value: Option<Vec<u8>>,
}

/// Reading and writing the worker's state topics.
pub trait StateLog: Send + Sync {
    /// Writes a record and returns where it landed once the cluster acknowledged it.
    fn send(&self, topic: &str, key: &[u8], value: Option<&[u8]>)
    -> Result<(i32, i64), StoreError>;
    /// The records that arrived since the last call, waiting up to `timeout` for the first.
    fn poll(&self, timeout: Duration) -> Result<Vec<StateRecord>, StoreError>;
    /// The end offset of every partition of the state topics.
    fn end_offsets(&self) -> Result<BTreeMap<(String, i32), i64>, StoreError>;
    /// The next offset [`StateLog::poll`] reads per partition (past control records and
    /// compacted gaps, which no record shows).
    fn positions(&self) -> Result<BTreeMap<(String, i32), i64>, StoreError>;
}

/// Delivery reports of the state producer, one channel per record.
struct AckContext;

impl ClientContext for AckContext {}

impl ProducerContext for AckContext {
    type DeliveryOpaque = Box<mpsc::SyncSender<Result<(i32, i64), KafkaError>>>;

    fn delivery(&self, result: &DeliveryResult<'_>, reply: Self::DeliveryOpaque) {
        let answer = match result {
            Ok(message) => Ok((message.partition(), message.offset())),
            Err((error, _)) => Err(error.clone()),
        };
        let _ = reply.send(answer);
    }
}

/// The state topics on a Kafka-compatible cluster.
pub struct KafkaStateLog {
    producer: ThreadedProducer<AckContext>,
    consumer: Mutex<BaseConsumer>,
    partitions: Vec<(String, i32)>,
}

impl KafkaStateLog {
    /// Creates the three topics if they are missing (compacted; Kafka Connect's partition
    /// counts) and reads them from the beginning.
    pub fn open(config: &WorkerConfig) -> Result<KafkaStateLog, StoreError> {
        let topics = [
            (config.config_topic.clone(), 1),
            (config.offset_topic.clone(), config.offset_partitions),
            (config.status_topic.clone(), config.status_partitions),
        ];
        create_compacted_topics(config, &topics)?;
        let producer: ThreadedProducer<AckContext> = config
            .client("producer.")
            .set("acks", "all")
            .set("enable.idempotence", "true")
            .set("linger.ms", "0")
            // Java's partitioner, so offsets and statuses land where Kafka Connect puts them.
            .set("partitioner", "murmur2_random")
            .create_with_context(AckContext)
            .map_err(kafka("creating the state producer"))?;
        let consumer: BaseConsumer = config
            .client("consumer.")
            .set("group.id", format!("{}-state", config.group_id))
            .set("enable.auto.commit", "false")
            .set("enable.partition.eof", "false")
            .set("isolation.level", "read_committed")
            .set("fetch.wait.max.ms", "100")
            .create()
            .map_err(kafka("creating the state consumer"))?;
        let mut partitions = Vec::new();
        let mut list = TopicPartitionList::new();
        for (topic, _) in &topics {
            let metadata = consumer
                .fetch_metadata(Some(topic), Duration::from_secs(30))
                .map_err(kafka(format!("reading the metadata of {topic}")))?;
            let count = metadata
                .topics()
                .first()
                .map_or(0, |t| t.partitions().len());
            for partition in 0..count as i32 {
                partitions.push((topic.clone(), partition));
                list.add_partition_offset(topic, partition, Offset::Beginning)
                    .map_err(kafka("assigning the state topics"))?;
            }
        }
        consumer
            .assign(&list)
            .map_err(kafka("assigning the state topics"))?;
        Ok(KafkaStateLog {
            producer,
            consumer: Mutex::new(consumer),
            partitions,
        })
    }
}

/// Creates `topics` (name, partitions) as compacted topics unless they exist.
pub fn create_compacted_topics(
    config: &WorkerConfig,
    topics: &[(String, i32)],
) -> Result<(), StoreError> {
    create_topics(config, topics, true)
}

/// Creates `topics` (name, partitions) unless they exist, compacted if `compact`, with the
/// config's replication factor.
pub fn create_topics(
    config: &WorkerConfig,
    topics: &[(String, i32)],
    compact: bool,
) -> Result<(), StoreError> {
    let admin: AdminClient<DefaultClientContext> = config
        .client("admin.")
        .create()
        .map_err(kafka("creating the admin client"))?;
    let new: Vec<NewTopic<'_>> = topics
        .iter()
        .map(|(name, partitions)| {
            NewTopic::new(
                name,
                *partitions,
                TopicReplication::Fixed(config.replication_factor),
            )
            .set("cleanup.policy", if compact { "compact" } else { "delete" })
        })
        .collect();
    let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(30)));
    let results = futures::executor::block_on(admin.create_topics(&new, &options))
        .map_err(kafka("creating topics"))?;
    for result in results {
        match result {
            Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((topic, code)) => {
                return Err(StoreError::Kafka {
                    context: format!("creating topic {topic}"),
                    source: KafkaError::AdminOp(code),
                });
            }
        }
    }
    Ok(())
}

impl StateLog for KafkaStateLog {
    fn send(
        &self,
        topic: &str,
        key: &[u8],
        value: Option<&[u8]>,
    ) -> Result<(i32, i64), StoreError> {
        let (reply, answer) = mpsc::sync_channel(1);
        let mut record = BaseRecord::with_opaque_to(topic, Box::new(reply)).key(key);
        if let Some(value) = value {
            record = record.payload(value);
        }
        self.producer
            .send(record)
            .map_err(|(e, _)| StoreError::Kafka {
                context: format!("writing to {topic}"),
                source: e,
            })?;
        match answer.recv_timeout(WRITE_TIMEOUT) {
            Ok(result) => result.map_err(kafka(format!("writing to {topic}"))),
            Err(_) => Err(StoreError::Timeout(
                format!("a write to {topic}"),
                WRITE_TIMEOUT,
            )),
        }
    }

    fn poll(&self, timeout: Duration) -> Result<Vec<StateRecord>, StoreError> {
        let consumer = self.consumer.lock();
        let mut records = Vec::new();
        let mut wait = timeout;
        while let Some(message) = consumer.poll(wait) {
            let message = message.map_err(kafka("reading the state topics"))?;
            records.push(StateRecord {
                topic: message.topic().to_string(),
                partition: message.partition(),
                offset: message.offset(),
                key: message.key().unwrap_or_default().to_vec(),
                value: message.payload().map(<[u8]>::to_vec),
            });
            wait = Duration::ZERO;
            if records.len() >= 10_000 {
                break;
            }
        }
        Ok(records)
    }

    fn end_offsets(&self) -> Result<BTreeMap<(String, i32), i64>, StoreError> {
        let consumer = self.consumer.lock();
        let mut ends = BTreeMap::new();
        for (topic, partition) in &self.partitions {
            let (_, high) = consumer
                .fetch_watermarks(topic, *partition, Duration::from_secs(10))
                .map_err(kafka(format!("reading the end of {topic}-{partition}")))?;
            ends.insert((topic.clone(), *partition), high);
        }
        Ok(ends)
    }

    fn positions(&self) -> Result<BTreeMap<(String, i32), i64>, StoreError> {
        let consumer = self.consumer.lock();
        let list = consumer
            .position()
            .map_err(kafka("reading the state consumer's positions"))?;
        Ok(list
            .elements()
            .iter()
            .map(|e| {
                let next = match e.offset() {
                    Offset::Offset(n) => n,
                    _ => 0,
                };
                ((e.topic().to_string(), e.partition()), next)
            })
            .collect())
    }
}

/// State topics in memory, for tests: one partition each.
#[derive(Default)]
pub struct MemoryStateLog {
    records: Mutex<(Vec<StateRecord>, usize)>,
}

impl StateLog for MemoryStateLog {
    fn send(
        &self,
        topic: &str,
        key: &[u8],
        value: Option<&[u8]>,
    ) -> Result<(i32, i64), StoreError> {
        let mut records = self.records.lock();
        let offset = records.0.iter().filter(|r| r.topic == topic).count() as i64;
        records.0.push(StateRecord {
            topic: topic.to_string(),
            partition: 0,
            offset,
            key: key.to_vec(),
            value: value.map(<[u8]>::to_vec),
        });
        Ok((0, offset))
    }

    fn poll(&self, _timeout: Duration) -> Result<Vec<StateRecord>, StoreError> {
        let mut records = self.records.lock();
        let new = records.0[records.1..].to_vec();
        records.1 = records.0.len();
        Ok(new)
    }

    fn end_offsets(&self) -> Result<BTreeMap<(String, i32), i64>, StoreError> {
        let records = self.records.lock();
        let mut ends = BTreeMap::new();
        for record in &records.0 {
            ends.insert((record.topic.clone(), 0), record.offset + 1);
        }
        Ok(ends)
    }

    fn positions(&self) -> Result<BTreeMap<(String, i32), i64>, StoreError> {
        let records = self.records.lock();
        let mut positions = BTreeMap::new();
        for record in &records.0[..records.1] {
            positions.insert((record.topic.clone(), 0), record.offset + 1);
        }
        Ok(positions)
    }
}

/// What a connector is asked to be (`target-state-<c>`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TargetState {
    /// Running.
    Started,
    /// Tasks kept but not processing.
    Paused,
    /// Connector and tasks shut down, task configs empty (KIP-875).
    Stopped,
}

impl TargetState {
    /// The name Kafka Connect writes.
    pub fn name(self) -> &'static str {
        match self {
            TargetState::Started => "STARTED",
            TargetState::Paused => "PAUSED",
            TargetState::Stopped => "STOPPED",
        }
    }
}

/// A connector's or a task's state as the status topic reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status {
    /// `UNASSIGNED`, `RUNNING`, `PAUSED`, `STOPPED`, `FAILED`, `RESTARTING`.
    pub state: String,
    /// The error's text and cause chain when FAILED.
    pub trace: Option<String>,
    /// The worker that reported it.
    pub worker_id: String,
    /// The worker group generation it was reported in.
    pub generation: i32,
}

/// A restart asked for through the REST API (`restart-connector-<c>`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RestartRequest {
    /// The connector.
    pub connector: String,
    /// Restart its tasks too.
    pub include_tasks: bool,
    /// Only what is FAILED.
    pub only_failed: bool,
}

/// The sorted-key text of a JSON value, so equal source partitions compare equal.
pub fn canonical_json(value: &Json) -> String {
    fn sorted(value: &Json) -> Json {
        match value {
            Json::Object(map) => {
                let entries: BTreeMap<&String, Json> =
                    map.iter().map(|(k, v)| (k, sorted(v))).collect();
                Json::Object(entries.into_iter().map(|(k, v)| (k.clone(), v)).collect())
            }
            Json::Array(items) => Json::Array(items.iter().map(sorted).collect()),
            other => other.clone(),
        }
    }
    sorted(value).to_string()
}

/// Everything the state topics say, rebuilt by replaying their records in order.
#[derive(Debug, Default, Clone)]
pub struct ClusterState {
    /// Connector configs by name.
    pub connectors: BTreeMap<String, Props>,
    /// Target states by connector (absent = STARTED).
    pub target_states: BTreeMap<String, TargetState>,
    /// Committed task configs by connector.
    pub tasks: BTreeMap<String, Vec<Props>>,
    /// Task configs written but not yet committed.
    pending_tasks: BTreeMap<String, BTreeMap<usize, Props>>,
    /// Connector statuses.
    pub connector_status: BTreeMap<String, Status>,
    /// Task statuses by (connector, task).
    pub task_status: BTreeMap<(String, usize), Status>,
    /// Source offsets by connector, then canonical partition text → (partition, offset).
    pub source_offsets: BTreeMap<String, BTreeMap<String, (Json, Json)>>,
    /// Topics each connector has used (KIP-558).
    pub active_topics: BTreeMap<String, BTreeSet<String>>,
    /// Restarts not yet carried out, in order.
    pub restarts: Vec<RestartRequest>,
    /// The next offset to read per state-topic partition.
    pub positions: BTreeMap<(String, i32), i64>,
    /// How many config-topic records changed connectors or tasks (for the herder's wake-ups).
    pub config_version: u64,
}

fn parse(value: &Option<Vec<u8>>) -> Option<Json> {
    value.as_ref().and_then(|v| serde_json::from_slice(v).ok())
}

fn props_of(json: &Json) -> Props {
    json.get("properties")
        .and_then(Json::as_object)
        .map(|m| {
            m.iter()
                .map(|(k, v)| {
                    (
                        k.clone(),
                        v.as_str().map_or_else(|| v.to_string(), str::to_string),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Splits `task-<c>-<n>` / `status-task-<c>-<n>` suffixes into (connector, task).
fn connector_and_task(rest: &str) -> Option<(String, usize)> {
    let (connector, task) = rest.rsplit_once('-')?;
    Some((connector.to_string(), task.parse().ok()?))
}

impl ClusterState {
    /// Applies one record from a state topic.
    pub fn apply(&mut self, config: &WorkerConfig, record: &StateRecord) {
        self.positions
            .insert((record.topic.clone(), record.partition), record.offset + 1);
        let key = String::from_utf8_lossy(&record.key).to_string();
        if record.topic == config.config_topic {
            self.apply_config(&key, &record.value);
        } else if record.topic == config.status_topic {
            self.apply_status(&key, &record.value);
        } else if record.topic == config.offset_topic {
            self.apply_offset(&record.key, &record.value);
        }
    }

    fn apply_config(&mut self, key: &str, value: &Option<Vec<u8>>) {
        let json = parse(value);
        if let Some(name) = key.strip_prefix("connector-") {
            match json {
                Some(json) => {
                    self.connectors.insert(name.to_string(), props_of(&json));
                }
                None => {
                    self.connectors.remove(name);
                    self.tasks.remove(name);
                    self.pending_tasks.remove(name);
                    self.target_states.remove(name);
                }
            }
            self.config_version += 1;
        } else if let Some(rest) = key.strip_prefix("task-") {
            if let (Some((name, task)), Some(json)) = (connector_and_task(rest), json) {
                self.pending_tasks
                    .entry(name)
                    .or_default()
                    .insert(task, props_of(&json));
            }
        } else if let Some(name) = key.strip_prefix("commit-") {
            let count = json
                .as_ref()
                .and_then(|j| j.get("tasks"))
                .and_then(Json::as_u64);
            if let Some(count) = count {
                let pending = self.pending_tasks.remove(name).unwrap_or_default();
                let tasks: Vec<Props> = (0..count as usize)
                    .map(|i| pending.get(&i).cloned().unwrap_or_default())
                    .collect();
                self.tasks.insert(name.to_string(), tasks);
                self.config_version += 1;
            }
        } else if let Some(name) = key.strip_prefix("target-state-") {
            let state = json
                .as_ref()
                .and_then(|j| j.get("state.v2").or_else(|| j.get("state")))
                .and_then(Json::as_str)
                .map(|s| match s {
                    "PAUSED" => TargetState::Paused,
                    "STOPPED" => TargetState::Stopped,
                    _ => TargetState::Started,
                });
            match state {
                Some(state) => {
                    self.target_states.insert(name.to_string(), state);
                }
                None => {
                    self.target_states.remove(name);
                }
            }
            self.config_version += 1;
        } else if let Some(name) = key.strip_prefix("restart-connector-")
            && let Some(json) = json
        {
            self.restarts.push(RestartRequest {
                connector: name.to_string(),
                include_tasks: json
                    .get("include-tasks")
                    .and_then(Json::as_bool)
                    .unwrap_or(false),
                only_failed: json
                    .get("only-failed")
                    .and_then(Json::as_bool)
                    .unwrap_or(false),
            });
            self.config_version += 1;
        }
    }

    fn apply_status(&mut self, key: &str, value: &Option<Vec<u8>>) {
        let json = parse(value);
        let status = json.as_ref().map(|j| Status {
            state: j
                .get("state")
                .and_then(Json::as_str)
                .unwrap_or("UNASSIGNED")
                .to_string(),
            trace: j.get("trace").and_then(Json::as_str).map(str::to_string),
            worker_id: j
                .get("worker_id")
                .and_then(Json::as_str)
                .unwrap_or_default()
                .to_string(),
            generation: j.get("generation").and_then(Json::as_i64).unwrap_or(0) as i32,
        });
        if let Some(name) = key.strip_prefix("status-connector-") {
            match status {
                Some(status) => self.connector_status.insert(name.to_string(), status),
                None => self.connector_status.remove(name),
            };
        } else if let Some(rest) = key.strip_prefix("status-task-")
            && let Some(id) = connector_and_task(rest)
        {
            match status {
                Some(status) => self.task_status.insert(id, status),
                None => self.task_status.remove(&id),
            };
        } else if let Some(rest) = key.strip_prefix("status-topic-")
            && let Some((topic, connector)) = rest.split_once(":connector-")
        {
            let topics = self.active_topics.entry(connector.to_string()).or_default();
            if json.is_some() {
                topics.insert(topic.to_string());
            } else {
                topics.remove(topic);
            }
        }
    }

    fn apply_offset(&mut self, key: &[u8], value: &Option<Vec<u8>>) {
        let Ok(Json::Array(parts)) = serde_json::from_slice::<Json>(key) else {
            return;
        };
        let (Some(Json::String(connector)), Some(partition)) = (parts.first(), parts.get(1)) else {
            return;
        };
        let offsets = self.source_offsets.entry(connector.clone()).or_default();
        let canonical = canonical_json(partition);
        match parse(value) {
            Some(offset) if !offset.is_null() => {
                offsets.insert(canonical, (partition.clone(), offset));
            }
            _ => {
                offsets.remove(&canonical);
            }
        }
    }

    /// The target state of `connector`.
    pub fn target_state(&self, connector: &str) -> TargetState {
        self.target_states
            .get(connector)
            .copied()
            .unwrap_or(TargetState::Started)
    }
}

/// The record values Kafka Connect writes to the config topic.
pub mod records {
    use super::*;

    /// `connector-<c>` / `task-<c>-<n>`.
    pub fn properties(props: &Props) -> Vec<u8> {
        json!({ "properties": props }).to_string().into_bytes()
    }

    /// `commit-<c>`.
    pub fn commit(tasks: usize) -> Vec<u8> {
        json!({ "tasks": tasks }).to_string().into_bytes()
    }

    /// `target-state-<c>`: `state` for readers before KIP-875 (which know no STOPPED, so it
    /// says PAUSED), `state.v2` for the rest.
    pub fn target_state(state: TargetState) -> Vec<u8> {
        let old = if state == TargetState::Stopped {
            "PAUSED"
        } else {
            state.name()
        };
        json!({ "state": old, "state.v2": state.name() })
            .to_string()
            .into_bytes()
    }

    /// `restart-connector-<c>`.
    pub fn restart(include_tasks: bool, only_failed: bool) -> Vec<u8> {
        json!({ "include-tasks": include_tasks, "only-failed": only_failed })
            .to_string()
            .into_bytes()
    }

    /// `status-connector-<c>` / `status-task-<c>-<n>`.
    pub fn status(state: &str, trace: Option<&str>, worker_id: &str, generation: i32) -> Vec<u8> {
        json!({ "state": state, "trace": trace, "worker_id": worker_id, "generation": generation })
            .to_string()
            .into_bytes()
    }

    /// `status-topic-<t>:connector-<c>`.
    pub fn active_topic(topic: &str, connector: &str, task: usize, now_ms: i64) -> Vec<u8> {
        json!({ "topic": { "name": topic, "connector": connector, "task": task, "discoverTimestamp": now_ms } })
            .to_string()
            .into_bytes()
    }

    /// The offsets-topic key of a source partition.
    pub fn offset_key(connector: &str, partition: &Json) -> Vec<u8> {
        json!([connector, partition]).to_string().into_bytes()
    }
}

/// Reads the state topics up to their current ends into `state`, within `timeout`.
pub fn read_to_end(
    log: &dyn StateLog,
    config: &WorkerConfig,
    state: &Mutex<ClusterState>,
    timeout: Duration,
) -> Result<(), StoreError> {
    let ends = log.end_offsets()?;
    let deadline = Instant::now() + timeout;
    loop {
        let positions = log.positions()?;
        let behind = ends
            .iter()
            .any(|(tp, end)| positions.get(tp).copied().unwrap_or(0) < *end);
        if !behind {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(StoreError::Timeout(
                "reading the state topics to their end".into(),
                timeout,
            ));
        }
        let records = log.poll(Duration::from_millis(100))?;
        let mut state = state.lock();
        for record in &records {
            state.apply(config, record);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> WorkerConfig {
        let props = [("bootstrap.servers".to_string(), "x:1".to_string())]
            .into_iter()
            .collect();
        WorkerConfig::from_props(props, "w").expect("valid")
    }

    #[test]
    fn task_configs_take_effect_only_when_committed() {
        let config = config();
        let log = MemoryStateLog::default();
        let props: Props = [("a".to_string(), "1".to_string())].into_iter().collect();
        log.send(
            "connect-configs",
            b"connector-c",
            Some(&records::properties(&props)),
        )
        .expect("send");
        log.send(
            "connect-configs",
            b"task-c-0",
            Some(&records::properties(&props)),
        )
        .expect("send");
        let mut state = ClusterState::default();
        for r in log.poll(Duration::ZERO).expect("poll") {
            state.apply(&config, &r);
        }
        assert_eq!(state.connectors.get("c"), Some(&props));
        assert!(
            !state.tasks.contains_key("c"),
            "uncommitted tasks are not visible"
        );
        log.send("connect-configs", b"commit-c", Some(&records::commit(1)))
            .expect("send");
        for r in log.poll(Duration::ZERO).expect("poll") {
            state.apply(&config, &r);
        }
        assert_eq!(state.tasks.get("c"), Some(&vec![props]));
    }

    #[test]
    fn source_offsets_are_keyed_by_partition_whatever_the_key_order() {
        let config = config();
        let log = MemoryStateLog::default();
        log.send(
            "connect-offsets",
            br#"["c",{"a":1,"b":2}]"#,
            Some(br#"{"pos":1}"#),
        )
        .expect("send");
        log.send(
            "connect-offsets",
            br#"["c",{"b":2,"a":1}]"#,
            Some(br#"{"pos":2}"#),
        )
        .expect("send");
        let mut state = ClusterState::default();
        for r in log.poll(Duration::ZERO).expect("poll") {
            state.apply(&config, &r);
        }
        let offsets = &state.source_offsets["c"];
        assert_eq!(offsets.len(), 1);
        assert_eq!(
            offsets.values().next().map(|(_, o)| o.clone()),
            Some(json!({"pos": 2}))
        );
    }

    #[test]
    fn deleting_a_connector_forgets_its_tasks_and_target_state() {
        let config = config();
        let log = MemoryStateLog::default();
        let props = Props::new();
        log.send(
            "connect-configs",
            b"connector-c",
            Some(&records::properties(&props)),
        )
        .expect("send");
        log.send(
            "connect-configs",
            b"target-state-c",
            Some(&records::target_state(TargetState::Paused)),
        )
        .expect("send");
        log.send("connect-configs", b"commit-c", Some(&records::commit(0)))
            .expect("send");
        log.send("connect-configs", b"connector-c", None)
            .expect("send");
        let mut state = ClusterState::default();
        for r in log.poll(Duration::ZERO).expect("poll") {
            state.apply(&config, &r);
        }
        assert!(state.connectors.is_empty() && state.tasks.is_empty());
        assert_eq!(state.target_state("c"), TargetState::Started);
    }

    #[test]
    fn stopped_is_written_as_paused_for_old_readers() {
        let value: Json =
            serde_json::from_slice(&records::target_state(TargetState::Stopped)).expect("json");
        assert_eq!(value, json!({"state": "PAUSED", "state.v2": "STOPPED"}));
    }
}
