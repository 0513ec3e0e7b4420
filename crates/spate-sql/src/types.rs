//! SQL's types and values as Flink SQL names them: [`DataType`] is a column's declared type,
//! [`Value`] one value of a row. Timestamps are milliseconds since the epoch (Flink's
//! `TIMESTAMP(3)`, the precision Kafka record timestamps have), dates are days, intervals
//! milliseconds. `DECIMAL` is carried as a double: exact decimal arithmetic is not done yet.

use std::cmp::Ordering;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use spate_connect::transforms::timefmt::{civil_from_days, days_from_civil};

/// A column of a row type or a table.
#[derive(Debug, Clone, PartialEq)]
pub struct Field {
    /// The name, as declared (matched case-insensitively).
    pub name: String,
    /// The type.
    pub data_type: DataType,
}

impl Field {
    /// A field.
    pub fn new(name: impl Into<String>, data_type: DataType) -> Field {
        Field {
            name: name.into(),
            data_type,
        }
    }
}

/// A SQL type.
#[derive(Debug, Clone, PartialEq)]
pub enum DataType {
    /// The type of a bare `NULL`.
    Null,
    /// `BOOLEAN`
    Boolean,
    /// `TINYINT`
    TinyInt,
    /// `SMALLINT`
    SmallInt,
    /// `INT`
    Int,
    /// `BIGINT`
    BigInt,
    /// `FLOAT`
    Float,
    /// `DOUBLE`
    Double,
    /// `DECIMAL(p, s)`
    Decimal(u8, u8),
    /// `STRING` / `VARCHAR(n)`
    String,
    /// `BYTES` / `VARBINARY(n)`
    Bytes,
    /// `TIMESTAMP(p)`
    Timestamp(u8),
    /// `TIMESTAMP_LTZ(p)`
    TimestampLtz(u8),
    /// `DATE`
    Date,
    /// `INTERVAL ...` (day-time, milliseconds)
    Interval,
    /// `ROW<name type, ...>`
    Row(Vec<Field>),
    /// `ARRAY<type>`
    Array(Box<DataType>),
    /// `MAP<key, value>`
    Map(Box<DataType>, Box<DataType>),
}

impl DataType {
    /// Whether values are integers.
    pub fn is_integer(&self) -> bool {
        matches!(
            self,
            DataType::TinyInt | DataType::SmallInt | DataType::Int | DataType::BigInt
        )
    }

    /// Whether values are numbers.
    pub fn is_numeric(&self) -> bool {
        self.is_integer()
            || matches!(
                self,
                DataType::Float | DataType::Double | DataType::Decimal(..)
            )
    }

    /// Whether values are timestamps.
    pub fn is_timestamp(&self) -> bool {
        matches!(self, DataType::Timestamp(_) | DataType::TimestampLtz(_))
    }

    /// The field `name` of a row type (case-insensitive), with its index.
    pub fn field(&self, name: &str) -> Option<(usize, &Field)> {
        match self {
            DataType::Row(fields) => fields
                .iter()
                .enumerate()
                .find(|(_, f)| f.name.eq_ignore_ascii_case(name)),
            _ => None,
        }
    }
}

impl fmt::Display for DataType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DataType::Null => f.write_str("NULL"),
            DataType::Boolean => f.write_str("BOOLEAN"),
            DataType::TinyInt => f.write_str("TINYINT"),
            DataType::SmallInt => f.write_str("SMALLINT"),
            DataType::Int => f.write_str("INT"),
            DataType::BigInt => f.write_str("BIGINT"),
            DataType::Float => f.write_str("FLOAT"),
            DataType::Double => f.write_str("DOUBLE"),
            DataType::Decimal(p, s) => write!(f, "DECIMAL({p}, {s})"),
            DataType::String => f.write_str("STRING"),
            DataType::Bytes => f.write_str("BYTES"),
            DataType::Timestamp(p) => write!(f, "TIMESTAMP({p})"),
            DataType::TimestampLtz(p) => write!(f, "TIMESTAMP_LTZ({p})"),
            DataType::Date => f.write_str("DATE"),
            DataType::Interval => f.write_str("INTERVAL DAY TO SECOND(3)"),
            DataType::Row(fields) => {
                f.write_str("ROW<")?;
                for (i, field) in fields.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "`{}` {}", field.name, field.data_type)?;
                }
                f.write_str(">")
            }
            DataType::Array(item) => write!(f, "ARRAY<{item}>"),
            DataType::Map(k, v) => write!(f, "MAP<{k}, {v}>"),
        }
    }
}

