//! Schema'd records in Confluent's wire format, for `produce` and `consume`: JSON in, Avro,
//! JSON Schema or Protobuf on the wire, and back to JSON.
//!
//! The wire format is a magic byte 0, the schema id (4 bytes, big-endian), then the payload;
//! Protobuf payloads start with the message-index list (zigzag varints: a count, then the
//! path of the message in the file; the first message is the single byte 0). Schemas come
//! from the registry by id or as a subject's latest version, with their references, and are
//! parsed by `spate-schema` (so a schema registered as a Protobuf descriptor or as `.proto`
//! text reads the same). Each is fetched once per command.
//!
//! - **Avro** uses Avro's JSON encoding, as Confluent's console tools do: a union value is
//!   `{"type": value}` (or `null`), bytes and fixed are strings of code points 0-255.
//!   Writing also takes a bare value where one union branch fits, and fills missing record
//!   fields from their defaults. Encoding and decoding are `apache-avro`'s; payloads are
//!   checked by `spate-schema`'s bounded validator first, so a hostile payload cannot make
//!   the decoder allocate or recurse without bound.
//! - **JSON Schema** payloads are the JSON text, checked against the schema before writing.
//! - **Protobuf** uses the Protobuf JSON mapping (`prost-reflect`): field names in
//!   lowerCamelCase (proto names accepted on input), 64-bit integers as strings, enums by
//!   name, default values printed. Message indexes skip map entries, as `spate-schema`'s
//!   validator and Confluent's Java serializer with a `.proto` text schema do (Confluent's
//!   Python serializer counts them; see compat/FINDINGS.md).
//!
//! This module does the registry calls (blocking, through [`Registry`]) and no other I/O.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use anyhow::{Context, bail};
use apache_avro::Schema as AvroSchema;
use apache_avro::types::Value as AvroValue;
use prost_reflect::prost::Message as _;
use prost_reflect::{DynamicMessage, MessageDescriptor, SerializeOptions};
use serde_json::{Map, Number, Value};
use spate_schema::{Dependency, Parsed, SchemaType};

use super::registry::{Registry, segment};

/// The wire format's magic byte.
const MAGIC: u8 = 0;
/// References followed from one schema at most (a cycle or a runaway chain stops here).
const MAX_REFERENCES: usize = 256;
/// Registry lookups that failed are retried at most this often per id.
const MAX_FAILED_LOOKUPS_REMEMBERED: usize = 1024;

/// How a schema for writing is chosen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SchemaChoice {
    /// A subject's latest version.
    Subject(String),
    /// A schema id.
    Id(i32),
}

/// A schema ready to encode and decode.
pub struct Codec {
    /// The schema's id in the registry.
    pub id: i32,
    kind: Kind,
}

enum Kind {
    Avro(Box<AvroCodec>),
    Json(Parsed),
    Protobuf(spate_schema::protobuf::ProtobufSchema),
}

struct AvroCodec {
    schema: AvroSchema,
    schemata: Vec<AvroSchema>,
    /// Named types by full name, for references inside the schema.
    names: HashMap<String, AvroSchema>,
    /// The bounded validator that checks payloads before `apache-avro` decodes them.
    check: Parsed,
}

/// The bytes of a record in the wire format: magic byte, schema id, payload.
pub fn frame(id: i32, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(payload.len() + 5);
    out.push(MAGIC);
    out.extend_from_slice(&id.to_be_bytes());
    out.extend_from_slice(payload);
    out
}

/// The schema id and payload of bytes in the wire format; `None` for bytes that are not.
pub fn unframe(bytes: &[u8]) -> Option<(i32, &[u8])> {
    match bytes {
        [MAGIC, a, b, c, d, rest @ ..] => Some((i32::from_be_bytes([*a, *b, *c, *d]), rest)),
        _ => None,
    }
}

/// Fetches schemas from the registry, once per id and subject.
pub struct Schemas {
    registry: Registry,
    by_id: HashMap<i32, Arc<Codec>>,
    /// Ids whose lookup failed (each is reported once).
    failed: HashSet<i32>,
}

impl Schemas {
    /// Schemas from `registry`.
    pub fn new(registry: Registry) -> Schemas {
        Schemas {
            registry,
            by_id: HashMap::new(),
            failed: HashSet::new(),
        }
    }

    /// The schema with this id.
    pub fn by_id(&mut self, id: i32) -> anyhow::Result<Arc<Codec>> {
        if let Some(codec) = self.by_id.get(&id) {
            return Ok(Arc::clone(codec));
        }
        let answer = self
            .registry
            .call("GET", &format!("/schemas/ids/{id}"), None)
            .with_context(|| format!("cannot get schema {id} from {}", self.registry.base()))?;
        let codec = Arc::new(self.build(id, &answer)?);
        self.by_id.insert(id, Arc::clone(&codec));
        Ok(codec)
    }

