//! PostgreSQL column types as Debezium's PostgreSQL connector maps them to Kafka Connect
//! schemas (its defaults: `decimal.handling.mode=precise`, `time.precision.mode=adaptive`), and
//! values from their text format (what `pgoutput` sends and a snapshot's text-mode query
//! returns; the sessions pin `DateStyle=ISO`, `TimeZone=UTC` and `IntervalStyle=iso_8601`, so
//! the text is in one shape). A type Debezium has no mapping for is kept as its text.

use bytes::Bytes;

use crate::convert::decimal;
use crate::data::{Schema, SchemaType, Struct, Value};
use crate::transforms::timefmt::days_from_civil;

/// How `numeric` and `money` columns are written (`decimal.handling.mode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DecimalMode {
    /// Kafka Connect's `Decimal` (bytes), or Debezium's `VariableScaleDecimal` when the column
    /// has no scale.
    Precise,
    /// FLOAT64.
    Double,
    /// The decimal's text.
    String,
}

/// How dates and times are written (`time.precision.mode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeMode {
    /// Debezium's own types, in the column's precision (milli- or microseconds).
    Adaptive,
    /// Kafka Connect's `Date`, `Time` and `Timestamp` (milliseconds).
    Connect,
}

/// The modes a connector's config chose.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Modes {
    /// `decimal.handling.mode`.
    pub decimal: DecimalMode,
    /// `time.precision.mode`.
    pub time: TimeMode,
}

/// A column's type as the decoder needs it.
#[derive(Debug, Clone, PartialEq)]
pub struct ColumnType {
    /// The type's OID.
    pub oid: u32,
    /// Its modifier (`atttypmod`), or -1.
    pub modifier: i32,
}

/// What Debezium writes for an unchanged TOASTed value (`unavailable.value.placeholder`).
pub const UNAVAILABLE: &str = "__debezium_unavailable_value";

mod oid {
    pub const BOOL: u32 = 16;
    pub const BYTEA: u32 = 17;
    pub const INT8: u32 = 20;
    pub const INT2: u32 = 21;
    pub const INT4: u32 = 23;
    pub const OID: u32 = 26;
    pub const JSON: u32 = 114;
    pub const XML: u32 = 142;
    pub const FLOAT4: u32 = 700;
    pub const FLOAT8: u32 = 701;
    pub const MONEY: u32 = 790;
    pub const DATE: u32 = 1082;
    pub const TIME: u32 = 1083;
    pub const TIMESTAMP: u32 = 1114;
    pub const TIMESTAMPTZ: u32 = 1184;
    pub const INTERVAL: u32 = 1186;
    pub const TIMETZ: u32 = 1266;
    pub const NUMERIC: u32 = 1700;
    pub const UUID: u32 = 2950;
    pub const JSONB: u32 = 3802;
    pub const INT2_ARRAY: u32 = 1005;
    pub const INT4_ARRAY: u32 = 1007;
    pub const INT8_ARRAY: u32 = 1016;
    pub const TEXT_ARRAY: u32 = 1009;
    pub const VARCHAR_ARRAY: u32 = 1015;
}

fn logical(kind: SchemaType, name: &str) -> Schema {
    Schema {
        version: Some(1),
        ..Schema::new(kind).with_name(name)
    }
}

/// The fractional-second digits of a time type's modifier (6 when unconstrained).
fn precision(modifier: i32) -> i32 {
    if modifier < 0 { 6 } else { modifier }
}

/// `numeric(p, s)`'s precision and scale, if the column is constrained.
fn numeric_precision_scale(modifier: i32) -> Option<(i32, i32)> {
    (modifier >= 4).then(|| {
        let m = modifier - 4;
        ((m >> 16) & 0xffff, m & 0xffff)
    })
}

