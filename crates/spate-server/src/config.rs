//! Server configuration: typed, with defaults, read from a TOML file.
//!
//! Precedence is flag, then environment variable (`SPATE_...`), then the file, then the
//! default. The CLI applies flags and environment on top of [`Config::load`]. Keys in the file
//! are kebab-case; per-topic defaults use Kafka's topic config names, as admin tools show them.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

/// Everything `spate serve` needs to start.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, rename_all = "kebab-case", deny_unknown_fields)]
pub struct Config {
    /// Where logs and metadata live.
    pub data_dir: PathBuf,
    /// Kafka protocol listener; port 0 picks a free port.
    #[serde(deserialize_with = "listen_addr")]
    pub kafka_listen: SocketAddr,
    /// Address clients are told to connect to (`host:port`); by default the listen address,
    /// with `localhost` for a wildcard host.
    pub advertised_kafka: Option<String>,
    /// HTTP listener for health, metrics and the admin API.
    #[serde(deserialize_with = "listen_addr")]
    pub http_listen: SocketAddr,
    /// Schema registry listener (Confluent Schema Registry's REST API); port 0 picks a free
    /// port.
    #[serde(deserialize_with = "listen_addr")]
    pub registry_listen: SocketAddr,
    /// Kafka Connect's REST API and the in-process Connect worker; `None` (`off`) runs no
    /// worker.
    #[serde(deserialize_with = "optional_listen_addr")]
    pub connect_listen: Option<SocketAddr>,
    /// A Kafka Connect worker properties file for the in-process worker (group.id, storage
    /// topics, converters, security settings to reach this broker); `bootstrap.servers`
    /// defaults to this broker.
    pub connect_worker_config: Option<PathBuf>,
    /// The SQL API and the in-process SQL worker; `None` (`off`) runs no worker.
    #[serde(deserialize_with = "optional_listen_addr")]
    pub sql_listen: Option<SocketAddr>,
    /// How often SQL jobs commit a checkpoint (outputs, state and offsets in one transaction),
    /// milliseconds.
    pub sql_checkpoint_interval_ms: u64,
    /// A sentence-transformer model directory (`config.json`, `tokenizer.json`,
    /// `model.safetensors`) served by `POST /v1/embeddings`; none by default.
    pub ai_model_dir: Option<PathBuf>,
    /// The name requests give that model [default: its directory's name, or the parent's when
    /// the directory is called `model`].
    pub ai_model_name: Option<String>,
    /// The AI gateway (`POST /v1/chat/completions`): its providers, virtual keys, limits,
    /// cache and records; off while no provider is configured.
    pub ai_gateway: spate_ai::gateway::config::GatewayConfig,
    /// The registry's compatibility level for subjects with none of their own and no global
    /// level set through the API (Confluent's `schema.compatibility.level`).
    pub registry_default_compatibility: String,
    /// How clients of the schema registry and HTTP admin listeners authenticate: `none`, `basic`
    /// (users' SCRAM credentials), `bearer` (JWTs checked as OAUTHBEARER's) or `basic,bearer`.
    /// `/health` stays open.
    pub http_auth: HttpAuthMethods,
    /// This broker's id in Metadata responses.
    pub node_id: i32,
    /// Create a topic when a client produces to or asks metadata for an unknown one
    /// (Kafka's `auto.create.topics.enable`).
    pub auto_create_topics: bool,
    /// Partitions of auto-created topics (Kafka's `num.partitions`).
    pub default_partitions: i32,
    /// Largest request frame accepted (Kafka's `socket.request.max.bytes`).
    pub max_request_bytes: usize,
    /// Bytes of request frames held in memory across all connections at once.
    pub max_queued_request_bytes: usize,
    /// Open connections accepted at once; more are closed on accept.
    pub max_connections: usize,
    /// Open connections accepted from one IP address (Kafka's `max.connections.per.ip`); more
    /// are closed on accept, so one client cannot use up `max-connections`.
    pub max_connections_per_ip: usize,
    /// New connections accepted per second across all listeners (Kafka's
    /// `max.connection.creation.rate`); above it accepting waits. Unset: no limit.
    pub max_connection_creation_rate: Option<u32>,
    /// Requests read from one connection before its responses are written.
    pub max_in_flight_per_connection: usize,
    /// Close connections idle this long (Kafka's `connections.max.idle.ms`).
    pub idle_timeout_ms: u64,
    /// Time a client has to send a whole request once its first byte has arrived, however
    /// small the request; larger ones earn more at `request-read-min-bytes-per-second`. SASL
    /// clients also have this long after connecting to authenticate. Slower clients are
    /// closed (slowloris defence, as Apache's mod_reqtimeout).
    pub request_read_timeout_ms: u64,
    /// Each this many bytes of a request received earn one second more than
    /// `request-read-timeout-ms`: the slowest rate at which a large request still arrives.
    pub request_read_min_bytes_per_second: u64,
    /// Largest request a SASL listener accepts before the client has authenticated (Kafka's
    /// `sasl.server.max.receive.size`).
    pub sasl_server_max_receive_size: usize,
    /// How often retention and compaction run (Kafka's `log.retention.check.interval.ms`).
    pub retention_check_interval_ms: u64,
    /// Upper bound of a Fetch response, whatever the client asks (Kafka's `fetch.max.bytes`).
    pub fetch_max_bytes: usize,
    /// Threads that fsync logs (group commit).
    pub sync_threads: usize,
    /// How long a new consumer group waits for more members before its first rebalance
    /// (Kafka's `group.initial.rebalance.delay.ms`, 3000 there).
    pub group_initial_rebalance_delay_ms: u64,
    /// Kafka's `group.min.session.timeout.ms`.
    pub group_min_session_timeout_ms: i32,
    /// Kafka's `group.max.session.timeout.ms`.
    pub group_max_session_timeout_ms: i32,
    /// Kafka's `offsets.topic.num.partitions` (used when `__consumer_offsets` is created).
    pub offsets_topic_partitions: i32,
    /// Kafka's `offsets.retention.minutes`: offsets of a group empty this long are deleted.
    pub offsets_retention_minutes: u64,
    /// Kafka's `group.consumer.session.timeout.ms` (`group.protocol=consumer` groups).
    pub group_consumer_session_timeout_ms: i32,
    /// Kafka's `group.consumer.heartbeat.interval.ms`, told to `group.protocol=consumer`
    /// members (5000 in Kafka; shorter here so groups converge faster).
    pub group_consumer_heartbeat_interval_ms: i32,
    /// Kafka's `group.consumer.min.session.timeout.ms`: the smallest `consumer.session.timeout.ms`
    /// a group config may set.
    pub group_consumer_min_session_timeout_ms: i32,
    /// Kafka's `group.consumer.max.session.timeout.ms`.
    pub group_consumer_max_session_timeout_ms: i32,
    /// Kafka's `group.consumer.min.heartbeat.interval.ms` (5000 in Kafka; 1000 here, the
    /// default interval).
    pub group_consumer_min_heartbeat_interval_ms: i32,
    /// Kafka's `group.consumer.max.heartbeat.interval.ms`.
    pub group_consumer_max_heartbeat_interval_ms: i32,
    /// Kafka's `transaction.state.log.num.partitions` (used when `__transaction_state` is
    /// created).
    pub transaction_state_partitions: i32,
    /// Kafka's `transaction.max.timeout.ms`: the longest timeout a producer may ask for.
    pub transaction_max_timeout_ms: i32,
    /// The security protocol of the `kafka-listen` listener (named after it, as Kafka's
    /// default listeners are): PLAINTEXT or SSL.
    pub kafka_protocol: SecurityProtocol,
    /// More Kafka listeners, each with its own name, address and security protocol.
    pub listeners: Vec<ListenerConfig>,
    /// Certificates for SSL listeners.
    pub tls: TlsConfig,
    /// SASL mechanisms SASL listeners accept (Kafka's `sasl.enabled.mechanisms`): PLAIN,
    /// SCRAM-SHA-256, SCRAM-SHA-512.
    pub sasl_mechanisms: Vec<String>,
    /// Kafka's `connections.max.reauth.ms`: SASL sessions must re-authenticate this often;
    /// 0 turns it off.
    pub connections_max_reauth_ms: u64,
    /// How OAUTHBEARER tokens (JWTs) are checked.
    pub oauthbearer: OAuthBearerConfig,
    /// Which authorizer checks requests (Kafka's `authorizer.class.name`): `none` allows
    /// everything; `acl` checks every request against the ACLs.
    pub authorizer: AuthorizerKind,
    /// Kafka's `super.users`: principals the ACL authorizer allows everything.
    pub super_users: Vec<String>,
    /// Kafka's `allow.everyone.if.no.acl.found`: with the ACL authorizer, allow a request on
    /// a resource no ACL names (off: deny by default).
    pub allow_everyone_if_no_acl_found: bool,
    /// How log lines are written to stderr: `text` for people, `json` (one object per line)
    /// for log shippers.
    pub log_format: LogFormat,
    /// Defaults for per-topic configs, by Kafka name (e.g. `"retention.ms" = "86400000"`).
    pub topic_defaults: BTreeMap<String, String>,
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// `2026-11-24T10:00:00.000000Z  INFO spate_server: spate is ready kafka_addr=...`.
    #[default]
    Text,
    /// One JSON object per line: `timestamp`, `level`, `message`, the event's fields, `target`.
    Json,
}

