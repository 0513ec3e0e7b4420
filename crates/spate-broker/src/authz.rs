//! Authorisation of requests against the ACLs, as Kafka's ACL authorizer does it.
//!
//! Every request is made by a [`Caller`]: the principal its connection authenticated as and the
//! client's address. Handlers ask [`Broker::allows`] before touching a resource and answer with
//! the error code Kafka uses for that resource type (TOPIC_AUTHORIZATION_FAILED,
//! GROUP_AUTHORIZATION_FAILED, TRANSACTIONAL_ID_AUTHORIZATION_FAILED,
//! CLUSTER_AUTHORIZATION_FAILED). Which operation each API needs follows Kafka's `KafkaApis`;
//! ARCHITECTURE.md has the table.
//!
//! With authorisation off (the default, like a Kafka broker without `authorizer.class.name`)
//! every check passes. Once on, what no ACL allows is denied, super users excepted. Denials of a
//! resource the client named are logged (one INFO line, Kafka's authorizer log); resources
//! dropped from a listing (Metadata for all topics, ListGroups) are filtered silently, as Kafka
//! does.

use std::collections::HashSet;
use std::net::IpAddr;
use std::sync::{Arc, OnceLock};

use kafka_protocol::ResponseError;
use kafka_protocol::messages::add_partitions_to_txn_response::{
    AddPartitionsToTxnPartitionResult, AddPartitionsToTxnTopicResult,
};
use kafka_protocol::messages::alter_client_quotas_response::{
    EntityData as AlterClientQuotasEntityData, EntryData as AlterClientQuotasEntryData,
};
use kafka_protocol::messages::alter_user_scram_credentials_response::AlterUserScramCredentialsResult;
use kafka_protocol::messages::create_acls_response::AclCreationResult;
use kafka_protocol::messages::delete_acls_response::DeleteAclsFilterResult;
use kafka_protocol::messages::offset_commit_response::{
    OffsetCommitResponsePartition, OffsetCommitResponseTopic,
};
use kafka_protocol::messages::produce_response::{PartitionProduceResponse, TopicProduceResponse};
use kafka_protocol::messages::txn_offset_commit_response::{
    TxnOffsetCommitResponsePartition, TxnOffsetCommitResponseTopic,
};
use kafka_protocol::messages::{
    AddOffsetsToTxnResponse, AddPartitionsToTxnResponse, AlterClientQuotasResponse,
    AlterUserScramCredentialsResponse, ApiKey, ConsumerGroupHeartbeatResponse, CreateAclsResponse,
    DeleteAclsResponse, DescribeAclsResponse, DescribeClientQuotasResponse,
    DescribeLogDirsResponse, DescribeUserScramCredentialsResponse, EndTxnResponse,
    HeartbeatResponse, InitProducerIdResponse, JoinGroupResponse, LeaveGroupResponse,
    OffsetCommitResponse, OffsetDeleteResponse, OffsetFetchResponse, ProduceRequest,
    ProduceResponse, ProducerId, RequestKind, ResponseKind, SyncGroupResponse,
    TxnOffsetCommitResponse,
};
use kafka_protocol::protocol::StrBytes;
use spate_auth::acl::{CLUSTER_NAME, Decision, Operation, ResourceType};

use crate::Broker;
use crate::audit::{AuditEvent, AuditKind};
use crate::credentials::CREDENTIALS_TOPIC;

/// The principal of a request that came without a session (in-process callers, tests).
pub const ANONYMOUS: &str = "User:ANONYMOUS";

/// What a caller called: a Kafka API, or an HTTP route (`GET /subjects`).
#[derive(Debug, Clone)]
pub enum Api {
    /// A Kafka API.
    Kafka(ApiKey),
    /// An HTTP method and path.
    Http(String),
}

impl std::fmt::Display for Api {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Api::Kafka(key) => write!(f, "{key:?}"),
            Api::Http(route) => f.write_str(route),
        }
    }
}

