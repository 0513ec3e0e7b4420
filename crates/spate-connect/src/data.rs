//! Kafka Connect's data model: a [`Schema`] (Connect's types, names, parameters, optionality)
//! and a [`Value`] that converters decode into and connectors and transforms work on, and the
//! [`ConnectRecord`] that flows between them. Mirrors `org.apache.kafka.connect.data` so that
//! converters and transforms behave as their Java namesakes; values without a schema
//! ("schemaless", as `JsonConverter` with `schemas.enable=false` gives) use [`Value::Map`] with
//! string keys where Java has a `java.util.Map`. Pure data; no I/O.

use std::collections::BTreeMap;
use std::sync::Arc;

use bytes::Bytes;

/// Connect's schema types (`Schema.Type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SchemaType {
    /// `int8`
    Int8,
    /// `int16`
    Int16,
    /// `int32`
    Int32,
    /// `int64`
    Int64,
    /// `float32`
    Float32,
    /// `float64`
    Float64,
    /// `boolean`
    Boolean,
    /// `string`
    String,
    /// `bytes`
    Bytes,
    /// `array`
    Array,
    /// `map`
    Map,
    /// `struct`
    Struct,
}

impl SchemaType {
    /// The lowercase name Connect's JSON schemas use (`"int32"`, `"struct"`).
    pub fn name(self) -> &'static str {
        match self {
            SchemaType::Int8 => "int8",
            SchemaType::Int16 => "int16",
            SchemaType::Int32 => "int32",
            SchemaType::Int64 => "int64",
            SchemaType::Float32 => "float32",
            SchemaType::Float64 => "float64",
            SchemaType::Boolean => "boolean",
            SchemaType::String => "string",
            SchemaType::Bytes => "bytes",
            SchemaType::Array => "array",
            SchemaType::Map => "map",
            SchemaType::Struct => "struct",
        }
    }

    /// The type named `name`, as [`SchemaType::name`] spells it.
    pub fn from_name(name: &str) -> Option<SchemaType> {
        Some(match name {
            "int8" => SchemaType::Int8,
            "int16" => SchemaType::Int16,
            "int32" => SchemaType::Int32,
            "int64" => SchemaType::Int64,
            "float32" => SchemaType::Float32,
            "float64" => SchemaType::Float64,
            "boolean" => SchemaType::Boolean,
            "string" => SchemaType::String,
            "bytes" => SchemaType::Bytes,
            "array" => SchemaType::Array,
            "map" => SchemaType::Map,
            "struct" => SchemaType::Struct,
            _ => return None,
        })
    }

    /// Whether the type is a number, boolean, string or bytes.
    pub fn is_primitive(self) -> bool {
        !matches!(
            self,
            SchemaType::Array | SchemaType::Map | SchemaType::Struct
        )
    }
}

/// Logical type names Connect defines on top of the primitive types.
pub mod logical {
    /// `int64` milliseconds since the epoch.
    pub const TIMESTAMP: &str = "org.apache.kafka.connect.data.Timestamp";
    /// `int32` days since the epoch.
    pub const DATE: &str = "org.apache.kafka.connect.data.Date";
    /// `int32` milliseconds since midnight.
    pub const TIME: &str = "org.apache.kafka.connect.data.Time";
    /// `bytes`: a big-endian two's-complement unscaled integer; parameter `scale`.
    pub const DECIMAL: &str = "org.apache.kafka.connect.data.Decimal";
    /// The parameter of [`DECIMAL`] that holds the scale.
    pub const DECIMAL_SCALE: &str = "scale";
}

/// A field of a struct schema.
#[derive(Debug, Clone, PartialEq)]
pub struct Field {
    /// The field's name.
    pub name: String,
    /// The field's schema.
    pub schema: Schema,
}

