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

use crate::catalog::{ErrorPolicy, Startup};
use crate::errors::SqlError;
use crate::exec::{Change, OpCtx};
use crate::expr::{Context, Expr};
use crate::format::{Decoder, Encoder, Record};
use crate::plan::Planned;
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

struct SourceRuntime {
    decoder: Decoder,
    watermark: Option<Expr>,
    /// Each partition's watermark, once it had a row.
    partitions: HashMap<i32, i64>,
    /// Each assigned partition: whether the consumer is at its end, and when it last gave a
    /// record (or was assigned).
    activity: HashMap<i32, (bool, Instant)>,
    idle_timeout: Duration,
    topic: String,
}

impl SourceRuntime {
    /// The smallest watermark of the active partitions; None while an active partition has
    /// none, or when every partition is idle.
    fn watermark(&self, now: Instant) -> Option<i64> {
        let mut min: Option<i64> = None;
        for (p, (at_end, last)) in &self.activity {
            let idle = *at_end && now.duration_since(*last) >= self.idle_timeout;
            if idle {
                continue;
            }
            let wm = self.partitions.get(p).copied()?;
            min = Some(min.map_or(wm, |m: i64| m.min(wm)));
        }
        min
    }
}

fn kafka(what: &str) -> impl Fn(KafkaError) -> SqlError + '_ {
    move |e| SqlError::Io(format!("{what}: {e}"))
}

