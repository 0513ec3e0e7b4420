//! The REST API, compatible with Confluent Schema Registry for what clients use: subjects and
//! versions, schemas by id, lookups, soft and permanent deletes, compatibility tests, configs
//! and modes. Paths, query parameters, JSON shapes, error bodies and error codes follow
//! Confluent's API reference. Media types are negotiated as Confluent does (`media`): responses
//! are `application/vnd.schemaregistry.v1+json` unless the client asks for
//! `application/json` (or `application/vnd.schemaregistry+json`); bodies of other types are 415.
//!
//! Handlers only translate: request bodies and parameters in, [`Registry`] calls, JSON out.
//! Bodies are read up to [`MAX_BODY_BYTES`].

use std::collections::HashMap;
use std::sync::Arc;

use axum::Router;
use axum::extract::{FromRequest, Path, Query, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};
use spate_schema::{Parsed, SchemaType};

use crate::error::RegistryError;
use crate::registry::{Registry, SchemaRequest, SubjectVersion, VersionSpec};
use crate::store::{Compatibility, Config, Mode, Reference, SchemaEntry};

/// Largest request body accepted: Confluent's default `max.request.size` is far larger, but a
/// schema above 16 MiB is a mistake, not a schema.
pub const MAX_BODY_BYTES: usize = 16 << 20;

const CONTENT_TYPE: &str = crate::media::SCHEMA_REGISTRY_V1_JSON;

type Shared = State<Arc<Registry>>;
type Params = Query<HashMap<String, String>>;
type Answer = Result<Response, RegistryError>;

/// The router serving the registry's API.
pub fn router(registry: Arc<Registry>) -> Router {
    Router::new()
        .route("/", get(|| async { ok(&json!({})) }))
        .route("/schemas/types", get(schema_types))
        .route("/schemas", get(list_schemas))
        .route("/schemas/ids/{id}", get(schema_by_id))
        .route("/schemas/ids/{id}/schema", get(raw_schema_by_id))
        .route("/schemas/ids/{id}/subjects", get(subjects_of_id))
        .route("/schemas/ids/{id}/versions", get(versions_of_id))
        .route("/subjects", get(list_subjects))
        .route("/subjects/{subject}", post(lookup).delete(delete_subject))
        .route(
            "/subjects/{subject}/versions",
            get(list_versions).post(register),
        )
        .route(
            "/subjects/{subject}/versions/{version}",
            get(get_version).delete(delete_version),
        )
        .route(
            "/subjects/{subject}/versions/{version}/schema",
            get(raw_version),
        )
        .route(
            "/subjects/{subject}/versions/{version}/referencedby",
            get(referenced_by),
        )
        .route(
            "/compatibility/subjects/{subject}/versions/{version}",
            post(compatibility_one),
        )
        .route(
            "/compatibility/subjects/{subject}/versions",
            post(compatibility_all),
        )
        .route(
            "/config",
            get(get_global_config)
                .put(put_global_config)
                .delete(delete_global_config),
        )
        .route(
            "/config/{subject}",
            get(get_subject_config)
                .put(put_subject_config)
                .delete(delete_subject_config),
        )
        .route("/mode", get(get_global_mode).put(put_global_mode))
        .route(
            "/mode/{subject}",
            get(get_subject_mode)
                .put(put_subject_mode)
                .delete(delete_subject_mode),
        )
        .route("/contexts", get(|| async { ok(&json!(["."])) }))
        .route_layer(axum::middleware::from_fn(crate::media::negotiate))
        .fallback(|| async { RegistryError::no_such_path() })
        .with_state(registry)
}

/// A JSON response with the registry's content type.
pub fn json_response(status: StatusCode, body: &Value) -> Response {
    let mut response = (status, body.to_string()).into_response();
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE));
    response
}

fn ok(body: &Value) -> Response {
    json_response(StatusCode::OK, body)
}

/// A request body parsed as JSON (its media type was checked by `media::negotiate`).
struct JsonBody(Value);

impl<S: Send + Sync> FromRequest<S> for JsonBody {
    type Rejection = RegistryError;

    async fn from_request(request: Request, _state: &S) -> Result<JsonBody, RegistryError> {
        let bytes = axum::body::to_bytes(request.into_body(), MAX_BODY_BYTES)
            .await
            .map_err(|_| RegistryError {
                status: StatusCode::PAYLOAD_TOO_LARGE,
                code: 413,
                message: format!("Request body larger than {MAX_BODY_BYTES} bytes"),
            })?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(JsonBody(Value::Null));
        }
        serde_json::from_slice(&bytes)
            .map(JsonBody)
            .map_err(|e| RegistryError::bad_request(format!("Request body is not JSON: {e}")))
    }
}