/// The schema of a column of `ty` (optional when the column is nullable).
pub fn schema(ty: &ColumnType, optional: bool, modes: Modes) -> Schema {
    let mut schema = match ty.oid {
        oid::BOOL => Schema::new(SchemaType::Boolean),
        oid::INT2 => Schema::new(SchemaType::Int16),
        oid::INT4 => Schema::new(SchemaType::Int32),
        oid::INT8 | oid::OID => Schema::new(SchemaType::Int64),
        oid::FLOAT4 => Schema::new(SchemaType::Float32),
        oid::FLOAT8 => Schema::new(SchemaType::Float64),
        oid::BYTEA => Schema::new(SchemaType::Bytes),
        oid::NUMERIC | oid::MONEY => match modes.decimal {
            DecimalMode::Double => Schema::new(SchemaType::Float64),
            DecimalMode::String => Schema::new(SchemaType::String),
            DecimalMode::Precise => {
                let constrained = if ty.oid == oid::MONEY {
                    Some((0, 2))
                } else {
                    numeric_precision_scale(ty.modifier)
                };
                match constrained {
                    Some((p, s)) => {
                        let mut schema =
                            logical(SchemaType::Bytes, "org.apache.kafka.connect.data.Decimal");
                        schema.parameters.insert("scale".into(), s.to_string());
                        if p > 0 {
                            schema
                                .parameters
                                .insert("connect.decimal.precision".into(), p.to_string());
                        }
                        schema
                    }
                    None => Schema {
                        version: Some(1),
                        doc: Some("Variable scaled decimal".into()),
                        ..Schema::structure(
                            Some("io.debezium.data.VariableScaleDecimal"),
                            vec![
                                ("scale", Schema::new(SchemaType::Int32)),
                                ("value", Schema::new(SchemaType::Bytes)),
                            ],
                        )
                    },
                }
            }
        },
        oid::DATE => match modes.time {
            TimeMode::Adaptive => logical(SchemaType::Int32, "io.debezium.time.Date"),
            TimeMode::Connect => logical(SchemaType::Int32, "org.apache.kafka.connect.data.Date"),
        },
        oid::TIME => match (modes.time, precision(ty.modifier) <= 3) {
            (TimeMode::Connect, _) => {
                logical(SchemaType::Int32, "org.apache.kafka.connect.data.Time")
            }
            (TimeMode::Adaptive, true) => logical(SchemaType::Int32, "io.debezium.time.Time"),
            (TimeMode::Adaptive, false) => logical(SchemaType::Int64, "io.debezium.time.MicroTime"),
        },
        oid::TIMESTAMP => match (modes.time, precision(ty.modifier) <= 3) {
            (TimeMode::Connect, _) => {
                logical(SchemaType::Int64, "org.apache.kafka.connect.data.Timestamp")
            }
            (TimeMode::Adaptive, true) => logical(SchemaType::Int64, "io.debezium.time.Timestamp"),
            (TimeMode::Adaptive, false) => {
                logical(SchemaType::Int64, "io.debezium.time.MicroTimestamp")
            }
        },
        oid::TIMESTAMPTZ => logical(SchemaType::String, "io.debezium.time.ZonedTimestamp"),
        oid::TIMETZ => logical(SchemaType::String, "io.debezium.time.ZonedTime"),
        oid::INTERVAL => logical(SchemaType::Float64, "io.debezium.time.MicroDuration"),
        oid::UUID => logical(SchemaType::String, "io.debezium.data.Uuid"),
        oid::JSON | oid::JSONB => logical(SchemaType::String, "io.debezium.data.Json"),
        oid::XML => logical(SchemaType::String, "io.debezium.data.Xml"),
        oid::INT2_ARRAY => Schema::array(Schema::optional(SchemaType::Int16)),
        oid::INT4_ARRAY => Schema::array(Schema::optional(SchemaType::Int32)),
        oid::INT8_ARRAY => Schema::array(Schema::optional(SchemaType::Int64)),
        oid::TEXT_ARRAY | oid::VARCHAR_ARRAY => Schema::array(Schema::optional(SchemaType::String)),
        _ => Schema::new(SchemaType::String),
    };
    schema.optional = optional;
    schema
}

