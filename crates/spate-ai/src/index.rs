//! One index that follows a topic: its definition ([`IndexSpec`]), what it holds while it runs
//! ([`Index`]: the vectors, the offsets they include, counters) and the task that keeps it
//! ([`run`]), a Kafka client of the broker like every pillar (../shared/DESIGN.md).
//!
//! The task reads the topic read_committed from the offsets its changelog records, turns each
//! record into a document (text → chunks → vectors; a tombstone deletes the key; a record
//! with no text goes to the dead-letter topic), and commits each batch in one transaction to
//! its compacted changelog `_spate-ai-index-<name>`: a record per changed document (key
//! `doc|<record key>`, vectors as base64 little-endian f32; a tombstone for a deleted one) and
//! a record per partition read (`pos|<partition>`: the next offset). The store changes only
//! after the commit. A restart, or kill -9, reads the changelog back (no text is embedded
//! again) and goes on from the offsets it holds: nothing missed, nothing applied twice. The
//! transactional id `spate-ai-index-<name>` fences an older task still writing.

use std::collections::{BTreeMap, HashMap};
use std::sync::Weak;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use base64::Engine as _;
use parking_lot::{Mutex, RwLock};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{BorrowedMessage, Header, Headers, Message, OwnedHeaders};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::{Offset, TopicPartitionList};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value as Json};

use crate::Ai;
use crate::ann::Quantization;
use crate::kafka::{self, Cluster, Quiet};
use crate::store::{Chunk, Document, Metric, Source, Store};
use crate::text::{self, Chunking, TextSpec};

/// The longest name an index may have (it names topics and a transactional id).
const MAX_NAME_LEN: usize = 64;

/// Records read into one batch at most (each is embedded before the batch commits).
const BATCH_RECORDS: usize = 256;

/// How long a batch gathers records once the first has arrived.
const BATCH_WAIT: Duration = Duration::from_millis(50);

/// How often an idle task measures its lag.
const LAG_INTERVAL: Duration = Duration::from_secs(1);

/// How an index is defined: `POST /v1/indexes`' body, kept in `_spate-ai`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct IndexSpec {
    /// Its name (letters, digits, `-`, `_`, `.`).
    pub name: String,
    /// The topic it follows.
    pub topic: String,
    /// Where a record's text comes from (the whole value as text by default).
    #[serde(default)]
    pub text: TextSpec,
    /// JSON fields kept beside each vector, for filters and answers.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub metadata: Vec<String>,
    /// How long text is cut.
    #[serde(default)]
    pub chunking: Chunking,
    /// The embedding model (the first one served when not given).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// How vectors are compared.
    #[serde(default = "cosine")]
    pub metric: Metric,
    /// How vectors are kept in the HNSW graph (f32, f16 or i8; scores are exact either way).
    #[serde(default)]
    pub quantization: Quantization,
    /// A JSON field whose value is the record's namespace (none: every record in "").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace_field: Option<String>,
    /// Where records with no text go (default `<name>-dlq`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dead_letter_topic: Option<String>,
    /// Free text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// When it was created (ms since the epoch; set by the server).
    #[serde(default)]
    pub created_ms: i64,
}

fn cosine() -> Metric {
    Metric::Cosine
}

impl IndexSpec {
    /// Checks what can be checked without the cluster: the error is a 400's reason.
    pub fn check(&self) -> Result<(), String> {
        check_name(&self.name)?;
        if self.topic.is_empty() {
            return Err("`topic` is required".into());
        }
        self.chunking.check()?;
        self.text.check()?;
        if let Some(dlq) = &self.dead_letter_topic
            && (dlq.is_empty() || dlq == &self.topic)
        {
            return Err("`deadLetterTopic` must name a topic other than `topic`".into());
        }
        Ok(())
    }

    /// The dead-letter topic.
    pub fn dead_letter(&self) -> String {
        self.dead_letter_topic
            .clone()
            .unwrap_or_else(|| format!("{}-dlq", self.name))
    }

    /// The compacted changelog holding the index.
    pub fn changelog(&self) -> String {
        format!("_spate-ai-index-{}", self.name)
    }

    /// The transactional id of the task writing the changelog.
    pub fn transactional_id(&self) -> String {
        format!("spate-ai-index-{}", self.name)
    }

