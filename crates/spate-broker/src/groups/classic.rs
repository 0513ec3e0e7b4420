//! The classic consumer-group protocol's state machine: JoinGroup, SyncGroup, Heartbeat,
//! LeaveGroup, and the timers that drive rebalances (initial delay, rebalance timeout,
//! session timeout), following Kafka's `ClassicGroup`.
//!
//! States: `Empty` → (join) `PreparingRebalance` → (everyone joined, or the rebalance timeout)
//! `CompletingRebalance` → (the leader's SyncGroup) `Stable`; any membership change in
//! `CompletingRebalance` or `Stable` starts a new rebalance. Requests that must wait (a JoinGroup
//! until the rebalance completes, a follower's SyncGroup until the leader's) park a oneshot
//! sender in the member; whoever completes the step answers them. All of it runs under the
//! coordinator's mutex and never blocks.

use std::collections::{BTreeMap, HashMap};

use bytes::Bytes;
use kafka_protocol::ResponseError;
use kafka_protocol::messages::join_group_response::{JoinGroupResponse, JoinGroupResponseMember};
use kafka_protocol::messages::sync_group_response::SyncGroupResponse;
use kafka_protocol::protocol::StrBytes;
use tokio::sync::oneshot;

use super::store::CommittedOffset;

/// A group's state, named as Kafka names them in DescribeGroups and ListGroups.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupState {
    /// No members; may still hold committed offsets.
    Empty,
    /// Waiting for members to (re)join.
    PreparingRebalance,
    /// Waiting for the leader's assignment.
    CompletingRebalance,
    /// Every member has its assignment.
    Stable,
}

impl GroupState {
    /// Kafka's name.
    pub fn name(self) -> &'static str {
        match self {
            GroupState::Empty => "Empty",
            GroupState::PreparingRebalance => "PreparingRebalance",
            GroupState::CompletingRebalance => "CompletingRebalance",
            GroupState::Stable => "Stable",
        }
    }
}

/// One member of a classic group.
#[derive(Debug)]
pub(crate) struct Member {
    pub(crate) id: String,
    pub(crate) instance_id: Option<String>,
    pub(crate) client_id: String,
    pub(crate) client_host: String,
    pub(crate) session_timeout_ms: i64,
    pub(crate) rebalance_timeout_ms: i64,
    pub(crate) protocols: Vec<(String, Bytes)>,
    pub(crate) assignment: Bytes,
    /// Deadline of the session: a heartbeat (or join/sync) must arrive before it.
    pub(crate) session_deadline_ms: i64,
    pub(crate) join_waiter: Option<(oneshot::Sender<JoinGroupResponse>, i16)>,
    pub(crate) sync_waiter: Option<oneshot::Sender<SyncGroupResponse>>,
}

impl Member {
    fn metadata_for(&self, protocol: &str) -> Bytes {
        self.protocols
            .iter()
            .find(|(name, _)| name == protocol)
            .map(|(_, metadata)| metadata.clone())
            .unwrap_or_default()
    }
}

/// A consumer group (classic protocol) and its committed offsets.
#[derive(Debug)]
pub(crate) struct Group {
    pub(crate) id: String,
    pub(crate) state: GroupState,
    pub(crate) protocol_type: Option<String>,
    pub(crate) protocol: Option<String>,
    pub(crate) generation: i32,
    pub(crate) leader: Option<String>,
    pub(crate) members: BTreeMap<String, Member>,
    /// group.instance.id → member id of the static member holding it.
    pub(crate) static_members: HashMap<String, String>,
    /// Member ids handed out with MEMBER_ID_REQUIRED that have not joined yet, with deadlines.
    pub(crate) pending_members: HashMap<String, i64>,
    /// When the current join phase ends at the latest.
    pub(crate) rebalance_deadline_ms: i64,
    /// For a group that was empty: the join phase lasts at least until here.
    pub(crate) initial_delay_until_ms: i64,
    /// Since when the group has been empty (offset retention counts from here).
    pub(crate) empty_since_ms: i64,
    pub(crate) offsets: HashMap<(String, i32), CommittedOffset>,
}

