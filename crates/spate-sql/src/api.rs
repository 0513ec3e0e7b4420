//! The SQL API (port 8088), in the manner of ksqlDB's: `POST /statements` runs statements
//! and answers one JSON object per statement; `POST /query-stream` streams a query's rows as
//! newline-delimited JSON — a header line (`queryId`, `columnNames`, `columnTypes`), then one
//! JSON array per row (with an `op` column first, `+I` `-U` `+U` `-D`, when the result
//! updates) — until its LIMIT or the client closes; jobs are listed, described and stopped
//! under `/jobs`; a materialized view is looked up by key under `/views/{name}/keys/{key}`
//! and scanned under `/views/{name}`. Errors are ksqlDB's body:
//! `{"@type", "error_code", "message"}`.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::Json;
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value as JsonValue, json};

use crate::engine::Engine;
use crate::errors::SqlError;

/// An error answer.
struct ApiError(SqlError);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.0.status()).unwrap_or(StatusCode::BAD_REQUEST);
        let kind = match self.0 {
            SqlError::Io(_) => "generic_error",
            _ => "statement_error",
        };
        (
            status,
            Json(
                json!({"@type": kind, "error_code": self.0.code(), "message": self.0.to_string()}),
            ),
        )
            .into_response()
    }
}

impl From<SqlError> for ApiError {
    fn from(e: SqlError) -> ApiError {
        ApiError(e)
    }
}

/// A request body with a statement (`sql`, or ksqlDB's `ksql`).
#[derive(serde::Deserialize)]
struct StatementBody {
    #[serde(alias = "ksql", alias = "statement")]
    sql: String,
    /// Properties for the statements' jobs (`table.exec.state.ttl`, ...), as `SET` gives them.
    #[serde(default, alias = "streamsProperties")]
    properties: std::collections::BTreeMap<String, String>,
}

/// The router.
pub fn router(engine: Arc<Engine>) -> axum::Router {
    axum::Router::new()
        .route("/", get(info))
        .route("/info", get(info))
        .route("/healthcheck", get(health))
        .route("/statements", post(statements))
        .route("/ksql", post(statements))
        .route("/query-stream", post(query_stream))
        .route("/query", post(query_stream))
        .route("/jobs", get(jobs))
        .route("/jobs/{id}", get(job).delete(stop_job))
        .route("/jobs/{id}/stop", post(stop_job))
        .route("/tables", get(tables))
        .route("/views/{name}", get(scan_view))
        .route("/views/{name}/keys/{key}", get(lookup))
        .with_state(engine)
}

async fn info() -> Json<JsonValue> {
    Json(
        json!({"SpateSqlInfo": {"version": env!("CARGO_PKG_VERSION"), "dialect": "flink", "status": "RUNNING"}}),
    )
}

async fn health() -> Json<JsonValue> {
    Json(json!({"isHealthy": true}))
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, SqlError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ApiError(SqlError::Io(format!("the statement's task failed: {e}"))))?
        .map_err(ApiError)
}

async fn statements(
    State(engine): State<Arc<Engine>>,
    body: Result<Json<StatementBody>, axum::extract::rejection::JsonRejection>,
) -> Result<Json<JsonValue>, ApiError> {
    let Json(body) = body.map_err(|e| {
        ApiError(SqlError::Option(format!(
            "the body must be JSON with the statement in \"sql\": {e}"
        )))
    })?;
    let results = blocking(move || engine.execute(&body.sql, &body.properties)).await?;
    Ok(Json(JsonValue::Array(
        results
            .iter()
            .map(|(text, outcome)| outcome.to_json(text))
            .collect(),
    )))
}

