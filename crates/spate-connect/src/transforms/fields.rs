//! Transforms that add, remove, rename, mask or move fields: `InsertField`, `ReplaceField`,
//! `MaskField`, `ValueToKey`, `ExtractField`, `HoistField` and `Flatten`, as in
//! `org.apache.kafka.connect.transforms`.

use std::collections::BTreeMap;

use bytes::Bytes;

use super::{
    Cfg, Fail, Part, Smt, copy_basics, inferred_type, java_class, logical_schema, map_get, map_put,
    require_map, require_struct,
};
use crate::data::{ConnectRecord, Field, Schema, SchemaType, Struct, Value, logical};

/// A field name from InsertField's config: `name!` is required, `name?` and `name` optional.
#[derive(Debug, Clone)]
struct InsertionSpec {
    name: String,
    optional: bool,
}

impl InsertionSpec {
    fn parse(spec: Option<String>) -> Option<InsertionSpec> {
        let spec = spec?;
        Some(if let Some(name) = spec.strip_suffix('?') {
            InsertionSpec {
                name: name.to_string(),
                optional: true,
            }
        } else if let Some(name) = spec.strip_suffix('!') {
            InsertionSpec {
                name: name.to_string(),
                optional: false,
            }
        } else {
            InsertionSpec {
                name: spec,
                optional: true,
            }
        })
    }
}

struct InsertField {
    part: Part,
    topic: Option<InsertionSpec>,
    partition: Option<InsertionSpec>,
    offset: Option<InsertionSpec>,
    timestamp: Option<InsertionSpec>,
    static_field: Option<InsertionSpec>,
    static_value: Option<String>,
}

pub(super) fn insert(part: Part, cfg: &mut Cfg<'_>) -> Option<Box<dyn Smt>> {
    Some(Box::new(InsertField {
        part,
        topic: InsertionSpec::parse(cfg.string("topic.field")),
        partition: InsertionSpec::parse(cfg.string("partition.field")),
        offset: InsertionSpec::parse(cfg.string("offset.field")),
        timestamp: InsertionSpec::parse(cfg.string("timestamp.field")),
        static_field: InsertionSpec::parse(cfg.string("static.field")),
        static_value: cfg.string("static.value"),
    }))
}

const INSERT_PURPOSE: &str = "field insertion";

impl InsertField {
    /// The (name, value, schema) pairs to insert, in Java's order; a value of None is not
    /// inserted (no partition or timestamp on the record), but its field is still in the schema.
    fn insertions(
        &self,
        record: &ConnectRecord,
        schemaful: bool,
    ) -> Result<Vec<(String, Option<Value>, Schema)>, Fail> {
        let mut out = Vec::new();
        if let Some(spec) = &self.topic {
            out.push((
                spec.name.clone(),
                Some(Value::String(record.topic.clone())),
                opt(SchemaType::String, spec.optional),
            ));
        }
        if let Some(spec) = &self.partition {
            out.push((
                spec.name.clone(),
                record.partition.map(Value::Int32),
                opt(SchemaType::Int32, spec.optional),
            ));
        }
        if let Some(spec) = &self.offset {
            // Java: requireSinkRecord; only sink records carry a Kafka offset.
            let Some(offset) = record.kafka_offset else {
                return Err(Fail::new(format!(
                    "only SinkRecord supported for [{INSERT_PURPOSE}], found: org.apache.kafka.connect.source.SourceRecord"
                )));
            };
            out.push((
                spec.name.clone(),
                Some(Value::Int64(offset)),
                opt(SchemaType::Int64, spec.optional),
            ));
        }
        if let Some(spec) = &self.timestamp {
            let schema = if schemaful {
                logical_schema(SchemaType::Int64, logical::TIMESTAMP, spec.optional)
            } else {
                opt(SchemaType::Int64, spec.optional)
            };
            out.push((
                spec.name.clone(),
                record.timestamp_ms.map(Value::Int64),
                schema,
            ));
        }
        if let Some(spec) = &self.static_field {
            out.push((
                spec.name.clone(),
                self.static_value.clone().map(Value::String),
                opt(SchemaType::String, spec.optional),
            ));
        }
        Ok(out)
    }
}

