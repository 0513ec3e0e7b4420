//! DescribeConfigs, AlterConfigs and IncrementalAlterConfigs under Kafka's names, so
//! `kafka-configs`, AdminClients and UIs work unchanged: topics (stored in each topic's
//! metadata), the broker (dynamic per-broker and cluster-default configs, `dynamic.rs`),
//! groups (KIP-848 group configs, `group_configs.rs`) and broker loggers (log levels at
//! runtime, `loggers.rs`). Authorisation is Kafka's: DESCRIBE_CONFIGS / ALTER_CONFIGS on the
//! topic, the group, or the cluster for broker and logger resources.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use kafka_protocol::ResponseError;
use kafka_protocol::messages::alter_configs_response::{
    AlterConfigsResourceResponse, AlterConfigsResponse,
};
use kafka_protocol::messages::describe_configs_response::{
    DescribeConfigsResourceResult, DescribeConfigsResponse, DescribeConfigsResult,
    DescribeConfigsSynonym,
};
use kafka_protocol::messages::incremental_alter_configs_response::{
    AlterConfigsResourceResponse as IncrementalResourceResponse, IncrementalAlterConfigsResponse,
};
use kafka_protocol::messages::{
    AlterConfigsRequest, DescribeConfigsRequest, IncrementalAlterConfigsRequest,
};
use kafka_protocol::protocol::StrBytes;
use spate_log::config::{ConfigType, TOPIC_CONFIGS, config_def};

use spate_auth::acl::{Operation, ResourceType};

use crate::Broker;
use crate::authz::Caller;
use crate::dynamic::{
    OP_APPEND, OP_DELETE, OP_SET, OP_SUBTRACT, RESOURCE_BROKER, RESOURCE_BROKER_LOGGER,
    RESOURCE_GROUP, RESOURCE_TOPIC, Refusal, UpdateMode, broker_config_def, dynamic_broker_configs,
};
use crate::error::BrokerError;
use crate::group_configs::GROUP_CONFIGS;

/// Kafka's DescribeConfigs config sources.
const SOURCE_TOPIC: i8 = 1;
const SOURCE_DYNAMIC_DEFAULT_BROKER: i8 = 3;
const SOURCE_STATIC_BROKER: i8 = 4;
const SOURCE_DEFAULT: i8 = 5;
const SOURCE_DYNAMIC_BROKER_LOGGER: i8 = 6;
const SOURCE_GROUP: i8 = 8;

fn s(value: impl Into<String>) -> StrBytes {
    StrBytes::from_string(value.into())
}

/// One config as DescribeConfigs and CreateTopics report it.
pub(crate) struct ConfigEntry {
    pub name: String,
    pub value: String,
    pub source: i8,
    /// Kafka's type; `None` for loggers, which Kafka reports as UNKNOWN.
    pub kind: Option<ConfigType>,
    pub doc: &'static str,
    pub read_only: bool,
    pub synonyms: Vec<(String, String, i8)>,
}

impl ConfigEntry {
    fn from_synonyms(
        name: &str,
        kind: ConfigType,
        doc: &'static str,
        default: &str,
        read_only: bool,
        synonyms: Vec<(String, String, i8)>,
    ) -> ConfigEntry {
        let (value, source) = synonyms
            .first()
            .map_or((default.to_string(), SOURCE_DEFAULT), |(_, v, s)| {
                (v.clone(), *s)
            });
        ConfigEntry {
            name: name.to_string(),
            value,
            source,
            kind: Some(kind),
            doc,
            read_only,
            synonyms,
        }
    }
}

/// A resource's configs, or why it cannot be described.
type Described = Result<Vec<ConfigEntry>, (ResponseError, String)>;

/// IncrementalAlterConfigs operations: name, operation, value.
type Ops = Vec<(String, i8, Option<String>)>;

