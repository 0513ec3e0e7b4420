//! `Cast$Key` / `Cast$Value`: casts fields (or the whole key or value) between Connect's
//! primitive types by Java's rules: from integers, floats, boolean, string and bytes (only
//! to string, base64; or a Decimal, as a number); to integers, floats, boolean and string.

use std::collections::BTreeMap;

use base64::Engine;
use bytes::Bytes;

use super::{
    Cfg, Fail, Part, Smt, copy_basics, inferred_type, java_class, map_get, map_put, require_map,
    require_struct,
};
use crate::data::{ConnectRecord, Field, Schema, SchemaType, Struct, Value, logical};

const PURPOSE: &str = "cast types";

const INPUT_TYPES: &str = "[INT8, INT16, INT32, INT64, FLOAT32, FLOAT64, BOOLEAN, STRING, BYTES]";
const OUTPUT_TYPES: &str = "[INT8, INT16, INT32, INT64, FLOAT32, FLOAT64, BOOLEAN, STRING]";

struct Cast {
    part: Part,
    /// Field casts; empty when `whole` is set.
    casts: BTreeMap<String, SchemaType>,
    whole: Option<SchemaType>,
}

pub(super) fn build(part: Part, cfg: &mut Cfg<'_>) -> Option<Box<dyn Smt>> {
    let spec = cfg.required("spec")?;
    let mappings = super::parse_list(&spec);
    if mappings.is_empty() {
        cfg.problem("spec", "must specify at least one field to cast");
        return None;
    }
    let before = cfg.problem_count();
    let mut casts = BTreeMap::new();
    let mut whole = None;
    for mapping in &mappings {
        let parts: Vec<&str> = mapping.split(':').collect();
        let (field, type_name) = match parts.as_slice() {
            [t] => (None, *t),
            [f, t] => (Some(f.trim()), *t),
            _ => {
                cfg.problem(
                    "spec",
                    format!("invalid cast mapping: {mapping}, use field:type"),
                );
                continue;
            }
        };
        let type_name = type_name.trim();
        let Some(kind) = SchemaType::from_name(&type_name.to_ascii_lowercase()) else {
            cfg.problem(
                "spec",
                format!("invalid type found in casting spec: {type_name}"),
            );
            continue;
        };
        if !is_output(kind) {
            cfg.problem(
                "spec",
                format!("cast transformation does not support casting to {}; supported types are {OUTPUT_TYPES}", kind.name().to_uppercase()),
            );
            continue;
        }
        match field {
            None => whole = Some(kind),
            Some(f) => {
                casts.insert(f.to_string(), kind);
            }
        }
    }
    if whole.is_some() && mappings.len() > 1 {
        cfg.problem("spec", "cast transformations that specify a type to cast the entire value to may only specify a single cast in their spec");
    }
    if cfg.failed_since(before) {
        return None;
    }
    Some(Box::new(Cast { part, casts, whole }))
}

fn is_output(kind: SchemaType) -> bool {
    kind.is_primitive() && kind != SchemaType::Bytes
}

