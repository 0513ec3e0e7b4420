//! `spate serve`: start the server with its embedded defaults.

use std::io::IsTerminal;
use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use spate_server::Config;

/// Arguments of `spate serve`. Each flag also reads a `SPATE_...` environment variable and
/// overrides the config file.
#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    /// TOML config file (see spate.example.toml).
    #[arg(long, env = "SPATE_CONFIG")]
    pub config: Option<PathBuf>,
    /// Directory for logs and metadata [default: ./spate-data].
    #[arg(long, env = "SPATE_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// Kafka listener, HOST:PORT; port 0 picks a free port [default: 0.0.0.0:9092].
    #[arg(long, env = "SPATE_KAFKA_LISTEN", value_parser = spate_server::config::resolve_listen_addr)]
    pub kafka_listen: Option<SocketAddr>,
    /// Address advertised to Kafka clients, HOST:PORT [default: the listen address].
    #[arg(long, env = "SPATE_ADVERTISED_KAFKA")]
    pub advertised_kafka: Option<String>,
    /// HTTP listener for /health and /metrics, HOST:PORT [default: 0.0.0.0:8080].
    #[arg(long, env = "SPATE_HTTP_LISTEN", value_parser = spate_server::config::resolve_listen_addr)]
    pub http_listen: Option<SocketAddr>,
    /// Schema registry listener (Confluent's REST API), HOST:PORT; port 0 picks a free port
    /// [default: 0.0.0.0:8081].
    #[arg(long, env = "SPATE_REGISTRY_LISTEN", value_parser = spate_server::config::resolve_listen_addr)]
    pub registry_listen: Option<SocketAddr>,
    /// Kafka Connect's REST API and the in-process Connect worker, HOST:PORT, or `off`
    /// [default: 0.0.0.0:8083].
    #[arg(long, env = "SPATE_CONNECT_LISTEN", value_name = "HOST:PORT|off")]
    pub connect_listen: Option<String>,
    /// Worker properties for the in-process Connect worker (as connect-distributed.properties;
    /// `bootstrap.servers` defaults to this broker).
    #[arg(long, env = "SPATE_CONNECT_WORKER_CONFIG", value_name = "FILE")]
    pub connect_worker_config: Option<std::path::PathBuf>,
    /// The SQL API and the in-process SQL worker, HOST:PORT, or `off` [default: 0.0.0.0:8088].
    #[arg(long, env = "SPATE_SQL_LISTEN", value_name = "HOST:PORT|off")]
    pub sql_listen: Option<String>,
    /// How often SQL jobs commit a checkpoint, in milliseconds [default: 1000].
    #[arg(long, env = "SPATE_SQL_CHECKPOINT_INTERVAL_MS", value_name = "MS")]
    pub sql_checkpoint_interval_ms: Option<u64>,
    /// A sentence-transformer model directory (config.json, tokenizer.json,
    /// model.safetensors) for POST /v1/embeddings, e.g. all-MiniLM-L6-v2's [default: none].
    #[arg(long, env = "SPATE_AI_MODEL_DIR", value_name = "DIR")]
    pub ai_model_dir: Option<std::path::PathBuf>,
    /// The name requests give the model [default: the directory's name, or its parent's when
    /// the directory is called `model`].
    #[arg(long, env = "SPATE_AI_MODEL_NAME", value_name = "NAME")]
    pub ai_model_name: Option<String>,
    /// A TOML file holding the AI gateway's settings (providers, keys, limits, cache, log: the
    /// keys of spate.example.toml's [ai-gateway] at its top level); replaces the config
    /// file's [ai-gateway] [default: none].
    #[arg(long, env = "SPATE_AI_GATEWAY_CONFIG", value_name = "FILE")]
    pub ai_gateway_config: Option<PathBuf>,
    /// Authentication on the registry and HTTP listeners: none, basic (users' SCRAM
    /// credentials), bearer (JWTs, needs --oauthbearer-jwks-file) or basic,bearer; /health
    /// stays open [default: none].
    #[arg(long, env = "SPATE_HTTP_AUTH", value_parser = spate_server::config::HttpAuthMethods::parse)]
    pub http_auth: Option<spate_server::config::HttpAuthMethods>,
    /// Security protocol of the --kafka-listen listener: PLAINTEXT, SSL, SASL_PLAINTEXT or
    /// SASL_SSL [default: PLAINTEXT].
    #[arg(long, env = "SPATE_KAFKA_PROTOCOL")]
    pub kafka_protocol: Option<String>,
    /// Another Kafka listener, NAME=PROTOCOL://HOST:PORT (repeatable; the variable takes
    /// Kafka's comma-separated `listeners` list), e.g. SECURE=SASL_SSL://0.0.0.0:9093.
    #[arg(
        long = "listener",
        env = "SPATE_LISTENERS",
        value_delimiter = ',',
        value_name = "NAME=PROTOCOL://HOST:PORT",
        value_parser = parse_listener
    )]
    pub listeners: Vec<spate_server::config::ListenerConfig>,
    /// The address clients of a --listener are told, NAME=HOST:PORT (repeatable; Kafka's
    /// `advertised.listeners`, the variable comma-separated) [default: its listen address].
    #[arg(
        long = "advertised-listener",
        env = "SPATE_ADVERTISED_LISTENERS",
        value_delimiter = ',',
        value_name = "NAME=HOST:PORT",
        value_parser = parse_advertised_listener
    )]
    pub advertised_listeners: Vec<(String, String)>,
    /// PEM certificate chain for SSL listeners.
    #[arg(long, env = "SPATE_TLS_CERT")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key for SSL listeners.
    #[arg(long, env = "SPATE_TLS_KEY")]
    pub tls_key: Option<PathBuf>,
    /// PEM CAs that sign client certificates (mutual TLS).
    #[arg(long, env = "SPATE_TLS_CLIENT_CA")]
    pub tls_client_ca: Option<PathBuf>,
    /// Client certificates: none, requested or required (Kafka's ssl.client.auth).
    #[arg(long, env = "SPATE_TLS_CLIENT_AUTH")]
    pub tls_client_auth: Option<String>,
    /// SASL mechanisms of SASL listeners, comma-separated [default: SCRAM-SHA-512,SCRAM-SHA-256].
    #[arg(long, env = "SPATE_SASL_MECHANISMS", value_delimiter = ',')]
    pub sasl_mechanisms: Option<Vec<String>>,
    /// Largest request frame accepted (Kafka's socket.request.max.bytes) [default: 104857600].
    #[arg(long, env = "SPATE_MAX_REQUEST_BYTES")]
    pub max_request_bytes: Option<usize>,
    /// Request bytes held in memory across all connections (Kafka's queued.max.request.bytes)
    /// [default: 536870912].
    #[arg(long, env = "SPATE_MAX_QUEUED_REQUEST_BYTES")]
    pub max_queued_request_bytes: Option<usize>,
    /// Time a client has to send a request once its first byte arrived, and on SASL listeners
    /// to authenticate after connecting; larger requests earn more (slowloris defence)
    /// [default: 30000].
    #[arg(long, env = "SPATE_REQUEST_READ_TIMEOUT_MS")]
    pub request_read_timeout_ms: Option<u64>,
    /// Each this many bytes of a request received earn one second more than
    /// --request-read-timeout-ms [default: 65536].
    #[arg(long, env = "SPATE_REQUEST_READ_MIN_BYTES_PER_SECOND")]
    pub request_read_min_bytes_per_second: Option<u64>,
    /// Largest request before SASL authentication (Kafka's sasl.server.max.receive.size)
    /// [default: 524288].
    #[arg(long, env = "SPATE_SASL_SERVER_MAX_RECEIVE_SIZE")]
    pub sasl_server_max_receive_size: Option<usize>,
    /// Open connections accepted at once across all listeners (Kafka's max.connections)
    /// [default: 10000].
    #[arg(long, env = "SPATE_MAX_CONNECTIONS")]
    pub max_connections: Option<usize>,
    /// Open connections accepted from one IP address (Kafka's max.connections.per.ip)
    /// [default: 1000].
    #[arg(long, env = "SPATE_MAX_CONNECTIONS_PER_IP")]
    pub max_connections_per_ip: Option<usize>,
    /// New connections accepted per second across all listeners (Kafka's
    /// max.connection.creation.rate); above it accepting waits [default: no limit].
    #[arg(long, env = "SPATE_MAX_CONNECTION_CREATION_RATE")]
    pub max_connection_creation_rate: Option<u32>,
    /// JWKS file whose keys sign OAUTHBEARER tokens.
    #[arg(long, env = "SPATE_OAUTHBEARER_JWKS_FILE")]
    pub oauthbearer_jwks_file: Option<PathBuf>,
    /// The issuer (`iss`) OAUTHBEARER tokens must carry.
    #[arg(long, env = "SPATE_OAUTHBEARER_ISSUER")]
    pub oauthbearer_issuer: Option<String>,
    /// An audience (`aud`) OAUTHBEARER tokens may name (repeatable; the variable
    /// comma-separated).
    #[arg(
        long = "oauthbearer-audience",
        env = "SPATE_OAUTHBEARER_AUDIENCE",
        value_delimiter = ','
    )]
    pub oauthbearer_audience: Vec<String>,
    /// Authorizer: `none` allows every request, `acl` checks each against the ACLs and denies
    /// what none allows (Kafka's authorizer.class.name) [default: none].
    #[arg(long, env = "SPATE_AUTHORIZER", value_parser = parse_authorizer)]
    pub authorizer: Option<spate_server::config::AuthorizerKind>,
    /// A principal the ACL authorizer allows everything, e.g. User:admin (repeatable; the
    /// variable takes Kafka's `;`-separated list).
    #[arg(long = "super-user", env = "SPATE_SUPER_USERS", value_delimiter = ';')]
    pub super_users: Vec<String>,
    /// Allow requests on resources no ACL names (Kafka's allow.everyone.if.no.acl.found)
    /// [default: false].
    #[arg(long, env = "SPATE_ALLOW_EVERYONE_IF_NO_ACL_FOUND")]
    pub allow_everyone_if_no_acl_found: Option<bool>,
    /// Broker id [default: 1].
    #[arg(long, env = "SPATE_NODE_ID")]
    pub node_id: Option<i32>,
    /// Create unknown topics on first use (Kafka's auto.create.topics.enable) [default: true].
    #[arg(long, env = "SPATE_AUTO_CREATE_TOPICS")]
    pub auto_create_topics: Option<bool>,
    /// How often retention and compaction run, in ms [default: 300000].
    #[arg(long, env = "SPATE_RETENTION_CHECK_INTERVAL_MS")]
    pub retention_check_interval_ms: Option<u64>,
    /// A default topic config, NAME=VALUE with Kafka's name (repeatable; the variable
    /// `;`-separated, since values such as cleanup.policy=compact,delete hold commas).
    #[arg(
        long = "topic-default",
        env = "SPATE_TOPIC_DEFAULTS",
        value_delimiter = ';',
        value_name = "NAME=VALUE",
        value_parser = parse_key_value
    )]
    pub topic_defaults: Vec<(String, String)>,
    /// Log filter, e.g. `info` or `spate_broker=debug`.
    #[arg(long, env = "SPATE_LOG", default_value = "info")]
    pub log: String,
    /// Log lines on stderr: text, or json (one object per line) [default: text].
    #[arg(long, env = "SPATE_LOG_FORMAT", value_parser = spate_server::config::LogFormat::parse)]
    pub log_format: Option<spate_server::config::LogFormat>,
}