    /// Whether records are read as JSON objects.
    fn reads_json(&self) -> bool {
        self.text.reads_json() || !self.metadata.is_empty() || self.namespace_field.is_some()
    }
}

/// Checks an index name.
pub fn check_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > MAX_NAME_LEN {
        return Err(format!(
            "an index name has 1 to {MAX_NAME_LEN} characters; `{name}` has {}",
            name.len()
        ));
    }
    if !name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    {
        return Err(format!(
            "an index name has letters, digits, `-`, `_` and `.` only; `{name}` has others"
        ));
    }
    Ok(())
}

/// Where a task is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum State {
    /// Reading its changelog back.
    Restoring,
    /// Following the topic.
    Running,
    /// Failed, with why; the task tries again.
    Failed(String),
}

impl State {
    /// The name shown.
    pub fn name(&self) -> &'static str {
        match self {
            State::Restoring => "RESTORING",
            State::Running => "RUNNING",
            State::Failed(_) => "FAILED",
        }
    }
}

/// An index's counters, for `/metrics` and describe.
#[derive(Debug)]
pub struct IndexMetrics {
    /// Records read from the topic.
    pub records: AtomicU64,
    /// Records with no text (sent to the dead-letter topic).
    pub errors: AtomicU64,
    /// Chunks embedded.
    pub embedded: AtomicU64,
    /// Transactions committed.
    pub commits: AtomicU64,
    /// Records between the offsets the index includes and the topic's end (-1: not known yet).
    pub lag_records: AtomicI64,
    /// How old the newest record the index includes was when last measured behind (0 when
    /// caught up), milliseconds.
    pub lag_ms: AtomicI64,
}

impl Default for IndexMetrics {
    fn default() -> Self {
        IndexMetrics {
            records: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            embedded: AtomicU64::new(0),
            commits: AtomicU64::new(0),
            lag_records: AtomicI64::new(-1),
            lag_ms: AtomicI64::new(0),
        }
    }
}

/// A running index: what queries read and the task writes.
pub struct Index {
    /// Its definition (the model resolved).
    pub spec: IndexSpec,
    /// Its vectors.
    pub store: RwLock<Store>,
    /// The next offset of each partition the store includes.
    positions: tokio::sync::watch::Sender<BTreeMap<i32, i64>>,
    /// Where the task is.
    pub state: Mutex<State>,
    /// Its counters.
    pub metrics: IndexMetrics,
    /// Set to stop the task.
    pub stop: AtomicBool,
}

impl Index {
    /// A new, empty index of `dimensions`.
    pub fn new(spec: IndexSpec, dimensions: usize) -> Result<Index, String> {
        let store = Store::new(dimensions, spec.metric, spec.quantization)?;
        Ok(Index {
            spec,
            store: RwLock::new(store),
            positions: tokio::sync::watch::Sender::new(BTreeMap::new()),
            state: Mutex::new(State::Restoring),
            metrics: IndexMetrics::default(),
            stop: AtomicBool::new(false),
        })
    }

    /// The next offset of each partition the index includes.
    pub fn positions(&self) -> BTreeMap<i32, i64> {
        self.positions.borrow().clone()
    }

    /// Waits (up to `timeout`) until the index includes offset `offset` of each
    /// `(partition, offset)`; false when the time ran out.
    pub async fn wait_for(&self, wanted: &[(i32, i64)], timeout: Duration) -> bool {
        let mut rx = self.positions.subscribe();
        let reached = |p: &BTreeMap<i32, i64>| {
            wanted
                .iter()
                .all(|(partition, offset)| p.get(partition).is_some_and(|next| next > offset))
        };
        tokio::time::timeout(timeout, rx.wait_for(reached))
            .await
            .is_ok_and(|r| r.is_ok())
    }
}

/// A document as the changelog holds it.
#[derive(Serialize, Deserialize)]
struct StoredDocument {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    namespace: String,
    chunks: Vec<StoredChunk>,
}

#[derive(Serialize, Deserialize)]
struct StoredChunk {
    text: String,
    /// The vector: little-endian f32, base64.
    vector: String,
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    metadata: Map<String, Json>,
    partition: i32,
    offset: i64,
}

const DOC_PREFIX: &[u8] = b"doc|";
const POS_PREFIX: &[u8] = b"pos|";

