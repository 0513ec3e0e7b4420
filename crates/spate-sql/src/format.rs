//! Records to rows and rows to records, by a table's formats: `json` and `raw` here, the
//! registry formats (`avro-confluent`, `json-registry`, `protobuf-confluent`) through Spate
//! Connect's converters (Confluent's wire format, schemas registered and fetched by id), so
//! SQL reads and writes exactly what Connect and Confluent's serializers do. Metadata columns
//! (`timestamp`, `partition`, `offset`, `topic`, `headers`) come from the record.

use std::sync::Arc;

use spate_connect::config::Props;
use spate_connect::convert::{self, Converter};
use spate_connect::data::{self as connect, Schema, SchemaType};

use crate::catalog::{Format, Table};
use crate::errors::SqlError;
use crate::exec::{Change, Kind};
use crate::expr::{Context, Expr};
use crate::parse::ColumnKind;
use crate::types::{DataType, Field, Value};

/// A consumed record, as the decoder needs it.
pub struct Record<'a> {
    /// The topic.
    pub topic: &'a str,
    /// The partition.
    pub partition: i32,
    /// The offset.
    pub offset: i64,
    /// The record timestamp (ms).
    pub timestamp: Option<i64>,
    /// The key bytes.
    pub key: Option<&'a [u8]>,
    /// The value bytes (None: a tombstone).
    pub value: Option<&'a [u8]>,
    /// The headers.
    pub headers: Vec<(String, Option<Vec<u8>>)>,
}

const AVRO: &str = "io.confluent.connect.avro.AvroConverter";
const JSON_SCHEMA: &str = "io.confluent.connect.json.JsonSchemaConverter";
const PROTOBUF: &str = "io.confluent.connect.protobuf.ProtobufConverter";

/// A registry converter for `format` at `url`.
pub fn registry_converter(
    format: &Format,
    url: &str,
    is_key: bool,
) -> Result<Box<dyn Converter>, SqlError> {
    let class = match format {
        Format::Avro => AVRO,
        Format::JsonRegistry => JSON_SCHEMA,
        Format::Protobuf => PROTOBUF,
        other => {
            return Err(SqlError::Option(format!(
                "{} is not a schema registry format",
                other.name()
            )));
        }
    };
    // The converter's own keys (those after `value.converter.`).
    let mut props = Props::new();
    props.insert("schema.registry.url".to_string(), url.to_string());
    convert::converter(class, &props, is_key).map_err(|problems| {
        SqlError::Option(
            problems
                .iter()
                .map(|p| format!("{}: {}", p.name, p.message))
                .collect::<Vec<_>>()
                .join("; "),
        )
    })
}

enum Codec {
    Json,
    Raw,
    Registry(Box<dyn Converter>),
}

impl Codec {
    fn new(format: &Format, table: &Table, is_key: bool) -> Result<Codec, SqlError> {
        Ok(match format {
            Format::Json => Codec::Json,
            Format::Raw => Codec::Raw,
            registry => {
                let url = table.registry_url.as_deref().ok_or_else(|| {
                    SqlError::Option(format!(
                        "table {} needs a schema registry URL for {}",
                        table.name,
                        registry.name()
                    ))
                })?;
                Codec::Registry(registry_converter(registry, url, is_key)?)
            }
        })
    }