/// Coordinator settings (Kafka's `group.*` broker configs).
#[derive(Debug, Clone)]
pub struct GroupSettings {
    /// `group.initial.rebalance.delay.ms`: how long a new group waits for more members.
    pub initial_rebalance_delay_ms: i64,
    /// `group.min.session.timeout.ms`.
    pub min_session_timeout_ms: i32,
    /// `group.max.session.timeout.ms`.
    pub max_session_timeout_ms: i32,
    /// `group.max.size`.
    pub max_group_size: usize,
}

impl Default for GroupSettings {
    fn default() -> GroupSettings {
        GroupSettings {
            initial_rebalance_delay_ms: 100,
            min_session_timeout_ms: 6_000,
            max_session_timeout_ms: 1_800_000,
            max_group_size: 10_000,
        }
    }
}

/// A JoinGroup as the state machine sees it.
pub(crate) struct JoinRequest {
    pub(crate) member_id: String,
    pub(crate) instance_id: Option<String>,
    pub(crate) client_id: String,
    pub(crate) client_host: String,
    pub(crate) session_timeout_ms: i32,
    pub(crate) rebalance_timeout_ms: i32,
    pub(crate) protocol_type: String,
    pub(crate) protocols: Vec<(String, Bytes)>,
    pub(crate) version: i16,
}

/// The answer to a join: now, or once the rebalance completes.
pub(crate) enum JoinOutcome {
    Now(JoinGroupResponse),
    Wait(oneshot::Receiver<JoinGroupResponse>),
}

/// The answer to a sync: now, or once the leader's assignment arrives.
pub(crate) enum SyncOutcome {
    Now(SyncGroupResponse),
    Wait(oneshot::Receiver<SyncGroupResponse>),
}

fn s(value: &str) -> StrBytes {
    StrBytes::from_string(value.to_string())
}

pub(crate) fn join_error(error: ResponseError, member_id: &str) -> JoinGroupResponse {
    JoinGroupResponse::default()
        .with_error_code(error.code())
        .with_generation_id(-1)
        .with_member_id(s(member_id))
}

pub(crate) fn sync_error(error: ResponseError) -> SyncGroupResponse {
    SyncGroupResponse::default().with_error_code(error.code())
}

fn new_member_id(client_id: &str) -> String {
    format!("{client_id}-{}", uuid::Uuid::new_v4())
}

impl Group {
    pub(crate) fn new(id: &str, now_ms: i64) -> Group {
        Group {
            id: id.to_string(),
            state: GroupState::Empty,
            protocol_type: None,
            protocol: None,
            generation: 0,
            leader: None,
            members: BTreeMap::new(),
            static_members: HashMap::new(),
            pending_members: HashMap::new(),
            rebalance_deadline_ms: 0,
            initial_delay_until_ms: 0,
            empty_since_ms: now_ms,
            offsets: HashMap::new(),
        }
    }

    /// Whether the group has neither members nor offsets (it can be forgotten).
    pub(crate) fn is_disposable(&self) -> bool {
        self.state == GroupState::Empty
            && self.members.is_empty()
            && self.pending_members.is_empty()
            && self.offsets.is_empty()
    }

    /// The topics the members subscribed to (consumer protocol), for OffsetDelete.
    pub(crate) fn subscribed_topics(&self) -> Vec<String> {
        let mut topics = Vec::new();
        if self.protocol_type.as_deref() != Some("consumer") {
            return topics;
        }
        let Some(protocol) = &self.protocol else {
            return topics;
        };
        for member in self.members.values() {
            let mut metadata = member.metadata_for(protocol);
            if metadata.len() < 2 {
                continue;
            }
            let version = i16::from_be_bytes([metadata[0], metadata[1]]);
            let _ = bytes::Buf::get_i16(&mut metadata);
            use kafka_protocol::protocol::Decodable;
            if let Ok(subscription) = kafka_protocol::messages::ConsumerProtocolSubscription::decode(
                &mut metadata,
                version.clamp(0, 3),
            ) {
                topics.extend(subscription.topics.iter().map(|t| t.to_string()));
            }
        }
        topics.sort();
        topics.dedup();
        topics
    }

