//! Flags and helpers shared by the commands that speak the Kafka protocol (`topic`,
//! `produce`, `consume`, `group`, `user`, `acl`): where the cluster is, how to secure and
//! authenticate the connections (Kafka's `security.protocol`, `sasl.*` and `ssl.*` client
//! settings), timeouts, the runtime, and the `NAME=VALUE` parser. Nothing here talks to the
//! network by itself.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};
use spate_client::{
    Client, ClientConfig, SaslConfig, SaslMechanism, SecurityConfig, SecurityProtocol, Timeouts,
    TlsConfig,
};

/// Where the Kafka cluster is and how to reach it securely. Works with Spate and any
/// Kafka-compatible cluster.
#[derive(Debug, Clone, clap::Args)]
#[command(next_help_heading = "Connection options")]
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
    /// How connections are secured: PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL (Kafka's
    /// security.protocol).
    #[arg(
        long,
        global = true,
        env = "SPATE_SECURITY_PROTOCOL",
        default_value = "PLAINTEXT",
        value_name = "PROTOCOL",
        value_parser = parse_protocol
    )]
    pub security_protocol: SecurityProtocol,
    /// SASL mechanism for SASL_PLAINTEXT and SASL_SSL: SCRAM-SHA-512, SCRAM-SHA-256 or PLAIN.
    #[arg(
        long,
        global = true,
        env = "SPATE_SASL_MECHANISM",
        default_value = "SCRAM-SHA-512",
        value_name = "MECHANISM",
        value_parser = parse_mechanism
    )]
    pub sasl_mechanism: SaslMechanism,
    /// SASL user name.
    #[arg(long, global = true, env = "SPATE_SASL_USERNAME", value_name = "USER")]
    pub sasl_username: Option<String>,
    /// SASL password. Prefer the SPATE_SASL_PASSWORD environment variable: a flag's value is
    /// visible to other users of the machine in the process list.
    #[arg(
        long,
        global = true,
        env = "SPATE_SASL_PASSWORD",
        hide_env_values = true,
        value_name = "PASSWORD"
    )]
    pub sasl_password: Option<String>,
    /// PEM file of the CAs that sign the brokers' certificates, for SSL and SASL_SSL
    /// [default: the system's CA certificates].
    #[arg(long, global = true, env = "SPATE_TLS_CA_FILE", value_name = "PEM")]
    pub tls_ca_file: Option<PathBuf>,
    /// PEM client certificate, for brokers that require one (mutual TLS).
    #[arg(long, global = true, env = "SPATE_TLS_CERT_FILE", value_name = "PEM")]
    pub tls_cert_file: Option<PathBuf>,
    /// PEM private key of --tls-cert-file.
    #[arg(long, global = true, env = "SPATE_TLS_KEY_FILE", value_name = "PEM")]
    pub tls_key_file: Option<PathBuf>,
}

fn parse_protocol(value: &str) -> Result<SecurityProtocol, String> {
    value
        .parse()
        .map_err(|e: spate_client::Error| e.to_string())
}

fn parse_mechanism(value: &str) -> Result<SaslMechanism, String> {
    match SaslMechanism::parse(&value.trim().to_ascii_uppercase()) {
        Some(
            m @ (SaslMechanism::Plain | SaslMechanism::ScramSha256 | SaslMechanism::ScramSha512),
        ) => Ok(m),
        _ => Err(format!(
            "unknown SASL mechanism {value:?}: use SCRAM-SHA-512, SCRAM-SHA-256 or PLAIN"
        )),
    }
}

