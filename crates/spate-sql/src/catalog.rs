//! Tables: a topic with its columns, formats, watermark and primary key. Declared with
//! `CREATE TABLE` (Flink's Kafka and Upsert Kafka connector options, checked as Flink checks
//! them: an unknown option is refused by name), or found in the schema registry: a topic whose
//! `<topic>-value` subject has a schema is a table with no DDL, as in Confluent Cloud for
//! Flink, with the record timestamp as `$rowtime` and the watermark on it.

use std::collections::BTreeMap;
use std::sync::Arc;

use spate_connect::data::{Schema, SchemaType};

use crate::errors::SqlError;
use crate::expr::{self, Scope};
use crate::parse::{ColumnKind, CreateTable};
use crate::types::{DataType, Field};

/// How a key or value is encoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Format {
    /// `json`: a JSON object, fields by column name.
    Json,
    /// `raw`: the bytes as the one column (STRING or BYTES).
    Raw,
    /// `avro-confluent`: Avro in Confluent's wire format, schemas in the registry.
    Avro,
    /// `json-registry`: JSON Schema in Confluent's wire format.
    JsonRegistry,
    /// `protobuf-confluent`: Protobuf in Confluent's wire format.
    Protobuf,
}

impl Format {
    fn parse(name: &str, option: &str) -> Result<Format, SqlError> {
        Ok(match name {
            "json" => Format::Json,
            "raw" => Format::Raw,
            "avro-confluent" => Format::Avro,
            "json-registry" | "json-sr" => Format::JsonRegistry,
            "protobuf-confluent" | "proto-registry" => Format::Protobuf,
            other => {
                return Err(SqlError::Option(format!(
                    "'{option}' = '{other}': formats are json, raw, avro-confluent, json-registry, protobuf-confluent"
                )));
            }
        })
    }

    /// Flink's name.
    pub fn name(&self) -> &'static str {
        match self {
            Format::Json => "json",
            Format::Raw => "raw",
            Format::Avro => "avro-confluent",
            Format::JsonRegistry => "json-registry",
            Format::Protobuf => "protobuf-confluent",
        }
    }

    /// Whether it needs the schema registry.
    pub fn uses_registry(&self) -> bool {
        matches!(self, Format::Avro | Format::JsonRegistry | Format::Protobuf)
    }
}

/// Where a source starts when its job has no committed offsets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Startup {
    /// `earliest-offset`
    Earliest,
    /// `latest-offset`
    Latest,
    /// `group-offsets` (committed offsets of `properties.group.id`, else earliest)
    GroupOffsets,
    /// `timestamp` (`scan.startup.timestamp-millis`)
    Timestamp(i64),
}

/// What a job does with a record of this table that does not decode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ErrorPolicy {
    /// Fail the job (Flink's default).
    Fail,
    /// Skip the record and count it (`json.ignore-parse-errors`).
    Skip,
    /// Write the record, with the reason in a header, to a dead-letter topic, in the job's
    /// transaction.
    DeadLetter(String),
}

/// A column of a table.
#[derive(Debug, Clone, PartialEq)]
pub struct Column {
    /// Name and type.
    pub field: Field,
    /// Physical, computed or metadata.
    pub kind: ColumnKind,
}

/// A table.
#[derive(Debug, Clone)]
pub struct Table {
    /// Its name.
    pub name: String,
    /// The topic behind it.
    pub topic: String,
    /// All columns in order.
    pub columns: Vec<Column>,
    /// The watermark: the rowtime column and the expression (over the row) giving the
    /// watermark a record advances to.
    pub watermark: Option<(usize, expr::Expr)>,
    /// Primary key column positions.
    pub primary_key: Vec<usize>,
    /// `upsert-kafka` (or a primary key): the topic is a changelog by key, tombstones delete.
    pub upsert: bool,
    /// The value format.
    pub value_format: Format,
    /// The key format and the columns the key holds.
    pub key: Option<(Format, Vec<usize>)>,
    /// `value.fields-include` = `EXCEPT_KEY`.
    pub value_except_key: bool,
    /// Where a new job starts reading.
    pub startup: Startup,
    /// The consumer group of `group-offsets`.
    pub group_id: Option<String>,
    /// Records that do not decode: `scan.error-policy` (`fail`, `skip`, `dlq`).
    pub error_policy: ErrorPolicy,
    /// How long a partition read to its end without new records takes to stop holding the
    /// watermark back (`scan.watermark.idle-timeout`).
    pub idle_timeout: std::time::Duration,
    /// The schema registry's URL for registry formats.
    pub registry_url: Option<String>,
    /// The options as written.
    pub options: BTreeMap<String, String>,
    /// The statement that made it (empty for tables from the registry).
    pub ddl: String,
    /// Found in the registry rather than declared.
    pub from_registry: bool,
}

