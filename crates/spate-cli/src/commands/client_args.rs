//! Flags and helpers shared by the commands that speak the Kafka protocol (`topic`,
//! `produce`, `consume`): where the cluster is, timeouts, the runtime, and the
//! `NAME=VALUE` parser. Nothing here talks to the network by itself.

use std::time::Duration;

use anyhow::Context;
use spate_client::{Client, ClientConfig, Timeouts};

/// Where the Kafka cluster is. Works with Spate and any Kafka-compatible cluster.
#[derive(Debug, Clone, clap::Args)]
pub struct ClientArgs {
    /// Brokers to bootstrap from, HOST:PORT[,HOST:PORT...].
    #[arg(
        long,
        global = true,
        env = "SPATE_BROKERS",
        default_value = "localhost:9092",
        value_delimiter = ',',
        value_name = "HOST:PORT"
    )]
    pub brokers: Vec<String>,
    /// How long to wait for each broker response, in ms.
    #[arg(
        long,
        global = true,
        env = "SPATE_REQUEST_TIMEOUT_MS",
        default_value_t = 30_000
    )]
    pub request_timeout_ms: u64,
}

impl ClientArgs {
    /// Connects to the cluster.
    pub async fn connect(&self) -> anyhow::Result<Client> {
        let brokers: Vec<String> = self
            .brokers
            .iter()
            .map(|b| b.trim().to_string())
            .filter(|b| !b.is_empty())
            .collect();
        let mut config = ClientConfig::new(brokers);
        config.client_id = "spate-cli".to_string();
        config.timeouts = Timeouts {
            connect: Duration::from_secs(10),
            request: Duration::from_millis(self.request_timeout_ms.max(1)),
        };
        Ok(Client::connect(config).await?)
    }
}

/// The single-threaded runtime each command runs on.
pub fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

/// Parses `NAME=VALUE` (the value may contain `=`; the name may not be empty).
pub fn parse_name_value(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((name, value)) if !name.trim().is_empty() => {
            Ok((name.trim().to_string(), value.to_string()))
        }
        _ => Err(format!("expected NAME=VALUE, got {text:?}")),
    }
}

/// Whether `err` is stdout going away (`| head`), which ends output quietly.
pub fn is_broken_pipe(err: &std::io::Error) -> bool {
    err.kind() == std::io::ErrorKind::BrokenPipe
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn name_value_pairs() {
        assert_eq!(
            parse_name_value("retention.ms=1000"),
            Ok(("retention.ms".to_string(), "1000".to_string()))
        );
        assert_eq!(
            parse_name_value("a=b=c"),
            Ok(("a".to_string(), "b=c".to_string()))
        );
        assert_eq!(parse_name_value("k="), Ok(("k".to_string(), String::new())));
        assert!(parse_name_value("novalue").is_err());
        assert!(parse_name_value("=v").is_err());
    }
}
