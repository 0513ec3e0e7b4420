//! One module per subcommand. `serve` starts the server; `schema` is a schema registry (REST)
//! client; the others are Kafka clients.

pub mod acl;
pub mod client_args;
pub mod consume;
pub mod group;
pub mod produce;
pub mod quota;
pub mod schema;
pub mod serve;
pub mod topic;
pub mod user;