const OPTIONS: &[&str] = &[
    "connector",
    "topic",
    "format",
    "key.format",
    "value.format",
    "key.fields",
    "key.fields-prefix",
    "value.fields-include",
    "scan.startup.mode",
    "scan.startup.timestamp-millis",
    "scan.watermark.idle-timeout",
    "scan.error-policy",
    "scan.error-policy.dlq-topic",
    "properties.group.id",
    "properties.bootstrap.servers",
    "sink.delivery-guarantee",
    "sink.transactional-id-prefix",
    "sink.partitioner",
    "json.ignore-parse-errors",
    "json.fail-on-missing-field",
    "json.timestamp-format.standard",
    "avro-confluent.url",
    "avro-confluent.schema-registry.url",
    "value.avro-confluent.url",
    "key.avro-confluent.url",
    "json-registry.url",
    "value.json-registry.url",
    "protobuf-confluent.url",
    "value.protobuf-confluent.url",
    "value.format.url",
];

impl Table {
    /// The table `CREATE TABLE` declares. `default_registry` is the worker's schema registry.
    pub fn declare(
        create: &CreateTable,
        ddl: &str,
        default_registry: Option<&str>,
    ) -> Result<Table, SqlError> {
        let mut options = BTreeMap::new();
        for (k, v) in &create.options {
            if !OPTIONS.contains(&k.as_str()) {
                return Err(SqlError::Option(format!(
                    "unsupported option '{k}' for table {} (supported: {})",
                    create.name,
                    OPTIONS.join(", ")
                )));
            }
            options.insert(k.clone(), v.clone());
        }
        let connector = options.get("connector").map_or("kafka", String::as_str);
        let upsert = match connector {
            "kafka" => false,
            "upsert-kafka" => true,
            other => {
                return Err(SqlError::Option(format!(
                    "'connector' = '{other}': tables are Kafka topics ('kafka' or 'upsert-kafka')"
                )));
            }
        };
        let columns: Vec<Column> = create
            .columns
            .iter()
            .map(|c| Column {
                field: c.field.clone(),
                kind: c.kind.clone(),
            })
            .collect();
        let names: Vec<String> = columns.iter().map(|c| c.field.name.clone()).collect();
        let position = |name: &str| {
            names
                .iter()
                .position(|c| c.eq_ignore_ascii_case(name))
                .ok_or_else(|| SqlError::UnknownColumn {
                    name: name.to_string(),
                    candidates: names.clone(),
                })
        };
        let primary_key = create
            .primary_key
            .iter()
            .map(|k| position(k))
            .collect::<Result<Vec<_>, _>>()?;
        if upsert && primary_key.is_empty() {
            return Err(SqlError::Option(format!(
                "table {} uses 'upsert-kafka', which needs a PRIMARY KEY (...) NOT ENFORCED",
                create.name
            )));
        }
        let value_name = options
            .get("value.format")
            .or_else(|| options.get("format"))
            .cloned()
            .unwrap_or_else(|| "json".to_string());
        let value_format = Format::parse(&value_name, "value.format")?;
        let key = match options.get("key.format") {
            Some(name) => {
                let format = Format::parse(name, "key.format")?;
                let fields = match options.get("key.fields") {
                    Some(list) => list
                        .split(';')
                        .map(|f| position(f.trim()))
                        .collect::<Result<Vec<_>, _>>()?,
                    None if !primary_key.is_empty() => primary_key.clone(),
                    None => {
                        return Err(SqlError::Option(format!(
                            "table {} sets 'key.format' but neither 'key.fields' nor a PRIMARY KEY",
                            create.name
                        )));
                    }
                };
                Some((format, fields))
            }
            None if !primary_key.is_empty() => Some((Format::Json, primary_key.clone())),
            None => None,
        };
        let value_except_key = match options.get("value.fields-include").map(String::as_str) {
            None | Some("ALL") => false,
            Some("EXCEPT_KEY") => true,
            Some(other) => {
                return Err(SqlError::Option(format!(
                    "'value.fields-include' = '{other}': ALL or EXCEPT_KEY"
                )));
            }
        };
        let startup = match options.get("scan.startup.mode").map(String::as_str) {
            None | Some("earliest-offset") => Startup::Earliest,
            Some("latest-offset") => Startup::Latest,
            Some("group-offsets") => Startup::GroupOffsets,
            Some("timestamp") => {
                let ms = options
                    .get("scan.startup.timestamp-millis")
                    .and_then(|v| v.parse().ok())
                    .ok_or_else(|| {
                        SqlError::Option(
                            "'scan.startup.mode' = 'timestamp' needs 'scan.startup.timestamp-millis'"
                                .into(),
                        )
                    })?;
                Startup::Timestamp(ms)
            }
            Some(other) => {
                return Err(SqlError::Option(format!(
                    "'scan.startup.mode' = '{other}': earliest-offset, latest-offset, group-offsets or timestamp"
                )));
            }
        };
        let registry_url = [
            "value.avro-confluent.url",
            "avro-confluent.url",
            "avro-confluent.schema-registry.url",
            "value.json-registry.url",
            "json-registry.url",
            "value.protobuf-confluent.url",
            "protobuf-confluent.url",
            "value.format.url",
        ]
        .iter()
        .find_map(|k| options.get(*k).cloned())
        .or_else(|| default_registry.map(str::to_string));
        if value_format.uses_registry() && registry_url.is_none() {
            return Err(SqlError::Option(format!(
                "'value.format' = '{value_name}' needs a schema registry: set 'value.{value_name}.url'"
            )));
        }
        if value_format == Format::Raw {
            let physical = columns
                .iter()
                .filter(|c| c.kind == ColumnKind::Physical)
                .count();
            if physical != 1 {
                return Err(SqlError::Option(format!(
                    "'value.format' = 'raw' reads one physical column; table {} has {physical}",
                    create.name
                )));
            }
        }
        let mut table = Table {
            name: create.name.clone(),
            topic: options
                .get("topic")
                .cloned()
                .unwrap_or_else(|| create.name.clone()),
            columns,
            watermark: None,
            primary_key,
            upsert,
            value_format,
            key,
            value_except_key,
            startup,
            group_id: options.get("properties.group.id").cloned(),
            error_policy: match (
                options.get("scan.error-policy").map(String::as_str),
                options.get("json.ignore-parse-errors").map(String::as_str),
            ) {
                (None, Some("true")) | (Some("skip"), _) => ErrorPolicy::Skip,
                (None | Some("fail"), _) => ErrorPolicy::Fail,
                (Some("dlq"), _) => ErrorPolicy::DeadLetter(
                    options
                        .get("scan.error-policy.dlq-topic")
                        .cloned()
                        .unwrap_or_else(|| format!("{}-dlq", options.get("topic").unwrap_or(&create.name))),
                ),
                (Some(other), _) => {
                    return Err(SqlError::Option(format!(
                        "'scan.error-policy' = '{other}': fail, skip or dlq"
                    )));
                }
            },
            idle_timeout: match options.get("scan.watermark.idle-timeout") {
                Some(text) => parse_duration(text).ok_or_else(|| {
                    SqlError::Option(format!(
                        "'scan.watermark.idle-timeout' = '{text}': a duration such as '5 s' or '500 ms'"
                    ))
                })?,
                None => DEFAULT_IDLE_TIMEOUT,
            },
            registry_url,
            options,
            ddl: ddl.to_string(),
            from_registry: false,
        };
        table.type_computed_columns()?;
        if let Some((column, expression)) = &create.watermark {
            let i = position(column)?;
            if !table.columns[i].field.data_type.is_timestamp() {
                return Err(SqlError::Type(format!(
                    "the watermark column {column} must be a TIMESTAMP(3) or TIMESTAMP_LTZ(3), not {}",
                    table.columns[i].field.data_type
                )));
            }
            let compiled = expr::compile(expression, &table.scope())?;
            if !compiled.data_type.is_timestamp() {
                return Err(SqlError::Type(format!(
                    "the watermark expression must give a timestamp, not {}",
                    compiled.data_type
                )));
            }
            table.watermark = Some((i, compiled.expr));
        }
        Ok(table)
    }

