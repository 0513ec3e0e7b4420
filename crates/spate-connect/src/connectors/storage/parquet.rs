//! Connect records as a Parquet file, without Arrow: the Connect schema becomes a Parquet
//! schema (as parquet-avro makes it from the Avro schema Confluent's `ParquetFormat` writes,
//! with the spec's three-level lists and maps), and values are shredded into columns with
//! their definition and repetition levels (Dremel's encoding) here, then handed to the
//! `parquet` crate's column writers. One row group per file: a file is `flush.size` records.
//!
//! The mapping: struct → group; `int8`/`int16`/`int32` → INT32 (with INT(8|16) annotations);
//! `int64` → INT64; `float32` → FLOAT; `float64` → DOUBLE; `boolean`; `string` → BYTE_ARRAY
//! STRING; `bytes` → BYTE_ARRAY; Decimal → BYTE_ARRAY DECIMAL(precision, scale) (precision from
//! `connect.decimal.precision`, else 64 as AvroData); Date → INT32 DATE; Time → INT32
//! TIME(MILLIS); Timestamp → INT64 TIMESTAMP(MILLIS, UTC); array → LIST; map → MAP. Optional
//! Connect schemas are OPTIONAL columns, the others REQUIRED.
//!
//! For Iceberg data files ([`ParquetWriter::for_iceberg`]) every node carries its Iceberg field
//! id, and the types follow Iceberg's spec: times and timestamps in microseconds, decimals as
//! 16-byte FIXED_LEN_BYTE_ARRAY of precision 38.

use std::sync::Arc;

use parquet::basic::{Compression, LogicalType, Repetition, TimeUnit, Type as Physical};
use parquet::data_type::{
    BoolType, ByteArray, ByteArrayType, DoubleType, FixedLenByteArray, FixedLenByteArrayType,
    FloatType, Int32Type, Int64Type,
};
use parquet::file::properties::WriterProperties;
use parquet::file::writer::SerializedFileWriter;
use parquet::schema::types::{Type, TypePtr};

use crate::convert::json_converter::value_type;
use crate::data::{Schema, SchemaType, Value, logical};

/// The Connect parameter holding a decimal's precision (AvroData's).
const PRECISION_PARAMETER: &str = "connect.decimal.precision";
/// A decimal's precision when the schema does not say (AvroData's default).
const DEFAULT_PRECISION: i32 = 64;

/// Iceberg field ids of a schema's nodes, parallel to it: a field's id, and the ids of its
/// type's children (a struct's fields, a list's element, a map's key and value).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct FieldIds {
    pub id: i32,
    pub children: Vec<FieldIds>,
}

/// A leaf column's values.
#[derive(Debug)]
enum Values {
    Bool(Vec<bool>),
    Int32(Vec<i32>),
    Int64(Vec<i64>),
    Float(Vec<f32>),
    Double(Vec<f64>),
    Bytes(Vec<ByteArray>),
    Fixed(Vec<FixedLenByteArray>),
}

/// How a Connect value becomes a column's value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Convert {
    AsIs,
    /// Milliseconds (Connect's Time and Timestamp) to microseconds (Iceberg's).
    MillisToMicros,
    /// A decimal's unscaled big-endian bytes, sign-extended to 16.
    Fixed16,
}

/// A leaf column being filled.
#[derive(Debug)]
struct Column {
    values: Values,
    defs: Vec<i16>,
    reps: Vec<i16>,
}

/// The shape of the schema, parallel to the Parquet schema, for shredding.
#[derive(Debug)]
enum Node {
    Leaf {
        column: usize,
        optional: bool,
        convert: Convert,
    },
    Group {
        optional: bool,
        fields: Vec<Node>,
        /// The leaf columns under this node.
        columns: std::ops::Range<usize>,
    },
    /// A list (one child, the element) or a map (two, key and value).
    Repeated {
        optional: bool,
        children: Vec<Node>,
        columns: std::ops::Range<usize>,
    },
}