impl Smt for Cast {
    fn apply(&mut self, mut record: ConnectRecord) -> Result<Option<ConnectRecord>, Fail> {
        if self.part.value(&record).is_null() {
            return Ok(Some(record));
        }
        let (schema, value) = self.part.take(&mut record);
        match (schema, self.whole) {
            (None, Some(target)) => {
                let out = cast_value(None, &value, target)?;
                self.part.put(&mut record, None, out);
            }
            (None, None) => {
                let mut entries = require_map(value, PURPOSE)?;
                for (field, target) in &self.casts {
                    let casted = match map_get(&entries, field) {
                        Some(v) => cast_value(None, v, *target)?,
                        None => Value::Null,
                    };
                    // Java puts every field of the spec, null when the map has none.
                    map_put(&mut entries, field, casted);
                }
                self.part.put(&mut record, None, Value::Map(entries));
            }
            (Some(schema), Some(target)) => {
                // Java copies the name, version, doc and parameters of the original schema,
                // even a logical type's name onto the new type.
                let mut updated = copy_basics(&schema, target);
                updated.optional = schema.optional;
                if let Some(default) = &schema.default {
                    updated.default = Some(Box::new(cast_value(Some(&schema), default, target)?));
                }
                let out = cast_value(Some(&schema), &value, target)?;
                self.part.put(&mut record, Some(updated), out);
            }
            (Some(schema), None) => {
                let value = require_struct(value, PURPOSE)?;
                let mut updated = copy_basics(&schema, SchemaType::Struct);
                updated.optional = schema.optional;
                let mut values = Vec::with_capacity(value.values.len());
                for (field, v) in schema.fields.iter().zip(value.values.iter()) {
                    match self.casts.get(&field.name) {
                        Some(&target) => {
                            let mut s = Schema::new(target);
                            s.optional = field.schema.optional;
                            if let Some(default) = &field.schema.default {
                                s.default = Some(Box::new(cast_value(
                                    Some(&field.schema),
                                    default,
                                    target,
                                )?));
                            }
                            updated.fields.push(Field {
                                name: field.name.clone(),
                                schema: s,
                            });
                            values.push(cast_value(Some(&field.schema), v, target)?);
                        }
                        None => {
                            updated.fields.push(field.clone());
                            values.push(v.clone());
                        }
                    }
                }
                if let Some(default) = &schema.default {
                    // A struct default is cast field by field, as Java's castValueToType would
                    // refuse a STRUCT; Spate keeps it only when it is a struct of the old schema.
                    if let Value::Struct(d) = default.as_ref() {
                        let mut dv = Vec::new();
                        for (field, v) in schema.fields.iter().zip(d.values.iter()) {
                            dv.push(match self.casts.get(&field.name) {
                                Some(&t) => cast_value(Some(&field.schema), v, t)?,
                                None => v.clone(),
                            });
                        }
                        updated.default = Some(Box::new(Value::Struct(Struct {
                            schema: updated.clone().into(),
                            values: dv,
                        })));
                    }
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

/// A number as Java holds it while casting.
enum Num {
    Int(i64),
    Float(f64),
    /// A Decimal: unscaled value and scale.
    Decimal(i128, u32),
}

/// Java's `castValueToType`.
pub(super) fn cast_value(
    schema: Option<&Schema>,
    value: &Value,
    target: SchemaType,
) -> Result<Value, Fail> {
    if value.is_null() {
        return Ok(Value::Null);
    }
    let inferred = match schema {
        Some(s) => s.kind,
        None => inferred_type(value).unwrap_or(SchemaType::Struct),
    };
    if !inferred.is_primitive() {
        return Err(Fail::new(format!(
            "cast transformation does not support casting from {}; supported types are {INPUT_TYPES}",
            inferred.name().to_uppercase()
        )));
    }
    let logical_name = schema.and_then(|s| s.name.as_deref());
    let decimal_scale = schema.filter(|s| s.is_logical(logical::DECIMAL)).map(|s| {
        s.parameters
            .get(logical::DECIMAL_SCALE)
            .and_then(|p| p.parse::<u32>().ok())
            .unwrap_or(0)
    });
    let out_of_range = || {
        Fail::new(format!(
            "value ({}) was out of range for requested data type",
            java_to_string(value, None, None)
        ))
    };

    if target == SchemaType::String {
        return Ok(Value::String(java_to_string(
            value,
            logical_name,
            decimal_scale,
        )));
    }

    // The value as a Java Number, Boolean or String.
    let num = match (value, decimal_scale) {
        (Value::Bytes(b), Some(scale)) => Num::Decimal(
            decimal_unscaled(b)
                .ok_or_else(|| Fail::new("decimal too large to cast, at most 16 bytes"))?,
            scale,
        ),
        (Value::Boolean(b), _) => Num::Int(i64::from(*b)),
        (Value::String(s), _) => {
            return match target {
                SchemaType::Boolean => Ok(Value::Boolean(s.eq_ignore_ascii_case("true"))),
                SchemaType::Int8 => s.parse::<i8>().map(Value::Int8).map_err(|_| out_of_range()),
                SchemaType::Int16 => s
                    .parse::<i16>()
                    .map(Value::Int16)
                    .map_err(|_| out_of_range()),
                SchemaType::Int32 => s
                    .parse::<i32>()
                    .map(Value::Int32)
                    .map_err(|_| out_of_range()),
                SchemaType::Int64 => s
                    .parse::<i64>()
                    .map(Value::Int64)
                    .map_err(|_| out_of_range()),
                SchemaType::Float32 => java_parse_float(s)
                    .map(|f| Value::Float32(f as f32))
                    .ok_or_else(out_of_range),
                SchemaType::Float64 => java_parse_float(s)
                    .map(Value::Float64)
                    .ok_or_else(out_of_range),
                _ => Err(Fail::new(format!(
                    "{} is not supported in the cast transformation",
                    target.name().to_uppercase()
                ))),
            };
        }
        (Value::Float32(f), _) => Num::Float(f64::from(*f)),
        (Value::Float64(f), _) => Num::Float(*f),
        (v, _) => match v.as_i64() {
            Some(i) => Num::Int(i),
            None => {
                return Err(Fail::new(format!(
                    "unexpected type in cast transformation: class {}",
                    java_class(v)
                )));
            }
        },
    };
    Ok(match target {
        // Number.byteValue()/shortValue() of an integer truncate; of a float, narrow through int.
        SchemaType::Int8 => Value::Int8(match num {
            Num::Int(i) => i as i8,
            Num::Float(f) => (f as i32) as i8,
            Num::Decimal(u, s) => decimal_to_i128(u, s) as i8,
        }),
        SchemaType::Int16 => Value::Int16(match num {
            Num::Int(i) => i as i16,
            Num::Float(f) => (f as i32) as i16,
            Num::Decimal(u, s) => decimal_to_i128(u, s) as i16,
        }),
        SchemaType::Int32 => Value::Int32(match num {
            Num::Int(i) => i as i32,
            Num::Float(f) => f as i32,
            Num::Decimal(u, s) => decimal_to_i128(u, s) as i32,
        }),
        SchemaType::Int64 => Value::Int64(match num {
            Num::Int(i) => i,
            Num::Float(f) => f as i64,
            Num::Decimal(u, s) => decimal_to_i128(u, s) as i64,
        }),
        SchemaType::Float32 => Value::Float32(match num {
            Num::Int(i) => i as f32,
            Num::Float(f) => f as f32,
            Num::Decimal(u, s) => decimal_to_f64(u, s) as f32,
        }),
        SchemaType::Float64 => Value::Float64(match num {
            Num::Int(i) => i as f64,
            // Float.doubleValue() widens exactly (1.1f becomes 1.100000023841858).
            Num::Float(f) => f,
            Num::Decimal(u, s) => decimal_to_f64(u, s),
        }),
        SchemaType::Boolean => Value::Boolean(match num {
            // Number.longValue() != 0: 0.5 is false.
            Num::Int(i) => i != 0,
            Num::Float(f) => (f as i64) != 0,
            Num::Decimal(u, s) => decimal_to_i128(u, s) != 0,
        }),
        other => {
            return Err(Fail::new(format!(
                "{} is not supported in the cast transformation",
                other.name().to_uppercase()
            )));
        }
    })
}

/// Java's `Float.parseFloat` / `Double.parseDouble`: surrounding whitespace allowed, an `f`/`d`
/// suffix allowed, `NaN` and `Infinity` spelled as Java does.
fn java_parse_float(s: &str) -> Option<f64> {
    let t = s.trim();
    let t = t.strip_suffix(['f', 'F', 'd', 'D']).unwrap_or(t);
    match t {
        "NaN" | "+NaN" | "-NaN" => return Some(f64::NAN),
        "Infinity" | "+Infinity" => return Some(f64::INFINITY),
        "-Infinity" => return Some(f64::NEG_INFINITY),
        _ => {}
    }
    if t.chars()
        .any(|c| c.is_ascii_alphabetic() && c != 'e' && c != 'E')
    {
        return None;
    }
    t.parse().ok()
}

/// Java's `toString` of a value being cast to string: numbers as Java prints them, bytes as
/// base64, logical Date/Time/Timestamp as ISO-8601 UTC (`Values.dateFormatFor`), a Decimal as
/// `BigDecimal.toString`.
pub(super) fn java_to_string(
    value: &Value,
    logical_name: Option<&str>,
    decimal_scale: Option<u32>,
) -> String {
    match (value, logical_name) {
        (Value::Int32(days), Some(logical::DATE)) => date_for(i64::from(*days) * 86_400_000),
        (Value::Int32(ms), Some(logical::TIME)) => date_for(i64::from(*ms)),
        (Value::Int64(ms), Some(logical::TIMESTAMP)) => date_for(*ms),
        (Value::Bytes(b), _) => {
            match decimal_scale.and_then(|s| decimal_unscaled(b).map(|u| (u, s))) {
                Some((u, s)) => decimal_to_string(u, s),
                None => base64::engine::general_purpose::STANDARD.encode(b),
            }
        }
        (Value::Boolean(b), _) => b.to_string(),
        (Value::Float32(f), _) => java_double_string(f64::from(*f), true),
        (Value::Float64(f), _) => java_double_string(*f, false),
        (Value::String(s), _) => s.clone(),
        (v, _) => match v.as_i64() {
            Some(i) => i.to_string(),
            None => format!("{v:?}"),
        },
    }
}

/// `Values.dateFormatFor(date).format(date)`: a time of day before the first day's end, a date
/// at midnight, a timestamp otherwise; always UTC.
fn date_for(ms: i64) -> String {
    use super::timefmt::Pattern;
    let pattern = if ms < 86_400_000 {
        "HH:mm:ss.SSS'Z'"
    } else if ms % 86_400_000 == 0 {
        "yyyy-MM-dd"
    } else {
        "yyyy-MM-dd'T'HH:mm:ss.SSS'Z'"
    };
    match Pattern::parse(pattern) {
        Ok(p) => p.format(ms),
        Err(_) => ms.to_string(),
    }
}

/// Java's `Double.toString` (or `Float.toString`, shortest digits of the f32): `1.0`, `0.001`,
/// `1.0E7`, `1.0E-4`, `NaN`, `Infinity`.
pub(super) fn java_double_string(f: f64, single: bool) -> String {
    if f.is_nan() {
        return "NaN".into();
    }
    if f.is_infinite() {
        return if f > 0.0 {
            "Infinity".into()
        } else {
            "-Infinity".into()
        };
    }
    let abs = f.abs();
    if f == 0.0 {
        return if f.is_sign_negative() {
            "-0.0".into()
        } else {
            "0.0".into()
        };
    }
    if (1e-3..1e7).contains(&abs) {
        let s = if single {
            format!("{}", f as f32)
        } else {
            format!("{f}")
        };
        if s.contains('.') { s } else { format!("{s}.0") }
    } else {
        let s = if single {
            format!("{:e}", f as f32)
        } else {
            format!("{f:e}")
        };
        // Rust: 1e7, 1.5e-5; Java: 1.0E7, 1.5E-5.
        let (mantissa, exp) = s.split_once('e').unwrap_or((&s, "0"));
        let mantissa = if mantissa.contains('.') {
            mantissa.to_string()
        } else {
            format!("{mantissa}.0")
        };
        format!("{mantissa}E{exp}")
    }
}

/// The unscaled value of a Decimal's bytes (big-endian two's complement), up to 16 bytes.
pub(super) fn decimal_unscaled(bytes: &[u8]) -> Option<i128> {
    if bytes.is_empty() || bytes.len() > 16 {
        return None;
    }
    let fill = if bytes[0] & 0x80 != 0 { 0xff } else { 0 };
    let mut buf = [fill; 16];
    buf[16 - bytes.len()..].copy_from_slice(bytes);
    Some(i128::from_be_bytes(buf))
}

/// The minimal big-endian two's-complement bytes of `unscaled`, as `BigInteger.toByteArray`.
pub(super) fn decimal_bytes(unscaled: i128) -> Bytes {
    let all = unscaled.to_be_bytes();
    let mut start = 0;
    while start < 15 {
        let (b, next) = (all[start], all[start + 1]);
        if (b == 0 && next & 0x80 == 0) || (b == 0xff && next & 0x80 != 0) {
            start += 1;
        } else {
            break;
        }
    }
    Bytes::copy_from_slice(&all[start..])
}

/// A decimal string (`12.5`) as an unscaled value at `scale`; None when it has more fraction
/// digits than the scale or does not fit.
pub(super) fn parse_decimal(s: &str, scale: u32) -> Option<i128> {
    let t = s.trim();
    let (neg, t) = match t.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, t.strip_prefix('+').unwrap_or(t)),
    };
    let (int, frac) = t.split_once('.').unwrap_or((t, ""));
    // An i128 holds 38 digits; the bound also keeps a hostile scale from allocating.
    if scale > 38 {
        return None;
    }
    if int.is_empty() && frac.is_empty() || frac.len() > scale as usize {
        return None;
    }
    if !int.chars().chain(frac.chars()).all(|c| c.is_ascii_digit()) {
        return None;
    }
    let digits = format!("{int}{frac}{}", "0".repeat(scale as usize - frac.len()));
    let v: i128 = if digits.is_empty() {
        0
    } else {
        digits.parse().ok()?
    };
    Some(if neg { -v } else { v })
}

fn decimal_to_i128(unscaled: i128, scale: u32) -> i128 {
    unscaled / 10i128.checked_pow(scale).unwrap_or(i128::MAX)
}

fn decimal_to_f64(unscaled: i128, scale: u32) -> f64 {
    let s = decimal_to_string(unscaled, scale);
    s.parse().unwrap_or(f64::NAN)
}

/// `BigDecimal.toString`: plain notation when the scale is not negative and the adjusted
/// exponent is at least -6, scientific (`1.23E-10`) otherwise.
pub(super) fn decimal_to_string(unscaled: i128, scale: u32) -> String {
    let digits = unscaled.unsigned_abs().to_string();
    let sign = if unscaled < 0 { "-" } else { "" };
    if scale == 0 {
        return format!("{sign}{digits}");
    }
    let adjusted = digits.len() as i64 - 1 - i64::from(scale);
    if adjusted < -6 {
        let (first, rest) = digits.split_at(1);
        let dot = if rest.is_empty() { "" } else { "." };
        return format!("{sign}{first}{dot}{rest}E{adjusted}");
    }
    // adjusted >= -6 bounds the zeros added here to a few.
    let scale = scale as usize;
    let padded = if digits.len() <= scale {
        format!("{}{digits}", "0".repeat(scale + 1 - digits.len()))
    } else {
        digits
    };
    let (int, frac) = padded.split_at(padded.len() - scale);
    format!("{sign}{int}.{frac}")
}