/// The value of a column of `ty` from its text, in the shape [`schema`] gives.
pub fn value(ty: &ColumnType, text: &str, schema: &Schema, modes: Modes) -> Result<Value, String> {
    let bad = |what: &str| format!("{what} {text:?} of type oid {}", ty.oid);
    Ok(match ty.oid {
        oid::BOOL => Value::Boolean(match text {
            "t" | "true" => true,
            "f" | "false" => false,
            _ => return Err(bad("boolean")),
        }),
        oid::INT2 => Value::Int16(text.parse().map_err(|_| bad("smallint"))?),
        oid::INT4 => Value::Int32(text.parse().map_err(|_| bad("integer"))?),
        oid::INT8 | oid::OID => Value::Int64(text.parse().map_err(|_| bad("bigint"))?),
        oid::FLOAT4 => Value::Float32(text.parse().map_err(|_| bad("real"))?),
        oid::FLOAT8 => Value::Float64(text.parse().map_err(|_| bad("double"))?),
        oid::BYTEA => Value::Bytes(Bytes::from(bytea(text).ok_or_else(|| bad("bytea"))?)),
        oid::NUMERIC | oid::MONEY => {
            let plain: String;
            let text = if ty.oid == oid::MONEY {
                plain = text
                    .chars()
                    .filter(|c| c.is_ascii_digit() || *c == '.' || *c == '-')
                    .collect();
                plain.as_str()
            } else {
                text
            };
            if text == "NaN" || text.ends_with("Infinity") {
                // Debezium writes no value for the numbers a decimal cannot hold.
                return Ok(Value::Null);
            }
            match modes.decimal {
                DecimalMode::Double => Value::Float64(text.parse().map_err(|_| bad("numeric"))?),
                DecimalMode::String => Value::String(text.to_string()),
                DecimalMode::Precise => match schema.parameters.get("scale") {
                    Some(scale) => {
                        let scale: i32 = scale.parse().unwrap_or(0);
                        Value::Bytes(Bytes::from(
                            decimal::from_text(text, scale).map_err(|_| bad("numeric"))?,
                        ))
                    }
                    None => {
                        let scale = text.split_once('.').map_or(0, |(_, f)| f.len() as i32);
                        let unscaled =
                            decimal::from_text(text, scale).map_err(|_| bad("numeric"))?;
                        let mut s = Struct::new(schema.clone());
                        s.put("scale", Value::Int32(scale));
                        s.put("value", Value::Bytes(Bytes::from(unscaled)));
                        Value::Struct(s)
                    }
                },
            }
        }
        oid::DATE => Value::Int32(date_days(text).ok_or_else(|| bad("date"))? as i32),
        oid::TIME => {
            let micros = time_micros(text).ok_or_else(|| bad("time"))?;
            if schema.kind == SchemaType::Int32 {
                Value::Int32((micros / 1000) as i32)
            } else {
                Value::Int64(micros)
            }
        }
        oid::TIMESTAMP => {
            let micros = timestamp_micros(text).ok_or_else(|| bad("timestamp"))?;
            if schema.is_logical("io.debezium.time.MicroTimestamp") {
                Value::Int64(micros)
            } else {
                Value::Int64(micros.div_euclid(1000))
            }
        }
        oid::TIMESTAMPTZ => Value::String(zoned_timestamp(text).ok_or_else(|| bad("timestamptz"))?),
        oid::TIMETZ => Value::String(zoned_time(text)),
        oid::INTERVAL => Value::Float64(interval_micros(text).ok_or_else(|| bad("interval"))?),
        oid::INT2_ARRAY
        | oid::INT4_ARRAY
        | oid::INT8_ARRAY
        | oid::TEXT_ARRAY
        | oid::VARCHAR_ARRAY => {
            let elements = array_elements(text).ok_or_else(|| bad("array"))?;
            let mut out = Vec::with_capacity(elements.len());
            for element in elements {
                out.push(match (element, ty.oid) {
                    (None, _) => Value::Null,
                    (Some(e), oid::INT2_ARRAY) => {
                        Value::Int16(e.parse().map_err(|_| bad("smallint[]"))?)
                    }
                    (Some(e), oid::INT4_ARRAY) => {
                        Value::Int32(e.parse().map_err(|_| bad("integer[]"))?)
                    }
                    (Some(e), oid::INT8_ARRAY) => {
                        Value::Int64(e.parse().map_err(|_| bad("bigint[]"))?)
                    }
                    (Some(e), _) => Value::String(e),
                });
            }
            Value::Array(out)
        }
        _ => Value::String(text.to_string()),
    })
}

