//! Converters under Kafka Connect's class names: between the bytes of a Kafka record's key or
//! value and Connect's [`Schema`] and [`Value`], byte for byte as Apache Kafka 3.x/4.x writes
//! and reads them, so that topics written by Kafka Connect and by Spate can be read by either.
//!
//! - `org.apache.kafka.connect.json.JsonConverter` ([`json_converter`]), with `schemas.enable`,
//!   `decimal.format`, `replace.null.with.default` and `schemas.cache.size`;
//! - `org.apache.kafka.connect.storage.StringConverter`,
//!   `org.apache.kafka.connect.converters.ByteArrayConverter`, `BooleanConverter` and the
//!   number converters ([`simple`]).
//!
//! Also the JSON helpers the REST API and the connectors use: [`connect_to_json`],
//! [`json_value_to_connect`], [`schema_to_json`] and [`schema_from_json`].
//!
//! And Confluent's registry-backed converters ([`confluent`]):
//! `io.confluent.connect.avro.AvroConverter`, `io.confluent.connect.json.JsonSchemaConverter`
//! and `io.confluent.connect.protobuf.ProtobufConverter`.
//!
//! Everything but [`registry`] is pure functions over bytes and values; [`registry`] makes
//! the schema registry's HTTP calls, blocking, on the task thread that converts.

pub(crate) mod avro_data;
mod confluent;
pub(crate) mod decimal;
mod json;
pub mod json_converter;
mod json_schema_data;
mod protobuf_data;
mod registry;
pub mod simple;

use bytes::Bytes;

use crate::config::{ConfigProblem, Props};
use crate::data::{Schema, Value};
use json_converter::{JsonConverter, JsonOptions, Path};
use simple::{BooleanConverter, ByteArrayConverter, NumberConverter, NumberKind, StringConverter};

/// A converter between Connect data and the bytes of a record's key or value.
pub trait Converter: Send + Sync {
    /// Connect data to the bytes of a record's key (is_key) or value; None for a null value.
    // The runtime calls it by this name, after Java's `fromConnectData`.
    #[allow(clippy::wrong_self_convention)]
    fn from_connect(
        &self,
        topic: &str,
        schema: Option<&Schema>,
        value: &Value,
    ) -> Result<Option<Bytes>, ConvertError>;
    /// As [`Converter::from_connect`], with the schema as the record shares it: a converter
    /// that caches per schema can recognise it by reference instead of comparing it whole.
    #[allow(clippy::wrong_self_convention)]
    fn from_connect_shared(
        &self,
        topic: &str,
        schema: Option<&std::sync::Arc<Schema>>,
        value: &Value,
    ) -> Result<Option<Bytes>, ConvertError> {
        self.from_connect(topic, schema.map(|s| &**s), value)
    }
    /// Bytes (None = null) to Connect data.
    fn to_connect(
        &self,
        topic: &str,
        bytes: Option<&[u8]>,
    ) -> Result<(Option<std::sync::Arc<Schema>>, Value), ConvertError>;
    /// The Connect schema of the latest version registered for `topic`'s subject (Confluent's
    /// registry converters); None for converters without a registry or a subject without a
    /// schema. Spate SQL reads a topic's columns from it.
    fn latest_schema(&self, _topic: &str) -> Result<Option<std::sync::Arc<Schema>>, ConvertError> {
        Ok(None)
    }
}

/// What a converter derives from each Connect schema it writes (`JsonConverter`'s schema text,
/// a registry converter's registry schema), kept for the last [`SCHEMA_CACHE`] schemas: a source
/// writes the same few schemas with every record. A record's shared schema is found by pointer
/// (the cache holds it, so the pointer stays its), another by comparing. Clones share entries.
pub(crate) struct SchemaCache<T> {
    entries: std::sync::Arc<parking_lot::Mutex<Vec<CachedSchema<T>>>>,
}

type CachedSchema<T> = (std::sync::Arc<Schema>, std::sync::Arc<T>);

/// Schemas a [`SchemaCache`] keeps.
const SCHEMA_CACHE: usize = 16;

impl<T> Default for SchemaCache<T> {
    fn default() -> SchemaCache<T> {
        SchemaCache {
            entries: Default::default(),
        }
    }
}

impl<T> Clone for SchemaCache<T> {
    fn clone(&self) -> SchemaCache<T> {
        SchemaCache {
            entries: std::sync::Arc::clone(&self.entries),
        }
    }
}