    /// A table over `topic` from its registered value schema (a Connect struct schema).
    pub fn from_schema(
        topic: &str,
        schema: &Schema,
        format: Format,
        registry_url: &str,
    ) -> Result<Table, SqlError> {
        let DataType::Row(fields) = sql_type(schema) else {
            return Err(SqlError::Unsupported(format!(
                "topic {topic}: its value schema is not a record"
            )));
        };
        let mut columns: Vec<Column> = fields
            .into_iter()
            .map(|field| Column {
                field,
                kind: ColumnKind::Physical,
            })
            .collect();
        columns.push(Column {
            field: Field::new("$rowtime", DataType::TimestampLtz(3)),
            kind: ColumnKind::Metadata {
                key: "timestamp".into(),
                is_virtual: true,
            },
        });
        let rowtime = columns.len() - 1;
        Ok(Table {
            name: topic.to_string(),
            topic: topic.to_string(),
            columns,
            watermark: Some((rowtime, expr::Expr::Column(rowtime))),
            primary_key: Vec::new(),
            upsert: false,
            value_format: format,
            key: None,
            value_except_key: false,
            startup: Startup::Earliest,
            group_id: None,
            error_policy: ErrorPolicy::Fail,
            idle_timeout: DEFAULT_IDLE_TIMEOUT,
            registry_url: Some(registry_url.to_string()),
            options: BTreeMap::new(),
            ddl: String::new(),
            from_registry: true,
        })
    }

