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
use std::sync::Arc;

use bytes::Bytes;

use super::json::{self, Json};
use super::{ConvertError, SchemaCache, decimal};
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
    /// The JSON text of the schemas last written (Java caches them too, `schemas.cache.size`):
    /// their text is most of an event's bytes (Debezium's envelope: ~3 KB of schema, ~0.3 KB
    /// of payload).
    pub schema_cache: SchemaCache<String>,
}

impl JsonConverter {
    /// A converter with `schemas.enable` and `options`.
    pub(crate) fn new(schemas_enable: bool, options: JsonOptions) -> JsonConverter {
        JsonConverter {
            schemas_enable,
            options,
            schema_cache: Default::default(),
        }
    }

    /// `schema`'s JSON text, from the cache when it was written before.
    fn schema_text(&self, schema: &Schema, shared: Option<&Arc<Schema>>) -> Arc<String> {
        let made = self.schema_cache.get_or_make(schema, shared, || {
            Ok::<_, std::convert::Infallible>(
                String::from_utf8(schema_to_json(schema, &self.options).to_bytes())
                    .unwrap_or_default(),
            )
        });
        match made {
            Ok(text) => text,
            Err(never) => match never {},
        }
    }

    fn write(
        &self,
        schema: Option<&Schema>,
        shared: Option<&Arc<Schema>>,
        value: &Value,
    ) -> Result<Option<Bytes>, ConvertError> {
        // Java: `if (schema == null && value == null) return null;` -- with a schema, a null
        // value is written (`{"schema":{...},"payload":null}` or `null`), not a tombstone.
        if schema.is_none() && value.is_null() {
            return Ok(None);
        }
        if !self.schemas_enable {
            let mut out = String::with_capacity(256);
            write_value(schema, value, &self.options, &Path::Root, &mut out)?;
            return Ok(Some(Bytes::from(out.into_bytes())));
        }
        let text = schema.map(|s| self.schema_text(s, shared));
        let mut out = String::with_capacity(text.as_ref().map_or(0, |t| t.len()) + 1024);
        out.push_str("{\"schema\":");
        out.push_str(text.as_deref().map_or("null", String::as_str));
        out.push_str(",\"payload\":");
        write_value(schema, value, &self.options, &Path::Root, &mut out)?;
        out.push('}');
        Ok(Some(Bytes::from(out.into_bytes())))
    }
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
        self.write(schema, None, value)
    }

    fn from_connect_shared(
        &self,
        _topic: &str,
        schema: Option<&Arc<Schema>>,
        value: &Value,
    ) -> Result<Option<Bytes>, ConvertError> {
        self.write(schema.map(|s| &**s), schema, value)
    }

    fn to_connect(
        &self,
        _topic: &str,
        bytes: Option<&[u8]>,
    ) -> Result<(Option<Arc<Schema>>, Value), ConvertError> {
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
        Ok((schema.map(Arc::new), value))
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

impl std::fmt::Display for Path<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.render())
    }
}