impl<T> std::fmt::Debug for SchemaCache<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SchemaCache")
            .field("schemas", &self.entries.lock().len())
            .finish()
    }
}

impl<T> SchemaCache<T> {
    /// What was made for `schema` (`shared` when the record holds it so), or `make`'s.
    pub(crate) fn get_or_make<E>(
        &self,
        schema: &Schema,
        shared: Option<&std::sync::Arc<Schema>>,
        make: impl FnOnce() -> Result<T, E>,
    ) -> Result<std::sync::Arc<T>, E> {
        {
            let entries = self.entries.lock();
            let found = shared
                .and_then(|shared| {
                    entries
                        .iter()
                        .find(|(s, _)| std::sync::Arc::ptr_eq(s, shared))
                })
                .or_else(|| entries.iter().find(|(s, _)| **s == *schema));
            if let Some((_, made)) = found {
                return Ok(std::sync::Arc::clone(made));
            }
        }
        let made = std::sync::Arc::new(make()?);
        let held = shared.map_or_else(
            || std::sync::Arc::new(schema.clone()),
            std::sync::Arc::clone,
        );
        let mut entries = self.entries.lock();
        if entries.len() >= SCHEMA_CACHE {
            entries.remove(0);
        }
        entries.push((held, std::sync::Arc::clone(&made)));
        Ok(made)
    }
}

/// Why data could not be converted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConvertError {
    /// The bytes are not JSON.
    #[error("the data is not JSON: {reason} at byte {offset}")]
    InvalidJson {
        /// Where in the bytes.
        offset: usize,
        /// What is wrong.
        reason: String,
    },
    /// `schemas.enable=true` but the JSON is not a `{"schema", "payload"}` envelope. The
    /// message is Java's, word for word, as people search for it.
    #[error("{}", json_converter::ENVELOPE_MESSAGE)]
    MissingEnvelope,
    /// A JSON schema in an envelope is not one Connect knows.
    #[error("invalid schema at {path}: {reason}")]
    InvalidSchema {
        /// Where in the schema (`$.fields[2]`).
        path: String,
        /// What is wrong.
        reason: String,
    },
    /// A value does not fit its schema, or JSON does not fit the schema it is read with.
    #[error("cannot convert the value at {path}: {reason}")]
    InvalidValue {
        /// Where in the value (`$.orders[2].price`).
        path: String,
        /// What is wrong.
        reason: String,
    },
    /// A fixed-size converter got the wrong number of bytes.
    #[error("{converter} needs {expected} bytes but the data has {actual}")]
    WrongSize {
        /// The converter (`IntegerConverter`).
        converter: &'static str,
        /// The size it reads.
        expected: usize,
        /// The size given.
        actual: usize,
    },
    /// A converter was given a value or schema it cannot write.
    #[error("{converter} cannot write {found}; {hint}")]
    Unsupported {
        /// The converter (`ByteArrayConverter`).
        converter: &'static str,
        /// What it was given (`a string value`, `a schema of type int32`).
        found: String,
        /// What to do.
        hint: &'static str,
    },
    /// A registry converter's bytes are not in Confluent's wire format.
    #[error("the data is not in the schema registry's wire format: {reason}")]
    WireFormat {
        /// What is wrong.
        reason: String,
    },
    /// The schema registry refused a request or could not be reached.
    #[error("schema registry {url}: {message}{}", error_code.map(|c| format!(" (error code {c})")).unwrap_or_default())]
    Registry {
        /// The registry's URL.
        url: String,
        /// The registry's `error_code` (or the HTTP status when it sent none).
        error_code: Option<i64>,
        /// The registry's `message`, or why it could not be reached.
        message: String,
    },
    /// `BooleanConverter` read a byte other than 0 or 1.
    #[error("BooleanConverter needs byte 0 or 1 but the data has {byte}")]
    InvalidBoolean {
        /// The byte read.
        byte: u8,
    },
}