impl Broker {
    /// Every topic config with its effective value and where it comes from: the topic's
    /// override, then its broker synonym's levels (dynamic per broker, dynamic cluster
    /// default, static), then the default.
    pub(crate) fn topic_config_entries(
        &self,
        overrides: &BTreeMap<String, String>,
    ) -> Vec<ConfigEntry> {
        TOPIC_CONFIGS
            .iter()
            .filter(|def| !def.internal || overrides.contains_key(def.name))
            .map(|def| {
                let mut synonyms = Vec::new();
                if let Some(value) = overrides.get(def.name) {
                    synonyms.push((def.name.to_string(), value.clone(), SOURCE_TOPIC));
                }
                match broker_config_def(def.broker_synonym) {
                    Some(broker_def) if !def.broker_synonym.is_empty() => {
                        for (value, source) in self.broker_config_layers(&broker_def) {
                            synonyms.push((def.broker_synonym.to_string(), value, source));
                        }
                    }
                    _ => {
                        if let Some(value) = self.options.topic_defaults.get(def.name) {
                            synonyms.push((
                                def.name.to_string(),
                                value.clone(),
                                SOURCE_STATIC_BROKER,
                            ));
                        }
                    }
                }
                ConfigEntry::from_synonyms(
                    def.name,
                    def.kind,
                    def.doc,
                    def.default,
                    false,
                    synonyms,
                )
            })
            .collect()
    }

