//! DescribeConfigs, AlterConfigs and IncrementalAlterConfigs for topics (and read-only broker
//! configs), under Kafka's names so `kafka-configs`, AdminClients and UIs work unchanged.

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
use crate::error::BrokerError;

pub(crate) const RESOURCE_TOPIC: i8 = 2;
pub(crate) const RESOURCE_BROKER: i8 = 4;

/// Kafka's DescribeConfigs config sources.
const SOURCE_DYNAMIC_TOPIC: i8 = 1;
const SOURCE_STATIC_BROKER: i8 = 4;
const SOURCE_DEFAULT: i8 = 5;

const OP_SET: i8 = 0;
const OP_DELETE: i8 = 1;
const OP_APPEND: i8 = 2;
const OP_SUBTRACT: i8 = 3;

/// The broker config that sets each topic config's default (Kafka's ServerTopicConfigSynonyms).
fn broker_synonym(topic_config: &str) -> &'static str {
    match topic_config {
        "cleanup.policy" => "log.cleanup.policy",
        "compression.type" => "compression.type",
        "delete.retention.ms" => "log.cleaner.delete.retention.ms",
        "file.delete.delay.ms" => "log.segment.delete.delay.ms",
        "flush.messages" => "log.flush.interval.messages",
        "flush.ms" => "log.flush.interval.ms",
        "index.interval.bytes" => "log.index.interval.bytes",
        "max.compaction.lag.ms" => "log.cleaner.max.compaction.lag.ms",
        "max.message.bytes" => "message.max.bytes",
        "message.timestamp.after.max.ms" => "log.message.timestamp.after.max.ms",
        "message.timestamp.before.max.ms" => "log.message.timestamp.before.max.ms",
        "message.timestamp.type" => "log.message.timestamp.type",
        "min.cleanable.dirty.ratio" => "log.cleaner.min.cleanable.ratio",
        "min.compaction.lag.ms" => "log.cleaner.min.compaction.lag.ms",
        "min.insync.replicas" => "min.insync.replicas",
        "preallocate" => "log.preallocate",
        "retention.bytes" => "log.retention.bytes",
        "retention.ms" => "log.retention.ms",
        "segment.bytes" => "log.segment.bytes",
        "segment.index.bytes" => "log.index.size.max.bytes",
        "segment.jitter.ms" => "log.roll.jitter.ms",
        "segment.ms" => "log.roll.ms",
        "unclean.leader.election.enable" => "unclean.leader.election.enable",
        _ => "",
    }
}

fn s(value: impl Into<String>) -> StrBytes {
    StrBytes::from_string(value.into())
}

/// One config as DescribeConfigs and CreateTopics report it.
pub(crate) struct ConfigEntry {
    pub name: String,
    pub value: String,
    pub source: i8,
    pub kind: ConfigType,
    pub doc: &'static str,
    pub synonyms: Vec<(String, String, i8)>,
}

impl Broker {
    /// Every topic config with its effective value and where it comes from.
    pub(crate) fn topic_config_entries(
        &self,
        overrides: &BTreeMap<String, String>,
    ) -> Vec<ConfigEntry> {
        let defaults = self.topics.defaults();
        TOPIC_CONFIGS
            .iter()
            .map(|def| {
                let mut synonyms = Vec::new();
                if let Some(value) = overrides.get(def.name) {
                    synonyms.push((def.name.to_string(), value.clone(), SOURCE_DYNAMIC_TOPIC));
                }
                let synonym = broker_synonym(def.name).to_string();
                if let Some(value) = defaults.get(def.name) {
                    synonyms.push((synonym.clone(), value.clone(), SOURCE_STATIC_BROKER));
                }
                synonyms.push((synonym, def.default.to_string(), SOURCE_DEFAULT));
                let (_, value, source) = synonyms[0].clone();
                ConfigEntry {
                    name: def.name.to_string(),
                    value,
                    source,
                    kind: def.kind,
                    doc: def.doc,
                    synonyms,
                }
            })
            .collect()
    }

