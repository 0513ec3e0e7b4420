//! Confluent's `ProtobufData`: a Protobuf message of a registered schema to a Connect struct
//! (read), and a Connect struct to a proto3 schema and message (write, [`from_connect_schema`],
//! [`encode`]). Each message is a struct named by the message's full name with its fields
//! in declaration order, all optional (proto3 has no required fields); `uint32`, `fixed32`
//! and the 64-bit integers are int64, enums strings, `repeated` an array, `map` a map,
//! `google.protobuf.Timestamp` Connect's Timestamp, the wrapper types optional primitives.
//! Fields of a `oneof` are plain optional fields (Confluent makes a union struct of them).
//!
//! The payload starts with Confluent's message-index list (zigzag varints: a count, then the
//! message's path through the file; the single byte 0 for the first message).

use bytes::Bytes;
use prost_reflect::{
    DynamicMessage, FieldDescriptor, Kind, MessageDescriptor, ReflectMessage as _, Value as PValue,
};

use super::ConvertError;
use crate::data::{Field, Schema, SchemaType, Struct, Value, logical};

/// Message indexes in one payload at most.
const MAX_MESSAGE_INDEXES: usize = 64;
/// Message nesting followed at most (recursive messages stop here).
const MAX_DEPTH: usize = 32;

fn wire_error(reason: impl Into<String>) -> ConvertError {
    ConvertError::WireFormat {
        reason: reason.into(),
    }
}

fn read_zigzag(buf: &mut &[u8]) -> Result<i32, ConvertError> {
    let mut raw: u32 = 0;
    for shift in (0..35).step_by(7) {
        let (&byte, rest) = buf
            .split_first()
            .ok_or_else(|| wire_error("the payload ends inside its message-index list"))?;
        *buf = rest;
        raw |= u32::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Ok(((raw >> 1) as i32) ^ -((raw & 1) as i32));
        }
    }
    Err(wire_error("a message index is longer than 5 bytes"))
}