    /// The schema with this id, for decoding: `None` (after one warning on stderr) when it
    /// cannot be had, so the record prints as it is.
    pub fn for_decoding(&mut self, id: i32) -> Option<Arc<Codec>> {
        if self.failed.contains(&id) {
            return None;
        }
        match self.by_id(id) {
            Ok(codec) => Some(codec),
            Err(error) => {
                eprintln!(
                    "warning: records with schema id {id} are printed as they are: {error:#}"
                );
                if self.failed.len() < MAX_FAILED_LOOKUPS_REMEMBERED {
                    self.failed.insert(id);
                }
                None
            }
        }
    }

    /// The schema a choice names: a subject's latest version, or an id.
    pub fn choose(&mut self, choice: &SchemaChoice) -> anyhow::Result<Arc<Codec>> {
        match choice {
            SchemaChoice::Id(id) => self.by_id(*id),
            SchemaChoice::Subject(subject) => {
                let answer = self
                    .registry
                    .call(
                        "GET",
                        &format!("/subjects/{}/versions/latest", segment(subject)),
                        None,
                    )
                    .with_context(|| {
                        format!(
                            "cannot get the latest schema of subject {subject:?} from {}",
                            self.registry.base()
                        )
                    })?;
                let id = answer
                    .get("id")
                    .and_then(Value::as_i64)
                    .and_then(|id| i32::try_from(id).ok())
                    .with_context(|| format!("the registry's answer for {subject:?} has no id"))?;
                if let Some(codec) = self.by_id.get(&id) {
                    return Ok(Arc::clone(codec));
                }
                let codec = Arc::new(self.build(id, &answer)?);
                self.by_id.insert(id, Arc::clone(&codec));
                Ok(codec)
            }
        }
    }

    /// A codec from a registry answer (`schema`, `schemaType`, `references`).
    fn build(&self, id: i32, answer: &Value) -> anyhow::Result<Codec> {
        let text = answer
            .get("schema")
            .and_then(Value::as_str)
            .with_context(|| format!("the registry's answer for schema {id} has no schema"))?;
        let schema_type = schema_type(answer)?;
        let mut dependencies = Vec::new();
        let mut seen = HashSet::new();
        self.resolve_references(answer, &mut dependencies, &mut seen)?;
        let parsed = Parsed::parse(schema_type, text, &dependencies, false)
            .map_err(|e| anyhow::anyhow!("schema {id} does not parse: {e}"))?;
        let kind = match parsed {
            Parsed::Avro(_) => {
                let (schema, schemata) = AvroSchema::parse_str_with_list(
                    text,
                    dependencies.iter().map(|d| d.text.as_str()),
                )
                .map_err(|e| anyhow::anyhow!("schema {id} does not parse as Avro: {e}"))?;
                let mut names = HashMap::new();
                for s in schemata.iter().chain(std::iter::once(&schema)) {
                    collect_names(s, &mut names);
                }
                Kind::Avro(Box::new(AvroCodec {
                    schema,
                    schemata,
                    names,
                    check: parsed,
                }))
            }
            Parsed::Json(_) => Kind::Json(parsed),
            Parsed::Protobuf(schema) => Kind::Protobuf(schema),
        };
        Ok(Codec { id, kind })
    }

    /// The texts of the schemas `answer` references, transitively, dependencies first.
    fn resolve_references(
        &self,
        answer: &Value,
        out: &mut Vec<Dependency>,
        seen: &mut HashSet<(String, i64)>,
    ) -> anyhow::Result<()> {
        for reference in answer
            .get("references")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let name = reference.get("name").and_then(Value::as_str);
            let subject = reference.get("subject").and_then(Value::as_str);
            let version = reference.get("version").and_then(Value::as_i64);
            let (Some(name), Some(subject), Some(version)) = (name, subject, version) else {
                bail!(
                    "the registry sent a reference without name, subject or version: {reference}"
                );
            };
            if !seen.insert((subject.to_string(), version)) {
                continue;
            }
            if seen.len() > MAX_REFERENCES {
                bail!("the schema references more than {MAX_REFERENCES} schemas");
            }
            let referenced = self.registry.call(
                "GET",
                &format!("/subjects/{}/versions/{version}", segment(subject)),
                None,
            )?;
            self.resolve_references(&referenced, out, seen)?;
            let text = referenced
                .get("schema")
                .and_then(Value::as_str)
                .with_context(|| {
                    format!("reference {name} ({subject} v{version}) has no schema")
                })?;
            out.push(Dependency {
                name: name.to_string(),
                text: text.to_string(),
            });
        }
        Ok(())
    }
}

fn schema_type(answer: &Value) -> anyhow::Result<SchemaType> {
    match answer.get("schemaType").and_then(Value::as_str) {
        None => Ok(SchemaType::Avro),
        Some(name) => SchemaType::parse(name)
            .with_context(|| format!("the registry names an unknown schema type {name:?}")),
    }
}

impl Codec {
    /// The schema's type.
    pub fn schema_type(&self) -> SchemaType {
        match &self.kind {
            Kind::Avro(_) => SchemaType::Avro,
            Kind::Json(_) => SchemaType::Json,
            Kind::Protobuf(_) => SchemaType::Protobuf,
        }
    }

