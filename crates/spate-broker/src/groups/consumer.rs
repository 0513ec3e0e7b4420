//! The next-generation consumer group protocol (KIP-848): ConsumerGroupHeartbeat with
//! server-side assignment.
//!
//! Every membership or subscription change bumps the group epoch; the coordinator then
//! computes a target assignment (the `uniform` or `range` assignor) for that epoch. Each
//! heartbeat moves its member towards its target without ever giving a partition to two
//! members: partitions the member must give up are revoked first (its epoch stays until it
//! reports them gone), partitions another member still holds are handed over once released.
//! A member whose owned partitions match what the coordinator expects carries the target
//! epoch. Sessions and revocations are bounded by the session and rebalance timeouts.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use kafka_protocol::ResponseError;
use uuid::Uuid;

use super::store::CommittedOffset;

/// Partitions by topic id.
pub(crate) type Assignment = BTreeMap<Uuid, BTreeSet<i32>>;

/// The assignors this coordinator runs.
pub const ASSIGNORS: &[&str] = &["uniform", "range"];

/// What the coordinator knows of a topic when assigning.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TopicInfo {
    pub(crate) id: Uuid,
    pub(crate) partitions: i32,
}

#[derive(Debug)]
pub(crate) struct ConsumerMember {
    pub(crate) id: String,
    pub(crate) epoch: i32,
    pub(crate) previous_epoch: i32,
    pub(crate) instance_id: Option<String>,
    pub(crate) rack_id: Option<String>,
    pub(crate) client_id: String,
    pub(crate) client_host: String,
    pub(crate) rebalance_timeout_ms: i64,
    pub(crate) subscribed_names: BTreeSet<String>,
    pub(crate) subscribed_regex: Option<String>,
    pub(crate) assignor: Option<String>,
    /// Partitions the member may own now.
    pub(crate) assigned: Assignment,
    /// Partitions the member was told to give up and has not yet reported gone.
    pub(crate) revoking: Assignment,
    pub(crate) revocation_deadline_ms: Option<i64>,
    pub(crate) session_deadline_ms: i64,
    pub(crate) last_sent: Option<Assignment>,
}

/// A KIP-848 consumer group.
#[derive(Debug)]
pub(crate) struct ConsumerGroup {
    pub(crate) id: String,
    pub(crate) group_epoch: i32,
    pub(crate) assignment_epoch: i32,
    pub(crate) members: BTreeMap<String, ConsumerMember>,
    pub(crate) static_members: HashMap<String, String>,
    pub(crate) target: BTreeMap<String, Assignment>,
    pub(crate) assignor: String,
    /// Topics (name, id, partitions) the last target was computed from.
    pub(crate) metadata: BTreeMap<String, TopicInfo>,
    pub(crate) offsets: HashMap<(String, i32), CommittedOffset>,
    pub(crate) empty_since_ms: i64,
    /// Each subscription regex of the members and the topics it matched when last resolved.
    /// As on Kafka, regexes are resolved apart from heartbeats ([`ConsumerGroup::resolve_regexes`],
    /// on the coordinator's tick): a joining member gets its literal topics at once and the
    /// regex's matches once resolved; a new topic joins the matches the same way.
    pub(crate) resolved: BTreeMap<String, BTreeSet<String>>,
    /// The topic names the regexes were last resolved against.
    resolved_against: Vec<String>,
}

/// One heartbeat, as the state machine sees it.
pub(crate) struct Heartbeat {
    pub(crate) member_id: String,
    pub(crate) member_epoch: i32,
    pub(crate) instance_id: Option<String>,
    pub(crate) rack_id: Option<String>,
    pub(crate) rebalance_timeout_ms: i32,
    pub(crate) subscribed_names: Option<Vec<String>>,
    pub(crate) subscribed_regex: Option<String>,
    pub(crate) assignor: Option<String>,
    pub(crate) owned: Option<Assignment>,
    pub(crate) client_id: String,
    pub(crate) client_host: String,
}

/// The answer to a heartbeat.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct HeartbeatReply {
    pub(crate) member_id: String,
    pub(crate) member_epoch: i32,
    pub(crate) assignment: Option<Assignment>,
}

#[cfg(test)]
fn count(assignment: &Assignment) -> usize {
    assignment.values().map(BTreeSet::len).sum()
}

