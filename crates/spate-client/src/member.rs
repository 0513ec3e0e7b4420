//! Membership of a classic consumer group (JoinGroup, SyncGroup, Heartbeat, LeaveGroup), so
//! a consumer shares a group's partitions with other members, Java, librdkafka or Spate.
//!
//! The member speaks the eager "consumer" protocol with the two assignors every Kafka client
//! offers by default, `range` then `roundrobin`: the coordinator picks the first one all
//! members support. When this member is the leader it computes the assignment for everyone
//! (other members may subscribe to other topics) from fresh metadata. Joining follows
//! KIP-394 (a first JoinGroup answered with MEMBER_ID_REQUIRED is repeated with the id given),
//! and a member that the coordinator no longer knows starts again with no id.
//!
//! The owner drives the member: [`Membership::join`] until it has an assignment,
//! [`Membership::heartbeat`] when [`Membership::heartbeat_due`] says so (a `false` answer
//! means the group is rebalancing: commit and join again), [`Membership::commit`] for
//! offsets, and [`Membership::leave`] at the end. Nothing here fetches records or prints.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::consumer_protocol_assignment::TopicPartition as AssignedPartition;
use kafka_protocol::messages::join_group_request::JoinGroupRequestProtocol;
use kafka_protocol::messages::leave_group_request::MemberIdentity;
use kafka_protocol::messages::sync_group_request::SyncGroupRequestAssignment;
use kafka_protocol::messages::{
    ConsumerProtocolAssignment, ConsumerProtocolSubscription, GroupId, HeartbeatRequest,
    JoinGroupRequest, LeaveGroupRequest, OffsetCommitRequest, SyncGroupRequest, TopicName,
};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use tokio::time::Instant;

use crate::client::Client;
use crate::connection::Connection;
use crate::error::{Error, KafkaError, Result, code};
use crate::groups::{MemberAssignment, is_coordinator_retriable};

/// The protocol type of consumer groups.
const PROTOCOL_TYPE: &str = "consumer";
/// Version of the subscription and assignment this member writes (readable by every client).
const CONSUMER_PROTOCOL_VERSION: i16 = 0;
/// JoinGroup/SyncGroup rounds at most before giving up (each waits for the group).
const MAX_JOIN_ATTEMPTS: usize = 20;

/// How a partition assignment is computed when this member leads the group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Assignor {
    /// Kafka's `range`: per topic, consecutive partitions to members in member-id order.
    Range,
    /// Kafka's `roundrobin`: all partitions dealt out in turn to the members subscribed.
    RoundRobin,
}

impl Assignor {
    /// The protocol name members agree on.
    pub fn name(self) -> &'static str {
        match self {
            Assignor::Range => "range",
            Assignor::RoundRobin => "roundrobin",
        }
    }

    fn from_name(name: &str) -> Option<Assignor> {
        match name {
            "range" => Some(Assignor::Range),
            "roundrobin" => Some(Assignor::RoundRobin),
            _ => None,
        }
    }

    /// Assigns the partitions of every subscribed topic to the members subscribed to it.
    /// `subscriptions` is member id to topics; `partition_counts` topic to partition count
    /// (topics missing from it are not assigned). Every member gets an entry.
    pub fn assign(
        self,
        subscriptions: &BTreeMap<String, Vec<String>>,
        partition_counts: &BTreeMap<String, i32>,
    ) -> BTreeMap<String, BTreeMap<String, Vec<i32>>> {
        let mut out: BTreeMap<String, BTreeMap<String, Vec<i32>>> = subscriptions
            .keys()
            .map(|member| (member.clone(), BTreeMap::new()))
            .collect();
        let mut members_of: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
        for (member, topics) in subscriptions {
            for topic in topics.iter().collect::<BTreeSet<_>>() {
                if partition_counts.contains_key(topic) {
                    members_of.entry(topic).or_default().push(member);
                }
            }
        }
        match self {
            Assignor::Range => {
                for (topic, members) in &members_of {
                    let count = partition_counts.get(*topic).copied().unwrap_or(0).max(0);
                    let per_member = count / members.len() as i32;
                    let extra = count % members.len() as i32;
                    let mut next = 0;
                    for (i, member) in members.iter().enumerate() {
                        let take = per_member + i32::from((i as i32) < extra);
                        if take > 0 {
                            out.entry(member.to_string())
                                .or_default()
                                .insert(topic.to_string(), (next..next + take).collect());
                        }
                        next += take;
                    }
                }
            }
            Assignor::RoundRobin => {
                let all_members: Vec<&str> = subscriptions.keys().map(String::as_str).collect();
                let mut turn = 0usize;
                for (topic, members) in &members_of {
                    let count = partition_counts.get(*topic).copied().unwrap_or(0).max(0);
                    for partition in 0..count {
                        // The next member, in the circular order of all members, that is
                        // subscribed to this topic.
                        loop {
                            let member = all_members[turn % all_members.len()];
                            turn += 1;
                            if members.contains(&member) {
                                out.entry(member.to_string())
                                    .or_default()
                                    .entry(topic.to_string())
                                    .or_default()
                                    .push(partition);
                                break;
                            }
                        }
                    }
                }
            }
        }
        out
    }
}

