//! Running a worker with its REST API: [`run`] opens the state topics on the cluster, starts
//! the worker and serves Kafka Connect's API until `shutdown` resolves, then stops every task
//! (committing what it has) before returning. `spate connect worker` calls it.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, Consumer};

use crate::api::{self, Api};
use crate::config::Props;
use crate::herder::Worker;
use crate::metrics::ConnectMetrics;
use crate::store::{KafkaStateLog, StoreError};
use crate::worker_config::WorkerConfig;

/// Why a worker could not run.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The worker config is invalid.
    #[error("invalid worker configuration: {0}")]
    Config(String),
    /// The REST listener could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The OS error.
        source: std::io::Error,
    },
    /// The state topics could not be opened or read.
    #[error("{0}")]
    Store(#[from] StoreError),
}

/// Runs a worker with `props` (Kafka Connect's worker properties), serving the REST API on
/// `listen`, until `shutdown`. `ready` is told the bound address once the API serves.
pub async fn run(
    props: Props,
    listen: SocketAddr,
    ready: impl FnOnce(SocketAddr),
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), RunError> {
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|source| RunError::Bind {
            addr: listen,
            source,
        })?;
    serve(
        listener,
        props,
        Arc::new(ConnectMetrics::default()),
        |router| router,
        ready,
        shutdown,
    )
    .await
}

/// [`run`] on a bound listener: `spate serve` binds it with its other listeners, and `wrap`s
/// the REST API in its HTTP authentication and ACLs.
pub async fn serve(
    listener: tokio::net::TcpListener,
    props: Props,
    metrics: Arc<ConnectMetrics>,
    wrap: impl FnOnce(axum::Router) -> axum::Router,
    ready: impl FnOnce(SocketAddr),
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), RunError> {
    let unbound = SocketAddr::from(([0, 0, 0, 0], 0));
    let addr = listener.local_addr().map_err(|source| RunError::Bind {
        addr: unbound,
        source,
    })?;
    let host = props
        .get("rest.advertised.host.name")
        .cloned()
        .unwrap_or_else(|| {
            if addr.ip().is_unspecified() {
                "localhost".to_string()
            } else {
                addr.ip().to_string()
            }
        });
    let worker_id = format!("{host}:{}", addr.port());
    let url = format!("http://{worker_id}/");
    let config = WorkerConfig::from_props(props, &worker_id)
        .map_err(|problems| RunError::Config(crate::config::describe(&problems)))?;
    let (worker, cluster_id) =
        tokio::task::spawn_blocking(move || -> Result<(Worker, String), StoreError> {
            let log = KafkaStateLog::open(&config)?;
            let probe: Result<BaseConsumer, _> = config.client("admin.").create();
            let cluster_id = probe
                .ok()
                .and_then(|c| c.client().fetch_cluster_id(Duration::from_secs(10)))
                .unwrap_or_default();
            Ok((
                Worker::start(config, Arc::new(log), url, metrics)?,
                cluster_id,
            ))
        })
        .await
        .map_err(|e| RunError::Config(format!("worker start failed: {e}")))??;
    let worker = Arc::new(worker);
    let router = wrap(api::router(Arc::new(Api {
        worker: Arc::clone(&worker),
        cluster_id,
    })));
    ready(addr);
    let served = axum::serve(
        listener,
        router.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown)
    .await;
    if let Err(e) = served {
        tracing::error!("connect REST listener failed: {e}");
    }
    tokio::task::spawn_blocking(move || worker.stop())
        .await
        .ok();
    Ok(())
}

/// Parses Java properties text (`key=value` or `key: value` lines, `#`/`!` comments) as
/// Kafka's worker property files are written.
pub fn parse_properties(text: &str) -> Props {
    let mut props = Props::new();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with('!') {
            continue;
        }
        let split = line.find(['=', ':']).unwrap_or(line.len());
        let (key, value) = line.split_at(split);
        let value = value.get(1..).unwrap_or("").trim();
        props.insert(key.trim().to_string(), value.to_string());
    }
    props
}
