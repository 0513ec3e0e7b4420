//! The registry's state and how it is kept in the compacted topic `_schemas`.
//!
//! Records use Confluent Schema Registry's own `_schemas` format, so the topic reads the same
//! as one written by Confluent's registry (a backup of either can be replayed by the other):
//!
//! | key (JSON) | value (JSON) |
//! |---|---|
//! | `{"keytype":"SCHEMA","subject":S,"version":V,"magic":1}` | `{"subject","version","id","schemaType"?,"references"?,"schema","deleted"}`; null once permanently deleted |
//! | `{"keytype":"CONFIG","subject":S or null,"magic":0}` | `{"compatibilityLevel":"BACKWARD","normalize"?}`; null when deleted |
//! | `{"keytype":"MODE","subject":S or null,"magic":0}` | `{"mode":"READONLY"}`; null when deleted |
//!
//! A key's bytes are always produced by the same code, so compaction keeps the latest record
//! per key. [`State`] is what replaying the topic builds: schemas by id, subjects and their
//! versions, configs and modes. It changes only through records at offsets: [`State::replay`]
//! (a record read from the topic) and [`State::apply_at`] (a change this registry just
//! appended, at the offset the log gave it). Both apply a record only if its offset is at or
//! past [`State::next_offset`] and then move that past it, so a record applies once, in offset
//! order, whichever path sees it first, and the state after a restart is the state before it.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, OnceLock};

use serde::{Deserialize, Serialize};
use spate_schema::{Parsed, SchemaError, SchemaType};

/// The topic the registry keeps its state in, Confluent's `kafkastore.topic` default.
pub const SCHEMAS_TOPIC: &str = "_schemas";

/// A schema reference: the name the referencing schema uses, and the subject version that
/// holds the referenced schema.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Reference {
    /// The name used inside the referencing schema (Avro full name, Protobuf import path,
    /// JSON Schema `$ref` URL).
    pub name: String,
    /// The subject holding the referenced schema.
    pub subject: String,
    /// Its version in that subject.
    pub version: i32,
}

/// Confluent's compatibility levels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compatibility {
    /// Any change is allowed.
    None,
    /// The new schema reads data written with the latest one.
    Backward,
    /// The new schema reads data written with every earlier one.
    BackwardTransitive,
    /// The latest schema reads data written with the new one.
    Forward,
    /// Every earlier schema reads data written with the new one.
    ForwardTransitive,
    /// Backward and forward against the latest.
    Full,
    /// Backward and forward against every earlier one.
    FullTransitive,
}

impl Compatibility {
    /// All levels, in Confluent's documentation order.
    pub const ALL: [Compatibility; 7] = [
        Compatibility::None,
        Compatibility::Backward,
        Compatibility::Forward,
        Compatibility::Full,
        Compatibility::BackwardTransitive,
        Compatibility::ForwardTransitive,
        Compatibility::FullTransitive,
    ];

    /// The REST name, e.g. `BACKWARD_TRANSITIVE`.
    pub fn name(self) -> &'static str {
        match self {
            Compatibility::None => "NONE",
            Compatibility::Backward => "BACKWARD",
            Compatibility::BackwardTransitive => "BACKWARD_TRANSITIVE",
            Compatibility::Forward => "FORWARD",
            Compatibility::ForwardTransitive => "FORWARD_TRANSITIVE",
            Compatibility::Full => "FULL",
            Compatibility::FullTransitive => "FULL_TRANSITIVE",
        }
    }

    /// Parses a REST name, case-insensitively.
    pub fn parse(name: &str) -> Option<Compatibility> {
        let upper = name.to_ascii_uppercase();
        Compatibility::ALL.into_iter().find(|c| c.name() == upper)
    }

    /// Whether the new schema must read data written with the earlier ones.
    pub fn backward(self) -> bool {
        matches!(
            self,
            Compatibility::Backward
                | Compatibility::BackwardTransitive
                | Compatibility::Full
                | Compatibility::FullTransitive
        )
    }

    /// Whether the earlier schemas must read data written with the new one.
    pub fn forward(self) -> bool {
        matches!(
            self,
            Compatibility::Forward
                | Compatibility::ForwardTransitive
                | Compatibility::Full
                | Compatibility::FullTransitive
        )
    }

    /// Whether every earlier version is checked, not only the latest.
    pub fn transitive(self) -> bool {
        matches!(
            self,
            Compatibility::BackwardTransitive
                | Compatibility::ForwardTransitive
                | Compatibility::FullTransitive
        )
    }
}