/// A group protocol other than the consumer one (Kafka Connect's workers use `connect`):
/// what a member says of itself when it joins, and, when it leads, everyone's assignment.
pub trait GroupProtocol: Send + Sync {
    /// The group's protocol type (`connect`).
    fn protocol_type(&self) -> &str;
    /// The protocols this member offers, by preference: (name, metadata).
    fn protocols(&self) -> Vec<(String, Bytes)>;
    /// The leader's work: each member's assignment from every member's metadata
    /// (member id, metadata), under the protocol the group chose.
    fn assign(&self, protocol: &str, members: &[(String, Bytes)]) -> BTreeMap<String, Bytes>;
}

/// Timeouts and assignors of a member.
#[derive(Debug, Clone)]
pub struct MembershipConfig {
    /// How long the coordinator waits for a heartbeat before removing the member
    /// (`session.timeout.ms`).
    pub session_timeout: Duration,
    /// How long the coordinator waits for members to rejoin during a rebalance
    /// (`max.poll.interval.ms`).
    pub rebalance_timeout: Duration,
    /// How often to heartbeat (`heartbeat.interval.ms`).
    pub heartbeat_interval: Duration,
    /// Assignors offered, in order of preference.
    pub assignors: Vec<Assignor>,
    /// Sent with LeaveGroup (v5+) and JoinGroup (v8+) as the reason.
    pub client_description: String,
}

impl Default for MembershipConfig {
    fn default() -> Self {
        MembershipConfig {
            session_timeout: Duration::from_secs(45),
            rebalance_timeout: Duration::from_secs(60),
            heartbeat_interval: Duration::from_secs(3),
            assignors: vec![Assignor::Range, Assignor::RoundRobin],
            client_description: "spate".to_string(),
        }
    }
}

/// What this member was given in the current generation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Generation {
    /// Generation id.
    pub generation_id: i32,
    /// This member's id.
    pub member_id: String,
    /// Whether this member leads (computed the assignment).
    pub is_leader: bool,
    /// The assignor the group agreed on.
    pub protocol: String,
    /// The partitions assigned to this member, by topic (consumer groups).
    pub assignment: Vec<(String, Vec<i32>)>,
    /// The assignment as the leader wrote it (groups of a custom [`GroupProtocol`]).
    pub data: Bytes,
}

/// A member of a classic consumer group.
pub struct Membership {
    client: Client,
    group: String,
    topics: Vec<String>,
    config: MembershipConfig,
    member_id: String,
    generation: Option<Generation>,
    coordinator: Option<Arc<Connection>>,
    last_heartbeat: Instant,
    custom: Option<Arc<dyn GroupProtocol>>,
}

impl std::fmt::Debug for Membership {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Membership")
            .field("group", &self.group)
            .field("member_id", &self.member_id)
            .field("generation", &self.generation)
            .finish_non_exhaustive()
    }
}

fn text(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_string())
}

fn kafka_error(context: impl FnOnce() -> String, code: i16, message: Option<&str>) -> Result<()> {
    match KafkaError::from_code(code, message) {
        Some(error) => Err(Error::Kafka {
            context: context(),
            error,
        }),
        None => Ok(()),
    }
}

