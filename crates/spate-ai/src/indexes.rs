//! The indexes this server keeps: their definitions are records of the compacted topic
//! `_spate-ai` (key `index:<name>`, value the [`IndexSpec`] as JSON; a tombstone deletes),
//! written before a request is answered and read back at start, so a restart brings every
//! index back — each then restores from its own changelog ([`crate::index`]). A direct
//! upsert or delete is a record produced to the index's topic, so it is durable and replayed
//! like every other.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};
use std::time::Duration;

use parking_lot::{Mutex, RwLock};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use serde_json::Value as Json;

use crate::Ai;
use crate::index::{self, Index, IndexSpec};
use crate::kafka::{self, Cluster};

/// The topic holding the definitions.
pub const DEFINITIONS_TOPIC: &str = "_spate-ai";

/// What can go wrong with a request about indexes.
#[derive(Debug, thiserror::Error)]
pub enum IndexError {
    /// The request is wrong: a 400 with the reason.
    #[error("{0}")]
    Invalid(String),
    /// No index by that name.
    #[error("no index named `{0}`")]
    NotFound(String),
    /// An index by that name exists.
    #[error("an index named `{0}` exists")]
    Exists(String),
    /// The cluster did not answer.
    #[error("{0}")]
    Unavailable(String),
}

struct Running {
    index: Arc<Index>,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// The indexes, and the clients they share.
pub struct Indexes {
    cluster: Cluster,
    ai: Weak<Ai>,
    running: RwLock<BTreeMap<String, Running>>,
    /// Writes `_spate-ai` and direct upserts; taken at shutdown.
    producer: Mutex<Option<FutureProducer>>,
    /// Serialises creates and deletes.
    ddl: Mutex<()>,
}

impl Indexes {
    /// Reads `_spate-ai` and starts every index it defines. Blocking.
    pub fn start(cluster: Cluster, ai: Weak<Ai>) -> Result<Arc<Indexes>, String> {
        kafka::create_topic(
            &cluster,
            DEFINITIONS_TOPIC,
            &[("cleanup.policy", "compact")],
        )?;
        let producer: FutureProducer = kafka::config(&cluster)
            .set("enable.idempotence", "true")
            .set("acks", "all")
            .set("linger.ms", "1")
            .create()
            .map_err(kafka::error("creating the AI producer"))?;
        let definitions = kafka::read_compacted(&cluster, DEFINITIONS_TOPIC)?;
        let indexes = Arc::new(Indexes {
            cluster,
            ai,
            running: RwLock::new(BTreeMap::new()),
            producer: Mutex::new(Some(producer)),
            ddl: Mutex::new(()),
        });
        for (key, value) in definitions {
            let name = String::from_utf8_lossy(&key);
            let Some(name) = name.strip_prefix("index:") else {
                continue;
            };
            match serde_json::from_slice::<IndexSpec>(&value) {
                Ok(spec) => match indexes.dimensions(&spec) {
                    Ok(d) => {
                        if let Err(e) = indexes.launch(spec, d) {
                            tracing::error!(index = name, "a stored index cannot start: {e}");
                        }
                    }
                    // Started without its model: the index comes back when the model does.
                    Err(e) => tracing::error!(index = name, "a stored index cannot start: {e}"),
                },
                Err(e) => tracing::error!(index = name, "a stored index does not parse: {e}"),
            }
        }
        Ok(indexes)
    }

    /// The dimensions of `spec`'s model.
    fn dimensions(&self, spec: &IndexSpec) -> Result<usize, IndexError> {
        let ai = self
            .ai
            .upgrade()
            .ok_or_else(|| IndexError::Unavailable("the AI pillar is stopping".into()))?;
        let name = spec.model.as_deref().unwrap_or_default();
        match ai.model(name) {
            Ok(Some(served)) => Ok(served.model.dimensions()),
            Ok(None) => Err(IndexError::Invalid(format!(
                "the model `{name}` is not served (GET /v1/models lists the models)"
            ))),
            Err(reason) => Err(IndexError::Unavailable(format!(
                "the model `{name}` failed to load: {reason}"
            ))),
        }
    }