fn parse_authorizer(value: &str) -> Result<spate_server::config::AuthorizerKind, String> {
    spate_server::config::AuthorizerKind::parse(value)
        .ok_or_else(|| format!("unknown authorizer {value:?}: none or acl"))
}

fn parse_listener(value: &str) -> Result<spate_server::config::ListenerConfig, String> {
    let bad = || format!("expected NAME=PROTOCOL://HOST:PORT, got {value:?}");
    let (name, rest) = value.split_once('=').ok_or_else(bad)?;
    let (protocol, address) = rest.split_once("://").ok_or_else(bad)?;
    let protocol = spate_server::config::SecurityProtocol::parse(protocol).ok_or_else(|| {
        format!(
            "unknown security protocol {protocol:?}: PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL"
        )
    })?;
    let listen = spate_server::config::resolve_listen_addr(address)
        .map_err(|reason| format!("listener {name}: {reason}"))?;
    Ok(spate_server::config::ListenerConfig {
        name: name.to_string(),
        listen,
        protocol,
        advertised: None,
    })
}

fn parse_advertised_listener(value: &str) -> Result<(String, String), String> {
    let (name, address) = value
        .split_once('=')
        .ok_or_else(|| format!("expected NAME=HOST:PORT, got {value:?}"))?;
    spate_server::config::parse_host_port(address).ok_or_else(|| {
        format!("advertised listener {name}: expected HOST:PORT, got {address:?}")
    })?;
    Ok((name.to_string(), address.to_string()))
}

