//! Spate SQL, the process pillar: continuous Flink SQL over topics. Statements are parsed in
//! Flink's dialect ([`parse`]), planned against the tables of the [`catalog`] into a dataflow
//! ([`plan`]) whose operators ([`exec`]) run as jobs ([`job`]) — Kafka clients of the
//! cluster, exactly once through its transactions; with parallelism, cut into stages
//! ([`stages`]) whose tasks the workers share ([`tasks`]) — behind an HTTP API on port 8088
//! ([`api`]).
//! It depends on no broker crate (../shared/DESIGN.md, "Pillars above the broker").

pub mod api;
pub mod catalog;
pub mod engine;
pub mod errors;
pub mod exec;
pub mod expr;
pub mod format;
pub mod functions;
pub mod job;
pub mod join;
pub mod parse;
pub mod plan;
pub mod server;
pub mod stages;
pub mod tasks;
pub mod types;
