//! Topic administration, offset lookups and ACL administration.
//!
//! Creating, deleting and growing topics go to the controller (CreateTopics, DeleteTopics,
//! CreatePartitions; retried once on NOT_CONTROLLER after a metadata refresh). Topic configs
//! are read with DescribeConfigs and changed with IncrementalAlterConfigs, which any broker
//! accepts. ListOffsets goes to each partition's leader. ACLs are created, described and
//! deleted with CreateAcls, DescribeAcls and DeleteAcls (v1+, the versions with pattern types)
//! on any broker, as Kafka's admin client sends them; bindings and filters are
//! `spate_auth::acl`'s typed values, never raw protocol structs. Client quotas are described
//! and altered with DescribeClientQuotas and AlterClientQuotas. Every request uses the
//! highest version both sides speak; fields that only some versions carry are filled
//! accordingly.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use kafka_protocol::messages::create_acls_request::AclCreation;
use kafka_protocol::messages::create_partitions_request::CreatePartitionsTopic;
use kafka_protocol::messages::create_topics_request::{CreatableTopic, CreatableTopicConfig};
use kafka_protocol::messages::delete_acls_request::DeleteAclsFilter;
use kafka_protocol::messages::delete_topics_request::DeleteTopicState;
use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use kafka_protocol::messages::incremental_alter_configs_request::{
    AlterConfigsResource, AlterableConfig,
};
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::{
    ApiKey, CreateAclsRequest, CreatePartitionsRequest, CreateTopicsRequest, DeleteAclsRequest,
    DeleteTopicsRequest, DescribeAclsRequest, DescribeConfigsRequest,
    IncrementalAlterConfigsRequest, ListOffsetsRequest, TopicName,
};
use kafka_protocol::protocol::{Request, StrBytes};
use spate_auth::acl::{
    AclBinding, AclBindingFilter, Operation, PatternType, Permission, ResourceType,
};
use uuid::Uuid;

use crate::client::{Client, TopicMetadata};
use crate::error::{Error, KafkaError, Result, code};

/// DescribeConfigs / IncrementalAlterConfigs resource type of a topic.
const RESOURCE_TYPE_TOPIC: i8 = 2;

/// Attempts for a request whose target moved (leader or controller change).
const MAX_ATTEMPTS: usize = 3;

/// A topic to create.
#[derive(Debug, Clone, Default)]
pub struct NewTopic {
    /// Topic name.
    pub name: String,
    /// Partitions; `None` takes the broker's default (`num.partitions`).
    pub partitions: Option<i32>,
    /// Replication factor; `None` takes the broker's default.
    pub replication_factor: Option<i16>,
    /// Topic configs with Kafka's names, e.g. `("retention.ms", "60000")`.
    pub configs: Vec<(String, String)>,
}

/// What CreateTopics reported for a created topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreatedTopic {
    /// Topic id (nil before CreateTopics v7).
    pub topic_id: Uuid,
    /// Partition count (`-1` before CreateTopics v5).
    pub partitions: i32,
    /// Replication factor (`-1` before CreateTopics v5).
    pub replication_factor: i16,
}

/// Where a config value comes from (Kafka's `ConfigSource`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfigSource {
    /// Set on the topic.
    DynamicTopic,
    /// Set dynamically for this broker.
    DynamicBroker,
    /// Set dynamically as the default of all brokers.
    DynamicDefaultBroker,
    /// From the broker's config file.
    StaticBroker,
    /// Kafka's built-in default.
    Default,
    /// Set dynamically on a broker logger.
    DynamicBrokerLogger,
    /// Anything else, with its code.
    Other(i8),
}

impl ConfigSource {
    /// From the wire code.
    pub fn from_code(code: i8) -> ConfigSource {
        match code {
            1 => ConfigSource::DynamicTopic,
            2 => ConfigSource::DynamicBroker,
            3 => ConfigSource::DynamicDefaultBroker,
            4 => ConfigSource::StaticBroker,
            5 => ConfigSource::Default,
            6 => ConfigSource::DynamicBrokerLogger,
            other => ConfigSource::Other(other),
        }
    }