/// A Parquet file being built from records of one value schema.
pub(crate) struct ParquetWriter {
    schema: TypePtr,
    root: Vec<Node>,
    columns: Vec<Column>,
    compression: Compression,
    rows: usize,
}

impl std::fmt::Debug for ParquetWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ParquetWriter")
            .field("rows", &self.rows)
            .finish_non_exhaustive()
    }
}

impl ParquetWriter {
    /// A writer for records whose values have `schema`, which must be a struct.
    pub(crate) fn new(schema: &Schema, compression: Compression) -> Result<ParquetWriter, String> {
        Self::build_writer(schema, compression, None)
    }

    /// A writer of an Iceberg data file: `ids` holds the field ids of `schema`'s fields.
    pub(crate) fn for_iceberg(
        schema: &Schema,
        compression: Compression,
        ids: &FieldIds,
    ) -> Result<ParquetWriter, String> {
        Self::build_writer(schema, compression, Some(ids))
    }

    fn build_writer(
        schema: &Schema,
        compression: Compression,
        ids: Option<&FieldIds>,
    ) -> Result<ParquetWriter, String> {
        if schema.kind != SchemaType::Struct {
            return Err(format!(
                "Parquet files hold records whose value is a struct; this value's schema is {}",
                schema.kind.name()
            ));
        }
        let mut columns = Vec::new();
        let mut fields = Vec::new();
        let mut root = Vec::new();
        for (i, field) in schema.fields.iter().enumerate() {
            let field_ids = child_ids(ids, i, &field.name)?;
            let (ty, node) = build(&field.name, &field.schema, &mut columns, 0, field_ids)?;
            fields.push(ty);
            root.push(node);
        }
        let schema = Type::group_type_builder(schema.name.as_deref().unwrap_or("ConnectDefault"))
            .with_fields(fields)
            .build()
            .map_err(|e| format!("building the Parquet schema: {e}"))?;
        Ok(ParquetWriter {
            schema: Arc::new(schema),
            root,
            columns,
            compression,
            rows: 0,
        })
    }

    /// Adds one record's value (a struct of the writer's schema).
    pub(crate) fn write(&mut self, value: &Value) -> Result<(), String> {
        let Value::Struct(record) = value else {
            return Err("the value is not a struct".to_string());
        };
        // Shred into copies of the level lengths, so a value that fails halfway leaves the
        // columns as they were.
        let marks: Vec<(usize, usize)> = self
            .columns
            .iter()
            .map(|c| (c.defs.len(), values_len(&c.values)))
            .collect();
        let mut result = Ok(());
        for (node, field_value) in self.root.iter().zip(record.values.iter()) {
            result = shred(node, field_value, 0, 0, 0, &mut self.columns);
            if result.is_err() {
                break;
            }
        }
        if let Err(e) = result {
            for (column, (levels, values)) in self.columns.iter_mut().zip(marks) {
                column.defs.truncate(levels);
                column.reps.truncate(levels);
                truncate_values(&mut column.values, values);
            }
            return Err(e);
        }
        self.rows += 1;
        Ok(())
    }

