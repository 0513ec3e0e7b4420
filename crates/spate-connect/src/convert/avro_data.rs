//! Confluent's `AvroData`: Connect schemas to Avro schemas as `AvroConverter` registers them
//! (the JSON text, property for property and in Avro's key order, so that the registry sees
//! the same schema Confluent's converter would register), Avro schemas back to Connect
//! schemas, and Avro's binary encoding of Connect values both ways.
//!
//! The mapping: a struct is a record named by the Connect schema's name or
//! `io.confluent.connect.avro.ConnectDefault` (then `ConnectDefault2`, ...); an optional
//! schema is a union with `null` first and a field default of null (`null` second when the
//! schema has a default); `int8`/`int16` are `int` with `connect.type`; Connect's logical
//! types are Avro's (`decimal` on bytes with `precision` and `scale`, `date`, `time-millis`,
//! `timestamp-millis`); a map with keys other than required strings is an array of
//! `MapEntry` records; `connect.name`, `connect.version`, `connect.doc`, `connect.parameters`
//! and `connect.default` carry what Avro has no place for (unless `connect.meta.data=false`).
//! Reading, an enum is a string with its symbols in parameters, fixed is bytes, and a union
//! other than `[null, X]` is a struct named `io.confluent.connect.avro.Union` with one
//! optional field per branch.
//!
//! The binary codec is Spate's own, driven by the parsed schema: every length is checked
//! against the bytes left, so a hostile payload is an error, never a panic or a huge
//! allocation.

use std::collections::HashMap;
use std::sync::Arc;

use bytes::Bytes;
use serde_json::{Map, Value as Json};

use super::ConvertError;
use super::json_converter::Path;
use crate::data::{Field, Schema, SchemaType, Struct, Value, logical};

/// The namespace of the records Connect names.
const NAMESPACE: &str = "io.confluent.connect.avro";
/// The name of an unnamed struct's record.
const DEFAULT_NAME: &str = "ConnectDefault";
/// The record of a map entry.
const MAP_ENTRY: &str = "MapEntry";
/// The Connect name of a general union.
const UNION: &str = "io.confluent.connect.avro.Union";
/// The parameter naming an enum.
const ENUM: &str = "io.confluent.connect.avro.Enum";
const CONNECT_NAME: &str = "connect.name";
const CONNECT_DOC: &str = "connect.doc";
const CONNECT_VERSION: &str = "connect.version";
const CONNECT_PARAMETERS: &str = "connect.parameters";
const CONNECT_DEFAULT: &str = "connect.default";
const CONNECT_TYPE: &str = "connect.type";
const CONNECT_INTERNAL_TYPE: &str = "connect.internal.type";
/// The Connect parameter holding a decimal's precision.
const PRECISION_PARAMETER: &str = "connect.decimal.precision";
/// A decimal's precision when the Connect schema does not say.
const DEFAULT_PRECISION: i64 = 64;
/// The Connect parameter holding a fixed's size.
const FIXED_SIZE_PARAMETER: &str = "connect.fixed.size";
/// Nodes one parsed schema may have, references expanded (a bound on hostile schemas).
const MAX_NODES: usize = 100_000;
/// Items with no bytes of their own (nulls, empty records) one array or map may claim.
const MAX_EMPTY_ITEMS: u64 = 1 << 16;

/// The `AvroConverter` config that changes the mapping.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct AvroOptions {
    /// `connect.meta.data` (default true): write the `connect.*` properties.
    pub connect_meta_data: bool,
    /// `enhanced.avro.schema.support` (default false): union branches of named types are
    /// named by full name.
    pub enhanced: bool,
}

impl Default for AvroOptions {
    fn default() -> AvroOptions {
        AvroOptions {
            connect_meta_data: true,
            enhanced: false,
        }
    }
}

fn schema_error(reason: impl Into<String>) -> ConvertError {
    ConvertError::InvalidSchema {
        path: "$".to_string(),
        reason: reason.into(),
    }
}

fn value_error(path: impl std::fmt::Display, reason: impl Into<String>) -> ConvertError {
    ConvertError::InvalidValue {
        path: path.to_string(),
        reason: reason.into(),
    }
}

// ---------------------------------------------------------------------------------------------
// Connect schema -> Avro schema JSON

/// The Avro schema `AvroData.fromConnectSchema` makes of `schema`, as JSON.
pub(crate) fn from_connect_schema(
    schema: &Schema,
    options: AvroOptions,
) -> Result<Json, ConvertError> {
    let mut ctx = FromConnect {
        options,
        default_names: 0,
        records: Vec::new(),
    };
    ctx.schema(schema, None, false)
}

/// The Avro schema's text, as Avro's `Schema.toString()` prints it (compact JSON).
pub(crate) fn schema_text(json: &Json) -> String {
    json.to_string()
}

/// The full name of the record a top-level schema is (for the record name strategies).
pub(crate) fn record_name(json: &Json) -> Option<String> {
    let object = json.as_object()?;
    if object.get("type")?.as_str()? != "record" {
        return None;
    }
    let name = object.get("name")?.as_str()?;
    Some(match object.get("namespace").and_then(Json::as_str) {
        Some(ns) if !ns.is_empty() && !name.contains('.') => format!("{ns}.{name}"),
        _ => name.to_string(),
    })
}

struct FromConnect {
    options: AvroOptions,
    /// Unnamed structs named so far (`ConnectDefault`, `ConnectDefault2`, ...).
    default_names: usize,
    /// Structs already written, with their record's full name: the same schema again is a
    /// reference by name, as Avro prints a record it has printed before.
    records: Vec<(Schema, String)>,
}

fn split_name(full: &str) -> (String, Option<String>) {
    match full.rsplit_once('.') {
        Some((ns, name)) => (name.to_string(), Some(ns.to_string())),
        None => (full.to_string(), None),
    }
}

/// How Avro prints a reference to `full` inside namespace `enclosing`.
fn qualified(full: &str, enclosing: Option<&str>) -> String {
    match (full.rsplit_once('.'), enclosing) {
        (Some((ns, name)), Some(enclosing)) if ns == enclosing => name.to_string(),
        _ => full.to_string(),
    }
}

impl FromConnect {
    fn default_name(&mut self) -> String {
        self.default_names += 1;
        if self.default_names == 1 {
            DEFAULT_NAME.to_string()
        } else {
            format!("{DEFAULT_NAME}{}", self.default_names)
        }
    }

