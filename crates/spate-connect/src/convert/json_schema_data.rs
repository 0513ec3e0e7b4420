//! Confluent's `JsonSchemaData`: Connect schemas to JSON Schemas as `JsonSchemaConverter`
//! registers them, JSON Schemas back to Connect schemas, and Connect values to the JSON
//! payload and back.
//!
//! The mapping: integers are `{"type":"integer","connect.type":"int32"}` (int8 to int64),
//! floats `{"type":"number","connect.type":"float64"}`, bytes a base64 string with
//! `connect.type: bytes`, a struct an object titled by its name whose properties carry
//! `connect.index`, a map with string keys an object with `additionalProperties` and other
//! maps an array of `{key, value}` objects (both with `connect.type: map`), an optional
//! schema `{"oneOf":[{"type":"null"},...]}`; logical types keep their Connect name as
//! `title` (a decimal is a JSON number). Reading a JSON Schema written elsewhere, `integer`
//! is int64 and `number` float64.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use bytes::Bytes;
use serde_json::{Map, Value as Json, json};

use super::{ConvertError, decimal};
use crate::data::{Field, Schema, SchemaType, Struct, Value, logical};

const CONNECT_TYPE: &str = "connect.type";
const CONNECT_INDEX: &str = "connect.index";
const CONNECT_VERSION: &str = "connect.version";
const CONNECT_PARAMETERS: &str = "connect.parameters";
/// Nesting one JSON Schema or payload may have (a bound on hostile input).
const MAX_DEPTH: usize = 64;

fn schema_error(reason: impl Into<String>) -> ConvertError {
    ConvertError::InvalidSchema {
        path: "$".to_string(),
        reason: reason.into(),
    }
}

fn value_error(path: &str, reason: impl Into<String>) -> ConvertError {
    ConvertError::InvalidValue {
        path: path.to_string(),
        reason: reason.into(),
    }
}

/// The JSON Schema `JsonSchemaData.fromConnectSchema` makes of `schema`.
pub(crate) fn from_connect_schema(schema: &Schema) -> Json {
    with_index(schema, None)
}

fn with_index(schema: &Schema, index: Option<usize>) -> Json {
    let mut base = Map::new();
    let connect_type = |base: &mut Map<String, Json>, t: &str| {
        base.insert(CONNECT_TYPE.into(), t.into());
    };
    match schema.kind {
        SchemaType::Int8 | SchemaType::Int16 | SchemaType::Int32 | SchemaType::Int64 => {
            base.insert("type".into(), "integer".into());
            connect_type(&mut base, schema.kind.name());
        }
        SchemaType::Float32 | SchemaType::Float64 => {
            base.insert("type".into(), "number".into());
            connect_type(&mut base, schema.kind.name());
        }
        SchemaType::Boolean => {
            base.insert("type".into(), "boolean".into());
        }
        SchemaType::String => {
            base.insert("type".into(), "string".into());
        }
        SchemaType::Bytes => {
            if schema.is_logical(logical::DECIMAL) {
                base.insert("type".into(), "number".into());
            } else {
                base.insert("type".into(), "string".into());
                connect_type(&mut base, "bytes");
            }
        }
        SchemaType::Array => {
            base.insert("type".into(), "array".into());
            if let Some(items) = &schema.key_or_items {
                base.insert("items".into(), with_index(items, None));
            }
        }
        SchemaType::Map => {
            let key = schema.key_or_items.as_deref();
            let value = schema.map_value.as_deref();
            if key.is_some_and(|k| k.kind == SchemaType::String && !k.optional) {
                base.insert("type".into(), "object".into());
                if let Some(value) = value {
                    base.insert("additionalProperties".into(), with_index(value, None));
                }
            } else {
                let mut properties = Map::new();
                if let Some(key) = key {
                    properties.insert("key".into(), with_index(key, Some(0)));
                }
                if let Some(value) = value {
                    properties.insert("value".into(), with_index(value, Some(1)));
                }
                base.insert("type".into(), "array".into());
                base.insert(
                    "items".into(),
                    json!({"type": "object", "properties": properties}),
                );
            }
            connect_type(&mut base, "map");
        }
        SchemaType::Struct => {
            base.insert("type".into(), "object".into());
            let mut properties = Map::new();
            for (i, field) in schema.fields.iter().enumerate() {
                properties.insert(field.name.clone(), with_index(&field.schema, Some(i)));
            }
            base.insert("properties".into(), Json::Object(properties));
            let required: Vec<Json> = schema
                .fields
                .iter()
                .filter(|f| !f.schema.optional)
                .map(|f| Json::String(f.name.clone()))
                .collect();
            if !required.is_empty() {
                base.insert("required".into(), Json::Array(required));
            }
        }
    }
    if let Some(name) = &schema.name {
        base.insert("title".into(), name.clone().into());
    }
    if let Some(doc) = &schema.doc {
        base.insert("description".into(), doc.clone().into());
    }
    if let Some(version) = schema.version {
        base.insert(CONNECT_VERSION.into(), version.into());
    }
    if !schema.parameters.is_empty() {
        let parameters: Map<String, Json> = schema
            .parameters
            .iter()
            .map(|(k, v)| (k.clone(), Json::String(v.clone())))
            .collect();
        base.insert(CONNECT_PARAMETERS.into(), Json::Object(parameters));
    }
    if let Some(Ok(json)) = schema
        .default
        .as_deref()
        .map(|d| value_to_json(Some(schema), d, "$"))
    {
        base.insert("default".into(), json);
    }
    let mut out = if schema.optional {
        let mut wrapper = Map::new();
        wrapper.insert(
            "oneOf".into(),
            Json::Array(vec![json!({"type": "null"}), Json::Object(base)]),
        );
        wrapper
    } else {
        base
    };
    if let Some(index) = index {
        out.insert(CONNECT_INDEX.into(), index.into());
    }
    Json::Object(out)
}

