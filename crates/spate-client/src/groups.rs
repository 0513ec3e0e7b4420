//! Consumer-group administration: listing, describing and deleting groups, and reading and
//! committing their offsets, as `kafka-consumer-groups` does.
//!
//! Group requests go to the group's coordinator, found with FindCoordinator (key type 0) and
//! looked up again when a broker answers NOT_COORDINATOR, COORDINATOR_NOT_AVAILABLE or
//! COORDINATOR_LOAD_IN_PROGRESS (retried with backoff until the request timeout). ListGroups
//! asks every broker, since each lists only the groups it coordinates, and merges the answers.
//! Classic groups are described with DescribeGroups and KIP-848 groups with
//! ConsumerGroupDescribe.
//! Member assignments of `consumer` groups are decoded from the ConsumerProtocolAssignment
//! bytes; bytes that do not parse are reported as such, never trusted. Offsets are committed
//! the way admin tools do, outside any generation (generation -1, empty member id), which the
//! coordinator accepts only while the group has no members. This module never prints.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use bytes::{Buf, Bytes};
use futures::StreamExt;
use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::offset_fetch_request::{
    OffsetFetchRequestGroup, OffsetFetchRequestTopic, OffsetFetchRequestTopics,
};
use kafka_protocol::messages::{
    ApiKey, ConsumerGroupDescribeRequest, ConsumerProtocolAssignment, DeleteGroupsRequest,
    DescribeGroupsRequest, FindCoordinatorRequest, GroupId, ListGroupsRequest, OffsetCommitRequest,
    OffsetFetchRequest, TopicName,
};
use kafka_protocol::protocol::{Decodable, StrBytes};

use crate::client::{Client, broker_address};
use crate::connection::Connection;
use crate::error::{Error, KafkaError, Result, code};

/// FindCoordinator key type of a consumer group.
const KEY_TYPE_GROUP: i8 = 0;

/// Groups deleted (or described) concurrently at most.
const MAX_CONCURRENT_GROUP_REQUESTS: usize = 8;

/// The state a classic coordinator reports for a group that does not exist.
const STATE_DEAD: &str = "Dead";

/// The group coordinator as FindCoordinator reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Coordinator {
    /// Node id.
    pub node_id: i32,
    /// Advertised host.
    pub host: String,
    /// Advertised port.
    pub port: i32,
}

/// A group as ListGroups reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedGroup {
    /// Group id.
    pub group_id: String,
    /// Protocol type, e.g. `consumer` (empty for groups that only hold offsets).
    pub protocol_type: String,
    /// State, e.g. `Stable` or `Empty` (ListGroups v4+, else from DescribeGroups).
    pub state: Option<String>,
    /// Group type, `classic` or `consumer` (ListGroups v5+ only).
    pub group_type: Option<String>,
    /// The broker that listed it (its coordinator).
    pub coordinator_id: i32,
}

/// What a member of a group was assigned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MemberAssignment {
    /// A `consumer` group member's topic partitions (sorted; empty when none yet).
    Partitions(Vec<(String, Vec<i32>)>),
    /// A group of another protocol type (e.g. `connect`): the bytes are not interpreted.
    Opaque {
        /// Size of the assignment in bytes.
        size_bytes: usize,
    },
    /// Assignment bytes of a `consumer` group that do not parse.
    Malformed {
        /// Why they do not parse.
        reason: String,
    },
}

impl MemberAssignment {
    /// Decodes a member's assignment: ConsumerProtocolAssignment for `consumer` groups.
    pub fn decode(protocol_type: &str, bytes: &Bytes) -> MemberAssignment {
        if protocol_type != "consumer" {
            return MemberAssignment::Opaque {
                size_bytes: bytes.len(),
            };
        }
        // A member that has joined but not yet synced has no assignment.
        if bytes.is_empty() {
            return MemberAssignment::Partitions(Vec::new());
        }
        match decode_consumer_assignment(bytes) {
            Ok(partitions) => MemberAssignment::Partitions(partitions),
            Err(reason) => MemberAssignment::Malformed { reason },
        }
    }