    /// Decodes `bytes` into the values of `fields` (a row type), by field name.
    fn decode(&self, topic: &str, bytes: &[u8], fields: &DataType) -> Result<Vec<Value>, String> {
        let DataType::Row(columns) = fields else {
            return Err("not a row type".into());
        };
        match self {
            Codec::Json => {
                if let Some(values) = json_row(bytes, columns) {
                    return Ok(values);
                }
                let json: serde_json::Value =
                    serde_json::from_slice(bytes).map_err(|e| format!("not JSON: {e}"))?;
                if !json.is_object() {
                    return Err(format!("expected a JSON object, got {json}"));
                }
                match Value::from_json(&json, fields) {
                    Some(Value::Row(values)) => Ok(values.to_vec()),
                    _ => {
                        // Name the column that does not fit.
                        for c in columns {
                            if let Some(v) = json.get(&c.name)
                                && Value::from_json(v, &c.data_type).is_none()
                            {
                                return Err(format!(
                                    "column {} is {}, the record has {v}",
                                    c.name, c.data_type
                                ));
                            }
                        }
                        Err("the JSON does not fit the table's columns".into())
                    }
                }
            }
            Codec::Raw => {
                let value = match columns.first().map(|c| &c.data_type) {
                    Some(DataType::Bytes) => Value::Bytes(Arc::from(bytes)),
                    _ => Value::str(
                        std::str::from_utf8(bytes).map_err(|_| "not UTF-8 text".to_string())?,
                    ),
                };
                Ok(vec![value])
            }
            Codec::Registry(converter) => {
                let (_, value) = converter
                    .to_connect(topic, Some(bytes))
                    .map_err(|e| e.to_string())?;
                match value {
                    connect::Value::Struct(s) => Ok(columns
                        .iter()
                        .map(|c| {
                            s.schema
                                .fields
                                .iter()
                                .position(|f| f.name.eq_ignore_ascii_case(&c.name))
                                .map_or(Value::Null, |i| from_connect(&s.values[i], &c.data_type))
                        })
                        .collect()),
                    other if columns.len() == 1 => {
                        Ok(vec![from_connect(&other, &columns[0].data_type)])
                    }
                    _ => Err("the registry schema is not a record".into()),
                }
            }
        }
    }

    fn encode(
        &self,
        topic: &str,
        fields: &[Field],
        values: &[Value],
        schema: &Arc<Schema>,
    ) -> Result<Vec<u8>, SqlError> {
        match self {
            Codec::Json => {
                let mut map = serde_json::Map::new();
                for (f, v) in fields.iter().zip(values) {
                    map.insert(f.name.clone(), v.to_json(&f.data_type));
                }
                serde_json::to_vec(&serde_json::Value::Object(map))
                    .map_err(|e| SqlError::Runtime(e.to_string()))
            }
            Codec::Raw => Ok(match values.first() {
                Some(Value::Bytes(b)) => b.to_vec(),
                Some(Value::Null) | None => Vec::new(),
                Some(v) => v.to_string().into_bytes(),
            }),
            Codec::Registry(converter) => {
                let value = connect::Value::Struct(connect::Struct {
                    schema: Arc::clone(schema),
                    values: fields
                        .iter()
                        .zip(values)
                        .map(|(f, v)| to_connect(v, &f.data_type))
                        .collect(),
                });
                converter
                    .from_connect_shared(topic, Some(schema), &value)
                    .map_err(|e| SqlError::Runtime(format!("cannot encode for {topic}: {e}")))?
                    .map(|b| b.to_vec())
                    .ok_or_else(|| SqlError::Runtime("the converter wrote no bytes".into()))
            }
        }
    }
}

/// Reads a table's records as rows.
pub struct Decoder {
    table: Arc<Table>,
    value: Codec,
    value_type: DataType,
    value_columns: Vec<usize>,
    key: Option<(Codec, DataType, Vec<usize>)>,
    computed: Vec<(usize, Expr)>,
}

impl Decoder {
    /// A decoder for `table`.
    pub fn new(table: Arc<Table>) -> Result<Decoder, SqlError> {
        let value_columns = table.value_columns();
        let value_type = DataType::Row(
            value_columns
                .iter()
                .map(|i| table.columns[*i].field.clone())
                .collect(),
        );
        let key = match &table.key {
            Some((format, columns)) => Some((
                Codec::new(format, &table, true)?,
                DataType::Row(
                    columns
                        .iter()
                        .map(|i| table.columns[*i].field.clone())
                        .collect(),
                ),
                columns.clone(),
            )),
            None => None,
        };
        let mut computed = Vec::new();
        for (i, c) in table.columns.iter().enumerate() {
            if let ColumnKind::Computed(e) = &c.kind {
                let scope = crate::expr::Scope::of(
                    Some(&table.name),
                    &table.columns[..i]
                        .iter()
                        .map(|c| c.field.clone())
                        .collect::<Vec<_>>(),
                );
                computed.push((i, crate::expr::compile(e, &scope)?.expr));
            }
        }
        Ok(Decoder {
            value: Codec::new(&table.value_format, &table, false)?,
            table,
            value_type,
            value_columns,
            key,
            computed,
        })
    }

