//! The group coordinator: consumer groups (classic protocol) and their committed offsets.
//!
//! Every group is coordinated by this broker. Membership lives in memory ([`classic`]);
//! committed offsets are appended to the internal compacted topic `__consumer_offsets`
//! ([`store`]) and acknowledged only once durable, then applied in memory; on start the
//! coordinator replays that topic. Members are not persisted: after a restart they get
//! UNKNOWN_MEMBER_ID on their next heartbeat and rejoin, resuming from their committed offsets.

pub mod classic;
pub mod consumer;
pub mod store;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use bytes::Bytes;
use kafka_protocol::ResponseError;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use parking_lot::Mutex;
use spate_log::BatchBuilder;

use spate_auth::acl::{CLUSTER_NAME, Operation, ResourceType};

use crate::authz::Caller;
use crate::error::BrokerError;
use crate::topics::TopicRegistry;
use crate::{Broker, Reply};
use classic::{Group, GroupSettings, GroupState, JoinOutcome, JoinRequest, SyncOutcome};
use consumer::{Assignment, ConsumerGroup, TopicInfo};

use store::{CommittedOffset, OFFSETS_TOPIC, StoredRecord};

/// Offsets committed inside open transactions: (group, producer id) → (topic, partition, offset).
pub(crate) type TransactionOffsets = HashMap<(String, i64), Vec<(String, i32, CommittedOffset)>>;

/// Committed offsets of one topic's partitions (`None`: nothing committed).
type TopicOffsets = (TopicName, Vec<(i32, Option<CommittedOffset>)>);

/// Kafka's `offset.metadata.max.bytes`.
const MAX_OFFSET_METADATA_BYTES: usize = 4096;

/// Coordinator settings.
#[derive(Debug, Clone)]
pub struct CoordinatorSettings {
    /// Classic protocol timers and limits.
    pub groups: GroupSettings,
    /// `offsets.topic.num.partitions`.
    pub offsets_topic_partitions: i32,
    /// `offsets.retention.minutes`, in ms: offsets of a group empty this long are deleted.
    pub offsets_retention_ms: i64,
    /// `group.consumer.session.timeout.ms` (KIP-848 groups).
    pub consumer_session_timeout_ms: i32,
    /// `group.consumer.heartbeat.interval.ms` (KIP-848 groups), sent to members.
    pub consumer_heartbeat_interval_ms: i32,
    /// `group.consumer.min.session.timeout.ms`: the smallest `consumer.session.timeout.ms` a
    /// group config may set.
    pub consumer_min_session_timeout_ms: i32,
    /// `group.consumer.max.session.timeout.ms`.
    pub consumer_max_session_timeout_ms: i32,
    /// `group.consumer.min.heartbeat.interval.ms` (Kafka: 5000; Spate's default interval is
    /// 1000, so its floor is too).
    pub consumer_min_heartbeat_interval_ms: i32,
    /// `group.consumer.max.heartbeat.interval.ms`.
    pub consumer_max_heartbeat_interval_ms: i32,
}

impl Default for CoordinatorSettings {
    fn default() -> CoordinatorSettings {
        CoordinatorSettings {
            groups: GroupSettings::default(),
            offsets_topic_partitions: 50,
            offsets_retention_ms: 7 * 24 * 3_600_000,
            consumer_session_timeout_ms: 45_000,
            consumer_heartbeat_interval_ms: 1_000,
            consumer_min_session_timeout_ms: 45_000,
            consumer_max_session_timeout_ms: 60_000,
            consumer_min_heartbeat_interval_ms: 1_000,
            consumer_max_heartbeat_interval_ms: 15_000,
        }
    }
}

/// All groups. A group id is either a classic group or a KIP-848 consumer group; a group with
/// only committed offsets is an empty classic group until a member of either kind arrives.
#[derive(Debug, Default)]
pub(crate) struct Registry {
    pub(crate) classic: HashMap<String, Group>,
    pub(crate) consumer: HashMap<String, ConsumerGroup>,
}

impl Registry {
    fn offsets(&self, id: &str) -> Option<&HashMap<(String, i32), CommittedOffset>> {
        self.classic
            .get(id)
            .map(|g| &g.offsets)
            .or_else(|| self.consumer.get(id).map(|g| &g.offsets))
    }

    fn offsets_mut(&mut self, id: &str) -> Option<&mut HashMap<(String, i32), CommittedOffset>> {
        if let Some(group) = self.classic.get_mut(id) {
            return Some(&mut group.offsets);
        }
        self.consumer.get_mut(id).map(|g| &mut g.offsets)
    }
}

/// The coordinator's state.
#[derive(Debug)]
pub struct GroupCoordinator {
    settings: CoordinatorSettings,
    groups: Mutex<Registry>,
    open_transaction_offsets: Mutex<TransactionOffsets>,
}

fn s(value: &str) -> StrBytes {
    StrBytes::from_string(value.to_string())
}

/// A committed offset as reported to lag readers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupOffset {
    /// Group id.
    pub group: String,
    /// Topic.
    pub topic: String,
    /// Partition.
    pub partition: i32,
    /// Committed offset.
    pub offset: i64,
}

impl GroupCoordinator {
    /// Replays `__consumer_offsets` (created at the first commit). Blocking.
    pub fn open(
        settings: CoordinatorSettings,
        topics: &TopicRegistry,
        now_ms: i64,
    ) -> Result<GroupCoordinator, BrokerError> {
        let mut groups: HashMap<String, Group> = HashMap::new();
        let mut replayed = 0usize;
        // Offsets committed inside transactions wait for their producer's marker.
        let mut pending: HashMap<i64, Vec<(String, String, i32, CommittedOffset)>> = HashMap::new();
        crate::internal::replay_topic(topics, OFFSETS_TOPIC, |header, offset, key, value| {
            if header.is_control() {
                let commit = key.is_some_and(|k| {
                    k.len() >= 4
                        && i16::from_be_bytes([k[2], k[3]]) == spate_log::batch::CONTROL_COMMIT
                });
                for (group, topic, partition, committed) in
                    pending.remove(&header.producer_id).unwrap_or_default()
                {
                    if commit {
                        groups
                            .entry(group.clone())
                            .or_insert_with(|| Group::new(&group, now_ms))
                            .offsets
                            .insert((topic, partition), committed);
                    }
                }
                return;
            }
            let Some(key) = key else { return };
            match store::decode(key, value, offset) {
                Some(StoredRecord::Offset {
                    group,
                    topic,
                    partition,
                    value,
                }) => {
                    replayed += 1;
                    if header.is_transactional() {
                        if let Some(value) = value {
                            pending
                                .entry(header.producer_id)
                                .or_default()
                                .push((group, topic, partition, value));
                        }
                        return;
                    }
                    let entry = groups
                        .entry(group.clone())
                        .or_insert_with(|| Group::new(&group, now_ms));
                    match value {
                        Some(value) => {
                            entry.offsets.insert((topic, partition), value);
                        }
                        None => {
                            entry.offsets.remove(&(topic, partition));
                        }
                    }
                }
                Some(StoredRecord::Group { group }) => {
                    if let Some(entry) = groups.get(&group)
                        && entry.offsets.is_empty()
                    {
                        groups.remove(&group);
                    }
                }
                None => {}
            }
        })?;
        let mut open_transactions: TransactionOffsets = HashMap::new();
        for (pid, offsets) in pending {
            for (group, topic, partition, committed) in offsets {
                open_transactions
                    .entry((group, pid))
                    .or_default()
                    .push((topic, partition, committed));
            }
        }
        groups.retain(|_, g| !g.is_disposable());
        if replayed > 0 {
            tracing::info!(
                groups = groups.len(),
                records = replayed,
                "restored committed offsets"
            );
        }
        Ok(GroupCoordinator {
            settings,
            groups: Mutex::new(Registry {
                classic: groups,
                consumer: HashMap::new(),
            }),
            open_transaction_offsets: Mutex::new(open_transactions),
        })
    }