    /// The assigned partitions, if they are known.
    pub fn partitions(&self) -> Option<&[(String, Vec<i32>)]> {
        match self {
            MemberAssignment::Partitions(p) => Some(p),
            _ => None,
        }
    }
}

/// Decodes ConsumerProtocolAssignment bytes: a 2-byte version, then the assignment in that
/// version. Newer versions only append fields, so they are read as the newest one known (as
/// Kafka's `ConsumerProtocol` does).
fn decode_consumer_assignment(
    bytes: &Bytes,
) -> std::result::Result<Vec<(String, Vec<i32>)>, String> {
    let mut buf = bytes.clone();
    if buf.remaining() < 2 {
        return Err(format!(
            "{} bytes, too short for a version",
            buf.remaining()
        ));
    }
    let version = buf.get_i16();
    if version < 0 {
        return Err(format!("invalid version {version}"));
    }
    let version = version.min(3);
    let assignment =
        ConsumerProtocolAssignment::decode(&mut buf, version).map_err(|e| e.to_string())?;
    let mut by_topic: BTreeMap<String, Vec<i32>> = BTreeMap::new();
    for tp in assignment.assigned_partitions {
        by_topic
            .entry(tp.topic.0.to_string())
            .or_default()
            .extend(tp.partitions);
    }
    Ok(by_topic
        .into_iter()
        .map(|(topic, mut partitions)| {
            partitions.sort_unstable();
            partitions.dedup();
            (topic, partitions)
        })
        .collect())
}

/// A member of a group as DescribeGroups reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupMember {
    /// Member id assigned by the coordinator.
    pub member_id: String,
    /// Static member id (`group.instance.id`), if any.
    pub group_instance_id: Option<String>,
    /// The client's `client.id`.
    pub client_id: String,
    /// The client's host as the coordinator saw it, e.g. `/127.0.0.1`.
    pub client_host: String,
    /// What the member was assigned.
    pub assignment: MemberAssignment,
}

/// Which protocol a group's members speak.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupType {
    /// JoinGroup/SyncGroup, described with DescribeGroups.
    Classic,
    /// KIP-848 ConsumerGroupHeartbeat, described with ConsumerGroupDescribe.
    Consumer,
}

impl GroupType {
    /// Kafka's name: `classic` or `consumer`.
    pub fn name(self) -> &'static str {
        match self {
            GroupType::Classic => "classic",
            GroupType::Consumer => "consumer",
        }
    }
}

/// A group as DescribeGroups (classic groups) or ConsumerGroupDescribe (KIP-848 groups)
/// reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupDescription {
    /// Group id.
    pub group_id: String,
    /// Classic or KIP-848 consumer group.
    pub group_type: GroupType,
    /// State, e.g. `Stable`, `Empty`, `PreparingRebalance`.
    pub state: String,
    /// Protocol type, e.g. `consumer`.
    pub protocol_type: String,
    /// The chosen protocol: the assignor of consumer groups, e.g. `range` (empty when the
    /// group has no members).
    pub protocol: String,
    /// Members (none when the group is Empty).
    pub members: Vec<GroupMember>,
    /// The group's coordinator.
    pub coordinator: Coordinator,
}

/// A committed offset of a group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommittedOffset {
    /// Topic.
    pub topic: String,
    /// Partition.
    pub partition: i32,
    /// The committed offset (the next record the group will read).
    pub offset: i64,
    /// Leader epoch committed with it, if any.
    pub leader_epoch: Option<i32>,
    /// Metadata string committed with it.
    pub metadata: Option<String>,
}

fn text(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_string())
}

fn group_id(s: &str) -> GroupId {
    GroupId(text(s))
}

