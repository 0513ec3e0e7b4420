//! MirrorMaker 2's connectors under their class names and keys
//! (`org.apache.kafka.connect.mirror`): [`MirrorSource`] copies topics from a source cluster
//! (`source.cluster.bootstrap.servers`) to the cluster the worker writes to, each record to the
//! same partition with its key, value, headers and timestamp; [`MirrorCheckpoint`] copies
//! consumer groups' committed offsets, as MM2's checkpoints and (with
//! `sync.group.offsets.enabled`) as the groups' own offsets on the target.
//!
//! Spate adds an offset-preserving mode ([`OFFSET_PRESERVING`]): the source task creates each
//! target topic as a Spate mirror topic (`spate.mirror.offsets=preserve`) and sends every record
//! with its source offset in a header; the broker writes it at that offset (see `spate-log`'s
//! `mirror` module), so a consumer group's source offsets are valid on the target unchanged,
//! and a re-send after a crash is dropped by offset (exactly once without transactions).
//!
//! Source offsets are MM2's: partition `{"cluster": <source alias>, "topic": t, "partition": p}`,
//! offset `{"offset": <last copied offset>}`. Tasks split the source partitions by a hash of
//! topic and partition (MM2 lists them in the task configs), so new topics found by a refresh
//! need no task reconfiguration.

mod checkpoint;
mod source;

use std::time::Duration;

use rdkafka::ClientConfig;
use regex::Regex;

use crate::config::{ConfigProblem, Props, Reader};
use crate::plugin::{ConfigKey, Connector, ConnectorKind, SourceTask, TaskError};
use crate::worker_config::{CLIENT_KEYS, jaas_credentials};

/// `org.apache.kafka.connect.mirror.MirrorSourceConnector`.
pub struct MirrorSource;

/// `org.apache.kafka.connect.mirror.MirrorCheckpointConnector`.
pub struct MirrorCheckpoint;

/// Spate's key for offset-preserving mirroring. Named after what the user gets (every record at
/// its source offset), in Spate's namespace so it never meets a future MM2 key, and `.enabled`
/// like MM2's own switches (`sync.group.offsets.enabled`, `emit.checkpoints.enabled`).
pub const OFFSET_PRESERVING: &str = "spate.offset.preserving.enabled";

/// The record header that carries a record's source offset to a Spate mirror topic (8 bytes,
/// big-endian); the broker strips it and writes the record at that offset.
pub const SOURCE_OFFSET_HEADER: &str = "spate.source.offset";

/// The topic config that makes a Spate topic a mirror topic.
pub const MIRROR_TOPIC_CONFIG: &str = "spate.mirror.offsets";

/// MM2's `topics.exclude` default.
const DEFAULT_TOPICS_EXCLUDE: &str = ".*[\\-\\.]internal, .*\\.replica, __.*";
/// MM2's `groups.exclude` default.
const DEFAULT_GROUPS_EXCLUDE: &str = "console-consumer-.*, connect-.*, __.*";
const DEFAULT_POLICY: &str = "org.apache.kafka.connect.mirror.DefaultReplicationPolicy";
const IDENTITY_POLICY: &str = "org.apache.kafka.connect.mirror.IdentityReplicationPolicy";
/// Topic configs MM2 never copies (`config.properties.exclude`'s default), plus Spate's own
/// mirror marker, which the mirror sets itself.
const CONFIGS_NOT_SYNCED: &[&str] = &[
    "follower.replication.throttled.replicas",
    "leader.replication.throttled.replicas",
    "message.timestamp.difference.max.ms",
    "message.timestamp.type",
    "unclean.leader.election.enable",
    "min.insync.replicas",
    MIRROR_TOPIC_CONFIG,
];

/// The task config keys telling a task which share of the partitions (or groups) it owns.
const TASK_INDEX: &str = "spate.mirror.task.index";
const TASK_COUNT: &str = "spate.mirror.task.count";

/// How target topic names are made (MM2's `ReplicationPolicy`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Policy {
    /// `<source alias><separator><topic>`.
    Default { alias: String, separator: String },
    /// The source's name.
    Identity,
}

impl Policy {
    /// The target topic of source topic `topic`.
    pub(crate) fn target_topic(&self, topic: &str) -> String {
        match self {
            Policy::Default { alias, separator } => format!("{alias}{separator}{topic}"),
            Policy::Identity => topic.to_string(),
        }
    }