    /// Kafka's name, as `kafka-configs --describe` prints it.
    pub fn name(&self) -> String {
        match self {
            ConfigSource::DynamicTopic => "DYNAMIC_TOPIC_CONFIG".to_string(),
            ConfigSource::DynamicBroker => "DYNAMIC_BROKER_CONFIG".to_string(),
            ConfigSource::DynamicDefaultBroker => "DYNAMIC_DEFAULT_BROKER_CONFIG".to_string(),
            ConfigSource::StaticBroker => "STATIC_BROKER_CONFIG".to_string(),
            ConfigSource::Default => "DEFAULT_CONFIG".to_string(),
            ConfigSource::DynamicBrokerLogger => "DYNAMIC_BROKER_LOGGER_CONFIG".to_string(),
            ConfigSource::Other(0) => "UNKNOWN".to_string(),
            ConfigSource::Other(code) => format!("SOURCE_{code}"),
        }
    }
}

/// One config of a topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigEntry {
    /// Kafka's name, e.g. `retention.ms`.
    pub name: String,
    /// The value (`None` for sensitive or unset values).
    pub value: Option<String>,
    /// Where the value comes from.
    pub source: ConfigSource,
    /// Whether it cannot be altered.
    pub read_only: bool,
    /// Whether the value is hidden.
    pub is_sensitive: bool,
}

/// A change to one topic config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigChange {
    /// Set `name` to `value`.
    Set {
        /// Config name.
        name: String,
        /// New value.
        value: String,
    },
    /// Remove the topic's override of `name` (back to the default).
    Delete {
        /// Config name.
        name: String,
    },
}

/// Which offset ListOffsets looks up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OffsetSpec {
    /// The log start offset.
    Earliest,
    /// The log end offset (high watermark).
    Latest,
    /// The first offset whose timestamp is at or after this many ms since the epoch.
    Timestamp(i64),
}

impl OffsetSpec {
    fn wire_timestamp(self) -> i64 {
        match self {
            OffsetSpec::Earliest => -2,
            OffsetSpec::Latest => -1,
            OffsetSpec::Timestamp(ms) => ms,
        }
    }
}

/// A ListOffsets answer for one partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ListedOffset {
    /// The offset, or `None` when no record has a timestamp at or after the one asked for.
    pub offset: Option<i64>,
    /// The record's timestamp for timestamp lookups, else `-1`.
    pub timestamp_ms: i64,
}

fn topic_name(name: &str) -> TopicName {
    TopicName(StrBytes::from_string(name.to_string()))
}

fn text(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_string())
}

/// Sends one IncrementalAlterConfigs for one resource on `conn`: sets and deletes as `changes`
/// say; `context` names the resource in an error.
pub(crate) async fn incremental_alter_configs(
    conn: &crate::Connection,
    resource_type: i8,
    resource_name: &str,
    changes: &[ConfigChange],
    context: impl Fn() -> String,
) -> Result<()> {
    const SET: i8 = 0;
    const DELETE: i8 = 1;
    let version = conn.version::<IncrementalAlterConfigsRequest>()?;
    let configs = changes
        .iter()
        .map(|change| match change {
            ConfigChange::Set { name, value } => AlterableConfig::default()
                .with_name(text(name))
                .with_config_operation(SET)
                .with_value(Some(text(value))),
            ConfigChange::Delete { name } => AlterableConfig::default()
                .with_name(text(name))
                .with_config_operation(DELETE)
                .with_value(None),
        })
        .collect();
    let request = IncrementalAlterConfigsRequest::default()
        .with_resources(vec![
            AlterConfigsResource::default()
                .with_resource_type(resource_type)
                .with_resource_name(text(resource_name))
                .with_configs(configs),
        ])
        .with_validate_only(false);
    let response = conn.send(&request, version).await?;
    for result in response.responses {
        if let Some(e) = kafka_error(context(), result.error_code, result.error_message.as_ref()) {
            return Err(e);
        }
    }
    Ok(())
}

