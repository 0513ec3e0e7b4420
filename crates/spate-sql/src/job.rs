//! Running a planned query against the cluster, on its own thread: a consumer reads the
//! sources' partitions (read_committed), rows go through the flow, results go to the sink
//! topic — or to a caller, for an ad-hoc SELECT. A continuous job is **exactly once**: every
//! checkpoint interval one Kafka transaction commits the job's outputs, the changes of its
//! operators' state (to the job's compacted changelog topic `spate-sql-<job>-changelog`) and
//! its input offsets (to its consumer group `spate-sql-<job>`). A restart — or a kill -9 —
//! reads the changelog back and resumes from the committed offsets: outputs of an unfinished
//! checkpoint were never committed, so read_committed readers see each result once.
//!
//! Watermarks are per source partition (the largest watermark its rows gave); a source's is
//! the smallest over its active partitions. A partition is active until it is idle: read to
//! its end and without a new record for the table's idle timeout (`scan.watermark.idle-timeout`,
//! 5 s by default; Flink's `table.exec.source.idle-timeout`). An active partition without rows
//! yet holds the watermark back; an idle one does not, and when every partition is idle the
//! watermark stays where it is.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Headers, Message};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::{Offset, TopicPartitionList};
use serde_json::Value as Json;

use crate::catalog::{ErrorPolicy, Startup, Table};
use crate::errors::SqlError;
use crate::exec::{Change, OpCtx};
use crate::expr::{Context, Expr};
use crate::format::{Decoder, Encoder, Record};
use crate::plan::{Flow, Planned, Time};
use crate::stages::{self, Exchanged};
use crate::types::Value;

/// How to reach the cluster the jobs run against.
#[derive(Debug, Clone, Default)]
pub struct Cluster {
    /// `bootstrap.servers`.
    pub bootstrap: String,
    /// Further librdkafka settings (security).
    pub client: Vec<(String, String)>,
}

impl Cluster {
    /// A librdkafka config reaching the cluster.
    pub(crate) fn config(&self) -> ClientConfig {
        let mut config = ClientConfig::new();
        config.set("bootstrap.servers", &self.bootstrap);
        for (k, v) in &self.client {
            config.set(k, v);
        }
        config
    }
}

/// A job's counters, for `/metrics` and DESCRIBE.
#[derive(Debug, Default)]
pub struct JobMetrics {
    /// Records read from the sources.
    pub records_in: AtomicU64,
    /// Rows written to the sink (or to the caller).
    pub records_out: AtomicU64,
    /// Rows dropped because their window had closed.
    pub late_dropped: AtomicU64,
    /// Records or rows skipped by the error policy.
    pub skipped: AtomicU64,
    /// Checkpoints committed.
    pub checkpoints: AtomicU64,
    /// The last checkpoint's duration, microseconds.
    pub checkpoint_us: AtomicU64,
    /// The job's watermark (ms since the epoch; i64::MIN before the first).
    pub watermark_ms: AtomicI64,
    /// State entries held.
    pub state_entries: AtomicU64,
    /// Records behind the sources' ends at the last checkpoint (-1 before the first).
    pub lag_records: AtomicI64,
    /// The job's tasks running on this worker.
    pub tasks: AtomicU64,
}

impl JobMetrics {
    /// New counters.
    pub fn new() -> JobMetrics {
        JobMetrics {
            watermark_ms: AtomicI64::new(i64::MIN),
            lag_records: AtomicI64::new(-1),
            ..JobMetrics::default()
        }
    }
}

/// Where results go.
pub enum Output {
    /// A table's topic.
    Topic(Box<Encoder>, String),
    /// A caller (ad-hoc query): batches of changes over a bounded channel.
    Caller(tokio::sync::mpsc::Sender<Vec<Change>>),
    /// An exchange topic of a parallel job: each row to the partition its keys hash to.
    Exchange {
        /// The topic.
        topic: String,
        /// Its partitions (the downstream stage's tasks).
        partitions: i32,
        /// The keys.
        keys: Vec<Expr>,
    },
}

/// How a job runs.
#[derive(Debug, Clone)]
pub struct JobOptions {
    /// The job's id (names its consumer group, transactional id and changelog topic).
    pub id: String,
    /// How often a checkpoint commits.
    pub checkpoint_interval: Duration,
    /// Skip (and count) rows whose expressions fail instead of failing.
    pub skip_errors: bool,
    /// `table.exec.state.ttl`: keyed state untouched this long is forgotten.
    pub state_ttl: Option<Duration>,
    /// `parallelism.default`: tasks per stage (see [`crate::stages`]).
    pub parallelism: i32,
}

/// The consumer group, transactional id and changelog topic of job `id`.
pub fn job_names(id: &str) -> (String, String, String) {
    (
        format!("spate-sql-{id}"),
        format!("spate-sql-{id}"),
        format!("spate-sql-{id}-changelog"),
    )
}

/// The jobs' consumer context: reaching a partition's end is news, not an error.
pub struct JobContext;

impl rdkafka::ClientContext for JobContext {
    fn error(&self, error: KafkaError, reason: &str) {
        match error {
            KafkaError::PartitionEOF(_) | KafkaError::Global(RDKafkaErrorCode::PartitionEOF) => {}
            e => tracing::warn!("librdkafka: {e}: {reason}"),
        }
    }
}

