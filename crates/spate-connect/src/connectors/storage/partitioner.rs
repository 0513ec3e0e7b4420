//! Confluent's storage partitioners (`partitioner.class`): where in the bucket a record's file
//! goes. `DefaultPartitioner` by Kafka partition (`partition=0`), `FieldPartitioner` by fields
//! of the value (`region=eu/kind=a`), `TimeBasedPartitioner` (and its `Hourly`/`Daily`
//! presets) by a timestamp formatted with `path.format` (`'year'=YYYY/'month'=MM`) after
//! flooring it to `partition.duration.ms` in `timezone`.

use crate::data::{ConnectRecord, Value};
use crate::transforms::timefmt::Pattern;

/// Where a time-based partitioner takes a record's time from (`timestamp.extractor`).
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Extractor {
    /// The time the sink handles the record.
    Wallclock,
    /// The record's Kafka timestamp.
    Record,
    /// A field of the value (`timestamp.field`, dotted for nested fields).
    RecordField(Vec<String>),
}

/// A configured `partitioner.class`.
#[derive(Debug, Clone)]
pub(crate) enum Partitioner {
    Default,
    Field(Vec<String>),
    Time {
        format: Pattern,
        duration_ms: i64,
        /// The time zone's fixed offset from UTC.
        offset_ms: i64,
        extractor: Extractor,
    },
}

impl Partitioner {
    /// Whether the partitioner has a timestamp extractor (`rotate.interval.ms` needs one).
    pub(crate) fn is_time_based(&self) -> bool {
        matches!(self, Partitioner::Time { .. })
    }

    /// The record's time, for a time-based partitioner.
    pub(crate) fn timestamp(
        &self,
        record: &ConnectRecord,
        now_ms: i64,
    ) -> Result<Option<i64>, String> {
        let Partitioner::Time { extractor, .. } = self else {
            return Ok(None);
        };
        Ok(Some(match extractor {
            Extractor::Wallclock => now_ms,
            Extractor::Record => record
                .timestamp_ms
                .ok_or("the record has no timestamp (timestamp.extractor=Record)")?,
            Extractor::RecordField(path) => {
                let value = field(&record.value, path).ok_or_else(|| {
                    format!(
                        "the value has no field {} (timestamp.field)",
                        path.join(".")
                    )
                })?;
                match value {
                    Value::Int64(ms) => *ms,
                    Value::Int32(n) => i64::from(*n),
                    Value::String(text) => parse_time(text).ok_or_else(|| {
                        format!(
                            "timestamp field {} is {text:?}, which is not an ISO-8601 time",
                            path.join(".")
                        )
                    })?,
                    other => {
                        return Err(format!(
                            "timestamp field {} is not a number or a string: {other:?}",
                            path.join(".")
                        ));
                    }
                }
            }
        }))
    }

    /// The record's encoded partition (the directories under the topic's).
    pub(crate) fn encode(
        &self,
        record: &ConnectRecord,
        timestamp: Option<i64>,
        delim: &str,
    ) -> Result<String, String> {
        match self {
            Partitioner::Default => Ok(format!("partition={}", record.partition.unwrap_or(0))),
            Partitioner::Field(names) => {
                let mut parts = Vec::with_capacity(names.len());
                for name in names {
                    let path: Vec<String> = name.split('.').map(str::to_string).collect();
                    let value = field(&record.value, &path)
                        .ok_or_else(|| format!("the value has no field {name} to partition by"))?;
                    let text = match value {
                        Value::Int8(n) => n.to_string(),
                        Value::Int16(n) => n.to_string(),
                        Value::Int32(n) => n.to_string(),
                        Value::Int64(n) => n.to_string(),
                        Value::String(s) => s.clone(),
                        Value::Boolean(b) => b.to_string(),
                        other => {
                            return Err(format!(
                                "field {name} cannot partition: only integers, strings and \
                                 booleans can, and it is {other:?}"
                            ));
                        }
                    };
                    parts.push(format!("{name}={text}"));
                }
                Ok(parts.join(delim))
            }
            Partitioner::Time {
                format,
                duration_ms,
                offset_ms,
                ..
            } => {
                let ts = timestamp.ok_or("the record has no time to partition by")?;
                // Floored in local time, formatted in local time (Confluent's
                // TimeBasedPartitioner.getPartition with a fixed-offset zone).
                let local = ts + offset_ms;
                let floored = local - local.rem_euclid(*duration_ms);
                Ok(format.format(floored))
            }
        }
    }
}

/// A (nested) field of a struct or schemaless map value.
fn field<'a>(value: &'a Value, path: &[String]) -> Option<&'a Value> {
    let mut current = value;
    for name in path {
        current = match current {
            Value::Struct(s) => s.get(name)?,
            Value::Map(entries) => entries
                .iter()
                .find(|(k, _)| k.as_str() == Some(name))
                .map(|(_, v)| v)?,
            _ => return None,
        };
    }
    Some(current)
}

/// Milliseconds of an ISO-8601 date-time (`2024-05-01T10:00:00Z`, with or without fraction
/// or offset; a date alone is its midnight UTC).
fn parse_time(text: &str) -> Option<i64> {
    const PATTERNS: [&str; 6] = [
        "yyyy-MM-dd'T'HH:mm:ss.SSSX",
        "yyyy-MM-dd'T'HH:mm:ssX",
        "yyyy-MM-dd'T'HH:mm:ss.SSS",
        "yyyy-MM-dd'T'HH:mm:ss",
        "yyyy-MM-dd HH:mm:ss",
        "yyyy-MM-dd",
    ];
    PATTERNS
        .iter()
        .filter_map(|p| Pattern::parse(p).ok())
        .find_map(|p| p.parse_ms(text.trim()))
}

