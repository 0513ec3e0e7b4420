//! MirrorMaker 2's source task: reads its share of the source partitions (read_committed, so
//! aborted records and transaction markers stay behind) and hands each record to the runtime
//! for the same partition of the target topic, bytes untouched. It makes the target topics
//! (the source's partition count, its configs with `sync.topic.configs.enabled`) and, with
//! offset preservation, makes them Spate mirror topics and adds each record's source offset.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::{Duration, Instant};

use bytes::Bytes;
use rdkafka::admin::{
    AdminOptions, AlterConfig, ConfigSource, NewPartitions, NewTopic, ResourceSpecifier,
    TopicReplication,
};
use rdkafka::consumer::Consumer;
use rdkafka::error::KafkaError;
use rdkafka::message::{Headers, Message};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use serde_json::json;

use super::{MIRROR_TOPIC_CONFIG, MirrorConfig, OFFSET_PRESERVING, SOURCE_OFFSET_HEADER};
use crate::config::Props;
use crate::data::{ConnectRecord, Schema, SchemaType, Value};
use crate::plugin::{OffsetReader, SourceTask, TaskError};

/// Records handed to the runtime per poll at most.
const MAX_POLL_RECORDS: usize = 2000;
/// How long a poll waits for the first record.
const POLL_WAIT: Duration = Duration::from_millis(200);
/// How long an admin or metadata call may take.
const CALL_TIMEOUT: Duration = Duration::from_secs(30);
/// How often the records lag is measured (a ListOffsets per copied partition).
const LAG_INTERVAL: Duration = Duration::from_secs(5);
/// Partitions whose lag one measurement asks for at most.
const LAG_MAX_PARTITIONS: usize = 1000;

#[derive(Default)]
pub(crate) struct MirrorSourceTask {
    config: Option<MirrorConfig>,
    index: usize,
    count: usize,
    worker: Option<ClientConfig>,
    consumer: Option<super::RemoteConsumer>,
    source_admin: Option<super::RemoteAdmin>,
    target_admin: Option<super::RemoteAdmin>,
    /// A consumer of the target, for metadata and partition ends.
    target_probe: Option<super::RemoteConsumer>,
    /// Source partitions this task copies.
    assigned: BTreeSet<(String, i32)>,
    /// Source topics whose target topic is ready, with its partition count.
    ready: BTreeMap<String, i32>,
    /// The last copied offset of each source partition, as committed when the task started.
    committed: HashMap<(String, i32), i64>,
    /// Whether the clients are made and the first refresh done.
    connected: bool,
    next_refresh: Option<Instant>,
    next_config_sync: Option<Instant>,
    next_lag: Option<Instant>,
    lag_records: Option<u64>,
}

fn fatal(context: impl std::fmt::Display) -> impl FnOnce(KafkaError) -> TaskError {
    move |e| TaskError::fatal(format!("{context}: {e}"))
}

impl MirrorSourceTask {
    fn config(&self) -> &MirrorConfig {
        self.config.as_ref().expect("started")
    }

