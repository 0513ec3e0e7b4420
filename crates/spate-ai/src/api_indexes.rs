//! The indexes' HTTP handlers (routed in [`crate::api`]): requests and answers in the shape of
//! Vectorize and Pinecone, errors in OpenAI's shape like the rest of `/v1/`.

// A handler's helpers return the refusal it answers with at once (`Err(response)`); boxing it
// would add an allocation to the error path and nothing else.
#![allow(clippy::result_large_err)]

use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Map, Value as Json, json};

use crate::api::{error, invalid};
use crate::filter::Filter;
use crate::index::{Index, IndexSpec};
use crate::indexes::{IndexError, Indexes, describe as describe_index};
use crate::store::Hit;
use crate::{Ai, EmbedError};

/// The most matches a query returns.
const MAX_TOP_K: i64 = 100;

/// `topK` when not given.
const DEFAULT_TOP_K: i64 = 5;

/// How long `minOffset` waits when `wait` is not given, and at most.
const DEFAULT_WAIT: Duration = Duration::from_secs(10);
const MAX_WAIT: Duration = Duration::from_secs(60);

/// The most documents one upsert or delete carries.
const MAX_DOCUMENTS: usize = 5000;

/// How long a request waits for the indexes while the server starts.
const START_WAIT: Duration = Duration::from_secs(30);

async fn indexes(ai: &Ai) -> Result<Arc<Indexes>, Response> {
    ai.wait_indexes(START_WAIT).await.ok_or_else(|| {
        let message = if ai.models().next().is_none() {
            "indexes need an embedding model: start spate with --ai-model-dir"
        } else {
            "the indexes are starting (waiting for the cluster); try again shortly"
        };
        error(
            StatusCode::SERVICE_UNAVAILABLE,
            "server_error",
            Some("indexes_unavailable"),
            None,
            message.into(),
        )
    })
}

fn index_error(e: IndexError) -> Response {
    match e {
        IndexError::Invalid(m) => invalid(None, m),
        e @ IndexError::NotFound(_) => not_found(e.to_string()),
        e @ IndexError::Exists(_) => error(
            StatusCode::CONFLICT,
            "invalid_request_error",
            Some("index_exists"),
            Some("name"),
            e.to_string(),
        ),
        IndexError::Unavailable(m) => {
            tracing::warn!("index request: {m}");
            error(
                StatusCode::SERVICE_UNAVAILABLE,
                "server_error",
                None,
                None,
                m,
            )
        }
    }
}

fn not_found(message: String) -> Response {
    error(
        StatusCode::NOT_FOUND,
        "invalid_request_error",
        Some("index_not_found"),
        None,
        message,
    )
}

async fn find(ai: &Ai, name: &str) -> Result<Arc<Index>, Response> {
    indexes(ai).await?.get(name).ok_or_else(|| {
        not_found(format!(
            "no index named `{name}` (GET /v1/indexes lists them)"
        ))
    })
}

fn parse<T: serde::de::DeserializeOwned>(body: &Bytes, what: &str) -> Result<T, Response> {
    serde_json::from_slice(body).map_err(|e| invalid(None, format!("the body is not {what}: {e}")))
}

/// The index named in the path and the request's body, or the refusal to answer with.
async fn index_and<T: serde::de::DeserializeOwned>(
    ai: &Ai,
    name: &str,
    body: &Bytes,
    what: &str,
) -> Result<(Arc<Index>, T), Response> {
    let index = find(ai, name).await?;
    Ok((index, parse(body, what)?))
}

pub(crate) async fn create(State(ai): State<Arc<Ai>>, body: Bytes) -> Response {
    let spec: IndexSpec = match parse(&body, "an index definition") {
        Ok(s) => s,
        Err(r) => return r,
    };
    let indexes = match indexes(&ai).await {
        Ok(i) => i,
        Err(r) => return r,
    };
    match tokio::task::spawn_blocking(move || indexes.create(spec)).await {
        Ok(Ok(index)) => (StatusCode::CREATED, axum::Json(describe_index(&index))).into_response(),
        Ok(Err(e)) => index_error(e),
        Err(e) => index_error(IndexError::Unavailable(e.to_string())),
    }
}