impl rdkafka::consumer::ConsumerContext for JobContext {}

/// One input of a task.
pub enum TaskInput {
    /// A source table: all its partitions, or with `share = (index, of)` those whose number
    /// modulo `of` is `index` (a parallel job's source stage).
    Source {
        /// The table.
        table: Arc<Table>,
        /// Which partitions.
        share: Option<(i32, i32)>,
    },
    /// Partition `partition` of an exchange topic that `upstream` tasks write.
    Exchange {
        /// The exchange topic.
        topic: String,
        /// The partition.
        partition: i32,
        /// How many tasks write it.
        upstream: usize,
    },
}

/// A task: a flow (a whole query, or a stage of a parallel job) over its inputs.
pub struct Task {
    /// The operators; `Flow::Source(j)` is input `j`.
    pub flow: Flow,
    /// What it reads.
    pub inputs: Vec<TaskInput>,
    /// Where its rows go.
    pub output: Output,
    /// LIMIT, for a query whose rows go to a caller.
    pub limit: Option<u64>,
    /// The consumer group its input offsets are committed to.
    pub group: String,
    /// Its transactional id: one owner at a time; a new owner fences the old.
    pub transactional_id: String,
    /// The changelog topic and the partition holding this task's state.
    pub changelog: (String, i32),
    /// Its number within its stage (exchange markers name it).
    pub index: usize,
}

impl Task {
    /// The one task of a job with parallelism 1 (or an ad-hoc query): the whole flow over
    /// every partition of its sources.
    pub fn whole(planned: Planned, output: Output, id: &str) -> Task {
        let (group, transactional_id, changelog) = job_names(id);
        Task {
            flow: planned.flow,
            inputs: planned
                .sources
                .into_iter()
                .map(|s| TaskInput::Source {
                    table: s.table,
                    share: None,
                })
                .collect(),
            output,
            limit: planned.limit,
            group,
            transactional_id,
            changelog: (changelog, 0),
            index: 0,
        }
    }
}

enum InputKind {
    Source {
        table: Arc<Table>,
        decoder: Box<Decoder>,
        watermark: Option<Expr>,
    },
    Exchange,
}

struct InputRuntime {
    kind: InputKind,
    /// The watermark of each source partition (or upstream task, for an exchange), once it
    /// had one.
    partitions: HashMap<i32, i64>,
    /// Each source partition (or upstream task): whether it is at its end (or said it is
    /// idle), and when it last gave a record.
    activity: HashMap<i32, (bool, Instant)>,
    idle_timeout: Duration,
    topic: String,
}

impl InputRuntime {
    /// The smallest watermark of the active partitions; None while an active partition has
    /// none. When every partition is idle, the smallest of their last watermarks.
    fn watermark(&self, now: Instant) -> Option<i64> {
        let mut min: Option<i64> = None;
        // An upstream task says its last watermark and that it is idle in one marker: that
        // watermark must still count.
        let mut idle_min: Option<i64> = None;
        for (p, (at_end, last)) in &self.activity {
            let idle = *at_end && now.duration_since(*last) >= self.idle_timeout;
            if idle {
                if let Some(wm) = self.partitions.get(p).copied() {
                    idle_min = Some(idle_min.map_or(wm, |m: i64| m.min(wm)));
                }
                continue;
            }
            let wm = self.partitions.get(p).copied()?;
            min = Some(min.map_or(wm, |m: i64| m.min(wm)));
        }
        min.or(idle_min)
    }

    /// Whether every partition (upstream task) is idle; true for none.
    fn idle(&self, now: Instant) -> bool {
        self.activity
            .values()
            .all(|(at_end, last)| *at_end && now.duration_since(*last) >= self.idle_timeout)
    }
}

fn kafka(what: &str) -> impl Fn(KafkaError) -> SqlError + '_ {
    move |e| match e.rdkafka_error_code() {
        Some(
            RDKafkaErrorCode::Fenced
            | RDKafkaErrorCode::ProducerFenced
            | RDKafkaErrorCode::InvalidProducerEpoch,
        ) => SqlError::Fenced(format!("{what}: {e}")),
        _ => SqlError::Io(format!("{what}: {e}")),
    }
}

/// Runs `planned` in one task until `stop` is set (or, with a LIMIT, until enough rows went
/// out, or the caller went away). Blocking: call it on a thread of its own.
pub fn run(
    cluster: &Cluster,
    planned: Planned,
    output: Output,
    options: &JobOptions,
    stop: &AtomicBool,
    metrics: &JobMetrics,
) -> Result<(), SqlError> {
    let task = Task::whole(planned, output, &options.id);
    run_task(cluster, task, options, stop, metrics)
}

/// The partitions of `topic`.
fn partitions_of(consumer: &BaseConsumer<JobContext>, topic: &str) -> Result<Vec<i32>, SqlError> {
    let metadata = consumer
        .fetch_metadata(Some(topic), Duration::from_secs(10))
        .map_err(kafka("reading the topics' metadata"))?;
    let partitions: Vec<i32> = metadata
        .topics()
        .iter()
        .filter(|t| t.error().is_none())
        .flat_map(|t| t.partitions().iter().map(|p| p.id()))
        .collect();
    if partitions.is_empty() {
        return Err(SqlError::NotFound {
            kind: "topic",
            name: topic.to_string(),
        });
    }
    Ok(partitions)
}