fn minus(a: &Assignment, b: &Assignment) -> Assignment {
    let mut out = Assignment::new();
    for (topic, partitions) in a {
        let rest: BTreeSet<i32> = match b.get(topic) {
            Some(other) => partitions.difference(other).copied().collect(),
            None => partitions.clone(),
        };
        if !rest.is_empty() {
            out.insert(*topic, rest);
        }
    }
    out
}

fn union_into(a: &mut Assignment, b: &Assignment) {
    for (topic, partitions) in b {
        a.entry(*topic)
            .or_default()
            .extend(partitions.iter().copied());
    }
}

fn intersects(a: &Assignment, b: &Assignment) -> bool {
    a.iter().any(|(topic, partitions)| {
        b.get(topic)
            .is_some_and(|other| !partitions.is_disjoint(other))
    })
}

fn is_subset(a: &Assignment, b: &Assignment) -> bool {
    a.iter().all(|(topic, partitions)| {
        partitions.is_empty()
            || b.get(topic)
                .is_some_and(|other| partitions.is_subset(other))
    })
}

/// A (RE2/J) subscription regex, matching whole topic names; `None` if it does not compile.
fn subscription_regex(pattern: &str) -> Option<regex::Regex> {
    regex::Regex::new(&format!("^(?:{pattern})$")).ok()
}

/// Whether `member` subscribes to `topic`: by name, or through its regex as last resolved.
fn subscribes(
    resolved: &BTreeMap<String, BTreeSet<String>>,
    member: &ConsumerMember,
    topic: &str,
) -> bool {
    member.subscribed_names.contains(topic)
        || member
            .subscribed_regex
            .as_ref()
            .and_then(|pattern| resolved.get(pattern))
            .is_some_and(|topics| topics.contains(topic))
}

impl ConsumerGroup {
    pub(crate) fn new(id: &str, now_ms: i64) -> ConsumerGroup {
        ConsumerGroup {
            id: id.to_string(),
            group_epoch: 0,
            assignment_epoch: 0,
            members: BTreeMap::new(),
            static_members: HashMap::new(),
            target: BTreeMap::new(),
            assignor: ASSIGNORS[0].to_string(),
            metadata: BTreeMap::new(),
            offsets: HashMap::new(),
            empty_since_ms: now_ms,
            resolved: BTreeMap::new(),
            resolved_against: Vec::new(),
        }
    }

