//! JSON Schema: parsing against the meta-schema, canonical text, Confluent's compatibility rules
//! and payload validation.
//!
//! This module owns everything that is specific to JSON Schema in the registry. It does no I/O:
//! the schemas a schema references arrive as [`Dependency`]s, and a `$ref` to anything else is an
//! error. The `jsonschema` crate's network and file retrieval is never used (the registry it is
//! given is offline), so registering a schema can never make the broker fetch a URL.
//!
//! # Parsing
//!
//! A schema is a JSON object or boolean, checked against the meta-schema of the draft its
//! `$schema` names: draft-04, draft-06, draft-07, 2019-09 or 2020-12; without `$schema` it is
//! draft-07, as in Confluent. A reference's `name` is the URL its `$ref`s use, resolved against
//! the root's `$id` (or `json-schema:///` when there is none), so `"customer.json"` and
//! `"https://example.com/customer.schema.json"` both work. The schema must compile with its
//! references, which also proves every `$ref` resolves.
//!
//! # Canonical text
//!
//! The canonical text is the schema re-serialised compactly, keys in the order written, so two
//! texts differing only in whitespace are the same schema. With `normalize`, it is also
//! normalised: object keys sorted at every level; in schema positions only, `required`,
//! `dependencies`/`dependentRequired` arrays and `type` arrays sorted and deduplicated, and a
//! one-element `type` array written as the bare type. Data (`enum`, `const`, `default`,
//! `examples`) keeps its array order, since order is part of a JSON value.
//!
//! # Compatibility
//!
//! [`JsonSchema::incompatibilities`] answers "does `reader` accept every document the `writer`
//! schema allows", by walking both schemas' JSON by hand the way Confluent's `SchemaDiff` walks
//! them (Confluent compares `original` = writer with `update` = reader; BACKWARD makes the new
//! schema the reader). Every difference has one of Confluent's `Difference.Type` names and is
//! compatible exactly when Confluent lists it in `SchemaDiff.COMPATIBLE_CHANGES`. Only the
//! incompatible ones are reported, each as `<json path>: <TYPE>: <what changed>`, e.g.
//! `#/properties/email/maxLength: MAX_LENGTH_DECREASED: ...`.
//!
//! | Keyword(s) | Compatible (reader accepts more) | Incompatible |
//! |---|---|---|
//! | `type` | `TYPE_EXTENDED` (`integer` → `number`, a type added) | `TYPE_NARROWED`, `TYPE_CHANGED` |
//! | `maxLength`, `maxItems`, `maxProperties`, `maxContains`, `maximum`, `exclusiveMaximum` | `*_INCREASED`, `*_REMOVED` | `*_ADDED`, `*_DECREASED` |
//! | `minLength`, `minItems`, `minProperties`, `minContains`, `minimum`, `exclusiveMinimum` | `*_DECREASED`, `*_REMOVED` | `*_ADDED`, `*_INCREASED` |
//! | `pattern` | `PATTERN_REMOVED` | `PATTERN_ADDED`, `PATTERN_CHANGED` |
//! | `multipleOf` | `MULTIPLE_OF_REDUCED` (divides the writer's), `MULTIPLE_OF_REMOVED` | `MULTIPLE_OF_ADDED`, `MULTIPLE_OF_EXPANDED`, `MULTIPLE_OF_CHANGED` |
//! | `required` | `REQUIRED_ATTRIBUTE_REMOVED`, `REQUIRED_ATTRIBUTE_WITH_DEFAULT_ADDED` | `REQUIRED_ATTRIBUTE_ADDED` |
//! | property only in the reader, writer open | `PROPERTY_WITH_EMPTY_SCHEMA_ADDED_TO_OPEN_CONTENT_MODEL` | `OPTIONAL_PROPERTY_ADDED_TO_OPEN_CONTENT_MODEL`, `REQUIRED_PROPERTY_ADDED_TO_OPEN_CONTENT_MODEL` (Confluent 7.x: `PROPERTY_ADDED_TO_OPEN_CONTENT_MODEL`) |
//! | property only in the reader, writer closed | `OPTIONAL_PROPERTY_ADDED_TO_UNOPEN_CONTENT_MODEL`, `REQUIRED_PROPERTY_WITH_DEFAULT_ADDED_TO_UNOPEN_CONTENT_MODEL` | `REQUIRED_PROPERTY_ADDED_TO_UNOPEN_CONTENT_MODEL` |
//! | property only in the writer | `PROPERTY_REMOVED_FROM_OPEN_CONTENT_MODEL`, `PROPERTY_WITH_FALSE_REMOVED_FROM_CLOSED_CONTENT_MODEL` | `PROPERTY_REMOVED_FROM_CLOSED_CONTENT_MODEL` |
//! | either, other side partially open (`patternProperties`, schema `additionalProperties`) | `PROPERTY_*_IS_COVERED_BY_PARTIALLY_OPEN_CONTENT_MODEL` | `PROPERTY_*_NOT_COVERED_BY_PARTIALLY_OPEN_CONTENT_MODEL` |
//! | `additionalProperties`, `unevaluatedProperties` | `*_ADDED` (false → allowed), `*_EXTENDED` (schema → any) | `*_REMOVED` (→ false), `*_NARROWED` (any → schema) |
//! | `dependencies`, `dependentRequired`, `dependentSchemas` | `DEPENDENCY_ARRAY_NARROWED`, `DEPENDENCY_*_REMOVED` | `DEPENDENCY_ARRAY_ADDED`/`EXTENDED`/`CHANGED`, `DEPENDENCY_SCHEMA_ADDED` |
//! | `items`/`prefixItems` tuples | `ITEM_ADDED_TO_CLOSED_CONTENT_MODEL`, `ITEM_REMOVED_FROM_OPEN_CONTENT_MODEL`, ... | `ITEM_ADDED_TO_OPEN_CONTENT_MODEL`, `ITEM_REMOVED_FROM_CLOSED_CONTENT_MODEL`, ... |
//! | one `items` schema ↔ a tuple | `SCHEMA_REMOVED` (the list's `items`) | list → tuple: `ITEM_ADDED_TO_OPEN_CONTENT_MODEL` (Confluent sees the list as open past its empty tuple); tuple → list: `SCHEMA_ADDED` |
//! | `additionalItems` (`items` after `prefixItems`) | `ADDITIONAL_ITEMS_ADDED`, `ADDITIONAL_ITEMS_EXTENDED` | `ADDITIONAL_ITEMS_REMOVED`, `ADDITIONAL_ITEMS_NARROWED` |
//! | `uniqueItems` | `UNIQUE_ITEMS_REMOVED` | `UNIQUE_ITEMS_ADDED` |
//! | `enum`, `const` | `ENUM_ARRAY_EXTENDED` | `ENUM_ARRAY_NARROWED`, `ENUM_ARRAY_CHANGED` |
//! | `allOf` | `PRODUCT_TYPE_NARROWED` | `PRODUCT_TYPE_EXTENDED` |
//! | `anyOf`, `oneOf` | `SUM_TYPE_EXTENDED` | `SUM_TYPE_NARROWED` |
//! | a combiner changed | `COMBINED_TYPE_EXTENDED` (to `anyOf`, singleton to `oneOf`) | `COMBINED_TYPE_CHANGED`, `COMBINED_TYPE_SUBSCHEMAS_CHANGED` |
//! | `not` | `NOT_TYPE_NARROWED` | `NOT_TYPE_EXTENDED` |
//!
//! Subschemas of a combiner are paired by a maximum matching of compatible pairs, as Confluent
//! does. `$ref`s are followed (local pointers, anchors, `$id`s and references), and a pair of
//! schemas met again while it is still being compared is taken as compatible (Confluent's
//! recursion guard), so recursive schemas terminate. Annotations (`title`, `description`,
//! `default`, `examples`, `$comment`, `format`, unknown keywords) never make a difference.
//!
//! Where Spate deliberately differs from Confluent (all noted at the code):
//! - bounds are compared by what they allow, not keyword by keyword: `maximum: 10` → reader
//!   `exclusiveMaximum: 11` is compatible;
//! - a writer union (`anyOf`/`oneOf`, or a `type` array) is compatible with a plain reader when
//!   every alternative is, where Confluent reports `TYPE_CHANGED` for any non-singleton union;
//! - a reader's `allOf` is checked branch by branch against the writer, `if`/`then`/`else` added
//!   or changed by the reader is refused (`COMBINED_TYPE_CHANGED`), and `patternProperties`,
//!   `propertyNames` and `contains` added by the reader are refused, where Confluent ignores them;
//! - `{}` or `true` for `additionalProperties`/`items` means "anything", as absent does;
//! - a name the reader adds to `required` without declaring it in `properties` is
//!   `REQUIRED_ATTRIBUTE_ADDED` (Confluent only checks properties both sides declare);
//! - two Spate-only types: `REFERENCE_UNRESOLVED` (a `$ref` the comparison cannot follow) and
//!   `COMPARISON_LIMIT_REACHED` (the schemas are too large to compare within the work limit).
//!
//! Limits shared with Confluent: a `oneOf` is compared as a union (that a document may match
//! two alternatives is not checked), and a required property with a `default` counts as
//! present. Keywords inside a writer's `allOf` are not merged with its other keywords, so such a
//! writer can be refused where merging would show it compatible (Confluent refuses it too).
//!
//! # Payloads
//!
//! [`JsonSchema::validate_payload`] parses UTF-8 JSON and validates it with the compiled schema,
//! reporting the first few errors with their instance paths. Error texts mask the payload's
//! values, so a log line never carries a record's data. Regular expressions run with a
//! backtracking limit, and `serde_json` limits nesting, so hostile input does bounded work.

use std::collections::{HashMap, HashSet};
use std::rc::Rc;
use std::sync::{Arc, LazyLock};

use jsonschema::{Draft, PatternOptions, Registry, Validator};
use serde_json::{Map, Value};

use crate::{Dependency, SchemaError};

/// The base URI of a root schema without `$id`, as the `jsonschema` crate uses.
const DEFAULT_BASE_URI: &str = "json-schema:///";
/// Validation errors reported for a refused payload.
const MAX_PAYLOAD_ERRORS: usize = 5;
/// Meta-schema errors reported for a refused schema.
const MAX_SCHEMA_ERRORS: usize = 3;
/// Backtracking steps one regular expression may take on one string.
const REGEX_BACKTRACK_LIMIT: usize = 100_000;
/// Pairs of subschemas one compatibility check may compare.
const MAX_COMPARE_STEPS: usize = 100_000;
/// Nesting of subschema comparisons (each `$ref` followed counts).
const MAX_COMPARE_DEPTH: usize = 128;
/// `$ref`s followed in a row before giving up on a chain.
const MAX_REF_HOPS: usize = 64;
/// Nesting followed when working out which types a schema allows.
const MAX_TYPE_DEPTH: usize = 16;
/// Differences kept for one pair of subschemas, and messages returned for one check.
const MAX_DIFFERENCES: usize = 100;
/// Values listed in one message.
const MAX_LISTED_VALUES: usize = 5;

/// A parsed, compiled JSON Schema with the schemas it references.
#[derive(Debug, Clone)]
pub struct JsonSchema {
    canonical: String,
    schema: Arc<Value>,
    draft: Draft,
    base_uri: String,
    references: Arc<[Reference]>,
    validator: Arc<Validator>,
}

/// A referenced schema, parsed, with the absolute URI it is registered under.
#[derive(Debug)]
struct Reference {
    uri: String,
    schema: Value,
    draft: Draft,
}

impl JsonSchema {
    /// Parses `text` as a JSON Schema, checks it against its draft's meta-schema and compiles
    /// it with `dependencies` available to its `$ref`s. With `normalize`, the canonical text is
    /// normalised (see the module doc).
    pub fn parse(
        text: &str,
        dependencies: &[Dependency],
        normalize: bool,
    ) -> Result<JsonSchema, SchemaError> {
        let schema = parse_document(text, "schema")?;
        let draft = draft_of(&schema, "schema", Draft::Draft7)?;
        check_meta_schema(&schema, draft, "schema")?;
        let base_uri = base_uri_of(&schema, draft)?;

        let mut references = Vec::with_capacity(dependencies.len());
        for dependency in dependencies {
            let what = format!("referenced schema '{}'", dependency.name);
            let value = parse_document(&dependency.text, &what)?;
            // A referenced resource without `$schema` is read in the referencing schema's draft.
            let reference_draft = draft_of(&value, &what, draft)?;
            check_meta_schema(&value, reference_draft, &what)?;
            let uri = resolve_uri(&base_uri, &dependency.name).map_err(|error| {
                SchemaError(format!(
                    "reference name '{}' is not a URI reference ({error}): name a reference by \
                     the URL its $ref uses, e.g. \"customer.json\"",
                    dependency.name
                ))
            })?;
            references.push(Reference {
                uri: strip_fragment(&uri).to_string(),
                schema: value,
                draft: reference_draft,
            });
        }

        let validator = compile(&schema, draft, &references)?;
        let canonical = if normalize {
            serde_json::to_string(&normalize_schema(&schema))
        } else {
            serde_json::to_string(&schema)
        }
        .map_err(|error| SchemaError(format!("schema cannot be serialised: {error}")))?;

        Ok(JsonSchema {
            canonical,
            schema: Arc::new(schema),
            draft,
            base_uri,
            references: references.into(),
            validator: Arc::new(validator),
        })
    }

    /// The canonical text: compact JSON, normalised when parsed with `normalize`.
    pub fn canonical(&self) -> &str {
        &self.canonical
    }

    /// The schema as parsed (keys in the order written).
    pub fn schema(&self) -> &Value {
        &self.schema
    }

    /// The draft the schema is read in: `draft-04`, `draft-06`, `draft-07`, `2019-09` or
    /// `2020-12`.
    pub fn draft_name(&self) -> &'static str {
        draft_name(self.draft)
    }

    /// Why `reader` does not accept every document `writer` allows: one message per
    /// incompatible difference, `<json path>: <Confluent difference type>: <what changed>`.
    /// Empty when compatible.
    pub fn incompatibilities(reader: &JsonSchema, writer: &JsonSchema) -> Vec<String> {
        let writer_index = Index::build(writer);
        let reader_index = Index::build(reader);
        let mut comparer = Comparer::new([&writer_index, &reader_index]);
        let differences = comparer.compare(
            View::new(&writer.schema, Side::Writer),
            View::new(&reader.schema, Side::Reader),
        );
        let mut seen = HashSet::new();
        let mut messages = Vec::new();
        for difference in differences.iter() {
            let message = difference.message();
            if seen.insert(message.clone()) {
                messages.push(message);
            }
            if messages.len() == MAX_DIFFERENCES {
                break;
            }
        }
        messages
    }

    /// Checks that `payload` is UTF-8 JSON that the schema accepts. The error names the first
    /// few violations with their paths in the payload; the payload's values are masked.
    pub fn validate_payload(&self, payload: &[u8]) -> Result<(), String> {
        let text = std::str::from_utf8(payload)
            .map_err(|error| format!("payload is not UTF-8 JSON: {error}"))?;
        let instance: Value =
            serde_json::from_str(text).map_err(|error| format!("payload is not JSON: {error}"))?;
        let mut errors: Vec<String> = self
            .validator
            .iter_errors(&instance)
            .take(MAX_PAYLOAD_ERRORS + 1)
            .map(|error| {
                format!(
                    "at '{}': {}",
                    pointer_path(&error.instance_path().to_string()),
                    error.masked()
                )
            })
            .collect();
        if errors.is_empty() {
            return Ok(());
        }
        if errors.len() > MAX_PAYLOAD_ERRORS {
            errors.truncate(MAX_PAYLOAD_ERRORS);
            errors.push("and more".to_string());
        }
        Err(format!(
            "payload does not match the JSON schema: {}",
            errors.join("; ")
        ))
    }
}

// ---------------------------------------------------------------------------------------------
// Parsing and compiling
// ---------------------------------------------------------------------------------------------

fn parse_document(text: &str, what: &str) -> Result<Value, SchemaError> {
    let value: Value = serde_json::from_str(text)
        .map_err(|error| SchemaError(format!("{what} is not valid JSON: {error}")))?;
    match value {
        Value::Object(_) | Value::Bool(_) => Ok(value),
        other => Err(SchemaError(format!(
            "{what} must be a JSON object or a boolean, not {}",
            json_kind(&other)
        ))),
    }
}

/// The draft `value`'s `$schema` names, or `default` without one.
fn draft_of(value: &Value, what: &str, default: Draft) -> Result<Draft, SchemaError> {
    match value.get("$schema") {
        None => Ok(default),
        Some(Value::String(uri)) => match Draft::from_schema_uri(uri) {
            Draft::Draft4 => Ok(Draft::Draft4),
            Draft::Draft6 => Ok(Draft::Draft6),
            Draft::Draft7 => Ok(Draft::Draft7),
            Draft::Draft201909 => Ok(Draft::Draft201909),
            Draft::Draft202012 => Ok(Draft::Draft202012),
            _ => Err(SchemaError(format!(
                "{what} names an unsupported $schema '{uri}': use draft-04, draft-06, draft-07, \
                 2019-09 or 2020-12, e.g. \"http://json-schema.org/draft-07/schema#\""
            ))),
        },
        Some(other) => Err(SchemaError(format!(
            "{what} has a $schema that is {}, not a URI string",
            json_kind(other)
        ))),
    }
}

fn draft_name(draft: Draft) -> &'static str {
    match draft {
        Draft::Draft4 => "draft-04",
        Draft::Draft6 => "draft-06",
        Draft::Draft7 => "draft-07",
        Draft::Draft201909 => "2019-09",
        _ => "2020-12",
    }
}

fn check_meta_schema(value: &Value, draft: Draft, what: &str) -> Result<(), SchemaError> {
    let validator = match draft {
        Draft::Draft4 => jsonschema::draft4::meta::validator(),
        Draft::Draft6 => jsonschema::draft6::meta::validator(),
        Draft::Draft7 => jsonschema::draft7::meta::validator(),
        Draft::Draft201909 => jsonschema::draft201909::meta::validator(),
        _ => jsonschema::draft202012::meta::validator(),
    };
    let mut errors: Vec<String> = validator
        .iter_errors(value)
        .take(MAX_SCHEMA_ERRORS + 1)
        .map(|error| {
            format!(
                "at '{}': {error}",
                pointer_path(&error.instance_path().to_string())
            )
        })
        .collect();
    if errors.is_empty() {
        return Ok(());
    }
    if errors.len() > MAX_SCHEMA_ERRORS {
        errors.truncate(MAX_SCHEMA_ERRORS);
        errors.push("and more".to_string());
    }
    Err(SchemaError(format!(
        "{what} is not a valid JSON Schema ({}): {}",
        draft_name(draft),
        errors.join("; ")
    )))
}

/// The absolute base URI of a root schema: its `$id` (`id` in draft-04), else the default.
fn base_uri_of(schema: &Value, draft: Draft) -> Result<String, SchemaError> {
    match schema.get(id_keyword(draft)).and_then(Value::as_str) {
        Some(id) => jsonschema::uri::from_str(id)
            .map(|uri| strip_fragment(uri.as_str()).to_string())
            .map_err(|error| SchemaError(format!("schema's $id '{id}' is not a URI: {error}"))),
        None => Ok(DEFAULT_BASE_URI.to_string()),
    }
}

fn id_keyword(draft: Draft) -> &'static str {
    if draft == Draft::Draft4 { "id" } else { "$id" }
}

fn pattern_options() -> PatternOptions<jsonschema::FancyRegex> {
    PatternOptions::fancy_regex().backtrack_limit(REGEX_BACKTRACK_LIMIT)
}

