//! The worker's controller (Kafka Connect's herder): it keeps [`ClusterState`] current by
//! tailing the state topics, carries out what the REST API asks by writing to the config topic
//! and waiting until it has read its own write back, and reconciles: for every connector it
//! computes task configs, and runs, pauses, restarts and stops task threads so that what runs
//! matches what the config topic says.
//!
//! Which connectors and tasks run here is the worker group's decision ([`group`]): the herder
//! computes task configs only for the connectors assigned to this worker and runs only the
//! tasks assigned to it; with no assignment (while rebalancing) it runs nothing.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};
use rdkafka::TopicPartitionList;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use serde_json::Value as Json;

use crate::config::{ConfigProblem, Props};
use crate::group::{self, Assignment};
use crate::metrics::ConnectMetrics;
use crate::plugin::{self, ConnectorKind};
use crate::store::{self, ClusterState, StateLog, StoreError, TargetState, records};
use crate::task::{self, RunningTask, TaskId};
use crate::validate;
use crate::worker_config::WorkerConfig;

/// How long an API call waits to read its own write back.
const READ_BACK_TIMEOUT: Duration = Duration::from_secs(30);

/// What an API call can fail with; the REST layer maps each to Kafka Connect's status code.
#[derive(Debug, thiserror::Error)]
pub enum HerderError {
    /// 404.
    #[error("Connector {0} not found")]
    NotFound(String),
    /// 404 for a task.
    #[error("Task {0} not found")]
    TaskNotFound(String),
    /// 409.
    #[error("{0}")]
    Conflict(String),
    /// 400.
    #[error("{0}")]
    BadRequest(String),
    /// 500: the state topics failed.
    #[error("{0}")]
    Store(#[from] StoreError),
}

/// What the worker's threads share.
pub struct Shared {
    /// The worker's configuration.
    pub config: WorkerConfig,
    /// The state topics.
    pub log: Arc<dyn StateLog>,
    /// The worker's metrics.
    pub metrics: Arc<ConnectMetrics>,
    /// What they say.
    pub state: Mutex<ClusterState>,
    pub(crate) changed: Condvar,
    pub(crate) stopping: AtomicBool,
    active_topics: Mutex<BTreeSet<(String, String)>>,
    /// The tasks running on this worker.
    tasks: Mutex<BTreeMap<(String, usize), RunningTask>>,
    /// What the worker group gave this worker; `None` while (re)joining.
    assignment: Mutex<Option<Assignment>>,
    /// Held while reconciling and while giving up an assignment, so no task starts after
    /// a rebalance began.
    reconciling: Mutex<()>,
}

impl Shared {
    /// This worker's current assignment.
    pub fn assignment(&self) -> Option<Assignment> {
        self.assignment.lock().clone()
    }

    /// Takes a new assignment and wakes the herder.
    pub(crate) fn set_assignment(&self, assignment: Assignment) {
        *self.assignment.lock() = Some(assignment);
        let _state = self.state.lock();
        self.changed.notify_all();
    }

    /// Gives up the assignment before a rebalance: every task stops (committing what it
    /// has) before this returns.
    pub(crate) fn release_assignment(&self) {
        let _guard = self.reconciling.lock();
        if self.assignment.lock().take().is_none() && self.tasks.lock().is_empty() {
            return;
        }
        let tasks = std::mem::take(&mut *self.tasks.lock());
        for (_, task) in tasks {
            task.stop();
        }
    }

    /// Waits up to `timeout` for the state to change.
    pub(crate) fn wait_for_change(&self, timeout: Duration) {
        let mut state = self.state.lock();
        if !self.stopping.load(Ordering::SeqCst) {
            self.changed.wait_for(&mut state, timeout);
        }
    }

    fn generation(&self) -> i32 {
        self.assignment.lock().as_ref().map_or(-1, |a| a.generation)
    }