fn kafka_error(context: String, code: i16, message: Option<&StrBytes>) -> Option<Error> {
    KafkaError::from_code(code, message.map(|m| m.as_str()))
        .map(|error| Error::Kafka { context, error })
}

impl Client {
    /// Sends a controller-bound request, refreshing metadata and retrying on NOT_CONTROLLER
    /// or a connection failure.
    async fn with_controller<T, F, Fut>(&self, mut attempt: F) -> Result<T>
    where
        F: FnMut(std::sync::Arc<crate::Connection>) -> Fut,
        Fut: std::future::Future<Output = Result<T>>,
    {
        let mut tries = 0;
        loop {
            tries += 1;
            let result = match self.controller().await {
                Ok(conn) => attempt(conn).await,
                Err(e) => Err(e),
            };
            match result {
                Err(e)
                    if tries < MAX_ATTEMPTS
                        && (e.kafka_code() == Some(code::NOT_CONTROLLER)
                            || (e.kafka_code().is_none() && e.is_retriable())) =>
                {
                    tracing::debug!(error = %e, "retrying on another controller");
                    self.metadata(Some(&[]), false).await?;
                }
                other => return other,
            }
        }
    }

    /// Creates a topic.
    pub async fn create_topic(&self, topic: &NewTopic) -> Result<CreatedTopic> {
        let timeout_ms = self.config().timeouts.request.as_millis() as i32;
        self.with_controller(|conn| async move {
            let version = conn.version::<CreateTopicsRequest>()?;
            // Before v4 the broker needs explicit counts.
            let default_count = if version >= 4 { -1 } else { 1 };
            let creatable = CreatableTopic::default()
                .with_name(topic_name(&topic.name))
                .with_num_partitions(topic.partitions.unwrap_or(default_count))
                .with_replication_factor(topic.replication_factor.unwrap_or(default_count as i16))
                .with_configs(
                    topic
                        .configs
                        .iter()
                        .map(|(name, value)| {
                            CreatableTopicConfig::default()
                                .with_name(text(name))
                                .with_value(Some(text(value)))
                        })
                        .collect(),
                );
            let request = CreateTopicsRequest::default()
                .with_topics(vec![creatable])
                .with_timeout_ms(timeout_ms);
            let response = conn.send(&request, version).await?;
            let result = response
                .topics
                .into_iter()
                .find(|t| t.name.0.as_str() == topic.name)
                .ok_or_else(|| Error::Decode {
                    broker: conn.broker().to_string(),
                    api: kafka_protocol::messages::ApiKey::CreateTopics,
                    version,
                    reason: format!("no result for topic {:?}", topic.name),
                })?;
            if let Some(e) = kafka_error(
                format!("cannot create topic {:?}", topic.name),
                result.error_code,
                result.error_message.as_ref(),
            ) {
                return Err(e);
            }
            Ok(CreatedTopic {
                topic_id: result.topic_id,
                partitions: result.num_partitions,
                replication_factor: result.replication_factor,
            })
        })
        .await
    }

    /// Deletes a topic.
    pub async fn delete_topic(&self, topic: &str) -> Result<()> {
        let timeout_ms = self.config().timeouts.request.as_millis() as i32;
        self.with_controller(|conn| async move {
            let version = conn.version::<DeleteTopicsRequest>()?;
            let request = DeleteTopicsRequest::default().with_timeout_ms(timeout_ms);
            let request = if version >= 6 {
                request.with_topics(vec![
                    DeleteTopicState::default().with_name(Some(topic_name(topic))),
                ])
            } else {
                request.with_topic_names(vec![topic_name(topic)])
            };
            let response = conn.send(&request, version).await?;
            for result in response.responses {
                if let Some(e) = kafka_error(
                    format!("cannot delete topic {topic:?}"),
                    result.error_code,
                    result.error_message.as_ref(),
                ) {
                    return Err(e);
                }
            }
            Ok(())
        })
        .await
    }

