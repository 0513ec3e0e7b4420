//! Per-topic log settings under Kafka's own names (`retention.ms`, `cleanup.policy`, ...).
//!
//! Admin tools read and alter these through DescribeConfigs and IncrementalAlterConfigs, so the
//! names, types and defaults follow Apache Kafka's topic configs. Two defaults differ, on purpose:
//! `flush.messages` is 1 (an acknowledged write is on disk; group commit keeps it cheap) where
//! Kafka leaves flushing to the page cache.

use std::collections::BTreeMap;

/// A config value's type, as Kafka reports it in DescribeConfigs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfigType {
    /// true/false.
    Boolean,
    /// Free text or one of a set.
    String,
    /// 32-bit integer.
    Int,
    /// 64-bit integer.
    Long,
    /// Floating point.
    Double,
    /// Comma-separated list.
    List,
}

impl ConfigType {
    /// Kafka's DescribeConfigs type id.
    pub fn kafka_id(self) -> i8 {
        match self {
            ConfigType::Boolean => 1,
            ConfigType::String => 2,
            ConfigType::Int => 3,
            ConfigType::Long => 5,
            ConfigType::Double => 6,
            ConfigType::List => 7,
        }
    }
}

/// One topic config: its name, type, default and documentation.
#[derive(Debug, Clone, Copy)]
pub struct ConfigDef {
    /// Kafka's name.
    pub name: &'static str,
    /// Value type.
    pub kind: ConfigType,
    /// Default as a string.
    pub default: &'static str,
    /// One line for DescribeConfigs' documentation field.
    pub doc: &'static str,
}

const LONG_MAX: &str = "9223372036854775807";