    /// Kafka's name for the group's state.
    pub(crate) fn state_name(&self) -> &'static str {
        if self.members.is_empty() {
            "Empty"
        } else if self.group_epoch > self.assignment_epoch {
            "Assigning"
        } else if self
            .members
            .values()
            .any(|m| m.epoch != self.assignment_epoch || !m.revoking.is_empty())
        {
            "Reconciling"
        } else {
            "Stable"
        }
    }

    /// The topics the members subscribe to, with ids and partition counts.
    fn subscribed_metadata(
        &self,
        topics: &BTreeMap<String, TopicInfo>,
    ) -> BTreeMap<String, TopicInfo> {
        topics
            .iter()
            .filter(|(name, _)| {
                self.members
                    .values()
                    .any(|m| subscribes(&self.resolved, m, name))
            })
            .map(|(name, info)| (name.clone(), info.clone()))
            .collect()
    }

    /// Handles a ConsumerGroupHeartbeat.
    pub(crate) fn heartbeat(
        &mut self,
        request: Heartbeat,
        topics: &BTreeMap<String, TopicInfo>,
        session_timeout_ms: i64,
        max_size: usize,
        now_ms: i64,
    ) -> Result<HeartbeatReply, ResponseError> {
        if let Some(assignor) = &request.assignor
            && !ASSIGNORS.contains(&assignor.as_str())
        {
            return Err(ResponseError::UnsupportedAssignor);
        }
        if let Some(pattern) = request.subscribed_regex.as_deref()
            && !pattern.is_empty()
            && subscription_regex(pattern).is_none()
        {
            return Err(ResponseError::InvalidRegularExpression);
        }
        match request.member_epoch {
            -1 | -2 => return Ok(self.leave(request, now_ms)),
            0 => self.join(&request, max_size, now_ms)?,
            epoch => {
                let member = self
                    .members
                    .get(&request.member_id)
                    .ok_or(ResponseError::UnknownMemberId)?;
                if let Some(instance) = &request.instance_id
                    && self.static_members.get(instance) != Some(&request.member_id)
                {
                    return Err(ResponseError::FencedInstanceId);
                }
                let resent = epoch == member.previous_epoch
                    && request
                        .owned
                        .as_ref()
                        .is_some_and(|owned| is_subset(owned, &member.assigned));
                if epoch != member.epoch && !resent {
                    return Err(ResponseError::FencedMemberEpoch);
                }
            }
        }
        let member_id = request.member_id.clone();
        let mut bump = false;
        {
            let member = self
                .members
                .get_mut(&member_id)
                .ok_or(ResponseError::UnknownMemberId)?;
            member.session_deadline_ms = now_ms + session_timeout_ms;
            member.client_id = request.client_id;
            member.client_host = request.client_host;
            if request.rebalance_timeout_ms > 0 {
                member.rebalance_timeout_ms = i64::from(request.rebalance_timeout_ms);
            }
            if request.rack_id.is_some() {
                member.rack_id = request.rack_id;
            }
            if let Some(names) = request.subscribed_names {
                let names: BTreeSet<String> = names.into_iter().collect();
                if names != member.subscribed_names {
                    member.subscribed_names = names;
                    bump = true;
                }
            }
            if request.subscribed_regex.is_some()
                && request.subscribed_regex != member.subscribed_regex
            {
                member.subscribed_regex = request.subscribed_regex.filter(|r| !r.is_empty());
                bump = true;
            }
            if request.assignor.is_some() && request.assignor != member.assignor {
                member.assignor = request.assignor;
                bump = true;
            }
            if let Some(owned) = &request.owned {
                // Revocation is done once the member no longer reports any revoked partition.
                if !member.revoking.is_empty() && !intersects(owned, &member.revoking) {
                    member.revoking.clear();
                    member.revocation_deadline_ms = None;
                }
            }
        }
        if bump {
            self.group_epoch += 1;
        }
        let metadata = self.subscribed_metadata(topics);
        if metadata != self.metadata {
            self.metadata = metadata;
            if !self.members.is_empty() {
                self.group_epoch = self.group_epoch.max(self.assignment_epoch + 1);
            }
        }
        if self.group_epoch > self.assignment_epoch {
            self.compute_target();
        }
        Ok(self.reconcile(&member_id, now_ms))
    }

    fn join(
        &mut self,
        request: &Heartbeat,
        max_size: usize,
        now_ms: i64,
    ) -> Result<(), ResponseError> {
        if let Some(member) = self.members.get_mut(&request.member_id) {
            // An epoch-0 heartbeat from a known member is a rejoin (it was fenced or restarted):
            // it starts over with nothing.
            member.assigned.clear();
            member.revoking.clear();
            member.revocation_deadline_ms = None;
            member.epoch = 0;
            member.previous_epoch = 0;
            member.last_sent = None;
            self.group_epoch += 1;
            return Ok(());
        }
        if let Some(instance) = &request.instance_id
            && let Some(old_id) = self.static_members.get(instance).cloned()
        {
            let old = self.members.get(&old_id);
            if old.is_some_and(|m| m.epoch != -2) {
                return Err(ResponseError::UnreleasedInstanceId);
            }
            // A static member coming back takes over its predecessor's assignment.
            if let Some(mut member) = self.members.remove(&old_id) {
                member.id = request.member_id.clone();
                member.epoch = self.assignment_epoch;
                member.previous_epoch = self.assignment_epoch;
                member.last_sent = None;
                if let Some(target) = self.target.remove(&old_id) {
                    self.target.insert(request.member_id.clone(), target);
                }
                self.members.insert(request.member_id.clone(), member);
                self.static_members
                    .insert(instance.clone(), request.member_id.clone());
                return Ok(());
            }
        }
        if self.members.len() >= max_size {
            return Err(ResponseError::GroupMaxSizeReached);
        }
        if let Some(instance) = &request.instance_id {
            self.static_members
                .insert(instance.clone(), request.member_id.clone());
        }
        self.members.insert(
            request.member_id.clone(),
            ConsumerMember {
                id: request.member_id.clone(),
                epoch: 0,
                previous_epoch: 0,
                instance_id: request.instance_id.clone(),
                rack_id: None,
                client_id: String::new(),
                client_host: String::new(),
                rebalance_timeout_ms: 300_000,
                subscribed_names: BTreeSet::new(),
                subscribed_regex: None,
                assignor: None,
                assigned: Assignment::new(),
                revoking: Assignment::new(),
                revocation_deadline_ms: None,
                session_deadline_ms: now_ms,
                last_sent: None,
            },
        );
        // The new member's subscription (always new) bumps the group epoch.
        Ok(())
    }

    fn leave(&mut self, request: Heartbeat, now_ms: i64) -> HeartbeatReply {
        let epoch = request.member_epoch;
        if epoch == -2
            && let Some(member) = self.members.get_mut(&request.member_id)
        {
            // A static member leaving for a while keeps its partitions until its session ends.
            member.epoch = -2;
            return HeartbeatReply {
                member_id: request.member_id,
                member_epoch: -2,
                assignment: None,
            };
        }
        self.remove_member(&request.member_id, now_ms);
        HeartbeatReply {
            member_id: request.member_id,
            member_epoch: -1,
            assignment: None,
        }
    }

    pub(crate) fn remove_member(&mut self, member_id: &str, now_ms: i64) {
        if let Some(member) = self.members.remove(member_id) {
            if let Some(instance) = &member.instance_id
                && self.static_members.get(instance).map(String::as_str) == Some(member_id)
            {
                self.static_members.remove(instance);
            }
            self.target.remove(member_id);
            self.group_epoch += 1;
            if self.members.is_empty() {
                self.empty_since_ms = now_ms;
            }
        }
    }

    /// Recomputes every member's target with the group's assignor.
    fn compute_target(&mut self) {
        let assignor = self
            .members
            .values()
            .find_map(|m| m.assignor.clone())
            .unwrap_or_else(|| ASSIGNORS[0].to_string());
        let subscriptions: Vec<(String, Vec<String>)> = self
            .members
            .values()
            .map(|m| {
                (
                    m.id.clone(),
                    self.metadata
                        .keys()
                        .filter(|t| subscribes(&self.resolved, m, t))
                        .cloned()
                        .collect(),
                )
            })
            .collect();
        self.target = match assignor.as_str() {
            "range" => range_assign(&subscriptions, &self.metadata),
            _ => uniform_assign(&subscriptions, &self.metadata, &self.target),
        };
        self.assignor = assignor;
        self.assignment_epoch = self.group_epoch;
    }

    /// Moves one member towards its target and answers its heartbeat.
    fn reconcile(&mut self, member_id: &str, now_ms: i64) -> HeartbeatReply {
        let target = self.target.get(member_id).cloned().unwrap_or_default();
        let held_by_others: Assignment = {
            let mut held = Assignment::new();
            for (id, other) in &self.members {
                if id != member_id {
                    union_into(&mut held, &other.assigned);
                    union_into(&mut held, &other.revoking);
                }
            }
            held
        };
        let assignment_epoch = self.assignment_epoch;
        let Some(member) = self.members.get_mut(member_id) else {
            return HeartbeatReply {
                member_id: member_id.to_string(),
                member_epoch: -1,
                assignment: None,
            };
        };
        let revoke = minus(&member.assigned, &target);
        if !revoke.is_empty() {
            member.assigned = minus(&member.assigned, &revoke);
            union_into(&mut member.revoking, &revoke);
            member
                .revocation_deadline_ms
                .get_or_insert(now_ms + member.rebalance_timeout_ms);
        }
        if member.revoking.is_empty() {
            let free = minus(&minus(&target, &member.assigned), &held_by_others);
            union_into(&mut member.assigned, &free);
            if member.epoch != assignment_epoch {
                member.previous_epoch = member.epoch;
                member.epoch = assignment_epoch;
            }
        }
        let changed = member.last_sent.as_ref() != Some(&member.assigned);
        if changed {
            member.last_sent = Some(member.assigned.clone());
        }
        HeartbeatReply {
            member_id: member_id.to_string(),
            member_epoch: member.epoch,
            assignment: changed.then(|| member.assigned.clone()),
        }
    }

    /// Whether a member's regex is unresolved, or the topics changed since the last resolution.
    pub(crate) fn regexes_need_resolving(&self, topic_names: &[String]) -> bool {
        let regexes = self
            .members
            .values()
            .filter_map(|m| m.subscribed_regex.as_ref());
        let mut any = false;
        for regex in regexes {
            if !self.resolved.contains_key(regex) {
                return true;
            }
            any = true;
        }
        any && self.resolved_against != topic_names
    }

    /// Resolves every member's regex against the topics (each regex compiled once), keeps the
    /// matches, and bumps the group epoch when a match changed so members are reassigned at
    /// their next heartbeat. Internal topics never match.
    pub(crate) fn resolve_regexes(&mut self, topic_names: &[String]) {
        let regexes: BTreeSet<&String> = self
            .members
            .values()
            .filter_map(|m| m.subscribed_regex.as_ref())
            .collect();
        let mut resolved = BTreeMap::new();
        for pattern in regexes {
            let topics = match subscription_regex(pattern) {
                Some(regex) => topic_names
                    .iter()
                    .filter(|t| !t.starts_with("__") && regex.is_match(t))
                    .cloned()
                    .collect(),
                None => BTreeSet::new(),
            };
            resolved.insert(pattern.clone(), topics);
        }
        if resolved != self.resolved {
            tracing::debug!(group = %self.id, regexes = resolved.len(), "resolved subscription regexes");
            self.resolved = resolved;
            if !self.members.is_empty() {
                self.group_epoch = self.group_epoch.max(self.assignment_epoch + 1);
            }
        }
        self.resolved_against = topic_names.to_vec();
    }

    /// Ends expired sessions and fences members that did not revoke in time.
    pub(crate) fn tick(&mut self, now_ms: i64) {
        let expired: Vec<String> = self
            .members
            .values()
            .filter(|m| {
                m.session_deadline_ms <= now_ms
                    || m.revocation_deadline_ms
                        .is_some_and(|deadline| deadline <= now_ms)
            })
            .map(|m| m.id.clone())
            .collect();
        for id in expired {
            tracing::info!(group = %self.id, member = %id, "consumer group member expired");
            self.remove_member(&id, now_ms);
        }
    }

    /// Checks an OffsetCommit's member id and epoch.
    pub(crate) fn check_commit(&self, member_id: &str, epoch: i32) -> Result<(), ResponseError> {
        if member_id.is_empty() && epoch < 0 {
            return if self.members.is_empty() {
                Ok(())
            } else {
                Err(ResponseError::UnknownMemberId)
            };
        }
        let member = self
            .members
            .get(member_id)
            .ok_or(ResponseError::UnknownMemberId)?;
        if epoch != member.epoch {
            return Err(ResponseError::StaleMemberEpoch);
        }
        Ok(())
    }

    /// Every partition held by any member (for counting).
    #[cfg(test)]
    pub(crate) fn assigned_count(&self) -> usize {
        self.members.values().map(|m| count(&m.assigned)).sum()
    }
}