fn flag(params: &HashMap<String, String>, name: &str) -> bool {
    params
        .get(name)
        .is_some_and(|v| v.eq_ignore_ascii_case("true"))
}

/// A schema id from the path. Confluent's `@PathParam Integer id` does not convert anything
/// else, and Jersey answers that as an unmatched path: a plain 404.
fn parse_id(id: &str) -> Result<i32, RegistryError> {
    id.parse::<i32>().map_err(|_| RegistryError::no_such_path())
}

/// Reads a schema request body: `schema`, `schemaType`, `references`, and in IMPORT mode
/// `id` and `version`. Confluent's newer `metadata` and `ruleSet` are accepted and ignored.
fn schema_request(body: Value) -> Result<SchemaRequest, RegistryError> {
    const KNOWN: &[&str] = &[
        "schema",
        "schemaType",
        "references",
        "id",
        "version",
        "subject",
        "metadata",
        "ruleSet",
        "schemaTagsToAdd",
        "schemaTagsToRemove",
        "propagateSchemaTags",
    ];
    let Value::Object(fields) = body else {
        return Err(RegistryError::unprocessable(
            "Request body must be a JSON object with a \"schema\" field",
        ));
    };
    if let Some(unknown) = fields.keys().find(|k| !KNOWN.contains(&k.as_str())) {
        return Err(RegistryError::unprocessable(format!(
            "Unrecognized field: {unknown}"
        )));
    }
    let schema = match fields.get("schema") {
        Some(Value::String(s)) if !s.trim().is_empty() => s.clone(),
        None | Some(Value::Null) => return Err(RegistryError::invalid_schema("Empty schema")),
        Some(Value::String(_)) => return Err(RegistryError::invalid_schema("Empty schema")),
        Some(_) => {
            return Err(RegistryError::unprocessable(
                "Field \"schema\" must be a string holding the schema's text",
            ));
        }
    };
    let schema_type = match fields.get("schemaType") {
        None | Some(Value::Null) => SchemaType::Avro,
        Some(Value::String(name)) => SchemaType::parse(name).ok_or_else(|| {
            RegistryError::unprocessable(format!(
                "Invalid schemaType '{name}'. Valid values are AVRO, JSON and PROTOBUF"
            ))
        })?,
        Some(_) => {
            return Err(RegistryError::unprocessable(
                "Field \"schemaType\" must be a string",
            ));
        }
    };
    let references = match fields.get("references") {
        None | Some(Value::Null) => Vec::new(),
        Some(value) => serde_json::from_value::<Vec<Reference>>(value.clone()).map_err(|e| {
            RegistryError::unprocessable(format!(
                "Field \"references\" must be a list of {{\"name\", \"subject\", \"version\"}}: {e}"
            ))
        })?,
    };
    let int = |name: &str| -> Result<Option<i32>, RegistryError> {
        match fields.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Number(n)) => match n.as_i64().and_then(|n| i32::try_from(n).ok()) {
                // Confluent's clients send -1 or 0 for "not set".
                Some(n) if n > 0 => Ok(Some(n)),
                Some(_) => Ok(None),
                None => Err(RegistryError::unprocessable(format!(
                    "Field \"{name}\" must be a 32-bit integer"
                ))),
            },
            Some(_) => Err(RegistryError::unprocessable(format!(
                "Field \"{name}\" must be an integer"
            ))),
        }
    };
    Ok(SchemaRequest {
        schema,
        schema_type,
        references,
        id: int("id")?,
        version: int("version")?,
    })
}

/// The schema's text in the requested format: Protobuf's `format=serialized` is the base64
/// FileDescriptorProto; anything else is the stored text.
fn schema_text(
    registry: &Registry,
    entry: &SchemaEntry,
    params: &HashMap<String, String>,
) -> Result<String, RegistryError> {
    if entry.schema_type == SchemaType::Protobuf
        && params.get("format").is_some_and(|f| f == "serialized")
    {
        if let Parsed::Protobuf(schema) = &*registry.parsed(entry)? {
            return Ok(schema.serialized());
        }
    }
    Ok(entry.text.clone())
}