/// `org.apache.kafka.connect.json.JsonConverter`.
pub const JSON_CONVERTER: &str = "org.apache.kafka.connect.json.JsonConverter";
/// `org.apache.kafka.connect.storage.StringConverter`.
pub const STRING_CONVERTER: &str = "org.apache.kafka.connect.storage.StringConverter";
/// `org.apache.kafka.connect.converters.ByteArrayConverter`.
pub const BYTE_ARRAY_CONVERTER: &str = "org.apache.kafka.connect.converters.ByteArrayConverter";
/// `org.apache.kafka.connect.converters.BooleanConverter` (Kafka 3.7+).
pub const BOOLEAN_CONVERTER: &str = "org.apache.kafka.connect.converters.BooleanConverter";
/// `org.apache.kafka.connect.converters.ShortConverter`.
pub const SHORT_CONVERTER: &str = "org.apache.kafka.connect.converters.ShortConverter";
/// `org.apache.kafka.connect.converters.IntegerConverter`.
pub const INTEGER_CONVERTER: &str = "org.apache.kafka.connect.converters.IntegerConverter";
/// `org.apache.kafka.connect.converters.LongConverter`.
pub const LONG_CONVERTER: &str = "org.apache.kafka.connect.converters.LongConverter";
/// `org.apache.kafka.connect.converters.FloatConverter`.
pub const FLOAT_CONVERTER: &str = "org.apache.kafka.connect.converters.FloatConverter";
/// `org.apache.kafka.connect.converters.DoubleConverter`.
pub const DOUBLE_CONVERTER: &str = "org.apache.kafka.connect.converters.DoubleConverter";

/// `io.confluent.connect.avro.AvroConverter`.
pub const AVRO_CONVERTER: &str = "io.confluent.connect.avro.AvroConverter";
/// `io.confluent.connect.json.JsonSchemaConverter`.
pub const JSON_SCHEMA_CONVERTER: &str = "io.confluent.connect.json.JsonSchemaConverter";
/// `io.confluent.connect.protobuf.ProtobufConverter`.
pub const PROTOBUF_CONVERTER: &str = "io.confluent.connect.protobuf.ProtobufConverter";

/// The converter class names known (for GET /connector-plugins?connectorsOnly=false, type
/// "converter").
pub fn plugins() -> Vec<&'static str> {
    vec![
        AVRO_CONVERTER,
        JSON_SCHEMA_CONVERTER,
        PROTOBUF_CONVERTER,
        BOOLEAN_CONVERTER,
        BYTE_ARRAY_CONVERTER,
        DOUBLE_CONVERTER,
        FLOAT_CONVERTER,
        INTEGER_CONVERTER,
        LONG_CONVERTER,
        SHORT_CONVERTER,
        JSON_CONVERTER,
        STRING_CONVERTER,
    ]
}