/// A Connect schema (`org.apache.kafka.connect.data.Schema`).
#[derive(Debug, Clone, PartialEq)]
pub struct Schema {
    /// The type.
    pub kind: SchemaType,
    /// Whether the value may be null.
    pub optional: bool,
    /// A name (logical types and named structs use it).
    pub name: Option<String>,
    /// A version.
    pub version: Option<i32>,
    /// Documentation.
    pub doc: Option<String>,
    /// Parameters (a decimal's `scale`, connector-specific hints).
    pub parameters: BTreeMap<String, String>,
    /// The default value.
    pub default: Option<Box<Value>>,
    /// A struct's fields, in order.
    pub fields: Vec<Field>,
    /// An array's element schema, or a map's key schema.
    pub key_or_items: Option<Box<Schema>>,
    /// A map's value schema.
    pub map_value: Option<Box<Schema>>,
}

impl Schema {
    /// A required schema of `kind` with nothing else set.
    pub fn new(kind: SchemaType) -> Schema {
        Schema {
            kind,
            optional: false,
            name: None,
            version: None,
            doc: None,
            parameters: BTreeMap::new(),
            default: None,
            fields: Vec::new(),
            key_or_items: None,
            map_value: None,
        }
    }

    /// An optional schema of `kind`.
    pub fn optional(kind: SchemaType) -> Schema {
        Schema {
            optional: true,
            ..Schema::new(kind)
        }
    }

    /// A struct schema with `fields` (name, schema) in order.
    pub fn structure(name: Option<&str>, fields: Vec<(&str, Schema)>) -> Schema {
        Schema {
            name: name.map(str::to_string),
            fields: fields
                .into_iter()
                .map(|(name, schema)| Field {
                    name: name.to_string(),
                    schema,
                })
                .collect(),
            ..Schema::new(SchemaType::Struct)
        }
    }

    /// An array schema of `items`.
    pub fn array(items: Schema) -> Schema {
        Schema {
            key_or_items: Some(Box::new(items)),
            ..Schema::new(SchemaType::Array)
        }
    }

    /// A map schema from `key` to `value`.
    pub fn map(key: Schema, value: Schema) -> Schema {
        Schema {
            key_or_items: Some(Box::new(key)),
            map_value: Some(Box::new(value)),
            ..Schema::new(SchemaType::Map)
        }
    }

    /// The same schema, optional.
    pub fn into_optional(mut self) -> Schema {
        self.optional = true;
        self
    }

    /// The same schema, named `name`.
    pub fn with_name(mut self, name: &str) -> Schema {
        self.name = Some(name.to_string());
        self
    }

    /// The field named `name` of a struct schema.
    pub fn field(&self, name: &str) -> Option<&Field> {
        self.fields.iter().find(|f| f.name == name)
    }

    /// Whether the schema is the logical type `name`.
    pub fn is_logical(&self, name: &str) -> bool {
        self.name.as_deref() == Some(name)
    }
}

/// A value, with or without a schema.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// null
    Null,
    /// boolean
    Boolean(bool),
    /// int8
    Int8(i8),
    /// int16
    Int16(i16),
    /// int32 (also Date and Time)
    Int32(i32),
    /// int64 (also Timestamp)
    Int64(i64),
    /// float32
    Float32(f32),
    /// float64
    Float64(f64),
    /// string
    String(String),
    /// bytes (also Decimal's unscaled integer)
    Bytes(Bytes),
    /// array
    Array(Vec<Value>),
    /// map, in insertion order; schemaless records are maps with string keys
    Map(Vec<(Value, Value)>),
    /// struct: field values in the order of its schema's fields
    Struct(Struct),
}

/// A struct value: its schema and one value per field, in the schema's order. The schema is
/// shared: a source makes the same few schemas for every record (Debezium's envelope has ~45
/// nodes), and a struct of one holds it by reference, not by copy.
#[derive(Debug, Clone)]
pub struct Struct {
    /// The struct's schema ([`SchemaType::Struct`]).
    pub schema: Arc<Schema>,
    /// One value per field of `schema`.
    pub values: Vec<Value>,
}

impl PartialEq for Struct {
    fn eq(&self, other: &Struct) -> bool {
        (Arc::ptr_eq(&self.schema, &other.schema) || self.schema == other.schema)
            && self.values == other.values
    }
}

impl Struct {
    /// A struct of `schema` with every field null.
    pub fn new(schema: impl Into<Arc<Schema>>) -> Struct {
        let schema = schema.into();
        let values = vec![Value::Null; schema.fields.len()];
        Struct { schema, values }
    }