/// The value a required column gets where PostgreSQL sent none (the non-key columns of a
/// delete's old key): Debezium's zero of the schema's type.
pub fn zero(schema: &Schema) -> Value {
    match schema.kind {
        SchemaType::Boolean => Value::Boolean(false),
        SchemaType::Int8 => Value::Int8(0),
        SchemaType::Int16 => Value::Int16(0),
        SchemaType::Int32 => Value::Int32(0),
        SchemaType::Int64 => Value::Int64(0),
        SchemaType::Float32 => Value::Float32(0.0),
        SchemaType::Float64 => Value::Float64(0.0),
        SchemaType::String => Value::String(String::new()),
        SchemaType::Bytes => {
            if schema.is_logical("org.apache.kafka.connect.data.Decimal") {
                Value::Bytes(Bytes::from_static(&[0]))
            } else {
                Value::Bytes(Bytes::new())
            }
        }
        SchemaType::Array => Value::Array(Vec::new()),
        SchemaType::Map => Value::Map(Vec::new()),
        SchemaType::Struct => {
            let mut s = Struct::new(schema.clone());
            for (i, field) in schema.fields.iter().enumerate() {
                s.values[i] = zero(&field.schema);
            }
            Value::Struct(s)
        }
    }
}

/// The value for an unchanged TOASTed column (its new value is not in the change).
pub fn unavailable(schema: &Schema) -> Value {
    match schema.kind {
        SchemaType::String => Value::String(UNAVAILABLE.into()),
        SchemaType::Bytes if !schema.is_logical("org.apache.kafka.connect.data.Decimal") => {
            Value::Bytes(Bytes::from_static(UNAVAILABLE.as_bytes()))
        }
        _ if schema.optional => Value::Null,
        _ => zero(schema),
    }
}

fn bytea(text: &str) -> Option<Vec<u8>> {
    let hex = text.strip_prefix("\\x")?;
    if hex.len() % 2 != 0 {
        return None;
    }
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).ok())
        .collect()
}

/// Days since 1970-01-01 of `YYYY-MM-DD` (` BC` for years before 1).
fn date_days(text: &str) -> Option<i64> {
    let (text, bc) = match text.strip_suffix(" BC") {
        Some(t) => (t, true),
        None => (text, false),
    };
    let mut parts = text.splitn(3, '-');
    let year: i64 = parts.next()?.parse().ok()?;
    let month: i64 = parts.next()?.parse().ok()?;
    let day: i64 = parts.next()?.parse().ok()?;
    let year = if bc { 1 - year } else { year };
    Some(days_from_civil(year, month, day))
}

/// Microseconds since midnight of `HH:MM:SS[.ffffff]`.
fn time_micros(text: &str) -> Option<i64> {
    let mut parts = text.splitn(3, ':');
    let h: i64 = parts.next()?.parse().ok()?;
    let m: i64 = parts.next()?.parse().ok()?;
    let seconds = parts.next()?;
    let (s, frac) = seconds.split_once('.').unwrap_or((seconds, ""));
    let s: i64 = s.parse().ok()?;
    let mut micros = 0i64;
    for (i, c) in frac.chars().take(6).enumerate() {
        micros += i64::from(c.to_digit(10)?) * 10i64.pow(5 - i as u32);
    }
    Some(((h * 60 + m) * 60 + s) * 1_000_000 + micros)
}

/// Splits `date time[offset][ BC]` into the date (with ` BC` if it was there), the time and
/// the offset's text.
fn split_timestamp(text: &str) -> Option<(String, &str, &str)> {
    let (date, rest) = text.split_once(' ')?;
    let (rest, date) = match rest.strip_suffix(" BC") {
        Some(r) => (r, format!("{date} BC")),
        None => (rest, date.to_string()),
    };
    let cut = rest.find(['+', '-']).unwrap_or(rest.len());
    Some((date, &rest[..cut], &rest[cut..]))
}

/// Microseconds since the epoch of a `timestamp`'s text (UTC, as the session's TimeZone).
fn timestamp_micros(text: &str) -> Option<i64> {
    match text {
        "infinity" => return Some(i64::MAX),
        "-infinity" => return Some(i64::MIN),
        _ => {}
    }
    let (date, time, _) = split_timestamp(text)?;
    Some(date_days(&date)? * 86_400_000_000 + time_micros(time)?)
}

/// Seconds east of UTC of an offset `+HH[:MM[:SS]]`.
fn offset_seconds(offset: &str) -> Option<i64> {
    if offset.is_empty() {
        return Some(0);
    }
    let sign = if offset.starts_with('-') { -1 } else { 1 };
    let mut parts = offset[1..].split(':');
    let h: i64 = parts.next()?.parse().ok()?;
    let m: i64 = parts.next().map_or(Some(0), |p| p.parse().ok())?;
    let s: i64 = parts.next().map_or(Some(0), |p| p.parse().ok())?;
    Some(sign * (h * 3600 + m * 60 + s))
}