    /// The row of `record` (a `Delete` for an upsert table's tombstone), or why it does not
    /// decode.
    pub fn decode(&self, record: &Record<'_>) -> Result<Option<Change>, String> {
        let mut row = vec![Value::Null; self.table.columns.len()];
        let kind = match record.value {
            Some(bytes) => {
                let values = self.value.decode(record.topic, bytes, &self.value_type)?;
                for (i, v) in self.value_columns.iter().zip(values) {
                    row[*i] = v;
                }
                Kind::Insert
            }
            None if self.table.upsert => Kind::Delete,
            None => return Ok(None), // a tombstone in an append-only table is no row
        };
        if let Some((codec, key_type, columns)) = &self.key {
            match record.key {
                Some(bytes) => {
                    let values = codec
                        .decode(record.topic, bytes, key_type)
                        .map_err(|e| format!("key: {e}"))?;
                    for (i, v) in columns.iter().zip(values) {
                        if row[*i].is_null() || self.table.value_except_key {
                            row[*i] = v;
                        }
                    }
                }
                None if self.table.upsert => return Err("an upsert record without a key".into()),
                None => {}
            }
        }
        for (i, c) in self.table.columns.iter().enumerate() {
            if let ColumnKind::Metadata { key, .. } = &c.kind {
                row[i] = match key.as_str() {
                    "timestamp" => record.timestamp.map_or(Value::Null, Value::Timestamp),
                    "partition" => Value::Int(i64::from(record.partition)),
                    "offset" => Value::Int(record.offset),
                    "topic" => Value::str(record.topic),
                    "headers" => Value::Map(
                        record
                            .headers
                            .iter()
                            .map(|(k, v)| {
                                (
                                    Value::str(k),
                                    v.as_ref().map_or(Value::Null, |b| {
                                        Value::Bytes(Arc::from(b.as_slice()))
                                    }),
                                )
                            })
                            .collect::<Vec<_>>()
                            .into(),
                    ),
                    _ => Value::Null,
                };
            }
        }
        let ctx = Context::default();
        for (i, e) in &self.computed {
            row[*i] = e.eval(&row, &ctx).map_err(|e| e.to_string())?;
        }
        Ok(Some(Change { kind, row }))
    }
}

/// A JSON object read straight into the values of `columns` (by name, as
/// [`Value::from_json`] reads a row, without building a `serde_json::Value` first). None when
/// it is not an object or a value does not fit: the caller then reads it the slow way, which
/// names what does not fit.
fn json_row(bytes: &[u8], columns: &[Field]) -> Option<Vec<Value>> {
    use serde::de::DeserializeSeed;
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let values = RowSeed(columns).deserialize(&mut de).ok()?;
    de.end().ok()?;
    Some(values)
}

struct RowSeed<'a>(&'a [Field]);

impl<'de> serde::de::DeserializeSeed<'de> for RowSeed<'_> {
    type Value = Vec<Value>;

    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Vec<Value>, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> serde::de::Visitor<'de> for RowSeed<'_> {
    type Value = Vec<Value>;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Vec<Value>, A::Error> {
        let mut values = vec![Value::Null; self.0.len()];
        while let Some(column) = map.next_key_seed(KeySeed(self.0))? {
            match column {
                Some(i) => values[i] = map.next_value_seed(ValueSeed(&self.0[i].data_type))?,
                None => {
                    map.next_value::<serde::de::IgnoredAny>()?;
                }
            }
        }
        Ok(values)
    }
}

/// A key: the position of the column it names (exactly, else ignoring case).
struct KeySeed<'a>(&'a [Field]);

impl<'de> serde::de::DeserializeSeed<'de> for KeySeed<'_> {
    type Value = Option<usize>;

    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Option<usize>, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de> serde::de::Visitor<'de> for KeySeed<'_> {
    type Value = Option<usize>;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a key")
    }

    fn visit_str<E: serde::de::Error>(self, key: &str) -> Result<Option<usize>, E> {
        Ok(self
            .0
            .iter()
            .position(|c| c.name == key)
            .or_else(|| self.0.iter().position(|c| c.name.eq_ignore_ascii_case(key))))
    }
}

/// A value of `data_type`, read as [`Value::from_json`] reads it; an error (and so the slow
/// path) for anything it would not take, or would render differently.
struct ValueSeed<'a>(&'a DataType);

impl<'de> serde::de::DeserializeSeed<'de> for ValueSeed<'_> {
    type Value = Value;

    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        match self.0 {
            DataType::Row(_) | DataType::Array(_) | DataType::Map(..) | DataType::Interval => {
                let json = <serde_json::Value as serde::Deserialize>::deserialize(d)?;
                Value::from_json(&json, self.0)
                    .ok_or_else(|| serde::de::Error::custom("does not fit"))
            }
            _ => d.deserialize_any(self),
        }
    }
}