    /// Lists the source's topics and starts copying the partitions of this task's share that
    /// it does not copy yet, making their target topics first.
    fn refresh(&mut self) -> Result<(), TaskError> {
        let consumer = self.consumer.as_ref().expect("started");
        let metadata = consumer.fetch_metadata(None, CALL_TIMEOUT).map_err(|e| {
            TaskError::retriable(format!("listing the source cluster's topics: {e}"))
        })?;
        tracing::debug!(
            topics = metadata.topics().len(),
            "listed the source's topics"
        );
        let mut topics: Vec<(String, i32)> = metadata
            .topics()
            .iter()
            .filter(|t| t.error().is_none() && self.config().mirrors_topic(t.name()))
            .map(|t| (t.name().to_string(), t.partitions().len() as i32))
            .collect();
        topics.sort();
        // Topics deleted on the source stop being copied (a topic listed with an error may be
        // passing trouble, and stays); their target topics stay, as MM2 leaves them.
        let listed: BTreeSet<&str> = metadata.topics().iter().map(|t| t.name()).collect();
        let gone: Vec<(String, i32)> = self
            .assigned
            .iter()
            .filter(|(t, _)| !listed.contains(t.as_str()))
            .cloned()
            .collect();
        if !gone.is_empty() {
            let mut list = TopicPartitionList::new();
            for (topic, partition) in &gone {
                list.add_partition(topic, *partition);
            }
            consumer
                .incremental_unassign(&list)
                .map_err(fatal("unassigning source partitions"))?;
            tracing::info!(
                partitions = gone.len(),
                "stopped mirroring partitions of topics gone from the source"
            );
            for key in &gone {
                self.assigned.remove(key);
                self.ready.remove(&key.0);
                // A topic made again under the name is a new topic: it starts from its
                // beginning (or, preserving offsets, from the target's end).
                self.committed.remove(key);
            }
        }
        let mut assignment = TopicPartitionList::new();
        let mut added = Vec::new();
        for (topic, partitions) in topics {
            if partitions == 0 {
                continue;
            }
            if self
                .ready
                .get(&topic)
                .is_none_or(|&known| known < partitions)
            {
                self.prepare_target(&topic, partitions)?;
                self.ready.insert(topic.clone(), partitions);
            }
            for partition in 0..partitions {
                if super::owner(&topic, partition, self.count) != self.index
                    || self.assigned.contains(&(topic.clone(), partition))
                {
                    continue;
                }
                let start = self.start_offset(&topic, partition)?;
                assignment
                    .add_partition_offset(&topic, partition, start)
                    .map_err(fatal("assigning source partitions"))?;
                added.push((topic.clone(), partition));
            }
        }
        if assignment.count() > 0 {
            tracing::info!(
                partitions = assignment.count(),
                "mirroring source partitions"
            );
            consumer
                .incremental_assign(&assignment)
                .map_err(fatal("assigning source partitions"))?;
            // Only now: a refresh that failed half-way assigns its partitions next time.
            self.assigned.extend(added);
        }
        Ok(())
    }

    /// Where to start copying a partition: after the last committed offset (MM2 stores the
    /// offset of the last record copied), else the beginning; with offset preservation, not
    /// before the target's end, since everything below it is already there.
    fn start_offset(&self, topic: &str, partition: i32) -> Result<Offset, TaskError> {
        let config = self.config();
        let committed = self
            .committed
            .get(&(topic.to_string(), partition))
            .map(|last| last + 1);
        if !config.offset_preserving {
            return Ok(committed.map_or(Offset::Beginning, Offset::Offset));
        }
        let target = config.policy.target_topic(topic);
        let (_, target_end) = self
            .target_probe
            .as_ref()
            .expect("started")
            .fetch_watermarks(&target, partition, CALL_TIMEOUT)
            .map_err(|e| {
                TaskError::retriable(format!(
                    "reading the end of {target}-{partition} on the target: {e}"
                ))
            })?;
        let start = committed.unwrap_or(0).max(target_end);
        Ok(if start == 0 {
            Offset::Beginning
        } else {
            Offset::Offset(start)
        })
    }