/// Every topic config Spate accepts. Values for names outside this table are refused.
pub const TOPIC_CONFIGS: &[ConfigDef] = &[
    ConfigDef {
        name: "cleanup.policy",
        kind: ConfigType::List,
        default: "delete",
        doc: "delete, compact, or both: how old segments are discarded",
    },
    ConfigDef {
        name: "compression.type",
        kind: ConfigType::String,
        default: "producer",
        doc: "producer keeps batches as sent; other codecs are accepted and stored as sent",
    },
    ConfigDef {
        name: "confluent.key.schema.validation",
        kind: ConfigType::Boolean,
        default: "false",
        doc: "refuse records whose key lacks a schema id registered for the key subject (Confluent Server's name)",
    },
    ConfigDef {
        name: "confluent.key.subject.name.strategy",
        kind: ConfigType::String,
        default: "io.confluent.kafka.serializers.subject.TopicNameStrategy",
        doc: "how the key subject is named: TopicNameStrategy, RecordNameStrategy or TopicRecordNameStrategy",
    },
    ConfigDef {
        name: "confluent.value.schema.validation",
        kind: ConfigType::Boolean,
        default: "false",
        doc: "refuse records whose value lacks a schema id registered for the value subject (Confluent Server's name)",
    },
    ConfigDef {
        name: "confluent.value.subject.name.strategy",
        kind: ConfigType::String,
        default: "io.confluent.kafka.serializers.subject.TopicNameStrategy",
        doc: "how the value subject is named: TopicNameStrategy, RecordNameStrategy or TopicRecordNameStrategy",
    },
    ConfigDef {
        name: "delete.retention.ms",
        kind: ConfigType::Long,
        default: "86400000",
        doc: "how long tombstones are kept in compacted topics",
    },
    ConfigDef {
        name: "file.delete.delay.ms",
        kind: ConfigType::Long,
        default: "60000",
        doc: "delay before a deleted segment's file is removed",
    },
    ConfigDef {
        name: "flush.messages",
        kind: ConfigType::Long,
        default: "1",
        doc: "fsync after this many messages; 1 (the default) acknowledges only fsync'd writes, with group commit",
    },
    ConfigDef {
        name: "flush.ms",
        kind: ConfigType::Long,
        default: LONG_MAX,
        doc: "fsync at least this often when flush.messages is above 1",
    },
    ConfigDef {
        name: "index.interval.bytes",
        kind: ConfigType::Int,
        default: "4096",
        doc: "bytes between entries of the sparse offset and time index",
    },
    ConfigDef {
        name: "max.compaction.lag.ms",
        kind: ConfigType::Long,
        default: LONG_MAX,
        doc: "longest time a record may stay uncompacted",
    },
    ConfigDef {
        name: "max.message.bytes",
        kind: ConfigType::Int,
        default: "1048588",
        doc: "largest record batch the topic accepts",
    },
    ConfigDef {
        name: "message.timestamp.after.max.ms",
        kind: ConfigType::Long,
        default: "3600000",
        doc: "how far in the future a CreateTime timestamp may be",
    },
    ConfigDef {
        name: "message.timestamp.before.max.ms",
        kind: ConfigType::Long,
        default: LONG_MAX,
        doc: "how far in the past a CreateTime timestamp may be",
    },
    ConfigDef {
        name: "message.timestamp.type",
        kind: ConfigType::String,
        default: "CreateTime",
        doc: "CreateTime or LogAppendTime",
    },
    ConfigDef {
        name: "min.cleanable.dirty.ratio",
        kind: ConfigType::Double,
        default: "0.5",
        doc: "share of uncompacted bytes that triggers compaction",
    },
    ConfigDef {
        name: "min.compaction.lag.ms",
        kind: ConfigType::Long,
        default: "0",
        doc: "shortest time a record stays uncompacted",
    },
    ConfigDef {
        name: "min.insync.replicas",
        kind: ConfigType::Int,
        default: "1",
        doc: "accepted for compatibility; a single node is always in sync",
    },
    ConfigDef {
        name: "preallocate",
        kind: ConfigType::Boolean,
        default: "false",
        doc: "accepted for compatibility; segments are not preallocated",
    },
    ConfigDef {
        name: "retention.bytes",
        kind: ConfigType::Long,
        default: "-1",
        doc: "largest size per partition before old segments are deleted; -1 for no limit",
    },
    ConfigDef {
        name: "retention.ms",
        kind: ConfigType::Long,
        default: "604800000",
        doc: "age after which segments are deleted; -1 for no limit",
    },
    ConfigDef {
        name: "spate.schema.validation.decode",
        kind: ConfigType::Boolean,
        default: "false",
        doc: "with schema validation on, also decode each key or value against its schema",
    },
    ConfigDef {
        name: "segment.bytes",
        kind: ConfigType::Int,
        default: "1073741824",
        doc: "size at which a new segment is started",
    },
    ConfigDef {
        name: "segment.index.bytes",
        kind: ConfigType::Int,
        default: "10485760",
        doc: "accepted for compatibility; indexes grow as needed",
    },
    ConfigDef {
        name: "segment.jitter.ms",
        kind: ConfigType::Long,
        default: "0",
        doc: "accepted for compatibility",
    },
    ConfigDef {
        name: "segment.ms",
        kind: ConfigType::Long,
        default: "604800000",
        doc: "age at which a new segment is started",
    },
    ConfigDef {
        name: "unclean.leader.election.enable",
        kind: ConfigType::Boolean,
        default: "false",
        doc: "accepted for compatibility; a single node has no followers",
    },
];

/// Looks up a topic config definition by Kafka name.
pub fn config_def(name: &str) -> Option<&'static ConfigDef> {
    TOPIC_CONFIGS.iter().find(|def| def.name == name)
}

/// An invalid config name or value.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum ConfigError {
    /// A name Spate does not know.
    #[error("unknown topic config {name}")]
    UnknownConfig {
        /// The name as given.
        name: String,
    },
    /// A value that does not parse or is out of range.
    #[error("invalid value {value:?} for config {name}: {reason}")]
    InvalidValue {
        /// Config name.
        name: String,
        /// Value as given.
        value: String,
        /// What is wrong.
        reason: String,
    },
}