    /// Grows a topic to `total_partitions` partitions.
    pub async fn create_partitions(&self, topic: &str, total_partitions: i32) -> Result<()> {
        let timeout_ms = self.config().timeouts.request.as_millis() as i32;
        self.with_controller(|conn| async move {
            let version = conn.version::<CreatePartitionsRequest>()?;
            let request = CreatePartitionsRequest::default()
                .with_topics(vec![
                    CreatePartitionsTopic::default()
                        .with_name(topic_name(topic))
                        .with_count(total_partitions)
                        .with_assignments(None),
                ])
                .with_timeout_ms(timeout_ms)
                .with_validate_only(false);
            let response = conn.send(&request, version).await?;
            for result in response.results {
                if let Some(e) = kafka_error(
                    format!("cannot grow topic {topic:?} to {total_partitions} partitions"),
                    result.error_code,
                    result.error_message.as_ref(),
                ) {
                    return Err(e);
                }
            }
            Ok(())
        })
        .await
    }

    /// All configs of a topic, with their sources.
    pub async fn describe_topic_configs(&self, topic: &str) -> Result<Vec<ConfigEntry>> {
        let conn = self.any_broker().await?;
        let version = conn.version::<DescribeConfigsRequest>()?;
        let request = DescribeConfigsRequest::default()
            .with_resources(vec![
                DescribeConfigsResource::default()
                    .with_resource_type(RESOURCE_TYPE_TOPIC)
                    .with_resource_name(text(topic))
                    .with_configuration_keys(None),
            ])
            .with_include_synonyms(false);
        let response = conn.send(&request, version).await?;
        let mut entries = Vec::new();
        for result in response.results {
            if let Some(e) = kafka_error(
                format!("cannot describe configs of topic {topic:?}"),
                result.error_code,
                result.error_message.as_ref(),
            ) {
                return Err(e);
            }
            entries.extend(result.configs.into_iter().map(|c| ConfigEntry {
                name: c.name.to_string(),
                value: c.value.map(|v| v.to_string()),
                source: ConfigSource::from_code(c.config_source),
                read_only: c.read_only,
                is_sensitive: c.is_sensitive,
            }));
        }
        entries.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(entries)
    }

    /// Applies config changes to a topic (IncrementalAlterConfigs).
    pub async fn alter_topic_configs(&self, topic: &str, changes: &[ConfigChange]) -> Result<()> {
        let conn = self.any_broker().await?;
        incremental_alter_configs(&conn, RESOURCE_TYPE_TOPIC, topic, changes, || {
            format!("cannot alter configs of topic {topic:?}")
        })
        .await
    }

    /// Looks up offsets of partitions of `topic` at their leaders. Partitions whose leader
    /// moved are retried after a metadata refresh.
    pub async fn list_offsets(
        &self,
        topic: &TopicMetadata,
        queries: &[(i32, OffsetSpec)],
    ) -> Result<BTreeMap<i32, ListedOffset>> {
        let mut results = BTreeMap::new();
        let mut remaining: Vec<(i32, OffsetSpec)> = queries.to_vec();
        let mut metadata = topic.clone();
        let mut last_error = None;
        for attempt in 0..MAX_ATTEMPTS {
            if remaining.is_empty() {
                break;
            }
            if attempt > 0 {
                tokio::time::sleep(Duration::from_millis(100 << attempt)).await;
                metadata = self.topic_metadata(&topic.name, false).await?;
            }
            let mut by_leader: HashMap<i32, Vec<(i32, OffsetSpec)>> = HashMap::new();
            for &(partition, spec) in &remaining {
                let leader = metadata.leader_of(partition)?;
                by_leader.entry(leader).or_default().push((partition, spec));
            }
            let requests = by_leader
                .into_iter()
                .map(|(leader, parts)| self.list_offsets_at(leader, &metadata, parts));
            let answers = futures::future::join_all(requests).await;
            remaining.clear();
            for answer in answers {
                match answer {
                    Ok((done, retry)) => {
                        results.extend(done);
                        for (partition, spec, error) in retry {
                            remaining.push((partition, spec));
                            last_error = Some(error);
                        }
                    }
                    Err((parts, error)) if error.is_retriable() => {
                        remaining.extend(parts);
                        last_error = Some(error);
                    }
                    Err((_, error)) => return Err(error),
                }
            }
        }
        match (remaining.is_empty(), last_error) {
            (false, Some(error)) => Err(error),
            _ => Ok(results),
        }
    }

