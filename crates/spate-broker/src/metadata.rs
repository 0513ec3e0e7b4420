//! Metadata and DescribeCluster: who leads what (this broker leads everything), with topic
//! ids, and auto-creation of topics on first use when enabled.

use std::collections::BTreeMap;
use std::sync::Arc;

use kafka_protocol::ResponseError;
use kafka_protocol::messages::describe_cluster_response::{
    DescribeClusterBroker, DescribeClusterResponse,
};
use kafka_protocol::messages::find_coordinator_response::{self, FindCoordinatorResponse};
use kafka_protocol::messages::metadata_response::{
    MetadataResponse, MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::messages::{
    BrokerId, DescribeClusterRequest, FindCoordinatorRequest, MetadataRequest, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use uuid::Uuid;

use spate_auth::acl::{CLUSTER_NAME, Operation, ResourceType};

use crate::Broker;
use crate::authz::{Caller, denied_code};
use crate::error::BrokerError;
use crate::topics::{Topic, validate_topic_name};

/// "Not requested" for authorised-operation fields.
const OPERATIONS_NOT_REQUESTED: i32 = i32::MIN;
/// DescribeCluster endpoint type for brokers.
const ENDPOINT_TYPE_BROKERS: i8 = 1;

impl Broker {
    pub(crate) async fn metadata(
        self: &Arc<Self>,
        req: MetadataRequest,
        version: i16,
        advertised: &(String, i32),
        caller: &Caller,
    ) -> MetadataResponse {
        let allow_auto_create =
            self.options.auto_create_topics && (version < 4 || req.allow_auto_topic_creation);
        let include_ops = req.include_topic_authorized_operations;
        let mut topics = Vec::new();
        let requested = match req.topics {
            // v0: an empty list means every topic; v1+: null means every topic.
            Some(list) if !(version == 0 && list.is_empty()) => Some(list),
            _ => None,
        };
        match requested {
            None => {
                // Every topic the caller may describe; the others are not mentioned.
                for topic in self.topics.list() {
                    if self.allows_quietly(
                        caller,
                        Operation::Describe,
                        ResourceType::Topic,
                        &topic.name,
                    ) {
                        topics.push(self.describe_topic(&topic, include_ops, caller));
                    }
                }
            }
            Some(list) => {
                for requested in list {
                    let entry = match requested.name {
                        // Whether a topic the caller may not describe exists is not disclosed.
                        Some(name)
                            if !name.is_empty()
                                && !self.allows(
                                    caller,
                                    Operation::Describe,
                                    ResourceType::Topic,
                                    &name,
                                ) =>
                        {
                            MetadataResponseTopic::default()
                                .with_error_code(ResponseError::TopicAuthorizationFailed.code())
                                .with_name(Some(name))
                                .with_topic_authorized_operations(OPERATIONS_NOT_REQUESTED)
                        }
                        Some(name) if !name.is_empty() => {
                            self.metadata_for_name(&name, allow_auto_create, include_ops, caller)
                                .await
                        }
                        _ => match self.topics.get_by_id(&requested.topic_id) {
                            Some(topic)
                                if !self.allows(
                                    caller,
                                    Operation::Describe,
                                    ResourceType::Topic,
                                    &topic.name,
                                ) =>
                            {
                                MetadataResponseTopic::default()
                                    .with_error_code(ResponseError::TopicAuthorizationFailed.code())
                                    .with_topic_id(requested.topic_id)
                                    .with_topic_authorized_operations(OPERATIONS_NOT_REQUESTED)
                            }
                            Some(topic) => self.describe_topic(&topic, include_ops, caller),
                            None => MetadataResponseTopic::default()
                                .with_error_code(ResponseError::UnknownTopicId.code())
                                .with_topic_id(requested.topic_id)
                                .with_topic_authorized_operations(OPERATIONS_NOT_REQUESTED),
                        },
                    };
                    topics.push(entry);
                }
            }
        }
        for topic in &mut topics {
            downgrade_topic(topic, version);
        }
        let mut response = MetadataResponse::default()
            .with_brokers(vec![
                MetadataResponseBroker::default()
                    .with_node_id(BrokerId(self.options.node_id))
                    .with_host(StrBytes::from_string(advertised.0.clone()))
                    .with_port(advertised.1),
            ])
            .with_cluster_id(Some(StrBytes::from_string(self.cluster_id.clone())))
            .with_controller_id(BrokerId(self.options.node_id))
            .with_topics(topics)
            .with_cluster_authorized_operations(
                if req.include_cluster_authorized_operations && (8..=10).contains(&version) {
                    self.authorized_operations(caller, ResourceType::Cluster, CLUSTER_NAME)
                } else {
                    OPERATIONS_NOT_REQUESTED
                },
            );
        if version < 2 {
            response.cluster_id = None;
        }
        if version < 1 {
            response.controller_id = BrokerId(-1);
        }
        response
    }

    async fn metadata_for_name(
        self: &Arc<Self>,
        name: &str,
        allow_auto_create: bool,
        include_ops: bool,
        caller: &Caller,
    ) -> MetadataResponseTopic {
        let failed = |error: ResponseError| {
            MetadataResponseTopic::default()
                .with_error_code(error.code())
                .with_name(Some(TopicName(StrBytes::from_string(name.to_string()))))
                .with_topic_id(Uuid::nil())
                .with_topic_authorized_operations(OPERATIONS_NOT_REQUESTED)
        };
        if let Some(topic) = self.topics.get(name) {
            return self.describe_topic(&topic, include_ops, caller);
        }
        if validate_topic_name(name).is_err() {
            return failed(ResponseError::InvalidTopicException);
        }
        // Spate's own topics are made when first needed, never by a client's Metadata; other
        // names with `__` are created as Kafka creates them (Debezium's
        // `__debezium-heartbeat.<prefix>`).
        if !allow_auto_create || crate::topics::INTERNAL_TOPICS.contains(&name) {
            return failed(ResponseError::UnknownTopicOrPartition);
        }
        if !self.allows_topic_creation(caller, name) {
            return failed(ResponseError::TopicAuthorizationFailed);
        }
        match self
            .create_topic_blocking(
                name.to_string(),
                self.options.default_partitions,
                BTreeMap::new(),
            )
            .await
        {
            Ok(topic) => self.describe_topic(&topic, include_ops, caller),
            // Another client created it first.
            Err(BrokerError::TopicAlreadyExists { .. }) => match self.topics.get(name) {
                Some(topic) => self.describe_topic(&topic, include_ops, caller),
                None => failed(ResponseError::LeaderNotAvailable),
            },
            Err(err) => {
                tracing::warn!(topic = name, error = %err, "could not auto-create topic");
                MetadataResponseTopic::default()
                    .with_error_code(err.code())
                    .with_name(Some(TopicName(StrBytes::from_string(name.to_string()))))
                    .with_topic_authorized_operations(OPERATIONS_NOT_REQUESTED)
            }
        }
    }

    pub(crate) async fn create_topic_blocking(
        self: &Arc<Self>,
        name: String,
        partitions: i32,
        configs: BTreeMap<String, String>,
    ) -> Result<Arc<Topic>, BrokerError> {
        let broker = Arc::clone(self);
        let now = self.now_ms();
        tokio::task::spawn_blocking(move || broker.topics.create(&name, partitions, configs, now))
            .await
            .unwrap_or_else(|err| {
                Err(BrokerError::InvalidRequest {
                    reason: format!("topic creation failed: {err}"),
                })
            })
    }

    fn describe_topic(
        &self,
        topic: &Topic,
        include_ops: bool,
        caller: &Caller,
    ) -> MetadataResponseTopic {
        let node = BrokerId(self.options.node_id);
        let partitions = (0..topic.partition_count())
            .map(|index| {
                MetadataResponsePartition::default()
                    .with_partition_index(index)
                    .with_leader_id(node)
                    .with_leader_epoch(0)
                    .with_replica_nodes(vec![node])
                    .with_isr_nodes(vec![node])
            })
            .collect();
        MetadataResponseTopic::default()
            .with_name(Some(TopicName(StrBytes::from_string(topic.name.clone()))))
            .with_topic_id(topic.id)
            .with_is_internal(topic.is_internal())
            .with_partitions(partitions)
            .with_topic_authorized_operations(if include_ops {
                self.authorized_operations(caller, ResourceType::Topic, &topic.name)
            } else {
                OPERATIONS_NOT_REQUESTED
            })
    }

    pub(crate) fn describe_cluster(
        &self,
        req: DescribeClusterRequest,
        advertised: &(String, i32),
        caller: &Caller,
    ) -> DescribeClusterResponse {
        let response = DescribeClusterResponse::default()
            .with_endpoint_type(req.endpoint_type)
            .with_cluster_id(StrBytes::from_string(self.cluster_id.clone()))
            .with_controller_id(BrokerId(self.options.node_id))
            .with_cluster_authorized_operations(if req.include_cluster_authorized_operations {
                self.authorized_operations(caller, ResourceType::Cluster, CLUSTER_NAME)
            } else {
                OPERATIONS_NOT_REQUESTED
            });
        if req.endpoint_type != ENDPOINT_TYPE_BROKERS {
            return response
                .with_error_code(ResponseError::UnsupportedEndpointType.code())
                .with_error_message(Some(StrBytes::from_static_str(
                    "Spate has no separate controllers; ask for broker endpoints",
                )));
        }
        response.with_brokers(vec![
            DescribeClusterBroker::default()
                .with_broker_id(BrokerId(self.options.node_id))
                .with_host(StrBytes::from_string(advertised.0.clone()))
                .with_port(advertised.1),
        ])
    }
}

/// Clears fields the response version does not carry (the encoder refuses them).
fn downgrade_topic(topic: &mut MetadataResponseTopic, version: i16) {
    if version < 10 {
        topic.topic_id = Uuid::nil();
    }
    if version < 1 {
        topic.is_internal = false;
    }
    if version < 8 {
        topic.topic_authorized_operations = OPERATIONS_NOT_REQUESTED;
    }
    if version < 7 {
        for partition in &mut topic.partitions {
            partition.leader_epoch = -1;
        }
    }
}

/// FindCoordinator key types.
const KEY_TYPE_GROUP: i8 = 0;
/// FindCoordinator key type of transactional ids.
const KEY_TYPE_TRANSACTION: i8 = 1;

impl Broker {
    /// Every group is coordinated by this broker. Transaction and share-group coordinators do
    /// not exist yet, so those keys get COORDINATOR_NOT_AVAILABLE.
    pub(crate) fn find_coordinator(
        &self,
        req: FindCoordinatorRequest,
        version: i16,
        advertised: &(String, i32),
        caller: &Caller,
    ) -> FindCoordinatorResponse {
        let host = StrBytes::from_string(advertised.0.clone());
        let node = BrokerId(self.options.node_id);
        let port = advertised.1;
        let supported = req.key_type == KEY_TYPE_GROUP || req.key_type == KEY_TYPE_TRANSACTION;
        let unavailable = ResponseError::CoordinatorNotAvailable;
        let message = || {
            Some(StrBytes::from_static_str(
                "share groups have no coordinator on this broker",
            ))
        };
        // DESCRIBE on the group or transactional id the key names.
        let denied = |key: &str| {
            let resource_type = match req.key_type {
                KEY_TYPE_GROUP => ResourceType::Group,
                KEY_TYPE_TRANSACTION => ResourceType::TransactionalId,
                _ => return None,
            };
            (!self.allows(caller, Operation::Describe, resource_type, key))
                .then(|| denied_code(resource_type))
        };
        if version >= 4 {
            let coordinators = req
                .coordinator_keys
                .into_iter()
                .map(|key| {
                    let denial = denied(&key);
                    let coordinator =
                        find_coordinator_response::Coordinator::default().with_key(key);
                    if let Some(code) = denial {
                        coordinator
                            .with_node_id(BrokerId(-1))
                            .with_port(-1)
                            .with_error_code(code)
                    } else if supported {
                        coordinator
                            .with_node_id(node)
                            .with_host(host.clone())
                            .with_port(port)
                    } else {
                        coordinator
                            .with_node_id(BrokerId(-1))
                            .with_port(-1)
                            .with_error_code(unavailable.code())
                            .with_error_message(message())
                    }
                })
                .collect();
            return FindCoordinatorResponse::default().with_coordinators(coordinators);
        }
        if let Some(code) = denied(&req.key) {
            FindCoordinatorResponse::default()
                .with_node_id(BrokerId(-1))
                .with_port(-1)
                .with_error_code(code)
        } else if supported {
            FindCoordinatorResponse::default()
                .with_node_id(node)
                .with_host(host)
                .with_port(port)
        } else {
            let mut response = FindCoordinatorResponse::default()
                .with_node_id(BrokerId(-1))
                .with_port(-1)
                .with_error_code(unavailable.code());
            if version >= 1 {
                response.error_message = message();
            }
            response
        }
    }
}