/// The title of a top-level object schema (for the record name strategies).
pub(crate) fn record_name(json: &Json) -> Option<String> {
    json.get("title").and_then(Json::as_str).map(str::to_string)
}

/// The Connect schema of a JSON Schema.
pub(crate) fn to_connect_schema(json: &Json) -> Result<Schema, ConvertError> {
    to_connect(json, 0)
}

fn to_connect(json: &Json, depth: usize) -> Result<Schema, ConvertError> {
    if depth > MAX_DEPTH {
        return Err(schema_error(format!(
            "the JSON Schema nests deeper than {MAX_DEPTH}"
        )));
    }
    let object = match json {
        Json::Object(o) => o,
        Json::Bool(true) => return Ok(Schema::optional(SchemaType::String)),
        other => {
            return Err(schema_error(format!(
                "{other} is not a JSON Schema Connect can read"
            )));
        }
    };
    for key in ["oneOf", "anyOf"] {
        if let Some(Json::Array(branches)) = object.get(key) {
            let is_null = |b: &Json| b.get("type").and_then(Json::as_str) == Some("null");
            let others: Vec<&Json> = branches.iter().filter(|b| !is_null(b)).collect();
            if others.len() == 1 {
                let mut s = to_connect(others[0], depth + 1)?;
                s.optional = others.len() < branches.len() || s.optional;
                return Ok(s);
            }
            return Err(schema_error(format!(
                "{key} with {} branches other than null is not supported",
                others.len()
            )));
        }
    }
    let (type_name, nullable) = match object.get("type") {
        Some(Json::String(t)) => (t.as_str(), false),
        Some(Json::Array(types)) => {
            let others: Vec<&str> = types
                .iter()
                .filter_map(Json::as_str)
                .filter(|t| *t != "null")
                .collect();
            match others.as_slice() {
                [one] => (*one, others.len() < types.len()),
                _ => {
                    return Err(schema_error(
                        "a type list with more than one non-null type is not supported",
                    ));
                }
            }
        }
        None if object.contains_key("properties") => ("object", false),
        _ => {
            return Err(schema_error(
                "a JSON Schema without a type is not supported",
            ));
        }
    };
    let connect_type = object.get(CONNECT_TYPE).and_then(Json::as_str);
    let title = object.get("title").and_then(Json::as_str);
    let mut schema = match type_name {
        "boolean" => Schema::new(SchemaType::Boolean),
        "integer" => Schema::new(match connect_type {
            Some("int8") => SchemaType::Int8,
            Some("int16") => SchemaType::Int16,
            Some("int32") => SchemaType::Int32,
            _ => SchemaType::Int64,
        }),
        "number" if title == Some(logical::DECIMAL) => Schema::new(SchemaType::Bytes),
        "number" => Schema::new(match connect_type {
            Some("float32") => SchemaType::Float32,
            _ => SchemaType::Float64,
        }),
        "string" => Schema::new(match connect_type {
            Some("bytes") => SchemaType::Bytes,
            _ => SchemaType::String,
        }),
        "array" if connect_type == Some("map") => {
            let properties = object
                .get("items")
                .and_then(|i| i.get("properties"))
                .ok_or_else(|| schema_error("a map array has no key/value properties"))?;
            let key = properties
                .get("key")
                .ok_or_else(|| schema_error("a map array has no key"))?;
            let value = properties
                .get("value")
                .ok_or_else(|| schema_error("a map array has no value"))?;
            Schema::map(to_connect(key, depth + 1)?, to_connect(value, depth + 1)?)
        }
        "array" => {
            let items = object
                .get("items")
                .ok_or_else(|| schema_error("an array has no items"))?;
            Schema::array(to_connect(items, depth + 1)?)
        }
        "object"
            if connect_type == Some("map")
                || (!object.contains_key("properties")
                    && object
                        .get("additionalProperties")
                        .is_some_and(Json::is_object)) =>
        {
            let values = object
                .get("additionalProperties")
                .ok_or_else(|| schema_error("a map object has no additionalProperties"))?;
            Schema::map(
                Schema::new(SchemaType::String),
                to_connect(values, depth + 1)?,
            )
        }
        "object" => {
            let properties = object
                .get("properties")
                .and_then(Json::as_object)
                .ok_or_else(|| schema_error("an object has no properties"))?;
            let required: Vec<&str> = object
                .get("required")
                .and_then(Json::as_array)
                .map(|r| r.iter().filter_map(Json::as_str).collect())
                .unwrap_or_default();
            let mut fields: Vec<(i64, Field)> = Vec::with_capacity(properties.len());
            for (position, (name, property)) in properties.iter().enumerate() {
                let mut field_schema = to_connect(property, depth + 1)?;
                if !required.contains(&name.as_str()) {
                    field_schema.optional = true;
                }
                let index = property
                    .get(CONNECT_INDEX)
                    .and_then(Json::as_i64)
                    .unwrap_or(position as i64);
                fields.push((
                    index,
                    Field {
                        name: name.clone(),
                        schema: field_schema,
                    },
                ));
            }
            fields.sort_by_key(|(i, _)| *i);
            let mut s = Schema::new(SchemaType::Struct);
            s.fields = fields.into_iter().map(|(_, f)| f).collect();
            s
        }
        other => {
            return Err(schema_error(format!(
                "JSON Schema type {other:?} is not supported"
            )));
        }
    };
    schema.optional = nullable;
    if let Some(title) = title {
        schema.name = Some(title.to_string());
    }
    schema.doc = object
        .get("description")
        .and_then(Json::as_str)
        .map(str::to_string);
    if let Some(version) = object.get(CONNECT_VERSION).and_then(Json::as_i64) {
        schema.version = i32::try_from(version).ok();
    }
    if let Some(Json::Object(parameters)) = object.get(CONNECT_PARAMETERS) {
        for (k, v) in parameters {
            if let Some(v) = v.as_str() {
                schema.parameters.insert(k.clone(), v.to_string());
            }
        }
    }
    if let Some(default) = object.get("default").filter(|d| !d.is_null()) {
        schema.default = json_to_value(&schema, default, "$").ok().map(Box::new);
    }
    Ok(schema)
}