    /// Offsets of transactions still open when the broker stopped, for the transaction
    /// coordinator to hold until their markers (taken once, at start).
    pub(crate) fn take_open_transaction_offsets(&self) -> TransactionOffsets {
        std::mem::take(&mut *self.open_transaction_offsets.lock())
    }

    /// Expires sessions, ends join phases, resolves KIP-848 subscription regexes against
    /// `topic_names` (asked for only when a group has a regex) and drops offsets of long-empty
    /// groups; returns the groups whose offsets expired (their tombstones still have to be
    /// written).
    pub fn tick(
        &self,
        now_ms: i64,
        topic_names: impl FnOnce() -> Vec<String>,
    ) -> Vec<(String, Vec<(String, i32)>)> {
        let mut expired = Vec::new();
        let mut registry = self.groups.lock();
        let has_regex = registry
            .consumer
            .values()
            .any(|g| g.members.values().any(|m| m.subscribed_regex.is_some()));
        if has_regex {
            let names = topic_names();
            for group in registry.consumer.values_mut() {
                if group.regexes_need_resolving(&names) {
                    group.resolve_regexes(&names);
                }
            }
        }
        let retention = self.settings.offsets_retention_ms;
        for group in registry.classic.values_mut() {
            group.tick(&self.settings.groups, now_ms);
            if group.state == GroupState::Empty
                && !group.offsets.is_empty()
                && now_ms.saturating_sub(group.empty_since_ms) >= retention
            {
                let keys: Vec<(String, i32)> = group.offsets.keys().cloned().collect();
                group.offsets.clear();
                expired.push((group.id.clone(), keys));
            }
        }
        for group in registry.consumer.values_mut() {
            group.tick(now_ms);
            if group.members.is_empty()
                && !group.offsets.is_empty()
                && now_ms.saturating_sub(group.empty_since_ms) >= retention
            {
                let keys: Vec<(String, i32)> = group.offsets.keys().cloned().collect();
                group.offsets.clear();
                expired.push((group.id.clone(), keys));
            }
        }
        registry.classic.retain(|_, g| !g.is_disposable());
        registry
            .consumer
            .retain(|_, g| !(g.members.is_empty() && g.offsets.is_empty()));
        expired
    }

    /// Every committed offset (for lag metrics).
    pub fn committed_offsets(&self) -> Vec<GroupOffset> {
        let registry = self.groups.lock();
        let mut out = Vec::new();
        let all = registry
            .classic
            .values()
            .map(|g| (&g.id, &g.offsets))
            .chain(registry.consumer.values().map(|g| (&g.id, &g.offsets)));
        for (id, offsets) in all {
            for ((topic, partition), committed) in offsets {
                out.push(GroupOffset {
                    group: id.clone(),
                    topic: topic.clone(),
                    partition: *partition,
                    offset: committed.offset,
                });
            }
        }
        out.sort_by(|a, b| {
            (&a.group, &a.topic, a.partition).cmp(&(&b.group, &b.topic, b.partition))
        });
        out
    }
}

impl Broker {
    fn coordinator(&self) -> &GroupCoordinator {
        &self.groups
    }

    /// Appends records to the group's `__consumer_offsets` partition and waits until durable.
    /// Returns the offset of the first record.
    async fn write_group_records(
        self: &Arc<Self>,
        group: &str,
        records: Vec<(Bytes, Option<Bytes>)>,
    ) -> Result<i64, BrokerError> {
        let count = self.internal_partitions(OFFSETS_TOPIC);
        let index = store::partition_for(group, count);
        let mut builder = BatchBuilder::new(0, self.now_ms());
        for (key, value) in &records {
            builder.push(0, Some(key), value.as_deref());
        }
        self.append_internal(OFFSETS_TOPIC, index, builder).await
    }

    pub(crate) async fn join_group(
        self: &Arc<Self>,
        req: JoinGroupRequest,
        version: i16,
        client_id: &str,
        client_host: &str,
    ) -> Reply {
        if req.group_id.is_empty() {
            return Reply::Now(ResponseKind::JoinGroup(classic::join_error(
                ResponseError::InvalidGroupId,
                &req.member_id,
            )));
        }
        let request = JoinRequest {
            member_id: req.member_id.to_string(),
            instance_id: req.group_instance_id.as_deref().map(str::to_string),
            client_id: client_id.to_string(),
            client_host: client_host.to_string(),
            session_timeout_ms: req.session_timeout_ms,
            rebalance_timeout_ms: if version >= 1 {
                req.rebalance_timeout_ms
            } else {
                req.session_timeout_ms
            },
            protocol_type: req.protocol_type.to_string(),
            protocols: req
                .protocols
                .iter()
                .map(|p| (p.name.to_string(), p.metadata.clone()))
                .collect(),
            version,
        };
        let now = self.now_ms();
        let outcome = {
            let mut registry = self.coordinator().groups.lock();
            if let Some(consumer) = registry.consumer.get(req.group_id.as_str()) {
                if !consumer.members.is_empty() {
                    return Reply::Now(ResponseKind::JoinGroup(classic::join_error(
                        ResponseError::InconsistentGroupProtocol,
                        &req.member_id,
                    )));
                }
                // An empty KIP-848 group turns classic; its offsets come along.
                if let Some(old) = registry.consumer.remove(req.group_id.as_str()) {
                    let mut group = Group::new(&req.group_id, now);
                    group.offsets = old.offsets;
                    registry.classic.insert(req.group_id.to_string(), group);
                }
            }
            let group = registry
                .classic
                .entry(req.group_id.to_string())
                .or_insert_with(|| Group::new(&req.group_id, now));
            group.join(request, &self.coordinator().settings.groups, now)
        };
        match outcome {
            JoinOutcome::Now(response) => {
                Reply::Now(ResponseKind::JoinGroup(downgrade_join(response, version)))
            }
            JoinOutcome::Wait(rx) => {
                let member_id = req.member_id.to_string();
                Reply::Later(Box::pin(async move {
                    let response = rx.await.unwrap_or_else(|_| {
                        classic::join_error(ResponseError::CoordinatorNotAvailable, &member_id)
                    });
                    ResponseKind::JoinGroup(downgrade_join(response, version))
                }))
            }
        }
    }

