//! Confluent's registry-backed converters, byte-compatible with Confluent's serializers:
//! `io.confluent.connect.avro.AvroConverter` ([`avro_data`](super::avro_data)),
//! `io.confluent.connect.json.JsonSchemaConverter`
//! ([`json_schema_data`](super::json_schema_data)) and
//! `io.confluent.connect.protobuf.ProtobufConverter` ([`protobuf_data`](super::protobuf_data):
//! structs, as one proto3 message per record schema).
//!
//! Writing: the Connect schema becomes the format's schema, which is registered under the
//! subject the strategy names (`auto.register.schemas`, the default), or looked up there, or
//! replaced by the subject's latest version (`use.latest.version` without auto-registration);
//! the record is the wire format's header and the payload. A null value is a tombstone, as
//! Confluent's serializers write it. Reading: the schema id in the header is fetched once and
//! its Connect schema kept (bounded by `schemas.cache.config`).

use std::sync::Arc;

use bytes::Bytes;
use parking_lot::Mutex;
use serde_json::Value as Json;

use super::avro_data::{self, AvroOptions, AvroType};
use super::json_schema_data;
use super::protobuf_data;
use super::registry::{
    BoundedCache, ById, RegistryClient, RegistryConfig, RegistrySchema, frame, unframe,
};
use super::{ConvertError, Converter, SchemaCache};
use crate::data::{Schema, Value};

/// The formats, with their registry `schemaType`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Format {
    Avro(AvroOptions),
    JsonSchema,
    Protobuf,
}

impl Format {
    fn schema_type(self) -> &'static str {
        match self {
            Format::Avro(_) => "AVRO",
            Format::JsonSchema => "JSON",
            Format::Protobuf => "PROTOBUF",
        }
    }

    fn converter_name(self) -> &'static str {
        match self {
            Format::Avro(_) => "AvroConverter",
            Format::JsonSchema => "JsonSchemaConverter",
            Format::Protobuf => "ProtobufConverter",
        }
    }
}

/// A registered schema, parsed for reading and writing.
enum Parsed {
    Avro {
        avro: AvroType,
        connect: Arc<Schema>,
    },
    Json {
        connect: Arc<Schema>,
    },
    Protobuf(spate_schema::protobuf::ProtobufSchema),
}

/// One of Confluent's converters, configured.
pub(crate) struct RegistryConverter {
    format: Format,
    config: RegistryConfig,
    client: RegistryClient,
    by_id: ById<Parsed>,
    /// `use.latest.version`: each subject's latest schema, fetched once (Confluent's
    /// `latest.cache.ttl.sec` defaults to never expiring too).
    latest: Mutex<BoundedCache<String, (i32, Arc<Parsed>)>>,
    /// The registry form of the Connect schemas last written.
    written: SchemaCache<Written>,
}

/// A Connect schema as this converter writes it: its registry schema text, record name and
/// (Avro) parsed schema, derived once instead of per record.
struct Written {
    text: String,
    record: Option<String>,
    avro: Option<AvroType>,
    /// Protobuf: the message the text declares.
    proto: Option<prost_reflect::MessageDescriptor>,
}

impl RegistryConverter {
    pub(crate) fn new(format: Format, config: RegistryConfig) -> RegistryConverter {
        RegistryConverter {
            client: RegistryClient::new(&config),
            by_id: ById::new(config.cache_size),
            latest: Mutex::new(BoundedCache::new(config.cache_size)),
            written: SchemaCache::default(),
            format,
            config,
        }
    }