    /// `fromConnectSchema(schema, ignoreOptional)`, `enclosing` the namespace Avro would
    /// print it in.
    fn schema(
        &mut self,
        schema: &Schema,
        enclosing: Option<&str>,
        ignore_optional: bool,
    ) -> Result<Json, ConvertError> {
        let mut base = Map::new();
        let mut reference = None;
        match schema.kind {
            SchemaType::Int8 | SchemaType::Int16 => {
                base.insert("type".into(), "int".into());
                base.insert(CONNECT_TYPE.into(), schema.kind.name().into());
            }
            SchemaType::Int32 => {
                base.insert("type".into(), "int".into());
            }
            SchemaType::Int64 => {
                base.insert("type".into(), "long".into());
            }
            SchemaType::Float32 => {
                base.insert("type".into(), "float".into());
            }
            SchemaType::Float64 => {
                base.insert("type".into(), "double".into());
            }
            SchemaType::Boolean => {
                base.insert("type".into(), "boolean".into());
            }
            SchemaType::String => {
                base.insert("type".into(), "string".into());
            }
            SchemaType::Bytes => {
                base.insert("type".into(), "bytes".into());
                if schema.is_logical(logical::DECIMAL) {
                    let (precision, scale) = decimal_precision_scale(schema)?;
                    base.insert("scale".into(), scale.into());
                    base.insert("precision".into(), precision.into());
                }
            }
            SchemaType::Array => {
                let items = schema
                    .key_or_items
                    .as_deref()
                    .ok_or_else(|| schema_error("an array schema has no item schema"))?;
                base.insert("type".into(), "array".into());
                base.insert("items".into(), self.schema(items, enclosing, false)?);
            }
            SchemaType::Map => {
                let (key, value) =
                    match (schema.key_or_items.as_deref(), schema.map_value.as_deref()) {
                        (Some(k), Some(v)) => (k, v),
                        _ => return Err(schema_error("a map schema has no key or value schema")),
                    };
                if key.kind == SchemaType::String && !key.optional {
                    base.insert("type".into(), "map".into());
                    base.insert("values".into(), self.schema(value, enclosing, false)?);
                } else {
                    let mut entry = Map::new();
                    entry.insert("type".into(), "record".into());
                    let (full, internal) = match &schema.name {
                        Some(name) => (name.clone(), true),
                        None => (format!("{NAMESPACE}.{MAP_ENTRY}"), false),
                    };
                    let (name, ns) = split_name(&full);
                    entry.insert("name".into(), name.into());
                    if ns.as_deref() != enclosing {
                        entry.insert("namespace".into(), ns.clone().unwrap_or_default().into());
                    }
                    let fields = vec![
                        self.field("key", key, ns.as_deref())?,
                        self.field("value", value, ns.as_deref())?,
                    ];
                    entry.insert("fields".into(), Json::Array(fields));
                    if internal {
                        entry.insert(CONNECT_INTERNAL_TYPE.into(), MAP_ENTRY.into());
                    }
                    base.insert("type".into(), "array".into());
                    base.insert("items".into(), Json::Object(entry));
                }
            }
            SchemaType::Struct => {
                let mut plain = schema.clone();
                plain.optional = false;
                if let Some((_, full)) = self.records.iter().find(|(s, _)| *s == plain) {
                    reference = Some(qualified(full, enclosing));
                } else {
                    let full = match &schema.name {
                        Some(name) => name.clone(),
                        None => format!("{NAMESPACE}.{}", self.default_name()),
                    };
                    if self.records.iter().any(|(_, f)| *f == full) {
                        return Err(schema_error(format!(
                            "two different struct schemas are named {full}; Avro needs distinct record names"
                        )));
                    }
                    self.records.push((plain, full.clone()));
                    let (name, ns) = split_name(&full);
                    base.insert("type".into(), "record".into());
                    base.insert("name".into(), name.into());
                    if ns.as_deref() != enclosing {
                        base.insert("namespace".into(), ns.clone().unwrap_or_default().into());
                    }
                    if let Some(doc) = &schema.doc {
                        base.insert("doc".into(), doc.clone().into());
                    }
                    let mut fields = Vec::with_capacity(schema.fields.len());
                    for field in &schema.fields {
                        fields.push(self.field(&field.name, &field.schema, ns.as_deref())?);
                    }
                    base.insert("fields".into(), Json::Array(fields));
                }
            }
        }
        let base = match reference {
            Some(name) => Json::String(name),
            None => {
                self.metadata(schema, &mut base)?;
                if base.len() == 1 && schema.kind.is_primitive() {
                    base.remove("type").unwrap_or(Json::Null)
                } else {
                    Json::Object(base)
                }
            }
        };
        if schema.optional && !ignore_optional {
            return Ok(if schema.default.is_some() {
                Json::Array(vec![base, "null".into()])
            } else {
                Json::Array(vec!["null".into(), base])
            });
        }
        Ok(base)
    }

    /// The `connect.*` properties and the Avro logical type, in `AvroData`'s order.
    fn metadata(&self, schema: &Schema, base: &mut Map<String, Json>) -> Result<(), ConvertError> {
        let logical_name = schema.name.as_deref().filter(|n| {
            [
                logical::DECIMAL,
                logical::DATE,
                logical::TIME,
                logical::TIMESTAMP,
            ]
            .contains(n)
        });
        if self.options.connect_meta_data {
            if let Some(doc) = &schema.doc {
                base.insert(CONNECT_DOC.into(), doc.clone().into());
            }
            // Java's logical schemas always carry version 1.
            let version = schema.version.or(logical_name.map(|_| 1));
            if let Some(version) = version {
                base.insert(CONNECT_VERSION.into(), version.into());
            }
            if !schema.parameters.is_empty() {
                let mut parameters = Map::new();
                // Decimal.builder puts `scale` first; the other parameters follow.
                if let Some(scale) = schema.parameters.get(logical::DECIMAL_SCALE) {
                    parameters.insert(logical::DECIMAL_SCALE.into(), scale.clone().into());
                }
                for (k, v) in &schema.parameters {
                    parameters
                        .entry(k.clone())
                        .or_insert_with(|| v.clone().into());
                }
                base.insert(CONNECT_PARAMETERS.into(), Json::Object(parameters));
            }
            if let Some(default) = &schema.default {
                base.insert(CONNECT_DEFAULT.into(), default_json(schema, default));
            }
            if let Some(name) = &schema.name {
                base.insert(CONNECT_NAME.into(), name.clone().into());
            }
        }
        match logical_name {
            Some(logical::DECIMAL) => {
                base.insert("logicalType".into(), "decimal".into());
            }
            Some(logical::TIME) => {
                base.insert("logicalType".into(), "time-millis".into());
            }
            Some(logical::TIMESTAMP) => {
                base.insert("logicalType".into(), "timestamp-millis".into());
            }
            Some(logical::DATE) => {
                base.insert("logicalType".into(), "date".into());
            }
            _ => {}
        }
        for (k, v) in &schema.parameters {
            if let Some(prop) = k.strip_prefix("avro.") {
                base.insert(prop.into(), v.clone().into());
            }
        }
        Ok(())
    }

    /// A record field as `addAvroRecordField` writes it: name, type, doc, default.
    fn field(
        &mut self,
        name: &str,
        schema: &Schema,
        enclosing: Option<&str>,
    ) -> Result<Json, ConvertError> {
        let mut field = Map::new();
        field.insert("name".into(), name.into());
        field.insert("type".into(), self.schema(schema, enclosing, false)?);
        if let Some(doc) = &schema.doc {
            field.insert("doc".into(), doc.clone().into());
        }
        match &schema.default {
            Some(default) => {
                field.insert("default".into(), default_json(schema, default));
            }
            None if schema.optional => {
                field.insert("default".into(), Json::Null);
            }
            None => {}
        }
        Ok(Json::Object(field))
    }
}

/// (precision, scale) of a Connect Decimal schema.
fn decimal_precision_scale(schema: &Schema) -> Result<(i64, i64), ConvertError> {
    let number = |key: &str, default: Option<i64>| match schema.parameters.get(key) {
        Some(text) => text.trim().parse::<i64>().map_err(|_| {
            schema_error(format!(
                "the decimal parameter {key} is {text:?}, not an integer"
            ))
        }),
        None => {
            default.ok_or_else(|| schema_error(format!("a decimal schema needs parameter {key}")))
        }
    };
    let scale = number(logical::DECIMAL_SCALE, None)?;
    let precision = number(PRECISION_PARAMETER, Some(DEFAULT_PRECISION))?;
    if scale < 0 || scale > precision {
        return Err(schema_error(format!(
            "decimal scale {scale} must be between 0 and the precision {precision}"
        )));
    }
    Ok((precision, scale))
}

