//! `TimestampConverter$Key` / `$Value` (between unix, string, Date, Time and Timestamp) and
//! `TimestampRouter` (`${topic}-${timestamp}` topic names), in UTC as Java sets them.

use super::timefmt::Pattern;
use super::{
    Cfg, Fail, Part, Smt, copy_basics, java_class, logical_schema, map_get, map_put, require_map,
    require_struct,
};
use crate::data::{ConnectRecord, Field, Schema, SchemaType, Struct, Value, logical};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    String,
    Unix,
    Date,
    Time,
    Timestamp,
}

#[derive(Debug, Clone, Copy)]
enum Precision {
    Seconds,
    Millis,
    Micros,
    Nanos,
}

struct Converter {
    part: Part,
    field: String,
    target: Kind,
    format: Option<Pattern>,
    precision: Precision,
}

pub(super) fn converter(part: Part, cfg: &mut Cfg<'_>) -> Option<Box<dyn Smt>> {
    let field = cfg.string_or("field", "");
    let target = cfg.one_of(
        "target.type",
        None,
        &["string", "unix", "Date", "Time", "Timestamp"],
    );
    let precision = cfg.one_of(
        "unix.precision",
        Some("milliseconds"),
        &["nanoseconds", "microseconds", "milliseconds", "seconds"],
    );
    let format_text = cfg.string_or("format", "");
    let mut format = None;
    if !format_text.trim().is_empty() {
        match Pattern::parse(&format_text) {
            Ok(p) => format = Some(p),
            Err(why) => cfg.problem(
                "format",
                format!("TimestampConverter requires a SimpleDateFormat-compatible pattern for string timestamps: {format_text} ({why})"),
            ),
        }
    } else if target.as_deref() == Some("string") {
        cfg.problem("format", "TimestampConverter requires format option to be specified when using string timestamps");
        return None;
    }
    let target = match target?.as_str() {
        "string" => Kind::String,
        "unix" => Kind::Unix,
        "Date" => Kind::Date,
        "Time" => Kind::Time,
        _ => Kind::Timestamp,
    };
    let precision = match precision?.as_str() {
        "seconds" => Precision::Seconds,
        "microseconds" => Precision::Micros,
        "nanoseconds" => Precision::Nanos,
        _ => Precision::Millis,
    };
    if !format_text.trim().is_empty() && format.is_none() {
        return None;
    }
    Some(Box::new(Converter {
        part,
        field,
        target,
        format,
        precision,
    }))
}

const PURPOSE: &str = "converting timestamp formats";
const DAY_MS: i64 = 86_400_000;

impl Converter {
    fn type_schema(&self, optional: bool) -> Schema {
        match self.target {
            Kind::String => opt(SchemaType::String, optional),
            Kind::Unix => opt(SchemaType::Int64, optional),
            Kind::Date => logical_schema(SchemaType::Int32, logical::DATE, optional),
            Kind::Time => logical_schema(SchemaType::Int32, logical::TIME, optional),
            Kind::Timestamp => logical_schema(SchemaType::Int64, logical::TIMESTAMP, optional),
        }
    }

    /// `toRaw`: the timestamp in milliseconds since the epoch.
    fn to_raw(&self, value: &Value, kind: Kind) -> Result<i64, Fail> {
        match (kind, value) {
            (Kind::String, Value::String(s)) => {
                let Some(format) = &self.format else {
                    return Err(Fail::new(
                        "TimestampConverter requires format option to be specified when using string timestamps",
                    ));
                };
                format.parse_ms(s).ok_or_else(|| {
                    Fail::new(format!(
                        "could not parse timestamp: value ({s}) does not match pattern ({})",
                        format.text()
                    ))
                })
            }
            (Kind::String, other) => Err(Fail::new(format!(
                "expected string timestamp to be a String, but found class {}",
                java_class(other)
            ))),
            (Kind::Unix, Value::Int64(v)) => Ok(match self.precision {
                Precision::Seconds => v.saturating_mul(1000),
                Precision::Millis => *v,
                Precision::Micros => v / 1000,
                Precision::Nanos => v / 1_000_000,
            }),
            (Kind::Unix, other) => Err(Fail::new(format!(
                "expected Unix timestamp to be a Long, but found class {}",
                java_class(other)
            ))),
            (Kind::Date, Value::Int32(days)) => Ok(i64::from(*days) * DAY_MS),
            (Kind::Time, Value::Int32(ms)) => Ok(i64::from(*ms)),
            (Kind::Timestamp, Value::Int64(ms)) => Ok(*ms),
            (k, other) => Err(Fail::new(format!(
                "expected {k:?} to be a java.util.Date, but found class {}",
                java_class(other)
            ))),
        }
    }

    /// `toType`: milliseconds since the epoch in the target representation.
    fn to_type(&self, ms: i64) -> Value {
        match self.target {
            Kind::String => Value::String(
                self.format
                    .as_ref()
                    .map(|f| f.format(ms))
                    .unwrap_or_default(),
            ),
            Kind::Unix => Value::Int64(match self.precision {
                // TimeUnit.MILLISECONDS.toSeconds truncates toward zero.
                Precision::Seconds => ms / 1000,
                Precision::Millis => ms,
                Precision::Micros => ms.saturating_mul(1000),
                Precision::Nanos => ms.saturating_mul(1_000_000),
            }),
            Kind::Date => Value::Int32(ms.div_euclid(DAY_MS) as i32),
            Kind::Time => Value::Int32(ms.rem_euclid(DAY_MS) as i32),
            Kind::Timestamp => Value::Int64(ms),
        }
    }