    /// Handles a JoinGroup.
    pub(crate) fn join(
        &mut self,
        request: JoinRequest,
        settings: &GroupSettings,
        now_ms: i64,
    ) -> JoinOutcome {
        let fail = |error: ResponseError, id: &str| JoinOutcome::Now(join_error(error, id));
        if request.session_timeout_ms < settings.min_session_timeout_ms
            || request.session_timeout_ms > settings.max_session_timeout_ms
        {
            return fail(ResponseError::InvalidSessionTimeout, &request.member_id);
        }
        if request.protocols.is_empty() || request.protocol_type.is_empty() {
            return fail(ResponseError::InconsistentGroupProtocol, &request.member_id);
        }
        if !self.members.is_empty() {
            let same_type = self.protocol_type.as_deref() == Some(request.protocol_type.as_str());
            let shares_protocol = request.protocols.iter().any(|(name, _)| {
                self.members
                    .values()
                    .all(|m| m.protocols.iter().any(|(n, _)| n == name))
            });
            if !same_type || !shares_protocol {
                return fail(ResponseError::InconsistentGroupProtocol, &request.member_id);
            }
        }

        if request.member_id.is_empty() {
            // A static member coming back under a new member id.
            if let Some(instance) = &request.instance_id
                && let Some(old_id) = self.static_members.get(instance).cloned()
            {
                return self.replace_static_member(&old_id, request, now_ms);
            }
            if self.members.len() + self.pending_members.len() >= settings.max_group_size {
                return fail(ResponseError::GroupMaxSizeReached, "");
            }
            let member_id = new_member_id(&request.client_id);
            if request.version >= 4 && request.instance_id.is_none() {
                // KIP-394: the client must come back with this id, so a lost response does not
                // leave a ghost member behind.
                self.pending_members.insert(
                    member_id.clone(),
                    now_ms + i64::from(request.session_timeout_ms),
                );
                return fail(ResponseError::MemberIdRequired, &member_id);
            }
            return self.add_member(
                member_id,
                request,
                settings.initial_rebalance_delay_ms,
                now_ms,
            );
        }

        if let Some(instance) = &request.instance_id {
            match self.static_members.get(instance) {
                Some(current) if *current != request.member_id => {
                    return fail(ResponseError::FencedInstanceId, &request.member_id);
                }
                None if !self.members.contains_key(&request.member_id) => {
                    return fail(ResponseError::UnknownMemberId, &request.member_id);
                }
                _ => {}
            }
        }
        if self.pending_members.remove(&request.member_id).is_some() {
            return self.add_member(
                request.member_id.clone(),
                request,
                settings.initial_rebalance_delay_ms,
                now_ms,
            );
        }
        let Some(member) = self.members.get_mut(&request.member_id) else {
            return fail(ResponseError::UnknownMemberId, &request.member_id);
        };
        let changed = member.protocols != request.protocols;
        member.protocols = request.protocols;
        member.session_timeout_ms = i64::from(request.session_timeout_ms);
        member.rebalance_timeout_ms =
            i64::from(request.rebalance_timeout_ms.max(request.session_timeout_ms));
        member.client_id = request.client_id;
        member.client_host = request.client_host;
        let member_id = member.id.clone();
        match self.state {
            GroupState::Stable
                if !changed && self.leader.as_deref() != Some(member_id.as_str()) =>
            {
                // A follower rejoining with nothing new gets the current generation back.
                JoinOutcome::Now(self.join_response(&member_id, request.version, false))
            }
            GroupState::CompletingRebalance if !changed => {
                JoinOutcome::Now(self.join_response(&member_id, request.version, false))
            }
            _ => {
                let (tx, rx) = oneshot::channel();
                if let Some(member) = self.members.get_mut(&member_id) {
                    if let Some((old, _)) = member.join_waiter.take() {
                        let _ = old.send(join_error(ResponseError::UnknownMemberId, &member_id));
                    }
                    member.join_waiter = Some((tx, request.version));
                }
                if self.state != GroupState::PreparingRebalance {
                    self.prepare_rebalance(now_ms, 0);
                }
                self.maybe_complete_join(now_ms);
                JoinOutcome::Wait(rx)
            }
        }
    }

