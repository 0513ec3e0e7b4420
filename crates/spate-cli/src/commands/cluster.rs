//! `spate cluster`: the cluster as a whole, as `rpk cluster` shows it.
//!
//! - `info`: the cluster id, the controller and the brokers (Metadata).
//! - `health`: whether every broker answers, a controller is known, and every partition has
//!   a leader and all its replicas in sync; exits non-zero when not, so scripts can wait on
//!   it.
//! - `config get|set`: broker configs (DescribeConfigs, IncrementalAlterConfigs on resource
//!   type BROKER): the cluster-wide defaults (`kafka-configs --entity-default`) unless
//!   `--broker ID` names one broker.
//! - `txn list|describe|describe-producers`: transactions (ListTransactions,
//!   DescribeTransactions, DescribeProducers), as `rpk cluster txn` and `kafka-transactions`.
//!
//! Text output is a table for people; `--format json` prints one JSON document.

use anyhow::{Context, bail};
use serde_json::json;
use spate_client::{BrokerConfigTarget, Client, ConfigChange};

use super::client_args::{ClientArgs, parse_name_value, print, runtime};
use super::group::table;

/// Arguments of `spate cluster`.
#[derive(Debug, clap::Args)]
pub struct ClusterArgs {
    #[command(flatten)]
    client: ClientArgs,
    #[command(subcommand)]
    command: ClusterCommand,
}

#[derive(Debug, clap::Subcommand)]
enum ClusterCommand {
    /// Print the cluster id, the controller and the brokers.
    Info(FormatArg),
    /// Check that every broker answers and every partition has a leader and its replicas in
    /// sync; exit 1 if not.
    Health(FormatArg),
    /// Read or change broker configs (the cluster defaults, or one broker's).
    Config(ConfigArgs),
    /// List and describe transactions and the producers writing to partitions.
    Txn(TxnArgs),
}

/// Output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Format {
    /// For people.
    Text,
    /// One JSON document.
    Json,
}

#[derive(Debug, clap::Args)]
struct FormatArg {
    /// Output format.
    #[arg(long, value_enum, default_value = "text")]
    format: Format,
}

#[derive(Debug, clap::Args)]
struct ConfigArgs {
    #[command(subcommand)]
    command: ConfigCommand,
}

#[derive(Debug, clap::Subcommand)]
enum ConfigCommand {
    /// Print configs: all, or those named.
    Get(ConfigGetArgs),
    /// Set configs (NAME=VALUE) and remove overrides (--delete NAME).
    Set(ConfigSetArgs),
}

#[derive(Debug, clap::Args)]
struct BrokerArg {
    /// Change one broker's configs [default: the cluster-wide defaults, resource name "", as
    /// `kafka-configs --entity-default`].
    #[arg(long, value_name = "ID")]
    broker: Option<i32>,
}

impl BrokerArg {
    fn target(&self) -> BrokerConfigTarget {
        match self.broker {
            Some(id) => BrokerConfigTarget::Broker(id),
            None => BrokerConfigTarget::ClusterDefault,
        }
    }
}

#[derive(Debug, clap::Args)]
struct ConfigGetArgs {
    /// Config names [default: every config].
    names: Vec<String>,
    /// One broker's configs [default: the controller's, which are the cluster's effective
    /// values with their source].
    #[arg(long, value_name = "ID", conflicts_with = "cluster_default")]
    broker: Option<i32>,
    /// Only the cluster-wide dynamic defaults that are set (`kafka-configs --entity-default`).
    #[arg(long)]
    cluster_default: bool,
    /// Output format.
    #[arg(long, value_enum, default_value = "text")]
    format: Format,
}

#[derive(Debug, clap::Args)]
struct ConfigSetArgs {
    /// Configs to set, NAME=VALUE with Kafka's names.
    #[arg(value_name = "NAME=VALUE", value_parser = parse_name_value)]
    configs: Vec<(String, String)>,
    /// A config override to remove, going back to the default (repeatable).
    #[arg(long = "delete", value_name = "NAME")]
    deletes: Vec<String>,
    #[command(flatten)]
    broker: BrokerArg,
}

