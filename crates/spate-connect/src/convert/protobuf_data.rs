//! Confluent's `ProtobufData`, read side: a Protobuf message of a registered schema to a
//! Connect struct. Each message is a struct named by the message's full name with its fields
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
}
