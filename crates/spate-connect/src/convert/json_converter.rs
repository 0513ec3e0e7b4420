//! `org.apache.kafka.connect.json.JsonConverter`: Connect data to JSON and back, with the
//! `{"schema": ..., "payload": ...}` envelope when `schemas.enable` is true, the schema JSON
//! exactly as Java's `JsonConverter.asJsonSchema` writes it, and the logical types (`Decimal`
//! as base64 bytes or a number, `Date`/`Time`/`Timestamp` as integers). Pure functions over
//! [`Json`]; the bytes come from and go to [`super::json`].
//!
//! Where Java silently turns a mismatching JSON value into `0`, `false` or `null` (Jackson's
//! `intValue()` of a string is 0), this module refuses it with an error naming the path.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use bytes::Bytes;

use super::json::{self, Json};
use super::{ConvertError, decimal};
use crate::data::{Field, Schema, SchemaType, Struct, Value, logical};

/// The `JsonConverter` config that changes conversions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct JsonOptions {
    /// `decimal.format=NUMERIC`: decimals as JSON numbers rather than base64 strings.
    pub decimal_numeric: bool,
    /// `replace.null.with.default` (default true): a null with a schema default becomes the
    /// default, both ways.
    pub replace_null_with_default: bool,
}

impl Default for JsonOptions {
    fn default() -> JsonOptions {
        JsonOptions {
            decimal_numeric: false,
            replace_null_with_default: true,
        }
    }
}

/// `JsonConverter`, configured.
#[derive(Debug, Clone)]
pub(crate) struct JsonConverter {
    pub schemas_enable: bool,
    pub options: JsonOptions,
}

/// The envelope error, word for word as Java's `JsonConverter.toConnectData` throws it, so
/// that people searching for it find the same answers.
pub(crate) const ENVELOPE_MESSAGE: &str = "JsonConverter with schemas.enable requires \"schema\" and \"payload\" fields and may not contain additional fields. If you are trying to deserialize plain JSON data, set schemas.enable=false in your converter configuration.";

impl super::Converter for JsonConverter {
    fn from_connect(
        &self,
        _topic: &str,
        schema: Option<&Schema>,
        value: &Value,
    ) -> Result<Option<Bytes>, ConvertError> {
        // Java: `if (schema == null && value == null) return null;` -- with a schema, a null
        // value is written (`{"schema":{...},"payload":null}` or `null`), not a tombstone.
        if schema.is_none() && value.is_null() {
            return Ok(None);
        }
        let payload = value_to_json(schema, value, &self.options, &Path::Root)?;
        let json = if self.schemas_enable {
            let schema = match schema {
                Some(s) => schema_to_json(s, &self.options),
                None => Json::Null,
            };
            Json::Object(vec![
                ("schema".to_string(), schema),
                ("payload".to_string(), payload),
            ])
        } else {
            payload
        };
        Ok(Some(Bytes::from(json.to_bytes())))
    }

    fn to_connect(
        &self,
        _topic: &str,
        bytes: Option<&[u8]>,
    ) -> Result<(Option<Schema>, Value), ConvertError> {
        let Some(bytes) = bytes else {
            return Ok((None, Value::Null));
        };
        let json = json::parse(bytes).map_err(|e| ConvertError::InvalidJson {
            offset: e.offset,
            reason: e.reason,
        })?;
        if !self.schemas_enable {
            // Empty input is Jackson's MissingNode, which Java converts to null.
            return match json {
                None => Ok((None, Value::Null)),
                Some(json) => Ok((
                    None,
                    json_to_value(None, Some(&json), &self.options, &Path::Root)?,
                )),
            };
        }
        let envelope = match &json {
            Some(Json::Object(entries))
                if entries.len() == 2
                    && entries.iter().any(|(k, _)| k == "schema")
                    && entries.iter().any(|(k, _)| k == "payload") =>
            {
                entries
            }
            _ => return Err(ConvertError::MissingEnvelope),
        };
        let get = |name: &str| envelope.iter().find(|(k, _)| k == name).map(|(_, v)| v);
        let schema = match get("schema") {
            None | Some(Json::Null) => None,
            Some(s) => Some(json_to_schema(s, &self.options, &Path::Root)?),
        };
        let value = json_to_value(schema.as_ref(), get("payload"), &self.options, &Path::Root)?;
        Ok((schema, value))
    }
}

