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
    /// One line for DescribeConfigs' documentation field; for a config Spate does not act on it
    /// starts with "no effect on Spate" and says why.
    pub doc: &'static str,
    /// Whether Spate acts on the value. Configs that do not apply to a single node (replication
    /// throttles, tiered storage, preallocation) are accepted, validated, stored and described
    /// like Kafka's, and their documentation says they have no effect.
    pub applies: bool,
    /// The broker config that sets the default for topics without an override (Kafka's
    /// `ServerTopicConfigSynonyms`, first synonym); empty when there is none.
    pub broker_synonym: &'static str,
    /// Kafka's internal configs (`internal.segment.bytes`): accepted, described only when set.
    pub internal: bool,
}

const LONG_MAX: &str = "9223372036854775807";

const fn def(
    name: &'static str,
    kind: ConfigType,
    default: &'static str,
    broker_synonym: &'static str,
    doc: &'static str,
) -> ConfigDef {
    ConfigDef {
        name,
        kind,
        default,
        doc,
        applies: true,
        broker_synonym,
        internal: false,
    }
}

const fn inert(
    name: &'static str,
    kind: ConfigType,
    default: &'static str,
    broker_synonym: &'static str,
    doc: &'static str,
) -> ConfigDef {
    ConfigDef {
        name,
        kind,
        default,
        doc,
        applies: false,
        broker_synonym,
        internal: false,
    }
}

use ConfigType::{Boolean, Double, Int, List, Long, String as Str};