    pub(crate) fn sync_group(self: &Arc<Self>, req: SyncGroupRequest, version: i16) -> Reply {
        let now = self.now_ms();
        let outcome = {
            let mut registry = self.coordinator().groups.lock();
            match registry.classic.get_mut(req.group_id.as_str()) {
                None => SyncOutcome::Now(classic::sync_error(ResponseError::UnknownMemberId)),
                Some(group) => {
                    if version >= 5
                        && let (Some(expected), Some(sent)) =
                            (&group.protocol_type, &req.protocol_type)
                        && expected.as_str() != sent.as_str()
                    {
                        SyncOutcome::Now(classic::sync_error(
                            ResponseError::InconsistentGroupProtocol,
                        ))
                    } else {
                        let assignments = req
                            .assignments
                            .iter()
                            .map(|a| (a.member_id.to_string(), a.assignment.clone()))
                            .collect();
                        group.sync(
                            &req.member_id,
                            req.group_instance_id.as_deref(),
                            req.generation_id,
                            assignments,
                            now,
                        )
                    }
                }
            }
        };
        let (protocol_type, protocol_name) = {
            let registry = self.coordinator().groups.lock();
            registry
                .classic
                .get(req.group_id.as_str())
                .map(|g| (g.protocol_type.clone(), g.protocol.clone()))
                .unwrap_or_default()
        };
        let finish = move |mut response: SyncGroupResponse| {
            if version >= 5 && response.error_code == 0 {
                response.protocol_type = protocol_type.as_deref().map(s);
                response.protocol_name = protocol_name.as_deref().map(s);
            }
            ResponseKind::SyncGroup(response)
        };
        match outcome {
            SyncOutcome::Now(response) => Reply::Now(finish(response)),
            SyncOutcome::Wait(rx) => Reply::Later(Box::pin(async move {
                let response = rx.await.unwrap_or_else(|_| {
                    classic::sync_error(ResponseError::CoordinatorNotAvailable)
                });
                finish(response)
            })),
        }
    }

    pub(crate) fn heartbeat(&self, req: HeartbeatRequest) -> HeartbeatResponse {
        let now = self.now_ms();
        let mut registry = self.coordinator().groups.lock();
        let result = match registry.classic.get_mut(req.group_id.as_str()) {
            None => Err(ResponseError::UnknownMemberId),
            Some(group) => group.heartbeat(
                &req.member_id,
                req.group_instance_id.as_deref(),
                req.generation_id,
                now,
            ),
        };
        HeartbeatResponse::default().with_error_code(result.err().map_or(0, |e| e.code()))
    }

    pub(crate) fn leave_group(&self, req: LeaveGroupRequest, version: i16) -> LeaveGroupResponse {
        let now = self.now_ms();
        let mut registry = self.coordinator().groups.lock();
        let Some(group) = registry.classic.get_mut(req.group_id.as_str()) else {
            let mut response = LeaveGroupResponse::default()
                .with_error_code(ResponseError::UnknownMemberId.code());
            if version >= 3 {
                response.error_code = 0;
                response.members = req
                    .members
                    .iter()
                    .map(|m| {
                        leave_group_response::MemberResponse::default()
                            .with_member_id(m.member_id.clone())
                            .with_group_instance_id(m.group_instance_id.clone())
                            .with_error_code(ResponseError::UnknownMemberId.code())
                    })
                    .collect();
            }
            return response;
        };
        if version < 3 {
            let result = group.leave(&req.member_id, None, now);
            return LeaveGroupResponse::default()
                .with_error_code(result.err().map_or(0, |e| e.code()));
        }
        let members = req
            .members
            .iter()
            .map(|m| {
                let result = group.leave(&m.member_id, m.group_instance_id.as_deref(), now);
                leave_group_response::MemberResponse::default()
                    .with_member_id(m.member_id.clone())
                    .with_group_instance_id(m.group_instance_id.clone())
                    .with_error_code(result.err().map_or(0, |e| e.code()))
            })
            .collect();
        LeaveGroupResponse::default().with_members(members)
    }

