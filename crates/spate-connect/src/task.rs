//! Running one task on its own thread, as Kafka Connect's `WorkerSourceTask` and
//! `WorkerSinkTask` do: a source task's records are transformed, converted and produced, and
//! its source offsets are written to the offsets topic only after the producer has flushed them
//! (so an offset never runs ahead of its records); a sink task's records are consumed in the
//! connector's consumer group `connect-<name>`, converted, transformed and put, and their
//! offsets are committed to the group only after the task's flush succeeded. Either way a crash
//! replays from the last commit: at least once. Status changes go to the status topic.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use bytes::Bytes;
use parking_lot::{Condvar, Mutex};
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::message::{Header, Headers, Message, OwnedHeaders};
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, Producer, ProducerContext};
use rdkafka::{ClientContext, Offset, TopicPartitionList};
use serde_json::Value as Json;

use crate::config::{Props, sub_props};
use crate::convert::{self, Converter};
use crate::data::ConnectRecord;
use crate::errors::{ErrorHandler, Failed, Stage};
use crate::herder::Shared;
use crate::metrics::TaskMetrics;
use crate::plugin::{self, OffsetReader, TaskError};
use crate::store::{canonical_json, records};
use crate::transforms::{self, Chain};

/// Records a sink task is given per put at most.
const SINK_BATCH_RECORDS: usize = 500;

/// Start/stop/pause control of a running task, shared with its thread.
#[derive(Default)]
pub struct Control {
    stop: AtomicBool,
    paused: AtomicBool,
    finished: AtomicBool,
    wake: Condvar,
    lock: Mutex<()>,
}

impl Control {
    /// Asks the task to stop.
    pub fn stop(&self) {
        self.stop.store(true, Ordering::SeqCst);
        self.wake.notify_all();
    }

    /// Pauses or resumes the task.
    pub fn set_paused(&self, paused: bool) {
        self.paused.store(paused, Ordering::SeqCst);
        self.wake.notify_all();
    }

    /// Whether the task's thread has ended (stopped or failed).
    pub fn finished(&self) -> bool {
        self.finished.load(Ordering::SeqCst)
    }

    fn stopping(&self) -> bool {
        self.stop.load(Ordering::SeqCst)
    }

    fn paused(&self) -> bool {
        self.paused.load(Ordering::SeqCst)
    }

    /// Waits up to `timeout` or until stopped, paused or resumed.
    fn wait(&self, timeout: Duration) {
        let mut guard = self.lock.lock();
        if !self.stopping() {
            self.wake.wait_for(&mut guard, timeout);
        }
    }
}

/// A task's thread and its control.
pub struct RunningTask {
    /// The task config it runs with.
    pub props: Props,
    /// Its control.
    pub control: Arc<Control>,
    thread: Option<JoinHandle<()>>,
}