/// Every topic config Spate accepts: all of Apache Kafka 4.x's (`LogConfig`, sorted by name)
/// plus Confluent's schema validation configs and Spate's own. Names outside this table are
/// refused, as Kafka refuses them.
pub const TOPIC_CONFIGS: &[ConfigDef] = &[
    def(
        "cleanup.policy",
        List,
        "delete",
        "log.cleanup.policy",
        "delete, compact, both, or empty (keep everything): how old segments are discarded",
    ),
    inert(
        "compression.gzip.level",
        Int,
        "-1",
        "compression.gzip.level",
        "no effect on Spate: batches are stored as the producer compressed them (Kafka: gzip level when compression.type=gzip recompresses)",
    ),
    inert(
        "compression.lz4.level",
        Int,
        "9",
        "compression.lz4.level",
        "no effect on Spate: batches are stored as the producer compressed them (Kafka: lz4 level when compression.type=lz4 recompresses)",
    ),
    inert(
        "compression.type",
        Str,
        "producer",
        "compression.type",
        "no effect on Spate: batches are stored as the producer compressed them, whatever the value (Kafka recompresses to this codec)",
    ),
    inert(
        "compression.zstd.level",
        Int,
        "3",
        "compression.zstd.level",
        "no effect on Spate: batches are stored as the producer compressed them (Kafka: zstd level when compression.type=zstd recompresses)",
    ),
    def(
        "confluent.key.schema.validation",
        Boolean,
        "false",
        "",
        "refuse records whose key lacks a schema id registered for the key subject (Confluent Server's name)",
    ),
    def(
        "confluent.key.subject.name.strategy",
        Str,
        "io.confluent.kafka.serializers.subject.TopicNameStrategy",
        "",
        "how the key subject is named: TopicNameStrategy, RecordNameStrategy or TopicRecordNameStrategy",
    ),
    def(
        "confluent.value.schema.validation",
        Boolean,
        "false",
        "",
        "refuse records whose value lacks a schema id registered for the value subject (Confluent Server's name)",
    ),
    def(
        "confluent.value.subject.name.strategy",
        Str,
        "io.confluent.kafka.serializers.subject.TopicNameStrategy",
        "",
        "how the value subject is named: TopicNameStrategy, RecordNameStrategy or TopicRecordNameStrategy",
    ),
    def(
        "delete.retention.ms",
        Long,
        "86400000",
        "log.cleaner.delete.retention.ms",
        "how long tombstones are kept in compacted topics",
    ),
    inert(
        "file.delete.delay.ms",
        Long,
        "60000",
        "log.segment.delete.delay.ms",
        "no effect on Spate: a deleted segment's files are removed at once (Kafka waits this long)",
    ),
    def(
        "flush.messages",
        Long,
        "1",
        "log.flush.interval.messages",
        "fsync after this many messages; 1 (the default) acknowledges only fsync'd writes, with group commit",
    ),
    def(
        "flush.ms",
        Long,
        LONG_MAX,
        "log.flush.interval.ms",
        "fsync at least this often when flush.messages is above 1",
    ),
    inert(
        "follower.replication.throttled.replicas",
        List,
        "",
        "",
        "no effect on Spate: a single node has no followers to throttle (Kafka: replicas whose replication is throttled on the follower side)",
    ),
    def(
        "index.interval.bytes",
        Int,
        "4096",
        "log.index.interval.bytes",
        "bytes between entries of the sparse offset and time index",
    ),
    inert(
        "leader.replication.throttled.replicas",
        List,
        "",
        "",
        "no effect on Spate: a single node has no followers to throttle (Kafka: replicas whose replication is throttled on the leader side)",
    ),
    inert(
        "local.retention.bytes",
        Long,
        "-2",
        "log.local.retention.bytes",
        "no effect on Spate: there is no tiered storage (Kafka: local size kept before only the remote copy remains; -2 follows retention.bytes)",
    ),
    inert(
        "local.retention.ms",
        Long,
        "-2",
        "log.local.retention.ms",
        "no effect on Spate: there is no tiered storage (Kafka: local age kept before only the remote copy remains; -2 follows retention.ms)",
    ),
    def(
        "max.compaction.lag.ms",
        Long,
        LONG_MAX,
        "log.cleaner.max.compaction.lag.ms",
        "longest time a record may stay uncompacted",
    ),
    def(
        "max.message.bytes",
        Int,
        "1048588",
        "message.max.bytes",
        "largest record batch the topic accepts",
    ),
    def(
        "message.timestamp.after.max.ms",
        Long,
        "3600000",
        "log.message.timestamp.after.max.ms",
        "how far in the future a CreateTime timestamp may be",
    ),
    def(
        "message.timestamp.before.max.ms",
        Long,
        LONG_MAX,
        "log.message.timestamp.before.max.ms",
        "how far in the past a CreateTime timestamp may be",
    ),
    def(
        "message.timestamp.type",
        Str,
        "CreateTime",
        "log.message.timestamp.type",
        "CreateTime or LogAppendTime",
    ),
    def(
        "min.cleanable.dirty.ratio",
        Double,
        "0.5",
        "log.cleaner.min.cleanable.ratio",
        "share of uncompacted bytes that triggers compaction",
    ),
    def(
        "min.compaction.lag.ms",
        Long,
        "0",
        "log.cleaner.min.compaction.lag.ms",
        "shortest time a record stays uncompacted",
    ),
    def(
        "min.insync.replicas",
        Int,
        "1",
        "min.insync.replicas",
        "replicas that must have an acks=all write; Spate has one, so above 1 acks=all produces fail with NOT_ENOUGH_REPLICAS, as in Kafka",
    ),
    inert(
        "preallocate",
        Boolean,
        "false",
        "log.preallocate",
        "no effect on Spate: segment files grow as written (Kafka preallocates the file)",
    ),
    inert(
        "remote.copy.lag.bytes",
        Long,
        "0",
        "",
        "no effect on Spate: there is no tiered storage (Kafka 4.4: bytes a segment waits before its remote copy)",
    ),
    inert(
        "remote.copy.lag.ms",
        Long,
        "0",
        "",
        "no effect on Spate: there is no tiered storage (Kafka 4.4: time a segment waits before its remote copy)",
    ),
    inert(
        "remote.log.copy.disable",
        Boolean,
        "false",
        "",
        "no effect on Spate: there is no tiered storage (Kafka: stop copying segments to remote storage)",
    ),
    inert(
        "remote.log.delete.on.disable",
        Boolean,
        "false",
        "",
        "no effect on Spate: there is no tiered storage (Kafka: delete remote data when remote storage is turned off)",
    ),
    inert(
        "remote.storage.enable",
        Boolean,
        "false",
        "",
        "no effect on Spate: there is no tiered storage, so true is refused as by a Kafka broker with remote.log.storage.system.enable=false",
    ),
    def(
        "retention.bytes",
        Long,
        "-1",
        "log.retention.bytes",
        "largest size per partition before old segments are deleted; -1 for no limit",
    ),
    def(
        "retention.ms",
        Long,
        "604800000",
        "log.retention.ms",
        "age after which segments are deleted; -1 for no limit",
    ),
    def(
        "segment.bytes",
        Int,
        "1073741824",
        "log.segment.bytes",
        "size at which a new segment is started (at least 1 MiB, as in Kafka 4)",
    ),
    inert(
        "segment.index.bytes",
        Int,
        "10485760",
        "log.index.size.max.bytes",
        "no effect on Spate: indexes grow as needed (Kafka: preallocated size of a segment's index)",
    ),
    inert(
        "segment.jitter.ms",
        Long,
        "0",
        "log.roll.jitter.ms",
        "no effect on Spate: segments roll at segment.ms exactly (Kafka: random jitter subtracted from segment.ms)",
    ),
    def(
        "segment.ms",
        Long,
        "604800000",
        "log.roll.ms",
        "age at which a new segment is started",
    ),
    def(
        "spate.mirror.offsets",
        Str,
        "none",
        "",
        "preserve makes the topic a read-only mirror: only records carrying their source offset (the spate.source.offset header, as the mirror connector sends them) are appended, each at that offset; none (the default) is a normal topic, and setting it promotes a mirror",
    ),
    def(
        "spate.schema.validation.decode",
        Boolean,
        "false",
        "",
        "with schema validation on, also decode each key or value against its schema",
    ),
    inert(
        "unclean.leader.election.enable",
        Boolean,
        "false",
        "unclean.leader.election.enable",
        "no effect on Spate: a single node has no out-of-sync replica to elect (Kafka: allow electing one, losing data)",
    ),
    ConfigDef {
        name: "internal.segment.bytes",
        kind: Int,
        default: "",
        doc: "segment size below segment.bytes' 1 MiB floor, for tests (Kafka's internal config of the same name)",
        applies: true,
        broker_synonym: "",
        internal: true,
    },
];