/// Compiles `schema` with `references` in an offline registry: nothing is ever fetched.
fn compile(
    schema: &Value,
    draft: Draft,
    references: &[Reference],
) -> Result<Validator, SchemaError> {
    let registry = Registry::new()
        .extend(
            references
                .iter()
                .map(|reference| (reference.uri.as_str(), &reference.schema)),
        )
        .and_then(|builder| builder.prepare())
        .map_err(|error| {
            SchemaError(format!(
                "the referenced schemas do not resolve: {error}; pass every schema a $ref \
                 names as a reference"
            ))
        })?;
    jsonschema::options()
        .with_draft(draft)
        .offline()
        .with_registry(&registry)
        .with_pattern_options(pattern_options())
        .build(schema)
        .map_err(|error| match error.kind() {
            jsonschema::error::ValidationErrorKind::Referencing(reference) => SchemaError(format!(
                "schema has a $ref that does not resolve: {reference}; a $ref may point \
                     inside the schema or to a referenced schema, whose reference name must be \
                     the URL the $ref uses"
            )),
            _ => SchemaError(format!(
                "schema is not a valid JSON Schema ({}): at '{}': {error}",
                draft_name(draft),
                pointer_path(&error.instance_path().to_string())
            )),
        })
}

// ---------------------------------------------------------------------------------------------
// Canonical form
// ---------------------------------------------------------------------------------------------

/// Keywords whose value is one subschema.
const SCHEMA_KEYWORDS: &[&str] = &[
    "additionalProperties",
    "additionalItems",
    "contains",
    "propertyNames",
    "not",
    "if",
    "then",
    "else",
    "unevaluatedItems",
    "unevaluatedProperties",
    "contentSchema",
];
/// Keywords whose value is an array of subschemas.
const SCHEMA_ARRAY_KEYWORDS: &[&str] = &["allOf", "anyOf", "oneOf", "prefixItems"];
/// Keywords whose value is an object of subschemas.
const SCHEMA_MAP_KEYWORDS: &[&str] = &[
    "properties",
    "patternProperties",
    "definitions",
    "$defs",
    "dependentSchemas",
];

/// The normalised form of a schema (see the module doc).
fn normalize_schema(schema: &Value) -> Value {
    let Value::Object(map) = schema else {
        return schema.clone();
    };
    let mut keys: Vec<&String> = map.keys().collect();
    keys.sort();
    let mut normalized = Map::new();
    for key in keys {
        let value = &map[key];
        let value = match key.as_str() {
            k if SCHEMA_KEYWORDS.contains(&k) => normalize_schema(value),
            k if SCHEMA_ARRAY_KEYWORDS.contains(&k) => normalize_array(value, normalize_schema),
            k if SCHEMA_MAP_KEYWORDS.contains(&k) => normalize_map(value, normalize_schema),
            "items" => match value {
                Value::Array(_) => normalize_array(value, normalize_schema),
                other => normalize_schema(other),
            },
            "dependencies" => normalize_map(value, |dependency| {
                if dependency.is_array() {
                    normalize_string_set(dependency)
                } else {
                    normalize_schema(dependency)
                }
            }),
            "dependentRequired" => normalize_map(value, normalize_string_set),
            "required" => normalize_string_set(value),
            "type" => normalize_type(value),
            _ => normalize_data(value),
        };
        normalized.insert(key.clone(), value);
    }
    Value::Object(normalized)
}

fn normalize_array(value: &Value, each: impl Fn(&Value) -> Value) -> Value {
    match value {
        Value::Array(items) => Value::Array(items.iter().map(each).collect()),
        other => normalize_data(other),
    }
}

fn normalize_map(value: &Value, each: impl Fn(&Value) -> Value) -> Value {
    match value {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            Value::Object(
                keys.into_iter()
                    .map(|k| (k.clone(), each(&map[k])))
                    .collect(),
            )
        }
        other => normalize_data(other),
    }
}

/// An array of strings that is a set: sorted and deduplicated.
fn normalize_string_set(value: &Value) -> Value {
    match value {
        Value::Array(items) if items.iter().all(Value::is_string) => {
            let mut items = items.clone();
            items.sort_by(|a, b| a.as_str().cmp(&b.as_str()));
            items.dedup();
            Value::Array(items)
        }
        other => normalize_data(other),
    }
}

fn normalize_type(value: &Value) -> Value {
    match normalize_string_set(value) {
        Value::Array(mut items) if items.len() == 1 => items.remove(0),
        other => other,
    }
}

/// Data keeps its arrays' order; only object keys are sorted.
fn normalize_data(value: &Value) -> Value {
    match value {
        Value::Object(_) => normalize_map(value, normalize_data),
        Value::Array(items) => Value::Array(items.iter().map(normalize_data).collect()),
        other => other.clone(),
    }
}

// ---------------------------------------------------------------------------------------------
// Confluent's difference types
// ---------------------------------------------------------------------------------------------

macro_rules! changes {
    ($($variant:ident => $name:literal, $compatible:literal;)*) => {
        /// A difference type of Confluent's `Difference.Type` (plus two of Spate's own), with
        /// whether Confluent's `SchemaDiff.COMPATIBLE_CHANGES` lists it.
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        enum Change {
            $($variant,)*
        }

        impl Change {
            fn name(self) -> &'static str {
                match self {
                    $(Change::$variant => $name,)*
                }
            }

            fn is_compatible(self) -> bool {
                match self {
                    $(Change::$variant => $compatible,)*
                }
            }
        }
    };
}

changes! {
    TypeExtended => "TYPE_EXTENDED", true;
    TypeNarrowed => "TYPE_NARROWED", false;
    TypeChanged => "TYPE_CHANGED", false;
    SchemaAdded => "SCHEMA_ADDED", false;
    SchemaRemoved => "SCHEMA_REMOVED", true;

    MaxLengthAdded => "MAX_LENGTH_ADDED", false;
    MaxLengthRemoved => "MAX_LENGTH_REMOVED", true;
    MaxLengthIncreased => "MAX_LENGTH_INCREASED", true;
    MaxLengthDecreased => "MAX_LENGTH_DECREASED", false;
    MinLengthAdded => "MIN_LENGTH_ADDED", false;
    MinLengthRemoved => "MIN_LENGTH_REMOVED", true;
    MinLengthIncreased => "MIN_LENGTH_INCREASED", false;
    MinLengthDecreased => "MIN_LENGTH_DECREASED", true;
    PatternAdded => "PATTERN_ADDED", false;
    PatternRemoved => "PATTERN_REMOVED", true;
    PatternChanged => "PATTERN_CHANGED", false;

    MaximumAdded => "MAXIMUM_ADDED", false;
    MaximumRemoved => "MAXIMUM_REMOVED", true;
    MaximumIncreased => "MAXIMUM_INCREASED", true;
    MaximumDecreased => "MAXIMUM_DECREASED", false;
    MinimumAdded => "MINIMUM_ADDED", false;
    MinimumRemoved => "MINIMUM_REMOVED", true;
    MinimumIncreased => "MINIMUM_INCREASED", false;
    MinimumDecreased => "MINIMUM_DECREASED", true;
    ExclusiveMaximumAdded => "EXCLUSIVE_MAXIMUM_ADDED", false;
    ExclusiveMaximumRemoved => "EXCLUSIVE_MAXIMUM_REMOVED", true;
    ExclusiveMaximumIncreased => "EXCLUSIVE_MAXIMUM_INCREASED", true;
    ExclusiveMaximumDecreased => "EXCLUSIVE_MAXIMUM_DECREASED", false;
    ExclusiveMinimumAdded => "EXCLUSIVE_MINIMUM_ADDED", false;
    ExclusiveMinimumRemoved => "EXCLUSIVE_MINIMUM_REMOVED", true;
    ExclusiveMinimumIncreased => "EXCLUSIVE_MINIMUM_INCREASED", false;
    ExclusiveMinimumDecreased => "EXCLUSIVE_MINIMUM_DECREASED", true;
    MultipleOfAdded => "MULTIPLE_OF_ADDED", false;
    MultipleOfRemoved => "MULTIPLE_OF_REMOVED", true;
    MultipleOfExpanded => "MULTIPLE_OF_EXPANDED", false;
    MultipleOfReduced => "MULTIPLE_OF_REDUCED", true;
    MultipleOfChanged => "MULTIPLE_OF_CHANGED", false;

    RequiredAttributeAdded => "REQUIRED_ATTRIBUTE_ADDED", false;
    RequiredAttributeWithDefaultAdded => "REQUIRED_ATTRIBUTE_WITH_DEFAULT_ADDED", true;
    RequiredAttributeRemoved => "REQUIRED_ATTRIBUTE_REMOVED", true;
    MaxPropertiesAdded => "MAX_PROPERTIES_ADDED", false;
    MaxPropertiesRemoved => "MAX_PROPERTIES_REMOVED", true;
    MaxPropertiesIncreased => "MAX_PROPERTIES_INCREASED", true;
    MaxPropertiesDecreased => "MAX_PROPERTIES_DECREASED", false;
    MinPropertiesAdded => "MIN_PROPERTIES_ADDED", false;
    MinPropertiesRemoved => "MIN_PROPERTIES_REMOVED", true;
    MinPropertiesIncreased => "MIN_PROPERTIES_INCREASED", false;
    MinPropertiesDecreased => "MIN_PROPERTIES_DECREASED", true;
    AdditionalPropertiesAdded => "ADDITIONAL_PROPERTIES_ADDED", true;
    AdditionalPropertiesRemoved => "ADDITIONAL_PROPERTIES_REMOVED", false;
    AdditionalPropertiesExtended => "ADDITIONAL_PROPERTIES_EXTENDED", true;
    AdditionalPropertiesNarrowed => "ADDITIONAL_PROPERTIES_NARROWED", false;
    UnevaluatedPropertiesAdded => "UNEVALUATED_PROPERTIES_ADDED", true;
    UnevaluatedPropertiesRemoved => "UNEVALUATED_PROPERTIES_REMOVED", false;
    UnevaluatedPropertiesExtended => "UNEVALUATED_PROPERTIES_EXTENDED", true;
    UnevaluatedPropertiesNarrowed => "UNEVALUATED_PROPERTIES_NARROWED", false;
    DependencyArrayAdded => "DEPENDENCY_ARRAY_ADDED", false;
    DependencyArrayRemoved => "DEPENDENCY_ARRAY_REMOVED", true;
    DependencyArrayExtended => "DEPENDENCY_ARRAY_EXTENDED", false;
    DependencyArrayNarrowed => "DEPENDENCY_ARRAY_NARROWED", true;
    DependencyArrayChanged => "DEPENDENCY_ARRAY_CHANGED", false;
    DependencySchemaAdded => "DEPENDENCY_SCHEMA_ADDED", false;
    DependencySchemaRemoved => "DEPENDENCY_SCHEMA_REMOVED", true;
    RequiredPropertyAddedToOpenContentModel =>
        "REQUIRED_PROPERTY_ADDED_TO_OPEN_CONTENT_MODEL", false;
    RequiredPropertyWithDefaultAddedToOpenContentModel =>
        "REQUIRED_PROPERTY_WITH_DEFAULT_ADDED_TO_OPEN_CONTENT_MODEL", false;
    OptionalPropertyAddedToOpenContentModel =>
        "OPTIONAL_PROPERTY_ADDED_TO_OPEN_CONTENT_MODEL", false;
    PropertyWithEmptySchemaAddedToOpenContentModel =>
        "PROPERTY_WITH_EMPTY_SCHEMA_ADDED_TO_OPEN_CONTENT_MODEL", true;
    RequiredPropertyAddedToUnopenContentModel =>
        "REQUIRED_PROPERTY_ADDED_TO_UNOPEN_CONTENT_MODEL", false;
    RequiredPropertyWithDefaultAddedToUnopenContentModel =>
        "REQUIRED_PROPERTY_WITH_DEFAULT_ADDED_TO_UNOPEN_CONTENT_MODEL", true;
    OptionalPropertyAddedToUnopenContentModel =>
        "OPTIONAL_PROPERTY_ADDED_TO_UNOPEN_CONTENT_MODEL", true;
    PropertyRemovedFromOpenContentModel => "PROPERTY_REMOVED_FROM_OPEN_CONTENT_MODEL", true;
    PropertyWithFalseRemovedFromClosedContentModel =>
        "PROPERTY_WITH_FALSE_REMOVED_FROM_CLOSED_CONTENT_MODEL", true;
    PropertyRemovedFromClosedContentModel => "PROPERTY_REMOVED_FROM_CLOSED_CONTENT_MODEL", false;
    PropertyRemovedIsCoveredByPartiallyOpenContentModel =>
        "PROPERTY_REMOVED_IS_COVERED_BY_PARTIALLY_OPEN_CONTENT_MODEL", true;
    PropertyRemovedNotCoveredByPartiallyOpenContentModel =>
        "PROPERTY_REMOVED_NOT_COVERED_BY_PARTIALLY_OPEN_CONTENT_MODEL", false;
    PropertyAddedIsCoveredByPartiallyOpenContentModel =>
        "PROPERTY_ADDED_IS_COVERED_BY_PARTIALLY_OPEN_CONTENT_MODEL", true;
    PropertyAddedNotCoveredByPartiallyOpenContentModel =>
        "PROPERTY_ADDED_NOT_COVERED_BY_PARTIALLY_OPEN_CONTENT_MODEL", false;

    MaxItemsAdded => "MAX_ITEMS_ADDED", false;
    MaxItemsRemoved => "MAX_ITEMS_REMOVED", true;
    MaxItemsIncreased => "MAX_ITEMS_INCREASED", true;
    MaxItemsDecreased => "MAX_ITEMS_DECREASED", false;
    MinItemsAdded => "MIN_ITEMS_ADDED", false;
    MinItemsRemoved => "MIN_ITEMS_REMOVED", true;
    MinItemsIncreased => "MIN_ITEMS_INCREASED", false;
    MinItemsDecreased => "MIN_ITEMS_DECREASED", true;
    MaxContainsAdded => "MAX_CONTAINS_ADDED", false;
    MaxContainsRemoved => "MAX_CONTAINS_REMOVED", true;
    MaxContainsIncreased => "MAX_CONTAINS_INCREASED", true;
    MaxContainsDecreased => "MAX_CONTAINS_DECREASED", false;
    MinContainsAdded => "MIN_CONTAINS_ADDED", false;
    MinContainsRemoved => "MIN_CONTAINS_REMOVED", true;
    MinContainsIncreased => "MIN_CONTAINS_INCREASED", false;
    MinContainsDecreased => "MIN_CONTAINS_DECREASED", true;
    UniqueItemsAdded => "UNIQUE_ITEMS_ADDED", false;
    UniqueItemsRemoved => "UNIQUE_ITEMS_REMOVED", true;
    AdditionalItemsAdded => "ADDITIONAL_ITEMS_ADDED", true;
    AdditionalItemsRemoved => "ADDITIONAL_ITEMS_REMOVED", false;
    AdditionalItemsExtended => "ADDITIONAL_ITEMS_EXTENDED", true;
    AdditionalItemsNarrowed => "ADDITIONAL_ITEMS_NARROWED", false;
    ItemAddedToOpenContentModel => "ITEM_ADDED_TO_OPEN_CONTENT_MODEL", false;
    ItemWithEmptySchemaAddedToOpenContentModel =>
        "ITEM_WITH_EMPTY_SCHEMA_ADDED_TO_OPEN_CONTENT_MODEL", true;
    ItemAddedToClosedContentModel => "ITEM_ADDED_TO_CLOSED_CONTENT_MODEL", true;
    ItemRemovedFromOpenContentModel => "ITEM_REMOVED_FROM_OPEN_CONTENT_MODEL", true;
    ItemWithFalseRemovedFromClosedContentModel =>
        "ITEM_WITH_FALSE_REMOVED_FROM_CLOSED_CONTENT_MODEL", true;
    ItemRemovedFromClosedContentModel => "ITEM_REMOVED_FROM_CLOSED_CONTENT_MODEL", false;
    ItemRemovedIsCoveredByPartiallyOpenContentModel =>
        "ITEM_REMOVED_IS_COVERED_BY_PARTIALLY_OPEN_CONTENT_MODEL", true;
    ItemRemovedNotCoveredByPartiallyOpenContentModel =>
        "ITEM_REMOVED_NOT_COVERED_BY_PARTIALLY_OPEN_CONTENT_MODEL", false;
    ItemAddedIsCoveredByPartiallyOpenContentModel =>
        "ITEM_ADDED_IS_COVERED_BY_PARTIALLY_OPEN_CONTENT_MODEL", true;
    ItemAddedNotCoveredByPartiallyOpenContentModel =>
        "ITEM_ADDED_NOT_COVERED_BY_PARTIALLY_OPEN_CONTENT_MODEL", false;

    EnumArrayExtended => "ENUM_ARRAY_EXTENDED", true;
    EnumArrayNarrowed => "ENUM_ARRAY_NARROWED", false;
    EnumArrayChanged => "ENUM_ARRAY_CHANGED", false;

    CombinedTypeExtended => "COMBINED_TYPE_EXTENDED", true;
    CombinedTypeChanged => "COMBINED_TYPE_CHANGED", false;
    ProductTypeExtended => "PRODUCT_TYPE_EXTENDED", false;
    ProductTypeNarrowed => "PRODUCT_TYPE_NARROWED", true;
    SumTypeExtended => "SUM_TYPE_EXTENDED", true;
    SumTypeNarrowed => "SUM_TYPE_NARROWED", false;
    CombinedTypeSubschemasChanged => "COMBINED_TYPE_SUBSCHEMAS_CHANGED", false;
    NotTypeExtended => "NOT_TYPE_EXTENDED", false;
    NotTypeNarrowed => "NOT_TYPE_NARROWED", true;

    ReferenceUnresolved => "REFERENCE_UNRESOLVED", false;
    ComparisonLimitReached => "COMPARISON_LIMIT_REACHED", false;
}

/// The changes of one `max*` keyword: added, removed, increased, decreased.
type MaxChanges = [Change; 4];
/// The changes of one `min*` keyword: added, removed, increased, decreased.
type MinChanges = [Change; 4];
/// The changes of `additionalProperties`-like keywords: added, removed, extended, narrowed.
type OpennessChanges = [Change; 4];

const ADDITIONAL_PROPERTIES: OpennessChanges = [
    Change::AdditionalPropertiesAdded,
    Change::AdditionalPropertiesRemoved,
    Change::AdditionalPropertiesExtended,
    Change::AdditionalPropertiesNarrowed,
];
const UNEVALUATED_PROPERTIES: OpennessChanges = [
    Change::UnevaluatedPropertiesAdded,
    Change::UnevaluatedPropertiesRemoved,
    Change::UnevaluatedPropertiesExtended,
    Change::UnevaluatedPropertiesNarrowed,
];

/// One difference, with its path relative to the pair of schemas it was found in.
#[derive(Debug, Clone)]
struct Diff {
    change: Change,
    path: String,
    detail: String,
}

impl Diff {
    fn prefixed(&self, segment: &str) -> Diff {
        let path = match (segment.is_empty(), self.path.is_empty()) {
            (true, _) => self.path.clone(),
            (false, true) => segment.to_string(),
            (false, false) => format!("{segment}/{}", self.path),
        };
        Diff {
            change: self.change,
            path,
            detail: self.detail.clone(),
        }
    }

    fn message(&self) -> String {
        let path = if self.path.is_empty() {
            "#".to_string()
        } else {
            format!("#/{}", self.path)
        };
        format!("{path}: {}: {}", self.change.name(), self.detail)
    }
}

