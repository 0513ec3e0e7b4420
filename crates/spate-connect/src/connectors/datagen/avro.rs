//! The Avro schemas datagen generates from, with Avro Random Generator's `arg.properties` hints,
//! turned into Connect schemas (as Confluent's `AvroData` names them: a record `users` in
//! namespace `ksql` is the struct `ksql.users`) and into random values of those schemas.
//!
//! Hints honoured, as Avro Random Generator reads them: `options` (a value picked from a list,
//! at any level, whole records included), `iteration` (`start`, `step` (1), `restart`: the value
//! for generation `n` is `start + n * step`, wrapping before `restart`), `range` (`min`
//! inclusive, `max` exclusive, for numbers), `regex` (strings, see `regex_gen`), `length`
//! (a number or `{min, max}`, for strings, bytes, arrays and maps), `keys` (hints for a map's
//! keys) and `odds` (of `true`, for booleans). Pure: no I/O; the caller brings the random
//! source.

use std::collections::BTreeMap;

use bytes::Bytes;
use rand::RngExt;
use serde_json::Value as Json;

use super::regex_gen::RegexGen;
use crate::data::{Field, Schema, SchemaType, Struct, Value, logical};

/// Connect's struct name for an Avro union of several non-null types (`AvroData`'s).
const UNION_NAME: &str = "io.confluent.connect.avro.Union";
/// Default length of strings, bytes, arrays and maps without a `length` hint: `min..max`.
const DEFAULT_LENGTH: (u64, u64) = (0, 8);
/// Nesting depth past which a schema is refused (recursive or absurd schemas).
const MAX_DEPTH: usize = 32;

/// An Avro type with its generation hints.
#[derive(Debug, Clone)]
pub struct Node {
    kind: Kind,
    hints: Hints,
    logical_type: Option<String>,
    doc: Option<String>,
}

#[derive(Debug, Clone)]
enum Kind {
    Null,
    Boolean,
    Int,
    Long,
    Float,
    Double,
    Bytes,
    String,
    Record {
        full_name: String,
        fields: Vec<(String, Node)>,
    },
    Enum {
        full_name: String,
        symbols: Vec<String>,
    },
    Fixed {
        full_name: String,
        size: usize,
    },
    Array(Box<Node>),
    Map(Box<Node>),
    Union(Vec<Node>),
}

#[derive(Debug, Clone, Default)]
struct Hints {
    options: Option<Vec<Json>>,
    iteration: Option<Iteration>,
    range: Option<(Option<f64>, Option<f64>)>,
    regex: Option<RegexGen>,
    length: Option<(u64, u64)>,
    keys: Option<Box<Hints>>,
    odds: Option<f64>,
}

#[derive(Debug, Clone, Copy)]
struct Iteration {
    start: f64,
    step: f64,
    restart: Option<f64>,
}

/// Parses an Avro schema (JSON text) whose top level is a record.
pub fn parse(text: &str) -> Result<Node, String> {
    let json: Json = serde_json::from_str(text).map_err(|e| format!("not JSON: {e}"))?;
    let mut names = BTreeMap::new();
    let node = parse_node(&json, None, &mut names, 0)?;
    if !matches!(node.kind, Kind::Record { .. }) {
        return Err("the top level of the schema must be an Avro record".to_string());
    }
    Ok(node)
}

