//! What Confluent's three registry-backed converters share: their config
//! (`schema.registry.url`, credentials, `auto.register.schemas`, `use.latest.version`, the
//! subject name strategies), the registry's REST API over blocking HTTP, bounded caches of
//! schemas by id and of registrations by (subject, schema), and the wire format (magic byte
//! 0, the schema id as 4 big-endian bytes, then the payload).
//!
//! The HTTP calls block: converters run on task threads, never on the runtime's. Nothing is
//! fetched when a converter is built, so config validation stays offline.

use std::collections::{HashMap, VecDeque};
use std::hash::Hash;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use parking_lot::Mutex;
use serde_json::{Value as Json, json};

use super::{ConfigReader, ConvertError};

/// The wire format's magic byte.
pub(crate) const MAGIC: u8 = 0;
/// How long one registry request may take, connect to last byte.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// Schemas followed through references from one schema at most.
const MAX_REFERENCES: usize = 256;

/// The bytes of a record in the wire format: magic byte, schema id, payload.
pub(crate) fn frame(id: i32, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(payload.len() + 5);
    out.push(MAGIC);
    out.extend_from_slice(&id.to_be_bytes());
    out.extend_from_slice(payload);
    out
}

/// The schema id and payload of bytes in the wire format. The message for a wrong magic byte
/// is the one Confluent's deserializers throw, as people search for it.
pub(crate) fn unframe(bytes: &[u8]) -> Result<(i32, &[u8]), ConvertError> {
    match bytes {
        [MAGIC, a, b, c, d, rest @ ..] => Ok((i32::from_be_bytes([*a, *b, *c, *d]), rest)),
        [_, ..] if bytes[0] != MAGIC => Err(ConvertError::WireFormat {
            reason: "Unknown magic byte!".to_string(),
        }),
        _ => Err(ConvertError::WireFormat {
            reason: format!(
                "{} bytes are too few for the 5-byte header (magic byte 0, schema id)",
                bytes.len()
            ),
        }),
    }
}

/// How the subject a schema is registered under is named.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SubjectStrategy {
    /// `<topic>-key` / `<topic>-value` (the default).
    Topic,
    /// The record's full name.
    Record,
    /// `<topic>-<record full name>`.
    TopicRecord,
}

impl SubjectStrategy {
    fn parse(class: &str) -> Option<SubjectStrategy> {
        let simple = class.trim().rsplit('.').next().unwrap_or_default();
        Some(match simple {
            "TopicNameStrategy" => SubjectStrategy::Topic,
            "RecordNameStrategy" => SubjectStrategy::Record,
            "TopicRecordNameStrategy" => SubjectStrategy::TopicRecord,
            _ => return None,
        })
    }

    /// The subject for a record of `topic` whose schema's record name is `record`.
    pub(crate) fn subject(
        self,
        topic: &str,
        is_key: bool,
        record: Option<&str>,
    ) -> Result<String, ConvertError> {
        let record = || {
            record.ok_or_else(|| ConvertError::Unsupported {
                converter: "the schema registry converter",
                found: "a schema that is not a record".to_string(),
                hint: "RecordNameStrategy and TopicRecordNameStrategy need a struct schema; use TopicNameStrategy",
            })
        };
        Ok(match self {
            SubjectStrategy::Topic => {
                format!("{topic}-{}", if is_key { "key" } else { "value" })
            }
            SubjectStrategy::Record => record()?.to_string(),
            SubjectStrategy::TopicRecord => format!("{topic}-{}", record()?),
        })
    }
}

/// The config every registry converter reads.
#[derive(Debug, Clone)]
pub(crate) struct RegistryConfig {
    /// `schema.registry.url`, split at commas, without trailing slashes.
    pub urls: Vec<String>,
    /// The `Authorization` header value.
    pub authorization: Option<String>,
    /// `auto.register.schemas` (default true).
    pub auto_register: bool,
    /// `use.latest.version` (default false).
    pub use_latest_version: bool,
    /// `normalize.schemas` (default false).
    pub normalize: bool,
    /// `key.subject.name.strategy` or `value.subject.name.strategy`, as `is_key` picks.
    pub strategy: SubjectStrategy,
    /// Whether the converter is for keys.
    pub is_key: bool,
    /// `schemas.cache.config` (default 1000): the bound of every cache.
    pub cache_size: usize,
}