    pub(crate) async fn offset_commit(
        self: &Arc<Self>,
        req: OffsetCommitRequest,
        version: i16,
        caller: &Caller,
    ) -> OffsetCommitResponse {
        let group_id = req.group_id.to_string();
        let mut response = OffsetCommitResponse::default();
        for topic in &req.topics {
            let partitions = topic
                .partitions
                .iter()
                .map(|p| {
                    offset_commit_response::OffsetCommitResponsePartition::default()
                        .with_partition_index(p.partition_index)
                })
                .collect();
            response.topics.push(
                offset_commit_response::OffsetCommitResponseTopic::default()
                    .with_name(topic.name.clone())
                    .with_partitions(partitions),
            );
        }
        let fail_all = |mut response: OffsetCommitResponse, error: ResponseError| {
            for topic in &mut response.topics {
                for partition in &mut topic.partitions {
                    partition.error_code = error.code();
                }
            }
            response
        };
        if group_id.is_empty() {
            return fail_all(response, ResponseError::InvalidGroupId);
        }
        // The generation check: a member of an active group must be current; anyone may
        // commit for an empty group (standalone consumers using assign()).
        let now = self.now_ms();
        let check = {
            let mut registry = self.coordinator().groups.lock();
            if let Some(group) = registry.consumer.get(&group_id) {
                group.check_commit(&req.member_id, req.generation_id_or_member_epoch)
            } else {
                match registry.classic.get_mut(&group_id) {
                    None if req.generation_id_or_member_epoch >= 0 => {
                        Err(ResponseError::IllegalGeneration)
                    }
                    None => {
                        registry
                            .classic
                            .insert(group_id.clone(), Group::new(&group_id, now));
                        Ok(())
                    }
                    Some(group)
                        if group.state == GroupState::Empty
                            && req.generation_id_or_member_epoch < 0 =>
                    {
                        Ok(())
                    }
                    Some(group) => group
                        .check_member(&req.member_id, req.group_instance_id.as_deref())
                        .and_then(|()| {
                            if req.generation_id_or_member_epoch != group.generation {
                                Err(ResponseError::IllegalGeneration)
                            } else if group.state == GroupState::CompletingRebalance {
                                Err(ResponseError::RebalanceInProgress)
                            } else {
                                Ok(())
                            }
                        }),
                }
            }
        };
        if let Err(error) = check {
            return fail_all(response, error);
        }
        let mut records = Vec::new();
        let mut accepted = Vec::new();
        for (t, topic) in req.topics.iter().enumerate() {
            let known = self.topics.get(&topic.name);
            let readable = self.allows(caller, Operation::Read, ResourceType::Topic, &topic.name);
            for (p, partition) in topic.partitions.iter().enumerate() {
                let metadata = partition.committed_metadata.as_deref().unwrap_or("");
                let error = if !readable {
                    Some(ResponseError::TopicAuthorizationFailed)
                } else if known
                    .as_ref()
                    .and_then(|k| k.partition(partition.partition_index))
                    .is_none()
                {
                    Some(ResponseError::UnknownTopicOrPartition)
                } else if metadata.len() > MAX_OFFSET_METADATA_BYTES {
                    Some(ResponseError::OffsetMetadataTooLarge)
                } else {
                    None
                };
                if let Some(error) = error {
                    response.topics[t].partitions[p].error_code = error.code();
                    continue;
                }
                let leader_epoch = if version >= 6 {
                    partition.committed_leader_epoch
                } else {
                    -1
                };
                records.push((
                    store::offset_key(&group_id, &topic.name, partition.partition_index),
                    Some(store::offset_value(
                        partition.committed_offset,
                        leader_epoch,
                        metadata,
                        now,
                    )),
                ));
                accepted.push((
                    t,
                    p,
                    topic.name.to_string(),
                    partition.partition_index,
                    CommittedOffset {
                        offset: partition.committed_offset,
                        leader_epoch,
                        metadata: metadata.to_string(),
                        commit_timestamp_ms: now,
                        log_offset: 0,
                    },
                ));
            }
        }
        if records.is_empty() {
            return response;
        }
        match self.write_group_records(&group_id, records).await {
            Ok(base_offset) => {
                let mut registry = self.coordinator().groups.lock();
                if registry.offsets(&group_id).is_none() {
                    registry
                        .classic
                        .insert(group_id.clone(), Group::new(&group_id, now));
                }
                if let Some(offsets) = registry.offsets_mut(&group_id) {
                    for (i, (_, _, topic, partition, mut committed)) in
                        accepted.into_iter().enumerate()
                    {
                        committed.log_offset = base_offset + i as i64;
                        let key = (topic, partition);
                        if offsets
                            .get(&key)
                            .is_none_or(|c| c.log_offset < committed.log_offset)
                        {
                            offsets.insert(key, committed);
                        }
                    }
                }
            }
            Err(err) => {
                tracing::error!(group = %group_id, error = %err, "could not store committed offsets");
                let code = err.code();
                for (t, p, ..) in accepted {
                    response.topics[t].partitions[p].error_code = code;
                }
            }
        }
        response
    }

    /// OffsetFetch, then what the caller may not see taken out: groups it may not describe
    /// (v8+; earlier versions are refused whole before this), and topics it may not describe
    /// (named ones answer TOPIC_AUTHORIZATION_FAILED, unnamed ones are left out).
    pub(crate) fn offset_fetch(
        &self,
        req: OffsetFetchRequest,
        version: i16,
        caller: &Caller,
    ) -> OffsetFetchResponse {
        if !self.authorization_enabled() {
            return self.offset_fetch_all(req, version);
        }
        let denied_groups: HashSet<String> = req
            .groups
            .iter()
            .filter(|g| {
                !self.allows(
                    caller,
                    Operation::Describe,
                    ResourceType::Group,
                    &g.group_id,
                )
            })
            .map(|g| g.group_id.to_string())
            .collect();
        let named_topics: HashSet<String> = req
            .groups
            .iter()
            .flat_map(|g| g.topics.iter().flatten().map(|t| t.name.to_string()))
            .chain(req.topics.iter().flatten().map(|t| t.name.to_string()))
            .collect();
        let describable = |topic: &str| {
            if named_topics.contains(topic) {
                self.allows(caller, Operation::Describe, ResourceType::Topic, topic)
            } else {
                self.allows_quietly(caller, Operation::Describe, ResourceType::Topic, topic)
            }
        };
        let denied = ResponseError::TopicAuthorizationFailed.code();
        let mut response = self.offset_fetch_all(req, version);
        for group in &mut response.groups {
            if denied_groups.contains(group.group_id.as_str()) {
                group.topics.clear();
                group.error_code = ResponseError::GroupAuthorizationFailed.code();
                continue;
            }
            group.topics.retain_mut(|topic| {
                let allowed = describable(&topic.name);
                for partition in &mut topic.partitions {
                    if !allowed {
                        partition.committed_offset = -1;
                        partition.metadata = None;
                        partition.error_code = denied;
                    }
                }
                allowed || named_topics.contains(topic.name.as_str())
            });
        }
        response.topics.retain_mut(|topic| {
            let allowed = describable(&topic.name);
            for partition in &mut topic.partitions {
                if !allowed {
                    partition.committed_offset = -1;
                    partition.metadata = None;
                    partition.error_code = denied;
                }
            }
            allowed || named_topics.contains(topic.name.as_str())
        });
        response
    }

