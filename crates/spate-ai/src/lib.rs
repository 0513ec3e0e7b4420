//! Spate AI: the AI pillar (../shared/DESIGN.md, "Pillars above the broker").
//!
//! - [`embed`]: a local sentence-transformer model (BERT: `config.json`,
//!   `tokenizer.json`, `model.safetensors`) run on the CPU with candle, batched, with the mean
//!   pooling and normalisation sentence-transformers applies;
//! - [`store`] and [`filter`]: an index's vectors (chunks of a topic's records, upserted and
//!   deleted by record key) and the metadata filters of Vectorize and Pinecone;
//! - [`text`]: what an index reads from a record (the text, metadata fields) and chunking;
//! - [`index`] and [`indexes`]: indexes that follow topics (each a Kafka client task keeping
//!   its vectors exactly once in a changelog), defined in `_spate-ai`;
//! - [`gateway`]: the OpenAI-compatible AI gateway (`POST /v1/chat/completions`) in front of
//!   OpenAI-compatible and Anthropic providers, with retries, fallback, a cache, rate limits
//!   and a record of every call in `_ai_requests`;
//! - [`kafka`]: the librdkafka pieces they share;
//! - [`api`]: the OpenAI-compatible HTTP API served under `/v1/` on the HTTP listener
//!   (`POST /v1/embeddings`, `GET /v1/models`), so the `openai` client libraries work by
//!   changing their base URL, and the indexes' API (`/v1/indexes`, in Vectorize's shape).

pub mod ann;
pub mod api;
mod api_indexes;
pub mod embed;
pub mod filter;
pub mod gateway;
pub mod index;
pub mod indexes;
pub mod kafka;
pub mod store;
pub mod text;

use std::fmt::Write;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Instant;

use spate_metrics::{Histogram, escape_label, write_header, write_histogram, write_single};

pub use embed::{EmbedError, Embeddings, LocalModel};

/// A model's counters, for `/metrics`.
#[derive(Debug, Default)]
pub struct ModelMetrics {
    /// Embedding requests answered.
    pub requests: AtomicU64,
    /// Texts embedded.
    pub texts: AtomicU64,
    /// Tokens read.
    pub tokens: AtomicU64,
    /// Requests that failed in the model.
    pub errors: AtomicU64,
    /// Each request's time in the model (waiting for it included).
    pub seconds: Histogram,
}

/// A loaded model with its counters.
pub struct Served {
    /// The model.
    pub model: Arc<LocalModel>,
    metrics: ModelMetrics,
}

impl Served {
    fn record(&self, started: Instant, texts: usize, result: &Result<Embeddings, EmbedError>) {
        let m = &self.metrics;
        m.requests.fetch_add(1, Ordering::Relaxed);
        match result {
            Ok(e) => {
                m.texts.fetch_add(texts as u64, Ordering::Relaxed);
                m.tokens.fetch_add(e.tokens as u64, Ordering::Relaxed);
            }
            Err(_) => {
                m.errors.fetch_add(1, Ordering::Relaxed);
            }
        }
        m.seconds.observe_since(started);
    }
}

/// What the AI pillar serves: the models it loaded, and those that failed to load (requests
/// for them say why, with 503).
pub struct Ai {
    models: Vec<Served>,
    failed: Vec<(String, String)>,
    /// One model run at a time: each uses every core, so more would only share them.
    running: Arc<parking_lot::Mutex<()>>,
    /// The indexes, once the cluster answers.
    indexes: OnceLock<Arc<indexes::Indexes>>,
    /// Turns true when the indexes are set.
    indexes_set: tokio::sync::watch::Sender<bool>,
    /// The gateway's models (`(name, provider)`), listed by `GET /v1/models` beside the
    /// embedding models.
    gateway_models: OnceLock<Vec<(String, String)>>,
}