/// The ConsumerProtocolSubscription bytes of `topics`: a 2-byte version, then the body.
fn encode_subscription(topics: &[String]) -> Result<Bytes> {
    let subscription = ConsumerProtocolSubscription::default()
        .with_topics(topics.iter().map(|t| text(t)).collect())
        .with_user_data(None);
    let mut buf = BytesMut::new();
    buf.put_i16(CONSUMER_PROTOCOL_VERSION);
    subscription
        .encode(&mut buf, CONSUMER_PROTOCOL_VERSION)
        .map_err(|e| Error::RecordEncode {
            reason: format!("consumer subscription: {e}"),
        })?;
    Ok(buf.freeze())
}

/// The topics of a member's subscription bytes; newer versions read as the newest known.
fn decode_subscription(bytes: &Bytes) -> std::result::Result<Vec<String>, String> {
    let mut buf = bytes.clone();
    if buf.len() < 2 {
        return Err(format!("{} bytes, too short for a version", buf.len()));
    }
    let version = i16::from_be_bytes([buf[0], buf[1]]);
    if version < 0 {
        return Err(format!("invalid version {version}"));
    }
    bytes::Buf::advance(&mut buf, 2);
    let subscription = ConsumerProtocolSubscription::decode(&mut buf, version.min(3))
        .map_err(|e| e.to_string())?;
    Ok(subscription.topics.iter().map(|t| t.to_string()).collect())
}

/// The ConsumerProtocolAssignment bytes of `partitions` (topic to partitions).
fn encode_assignment(partitions: &BTreeMap<String, Vec<i32>>) -> Result<Bytes> {
    let assignment = ConsumerProtocolAssignment::default()
        .with_assigned_partitions(
            partitions
                .iter()
                .map(|(topic, ps)| {
                    AssignedPartition::default()
                        .with_topic(TopicName(text(topic)))
                        .with_partitions(ps.clone())
                })
                .collect(),
        )
        .with_user_data(None);
    let mut buf = BytesMut::new();
    buf.put_i16(CONSUMER_PROTOCOL_VERSION);
    assignment
        .encode(&mut buf, CONSUMER_PROTOCOL_VERSION)
        .map_err(|e| Error::RecordEncode {
            reason: format!("consumer assignment: {e}"),
        })?;
    Ok(buf.freeze())
}

impl Membership {
    /// A member of `group` that will subscribe to `topics` once it joins.
    pub fn new(
        client: Client,
        group: &str,
        topics: Vec<String>,
        config: MembershipConfig,
    ) -> Result<Membership> {
        if topics.is_empty() {
            return Err(Error::InvalidArgument(
                "a group member needs at least one topic".to_string(),
            ));
        }
        if config.assignors.is_empty() {
            return Err(Error::InvalidArgument(
                "a group member needs at least one assignor".to_string(),
            ));
        }
        Ok(Membership {
            client,
            group: group.to_string(),
            topics,
            config,
            member_id: String::new(),
            generation: None,
            coordinator: None,
            last_heartbeat: Instant::now(),
            custom: None,
        })
    }

    /// A member of `group` under a protocol of its own (not a consumer).
    pub fn with_protocol(
        client: Client,
        group: &str,
        protocol: Arc<dyn GroupProtocol>,
        config: MembershipConfig,
    ) -> Membership {
        Membership {
            client,
            group: group.to_string(),
            topics: Vec::new(),
            config,
            member_id: String::new(),
            generation: None,
            coordinator: None,
            last_heartbeat: Instant::now(),
            custom: Some(protocol),
        }
    }

    fn protocol_type(&self) -> String {
        self.custom
            .as_ref()
            .map_or(PROTOCOL_TYPE.to_string(), |p| p.protocol_type().to_string())
    }

    /// The current generation, if the member has joined.
    pub fn generation(&self) -> Option<&Generation> {
        self.generation.as_ref()
    }