/// Looks up a topic config definition by Kafka name.
pub fn config_def(name: &str) -> Option<&'static ConfigDef> {
    TOPIC_CONFIGS.iter().find(|def| def.name == name)
}

/// The topic config whose default a broker config sets (`log.retention.ms` → `retention.ms`).
pub fn topic_config_for_broker_synonym(broker_name: &str) -> Option<&'static ConfigDef> {
    TOPIC_CONFIGS
        .iter()
        .find(|def| !def.broker_synonym.is_empty() && def.broker_synonym == broker_name)
}

/// An invalid config name or value. The messages are Kafka's own (`ConfigException`,
/// `InvalidConfigurationException`), so what users search for finds Kafka's answers too.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum ConfigError {
    /// A name Spate does not know.
    #[error("Unknown topic config name: {name}")]
    UnknownConfig {
        /// The name as given.
        name: String,
    },
    /// A value that does not parse or is out of range.
    #[error("Invalid value {value} for configuration {name}: {reason}")]
    InvalidValue {
        /// Config name.
        name: String,
        /// Value as given.
        value: String,
        /// What is wrong.
        reason: String,
    },
    /// Values that are valid one by one but not together.
    #[error("{reason}")]
    Conflict {
        /// What conflicts.
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
    /// Roll the segment at this size (`internal.segment.bytes` if set, else `segment.bytes`).
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
    /// Replicas that must have an acks=all write (`min.insync.replicas`); a single node has
    /// one, so a larger value fails acks=all produces with NOT_ENOUGH_REPLICAS.
    pub min_insync_replicas: i32,
    /// Schema validation on produce (`confluent.*.schema.validation`).
    pub schema_validation: SchemaValidation,
    /// A read-only mirror topic (`spate.mirror.offsets=preserve`): records are appended at the
    /// source offsets they carry, and records without one are refused.
    pub mirror_offsets: bool,
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
        let long = |name: &str| parse_long(name, &get(name));
        let min_lag = long("min.compaction.lag.ms")?;
        let max_lag = long("max.compaction.lag.ms")?;
        if min_lag > max_lag {
            return Err(ConfigError::Conflict {
                reason: format!(
                    "conflict topic config setting min.compaction.lag.ms ({min_lag}) > max.compaction.lag.ms ({max_lag})"
                ),
            });
        }
        if overrides
            .get("remote.storage.enable")
            .is_some_and(|v| v.trim().eq_ignore_ascii_case("true"))
        {
            // Spate has no tiered storage: a Kafka broker with
            // remote.log.storage.system.enable=false answers the same.
            return Err(ConfigError::Conflict {
                reason: "Tiered Storage functionality is disabled in the broker. Topic cannot be configured with remote log storage.".into(),
            });
        }
        let policy = get("cleanup.policy");
        let policies: Vec<String> = policy
            .split(',')
            .map(|p| p.trim().to_ascii_lowercase())
            .collect();
        let retention_ms = long("retention.ms")?;
        let retention_bytes = long("retention.bytes")?;
        let internal_segment_bytes = get("internal.segment.bytes");
        let segment_bytes = if internal_segment_bytes.trim().is_empty() {
            long("segment.bytes")?
        } else {
            parse_long("internal.segment.bytes", &internal_segment_bytes)?
        };
        Ok(LogConfig {
            delete: policies.iter().any(|p| p == "delete"),
            compact: policies.iter().any(|p| p == "compact"),
            retention_ms: (retention_ms >= 0).then_some(retention_ms),
            retention_bytes: (retention_bytes >= 0).then_some(retention_bytes as u64),
            segment_bytes: segment_bytes as u64,
            segment_ms: long("segment.ms")?,
            max_message_bytes: long("max.message.bytes")? as usize,
            timestamp_type: if get("message.timestamp.type").trim() == "LogAppendTime" {
                TimestampType::LogAppendTime
            } else {
                TimestampType::CreateTime
            },
            timestamp_before_max_ms: long("message.timestamp.before.max.ms")?,
            timestamp_after_max_ms: long("message.timestamp.after.max.ms")?,
            flush_messages: long("flush.messages")?,
            flush_ms: long("flush.ms")?,
            index_interval_bytes: long("index.interval.bytes")? as u64,
            delete_retention_ms: long("delete.retention.ms")?,
            min_compaction_lag_ms: min_lag,
            max_compaction_lag_ms: max_lag,
            min_cleanable_dirty_ratio: get("min.cleanable.dirty.ratio")
                .trim()
                .parse()
                .unwrap_or(0.5),
            file_delete_delay_ms: long("file.delete.delay.ms")?,
            min_insync_replicas: i32::try_from(long("min.insync.replicas")?).unwrap_or(i32::MAX),
            schema_validation: SchemaValidation {
                key: get("confluent.key.schema.validation")
                    .trim()
                    .eq_ignore_ascii_case("true")
                    .then(|| {
                        SubjectNameStrategy::parse(&get("confluent.key.subject.name.strategy"))
                    })
                    .flatten(),
                value: get("confluent.value.schema.validation")
                    .trim()
                    .eq_ignore_ascii_case("true")
                    .then(|| {
                        SubjectNameStrategy::parse(&get("confluent.value.subject.name.strategy"))
                    })
                    .flatten(),
                decode: get("spate.schema.validation.decode")
                    .trim()
                    .eq_ignore_ascii_case("true"),
            },
            mirror_offsets: get("spate.mirror.offsets").trim() == "preserve",
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
            reason: "Not a number of type LONG".to_string(),
        })
}