/// Runs `task` until `stop` is set (or its LIMIT, or its caller went away). Blocking.
pub fn run_task(
    cluster: &Cluster,
    task: Task,
    options: &JobOptions,
    stop: &AtomicBool,
    metrics: &JobMetrics,
) -> Result<(), SqlError> {
    let Task {
        mut flow,
        inputs: task_inputs,
        output,
        limit,
        group,
        transactional_id,
        changelog,
        index,
    } = task;
    let continuous = !matches!(output, Output::Caller(..));
    let mut consumer_config = cluster.config();
    consumer_config
        .set(
            "group.id",
            if continuous {
                group.clone()
            } else {
                format!("spate-sql-query-{}", options.id)
            },
        )
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("isolation.level", "read_committed")
        .set("enable.partition.eof", "true")
        .set("auto.offset.reset", "earliest")
        .set("fetch.wait.max.ms", "100");
    let consumer: BaseConsumer<JobContext> = consumer_config
        .create_with_context(JobContext)
        .map_err(kafka("creating the consumer"))?;

    // The producer first: `init_transactions` fences a task that died holding this task's
    // transaction and aborts it; until then the offsets that transaction sent are pending, and
    // reading the committed offsets (KIP-447's stable offsets) would wait for its timeout.
    let producer: Option<BaseProducer> = if continuous {
        let mut config = cluster.config();
        config
            .set("transactional.id", &transactional_id)
            .set("transaction.timeout.ms", "60000")
            .set("enable.idempotence", "true")
            .set("partitioner", "murmur2_random")
            .set("linger.ms", "5")
            .set("message.max.bytes", STATE_RECORD_MAX_BYTES)
            .set("compression.type", "lz4");
        let producer: BaseProducer = config.create().map_err(kafka("creating the producer"))?;
        producer
            .init_transactions(Duration::from_secs(60))
            .map_err(kafka("initialising the job's transactions"))?;
        Some(producer)
    } else {
        None
    };

    // What each input reads: its partitions, from the committed offsets or the table's
    // startup mode.
    let mut inputs: Vec<InputRuntime> = Vec::new();
    let mut assignment = TopicPartitionList::new();
    let assigned_at = Instant::now();
    for input in task_inputs {
        let (topic, partitions, startup, kind, idle_timeout, upstream) = match input {
            TaskInput::Source { table, share } => {
                let all = partitions_of(&consumer, &table.topic)?;
                let partitions: Vec<i32> = match share {
                    None => all,
                    Some((index, of)) => all.into_iter().filter(|p| p % of == index).collect(),
                };
                (
                    table.topic.clone(),
                    partitions,
                    table.startup,
                    InputKind::Source {
                        decoder: Box::new(Decoder::new(Arc::clone(&table))?),
                        watermark: table.watermark.as_ref().map(|(_, e)| e.clone()),
                        table: Arc::clone(&table),
                    },
                    table.idle_timeout,
                    0,
                )
            }
            TaskInput::Exchange {
                topic,
                partition,
                upstream,
            } => (
                topic,
                vec![partition],
                Startup::Earliest,
                InputKind::Exchange,
                Duration::ZERO,
                upstream,
            ),
        };
        let mut runtime = InputRuntime {
            kind,
            partitions: HashMap::new(),
            activity: HashMap::new(),
            idle_timeout,
            topic: topic.clone(),
        };
        // Every upstream task holds an exchange's watermark back until it says where it is.
        for u in 0..upstream {
            runtime.activity.insert(u as i32, (false, assigned_at));
        }
        let mut wanted = TopicPartitionList::new();
        for p in &partitions {
            wanted.add_partition(&topic, *p);
        }
        let committed = if continuous && !partitions.is_empty() {
            Some(
                consumer
                    .committed_offsets(wanted.clone(), Duration::from_secs(10))
                    .map_err(kafka("reading the job's committed offsets"))?,
            )
        } else {
            None
        };
        for p in partitions {
            if matches!(runtime.kind, InputKind::Source { .. }) {
                runtime.activity.insert(p, (false, assigned_at));
            }
            if assignment.find_partition(&topic, p).is_some() {
                continue; // two inputs over one topic (a self-join): one assignment, both read it
            }
            let from_group = committed
                .as_ref()
                .and_then(|c| c.find_partition(&topic, p))
                .map(|e| e.offset())
                .filter(|o| matches!(o, Offset::Offset(_)));
            let offset = match from_group {
                Some(o) => o,
                None => match startup {
                    Startup::Earliest | Startup::GroupOffsets => Offset::Beginning,
                    Startup::Latest => Offset::End,
                    Startup::Timestamp(ms) => {
                        let mut times = TopicPartitionList::new();
                        times
                            .add_partition_offset(&topic, p, Offset::Offset(ms))
                            .map_err(kafka("startup timestamp"))?;
                        let found = consumer
                            .offsets_for_times(times, Duration::from_secs(10))
                            .map_err(kafka("finding the startup timestamp's offsets"))?;
                        found
                            .find_partition(&topic, p)
                            .map_or(Offset::End, |e| e.offset())
                    }
                },
            };
            assignment
                .add_partition_offset(&topic, p, offset)
                .map_err(kafka("assigning partitions"))?;
        }
        inputs.push(runtime);
    }
    consumer
        .assign(&assignment)
        .map_err(kafka("assigning partitions"))?;

    let mut ctx = OpCtx {
        skip_errors: options.skip_errors,
        ..OpCtx::default()
    };
    if continuous {
        restore(cluster, &changelog, &mut flow, &mut inputs, &mut ctx)?;
    }
    if let Some(p) = &producer {
        p.begin_transaction()
            .map_err(kafka("beginning a transaction"))?;
    }

    let mut emitted: u64 = 0;
    let mut last_checkpoint = Instant::now();
    // Exchange records this task committed past are deleted now and then (Kafka Streams
    // purges its repartition topics the same way).
    let mut last_purge: Option<Instant> = None;
    let mut purger: Option<AdminClient<DefaultClientContext>> = None;
    let needs_headers = inputs.iter().any(|i| match &i.kind {
        InputKind::Source { table, .. } => {
            matches!(table.error_policy, ErrorPolicy::DeadLetter(_))
                || table.columns.iter().any(|c| {
                    matches!(&c.kind, crate::parse::ColumnKind::Metadata { key, .. } if key == "headers")
                })
        }
        InputKind::Exchange => false,
    });
    let topic_inputs: HashMap<String, Vec<usize>> = {
        let mut map: HashMap<String, Vec<usize>> = HashMap::new();
        for (i, s) in inputs.iter().enumerate() {
            map.entry(s.topic.clone()).or_default().push(i);
        }
        map
    };
    let mut input_wm: Vec<Option<i64>> = vec![None; inputs.len()];
    let mut batch: Vec<Vec<Change>> = vec![Vec::new(); inputs.len()];
    // What this task last told the downstream tasks (exchange output): None forces a marker.
    let mut announced: Option<(Option<i64>, bool)> = None;
    // Whether anything was read since the last checkpoint (an idle job commits nothing).
    let mut dirty = false;
    while !stop.load(Ordering::Relaxed) {
        // A batch: what arrives within ~50 ms, up to 1000 records.
        let started = Instant::now();
        let mut polled = 0usize;
        while polled < 1000 && started.elapsed() < Duration::from_millis(50) {
            let Some(result) =
                consumer.poll(Duration::from_millis(if polled == 0 { 50 } else { 0 }))
            else {
                break;
            };
            let message = match result {
                Ok(m) => m,
                Err(KafkaError::PartitionEOF(partition)) => {
                    // rdkafka does not say the topic: every source with this partition is at
                    // its end unless a record says otherwise.
                    for s in inputs.iter_mut() {
                        if let (InputKind::Source { .. }, Some(a)) =
                            (&s.kind, s.activity.get_mut(&partition))
                        {
                            a.0 = true;
                        }
                    }
                    continue;
                }
                Err(e) => {
                    tracing::warn!(job = %options.id, "consumer: {e}");
                    continue;
                }
            };
            polled += 1;
            let Some(indices) = topic_inputs.get(message.topic()) else {
                continue;
            };
            // Headers are copied only for a table that reads them or a dead-letter topic.
            let headers = if needs_headers {
                message
                    .headers()
                    .map(|h| {
                        h.iter()
                            .map(|h| (h.key.to_string(), h.value.map(<[u8]>::to_vec)))
                            .collect()
                    })
                    .unwrap_or_default()
            } else {
                Vec::new()
            };
            let record = Record {
                topic: message.topic(),
                partition: message.partition(),
                offset: message.offset(),
                timestamp: message.timestamp().to_millis(),
                key: message.key(),
                value: message.payload(),
                headers,
            };
            let now = Instant::now();
            for &i in indices {
                let input = &mut inputs[i];
                let (table, decoder, watermark) = match &input.kind {
                    InputKind::Source {
                        table,
                        decoder,
                        watermark,
                    } => (table, decoder, watermark),
                    InputKind::Exchange => {
                        let exchanged =
                            record.value.map(stages::decode).transpose().map_err(|e| {
                                abort(producer.as_ref());
                                SqlError::Runtime(format!(
                                    "exchange record {}/{}@{}: {e}",
                                    record.topic, record.partition, record.offset
                                ))
                            })?;
                        match exchanged {
                            Some(Exchanged::Row(from, change)) => {
                                input.activity.insert(from as i32, (false, now));
                                batch[i].push(change);
                            }
                            Some(Exchanged::Marker(from, wm, idle)) => {
                                if let Some(wm) = wm {
                                    let entry = input.partitions.entry(from as i32).or_insert(wm);
                                    *entry = (*entry).max(wm);
                                }
                                input.activity.insert(from as i32, (idle, now));
                            }
                            None => {}
                        }
                        continue;
                    }
                };
                metrics.records_in.fetch_add(1, Ordering::Relaxed);
                input.activity.insert(record.partition, (false, now));
                let change = match decoder.decode(&record) {
                    Ok(Some(change)) => change,
                    Ok(None) => continue,
                    Err(reason) => {
                        let e = SqlError::Runtime(format!(
                            "record {}/{}@{} of table {} does not decode: {reason}",
                            record.topic, record.partition, record.offset, table.name
                        ));
                        match (&table.error_policy, &producer) {
                            (ErrorPolicy::Skip, _) | (ErrorPolicy::DeadLetter(_), None) => {
                                ctx.skipped += 1;
                                continue;
                            }
                            (ErrorPolicy::DeadLetter(dlq), Some(p)) => {
                                ctx.skipped += 1;
                                dead_letter(p, dlq, &record, &e.to_string())?;
                                continue;
                            }
                            (ErrorPolicy::Fail, _) => {
                                abort(producer.as_ref());
                                return Err(e);
                            }
                        }
                    }
                };
                if let Some(wm) = watermark {
                    match wm.eval(&change.row, &Context::default()) {
                        Ok(Value::Timestamp(t)) => {
                            let entry =
                                input.partitions.entry(record.partition).or_insert(i64::MIN);
                            if t > *entry {
                                *entry = t;
                            }
                        }
                        Ok(_) => {}
                        Err(e) => {
                            if !options.skip_errors {
                                abort(producer.as_ref());
                                return Err(e);
                            }
                        }
                    }
                }
                batch[i].push(change);
            }
        }
        dirty |= polled > 0;
        ctx.now_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64);
        // Through the flow: each input's rows, then its watermark.
        let mut out = Vec::new();
        let now = Instant::now();
        for i in 0..inputs.len() {
            let changes = std::mem::take(&mut batch[i]);
            if !changes.is_empty() {
                out.extend(
                    flow.push(i, changes, &mut ctx)
                        .inspect_err(|_| abort(producer.as_ref()))?,
                );
            }
            let wm = inputs[i].watermark(now);
            if wm > input_wm[i] {
                input_wm[i] = wm;
            }
        }
        let flow_wm = input_wm
            .iter()
            .copied()
            .collect::<Option<Vec<i64>>>()
            .and_then(|w| w.into_iter().min());
        if let Some(wm) = flow_wm
            && ctx.watermark.is_none_or(|current| wm > current)
        {
            ctx.prior_watermark = ctx.watermark;
            ctx.watermark = Some(wm);
            metrics.watermark_ms.store(wm, Ordering::Relaxed);
            out.extend(
                flow.advance(Time::Watermark(wm), &mut ctx)
                    .inspect_err(|_| abort(producer.as_ref()))?,
            );
        }
        // Processing-time windows close by the clock.
        out.extend(
            flow.advance(Time::Clock(ctx.now_ms), &mut ctx)
                .inspect_err(|_| abort(producer.as_ref()))?,
        );
        // Rows out without rows in (windows closed by an idle input's watermark, or by the
        // clock) still need a checkpoint to commit them.
        dirty |= !out.is_empty();
        // Out.
        if let Some(n) = limit {
            let room = n.saturating_sub(emitted) as usize;
            out.truncate(room);
        }
        emitted += out.len() as u64;
        if !matches!(output, Output::Exchange { .. }) {
            metrics
                .records_out
                .fetch_add(out.len() as u64, Ordering::Relaxed);
        }
        match &output {
            Output::Topic(encoder, topic) => {
                let producer = producer
                    .as_ref()
                    .ok_or_else(|| SqlError::Io("no producer".into()))?;
                for change in &out {
                    let Some((key, value)) = encoder
                        .encode(change)
                        .inspect_err(|_| abort(Some(producer)))?
                    else {
                        continue;
                    };
                    send(producer, topic, key.as_deref(), value.as_deref())?;
                }
            }
            Output::Exchange {
                topic,
                partitions,
                keys,
            } => {
                let producer = producer
                    .as_ref()
                    .ok_or_else(|| SqlError::Io("no producer".into()))?;
                for change in &out {
                    let (key, partition) = stages::route(keys, &change.row, *partitions)
                        .inspect_err(|_| abort(Some(producer)))?;
                    let value = stages::encode_row(index, change);
                    produce(
                        producer,
                        topic,
                        Some(partition),
                        Some(&key),
                        Some(&value),
                        None,
                    )?;
                }
                // The downstream tasks learn where this task is, after its rows.
                let idle = inputs.iter().all(|i| i.idle(now));
                let state = (ctx.watermark, idle);
                if announced != Some(state) {
                    let marker = stages::encode_marker(index, ctx.watermark, idle);
                    for p in 0..*partitions {
                        produce(producer, topic, Some(p), None, Some(&marker), None)?;
                    }
                    announced = Some(state);
                    dirty = true;
                }
            }
            Output::Caller(sender) => {
                if !out.is_empty() && sender.blocking_send(out).is_err() {
                    return Ok(()); // the caller went away
                }
            }
        }
        metrics
            .late_dropped
            .store(ctx.late_dropped, Ordering::Relaxed);
        metrics.skipped.store(ctx.skipped, Ordering::Relaxed);
        if limit.is_some_and(|n| emitted >= n) {
            break;
        }
        if let Some(producer) = &producer
            && dirty
            && last_checkpoint.elapsed() >= options.checkpoint_interval
        {
            if let Some(ttl) = options.state_ttl {
                let before = ctx.now_ms - ttl.as_millis() as i64;
                for op in flow.operators() {
                    op.expire_idle(before);
                }
            }
            checkpoint(
                producer, &consumer, &changelog, &mut flow, &inputs, &ctx, metrics,
            )?;
            last_checkpoint = Instant::now();
            dirty = false;
            if last_purge.is_none_or(|t| t.elapsed() >= PURGE_INTERVAL) {
                purge(cluster, &consumer, &inputs, &mut purger);
                last_purge = Some(Instant::now());
            }
        }
    }
    if let Some(producer) = &producer {
        if dirty {
            checkpoint(
                producer, &consumer, &changelog, &mut flow, &inputs, &ctx, metrics,
            )?;
        }
        let _ = producer.abort_transaction(Duration::from_secs(10));
    }
    Ok(())
}

