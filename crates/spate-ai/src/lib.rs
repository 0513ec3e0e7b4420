//! Spate AI: the AI pillar (../shared/DESIGN.md, "Pillars above the broker").
//!
//! - [`embed`]: a local sentence-transformer model (BERT: `config.json`,
//!   `tokenizer.json`, `model.safetensors`) run on the CPU with candle, batched, with the mean
//!   pooling and normalisation sentence-transformers applies;
//! - [`store`] and [`filter`]: an index's vectors (chunks of a topic's records, upserted and
//!   deleted by record key) and the metadata filters of Vectorize and Pinecone;
//! - [`text`]: what an index reads from a record (the text, metadata fields) and chunking;
//! - [`api`]: the OpenAI-compatible HTTP API served under `/v1/` on the HTTP listener
//!   (`POST /v1/embeddings`, `GET /v1/models`), so the `openai` client libraries work by
//!   changing their base URL.

pub mod api;
pub mod embed;
pub mod filter;
pub mod store;
pub mod text;

use std::fmt::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
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

/// What the AI pillar serves: the models it loaded, and those that failed to load (requests
/// for them say why, with 503).
pub struct Ai {
    models: Vec<Served>,
    failed: Vec<(String, String)>,
    /// Model runs at a time: each uses every core, so more would only share them.
    running: tokio::sync::Semaphore,
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
            running: tokio::sync::Semaphore::new(1),
        }
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
        let count = texts.len() as u64;
        let result = async {
            let _permit = self
                .running
                .acquire()
                .await
                .map_err(|_| EmbedError::Run("the AI pillar is stopping".into()))?;
            let model = Arc::clone(&served.model);
            tokio::task::spawn_blocking(move || model.embed(&texts))
                .await
                .map_err(|e| EmbedError::Run(e.to_string()))?
        }
        .await;
        let m = &served.metrics;
        m.requests.fetch_add(1, Ordering::Relaxed);
        match &result {
            Ok(e) => {
                m.texts.fetch_add(count, Ordering::Relaxed);
                m.tokens.fetch_add(e.tokens as u64, Ordering::Relaxed);
            }
            Err(_) => {
                m.errors.fetch_add(1, Ordering::Relaxed);
            }
        }
        m.seconds.observe_since(started);
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
    }
}