/// Kafka's range of an integer topic config: (at least, at most).
fn int_range(name: &str) -> (Option<i64>, Option<i64>) {
    match name {
        "segment.bytes" => (Some(1_048_576), None),
        "internal.segment.bytes" => (Some(14), None),
        "segment.index.bytes" => (Some(4), None),
        "segment.ms" | "flush.messages" | "min.insync.replicas" | "max.compaction.lag.ms" => {
            (Some(1), None)
        }
        "retention.ms" | "remote.copy.lag.ms" | "remote.copy.lag.bytes" => (Some(-1), None),
        "local.retention.ms" | "local.retention.bytes" => (Some(-2), None),
        "retention.bytes" => (None, None),
        "compression.lz4.level" => (Some(1), Some(17)),
        "compression.zstd.level" => (Some(-131_072), Some(22)),
        // compression.gzip.level has its own rule (1..=9 or -1), checked below.
        "compression.gzip.level" => (None, None),
        _ => (Some(0), None),
    }
}

/// Checks one config name and value the way Kafka's `ConfigDef` validators do.
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
                return Err(bad("Expected value to be either true or false"));
            }
        }
        ConfigType::Int | ConfigType::Long => {
            if def.internal && trimmed.is_empty() {
                return Ok(());
            }
            let type_name = if def.kind == ConfigType::Int {
                "Not a number of type INT"
            } else {
                "Not a number of type LONG"
            };
            let parsed = trimmed.parse::<i64>().map_err(|_| bad(type_name))?;
            if def.kind == ConfigType::Int && i32::try_from(parsed).is_err() {
                return Err(bad(type_name));
            }
            if name == "compression.gzip.level" && parsed != -1 && !(1..=9).contains(&parsed) {
                return Err(bad("Value must be between 1 and 9 or equal to -1"));
            }
            let (min, max) = int_range(name);
            if let Some(min) = min
                && parsed < min
            {
                return Err(bad(&format!("Value must be at least {min}")));
            }
            if let Some(max) = max
                && parsed > max
            {
                return Err(bad(&format!("Value must be no more than {max}")));
            }
        }
        ConfigType::Double => {
            let parsed = trimmed
                .parse::<f64>()
                .map_err(|_| bad("Not a number of type DOUBLE"))?;
            if !(0.0..=1.0).contains(&parsed) {
                return Err(bad(if parsed < 0.0 {
                    "Value must be at least 0"
                } else {
                    "Value must be no more than 1"
                }));
            }
        }
        ConfigType::List => match name {
            "cleanup.policy" => {
                for item in trimmed.split(',').map(str::trim).filter(|i| !i.is_empty()) {
                    if !item.eq_ignore_ascii_case("delete") && !item.eq_ignore_ascii_case("compact")
                    {
                        return Err(bad("String must be one of: compact, delete"));
                    }
                }
            }
            _ => {
                // leader/follower.replication.throttled.replicas (Kafka's
                // ThrottledReplicaListValidator).
                let valid = trimmed == "*"
                    || trimmed
                        .split(',')
                        .map(str::trim)
                        .filter(|i| !i.is_empty())
                        .all(|item| {
                            item.split_once(':').is_some_and(|(p, b)| {
                                p.trim().parse::<u32>().is_ok() && b.trim().parse::<u32>().is_ok()
                            })
                        });
                if !valid {
                    return Err(bad(
                        "must be the literal '*' or a list of replicas in the following format: [partitionId]:[brokerId],[partitionId]:[brokerId],...",
                    ));
                }
            }
        },
        ConfigType::String => {
            let allowed: &[&str] = match name {
                "message.timestamp.type" => &["CreateTime", "LogAppendTime"],
                "spate.mirror.offsets" => &["none", "preserve"],
                "compression.type" => {
                    &["uncompressed", "zstd", "lz4", "snappy", "gzip", "producer"]
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
                return Err(bad(&format!(
                    "String must be one of: {}",
                    allowed.join(", ")
                )));
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
            ("segment.bytes", "1000"),
            ("compression.gzip.level", "0"),
            ("compression.lz4.level", "18"),
            ("compression.zstd.level", "23"),
            ("local.retention.ms", "-3"),
            ("leader.replication.throttled.replicas", "0-1"),
        ] {
            let err = validate(name, value).expect_err(name);
            assert!(err.to_string().contains(name), "{err}");
        }
        assert!(matches!(
            validate("no.such.config", "1"),
            Err(ConfigError::UnknownConfig { .. })
        ));
    }

    #[test]
    fn mirror_offsets_is_preserve_or_none() {
        let none = BTreeMap::new();
        assert!(
            !LogConfig::resolve(&none, &none)
                .expect("valid")
                .mirror_offsets
        );
        let preserve = map(&[("spate.mirror.offsets", "preserve")]);
        assert!(
            LogConfig::resolve(&none, &preserve)
                .expect("valid")
                .mirror_offsets
        );
        let err = validate("spate.mirror.offsets", "yes").expect_err("refused");
        assert!(err.to_string().contains("none, preserve"), "{err}");
    }

    #[test]
    fn every_default_is_valid_and_inert_configs_say_so() {
        for def in TOPIC_CONFIGS {
            if !def.internal {
                validate(def.name, def.default).unwrap_or_else(|e| panic!("{}: {e}", def.name));
            }
            assert_eq!(
                def.doc.starts_with("no effect on Spate"),
                !def.applies,
                "{}: the documentation must say whether it has an effect",
                def.name
            );
        }
        let mut names: Vec<&str> = TOPIC_CONFIGS
            .iter()
            .filter(|d| !d.internal)
            .map(|d| d.name)
            .collect();
        let sorted = {
            let mut n = names.clone();
            n.sort_unstable();
            n
        };
        assert_eq!(names, sorted, "TOPIC_CONFIGS is sorted by name");
        names.dedup();
        assert_eq!(names.len(), sorted.len(), "no name twice");
    }

    #[test]
    fn kafka_cross_checks_and_the_internal_segment_size() {
        let none = BTreeMap::new();
        let err = LogConfig::resolve(
            &none,
            &map(&[
                ("min.compaction.lag.ms", "10"),
                ("max.compaction.lag.ms", "5"),
            ]),
        )
        .expect_err("min above max");
        assert!(
            err.to_string().contains("conflict topic config setting"),
            "{err}"
        );
        let err = LogConfig::resolve(&none, &map(&[("remote.storage.enable", "true")]))
            .expect_err("no tiered storage");
        assert!(err.to_string().contains("Tiered Storage"), "{err}");
        let config = LogConfig::resolve(
            &none,
            &map(&[
                ("segment.bytes", "1048576"),
                ("internal.segment.bytes", "4096"),
            ]),
        )
        .expect("valid");
        assert_eq!(config.segment_bytes, 4096);
        let config =
            LogConfig::resolve(&none, &map(&[("cleanup.policy", "")])).expect("empty policy");
        assert!(!config.delete && !config.compact);
        let config =
            LogConfig::resolve(&none, &map(&[("min.insync.replicas", "2")])).expect("valid");
        assert_eq!(config.min_insync_replicas, 2);
        assert_eq!(
            validate("segment.bytes", "1000")
                .expect_err("too small")
                .to_string(),
            "Invalid value 1000 for configuration segment.bytes: Value must be at least 1048576"
        );
    }
}