impl RunningTask {
    /// Stops the task and waits for its thread.
    pub fn stop(mut self) {
        self.control.stop();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// What a task needs to know about itself.
#[derive(Clone)]
pub struct TaskId {
    /// The connector.
    pub connector: String,
    /// The task number.
    pub task: usize,
}

/// Starts task `id` of a connector configured with `connector_props`, running `props`.
pub fn start(
    shared: Arc<Shared>,
    id: TaskId,
    connector_props: Props,
    props: Props,
    paused: bool,
) -> RunningTask {
    let control = Arc::new(Control::default());
    control.set_paused(paused);
    let thread_control = Arc::clone(&control);
    let thread_props = props.clone();
    let name = format!("task-{}-{}", id.connector, id.task);
    let thread = std::thread::Builder::new()
        .name(name.chars().take(15).collect())
        .spawn(move || {
            let result = run(&shared, &id, &connector_props, &thread_props, &thread_control);
            match result {
                Ok(()) => {}
                Err(error) => {
                    tracing::error!(connector = %id.connector, task = id.task, "task failed: {}", error.message);
                    shared.write_task_status(&id, "FAILED", Some(&error.message));
                }
            }
            thread_control.finished.store(true, Ordering::SeqCst);
        })
        .expect("spawning a task thread");
    RunningTask {
        props,
        control,
        thread: Some(thread),
    }
}

fn run(
    shared: &Arc<Shared>,
    id: &TaskId,
    connector_props: &Props,
    props: &Props,
    control: &Control,
) -> Result<(), TaskError> {
    let class = connector_props
        .get("connector.class")
        .cloned()
        .unwrap_or_default();
    let plugin = plugin::find_connector(&class)
        .ok_or_else(|| TaskError::fatal(format!("no connector class {class}")))?;
    let converters = Converters::of(shared, connector_props, plugin.default_converter())?;
    let chain = transforms::chain(connector_props)
        .map_err(|problems| TaskError::fatal(crate::config::describe(&problems)))?;
    if let Some(task) = plugin.source_task() {
        let transactions = !plugin.exactly_once_by_offsets(connector_props);
        run_source(
            shared,
            id,
            props,
            task,
            converters,
            chain,
            control,
            transactions,
        )
    } else if let Some(task) = plugin.sink_task() {
        run_sink(
            shared,
            id,
            connector_props,
            props,
            task,
            converters,
            chain,
            control,
        )
    } else {
        Err(TaskError::fatal(format!("{class} has no tasks")))
    }
}

/// A connector's key and value converters: its own settings, else the worker's.
struct Converters {
    key: Box<dyn Converter>,
    value: Box<dyn Converter>,
}

impl Converters {
    fn of(
        shared: &Shared,
        props: &Props,
        connector_default: Option<&str>,
    ) -> Result<Converters, TaskError> {
        let one = |name: &str, is_key: bool| -> Result<Box<dyn Converter>, TaskError> {
            let (class, settings) = match (props.get(name), connector_default) {
                (Some(class), _) => (class.clone(), sub_props(props, &format!("{name}."))),
                (None, Some(class)) => (class.to_string(), Props::new()),
                (None, None) => (
                    shared
                        .config
                        .connector_default(name)
                        .unwrap_or(crate::worker_config::defaults::CONVERTER)
                        .to_string(),
                    sub_props(&shared.config.props, &format!("{name}.")),
                ),
            };
            // The converter's problems name their full keys (`value.converter.…`).
            convert::converter(&class, &settings, is_key)
                .map_err(|problems| TaskError::fatal(crate::config::describe(&problems)))
        };
        Ok(Converters {
            key: one("key.converter", true)?,
            value: one("value.converter", false)?,
        })
    }
}

/// The first delivery failure of a task's producer.
#[derive(Default)]
struct DeliveryErrors(Mutex<Option<String>>);

impl ClientContext for DeliveryErrors {}

impl ProducerContext for DeliveryErrors {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        if let Err((error, message)) = result {
            let mut first = self.0.lock();
            if first.is_none() {
                *first = Some(format!(
                    "producing to {}-{} failed: {error}",
                    message.topic(),
                    message.partition()
                ));
            }
        }
    }
}

struct Offsets<'a>(Option<&'a BTreeMap<String, (Json, Json)>>);

impl OffsetReader for Offsets<'_> {
    fn offset(&self, partition: &Json) -> Option<Json> {
        self.0?
            .get(&canonical_json(partition))
            .map(|(_, o)| o.clone())
    }

    fn all(&self) -> Vec<(Json, Json)> {
        self.0
            .map(|m| m.values().cloned().collect())
            .unwrap_or_default()
    }
}

fn fatal(context: &str) -> impl FnOnce(String) -> TaskError + '_ {
    move |e| TaskError::fatal(format!("{context}: {e}"))
}

