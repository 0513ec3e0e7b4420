//! Debezium's change event envelope for PostgreSQL: per table a topic `<prefix>.<schema>.<table>`,
//! a key struct `<topic>.Key` of the primary key's columns, and a value `<topic>.Envelope` with
//! `before` and `after` rows (`<topic>.Value`), `source` (`io.debezium.connector.postgresql.Source`),
//! `transaction`, `op` (`c` `u` `d` `r` `t`) and `ts_ms`/`ts_us`/`ts_ns`; a tombstone follows a
//! delete.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::Value as Json;

use super::pgoutput::Cell;
use super::types::{self, ColumnType, Modes};
use crate::data::{ConnectRecord, Schema, SchemaType, Struct, Value};

/// One column of a captured table.
#[derive(Debug, Clone)]
pub struct Column {
    /// Its name.
    pub name: String,
    /// Its type.
    pub ty: ColumnType,
    /// Whether it is part of the key.
    pub key: bool,
    /// Whether it may be null.
    pub nullable: bool,
}

/// A captured table with its schemas, built once per shape.
#[derive(Debug)]
pub struct Table {
    /// The table's schema (namespace).
    pub schema: String,
    /// The table's name.
    pub table: String,
    /// The topic its events go to.
    pub topic: String,
    columns: Vec<(Column, Schema)>,
    /// The schemas every event and its structs share (made once per table, not per event).
    key_schema: Option<Arc<Schema>>,
    row_schema: Arc<Schema>,
    source_schema: Arc<Schema>,
    envelope: Arc<Schema>,
}

/// The `source` block's schema.
fn source_schema() -> Schema {
    let string = || Schema::new(SchemaType::String);
    let opt_i64 = || Schema::optional(SchemaType::Int64);
    let mut snapshot = Schema {
        version: Some(1),
        default: Some(Box::new(Value::String("false".into()))),
        ..Schema::optional(SchemaType::String).with_name("io.debezium.data.Enum")
    };
    snapshot.parameters.insert(
        "allowed".into(),
        "true,first,first_in_data_collection,last_in_data_collection,last,false,incremental".into(),
    );
    Schema::structure(
        Some("io.debezium.connector.postgresql.Source"),
        vec![
            ("version", string()),
            ("connector", string()),
            ("name", string()),
            ("ts_ms", Schema::new(SchemaType::Int64)),
            ("snapshot", snapshot),
            ("db", string()),
            ("sequence", Schema::optional(SchemaType::String)),
            ("ts_us", opt_i64()),
            ("ts_ns", opt_i64()),
            ("schema", string()),
            ("table", string()),
            ("txId", opt_i64()),
            ("lsn", opt_i64()),
            ("xmin", opt_i64()),
        ],
    )
}

fn transaction_schema() -> Schema {
    Schema {
        version: Some(1),
        ..Schema::structure(
            Some("event.block"),
            vec![
                ("id", Schema::new(SchemaType::String)),
                ("total_order", Schema::new(SchemaType::Int64)),
                ("data_collection_order", Schema::new(SchemaType::Int64)),
            ],
        )
        .into_optional()
    }
}

impl Table {
    /// A table's schemas for `columns`, its events going to `<prefix>.<schema>.<table>`.
    pub fn new(
        prefix: &str,
        schema: &str,
        table: &str,
        columns: Vec<Column>,
        modes: Modes,
    ) -> Table {
        let topic = format!("{prefix}.{schema}.{table}");
        let columns: Vec<(Column, Schema)> = columns
            .into_iter()
            .map(|c| {
                let s = types::schema(&c.ty, c.nullable, modes);
                (c, s)
            })
            .collect();
        let key_fields: Vec<(&str, Schema)> = columns
            .iter()
            .filter(|(c, _)| c.key)
            .map(|(c, s)| (c.name.as_str(), s.clone()))
            .collect();
        let key_schema = (!key_fields.is_empty())
            .then(|| Schema::structure(Some(&format!("{topic}.Key")), key_fields));
        let row_schema = Schema::structure(
            Some(&format!("{topic}.Value")),
            columns
                .iter()
                .map(|(c, s)| (c.name.as_str(), s.clone()))
                .collect(),
        )
        .into_optional();
        let envelope = Schema {
            version: Some(2),
            ..Schema::structure(
                Some(&format!("{topic}.Envelope")),
                vec![
                    ("before", row_schema.clone()),
                    ("after", row_schema.clone()),
                    ("source", source_schema()),
                    ("transaction", transaction_schema()),
                    ("op", Schema::new(SchemaType::String)),
                    ("ts_ms", Schema::optional(SchemaType::Int64)),
                    ("ts_us", Schema::optional(SchemaType::Int64)),
                    ("ts_ns", Schema::optional(SchemaType::Int64)),
                ],
            )
        };
        Table {
            schema: schema.to_string(),
            table: table.to_string(),
            topic,
            columns,
            key_schema: key_schema.map(Arc::new),
            row_schema: Arc::new(row_schema),
            source_schema: Arc::new(envelope.fields[2].schema.clone()),
            envelope: Arc::new(envelope),
        }
    }