    /// The coordinator's connection, found again when there is none or it closed.
    async fn coordinator(&mut self) -> Result<Arc<Connection>> {
        if let Some(conn) = self.coordinator.as_ref().filter(|c| !c.is_closed()) {
            return Ok(Arc::clone(conn));
        }
        let coordinator = self.client.find_group_coordinator(&self.group).await?;
        let conn = self.client.coordinator_connection(&coordinator).await?;
        self.coordinator = Some(Arc::clone(&conn));
        Ok(conn)
    }

    /// Forgets the coordinator after an error that says it moved or is unreachable.
    fn coordinator_failed(&mut self, error: &Error) {
        if is_coordinator_retriable(error) || error.kafka_code().is_none() {
            self.coordinator = None;
        }
    }

    /// Joins the group (JoinGroup, then SyncGroup) and returns the new generation. Retries
    /// while the coordinator moves or the group rebalances again, a bounded number of times.
    pub async fn join(&mut self) -> Result<Generation> {
        self.generation = None;
        let mut backoff = Duration::from_millis(50);
        let mut last_error = None;
        for _ in 0..MAX_JOIN_ATTEMPTS {
            match self.join_once().await {
                Ok(Some(generation)) => {
                    self.last_heartbeat = Instant::now();
                    self.generation = Some(generation.clone());
                    return Ok(generation);
                }
                Ok(None) => {}
                Err(error) if is_coordinator_retriable(&error) || error.is_retriable() => {
                    tracing::debug!(group = %self.group, error = %error, "rejoining");
                    self.coordinator_failed(&error);
                    last_error = Some(error);
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(1));
                }
                Err(error) => return Err(error),
            }
        }
        Err(last_error.unwrap_or_else(|| {
            Error::InvalidArgument(format!(
                "could not join group {:?} in {MAX_JOIN_ATTEMPTS} attempts",
                self.group
            ))
        }))
    }

    /// One JoinGroup/SyncGroup round: the generation, or `None` to go round again.
    async fn join_once(&mut self) -> Result<Option<Generation>> {
        let conn = self.coordinator().await?;
        let protocol_type = self.protocol_type();
        let protocols = match &self.custom {
            Some(custom) => custom
                .protocols()
                .into_iter()
                .map(|(name, metadata)| {
                    JoinGroupRequestProtocol::default()
                        .with_name(text(&name))
                        .with_metadata(metadata)
                })
                .collect(),
            None => {
                let metadata = encode_subscription(&self.topics)?;
                self.config
                    .assignors
                    .iter()
                    .map(|a| {
                        JoinGroupRequestProtocol::default()
                            .with_name(text(a.name()))
                            .with_metadata(metadata.clone())
                    })
                    .collect()
            }
        };
        let version = conn.version::<JoinGroupRequest>()?;
        let mut request = JoinGroupRequest::default()
            .with_group_id(GroupId(text(&self.group)))
            .with_session_timeout_ms(millis(self.config.session_timeout))
            .with_member_id(text(&self.member_id))
            .with_protocol_type(text(&protocol_type))
            .with_protocols(protocols);
        if version >= 1 {
            request.rebalance_timeout_ms = millis(self.config.rebalance_timeout);
        }
        // JoinGroup waits for every member to rejoin, up to the rebalance timeout.
        let wait = self.config.rebalance_timeout + self.client.config().timeouts.request;
        let response = conn.send_with_timeout(&request, version, wait).await?;
        match response.error_code {
            code::NONE => {}
            code::MEMBER_ID_REQUIRED => {
                self.member_id = response.member_id.to_string();
                return Ok(None);
            }
            code::UNKNOWN_MEMBER_ID => {
                self.member_id.clear();
                return Ok(None);
            }
            code::REBALANCE_IN_PROGRESS => return Ok(None),
            other => {
                return kafka_error(|| format!("join group {:?}", self.group), other, None)
                    .map(|()| None);
            }
        }
        self.member_id = response.member_id.to_string();
        let generation_id = response.generation_id;
        let protocol = response
            .protocol_name
            .as_ref()
            .map(|p| p.to_string())
            .unwrap_or_default();
        let is_leader = response.leader.as_str() == self.member_id;
        let assignments = if let Some(custom) = self.custom.as_ref().filter(|_| is_leader) {
            let members: Vec<(String, Bytes)> = response
                .members
                .iter()
                .map(|m| (m.member_id.to_string(), m.metadata.clone()))
                .collect();
            custom
                .assign(&protocol, &members)
                .into_iter()
                .map(|(member, assignment)| {
                    SyncGroupRequestAssignment::default()
                        .with_member_id(text(&member))
                        .with_assignment(assignment)
                })
                .collect()
        } else if is_leader && !response.skip_assignment {
            let assignor = Assignor::from_name(&protocol).ok_or_else(|| {
                Error::InvalidArgument(format!(
                    "group {:?} chose assignor {protocol:?}, which this member does not offer",
                    self.group
                ))
            })?;
            self.leader_assignments(assignor, &response.members).await?
        } else {
            Vec::new()
        };

        let version = conn.version::<SyncGroupRequest>()?;
        let mut request = SyncGroupRequest::default()
            .with_group_id(GroupId(text(&self.group)))
            .with_generation_id(generation_id)
            .with_member_id(text(&self.member_id))
            .with_assignments(assignments);
        if version >= 5 {
            request.protocol_type = Some(text(&protocol_type));
            request.protocol_name = Some(text(&protocol));
        }
        let response = conn.send_with_timeout(&request, version, wait).await?;
        match response.error_code {
            code::NONE => {}
            code::REBALANCE_IN_PROGRESS | code::ILLEGAL_GENERATION => return Ok(None),
            code::UNKNOWN_MEMBER_ID => {
                self.member_id.clear();
                return Ok(None);
            }
            other => {
                return kafka_error(|| format!("sync group {:?}", self.group), other, None)
                    .map(|()| None);
            }
        }
        let data = response.assignment.clone();
        let assignment = match MemberAssignment::decode(&protocol_type, &response.assignment) {
            MemberAssignment::Partitions(partitions) => partitions,
            MemberAssignment::Malformed { reason } => {
                return Err(Error::Decode {
                    broker: conn.broker().to_string(),
                    api: kafka_protocol::messages::ApiKey::SyncGroup,
                    version,
                    reason: format!("the assignment does not parse: {reason}"),
                });
            }
            MemberAssignment::Opaque { .. } => Vec::new(),
        };
        Ok(Some(Generation {
            generation_id,
            member_id: self.member_id.clone(),
            is_leader,
            protocol,
            assignment,
            data,
        }))
    }

    /// The leader's work: every member's assignment, from their subscriptions and the
    /// partition counts of the topics they subscribe to.
    async fn leader_assignments(
        &self,
        assignor: Assignor,
        members: &[kafka_protocol::messages::join_group_response::JoinGroupResponseMember],
    ) -> Result<Vec<SyncGroupRequestAssignment>> {
        let mut subscriptions: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for member in members {
            let topics = decode_subscription(&member.metadata).unwrap_or_else(|reason| {
                tracing::warn!(group = %self.group, member = %member.member_id, %reason, "unreadable subscription; assigning nothing to the member");
                Vec::new()
            });
            subscriptions.insert(member.member_id.to_string(), topics);
        }
        let topics: Vec<String> = subscriptions
            .values()
            .flatten()
            .cloned()
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        let metadata = self.client.metadata(Some(&topics), false).await?;
        let partition_counts: BTreeMap<String, i32> = metadata
            .topics
            .iter()
            .filter(|t| t.error.is_none() && !t.partitions.is_empty())
            .map(|t| (t.name.clone(), t.partitions.len() as i32))
            .collect();
        let assigned = assignor.assign(&subscriptions, &partition_counts);
        assigned
            .iter()
            .map(|(member, partitions)| {
                Ok(SyncGroupRequestAssignment::default()
                    .with_member_id(text(member))
                    .with_assignment(encode_assignment(partitions)?))
            })
            .collect()
    }

    /// Whether a heartbeat is due.
    pub fn heartbeat_due(&self) -> bool {
        self.generation.is_some() && self.last_heartbeat.elapsed() >= self.config.heartbeat_interval
    }

    /// Sends a heartbeat. `Ok(false)` when the member must join again (the group is
    /// rebalancing, or no longer knows this member or generation).
    pub async fn heartbeat(&mut self) -> Result<bool> {
        let Some(generation) = self.generation.clone() else {
            return Ok(false);
        };
        self.last_heartbeat = Instant::now();
        let conn = match self.coordinator().await {
            Ok(conn) => conn,
            Err(error) if error.is_retriable() || is_coordinator_retriable(&error) => {
                self.coordinator_failed(&error);
                return Ok(true);
            }
            Err(error) => return Err(error),
        };
        let version = conn.version::<HeartbeatRequest>()?;
        let request = HeartbeatRequest::default()
            .with_group_id(GroupId(text(&self.group)))
            .with_generation_id(generation.generation_id)
            .with_member_id(text(&generation.member_id));
        let response = match conn.send(&request, version).await {
            Ok(response) => response,
            Err(error) if error.is_retriable() => {
                self.coordinator_failed(&error);
                return Ok(true);
            }
            Err(error) => return Err(error),
        };
        match response.error_code {
            code::NONE => Ok(true),
            code::REBALANCE_IN_PROGRESS | code::ILLEGAL_GENERATION => Ok(false),
            code::UNKNOWN_MEMBER_ID => {
                self.member_id.clear();
                self.generation = None;
                Ok(false)
            }
            code::NOT_COORDINATOR
            | code::COORDINATOR_NOT_AVAILABLE
            | code::COORDINATOR_LOAD_IN_PROGRESS => {
                self.coordinator = None;
                Ok(true)
            }
            other => kafka_error(
                || format!("heartbeat to group {:?}", self.group),
                other,
                None,
            )
            .map(|()| true),
        }
    }

    /// Commits `offsets` (topic, partition, next offset to read) in the current generation.
    /// Fails with REBALANCE_IN_PROGRESS, ILLEGAL_GENERATION or UNKNOWN_MEMBER_ID when the
    /// member lost its generation.
    pub async fn commit(&mut self, offsets: &[(String, i32, i64)]) -> Result<()> {
        if offsets.is_empty() {
            return Ok(());
        }
        let Some(generation) = self.generation.clone() else {
            return Err(Error::Kafka {
                context: format!("commit offsets for group {:?}", self.group),
                error: KafkaError {
                    code: code::UNKNOWN_MEMBER_ID,
                    message: Some("the member has not joined the group".to_string()),
                },
            });
        };
        let mut attempts = 0;
        loop {
            attempts += 1;
            let conn = self.coordinator().await?;
            let version = conn.version::<OffsetCommitRequest>()?;
            let topics = crate::groups::offset_commit_topics(offsets);
            let request = OffsetCommitRequest::default()
                .with_group_id(GroupId(text(&self.group)))
                .with_generation_id_or_member_epoch(generation.generation_id)
                .with_member_id(text(&generation.member_id))
                .with_topics(topics);
            let result = async {
                let response = conn.send(&request, version).await?;
                for t in &response.topics {
                    for p in &t.partitions {
                        kafka_error(
                            || {
                                format!(
                                    "commit the offset of {}-{} for group {:?}",
                                    t.name.0, p.partition_index, self.group
                                )
                            },
                            p.error_code,
                            None,
                        )?;
                    }
                }
                Ok(())
            }
            .await;
            match result {
                Err(error) if attempts < 3 && is_coordinator_retriable(&error) => {
                    self.coordinator_failed(&error);
                }
                other => return other,
            }
        }
    }

    /// Leaves the group (LeaveGroup), so the others get its partitions at once.
    pub async fn leave(&mut self) -> Result<()> {
        if self.member_id.is_empty() {
            return Ok(());
        }
        let conn = self.coordinator().await?;
        let version = conn.version::<LeaveGroupRequest>()?;
        let request = if version >= 3 {
            let mut member = MemberIdentity::default().with_member_id(text(&self.member_id));
            if version >= 5 {
                member.reason = Some(text(&format!(
                    "{} is leaving the group",
                    self.config.client_description
                )));
            }
            LeaveGroupRequest::default()
                .with_group_id(GroupId(text(&self.group)))
                .with_members(vec![member])
        } else {
            LeaveGroupRequest::default()
                .with_group_id(GroupId(text(&self.group)))
                .with_member_id(text(&self.member_id))
        };
        let response = conn.send(&request, version).await?;
        self.generation = None;
        self.member_id.clear();
        let member_error = response
            .members
            .first()
            .map_or(code::NONE, |m| m.error_code);
        for error_code in [response.error_code, member_error] {
            // Already gone is as good as left.
            if error_code != code::UNKNOWN_MEMBER_ID {
                kafka_error(|| format!("leave group {:?}", self.group), error_code, None)?;
            }
        }
        Ok(())
    }
}