    /// The file's bytes.
    pub(crate) fn finish(self) -> Result<Vec<u8>, String> {
        let properties = WriterProperties::builder()
            .set_compression(self.compression)
            .set_created_by(format!("spate version {}", env!("CARGO_PKG_VERSION")))
            .build();
        let error = |e: parquet::errors::ParquetError| format!("writing the Parquet file: {e}");
        let mut out = Vec::new();
        let mut writer = SerializedFileWriter::new(&mut out, self.schema, Arc::new(properties))
            .map_err(error)?;
        let mut group = writer.next_row_group().map_err(error)?;
        let mut columns = self.columns.into_iter();
        while let Some(mut column_writer) = group.next_column().map_err(error)? {
            let column = columns.next().ok_or_else(|| {
                "the Parquet schema has more columns than were filled".to_string()
            })?;
            let (defs, reps) = (Some(column.defs.as_slice()), Some(column.reps.as_slice()));
            match &column.values {
                Values::Bool(v) => column_writer
                    .typed::<BoolType>()
                    .write_batch(v, defs, reps)
                    .map(drop),
                Values::Int32(v) => column_writer
                    .typed::<Int32Type>()
                    .write_batch(v, defs, reps)
                    .map(drop),
                Values::Int64(v) => column_writer
                    .typed::<Int64Type>()
                    .write_batch(v, defs, reps)
                    .map(drop),
                Values::Float(v) => column_writer
                    .typed::<FloatType>()
                    .write_batch(v, defs, reps)
                    .map(drop),
                Values::Double(v) => column_writer
                    .typed::<DoubleType>()
                    .write_batch(v, defs, reps)
                    .map(drop),
                Values::Bytes(v) => column_writer
                    .typed::<ByteArrayType>()
                    .write_batch(v, defs, reps)
                    .map(drop),
                Values::Fixed(v) => column_writer
                    .typed::<FixedLenByteArrayType>()
                    .write_batch(v, defs, reps)
                    .map(drop),
            }
            .map_err(error)?;
            column_writer.close().map_err(error)?;
        }
        group.close().map_err(error)?;
        writer.close().map_err(error)?;
        Ok(out)
    }
}

fn values_len(values: &Values) -> usize {
    match values {
        Values::Bool(v) => v.len(),
        Values::Int32(v) => v.len(),
        Values::Int64(v) => v.len(),
        Values::Float(v) => v.len(),
        Values::Double(v) => v.len(),
        Values::Bytes(v) => v.len(),
        Values::Fixed(v) => v.len(),
    }
}

fn truncate_values(values: &mut Values, len: usize) {
    match values {
        Values::Bool(v) => v.truncate(len),
        Values::Int32(v) => v.truncate(len),
        Values::Int64(v) => v.truncate(len),
        Values::Float(v) => v.truncate(len),
        Values::Double(v) => v.truncate(len),
        Values::Bytes(v) => v.truncate(len),
        Values::Fixed(v) => v.truncate(len),
    }
}

/// The ids of child `index` (named `name`) of a node, when writing for Iceberg.
fn child_ids<'a>(
    ids: Option<&'a FieldIds>,
    index: usize,
    name: &str,
) -> Result<Option<&'a FieldIds>, String> {
    match ids {
        None => Ok(None),
        Some(ids) => ids
            .children
            .get(index)
            .map(Some)
            .ok_or_else(|| format!("field {name} has no Iceberg field id")),
    }
}

fn repetition(optional: bool) -> Repetition {
    if optional {
        Repetition::OPTIONAL
    } else {
        Repetition::REQUIRED
    }
}