async fn query_stream(
    State(engine): State<Arc<Engine>>,
    body: Result<Json<StatementBody>, axum::extract::rejection::JsonRejection>,
) -> Result<Response, ApiError> {
    let Json(body) = body.map_err(|e| {
        ApiError(SqlError::Option(format!(
            "the body must be JSON with the query in \"sql\": {e}"
        )))
    })?;
    let stream = blocking(move || engine.query(&body.sql)).await?;
    let mut names: Vec<String> = Vec::new();
    let mut types: Vec<String> = Vec::new();
    if stream.updating {
        names.push("op".into());
        types.push("STRING".into());
    }
    for f in &stream.fields {
        names.push(f.name.clone());
        types.push(f.data_type.to_string());
    }
    let header = json!({"queryId": stream.id, "columnNames": names, "columnTypes": types});
    let fields = stream.fields.clone();
    let updating = stream.updating;
    let stop = Arc::clone(&stream.stop);
    let error = Arc::clone(&stream.error);
    // Stops the query when the response (and so this guard) is dropped: the client went away.
    struct StopOnDrop(Arc<std::sync::atomic::AtomicBool>);
    impl Drop for StopOnDrop {
        fn drop(&mut self) {
            self.0.store(true, Ordering::Relaxed);
        }
    }
    let guard = StopOnDrop(stop);
    let rows = stream.rows;
    let lines = futures::stream::unfold(
        (Some(header), rows, guard, false),
        move |(header, mut rows, guard, done)| {
            let fields = fields.clone();
            let error = Arc::clone(&error);
            async move {
                if let Some(h) = header {
                    return Some((
                        Ok::<_, std::io::Error>(format!("{h}\n")),
                        (None, rows, guard, false),
                    ));
                }
                if done {
                    return None;
                }
                match rows.recv().await {
                    Some(batch) => {
                        let mut text = String::new();
                        for change in batch {
                            let mut row: Vec<JsonValue> = Vec::with_capacity(change.row.len() + 1);
                            if updating {
                                row.push(json!(change.kind.short()));
                            }
                            for (v, f) in change.row.iter().zip(&fields) {
                                row.push(v.to_json(&f.data_type));
                            }
                            text.push_str(&JsonValue::Array(row).to_string());
                            text.push('\n');
                        }
                        Some((Ok(text), (None, rows, guard, false)))
                    }
                    None => {
                        // The query ended: by its LIMIT, or with an error (a last line says so).
                        let e = error.lock().take();
                        e.map(|e| {
                            let line = json!({"@type": "query_error", "error_code": e.code(), "message": e.to_string()});
                            (Ok(format!("{line}\n")), (None, rows, guard, true))
                        })
                    }
                }
            }
        },
    );
    Response::builder()
        .header(header::CONTENT_TYPE, "application/x-ndjson")
        .body(Body::from_stream(lines))
        .map_err(|e| ApiError(SqlError::Io(e.to_string())))
}

async fn jobs(State(engine): State<Arc<Engine>>) -> Json<JsonValue> {
    Json(JsonValue::Array(engine.jobs()))
}

async fn job(
    State(engine): State<Arc<Engine>>,
    Path(id): Path<String>,
) -> Result<Json<JsonValue>, ApiError> {
    Ok(Json(engine.job(&id)?))
}

async fn stop_job(
    State(engine): State<Arc<Engine>>,
    Path(id): Path<String>,
) -> Result<Json<JsonValue>, ApiError> {
    let job = id.clone();
    blocking(move || engine.stop_job(&job)).await?;
    Ok(Json(json!({"id": id, "status": "STOPPED"})))
}

async fn tables(State(engine): State<Arc<Engine>>) -> Json<JsonValue> {
    Json(json!(engine.table_names()))
}

#[derive(serde::Deserialize)]
struct ScanParams {
    limit: Option<usize>,
}

async fn scan_view(
    State(engine): State<Arc<Engine>>,
    Path(name): Path<String>,
    Query(params): Query<ScanParams>,
) -> Result<Json<JsonValue>, ApiError> {
    let view = engine.view(&name)?;
    let limit = params.limit.unwrap_or(1000).min(100_000);
    Ok(Json(json!({"view": view.name, "rows": view.scan(limit)})))
}

async fn lookup(
    State(engine): State<Arc<Engine>>,
    Path((name, key)): Path<(String, String)>,
) -> Result<Json<JsonValue>, ApiError> {
    let view = engine.view(&name)?;
    match view.get(&key) {
        Some(row) => Ok(Json(row)),
        None => Err(ApiError(SqlError::NotFound {
            kind: "key",
            name: format!("{key} in view {name}"),
        })),
    }
}