/// How a segment's timestamps are set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimestampType {
    /// Producer's timestamps are kept.
    CreateTime,
    /// The broker stamps its clock at append.
    LogAppendTime,
}

/// The typed settings the log engine acts on.
#[derive(Debug, Clone, PartialEq)]
pub struct LogConfig {
    /// Delete old segments by time/size.
    pub delete: bool,
    /// Keep only the last record per key.
    pub compact: bool,
    /// Segment age limit, or `None` for no limit.
    pub retention_ms: Option<i64>,
    /// Partition size limit, or `None` for no limit.
    pub retention_bytes: Option<u64>,
    /// Roll the segment at this size.
    pub segment_bytes: u64,
    /// Roll the segment at this age.
    pub segment_ms: i64,
    /// Largest batch accepted.
    pub max_message_bytes: usize,
    /// Which timestamp records carry.
    pub timestamp_type: TimestampType,
    /// Allowed past skew of CreateTime timestamps.
    pub timestamp_before_max_ms: i64,
    /// Allowed future skew of CreateTime timestamps.
    pub timestamp_after_max_ms: i64,
    /// fsync after this many messages; 1 means every acknowledged write is fsync'd.
    pub flush_messages: i64,
    /// fsync at least this often when `flush_messages` > 1.
    pub flush_ms: i64,
    /// Bytes between index entries.
    pub index_interval_bytes: u64,
    /// How long tombstones survive compaction.
    pub delete_retention_ms: i64,
    /// Records younger than this are not compacted.
    pub min_compaction_lag_ms: i64,
    /// Records older than this are compacted regardless of the dirty ratio.
    pub max_compaction_lag_ms: i64,
    /// Dirty share that triggers compaction.
    pub min_cleanable_dirty_ratio: f64,
    /// Delay before removing deleted segment files.
    pub file_delete_delay_ms: i64,
    /// Schema validation on produce (`confluent.*.schema.validation`).
    pub schema_validation: SchemaValidation,
}

/// How a record's key or value subject is named (Confluent's subject name strategies).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SubjectNameStrategy {
    /// `<topic>-key` / `<topic>-value`.
    Topic,
    /// The record's fully-qualified name.
    Record,
    /// `<topic>-<record name>`.
    TopicRecord,
}

impl SubjectNameStrategy {
    /// Parses a strategy by class name, with or without Confluent's package.
    pub fn parse(value: &str) -> Option<SubjectNameStrategy> {
        let class = value
            .trim()
            .strip_prefix("io.confluent.kafka.serializers.subject.")
            .unwrap_or(value.trim());
        match class {
            "TopicNameStrategy" => Some(SubjectNameStrategy::Topic),
            "RecordNameStrategy" => Some(SubjectNameStrategy::Record),
            "TopicRecordNameStrategy" => Some(SubjectNameStrategy::TopicRecord),
            _ => None,
        }
    }
}

/// Which parts of produced records must carry a registered schema id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SchemaValidation {
    /// Keys are checked, with this strategy.
    pub key: Option<SubjectNameStrategy>,
    /// Values are checked, with this strategy.
    pub value: Option<SubjectNameStrategy>,
    /// Payloads are also decoded against their schema.
    pub decode: bool,
}

impl SchemaValidation {
    /// Whether anything is checked.
    pub fn enabled(&self) -> bool {
        self.key.is_some() || self.value.is_some()
    }
}

impl LogConfig {
    /// Whether each acknowledged write must be fsync'd before it is acknowledged and visible.
    pub fn sync_every_write(&self) -> bool {
        self.flush_messages <= 1
    }

