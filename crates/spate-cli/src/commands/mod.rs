//! One module per subcommand. `serve` starts the server; the others are Kafka clients.

pub mod client_args;
pub mod consume;
pub mod group;
pub mod produce;
pub mod serve;
pub mod topic;
