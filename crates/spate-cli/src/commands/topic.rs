//! `spate topic`: create, list, describe, alter, trim and delete topics over the Kafka
//! protocol.
//!
//! `describe` prints what `kafka-topics --describe`, `kafka-configs --describe` and
//! `kafka-log-dirs` print together: partitions with leader, replicas and in-sync replicas,
//! earliest and latest offsets, bytes on disk (DescribeLogDirs, when the cluster answers it),
//! the topic id (in Kafka's base64 form), and every config with its source. `list` hides
//! internal topics (the broker's internal flag, or a name starting with `_`) unless
//! `--internal`, as `rpk topic list` does. `trim` deletes the records before an offset
//! (DeleteRecords), as `rpk topic trim-prefix` does. `list` and `describe` also print JSON
//! with `--format json`. Output goes to stdout, errors to stderr through `main`.

use std::collections::BTreeMap;
use std::io::Write;

use anyhow::{Context, bail};
use base64::Engine;
use serde_json::json;
use spate_client::{Client, ConfigChange, ListedOffset, NewTopic, OffsetSpec, TopicMetadata, Uuid};

use super::client_args::{ClientArgs, parse_name_value, runtime};

/// Arguments of `spate topic`.
#[derive(Debug, clap::Args)]
pub struct TopicArgs {
    #[command(flatten)]
    client: ClientArgs,
    #[command(subcommand)]
    command: TopicCommand,
}

#[derive(Debug, clap::Subcommand)]
enum TopicCommand {
    /// Create a topic.
    Create(CreateArgs),
    /// List topics.
    List(ListArgs),
    /// Show a topic's partitions, offsets and configs.
    Describe(DescribeArgs),
    /// Change a topic's configs or grow its partitions.
    Alter(AlterArgs),
    /// Delete the records before an offset (DeleteRecords), like rpk topic trim-prefix.
    Trim(TrimArgs),
    /// Delete a topic.
    Delete(DeleteArgs),
}

/// Output format of `list` and `describe`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Format {
    /// For people.
    Text,
    /// One JSON document.
    Json,
}

#[derive(Debug, clap::Args)]
struct CreateArgs {
    /// Topic name.
    name: String,
    /// Number of partitions [default: the broker's num.partitions].
    #[arg(long, short = 'p')]
    partitions: Option<i32>,
    /// Replicas per partition [default: the broker's default.replication.factor].
    #[arg(long, short = 'r')]
    replication_factor: Option<i16>,
    /// A topic config with Kafka's name, e.g. retention.ms=86400000 (repeatable).
    #[arg(long = "config", short = 'c', value_name = "NAME=VALUE", value_parser = parse_name_value)]
    configs: Vec<(String, String)>,
    /// Succeed without change if the topic already exists.
    #[arg(long)]
    if_not_exists: bool,
}

#[derive(Debug, clap::Args)]
struct ListArgs {
    /// Include internal topics: those the broker marks internal and names starting with `_`
    /// (__consumer_offsets, _schemas, _audit, ...).
    #[arg(long, short = 'i')]
    internal: bool,
    /// Leave out internal topics (the default; kept for scripts that pass it).
    #[arg(long, hide = true, conflicts_with = "internal")]
    exclude_internal: bool,
    /// Output format.
    #[arg(long, value_enum, default_value = "text")]
    format: Format,
}

#[derive(Debug, clap::Args)]
struct DescribeArgs {
    /// Topic name.
    name: String,
    /// Output format.
    #[arg(long, value_enum, default_value = "text")]
    format: Format,
}

#[derive(Debug, clap::Args)]
struct AlterArgs {
    /// Topic name.
    name: String,
    /// Set a config, NAME=VALUE with Kafka's name (repeatable).
    #[arg(long = "config", short = 'c', value_name = "NAME=VALUE", value_parser = parse_name_value)]
    configs: Vec<(String, String)>,
    /// Remove a config override, going back to the default (repeatable).
    #[arg(long = "delete-config", value_name = "NAME")]
    delete_configs: Vec<String>,
    /// Grow the topic to this many partitions (Kafka cannot shrink a topic).
    #[arg(long, short = 'p')]
    partitions: Option<i32>,
}