    fn offset_fetch_all(&self, req: OffsetFetchRequest, version: i16) -> OffsetFetchResponse {
        // KIP-447: with require_stable, partitions whose offsets are inside an open transaction
        // answer UNSTABLE_OFFSET_COMMIT, so a read_committed consumer never resumes from an
        // offset that the transaction is about to replace.
        let unstable = |group: &str| -> HashSet<(String, i32)> {
            if version >= 7 && req.require_stable {
                self.transactions.pending_partitions(group)
            } else {
                HashSet::new()
            }
        };
        let unstable_code = ResponseError::UnstableOffsetCommit.code();
        let registry = self.coordinator().groups.lock();
        let fetch =
            |group_id: &str, topics: Option<Vec<(TopicName, Vec<i32>)>>| -> Vec<TopicOffsets> {
                let group = registry.offsets(group_id);
                match topics {
                    Some(topics) => topics
                        .into_iter()
                        .map(|(name, partitions)| {
                            let entries = partitions
                                .into_iter()
                                .map(|p| {
                                    (
                                        p,
                                        group.and_then(|g| g.get(&(name.to_string(), p)).cloned()),
                                    )
                                })
                                .collect();
                            (name, entries)
                        })
                        .collect(),
                    None => {
                        let mut by_topic: BTreeMap<String, Vec<(i32, Option<CommittedOffset>)>> =
                            BTreeMap::new();
                        if let Some(group) = group {
                            for ((topic, partition), committed) in group {
                                by_topic
                                    .entry(topic.clone())
                                    .or_default()
                                    .push((*partition, Some(committed.clone())));
                            }
                        }
                        by_topic
                            .into_iter()
                            .map(|(topic, mut partitions)| {
                                partitions.sort_by_key(|(p, _)| *p);
                                (TopicName(s(&topic)), partitions)
                            })
                            .collect()
                    }
                }
            };
        if version >= 8 {
            let groups_out = req
                .groups
                .iter()
                .map(|g| {
                    let topics = g
                        .topics
                        .as_ref()
                        .map(|ts| ts.iter().map(|t| (t.name.clone(), t.partition_indexes.clone())).collect());
                    let unstable = unstable(&g.group_id);
                    let topics = fetch(&g.group_id, topics)
                        .into_iter()
                        .map(|(name, partitions)| {
                            let topic = name.to_string();
                            offset_fetch_response::OffsetFetchResponseTopics::default()
                                .with_name(name)
                                .with_partitions(
                                    partitions
                                        .into_iter()
                                        .map(|(p, c)| {
                                            let c = c.unwrap_or(CommittedOffset {
                                                offset: -1,
                                                leader_epoch: -1,
                                                metadata: String::new(),
                                                commit_timestamp_ms: -1,
                                                log_offset: -1,
                                            });
                                            if unstable.contains(&(topic.clone(), p)) {
                                                return offset_fetch_response::OffsetFetchResponsePartitions::default()
                                                    .with_partition_index(p)
                                                    .with_committed_offset(-1)
                                                    .with_error_code(unstable_code);
                                            }
                                            offset_fetch_response::OffsetFetchResponsePartitions::default()
                                                .with_partition_index(p)
                                                .with_committed_offset(c.offset)
                                                .with_committed_leader_epoch(c.leader_epoch)
                                                .with_metadata(Some(s(&c.metadata)))
                                        })
                                        .collect(),
                                )
                        })
                        .collect();
                    offset_fetch_response::OffsetFetchResponseGroup::default()
                        .with_group_id(g.group_id.clone())
                        .with_topics(topics)
                })
                .collect();
            return OffsetFetchResponse::default().with_groups(groups_out);
        }
        let topics = req.topics.as_ref().map(|ts| {
            ts.iter()
                .map(|t| (t.name.clone(), t.partition_indexes.clone()))
                .collect()
        });
        let unstable = unstable(&req.group_id);
        let topics = fetch(&req.group_id, topics)
            .into_iter()
            .map(|(name, partitions)| {
                let topic = name.to_string();
                offset_fetch_response::OffsetFetchResponseTopic::default()
                    .with_name(name)
                    .with_partitions(
                        partitions
                            .into_iter()
                            .map(|(p, c)| {
                                let (offset, epoch, metadata) = c
                                    .map_or((-1, -1, String::new()), |c| {
                                        (c.offset, c.leader_epoch, c.metadata)
                                    });
                                let mut partition =
                                    offset_fetch_response::OffsetFetchResponsePartition::default()
                                        .with_partition_index(p)
                                        .with_committed_offset(offset)
                                        .with_metadata(Some(s(&metadata)));
                                if unstable.contains(&(topic.clone(), p)) {
                                    partition.committed_offset = -1;
                                    partition.error_code = unstable_code;
                                }
                                if version >= 5 {
                                    partition.committed_leader_epoch = epoch;
                                }
                                partition
                            })
                            .collect(),
                    )
            })
            .collect();
        OffsetFetchResponse::default().with_topics(topics)
    }

    /// DescribeGroups; a group the caller may not describe answers GROUP_AUTHORIZATION_FAILED.
    pub(crate) fn describe_groups(
        &self,
        req: DescribeGroupsRequest,
        version: i16,
        caller: &Caller,
    ) -> DescribeGroupsResponse {
        let include_operations = req.include_authorized_operations;
        let mut response = self.describe_groups_all(req, version);
        for group in &mut response.groups {
            if !self.allows(
                caller,
                Operation::Describe,
                ResourceType::Group,
                &group.group_id,
            ) {
                *group = describe_groups_response::DescribedGroup::default()
                    .with_group_id(group.group_id.clone())
                    .with_error_code(ResponseError::GroupAuthorizationFailed.code())
                    .with_authorized_operations(i32::MIN);
            } else if include_operations && version >= 3 {
                group.authorized_operations =
                    self.authorized_operations(caller, ResourceType::Group, &group.group_id);
            }
        }
        response
    }

    fn describe_groups_all(
        &self,
        req: DescribeGroupsRequest,
        version: i16,
    ) -> DescribeGroupsResponse {
        let registry = self.coordinator().groups.lock();
        let described = req
            .groups
            .iter()
            .map(|id| {
                if registry.consumer.contains_key(id.as_str()) {
                    let mut other = describe_groups_response::DescribedGroup::default()
                        .with_group_id(id.clone())
                        .with_group_state(s("Dead"))
                        .with_authorized_operations(i32::MIN);
                    if version >= 6 {
                        other.error_code = ResponseError::GroupIdNotFound.code();
                        other.error_message = Some(s(&format!(
                            "group {} is a consumer group, not a classic group",
                            id.as_str()
                        )));
                    }
                    return other;
                }
                let Some(group) = registry.classic.get(id.as_str()) else {
                    let mut dead = describe_groups_response::DescribedGroup::default()
                        .with_group_id(id.clone())
                        .with_group_state(s("Dead"))
                        .with_authorized_operations(i32::MIN);
                    if version >= 6 {
                        dead.error_code = ResponseError::GroupIdNotFound.code();
                        dead.error_message =
                            Some(s(&format!("group {} does not exist", id.as_str())));
                    }
                    return dead;
                };
                let protocol = group.protocol.clone().unwrap_or_default();
                let members = group
                    .members
                    .values()
                    .map(|m| {
                        let mut member = describe_groups_response::DescribedGroupMember::default()
                            .with_member_id(s(&m.id))
                            .with_client_id(s(&m.client_id))
                            .with_client_host(s(&m.client_host))
                            .with_member_metadata(
                                m.protocols
                                    .iter()
                                    .find(|(n, _)| *n == protocol)
                                    .map(|(_, md)| md.clone())
                                    .unwrap_or_default(),
                            )
                            .with_member_assignment(m.assignment.clone());
                        if version >= 4 {
                            member.group_instance_id = m.instance_id.as_deref().map(s);
                        }
                        member
                    })
                    .collect();
                describe_groups_response::DescribedGroup::default()
                    .with_group_id(id.clone())
                    .with_group_state(s(group.state.name()))
                    .with_protocol_type(s(group.protocol_type.as_deref().unwrap_or("")))
                    .with_protocol_data(s(if group.state == GroupState::PreparingRebalance {
                        ""
                    } else {
                        &protocol
                    }))
                    .with_members(members)
                    .with_authorized_operations(i32::MIN)
            })
            .collect();
        DescribeGroupsResponse::default().with_groups(described)
    }