    /// Writes a task's status.
    pub fn write_task_status(&self, id: &TaskId, state: &'static str, trace: Option<&str>) {
        self.metrics.set_state(&id.connector, id.task, state);
        let key = format!("status-task-{}-{}", id.connector, id.task);
        let value = records::status(state, trace, &self.config.worker_id, self.generation());
        if let Err(e) = self
            .log
            .send(&self.config.status_topic, key.as_bytes(), Some(&value))
        {
            tracing::warn!(connector = %id.connector, task = id.task, "cannot write the task's status: {e}");
        }
    }

    fn write_connector_status(&self, connector: &str, state: &str, trace: Option<&str>) {
        let key = format!("status-connector-{connector}");
        let value = records::status(state, trace, &self.config.worker_id, self.generation());
        if let Err(e) = self
            .log
            .send(&self.config.status_topic, key.as_bytes(), Some(&value))
        {
            tracing::warn!(connector, "cannot write the connector's status: {e}");
        }
    }

    /// Records that `connector` used `topic` (KIP-558), once.
    pub fn note_active_topic(&self, connector: &str, topic: &str, task: usize) {
        let new = self
            .active_topics
            .lock()
            .insert((connector.to_string(), topic.to_string()));
        let known = self
            .state
            .lock()
            .active_topics
            .get(connector)
            .is_some_and(|t| t.contains(topic));
        if new && !known {
            let key = format!("status-topic-{topic}:connector-{connector}");
            let now_ms = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as i64);
            let value = records::active_topic(topic, connector, task, now_ms);
            let _ = self
                .log
                .send(&self.config.status_topic, key.as_bytes(), Some(&value));
        }
    }

    /// Waits until the state has read `topic`-`partition` past `offset`.
    fn read_back(&self, topic: &str, (partition, offset): (i32, i64)) -> Result<(), HerderError> {
        let deadline = Instant::now() + READ_BACK_TIMEOUT;
        let mut state = self.state.lock();
        while state
            .positions
            .get(&(topic.to_string(), partition))
            .copied()
            .unwrap_or(0)
            <= offset
        {
            if self.changed.wait_until(&mut state, deadline).timed_out() {
                return Err(StoreError::Timeout(
                    format!("reading back a write to {topic}"),
                    READ_BACK_TIMEOUT,
                )
                .into());
            }
        }
        Ok(())
    }

    fn write_config(&self, key: &str, value: Option<&[u8]>) -> Result<(), HerderError> {
        let topic = &self.config.config_topic;
        let at = self.log.send(topic, key.as_bytes(), value)?;
        self.read_back(topic, at)
    }
}

/// A running worker: its tailer and herder threads and its tasks.
pub struct Worker {
    shared: Arc<Shared>,
    threads: Mutex<Vec<JoinHandle<()>>>,
}

/// A connector as `GET /connectors/{c}` shows it.
#[derive(Debug, Clone)]
pub struct ConnectorInfo {
    /// Its name.
    pub name: String,
    /// Its config.
    pub config: Props,
    /// Its task count.
    pub tasks: usize,
    /// Source or sink, if the class is known.
    pub kind: Option<ConnectorKind>,
}