    fn convert(&self, value: &Value, kind: Option<Kind>) -> Result<Value, Fail> {
        if value.is_null() {
            return Ok(Value::Null);
        }
        // Schemaless: Java infers from the class; Long is unix, String is string. A logical
        // value without a schema is a java.util.Date in Java, which Spate cannot tell apart
        // from a plain int, so Int32 is refused as Java refuses Integer.
        let kind = match kind {
            Some(k) => k,
            None => match value {
                Value::Int64(_) => Kind::Unix,
                Value::String(_) => Kind::String,
                other => {
                    return Err(Fail::new(format!(
                        "TimestampConverter does not support class {} objects as timestamps",
                        java_class(other)
                    )));
                }
            },
        };
        let ms = self.to_raw(value, kind)?;
        Ok(self.to_type(ms))
    }
}

fn kind_of(schema: &Schema) -> Result<Kind, Fail> {
    Ok(match schema.name.as_deref() {
        Some(logical::TIMESTAMP) => Kind::Timestamp,
        Some(logical::DATE) => Kind::Date,
        Some(logical::TIME) => Kind::Time,
        _ if schema.kind == SchemaType::String => Kind::String,
        _ if schema.kind == SchemaType::Int64 => Kind::Unix,
        _ => {
            return Err(Fail::new(format!(
                "schema {} does not correspond to a known timestamp type format",
                schema
                    .name
                    .clone()
                    .unwrap_or_else(|| schema.kind.name().to_string())
            )));
        }
    })
}

fn opt(kind: SchemaType, optional: bool) -> Schema {
    if optional {
        Schema::optional(kind)
    } else {
        Schema::new(kind)
    }
}

impl Smt for Converter {
    fn apply(&mut self, mut record: ConnectRecord) -> Result<Option<ConnectRecord>, Fail> {
        let (schema, value) = self.part.take(&mut record);
        match schema {
            None => {
                if value.is_null() || self.field.is_empty() {
                    let out = self.convert(&value, None)?;
                    self.part.put(&mut record, None, out);
                } else {
                    let mut entries = require_map(value, PURPOSE)?;
                    let converted = match map_get(&entries, &self.field) {
                        Some(v) => self.convert(v, None)?,
                        None => Value::Null,
                    };
                    map_put(&mut entries, &self.field, converted);
                    self.part.put(&mut record, None, Value::Map(entries));
                }
            }
            Some(schema) if self.field.is_empty() => {
                let updated = self.type_schema(schema.optional);
                let out = if value.is_null() {
                    Value::Null
                } else {
                    self.convert(&value, Some(kind_of(&schema)?))?
                };
                self.part.put(&mut record, Some(updated), out);
            }
            Some(schema) => {
                // requireStructOrNull: a null value keeps null under the new schema.
                let value = match value {
                    Value::Null => None,
                    other => Some(require_struct(other, PURPOSE)?),
                };
                let mut updated = copy_basics(&schema, SchemaType::Struct);
                updated.optional = schema.optional;
                for field in &schema.fields {
                    let s = if field.name == self.field {
                        self.type_schema(field.schema.optional)
                    } else {
                        field.schema.clone()
                    };
                    updated.fields.push(Field {
                        name: field.name.clone(),
                        schema: s,
                    });
                }
                let out = match value {
                    None => Value::Null,
                    Some(v) => {
                        let mut values = Vec::with_capacity(v.values.len());
                        for (field, fv) in schema.fields.iter().zip(v.values.iter()) {
                            values.push(if field.name == self.field && !fv.is_null() {
                                self.convert(fv, Some(kind_of(&field.schema)?))?
                            } else {
                                fv.clone()
                            });
                        }
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

struct Router {
    topic_format: String,
    timestamp_format: Pattern,
}

pub(super) fn router(cfg: &mut Cfg<'_>) -> Option<Box<dyn Smt>> {
    let topic_format = cfg.string_or("topic.format", "${topic}-${timestamp}");
    let text = cfg.string_or("timestamp.format", "yyyyMMdd");
    match Pattern::parse(&text) {
        Ok(timestamp_format) => Some(Box::new(Router {
            topic_format,
            timestamp_format,
        })),
        Err(why) => {
            cfg.problem(
                "timestamp.format",
                format!("not a SimpleDateFormat pattern Spate supports: {why}"),
            );
            None
        }
    }
}

impl Smt for Router {
    fn apply(&mut self, mut record: ConnectRecord) -> Result<Option<ConnectRecord>, Fail> {
        let Some(ts) = record.timestamp_ms else {
            return Err(Fail::new(format!(
                "timestamp missing on record: topic {}",
                record.topic
            )));
        };
        let formatted = self.timestamp_format.format(ts);
        record.topic = self
            .topic_format
            .replace("${topic}", &record.topic)
            .replace("${timestamp}", &formatted);
        Ok(Some(record))
    }
}