    fn add_member(
        &mut self,
        member_id: String,
        request: JoinRequest,
        initial_delay_ms: i64,
        now_ms: i64,
    ) -> JoinOutcome {
        let (tx, rx) = oneshot::channel();
        if self.members.is_empty() {
            self.protocol_type = Some(request.protocol_type.clone());
        }
        if let Some(instance) = &request.instance_id {
            self.static_members
                .insert(instance.clone(), member_id.clone());
        }
        let was_empty = self.state == GroupState::Empty;
        self.members.insert(
            member_id.clone(),
            Member {
                id: member_id,
                instance_id: request.instance_id,
                client_id: request.client_id,
                client_host: request.client_host,
                session_timeout_ms: i64::from(request.session_timeout_ms),
                rebalance_timeout_ms: i64::from(
                    request.rebalance_timeout_ms.max(request.session_timeout_ms),
                ),
                protocols: request.protocols,
                assignment: Bytes::new(),
                session_deadline_ms: now_ms + i64::from(request.session_timeout_ms),
                join_waiter: Some((tx, request.version)),
                sync_waiter: None,
            },
        );
        if self.state != GroupState::PreparingRebalance {
            self.prepare_rebalance(now_ms, if was_empty { initial_delay_ms } else { 0 });
        } else if self.initial_delay_until_ms > 0 && initial_delay_ms > 0 {
            // Each newcomer during the initial delay extends it (Kafka's InitialDelayedJoin),
            // never past the rebalance deadline.
            let timeout = self
                .members
                .values()
                .map(|m| m.rebalance_timeout_ms)
                .max()
                .unwrap_or(0);
            self.rebalance_deadline_ms = self.rebalance_deadline_ms.max(now_ms + timeout);
            self.initial_delay_until_ms =
                (now_ms + initial_delay_ms).min(self.rebalance_deadline_ms);
        }
        self.maybe_complete_join(now_ms);
        JoinOutcome::Wait(rx)
    }

    fn replace_static_member(
        &mut self,
        old_id: &str,
        request: JoinRequest,
        now_ms: i64,
    ) -> JoinOutcome {
        let Some(mut member) = self.members.remove(old_id) else {
            return JoinOutcome::Now(join_error(ResponseError::UnknownMemberId, ""));
        };
        let new_id = new_member_id(&request.client_id);
        if let Some((waiter, _)) = member.join_waiter.take() {
            let _ = waiter.send(join_error(ResponseError::FencedInstanceId, old_id));
        }
        if let Some(waiter) = member.sync_waiter.take() {
            let _ = waiter.send(sync_error(ResponseError::FencedInstanceId));
        }
        let changed = member.protocols != request.protocols;
        member.id = new_id.clone();
        member.protocols = request.protocols;
        member.client_id = request.client_id;
        member.client_host = request.client_host;
        member.session_timeout_ms = i64::from(request.session_timeout_ms);
        member.rebalance_timeout_ms =
            i64::from(request.rebalance_timeout_ms.max(request.session_timeout_ms));
        member.session_deadline_ms = now_ms + member.session_timeout_ms;
        if let Some(instance) = &member.instance_id {
            self.static_members.insert(instance.clone(), new_id.clone());
        }
        if self.leader.as_deref() == Some(old_id) {
            self.leader = Some(new_id.clone());
        }
        self.members.insert(new_id.clone(), member);
        if self.state == GroupState::Stable && !changed {
            // KIP-345: a static member that restarts keeps its assignment; no rebalance.
            // A rejoining leader is told to skip the assignment (KIP-814).
            let is_leader = self.leader.as_deref() == Some(new_id.as_str());
            return JoinOutcome::Now(self.join_response(&new_id, request.version, is_leader));
        }
        let (tx, rx) = oneshot::channel();
        if let Some(member) = self.members.get_mut(&new_id) {
            member.join_waiter = Some((tx, request.version));
        }
        if self.state != GroupState::PreparingRebalance {
            self.prepare_rebalance(now_ms, 0);
        }
        self.maybe_complete_join(now_ms);
        JoinOutcome::Wait(rx)
    }