#[derive(Debug, clap::Args)]
struct TrimArgs {
    /// Topic name.
    name: String,
    /// The new start offset: records before it are deleted; `end` deletes every record
    /// (the high watermark).
    #[arg(long, short = 'o', value_parser = parse_trim_offset)]
    offset: i64,
    /// Only these partitions (repeatable or comma-separated) [default: all].
    #[arg(long = "partition", short = 'p', value_delimiter = ',')]
    partitions: Vec<i32>,
}

/// `N` or `end` (DeleteRecords' `-1`, the high watermark).
fn parse_trim_offset(text: &str) -> Result<i64, String> {
    match text.trim() {
        "end" | "-1" => Ok(-1),
        n => n
            .parse::<i64>()
            .ok()
            .filter(|n| *n >= 0)
            .ok_or_else(|| format!("expected an offset (0 or more) or `end`, got {text:?}")),
    }
}

#[derive(Debug, clap::Args)]
struct DeleteArgs {
    /// Topic name.
    name: String,
    /// Succeed without change if the topic does not exist.
    #[arg(long)]
    if_exists: bool,
}

/// Runs `spate topic`.
pub fn run(args: TopicArgs) -> anyhow::Result<()> {
    runtime()?.block_on(async {
        let client = args.client.connect().await?;
        match args.command {
            TopicCommand::Create(a) => create(&client, a).await,
            TopicCommand::List(a) => list(&client, a).await,
            TopicCommand::Describe(a) => describe(&client, a).await,
            TopicCommand::Alter(a) => alter(&client, a).await,
            TopicCommand::Trim(a) => trim(&client, a).await,
            TopicCommand::Delete(a) => delete(&client, a).await,
        }
    })
}

/// Whether `list` hides the topic without `--internal`: the broker says it is internal, or
/// its name starts with `_` (the platform's own topics, and Kafka's convention).
fn is_internal(topic: &TopicMetadata) -> bool {
    topic.is_internal || topic.name.starts_with('_')
}

/// Kafka prints topic ids as URL-safe base64 without padding.
fn kafka_topic_id(id: &Uuid) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(id.as_bytes())
}

fn print(text: &str) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Err(e) if !super::client_args::is_broken_pipe(&e) => {
            Err(e).context("cannot write to stdout")
        }
        _ => Ok(()),
    }
}

async fn create(client: &Client, args: CreateArgs) -> anyhow::Result<()> {
    if args.partitions.is_some_and(|p| p < 1) {
        bail!("--partitions must be at least 1");
    }
    if args.replication_factor.is_some_and(|r| r < 1) {
        bail!("--replication-factor must be at least 1");
    }
    let topic = NewTopic {
        name: args.name.clone(),
        partitions: args.partitions,
        replication_factor: args.replication_factor,
        configs: args.configs,
    };
    match client.create_topic(&topic).await {
        Ok(created) => {
            let partitions = if created.partitions > 0 {
                format!(" with {} partitions", created.partitions)
            } else {
                String::new()
            };
            print(&format!("created topic {}{partitions}\n", args.name))
        }
        Err(e)
            if args.if_not_exists
                && e.kafka_code() == Some(spate_client::error::code::TOPIC_ALREADY_EXISTS) =>
        {
            Ok(())
        }
        Err(e) => Err(e.into()),
    }
}

