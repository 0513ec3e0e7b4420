//! MirrorMaker 2's checkpoint task: for its share of the source's consumer groups, reads their
//! committed offsets on mirrored topics and translates them to the target. Spate translates
//! only offset-preserving mirror topics (`spate.mirror.offsets=preserve` on the target), where a
//! source offset is the same record's target offset; topics mirrored with new offsets would
//! need MM2's offset-sync topic, which Spate does not write, and are skipped with a warning.
//!
//! A translated offset is capped at the target partition's end: a group may have committed
//! past a transaction marker (or an aborted batch) that is the source's last offset, which the
//! mirror does not copy, and a group placed beyond the end would fail with
//! OFFSET_OUT_OF_RANGE and reset. Below the end every offset means the same record on both
//! sides, so the cap loses nothing and re-reads nothing once the mirror has caught up.
//!
//! Each interval it emits MM2's checkpoint records to `<source alias>.checkpoints.internal`
//! (`emit.checkpoints.enabled`) and, with `sync.group.offsets.enabled`, commits the offsets for
//! the group on the target, as MM2 does: only for groups with no active members there (Kafka
//! refuses commits from outside a live group) and only forward.

use std::collections::{BTreeSet, HashMap};
use std::time::{Duration, Instant};

use bytes::{BufMut, Bytes, BytesMut};
use rdkafka::admin::{AdminOptions, NewTopic, ResourceSpecifier, TopicReplication};
use rdkafka::consumer::{CommitMode, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use serde_json::json;

use super::{MIRROR_TOPIC_CONFIG, MirrorConfig, OFFSET_PRESERVING};
use crate::config::Props;
use crate::data::{ConnectRecord, Schema, SchemaType, Value};
use crate::plugin::{OffsetReader, SourceTask, TaskError};

const CALL_TIMEOUT: Duration = Duration::from_secs(30);
/// Groups whose clients are kept between passes at most (one librdkafka client per group and
/// side); past it the cache starts over.
const MAX_CACHED_GROUPS: usize = 64;

/// One group's translated offset for one partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Checkpoint {
    pub group: String,
    /// The target topic.
    pub topic: String,
    pub partition: i32,
    pub upstream_offset: i64,
    pub downstream_offset: i64,
    pub metadata: String,
}

fn put_string(buf: &mut BytesMut, s: &str) {
    // Kafka's protocol STRING: int16 length, UTF-8.
    let bytes = s.as_bytes();
    let len = bytes.len().min(i16::MAX as usize);
    buf.put_i16(len as i16);
    buf.put_slice(&bytes[..len]);
}

impl Checkpoint {
    /// MM2's key: group, topic (STRING), partition (INT32), in Kafka's protocol encoding.
    pub(crate) fn key(&self) -> Bytes {
        let mut buf = BytesMut::new();
        put_string(&mut buf, &self.group);
        put_string(&mut buf, &self.topic);
        buf.put_i32(self.partition);
        buf.freeze()
    }

    /// MM2's value: a version header (INT16 0), then upstreamOffset, offset (INT64) and
    /// metadata (STRING).
    pub(crate) fn value(&self) -> Bytes {
        let mut buf = BytesMut::new();
        buf.put_i16(0);
        buf.put_i64(self.upstream_offset);
        buf.put_i64(self.downstream_offset);
        put_string(&mut buf, &self.metadata);
        buf.freeze()
    }
}

#[derive(Default)]
pub(crate) struct MirrorCheckpointTask {
    config: Option<MirrorConfig>,
    index: usize,
    count: usize,
    worker: Option<ClientConfig>,
    target: Option<ClientConfig>,
    source_probe: Option<super::RemoteConsumer>,
    target_probe: Option<super::RemoteConsumer>,
    target_admin: Option<super::RemoteAdmin>,
    /// Per group, its client on the source and on the target.
    groups: HashMap<String, (super::RemoteConsumer, super::RemoteConsumer)>,
    /// Target topics and whether they preserve offsets.
    preserving: HashMap<String, bool>,
    warned: BTreeSet<String>,
    next_emit: Option<Instant>,
    next_sync: Option<Instant>,
}