/// OffsetCommit's topics for `(topic, partition, offset)` triples, grouped by topic.
pub(crate) fn offset_commit_topics(
    offsets: &[(String, i32, i64)],
) -> Vec<OffsetCommitRequestTopic> {
    let mut by_topic: BTreeMap<&str, Vec<OffsetCommitRequestPartition>> = BTreeMap::new();
    for (topic, partition, offset) in offsets {
        by_topic.entry(topic.as_str()).or_default().push(
            OffsetCommitRequestPartition::default()
                .with_partition_index(*partition)
                .with_committed_offset(*offset),
        );
    }
    by_topic
        .into_iter()
        .map(|(topic, partitions)| {
            OffsetCommitRequestTopic::default()
                .with_name(topic_name(topic))
                .with_partitions(partitions)
        })
        .collect()
}

fn topic_name(s: &str) -> TopicName {
    TopicName(text(s))
}

fn kafka_error(
    context: impl FnOnce() -> String,
    code: i16,
    message: Option<&StrBytes>,
) -> Result<()> {
    match KafkaError::from_code(code, message.map(|m| m.as_str())) {
        Some(error) => Err(Error::Kafka {
            context: context(),
            error,
        }),
        None => Ok(()),
    }
}

/// Whether looking up the coordinator again and retrying can help.
pub(crate) fn is_coordinator_retriable(error: &Error) -> bool {
    match error.kafka_code() {
        Some(
            code::COORDINATOR_LOAD_IN_PROGRESS
            | code::COORDINATOR_NOT_AVAILABLE
            | code::NOT_COORDINATOR
            | code::UNSTABLE_OFFSET_COMMIT,
        ) => true,
        Some(_) => false,
        None => error.is_retriable(),
    }
}

fn missing(conn: &Connection, api: ApiKey, version: i16, what: String) -> Error {
    Error::Decode {
        broker: conn.broker().to_string(),
        api,
        version,
        reason: what,
    }
}

impl Client {
    /// Finds the coordinator of `group` (FindCoordinator with key type 0).
    pub async fn find_group_coordinator(&self, group: &str) -> Result<Coordinator> {
        self.find_coordinator(KEY_TYPE_GROUP, group).await
    }

    /// Finds the coordinator of a key: a group (key type 0) or a transactional id (1).
    pub async fn find_coordinator(&self, key_type: i8, key: &str) -> Result<Coordinator> {
        let group = key;
        let what = if key_type == KEY_TYPE_GROUP {
            "group"
        } else {
            "transactional id"
        };
        let conn = self.any_broker().await?;
        let version = conn.version::<FindCoordinatorRequest>()?;
        let context = || format!("find the coordinator of {what} {group:?}");
        let request = if version >= 4 {
            FindCoordinatorRequest::default()
                .with_key_type(key_type)
                .with_coordinator_keys(vec![text(group)])
        } else {
            FindCoordinatorRequest::default()
                .with_key_type(key_type)
                .with_key(text(group))
        };
        let response = conn.send(&request, version).await?;
        if version >= 4 {
            let found = response
                .coordinators
                .into_iter()
                .find(|c| c.key.as_str() == group)
                .ok_or_else(|| {
                    missing(
                        &conn,
                        ApiKey::FindCoordinator,
                        version,
                        format!("no coordinator for {what} {group:?}"),
                    )
                })?;
            kafka_error(context, found.error_code, found.error_message.as_ref())?;
            Ok(Coordinator {
                node_id: found.node_id.0,
                host: found.host.to_string(),
                port: found.port,
            })
        } else {
            kafka_error(
                context,
                response.error_code,
                response.error_message.as_ref(),
            )?;
            Ok(Coordinator {
                node_id: response.node_id.0,
                host: response.host.to_string(),
                port: response.port,
            })
        }
    }

    /// A connection to `coordinator`: the client's connection to that node when metadata
    /// knows it, else a new one to the address FindCoordinator gave.
    pub(crate) async fn coordinator_connection(
        &self,
        coordinator: &Coordinator,
    ) -> Result<Arc<Connection>> {
        match self.broker(coordinator.node_id).await {
            Err(Error::UnknownBroker { .. }) => {}
            other => return other,
        }
        self.metadata(Some(&[]), false).await?;
        match self.broker(coordinator.node_id).await {
            Err(Error::UnknownBroker { .. }) => {}
            other => return other,
        }
        let address = broker_address(&coordinator.host, coordinator.port);
        self.open(&address).await
    }