/// A Connect value as the JSON payload `JsonSchemaConverter` writes.
pub(crate) fn value_to_json(
    schema: Option<&Schema>,
    value: &Value,
    path: &str,
) -> Result<Json, ConvertError> {
    let number = |v: f64| {
        serde_json::Number::from_f64(v)
            .map(Json::Number)
            .ok_or_else(|| value_error(path, "NaN and infinities are not JSON"))
    };
    Ok(match value {
        Value::Null => Json::Null,
        Value::Boolean(b) => Json::Bool(*b),
        Value::Int8(v) => (*v).into(),
        Value::Int16(v) => (*v).into(),
        Value::Int32(v) => (*v).into(),
        Value::Int64(v) => (*v).into(),
        Value::Float32(v) => number(v.to_string().parse::<f64>().unwrap_or(f64::from(*v)))?,
        Value::Float64(v) => number(*v)?,
        Value::String(s) => Json::String(s.clone()),
        Value::Bytes(b) => match schema.filter(|s| s.is_logical(logical::DECIMAL)) {
            Some(s) => {
                let scale = s
                    .parameters
                    .get(logical::DECIMAL_SCALE)
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(0);
                let text =
                    decimal::to_text(b, scale).map_err(|e| value_error(path, e.to_string()))?;
                serde_json::from_str(&text).map_err(|_| {
                    value_error(path, format!("decimal {text} is not a JSON number"))
                })?
            }
            None => Json::String(BASE64.encode(b)),
        },
        Value::Array(items) => {
            let item_schema = schema.and_then(|s| s.key_or_items.as_deref());
            Json::Array(
                items
                    .iter()
                    .enumerate()
                    .map(|(i, v)| value_to_json(item_schema, v, &format!("{path}[{i}]")))
                    .collect::<Result<_, _>>()?,
            )
        }
        Value::Map(entries) => {
            let key_schema = schema.and_then(|s| s.key_or_items.as_deref());
            let value_schema = schema.and_then(|s| s.map_value.as_deref());
            let string_keys = key_schema
                .is_none_or(|k| k.kind == SchemaType::String && !k.optional)
                && entries.iter().all(|(k, _)| k.as_str().is_some());
            if string_keys {
                let mut out = Map::new();
                for (k, v) in entries {
                    let key = k.as_str().unwrap_or_default();
                    out.insert(
                        key.to_string(),
                        value_to_json(value_schema, v, &format!("{path}.{key}"))?,
                    );
                }
                Json::Object(out)
            } else {
                let mut out = Vec::with_capacity(entries.len());
                for (i, (k, v)) in entries.iter().enumerate() {
                    let entry = format!("{path}[{i}]");
                    out.push(json!({
                        "key": value_to_json(key_schema, k, &entry)?,
                        "value": value_to_json(value_schema, v, &entry)?,
                    }));
                }
                Json::Array(out)
            }
        }
        Value::Struct(s) => {
            let mut out = Map::new();
            for (field, v) in s.schema.fields.iter().zip(&s.values) {
                out.insert(
                    field.name.clone(),
                    value_to_json(Some(&field.schema), v, &format!("{path}.{}", field.name))?,
                );
            }
            Json::Object(out)
        }
    })
}