impl LogFormat {
    /// Parses `text` or `json`.
    pub fn parse(value: &str) -> Result<LogFormat, String> {
        match value.to_ascii_lowercase().as_str() {
            "text" => Ok(LogFormat::Text),
            "json" => Ok(LogFormat::Json),
            _ => Err(format!("unknown log format {value:?}: text or json")),
        }
    }
}

/// The authorizers Spate has.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AuthorizerKind {
    /// Every request is allowed (a Kafka broker without an authorizer).
    None,
    /// Kafka's ACL model: what no ACL allows is denied, super users excepted.
    Acl,
}

impl AuthorizerKind {
    /// Parses `none` or `acl`.
    pub fn parse(value: &str) -> Option<AuthorizerKind> {
        match value.to_ascii_lowercase().as_str() {
            "none" => Some(AuthorizerKind::None),
            "acl" => Some(AuthorizerKind::Acl),
            _ => None,
        }
    }
}

/// Kafka's security protocols.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum SecurityProtocol {
    /// No encryption, no authentication.
    #[serde(rename = "PLAINTEXT")]
    Plaintext,
    /// TLS; the principal comes from the client certificate when one is presented.
    #[serde(rename = "SSL")]
    Ssl,
    /// SASL authentication without encryption.
    #[serde(rename = "SASL_PLAINTEXT")]
    SaslPlaintext,
    /// SASL authentication over TLS.
    #[serde(rename = "SASL_SSL")]
    SaslSsl,
}

