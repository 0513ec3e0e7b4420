//! Single message transforms (SMTs) and predicates under Kafka Connect's class names, behaving
//! as their Java originals in Apache Kafka 3.x/4.x (and Debezium's `ExtractNewRecordState`):
//! the same config keys and defaults, the same schema rebuilding for schemaful records
//! ([`Struct`](crate::data::Struct) with a schema) and the same handling of schemaless ones
//! ([`Value::Map`] with string keys).
//!
//! [`chain`] reads a connector config (`transforms=a,b`, `transforms.a.type=...`,
//! `predicates=p`, ...) into a [`Chain`] and reports every problem at once under the full key
//! names. Transforms are pure functions of the record; no I/O, no clock (the one exception,
//! `yy` years in `TimestampConverter` patterns, reads the clock once when configured, as
//! Java's `SimpleDateFormat` does).
//!
//! Where Spate knowingly differs from Java:
//! - regexes are Rust's `regex` (no look-around or back-references); a bad `$n` in a
//!   `RegexRouter` replacement is a config problem rather than a failure at the first match;
//! - date patterns cover `y M d D H h m s S a E Z X z` and quotes, not every letter;
//! - `ExtractField` takes `field` whole (`field.syntax.version=V2` nested paths are refused);
//! - a Decimal is cast or masked only when its unscaled value fits 16 bytes;
//! - `ExtractNewRecordState` drops truncate (`op=t`) events and writes `add.headers` values as
//!   text, since Spate headers are bytes.

mod cast;
mod debezium;
mod fields;
mod route;
pub mod timefmt;
mod timestamp;

use std::sync::Arc;

use crate::config::{ConfigProblem, Props, sub_props};
use crate::data::{ConnectRecord, Schema, SchemaType, Struct, Value};

/// A single message transform: takes a record, gives it back changed, or drops it.
pub trait Transform: Send {
    /// None drops the record (Filter).
    fn apply(&mut self, record: ConnectRecord) -> Result<Option<ConnectRecord>, TransformError>;
}

/// A transform could not handle a record.
#[derive(Debug, thiserror::Error)]
pub enum TransformError {
    /// The record is not one the transform can work on (Java's `DataException`); `reason` is
    /// Java's message, lowercased.
    #[error("transform `{alias}` ({class}) failed: {reason}")]
    Data {
        /// The transform's alias in `transforms`.
        alias: String,
        /// The transform's class name.
        class: String,
        /// Why, in the words of the Java transform.
        reason: String,
    },
}

/// Why one transform failed on one record, before [`Stage`] names the transform.
#[derive(Debug)]
pub(crate) struct Fail(pub(crate) String);

impl Fail {
    pub(crate) fn new(reason: impl Into<String>) -> Fail {
        Fail(reason.into())
    }
}

/// What a built-in transform implements; [`Stage`] adds the alias, the predicate and the
/// error context.
pub(crate) trait Smt: Send {
    fn apply(&mut self, record: ConnectRecord) -> Result<Option<ConnectRecord>, Fail>;
}

/// A built-in predicate (`org.apache.kafka.connect.transforms.predicates.*`).
pub(crate) trait Predicate: Send {
    fn test(&self, record: &ConnectRecord) -> bool;
}

/// One transform of a chain, with its optional predicate.
struct Stage {
    alias: String,
    class: String,
    smt: Box<dyn Smt>,
    /// The predicate and whether `negate` is set.
    predicate: Option<(std::sync::Arc<dyn PredicateSync>, bool)>,
}

/// A predicate shared by the stages that name it.
trait PredicateSync: Predicate + Sync {}
impl<T: Predicate + Sync> PredicateSync for T {}