/// One value.
#[derive(Debug, Clone)]
pub enum Value {
    /// NULL
    Null,
    /// BOOLEAN
    Bool(bool),
    /// every integer type
    Int(i64),
    /// FLOAT, DOUBLE, DECIMAL
    Float(f64),
    /// STRING
    Str(Arc<str>),
    /// BYTES
    Bytes(Arc<[u8]>),
    /// TIMESTAMP, TIMESTAMP_LTZ: milliseconds since the epoch
    Timestamp(i64),
    /// DATE: days since the epoch
    Date(i32),
    /// INTERVAL: milliseconds
    Interval(i64),
    /// ROW: one value per field of its type
    Row(Arc<[Value]>),
    /// ARRAY
    Array(Arc<[Value]>),
    /// MAP, in insertion order
    Map(Arc<[(Value, Value)]>),
}

impl Value {
    /// A string value.
    pub fn str(s: &str) -> Value {
        Value::Str(Arc::from(s))
    }

    /// Whether this is NULL.
    pub fn is_null(&self) -> bool {
        matches!(self, Value::Null)
    }

    /// SQL truth: only TRUE is true.
    pub fn is_true(&self) -> bool {
        matches!(self, Value::Bool(true))
    }

    /// The value as a double, for numbers.
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Value::Int(i) => Some(*i as f64),
            Value::Float(f) => Some(*f),
            _ => None,
        }
    }

    /// The value as an integer, for integers (and timestamps, dates, intervals).
    pub fn as_i64(&self) -> Option<i64> {
        match self {
            Value::Int(i) | Value::Timestamp(i) | Value::Interval(i) => Some(*i),
            Value::Date(d) => Some(i64::from(*d)),
            _ => None,
        }
    }

    /// The value as text, for strings.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }

    fn rank(&self) -> u8 {
        match self {
            Value::Null => 0,
            Value::Bool(_) => 1,
            Value::Int(_) | Value::Float(_) => 2,
            Value::Str(_) => 3,
            Value::Bytes(_) => 4,
            Value::Timestamp(_) => 5,
            Value::Date(_) => 6,
            Value::Interval(_) => 7,
            Value::Row(_) => 8,
            Value::Array(_) => 9,
            Value::Map(_) => 10,
        }
    }

    /// A total order (NULL first; integers and doubles compared as numbers), for MIN, MAX,
    /// ORDER BY and keys.
    pub fn total_cmp(&self, other: &Value) -> Ordering {
        match (self, other) {
            (Value::Int(a), Value::Int(b)) => a.cmp(b),
            (Value::Int(a), Value::Float(b)) => (*a as f64).total_cmp(b),
            (Value::Float(a), Value::Int(b)) => a.total_cmp(&(*b as f64)),
            (Value::Float(a), Value::Float(b)) => a.total_cmp(b),
            (Value::Bool(a), Value::Bool(b)) => a.cmp(b),
            (Value::Str(a), Value::Str(b)) => a.cmp(b),
            (Value::Bytes(a), Value::Bytes(b)) => a.cmp(b),
            (Value::Timestamp(a), Value::Timestamp(b))
            | (Value::Interval(a), Value::Interval(b)) => a.cmp(b),
            (Value::Date(a), Value::Date(b)) => a.cmp(b),
            (Value::Row(a), Value::Row(b)) | (Value::Array(a), Value::Array(b)) => {
                for (x, y) in a.iter().zip(b.iter()) {
                    let c = x.total_cmp(y);
                    if c != Ordering::Equal {
                        return c;
                    }
                }
                a.len().cmp(&b.len())
            }
            (Value::Map(a), Value::Map(b)) => {
                for ((xk, xv), (yk, yv)) in a.iter().zip(b.iter()) {
                    let c = xk.total_cmp(yk).then_with(|| xv.total_cmp(yv));
                    if c != Ordering::Equal {
                        return c;
                    }
                }
                a.len().cmp(&b.len())
            }
            _ => self.rank().cmp(&other.rank()),
        }
    }

    /// The value as JSON, as Flink's `json` format writes it (timestamps as
    /// `yyyy-MM-dd HH:mm:ss.SSS`, dates as `yyyy-MM-dd`, bytes as base64 would be; here hex-free
    /// lossless text is not possible, so bytes are written as an array of numbers).
    pub fn to_json(&self, data_type: &DataType) -> serde_json::Value {
        use serde_json::Value as J;
        match self {
            Value::Null => J::Null,
            Value::Bool(b) => J::Bool(*b),
            Value::Int(i) => J::from(*i),
            Value::Float(f) => serde_json::Number::from_f64(*f).map_or(J::Null, J::Number),
            Value::Str(s) => J::String(s.to_string()),
            Value::Bytes(b) => J::Array(b.iter().map(|x| J::from(*x)).collect()),
            Value::Timestamp(ms) => J::String(format_timestamp(*ms)),
            Value::Date(d) => J::String(format_date(*d)),
            Value::Interval(ms) => J::from(*ms),
            Value::Row(values) => {
                let fields: &[Field] = match data_type {
                    DataType::Row(fields) => fields,
                    _ => &[],
                };
                let mut map = serde_json::Map::new();
                for (i, v) in values.iter().enumerate() {
                    let (name, t) = fields
                        .get(i)
                        .map_or((format!("f{i}"), &DataType::Null), |f| {
                            (f.name.clone(), &f.data_type)
                        });
                    map.insert(name, v.to_json(t));
                }
                J::Object(map)
            }
            Value::Array(items) => {
                let t = match data_type {
                    DataType::Array(t) => &**t,
                    _ => &DataType::Null,
                };
                J::Array(items.iter().map(|v| v.to_json(t)).collect())
            }
            Value::Map(entries) => {
                let t = match data_type {
                    DataType::Map(_, t) => &**t,
                    _ => &DataType::Null,
                };
                let mut map = serde_json::Map::new();
                for (k, v) in entries.iter() {
                    let key = match k {
                        Value::Str(s) => s.to_string(),
                        other => other.to_string(),
                    };
                    map.insert(key, v.to_json(t));
                }
                J::Object(map)
            }
        }
    }

    /// A JSON value read as `data_type`, as Flink's `json` format reads it (lenient: numbers
    /// in strings, timestamps as SQL or ISO-8601 text or epoch milliseconds). None when it
    /// does not fit.
    pub fn from_json(json: &serde_json::Value, data_type: &DataType) -> Option<Value> {
        use serde_json::Value as J;
        if json.is_null() {
            return Some(Value::Null);
        }
        Some(match data_type {
            DataType::Null => Value::Null,
            DataType::Boolean => match json {
                J::Bool(b) => Value::Bool(*b),
                J::String(s) if s.eq_ignore_ascii_case("true") => Value::Bool(true),
                J::String(s) if s.eq_ignore_ascii_case("false") => Value::Bool(false),
                _ => return None,
            },
            t if t.is_integer() => match json {
                J::Number(n) => Value::Int(n.as_i64().or_else(|| {
                    n.as_f64()
                        .filter(|f| f.fract() == 0.0 && f.abs() < 9.0e18)
                        .map(|f| f as i64)
                })?),
                J::String(s) => Value::Int(s.trim().parse().ok()?),
                _ => return None,
            },
            DataType::Float | DataType::Double | DataType::Decimal(..) => match json {
                J::Number(n) => Value::Float(n.as_f64()?),
                J::String(s) => Value::Float(s.trim().parse().ok()?),
                _ => return None,
            },
            DataType::String => match json {
                J::String(s) => Value::str(s),
                other => Value::str(&other.to_string()),
            },
            DataType::Bytes => match json {
                J::String(s) => Value::Bytes(Arc::from(s.as_bytes())),
                _ => return None,
            },
            DataType::Timestamp(_) | DataType::TimestampLtz(_) => match json {
                J::Number(n) => Value::Timestamp(n.as_i64()?),
                J::String(s) => Value::Timestamp(parse_timestamp(s)?),
                _ => return None,
            },
            DataType::Date => match json {
                J::String(s) => Value::Date(parse_date(s)?),
                J::Number(n) => Value::Date(i32::try_from(n.as_i64()?).ok()?),
                _ => return None,
            },
            DataType::Interval => Value::Interval(json.as_i64()?),
            DataType::Row(fields) => {
                let J::Object(map) = json else {
                    return None;
                };
                let mut values = Vec::with_capacity(fields.len());
                for field in fields {
                    let v = map
                        .get(&field.name)
                        .or_else(|| {
                            map.iter()
                                .find(|(k, _)| k.eq_ignore_ascii_case(&field.name))
                                .map(|(_, v)| v)
                        })
                        .map_or(Some(Value::Null), |v| Value::from_json(v, &field.data_type))?;
                    values.push(v);
                }
                Value::Row(values.into())
            }
            DataType::Array(t) => {
                let J::Array(items) = json else {
                    return None;
                };
                let values: Option<Vec<Value>> =
                    items.iter().map(|v| Value::from_json(v, t)).collect();
                Value::Array(values?.into())
            }
            DataType::Map(_, t) => {
                let J::Object(map) = json else {
                    return None;
                };
                let entries: Option<Vec<(Value, Value)>> = map
                    .iter()
                    .map(|(k, v)| Some((Value::str(k), Value::from_json(v, t)?)))
                    .collect();
                Value::Map(entries?.into())
            }
            _ => return None,
        })
    }
}

