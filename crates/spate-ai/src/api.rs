//! The OpenAI-compatible API on the HTTP listener: `POST /v1/embeddings`, `GET /v1/models`,
//! `GET /v1/models/{id}` (the embedding models, then the gateway's), with OpenAI's request and response bodies and its error body
//! (`{"error": {"message", "type", "param", "code"}}`), so the `openai` client libraries
//! work against Spate by changing their base URL; and the indexes' API in the shape of
//! Cloudflare's Vectorize and Pinecone: `POST/GET /v1/indexes`, `GET/DELETE
//! /v1/indexes/{name}`, `POST /v1/indexes/{name}/query` (a vector or a text, `topK`, `filter`,
//! `namespace`, `returnMetadata`, `returnValues`, and `minOffset`/`wait` for read-your-writes),
//! `/retrieve` (passages for a prompt, with their topic, partition, offset and key),
//! `/upsert` and `/delete_by_ids` (records produced to the index's topic) and `/get_by_ids`.

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine as _;
use serde::{Deserialize, Serialize};
use serde_json::{Value as Json, json};

use crate::{Ai, EmbedError};

/// Inputs one embeddings request may carry (OpenAI's limit).
const MAX_INPUTS: usize = 2048;

/// The largest request body: 2,048 long texts (each is cut at the model's window anyway).
const MAX_BODY_BYTES: usize = 64 << 20;

/// The routes, to be merged into the HTTP listener's router.
pub fn router(ai: Arc<Ai>) -> Router {
    Router::new()
        .route(
            "/v1/embeddings",
            post(embeddings).layer(axum::extract::DefaultBodyLimit::max(MAX_BODY_BYTES)),
        )
        .route("/v1/models", get(models))
        .route("/v1/models/{id}", get(model))
        .route(
            "/v1/indexes",
            post(crate::api_indexes::create).get(crate::api_indexes::list),
        )
        .route(
            "/v1/indexes/{name}",
            get(crate::api_indexes::describe).delete(crate::api_indexes::delete),
        )
        .route("/v1/indexes/{name}/query", post(crate::api_indexes::query))
        .route(
            "/v1/indexes/{name}/retrieve",
            post(crate::api_indexes::retrieve),
        )
        .route(
            "/v1/indexes/{name}/upsert",
            post(crate::api_indexes::upsert)
                .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY_BYTES)),
        )
        .route(
            "/v1/indexes/{name}/delete_by_ids",
            post(crate::api_indexes::delete_by_ids),
        )
        .route(
            "/v1/indexes/{name}/get_by_ids",
            post(crate::api_indexes::get_by_ids),
        )
        .with_state(ai)
}

/// An error in OpenAI's shape.
pub(crate) fn error(
    status: StatusCode,
    kind: &str,
    code: Option<&str>,
    param: Option<&str>,
    message: String,
) -> Response {
    (
        status,
        axum::Json(json!({
            "error": {"message": message, "type": kind, "param": param, "code": code}
        })),
    )
        .into_response()
}

pub(crate) fn invalid(param: Option<&str>, message: String) -> Response {
    error(
        StatusCode::BAD_REQUEST,
        "invalid_request_error",
        None,
        param,
        message,
    )
}

fn unknown_model(name: &str) -> Response {
    error(
        StatusCode::NOT_FOUND,
        "invalid_request_error",
        Some("model_not_found"),
        Some("model"),
        format!("The model `{name}` does not exist (GET /v1/models lists the models served)"),
    )
}