    /// ListGroups: every group with DESCRIBE on the cluster, else the groups the caller may
    /// describe.
    pub(crate) fn list_groups(
        &self,
        req: ListGroupsRequest,
        version: i16,
        caller: &Caller,
    ) -> ListGroupsResponse {
        let mut response = self.list_groups_all(req, version);
        if !self.allows_quietly(
            caller,
            Operation::Describe,
            ResourceType::Cluster,
            CLUSTER_NAME,
        ) {
            response.groups.retain(|group| {
                self.allows_quietly(
                    caller,
                    Operation::Describe,
                    ResourceType::Group,
                    &group.group_id,
                )
            });
        }
        response
    }

    fn list_groups_all(&self, req: ListGroupsRequest, version: i16) -> ListGroupsResponse {
        let registry = self.coordinator().groups.lock();
        let states: HashSet<String> = req.states_filter.iter().map(|s| s.to_lowercase()).collect();
        let types: HashSet<String> = req.types_filter.iter().map(|s| s.to_lowercase()).collect();
        let all = registry
            .classic
            .values()
            .map(|g| {
                (
                    g.id.as_str(),
                    g.state.name(),
                    g.protocol_type.as_deref().unwrap_or(""),
                    "classic",
                )
            })
            .chain(
                registry
                    .consumer
                    .values()
                    .map(|g| (g.id.as_str(), g.state_name(), "consumer", "consumer")),
            );
        let mut listed: Vec<_> = all
            .filter(|(_, state, _, _)| states.is_empty() || states.contains(&state.to_lowercase()))
            .filter(|(_, _, _, kind)| types.is_empty() || types.contains(*kind))
            .map(|(id, state, protocol_type, kind)| {
                let mut listed = list_groups_response::ListedGroup::default()
                    .with_group_id(GroupId(s(id)))
                    .with_protocol_type(s(protocol_type));
                if version >= 4 {
                    listed.group_state = s(state);
                }
                if version >= 5 {
                    listed.group_type = s(kind);
                }
                listed
            })
            .collect();
        listed.sort_by(|a, b| a.group_id.as_str().cmp(b.group_id.as_str()));
        ListGroupsResponse::default().with_groups(listed)
    }

    pub(crate) async fn delete_groups(
        self: &Arc<Self>,
        req: DeleteGroupsRequest,
        caller: &Caller,
    ) -> DeleteGroupsResponse {
        let mut results = Vec::new();
        for id in req.groups_names {
            if !self.allows(caller, Operation::Delete, ResourceType::Group, &id) {
                results.push(
                    delete_groups_response::DeletableGroupResult::default()
                        .with_group_id(id)
                        .with_error_code(ResponseError::GroupAuthorizationFailed.code()),
                );
                continue;
            }
            let removed = {
                let mut registry = self.coordinator().groups.lock();
                if let Some(group) = registry.consumer.get(id.as_str()) {
                    if group.members.is_empty() {
                        Ok(registry
                            .consumer
                            .remove(id.as_str())
                            .map(|g| g.offsets.into_keys().collect::<Vec<_>>())
                            .unwrap_or_default())
                    } else {
                        Err(ResponseError::NonEmptyGroup)
                    }
                } else {
                    match registry.classic.get(id.as_str()) {
                        None => Err(ResponseError::GroupIdNotFound),
                        Some(group)
                            if !group.members.is_empty() || group.state != GroupState::Empty =>
                        {
                            Err(ResponseError::NonEmptyGroup)
                        }
                        Some(_) => Ok(registry
                            .classic
                            .remove(id.as_str())
                            .map(|g| g.offsets.into_keys().collect::<Vec<_>>())
                            .unwrap_or_default()),
                    }
                }
            };
            let error = match removed {
                Err(error) => Some(error),
                Ok(keys) => {
                    let mut records: Vec<(Bytes, Option<Bytes>)> = keys
                        .iter()
                        .map(|(t, p)| (store::offset_key(&id, t, *p), None))
                        .collect();
                    records.push((store::group_key(&id), None));
                    match self.write_group_records(&id, records).await {
                        Ok(_) => {
                            self.audit_change(
                                caller,
                                format!("GROUP:{}", id.as_str()),
                                "DELETE",
                                "",
                            );
                            None
                        }
                        Err(err) => {
                            tracing::error!(group = %id.as_str(), error = %err, "could not record the group's deletion");
                            ResponseError::try_from_code(err.code())
                        }
                    }
                }
            };
            results.push(
                delete_groups_response::DeletableGroupResult::default()
                    .with_group_id(id)
                    .with_error_code(error.map_or(0, |e| e.code())),
            );
        }
        DeleteGroupsResponse::default().with_results(results)
    }