impl Transform for Stage {
    fn apply(&mut self, record: ConnectRecord) -> Result<Option<ConnectRecord>, TransformError> {
        // As Kafka's TransformationStage: a stage with a predicate runs only when the predicate
        // holds (or, with negate=true, when it does not); otherwise the record passes unchanged.
        if let Some((predicate, negate)) = &self.predicate {
            if predicate.test(&record) == *negate {
                return Ok(Some(record));
            }
        }
        self.smt
            .apply(record)
            .map_err(|Fail(reason)| TransformError::Data {
                alias: self.alias.clone(),
                class: self.class.clone(),
                reason,
            })
    }
}

/// The transforms of a connector, in order.
pub struct Chain {
    stages: Vec<Stage>,
}

impl Chain {
    /// Runs `record` through every transform; None when one of them dropped it.
    pub fn apply(
        &mut self,
        record: ConnectRecord,
    ) -> Result<Option<ConnectRecord>, TransformError> {
        let mut record = record;
        for stage in &mut self.stages {
            match stage.apply(record)? {
                Some(next) => record = next,
                None => return Ok(None),
            }
        }
        Ok(Some(record))
    }

    /// Whether the chain has no transforms.
    pub fn is_empty(&self) -> bool {
        self.stages.is_empty()
    }

    /// The aliases of the transforms, in order.
    pub fn aliases(&self) -> Vec<&str> {
        self.stages.iter().map(|s| s.alias.as_str()).collect()
    }
}

impl Transform for Chain {
    fn apply(&mut self, record: ConnectRecord) -> Result<Option<ConnectRecord>, TransformError> {
        Chain::apply(self, record)
    }
}

/// The record key or value, for the `$Key` and `$Value` variants of a transform.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Part {
    Key,
    Value,
}

impl Part {
    /// Moves the schema and value out of the record (leaving null); a schema the record shares
    /// is copied, for the transform to change.
    pub(crate) fn take(self, record: &mut ConnectRecord) -> (Option<Schema>, Value) {
        match self {
            Part::Key => (
                record.key_schema.take().map(Arc::unwrap_or_clone),
                std::mem::replace(&mut record.key, Value::Null),
            ),
            Part::Value => (
                record.value_schema.take().map(Arc::unwrap_or_clone),
                std::mem::replace(&mut record.value, Value::Null),
            ),
        }
    }

    /// Puts a schema and value into the record.
    pub(crate) fn put(self, record: &mut ConnectRecord, schema: Option<Schema>, value: Value) {
        match self {
            Part::Key => {
                record.key_schema = schema.map(Arc::new);
                record.key = value;
            }
            Part::Value => {
                record.value_schema = schema.map(Arc::new);
                record.value = value;
            }
        }
    }

    /// The value (key or value) of the record.
    pub(crate) fn value(self, record: &ConnectRecord) -> &Value {
        match self {
            Part::Key => &record.key,
            Part::Value => &record.value,
        }
    }
}

/// The Java class of a value as Java's error messages name it (`nullSafeClassName`).
pub(crate) fn java_class(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Boolean(_) => "java.lang.Boolean",
        Value::Int8(_) => "java.lang.Byte",
        Value::Int16(_) => "java.lang.Short",
        Value::Int32(_) => "java.lang.Integer",
        Value::Int64(_) => "java.lang.Long",
        Value::Float32(_) => "java.lang.Float",
        Value::Float64(_) => "java.lang.Double",
        Value::String(_) => "java.lang.String",
        Value::Bytes(_) => "[B",
        Value::Array(_) => "java.util.ArrayList",
        Value::Map(_) => "java.util.HashMap",
        Value::Struct(_) => "org.apache.kafka.connect.data.Struct",
    }
}

