//! Spate AI: the AI pillar (../shared/DESIGN.md, "Pillars above the broker").
//!
//! - [`embed`]: a local sentence-transformer model (BERT family: `config.json`,
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

use std::path::PathBuf;
use std::sync::Arc;

pub use embed::{EmbedError, Embeddings, LocalModel};

/// What the AI pillar serves: the models it loaded, and those that failed to load (requests
/// for them say why, with 503).
pub struct Ai {
    models: Vec<Arc<LocalModel>>,
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
                    loaded.push(Arc::new(model));
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
    pub fn model(&self, name: &str) -> Result<Option<&Arc<LocalModel>>, &str> {
        if let Some((_, reason)) = self.failed.iter().find(|(n, _)| n == name) {
            return Err(reason);
        }
        Ok(self.models.iter().find(|m| m.name() == name))
    }

    /// Every loaded model, in the order configured.
    pub fn models(&self) -> &[Arc<LocalModel>] {
        &self.models
    }

    /// Embeds `texts` with `model` on a blocking thread, one model run at a time.
    pub async fn embed(
        &self,
        model: &Arc<LocalModel>,
        texts: Vec<String>,
    ) -> Result<Embeddings, EmbedError> {
        let _permit = self
            .running
            .acquire()
            .await
            .map_err(|_| EmbedError::Run("the AI pillar is stopping".into()))?;
        let model = Arc::clone(model);
        tokio::task::spawn_blocking(move || model.embed(&texts))
            .await
            .map_err(|e| EmbedError::Run(e.to_string()))?
    }
}
