//! One module per subcommand. `serve` starts the server; `schema` is a schema registry (REST)
//! client; `profile` manages connection profiles; the others are Kafka clients.
//! `client_args` (connection flags and profiles), `registry` (the registry's REST client) and
//! `wire` (schema'd records in Confluent's wire format) are shared by several commands.

pub mod acl;
pub mod client_args;
pub mod cluster;
pub mod connect;
pub mod consume;
pub mod group;
pub mod produce;
pub mod profile;
pub mod quota;
pub mod registry;
pub mod schema;
pub mod serve;
pub mod sql;
pub mod topic;
pub mod user;
pub mod wire;

/// Resolves on Ctrl-C or SIGTERM: the workers' (`spate connect worker`, `spate sql worker`)
/// signal to stop cleanly.
pub async fn stop_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("installing the SIGTERM handler");
        tokio::select! {
            _ = interrupt => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = interrupt.await;
}
