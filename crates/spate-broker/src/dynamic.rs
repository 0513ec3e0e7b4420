//! Dynamic configs: broker configs changed at runtime (Kafka's KIP-226, resource type BROKER
//! with this node's id or "" for the cluster default) and group configs (KIP-848, resource
//! type GROUP), kept durable in the internal compacted topic `__cluster_configs`.
//!
//! Kafka keeps these as `ConfigRecord`s in its metadata log; here each (resource type, resource
//! name, config name) is one keyed record, a tombstone when the config is deleted, so a replay
//! at start rebuilds the same state and compaction keeps the topic small. A change is checked
//! whole, appended durably, then applied: broker configs that are topic defaults
//! (`log.retention.ms`, `message.max.bytes`, ...) are pushed to the topic registry so topics
//! without an override use them at once, and connection limits are read by the server's accept
//! loop through [`ConnectionLimits`]. Which broker configs may change, and at which level,
//! follows Kafka's update modes (read-only, per-broker, cluster-wide); what Kafka refuses is
//! refused with Kafka's error and message. This module owns no socket.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use kafka_protocol::ResponseError;
use parking_lot::RwLock;
use serde::{Deserialize, Serialize};
use spate_log::config::{ConfigType, TOPIC_CONFIGS, topic_config_for_broker_synonym};

use crate::Broker;
use crate::error::BrokerError;

/// The internal topic dynamic broker and group configs live in.
pub const CONFIGS_TOPIC: &str = "__cluster_configs";

/// Kafka's config resource types.
pub(crate) const RESOURCE_TOPIC: i8 = 2;
pub(crate) const RESOURCE_BROKER: i8 = 4;
pub(crate) const RESOURCE_BROKER_LOGGER: i8 = 8;
pub(crate) const RESOURCE_GROUP: i8 = 32;

/// IncrementalAlterConfigs operations.
pub(crate) const OP_SET: i8 = 0;
pub(crate) const OP_DELETE: i8 = 1;
pub(crate) const OP_APPEND: i8 = 2;
pub(crate) const OP_SUBTRACT: i8 = 3;

/// Kafka's largest INT, the default of its connection limits.
const INT_MAX: &str = "2147483647";

/// A config change refused: Kafka's error code and message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Refusal {
    pub code: ResponseError,
    pub message: String,
}

impl Refusal {
    pub(crate) fn request(message: impl Into<String>) -> Refusal {
        Refusal {
            code: ResponseError::InvalidRequest,
            message: message.into(),
        }
    }

    pub(crate) fn config(message: impl Into<String>) -> Refusal {
        Refusal {
            code: ResponseError::InvalidConfig,
            message: message.into(),
        }
    }

    /// The response's error code and message, logged once (an alter request refused).
    pub(crate) fn logged(
        self,
        resource_type: i8,
        name: &str,
    ) -> (i16, Option<kafka_protocol::protocol::StrBytes>) {
        tracing::info!(
            resource_type,
            resource = %name,
            error = %self.message,
            "refused a config change"
        );
        (
            self.code.code(),
            Some(kafka_protocol::protocol::StrBytes::from_string(
                self.message,
            )),
        )
    }
}

/// How a broker config may change at runtime (Kafka's `dynamicConfigUpdateModes`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum UpdateMode {
    /// Only at start (the config file, flags, environment).
    ReadOnly,
    /// Per broker or as the cluster default.
    ClusterWide,
}

/// One broker config Spate knows.
#[derive(Debug, Clone)]
pub(crate) struct BrokerConfigDef {
    pub name: &'static str,
    pub kind: ConfigType,
    /// Kafka's default, as a string.
    pub default: &'static str,
    pub doc: &'static str,
    pub mode: UpdateMode,
    /// The topic config it is the default of (`log.retention.ms` → `retention.ms`).
    pub topic_config: Option<&'static str>,
}