    /// Runs `attempt` against the coordinator of `group`, finding it again and retrying
    /// (with backoff, until the request timeout) when the coordinator moved or is loading.
    async fn with_group_coordinator<T, F, Fut>(&self, group: &str, mut attempt: F) -> Result<T>
    where
        F: FnMut(Arc<Connection>, Coordinator) -> Fut,
        Fut: std::future::Future<Output = Result<T>>,
    {
        let deadline = tokio::time::Instant::now() + self.config().timeouts.request;
        let mut backoff = Duration::from_millis(50);
        loop {
            let mut node_id = None;
            let result = async {
                let coordinator = self.find_group_coordinator(group).await?;
                node_id = Some(coordinator.node_id);
                let conn = self.coordinator_connection(&coordinator).await?;
                attempt(conn, coordinator).await
            }
            .await;
            match result {
                Err(e)
                    if is_coordinator_retriable(&e)
                        && tokio::time::Instant::now() + backoff < deadline =>
                {
                    tracing::debug!(group, error = %e, "retrying at the group coordinator");
                    if let (Some(node_id), None) = (node_id, e.kafka_code()) {
                        self.drop_connection(node_id);
                    }
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(1));
                }
                other => return other,
            }
        }
    }

    /// Lists the groups of every broker (ListGroups), sorted by id. `states` filters by
    /// state, case-insensitively (sent to brokers with ListGroups v4+, applied here for older
    /// ones, whose groups' states are read with DescribeGroups).
    pub async fn list_groups(&self, states: &[String]) -> Result<Vec<ListedGroup>> {
        let metadata = self.metadata(Some(&[]), false).await?;
        let answers = futures::future::join_all(
            metadata
                .brokers
                .iter()
                .map(|b| self.list_groups_at(b.node_id, states)),
        )
        .await;
        let wanted: HashSet<String> = states.iter().map(|s| s.to_lowercase()).collect();
        let mut seen = HashSet::new();
        let mut groups = Vec::new();
        for answer in answers {
            for group in answer? {
                let keep = wanted.is_empty()
                    || group
                        .state
                        .as_ref()
                        .is_some_and(|s| wanted.contains(&s.to_lowercase()));
                if keep && seen.insert(group.group_id.clone()) {
                    groups.push(group);
                }
            }
        }
        groups.sort_by(|a, b| a.group_id.cmp(&b.group_id));
        Ok(groups)
    }

    /// ListGroups at one broker, retried while its coordinator is loading.
    async fn list_groups_at(&self, node_id: i32, states: &[String]) -> Result<Vec<ListedGroup>> {
        let deadline = tokio::time::Instant::now() + self.config().timeouts.request;
        let mut backoff = Duration::from_millis(50);
        loop {
            match self.list_groups_once(node_id, states).await {
                Err(e)
                    if is_coordinator_retriable(&e)
                        && tokio::time::Instant::now() + backoff < deadline =>
                {
                    tracing::debug!(node_id, error = %e, "retrying ListGroups");
                    if e.kafka_code().is_none() {
                        self.drop_connection(node_id);
                    }
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(1));
                }
                other => return other,
            }
        }
    }

    async fn list_groups_once(&self, node_id: i32, states: &[String]) -> Result<Vec<ListedGroup>> {
        let conn = self.broker(node_id).await?;
        let version = conn.version::<ListGroupsRequest>()?;
        let mut request = ListGroupsRequest::default();
        if version >= 4 {
            request = request.with_states_filter(states.iter().map(|s| text(s)).collect());
        }
        let response = conn.send(&request, version).await?;
        kafka_error(
            || format!("list groups of broker {node_id} ({})", conn.broker()),
            response.error_code,
            None,
        )?;
        let mut groups: Vec<ListedGroup> = response
            .groups
            .into_iter()
            .map(|g| ListedGroup {
                group_id: g.group_id.0.to_string(),
                protocol_type: g.protocol_type.to_string(),
                state: (version >= 4).then(|| g.group_state.to_string()),
                group_type: (version >= 5).then(|| g.group_type.to_string()),
                coordinator_id: node_id,
            })
            .collect();
        if version < 4 && !groups.is_empty() {
            // The broker that lists a group is its coordinator: ask it for the states.
            let ids: Vec<String> = groups.iter().map(|g| g.group_id.clone()).collect();
            let described = describe_at(&conn, &ids).await?;
            for group in &mut groups {
                group.state = described
                    .iter()
                    .find(|d| d.group_id.0.as_str() == group.group_id)
                    .filter(|d| d.error_code == code::NONE)
                    .map(|d| d.group_state.to_string());
            }
        }
        Ok(groups)
    }

    /// Describes `group` at its coordinator: DescribeGroups, then ConsumerGroupDescribe when
    /// the coordinator has no classic group of that id and speaks KIP-848 (as Kafka's admin
    /// client does). `None` when the group does not exist (state `Dead`, or
    /// GROUP_ID_NOT_FOUND).
    pub async fn describe_group(&self, group: &str) -> Result<Option<GroupDescription>> {
        self.with_group_coordinator(group, |conn, coordinator| async move {
            match describe_classic(&conn, group, &coordinator).await? {
                Some(found) => Ok(Some(found)),
                None if conn
                    .version_within(ApiKey::ConsumerGroupDescribe, 0, 1)
                    .is_ok() =>
                {
                    describe_consumer(&conn, group, &coordinator).await
                }
                None => Ok(None),
            }
        })
        .await
    }

    /// The committed offsets of `group` (OffsetFetch), sorted by topic and partition:
    /// of every partition when `partitions` is `None`, else of those asked for. Partitions
    /// without a committed offset are left out.
    pub async fn committed_offsets(
        &self,
        group: &str,
        partitions: Option<&[(String, Vec<i32>)]>,
    ) -> Result<Vec<CommittedOffset>> {
        self.with_group_coordinator(group, |conn, _| async move {
            // Asking for all partitions (a null topic list) needs v2.
            let min_version = if partitions.is_none() { 2 } else { 1 };
            let version = conn.version_within(ApiKey::OffsetFetch, min_version, 9)?;
            let request = if version >= 8 {
                let topics = partitions.map(|parts| {
                    parts
                        .iter()
                        .map(|(topic, ps)| {
                            OffsetFetchRequestTopics::default()
                                .with_name(topic_name(topic))
                                .with_partition_indexes(ps.clone())
                        })
                        .collect()
                });
                OffsetFetchRequest::default().with_groups(vec![
                    OffsetFetchRequestGroup::default()
                        .with_group_id(group_id(group))
                        .with_topics(topics),
                ])
            } else {
                let topics = partitions.map(|parts| {
                    parts
                        .iter()
                        .map(|(topic, ps)| {
                            OffsetFetchRequestTopic::default()
                                .with_name(topic_name(topic))
                                .with_partition_indexes(ps.clone())
                        })
                        .collect()
                });
                OffsetFetchRequest::default()
                    .with_group_id(group_id(group))
                    .with_topics(topics)
            };
            let response = conn.send(&request, version).await?;
            let context = || format!("fetch committed offsets of group {group:?}");
            // (topic, partition, offset, leader epoch, metadata, error code)
            let mut rows: Vec<(String, i32, i64, i32, Option<StrBytes>, i16)> = Vec::new();
            if version >= 8 {
                let found = response
                    .groups
                    .into_iter()
                    .find(|g| g.group_id.0.as_str() == group)
                    .ok_or_else(|| {
                        missing(
                            &conn,
                            ApiKey::OffsetFetch,
                            version,
                            format!("no offsets of group {group:?}"),
                        )
                    })?;
                if found.error_code == code::GROUP_ID_NOT_FOUND {
                    return Ok(Vec::new());
                }
                kafka_error(context, found.error_code, None)?;
                for t in found.topics {
                    for p in t.partitions {
                        rows.push((
                            t.name.0.to_string(),
                            p.partition_index,
                            p.committed_offset,
                            p.committed_leader_epoch,
                            p.metadata,
                            p.error_code,
                        ));
                    }
                }
            } else {
                if response.error_code == code::GROUP_ID_NOT_FOUND {
                    return Ok(Vec::new());
                }
                kafka_error(context, response.error_code, None)?;
                for t in response.topics {
                    for p in t.partitions {
                        rows.push((
                            t.name.0.to_string(),
                            p.partition_index,
                            p.committed_offset,
                            p.committed_leader_epoch,
                            p.metadata,
                            p.error_code,
                        ));
                    }
                }
            }
            let mut offsets = Vec::new();
            for (topic, partition, offset, leader_epoch, metadata, error_code) in rows {
                kafka_error(
                    || {
                        format!(
                            "fetch the committed offset of {topic}-{partition} for group {group:?}"
                        )
                    },
                    error_code,
                    None,
                )?;
                if offset < 0 {
                    continue;
                }
                offsets.push(CommittedOffset {
                    topic,
                    partition,
                    offset,
                    leader_epoch: (leader_epoch >= 0).then_some(leader_epoch),
                    metadata: metadata.map(|m| m.to_string()),
                });
            }
            offsets.sort_by(|a, b| (&a.topic, a.partition).cmp(&(&b.topic, b.partition)));
            Ok(offsets)
        })
        .await
    }

    /// Commits `offsets` (topic, partition, offset) for `group` as an admin tool does
    /// (OffsetCommit outside any generation). The coordinator refuses this while the group has
    /// members (UNKNOWN_MEMBER_ID or ILLEGAL_GENERATION); the first partition error is returned.
    pub async fn commit_group_offsets(
        &self,
        group: &str,
        offsets: &[(String, i32, i64)],
    ) -> Result<()> {
        self.with_group_coordinator(group, |conn, _| async move {
            let version = conn.version::<OffsetCommitRequest>()?;
            let topics = offset_commit_topics(offsets);
            let request = OffsetCommitRequest::default()
                .with_group_id(group_id(group))
                .with_generation_id_or_member_epoch(-1)
                .with_member_id(StrBytes::default())
                .with_topics(topics);
            let response = conn.send(&request, version).await?;
            let mut answered = 0;
            for t in &response.topics {
                for p in &t.partitions {
                    answered += 1;
                    kafka_error(
                        || {
                            format!(
                                "commit the offset of {}-{} for group {group:?}",
                                t.name.0, p.partition_index
                            )
                        },
                        p.error_code,
                        None,
                    )?;
                }
            }
            let asked = offsets.len();
            if answered < asked {
                return Err(missing(
                    &conn,
                    ApiKey::OffsetCommit,
                    version,
                    format!("{answered} partition results for {asked} partitions committed"),
                ));
            }
            Ok(())
        })
        .await
    }

    /// Deletes `groups` (DeleteGroups at each group's coordinator). Returns each group with
    /// its outcome, in the order given: NON_EMPTY_GROUP for a group with members,
    /// GROUP_ID_NOT_FOUND for a group that does not exist.
    pub async fn delete_groups(&self, groups: &[String]) -> Vec<(String, Result<()>)> {
        futures::stream::iter(groups.iter().cloned())
            .map(|group| async move {
                let result = self.delete_group(&group).await;
                (group, result)
            })
            .buffered(MAX_CONCURRENT_GROUP_REQUESTS)
            .collect()
            .await
    }

    async fn delete_group(&self, group: &str) -> Result<()> {
        self.with_group_coordinator(group, |conn, _| async move {
            let version = conn.version::<DeleteGroupsRequest>()?;
            let request = DeleteGroupsRequest::default().with_groups_names(vec![group_id(group)]);
            let response = conn.send(&request, version).await?;
            let found = response
                .results
                .into_iter()
                .find(|r| r.group_id.0.as_str() == group)
                .ok_or_else(|| {
                    missing(
                        &conn,
                        ApiKey::DeleteGroups,
                        version,
                        format!("no result for group {group:?}"),
                    )
                })?;
            kafka_error(
                || format!("cannot delete group {group:?}"),
                found.error_code,
                None,
            )
        })
        .await
    }
}

