//! Kafka Connect's REST API (port 8083): the same paths, query parameters, JSON bodies, status
//! codes and `{"error_code": N, "message": "..."}` errors as Apache Kafka's `connect-runtime`,
//! so curl lines from its documentation, kcctl, the Confluent CLI and consoles work unchanged.
//! Handlers only translate; the [`Worker`] does the work (on blocking threads, as it waits for
//! its writes to come back from the config topic).

use std::collections::HashMap;
use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, RawQuery, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use serde_json::{Value as Json, json};

use crate::config::Props;
use crate::herder::{ConnectorInfo, HerderError, Worker};
use crate::plugin::{self, ConnectorKind};
use crate::store::{ClusterState, Status, TargetState};
use crate::validate;
use crate::{convert, transforms};

type Shared = State<Arc<Api>>;
type Params = Query<HashMap<String, String>>;
type Answer = Result<Response, ApiError>;

/// What the handlers serve from.
pub struct Api {
    /// The worker.
    pub worker: Arc<Worker>,
    /// The Kafka cluster's id, for `GET /`.
    pub cluster_id: String,
}

/// An error answer: Kafka Connect's status code and body.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    message: String,
}

impl ApiError {
    fn new(status: StatusCode, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            message: message.into(),
        }
    }
}

impl From<HerderError> for ApiError {
    fn from(error: HerderError) -> ApiError {
        let status = match &error {
            HerderError::NotFound(_) | HerderError::TaskNotFound(_) => StatusCode::NOT_FOUND,
            HerderError::Conflict(_) => StatusCode::CONFLICT,
            HerderError::BadRequest(_) => StatusCode::BAD_REQUEST,
            HerderError::Store(e) => {
                tracing::warn!("connect request failed: {e}");
                StatusCode::INTERNAL_SERVER_ERROR
            }
        };
        ApiError::new(status, error.to_string())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        json_response(
            self.status,
            &json!({ "error_code": self.status.as_u16(), "message": self.message }),
        )
    }
}

fn json_response(status: StatusCode, body: &Json) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

fn answer(status: StatusCode, body: Json) -> Answer {
    Ok(json_response(status, &body))
}

fn empty(status: StatusCode) -> Answer {
    Ok(status.into_response())
}

/// Runs a blocking worker call off the async threads.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, HerderError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| {
            ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("worker call failed: {e}"),
            )
        })?
        .map_err(ApiError::from)
}

fn body_json(body: &Bytes) -> Result<Json, ApiError> {
    serde_json::from_slice(body).map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            format!("Request body is not valid JSON: {e}"),
        )
    })
}

/// A JSON object of string values as a config; numbers and booleans are taken as their text,
/// as Kafka Connect's Jackson binding does.
fn props_of(value: &Json, what: &str) -> Result<Props, ApiError> {
    let object = value.as_object().ok_or_else(|| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            format!("{what} must be a JSON object"),
        )
    })?;
    Ok(object
        .iter()
        .filter(|(_, v)| !v.is_null())
        .map(|(k, v)| {
            (
                k.clone(),
                v.as_str().map_or_else(|| v.to_string(), str::to_string),
            )
        })
        .collect())
}

/// The router serving Kafka Connect's API.
pub fn router(api: Arc<Api>) -> Router {
    Router::new()
        .route("/", get(root))
        .route("/connectors", get(list).post(create))
        .route("/connectors/{c}", get(info).delete(delete))
        .route("/connectors/{c}/config", get(config).put(put_config))
        .route("/connectors/{c}/status", get(status))
        .route("/connectors/{c}/tasks", get(tasks))
        .route("/connectors/{c}/tasks/{t}/status", get(task_status))
        .route("/connectors/{c}/tasks/{t}/restart", post(restart_task))
        .route("/connectors/{c}/restart", post(restart))
        .route("/connectors/{c}/pause", put(pause))
        .route("/connectors/{c}/resume", put(resume))
        .route("/connectors/{c}/stop", put(stop))
        .route(
            "/connectors/{c}/offsets",
            get(offsets).patch(alter_offsets).delete(reset_offsets),
        )
        .route("/connectors/{c}/topics", get(topics))
        .route("/connectors/{c}/topics/reset", put(reset_topics))
        .route("/connector-plugins", get(plugins))
        .route("/metrics", get(metrics))
        .route("/connector-plugins/{p}/config", get(plugin_config))
        .route(
            "/connector-plugins/{p}/config/validate",
            put(validate_config),
        )
        .with_state(api)
}