    /// One ListOffsets request to `leader`. Returns the answers and the partitions to retry;
    /// on a request failure, the partitions and the error.
    async fn list_offsets_at(
        &self,
        leader: i32,
        topic: &TopicMetadata,
        parts: Vec<(i32, OffsetSpec)>,
    ) -> std::result::Result<
        (Vec<(i32, ListedOffset)>, Vec<(i32, OffsetSpec, Error)>),
        (Vec<(i32, OffsetSpec)>, Error),
    > {
        let conn = match self.broker(leader).await {
            Ok(conn) => conn,
            Err(e) => return Err((parts, e)),
        };
        let version = match conn.version::<ListOffsetsRequest>() {
            Ok(v) => v,
            Err(e) => return Err((parts, e)),
        };
        let request = ListOffsetsRequest::default()
            .with_replica_id((-1).into())
            .with_timeout_ms(if version >= 10 {
                self.config().timeouts.request.as_millis() as i32
            } else {
                0
            })
            .with_topics(vec![
                ListOffsetsTopic::default()
                    .with_name(topic_name(&topic.name))
                    .with_partitions(
                        parts
                            .iter()
                            .map(|&(partition, spec)| {
                                ListOffsetsPartition::default()
                                    .with_partition_index(partition)
                                    .with_timestamp(spec.wire_timestamp())
                            })
                            .collect(),
                    ),
            ]);
        let response = match conn.send(&request, version).await {
            Ok(r) => r,
            Err(e) => {
                self.drop_connection(leader);
                return Err((parts, e));
            }
        };
        let mut done = Vec::new();
        let mut retry = Vec::new();
        let mut answered: HashMap<i32, (i16, i64, i64)> = HashMap::new();
        for t in response.topics {
            for p in t.partitions {
                answered.insert(p.partition_index, (p.error_code, p.offset, p.timestamp));
            }
        }
        for (partition, spec) in parts {
            let context = format!("list offsets of {}-{partition}", topic.name);
            match answered.get(&partition) {
                None => retry.push((
                    partition,
                    spec,
                    Error::Kafka {
                        context,
                        error: KafkaError {
                            code: code::UNKNOWN_TOPIC_OR_PARTITION,
                            message: Some("partition missing from the response".to_string()),
                        },
                    },
                )),
                Some(&(error_code, offset, timestamp)) => {
                    match KafkaError::from_code(error_code, None) {
                        Some(error) if error.is_retriable() => {
                            retry.push((partition, spec, Error::Kafka { context, error }))
                        }
                        Some(error) => {
                            return Err((vec![], Error::Kafka { context, error }));
                        }
                        None => done.push((
                            partition,
                            ListedOffset {
                                offset: (offset >= 0).then_some(offset),
                                timestamp_ms: timestamp,
                            },
                        )),
                    }
                }
            }
        }
        Ok((done, retry))
    }
}

/// The lowest ACL API version with pattern types (Kafka 4 dropped v0).
const ACL_MIN_VERSION: i16 = 1;

/// The version of an ACL request: the highest both sides speak, from v1.
fn acl_version<R: Request>(conn: &crate::Connection) -> Result<i16> {
    conn.version_within(
        crate::connection::api_key_of::<R>(),
        ACL_MIN_VERSION,
        R::VERSIONS.max,
    )
}

fn opt_text(value: &Option<String>) -> Option<StrBytes> {
    value.as_deref().map(text)
}

/// A binding from the fields of a DescribeAcls or DeleteAcls answer.
#[allow(clippy::too_many_arguments)]
fn binding_from_wire(
    resource_type: i8,
    resource_name: &StrBytes,
    pattern_type: i8,
    principal: &StrBytes,
    host: &StrBytes,
    operation: i8,
    permission: i8,
) -> AclBinding {
    AclBinding {
        resource_type: ResourceType::from_id(resource_type),
        resource_name: resource_name.to_string(),
        pattern_type: PatternType::from_id(pattern_type),
        principal: principal.to_string(),
        host: host.to_string(),
        operation: Operation::from_id(operation),
        permission: Permission::from_id(permission),
    }
}