/// DescribeGroups for one classic group; `None` when the coordinator has no such group.
async fn describe_classic(
    conn: &Connection,
    group: &str,
    coordinator: &Coordinator,
) -> Result<Option<GroupDescription>> {
    let version = conn.version::<DescribeGroupsRequest>()?;
    let described = describe_at(conn, &[group.to_string()]).await?;
    let found = described
        .into_iter()
        .find(|d| d.group_id.0.as_str() == group)
        .ok_or_else(|| {
            missing(
                conn,
                ApiKey::DescribeGroups,
                version,
                format!("no description of group {group:?}"),
            )
        })?;
    if found.error_code == code::GROUP_ID_NOT_FOUND {
        return Ok(None);
    }
    kafka_error(
        || format!("describe group {group:?}"),
        found.error_code,
        found.error_message.as_ref(),
    )?;
    if found.group_state.as_str() == STATE_DEAD {
        return Ok(None);
    }
    let protocol_type = found.protocol_type.to_string();
    let mut members: Vec<GroupMember> = found
        .members
        .into_iter()
        .map(|m| GroupMember {
            member_id: m.member_id.to_string(),
            group_instance_id: m.group_instance_id.map(|s| s.to_string()),
            client_id: m.client_id.to_string(),
            client_host: m.client_host.to_string(),
            assignment: MemberAssignment::decode(&protocol_type, &m.member_assignment),
        })
        .collect();
    members.sort_by(|a, b| a.member_id.cmp(&b.member_id));
    Ok(Some(GroupDescription {
        group_id: group.to_string(),
        group_type: GroupType::Classic,
        state: found.group_state.to_string(),
        protocol_type,
        protocol: found.protocol_data.to_string(),
        members,
        coordinator: coordinator.clone(),
    }))
}