impl SecurityProtocol {
    /// Kafka's name.
    pub fn name(self) -> &'static str {
        match self {
            SecurityProtocol::Plaintext => "PLAINTEXT",
            SecurityProtocol::Ssl => "SSL",
            SecurityProtocol::SaslPlaintext => "SASL_PLAINTEXT",
            SecurityProtocol::SaslSsl => "SASL_SSL",
        }
    }

    /// Whether connections start with TLS.
    pub fn tls(self) -> bool {
        matches!(self, SecurityProtocol::Ssl | SecurityProtocol::SaslSsl)
    }

    /// Whether clients authenticate with SASL.
    pub fn sasl(self) -> bool {
        matches!(
            self,
            SecurityProtocol::SaslPlaintext | SecurityProtocol::SaslSsl
        )
    }

    /// Parses Kafka's name.
    pub fn parse(name: &str) -> Option<SecurityProtocol> {
        match name.to_ascii_uppercase().as_str() {
            "PLAINTEXT" => Some(SecurityProtocol::Plaintext),
            "SSL" => Some(SecurityProtocol::Ssl),
            "SASL_PLAINTEXT" => Some(SecurityProtocol::SaslPlaintext),
            "SASL_SSL" => Some(SecurityProtocol::SaslSsl),
            _ => None,
        }
    }
}

/// Resolves a listen address: `IP:PORT`, or `HOST:PORT` with the host looked up, as Kafka's
/// `listeners=PLAINTEXT://localhost:9092` takes a host name. An IPv4 address is preferred when
/// the name has both (`localhost` is 127.0.0.1, as the clients that connect to it expect).
pub fn resolve_listen_addr(value: &str) -> Result<SocketAddr, String> {
    use std::net::ToSocketAddrs;
    if let Ok(addr) = value.parse() {
        return Ok(addr);
    }
    let Some((host, port)) = value.rsplit_once(':') else {
        return Err(format!("expected HOST:PORT, got {value:?}"));
    };
    let port: u16 = port
        .parse()
        .map_err(|_| format!("port {port:?} of {value:?} is not a number from 0 to 65535"))?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let addrs: Vec<SocketAddr> = (host, port)
        .to_socket_addrs()
        .map_err(|e| format!("cannot resolve {host:?}: {e}"))?
        .collect();
    addrs
        .iter()
        .find(|a| a.is_ipv4())
        .or_else(|| addrs.first())
        .copied()
        .ok_or_else(|| format!("{host:?} resolves to no address"))
}

