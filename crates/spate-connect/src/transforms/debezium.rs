//! Debezium's `io.debezium.transforms.ExtractNewRecordState`: unwraps a change event's
//! envelope (`before`, `after`, `source`, `op`, `ts_ms`) to the row state after the change,
//! handles deletes and tombstones as configured, and copies envelope metadata into fields
//! (`add.fields`) or headers (`add.headers`). Works on schemaful envelopes (a struct whose
//! schema is named `*.Envelope`, or unnamed with `op` and `after` fields) and schemaless ones
//! (a map with `op` and `after` or `before`); other records pass unchanged, as Debezium passes
//! heartbeats and schema changes.

use std::sync::Arc;

use bytes::Bytes;

use super::{Cfg, Fail, Smt, map_get, map_put};
use crate::data::{ConnectRecord, Field, Schema, SchemaType, Struct, Value};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Deletes {
    /// Drop delete events.
    Drop,
    /// Keep delete events with a null value.
    Null,
    /// Keep them as a tombstone (null value, no schema).
    Tombstone,
    /// Give the `before` state with `__deleted` = "true" (and "false" on other events).
    Rewrite,
}

struct ExtractNewRecordState {
    drop_tombstones: bool,
    deletes: Deletes,
    add_fields: Vec<String>,
    add_fields_prefix: String,
    add_headers: Vec<String>,
    add_headers_prefix: String,
}

const DELETED_FIELD: &str = "__deleted";

pub(super) fn extract_new_record_state(cfg: &mut Cfg<'_>) -> Option<Box<dyn Smt>> {
    let before = cfg.problem_count();
    let mut drop_tombstones = cfg.boolean("drop.tombstones", true);
    let legacy = cfg.one_of(
        "delete.handling.mode",
        Some("drop"),
        &["drop", "rewrite", "none"],
    );
    let mut deletes = match legacy.as_deref() {
        Some("rewrite") => Deletes::Rewrite,
        Some("none") => Deletes::Null,
        _ => Deletes::Drop,
    };
    // The newer key (Debezium 2.5) replaces both older ones when set.
    if cfg.string("delete.tombstone.handling.mode").is_some() {
        let mode = cfg.one_of(
            "delete.tombstone.handling.mode",
            None,
            &["drop", "tombstone", "rewrite", "rewrite-with-tombstone"],
        );
        (deletes, drop_tombstones) = match mode.as_deref() {
            Some("tombstone") => (Deletes::Tombstone, false),
            Some("rewrite") => (Deletes::Rewrite, true),
            Some("rewrite-with-tombstone") => (Deletes::Rewrite, false),
            _ => (Deletes::Drop, true),
        };
    }
    let add_fields = cfg.list_or("add.fields", &[]);
    let add_headers = cfg.list_or("add.headers", &[]);
    for (key, list) in [("add.fields", &add_fields), ("add.headers", &add_headers)] {
        if list.iter().any(|f| f.is_empty()) {
            cfg.problem(key, "empty field name in the list, remove the extra comma");
        }
    }
    if cfg.failed_since(before) {
        return None;
    }
    Some(Box::new(ExtractNewRecordState {
        drop_tombstones,
        deletes,
        add_fields,
        add_fields_prefix: cfg.string_or("add.fields.prefix", "__"),
        add_headers,
        add_headers_prefix: cfg.string_or("add.headers.prefix", "__"),
    }))
}

/// Where an `add.fields` name points in the envelope: `op`, `ts_ms`, `ts_us`, `ts_ns` at the
/// top; `struct.field` (`source.ts_ms`, `transaction.id`) inside a struct; any other name in
/// `source`.
fn path(name: &str) -> (Option<&str>, &str) {
    match name.split_once('.') {
        Some((outer, inner)) => (Some(outer), inner),
        None if matches!(name, "op" | "ts_ms" | "ts_us" | "ts_ns") => (None, name),
        None => (Some("source"), name),
    }
}

/// The added field's name: the prefix and the name with dots as underscores.
fn added_name(prefix: &str, name: &str) -> String {
    format!("{prefix}{}", name.replace('.', "_"))
}

fn lookup<'a>(envelope: &'a Value, name: &str) -> Option<&'a Value> {
    match path(name) {
        (None, field) => envelope.get(field),
        (Some(outer), field) => envelope.get(outer).and_then(|v| v.get(field)),
    }
}

fn lookup_schema<'a>(schema: &'a Schema, name: &str) -> Option<&'a Schema> {
    match path(name) {
        (None, field) => schema.field(field).map(|f| &f.schema),
        (Some(outer), field) => schema
            .field(outer)
            .and_then(|f| f.schema.field(field))
            .map(|f| &f.schema),
    }
}

/// A header value as text: strings as they are, numbers and booleans printed.
fn header_text(value: &Value) -> Option<String> {
    match value {
        Value::Null => None,
        Value::String(s) => Some(s.clone()),
        Value::Boolean(b) => Some(b.to_string()),
        Value::Float32(f) => Some(f.to_string()),
        Value::Float64(f) => Some(f.to_string()),
        other => other
            .as_i64()
            .map(|i| i.to_string())
            .or_else(|| Some(format!("{other:?}"))),
    }
}