/// A Connect default as Avro's JSON default: bytes as a string of code points 0-255.
fn default_json(schema: &Schema, value: &Value) -> Json {
    match value {
        Value::Null => Json::Null,
        Value::Boolean(b) => (*b).into(),
        Value::Int8(v) => (*v).into(),
        Value::Int16(v) => (*v).into(),
        Value::Int32(v) => (*v).into(),
        Value::Int64(v) => (*v).into(),
        Value::Float32(v) => v
            .to_string()
            .parse::<f64>()
            .ok()
            .and_then(serde_json::Number::from_f64)
            .map_or(Json::Null, Json::Number),
        Value::Float64(v) => serde_json::Number::from_f64(*v).map_or(Json::Null, Json::Number),
        Value::String(s) => s.clone().into(),
        Value::Bytes(b) => b.iter().map(|&c| char::from(c)).collect::<String>().into(),
        Value::Array(items) => {
            let item_schema = schema.key_or_items.as_deref();
            Json::Array(
                items
                    .iter()
                    .map(|v| item_schema.map_or(Json::Null, |s| default_json(s, v)))
                    .collect(),
            )
        }
        Value::Map(entries) => {
            let value_schema = schema.map_value.as_deref();
            let key_is_string = schema
                .key_or_items
                .as_deref()
                .is_some_and(|k| k.kind == SchemaType::String && !k.optional);
            if key_is_string {
                Json::Object(
                    entries
                        .iter()
                        .filter_map(|(k, v)| {
                            Some((
                                k.as_str()?.to_string(),
                                value_schema.map_or(Json::Null, |s| default_json(s, v)),
                            ))
                        })
                        .collect(),
                )
            } else {
                let key_schema = schema.key_or_items.as_deref();
                Json::Array(
                    entries
                        .iter()
                        .map(|(k, v)| {
                            Json::Array(vec![
                                key_schema.map_or(Json::Null, |s| default_json(s, k)),
                                value_schema.map_or(Json::Null, |s| default_json(s, v)),
                            ])
                        })
                        .collect(),
                )
            }
        }
        Value::Struct(s) => Json::Object(
            s.schema
                .fields
                .iter()
                .zip(&s.values)
                .map(|(f, v)| (f.name.clone(), default_json(&f.schema, v)))
                .collect(),
        ),
    }
}

// ---------------------------------------------------------------------------------------------
// Avro schema JSON -> parsed tree

/// A parsed Avro schema; named types referenced by name are expanded in place.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct AvroType {
    /// What the type is.
    pub kind: AvroKind,
    /// The schema's other properties (`logicalType`, `connect.*`, ...).
    pub props: Map<String, Json>,
}

/// The Avro types.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum AvroKind {
    Null,
    Boolean,
    Int,
    Long,
    Float,
    Double,
    Bytes,
    String,
    Record {
        name: String,
        doc: Option<String>,
        fields: Vec<AvroField>,
    },
    Enum {
        name: String,
        symbols: Vec<String>,
    },
    Array(Box<AvroType>),
    Map(Box<AvroType>),
    Union(Vec<AvroType>),
    Fixed {
        name: String,
        size: usize,
    },
}

/// A record's field.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct AvroField {
    pub name: String,
    pub doc: Option<String>,
    pub schema: AvroType,
    pub default: Option<Json>,
}

impl AvroType {
    fn new(kind: AvroKind) -> AvroType {
        AvroType {
            kind,
            props: Map::new(),
        }
    }

    fn prop_str(&self, key: &str) -> Option<&str> {
        self.props.get(key).and_then(Json::as_str)
    }

    /// The name a union branch of this type has as a field of a Connect union struct.
    fn branch_name(&self, enhanced: bool) -> String {
        let named = |full: &str| {
            if enhanced {
                full.to_string()
            } else {
                split_name(full).0
            }
        };
        match &self.kind {
            AvroKind::Null => "null".into(),
            AvroKind::Boolean => "boolean".into(),
            AvroKind::Int => "int".into(),
            AvroKind::Long => "long".into(),
            AvroKind::Float => "float".into(),
            AvroKind::Double => "double".into(),
            AvroKind::Bytes => "bytes".into(),
            AvroKind::String => "string".into(),
            AvroKind::Array(_) => "array".into(),
            AvroKind::Map(_) => "map".into(),
            AvroKind::Union(_) => "union".into(),
            AvroKind::Record { name, .. }
            | AvroKind::Enum { name, .. }
            | AvroKind::Fixed { name, .. } => named(name),
        }
    }
}

/// Parses an Avro schema's text, with the texts of the schemas it references (Confluent's
/// schema references) parsed first so their named types are known.
pub(crate) fn parse(text: &str, dependencies: &[&str]) -> Result<AvroType, ConvertError> {
    let mut parser = Parser {
        names: HashMap::new(),
        nodes: 0,
    };
    for dependency in dependencies {
        let json: Json = serde_json::from_str(dependency)
            .map_err(|e| schema_error(format!("a referenced schema is not JSON: {e}")))?;
        parser.parse(&json, None)?;
    }
    let json: Json = serde_json::from_str(text)
        .map_err(|e| schema_error(format!("the Avro schema is not JSON: {e}")))?;
    parser.parse(&json, None)
}

struct Parser {
    names: HashMap<String, (AvroType, usize)>,
    nodes: usize,
}

fn full_name(object: &Map<String, Json>, enclosing: Option<&str>) -> Result<String, ConvertError> {
    let name = object
        .get("name")
        .and_then(Json::as_str)
        .ok_or_else(|| schema_error("a named Avro type has no name"))?;
    if name.contains('.') {
        return Ok(name.to_string());
    }
    let ns = match object.get("namespace") {
        Some(Json::String(ns)) => Some(ns.as_str()),
        Some(_) => None,
        None => enclosing,
    };
    Ok(match ns {
        Some(ns) if !ns.is_empty() => format!("{ns}.{name}"),
        _ => name.to_string(),
    })
}

impl Parser {
    fn count(&mut self, nodes: usize) -> Result<(), ConvertError> {
        self.nodes += nodes;
        if self.nodes > MAX_NODES {
            return Err(schema_error(format!(
                "the Avro schema has more than {MAX_NODES} types with references expanded"
            )));
        }
        Ok(())
    }

    fn parse(&mut self, json: &Json, ns: Option<&str>) -> Result<AvroType, ConvertError> {
        self.count(1)?;
        let parsed = match json {
            Json::String(name) => match primitive(name) {
                Some(kind) => AvroType::new(kind),
                None => {
                    let candidates = [ns.map(|ns| format!("{ns}.{name}")), Some(name.clone())];
                    let found = candidates
                        .iter()
                        .flatten()
                        .find_map(|n| self.names.get(n))
                        .cloned();
                    match found {
                        Some((t, size)) => {
                            self.count(size)?;
                            t
                        }
                        None => {
                            return Err(schema_error(format!(
                                "unknown Avro type {name:?} (recursive types are not supported)"
                            )));
                        }
                    }
                }
            },
            Json::Array(branches) => {
                let mut parsed = Vec::with_capacity(branches.len());
                for b in branches {
                    parsed.push(self.parse(b, ns)?);
                }
                AvroType::new(AvroKind::Union(parsed))
            }
            Json::Object(object) => self.parse_object(object, ns)?,
            other => return Err(schema_error(format!("{other} is not an Avro schema"))),
        };
        Ok(parsed)
    }