#[allow(clippy::too_many_arguments)]
fn run_source(
    shared: &Arc<Shared>,
    id: &TaskId,
    props: &Props,
    mut task: Box<dyn crate::plugin::SourceTask>,
    converters: Converters,
    mut chain: Chain,
    control: &Control,
    transactions: bool,
) -> Result<(), TaskError> {
    // KIP-618: with `exactly.once.source.support=enabled` each poll's records and their source
    // offsets are written in one transaction, under Kafka Connect's transactional id; a new
    // instance of the task fences any zombie of it. A connector exactly-once by offsets (a
    // mirror placing records at their source offsets) needs none.
    let eos = transactions
        && shared
            .config
            .props
            .get("exactly.once.source.support")
            .is_some_and(|v| v.eq_ignore_ascii_case("enabled"));
    let mut producer_config = shared.config.client("producer.");
    // Kafka Connect's producer defaults; the worker's `producer.*` properties win.
    for (key, value) in [
        ("enable.idempotence", "true"),
        ("acks", "all"),
        ("linger.ms", "5"),
        ("partitioner", "murmur2_random"),
    ] {
        if producer_config.get(key).is_none() {
            producer_config.set(key, value);
        }
    }
    producer_config.set(
        "client.id",
        format!("connector-producer-{}-{}", id.connector, id.task),
    );
    if eos {
        producer_config.set(
            "transactional.id",
            format!("{}-{}-{}", shared.config.group_id, id.connector, id.task),
        );
    }
    let producer: BaseProducer<DeliveryErrors> = producer_config
        .create_with_context(DeliveryErrors::default())
        .map_err(|e| TaskError::fatal(format!("creating the producer: {e}")))?;
    if eos {
        producer
            .init_transactions(Duration::from_secs(60))
            .map_err(|e| TaskError::fatal(format!("initialising the task's transactions: {e}")))?;
    }
    let mut topics = crate::topic_creation::TopicCreation::new(
        props,
        &shared.config.props,
        &shared.config.client("admin."),
    )?;
    let metrics = shared.metrics.task(&id.connector, id.task, "source");
    task.target_cluster(shared.config.client("producer."));
    {
        let state = shared.state.lock();
        task.start(props, &Offsets(state.source_offsets.get(&id.connector)))?;
    }
    shared.write_task_status(id, "RUNNING", None);
    let mut pending: BTreeMap<String, (Json, Json)> = BTreeMap::new();
    let mut last_partition: Option<(Json, String)> = None;
    let mut last_commit = Instant::now();
    let mut was_paused = false;
    let result = (|| -> Result<(), TaskError> {
        while !control.stopping() {
            if control.paused() {
                if !was_paused {
                    commit_source(shared, id, &producer, &mut pending, task.as_mut())?;
                    shared.write_task_status(id, "PAUSED", None);
                    was_paused = true;
                }
                control.wait(Duration::from_secs(1));
                continue;
            } else if was_paused {
                shared.write_task_status(id, "RUNNING", None);
                was_paused = false;
            }
            let polled = task.poll()?;
            if let Some(lag) = task.lag_bytes() {
                metrics.set_source_lag(lag);
            }
            if let Some(lag) = task.lag_records() {
                metrics.set_source_lag_records(lag);
            }
            if polled.is_empty() {
                let idle = task.idle_wait();
                if !idle.is_zero() {
                    control.wait(idle);
                }
            } else if eos {
                producer
                    .begin_transaction()
                    .map_err(|e| TaskError::fatal(format!("beginning a transaction: {e}")))?;
            }
            let in_transaction = eos && !polled.is_empty();
            for mut record in polled {
                // Transforms and converters never read a record's source offset: it is moved
                // out, not copied.
                let offset = record
                    .source_partition
                    .take()
                    .zip(record.source_offset.take());
                if let Some(record) = chain
                    .apply(record)
                    .map_err(|e| TaskError::fatal(format!("transform failed: {e}")))?
                {
                    if let Some(topics) = &mut topics {
                        topics.ensure(&record.topic)?;
                    }
                    send(shared, id, &producer, &converters, record, &metrics)?;
                }
                if let Some((partition, offset)) = offset {
                    // A task's records mostly share one source partition: its canonical key
                    // is computed once, not per record.
                    let key = match &last_partition {
                        Some((known, key)) if *known == partition => key.clone(),
                        _ => {
                            let key = canonical_json(&partition);
                            last_partition = Some((partition.clone(), key.clone()));
                            key
                        }
                    };
                    pending.insert(key, (partition, offset));
                }
            }
            producer.poll(Duration::ZERO);
            if in_transaction {
                commit_transaction(shared, id, &producer, &mut pending, task.as_mut())?;
            } else if last_commit.elapsed() >= shared.config.offset_flush_interval {
                commit_source(shared, id, &producer, &mut pending, task.as_mut())?;
                last_commit = Instant::now();
            }
        }
        commit_source(shared, id, &producer, &mut pending, task.as_mut())
    })();
    task.stop();
    result
}