impl Worker {
    /// Reads the state topics to their end and starts the worker's threads.
    pub fn start(
        config: WorkerConfig,
        log: Arc<dyn StateLog>,
        url: String,
        metrics: Arc<ConnectMetrics>,
    ) -> Result<Worker, StoreError> {
        let shared = Arc::new(Shared {
            config,
            log,
            metrics,
            state: Mutex::new(ClusterState::default()),
            changed: Condvar::new(),
            stopping: AtomicBool::new(false),
            active_topics: Mutex::new(BTreeSet::new()),
            tasks: Mutex::new(BTreeMap::new()),
            assignment: Mutex::new(None),
            reconciling: Mutex::new(()),
        });
        store::read_to_end(
            shared.log.as_ref(),
            &shared.config,
            &shared.state,
            Duration::from_secs(60),
        )?;
        let tailer = {
            let shared = Arc::clone(&shared);
            std::thread::Builder::new()
                .name("connect-tailer".into())
                .spawn(move || tail(&shared))
                .expect("spawning the state tailer")
        };
        let herder = {
            let shared = Arc::clone(&shared);
            std::thread::Builder::new()
                .name("connect-herder".into())
                .spawn(move || herd(&shared))
                .expect("spawning the herder")
        };
        let group = {
            let shared = Arc::clone(&shared);
            std::thread::Builder::new()
                .name("connect-group".into())
                .spawn(move || group::run(shared, url))
                .expect("spawning the group member")
        };
        Ok(Worker {
            shared,
            threads: Mutex::new(vec![group, herder, tailer]),
        })
    }