fn fatal(context: impl std::fmt::Display) -> impl FnOnce(KafkaError) -> TaskError {
    move |e| TaskError::fatal(format!("{context}: {e}"))
}

impl MirrorCheckpointTask {
    fn config(&self) -> &MirrorConfig {
        self.config.as_ref().expect("started")
    }

    fn group_clients(
        &mut self,
        group: &str,
    ) -> Result<&(super::RemoteConsumer, super::RemoteConsumer), TaskError> {
        if !self.groups.contains_key(group) {
            if self.groups.len() >= MAX_CACHED_GROUPS {
                self.groups.clear();
            }
            let make = |mut config: ClientConfig,
                        side: &'static str|
             -> Result<super::RemoteConsumer, TaskError> {
                config
                    .set("group.id", group)
                    .set("enable.auto.commit", "false")
                    .set("client.id", format!("mirror-checkpoint-{side}"))
                    .create_with_context(super::Remote(side))
                    .map_err(fatal(format!("creating a {side} client for group {group}")))
            };
            let source = make(self.config().source_client(), "source")?;
            let target = make(self.target.clone().expect("started"), "target")?;
            self.groups.insert(group.to_string(), (source, target));
        }
        Ok(self.groups.get(group).expect("just inserted"))
    }

    /// Whether target topic `topic` is an offset-preserving mirror topic (`None`: it does not
    /// exist yet).
    fn preserves(&mut self, topic: &str) -> Option<bool> {
        if let Some(&known) = self.preserving.get(topic) {
            return Some(known);
        }
        let admin = self.target_admin.as_ref().expect("started");
        let options = AdminOptions::new().operation_timeout(Some(CALL_TIMEOUT));
        let described =
            super::block_on(admin.describe_configs([&ResourceSpecifier::Topic(topic)], &options))
                .ok()?;
        let resource = described.into_iter().next()?.ok()?;
        let preserving = resource
            .get(MIRROR_TOPIC_CONFIG)
            .and_then(|e| e.value.as_deref())
            == Some("preserve");
        self.preserving.insert(topic.to_string(), preserving);
        Some(preserving)
    }

    /// Translates the committed offsets of this task's groups.
    fn checkpoints(&mut self) -> Result<Vec<Checkpoint>, TaskError> {
        let source_probe = self.source_probe.as_ref().expect("started");
        let groups = source_probe
            .fetch_group_list(None, CALL_TIMEOUT)
            .map_err(|e| TaskError::retriable(format!("listing the source's groups: {e}")))?;
        let mut names: Vec<String> = groups
            .groups()
            .iter()
            .map(|g| g.name().to_string())
            .filter(|g| {
                self.config().mirrors_group(g) && super::owner(g, 0, self.count) == self.index
            })
            .collect();
        names.sort();
        let metadata = source_probe
            .fetch_metadata(None, CALL_TIMEOUT)
            .map_err(|e| TaskError::retriable(format!("listing the source's topics: {e}")))?;
        let mut partitions = TopicPartitionList::new();
        for topic in metadata.topics() {
            if topic.error().is_some() || !self.config().mirrors_topic(topic.name()) {
                continue;
            }
            for p in topic.partitions() {
                partitions.add_partition(topic.name(), p.id());
            }
        }
        let mut out = Vec::new();
        if partitions.count() == 0 {
            return Ok(out);
        }
        for group in names {
            let committed = {
                let (source, _) = self.group_clients(&group)?;
                match source.committed_offsets(partitions.clone(), CALL_TIMEOUT) {
                    Ok(committed) => committed,
                    Err(e) => {
                        tracing::warn!(%group, "reading the group's offsets on the source: {e}");
                        continue;
                    }
                }
            };
            for element in committed.elements() {
                let Offset::Offset(upstream) = element.offset() else {
                    continue;
                };
                let target_topic = self.config().policy.target_topic(element.topic());
                match self.preserves(&target_topic) {
                    None => continue,
                    Some(false) => {
                        if self.warned.insert(target_topic.clone()) {
                            tracing::warn!(
                                topic = %target_topic,
                                "not translating group offsets for a topic mirrored without {OFFSET_PRESERVING}=true: its offsets differ from the source's"
                            );
                        }
                        continue;
                    }
                    Some(true) => {}
                }
                let (_, end) = match self
                    .target_probe
                    .as_ref()
                    .expect("started")
                    .fetch_watermarks(&target_topic, element.partition(), CALL_TIMEOUT)
                {
                    Ok(watermarks) => watermarks,
                    Err(e) => {
                        tracing::debug!(topic = %target_topic, "reading the target's end: {e}");
                        continue;
                    }
                };
                out.push(Checkpoint {
                    group: group.clone(),
                    topic: target_topic,
                    partition: element.partition(),
                    upstream_offset: upstream,
                    downstream_offset: upstream.min(end),
                    metadata: element.metadata().to_string(),
                });
            }
        }
        Ok(out)
    }