    /// Whether `topic` on the source is itself a copy from the target (a cycle MM2 skips).
    fn is_cycle(&self, topic: &str, target_alias: &str) -> bool {
        match self {
            Policy::Default { separator, .. } => {
                topic.starts_with(&format!("{target_alias}{separator}"))
            }
            Policy::Identity => false,
        }
    }
}

/// A mirror connector's config, checked.
#[derive(Debug, Clone)]
pub(crate) struct MirrorConfig {
    pub source_alias: String,
    pub target_alias: String,
    /// librdkafka settings of the source cluster.
    pub source_client: Vec<(String, String)>,
    /// librdkafka settings of the target cluster, when given (else the worker's).
    pub target_client: Option<Vec<(String, String)>>,
    pub topics: Vec<Regex>,
    pub topics_exclude: Vec<Regex>,
    pub groups: Vec<Regex>,
    pub groups_exclude: Vec<Regex>,
    pub policy: Policy,
    pub refresh_topics: bool,
    pub refresh_interval: Duration,
    pub sync_topic_configs: bool,
    pub sync_topic_configs_interval: Duration,
    pub replication_factor: i32,
    pub offset_preserving: bool,
    pub sync_group_offsets: bool,
    pub sync_group_offsets_interval: Duration,
    pub emit_checkpoints: bool,
    pub emit_checkpoints_interval: Duration,
    pub checkpoints_replication_factor: i32,
}

impl MirrorConfig {
    /// Whether source topic `topic` is mirrored.
    pub(crate) fn mirrors_topic(&self, topic: &str) -> bool {
        full_match(&self.topics, topic)
            && !full_match(&self.topics_exclude, topic)
            && !self.policy.is_cycle(topic, &self.target_alias)
            && topic != self.checkpoints_topic()
    }

    /// Whether group `group`'s offsets are copied.
    pub(crate) fn mirrors_group(&self, group: &str) -> bool {
        full_match(&self.groups, group) && !full_match(&self.groups_exclude, group)
    }

    /// MM2's checkpoints topic on the target: `<source alias>.checkpoints.internal`.
    pub(crate) fn checkpoints_topic(&self) -> String {
        format!("{}.checkpoints.internal", self.source_alias)
    }

    pub(crate) fn source_client(&self) -> ClientConfig {
        let mut config = ClientConfig::new();
        for (k, v) in &self.source_client {
            config.set(k, v);
        }
        config
    }

    /// The target cluster's settings: `target.cluster.*` when given, else `worker`'s.
    pub(crate) fn target_client(&self, worker: Option<&ClientConfig>) -> ClientConfig {
        match (&self.target_client, worker) {
            (Some(settings), _) => {
                let mut config = ClientConfig::new();
                for (k, v) in settings {
                    config.set(k, v);
                }
                config
            }
            (None, Some(worker)) => {
                let mut config = ClientConfig::new();
                for (k, v) in worker.config_map() {
                    // Only connection settings: the producer's own would upset a consumer.
                    if CLIENT_KEYS.contains(&k.as_str())
                        || k == "sasl.mechanisms"
                        || k.starts_with("ssl.")
                        || k.starts_with("sasl.")
                    {
                        config.set(k, v);
                    }
                }
                config
            }
            (None, None) => ClientConfig::new(),
        }
    }
}

fn full_match(patterns: &[Regex], name: &str) -> bool {
    patterns.iter().any(|p| p.is_match(name))
}

/// A comma-separated list of regexes, each matched against the whole name (Java's
/// `Pattern.matches`); a bad one is a problem on `key`.
fn regexes(r: &mut Reader<'_>, key: &str, default: &str) -> Vec<Regex> {
    let text = r.string(key, default);
    let mut out = Vec::new();
    for item in text.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        match Regex::new(&format!("^(?:{item})$")) {
            Ok(regex) => out.push(regex),
            Err(e) => r.problem(
                key,
                format!("Invalid value {item} for configuration {key}: not a valid regular expression: {e}"),
            ),
        }
    }
    out
}

/// The librdkafka settings under `prefix` (`source.cluster.`): the connection keys librdkafka
/// knows under Java's names, with `sasl.mechanism` and a PLAIN/SCRAM `sasl.jaas.config`
/// translated.
fn client_settings(props: &Props, prefix: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for (key, value) in props {
        let Some(key) = key.strip_prefix(prefix) else {
            continue;
        };
        if key == "sasl.jaas.config" {
            if let Some((user, password)) = jaas_credentials(value) {
                out.push(("sasl.username".to_string(), user));
                out.push(("sasl.password".to_string(), password));
            }
        } else if CLIENT_KEYS.contains(&key) {
            let key = if key == "sasl.mechanism" {
                "sasl.mechanisms"
            } else {
                key
            };
            out.push((key.to_string(), value.clone()));
        }
    }
    out
}