#[derive(Deserialize)]
struct EmbeddingsRequest {
    model: String,
    input: Input,
    #[serde(default)]
    encoding_format: Option<String>,
    #[serde(default)]
    dimensions: Option<usize>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Input {
    One(String),
    Many(Vec<String>),
    /// Token arrays (another tokenizer's ids) or anything else.
    Other(serde::de::IgnoredAny),
}

async fn embeddings(State(ai): State<Arc<Ai>>, body: Bytes) -> Response {
    let request: EmbeddingsRequest = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => {
            return invalid(
                None,
                format!("the body is not an embeddings request ({{\"model\", \"input\"}}): {e}"),
            );
        }
    };
    let served = match ai.model(&request.model) {
        Ok(Some(served)) => served,
        Ok(None) => return unknown_model(&request.model),
        Err(reason) => {
            return error(
                StatusCode::SERVICE_UNAVAILABLE,
                "server_error",
                Some("model_not_loaded"),
                Some("model"),
                format!("the model `{}` failed to load: {reason}", request.model),
            );
        }
    };
    let texts = match request.input {
        Input::One(text) => vec![text],
        Input::Many(texts) => texts,
        Input::Other(_) => {
            return invalid(
                Some("input"),
                format!(
                    "`{}` takes text (a string or a list of strings); token arrays are another tokenizer's ids",
                    request.model
                ),
            );
        }
    };
    if texts.is_empty() {
        return invalid(Some("input"), "`input` must not be empty".into());
    }
    if texts.len() > MAX_INPUTS {
        return invalid(
            Some("input"),
            format!(
                "`input` has {} texts; at most {MAX_INPUTS} per request",
                texts.len()
            ),
        );
    }
    if let Some(d) = request.dimensions
        && d != served.model.dimensions()
    {
        return invalid(
            Some("dimensions"),
            format!(
                "`{}` gives {} dimensions and cannot give {d}",
                request.model,
                served.model.dimensions()
            ),
        );
    }
    let base64 = match request.encoding_format.as_deref() {
        None | Some("float") => false,
        Some("base64") => true,
        Some(other) => {
            return invalid(
                Some("encoding_format"),
                format!("`encoding_format` is `float` or `base64`, not `{other}`"),
            );
        }
    };
    let embeddings = match ai.embed(served, texts).await {
        Ok(e) => e,
        Err(EmbedError::Input(message)) => return invalid(Some("input"), message),
        Err(e) => {
            tracing::error!(model = %request.model, "embedding failed: {e}");
            return error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "server_error",
                None,
                None,
                e.to_string(),
            );
        }
    };
    let data: Vec<EmbeddingOut<'_>> = embeddings
        .vectors
        .iter()
        .enumerate()
        .map(|(index, v)| EmbeddingOut {
            object: "embedding",
            index,
            embedding: if base64 {
                // Little-endian float32, as the openai client decodes it.
                let bytes: Vec<u8> = v.iter().flat_map(|f| f.to_le_bytes()).collect();
                Vector::Base64(base64::engine::general_purpose::STANDARD.encode(bytes))
            } else {
                Vector::Floats(v)
            },
        })
        .collect();
    axum::Json(EmbeddingsOut {
        object: "list",
        data,
        model: &request.model,
        usage: Usage {
            prompt_tokens: embeddings.tokens,
            total_tokens: embeddings.tokens,
        },
    })
    .into_response()
}

/// `/v1/embeddings`' answer, serialized straight from the vectors (no JSON number per float
/// built first).
#[derive(Serialize)]
struct EmbeddingsOut<'a> {
    object: &'static str,
    data: Vec<EmbeddingOut<'a>>,
    model: &'a str,
    usage: Usage,
}

#[derive(Serialize)]
struct EmbeddingOut<'a> {
    object: &'static str,
    index: usize,
    embedding: Vector<'a>,
}

#[derive(Serialize)]
#[serde(untagged)]
enum Vector<'a> {
    Floats(&'a [f32]),
    Base64(String),
}

#[derive(Serialize)]
struct Usage {
    prompt_tokens: usize,
    total_tokens: usize,
}

fn model_json(model: &crate::LocalModel) -> Json {
    json!({
        "id": model.name(),
        "object": "model",
        "created": model.loaded_at(),
        "owned_by": "spate",
    })
}

/// A model the gateway routes to a provider.
fn gateway_model_json(name: &str, provider: &str) -> Json {
    json!({"id": name, "object": "model", "created": 0, "owned_by": provider})
}

async fn models(State(ai): State<Arc<Ai>>) -> Response {
    let mut data: Vec<Json> = ai.models().map(model_json).collect();
    data.extend(
        ai.gateway_models()
            .iter()
            .map(|(name, provider)| gateway_model_json(name, provider)),
    );
    axum::Json(json!({"object": "list", "data": data})).into_response()
}

async fn model(State(ai): State<Arc<Ai>>, Path(id): Path<String>) -> Response {
    match ai.model(&id) {
        Ok(Some(served)) => axum::Json(model_json(&served.model)).into_response(),
        _ => match ai.gateway_models().iter().find(|(name, _)| *name == id) {
            Some((name, provider)) => {
                axum::Json(gateway_model_json(name, provider)).into_response()
            }
            None => unknown_model(&id),
        },
    }
}