    /// What the worker's threads share.
    pub fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }

    /// Stops every task (committing what it has), then the worker's threads.
    pub fn stop(&self) {
        self.shared.stopping.store(true, Ordering::SeqCst);
        self.shared.changed.notify_all();
        let threads = std::mem::take(&mut *self.threads.lock());
        for thread in threads {
            let _ = thread.join();
        }
        self.shared.release_assignment();
    }

    /// The names of all connectors.
    pub fn connectors(&self) -> Vec<String> {
        self.shared
            .state
            .lock()
            .connectors
            .keys()
            .cloned()
            .collect()
    }

    /// A connector's config, task count and kind.
    pub fn info(&self, name: &str) -> Result<ConnectorInfo, HerderError> {
        let state = self.shared.state.lock();
        let config = state
            .connectors
            .get(name)
            .ok_or_else(|| HerderError::NotFound(name.to_string()))?;
        Ok(ConnectorInfo {
            name: name.to_string(),
            config: config.clone(),
            tasks: state.tasks.get(name).map_or(0, Vec::len),
            kind: config
                .get("connector.class")
                .and_then(|c| plugin::find_connector(c))
                .map(|c| c.kind()),
        })
    }

    /// The state snapshot (for statuses, tasks, offsets, topics).
    pub fn state(&self) -> ClusterState {
        self.shared.state.lock().clone()
    }

    /// Validates `config` and creates or replaces connector `name`; true when created.
    pub fn put_connector(
        &self,
        name: &str,
        config: Props,
        must_be_new: bool,
        initial: Option<TargetState>,
    ) -> Result<bool, HerderError> {
        let exists = self.shared.state.lock().connectors.contains_key(name);
        if exists && must_be_new {
            return Err(HerderError::Conflict(format!(
                "Connector {name} already exists"
            )));
        }
        let problems = validate::problems(&self.shared.config, &config);
        if !problems.is_empty() {
            return Err(HerderError::BadRequest(invalid_message(&problems)));
        }
        if !exists && let Some(state) = initial {
            self.shared.write_config(
                &format!("target-state-{name}"),
                Some(&records::target_state(state)),
            )?;
        }
        self.shared.write_config(
            &format!("connector-{name}"),
            Some(&records::properties(&config)),
        )?;
        Ok(!exists)
    }

    /// Deletes connector `name` (its offsets stay, as in Kafka Connect).
    pub fn delete_connector(&self, name: &str) -> Result<(), HerderError> {
        self.info(name)?;
        self.shared
            .write_config(&format!("connector-{name}"), None)?;
        self.shared
            .write_config(&format!("target-state-{name}"), None)?;
        Ok(())
    }

    /// Pauses, resumes or stops connector `name`.
    pub fn set_target_state(&self, name: &str, state: TargetState) -> Result<(), HerderError> {
        self.info(name)?;
        self.shared.write_config(
            &format!("target-state-{name}"),
            Some(&records::target_state(state)),
        )
    }

    /// Restarts connector `name` and, as asked, its (failed) tasks.
    pub fn restart(
        &self,
        name: &str,
        include_tasks: bool,
        only_failed: bool,
    ) -> Result<(), HerderError> {
        self.info(name)?;
        self.shared.write_config(
            &format!("restart-connector-{name}"),
            Some(&records::restart(include_tasks, only_failed)),
        )
    }

    /// Restarts task `task` of connector `name`.
    pub fn restart_task(&self, name: &str, task: usize) -> Result<(), HerderError> {
        let state = self.state();
        if !state.connectors.contains_key(name) {
            return Err(HerderError::NotFound(name.to_string()));
        }
        if state.tasks.get(name).is_none_or(|t| task >= t.len()) {
            return Err(HerderError::TaskNotFound(format!("{name}-{task}")));
        }
        let running = self.shared.tasks.lock().remove(&(name.to_string(), task));
        match running {
            Some(running) => running.stop(),
            None => {
                let owner = state
                    .task_status
                    .get(&(name.to_string(), task))
                    .map(|s| s.worker_id.clone())
                    .unwrap_or_default();
                return Err(HerderError::Conflict(format!(
                    "Task {name}-{task} does not run on this worker; send the request to the worker that runs it ({owner})"
                )));
            }
        }
        let _state = self.shared.state.lock();
        self.shared.changed.notify_all();
        Ok(())
    }

    /// Replaces (PATCH, `reset` false) or deletes (DELETE, `reset` true) a stopped source
    /// connector's offsets (KIP-875).
    pub fn alter_source_offsets(
        &self,
        name: &str,
        offsets: Vec<(Json, Option<Json>)>,
    ) -> Result<(), HerderError> {
        for (partition, offset) in offsets {
            let key = records::offset_key(name, &partition);
            let value = offset.map(|o| o.to_string().into_bytes());
            let at =
                self.shared
                    .log
                    .send(&self.shared.config.offset_topic, &key, value.as_deref())?;
            self.shared
                .read_back(&self.shared.config.offset_topic, at)?;
        }
        Ok(())
    }

    /// A consumer of connector `name`'s sink group (`connect-<name>`) that never joins it,
    /// and the partitions of the topics the connector consumes.
    fn sink_group(&self, name: &str) -> Result<(BaseConsumer, TopicPartitionList), HerderError> {
        let info = self.info(name)?;
        let failed = |e: rdkafka::error::KafkaError| {
            HerderError::Store(StoreError::Kafka {
                context: format!("reading the offsets of group connect-{name}"),
                source: e,
            })
        };
        let consumer: BaseConsumer = self
            .shared
            .config
            .client("consumer.")
            .set("group.id", format!("connect-{name}"))
            .set("enable.auto.commit", "false")
            .create()
            .map_err(failed)?;
        let metadata = consumer
            .fetch_metadata(None, Duration::from_secs(10))
            .map_err(failed)?;
        let listed: Vec<String> = info
            .config
            .get("topics")
            .map(|t| {
                t.split(',')
                    .map(|s| s.trim().to_string())
                    .filter(|s| !s.is_empty())
                    .collect()
            })
            .unwrap_or_default();
        let regex = info
            .config
            .get("topics.regex")
            .filter(|r| !r.is_empty())
            .and_then(|r| regex::Regex::new(&format!("^(?:{r})$")).ok());
        let mut list = TopicPartitionList::new();
        for topic in metadata.topics() {
            let wanted = listed.iter().any(|t| t == topic.name())
                || regex.as_ref().is_some_and(|r| r.is_match(topic.name()));
            if wanted {
                for partition in topic.partitions() {
                    list.add_partition(topic.name(), partition.id());
                }
            }
        }
        Ok((consumer, list))
    }

    /// The committed offsets of connector `name`'s sink group: (topic, partition, next offset).
    pub fn sink_offsets(&self, name: &str) -> Result<Vec<(String, i32, i64)>, HerderError> {
        let (consumer, list) = self.sink_group(name)?;
        let committed = consumer
            .committed_offsets(list, Duration::from_secs(10))
            .map_err(|e| {
                HerderError::Store(StoreError::Kafka {
                    context: format!("reading the offsets of group connect-{name}"),
                    source: e,
                })
            })?;
        Ok(committed
            .elements()
            .iter()
            .filter_map(|e| match e.offset() {
                rdkafka::Offset::Offset(n) => Some((e.topic().to_string(), e.partition(), n)),
                _ => None,
            })
            .collect())
    }

    /// Commits offsets to connector `name`'s sink group (`{"kafka_topic", "kafka_partition"}`
    /// → `{"kafka_offset"}`); a null offset resets the partition to the start.
    pub fn alter_sink_offsets(
        &self,
        name: &str,
        offsets: Vec<(Json, Option<Json>)>,
    ) -> Result<(), HerderError> {
        let (consumer, _) = self.sink_group(name)?;
        let mut list = TopicPartitionList::new();
        for (partition, offset) in offsets {
            let topic = partition.get("kafka_topic").and_then(Json::as_str);
            let number = partition.get("kafka_partition").and_then(Json::as_i64);
            let (Some(topic), Some(number)) = (topic, number) else {
                return Err(HerderError::BadRequest(
                    "Sink connector offsets need \"kafka_topic\" and \"kafka_partition\" in each partition".into(),
                ));
            };
            let next = match offset {
                None => 0,
                Some(o) => o
                    .get("kafka_offset")
                    .and_then(Json::as_i64)
                    .ok_or_else(|| {
                        HerderError::BadRequest(
                            "Sink connector offsets need a \"kafka_offset\" number".into(),
                        )
                    })?,
            };
            list.add_partition_offset(topic, number as i32, rdkafka::Offset::Offset(next))
                .map_err(|e| HerderError::BadRequest(e.to_string()))?;
        }
        consumer.commit(&list, CommitMode::Sync).map_err(|e| {
            HerderError::Store(StoreError::Kafka {
                context: format!("committing offsets of group connect-{name}"),
                source: e,
            })
        })
    }

    /// Resets connector `name`'s sink group to the start of every partition it had committed.
    pub fn reset_sink_offsets(&self, name: &str) -> Result<(), HerderError> {
        let offsets = self
            .sink_offsets(name)?
            .into_iter()
            .map(|(topic, partition, _)| {
                (
                    serde_json::json!({"kafka_topic": topic, "kafka_partition": partition}),
                    None,
                )
            })
            .collect();
        self.alter_sink_offsets(name, offsets)
    }

    /// Forgets the topics connector `name` has used (KIP-558's reset).
    pub fn reset_active_topics(&self, name: &str) -> Result<(), HerderError> {
        self.info(name)?;
        let topics: Vec<String> = self
            .state()
            .active_topics
            .get(name)
            .map(|t| t.iter().cloned().collect())
            .unwrap_or_default();
        for topic in topics {
            let key = format!("status-topic-{topic}:connector-{name}");
            let at =
                self.shared
                    .log
                    .send(&self.shared.config.status_topic, key.as_bytes(), None)?;
            self.shared
                .read_back(&self.shared.config.status_topic, at)?;
            self.shared
                .active_topics
                .lock()
                .remove(&(name.to_string(), topic));
        }
        Ok(())
    }

    /// Whether `name` is stopped (offsets may only change then).
    pub fn is_stopped(&self, name: &str) -> Result<bool, HerderError> {
        self.info(name)?;
        let state = self.shared.state.lock();
        Ok(state.target_state(name) == TargetState::Stopped
            && state.tasks.get(name).is_none_or(Vec::is_empty))
    }
}