    /// Builds the typed config from defaults overlaid with `overrides` (Kafka names to values).
    pub fn resolve(
        defaults: &BTreeMap<String, String>,
        overrides: &BTreeMap<String, String>,
    ) -> Result<LogConfig, ConfigError> {
        let get = |name: &str| -> String {
            overrides
                .get(name)
                .or_else(|| defaults.get(name))
                .cloned()
                .or_else(|| config_def(name).map(|def| def.default.to_string()))
                .unwrap_or_default()
        };
        for (name, value) in defaults.iter().chain(overrides.iter()) {
            validate(name, value)?;
        }
        let policy = get("cleanup.policy");
        let policies: Vec<&str> = policy.split(',').map(str::trim).collect();
        let retention_ms = parse_long("retention.ms", &get("retention.ms"))?;
        let retention_bytes = parse_long("retention.bytes", &get("retention.bytes"))?;
        Ok(LogConfig {
            delete: policies.contains(&"delete"),
            compact: policies.contains(&"compact"),
            retention_ms: (retention_ms >= 0).then_some(retention_ms),
            retention_bytes: (retention_bytes >= 0).then_some(retention_bytes as u64),
            segment_bytes: parse_long("segment.bytes", &get("segment.bytes"))? as u64,
            segment_ms: parse_long("segment.ms", &get("segment.ms"))?,
            max_message_bytes: parse_long("max.message.bytes", &get("max.message.bytes"))? as usize,
            timestamp_type: if get("message.timestamp.type") == "LogAppendTime" {
                TimestampType::LogAppendTime
            } else {
                TimestampType::CreateTime
            },
            timestamp_before_max_ms: parse_long(
                "message.timestamp.before.max.ms",
                &get("message.timestamp.before.max.ms"),
            )?,
            timestamp_after_max_ms: parse_long(
                "message.timestamp.after.max.ms",
                &get("message.timestamp.after.max.ms"),
            )?,
            flush_messages: parse_long("flush.messages", &get("flush.messages"))?,
            flush_ms: parse_long("flush.ms", &get("flush.ms"))?,
            index_interval_bytes: parse_long("index.interval.bytes", &get("index.interval.bytes"))?
                as u64,
            delete_retention_ms: parse_long("delete.retention.ms", &get("delete.retention.ms"))?,
            min_compaction_lag_ms: parse_long(
                "min.compaction.lag.ms",
                &get("min.compaction.lag.ms"),
            )?,
            max_compaction_lag_ms: parse_long(
                "max.compaction.lag.ms",
                &get("max.compaction.lag.ms"),
            )?,
            min_cleanable_dirty_ratio: get("min.cleanable.dirty.ratio").parse().unwrap_or(0.5),
            file_delete_delay_ms: parse_long("file.delete.delay.ms", &get("file.delete.delay.ms"))?,
            schema_validation: SchemaValidation {
                key: get("confluent.key.schema.validation")
                    .eq_ignore_ascii_case("true")
                    .then(|| {
                        SubjectNameStrategy::parse(&get("confluent.key.subject.name.strategy"))
                    })
                    .flatten(),
                value: get("confluent.value.schema.validation")
                    .eq_ignore_ascii_case("true")
                    .then(|| {
                        SubjectNameStrategy::parse(&get("confluent.value.subject.name.strategy"))
                    })
                    .flatten(),
                decode: get("spate.schema.validation.decode").eq_ignore_ascii_case("true"),
            },
        })
    }
}

impl Default for LogConfig {
    fn default() -> LogConfig {
        // The built-in defaults always resolve.
        LogConfig::resolve(&BTreeMap::new(), &BTreeMap::new()).expect("built-in defaults are valid")
    }
}

fn parse_long(name: &str, value: &str) -> Result<i64, ConfigError> {
    value
        .trim()
        .parse::<i64>()
        .map_err(|_| ConfigError::InvalidValue {
            name: name.to_string(),
            value: value.to_string(),
            reason: "expected an integer".to_string(),
        })
}