impl Client {
    /// Creates ACLs (CreateAcls). Each binding is checked here first as the broker would
    /// check it; a binding the broker refuses fails the call with its error, naming it (the
    /// bindings before it in the list may have been created).
    pub async fn create_acls(&self, bindings: &[AclBinding]) -> Result<()> {
        for binding in bindings {
            binding
                .validate()
                .map_err(|e| Error::InvalidArgument(format!("invalid ACL {binding}: {e}")))?;
        }
        if bindings.is_empty() {
            return Ok(());
        }
        let conn = self.any_broker().await?;
        let version = acl_version::<CreateAclsRequest>(&conn)?;
        let creations = bindings
            .iter()
            .map(|b| {
                AclCreation::default()
                    .with_resource_type(b.resource_type.id())
                    .with_resource_name(text(&b.resource_name))
                    .with_resource_pattern_type(b.pattern_type.id())
                    .with_principal(text(&b.principal))
                    .with_host(text(&b.host))
                    .with_operation(b.operation.id())
                    .with_permission_type(b.permission.id())
            })
            .collect();
        let request = CreateAclsRequest::default().with_creations(creations);
        let response = conn.send(&request, version).await?;
        if response.results.len() != bindings.len() {
            return Err(Error::Decode {
                broker: conn.broker().to_string(),
                api: ApiKey::CreateAcls,
                version,
                reason: format!(
                    "{} results for {} ACLs",
                    response.results.len(),
                    bindings.len()
                ),
            });
        }
        for (binding, result) in bindings.iter().zip(&response.results) {
            if let Some(e) = kafka_error(
                format!("cannot create ACL {binding}"),
                result.error_code,
                result.error_message.as_ref(),
            ) {
                return Err(e);
            }
        }
        Ok(())
    }

    /// The ACLs that match `filter` (DescribeAcls), sorted by resource, then entry.
    pub async fn describe_acls(&self, filter: &AclBindingFilter) -> Result<Vec<AclBinding>> {
        filter
            .validate()
            .map_err(|e| Error::InvalidArgument(format!("invalid ACL filter {filter}: {e}")))?;
        let conn = self.any_broker().await?;
        let version = acl_version::<DescribeAclsRequest>(&conn)?;
        let request = DescribeAclsRequest::default()
            .with_resource_type_filter(filter.resource_type.id())
            .with_resource_name_filter(opt_text(&filter.resource_name))
            .with_pattern_type_filter(filter.pattern_type.id())
            .with_principal_filter(opt_text(&filter.principal))
            .with_host_filter(opt_text(&filter.host))
            .with_operation(filter.operation.id())
            .with_permission_type(filter.permission.id());
        let response = conn.send(&request, version).await?;
        if let Some(e) = kafka_error(
            "cannot describe ACLs".to_string(),
            response.error_code,
            response.error_message.as_ref(),
        ) {
            return Err(e);
        }
        let mut bindings: Vec<AclBinding> = response
            .resources
            .iter()
            .flat_map(|resource| {
                resource.acls.iter().map(move |acl| {
                    binding_from_wire(
                        resource.resource_type,
                        &resource.resource_name,
                        resource.pattern_type,
                        &acl.principal,
                        &acl.host,
                        acl.operation,
                        acl.permission_type,
                    )
                })
            })
            .collect();
        bindings.sort();
        Ok(bindings)
    }