fn seconds(r: &mut Reader<'_>, key: &str, default: u64) -> Duration {
    Duration::from_secs(r.unsigned(key, default, 1..=u64::from(u32::MAX)))
}

/// Reads and checks a mirror connector's config (both connectors share MM2's keys).
pub(crate) fn parse(props: &Props) -> Result<MirrorConfig, Vec<ConfigProblem>> {
    let mut r = Reader::new(props);
    let bootstrap = r.required("source.cluster.bootstrap.servers");
    let source_alias = r
        .string("source.cluster.alias", "source")
        .trim()
        .to_string();
    let target_alias = r
        .string("target.cluster.alias", "target")
        .trim()
        .to_string();
    if source_alias.is_empty() {
        r.problem(
            "source.cluster.alias",
            "source.cluster.alias must not be empty",
        );
    }
    let topics = regexes(&mut r, "topics", ".*");
    let topics_exclude = regexes(&mut r, "topics.exclude", DEFAULT_TOPICS_EXCLUDE);
    let groups = regexes(&mut r, "groups", ".*");
    let groups_exclude = regexes(&mut r, "groups.exclude", DEFAULT_GROUPS_EXCLUDE);
    let separator = r.string("replication.policy.separator", ".");
    let class = r.string("replication.policy.class", DEFAULT_POLICY);
    let policy = match class.trim() {
        DEFAULT_POLICY | "DefaultReplicationPolicy" => Policy::Default {
            alias: source_alias.clone(),
            separator,
        },
        IDENTITY_POLICY | "IdentityReplicationPolicy" => Policy::Identity,
        other => {
            r.problem(
                "replication.policy.class",
                format!(
                    "Invalid value {other} for configuration replication.policy.class: Spate knows {DEFAULT_POLICY} and {IDENTITY_POLICY}"
                ),
            );
            Policy::Identity
        }
    };
    let source_client = {
        let mut settings = client_settings(props, "source.cluster.");
        if !settings.iter().any(|(k, _)| k == "bootstrap.servers") {
            settings.push(("bootstrap.servers".into(), bootstrap));
        }
        settings
    };
    let target_client = props
        .contains_key("target.cluster.bootstrap.servers")
        .then(|| client_settings(props, "target.cluster."));
    let refresh_topics = r.boolean("refresh.topics.enabled", true);
    let refresh_interval = seconds(&mut r, "refresh.topics.interval.seconds", 600);
    let sync_topic_configs = r.boolean("sync.topic.configs.enabled", true);
    let sync_topic_configs_interval = seconds(&mut r, "sync.topic.configs.interval.seconds", 600);
    let replication_factor = r.number("replication.factor", 2, -1..=i64::from(i16::MAX)) as i32;
    let offset_preserving = r.boolean(OFFSET_PRESERVING, false);
    let sync_group_offsets = r.boolean("sync.group.offsets.enabled", false);
    let sync_group_offsets_interval = seconds(&mut r, "sync.group.offsets.interval.seconds", 60);
    let emit_checkpoints = r.boolean("emit.checkpoints.enabled", true);
    let emit_checkpoints_interval = seconds(&mut r, "emit.checkpoints.interval.seconds", 60);
    let checkpoints_replication_factor = r.number(
        "checkpoints.topic.replication.factor",
        3,
        -1..=i64::from(i16::MAX),
    ) as i32;
    // Checked, not needed: the checkpoint task lists the source's groups at every pass.
    let _ = seconds(&mut r, "refresh.groups.interval.seconds", 600);
    for key in ["replication.factor", "checkpoints.topic.replication.factor"] {
        if props.get(key).is_some_and(|v| v.trim() == "0") {
            r.problem(
                key,
                format!("{key} must be -1 (the cluster's default) or at least 1"),
            );
        }
    }
    r.finish(MirrorConfig {
        source_alias,
        target_alias,
        source_client,
        target_client,
        topics,
        topics_exclude,
        groups,
        groups_exclude,
        policy,
        refresh_topics,
        refresh_interval,
        sync_topic_configs,
        sync_topic_configs_interval,
        replication_factor,
        offset_preserving,
        sync_group_offsets,
        sync_group_offsets_interval,
        emit_checkpoints,
        emit_checkpoints_interval,
        checkpoints_replication_factor,
    })
}