fn encode_vector(v: &[f32]) -> String {
    let bytes: Vec<u8> = v.iter().flat_map(|f| f.to_le_bytes()).collect();
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

fn decode_vector(text: &str) -> Result<Vec<f32>, String> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(text)
        .map_err(|e| format!("a vector is not base64: {e}"))?;
    if bytes.len() % 4 != 0 {
        return Err(format!(
            "a vector has {} bytes, not a multiple of 4",
            bytes.len()
        ));
    }
    Ok(bytes
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect())
}

/// The changelog value of `document`.
fn encode_document(document: &Document) -> Vec<u8> {
    let stored = StoredDocument {
        namespace: document.namespace.clone(),
        chunks: document
            .chunks
            .iter()
            .map(|c| StoredChunk {
                text: c.text.clone(),
                vector: encode_vector(&c.vector),
                metadata: c.metadata.clone(),
                partition: c.source.partition,
                offset: c.source.offset,
            })
            .collect(),
    };
    serde_json::to_vec(&stored).unwrap_or_default()
}

/// The document `key` of the changelog value `value`.
fn decode_document(topic: &str, key: &str, value: &[u8]) -> Result<Document, String> {
    let stored: StoredDocument =
        serde_json::from_slice(value).map_err(|e| format!("document `{key}`: {e}"))?;
    let count = stored.chunks.len();
    let chunks = stored
        .chunks
        .into_iter()
        .enumerate()
        .map(|(n, c)| {
            Ok(Chunk {
                id: chunk_id(key, n, count),
                text: c.text,
                vector: decode_vector(&c.vector)?,
                metadata: c.metadata,
                source: Source {
                    topic: topic.to_string(),
                    partition: c.partition,
                    offset: c.offset,
                },
            })
        })
        .collect::<Result<Vec<_>, String>>()?;
    Ok(Document {
        key: key.to_string(),
        namespace: stored.namespace,
        chunks,
    })
}

/// A chunk's id: the record key for a single chunk, `<key>#<n>` for each of several.
pub fn chunk_id(key: &str, n: usize, count: usize) -> String {
    if count == 1 {
        key.to_string()
    } else {
        format!("{key}#{n}")
    }
}

/// The document key of a record: its key as text, or `<partition>-<offset>` for a record with
/// none (each such record is a document of its own).
fn document_key(message: &BorrowedMessage<'_>) -> String {
    match message.key() {
        Some(k) => String::from_utf8_lossy(k).into_owned(),
        None => format!("{}-{}", message.partition(), message.offset()),
    }
}

/// A record's value as a JSON object: plain JSON, or JSON behind the schema registry's 5-byte
/// header (magic byte 0, schema id), as JSON Schema serializers write it.
fn json_object(raw: &[u8]) -> Option<Map<String, Json>> {
    let parsed = serde_json::from_slice::<Json>(raw).ok().or_else(|| {
        (raw.len() > 5 && raw[0] == 0)
            .then(|| serde_json::from_slice::<Json>(&raw[5..]).ok())
            .flatten()
    })?;
    match parsed {
        Json::Object(m) => Some(m),
        _ => None,
    }
}

/// A record turned into what to embed.
struct Pending {
    key: String,
    namespace: String,
    chunks: Vec<String>,
    metadata: Map<String, Json>,
    partition: i32,
    offset: i64,
}

/// What a record asks of the index.
enum Change {
    Upsert(Pending),
    Delete(String),
}

/// Reads `message` as the index's spec says: a change, or why it has no text.
fn change_of(spec: &IndexSpec, message: &BorrowedMessage<'_>) -> Result<Change, String> {
    let key = document_key(message);
    let Some(raw) = message.payload() else {
        return Ok(Change::Delete(key));
    };
    let json = if spec.reads_json() {
        json_object(raw)
    } else {
        None
    };
    let text = spec.text.text(raw, json.as_ref())?;
    if text.trim().is_empty() {
        return Err("the text is empty".into());
    }
    let namespace = match &spec.namespace_field {
        Some(field) => match json.as_ref().and_then(|o| text::lookup(o, field)) {
            Some(Json::String(s)) => s.clone(),
            Some(v) => v.to_string(),
            None => String::new(),
        },
        None => String::new(),
    };
    Ok(Change::Upsert(Pending {
        key,
        namespace,
        chunks: spec.chunking.split(&text),
        metadata: text::metadata(json.as_ref(), &spec.metadata),
        partition: message.partition(),
        offset: message.offset(),
    }))
}