impl Path<'_> {
    pub(crate) fn render(&self) -> String {
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
/// A value's Connect type name, for messages.
pub(crate) fn value_type(value: &Value) -> &'static str {
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

/// Java's `JsonConverter.convertToJson`, as a [`Json`] tree (the same text as
/// [`write_value`] writes, read back).
pub(crate) fn value_to_json(
    schema: Option<&Schema>,
    value: &Value,
    options: &JsonOptions,
    path: &Path<'_>,
) -> Result<Json, ConvertError> {
    let mut text = String::new();
    write_value(schema, value, options, path, &mut text)?;
    Ok(reparse(&text))
}

/// JSON text this module wrote, as a tree (it always parses).
fn reparse(text: &str) -> Json {
    json::parse(text.as_bytes())
        .ok()
        .flatten()
        .unwrap_or(Json::Null)
}

/// Java's `JsonConverter.convertToJson`, written as JSON text straight to `out`: no tree is
/// built (a source converts every record; Debezium's payload alone is ~40 fields). On an
/// error `out` holds a partial text that the caller discards.
pub(crate) fn write_value(
    schema: Option<&Schema>,
    value: &Value,
    options: &JsonOptions,
    path: &Path<'_>,
    out: &mut String,
) -> Result<(), ConvertError> {
    let Some(schema) = schema else {
        return write_schemaless(value, options, path, out);
    };
    if value.is_null() {
        if let (Some(default), true) = (&schema.default, options.replace_null_with_default) {
            return write_value(Some(schema), default, options, path, out);
        }
        if schema.optional {
            out.push_str("null");
            return Ok(());
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
            if options.decimal_numeric {
                out.push_str(&decimal::to_text(unscaled, scale).map_err(bad)?);
            } else {
                // Java writes `BigInteger.toByteArray()`, the shortest form.
                write_base64(&decimal::minimal(unscaled).map_err(bad)?, out);
            }
            return Ok(());
        }
        Some(logical::DATE | logical::TIME) => {
            return match value {
                Value::Int32(v) => {
                    json::write_int(*v, out);
                    Ok(())
                }
                _ => Err(mismatch()),
            };
        }
        Some(logical::TIMESTAMP) => {
            return match value {
                Value::Int64(v) => {
                    json::write_int(*v, out);
                    Ok(())
                }
                _ => Err(mismatch()),
            };
        }
        _ => {}
    }
    match (schema.kind, value) {
        (SchemaType::Int8, Value::Int8(v)) => json::write_int(*v, out),
        (SchemaType::Int16, Value::Int16(v)) => json::write_int(*v, out),
        (SchemaType::Int32, Value::Int32(v)) => json::write_int(*v, out),
        (SchemaType::Int64, Value::Int64(v)) => json::write_int(*v, out),
        (SchemaType::Float32, Value::Float32(v)) => Json::float32(*v).write_to(out),
        (SchemaType::Float64, Value::Float64(v)) => Json::float64(*v).write_to(out),
        (SchemaType::Boolean, Value::Boolean(v)) => out.push_str(if *v { "true" } else { "false" }),
        (SchemaType::String, Value::String(v)) => json::write_string(v, out),
        (SchemaType::Bytes, Value::Bytes(v)) => write_base64(v, out),
        (SchemaType::Array, Value::Array(items)) => {
            let items_schema = schema.key_or_items.as_deref();
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_value(items_schema, item, options, &Path::Index(path, i), out)?;
            }
            out.push(']');
        }
        (SchemaType::Map, Value::Map(entries)) => {
            let key_schema = schema.key_or_items.as_deref();
            let value_schema = schema.map_value.as_deref();
            let object_mode = key_schema.is_some_and(|k| k.kind == SchemaType::String);
            write_map(
                entries,
                key_schema,
                value_schema,
                object_mode,
                options,
                path,
                out,
            )?;
        }
        (SchemaType::Struct, Value::Struct(st)) => {
            if !std::ptr::eq(&*st.schema, schema) && *st.schema != *schema {
                return Err(value_error(
                    path,
                    "the struct's own schema differs from the schema it is written with (Java: \"Mismatching schema.\")",
                ));
            }
            write_struct(st, options, path, out)?;
        }
        _ => return Err(mismatch()),
    }
    Ok(())
}

fn write_base64(bytes: &[u8], out: &mut String) {
    // Base64 needs no escaping.
    out.push('"');
    BASE64.encode_string(bytes, out);
    out.push('"');
}

fn write_map(
    entries: &[(Value, Value)],
    key_schema: Option<&Schema>,
    value_schema: Option<&Schema>,
    object_mode: bool,
    options: &JsonOptions,
    path: &Path<'_>,
    out: &mut String,
) -> Result<(), ConvertError> {
    if !object_mode {
        // Maps with non-string keys are arrays of [key, value] pairs.
        out.push('[');
        for (i, (k, v)) in entries.iter().enumerate() {
            let entry_path = Path::Index(path, i);
            out.push_str(if i > 0 { ",[" } else { "[" });
            write_value(key_schema, k, options, &entry_path, out)?;
            out.push(',');
            write_value(value_schema, v, options, &entry_path, out)?;
            out.push(']');
        }
        out.push(']');
        return Ok(());
    }
    // Java: `obj.set(mapKey.asText(), mapValue)`, a repeated key replacing the earlier value
    // in place; each key is Jackson's `asText()` of the key written as JSON.
    let mut object: Vec<(String, String)> = Vec::with_capacity(entries.len());
    for (i, (k, v)) in entries.iter().enumerate() {
        let entry_path = Path::Index(path, i);
        let mut key = String::new();
        write_value(key_schema, k, options, &entry_path, &mut key)?;
        let key = reparse(&key).as_text();
        let mut value = String::new();
        write_value(value_schema, v, options, &entry_path, &mut value)?;
        match object.iter_mut().find(|(existing, _)| *existing == key) {
            Some(entry) => entry.1 = value,
            None => object.push((key, value)),
        }
    }
    out.push('{');
    for (i, (k, v)) in object.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        json::write_string(k, out);
        out.push(':');
        out.push_str(v);
    }
    out.push('}');
    Ok(())
}

fn write_struct(
    st: &Struct,
    options: &JsonOptions,
    path: &Path<'_>,
    out: &mut String,
) -> Result<(), ConvertError> {
    out.push('{');
    for (i, field) in st.schema.fields.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        json::write_string(&field.name, out);
        out.push(':');
        let value = st.values.get(i).unwrap_or(&Value::Null);
        write_value(
            Some(&field.schema),
            value,
            options,
            &Path::Field(path, &field.name),
            out,
        )?;
    }
    out.push('}');
    Ok(())
}