/// Where in a value or schema a problem is, rendered as `$.orders[2].price` only when an
/// error needs it.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Path<'a> {
    /// The whole value.
    Root,
    /// A struct field or schema key.
    Field(&'a Path<'a>, &'a str),
    /// An array element or a map entry.
    Index(&'a Path<'a>, usize),
}

impl Path<'_> {
    fn render(&self) -> String {
        match self {
            Path::Root => "$".to_string(),
            Path::Field(parent, name) => format!("{}.{name}", parent.render()),
            Path::Index(parent, i) => format!("{}[{i}]", parent.render()),
        }
    }
}

fn value_error(path: &Path<'_>, reason: impl Into<String>) -> ConvertError {
    ConvertError::InvalidValue {
        path: path.render(),
        reason: reason.into(),
    }
}

fn schema_error(path: &Path<'_>, reason: impl Into<String>) -> ConvertError {
    ConvertError::InvalidSchema {
        path: path.render(),
        reason: reason.into(),
    }
}

/// The Connect type a value has, for messages.
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

/// Java's `JsonConverter.asJsonSchema`: `type`, then `items` / `keys`, `values` / `fields`
/// (each field's schema followed by its `field` name), then `optional`, `name`, `version`,
/// `doc`, `parameters`, `default`, in that order. Java's float types are named `float` and
/// `double` here, not `float32`/`float64`.
pub(crate) fn schema_to_json(schema: &Schema, options: &JsonOptions) -> Json {
    let type_name = match schema.kind {
        SchemaType::Float32 => "float",
        SchemaType::Float64 => "double",
        other => other.name(),
    };
    let mut out = vec![("type".to_string(), Json::String(type_name.to_string()))];
    let sub = |s: &Option<Box<Schema>>| match s {
        Some(s) => schema_to_json(s, options),
        None => Json::Null,
    };
    match schema.kind {
        SchemaType::Array => out.push(("items".to_string(), sub(&schema.key_or_items))),
        SchemaType::Map => {
            out.push(("keys".to_string(), sub(&schema.key_or_items)));
            out.push(("values".to_string(), sub(&schema.map_value)));
        }
        SchemaType::Struct => {
            let fields = schema
                .fields
                .iter()
                .map(|f| {
                    let mut field = schema_to_json(&f.schema, options);
                    if let Json::Object(entries) = &mut field {
                        entries.push(("field".to_string(), Json::String(f.name.clone())));
                    }
                    field
                })
                .collect();
            out.push(("fields".to_string(), Json::Array(fields)));
        }
        _ => {}
    }
    out.push(("optional".to_string(), Json::Bool(schema.optional)));
    if let Some(name) = &schema.name {
        out.push(("name".to_string(), Json::String(name.clone())));
    }
    if let Some(version) = schema.version {
        out.push(("version".to_string(), Json::int(version)));
    }
    if let Some(doc) = &schema.doc {
        out.push(("doc".to_string(), Json::String(doc.clone())));
    }
    // Java writes `parameters` whenever the schema has a parameter map, which only schemas
    // given parameters have; Spate's empty map stands for Java's null.
    if !schema.parameters.is_empty() {
        let params = schema
            .parameters
            .iter()
            .map(|(k, v)| (k.clone(), Json::String(v.clone())))
            .collect();
        out.push(("parameters".to_string(), Json::Object(params)));
    }
    if let Some(default) = &schema.default {
        // Java validates a default against its schema when the schema is built, so it always
        // converts; a Spate schema could hold a mismatching one, written without its schema.
        let json = value_to_json(Some(schema), default, options, &Path::Root)
            .unwrap_or_else(|_| schemaless_to_json_lenient(default, options));
        out.push(("default".to_string(), json));
    }
    Json::Object(out)
}