fn unfit<E: serde::de::Error>() -> E {
    E::custom("does not fit")
}

impl<'de> serde::de::Visitor<'de> for ValueSeed<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        write!(f, "a {}", self.0)
    }

    fn visit_unit<E: serde::de::Error>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_none<E: serde::de::Error>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_bool<E: serde::de::Error>(self, b: bool) -> Result<Value, E> {
        match self.0 {
            DataType::Null => Ok(Value::Null),
            DataType::Boolean => Ok(Value::Bool(b)),
            DataType::String => Ok(Value::str(if b { "true" } else { "false" })),
            _ => Err(unfit()),
        }
    }

    fn visit_i64<E: serde::de::Error>(self, n: i64) -> Result<Value, E> {
        match self.0 {
            DataType::Null => Ok(Value::Null),
            t if t.is_integer() => Ok(Value::Int(n)),
            DataType::Float | DataType::Double | DataType::Decimal(..) => {
                Ok(Value::Float(n as f64))
            }
            DataType::String => Ok(Value::str(&n.to_string())),
            DataType::Timestamp(_) | DataType::TimestampLtz(_) => Ok(Value::Timestamp(n)),
            DataType::Date => i32::try_from(n).map(Value::Date).map_err(|_| unfit()),
            _ => Err(unfit()),
        }
    }

    fn visit_u64<E: serde::de::Error>(self, n: u64) -> Result<Value, E> {
        match i64::try_from(n) {
            Ok(n) => self.visit_i64(n),
            Err(_) => Err(unfit()),
        }
    }

    fn visit_f64<E: serde::de::Error>(self, f: f64) -> Result<Value, E> {
        match self.0 {
            DataType::Null => Ok(Value::Null),
            t if t.is_integer() && f.fract() == 0.0 && f.abs() < 9.0e18 => Ok(Value::Int(f as i64)),
            DataType::Float | DataType::Double | DataType::Decimal(..) => Ok(Value::Float(f)),
            _ => Err(unfit()),
        }
    }

    fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<Value, E> {
        let parsed = match self.0 {
            DataType::Null => Some(Value::Null),
            DataType::String => Some(Value::str(s)),
            DataType::Boolean if s.eq_ignore_ascii_case("true") => Some(Value::Bool(true)),
            DataType::Boolean if s.eq_ignore_ascii_case("false") => Some(Value::Bool(false)),
            t if t.is_integer() => s.trim().parse().ok().map(Value::Int),
            DataType::Float | DataType::Double | DataType::Decimal(..) => {
                s.trim().parse().ok().map(Value::Float)
            }
            DataType::Bytes => Some(Value::Bytes(Arc::from(s.as_bytes()))),
            DataType::Timestamp(_) | DataType::TimestampLtz(_) => {
                crate::types::parse_timestamp(s).map(Value::Timestamp)
            }
            DataType::Date => crate::types::parse_date(s).map(Value::Date),
            _ => None,
        };
        parsed.ok_or_else(unfit)
    }
}

/// One side of a written record (key or value): its codec, the table's columns it holds and
/// their Connect schema, made once (a registry codec recognises the schema by reference).
struct Part {
    codec: Codec,
    fields: Vec<Field>,
    columns: Vec<usize>,
    schema: Arc<Schema>,
}

impl Part {
    fn new(codec: Codec, table: &Table, columns: Vec<usize>, name: String) -> Part {
        let fields: Vec<Field> = columns
            .iter()
            .map(|i| table.columns[*i].field.clone())
            .collect();
        Part {
            schema: Arc::new(connect_schema(&fields, &name)),
            codec,
            fields,
            columns,
        }
    }

    fn encode(&self, topic: &str, row: &[Value]) -> Result<Vec<u8>, SqlError> {
        let values: Vec<Value> = self.columns.iter().map(|i| row[*i].clone()).collect();
        self.codec
            .encode(topic, &self.fields, &values, &self.schema)
    }
}

/// Writes rows as a table's records.
pub struct Encoder {
    table: Arc<Table>,
    value: Part,
    key: Option<Part>,
    /// Positions in the sink's row of each physical column, in the order of the query's columns.
    physical: Vec<usize>,
}