    fn parse_object(
        &mut self,
        object: &Map<String, Json>,
        ns: Option<&str>,
    ) -> Result<AvroType, ConvertError> {
        let type_name = match object.get("type") {
            Some(Json::String(t)) => t.as_str(),
            Some(nested @ (Json::Object(_) | Json::Array(_))) => return self.parse(nested, ns),
            _ => return Err(schema_error("an Avro schema object has no type")),
        };
        let props = |skip: &[&str]| -> Map<String, Json> {
            object
                .iter()
                .filter(|(k, _)| !skip.contains(&k.as_str()) && k.as_str() != "type")
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect()
        };
        let start = self.nodes;
        let parsed = match type_name {
            "record" | "error" => {
                let full = full_name(object, ns)?;
                let inner_ns = full.rsplit_once('.').map(|(ns, _)| ns.to_string());
                let mut fields = Vec::new();
                for field in object
                    .get("fields")
                    .and_then(Json::as_array)
                    .ok_or_else(|| schema_error(format!("record {full} has no fields")))?
                {
                    let name = field
                        .get("name")
                        .and_then(Json::as_str)
                        .ok_or_else(|| schema_error(format!("a field of {full} has no name")))?;
                    let schema = field.get("type").ok_or_else(|| {
                        schema_error(format!("field {name} of {full} has no type"))
                    })?;
                    fields.push(AvroField {
                        name: name.to_string(),
                        doc: field.get("doc").and_then(Json::as_str).map(str::to_string),
                        schema: self.parse(schema, inner_ns.as_deref())?,
                        default: field.get("default").cloned(),
                    });
                }
                let t = AvroType {
                    kind: AvroKind::Record {
                        name: full.clone(),
                        doc: object.get("doc").and_then(Json::as_str).map(str::to_string),
                        fields,
                    },
                    props: props(&["name", "namespace", "doc", "fields", "aliases"]),
                };
                self.names.insert(full, (t.clone(), self.nodes - start));
                t
            }
            "enum" => {
                let full = full_name(object, ns)?;
                let symbols = object
                    .get("symbols")
                    .and_then(Json::as_array)
                    .ok_or_else(|| schema_error(format!("enum {full} has no symbols")))?
                    .iter()
                    .map(|s| s.as_str().map(str::to_string))
                    .collect::<Option<Vec<_>>>()
                    .ok_or_else(|| {
                        schema_error(format!("enum {full} has a symbol that is not a string"))
                    })?;
                let t = AvroType {
                    kind: AvroKind::Enum {
                        name: full.clone(),
                        symbols,
                    },
                    props: props(&["name", "namespace", "doc", "symbols", "aliases", "default"]),
                };
                self.names.insert(full, (t.clone(), 1));
                t
            }
            "fixed" => {
                let full = full_name(object, ns)?;
                let size = object
                    .get("size")
                    .and_then(Json::as_u64)
                    .and_then(|s| usize::try_from(s).ok())
                    .ok_or_else(|| schema_error(format!("fixed {full} has no size")))?;
                let t = AvroType {
                    kind: AvroKind::Fixed {
                        name: full.clone(),
                        size,
                    },
                    props: props(&["name", "namespace", "doc", "size", "aliases"]),
                };
                self.names.insert(full, (t.clone(), 1));
                t
            }
            "array" => {
                let items = object
                    .get("items")
                    .ok_or_else(|| schema_error("an array has no items"))?;
                AvroType {
                    kind: AvroKind::Array(Box::new(self.parse(items, ns)?)),
                    props: props(&["items"]),
                }
            }
            "map" => {
                let values = object
                    .get("values")
                    .ok_or_else(|| schema_error("a map has no values"))?;
                AvroType {
                    kind: AvroKind::Map(Box::new(self.parse(values, ns)?)),
                    props: props(&["values"]),
                }
            }
            name => match primitive(name) {
                Some(kind) => AvroType {
                    kind,
                    props: props(&[]),
                },
                None => {
                    // `{"type": "com.example.Named"}`: a reference with properties.
                    self.parse(&Json::String(name.to_string()), ns)?
                }
            },
        };
        Ok(parsed)
    }
}

fn primitive(name: &str) -> Option<AvroKind> {
    Some(match name {
        "null" => AvroKind::Null,
        "boolean" => AvroKind::Boolean,
        "int" => AvroKind::Int,
        "long" => AvroKind::Long,
        "float" => AvroKind::Float,
        "double" => AvroKind::Double,
        "bytes" => AvroKind::Bytes,
        "string" => AvroKind::String,
        _ => return None,
    })
}

// ---------------------------------------------------------------------------------------------
// Avro schema -> Connect schema

/// The Connect schema `AvroData.toConnectSchema` makes of `avro`.
pub(crate) fn to_connect_schema(
    avro: &AvroType,
    options: AvroOptions,
) -> Result<Schema, ConvertError> {
    to_connect(avro, options, None, None)
}

fn to_connect(
    avro: &AvroType,
    options: AvroOptions,
    field_doc: Option<&str>,
    field_default: Option<&Json>,
) -> Result<Schema, ConvertError> {
    let mut schema = match &avro.kind {
        AvroKind::Union(branches) => {
            let others: Vec<&AvroType> = branches
                .iter()
                .filter(|b| b.kind != AvroKind::Null)
                .collect();
            let nullable = others.len() < branches.len();
            if others.len() == 1 {
                // A null default belongs to the union; other defaults to its first branch.
                let default = field_default.filter(|d| !d.is_null());
                let mut inner = to_connect(others[0], options, field_doc, default)?;
                inner.optional = nullable;
                return Ok(inner);
            }
            if others.is_empty() {
                return Err(schema_error("a union of only null has no Connect schema"));
            }
            let mut fields = Vec::with_capacity(others.len());
            for branch in &others {
                let name = branch.branch_name(options.enhanced);
                let field_schema = to_connect(branch, options, None, None)?.into_optional();
                fields.push(Field {
                    name,
                    schema: field_schema,
                });
            }
            let mut union = Schema::new(SchemaType::Struct);
            union.name = Some(UNION.to_string());
            union.fields = fields;
            union.optional = nullable;
            return Ok(union);
        }
        AvroKind::Null => return Err(schema_error("Avro type null has no Connect schema")),
        AvroKind::Boolean => Schema::new(SchemaType::Boolean),
        AvroKind::Int => match (avro.prop_str("logicalType"), avro.prop_str(CONNECT_TYPE)) {
            (Some("date"), _) => logical_schema(SchemaType::Int32, logical::DATE),
            (Some("time-millis"), _) => logical_schema(SchemaType::Int32, logical::TIME),
            (_, Some("int8")) => Schema::new(SchemaType::Int8),
            (_, Some("int16")) => Schema::new(SchemaType::Int16),
            _ => Schema::new(SchemaType::Int32),
        },
        AvroKind::Long => match avro.prop_str("logicalType") {
            Some("timestamp-millis") => logical_schema(SchemaType::Int64, logical::TIMESTAMP),
            _ => Schema::new(SchemaType::Int64),
        },
        AvroKind::Float => Schema::new(SchemaType::Float32),
        AvroKind::Double => Schema::new(SchemaType::Float64),
        AvroKind::String => Schema::new(SchemaType::String),
        AvroKind::Bytes | AvroKind::Fixed { .. } => {
            if avro.prop_str("logicalType") == Some("decimal") {
                let scale = avro.props.get("scale").and_then(Json::as_i64).unwrap_or(0);
                let mut s = logical_schema(SchemaType::Bytes, logical::DECIMAL);
                s.parameters
                    .insert(logical::DECIMAL_SCALE.into(), scale.to_string());
                let precision = avro.props.get("precision").and_then(Json::as_i64);
                if let Some(precision) = precision.filter(|&p| p != DEFAULT_PRECISION) {
                    s.parameters
                        .insert(PRECISION_PARAMETER.into(), precision.to_string());
                }
                s
            } else if let AvroKind::Fixed { name, size } = &avro.kind {
                let mut s = Schema::new(SchemaType::Bytes);
                s.name = Some(name.clone());
                s.parameters
                    .insert(FIXED_SIZE_PARAMETER.into(), size.to_string());
                s
            } else {
                Schema::new(SchemaType::Bytes)
            }
        }
        AvroKind::Enum { name, symbols } => {
            let mut s = Schema::new(SchemaType::String);
            s.name = Some(name.clone());
            s.parameters.insert(ENUM.into(), name.clone());
            for symbol in symbols {
                s.parameters
                    .insert(format!("{ENUM}.{symbol}"), symbol.clone());
            }
            s
        }
        AvroKind::Array(items) => match map_entry(items) {
            Some((key, value)) => Schema::map(
                to_connect(
                    &key.schema,
                    options,
                    key.doc.as_deref(),
                    key.default.as_ref(),
                )?,
                to_connect(
                    &value.schema,
                    options,
                    value.doc.as_deref(),
                    value.default.as_ref(),
                )?,
            ),
            None => Schema::array(to_connect(items, options, None, None)?),
        },
        AvroKind::Map(values) => Schema::map(
            Schema::new(SchemaType::String),
            to_connect(values, options, None, None)?,
        ),
        AvroKind::Record { name, doc, fields } => {
            let mut s = Schema::new(SchemaType::Struct);
            if !name.starts_with(&format!("{NAMESPACE}.{DEFAULT_NAME}")) {
                s.name = Some(name.clone());
            }
            s.doc = doc.clone();
            for field in fields {
                s.fields.push(Field {
                    name: field.name.clone(),
                    schema: to_connect(
                        &field.schema,
                        options,
                        field.doc.as_deref(),
                        field.default.as_ref(),
                    )?,
                });
            }
            s
        }
    };
    if let Some(doc) = avro.prop_str(CONNECT_DOC).or(field_doc) {
        schema.doc = Some(doc.to_string());
    }
    if let Some(version) = avro.props.get(CONNECT_VERSION).and_then(Json::as_i64) {
        schema.version = i32::try_from(version).ok();
    }
    if let Some(Json::Object(parameters)) = avro.props.get(CONNECT_PARAMETERS) {
        for (k, v) in parameters {
            if let Some(v) = v.as_str() {
                schema.parameters.insert(k.clone(), v.to_string());
            }
        }
    }
    let default_prefix = format!("{NAMESPACE}.{DEFAULT_NAME}");
    if let Some(name) = avro
        .prop_str(CONNECT_NAME)
        .filter(|n| !n.starts_with(&default_prefix))
    {
        schema.name = Some(name.to_string());
    }
    let default = avro.props.get(CONNECT_DEFAULT).or(field_default);
    if let Some(default) = default.filter(|d| !d.is_null()) {
        schema.default = default_value(&schema, default).map(Box::new);
    }
    Ok(schema)
}