/// Adds `change` at `path` to `out` when it is incompatible; compatible changes are named (so
/// the rules read as Confluent's) but not reported.
fn record(out: &mut Vec<Diff>, path: &str, change: Change, detail: impl FnOnce() -> String) {
    if change.is_compatible() || out.len() >= MAX_DIFFERENCES {
        return;
    }
    out.push(Diff {
        change,
        path: path.to_string(),
        detail: detail(),
    });
}

// ---------------------------------------------------------------------------------------------
// Types
// ---------------------------------------------------------------------------------------------

const NULL: u8 = 1;
const BOOLEAN: u8 = 2;
const OBJECT: u8 = 4;
const ARRAY: u8 = 8;
const STRING: u8 = 16;
const INTEGER: u8 = 32;
/// Numbers with a fractional part: `number` is `INTEGER | FRACTION`.
const FRACTION: u8 = 64;
const NUMBER: u8 = INTEGER | FRACTION;
const ALL_TYPES: u8 = 127;
/// The kinds a writer union is split into when no reader alternative takes it whole.
const TYPE_KINDS: [u8; 6] = [NULL, BOOLEAN, OBJECT, ARRAY, STRING, NUMBER];

fn type_bits(name: &str) -> u8 {
    match name {
        "null" => NULL,
        "boolean" => BOOLEAN,
        "object" => OBJECT,
        "array" => ARRAY,
        "string" => STRING,
        "integer" => INTEGER,
        "number" => NUMBER,
        _ => 0,
    }
}

/// The types `type` allows (all without `type`).
fn declared_types(map: &Map<String, Value>) -> u8 {
    match map.get("type") {
        Some(Value::String(name)) => type_bits(name),
        Some(Value::Array(names)) => names
            .iter()
            .filter_map(Value::as_str)
            .fold(0, |bits, name| bits | type_bits(name)),
        _ => ALL_TYPES,
    }
}

fn value_type(value: &Value) -> u8 {
    match value {
        Value::Null => NULL,
        Value::Bool(_) => BOOLEAN,
        Value::Object(_) => OBJECT,
        Value::Array(_) => ARRAY,
        Value::String(_) => STRING,
        Value::Number(n) => {
            if n.is_i64() || n.is_u64() || n.as_f64().is_some_and(|f| f.fract() == 0.0) {
                INTEGER
            } else {
                FRACTION
            }
        }
    }
}

/// The types of the values `enum` and `const` allow (all without them).
fn value_types(map: &Map<String, Value>) -> u8 {
    let mut bits = ALL_TYPES;
    if let Some(Value::Array(values)) = map.get("enum") {
        bits &= values.iter().fold(0, |b, v| b | value_type(v));
    }
    if let Some(value) = map.get("const") {
        bits &= value_type(value);
    }
    bits
}

fn type_words(bits: u8) -> String {
    if bits == ALL_TYPES {
        return "any type".to_string();
    }
    let mut names = Vec::new();
    for (bit, name) in [
        (NULL, "null"),
        (BOOLEAN, "boolean"),
        (OBJECT, "object"),
        (ARRAY, "array"),
        (STRING, "string"),
    ] {
        if bits & bit != 0 {
            names.push(name);
        }
    }
    match bits & NUMBER {
        NUMBER => names.push("number"),
        INTEGER => names.push("integer"),
        FRACTION => names.push("non-integer number"),
        _ => {}
    }
    names.join(", ")
}

// ---------------------------------------------------------------------------------------------
// References
// ---------------------------------------------------------------------------------------------

const REF_KEYWORDS: [&str; 3] = ["$ref", "$recursiveRef", "$dynamicRef"];

/// Keywords that constrain instances; a schema with none of them accepts anything.
const CONSTRAINING_KEYWORDS: &[&str] = &[
    "type",
    "enum",
    "const",
    "multipleOf",
    "maximum",
    "exclusiveMaximum",
    "minimum",
    "exclusiveMinimum",
    "maxLength",
    "minLength",
    "pattern",
    "items",
    "prefixItems",
    "additionalItems",
    "unevaluatedItems",
    "contains",
    "maxItems",
    "minItems",
    "uniqueItems",
    "maxContains",
    "minContains",
    "properties",
    "patternProperties",
    "additionalProperties",
    "unevaluatedProperties",
    "required",
    "dependencies",
    "dependentRequired",
    "dependentSchemas",
    "propertyNames",
    "maxProperties",
    "minProperties",
    "allOf",
    "anyOf",
    "oneOf",
    "not",
    "if",
    "then",
    "else",
    "$ref",
    "$recursiveRef",
    "$dynamicRef",
];

/// Whether a schema object with a `$ref` also constrains with other keywords.
fn has_constraining_siblings(map: &Map<String, Value>) -> bool {
    map.keys()
        .any(|k| CONSTRAINING_KEYWORDS.contains(&k.as_str()) && !REF_KEYWORDS.contains(&k.as_str()))
}

/// Where one `$ref` (or `$recursiveRef`, `$dynamicRef`) leads.
#[derive(Debug)]
struct RefSite<'a> {
    target: Result<&'a Value, String>,
    keyword: &'static str,
    reference: String,
    /// From draft 2019-09 on, the keywords beside a `$ref` apply too; before, they are ignored.
    siblings_apply: bool,
}

struct PendingRef<'a> {
    node: &'a Value,
    base: String,
    keyword: &'static str,
    reference: String,
    siblings_apply: bool,
}

/// The resources (by absolute URI) and anchors of a schema and its references, and where each
/// of their `$ref`s leads, for following references during a comparison.
#[derive(Debug, Default)]
struct Index<'a> {
    resources: HashMap<String, &'a Value>,
    anchors: HashMap<(String, String), &'a Value>,
    refs: HashMap<*const Value, RefSite<'a>>,
}

impl<'a> Index<'a> {
    fn build(schema: &'a JsonSchema) -> Index<'a> {
        let mut index = Index::default();
        let mut pending = Vec::new();
        index
            .resources
            .insert(schema.base_uri.clone(), &*schema.schema);
        index.walk(&schema.schema, &schema.base_uri, schema.draft, &mut pending);
        for reference in schema.references.iter() {
            index
                .resources
                .entry(reference.uri.clone())
                .or_insert(&reference.schema);
            index.walk(
                &reference.schema,
                &reference.uri,
                reference.draft,
                &mut pending,
            );
        }
        for site in pending {
            let target = index.resolve(&site.base, &site.reference);
            index.refs.insert(
                std::ptr::from_ref(site.node),
                RefSite {
                    target,
                    keyword: site.keyword,
                    reference: site.reference,
                    siblings_apply: site.siblings_apply,
                },
            );
        }
        index
    }

    /// Records the resources, anchors and references in `node` and its subschemas. Recursion is
    /// bounded by `serde_json`'s nesting limit.
    fn walk(
        &mut self,
        node: &'a Value,
        base: &str,
        draft: Draft,
        pending: &mut Vec<PendingRef<'a>>,
    ) {
        let Value::Object(map) = node else {
            return;
        };
        let mut base = base.to_string();
        if let Some(id) = map.get(id_keyword(draft)).and_then(Value::as_str) {
            if let Ok(resolved) = resolve_uri(&base, id) {
                let resource = strip_fragment(&resolved).to_string();
                let fragment = fragment_of(&resolved);
                if !id.starts_with('#') {
                    self.resources.entry(resource.clone()).or_insert(node);
                    base.clone_from(&resource);
                }
                if !fragment.is_empty() && !fragment.starts_with('/') {
                    self.anchors
                        .entry((resource, percent_decode(fragment)))
                        .or_insert(node);
                }
            }
        }
        for keyword in ["$anchor", "$dynamicAnchor"] {
            if let Some(anchor) = map.get(keyword).and_then(Value::as_str) {
                self.anchors
                    .entry((base.clone(), anchor.to_string()))
                    .or_insert(node);
            }
        }
        for keyword in REF_KEYWORDS {
            if let Some(reference) = map.get(keyword).and_then(Value::as_str) {
                pending.push(PendingRef {
                    node,
                    base: base.clone(),
                    keyword,
                    reference: reference.to_string(),
                    siblings_apply: draft >= Draft::Draft201909,
                });
            }
        }
        for child in subschemas(map) {
            self.walk(child, &base, draft, pending);
        }
    }

    fn resolve(&self, base: &str, reference: &str) -> Result<&'a Value, String> {
        let resolved = resolve_uri(base, reference)?;
        let resource = strip_fragment(&resolved);
        let root = self
            .resources
            .get(resource)
            .copied()
            .ok_or_else(|| format!("no schema or reference has the URI '{resource}'"))?;
        let fragment = percent_decode(fragment_of(&resolved));
        if fragment.is_empty() {
            Ok(root)
        } else if fragment.starts_with('/') {
            root.pointer(&fragment)
                .ok_or_else(|| format!("'{resource}' has nothing at '#{fragment}'"))
        } else {
            self.anchors
                .get(&(resource.to_string(), fragment.clone()))
                .copied()
                .ok_or_else(|| format!("'{resource}' has no anchor '{fragment}'"))
        }
    }
}

/// The subschemas directly inside a schema object.
fn subschemas(map: &Map<String, Value>) -> Vec<&Value> {
    let mut children = Vec::new();
    for (key, value) in map {
        let key = key.as_str();
        if SCHEMA_KEYWORDS.contains(&key) {
            children.push(value);
        } else if key == "items" {
            match value {
                Value::Array(items) => children.extend(items),
                other => children.push(other),
            }
        } else if SCHEMA_ARRAY_KEYWORDS.contains(&key) {
            if let Value::Array(items) = value {
                children.extend(items);
            }
        } else if SCHEMA_MAP_KEYWORDS.contains(&key) {
            if let Value::Object(entries) = value {
                children.extend(entries.values());
            }
        } else if key == "dependencies" {
            if let Value::Object(entries) = value {
                children.extend(entries.values().filter(|v| !v.is_array()));
            }
        }
    }
    children
}

fn resolve_uri(base: &str, reference: &str) -> Result<String, String> {
    let base = jsonschema::uri::from_str(base).map_err(|error| error.to_string())?;
    jsonschema::uri::resolve_against(&base.borrow(), reference)
        .map(|uri| uri.as_str().to_string())
        .map_err(|error| error.to_string())
}

fn strip_fragment(uri: &str) -> &str {
    uri.split_once('#').map_or(uri, |(resource, _)| resource)
}

fn fragment_of(uri: &str) -> &str {
    uri.split_once('#').map_or("", |(_, fragment)| fragment)
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let (Some(high), Some(low)) = (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                decoded.push((high * 16 + low) as u8);
                i += 3;
                continue;
            }
        }
        decoded.push(bytes[i]);
        i += 1;
    }
    String::from_utf8(decoded).unwrap_or_else(|_| text.to_string())
}

/// A JSON pointer as a `#`-prefixed path for messages: `/a/b` → `#/a/b`, `` → `#`.
fn pointer_path(pointer: &str) -> String {
    format!("#{pointer}")
}

/// Escapes a property name or pattern as a JSON-pointer segment.
fn escape(segment: &str) -> String {
    segment.replace('~', "~0").replace('/', "~1")
}

// ---------------------------------------------------------------------------------------------
// Comparison
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Side {
    Writer = 0,
    Reader = 1,
}

/// A subschema as the comparison sees it: which schema set it belongs to, whether its `$ref`
/// is set aside (its sibling keywords compared alone) and which types it is restricted to.
#[derive(Debug, Clone, Copy)]
struct View<'a> {
    schema: &'a Value,
    side: Side,
    ignore_ref: bool,
    only: u8,
}

impl<'a> View<'a> {
    fn new(schema: &'a Value, side: Side) -> View<'a> {
        View {
            schema,
            side,
            ignore_ref: false,
            only: ALL_TYPES,
        }
    }

    /// A subschema of this one, in the same schema set.
    fn child(self, schema: &'a Value) -> View<'a> {
        View::new(schema, self.side)
    }

    fn key(self) -> (usize, u16) {
        let flags =
            self.side as u16 | (u16::from(self.ignore_ref) << 1) | (u16::from(self.only) << 2);
        (std::ptr::from_ref(self.schema) as usize, flags)
    }
}

type PairKey = ((usize, u16), (usize, u16));

/// How a schema treats what it does not declare: properties it does not list, items past its
/// tuple.
#[derive(Debug, Clone, Copy)]
enum Fallback<'a> {
    /// Anything is allowed.
    Open,
    /// Nothing is allowed.
    Closed,
    /// Allowed when valid against this schema.
    Schema(&'a Value),
}

static EMPTY_MAP: LazyLock<Map<String, Value>> = LazyLock::new(Map::new);

const COMBINERS: [&str; 3] = ["allOf", "anyOf", "oneOf"];

/// Compares a writer schema with a reader schema, following Confluent's `SchemaDiff`.
struct Comparer<'a> {
    indexes: [&'a Index<'a>; 2],
    /// Differences of pairs already compared, relative to the pair.
    memo: HashMap<PairKey, Rc<Vec<Diff>>>,
    /// Pairs being compared further up the stack: met again, they are a cycle.
    in_progress: HashSet<PairKey>,
    steps: usize,
    depth: usize,
    patterns: HashMap<String, Option<Validator>>,
}

impl<'a> Comparer<'a> {
    fn new(indexes: [&'a Index<'a>; 2]) -> Comparer<'a> {
        Comparer {
            indexes,
            memo: HashMap::new(),
            in_progress: HashSet::new(),
            steps: 0,
            depth: 0,
            patterns: HashMap::new(),
        }
    }

    /// The incompatible differences between `writer` and `reader`, paths relative to them.
    fn compare(&mut self, writer: View<'a>, reader: View<'a>) -> Rc<Vec<Diff>> {
        let key = (writer.key(), reader.key());
        if let Some(differences) = self.memo.get(&key) {
            return differences.clone();
        }
        if self.in_progress.contains(&key) {
            // A recursive schema met the same pair again: assume compatible, as Confluent does.
            return Rc::new(Vec::new());
        }
        self.steps += 1;
        if self.steps > MAX_COMPARE_STEPS || self.depth >= MAX_COMPARE_DEPTH {
            let mut out = Vec::new();
            record(&mut out, "", Change::ComparisonLimitReached, || {
                format!(
                    "the schemas are too large or too deeply nested to compare within Spate's \
                     limits ({MAX_COMPARE_STEPS} subschema pairs, {MAX_COMPARE_DEPTH} levels); \
                     simplify them or split them into references"
                )
            });
            return Rc::new(out);
        }
        self.in_progress.insert(key);
        self.depth += 1;
        let mut out = Vec::new();
        self.compare_uncached(writer, reader, &mut out);
        self.depth -= 1;
        self.in_progress.remove(&key);
        let out = Rc::new(out);
        self.memo.insert(key, out.clone());
        out
    }

    /// Compares and adds the differences to `out` under `segment`.
    fn compare_into(
        &mut self,
        out: &mut Vec<Diff>,
        segment: &str,
        writer: View<'a>,
        reader: View<'a>,
    ) {
        let differences = self.compare(writer, reader);
        extend(out, segment, &differences);
    }

    fn is_compatible(&mut self, writer: View<'a>, reader: View<'a>) -> bool {
        self.compare(writer, reader).is_empty()
    }

    fn index(&self, side: Side) -> &'a Index<'a> {
        self.indexes[side as usize]
    }

    fn ref_site(&self, view: View<'a>) -> Option<&'a RefSite<'a>> {
        if view.ignore_ref {
            return None;
        }
        self.index(view.side)
            .refs
            .get(&std::ptr::from_ref(view.schema))
    }