fn listen_addr<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<SocketAddr, D::Error> {
    let text = String::deserialize(deserializer)?;
    resolve_listen_addr(&text).map_err(serde::de::Error::custom)
}

/// A listen address, or `off` for a listener that is not wanted.
pub fn resolve_optional_listen_addr(value: &str) -> Result<Option<SocketAddr>, String> {
    match value.trim() {
        "off" | "none" | "" => Ok(None),
        other => resolve_listen_addr(other).map(Some),
    }
}

fn optional_listen_addr<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<SocketAddr>, D::Error> {
    let text = String::deserialize(deserializer)?;
    resolve_optional_listen_addr(&text).map_err(serde::de::Error::custom)
}

/// One Kafka listener (Kafka's `listeners` entry with its `advertised.listeners` address).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct ListenerConfig {
    /// Name, e.g. `EXTERNAL`; clients of this listener are told its advertised address.
    pub name: String,
    /// Address to listen on; port 0 picks a free port.
    #[serde(deserialize_with = "listen_addr")]
    pub listen: SocketAddr,
    /// Security protocol.
    pub protocol: SecurityProtocol,
    /// `host:port` told to clients; by default the listen address.
    pub advertised: Option<String>,
}

/// OAUTHBEARER: JWTs signed by keys in a JWKS file (Kafka's
/// `sasl.oauthbearer.jwks.endpoint.url` with a `file:` URL, `expected.issuer`,
/// `expected.audience`, `sub.claim.name`).
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default, rename_all = "kebab-case", deny_unknown_fields)]
pub struct OAuthBearerConfig {
    /// The JWKS document with the issuer's public keys.
    pub jwks_file: Option<PathBuf>,
    /// The `iss` tokens must carry; unset accepts any.
    pub issuer: Option<String>,
    /// Tokens' `aud` must name one of these; empty accepts any.
    pub audience: Vec<String>,
    /// The claim naming the principal; unset is `sub`.
    pub principal_claim: Option<String>,
}

/// The authentication schemes the HTTP listeners accept; none by default. Written as `none`,
/// `basic`, `bearer` or `basic,bearer`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct HttpAuthMethods {
    /// `Authorization: Basic`, checked against users' SCRAM credentials.
    pub basic: bool,
    /// `Authorization: Bearer`, a JWT checked against `oauthbearer.jwks-file`.
    pub bearer: bool,
}

impl HttpAuthMethods {
    /// Reads `none`, `basic`, `bearer` or `basic,bearer` (any order, any case).
    pub fn parse(text: &str) -> Result<HttpAuthMethods, String> {
        let mut methods = HttpAuthMethods::default();
        let words: Vec<String> = text
            .split(',')
            .map(|w| w.trim().to_ascii_lowercase())
            .collect();
        for word in &words {
            match word.as_str() {
                "none" if words.len() == 1 => {}
                "basic" => methods.basic = true,
                "bearer" => methods.bearer = true,
                _ => {
                    return Err(format!(
                        "unknown http-auth {text:?}: none, basic, bearer or basic,bearer"
                    ));
                }
            }
        }
        Ok(methods)
    }

    /// Whether requests must authenticate at all.
    pub fn enabled(self) -> bool {
        self.basic || self.bearer
    }
}

impl TryFrom<String> for HttpAuthMethods {
    type Error = String;

    fn try_from(text: String) -> Result<HttpAuthMethods, String> {
        HttpAuthMethods::parse(&text)
    }
}

impl std::fmt::Display for HttpAuthMethods {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match (self.basic, self.bearer) {
            (false, false) => "none",
            (true, false) => "basic",
            (false, true) => "bearer",
            (true, true) => "basic,bearer",
        })
    }
}

/// Kafka's `ssl.client.auth`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ClientAuth {
    /// Client certificates are not asked for.
    #[default]
    None,
    /// Asked for; a client without one connects as `User:ANONYMOUS`.
    Requested,
    /// Required: a client without a valid certificate is refused.
    Required,
}