/// Runs the task of `index` until it is stopped; a failure (the cluster, the model) is logged
/// once, shown in describe, and retried with a growing pause.
pub fn supervise(index: &Index, cluster: &Cluster, ai: &Weak<Ai>) {
    let mut pause = Duration::from_millis(500);
    let mut last_error = String::new();
    while !index.stop.load(Ordering::Relaxed) {
        *index.state.lock() = State::Restoring;
        match run(index, cluster, ai) {
            Ok(()) => return,
            Err(e) => {
                if e != last_error {
                    tracing::error!(index = %index.spec.name, "the index's task failed: {e}");
                    last_error = e.clone();
                }
                *index.state.lock() = State::Failed(e);
            }
        }
        let until = Instant::now() + pause;
        while Instant::now() < until && !index.stop.load(Ordering::Relaxed) {
            std::thread::sleep(Duration::from_millis(50));
        }
        pause = (pause * 2).min(Duration::from_secs(10));
    }
}

/// One run of the task: restore, then follow the topic until stopped.
fn run(index: &Index, cluster: &Cluster, ai: &Weak<Ai>) -> Result<(), String> {
    let spec = &index.spec;
    let changelog = spec.changelog();
    kafka::create_topic(
        cluster,
        &changelog,
        &[
            ("cleanup.policy", "compact"),
            ("max.message.bytes", kafka::LARGE_RECORD_BYTES),
        ],
    )?;
    let dead_letter = spec.dead_letter();
    kafka::create_topic(cluster, &dead_letter, &[])?;

    let producer: BaseProducer = kafka::config(cluster)
        .set("transactional.id", spec.transactional_id())
        .set("transaction.timeout.ms", "60000")
        .set("enable.idempotence", "true")
        .set("linger.ms", "5")
        .set("message.max.bytes", kafka::LARGE_RECORD_BYTES)
        .set("compression.type", "lz4")
        .create()
        .map_err(kafka::error("creating the index's producer"))?;
    // Fences an older task and ends its open transaction, so the changelog has an end to read
    // to.
    producer
        .init_transactions(Duration::from_secs(60))
        .map_err(kafka::error("initialising the index's transactions"))?;
    // Back to what the changelog holds, without embedding anything again.
    let (store, positions) = restore(index, cluster, &changelog)?;
    *index.store.write() = store;
    index.positions.send_replace(positions.clone());
    let consumer: BaseConsumer<Quiet> =
        kafka::consumer(cluster, &format!("spate-ai-{}", spec.name))
            .set("isolation.level", "read_committed")
            .set("enable.partition.eof", "false")
            .set("fetch.wait.max.ms", "100")
            .create_with_context(Quiet)
            .map_err(kafka::error("creating the index's consumer"))?;
    let partitions = kafka::partitions(&consumer, &spec.topic)?;
    let mut assignment = TopicPartitionList::new();
    for p in &partitions {
        let offset = positions
            .get(p)
            .map_or(Offset::Beginning, |o| Offset::Offset(*o));
        assignment
            .add_partition_offset(&spec.topic, *p, offset)
            .map_err(kafka::error("assigning the topic"))?;
    }
    consumer
        .assign(&assignment)
        .map_err(kafka::error("assigning the topic"))?;

    *index.state.lock() = State::Running;
    tracing::info!(
        index = %spec.name,
        topic = %spec.topic,
        documents = index.store.read().documents(),
        "index is following its topic"
    );

    let mut last_lag = Instant::now() - LAG_INTERVAL;
    let mut newest_ms: Option<i64> = None;
    while !index.stop.load(Ordering::Relaxed) {
        let mut changes: Vec<Change> = Vec::new();
        let mut dead: Vec<(BorrowedMessageCopy, String)> = Vec::new();
        let mut read: BTreeMap<i32, i64> = BTreeMap::new();
        let mut count = 0u64;
        let started = Instant::now();
        while changes.len() + dead.len() < BATCH_RECORDS {
            let wait = if changes.is_empty() && dead.is_empty() {
                Duration::from_millis(100)
            } else {
                BATCH_WAIT.saturating_sub(started.elapsed())
            };
            let Some(result) = consumer.poll(wait) else {
                break;
            };
            let message = match result {
                Ok(m) => m,
                Err(e) => {
                    tracing::warn!(index = %spec.name, "consumer: {e}");
                    continue;
                }
            };
            count += 1;
            read.insert(message.partition(), message.offset() + 1);
            if let Some(ms) = message.timestamp().to_millis() {
                newest_ms = Some(ms);
            }
            match change_of(spec, &message) {
                Ok(change) => changes.push(change),
                Err(reason) => dead.push((BorrowedMessageCopy::of(&message), reason)),
            }
        }
        if read.is_empty() {
            if last_lag.elapsed() >= LAG_INTERVAL {
                measure_lag(index, &consumer, &partitions, &index.positions(), newest_ms);
                last_lag = Instant::now();
            }
            continue;
        }
        let documents = embed(index, ai, changes)?;
        commit(
            index,
            &producer,
            &changelog,
            &dead_letter,
            &documents,
            &dead,
            &read,
        )?;
        index.metrics.records.fetch_add(count, Ordering::Relaxed);
        index
            .metrics
            .errors
            .fetch_add(dead.len() as u64, Ordering::Relaxed);
        {
            let mut store = index.store.write();
            for (key, document) in documents {
                match document {
                    Some(d) => store
                        .upsert(d)
                        .map_err(|e| format!("index {}: {e}", spec.name))?,
                    None => {
                        store.delete(&key);
                    }
                }
            }
        }
        // The lag is measured before the new offsets show, so whoever sees them sees it too.
        let mut positions = index.positions();
        positions.extend(read);
        measure_lag(index, &consumer, &partitions, &positions, newest_ms);
        last_lag = Instant::now();
        index.positions.send_replace(positions);
    }
    let _ = producer.abort_transaction(Duration::from_secs(10));
    Ok(())
}