/// Which task owns `name` (a topic with its partition, or a group): a stable hash (FNV-1a), so
/// every task agrees without talking and a refresh moves nothing already owned.
pub(crate) fn owner(name: &str, partition: i32, count: usize) -> usize {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in name.bytes().chain(partition.to_be_bytes()) {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    (hash % count.max(1) as u64) as usize
}

/// The share (`index` of `count`) a task config gives.
pub(crate) fn share(props: &Props) -> (usize, usize) {
    let get = |key: &str, default: usize| {
        props
            .get(key)
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    };
    let count = get(TASK_COUNT, 1).max(1);
    (get(TASK_INDEX, 0).min(count - 1), count)
}

fn split(props: &Props, max_tasks: usize) -> Vec<Props> {
    let count = max_tasks.max(1);
    (0..count)
        .map(|i| {
            let mut task = props.clone();
            task.insert(TASK_INDEX.into(), i.to_string());
            task.insert(TASK_COUNT.into(), count.to_string());
            task
        })
        .collect()
}

fn common_keys() -> Vec<ConfigKey> {
    vec![
        ConfigKey::required(
            "source.cluster.bootstrap.servers",
            "LIST",
            "The source cluster's bootstrap servers; other source.cluster.* keys (security.protocol, sasl.*, ssl.*) configure its clients",
        ),
        ConfigKey::optional(
            "source.cluster.alias",
            "STRING",
            "source",
            "Alias of the source cluster",
        ),
        ConfigKey::optional(
            "target.cluster.alias",
            "STRING",
            "target",
            "Alias of the target cluster",
        ),
        ConfigKey::optional(
            "target.cluster.bootstrap.servers",
            "LIST",
            "",
            "The target cluster's bootstrap servers for admin calls; the worker's cluster when not set",
        ),
        ConfigKey::optional(
            "topics",
            "LIST",
            ".*",
            "Topics to replicate. Supports comma-separated topic names and regexes.",
        ),
        ConfigKey::optional(
            "topics.exclude",
            "LIST",
            DEFAULT_TOPICS_EXCLUDE,
            "Topics to exclude. Supports comma-separated topic names and regexes.",
        ),
        ConfigKey::optional(
            "replication.policy.class",
            "CLASS",
            DEFAULT_POLICY,
            "Class which defines the remote topic naming convention (DefaultReplicationPolicy or IdentityReplicationPolicy)",
        ),
        ConfigKey::optional(
            "replication.policy.separator",
            "STRING",
            ".",
            "Separator used in remote topic naming convention.",
        ),
    ]
}

impl Connector for MirrorSource {
    fn class(&self) -> &'static str {
        "org.apache.kafka.connect.mirror.MirrorSourceConnector"
    }

    fn kind(&self) -> ConnectorKind {
        ConnectorKind::Source
    }

    fn config_keys(&self) -> Vec<ConfigKey> {
        let mut keys = common_keys();
        keys.extend([
            ConfigKey::optional(
                "refresh.topics.enabled",
                "BOOLEAN",
                "true",
                "Whether to periodically check for new topics and partitions.",
            ),
            ConfigKey::optional(
                "refresh.topics.interval.seconds",
                "LONG",
                "600",
                "Frequency of topic refresh.",
            ),
            ConfigKey::optional(
                "sync.topic.configs.enabled",
                "BOOLEAN",
                "true",
                "Whether to periodically configure remote topics to match their corresponding upstream topics.",
            ),
            ConfigKey::optional(
                "sync.topic.configs.interval.seconds",
                "LONG",
                "600",
                "Frequency of topic config sync.",
            ),
            ConfigKey::optional(
                "replication.factor",
                "INT",
                "2",
                "Replication factor for newly created remote topics.",
            ),
            ConfigKey::optional(
                OFFSET_PRESERVING,
                "BOOLEAN",
                "false",
                "Spate: write every record at its source offset, in a read-only mirror topic (the target must be Spate), so consumer group offsets carry over unchanged",
            ),
        ]);
        keys
    }

    fn validate(&self, props: &Props) -> Vec<ConfigProblem> {
        parse(props).err().unwrap_or_default()
    }

    fn task_configs(&self, props: &Props, max_tasks: usize) -> Result<Vec<Props>, TaskError> {
        Ok(split(props, max_tasks))
    }

    fn default_converter(&self) -> Option<&'static str> {
        Some(crate::convert::BYTE_ARRAY_CONVERTER)
    }

    fn exactly_once_by_offsets(&self, props: &Props) -> bool {
        parse(props).is_ok_and(|c| c.offset_preserving)
    }

    fn source_task(&self) -> Option<Box<dyn SourceTask>> {
        Some(Box::new(source::MirrorSourceTask::default()))
    }
}