    fn launch(&self, spec: IndexSpec, dimensions: usize) -> Result<(), String> {
        self.start_task(Arc::new(Index::new(spec, dimensions)?));
        Ok(())
    }

    /// Starts the task of `index` on a thread of its own.
    fn start_task(&self, index: Arc<Index>) {
        let name = index.spec.name.clone();
        let task = Arc::clone(&index);
        let cluster = self.cluster.clone();
        let ai = self.ai.clone();
        let thread = std::thread::Builder::new()
            .name(format!("ai-index-{name}"))
            .spawn(move || index::supervise(&task, &cluster, &ai));
        let thread = match thread {
            Ok(t) => Some(t),
            Err(e) => {
                *index.state.lock() = index::State::Failed(format!("no thread: {e}"));
                None
            }
        };
        self.running.write().insert(name, Running { index, thread });
    }

    /// Creates an index (recorded in `_spate-ai`, then started). Blocking.
    pub fn create(&self, mut spec: IndexSpec) -> Result<Arc<Index>, IndexError> {
        spec.check().map_err(IndexError::Invalid)?;
        let _ddl = self.ddl.lock();
        if self.running.read().contains_key(&spec.name) {
            return Err(IndexError::Exists(spec.name));
        }
        if spec.model.is_none() {
            let ai = self
                .ai
                .upgrade()
                .ok_or_else(|| IndexError::Unavailable("the AI pillar is stopping".into()))?;
            let first = ai.models().next().map(|m| m.name().to_string());
            spec.model = Some(first.ok_or_else(|| {
                IndexError::Invalid(
                    "no embedding model is served: start spate with --ai-model-dir".into(),
                )
            })?);
        }
        let dimensions = self.dimensions(&spec)?;
        let exists =
            kafka::topic_exists(&self.cluster, &spec.topic).map_err(IndexError::Unavailable)?;
        if !exists {
            return Err(IndexError::Invalid(format!(
                "the topic `{}` does not exist",
                spec.topic
            )));
        }
        spec.created_ms = kafka::now_ms();
        let index = Arc::new(Index::new(spec.clone(), dimensions).map_err(IndexError::Invalid)?);
        let value = serde_json::to_vec(&spec).unwrap_or_default();
        self.write(
            DEFINITIONS_TOPIC,
            format!("index:{}", spec.name).as_bytes(),
            Some(&value),
        )
        .map_err(IndexError::Unavailable)?;
        let name = spec.name.clone();
        self.start_task(index);
        tracing::info!(index = %name, "index created");
        self.get(&name).ok_or(IndexError::NotFound(name))
    }

    /// Deletes an index: its task stops, its definition is tombstoned and its changelog
    /// deleted (the topic it followed and its dead letters stay). Blocking.
    pub fn delete(&self, name: &str) -> Result<(), IndexError> {
        let _ddl = self.ddl.lock();
        let Some(mut running) = self.running.write().remove(name) else {
            return Err(IndexError::NotFound(name.to_string()));
        };
        running.index.stop.store(true, Ordering::Relaxed);
        if let Some(t) = running.thread.take() {
            let _ = t.join();
        }
        self.write(DEFINITIONS_TOPIC, format!("index:{name}").as_bytes(), None)
            .map_err(IndexError::Unavailable)?;
        kafka::delete_topic(&self.cluster, &running.index.spec.changelog())
            .map_err(IndexError::Unavailable)?;
        tracing::info!(index = %name, "index deleted");
        Ok(())
    }

    /// The index named `name`.
    pub fn get(&self, name: &str) -> Option<Arc<Index>> {
        self.running.read().get(name).map(|r| Arc::clone(&r.index))
    }

    /// Every index, by name.
    pub fn list(&self) -> Vec<Arc<Index>> {
        self.running
            .read()
            .values()
            .map(|r| Arc::clone(&r.index))
            .collect()
    }