impl PartialEq for Value {
    fn eq(&self, other: &Value) -> bool {
        self.total_cmp(other) == Ordering::Equal
    }
}

impl Eq for Value {}

impl PartialOrd for Value {
    fn partial_cmp(&self, other: &Value) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Value {
    fn cmp(&self, other: &Value) -> Ordering {
        self.total_cmp(other)
    }
}

/// A value serialized as state JSON, tagged so it reads back as the same variant (`{"i": 1}`,
/// `{"f": 1.5}`, `{"s": "x"}`, `{"t": ms}`, ...; [`decode_state`] reads it), written straight
/// to text with no `serde_json::Value` in between: checkpoints write it for every changed key.
/// Not a user-facing format.
pub struct State<'a>(pub &'a Value);

/// A row serialized as an array of [`State`]s.
pub struct StateRow<'a>(pub &'a [Value]);

impl serde::Serialize for State<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.0 {
            Value::Null => s.serialize_unit(),
            Value::Bool(b) => s.serialize_bool(*b),
            Value::Int(i) => tagged(s, "i", i),
            Value::Float(f) => tagged(s, "f", f),
            Value::Str(v) => tagged(s, "s", &**v),
            Value::Bytes(b) => tagged(s, "b", &**b),
            Value::Timestamp(t) => tagged(s, "t", t),
            Value::Date(d) => tagged(s, "d", d),
            Value::Interval(i) => tagged(s, "v", i),
            Value::Row(r) => tagged(s, "r", &StateRow(r)),
            Value::Array(a) => tagged(s, "a", &StateRow(a)),
            Value::Map(m) => tagged(s, "m", &StatePairs(m)),
        }
    }
}