fn opt(kind: SchemaType, optional: bool) -> Schema {
    if optional {
        Schema::optional(kind)
    } else {
        Schema::new(kind)
    }
}

impl Smt for InsertField {
    fn apply(&mut self, mut record: ConnectRecord) -> Result<Option<ConnectRecord>, Fail> {
        // Java (KAFKA-8523): tombstones pass through untouched.
        if self.part.value(&record).is_null() {
            return Ok(Some(record));
        }
        let (schema, value) = self.part.take(&mut record);
        match schema {
            None => {
                let mut entries = require_map(value, INSERT_PURPOSE)?;
                for (name, value, _) in self.insertions(&record, false)? {
                    if let Some(value) = value {
                        map_put(&mut entries, &name, value);
                    }
                }
                self.part.put(&mut record, None, Value::Map(entries));
            }
            Some(schema) => {
                let value = require_struct(value, INSERT_PURPOSE)?;
                let mut updated = copy_basics(&schema, SchemaType::Struct);
                updated.optional = schema.optional;
                updated.fields = schema.fields.clone();
                let mut values = value.values;
                for (name, value, field_schema) in self.insertions(&record, true)? {
                    if updated.field(&name).is_some() {
                        return Err(Fail::new(format!(
                            "cannot create field because of field name duplication {name}"
                        )));
                    }
                    updated.fields.push(Field {
                        name,
                        schema: field_schema,
                    });
                    values.push(value.unwrap_or(Value::Null));
                }
                self.part.put(
                    &mut record,
                    Some(updated.clone()),
                    Value::Struct(Struct {
                        schema: updated.into(),
                        values,
                    }),
                );
            }
        }
        Ok(Some(record))
    }
}

struct ReplaceField {
    part: Part,
    exclude: Vec<String>,
    include: Vec<String>,
    renames: BTreeMap<String, String>,
    reverse: BTreeMap<String, String>,
}

pub(super) fn replace(part: Part, cfg: &mut Cfg<'_>) -> Option<Box<dyn Smt>> {
    // The deprecated names (blacklist, whitelist) apply when the new ones are unset, as
    // ConfigUtils.translateDeprecatedConfigs does.
    let exclude = if cfg.string("exclude").is_some() {
        cfg.list_or("exclude", &[])
    } else {
        cfg.list_or("blacklist", &[])
    };
    let include = if cfg.string("include").is_some() {
        cfg.list_or("include", &[])
    } else {
        cfg.list_or("whitelist", &[])
    };
    let mut renames = BTreeMap::new();
    let mut reverse = BTreeMap::new();
    for mapping in cfg.list_or("renames", &[]) {
        let parts: Vec<&str> = mapping.split(':').collect();
        if parts.len() != 2 {
            cfg.problem(
                "renames",
                format!("invalid rename mapping: {mapping}, use old:new"),
            );
            continue;
        }
        renames.insert(parts[0].to_string(), parts[1].to_string());
        reverse.insert(parts[1].to_string(), parts[0].to_string());
    }
    Some(Box::new(ReplaceField {
        part,
        exclude,
        include,
        renames,
        reverse,
    }))
}

impl ReplaceField {
    fn keep(&self, name: &str) -> bool {
        !self.exclude.iter().any(|f| f == name)
            && (self.include.is_empty() || self.include.iter().any(|f| f == name))
    }

    fn renamed<'a>(&'a self, name: &'a str) -> &'a str {
        self.renames.get(name).map(String::as_str).unwrap_or(name)
    }
}

const REPLACE_PURPOSE: &str = "field replacement";

