//! Spate's schema registry: Confluent Schema Registry's REST API served from the broker's own
//! process, with its state in the compacted topic `_schemas`.
//!
//! - [`store`]: the state (schemas by id, subjects and versions, configs, modes) and its
//!   records in `_schemas`, in Confluent's own record format.
//! - [`registry`]: the operations, with compatibility checks and durable writes.
//! - [`api`]: the HTTP routes.
//! - [`error`]: Confluent's error codes and bodies.
//! - `media`: content negotiation (`Accept`, `Content-Type`), as Confluent's Jersey does it.
//! - `validate`: the broker's schema validation on produce, answered from the registry.
//!
//! Schema formats (parsing, canonical forms, compatibility rules) live in `spate-schema`.

pub mod api;
pub mod error;
mod media;
pub mod registry;
pub mod store;
mod validate;

pub use api::router;
pub use error::RegistryError;
pub use registry::{Registry, RegistrySettings};
pub use store::{Compatibility, SCHEMAS_TOPIC};