    /// Commits the checkpoints for their groups on the target: groups without active members
    /// there, partitions whose target offset is behind.
    fn sync(&mut self, checkpoints: &[Checkpoint]) -> Result<(), TaskError> {
        let mut by_group: HashMap<&str, Vec<&Checkpoint>> = HashMap::new();
        for c in checkpoints {
            by_group.entry(&c.group).or_default().push(c);
        }
        for (group, checkpoints) in by_group {
            let described = self
                .target_probe
                .as_ref()
                .expect("started")
                .fetch_group_list(Some(group), CALL_TIMEOUT);
            let active = match described {
                Ok(list) => list
                    .groups()
                    .iter()
                    .any(|g| g.name() == group && !g.members().is_empty()),
                Err(e) => {
                    tracing::warn!(%group, "describing the group on the target: {e}");
                    continue;
                }
            };
            if active {
                tracing::debug!(%group, "not syncing offsets of a group with members on the target");
                continue;
            }
            let mut wanted = TopicPartitionList::new();
            for c in &checkpoints {
                wanted.add_partition(&c.topic, c.partition);
            }
            let (_, target) = self.group_clients(group)?;
            let current = match target.committed_offsets(wanted, CALL_TIMEOUT) {
                Ok(current) => current,
                Err(e) => {
                    tracing::warn!(%group, "reading the group's offsets on the target: {e}");
                    continue;
                }
            };
            let mut commit = TopicPartitionList::new();
            for c in &checkpoints {
                let behind = match current
                    .find_partition(&c.topic, c.partition)
                    .map(|e| e.offset())
                {
                    Some(Offset::Offset(at)) => at < c.downstream_offset,
                    _ => true,
                };
                if behind {
                    commit
                        .add_partition_offset(
                            &c.topic,
                            c.partition,
                            Offset::Offset(c.downstream_offset),
                        )
                        .map_err(fatal("building a commit"))?;
                }
            }
            if commit.count() == 0 {
                continue;
            }
            match target.commit(&commit, CommitMode::Sync) {
                Ok(()) => {
                    tracing::info!(%group, partitions = commit.count(), "synced group offsets to the target")
                }
                // A member joined between the check and the commit: the next pass tries again.
                Err(e) => {
                    tracing::warn!(%group, "committing the group's offsets on the target: {e}")
                }
            }
        }
        Ok(())
    }