#[derive(Debug, clap::Args)]
struct TxnArgs {
    #[command(subcommand)]
    command: TxnCommand,
}

#[derive(Debug, clap::Subcommand)]
enum TxnCommand {
    /// List transactional ids with their producer and state (every coordinator's).
    List(TxnListArgs),
    /// Describe transactional ids: state, producer, timeout, partitions in the transaction.
    Describe(TxnDescribeArgs),
    /// The producers writing to partitions of a topic, with their open transactions.
    DescribeProducers(DescribeProducersArgs),
}

#[derive(Debug, clap::Args)]
struct TxnListArgs {
    /// Only transactions in this state, e.g. Ongoing (repeatable).
    #[arg(long = "state", value_name = "STATE")]
    states: Vec<String>,
    /// Only transactions of this producer id (repeatable).
    #[arg(long = "producer-id", value_name = "ID")]
    producer_ids: Vec<i64>,
    /// Output format.
    #[arg(long, value_enum, default_value = "text")]
    format: Format,
}

#[derive(Debug, clap::Args)]
struct TxnDescribeArgs {
    /// Transactional ids.
    #[arg(required = true)]
    ids: Vec<String>,
    /// Output format.
    #[arg(long, value_enum, default_value = "text")]
    format: Format,
}

#[derive(Debug, clap::Args)]
struct DescribeProducersArgs {
    /// Topic.
    #[arg(long)]
    topic: String,
    /// Only these partitions (repeatable or comma-separated) [default: all].
    #[arg(long = "partition", short = 'p', value_delimiter = ',')]
    partitions: Vec<i32>,
    /// Output format.
    #[arg(long, value_enum, default_value = "text")]
    format: Format,
}

/// Runs `spate cluster`.
pub fn run(args: ClusterArgs) -> anyhow::Result<()> {
    if let ClusterCommand::Config(ConfigArgs {
        command: ConfigCommand::Set(set),
    }) = &args.command
    {
        if set.configs.is_empty() && set.deletes.is_empty() {
            bail!("nothing to change; pass NAME=VALUE or --delete NAME");
        }
    }
    runtime()?.block_on(async {
        let client = args.client.connect().await?;
        match args.command {
            ClusterCommand::Info(a) => info(&client, a.format).await,
            ClusterCommand::Health(a) => health(&client, a.format).await,
            ClusterCommand::Config(ConfigArgs { command }) => match command {
                ConfigCommand::Get(a) => config_get(&client, a).await,
                ConfigCommand::Set(a) => config_set(&client, a).await,
            },
            ClusterCommand::Txn(TxnArgs { command }) => match command {
                TxnCommand::List(a) => txn_list(&client, a).await,
                TxnCommand::Describe(a) => txn_describe(&client, a).await,
                TxnCommand::DescribeProducers(a) => describe_producers(&client, a).await,
            },
        }
    })
}

fn dash<T: ToString>(value: Option<T>) -> String {
    value.map_or("-".to_string(), |v| v.to_string())
}

async fn info(client: &Client, format: Format) -> anyhow::Result<()> {
    let metadata = client.metadata(Some(&[]), false).await?;
    let mut brokers = metadata.brokers.clone();
    brokers.sort_by_key(|b| b.node_id);
    let text = match format {
        Format::Json => {
            let brokers: Vec<_> = brokers
                .iter()
                .map(|b| {
                    json!({
                        "node_id": b.node_id,
                        "host": b.host,
                        "port": b.port,
                        "rack": b.rack,
                        "controller": b.node_id == metadata.controller_id,
                    })
                })
                .collect();
            format!(
                "{}\n",
                json!({
                    "cluster_id": metadata.cluster_id,
                    "controller_id": (metadata.controller_id >= 0).then_some(metadata.controller_id),
                    "brokers": brokers,
                })
            )
        }
        Format::Text => {
            let rows: Vec<Vec<String>> = brokers
                .iter()
                .map(|b| {
                    let mark = if b.node_id == metadata.controller_id {
                        "*"
                    } else {
                        ""
                    };
                    vec![
                        format!("{}{mark}", b.node_id),
                        b.host.clone(),
                        b.port.to_string(),
                        dash(b.rack.as_ref()),
                    ]
                })
                .collect();
            format!(
                "CLUSTER\n=======\n{}\n\nBROKERS\n=======\n{}",
                metadata.cluster_id.as_deref().unwrap_or("-"),
                table(&["ID", "HOST", "PORT", "RACK"], &rows)
            )
        }
    };
    print(&text)
}