/// A Joda `path.format` as the `SimpleDateFormat` subset Spate formats: Joda's `Y` (year of
/// era) is `y`; the other letters Confluent's docs use mean the same in both.
pub(crate) fn path_format(joda: &str) -> Result<Pattern, String> {
    let mut text = String::with_capacity(joda.len());
    let mut quoted = false;
    for c in joda.chars() {
        if c == '\'' {
            quoted = !quoted;
        }
        text.push(if c == 'Y' && !quoted { 'y' } else { c });
    }
    Pattern::parse(&text)
}

/// The fixed offset of a `timezone`, in milliseconds: UTC (also `GMT`, `Z`, `Etc/UTC`) or
/// `+HH:MM`/`-HH:MM` (also after `UTC`/`GMT`).
pub(crate) fn zone_offset(zone: &str) -> Result<i64, String> {
    let zone = zone.trim();
    let rest = ["Etc/UTC", "Etc/GMT", "UTC", "GMT"]
        .iter()
        .find_map(|p| zone.strip_prefix(p))
        .unwrap_or(zone);
    if rest.is_empty() || rest == "Z" {
        return Ok(0);
    }
    let parsed = (|| {
        let (sign, digits) = match rest.as_bytes().first()? {
            b'+' => (1, &rest[1..]),
            b'-' => (-1, &rest[1..]),
            _ => return None,
        };
        let (h, m) = match digits.split_once(':') {
            Some((h, m)) => (h.parse::<i64>().ok()?, m.parse::<i64>().ok()?),
            None if digits.len() == 4 => (digits[..2].parse().ok()?, digits[2..].parse().ok()?),
            None => (digits.parse().ok()?, 0),
        };
        (h <= 18 && m < 60).then_some(sign * (h * 3_600_000 + m * 60_000))
    })();
    parsed.ok_or_else(|| {
        format!(
            "time zone {zone:?} is not supported: Spate takes UTC or a fixed offset such as \
             +02:00 (it carries no time zone database)"
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::{Schema, SchemaType, Struct};

    fn record_with(value: Value, partition: i32, ts: i64) -> ConnectRecord {
        let mut record = ConnectRecord::new("t", None, value);
        record.partition = Some(partition);
        record.timestamp_ms = Some(ts);
        record
    }

    #[test]
    fn encodes_as_confluents_partitioners() {
        let schema = Schema::structure(
            None,
            vec![
                ("region", Schema::new(SchemaType::String)),
                ("n", Schema::new(SchemaType::Int32)),
                ("f", Schema::new(SchemaType::Float64)),
            ],
        );
        let mut value = Struct::new(schema);
        value.put("region", Value::String("eu".into()));
        value.put("n", Value::Int32(7));
        value.put("f", Value::Float64(1.5));
        let record = record_with(Value::Struct(value), 3, 1_714_557_600_000);
        assert_eq!(
            Partitioner::Default
                .encode(&record, None, "/")
                .expect("it succeeds"),
            "partition=3"
        );
        let by_fields = Partitioner::Field(vec!["region".into(), "n".into()]);
        assert_eq!(
            by_fields.encode(&record, None, "/").expect("it succeeds"),
            "region=eu/n=7"
        );
        let float = Partitioner::Field(vec!["f".into()]).encode(&record, None, "/");
        assert!(float.expect_err("it fails").contains("cannot partition"));
        let missing = Partitioner::Field(vec!["nope".into()]).encode(&record, None, "/");
        assert!(missing.expect_err("it fails").contains("no field nope"));

        // 2024-05-01T10:00:00Z, hourly, in UTC and at +02:00.
        let hourly = |offset_ms| Partitioner::Time {
            format: path_format("'year'=YYYY/'month'=MM/'day'=dd/'hour'=HH").expect("it succeeds"),
            duration_ms: 3_600_000,
            offset_ms,
            extractor: Extractor::Record,
        };
        let ts = hourly(0).timestamp(&record, 0).expect("it succeeds");
        assert_eq!(ts, Some(1_714_557_600_000));
        assert_eq!(
            hourly(0).encode(&record, ts, "/").expect("it succeeds"),
            "year=2024/month=05/day=01/hour=10"
        );
        assert_eq!(
            hourly(zone_offset("+02:00").expect("it succeeds"))
                .encode(&record, Some(1_714_557_600_000 + 59 * 60_000), "/")
                .expect("it succeeds"),
            "year=2024/month=05/day=01/hour=12"
        );
    }

    #[test]
    fn reads_time_zones_and_timestamp_fields() {
        assert_eq!(zone_offset("UTC"), Ok(0));
        assert_eq!(zone_offset("Etc/UTC"), Ok(0));
        assert_eq!(zone_offset("-05:30"), Ok(-(5 * 3_600_000 + 30 * 60_000)));
        assert_eq!(zone_offset("GMT+01:00"), Ok(3_600_000));
        assert!(
            zone_offset("America/Los_Angeles")
                .expect_err("it fails")
                .contains("fixed offset")
        );
        let value = Value::map_of([("ts", Value::String("2024-05-01T10:00:00Z".into()))]);
        let by_field = Partitioner::Time {
            format: path_format("YYYY").expect("it succeeds"),
            duration_ms: 1,
            offset_ms: 0,
            extractor: Extractor::RecordField(vec!["ts".into()]),
        };
        assert_eq!(
            by_field
                .timestamp(&record_with(value, 0, 0), 0)
                .expect("it succeeds"),
            Some(1_714_557_600_000)
        );
    }
}