    /// The message a Protobuf record is written as: `name` (a message of the schema's own
    /// file, by full name), else the file's first message. `None` for other schema types.
    pub fn protobuf_message(
        &self,
        name: Option<&str>,
    ) -> anyhow::Result<Option<MessageDescriptor>> {
        let Kind::Protobuf(schema) = &self.kind else {
            if let Some(name) = name {
                bail!(
                    "schema {} is {}, not Protobuf: it has no message {name:?} to choose",
                    self.id,
                    self.schema_type()
                );
            }
            return Ok(None);
        };
        let file = schema.file();
        let message = match name {
            Some(name) => {
                let name = name.trim_start_matches('.');
                file.parent_pool()
                    .get_message_by_name(name)
                    .filter(|m| m.parent_file() == *file)
                    .with_context(|| {
                        format!(
                            "schema {} has no message {name:?}; its messages: {}",
                            self.id,
                            message_names(file).join(", ")
                        )
                    })?
            }
            None => file
                .messages()
                .next()
                .with_context(|| format!("schema {} defines no message", self.id))?,
        };
        Ok(Some(message))
    }

    /// The record bytes (wire format) of `json`; `message` is the Protobuf message to write
    /// (see [`Codec::protobuf_message`]).
    pub fn encode(
        &self,
        json: &Value,
        message: Option<&MessageDescriptor>,
    ) -> anyhow::Result<Vec<u8>> {
        let payload = match &self.kind {
            Kind::Avro(avro) => {
                let value = json_to_avro(json, &avro.schema, &avro.names, "$")
                    .map_err(|e| anyhow::anyhow!("does not fit Avro schema {}: {e}", self.id))?;
                apache_avro::to_avro_datum_schemata(
                    &avro.schema,
                    avro.schemata.iter().collect(),
                    value,
                )
                .map_err(|e| anyhow::anyhow!("does not fit Avro schema {}: {e}", self.id))?
            }
            Kind::Json(parsed) => {
                let text = serde_json::to_vec(json).context("cannot write JSON")?;
                parsed
                    .validate_payload(&text)
                    .map_err(|e| anyhow::anyhow!("does not match JSON schema {}: {e}", self.id))?;
                text
            }
            Kind::Protobuf(schema) => {
                let descriptor = match message {
                    Some(m) => m.clone(),
                    None => self
                        .protobuf_message(None)?
                        .with_context(|| format!("schema {} defines no message", self.id))?,
                };
                let decoded = DynamicMessage::deserialize(descriptor.clone(), json.clone())
                    .map_err(|e| {
                        anyhow::anyhow!("is not a {} message: {e}", descriptor.full_name())
                    })?;
                let mut payload = message_indexes(&descriptor, schema.file());
                decoded
                    .encode(&mut payload)
                    .context("cannot encode the Protobuf message")?;
                payload
            }
        };
        Ok(frame(self.id, &payload))
    }

    /// The JSON form of a payload (after the 5-byte header) written with this schema.
    pub fn decode(&self, payload: &[u8]) -> anyhow::Result<Value> {
        match &self.kind {
            Kind::Avro(avro) => {
                avro.check.validate_payload(payload).map_err(|e| {
                    anyhow::anyhow!("not a valid payload of schema {}: {e}", self.id)
                })?;
                let mut reader = payload;
                let value = apache_avro::from_avro_datum_schemata(
                    &avro.schema,
                    avro.schemata.iter().collect(),
                    &mut reader,
                    None,
                )
                .map_err(|e| anyhow::anyhow!("not a valid payload of schema {}: {e}", self.id))?;
                avro_to_json(&value, &avro.schema, &avro.names)
                    .map_err(|e| anyhow::anyhow!("cannot print schema {}'s value: {e}", self.id))
            }
            Kind::Json(_) => serde_json::from_slice(payload)
                .with_context(|| format!("not a JSON payload of schema {}", self.id)),
            Kind::Protobuf(schema) => {
                let (descriptor, body) = split_protobuf(schema.file(), payload)
                    .map_err(|e| anyhow::anyhow!("not a payload of schema {}: {e}", self.id))?;
                let message = DynamicMessage::decode(descriptor.clone(), body).map_err(|e| {
                    anyhow::anyhow!("not a valid {} message: {e}", descriptor.full_name())
                })?;
                let options = SerializeOptions::new().skip_default_fields(false);
                message
                    .serialize_with_options(serde_json::value::Serializer, &options)
                    .with_context(|| format!("cannot print a {} message", descriptor.full_name()))
            }
        }
    }
}

fn message_names(file: &prost_reflect::FileDescriptor) -> Vec<String> {
    file.messages().map(|m| m.full_name().to_string()).collect()
}

/// Message indexes in one payload at most (deeper nesting is refused, not followed).
const MAX_MESSAGE_INDEXES: usize = 64;