async fn health(client: &Client, format: Format) -> anyhow::Result<()> {
    let metadata = client.metadata(None, false).await?;
    let mut brokers: Vec<i32> = metadata.brokers.iter().map(|b| b.node_id).collect();
    brokers.sort_unstable();
    let answers = futures::future::join_all(
        brokers
            .iter()
            .map(|&id| async move { (id, client.broker(id).await.map(|_| ())) }),
    )
    .await;
    let down: Vec<(i32, String)> = answers
        .into_iter()
        .filter_map(|(id, answer)| answer.err().map(|e| (id, e.to_string())))
        .collect();
    let mut leaderless = Vec::new();
    let mut under_replicated = Vec::new();
    for topic in &metadata.topics {
        for p in &topic.partitions {
            let name = format!("{}-{}", topic.name, p.partition);
            if p.leader < 0 {
                leaderless.push(name);
            } else if p.isr.len() < p.replicas.len() {
                under_replicated.push(name);
            }
        }
    }
    let controller = (metadata.controller_id >= 0).then_some(metadata.controller_id);
    let mut reasons = Vec::new();
    if controller.is_none() {
        reasons.push("no controller".to_string());
    }
    if !down.is_empty() {
        reasons.push(format!("{} broker(s) down", down.len()));
    }
    if !leaderless.is_empty() {
        reasons.push(format!("{} leaderless partition(s)", leaderless.len()));
    }
    if !under_replicated.is_empty() {
        reasons.push(format!(
            "{} under-replicated partition(s)",
            under_replicated.len()
        ));
    }
    let healthy = reasons.is_empty();
    let text = match format {
        Format::Json => format!(
            "{}\n",
            json!({
                "healthy": healthy,
                "unhealthy_reasons": reasons,
                "controller_id": controller,
                "brokers": brokers,
                "brokers_down": down.iter().map(|(id, e)| json!({"node_id": id, "error": e})).collect::<Vec<_>>(),
                "leaderless_partitions": leaderless,
                "under_replicated_partitions": under_replicated,
            })
        ),
        Format::Text => {
            let list = |items: &[String]| {
                if items.is_empty() {
                    "[]".to_string()
                } else {
                    format!("[{}]", items.join(", "))
                }
            };
            let down_ids: Vec<String> = down.iter().map(|(id, _)| id.to_string()).collect();
            let all: Vec<String> = brokers.iter().map(i32::to_string).collect();
            format!(
                "Healthy:                      {healthy}\n\
                 Unhealthy reasons:            {}\n\
                 Controller ID:                {}\n\
                 All brokers:                  {}\n\
                 Brokers down:                 {}\n\
                 Leaderless partitions:        {}\n\
                 Under-replicated partitions:  {}\n",
                list(&reasons),
                dash(controller),
                list(&all),
                list(&down_ids),
                list(&leaderless),
                list(&under_replicated),
            )
        }
    };
    print(&text)?;
    for (id, error) in &down {
        eprintln!("broker {id}: {error}");
    }
    if !healthy {
        bail!("the cluster is not healthy: {}", reasons.join(", "));
    }
    Ok(())
}

