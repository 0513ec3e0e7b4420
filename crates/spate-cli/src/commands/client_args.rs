//! Flags and helpers shared by the commands that speak the Kafka protocol (`topic`,
//! `produce`, `consume`, `group`, `user`, `acl`, `cluster`): where the cluster is, how to
//! secure and authenticate the connections (Kafka's `security.protocol`, `sasl.*` and `ssl.*`
//! client settings), timeouts, the runtime, and the `NAME=VALUE` parser. Where the schema
//! registry is ([`RegistryArgs`]) for the commands that use it. Each setting comes from its
//! flag or environment variable, else from the connection profile (`spate profile`), else
//! from the built-in default. Nothing here talks to the network by itself.

use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};
use spate_client::{
    Client, ClientConfig, SaslConfig, SaslMechanism, SecurityConfig, SecurityProtocol, Timeouts,
    TlsConfig,
};

use super::profile::{self, Profile};
use super::registry::Registry;

/// Brokers when neither flags, environment nor a profile name any.
const DEFAULT_BROKERS: &str = "localhost:9092";
/// The schema registry when neither flags, environment nor a profile name one.
pub const DEFAULT_REGISTRY: &str = "http://localhost:8081";

/// Where the Kafka cluster is and how to reach it securely. Works with Spate and any
/// Kafka-compatible cluster.
#[derive(Debug, Clone, clap::Args)]
#[command(next_help_heading = "Connection options")]
pub struct ClientArgs {
    /// Brokers to bootstrap from, HOST:PORT[,HOST:PORT...] [default: the profile's, else
    /// localhost:9092].
    #[arg(
        long,
        global = true,
        env = "SPATE_BROKERS",
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
    /// security.protocol) [default: the profile's, else PLAINTEXT]. Setting it ignores the
    /// profile's security settings.
    #[arg(
        long,
        global = true,
        env = "SPATE_SECURITY_PROTOCOL",
        value_name = "PROTOCOL",
        value_parser = parse_protocol
    )]
    pub security_protocol: Option<SecurityProtocol>,
    /// SASL mechanism for SASL_PLAINTEXT and SASL_SSL: SCRAM-SHA-512, SCRAM-SHA-256 or PLAIN
    /// [default: SCRAM-SHA-512].
    #[arg(
        long,
        global = true,
        env = "SPATE_SASL_MECHANISM",
        value_name = "MECHANISM",
        value_parser = parse_mechanism
    )]
    pub sasl_mechanism: Option<SaslMechanism>,
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

/// Parses a security protocol flag.
pub fn parse_protocol(value: &str) -> Result<SecurityProtocol, String> {
    value
        .parse()
        .map_err(|e: spate_client::Error| e.to_string())
}

/// Parses a SASL mechanism flag (the mechanisms the client speaks).
pub fn parse_mechanism(value: &str) -> Result<SaslMechanism, String> {
    match SaslMechanism::parse(&value.trim().to_ascii_uppercase()) {
        Some(
            m @ (SaslMechanism::Plain | SaslMechanism::ScramSha256 | SaslMechanism::ScramSha512),
        ) => Ok(m),
        _ => Err(format!(
            "unknown SASL mechanism {value:?}: use SCRAM-SHA-512, SCRAM-SHA-256 or PLAIN"
        )),
    }
}

/// The connection settings once flags, environment and profile are merged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// Bootstrap brokers.
    pub brokers: Vec<String>,
    /// The security protocol.
    pub security_protocol: SecurityProtocol,
    /// The SASL mechanism.
    pub sasl_mechanism: SaslMechanism,
    /// SASL user name.
    pub sasl_username: Option<String>,
    /// SASL password.
    pub sasl_password: Option<String>,
    /// CA file.
    pub tls_ca_file: Option<PathBuf>,
    /// Client certificate.
    pub tls_cert_file: Option<PathBuf>,
    /// Client key.
    pub tls_key_file: Option<PathBuf>,
}

