//! The registry as the broker's [`SchemaValidator`]: a key or value passes when it starts
//! with Confluent's wire-format header (magic byte 0, then the schema id as a big-endian
//! 32-bit integer), the id is registered under the subject the topic's naming strategy gives,
//! and (when asked) the rest decodes against that schema.
//!
//! Subjects by strategy: TopicNameStrategy `<topic>-key|value`; RecordNameStrategy the
//! record's fully-qualified name; TopicRecordNameStrategy `<topic>-<name>`. A schema's record
//! names are: Avro, the named type's full name; JSON Schema, its `title`; Protobuf, the full
//! names of the file's top-level messages (the message index in the payload is not consulted
//! to pick one, so any message of the file matches).

use std::sync::Arc;

use spate_broker::validation::{PayloadDecoder, RecordPart, SchemaValidator};
use spate_log::config::SubjectNameStrategy;
use spate_schema::{Parsed, SchemaType};

use crate::Registry;
use crate::store::SchemaEntry;

impl SchemaValidator for Registry {
    fn check(
        &self,
        topic: &str,
        part: RecordPart,
        strategy: SubjectNameStrategy,
        decode: bool,
        bytes: &[u8],
    ) -> Result<Option<Arc<dyn PayloadDecoder>>, String> {
        let [0, a, b, c, d, ..] = *bytes else {
            return Err(
                "does not start with the schema registry wire format (magic byte 0 and a 4-byte schema id)"
                    .to_string(),
            );
        };
        let id = i32::from_be_bytes([a, b, c, d]);
        let entry = self
            .schema(id)
            .map_err(|_| format!("has schema id {id}, which is not registered"))?;
        let matches = |subject: &str| self.subject_has_live_id(subject, id);
        let ok = match strategy {
            SubjectNameStrategy::Topic => matches(&format!("{topic}-{}", part.name())),
            SubjectNameStrategy::Record => entry
                .record_names
                .get_or_init(|| record_names(&entry))
                .iter()
                .any(|n| matches(n)),
            SubjectNameStrategy::TopicRecord => entry
                .record_names
                .get_or_init(|| record_names(&entry))
                .iter()
                .any(|n| matches(&format!("{topic}-{n}"))),
        };
        if !ok {
            let expected = match strategy {
                SubjectNameStrategy::Topic => format!("subject {topic}-{}", part.name()),
                SubjectNameStrategy::Record => "its record name's subject".to_string(),
                SubjectNameStrategy::TopicRecord => format!("subject {topic}-<record name>"),
            };
            return Err(format!(
                "has schema id {id}, which is not registered under {expected}"
            ));
        }
        if !decode {
            return Ok(None);
        }
        let parsed = self.parsed(&entry).map_err(|e| {
            format!(
                "has schema id {id}, whose schema cannot be used: {}",
                e.message
            )
        })?;
        Ok(Some(Arc::new(Decoder { id, parsed })))
    }
}

/// Decodes payloads against one registered schema.
struct Decoder {
    id: i32,
    parsed: Arc<Parsed>,
}

impl PayloadDecoder for Decoder {
    fn decode(&self, payload: &[u8]) -> Result<(), String> {
        self.parsed
            .validate_payload(payload)
            .map_err(|reason| format!("does not decode with schema id {}: {reason}", self.id))
    }
}

/// The names a schema's records go by, for the record name strategies.
fn record_names(entry: &SchemaEntry) -> Vec<String> {
    match entry.schema_type {
        SchemaType::Avro => {
            let Ok(json) = serde_json::from_str::<serde_json::Value>(&entry.text) else {
                return Vec::new();
            };
            let Some(name) = json.get("name").and_then(|n| n.as_str()) else {
                return Vec::new();
            };
            match json.get("namespace").and_then(|n| n.as_str()) {
                Some(ns) if !name.contains('.') && !ns.is_empty() => vec![format!("{ns}.{name}")],
                _ => vec![name.to_string()],
            }
        }
        SchemaType::Json => serde_json::from_str::<serde_json::Value>(&entry.text)
            .ok()
            .and_then(|json| {
                json.get("title")
                    .and_then(|t| t.as_str())
                    .map(str::to_string)
            })
            .into_iter()
            .collect(),
        SchemaType::Protobuf => protobuf_message_names(&entry.text),
    }
}

/// Top-level message full names of a canonical .proto text (`package` plus each
/// `message` declared at depth 0).
fn protobuf_message_names(text: &str) -> Vec<String> {
    let mut package = String::new();
    let mut names = Vec::new();
    let mut depth = 0usize;
    for line in text.lines() {
        let line = line.trim();
        if depth == 0 {
            if let Some(rest) = line.strip_prefix("package ") {
                package = rest.trim_end_matches(';').trim().to_string();
            } else if let Some(rest) = line.strip_prefix("message ") {
                let name = rest.trim_end_matches('{').trim();
                names.push(if package.is_empty() {
                    name.to_string()
                } else {
                    format!("{package}.{name}")
                });
            }
        }
        depth += line.matches('{').count();
        depth = depth.saturating_sub(line.matches('}').count());
    }
    names
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn protobuf_record_names_are_the_top_level_messages() {
        let text = "syntax = \"proto3\";\npackage shop;\n\nmessage Order {\n  message Line {\n    string sku = 1;\n  }\n  repeated Line lines = 1;\n}\n\nmessage Refund {\n  int64 id = 1;\n}\n";
        assert_eq!(
            protobuf_message_names(text),
            vec!["shop.Order", "shop.Refund"]
        );
    }
}