fn millis(duration: Duration) -> i32 {
    duration.as_millis().min(i32::MAX as u128) as i32
}

#[cfg(test)]
mod tests {
    use super::*;

    fn subscriptions(entries: &[(&str, &[&str])]) -> BTreeMap<String, Vec<String>> {
        entries
            .iter()
            .map(|(m, ts)| (m.to_string(), ts.iter().map(|t| t.to_string()).collect()))
            .collect()
    }

    fn counts(entries: &[(&str, i32)]) -> BTreeMap<String, i32> {
        entries.iter().map(|(t, n)| (t.to_string(), *n)).collect()
    }

    fn of(
        assigned: &BTreeMap<String, BTreeMap<String, Vec<i32>>>,
        member: &str,
        topic: &str,
    ) -> Vec<i32> {
        assigned[member].get(topic).cloned().unwrap_or_default()
    }

    #[test]
    fn range_gives_consecutive_partitions_and_the_extra_ones_first() {
        let subs = subscriptions(&[("a", &["t", "u"]), ("b", &["t"]), ("c", &["t"])]);
        let assigned = Assignor::Range.assign(&subs, &counts(&[("t", 7), ("u", 2)]));
        assert_eq!(of(&assigned, "a", "t"), vec![0, 1, 2]);
        assert_eq!(of(&assigned, "b", "t"), vec![3, 4]);
        assert_eq!(of(&assigned, "c", "t"), vec![5, 6]);
        assert_eq!(of(&assigned, "a", "u"), vec![0, 1], "only a reads u");
        assert!(!assigned["b"].contains_key("u"));
    }