fn parse_node(
    json: &Json,
    namespace: Option<&str>,
    names: &mut BTreeMap<String, Option<Node>>,
    depth: usize,
) -> Result<Node, String> {
    if depth > MAX_DEPTH {
        return Err(format!("the schema nests deeper than {MAX_DEPTH} levels"));
    }
    let plain = |kind| Node {
        kind,
        hints: Hints::default(),
        logical_type: None,
        doc: None,
    };
    match json {
        Json::String(name) => match primitive(name) {
            Some(kind) => Ok(plain(kind)),
            None => {
                let full = full_name(name, namespace);
                match names.get(&full).or_else(|| names.get(name.as_str())) {
                    Some(Some(node)) => Ok(node.clone()),
                    Some(None) => Err(format!("recursive type {full} is not supported")),
                    None => Err(format!("unknown type {name}")),
                }
            }
        },
        Json::Array(branches) => {
            let branches = branches
                .iter()
                .map(|b| parse_node(b, namespace, names, depth + 1))
                .collect::<Result<Vec<_>, _>>()?;
            if branches.is_empty() {
                return Err("a union needs at least one type".to_string());
            }
            Ok(plain(Kind::Union(branches)))
        }
        Json::Object(object) => {
            let Some(type_json) = object.get("type") else {
                return Err("a schema object needs a \"type\"".to_string());
            };
            let hints = match object.get("arg.properties") {
                Some(props) => parse_hints(props)?,
                None => Hints::default(),
            };
            let logical_type = object
                .get("logicalType")
                .and_then(Json::as_str)
                .map(str::to_string);
            let doc = object.get("doc").and_then(Json::as_str).map(str::to_string);
            let type_name = type_json.as_str();
            let kind = match type_name {
                Some("record" | "error") => {
                    let (full, ns) = named(object, namespace)?;
                    names.insert(full.clone(), None);
                    let fields_json = object
                        .get("fields")
                        .and_then(Json::as_array)
                        .ok_or_else(|| format!("record {full} needs a \"fields\" array"))?;
                    let mut fields = Vec::with_capacity(fields_json.len());
                    for field in fields_json {
                        let name = field
                            .get("name")
                            .and_then(Json::as_str)
                            .ok_or_else(|| format!("a field of {full} has no name"))?;
                        let type_json = field
                            .get("type")
                            .ok_or_else(|| format!("field {name} of {full} has no type"))?;
                        let mut node = parse_node(type_json, ns.as_deref(), names, depth + 1)?;
                        if node.doc.is_none() {
                            node.doc = field.get("doc").and_then(Json::as_str).map(str::to_string);
                        }
                        fields.push((name.to_string(), node));
                    }
                    let kind = Kind::Record {
                        full_name: full.clone(),
                        fields,
                    };
                    let node = Node {
                        kind: kind.clone(),
                        hints: hints.clone(),
                        logical_type: None,
                        doc: doc.clone(),
                    };
                    names.insert(full, Some(node));
                    kind
                }
                Some("enum") => {
                    let (full, _) = named(object, namespace)?;
                    let symbols: Vec<String> = object
                        .get("symbols")
                        .and_then(Json::as_array)
                        .map(|s| {
                            s.iter()
                                .filter_map(Json::as_str)
                                .map(str::to_string)
                                .collect()
                        })
                        .unwrap_or_default();
                    if symbols.is_empty() {
                        return Err(format!("enum {full} needs symbols"));
                    }
                    let kind = Kind::Enum {
                        full_name: full.clone(),
                        symbols,
                    };
                    names.insert(full, Some(plain(kind.clone())));
                    kind
                }
                Some("fixed") => {
                    let (full, _) = named(object, namespace)?;
                    let size = object
                        .get("size")
                        .and_then(Json::as_u64)
                        .and_then(|s| usize::try_from(s).ok())
                        .ok_or_else(|| format!("fixed {full} needs a size"))?;
                    let kind = Kind::Fixed {
                        full_name: full.clone(),
                        size,
                    };
                    names.insert(full, Some(plain(kind.clone())));
                    kind
                }
                Some("array") => Kind::Array(Box::new(parse_node(
                    object.get("items").ok_or("an array needs \"items\"")?,
                    namespace,
                    names,
                    depth + 1,
                )?)),
                Some("map") => Kind::Map(Box::new(parse_node(
                    object.get("values").ok_or("a map needs \"values\"")?,
                    namespace,
                    names,
                    depth + 1,
                )?)),
                _ => {
                    // `{"type": "string", ...}`, `{"type": {...}}` or a named type's name.
                    let mut inner = parse_node(type_json, namespace, names, depth + 1)?;
                    if object.contains_key("arg.properties") {
                        inner.hints = hints;
                    }
                    if logical_type.is_some() {
                        inner.logical_type = logical_type;
                    }
                    if doc.is_some() {
                        inner.doc = doc;
                    }
                    return Ok(inner);
                }
            };
            Ok(Node {
                kind,
                hints,
                logical_type,
                doc,
            })
        }
        other => Err(format!("{other} is not an Avro schema")),
    }
}