/// `timestamptz`'s text as Debezium's `ZonedTimestamp`: ISO-8601 in UTC, `2024-01-15T10:20:30.5Z`.
fn zoned_timestamp(text: &str) -> Option<String> {
    if text == "infinity" || text == "-infinity" {
        return Some(text.to_string());
    }
    let (date, time, offset) = split_timestamp(text)?;
    let micros = date_days(&date)? * 86_400_000_000 + time_micros(time)?
        - offset_seconds(offset)? * 1_000_000;
    Some(iso_utc(micros))
}

fn iso_utc(micros: i64) -> String {
    let days = micros.div_euclid(86_400_000_000);
    let rest = micros.rem_euclid(86_400_000_000);
    let (y, m, d) = crate::transforms::timefmt::civil_from_days(days);
    let secs = rest / 1_000_000;
    let frac = rest % 1_000_000;
    let mut out = format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}",
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    );
    if frac != 0 {
        let digits = format!("{frac:06}");
        out.push('.');
        out.push_str(digits.trim_end_matches('0'));
    }
    out.push('Z');
    out
}

/// `timetz`'s text as Debezium's `ZonedTime`: the time in UTC, `10:20:30.5Z`.
fn zoned_time(text: &str) -> String {
    let cut = text.find(['+', '-']).unwrap_or(text.len());
    let (time, offset) = text.split_at(cut);
    match (time_micros(time), offset_seconds(offset)) {
        (Some(t), Some(o)) => {
            let utc = (t - o * 1_000_000).rem_euclid(86_400_000_000);
            let iso = iso_utc(utc);
            iso.split_once('T')
                .map_or(iso.clone(), |(_, t)| t.to_string())
        }
        _ => text.to_string(),
    }
}

/// An ISO-8601 interval (`P1Y2M3DT4H5M6.5S`, IntervalStyle iso_8601) in microseconds, months as
/// Debezium counts them (365.25 / 12 days).
fn interval_micros(text: &str) -> Option<f64> {
    const DAY: f64 = 86_400_000_000.0;
    let body = text.strip_prefix('P')?;
    let (date, time) = body.split_once('T').unwrap_or((body, ""));
    let mut total = 0.0;
    for (part, units) in [
        (
            date,
            [
                ('Y', DAY * 365.25),
                ('M', DAY * 365.25 / 12.0),
                ('W', DAY * 7.0),
                ('D', DAY),
            ],
        ),
        (
            time,
            [
                ('H', 3_600_000_000.0),
                ('M', 60_000_000.0),
                ('S', 1_000_000.0),
                ('\0', 0.0),
            ],
        ),
    ] {
        let mut number = String::new();
        for c in part.chars() {
            if c.is_ascii_digit() || c == '.' || c == '-' {
                number.push(c);
            } else {
                let unit = units.iter().find(|(u, _)| *u == c)?.1;
                total += number.parse::<f64>().ok()? * unit;
                number.clear();
            }
        }
    }
    Some(total)
}