/// ConsumerGroupDescribe for one KIP-848 group; `None` when there is no such group.
async fn describe_consumer(
    conn: &Connection,
    group: &str,
    coordinator: &Coordinator,
) -> Result<Option<GroupDescription>> {
    let version = conn.version::<ConsumerGroupDescribeRequest>()?;
    let request = ConsumerGroupDescribeRequest::default().with_group_ids(vec![group_id(group)]);
    let response = conn.send(&request, version).await?;
    let found = response
        .groups
        .into_iter()
        .find(|d| d.group_id.0.as_str() == group)
        .ok_or_else(|| {
            missing(
                conn,
                ApiKey::ConsumerGroupDescribe,
                version,
                format!("no description of group {group:?}"),
            )
        })?;
    if found.error_code == code::GROUP_ID_NOT_FOUND {
        return Ok(None);
    }
    kafka_error(
        || format!("describe group {group:?}"),
        found.error_code,
        found.error_message.as_ref(),
    )?;
    if found.group_state.as_str().eq_ignore_ascii_case(STATE_DEAD) {
        return Ok(None);
    }
    let mut members: Vec<GroupMember> = found
        .members
        .into_iter()
        .map(|m| {
            let mut by_topic: BTreeMap<String, Vec<i32>> = BTreeMap::new();
            for tp in m.assignment.topic_partitions {
                by_topic
                    .entry(tp.topic_name.0.to_string())
                    .or_default()
                    .extend(tp.partitions);
            }
            let partitions = by_topic
                .into_iter()
                .map(|(topic, mut ps)| {
                    ps.sort_unstable();
                    ps.dedup();
                    (topic, ps)
                })
                .collect();
            GroupMember {
                member_id: m.member_id.to_string(),
                group_instance_id: m.instance_id.map(|s| s.to_string()),
                client_id: m.client_id.to_string(),
                client_host: m.client_host.to_string(),
                assignment: MemberAssignment::Partitions(partitions),
            }
        })
        .collect();
    members.sort_by(|a, b| a.member_id.cmp(&b.member_id));
    Ok(Some(GroupDescription {
        group_id: group.to_string(),
        group_type: GroupType::Consumer,
        state: found.group_state.to_string(),
        protocol_type: "consumer".to_string(),
        protocol: found.assignor_name.to_string(),
        members,
        coordinator: coordinator.clone(),
    }))
}