fn parse_key_value(value: &str) -> Result<(String, String), String> {
    value
        .split_once('=')
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .ok_or_else(|| format!("expected NAME=VALUE, got {value:?}"))
}

impl ServeArgs {
    /// The config file (or defaults) with flags and environment applied on top.
    pub fn into_config(self) -> anyhow::Result<Config> {
        let mut config = match &self.config {
            Some(path) => Config::load(path)?,
            None => Config::default(),
        };
        if let Some(v) = self.data_dir {
            config.data_dir = v;
        }
        if let Some(v) = self.kafka_listen {
            config.kafka_listen = v;
        }
        if let Some(v) = self.advertised_kafka {
            config.advertised_kafka = Some(v);
        }
        if let Some(v) = self.http_listen {
            config.http_listen = v;
        }
        if let Some(v) = self.registry_listen {
            config.registry_listen = v;
        }
        if let Some(v) = self.connect_listen {
            config.connect_listen = spate_server::config::resolve_optional_listen_addr(&v)
                .map_err(|e| anyhow::anyhow!("--connect-listen: {e}"))?;
        }
        if let Some(v) = self.connect_worker_config {
            config.connect_worker_config = Some(v);
        }
        if let Some(v) = self.sql_listen {
            config.sql_listen = spate_server::config::resolve_optional_listen_addr(&v)
                .map_err(|e| anyhow::anyhow!("--sql-listen: {e}"))?;
        }
        if let Some(v) = self.sql_checkpoint_interval_ms {
            config.sql_checkpoint_interval_ms = v.max(10);
        }
        if let Some(v) = self.ai_model_dir {
            config.ai_model_dir = Some(v);
        }
        if let Some(v) = self.ai_model_name {
            config.ai_model_name = Some(v);
        }
        if let Some(v) = self.http_auth {
            config.http_auth = v;
        }
        if let Some(v) = self.kafka_protocol {
            config.kafka_protocol =
                spate_server::config::SecurityProtocol::parse(&v).ok_or_else(|| {
                    anyhow::anyhow!(
                        "unknown --kafka-protocol {v:?}: PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL"
                    )
                })?;
        }
        config.listeners.extend(self.listeners);
        for (name, address) in self.advertised_listeners {
            let listener = config
                .listeners
                .iter_mut()
                .find(|l| l.name == name)
                .ok_or_else(|| {
                    anyhow::anyhow!(
                        "--advertised-listener {name}: no listener named {name} (--listener {name}=PROTOCOL://HOST:PORT)"
                    )
                })?;
            listener.advertised = Some(address);
        }
        if let Some(v) = self.sasl_mechanisms {
            config.sasl_mechanisms = v;
        }
        if let Some(v) = self.tls_cert {
            config.tls.cert_file = Some(v);
        }
        if let Some(v) = self.tls_key {
            config.tls.key_file = Some(v);
        }
        if let Some(v) = self.tls_client_ca {
            config.tls.client_ca_file = Some(v);
        }
        if let Some(v) = self.tls_client_auth {
            config.tls.client_auth = match v.to_ascii_lowercase().as_str() {
                "none" => spate_server::config::ClientAuth::None,
                "requested" => spate_server::config::ClientAuth::Requested,
                "required" => spate_server::config::ClientAuth::Required,
                _ => anyhow::bail!("unknown --tls-client-auth {v:?}: none, requested or required"),
            };
        }
        if let Some(v) = self.authorizer {
            config.authorizer = v;
        }
        if !self.super_users.is_empty() {
            config.super_users = self
                .super_users
                .into_iter()
                .map(|p| p.trim().to_string())
                .filter(|p| !p.is_empty())
                .collect();
        }
        if let Some(v) = self.allow_everyone_if_no_acl_found {
            config.allow_everyone_if_no_acl_found = v;
        }
        if let Some(v) = self.max_connections {
            config.max_connections = v;
        }
        if let Some(v) = self.max_connections_per_ip {
            config.max_connections_per_ip = v;
        }
        if let Some(v) = self.max_connection_creation_rate {
            config.max_connection_creation_rate = Some(v);
        }
        if let Some(v) = self.max_request_bytes {
            config.max_request_bytes = v;
        }
        if let Some(v) = self.max_queued_request_bytes {
            config.max_queued_request_bytes = v;
        }
        if let Some(v) = self.request_read_timeout_ms {
            config.request_read_timeout_ms = v;
        }
        if let Some(v) = self.request_read_min_bytes_per_second {
            config.request_read_min_bytes_per_second = v;
        }
        if let Some(v) = self.sasl_server_max_receive_size {
            config.sasl_server_max_receive_size = v;
        }
        if let Some(v) = self.oauthbearer_jwks_file {
            config.oauthbearer.jwks_file = Some(v);
        }
        if let Some(v) = self.oauthbearer_issuer {
            config.oauthbearer.issuer = Some(v);
        }
        config
            .oauthbearer
            .audience
            .extend(self.oauthbearer_audience);
        if let Some(v) = self.node_id {
            config.node_id = v;
        }
        if let Some(v) = self.auto_create_topics {
            config.auto_create_topics = v;
        }
        if let Some(v) = self.retention_check_interval_ms {
            config.retention_check_interval_ms = v;
        }
        for (name, value) in self.topic_defaults {
            config.topic_defaults.insert(name, value);
        }
        if let Some(v) = self.log_format {
            config.log_format = v;
        }
        if let Some(path) = &self.ai_gateway_config {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading --ai-gateway-config {}", path.display()))?;
            config.ai_gateway = toml::from_str(&text)
                .with_context(|| format!("parsing --ai-gateway-config {}", path.display()))?;
        }
        config.validate()?;
        Ok(config)
    }
}