/// Connection configs (Kafka's `SocketServer.ReconfigurableConfigs`), all cluster-wide.
const CONNECTION_CONFIGS: &[(&str, ConfigType, &str, &str)] = &[
    (
        "max.connection.creation.rate",
        ConfigType::Int,
        INT_MAX,
        "new connections accepted per second across all listeners; above it accepting waits",
    ),
    (
        "max.connections",
        ConfigType::Int,
        INT_MAX,
        "open connections accepted at once; more are closed on accept",
    ),
    (
        "max.connections.per.ip",
        ConfigType::Int,
        INT_MAX,
        "open connections accepted from one IP address; more are closed on accept",
    ),
    (
        "max.connections.per.ip.overrides",
        ConfigType::String,
        "",
        "per-address limits, e.g. 127.0.0.1:200,10.0.0.7:50 (IP addresses; Kafka also takes host names)",
    ),
];

/// Broker configs Kafka knows that cannot change at runtime; changing one is refused with
/// "Cannot update these configs dynamically". Those with a value here are described.
const READ_ONLY_CONFIGS: &[&str] = &[
    "advertised.listeners",
    "allow.everyone.if.no.acl.found",
    "authorizer.class.name",
    "auto.create.topics.enable",
    "broker.id",
    "connections.max.idle.ms",
    "connections.max.reauth.ms",
    "controller.quorum.voters",
    "default.replication.factor",
    "fetch.max.bytes",
    "group.consumer.heartbeat.interval.ms",
    "group.consumer.max.heartbeat.interval.ms",
    "group.consumer.max.session.timeout.ms",
    "group.consumer.min.heartbeat.interval.ms",
    "group.consumer.min.session.timeout.ms",
    "group.consumer.session.timeout.ms",
    "group.initial.rebalance.delay.ms",
    "group.max.session.timeout.ms",
    "group.min.session.timeout.ms",
    "listeners",
    "log.dir",
    "log.dirs",
    "log.flush.scheduler.interval.ms",
    "log.retention.check.interval.ms",
    "log.retention.hours",
    "log.retention.minutes",
    "log.roll.hours",
    "log.roll.jitter.hours",
    "node.id",
    "num.partitions",
    "offsets.retention.minutes",
    "offsets.topic.num.partitions",
    "process.roles",
    "queued.max.request.bytes",
    "remote.log.storage.system.enable",
    "sasl.enabled.mechanisms",
    "sasl.server.max.receive.size",
    "socket.request.max.bytes",
    "super.users",
    "transaction.max.timeout.ms",
    "transaction.state.log.num.partitions",
];

/// Looks up a broker config Spate can describe or change.
pub(crate) fn broker_config_def(name: &str) -> Option<BrokerConfigDef> {
    if let Some(topic) = topic_config_for_broker_synonym(name) {
        return Some(BrokerConfigDef {
            name: topic.broker_synonym,
            kind: topic.kind,
            default: topic.default,
            doc: topic.doc,
            mode: UpdateMode::ClusterWide,
            topic_config: Some(topic.name),
        });
    }
    if let Some((name, kind, default, doc)) = CONNECTION_CONFIGS.iter().find(|c| c.0 == name) {
        return Some(BrokerConfigDef {
            name,
            kind: *kind,
            default,
            doc,
            mode: UpdateMode::ClusterWide,
            topic_config: None,
        });
    }
    READ_ONLY_CONFIGS
        .iter()
        .find(|n| **n == name)
        .map(|name| BrokerConfigDef {
            name,
            kind: ConfigType::String,
            default: "",
            doc: "read-only: set at start (config file, flags or environment)",
            mode: UpdateMode::ReadOnly,
            topic_config: None,
        })
}

/// Every dynamic broker config, sorted by name.
pub(crate) fn dynamic_broker_configs() -> Vec<BrokerConfigDef> {
    let mut defs: Vec<BrokerConfigDef> = TOPIC_CONFIGS
        .iter()
        .filter(|d| !d.broker_synonym.is_empty())
        .filter_map(|d| broker_config_def(d.broker_synonym))
        .chain(
            CONNECTION_CONFIGS
                .iter()
                .filter_map(|c| broker_config_def(c.0)),
        )
        .collect();
    defs.sort_by_key(|d| d.name);
    defs.dedup_by_key(|d| d.name);
    defs
}