fn primitive(name: &str) -> Option<Kind> {
    Some(match name {
        "null" => Kind::Null,
        "boolean" => Kind::Boolean,
        "int" => Kind::Int,
        "long" => Kind::Long,
        "float" => Kind::Float,
        "double" => Kind::Double,
        "bytes" => Kind::Bytes,
        "string" => Kind::String,
        _ => return None,
    })
}

fn full_name(name: &str, namespace: Option<&str>) -> String {
    match namespace {
        Some(ns) if !ns.is_empty() && !name.contains('.') => format!("{ns}.{name}"),
        _ => name.to_string(),
    }
}

/// The full name of a named type and the namespace its children inherit.
fn named(
    object: &serde_json::Map<String, Json>,
    namespace: Option<&str>,
) -> Result<(String, Option<String>), String> {
    let name = object
        .get("name")
        .and_then(Json::as_str)
        .ok_or("a record, enum or fixed needs a \"name\"")?;
    let namespace = object.get("namespace").and_then(Json::as_str).or(namespace);
    let full = full_name(name, namespace);
    let inherited = full.rsplit_once('.').map(|(ns, _)| ns.to_string());
    Ok((full, inherited))
}

fn parse_hints(json: &Json) -> Result<Hints, String> {
    let Some(object) = json.as_object() else {
        return Err("\"arg.properties\" must be an object".to_string());
    };
    let mut hints = Hints::default();
    if let Some(options) = object.get("options") {
        match options.as_array() {
            Some(list) if !list.is_empty() => hints.options = Some(list.clone()),
            _ => return Err("\"options\" must be a non-empty array".to_string()),
        }
    }
    if let Some(iteration) = object.get("iteration") {
        let start = iteration
            .get("start")
            .and_then(Json::as_f64)
            .ok_or("\"iteration\" needs a numeric \"start\"")?;
        let step = iteration.get("step").and_then(Json::as_f64).unwrap_or(1.0);
        let restart = iteration.get("restart").and_then(Json::as_f64);
        hints.iteration = Some(Iteration {
            start,
            step,
            restart,
        });
    }
    if let Some(range) = object.get("range") {
        let min = range.get("min").and_then(Json::as_f64);
        let max = range.get("max").and_then(Json::as_f64);
        if let (Some(min), Some(max)) = (min, max)
            && min > max
        {
            return Err(format!("\"range\" has min {min} above max {max}"));
        }
        hints.range = Some((min, max));
    }
    if let Some(regex) = object.get("regex") {
        let pattern = regex.as_str().ok_or("\"regex\" must be a string")?;
        hints.regex =
            Some(RegexGen::new(pattern).map_err(|e| format!("bad \"regex\" {pattern}: {e}"))?);
    }
    if let Some(length) = object.get("length") {
        hints.length = Some(match length {
            Json::Number(n) => {
                let n = n
                    .as_u64()
                    .ok_or("\"length\" must be a non-negative integer")?;
                (n, n + 1)
            }
            _ => {
                let min = length.get("min").and_then(Json::as_u64).unwrap_or(0);
                let max = length
                    .get("max")
                    .and_then(Json::as_u64)
                    .unwrap_or(min + DEFAULT_LENGTH.1);
                (min, max.max(min + 1))
            }
        });
    }
    if let Some(keys) = object.get("keys") {
        hints.keys = Some(Box::new(parse_hints(keys)?));
    }
    hints.odds = object.get("odds").and_then(Json::as_f64);
    Ok(hints)
}