/// Runs `planned` until `stop` is set (or, with a LIMIT, until enough rows went out, or the
/// caller went away). Blocking: call it on a thread of its own.
pub fn run(
    cluster: &Cluster,
    mut planned: Planned,
    output: Output,
    options: &JobOptions,
    stop: &AtomicBool,
    metrics: &JobMetrics,
) -> Result<(), SqlError> {
    let continuous = matches!(output, Output::Topic(..));
    let (group, transactional_id, changelog) = job_names(&options.id);
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

    let mut sources: Vec<SourceRuntime> = Vec::new();
    for source in &planned.sources {
        sources.push(SourceRuntime {
            decoder: Decoder::new(Arc::clone(&source.table))?,
            watermark: source.table.watermark.as_ref().map(|(_, e)| e.clone()),
            partitions: HashMap::new(),
            activity: HashMap::new(),
            idle_timeout: source.table.idle_timeout,
            topic: source.table.topic.clone(),
        });
    }

    // Assign every partition of every source topic, from the committed offsets or the
    // table's startup mode.
    let mut assignment = TopicPartitionList::new();
    let mut seen_topics = std::collections::HashSet::new();
    for source in &planned.sources {
        let topic = &source.table.topic;
        if !seen_topics.insert(topic.clone()) {
            continue;
        }
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
                name: topic.clone(),
            });
        }
        let mut wanted = TopicPartitionList::new();
        for p in &partitions {
            wanted.add_partition(topic, *p);
        }
        let committed = if continuous {
            Some(
                consumer
                    .committed_offsets(wanted.clone(), Duration::from_secs(10))
                    .map_err(kafka("reading the job's committed offsets"))?,
            )
        } else {
            None
        };
        for p in partitions {
            let from_group = committed
                .as_ref()
                .and_then(|c| c.find_partition(topic, p))
                .map(|e| e.offset())
                .filter(|o| matches!(o, Offset::Offset(_)));
            let offset = match from_group {
                Some(o) => o,
                None => match source.table.startup {
                    Startup::Earliest | Startup::GroupOffsets => Offset::Beginning,
                    Startup::Latest => Offset::End,
                    Startup::Timestamp(ms) => {
                        let mut times = TopicPartitionList::new();
                        times
                            .add_partition_offset(topic, p, Offset::Offset(ms))
                            .map_err(kafka("startup timestamp"))?;
                        let found = consumer
                            .offsets_for_times(times, Duration::from_secs(10))
                            .map_err(kafka("finding the startup timestamp's offsets"))?;
                        found
                            .find_partition(topic, p)
                            .map_or(Offset::End, |e| e.offset())
                    }
                },
            };
            assignment
                .add_partition_offset(topic, p, offset)
                .map_err(kafka("assigning partitions"))?;
        }
    }
    consumer
        .assign(&assignment)
        .map_err(kafka("assigning partitions"))?;
    let assigned_at = Instant::now();
    for element in assignment.elements() {
        for s in sources.iter_mut().filter(|s| s.topic == element.topic()) {
            s.activity.insert(element.partition(), (false, assigned_at));
        }
    }

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

    let mut ctx = OpCtx {
        skip_errors: options.skip_errors,
        ..OpCtx::default()
    };
    if continuous {
        ensure_changelog(cluster, &changelog)?;
        restore(cluster, &changelog, &mut planned, &mut sources, &mut ctx)?;
    }
    if let Some(p) = &producer {
        p.begin_transaction()
            .map_err(kafka("beginning a transaction"))?;
    }

    let mut emitted: u64 = 0;
    let limit = planned.limit;
    let mut last_checkpoint = Instant::now();
    let needs_headers = planned.sources.iter().any(|s| {
        matches!(s.table.error_policy, ErrorPolicy::DeadLetter(_))
            || s.table.columns.iter().any(|c| {
                matches!(&c.kind, crate::parse::ColumnKind::Metadata { key, .. } if key == "headers")
            })
    });
    let topic_sources: HashMap<String, Vec<usize>> = {
        let mut map: HashMap<String, Vec<usize>> = HashMap::new();
        for (i, s) in sources.iter().enumerate() {
            map.entry(s.topic.clone()).or_default().push(i);
        }
        map
    };
    let mut source_wm: Vec<Option<i64>> = vec![None; sources.len()];
    let mut batch: Vec<Vec<Change>> = vec![Vec::new(); sources.len()];
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
                    for s in sources.iter_mut() {
                        if let Some(a) = s.activity.get_mut(&partition) {
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
            metrics.records_in.fetch_add(1, Ordering::Relaxed);
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
            let Some(indices) = topic_sources.get(message.topic()) else {
                continue;
            };
            let now = Instant::now();
            for &i in indices {
                let source = &mut sources[i];
                source.activity.insert(record.partition, (false, now));
                let change = match source.decoder.decode(&record) {
                    Ok(Some(change)) => change,
                    Ok(None) => continue,
                    Err(reason) => {
                        let e = SqlError::Runtime(format!(
                            "record {}/{}@{} of table {} does not decode: {reason}",
                            record.topic,
                            record.partition,
                            record.offset,
                            planned.sources[i].table.name
                        ));
                        match (&planned.sources[i].table.error_policy, &producer) {
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
                if let Some(wm) = &source.watermark {
                    match wm.eval(&change.row, &Context::default()) {
                        Ok(Value::Timestamp(t)) => {
                            let entry = source
                                .partitions
                                .entry(record.partition)
                                .or_insert(i64::MIN);
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
        // Through the flow: each source's rows, then its watermark.
        let mut out = Vec::new();
        let now = Instant::now();
        for i in 0..sources.len() {
            let changes = std::mem::take(&mut batch[i]);
            if !changes.is_empty() {
                out.extend(
                    planned
                        .flow
                        .push(i, changes, &mut ctx)
                        .inspect_err(|_| abort(producer.as_ref()))?,
                );
            }
            let wm = sources[i].watermark(now);
            if wm > source_wm[i] {
                source_wm[i] = wm;
            }
        }
        let flow_wm = source_wm
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
                planned
                    .flow
                    .advance(wm, &mut ctx)
                    .inspect_err(|_| abort(producer.as_ref()))?,
            );
        }
        // Out.
        if let Some(n) = limit {
            let room = n.saturating_sub(emitted) as usize;
            out.truncate(room);
        }
        emitted += out.len() as u64;
        metrics
            .records_out
            .fetch_add(out.len() as u64, Ordering::Relaxed);
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
                for op in planned.flow.operators() {
                    op.expire_idle(before);
                }
            }
            checkpoint(
                producer,
                &consumer,
                &changelog,
                &mut planned,
                &sources,
                &ctx,
                metrics,
            )?;
            last_checkpoint = Instant::now();
            dirty = false;
        }
    }
    if let Some(producer) = &producer {
        if dirty {
            checkpoint(
                producer,
                &consumer,
                &changelog,
                &mut planned,
                &sources,
                &ctx,
                metrics,
            )?;
        }
        let _ = producer.abort_transaction(Duration::from_secs(10));
    }
    Ok(())
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
    produce(producer, topic, record.key, record.value, Some(headers))
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
    produce(producer, topic, key, value, None)
}

/// [`send`] with headers.
fn produce(
    producer: &BaseProducer,
    topic: &str,
    key: Option<&[u8]>,
    value: Option<&[u8]>,
    headers: Option<rdkafka::message::OwnedHeaders>,
) -> Result<(), SqlError> {
    let mut record: BaseRecord<'_, [u8], [u8]> = BaseRecord::to(topic);
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
    changelog: &str,
    planned: &mut Planned,
    sources: &[SourceRuntime],
    ctx: &OpCtx,
    metrics: &JobMetrics,
) -> Result<(), SqlError> {
    let started = Instant::now();
    let mut entries = 0usize;
    for (i, op) in planned.flow.operators().into_iter().enumerate() {
        for (key, value) in op.snapshot() {
            let key = format!("op{i}|{key}");
            let value = value.map(|v| v.to_string());
            send(
                producer,
                changelog,
                Some(key.as_bytes()),
                value.as_deref().map(str::as_bytes),
            )?;
        }
        entries += op.state_entries();
    }
    metrics
        .state_entries
        .store(entries as u64, Ordering::Relaxed);
    for (i, source) in sources.iter().enumerate() {
        for (p, wm) in &source.partitions {
            let key = format!("{WATERMARK_KEY}|{i}|{p}");
            send(
                producer,
                changelog,
                Some(key.as_bytes()),
                Some(wm.to_string().as_bytes()),
            )?;
        }
    }
    if let Some(wm) = ctx.watermark {
        send(
            producer,
            changelog,
            Some(b"flow-wm"),
            Some(wm.to_string().as_bytes()),
        )?;
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

/// Creates `topic` (one partition, with `configs`) unless it exists.
pub(crate) fn create_topic(
    cluster: &Cluster,
    topic: &str,
    configs: &[(&str, &str)],
) -> Result<(), SqlError> {
    let admin: AdminClient<DefaultClientContext> = cluster
        .config()
        .create()
        .map_err(kafka("creating the admin client"))?;
    let mut new = NewTopic::new(topic, 1, TopicReplication::Fixed(1));
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

/// Makes the job's changelog topic (compacted, one partition) if it is missing. A key's state
/// is one record: room for large ones (a COUNT(DISTINCT) of many values).
fn ensure_changelog(cluster: &Cluster, topic: &str) -> Result<(), SqlError> {
    create_topic(
        cluster,
        topic,
        &[
            ("cleanup.policy", "compact"),
            ("max.message.bytes", STATE_RECORD_MAX_BYTES),
        ],
    )
}

/// Reads the changelog (read_committed) to its end into the operators and sources.
fn restore(
    cluster: &Cluster,
    changelog: &str,
    planned: &mut Planned,
    sources: &mut [SourceRuntime],
    ctx: &mut OpCtx,
) -> Result<(), SqlError> {
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
        .fetch_watermarks(changelog, 0, Duration::from_secs(10))
        .map_err(kafka("reading the changelog's end"))?;
    if high == 0 {
        return Ok(());
    }
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(changelog, 0, Offset::Beginning)
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
            .and_then(|p| p.find_partition(changelog, 0).map(|e| e.offset()));
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
                    .fetch_watermarks(changelog, 0, Duration::from_secs(10))
                    .map_err(kafka("reading the changelog's end"))?;
                let position = consumer
                    .position()
                    .ok()
                    .and_then(|p| p.find_partition(changelog, 0).map(|e| e.offset()));
                if now_high == high && !matches!(position, Some(Offset::Offset(o)) if o < high - 1)
                {
                    break;
                }
            }
        }
    }
    let mut operators = planned.flow.operators();
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
            if let Some(s) = sources.get_mut(source) {
                s.partitions.insert(partition, wm);
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