/// The Parquet type and shredding node of a field, adding its leaf columns to `columns`.
fn build(
    name: &str,
    schema: &Schema,
    columns: &mut Vec<Column>,
    depth: usize,
    ids: Option<&FieldIds>,
) -> Result<(TypePtr, Node), String> {
    if depth > 64 {
        return Err("the schema nests deeper than 64 levels".to_string());
    }
    let error = |e: parquet::errors::ParquetError| format!("field {name}: {e}");
    let first = columns.len();
    let optional = schema.optional;
    let built = match schema.kind {
        SchemaType::Struct => {
            let mut fields = Vec::new();
            let mut nodes = Vec::new();
            for (i, field) in schema.fields.iter().enumerate() {
                let field_ids = child_ids(ids, i, &field.name)?;
                let (ty, node) = build(&field.name, &field.schema, columns, depth + 1, field_ids)?;
                fields.push(ty);
                nodes.push(node);
            }
            if fields.is_empty() {
                return Err(format!(
                    "field {name} is a struct without fields, which Parquet cannot hold"
                ));
            }
            let ty = Type::group_type_builder(name)
                .with_repetition(repetition(optional))
                .with_fields(fields)
                .with_id(ids.map(|i| i.id))
                .build()
                .map_err(error)?;
            (
                ty,
                Node::Group {
                    optional,
                    fields: nodes,
                    columns: first..columns.len(),
                },
            )
        }
        SchemaType::Array => {
            let items = schema
                .key_or_items
                .as_deref()
                .ok_or_else(|| format!("the array schema of field {name} has no item schema"))?;
            let element_ids = child_ids(ids, 0, "element")?;
            let (element, node) = build("element", items, columns, depth + 1, element_ids)?;
            let list = Type::group_type_builder("list")
                .with_repetition(Repetition::REPEATED)
                .with_fields(vec![element])
                .build()
                .map_err(error)?;
            let ty = Type::group_type_builder(name)
                .with_repetition(repetition(optional))
                .with_logical_type(Some(LogicalType::List))
                .with_fields(vec![Arc::new(list)])
                .with_id(ids.map(|i| i.id))
                .build()
                .map_err(error)?;
            (
                ty,
                Node::Repeated {
                    optional,
                    children: vec![node],
                    columns: first..columns.len(),
                },
            )
        }
        SchemaType::Map => {
            let (Some(key), Some(value)) =
                (schema.key_or_items.as_deref(), schema.map_value.as_deref())
            else {
                return Err(format!(
                    "the map schema of field {name} has no key or value schema"
                ));
            };
            // Parquet's map keys are required.
            let required_key = Schema {
                optional: false,
                ..key.clone()
            };
            let (key_ids, value_ids) = (child_ids(ids, 0, "key")?, child_ids(ids, 1, "value")?);
            let (key_type, key_node) = build("key", &required_key, columns, depth + 1, key_ids)?;
            let (value_type, value_node) = build("value", value, columns, depth + 1, value_ids)?;
            let entries = Type::group_type_builder("key_value")
                .with_repetition(Repetition::REPEATED)
                .with_fields(vec![key_type, value_type])
                .build()
                .map_err(error)?;
            let ty = Type::group_type_builder(name)
                .with_repetition(repetition(optional))
                .with_logical_type(Some(LogicalType::Map))
                .with_fields(vec![Arc::new(entries)])
                .with_id(ids.map(|i| i.id))
                .build()
                .map_err(error)?;
            (
                ty,
                Node::Repeated {
                    optional,
                    children: vec![key_node, value_node],
                    columns: first..columns.len(),
                },
            )
        }
        _ => {
            let (physical, logical_type, values, convert) = primitive(schema, ids.is_some())?;
            let mut builder = Type::primitive_type_builder(name, physical)
                .with_repetition(repetition(optional))
                .with_id(ids.map(|i| i.id));
            if let Some(LogicalType::Decimal(d)) = &logical_type {
                builder = builder.with_precision(d.precision).with_scale(d.scale);
            }
            if convert == Convert::Fixed16 {
                builder = builder.with_length(16);
            }
            let ty = builder
                .with_logical_type(logical_type)
                .build()
                .map_err(error)?;
            columns.push(Column {
                values,
                defs: Vec::new(),
                reps: Vec::new(),
            });
            (
                ty,
                Node::Leaf {
                    column: first,
                    optional,
                    convert,
                },
            )
        }
    };
    Ok((Arc::new(built.0), built.1))
}

