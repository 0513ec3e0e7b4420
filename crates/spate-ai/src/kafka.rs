//! The AI pillar's Kafka client pieces (librdkafka, as the other pillars use): how to reach the
//! cluster, topics made and removed, a compacted topic read back to its end. Blocking: call
//! from a thread of its own or `spawn_blocking`.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};

/// The largest record the pillar writes (a long document's chunks with their vectors).
pub const LARGE_RECORD_BYTES: &str = "67108864";

/// How to reach the cluster.
#[derive(Debug, Clone, Default)]
pub struct Cluster {
    /// `bootstrap.servers`.
    pub bootstrap: String,
    /// Further librdkafka settings (security).
    pub client: Vec<(String, String)>,
}

/// A librdkafka config reaching `cluster`.
pub fn config(cluster: &Cluster) -> ClientConfig {
    let mut config = ClientConfig::new();
    config.set("bootstrap.servers", &cluster.bootstrap);
    for (k, v) in &cluster.client {
        config.set(k, v);
    }
    config
}

/// A consumer's config: group `group` (never committed to: offsets live in changelogs).
pub fn consumer(cluster: &Cluster, group: &str) -> ClientConfig {
    let mut c = config(cluster);
    c.set("group.id", group)
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "earliest")
        .set("receive.message.max.bytes", "134218240")
        .set("fetch.max.bytes", "134217728");
    c
}

/// A consumer context that logs librdkafka's errors as warnings, once each, and stays quiet
/// about reaching a partition's end.
pub struct Quiet;

impl rdkafka::ClientContext for Quiet {
    fn error(&self, error: KafkaError, reason: &str) {
        match error {
            KafkaError::PartitionEOF(_) | KafkaError::Global(RDKafkaErrorCode::PartitionEOF) => {}
            e => tracing::warn!("librdkafka: {e}: {reason}"),
        }
    }
}

impl ConsumerContext for Quiet {}

/// Maps a Kafka error to the pillar's error text, saying what was being done.
pub fn error(what: &str) -> impl Fn(KafkaError) -> String + '_ {
    move |e| format!("{what}: {e}")
}

/// Milliseconds since the epoch.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

fn admin(cluster: &Cluster) -> Result<AdminClient<DefaultClientContext>, String> {
    config(cluster)
        .create()
        .map_err(error("creating the admin client"))
}

fn options() -> AdminOptions {
    AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)))
}

/// Creates `topic` (one partition, `configs`) unless it exists.
pub fn create_topic(
    cluster: &Cluster,
    topic: &str,
    configs: &[(&str, &str)],
) -> Result<(), String> {
    let admin = admin(cluster)?;
    let mut new = NewTopic::new(topic, 1, TopicReplication::Fixed(1));
    for (key, value) in configs {
        new = new.set(key, value);
    }
    let results = futures::executor::block_on(admin.create_topics([&new], &options()))
        .map_err(error("creating a topic"))?;
    for result in results {
        match result {
            Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((t, code)) => return Err(format!("creating topic {t}: {code}")),
        }
    }
    Ok(())
}

/// Deletes `topic` (gone already is fine).
pub fn delete_topic(cluster: &Cluster, topic: &str) -> Result<(), String> {
    let admin = admin(cluster)?;
    let results = futures::executor::block_on(admin.delete_topics(&[topic], &options()))
        .map_err(error("deleting a topic"))?;
    for result in results {
        match result {
            Ok(_) | Err((_, RDKafkaErrorCode::UnknownTopicOrPartition)) => {}
            Err((t, code)) => return Err(format!("deleting topic {t}: {code}")),
        }
    }
    Ok(())
}

/// The partitions of `topic`; an error naming it when it does not exist.
pub fn partitions<C: ConsumerContext>(
    consumer: &BaseConsumer<C>,
    topic: &str,
) -> Result<Vec<i32>, String> {
    let metadata = consumer
        .fetch_metadata(Some(topic), Duration::from_secs(10))
        .map_err(error("reading the topic's metadata"))?;
    let partitions: Vec<i32> = metadata
        .topics()
        .iter()
        .filter(|t| t.error().is_none())
        .flat_map(|t| t.partitions().iter().map(|p| p.id()))
        .collect();
    if partitions.is_empty() {
        return Err(format!("the topic `{topic}` does not exist"));
    }
    Ok(partitions)
}

/// Whether `topic` exists.
pub fn topic_exists(cluster: &Cluster, topic: &str) -> Result<bool, String> {
    let consumer: BaseConsumer = consumer(cluster, "spate-ai-metadata")
        .create()
        .map_err(error("creating a metadata client"))?;
    let metadata = consumer
        .fetch_metadata(Some(topic), Duration::from_secs(10))
        .map_err(error("reading the topic's metadata"))?;
    Ok(metadata
        .topics()
        .iter()
        .any(|t| t.error().is_none() && !t.partitions().is_empty()))
}

/// Keys and values.
pub type Records = Vec<(Vec<u8>, Vec<u8>)>;

/// The latest value of each key of partition 0 of the compacted `topic` (read_committed,
/// to its end), in the order each key was first written; tombstoned keys left out. The caller
/// has fenced the topic's transactional writer first (an open transaction would hold the end
/// back until it times out).
pub fn read_compacted(cluster: &Cluster, topic: &str) -> Result<Records, String> {
    let consumer: BaseConsumer<Quiet> = consumer(cluster, "spate-ai-restore")
        .set("isolation.level", "read_committed")
        .set("enable.partition.eof", "true")
        .create_with_context(Quiet)
        .map_err(error("creating the restore consumer"))?;
    let (_, high) = consumer
        .fetch_watermarks(topic, 0, Duration::from_secs(10))
        .map_err(error("reading the topic's end"))?;
    if high == 0 {
        return Ok(Vec::new());
    }
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, 0, Offset::Beginning)
        .map_err(error("assigning"))?;
    consumer.assign(&tpl).map_err(error("assigning"))?;
    let mut latest: HashMap<Vec<u8>, (usize, Option<Vec<u8>>)> = HashMap::new();
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        if Instant::now() > deadline {
            return Err(format!("reading {topic} back timed out"));
        }
        match consumer.poll(Duration::from_millis(500)) {
            Some(Ok(m)) => {
                let Some(key) = m.key() else {
                    continue;
                };
                let seq = latest.len();
                let value = m.payload().map(<[u8]>::to_vec);
                latest
                    .entry(key.to_vec())
                    .and_modify(|e| e.1 = value.clone())
                    .or_insert((seq, value));
            }
            // The fetcher reached the end (the last stable offset: the end, with no open
            // transaction); aborted records and markers before it were stepped over.
            Some(Err(KafkaError::PartitionEOF(_))) => break,
            Some(Err(e)) => return Err(format!("reading {topic} back: {e}")),
            None => {}
        }
    }
    let mut records: Vec<(usize, Vec<u8>, Vec<u8>)> = latest
        .into_iter()
        .filter_map(|(k, (seq, v))| Some((seq, k, v?)))
        .collect();
    records.sort_by_key(|(seq, _, _)| *seq);
    Ok(records.into_iter().map(|(_, k, v)| (k, v)).collect())
}