/// The message a payload's index list names in `file`, and the message's bytes.
pub(crate) fn split_payload<'p>(
    file: &prost_reflect::FileDescriptor,
    payload: &'p [u8],
) -> Result<(MessageDescriptor, &'p [u8]), ConvertError> {
    let mut rest = payload;
    let count = read_zigzag(&mut rest)?;
    let path = if count == 0 {
        vec![0]
    } else {
        let count = usize::try_from(count)
            .ok()
            .filter(|&c| c <= MAX_MESSAGE_INDEXES)
            .ok_or_else(|| {
                wire_error(format!(
                    "{count} message indexes (at most {MAX_MESSAGE_INDEXES})"
                ))
            })?;
        let mut path = Vec::with_capacity(count);
        for _ in 0..count {
            path.push(read_zigzag(&mut rest)?);
        }
        path
    };
    let out_of_range = |index: i32| wire_error(format!("message index {index} is out of range"));
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

/// The Connect schema of a message.
pub(crate) fn message_schema(message: &MessageDescriptor) -> Result<Schema, ConvertError> {
    message_schema_at(message, 0)
}

fn message_schema_at(message: &MessageDescriptor, depth: usize) -> Result<Schema, ConvertError> {
    if depth > MAX_DEPTH {
        return Err(ConvertError::InvalidSchema {
            path: message.full_name().to_string(),
            reason: format!(
                "messages nest deeper than {MAX_DEPTH} (recursive messages are not supported)"
            ),
        });
    }
    let mut s = Schema::new(SchemaType::Struct).with_name(message.full_name());
    for field in message.fields() {
        s.fields.push(Field {
            name: field.name().to_string(),
            schema: field_schema(&field, depth)?.into_optional(),
        });
    }
    Ok(s)
}

fn field_schema(field: &FieldDescriptor, depth: usize) -> Result<Schema, ConvertError> {
    if field.is_map() {
        let Kind::Message(entry) = field.kind() else {
            return Err(ConvertError::InvalidSchema {
                path: field.full_name().to_string(),
                reason: "a map field is not a message".to_string(),
            });
        };
        let key = entry.map_entry_key_field();
        let value = entry.map_entry_value_field();
        return Ok(Schema::map(
            kind_schema(&key.kind(), depth)?,
            kind_schema(&value.kind(), depth)?.into_optional(),
        ));
    }
    let item = kind_schema(&field.kind(), depth)?;
    Ok(if field.is_list() {
        Schema::array(item)
    } else {
        item
    })
}

fn kind_schema(kind: &Kind, depth: usize) -> Result<Schema, ConvertError> {
    Ok(match kind {
        Kind::Double => Schema::new(SchemaType::Float64),
        Kind::Float => Schema::new(SchemaType::Float32),
        Kind::Int32 | Kind::Sint32 | Kind::Sfixed32 => Schema::new(SchemaType::Int32),
        Kind::Int64
        | Kind::Sint64
        | Kind::Sfixed64
        | Kind::Uint32
        | Kind::Fixed32
        | Kind::Uint64
        | Kind::Fixed64 => Schema::new(SchemaType::Int64),
        Kind::Bool => Schema::new(SchemaType::Boolean),
        Kind::String => Schema::new(SchemaType::String),
        Kind::Bytes => Schema::new(SchemaType::Bytes),
        Kind::Enum(e) => Schema::new(SchemaType::String).with_name(e.full_name()),
        Kind::Message(m) => match m.full_name() {
            "google.protobuf.Timestamp" => {
                let mut s = Schema::new(SchemaType::Int64).with_name(logical::TIMESTAMP);
                s.version = Some(1);
                s
            }
            "google.protobuf.StringValue" => Schema::optional(SchemaType::String),
            "google.protobuf.BytesValue" => Schema::optional(SchemaType::Bytes),
            "google.protobuf.BoolValue" => Schema::optional(SchemaType::Boolean),
            "google.protobuf.Int32Value" => Schema::optional(SchemaType::Int32),
            "google.protobuf.Int64Value"
            | "google.protobuf.UInt32Value"
            | "google.protobuf.UInt64Value" => Schema::optional(SchemaType::Int64),
            "google.protobuf.FloatValue" => Schema::optional(SchemaType::Float32),
            "google.protobuf.DoubleValue" => Schema::optional(SchemaType::Float64),
            _ => message_schema_at(m, depth + 1)?,
        },
    })
}

/// Decodes a message's bytes into a value of [`message_schema`].
pub(crate) fn decode(
    message: &MessageDescriptor,
    schema: &Schema,
    body: &[u8],
) -> Result<Value, ConvertError> {
    let decoded =
        DynamicMessage::decode(message.clone(), body).map_err(|e| ConvertError::InvalidValue {
            path: "$".to_string(),
            reason: format!("not a valid {} message: {e}", message.full_name()),
        })?;
    Ok(message_value(&decoded, schema))
}

fn message_value(message: &DynamicMessage, schema: &Schema) -> Value {
    let descriptor = message.descriptor();
    let mut s = Struct::new(schema.clone());
    for (i, field) in descriptor.fields().enumerate() {
        let Some(field_schema) = schema.fields.get(i).map(|f| &f.schema) else {
            break;
        };
        if matches!(field.kind(), Kind::Message(_))
            && !field.is_list()
            && !field.is_map()
            && !message.has_field(&field)
        {
            continue;
        }
        s.values[i] = field_value(&message.get_field(&field), field_schema);
    }
    Value::Struct(s)
}

fn field_value(value: &PValue, schema: &Schema) -> Value {
    match value {
        PValue::Bool(b) => Value::Boolean(*b),
        PValue::I32(v) => Value::Int32(*v),
        PValue::I64(v) => Value::Int64(*v),
        PValue::U32(v) => Value::Int64(i64::from(*v)),
        PValue::U64(v) => Value::Int64(*v as i64),
        PValue::F32(v) => Value::Float32(*v),
        PValue::F64(v) => Value::Float64(*v),
        PValue::String(s) => Value::String(s.clone()),
        PValue::Bytes(b) => Value::Bytes(Bytes::copy_from_slice(b)),
        PValue::EnumNumber(n) => {
            // The symbol's name, as ProtobufData gives it; the number when it has none.
            Value::String(n.to_string())
        }
        PValue::List(items) => {
            let item_schema = schema.key_or_items.as_deref();
            Value::Array(
                items
                    .iter()
                    .map(|v| item_schema.map_or(Value::Null, |s| field_value(v, s)))
                    .collect(),
            )
        }
        PValue::Map(entries) => {
            let value_schema = schema.map_value.as_deref();
            Value::Map(
                entries
                    .iter()
                    .map(|(k, v)| {
                        let key = match k {
                            prost_reflect::MapKey::Bool(b) => Value::Boolean(*b),
                            prost_reflect::MapKey::I32(v) => Value::Int32(*v),
                            prost_reflect::MapKey::I64(v) => Value::Int64(*v),
                            prost_reflect::MapKey::U32(v) => Value::Int64(i64::from(*v)),
                            prost_reflect::MapKey::U64(v) => Value::Int64(*v as i64),
                            prost_reflect::MapKey::String(s) => Value::String(s.clone()),
                        };
                        (key, value_schema.map_or(Value::Null, |s| field_value(v, s)))
                    })
                    .collect(),
            )
        }
        PValue::Message(m) => {
            let name = m.descriptor().full_name().to_string();
            if name == "google.protobuf.Timestamp" {
                let seconds = m
                    .get_field_by_name("seconds")
                    .and_then(|v| v.as_i64())
                    .unwrap_or(0);
                let nanos = m
                    .get_field_by_name("nanos")
                    .and_then(|v| v.as_i32())
                    .unwrap_or(0);
                return Value::Int64(
                    seconds
                        .saturating_mul(1000)
                        .saturating_add(i64::from(nanos) / 1_000_000),
                );
            }
            if name.starts_with("google.protobuf.") && name.ends_with("Value") {
                return m
                    .get_field_by_name("value")
                    .map_or(Value::Null, |v| field_value(&v, schema));
            }
            message_value(m, schema)
        }
    }
}

/// Enum numbers become symbol names once the field's enum is known.
pub(crate) fn name_enums(value: &mut Value, message: &MessageDescriptor) {
    let Value::Struct(s) = value else {
        return;
    };
    for (i, field) in message.fields().enumerate() {
        let Some(v) = s.values.get_mut(i) else {
            break;
        };
        match field.kind() {
            Kind::Enum(e) => {
                let rename = |v: &mut Value| {
                    if let Value::String(text) = v {
                        if let Some(symbol) = text.parse::<i32>().ok().and_then(|n| e.get_value(n))
                        {
                            *text = symbol.name().to_string();
                        }
                    }
                };
                match v {
                    Value::Array(items) => items.iter_mut().for_each(rename),
                    Value::Map(entries) => entries.iter_mut().for_each(|(_, v)| rename(v)),
                    other => rename(other),
                }
            }
            Kind::Message(m) if !field.is_map() => match v {
                Value::Array(items) => items.iter_mut().for_each(|item| name_enums(item, &m)),
                other => name_enums(other, &m),
            },
            _ => {}
        }
    }
}

// --- The write side: Confluent's `ProtobufData.fromConnectSchema` / `fromConnectData`. ---

fn write_error(path: &str, reason: impl Into<String>) -> ConvertError {
    ConvertError::InvalidSchema {
        path: path.to_string(),
        reason: reason.into(),
    }
}

/// A Connect struct schema as a proto3 file: the package from its name's namespace, one
/// message named by its last part (`ConnectDefault1` when unnamed), nested structs as nested
/// messages, field numbers in field order. Returns the text and the message's full name.
pub(crate) fn from_connect_schema(schema: &Schema) -> Result<(String, String), ConvertError> {
    if schema.kind != SchemaType::Struct {
        return Err(write_error(
            "$",
            "ProtobufConverter writes structs: a Protobuf schema is a message",
        ));
    }
    let (package, name) = match schema.name.as_deref().and_then(|n| n.rsplit_once('.')) {
        Some((package, name)) => (Some(package), name.to_string()),
        None => (
            None,
            schema.name.clone().unwrap_or("ConnectDefault1".into()),
        ),
    };
    let mut body = String::new();
    let mut imports = false;
    write_message(&mut body, &name, schema, 0, "$", &mut imports)?;
    let mut text = String::from("syntax = \"proto3\";\n");
    if let Some(package) = package {
        text.push_str(&format!("package {package};\n"));
    }
    if imports {
        text.push_str("import \"google/protobuf/timestamp.proto\";\n");
    }
    text.push('\n');
    text.push_str(&body);
    let full = package.map_or(name.clone(), |p| format!("{p}.{name}"));
    Ok((text, full))
}

fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn camel(name: &str) -> String {
    let mut out = String::new();
    let mut upper = true;
    for c in name.chars() {
        if c == '_' || !c.is_ascii_alphanumeric() {
            upper = true;
        } else if upper {
            out.push(c.to_ascii_uppercase());
            upper = false;
        } else {
            out.push(c);
        }
    }
    out
}

fn write_message(
    out: &mut String,
    name: &str,
    schema: &Schema,
    depth: usize,
    path: &str,
    imports: &mut bool,
) -> Result<(), ConvertError> {
    if depth > MAX_DEPTH {
        return Err(write_error(path, "structs nest too deep"));
    }
    if !valid_name(name) {
        return Err(write_error(
            path,
            format!("{name:?} is not a Protobuf message name"),
        ));
    }
    let indent = "  ".repeat(depth);
    out.push_str(&format!("{indent}message {name} {{\n"));
    let mut nested = String::new();
    for (i, field) in schema.fields.iter().enumerate() {
        let field_path = format!("{path}.{}", field.name);
        if !valid_name(&field.name) {
            return Err(write_error(
                &field_path,
                format!("{:?} is not a Protobuf field name", field.name),
            ));
        }
        let mut type_of = |s: &Schema, suffix: &str, nested: &mut String| {
            scalar_or_message(
                s,
                &field.name,
                suffix,
                depth + 1,
                &field_path,
                nested,
                imports,
            )
        };
        let declared = match field.schema.kind {
            SchemaType::Array => {
                let items =
                    field.schema.key_or_items.as_deref().ok_or_else(|| {
                        write_error(&field_path, "an array schema without its items")
                    })?;
                if matches!(items.kind, SchemaType::Array | SchemaType::Map) {
                    return Err(write_error(
                        &field_path,
                        "Protobuf has no arrays of arrays or of maps",
                    ));
                }
                format!("repeated {}", type_of(items, "", &mut nested)?)
            }
            SchemaType::Map => {
                let (Some(key), Some(value)) = (
                    field.schema.key_or_items.as_deref(),
                    field.schema.map_value.as_deref(),
                ) else {
                    return Err(write_error(
                        &field_path,
                        "a map schema without its key and value",
                    ));
                };
                if !matches!(
                    key.kind,
                    SchemaType::String
                        | SchemaType::Int8
                        | SchemaType::Int16
                        | SchemaType::Int32
                        | SchemaType::Int64
                        | SchemaType::Boolean
                ) || key.name.is_some()
                {
                    return Err(write_error(
                        &field_path,
                        "a Protobuf map's keys are strings, integers or booleans",
                    ));
                }
                if matches!(value.kind, SchemaType::Array | SchemaType::Map) {
                    return Err(write_error(
                        &field_path,
                        "a Protobuf map's values cannot be arrays or maps",
                    ));
                }
                let key = type_of(key, "", &mut nested)?;
                format!("map<{key}, {}>", type_of(value, "Entry", &mut nested)?)
            }
            _ => type_of(&field.schema, "", &mut nested)?,
        };
        out.push_str(&format!(
            "{indent}  {declared} {} = {};\n",
            field.name,
            i + 1
        ));
    }
    out.push_str(&nested);
    out.push_str(&format!("{indent}}}\n"));
    Ok(())
}

/// The Protobuf type of a non-repeated value; structs become a nested message in `nested`.
fn scalar_or_message(
    schema: &Schema,
    field: &str,
    suffix: &str,
    depth: usize,
    path: &str,
    nested: &mut String,
    imports: &mut bool,
) -> Result<String, ConvertError> {
    match schema.name.as_deref() {
        Some(logical::TIMESTAMP) => {
            *imports = true;
            return Ok("google.protobuf.Timestamp".to_string());
        }
        Some(logical::DECIMAL) => {
            return Err(ConvertError::Unsupported {
                converter: "ProtobufConverter",
                found: format!("a Decimal at {path}"),
                hint: "Spate's ProtobufConverter writes no decimals yet; use decimal.handling.mode=string or double, or AvroConverter",
            });
        }
        _ => {}
    }
    Ok(match schema.kind {
        SchemaType::Int8 | SchemaType::Int16 | SchemaType::Int32 => "int32".to_string(),
        SchemaType::Int64 => "int64".to_string(),
        SchemaType::Float32 => "float".to_string(),
        SchemaType::Float64 => "double".to_string(),
        SchemaType::Boolean => "bool".to_string(),
        SchemaType::String => "string".to_string(),
        SchemaType::Bytes => "bytes".to_string(),
        SchemaType::Struct => {
            let name = match schema.name.as_deref() {
                Some(n) => n.rsplit('.').next().unwrap_or(n).to_string(),
                None => format!("{}{suffix}", camel(field)),
            };
            write_message(nested, &name, schema, depth, path, imports)?;
            name
        }
        SchemaType::Array | SchemaType::Map => {
            return Err(write_error(
                path,
                "Protobuf cannot nest this collection here",
            ));
        }
    })
}

/// The message a written file declares first, from its compiled `file`.
pub(crate) fn first_message(
    file: &prost_reflect::FileDescriptor,
) -> Result<MessageDescriptor, ConvertError> {
    file.messages()
        .next()
        .ok_or_else(|| write_error("$", "the Protobuf schema declares no message"))
}

/// Encodes a Connect struct as `message`, preceded by Confluent's message-index list (the
/// single byte 0: the file's first message).
pub(crate) fn encode(message: &MessageDescriptor, value: &Value) -> Result<Vec<u8>, ConvertError> {
    let dynamic = to_message(message, value, "$", 0)?;
    let mut out = vec![0u8];
    prost_reflect::prost::Message::encode(&dynamic, &mut out).map_err(|e| {
        ConvertError::InvalidValue {
            path: "$".to_string(),
            reason: format!("encoding {}: {e}", message.full_name()),
        }
    })?;
    Ok(out)
}

fn value_error(path: &str, reason: impl Into<String>) -> ConvertError {
    ConvertError::InvalidValue {
        path: path.to_string(),
        reason: reason.into(),
    }
}

fn to_message(
    message: &MessageDescriptor,
    value: &Value,
    path: &str,
    depth: usize,
) -> Result<DynamicMessage, ConvertError> {
    let Value::Struct(s) = value else {
        return Err(value_error(
            path,
            format!("{} needs a struct", message.full_name()),
        ));
    };
    if depth > MAX_DEPTH {
        return Err(value_error(path, "structs nest too deep"));
    }
    let mut out = DynamicMessage::new(message.clone());
    for (field, value) in s.schema.fields.iter().zip(&s.values) {
        if value.is_null() {
            continue;
        }
        let field_path = format!("{path}.{}", field.name);
        let Some(descriptor) = message.get_field_by_name(&field.name) else {
            return Err(value_error(
                &field_path,
                format!("{} has no field {}", message.full_name(), field.name),
            ));
        };
        let converted = field_to_proto(&descriptor, value, &field_path, depth)?;
        out.set_field(&descriptor, converted);
    }
    Ok(out)
}

fn field_to_proto(
    field: &FieldDescriptor,
    value: &Value,
    path: &str,
    depth: usize,
) -> Result<PValue, ConvertError> {
    if field.is_map() {
        let Value::Map(entries) = value else {
            return Err(value_error(path, "a map field needs a map"));
        };
        let Kind::Message(entry) = field.kind() else {
            return Err(value_error(path, "a map field is not a message"));
        };
        let (key_field, value_field) = (entry.map_entry_key_field(), entry.map_entry_value_field());
        let mut map = std::collections::HashMap::with_capacity(entries.len());
        for (k, v) in entries {
            let key = match kind_to_proto(&key_field.kind(), k, path, depth)? {
                PValue::String(s) => prost_reflect::MapKey::String(s),
                PValue::I32(n) => prost_reflect::MapKey::I32(n),
                PValue::I64(n) => prost_reflect::MapKey::I64(n),
                PValue::Bool(b) => prost_reflect::MapKey::Bool(b),
                _ => return Err(value_error(path, "a map key of an unsupported type")),
            };
            if v.is_null() {
                return Err(value_error(path, "Protobuf maps hold no null values"));
            }
            map.insert(key, kind_to_proto(&value_field.kind(), v, path, depth)?);
        }
        return Ok(PValue::Map(map));
    }
    if field.is_list() {
        let Value::Array(items) = value else {
            return Err(value_error(path, "a repeated field needs an array"));
        };
        let mut list = Vec::with_capacity(items.len());
        for (i, item) in items.iter().enumerate() {
            if item.is_null() {
                return Err(value_error(
                    &format!("{path}[{i}]"),
                    "Protobuf repeated fields hold no nulls",
                ));
            }
            list.push(kind_to_proto(&field.kind(), item, path, depth)?);
        }
        return Ok(PValue::List(list));
    }
    kind_to_proto(&field.kind(), value, path, depth)
}

fn kind_to_proto(
    kind: &Kind,
    value: &Value,
    path: &str,
    depth: usize,
) -> Result<PValue, ConvertError> {
    let int = |value: &Value| -> Option<i64> {
        match value {
            Value::Int8(v) => Some(i64::from(*v)),
            Value::Int16(v) => Some(i64::from(*v)),
            Value::Int32(v) => Some(i64::from(*v)),
            Value::Int64(v) => Some(*v),
            _ => None,
        }
    };
    let mismatch = || value_error(path, format!("{value:?} does not fit {kind:?}"));
    Ok(match (kind, value) {
        (Kind::Int32 | Kind::Sint32 | Kind::Sfixed32, v) => PValue::I32(
            int(v)
                .and_then(|n| i32::try_from(n).ok())
                .ok_or_else(mismatch)?,
        ),
        (Kind::Int64 | Kind::Sint64 | Kind::Sfixed64, v) => {
            PValue::I64(int(v).ok_or_else(mismatch)?)
        }
        (Kind::Float, Value::Float32(f)) => PValue::F32(*f),
        (Kind::Double, Value::Float64(f)) => PValue::F64(*f),
        (Kind::Double, Value::Float32(f)) => PValue::F64(f64::from(*f)),
        (Kind::Bool, Value::Boolean(b)) => PValue::Bool(*b),
        (Kind::String, Value::String(s)) => PValue::String(s.clone()),
        (Kind::Bytes, Value::Bytes(b)) => PValue::Bytes(b.clone()),
        (Kind::Message(m), Value::Int64(millis))
            if m.full_name() == "google.protobuf.Timestamp" =>
        {
            let mut ts = DynamicMessage::new(m.clone());
            ts.set_field_by_name("seconds", PValue::I64(millis.div_euclid(1000)));
            ts.set_field_by_name(
                "nanos",
                PValue::I32((millis.rem_euclid(1000) * 1_000_000) as i32),
            );
            PValue::Message(ts)
        }
        (Kind::Message(m), v @ Value::Struct(_)) => {
            PValue::Message(to_message(m, v, path, depth + 1)?)
        }
        _ => return Err(mismatch()),
    })
}

#[cfg(test)]
mod tests {
    use prost_reflect::prost::Message as _;

    use super::*;

    #[test]
    fn a_registered_message_reads_as_a_struct() {
        let schema = spate_schema::protobuf::ProtobufSchema::parse(
            r#"syntax = "proto3";
package shop;
enum Kind { A = 0; B = 1; }
message Other { int32 x = 1; }
message Order {
  string id = 1;
  uint32 qty = 2;
  Kind kind = 3;
  repeated string tags = 4;
  map<string, int64> counts = 5;
  Other other = 6;
}"#,
            &[],
            false,
        )
        .expect("parses");
        let file = schema.file();
        let order = file
            .parent_pool()
            .get_message_by_name("shop.Order")
            .expect("Order");
        let mut message = DynamicMessage::new(order.clone());
        message.set_field_by_name("id", PValue::String("o-1".into()));
        message.set_field_by_name("qty", PValue::U32(7));
        message.set_field_by_name("kind", PValue::EnumNumber(1));
        message.set_field_by_name("tags", PValue::List(vec![PValue::String("a".into())]));
        let mut payload = vec![2, 2]; // one index: message 1 of the file
        message.encode(&mut payload).expect("encodes");

        let (found, body) = split_payload(file, &payload).expect("splits");
        assert_eq!(found.full_name(), "shop.Order");
        let connect = message_schema(&found).expect("maps");
        assert_eq!(connect.name.as_deref(), Some("shop.Order"));
        assert!(connect.fields.iter().all(|f| f.schema.optional));
        let mut value = decode(&found, &connect, body).expect("decodes");
        name_enums(&mut value, &found);
        assert_eq!(value.get("id"), Some(&Value::String("o-1".into())));
        assert_eq!(value.get("qty"), Some(&Value::Int64(7)));
        assert_eq!(value.get("kind"), Some(&Value::String("B".into())));
        assert_eq!(
            value.get("tags"),
            Some(&Value::Array(vec![Value::String("a".into())]))
        );
        assert_eq!(value.get("counts"), Some(&Value::Map(Vec::new())));
        assert_eq!(value.get("other"), Some(&Value::Null));
        assert!(
            split_payload(file, &[4, 2]).is_err(),
            "index 2 is out of range"
        );
    }

    #[test]
    fn a_struct_writes_as_a_proto3_message_that_reads_back() {
        let mut address = Schema::new(SchemaType::Struct).with_name("shop.Address");
        address.fields.push(Field {
            name: "city".into(),
            schema: Schema::new(SchemaType::String),
        });
        let mut at = Schema::new(SchemaType::Int64).with_name(logical::TIMESTAMP);
        at.optional = true;
        let mut order = Schema::new(SchemaType::Struct).with_name("shop.Order");
        for (name, schema) in [
            ("id", Schema::new(SchemaType::Int64)),
            ("note", Schema::optional(SchemaType::String)),
            ("tags", Schema::array(Schema::new(SchemaType::String))),
            (
                "counts",
                Schema::map(
                    Schema::new(SchemaType::String),
                    Schema::new(SchemaType::Int32),
                ),
            ),
            ("address", address.clone()),
            ("at", at),
        ] {
            order.fields.push(Field {
                name: name.into(),
                schema,
            });
        }
        let (text, name) = from_connect_schema(&order).expect("writes");
        assert_eq!(name, "shop.Order");
        assert!(text.contains("package shop;"), "{text}");
        assert!(text.contains("google.protobuf.Timestamp at = 6;"), "{text}");
        let compiled =
            spate_schema::protobuf::ProtobufSchema::parse(&text, &[], false).expect("compiles");
        let message = first_message(compiled.file()).expect("a message");
        assert_eq!(message.full_name(), "shop.Order");

        let mut addr = Struct::new(address);
        addr.put("city", Value::String("Oslo".into()));
        let mut value = Struct::new(order);
        value.put("id", Value::Int64(7));
        value.put(
            "tags",
            Value::Array(vec![Value::String("a".into()), Value::String("b".into())]),
        );
        value.put(
            "counts",
            Value::Map(vec![(Value::String("x".into()), Value::Int32(3))]),
        );
        value.put("address", Value::Struct(addr));
        value.put("at", Value::Int64(1_700_000_000_123));
        let bytes = encode(&message, &Value::Struct(value)).expect("encodes");
        let (read, body) = split_payload(compiled.file(), &bytes).expect("indexes");
        let schema = message_schema(&read).expect("schema");
        let back = decode(&read, &schema, body).expect("decodes");
        let Value::Struct(back) = back else {
            panic!("a struct")
        };
        assert_eq!(back.get("id"), Some(&Value::Int64(7)));
        // proto3 has no null strings: an absent one reads as empty.
        assert_eq!(back.get("note"), Some(&Value::String(String::new())));
        assert_eq!(back.get("at"), Some(&Value::Int64(1_700_000_000_123)));
        let Some(Value::Struct(city)) = back.get("address") else {
            panic!("the nested message")
        };
        assert_eq!(city.get("city"), Some(&Value::String("Oslo".into())));
        assert_eq!(
            back.get("counts"),
            Some(&Value::Map(vec![(
                Value::String("x".into()),
                Value::Int32(3)
            )]))
        );
    }
}