/// Builds the converter `class` with its config (the keys after `key.converter.`/
/// `value.converter.`), `is_key` as Kafka's `configure(configs, isKey)`. Unknown class or bad
/// config → problems naming the keys (`value.converter.schemas.enable`). Unknown keys are
/// ignored, as Kafka's `AbstractConfig` does.
pub fn converter(
    class: &str,
    props: &Props,
    is_key: bool,
) -> Result<Box<dyn Converter>, Vec<ConfigProblem>> {
    let prefix = if is_key {
        "key.converter"
    } else {
        "value.converter"
    };
    let mut config = ConfigReader {
        prefix,
        props,
        problems: Vec::new(),
    };
    let converter: Box<dyn Converter> = match class.trim() {
        JSON_CONVERTER => {
            let schemas_enable = config.boolean("schemas.enable", true);
            // Accepted for compatibility: Spate keeps the text of the last few schemas.
            let _ = config.int("schemas.cache.size", 1000);
            let decimal_numeric = config
                .choice("decimal.format", &["BASE64", "NUMERIC"], "BASE64")
                .is_some_and(|f| f == "NUMERIC");
            let replace_null_with_default = config.boolean("replace.null.with.default", true);
            Box::new(JsonConverter::new(
                schemas_enable,
                JsonOptions {
                    decimal_numeric,
                    replace_null_with_default,
                },
            ))
        }
        STRING_CONVERTER => match config.props.get("converter.encoding") {
            None => Box::new(StringConverter::default()),
            Some(name) => match simple::Encoding::from_java_name(name) {
                Some(encoding) => Box::new(StringConverter { encoding }),
                None => {
                    config.problem(
                        "converter.encoding",
                        format!(
                            "encoding {name:?} is not supported; use UTF-8, UTF-16, UTF-16BE, UTF-16LE, ISO-8859-1 or US-ASCII"
                        ),
                    );
                    Box::new(StringConverter::default())
                }
            },
        },
        BYTE_ARRAY_CONVERTER => Box::new(ByteArrayConverter),
        BOOLEAN_CONVERTER => Box::new(BooleanConverter),
        SHORT_CONVERTER => Box::new(NumberConverter(NumberKind::Short)),
        INTEGER_CONVERTER => Box::new(NumberConverter(NumberKind::Integer)),
        LONG_CONVERTER => Box::new(NumberConverter(NumberKind::Long)),
        FLOAT_CONVERTER => Box::new(NumberConverter(NumberKind::Float)),
        DOUBLE_CONVERTER => Box::new(NumberConverter(NumberKind::Double)),
        AVRO_CONVERTER => {
            let registry = registry::RegistryConfig::read(&mut config, is_key);
            let options = avro_data::AvroOptions {
                connect_meta_data: config.boolean("connect.meta.data", true),
                enhanced: config.boolean("enhanced.avro.schema.support", false),
            };
            Box::new(confluent::RegistryConverter::new(
                confluent::Format::Avro(options),
                registry,
            ))
        }
        JSON_SCHEMA_CONVERTER => {
            let registry = registry::RegistryConfig::read(&mut config, is_key);
            Box::new(confluent::RegistryConverter::new(
                confluent::Format::JsonSchema,
                registry,
            ))
        }
        PROTOBUF_CONVERTER => {
            let registry = registry::RegistryConfig::read(&mut config, is_key);
            Box::new(confluent::RegistryConverter::new(
                confluent::Format::Protobuf,
                registry,
            ))
        }
        other => {
            return Err(vec![ConfigProblem::new(
                prefix,
                format!(
                    "unknown converter class {other:?}; known: {}",
                    plugins().join(", ")
                ),
            )]);
        }
    };
    if config.problems.is_empty() {
        Ok(converter)
    } else {
        Err(config.problems)
    }
}

/// Reads converter config values as Kafka's `ConfigDef` parses them (trimmed, booleans
/// case-insensitive), gathering a problem per bad key.
struct ConfigReader<'a> {
    prefix: &'a str,
    props: &'a Props,
    problems: Vec<ConfigProblem>,
}

impl ConfigReader<'_> {
    fn problem(&mut self, key: &str, message: String) {
        self.problems.push(ConfigProblem::new(
            format!("{}.{key}", self.prefix),
            message,
        ));
    }

    fn boolean(&mut self, key: &str, default: bool) -> bool {
        let Some(raw) = self.props.get(key) else {
            return default;
        };
        match raw.trim().to_ascii_lowercase().as_str() {
            "true" => true,
            "false" => false,
            _ => {
                self.problem(
                    key,
                    format!("invalid value {raw:?}: expected true or false"),
                );
                default
            }
        }
    }

    fn int(&mut self, key: &str, default: i32) -> i32 {
        let Some(raw) = self.props.get(key) else {
            return default;
        };
        match raw.trim().parse() {
            Ok(v) => v,
            Err(_) => {
                self.problem(
                    key,
                    format!("invalid value {raw:?}: expected a 32-bit integer"),
                );
                default
            }
        }
    }

    /// One of `choices`, case-insensitive, returned as spelled in `choices`.
    fn choice(
        &mut self,
        key: &str,
        choices: &[&'static str],
        default: &'static str,
    ) -> Option<&'static str> {
        let Some(raw) = self.props.get(key) else {
            return Some(default);
        };
        let found = choices
            .iter()
            .find(|c| c.eq_ignore_ascii_case(raw.trim()))
            .copied();
        if found.is_none() {
            self.problem(
                key,
                format!(
                    "invalid value {raw:?}: expected one of {}",
                    choices.join(", ")
                ),
            );
        }
        found
    }
}

/// Connect data as JSON without the envelope, as `JsonConverter` with `schemas.enable=false`
/// writes it (decimals as base64, nulls replaced by schema defaults). Never fails: a value
/// that does not fit its schema is written by its own type, as if it had no schema.
pub fn connect_to_json(schema: Option<&Schema>, value: &Value) -> serde_json::Value {
    let options = JsonOptions::default();
    let json = json_converter::value_to_json(schema, value, &options, &Path::Root)
        .unwrap_or_else(|_| json_converter::schemaless_to_json_lenient(value, &options));
    json_converter::to_serde(&json)
}