/// Who makes a request: the principal and the client's host (its IP address), and which API.
#[derive(Debug, Clone)]
pub struct Caller {
    /// `User:alice`, `User:CN=app,O=Example`, `User:ANONYMOUS`.
    pub principal: Arc<str>,
    /// The client's IP address, when known.
    pub ip: Option<IpAddr>,
    /// `ip` as ACL hosts name it (empty when unknown), made on first use: only ACL checks and
    /// audit records need it, so a request pays nothing for it with authorisation off.
    host: OnceLock<String>,
    /// The API being called, for the log.
    pub api: Api,
    /// The listener the request came in on, when known.
    pub listener: Option<Arc<str>>,
}

impl Caller {
    /// The caller of `request`.
    pub fn of(request: &spate_protocol::Request) -> Caller {
        Caller {
            principal: request
                .session
                .as_ref()
                .map_or_else(|| Arc::from(ANONYMOUS), |s| Arc::clone(&s.principal)),
            ip: request.peer.map(|p| p.ip()),
            host: OnceLock::new(),
            api: Api::Kafka(request.api_key),
            listener: request.session.as_ref().map(|s| Arc::clone(&s.listener)),
        }
    }

    /// A caller for requests that do not come through the Kafka protocol.
    pub fn new(principal: Arc<str>, ip: Option<IpAddr>, api: Api) -> Caller {
        Caller {
            principal,
            ip,
            host: OnceLock::new(),
            api,
            listener: None,
        }
    }

    /// The client's IP address as ACL hosts name it; empty when unknown.
    pub fn host(&self) -> &str {
        self.host
            .get_or_init(|| self.ip.map_or_else(String::new, |ip| ip.to_string()))
    }
}

/// Operations Kafka reports as possible on a topic (authorised-operations bit sets).
const TOPIC_OPERATIONS: &[Operation] = &[
    Operation::Read,
    Operation::Write,
    Operation::Create,
    Operation::Delete,
    Operation::Alter,
    Operation::Describe,
    Operation::DescribeConfigs,
    Operation::AlterConfigs,
];

/// Operations Kafka reports as possible on the cluster.
const CLUSTER_OPERATIONS: &[Operation] = &[
    Operation::Create,
    Operation::Alter,
    Operation::Describe,
    Operation::ClusterAction,
    Operation::DescribeConfigs,
    Operation::AlterConfigs,
    Operation::IdempotentWrite,
];

/// Operations Kafka reports as possible on a group.
const GROUP_OPERATIONS: &[Operation] = &[Operation::Read, Operation::Describe, Operation::Delete];

impl Broker {
    /// Whether authorisation is on.
    pub fn authorization_enabled(&self) -> bool {
        self.options.authorization.is_some()
    }

    /// May `caller` perform `operation` on the resource? Logs a denial.
    pub(crate) fn allows(
        &self,
        caller: &Caller,
        operation: Operation,
        resource_type: ResourceType,
        name: &str,
    ) -> bool {
        let Some(decision) = self.decide(caller, operation, resource_type, name) else {
            return true;
        };
        if !decision.is_allowed() {
            self.denied(caller, operation, resource_type, name, &decision);
        }
        decision.is_allowed()
    }

    /// Like [`Broker::allows`], without logging a denial: for resources the caller did not
    /// name (listings are filtered, not refused).
    pub(crate) fn allows_quietly(
        &self,
        caller: &Caller,
        operation: Operation,
        resource_type: ResourceType,
        name: &str,
    ) -> bool {
        self.decide(caller, operation, resource_type, name)
            .is_none_or(|decision| decision.is_allowed())
    }