impl Ai {
    /// Loads each `(name, directory)`; a model that fails to load is logged (one line naming
    /// the file) and answered with 503, and the rest of Spate keeps running.
    pub fn load(models: &[(String, PathBuf)]) -> Ai {
        let mut loaded = Vec::new();
        let mut failed = Vec::new();
        for (name, dir) in models {
            match LocalModel::load(name, dir) {
                Ok(model) => {
                    tracing::info!(
                        model = %name,
                        dir = %dir.display(),
                        dimensions = model.dimensions(),
                        max_tokens = model.max_tokens(),
                        "embedding model loaded"
                    );
                    loaded.push(Served {
                        model: Arc::new(model),
                        metrics: ModelMetrics::default(),
                    });
                }
                Err(e) => {
                    tracing::error!(model = %name, "embedding model not loaded: {e}");
                    failed.push((name.clone(), e.to_string()));
                }
            }
        }
        Ai {
            models: loaded,
            failed,
            running: Arc::new(parking_lot::Mutex::new(())),
            indexes: OnceLock::new(),
            indexes_set: tokio::sync::watch::Sender::new(false),
            gateway_models: OnceLock::new(),
        }
    }

    /// Lists the gateway's models (`(name, provider)`) in `GET /v1/models`.
    pub fn set_gateway_models(&self, models: Vec<(String, String)>) {
        let _ = self.gateway_models.set(models);
    }

    /// The gateway's models, as set.
    pub fn gateway_models(&self) -> &[(String, String)] {
        self.gateway_models.get().map_or(&[], Vec::as_slice)
    }

    /// Hands over the indexes once they run.
    pub fn set_indexes(&self, indexes: Arc<indexes::Indexes>) {
        let _ = self.indexes.set(indexes);
        self.indexes_set.send_replace(true);
    }

    /// The indexes, if they run.
    pub fn indexes(&self) -> Option<&Arc<indexes::Indexes>> {
        self.indexes.get()
    }

    /// The indexes, waiting up to `timeout` while they start (the broker comes up first);
    /// none at once when no model is configured (an index needs one).
    pub async fn wait_indexes(
        &self,
        timeout: std::time::Duration,
    ) -> Option<Arc<indexes::Indexes>> {
        if let Some(i) = self.indexes.get() {
            return Some(Arc::clone(i));
        }
        if self.models.is_empty() && self.failed.is_empty() {
            return None;
        }
        let mut set = self.indexes_set.subscribe();
        let _ = tokio::time::timeout(timeout, set.wait_for(|s| *s)).await;
        self.indexes.get().cloned()
    }

    /// The model named `name`: Ok(None) when there is none, Err(reason) when it failed to load.
    pub fn model(&self, name: &str) -> Result<Option<&Served>, &str> {
        if let Some((_, reason)) = self.failed.iter().find(|(n, _)| n == name) {
            return Err(reason);
        }
        Ok(self.models.iter().find(|s| s.model.name() == name))
    }

    /// Every loaded model, in the order configured.
    pub fn models(&self) -> impl Iterator<Item = &LocalModel> {
        self.models.iter().map(|s| &*s.model)
    }

    /// Embeds `texts` with `served`'s model on a blocking thread, one model run at a time.
    pub async fn embed(
        &self,
        served: &Served,
        texts: Vec<String>,
    ) -> Result<Embeddings, EmbedError> {
        let started = Instant::now();
        let count = texts.len();
        let model = Arc::clone(&served.model);
        let running = Arc::clone(&self.running);
        let result = tokio::task::spawn_blocking(move || {
            let _turn = running.lock();
            model.embed(&texts)
        })
        .await
        .unwrap_or_else(|e| Err(EmbedError::Run(e.to_string())));
        served.record(started, count, &result);
        result
    }

    /// [`Ai::embed`] on the caller's thread (an index's task).
    pub fn embed_blocking<S: AsRef<str>>(
        &self,
        served: &Served,
        texts: &[S],
    ) -> Result<Embeddings, EmbedError> {
        let started = Instant::now();
        let result = {
            let _turn = self.running.lock();
            served.model.embed(texts)
        };
        served.record(started, texts.len(), &result);
        result
    }