/// A primitive schema's physical type, annotation, empty column and conversion; `iceberg`
/// follows Iceberg's spec (microseconds, 16-byte decimals).
fn primitive(
    schema: &Schema,
    iceberg: bool,
) -> Result<(Physical, Option<LogicalType>, Values, Convert), String> {
    let name = schema.name.as_deref().unwrap_or("");
    let unit = if iceberg {
        TimeUnit::MICROS
    } else {
        TimeUnit::MILLIS
    };
    let micros = if iceberg {
        Convert::MillisToMicros
    } else {
        Convert::AsIs
    };
    let as_is = |physical, logical, values| Ok((physical, logical, values, Convert::AsIs));
    match (schema.kind, name) {
        (SchemaType::Int32, logical::DATE) => as_is(
            Physical::INT32,
            Some(LogicalType::Date),
            Values::Int32(Vec::new()),
        ),
        (SchemaType::Int32, logical::TIME) if iceberg => Ok((
            Physical::INT64,
            Some(LogicalType::time(false, unit)),
            Values::Int64(Vec::new()),
            micros,
        )),
        (SchemaType::Int32, logical::TIME) => as_is(
            Physical::INT32,
            Some(LogicalType::time(true, unit)),
            Values::Int32(Vec::new()),
        ),
        (SchemaType::Int64, logical::TIMESTAMP) => Ok((
            Physical::INT64,
            Some(LogicalType::timestamp(true, unit)),
            Values::Int64(Vec::new()),
            micros,
        )),
        (SchemaType::Bytes, logical::DECIMAL) => {
            let scale = schema
                .parameters
                .get(logical::DECIMAL_SCALE)
                .and_then(|s| s.parse::<i32>().ok())
                .ok_or("a Decimal schema has no integer scale parameter")?;
            let declared = schema
                .parameters
                .get(PRECISION_PARAMETER)
                .and_then(|s| s.parse::<i32>().ok());
            if iceberg {
                Ok((
                    Physical::FIXED_LEN_BYTE_ARRAY,
                    Some(LogicalType::decimal(scale, 38)),
                    Values::Fixed(Vec::new()),
                    Convert::Fixed16,
                ))
            } else {
                let precision = declared.unwrap_or(DEFAULT_PRECISION).max(scale).max(1);
                as_is(
                    Physical::BYTE_ARRAY,
                    Some(LogicalType::decimal(scale, precision)),
                    Values::Bytes(Vec::new()),
                )
            }
        }
        (SchemaType::Int8, _) if !iceberg => as_is(
            Physical::INT32,
            Some(LogicalType::integer(8, true)),
            Values::Int32(Vec::new()),
        ),
        (SchemaType::Int16, _) if !iceberg => as_is(
            Physical::INT32,
            Some(LogicalType::integer(16, true)),
            Values::Int32(Vec::new()),
        ),
        (SchemaType::Int8 | SchemaType::Int16 | SchemaType::Int32, _) => {
            as_is(Physical::INT32, None, Values::Int32(Vec::new()))
        }
        (SchemaType::Int64, _) => as_is(Physical::INT64, None, Values::Int64(Vec::new())),
        (SchemaType::Float32, _) => as_is(Physical::FLOAT, None, Values::Float(Vec::new())),
        (SchemaType::Float64, _) => as_is(Physical::DOUBLE, None, Values::Double(Vec::new())),
        (SchemaType::Boolean, _) => as_is(Physical::BOOLEAN, None, Values::Bool(Vec::new())),
        (SchemaType::String, _) => as_is(
            Physical::BYTE_ARRAY,
            Some(LogicalType::String),
            Values::Bytes(Vec::new()),
        ),
        (SchemaType::Bytes, _) => as_is(Physical::BYTE_ARRAY, None, Values::Bytes(Vec::new())),
        (kind, _) => Err(format!("{} is not a primitive type", kind.name())),
    }
}