async fn root(State(api): Shared) -> Answer {
    answer(
        StatusCode::OK,
        json!({
            // The Kafka Connect REST API level this worker speaks; tools compare it.
            "version": "4.1.0",
            "commit": option_env!("SPATE_GIT_COMMIT").unwrap_or("unknown"),
            "kafka_cluster_id": api.cluster_id,
        }),
    )
}

fn info_json(info: &ConnectorInfo) -> Json {
    json!({
        "name": info.name,
        "config": info.config,
        "tasks": (0..info.tasks).map(|t| json!({"connector": info.name, "task": t})).collect::<Vec<_>>(),
        "type": info.kind.map_or("unknown", ConnectorKind::name),
    })
}

fn status_entry(status: Option<&Status>) -> Json {
    match status {
        Some(s) => {
            let mut entry = json!({ "state": s.state, "worker_id": s.worker_id });
            if let Some(trace) = &s.trace {
                entry["trace"] = json!(trace);
            }
            entry
        }
        None => json!({ "state": "UNASSIGNED", "worker_id": null }),
    }
}

fn status_json(state: &ClusterState, info: &ConnectorInfo) -> Json {
    let tasks: Vec<Json> = (0..info.tasks)
        .map(|t| {
            let mut entry = status_entry(state.task_status.get(&(info.name.clone(), t)));
            entry["id"] = json!(t);
            entry
        })
        .collect();
    json!({
        "name": info.name,
        "connector": status_entry(state.connector_status.get(&info.name)),
        "tasks": tasks,
        "type": info.kind.map_or("unknown", ConnectorKind::name),
    })
}

async fn list(State(api): Shared, RawQuery(query): RawQuery) -> Answer {
    let names = api.worker.connectors();
    // `expand` may repeat (`?expand=status&expand=info`), as Kafka Connect allows.
    let expand: Vec<String> = query
        .unwrap_or_default()
        .split('&')
        .filter_map(|pair| pair.strip_prefix("expand="))
        .flat_map(|v| v.split(',').map(str::to_string).collect::<Vec<_>>())
        .collect();
    if expand.is_empty() {
        return answer(StatusCode::OK, json!(names));
    }
    let state = api.worker.state();
    let mut out = serde_json::Map::new();
    for name in names {
        let Ok(info) = api.worker.info(&name) else {
            continue;
        };
        let mut entry = serde_json::Map::new();
        if expand.iter().any(|e| e == "status") {
            entry.insert("status".into(), status_json(&state, &info));
        }
        if expand.iter().any(|e| e == "info") {
            entry.insert("info".into(), info_json(&info));
        }
        out.insert(name, Json::Object(entry));
    }
    answer(StatusCode::OK, Json::Object(out))
}

async fn create(State(api): Shared, body: Bytes) -> Answer {
    let body = body_json(&body)?;
    let mut config = props_of(body.get("config").unwrap_or(&Json::Null), "config")?;
    let name = body
        .get("name")
        .and_then(Json::as_str)
        .or_else(|| config.get("name").map(String::as_str))
        .map(str::to_string)
        .unwrap_or_default();
    if name.trim().is_empty() {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "Connector name is required",
        ));
    }
    if let Some(inner) = config.get("name")
        && *inner != name
    {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            format!(
                "Connector name configuration ({inner}) doesn't match connector name in the URL ({name})"
            ),
        ));
    }
    config.insert("name".into(), name.clone());
    let initial = match body.get("initial_state").and_then(Json::as_str) {
        None | Some("RUNNING") => None,
        Some("PAUSED") => Some(TargetState::Paused),
        Some("STOPPED") => Some(TargetState::Stopped),
        Some(other) => {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                format!("Invalid initial state {other}: expected RUNNING, PAUSED or STOPPED"),
            ));
        }
    };
    let worker = Arc::clone(&api.worker);
    let n = name.clone();
    blocking(move || worker.put_connector(&n, config, true, initial)).await?;
    let info = api.worker.info(&name)?;
    answer(StatusCode::CREATED, info_json(&info))
}

