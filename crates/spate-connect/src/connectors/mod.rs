//! The connectors built into Spate, one module each.

pub mod datagen;
pub mod file;
pub mod http;
pub mod iceberg;
pub mod jdbc;
pub mod mirror;
pub mod postgres;
pub mod storage;