    /// Writes the `spate_ai_*` metrics (Prometheus text format).
    pub fn render_metrics(&self, out: &mut String) {
        write_single(
            out,
            "spate_ai_models_failed",
            "gauge",
            "Configured models that failed to load (their requests get 503).",
            self.failed.len(),
        );
        type Read = fn(&ModelMetrics) -> u64;
        let counters: [(&str, &str, Read); 4] = [
            (
                "spate_ai_embedding_requests_total",
                "Embedding requests a model answered.",
                |m| m.requests.load(Ordering::Relaxed),
            ),
            (
                "spate_ai_embedding_texts_total",
                "Texts a model embedded.",
                |m| m.texts.load(Ordering::Relaxed),
            ),
            (
                "spate_ai_embedding_tokens_total",
                "Tokens a model read (after truncation, special tokens included).",
                |m| m.tokens.load(Ordering::Relaxed),
            ),
            (
                "spate_ai_embedding_errors_total",
                "Embedding requests that failed in the model.",
                |m| m.errors.load(Ordering::Relaxed),
            ),
        ];
        for (name, help, read) in counters {
            write_header(out, name, "counter", help);
            for s in &self.models {
                let model = escape_label(s.model.name());
                let _ = writeln!(out, "{name}{{model=\"{model}\"}} {}", read(&s.metrics));
            }
        }
        write_header(
            out,
            "spate_ai_embedding_seconds",
            "histogram",
            "Time an embedding request spent waiting for and running the model.",
        );
        for s in &self.models {
            let labels = format!("model=\"{}\"", escape_label(s.model.name()));
            write_histogram(
                out,
                "spate_ai_embedding_seconds",
                &labels,
                &s.metrics.seconds,
            );
        }
        if let Some(indexes) = self.indexes() {
            render_index_metrics(&indexes.list(), out);
        }
    }
}

/// The `spate_ai_index_*` metrics, a series per index.
fn render_index_metrics(indexes: &[Arc<index::Index>], out: &mut String) {
    type Read = fn(&index::Index) -> String;
    let series: [(&str, &str, &str, Read); 8] = [
        (
            "spate_ai_index_documents",
            "gauge",
            "Documents (record keys) an index holds.",
            |i| i.store.read().documents().to_string(),
        ),
        (
            "spate_ai_index_chunks",
            "gauge",
            "Chunks (vectors) an index holds.",
            |i| i.store.read().chunks().to_string(),
        ),
        (
            "spate_ai_index_records_total",
            "counter",
            "Records an index read from its topic.",
            |i| i.metrics.records.load(Ordering::Relaxed).to_string(),
        ),
        (
            "spate_ai_index_errors_total",
            "counter",
            "Records with no text, sent to the index's dead-letter topic.",
            |i| i.metrics.errors.load(Ordering::Relaxed).to_string(),
        ),
        (
            "spate_ai_index_embedded_total",
            "counter",
            "Chunks an index embedded.",
            |i| i.metrics.embedded.load(Ordering::Relaxed).to_string(),
        ),
        (
            "spate_ai_index_lag_records",
            "gauge",
            "Records between what an index includes and its topic's end (-1: not measured yet).",
            |i| i.metrics.lag_records.load(Ordering::Relaxed).to_string(),
        ),
        (
            "spate_ai_index_lag_seconds",
            "gauge",
            "Age of the newest record an index includes while it is behind (0 when caught up).",
            |i| {
                format!(
                    "{:.3}",
                    i.metrics.lag_ms.load(Ordering::Relaxed) as f64 / 1000.0
                )
            },
        ),
        (
            "spate_ai_index_up",
            "gauge",
            "1 while an index follows its topic, 0 while it restores or has failed.",
            |i| u8::from(*i.state.lock() == index::State::Running).to_string(),
        ),
    ];
    for (name, kind, help, read) in series {
        write_header(out, name, kind, help);
        for i in indexes {
            let label = escape_label(&i.spec.name);
            let _ = writeln!(out, "{name}{{index=\"{label}\"}} {}", read(i));
        }
    }
}