async fn info(State(api): Shared, Path(name): Path<String>) -> Answer {
    answer(StatusCode::OK, info_json(&api.worker.info(&name)?))
}

async fn config(State(api): Shared, Path(name): Path<String>) -> Answer {
    answer(StatusCode::OK, json!(api.worker.info(&name)?.config))
}

async fn put_config(State(api): Shared, Path(name): Path<String>, body: Bytes) -> Answer {
    let mut config = props_of(&body_json(&body)?, "the connector config")?;
    if let Some(inner) = config.get("name")
        && *inner != name
    {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            format!(
                "Connector name configuration ({inner}) doesn't match connector name in the URL ({name})"
            ),
        ));
    }
    config.insert("name".into(), name.clone());
    let worker = Arc::clone(&api.worker);
    let n = name.clone();
    let created = blocking(move || worker.put_connector(&n, config, false, None)).await?;
    let info = api.worker.info(&name)?;
    answer(
        if created {
            StatusCode::CREATED
        } else {
            StatusCode::OK
        },
        info_json(&info),
    )
}

async fn delete(State(api): Shared, Path(name): Path<String>) -> Answer {
    let worker = Arc::clone(&api.worker);
    blocking(move || worker.delete_connector(&name)).await?;
    empty(StatusCode::NO_CONTENT)
}

async fn status(State(api): Shared, Path(name): Path<String>) -> Answer {
    let info = api.worker.info(&name)?;
    answer(StatusCode::OK, status_json(&api.worker.state(), &info))
}

async fn tasks(State(api): Shared, Path(name): Path<String>) -> Answer {
    api.worker.info(&name)?;
    let state = api.worker.state();
    let tasks: Vec<Json> = state
        .tasks
        .get(&name)
        .map(|tasks| {
            tasks
                .iter()
                .enumerate()
                .map(|(t, config)| json!({"id": {"connector": name, "task": t}, "config": config}))
                .collect()
        })
        .unwrap_or_default();
    answer(StatusCode::OK, json!(tasks))
}

fn task_number(name: &str, task: &str, info: &ConnectorInfo) -> Result<usize, ApiError> {
    task.parse::<usize>()
        .ok()
        .filter(|t| *t < info.tasks)
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::NOT_FOUND,
                format!("No status found for task {name}-{task}"),
            )
        })
}

async fn task_status(State(api): Shared, Path((name, task)): Path<(String, String)>) -> Answer {
    let info = api.worker.info(&name)?;
    let t = task_number(&name, &task, &info)?;
    let state = api.worker.state();
    let mut entry = status_entry(state.task_status.get(&(name, t)));
    entry["id"] = json!(t);
    answer(StatusCode::OK, entry)
}

async fn restart_task(State(api): Shared, Path((name, task)): Path<(String, String)>) -> Answer {
    let info = api.worker.info(&name)?;
    let t = task_number(&name, &task, &info)?;
    let worker = Arc::clone(&api.worker);
    blocking(move || worker.restart_task(&name, t)).await?;
    empty(StatusCode::NO_CONTENT)
}

fn flag(params: &HashMap<String, String>, name: &str) -> bool {
    params
        .get(name)
        .is_some_and(|v| v.eq_ignore_ascii_case("true"))
}