    fn parse(&self, fetched: &RegistrySchema) -> Result<Parsed, ConvertError> {
        let wrong_type = || ConvertError::InvalidSchema {
            path: "$".to_string(),
            reason: format!(
                "schema {} is {}, but {} reads {}",
                fetched.id,
                fetched.schema_type,
                self.format.converter_name(),
                self.format.schema_type()
            ),
        };
        if fetched.schema_type != self.format.schema_type() {
            return Err(wrong_type());
        }
        match self.format {
            Format::Avro(options) => {
                let dependencies: Vec<&str> = fetched
                    .dependencies
                    .iter()
                    .map(|d| d.text.as_str())
                    .collect();
                let avro = avro_data::parse(&fetched.text, &dependencies)?;
                let connect = Arc::new(avro_data::to_connect_schema(&avro, options)?);
                Ok(Parsed::Avro { avro, connect })
            }
            Format::JsonSchema => {
                let json: Json = serde_json::from_str(&fetched.text).map_err(|e| {
                    ConvertError::InvalidSchema {
                        path: "$".to_string(),
                        reason: format!("schema {} is not JSON: {e}", fetched.id),
                    }
                })?;
                Ok(Parsed::Json {
                    connect: Arc::new(json_schema_data::to_connect_schema(&json)?),
                })
            }
            Format::Protobuf => {
                let schema = spate_schema::protobuf::ProtobufSchema::parse(
                    &fetched.text,
                    &fetched.dependencies,
                    false,
                )
                .map_err(|e| ConvertError::InvalidSchema {
                    path: "$".to_string(),
                    reason: format!("schema {} does not parse: {e}", fetched.id),
                })?;
                Ok(Parsed::Protobuf(schema))
            }
        }
    }
}

impl RegistryConverter {
    /// `schema`'s registry form, from the cache when it was written before.
    fn written(
        &self,
        schema: &Schema,
        shared: Option<&Arc<Schema>>,
    ) -> Result<Arc<Written>, ConvertError> {
        self.written
            .get_or_make(schema, shared, || match self.format {
                Format::Avro(options) => {
                    let json = avro_data::from_connect_schema(schema, options)?;
                    let text = avro_data::schema_text(&json);
                    let avro = avro_data::parse(&text, &[])?;
                    Ok(Written {
                        record: avro_data::record_name(&json),
                        avro: Some(avro),
                        proto: None,
                        text,
                    })
                }
                Format::JsonSchema => {
                    let json = json_schema_data::from_connect_schema(schema);
                    Ok(Written {
                        text: json.to_string(),
                        record: json_schema_data::record_name(&json),
                        avro: None,
                        proto: None,
                    })
                }
                Format::Protobuf => {
                    let (text, record) = protobuf_data::from_connect_schema(schema)?;
                    let compiled = spate_schema::protobuf::ProtobufSchema::parse(&text, &[], false)
                        .map_err(|e| ConvertError::InvalidSchema {
                            path: "$".to_string(),
                            reason: format!(
                                "the Protobuf schema made for this record does not compile: {e}"
                            ),
                        })?;
                    Ok(Written {
                        proto: Some(protobuf_data::first_message(compiled.file())?),
                        text,
                        record: Some(record),
                        avro: None,
                    })
                }
            })
    }