fn send(
    shared: &Shared,
    id: &TaskId,
    producer: &BaseProducer<DeliveryErrors>,
    converters: &Converters,
    record: ConnectRecord,
    metrics: &TaskMetrics,
) -> Result<(), TaskError> {
    let topic = record.topic.clone();
    let key = converters
        .key
        .from_connect_shared(&topic, record.key_schema.as_ref(), &record.key)
        .map_err(|e| TaskError::fatal(format!("converting a key for {topic}: {e}")))?;
    let value = converters
        .value
        .from_connect_shared(&topic, record.value_schema.as_ref(), &record.value)
        .map_err(|e| TaskError::fatal(format!("converting a value for {topic}: {e}")))?;
    shared.note_active_topic(&id.connector, &topic, id.task);
    metrics.moved(
        1,
        (key.as_ref().map_or(0, Bytes::len) + value.as_ref().map_or(0, Bytes::len)) as u64,
    );
    let mut headers = OwnedHeaders::new();
    for (name, value) in &record.headers {
        headers = headers.insert(Header {
            key: name,
            value: value.as_deref(),
        });
    }
    let mut out: BaseRecord<'_, [u8], [u8]> = BaseRecord::to(&topic).headers(headers);
    if let Some(key) = key.as_deref() {
        out = out.key(key);
    }
    if let Some(value) = value.as_deref() {
        out = out.payload(value);
    }
    if let Some(partition) = record.partition {
        out = out.partition(partition);
    }
    if let Some(timestamp) = record.timestamp_ms {
        out = out.timestamp(timestamp);
    }
    let mut metadata_deadline: Option<Instant> = None;
    loop {
        match producer.send(out) {
            Ok(()) => return Ok(()),
            Err((
                rdkafka::error::KafkaError::MessageProduction(
                    rdkafka::types::RDKafkaErrorCode::QueueFull,
                ),
                back,
            )) => {
                out = back;
                producer.poll(Duration::from_millis(10));
            }
            // A partition added since the producer last read the topic's metadata (a mirror
            // grows its target topic to the source's count): read it again, for a while.
            Err((
                rdkafka::error::KafkaError::MessageProduction(
                    rdkafka::types::RDKafkaErrorCode::UnknownPartition,
                ),
                back,
            )) if metadata_deadline.is_none_or(|deadline| Instant::now() < deadline) => {
                metadata_deadline.get_or_insert_with(|| Instant::now() + Duration::from_secs(30));
                out = back;
                if let Err(e) = producer
                    .client()
                    .fetch_metadata(Some(&topic), Duration::from_secs(5))
                {
                    tracing::debug!(%topic, "reading the topic's metadata: {e}");
                }
                producer.poll(Duration::from_millis(100));
            }
            Err((error, _)) => {
                return Err(TaskError::fatal(format!("producing to {topic}: {error}")));
            }
        }
    }
}

/// Writes the offsets of a poll's records with them and commits the transaction; a failure
/// aborts it (nothing of it is visible to read_committed readers) and fails the task.
fn commit_transaction(
    shared: &Shared,
    id: &TaskId,
    producer: &BaseProducer<DeliveryErrors>,
    pending: &mut BTreeMap<String, (Json, Json)>,
    task: &mut dyn crate::plugin::SourceTask,
) -> Result<(), TaskError> {
    let result = (|| -> Result<(), TaskError> {
        for (partition, offset) in std::mem::take(pending).into_values() {
            let key = records::offset_key(&id.connector, &partition);
            let value = offset.to_string();
            let record: BaseRecord<'_, [u8], [u8]> = BaseRecord::to(&shared.config.offset_topic)
                .key(key.as_slice())
                .payload(value.as_bytes());
            producer.send(record).map_err(|(e, _)| {
                TaskError::fatal(format!("writing source offsets in the transaction: {e}"))
            })?;
        }
        producer
            .commit_transaction(Duration::from_secs(60))
            .map_err(|e| TaskError::fatal(format!("committing the transaction: {e}")))?;
        if let Some(error) = producer.context().0.lock().take() {
            return Err(TaskError::fatal(error));
        }
        Ok(())
    })();
    if let Err(e) = result {
        let _ = producer.abort_transaction(Duration::from_secs(30));
        return Err(e);
    }
    task.commit()
}