    /// Makes the clients and the checkpoints topic (in the first poll: `start` holds the
    /// worker's state lock and must not wait on the network).
    fn connect(&mut self) -> Result<(), TaskError> {
        let config = self.config().clone();
        let target = config.target_client(self.worker.as_ref());
        let probe =
            |mut c: ClientConfig, side: &'static str| -> Result<super::RemoteConsumer, TaskError> {
                c.set("group.id", "spate-mirror-probe")
                    .set("enable.auto.commit", "false")
                    .create_with_context(super::Remote(side))
                    .map_err(fatal(format!("creating the {side} client")))
            };
        self.source_probe = Some(probe(config.source_client(), "source")?);
        self.target_probe = Some(probe(target.clone(), "target")?);
        let admin: super::RemoteAdmin = target
            .create_with_context(super::Remote("target"))
            .map_err(fatal("creating the target admin client"))?;
        if config.emit_checkpoints && self.index == 0 {
            let topic = config.checkpoints_topic();
            let new = NewTopic::new(
                &topic,
                1,
                TopicReplication::Fixed(config.checkpoints_replication_factor),
            )
            .set("cleanup.policy", "compact");
            let options = AdminOptions::new().operation_timeout(Some(CALL_TIMEOUT));
            let results = super::block_on(admin.create_topics([&new], &options))
                .map_err(fatal(format!("creating {topic}")))?;
            for result in results {
                match result {
                    Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
                    Err((_, code)) => {
                        return Err(TaskError::fatal(format!(
                            "creating {topic} on the target: {code} (checkpoints.topic.replication.factor is {}; -1 takes the target's default)",
                            config.checkpoints_replication_factor
                        )));
                    }
                }
            }
        }
        self.target_admin = Some(admin);
        self.target = Some(target);
        Ok(())
    }

    fn record(&self, checkpoint: &Checkpoint) -> ConnectRecord {
        let bytes_schema = Some(std::sync::Arc::new(Schema::optional(SchemaType::Bytes)));
        let mut record = ConnectRecord::new(
            &self.config().checkpoints_topic(),
            bytes_schema.clone(),
            Value::Bytes(checkpoint.value()),
        );
        record.key_schema = bytes_schema;
        record.key = Value::Bytes(checkpoint.key());
        record.partition = Some(0);
        record.source_partition = Some(json!({
            "group": checkpoint.group,
            "topic": checkpoint.topic,
            "partition": checkpoint.partition,
        }));
        record.source_offset = Some(json!({ "offset": 0 }));
        record
    }
}

impl SourceTask for MirrorCheckpointTask {
    fn target_cluster(&mut self, client: ClientConfig) {
        self.worker = Some(client);
    }

    fn start(&mut self, props: &Props, _offsets: &dyn OffsetReader) -> Result<(), TaskError> {
        let config = super::parse(props)
            .map_err(|problems| TaskError::fatal(crate::config::describe(&problems)))?;
        (self.index, self.count) = super::share(props);
        self.config = Some(config);
        Ok(())
    }

    fn poll(&mut self) -> Result<Vec<ConnectRecord>, TaskError> {
        if self.target.is_none() {
            self.connect()?;
        }
        let now = Instant::now();
        let config = self.config();
        let emit_due = config.emit_checkpoints && self.next_emit.is_none_or(|due| now >= due);
        let sync_due = config.sync_group_offsets && self.next_sync.is_none_or(|due| now >= due);
        if !emit_due && !sync_due {
            return Ok(Vec::new());
        }
        let (emit_every, sync_every) = (
            config.emit_checkpoints_interval,
            config.sync_group_offsets_interval,
        );
        let checkpoints = match self.checkpoints() {
            Ok(checkpoints) => checkpoints,
            // A cluster that is away now may be back by the next interval.
            Err(e) if e.retriable => {
                tracing::warn!(
                    "translating group offsets failed, trying again: {}",
                    e.message
                );
                self.next_emit = Some(now + emit_every);
                self.next_sync = Some(now + sync_every);
                return Ok(Vec::new());
            }
            Err(e) => return Err(e),
        };
        if sync_due {
            self.sync(&checkpoints)?;
            self.next_sync = Some(now + sync_every);
        }
        if emit_due {
            self.next_emit = Some(now + emit_every);
            return Ok(checkpoints.iter().map(|c| self.record(c)).collect());
        }
        Ok(Vec::new())
    }

    fn stop(&mut self) {
        self.groups.clear();
        self.source_probe = None;
        self.target_probe = None;
        self.target_admin = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checkpoint_records_are_in_mm2s_format() {
        let checkpoint = Checkpoint {
            group: "g".into(),
            topic: "a.t".into(),
            partition: 2,
            upstream_offset: 7,
            downstream_offset: 6,
            metadata: "".into(),
        };
        assert_eq!(
            checkpoint.key().as_ref(),
            [0, 1, b'g', 0, 3, b'a', b'.', b't', 0, 0, 0, 2]
        );
        assert_eq!(
            checkpoint.value().as_ref(),
            // Version 0, upstream 7, downstream 6, empty metadata.
            [0, 0, 0, 0, 0, 0, 0, 0, 0, 7, 0, 0, 0, 0, 0, 0, 0, 6, 0, 0]
        );
    }
}