    /// The table's columns as a scope.
    pub fn scope(&self) -> Scope {
        Scope::of(Some(&self.name), &self.fields())
    }

    /// The fields of a row of this table.
    pub fn fields(&self) -> Vec<Field> {
        self.columns.iter().map(|c| c.field.clone()).collect()
    }

    /// Types computed columns from their expressions, in order (one may use an earlier one).
    fn type_computed_columns(&mut self) -> Result<(), SqlError> {
        for i in 0..self.columns.len() {
            if let ColumnKind::Computed(e) = &self.columns[i].kind {
                let scope = Scope::of(
                    Some(&self.name),
                    &self.columns[..i]
                        .iter()
                        .map(|c| c.field.clone())
                        .collect::<Vec<_>>(),
                );
                let compiled = expr::compile(e, &scope)?;
                self.columns[i].field.data_type = compiled.data_type;
            }
        }
        Ok(())
    }

    /// The physical columns the value holds, in order.
    pub fn value_columns(&self) -> Vec<usize> {
        let key: &[usize] = self.key.as_ref().map_or(&[], |(_, k)| k);
        self.columns
            .iter()
            .enumerate()
            .filter(|(i, c)| {
                c.kind == ColumnKind::Physical && !(self.value_except_key && key.contains(i))
            })
            .map(|(i, _)| i)
            .collect()
    }

    /// The statement that would make this table.
    pub fn describe(&self) -> Vec<(String, String, String)> {
        self.columns
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let extra = match &c.kind {
                    ColumnKind::Physical => String::new(),
                    ColumnKind::Computed(e) => format!("AS {e}"),
                    ColumnKind::Metadata { key, is_virtual } => format!(
                        "METADATA FROM '{key}'{}",
                        if *is_virtual { " VIRTUAL" } else { "" }
                    ),
                };
                let mut extra = extra;
                if self.primary_key.contains(&i) {
                    extra = format!("{extra} PRIMARY KEY").trim().to_string();
                }
                if self.watermark.as_ref().is_some_and(|(w, _)| *w == i) {
                    extra = format!("{extra} ROWTIME").trim().to_string();
                }
                (c.field.name.clone(), c.field.data_type.to_string(), extra)
            })
            .collect()
    }
}

/// A partition's default idle timeout.
pub const DEFAULT_IDLE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// Flink's durations: `500 ms`, `5 s`, `5s`, `1 min`, `2 h`, or milliseconds alone.
pub fn parse_duration(text: &str) -> Option<std::time::Duration> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let n: u64 = text[..split].parse().ok()?;
    let ms = match text[split..].trim().to_ascii_lowercase().as_str() {
        "" | "ms" | "milli" | "millis" | "millisecond" | "milliseconds" => n,
        "s" | "sec" | "secs" | "second" | "seconds" => n * 1000,
        "min" | "m" | "minute" | "minutes" => n * 60_000,
        "h" | "hour" | "hours" => n * 3_600_000,
        _ => return None,
    };
    Some(std::time::Duration::from_millis(ms))
}