    /// Produces `(key, value)` records (a `None` value deletes) to `topic` and waits until
    /// each is acknowledged: their partitions and offsets, in order.
    pub async fn produce(
        &self,
        topic: &str,
        records: Vec<(String, Option<Vec<u8>>)>,
    ) -> Result<Vec<(i32, i64)>, String> {
        let mut deliveries = Vec::with_capacity(records.len());
        {
            let producer = self.producer.lock();
            let producer = producer.as_ref().ok_or("the AI pillar is stopping")?;
            for (key, value) in &records {
                let mut record: FutureRecord<'_, str, [u8]> = FutureRecord::to(topic).key(key);
                if let Some(v) = value {
                    record = record.payload(v);
                }
                let delivery = producer
                    .send_result(record)
                    .map_err(|(e, _)| format!("producing to {topic}: {e}"))?;
                deliveries.push(delivery);
            }
        }
        let mut offsets = Vec::with_capacity(deliveries.len());
        for d in deliveries {
            match d.await {
                Ok(Ok(delivery)) => offsets.push((delivery.partition, delivery.offset)),
                Ok(Err((e, _))) => return Err(format!("producing to {topic}: {e}")),
                Err(_) => return Err(format!("producing to {topic}: cancelled")),
            }
        }
        Ok(offsets)
    }

    /// Writes one record and waits for it. Blocking.
    fn write(&self, topic: &str, key: &[u8], value: Option<&[u8]>) -> Result<(), String> {
        let producer = self.producer.lock();
        let producer = producer.as_ref().ok_or("the AI pillar is stopping")?;
        let mut record: FutureRecord<'_, [u8], [u8]> = FutureRecord::to(topic).key(key);
        if let Some(v) = value {
            record = record.payload(v);
        }
        let delivery = producer
            .send_result(record)
            .map_err(|(e, _)| format!("writing to {topic}: {e}"))?;
        match futures::executor::block_on(delivery) {
            Ok(Ok(_)) => Ok(()),
            Ok(Err((e, _))) => Err(format!("writing to {topic}: {e}")),
            Err(_) => Err(format!("writing to {topic}: cancelled")),
        }
    }

    /// Stops every index's task (each ends its open transaction) and the producer. Blocking.
    pub fn shutdown(&self) {
        let mut running = std::mem::take(&mut *self.running.write());
        for r in running.values() {
            r.index.stop.store(true, Ordering::Relaxed);
        }
        for r in running.values_mut() {
            if let Some(t) = r.thread.take() {
                let _ = t.join();
            }
        }
        if let Some(p) = self.producer.lock().take() {
            let _ = p.flush(Duration::from_secs(10));
        }
    }
}

/// What describe shows of `index`.
pub fn describe(index: &Index) -> Json {
    let spec = &index.spec;
    let m = &index.metrics;
    let state = index.state.lock().clone();
    let (documents, chunks, dimensions) = {
        let store = index.store.read();
        (store.documents(), store.chunks(), store.dimensions())
    };
    let positions: serde_json::Map<String, Json> = index
        .positions()
        .into_iter()
        .map(|(p, o)| (p.to_string(), Json::from(o)))
        .collect();
    let lag_records = m.lag_records.load(Ordering::Relaxed);
    let mut out = serde_json::json!({
        "name": spec.name,
        "topic": spec.topic,
        "model": spec.model,
        "dimensions": dimensions,
        "metric": spec.metric,
        "quantization": spec.quantization,
        "text": spec.text,
        "metadata": spec.metadata,
        "chunking": spec.chunking,
        "namespaceField": spec.namespace_field,
        "deadLetterTopic": spec.dead_letter(),
        "changelog": spec.changelog(),
        "description": spec.description,
        "created": spec.created_ms,
        "state": state.name(),
        "documents": documents,
        "chunks": chunks,
        "records": m.records.load(Ordering::Relaxed),
        "errors": m.errors.load(Ordering::Relaxed),
        "embedded": m.embedded.load(Ordering::Relaxed),
        "offsets": positions,
        "lag": {
            "records": (lag_records >= 0).then_some(lag_records),
            "seconds": m.lag_ms.load(Ordering::Relaxed) as f64 / 1000.0,
        },
    });
    if let index::State::Failed(reason) = state {
        out["error"] = Json::from(reason);
    }
    out
}
