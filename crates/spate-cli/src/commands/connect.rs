//! `spate connect`: run a Connect worker against any Kafka-compatible cluster
//! (`spate connect worker --brokers HOST:PORT`), with Kafka Connect's REST API.

use std::net::SocketAddr;

use anyhow::{Context, Result};
use clap::{Args, Subcommand};

/// `spate connect`.
#[derive(Debug, Args)]
pub struct ConnectArgs {
    #[command(subcommand)]
    command: ConnectCommand,
}

#[derive(Debug, Subcommand)]
enum ConnectCommand {
    /// Run a Connect worker (Kafka Connect's distributed worker) against a Kafka cluster.
    Worker(WorkerArgs),
}

#[derive(Debug, Args)]
struct WorkerArgs {
    /// Bootstrap brokers (`bootstrap.servers`).
    #[arg(long, env = "SPATE_CONNECT_BROKERS")]
    brokers: Option<String>,
    /// Where the REST API listens (Kafka Connect's `listeners`).
    #[arg(long, default_value = "0.0.0.0:8083", env = "SPATE_CONNECT_LISTEN")]
    listen: SocketAddr,
    /// A worker properties file, as `connect-distributed.properties` (group.id, the storage
    /// topics, converters, security settings, producer./consumer. overrides).
    #[arg(long, value_name = "FILE")]
    worker_config: Option<std::path::PathBuf>,
    /// A worker property, `key=value`; repeatable; wins over the file.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    set: Vec<String>,
    /// Log filter (`info`, `debug`, `spate_connect=debug`).
    #[arg(long, default_value = "info", env = "SPATE_LOG")]
    log: String,
}

/// Runs `spate connect`.
pub fn run(args: ConnectArgs) -> Result<()> {
    match args.command {
        ConnectCommand::Worker(args) => worker(args),
    }
}

fn worker(args: WorkerArgs) -> Result<()> {
    let mut props = match &args.worker_config {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read the worker config {}", path.display()))?;
            spate_connect::server::parse_properties(&text)
        }
        None => Default::default(),
    };
    for pair in &args.set {
        let (key, value) = pair
            .split_once('=')
            .with_context(|| format!("--set {pair}: expected key=value"))?;
        props.insert(key.trim().to_string(), value.to_string());
    }
    if let Some(brokers) = &args.brokers {
        props.insert("bootstrap.servers".into(), brokers.clone());
    }
    let filter = tracing_subscriber::EnvFilter::try_new(&args.log)
        .with_context(|| format!("--log {}: not a log filter", args.log))?;
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async {
        let shutdown = async {
            let interrupt = tokio::signal::ctrl_c();
            #[cfg(unix)]
            {
                let mut term =
                    tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                        .expect("installing the SIGTERM handler");
                tokio::select! {
                    _ = interrupt => {}
                    _ = term.recv() => {}
                }
            }
            #[cfg(not(unix))]
            let _ = interrupt.await;
        };
        spate_connect::server::run(
            props,
            args.listen,
            |addr| tracing::info!(rest_addr = %addr, "spate connect worker is ready"),
            shutdown,
        )
        .await
    })?;
    Ok(())
}