fn is_envelope(schema: Option<&Schema>, value: &Value) -> bool {
    match (schema, value) {
        (Some(s), Value::Struct(_)) => {
            s.kind == SchemaType::Struct
                && match &s.name {
                    Some(name) => name.ends_with(".Envelope") || name == "Envelope",
                    None => s.field("op").is_some() && s.field("after").is_some(),
                }
        }
        (None, Value::Map(entries)) => {
            map_get(entries, "op").is_some()
                && (map_get(entries, "after").is_some() || map_get(entries, "before").is_some())
        }
        _ => false,
    }
}

impl Smt for ExtractNewRecordState {
    fn apply(&mut self, mut record: ConnectRecord) -> Result<Option<ConnectRecord>, Fail> {
        if record.value.is_null() {
            return Ok(if self.drop_tombstones {
                None
            } else {
                Some(record)
            });
        }
        if !is_envelope(record.value_schema.as_deref(), &record.value) {
            return Ok(Some(record));
        }
        let envelope = std::mem::replace(&mut record.value, Value::Null);
        let envelope_schema = record.value_schema.take();
        let op = envelope
            .get("op")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        let delete = op == "d";
        if op == "t" {
            // Truncate events carry no row; Spate drops them rather than pass an envelope on.
            return Ok(None);
        }
        if delete {
            match self.deletes {
                Deletes::Drop => return Ok(None),
                Deletes::Tombstone => {
                    record.value_schema = None;
                    record.value = Value::Null;
                    self.add_headers_to(&mut record, &envelope);
                    return Ok(Some(record));
                }
                Deletes::Null | Deletes::Rewrite => {}
            }
        }
        let state_field = if delete && self.deletes == Deletes::Rewrite {
            "before"
        } else {
            "after"
        };
        let state = envelope.get(state_field).cloned().unwrap_or(Value::Null);
        self.add_headers_to(&mut record, &envelope);

        let rewrite = self.deletes == Deletes::Rewrite;
        let deleted = Value::String(if delete { "true" } else { "false" }.to_string());
        match envelope_schema {
            Some(schema) => {
                let Some(state_schema) = schema.field(state_field).map(|f| f.schema.clone()) else {
                    return Err(Fail::new(format!(
                        "envelope schema has no field `{state_field}`"
                    )));
                };
                if state.is_null() || (self.add_fields.is_empty() && !rewrite) {
                    // The row's struct holds the same schema, shared.
                    record.value_schema = Some(match &state {
                        Value::Struct(row) => Arc::clone(&row.schema),
                        _ => Arc::new(state_schema),
                    });
                    record.value = state;
                    return Ok(Some(record));
                }
                let Value::Struct(state) = state else {
                    return Err(Fail::new(format!(
                        "envelope field `{state_field}` is not a struct"
                    )));
                };
                let mut updated = (*state.schema).clone();
                let mut values = state.values;
                for name in &self.add_fields {
                    let field_schema = lookup_schema(&schema, name)
                        .cloned()
                        .unwrap_or_else(|| Schema::optional(SchemaType::String))
                        .into_optional();
                    updated.fields.push(Field {
                        name: added_name(&self.add_fields_prefix, name),
                        schema: field_schema,
                    });
                    values.push(lookup(&envelope, name).cloned().unwrap_or(Value::Null));
                }
                if rewrite {
                    updated.fields.push(Field {
                        name: DELETED_FIELD.to_string(),
                        schema: Schema::optional(SchemaType::String),
                    });
                    values.push(deleted);
                }
                let updated = Arc::new(updated);
                record.value_schema = Some(Arc::clone(&updated));
                record.value = Value::Struct(Struct {
                    schema: updated,
                    values,
                });
            }
            None => {
                let mut entries = match state {
                    Value::Map(entries) => entries,
                    Value::Null => {
                        record.value = Value::Null;
                        return Ok(Some(record));
                    }
                    _ => {
                        return Err(Fail::new(format!(
                            "envelope field `{state_field}` is not a map"
                        )));
                    }
                };
                for name in &self.add_fields {
                    let v = lookup(&envelope, name).cloned().unwrap_or(Value::Null);
                    map_put(&mut entries, &added_name(&self.add_fields_prefix, name), v);
                }
                if rewrite {
                    map_put(&mut entries, DELETED_FIELD, deleted);
                }
                record.value = Value::Map(entries);
            }
        }
        Ok(Some(record))
    }
}

impl ExtractNewRecordState {
    fn add_headers_to(&self, record: &mut ConnectRecord, envelope: &Value) {
        for name in &self.add_headers {
            let value = lookup(envelope, name)
                .and_then(header_text)
                .map(Bytes::from);
            record
                .headers
                .push((added_name(&self.add_headers_prefix, name), value));
        }
    }
}