async fn restart(State(api): Shared, Path(name): Path<String>, Query(params): Params) -> Answer {
    let include_tasks = flag(&params, "includeTasks");
    let only_failed = flag(&params, "onlyFailed");
    let worker = Arc::clone(&api.worker);
    let n = name.clone();
    blocking(move || worker.restart(&n, include_tasks, only_failed)).await?;
    if !params.contains_key("includeTasks") && !params.contains_key("onlyFailed") {
        // The old form: 204 and no body.
        return empty(StatusCode::NO_CONTENT);
    }
    // KIP-745: 202 with the status, the restarted parts shown as RESTARTING.
    let info = api.worker.info(&name)?;
    let state = api.worker.state();
    let mut body = status_json(&state, &info);
    let failed = |s: &Json| s["state"] == "FAILED";
    if !only_failed || failed(&body["connector"]) {
        body["connector"]["state"] = json!("RESTARTING");
    }
    if include_tasks && let Some(tasks) = body["tasks"].as_array_mut() {
        for task in tasks {
            if !only_failed || failed(task) {
                task["state"] = json!("RESTARTING");
            }
        }
    }
    answer(StatusCode::ACCEPTED, body)
}

async fn set_state(api: Arc<Api>, name: String, state: TargetState) -> Answer {
    let worker = Arc::clone(&api.worker);
    blocking(move || worker.set_target_state(&name, state)).await?;
    empty(StatusCode::ACCEPTED)
}

async fn pause(State(api): Shared, Path(name): Path<String>) -> Answer {
    set_state(api, name, TargetState::Paused).await
}

async fn resume(State(api): Shared, Path(name): Path<String>) -> Answer {
    set_state(api, name, TargetState::Started).await
}

async fn stop(State(api): Shared, Path(name): Path<String>) -> Answer {
    set_state(api, name, TargetState::Stopped).await
}

async fn offsets(State(api): Shared, Path(name): Path<String>) -> Answer {
    let info = api.worker.info(&name)?;
    match info.kind {
        Some(ConnectorKind::Sink) => {
            let worker = Arc::clone(&api.worker);
            let n = name.clone();
            let offsets = blocking(move || worker.sink_offsets(&n)).await?;
            let list: Vec<Json> = offsets
                .into_iter()
                .map(|(topic, partition, offset)| {
                    json!({
                        "partition": {"kafka_topic": topic, "kafka_partition": partition},
                        "offset": {"kafka_offset": offset},
                    })
                })
                .collect();
            answer(StatusCode::OK, json!({ "offsets": list }))
        }
        _ => {
            let state = api.worker.state();
            let list: Vec<Json> = state
                .source_offsets
                .get(&name)
                .map(|o| {
                    o.values()
                        .map(|(p, o)| json!({"partition": p, "offset": o}))
                        .collect()
                })
                .unwrap_or_default();
            answer(StatusCode::OK, json!({ "offsets": list }))
        }
    }
}

fn must_be_stopped(api: &Api, name: &str) -> Result<ConnectorInfo, ApiError> {
    let info = api.worker.info(name)?;
    if !api.worker.is_stopped(name)? {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            format!(
                "Connectors must be in the STOPPED state before their offsets can be modified. This can be done for the specified connector by issuing a 'PUT' request to the '/connectors/{name}/stop' endpoint"
            ),
        ));
    }
    Ok(info)
}

async fn alter_offsets(State(api): Shared, Path(name): Path<String>, body: Bytes) -> Answer {
    let body = body_json(&body)?;
    let info = must_be_stopped(&api, &name)?;
    let entries = body
        .get("offsets")
        .and_then(Json::as_array)
        .cloned()
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "Offsets must be specified when altering a connector's offsets",
            )
        })?;
    let mut changes = Vec::new();
    for entry in entries {
        let partition = entry.get("partition").cloned().unwrap_or(Json::Null);
        if !partition.is_object() {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "Partitions cannot be null or not JSON objects",
            ));
        }
        let offset = entry.get("offset").cloned().filter(|o| !o.is_null());
        changes.push((partition, offset));
    }
    let worker = Arc::clone(&api.worker);
    match info.kind {
        Some(ConnectorKind::Sink) => {
            blocking(move || worker.alter_sink_offsets(&name, changes)).await?
        }
        _ => blocking(move || worker.alter_source_offsets(&name, changes)).await?,
    }
    answer(
        StatusCode::OK,
        json!({"message": "The offsets for this connector have been altered successfully"}),
    )
}