/// Scala's `Set(a, b)`, as Kafka's messages print sets of names.
fn scala_set<'a>(names: impl IntoIterator<Item = &'a str>) -> String {
    let names: BTreeSet<&str> = names.into_iter().collect();
    format!("Set({})", names.into_iter().collect::<Vec<_>>().join(", "))
}

/// Checks one broker config value by its type and Kafka's range.
fn validate_broker_value(def: &BrokerConfigDef, value: &str) -> Result<(), Refusal> {
    if let Some(topic_config) = def.topic_config {
        return spate_log::config::validate(topic_config, value).map_err(|e| match e {
            spate_log::ConfigError::InvalidValue { value, reason, .. } => {
                Refusal::request(format!(
                    "Invalid value {value} for configuration {}: {reason}",
                    def.name
                ))
            }
            other => Refusal::request(other.to_string()),
        });
    }
    let bad = |reason: &str| {
        Refusal::request(format!(
            "Invalid value {value} for configuration {}: {reason}",
            def.name
        ))
    };
    match def.name {
        "max.connections.per.ip.overrides" => {
            parse_overrides(value).map_err(|reason| bad(&reason))?;
        }
        _ => {
            let parsed = value
                .trim()
                .parse::<i32>()
                .map_err(|_| bad("Not a number of type INT"))?;
            if parsed < 0 {
                return Err(bad("Value must be at least 0"));
            }
        }
    }
    Ok(())
}

/// Parses `max.connections.per.ip.overrides`: `ip:count` pairs, comma-separated.
fn parse_overrides(value: &str) -> Result<HashMap<IpAddr, usize>, String> {
    let mut overrides = HashMap::new();
    for item in value.split(',').map(str::trim).filter(|i| !i.is_empty()) {
        let (host, count) = item
            .rsplit_once(':')
            .ok_or_else(|| format!("expected ip:count, got {item}"))?;
        let ip: IpAddr = host
            .trim()
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse()
            .map_err(|_| {
                format!("{host} is not an IP address (Spate takes addresses, not host names)")
            })?;
        let count: usize = count
            .trim()
            .parse()
            .map_err(|_| format!("{count} is not a connection count"))?;
        overrides.insert(ip, count);
    }
    Ok(overrides)
}

/// Connection limits the server's accept loop reads on every new connection.
#[derive(Debug)]
pub struct ConnectionLimits {
    max_connections: AtomicU64,
    max_per_ip: AtomicU64,
    /// New connections per second; `u64::MAX` for no limit.
    creation_rate: AtomicU64,
    overrides: RwLock<HashMap<IpAddr, usize>>,
}

impl Default for ConnectionLimits {
    fn default() -> ConnectionLimits {
        ConnectionLimits {
            max_connections: AtomicU64::new(u64::MAX),
            max_per_ip: AtomicU64::new(u64::MAX),
            creation_rate: AtomicU64::new(u64::MAX),
            overrides: RwLock::default(),
        }
    }
}

impl ConnectionLimits {
    /// Fixed limits (for tests of the accept loop); `None` rate for no limit.
    pub fn new(max_connections: usize, max_per_ip: usize, creation_rate: Option<u32>) -> Self {
        let limits = ConnectionLimits::default();
        limits
            .max_connections
            .store(max_connections as u64, Ordering::Relaxed);
        limits
            .max_per_ip
            .store(max_per_ip as u64, Ordering::Relaxed);
        limits
            .creation_rate
            .store(creation_rate.map_or(u64::MAX, u64::from), Ordering::Relaxed);
        limits
    }

    /// Open connections accepted at once (`max.connections`).
    pub fn max_connections(&self) -> usize {
        usize::try_from(self.max_connections.load(Ordering::Relaxed)).unwrap_or(usize::MAX)
    }