/// A record kept for the dead-letter topic.
struct BorrowedMessageCopy {
    key: Option<Vec<u8>>,
    value: Option<Vec<u8>>,
    headers: Vec<(String, Option<Vec<u8>>)>,
    source: String,
}

impl BorrowedMessageCopy {
    fn of(message: &BorrowedMessage<'_>) -> BorrowedMessageCopy {
        BorrowedMessageCopy {
            key: message.key().map(<[u8]>::to_vec),
            value: message.payload().map(<[u8]>::to_vec),
            headers: message
                .headers()
                .map(|h| {
                    h.iter()
                        .map(|h| (h.key.to_string(), h.value.map(<[u8]>::to_vec)))
                        .collect()
                })
                .unwrap_or_default(),
            source: format!(
                "{}/{}@{}",
                message.topic(),
                message.partition(),
                message.offset()
            ),
        }
    }
}

/// Embeds the batch's texts (every chunk of every upsert, in one call to the model) into the
/// documents to store: by key, the last change of each key winning.
fn embed(
    index: &Index,
    ai: &Weak<Ai>,
    changes: Vec<Change>,
) -> Result<Vec<(String, Option<Document>)>, String> {
    // The last change of each key, in the order the keys were last changed.
    let mut last: HashMap<String, usize> = HashMap::new();
    for (i, c) in changes.iter().enumerate() {
        let key = match c {
            Change::Upsert(p) => &p.key,
            Change::Delete(k) => k,
        };
        last.insert(key.clone(), i);
    }
    let kept: Vec<Change> = changes
        .into_iter()
        .enumerate()
        .filter(|(i, c)| {
            let key = match c {
                Change::Upsert(p) => &p.key,
                Change::Delete(k) => k,
            };
            last.get(key) == Some(i)
        })
        .map(|(_, c)| c)
        .collect();
    let texts: Vec<&str> = kept
        .iter()
        .flat_map(|c| match c {
            Change::Upsert(p) => p.chunks.iter().map(String::as_str).collect(),
            Change::Delete(_) => Vec::new(),
        })
        .collect();
    let mut vectors = if texts.is_empty() {
        Vec::new()
    } else {
        let ai = ai.upgrade().ok_or("the AI pillar is stopping")?;
        let model = index.spec.model.as_deref().unwrap_or_default();
        let served = match ai.model(model) {
            Ok(Some(s)) => s,
            Ok(None) => return Err(format!("the model `{model}` is not served")),
            Err(reason) => return Err(format!("the model `{model}` failed to load: {reason}")),
        };
        let embedded = ai
            .embed_blocking(served, &texts)
            .map_err(|e| format!("embedding: {e}"))?;
        index
            .metrics
            .embedded
            .fetch_add(texts.len() as u64, Ordering::Relaxed);
        embedded.vectors
    }
    .into_iter();
    let topic = &index.spec.topic;
    Ok(kept
        .into_iter()
        .map(|c| match c {
            Change::Delete(key) => (key, None),
            Change::Upsert(p) => {
                let count = p.chunks.len();
                let chunks = p
                    .chunks
                    .into_iter()
                    .enumerate()
                    .map(|(n, text)| Chunk {
                        id: chunk_id(&p.key, n, count),
                        text,
                        vector: vectors.next().unwrap_or_default(),
                        metadata: p.metadata.clone(),
                        source: Source {
                            topic: topic.clone(),
                            partition: p.partition,
                            offset: p.offset,
                        },
                    })
                    .collect();
                let document = Document {
                    key: p.key.clone(),
                    namespace: p.namespace,
                    chunks,
                };
                (p.key, Some(document))
            }
        })
        .collect())
}