    /// The distinct topic names among `names` on which `caller` may perform `operation`, each
    /// asked once.
    pub(crate) fn topics_allowed<'a>(
        &self,
        caller: &Caller,
        operation: Operation,
        names: impl Iterator<Item = &'a str>,
    ) -> HashSet<String> {
        let names: HashSet<&str> = names.collect();
        names
            .into_iter()
            .filter(|name| self.allows(caller, operation, ResourceType::Topic, name))
            .map(str::to_owned)
            .collect()
    }

    /// May `principal`, calling from `host` through an HTTP route (the schema registry, the
    /// admin API), perform `operation` on the resource? Logs and audits a denial.
    pub fn allows_http(
        &self,
        principal: &str,
        ip: Option<IpAddr>,
        route: String,
        operation: Operation,
        resource_type: ResourceType,
        name: &str,
    ) -> bool {
        let caller = Caller::new(Arc::from(principal), ip, Api::Http(route));
        self.allows(&caller, operation, resource_type, name)
    }

    /// May `caller` perform `operation` on the cluster?
    pub(crate) fn allows_cluster(&self, caller: &Caller, operation: Operation) -> bool {
        self.allows(caller, operation, ResourceType::Cluster, CLUSTER_NAME)
    }

    /// May `caller` create the topic `name`: CREATE on the cluster or on the topic.
    pub(crate) fn allows_topic_creation(&self, caller: &Caller, name: &str) -> bool {
        self.allows_quietly(
            caller,
            Operation::Create,
            ResourceType::Cluster,
            CLUSTER_NAME,
        ) || self.allows(caller, Operation::Create, ResourceType::Topic, name)
    }

    /// May `caller` produce idempotently without a transactional id: IDEMPOTENT_WRITE on the
    /// cluster, or WRITE on at least one topic (KIP-679).
    pub(crate) fn allows_idempotent_write(&self, caller: &Caller) -> bool {
        if self.allows_quietly(
            caller,
            Operation::IdempotentWrite,
            ResourceType::Cluster,
            CLUSTER_NAME,
        ) {
            return true;
        }
        let decision = self.acls.authorizer.read().authorize_by_resource_type(
            &caller.principal,
            caller.host(),
            Operation::Write,
            ResourceType::Topic,
        );
        if !decision.is_allowed() {
            self.denied(
                caller,
                Operation::IdempotentWrite,
                ResourceType::Cluster,
                CLUSTER_NAME,
                &decision,
            );
        }
        decision.is_allowed()
    }

    /// May `caller` read the records of topic `name`? Besides the ACLs, the SCRAM credentials
    /// topic is readable by super users only, authorisation on or off: it holds salted keys.
    pub(crate) fn allows_topic_read(&self, caller: &Caller, name: &str) -> bool {
        if name == CREDENTIALS_TOPIC && !self.is_super_user(caller) {
            self.denied(
                caller,
                Operation::Read,
                ResourceType::Topic,
                name,
                &Decision::NoMatchingAllow,
            );
            return false;
        }
        self.allows(caller, Operation::Read, ResourceType::Topic, name)
    }

    /// Kafka's authorised-operations bit set of a resource (bit n = operation id n), for the
    /// `*_authorized_operations` fields clients ask for.
    pub(crate) fn authorized_operations(
        &self,
        caller: &Caller,
        resource_type: ResourceType,
        name: &str,
    ) -> i32 {
        let operations = match resource_type {
            ResourceType::Topic => TOPIC_OPERATIONS,
            ResourceType::Cluster => CLUSTER_OPERATIONS,
            ResourceType::Group => GROUP_OPERATIONS,
            _ => &[],
        };
        operations
            .iter()
            .filter(|op| self.allows_quietly(caller, **op, resource_type, name))
            .fold(0, |bits, op| bits | (1 << op.id()))
    }

    fn is_super_user(&self, caller: &Caller) -> bool {
        self.options
            .authorization
            .as_ref()
            .is_some_and(|config| config.super_users.contains(&*caller.principal))
    }

    /// The authorizer's decision, or `None` when authorisation is off.
    fn decide(
        &self,
        caller: &Caller,
        operation: Operation,
        resource_type: ResourceType,
        name: &str,
    ) -> Option<Decision> {
        self.options.authorization.as_ref()?;
        Some(self.acls.authorizer.read().authorize(
            &caller.principal,
            caller.host(),
            operation,
            resource_type,
            name,
        ))
    }

    /// Logs a denial as Kafka's authorizer log does: who, from where, what, on what, and why.
    fn denied(
        &self,
        caller: &Caller,
        operation: Operation,
        resource_type: ResourceType,
        name: &str,
        decision: &Decision,
    ) {
        tracing::info!(
            principal = %caller.principal,
            host = %caller.host(),
            api = %caller.api,
            operation = %operation,
            resource = %format_args!("{resource_type}:{name}"),
            %decision,
            "authorization denied"
        );
        self.audit(
            AuditEvent::from_caller(AuditKind::Authorization, caller, false)
                .on(format!("{resource_type}:{name}"), operation.name())
                .detail(decision.to_string()),
        );
    }
}