impl Smt for ReplaceField {
    fn apply(&mut self, mut record: ConnectRecord) -> Result<Option<ConnectRecord>, Fail> {
        if self.part.value(&record).is_null() {
            return Ok(Some(record));
        }
        let (schema, value) = self.part.take(&mut record);
        match schema {
            None => {
                let entries = require_map(value, REPLACE_PURPOSE)?;
                let mut out = Vec::new();
                for (key, value) in entries {
                    let Some(name) = key.as_str() else { continue };
                    if self.keep(name) {
                        let renamed = self.renamed(name).to_string();
                        map_put(&mut out, &renamed, value);
                    }
                }
                self.part.put(&mut record, None, Value::Map(out));
            }
            Some(schema) => {
                let value = require_struct(value, REPLACE_PURPOSE)?;
                let mut updated = copy_basics(&schema, SchemaType::Struct);
                updated.optional = schema.optional;
                for field in &schema.fields {
                    if self.keep(&field.name) {
                        let name = self.renamed(&field.name).to_string();
                        if updated.field(&name).is_some() {
                            return Err(Fail::new(format!(
                                "cannot create field because of field name duplication {name}"
                            )));
                        }
                        updated.fields.push(Field {
                            name,
                            schema: field.schema.clone(),
                        });
                    }
                }
                let values = updated
                    .fields
                    .iter()
                    .map(|f| {
                        let original = self
                            .reverse
                            .get(&f.name)
                            .map(String::as_str)
                            .unwrap_or(&f.name);
                        value.get(original).cloned().unwrap_or(Value::Null)
                    })
                    .collect();
                self.part.put(
                    &mut record,
                    Some(updated.clone()),
                    Value::Struct(Struct {
                        schema: updated.into(),
                        values,
                    }),
                );
            }
        }
        Ok(Some(record))
    }
}

struct MaskField {
    part: Part,
    fields: Vec<String>,
    replacement: Option<String>,
}

pub(super) fn mask(part: Part, cfg: &mut Cfg<'_>) -> Option<Box<dyn Smt>> {
    let fields = cfg.non_empty_list("fields");
    let replacement = cfg.string("replacement");
    if replacement.as_deref() == Some("") {
        cfg.problem(
            "replacement",
            "string must be non-empty, or leave it unset to mask with the type's empty value",
        );
    }
    Some(Box::new(MaskField {
        part,
        fields: fields?,
        replacement,
    }))
}

const MASK_PURPOSE: &str = "mask fields";

impl MaskField {
    /// Java's `masked`: null stays null; otherwise the type's "null-equivalent" (0, false, "",
    /// empty list or map, epoch) or the replacement converted to the value's type.
    fn masked(&self, value: &Value, schema: Option<&Schema>) -> Result<Value, Fail> {
        if value.is_null() {
            return Ok(Value::Null);
        }
        let decimal_scale = schema.filter(|s| s.is_logical(logical::DECIMAL)).map(|s| {
            s.parameters
                .get(logical::DECIMAL_SCALE)
                .and_then(|p| p.parse::<u32>().ok())
                .unwrap_or(0)
        });
        match &self.replacement {
            None => Ok(match value {
                Value::Boolean(_) => Value::Boolean(false),
                Value::Int8(_) => Value::Int8(0),
                Value::Int16(_) => Value::Int16(0),
                Value::Int32(_) => Value::Int32(0),
                Value::Int64(_) => Value::Int64(0),
                Value::Float32(_) => Value::Float32(0.0),
                Value::Float64(_) => Value::Float64(0.0),
                Value::String(_) => Value::String(String::new()),
                // A Decimal is a BigDecimal in Java, masked to BigDecimal.ZERO.
                Value::Bytes(_) if decimal_scale.is_some() => {
                    Value::Bytes(Bytes::from_static(&[0]))
                }
                Value::Array(_) => Value::Array(Vec::new()),
                Value::Map(_) => Value::Map(Vec::new()),
                other => {
                    return Err(Fail::new(format!(
                        "cannot mask value of type: {}",
                        mask_class(other, schema)
                    )));
                }
            }),
            Some(r) => {
                let out_of_range = || {
                    Fail::new(format!(
                        "unable to convert {r} (class java.lang.String) to number"
                    ))
                };
                Ok(match value {
                    Value::Int8(_) => Value::Int8(
                        parse_java_number(r)
                            .ok_or_else(out_of_range)?
                            .try_into()
                            .map_err(|_| out_of_range())?,
                    ),
                    Value::Int16(_) => Value::Int16(
                        parse_java_number(r)
                            .ok_or_else(out_of_range)?
                            .try_into()
                            .map_err(|_| out_of_range())?,
                    ),
                    Value::Int32(_) => Value::Int32(
                        parse_java_number(r)
                            .ok_or_else(out_of_range)?
                            .try_into()
                            .map_err(|_| out_of_range())?,
                    ),
                    Value::Int64(_) => Value::Int64(parse_java_number(r).ok_or_else(out_of_range)?),
                    Value::Float32(_) => {
                        Value::Float32(r.trim().parse().map_err(|_| out_of_range())?)
                    }
                    Value::Float64(_) => {
                        Value::Float64(r.trim().parse().map_err(|_| out_of_range())?)
                    }
                    Value::String(_) => Value::String(r.clone()),
                    Value::Bytes(_) if decimal_scale.is_some() => {
                        let scale = decimal_scale.unwrap_or(0);
                        let unscaled =
                            super::cast::parse_decimal(r, scale).ok_or_else(out_of_range)?;
                        Value::Bytes(super::cast::decimal_bytes(unscaled))
                    }
                    other => {
                        return Err(Fail::new(format!(
                            "cannot mask value of type {} with custom replacement",
                            mask_class(other, schema)
                        )));
                    }
                })
            }
        }
    }
}