/// The schema type Java infers for a schemaless value (`ConnectSchema.schemaType`).
pub(crate) fn inferred_type(value: &Value) -> Option<SchemaType> {
    Some(match value {
        Value::Null => return None,
        Value::Boolean(_) => SchemaType::Boolean,
        Value::Int8(_) => SchemaType::Int8,
        Value::Int16(_) => SchemaType::Int16,
        Value::Int32(_) => SchemaType::Int32,
        Value::Int64(_) => SchemaType::Int64,
        Value::Float32(_) => SchemaType::Float32,
        Value::Float64(_) => SchemaType::Float64,
        Value::String(_) => SchemaType::String,
        Value::Bytes(_) => SchemaType::Bytes,
        Value::Array(_) => SchemaType::Array,
        Value::Map(_) => SchemaType::Map,
        Value::Struct(_) => SchemaType::Struct,
    })
}

/// Java's `Requirements.requireMap`: the entries of a schemaless map value.
pub(crate) fn require_map(value: Value, purpose: &str) -> Result<Vec<(Value, Value)>, Fail> {
    match value {
        Value::Map(entries) => Ok(entries),
        other => Err(Fail(format!(
            "only Map objects supported in absence of schema for [{purpose}], found: {}",
            java_class(&other)
        ))),
    }
}

/// Java's `Requirements.requireStruct`.
pub(crate) fn require_struct(value: Value, purpose: &str) -> Result<Struct, Fail> {
    match value {
        Value::Struct(s) => Ok(s),
        other => Err(Fail(format!(
            "only Struct objects supported for [{purpose}], found: {}",
            java_class(&other)
        ))),
    }
}

/// The value of string key `name` in schemaless map entries.
pub(crate) fn map_get<'a>(entries: &'a [(Value, Value)], name: &str) -> Option<&'a Value> {
    entries
        .iter()
        .find(|(k, _)| k.as_str() == Some(name))
        .map(|(_, v)| v)
}

/// `HashMap.put` on schemaless map entries: replaces the value of `name` or appends it.
pub(crate) fn map_put(entries: &mut Vec<(Value, Value)>, name: &str, value: Value) {
    match entries.iter_mut().find(|(k, _)| k.as_str() == Some(name)) {
        Some((_, v)) => *v = value,
        None => entries.push((Value::String(name.to_string()), value)),
    }
}

/// Java's `SchemaUtil.copySchemaBasics`: name, version, doc and parameters of `schema` on a
/// new schema of `kind` (required, no default, no fields).
pub(crate) fn copy_basics(schema: &Schema, kind: SchemaType) -> Schema {
    Schema {
        name: schema.name.clone(),
        version: schema.version,
        doc: schema.doc.clone(),
        parameters: schema.parameters.clone(),
        ..Schema::new(kind)
    }
}

/// A logical type's schema as Connect defines it (version 1), optional or not.
pub(crate) fn logical_schema(kind: SchemaType, name: &str, optional: bool) -> Schema {
    Schema {
        optional,
        name: Some(name.to_string()),
        version: Some(1),
        ..Schema::new(kind)
    }
}

/// Reads one transform's (or predicate's) own keys, recording problems under full key names.
pub(crate) struct Cfg<'a> {
    props: Props,
    prefix: String,
    problems: &'a mut Vec<ConfigProblem>,
}