impl Encoder {
    /// An encoder writing rows of the sink's physical columns (in order) to `table`.
    pub fn new(table: Arc<Table>) -> Result<Encoder, SqlError> {
        let physical: Vec<usize> = table
            .columns
            .iter()
            .enumerate()
            .filter(|(_, c)| c.kind == ColumnKind::Physical)
            .map(|(i, _)| i)
            .collect();
        let key = match &table.key {
            Some((format, columns)) => Some(Part::new(
                Codec::new(format, &table, true)?,
                &table,
                columns.clone(),
                format!("{}_key", table.name),
            )),
            None => None,
        };
        let value = Part::new(
            Codec::new(&table.value_format, &table, false)?,
            &table,
            table.value_columns(),
            format!("{}_value", table.name),
        );
        Ok(Encoder {
            table,
            value,
            key,
            physical,
        })
    }

    /// The record for `change` (key, value; value None = tombstone), or None when the change
    /// writes nothing (an update-before into an upsert table).
    #[allow(clippy::type_complexity)]
    pub fn encode(
        &self,
        change: &Change,
    ) -> Result<Option<(Option<Vec<u8>>, Option<Vec<u8>>)>, SqlError> {
        // Spread the query's row (physical columns in order) over the table's columns.
        let mut row = vec![Value::Null; self.table.columns.len()];
        for (i, v) in self.physical.iter().zip(&change.row) {
            row[*i] = v.clone();
        }
        let key = match &self.key {
            Some(part) => Some(part.encode(&self.table.topic, &row)?),
            None => None,
        };
        match change.kind {
            Kind::Insert | Kind::UpdateAfter => {
                let value = self.value.encode(&self.table.topic, &row)?;
                Ok(Some((key, Some(value))))
            }
            Kind::Delete if self.table.upsert => Ok(Some((key, None))),
            Kind::UpdateBefore if self.table.upsert => Ok(None),
            _ => Err(SqlError::Unsupported(format!(
                "table {} is append-only and cannot take {} changes; declare it with 'connector' = 'upsert-kafka' and a PRIMARY KEY",
                self.table.name,
                change.kind.short()
            ))),
        }
    }
}

/// A SQL value from a Connect value, as `t`.
pub fn from_connect(v: &connect::Value, t: &DataType) -> Value {
    use connect::Value as C;
    match (v, t) {
        (C::Null, _) => Value::Null,
        (C::Boolean(b), _) => Value::Bool(*b),
        (C::Int8(i), _) => Value::Int(i64::from(*i)),
        (C::Int16(i), _) => Value::Int(i64::from(*i)),
        (C::Int32(i), DataType::Date) => Value::Date(*i),
        (C::Int32(i), _) => Value::Int(i64::from(*i)),
        (C::Int64(i), t) if t.is_timestamp() => Value::Timestamp(*i),
        (C::Int64(i), _) => Value::Int(*i),
        (C::Float32(f), _) => Value::Float(f64::from(*f)),
        (C::Float64(f), _) => Value::Float(*f),
        (C::String(s), _) => Value::str(s),
        (C::Bytes(b), DataType::Decimal(_, scale)) => {
            // Connect's Decimal: the unscaled integer, big-endian two's complement.
            let mut unscaled: i128 = if b.first().is_some_and(|x| x & 0x80 != 0) {
                -1
            } else {
                0
            };
            for byte in b.iter().take(16) {
                unscaled = (unscaled << 8) | i128::from(*byte);
            }
            Value::Float(unscaled as f64 / 10f64.powi(i32::from(*scale)))
        }
        (C::Bytes(b), _) => Value::Bytes(Arc::from(&b[..])),
        (C::Array(items), DataType::Array(item)) => Value::Array(
            items
                .iter()
                .map(|v| from_connect(v, item))
                .collect::<Vec<_>>()
                .into(),
        ),
        (C::Map(entries), DataType::Map(k, val)) => Value::Map(
            entries
                .iter()
                .map(|(ek, ev)| (from_connect(ek, k), from_connect(ev, val)))
                .collect::<Vec<_>>()
                .into(),
        ),
        (C::Struct(s), DataType::Row(fields)) => Value::Row(
            fields
                .iter()
                .map(|f| {
                    s.schema
                        .fields
                        .iter()
                        .position(|sf| sf.name.eq_ignore_ascii_case(&f.name))
                        .map_or(Value::Null, |i| from_connect(&s.values[i], &f.data_type))
                })
                .collect::<Vec<_>>()
                .into(),
        ),
        _ => Value::Null,
    }
}