impl serde::Serialize for StateRow<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.0.iter().map(State))
    }
}

/// `{"<tag>": value}`, as [`State`] tags a value.
fn tagged<S: serde::Serializer, T: serde::Serialize + ?Sized>(
    s: S,
    tag: &str,
    value: &T,
) -> Result<S::Ok, S::Error> {
    use serde::ser::SerializeMap;
    let mut map = s.serialize_map(Some(1))?;
    map.serialize_entry(tag, value)?;
    map.end()
}

struct StatePairs<'a>(&'a [(Value, Value)]);

impl serde::Serialize for StatePairs<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.0.iter().map(|(k, v)| (State(k), State(v))))
    }
}

/// The text of `value` serialized as JSON (state records: no value of ours fails to serialize).
pub fn state_text(value: &impl serde::Serialize) -> String {
    serde_json::to_string(value).unwrap_or_default()
}

/// The value [`State`] wrote; None for JSON it did not write.
pub fn decode_state(json: &serde_json::Value) -> Option<Value> {
    use serde_json::Value as J;
    Some(match json {
        J::Null => Value::Null,
        J::Bool(b) => Value::Bool(*b),
        J::Object(map) => {
            let (tag, v) = map.iter().next()?;
            match tag.as_str() {
                "i" => Value::Int(v.as_i64()?),
                "f" => Value::Float(v.as_f64()?),
                "s" => Value::str(v.as_str()?),
                "b" => Value::Bytes(
                    v.as_array()?
                        .iter()
                        .map(|x| x.as_u64().and_then(|x| u8::try_from(x).ok()))
                        .collect::<Option<Vec<u8>>>()?
                        .into(),
                ),
                "t" => Value::Timestamp(v.as_i64()?),
                "d" => Value::Date(i32::try_from(v.as_i64()?).ok()?),
                "v" => Value::Interval(v.as_i64()?),
                "r" | "a" => {
                    let items = v
                        .as_array()?
                        .iter()
                        .map(decode_state)
                        .collect::<Option<Vec<_>>>()?;
                    if tag == "r" {
                        Value::Row(items.into())
                    } else {
                        Value::Array(items.into())
                    }
                }
                "m" => Value::Map(
                    v.as_array()?
                        .iter()
                        .map(|pair| {
                            Some((decode_state(pair.get(0)?)?, decode_state(pair.get(1)?)?))
                        })
                        .collect::<Option<Vec<_>>>()?
                        .into(),
                ),
                _ => return None,
            }
        }
        _ => return None,
    })
}