    /// A broker's configs: every config Spate knows, with its levels (Kafka describes a
    /// broker id this way).
    fn broker_config_entries(&self) -> Vec<ConfigEntry> {
        let o = &self.options;
        let fixed = |name: &str, value: String, kind: ConfigType, doc: &'static str| {
            ConfigEntry::from_synonyms(
                name,
                kind,
                doc,
                "",
                true,
                vec![(name.to_string(), value, SOURCE_STATIC_BROKER)],
            )
        };
        let mut entries = vec![
            fixed(
                "advertised.listeners",
                format!("PLAINTEXT://{}:{}", o.advertised_host, o.advertised_port),
                ConfigType::List,
                "where clients connect",
            ),
            fixed(
                "auto.create.topics.enable",
                o.auto_create_topics.to_string(),
                ConfigType::Boolean,
                "create unknown topics on first use; read-only, as in Kafka",
            ),
            fixed(
                "broker.id",
                o.node_id.to_string(),
                ConfigType::Int,
                "this broker's id",
            ),
            fixed(
                "fetch.max.bytes",
                o.fetch_max_bytes.to_string(),
                ConfigType::Int,
                "largest fetch response",
            ),
            fixed(
                "log.retention.hours",
                self.topics
                    .log_config(&BTreeMap::new())
                    .ok()
                    .and_then(|c| c.retention_ms)
                    .map_or("-1".to_string(), |ms| (ms / 3_600_000).to_string()),
                ConfigType::Int,
                "retention in hours; read-only, as in Kafka: change log.retention.ms",
            ),
            fixed(
                "node.id",
                o.node_id.to_string(),
                ConfigType::Int,
                "this broker's id",
            ),
            fixed(
                "num.partitions",
                o.default_partitions.to_string(),
                ConfigType::Int,
                "partitions of auto-created topics",
            ),
        ];
        for (name, value) in &o.static_configs {
            let read_only = broker_config_def(name).is_some_and(|d| d.mode == UpdateMode::ReadOnly);
            if read_only && !entries.iter().any(|e| e.name == *name) {
                entries.push(fixed(
                    name,
                    value.clone(),
                    ConfigType::String,
                    "read-only: set at start (config file, flags or environment)",
                ));
            }
        }
        for def in dynamic_broker_configs() {
            let layers = self
                .broker_config_layers(&def)
                .into_iter()
                .map(|(value, source)| (def.name.to_string(), value, source))
                .collect();
            entries.push(ConfigEntry::from_synonyms(
                def.name,
                def.kind,
                def.doc,
                def.default,
                false,
                layers,
            ));
        }
        entries.sort_by(|a, b| a.name.cmp(&b.name));
        entries
    }

    /// The cluster-default broker configs: only those set dynamically (Kafka describes the
    /// "" broker resource this way).
    fn default_broker_config_entries(&self) -> Vec<ConfigEntry> {
        self.dynamic
            .of(RESOURCE_BROKER, "")
            .into_iter()
            .map(|(name, value)| {
                let def = broker_config_def(&name);
                ConfigEntry::from_synonyms(
                    &name,
                    def.as_ref().map_or(ConfigType::String, |d| d.kind),
                    def.as_ref().map_or("", |d| d.doc),
                    "",
                    false,
                    vec![(name.clone(), value, SOURCE_DYNAMIC_DEFAULT_BROKER)],
                )
            })
            .collect()
    }

    /// A group's configs: its own, else the broker's `group.*` defaults.
    fn group_config_entries(&self, group: &str) -> Vec<ConfigEntry> {
        let configs = self.dynamic.of(RESOURCE_GROUP, group);
        let bounds = self.group_config_bounds();
        GROUP_CONFIGS
            .iter()
            .map(|def| {
                let mut synonyms = Vec::new();
                if let Some(value) = configs.get(def.name) {
                    synonyms.push((def.name.to_string(), value.clone(), SOURCE_GROUP));
                }
                synonyms.push((
                    def.broker_config.unwrap_or(def.name).to_string(),
                    bounds.default_of(def.name),
                    SOURCE_DEFAULT,
                ));
                ConfigEntry::from_synonyms(def.name, def.kind, def.doc, "", false, synonyms)
            })
            .collect()
    }

    fn describe_resource(&self, resource_type: i8, name: &str, caller: &Caller) -> Described {
        if !self.allows_configs(caller, Operation::DescribeConfigs, resource_type, name) {
            return Err((
                config_denial(resource_type),
                format!("not authorized to describe the configs of {name}"),
            ));
        }
        let refused = |r: Refusal| (r.code, r.message);
        match resource_type {
            RESOURCE_TOPIC => match self.topics.get(name) {
                Some(topic) => Ok(self.topic_config_entries(&topic.config_overrides())),
                None => Err((
                    ResponseError::UnknownTopicOrPartition,
                    format!("topic {name} does not exist"),
                )),
            },
            RESOURCE_BROKER if name.is_empty() => Ok(self.default_broker_config_entries()),
            RESOURCE_BROKER => {
                let id: i32 = name.parse().map_err(|_| {
                    (
                        ResponseError::InvalidRequest,
                        format!("Broker id must be an integer, but it is: {name}"),
                    )
                })?;
                if id != self.options.node_id {
                    return Err((
                        ResponseError::InvalidRequest,
                        format!(
                            "Unexpected broker id, expected {} or empty string, but received {name}",
                            self.options.node_id
                        ),
                    ));
                }
                Ok(self.broker_config_entries())
            }
            RESOURCE_BROKER_LOGGER => Ok(self
                .describe_loggers(name)
                .map_err(refused)?
                .into_iter()
                .map(|(logger, level)| ConfigEntry {
                    name: logger,
                    value: level,
                    source: SOURCE_DYNAMIC_BROKER_LOGGER,
                    kind: None,
                    doc: "",
                    read_only: false,
                    synonyms: Vec::new(),
                })
                .collect()),
            RESOURCE_GROUP if name.is_empty() => Err((
                ResponseError::InvalidRequest,
                "Group name must not be empty".to_string(),
            )),
            RESOURCE_GROUP => Ok(self.group_config_entries(name)),
            other => Err((
                ResponseError::InvalidRequest,
                format!("Unsupported resource type: {other}"),
            )),
        }
    }

    pub(crate) fn describe_configs(
        &self,
        req: DescribeConfigsRequest,
        version: i16,
        caller: &Caller,
    ) -> DescribeConfigsResponse {
        let mut response = DescribeConfigsResponse::default();
        for resource in req.resources {
            let mut result = DescribeConfigsResult::default()
                .with_resource_type(resource.resource_type)
                .with_resource_name(resource.resource_name.clone());
            match self.describe_resource(resource.resource_type, &resource.resource_name, caller) {
                Err((code, message)) => {
                    result.error_code = code.code();
                    result.error_message = Some(s(message));
                }
                Ok(entries) => {
                    let wanted: Option<HashSet<&str>> = resource
                        .configuration_keys
                        .as_ref()
                        .map(|keys| keys.iter().map(|k| k.as_str()).collect());
                    for entry in entries {
                        if wanted
                            .as_ref()
                            .is_some_and(|w| !w.contains(entry.name.as_str()))
                        {
                            continue;
                        }
                        let synonyms = if req.include_synonyms {
                            entry
                                .synonyms
                                .iter()
                                .map(|(name, value, source)| {
                                    DescribeConfigsSynonym::default()
                                        .with_name(s(name.clone()))
                                        .with_value(Some(s(value.clone())))
                                        .with_source(*source)
                                })
                                .collect()
                        } else {
                            Vec::new()
                        };
                        let mut config = DescribeConfigsResourceResult::default()
                            .with_name(s(entry.name))
                            .with_value(Some(s(entry.value)))
                            .with_read_only(entry.read_only)
                            .with_config_source(entry.source)
                            .with_is_sensitive(false)
                            .with_synonyms(synonyms);
                        if version >= 3 {
                            config.config_type = entry.kind.map_or(0, ConfigType::kafka_id);
                        }
                        if version >= 3 && req.include_documentation {
                            config.documentation = Some(StrBytes::from_static_str(entry.doc));
                        }
                        result.configs.push(config);
                    }
                }
            }
            response.results.push(result);
        }
        response
    }

    /// Alters one resource: `ops` for IncrementalAlterConfigs, `replacement` (the whole new
    /// set) for AlterConfigs. Returns what changed, for the audit log.
    async fn alter_resource(
        self: &Arc<Self>,
        resource_type: i8,
        name: &str,
        ops: Option<Ops>,
        replacement: Option<BTreeMap<String, String>>,
        validate_only: bool,
        caller: &Caller,
    ) -> Result<(), Refusal> {
        let label = match resource_type {
            RESOURCE_TOPIC => format!("TOPIC:{name}"),
            RESOURCE_BROKER if name.is_empty() => "BROKER:<default>".to_string(),
            RESOURCE_BROKER => format!("BROKER:{name}"),
            RESOURCE_GROUP => format!("GROUP:{name}"),
            RESOURCE_BROKER_LOGGER => format!("BROKER_LOGGER:{name}"),
            other => format!("{other}:{name}"),
        };
        let changes = match resource_type {
            RESOURCE_TOPIC => {
                if let Some(ops) = &ops {
                    crate::dynamic::check_ops(ops)?;
                }
                let broker = Arc::clone(self);
                let topic = name.to_string();
                let outcome = tokio::task::spawn_blocking(move || {
                    broker.alter_topic(&topic, ops, replacement, validate_only)
                })
                .await
                .map_err(|e| Refusal::request(e.to_string()))?;
                outcome.map_err(|err| Refusal {
                    code: ResponseError::try_from_code(err.code())
                        .unwrap_or(ResponseError::UnknownServerError),
                    message: err.to_string(),
                })?
            }
            RESOURCE_BROKER => {
                self.alter_broker_configs(name, ops.as_deref(), replacement, validate_only)
                    .await?
            }
            RESOURCE_GROUP => {
                self.alter_group_configs(name, ops.as_deref(), replacement, validate_only)
                    .await?
            }
            RESOURCE_BROKER_LOGGER if ops.is_some() => {
                self.alter_loggers(name, ops.as_deref().unwrap_or_default(), validate_only)?
            }
            other => {
                return Err(Refusal::request(format!("Unknown resource type {other}")));
            }
        };
        if !validate_only && !changes.is_empty() {
            self.audit_change(caller, label, "ALTER_CONFIGS", changes.join(", "));
        }
        Ok(())
    }

    /// Alters a topic's overrides. Blocking.
    fn alter_topic(
        &self,
        name: &str,
        ops: Option<Ops>,
        replacement: Option<BTreeMap<String, String>>,
        validate_only: bool,
    ) -> Result<Vec<String>, BrokerError> {
        let topic = self
            .topics
            .get(name)
            .ok_or_else(|| BrokerError::UnknownTopicOrPartition {
                name: name.to_string(),
            })?;
        let mut configs = replacement.unwrap_or_else(|| topic.config_overrides());
        let defaults = self.topics.defaults();
        for (config, op, value) in ops.iter().flatten() {
            apply_op(&mut configs, &defaults, config, *op, value.as_deref())?;
        }
        let changes: Vec<String> = crate::dynamic::diff(&topic.config_overrides(), &configs)
            .into_iter()
            .map(|(k, v)| match v {
                Some(v) => format!("{k}={v}"),
                None => format!("{k} deleted"),
            })
            .collect();
        self.topics.set_configs(name, configs, validate_only)?;
        Ok(changes)
    }

    pub(crate) async fn alter_configs(
        self: &Arc<Self>,
        req: AlterConfigsRequest,
        caller: &Caller,
    ) -> AlterConfigsResponse {
        let mut response = AlterConfigsResponse::default();
        let counts = resource_counts(
            req.resources
                .iter()
                .map(|r| (r.resource_type, r.resource_name.as_str())),
        );
        for resource in req.resources {
            // Kafka answers a null message for success.
            let mut result = AlterConfigsResourceResponse::default()
                .with_error_message(None)
                .with_resource_type(resource.resource_type)
                .with_resource_name(resource.resource_name.clone());
            let name = resource.resource_name.to_string();
            let outcome = if let Err(refusal) =
                self.may_alter(caller, &counts, resource.resource_type, &name)
            {
                Err(refusal)
            } else if let Some(null) = resource.configs.iter().find(|c| c.value.is_none()) {
                Err(Refusal::request(format!(
                    "Null value not supported for : {}",
                    &*null.name
                )))
            } else if resource.resource_type == RESOURCE_BROKER_LOGGER {
                // Kafka's AlterConfigs never took log levels (only the incremental API does).
                Err(Refusal::request(format!(
                    "Unknown resource type {}",
                    resource.resource_type
                )))
            } else {
                let configs: BTreeMap<String, String> = resource
                    .configs
                    .iter()
                    .map(|c| {
                        (
                            c.name.to_string(),
                            c.value.as_deref().unwrap_or_default().to_string(),
                        )
                    })
                    .collect();
                self.alter_resource(
                    resource.resource_type,
                    &name,
                    None,
                    Some(configs),
                    req.validate_only,
                    caller,
                )
                .await
            };
            if let Err(refusal) = outcome {
                (result.error_code, result.error_message) =
                    refusal.logged(resource.resource_type, &name);
            }
            response.responses.push(result);
        }
        response
    }

    pub(crate) async fn incremental_alter_configs(
        self: &Arc<Self>,
        req: IncrementalAlterConfigsRequest,
        caller: &Caller,
    ) -> IncrementalAlterConfigsResponse {
        let mut response = IncrementalAlterConfigsResponse::default();
        let counts = resource_counts(
            req.resources
                .iter()
                .map(|r| (r.resource_type, r.resource_name.as_str())),
        );
        for resource in req.resources {
            let mut result = IncrementalResourceResponse::default()
                .with_error_message(None)
                .with_resource_type(resource.resource_type)
                .with_resource_name(resource.resource_name.clone());
            let name = resource.resource_name.to_string();
            let outcome = if let Err(refusal) =
                self.may_alter(caller, &counts, resource.resource_type, &name)
            {
                Err(refusal)
            } else {
                let ops: Ops = resource
                    .configs
                    .iter()
                    .map(|c| {
                        (
                            c.name.to_string(),
                            c.config_operation,
                            c.value.as_deref().map(str::to_string),
                        )
                    })
                    .collect();
                self.alter_resource(
                    resource.resource_type,
                    &name,
                    Some(ops),
                    None,
                    req.validate_only,
                    caller,
                )
                .await
            };
            if let Err(refusal) = outcome {
                (result.error_code, result.error_message) =
                    refusal.logged(resource.resource_type, &name);
            }
            response.responses.push(result);
        }
        response
    }
}