/// JSON as schemaless Connect data, as `JsonConverter` with `schemas.enable=false` reads it:
/// objects become [`Value::Map`] with string keys, integers `Int64`, other numbers `Float64`.
pub fn json_value_to_connect(json: &serde_json::Value) -> Value {
    json_converter::schemaless_value(&json_converter::from_serde(json))
}

/// A schema as `JsonConverter` writes it in the envelope's `"schema"`.
pub fn schema_to_json(schema: &Schema) -> serde_json::Value {
    json_converter::to_serde(&json_converter::schema_to_json(
        schema,
        &JsonOptions::default(),
    ))
}

/// A schema from the JSON `JsonConverter` writes in the envelope's `"schema"`.
pub fn schema_from_json(json: &serde_json::Value) -> Result<Schema, ConvertError> {
    json_converter::json_to_schema(
        &json_converter::from_serde(json),
        &JsonOptions::default(),
        &Path::Root,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn props(entries: &[(&str, &str)]) -> Props {
        entries
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn every_plugin_builds_with_defaults() {
        // The registry converters need only the registry's URL, and call it only to convert.
        let registry = props(&[("schema.registry.url", "http://127.0.0.1:1")]);
        for class in plugins() {
            for is_key in [true, false] {
                assert!(converter(class, &registry, is_key).is_ok(), "{class}");
            }
        }
    }

    #[test]
    fn problems_name_the_full_key() {
        let problems = converter(
            JSON_CONVERTER,
            &props(&[
                ("schemas.enable", "yes"),
                ("schemas.cache.size", "many"),
                ("decimal.format", "HEX"),
                ("replace.null.with.default", " TRUE "),
                ("unknown.key", "ignored"),
            ]),
            false,
        )
        .err()
        .expect("bad config");
        assert_eq!(
            problems,
            vec![
                ConfigProblem::new(
                    "value.converter.schemas.enable",
                    "invalid value \"yes\": expected true or false"
                ),
                ConfigProblem::new(
                    "value.converter.schemas.cache.size",
                    "invalid value \"many\": expected a 32-bit integer"
                ),
                ConfigProblem::new(
                    "value.converter.decimal.format",
                    "invalid value \"HEX\": expected one of BASE64, NUMERIC"
                ),
            ]
        );
        let problems = converter(
            STRING_CONVERTER,
            &props(&[("converter.encoding", "EBCDIC")]),
            true,
        )
        .err()
        .expect("bad encoding");
        assert_eq!(problems.len(), 1);
        assert_eq!(problems[0].name, "key.converter.converter.encoding");
    }

    #[test]
    fn unknown_classes_and_registry_converters_without_a_url_are_refused() {
        let problems = converter("com.example.Nope", &Props::new(), true)
            .err()
            .expect("unknown");
        assert_eq!(problems[0].name, "key.converter");
        assert!(
            problems[0]
                .message
                .starts_with("unknown converter class \"com.example.Nope\"")
        );
        let problems = converter(
            "io.confluent.connect.avro.AvroConverter",
            &Props::new(),
            false,
        )
        .err()
        .expect("registry");
        assert_eq!(problems[0].name, "value.converter.schema.registry.url");
        assert!(
            problems[0]
                .message
                .contains("Missing required configuration")
        );
        let problems = converter(
            AVRO_CONVERTER,
            &props(&[
                ("schema.registry.url", "http://r:8081"),
                ("basic.auth.credentials.source", "USER_INFO"),
                ("value.subject.name.strategy", "com.example.Mine"),
            ]),
            false,
        )
        .err()
        .expect("bad registry config");
        let names: Vec<&str> = problems.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "value.converter.basic.auth.user.info",
                "value.converter.value.subject.name.strategy"
            ]
        );
    }

    #[test]
    fn json_converter_config_takes_effect() {
        let conv = match converter(
            JSON_CONVERTER,
            &props(&[("schemas.enable", "FALSE"), ("decimal.format", "numeric")]),
            false,
        ) {
            Ok(conv) => conv,
            Err(problems) => panic!("{problems:?}"),
        };
        let bytes = conv
            .from_connect("t", None, &Value::map_of([("a", Value::Int32(1))]))
            .expect("writes")
            .expect("some");
        assert_eq!(&bytes[..], br#"{"a":1}"#);
    }
}