    /// Follows `$ref`s until a schema that is not only a reference.
    fn deref(&self, mut view: View<'a>) -> Result<View<'a>, String> {
        for _ in 0..MAX_REF_HOPS {
            let Some(site) = self.ref_site(view) else {
                return Ok(view);
            };
            if site.siblings_apply
                && view
                    .schema
                    .as_object()
                    .is_some_and(has_constraining_siblings)
            {
                return Ok(view);
            }
            match site.target {
                Ok(target) => view.schema = target,
                Err(ref error) => {
                    return Err(format!(
                        "{} '{}' cannot be followed: {error}",
                        site.keyword, site.reference
                    ));
                }
            }
        }
        Err(format!(
            "has a chain of more than {MAX_REF_HOPS} $refs, or a $ref to itself"
        ))
    }

    /// Whether the schema accepts every document: `true`, or no constraining keyword.
    fn is_trivial(&self, view: View<'a>) -> bool {
        match self.deref(view) {
            Ok(view) => match view.schema {
                Value::Bool(accepts) => *accepts,
                Value::Object(map) => !map.keys().any(|k| {
                    CONSTRAINING_KEYWORDS.contains(&k.as_str())
                        && !(view.ignore_ref && REF_KEYWORDS.contains(&k.as_str()))
                }),
                _ => true,
            },
            Err(_) => false,
        }
    }

    fn is_false(&self, view: View<'a>) -> bool {
        matches!(
            self.deref(view),
            Ok(View {
                schema: Value::Bool(false),
                ..
            })
        )
    }

    fn has_default(&self, view: View<'a>) -> bool {
        self.deref(view)
            .is_ok_and(|view| view.schema.get("default").is_some())
    }

    /// A schema whose `$ref` applies together with other constraining keywords (2019-09 on).
    fn compound_ref(&self, view: View<'a>) -> Option<&'a Value> {
        let site = self.ref_site(view)?;
        let map = view.schema.as_object()?;
        if site.siblings_apply && has_constraining_siblings(map) {
            site.target.as_ref().ok().copied()
        } else {
            None
        }
    }

    /// The types a schema allows, combiners and references included, within `view.only`.
    fn types_of(&mut self, view: View<'a>, depth: usize) -> u8 {
        self.steps += 1;
        let Ok(view) = self.deref(view) else {
            return view.only;
        };
        let map = match view.schema {
            Value::Bool(false) => return 0,
            Value::Object(map) => map,
            _ => return view.only,
        };
        let mut bits = declared_types(map) & value_types(map) & view.only;
        if depth >= MAX_TYPE_DEPTH || self.steps > MAX_COMPARE_STEPS {
            return bits;
        }
        if let Some(target) = self.compound_ref(view) {
            bits &= self.types_of(view.child(target), depth + 1);
        }
        if let Some(Value::Array(branches)) = map.get("allOf") {
            for branch in branches {
                bits &= self.types_of(view.child(branch), depth + 1);
            }
        }
        for combiner in ["anyOf", "oneOf"] {
            if let Some(Value::Array(branches)) = map.get(combiner) {
                let union = branches.iter().fold(0, |union, b| {
                    union | self.types_of(view.child(b), depth + 1)
                });
                bits &= union;
            }
        }
        bits
    }

    fn compare_uncached(&mut self, writer: View<'a>, reader: View<'a>, out: &mut Vec<Diff>) {
        let w = match self.deref(writer) {
            Ok(view) => view,
            Err(error) => {
                record(out, "", Change::ReferenceUnresolved, || {
                    format!("the writer's schema {error}")
                });
                return;
            }
        };
        let r = match self.deref(reader) {
            Ok(view) => view,
            Err(error) => {
                record(out, "", Change::ReferenceUnresolved, || {
                    format!("the reader's schema {error}")
                });
                return;
            }
        };

        // Confluent: a false writer or an empty reader is compatible with anything.
        if matches!(w.schema, Value::Bool(false)) || self.is_trivial(r) {
            return;
        }
        let Value::Object(rmap) = r.schema else {
            record(out, "", Change::TypeChanged, || {
                "the reader's schema is false and accepts nothing, while the writer's allows \
                 documents"
                    .to_string()
            });
            return;
        };
        let wmap = w.schema.as_object().unwrap_or(&EMPTY_MAP);

        // A `$ref` with constraining siblings (2019-09 on) is the conjunction of both.
        if let Some(target) = self.compound_ref(r) {
            self.compare_into(out, "", w, r.child(target));
            self.compare_into(
                out,
                "",
                w,
                View {
                    ignore_ref: true,
                    ..r
                },
            );
            return;
        }
        if let Some(target) = self.compound_ref(w) {
            let via_target = self.compare(
                View {
                    schema: target,
                    ..w
                },
                r,
            );
            if via_target.is_empty()
                || self.is_compatible(
                    View {
                        ignore_ref: true,
                        ..w
                    },
                    r,
                )
            {
                return;
            }
            extend(out, "", &via_target);
            return;
        }

        let w_union = pure_union(wmap);
        let r_union = pure_union(rmap);
        let w_has_union = wmap.contains_key("anyOf") || wmap.contains_key("oneOf");
        let r_has_union = rmap.contains_key("anyOf") || rmap.contains_key("oneOf");
        // Deviation: Confluent reports TYPE_CHANGED for a non-singleton writer union against a
        // plain reader; every alternative the reader takes makes the union compatible.
        if let Some((combiner, branches)) = w_union {
            if !r_has_union {
                for (i, branch) in branches.iter().enumerate() {
                    let branch = View {
                        only: w.only,
                        ..w.child(branch)
                    };
                    self.compare_into(out, &format!("{combiner}/{i}"), branch, r);
                }
                return;
            }
        }
        if let Some((combiner, branches)) = r_union {
            if !w_has_union {
                self.compare_some_branch(w, combiner, branches, r, out);
                return;
            }
        }

        if self.compare_base(w, wmap, r, rmap, out) {
            self.compare_combiners(w, wmap, r, rmap, out);
        }
    }

    /// The keywords outside the combiners. False when the types leave nothing to compare.
    fn compare_base(
        &mut self,
        w: View<'a>,
        wmap: &'a Map<String, Value>,
        r: View<'a>,
        rmap: &'a Map<String, Value>,
        out: &mut Vec<Diff>,
    ) -> bool {
        // The writer's types include what its combiners allow; the reader's combiners are
        // compared on their own, so only its own `type`, `enum` and `const` count here.
        let tw = self.types_of(w, 0);
        if tw == 0 {
            return false;
        }
        let tr = declared_types(rmap) & value_types(rmap);
        let refused = tw & !tr;
        let common = tw & tr;
        if refused != 0 {
            if common == 0 {
                record(out, "", Change::TypeChanged, || {
                    format!(
                        "the reader accepts {} but the writer writes {}",
                        type_words(tr),
                        type_words(tw)
                    )
                });
                return false;
            }
            let change = if tr & !tw == 0 {
                Change::TypeNarrowed
            } else {
                Change::TypeChanged
            };
            record(out, "", change, || {
                format!(
                    "the reader does not accept {}, which the writer allows",
                    type_words(refused)
                )
            });
        } else if tr != tw && tr != ALL_TYPES {
            record(out, "", Change::TypeExtended, String::new);
        }

        self.compare_values(wmap, rmap, tw, out);
        if common & STRING != 0 {
            compare_strings(wmap, rmap, out);
        }
        if common & NUMBER != 0 {
            compare_numbers(wmap, rmap, tw & NUMBER, out);
        }
        if common & OBJECT != 0 {
            self.compare_objects(w, wmap, r, rmap, out);
        }
        if common & ARRAY != 0 {
            self.compare_arrays(w, wmap, r, rmap, out);
        }
        self.compare_not(w, wmap, r, rmap, out);
        self.compare_conditionals(wmap, rmap, r, out);
        true
    }

    /// `enum` and `const`, as the sets of values they allow.
    fn compare_values(
        &self,
        wmap: &Map<String, Value>,
        rmap: &Map<String, Value>,
        tw: u8,
        out: &mut Vec<Diff>,
    ) {
        let keyword = if rmap.contains_key("const") {
            "const"
        } else {
            "enum"
        };
        let Some(reader_values) = allowed_values(rmap) else {
            if allowed_values(wmap).is_some() {
                record(out, "enum", Change::EnumArrayExtended, String::new);
            }
            return;
        };
        let reader_keys: HashSet<String> = reader_values.iter().map(|v| value_key(v)).collect();
        let Some(writer_values) = allowed_values(wmap) else {
            // The writer allows any value of its types; only null and booleans are finite.
            let mut needed = Vec::new();
            if tw & !(NULL | BOOLEAN) == 0 {
                if tw & NULL != 0 {
                    needed.push(Value::Null);
                }
                if tw & BOOLEAN != 0 {
                    needed.extend([Value::Bool(true), Value::Bool(false)]);
                }
                if needed.iter().all(|v| reader_keys.contains(&value_key(v))) {
                    return;
                }
            }
            record(out, keyword, Change::EnumArrayNarrowed, || {
                format!(
                    "the reader only accepts {}, while the writer allows any {}",
                    list_values(&reader_values),
                    type_words(tw)
                )
            });
            return;
        };
        let missing: Vec<&Value> = writer_values
            .iter()
            .copied()
            .filter(|v| value_type(v) & tw != 0 && !reader_keys.contains(&value_key(v)))
            .collect();
        if missing.is_empty() {
            if reader_values.len() > writer_values.len() {
                record(out, keyword, Change::EnumArrayExtended, String::new);
            }
            return;
        }
        let writer_keys: HashSet<String> = writer_values.iter().map(|v| value_key(v)).collect();
        let change = if reader_keys.iter().all(|k| writer_keys.contains(k)) {
            Change::EnumArrayNarrowed
        } else {
            Change::EnumArrayChanged
        };
        record(out, keyword, change, || {
            format!(
                "the reader does not accept {}, which the writer allows",
                list_values(&missing)
            )
        });
    }

    fn compare_objects(
        &mut self,
        w: View<'a>,
        wmap: &'a Map<String, Value>,
        r: View<'a>,
        rmap: &'a Map<String, Value>,
        out: &mut Vec<Diff>,
    ) {
        let wprops = object_at(wmap, "properties");
        let rprops = object_at(rmap, "properties");
        let wreq = strings_at(wmap, "required");
        let rreq = strings_at(rmap, "required");

        // `required`, for properties both declare (Confluent) and names the reader requires
        // without declaring them (Spate: Confluent does not look at those).
        for key in wprops.keys() {
            let Some(rp) = rprops.get(key) else {
                continue;
            };
            let path = format!("required/{}", escape(key));
            match (wreq.contains(&key.as_str()), rreq.contains(&key.as_str())) {
                (true, false) => record(out, &path, Change::RequiredAttributeRemoved, String::new),
                (false, true) if self.has_default(r.child(rp)) => record(
                    out,
                    &path,
                    Change::RequiredAttributeWithDefaultAdded,
                    String::new,
                ),
                (false, true) => record(out, &path, Change::RequiredAttributeAdded, || {
                    format!("the reader requires '{key}', which the writer allows to be missing")
                }),
                _ => {}
            }
        }
        for name in &rreq {
            if !wreq.contains(name) && !rprops.contains_key(*name) {
                record(
                    out,
                    &format!("required/{}", escape(name)),
                    Change::RequiredAttributeAdded,
                    || {
                        format!(
                            "the reader requires '{name}', which the writer allows to be missing"
                        )
                    },
                );
            }
        }

        for (key, wp) in wprops {
            let segment = format!("properties/{}", escape(key));
            match rprops.get(key) {
                Some(rp) => self.compare_into(out, &segment, w.child(wp), r.child(rp)),
                None => self.property_removed(w.child(wp), r, rmap, key, &segment, out),
            }
        }
        for (key, rp) in rprops {
            if !wprops.contains_key(key) {
                let required = rreq.contains(&key.as_str()) && !wreq.contains(&key.as_str());
                let segment = format!("properties/{}", escape(key));
                self.property_added(w, wmap, r.child(rp), key, required, &segment, out);
            }
        }

        self.compare_openness(w, wmap, r, rmap, out);
        self.compare_pattern_properties(w, wmap, r, rmap, out);
        self.compare_dependencies(w, wmap, r, rmap, out);

        let (wmax, rmax) = (
            number_at(wmap, "maxProperties"),
            number_at(rmap, "maxProperties"),
        );
        compare_max(
            out,
            "maxProperties",
            "properties",
            wmax,
            rmax,
            [
                Change::MaxPropertiesAdded,
                Change::MaxPropertiesRemoved,
                Change::MaxPropertiesIncreased,
                Change::MaxPropertiesDecreased,
            ],
        );
        let (wmin, rmin) = (
            number_at(wmap, "minProperties"),
            number_at(rmap, "minProperties"),
        );
        compare_min(
            out,
            "minProperties",
            "properties",
            wmin,
            rmin,
            [
                Change::MinPropertiesAdded,
                Change::MinPropertiesRemoved,
                Change::MinPropertiesIncreased,
                Change::MinPropertiesDecreased,
            ],
        );

        // Deviation: Confluent ignores propertyNames.
        match (wmap.get("propertyNames"), rmap.get("propertyNames")) {
            (None, Some(rn)) if !self.is_trivial(r.child(rn)) => {
                record(out, "propertyNames", Change::SchemaAdded, || {
                    "the reader constrains property names, the writer does not".to_string()
                });
            }
            (Some(wn), Some(rn)) => {
                self.compare_into(out, "propertyNames", w.child(wn), r.child(rn));
            }
            _ => {}
        }
    }

    /// A property the writer declares and the reader does not.
    fn property_removed(
        &mut self,
        wp: View<'a>,
        r: View<'a>,
        rmap: &'a Map<String, Value>,
        key: &str,
        segment: &str,
        out: &mut Vec<Diff>,
    ) {
        match self.fallback_for_property(r, rmap, key) {
            Fallback::Open => {
                record(
                    out,
                    segment,
                    Change::PropertyRemovedFromOpenContentModel,
                    String::new,
                );
            }
            Fallback::Closed if self.is_false(wp) => {
                record(
                    out,
                    segment,
                    Change::PropertyWithFalseRemovedFromClosedContentModel,
                    String::new,
                );
            }
            Fallback::Closed => {
                record(
                    out,
                    segment,
                    Change::PropertyRemovedFromClosedContentModel,
                    || {
                        format!(
                            "the reader does not declare '{key}' and its content model is closed \
                         (additionalProperties false), so documents in which the writer wrote \
                         '{key}' are refused"
                        )
                    },
                );
            }
            Fallback::Schema(schema) => {
                let differences = self.compare(wp, r.child(schema));
                if differences.is_empty() {
                    record(
                        out,
                        segment,
                        Change::PropertyRemovedIsCoveredByPartiallyOpenContentModel,
                        String::new,
                    );
                } else {
                    extend(out, segment, &differences);
                    record(
                        out,
                        segment,
                        Change::PropertyRemovedNotCoveredByPartiallyOpenContentModel,
                        || {
                            format!(
                                "the reader does not declare '{key}', and the schema it applies \
                                 to undeclared properties does not accept everything the writer \
                                 allows for '{key}'"
                            )
                        },
                    );
                }
            }
        }
    }

    /// A property the reader declares and the writer does not.
    #[allow(clippy::too_many_arguments)]
    fn property_added(
        &mut self,
        w: View<'a>,
        wmap: &'a Map<String, Value>,
        rp: View<'a>,
        key: &str,
        required: bool,
        segment: &str,
        out: &mut Vec<Diff>,
    ) {
        let has_default = self.has_default(rp);
        match self.fallback_for_property(w, wmap, key) {
            Fallback::Open => {
                if required {
                    let change = if has_default {
                        Change::RequiredPropertyWithDefaultAddedToOpenContentModel
                    } else {
                        Change::RequiredPropertyAddedToOpenContentModel
                    };
                    record(out, segment, change, || {
                        format!(
                            "the reader adds the required property '{key}', which the writer's \
                             documents may lack"
                        )
                    });
                } else if self.is_trivial(rp) {
                    record(
                        out,
                        segment,
                        Change::PropertyWithEmptySchemaAddedToOpenContentModel,
                        String::new,
                    );
                } else {
                    record(
                        out,
                        segment,
                        Change::OptionalPropertyAddedToOpenContentModel,
                        || {
                            format!(
                                "the reader adds '{key}', but the writer's content model is open \
                             (additionalProperties is not false), so the writer may already \
                             write '{key}' with a value the reader's schema for it refuses; \
                             close the writer's content model with \"additionalProperties\": \
                             false, or give '{key}' a schema that accepts anything"
                            )
                        },
                    );
                }
                return;
            }
            Fallback::Closed => {}
            Fallback::Schema(schema) => {
                let differences = self.compare(w.child(schema), rp);
                if differences.is_empty() {
                    record(
                        out,
                        segment,
                        Change::PropertyAddedIsCoveredByPartiallyOpenContentModel,
                        String::new,
                    );
                } else {
                    extend(out, segment, &differences);
                    record(
                        out,
                        segment,
                        Change::PropertyAddedNotCoveredByPartiallyOpenContentModel,
                        || {
                            format!(
                                "the writer may write '{key}' as an undeclared property, and the \
                                 reader's schema for '{key}' does not accept everything the \
                                 writer allows for undeclared properties"
                            )
                        },
                    );
                }
            }
        }
        // Closed and partially open writers alike.
        if !required {
            record(
                out,
                segment,
                Change::OptionalPropertyAddedToUnopenContentModel,
                String::new,
            );
        } else if has_default {
            // Confluent's rule: a default stands in for the missing value.
            record(
                out,
                segment,
                Change::RequiredPropertyWithDefaultAddedToUnopenContentModel,
                String::new,
            );
        } else {
            record(
                out,
                segment,
                Change::RequiredPropertyAddedToUnopenContentModel,
                || {
                    format!(
                        "the reader requires the new property '{key}', which the writer's documents \
                     do not have"
                    )
                },
            );
        }
    }

    /// What a schema does with a property it does not declare: the first `patternProperties`
    /// entry matching it, else `additionalProperties`, else `unevaluatedProperties`.
    fn fallback_for_property(
        &mut self,
        view: View<'a>,
        map: &'a Map<String, Value>,
        key: &str,
    ) -> Fallback<'a> {
        for (pattern, schema) in object_at(map, "patternProperties") {
            if self.matches(pattern, key) {
                return self.fallback(view, Some(schema));
            }
        }
        self.openness(view, map).0
    }

    fn fallback(&self, view: View<'a>, schema: Option<&'a Value>) -> Fallback<'a> {
        match schema {
            None => Fallback::Open,
            Some(schema) if self.is_trivial(view.child(schema)) => Fallback::Open,
            Some(schema) if self.is_false(view.child(schema)) => Fallback::Closed,
            Some(schema) => Fallback::Schema(schema),
        }
    }

    /// What a schema allows of properties it does not declare: `additionalProperties`, or
    /// `unevaluatedProperties` when that is absent or accepts anything, with the keyword that
    /// decides.
    fn openness(
        &self,
        view: View<'a>,
        map: &'a Map<String, Value>,
    ) -> (Fallback<'a>, &'static str) {
        match self.fallback(view, map.get("additionalProperties")) {
            Fallback::Open if map.contains_key("unevaluatedProperties") => (
                self.fallback(view, map.get("unevaluatedProperties")),
                "unevaluatedProperties",
            ),
            other => (other, "additionalProperties"),
        }
    }

    /// `additionalProperties` and `unevaluatedProperties` (Confluent's
    /// `compareAdditionalProperties`), named after the keyword that decides the reader's (else
    /// the writer's) content model.
    fn compare_openness(
        &mut self,
        w: View<'a>,
        wmap: &'a Map<String, Value>,
        r: View<'a>,
        rmap: &'a Map<String, Value>,
        out: &mut Vec<Diff>,
    ) {
        let (wf, w_keyword) = self.openness(w, wmap);
        let (rf, r_keyword) = self.openness(r, rmap);
        let keyword = if matches!(rf, Fallback::Open) {
            w_keyword
        } else {
            r_keyword
        };
        let [added, removed, extended, narrowed] = if keyword == "unevaluatedProperties" {
            UNEVALUATED_PROPERTIES
        } else {
            ADDITIONAL_PROPERTIES
        };
        match (wf, rf) {
            (Fallback::Closed, Fallback::Closed) | (Fallback::Open, Fallback::Open) => {}
            (Fallback::Closed, _) => record(out, keyword, added, String::new),
            (Fallback::Schema(_), Fallback::Open) => record(out, keyword, extended, String::new),
            (_, Fallback::Closed) => record(out, keyword, removed, || {
                format!(
                    "the reader sets {keyword} to false, refusing undeclared properties that the \
                     writer allows"
                )
            }),
            (Fallback::Open, Fallback::Schema(_)) => record(out, keyword, narrowed, || {
                format!(
                    "the reader constrains undeclared properties with a {keyword} schema, while \
                     the writer allows them with any value"
                )
            }),
            (Fallback::Schema(ws), Fallback::Schema(rs)) => {
                self.compare_into(out, keyword, w.child(ws), r.child(rs));
            }
        }
    }

    /// Deviation: Confluent only looks at `patternProperties` for properties declared on one
    /// side; Spate also compares the patterns themselves.
    fn compare_pattern_properties(
        &mut self,
        w: View<'a>,
        wmap: &'a Map<String, Value>,
        r: View<'a>,
        rmap: &'a Map<String, Value>,
        out: &mut Vec<Diff>,
    ) {
        let wpatterns = object_at(wmap, "patternProperties");
        let rpatterns = object_at(rmap, "patternProperties");
        for (pattern, rs) in rpatterns {
            let segment = format!("patternProperties/{}", escape(pattern));
            if let Some(ws) = wpatterns.get(pattern) {
                self.compare_into(out, &segment, w.child(ws), r.child(rs));
                continue;
            }
            match self.openness(w, wmap).0 {
                Fallback::Closed => {}
                Fallback::Open if self.is_trivial(r.child(rs)) => {}
                Fallback::Open => {
                    record(out, &segment, Change::AdditionalPropertiesNarrowed, || {
                        format!(
                            "the reader constrains properties matching '{pattern}', which the \
                             writer allows with any value"
                        )
                    });
                }
                Fallback::Schema(ws) => {
                    self.compare_into(out, &segment, w.child(ws), r.child(rs));
                }
            }
        }
        for (pattern, ws) in wpatterns {
            if rpatterns.contains_key(pattern) {
                continue;
            }
            let segment = format!("patternProperties/{}", escape(pattern));
            match self.openness(r, rmap).0 {
                Fallback::Open => {}
                Fallback::Closed if self.is_false(w.child(ws)) => {}
                Fallback::Closed => {
                    record(
                        out,
                        &segment,
                        Change::PropertyRemovedFromClosedContentModel,
                        || {
                            format!(
                                "the reader drops the pattern '{pattern}' and its content model is \
                             closed, so properties matching it, which the writer allows, are \
                             refused"
                            )
                        },
                    );
                }
                Fallback::Schema(rs) => {
                    let differences = self.compare(w.child(ws), r.child(rs));
                    if !differences.is_empty() {
                        extend(out, &segment, &differences);
                        record(
                            out,
                            &segment,
                            Change::PropertyRemovedNotCoveredByPartiallyOpenContentModel,
                            || {
                                format!(
                                    "the reader drops the pattern '{pattern}', and its \
                                     additionalProperties schema does not accept everything \
                                     the writer allows for properties matching it"
                                )
                            },
                        );
                    }
                }
            }
        }
    }