/// Confluent's modes: whether a subject (or the registry) accepts writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Normal operation.
    ReadWrite,
    /// Registrations and deletes are refused.
    ReadOnly,
    /// Like `ReadOnly`, and a subject-level mode cannot lift it.
    ReadOnlyOverride,
    /// Registrations must give their id and version (migrations from another registry).
    Import,
}

impl Mode {
    /// The REST name.
    pub fn name(self) -> &'static str {
        match self {
            Mode::ReadWrite => "READWRITE",
            Mode::ReadOnly => "READONLY",
            Mode::ReadOnlyOverride => "READONLY_OVERRIDE",
            Mode::Import => "IMPORT",
        }
    }

    /// Parses a REST name, case-insensitively.
    pub fn parse(name: &str) -> Option<Mode> {
        match name.to_ascii_uppercase().as_str() {
            "READWRITE" => Some(Mode::ReadWrite),
            "READONLY" => Some(Mode::ReadOnly),
            "READONLY_OVERRIDE" => Some(Mode::ReadOnlyOverride),
            "IMPORT" => Some(Mode::Import),
            _ => None,
        }
    }
}

/// A compatibility configuration, global or for one subject.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Config {
    /// The level, when set.
    pub compatibility: Option<Compatibility>,
    /// Whether schemas are normalised on registration and lookup, when set.
    pub normalize: Option<bool>,
}

/// One schema, shared by every subject version registered with the same text.
#[derive(Debug)]
pub struct SchemaEntry {
    /// Its id, unique in the registry.
    pub id: i32,
    /// Its type.
    pub schema_type: SchemaType,
    /// Its canonical text, as stored.
    pub text: String,
    /// The schemas it references.
    pub references: Vec<Reference>,
    /// Parsed on first use (compatibility checks, validation, `format=serialized`).
    pub(crate) parsed: OnceLock<Result<Arc<Parsed>, SchemaError>>,
    /// The names its records go by, for the record name strategies; found on first use.
    pub(crate) record_names: OnceLock<Vec<String>>,
}

/// One version of a subject.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VersionEntry {
    /// The schema's id.
    pub id: i32,
    /// Soft-deleted: hidden unless asked for with `deleted=true`.
    pub deleted: bool,
}

/// A change to the state: what one `_schemas` record says.
#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    /// A subject version was registered or soft-deleted.
    Schema {
        /// The subject.
        subject: String,
        /// The version.
        version: i32,
        /// The schema's id.
        id: i32,
        /// Its type.
        schema_type: SchemaType,
        /// Its text.
        text: String,
        /// Its references.
        references: Vec<Reference>,
        /// Soft-deleted.
        deleted: bool,
    },
    /// A subject version was permanently deleted.
    SchemaRemoved {
        /// The subject.
        subject: String,
        /// The version.
        version: i32,
    },
    /// A config was set (`Some`) or deleted (`None`); `subject` `None` is the global one.
    Config {
        /// The subject, or `None` for the global config.
        subject: Option<String>,
        /// The new config.
        config: Option<Config>,
    },
    /// A mode was set or deleted; `subject` `None` is the global one.
    Mode {
        /// The subject, or `None` for the global mode.
        subject: Option<String>,
        /// The new mode.
        mode: Option<Mode>,
    },
}

/// Everything the registry knows, rebuilt from `_schemas`.
#[derive(Debug, Default)]
pub struct State {
    /// Schemas by id.
    pub schemas: BTreeMap<i32, Arc<SchemaEntry>>,
    /// Subjects and their versions.
    pub subjects: BTreeMap<String, BTreeMap<i32, VersionEntry>>,
    /// Ids by identity (type, text, references), so the same schema gets the same id.
    identities: HashMap<(SchemaType, String, Vec<Reference>), i32>,
    /// The global config.
    pub global_config: Option<Config>,
    /// Subject configs.
    pub subject_configs: BTreeMap<String, Config>,
    /// The global mode.
    pub global_mode: Option<Mode>,
    /// Subject modes.
    pub subject_modes: BTreeMap<String, Mode>,
    /// The highest id ever seen; new schemas get the next one.
    pub max_id: i32,
    /// The offset in `_schemas` after the last record applied: everything before it is in
    /// this state, nothing after it.
    pub next_offset: i64,
}