    /// A row from its cells (a tuple of `pgoutput` or a snapshot row); `partial` rows (a
    /// delete's old key) give required columns that were not sent their type's zero.
    pub fn row(&self, cells: &[Cell], modes: Modes, partial: bool) -> Result<Struct, String> {
        let mut row = Struct::new(Arc::clone(&self.row_schema));
        for (i, (column, schema)) in self.columns.iter().enumerate() {
            row.values[i] = match cells.get(i) {
                Some(Cell::Text(bytes)) => {
                    let text = std::str::from_utf8(bytes)
                        .map_err(|_| format!("column {} is not UTF-8 text", column.name))?;
                    types::value(&column.ty, text, schema, modes)
                        .map_err(|e| format!("column {}: {e}", column.name))?
                }
                Some(Cell::Unchanged) => types::unavailable(schema),
                Some(Cell::Null) | None if partial && !schema.optional => types::zero(schema),
                Some(Cell::Null) | None => Value::Null,
            };
        }
        Ok(row)
    }

    /// The key of `row`: its key columns, or null for a table without a primary key.
    pub fn key(&self, row: &Struct) -> Value {
        let Some(schema) = &self.key_schema else {
            return Value::Null;
        };
        let mut key = Struct::new(Arc::clone(schema));
        for (i, field) in schema.fields.iter().enumerate() {
            key.values[i] = row.get(&field.name).cloned().unwrap_or(Value::Null);
        }
        Value::Struct(key)
    }
}

/// Where and when a change happened, for `source` and the offset.
#[derive(Debug, Clone)]
pub struct Source {
    /// `topic.prefix`.
    pub server: Arc<str>,
    /// The database.
    pub db: Arc<str>,
    /// Commit (or snapshot) time, microseconds since the epoch.
    pub ts_us: i64,
    /// `true`, `first`, `last`, `false`.
    pub snapshot: &'static str,
    /// The transaction id.
    pub tx_id: Option<i64>,
    /// The change's LSN.
    pub lsn: Option<u64>,
    /// The commit LSN of the transaction before (Debezium's `sequence[0]`).
    pub last_commit_lsn: Option<u64>,
}

/// Now, in microseconds since the epoch.
pub fn now_us() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as i64)
}

/// One change event: `op` with the rows before and after, or a truncate (neither row); with
/// its source partition and offset when given.
pub fn event(
    table: &Table,
    op: &'static str,
    key: Value,
    before: Option<Struct>,
    after: Option<Struct>,
    source: &Source,
    offset: Option<(&Json, Json)>,
) -> ConnectRecord {
    let mut src = Struct::new(Arc::clone(&table.source_schema));
    src.put("version", Value::String(env!("CARGO_PKG_VERSION").into()));
    src.put("connector", Value::String("postgresql".into()));
    src.put("name", Value::String(source.server.to_string()));
    src.put("ts_ms", Value::Int64(source.ts_us.div_euclid(1000)));
    src.put("snapshot", Value::String(source.snapshot.into()));
    src.put("db", Value::String(source.db.to_string()));
    let text = |lsn: Option<u64>| lsn.map_or("null".to_string(), |l| format!("\"{l}\""));
    src.put(
        "sequence",
        Value::String(format!(
            "[{},{}]",
            text(source.last_commit_lsn),
            text(source.lsn)
        )),
    );
    src.put("ts_us", Value::Int64(source.ts_us));
    src.put("ts_ns", Value::Int64(source.ts_us.saturating_mul(1000)));
    src.put("schema", Value::String(table.schema.clone()));
    src.put("table", Value::String(table.table.clone()));
    if let Some(tx) = source.tx_id {
        src.put("txId", Value::Int64(tx));
    }
    if let Some(lsn) = source.lsn {
        src.put("lsn", Value::Int64(lsn as i64));
    }
    let now = now_us();
    let mut envelope = Struct::new(Arc::clone(&table.envelope));
    envelope.values[0] = before.map_or(Value::Null, Value::Struct);
    envelope.values[1] = after.map_or(Value::Null, Value::Struct);
    envelope.values[2] = Value::Struct(src);
    envelope.values[4] = Value::String(op.into());
    envelope.values[5] = Value::Int64(now / 1000);
    envelope.values[6] = Value::Int64(now);
    envelope.values[7] = Value::Int64(now.saturating_mul(1000));
    let mut record = ConnectRecord::new(
        &table.topic,
        Some(Arc::clone(&table.envelope)),
        Value::Struct(envelope),
    );
    // A truncate (and a table without a primary key) has no key, and no key schema.
    if !key.is_null() {
        record.key_schema = table.key_schema.clone();
    }
    record.key = key;
    if let Some((partition, offset)) = offset {
        record.source_partition = Some(partition.clone());
        record.source_offset = Some(offset);
    }
    record
}