/// The scale parameter of a `Decimal` schema.
fn decimal_scale(schema: &Schema, path: &Path<'_>) -> Result<i32, ConvertError> {
    schema
        .parameters
        .get(logical::DECIMAL_SCALE)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| {
            value_error(
                path,
                "the Decimal schema has no integer \"scale\" parameter; add one",
            )
        })
}

/// Java's `JsonConverter.convertToJson`.
pub(crate) fn value_to_json(
    schema: Option<&Schema>,
    value: &Value,
    options: &JsonOptions,
    path: &Path<'_>,
) -> Result<Json, ConvertError> {
    let Some(schema) = schema else {
        return schemaless_to_json(value, options, path);
    };
    if value.is_null() {
        if let (Some(default), true) = (&schema.default, options.replace_null_with_default) {
            return value_to_json(Some(schema), default, options, path);
        }
        if schema.optional {
            return Ok(Json::Null);
        }
        return Err(value_error(
            path,
            format!(
                "null for a required {} with no default; make the schema optional or give it a default",
                schema.kind.name()
            ),
        ));
    }
    let mismatch = || {
        value_error(
            path,
            format!(
                "expected a {} value for the schema but found {}",
                schema.name.as_deref().unwrap_or(schema.kind.name()),
                value_type(value)
            ),
        )
    };
    match schema.name.as_deref() {
        Some(logical::DECIMAL) => {
            let Value::Bytes(unscaled) = value else {
                return Err(mismatch());
            };
            let scale = decimal_scale(schema, path)?;
            let bad = |e: decimal::DecimalError| value_error(path, e.to_string());
            return Ok(if options.decimal_numeric {
                Json::Number(decimal::to_text(unscaled, scale).map_err(bad)?)
            } else {
                // Java writes `BigInteger.toByteArray()`, the shortest form.
                Json::String(BASE64.encode(decimal::minimal(unscaled).map_err(bad)?))
            });
        }
        Some(logical::DATE | logical::TIME) => {
            return match value {
                Value::Int32(v) => Ok(Json::int(*v)),
                _ => Err(mismatch()),
            };
        }
        Some(logical::TIMESTAMP) => {
            return match value {
                Value::Int64(v) => Ok(Json::int(*v)),
                _ => Err(mismatch()),
            };
        }
        _ => {}
    }
    Ok(match (schema.kind, value) {
        (SchemaType::Int8, Value::Int8(v)) => Json::int(*v),
        (SchemaType::Int16, Value::Int16(v)) => Json::int(*v),
        (SchemaType::Int32, Value::Int32(v)) => Json::int(*v),
        (SchemaType::Int64, Value::Int64(v)) => Json::int(*v),
        (SchemaType::Float32, Value::Float32(v)) => Json::float32(*v),
        (SchemaType::Float64, Value::Float64(v)) => Json::float64(*v),
        (SchemaType::Boolean, Value::Boolean(v)) => Json::Bool(*v),
        (SchemaType::String, Value::String(v)) => Json::String(v.clone()),
        (SchemaType::Bytes, Value::Bytes(v)) => Json::String(BASE64.encode(v)),
        (SchemaType::Array, Value::Array(items)) => {
            let items_schema = schema.key_or_items.as_deref();
            let mut out = Vec::with_capacity(items.len());
            for (i, item) in items.iter().enumerate() {
                out.push(value_to_json(
                    items_schema,
                    item,
                    options,
                    &Path::Index(path, i),
                )?);
            }
            Json::Array(out)
        }
        (SchemaType::Map, Value::Map(entries)) => {
            let key_schema = schema.key_or_items.as_deref();
            let value_schema = schema.map_value.as_deref();
            let object_mode = key_schema.is_some_and(|k| k.kind == SchemaType::String);
            map_to_json(
                entries,
                key_schema,
                value_schema,
                object_mode,
                options,
                path,
            )?
        }
        (SchemaType::Struct, Value::Struct(st)) => {
            if st.schema != *schema {
                return Err(value_error(
                    path,
                    "the struct's own schema differs from the schema it is written with (Java: \"Mismatching schema.\")",
                ));
            }
            struct_to_json(st, options, path)?
        }
        _ => return Err(mismatch()),
    })
}