/// How often a task deletes the exchange records it has committed past.
const PURGE_INTERVAL: Duration = Duration::from_secs(5);

/// Deletes the records of the task's exchange partitions below its positions (committed by
/// the checkpoint just done): no other task reads them. A failure is logged; the records stay
/// until the next purge.
fn purge(
    cluster: &Cluster,
    consumer: &BaseConsumer<JobContext>,
    inputs: &[InputRuntime],
    purger: &mut Option<AdminClient<DefaultClientContext>>,
) {
    let exchanges: Vec<&str> = inputs
        .iter()
        .filter(|i| matches!(i.kind, InputKind::Exchange))
        .map(|i| i.topic.as_str())
        .collect();
    if exchanges.is_empty() {
        return;
    }
    let Ok(positions) = consumer.position() else {
        return;
    };
    let mut below = TopicPartitionList::new();
    for e in positions.elements() {
        if let Offset::Offset(o) = e.offset()
            && o > 0
            && exchanges.contains(&e.topic())
        {
            let _ = below.add_partition_offset(e.topic(), e.partition(), Offset::Offset(o));
        }
    }
    if below.count() == 0 {
        return;
    }
    if purger.is_none() {
        match cluster.config().create() {
            Ok(admin) => *purger = Some(admin),
            Err(e) => {
                tracing::warn!("purging exchange records: {e}");
                return;
            }
        }
    }
    let Some(admin) = purger.as_ref() else {
        return;
    };
    let deleted = futures::executor::block_on(admin.delete_records(
        &below,
        &AdminOptions::new().operation_timeout(Some(Duration::from_secs(10))),
    ));
    if let Err(e) = deleted {
        tracing::warn!("purging exchange records: {e}");
    }
}