impl RegistryConfig {
    /// Reads the shared keys; problems are gathered in `config`.
    pub(crate) fn read(config: &mut ConfigReader<'_>, is_key: bool) -> RegistryConfig {
        let urls: Vec<String> = config
            .props
            .get("schema.registry.url")
            .map(|raw| {
                raw.split(',')
                    .map(|u| u.trim().trim_end_matches('/').to_string())
                    .filter(|u| !u.is_empty())
                    .collect()
            })
            .unwrap_or_default();
        if urls.is_empty() {
            config.problem(
                "schema.registry.url",
                "Missing required configuration \"schema.registry.url\" which has no default value; set it to the registry's URL, e.g. http://localhost:8081".to_string(),
            );
        }
        let authorization = authorization(config, urls.first().map(String::as_str));
        let urls = urls.iter().map(|u| strip_user_info(u)).collect();
        let auto_register = config.boolean("auto.register.schemas", true);
        let use_latest_version = config.boolean("use.latest.version", false);
        let normalize = config.boolean("normalize.schemas", false);
        let strategy_key = if is_key {
            "key.subject.name.strategy"
        } else {
            "value.subject.name.strategy"
        };
        let strategy = match config.props.get(strategy_key) {
            None => SubjectStrategy::Topic,
            Some(class) => SubjectStrategy::parse(class).unwrap_or_else(|| {
                config.problem(
                    strategy_key,
                    format!(
                        "unknown subject name strategy {class:?}; use io.confluent.kafka.serializers.subject.TopicNameStrategy, RecordNameStrategy or TopicRecordNameStrategy"
                    ),
                );
                SubjectStrategy::Topic
            }),
        };
        let cache_size = config.int("schemas.cache.config", 1000);
        let cache_size = usize::try_from(cache_size).unwrap_or(0).max(1);
        RegistryConfig {
            urls,
            authorization,
            auto_register,
            use_latest_version,
            normalize,
            strategy,
            is_key,
            cache_size,
        }
    }
}

/// The `Authorization` header from `basic.auth.credentials.source` (URL, the default, or
/// USER_INFO with `basic.auth.user.info` or `schema.registry.basic.auth.user.info`) or
/// `bearer.auth.token`.
fn authorization(config: &mut ConfigReader<'_>, first_url: Option<&str>) -> Option<String> {
    let basic = |user_info: &str| {
        Some(format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(user_info)
        ))
    };
    if let Some(token) = config.props.get("bearer.auth.token") {
        return Some(format!("Bearer {}", token.trim()));
    }
    let source = config
        .choice(
            "basic.auth.credentials.source",
            &["URL", "USER_INFO", "SASL_INHERIT"],
            "URL",
        )
        .unwrap_or("URL");
    match source {
        "USER_INFO" => {
            let info = config
                .props
                .get("basic.auth.user.info")
                .or_else(|| config.props.get("schema.registry.basic.auth.user.info"))
                .cloned();
            match info {
                Some(info) => basic(&info),
                None => {
                    config.problem(
                        "basic.auth.user.info",
                        "basic.auth.credentials.source=USER_INFO needs basic.auth.user.info as user:password".to_string(),
                    );
                    None
                }
            }
        }
        "SASL_INHERIT" => {
            config.problem(
                "basic.auth.credentials.source",
                "SASL_INHERIT is not supported; use USER_INFO with basic.auth.user.info"
                    .to_string(),
            );
            None
        }
        _ => {
            let url = first_url?;
            let (_, rest) = url.split_once("://")?;
            let authority = &rest[..rest.find('/').unwrap_or(rest.len())];
            let (info, _) = authority.rsplit_once('@')?;
            basic(info)
        }
    }
}

/// The URL without `user:password@`.
fn strip_user_info(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let end = rest.find('/').unwrap_or(rest.len());
    match rest[..end].rsplit_once('@') {
        Some((_, host)) => format!("{scheme}://{host}{}", &rest[end..]),
        None => url.to_string(),
    }
}