fn map_to_json(
    entries: &[(Value, Value)],
    key_schema: Option<&Schema>,
    value_schema: Option<&Schema>,
    object_mode: bool,
    options: &JsonOptions,
    path: &Path<'_>,
) -> Result<Json, ConvertError> {
    let mut out = Vec::with_capacity(entries.len());
    for (i, (k, v)) in entries.iter().enumerate() {
        let entry_path = Path::Index(path, i);
        let key = value_to_json(key_schema, k, options, &entry_path)?;
        let value = value_to_json(value_schema, v, options, &entry_path)?;
        out.push((key, value));
    }
    Ok(if object_mode {
        // Java: `obj.set(mapKey.asText(), mapValue)`, a repeated key replacing the earlier.
        let mut object: Vec<(String, Json)> = Vec::with_capacity(out.len());
        for (k, v) in out {
            let k = k.as_text();
            match object.iter_mut().find(|(existing, _)| *existing == k) {
                Some(entry) => entry.1 = v,
                None => object.push((k, v)),
            }
        }
        Json::Object(object)
    } else {
        // Maps with non-string keys are arrays of [key, value] pairs.
        Json::Array(
            out.into_iter()
                .map(|(k, v)| Json::Array(vec![k, v]))
                .collect(),
        )
    })
}

fn struct_to_json(
    st: &Struct,
    options: &JsonOptions,
    path: &Path<'_>,
) -> Result<Json, ConvertError> {
    let mut out = Vec::with_capacity(st.schema.fields.len());
    for (i, field) in st.schema.fields.iter().enumerate() {
        let value = st.values.get(i).unwrap_or(&Value::Null);
        let json = value_to_json(
            Some(&field.schema),
            value,
            options,
            &Path::Field(path, &field.name),
        )?;
        out.push((field.name.clone(), json));
    }
    Ok(Json::Object(out))
}

/// Java's `convertToJson(null, value)`: the value's own type decides. A struct is written
/// with its own schema (Java refuses a struct without a schema as "Mismatching schema.").
fn schemaless_to_json(
    value: &Value,
    options: &JsonOptions,
    path: &Path<'_>,
) -> Result<Json, ConvertError> {
    Ok(match value {
        Value::Null => Json::Null,
        Value::Boolean(v) => Json::Bool(*v),
        Value::Int8(v) => Json::int(*v),
        Value::Int16(v) => Json::int(*v),
        Value::Int32(v) => Json::int(*v),
        Value::Int64(v) => Json::int(*v),
        Value::Float32(v) => Json::float32(*v),
        Value::Float64(v) => Json::float64(*v),
        Value::String(v) => Json::String(v.clone()),
        Value::Bytes(v) => Json::String(BASE64.encode(v)),
        Value::Array(items) => {
            let mut out = Vec::with_capacity(items.len());
            for (i, item) in items.iter().enumerate() {
                out.push(schemaless_to_json(item, options, &Path::Index(path, i))?);
            }
            Json::Array(out)
        }
        Value::Map(entries) => {
            // Java: object mode only when every key is a string.
            let object_mode = entries.iter().all(|(k, _)| matches!(k, Value::String(_)));
            map_to_json(entries, None, None, object_mode, options, path)?
        }
        Value::Struct(st) => struct_to_json(st, options, path)?,
    })
}