async fn list(client: &Client, args: ListArgs) -> anyhow::Result<()> {
    let metadata = client.metadata(None, false).await?;
    let mut topics: Vec<&TopicMetadata> = metadata
        .topics
        .iter()
        .filter(|t| args.internal || !is_internal(t))
        .collect();
    topics.sort_by(|a, b| a.name.cmp(&b.name));
    let text = match args.format {
        Format::Text => topics.iter().map(|t| format!("{}\n", t.name)).collect(),
        Format::Json => {
            let list: Vec<_> = topics
                .iter()
                .map(|t| {
                    json!({
                        "name": t.name,
                        "topic_id": kafka_topic_id(&t.topic_id),
                        "partitions": t.partitions.len(),
                        "replication_factor": t.replication_factor(),
                        "internal": t.is_internal,
                    })
                })
                .collect();
            format!("{}\n", serde_json::Value::Array(list))
        }
    };
    print(&text)
}

async fn describe(client: &Client, args: DescribeArgs) -> anyhow::Result<()> {
    // Metadata as it is now, without waiting for leaders: describe shows leaderless
    // partitions rather than failing on them.
    let metadata = client
        .metadata(Some(std::slice::from_ref(&args.name)), false)
        .await?;
    let topic = metadata
        .topics
        .into_iter()
        .find(|t| t.name == args.name)
        .ok_or_else(|| anyhow::anyhow!("topic {:?} does not exist", args.name))?;
    match &topic.error {
        Some(e) if e.code == spate_client::error::code::UNKNOWN_TOPIC_OR_PARTITION => {
            bail!("topic {:?} does not exist", args.name)
        }
        Some(e) => bail!("cannot describe topic {:?}: {e}", args.name),
        None => {}
    }
    let with_leader: Vec<i32> = topic
        .partitions
        .iter()
        .filter(|p| p.leader >= 0)
        .map(|p| p.partition)
        .collect();
    let earliest = offsets(client, &topic, &with_leader, OffsetSpec::Earliest).await?;
    let latest = offsets(client, &topic, &with_leader, OffsetSpec::Latest).await?;
    let configs = client.describe_topic_configs(&args.name).await?;
    let offset_of = |map: &BTreeMap<i32, ListedOffset>, p: i32| map.get(&p).and_then(|o| o.offset);
    let sizes = partition_sizes(client, &topic).await;
    let size_of = |p: i32| sizes.as_ref().and_then(|s| s.get(&p).copied());
    let total_size = sizes.as_ref().map(|s| s.values().sum::<i64>());

    let text = match args.format {
        Format::Json => {
            let partitions: Vec<_> = topic
                .partitions
                .iter()
                .map(|p| {
                    json!({
                        "partition": p.partition,
                        "leader": p.leader,
                        "leader_epoch": p.leader_epoch,
                        "replicas": p.replicas,
                        "isr": p.isr,
                        "offline_replicas": p.offline_replicas,
                        "earliest_offset": offset_of(&earliest, p.partition),
                        "latest_offset": offset_of(&latest, p.partition),
                        "size_bytes": size_of(p.partition),
                        "error": p.error.as_ref().map(|e| e.name()),
                    })
                })
                .collect();
            let configs: Vec<_> = configs
                .iter()
                .map(|c| {
                    json!({
                        "name": c.name,
                        "value": c.value,
                        "source": c.source.name(),
                        "read_only": c.read_only,
                        "sensitive": c.is_sensitive,
                    })
                })
                .collect();
            let doc = json!({
                "name": topic.name,
                "topic_id": kafka_topic_id(&topic.topic_id),
                "internal": topic.is_internal,
                "partition_count": topic.partitions.len(),
                "replication_factor": topic.replication_factor(),
                "size_bytes": total_size,
                "partitions": partitions,
                "configs": configs,
            });
            format!("{doc}\n")
        }
        Format::Text => {
            let ids = |ids: &[i32]| ids.iter().map(i32::to_string).collect::<Vec<_>>().join(",");
            let offset_text = |o: Option<i64>| o.map_or("-".to_string(), |o| o.to_string());
            let size_text = |o: Option<i64>| o.map_or("-".to_string(), |o| o.to_string());
            let mut out = format!(
                "Topic: {}\tTopicId: {}\tPartitionCount: {}\tReplicationFactor: {}\tSize: {}\n",
                topic.name,
                kafka_topic_id(&topic.topic_id),
                topic.partitions.len(),
                topic.replication_factor(),
                size_text(total_size)
            );
            for p in &topic.partitions {
                let leader = if p.leader >= 0 {
                    p.leader.to_string()
                } else {
                    "none".to_string()
                };
                out.push_str(&format!(
                    "\tPartition: {}\tLeader: {leader}\tReplicas: {}\tIsr: {}\tEarliestOffset: {}\tLatestOffset: {}\tSize: {}",
                    p.partition,
                    ids(&p.replicas),
                    ids(&p.isr),
                    offset_text(offset_of(&earliest, p.partition)),
                    offset_text(offset_of(&latest, p.partition)),
                    size_text(size_of(p.partition)),
                ));
                if !p.offline_replicas.is_empty() {
                    out.push_str(&format!("\tOffline: {}", ids(&p.offline_replicas)));
                }
                if let Some(error) = &p.error {
                    out.push_str(&format!("\tError: {}", error.name()));
                }
                out.push('\n');
            }
            out.push_str("Configs:\n");
            for c in &configs {
                let value = match (&c.value, c.is_sensitive) {
                    (_, true) => "(sensitive)".to_string(),
                    (Some(v), false) => v.clone(),
                    (None, false) => "(null)".to_string(),
                };
                let read_only = if c.read_only { ", read-only" } else { "" };
                out.push_str(&format!(
                    "\t{}={value}\t({}{read_only})\n",
                    c.name,
                    c.source.name()
                ));
            }
            out
        }
    };
    print(&text)
}

