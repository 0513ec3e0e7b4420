//! Schema validation on produce: for topics with `confluent.value.schema.validation` (or the
//! key variant) set, every record's value (or key) must carry Confluent's wire-format header
//! with a schema id registered for the topic's subject, and with
//! `spate.schema.validation.decode` must also decode against that schema.
//!
//! The broker does not know schemas: the schema registry implements [`SchemaValidator`] and
//! is installed with [`Broker::set_schema_validator`]. A batch is checked whole before it is
//! appended, so a refused batch leaves nothing in the log; the produce response carries
//! INVALID_RECORD with the reason and the index of the first bad record.

use std::sync::Arc;

use spate_log::BatchHeader;
use spate_log::config::{SchemaValidation, SubjectNameStrategy};

use crate::Broker;

/// Which part of a record is checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordPart {
    /// The key (subject `<topic>-key` with the topic strategy).
    Key,
    /// The value (subject `<topic>-value` with the topic strategy).
    Value,
}

impl RecordPart {
    /// `key` or `value`, as in subject names and messages.
    pub fn name(self) -> &'static str {
        match self {
            RecordPart::Key => "key",
            RecordPart::Value => "value",
        }
    }
}

/// Checks keys and values against registered schemas; the schema registry implements it.
pub trait SchemaValidator: Send + Sync {
    /// Checks one key's or value's wire-format header (magic byte, schema id registered for
    /// the subject). With `decode`, returns the decoder for payloads with this header. `Err`
    /// says why it is refused, in words for the producer.
    fn check(
        &self,
        topic: &str,
        part: RecordPart,
        strategy: SubjectNameStrategy,
        decode: bool,
        bytes: &[u8],
    ) -> Result<Option<Arc<dyn PayloadDecoder>>, String>;
}

/// Decodes payloads (the bytes after the 5-byte header) against one schema.
pub trait PayloadDecoder: Send + Sync {
    /// `Err` says why the payload does not decode.
    fn decode(&self, payload: &[u8]) -> Result<(), String>;
}

/// Decompressed record bytes held for validation at most (a batch is at most
/// `max.message.bytes` compressed; this bounds what a compression bomb can cost).
const MAX_VALIDATED_BYTES: usize = 64 << 20;

impl Broker {
    /// Installs the validator the broker asks for topics with schema validation on. Until one
    /// is installed such topics refuse every record.
    pub fn set_schema_validator(&self, validator: Arc<dyn SchemaValidator>) {
        *self.schema_validator.write() = Some(validator);
    }

    /// Forgets the validator. The registry holds the broker and the broker its validator, so a
    /// server that stops breaks the cycle here and the broker (with its data-directory lock) is
    /// dropped.
    pub fn clear_schema_validator(&self) {
        *self.schema_validator.write() = None;
    }

    /// Checks every record of a batch; `Err` names the first bad record's index and why.
    pub(crate) fn validate_schemas(
        &self,
        topic: &str,
        batch: &[u8],
        header: &BatchHeader,
        validation: &SchemaValidation,
    ) -> Result<(), (i32, String)> {
        let Some(validator) = self.schema_validator.read().clone() else {
            return Err((
                0,
                "the topic requires schema validation but no schema registry is running".into(),
            ));
        };
        let records = spate_log::batch::record_bytes(batch, MAX_VALIDATED_BYTES)
            .map_err(|e| (0, e.to_string()))?;
        let records =
            spate_log::batch::parse_records(&records, header).map_err(|e| (0, e.to_string()))?;
        // Producers put many records with the same schema in a batch: a header (magic byte
        // and id) is checked once per run of equal headers, and with decoding its decoder is
        // kept for the records that follow.
        type Passed = Option<([u8; 5], Option<Arc<dyn PayloadDecoder>>)>;
        let mut passed: [Passed; 2] = [None, None];
        for (index, record) in records.iter().enumerate() {
            let parts = [
                (RecordPart::Key, validation.key, record.key),
                (RecordPart::Value, validation.value, record.value),
            ];
            for (part, strategy, bytes) in parts {
                // Null keys and values (tombstones) carry no schema and pass.
                let (Some(strategy), Some(bytes)) = (strategy, bytes) else {
                    continue;
                };
                let refuse = |reason: String| {
                    (
                        index as i32,
                        format!("record {index}: {} {reason}", part.name()),
                    )
                };
                let slot = &mut passed[part as usize];
                let head: Option<[u8; 5]> = bytes.get(..5).and_then(|h| h.try_into().ok());
                let known = match (slot.as_ref(), head) {
                    (Some((seen, decoder)), Some(head)) if *seen == head => Some(decoder.clone()),
                    _ => None,
                };
                let decoder = match known {
                    Some(decoder) => decoder,
                    None => {
                        let decoder = validator
                            .check(topic, part, strategy, validation.decode, bytes)
                            .map_err(refuse)?;
                        *slot = head.map(|head| (head, decoder.clone()));
                        decoder
                    }
                };
                if let Some(decoder) = decoder {
                    decoder.decode(&bytes[5..]).map_err(refuse)?;
                }
            }
        }
        Ok(())
    }
}