/// As [`schemaless_to_json`], never failing: a struct that does not fit its own schema is
/// written field by field without it.
pub(crate) fn schemaless_to_json_lenient(value: &Value, options: &JsonOptions) -> Json {
    match value {
        Value::Array(items) => Json::Array(
            items
                .iter()
                .map(|v| schemaless_to_json_lenient(v, options))
                .collect(),
        ),
        Value::Map(entries) => {
            let object_mode = entries.iter().all(|(k, _)| matches!(k, Value::String(_)));
            let pairs = entries.iter().map(|(k, v)| {
                (
                    schemaless_to_json_lenient(k, options),
                    schemaless_to_json_lenient(v, options),
                )
            });
            if object_mode {
                Json::Object(pairs.map(|(k, v)| (k.as_text(), v)).collect())
            } else {
                Json::Array(pairs.map(|(k, v)| Json::Array(vec![k, v])).collect())
            }
        }
        Value::Struct(st) => struct_to_json(st, options, &Path::Root).unwrap_or_else(|_| {
            Json::Object(
                st.iter()
                    .map(|(name, v)| (name.to_string(), schemaless_to_json_lenient(v, options)))
                    .collect(),
            )
        }),
        other => schemaless_to_json(other, options, &Path::Root).unwrap_or(Json::Null),
    }
}

/// Java's `JsonConverter.asConnectSchema` (the caller handles a JSON null, meaning no schema).
pub(crate) fn json_to_schema(
    json: &Json,
    options: &JsonOptions,
    path: &Path<'_>,
) -> Result<Schema, ConvertError> {
    let Some(Json::String(type_name)) = json.get("type") else {
        return Err(schema_error(path, "a schema needs a string \"type\" field"));
    };
    let kind = match type_name.as_str() {
        "float" => SchemaType::Float32,
        "double" => SchemaType::Float64,
        // Java knows only `float` and `double`; `float32`/`float64` are refused as there.
        "float32" | "float64" => {
            return Err(schema_error(
                path,
                format!(
                    "unknown schema type {type_name:?}; JSON schemas name it \"float\" or \"double\""
                ),
            ));
        }
        other => SchemaType::from_name(other)
            .ok_or_else(|| schema_error(path, format!("unknown schema type {other:?}")))?,
    };
    let mut schema = Schema::new(kind);
    match kind {
        SchemaType::Array => {
            let items = match json.get("items") {
                None | Some(Json::Null) => {
                    return Err(schema_error(path, "an array schema needs \"items\""));
                }
                Some(items) => items,
            };
            schema.key_or_items = Some(Box::new(json_to_schema(
                items,
                options,
                &Path::Field(path, "items"),
            )?));
        }
        SchemaType::Map => {
            for (name, slot) in [
                ("keys", &mut schema.key_or_items),
                ("values", &mut schema.map_value),
            ] {
                let sub = match json.get(name) {
                    None | Some(Json::Null) => {
                        return Err(schema_error(path, format!("a map schema needs \"{name}\"")));
                    }
                    Some(sub) => sub,
                };
                *slot = Some(Box::new(json_to_schema(
                    sub,
                    options,
                    &Path::Field(path, name),
                )?));
            }
        }
        SchemaType::Struct => {
            let Some(Json::Array(fields)) = json.get("fields") else {
                return Err(schema_error(
                    path,
                    "a struct schema needs a \"fields\" array",
                ));
            };
            let fields_path = Path::Field(path, "fields");
            for (i, field) in fields.iter().enumerate() {
                let field_path = Path::Index(&fields_path, i);
                let Some(Json::String(name)) = field.get("field") else {
                    return Err(schema_error(
                        &field_path,
                        "a struct field needs a string \"field\" name",
                    ));
                };
                if schema.field(name).is_some() {
                    return Err(schema_error(
                        &field_path,
                        format!("field name {name:?} appears twice"),
                    ));
                }
                let field_schema = json_to_schema(field, options, &field_path)?;
                schema.fields.push(Field {
                    name: name.clone(),
                    schema: field_schema,
                });
            }
        }
        _ => {}
    }
    schema.optional = matches!(json.get("optional"), Some(Json::Bool(true)));
    if let Some(Json::String(name)) = json.get("name") {
        schema.name = Some(name.clone());
    }
    if let Some(Json::Number(version)) = json.get("version") {
        if json::is_integral(version) {
            // Java: `intValue()`, the low 32 bits.
            schema.version = Some(java_long_value(version) as i32);
        }
    }
    if let Some(Json::String(doc)) = json.get("doc") {
        schema.doc = Some(doc.clone());
    }
    if let Some(Json::Object(params)) = json.get("parameters") {
        for (k, v) in params {
            let Json::String(v) = v else {
                return Err(schema_error(
                    &Path::Field(path, "parameters"),
                    format!("parameter {k:?} must be a string"),
                ));
            };
            schema.parameters.insert(k.clone(), v.clone());
        }
    }
    if let Some(default) = json.get("default") {
        let value = json_to_value(
            Some(&schema),
            Some(default),
            options,
            &Path::Field(path, "default"),
        )?;
        if !value.is_null() {
            schema.default = Some(Box::new(value));
        }
    }
    Ok(schema)
}