    /// Open connections accepted from `ip` (`max.connections.per.ip` and its overrides).
    pub fn max_connections_per_ip(&self, ip: IpAddr) -> usize {
        if let Some(limit) = self.overrides.read().get(&ip) {
            return *limit;
        }
        usize::try_from(self.max_per_ip.load(Ordering::Relaxed)).unwrap_or(usize::MAX)
    }

    /// New connections per second across all listeners (`max.connection.creation.rate`).
    pub fn max_connection_creation_rate(&self) -> Option<f64> {
        match self.creation_rate.load(Ordering::Relaxed) {
            u64::MAX => None,
            rate => Some(rate as f64),
        }
    }

    fn set(&self, values: &dyn Fn(&str) -> Option<String>) {
        let number = |name: &str| {
            values(name)
                .and_then(|v| v.trim().parse::<u64>().ok())
                .filter(|v| *v < i32::MAX as u64)
                .unwrap_or(u64::MAX)
        };
        self.max_connections
            .store(number("max.connections"), Ordering::Relaxed);
        self.max_per_ip
            .store(number("max.connections.per.ip"), Ordering::Relaxed);
        self.creation_rate
            .store(number("max.connection.creation.rate"), Ordering::Relaxed);
        *self.overrides.write() = values("max.connections.per.ip.overrides")
            .and_then(|v| parse_overrides(&v).ok())
            .unwrap_or_default();
    }
}

#[derive(Debug, Serialize, Deserialize)]
struct RecordKey {
    #[serde(rename = "type")]
    resource_type: i8,
    name: String,
    config: String,
}

#[derive(Debug, Serialize, Deserialize)]
struct RecordValue {
    value: String,
}

/// A config resource: its type and name (`""` is the cluster default of broker configs).
pub(crate) type Resource = (i8, String);

/// Dynamic configs by resource, as stored.
#[derive(Debug, Default)]
pub(crate) struct DynamicConfigs {
    entries: RwLock<BTreeMap<Resource, BTreeMap<String, String>>>,
    /// One writer at a time, so a change is checked against the state it replaces.
    pub(crate) writer: tokio::sync::Mutex<()>,
    /// What the accept loop reads.
    pub(crate) limits: Arc<ConnectionLimits>,
}

impl DynamicConfigs {
    /// The dynamic configs of one resource.
    pub(crate) fn of(&self, resource_type: i8, name: &str) -> BTreeMap<String, String> {
        self.entries
            .read()
            .get(&(resource_type, name.to_string()))
            .cloned()
            .unwrap_or_default()
    }

    /// One dynamic config of one resource.
    pub(crate) fn get(&self, resource_type: i8, name: &str, config: &str) -> Option<String> {
        self.entries
            .read()
            .get(&(resource_type, name.to_string()))
            .and_then(|c| c.get(config).cloned())
    }

    fn replace(&self, resource: Resource, configs: BTreeMap<String, String>) {
        let mut entries = self.entries.write();
        if configs.is_empty() {
            entries.remove(&resource);
        } else {
            entries.insert(resource, configs);
        }
    }
}

/// Applies IncrementalAlterConfigs operations to a resource's current configs. `kind` tells
/// which configs are lists (APPEND and SUBTRACT apply to those only); `current_value` gives the
/// effective value a list operation starts from.
pub(crate) fn apply_ops(
    configs: &mut BTreeMap<String, String>,
    ops: &[(String, i8, Option<String>)],
    kind: &dyn Fn(&str) -> Option<ConfigType>,
    current_value: &dyn Fn(&str) -> String,
) -> Result<(), Refusal> {
    for (name, op, value) in ops {
        let need_value = || {
            value
                .clone()
                .ok_or_else(|| Refusal::request(format!("Null value not supported for : {name}")))
        };
        match *op {
            OP_SET => {
                configs.insert(name.clone(), need_value()?);
            }
            OP_DELETE => {
                configs.remove(name);
            }
            OP_APPEND | OP_SUBTRACT => {
                if kind(name) != Some(ConfigType::List) {
                    let verb = if *op == OP_APPEND {
                        "append"
                    } else {
                        "subtract"
                    };
                    return Err(Refusal::request(format!(
                        "Config value {verb} is not allowed for config key: {name}"
                    )));
                }
                let current = configs
                    .get(name)
                    .cloned()
                    .unwrap_or_else(|| current_value(name));
                let mut items: Vec<String> = current
                    .split(',')
                    .map(|i| i.trim().to_string())
                    .filter(|i| !i.is_empty())
                    .collect();
                for item in need_value()?
                    .split(',')
                    .map(str::trim)
                    .filter(|i| !i.is_empty())
                {
                    if *op == OP_APPEND {
                        if !items.iter().any(|i| i == item) {
                            items.push(item.to_string());
                        }
                    } else {
                        items.retain(|i| i != item);
                    }
                }
                configs.insert(name.clone(), items.join(","));
            }
            other => {
                return Err(Refusal::request(format!("Unknown operations type {other}")));
            }
        }
    }
    Ok(())
}

