//! Spate's server: listeners, connections, and the wiring of the services.
//!
//! [`run`] binds the Kafka, HTTP and registry listeners, opens the broker on the data
//! directory and the schema registry on the broker's `_schemas` topic, logs one
//! `spate is ready` line (with the bound addresses, so port 0 is usable) and serves until the
//! shutdown future resolves. Then it stops accepting, lets connections finish what they are
//! doing (bounded), flushes every log and records a clean shutdown. The HTTP listener serves
//! its health endpoints through all of it (`/health/live` 200; `/health/ready` 503 while
//! starting and stopping) and stops last. This crate is the only one that owns sockets.

pub mod build_info;
pub mod config;
mod connection_rate;
mod http;
mod http_auth;
mod kafka;
pub mod log_levels;
mod process;
mod quota;
mod request_memory;
mod sasl;
mod tls;
mod usage;

use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use spate_broker::{Broker, BrokerOptions};
use spate_registry::{Compatibility, Registry, RegistrySettings};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_util::task::TaskTracker;

pub use config::Config;
use config::SecurityProtocol;

/// How long connections get to finish in-flight requests at shutdown.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// Why the server stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// The config is invalid.
    #[error(transparent)]
    Config(#[from] config::ConfigError),
    /// A listener could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// OS error.
        source: std::io::Error,
    },
    /// The broker could not open its data.
    #[error(transparent)]
    Open(#[from] spate_broker::OpenError),
    /// The TLS certificates and keys, or the OAUTHBEARER keys, cannot be used.
    #[error("security settings: {0}")]
    Security(String),
    /// The schema registry could not rebuild its state from `_schemas`.
    #[error("schema registry: {0}")]
    Registry(String),
    /// A task of the server failed.
    #[error("server task failed: {0}")]
    Task(String),
}