/// The tombstone that follows a delete: the same key, a null value.
pub fn tombstone(deleted: &ConnectRecord) -> ConnectRecord {
    let mut record = ConnectRecord::new(&deleted.topic, None, Value::Null);
    record.key_schema = deleted.key_schema.clone();
    record.key = deleted.key.clone();
    record.source_partition = deleted.source_partition.clone();
    record.source_offset = deleted.source_offset.clone();
    record
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::connectors::postgres::types::{DecimalMode, TimeMode};
    use bytes::Bytes;
    use serde_json::json;

    const MODES: Modes = Modes {
        decimal: DecimalMode::Precise,
        time: TimeMode::Adaptive,
    };

    fn customers() -> Table {
        let column = |name: &str, oid, key, nullable| Column {
            name: name.into(),
            ty: ColumnType { oid, modifier: -1 },
            key,
            nullable,
        };
        Table::new(
            "dbserver1",
            "inventory",
            "customers",
            vec![
                column("id", 23, true, false),
                column("email", 25, false, false),
                column("note", 25, false, true),
            ],
            MODES,
        )
    }

    #[test]
    fn builds_debeziums_envelope_key_and_source() {
        let table = customers();
        let row = table
            .row(
                &[
                    Cell::Text(Bytes::from_static(b"1001")),
                    Cell::Text(Bytes::from_static(b"a@b.c")),
                    Cell::Null,
                ],
                MODES,
                false,
            )
            .expect("present");
        let key = table.key(&row);
        let source = Source {
            server: "dbserver1".into(),
            db: "inventory".into(),
            ts_us: 1_700_000_000_123_456,
            snapshot: "false",
            tx_id: Some(771),
            lsn: Some(33_000_000),
            last_commit_lsn: Some(32_000_000),
        };
        let partition = json!({"server": "dbserver1"});
        let record = event(
            &table,
            "c",
            key,
            None,
            Some(row),
            &source,
            Some((&partition, json!({"lsn": 33_000_000}))),
        );
        assert_eq!(record.topic, "dbserver1.inventory.customers");
        let key_schema = record.key_schema.as_ref().expect("present");
        assert_eq!(
            key_schema.name.as_deref(),
            Some("dbserver1.inventory.customers.Key")
        );
        assert_eq!(record.key.get("id"), Some(&Value::Int32(1001)));
        let schema = record.value_schema.as_ref().expect("present");
        assert_eq!(
            schema.name.as_deref(),
            Some("dbserver1.inventory.customers.Envelope")
        );
        assert!(schema.field("before").expect("present").schema.optional);
        assert_eq!(record.value.get("op"), Some(&Value::String("c".into())));
        assert_eq!(record.value.get("before"), Some(&Value::Null));
        let after = record.value.get("after").expect("present");
        assert_eq!(after.get("email"), Some(&Value::String("a@b.c".into())));
        let source = record.value.get("source").expect("present");
        assert_eq!(source.get("ts_ms"), Some(&Value::Int64(1_700_000_000_123)));
        assert_eq!(
            source.get("sequence"),
            Some(&Value::String(r#"["32000000","33000000"]"#.into()))
        );
        assert_eq!(
            source.get("table"),
            Some(&Value::String("customers".into()))
        );
        assert_eq!(tombstone(&record).value, Value::Null);
    }

    #[test]
    fn a_deletes_old_key_gives_required_columns_their_zero() {
        let table = customers();
        let row = table
            .row(
                &[Cell::Text(Bytes::from_static(b"7")), Cell::Null, Cell::Null],
                MODES,
                true,
            )
            .expect("present");
        assert_eq!(row.get("email"), Some(&Value::String(String::new())));
        assert_eq!(row.get("note"), Some(&Value::Null));
        let bad = table.row(&[Cell::Text(Bytes::from_static(b"x"))], MODES, false);
        assert!(bad.expect_err("fails").contains("column id"));
    }
}