/// Java's `convertToJson(null, value)`: the value's own type decides. A struct is written
/// with its own schema (Java refuses a struct without a schema as "Mismatching schema.").
fn write_schemaless(
    value: &Value,
    options: &JsonOptions,
    path: &Path<'_>,
    out: &mut String,
) -> Result<(), ConvertError> {
    match value {
        Value::Null => out.push_str("null"),
        Value::Boolean(v) => out.push_str(if *v { "true" } else { "false" }),
        Value::Int8(v) => json::write_int(*v, out),
        Value::Int16(v) => json::write_int(*v, out),
        Value::Int32(v) => json::write_int(*v, out),
        Value::Int64(v) => json::write_int(*v, out),
        Value::Float32(v) => Json::float32(*v).write_to(out),
        Value::Float64(v) => Json::float64(*v).write_to(out),
        Value::String(v) => json::write_string(v, out),
        Value::Bytes(v) => write_base64(v, out),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_schemaless(item, options, &Path::Index(path, i), out)?;
            }
            out.push(']');
        }
        Value::Map(entries) => {
            // Java: object mode only when every key is a string.
            let object_mode = entries.iter().all(|(k, _)| matches!(k, Value::String(_)));
            write_map(entries, None, None, object_mode, options, path, out)?;
        }
        Value::Struct(st) => write_struct(st, options, path, out)?,
    }
    Ok(())
}

/// As [`write_schemaless`], never failing: a struct that does not fit its own schema is
/// written field by field without it.
pub(crate) fn schemaless_to_json_lenient(value: &Value, options: &JsonOptions) -> Json {
    let mut text = String::new();
    write_lenient(value, options, &mut text);
    reparse(&text)
}

fn write_lenient(value: &Value, options: &JsonOptions, out: &mut String) {
    let mark = out.len();
    match value {
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_lenient(item, options, out);
            }
            out.push(']');
        }
        Value::Map(entries) => {
            let object_mode = entries.iter().all(|(k, _)| matches!(k, Value::String(_)));
            out.push(if object_mode { '{' } else { '[' });
            for (i, (k, v)) in entries.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                match (object_mode, k) {
                    (true, Value::String(k)) => {
                        json::write_string(k, out);
                        out.push(':');
                    }
                    _ => {
                        out.push('[');
                        write_lenient(k, options, out);
                        out.push(',');
                    }
                }
                write_lenient(v, options, out);
                if !object_mode {
                    out.push(']');
                }
            }
            out.push(if object_mode { '}' } else { ']' });
        }
        Value::Struct(st) => {
            if write_struct(st, options, &Path::Root, out).is_err() {
                out.truncate(mark);
                out.push('{');
                for (i, (name, v)) in st.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    json::write_string(name, out);
                    out.push(':');
                    write_lenient(v, options, out);
                }
                out.push('}');
            }
        }
        other => {
            if write_schemaless(other, options, &Path::Root, out).is_err() {
                out.truncate(mark);
                out.push_str("null");
            }
        }
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