    /// The value of field `name`.
    pub fn get(&self, name: &str) -> Option<&Value> {
        let index = self.schema.fields.iter().position(|f| f.name == name)?;
        self.values.get(index)
    }

    /// Sets field `name`; false when the schema has no such field.
    pub fn put(&mut self, name: &str, value: Value) -> bool {
        match self.schema.fields.iter().position(|f| f.name == name) {
            Some(index) => {
                self.values[index] = value;
                true
            }
            None => false,
        }
    }

    /// (field name, value) pairs in order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Value)> {
        self.schema
            .fields
            .iter()
            .map(|f| f.name.as_str())
            .zip(self.values.iter())
    }
}

impl Value {
    /// Whether the value is null.
    pub fn is_null(&self) -> bool {
        matches!(self, Value::Null)
    }

    /// The string, if the value is one.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::String(s) => Some(s),
            _ => None,
        }
    }

    /// The value as an i64, for any integer type.
    pub fn as_i64(&self) -> Option<i64> {
        match *self {
            Value::Int8(v) => Some(v.into()),
            Value::Int16(v) => Some(v.into()),
            Value::Int32(v) => Some(v.into()),
            Value::Int64(v) => Some(v),
            _ => None,
        }
    }

    /// The value of key `name` of a schemaless map, or field `name` of a struct.
    pub fn get(&self, name: &str) -> Option<&Value> {
        match self {
            Value::Struct(s) => s.get(name),
            Value::Map(entries) => entries
                .iter()
                .find(|(k, _)| k.as_str() == Some(name))
                .map(|(_, v)| v),
            _ => None,
        }
    }

    /// A schemaless map from string keys.
    pub fn map_of<'a>(entries: impl IntoIterator<Item = (&'a str, Value)>) -> Value {
        Value::Map(
            entries
                .into_iter()
                .map(|(k, v)| (Value::String(k.to_string()), v))
                .collect(),
        )
    }
}

/// Whether two shared schemas are equal: the same one, or equal field by field.
pub fn same_schema(a: Option<&Arc<Schema>>, b: Option<&Arc<Schema>>) -> bool {
    match (a, b) {
        (Some(a), Some(b)) => Arc::ptr_eq(a, b) || a == b,
        (None, None) => true,
        _ => false,
    }
}

/// A header of a record: Connect headers carry values; Spate keeps their bytes as written.
pub type Header = (String, Option<Bytes>);

/// A record between a converter and a connector, in either direction.
#[derive(Debug, Clone, PartialEq)]
pub struct ConnectRecord {
    /// The topic.
    pub topic: String,
    /// The partition, when known or chosen.
    pub partition: Option<i32>,
    /// The key's schema; `None` for schemaless keys. Shared: a source writes the same few
    /// schemas with every record.
    pub key_schema: Option<Arc<Schema>>,
    /// The key.
    pub key: Value,
    /// The value's schema; `None` for schemaless values. Shared, as the key's.
    pub value_schema: Option<Arc<Schema>>,
    /// The value; [`Value::Null`] is a tombstone.
    pub value: Value,
    /// Milliseconds since the epoch.
    pub timestamp_ms: Option<i64>,
    /// Headers in order.
    pub headers: Vec<Header>,
    /// The offset in `topic` (sink records).
    pub kafka_offset: Option<i64>,
    /// Where the record came from in the source system (source records): Connect's
    /// `sourcePartition`.
    pub source_partition: Option<serde_json::Value>,
    /// How far the source has got: Connect's `sourceOffset`.
    pub source_offset: Option<serde_json::Value>,
}

impl ConnectRecord {
    /// A record for `topic` with a schemaless null key and the given value.
    pub fn new(topic: &str, value_schema: Option<Arc<Schema>>, value: Value) -> ConnectRecord {
        ConnectRecord {
            topic: topic.to_string(),
            partition: None,
            key_schema: None,
            key: Value::Null,
            value_schema,
            value,
            timestamp_ms: None,
            headers: Vec::new(),
            kafka_offset: None,
            source_partition: None,
            source_offset: None,
        }
    }

    /// The first header named `name`.
    pub fn header(&self, name: &str) -> Option<&Option<Bytes>> {
        self.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v)
    }
}