/// The SQL type of a Connect schema.
pub fn sql_type(schema: &Schema) -> DataType {
    if let Some(name) = schema.name.as_deref() {
        match name {
            "org.apache.kafka.connect.data.Timestamp" => return DataType::TimestampLtz(3),
            "org.apache.kafka.connect.data.Date" => return DataType::Date,
            "org.apache.kafka.connect.data.Decimal" => {
                let scale = schema
                    .parameters
                    .get("scale")
                    .and_then(|s| s.parse().ok())
                    .unwrap_or(0);
                return DataType::Decimal(38, scale);
            }
            _ => {}
        }
    }
    match schema.kind {
        SchemaType::Int8 => DataType::TinyInt,
        SchemaType::Int16 => DataType::SmallInt,
        SchemaType::Int32 => DataType::Int,
        SchemaType::Int64 => DataType::BigInt,
        SchemaType::Float32 => DataType::Float,
        SchemaType::Float64 => DataType::Double,
        SchemaType::Boolean => DataType::Boolean,
        SchemaType::String => DataType::String,
        SchemaType::Bytes => DataType::Bytes,
        SchemaType::Array => DataType::Array(Box::new(
            schema
                .key_or_items
                .as_deref()
                .map_or(DataType::Null, sql_type),
        )),
        SchemaType::Map => DataType::Map(
            Box::new(
                schema
                    .key_or_items
                    .as_deref()
                    .map_or(DataType::Null, sql_type),
            ),
            Box::new(schema.map_value.as_deref().map_or(DataType::Null, sql_type)),
        ),
        SchemaType::Struct => DataType::Row(
            schema
                .fields
                .iter()
                .map(|f| Field::new(f.name.clone(), sql_type(&f.schema)))
                .collect(),
        ),
    }
}

/// The tables, views and their names.
#[derive(Debug, Default, Clone)]
pub struct Catalog {
    tables: BTreeMap<String, Arc<Table>>,
}

impl Catalog {
    /// The declared table `name` (case-insensitive).
    pub fn table(&self, name: &str) -> Option<Arc<Table>> {
        self.tables.get(&name.to_ascii_lowercase()).cloned()
    }

    /// Adds or replaces a table.
    pub fn put(&mut self, table: Table) {
        self.tables
            .insert(table.name.to_ascii_lowercase(), Arc::new(table));
    }

    /// Removes a table; whether it was there.
    pub fn remove(&mut self, name: &str) -> bool {
        self.tables.remove(&name.to_ascii_lowercase()).is_some()
    }

    /// Every declared table.
    pub fn tables(&self) -> impl Iterator<Item = &Arc<Table>> {
        self.tables.values()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse::{Statement, parse};

    fn declare(sql: &str) -> Result<Table, SqlError> {
        let parsed = parse(sql)?;
        let Statement::CreateTable(create) = &parsed[0].statement else {
            panic!("not a CREATE TABLE");
        };
        Table::declare(create, &parsed[0].text, None)
    }

    #[test]
    fn a_declared_table_has_its_options() {
        let t = declare(
            "CREATE TABLE bid (auction BIGINT, price BIGINT, dateTime TIMESTAMP(3), cents AS price * 100, \
             WATERMARK FOR dateTime AS dateTime - INTERVAL '4' SECOND) \
             WITH ('connector' = 'kafka', 'topic' = 'bids', 'value.format' = 'json', 'scan.startup.mode' = 'latest-offset')",
        )
        .expect("valid");
        assert_eq!(t.topic, "bids");
        assert_eq!(t.columns[3].field.data_type, DataType::BigInt);
        assert_eq!(t.watermark.as_ref().map(|(i, _)| *i), Some(2));
        assert_eq!(t.startup, Startup::Latest);
        assert_eq!(t.value_columns(), vec![0, 1, 2]);
    }

    #[test]
    fn bad_options_are_named() {
        let e = declare("CREATE TABLE t (a INT) WITH ('topik' = 'x')").expect_err("bad");
        assert!(e.to_string().contains("unsupported option 'topik'"), "{e}");
        let e = declare("CREATE TABLE t (a INT) WITH ('value.format' = 'xml')").expect_err("bad");
        assert!(e.to_string().contains("'xml'"), "{e}");
        let e =
            declare("CREATE TABLE t (a INT) WITH ('connector' = 'upsert-kafka')").expect_err("bad");
        assert!(e.to_string().contains("PRIMARY KEY"), "{e}");
        let e = declare("CREATE TABLE t (a INT, WATERMARK FOR a AS a) WITH ()").expect_err("bad");
        assert!(e.to_string().contains("TIMESTAMP"), "{e}");
        let e = declare("CREATE TABLE t (a INT, b AS c + 1) WITH ()").expect_err("bad");
        assert!(e.to_string().contains("column c not found"), "{e}");
    }
}