/// Certificates for SSL listeners (PEM files).
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default, rename_all = "kebab-case", deny_unknown_fields)]
pub struct TlsConfig {
    /// The server's certificate chain.
    pub cert_file: Option<PathBuf>,
    /// The server's private key.
    pub key_file: Option<PathBuf>,
    /// CAs that sign client certificates (mutual TLS).
    pub client_ca_file: Option<PathBuf>,
    /// Whether clients must present a certificate.
    pub client_auth: ClientAuth,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            data_dir: PathBuf::from("spate-data"),
            kafka_listen: SocketAddr::from(([0, 0, 0, 0], 9092)),
            advertised_kafka: None,
            http_listen: SocketAddr::from(([0, 0, 0, 0], 8080)),
            registry_listen: SocketAddr::from(([0, 0, 0, 0], 8081)),
            connect_listen: Some(SocketAddr::from(([0, 0, 0, 0], 8083))),
            connect_worker_config: None,
            sql_listen: Some(SocketAddr::from(([0, 0, 0, 0], 8088))),
            sql_checkpoint_interval_ms: 1000,
            ai_model_dir: None,
            ai_model_name: None,
            ai_gateway: spate_ai::gateway::config::GatewayConfig::default(),
            registry_default_compatibility: "BACKWARD".to_string(),
            http_auth: HttpAuthMethods::default(),
            node_id: 1,
            auto_create_topics: true,
            default_partitions: 1,
            max_request_bytes: 104_857_600,
            max_queued_request_bytes: 512 << 20,
            max_connections: 10_000,
            max_connections_per_ip: 1_000,
            max_connection_creation_rate: None,
            max_in_flight_per_connection: 64,
            idle_timeout_ms: 600_000,
            request_read_timeout_ms: 30_000,
            request_read_min_bytes_per_second: 65_536,
            sasl_server_max_receive_size: 524_288,
            retention_check_interval_ms: 300_000,
            fetch_max_bytes: 57_671_680,
            sync_threads: 2,
            group_initial_rebalance_delay_ms: 100,
            group_min_session_timeout_ms: 6_000,
            group_max_session_timeout_ms: 1_800_000,
            offsets_topic_partitions: 50,
            offsets_retention_minutes: 10_080,
            group_consumer_session_timeout_ms: 45_000,
            group_consumer_heartbeat_interval_ms: 1_000,
            group_consumer_min_session_timeout_ms: 45_000,
            group_consumer_max_session_timeout_ms: 60_000,
            group_consumer_min_heartbeat_interval_ms: 1_000,
            group_consumer_max_heartbeat_interval_ms: 15_000,
            transaction_state_partitions: 50,
            transaction_max_timeout_ms: 900_000,
            kafka_protocol: SecurityProtocol::Plaintext,
            listeners: Vec::new(),
            tls: TlsConfig::default(),
            sasl_mechanisms: vec!["SCRAM-SHA-512".to_string(), "SCRAM-SHA-256".to_string()],
            connections_max_reauth_ms: 0,
            oauthbearer: OAuthBearerConfig::default(),
            authorizer: AuthorizerKind::None,
            super_users: Vec::new(),
            allow_everyone_if_no_acl_found: false,
            log_format: LogFormat::Text,
            topic_defaults: BTreeMap::new(),
        }
    }
}

/// A config file that cannot be read or is invalid.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file cannot be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        /// File path.
        path: PathBuf,
        /// OS error.
        source: std::io::Error,
    },
    /// The file is not valid TOML for this schema.
    #[error("invalid config file {path}: {message}")]
    Parse {
        /// File path.
        path: PathBuf,
        /// Parser message, with line and column.
        message: String,
    },
    /// A value is out of range.
    #[error("invalid setting {name}: {reason}")]
    Invalid {
        /// Setting name.
        name: String,
        /// What is wrong.
        reason: String,
    },
}