impl State {
    /// The id of a schema already known by this identity.
    pub fn id_of(
        &self,
        schema_type: SchemaType,
        text: &str,
        references: &[Reference],
    ) -> Option<i32> {
        self.identities
            .get(&(schema_type, text.to_string(), references.to_vec()))
            .copied()
    }

    /// Applies the change held by the record at `offset`, unless a record at or after that
    /// offset was applied already. Returns whether it applied.
    pub fn apply_at(&mut self, offset: i64, change: Change) -> bool {
        if offset < self.next_offset {
            return false;
        }
        self.apply(change);
        self.next_offset = offset + 1;
        true
    }

    /// Applies one change.
    fn apply(&mut self, change: Change) {
        match change {
            Change::Schema {
                subject,
                version,
                id,
                schema_type,
                text,
                references,
                deleted,
            } => {
                self.max_id = self.max_id.max(id);
                if !self.schemas.contains_key(&id) {
                    self.identities
                        .insert((schema_type, text.clone(), references.clone()), id);
                    self.schemas.insert(
                        id,
                        Arc::new(SchemaEntry {
                            id,
                            schema_type,
                            text,
                            references,
                            parsed: OnceLock::new(),
                            record_names: OnceLock::new(),
                        }),
                    );
                }
                self.subjects
                    .entry(subject)
                    .or_default()
                    .insert(version, VersionEntry { id, deleted });
            }
            Change::SchemaRemoved { subject, version } => {
                let Some(versions) = self.subjects.get_mut(&subject) else {
                    return;
                };
                let Some(entry) = versions.remove(&version) else {
                    return;
                };
                if versions.is_empty() {
                    self.subjects.remove(&subject);
                }
                self.forget_if_unused(entry.id);
            }
            Change::Config { subject, config } => match (subject, config) {
                (None, config) => self.global_config = config,
                (Some(subject), Some(config)) => {
                    self.subject_configs.insert(subject, config);
                }
                (Some(subject), None) => {
                    self.subject_configs.remove(&subject);
                }
            },
            Change::Mode { subject, mode } => match (subject, mode) {
                (None, mode) => self.global_mode = mode,
                (Some(subject), Some(mode)) => {
                    self.subject_modes.insert(subject, mode);
                }
                (Some(subject), None) => {
                    self.subject_modes.remove(&subject);
                }
            },
        }
    }

    /// Drops a schema no subject version uses any more (after permanent deletes).
    fn forget_if_unused(&mut self, id: i32) {
        let used = self
            .subjects
            .values()
            .any(|versions| versions.values().any(|v| v.id == id));
        if used {
            return;
        }
        if let Some(entry) = self.schemas.remove(&id) {
            self.identities.remove(&(
                entry.schema_type,
                entry.text.clone(),
                entry.references.clone(),
            ));
        }
    }

    /// Replays the `_schemas` record at `offset`, unless a record at or after it was applied
    /// already. Records this registry does not understand (Confluent's NOOP, DELETE_SUBJECT,
    /// CLEAR_SUBJECT markers, or garbage) are passed over, garbage with a log line.
    pub fn replay(&mut self, offset: i64, key: Option<&[u8]>, value: Option<&[u8]>) {
        if offset < self.next_offset {
            return;
        }
        match decode(key, value) {
            Ok(Some(change)) => self.apply(change),
            Ok(None) => {}
            Err(reason) => {
                tracing::warn!(topic = SCHEMAS_TOPIC, offset, %reason, "skipped a record");
            }
        }
        self.next_offset = offset + 1;
    }
}

#[derive(Serialize, Deserialize)]
struct SchemaKey {
    keytype: String,
    subject: String,
    version: i32,
    magic: i32,
}