impl ClientArgs {
    /// The settings of the flags and environment, with the gaps filled from `profile`.
    pub fn merge(&self, profile: Option<&Profile>) -> anyhow::Result<Settings> {
        let brokers: Vec<String> = self
            .brokers
            .iter()
            .map(|b| b.trim().to_string())
            .filter(|b| !b.is_empty())
            .collect();
        let brokers = match (brokers.is_empty(), profile) {
            (false, _) => brokers,
            (true, Some(p)) if !p.brokers.is_empty() => p.brokers.clone(),
            (true, _) => vec![DEFAULT_BROKERS.to_string()],
        };
        // The profile's security settings count only when the flags name no protocol.
        let from_profile = match (self.security_protocol, profile) {
            (None, Some(p)) => Some(p),
            _ => None,
        };
        let protocol = match (self.security_protocol, from_profile) {
            (Some(p), _) => p,
            (
                None,
                Some(Profile {
                    security_protocol: Some(p),
                    ..
                }),
            ) => parse_protocol(p)
                .map_err(|e| anyhow::anyhow!("the profile's security-protocol: {e}"))?,
            (None, _) => SecurityProtocol::Plaintext,
        };
        let mechanism = match (self.sasl_mechanism, from_profile) {
            (Some(m), _) => m,
            (
                None,
                Some(Profile {
                    sasl_mechanism: Some(m),
                    ..
                }),
            ) => parse_mechanism(m)
                .map_err(|e| anyhow::anyhow!("the profile's sasl-mechanism: {e}"))?,
            (None, _) => SaslMechanism::ScramSha512,
        };
        let pick = |flag: &Option<String>, saved: Option<&Option<String>>| {
            flag.clone().or_else(|| saved.cloned().flatten())
        };
        let pick_path = |flag: &Option<PathBuf>, saved: Option<&Option<PathBuf>>| {
            flag.clone().or_else(|| saved.cloned().flatten())
        };
        Ok(Settings {
            brokers,
            security_protocol: protocol,
            sasl_mechanism: mechanism,
            sasl_username: pick(&self.sasl_username, from_profile.map(|p| &p.sasl_username)),
            sasl_password: pick(&self.sasl_password, from_profile.map(|p| &p.sasl_password)),
            tls_ca_file: pick_path(&self.tls_ca_file, from_profile.map(|p| &p.tls_ca_file)),
            tls_cert_file: pick_path(&self.tls_cert_file, from_profile.map(|p| &p.tls_cert_file)),
            tls_key_file: pick_path(&self.tls_key_file, from_profile.map(|p| &p.tls_key_file)),
        })
    }

    /// The settings with the active profile's (see `spate profile`).
    pub fn settings(&self) -> anyhow::Result<Settings> {
        let active = profile::active()?;
        self.merge(active.as_ref().map(|(_, p)| p))
    }