fn read_zigzag(buf: &mut &[u8]) -> Result<i32, String> {
    let mut raw: u32 = 0;
    for shift in (0..35).step_by(7) {
        let (&byte, rest) = buf
            .split_first()
            .ok_or_else(|| "the payload ends inside its message-index list".to_string())?;
        *buf = rest;
        raw |= u32::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Ok(((raw >> 1) as i32) ^ -((raw & 1) as i32));
        }
    }
    Err("a message index is longer than 5 bytes".to_string())
}

/// The message a Protobuf payload's index list names, and the message's bytes.
fn split_protobuf<'p>(
    file: &prost_reflect::FileDescriptor,
    payload: &'p [u8],
) -> Result<(MessageDescriptor, &'p [u8]), String> {
    let mut rest = payload;
    let count = read_zigzag(&mut rest)?;
    let path = if count == 0 {
        vec![0]
    } else {
        let count = usize::try_from(count)
            .ok()
            .filter(|&c| c <= MAX_MESSAGE_INDEXES)
            .ok_or_else(|| format!("{count} message indexes (at most {MAX_MESSAGE_INDEXES})"))?;
        let mut path = Vec::with_capacity(count);
        for _ in 0..count {
            path.push(read_zigzag(&mut rest)?);
        }
        path
    };
    let out_of_range = |index: i32| format!("message index {index} is out of range");
    let mut message = usize::try_from(path[0])
        .ok()
        .and_then(|i| file.messages().nth(i))
        .ok_or_else(|| out_of_range(path[0]))?;
    for &index in &path[1..] {
        message = usize::try_from(index)
            .ok()
            .and_then(|i| {
                message
                    .child_messages()
                    .filter(|m| !m.is_map_entry())
                    .nth(i)
            })
            .ok_or_else(|| out_of_range(index))?;
    }
    Ok((message, rest))
}

/// Confluent's message-index list of `message` in `file`: its path from the top-level
/// messages through nested ones, zigzag varints after a count; `[0]` is the single byte 0.
fn message_indexes(message: &MessageDescriptor, file: &prost_reflect::FileDescriptor) -> Vec<u8> {
    let mut path = Vec::new();
    let mut current = message.clone();
    loop {
        match current.parent_message() {
            Some(parent) => {
                let index = parent
                    .child_messages()
                    .filter(|m| !m.is_map_entry())
                    .position(|m| m == current)
                    .unwrap_or(0);
                path.push(index as i32);
                current = parent;
            }
            None => {
                let index = file.messages().position(|m| m == current).unwrap_or(0);
                path.push(index as i32);
                break;
            }
        }
    }
    path.reverse();
    if path == [0] {
        return vec![0];
    }
    let mut out = Vec::with_capacity(path.len() + 1);
    write_zigzag(&mut out, path.len() as i32);
    for index in path {
        write_zigzag(&mut out, index);
    }
    out
}

fn write_zigzag(out: &mut Vec<u8>, value: i32) {
    let mut raw = ((value << 1) ^ (value >> 31)) as u32;
    loop {
        if raw < 0x80 {
            out.push(raw as u8);
            return;
        }
        out.push((raw as u8 & 0x7f) | 0x80);
        raw >>= 7;
    }
}

// ---------------------------------------------------------------------------------------------
// Avro JSON encoding

/// Records every named type of `schema` by full name.
fn collect_names(schema: &AvroSchema, names: &mut HashMap<String, AvroSchema>) {
    match schema {
        AvroSchema::Record(record)
            if names
                .insert(record.name.fullname(None), schema.clone())
                .is_none() =>
        {
            for field in &record.fields {
                collect_names(&field.schema, names);
            }
        }
        AvroSchema::Enum(e) => {
            names.insert(e.name.fullname(None), schema.clone());
        }
        AvroSchema::Fixed(f) => {
            names.insert(f.name.fullname(None), schema.clone());
        }
        AvroSchema::Array(array) => collect_names(&array.items, names),
        AvroSchema::Map(map) => collect_names(&map.types, names),
        AvroSchema::Union(union) => {
            for variant in union.variants() {
                collect_names(variant, names);
            }
        }
        AvroSchema::Decimal(decimal) => collect_names(&decimal.inner, names),
        _ => {}
    }
}

/// The name Avro's JSON encoding uses for a union branch of this schema.
fn branch_name(schema: &AvroSchema) -> String {
    match schema {
        AvroSchema::Null => "null".into(),
        AvroSchema::Boolean => "boolean".into(),
        AvroSchema::Int | AvroSchema::Date | AvroSchema::TimeMillis => "int".into(),
        AvroSchema::Long
        | AvroSchema::TimeMicros
        | AvroSchema::TimestampMillis
        | AvroSchema::TimestampMicros
        | AvroSchema::TimestampNanos
        | AvroSchema::LocalTimestampMillis
        | AvroSchema::LocalTimestampMicros
        | AvroSchema::LocalTimestampNanos => "long".into(),
        AvroSchema::Float => "float".into(),
        AvroSchema::Double => "double".into(),
        AvroSchema::Bytes | AvroSchema::BigDecimal => "bytes".into(),
        AvroSchema::String | AvroSchema::Uuid => "string".into(),
        AvroSchema::Array(_) => "array".into(),
        AvroSchema::Map(_) => "map".into(),
        AvroSchema::Union(_) => "union".into(),
        AvroSchema::Record(r) => r.name.fullname(None),
        AvroSchema::Enum(e) => e.name.fullname(None),
        AvroSchema::Fixed(f) => f.name.fullname(None),
        AvroSchema::Decimal(d) => branch_name(&d.inner),
        AvroSchema::Duration => "fixed".into(),
        AvroSchema::Ref { name } => name.fullname(None),
    }
}

