//! The connectors built into Spate, one module each.

pub mod datagen;
pub mod file;
pub mod http;
pub mod jdbc;
pub mod mirror;
pub mod postgres;