impl Config {
    /// Reads a TOML config file; missing keys take their defaults.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Config::parse(&text).map_err(|message| ConfigError::Parse {
            path: path.to_path_buf(),
            message,
        })
    }

    /// Parses TOML text.
    pub fn parse(text: &str) -> Result<Config, String> {
        toml::from_str(text).map_err(|e| e.to_string())
    }

    /// Checks values that serde cannot.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |name: &str, reason: &str| ConfigError::Invalid {
            name: name.to_string(),
            reason: reason.to_string(),
        };
        if self.default_partitions < 1 {
            return Err(invalid("default-partitions", "must be at least 1"));
        }
        if self.max_request_bytes < 1024 {
            return Err(invalid("max-request-bytes", "must be at least 1024"));
        }
        if self.max_queued_request_bytes < self.max_request_bytes {
            return Err(invalid(
                "max-queued-request-bytes",
                "must be at least max-request-bytes",
            ));
        }
        if self.request_read_timeout_ms == 0 {
            return Err(invalid("request-read-timeout-ms", "must be at least 1"));
        }
        if self.request_read_min_bytes_per_second == 0 {
            return Err(invalid(
                "request-read-min-bytes-per-second",
                "must be at least 1",
            ));
        }
        if self.sasl_server_max_receive_size < 1024 {
            return Err(invalid(
                "sasl-server-max-receive-size",
                "must be at least 1024",
            ));
        }
        if self.offsets_topic_partitions < 1 || self.transaction_state_partitions < 1 {
            return Err(invalid("offsets-topic-partitions", "must be at least 1"));
        }
        if self.group_min_session_timeout_ms > self.group_max_session_timeout_ms {
            return Err(invalid(
                "group-min-session-timeout-ms",
                "must not exceed group-max-session-timeout-ms",
            ));
        }
        if !(self.group_consumer_min_session_timeout_ms
            ..=self.group_consumer_max_session_timeout_ms)
            .contains(&self.group_consumer_session_timeout_ms)
        {
            return Err(invalid(
                "group-consumer-session-timeout-ms",
                "must be between group-consumer-min-session-timeout-ms and group-consumer-max-session-timeout-ms",
            ));
        }
        if !(self.group_consumer_min_heartbeat_interval_ms
            ..=self.group_consumer_max_heartbeat_interval_ms)
            .contains(&self.group_consumer_heartbeat_interval_ms)
            || self.group_consumer_min_heartbeat_interval_ms < 1
        {
            return Err(invalid(
                "group-consumer-heartbeat-interval-ms",
                "must be between group-consumer-min-heartbeat-interval-ms (at least 1) and group-consumer-max-heartbeat-interval-ms",
            ));
        }
        if self.group_consumer_heartbeat_interval_ms >= self.group_consumer_session_timeout_ms {
            return Err(invalid(
                "group-consumer-heartbeat-interval-ms",
                "must be less than group-consumer-session-timeout-ms",
            ));
        }
        if spate_registry::Compatibility::parse(&self.registry_default_compatibility).is_none() {
            return Err(invalid(
                "registry-default-compatibility",
                "must be one of NONE, BACKWARD, BACKWARD_TRANSITIVE, FORWARD, FORWARD_TRANSITIVE, FULL, FULL_TRANSITIVE",
            ));
        }
        if let Err(e) = self.ai_gateway.validate(&|var| std::env::var(var).ok()) {
            return Err(invalid(&e.field, &e.reason));
        }
        if self.http_auth.bearer && self.oauthbearer.jwks_file.is_none() {
            return Err(invalid(
                "http-auth",
                "bearer needs oauthbearer.jwks-file (--oauthbearer-jwks-file) to check tokens",
            ));
        }
        if self.max_connection_creation_rate == Some(0) {
            return Err(invalid(
                "max-connection-creation-rate",
                "must be at least 1 (leave it unset for no limit)",
            ));
        }
        if self.max_in_flight_per_connection == 0
            || self.max_connections == 0
            || self.max_connections_per_ip == 0
        {
            return Err(invalid("max-connections", "limits must be at least 1"));
        }
        for principal in &self.super_users {
            if spate_auth::acl::parse_principal(principal).is_err() {
                return Err(invalid(
                    "super-users",
                    &format!("{principal:?} is not a principal like User:admin"),
                ));
            }
        }
        let uses_tls = self.kafka_protocol.tls() || self.listeners.iter().any(|l| l.protocol.tls());
        for name in &self.sasl_mechanisms {
            match spate_auth::sasl::Mechanism::parse(name) {
                Some(spate_auth::sasl::Mechanism::OAuthBearer)
                    if self.oauthbearer.jwks_file.is_none() =>
                {
                    return Err(invalid(
                        "sasl-mechanisms",
                        "OAUTHBEARER needs oauthbearer.jwks-file",
                    ));
                }
                Some(_) => {}
                None => {
                    return Err(invalid(
                        "sasl-mechanisms",
                        &format!(
                            "unknown mechanism {name}: PLAIN, SCRAM-SHA-256, SCRAM-SHA-512 or OAUTHBEARER"
                        ),
                    ));
                }
            }
        }
        if uses_tls && (self.tls.cert_file.is_none() || self.tls.key_file.is_none()) {
            return Err(invalid(
                "tls",
                "an SSL listener needs tls.cert-file and tls.key-file",
            ));
        }
        if self.tls.client_auth != ClientAuth::None && self.tls.client_ca_file.is_none() {
            return Err(invalid(
                "tls.client-auth",
                "checking client certificates needs tls.client-ca-file",
            ));
        }
        let mut names = vec![self.kafka_protocol.name().to_string()];
        for listener in &self.listeners {
            if listener.name.is_empty()
                || !listener
                    .name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
            {
                return Err(invalid("listeners", "names are letters, digits, _ and -"));
            }
            if names.iter().any(|n| n.eq_ignore_ascii_case(&listener.name)) {
                return Err(invalid(
                    "listeners",
                    &format!("listener name {} is used twice", listener.name),
                ));
            }
            names.push(listener.name.clone());
            if let Some(advertised) = &listener.advertised {
                parse_host_port(advertised).ok_or_else(|| {
                    invalid(
                        "listeners",
                        &format!("advertised {advertised} is not host:port"),
                    )
                })?;
            }
        }
        if let Some(advertised) = &self.advertised_kafka {
            parse_host_port(advertised)
                .ok_or_else(|| invalid("advertised-kafka", "expected HOST:PORT"))?;
        }
        for (name, value) in &self.topic_defaults {
            spate_log::config::validate(name, value)
                .map_err(|e| invalid(&format!("topic-defaults.{name}"), &e.to_string()))?;
        }
        Ok(())
    }
}

