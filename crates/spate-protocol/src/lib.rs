//! The Kafka wire protocol as Spate speaks it, on bytes only (sans-io).
//!
//! This crate turns a request frame into a typed request and a typed response into a frame,
//! using the `kafka-protocol` crate's generated message types. It owns the table of APIs and
//! versions Spate advertises ([`versions`]), which must list only what the broker implements.
//! It never touches a socket: the server crate reads and writes frames, the broker crate
//! handles requests.

mod codec;
pub mod throttle;
pub mod versions;

pub use codec::{
    DecodeError, Request, Session, decode_request, encode_response, read_frame_length, split_frame,
    unsupported_api_versions_response,
};
pub use kafka_protocol;
pub use versions::{SUPPORTED_APIS, api_versions_response, supported_versions};