/// Refuses a request naming one config twice or setting a null value (Kafka's preprocessing).
pub(crate) fn check_ops(ops: &[(String, i8, Option<String>)]) -> Result<(), Refusal> {
    let mut seen = BTreeSet::new();
    if ops.iter().any(|(name, _, _)| !seen.insert(name.as_str())) {
        return Err(Refusal::request("Error due to duplicate config keys"));
    }
    let nulls: Vec<&str> = ops
        .iter()
        .filter(|(_, op, value)| *op != OP_DELETE && value.is_none())
        .map(|(name, _, _)| name.as_str())
        .collect();
    if !nulls.is_empty() {
        return Err(Refusal::request(format!(
            "Null value not supported for : {}",
            nulls.join(", ")
        )));
    }
    Ok(())
}

impl Broker {
    /// Rebuilds the dynamic configs from `__cluster_configs` (created at the first change)
    /// and applies them. Blocking.
    pub(crate) fn load_dynamic_configs(&self) -> Result<(), BrokerError> {
        let mut entries: BTreeMap<Resource, BTreeMap<String, String>> = BTreeMap::new();
        self.replay_state_topic(CONFIGS_TOPIC, |offset, key, value| {
            let Some(key) = key.and_then(|k| serde_json::from_slice::<RecordKey>(k).ok()) else {
                tracing::warn!(topic = CONFIGS_TOPIC, offset, "skipped a record without a readable key");
                return;
            };
            let resource = (key.resource_type, key.name);
            match value.map(serde_json::from_slice::<RecordValue>) {
                None => {
                    if let Some(configs) = entries.get_mut(&resource) {
                        configs.remove(&key.config);
                    }
                }
                Some(Ok(v)) => {
                    entries
                        .entry(resource)
                        .or_default()
                        .insert(key.config, v.value);
                }
                Some(Err(err)) => {
                    tracing::warn!(topic = CONFIGS_TOPIC, offset, error = %err, "skipped an unreadable config");
                }
            }
        })?;
        entries.retain(|_, configs| !configs.is_empty());
        let count: usize = entries.values().map(BTreeMap::len).sum();
        *self.dynamic.entries.write() = entries;
        if let Err(err) = self.apply_broker_configs() {
            // Stored configs were valid when written; a newer static config (a topic's
            // override) may conflict. Keep serving with the static defaults and say so.
            tracing::warn!(error = %err.message, "stored dynamic broker configs do not apply; using the static defaults");
        }
        if count > 0 {
            tracing::info!(configs = count, "restored dynamic configs");
        }
        Ok(())
    }