    /// The JoinGroup response for a member of the current generation.
    fn join_response(
        &self,
        member_id: &str,
        version: i16,
        skip_assignment: bool,
    ) -> JoinGroupResponse {
        let protocol = self.protocol.clone().unwrap_or_default();
        let leader = self.leader.clone().unwrap_or_default();
        let members = if leader == member_id {
            self.members
                .values()
                .map(|m| {
                    let mut member = JoinGroupResponseMember::default()
                        .with_member_id(s(&m.id))
                        .with_metadata(m.metadata_for(&protocol));
                    if version >= 5 {
                        member.group_instance_id = m.instance_id.as_deref().map(s);
                    }
                    member
                })
                .collect()
        } else {
            Vec::new()
        };
        let mut response = JoinGroupResponse::default()
            .with_generation_id(self.generation)
            .with_protocol_name(Some(s(&protocol)))
            .with_leader(s(&leader))
            .with_member_id(s(member_id))
            .with_members(members);
        if version >= 7 {
            response.protocol_type = self.protocol_type.as_deref().map(s);
        }
        if version >= 9 {
            response.skip_assignment = skip_assignment;
        }
        response
    }

    /// Starts a join phase: members must (re)join before the rebalance deadline. A group that
    /// was empty also waits `initial_delay_ms` for more members, so a fleet starting together
    /// rebalances once.
    pub(crate) fn prepare_rebalance(&mut self, now_ms: i64, initial_delay_ms: i64) {
        for member in self.members.values_mut() {
            if let Some(waiter) = member.sync_waiter.take() {
                let _ = waiter.send(sync_error(ResponseError::RebalanceInProgress));
            }
        }
        let timeout = self
            .members
            .values()
            .map(|m| m.rebalance_timeout_ms)
            .max()
            .unwrap_or(0);
        self.rebalance_deadline_ms = now_ms + timeout;
        self.initial_delay_until_ms = if initial_delay_ms > 0 {
            (now_ms + initial_delay_ms).min(self.rebalance_deadline_ms)
        } else {
            0
        };
        self.state = GroupState::PreparingRebalance;
    }

    /// Completes the join phase if every member has rejoined (and a new group waited its
    /// initial delay), or the deadline passed.
    pub(crate) fn maybe_complete_join(&mut self, now_ms: i64) {
        if self.state != GroupState::PreparingRebalance {
            return;
        }
        let all_joined = self.pending_members.is_empty()
            && self.members.values().all(|m| m.join_waiter.is_some());
        let delay_over = now_ms >= self.initial_delay_until_ms;
        let deadline_passed = now_ms >= self.rebalance_deadline_ms;
        if (all_joined && delay_over) || deadline_passed {
            self.complete_join(now_ms);
        }
    }

    fn complete_join(&mut self, now_ms: i64) {
        // Members that did not rejoin in time leave the group.
        let gone: Vec<String> = self
            .members
            .values()
            .filter(|m| m.join_waiter.is_none())
            .map(|m| m.id.clone())
            .collect();
        for id in gone {
            self.remove_member(&id);
        }
        self.pending_members.clear();
        self.generation += 1;
        if self.members.is_empty() {
            self.state = GroupState::Empty;
            self.protocol = None;
            self.leader = None;
            self.empty_since_ms = now_ms;
            return;
        }
        self.protocol = self.select_protocol();
        if !self
            .leader
            .as_ref()
            .is_some_and(|l| self.members.contains_key(l))
        {
            self.leader = self.members.keys().next().cloned();
        }
        self.state = GroupState::CompletingRebalance;
        let ids: Vec<String> = self.members.keys().cloned().collect();
        for id in ids {
            let Some((waiter, version)) =
                self.members.get_mut(&id).and_then(|m| m.join_waiter.take())
            else {
                continue;
            };
            let response = self.join_response(&id, version, false);
            if let Some(member) = self.members.get_mut(&id) {
                member.session_deadline_ms = now_ms + member.session_timeout_ms;
                member.assignment = Bytes::new();
            }
            let _ = waiter.send(response);
        }
    }

