//! Schema formats for Spate's schema registry: parsing, canonical forms, compatibility rules and
//! payload checks for Avro, JSON Schema and Protobuf, with no networking and no storage.
//!
//! The registry (`spate-registry`) stores schema texts and asks this crate three questions:
//! is this text a valid schema of its type (given the schemas it references), what is its
//! canonical text (so the same schema registered twice gets the same id), and can a reader
//! using one schema read data written with another. The broker asks a fourth, when a topic
//! validates payloads: does this payload decode against this schema.
//!
//! Compatibility is always asked as "can `reader` read what `writer` wrote". The registry maps
//! Confluent's levels onto it: BACKWARD checks the new schema as reader of the old one,
//! FORWARD the old one as reader of the new one, FULL both; the `_TRANSITIVE` levels check
//! against every earlier version instead of only the latest.

pub mod avro;
pub mod json;
pub mod protobuf;

use std::fmt;

/// The three schema types of Confluent Schema Registry, by their REST names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SchemaType {
    /// Apache Avro, the default when a request names no type.
    Avro,
    /// JSON Schema (drafts 4 to 2020-12).
    Json,
    /// Protocol Buffers, proto2 or proto3 source text.
    Protobuf,
}

impl SchemaType {
    /// The REST name: `AVRO`, `JSON` or `PROTOBUF`.
    pub fn name(self) -> &'static str {
        match self {
            SchemaType::Avro => "AVRO",
            SchemaType::Json => "JSON",
            SchemaType::Protobuf => "PROTOBUF",
        }
    }

    /// Parses a REST name, case-insensitively as Confluent does.
    pub fn parse(name: &str) -> Option<SchemaType> {
        match name.to_ascii_uppercase().as_str() {
            "AVRO" => Some(SchemaType::Avro),
            "JSON" => Some(SchemaType::Json),
            "PROTOBUF" => Some(SchemaType::Protobuf),
            _ => None,
        }
    }
}

impl fmt::Display for SchemaType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A schema that the one being parsed references, already resolved by the registry.
///
/// `name` is the reference's name as the referencing schema uses it: for Avro the full name
/// of the named type the referenced schema defines (Confluent's convention), for Protobuf the
/// import path (`"other.proto"`), for JSON Schema the URL used in `$ref`. `text` is the
/// referenced schema's own text. The registry passes every reference reachable from the
/// schema, transitively, each once, dependencies before the schemas that use them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dependency {
    /// The reference's name, as used by the referencing schema.
    pub name: String,
    /// The referenced schema's text.
    pub text: String,
}

/// Why a text is not a valid schema, in words a user can act on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct SchemaError(pub String);

/// A parsed schema of any type.
#[derive(Debug, Clone)]
pub enum Parsed {
    /// An Avro schema.
    Avro(avro::AvroSchema),
    /// A JSON Schema.
    Json(json::JsonSchema),
    /// A Protobuf file.
    Protobuf(protobuf::ProtobufSchema),
}

impl Parsed {
    /// Parses `text` as a schema of `schema_type`. With `normalize`, the canonical form is
    /// also normalised (Confluent's `normalize=true`): semantically equal schemas written
    /// differently then get the same canonical text.
    pub fn parse(
        schema_type: SchemaType,
        text: &str,
        dependencies: &[Dependency],
        normalize: bool,
    ) -> Result<Parsed, SchemaError> {
        Ok(match schema_type {
            SchemaType::Avro => {
                Parsed::Avro(avro::AvroSchema::parse(text, dependencies, normalize)?)
            }
            SchemaType::Json => {
                Parsed::Json(json::JsonSchema::parse(text, dependencies, normalize)?)
            }
            SchemaType::Protobuf => Parsed::Protobuf(protobuf::ProtobufSchema::parse(
                text,
                dependencies,
                normalize,
            )?),
        })
    }

    /// The schema's type.
    pub fn schema_type(&self) -> SchemaType {
        match self {
            Parsed::Avro(_) => SchemaType::Avro,
            Parsed::Json(_) => SchemaType::Json,
            Parsed::Protobuf(_) => SchemaType::Protobuf,
        }
    }

    /// The canonical text: what the registry stores and compares to decide whether a schema
    /// is already registered.
    pub fn canonical(&self) -> &str {
        match self {
            Parsed::Avro(s) => s.canonical(),
            Parsed::Json(s) => s.canonical(),
            Parsed::Protobuf(s) => s.canonical(),
        }
    }

    /// Why `reader` cannot read everything written with `writer`: one message per broken
    /// rule, naming the field (or message, type, ...) and the rule. Empty when compatible.
    /// Schemas of different types are never compatible.
    pub fn incompatibilities(reader: &Parsed, writer: &Parsed) -> Vec<String> {
        match (reader, writer) {
            (Parsed::Avro(r), Parsed::Avro(w)) => avro::AvroSchema::incompatibilities(r, w),
            (Parsed::Json(r), Parsed::Json(w)) => json::JsonSchema::incompatibilities(r, w),
            (Parsed::Protobuf(r), Parsed::Protobuf(w)) => {
                protobuf::ProtobufSchema::incompatibilities(r, w)
            }
            _ => vec![format!(
                "schema type {} cannot read data written with schema type {}",
                reader.schema_type(),
                writer.schema_type()
            )],
        }
    }

    /// Checks that `payload` (the bytes after Confluent's 5-byte wire-format header: magic
    /// byte 0 and the 4-byte schema id) decodes against this schema. For Protobuf the payload
    /// starts with the message-index list that says which message of the file it holds.
    pub fn validate_payload(&self, payload: &[u8]) -> Result<(), String> {
        match self {
            Parsed::Avro(s) => s.validate_payload(payload),
            Parsed::Json(s) => s.validate_payload(payload),
            Parsed::Protobuf(s) => s.validate_payload(payload),
        }
    }
}