/// The Java class of a value in a masking error. (Logical Date/Time/Timestamp are
/// `java.util.Date` in Java, masked to the epoch; Spate holds them as ints, which mask to 0.)
fn mask_class(value: &Value, _schema: Option<&Schema>) -> String {
    format!("class {}", java_class(value))
}

/// Java's `Values.convertToLong` of a string for MaskField replacements: an integer, or a
/// decimal number truncated.
fn parse_java_number(s: &str) -> Option<i64> {
    let t = s.trim();
    if let Ok(v) = t.parse::<i64>() {
        return Some(v);
    }
    let f: f64 = t.parse().ok()?;
    f.is_finite().then_some(f as i64)
}

impl Smt for MaskField {
    fn apply(&mut self, mut record: ConnectRecord) -> Result<Option<ConnectRecord>, Fail> {
        // Java's MaskField has no tombstone pass-through: a null value fails requireMap.
        let (schema, value) = self.part.take(&mut record);
        match schema {
            None => {
                let mut entries = require_map(value, MASK_PURPOSE)?;
                for field in &self.fields {
                    let masked = match map_get(&entries, field) {
                        Some(v) => self.masked(v, None)?,
                        None => Value::Null,
                    };
                    // Java puts the field even when absent (HashMap.put(field, null)).
                    map_put(&mut entries, field, masked);
                }
                self.part.put(&mut record, None, Value::Map(entries));
            }
            Some(schema) => {
                let mut value = require_struct(value, MASK_PURPOSE)?;
                let Struct {
                    schema: value_schema,
                    values,
                } = &mut value;
                for (field, v) in value_schema.fields.iter().zip(values.iter_mut()) {
                    if self.fields.contains(&field.name) {
                        *v = self.masked(v, Some(&field.schema))?;
                    }
                }
                self.part
                    .put(&mut record, Some(schema), Value::Struct(value));
            }
        }
        Ok(Some(record))
    }
}

struct ValueToKey {
    fields: Vec<String>,
}

pub(super) fn value_to_key(cfg: &mut Cfg<'_>) -> Option<Box<dyn Smt>> {
    Some(Box::new(ValueToKey {
        fields: cfg.non_empty_list("fields")?,
    }))
}

const VALUE_TO_KEY_PURPOSE: &str = "copying fields from value to key";