    /// `dependencies` (draft-04 to 7), `dependentRequired` and `dependentSchemas` (2019-09 on).
    fn compare_dependencies(
        &mut self,
        w: View<'a>,
        wmap: &'a Map<String, Value>,
        r: View<'a>,
        rmap: &'a Map<String, Value>,
        out: &mut Vec<Diff>,
    ) {
        let (warrays, wschemas) = dependencies_of(wmap);
        let (rarrays, rschemas) = dependencies_of(rmap);
        for (key, keyword, wnames) in &warrays {
            let path = format!("{keyword}/{}", escape(key));
            let Some((_, _, rnames)) = rarrays.iter().find(|(k, _, _)| k == key) else {
                record(out, &path, Change::DependencyArrayRemoved, String::new);
                continue;
            };
            let wset: HashSet<&str> = wnames.iter().copied().collect();
            let rset: HashSet<&str> = rnames.iter().copied().collect();
            if wset == rset {
                continue;
            }
            if wset.is_subset(&rset) {
                record(out, &path, Change::DependencyArrayExtended, || {
                    format!(
                        "when '{key}' is present the reader also requires {}, which the writer \
                         does not",
                        list_names(rset.difference(&wset))
                    )
                });
            } else if rset.is_subset(&wset) {
                record(out, &path, Change::DependencyArrayNarrowed, String::new);
            } else {
                record(out, &path, Change::DependencyArrayChanged, || {
                    format!(
                        "when '{key}' is present the reader requires {}, which the writer does \
                         not",
                        list_names(rset.difference(&wset))
                    )
                });
            }
        }
        for (key, keyword, rnames) in &rarrays {
            if !warrays.iter().any(|(k, _, _)| k == key) {
                record(
                    out,
                    &format!("{keyword}/{}", escape(key)),
                    Change::DependencyArrayAdded,
                    || {
                        format!(
                            "when '{key}' is present the reader requires {}, which the writer \
                             does not",
                            list_names(rnames.iter())
                        )
                    },
                );
            }
        }
        for (key, keyword, ws) in &wschemas {
            let path = format!("{keyword}/{}", escape(key));
            match rschemas.iter().find(|(k, _, _)| k == key) {
                Some((_, _, rs)) => self.compare_into(out, &path, w.child(ws), r.child(rs)),
                None => record(out, &path, Change::DependencySchemaRemoved, String::new),
            }
        }
        for (key, keyword, rs) in &rschemas {
            if !wschemas.iter().any(|(k, _, _)| k == key) && !self.is_trivial(r.child(rs)) {
                record(
                    out,
                    &format!("{keyword}/{}", escape(key)),
                    Change::DependencySchemaAdded,
                    || {
                        format!(
                            "when '{key}' is present the reader applies a schema the writer \
                             does not"
                        )
                    },
                );
            }
        }
    }

    fn compare_arrays(
        &mut self,
        w: View<'a>,
        wmap: &'a Map<String, Value>,
        r: View<'a>,
        rmap: &'a Map<String, Value>,
        out: &mut Vec<Diff>,
    ) {
        let wl = self.array_layout(w, wmap);
        let rl = self.array_layout(r, rmap);

        if wl.prefix.is_empty() && rl.prefix.is_empty() {
            // One schema for every item (Confluent's `compareItemSchemaObject`).
            match (wl.rest, rl.rest) {
                (_, Fallback::Open) | (Fallback::Closed, _) => {
                    if matches!(wl.rest, Fallback::Schema(_)) {
                        record(out, wl.rest_keyword, Change::SchemaRemoved, String::new);
                    }
                }
                (Fallback::Open, _) => record(out, rl.rest_keyword, Change::SchemaAdded, || {
                    format!(
                        "the reader constrains the array's items with {}, while the writer \
                         allows any items",
                        rl.rest_keyword
                    )
                }),
                (Fallback::Schema(_), Fallback::Closed) => {
                    record(out, rl.rest_keyword, Change::AdditionalItemsRemoved, || {
                        format!(
                            "the reader allows no items ({} false), while the writer allows \
                             items",
                            rl.rest_keyword
                        )
                    });
                }
                (Fallback::Schema(ws), Fallback::Schema(rs)) => {
                    self.compare_into(out, rl.rest_keyword, w.child(ws), r.child(rs));
                }
            }
        } else if wl.prefix.is_empty() && wl.has_items_schema() {
            // One schema for every item becomes a tuple. Confluent compares the `items`
            // schemas first (the reader has none: SCHEMA_REMOVED, compatible), then the
            // reader's tuple against a writer whose items past its (empty) tuple are not
            // restricted by `additionalItems`, so open: ITEM_ADDED_TO_OPEN_CONTENT_MODEL.
            let open = ArrayLayout {
                rest: Fallback::Open,
                ..wl
            };
            self.compare_tuples(w, &open, r, &rl, out);
        } else if rl.prefix.is_empty() && rl.has_items_schema() {
            // A tuple becomes one schema for every item: Confluent's SCHEMA_ADDED at `items`
            // (the writer had no such schema), then the writer's tuple against an open reader.
            record(out, rl.rest_keyword, Change::SchemaAdded, || {
                format!(
                    "the reader constrains every item with one {} schema, while the writer's \
                     items are a tuple",
                    rl.rest_keyword
                )
            });
            let open = ArrayLayout {
                rest: Fallback::Open,
                ..rl
            };
            self.compare_tuples(w, &wl, r, &open, out);
        } else {
            self.compare_tuples(w, &wl, r, &rl, out);
        }

        let (wmax, rmax) = (number_at(wmap, "maxItems"), number_at(rmap, "maxItems"));
        compare_max(
            out,
            "maxItems",
            "items",
            wmax,
            rmax,
            [
                Change::MaxItemsAdded,
                Change::MaxItemsRemoved,
                Change::MaxItemsIncreased,
                Change::MaxItemsDecreased,
            ],
        );
        let (wmin, rmin) = (number_at(wmap, "minItems"), number_at(rmap, "minItems"));
        compare_min(
            out,
            "minItems",
            "items",
            wmin,
            rmin,
            [
                Change::MinItemsAdded,
                Change::MinItemsRemoved,
                Change::MinItemsIncreased,
                Change::MinItemsDecreased,
            ],
        );
        let unique = |map: &Map<String, Value>| map.get("uniqueItems") == Some(&Value::Bool(true));
        match (unique(wmap), unique(rmap)) {
            (false, true) => record(out, "uniqueItems", Change::UniqueItemsAdded, || {
                "the reader requires unique items, the writer does not".to_string()
            }),
            (true, false) => record(out, "uniqueItems", Change::UniqueItemsRemoved, String::new),
            _ => {}
        }

        // Deviation: Confluent ignores `contains`. A writer's `contains` guarantees an item the
        // reader's `contains` must accept.
        match (wmap.get("contains"), rmap.get("contains")) {
            (None, Some(rc)) if !self.is_trivial(r.child(rc)) => {
                record(out, "contains", Change::SchemaAdded, || {
                    "the reader requires an item matching its contains schema, the writer does \
                     not"
                    .to_string()
                });
            }
            (Some(wc), Some(rc)) => self.compare_into(out, "contains", w.child(wc), r.child(rc)),
            _ => {}
        }
        if rmap.contains_key("contains") {
            let (wmax, rmax) = (
                number_at(wmap, "maxContains"),
                number_at(rmap, "maxContains"),
            );
            compare_max(
                out,
                "maxContains",
                "matching items",
                wmax,
                rmax,
                [
                    Change::MaxContainsAdded,
                    Change::MaxContainsRemoved,
                    Change::MaxContainsIncreased,
                    Change::MaxContainsDecreased,
                ],
            );
            let (wmin, rmin) = (
                number_at(wmap, "minContains"),
                number_at(rmap, "minContains"),
            );
            compare_min(
                out,
                "minContains",
                "matching items",
                wmin,
                rmin,
                [
                    Change::MinContainsAdded,
                    Change::MinContainsRemoved,
                    Change::MinContainsIncreased,
                    Change::MinContainsDecreased,
                ],
            );
        }
    }

    /// Tuples (`items` arrays before 2020-12, `prefixItems` after) and what follows them
    /// (Confluent's `compareItemSchemaArray` and `compareAdditionalItems`).
    fn compare_tuples(
        &mut self,
        w: View<'a>,
        wl: &ArrayLayout<'a>,
        r: View<'a>,
        rl: &ArrayLayout<'a>,
        out: &mut Vec<Diff>,
    ) {
        for (i, (wi, ri)) in wl.prefix.iter().zip(rl.prefix).enumerate() {
            let segment = format!("{}/{i}", rl.prefix_keyword);
            self.compare_into(out, &segment, w.child(wi), r.child(ri));
        }
        for (i, wi) in wl.prefix.iter().enumerate().skip(rl.prefix.len()) {
            let segment = format!("{}/{i}", wl.prefix_keyword);
            match rl.rest {
                Fallback::Open => {
                    record(
                        out,
                        &segment,
                        Change::ItemRemovedFromOpenContentModel,
                        String::new,
                    );
                }
                Fallback::Closed if self.is_false(w.child(wi)) => record(
                    out,
                    &segment,
                    Change::ItemWithFalseRemovedFromClosedContentModel,
                    String::new,
                ),
                Fallback::Closed => {
                    record(
                        out,
                        &segment,
                        Change::ItemRemovedFromClosedContentModel,
                        || {
                            format!(
                                "the reader's tuple has {} items and allows no more, while the \
                             writer allows item {i}",
                                rl.prefix.len()
                            )
                        },
                    );
                }
                Fallback::Schema(rs) => {
                    let differences = self.compare(w.child(wi), r.child(rs));
                    if differences.is_empty() {
                        record(
                            out,
                            &segment,
                            Change::ItemRemovedIsCoveredByPartiallyOpenContentModel,
                            String::new,
                        );
                    } else {
                        extend(out, &segment, &differences);
                        record(
                            out,
                            &segment,
                            Change::ItemRemovedNotCoveredByPartiallyOpenContentModel,
                            || {
                                format!(
                                    "the reader's schema for items past its tuple does not \
                                     accept everything the writer allows for item {i}"
                                )
                            },
                        );
                    }
                }
            }
        }
        for (i, ri) in rl.prefix.iter().enumerate().skip(wl.prefix.len()) {
            let segment = format!("{}/{i}", rl.prefix_keyword);
            match wl.rest {
                Fallback::Open if self.is_trivial(r.child(ri)) => record(
                    out,
                    &segment,
                    Change::ItemWithEmptySchemaAddedToOpenContentModel,
                    String::new,
                ),
                Fallback::Open => {
                    record(out, &segment, Change::ItemAddedToOpenContentModel, || {
                        format!(
                            "the reader adds a schema for item {i}, but the writer allows any \
                             value there"
                        )
                    });
                }
                Fallback::Closed => {
                    record(
                        out,
                        &segment,
                        Change::ItemAddedToClosedContentModel,
                        String::new,
                    );
                }
                Fallback::Schema(ws) => {
                    let differences = self.compare(w.child(ws), r.child(ri));
                    if differences.is_empty() {
                        record(
                            out,
                            &segment,
                            Change::ItemAddedIsCoveredByPartiallyOpenContentModel,
                            String::new,
                        );
                    } else {
                        extend(out, &segment, &differences);
                        record(
                            out,
                            &segment,
                            Change::ItemAddedNotCoveredByPartiallyOpenContentModel,
                            || {
                                format!(
                                    "the reader's schema for item {i} does not accept \
                                     everything the writer allows for items past its tuple"
                                )
                            },
                        );
                    }
                }
            }
        }
        let keyword = rl.rest_keyword;
        match (wl.rest, rl.rest) {
            (Fallback::Closed, Fallback::Closed) | (Fallback::Open, Fallback::Open) => {}
            (Fallback::Closed, _) => {
                record(out, keyword, Change::AdditionalItemsAdded, String::new)
            }
            (Fallback::Schema(_), Fallback::Open) => {
                record(out, keyword, Change::AdditionalItemsExtended, String::new);
            }
            (_, Fallback::Closed) => record(out, keyword, Change::AdditionalItemsRemoved, || {
                format!(
                    "the reader allows no items past its {} tuple items, while the writer \
                     allows them",
                    rl.prefix.len()
                )
            }),
            (Fallback::Open, Fallback::Schema(_)) => {
                record(out, keyword, Change::AdditionalItemsNarrowed, || {
                    "the reader constrains items past its tuple, while the writer allows any"
                        .to_string()
                });
            }
            (Fallback::Schema(ws), Fallback::Schema(rs)) => {
                self.compare_into(out, keyword, w.child(ws), r.child(rs));
            }
        }
    }

    fn array_layout(&self, view: View<'a>, map: &'a Map<String, Value>) -> ArrayLayout<'a> {
        let (prefix, prefix_keyword, rest, rest_keyword): (&'a [Value], _, _, _) =
            if let Some(Value::Array(prefix)) = map.get("prefixItems") {
                (prefix, "prefixItems", map.get("items"), "items")
            } else if let Some(Value::Array(prefix)) = map.get("items") {
                (
                    prefix,
                    "items",
                    map.get("additionalItems"),
                    "additionalItems",
                )
            } else {
                (&[], "items", map.get("items"), "items")
            };
        let mut layout = ArrayLayout {
            prefix,
            prefix_keyword,
            rest: self.fallback(view, rest),
            rest_keyword,
        };
        if matches!(layout.rest, Fallback::Open) && map.contains_key("unevaluatedItems") {
            layout.rest = self.fallback(view, map.get("unevaluatedItems"));
            layout.rest_keyword = "unevaluatedItems";
        }
        layout
    }

    /// `not` (Confluent's `NotSchemaDiff`: the wrapped schemas compare the other way round).
    fn compare_not(
        &mut self,
        w: View<'a>,
        wmap: &'a Map<String, Value>,
        r: View<'a>,
        rmap: &'a Map<String, Value>,
        out: &mut Vec<Diff>,
    ) {
        match (wmap.get("not"), rmap.get("not")) {
            (Some(_), None) => record(out, "not", Change::NotTypeNarrowed, String::new),
            (None, Some(rn)) if !self.is_false(r.child(rn)) => {
                record(out, "not", Change::NotTypeExtended, || {
                    "the reader adds a not schema, refusing documents the writer allows".to_string()
                });
            }
            (Some(wn), Some(rn)) => {
                if self.is_compatible(r.child(rn), w.child(wn)) {
                    record(out, "not", Change::NotTypeNarrowed, String::new);
                } else {
                    record(out, "not", Change::NotTypeExtended, || {
                        "the reader's not schema refuses documents that the writer's not schema \
                         lets through"
                            .to_string()
                    });
                }
            }
            _ => {}
        }
    }

    /// Deviation: Confluent does not compare conditionals; Spate refuses a reader whose
    /// `if`/`then`/`else` is added or changed, since it cannot show what that accepts.
    fn compare_conditionals(
        &self,
        wmap: &Map<String, Value>,
        rmap: &'a Map<String, Value>,
        r: View<'a>,
        out: &mut Vec<Diff>,
    ) {
        let conditional = |map: &Map<String, Value>| {
            ["if", "then", "else"].map(|keyword| map.get(keyword).cloned())
        };
        let rc = conditional(rmap);
        let trivial = ["then", "else"]
            .iter()
            .all(|k| rmap.get(*k).is_none_or(|s| self.is_trivial(r.child(s))));
        if rc[0].is_none() || trivial || conditional(wmap) == rc {
            return;
        }
        record(out, "if", Change::CombinedTypeChanged, || {
            "the reader adds or changes if/then/else, and Spate cannot show that it accepts \
             everything the writer allows; keep the writer's conditional as it is"
                .to_string()
        });
    }