/// Bytes on disk of each partition's leader replica (DescribeLogDirs), or `None` when the
/// cluster does not say (it does not support DescribeLogDirs, or the principal may not
/// describe the cluster): sizes are extra, never a reason for describe to fail.
async fn partition_sizes(client: &Client, topic: &TopicMetadata) -> Option<BTreeMap<i32, i64>> {
    let answers = client
        .describe_log_dirs(Some(std::slice::from_ref(topic)))
        .await;
    let mut sizes = BTreeMap::new();
    let mut answered = false;
    for broker in answers {
        let dirs = match broker.dirs {
            Ok(dirs) => dirs,
            Err(error) => {
                tracing::debug!(broker = broker.node_id, %error, "no log directories");
                continue;
            }
        };
        answered = true;
        for replica in dirs.iter().flat_map(|d| &d.replicas) {
            let is_leader = topic
                .partition(replica.partition)
                .is_some_and(|p| p.leader == broker.node_id);
            if replica.topic == topic.name && is_leader && !replica.is_future {
                *sizes.entry(replica.partition).or_insert(0) += replica.size_bytes;
            }
        }
    }
    answered.then_some(sizes)
}

async fn trim(client: &Client, args: TrimArgs) -> anyhow::Result<()> {
    let topic = client.topic_metadata(&args.name, false).await?;
    let partitions: Vec<i32> = if args.partitions.is_empty() {
        topic.partitions.iter().map(|p| p.partition).collect()
    } else {
        for &p in &args.partitions {
            if topic.partition(p).is_none() {
                bail!(
                    "topic {} has no partition {p} (it has {})",
                    args.name,
                    topic.partitions.len()
                );
            }
        }
        args.partitions.clone()
    };
    let offsets: Vec<(i32, i64)> = partitions.iter().map(|&p| (p, args.offset)).collect();
    let results = client.delete_records(&topic, &offsets).await?;
    let mut out = String::new();
    let mut failed = Vec::new();
    for p in &partitions {
        match results.get(p) {
            Some(Ok(start)) => out.push_str(&format!("partition {p}: start offset {start}\n")),
            Some(Err(error)) => failed.push(format!("partition {p}: {error}")),
            None => failed.push(format!("partition {p}: no answer from the leader")),
        }
    }
    print(&out)?;
    if !failed.is_empty() {
        for line in &failed {
            eprintln!("error: {line}");
        }
        bail!(
            "could not trim {} of {} partitions of {}",
            failed.len(),
            partitions.len(),
            args.name
        );
    }
    Ok(())
}