/// Writes a record that did not decode to the dead-letter topic, in the job's transaction:
/// its key, value and headers, with `__spate.error` and `__spate.source` headers added.
fn dead_letter(
    producer: &BaseProducer,
    topic: &str,
    record: &Record<'_>,
    reason: &str,
) -> Result<(), SqlError> {
    use rdkafka::message::{Header, OwnedHeaders};
    let source = format!("{}/{}@{}", record.topic, record.partition, record.offset);
    let mut headers = OwnedHeaders::new();
    for (k, v) in &record.headers {
        headers = headers.insert(Header {
            key: k,
            value: v.as_deref(),
        });
    }
    headers = headers
        .insert(Header {
            key: "__spate.error",
            value: Some(reason.as_bytes()),
        })
        .insert(Header {
            key: "__spate.source",
            value: Some(source.as_bytes()),
        });
    produce(
        producer,
        topic,
        None,
        record.key,
        record.value,
        Some(headers),
    )
}

fn abort(producer: Option<&BaseProducer>) {
    if let Some(p) = producer {
        let _ = p.abort_transaction(Duration::from_secs(10));
    }
}

/// Sends one record, waiting for room in the producer's queue (backpressure, not an
/// unbounded buffer).
fn send(
    producer: &BaseProducer,
    topic: &str,
    key: Option<&[u8]>,
    value: Option<&[u8]>,
) -> Result<(), SqlError> {
    produce(producer, topic, None, key, value, None)
}