    /// The value of a broker config at every level, highest precedence first: this broker's
    /// dynamic config, the cluster default, the static config, the built-in default.
    pub(crate) fn broker_config_layers(&self, def: &BrokerConfigDef) -> Vec<(String, i8)> {
        const DYNAMIC_BROKER: i8 = 2;
        const DYNAMIC_DEFAULT: i8 = 3;
        const STATIC: i8 = 4;
        const DEFAULT: i8 = 5;
        let node = self.options.node_id.to_string();
        let mut layers = Vec::new();
        if let Some(v) = self.dynamic.get(RESOURCE_BROKER, &node, def.name) {
            layers.push((v, DYNAMIC_BROKER));
        }
        if let Some(v) = self.dynamic.get(RESOURCE_BROKER, "", def.name) {
            layers.push((v, DYNAMIC_DEFAULT));
        }
        let static_value = match def.topic_config {
            Some(topic) => self.options.topic_defaults.get(topic).cloned(),
            None => self.options.static_configs.get(def.name).cloned(),
        };
        if let Some(v) = static_value {
            layers.push((v, STATIC));
        }
        if def.mode != UpdateMode::ReadOnly {
            let default = match def.topic_config.and_then(spate_log::config::config_def) {
                Some(topic) => topic.default,
                None => def.default,
            };
            layers.push((default.to_string(), DEFAULT));
        }
        layers
    }

    /// The effective value of a broker config.
    fn broker_config_value(&self, name: &str) -> Option<String> {
        let def = broker_config_def(name)?;
        self.broker_config_layers(&def)
            .into_iter()
            .next()
            .map(|(v, _)| v)
    }

    /// Topic defaults (topic names) from the static config overlaid with the dynamic cluster
    /// defaults and this broker's dynamic configs.
    fn effective_topic_defaults(&self) -> BTreeMap<String, String> {
        let mut defaults = self.options.topic_defaults.clone();
        let node = self.options.node_id.to_string();
        for name in ["", node.as_str()] {
            for (config, value) in self.dynamic.of(RESOURCE_BROKER, name) {
                if let Some(topic) = topic_config_for_broker_synonym(&config) {
                    defaults.insert(topic.name.to_string(), value);
                }
            }
        }
        defaults
    }

    /// Pushes the current broker configs to the topics and the connection limits.
    fn apply_broker_configs(&self) -> Result<(), Refusal> {
        self.dynamic
            .limits
            .set(&|name| self.broker_config_value(name));
        let defaults = self.effective_topic_defaults();
        self.topics
            .set_defaults(defaults)
            .map_err(|e| Refusal::request(e.to_string()))
    }

    /// The connection limits, for the server's accept loop.
    pub fn connection_limits(&self) -> Arc<ConnectionLimits> {
        Arc::clone(&self.dynamic.limits)
    }

    /// Checks a broker resource name: "" (the cluster default) or this node's id.
    pub(crate) fn check_broker_name(&self, name: &str) -> Result<(), Refusal> {
        if name.is_empty() {
            return Ok(());
        }
        let id: i32 = name.parse().map_err(|_| {
            Refusal::request(format!("Node id must be an integer, but it is: {name}"))
        })?;
        if id != self.options.node_id {
            return Err(Refusal::request(format!(
                "Unexpected broker id, expected {}, but received {name}",
                self.options.node_id
            )));
        }
        Ok(())
    }