impl Config {
    /// The broker configs this config sets, under Kafka's broker config names, for
    /// DescribeConfigs (STATIC_BROKER_CONFIG) and as the base dynamic configs override.
    pub fn static_broker_configs(&self) -> BTreeMap<String, String> {
        let mut configs = BTreeMap::from([
            (
                "max.connections".to_string(),
                self.max_connections.to_string(),
            ),
            (
                "max.connections.per.ip".to_string(),
                self.max_connections_per_ip.to_string(),
            ),
            (
                "socket.request.max.bytes".to_string(),
                self.max_request_bytes.to_string(),
            ),
            (
                "queued.max.request.bytes".to_string(),
                self.max_queued_request_bytes.to_string(),
            ),
            (
                "connections.max.idle.ms".to_string(),
                self.idle_timeout_ms.to_string(),
            ),
            (
                "log.retention.check.interval.ms".to_string(),
                self.retention_check_interval_ms.to_string(),
            ),
            (
                "group.initial.rebalance.delay.ms".to_string(),
                self.group_initial_rebalance_delay_ms.to_string(),
            ),
            (
                "group.min.session.timeout.ms".to_string(),
                self.group_min_session_timeout_ms.to_string(),
            ),
            (
                "group.max.session.timeout.ms".to_string(),
                self.group_max_session_timeout_ms.to_string(),
            ),
            (
                "group.consumer.session.timeout.ms".to_string(),
                self.group_consumer_session_timeout_ms.to_string(),
            ),
            (
                "group.consumer.heartbeat.interval.ms".to_string(),
                self.group_consumer_heartbeat_interval_ms.to_string(),
            ),
            (
                "group.consumer.min.session.timeout.ms".to_string(),
                self.group_consumer_min_session_timeout_ms.to_string(),
            ),
            (
                "group.consumer.max.session.timeout.ms".to_string(),
                self.group_consumer_max_session_timeout_ms.to_string(),
            ),
            (
                "group.consumer.min.heartbeat.interval.ms".to_string(),
                self.group_consumer_min_heartbeat_interval_ms.to_string(),
            ),
            (
                "group.consumer.max.heartbeat.interval.ms".to_string(),
                self.group_consumer_max_heartbeat_interval_ms.to_string(),
            ),
            (
                "offsets.topic.num.partitions".to_string(),
                self.offsets_topic_partitions.to_string(),
            ),
            (
                "offsets.retention.minutes".to_string(),
                self.offsets_retention_minutes.to_string(),
            ),
            (
                "transaction.state.log.num.partitions".to_string(),
                self.transaction_state_partitions.to_string(),
            ),
            (
                "transaction.max.timeout.ms".to_string(),
                self.transaction_max_timeout_ms.to_string(),
            ),
            (
                "sasl.enabled.mechanisms".to_string(),
                self.sasl_mechanisms.join(","),
            ),
            ("log.dirs".to_string(), self.data_dir.display().to_string()),
        ]);
        if let Some(rate) = self.max_connection_creation_rate {
            configs.insert("max.connection.creation.rate".to_string(), rate.to_string());
        }
        configs
    }
}