/// Jackson's `longValue()` of a number: the low 64 bits of an integer however long (as
/// `BigInteger.longValue()`), a fraction truncated toward zero.
fn java_long_value(text: &str) -> i64 {
    if json::is_integral(text) {
        let (negative, digits) = match text.strip_prefix('-') {
            Some(d) => (true, d),
            None => (false, text),
        };
        let magnitude = digits.bytes().fold(0u64, |acc, d| {
            acc.wrapping_mul(10)
                .wrapping_add(u64::from(d.wrapping_sub(b'0')))
        });
        let v = magnitude as i64;
        if negative { v.wrapping_neg() } else { v }
    } else {
        // Beyond i64 Java keeps the low bits of the truncated BigDecimal; this saturates.
        text.parse::<f64>().map(|f| f.trunc() as i64).unwrap_or(0)
    }
}

fn decode_base64(text: &str) -> Result<Vec<u8>, base64::DecodeError> {
    // Jackson skips white space between base64 quads.
    if text.bytes().any(|b| b <= b' ') {
        let compact: String = text.chars().filter(|c| *c > ' ').collect();
        BASE64.decode(compact)
    } else {
        BASE64.decode(text)
    }
}

/// Java's `JsonConverter.convertToConnect`.
pub(crate) fn json_to_value(
    schema: Option<&Schema>,
    json: Option<&Json>,
    options: &JsonOptions,
    path: &Path<'_>,
) -> Result<Value, ConvertError> {
    let Some(schema) = schema else {
        return Ok(json.map(schemaless_value).unwrap_or(Value::Null));
    };
    let json = match json {
        None | Some(Json::Null) => {
            if let (Some(default), true) = (&schema.default, options.replace_null_with_default) {
                return Ok((**default).clone());
            }
            if schema.optional {
                return Ok(Value::Null);
            }
            return Err(value_error(
                path,
                format!(
                    "null or missing value for a required {} with no default",
                    schema.kind.name()
                ),
            ));
        }
        Some(json) => json,
    };
    let mismatch = |expected: &str| {
        value_error(
            path,
            format!(
                "expected {expected} for the schema's {} but found {}",
                schema.name.as_deref().unwrap_or(schema.kind.name()),
                json.node_type()
            ),
        )
    };
    match schema.name.as_deref() {
        Some(logical::DECIMAL) => {
            let scale = decimal_scale(schema, path)?;
            let bad = |e: decimal::DecimalError| value_error(path, e.to_string());
            return match json {
                Json::Number(text) => Ok(Value::Bytes(Bytes::from(
                    decimal::from_text(text, scale).map_err(bad)?,
                ))),
                Json::String(text) => {
                    let raw = decode_base64(text).map_err(|e| {
                        value_error(path, format!("invalid base64 for a Decimal: {e}"))
                    })?;
                    Ok(Value::Bytes(Bytes::from(
                        decimal::minimal(&raw).map_err(bad)?,
                    )))
                }
                _ => Err(mismatch("a number or base64 bytes")),
            };
        }
        Some(logical::DATE | logical::TIME) => {
            // Jackson's `isInt()`: an integer that fits 32 bits.
            return match json {
                Json::Number(text) if json::is_integral(text) => text
                    .parse::<i32>()
                    .map(Value::Int32)
                    .map_err(|_| mismatch("an integer of 32 bits")),
                _ => Err(mismatch("an integer")),
            };
        }
        Some(logical::TIMESTAMP) => {
            return match json {
                Json::Number(text) if json::is_integral(text) => {
                    Ok(Value::Int64(java_long_value(text)))
                }
                _ => Err(mismatch("an integer")),
            };
        }
        _ => {}
    }
    Ok(match (schema.kind, json) {
        (SchemaType::Boolean, Json::Bool(b)) => Value::Boolean(*b),
        // Java: `(byte) value.intValue()` and so on, keeping the low bits.
        (SchemaType::Int8, Json::Number(n)) => Value::Int8(java_long_value(n) as i8),
        (SchemaType::Int16, Json::Number(n)) => Value::Int16(java_long_value(n) as i16),
        (SchemaType::Int32, Json::Number(n)) => Value::Int32(java_long_value(n) as i32),
        (SchemaType::Int64, Json::Number(n)) => Value::Int64(java_long_value(n)),
        (SchemaType::Float32, Json::Number(n)) => {
            Value::Float32(n.parse().map_err(|_| mismatch("a number"))?)
        }
        (SchemaType::Float64, Json::Number(n)) => {
            Value::Float64(n.parse().map_err(|_| mismatch("a number"))?)
        }
        (SchemaType::String, Json::String(s)) => Value::String(s.clone()),
        (SchemaType::Bytes, Json::String(s)) => Value::Bytes(Bytes::from(
            decode_base64(s).map_err(|e| value_error(path, format!("invalid base64: {e}")))?,
        )),
        (SchemaType::Array, Json::Array(items)) => {
            let items_schema = schema.key_or_items.as_deref();
            let mut out = Vec::with_capacity(items.len());
            for (i, item) in items.iter().enumerate() {
                out.push(json_to_value(
                    items_schema,
                    Some(item),
                    options,
                    &Path::Index(path, i),
                )?);
            }
            Value::Array(out)
        }
        (SchemaType::Map, _) => {
            let key_schema = schema.key_or_items.as_deref();
            let value_schema = schema.map_value.as_deref();
            if key_schema.is_none_or(|k| k.kind == SchemaType::String) {
                let Json::Object(entries) = json else {
                    return Err(mismatch("a JSON object (a map with string keys)"));
                };
                let mut out = Vec::with_capacity(entries.len());
                for (i, (k, v)) in entries.iter().enumerate() {
                    let value =
                        json_to_value(value_schema, Some(v), options, &Path::Index(path, i))?;
                    out.push((Value::String(k.clone()), value));
                }
                Value::Map(out)
            } else {
                let Json::Array(entries) = json else {
                    return Err(mismatch(
                        "a JSON array of [key, value] pairs (a map with non-string keys)",
                    ));
                };
                let mut out = Vec::with_capacity(entries.len());
                for (i, entry) in entries.iter().enumerate() {
                    let entry_path = Path::Index(path, i);
                    let Json::Array(pair) = entry else {
                        return Err(value_error(
                            &entry_path,
                            format!(
                                "a map entry must be a [key, value] array, found {}",
                                entry.node_type()
                            ),
                        ));
                    };
                    let [k, v] = pair.as_slice() else {
                        return Err(value_error(
                            &entry_path,
                            format!("a map entry must have 2 elements, found {}", pair.len()),
                        ));
                    };
                    out.push((
                        json_to_value(key_schema, Some(k), options, &entry_path)?,
                        json_to_value(value_schema, Some(v), options, &entry_path)?,
                    ));
                }
                Value::Map(out)
            }
        }
        (SchemaType::Struct, Json::Object(_)) => {
            let mut values = Vec::with_capacity(schema.fields.len());
            for field in &schema.fields {
                values.push(json_to_value(
                    Some(&field.schema),
                    json.get(&field.name),
                    options,
                    &Path::Field(path, &field.name),
                )?);
            }
            Value::Struct(Struct {
                schema: schema.clone(),
                values,
            })
        }
        (SchemaType::Boolean, _) => return Err(mismatch("a boolean")),
        (SchemaType::Int8 | SchemaType::Int16 | SchemaType::Int32 | SchemaType::Int64, _)
        | (SchemaType::Float32 | SchemaType::Float64, _) => return Err(mismatch("a number")),
        (SchemaType::String, _) => return Err(mismatch("a string")),
        (SchemaType::Bytes, _) => return Err(mismatch("a base64 string")),
        (SchemaType::Array, _) => return Err(mismatch("an array")),
        (SchemaType::Struct, _) => return Err(mismatch("an object")),
    })
}