async fn offsets(
    client: &Client,
    topic: &TopicMetadata,
    partitions: &[i32],
    spec: OffsetSpec,
) -> anyhow::Result<BTreeMap<i32, ListedOffset>> {
    if partitions.is_empty() {
        return Ok(BTreeMap::new());
    }
    let queries: Vec<(i32, OffsetSpec)> = partitions.iter().map(|&p| (p, spec)).collect();
    Ok(client.list_offsets(topic, &queries).await?)
}

async fn alter(client: &Client, args: AlterArgs) -> anyhow::Result<()> {
    if args.configs.is_empty() && args.delete_configs.is_empty() && args.partitions.is_none() {
        bail!("nothing to alter; pass --config NAME=VALUE, --delete-config NAME or --partitions N");
    }
    // Check the topic and the partition count before changing anything.
    let topic = client.topic_metadata(&args.name, false).await?;
    let current = topic.partitions.len() as i32;
    if let Some(wanted) = args.partitions {
        if wanted < current {
            bail!(
                "topic {} has {current} partitions; Kafka topics can grow but not shrink",
                args.name
            );
        }
    }
    let mut changes: Vec<ConfigChange> = args
        .configs
        .into_iter()
        .map(|(name, value)| ConfigChange::Set { name, value })
        .collect();
    changes.extend(
        args.delete_configs
            .into_iter()
            .map(|name| ConfigChange::Delete { name }),
    );
    let mut report = String::new();
    if !changes.is_empty() {
        client.alter_topic_configs(&args.name, &changes).await?;
        report.push_str(&format!("altered configs of topic {}\n", args.name));
    }
    match args.partitions {
        Some(wanted) if wanted > current => {
            client.create_partitions(&args.name, wanted).await?;
            report.push_str(&format!(
                "grew topic {} from {current} to {wanted} partitions\n",
                args.name
            ));
        }
        Some(_) => report.push_str(&format!(
            "topic {} already has {current} partitions\n",
            args.name
        )),
        None => {}
    }
    print(&report)
}

async fn delete(client: &Client, args: DeleteArgs) -> anyhow::Result<()> {
    match client.delete_topic(&args.name).await {
        Ok(()) => print(&format!("deleted topic {}\n", args.name)),
        Err(e)
            if args.if_exists
                && e.kafka_code()
                    == Some(spate_client::error::code::UNKNOWN_TOPIC_OR_PARTITION) =>
        {
            Ok(())
        }
        Err(e) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trim_offsets_are_numbers_or_end() {
        assert_eq!(parse_trim_offset("12"), Ok(12));
        assert_eq!(parse_trim_offset("end"), Ok(-1));
        assert!(parse_trim_offset("-5").is_err());
        assert!(parse_trim_offset("start").is_err());
    }

    #[test]
    fn names_starting_with_an_underscore_are_internal() {
        let topic = |name: &str, is_internal: bool| TopicMetadata {
            name: name.to_string(),
            topic_id: Uuid::nil(),
            is_internal,
            partitions: Vec::new(),
            error: None,
        };
        assert!(is_internal(&topic("_schemas", false)));
        assert!(is_internal(&topic("__consumer_offsets", true)));
        assert!(
            is_internal(&topic("audit", true)),
            "the broker's flag counts"
        );
        assert!(!is_internal(&topic("orders_v2", false)));
    }

    #[test]
    fn topic_ids_print_as_kafka_does() {
        // Kafka's Uuid.toString is URL-safe base64 of the 16 bytes without padding.
        let id = Uuid::from_bytes([0; 16]);
        assert_eq!(kafka_topic_id(&id), "AAAAAAAAAAAAAAAAAAAAAA");
        let id = Uuid::from_bytes([0xfb; 16]);
        assert_eq!(kafka_topic_id(&id), "-_v7-_v7-_v7-_v7-_v7-w");
    }
}