/// One transaction: the changed documents, the dead letters and the offsets read; then a new
/// transaction begins.
fn commit(
    index: &Index,
    producer: &BaseProducer,
    changelog: &str,
    dead_letter: &str,
    documents: &[(String, Option<Document>)],
    dead: &[(BorrowedMessageCopy, String)],
    read: &BTreeMap<i32, i64>,
) -> Result<(), String> {
    producer
        .begin_transaction()
        .map_err(kafka::error("beginning a transaction"))?;
    let result = (|| {
        for (key, document) in documents {
            let mut changelog_key = DOC_PREFIX.to_vec();
            changelog_key.extend_from_slice(key.as_bytes());
            let value = document.as_ref().map(encode_document);
            send(
                producer,
                changelog,
                Some(0),
                Some(&changelog_key),
                value.as_deref(),
                None,
            )?;
        }
        for (record, reason) in dead {
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
                    value: Some(record.source.as_bytes()),
                });
            send(
                producer,
                dead_letter,
                None,
                record.key.as_deref(),
                record.value.as_deref(),
                Some(headers),
            )?;
        }
        for (partition, next) in read {
            let mut key = POS_PREFIX.to_vec();
            key.extend_from_slice(partition.to_string().as_bytes());
            send(
                producer,
                changelog,
                Some(0),
                Some(&key),
                Some(next.to_string().as_bytes()),
                None,
            )?;
        }
        producer
            .commit_transaction(Duration::from_secs(60))
            .map_err(kafka::error("committing the index's changes"))
    })();
    if let Err(e) = result {
        let _ = producer.abort_transaction(Duration::from_secs(10));
        return Err(e);
    }
    index.metrics.commits.fetch_add(1, Ordering::Relaxed);
    Ok(())
}

/// Sends one record, waiting for room in the producer's queue.
fn send(
    producer: &BaseProducer,
    topic: &str,
    partition: Option<i32>,
    key: Option<&[u8]>,
    value: Option<&[u8]>,
    headers: Option<OwnedHeaders>,
) -> Result<(), String> {
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
            Err((e, _)) => return Err(format!("producing to {topic}: {e}")),
        }
    }
}

/// Measures the lag: records between the index's offsets and the topic's ends, and (when
/// behind) how old the newest record it includes is.
fn measure_lag(
    index: &Index,
    consumer: &BaseConsumer<Quiet>,
    partitions: &[i32],
    positions: &BTreeMap<i32, i64>,
    newest_ms: Option<i64>,
) {
    // read_committed: the consumer steps over transaction markers, which the index never
    // sees; its position counts them.
    let consumed = consumer.position().ok();
    let mut lag = 0i64;
    for p in partitions {
        let Ok((low, high)) =
            consumer.fetch_watermarks(&index.spec.topic, *p, Duration::from_secs(5))
        else {
            return;
        };
        let stepped = consumed
            .as_ref()
            .and_then(|c| c.find_partition(&index.spec.topic, *p))
            .and_then(|e| match e.offset() {
                Offset::Offset(o) => Some(o),
                _ => None,
            })
            .unwrap_or(low);
        let next = positions
            .get(p)
            .copied()
            .unwrap_or(low)
            .max(stepped)
            .max(low);
        lag += (high - next).max(0);
    }
    index.metrics.lag_records.store(lag, Ordering::Relaxed);
    let seconds = match newest_ms {
        Some(ms) if lag > 0 => (kafka::now_ms() - ms).max(0),
        _ => 0,
    };
    index.metrics.lag_ms.store(seconds, Ordering::Relaxed);
}