/// The Connect schema of a row of `fields` (every field optional), named `name`.
pub fn connect_schema(fields: &[Field], name: &str) -> Schema {
    let mut schema = Schema::new(SchemaType::Struct);
    schema.name = Some(name.to_string());
    schema.fields = fields
        .iter()
        .map(|f| connect::Field {
            name: f.name.clone(),
            schema: field_schema(&f.data_type, &f.name),
        })
        .collect();
    schema
}

fn field_schema(t: &DataType, name: &str) -> Schema {
    let mut schema = match t {
        DataType::Boolean => Schema::new(SchemaType::Boolean),
        DataType::TinyInt => Schema::new(SchemaType::Int8),
        DataType::SmallInt => Schema::new(SchemaType::Int16),
        DataType::Int => Schema::new(SchemaType::Int32),
        DataType::BigInt | DataType::Interval => Schema::new(SchemaType::Int64),
        DataType::Float => Schema::new(SchemaType::Float32),
        DataType::Double | DataType::Decimal(..) => Schema::new(SchemaType::Float64),
        DataType::String | DataType::Null => Schema::new(SchemaType::String),
        DataType::Bytes => Schema::new(SchemaType::Bytes),
        DataType::Timestamp(_) | DataType::TimestampLtz(_) => {
            Schema::new(SchemaType::Int64).with_name("org.apache.kafka.connect.data.Timestamp")
        }
        DataType::Date => {
            Schema::new(SchemaType::Int32).with_name("org.apache.kafka.connect.data.Date")
        }
        DataType::Row(fields) => connect_schema(fields, name),
        DataType::Array(item) => Schema::array(field_schema(item, name)),
        DataType::Map(k, v) => Schema::map(field_schema(k, name), field_schema(v, name)),
    };
    schema.optional = true;
    schema
}