impl Broker {
    /// The checks AlterConfigs and IncrementalAlterConfigs make before touching a resource:
    /// ALTER_CONFIGS on it, and named once in the request.
    fn may_alter(
        &self,
        caller: &Caller,
        counts: &BTreeMap<(i8, String), usize>,
        resource_type: i8,
        name: &str,
    ) -> Result<(), Refusal> {
        if !self.allows_configs(caller, Operation::AlterConfigs, resource_type, name) {
            Err(alter_denied(resource_type, name))
        } else if counts
            .get(&(resource_type, name.to_string()))
            .is_some_and(|n| *n > 1)
        {
            Err(Refusal::request("Each resource must appear at most once."))
        } else {
            Ok(())
        }
    }

    /// May `caller` read (DESCRIBE_CONFIGS) or change (ALTER_CONFIGS) the configs of a
    /// resource: a topic's are the topic's, a group's the group's, a broker's and a broker
    /// logger's the cluster's.
    fn allows_configs(
        &self,
        caller: &Caller,
        operation: Operation,
        resource_type: i8,
        name: &str,
    ) -> bool {
        match resource_type {
            RESOURCE_TOPIC => self.allows(caller, operation, ResourceType::Topic, name),
            RESOURCE_GROUP => self.allows(caller, operation, ResourceType::Group, name),
            _ => self.allows_cluster(caller, operation),
        }
    }
}