/// [`send`] with headers.
fn produce(
    producer: &BaseProducer,
    topic: &str,
    partition: Option<i32>,
    key: Option<&[u8]>,
    value: Option<&[u8]>,
    headers: Option<rdkafka::message::OwnedHeaders>,
) -> Result<(), SqlError> {
    let mut record: BaseRecord<'_, [u8], [u8]> = BaseRecord::to(topic);
    if let Some(p) = partition {
        record = record.partition(p);
    }
    if let Some(h) = headers {
        record = record.headers(h);
    }
    if let Some(k) = key {
        record = record.key(k);
    }
    if let Some(v) = value {
        record = record.payload(v);
    }
    loop {
        match producer.send(record) {
            Ok(()) => return Ok(()),
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), r)) => {
                producer.poll(Duration::from_millis(10));
                record = r;
            }
            Err((e, _)) => {
                let _ = producer.abort_transaction(Duration::from_secs(10));
                return Err(SqlError::Io(format!("producing to {topic}: {e}")));
            }
        }
    }
}

const WATERMARK_KEY: &str = "wm";

/// The largest state record (and so the largest key's state) a job writes: 64 MiB.
const STATE_RECORD_MAX_BYTES: &str = "67108864";

/// One transaction: the state's changes, the input offsets, commit; then a new transaction.
fn checkpoint(
    producer: &BaseProducer,
    consumer: &BaseConsumer<JobContext>,
    (changelog, partition): &(String, i32),
    flow: &mut Flow,
    inputs: &[InputRuntime],
    ctx: &OpCtx,
    metrics: &JobMetrics,
) -> Result<(), SqlError> {
    let started = Instant::now();
    let mut entries = 0usize;
    let state = |key: &str, value: Option<&[u8]>| {
        produce(
            producer,
            changelog,
            Some(*partition),
            Some(key.as_bytes()),
            value,
            None,
        )
    };
    for (i, op) in flow.operators().into_iter().enumerate() {
        for (key, value) in op.snapshot() {
            state(&format!("op{i}|{key}"), value.as_deref().map(str::as_bytes))?;
        }
        entries += op.state_entries();
    }
    metrics
        .state_entries
        .store(entries as u64, Ordering::Relaxed);
    for (i, input) in inputs.iter().enumerate() {
        for (p, wm) in &input.partitions {
            state(
                &format!("{WATERMARK_KEY}|{i}|{p}"),
                Some(wm.to_string().as_bytes()),
            )?;
        }
        // Which upstream tasks said they are idle (they say it once).
        if matches!(input.kind, InputKind::Exchange) {
            for (u, (idle, _)) in &input.activity {
                state(
                    &format!("idle|{i}|{u}"),
                    Some(if *idle { b"1" } else { b"0" }),
                )?;
            }
        }
    }
    if let Some(wm) = ctx.watermark {
        state("flow-wm", Some(wm.to_string().as_bytes()))?;
    }
    let positions = consumer
        .position()
        .map_err(kafka("reading the consumer's positions"))?;
    let mut offsets = TopicPartitionList::new();
    for e in positions.elements() {
        if let Offset::Offset(o) = e.offset() {
            offsets
                .add_partition_offset(e.topic(), e.partition(), Offset::Offset(o))
                .map_err(kafka("offsets"))?;
        }
    }
    let result = (|| {
        if offsets.count() > 0 {
            let group = consumer
                .group_metadata()
                .ok_or_else(|| SqlError::Io("the consumer has no group metadata".into()))?;
            producer
                .send_offsets_to_transaction(&offsets, &group, Duration::from_secs(30))
                .map_err(kafka("adding the input offsets to the transaction"))?;
        }
        producer
            .commit_transaction(Duration::from_secs(60))
            .map_err(kafka("committing the checkpoint"))?;
        producer
            .begin_transaction()
            .map_err(kafka("beginning a transaction"))
    })();
    if let Err(e) = result {
        abort(Some(producer));
        return Err(e);
    }
    // The lag: records between the positions and the ends.
    let mut lag = 0i64;
    for e in offsets.elements() {
        if let (Offset::Offset(o), Ok((_, high))) = (
            e.offset(),
            consumer.fetch_watermarks(e.topic(), e.partition(), Duration::from_millis(500)),
        ) {
            lag += (high - o).max(0);
        }
    }
    metrics.lag_records.store(lag, Ordering::Relaxed);
    metrics.checkpoints.fetch_add(1, Ordering::Relaxed);
    metrics
        .checkpoint_us
        .store(started.elapsed().as_micros() as u64, Ordering::Relaxed);
    Ok(())
}