    /// Deletes the ACLs that match any of `filters` (DeleteAcls) and returns those deleted,
    /// sorted. A filter the broker refuses fails the call with its error.
    pub async fn delete_acls(&self, filters: &[AclBindingFilter]) -> Result<Vec<AclBinding>> {
        for filter in filters {
            filter
                .validate()
                .map_err(|e| Error::InvalidArgument(format!("invalid ACL filter {filter}: {e}")))?;
        }
        if filters.is_empty() {
            return Ok(Vec::new());
        }
        let conn = self.any_broker().await?;
        let version = acl_version::<DeleteAclsRequest>(&conn)?;
        let wire = filters
            .iter()
            .map(|f| {
                DeleteAclsFilter::default()
                    .with_resource_type_filter(f.resource_type.id())
                    .with_resource_name_filter(opt_text(&f.resource_name))
                    .with_pattern_type_filter(f.pattern_type.id())
                    .with_principal_filter(opt_text(&f.principal))
                    .with_host_filter(opt_text(&f.host))
                    .with_operation(f.operation.id())
                    .with_permission_type(f.permission.id())
            })
            .collect();
        let request = DeleteAclsRequest::default().with_filters(wire);
        let response = conn.send(&request, version).await?;
        let mut deleted = Vec::new();
        for (filter, result) in filters.iter().zip(&response.filter_results) {
            if let Some(e) = kafka_error(
                format!("cannot delete ACLs matching {filter}"),
                result.error_code,
                result.error_message.as_ref(),
            ) {
                return Err(e);
            }
            for acl in &result.matching_acls {
                let binding = binding_from_wire(
                    acl.resource_type,
                    &acl.resource_name,
                    acl.pattern_type,
                    &acl.principal,
                    &acl.host,
                    acl.operation,
                    acl.permission_type,
                );
                if let Some(e) = kafka_error(
                    format!("cannot delete ACL {binding}"),
                    acl.error_code,
                    acl.error_message.as_ref(),
                ) {
                    return Err(e);
                }
                deleted.push(binding);
            }
        }
        deleted.sort();
        deleted.dedup();
        Ok(deleted)
    }
}

// ---- Client quotas (DescribeClientQuotas, AlterClientQuotas; KIP-546) ----------------------

/// A client quota entity: (type, name) pairs of `user`, `client-id` or `ip`, where a `None`
/// name is the type's default (`<default>` in Kafka's tools).
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct QuotaEntity {
    /// The components, e.g. `[("user", Some("alice")), ("client-id", None)]`.
    pub components: Vec<(String, Option<String>)>,
}

/// How a DescribeClientQuotas filter component matches names of its type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum QuotaMatch {
    /// Exactly this name.
    Exact(String),
    /// The type's default.
    Default,
    /// Any name, the default included.
    Any,
}

/// A quota change for one entity: set (`Some`) or remove (`None`) each key.
#[derive(Debug, Clone, PartialEq)]
pub struct QuotaAlteration {
    /// Whose quotas.
    pub entity: QuotaEntity,
    /// Quota keys (`producer_byte_rate`, ...) with their new values.
    pub ops: Vec<(String, Option<f64>)>,
}

/// The quotas of one entity, by key.
pub type EntityQuotas = BTreeMap<String, f64>;

impl Client {
    /// Quotas of the entities matching every filter component (`(type, match)`); `strict`
    /// leaves out entities with types not in the filter. No components: every entity.
    pub async fn describe_client_quotas(
        &self,
        filter: &[(String, QuotaMatch)],
        strict: bool,
    ) -> Result<Vec<(QuotaEntity, EntityQuotas)>> {
        use kafka_protocol::messages::DescribeClientQuotasRequest;
        use kafka_protocol::messages::describe_client_quotas_request::ComponentData;
        let conn = self.any_broker().await?;
        let version = conn.version::<DescribeClientQuotasRequest>()?;
        let components = filter
            .iter()
            .map(|(entity_type, matching)| {
                let (match_type, name) = match matching {
                    QuotaMatch::Exact(name) => (0, Some(text(name))),
                    QuotaMatch::Default => (1, None),
                    QuotaMatch::Any => (2, None),
                };
                ComponentData::default()
                    .with_entity_type(text(entity_type))
                    .with_match_type(match_type)
                    .with_match(name)
            })
            .collect();
        let request = DescribeClientQuotasRequest::default()
            .with_components(components)
            .with_strict(strict);
        let response = conn.send(&request, version).await?;
        if let Some(e) = kafka_error(
            "cannot describe client quotas".to_string(),
            response.error_code,
            response.error_message.as_ref(),
        ) {
            return Err(e);
        }
        let mut out: Vec<(QuotaEntity, EntityQuotas)> = response
            .entries
            .unwrap_or_default()
            .into_iter()
            .map(|entry| {
                let entity = QuotaEntity {
                    components: entry
                        .entity
                        .iter()
                        .map(|e| {
                            (
                                e.entity_type.to_string(),
                                e.entity_name.as_ref().map(|n| n.to_string()),
                            )
                        })
                        .collect(),
                };
                let values = entry
                    .values
                    .iter()
                    .map(|v| (v.key.to_string(), v.value))
                    .collect();
                (entity, values)
            })
            .collect();
        out.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(out)
    }