impl Smt for ValueToKey {
    fn apply(&mut self, mut record: ConnectRecord) -> Result<Option<ConnectRecord>, Fail> {
        match &record.value_schema {
            None => {
                let entries = require_map(record.value.clone(), VALUE_TO_KEY_PURPOSE)?;
                let key = self
                    .fields
                    .iter()
                    .map(|f| {
                        (
                            Value::String(f.clone()),
                            map_get(&entries, f).cloned().unwrap_or(Value::Null),
                        )
                    })
                    .collect();
                record.key_schema = None;
                record.key = Value::Map(key);
            }
            Some(schema) => {
                let value = require_struct(record.value.clone(), VALUE_TO_KEY_PURPOSE)?;
                let mut key_schema = Schema::new(SchemaType::Struct);
                for name in &self.fields {
                    let Some(field) = schema.field(name) else {
                        return Err(Fail::new(format!("field does not exist: {name}")));
                    };
                    key_schema.fields.push(field.clone());
                }
                let values = self
                    .fields
                    .iter()
                    .map(|f| value.get(f).cloned().unwrap_or(Value::Null))
                    .collect();
                let key_schema = std::sync::Arc::new(key_schema);
                record.key_schema = Some(std::sync::Arc::clone(&key_schema));
                record.key = Value::Struct(Struct {
                    schema: key_schema,
                    values,
                });
            }
        }
        Ok(Some(record))
    }
}

struct ExtractField {
    part: Part,
    field: String,
}

pub(super) fn extract(part: Part, cfg: &mut Cfg<'_>) -> Option<Box<dyn Smt>> {
    let field = cfg.required("field");
    // field.syntax.version=V2 (nested paths, KIP-821) is not supported: the name is taken whole.
    if let Some(v) = cfg.string("field.syntax.version") {
        if !v.eq_ignore_ascii_case("v1") {
            cfg.problem(
                "field.syntax.version",
                "only V1 is supported, remove the key or set it to V1",
            );
        }
    }
    Some(Box::new(ExtractField {
        part,
        field: field?,
    }))
}

impl Smt for ExtractField {
    fn apply(&mut self, mut record: ConnectRecord) -> Result<Option<ConnectRecord>, Fail> {
        let (schema, value) = self.part.take(&mut record);
        match schema {
            None => {
                // requireMapOrNull: a null value gives a null.
                let out = match value {
                    Value::Null => Value::Null,
                    other => {
                        let entries = require_map(other, "field extraction")?;
                        map_get(&entries, &self.field)
                            .cloned()
                            .unwrap_or(Value::Null)
                    }
                };
                self.part.put(&mut record, None, out);
            }
            Some(schema) => {
                let Some(field) = schema.field(&self.field) else {
                    return Err(Fail::new(format!("unknown field: {}", self.field)));
                };
                let field_schema = field.schema.clone();
                let out = match value {
                    Value::Null => Value::Null,
                    other => require_struct(other, "field extraction")?
                        .get(&self.field)
                        .cloned()
                        .unwrap_or(Value::Null),
                };
                self.part.put(&mut record, Some(field_schema), out);
            }
        }
        Ok(Some(record))
    }
}

struct HoistField {
    part: Part,
    field: String,
}

pub(super) fn hoist(part: Part, cfg: &mut Cfg<'_>) -> Option<Box<dyn Smt>> {
    Some(Box::new(HoistField {
        part,
        field: cfg.required("field")?,
    }))
}

impl Smt for HoistField {
    fn apply(&mut self, mut record: ConnectRecord) -> Result<Option<ConnectRecord>, Fail> {
        let (schema, value) = self.part.take(&mut record);
        match schema {
            None => {
                self.part.put(
                    &mut record,
                    None,
                    Value::map_of([(self.field.as_str(), value)]),
                );
            }
            Some(schema) => {
                let updated = Schema::structure(None, vec![(self.field.as_str(), schema)]);
                let out = Struct {
                    schema: updated.clone().into(),
                    values: vec![value],
                };
                self.part
                    .put(&mut record, Some(updated), Value::Struct(out));
            }
        }
        Ok(Some(record))
    }
}