impl ClientArgs {
    /// The security settings the flags describe, checked against the protocol.
    pub fn security(&self) -> anyhow::Result<SecurityConfig> {
        let protocol = self.security_protocol;
        let sasl = match (&self.sasl_username, &self.sasl_password) {
            (None, None) => None,
            (Some(username), Some(password)) => Some(SaslConfig {
                mechanism: self.sasl_mechanism,
                username: username.clone(),
                password: password.clone(),
            }),
            (None, Some(_)) => {
                bail!("a SASL password is set but no user name; add --sasl-username")
            }
            (Some(_), None) => bail!(
                "SASL user name given without a password; set SPATE_SASL_PASSWORD (or \
                 --sasl-password)"
            ),
        };
        if protocol.uses_sasl() && sasl.is_none() {
            bail!(
                "--security-protocol {protocol} needs --sasl-username and a password \
                 (SPATE_SASL_PASSWORD or --sasl-password)"
            );
        }
        if !protocol.uses_sasl() && sasl.is_some() {
            bail!(
                "--sasl-username is set but --security-protocol is {protocol}; use SASL_SSL or \
                 SASL_PLAINTEXT (or unset SPATE_SASL_USERNAME)"
            );
        }
        let tls = TlsConfig {
            ca_file: self.tls_ca_file.clone(),
            cert_file: self.tls_cert_file.clone(),
            key_file: self.tls_key_file.clone(),
        };
        if !protocol.uses_tls() && tls != TlsConfig::default() {
            bail!(
                "--tls-* files are set but --security-protocol is {protocol}; use SSL or SASL_SSL"
            );
        }
        let config = SecurityConfig {
            protocol,
            tls,
            sasl,
        };
        config.validate()?;
        Ok(config)
    }

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
        config.security = self.security()?;
        let protocol = self.security_protocol;
        Client::connect(config).await.map_err(|e| {
            let closed = match &e {
                spate_client::Error::NoBrokerReachable { last_error, .. } => last_error.as_ref(),
                other => other,
            };
            let hint = matches!(closed, spate_client::Error::ConnectionClosed { .. })
                && protocol == SecurityProtocol::Plaintext;
            let e = anyhow::Error::from(e);
            if hint {
                e.context(
                    "the broker closed a PLAINTEXT connection; if the listener uses TLS or SASL, \
                     set --security-protocol",
                )
            } else {
                e
            }
        })
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
    use clap::Parser;

    use super::*;

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(flatten)]
        client: ClientArgs,
    }

    /// The security settings of `args`; SASL credentials in the environment are ignored.
    fn security(args: &[&str]) -> anyhow::Result<SecurityConfig> {
        let mut argv = vec!["spate"];
        argv.extend_from_slice(args);
        let mut cli = Cli::try_parse_from(argv).map_err(|e| anyhow::anyhow!("{e}"))?;
        for (flag, value) in [
            ("--sasl-username", &mut cli.client.sasl_username),
            ("--sasl-password", &mut cli.client.sasl_password),
        ] {
            if !args.contains(&flag) {
                *value = None;
            }
        }
        cli.client.security()
    }

    #[test]
    fn security_flags_build_kafkas_client_settings() {
        let config = security(&[
            "--security-protocol",
            "sasl_ssl",
            "--sasl-mechanism",
            "scram-sha-256",
            "--sasl-username",
            "alice",
            "--sasl-password",
            "pw",
            "--tls-ca-file",
            "ca.pem",
        ])
        .expect("valid");
        assert_eq!(config.protocol, SecurityProtocol::SaslSsl);
        let sasl = config.sasl.expect("sasl");
        assert_eq!(sasl.mechanism, SaslMechanism::ScramSha256);
        assert_eq!(
            (sasl.username.as_str(), sasl.password.as_str()),
            ("alice", "pw")
        );
        assert_eq!(config.tls.ca_file, Some(PathBuf::from("ca.pem")));
    }

    #[test]
    fn security_flags_that_do_not_fit_the_protocol_are_refused() {
        for (args, needle) in [
            (
                &["--security-protocol", "SASL_SSL"][..],
                "needs --sasl-username",
            ),
            (
                &["--sasl-username", "alice", "--sasl-password", "pw"],
                "--security-protocol is PLAINTEXT",
            ),
            (
                &[
                    "--security-protocol",
                    "SASL_PLAINTEXT",
                    "--sasl-username",
                    "alice",
                ],
                "SPATE_SASL_PASSWORD",
            ),
            (&["--tls-ca-file", "ca.pem"], "use SSL or SASL_SSL"),
            (
                &["--security-protocol", "SSL", "--tls-cert-file", "c.pem"],
                "needs its key",
            ),
            (&["--security-protocol", "TLS"], "unknown security protocol"),
            (
                &[
                    "--security-protocol",
                    "SASL_SSL",
                    "--sasl-mechanism",
                    "OAUTHBEARER",
                ],
                "unknown SASL mechanism",
            ),
        ] {
            let error = security(args).expect_err("refused");
            assert!(format!("{error:#}").contains(needle), "{args:?}: {error:#}");
        }
    }

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