    /// Connects to the cluster.
    pub async fn connect(&self) -> anyhow::Result<Client> {
        let settings = self.settings()?;
        let mut config = ClientConfig::new(settings.brokers.clone());
        config.client_id = "spate-cli".to_string();
        config.timeouts = Timeouts {
            connect: Duration::from_secs(10),
            request: Duration::from_millis(self.request_timeout_ms.max(1)),
        };
        config.security = settings.security()?;
        let protocol = settings.security_protocol;
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

impl Settings {
    /// The security settings, checked against the protocol.
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
}

/// Where the schema registry is and how to authenticate to it, for the commands that use it
/// (`schema`, and `produce`/`consume` for schema'd records).
#[derive(Debug, Clone, clap::Args)]
#[command(next_help_heading = "Schema registry options")]
pub struct RegistryArgs {
    /// Schema registry URL [default: the profile's, else http://localhost:8081];
    /// `http://user:password@host:8081` gives basic credentials.
    #[arg(long, global = true, env = "SPATE_REGISTRY", hide_env_values = true)]
    pub registry: Option<String>,
    /// User for the registry's basic authentication; the password is read from
    /// SPATE_REGISTRY_PASSWORD. For a bearer token instead, set SPATE_REGISTRY_TOKEN.
    #[arg(long, env = "SPATE_REGISTRY_USER", global = true)]
    pub registry_user: Option<String>,
}

impl RegistryArgs {
    /// The registry client: flags and environment first, then the active profile.
    pub fn client(&self) -> anyhow::Result<Registry> {
        let active = profile::active()?;
        let profile = active.as_ref().map(|(_, p)| p);
        let url = self
            .registry
            .clone()
            .or_else(|| profile.and_then(|p| p.registry.clone()))
            .unwrap_or_else(|| DEFAULT_REGISTRY.to_string());
        // The profile's user (and saved password) only with the profile's URL.
        let profile_auth = profile.filter(|_| self.registry.is_none());
        let user = self
            .registry_user
            .clone()
            .or_else(|| profile_auth.and_then(|p| p.registry_user.clone()));
        let password = super::registry::env_secret(super::registry::PASSWORD_ENV)
            .or_else(|| profile_auth.and_then(|p| p.registry_password.clone()));
        Registry::connect(
            &url,
            user,
            password,
            super::registry::env_secret(super::registry::TOKEN_ENV),
        )
    }
}

/// Writes `text` to stdout; a closed pipe (`| head`) ends output quietly.
pub fn print(text: &str) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Err(e) if !is_broken_pipe(&e) => Err(e).context("cannot write to stdout"),
        _ => Ok(()),
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

    /// The security settings of `args` without a profile; SASL credentials in the environment
    /// are ignored.
    fn security(args: &[&str]) -> anyhow::Result<SecurityConfig> {
        settings(args, None)?.security()
    }

    fn settings(args: &[&str], profile: Option<&Profile>) -> anyhow::Result<Settings> {
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
        for (flag, value) in [("--security-protocol", &mut cli.client.security_protocol)] {
            if !args.contains(&flag) {
                *value = None;
            }
        }
        if !args.contains(&"--brokers") {
            cli.client.brokers.clear();
        }
        cli.client.merge(profile)
    }

    #[test]
    fn flags_win_over_the_profile_and_the_profile_over_defaults() {
        let profile = Profile {
            brokers: vec!["p1:9092".to_string()],
            security_protocol: Some("sasl_ssl".to_string()),
            sasl_mechanism: Some("SCRAM-SHA-256".to_string()),
            sasl_username: Some("alice".to_string()),
            sasl_password: Some("saved".to_string()),
            tls_ca_file: Some(PathBuf::from("/ca.pem")),
            ..Profile::default()
        };
        let none = settings(&[], None).expect("defaults");
        assert_eq!(none.brokers, vec![DEFAULT_BROKERS.to_string()]);
        assert_eq!(none.security_protocol, SecurityProtocol::Plaintext);

        let from_profile = settings(&[], Some(&profile)).expect("profile");
        assert_eq!(from_profile.brokers, vec!["p1:9092".to_string()]);
        assert_eq!(from_profile.security_protocol, SecurityProtocol::SaslSsl);
        assert_eq!(from_profile.sasl_mechanism, SaslMechanism::ScramSha256);
        let security = from_profile.security().expect("valid");
        assert_eq!(security.sasl.expect("sasl").password, "saved");

        let flags = settings(&["--brokers", "f:1"], Some(&profile)).expect("flags");
        assert_eq!(flags.brokers, vec!["f:1".to_string()]);
        assert_eq!(
            flags.security_protocol,
            SecurityProtocol::SaslSsl,
            "still the profile's"
        );

        // Naming a protocol drops the profile's security settings as a set.
        let plain = settings(&["--security-protocol", "PLAINTEXT"], Some(&profile)).expect("ok");
        assert_eq!(plain.sasl_username, None);
        assert_eq!(plain.tls_ca_file, None);
        plain.security().expect("a consistent PLAINTEXT config");

        let bad = Profile {
            security_protocol: Some("TLS".to_string()),
            ..Profile::default()
        };
        let error = settings(&[], Some(&bad)).expect_err("refused");
        assert!(
            format!("{error:#}").contains("security-protocol"),
            "{error:#}"
        );
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