/// How often each (resource type, name) appears in a request.
fn resource_counts<'a>(
    resources: impl Iterator<Item = (i8, &'a str)>,
) -> BTreeMap<(i8, String), usize> {
    let mut counts = BTreeMap::new();
    for (resource_type, name) in resources {
        *counts.entry((resource_type, name.to_string())).or_default() += 1;
    }
    counts
}

/// The error of a config request denied on a resource of this type.
fn config_denial(resource_type: i8) -> ResponseError {
    match resource_type {
        RESOURCE_TOPIC => ResponseError::TopicAuthorizationFailed,
        RESOURCE_GROUP => ResponseError::GroupAuthorizationFailed,
        _ => ResponseError::ClusterAuthorizationFailed,
    }
}

fn alter_denied(resource_type: i8, name: &str) -> Refusal {
    let (code, message) = match resource_type {
        RESOURCE_TOPIC => (
            ResponseError::TopicAuthorizationFailed,
            format!("not authorized to alter the configs of topic {name}"),
        ),
        RESOURCE_GROUP => (
            ResponseError::GroupAuthorizationFailed,
            format!("not authorized to alter the configs of group {name}"),
        ),
        _ => (
            ResponseError::ClusterAuthorizationFailed,
            "not authorized to alter the broker's configs".to_string(),
        ),
    };
    Refusal { code, message }
}