    /// Changes the dynamic configs of a broker resource: `new` replaces what is stored for it.
    /// Checked whole (Kafka's `DynamicBrokerConfig.validate`), then stored, then applied.
    pub(crate) async fn alter_broker_configs(
        self: &Arc<Self>,
        name: &str,
        ops: Option<&[(String, i8, Option<String>)]>,
        replacement: Option<BTreeMap<String, String>>,
        validate_only: bool,
    ) -> Result<Vec<String>, Refusal> {
        self.check_broker_name(name)?;
        if let Some(ops) = ops {
            check_ops(ops)?;
        }
        let _writer = self.dynamic.writer.lock().await;
        let current = self.dynamic.of(RESOURCE_BROKER, name);
        let mut new = match replacement {
            Some(all) => all,
            None => current.clone(),
        };
        if let Some(ops) = ops {
            let kind = |n: &str| broker_config_def(n).map(|d| d.kind);
            let value = |n: &str| self.broker_config_value(n).unwrap_or_default();
            apply_ops(&mut new, ops, &kind, &value)?;
        }
        // Names the request touches: Kafka checks those it changes.
        let touched: Vec<&str> = match ops {
            Some(ops) => ops.iter().map(|(n, _, _)| n.as_str()).collect(),
            None => new.keys().map(String::as_str).collect(),
        };
        let unknown: Vec<&str> = touched
            .iter()
            .copied()
            .filter(|n| broker_config_def(n).is_none())
            .collect();
        if !unknown.is_empty() {
            return Err(Refusal::request(format!(
                "Unknown broker configs: {}",
                scala_set(unknown)
            )));
        }
        let read_only: Vec<&str> = touched
            .iter()
            .copied()
            .filter(|n| broker_config_def(n).is_some_and(|d| d.mode == UpdateMode::ReadOnly))
            .collect();
        if !read_only.is_empty() {
            return Err(Refusal::request(format!(
                "Cannot update these configs dynamically: {}",
                scala_set(read_only)
            )));
        }
        for (config, value) in &new {
            if let Some(def) = broker_config_def(config) {
                validate_broker_value(&def, value)?;
            }
        }
        let per_ip = new
            .get("max.connections.per.ip")
            .cloned()
            .or_else(|| self.broker_config_value("max.connections.per.ip"));
        let overrides = new
            .get("max.connections.per.ip.overrides")
            .cloned()
            .or_else(|| self.broker_config_value("max.connections.per.ip.overrides"))
            .unwrap_or_default();
        if per_ip.as_deref().map(str::trim) == Some("0") && overrides.trim().is_empty() {
            return Err(Refusal::request(
                "Invalid value 0 for configuration max.connections.per.ip: max.connections.per.ip can be set to zero only if max.connections.per.ip.overrides property is set.",
            ));
        }
        // The topic defaults this would give must resolve, for every existing topic too.
        let mut defaults = self.options.topic_defaults.clone();
        let node = self.options.node_id.to_string();
        for level in ["", node.as_str()] {
            let configs = if level == name {
                new.clone()
            } else {
                self.dynamic.of(RESOURCE_BROKER, level)
            };
            for (config, value) in configs {
                if let Some(topic) = topic_config_for_broker_synonym(&config) {
                    defaults.insert(topic.name.to_string(), value);
                }
            }
        }
        self.topics
            .check_defaults(&defaults)
            .map_err(|e| Refusal::request(e.to_string()))?;
        let changes = diff(&current, &new);
        if validate_only || changes.is_empty() {
            return Ok(Vec::new());
        }
        self.store_configs(RESOURCE_BROKER, name, &changes).await?;
        self.dynamic
            .replace((RESOURCE_BROKER, name.to_string()), new);
        self.apply_broker_configs()?;
        let described: Vec<String> = changes
            .iter()
            .map(|(k, v)| match v {
                Some(v) => format!("{k}={v}"),
                None => format!("{k} deleted"),
            })
            .collect();
        tracing::info!(
            broker = if name.is_empty() { "<default>" } else { name },
            changes = %described.join(", "),
            "altered dynamic broker configs"
        );
        Ok(described)
    }

    /// Appends config changes (`None`: deleted) to `__cluster_configs` as one batch and waits
    /// until they are durable.
    pub(crate) async fn store_configs(
        self: &Arc<Self>,
        resource_type: i8,
        name: &str,
        changes: &[(String, Option<String>)],
    ) -> Result<(), Refusal> {
        let records: Vec<(Vec<u8>, Option<Vec<u8>>)> = changes
            .iter()
            .map(|(config, value)| {
                let key = serde_json::to_vec(&RecordKey {
                    resource_type,
                    name: name.to_string(),
                    config: config.clone(),
                })
                .unwrap_or_default();
                let value = value
                    .as_ref()
                    .and_then(|v| serde_json::to_vec(&RecordValue { value: v.clone() }).ok());
                (key, value)
            })
            .collect();
        self.append_state_records(CONFIGS_TOPIC, &records)
            .await
            .map(|_| ())
            .map_err(|err| {
                tracing::error!(error = %err, "could not store dynamic configs");
                Refusal {
                    code: ResponseError::KafkaStorageError,
                    message: err.to_string(),
                }
            })
    }