fn logical_schema(kind: SchemaType, name: &str) -> Schema {
    let mut s = Schema::new(kind);
    s.name = Some(name.to_string());
    s.version = Some(1);
    s
}

/// The `key` and `value` fields of a map entry record, when `items` is one.
fn map_entry(items: &AvroType) -> Option<(&AvroField, &AvroField)> {
    let AvroKind::Record { name, fields, .. } = &items.kind else {
        return None;
    };
    let is_entry = *name == format!("{NAMESPACE}.{MAP_ENTRY}")
        || items.prop_str(CONNECT_INTERNAL_TYPE) == Some(MAP_ENTRY);
    match fields.as_slice() {
        [key, value] if is_entry && key.name == "key" && value.name == "value" => {
            Some((key, value))
        }
        _ => None,
    }
}

/// A JSON default as a Connect value of `schema`; `None` when it does not fit (the schema
/// then has no default, as a bad default should not stop the data).
fn default_value(schema: &Schema, json: &Json) -> Option<Value> {
    Some(match schema.kind {
        SchemaType::Boolean => Value::Boolean(json.as_bool()?),
        SchemaType::Int8 => Value::Int8(i8::try_from(json.as_i64()?).ok()?),
        SchemaType::Int16 => Value::Int16(i16::try_from(json.as_i64()?).ok()?),
        SchemaType::Int32 => Value::Int32(i32::try_from(json.as_i64()?).ok()?),
        SchemaType::Int64 => Value::Int64(json.as_i64()?),
        SchemaType::Float32 => Value::Float32(json.as_f64()? as f32),
        SchemaType::Float64 => Value::Float64(json.as_f64()?),
        SchemaType::String => Value::String(json.as_str()?.to_string()),
        SchemaType::Bytes => {
            let text = json.as_str()?;
            let bytes = text
                .chars()
                .map(|c| u8::try_from(u32::from(c)).ok())
                .collect::<Option<Vec<u8>>>()?;
            Value::Bytes(Bytes::from(bytes))
        }
        SchemaType::Array => {
            let items = schema.key_or_items.as_deref()?;
            Value::Array(
                json.as_array()?
                    .iter()
                    .map(|j| default_value(items, j))
                    .collect::<Option<_>>()?,
            )
        }
        SchemaType::Map => {
            let values = schema.map_value.as_deref()?;
            Value::Map(
                json.as_object()?
                    .iter()
                    .map(|(k, v)| Some((Value::String(k.clone()), default_value(values, v)?)))
                    .collect::<Option<_>>()?,
            )
        }
        SchemaType::Struct => {
            let object = json.as_object()?;
            let mut s = Struct::new(schema.clone());
            for (i, field) in schema.fields.iter().enumerate() {
                s.values[i] = match object.get(&field.name) {
                    Some(v) if !v.is_null() => default_value(&field.schema, v)?,
                    _ => Value::Null,
                };
            }
            Value::Struct(s)
        }
    })
}

// ---------------------------------------------------------------------------------------------
// Binary decoding

/// Decodes an Avro binary payload of `avro` into a value of `schema` (what
/// [`to_connect_schema`] made of `avro`).
pub(crate) fn decode(
    payload: &[u8],
    avro: &AvroType,
    schema: &Arc<Schema>,
) -> Result<Value, ConvertError> {
    let mut reader = Reader {
        bytes: payload,
        pos: 0,
    };
    decode_value(&mut reader, avro, schema, Some(schema), &Path::Root)
}

/// Decodes `count` Avro datums of `avro` written one after another (a container file's block).
pub(crate) fn decode_many(
    payload: &[u8],
    count: usize,
    avro: &AvroType,
    schema: &Arc<Schema>,
) -> Result<Vec<Value>, ConvertError> {
    let mut reader = Reader {
        bytes: payload,
        pos: 0,
    };
    (0..count)
        .map(|_| decode_value(&mut reader, avro, schema, Some(schema), &Path::Root))
        .collect()
}

struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl Reader<'_> {
    fn error(&self, path: &Path<'_>, reason: impl Into<String>) -> ConvertError {
        value_error(path, format!("{} (at byte {})", reason.into(), self.pos))
    }

    fn remaining(&self) -> usize {
        self.bytes.len() - self.pos
    }

    fn take(&mut self, n: usize, path: &Path<'_>) -> Result<&[u8], ConvertError> {
        if n > self.remaining() {
            return Err(self.error(
                path,
                format!(
                    "the payload ends early: {n} bytes needed, {} left",
                    self.remaining()
                ),
            ));
        }
        let out = &self.bytes[self.pos..self.pos + n];
        self.pos += n;
        Ok(out)
    }

    fn long(&mut self, path: &Path<'_>) -> Result<i64, ConvertError> {
        let mut raw: u64 = 0;
        for shift in (0..70).step_by(7) {
            let byte = self.take(1, path)?[0];
            raw |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Ok(((raw >> 1) as i64) ^ -((raw & 1) as i64));
            }
        }
        Err(self.error(path, "a varint is longer than 10 bytes"))
    }

    fn int(&mut self, path: &Path<'_>) -> Result<i32, ConvertError> {
        let v = self.long(path)?;
        i32::try_from(v).map_err(|_| self.error(path, format!("{v} is out of range for an int")))
    }

    fn length(&mut self, path: &Path<'_>) -> Result<usize, ConvertError> {
        let n = self.long(path)?;
        usize::try_from(n).map_err(|_| self.error(path, format!("negative length {n}")))
    }

    /// The item count of the next array or map block (0 ends the array or map).
    fn block(&mut self, path: &Path<'_>, total: &mut u64) -> Result<u64, ConvertError> {
        let count = self.long(path)?;
        let count = if count < 0 {
            let _size = self.long(path)?;
            count.unsigned_abs()
        } else {
            count as u64
        };
        *total = total.saturating_add(count);
        if *total > self.remaining() as u64 + MAX_EMPTY_ITEMS {
            return Err(self.error(
                path,
                format!(
                    "{total} items claimed but only {} bytes left",
                    self.remaining()
                ),
            ));
        }
        Ok(count)
    }
}