/// Kafka Connect's 400 text for an invalid connector config.
pub fn invalid_message(problems: &[ConfigProblem]) -> String {
    let mut message = format!(
        "Connector configuration is invalid and contains the following {} error(s):",
        problems.len()
    );
    for problem in problems {
        message.push('\n');
        message.push_str(&problem.message);
    }
    message.push_str("\nYou can also find the above list of errors at the endpoint `/connector-plugins/{connectorType}/config/validate`");
    message
}

/// Keeps `shared.state` current from the state topics.
fn tail(shared: &Shared) {
    while !shared.stopping.load(Ordering::SeqCst) {
        match shared.log.poll(Duration::from_millis(200)) {
            Ok(records) if !records.is_empty() => {
                let mut state = shared.state.lock();
                for record in &records {
                    state.apply(&shared.config, record);
                }
                drop(state);
                shared.changed.notify_all();
            }
            Ok(_) => {}
            Err(e) => {
                tracing::warn!("reading the connect state topics failed, retrying: {e}");
                std::thread::sleep(Duration::from_secs(1));
            }
        }
    }
}

/// The herder's loop: reconcile whenever the state changes, and at least every second (to
/// notice finished tasks).
fn herd(shared: &Arc<Shared>) {
    let mut generated: BTreeMap<String, Props> = BTreeMap::new();
    let mut statuses: BTreeMap<String, String> = BTreeMap::new();
    let mut restarts_done = 0;
    let mut seen_version = u64::MAX;
    while !shared.stopping.load(Ordering::SeqCst) {
        let snapshot = {
            let mut state = shared.state.lock();
            if state.config_version == seen_version {
                shared.changed.wait_for(&mut state, Duration::from_secs(1));
            }
            seen_version = state.config_version;
            state.clone()
        };
        if shared.stopping.load(Ordering::SeqCst) {
            break;
        }
        let _guard = shared.reconciling.lock();
        let Some(assignment) = shared.assignment() else {
            continue;
        };
        reconcile(
            shared,
            &assignment,
            &snapshot,
            &mut generated,
            &mut statuses,
            &mut restarts_done,
        );
    }
}