impl Hash for Value {
    fn hash<H: Hasher>(&self, state: &mut H) {
        match self {
            Value::Null => 0u8.hash(state),
            Value::Bool(b) => b.hash(state),
            // Integers and doubles that compare equal hash equally.
            Value::Int(i) => (*i as f64).to_bits().hash(state),
            Value::Float(f) => f.to_bits().hash(state),
            Value::Str(s) => s.hash(state),
            Value::Bytes(b) => b.hash(state),
            Value::Timestamp(i) | Value::Interval(i) => i.hash(state),
            Value::Date(d) => d.hash(state),
            Value::Row(v) | Value::Array(v) => v.hash(state),
            Value::Map(entries) => {
                for (k, v) in entries.iter() {
                    k.hash(state);
                    v.hash(state);
                }
            }
        }
    }
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Null => f.write_str("NULL"),
            Value::Bool(b) => f.write_str(if *b { "TRUE" } else { "FALSE" }),
            Value::Int(i) => write!(f, "{i}"),
            Value::Float(x) => write!(f, "{x}"),
            Value::Str(s) => f.write_str(s),
            Value::Bytes(b) => {
                f.write_str("x'")?;
                for byte in b.iter() {
                    write!(f, "{byte:02X}")?;
                }
                f.write_str("'")
            }
            Value::Timestamp(ms) => f.write_str(&format_timestamp(*ms)),
            Value::Date(d) => f.write_str(&format_date(*d)),
            Value::Interval(ms) => write!(f, "{}", format_interval(*ms)),
            Value::Row(values) | Value::Array(values) => {
                f.write_str(if matches!(self, Value::Row(_)) {
                    "("
                } else {
                    "["
                })?;
                for (i, v) in values.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{v}")?;
                }
                f.write_str(if matches!(self, Value::Row(_)) {
                    ")"
                } else {
                    "]"
                })
            }
            Value::Map(entries) => {
                f.write_str("{")?;
                for (i, (k, v)) in entries.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{k}={v}")?;
                }
                f.write_str("}")
            }
        }
    }
}