/// Flushes the producer, then writes the offsets of everything it delivered.
fn commit_source(
    shared: &Shared,
    id: &TaskId,
    producer: &BaseProducer<DeliveryErrors>,
    pending: &mut BTreeMap<String, (Json, Json)>,
    task: &mut dyn crate::plugin::SourceTask,
) -> Result<(), TaskError> {
    producer
        .flush(Duration::from_secs(60))
        .map_err(|e| TaskError::retriable(format!("flushing the producer: {e}")))?;
    if let Some(error) = producer.context().0.lock().take() {
        return Err(TaskError::fatal(error));
    }
    for (partition, offset) in std::mem::take(pending).into_values() {
        let key = records::offset_key(&id.connector, &partition);
        shared
            .log
            .send(
                &shared.config.offset_topic,
                &key,
                Some(offset.to_string().as_bytes()),
            )
            .map_err(|e| TaskError::retriable(format!("writing source offsets: {e}")))?;
    }
    task.commit()
}

#[allow(clippy::too_many_arguments)]
fn run_sink(
    shared: &Arc<Shared>,
    id: &TaskId,
    connector_props: &Props,
    props: &Props,
    mut task: Box<dyn crate::plugin::SinkTask>,
    converters: Converters,
    mut chain: Chain,
    control: &Control,
) -> Result<(), TaskError> {
    let consumer: BaseConsumer<SinkContext> = shared
        .config
        .client("consumer.")
        .set("group.id", format!("connect-{}", id.connector))
        .set(
            "client.id",
            format!("connector-consumer-{}-{}", id.connector, id.task),
        )
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .create_with_context(SinkContext::default())
        .map_err(|e| TaskError::fatal(format!("creating the consumer: {e}")))?;
    let topics: Vec<String> = match connector_props.get("topics.regex") {
        Some(regex) if !regex.is_empty() => vec![format!("^{}", regex.trim_start_matches('^'))],
        _ => connector_props
            .get("topics")
            .map(|t| {
                t.split(',')
                    .map(|s| s.trim().to_string())
                    .filter(|s| !s.is_empty())
                    .collect()
            })
            .unwrap_or_default(),
    };
    let names: Vec<&str> = topics.iter().map(String::as_str).collect();
    consumer
        .subscribe(&names)
        .map_err(|e| TaskError::fatal(format!("subscribing to {}: {e}", topics.join(","))))?;
    let metrics = shared.metrics.task(&id.connector, id.task, "sink");
    let mut waiting_for_topic = false;
    let mut errors = ErrorHandler::new(
        shared,
        &id.connector,
        id.task,
        connector_props,
        true,
        Arc::clone(&metrics),
    )?;
    let retry = Retry::of(connector_props);
    task.start(props)?;
    shared.write_task_status(id, "RUNNING", None);
    // The next offset of each partition after everything put, and what was last committed.
    let mut offsets = Positions::default();
    let mut committed = plugin::SinkOffsets::new();
    let mut last_commit = Instant::now();
    let mut was_paused = false;
    let result = (|| -> Result<(), TaskError> {
        while !control.stopping() {
            if control.paused() != was_paused {
                let assignment = consumer
                    .assignment()
                    .map_err(|e| fatal("reading the assignment")(e.to_string()))?;
                if control.paused() {
                    let _ = consumer.pause(&assignment);
                    shared.write_task_status(id, "PAUSED", None);
                } else {
                    let _ = consumer.resume(&assignment);
                    shared.write_task_status(id, "RUNNING", None);
                }
                was_paused = control.paused();
            }
            let mut batch = Vec::new();
            let mut batch_bytes = 0u64;
            let mut wait = Duration::from_millis(100);
            while batch.len() < SINK_BATCH_RECORDS {
                let polled = consumer.poll(wait);
                // A rebalance (run inside poll) took partitions: what was taken from them
                // and not committed is dropped, here and in the task; their new owner reads it
                // again from the last commit.
                let revoked = std::mem::take(&mut *consumer.context().revoked.lock());
                if !revoked.is_empty() {
                    batch.retain(|r: &ConnectRecord| {
                        !revoked
                            .iter()
                            .any(|(t, p)| *t == r.topic && Some(*p) == r.partition)
                    });
                    for partition in &revoked {
                        offsets.remove(partition);
                        committed.remove(partition);
                    }
                    task.close(&revoked);
                }
                let Some(message) = polled else {
                    break;
                };
                wait = Duration::ZERO;
                let message = match message {
                    Ok(message) => message,
                    // A topic the connector names may not exist yet; Kafka Connect's sinks
                    // wait for it, and so does this one (the consumer picks it up once made).
                    Err(rdkafka::error::KafkaError::MessageConsumption(
                        rdkafka::types::RDKafkaErrorCode::UnknownTopicOrPartition
                        | rdkafka::types::RDKafkaErrorCode::UnknownTopic,
                    )) => {
                        if !waiting_for_topic {
                            tracing::info!(connector = %id.connector, task = id.task, "a topic to consume does not exist yet; waiting for it");
                            waiting_for_topic = true;
                        }
                        break;
                    }
                    Err(e) => return Err(TaskError::retriable(format!("consuming: {e}"))),
                };
                batch_bytes += (message.key().map_or(0, <[u8]>::len)
                    + message.payload().map_or(0, <[u8]>::len))
                    as u64;
                let topic = message.topic();
                let (partition, offset) = (message.partition(), message.offset());
                offsets.note(topic, partition, offset + 1);
                let failed = |stage: Stage, error: String, errors: &mut ErrorHandler| {
                    let record = Failed {
                        topic,
                        partition,
                        offset,
                        key: message.key(),
                        value: message.payload(),
                        headers: message
                            .headers()
                            .map(|hs| {
                                hs.iter()
                                    .map(|h| (h.key.to_string(), h.value.map(<[u8]>::to_vec)))
                                    .collect()
                            })
                            .unwrap_or_default(),
                    };
                    errors.failed(stage, &record, &error)
                };
                let (key_schema, key) = match converters.key.to_connect(topic, message.key()) {
                    Ok(converted) => converted,
                    Err(e) => {
                        failed(
                            Stage::KeyConverter,
                            format!("converting the key: {e}"),
                            &mut errors,
                        )?;
                        continue;
                    }
                };
                let (value_schema, value) =
                    match converters.value.to_connect(topic, message.payload()) {
                        Ok(converted) => converted,
                        Err(e) => {
                            failed(
                                Stage::ValueConverter,
                                format!("converting the value: {e}"),
                                &mut errors,
                            )?;
                            continue;
                        }
                    };
                let mut record = ConnectRecord::new(topic, value_schema, value);
                record.partition = Some(partition);
                record.key_schema = key_schema;
                record.key = key;
                record.kafka_offset = Some(offset);
                record.timestamp_ms = message.timestamp().to_millis();
                if let Some(headers) = message.headers() {
                    record.headers = headers
                        .iter()
                        .map(|h| (h.key.to_string(), h.value.map(Bytes::copy_from_slice)))
                        .collect();
                }
                match chain.apply(record) {
                    Ok(Some(record)) => batch.push(record),
                    Ok(None) => {}
                    Err(e) => failed(
                        Stage::Transformation,
                        format!("transform failed: {e}"),
                        &mut errors,
                    )?,
                }
            }
            // An empty put too, as Kafka Connect's: a task may act on time (rotate a file).
            let count = batch.len() as u64;
            put_with_retries(task.as_mut(), batch, control, &retry, &consumer)?;
            if count > 0 {
                metrics.moved(count, batch_bytes);
            }
            if last_commit.elapsed() >= shared.config.offset_flush_interval {
                commit_sink(
                    &consumer,
                    &offsets.to_sink_offsets(),
                    &mut committed,
                    task.as_mut(),
                    &errors,
                )?;
                last_commit = Instant::now();
            }
        }
        commit_sink(
            &consumer,
            &offsets.to_sink_offsets(),
            &mut committed,
            task.as_mut(),
            &errors,
        )
    })();
    task.stop();
    result
}