pub(crate) async fn list(State(ai): State<Arc<Ai>>) -> Response {
    let indexes = match indexes(&ai).await {
        Ok(i) => i,
        Err(r) => return r,
    };
    let all: Vec<Json> = indexes.list().iter().map(|i| describe_index(i)).collect();
    axum::Json(json!({ "indexes": all })).into_response()
}

pub(crate) async fn describe(State(ai): State<Arc<Ai>>, Path(name): Path<String>) -> Response {
    match find(&ai, &name).await {
        Ok(index) => axum::Json(describe_index(&index)).into_response(),
        Err(r) => r,
    }
}

pub(crate) async fn delete(State(ai): State<Arc<Ai>>, Path(name): Path<String>) -> Response {
    let indexes = match indexes(&ai).await {
        Ok(i) => i,
        Err(r) => return r,
    };
    let deleting = name.clone();
    match tokio::task::spawn_blocking(move || indexes.delete(&deleting)).await {
        Ok(Ok(())) => axum::Json(json!({"name": name, "deleted": true})).into_response(),
        Ok(Err(e)) => index_error(e),
        Err(e) => index_error(IndexError::Unavailable(e.to_string())),
    }
}

/// Offsets to wait for: a number (partition 0), `{"<partition>": offset}`, or the
/// `[{"partition", "offset"}]` an upsert answers.
fn wanted_offsets(value: &Json) -> Result<Vec<(i32, i64)>, String> {
    let bad = || {
        "`minOffset` is an offset (partition 0), {\"<partition>\": offset} or [{\"partition\", \"offset\"}]"
            .to_string()
    };
    match value {
        Json::Number(n) => Ok(vec![(0, n.as_i64().ok_or_else(bad)?)]),
        Json::Object(m) => m
            .iter()
            .map(|(p, o)| Ok((p.parse().map_err(|_| bad())?, o.as_i64().ok_or_else(bad)?)))
            .collect(),
        Json::Array(items) => items
            .iter()
            .map(|i| {
                let p = i.get("partition").and_then(Json::as_i64).ok_or_else(bad)?;
                let o = i.get("offset").and_then(Json::as_i64).ok_or_else(bad)?;
                Ok((i32::try_from(p).map_err(|_| bad())?, o))
            })
            .collect(),
        _ => Err(bad()),
    }
}