impl Connector for MirrorCheckpoint {
    fn class(&self) -> &'static str {
        "org.apache.kafka.connect.mirror.MirrorCheckpointConnector"
    }

    fn kind(&self) -> ConnectorKind {
        ConnectorKind::Source
    }

    fn config_keys(&self) -> Vec<ConfigKey> {
        let mut keys = common_keys();
        keys.extend([
            ConfigKey::optional(
                "groups",
                "LIST",
                ".*",
                "Consumer groups to replicate. Supports comma-separated group IDs and regexes.",
            ),
            ConfigKey::optional(
                "groups.exclude",
                "LIST",
                DEFAULT_GROUPS_EXCLUDE,
                "Consumer groups to exclude. Supports comma-separated group IDs and regexes.",
            ),
            ConfigKey::optional(
                "sync.group.offsets.enabled",
                "BOOLEAN",
                "false",
                "Whether to periodically write the translated offsets to __consumer_offsets in the target cluster, as long as no active consumers in that group are connected to the target cluster",
            ),
            ConfigKey::optional(
                "sync.group.offsets.interval.seconds",
                "LONG",
                "60",
                "Frequency of consumer group offset sync.",
            ),
            ConfigKey::optional(
                "emit.checkpoints.enabled",
                "BOOLEAN",
                "true",
                "Whether to replicate consumer offsets to target cluster.",
            ),
            ConfigKey::optional(
                "emit.checkpoints.interval.seconds",
                "LONG",
                "60",
                "Frequency of checkpoints.",
            ),
            ConfigKey::optional(
                "checkpoints.topic.replication.factor",
                "INT",
                "3",
                "Replication factor for checkpoints topic.",
            ),
            ConfigKey::optional(
                "refresh.groups.interval.seconds",
                "LONG",
                "600",
                "Frequency of group refresh.",
            ),
        ]);
        keys
    }

    fn validate(&self, props: &Props) -> Vec<ConfigProblem> {
        let mut problems = parse(props).err().unwrap_or_default();
        if props
            .get(OFFSET_PRESERVING)
            .is_some_and(|v| v.trim().eq_ignore_ascii_case("false"))
        {
            problems.push(ConfigProblem::new(
                OFFSET_PRESERVING,
                "Spate translates group offsets only for topics mirrored with spate.offset.preserving.enabled=true (it writes no MM2 offset-sync topic to translate others); remove the key",
            ));
        }
        problems
    }

    fn task_configs(&self, props: &Props, max_tasks: usize) -> Result<Vec<Props>, TaskError> {
        Ok(split(props, max_tasks))
    }

    fn default_converter(&self) -> Option<&'static str> {
        Some(crate::convert::BYTE_ARRAY_CONVERTER)
    }

    fn source_task(&self) -> Option<Box<dyn SourceTask>> {
        Some(Box::new(checkpoint::MirrorCheckpointTask::default()))
    }
}