struct Flatten {
    part: Part,
    delimiter: String,
}

pub(super) fn flatten(part: Part, cfg: &mut Cfg<'_>) -> Option<Box<dyn Smt>> {
    Some(Box::new(Flatten {
        part,
        delimiter: cfg.string_or("delimiter", "."),
    }))
}

impl Flatten {
    fn name(&self, prefix: &str, name: &str) -> String {
        if prefix.is_empty() {
            name.to_string()
        } else {
            format!("{prefix}{}{name}", self.delimiter)
        }
    }

    fn flatten_map(
        &self,
        entries: Vec<(Value, Value)>,
        prefix: &str,
        out: &mut Vec<(Value, Value)>,
    ) -> Result<(), Fail> {
        for (key, value) in entries {
            let Some(key) = key.as_str() else { continue };
            let name = self.name(prefix, key);
            match inferred_type(&value) {
                None => map_put(out, &name, Value::Null),
                Some(SchemaType::Map) => {
                    let Value::Map(inner) = value else { continue };
                    self.flatten_map(inner, &name, out)?;
                }
                Some(SchemaType::Struct) => {
                    return Err(Fail::new(format!(
                        "flatten transformation does not support STRUCT for record without schemas (for field {name})"
                    )));
                }
                Some(_) => map_put(out, &name, value),
            }
        }
        Ok(())
    }

    /// Java's buildUpdatedSchema: nested struct fields become top-level fields named
    /// `outer.inner`, optional when any enclosing struct is optional.
    fn flatten_schema(
        &self,
        schema: &Schema,
        prefix: &str,
        optional: bool,
        out: &mut Schema,
    ) -> Result<(), Fail> {
        for field in &schema.fields {
            let name = self.name(prefix, &field.name);
            let field_optional = optional || field.schema.optional;
            if field.schema.kind == SchemaType::Struct {
                self.flatten_schema(&field.schema, &name, field_optional, out)?;
            } else {
                if out.field(&name).is_some() {
                    return Err(Fail::new(format!(
                        "cannot create field because of field name duplication {name}"
                    )));
                }
                let mut s = field.schema.clone();
                s.optional = field_optional;
                out.fields.push(Field { name, schema: s });
            }
        }
        Ok(())
    }

    fn flatten_struct(value: Option<&Struct>, schema: &Schema, out: &mut Vec<Value>) {
        for (i, field) in schema.fields.iter().enumerate() {
            let v = value.and_then(|s| s.values.get(i));
            if field.schema.kind == SchemaType::Struct {
                let inner = match v {
                    Some(Value::Struct(s)) => Some(s),
                    _ => None,
                };
                Self::flatten_struct(inner, &field.schema, out);
            } else {
                out.push(v.cloned().unwrap_or(Value::Null));
            }
        }
    }
}

impl Smt for Flatten {
    fn apply(&mut self, mut record: ConnectRecord) -> Result<Option<ConnectRecord>, Fail> {
        let (schema, value) = self.part.take(&mut record);
        match schema {
            None => {
                let out = match value {
                    Value::Null => Value::Null,
                    other => {
                        let mut out = Vec::new();
                        self.flatten_map(require_map(other, "flattening")?, "", &mut out)?;
                        Value::Map(out)
                    }
                };
                self.part.put(&mut record, None, out);
            }
            Some(schema) => {
                let mut updated = copy_basics(&schema, SchemaType::Struct);
                updated.optional = schema.optional;
                self.flatten_schema(&schema, "", false, &mut updated)?;
                let out = match value {
                    Value::Null => Value::Null,
                    other => {
                        let value = require_struct(other, "flattening")?;
                        let mut values = Vec::new();
                        Self::flatten_struct(Some(&value), &schema, &mut values);
                        Value::Struct(Struct {
                            schema: updated.clone().into(),
                            values,
                        })
                    }
                };
                self.part.put(&mut record, Some(updated), out);
            }
        }
        Ok(Some(record))
    }
}