/// Waits for `minOffset` (up to `wait` milliseconds): a 504 with the reason when the index
/// has not got there.
async fn read_your_writes(
    index: &Index,
    min_offset: Option<&Json>,
    wait_ms: Option<u64>,
) -> Result<(), Response> {
    let Some(min) = min_offset else {
        return Ok(());
    };
    let wanted = wanted_offsets(min).map_err(|m| invalid(Some("minOffset"), m))?;
    let wait = wait_ms.map_or(DEFAULT_WAIT, Duration::from_millis);
    if wait > MAX_WAIT {
        return Err(invalid(
            Some("wait"),
            format!("`wait` is at most {} ms", MAX_WAIT.as_millis()),
        ));
    }
    if index.wait_for(&wanted, wait).await {
        return Ok(());
    }
    Err(error(
        StatusCode::GATEWAY_TIMEOUT,
        "server_error",
        Some("offset_not_reached"),
        Some("minOffset"),
        format!(
            "index `{}` has not reached {wanted:?} within {} ms (it includes {:?})",
            index.spec.name,
            wait.as_millis(),
            index.positions()
        ),
    ))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct QueryRequest {
    #[serde(default)]
    vector: Option<Vec<f32>>,
    #[serde(default)]
    text: Option<String>,
    #[serde(default, alias = "top_k")]
    top_k: Option<i64>,
    #[serde(default)]
    filter: Option<Json>,
    #[serde(default)]
    namespace: Option<String>,
    /// `none`, `indexed` or `all` (Vectorize), or a boolean (Pinecone's `includeMetadata`).
    #[serde(default, alias = "includeMetadata", alias = "return_metadata")]
    return_metadata: Option<Json>,
    #[serde(default, alias = "includeValues", alias = "return_values")]
    return_values: Option<bool>,
    #[serde(default, alias = "min_offset")]
    min_offset: Option<Json>,
    #[serde(default)]
    wait: Option<u64>,
}

/// A query's checked parts.
struct Search {
    vector: Vec<f32>,
    top_k: usize,
    filter: Option<Filter>,
    namespace: String,
}

/// Checks a query and embeds its text: the vector, topK and filter, or a 400 with why.
async fn search_of(
    ai: &Ai,
    index: &Index,
    vector: Option<Vec<f32>>,
    text: Option<String>,
    top_k: Option<i64>,
    filter: Option<&Json>,
    namespace: Option<String>,
) -> Result<Search, Response> {
    let top_k = top_k.unwrap_or(DEFAULT_TOP_K);
    if !(1..=MAX_TOP_K).contains(&top_k) {
        return Err(invalid(
            Some("topK"),
            format!("`topK` is 1 to {MAX_TOP_K}; {top_k} is out of range"),
        ));
    }
    let filter = filter
        .map(Filter::parse)
        .transpose()
        .map_err(|m| invalid(Some("filter"), m))?;
    let dimensions = index.store.read().dimensions();
    let vector = match (vector, text) {
        (Some(v), None) => {
            if v.len() != dimensions {
                return Err(invalid(
                    Some("vector"),
                    format!(
                        "the query vector has {} dimensions; index `{}` has {dimensions}",
                        v.len(),
                        index.spec.name
                    ),
                ));
            }
            v
        }
        (None, Some(t)) => {
            let model = index.spec.model.as_deref().unwrap_or_default();
            let served = match ai.model(model) {
                Ok(Some(s)) => s,
                Ok(None) => {
                    return Err(invalid(
                        Some("text"),
                        format!("the index's model `{model}` is not served"),
                    ));
                }
                Err(reason) => {
                    return Err(error(
                        StatusCode::SERVICE_UNAVAILABLE,
                        "server_error",
                        Some("model_not_loaded"),
                        None,
                        format!("the model `{model}` failed to load: {reason}"),
                    ));
                }
            };
            match ai.embed(served, vec![t]).await {
                Ok(mut e) => e.vectors.pop().unwrap_or_default(),
                Err(EmbedError::Input(m)) => return Err(invalid(Some("text"), m)),
                Err(e) => {
                    return Err(error(
                        StatusCode::INTERNAL_SERVER_ERROR,
                        "server_error",
                        None,
                        None,
                        e.to_string(),
                    ));
                }
            }
        }
        (Some(_), Some(_)) => {
            return Err(invalid(
                Some("vector"),
                "give `vector` or `text`, not both".into(),
            ));
        }
        (None, None) => {
            return Err(invalid(
                Some("vector"),
                "give the query as `vector` (numbers) or `text`".into(),
            ));
        }
    };
    Ok(Search {
        vector,
        top_k: top_k as usize,
        filter,
        namespace: namespace.unwrap_or_default(),
    })
}

pub(crate) async fn query(
    State(ai): State<Arc<Ai>>,
    Path(name): Path<String>,
    body: Bytes,
) -> Response {
    let (index, request): (Arc<Index>, QueryRequest) = match index_and(
        &ai,
        &name,
        &body,
        "a query ({\"vector\" or \"text\", \"topK\"})",
    )
    .await
    {
        Ok(found) => found,
        Err(r) => return r,
    };
    let metadata = match request.return_metadata.as_ref() {
        None | Some(Json::Bool(false)) => false,
        Some(Json::Bool(true)) => true,
        Some(Json::String(s)) if s == "none" => false,
        Some(Json::String(s)) if s == "indexed" || s == "all" => true,
        Some(other) => {
            return invalid(
                Some("returnMetadata"),
                format!("`returnMetadata` is `none`, `indexed` or `all`, not {other}"),
            );
        }
    };
    let values = request.return_values.unwrap_or(false);
    let asked = Asked {
        vector: request.vector,
        text: request.text,
        top_k: request.top_k,
        filter: request.filter,
        namespace: request.namespace,
        min_offset: request.min_offset,
        wait: request.wait,
    };
    answer(&ai, &index, asked, |hits, namespace| {
        let matches: Vec<Json> = hits
            .iter()
            .map(|h| {
                let mut m = Map::new();
                m.insert("id".into(), json!(h.chunk.id));
                m.insert("score".into(), json!(h.score));
                if values {
                    m.insert("values".into(), json!(h.chunk.vector));
                }
                if metadata {
                    m.insert("metadata".into(), Json::Object(h.chunk.metadata.clone()));
                }
                if !h.namespace.is_empty() {
                    m.insert("namespace".into(), json!(h.namespace));
                }
                Json::Object(m)
            })
            .collect();
        json!({"count": matches.len(), "matches": matches, "namespace": namespace})
    })
    .await
}

/// What a query or a retrieval asks.
struct Asked {
    vector: Option<Vec<f32>>,
    text: Option<String>,
    top_k: Option<i64>,
    filter: Option<Json>,
    namespace: Option<String>,
    min_offset: Option<Json>,
    wait: Option<u64>,
}

/// Checks what is `asked` (embedding its text), waits for its offsets, searches `index`, and
/// answers with what `render` makes of the hits (given the namespace searched).
async fn answer(
    ai: &Ai,
    index: &Index,
    asked: Asked,
    render: impl FnOnce(&[Hit<'_>], &str) -> Json,
) -> Response {
    let search = match search_of(
        ai,
        index,
        asked.vector,
        asked.text,
        asked.top_k,
        asked.filter.as_ref(),
        asked.namespace,
    )
    .await
    {
        Ok(s) => s,
        Err(r) => return r,
    };
    if let Err(r) = read_your_writes(index, asked.min_offset.as_ref(), asked.wait).await {
        return r;
    }
    let store = index.store.read();
    match store.search(
        &search.vector,
        search.top_k,
        &search.namespace,
        search.filter.as_ref(),
    ) {
        Ok(hits) => axum::Json(render(&hits, &search.namespace)).into_response(),
        Err(m) => invalid(Some("vector"), m),
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RetrieveRequest {
    #[serde(alias = "question", alias = "text")]
    query: String,
    #[serde(default, alias = "top_k")]
    top_k: Option<i64>,
    #[serde(default)]
    filter: Option<Json>,
    #[serde(default)]
    namespace: Option<String>,
    #[serde(default, alias = "min_offset")]
    min_offset: Option<Json>,
    #[serde(default)]
    wait: Option<u64>,
}

pub(crate) async fn retrieve(
    State(ai): State<Arc<Ai>>,
    Path(name): Path<String>,
    body: Bytes,
) -> Response {
    let (index, request): (Arc<Index>, RetrieveRequest) =
        match index_and(&ai, &name, &body, "a retrieval ({\"query\": \"...\"})").await {
            Ok(found) => found,
            Err(r) => return r,
        };
    let asked = Asked {
        vector: None,
        text: Some(request.query),
        top_k: request.top_k,
        filter: request.filter,
        namespace: request.namespace,
        min_offset: request.min_offset,
        wait: request.wait,
    };
    answer(&ai, &index, asked, |hits, _| {
        let passages: Vec<Json> = hits
            .iter()
            .map(|h| {
                json!({
                    "id": h.chunk.id,
                    "key": h.key,
                    "text": h.chunk.text,
                    "score": h.score,
                    "topic": h.chunk.source.topic,
                    "partition": h.chunk.source.partition,
                    "offset": h.chunk.source.offset,
                    "metadata": h.chunk.metadata,
                })
            })
            .collect();
        json!({ "count": passages.len(), "passages": passages })
    })
    .await
}

#[derive(Deserialize)]
struct UpsertRequest {
    documents: Vec<UpsertDocument>,
}

#[derive(Deserialize)]
struct UpsertDocument {
    #[serde(alias = "key")]
    id: String,
    /// The record's value: a string as its text, anything else as JSON.
    value: Json,
}

/// Produces the records and answers with their offsets (for `minOffset`).
async fn produce(ai: &Ai, index: &Index, records: Vec<(String, Option<Vec<u8>>)>) -> Response {
    if records.is_empty() || records.len() > MAX_DOCUMENTS {
        return invalid(
            None,
            format!(
                "give 1 to {MAX_DOCUMENTS} documents; {} given",
                records.len()
            ),
        );
    }
    let indexes = match indexes(ai).await {
        Ok(i) => i,
        Err(r) => return r,
    };
    match indexes.produce(&index.spec.topic, records).await {
        Ok(offsets) => {
            let offsets: Vec<Json> = offsets
                .iter()
                .map(|(p, o)| json!({"partition": p, "offset": o}))
                .collect();
            axum::Json(json!({
                "count": offsets.len(),
                "topic": index.spec.topic,
                "offsets": offsets,
            }))
            .into_response()
        }
        Err(m) => index_error(IndexError::Unavailable(m)),
    }
}

pub(crate) async fn upsert(
    State(ai): State<Arc<Ai>>,
    Path(name): Path<String>,
    body: Bytes,
) -> Response {
    let (index, request): (Arc<Index>, UpsertRequest) = match index_and(
        &ai,
        &name,
        &body,
        "an upsert ({\"documents\": [{\"id\", \"value\"}]})",
    )
    .await
    {
        Ok(found) => found,
        Err(r) => return r,
    };
    let records = request
        .documents
        .into_iter()
        .map(|d| {
            let value = match d.value {
                Json::String(s) => s.into_bytes(),
                other => other.to_string().into_bytes(),
            };
            (d.id, Some(value))
        })
        .collect();
    produce(&ai, &index, records).await
}

#[derive(Deserialize)]
struct IdsRequest {
    ids: Vec<String>,
}

pub(crate) async fn delete_by_ids(
    State(ai): State<Arc<Ai>>,
    Path(name): Path<String>,
    body: Bytes,
) -> Response {
    let (index, request): (Arc<Index>, IdsRequest) =
        match index_and(&ai, &name, &body, "{\"ids\": [...]}").await {
            Ok(found) => found,
            Err(r) => return r,
        };
    let records = request.ids.into_iter().map(|id| (id, None)).collect();
    produce(&ai, &index, records).await
}

pub(crate) async fn get_by_ids(
    State(ai): State<Arc<Ai>>,
    Path(name): Path<String>,
    body: Bytes,
) -> Response {
    let (index, request): (Arc<Index>, IdsRequest) =
        match index_and(&ai, &name, &body, "{\"ids\": [...]}").await {
            Ok(found) => found,
            Err(r) => return r,
        };
    let store = index.store.read();
    let mut out = Vec::new();
    for id in &request.ids {
        let Some(document) = store.get(id) else {
            continue;
        };
        for chunk in &document.chunks {
            out.push(json!({
                "id": chunk.id,
                "key": document.key,
                "namespace": document.namespace,
                "values": chunk.vector,
                "metadata": chunk.metadata,
                "text": chunk.text,
                "topic": chunk.source.topic,
                "partition": chunk.source.partition,
                "offset": chunk.source.offset,
            }));
        }
    }
    axum::Json(Json::Array(out)).into_response()
}