/// Reads the changelog back: the store and the offsets it includes.
fn restore(
    index: &Index,
    cluster: &Cluster,
    changelog: &str,
) -> Result<(Store, BTreeMap<i32, i64>), String> {
    let spec = &index.spec;
    let dimensions = index.store.read().dimensions();
    let mut store = Store::new(dimensions, spec.metric, spec.quantization)?;
    let mut positions = BTreeMap::new();
    let latest = kafka::read_compacted(cluster, changelog)?;
    for (key, value) in latest {
        if let Some(doc_key) = key.strip_prefix(DOC_PREFIX) {
            let doc_key = String::from_utf8_lossy(doc_key);
            let document = decode_document(&spec.topic, &doc_key, &value)
                .map_err(|e| format!("changelog {changelog}: {e}"))?;
            store
                .upsert(document)
                .map_err(|e| format!("changelog {changelog}: {e}"))?;
        } else if let Some(partition) = key.strip_prefix(POS_PREFIX)
            && let Ok(partition) = std::str::from_utf8(partition).unwrap_or("").parse::<i32>()
            && let Ok(next) = std::str::from_utf8(&value).unwrap_or("").parse::<i64>()
        {
            positions.insert(partition, next);
        }
    }
    Ok((store, positions))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_document_round_trips_through_the_changelog() {
        let mut metadata = Map::new();
        metadata.insert("lang".into(), json!("en"));
        let document = Document {
            key: "k1".into(),
            namespace: "docs".into(),
            chunks: (0..2)
                .map(|n| Chunk {
                    id: chunk_id("k1", n, 2),
                    text: format!("chunk {n}"),
                    vector: vec![0.5, -1.25, f32::MIN_POSITIVE, n as f32],
                    metadata: metadata.clone(),
                    source: Source {
                        topic: "t".into(),
                        partition: 3,
                        offset: 42,
                    },
                })
                .collect(),
        };
        let bytes = encode_document(&document);
        assert_eq!(decode_document("t", "k1", &bytes), Ok(document));
        assert!(
            decode_document(
                "t",
                "k1",
                b"{\"chunks\":[{\"text\":\"x\",\"vector\":\"AAA\",\"partition\":0,\"offset\":0}]}"
            )
            .is_err()
        );
    }

    #[test]
    fn specs_are_checked_and_default_as_documented() {
        let spec: IndexSpec = serde_json::from_value(json!({"name": "docs", "topic": "articles"}))
            .expect("a minimal spec parses");
        assert_eq!(spec.metric, Metric::Cosine);
        assert_eq!(spec.chunking, Chunking::default());
        assert_eq!(spec.dead_letter(), "docs-dlq");
        assert_eq!(spec.changelog(), "_spate-ai-index-docs");
        assert!(spec.check().is_ok());
        let bad = IndexSpec {
            name: "a b".into(),
            ..spec.clone()
        };
        assert!(
            bad.check()
                .expect_err("a space is refused")
                .contains("letters, digits")
        );
        assert!(
            serde_json::from_value::<IndexSpec>(json!({"name": "x", "topic": "t", "metrc": "dot"}))
                .is_err()
        );
    }

    #[test]
    fn a_value_is_json_plain_or_behind_the_registry_header() {
        assert_eq!(
            json_object(br#"{"a":1}"#).and_then(|m| m.get("a").cloned()),
            Some(json!(1))
        );
        let mut framed = vec![0, 0, 0, 0, 7];
        framed.extend_from_slice(br#"{"a":2}"#);
        assert_eq!(
            json_object(&framed).and_then(|m| m.get("a").cloned()),
            Some(json!(2))
        );
        assert_eq!(json_object(b"[1]"), None);
        assert_eq!(json_object(b"text"), None);
    }
}