fn schema_fields(
    registry: &Registry,
    entry: &SchemaEntry,
    params: &HashMap<String, String>,
    body: &mut serde_json::Map<String, Value>,
) -> Result<(), RegistryError> {
    if entry.schema_type != SchemaType::Avro {
        body.insert("schemaType".into(), json!(entry.schema_type.name()));
    }
    if !entry.references.is_empty() {
        body.insert("references".into(), json!(entry.references));
    }
    body.insert(
        "schema".into(),
        json!(schema_text(registry, entry, params)?),
    );
    Ok(())
}

fn subject_version_json(
    registry: &Registry,
    found: &SubjectVersion,
    params: &HashMap<String, String>,
) -> Result<Value, RegistryError> {
    let mut body = serde_json::Map::new();
    body.insert("subject".into(), json!(found.subject));
    body.insert("version".into(), json!(found.version));
    body.insert("id".into(), json!(found.schema.id));
    schema_fields(registry, &found.schema, params, &mut body)?;
    if found.deleted {
        body.insert("deleted".into(), json!(true));
    }
    Ok(Value::Object(body))
}

fn config_json(config: Config) -> Value {
    let mut body = serde_json::Map::new();
    if let Some(level) = config.compatibility {
        body.insert("compatibilityLevel".into(), json!(level.name()));
    }
    if let Some(normalize) = config.normalize {
        body.insert("normalize".into(), json!(normalize));
    }
    Value::Object(body)
}

// --- schemas -------------------------------------------------------------------------------

async fn schema_types() -> Response {
    ok(&json!(["JSON", "PROTOBUF", "AVRO"]))
}

async fn list_schemas(State(registry): Shared, Query(params): Params) -> Answer {
    let prefix = params.get("subjectPrefix").map_or("", String::as_str);
    let deleted = flag(&params, "deleted");
    let latest_only = flag(&params, "latestOnly");
    let mut out = Vec::new();
    for subject in registry.subjects(prefix, deleted, false) {
        let versions = registry.versions(&subject, deleted, false)?;
        let chosen: Vec<i32> = if latest_only {
            versions.last().copied().into_iter().collect()
        } else {
            versions
        };
        for version in chosen {
            let found = registry.version(&subject, VersionSpec::Number(version), deleted)?;
            out.push(subject_version_json(&registry, &found, &params)?);
        }
    }
    Ok(ok(&Value::Array(out)))
}

async fn schema_by_id(
    State(registry): Shared,
    Path(id): Path<String>,
    Query(params): Params,
) -> Answer {
    let entry = registry.schema(parse_id(&id)?)?;
    let mut body = serde_json::Map::new();
    schema_fields(&registry, &entry, &params, &mut body)?;
    Ok(ok(&Value::Object(body)))
}

async fn raw_schema_by_id(
    State(registry): Shared,
    Path(id): Path<String>,
    Query(params): Params,
) -> Answer {
    let entry = registry.schema(parse_id(&id)?)?;
    raw(schema_text(&registry, &entry, &params)?)
}

fn raw(text: String) -> Answer {
    // Confluent answers the bare schema; Avro and JSON Schema texts are JSON themselves.
    let mut response = (StatusCode::OK, text).into_response();
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE));
    Ok(response)
}

async fn subjects_of_id(
    State(registry): Shared,
    Path(id): Path<String>,
    Query(params): Params,
) -> Answer {
    let mut subjects: Vec<String> = registry
        .versions_of_id(parse_id(&id)?, flag(&params, "deleted"))?
        .into_iter()
        .map(|(subject, _)| subject)
        .collect();
    subjects.dedup();
    Ok(ok(&json!(subjects)))
}

async fn versions_of_id(
    State(registry): Shared,
    Path(id): Path<String>,
    Query(params): Params,
) -> Answer {
    let versions: Vec<Value> = registry
        .versions_of_id(parse_id(&id)?, flag(&params, "deleted"))?
        .into_iter()
        .map(|(subject, version)| json!({"subject": subject, "version": version}))
        .collect();
    Ok(ok(&Value::Array(versions)))
}

// --- subjects ------------------------------------------------------------------------------

async fn list_subjects(State(registry): Shared, Query(params): Params) -> Answer {
    let prefix = params.get("subjectPrefix").map_or("", String::as_str);
    let subjects = registry.subjects(
        prefix,
        flag(&params, "deleted"),
        flag(&params, "deletedOnly"),
    );
    Ok(ok(&json!(subjects)))
}