/// Splits `host:port` (IPv6 hosts in brackets).
pub fn parse_host_port(value: &str) -> Option<(String, u16)> {
    let (host, port) = value.rsplit_once(':')?;
    let port = port.parse().ok()?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if host.is_empty() {
        return None;
    }
    Some((host.to_string(), port))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn example_config_matches_the_defaults() {
        // The manifest directory at run time, not compile time: a test binary built in another
        // checkout that shares the build cache must still read this checkout's files.
        let dir = std::env::var("CARGO_MANIFEST_DIR").expect("run under cargo");
        let text = std::fs::read_to_string(format!("{dir}/../../spate.example.toml"))
            .expect("spate.example.toml at the repository root");
        let parsed = Config::parse(&text).expect("example parses");
        assert_eq!(parsed, Config::default());
    }

    #[test]
    fn listen_addresses_take_host_names_as_kafka_listeners_do() {
        assert_eq!(
            resolve_listen_addr("localhost:9092"),
            Ok(SocketAddr::from(([127, 0, 0, 1], 9092)))
        );
        assert_eq!(
            resolve_listen_addr("0.0.0.0:0"),
            Ok(SocketAddr::from(([0, 0, 0, 0], 0)))
        );
        assert_eq!(
            resolve_listen_addr("[::1]:9093").map(|a| a.port()),
            Ok(9093)
        );
        let parsed =
            Config::parse("kafka-listen = \"localhost:19092\"").expect("a host name parses");
        assert_eq!(
            parsed.kafka_listen,
            SocketAddr::from(([127, 0, 0, 1], 19092))
        );
        for bad in ["localhost", "localhost:port", "localhost:70000"] {
            let err = resolve_listen_addr(bad).expect_err(bad);
            assert!(err.contains(bad) || err.contains("port"), "{err}");
        }
    }

    #[test]
    fn unknown_keys_and_bad_values_are_refused() {
        assert!(Config::parse("no-such-setting = 1").is_err());
        let config =
            Config::parse("[topic-defaults]\n\"retention.ms\" = \"soon\"").expect("parses");
        let err = config.validate().expect_err("invalid");
        assert!(err.to_string().contains("retention.ms"), "{err}");
    }

    #[test]
    fn http_auth_reads_its_four_forms_and_bearer_needs_a_jwks_file() {
        for (text, basic, bearer) in [
            ("none", false, false),
            ("basic", true, false),
            ("Bearer", false, true),
            ("basic,bearer", true, true),
            ("bearer, basic", true, true),
        ] {
            let methods = HttpAuthMethods::parse(text).expect(text);
            assert_eq!((methods.basic, methods.bearer), (basic, bearer), "{text}");
        }
        for bad in ["", "digest", "none,basic", "basic,"] {
            assert!(HttpAuthMethods::parse(bad).is_err(), "{bad:?}");
        }
        let config = Config::parse("http-auth = \"basic,bearer\"").expect("parses");
        assert_eq!(config.http_auth.to_string(), "basic,bearer");
        let err = config.validate().expect_err("bearer without keys");
        assert!(err.to_string().contains("oauthbearer.jwks-file"), "{err}");
        assert!(Config::parse("http-auth = \"kerberos\"").is_err());
        let basic = Config::parse("http-auth = \"basic\"").expect("parses");
        basic.validate().expect("basic needs nothing more");
    }

    #[test]
    fn log_format_is_text_or_json() {
        assert_eq!(LogFormat::parse("JSON"), Ok(LogFormat::Json));
        assert_eq!(LogFormat::parse("text"), Ok(LogFormat::Text));
        assert!(LogFormat::parse("xml").is_err());
        let config = Config::parse("log-format = \"json\"").expect("parses");
        assert_eq!(config.log_format, LogFormat::Json);
        assert!(Config::parse("log-format = \"xml\"").is_err());
    }

    #[test]
    fn host_port_parsing() {
        assert_eq!(
            parse_host_port("localhost:9092"),
            Some(("localhost".into(), 9092))
        );
        assert_eq!(parse_host_port("[::1]:9092"), Some(("::1".into(), 9092)));
        assert_eq!(parse_host_port("nohost"), None);
    }
}