/// Creates `topic` (with `partitions` and `configs`) unless it exists.
pub(crate) fn create_topic(
    cluster: &Cluster,
    topic: &str,
    partitions: i32,
    configs: &[(&str, &str)],
) -> Result<(), SqlError> {
    let admin: AdminClient<DefaultClientContext> = cluster
        .config()
        .create()
        .map_err(kafka("creating the admin client"))?;
    let mut new = NewTopic::new(topic, partitions, TopicReplication::Fixed(1));
    for (key, value) in configs {
        new = new.set(key, value);
    }
    let results = futures::executor::block_on(admin.create_topics(
        [&new],
        &AdminOptions::new().operation_timeout(Some(Duration::from_secs(10))),
    ))
    .map_err(kafka("creating a topic"))?;
    for result in results {
        match result {
            Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((t, code)) => {
                return Err(SqlError::Io(format!("creating topic {t}: {code}")));
            }
        }
    }
    Ok(())
}

/// Makes a job's changelog topic (compacted, a partition per task) if it is missing. A key's
/// state is one record: room for large ones (a COUNT(DISTINCT) of many values).
pub(crate) fn ensure_changelog(
    cluster: &Cluster,
    topic: &str,
    partitions: i32,
) -> Result<(), SqlError> {
    create_topic(
        cluster,
        topic,
        partitions,
        &[
            ("cleanup.policy", "compact"),
            ("max.message.bytes", STATE_RECORD_MAX_BYTES),
        ],
    )
}