/// Percent-encodes a subject for a URL path segment.
fn segment(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// A map that forgets its oldest entry when full.
pub(crate) struct BoundedCache<K, V> {
    map: HashMap<K, V>,
    order: VecDeque<K>,
    capacity: usize,
}

impl<K: Hash + Eq + Clone, V: Clone> BoundedCache<K, V> {
    pub(crate) fn new(capacity: usize) -> BoundedCache<K, V> {
        BoundedCache {
            map: HashMap::new(),
            order: VecDeque::new(),
            capacity: capacity.max(1),
        }
    }

    pub(crate) fn get(&self, key: &K) -> Option<V> {
        self.map.get(key).cloned()
    }

    pub(crate) fn insert(&mut self, key: K, value: V) {
        if self.map.insert(key.clone(), value).is_none() {
            self.order.push_back(key);
            while self.order.len() > self.capacity {
                if let Some(old) = self.order.pop_front() {
                    self.map.remove(&old);
                }
            }
        }
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.map.len()
    }
}

/// A schema as the registry returns it.
#[derive(Debug, Clone)]
pub(crate) struct RegistrySchema {
    /// The schema id.
    pub id: i32,
    /// `schemaType`: AVRO, JSON or PROTOBUF.
    pub schema_type: String,
    /// The schema text.
    pub text: String,
    /// The referenced schemas, transitively, dependencies first.
    pub dependencies: Vec<spate_schema::Dependency>,
}

/// A client of the registry's REST API.
pub(crate) struct RegistryClient {
    urls: Vec<String>,
    authorization: Option<String>,
    agent: ureq::Agent,
    /// Registered or looked-up ids by (subject, schema text).
    registrations: Mutex<BoundedCache<(String, String), i32>>,
}

impl RegistryClient {
    pub(crate) fn new(config: &RegistryConfig) -> RegistryClient {
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(REQUEST_TIMEOUT))
            .build()
            .into();
        RegistryClient {
            urls: config.urls.clone(),
            authorization: config.authorization.clone(),
            agent,
            registrations: Mutex::new(BoundedCache::new(config.cache_size)),
        }
    }

    /// Adds the `Authorization` header, if there are credentials.
    fn authorize<B>(&self, request: ureq::RequestBuilder<B>) -> ureq::RequestBuilder<B> {
        match &self.authorization {
            Some(value) => request.header("Authorization", value),
            None => request,
        }
    }

    /// One request, to each URL in turn until one answers; an error answer is not retried.
    fn call(&self, method: &str, path: &str, body: Option<&Json>) -> Result<Json, ConvertError> {
        let mut last_error = None;
        for base in &self.urls {
            let url = format!("{base}{path}");
            let response = match body {
                None => self
                    .authorize(self.agent.get(&url))
                    .header("Accept", "application/vnd.schemaregistry.v1+json")
                    .call(),
                Some(body) => {
                    let request = match method {
                        "PUT" => self.agent.put(&url),
                        _ => self.agent.post(&url),
                    };
                    self.authorize(request)
                        .header("Content-Type", "application/vnd.schemaregistry.v1+json")
                        .send(body.to_string())
                }
            };
            let response = match response {
                Ok(response) => response,
                Err(error) => {
                    last_error = Some(ConvertError::Registry {
                        url: base.clone(),
                        error_code: None,
                        message: format!("cannot reach the schema registry: {error}"),
                    });
                    continue;
                }
            };
            let status = response.status().as_u16();
            let text =
                response
                    .into_body()
                    .read_to_string()
                    .map_err(|e| ConvertError::Registry {
                        url: base.clone(),
                        error_code: None,
                        message: format!("cannot read the registry's answer: {e}"),
                    })?;
            let value: Json = serde_json::from_str(&text).unwrap_or(Json::String(text));
            if (200..300).contains(&status) {
                return Ok(value);
            }
            let error_code = value.get("error_code").and_then(Json::as_i64);
            let message = value
                .get("message")
                .and_then(Json::as_str)
                .map(str::to_string)
                .unwrap_or_else(|| format!("HTTP {status}: {value}"));
            let message = if status == 401 {
                format!(
                    "{message}; the registry wants credentials: set basic.auth.credentials.source=USER_INFO and basic.auth.user.info, or bearer.auth.token"
                )
            } else {
                message
            };
            return Err(ConvertError::Registry {
                url: base.clone(),
                error_code: error_code.or(Some(i64::from(status))),
                message,
            });
        }
        Err(last_error.unwrap_or(ConvertError::Registry {
            url: String::new(),
            error_code: None,
            message: "no schema.registry.url".to_string(),
        }))
    }

    fn id_of(answer: &Json, what: &str) -> Result<i32, ConvertError> {
        answer
            .get("id")
            .and_then(Json::as_i64)
            .and_then(|id| i32::try_from(id).ok())
            .ok_or_else(|| ConvertError::Registry {
                url: String::new(),
                error_code: None,
                message: format!("the registry's answer to {what} has no id: {answer}"),
            })
    }

    fn request_body(schema_type: &str, text: &str) -> Json {
        if schema_type == "AVRO" {
            json!({ "schema": text })
        } else {
            json!({ "schemaType": schema_type, "schema": text })
        }
    }

    /// Registers `text` under `subject` (POST /subjects/{subject}/versions), or finds it
    /// there without registering (POST /subjects/{subject}), once per (subject, text).
    pub(crate) fn id_for(
        &self,
        subject: &str,
        schema_type: &str,
        text: &str,
        register: bool,
        normalize: bool,
    ) -> Result<i32, ConvertError> {
        let key = (subject.to_string(), text.to_string());
        if let Some(id) = self.registrations.lock().get(&key) {
            return Ok(id);
        }
        let query = if normalize { "?normalize=true" } else { "" };
        let path = if register {
            format!("/subjects/{}/versions{query}", segment(subject))
        } else {
            format!("/subjects/{}{query}", segment(subject))
        };
        let answer = self.call("POST", &path, Some(&Self::request_body(schema_type, text)))?;
        let id = Self::id_of(&answer, &path)?;
        self.registrations.lock().insert(key, id);
        Ok(id)
    }

    /// The latest version of `subject`, with its references resolved.
    pub(crate) fn latest(&self, subject: &str) -> Result<RegistrySchema, ConvertError> {
        let path = format!("/subjects/{}/versions/latest", segment(subject));
        let answer = self.call("GET", &path, None)?;
        let id = Self::id_of(&answer, &path)?;
        self.schema_from_answer(id, &answer)
    }

    /// The schema with `id` (GET /schemas/ids/{id}), with its references resolved.
    pub(crate) fn by_id(&self, id: i32) -> Result<RegistrySchema, ConvertError> {
        let answer = self.call("GET", &format!("/schemas/ids/{id}"), None)?;
        self.schema_from_answer(id, &answer)
    }

    fn schema_from_answer(&self, id: i32, answer: &Json) -> Result<RegistrySchema, ConvertError> {
        let text =
            answer
                .get("schema")
                .and_then(Json::as_str)
                .ok_or_else(|| ConvertError::Registry {
                    url: String::new(),
                    error_code: None,
                    message: format!("the registry's answer for schema {id} has no schema"),
                })?;
        let schema_type = answer
            .get("schemaType")
            .and_then(Json::as_str)
            .unwrap_or("AVRO")
            .to_ascii_uppercase();
        let mut dependencies = Vec::new();
        let mut seen = Vec::new();
        self.resolve_references(answer, &mut dependencies, &mut seen)?;
        Ok(RegistrySchema {
            id,
            schema_type,
            text: text.to_string(),
            dependencies,
        })
    }

    fn resolve_references(
        &self,
        answer: &Json,
        out: &mut Vec<spate_schema::Dependency>,
        seen: &mut Vec<(String, i64)>,
    ) -> Result<(), ConvertError> {
        let bad = |message: String| ConvertError::Registry {
            url: String::new(),
            error_code: None,
            message,
        };
        for reference in answer
            .get("references")
            .and_then(Json::as_array)
            .into_iter()
            .flatten()
        {
            let name = reference.get("name").and_then(Json::as_str);
            let subject = reference.get("subject").and_then(Json::as_str);
            let version = reference.get("version").and_then(Json::as_i64);
            let (Some(name), Some(subject), Some(version)) = (name, subject, version) else {
                return Err(bad(format!(
                    "the registry sent a reference without name, subject or version: {reference}"
                )));
            };
            let key = (subject.to_string(), version);
            if seen.contains(&key) {
                continue;
            }
            seen.push(key);
            if seen.len() > MAX_REFERENCES {
                return Err(bad(format!(
                    "the schema references more than {MAX_REFERENCES} schemas"
                )));
            }
            let referenced = self.call(
                "GET",
                &format!("/subjects/{}/versions/{version}", segment(subject)),
                None,
            )?;
            self.resolve_references(&referenced, out, seen)?;
            let text = referenced
                .get("schema")
                .and_then(Json::as_str)
                .ok_or_else(|| {
                    bad(format!(
                        "reference {name} ({subject} v{version}) has no schema"
                    ))
                })?;
            out.push(spate_schema::Dependency {
                name: name.to_string(),
                text: text.to_string(),
            });
        }
        Ok(())
    }
}