#[derive(Serialize, Deserialize)]
struct SubjectKey {
    keytype: String,
    subject: Option<String>,
    magic: i32,
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct SchemaValue {
    subject: String,
    version: i32,
    id: i32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    schema_type: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    references: Vec<Reference>,
    schema: String,
    #[serde(default)]
    deleted: bool,
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ConfigValue {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    compatibility_level: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    normalize: Option<bool>,
}

#[derive(Serialize, Deserialize)]
struct ModeValue {
    mode: String,
}

fn to_json(value: &impl Serialize) -> Vec<u8> {
    // Serialising these plain structs cannot fail.
    serde_json::to_vec(value).unwrap_or_default()
}

/// The `_schemas` record (key, value) for a change.
pub fn encode(change: &Change) -> (Vec<u8>, Option<Vec<u8>>) {
    match change {
        Change::Schema {
            subject,
            version,
            id,
            schema_type,
            text,
            references,
            deleted,
        } => (
            schema_key(subject, *version),
            Some(to_json(&SchemaValue {
                subject: subject.clone(),
                version: *version,
                id: *id,
                schema_type: (*schema_type != SchemaType::Avro)
                    .then(|| schema_type.name().to_string()),
                references: references.clone(),
                schema: text.clone(),
                deleted: *deleted,
            })),
        ),
        Change::SchemaRemoved { subject, version } => (schema_key(subject, *version), None),
        Change::Config { subject, config } => (
            subject_key("CONFIG", subject.as_deref()),
            config.map(|c| {
                to_json(&ConfigValue {
                    compatibility_level: c.compatibility.map(|l| l.name().to_string()),
                    normalize: c.normalize,
                })
            }),
        ),
        Change::Mode { subject, mode } => (
            subject_key("MODE", subject.as_deref()),
            mode.map(|m| {
                to_json(&ModeValue {
                    mode: m.name().to_string(),
                })
            }),
        ),
    }
}

fn schema_key(subject: &str, version: i32) -> Vec<u8> {
    to_json(&SchemaKey {
        keytype: "SCHEMA".to_string(),
        subject: subject.to_string(),
        version,
        magic: 1,
    })
}

fn subject_key(keytype: &str, subject: Option<&str>) -> Vec<u8> {
    to_json(&SubjectKey {
        keytype: keytype.to_string(),
        subject: subject.map(str::to_string),
        magic: 0,
    })
}

/// Reads a `_schemas` record. `Ok(None)`: a record kind with no effect here.
pub fn decode(key: Option<&[u8]>, value: Option<&[u8]>) -> Result<Option<Change>, String> {
    let key = key.ok_or("no key")?;
    let head: serde_json::Value =
        serde_json::from_slice(key).map_err(|e| format!("key is not JSON: {e}"))?;
    let keytype = head
        .get("keytype")
        .and_then(|k| k.as_str())
        .ok_or("key has no keytype")?;
    match keytype {
        "SCHEMA" => {
            let key: SchemaKey =
                serde_json::from_value(head).map_err(|e| format!("SCHEMA key: {e}"))?;
            let Some(value) = value else {
                return Ok(Some(Change::SchemaRemoved {
                    subject: key.subject,
                    version: key.version,
                }));
            };
            let value: SchemaValue =
                serde_json::from_slice(value).map_err(|e| format!("SCHEMA value: {e}"))?;
            let schema_type = match &value.schema_type {
                None => SchemaType::Avro,
                Some(name) => {
                    SchemaType::parse(name).ok_or_else(|| format!("unknown schemaType {name}"))?
                }
            };
            Ok(Some(Change::Schema {
                subject: key.subject,
                version: key.version,
                id: value.id,
                schema_type,
                text: value.schema,
                references: value.references,
                deleted: value.deleted,
            }))
        }
        "CONFIG" => {
            let key: SubjectKey =
                serde_json::from_value(head).map_err(|e| format!("CONFIG key: {e}"))?;
            let config = match value {
                None => None,
                Some(value) => {
                    let value: ConfigValue =
                        serde_json::from_slice(value).map_err(|e| format!("CONFIG value: {e}"))?;
                    let compatibility = match value.compatibility_level {
                        None => None,
                        Some(name) => Some(
                            Compatibility::parse(&name)
                                .ok_or_else(|| format!("unknown compatibility {name}"))?,
                        ),
                    };
                    Some(Config {
                        compatibility,
                        normalize: value.normalize,
                    })
                }
            };
            Ok(Some(Change::Config {
                subject: key.subject,
                config,
            }))
        }
        "MODE" => {
            let key: SubjectKey =
                serde_json::from_value(head).map_err(|e| format!("MODE key: {e}"))?;
            let mode = match value {
                None => None,
                Some(value) => {
                    let value: ModeValue =
                        serde_json::from_slice(value).map_err(|e| format!("MODE value: {e}"))?;
                    Some(
                        Mode::parse(&value.mode)
                            .ok_or_else(|| format!("unknown mode {}", value.mode))?,
                    )
                }
            };
            Ok(Some(Change::Mode {
                subject: key.subject,
                mode,
            }))
        }
        _ => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schema(subject: &str, version: i32, id: i32, text: &str) -> Change {
        Change::Schema {
            subject: subject.to_string(),
            version,
            id,
            schema_type: SchemaType::Avro,
            text: text.to_string(),
            references: Vec::new(),
            deleted: false,
        }
    }

    #[test]
    fn every_change_survives_encode_and_decode() {
        let changes = [
            schema("orders-value", 1, 7, "\"string\""),
            Change::Schema {
                subject: "p".to_string(),
                version: 2,
                id: 9,
                schema_type: SchemaType::Protobuf,
                text: "syntax = \"proto3\";".to_string(),
                references: vec![Reference {
                    name: "other.proto".to_string(),
                    subject: "other".to_string(),
                    version: 1,
                }],
                deleted: true,
            },
            Change::SchemaRemoved {
                subject: "p".to_string(),
                version: 2,
            },
            Change::Config {
                subject: None,
                config: Some(Config {
                    compatibility: Some(Compatibility::FullTransitive),
                    normalize: Some(true),
                }),
            },
            Change::Config {
                subject: Some("s".to_string()),
                config: None,
            },
            Change::Mode {
                subject: Some("s".to_string()),
                mode: Some(Mode::Import),
            },
        ];
        for change in changes {
            let (key, value) = encode(&change);
            let decoded = decode(Some(&key), value.as_deref()).expect("decodes");
            assert_eq!(decoded, Some(change));
        }
    }

    #[test]
    fn records_written_by_confluent_schema_registry_decode() {
        let key = br#"{"keytype":"SCHEMA","subject":"t-value","version":1,"magic":1}"#;
        let value =
            br#"{"subject":"t-value","version":1,"id":1,"schema":"\"string\"","deleted":false}"#;
        let change = decode(Some(key), Some(value)).expect("decodes");
        assert_eq!(change, Some(schema("t-value", 1, 1, "\"string\"")));
        let noop = decode(Some(br#"{"keytype":"NOOP","magic":0}"#), None).expect("decodes");
        assert_eq!(noop, None);
    }

    #[test]
    fn the_same_key_is_the_same_bytes_so_compaction_keeps_the_latest() {
        let (a, _) = encode(&schema("s", 3, 1, "\"int\""));
        let (b, _) = encode(&Change::SchemaRemoved {
            subject: "s".to_string(),
            version: 3,
        });
        assert_eq!(a, b);
    }

    #[test]
    fn permanent_deletes_forget_schemas_no_version_uses() {
        let mut state = State::default();
        state.apply_at(0, schema("a", 1, 1, "\"int\""));
        state.apply_at(1, schema("b", 1, 1, "\"int\""));
        state.apply_at(
            2,
            Change::SchemaRemoved {
                subject: "a".to_string(),
                version: 1,
            },
        );
        assert!(state.schemas.contains_key(&1), "b still uses it");
        state.apply_at(
            3,
            Change::SchemaRemoved {
                subject: "b".to_string(),
                version: 1,
            },
        );
        assert!(state.schemas.is_empty());
        assert!(state.subjects.is_empty());
        assert_eq!(state.id_of(SchemaType::Avro, "\"int\"", &[]), None);
        assert_eq!(state.max_id, 1, "ids are not reused");
    }

    #[test]
    fn a_record_applies_once_whichever_path_sees_it_first() {
        let mut state = State::default();
        // The registry's own write, applied as it is answered.
        assert!(state.apply_at(0, schema("a", 1, 1, "\"int\"")));
        // The tail reads the same record from the log afterwards: nothing happens.
        let (key, value) = encode(&Change::SchemaRemoved {
            subject: "a".to_string(),
            version: 1,
        });
        state.replay(0, Some(&key), value.as_deref());
        assert!(
            state.subjects.contains_key("a"),
            "offset 0 was applied already"
        );
        assert_eq!(state.next_offset, 1);
        // Another writer's record, then garbage: each moves the state on once.
        let (key, value) = encode(&schema("b", 1, 2, "\"long\""));
        state.replay(1, Some(&key), value.as_deref());
        state.replay(2, Some(b"not json"), None);
        assert_eq!(state.next_offset, 3);
        assert_eq!(state.max_id, 2);
        // An own write whose offset the tail already passed is not applied again.
        assert!(!state.apply_at(1, schema("b", 1, 2, "\"long\"")));
        // Offsets may skip (compaction): the state follows.
        assert!(state.apply_at(7, schema("c", 1, 3, "\"string\"")));
        assert_eq!(state.next_offset, 8);
    }
}