impl Node {
    /// The Connect schema of values of this type.
    pub fn connect_schema(&self) -> Schema {
        let mut schema = match &self.kind {
            Kind::Null => Schema::optional(SchemaType::String),
            Kind::Boolean => Schema::new(SchemaType::Boolean),
            Kind::Int => match self.logical_type.as_deref() {
                Some("date") => Schema::new(SchemaType::Int32).with_name(logical::DATE),
                Some("time-millis") => Schema::new(SchemaType::Int32).with_name(logical::TIME),
                _ => Schema::new(SchemaType::Int32),
            },
            Kind::Long => match self.logical_type.as_deref() {
                Some("timestamp-millis") => {
                    Schema::new(SchemaType::Int64).with_name(logical::TIMESTAMP)
                }
                _ => Schema::new(SchemaType::Int64),
            },
            Kind::Float => Schema::new(SchemaType::Float32),
            Kind::Double => Schema::new(SchemaType::Float64),
            Kind::Bytes => Schema::new(SchemaType::Bytes),
            Kind::String => Schema::new(SchemaType::String),
            Kind::Record { full_name, fields } => Schema {
                name: Some(full_name.clone()),
                fields: fields
                    .iter()
                    .map(|(name, node)| Field {
                        name: name.clone(),
                        schema: node.connect_schema(),
                    })
                    .collect(),
                ..Schema::new(SchemaType::Struct)
            },
            Kind::Enum { full_name, symbols } => {
                let mut schema = Schema::new(SchemaType::String).with_name(full_name);
                let key = "io.confluent.connect.avro.Enum";
                schema.parameters.insert(key.to_string(), full_name.clone());
                for symbol in symbols {
                    schema
                        .parameters
                        .insert(format!("{key}.{symbol}"), symbol.clone());
                }
                schema
            }
            Kind::Fixed { full_name, size } => {
                let mut schema = Schema::new(SchemaType::Bytes).with_name(full_name);
                schema
                    .parameters
                    .insert("connect.fixed.size".to_string(), size.to_string());
                schema
            }
            Kind::Array(items) => Schema::array(items.connect_schema()),
            Kind::Map(values) => {
                Schema::map(Schema::new(SchemaType::String), values.connect_schema())
            }
            Kind::Union(branches) => {
                let nullable = branches.iter().any(|b| matches!(b.kind, Kind::Null));
                let others: Vec<&Node> = branches
                    .iter()
                    .filter(|b| !matches!(b.kind, Kind::Null))
                    .collect();
                match others.as_slice() {
                    [] => Schema::optional(SchemaType::String),
                    [only] => {
                        let mut schema = only.connect_schema();
                        schema.optional = nullable;
                        schema
                    }
                    many => Schema {
                        name: Some(UNION_NAME.to_string()),
                        optional: nullable,
                        fields: many
                            .iter()
                            .map(|b| Field {
                                name: b.union_branch_name(),
                                schema: b.connect_schema().into_optional(),
                            })
                            .collect(),
                        ..Schema::new(SchemaType::Struct)
                    },
                }
            }
        };
        if schema.doc.is_none() {
            schema.doc = self.doc.clone();
        }
        schema
    }

    /// The field name `AvroData` gives a union branch: the type's (full) name.
    fn union_branch_name(&self) -> String {
        match &self.kind {
            Kind::Null => "null".to_string(),
            Kind::Boolean => "boolean".to_string(),
            Kind::Int => "int".to_string(),
            Kind::Long => "long".to_string(),
            Kind::Float => "float".to_string(),
            Kind::Double => "double".to_string(),
            Kind::Bytes => "bytes".to_string(),
            Kind::String => "string".to_string(),
            Kind::Record { full_name, .. }
            | Kind::Enum { full_name, .. }
            | Kind::Fixed { full_name, .. } => full_name.clone(),
            Kind::Array(_) => "array".to_string(),
            Kind::Map(_) => "map".to_string(),
            Kind::Union(_) => "union".to_string(),
        }
    }

    /// The names of a record's fields.
    pub fn field_names(&self) -> Vec<&str> {
        match &self.kind {
            Kind::Record { fields, .. } => fields.iter().map(|(n, _)| n.as_str()).collect(),
            _ => Vec::new(),
        }
    }