async fn reset_offsets(State(api): Shared, Path(name): Path<String>) -> Answer {
    let info = must_be_stopped(&api, &name)?;
    let worker = Arc::clone(&api.worker);
    match info.kind {
        Some(ConnectorKind::Sink) => blocking(move || worker.reset_sink_offsets(&name)).await?,
        _ => {
            let partitions: Vec<(Json, Option<Json>)> = api
                .worker
                .state()
                .source_offsets
                .get(&name)
                .map(|o| o.values().map(|(p, _)| (p.clone(), None)).collect())
                .unwrap_or_default();
            blocking(move || worker.alter_source_offsets(&name, partitions)).await?
        }
    }
    answer(
        StatusCode::OK,
        json!({"message": "The offsets for this connector have been reset successfully"}),
    )
}

async fn topics(State(api): Shared, Path(name): Path<String>) -> Answer {
    api.worker.info(&name)?;
    let state = api.worker.state();
    let topics: Vec<String> = state
        .active_topics
        .get(&name)
        .map(|t| t.iter().cloned().collect())
        .unwrap_or_default();
    answer(StatusCode::OK, json!({ name: { "topics": topics } }))
}

async fn reset_topics(State(api): Shared, Path(name): Path<String>) -> Answer {
    let worker = Arc::clone(&api.worker);
    blocking(move || worker.reset_active_topics(&name)).await?;
    empty(StatusCode::ACCEPTED)
}

async fn metrics(State(api): Shared) -> Response {
    let mut out = String::new();
    api.worker.shared().metrics.render(&mut out);
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        out,
    )
        .into_response()
}

async fn plugins(Query(params): Params) -> Answer {
    let mut list: Vec<Json> = plugin::connectors()
        .iter()
        .map(|c| json!({"class": c.class(), "type": c.kind().name(), "version": c.version()}))
        .collect();
    if params
        .get("connectorsOnly")
        .is_some_and(|v| v.eq_ignore_ascii_case("false"))
    {
        let version = env!("CARGO_PKG_VERSION");
        list.extend(
            convert::plugins()
                .into_iter()
                .map(|c| json!({"class": c, "type": "converter", "version": version})),
        );
        list.extend(
            transforms::plugins()
                .into_iter()
                .map(|(c, kind)| json!({"class": c, "type": kind, "version": version})),
        );
    }
    answer(StatusCode::OK, json!(list))
}

fn find_plugin(name: &str) -> Result<Box<dyn plugin::Connector>, ApiError> {
    plugin::find_connector(name)
        .ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, format!("Unknown plugin {name}.")))
}

async fn plugin_config(Path(name): Path<String>) -> Answer {
    let connector = find_plugin(&name)?;
    answer(StatusCode::OK, validate::definitions(connector.as_ref()))
}

async fn validate_config(State(api): Shared, Path(name): Path<String>, body: Bytes) -> Answer {
    let props = props_of(&body_json(&body)?, "the connector config")?;
    let connector = plugin::find_connector(&name).ok_or_else(|| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            format!(
                "Failed to find any class that implements Connector and which name matches {name}"
            ),
        )
    })?;
    if let Some(class) = props.get("connector.class")
        && plugin::find_connector(class).map(|c| c.class()) != Some(connector.class())
    {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            format!("Included connector type {class} does not match request type {name}"),
        ));
    }
    let mut props = props;
    props
        .entry("connector.class".into())
        .or_insert_with(|| connector.class().to_string());
    answer(
        StatusCode::OK,
        validate::answer(&api.worker.shared().config, connector.as_ref(), &props),
    )
}