async fn config_get(client: &Client, args: ConfigGetArgs) -> anyhow::Result<()> {
    let target = match (args.broker, args.cluster_default) {
        (_, true) => BrokerConfigTarget::ClusterDefault,
        (Some(id), false) => BrokerConfigTarget::Broker(id),
        (None, false) => {
            let metadata = client.metadata(Some(&[]), false).await?;
            let id = if metadata.controller_id >= 0 {
                metadata.controller_id
            } else {
                metadata
                    .brokers
                    .iter()
                    .map(|b| b.node_id)
                    .min()
                    .context("the cluster lists no broker")?
            };
            BrokerConfigTarget::Broker(id)
        }
    };
    let mut entries = client.describe_broker_configs(target).await?;
    if !args.names.is_empty() {
        for name in &args.names {
            if !entries.iter().any(|e| e.name == *name) {
                bail!("no config named {name:?}");
            }
        }
        entries.retain(|e| args.names.contains(&e.name));
    }
    let value = |e: &spate_client::ConfigEntry| match (&e.value, e.is_sensitive) {
        (_, true) => "(sensitive)".to_string(),
        (Some(v), false) => v.clone(),
        (None, false) => "(null)".to_string(),
    };
    let text = match args.format {
        Format::Json => {
            let configs: Vec<_> = entries
                .iter()
                .map(|e| {
                    json!({
                        "name": e.name,
                        "value": if e.is_sensitive { None } else { e.value.clone() },
                        "source": e.source.name(),
                        "read_only": e.read_only,
                        "sensitive": e.is_sensitive,
                    })
                })
                .collect();
            format!("{}\n", serde_json::Value::Array(configs))
        }
        Format::Text if args.names.len() == 1 => entries
            .first()
            .map(|e| format!("{}\n", value(e)))
            .unwrap_or_default(),
        Format::Text => {
            let rows: Vec<Vec<String>> = entries
                .iter()
                .map(|e| vec![e.name.clone(), value(e), e.source.name()])
                .collect();
            table(&["NAME", "VALUE", "SOURCE"], &rows)
        }
    };
    print(&text)
}

async fn config_set(client: &Client, args: ConfigSetArgs) -> anyhow::Result<()> {
    let mut changes: Vec<ConfigChange> = args
        .configs
        .into_iter()
        .map(|(name, value)| ConfigChange::Set { name, value })
        .collect();
    changes.extend(
        args.deletes
            .into_iter()
            .map(|name| ConfigChange::Delete { name }),
    );
    let target = args.broker.target();
    client.alter_broker_configs(target, &changes).await?;
    let what = match target {
        BrokerConfigTarget::ClusterDefault => "the cluster defaults".to_string(),
        BrokerConfigTarget::Broker(id) => format!("broker {id}"),
    };
    eprintln!("altered {} config(s) of {what}", changes.len());
    Ok(())
}

async fn txn_list(client: &Client, args: TxnListArgs) -> anyhow::Result<()> {
    let listed = client
        .list_transactions(&args.states, &args.producer_ids)
        .await?;
    let text = match args.format {
        Format::Json => {
            let items: Vec<_> = listed
                .iter()
                .map(|t| {
                    json!({
                        "transactional_id": t.transactional_id,
                        "coordinator_id": t.coordinator_id,
                        "producer_id": t.producer_id,
                        "state": t.state,
                    })
                })
                .collect();
            format!("{}\n", serde_json::Value::Array(items))
        }
        Format::Text => {
            let rows: Vec<Vec<String>> = listed
                .iter()
                .map(|t| {
                    vec![
                        t.transactional_id.clone(),
                        t.coordinator_id.to_string(),
                        t.producer_id.to_string(),
                        t.state.clone(),
                    ]
                })
                .collect();
            table(
                &["TRANSACTIONAL-ID", "COORDINATOR", "PRODUCER-ID", "STATE"],
                &rows,
            )
        }
    };
    print(&text)
}