    /// Makes the target topic of `topic` with `partitions` partitions (or adds partitions to
    /// it), and with offset preservation checks that it is a Spate mirror topic.
    fn prepare_target(&self, topic: &str, partitions: i32) -> Result<(), TaskError> {
        let config = self.config();
        let target = config.policy.target_topic(topic);
        let admin = self.target_admin.as_ref().expect("started");
        let options = AdminOptions::new().operation_timeout(Some(CALL_TIMEOUT));
        let synced = if config.sync_topic_configs {
            self.source_topic_configs(topic)?
        } else {
            Vec::new()
        };
        let mut new = NewTopic::new(
            &target,
            partitions,
            TopicReplication::Fixed(config.replication_factor),
        );
        for (name, value) in &synced {
            new = new.set(name, value);
        }
        if config.offset_preserving {
            new = new.set(MIRROR_TOPIC_CONFIG, "preserve");
        }
        tracing::debug!(topic = %target, "creating the target topic");
        let results = super::block_on(admin.create_topics([&new], &options))
            .map_err(fatal(format!("creating {target} on the target")))?;
        for result in results {
            match result {
                Ok(_) => {
                    tracing::info!(topic = %target, partitions, "created the mirror's target topic");
                    return Ok(());
                }
                Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
                Err((_, RDKafkaErrorCode::InvalidConfig)) if config.offset_preserving => {
                    return Err(TaskError::fatal(format!(
                        "the target cluster refused topic {target} with {MIRROR_TOPIC_CONFIG}=preserve: it cannot place records at their source offsets (only Spate can); set {OFFSET_PRESERVING}=false to mirror with new offsets"
                    )));
                }
                Err((_, RDKafkaErrorCode::InvalidReplicationFactor)) => {
                    return Err(TaskError::fatal(format!(
                        "the target cluster refused topic {target} with replication.factor={} (MirrorMaker 2's default is 2); set replication.factor to what the target has, -1 for its default",
                        config.replication_factor
                    )));
                }
                Err((_, code)) => {
                    return Err(TaskError::retriable(format!(
                        "creating {target} on the target: {code}"
                    )));
                }
            }
        }
        // The topic exists: it gets the source's partition count, and must be a mirror topic.
        tracing::debug!(topic = %target, "the target topic exists");
        let probe = self.target_probe.as_ref().expect("started");
        let metadata = probe
            .fetch_metadata(Some(&target), CALL_TIMEOUT)
            .map_err(|e| TaskError::retriable(format!("describing {target} on the target: {e}")))?;
        let existing = metadata
            .topics()
            .first()
            .map_or(0, |t| t.partitions().len() as i32);
        if existing < partitions {
            let grow = NewPartitions::new(&target, partitions as usize);
            let results = super::block_on(admin.create_partitions([&grow], &options))
                .map_err(fatal(format!("adding partitions to {target}")))?;
            // Another task may have grown it first (INVALID_PARTITIONS then): what counts is
            // that the target has them, and that this task's clients know it.
            let refused = results
                .into_iter()
                .find_map(Result::err)
                .map(|(_, code)| code);
            let deadline = Instant::now() + CALL_TIMEOUT;
            loop {
                let seen = probe
                    .fetch_metadata(Some(&target), CALL_TIMEOUT)
                    .ok()
                    .and_then(|m| m.topics().first().map(|t| t.partitions().len() as i32))
                    .unwrap_or(0);
                if seen >= partitions {
                    break;
                }
                if Instant::now() >= deadline {
                    return Err(TaskError::retriable(format!(
                        "adding partitions to {target} on the target: it has {seen} of {partitions}{}",
                        refused.map(|c| format!(" ({c})")).unwrap_or_default()
                    )));
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            tracing::info!(topic = %target, partitions, "grew the mirror's target topic");
        }
        if config.offset_preserving {
            tracing::debug!(topic = %target, "checking the target topic is a mirror topic");
            let described = super::block_on(
                admin.describe_configs([&ResourceSpecifier::Topic(&target)], &options),
            )
            .map_err(fatal(format!("describing {target}'s configs")))?;
            let value = described
                .into_iter()
                .next()
                .and_then(Result::ok)
                .and_then(|r| r.get(MIRROR_TOPIC_CONFIG).and_then(|e| e.value.clone()));
            match value.as_deref() {
                Some("preserve") => {}
                Some(other) => {
                    return Err(TaskError::fatal(format!(
                        "target topic {target} exists and is not a mirror topic ({MIRROR_TOPIC_CONFIG}={other}); offsets can be preserved only in a topic the mirror made: delete it, or mirror under another name"
                    )));
                }
                None => {
                    return Err(TaskError::fatal(format!(
                        "the target cluster has no {MIRROR_TOPIC_CONFIG} topic config: it cannot place records at their source offsets (only Spate can); set {OFFSET_PRESERVING}=false to mirror with new offsets"
                    )));
                }
            }
        }
        Ok(())
    }

    /// Sets each mirrored topic's configs on the target to the source's where they differ
    /// (MM2's `sync.topic.configs.*`); task 0 does it for all. AlterConfigs replaces a topic's
    /// whole set, so the mirror marker goes with it.
    fn sync_topic_configs(&self) -> Result<(), TaskError> {
        let config = self.config();
        let admin = self.target_admin.as_ref().expect("connected");
        let options = AdminOptions::new().operation_timeout(Some(CALL_TIMEOUT));
        for topic in self.ready.keys() {
            let mut wanted = self.source_topic_configs(topic)?;
            if config.offset_preserving {
                wanted.push((MIRROR_TOPIC_CONFIG.to_string(), "preserve".to_string()));
            }
            wanted.sort();
            let target = config.policy.target_topic(topic);
            let described = super::block_on(
                admin.describe_configs([&ResourceSpecifier::Topic(&target)], &options),
            )
            .map_err(|e| TaskError::retriable(format!("describing {target}'s configs: {e}")))?;
            let Some(Ok(resource)) = described.into_iter().next() else {
                continue;
            };
            let mut current: Vec<(String, String)> = resource
                .entries
                .into_iter()
                .filter(|e| e.source == ConfigSource::DynamicTopic)
                .filter_map(|e| e.value.map(|v| (e.name, v)))
                .collect();
            current.sort();
            if current == wanted {
                continue;
            }
            let mut alter = AlterConfig::new(ResourceSpecifier::Topic(&target));
            for (name, value) in &wanted {
                alter = alter.set(name, value);
            }
            let results = super::block_on(admin.alter_configs([&alter], &options))
                .map_err(|e| TaskError::retriable(format!("configuring {target}: {e}")))?;
            match results.into_iter().next() {
                Some(Err((_, code))) => {
                    tracing::warn!(topic = %target, "syncing the topic's configs failed: {code}");
                }
                _ => tracing::info!(topic = %target, "synced the topic's configs from the source"),
            }
        }
        Ok(())
    }

    /// The source topic's configs set on the topic itself, minus those MM2 never copies.
    fn source_topic_configs(&self, topic: &str) -> Result<Vec<(String, String)>, TaskError> {
        let admin = self.source_admin.as_ref().expect("started");
        let options = AdminOptions::new().operation_timeout(Some(CALL_TIMEOUT));
        let described =
            super::block_on(admin.describe_configs([&ResourceSpecifier::Topic(topic)], &options))
                .map_err(fatal(format!("describing {topic}'s configs on the source")))?;
        let Some(Ok(resource)) = described.into_iter().next() else {
            return Ok(Vec::new());
        };
        Ok(resource
            .entries
            .into_iter()
            .filter(|e| {
                e.source == ConfigSource::DynamicTopic
                    && !e.is_sensitive
                    && !super::CONFIGS_NOT_SYNCED.contains(&e.name.as_str())
            })
            .filter_map(|e| e.value.map(|v| (e.name, v)))
            .collect())
    }

    /// Makes the clients and starts copying (in the first poll: `start` holds the worker's
    /// state lock and must not wait on the network).
    fn connect(&mut self) -> Result<(), TaskError> {
        let config = self.config().clone();
        if self.consumer.is_none() {
            self.make_clients(&config)?;
        }
        self.refresh()?;
        self.next_refresh = config
            .refresh_topics
            .then(|| Instant::now() + config.refresh_interval);
        self.connected = true;
        Ok(())
    }

    fn make_clients(&mut self, config: &MirrorConfig) -> Result<(), TaskError> {
        let mut source = config.source_client();
        source
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("isolation.level", "read_committed")
            .set("auto.offset.reset", "earliest")
            .set("enable.partition.eof", "false")
            .set(
                "client.id",
                format!("mirror-source-{}-{}", config.source_alias, self.index),
            );
        // librdkafka wants a group for a consumer, even one that only assigns; it never joins.
        source.set(
            "group.id",
            format!(
                "spate-mirror-{}-{}",
                config.source_alias, config.target_alias
            ),
        );
        self.consumer = Some(
            source
                .create_with_context(super::Remote("source"))
                .map_err(fatal("creating the source consumer"))?,
        );
        self.source_admin = Some(
            config
                .source_client()
                .create_with_context(super::Remote("source"))
                .map_err(fatal("creating the source admin client"))?,
        );
        let target = config.target_client(self.worker.as_ref());
        self.target_admin = Some(
            target
                .create_with_context(super::Remote("target"))
                .map_err(fatal("creating the target admin client"))?,
        );
        self.target_probe = Some(
            target
                .clone()
                .set("enable.auto.commit", "false")
                .set("group.id", "spate-mirror-probe")
                .create_with_context(super::Remote("target"))
                .map_err(fatal("creating the target client"))?,
        );
        Ok(())
    }

    fn record(&self, message: &rdkafka::message::BorrowedMessage<'_>) -> ConnectRecord {
        let config = self.config();
        let topic = message.topic();
        let bytes =
            |b: Option<&[u8]>| b.map_or(Value::Null, |b| Value::Bytes(Bytes::copy_from_slice(b)));
        let mut record = ConnectRecord::new(
            &config.policy.target_topic(topic),
            Some(Schema::optional(SchemaType::Bytes).into()),
            bytes(message.payload()),
        );
        record.key_schema = Some(Schema::optional(SchemaType::Bytes).into());
        record.key = bytes(message.key());
        record.partition = Some(message.partition());
        record.timestamp_ms = message.timestamp().to_millis();
        if let Some(headers) = message.headers() {
            record.headers = headers
                .iter()
                .map(|h| (h.key.to_string(), h.value.map(Bytes::copy_from_slice)))
                .collect();
        }
        if config.offset_preserving {
            record.headers.push((
                SOURCE_OFFSET_HEADER.to_string(),
                Some(Bytes::copy_from_slice(&message.offset().to_be_bytes())),
            ));
        }
        record.source_partition = Some(json!({
            "cluster": config.source_alias,
            "topic": topic,
            "partition": message.partition(),
        }));
        record.source_offset = Some(json!({ "offset": message.offset() }));
        record
    }

    /// Sums, over the copied partitions, the source's end minus the next offset to copy.
    fn measure_lag(&mut self) {
        let Some(consumer) = self.consumer.as_ref() else {
            return;
        };
        let Ok(positions) = consumer.position() else {
            return;
        };
        let mut lag = 0u64;
        for element in positions.elements().into_iter().take(LAG_MAX_PARTITIONS) {
            let Ok((_, high)) = consumer.fetch_watermarks(
                element.topic(),
                element.partition(),
                Duration::from_secs(1),
            ) else {
                continue;
            };
            let next = match element.offset() {
                Offset::Offset(n) => n,
                _ => continue,
            };
            lag += u64::try_from(high - next).unwrap_or(0);
        }
        self.lag_records = Some(lag);
    }
}

impl SourceTask for MirrorSourceTask {
    fn target_cluster(&mut self, client: ClientConfig) {
        self.worker = Some(client);
    }

    fn start(&mut self, props: &Props, offsets: &dyn OffsetReader) -> Result<(), TaskError> {
        let config = super::parse(props)
            .map_err(|problems| TaskError::fatal(crate::config::describe(&problems)))?;
        (self.index, self.count) = super::share(props);
        // MM2's source partitions: {"cluster", "topic", "partition"} → {"offset"}.
        for (partition, offset) in offsets.all() {
            let (Some(cluster), Some(topic), Some(p), Some(offset)) = (
                partition.get("cluster").and_then(serde_json::Value::as_str),
                partition.get("topic").and_then(serde_json::Value::as_str),
                partition
                    .get("partition")
                    .and_then(serde_json::Value::as_i64),
                offset.get("offset").and_then(serde_json::Value::as_i64),
            ) else {
                continue;
            };
            if cluster == config.source_alias {
                self.committed
                    .insert((topic.to_string(), i32::try_from(p).unwrap_or(-1)), offset);
            }
        }
        self.config = Some(config);
        Ok(())
    }

    fn poll(&mut self) -> Result<Vec<ConnectRecord>, TaskError> {
        if !self.connected {
            match self.connect() {
                Ok(()) => {}
                // A cluster that is away now may be back soon: try again at the next poll
                // (the calls wait up to their timeout, so this does not spin).
                Err(e) if e.retriable => {
                    tracing::warn!("the mirror cannot start yet, trying again: {}", e.message);
                    return Ok(Vec::new());
                }
                Err(e) => return Err(e),
            }
        }
        if let Some(due) = self.next_refresh
            && Instant::now() >= due
        {
            self.next_refresh = Some(Instant::now() + self.config().refresh_interval);
            if let Err(e) = self.refresh() {
                if !e.retriable {
                    return Err(e);
                }
                tracing::warn!(
                    "refreshing the mirrored topics failed, trying again later: {}",
                    e.message
                );
            }
        }
        if self.config().sync_topic_configs
            && self.index == 0
            && self
                .next_config_sync
                .is_none_or(|due| Instant::now() >= due)
        {
            self.next_config_sync =
                Some(Instant::now() + self.config().sync_topic_configs_interval);
            if let Err(e) = self.sync_topic_configs() {
                tracing::warn!(
                    "syncing topic configs failed, trying again later: {}",
                    e.message
                );
            }
        }
        if self.next_lag.is_none_or(|due| Instant::now() >= due) {
            self.measure_lag();
            self.next_lag = Some(Instant::now() + LAG_INTERVAL);
        }
        let mut records = Vec::new();
        let mut wait = POLL_WAIT;
        while records.len() < MAX_POLL_RECORDS {
            let consumer = self.consumer.as_ref().expect("started");
            let Some(polled) = consumer.poll(wait) else {
                break;
            };
            wait = Duration::ZERO;
            match polled {
                Ok(message) => records.push(self.record(&message)),
                Err(KafkaError::PartitionEOF(_)) => {}
                // The source may be briefly unreachable; librdkafka reconnects by itself.
                Err(e) => {
                    tracing::warn!("reading the source cluster: {e}");
                    break;
                }
            }
        }
        Ok(records)
    }

    fn idle_wait(&self) -> Duration {
        Duration::ZERO
    }

    fn lag_records(&self) -> Option<u64> {
        self.lag_records
    }

    fn stop(&mut self) {
        self.consumer = None;
        self.source_admin = None;
        self.target_admin = None;
        self.target_probe = None;
    }
}