    /// A random value of this type, for record number `generation` (iterations count from it).
    pub fn generate<R: rand::Rng + ?Sized>(&self, rng: &mut R, generation: u64) -> Value {
        if let Some(options) = &self.hints.options {
            let picked = &options[rng.random_range(0..options.len())];
            return self.value_of_json(picked);
        }
        match &self.kind {
            Kind::Null => Value::Null,
            Kind::Boolean => Value::Boolean(
                rng.random_bool(
                    self.hints
                        .odds
                        .filter(|p| (0.0..=1.0).contains(p))
                        .unwrap_or(0.5),
                ),
            ),
            Kind::Int => {
                Value::Int32(self.integer(rng, generation, i32::MIN.into(), i32::MAX.into()) as i32)
            }
            Kind::Long => {
                Value::Int64(self.integer(rng, generation, i64::MIN.into(), i64::MAX.into()) as i64)
            }
            Kind::Float => Value::Float32(self.float(rng, generation) as f32),
            Kind::Double => Value::Float64(self.float(rng, generation)),
            Kind::Bytes => {
                let length = pick_length(rng, self.hints.length);
                Value::Bytes(Bytes::from(
                    (0..length).map(|_| rng.random::<u8>()).collect::<Vec<u8>>(),
                ))
            }
            Kind::String => Value::String(string(rng, &self.hints, generation)),
            Kind::Record { fields, .. } => {
                let values = fields
                    .iter()
                    .map(|(_, node)| node.generate(rng, generation))
                    .collect();
                Value::Struct(Struct {
                    schema: self.connect_schema().into(),
                    values,
                })
            }
            Kind::Enum { symbols, .. } => {
                Value::String(symbols[rng.random_range(0..symbols.len())].clone())
            }
            Kind::Fixed { size, .. } => Value::Bytes(Bytes::from(
                (0..*size).map(|_| rng.random::<u8>()).collect::<Vec<u8>>(),
            )),
            Kind::Array(items) => {
                let length = pick_length(rng, self.hints.length);
                Value::Array(
                    (0..length)
                        .map(|_| items.generate(rng, generation))
                        .collect(),
                )
            }
            Kind::Map(values) => {
                let length = pick_length(rng, self.hints.length);
                let key_hints = self.hints.keys.as_deref().cloned().unwrap_or_default();
                Value::Map(
                    (0..length)
                        .map(|_| {
                            (
                                Value::String(string(rng, &key_hints, generation)),
                                values.generate(rng, generation),
                            )
                        })
                        .collect(),
                )
            }
            Kind::Union(branches) => {
                let branch = &branches[rng.random_range(0..branches.len())];
                let value = branch.generate(rng, generation);
                self.wrap_union(branch, value)
            }
        }
    }

    /// A union's value as its Connect schema holds it: the value itself for `[null, T]`, a
    /// `io.confluent.connect.avro.Union` struct with one field set otherwise.
    fn wrap_union(&self, branch: &Node, value: Value) -> Value {
        let schema = self.connect_schema();
        if schema.name.as_deref() != Some(UNION_NAME) || value.is_null() {
            return value;
        }
        let mut wrapped = Struct::new(schema);
        wrapped.put(&branch.union_branch_name(), value);
        Value::Struct(wrapped)
    }

    fn integer<R: rand::Rng + ?Sized>(
        &self,
        rng: &mut R,
        generation: u64,
        type_min: i128,
        type_max: i128,
    ) -> i128 {
        if let Some(iteration) = self.hints.iteration {
            let value = iterate(iteration, generation);
            return (value as i128).clamp(type_min, type_max);
        }
        let (min, max) = self.hints.range.unwrap_or((None, None));
        let min = min.map_or(type_min, |m| (m.ceil() as i128).clamp(type_min, type_max));
        // `max` is exclusive, as in Avro Random Generator; the type's own maximum is inclusive.
        let max = max.map_or(type_max, |m| {
            (m.ceil() as i128 - 1).clamp(type_min, type_max)
        });
        if max <= min {
            return min;
        }
        rng.random_range(min..=max)
    }