/// `shared` is `schema` held by reference, when the caller has it so (the top-level schema):
/// a record decoded with it shares it rather than copying it.
fn decode_value(
    r: &mut Reader<'_>,
    avro: &AvroType,
    schema: &Schema,
    shared: Option<&Arc<Schema>>,
    path: &Path<'_>,
) -> Result<Value, ConvertError> {
    Ok(match &avro.kind {
        AvroKind::Null => Value::Null,
        AvroKind::Boolean => match r.take(1, path)?[0] {
            0 => Value::Boolean(false),
            1 => Value::Boolean(true),
            b => return Err(r.error(path, format!("boolean byte {b}"))),
        },
        AvroKind::Int => {
            let v = r.int(path)?;
            match schema.kind {
                SchemaType::Int8 => Value::Int8(
                    i8::try_from(v).map_err(|_| r.error(path, format!("{v} does not fit int8")))?,
                ),
                SchemaType::Int16 => Value::Int16(
                    i16::try_from(v)
                        .map_err(|_| r.error(path, format!("{v} does not fit int16")))?,
                ),
                _ => Value::Int32(v),
            }
        }
        AvroKind::Long => Value::Int64(r.long(path)?),
        AvroKind::Float => {
            let b = r.take(4, path)?;
            Value::Float32(f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        }
        AvroKind::Double => {
            let b = r.take(8, path)?;
            let mut a = [0u8; 8];
            a.copy_from_slice(b);
            Value::Float64(f64::from_le_bytes(a))
        }
        AvroKind::Bytes => {
            let n = r.length(path)?;
            Value::Bytes(Bytes::copy_from_slice(r.take(n, path)?))
        }
        AvroKind::Fixed { size, .. } => Value::Bytes(Bytes::copy_from_slice(r.take(*size, path)?)),
        AvroKind::String => {
            let n = r.length(path)?;
            let b = r.take(n, path)?;
            Value::String(
                std::str::from_utf8(b)
                    .map_err(|_| value_error(path, "a string is not UTF-8"))?
                    .to_string(),
            )
        }
        AvroKind::Enum { symbols, .. } => {
            let i = r.int(path)?;
            let symbol = usize::try_from(i)
                .ok()
                .and_then(|i| symbols.get(i))
                .ok_or_else(|| r.error(path, format!("enum index {i} is out of range")))?;
            Value::String(symbol.clone())
        }
        AvroKind::Record { fields, .. } => {
            if schema.fields.len() != fields.len() {
                return Err(value_error(
                    path,
                    "the Connect schema does not match the record",
                ));
            }
            let mut s = Struct::new(shared.map_or_else(|| Arc::new(schema.clone()), Arc::clone));
            for (i, (field, connect)) in fields.iter().zip(&schema.fields).enumerate() {
                let field_path = Path::Field(path, &field.name);
                s.values[i] = decode_value(r, &field.schema, &connect.schema, None, &field_path)?;
            }
            Value::Struct(s)
        }
        AvroKind::Array(items) => {
            let mut total = 0;
            if schema.kind == SchemaType::Map {
                let (key_schema, value_schema) = match (
                    schema.key_or_items.as_deref(),
                    schema.map_value.as_deref(),
                    map_entry(items),
                ) {
                    (Some(k), Some(v), Some((ka, va))) => ((k, &ka.schema), (v, &va.schema)),
                    _ => {
                        return Err(value_error(
                            path,
                            "a map's entries are not key/value records",
                        ));
                    }
                };
                let mut entries = Vec::new();
                loop {
                    let count = r.block(path, &mut total)?;
                    if count == 0 {
                        break;
                    }
                    for _ in 0..count {
                        let k = decode_value(r, key_schema.1, key_schema.0, None, path)?;
                        let v = decode_value(r, value_schema.1, value_schema.0, None, path)?;
                        entries.push((k, v));
                    }
                }
                Value::Map(entries)
            } else {
                let item_schema = schema
                    .key_or_items
                    .as_deref()
                    .ok_or_else(|| value_error(path, "an array schema has no item schema"))?;
                let mut out = Vec::new();
                loop {
                    let count = r.block(path, &mut total)?;
                    if count == 0 {
                        break;
                    }
                    for _ in 0..count {
                        let item_path = Path::Index(path, out.len());
                        out.push(decode_value(r, items, item_schema, None, &item_path)?);
                    }
                }
                Value::Array(out)
            }
        }
        AvroKind::Map(values) => {
            let value_schema = schema
                .map_value
                .as_deref()
                .ok_or_else(|| value_error(path, "a map schema has no value schema"))?;
            let mut total = 0;
            let mut entries = Vec::new();
            loop {
                let count = r.block(path, &mut total)?;
                if count == 0 {
                    break;
                }
                for _ in 0..count {
                    let n = r.length(path)?;
                    let key = std::str::from_utf8(r.take(n, path)?)
                        .map_err(|_| value_error(path, "a map key is not UTF-8"))?
                        .to_string();
                    let entry_path = Path::Field(path, &key);
                    let v = decode_value(r, values, value_schema, None, &entry_path)?;
                    entries.push((Value::String(key), v));
                }
            }
            Value::Map(entries)
        }
        AvroKind::Union(branches) => {
            let i = r.long(path)?;
            let branch = usize::try_from(i)
                .ok()
                .and_then(|i| branches.get(i))
                .ok_or_else(|| r.error(path, format!("union branch {i} is out of range")))?;
            if branch.kind == AvroKind::Null {
                return Ok(Value::Null);
            }
            if schema.kind == SchemaType::Struct && schema.name.as_deref() == Some(UNION) {
                let position = branches
                    .iter()
                    .filter(|b| b.kind != AvroKind::Null)
                    .position(|b| b == branch)
                    .unwrap_or(0);
                let field = schema
                    .fields
                    .get(position)
                    .ok_or_else(|| value_error(path, "the union struct has too few fields"))?;
                let v = decode_value(r, branch, &field.schema, None, path)?;
                let mut s = Struct::new(schema.clone());
                s.values[position] = v;
                Value::Struct(s)
            } else {
                decode_value(r, branch, schema, shared, path)?
            }
        }
    })
}

// ---------------------------------------------------------------------------------------------
// Binary encoding

/// Encodes a Connect value as Avro binary of `avro`.
pub(crate) fn encode(avro: &AvroType, value: &Value) -> Result<Vec<u8>, ConvertError> {
    let mut out = Vec::new();
    encode_value(&mut out, avro, value, &Path::Root)?;
    Ok(out)
}

fn write_long(out: &mut Vec<u8>, v: i64) {
    let mut raw = ((v << 1) ^ (v >> 63)) as u64;
    loop {
        if raw < 0x80 {
            out.push(raw as u8);
            return;
        }
        out.push((raw as u8 & 0x7f) | 0x80);
        raw >>= 7;
    }
}

fn write_bytes(out: &mut Vec<u8>, b: &[u8]) {
    write_long(out, b.len() as i64);
    out.extend_from_slice(b);
}

fn value_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Boolean(_) => "boolean",
        Value::Int8(_) => "int8",
        Value::Int16(_) => "int16",
        Value::Int32(_) => "int32",
        Value::Int64(_) => "int64",
        Value::Float32(_) => "float32",
        Value::Float64(_) => "float64",
        Value::String(_) => "string",
        Value::Bytes(_) => "bytes",
        Value::Array(_) => "array",
        Value::Map(_) => "map",
        Value::Struct(_) => "struct",
    }
}