/// Java's `convertToConnect(null, node)`: integers become int64 (the low 64 bits, as
/// `BigInteger.longValue()`), other numbers float64, objects maps with string keys.
pub(crate) fn schemaless_value(json: &Json) -> Value {
    match json {
        Json::Null => Value::Null,
        Json::Bool(b) => Value::Boolean(*b),
        Json::Number(n) if json::is_integral(n) => Value::Int64(java_long_value(n)),
        Json::Number(n) => Value::Float64(n.parse().unwrap_or(f64::NAN)),
        Json::String(s) => Value::String(s.clone()),
        Json::Array(items) => Value::Array(items.iter().map(schemaless_value).collect()),
        Json::Object(entries) => Value::Map(
            entries
                .iter()
                .map(|(k, v)| (Value::String(k.clone()), schemaless_value(v)))
                .collect(),
        ),
    }
}

/// A [`Json`] as a `serde_json::Value`; numbers that fit neither i64, u64 nor a finite f64
/// (a `Decimal` of 30 digits written as a number) are kept as their text in a string.
pub(crate) fn to_serde(json: &Json) -> serde_json::Value {
    use serde_json::Value as S;
    match json {
        Json::Null => S::Null,
        Json::Bool(b) => S::Bool(*b),
        Json::Number(n) => {
            if json::is_integral(n) {
                if let Ok(i) = n.parse::<i64>() {
                    return S::from(i);
                }
                if let Ok(u) = n.parse::<u64>() {
                    return S::from(u);
                }
            }
            match n.parse::<f64>().ok().and_then(serde_json::Number::from_f64) {
                Some(f) => S::Number(f),
                None => S::String(n.clone()),
            }
        }
        Json::String(s) => S::String(s.clone()),
        Json::Array(items) => S::Array(items.iter().map(to_serde).collect()),
        Json::Object(entries) => S::Object(
            entries
                .iter()
                .map(|(k, v)| (k.clone(), to_serde(v)))
                .collect(),
        ),
    }
}

/// A `serde_json::Value` as a [`Json`].
pub(crate) fn from_serde(value: &serde_json::Value) -> Json {
    use serde_json::Value as S;
    match value {
        S::Null => Json::Null,
        S::Bool(b) => Json::Bool(*b),
        S::Number(n) => match (n.as_i64(), n.as_u64(), n.as_f64()) {
            (Some(i), _, _) => Json::int(i),
            (None, Some(u), _) => Json::Number(u.to_string()),
            // Keep the float a float: serde_json prints `1e20` or `3.0`.
            (None, None, Some(f)) => Json::float64(f),
            (None, None, None) => Json::Number(n.to_string()),
        },
        S::String(s) => Json::String(s.clone()),
        S::Array(items) => Json::Array(items.iter().map(from_serde).collect()),
        S::Object(entries) => Json::Object(
            entries
                .iter()
                .map(|(k, v)| (k.clone(), from_serde(v)))
                .collect(),
        ),
    }
}