/// Checks one config name and value the way Kafka's validators do.
pub fn validate(name: &str, value: &str) -> Result<(), ConfigError> {
    let def = config_def(name).ok_or_else(|| ConfigError::UnknownConfig {
        name: name.to_string(),
    })?;
    let bad = |reason: &str| ConfigError::InvalidValue {
        name: name.to_string(),
        value: value.to_string(),
        reason: reason.to_string(),
    };
    let trimmed = value.trim();
    match def.kind {
        ConfigType::Boolean => {
            if !trimmed.eq_ignore_ascii_case("true") && !trimmed.eq_ignore_ascii_case("false") {
                return Err(bad("expected true or false"));
            }
        }
        ConfigType::Int | ConfigType::Long => {
            let parsed = trimmed
                .parse::<i64>()
                .map_err(|_| bad("expected an integer"))?;
            if def.kind == ConfigType::Int && i32::try_from(parsed).is_err() {
                return Err(bad("out of range for a 32-bit integer"));
            }
            let min = match name {
                "retention.ms" | "retention.bytes" => -1,
                "segment.bytes" => 14,
                "max.message.bytes" => 0,
                "segment.ms" | "flush.messages" | "flush.ms" | "min.insync.replicas" => 1,
                _ => 0,
            };
            if parsed < min {
                return Err(bad(&format!("must be at least {min}")));
            }
        }
        ConfigType::Double => {
            let parsed = trimmed
                .parse::<f64>()
                .map_err(|_| bad("expected a number"))?;
            if !(0.0..=1.0).contains(&parsed) {
                return Err(bad("must be between 0 and 1"));
            }
        }
        ConfigType::List => {
            for item in trimmed.split(',').map(str::trim) {
                if item != "delete" && item != "compact" {
                    return Err(bad("expected delete, compact, or both"));
                }
            }
        }
        ConfigType::String => {
            let allowed: &[&str] = match name {
                "message.timestamp.type" => &["CreateTime", "LogAppendTime"],
                "compression.type" => {
                    &["producer", "uncompressed", "gzip", "snappy", "lz4", "zstd"]
                }
                "confluent.key.subject.name.strategy" | "confluent.value.subject.name.strategy" => {
                    if SubjectNameStrategy::parse(trimmed).is_none() {
                        return Err(bad(
                            "expected TopicNameStrategy, RecordNameStrategy or TopicRecordNameStrategy",
                        ));
                    }
                    &[]
                }
                _ => &[],
            };
            if !allowed.is_empty() && !allowed.contains(&trimmed) {
                return Err(bad(&format!("expected one of {}", allowed.join(", "))));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn defaults_resolve_to_durable_delete_policy() {
        let config = LogConfig::default();
        assert!(config.delete && !config.compact);
        assert!(config.sync_every_write());
        assert_eq!(config.retention_ms, Some(604_800_000));
        assert_eq!(config.retention_bytes, None);
        assert_eq!(config.max_message_bytes, 1_048_588);
    }

    #[test]
    fn overrides_win_over_broker_defaults() {
        let defaults = map(&[("retention.ms", "1000")]);
        let overrides = map(&[("retention.ms", "-1"), ("cleanup.policy", "compact,delete")]);
        let config = LogConfig::resolve(&defaults, &overrides).expect("valid");
        assert_eq!(config.retention_ms, None);
        assert!(config.compact && config.delete);
    }

    #[test]
    fn invalid_values_name_the_config() {
        for (name, value) in [
            ("retention.ms", "soon"),
            ("cleanup.policy", "shred"),
            ("message.timestamp.type", "Now"),
            ("max.message.bytes", "99999999999"),
            ("min.cleanable.dirty.ratio", "2"),
            ("segment.bytes", "1"),
        ] {
            let err = validate(name, value).expect_err(name);
            assert!(err.to_string().contains(name), "{err}");
        }
        assert!(matches!(
            validate("no.such.config", "1"),
            Err(ConfigError::UnknownConfig { .. })
        ));
    }
}