impl Cfg<'_> {
    /// The full name of key `key` (`transforms.a.fields`).
    pub(crate) fn full(&self, key: &str) -> String {
        format!("{}{key}", self.prefix)
    }

    /// Records a problem with key `key`.
    pub(crate) fn problem(&mut self, key: &str, message: impl Into<String>) {
        let name = self.full(key);
        self.problems.push(ConfigProblem::new(name, message));
    }

    /// An optional string; None when unset.
    pub(crate) fn string(&self, key: &str) -> Option<String> {
        self.props.get(key).cloned()
    }

    /// A string with a default.
    pub(crate) fn string_or(&self, key: &str, default: &str) -> String {
        self.string(key).unwrap_or_else(|| default.to_string())
    }

    /// A required string; records a problem when unset.
    pub(crate) fn required(&mut self, key: &str) -> Option<String> {
        let value = self.string(key);
        if value.is_none() {
            self.problem(
                key,
                format!("missing required configuration \"{key}\" which has no default value"),
            );
        }
        value
    }

    /// A required, non-empty string.
    pub(crate) fn required_non_empty(&mut self, key: &str) -> Option<String> {
        let value = self.required(key)?;
        if value.is_empty() {
            self.problem(key, "string must be non-empty");
            return None;
        }
        Some(value)
    }

    /// A list as Java's `ConfigDef.Type.LIST` parses it: comma-separated, trimmed, empty when
    /// blank; `default` when unset.
    pub(crate) fn list_or(&self, key: &str, default: &[&str]) -> Vec<String> {
        match self.string(key) {
            Some(raw) => parse_list(&raw),
            None => default.iter().map(|s| s.to_string()).collect(),
        }
    }

    /// A required list with at least one element (`NonEmptyListValidator`).
    pub(crate) fn non_empty_list(&mut self, key: &str) -> Option<Vec<String>> {
        let raw = self.required(key)?;
        let list = parse_list(&raw);
        if list.is_empty() {
            self.problem(key, "empty list, give at least one element");
            return None;
        }
        Some(list)
    }

    /// A boolean with a default.
    pub(crate) fn boolean(&mut self, key: &str, default: bool) -> bool {
        match self.string(key) {
            None => default,
            Some(raw) => match raw.trim().to_ascii_lowercase().as_str() {
                "true" => true,
                "false" => false,
                _ => {
                    self.problem(key, format!("expected true or false, found \"{raw}\""));
                    default
                }
            },
        }
    }

    /// One of `allowed` (case-sensitive, as `ValidString.in`), with a default.
    pub(crate) fn one_of(
        &mut self,
        key: &str,
        default: Option<&str>,
        allowed: &[&str],
    ) -> Option<String> {
        let value = match default {
            Some(d) => self.string_or(key, d),
            None => self.required(key)?,
        };
        if allowed.contains(&value.as_str()) {
            Some(value)
        } else {
            self.problem(
                key,
                format!(
                    "invalid value \"{value}\", use one of: {}",
                    allowed.join(", ")
                ),
            );
            None
        }
    }

    /// Whether the problems list grew since `before`.
    pub(crate) fn failed_since(&self, before: usize) -> bool {
        self.problems.len() > before
    }

    pub(crate) fn problem_count(&self) -> usize {
        self.problems.len()
    }
}

/// Java's LIST parsing: trimmed, split on commas with surrounding whitespace; blank is empty.
pub(crate) fn parse_list(raw: &str) -> Vec<String> {
    let trimmed = raw.trim();
    if trimmed.is_empty() {
        return Vec::new();
    }
    trimmed.split(',').map(|s| s.trim().to_string()).collect()
}

