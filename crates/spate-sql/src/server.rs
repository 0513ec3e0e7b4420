//! Running a SQL worker with its API: [`serve`] starts the [`Engine`] (reading its topic,
//! restarting its jobs) and serves the API on a bound listener until `shutdown`, then stops
//! every job (each commits its last checkpoint). `spate serve` runs one in-process; `spate sql
//! worker` runs one against any cluster.

use std::net::SocketAddr;
use std::sync::Arc;

use crate::engine::{Engine, SqlConfig};
use crate::errors::SqlError;

/// Serves the SQL API on `listener` for an engine with `config`; `wrap` adds the server's
/// authentication. `started` gets the engine once it runs (for `/metrics`).
pub async fn serve(
    listener: tokio::net::TcpListener,
    config: SqlConfig,
    wrap: impl FnOnce(axum::Router) -> axum::Router,
    started: impl FnOnce(Arc<Engine>, SocketAddr),
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), SqlError> {
    let addr = listener
        .local_addr()
        .map_err(|e| SqlError::Io(format!("the SQL listener: {e}")))?;
    // The cluster may still be starting (in-process): retry until it answers.
    let engine = loop {
        let attempt = config.clone();
        match tokio::task::spawn_blocking(move || Engine::start(attempt))
            .await
            .map_err(|e| SqlError::Io(e.to_string()))?
        {
            Ok(engine) => break engine,
            Err(SqlError::Io(e)) => {
                tracing::warn!("the SQL worker waits for the cluster: {e}");
                tokio::time::sleep(std::time::Duration::from_secs(1)).await;
            }
            Err(e) => return Err(e),
        }
    };
    started(Arc::clone(&engine), addr);
    let app = wrap(crate::api::router(Arc::clone(&engine)));
    // Streaming queries end when the shutdown begins; the API then waits for its connections.
    let ending = Arc::clone(&engine);
    let shutdown = async move {
        shutdown.await;
        let _ = tokio::task::spawn_blocking(move || ending.stop_queries()).await;
    };
    let served = axum::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown)
    .await;
    let stopping = Arc::clone(&engine);
    let _ = tokio::task::spawn_blocking(move || stopping.shutdown()).await;
    served.map_err(|e| SqlError::Io(format!("the SQL API: {e}")))
}