/// The next offset of each partition a sink was given records of, noted per record with the
/// topic borrowed from the message (no allocation once the partition is known).
#[derive(Default)]
struct Positions {
    by_topic: std::collections::HashMap<String, BTreeMap<i32, i64>>,
}

impl Positions {
    fn note(&mut self, topic: &str, partition: i32, next: i64) {
        match self.by_topic.get_mut(topic) {
            Some(partitions) => {
                partitions.insert(partition, next);
            }
            None => {
                self.by_topic
                    .insert(topic.to_string(), BTreeMap::from([(partition, next)]));
            }
        }
    }

    fn remove(&mut self, (topic, partition): &(String, i32)) {
        if let Some(partitions) = self.by_topic.get_mut(topic) {
            partitions.remove(partition);
        }
    }

    fn to_sink_offsets(&self) -> plugin::SinkOffsets {
        self.by_topic
            .iter()
            .flat_map(|(topic, partitions)| {
                partitions
                    .iter()
                    .map(move |(p, next)| ((topic.clone(), *p), *next))
            })
            .collect()
    }
}

/// A sink consumer's librdkafka context: a subscribed topic that does not exist yet is a
/// wait, not an error (the task says so once, at INFO); other client errors log as usual.
/// Partitions a rebalance revokes are noted for the task's loop.
#[derive(Default)]
struct SinkContext {
    revoked: Mutex<Vec<(String, i32)>>,
}