/// The context of a mirror task's clients: librdkafka's errors and error logs become warnings
/// naming the cluster. A mirror outlives its clusters' restarts (librdkafka reconnects by
/// itself), so a cluster being away is not an error of the worker; what a task cannot get
/// past fails the task, and its status says why.
pub(crate) struct Remote(pub &'static str);

impl rdkafka::ClientContext for Remote {
    fn log(&self, level: rdkafka::config::RDKafkaLogLevel, fac: &str, message: &str) {
        use rdkafka::config::RDKafkaLogLevel as L;
        match level {
            L::Emerg | L::Alert | L::Critical | L::Error | L::Warning => {
                tracing::warn!(cluster = self.0, "librdkafka: {fac} {message}")
            }
            L::Notice | L::Info => tracing::info!(cluster = self.0, "librdkafka: {fac} {message}"),
            L::Debug => tracing::debug!(cluster = self.0, "librdkafka: {fac} {message}"),
        }
    }

    fn error(&self, error: rdkafka::error::KafkaError, reason: &str) {
        tracing::warn!(cluster = self.0, "librdkafka: {error}: {reason}");
    }
}

impl rdkafka::consumer::ConsumerContext for Remote {}

/// A mirror task's consumer of `cluster` (`source` or `target`).
pub(crate) type RemoteConsumer = rdkafka::consumer::BaseConsumer<Remote>;
/// A mirror task's admin client of `cluster`.
pub(crate) type RemoteAdmin = rdkafka::admin::AdminClient<Remote>;

/// Blocks on an admin call from a task's thread.
pub(crate) fn block_on<F: std::future::Future>(future: F) -> F::Output {
    futures::executor::block_on(future)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn props(pairs: &[(&str, &str)]) -> Props {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn policies_name_target_topics_as_mm2_does() {
        let config = parse(&props(&[
            ("source.cluster.bootstrap.servers", "a:9092"),
            ("source.cluster.alias", "east"),
        ]))
        .expect("valid");
        assert_eq!(config.policy.target_topic("orders"), "east.orders");
        let config = parse(&props(&[
            ("source.cluster.bootstrap.servers", "a:9092"),
            ("source.cluster.alias", "east"),
            ("replication.policy.separator", "_"),
        ]))
        .expect("valid");
        assert_eq!(config.policy.target_topic("orders"), "east_orders");
        let config = parse(&props(&[
            ("source.cluster.bootstrap.servers", "a:9092"),
            (
                "replication.policy.class",
                "org.apache.kafka.connect.mirror.IdentityReplicationPolicy",
            ),
        ]))
        .expect("valid");
        assert_eq!(config.policy.target_topic("orders"), "orders");
    }

    #[test]
    fn default_excludes_are_mm2s() {
        let config = parse(&props(&[
            ("source.cluster.bootstrap.servers", "a:9092"),
            ("target.cluster.alias", "west"),
        ]))
        .expect("valid");
        assert!(config.mirrors_topic("orders"));
        for skipped in [
            "__consumer_offsets",
            "mm2-offsets.internal",
            "heartbeats-internal",
            "x.replica",
            "west.orders",
            "source.checkpoints.internal",
        ] {
            assert!(!config.mirrors_topic(skipped), "{skipped}");
        }
        assert!(config.mirrors_group("app"));
        assert!(!config.mirrors_group("console-consumer-1"));
        assert!(!config.mirrors_group("connect-sink"));
    }

    #[test]
    fn topics_are_whole_name_regexes() {
        let config = parse(&props(&[
            ("source.cluster.bootstrap.servers", "a:9092"),
            ("topics", "orders, pay.*"),
        ]))
        .expect("valid");
        assert!(config.mirrors_topic("orders"));
        assert!(config.mirrors_topic("payments"));
        assert!(!config.mirrors_topic("orders2"));
    }

    #[test]
    fn bad_regex_and_policy_name_their_fields() {
        let problems = parse(&props(&[
            ("source.cluster.bootstrap.servers", "a:9092"),
            ("topics", "ok,(unclosed"),
            ("replication.policy.class", "com.example.Custom"),
        ]))
        .expect_err("invalid");
        let names: Vec<&str> = problems.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["topics", "replication.policy.class"]);
    }

    #[test]
    fn source_cluster_settings_reach_librdkafka_under_its_names() {
        let config = parse(&props(&[
            ("source.cluster.bootstrap.servers", "a:9092"),
            ("source.cluster.security.protocol", "SASL_SSL"),
            ("source.cluster.sasl.mechanism", "SCRAM-SHA-256"),
            (
                "source.cluster.sasl.jaas.config",
                r#"org.apache.kafka.common.security.scram.ScramLoginModule required username="u" password="p";"#,
            ),
            ("source.cluster.ssl.truststore.location", "/java/only.jks"),
        ]))
        .expect("valid");
        let settings: Vec<(&str, &str)> = config
            .source_client
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        assert!(settings.contains(&("bootstrap.servers", "a:9092")));
        assert!(settings.contains(&("security.protocol", "SASL_SSL")));
        assert!(settings.contains(&("sasl.mechanisms", "SCRAM-SHA-256")));
        assert!(settings.contains(&("sasl.username", "u")));
        assert!(settings.contains(&("sasl.password", "p")));
        assert!(!settings.iter().any(|(k, _)| k.contains("truststore")));
    }

    #[test]
    fn owners_spread_and_stay_put() {
        let owners: Vec<usize> = (0..12).map(|p| owner("orders", p, 3)).collect();
        for task in 0..3 {
            assert!(
                owners.contains(&task),
                "task {task} owns something: {owners:?}"
            );
        }
        assert_eq!(owner("orders", 5, 3), owner("orders", 5, 3));
        assert_eq!(owner("orders", 5, 1), 0);
    }
}
