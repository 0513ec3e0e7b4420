//! Spate's security model, without I/O: who a client is and what it may do.
//!
//! - [`sasl`]: the server side of the SASL mechanisms Kafka clients use: PLAIN, SCRAM-SHA-256,
//!   SCRAM-SHA-512 (RFC 5802/7677, with Kafka's `tokenauth` extension) and OAUTHBEARER
//!   (RFC 7628, JWTs checked against configured keys). Each mechanism is a state machine fed
//!   the client's SaslAuthenticate bytes; it answers the server's bytes and, when done, the
//!   authenticated principal. Salted SCRAM credentials (`ScramCredential`) are what the broker
//!   stores; PLAIN checks passwords against the same credentials. The client side of PLAIN
//!   and SCRAM (`SaslClient`) is here too, for Spate's own client.
//! - [`http`]: the same users and tokens over HTTP (Basic and Bearer `Authorization`
//!   headers), a cache of verified passwords, and the [`http::Principal`] HTTP handlers see.
//! - [`acl`]: Kafka's authorisation model: principals, resource patterns (literal, prefixed,
//!   wildcard), operations with their implications, allow/deny bindings, super users and
//!   deny-by-default, and the records ACLs are stored as.
//!
//! The broker and server crates do the I/O: storing credentials and ACLs in internal topics,
//! running the SASL exchange on connections, calling the authorizer on every request.

pub mod acl;
pub mod http;
pub mod sasl;