    /// Applies quota changes; fails with the first entity the broker refused (the others'
    /// changes stand, as in Kafka). With `validate_only` nothing is changed.
    pub async fn alter_client_quotas(
        &self,
        alterations: &[QuotaAlteration],
        validate_only: bool,
    ) -> Result<()> {
        use kafka_protocol::messages::AlterClientQuotasRequest;
        use kafka_protocol::messages::alter_client_quotas_request::{
            EntityData, EntryData, OpData,
        };
        let conn = self.any_broker().await?;
        let version = conn.version::<AlterClientQuotasRequest>()?;
        let entries = alterations
            .iter()
            .map(|alteration| {
                EntryData::default()
                    .with_entity(
                        alteration
                            .entity
                            .components
                            .iter()
                            .map(|(entity_type, name)| {
                                EntityData::default()
                                    .with_entity_type(text(entity_type))
                                    .with_entity_name(name.as_deref().map(text))
                            })
                            .collect(),
                    )
                    .with_ops(
                        alteration
                            .ops
                            .iter()
                            .map(|(key, value)| {
                                OpData::default()
                                    .with_key(text(key))
                                    .with_value(value.unwrap_or(0.0))
                                    .with_remove(value.is_none())
                            })
                            .collect(),
                    )
            })
            .collect();
        let request = AlterClientQuotasRequest::default()
            .with_entries(entries)
            .with_validate_only(validate_only);
        let response = conn.send(&request, version).await?;
        for entry in response.entries {
            let entity: Vec<String> = entry
                .entity
                .iter()
                .map(|e| {
                    let name = e.entity_name.as_ref().map_or("<default>", |n| n.as_str());
                    format!("{}={name}", e.entity_type.as_str())
                })
                .collect();
            if let Some(e) = kafka_error(
                format!("cannot alter the quotas of {}", entity.join(",")),
                entry.error_code,
                entry.error_message.as_ref(),
            ) {
                return Err(e);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_fields_become_typed_bindings() {
        let binding =
            binding_from_wire(2, &text("orders"), 4, &text("User:alice"), &text("*"), 3, 3);
        assert_eq!(
            binding,
            AclBinding {
                resource_type: ResourceType::Topic,
                resource_name: "orders".to_string(),
                pattern_type: PatternType::Prefixed,
                principal: "User:alice".to_string(),
                host: "*".to_string(),
                operation: Operation::Read,
                permission: Permission::Allow,
            }
        );
    }

    #[test]
    fn config_sources_have_kafka_names() {
        assert_eq!(ConfigSource::from_code(1).name(), "DYNAMIC_TOPIC_CONFIG");
        assert_eq!(ConfigSource::from_code(5).name(), "DEFAULT_CONFIG");
        assert_eq!(ConfigSource::from_code(4).name(), "STATIC_BROKER_CONFIG");
        assert_eq!(ConfigSource::from_code(0).name(), "UNKNOWN");
    }

    #[test]
    fn offset_specs_use_kafka_sentinels() {
        assert_eq!(OffsetSpec::Earliest.wire_timestamp(), -2);
        assert_eq!(OffsetSpec::Latest.wire_timestamp(), -1);
        assert_eq!(OffsetSpec::Timestamp(5).wire_timestamp(), 5);
    }
}