    fn float<R: rand::Rng + ?Sized>(&self, rng: &mut R, generation: u64) -> f64 {
        if let Some(iteration) = self.hints.iteration {
            return iterate(iteration, generation);
        }
        let (min, max) = self.hints.range.unwrap_or((None, None));
        let min = min.unwrap_or(0.0);
        let max = max.unwrap_or(min + 1.0);
        if max <= min {
            return min;
        }
        rng.random_range(min..max)
    }

    /// The value of this type given as JSON in an `options` list.
    fn value_of_json(&self, json: &Json) -> Value {
        match (&self.kind, json) {
            (_, Json::Null) => Value::Null,
            (Kind::Boolean, Json::Bool(b)) => Value::Boolean(*b),
            (Kind::Int, _) => Value::Int32(json.as_i64().unwrap_or(0) as i32),
            (Kind::Long, _) => Value::Int64(json.as_i64().unwrap_or(0)),
            (Kind::Float, _) => Value::Float32(json.as_f64().unwrap_or(0.0) as f32),
            (Kind::Double, _) => Value::Float64(json.as_f64().unwrap_or(0.0)),
            (Kind::String | Kind::Enum { .. }, Json::String(s)) => Value::String(s.clone()),
            (Kind::String | Kind::Enum { .. }, other) => Value::String(other.to_string()),
            (Kind::Bytes | Kind::Fixed { .. }, Json::String(s)) => {
                Value::Bytes(Bytes::from(s.clone().into_bytes()))
            }
            (Kind::Record { fields, .. }, Json::Object(object)) => Value::Struct(Struct {
                schema: self.connect_schema().into(),
                values: fields
                    .iter()
                    .map(|(name, node)| {
                        object
                            .get(name)
                            .map_or(Value::Null, |v| node.value_of_json(v))
                    })
                    .collect(),
            }),
            (Kind::Array(items), Json::Array(list)) => {
                Value::Array(list.iter().map(|v| items.value_of_json(v)).collect())
            }
            (Kind::Map(values), Json::Object(object)) => Value::Map(
                object
                    .iter()
                    .map(|(k, v)| (Value::String(k.clone()), values.value_of_json(v)))
                    .collect(),
            ),
            (Kind::Union(branches), _) => {
                let branch = branches
                    .iter()
                    .find(|b| !matches!(b.kind, Kind::Null))
                    .unwrap_or(&branches[0]);
                let value = branch.value_of_json(json);
                self.wrap_union(branch, value)
            }
            _ => Value::Null,
        }
    }
}

/// The value of an `iteration` hint for record number `generation`.
fn iterate(iteration: Iteration, generation: u64) -> f64 {
    let offset = iteration.step * generation as f64;
    match iteration.restart {
        Some(restart) if restart != iteration.start => {
            let span = restart - iteration.start;
            iteration.start + offset.rem_euclid(span.abs()) * span.signum()
        }
        _ => iteration.start + offset,
    }
}

fn pick_length<R: rand::Rng + ?Sized>(rng: &mut R, length: Option<(u64, u64)>) -> u64 {
    let (min, max) = length.unwrap_or(DEFAULT_LENGTH);
    if max <= min + 1 {
        return min;
    }
    rng.random_range(min..max)
}

fn string<R: rand::Rng + ?Sized>(rng: &mut R, hints: &Hints, generation: u64) -> String {
    if let Some(options) = &hints.options {
        return match &options[rng.random_range(0..options.len())] {
            Json::String(s) => s.clone(),
            other => other.to_string(),
        };
    }
    if let Some(regex) = &hints.regex {
        return regex.generate(rng);
    }
    if let Some(iteration) = hints.iteration {
        let value = iterate(iteration, generation);
        return if value.fract() == 0.0 && value.abs() < 9.0e15 {
            format!("{}", value as i64)
        } else {
            value.to_string()
        };
    }
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    let length = pick_length(rng, hints.length);
    (0..length)
        .map(|_| char::from(ALPHABET[rng.random_range(0..ALPHABET.len())]))
        .collect()
}