/// `yyyy-MM-dd HH:mm:ss.SSS` in UTC, as Flink prints a `TIMESTAMP(3)`.
pub fn format_timestamp(ms: i64) -> String {
    let days = ms.div_euclid(86_400_000);
    let in_day = ms.rem_euclid(86_400_000);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}.{:03}",
        in_day / 3_600_000,
        in_day / 60_000 % 60,
        in_day / 1000 % 60,
        in_day % 1000
    )
}

/// `yyyy-MM-dd`.
pub fn format_date(days: i32) -> String {
    let (y, m, d) = civil_from_days(i64::from(days));
    format!("{y:04}-{m:02}-{d:02}")
}

/// An interval as Flink prints one: `+1 02:03:04.005`.
pub fn format_interval(ms: i64) -> String {
    let sign = if ms < 0 { '-' } else { '+' };
    let ms = ms.unsigned_abs();
    format!(
        "{sign}{} {:02}:{:02}:{:02}.{:03}",
        ms / 86_400_000,
        ms / 3_600_000 % 24,
        ms / 60_000 % 60,
        ms / 1000 % 60,
        ms % 1000
    )
}

/// Days of `yyyy-MM-dd`.
pub fn parse_date(text: &str) -> Option<i32> {
    let text = text.trim();
    let mut parts = text.get(..10)?.split('-');
    let y: i64 = parts.next()?.parse().ok()?;
    let m: i64 = parts.next()?.parse().ok()?;
    let d: i64 = parts.next()?.parse().ok()?;
    if !(1..=12).contains(&m) || !(1..=31).contains(&d) {
        return None;
    }
    i32::try_from(days_from_civil(y, m, d)).ok()
}