async fn txn_describe(client: &Client, args: TxnDescribeArgs) -> anyhow::Result<()> {
    let described = client.describe_transactions(&args.ids).await;
    let mut found = Vec::new();
    let mut failed = 0;
    for (id, result) in described {
        match result {
            Ok(d) => found.push(d),
            Err(error) => {
                failed += 1;
                eprintln!("error: {id}: {error}");
            }
        }
    }
    let partitions = |d: &spate_client::TransactionDescription| {
        d.partitions
            .iter()
            .flat_map(|(t, ps)| ps.iter().map(move |p| format!("{t}-{p}")))
            .collect::<Vec<_>>()
    };
    let text = match args.format {
        Format::Json => {
            let items: Vec<_> = found
                .iter()
                .map(|d| {
                    json!({
                        "transactional_id": d.transactional_id,
                        "coordinator_id": d.coordinator_id,
                        "state": d.state,
                        "producer_id": d.producer_id,
                        "producer_epoch": d.producer_epoch,
                        "timeout_ms": d.timeout_ms,
                        "start_time_ms": d.start_time_ms,
                        "partitions": partitions(d),
                    })
                })
                .collect();
            format!("{}\n", serde_json::Value::Array(items))
        }
        Format::Text => {
            let rows: Vec<Vec<String>> = found
                .iter()
                .map(|d| {
                    let ps = partitions(d);
                    vec![
                        d.transactional_id.clone(),
                        d.coordinator_id.to_string(),
                        d.producer_id.to_string(),
                        d.producer_epoch.to_string(),
                        d.state.clone(),
                        d.timeout_ms.to_string(),
                        dash(d.start_time_ms),
                        if ps.is_empty() {
                            "-".to_string()
                        } else {
                            ps.join(",")
                        },
                    ]
                })
                .collect();
            table(
                &[
                    "TRANSACTIONAL-ID",
                    "COORDINATOR",
                    "PRODUCER-ID",
                    "EPOCH",
                    "STATE",
                    "TIMEOUT-MS",
                    "START-TIME-MS",
                    "PARTITIONS",
                ],
                &rows,
            )
        }
    };
    print(&text)?;
    if failed > 0 {
        bail!(
            "could not describe {failed} of {} transactional ids",
            args.ids.len()
        );
    }
    Ok(())
}

async fn describe_producers(client: &Client, args: DescribeProducersArgs) -> anyhow::Result<()> {
    let topic = client.topic_metadata(&args.topic, false).await?;
    let partitions: Vec<i32> = if args.partitions.is_empty() {
        topic.partitions.iter().map(|p| p.partition).collect()
    } else {
        args.partitions.clone()
    };
    let results = client.describe_producers(&topic, &partitions).await?;
    let mut rows = Vec::new();
    let mut items = Vec::new();
    let mut failed = 0;
    for (partition, result) in &results {
        match result {
            Ok(producers) => {
                for p in producers {
                    rows.push(vec![
                        partition.to_string(),
                        p.producer_id.to_string(),
                        p.producer_epoch.to_string(),
                        p.last_sequence.to_string(),
                        p.last_timestamp_ms.to_string(),
                        p.coordinator_epoch.to_string(),
                        dash(p.current_txn_start_offset),
                    ]);
                    items.push(json!({
                        "partition": partition,
                        "producer_id": p.producer_id,
                        "producer_epoch": p.producer_epoch,
                        "last_sequence": p.last_sequence,
                        "last_timestamp_ms": p.last_timestamp_ms,
                        "coordinator_epoch": p.coordinator_epoch,
                        "current_transaction_start_offset": p.current_txn_start_offset,
                    }));
                }
            }
            Err(error) => {
                failed += 1;
                eprintln!("error: {}-{partition}: {error}", args.topic);
            }
        }
    }
    let text = match args.format {
        Format::Json => format!("{}\n", serde_json::Value::Array(items)),
        Format::Text => table(
            &[
                "PARTITION",
                "PRODUCER-ID",
                "EPOCH",
                "LAST-SEQUENCE",
                "LAST-TIMESTAMP-MS",
                "COORDINATOR-EPOCH",
                "TXN-START-OFFSET",
            ],
            &rows,
        ),
    };
    print(&text)?;
    if failed > 0 {
        bail!("could not describe the producers of {failed} partition(s)");
    }
    Ok(())
}
