//! The connectors built into Spate, one module each.

pub mod file;
pub mod http;