    /// `allOf`, `anyOf` and `oneOf` beside other keywords (Confluent's `CombinedSchemaDiff`).
    fn compare_combiners(
        &mut self,
        w: View<'a>,
        wmap: &'a Map<String, Value>,
        r: View<'a>,
        rmap: &'a Map<String, Value>,
        out: &mut Vec<Diff>,
    ) {
        let wc: Vec<(&str, &'a [Value])> = combiners(wmap);
        let rc: Vec<(&str, &'a [Value])> = combiners(rmap);
        if let ([(w_combiner, wb)], [(r_combiner, rb)]) = (wc.as_slice(), rc.as_slice()) {
            if w_combiner != r_combiner {
                // Confluent's `compareCriteria`.
                let extended = match *r_combiner {
                    "anyOf" => true,
                    "oneOf" => wb.len() == 1,
                    _ => wb.len() == 1 && rb.len() == 1,
                };
                if !extended {
                    record(out, r_combiner, Change::CombinedTypeChanged, || {
                        format!(
                            "the writer combines subschemas with {w_combiner} and the reader \
                             with {r_combiner}, so documents the writer allows may not satisfy \
                             the reader"
                        )
                    });
                    return;
                }
                record(out, r_combiner, Change::CombinedTypeExtended, String::new);
                self.match_branches(w, r_combiner, wb, r, rb, out);
                return;
            }
        }
        for combiner in COMBINERS {
            let wb = wc.iter().find(|(c, _)| *c == combiner).map(|(_, b)| *b);
            let rb = rc.iter().find(|(c, _)| *c == combiner).map(|(_, b)| *b);
            match (wb, rb) {
                (Some(wb), Some(rb)) => self.match_branches(w, combiner, wb, r, rb, out),
                // Deviation: Confluent reports TYPE_CHANGED unless the allOf is a singleton;
                // the writer must satisfy each of the reader's subschemas.
                (None, Some(rb)) if combiner == "allOf" => {
                    for (i, branch) in rb.iter().enumerate() {
                        self.compare_into(out, &format!("allOf/{i}"), w, r.child(branch));
                    }
                }
                (None, Some(rb)) => self.compare_some_branch(w, combiner, rb, r, out),
                // The writer's own combiners only narrow what it writes.
                _ => {}
            }
        }
    }

    /// Both sides use the same combiner: sizes, then a maximum matching of compatible
    /// subschema pairs that must cover the smaller side.
    fn match_branches(
        &mut self,
        w: View<'a>,
        combiner: &str,
        wb: &'a [Value],
        r: View<'a>,
        rb: &'a [Value],
        out: &mut Vec<Diff>,
    ) {
        let wb = distinct(wb);
        let rb = distinct(rb);
        let (m, n) = (wb.len(), rb.len());
        let product = combiner == "allOf";
        if m < n {
            let change = if product {
                Change::ProductTypeExtended
            } else {
                Change::SumTypeExtended
            };
            record(out, combiner, change, || {
                format!(
                    "the reader's allOf has {n} subschemas and the writer's {m}, so documents \
                     must also satisfy subschemas the writer does not require"
                )
            });
        } else if m > n {
            let change = if product {
                Change::ProductTypeNarrowed
            } else {
                Change::SumTypeNarrowed
            };
            record(out, combiner, change, || {
                format!(
                    "the reader's {combiner} has {n} alternatives and the writer's {m}, so \
                     documents matching the writer's other alternatives are refused"
                )
            });
        }

        let mut edges = vec![Vec::new(); m];
        for (i, (_, wi)) in wb.iter().enumerate() {
            for (j, (_, rj)) in rb.iter().enumerate() {
                if self.is_compatible(w.child(wi), r.child(rj)) {
                    edges[i].push(j);
                }
            }
        }
        let matched = maximum_matching(&edges, n);
        let matched_writers: Vec<Option<usize>> = {
            let mut by_writer = vec![None; m];
            for (j, i) in matched.iter().enumerate() {
                if let Some(i) = i {
                    by_writer[*i] = Some(j);
                }
            }
            by_writer
        };
        let size = matched.iter().flatten().count();
        if size >= m.min(n) {
            return;
        }
        if m <= n {
            for (i, (wi_index, wi)) in wb.iter().enumerate() {
                if matched_writers[i].is_some() {
                    continue;
                }
                let segment = format!("{combiner}/{wi_index}");
                let (closest, differences) = self.closest(w.child(wi), r, &rb);
                record(out, &segment, Change::CombinedTypeSubschemasChanged, || {
                    format!(
                        "no subschema of the reader's {combiner} that is not already paired \
                         accepts everything the writer's {combiner}/{wi_index} allows; the \
                         closest is the reader's {combiner}/{closest}"
                    )
                });
                extend(out, &segment, &differences);
            }
        } else {
            for (j, (rj_index, _)) in rb.iter().enumerate() {
                if matched[j].is_none() {
                    record(
                        out,
                        &format!("{combiner}/{rj_index}"),
                        Change::CombinedTypeSubschemasChanged,
                        || {
                            format!(
                                "the reader's {combiner}/{rj_index} is not paired with a \
                                 subschema of the writer's {combiner} whose documents it accepts"
                            )
                        },
                    );
                }
            }
        }
    }

    /// The reader is a union and the writer is not: some alternative must accept everything
    /// the writer allows (Confluent: `SUM_TYPE_EXTENDED`, else `TYPE_CHANGED`). A writer of
    /// several types may spread them over alternatives.
    fn compare_some_branch(
        &mut self,
        w: View<'a>,
        combiner: &str,
        rb: &'a [Value],
        r: View<'a>,
        out: &mut Vec<Diff>,
    ) {
        if let [only] = rb {
            self.compare_into(out, &format!("{combiner}/0"), w, r.child(only));
            return;
        }
        if rb.iter().any(|b| self.is_compatible(w, r.child(b))) {
            record(out, combiner, Change::SumTypeExtended, String::new);
            return;
        }
        let tw = self.types_of(w, 0);
        let kinds: Vec<u8> = TYPE_KINDS
            .iter()
            .map(|k| k & tw)
            .filter(|k| *k != 0)
            .collect();
        if kinds.len() > 1
            && kinds.iter().all(|kind| {
                let part = View { only: *kind, ..w };
                rb.iter().any(|b| self.is_compatible(part, r.child(b)))
            })
        {
            record(out, combiner, Change::SumTypeExtended, String::new);
            return;
        }
        let branches: Vec<(usize, &'a Value)> = rb.iter().enumerate().collect();
        let (closest, differences) = self.closest(w, r, &branches);
        record(out, combiner, Change::TypeChanged, || {
            format!(
                "none of the reader's {} {combiner} alternatives accepts everything the writer \
                 allows; the closest is {combiner}/{closest}",
                rb.len()
            )
        });
        extend(out, &format!("{combiner}/{closest}"), &differences);
    }

    /// The reader subschema with the fewest differences from `w`, by its index.
    fn closest(
        &mut self,
        w: View<'a>,
        r: View<'a>,
        branches: &[(usize, &'a Value)],
    ) -> (usize, Rc<Vec<Diff>>) {
        let mut best: Option<(usize, Rc<Vec<Diff>>)> = None;
        // A subschema of another type is the farthest.
        let distance = |differences: &[Diff]| {
            let other_type = differences
                .iter()
                .any(|d| d.path.is_empty() && d.change == Change::TypeChanged);
            differences.len() + if other_type { MAX_DIFFERENCES } else { 0 }
        };
        for (index, branch) in branches {
            let differences = self.compare(w, r.child(branch));
            if best
                .as_ref()
                .is_none_or(|(_, b)| distance(&differences) < distance(b))
            {
                best = Some((*index, differences));
            }
        }
        best.unwrap_or_else(|| (0, Rc::new(Vec::new())))
    }

    /// Whether `key` matches the ECMA-262 regular expression `pattern` (unanchored, as JSON
    /// Schema's `patternProperties`). A pattern that does not compile matches nothing.
    fn matches(&mut self, pattern: &str, key: &str) -> bool {
        let validator = self.patterns.entry(pattern.to_string()).or_insert_with(|| {
            jsonschema::options()
                .with_pattern_options(pattern_options())
                .build(&serde_json::json!({ "pattern": pattern }))
                .ok()
        });
        validator
            .as_ref()
            .is_some_and(|v| v.is_valid(&Value::String(key.to_string())))
    }
}

/// How an array schema lays out its items.
struct ArrayLayout<'a> {
    /// Schemas of the first items, by position.
    prefix: &'a [Value],
    prefix_keyword: &'static str,
    /// What the items past the prefix (all items without one) may be.
    rest: Fallback<'a>,
    rest_keyword: &'static str,
}

impl ArrayLayout<'_> {
    /// Whether this is one `items` schema (or `items: false`) for every item: Confluent's
    /// "all item schema", which a tuple does not have.
    fn has_items_schema(&self) -> bool {
        self.prefix.is_empty()
            && self.rest_keyword == "items"
            && !matches!(self.rest, Fallback::Open)
    }
}

/// Adds `differences` to `out` under `segment`, within the per-pair limit.
fn extend(out: &mut Vec<Diff>, segment: &str, differences: &[Diff]) {
    let room = MAX_DIFFERENCES.saturating_sub(out.len());
    out.extend(differences.iter().take(room).map(|d| d.prefixed(segment)));
}

/// `anyOf` or `oneOf` alone, beside nothing but annotations: a union of its alternatives.
fn pure_union(map: &Map<String, Value>) -> Option<(&'static str, &[Value])> {
    let mut union = None;
    for key in map.keys() {
        match key.as_str() {
            "anyOf" | "oneOf" if union.is_none() => {
                let combiner = if key == "anyOf" { "anyOf" } else { "oneOf" };
                match map.get(key) {
                    Some(Value::Array(branches)) if !branches.is_empty() => {
                        union = Some((combiner, branches.as_slice()));
                    }
                    _ => return None,
                }
            }
            k if CONSTRAINING_KEYWORDS.contains(&k) => return None,
            _ => {}
        }
    }
    union
}

fn combiners(map: &Map<String, Value>) -> Vec<(&'static str, &[Value])> {
    COMBINERS
        .iter()
        .filter_map(|combiner| match map.get(*combiner) {
            Some(Value::Array(branches)) if !branches.is_empty() => {
                Some((*combiner, branches.as_slice()))
            }
            _ => None,
        })
        .collect()
}

/// The subschemas with duplicates removed (Confluent compares sets), with their indexes.
fn distinct(branches: &[Value]) -> Vec<(usize, &Value)> {
    let mut seen = HashSet::new();
    branches
        .iter()
        .enumerate()
        .filter(|(_, branch)| seen.insert(value_key(branch)))
        .collect()
}

/// A maximum matching of writer subschemas (left) to reader subschemas (right, `right` of
/// them) along `edges`, by augmenting paths: for each right node, the left node it is paired
/// with.
fn maximum_matching(edges: &[Vec<usize>], right: usize) -> Vec<Option<usize>> {
    fn augment(
        left: usize,
        edges: &[Vec<usize>],
        seen: &mut [bool],
        pair: &mut [Option<usize>],
    ) -> bool {
        for &r in &edges[left] {
            if seen[r] {
                continue;
            }
            seen[r] = true;
            if pair[r].is_none_or(|other| augment(other, edges, seen, pair)) {
                pair[r] = Some(left);
                return true;
            }
        }
        false
    }
    let mut pair = vec![None; right];
    for left in 0..edges.len() {
        let mut seen = vec![false; right];
        augment(left, edges, &mut seen, &mut pair);
    }
    pair
}

fn compare_strings(wmap: &Map<String, Value>, rmap: &Map<String, Value>, out: &mut Vec<Diff>) {
    let (wmax, rmax) = (number_at(wmap, "maxLength"), number_at(rmap, "maxLength"));
    compare_max(
        out,
        "maxLength",
        "characters",
        wmax,
        rmax,
        [
            Change::MaxLengthAdded,
            Change::MaxLengthRemoved,
            Change::MaxLengthIncreased,
            Change::MaxLengthDecreased,
        ],
    );
    let (wmin, rmin) = (number_at(wmap, "minLength"), number_at(rmap, "minLength"));
    compare_min(
        out,
        "minLength",
        "characters",
        wmin,
        rmin,
        [
            Change::MinLengthAdded,
            Change::MinLengthRemoved,
            Change::MinLengthIncreased,
            Change::MinLengthDecreased,
        ],
    );
    let (wp, rp) = (
        wmap.get("pattern").and_then(Value::as_str),
        rmap.get("pattern").and_then(Value::as_str),
    );
    match (wp, rp) {
        (None, Some(rp)) => record(out, "pattern", Change::PatternAdded, || {
            format!("the reader requires strings to match '{rp}', the writer has no pattern")
        }),
        (Some(_), None) => record(out, "pattern", Change::PatternRemoved, String::new),
        (Some(wp), Some(rp)) if wp != rp => record(out, "pattern", Change::PatternChanged, || {
            format!("the reader's pattern '{rp}' differs from the writer's '{wp}'")
        }),
        _ => {}
    }
}

/// One side of a numeric range.
#[derive(Debug, Clone, Copy)]
struct Bound {
    value: f64,
    exclusive: bool,
    keyword: &'static str,
}

impl Bound {
    fn describe(self) -> String {
        format!("{} {}", self.keyword, self.value)
    }
}

/// The tighter of `maximum` and `exclusiveMaximum` (a draft-04 boolean makes `maximum`
/// exclusive); with `upper` false, of the minimums.
fn bound(map: &Map<String, Value>, upper: bool) -> Option<Bound> {
    let (inclusive_keyword, exclusive_keyword) = if upper {
        ("maximum", "exclusiveMaximum")
    } else {
        ("minimum", "exclusiveMinimum")
    };
    let inclusive = number_at(map, inclusive_keyword);
    let exclusive = map.get(exclusive_keyword);
    if exclusive == Some(&Value::Bool(true)) {
        return inclusive.map(|value| Bound {
            value,
            exclusive: true,
            keyword: exclusive_keyword,
        });
    }
    let inclusive = inclusive.map(|value| Bound {
        value,
        exclusive: false,
        keyword: inclusive_keyword,
    });
    let exclusive = exclusive.and_then(Value::as_f64).map(|value| Bound {
        value,
        exclusive: true,
        keyword: exclusive_keyword,
    });
    match (inclusive, exclusive) {
        (Some(i), Some(e)) => {
            let e_tighter = if upper {
                e.value <= i.value
            } else {
                e.value >= i.value
            };
            Some(if e_tighter { e } else { i })
        }
        (bound, None) | (None, bound) => bound,
    }
}

/// Deviation: Confluent compares `maximum` and `exclusiveMaximum` keyword by keyword; Spate
/// compares the ranges they allow and names the reader's keyword.
fn compare_numbers(
    wmap: &Map<String, Value>,
    rmap: &Map<String, Value>,
    writer_numbers: u8,
    out: &mut Vec<Diff>,
) {
    let changes = |keyword: &str, upper: bool| -> [Change; 4] {
        // added, removed, looser, tighter
        match (keyword.starts_with("exclusive"), upper) {
            (false, true) => [
                Change::MaximumAdded,
                Change::MaximumRemoved,
                Change::MaximumIncreased,
                Change::MaximumDecreased,
            ],
            (true, true) => [
                Change::ExclusiveMaximumAdded,
                Change::ExclusiveMaximumRemoved,
                Change::ExclusiveMaximumIncreased,
                Change::ExclusiveMaximumDecreased,
            ],
            (false, false) => [
                Change::MinimumAdded,
                Change::MinimumRemoved,
                Change::MinimumDecreased,
                Change::MinimumIncreased,
            ],
            (true, false) => [
                Change::ExclusiveMinimumAdded,
                Change::ExclusiveMinimumRemoved,
                Change::ExclusiveMinimumDecreased,
                Change::ExclusiveMinimumIncreased,
            ],
        }
    };
    for upper in [true, false] {
        let (wb, rb) = (bound(wmap, upper), bound(rmap, upper));
        match (wb, rb) {
            (None, None) => {}
            (Some(wb), None) => record(out, wb.keyword, changes(wb.keyword, upper)[1], String::new),
            (None, Some(rb)) => record(out, rb.keyword, changes(rb.keyword, upper)[0], || {
                format!(
                    "the reader allows only numbers {} {}, the writer has no {} bound",
                    match (upper, rb.exclusive) {
                        (true, false) => "up to",
                        (true, true) => "below",
                        (false, false) => "from",
                        (false, true) => "above",
                    },
                    rb.value,
                    if upper { "upper" } else { "lower" }
                )
            }),
            (Some(wb), Some(rb)) => {
                let tighter = if upper {
                    rb.value < wb.value
                } else {
                    rb.value > wb.value
                } || (rb.value == wb.value && rb.exclusive && !wb.exclusive);
                let looser = if upper {
                    rb.value > wb.value
                } else {
                    rb.value < wb.value
                } || (rb.value == wb.value && !rb.exclusive && wb.exclusive);
                if tighter {
                    record(out, rb.keyword, changes(rb.keyword, upper)[3], || {
                        format!(
                            "the reader's {} refuses numbers the writer's {} allows",
                            rb.describe(),
                            wb.describe()
                        )
                    });
                } else if looser {
                    record(out, rb.keyword, changes(rb.keyword, upper)[2], String::new);
                }
            }
        }
    }

    let (wm, rm) = (number_at(wmap, "multipleOf"), number_at(rmap, "multipleOf"));
    match (wm, rm) {
        (Some(_), None) => record(out, "multipleOf", Change::MultipleOfRemoved, String::new),
        // Every integer is a multiple of 1, 0.5, ...
        (None, Some(r)) if writer_numbers & FRACTION == 0 && is_multiple(1.0, r) => {}
        (None, Some(r)) => record(out, "multipleOf", Change::MultipleOfAdded, || {
            format!("the reader requires multiples of {r}, the writer does not")
        }),
        (Some(w), Some(r)) if w != r => {
            if is_multiple(w, r) {
                record(out, "multipleOf", Change::MultipleOfReduced, String::new);
            } else if is_multiple(r, w) {
                record(out, "multipleOf", Change::MultipleOfExpanded, || {
                    format!(
                        "the reader requires multiples of {r}, which refuses multiples of the \
                         writer's {w}"
                    )
                });
            } else {
                record(out, "multipleOf", Change::MultipleOfChanged, || {
                    format!(
                        "the reader's multipleOf {r} does not divide the writer's {w}, so some \
                         multiples of {w} are refused"
                    )
                });
            }
        }
        _ => {}
    }
}

/// Whether `a` is a whole multiple of `b`.
fn is_multiple(a: f64, b: f64) -> bool {
    if b <= 0.0 {
        return false;
    }
    let quotient = a / b;
    (quotient - quotient.round()).abs() <= 1e-9 * quotient.abs().max(1.0)
}

/// A `max*` keyword: the reader must allow at least as many as the writer.
fn compare_max(
    out: &mut Vec<Diff>,
    keyword: &str,
    unit: &str,
    writer: Option<f64>,
    reader: Option<f64>,
    [added, removed, increased, decreased]: MaxChanges,
) {
    match (writer, reader) {
        (Some(_), None) => record(out, keyword, removed, String::new),
        (None, Some(r)) => record(out, keyword, added, || {
            format!("the reader allows at most {r} {unit}, the writer has no {keyword}")
        }),
        (Some(w), Some(r)) if r < w => record(out, keyword, decreased, || {
            format!("the reader's {keyword} {r} is less than the writer's {w}")
        }),
        (Some(w), Some(r)) if r > w => record(out, keyword, increased, String::new),
        _ => {}
    }
}

/// A `min*` keyword: the reader must require no more than the writer (absent is 0).
fn compare_min(
    out: &mut Vec<Diff>,
    keyword: &str,
    unit: &str,
    writer: Option<f64>,
    reader: Option<f64>,
    [added, removed, increased, decreased]: MinChanges,
) {
    match (writer, reader) {
        (Some(w), None) if w > 0.0 => record(out, keyword, removed, String::new),
        (None, Some(r)) if r > 0.0 => record(out, keyword, added, || {
            format!("the reader requires at least {r} {unit}, the writer has no {keyword}")
        }),
        (Some(w), Some(r)) if r > w => record(out, keyword, increased, || {
            format!("the reader's {keyword} {r} is more than the writer's {w}")
        }),
        (Some(w), Some(r)) if r < w => record(out, keyword, decreased, String::new),
        _ => {}
    }
}

type DependencyArrays<'v> = Vec<(&'v str, &'static str, Vec<&'v str>)>;
type DependencySchemas<'v> = Vec<(&'v str, &'static str, &'v Value)>;

/// Property dependencies (names required when a property is present) and schema dependencies,
/// each with the keyword it came from.
fn dependencies_of(map: &Map<String, Value>) -> (DependencyArrays<'_>, DependencySchemas<'_>) {
    let mut arrays = Vec::new();
    let mut schemas = Vec::new();
    for (key, value) in object_at(map, "dependencies") {
        match value {
            Value::Array(names) => arrays.push((
                key.as_str(),
                "dependencies",
                names.iter().filter_map(Value::as_str).collect(),
            )),
            schema => schemas.push((key.as_str(), "dependencies", schema)),
        }
    }
    for (key, value) in object_at(map, "dependentRequired") {
        if let Value::Array(names) = value {
            arrays.push((
                key.as_str(),
                "dependentRequired",
                names.iter().filter_map(Value::as_str).collect(),
            ));
        }
    }
    for (key, schema) in object_at(map, "dependentSchemas") {
        schemas.push((key.as_str(), "dependentSchemas", schema));
    }
    (arrays, schemas)
}

fn object_at<'v>(map: &'v Map<String, Value>, keyword: &str) -> &'v Map<String, Value> {
    map.get(keyword)
        .and_then(Value::as_object)
        .unwrap_or(&EMPTY_MAP)
}

fn strings_at<'v>(map: &'v Map<String, Value>, keyword: &str) -> Vec<&'v str> {
    match map.get(keyword) {
        Some(Value::Array(items)) => items.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    }
}

fn number_at(map: &Map<String, Value>, keyword: &str) -> Option<f64> {
    map.get(keyword).and_then(Value::as_f64)
}

/// The values `enum` and `const` allow, or `None` when they allow any.
fn allowed_values(map: &Map<String, Value>) -> Option<Vec<&Value>> {
    let listed = map.get("enum").and_then(Value::as_array);
    match (listed, map.get("const")) {
        (None, None) => None,
        (Some(values), None) => Some(values.iter().collect()),
        (None, Some(value)) => Some(vec![value]),
        (Some(values), Some(value)) => {
            let key = value_key(value);
            Some(if values.iter().any(|v| value_key(v) == key) {
                vec![value]
            } else {
                Vec::new()
            })
        }
    }
}

/// A key equal for equal JSON values: object keys sorted, `1.0` written as `1`.
fn value_key(value: &Value) -> String {
    fn canonical(value: &Value) -> Value {
        match value {
            Value::Object(map) => {
                let mut keys: Vec<&String> = map.keys().collect();
                keys.sort();
                Value::Object(
                    keys.into_iter()
                        .map(|k| (k.clone(), canonical(&map[k])))
                        .collect(),
                )
            }
            Value::Array(items) => Value::Array(items.iter().map(canonical).collect()),
            Value::Number(n) if !n.is_i64() && !n.is_u64() => match n.as_f64() {
                Some(f) if f.fract() == 0.0 && f.abs() < 9.0e15 =>
                {
                    #[allow(clippy::cast_possible_truncation)]
                    Value::from(f as i64)
                }
                _ => value.clone(),
            },
            other => other.clone(),
        }
    }
    canonical(value).to_string()
}