/// Runs the server until `shutdown` resolves.
pub async fn run(
    config: Config,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<(), ServerError> {
    Server::bind(config).await?.serve(shutdown).await
}

/// A bound, opened server that has not started serving yet.
pub struct Server {
    config: Config,
    kafka_listener: TcpListener,
    kafka_addr: SocketAddr,
    /// The `[[listeners]]`: name, protocol, socket, bound address.
    extra_listeners: Vec<(String, SecurityProtocol, TcpListener, SocketAddr)>,
    tls: Option<tokio_rustls::TlsAcceptor>,
    http: HttpServer,
    http_addr: SocketAddr,
    registry_listener: TcpListener,
    registry_addr: SocketAddr,
    connect_listener: Option<TcpListener>,
    sql_listener: Option<TcpListener>,
    advertised: (String, u16),
    broker: Arc<Broker>,
    registry: Arc<Registry>,
    started: Instant,
}

/// The HTTP listener, serving from bind to the end of shutdown; aborted if dropped before.
struct HttpServer {
    lifecycle: Arc<http::Lifecycle>,
    /// The full router, set when the server is ready.
    app: Arc<OnceLock<axum::Router>>,
    stop: watch::Sender<bool>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl HttpServer {
    fn start(listener: TcpListener) -> HttpServer {
        let lifecycle = Arc::new(http::Lifecycle::default());
        let app = Arc::new(OnceLock::new());
        let (stop, mut stopped) = watch::channel(false);
        let router = http::outer_router(Arc::clone(&lifecycle), Arc::clone(&app));
        let task = tokio::spawn(async move {
            let serve = axum::serve(
                listener,
                router.into_make_service_with_connect_info::<SocketAddr>(),
            )
            .with_graceful_shutdown(async move {
                let _ = stopped.wait_for(|s| *s).await;
            });
            if let Err(err) = serve.await {
                tracing::error!(error = %err, "http listener failed");
            }
        });
        HttpServer {
            lifecycle,
            app,
            stop,
            task: Some(task),
        }
    }

    /// Stops accepting, lets requests in progress finish, and waits.
    async fn stop(mut self) {
        let _ = self.stop.send(true);
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for HttpServer {
    fn drop(&mut self) {
        if let Some(task) = &self.task {
            task.abort();
        }
    }
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("kafka_addr", &self.kafka_addr)
            .field("http_addr", &self.http_addr)
            .finish_non_exhaustive()
    }
}

impl Server {
    /// Binds the listeners and opens the broker's data (recovering it if needed).
    /// The HTTP listener answers its health endpoints from here on (`/health/ready`: 503
    /// until [`Server::serve`] is serving).
    pub async fn bind(config: Config) -> Result<Server, ServerError> {
        let started = Instant::now();
        config.validate()?;
        raise_fd_limit();
        let bind_error = |addr: SocketAddr| move |source| ServerError::Bind { addr, source };
        let kafka_listener = TcpListener::bind(config.kafka_listen)
            .await
            .map_err(bind_error(config.kafka_listen))?;
        let kafka_addr = kafka_listener
            .local_addr()
            .map_err(bind_error(config.kafka_listen))?;
        let http_listener = TcpListener::bind(config.http_listen)
            .await
            .map_err(bind_error(config.http_listen))?;
        let http_addr = http_listener
            .local_addr()
            .map_err(bind_error(config.http_listen))?;
        let http = HttpServer::start(http_listener);
        let registry_listener = TcpListener::bind(config.registry_listen)
            .await
            .map_err(bind_error(config.registry_listen))?;
        let registry_addr = registry_listener
            .local_addr()
            .map_err(bind_error(config.registry_listen))?;
        let connect_listener = match config.connect_listen {
            Some(addr) => Some(TcpListener::bind(addr).await.map_err(bind_error(addr))?),
            None => None,
        };
        let sql_listener = match config.sql_listen {
            Some(addr) => Some(TcpListener::bind(addr).await.map_err(bind_error(addr))?),
            None => None,
        };
        let mut extra_listeners = Vec::new();
        let mut advertised_listeners = Vec::new();
        for listener in &config.listeners {
            let socket = TcpListener::bind(listener.listen)
                .await
                .map_err(bind_error(listener.listen))?;
            let addr = socket.local_addr().map_err(bind_error(listener.listen))?;
            let (host, port) = listener
                .advertised
                .as_deref()
                .and_then(config::parse_host_port)
                .unwrap_or_else(|| advertise_bound(addr));
            advertised_listeners.push(spate_broker::AdvertisedListener {
                name: listener.name.clone(),
                host,
                port: i32::from(port),
            });
            extra_listeners.push((listener.name.clone(), listener.protocol, socket, addr));
        }
        let uses_tls =
            config.kafka_protocol.tls() || config.listeners.iter().any(|l| l.protocol.tls());
        let tls = if uses_tls {
            Some(tls::acceptor(&config.tls).map_err(ServerError::Security)?)
        } else {
            None
        };
        let advertised = advertised(&config, kafka_addr);
        advertised_listeners.insert(
            0,
            spate_broker::AdvertisedListener {
                name: config.kafka_protocol.name().to_string(),
                host: advertised.0.clone(),
                port: i32::from(advertised.1),
            },
        );
        let options = BrokerOptions {
            listeners: advertised_listeners,
            data_dir: config.data_dir.clone(),
            node_id: config.node_id,
            advertised_host: advertised.0.clone(),
            advertised_port: i32::from(advertised.1),
            auto_create_topics: config.auto_create_topics,
            default_partitions: config.default_partitions,
            fetch_max_bytes: config.fetch_max_bytes,
            topic_defaults: config.topic_defaults.clone(),
            static_configs: config.static_broker_configs(),
            log_levels: log_levels::installed(),
            sync_threads: config.sync_threads,
            groups: spate_broker::groups::CoordinatorSettings {
                groups: spate_broker::groups::classic::GroupSettings {
                    initial_rebalance_delay_ms: config.group_initial_rebalance_delay_ms as i64,
                    min_session_timeout_ms: config.group_min_session_timeout_ms,
                    max_session_timeout_ms: config.group_max_session_timeout_ms,
                    ..Default::default()
                },
                offsets_topic_partitions: config.offsets_topic_partitions,
                offsets_retention_ms: (config.offsets_retention_minutes as i64)
                    .saturating_mul(60_000),
                consumer_session_timeout_ms: config.group_consumer_session_timeout_ms,
                consumer_heartbeat_interval_ms: config.group_consumer_heartbeat_interval_ms,
                consumer_min_session_timeout_ms: config.group_consumer_min_session_timeout_ms,
                consumer_max_session_timeout_ms: config.group_consumer_max_session_timeout_ms,
                consumer_min_heartbeat_interval_ms: config.group_consumer_min_heartbeat_interval_ms,
                consumer_max_heartbeat_interval_ms: config.group_consumer_max_heartbeat_interval_ms,
            },
            transactions: spate_broker::transactions::TransactionSettings {
                partitions: config.transaction_state_partitions,
                max_timeout_ms: config.transaction_max_timeout_ms,
            },
            clock: spate_broker::system_clock(),
            authorization: (config.authorizer == config::AuthorizerKind::Acl).then(|| {
                spate_auth::acl::AuthorizerConfig {
                    super_users: config.super_users.iter().cloned().collect(),
                    allow_everyone_if_no_acl_found: config.allow_everyone_if_no_acl_found,
                }
            }),
        };
        let broker = tokio::task::spawn_blocking(move || Broker::open(options))
            .await
            .map_err(|e| ServerError::Task(e.to_string()))??;
        let settings = RegistrySettings {
            default_compatibility: Compatibility::parse(&config.registry_default_compatibility)
                .unwrap_or(Compatibility::Backward),
        };
        let registry_broker = Arc::clone(&broker);
        let registry =
            tokio::task::spawn_blocking(move || Registry::open(registry_broker, settings))
                .await
                .map_err(|e| ServerError::Task(e.to_string()))?
                .map_err(|e| ServerError::Registry(e.message))?;
        let registry = Arc::new(registry);
        broker.set_schema_validator(Arc::clone(&registry) as _);
        Ok(Server {
            config,
            kafka_listener,
            kafka_addr,
            extra_listeners,
            tls,
            http,
            http_addr,
            registry_listener,
            registry_addr,
            connect_listener,
            sql_listener,
            advertised,
            broker,
            registry,
            started,
        })
    }

    /// The bound Kafka listener address.
    pub fn kafka_addr(&self) -> SocketAddr {
        self.kafka_addr
    }

    /// The bound HTTP listener address.
    pub fn http_addr(&self) -> SocketAddr {
        self.http_addr
    }

    /// The bound schema registry listener address.
    pub fn registry_addr(&self) -> SocketAddr {
        self.registry_addr
    }

    /// The broker, for in-process tests.
    pub fn broker(&self) -> &Arc<Broker> {
        &self.broker
    }

    /// Serves until `shutdown` resolves, then stops cleanly.
    pub async fn serve(
        self,
        shutdown: impl std::future::Future<Output = ()>,
    ) -> Result<(), ServerError> {
        let Server {
            config,
            kafka_listener,
            kafka_addr,
            extra_listeners,
            tls,
            http,
            http_addr,
            registry_listener,
            registry_addr,
            connect_listener,
            sql_listener,
            advertised: (advertised_host, advertised_port),
            broker,
            registry,
            started,
        } = self;
        let (stop_tx, stop_rx) = watch::channel(false);
        let connection_metrics = Arc::new(kafka::ConnectionMetrics::default());
        let tracker = TaskTracker::new();
        let limits = kafka::Limits {
            max_request_bytes: config.max_request_bytes,
            max_in_flight: config.max_in_flight_per_connection,
            idle_timeout: Duration::from_millis(config.idle_timeout_ms),
            min_rate: kafka::MinRate {
                timeout: Duration::from_millis(config.request_read_timeout_ms),
                bytes_per_second: config.request_read_min_bytes_per_second,
            },
            sasl_max_receive_bytes: config.sasl_server_max_receive_size,
        };
        // Connection limits are broker configs that change at runtime (IncrementalAlterConfigs
        // on the broker resource); the accept loop reads them for every new connection.
        let connection_limits = broker.connection_limits();
        let connections = Arc::new(kafka::OpenConnections::new(Arc::clone(&connection_limits)));
        let per_ip = Arc::new(kafka::PerIp::new(Arc::clone(&connection_limits)));
        let rates = Arc::new(connection_rate::ConnectionRates::new(connection_limits));
        let memory = request_memory::RequestMemory::new(config.max_queued_request_bytes);
        let slow_log = Arc::new(kafka::LogThrottle::default());
        let mut sockets = vec![(
            config.kafka_protocol.name().to_string(),
            config.kafka_protocol,
            kafka_listener,
            kafka_addr,
        )];
        sockets.extend(extra_listeners);
        let tokens = token_validator(&config)?;
        let sasl_settings = Arc::new(sasl::SaslSettings {
            mechanisms: config
                .sasl_mechanisms
                .iter()
                .filter_map(|m| spate_auth::sasl::Mechanism::parse(m))
                .collect(),
            store: broker.credential_store(),
            tokens: tokens.clone(),
            max_reauth: (config.connections_max_reauth_ms > 0)
                .then(|| Duration::from_millis(config.connections_max_reauth_ms)),
        });
        let mut listeners_line = Vec::new();
        let mut accepts = Vec::new();
        for (name, protocol, socket, addr) in sockets {
            listeners_line.push(format!("{name}:{}://{addr}", protocol.name()));
            let listener = Arc::new(kafka::Listener {
                name: name.into(),
                tls: protocol.tls().then(|| tls.clone()).flatten(),
                sasl: protocol.sasl().then(|| Arc::clone(&sasl_settings)),
                broker: Arc::clone(&broker),
                limits: limits.clone(),
                connections: Arc::clone(&connections),
                per_ip: Arc::clone(&per_ip),
                rates: Arc::clone(&rates),
                memory: Arc::clone(&memory),
                slow_log: Arc::clone(&slow_log),
                metrics: Arc::clone(&connection_metrics),
                tracker: tracker.clone(),
            });
            accepts.push(tokio::spawn(listener.run(socket, stop_rx.clone())));
        }

        let http_auth = Arc::new(http_auth::HttpAuth::new(
            config.http_auth,
            broker.credential_store(),
            tokens,
        ));
        let connect_metrics = connect_listener
            .is_some()
            .then(|| Arc::new(spate_connect::metrics::ConnectMetrics::default()));
        let sql_engine = Arc::new(OnceLock::new());
        // The embedding model loads before the server is ready (a second or so for
        // all-MiniLM-L6-v2); one that fails to load is logged and answered with 503.
        let ai_models: Vec<(String, std::path::PathBuf)> = config
            .ai_model_dir
            .iter()
            .map(|dir| {
                let name = config
                    .ai_model_name
                    .clone()
                    .unwrap_or_else(|| spate_ai::embed::default_name(dir));
                (name, dir.clone())
            })
            .collect();
        let ai = Arc::new(
            tokio::task::spawn_blocking(move || spate_ai::Ai::load(&ai_models))
                .await
                .unwrap_or_else(|_| spate_ai::Ai::load(&[])),
        );
        let gateway = Arc::new(
            spate_ai::gateway::Gateway::new(&config.ai_gateway)
                .map_err(|e| ServerError::Task(format!("the ai gateway: {e}")))?,
        );
        ai.set_gateway_models(gateway.models());
        if gateway.enabled() {
            tracing::info!(
                providers = config.ai_gateway.providers.len(),
                keys = config.ai_gateway.keys.len(),
                "ai gateway serves POST /v1/chat/completions"
            );
        }
        let router = http::router(http::HttpState {
            ai: Arc::clone(&ai),
            gateway: Arc::clone(&gateway),
            sql: Arc::clone(&sql_engine),
            connect: connect_metrics.clone(),
            broker: Arc::clone(&broker),
            connections: connection_metrics,
            auth: Arc::clone(&http_auth),
            started,
            data_dir: config.data_dir.clone(),
        });
        let _ = http.app.set(router);

        // The registry follows `_schemas` while it runs, so records other writers append
        // there are served without a restart.
        let mut tail_stop = stop_rx.clone();
        let registry_tail = tokio::spawn(Arc::clone(&registry).run_tail(async move {
            let _ = tail_stop.wait_for(|s| *s).await;
        }));
        let mut registry_stop = stop_rx.clone();
        let connect_auth = Arc::clone(&http_auth);
        let sql_auth = Arc::clone(&http_auth);
        let registry_router = http_auth::protect(
            http_auth::authorize(
                spate_registry::router(registry),
                Arc::clone(&broker),
                http_auth::Listener::Registry,
            ),
            http_auth,
            http_auth::Listener::Registry,
        );
        let registry_api = tokio::spawn(async move {
            let serve = axum::serve(
                registry_listener,
                registry_router.into_make_service_with_connect_info::<SocketAddr>(),
            )
            .with_graceful_shutdown(async move {
                let _ = registry_stop.wait_for(|s| *s).await;
            });
            if let Err(err) = serve.await {
                tracing::error!(error = %err, "schema registry listener failed");
            }
        });

        // The audit writer stops last, so what connections record while they finish is kept.
        let (audit_stop, audit_stopped) = tokio::sync::oneshot::channel::<()>();
        let audit = tokio::spawn(Arc::clone(&broker).run_audit(async move {
            let _ = audit_stopped.await;
        }));
        let (usage_stop, usage_stopped) = tokio::sync::oneshot::channel::<()>();
        let usage = tokio::spawn(Arc::clone(&broker).run_usage(async move {
            let _ = usage_stopped.await;
        }));
        let mut maintenance_stop = stop_rx.clone();
        let maintenance = tokio::spawn(Arc::clone(&broker).run_maintenance(
            config.retention_check_interval_ms,
            async move {
                let _ = maintenance_stop.wait_for(|s| *s).await;
            },
        ));

        http.lifecycle.set(http::Phase::Ready);
        tracing::info!(
            version = build_info::VERSION,
            commit = build_info::COMMIT,
            kafka_addr = %kafka_addr,
            http_addr = %http_addr,
            registry_addr = %registry_addr,
            http_auth = %config.http_auth,
            listeners = %listeners_line.join(","),
            advertised = %format!("{advertised_host}:{advertised_port}"),
            data_dir = %config.data_dir.display(),
            cluster_id = broker.cluster_id(),
            "spate is ready"
        );

        let (connect_stop, connect_stopped) = tokio::sync::oneshot::channel::<()>();
        let connect = match (connect_listener, connect_metrics) {
            (Some(listener), Some(metrics)) => {
                // The registry's authentication and ACLs guard Kafka Connect's API too.
                let auth = Arc::clone(&connect_auth);
                let acl_broker = Arc::clone(&broker);
                let wrap = move |router: axum::Router| {
                    http_auth::protect(
                        http_auth::authorize(router, acl_broker, http_auth::Listener::Connect),
                        auth,
                        http_auth::Listener::Connect,
                    )
                };
                connect_worker(&config, kafka_addr, listener, metrics, wrap, async move {
                    let _ = connect_stopped.await;
                })?
            }
            _ => None,
        };
        let (sql_stop, sql_stopped) = tokio::sync::oneshot::channel::<()>();
        let sql = sql_listener.map(|listener| {
            let auth = Arc::clone(&sql_auth);
            let acl_broker = Arc::clone(&broker);
            let wrap = move |router: axum::Router| {
                http_auth::protect(
                    http_auth::authorize(router, acl_broker, http_auth::Listener::Sql),
                    auth,
                    http_auth::Listener::Sql,
                )
            };
            sql_worker(
                &config,
                kafka_addr,
                registry_addr,
                listener,
                sql_engine,
                wrap,
                async move {
                    let _ = sql_stopped.await;
                },
            )
        });

        let (ai_stop, ai_stopped) = tokio::sync::watch::channel(false);
        let ai_indexes = config
            .ai_model_dir
            .is_some()
            .then(|| ai_indexes_worker(kafka_addr, Arc::clone(&ai), ai_stopped.clone()));
        // The gateway's records go to `_ai_requests` through librdkafka, as any client's.
        let gateway_recorder = gateway.enabled().then(|| {
            tokio::spawn(
                gateway
                    .recorder()
                    .run(local_cluster(kafka_addr), ai_stopped.clone()),
            )
        });

        shutdown.await;
        http.lifecycle.set(http::Phase::Stopping);
        tracing::info!("shutting down");
        let stopping = std::time::Instant::now();
        let step = |what: &str| {
            tracing::debug!(
                elapsed_ms = stopping.elapsed().as_millis() as u64,
                "shutdown: {what}"
            );
        };
        // SQL jobs and Connect's tasks commit what they hold through the Kafka listeners: stop
        // them first.
        let _ = sql_stop.send(());
        if let Some(sql) = sql {
            let _ = sql.await;
            step("sql worker stopped");
        }
        let _ = ai_stop.send(true);
        if let Some(worker) = ai_indexes {
            let _ = worker.await;
            step("ai indexes stopped");
        }
        if let Some(recorder) = gateway_recorder {
            let _ = recorder.await;
            step("ai gateway records flushed");
        }
        let _ = connect_stop.send(());
        if let Some(connect) = connect {
            let _ = connect.await;
            step("connect worker stopped");
        }
        let _ = stop_tx.send(true);
        for accept in accepts {
            let _ = accept.await;
        }
        step("listeners closed");
        tracker.close();
        if tokio::time::timeout(SHUTDOWN_GRACE, tracker.wait())
            .await
            .is_err()
        {
            tracing::warn!("connections still busy after the grace period; closing them");
        }
        step("connections finished");
        let _ = registry_api.await;
        let _ = registry_tail.await;
        step("registry stopped");
        let _ = maintenance.await;
        step("maintenance stopped");
        let _ = usage_stop.send(());
        let _ = usage.await;
        step("usage written");
        let _ = audit_stop.send(());
        let _ = audit.await;
        step("audit written");
        broker.clear_schema_validator();
        tokio::task::spawn_blocking(move || broker.shutdown())
            .await
            .map_err(|e| ServerError::Task(e.to_string()))?;
        step("logs flushed");
        http.stop().await;
        tracing::info!("stopped");
        Ok(())
    }
}

/// Starts the in-process Connect worker (a Kafka client of this broker, as DESIGN.md's
/// pillars are) serving Kafka Connect's REST API on `listener`. A worker that cannot start is
/// logged; the broker keeps serving.
fn connect_worker(
    config: &Config,
    kafka_addr: SocketAddr,
    listener: TcpListener,
    metrics: Arc<spate_connect::metrics::ConnectMetrics>,
    wrap: impl FnOnce(axum::Router) -> axum::Router + Send + 'static,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<Option<tokio::task::JoinHandle<()>>, ServerError> {
    let mut props = spate_connect::config::Props::new();
    let host = if kafka_addr.ip().is_unspecified() {
        SocketAddr::new(std::net::Ipv4Addr::LOCALHOST.into(), kafka_addr.port())
    } else {
        kafka_addr
    };
    props.insert("bootstrap.servers".into(), host.to_string());
    // As connect-standalone.properties: offsets committed every 10 s, not Kafka's 60 s.
    props.insert("offset.flush.interval.ms".into(), "10000".into());
    if let Some(path) = &config.connect_worker_config {
        let text = std::fs::read_to_string(path).map_err(|e| {
            ServerError::Security(format!("connect-worker-config {}: {e}", path.display()))
        })?;
        props.extend(spate_connect::server::parse_properties(&text));
    }
    Ok(Some(tokio::spawn(async move {
        let served = spate_connect::server::serve(
            listener,
            props,
            metrics,
            wrap,
            |addr| tracing::info!(connect_addr = %addr, "connect worker is ready"),
            shutdown,
        )
        .await;
        if let Err(e) = served {
            tracing::error!("the connect worker could not start: {e}");
        }
    })))
}

/// Starts the in-process SQL worker (a Kafka client of this broker) serving the SQL API on
/// `listener`. A worker that cannot start is logged; the broker keeps serving.
fn sql_worker(
    config: &Config,
    kafka_addr: SocketAddr,
    registry_addr: SocketAddr,
    listener: TcpListener,
    engine: Arc<OnceLock<Arc<spate_sql::engine::Engine>>>,
    wrap: impl FnOnce(axum::Router) -> axum::Router + Send + 'static,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> tokio::task::JoinHandle<()> {
    let host = if kafka_addr.ip().is_unspecified() {
        SocketAddr::new(std::net::Ipv4Addr::LOCALHOST.into(), kafka_addr.port())
    } else {
        kafka_addr
    };
    let mut sql_config = spate_sql::engine::SqlConfig::new(&host.to_string());
    sql_config.checkpoint_interval = Duration::from_millis(config.sql_checkpoint_interval_ms);
    let registry = if registry_addr.ip().is_unspecified() {
        SocketAddr::new(std::net::Ipv4Addr::LOCALHOST.into(), registry_addr.port())
    } else {
        registry_addr
    };
    sql_config.registry_url = Some(format!("http://{registry}"));
    tokio::spawn(async move {
        let served = spate_sql::server::serve(
            listener,
            sql_config,
            wrap,
            move |started, addr| {
                let _ = engine.set(started);
                tracing::info!(sql_addr = %addr, "sql worker is ready");
            },
            shutdown,
        )
        .await;
        if let Err(e) = served {
            tracing::error!("the sql worker could not start: {e}");
        }
    })
}

/// This broker as the AI pillar's Kafka clients reach it.
fn local_cluster(kafka_addr: SocketAddr) -> spate_ai::kafka::Cluster {
    let host = if kafka_addr.ip().is_unspecified() {
        SocketAddr::new(std::net::Ipv4Addr::LOCALHOST.into(), kafka_addr.port())
    } else {
        kafka_addr
    };
    spate_ai::kafka::Cluster {
        bootstrap: host.to_string(),
        client: Vec::new(),
    }
}

/// Starts the AI pillar's indexes (Kafka clients of this broker) once the broker answers,
/// and stops them (each ends its open transaction) when `stop` turns true.
fn ai_indexes_worker(
    kafka_addr: SocketAddr,
    ai: Arc<spate_ai::Ai>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()> {
    let cluster = local_cluster(kafka_addr);
    tokio::spawn(async move {
        loop {
            let attempt = cluster.clone();
            let weak = Arc::downgrade(&ai);
            let started = tokio::task::spawn_blocking(move || {
                spate_ai::indexes::Indexes::start(attempt, weak)
            })
            .await;
            match started {
                Ok(Ok(indexes)) => {
                    ai.set_indexes(indexes);
                    tracing::info!("ai indexes are ready");
                    break;
                }
                Ok(Err(e)) => tracing::warn!("the ai indexes wait for the cluster: {e}"),
                Err(e) => {
                    tracing::error!("the ai indexes could not start: {e}");
                    return;
                }
            }
            tokio::select! {
                _ = stop.wait_for(|s| *s) => return,
                () = tokio::time::sleep(Duration::from_secs(1)) => {}
            }
        }
        let _ = stop.wait_for(|s| *s).await;
        if let Some(indexes) = ai.indexes().cloned() {
            let _ = tokio::task::spawn_blocking(move || indexes.shutdown()).await;
        }
    })
}

/// The host and port clients are told to use.
fn advertised(config: &Config, bound: SocketAddr) -> (String, u16) {
    if let Some((host, port)) = config
        .advertised_kafka
        .as_deref()
        .and_then(config::parse_host_port)
    {
        return (host, port);
    }
    let host = if bound.ip().is_unspecified() {
        "localhost".to_string()
    } else {
        bound.ip().to_string()
    };
    (host, bound.port())
}

/// The OAUTHBEARER token validator, when a JWKS file is configured.
fn token_validator(
    config: &Config,
) -> Result<Option<Arc<dyn spate_auth::sasl::TokenValidator + Send + Sync>>, ServerError> {
    let Some(path) = &config.oauthbearer.jwks_file else {
        return Ok(None);
    };
    let jwks = std::fs::read_to_string(path).map_err(|e| {
        ServerError::Security(format!("oauthbearer.jwks-file {}: {e}", path.display()))
    })?;
    let defaults = spate_auth::sasl::JwtConfig::default();
    let settings = spate_auth::sasl::JwtConfig {
        expected_issuer: config.oauthbearer.issuer.clone(),
        expected_audiences: config.oauthbearer.audience.clone(),
        principal_claim: config
            .oauthbearer
            .principal_claim
            .clone()
            .unwrap_or(defaults.principal_claim),
        clock_skew_secs: defaults.clock_skew_secs,
    };
    let validator = spate_auth::sasl::JwtValidator::from_jwks(&jwks, settings).map_err(|e| {
        ServerError::Security(format!("oauthbearer.jwks-file {}: {e}", path.display()))
    })?;
    Ok(Some(Arc::new(validator)))
}

/// The address clients are told for a listener bound to `addr` with no advertised address.
fn advertise_bound(addr: SocketAddr) -> (String, u16) {
    let host = if addr.ip().is_unspecified() {
        "localhost".to_string()
    } else {
        addr.ip().to_string()
    };
    (host, addr.port())
}

/// Lets the broker hold a file handle per segment and a socket per client.
fn raise_fd_limit() {
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(limit) => tracing::debug!(limit, "open file limit"),
        Err(err) => tracing::warn!(error = %err, "could not raise the open file limit"),
    }
}

/// Resolves on SIGTERM or SIGINT.
pub async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        tracing::warn!("cannot install signal handlers; stop with SIGKILL");
        std::future::pending::<()>().await;
        return;
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
}