/// A Connect value of `v` as `t`.
pub fn to_connect(v: &Value, t: &DataType) -> connect::Value {
    use connect::Value as C;
    match (v, t) {
        (Value::Null, _) => C::Null,
        (Value::Bool(b), _) => C::Boolean(*b),
        (Value::Int(i), DataType::TinyInt) => C::Int8(*i as i8),
        (Value::Int(i), DataType::SmallInt) => C::Int16(*i as i16),
        (Value::Int(i), DataType::Int) => C::Int32(*i as i32),
        (Value::Int(i), DataType::Float) => C::Float32(*i as f32),
        (Value::Int(i), DataType::Double | DataType::Decimal(..)) => C::Float64(*i as f64),
        (Value::Int(i), _) => C::Int64(*i),
        (Value::Float(f), DataType::Float) => C::Float32(*f as f32),
        (Value::Float(f), _) => C::Float64(*f),
        (Value::Str(s), _) => C::String(s.to_string()),
        (Value::Bytes(b), _) => C::Bytes(bytes::Bytes::copy_from_slice(b)),
        (Value::Timestamp(ms), _) => C::Int64(*ms),
        (Value::Interval(ms), _) => C::Int64(*ms),
        (Value::Date(d), _) => C::Int32(*d),
        (Value::Row(values), DataType::Row(fields)) => {
            let schema = Arc::new(connect_schema(fields, "row"));
            C::Struct(connect::Struct {
                schema,
                values: fields
                    .iter()
                    .zip(values.iter())
                    .map(|(f, v)| to_connect(v, &f.data_type))
                    .collect(),
            })
        }
        (Value::Array(items), DataType::Array(item)) => {
            C::Array(items.iter().map(|v| to_connect(v, item)).collect())
        }
        (Value::Map(entries), DataType::Map(k, val)) => C::Map(
            entries
                .iter()
                .map(|(ek, ev)| (to_connect(ek, k), to_connect(ev, val)))
                .collect(),
        ),
        (other, _) => C::String(other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse::{Statement, parse};

    #[test]
    fn json_rows_read_directly_as_through_json_values() {
        let columns = vec![
            Field::new("id", DataType::BigInt),
            Field::new("name", DataType::String),
            Field::new("price", DataType::Double),
            Field::new("ok", DataType::Boolean),
            Field::new("ts", DataType::Timestamp(3)),
            Field::new("day", DataType::Date),
            Field::new("tags", DataType::Array(Box::new(DataType::String))),
            Field::new("Mixed", DataType::Int),
        ];
        let row_type = DataType::Row(columns.clone());
        for text in [
            r#"{"id": 7, "name": "x\u00e9", "price": 1.5, "ok": true, "ts": "2026-01-01 10:00:00.250", "day": "2026-01-02", "tags": ["a"], "mixed": 3}"#,
            r#"{"id": "8", "price": "2", "ok": "FALSE", "ts": 1700000000000, "extra": {"deep": [1, 2]}, "name": null}"#,
            r#"{"id": 9.0, "name": 12, "price": 3, "day": 19000}"#,
            r#"{"id": 1, "id": 2}"#,
            r#"{}"#,
        ] {
            let json: serde_json::Value = serde_json::from_str(text).expect("JSON");
            let slow = match Value::from_json(&json, &row_type) {
                Some(Value::Row(values)) => values.to_vec(),
                other => panic!("{text}: {other:?}"),
            };
            assert_eq!(json_row(text.as_bytes(), &columns), Some(slow), "{text}");
        }
        // What does not fit (or is not an object) is left to the slow path, which says why.
        for text in [
            r#"{"id": "x"}"#,
            r#"{"ts": 1.5}"#,
            "[1]",
            r#"{"id": 1} 2"#,
            r#"{"name": 1.5}"#,
        ] {
            assert_eq!(json_row(text.as_bytes(), &columns), None, "{text}");
        }
    }

    fn table(sql: &str) -> Arc<Table> {
        let parsed = parse(sql).expect("parses");
        let Statement::CreateTable(c) = &parsed[0].statement else {
            panic!("not a table");
        };
        Arc::new(Table::declare(c, sql, None).expect("valid"))
    }

    fn record<'a>(key: Option<&'a [u8]>, value: Option<&'a [u8]>) -> Record<'a> {
        Record {
            topic: "t",
            partition: 2,
            offset: 40,
            timestamp: Some(1_000),
            key,
            value,
            headers: vec![],
        }
    }

    #[test]
    fn json_rows_with_metadata_and_computed_columns() {
        let t = table(
            "CREATE TABLE t (id BIGINT, name STRING, ts TIMESTAMP(3) METADATA FROM 'timestamp', p INT METADATA FROM 'partition' VIRTUAL, up AS UPPER(name)) WITH ()",
        );
        let d = Decoder::new(Arc::clone(&t)).expect("decoder");
        let change = d
            .decode(&record(
                None,
                Some(br#"{"id": 5, "name": "x", "extra": true}"#),
            ))
            .expect("decodes")
            .expect("a row");
        assert_eq!(
            change.row,
            vec![
                Value::Int(5),
                Value::str("x"),
                Value::Timestamp(1000),
                Value::Int(2),
                Value::str("X")
            ]
        );
        let e = d
            .decode(&record(None, Some(br#"{"id": "five"}"#)))
            .expect_err("bad");
        assert!(e.contains("column id is BIGINT"), "{e}");
        let e = d.decode(&record(None, Some(b"[1]"))).expect_err("bad");
        assert!(e.contains("JSON object"), "{e}");
    }

    #[test]
    fn upsert_tables_write_keys_and_tombstones() {
        let t = table(
            "CREATE TABLE counts (word STRING, n BIGINT, PRIMARY KEY (word) NOT ENFORCED) WITH ('connector' = 'upsert-kafka', 'key.format' = 'json', 'value.format' = 'json')",
        );
        let e = Encoder::new(Arc::clone(&t)).expect("encoder");
        let (key, value) = e
            .encode(&Change {
                kind: Kind::UpdateAfter,
                row: vec![Value::str("a"), Value::Int(3)],
            })
            .expect("encodes")
            .expect("a record");
        assert_eq!(key.as_deref(), Some(&br#"{"word":"a"}"#[..]));
        assert_eq!(value.as_deref(), Some(&br#"{"word":"a","n":3}"#[..]));
        let (_, value) = e
            .encode(&Change {
                kind: Kind::Delete,
                row: vec![Value::str("a"), Value::Int(3)],
            })
            .expect("encodes")
            .expect("a tombstone");
        assert_eq!(value, None);
        let d = Decoder::new(t).expect("decoder");
        let change = d
            .decode(&record(Some(br#"{"word":"a"}"#), None))
            .expect("decodes")
            .expect("a delete");
        assert_eq!(change.kind, Kind::Delete);
        assert_eq!(change.row[0], Value::str("a"));
    }
}