/// Kafka's range assignor, per topic: members sorted by id get contiguous ranges.
fn range_assign(
    subscriptions: &[(String, Vec<String>)],
    topics: &BTreeMap<String, TopicInfo>,
) -> BTreeMap<String, Assignment> {
    let mut out: BTreeMap<String, Assignment> = subscriptions
        .iter()
        .map(|(m, _)| (m.clone(), Assignment::new()))
        .collect();
    for (topic, info) in topics {
        let mut members: Vec<&String> = subscriptions
            .iter()
            .filter(|(_, subscribed)| subscribed.contains(topic))
            .map(|(m, _)| m)
            .collect();
        members.sort();
        if members.is_empty() {
            continue;
        }
        let n = members.len() as i32;
        let per = info.partitions / n;
        let extra = info.partitions % n;
        let mut start = 0;
        for (i, member) in members.iter().enumerate() {
            let len = per + i32::from((i as i32) < extra);
            if len > 0 {
                out.entry((*member).clone())
                    .or_default()
                    .entry(info.id)
                    .or_default()
                    .extend(start..start + len);
            }
            start += len;
        }
    }
    out
}

/// A sticky, balanced assignor (Kafka's `uniform`): members keep what they had where that
/// stays balanced; every partition goes to a subscribed member; counts differ by at most one
/// wherever subscriptions allow.
fn uniform_assign(
    subscriptions: &[(String, Vec<String>)],
    topics: &BTreeMap<String, TopicInfo>,
    previous: &BTreeMap<String, Assignment>,
) -> BTreeMap<String, Assignment> {
    let subscribed: BTreeMap<&String, BTreeSet<Uuid>> = subscriptions
        .iter()
        .map(|(m, names)| {
            (
                m,
                names
                    .iter()
                    .filter_map(|n| topics.get(n).map(|t| t.id))
                    .collect(),
            )
        })
        .collect();
    let partitions: Vec<(Uuid, i32)> = topics
        .values()
        .filter(|t| subscribed.values().any(|s| s.contains(&t.id)))
        .flat_map(|t| (0..t.partitions).map(move |p| (t.id, p)))
        .collect();
    let valid: BTreeSet<(Uuid, i32)> = partitions.iter().copied().collect();
    let members: Vec<&String> = subscribed.keys().copied().collect();
    if members.is_empty() {
        return BTreeMap::new();
    }
    let mut owner: BTreeMap<(Uuid, i32), &String> = BTreeMap::new();
    let mut held: BTreeMap<&String, BTreeSet<(Uuid, i32)>> =
        members.iter().map(|m| (*m, BTreeSet::new())).collect();
    // Stickiness: keep previous partitions that are still valid and subscribed, up to the
    // largest fair share.
    let ceiling = partitions.len().div_ceil(members.len());
    for member in &members {
        if let Some(assignment) = previous.get(*member) {
            for (topic, ps) in assignment {
                for p in ps {
                    let key = (*topic, *p);
                    if valid.contains(&key)
                        && subscribed[*member].contains(topic)
                        && !owner.contains_key(&key)
                        && held[*member].len() < ceiling
                    {
                        owner.insert(key, member);
                        held.get_mut(*member).map(|h| h.insert(key));
                    }
                }
            }
        }
    }
    // Everything else goes to the least loaded subscribed member.
    for key in &partitions {
        if owner.contains_key(key) {
            continue;
        }
        if let Some(member) = members
            .iter()
            .filter(|m| subscribed[**m].contains(&key.0))
            .min_by_key(|m| (held[**m].len(), **m))
        {
            owner.insert(*key, member);
            held.get_mut(*member).map(|h| h.insert(*key));
        }
    }
    // Even out: move partitions from the most to the least loaded member that can take them.
    for _ in 0..partitions.len() * members.len() {
        let mut moved = false;
        let mut by_load: Vec<&String> = members.clone();
        by_load.sort_by_key(|m| std::cmp::Reverse(held[*m].len()));
        'outer: for from in &by_load {
            for to in by_load.iter().rev() {
                if held[*from].len() <= held[*to].len() + 1 {
                    continue;
                }
                if let Some(key) = held[*from]
                    .iter()
                    .find(|k| subscribed[*to].contains(&k.0))
                    .copied()
                {
                    held.get_mut(*from).map(|h| h.remove(&key));
                    held.get_mut(*to).map(|h| h.insert(key));
                    moved = true;
                    break 'outer;
                }
            }
        }
        if !moved {
            break;
        }
    }
    held.into_iter()
        .map(|(member, keys)| {
            let mut assignment = Assignment::new();
            for (topic, p) in keys {
                assignment.entry(topic).or_default().insert(p);
            }
            (member.clone(), assignment)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn topics(spec: &[(&str, i32)]) -> BTreeMap<String, TopicInfo> {
        spec.iter()
            .map(|(name, partitions)| {
                (
                    name.to_string(),
                    TopicInfo {
                        id: Uuid::from_u128(
                            name.bytes()
                                .fold(7u128, |h, b| h.wrapping_mul(31).wrapping_add(u128::from(b))),
                        ),
                        partitions: *partitions,
                    },
                )
            })
            .collect()
    }

    fn heartbeat(
        member: &str,
        epoch: i32,
        subscribe: Option<&[&str]>,
        owned: Option<Assignment>,
    ) -> Heartbeat {
        Heartbeat {
            member_id: member.into(),
            member_epoch: epoch,
            instance_id: None,
            rack_id: None,
            rebalance_timeout_ms: 30_000,
            subscribed_names: subscribe.map(|s| s.iter().map(|t| t.to_string()).collect()),
            subscribed_regex: None,
            assignor: None,
            owned,
            client_id: "c".into(),
            client_host: "/127.0.0.1".into(),
        }
    }

    fn topic_names_of(t: &BTreeMap<String, TopicInfo>) -> Vec<String> {
        t.keys().cloned().collect()
    }

    #[test]
    fn literal_topics_are_assigned_at_once_and_regex_matches_once_resolved() {
        let mut t = topics(&[("lit", 1), ("rx-a", 2), ("rx-b", 1), ("__internal", 1)]);
        let mut group = ConsumerGroup::new("g", 0);
        let mut join = heartbeat("m1", 0, Some(&["lit"]), None);
        join.subscribed_regex = Some("rx-.*|__.*".into());
        let reply = group.heartbeat(join, &t, 45_000, 100, 0).expect("join");
        let names = |a: &Assignment| -> BTreeSet<Uuid> { a.keys().copied().collect() };
        assert_eq!(
            names(&reply.assignment.expect("assignment")),
            BTreeSet::from([t["lit"].id]),
            "the join gets its literal topic only"
        );
        assert!(group.regexes_need_resolving(&topic_names_of(&t)));
        group.resolve_regexes(&topic_names_of(&t));
        assert!(!group.regexes_need_resolving(&topic_names_of(&t)));
        let settled = settle(&mut group, &t, 1);
        assert_eq!(
            names(&settled["m1"]),
            BTreeSet::from([t["lit"].id, t["rx-a"].id, t["rx-b"].id]),
            "then the regex's matches, never an internal topic"
        );

        // A new matching topic is picked up by the next resolution.
        t.extend(topics(&[("rx-new", 1)]));
        assert!(group.regexes_need_resolving(&topic_names_of(&t)));
        group.resolve_regexes(&topic_names_of(&t));
        let settled = settle(&mut group, &t, 2);
        assert!(names(&settled["m1"]).contains(&t["rx-new"].id));
    }

    #[test]
    fn an_invalid_regex_is_refused_with_invalid_regular_expression() {
        let t = topics(&[("lit", 1)]);
        let mut group = ConsumerGroup::new("g", 0);
        let mut join = heartbeat("m1", 0, Some(&["lit"]), None);
        join.subscribed_regex = Some("rx-(unclosed".into());
        assert_eq!(
            group.heartbeat(join, &t, 45_000, 100, 0),
            Err(ResponseError::InvalidRegularExpression)
        );
        assert!(group.members.is_empty(), "a refused join adds no member");
    }

    /// Drives members until no heartbeat changes anything; returns each member's assignment.
    fn settle(
        group: &mut ConsumerGroup,
        t: &BTreeMap<String, TopicInfo>,
        now: i64,
    ) -> BTreeMap<String, Assignment> {
        for _ in 0..10 {
            let ids: Vec<String> = group.members.keys().cloned().collect();
            for id in ids {
                let (epoch, owned) = {
                    let m = &group.members[&id];
                    (m.epoch, m.assigned.clone())
                };
                group
                    .heartbeat(
                        heartbeat(&id, epoch, None, Some(owned)),
                        t,
                        45_000,
                        100,
                        now,
                    )
                    .expect("heartbeat");
            }
        }
        group
            .members
            .iter()
            .map(|(id, m)| (id.clone(), m.assigned.clone()))
            .collect()
    }

    #[test]
    fn partitions_are_never_owned_twice_while_members_come_and_go() {
        let t = topics(&[("orders", 6)]);
        let mut group = ConsumerGroup::new("g", 0);
        let first = group
            .heartbeat(
                heartbeat("a", 0, Some(&["orders"]), None),
                &t,
                45_000,
                100,
                0,
            )
            .expect("join");
        assert_eq!(first.member_epoch, 1);
        assert_eq!(count(first.assignment.as_ref().expect("assignment")), 6);
        group
            .heartbeat(
                heartbeat("b", 0, Some(&["orders"]), None),
                &t,
                45_000,
                100,
                0,
            )
            .expect("join");
        group
            .heartbeat(
                heartbeat("c", 0, Some(&["orders"]), None),
                &t,
                45_000,
                100,
                0,
            )
            .expect("join");
        // Until "a" revokes, "b" and "c" get nothing "a" still holds.
        assert_eq!(group.assigned_count(), 6);
        let settled = settle(&mut group, &t, 0);
        assert!(settled.values().all(|a| count(a) == 2), "{settled:?}");
        assert!(
            group
                .members
                .values()
                .all(|m| m.epoch == group.assignment_epoch)
        );
        assert_eq!(group.state_name(), "Stable");
        // A member leaves; its partitions move to the others.
        group
            .heartbeat(heartbeat("b", -1, None, None), &t, 45_000, 100, 0)
            .expect("leave");
        let settled = settle(&mut group, &t, 0);
        assert_eq!(settled.values().map(count).collect::<Vec<_>>(), vec![3, 3]);
    }

    #[test]
    fn stale_epochs_are_fenced_and_unknown_members_refused() {
        let t = topics(&[("orders", 2)]);
        let mut group = ConsumerGroup::new("g", 0);
        group
            .heartbeat(
                heartbeat("a", 0, Some(&["orders"]), None),
                &t,
                45_000,
                100,
                0,
            )
            .expect("join");
        assert_eq!(
            group.heartbeat(heartbeat("a", 7, None, None), &t, 45_000, 100, 0),
            Err(ResponseError::FencedMemberEpoch)
        );
        assert_eq!(
            group.heartbeat(heartbeat("zz", 3, None, None), &t, 45_000, 100, 0),
            Err(ResponseError::UnknownMemberId)
        );
        let mut bad = heartbeat("b", 0, Some(&["orders"]), None);
        bad.assignor = Some("roundrobin".into());
        assert_eq!(
            group.heartbeat(bad, &t, 45_000, 100, 0),
            Err(ResponseError::UnsupportedAssignor)
        );
    }

    #[test]
    fn sessions_expire_and_slow_revokers_are_fenced() {
        let t = topics(&[("orders", 4)]);
        let mut group = ConsumerGroup::new("g", 0);
        group
            .heartbeat(
                heartbeat("a", 0, Some(&["orders"]), None),
                &t,
                1_000,
                100,
                0,
            )
            .expect("join");
        group
            .heartbeat(
                heartbeat("b", 0, Some(&["orders"]), None),
                &t,
                1_000,
                100,
                500,
            )
            .expect("join");
        group.tick(1_200);
        assert!(
            !group.members.contains_key("a"),
            "a's session ended at 1000"
        );
        assert!(group.members.contains_key("b"));
    }

    #[test]
    fn range_assigns_contiguous_ranges_per_topic() {
        let t = topics(&[("a", 5), ("b", 2)]);
        let subs = vec![
            ("m1".to_string(), vec!["a".to_string(), "b".to_string()]),
            ("m2".to_string(), vec!["a".to_string()]),
        ];
        let out = range_assign(&subs, &t);
        let a = t["a"].id;
        let b = t["b"].id;
        assert_eq!(out["m1"][&a], BTreeSet::from([0, 1, 2]));
        assert_eq!(out["m2"][&a], BTreeSet::from([3, 4]));
        assert_eq!(out["m1"][&b], BTreeSet::from([0, 1]));
    }

    #[test]
    fn uniform_is_balanced_and_sticky() {
        let t = topics(&[("a", 7), ("b", 5)]);
        let subs: Vec<(String, Vec<String>)> = ["m1", "m2", "m3"]
            .iter()
            .map(|m| (m.to_string(), vec!["a".into(), "b".into()]))
            .collect();
        let first = uniform_assign(&subs, &t, &BTreeMap::new());
        let counts: Vec<usize> = first.values().map(count).collect();
        assert_eq!(counts.iter().sum::<usize>(), 12);
        assert!(counts.iter().all(|c| *c == 4), "{counts:?}");
        // A fourth member takes partitions from the others; nobody else's partitions move.
        let mut subs4 = subs.clone();
        subs4.push(("m4".into(), vec!["a".into(), "b".into()]));
        let second = uniform_assign(&subs4, &t, &first);
        for member in ["m1", "m2", "m3"] {
            assert!(
                is_subset(&second[member], &first[member]),
                "{member} kept only its own partitions"
            );
        }
        assert_eq!(second.values().map(count).sum::<usize>(), 12);
        assert!(second.values().all(|a| count(a) == 3));
    }
}
