//! Converters under Kafka Connect's class names: between the bytes of a Kafka record's key or
//! value and Connect's [`Schema`](crate::data::Schema) and [`Value`](crate::data::Value).
//! (Placeholder until the full converters land: String and ByteArray only.)

use bytes::Bytes;

use crate::config::{ConfigProblem, Props};
use crate::data::{Schema, SchemaType, Value};

/// A converter failed.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ConvertError(pub String);

/// Between record bytes and Connect data.
pub trait Converter: Send + Sync {
    /// Connect data to bytes; `None` for a null value.
    fn from_connect(
        &self,
        topic: &str,
        schema: Option<&Schema>,
        value: &Value,
    ) -> Result<Option<Bytes>, ConvertError>;
    /// Bytes (`None` = null) to Connect data.
    fn to_connect(
        &self,
        topic: &str,
        bytes: Option<&[u8]>,
    ) -> Result<(Option<Schema>, Value), ConvertError>;
}

struct Strings;

impl Converter for Strings {
    fn from_connect(
        &self,
        _: &str,
        _: Option<&Schema>,
        value: &Value,
    ) -> Result<Option<Bytes>, ConvertError> {
        Ok(match value {
            Value::Null => None,
            Value::String(s) => Some(Bytes::from(s.clone())),
            other => Some(Bytes::from(format!("{other:?}"))),
        })
    }
    fn to_connect(
        &self,
        _: &str,
        bytes: Option<&[u8]>,
    ) -> Result<(Option<Schema>, Value), ConvertError> {
        Ok((
            Some(Schema::optional(SchemaType::String)),
            bytes.map_or(Value::Null, |b| {
                Value::String(String::from_utf8_lossy(b).into_owned())
            }),
        ))
    }
}

/// Builds converter `class`.
pub fn converter(
    class: &str,
    _props: &Props,
    _is_key: bool,
) -> Result<Box<dyn Converter>, Vec<ConfigProblem>> {
    match class {
        "org.apache.kafka.connect.storage.StringConverter"
        | "org.apache.kafka.connect.json.JsonConverter" => Ok(Box::new(Strings)),
        other => Err(vec![ConfigProblem::new(
            "converter",
            format!("unknown converter {other}"),
        )]),
    }
}

/// The converter class names known.
pub fn plugins() -> Vec<&'static str> {
    vec!["org.apache.kafka.connect.storage.StringConverter"]
}

/// Connect data as plain JSON (no envelope).
pub fn connect_to_json(_schema: Option<&Schema>, value: &Value) -> serde_json::Value {
    match value {
        Value::String(s) => serde_json::Value::String(s.clone()),
        other => serde_json::Value::String(format!("{other:?}")),
    }
}