impl ClientContext for SinkContext {
    fn error(&self, error: rdkafka::error::KafkaError, reason: &str) {
        match error.rdkafka_error_code() {
            Some(
                rdkafka::types::RDKafkaErrorCode::UnknownTopicOrPartition
                | rdkafka::types::RDKafkaErrorCode::UnknownTopic,
            ) => tracing::debug!("librdkafka: {error}: {reason}"),
            _ => tracing::error!("librdkafka: {error}: {reason}"),
        }
    }
}

impl rdkafka::consumer::ConsumerContext for SinkContext {
    fn pre_rebalance(
        &self,
        _consumer: &BaseConsumer<SinkContext>,
        rebalance: &rdkafka::consumer::Rebalance<'_>,
    ) {
        if let rdkafka::consumer::Rebalance::Revoke(partitions) = rebalance {
            self.revoked.lock().extend(
                partitions
                    .elements()
                    .iter()
                    .map(|e| (e.topic().to_string(), e.partition())),
            );
        }
    }
}

/// How long retriable failures are retried (`errors.retry.timeout`, `-1` forever) and the
/// longest wait between tries (`errors.retry.delay.max.ms`).
struct Retry {
    timeout: Option<Duration>,
    max_delay: Duration,
}

impl Retry {
    fn of(props: &Props) -> Retry {
        let number = |key: &str, default: i64| {
            props
                .get(key)
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(default)
        };
        let timeout_ms: i64 = number("errors.retry.timeout", 0);
        Retry {
            timeout: (timeout_ms >= 0).then(|| Duration::from_millis(timeout_ms as u64)),
            max_delay: Duration::from_millis(
                number("errors.retry.delay.max.ms", 60_000).max(1) as u64
            ),
        }
    }
}