/// Runs the server until SIGTERM or SIGINT.
pub fn run(args: ServeArgs) -> anyhow::Result<()> {
    let filter = tracing_subscriber::EnvFilter::try_new(spate_connect::log_directives(&args.log))
        .with_context(|| format!("invalid log filter {:?}", args.log))?;
    // The format may come from the config file, so the config is read first; nothing logs
    // while it is.
    let directives = args.log.clone();
    let config = args.into_config()?;
    // Log levels change at runtime through BROKER_LOGGER configs (kafka-configs
    // --entity-type broker-loggers): the filter is reloadable whatever the format.
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let reload: Box<dyn Fn(tracing_subscriber::EnvFilter) -> Result<(), String> + Send + Sync> =
        match config.log_format {
            spate_server::config::LogFormat::Text => {
                let logs = logs
                    .with_ansi(std::io::stderr().is_terminal())
                    .with_filter_reloading();
                let handle = logs.reload_handle();
                logs.init();
                Box::new(move |filter| handle.reload(filter).map_err(|e| e.to_string()))
            }
            // Fields beside `message` at the top level, as log shippers index them; no span
            // context (Spate's events carry their own fields).
            spate_server::config::LogFormat::Json => {
                let logs = logs
                    .json()
                    .flatten_event(true)
                    .with_current_span(false)
                    .with_span_list(false)
                    .with_filter_reloading();
                let handle = logs.reload_handle();
                logs.init();
                Box::new(move |filter| handle.reload(filter).map_err(|e| e.to_string()))
            }
        };
    spate_server::log_levels::install(
        &directives,
        Box::new(move |directives: &str| {
            let filter =
                tracing_subscriber::EnvFilter::try_new(spate_connect::log_directives(directives))
                    .map_err(|e| format!("invalid log filter {directives:?}: {e}"))?;
            reload(filter)
        }),
    );
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("spate-worker")
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(spate_server::run(config, spate_server::shutdown_signal()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::{Args, Command};

    #[test]
    fn every_serve_flag_reads_an_environment_variable() {
        let command = ServeArgs::augment_args(Command::new("serve"));
        let missing: Vec<String> = command
            .get_arguments()
            .filter(|a| a.get_long().is_some() && a.get_env().is_none())
            .map(|a| a.get_id().to_string())
            .collect();
        assert!(
            missing.is_empty(),
            "flags without SPATE_ variable: {missing:?}"
        );
    }

    #[test]
    fn listen_flags_take_host_names_and_advertised_listeners_name_a_listener() {
        #[derive(clap::Parser)]
        struct Cli {
            #[command(flatten)]
            serve: ServeArgs,
        }
        use clap::Parser;
        let cli = Cli::try_parse_from([
            "serve",
            "--kafka-listen",
            "localhost:19092",
            "--listener",
            "SECURE=SASL_PLAINTEXT://localhost:19093",
            "--advertised-listener",
            "SECURE=broker-1.example.com:9093",
        ])
        .expect("parses");
        let config = cli.serve.into_config().expect("config");
        assert_eq!(
            config.kafka_listen,
            SocketAddr::from(([127, 0, 0, 1], 19092))
        );
        assert_eq!(config.listeners[0].listen.port(), 19093);
        assert_eq!(
            config.listeners[0].advertised.as_deref(),
            Some("broker-1.example.com:9093")
        );
        let unknown = Cli::try_parse_from(["serve", "--advertised-listener", "NOPE=h:1"])
            .expect("parses")
            .serve
            .into_config()
            .expect_err("no such listener");
        assert!(
            unknown.to_string().contains("no listener named NOPE"),
            "{unknown}"
        );
    }
}