/// Milliseconds of `yyyy-MM-dd[ |T]HH:mm[:ss[.fff]][Z|±hh:mm]` (no zone = UTC), or of a
/// date alone.
pub fn parse_timestamp(text: &str) -> Option<i64> {
    let text = text.trim();
    let days = i64::from(parse_date(text)?);
    let rest = &text[10..];
    if rest.is_empty() {
        return Some(days * 86_400_000);
    }
    let rest = rest.strip_prefix([' ', 'T'])?;
    let (clock, zone_ms) = match rest.find(['Z', 'z', '+']).or_else(|| rest.rfind('-')) {
        Some(i) => {
            let zone = &rest[i..];
            let offset = if zone.eq_ignore_ascii_case("z") {
                0
            } else {
                let sign = if zone.starts_with('-') { -1 } else { 1 };
                let digits: String = zone[1..].chars().filter(|c| c.is_ascii_digit()).collect();
                if digits.len() != 4 {
                    return None;
                }
                let h: i64 = digits[..2].parse().ok()?;
                let m: i64 = digits[2..].parse().ok()?;
                sign * (h * 3_600_000 + m * 60_000)
            };
            (&rest[..i], offset)
        }
        None => (rest, 0),
    };
    let mut parts = clock.split(':');
    let h: i64 = parts.next()?.parse().ok()?;
    let m: i64 = parts.next()?.parse().ok()?;
    let (s, frac_ms) = match parts.next() {
        None => (0, 0),
        Some(sec) => match sec.split_once('.') {
            None => (sec.parse().ok()?, 0),
            Some((s, frac)) => {
                let mut digits: String = frac.chars().take(3).collect();
                if !digits.chars().all(|c| c.is_ascii_digit()) {
                    return None;
                }
                while digits.len() < 3 {
                    digits.push('0');
                }
                (s.parse().ok()?, digits.parse::<i64>().ok()?)
            }
        },
    };
    if h > 23 || m > 59 || s > 60 {
        return None;
    }
    Some(days * 86_400_000 + h * 3_600_000 + m * 60_000 + s * 1000 + frac_ms - zone_ms)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_text_is_the_tagged_json_changelogs_hold_and_reads_back() {
        let row = vec![
            Value::Null,
            Value::Bool(true),
            Value::Int(-7),
            Value::Float(1.5),
            Value::str("a\"b"),
            Value::Bytes(Arc::from(&[1u8, 255][..])),
            Value::Timestamp(1_700_000_000_000),
            Value::Date(19_000),
            Value::Interval(5_000),
            Value::Row(Arc::from(vec![Value::Int(1)])),
            Value::Array(Arc::from(vec![Value::str("x")])),
            Value::Map(Arc::from(vec![(Value::str("k"), Value::Int(2))])),
        ];
        let text = state_text(&StateRow(&row));
        // The text earlier versions wrote (a changelog written by them restores unchanged).
        assert_eq!(
            text,
            r#"[null,true,{"i":-7},{"f":1.5},{"s":"a\"b"},{"b":[1,255]},{"t":1700000000000},{"d":19000},{"v":5000},{"r":[{"i":1}]},{"a":[{"s":"x"}]},{"m":[[{"s":"k"},{"i":2}]]}]"#
        );
        let json: serde_json::Value = serde_json::from_str(&text).expect("JSON");
        let back: Vec<Value> = json
            .as_array()
            .expect("array")
            .iter()
            .map(decode_state)
            .collect::<Option<_>>()
            .expect("decodes");
        assert_eq!(back, row);
    }

    #[test]
    fn timestamps_round_trip_through_text() {
        let ms = parse_timestamp("2024-02-29 23:59:58.123").expect("parses");
        assert_eq!(format_timestamp(ms), "2024-02-29 23:59:58.123");
        assert_eq!(parse_timestamp("2024-02-29T23:59:58.123Z"), Some(ms));
        assert_eq!(parse_timestamp("2024-03-01T00:59:58.123+01:00"), Some(ms));
        assert_eq!(parse_timestamp("1970-01-01"), Some(0));
        assert_eq!(format_timestamp(-1), "1969-12-31 23:59:59.999");
        assert_eq!(parse_timestamp("yesterday"), None);
    }

    #[test]
    fn integers_and_doubles_are_equal_keys() {
        use std::collections::hash_map::DefaultHasher;
        let hash = |v: &Value| {
            let mut h = DefaultHasher::new();
            v.hash(&mut h);
            h.finish()
        };
        assert_eq!(Value::Int(3), Value::Float(3.0));
        assert_eq!(hash(&Value::Int(3)), hash(&Value::Float(3.0)));
        assert!(Value::Null.total_cmp(&Value::Int(-5)).is_lt());
    }

    #[test]
    fn json_reads_leniently_as_flink_does() {
        let t = DataType::Row(vec![
            Field::new("id", DataType::BigInt),
            Field::new("ts", DataType::Timestamp(3)),
            Field::new("price", DataType::Double),
        ]);
        let json = serde_json::json!({"ID": "7", "ts": "2024-01-01 00:00:01", "price": 2});
        let v = Value::from_json(&json, &t).expect("fits");
        assert_eq!(v.to_string(), "(7, 2024-01-01 00:00:01.000, 2)");
        assert_eq!(
            v.to_json(&t),
            serde_json::json!({"id": 7, "ts": "2024-01-01 00:00:01.000", "price": 2.0})
        );
    }
}