async fn lookup(
    State(registry): Shared,
    Path(subject): Path<String>,
    Query(params): Params,
    JsonBody(body): JsonBody,
) -> Answer {
    let request = schema_request(body)?;
    let found = registry.lookup(
        &subject,
        &request,
        flag(&params, "normalize"),
        flag(&params, "deleted"),
    )?;
    Ok(ok(&subject_version_json(&registry, &found, &params)?))
}

async fn delete_subject(
    State(registry): Shared,
    Path(subject): Path<String>,
    Query(params): Params,
) -> Answer {
    let versions = registry
        .delete_subject(&subject, flag(&params, "permanent"))
        .await?;
    Ok(ok(&json!(versions)))
}

async fn list_versions(
    State(registry): Shared,
    Path(subject): Path<String>,
    Query(params): Params,
) -> Answer {
    let versions = registry.versions(
        &subject,
        flag(&params, "deleted"),
        flag(&params, "deletedOnly"),
    )?;
    Ok(ok(&json!(versions)))
}

async fn register(
    State(registry): Shared,
    Path(subject): Path<String>,
    Query(params): Params,
    JsonBody(body): JsonBody,
) -> Answer {
    let request = schema_request(body)?;
    let (id, _version) = registry
        .register(&subject, request, flag(&params, "normalize"))
        .await?;
    Ok(ok(&json!({ "id": id })))
}

async fn get_version(
    State(registry): Shared,
    Path((subject, version)): Path<(String, String)>,
    Query(params): Params,
) -> Answer {
    let spec = VersionSpec::parse(&version)?;
    let found = registry.version(&subject, spec, flag(&params, "deleted"))?;
    Ok(ok(&subject_version_json(&registry, &found, &params)?))
}

async fn raw_version(
    State(registry): Shared,
    Path((subject, version)): Path<(String, String)>,
    Query(params): Params,
) -> Answer {
    let spec = VersionSpec::parse(&version)?;
    let found = registry.version(&subject, spec, flag(&params, "deleted"))?;
    raw(schema_text(&registry, &found.schema, &params)?)
}

async fn delete_version(
    State(registry): Shared,
    Path((subject, version)): Path<(String, String)>,
    Query(params): Params,
) -> Answer {
    let spec = VersionSpec::parse(&version)?;
    let deleted = registry
        .delete_version(&subject, spec, flag(&params, "permanent"))
        .await?;
    Ok(ok(&json!(deleted)))
}

async fn referenced_by(
    State(registry): Shared,
    Path((subject, version)): Path<(String, String)>,
) -> Answer {
    let ids = registry.referenced_by(&subject, VersionSpec::parse(&version)?)?;
    Ok(ok(&json!(ids)))
}

// --- compatibility -------------------------------------------------------------------------

fn compatibility_answer(messages: Vec<String>, verbose: bool) -> Response {
    let mut body = serde_json::Map::new();
    body.insert("is_compatible".into(), json!(messages.is_empty()));
    if verbose {
        body.insert("messages".into(), json!(messages));
    }
    ok(&Value::Object(body))
}

async fn compatibility_one(
    State(registry): Shared,
    Path((subject, version)): Path<(String, String)>,
    Query(params): Params,
    JsonBody(body): JsonBody,
) -> Answer {
    let spec = VersionSpec::parse(&version)?;
    let request = schema_request(body)?;
    let verdict =
        registry.test_compatibility(&subject, Some(spec), &request, flag(&params, "normalize"));
    compatibility_verdict(verdict, flag(&params, "verbose"))
}

async fn compatibility_all(
    State(registry): Shared,
    Path(subject): Path<String>,
    Query(params): Params,
    JsonBody(body): JsonBody,
) -> Answer {
    let request = schema_request(body)?;
    let verdict = registry.test_compatibility(&subject, None, &request, flag(&params, "normalize"));
    compatibility_verdict(verdict, flag(&params, "verbose"))
}

/// With `verbose`, Confluent answers an invalid schema as incompatible, with the reason as the
/// message, rather than with 42201.
fn compatibility_verdict(verdict: Result<Vec<String>, RegistryError>, verbose: bool) -> Answer {
    match verdict {
        Ok(messages) => Ok(compatibility_answer(messages, verbose)),
        Err(error) if verbose && error.code == 42201 => {
            Ok(compatibility_answer(vec![error.message], true))
        }
        Err(error) => Err(error),
    }
}

// --- config and mode -----------------------------------------------------------------------