fn resolve<'a>(
    schema: &'a AvroSchema,
    names: &'a HashMap<String, AvroSchema>,
) -> Result<&'a AvroSchema, String> {
    match schema {
        AvroSchema::Ref { name } => names
            .get(&name.fullname(None))
            .ok_or_else(|| format!("unknown type {}", name.fullname(None))),
        other => Ok(other),
    }
}

/// Bytes from Avro's JSON encoding: one code point (0-255) per byte.
fn latin1_bytes(text: &str, path: &str) -> Result<Vec<u8>, String> {
    text.chars()
        .map(|c| {
            u8::try_from(u32::from(c))
                .map_err(|_| format!("{path}: bytes are written as code points 0-255, got {c:?}"))
        })
        .collect()
}

fn latin1_text(bytes: &[u8]) -> String {
    bytes.iter().map(|&b| char::from(b)).collect()
}

fn expected(path: &str, what: &str, json: &Value) -> String {
    let shown = json.to_string();
    let shown = if shown.chars().count() > 60 {
        format!("{}...", shown.chars().take(60).collect::<String>())
    } else {
        shown
    };
    format!("{path}: expected {what}, got {shown}")
}

fn int_of(json: &Value, path: &str) -> Result<i32, String> {
    json.as_i64()
        .and_then(|n| i32::try_from(n).ok())
        .ok_or_else(|| expected(path, "an int", json))
}

fn long_of(json: &Value, path: &str) -> Result<i64, String> {
    json.as_i64().ok_or_else(|| expected(path, "a long", json))
}