/// Reads the task's changelog partition (read_committed) to its end into the operators and
/// inputs.
fn restore(
    cluster: &Cluster,
    (changelog, partition): &(String, i32),
    flow: &mut Flow,
    inputs: &mut [InputRuntime],
    ctx: &mut OpCtx,
) -> Result<(), SqlError> {
    let partition = *partition;
    let mut config = cluster.config();
    config
        .set("group.id", "spate-sql-restore")
        .set("enable.auto.commit", "false")
        .set("receive.message.max.bytes", "134218240")
        .set("fetch.max.bytes", "134217728")
        .set("isolation.level", "read_committed");
    let consumer: BaseConsumer = config
        .create()
        .map_err(kafka("creating the restore consumer"))?;
    let (_, high) = consumer
        .fetch_watermarks(changelog, partition, Duration::from_secs(10))
        .map_err(kafka("reading the changelog's end"))?;
    if high == 0 {
        return Ok(());
    }
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(changelog, partition, Offset::Beginning)
        .map_err(kafka("changelog"))?;
    consumer
        .assign(&tpl)
        .map_err(kafka("assigning the changelog"))?;
    // The latest value of each key, in order.
    let mut latest: HashMap<String, Option<String>> = HashMap::new();
    let mut order: Vec<String> = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let position = consumer
            .position()
            .ok()
            .and_then(|p| p.find_partition(changelog, partition).map(|e| e.offset()));
        // read_committed: the last stable offset may stop short of the high watermark
        // (an aborted transaction's markers); stop once nothing more arrives.
        if let Some(Offset::Offset(o)) = position
            && o >= high
        {
            break;
        }
        if Instant::now() > deadline {
            return Err(SqlError::Io(format!(
                "reading the changelog {changelog} timed out"
            )));
        }
        match consumer.poll(Duration::from_millis(500)) {
            Some(Ok(m)) => {
                let Some(key) = m.key().and_then(|k| std::str::from_utf8(k).ok()) else {
                    continue;
                };
                let value = m
                    .payload()
                    .and_then(|v| std::str::from_utf8(v).ok())
                    .map(str::to_string);
                if !latest.contains_key(key) {
                    order.push(key.to_string());
                }
                latest.insert(key.to_string(), value);
            }
            Some(Err(e)) => return Err(SqlError::Io(format!("reading the changelog: {e}"))),
            None => {
                // Nothing within the poll: the rest is aborted data or markers.
                let (_, now_high) = consumer
                    .fetch_watermarks(changelog, partition, Duration::from_secs(10))
                    .map_err(kafka("reading the changelog's end"))?;
                let position = consumer
                    .position()
                    .ok()
                    .and_then(|p| p.find_partition(changelog, partition).map(|e| e.offset()));
                if now_high == high && !matches!(position, Some(Offset::Offset(o)) if o < high - 1)
                {
                    break;
                }
            }
        }
    }
    let mut operators = flow.operators();
    for key in order {
        let Some(Some(value)) = latest.get(&key) else {
            continue;
        };
        if key == "flow-wm" {
            ctx.watermark = value.parse().ok();
        } else if let Some(rest) = key.strip_prefix("wm|") {
            let mut parts = rest.split('|');
            let (Some(Ok(source)), Some(Ok(partition)), Ok(wm)) = (
                parts.next().map(str::parse::<usize>),
                parts.next().map(str::parse::<i32>),
                value.parse::<i64>(),
            ) else {
                continue;
            };
            if let Some(s) = inputs.get_mut(source) {
                s.partitions.insert(partition, wm);
            }
        } else if let Some(rest) = key.strip_prefix("idle|") {
            let mut parts = rest.split('|');
            let (Some(Ok(input)), Some(Ok(upstream))) = (
                parts.next().map(str::parse::<usize>),
                parts.next().map(str::parse::<i32>),
            ) else {
                continue;
            };
            if let Some(s) = inputs.get_mut(input) {
                s.activity.insert(upstream, (value == "1", Instant::now()));
            }
        } else if let Some(rest) = key.strip_prefix("op") {
            let Some((index, state_key)) = rest.split_once('|') else {
                continue;
            };
            let Ok(index) = index.parse::<usize>() else {
                continue;
            };
            let json: Json = serde_json::from_str(value)
                .map_err(|e| SqlError::Runtime(format!("changelog {changelog}: {e}")))?;
            if let Some(op) = operators.get_mut(index) {
                op.restore(state_key, &json)?;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exchange(upstream: &[(Option<i64>, bool)]) -> InputRuntime {
        let now = Instant::now();
        let mut input = InputRuntime {
            kind: InputKind::Exchange,
            partitions: HashMap::new(),
            activity: HashMap::new(),
            idle_timeout: Duration::ZERO,
            topic: "x".into(),
        };
        for (u, (wm, idle)) in upstream.iter().enumerate() {
            if let Some(wm) = wm {
                input.partitions.insert(u as i32, *wm);
            }
            input.activity.insert(u as i32, (*idle, now));
        }
        input
    }

    #[test]
    fn an_exchange_watermark_is_the_least_of_its_active_upstreams_and_counts_the_idle_last() {
        let now = Instant::now();
        assert_eq!(
            exchange(&[(Some(5), false), (Some(9), false)]).watermark(now),
            Some(5)
        );
        // An upstream task that has said nothing holds the watermark back.
        assert_eq!(
            exchange(&[(Some(5), false), (None, false)]).watermark(now),
            None
        );
        // An idle one does not.
        assert_eq!(
            exchange(&[(Some(5), true), (Some(9), false)]).watermark(now),
            Some(9)
        );
        assert_eq!(
            exchange(&[(None, true), (Some(9), false)]).watermark(now),
            Some(9)
        );
        // All idle: their last watermarks (said with "idle" in one marker) still count.
        assert_eq!(
            exchange(&[(Some(7), true), (Some(9), true)]).watermark(now),
            Some(7)
        );
        assert_eq!(exchange(&[(None, true)]).watermark(now), None);
    }
}