    /// Stores a resource's new dynamic configs in memory once durable (group configs).
    pub(crate) fn replace_dynamic(
        &self,
        resource_type: i8,
        name: &str,
        configs: BTreeMap<String, String>,
    ) {
        self.dynamic
            .replace((resource_type, name.to_string()), configs);
    }
}

/// What changes from `old` to `new`: set values, and `None` for removed ones.
pub(crate) fn diff(
    old: &BTreeMap<String, String>,
    new: &BTreeMap<String, String>,
) -> Vec<(String, Option<String>)> {
    let mut changes: Vec<(String, Option<String>)> = new
        .iter()
        .filter(|(k, v)| old.get(*k) != Some(v))
        .map(|(k, v)| (k.clone(), Some(v.clone())))
        .collect();
    changes.extend(
        old.keys()
            .filter(|k| !new.contains_key(*k))
            .map(|k| (k.clone(), None)),
    );
    changes
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn update_modes_follow_kafka() {
        for dynamic in [
            "log.retention.ms",
            "log.retention.bytes",
            "log.segment.bytes",
            "log.cleanup.policy",
            "message.max.bytes",
            "min.insync.replicas",
            "max.connections",
            "max.connections.per.ip",
            "max.connections.per.ip.overrides",
            "max.connection.creation.rate",
        ] {
            let def = broker_config_def(dynamic).expect(dynamic);
            assert_eq!(def.mode, UpdateMode::ClusterWide, "{dynamic}");
        }
        for read_only in [
            "auto.create.topics.enable",
            "log.retention.hours",
            "num.partitions",
            "broker.id",
        ] {
            let def = broker_config_def(read_only).expect(read_only);
            assert_eq!(def.mode, UpdateMode::ReadOnly, "{read_only}");
        }
        assert!(broker_config_def("no.such.config").is_none());
        assert_eq!(scala_set(["b", "a"]), "Set(a, b)");
    }

    #[test]
    fn values_are_checked_with_the_broker_name() {
        let def = broker_config_def("log.retention.ms").expect("def");
        let err = validate_broker_value(&def, "soon").expect_err("not a number");
        assert_eq!(
            err.message,
            "Invalid value soon for configuration log.retention.ms: Not a number of type LONG"
        );
        let def = broker_config_def("max.connections.per.ip.overrides").expect("def");
        validate_broker_value(&def, "127.0.0.1:5, ::1:7").expect("valid overrides");
        assert!(validate_broker_value(&def, "localhost:5").is_err());
        let overrides = parse_overrides("127.0.0.1:5").expect("parse");
        assert_eq!(overrides.get(&"127.0.0.1".parse().expect("ip")), Some(&5));
    }

    #[test]
    fn ops_and_diffs() {
        let mut configs = BTreeMap::new();
        let kind = |n: &str| broker_config_def(n).map(|d| d.kind);
        let value = |_: &str| "delete".to_string();
        let ops = vec![
            (
                "log.retention.ms".to_string(),
                OP_SET,
                Some("1000".to_string()),
            ),
            (
                "log.cleanup.policy".to_string(),
                OP_APPEND,
                Some("compact".to_string()),
            ),
        ];
        check_ops(&ops).expect("valid");
        apply_ops(&mut configs, &ops, &kind, &value).expect("apply");
        assert_eq!(configs["log.cleanup.policy"], "delete,compact");
        let appended = vec![(
            "log.retention.ms".to_string(),
            OP_APPEND,
            Some("1".to_string()),
        )];
        assert!(apply_ops(&mut configs, &appended, &kind, &value).is_err());
        let twice = vec![
            ("a".to_string(), OP_SET, Some("1".to_string())),
            ("a".to_string(), OP_DELETE, None),
        ];
        assert!(check_ops(&twice).is_err());
        let old = BTreeMap::from([("a".to_string(), "1".to_string())]);
        let new = BTreeMap::from([("b".to_string(), "2".to_string())]);
        assert_eq!(
            diff(&old, &new),
            vec![
                ("b".to_string(), Some("2".to_string())),
                ("a".to_string(), None)
            ]
        );
    }
}