/// Converts JSON (Avro's JSON encoding, or bare values where they are not ambiguous) to an
/// Avro value of `schema`.
fn json_to_avro(
    json: &Value,
    schema: &AvroSchema,
    names: &HashMap<String, AvroSchema>,
    path: &str,
) -> Result<AvroValue, String> {
    let schema = resolve(schema, names)?;
    Ok(match schema {
        AvroSchema::Null => match json {
            Value::Null => AvroValue::Null,
            other => return Err(expected(path, "null", other)),
        },
        AvroSchema::Boolean => AvroValue::Boolean(
            json.as_bool()
                .ok_or_else(|| expected(path, "a boolean", json))?,
        ),
        AvroSchema::Int => AvroValue::Int(int_of(json, path)?),
        AvroSchema::Long => AvroValue::Long(long_of(json, path)?),
        AvroSchema::Float => AvroValue::Float(
            json.as_f64()
                .ok_or_else(|| expected(path, "a float", json))? as f32,
        ),
        AvroSchema::Double => AvroValue::Double(
            json.as_f64()
                .ok_or_else(|| expected(path, "a double", json))?,
        ),
        AvroSchema::Bytes => AvroValue::Bytes(latin1_bytes(
            json.as_str()
                .ok_or_else(|| expected(path, "bytes as a string", json))?,
            path,
        )?),
        AvroSchema::String => AvroValue::String(
            json.as_str()
                .ok_or_else(|| expected(path, "a string", json))?
                .to_string(),
        ),
        AvroSchema::Array(array) => AvroValue::Array(
            json.as_array()
                .ok_or_else(|| expected(path, "an array", json))?
                .iter()
                .enumerate()
                .map(|(i, item)| json_to_avro(item, &array.items, names, &format!("{path}[{i}]")))
                .collect::<Result<_, _>>()?,
        ),
        AvroSchema::Map(map) => AvroValue::Map(
            json.as_object()
                .ok_or_else(|| expected(path, "an object (a map)", json))?
                .iter()
                .map(|(k, v)| {
                    Ok((
                        k.clone(),
                        json_to_avro(v, &map.types, names, &format!("{path}.{k}"))?,
                    ))
                })
                .collect::<Result<_, String>>()?,
        ),
        AvroSchema::Union(union) => {
            let variants = union.variants();
            if json.is_null() {
                let index = variants
                    .iter()
                    .position(|v| matches!(v, AvroSchema::Null))
                    .ok_or_else(|| format!("{path}: null is not one of the union's types"))?;
                return Ok(AvroValue::Union(index as u32, Box::new(AvroValue::Null)));
            }
            // Avro's JSON encoding: {"branch": value}.
            if let Some(object) = json.as_object().filter(|o| o.len() == 1) {
                if let Some((key, inner)) = object.iter().next() {
                    if let Some(index) = variants.iter().position(|v| branch_name(v) == *key) {
                        let value =
                            json_to_avro(inner, &variants[index], names, &format!("{path}.{key}"))?;
                        return Ok(AvroValue::Union(index as u32, Box::new(value)));
                    }
                }
            }
            // A bare value: the first branch it fits.
            let mut reasons = Vec::new();
            for (index, variant) in variants.iter().enumerate() {
                if matches!(variant, AvroSchema::Null) {
                    continue;
                }
                match json_to_avro(json, variant, names, path) {
                    Ok(value) => return Ok(AvroValue::Union(index as u32, Box::new(value))),
                    Err(reason) => reasons.push(reason),
                }
            }
            return Err(format!(
                "{path}: fits none of the union's types ({})",
                reasons.join("; ")
            ));
        }
        AvroSchema::Record(record) => {
            let object = json
                .as_object()
                .ok_or_else(|| expected(path, &format!("a {} record", record.name.name), json))?;
            let known: HashSet<&str> = record.fields.iter().map(|f| f.name.as_str()).collect();
            if let Some(unknown) = object.keys().find(|k| !known.contains(k.as_str())) {
                return Err(format!(
                    "{path}: record {} has no field {unknown:?}",
                    record.name.fullname(None)
                ));
            }
            let mut fields = Vec::with_capacity(record.fields.len());
            for field in &record.fields {
                let field_path = format!("{path}.{}", field.name);
                let value = match (object.get(&field.name), &field.default) {
                    (Some(value), _) => json_to_avro(value, &field.schema, names, &field_path)?,
                    (None, Some(default)) => {
                        default_to_avro(default, &field.schema, names, &field_path)?
                    }
                    (None, None) => {
                        return Err(format!(
                            "{field_path}: missing, and the field has no default"
                        ));
                    }
                };
                fields.push((field.name.clone(), value));
            }
            AvroValue::Record(fields)
        }
        AvroSchema::Enum(e) => {
            let symbol = json
                .as_str()
                .ok_or_else(|| expected(path, "an enum symbol", json))?;
            let index = e.symbols.iter().position(|s| s == symbol).ok_or_else(|| {
                format!(
                    "{path}: {symbol:?} is not a symbol of {} ({})",
                    e.name.fullname(None),
                    e.symbols.join(", ")
                )
            })?;
            AvroValue::Enum(index as u32, symbol.to_string())
        }
        AvroSchema::Fixed(f) => {
            let bytes = latin1_bytes(
                json.as_str()
                    .ok_or_else(|| expected(path, "fixed bytes as a string", json))?,
                path,
            )?;
            if bytes.len() != f.size {
                return Err(format!(
                    "{path}: {} is fixed to {} bytes, got {}",
                    f.name.fullname(None),
                    f.size,
                    bytes.len()
                ));
            }
            AvroValue::Fixed(f.size, bytes)
        }
        AvroSchema::Decimal(_) => AvroValue::Decimal(apache_avro::Decimal::from(latin1_bytes(
            json.as_str()
                .ok_or_else(|| expected(path, "a decimal's bytes as a string", json))?,
            path,
        )?)),
        AvroSchema::Uuid => AvroValue::Uuid(
            json.as_str()
                .and_then(|s| spate_client::Uuid::parse_str(s).ok())
                .ok_or_else(|| expected(path, "a UUID string", json))?,
        ),
        AvroSchema::Date => AvroValue::Date(int_of(json, path)?),
        AvroSchema::TimeMillis => AvroValue::TimeMillis(int_of(json, path)?),
        AvroSchema::TimeMicros => AvroValue::TimeMicros(long_of(json, path)?),
        AvroSchema::TimestampMillis => AvroValue::TimestampMillis(long_of(json, path)?),
        AvroSchema::TimestampMicros => AvroValue::TimestampMicros(long_of(json, path)?),
        AvroSchema::TimestampNanos => AvroValue::TimestampNanos(long_of(json, path)?),
        AvroSchema::LocalTimestampMillis => AvroValue::LocalTimestampMillis(long_of(json, path)?),
        AvroSchema::LocalTimestampMicros => AvroValue::LocalTimestampMicros(long_of(json, path)?),
        AvroSchema::LocalTimestampNanos => AvroValue::LocalTimestampNanos(long_of(json, path)?),
        AvroSchema::Duration => {
            let bytes = latin1_bytes(
                json.as_str()
                    .ok_or_else(|| expected(path, "a duration's 12 bytes", json))?,
                path,
            )?;
            let bytes: [u8; 12] = bytes
                .try_into()
                .map_err(|_| format!("{path}: a duration is 12 bytes"))?;
            AvroValue::Duration(apache_avro::Duration::from(bytes))
        }
        AvroSchema::BigDecimal => {
            return Err(format!(
                "{path}: big-decimal values cannot be written from JSON"
            ));
        }
        AvroSchema::Ref { .. } => return Err(format!("{path}: unresolved reference")),
    })
}