/// Schemas by id, parsed once into what a converter needs (`T`), bounded.
pub(crate) struct ById<T> {
    cache: Mutex<BoundedCache<i32, Arc<T>>>,
}

impl<T> ById<T> {
    pub(crate) fn new(capacity: usize) -> ById<T> {
        ById {
            cache: Mutex::new(BoundedCache::new(capacity)),
        }
    }

    /// The parsed schema `id`: from the cache, or fetched and parsed by `parse`.
    pub(crate) fn get(
        &self,
        client: &RegistryClient,
        id: i32,
        parse: impl FnOnce(&RegistrySchema) -> Result<T, ConvertError>,
    ) -> Result<Arc<T>, ConvertError> {
        if let Some(found) = self.cache.lock().get(&id) {
            return Ok(found);
        }
        let fetched = client.by_id(id)?;
        let parsed = Arc::new(parse(&fetched)?);
        self.cache.lock().insert(id, Arc::clone(&parsed));
        Ok(parsed)
    }

    /// Remembers `parsed` as schema `id`.
    pub(crate) fn put(&self, id: i32, parsed: Arc<T>) {
        self.cache.lock().insert(id, parsed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_and_unframes() {
        let bytes = frame(258, b"\x02hi");
        assert_eq!(bytes, b"\x00\x00\x00\x01\x02\x02hi");
        assert_eq!(unframe(&bytes).expect("framed"), (258, &b"\x02hi"[..]));
        assert_eq!(
            unframe(b"\x01\x00\x00\x00\x01x"),
            Err(ConvertError::WireFormat {
                reason: "Unknown magic byte!".to_string()
            })
        );
        assert!(unframe(b"\x00\x00").is_err());
        assert!(unframe(b"").is_err());
    }

    #[test]
    fn subjects_follow_the_strategies() {
        let s = SubjectStrategy::parse("io.confluent.kafka.serializers.subject.TopicNameStrategy");
        assert_eq!(s, Some(SubjectStrategy::Topic));
        assert_eq!(
            SubjectStrategy::Topic
                .subject("orders", true, None)
                .expect("subject"),
            "orders-key"
        );
        assert_eq!(
            SubjectStrategy::Record
                .subject("orders", false, Some("com.example.Order"))
                .expect("subject"),
            "com.example.Order"
        );
        assert_eq!(
            SubjectStrategy::TopicRecord
                .subject("orders", false, Some("com.example.Order"))
                .expect("subject"),
            "orders-com.example.Order"
        );
        assert!(
            SubjectStrategy::Record
                .subject("orders", false, None)
                .is_err()
        );
    }

    #[test]
    fn caches_forget_the_oldest_entry() {
        let mut cache = BoundedCache::new(2);
        cache.insert(1, "a");
        cache.insert(2, "b");
        cache.insert(3, "c");
        assert_eq!(cache.len(), 2);
        assert_eq!(cache.get(&1), None);
        assert_eq!(cache.get(&3), Some("c"));
    }

    #[test]
    fn user_info_comes_out_of_the_url() {
        assert_eq!(
            strip_user_info("http://u:p@reg:8081/x"),
            "http://reg:8081/x"
        );
        assert_eq!(strip_user_info("http://reg:8081"), "http://reg:8081");
    }
}
