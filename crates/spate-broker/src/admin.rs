//! CreateTopics, DeleteTopics and CreatePartitions.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use kafka_protocol::messages::create_partitions_response::{
    CreatePartitionsResponse, CreatePartitionsTopicResult,
};
use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::create_topics_response::{
    CreatableTopicConfigs, CreatableTopicResult, CreateTopicsResponse,
};
use kafka_protocol::messages::delete_topics_response::{
    DeletableTopicResult, DeleteTopicsResponse,
};
use kafka_protocol::messages::{
    CreatePartitionsRequest, CreateTopicsRequest, DeleteTopicsRequest, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use uuid::Uuid;

use kafka_protocol::ResponseError;
use spate_auth::acl::{Operation, ResourceType};

use crate::Broker;
use crate::authz::Caller;
use crate::error::BrokerError;

impl Broker {
    pub(crate) async fn create_topics(
        self: &Arc<Self>,
        req: CreateTopicsRequest,
        version: i16,
        caller: &Caller,
    ) -> CreateTopicsResponse {
        let broker = Arc::clone(self);
        let caller = caller.clone();
        let work = move || {
            let mut response = CreateTopicsResponse::default();
            let mut counts = std::collections::HashMap::new();
            for topic in &req.topics {
                *counts.entry(topic.name.to_string()).or_insert(0) += 1;
            }
            for topic in req.topics {
                let mut result = CreatableTopicResult::default()
                    .with_name(topic.name.clone())
                    .with_num_partitions(-1)
                    .with_replication_factor(-1);
                let outcome = if counts.get(topic.name.as_str()).copied().unwrap_or(0) > 1 {
                    Err(BrokerError::InvalidRequest {
                        reason: format!(
                            "topic {} appears more than once in the request",
                            &*topic.name
                        ),
                    })
                } else if !broker.allows_topic_creation(&caller, &topic.name) {
                    Err(BrokerError::TopicAuthorizationFailed {
                        name: topic.name.to_string(),
                        operation: "create",
                    })
                } else {
                    broker.create_one(&topic, req.validate_only)
                };
                match outcome {
                    Ok((id, partitions, overrides)) => {
                        if !req.validate_only {
                            broker.audit_change(
                                &caller,
                                format!("TOPIC:{}", &*topic.name),
                                "CREATE",
                                format!("partitions={partitions} configs={overrides:?}"),
                            );
                        }
                        if version >= 7 {
                            result.topic_id = id;
                        }
                        result.num_partitions = partitions;
                        result.replication_factor = 1;
                        let configs_visible = broker.allows(
                            &caller,
                            Operation::DescribeConfigs,
                            ResourceType::Topic,
                            &topic.name,
                        );
                        if version >= 5 && !configs_visible {
                            result.topic_config_error_code =
                                ResponseError::TopicAuthorizationFailed.code();
                        } else if version >= 5 {
                            let configs = broker
                                .topic_config_entries(&overrides)
                                .into_iter()
                                .map(|entry| {
                                    CreatableTopicConfigs::default()
                                        .with_name(StrBytes::from_string(entry.name))
                                        .with_value(Some(StrBytes::from_string(entry.value)))
                                        .with_read_only(false)
                                        .with_config_source(entry.source)
                                        .with_is_sensitive(false)
                                })
                                .collect();
                            result.configs = Some(configs);
                        }
                    }
                    Err(err) => {
                        tracing::info!(topic = %&*topic.name, error = %err, "refused to create topic");
                        result.error_code = err.code();
                        result.error_message = Some(StrBytes::from_string(err.to_string()));
                    }
                }
                response.topics.push(result);
            }
            response
        };
        tokio::task::spawn_blocking(work).await.unwrap_or_default()
    }

    /// Creates (or, with `validate_only`, checks) one topic; blocking.
    fn create_one(
        &self,
        topic: &CreatableTopic,
        validate_only: bool,
    ) -> Result<(Uuid, i32, BTreeMap<String, String>), BrokerError> {
        let name = topic.name.as_str();
        // The broker creates its own topics when it first needs them, with their settings.
        if crate::topics::INTERNAL_TOPICS.contains(&name) {
            return Err(BrokerError::InvalidRequest {
                reason: format!("Creation of internal topic {name} is prohibited."),
            });
        }
        let mut configs = BTreeMap::new();
        for config in &topic.configs {
            let value = config
                .value
                .as_ref()
                .ok_or_else(|| BrokerError::InvalidConfig {
                    reason: format!("null value for config {}", &*config.name),
                })?;
            configs.insert(config.name.to_string(), value.to_string());
        }
        let node = self.options.node_id;
        let partitions = if topic.assignments.is_empty() {
            match topic.replication_factor {
                -1 | 1 => {}
                factor => return Err(BrokerError::InvalidReplicationFactor { factor, brokers: 1 }),
            }
            match topic.num_partitions {
                -1 => self.options.default_partitions,
                n => n,
            }
        } else {
            if topic.num_partitions != -1 || topic.replication_factor != -1 {
                return Err(BrokerError::InvalidRequest {
                    reason: "set either partitions and replication factor or replica assignments, not both".into(),
                });
            }
            let mut indexes: Vec<i32> = topic
                .assignments
                .iter()
                .map(|a| a.partition_index)
                .collect();
            indexes.sort_unstable();
            if indexes.iter().enumerate().any(|(i, p)| *p != i as i32) {
                return Err(BrokerError::InvalidReplicaAssignment {
                    reason: "partitions must be numbered 0 to n-1".into(),
                });
            }
            check_assignment(
                topic.assignments.iter().map(|a| a.broker_ids.as_slice()),
                node,
            )?;
            topic.assignments.len() as i32
        };
        if validate_only {
            self.topics.check_create(name, partitions, &configs)?;
            return Ok((Uuid::nil(), partitions, configs));
        }
        let created = self
            .topics
            .create(name, partitions, configs.clone(), self.now_ms())?;
        Ok((created.id, partitions, configs))
    }

    pub(crate) async fn delete_topics(
        self: &Arc<Self>,
        req: DeleteTopicsRequest,
        version: i16,
        caller: &Caller,
    ) -> DeleteTopicsResponse {
        let broker = Arc::clone(self);
        let caller = caller.clone();
        let work = move || {
            let mut response = DeleteTopicsResponse::default();
            let requests: Vec<(Option<TopicName>, Uuid)> = if version >= 6 {
                req.topics
                    .into_iter()
                    .map(|t| (t.name, t.topic_id))
                    .collect()
            } else {
                req.topic_names
                    .into_iter()
                    .map(|n| (Some(n), Uuid::nil()))
                    .collect()
            };
            let mut seen = HashSet::new();
            for (name, id) in requests {
                let mut result = DeletableTopicResult::default()
                    .with_name(name.clone())
                    .with_topic_id(id);
                let denied = |name: &str| BrokerError::TopicAuthorizationFailed {
                    name: name.to_string(),
                    operation: "delete",
                };
                let topic = match &name {
                    Some(name)
                        if !broker.allows(
                            &caller,
                            Operation::Delete,
                            ResourceType::Topic,
                            name,
                        ) =>
                    {
                        Err(denied(name))
                    }
                    Some(name) => broker.topics.get(name).ok_or_else(|| {
                        BrokerError::UnknownTopicOrPartition {
                            name: name.to_string(),
                        }
                    }),
                    None => broker
                        .topics
                        .get_by_id(&id)
                        .ok_or_else(|| BrokerError::UnknownTopicId { id: id.to_string() })
                        .and_then(|topic| {
                            if broker.allows(
                                &caller,
                                Operation::Delete,
                                ResourceType::Topic,
                                &topic.name,
                            ) {
                                Ok(topic)
                            } else {
                                Err(denied(&topic.name))
                            }
                        }),
                };
                let outcome = topic.and_then(|topic| {
                    result.name = Some(TopicName(StrBytes::from_string(topic.name.clone())));
                    result.topic_id = topic.id;
                    if topic.is_internal() {
                        return Err(BrokerError::InvalidTopic {
                            name: topic.name.clone(),
                            reason: "internal topics cannot be deleted".into(),
                        });
                    }
                    if !seen.insert(topic.id) {
                        return Err(BrokerError::InvalidRequest {
                            reason: format!(
                                "topic {} appears more than once in the request",
                                topic.name
                            ),
                        });
                    }
                    broker.topics.delete(&topic.name)?;
                    broker.audit_change(&caller, format!("TOPIC:{}", topic.name), "DELETE", "");
                    Ok(())
                });
                if let Err(err) = outcome {
                    result.error_code = err.code();
                    if version >= 5 {
                        result.error_message = Some(StrBytes::from_string(err.to_string()));
                    }
                }
                if version < 6 {
                    result.topic_id = Uuid::nil();
                }
                response.responses.push(result);
            }
            response
        };
        tokio::task::spawn_blocking(work).await.unwrap_or_default()
    }

    pub(crate) async fn create_partitions(
        self: &Arc<Self>,
        req: CreatePartitionsRequest,
        caller: &Caller,
    ) -> CreatePartitionsResponse {
        let broker = Arc::clone(self);
        let caller = caller.clone();
        let work = move || {
            let mut response = CreatePartitionsResponse::default();
            let node = broker.options.node_id;
            for topic in req.topics {
                let mut result =
                    CreatePartitionsTopicResult::default().with_name(topic.name.clone());
                let outcome = (|| {
                    if !broker.allows(&caller, Operation::Alter, ResourceType::Topic, &topic.name) {
                        return Err(BrokerError::TopicAuthorizationFailed {
                            name: topic.name.to_string(),
                            operation: "alter",
                        });
                    }
                    if broker
                        .topics
                        .get(&topic.name)
                        .is_some_and(|t| t.is_internal())
                    {
                        return Err(BrokerError::InvalidTopic {
                            name: topic.name.to_string(),
                            reason: "internal topics keep their partition count".into(),
                        });
                    }
                    if let Some(assignments) = &topic.assignments {
                        let current = broker
                            .topics
                            .get(&topic.name)
                            .map_or(0, |t| t.partition_count());
                        if assignments.len() as i32 != topic.count - current {
                            return Err(BrokerError::InvalidReplicaAssignment {
                                reason: format!(
                                    "{} assignments given for {} new partitions",
                                    assignments.len(),
                                    topic.count - current
                                ),
                            });
                        }
                        check_assignment(
                            assignments.iter().map(|a| a.broker_ids.as_slice()),
                            node,
                        )?;
                    }
                    broker.topics.add_partitions(
                        &topic.name,
                        topic.count,
                        req.validate_only,
                        broker.now_ms(),
                    )?;
                    if !req.validate_only {
                        broker.audit_change(
                            &caller,
                            format!("TOPIC:{}", &*topic.name),
                            "ALTER",
                            format!("partitions={}", topic.count),
                        );
                    }
                    Ok(())
                })();
                if let Err(err) = outcome {
                    result.error_code = err.code();
                    result.error_message = Some(StrBytes::from_string(err.to_string()));
                }
                response.results.push(result);
            }
            response
        };
        tokio::task::spawn_blocking(work).await.unwrap_or_default()
    }
}

/// Manual assignments may only name this broker, once per partition.
fn check_assignment<'a>(
    assignments: impl Iterator<Item = &'a [kafka_protocol::messages::BrokerId]>,
    node: i32,
) -> Result<(), BrokerError> {
    for brokers in assignments {
        if brokers.len() != 1 || brokers[0].0 != node {
            return Err(BrokerError::InvalidReplicaAssignment {
                reason: format!(
                    "each partition must be assigned to exactly broker {node}, the only broker"
                ),
            });
        }
    }
    Ok(())
}