/// Reads `{"compatibility": LEVEL, "normalize": BOOL}` (`compatibilityLevel` also accepted).
fn config_request(body: Value) -> Result<Config, RegistryError> {
    let Value::Object(fields) = body else {
        return Err(RegistryError::unprocessable(
            "Request body must be a JSON object like {\"compatibility\": \"BACKWARD\"}",
        ));
    };
    let level = fields
        .get("compatibility")
        .or_else(|| fields.get("compatibilityLevel"));
    let compatibility = match level {
        None | Some(Value::Null) => None,
        Some(Value::String(name)) => Some(
            Compatibility::parse(name).ok_or_else(|| RegistryError::invalid_compatibility(name))?,
        ),
        Some(other) => return Err(RegistryError::invalid_compatibility(&other.to_string())),
    };
    let normalize = match fields.get("normalize") {
        None | Some(Value::Null) => None,
        Some(Value::Bool(b)) => Some(*b),
        Some(_) => {
            return Err(RegistryError::unprocessable(
                "Field \"normalize\" must be a boolean",
            ));
        }
    };
    if compatibility.is_none() && normalize.is_none() {
        return Err(RegistryError::invalid_compatibility("null"));
    }
    Ok(Config {
        compatibility,
        normalize,
    })
}

/// Confluent answers a PUT with the request's own field names.
fn config_put_json(config: Config) -> Value {
    let mut body = serde_json::Map::new();
    if let Some(level) = config.compatibility {
        body.insert("compatibility".into(), json!(level.name()));
    }
    if let Some(normalize) = config.normalize {
        body.insert("normalize".into(), json!(normalize));
    }
    Value::Object(body)
}

async fn get_global_config(State(registry): Shared) -> Answer {
    Ok(ok(&config_json(registry.global_config())))
}

async fn put_global_config(State(registry): Shared, JsonBody(body): JsonBody) -> Answer {
    let config = registry.set_config(None, config_request(body)?).await?;
    Ok(ok(&config_put_json(config)))
}

async fn delete_global_config(State(registry): Shared) -> Answer {
    let previous = registry.delete_config(None).await?;
    Ok(ok(&config_json(previous)))
}

async fn get_subject_config(
    State(registry): Shared,
    Path(subject): Path<String>,
    Query(params): Params,
) -> Answer {
    let config = registry.subject_config(&subject, flag(&params, "defaultToGlobal"))?;
    Ok(ok(&config_json(config)))
}

async fn put_subject_config(
    State(registry): Shared,
    Path(subject): Path<String>,
    JsonBody(body): JsonBody,
) -> Answer {
    let config = registry
        .set_config(Some(&subject), config_request(body)?)
        .await?;
    Ok(ok(&config_put_json(config)))
}

async fn delete_subject_config(State(registry): Shared, Path(subject): Path<String>) -> Answer {
    let previous = registry.delete_config(Some(&subject)).await?;
    Ok(ok(&config_json(previous)))
}

fn mode_request(body: Value) -> Result<Mode, RegistryError> {
    match body.get("mode") {
        Some(Value::String(name)) => {
            Mode::parse(name).ok_or_else(|| RegistryError::invalid_mode(name))
        }
        other => Err(RegistryError::invalid_mode(
            &other.map_or("null".to_string(), Value::to_string),
        )),
    }
}

async fn get_global_mode(State(registry): Shared) -> Answer {
    Ok(ok(&json!({ "mode": registry.global_mode().name() })))
}

async fn put_global_mode(
    State(registry): Shared,
    Query(params): Params,
    JsonBody(body): JsonBody,
) -> Answer {
    let mode = registry
        .set_mode(None, mode_request(body)?, flag(&params, "force"))
        .await?;
    Ok(ok(&json!({ "mode": mode.name() })))
}

async fn get_subject_mode(
    State(registry): Shared,
    Path(subject): Path<String>,
    Query(params): Params,
) -> Answer {
    let mode = registry.subject_mode(&subject, flag(&params, "defaultToGlobal"))?;
    Ok(ok(&json!({ "mode": mode.name() })))
}

async fn put_subject_mode(
    State(registry): Shared,
    Path(subject): Path<String>,
    Query(params): Params,
    JsonBody(body): JsonBody,
) -> Answer {
    let mode = registry
        .set_mode(Some(&subject), mode_request(body)?, flag(&params, "force"))
        .await?;
    Ok(ok(&json!({ "mode": mode.name() })))
}

async fn delete_subject_mode(State(registry): Shared, Path(subject): Path<String>) -> Answer {
    let previous = registry.delete_mode(&subject).await?;
    Ok(ok(&json!({ "mode": previous.name() })))
}