/// The error code of a denial on this resource type.
pub(crate) fn denied_code(resource_type: ResourceType) -> i16 {
    match resource_type {
        ResourceType::Topic => ResponseError::TopicAuthorizationFailed,
        ResourceType::Group => ResponseError::GroupAuthorizationFailed,
        ResourceType::TransactionalId => ResponseError::TransactionalIdAuthorizationFailed,
        _ => ResponseError::ClusterAuthorizationFailed,
    }
    .code()
}

impl Broker {
    /// The checks that refuse a whole request: its group, transactional id or the cluster.
    /// Returns the refusal to send, or `None` to go on (per-topic checks happen in the
    /// handlers). Follows Kafka's order: transactional id before group before topics.
    pub(crate) fn refuse(
        &self,
        caller: &Caller,
        body: &RequestKind,
        version: i16,
    ) -> Option<ResponseKind> {
        if !self.authorization_enabled() {
            return None;
        }
        let group = |name: &str, operation| {
            (!self.allows(caller, operation, ResourceType::Group, name))
                .then_some(ResponseError::GroupAuthorizationFailed)
        };
        let transactional_id = |name: &str| {
            (!self.allows(
                caller,
                Operation::Write,
                ResourceType::TransactionalId,
                name,
            ))
            .then_some(ResponseError::TransactionalIdAuthorizationFailed)
        };
        let cluster = |operation| {
            (!self.allows_cluster(caller, operation))
                .then_some(ResponseError::ClusterAuthorizationFailed)
        };
        match body {
            RequestKind::Produce(req) => {
                let error = transactional_id(req.transactional_id.as_deref()?)?;
                Some(ResponseKind::Produce(refused_produce(req, version, error)))
            }
            RequestKind::JoinGroup(req) => {
                let error = group(&req.group_id, Operation::Read)?;
                Some(ResponseKind::JoinGroup(
                    JoinGroupResponse::default()
                        .with_error_code(error.code())
                        .with_generation_id(-1)
                        .with_member_id(req.member_id.clone()),
                ))
            }
            RequestKind::SyncGroup(req) => {
                let error = group(&req.group_id, Operation::Read)?;
                Some(ResponseKind::SyncGroup(
                    SyncGroupResponse::default().with_error_code(error.code()),
                ))
            }
            RequestKind::Heartbeat(req) => {
                let error = group(&req.group_id, Operation::Read)?;
                Some(ResponseKind::Heartbeat(
                    HeartbeatResponse::default().with_error_code(error.code()),
                ))
            }
            RequestKind::LeaveGroup(req) => {
                let error = group(&req.group_id, Operation::Read)?;
                Some(ResponseKind::LeaveGroup(
                    LeaveGroupResponse::default().with_error_code(error.code()),
                ))
            }
            RequestKind::OffsetCommit(req) => {
                let error = group(&req.group_id, Operation::Read)?;
                let topics = req
                    .topics
                    .iter()
                    .map(|topic| {
                        OffsetCommitResponseTopic::default()
                            .with_name(topic.name.clone())
                            .with_partitions(
                                topic
                                    .partitions
                                    .iter()
                                    .map(|p| {
                                        OffsetCommitResponsePartition::default()
                                            .with_partition_index(p.partition_index)
                                            .with_error_code(error.code())
                                    })
                                    .collect(),
                            )
                    })
                    .collect();
                Some(ResponseKind::OffsetCommit(
                    OffsetCommitResponse::default().with_topics(topics),
                ))
            }
            RequestKind::OffsetFetch(req) if version < 8 => {
                let error = group(&req.group_id, Operation::Describe)?;
                Some(ResponseKind::OffsetFetch(
                    OffsetFetchResponse::default().with_error_code(error.code()),
                ))
            }
            RequestKind::OffsetDelete(req) => {
                let error = group(&req.group_id, Operation::Delete)?;
                Some(ResponseKind::OffsetDelete(
                    OffsetDeleteResponse::default().with_error_code(error.code()),
                ))
            }
            RequestKind::ConsumerGroupHeartbeat(req) => {
                let denied_topic = || {
                    req.subscribed_topic_names.iter().flatten().any(|topic| {
                        !self.allows(caller, Operation::Describe, ResourceType::Topic, topic)
                    })
                };
                let error = group(&req.group_id, Operation::Read).or_else(|| {
                    denied_topic().then_some(ResponseError::TopicAuthorizationFailed)
                })?;
                Some(ResponseKind::ConsumerGroupHeartbeat(
                    ConsumerGroupHeartbeatResponse::default()
                        .with_error_code(error.code())
                        .with_heartbeat_interval_ms(0),
                ))
            }
            RequestKind::DescribeLogDirs(_) => {
                let error = cluster(Operation::Describe)?;
                Some(ResponseKind::DescribeLogDirs(
                    DescribeLogDirsResponse::default().with_error_code(error.code()),
                ))
            }
            RequestKind::InitProducerId(req) => {
                let error = match req.transactional_id.as_deref() {
                    Some(id) => transactional_id(id),
                    None => (!self.allows_idempotent_write(caller))
                        .then_some(ResponseError::ClusterAuthorizationFailed),
                }?;
                Some(ResponseKind::InitProducerId(
                    InitProducerIdResponse::default()
                        .with_error_code(error.code())
                        .with_producer_id(ProducerId(-1))
                        .with_producer_epoch(-1),
                ))
            }
            RequestKind::AddPartitionsToTxn(req) => {
                let refused = |code: &dyn Fn(&str) -> i16| {
                    let results = req
                        .v3_and_below_topics
                        .iter()
                        .map(|topic| {
                            AddPartitionsToTxnTopicResult::default()
                                .with_name(topic.name.clone())
                                .with_results_by_partition(
                                    topic
                                        .partitions
                                        .iter()
                                        .map(|p| {
                                            AddPartitionsToTxnPartitionResult::default()
                                                .with_partition_index(*p)
                                                .with_partition_error_code(code(&topic.name))
                                        })
                                        .collect(),
                                )
                        })
                        .collect();
                    Some(ResponseKind::AddPartitionsToTxn(
                        AddPartitionsToTxnResponse::default()
                            .with_results_by_topic_v3_and_below(results),
                    ))
                };
                if let Some(error) = transactional_id(&req.v3_and_below_transactional_id) {
                    return refused(&|_| error.code());
                }
                // Kafka adds nothing when one topic is denied: the others are not attempted.
                let denied: Vec<&str> = req
                    .v3_and_below_topics
                    .iter()
                    .map(|topic| topic.name.as_str())
                    .filter(|name| {
                        !self.allows(caller, Operation::Write, ResourceType::Topic, name)
                    })
                    .collect();
                if denied.is_empty() {
                    return None;
                }
                refused(&|name| {
                    if denied.contains(&name) {
                        ResponseError::TopicAuthorizationFailed.code()
                    } else {
                        ResponseError::OperationNotAttempted.code()
                    }
                })
            }
            RequestKind::AddOffsetsToTxn(req) => {
                let error = transactional_id(&req.transactional_id)
                    .or_else(|| group(&req.group_id, Operation::Read))?;
                Some(ResponseKind::AddOffsetsToTxn(
                    AddOffsetsToTxnResponse::default().with_error_code(error.code()),
                ))
            }
            RequestKind::EndTxn(req) => {
                let error = transactional_id(&req.transactional_id)?;
                Some(ResponseKind::EndTxn(
                    EndTxnResponse::default().with_error_code(error.code()),
                ))
            }
            RequestKind::TxnOffsetCommit(req) => {
                let error = transactional_id(&req.transactional_id)
                    .or_else(|| group(&req.group_id, Operation::Read))?;
                let topics = req
                    .topics
                    .iter()
                    .map(|topic| {
                        TxnOffsetCommitResponseTopic::default()
                            .with_name(topic.name.clone())
                            .with_partitions(
                                topic
                                    .partitions
                                    .iter()
                                    .map(|p| {
                                        TxnOffsetCommitResponsePartition::default()
                                            .with_partition_index(p.partition_index)
                                            .with_error_code(error.code())
                                    })
                                    .collect(),
                            )
                    })
                    .collect();
                Some(ResponseKind::TxnOffsetCommit(
                    TxnOffsetCommitResponse::default().with_topics(topics),
                ))
            }
            RequestKind::CreateAcls(req) => {
                let error = cluster(Operation::Alter)?;
                let results = req
                    .creations
                    .iter()
                    .map(|_| AclCreationResult::default().with_error_code(error.code()))
                    .collect();
                Some(ResponseKind::CreateAcls(
                    CreateAclsResponse::default().with_results(results),
                ))
            }
            RequestKind::DeleteAcls(req) => {
                let error = cluster(Operation::Alter)?;
                let results = req
                    .filters
                    .iter()
                    .map(|_| DeleteAclsFilterResult::default().with_error_code(error.code()))
                    .collect();
                Some(ResponseKind::DeleteAcls(
                    DeleteAclsResponse::default().with_filter_results(results),
                ))
            }
            RequestKind::DescribeAcls(_) => {
                let error = cluster(Operation::Describe)?;
                Some(ResponseKind::DescribeAcls(
                    DescribeAclsResponse::default().with_error_code(error.code()),
                ))
            }
            RequestKind::AlterUserScramCredentials(req) => {
                let error = cluster(Operation::Alter)?;
                let users: std::collections::BTreeSet<&str> = req
                    .deletions
                    .iter()
                    .map(|d| d.name.as_str())
                    .chain(req.upsertions.iter().map(|u| u.name.as_str()))
                    .collect();
                let results = users
                    .into_iter()
                    .map(|user| {
                        AlterUserScramCredentialsResult::default()
                            .with_user(StrBytes::from_string(user.to_string()))
                            .with_error_code(error.code())
                    })
                    .collect();
                Some(ResponseKind::AlterUserScramCredentials(
                    AlterUserScramCredentialsResponse::default().with_results(results),
                ))
            }
            RequestKind::DescribeClientQuotas(_) => {
                let error = cluster(Operation::DescribeConfigs)?;
                Some(ResponseKind::DescribeClientQuotas(
                    DescribeClientQuotasResponse::default()
                        .with_error_code(error.code())
                        .with_error_message(Some(StrBytes::from_static_str(
                            "not authorized to describe client quotas",
                        )))
                        .with_entries(None),
                ))
            }
            RequestKind::AlterClientQuotas(req) => {
                let error = cluster(Operation::AlterConfigs)?;
                let entries = req
                    .entries
                    .iter()
                    .map(|entry| {
                        AlterClientQuotasEntryData::default()
                            .with_error_code(error.code())
                            .with_error_message(Some(StrBytes::from_static_str(
                                "not authorized to alter client quotas",
                            )))
                            .with_entity(
                                entry
                                    .entity
                                    .iter()
                                    .map(|e| {
                                        AlterClientQuotasEntityData::default()
                                            .with_entity_type(e.entity_type.clone())
                                            .with_entity_name(e.entity_name.clone())
                                    })
                                    .collect(),
                            )
                    })
                    .collect();
                Some(ResponseKind::AlterClientQuotas(
                    AlterClientQuotasResponse::default().with_entries(entries),
                ))
            }
            RequestKind::DescribeUserScramCredentials(_) => {
                let error = cluster(Operation::Describe)?;
                Some(ResponseKind::DescribeUserScramCredentials(
                    DescribeUserScramCredentialsResponse::default().with_error_code(error.code()),
                ))
            }
            _ => None,
        }
    }
}

/// A produce refused as a whole: every partition gets `error`.
fn refused_produce(req: &ProduceRequest, version: i16, error: ResponseError) -> ProduceResponse {
    let responses = req
        .topic_data
        .iter()
        .map(|topic| {
            let mut response = TopicProduceResponse::default().with_partition_responses(
                topic
                    .partition_data
                    .iter()
                    .map(|p| {
                        PartitionProduceResponse::default()
                            .with_index(p.index)
                            .with_error_code(error.code())
                            .with_base_offset(-1)
                    })
                    .collect(),
            );
            if version >= 13 {
                response.topic_id = topic.topic_id;
            } else {
                response.name = topic.name.clone();
            }
            response
        })
        .collect();
    ProduceResponse::default().with_responses(responses)
}