    fn broker_config_entries(&self) -> Vec<ConfigEntry> {
        let o = &self.options;
        let fixed = |name: &str, value: String, kind: ConfigType, doc: &'static str| ConfigEntry {
            name: name.to_string(),
            value,
            source: SOURCE_STATIC_BROKER,
            kind,
            doc,
            synonyms: Vec::new(),
        };
        let mut entries = vec![
            fixed(
                "broker.id",
                o.node_id.to_string(),
                ConfigType::Int,
                "this broker's id",
            ),
            fixed(
                "node.id",
                o.node_id.to_string(),
                ConfigType::Int,
                "this broker's id",
            ),
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
                "create unknown topics on first use",
            ),
            fixed(
                "num.partitions",
                o.default_partitions.to_string(),
                ConfigType::Int,
                "partitions of auto-created topics",
            ),
            fixed(
                "fetch.max.bytes",
                o.fetch_max_bytes.to_string(),
                ConfigType::Int,
                "largest fetch response",
            ),
        ];
        for entry in self.topic_config_entries(&BTreeMap::new()) {
            let synonym = broker_synonym(&entry.name);
            if synonym.is_empty() || entries.iter().any(|e| e.name == synonym) {
                continue;
            }
            let mut entry = entry;
            entry.synonyms.retain(|(name, _, _)| name == synonym);
            entry.name = synonym.to_string();
            entries.push(entry);
        }
        entries
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
            let entries = match resource.resource_type {
                kind if !self.allows_configs(
                    caller,
                    Operation::DescribeConfigs,
                    kind,
                    &resource.resource_name,
                ) =>
                {
                    Err((
                        config_denial(kind),
                        format!(
                            "not authorized to describe the configs of {}",
                            &*resource.resource_name
                        ),
                    ))
                }
                RESOURCE_TOPIC => match self.topics.get(&resource.resource_name) {
                    Some(topic) => Ok(self.topic_config_entries(&topic.config_overrides())),
                    None => Err((
                        ResponseError::UnknownTopicOrPartition,
                        format!("topic {} does not exist", &*resource.resource_name),
                    )),
                },
                RESOURCE_BROKER => {
                    let name = resource.resource_name.as_str();
                    if name.is_empty() || name == self.options.node_id.to_string() {
                        Ok(self.broker_config_entries())
                    } else {
                        Err((
                            ResponseError::InvalidRequest,
                            format!("this is broker {}, not {name}", self.options.node_id),
                        ))
                    }
                }
                other => Err((
                    ResponseError::InvalidRequest,
                    format!("config resource type {other} is not supported"),
                )),
            };
            match entries {
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
                        let read_only = resource.resource_type == RESOURCE_BROKER;
                        let mut config = DescribeConfigsResourceResult::default()
                            .with_name(s(entry.name))
                            .with_value(Some(s(entry.value)))
                            .with_read_only(read_only)
                            .with_config_source(entry.source)
                            .with_is_sensitive(false)
                            .with_synonyms(synonyms);
                        if version >= 3 {
                            config.config_type = entry.kind.kafka_id();
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

    pub(crate) async fn alter_configs(
        self: &Arc<Self>,
        req: AlterConfigsRequest,
        caller: &Caller,
    ) -> AlterConfigsResponse {
        let broker = Arc::clone(self);
        let caller = caller.clone();
        let work = move || {
            let mut response = AlterConfigsResponse::default();
            for resource in req.resources {
                let mut result = AlterConfigsResourceResponse::default()
                    .with_resource_type(resource.resource_type)
                    .with_resource_name(resource.resource_name.clone());
                let changes = resource
                    .configs
                    .iter()
                    .map(|c| format!("{}={}", &*c.name, c.value.as_deref().unwrap_or("")))
                    .collect::<Vec<_>>()
                    .join(", ");
                let outcome = match resource.resource_type {
                    kind if !broker.allows_configs(
                        &caller,
                        Operation::AlterConfigs,
                        kind,
                        &resource.resource_name,
                    ) =>
                    {
                        Err(alter_denied(kind, &resource.resource_name))
                    }
                    RESOURCE_TOPIC => {
                        let mut configs = BTreeMap::new();
                        let mut error = None;
                        for config in &resource.configs {
                            match &config.value {
                                Some(value) => {
                                    configs.insert(config.name.to_string(), value.to_string());
                                }
                                None => {
                                    error = Some(BrokerError::InvalidConfig {
                                        reason: format!("null value for config {}", &*config.name),
                                    });
                                }
                            }
                        }
                        match error {
                            Some(err) => Err(err),
                            None => broker.topics.set_configs(
                                &resource.resource_name,
                                configs,
                                req.validate_only,
                            ),
                        }
                    }
                    other => Err(unsupported_resource(other)),
                };
                match outcome {
                    Err(err) => {
                        result.error_code = err.code();
                        result.error_message = Some(s(err.to_string()));
                    }
                    Ok(_) if !req.validate_only => broker.audit_change(
                        &caller,
                        format!("TOPIC:{}", &*resource.resource_name),
                        "ALTER_CONFIGS",
                        changes,
                    ),
                    Ok(_) => {}
                }
                response.responses.push(result);
            }
            response
        };
        tokio::task::spawn_blocking(work).await.unwrap_or_default()
    }

    pub(crate) async fn incremental_alter_configs(
        self: &Arc<Self>,
        req: IncrementalAlterConfigsRequest,
        caller: &Caller,
    ) -> IncrementalAlterConfigsResponse {
        let broker = Arc::clone(self);
        let caller = caller.clone();
        let work = move || {
            let mut response = IncrementalAlterConfigsResponse::default();
            let mut seen = HashSet::new();
            for resource in req.resources {
                let mut result = IncrementalResourceResponse::default()
                    .with_resource_type(resource.resource_type)
                    .with_resource_name(resource.resource_name.clone());
                let changes = resource
                    .configs
                    .iter()
                    .map(|c| {
                        let op = match c.config_operation {
                            0 => "set",
                            1 => "delete",
                            2 => "append",
                            3 => "subtract",
                            _ => "?",
                        };
                        format!("{op} {}={}", &*c.name, c.value.as_deref().unwrap_or(""))
                    })
                    .collect::<Vec<_>>()
                    .join(", ");
                let outcome =
                    if !seen.insert((resource.resource_type, resource.resource_name.to_string())) {
                        Err(BrokerError::InvalidRequest {
                            reason: "the same resource appears twice".into(),
                        })
                    } else {
                        match resource.resource_type {
                            kind if !broker.allows_configs(
                                &caller,
                                Operation::AlterConfigs,
                                kind,
                                &resource.resource_name,
                            ) =>
                            {
                                Err(alter_denied(kind, &resource.resource_name))
                            }
                            RESOURCE_TOPIC => match broker.topics.get(&resource.resource_name) {
                                None => Err(BrokerError::UnknownTopicOrPartition {
                                    name: resource.resource_name.to_string(),
                                }),
                                Some(topic) => {
                                    let mut configs = topic.config_overrides();
                                    let defaults = broker.topics.defaults();
                                    let mut error = None;
                                    for op in &resource.configs {
                                        if let Err(err) = apply_op(
                                            &mut configs,
                                            defaults,
                                            &op.name,
                                            op.config_operation,
                                            op.value.as_deref(),
                                        ) {
                                            error = Some(err);
                                            break;
                                        }
                                    }
                                    match error {
                                        Some(err) => Err(err),
                                        None => broker.topics.set_configs(
                                            &resource.resource_name,
                                            configs,
                                            req.validate_only,
                                        ),
                                    }
                                }
                            },
                            other => Err(unsupported_resource(other)),
                        }
                    };
                match outcome {
                    Err(err) => {
                        result.error_code = err.code();
                        result.error_message = Some(s(err.to_string()));
                    }
                    Ok(_) if !req.validate_only => broker.audit_change(
                        &caller,
                        format!("TOPIC:{}", &*resource.resource_name),
                        "ALTER_CONFIGS",
                        changes,
                    ),
                    Ok(_) => {}
                }
                response.responses.push(result);
            }
            response
        };
        tokio::task::spawn_blocking(work).await.unwrap_or_default()
    }
}

impl Broker {
    /// May `caller` read (DESCRIBE_CONFIGS) or change (ALTER_CONFIGS) the configs of a
    /// resource: a topic's are the topic's, a broker's the cluster's.
    fn allows_configs(
        &self,
        caller: &Caller,
        operation: Operation,
        resource_type: i8,
        name: &str,
    ) -> bool {
        match resource_type {
            RESOURCE_TOPIC => self.allows(caller, operation, ResourceType::Topic, name),
            _ => self.allows_cluster(caller, operation),
        }
    }
}

/// The error of a config request denied on a resource of this type.
fn config_denial(resource_type: i8) -> ResponseError {
    if resource_type == RESOURCE_TOPIC {
        ResponseError::TopicAuthorizationFailed
    } else {
        ResponseError::ClusterAuthorizationFailed
    }
}

fn alter_denied(resource_type: i8, name: &str) -> BrokerError {
    if resource_type == RESOURCE_TOPIC {
        BrokerError::TopicAuthorizationFailed {
            name: name.to_string(),
            operation: "alter the configs of",
        }
    } else {
        BrokerError::ClusterAuthorizationFailed {
            operation: "alter the broker's configs",
        }
    }
}

fn unsupported_resource(resource_type: i8) -> BrokerError {
    if resource_type == RESOURCE_BROKER {
        BrokerError::InvalidConfig {
            reason: "broker configs are read-only at runtime; set them in the config file or flags"
                .into(),
        }
    } else {
        BrokerError::InvalidRequest {
            reason: format!("config resource type {resource_type} is not supported"),
        }
    }
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
        reason: format!("unknown topic config {name}"),
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