/// DescribeGroups for `groups` on `conn`, the raw per-group answers.
async fn describe_at(
    conn: &Connection,
    groups: &[String],
) -> Result<Vec<kafka_protocol::messages::describe_groups_response::DescribedGroup>> {
    let version = conn.version::<DescribeGroupsRequest>()?;
    let request =
        DescribeGroupsRequest::default().with_groups(groups.iter().map(|g| group_id(g)).collect());
    Ok(conn.send(&request, version).await?.groups)
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::{BufMut, BytesMut};
    use kafka_protocol::messages::consumer_protocol_assignment::TopicPartition;
    use kafka_protocol::protocol::Encodable;

    fn assignment_bytes(version: i16, parts: &[(&str, &[i32])]) -> Bytes {
        let assignment = ConsumerProtocolAssignment::default().with_assigned_partitions(
            parts
                .iter()
                .map(|(topic, ps)| {
                    TopicPartition::default()
                        .with_topic(topic_name(topic))
                        .with_partitions(ps.to_vec())
                })
                .collect(),
        );
        let mut buf = BytesMut::new();
        buf.put_i16(version);
        assignment.encode(&mut buf, version.min(3)).expect("encode");
        buf.freeze()
    }

    #[test]
    fn consumer_assignments_decode_in_every_version() {
        for version in 0..=3 {
            let bytes = assignment_bytes(version, &[("b", &[2, 0]), ("a", &[1])]);
            assert_eq!(
                MemberAssignment::decode("consumer", &bytes),
                MemberAssignment::Partitions(vec![
                    ("a".to_string(), vec![1]),
                    ("b".to_string(), vec![0, 2]),
                ]),
                "version {version}"
            );
        }
    }

    #[test]
    fn newer_assignment_versions_read_as_the_newest_known() {
        let bytes = assignment_bytes(7, &[("t", &[0])]);
        assert_eq!(
            MemberAssignment::decode("consumer", &bytes).partitions(),
            Some(&[("t".to_string(), vec![0])][..])
        );
    }

    #[test]
    fn bad_assignment_bytes_are_reported_not_trusted() {
        let empty = Bytes::new();
        assert_eq!(
            MemberAssignment::decode("consumer", &empty),
            MemberAssignment::Partitions(vec![])
        );
        for bad in [
            &[0u8][..],
            &[0xff, 0xff, 0, 0, 0, 1],
            &[0, 1, 0, 0, 0, 9, 0],
        ] {
            let bytes = Bytes::copy_from_slice(bad);
            assert!(
                matches!(
                    MemberAssignment::decode("consumer", &bytes),
                    MemberAssignment::Malformed { .. }
                ),
                "{bad:?}"
            );
        }
        assert_eq!(
            MemberAssignment::decode("connect", &Bytes::from_static(b"xyz")),
            MemberAssignment::Opaque { size_bytes: 3 }
        );
    }

    #[test]
    fn coordinator_errors_are_retried() {
        let kafka = |code| Error::Kafka {
            context: String::new(),
            error: KafkaError {
                code,
                message: None,
            },
        };
        assert!(is_coordinator_retriable(&kafka(code::NOT_COORDINATOR)));
        assert!(is_coordinator_retriable(&kafka(
            code::COORDINATOR_LOAD_IN_PROGRESS
        )));
        assert!(is_coordinator_retriable(&kafka(
            code::COORDINATOR_NOT_AVAILABLE
        )));
        assert!(!is_coordinator_retriable(&kafka(code::NON_EMPTY_GROUP)));
        assert!(!is_coordinator_retriable(&kafka(code::GROUP_ID_NOT_FOUND)));
    }
}