/// What Jackson's default base64 variant reads, for messages.
const BASE64_FORM: &str = "base64 (standard alphabet, padded)";

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
                    let raw = decode_base64(text).map_err(|_| {
                        value_error(path, format!("a Decimal string must be {BASE64_FORM}"))
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
        // Jackson writes non-finite doubles as the strings "NaN", "Infinity", "-Infinity";
        // Java reads those back as 0.0 (`TextNode.doubleValue()`), Spate as what was written.
        (SchemaType::Float32, Json::String(s)) => {
            Value::Float32(non_finite(s).ok_or_else(|| mismatch("a number"))? as f32)
        }
        (SchemaType::Float64, Json::String(s)) => {
            Value::Float64(non_finite(s).ok_or_else(|| mismatch("a number"))?)
        }
        (SchemaType::String, Json::String(s)) => Value::String(s.clone()),
        (SchemaType::Bytes, Json::String(s)) => {
            Value::Bytes(Bytes::from(decode_base64(s).map_err(|_| {
                value_error(path, format!("bytes must be {BASE64_FORM}"))
            })?))
        }
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
                schema: schema.clone().into(),
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

/// The non-finite double Jackson writes as `s`.
fn non_finite(s: &str) -> Option<f64> {
    match s {
        "NaN" => Some(f64::NAN),
        "Infinity" => Some(f64::INFINITY),
        "-Infinity" => Some(f64::NEG_INFINITY),
        _ => None,
    }
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

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::config::Props;
    use crate::convert::{Converter, converter};

    fn json_converter(props: &[(&str, &str)]) -> Box<dyn Converter> {
        let props: Props = props
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        converter("org.apache.kafka.connect.json.JsonConverter", &props, false)
            .expect("valid config")
    }

    #[test]
    fn a_schema_that_changes_under_the_same_name_is_written_anew() {
        let c = json_converter(&[]);
        let one = Schema::structure(Some("row"), vec![("a", Schema::new(SchemaType::Int32))]);
        let two = Schema::structure(
            Some("row"),
            vec![
                ("a", Schema::new(SchemaType::Int32)),
                ("b", Schema::optional(SchemaType::String)),
            ],
        );
        let value = |schema: &Schema| {
            let mut s = Struct::new(schema.clone());
            s.put("a", Value::Int32(1));
            Value::Struct(s)
        };
        let text = |schema: &Schema| {
            let bytes = c
                .from_connect("t", Some(schema), &value(schema))
                .expect("converts")
                .expect("not null");
            String::from_utf8(bytes.to_vec()).expect("utf-8")
        };
        let first = text(&one);
        assert_eq!(text(&one), first, "the cached schema text is the same");
        let second = text(&two);
        assert!(
            second.contains(r#""field":"b""#) && !first.contains(r#""field":"b""#),
            "{second}"
        );
        assert_eq!(text(&one), first);
    }

    /// Connect's `Timestamp.SCHEMA`: `SchemaBuilder.int64().name(LOGICAL_NAME).version(1)`.
    fn timestamp() -> Schema {
        Schema {
            version: Some(1),
            ..Schema::new(SchemaType::Int64).with_name(logical::TIMESTAMP)
        }
    }

    /// Connect's `Date.SCHEMA`.
    fn date() -> Schema {
        Schema {
            version: Some(1),
            ..Schema::new(SchemaType::Int32).with_name(logical::DATE)
        }
    }

    /// Connect's `Decimal.schema(scale)`: bytes, named, version 1, a `scale` parameter.
    fn decimal(scale: i32) -> Schema {
        Schema {
            version: Some(1),
            parameters: BTreeMap::from([("scale".to_string(), scale.to_string())]),
            ..Schema::new(SchemaType::Bytes).with_name(logical::DECIMAL)
        }
    }

    fn order_schema() -> Schema {
        Schema::structure(
            Some("com.example.Order"),
            vec![
                ("note", Schema::optional(SchemaType::String)),
                ("ts", timestamp()),
                ("price", decimal(2)),
                ("tags", Schema::array(Schema::new(SchemaType::String))),
                (
                    "counts",
                    Schema::map(
                        Schema::new(SchemaType::Int32),
                        Schema::new(SchemaType::Int64),
                    ),
                ),
            ],
        )
    }

    fn order() -> Value {
        let mut order = Struct::new(order_schema());
        order.put("ts", Value::Int64(1_700_000_000_000));
        // 123.45 at scale 2: unscaled 12345 = 0x3039.
        order.put("price", Value::Bytes(Bytes::from_static(&[0x30, 0x39])));
        order.put(
            "tags",
            Value::Array(vec![Value::String("a".into()), Value::String("b".into())]),
        );
        order.put(
            "counts",
            Value::Map(vec![
                (Value::Int32(1), Value::Int64(10)),
                (Value::Int32(2), Value::Int64(20)),
            ]),
        );
        Value::Struct(order)
    }

    const ORDER_SCHEMA_JSON: &str = concat!(
        r#"{"type":"struct","fields":["#,
        r#"{"type":"string","optional":true,"field":"note"},"#,
        r#"{"type":"int64","optional":false,"name":"org.apache.kafka.connect.data.Timestamp","version":1,"field":"ts"},"#,
        r#"{"type":"bytes","optional":false,"name":"org.apache.kafka.connect.data.Decimal","version":1,"parameters":{"scale":"2"},"field":"price"},"#,
        r#"{"type":"array","items":{"type":"string","optional":false},"optional":false,"field":"tags"},"#,
        r#"{"type":"map","keys":{"type":"int32","optional":false},"values":{"type":"int64","optional":false},"optional":false,"field":"counts"}"#,
        r#"],"optional":false,"name":"com.example.Order"}"#
    );

    /// Golden cases: (config, schema, value, the bytes Java's JsonConverter writes). Each is
    /// also read back and must give the schema and value again.
    /// A golden case: converter config, schema, value, the JSON Java writes.
    type Golden = (
        &'static [(&'static str, &'static str)],
        Option<Schema>,
        Value,
        String,
    );

    fn golden() -> Vec<Golden> {
        let opt_int_default = Schema {
            default: Some(Box::new(Value::Int32(42))),
            ..Schema::optional(SchemaType::Int32)
        };
        vec![
            (
                &[],
                Some(order_schema()),
                order(),
                format!(
                    r#"{{"schema":{ORDER_SCHEMA_JSON},"payload":{{"note":null,"ts":1700000000000,"price":"MDk=","tags":["a","b"],"counts":[[1,10],[2,20]]}}}}"#
                ),
            ),
            (
                &[("schemas.enable", "false")],
                Some(order_schema()),
                order(),
                r#"{"note":null,"ts":1700000000000,"price":"MDk=","tags":["a","b"],"counts":[[1,10],[2,20]]}"#
                    .to_string(),
            ),
            (
                &[("schemas.enable", "false"), ("decimal.format", "NUMERIC")],
                Some(order_schema()),
                order(),
                r#"{"note":null,"ts":1700000000000,"price":123.45,"tags":["a","b"],"counts":[[1,10],[2,20]]}"#
                    .to_string(),
            ),
            // JsonConverterTest.booleanToJson
            (
                &[],
                Some(Schema::new(SchemaType::Boolean)),
                Value::Boolean(true),
                r#"{"schema":{"type":"boolean","optional":false},"payload":true}"#.to_string(),
            ),
            // JsonConverterTest.decimalToJson: 1.56 at scale 2 is "AJw=".
            (
                &[],
                Some(decimal(2)),
                Value::Bytes(Bytes::from_static(&[0x00, 0x9C])),
                r#"{"schema":{"type":"bytes","optional":false,"name":"org.apache.kafka.connect.data.Decimal","version":1,"parameters":{"scale":"2"}},"payload":"AJw="}"#
                    .to_string(),
            ),
            (
                &[("decimal.format", "numeric")],
                Some(decimal(2)),
                Value::Bytes(Bytes::from_static(&[0x00, 0x9C])),
                r#"{"schema":{"type":"bytes","optional":false,"name":"org.apache.kafka.connect.data.Decimal","version":1,"parameters":{"scale":"2"}},"payload":1.56}"#
                    .to_string(),
            ),
            (
                &[],
                Some(date()),
                Value::Int32(19_000),
                r#"{"schema":{"type":"int32","optional":false,"name":"org.apache.kafka.connect.data.Date","version":1},"payload":19000}"#
                    .to_string(),
            ),
            // Java names the float types `float` and `double`, and prints with
            // Float.toString / Double.toString.
            (
                &[],
                Some(Schema::new(SchemaType::Float32)),
                Value::Float32(1.1),
                r#"{"schema":{"type":"float","optional":false},"payload":1.1}"#.to_string(),
            ),
            (
                &[],
                Some(Schema::new(SchemaType::Float64)),
                Value::Float64(1e7),
                r#"{"schema":{"type":"double","optional":false},"payload":1.0E7}"#.to_string(),
            ),
            // A schema with a null value is written, not turned into a tombstone (Java only
            // returns null when the schema is null too).
            (
                &[],
                Some(Schema::optional(SchemaType::String)),
                Value::Null,
                r#"{"schema":{"type":"string","optional":true},"payload":null}"#.to_string(),
            ),
            (
                &[],
                Some(Schema {
                    doc: Some("a \"doc\"".into()),
                    ..Schema::optional(SchemaType::Int8)
                }),
                Value::Int8(-5),
                r#"{"schema":{"type":"int8","optional":true,"doc":"a \"doc\""},"payload":-5}"#.to_string(),
            ),
            (
                &[],
                Some(opt_int_default.clone()),
                Value::Int32(7),
                r#"{"schema":{"type":"int32","optional":true,"default":42},"payload":7}"#.to_string(),
            ),
            (
                &[],
                Some(Schema::map(
                    Schema::new(SchemaType::String),
                    Schema::optional(SchemaType::Bytes),
                )),
                Value::Map(vec![
                    (Value::String("k".into()), Value::Bytes(Bytes::from_static(b"hi"))),
                    (Value::String("z".into()), Value::Null),
                ]),
                r#"{"schema":{"type":"map","keys":{"type":"string","optional":false},"values":{"type":"bytes","optional":true},"optional":false},"payload":{"k":"aGk=","z":null}}"#
                    .to_string(),
            ),
            (
                &[],
                None,
                Value::map_of([
                    ("a", Value::Int64(1)),
                    (
                        "b",
                        Value::Array(vec![
                            Value::Float64(1.5),
                            Value::String("x".into()),
                            Value::Null,
                            Value::Boolean(true),
                        ]),
                    ),
                ]),
                r#"{"schema":null,"payload":{"a":1,"b":[1.5,"x",null,true]}}"#.to_string(),
            ),
        ]
    }

    #[test]
    fn writes_golden_json_and_reads_it_back() {
        for (props, schema, value, want) in golden() {
            let conv = json_converter(props);
            let bytes = conv
                .from_connect("t", schema.as_ref(), &value)
                .expect("converts")
                .expect("not null");
            assert_eq!(String::from_utf8_lossy(&bytes), want, "{props:?}");
            let (read_schema, read_value) = conv.to_connect("t", Some(&bytes)).expect("reads back");
            if props.contains(&("schemas.enable", "false")) {
                // Without the envelope the schema is gone: the value reads as plain JSON.
                assert_eq!(read_schema, None);
                assert_eq!(
                    read_value,
                    schemaless_value(&json::parse(&bytes).expect("json").expect("some"))
                );
            } else {
                assert_eq!(read_schema.as_deref(), schema.as_ref(), "{want}");
                assert_eq!(read_value, value, "{want}");
            }
        }
    }

    #[test]
    fn non_finite_floats_are_written_as_jackson_quotes_them() {
        let conv = json_converter(&[("schemas.enable", "false")]);
        let schema = Schema::new(SchemaType::Float64);
        for (v, text) in [
            (f64::INFINITY, "\"Infinity\""),
            (f64::NEG_INFINITY, "\"-Infinity\""),
        ] {
            let bytes = conv
                .from_connect("t", Some(&schema), &Value::Float64(v))
                .expect("writes")
                .expect("some");
            assert_eq!(String::from_utf8_lossy(&bytes), text);
            let back = json_to_value(
                Some(&schema),
                json::parse(&bytes).expect("json").as_ref(),
                &JsonOptions::default(),
                &Path::Root,
            )
            .expect("reads");
            assert_eq!(back, Value::Float64(v));
        }
    }

    #[test]
    fn null_without_schema_is_a_tombstone_both_ways() {
        let conv = json_converter(&[]);
        assert_eq!(
            conv.from_connect("t", None, &Value::Null).expect("ok"),
            None
        );
        assert_eq!(conv.to_connect("t", None).expect("ok"), (None, Value::Null));
    }

    #[test]
    fn replace_null_with_default_controls_nulls_both_ways() {
        let schema = Schema::structure(
            None,
            vec![(
                "n",
                Schema {
                    default: Some(Box::new(Value::Int32(42))),
                    ..Schema::optional(SchemaType::Int32)
                },
            )],
        );
        let value = Value::Struct(Struct::new(schema.clone()));
        let on = json_converter(&[("schemas.enable", "false")]);
        let off = json_converter(&[
            ("schemas.enable", "false"),
            ("replace.null.with.default", "false"),
        ]);
        let write = |c: &dyn Converter| {
            let b = c
                .from_connect("t", Some(&schema), &value)
                .expect("ok")
                .expect("some");
            String::from_utf8_lossy(&b).into_owned()
        };
        assert_eq!(write(on.as_ref()), r#"{"n":42}"#);
        assert_eq!(write(off.as_ref()), r#"{"n":null}"#);

        let envelope = format!(
            r#"{{"schema":{},"payload":{{"n":null}}}}"#,
            String::from_utf8_lossy(&schema_to_json(&schema, &JsonOptions::default()).to_bytes())
        );
        let read = |props: &[(&str, &str)]| {
            json_converter(props)
                .to_connect("t", Some(envelope.as_bytes()))
                .expect("reads")
                .1
        };
        assert_eq!(read(&[]).get("n"), Some(&Value::Int32(42)));
        assert_eq!(
            read(&[("replace.null.with.default", "false")]).get("n"),
            Some(&Value::Null)
        );
    }

    #[test]
    fn schemaless_json_reads_as_java_does() {
        let conv = json_converter(&[("schemas.enable", "false")]);
        let (schema, value) = conv
            .to_connect(
                "t",
                Some(br#"{"i":3,"f":3.0,"e":1e2,"big":18446744073709551617,"s":"x","n":null,"a":[true]}"#),
            )
            .expect("reads");
        assert_eq!(schema, None);
        assert_eq!(
            value,
            Value::map_of([
                ("i", Value::Int64(3)),
                ("f", Value::Float64(3.0)),
                ("e", Value::Float64(100.0)),
                // BigInteger.longValue(): the low 64 bits of 2^64 + 1.
                ("big", Value::Int64(1)),
                ("s", Value::String("x".into())),
                ("n", Value::Null),
                ("a", Value::Array(vec![Value::Boolean(true)])),
            ])
        );
        // Empty bytes are Jackson's MissingNode, which reads as null.
        assert_eq!(
            conv.to_connect("t", Some(b"")).expect("ok"),
            (None, Value::Null)
        );
    }

    #[test]
    fn decimals_read_from_numbers_keep_every_digit() {
        let conv = json_converter(&[]);
        let schema = String::from_utf8_lossy(
            &schema_to_json(&decimal(2), &JsonOptions::default()).to_bytes(),
        )
        .into_owned();
        let read = |payload: &str| {
            conv.to_connect(
                "t",
                Some(format!(r#"{{"schema":{schema},"payload":{payload}}}"#).as_bytes()),
            )
            .map(|(_, v)| v)
        };
        // 12345678901234567890.12 has more digits than a double keeps.
        let value = read("12345678901234567890.12").expect("reads");
        let Value::Bytes(unscaled) = &value else {
            panic!("bytes expected, got {value:?}");
        };
        assert_eq!(
            decimal::to_text(unscaled, 2).expect("valid"),
            "12345678901234567890.12"
        );
        assert_eq!(
            read("\"AJw=\"").expect("reads"),
            Value::Bytes(Bytes::from_static(&[0x00, 0x9C]))
        );
        let err = read("1.234").expect_err("too many digits for scale 2");
        assert!(err.to_string().contains("scale 2"), "{err}");
    }

    #[test]
    fn missing_envelope_gives_javas_message() {
        let conv = json_converter(&[]);
        for input in [
            &br#"{"a":1}"#[..],
            br#"{"schema":null}"#,
            br#"{"schema":null,"payload":1,"extra":2}"#,
            b"[1]",
            b"42",
            b"",
        ] {
            let err = conv.to_connect("t", Some(input)).expect_err("no envelope");
            assert_eq!(err, ConvertError::MissingEnvelope);
            assert_eq!(
                err.to_string(),
                "JsonConverter with schemas.enable requires \"schema\" and \"payload\" fields and may not contain additional fields. If you are trying to deserialize plain JSON data, set schemas.enable=false in your converter configuration."
            );
        }
    }

    #[test]
    fn read_errors_say_where_and_why() {
        let conv = json_converter(&[]);
        for (input, want) in [
            (&b"{\"schema\":"[..], "the data is not JSON: unexpected end of input at byte 10"),
            (
                br#"{"schema":{"type":"int32","optional":false},"payload":null}"#,
                "cannot convert the value at $: null or missing value for a required int32 with no default",
            ),
            (
                br#"{"schema":{"type":"struct","fields":[{"type":"int64","optional":false,"field":"id"}],"optional":false},"payload":{}}"#,
                "cannot convert the value at $.id: null or missing value for a required int64 with no default",
            ),
            (
                br#"{"schema":{"type":"array","items":{"type":"int32","optional":false},"optional":false},"payload":[1,"two"]}"#,
                "cannot convert the value at $[1]: expected a number for the schema's int32 but found STRING",
            ),
            (
                br#"{"schema":{"type":"map","keys":{"type":"int32","optional":false},"values":{"type":"int32","optional":false},"optional":false},"payload":{"1":2}}"#,
                "cannot convert the value at $: expected a JSON array of [key, value] pairs (a map with non-string keys) for the schema's map but found OBJECT",
            ),
            (
                br#"{"schema":{"type":"map","keys":{"type":"int32","optional":false},"values":{"type":"int32","optional":false},"optional":false},"payload":[[1,2,3]]}"#,
                "cannot convert the value at $[0]: a map entry must have 2 elements, found 3",
            ),
            (
                br#"{"schema":{"optional":false},"payload":1}"#,
                "invalid schema at $: a schema needs a string \"type\" field",
            ),
            (
                br#"{"schema":{"type":"float64"},"payload":1}"#,
                "invalid schema at $: unknown schema type \"float64\"; JSON schemas name it \"float\" or \"double\"",
            ),
            (
                br#"{"schema":{"type":"struct","fields":[{"type":"array","field":"a"}]},"payload":{}}"#,
                "invalid schema at $.fields[0]: an array schema needs \"items\"",
            ),
            (
                br#"{"schema":{"type":"string","parameters":{"n":1}},"payload":"x"}"#,
                "invalid schema at $.parameters: parameter \"n\" must be a string",
            ),
            (
                br#"{"schema":{"type":"int32","name":"org.apache.kafka.connect.data.Date"},"payload":3000000000}"#,
                "cannot convert the value at $: expected an integer of 32 bits for the schema's org.apache.kafka.connect.data.Date but found NUMBER",
            ),
            (
                br#"{"schema":{"type":"bytes"},"payload":"not base64!"}"#,
                "cannot convert the value at $: bytes must be base64 (standard alphabet, padded)",
            ),
        ] {
            let err = conv.to_connect("t", Some(input)).expect_err("refused");
            assert_eq!(err.to_string(), want, "{}", String::from_utf8_lossy(input));
        }
    }

    #[test]
    fn write_errors_say_where_and_why() {
        let conv = json_converter(&[]);
        let schema = Schema::structure(None, vec![("id", Schema::new(SchemaType::Int64))]);
        let mut bad_type = Struct::new(schema.clone());
        bad_type.put("id", Value::Int32(1));
        for (schema, value, want) in [
            (
                schema.clone(),
                Value::Struct(Struct::new(schema.clone())),
                "cannot convert the value at $.id: null for a required int64 with no default; make the schema optional or give it a default",
            ),
            (
                schema.clone(),
                Value::Struct(bad_type),
                "cannot convert the value at $.id: expected a int64 value for the schema but found int32",
            ),
            (
                Schema::structure(None, vec![]),
                Value::Struct(Struct::new(schema.clone())),
                "cannot convert the value at $: the struct's own schema differs from the schema it is written with (Java: \"Mismatching schema.\")",
            ),
            (
                Schema::new(SchemaType::Bytes).with_name(logical::DECIMAL),
                Value::Bytes(Bytes::from_static(&[1])),
                "cannot convert the value at $: the Decimal schema has no integer \"scale\" parameter; add one",
            ),
        ] {
            let err = conv
                .from_connect("t", Some(&schema), &value)
                .expect_err("refused");
            assert_eq!(err.to_string(), want);
        }
    }

    #[test]
    fn schema_defaults_and_metadata_round_trip() {
        let schema = Schema {
            version: Some(3),
            doc: Some("an order".into()),
            parameters: BTreeMap::from([("a".into(), "1".into()), ("b".into(), "2".into())]),
            default: None,
            ..Schema::structure(
                Some("x.Y"),
                vec![
                    (
                        "d",
                        Schema {
                            default: Some(Box::new(Value::Bytes(Bytes::from_static(&[
                                0x04, 0xD2,
                            ])))),
                            ..decimal(1)
                        },
                    ),
                    (
                        "m",
                        Schema {
                            default: Some(Box::new(Value::Map(vec![(
                                Value::Int64(1),
                                Value::String("one".into()),
                            )]))),
                            ..Schema::map(
                                Schema::new(SchemaType::Int64),
                                Schema::new(SchemaType::String),
                            )
                            .into_optional()
                        },
                    ),
                ],
            )
            .into_optional()
        };
        let json = schema_to_json(&schema, &JsonOptions::default());
        assert_eq!(
            String::from_utf8_lossy(&json.to_bytes()),
            concat!(
                r#"{"type":"struct","fields":["#,
                r#"{"type":"bytes","optional":false,"name":"org.apache.kafka.connect.data.Decimal","version":1,"parameters":{"scale":"1"},"default":"BNI=","field":"d"},"#,
                r#"{"type":"map","keys":{"type":"int64","optional":false},"values":{"type":"string","optional":false},"optional":true,"default":[[1,"one"]],"field":"m"}"#,
                r#"],"optional":true,"name":"x.Y","version":3,"doc":"an order","parameters":{"a":"1","b":"2"}}"#
            )
        );
        assert_eq!(
            json_to_schema(&json, &JsonOptions::default(), &Path::Root).expect("reads"),
            schema
        );
    }

    #[test]
    fn public_helpers_speak_plain_json() {
        let value = order();
        let json = crate::convert::connect_to_json(Some(&order_schema()), &value);
        assert_eq!(
            json.to_string(),
            r#"{"note":null,"ts":1700000000000,"price":"MDk=","tags":["a","b"],"counts":[[1,10],[2,20]]}"#
        );
        // A struct without a schema is written with its own.
        assert_eq!(crate::convert::connect_to_json(None, &value), json);
        // A value that does not fit the schema is written by its own type.
        assert_eq!(
            crate::convert::connect_to_json(
                Some(&Schema::new(SchemaType::String)),
                &Value::Int32(5)
            ),
            serde_json::json!(5)
        );
        assert_eq!(
            crate::convert::json_value_to_connect(
                &serde_json::json!({"a": [1, 2.5, "x", null], "b": u64::MAX})
            ),
            Value::map_of([
                (
                    "a",
                    Value::Array(vec![
                        Value::Int64(1),
                        Value::Float64(2.5),
                        Value::String("x".into()),
                        Value::Null
                    ])
                ),
                ("b", Value::Int64(-1)),
            ])
        );
        let schema_json = crate::convert::schema_to_json(&order_schema());
        assert_eq!(schema_json.to_string(), ORDER_SCHEMA_JSON);
        assert_eq!(
            crate::convert::schema_from_json(&schema_json).expect("reads"),
            order_schema()
        );
    }

    #[test]
    fn deep_nesting_is_refused_not_a_stack_overflow() {
        let conv = json_converter(&[("schemas.enable", "false")]);
        let ok = format!(
            "{}{}",
            "[".repeat(json::MAX_DEPTH),
            "]".repeat(json::MAX_DEPTH)
        );
        let (_, value) = conv.to_connect("t", Some(ok.as_bytes())).expect("reads");
        let back = conv
            .from_connect("t", None, &value)
            .expect("writes")
            .expect("some");
        assert_eq!(back, ok.as_bytes());
        let deep = format!("[{ok}]");
        assert!(matches!(
            conv.to_connect("t", Some(deep.as_bytes())),
            Err(ConvertError::InvalidJson { .. })
        ));
    }
}