/// A JSON payload as a value of `schema`.
pub(crate) fn json_to_value(
    schema: &Schema,
    json: &Json,
    path: &str,
) -> Result<Value, ConvertError> {
    if json.is_null() {
        if schema.optional {
            return Ok(Value::Null);
        }
        if let Some(default) = &schema.default {
            return Ok((**default).clone());
        }
        return Err(value_error(path, "null for a required schema"));
    }
    let expected = |what: &str| value_error(path, format!("expected {what}, found {json}"));
    let int = |min: i64, max: i64| {
        json.as_i64()
            .filter(|v| (min..=max).contains(v))
            .ok_or_else(|| expected(&format!("an integer in {min}..={max}")))
    };
    Ok(match schema.kind {
        SchemaType::Boolean => Value::Boolean(json.as_bool().ok_or_else(|| expected("a boolean"))?),
        SchemaType::Int8 => Value::Int8(int(i8::MIN.into(), i8::MAX.into())? as i8),
        SchemaType::Int16 => Value::Int16(int(i16::MIN.into(), i16::MAX.into())? as i16),
        SchemaType::Int32 => Value::Int32(int(i32::MIN.into(), i32::MAX.into())? as i32),
        SchemaType::Int64 => Value::Int64(int(i64::MIN, i64::MAX)?),
        SchemaType::Float32 => {
            Value::Float32(json.as_f64().ok_or_else(|| expected("a number"))? as f32)
        }
        SchemaType::Float64 => Value::Float64(json.as_f64().ok_or_else(|| expected("a number"))?),
        SchemaType::String => Value::String(
            json.as_str()
                .ok_or_else(|| expected("a string"))?
                .to_string(),
        ),
        SchemaType::Bytes if schema.is_logical(logical::DECIMAL) => {
            let scale = schema
                .parameters
                .get(logical::DECIMAL_SCALE)
                .and_then(|v| v.parse().ok())
                .unwrap_or(0);
            let text = match json {
                Json::Number(n) => n.to_string(),
                Json::String(s) => s.clone(),
                _ => return Err(expected("a decimal number")),
            };
            Value::Bytes(Bytes::from(
                decimal::from_text(&text, scale).map_err(|e| value_error(path, e.to_string()))?,
            ))
        }
        SchemaType::Bytes => Value::Bytes(Bytes::from(
            BASE64
                .decode(json.as_str().ok_or_else(|| expected("a base64 string"))?)
                .map_err(|_| expected("a base64 string"))?,
        )),
        SchemaType::Array => {
            let items = schema
                .key_or_items
                .as_deref()
                .ok_or_else(|| schema_error("an array schema has no items"))?;
            Value::Array(
                json.as_array()
                    .ok_or_else(|| expected("an array"))?
                    .iter()
                    .enumerate()
                    .map(|(i, v)| json_to_value(items, v, &format!("{path}[{i}]")))
                    .collect::<Result<_, _>>()?,
            )
        }
        SchemaType::Map => {
            let (key, value) = match (schema.key_or_items.as_deref(), schema.map_value.as_deref()) {
                (Some(k), Some(v)) => (k, v),
                _ => return Err(schema_error("a map schema has no key or value schema")),
            };
            match json {
                Json::Object(o) => Value::Map(
                    o.iter()
                        .map(|(k, v)| {
                            Ok((
                                Value::String(k.clone()),
                                json_to_value(value, v, &format!("{path}.{k}"))?,
                            ))
                        })
                        .collect::<Result<_, ConvertError>>()?,
                ),
                Json::Array(entries) => Value::Map(
                    entries
                        .iter()
                        .enumerate()
                        .map(|(i, e)| {
                            let entry = format!("{path}[{i}]");
                            Ok((
                                json_to_value(key, e.get("key").unwrap_or(&Json::Null), &entry)?,
                                json_to_value(
                                    value,
                                    e.get("value").unwrap_or(&Json::Null),
                                    &entry,
                                )?,
                            ))
                        })
                        .collect::<Result<_, ConvertError>>()?,
                ),
                _ => return Err(expected("an object or an array of entries")),
            }
        }
        SchemaType::Struct => {
            let object = json.as_object().ok_or_else(|| expected("an object"))?;
            let mut s = Struct::new(schema.clone());
            for (i, field) in schema.fields.iter().enumerate() {
                let v = object.get(&field.name).unwrap_or(&Json::Null);
                s.values[i] = json_to_value(&field.schema, v, &format!("{path}.{}", field.name))?;
            }
            Value::Struct(s)
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn struct_schema_maps_both_ways() {
        let schema = Schema::structure(
            Some("Order"),
            vec![
                ("id", Schema::new(SchemaType::Int64)),
                ("note", Schema::optional(SchemaType::String)),
                ("raw", Schema::new(SchemaType::Bytes)),
                (
                    "counts",
                    Schema::map(
                        Schema::new(SchemaType::Int32),
                        Schema::new(SchemaType::Int16),
                    ),
                ),
            ],
        );
        let json = from_connect_schema(&schema);
        assert_eq!(
            json.to_string(),
            concat!(
                r#"{"type":"object","properties":{"#,
                r#""id":{"type":"integer","connect.type":"int64","connect.index":0},"#,
                r#""note":{"oneOf":[{"type":"null"},{"type":"string"}],"connect.index":1},"#,
                r#""raw":{"type":"string","connect.type":"bytes","connect.index":2},"#,
                r#""counts":{"type":"array","items":{"type":"object","properties":{"key":{"type":"integer","connect.type":"int32","connect.index":0},"value":{"type":"integer","connect.type":"int16","connect.index":1}}},"connect.type":"map","connect.index":3}},"#,
                r#""required":["id","raw","counts"],"title":"Order"}"#
            )
        );
        assert_eq!(to_connect_schema(&json).expect("maps back"), schema);
        let mut value = Struct::new(schema.clone());
        value.put("id", Value::Int64(1));
        value.put("raw", Value::Bytes(Bytes::from_static(b"hi")));
        value.put(
            "counts",
            Value::Map(vec![(Value::Int32(1), Value::Int16(2))]),
        );
        let payload =
            value_to_json(Some(&schema), &Value::Struct(value.clone()), "$").expect("writes");
        assert_eq!(
            payload.to_string(),
            r#"{"id":1,"note":null,"raw":"aGk=","counts":[{"key":1,"value":2}]}"#
        );
        assert_eq!(
            json_to_value(&schema, &payload, "$").expect("reads"),
            Value::Struct(value)
        );
    }

    #[test]
    fn plain_json_schemas_read_with_wide_types() {
        let json: Json = serde_json::from_str(
            r#"{"type":"object","title":"User","properties":{"name":{"type":"string"},"n":{"type":"integer"},"tags":{"type":"array","items":{"type":"string"}}},"required":["n"]}"#,
        )
        .expect("json");
        let schema = to_connect_schema(&json).expect("maps");
        assert_eq!(schema.name.as_deref(), Some("User"));
        assert!(schema.fields[0].schema.optional);
        assert_eq!(schema.fields[1].schema.kind, SchemaType::Int64);
        assert!(!schema.fields[1].schema.optional);
    }
}