    /// The protocol every member supports that the most members prefer (Kafka's vote).
    fn select_protocol(&self) -> Option<String> {
        let first = self.members.values().next()?;
        let candidates: Vec<&String> = first
            .protocols
            .iter()
            .map(|(name, _)| name)
            .filter(|name| {
                self.members
                    .values()
                    .all(|m| m.protocols.iter().any(|(n, _)| n == *name))
            })
            .collect();
        let mut votes: Vec<(usize, usize)> = vec![(0, 0); candidates.len()];
        for (i, vote) in votes.iter_mut().enumerate() {
            vote.1 = i;
        }
        for member in self.members.values() {
            if let Some(choice) = member
                .protocols
                .iter()
                .find_map(|(name, _)| candidates.iter().position(|c| *c == name))
            {
                votes[choice].0 += 1;
            }
        }
        votes
            .iter()
            .max_by(|a, b| a.0.cmp(&b.0).then(b.1.cmp(&a.1)))
            .map(|(_, i)| candidates[*i].clone())
    }

    /// Removes a member, answering anything it was waiting for.
    pub(crate) fn remove_member(&mut self, member_id: &str) {
        if let Some(mut member) = self.members.remove(member_id) {
            if let Some((waiter, _)) = member.join_waiter.take() {
                let _ = waiter.send(join_error(ResponseError::UnknownMemberId, member_id));
            }
            if let Some(waiter) = member.sync_waiter.take() {
                let _ = waiter.send(sync_error(ResponseError::UnknownMemberId));
            }
            if let Some(instance) = &member.instance_id
                && self.static_members.get(instance).map(String::as_str) == Some(member_id)
            {
                self.static_members.remove(instance);
            }
        }
        if self.leader.as_deref() == Some(member_id) {
            self.leader = None;
        }
    }

    /// Checks the member identity of a request against the group.
    pub(crate) fn check_member(
        &self,
        member_id: &str,
        instance_id: Option<&str>,
    ) -> Result<(), ResponseError> {
        if let Some(instance) = instance_id
            && let Some(current) = self.static_members.get(instance)
            && current != member_id
        {
            return Err(ResponseError::FencedInstanceId);
        }
        if !self.members.contains_key(member_id) {
            return Err(ResponseError::UnknownMemberId);
        }
        Ok(())
    }

    /// Handles a SyncGroup.
    pub(crate) fn sync(
        &mut self,
        member_id: &str,
        instance_id: Option<&str>,
        generation: i32,
        assignments: Vec<(String, Bytes)>,
        now_ms: i64,
    ) -> SyncOutcome {
        if let Err(error) = self.check_member(member_id, instance_id) {
            return SyncOutcome::Now(sync_error(error));
        }
        if generation != self.generation {
            return SyncOutcome::Now(sync_error(ResponseError::IllegalGeneration));
        }
        match self.state {
            GroupState::Empty | GroupState::PreparingRebalance => {
                SyncOutcome::Now(sync_error(ResponseError::RebalanceInProgress))
            }
            GroupState::Stable => {
                let assignment = self
                    .members
                    .get(member_id)
                    .map(|m| m.assignment.clone())
                    .unwrap_or_default();
                SyncOutcome::Now(SyncGroupResponse::default().with_assignment(assignment))
            }
            GroupState::CompletingRebalance => {
                if let Some(member) = self.members.get_mut(member_id) {
                    member.session_deadline_ms = now_ms + member.session_timeout_ms;
                }
                let (tx, rx) = oneshot::channel();
                if let Some(member) = self.members.get_mut(member_id) {
                    if let Some(old) = member.sync_waiter.take() {
                        let _ = old.send(sync_error(ResponseError::RebalanceInProgress));
                    }
                    member.sync_waiter = Some(tx);
                }
                if self.leader.as_deref() == Some(member_id) {
                    let assignments: HashMap<String, Bytes> = assignments.into_iter().collect();
                    for member in self.members.values_mut() {
                        member.assignment =
                            assignments.get(&member.id).cloned().unwrap_or_default();
                    }
                    self.state = GroupState::Stable;
                    for member in self.members.values_mut() {
                        if let Some(waiter) = member.sync_waiter.take() {
                            let _ = waiter.send(
                                SyncGroupResponse::default()
                                    .with_assignment(member.assignment.clone()),
                            );
                        }
                    }
                }
                SyncOutcome::Wait(rx)
            }
        }
    }