fn reconcile(
    shared: &Arc<Shared>,
    assignment: &Assignment,
    snapshot: &ClusterState,
    generated: &mut BTreeMap<String, Props>,
    statuses: &mut BTreeMap<String, String>,
    restarts_done: &mut usize,
) {
    // Restarts asked for since the last pass.
    for restart in snapshot.restarts.iter().skip(*restarts_done) {
        statuses.remove(&restart.connector);
        if restart.include_tasks {
            let mut running = shared.tasks.lock();
            let ids: Vec<_> = running
                .keys()
                .filter(|(c, _)| *c == restart.connector)
                .cloned()
                .collect();
            for id in ids {
                let failed = snapshot
                    .task_status
                    .get(&id)
                    .is_some_and(|s| s.state == "FAILED");
                if !restart.only_failed || failed {
                    if let Some(task) = running.remove(&id) {
                        task.stop();
                    }
                }
            }
        }
    }
    *restarts_done = snapshot.restarts.len();

    // Connectors: task configs and connector statuses.
    let mut desired: BTreeMap<(String, usize), (Props, Props, bool)> = BTreeMap::new();
    for (name, props) in &snapshot.connectors {
        if !assignment.connectors.contains(name) {
            statuses.remove(name);
            generated.remove(name);
            // Tasks may still be this worker's even when the connector is another's.
            if snapshot.target_state(name) != TargetState::Stopped {
                for (i, task_props) in snapshot.tasks.get(name).into_iter().flatten().enumerate() {
                    if assignment.tasks.contains(&(name.clone(), i)) {
                        desired.insert(
                            (name.clone(), i),
                            (
                                props.clone(),
                                task_props.clone(),
                                snapshot.target_state(name) == TargetState::Paused,
                            ),
                        );
                    }
                }
            }
            continue;
        }
        let target = snapshot.target_state(name);
        let committed = snapshot.tasks.get(name).cloned().unwrap_or_default();
        let (status, trace) = if target == TargetState::Stopped {
            generated.remove(name);
            if !committed.is_empty() {
                write_tasks(shared, name, &[]);
            }
            ("STOPPED", None)
        } else {
            let class = props.get("connector.class").cloned().unwrap_or_default();
            match plugin::find_connector(&class) {
                None => ("FAILED", Some(format!("no connector class {class}"))),
                Some(connector) => {
                    let max_tasks = props
                        .get("tasks.max")
                        .and_then(|t| t.parse().ok())
                        .unwrap_or(1);
                    if generated.get(name) != Some(props) || committed.is_empty() {
                        match connector.task_configs(props, max_tasks) {
                            Ok(configs) => {
                                if configs != committed {
                                    write_tasks(shared, name, &configs);
                                }
                                generated.insert(name.clone(), props.clone());
                            }
                            Err(e) => {
                                generated.remove(name);
                                statuses.remove(name);
                                shared.write_connector_status(name, "FAILED", Some(&e.message));
                                continue;
                            }
                        }
                    }
                    for (i, task_props) in committed.iter().enumerate() {
                        if !assignment.tasks.contains(&(name.clone(), i)) {
                            continue;
                        }
                        desired.insert(
                            (name.clone(), i),
                            (
                                props.clone(),
                                task_props.clone(),
                                target == TargetState::Paused,
                            ),
                        );
                    }
                    (
                        if target == TargetState::Paused {
                            "PAUSED"
                        } else {
                            "RUNNING"
                        },
                        None,
                    )
                }
            }
        };
        if statuses.get(name).map(String::as_str) != Some(status) {
            shared.write_connector_status(name, status, trace.as_deref());
            statuses.insert(name.clone(), status.to_string());
        }
    }

    // Tasks: stop what is no longer wanted or has a new config, start what is missing.
    let mut running = shared.tasks.lock();
    let stale: Vec<_> = running
        .iter()
        .filter(|(id, task)| {
            desired
                .get(*id)
                .is_none_or(|(_, props, _)| *props != task.props)
        })
        .map(|(id, _)| id.clone())
        .collect();
    for id in stale {
        if let Some(task) = running.remove(&id) {
            task.stop();
        }
        if !desired.contains_key(&id) {
            shared.metrics.remove(&id.0, id.1);
        }
        if !snapshot.connectors.contains_key(&id.0) {
            let key = format!("status-task-{}-{}", id.0, id.1);
            let _ = shared
                .log
                .send(&shared.config.status_topic, key.as_bytes(), None);
        }
    }
    for name in statuses.keys().cloned().collect::<Vec<_>>() {
        if !snapshot.connectors.contains_key(&name) {
            statuses.remove(&name);
            let key = format!("status-connector-{name}");
            let _ = shared
                .log
                .send(&shared.config.status_topic, key.as_bytes(), None);
        }
    }
    for (id, (connector_props, props, paused)) in desired {
        match running.get(&id) {
            Some(task) => task.control.set_paused(paused),
            None => {
                let task_id = TaskId {
                    connector: id.0.clone(),
                    task: id.1,
                };
                running.insert(
                    id,
                    task::start(Arc::clone(shared), task_id, connector_props, props, paused),
                );
            }
        }
    }
}

fn write_tasks(shared: &Shared, name: &str, configs: &[Props]) {
    let topic = &shared.config.config_topic;
    let result = (|| -> Result<(), StoreError> {
        for (i, props) in configs.iter().enumerate() {
            shared.log.send(
                topic,
                format!("task-{name}-{i}").as_bytes(),
                Some(&records::properties(props)),
            )?;
        }
        shared.log.send(
            topic,
            format!("commit-{name}").as_bytes(),
            Some(&records::commit(configs.len())),
        )?;
        Ok(())
    })();
    if let Err(e) = result {
        tracing::warn!(connector = name, "cannot write the task configs: {e}");
    }
}