    #[test]
    fn round_robin_deals_partitions_to_subscribed_members_only() {
        let subs = subscriptions(&[("a", &["t"]), ("b", &["t", "u"])]);
        let assigned = Assignor::RoundRobin.assign(&subs, &counts(&[("t", 3), ("u", 2)]));
        assert_eq!(of(&assigned, "a", "t"), vec![0, 2]);
        assert_eq!(of(&assigned, "b", "t"), vec![1]);
        assert_eq!(of(&assigned, "b", "u"), vec![0, 1]);
    }

    #[test]
    fn every_partition_is_assigned_once_and_members_without_topics_get_none() {
        for assignor in [Assignor::Range, Assignor::RoundRobin] {
            let subs = subscriptions(&[("a", &["t"]), ("b", &["t"]), ("c", &["gone"])]);
            let assigned = assignor.assign(&subs, &counts(&[("t", 5)]));
            let mut all: Vec<i32> = ["a", "b", "c"]
                .iter()
                .flat_map(|m| of(&assigned, m, "t"))
                .collect();
            all.sort_unstable();
            assert_eq!(all, vec![0, 1, 2, 3, 4], "{assignor:?}");
            assert!(assigned["c"].is_empty(), "{assignor:?}");
        }
    }

    #[test]
    fn subscriptions_and_assignments_round_trip() {
        let topics = vec!["orders".to_string(), "payments".to_string()];
        let bytes = encode_subscription(&topics).expect("encode");
        assert_eq!(decode_subscription(&bytes).expect("decode"), topics);
        let mut partitions = BTreeMap::new();
        partitions.insert("orders".to_string(), vec![0, 2]);
        let bytes = encode_assignment(&partitions).expect("encode");
        assert_eq!(
            MemberAssignment::decode(PROTOCOL_TYPE, &bytes),
            MemberAssignment::Partitions(vec![("orders".to_string(), vec![0, 2])])
        );
        assert!(decode_subscription(&Bytes::from_static(&[0])).is_err());
    }
}