/// A field default: Avro's JSON, where a union's default is a value of its first branch
/// (bare, not wrapped).
fn default_to_avro(
    default: &Value,
    schema: &AvroSchema,
    names: &HashMap<String, AvroSchema>,
    path: &str,
) -> Result<AvroValue, String> {
    match resolve(schema, names)? {
        AvroSchema::Union(union) => {
            for (index, variant) in union.variants().iter().enumerate() {
                if let Ok(value) = json_to_avro(default, variant, names, path) {
                    return Ok(AvroValue::Union(index as u32, Box::new(value)));
                }
            }
            Err(format!(
                "{path}: the default {default} fits none of the union's types"
            ))
        }
        other => json_to_avro(default, other, names, path),
    }
}

fn number(value: f64) -> Value {
    Number::from_f64(value).map_or_else(|| Value::String(value.to_string()), Value::Number)
}

/// Converts a decoded Avro value of `schema` to Avro's JSON encoding.
fn avro_to_json(
    value: &AvroValue,
    schema: &AvroSchema,
    names: &HashMap<String, AvroSchema>,
) -> Result<Value, String> {
    let schema = resolve(schema, names)?;
    Ok(match (value, schema) {
        (AvroValue::Union(index, inner), AvroSchema::Union(union)) => {
            let variant = union
                .variants()
                .get(*index as usize)
                .ok_or_else(|| format!("union branch {index} does not exist"))?;
            if matches!(**inner, AvroValue::Null) {
                Value::Null
            } else {
                let mut object = Map::new();
                object.insert(branch_name(variant), avro_to_json(inner, variant, names)?);
                Value::Object(object)
            }
        }
        (AvroValue::Record(fields), AvroSchema::Record(record)) => {
            let mut object = Map::new();
            for (name, field_value) in fields {
                let field = record
                    .fields
                    .iter()
                    .find(|f| f.name == *name)
                    .ok_or_else(|| format!("record {} has no field {name}", record.name.name))?;
                object.insert(
                    name.clone(),
                    avro_to_json(field_value, &field.schema, names)?,
                );
            }
            Value::Object(object)
        }
        (AvroValue::Array(items), AvroSchema::Array(array)) => Value::Array(
            items
                .iter()
                .map(|item| avro_to_json(item, &array.items, names))
                .collect::<Result<_, _>>()?,
        ),
        (AvroValue::Map(entries), AvroSchema::Map(map)) => {
            let mut keys: Vec<&String> = entries.keys().collect();
            keys.sort();
            let mut object = Map::new();
            for key in keys {
                object.insert(key.clone(), avro_to_json(&entries[key], &map.types, names)?);
            }
            Value::Object(object)
        }
        (AvroValue::Null, _) => Value::Null,
        (AvroValue::Boolean(b), _) => Value::Bool(*b),
        (AvroValue::Int(n) | AvroValue::Date(n) | AvroValue::TimeMillis(n), _) => Value::from(*n),
        (
            AvroValue::Long(n)
            | AvroValue::TimeMicros(n)
            | AvroValue::TimestampMillis(n)
            | AvroValue::TimestampMicros(n)
            | AvroValue::TimestampNanos(n)
            | AvroValue::LocalTimestampMillis(n)
            | AvroValue::LocalTimestampMicros(n)
            | AvroValue::LocalTimestampNanos(n),
            _,
        ) => Value::from(*n),
        (AvroValue::Float(f), _) => number(f64::from(*f)),
        (AvroValue::Double(f), _) => number(*f),
        (AvroValue::Bytes(bytes) | AvroValue::Fixed(_, bytes), _) => {
            Value::String(latin1_text(bytes))
        }
        (AvroValue::String(s) | AvroValue::Enum(_, s), _) => Value::String(s.clone()),
        (AvroValue::Decimal(decimal), _) => {
            let bytes = Vec::<u8>::try_from(decimal).map_err(|e| e.to_string())?;
            Value::String(latin1_text(&bytes))
        }
        (AvroValue::BigDecimal(decimal), _) => Value::String(decimal.to_string()),
        (AvroValue::Uuid(uuid), _) => Value::String(uuid.to_string()),
        (AvroValue::Duration(duration), _) => {
            Value::String(latin1_text(&<[u8; 12]>::from(*duration)))
        }
        (other, schema) => {
            return Err(format!(
                "a {other:?} value where the schema says {}",
                branch_name(schema)
            ));
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn avro(text: &str) -> Codec {
        let parsed = Parsed::parse(SchemaType::Avro, text, &[], false).expect("parses");
        let (schema, schemata) =
            AvroSchema::parse_str_with_list(text, Vec::<&str>::new()).expect("avro parses");
        let mut names = HashMap::new();
        collect_names(&schema, &mut names);
        Codec {
            id: 7,
            kind: Kind::Avro(Box::new(AvroCodec {
                schema,
                schemata,
                names,
                check: parsed,
            })),
        }
    }

    const ORDER: &str = r#"{"type": "record", "name": "Order", "namespace": "shop", "fields": [
        {"name": "id", "type": "long"},
        {"name": "item", "type": "string"},
        {"name": "quantity", "type": "int", "default": 1},
        {"name": "note", "type": ["null", "string"], "default": null},
        {"name": "kind", "type": {"type": "enum", "name": "Kind", "symbols": ["A", "B"]}, "default": "A"},
        {"name": "tags", "type": {"type": "map", "values": "bytes"}, "default": {}}
    ]}"#;

    #[test]
    fn avro_records_round_trip_in_avros_json_encoding() {
        let codec = avro(ORDER);
        let input = json!({"id": 5, "item": "pen", "note": {"string": "gift"},
                           "tags": {"raw": "\u{0}\u{ff}"}});
        let bytes = codec.encode(&input, None).expect("encodes");
        let (id, payload) = unframe(&bytes).expect("framed");
        assert_eq!(id, 7);
        let back = codec.decode(payload).expect("decodes");
        assert_eq!(
            back,
            json!({"id": 5, "item": "pen", "quantity": 1, "note": {"string": "gift"},
                   "kind": "A", "tags": {"raw": "\u{0}\u{ff}"}})
        );
        // A bare value fits the union's one non-null branch.
        let bare = codec
            .encode(&json!({"id": 1, "item": "x", "note": "hi"}), None)
            .expect("bare union value");
        assert_eq!(
            codec.decode(&bare[5..]).expect("decodes")["note"],
            json!({"string": "hi"})
        );
    }

    #[test]
    fn avro_input_that_does_not_fit_says_where() {
        let codec = avro(ORDER);
        for (input, needle) in [
            (json!({"item": "x"}), "$.id: missing"),
            (json!({"id": "one", "item": "x"}), "$.id: expected a long"),
            (
                json!({"id": 1, "item": "x", "colour": "red"}),
                "no field \"colour\"",
            ),
            (json!({"id": 1, "item": "x", "kind": "C"}), "not a symbol"),
            (
                json!({"id": 1, "item": "x", "tags": {"k": "é€"}}),
                "code points 0-255",
            ),
        ] {
            let error = codec.encode(&input, None).expect_err("refused");
            assert!(format!("{error:#}").contains(needle), "{input}: {error:#}");
        }
    }

    #[test]
    fn hostile_avro_payloads_are_refused_before_decoding() {
        let codec = avro(r#"{"type": "array", "items": "null"}"#);
        // An array claiming 2^62 null items: no bytes per item, so only a bounded walk
        // stops it.
        let payload = [0xfe, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f, 0x00];
        assert!(codec.decode(&payload).is_err());
    }

    #[test]
    fn the_wire_format_has_a_magic_byte_and_a_big_endian_id() {
        assert_eq!(frame(258, b"x"), vec![0, 0, 0, 1, 2, b'x']);
        assert_eq!(unframe(&[0, 0, 0, 1, 2, b'x']), Some((258, &b"x"[..])));
        assert_eq!(unframe(&[0, 0, 0, 1]), None);
        assert_eq!(unframe(b"{\"a\":1}"), None);
    }

    #[test]
    fn protobuf_message_indexes_are_read_as_the_brokers_validator_reads_them() {
        let text = r#"syntax = "proto3"; package p;
            message A { message Inner { int32 x = 1; } map<string, int32> m = 1; message Deep { } }
            message B { int64 id = 1; string name = 2; }"#;
        let Parsed::Protobuf(schema) =
            Parsed::parse(SchemaType::Protobuf, text, &[], false).expect("parses")
        else {
            panic!("protobuf")
        };
        let file = schema.file();
        let by_name = |n: &str| file.parent_pool().get_message_by_name(n).expect("message");
        assert_eq!(message_indexes(&by_name("p.A"), file), vec![0]);
        assert_eq!(message_indexes(&by_name("p.B"), file), vec![2, 2]);
        // The map entry of A does not count (as spate-schema's validator reads indexes):
        // Deep is A's second nested message.
        assert_eq!(message_indexes(&by_name("p.A.Deep"), file), vec![4, 0, 2]);
        let (deep, rest) = split_protobuf(file, &[4, 0, 2, 9]).expect("splits");
        assert_eq!(deep.full_name(), "p.A.Deep");
        assert_eq!(rest, &[9]);
        assert!(split_protobuf(file, &[2, 6]).is_err(), "no fourth message");
        assert!(
            split_protobuf(file, &[4, 0, 4]).is_err(),
            "A has two nested messages"
        );

        let codec = Codec {
            id: 3,
            kind: Kind::Protobuf(schema.clone()),
        };
        let b = codec.protobuf_message(Some("p.B")).expect("found");
        let bytes = codec
            .encode(&json!({"id": "12", "name": "x"}), b.as_ref())
            .expect("encodes");
        assert_eq!(&bytes[..7], &[0, 0, 0, 0, 3, 2, 2]);
        assert_eq!(
            codec.decode(&bytes[5..]).expect("decodes"),
            json!({"id": "12", "name": "x"})
        );
        assert!(codec.protobuf_message(Some("p.C")).is_err());
    }
}