/// Whether `value` can be written as `avro` (to choose a union branch).
fn fits(avro: &AvroType, value: &Value) -> bool {
    match (&avro.kind, value) {
        (AvroKind::Null, Value::Null) => true,
        (AvroKind::Boolean, Value::Boolean(_)) => true,
        (AvroKind::Int, Value::Int8(_) | Value::Int16(_) | Value::Int32(_)) => true,
        (AvroKind::Long, Value::Int64(_)) => true,
        (AvroKind::Float, Value::Float32(_)) => true,
        (AvroKind::Double, Value::Float64(_)) => true,
        (AvroKind::String | AvroKind::Enum { .. }, Value::String(_)) => true,
        (AvroKind::Bytes, Value::Bytes(_)) => true,
        (AvroKind::Fixed { size, .. }, Value::Bytes(b)) => b.len() == *size,
        (AvroKind::Record { name, .. }, Value::Struct(s)) => {
            s.schema.name.as_ref().is_none_or(|n| n == name)
        }
        (AvroKind::Array(items), Value::Map(_)) => map_entry(items).is_some(),
        (AvroKind::Array(_), Value::Array(_)) => true,
        (AvroKind::Map(_), Value::Map(_)) => true,
        _ => false,
    }
}

fn encode_value(
    out: &mut Vec<u8>,
    avro: &AvroType,
    value: &Value,
    path: &Path<'_>,
) -> Result<(), ConvertError> {
    let mismatch = || {
        value_error(
            path,
            format!(
                "a {} value does not fit Avro type {}",
                value_type(value),
                avro.branch_name(true)
            ),
        )
    };
    match (&avro.kind, value) {
        (AvroKind::Null, Value::Null) => {}
        (AvroKind::Boolean, Value::Boolean(b)) => out.push(u8::from(*b)),
        (AvroKind::Int, Value::Int8(_) | Value::Int16(_) | Value::Int32(_)) => {
            write_long(out, value.as_i64().unwrap_or_default());
        }
        (AvroKind::Long, Value::Int8(_) | Value::Int16(_) | Value::Int32(_) | Value::Int64(_)) => {
            write_long(out, value.as_i64().unwrap_or_default());
        }
        (AvroKind::Float, Value::Float32(v)) => out.extend_from_slice(&v.to_le_bytes()),
        (AvroKind::Float, Value::Float64(v)) => out.extend_from_slice(&(*v as f32).to_le_bytes()),
        (AvroKind::Double, Value::Float64(v)) => out.extend_from_slice(&v.to_le_bytes()),
        (AvroKind::Double, Value::Float32(v)) => {
            out.extend_from_slice(&f64::from(*v).to_le_bytes())
        }
        (AvroKind::String, Value::String(s)) => write_bytes(out, s.as_bytes()),
        (AvroKind::Bytes, Value::Bytes(b)) => write_bytes(out, b),
        (AvroKind::Fixed { size, .. }, Value::Bytes(b)) => {
            if b.len() != *size {
                return Err(value_error(
                    path,
                    format!("{} bytes do not fit fixed size {size}", b.len()),
                ));
            }
            out.extend_from_slice(b);
        }
        (AvroKind::Enum { symbols, name }, Value::String(s)) => {
            let i = symbols.iter().position(|x| x == s).ok_or_else(|| {
                value_error(path, format!("{s:?} is not a symbol of enum {name}"))
            })?;
            write_long(out, i as i64);
        }
        (AvroKind::Record { fields, .. }, Value::Struct(s)) => {
            for field in fields {
                let field_path = Path::Field(path, &field.name);
                let v = s.get(&field.name).unwrap_or(&Value::Null);
                encode_value(out, &field.schema, v, &field_path)?;
            }
        }
        (AvroKind::Array(items), Value::Array(values)) => {
            if !values.is_empty() {
                write_long(out, values.len() as i64);
                for (i, v) in values.iter().enumerate() {
                    encode_value(out, items, v, &Path::Index(path, i))?;
                }
            }
            out.push(0);
        }
        (AvroKind::Array(items), Value::Map(entries)) => {
            let (key, val) = map_entry(items).ok_or_else(mismatch)?;
            if !entries.is_empty() {
                write_long(out, entries.len() as i64);
                for (i, (k, v)) in entries.iter().enumerate() {
                    let entry_path = Path::Index(path, i);
                    encode_value(out, &key.schema, k, &entry_path)?;
                    encode_value(out, &val.schema, v, &entry_path)?;
                }
            }
            out.push(0);
        }
        (AvroKind::Map(values), Value::Map(entries)) => {
            if !entries.is_empty() {
                write_long(out, entries.len() as i64);
                for (k, v) in entries {
                    let key = k
                        .as_str()
                        .ok_or_else(|| value_error(path, "an Avro map needs string keys"))?;
                    write_bytes(out, key.as_bytes());
                    encode_value(out, values, v, &Path::Field(path, key))?;
                }
            }
            out.push(0);
        }
        (AvroKind::Union(branches), _) => {
            let chosen = match value {
                Value::Null => branches.iter().position(|b| b.kind == AvroKind::Null),
                Value::Struct(s) if s.schema.name.as_deref() == Some(UNION) => {
                    // The one field set names the branch.
                    let set = s.iter().find(|(_, v)| !v.is_null());
                    match set {
                        None => branches.iter().position(|b| b.kind == AvroKind::Null),
                        Some((name, inner)) => {
                            let i = branches.iter().position(|b| {
                                b.branch_name(false) == name || b.branch_name(true) == name
                            });
                            if let Some(i) = i {
                                write_long(out, i as i64);
                                return encode_value(out, &branches[i], inner, path);
                            }
                            None
                        }
                    }
                }
                _ => branches.iter().position(|b| fits(b, value)),
            };
            let i = chosen.ok_or_else(|| {
                value_error(
                    path,
                    format!("a {} value fits no branch of the union", value_type(value)),
                )
            })?;
            write_long(out, i as i64);
            encode_value(out, &branches[i], value, path)?;
        }
        _ => return Err(mismatch()),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decimal(scale: i32, precision: Option<i32>) -> Schema {
        let mut s = Schema::new(SchemaType::Bytes).with_name(logical::DECIMAL);
        s.version = Some(1);
        s.parameters
            .insert(logical::DECIMAL_SCALE.into(), scale.to_string());
        if let Some(p) = precision {
            s.parameters
                .insert(PRECISION_PARAMETER.into(), p.to_string());
        }
        s
    }

    fn timestamp() -> Schema {
        let mut s = Schema::new(SchemaType::Int64).with_name(logical::TIMESTAMP);
        s.version = Some(1);
        s
    }

    fn order_schema() -> Schema {
        Schema::structure(
            Some("com.example.Order"),
            vec![
                ("id", Schema::new(SchemaType::Int64)),
                ("note", Schema::optional(SchemaType::String)),
                ("qty", Schema::new(SchemaType::Int16)),
                ("price", decimal(2, Some(10))),
                ("at", timestamp()),
                ("tags", Schema::array(Schema::new(SchemaType::String))),
                (
                    "attrs",
                    Schema::map(
                        Schema::new(SchemaType::String),
                        Schema::optional(SchemaType::Int32),
                    ),
                ),
                (
                    "counts",
                    Schema::map(
                        Schema::new(SchemaType::Int32),
                        Schema::new(SchemaType::Int64),
                    ),
                ),
                (
                    "inner",
                    Schema::structure(None, vec![("x", Schema::new(SchemaType::Boolean))])
                        .into_optional(),
                ),
            ],
        )
    }

    /// The schema as Confluent's AvroData writes it (Avro's `Schema.toString()`).
    const ORDER_AVRO: &str = concat!(
        r#"{"type":"record","name":"Order","namespace":"com.example","fields":["#,
        r#"{"name":"id","type":"long"},"#,
        r#"{"name":"note","type":["null","string"],"default":null},"#,
        r#"{"name":"qty","type":{"type":"int","connect.type":"int16"}},"#,
        r#"{"name":"price","type":{"type":"bytes","scale":2,"precision":10,"connect.version":1,"connect.parameters":{"scale":"2","connect.decimal.precision":"10"},"connect.name":"org.apache.kafka.connect.data.Decimal","logicalType":"decimal"}},"#,
        r#"{"name":"at","type":{"type":"long","connect.version":1,"connect.name":"org.apache.kafka.connect.data.Timestamp","logicalType":"timestamp-millis"}},"#,
        r#"{"name":"tags","type":{"type":"array","items":"string"}},"#,
        r#"{"name":"attrs","type":{"type":"map","values":["null","int"]}},"#,
        r#"{"name":"counts","type":{"type":"array","items":{"type":"record","name":"MapEntry","namespace":"io.confluent.connect.avro","fields":[{"name":"key","type":"int"},{"name":"value","type":"long"}]}}},"#,
        r#"{"name":"inner","type":["null",{"type":"record","name":"ConnectDefault","namespace":"io.confluent.connect.avro","fields":[{"name":"x","type":"boolean"}]}],"default":null}"#,
        r#"],"connect.name":"com.example.Order"}"#
    );

    #[test]
    fn struct_schema_is_written_as_avro_data_writes_it() {
        let json = from_connect_schema(&order_schema(), AvroOptions::default()).expect("maps");
        assert_eq!(schema_text(&json), ORDER_AVRO);
        assert_eq!(record_name(&json).as_deref(), Some("com.example.Order"));
    }

    #[test]
    fn primitives_and_optional_top_level() {
        let text = |s: &Schema| {
            schema_text(&from_connect_schema(s, AvroOptions::default()).expect("maps"))
        };
        assert_eq!(text(&Schema::new(SchemaType::String)), r#""string""#);
        assert_eq!(
            text(&Schema::optional(SchemaType::String)),
            r#"["null","string"]"#
        );
        assert_eq!(
            text(&Schema::new(SchemaType::Int8)),
            r#"{"type":"int","connect.type":"int8"}"#
        );
        let mut date = Schema::new(SchemaType::Int32).with_name(logical::DATE);
        date.version = Some(1);
        assert_eq!(
            text(&date),
            r#"{"type":"int","connect.version":1,"connect.name":"org.apache.kafka.connect.data.Date","logicalType":"date"}"#
        );
        // An unnamed struct nested twice is one record, referenced by name the second time.
        let inner =
            Schema::structure(None, vec![("v", Schema::new(SchemaType::Int64))]).into_optional();
        let outer = Schema::structure(
            None,
            vec![("s", inner.clone()), ("a", Schema::array(inner))],
        );
        assert_eq!(
            text(&outer),
            concat!(
                r#"{"type":"record","name":"ConnectDefault","namespace":"io.confluent.connect.avro","fields":["#,
                r#"{"name":"s","type":["null",{"type":"record","name":"ConnectDefault2","fields":[{"name":"v","type":"long"}]}],"default":null},"#,
                r#"{"name":"a","type":{"type":"array","items":["null","ConnectDefault2"]}}]}"#
            )
        );
        let no_meta = AvroOptions {
            connect_meta_data: false,
            enhanced: false,
        };
        assert_eq!(
            schema_text(&from_connect_schema(&timestamp(), no_meta).expect("maps")),
            r#"{"type":"long","logicalType":"timestamp-millis"}"#
        );
    }

    fn order_value() -> Value {
        let schema = order_schema();
        let inner_schema = schema.field("inner").expect("field").schema.clone();
        let mut inner = Struct::new(inner_schema);
        inner.put("x", Value::Boolean(true));
        let mut s = Struct::new(schema);
        s.put("id", Value::Int64(-3));
        s.put("note", Value::String("hi".into()));
        s.put("qty", Value::Int16(7));
        s.put("price", Value::Bytes(Bytes::from_static(&[0x00, 0x9c])));
        s.put("at", Value::Int64(1_700_000_000_000));
        s.put("tags", Value::Array(vec![Value::String("a".into())]));
        s.put(
            "attrs",
            Value::Map(vec![(Value::String("k".into()), Value::Null)]),
        );
        s.put(
            "counts",
            Value::Map(vec![(Value::Int32(1), Value::Int64(2))]),
        );
        s.put("inner", Value::Struct(inner));
        Value::Struct(s)
    }

    #[test]
    fn values_round_trip_through_the_registered_schema() {
        let avro = parse(ORDER_AVRO, &[]).expect("parses");
        let bytes = encode(&avro, &order_value()).expect("encodes");
        // id -3, note branch 1 "hi", qty 7, price 2 bytes, ...
        assert_eq!(&bytes[..6], &[0x05, 0x02, 0x04, b'h', b'i', 0x0e]);
        let schema = to_connect_schema(&avro, AvroOptions::default()).expect("maps back");
        assert_eq!(schema, order_schema());
        let value = decode(&bytes, &avro, &std::sync::Arc::new(schema.clone())).expect("decodes");
        assert_eq!(value, order_value());
    }

    #[test]
    fn foreign_schemas_read_as_avro_data_reads_them() {
        let avro = parse(
            r#"{"type":"record","name":"User","namespace":"app","fields":[
                {"name":"name","type":["null","string"],"default":null},
                {"name":"n","type":"long"},
                {"name":"kind","type":{"type":"enum","name":"Kind","symbols":["A","B"]}},
                {"name":"either","type":["int","string"]},
                {"name":"day","type":{"type":"int","logicalType":"date"}}]}"#,
            &[],
        )
        .expect("parses");
        let schema = to_connect_schema(&avro, AvroOptions::default()).expect("maps");
        assert_eq!(schema.name.as_deref(), Some("app.User"));
        assert!(schema.fields[0].schema.optional);
        assert_eq!(schema.fields[2].schema.kind, SchemaType::String);
        assert_eq!(schema.fields[3].schema.name.as_deref(), Some(UNION));
        assert!(schema.fields[4].schema.is_logical(logical::DATE));
        // name null, n 5, kind B, either branch 1 "x", day 3
        let payload = [0x00, 0x0a, 0x02, 0x02, 0x02, b'x', 0x06];
        let value = decode(&payload, &avro, &std::sync::Arc::new(schema.clone())).expect("decodes");
        assert_eq!(value.get("name"), Some(&Value::Null));
        assert_eq!(value.get("n"), Some(&Value::Int64(5)));
        assert_eq!(value.get("kind"), Some(&Value::String("B".into())));
        assert_eq!(
            value.get("either").and_then(|e| e.get("string")),
            Some(&Value::String("x".into()))
        );
        // Writing the union struct back picks the same branch.
        assert_eq!(encode(&avro, &value).expect("encodes"), payload);
    }

    #[test]
    fn hostile_payloads_are_errors() {
        let avro = parse(r#"{"type":"array","items":"null"}"#, &[]).expect("parses");
        let schema = to_connect_schema(&avro, AvroOptions::default());
        assert!(schema.is_err(), "an array of null has no Connect schema");
        let avro = parse(r#"{"type":"array","items":"long"}"#, &[]).expect("parses");
        let schema = to_connect_schema(&avro, AvroOptions::default()).expect("maps");
        // A block claiming 2^62 items.
        let mut payload = Vec::new();
        write_long(&mut payload, 1 << 62);
        assert!(decode(&payload, &avro, &std::sync::Arc::new(schema.clone())).is_err());
        assert!(decode(&[0x80; 20], &avro, &std::sync::Arc::new(schema.clone())).is_err());
        let avro = parse(r#""string""#, &[]).expect("parses");
        let schema = to_connect_schema(&avro, AvroOptions::default()).expect("maps");
        assert!(decode(&[0x7e, b'a'], &avro, &std::sync::Arc::new(schema.clone())).is_err());
        assert!(
            parse(
                r#"{"type":"record","name":"R","fields":[{"name":"r","type":"R"}]}"#,
                &[]
            )
            .is_err()
        );
    }
}