    pub(crate) async fn offset_delete(
        self: &Arc<Self>,
        req: OffsetDeleteRequest,
        caller: &Caller,
    ) -> OffsetDeleteResponse {
        let group_id = req.group_id.to_string();
        let readable = self.topics_allowed(
            caller,
            Operation::Read,
            req.topics.iter().map(|t| t.name.as_str()),
        );
        let mut response = OffsetDeleteResponse::default();
        let mut records = Vec::new();
        {
            let mut registry = self.coordinator().groups.lock();
            let subscribed = if let Some(group) = registry.consumer.get(&group_id) {
                let mut topics: Vec<String> = group
                    .members
                    .values()
                    .flat_map(|m| m.subscribed_names.iter().cloned())
                    .collect();
                topics.extend(group.metadata.keys().cloned());
                topics
            } else if let Some(group) = registry.classic.get(&group_id) {
                group.subscribed_topics()
            } else {
                return response.with_error_code(ResponseError::GroupIdNotFound.code());
            };
            let Some(offsets) = registry.offsets_mut(&group_id) else {
                return response.with_error_code(ResponseError::GroupIdNotFound.code());
            };
            for topic in &req.topics {
                let mut partitions = Vec::new();
                for partition in &topic.partitions {
                    let error = if !readable.contains(topic.name.as_str()) {
                        ResponseError::TopicAuthorizationFailed.code()
                    } else if subscribed.iter().any(|t| t.as_str() == topic.name.as_str()) {
                        ResponseError::GroupSubscribedToTopic.code()
                    } else if self
                        .topics
                        .get(&topic.name)
                        .and_then(|t| t.partition(partition.partition_index))
                        .is_none()
                    {
                        ResponseError::UnknownTopicOrPartition.code()
                    } else {
                        if offsets
                            .remove(&(topic.name.to_string(), partition.partition_index))
                            .is_some()
                        {
                            records.push((
                                store::offset_key(
                                    &group_id,
                                    &topic.name,
                                    partition.partition_index,
                                ),
                                None,
                            ));
                        }
                        0
                    };
                    partitions.push(
                        offset_delete_response::OffsetDeleteResponsePartition::default()
                            .with_partition_index(partition.partition_index)
                            .with_error_code(error),
                    );
                }
                response.topics.push(
                    offset_delete_response::OffsetDeleteResponseTopic::default()
                        .with_name(topic.name.clone())
                        .with_partitions(partitions),
                );
            }
        }
        if !records.is_empty()
            && let Err(err) = self.write_group_records(&group_id, records).await
        {
            tracing::error!(group = %group_id, error = %err, "could not record deleted offsets");
            return response.with_error_code(err.code());
        }
        response
    }

    /// Runs the coordinator's timers; writes tombstones for expired offsets.
    pub(crate) async fn tick_groups(self: &Arc<Self>) {
        let expired = self.coordinator().tick(self.now_ms(), || {
            self.topic_snapshot().into_keys().collect()
        });
        for (group, keys) in expired {
            tracing::info!(group = %group, partitions = keys.len(), "offsets expired (offsets.retention.minutes)");
            let mut records: Vec<(Bytes, Option<Bytes>)> = keys
                .iter()
                .map(|(t, p)| (store::offset_key(&group, t, *p), None))
                .collect();
            records.push((store::group_key(&group), None));
            if let Err(err) = self.write_group_records(&group, records).await {
                tracing::error!(group = %group, error = %err, "could not record expired offsets");
            }
        }
    }
}

fn downgrade_join(mut response: JoinGroupResponse, version: i16) -> JoinGroupResponse {
    if version < 7 {
        response.protocol_type = None;
    }
    if version < 9 {
        response.skip_assignment = false;
    }
    if version < 5 {
        for member in &mut response.members {
            member.group_instance_id = None;
        }
    }
    response
}

impl Broker {
    /// Topic names with ids and partition counts, for the assignors.
    fn topic_snapshot(&self) -> BTreeMap<String, TopicInfo> {
        self.topics
            .list()
            .into_iter()
            .filter(|t| !t.is_internal())
            .map(|t| {
                (
                    t.name.clone(),
                    TopicInfo {
                        id: t.id,
                        partitions: t.partition_count(),
                    },
                )
            })
            .collect()
    }

    pub(crate) fn consumer_group_heartbeat(
        &self,
        req: ConsumerGroupHeartbeatRequest,
        version: i16,
        client_id: &str,
        client_host: &str,
    ) -> ConsumerGroupHeartbeatResponse {
        let settings = &self.coordinator().settings;
        // The group's configs (consumer.session.timeout.ms, consumer.heartbeat.interval.ms)
        // win over the broker's defaults.
        let (session_timeout_ms, heartbeat_interval_ms) = self.group_timers(&req.group_id);
        let failed = |error: ResponseError, message: &str| {
            ConsumerGroupHeartbeatResponse::default()
                .with_error_code(error.code())
                .with_error_message(Some(s(message)))
                .with_member_epoch(-1)
                .with_heartbeat_interval_ms(heartbeat_interval_ms)
        };
        if req.group_id.is_empty() {
            return failed(ResponseError::InvalidRequest, "group id must not be empty");
        }
        let mut member_id = req.member_id.to_string();
        if member_id.is_empty() {
            if version >= 1 || req.member_epoch != 0 {
                return failed(ResponseError::InvalidRequest, "member id must be set");
            }
            member_id = uuid::Uuid::new_v4().simple().to_string();
        }
        if req.member_epoch == 0
            && req.subscribed_topic_names.is_none()
            && req.subscribed_topic_regex.is_none()
        {
            return failed(
                ResponseError::InvalidRequest,
                "a joining member must send its subscription",
            );
        }
        let topics = self.topic_snapshot();
        let owned = req.topic_partitions.as_ref().map(|owned| {
            let mut assignment = Assignment::new();
            for tp in owned {
                assignment
                    .entry(tp.topic_id)
                    .or_default()
                    .extend(tp.partitions.iter().copied());
            }
            assignment
        });
        let heartbeat = consumer::Heartbeat {
            member_id,
            member_epoch: req.member_epoch,
            instance_id: req.instance_id.as_deref().map(str::to_string),
            rack_id: req.rack_id.as_deref().map(str::to_string),
            rebalance_timeout_ms: req.rebalance_timeout_ms,
            subscribed_names: req
                .subscribed_topic_names
                .as_ref()
                .map(|names| names.iter().map(|n| n.to_string()).collect()),
            subscribed_regex: req.subscribed_topic_regex.as_deref().map(str::to_string),
            assignor: req.server_assignor.as_deref().map(str::to_string),
            owned,
            client_id: client_id.to_string(),
            client_host: client_host.to_string(),
        };
        let now = self.now_ms();
        let result = {
            let mut registry = self.coordinator().groups.lock();
            if let Some(classic) = registry.classic.get(req.group_id.as_str()) {
                if !classic.members.is_empty() {
                    return failed(
                        ResponseError::GroupIdNotFound,
                        "the group is a classic group with members; it cannot be joined with group.protocol=consumer",
                    );
                }
                // An empty classic group (perhaps only offsets) becomes a consumer group.
                if let Some(old) = registry.classic.remove(req.group_id.as_str()) {
                    let mut group = ConsumerGroup::new(&req.group_id, now);
                    group.offsets = old.offsets;
                    registry.consumer.insert(req.group_id.to_string(), group);
                }
            }
            let group = registry
                .consumer
                .entry(req.group_id.to_string())
                .or_insert_with(|| ConsumerGroup::new(&req.group_id, now));
            group.heartbeat(
                heartbeat,
                &topics,
                i64::from(session_timeout_ms),
                settings.groups.max_group_size,
                now,
            )
        };
        match result {
            Err(error) => failed(error, &format!("{error}")),
            Ok(reply) => {
                let assignment = reply.assignment.map(|assignment| {
                    consumer_group_heartbeat_response::Assignment::default().with_topic_partitions(
                        assignment
                            .into_iter()
                            .map(|(topic_id, partitions)| {
                                consumer_group_heartbeat_response::TopicPartitions::default()
                                    .with_topic_id(topic_id)
                                    .with_partitions(partitions.into_iter().collect())
                            })
                            .collect(),
                    )
                });
                tracing::debug!(
                    group = %req.group_id.as_str(),
                    member = %reply.member_id,
                    member_epoch = reply.member_epoch,
                    heartbeat_interval_ms,
                    session_timeout_ms,
                    "consumer group heartbeat"
                );
                ConsumerGroupHeartbeatResponse::default()
                    .with_member_id(Some(s(&reply.member_id)))
                    .with_member_epoch(reply.member_epoch)
                    .with_heartbeat_interval_ms(heartbeat_interval_ms)
                    .with_assignment(assignment)
            }
        }
    }