type SmtBuilder = fn(&mut Cfg<'_>) -> Option<Box<dyn Smt>>;
type PredicateBuilder = fn(&mut Cfg<'_>) -> Option<std::sync::Arc<dyn PredicateSync>>;

const TRANSFORMS_PREFIX: &str = "org.apache.kafka.connect.transforms.";

/// Transform classes, with their builders.
fn transform_classes() -> Vec<(&'static str, SmtBuilder)> {
    vec![
        ("org.apache.kafka.connect.transforms.Cast$Key", |c| {
            cast::build(Part::Key, c)
        }),
        ("org.apache.kafka.connect.transforms.Cast$Value", |c| {
            cast::build(Part::Value, c)
        }),
        (
            "org.apache.kafka.connect.transforms.ExtractField$Key",
            |c| fields::extract(Part::Key, c),
        ),
        (
            "org.apache.kafka.connect.transforms.ExtractField$Value",
            |c| fields::extract(Part::Value, c),
        ),
        ("org.apache.kafka.connect.transforms.Filter", route::filter),
        ("org.apache.kafka.connect.transforms.Flatten$Key", |c| {
            fields::flatten(Part::Key, c)
        }),
        ("org.apache.kafka.connect.transforms.Flatten$Value", |c| {
            fields::flatten(Part::Value, c)
        }),
        ("org.apache.kafka.connect.transforms.HoistField$Key", |c| {
            fields::hoist(Part::Key, c)
        }),
        (
            "org.apache.kafka.connect.transforms.HoistField$Value",
            |c| fields::hoist(Part::Value, c),
        ),
        ("org.apache.kafka.connect.transforms.InsertField$Key", |c| {
            fields::insert(Part::Key, c)
        }),
        (
            "org.apache.kafka.connect.transforms.InsertField$Value",
            |c| fields::insert(Part::Value, c),
        ),
        ("org.apache.kafka.connect.transforms.MaskField$Key", |c| {
            fields::mask(Part::Key, c)
        }),
        ("org.apache.kafka.connect.transforms.MaskField$Value", |c| {
            fields::mask(Part::Value, c)
        }),
        (
            "org.apache.kafka.connect.transforms.RegexRouter",
            route::regex_router,
        ),
        (
            "org.apache.kafka.connect.transforms.ReplaceField$Key",
            |c| fields::replace(Part::Key, c),
        ),
        (
            "org.apache.kafka.connect.transforms.ReplaceField$Value",
            |c| fields::replace(Part::Value, c),
        ),
        (
            "org.apache.kafka.connect.transforms.TimestampConverter$Key",
            |c| timestamp::converter(Part::Key, c),
        ),
        (
            "org.apache.kafka.connect.transforms.TimestampConverter$Value",
            |c| timestamp::converter(Part::Value, c),
        ),
        (
            "org.apache.kafka.connect.transforms.TimestampRouter",
            timestamp::router,
        ),
        (
            "org.apache.kafka.connect.transforms.ValueToKey",
            fields::value_to_key,
        ),
        (
            "io.debezium.transforms.ExtractNewRecordState",
            debezium::extract_new_record_state,
        ),
    ]
}

/// Predicate classes, with their builders.
fn predicate_classes() -> Vec<(&'static str, PredicateBuilder)> {
    vec![
        (
            "org.apache.kafka.connect.transforms.predicates.HasHeaderKey",
            route::has_header_key,
        ),
        (
            "org.apache.kafka.connect.transforms.predicates.RecordIsTombstone",
            route::record_is_tombstone,
        ),
        (
            "org.apache.kafka.connect.transforms.predicates.TopicNameMatches",
            route::topic_name_matches,
        ),
    ]
}

/// The class names known, for GET /connector-plugins?connectorsOnly=false: (class, type
/// "transformation" or "predicate").
pub fn plugins() -> Vec<(&'static str, &'static str)> {
    let mut all: Vec<_> = transform_classes()
        .into_iter()
        .map(|(class, _)| (class, "transformation"))
        .collect();
    all.extend(
        predicate_classes()
            .into_iter()
            .map(|(class, _)| (class, "predicate")),
    );
    all
}

/// Builds the chain a connector config asks for: `transforms=a,b`, `transforms.a.type=<class>`,
/// `transforms.a.<key>=...`, `transforms.a.predicate=<p>`, `transforms.a.negate=true|false`,
/// `predicates=p`, `predicates.p.type=<class>`, `predicates.p.<key>=...`.
/// Returns every problem found (full key names like `transforms.a.fields`), not just the first.
pub fn chain(props: &Props) -> Result<Chain, Vec<ConfigProblem>> {
    let mut problems = Vec::new();

    let mut predicates = std::collections::BTreeMap::new();
    let predicate_aliases = aliases(props, "predicates", &mut problems);
    for alias in &predicate_aliases {
        let prefix = format!("predicates.{alias}.");
        let Some(class) = class_of(props, &prefix, "predicate", &mut problems) else {
            continue;
        };
        let Some(build) = predicate_classes()
            .into_iter()
            .find(|(name, _)| *name == class)
            .map(|(_, b)| b)
        else {
            problems.push(ConfigProblem::new(
                format!("{prefix}type"),
                format!("class {class} could not be found, use one of the predicates GET /connector-plugins?connectorsOnly=false lists"),
            ));
            continue;
        };
        let mut own = sub_props(props, &prefix);
        own.remove("type");
        let mut cfg = Cfg {
            props: own,
            prefix: prefix.clone(),
            problems: &mut problems,
        };
        if let Some(predicate) = build(&mut cfg) {
            predicates.insert(alias.clone(), predicate);
        }
    }

    let mut stages = Vec::new();
    for alias in aliases(props, "transforms", &mut problems) {
        let prefix = format!("transforms.{alias}.");
        let class = class_of(props, &prefix, "transformation", &mut problems);

        let mut own = sub_props(props, &prefix);
        own.remove("type");
        let predicate_name = own.remove("predicate");
        let negate_raw = own.remove("negate");
        let negate = match negate_raw.as_deref().map(|s| s.trim().to_ascii_lowercase()) {
            None => false,
            Some(s) if s == "true" => true,
            Some(s) if s == "false" => false,
            Some(_) => {
                problems.push(ConfigProblem::new(
                    format!("{prefix}negate"),
                    "expected true or false",
                ));
                false
            }
        };
        let predicate = match predicate_name {
            None => None,
            Some(name) => {
                if predicate_aliases.contains(&name) {
                    // Missing when its own config had problems, already reported.
                    predicates.get(&name).map(|p| (p.clone(), negate))
                } else {
                    problems.push(ConfigProblem::new(
                        format!("{prefix}predicate"),
                        format!("predicate \"{name}\" is not listed in `predicates`, add it there with predicates.{name}.type"),
                    ));
                    None
                }
            }
        };

        let Some(class) = class else { continue };
        let Some(build) = transform_classes()
            .into_iter()
            .find(|(name, _)| *name == class)
            .map(|(_, b)| b)
        else {
            let hint = if class.contains('.') {
                String::new()
            } else {
                format!(", give the full class name (e.g. {TRANSFORMS_PREFIX}{class})")
            };
            problems.push(ConfigProblem::new(
                format!("{prefix}type"),
                format!("class {class} could not be found{hint}"),
            ));
            continue;
        };
        let mut cfg = Cfg {
            props: own,
            prefix: prefix.clone(),
            problems: &mut problems,
        };
        if let Some(smt) = build(&mut cfg) {
            stages.push(Stage {
                alias,
                class,
                smt,
                predicate,
            });
        }
    }

    if problems.is_empty() {
        Ok(Chain { stages })
    } else {
        Err(problems)
    }
}

/// The aliases listed under `key` (`transforms` or `predicates`); duplicates are a problem.
fn aliases(props: &Props, key: &str, problems: &mut Vec<ConfigProblem>) -> Vec<String> {
    let list = props
        .get(key)
        .map(|raw| parse_list(raw))
        .unwrap_or_default();
    let mut seen = Vec::new();
    for alias in list {
        if alias.is_empty() {
            problems.push(ConfigProblem::new(
                key,
                "empty alias, remove the extra comma",
            ));
        } else if seen.contains(&alias) {
            problems.push(ConfigProblem::new(
                key,
                format!("duplicate alias \"{alias}\", give each a distinct name"),
            ));
        } else {
            seen.push(alias);
        }
    }
    seen
}

/// The class under `<prefix>type`, or a problem.
fn class_of(
    props: &Props,
    prefix: &str,
    what: &str,
    problems: &mut Vec<ConfigProblem>,
) -> Option<String> {
    match props
        .get(&format!("{prefix}type"))
        .map(|s| s.trim().to_string())
    {
        Some(class) if !class.is_empty() => Some(class),
        _ => {
            problems.push(ConfigProblem::new(
                format!("{prefix}type"),
                format!("missing required configuration, set it to a {what} class name"),
            ));
            None
        }
    }
}

#[cfg(test)]
mod tests;