/// Writes `value` of `node` into the columns: `def` is the definition level of the node's
/// parent, `rep` the repetition level this value starts with, `depth` the repetition level of
/// the innermost enclosing list or map.
fn shred(
    node: &Node,
    value: &Value,
    def: i16,
    rep: i16,
    depth: i16,
    columns: &mut [Column],
) -> Result<(), String> {
    let nulls = |columns: &mut [Column], range: std::ops::Range<usize>, def: i16| {
        for column in &mut columns[range] {
            column.defs.push(def);
            column.reps.push(rep);
        }
    };
    match node {
        Node::Leaf {
            column,
            optional,
            convert,
        } => {
            let column = &mut columns[*column];
            if value.is_null() {
                if !optional {
                    return Err("a required field is null".to_string());
                }
                column.defs.push(def);
                column.reps.push(rep);
                return Ok(());
            }
            push_value(&mut column.values, value, *convert)?;
            column.defs.push(def + i16::from(*optional));
            column.reps.push(rep);
        }
        Node::Group {
            optional,
            fields,
            columns: range,
        } => {
            if value.is_null() {
                if !optional {
                    return Err("a required struct is null".to_string());
                }
                nulls(columns, range.clone(), def);
                return Ok(());
            }
            let Value::Struct(record) = value else {
                return Err(format!("expected a struct, got {}", value_type(value)));
            };
            let def = def + i16::from(*optional);
            for (index, field) in fields.iter().enumerate() {
                let field_value = record.values.get(index).unwrap_or(&Value::Null);
                shred(field, field_value, def, rep, depth, columns)?;
            }
        }
        Node::Repeated {
            optional,
            children,
            columns: range,
        } => {
            if value.is_null() {
                if !optional {
                    return Err("a required array or map is null".to_string());
                }
                nulls(columns, range.clone(), def);
                return Ok(());
            }
            let present = def + i16::from(*optional);
            let inner = depth + 1;
            match (value, children.as_slice()) {
                (Value::Array(items), [element]) => {
                    if items.is_empty() {
                        nulls(columns, range.clone(), present);
                    }
                    for (i, item) in items.iter().enumerate() {
                        let rep = if i == 0 { rep } else { inner };
                        shred(element, item, present + 1, rep, inner, columns)?;
                    }
                }
                (Value::Map(entries), [key, value_node]) => {
                    if entries.is_empty() {
                        nulls(columns, range.clone(), present);
                    }
                    for (i, (k, v)) in entries.iter().enumerate() {
                        let rep = if i == 0 { rep } else { inner };
                        shred(key, k, present + 1, rep, inner, columns)?;
                        shred(value_node, v, present + 1, rep, inner, columns)?;
                    }
                }
                (other, _) => {
                    return Err(format!(
                        "expected an {}, got {}",
                        if children.len() == 1 { "array" } else { "map" },
                        value_type(other)
                    ));
                }
            }
        }
    }
    Ok(())
}

fn push_value(values: &mut Values, value: &Value, convert: Convert) -> Result<(), String> {
    match (values, value, convert) {
        (Values::Int64(v), Value::Int32(n), Convert::MillisToMicros) => {
            v.push(i64::from(*n) * 1000)
        }
        (Values::Int64(v), Value::Int64(n), Convert::MillisToMicros) => {
            v.push(n.saturating_mul(1000))
        }
        (Values::Fixed(v), Value::Bytes(b), Convert::Fixed16) => {
            if b.len() > 16 {
                return Err("a decimal does not fit in 38 digits".to_string());
            }
            let fill = if b.first().is_some_and(|x| x & 0x80 != 0) {
                0xFF
            } else {
                0
            };
            let mut bytes = vec![fill; 16 - b.len()];
            bytes.extend_from_slice(b);
            v.push(FixedLenByteArray::from(bytes));
        }
        (Values::Bool(v), Value::Boolean(b), _) => v.push(*b),
        (Values::Int32(v), Value::Int8(n), _) => v.push(i32::from(*n)),
        (Values::Int32(v), Value::Int16(n), _) => v.push(i32::from(*n)),
        (Values::Int32(v), Value::Int32(n), _) => v.push(*n),
        (Values::Int64(v), Value::Int64(n), _) => v.push(*n),
        (Values::Float(v), Value::Float32(n), _) => v.push(*n),
        (Values::Double(v), Value::Float64(n), _) => v.push(*n),
        (Values::Bytes(v), Value::String(s), _) => v.push(ByteArray::from(s.as_bytes().to_vec())),
        (Values::Bytes(v), Value::Bytes(b), _) => v.push(ByteArray::from(b.to_vec())),
        (_, other, _) => {
            return Err(format!(
                "a {} value does not fit its column",
                value_type(other)
            ));
        }
    }
    Ok(())
}