    /// Handles a Heartbeat.
    pub(crate) fn heartbeat(
        &mut self,
        member_id: &str,
        instance_id: Option<&str>,
        generation: i32,
        now_ms: i64,
    ) -> Result<(), ResponseError> {
        self.check_member(member_id, instance_id)?;
        if generation != self.generation {
            return Err(ResponseError::IllegalGeneration);
        }
        if let Some(member) = self.members.get_mut(member_id) {
            member.session_deadline_ms = now_ms + member.session_timeout_ms;
        }
        if self.state == GroupState::PreparingRebalance {
            return Err(ResponseError::RebalanceInProgress);
        }
        Ok(())
    }

    /// Handles one member of a LeaveGroup.
    pub(crate) fn leave(
        &mut self,
        member_id: &str,
        instance_id: Option<&str>,
        now_ms: i64,
    ) -> Result<(), ResponseError> {
        let member_id = match (member_id.is_empty(), instance_id) {
            (true, Some(instance)) => self
                .static_members
                .get(instance)
                .cloned()
                .ok_or(ResponseError::UnknownMemberId)?,
            _ => {
                self.check_member(member_id, instance_id)?;
                member_id.to_string()
            }
        };
        self.remove_member(&member_id);
        self.membership_changed(now_ms);
        Ok(())
    }

    /// Reacts to a member leaving or expiring.
    pub(crate) fn membership_changed(&mut self, now_ms: i64) {
        match self.state {
            GroupState::PreparingRebalance => self.maybe_complete_join(now_ms),
            GroupState::CompletingRebalance | GroupState::Stable => {
                if self.members.is_empty() {
                    self.state = GroupState::Empty;
                    self.generation += 1;
                    self.protocol = None;
                    self.leader = None;
                    self.empty_since_ms = now_ms;
                } else {
                    self.prepare_rebalance(now_ms, 0);
                    self.maybe_complete_join(now_ms);
                }
            }
            GroupState::Empty => {}
        }
    }

    /// Expires sessions and pending members, and ends join phases whose time is up.
    pub(crate) fn tick(&mut self, settings: &GroupSettings, now_ms: i64) {
        self.pending_members
            .retain(|_, deadline| *deadline > now_ms);
        if self.state != GroupState::Empty {
            // As in Kafka, a member parked in a JoinGroup or SyncGroup is alive; any other
            // member whose session ran out is gone, also in the middle of a rebalance (a dead
            // member must not hold the join phase open until the rebalance timeout).
            let expired: Vec<String> = self
                .members
                .values()
                .filter(|m| {
                    m.session_deadline_ms <= now_ms
                        && m.join_waiter.is_none()
                        && m.sync_waiter.is_none()
                })
                .map(|m| m.id.clone())
                .collect();
            if !expired.is_empty() {
                for id in &expired {
                    tracing::info!(group = %self.id, member = %id, "member session expired");
                    self.remove_member(id);
                }
                self.membership_changed(now_ms);
            }
        }
        let _ = settings;
        self.maybe_complete_join(now_ms);
    }
}