/// Applies one IncrementalAlterConfigs operation to a topic's overrides.
fn apply_op(
    configs: &mut BTreeMap<String, String>,
    defaults: &BTreeMap<String, String>,
    name: &str,
    op: i8,
    value: Option<&str>,
) -> Result<(), BrokerError> {
    let def = config_def(name).ok_or_else(|| BrokerError::InvalidConfig {
        reason: format!("Unknown topic config name: {name}"),
    })?;
    let need_value = || {
        value.ok_or_else(|| BrokerError::InvalidConfig {
            reason: format!("config {name} needs a value"),
        })
    };
    match op {
        OP_SET => {
            configs.insert(name.to_string(), need_value()?.to_string());
        }
        OP_DELETE => {
            configs.remove(name);
        }
        OP_APPEND | OP_SUBTRACT => {
            if def.kind != ConfigType::List {
                return Err(BrokerError::InvalidConfig {
                    reason: format!(
                        "config {name} is not a list; APPEND and SUBTRACT apply to lists"
                    ),
                });
            }
            let current = configs
                .get(name)
                .or_else(|| defaults.get(name))
                .cloned()
                .unwrap_or_else(|| def.default.to_string());
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
                if op == OP_APPEND {
                    if !items.iter().any(|i| i == item) {
                        items.push(item.to_string());
                    }
                } else {
                    items.retain(|i| i != item);
                }
            }
            configs.insert(name.to_string(), items.join(","));
        }
        other => {
            return Err(BrokerError::InvalidRequest {
                reason: format!("unknown config operation {other}"),
            });
        }
    }
    if let Some(value) = configs.get(name) {
        spate_log::config::validate(name, value).map_err(|e| BrokerError::InvalidConfig {
            reason: e.to_string(),
        })?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn incremental_ops_follow_kafka_semantics() {
        let mut configs = BTreeMap::new();
        let defaults = BTreeMap::new();
        apply_op(
            &mut configs,
            &defaults,
            "retention.ms",
            OP_SET,
            Some("1000"),
        )
        .expect("set");
        assert_eq!(
            configs.get("retention.ms").map(String::as_str),
            Some("1000")
        );
        apply_op(
            &mut configs,
            &defaults,
            "cleanup.policy",
            OP_APPEND,
            Some("compact"),
        )
        .expect("append");
        assert_eq!(
            configs.get("cleanup.policy").map(String::as_str),
            Some("delete,compact")
        );
        apply_op(
            &mut configs,
            &defaults,
            "cleanup.policy",
            OP_SUBTRACT,
            Some("delete"),
        )
        .expect("subtract");
        assert_eq!(
            configs.get("cleanup.policy").map(String::as_str),
            Some("compact")
        );
        apply_op(&mut configs, &defaults, "retention.ms", OP_DELETE, None).expect("delete");
        assert!(!configs.contains_key("retention.ms"));
        assert!(
            apply_op(
                &mut configs,
                &defaults,
                "retention.ms",
                OP_APPEND,
                Some("1")
            )
            .is_err()
        );
        assert!(apply_op(&mut configs, &defaults, "retention.ms", OP_SET, Some("x")).is_err());
        assert!(apply_op(&mut configs, &defaults, "no.such", OP_SET, Some("1")).is_err());
    }
}