fn list_values(values: &[&Value]) -> String {
    let mut listed: Vec<String> = values
        .iter()
        .take(MAX_LISTED_VALUES)
        .map(|v| v.to_string())
        .collect();
    if values.len() > MAX_LISTED_VALUES {
        listed.push(format!("and {} more", values.len() - MAX_LISTED_VALUES));
    }
    listed.join(", ")
}

fn list_names<'v>(names: impl Iterator<Item = &'v &'v str>) -> String {
    let mut names: Vec<String> = names.map(|n| format!("'{n}'")).collect();
    names.sort();
    names.join(", ")
}

fn json_kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn schema(value: Value) -> JsonSchema {
        JsonSchema::parse(&value.to_string(), &[], false).expect("schema parses")
    }

    fn with_references(value: Value, references: &[(&str, Value)]) -> JsonSchema {
        let dependencies: Vec<Dependency> = references
            .iter()
            .map(|(name, text)| Dependency {
                name: name.to_string(),
                text: text.to_string(),
            })
            .collect();
        JsonSchema::parse(&value.to_string(), &dependencies, false).expect("schema parses")
    }

    /// The messages for `reader` reading what `writer` wrote.
    fn check(writer: Value, reader: Value) -> Vec<String> {
        JsonSchema::incompatibilities(&schema(reader), &schema(writer))
    }

    fn assert_compatible(writer: Value, reader: Value) {
        let messages = check(writer, reader);
        assert!(
            messages.is_empty(),
            "expected compatible, got {messages:#?}"
        );
    }

    /// Asserts an incompatibility with `change` at `path`.
    fn assert_refused(writer: Value, reader: Value, path: &str, change: &str) {
        let messages = check(writer, reader);
        let expected = format!("{path}: {change}: ");
        assert!(
            messages.iter().any(|m| m.starts_with(&expected)),
            "expected '{expected}...', got {messages:#?}"
        );
    }

    fn object(properties: Value, closed: bool) -> Value {
        let mut schema = json!({"type": "object", "properties": properties});
        if closed {
            schema["additionalProperties"] = json!(false);
        }
        schema
    }

    // --- parsing and canonical form ---

    #[test]
    fn canonical_ignores_whitespace_and_keeps_key_order() {
        let spaced = JsonSchema::parse("{ \"type\" : \"string\",\n \"maxLength\": 5 }", &[], false)
            .expect("parses");
        let compact =
            JsonSchema::parse(r#"{"type":"string","maxLength":5}"#, &[], false).expect("parses");
        assert_eq!(spaced.canonical(), compact.canonical());
        assert_eq!(compact.canonical(), r#"{"type":"string","maxLength":5}"#);

        let reordered =
            JsonSchema::parse(r#"{"maxLength":5,"type":"string"}"#, &[], false).expect("parses");
        assert_ne!(reordered.canonical(), compact.canonical());
    }

    #[test]
    fn normalized_canonical_equates_key_order_required_and_type_arrays() {
        let a = r#"{"type":"object","required":["b","a"],
            "properties":{"b":{"type":["null","string"]},"a":{"type":["integer"]}}}"#;
        let b = r#"{"properties":{"a":{"type":"integer"},"b":{"type":["string","null"]}},
            "required":["a","b"],"type":"object"}"#;
        let a = JsonSchema::parse(a, &[], true).expect("parses");
        let b = JsonSchema::parse(b, &[], true).expect("parses");
        assert_eq!(a.canonical(), b.canonical());
        assert_eq!(
            a.canonical(),
            r#"{"properties":{"a":{"type":"integer"},"b":{"type":["null","string"]}},"required":["a","b"],"type":"object"}"#
        );
    }

    #[test]
    fn normalized_canonical_keeps_data_array_order() {
        let a = JsonSchema::parse(r#"{"enum":[{"type":["b","a"]},"z","a"]}"#, &[], true)
            .expect("parses");
        assert_eq!(a.canonical(), r#"{"enum":[{"type":["b","a"]},"z","a"]}"#);
    }

    #[test]
    fn schemas_can_be_shared_across_threads() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<JsonSchema>();
    }

    #[test]
    fn boolean_schemas_parse() {
        assert_eq!(schema(json!(true)).canonical(), "true");
        assert_eq!(schema(json!(false)).canonical(), "false");
    }

    #[test]
    fn meta_schema_violation_is_refused() {
        let error = JsonSchema::parse(r#"{"type": 12}"#, &[], false).expect_err("refused");
        assert!(
            error.0.contains("not a valid JSON Schema (draft-07)"),
            "{error}"
        );
        assert!(error.0.contains("'#/type'"), "{error}");

        let error = JsonSchema::parse(r#"{"properties": {"a": {"minLength": -1}}}"#, &[], false)
            .expect_err("refused");
        assert!(error.0.contains("'#/properties/a/minLength'"), "{error}");
    }

    #[test]
    fn meta_schema_follows_declared_draft() {
        // A boolean exclusiveMaximum is draft-04, a number draft-06 on.
        let draft4 = json!({"$schema": "http://json-schema.org/draft-04/schema#",
            "maximum": 5, "exclusiveMaximum": true});
        assert_eq!(schema(draft4.clone()).draft_name(), "draft-04");
        let mut draft7 = draft4;
        draft7["$schema"] = json!("http://json-schema.org/draft-07/schema#");
        assert!(JsonSchema::parse(&draft7.to_string(), &[], false).is_err());

        let draft2020 = json!({"$schema": "https://json-schema.org/draft/2020-12/schema",
            "type": "array", "prefixItems": [{"type": "string"}], "items": false});
        assert_eq!(schema(draft2020).draft_name(), "2020-12");
        assert_eq!(schema(json!({})).draft_name(), "draft-07");
    }

    #[test]
    fn bad_documents_are_refused_with_a_reason() {
        let not_json = JsonSchema::parse("{\"type\": ", &[], false).expect_err("refused");
        assert!(not_json.0.contains("not valid JSON"), "{not_json}");
        let array = JsonSchema::parse("[]", &[], false).expect_err("refused");
        assert!(
            array.0.contains("must be a JSON object or a boolean"),
            "{array}"
        );
        let unknown = JsonSchema::parse(r#"{"$schema": "https://example.com/mine"}"#, &[], false)
            .expect_err("refused");
        assert!(unknown.0.contains("unsupported $schema"), "{unknown}");
    }

    #[test]
    fn unresolvable_ref_is_refused() {
        let error =
            JsonSchema::parse(r#"{"$ref": "customer.json"}"#, &[], false).expect_err("refused");
        assert!(error.0.contains("does not resolve"), "{error}");

        let error = JsonSchema::parse(r##"{"$ref": "#/definitions/missing"}"##, &[], false)
            .expect_err("refused");
        assert!(error.0.contains("does not resolve"), "{error}");

        // Never fetched from the network.
        let error = JsonSchema::parse(
            r#"{"$ref": "https://json-schema.org/learn/examples/address.schema.json"}"#,
            &[],
            false,
        )
        .expect_err("refused");
        assert!(error.0.contains("does not resolve"), "{error}");
    }

    #[test]
    fn reference_to_a_dependency_resolves() {
        let customer = json!({"type": "object", "properties": {"name": {"type": "string"}},
            "required": ["name"]});
        let order = with_references(
            json!({"type": "object", "properties": {"customer": {"$ref": "customer.json"}}}),
            &[("customer.json", customer.clone())],
        );
        assert!(
            order
                .validate_payload(br#"{"customer": {"name": "Ada"}}"#)
                .is_ok()
        );
        assert!(order.validate_payload(br#"{"customer": {}}"#).is_err());

        let root_ref = with_references(
            json!({"$ref": "customer.json"}),
            &[("customer.json", customer.clone())],
        );
        assert!(root_ref.validate_payload(br#"{"name": "Ada"}"#).is_ok());
        assert!(root_ref.validate_payload(br#"{"name": 1}"#).is_err());

        let absolute = with_references(
            json!({"$id": "https://example.com/order.schema.json", "type": "object",
                "properties": {"customer": {"$ref": "customer.schema.json#/properties/name"}}}),
            &[("https://example.com/customer.schema.json", customer)],
        );
        assert!(absolute.validate_payload(br#"{"customer": 5}"#).is_err());
        assert!(absolute.validate_payload(br#"{"customer": "Ada"}"#).is_ok());
    }

    #[test]
    fn invalid_dependency_is_refused_by_name() {
        let error = JsonSchema::parse(
            r#"{"$ref": "customer.json"}"#,
            &[Dependency {
                name: "customer.json".to_string(),
                text: r#"{"type": 12}"#.to_string(),
            }],
            false,
        )
        .expect_err("refused");
        assert!(
            error.0.contains("referenced schema 'customer.json'"),
            "{error}"
        );
    }

    // --- payloads ---

    #[test]
    fn payload_valid_and_invalid() {
        let s = schema(json!({"type": "object", "properties": {
            "email": {"type": "string", "maxLength": 8}}, "required": ["email"]}));
        assert!(s.validate_payload(br#"{"email": "a@b.c"}"#).is_ok());

        let error = s
            .validate_payload(br#"{"email": "secret-address@example.com"}"#)
            .expect_err("refused");
        assert!(error.contains("'#/email'"), "{error}");
        assert!(
            !error.contains("secret-address"),
            "payload values are masked: {error}"
        );

        let error = s.validate_payload(b"{}").expect_err("refused");
        assert!(error.contains("'#'"), "{error}");
        assert!(s.validate_payload(b"{\"email\": ").is_err());
        assert!(s.validate_payload(&[0xff, 0xfe]).is_err());
    }

    #[test]
    fn payload_errors_are_capped() {
        let s = schema(json!({"type": "array", "items": {"type": "string"}}));
        let error = s
            .validate_payload(b"[1,2,3,4,5,6,7,8,9,10]")
            .expect_err("refused");
        assert_eq!(error.matches("at '").count(), MAX_PAYLOAD_ERRORS, "{error}");
        assert!(error.ends_with("and more"), "{error}");
    }

    #[test]
    fn payload_nested_too_deep_is_refused_not_overflowed() {
        let s = schema(json!({}));
        let deep = "[".repeat(100_000);
        assert!(s.validate_payload(deep.as_bytes()).is_err());
    }

    // --- compatibility: properties and content models ---

    #[test]
    fn optional_property_added_to_closed_model_is_compatible() {
        assert_compatible(
            object(json!({"id": {"type": "integer"}}), true),
            object(
                json!({"id": {"type": "integer"}, "email": {"type": "string"}}),
                true,
            ),
        );
    }

    #[test]
    fn optional_property_added_to_open_model_is_refused() {
        let writer = object(json!({"id": {"type": "integer"}}), false);
        let reader = object(
            json!({"id": {"type": "integer"}, "email": {"type": "string"}}),
            false,
        );
        assert_refused(
            writer.clone(),
            reader,
            "#/properties/email",
            "OPTIONAL_PROPERTY_ADDED_TO_OPEN_CONTENT_MODEL",
        );
        // ... unless the new property accepts anything.
        assert_compatible(
            writer,
            object(
                json!({"id": {"type": "integer"}, "note": {"description": "any"}}),
                false,
            ),
        );
    }

    #[test]
    fn required_property_added_is_refused() {
        let mut reader = object(
            json!({"id": {"type": "integer"}, "email": {"type": "string"}}),
            true,
        );
        reader["required"] = json!(["email"]);
        assert_refused(
            object(json!({"id": {"type": "integer"}}), true),
            reader,
            "#/properties/email",
            "REQUIRED_PROPERTY_ADDED_TO_UNOPEN_CONTENT_MODEL",
        );
    }

    #[test]
    fn required_attribute_added_is_refused_and_removed_is_compatible() {
        let optional = object(json!({"email": {"type": "string"}}), false);
        let mut required = optional.clone();
        required["required"] = json!(["email"]);
        assert_refused(
            optional.clone(),
            required.clone(),
            "#/required/email",
            "REQUIRED_ATTRIBUTE_ADDED",
        );
        assert_compatible(required, optional.clone());

        // Confluent: a default stands in for the missing value.
        let mut with_default = object(json!({"email": {"type": "string", "default": ""}}), false);
        with_default["required"] = json!(["email"]);
        assert_compatible(optional, with_default);
    }

    #[test]
    fn property_removed_from_closed_model_is_refused_and_from_open_is_compatible() {
        let both = json!({"id": {"type": "integer"}, "email": {"type": "string"}});
        let one = json!({"id": {"type": "integer"}});
        assert_refused(
            object(both.clone(), true),
            object(one.clone(), true),
            "#/properties/email",
            "PROPERTY_REMOVED_FROM_CLOSED_CONTENT_MODEL",
        );
        assert_compatible(object(both, false), object(one, false));
    }

    #[test]
    fn additional_properties_false_added_is_refused_and_removed_is_compatible() {
        let props = json!({"id": {"type": "integer"}});
        assert_refused(
            object(props.clone(), false),
            object(props.clone(), true),
            "#/additionalProperties",
            "ADDITIONAL_PROPERTIES_REMOVED",
        );
        assert_compatible(object(props.clone(), true), object(props.clone(), false));

        let mut typed = object(props.clone(), false);
        typed["additionalProperties"] = json!({"type": "string"});
        assert_refused(
            object(props.clone(), false),
            typed.clone(),
            "#/additionalProperties",
            "ADDITIONAL_PROPERTIES_NARROWED",
        );
        assert_compatible(typed, object(props, false));
    }

    #[test]
    fn unevaluated_properties_close_a_model_like_additional_properties() {
        let draft2020 = |closing: &str| {
            let mut s = json!({"$schema": "https://json-schema.org/draft/2020-12/schema",
                "type": "object", "properties": {"id": {"type": "integer"}}});
            s[closing] = json!(false);
            s
        };
        assert_compatible(
            draft2020("unevaluatedProperties"),
            draft2020("additionalProperties"),
        );
        let mut open = draft2020("unevaluatedProperties");
        open.as_object_mut()
            .expect("object")
            .remove("unevaluatedProperties");
        assert_refused(
            open,
            draft2020("unevaluatedProperties"),
            "#/unevaluatedProperties",
            "UNEVALUATED_PROPERTIES_REMOVED",
        );
    }

    #[test]
    fn partially_open_model_covers_added_and_removed_properties() {
        let mut writer = object(json!({"id": {"type": "integer"}}), false);
        writer["additionalProperties"] = json!({"type": "string"});
        let mut reader = object(
            json!({"id": {"type": "integer"}, "tag": {"type": "string"}}),
            false,
        );
        reader["additionalProperties"] = json!({"type": "string"});
        assert_compatible(writer.clone(), reader.clone());
        reader["properties"]["tag"] = json!({"type": "string", "maxLength": 3});
        assert_refused(
            writer,
            reader,
            "#/properties/tag",
            "PROPERTY_ADDED_NOT_COVERED_BY_PARTIALLY_OPEN_CONTENT_MODEL",
        );

        let mut pattern_reader = object(json!({}), true);
        pattern_reader["patternProperties"] = json!({"^x_": {"type": "integer"}});
        assert_compatible(
            object(json!({"x_count": {"type": "integer"}}), true),
            pattern_reader.clone(),
        );
        assert_refused(
            object(json!({"x_name": {"type": "string"}}), true),
            pattern_reader,
            "#/properties/x_name",
            "PROPERTY_REMOVED_NOT_COVERED_BY_PARTIALLY_OPEN_CONTENT_MODEL",
        );
    }

    #[test]
    fn nested_objects_report_their_path() {
        let address =
            |zip: Value| object(json!({"address": object(json!({"zip": zip}), true)}), true);
        assert_refused(
            address(json!({"type": "string"})),
            address(json!({"type": "integer"})),
            "#/properties/address/properties/zip",
            "TYPE_CHANGED",
        );
    }

    // --- compatibility: types and scalars ---

    #[test]
    fn widening_a_type_is_compatible_and_narrowing_is_refused() {
        assert_compatible(json!({"type": "integer"}), json!({"type": "number"}));
        assert_refused(
            json!({"type": "number"}),
            json!({"type": "integer"}),
            "#",
            "TYPE_NARROWED",
        );
        assert_refused(
            json!({"type": "string"}),
            json!({"type": "integer"}),
            "#",
            "TYPE_CHANGED",
        );
        assert_compatible(
            json!({"type": "string"}),
            json!({"type": ["string", "null"]}),
        );
        assert_refused(
            json!({"type": ["string", "null"]}),
            json!({"type": "string"}),
            "#",
            "TYPE_NARROWED",
        );
        assert_refused(json!({}), json!({"type": "string"}), "#", "TYPE_NARROWED");
    }

    #[test]
    fn max_length_increase_is_compatible_and_decrease_is_refused() {
        let s = |n: u64| json!({"type": "string", "maxLength": n});
        assert_compatible(s(10), s(20));
        assert_refused(s(20), s(10), "#/maxLength", "MAX_LENGTH_DECREASED");
        assert_refused(
            json!({"type": "string"}),
            s(10),
            "#/maxLength",
            "MAX_LENGTH_ADDED",
        );
        assert_compatible(s(10), json!({"type": "string"}));
        assert_refused(
            json!({"type": "string"}),
            json!({"type": "string", "minLength": 1}),
            "#/minLength",
            "MIN_LENGTH_ADDED",
        );
        assert_refused(
            json!({"type": "string"}),
            json!({"type": "string", "pattern": "^a"}),
            "#/pattern",
            "PATTERN_ADDED",
        );
    }

    #[test]
    fn numeric_bounds_compare_by_range() {
        let n = |extra: Value| {
            let mut s = json!({"type": "number"});
            for (k, v) in extra.as_object().expect("object") {
                s[k] = v.clone();
            }
            s
        };
        assert_compatible(n(json!({"maximum": 10})), n(json!({"maximum": 20})));
        assert_refused(
            n(json!({"maximum": 20})),
            n(json!({"maximum": 10})),
            "#/maximum",
            "MAXIMUM_DECREASED",
        );
        assert_refused(
            n(json!({"maximum": 10})),
            n(json!({"exclusiveMaximum": 10})),
            "#/exclusiveMaximum",
            "EXCLUSIVE_MAXIMUM_DECREASED",
        );
        assert_compatible(
            n(json!({"maximum": 10})),
            n(json!({"exclusiveMaximum": 11})),
        );
        assert_refused(
            n(json!({})),
            n(json!({"minimum": 0})),
            "#/minimum",
            "MINIMUM_ADDED",
        );
        assert_refused(
            n(json!({"minimum": 0})),
            n(json!({"exclusiveMinimum": 0})),
            "#/exclusiveMinimum",
            "EXCLUSIVE_MINIMUM_INCREASED",
        );
        assert_compatible(n(json!({"multipleOf": 4})), n(json!({"multipleOf": 2})));
        assert_refused(
            n(json!({"multipleOf": 2})),
            n(json!({"multipleOf": 4})),
            "#/multipleOf",
            "MULTIPLE_OF_EXPANDED",
        );
        assert_compatible(
            json!({"type": "integer"}),
            json!({"type": "integer", "multipleOf": 1}),
        );
    }

    #[test]
    fn enum_extended_is_compatible_and_narrowed_is_refused() {
        let e = |values: Value| json!({"type": "string", "enum": values});
        assert_compatible(e(json!(["a", "b"])), e(json!(["a", "b", "c"])));
        assert_refused(
            e(json!(["a", "b"])),
            e(json!(["a"])),
            "#/enum",
            "ENUM_ARRAY_NARROWED",
        );
        assert_refused(
            e(json!(["a", "b"])),
            e(json!(["a", "c"])),
            "#/enum",
            "ENUM_ARRAY_CHANGED",
        );
        assert_refused(
            json!({"type": "string"}),
            e(json!(["a"])),
            "#/enum",
            "ENUM_ARRAY_NARROWED",
        );
        assert_compatible(e(json!(["a"])), json!({"type": "string"}));
        assert_refused(
            json!({"const": 1}),
            json!({"const": 2}),
            "#/const",
            "ENUM_ARRAY_CHANGED",
        );
        assert_compatible(json!({"const": 1}), json!({"enum": [1.0, 2]}));
        assert_compatible(json!({"type": "boolean"}), json!({"enum": [true, false]}));
    }

    #[test]
    fn true_and_false_schemas() {
        assert_compatible(json!(false), json!({"type": "string"}));
        assert_compatible(json!({"type": "string"}), json!(true));
        assert_compatible(json!({"type": "string"}), json!({}));
        assert_refused(json!({"type": "string"}), json!(false), "#", "TYPE_CHANGED");
        assert_refused(json!(true), json!({"type": "string"}), "#", "TYPE_NARROWED");
        assert_compatible(object(json!({"a": false}), true), object(json!({}), true));
    }

    // --- compatibility: arrays ---

    #[test]
    fn array_items_and_limits() {
        let a = |items: Value, extra: Value| {
            let mut s = json!({"type": "array", "items": items});
            for (k, v) in extra.as_object().expect("object") {
                s[k] = v.clone();
            }
            s
        };
        assert_compatible(
            a(json!({"type": "integer"}), json!({})),
            a(json!({"type": "number"}), json!({})),
        );
        assert_refused(
            a(json!({"type": "number"}), json!({})),
            a(json!({"type": "integer"}), json!({})),
            "#/items",
            "TYPE_NARROWED",
        );
        assert_refused(
            json!({"type": "array"}),
            a(json!({"type": "string"}), json!({})),
            "#/items",
            "SCHEMA_ADDED",
        );
        assert_refused(
            a(json!({}), json!({"maxItems": 5})),
            a(json!({}), json!({"maxItems": 3})),
            "#/maxItems",
            "MAX_ITEMS_DECREASED",
        );
        assert_refused(
            a(json!({}), json!({})),
            a(json!({}), json!({"uniqueItems": true})),
            "#/uniqueItems",
            "UNIQUE_ITEMS_ADDED",
        );
        assert_compatible(
            a(json!({}), json!({"uniqueItems": true})),
            a(json!({}), json!({})),
        );
    }

    #[test]
    fn tuples_follow_confluents_item_rules() {
        let draft7 = |items: Value, additional: Option<Value>| {
            let mut s = json!({"type": "array", "items": items});
            if let Some(additional) = additional {
                s["additionalItems"] = additional;
            }
            s
        };
        // An item added to a closed tuple is compatible, to an open one refused.
        assert_compatible(
            draft7(json!([{"type": "string"}]), Some(json!(false))),
            draft7(json!([{"type": "string"}, {"type": "integer"}]), None),
        );
        assert_refused(
            draft7(json!([{"type": "string"}]), None),
            draft7(json!([{"type": "string"}, {"type": "integer"}]), None),
            "#/items/1",
            "ITEM_ADDED_TO_OPEN_CONTENT_MODEL",
        );
        assert_refused(
            draft7(json!([{"type": "string"}, {"type": "integer"}]), None),
            draft7(json!([{"type": "string"}]), Some(json!(false))),
            "#/items/1",
            "ITEM_REMOVED_FROM_CLOSED_CONTENT_MODEL",
        );
        let prefix = json!({"$schema": "https://json-schema.org/draft/2020-12/schema",
            "type": "array", "prefixItems": [{"type": "string"}]});
        let mut closed = prefix.clone();
        closed["items"] = json!(false);
        assert_refused(prefix, closed, "#/items", "ADDITIONAL_ITEMS_REMOVED");
    }

    #[test]
    fn a_list_becoming_a_tuple_or_back_is_refused_as_in_confluent() {
        let list = json!({"type": "array", "items": {"type": "string"}});
        let tuple = json!({"type": "array", "items": [{"type": "string"}]});
        // Every item a string, then a tuple whose first item is a string: Confluent sees the
        // tuple's item added to a writer open past its (empty) tuple.
        assert_refused(
            list.clone(),
            tuple.clone(),
            "#/items/0",
            "ITEM_ADDED_TO_OPEN_CONTENT_MODEL",
        );
        let prefix = json!({"$schema": "https://json-schema.org/draft/2020-12/schema",
            "type": "array", "prefixItems": [{"type": "string"}]});
        let list_2020 = json!({"$schema": "https://json-schema.org/draft/2020-12/schema",
            "type": "array", "items": {"type": "string"}});
        assert_refused(
            list_2020.clone(),
            prefix.clone(),
            "#/prefixItems/0",
            "ITEM_ADDED_TO_OPEN_CONTENT_MODEL",
        );
        // And back: the reader's one items schema is SCHEMA_ADDED.
        assert_refused(tuple, list, "#/items", "SCHEMA_ADDED");
        assert_refused(prefix, list_2020, "#/items", "SCHEMA_ADDED");
        // A tuple of empty schemas adds nothing to an array without `items`.
        assert_compatible(
            json!({"type": "array"}),
            json!({"type": "array", "items": [{}]}),
        );
    }

    // --- compatibility: combined schemas ---

    #[test]
    fn union_alternative_added_is_compatible_and_removed_is_refused() {
        let two = json!({"oneOf": [{"type": "string"}, {"type": "integer"}]});
        let three = json!({"oneOf": [{"type": "string"}, {"type": "integer"}, {"type": "null"}]});
        assert_compatible(two.clone(), three.clone());
        assert_refused(three, two.clone(), "#/oneOf", "SUM_TYPE_NARROWED");
        assert_compatible(
            two,
            json!({"anyOf": [{"type": "string"}, {"type": "integer"}]}),
        );
        assert_refused(
            json!({"anyOf": [{"type": "string"}, {"type": "integer"}]}),
            json!({"oneOf": [{"type": "string"}, {"type": "integer"}]}),
            "#/oneOf",
            "COMBINED_TYPE_CHANGED",
        );
        assert_refused(
            json!({"oneOf": [{"type": "string"}, {"type": "integer"}]}),
            json!({"oneOf": [{"type": "string", "maxLength": 2}, {"type": "integer"}]}),
            "#/oneOf/0",
            "COMBINED_TYPE_SUBSCHEMAS_CHANGED",
        );
    }

    #[test]
    fn nullable_evolutions() {
        let nullable = json!({"oneOf": [{"type": "null"}, {"type": "string"}]});
        assert_compatible(json!({"type": "string"}), nullable.clone());
        assert_compatible(json!({"type": ["string", "null"]}), nullable.clone());
        assert_compatible(nullable.clone(), json!({"type": ["null", "string"]}));
        assert_refused(
            nullable,
            json!({"type": "string"}),
            "#/oneOf/0",
            "TYPE_CHANGED",
        );
        assert_refused(
            json!({"type": "string"}),
            json!({"oneOf": [{"type": "null"}, {"type": "string", "maxLength": 3}]}),
            "#/oneOf/1/maxLength",
            "MAX_LENGTH_ADDED",
        );
    }

    #[test]
    fn all_of_extended_is_refused_and_narrowed_is_compatible() {
        let one = json!({"allOf": [{"type": "object"}]});
        let two = json!({"allOf": [{"type": "object"}, {"required": ["id"]}]});
        assert_refused(one.clone(), two.clone(), "#/allOf", "PRODUCT_TYPE_EXTENDED");
        assert_compatible(two, one);
        assert_refused(
            json!({"type": "object"}),
            json!({"type": "object", "allOf": [{"required": ["id"]}]}),
            "#/allOf/0/required/id",
            "REQUIRED_ATTRIBUTE_ADDED",
        );
    }

    #[test]
    fn not_schemas_compare_reversed() {
        assert_compatible(
            json!({"not": {"type": "string"}}),
            json!({"not": {"type": "string", "maxLength": 2}}),
        );
        assert_refused(
            json!({"not": {"type": "string", "maxLength": 2}}),
            json!({"not": {"type": "string"}}),
            "#/not",
            "NOT_TYPE_EXTENDED",
        );
        assert_refused(
            json!({}),
            json!({"not": {"type": "null"}}),
            "#/not",
            "NOT_TYPE_EXTENDED",
        );
    }

    // --- compatibility: references and recursion ---

    #[test]
    fn local_refs_are_followed() {
        let with_def = |max: u64, keyword: &str| {
            let mut s = json!({"type": "object", "properties": {
                "email": {"$ref": format!("#/{keyword}/Email")}}});
            s[keyword] = json!({"Email": {"type": "string", "maxLength": max}});
            s
        };
        assert_compatible(with_def(10, "definitions"), with_def(20, "$defs"));
        assert_refused(
            with_def(20, "definitions"),
            with_def(10, "definitions"),
            "#/properties/email/maxLength",
            "MAX_LENGTH_DECREASED",
        );
    }

    #[test]
    fn references_are_followed_in_comparisons() {
        let customer = |max: u64| {
            json!({"type": "object", "properties": {
            "name": {"type": "string", "maxLength": max}}})
        };
        let order =
            json!({"type": "object", "properties": {"customer": {"$ref": "customer.json"}}});
        let writer = with_references(order.clone(), &[("customer.json", customer(20))]);
        let wider = with_references(order.clone(), &[("customer.json", customer(30))]);
        let narrower = with_references(order, &[("customer.json", customer(10))]);
        assert!(JsonSchema::incompatibilities(&wider, &writer).is_empty());
        let messages = JsonSchema::incompatibilities(&narrower, &writer);
        assert!(
            messages.iter().any(|m| m.starts_with(
                "#/properties/customer/properties/name/maxLength: MAX_LENGTH_DECREASED"
            )),
            "{messages:#?}"
        );
    }

    #[test]
    fn recursive_schema_terminates() {
        let tree = |max: u64| {
            json!({
            "definitions": {"node": {"type": "object", "properties": {
                "name": {"type": "string", "maxLength": max},
                "children": {"type": "array", "items": {"$ref": "#/definitions/node"}}}}},
            "$ref": "#/definitions/node"})
        };
        assert_compatible(tree(10), tree(10));
        assert_compatible(tree(10), tree(20));
        assert_refused(
            tree(20),
            tree(10),
            "#/properties/name/maxLength",
            "MAX_LENGTH_DECREASED",
        );

        let self_root = json!({"type": "object", "properties": {"next": {"$ref": "#"}}});
        assert_compatible(self_root.clone(), self_root);
    }

    #[test]
    fn every_schema_reads_itself() {
        let schemas = [
            json!(true),
            json!({"type": ["string", "null"], "minLength": 1, "pattern": "^[a-z]+$"}),
            json!({"$schema": "http://json-schema.org/draft-04/schema#", "type": "number",
                "minimum": 0, "exclusiveMinimum": true, "multipleOf": 0.5}),
            json!({"type": "object", "additionalProperties": false,
                "properties": {"id": {"type": "integer"}, "tags": {"type": "array",
                    "items": {"type": "string"}, "uniqueItems": true, "maxItems": 10}},
                "patternProperties": {"^x-": {"type": "string"}},
                "required": ["id"], "dependencies": {"id": ["tags"], "tags": {"minProperties": 2}},
                "propertyNames": {"maxLength": 20}}),
            json!({"$schema": "https://json-schema.org/draft/2020-12/schema",
                "$defs": {"base": {"type": "object", "properties": {"kind": {"type": "string"}}}},
                "$ref": "#/$defs/base", "required": ["kind"], "unevaluatedProperties": false,
                "dependentRequired": {"kind": ["id"]},
                "dependentSchemas": {"id": {"properties": {"id": {"type": "integer"}}}},
                "prefixItems": [{"type": "string"}], "items": false,
                "contains": {"type": "string"}, "minContains": 1}),
            json!({"oneOf": [{"type": "null"}, {"$ref": "#/definitions/a"}],
                "definitions": {"a": {"allOf": [{"type": "object"}, {"not": {"required": ["x"]}}],
                    "if": {"required": ["a"]}, "then": {"required": ["b"]}}}}),
            json!({"type": "object", "properties": {"v": {"enum": ["a", 1, null, {"k": [1]}]},
                "c": {"const": {"x": 1}}}, "anyOf": [{"required": ["v"]}, {"required": ["c"]}]}),
        ];
        for value in schemas {
            let messages = check(value.clone(), value.clone());
            assert!(
                messages.is_empty(),
                "{value} does not read itself: {messages:#?}"
            );
        }
    }

    #[test]
    fn deep_and_wide_schemas_stay_bounded() {
        // 60 levels of nested objects.
        let mut deep = json!({"type": "string"});
        for _ in 0..60 {
            deep = json!({"type": "object", "properties": {"a": deep}});
        }
        assert_compatible(deep.clone(), deep);

        // Two unions of 400 alternatives: the pairing is cut off by the work limit.
        let branches: Vec<Value> = (0..400)
            .map(
                |i| json!({"type": "object", "properties": {"k": {"const": i}}, "required": ["k"]}),
            )
            .collect();
        let union = json!({"anyOf": branches});
        let mut narrowed = union.clone();
        narrowed["anyOf"][0] = json!({"type": "object", "properties": {"k": {"const": -1}},
            "required": ["k"]});
        let messages = check(union.clone(), narrowed);
        assert!(!messages.is_empty());
        let messages = check(union.clone(), union);
        assert!(
            messages
                .iter()
                .any(|m| m.contains("COMPARISON_LIMIT_REACHED")),
            "{messages:#?}"
        );

        // A chain of 300 references, each one level deeper.
        let mut definitions = Map::new();
        for i in 0..300 {
            definitions.insert(
                format!("d{i}"),
                json!({"type": "object", "properties": {
                    "next": {"$ref": format!("#/definitions/d{}", i + 1)}}}),
            );
        }
        definitions.insert("d300".to_string(), json!({"type": "string"}));
        let chain = json!({"definitions": definitions, "$ref": "#/definitions/d0"});
        let messages = check(chain.clone(), chain);
        assert!(
            messages
                .iter()
                .any(|m| m.contains("COMPARISON_LIMIT_REACHED")),
            "{messages:#?}"
        );
    }

    /// A tiny xorshift generator: the generated cases are the same on every run.
    struct Cases(u64);

    impl Cases {
        fn below(&mut self, n: usize) -> usize {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            (self.0 % n as u64) as usize
        }

        fn pick(&mut self, values: &[Value]) -> Value {
            values[self.below(values.len())].clone()
        }

        /// A schema of `depth` levels. No `oneOf`: a document matching two alternatives is
        /// refused by it, which neither Confluent's rules nor Spate's consider.
        fn schema(&mut self, depth: usize) -> Value {
            let scalars = [
                json!({"type": "string"}),
                json!({"type": "string", "maxLength": 3}),
                json!({"type": "string", "minLength": 2}),
                json!({"type": "string", "pattern": "^a"}),
                json!({"type": "integer"}),
                json!({"type": "integer", "multipleOf": 2}),
                json!({"type": "integer", "exclusiveMinimum": 0}),
                json!({"type": "number"}),
                json!({"type": "number", "maximum": 5}),
                json!({"type": ["string", "null"]}),
                json!({"type": "null"}),
                json!({"type": "boolean"}),
                json!({"enum": ["a", "b"]}),
                json!({"enum": ["a"]}),
                json!({"const": 1}),
                json!({}),
                json!(true),
                json!(false),
            ];
            if depth == 0 {
                return self.pick(&scalars);
            }
            match self.below(8) {
                0..=2 => {
                    let mut properties = Map::new();
                    for name in ["a", "b", "c"] {
                        if self.below(2) == 0 {
                            properties.insert(name.to_string(), self.schema(depth - 1));
                        }
                    }
                    let mut object = json!({"type": "object", "properties": properties});
                    let required: Vec<&str> = ["a", "b"]
                        .into_iter()
                        .filter(|_| self.below(3) == 0)
                        .collect();
                    if !required.is_empty() {
                        object["required"] = json!(required);
                    }
                    match self.below(4) {
                        0 => object["additionalProperties"] = json!(false),
                        1 => object["additionalProperties"] = self.schema(0),
                        _ => {}
                    }
                    if self.below(5) == 0 {
                        object["patternProperties"] = json!({"^x": self.schema(0)});
                    }
                    object
                }
                3 => {
                    let mut array = json!({"type": "array", "items": self.schema(depth - 1)});
                    if self.below(3) == 0 {
                        array["maxItems"] = json!(2);
                    }
                    if self.below(4) == 0 {
                        array["uniqueItems"] = json!(true);
                    }
                    array
                }
                4 => json!({"items": [self.schema(0), self.schema(0)],
                    "additionalItems": self.schema(0)}),
                5 => {
                    let combiner = ["anyOf", "allOf"][self.below(2)];
                    let branches: Vec<Value> = (0..1 + self.below(3))
                        .map(|_| self.schema(depth - 1))
                        .collect();
                    json!({ combiner: branches })
                }
                6 => json!({"not": self.schema(0)}),
                _ => self.pick(&scalars),
            }
        }

        fn document(&mut self, depth: usize) -> Value {
            let scalars = [
                json!(null),
                json!(true),
                json!(0),
                json!(1),
                json!(2),
                json!(-3),
                json!(6),
                json!(1.5),
                json!("a"),
                json!("b"),
                json!("abcd"),
                json!(""),
                json!("xa"),
            ];
            if depth == 0 || self.below(3) == 0 {
                return self.pick(&scalars);
            }
            if self.below(2) == 0 {
                let mut object = Map::new();
                for name in ["a", "b", "c", "x1", "d"] {
                    if self.below(2) == 0 {
                        object.insert(name.to_string(), self.document(depth - 1));
                    }
                }
                Value::Object(object)
            } else {
                Value::Array(
                    (0..self.below(4))
                        .map(|_| self.document(depth - 1))
                        .collect(),
                )
            }
        }
    }

    #[test]
    fn compatible_verdicts_are_sound_on_generated_schemas() {
        let mut cases = Cases(0x9e37_79b9_7f4a_7c15);
        let documents: Vec<String> = (0..400).map(|_| cases.document(3).to_string()).collect();
        let mut compatible = 0;
        for _ in 0..1500 {
            let writer = cases.schema(2);
            let reader = match writer.get("properties") {
                // Half the readers are a small edit of the writer.
                Some(_) if cases.below(2) == 0 => {
                    let mut reader = writer.clone();
                    reader["properties"]["b"] = cases.schema(1);
                    reader
                }
                _ => cases.schema(2),
            };
            let (w, r) = (schema(writer.clone()), schema(reader.clone()));
            if !JsonSchema::incompatibilities(&r, &w).is_empty() {
                continue;
            }
            compatible += 1;
            for document in &documents {
                assert!(
                    w.validate_payload(document.as_bytes()).is_err()
                        || r.validate_payload(document.as_bytes()).is_ok(),
                    "judged compatible, but the reader {reader} refuses {document}, which the \
                     writer {writer} allows"
                );
            }
        }
        assert!(
            compatible > 100,
            "only {compatible} compatible pairs were generated"
        );
    }

    #[test]
    fn messages_name_reader_and_writer() {
        let messages = check(
            json!({"type": "string", "maxLength": 20}),
            json!({"type": "string", "maxLength": 10}),
        );
        assert_eq!(
            messages,
            vec![
                "#/maxLength: MAX_LENGTH_DECREASED: the reader's maxLength 10 is less than the \
                 writer's 20"
                    .to_string()
            ]
        );
    }
}