    /// ConsumerGroupDescribe; a group the caller may not describe answers
    /// GROUP_AUTHORIZATION_FAILED.
    pub(crate) fn consumer_group_describe(
        &self,
        req: ConsumerGroupDescribeRequest,
        caller: &Caller,
    ) -> ConsumerGroupDescribeResponse {
        let include_operations = req.include_authorized_operations;
        let mut response = self.consumer_group_describe_all(req);
        for group in &mut response.groups {
            if !self.allows(
                caller,
                Operation::Describe,
                ResourceType::Group,
                &group.group_id,
            ) {
                *group = consumer_group_describe_response::DescribedGroup::default()
                    .with_group_id(group.group_id.clone())
                    .with_error_code(ResponseError::GroupAuthorizationFailed.code())
                    .with_authorized_operations(i32::MIN);
            } else if include_operations {
                group.authorized_operations =
                    self.authorized_operations(caller, ResourceType::Group, &group.group_id);
            }
        }
        response
    }

    fn consumer_group_describe_all(
        &self,
        req: ConsumerGroupDescribeRequest,
    ) -> ConsumerGroupDescribeResponse {
        let names: HashMap<uuid::Uuid, String> = self
            .topics
            .list()
            .into_iter()
            .map(|t| (t.id, t.name.clone()))
            .collect();
        let describe = |assignment: &Assignment| {
            consumer_group_describe_response::Assignment::default().with_topic_partitions(
                assignment
                    .iter()
                    .map(|(id, partitions)| {
                        consumer_group_describe_response::TopicPartitions::default()
                            .with_topic_id(*id)
                            .with_topic_name(TopicName(s(names.get(id).map_or("", String::as_str))))
                            .with_partitions(partitions.iter().copied().collect())
                    })
                    .collect(),
            )
        };
        let registry = self.coordinator().groups.lock();
        let groups = req
            .group_ids
            .iter()
            .map(|id| {
                let Some(group) = registry.consumer.get(id.as_str()) else {
                    let message = if registry.classic.contains_key(id.as_str()) {
                        format!(
                            "group {} is a classic group, not a consumer group",
                            id.as_str()
                        )
                    } else {
                        format!("group {} does not exist", id.as_str())
                    };
                    return consumer_group_describe_response::DescribedGroup::default()
                        .with_group_id(id.clone())
                        .with_group_state(s("Dead"))
                        .with_error_code(ResponseError::GroupIdNotFound.code())
                        .with_error_message(Some(s(&message)))
                        .with_authorized_operations(i32::MIN);
                };
                let members = group
                    .members
                    .values()
                    .map(|m| {
                        consumer_group_describe_response::Member::default()
                            .with_member_id(s(&m.id))
                            .with_instance_id(m.instance_id.as_deref().map(s))
                            .with_rack_id(m.rack_id.as_deref().map(s))
                            .with_member_epoch(m.epoch)
                            .with_client_id(s(&m.client_id))
                            .with_client_host(s(&m.client_host))
                            .with_subscribed_topic_names(
                                m.subscribed_names.iter().map(|n| TopicName(s(n))).collect(),
                            )
                            .with_subscribed_topic_regex(m.subscribed_regex.as_deref().map(s))
                            .with_assignment(describe(&m.assigned))
                            .with_target_assignment(describe(
                                group.target.get(&m.id).unwrap_or(&Assignment::new()),
                            ))
                    })
                    .collect();
                consumer_group_describe_response::DescribedGroup::default()
                    .with_group_id(id.clone())
                    .with_group_state(s(group.state_name()))
                    .with_group_epoch(group.group_epoch)
                    .with_assignment_epoch(group.assignment_epoch)
                    .with_assignor_name(s(&group.assignor))
                    .with_members(members)
                    .with_authorized_operations(i32::MIN)
            })
            .collect();
        ConsumerGroupDescribeResponse::default().with_groups(groups)
    }
}

impl Broker {
    /// Applies offsets whose transaction committed (their records are already in the log).
    pub(crate) fn apply_committed_offsets(
        &self,
        group: &str,
        offsets: Vec<(String, i32, CommittedOffset)>,
    ) {
        let now = self.now_ms();
        let mut registry = self.coordinator().groups.lock();
        if registry.offsets(group).is_none() {
            registry
                .classic
                .insert(group.to_string(), Group::new(group, now));
        }
        if let Some(stored) = registry.offsets_mut(group) {
            for (topic, partition, committed) in offsets {
                let key = (topic, partition);
                if stored
                    .get(&key)
                    .is_none_or(|c| c.log_offset < committed.log_offset)
                {
                    stored.insert(key, committed);
                }
            }
        }
    }

    /// TxnOffsetCommit's membership check: a generation of -1 (a producer outside the group)
    /// is accepted; otherwise the member must be current.
    pub(crate) fn check_txn_offset_commit_member(
        &self,
        group: &str,
        generation: i32,
        member_id: &str,
    ) -> Result<(), ResponseError> {
        if generation < 0 {
            return Ok(());
        }
        let registry = self.coordinator().groups.lock();
        if let Some(group) = registry.consumer.get(group) {
            return group.check_commit(member_id, generation);
        }
        match registry.classic.get(group) {
            None => Err(ResponseError::IllegalGeneration),
            Some(group) => {
                group.check_member(member_id, None)?;
                if group.generation != generation {
                    return Err(ResponseError::IllegalGeneration);
                }
                Ok(())
            }
        }
    }
}