    fn write(
        &self,
        topic: &str,
        schema: Option<&Schema>,
        shared: Option<&Arc<Schema>>,
        value: &Value,
    ) -> Result<Option<Bytes>, ConvertError> {
        if value.is_null() {
            return Ok(None);
        }
        let Some(schema) = schema else {
            return Err(ConvertError::Unsupported {
                converter: self.format.converter_name(),
                found: "a value without a schema".to_string(),
                hint: "it writes data with a schema; use JsonConverter with schemas.enable=false for schemaless data",
            });
        };
        let written = self.written(schema, shared)?;
        let (text, record) = (&written.text, &written.record);
        let subject = self
            .config
            .strategy
            .subject(topic, self.config.is_key, record.as_deref())?;
        let schema_type = self.format.schema_type();
        let (id, parsed) = if !self.config.auto_register && self.config.use_latest_version {
            let cached = self.latest.lock().get(&subject);
            let (id, parsed) = match cached {
                Some(found) => found,
                None => {
                    let latest = self.client.latest(&subject)?;
                    let parsed = Arc::new(self.parse(&latest)?);
                    self.by_id.put(latest.id, Arc::clone(&parsed));
                    self.latest
                        .lock()
                        .insert(subject.clone(), (latest.id, Arc::clone(&parsed)));
                    (latest.id, parsed)
                }
            };
            (id, Some(parsed))
        } else {
            let id = self.client.id_for(
                &subject,
                schema_type,
                text,
                self.config.auto_register,
                self.config.normalize,
            )?;
            (id, None)
        };
        // The registry's latest schema when writing with it, else the record's own (Avro
        // formats always derive one).
        let avro = match parsed.as_deref() {
            Some(Parsed::Avro { avro, .. }) => Some(avro),
            _ => written.avro.as_ref(),
        };
        let payload = match (self.format, avro) {
            (Format::Avro(_), Some(avro)) => avro_data::encode(avro, value)?,
            (Format::Protobuf, _) => {
                // The registry's latest schema when writing with it (its first message),
                // else the one made from the record's.
                let message = match parsed.as_deref() {
                    Some(Parsed::Protobuf(latest)) => protobuf_data::first_message(latest.file())?,
                    _ => written
                        .proto
                        .clone()
                        .ok_or_else(|| ConvertError::InvalidSchema {
                            path: "$".to_string(),
                            reason: "no Protobuf message for this record".to_string(),
                        })?,
                };
                protobuf_data::encode(&message, value)?
            }
            _ => {
                let json = json_schema_data::value_to_json(Some(schema), value, "$")?;
                json.to_string().into_bytes()
            }
        };
        Ok(Some(Bytes::from(frame(id, &payload))))
    }
}

impl Converter for RegistryConverter {
    fn from_connect(
        &self,
        topic: &str,
        schema: Option<&Schema>,
        value: &Value,
    ) -> Result<Option<Bytes>, ConvertError> {
        self.write(topic, schema, None, value)
    }

    fn from_connect_shared(
        &self,
        topic: &str,
        schema: Option<&Arc<Schema>>,
        value: &Value,
    ) -> Result<Option<Bytes>, ConvertError> {
        self.write(topic, schema.map(|s| &**s), schema, value)
    }

    fn latest_schema(&self, topic: &str) -> Result<Option<Arc<Schema>>, ConvertError> {
        let subject = self
            .config
            .strategy
            .subject(topic, self.config.is_key, None)?;
        let latest = match self.client.latest(&subject) {
            Ok(latest) => latest,
            Err(ConvertError::Registry {
                error_code: Some(40401 | 404),
                ..
            }) => return Ok(None),
            Err(e) => return Err(e),
        };
        match self.parse(&latest)? {
            Parsed::Avro { connect, .. } | Parsed::Json { connect } => Ok(Some(connect)),
            Parsed::Protobuf(schema) => {
                let message = protobuf_data::first_message(schema.file())?;
                Ok(Some(Arc::new(protobuf_data::message_schema(&message)?)))
            }
        }
    }

    fn to_connect(
        &self,
        _topic: &str,
        bytes: Option<&[u8]>,
    ) -> Result<(Option<std::sync::Arc<Schema>>, Value), ConvertError> {
        let Some(bytes) = bytes else {
            return Ok((None, Value::Null));
        };
        let (id, payload) = unframe(bytes)?;
        let parsed = self
            .by_id
            .get(&self.client, id, |fetched| self.parse(fetched))?;
        match &*parsed {
            Parsed::Avro { avro, connect } => {
                let value = avro_data::decode(payload, avro, connect)?;
                Ok((Some(Arc::clone(connect)), value))
            }
            Parsed::Json { connect } => {
                let json: Json =
                    serde_json::from_slice(payload).map_err(|e| ConvertError::InvalidJson {
                        offset: e.column(),
                        reason: e.to_string(),
                    })?;
                let value = json_schema_data::json_to_value(connect, &json, "$")?;
                Ok((Some(Arc::clone(connect)), value))
            }
            Parsed::Protobuf(schema) => {
                let (message, body) = protobuf_data::split_payload(schema.file(), payload)?;
                let connect = protobuf_data::message_schema(&message)?;
                let mut value = protobuf_data::decode(&message, &connect, body)?;
                protobuf_data::name_enums(&mut value, &message);
                Ok((Some(Arc::new(connect)), value))
            }
        }
    }
}
