//! Spate's server: listeners, connections, and the wiring of the services (being written).

pub mod config;

pub use config::Config;

/// Why the server stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// Not built yet.
    #[error("not built yet")]
    Todo,
}

/// Runs the server until `shutdown` resolves.
pub async fn run(_config: Config, _shutdown: impl std::future::Future<Output = ()>) -> Result<(), ServerError> {
    Err(ServerError::Todo)
}

/// Resolves on SIGTERM or SIGINT.
pub async fn shutdown_signal() {}