/// The elements of a one-dimensional array's text (`{1,NULL,"a b"}`).
fn array_elements(text: &str) -> Option<Vec<Option<String>>> {
    let body = text.strip_prefix('{')?.strip_suffix('}')?;
    let mut out = Vec::new();
    if body.is_empty() {
        return Some(out);
    }
    let mut chars = body.chars().peekable();
    loop {
        let mut element = String::new();
        let quoted = chars.peek() == Some(&'"');
        if quoted {
            chars.next();
            loop {
                match chars.next()? {
                    '\\' => element.push(chars.next()?),
                    '"' => break,
                    c => element.push(c),
                }
            }
            out.push(Some(element));
        } else {
            while let Some(&c) = chars.peek() {
                if c == ',' {
                    break;
                }
                element.push(c);
                chars.next();
            }
            out.push((element != "NULL").then_some(element));
        }
        match chars.next() {
            Some(',') => continue,
            None => return Some(out),
            Some(_) => return None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MODES: Modes = Modes {
        decimal: DecimalMode::Precise,
        time: TimeMode::Adaptive,
    };

    fn convert(oid: u32, modifier: i32, text: &str) -> (Schema, Value) {
        let ty = ColumnType { oid, modifier };
        let schema = schema(&ty, true, MODES);
        let value = value(&ty, text, &schema, MODES).expect("present");
        (schema, value)
    }

    #[test]
    fn maps_numbers_and_decimals_as_debezium_does() {
        assert_eq!(convert(oid::INT2, -1, "-7").1, Value::Int16(-7));
        assert_eq!(
            convert(oid::INT8, -1, "9000000000").1,
            Value::Int64(9_000_000_000)
        );
        let (schema, value) = convert(oid::NUMERIC, ((10 << 16) | 2) + 4, "12.34");
        assert!(schema.is_logical("org.apache.kafka.connect.data.Decimal"));
        assert_eq!(schema.parameters["scale"], "2");
        assert_eq!(schema.parameters["connect.decimal.precision"], "10");
        assert_eq!(value, Value::Bytes(Bytes::from_static(&[0x04, 0xd2])));
        let (schema, value) = convert(oid::NUMERIC, -1, "-1.5");
        assert!(schema.is_logical("io.debezium.data.VariableScaleDecimal"));
        let Value::Struct(s) = value else { panic!() };
        assert_eq!(s.get("scale"), Some(&Value::Int32(1)));
        assert_eq!(
            s.get("value"),
            Some(&Value::Bytes(Bytes::from_static(&[0xf1])))
        );
        assert_eq!(convert(oid::NUMERIC, -1, "NaN").1, Value::Null);
    }

    #[test]
    fn maps_times_in_utc_with_the_columns_precision() {
        assert_eq!(convert(oid::DATE, -1, "1970-01-02").1, Value::Int32(1));
        let (schema, value) = convert(oid::TIMESTAMP, -1, "2024-01-15 10:20:30.123456");
        assert!(schema.is_logical("io.debezium.time.MicroTimestamp"));
        assert_eq!(value, Value::Int64(1_705_314_030_123_456));
        let (schema, value) = convert(oid::TIMESTAMP, 3, "2024-01-15 10:20:30.5");
        assert!(schema.is_logical("io.debezium.time.Timestamp"));
        assert_eq!(value, Value::Int64(1_705_314_030_500));
        assert_eq!(
            convert(oid::TIMESTAMPTZ, -1, "2024-01-15 10:20:30.25+02").1,
            Value::String("2024-01-15T08:20:30.25Z".into())
        );
        assert_eq!(
            convert(oid::TIMESTAMPTZ, -1, "2024-01-15 10:20:30+00").1,
            Value::String("2024-01-15T10:20:30Z".into())
        );
        assert_eq!(
            convert(oid::TIME, -1, "01:00:00.000001").1,
            Value::Int64(3_600_000_001)
        );
        assert_eq!(
            convert(oid::TIMETZ, -1, "10:00:00+01").1,
            Value::String("09:00:00Z".into())
        );
        assert_eq!(
            convert(oid::INTERVAL, -1, "P1DT1S").1,
            Value::Float64(86_401_000_000.0)
        );
    }

    #[test]
    fn maps_text_like_types_bytes_and_arrays() {
        let (schema, value) = convert(oid::JSONB, -1, r#"{"a": 1}"#);
        assert!(schema.is_logical("io.debezium.data.Json"));
        assert_eq!(value, Value::String(r#"{"a": 1}"#.into()));
        assert_eq!(
            convert(oid::BYTEA, -1, "\\x00ff").1,
            Value::Bytes(Bytes::from_static(&[0, 255]))
        );
        assert_eq!(
            convert(oid::TEXT_ARRAY, -1, r#"{a,"b c",NULL,"d\"e"}"#).1,
            Value::Array(vec![
                Value::String("a".into()),
                Value::String("b c".into()),
                Value::Null,
                Value::String("d\"e".into())
            ])
        );
        assert_eq!(convert(25, -1, "plain").1, Value::String("plain".into()));
        let ty = ColumnType {
            oid: oid::INT4,
            modifier: -1,
        };
        let schema = super::schema(&ty, false, MODES);
        assert!(
            super::value(&ty, "x", &schema, MODES)
                .expect_err("fails")
                .contains("integer")
        );
    }
}