/// Puts a batch; a retriable failure is retried with backoff within `errors.retry.timeout`
/// (as Kafka's sink tasks redeliver a batch after a RetriableException), while the task runs.
/// Meanwhile, as Kafka Connect's `WorkerSinkTask`, the partitions are paused and the consumer
/// is polled, so a store that is down for longer than `max.poll.interval.ms` does not cost the
/// worker its place in the group. A rebalance during the wait takes its partitions' records out
/// of the batch (the caller closes them in the task; their next owner reads them again).
fn put_with_retries(
    task: &mut dyn crate::plugin::SinkTask,
    mut batch: Vec<ConnectRecord>,
    control: &Control,
    retry: &Retry,
    consumer: &BaseConsumer<SinkContext>,
) -> Result<(), TaskError> {
    let started = Instant::now();
    let mut delay = Duration::from_millis(300);
    let mut paused = false;
    let result = loop {
        match task.put(&batch) {
            Ok(()) => break Ok(()),
            Err(e)
                if e.retriable
                    && !control.stopping()
                    && (e.redeliver || retry.timeout.is_none_or(|t| started.elapsed() < t)) =>
            {
                tracing::warn!(
                    "a sink task's put failed and will be retried in {delay:?}: {}",
                    e.message
                );
                if !paused && let Ok(assignment) = consumer.assignment() {
                    let _ = consumer.pause(&assignment);
                    paused = true;
                }
                wait_polling(consumer, control, delay, &mut batch);
                delay = (delay * 2).min(retry.max_delay);
            }
            Err(e) => break Err(e),
        }
    };
    // The connector may have been paused meanwhile: then its partitions stay paused.
    if paused
        && !control.paused()
        && let Ok(assignment) = consumer.assignment()
    {
        let _ = consumer.resume(&assignment);
    }
    result
}

/// Waits `delay` polling the paused consumer (which keeps its group membership). A message
/// it still returns (fetched before the pause, or from partitions a rebalance assigned since)
/// is not taken: its partition is rewound to it, to be read after the retry.
fn wait_polling(
    consumer: &BaseConsumer<SinkContext>,
    control: &Control,
    delay: Duration,
    batch: &mut Vec<ConnectRecord>,
) {
    let until = Instant::now() + delay;
    while !control.stopping() {
        let left = until.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break;
        }
        if let Some(Ok(message)) = consumer.poll(left.min(Duration::from_millis(100))) {
            let (topic, partition, offset) = (
                message.topic().to_string(),
                message.partition(),
                message.offset(),
            );
            drop(message);
            if let Err(e) = consumer.seek(
                &topic,
                partition,
                Offset::Offset(offset),
                Duration::from_secs(10),
            ) {
                tracing::warn!(%topic, partition, offset, "rewinding a partition during a retry failed: {e}");
            }
            let _ = consumer.pause(&{
                let mut list = TopicPartitionList::new();
                list.add_partition(&topic, partition);
                list
            });
        }
        let revoked = consumer.context().revoked.lock();
        if !revoked.is_empty() {
            batch.retain(|r| {
                !revoked
                    .iter()
                    .any(|(t, p)| *t == r.topic && Some(*p) == r.partition)
            });
        }
    }
}

/// Commits the offsets the task says are durable (`pre_commit`) and not yet committed.
fn commit_sink(
    consumer: &BaseConsumer<SinkContext>,
    offsets: &plugin::SinkOffsets,
    committed: &mut plugin::SinkOffsets,
    task: &mut dyn crate::plugin::SinkTask,
    errors: &ErrorHandler,
) -> Result<(), TaskError> {
    let ready = task.pre_commit(offsets)?;
    errors.flush()?;
    let changed: plugin::SinkOffsets = ready
        .into_iter()
        .filter(|(partition, next)| {
            offsets.contains_key(partition) && committed.get(partition) != Some(next)
        })
        .collect();
    if changed.is_empty() {
        return Ok(());
    }
    let mut list = TopicPartitionList::new();
    for ((topic, partition), next) in &changed {
        list.add_partition_offset(topic, *partition, Offset::Offset(*next))
            .map_err(|e| TaskError::fatal(format!("committing offsets: {e}")))?;
    }
    match consumer.commit(&list, CommitMode::Sync) {
        Ok(()) => {
            committed.extend(changed);
            Ok(())
        }
        // A rebalance took the partitions: the new owner replays from the last commit.
        Err(e) => {
            tracing::warn!(
                "committing sink offsets failed, records since the last commit will be delivered again: {e}"
            );
            Ok(())
        }
    }
}
