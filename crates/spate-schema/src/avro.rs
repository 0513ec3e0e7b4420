//! Avro schemas: parsing, canonical form, compatibility rules and payload checks, written here
//! rather than delegated to `apache-avro`, so that errors name the field and the rule and so
//! that hostile payloads cannot make the broker allocate, loop or recurse without bound.
//!
//! The rules, in short:
//! - **Parsing** follows the Avro specification as Avro's Java parser (which Confluent uses)
//!   reads it: named types must be defined before they are used (or come from a reference),
//!   names resolve in the enclosing namespace first and then in the null namespace, field
//!   names and enum symbols are unique, unions hold no union and no type twice, and every
//!   default must match its field's type (a union default may match any branch, as in Java).
//! - **Canonical text** is the schema's JSON re-serialised compactly, everything kept as
//!   written; with `normalize` it is the normal form described at [`AvroSchema::parse`].
//! - **Compatibility** is Avro schema resolution, asked as "can `reader` read what `writer`
//!   wrote", with the rule names and paths of Avro Java's `SchemaCompatibility`, memoised per
//!   pair of named types and capped at [`MAX_COMPATIBILITY_NESTING`] levels.
//! - **Payloads** are checked by walking the binary encoding without building values: nothing
//!   is allocated per byte of input, nesting is capped at [`MAX_PAYLOAD_NESTING`] and every
//!   loop either consumes input or stops.
//!
//! This module must not do I/O and must not trust payload bytes.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::fmt;

use serde_json::{Map, Value};

use crate::{Dependency, SchemaError};

/// How deeply values may nest in a payload: each record field, array item, map value and union
/// branch is one level below its container. Deeper payloads are refused rather than risking
/// the decoder's stack; a recursive linked list can still hold about 128 nodes.
pub const MAX_PAYLOAD_NESTING: usize = 256;

/// How deeply a compatibility check may descend: each field type, array item, map value and
/// union branch compared is one level below its container. Only a chain of hundreds of named
/// types, each holding the next, reaches it; the check then reports `NESTING_TOO_DEEP`
/// instead of risking the stack.
pub const MAX_COMPATIBILITY_NESTING: usize = 512;

/// How many steps checking one field's default may take. Defaults are small JSON values; the
/// limit only stops a hostile schema whose union branches make the check exponential.
const MAX_DEFAULT_CHECK_STEPS: usize = 100_000;

/// A parsed Avro schema, with the named types it defines and those of its references.
#[derive(Debug, Clone)]
pub struct AvroSchema {
    canonical: String,
    root: Node,
    types: Vec<NamedType>,
}

/// The eight primitive types.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Primitive {
    Null,
    Boolean,
    Int,
    Long,
    Float,
    Double,
    Bytes,
    String,
}

impl Primitive {
    fn from_name(name: &str) -> Option<Primitive> {
        Some(match name {
            "null" => Primitive::Null,
            "boolean" => Primitive::Boolean,
            "int" => Primitive::Int,
            "long" => Primitive::Long,
            "float" => Primitive::Float,
            "double" => Primitive::Double,
            "bytes" => Primitive::Bytes,
            "string" => Primitive::String,
            _ => return None,
        })
    }

    fn name(self) -> &'static str {
        match self {
            Primitive::Null => "null",
            Primitive::Boolean => "boolean",
            Primitive::Int => "int",
            Primitive::Long => "long",
            Primitive::Float => "float",
            Primitive::Double => "double",
            Primitive::Bytes => "bytes",
            Primitive::String => "string",
        }
    }

    /// Whether a reader of type `self` can read a value written as `writer` (Avro's
    /// promotions: int to long, float or double; long to float or double; float to double;
    /// string and bytes either way).
    fn reads(self, writer: Primitive) -> bool {
        use Primitive::{Bytes, Double, Float, Int, Long, String};
        self == writer
            || matches!(
                (writer, self),
                (Int, Long | Float | Double)
                    | (Long, Float | Double)
                    | (Float, Double)
                    | (String, Bytes)
                    | (Bytes, String)
            )
    }
}

/// Properties other than the ones Avro defines for a type (`logicalType`, `connect.name`,
/// ...), in the order written. Only the normal form reads them.
type Props = Vec<(String, Value)>;

/// One schema node. Named types live in [`AvroSchema::types`] and are referred to by index,
/// so recursive types are plain data.
#[derive(Debug, Clone)]
enum Node {
    Primitive { kind: Primitive, props: Props },
    Array { items: Box<Node>, props: Props },
    Map { values: Box<Node>, props: Props },
    Union(Vec<Node>),
    Named(usize),
}

#[derive(Debug, Clone)]
struct NamedType {
    /// Namespace and name joined by a dot, or the name alone in the null namespace.
    full_name: String,
    /// The name without its namespace.
    name: String,
    /// Aliases, fully qualified.
    aliases: Vec<String>,
    doc: Option<String>,
    props: Props,
    /// Defined by a reference rather than by the schema's own text.
    from_reference: bool,
    kind: NamedKind,
}

#[derive(Debug, Clone)]
enum NamedKind {
    Record {
        fields: Vec<Field>,
    },
    Enum {
        symbols: Vec<String>,
        default: Option<String>,
    },
    Fixed {
        size: usize,
    },
}

impl NamedKind {
    fn word(&self) -> &'static str {
        match self {
            NamedKind::Record { .. } => "record",
            NamedKind::Enum { .. } => "enum",
            NamedKind::Fixed { .. } => "fixed",
        }
    }
}

#[derive(Debug, Clone)]
struct Field {
    name: String,
    /// Aliases as written (field aliases are not qualified).
    aliases: Vec<String>,
    ty: Node,
    default: Option<Value>,
    doc: Option<String>,
    /// `ascending`, `descending` or `ignore`, lower-cased, when written.
    order: Option<String>,
    props: Props,
}

impl AvroSchema {
    /// Parses `text`, an Avro schema in JSON, after the schemas it references.
    ///
    /// Each dependency's text is parsed first, in the order given (dependencies before the
    /// schemas that use them); the named types they define can then be used in `text` by
    /// full name. A dependency may not redefine a name defined earlier.
    ///
    /// The canonical text is `text` re-serialised as compact JSON: whitespace goes, key order,
    /// docs, defaults, aliases and custom properties stay; only what Avro's parser ignores goes,
    /// as in Avro Java's `Schema.toString()` (Confluent's canonical form): the reserved
    /// attributes (`name`, `doc`, ...) of a primitive, array or map written as an object, and a
    /// primitive left without properties becomes its bare name (`{"type":"int","name":"n"}` is
    /// `"int"`). With `normalize` it is instead the
    /// normal form, written from the parsed schema by these rules:
    /// - a primitive without properties is its bare name (`"string"`, never
    ///   `{"type":"string"}`); with properties it is `{"type":...}` followed by its properties;
    /// - arrays are `{"type":"array","items":...}` and maps `{"type":"map","values":...}`,
    ///   followed by their properties; unions are arrays of their branches;
    /// - a named type is written out in full where it first occurs and as its quoted full name
    ///   everywhere else, as are the named types of references; `namespace` never appears;
    /// - a named type's keys are `name` (full), `type`, then `symbols` (enum), `size` (fixed) or
    ///   `fields` (record), then `doc` (when not empty), `aliases` (fully qualified, sorted),
    ///   `default` (enum), then its other properties;
    /// - a field's keys are `name`, `type`, `order` (unless ascending), `doc`, `aliases`
    ///   (sorted), `default`, then its other properties;
    /// - "other properties" are sorted by key, and every JSON object inside a property value
    ///   or a default has its keys sorted too.
    ///
    /// This follows Confluent's `AvroSchemaUtils.toNormalizedString` except that custom
    /// properties come after the attributes Avro defines and a field's `order` is written only
    /// when it is not the default.
    pub fn parse(
        text: &str,
        dependencies: &[Dependency],
        normalize: bool,
    ) -> Result<AvroSchema, SchemaError> {
        let mut parser = Parser::default();
        for dependency in dependencies {
            parser.from_reference = true;
            parser
                .parse_text(&dependency.text)
                .map_err(|e| SchemaError(format!("in reference '{}': {}", dependency.name, e.0)))?;
        }
        parser.from_reference = false;
        let (value, root) = parser.parse_text(text)?;
        let types = parser.types;
        let canonical = if normalize {
            let mut out = String::new();
            Normalizer {
                types: &types,
                written: vec![false; types.len()],
                out: &mut out,
            }
            .node(&root);
            out
        } else {
            without_ignored_attributes(&value).to_string()
        };
        Ok(AvroSchema {
            canonical,
            root,
            types,
        })
    }

    /// The canonical text (see [`AvroSchema::parse`]).
    pub fn canonical(&self) -> &str {
        &self.canonical
    }

    /// The full name of the top-level type when it is a record, as Confluent's
    /// `AvroSchema.name()` (which the record-name subject strategies use).
    pub fn name(&self) -> Option<&str> {
        match &self.root {
            Node::Named(index) => {
                let named = &self.types[*index];
                matches!(named.kind, NamedKind::Record { .. }).then_some(named.full_name.as_str())
            }
            _ => None,
        }
    }

    /// Why `reader` cannot read what `writer` wrote, one message per broken rule; empty when
    /// it can.
    ///
    /// Each message starts with the rule's name from Avro's `SchemaIncompatibilityType`
    /// (`TYPE_MISMATCH`, `NAME_MISMATCH`, `FIXED_SIZE_MISMATCH`, `MISSING_ENUM_SYMBOLS`,
    /// `READER_FIELD_MISSING_DEFAULT_VALUE`, `MISSING_UNION_BRANCH`), then the path in the
    /// reader's schema (`/fields/1/type`, `/items`, `/values`, a writer union's branch index,
    /// `/name`, `/size`, `/symbols`), then the field it concerns, then what is wrong.
    ///
    /// The rules are Avro's schema resolution as Java's `SchemaCompatibility` checks it:
    /// - primitives read their own type and the promotions int → long, float, double;
    ///   long → float, double; float → double; string ↔ bytes;
    /// - records, enums and fixed types match when their unqualified names are equal or a
    ///   reader alias is the writer's full name; a reader field is matched to the writer field
    ///   of the same name, else of one of its aliases, and needs a default when there is none;
    ///   writer fields the reader lacks are skipped;
    /// - a writer enum's symbols must all be in the reader's enum unless it has a default;
    /// - fixed types must have the same size; arrays and maps compare their items and values;
    /// - every branch of a writer union must be readable by the reader, and a reader union
    ///   reads a non-union writer when one of its branches does;
    /// - a pair of named types already being compared counts as compatible, which ends the
    ///   recursion of recursive types; logical types are not compared, as in Java.
    ///
    /// One rule is Spate's own: `NESTING_TOO_DEEP` when the comparison would descend more than
    /// [`MAX_COMPATIBILITY_NESTING`] levels (only long chains of named types get there).
    pub fn incompatibilities(reader: &AvroSchema, writer: &AvroSchema) -> Vec<String> {
        let mut checker = Checker {
            reader,
            writer,
            path: Vec::new(),
            fields: Vec::new(),
            memo: HashMap::new(),
            depth: 0,
        };
        let found = checker.check(&reader.root, &writer.root);
        let mut seen = HashSet::new();
        found
            .into_iter()
            .filter(|message| seen.insert(message.clone()))
            .collect()
    }

    /// Checks that `payload` is exactly one Avro binary datum of this schema: every byte is
    /// consumed, lengths and indexes are in range, booleans are 0 or 1 and strings are UTF-8.
    pub fn validate_payload(&self, payload: &[u8]) -> Result<(), String> {
        let mut decoder = Decoder {
            bytes: payload,
            pos: 0,
            types: &self.types,
        };
        decoder.value(&self.root, 0)?;
        let left = payload.len() - decoder.pos;
        if left > 0 {
            return Err(format!(
                "{left} bytes left over after the datum ends at byte {}",
                decoder.pos
            ));
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// Parsing

#[derive(Default)]
struct Parser {
    types: Vec<NamedType>,
    /// Full name to index in `types`.
    names: HashMap<String, usize>,
    /// Whether the text being parsed is a reference's.
    from_reference: bool,
    /// Records defined by the text being parsed, whose defaults are checked once it is done.
    records_to_check: Vec<usize>,
    /// Where the parser is, as a path (`/fields/2/type`) and the enclosing field names.
    path: Vec<String>,
    fields: Vec<String>,
}

impl Parser {
    fn parse_text(&mut self, text: &str) -> Result<(Value, Node), SchemaError> {
        let value: Value = serde_json::from_str(text)
            .map_err(|e| SchemaError(format!("the schema is not valid JSON: {e}")))?;
        self.path.clear();
        self.fields.clear();
        let root = self.node(&value, None)?;
        for index in std::mem::take(&mut self.records_to_check) {
            check_defaults(&self.types, index)?;
        }
        Ok((value, root))
    }

    /// An error at the current position.
    fn error(&self, what: impl fmt::Display) -> SchemaError {
        let mut message = format!("{what} at {}", render_path(&self.path));
        if !self.fields.is_empty() {
            message.push_str(&format!(" (field '{}')", self.fields.join(".")));
        }
        SchemaError(message)
    }

    fn node(&mut self, value: &Value, namespace: Option<&str>) -> Result<Node, SchemaError> {
        match value {
            Value::String(name) => self.reference(name, namespace),
            Value::Array(branches) => self.union(branches, namespace),
            Value::Object(object) => self.object(object, namespace),
            other => Err(self.error(format_args!(
                "expected a type name, a type object or a union array, found {}",
                json_kind(other)
            ))),
        }
    }

    /// A type named by a string: a primitive or a named type defined earlier.
    fn reference(&self, name: &str, namespace: Option<&str>) -> Result<Node, SchemaError> {
        if let Some(kind) = Primitive::from_name(name) {
            return Ok(Node::Primitive {
                kind,
                props: Props::new(),
            });
        }
        if let Some(index) = self.resolve(name, namespace) {
            return Ok(Node::Named(index));
        }
        if matches!(
            name,
            "record" | "error" | "enum" | "fixed" | "array" | "map"
        ) {
            return Err(self.error(format_args!(
                "type '{name}' must be written as an object with its attributes, \
                 like {{\"type\": \"{name}\", ...}}"
            )));
        }
        Err(self.error(format_args!(
            "unknown type '{name}': it is not a primitive type, and no named type of that name \
             is defined before this point or by a reference"
        )))
    }

    /// Looks a name up as Avro Java does: a dotted name is a full name; a simple name is
    /// looked up in the enclosing namespace, then in the null namespace.
    fn resolve(&self, name: &str, namespace: Option<&str>) -> Option<usize> {
        if !name.contains('.') {
            if let Some(namespace) = namespace {
                if let Some(index) = self.names.get(&format!("{namespace}.{name}")) {
                    return Some(*index);
                }
            }
        }
        self.names.get(name).copied()
    }

    fn union(&mut self, branches: &[Value], namespace: Option<&str>) -> Result<Node, SchemaError> {
        let mut nodes = Vec::with_capacity(branches.len());
        let mut seen = HashSet::new();
        for (i, branch) in branches.iter().enumerate() {
            self.path.push(i.to_string());
            let node = self.node(branch, namespace)?;
            let key = match &node {
                Node::Union(_) => {
                    return Err(self.error("a union cannot directly contain another union"));
                }
                Node::Primitive { kind, .. } => kind.name().to_string(),
                Node::Array { .. } => "array".to_string(),
                Node::Map { .. } => "map".to_string(),
                Node::Named(index) => self.types[*index].full_name.clone(),
            };
            if !seen.insert(key.clone()) {
                return Err(self.error(format_args!(
                    "the union already has a branch of type '{key}'; a union may hold each \
                     type once"
                )));
            }
            self.path.pop();
            nodes.push(node);
        }
        Ok(Node::Union(nodes))
    }

    fn object(
        &mut self,
        object: &Map<String, Value>,
        namespace: Option<&str>,
    ) -> Result<Node, SchemaError> {
        let type_name = match object.get("type") {
            Some(Value::String(type_name)) => type_name.as_str(),
            Some(_) => {
                return Err(self.error(
                    "\"type\" must be a string naming the type; write a union or a nested type \
                     directly instead of wrapping it in {\"type\": ...}",
                ));
            }
            None => return Err(self.error("the type object has no \"type\"")),
        };
        if let Some(kind) = Primitive::from_name(type_name) {
            return Ok(Node::Primitive {
                kind,
                props: props_except(object, SCHEMA_RESERVED),
            });
        }
        match type_name {
            "array" => {
                let items = self.required_schema(object, "items", namespace)?;
                Ok(Node::Array {
                    items: Box::new(items),
                    props: props_except(object, SCHEMA_RESERVED),
                })
            }
            "map" => {
                let values = self.required_schema(object, "values", namespace)?;
                Ok(Node::Map {
                    values: Box::new(values),
                    props: props_except(object, SCHEMA_RESERVED),
                })
            }
            "record" | "error" | "enum" | "fixed" => self.named(type_name, object, namespace),
            // Avro Java reads `{"type": "SomeName"}` as a reference to a named type.
            _ => self.reference(type_name, namespace),
        }
    }

    fn required_schema(
        &mut self,
        object: &Map<String, Value>,
        key: &str,
        namespace: Option<&str>,
    ) -> Result<Node, SchemaError> {
        let Some(value) = object.get(key) else {
            return Err(self.error(format_args!("the type object has no \"{key}\"")));
        };
        self.path.push(key.to_string());
        let node = self.node(value, namespace)?;
        self.path.pop();
        Ok(node)
    }

    /// A record, enum or fixed definition.
    fn named(
        &mut self,
        type_name: &str,
        object: &Map<String, Value>,
        enclosing: Option<&str>,
    ) -> Result<Node, SchemaError> {
        let word = if type_name == "error" {
            "record"
        } else {
            type_name
        };
        let Some(written_name) = object.get("name").and_then(Value::as_str) else {
            return Err(self.error(format_args!("the {word} has no \"name\" string")));
        };
        let (namespace, name) = match written_name.rsplit_once('.') {
            Some((namespace, name)) => (Some(namespace.to_string()), name.to_string()),
            None => match object.get("namespace") {
                None | Some(Value::Null) => (enclosing.map(str::to_string), written_name.into()),
                Some(Value::String(namespace)) => (Some(namespace.clone()), written_name.into()),
                Some(_) => {
                    return Err(self.error(format_args!(
                        "the {word} '{written_name}' has a \"namespace\" that is not a string"
                    )));
                }
            },
        };
        let namespace = namespace.filter(|namespace| !namespace.is_empty());
        if let Err(why) = check_name(&name) {
            return Err(self.error(format_args!("the {word} name '{written_name}' {why}")));
        }
        let full_name = match &namespace {
            Some(namespace) => format!("{namespace}.{name}"),
            None => name.clone(),
        };
        if namespace.is_none() && Primitive::from_name(&name).is_some() {
            return Err(self.error(format_args!(
                "a {word} may not be named after the primitive type '{name}'"
            )));
        }
        if self.names.contains_key(&full_name) {
            return Err(self.error(format_args!(
                "the name '{full_name}' is already defined; define a named type once and \
                 refer to it by name afterwards"
            )));
        }
        let aliases = self.aliases(object, namespace.as_deref(), word, &full_name)?;
        let doc = object
            .get("doc")
            .and_then(Value::as_str)
            .map(str::to_string);

        let index = self.types.len();
        let placeholder = NamedKind::Record { fields: Vec::new() };
        let reserved: &[&str] = match word {
            "record" => &["type", "name", "namespace", "doc", "aliases", "fields"],
            "enum" => &[
                "type",
                "name",
                "namespace",
                "doc",
                "aliases",
                "symbols",
                "default",
            ],
            _ => &["type", "name", "namespace", "doc", "aliases", "size"],
        };
        self.types.push(NamedType {
            full_name: full_name.clone(),
            name,
            aliases,
            doc,
            props: props_except(object, reserved),
            from_reference: self.from_reference,
            kind: placeholder,
        });
        // Registered before the fields are parsed, so that a record can refer to itself.
        self.names.insert(full_name.clone(), index);

        let kind = match word {
            "record" => self.record_fields(object, namespace.as_deref(), &full_name)?,
            "enum" => self.enum_symbols(object, &full_name)?,
            _ => self.fixed_size(object, &full_name)?,
        };
        if matches!(kind, NamedKind::Record { .. }) {
            self.records_to_check.push(index);
        }
        self.types[index].kind = kind;
        Ok(Node::Named(index))
    }

    fn aliases(
        &self,
        object: &Map<String, Value>,
        namespace: Option<&str>,
        word: &str,
        full_name: &str,
    ) -> Result<Vec<String>, SchemaError> {
        let Some(value) = object.get("aliases") else {
            return Ok(Vec::new());
        };
        let Some(list) = value.as_array() else {
            return Err(self.error(format_args!(
                "the {word} '{full_name}' has \"aliases\" that are not an array of names"
            )));
        };
        let mut aliases = Vec::with_capacity(list.len());
        for alias in list {
            let Some(alias) = alias.as_str() else {
                return Err(self.error(format_args!(
                    "the {word} '{full_name}' has an alias that is not a string"
                )));
            };
            let simple = alias.rsplit('.').next().unwrap_or(alias);
            if let Err(why) = check_name(simple) {
                return Err(self.error(format_args!(
                    "the {word} '{full_name}' has an alias '{alias}' whose name {why}"
                )));
            }
            aliases.push(match namespace {
                Some(namespace) if !alias.contains('.') => format!("{namespace}.{alias}"),
                _ => alias.to_string(),
            });
        }
        Ok(aliases)
    }

    fn record_fields(
        &mut self,
        object: &Map<String, Value>,
        namespace: Option<&str>,
        full_name: &str,
    ) -> Result<NamedKind, SchemaError> {
        let Some(values) = object.get("fields").and_then(Value::as_array) else {
            return Err(self.error(format_args!(
                "the record '{full_name}' has no \"fields\" array"
            )));
        };
        self.path.push("fields".to_string());
        let mut fields: Vec<Field> = Vec::with_capacity(values.len());
        for (i, value) in values.iter().enumerate() {
            self.path.push(i.to_string());
            let field = self.field(value, namespace, full_name)?;
            if fields.iter().any(|f| f.name == field.name) {
                return Err(self.error(format_args!(
                    "the record '{full_name}' already has a field named '{}'",
                    field.name
                )));
            }
            fields.push(field);
            self.path.pop();
        }
        self.path.pop();
        Ok(NamedKind::Record { fields })
    }

    fn field(
        &mut self,
        value: &Value,
        namespace: Option<&str>,
        record: &str,
    ) -> Result<Field, SchemaError> {
        let Some(object) = value.as_object() else {
            return Err(self.error(format_args!(
                "a field of record '{record}' is not an object with \"name\" and \"type\""
            )));
        };
        let Some(name) = object.get("name").and_then(Value::as_str) else {
            return Err(self.error(format_args!(
                "a field of record '{record}' has no \"name\" string"
            )));
        };
        if let Err(why) = check_name(name) {
            return Err(self.error(format_args!(
                "the field name '{name}' of record '{record}' {why}"
            )));
        }
        self.fields.push(name.to_string());
        let Some(type_value) = object.get("type") else {
            return Err(self.error(format_args!(
                "the field '{name}' of record '{record}' has no \"type\""
            )));
        };
        self.path.push("type".to_string());
        let ty = self.node(type_value, namespace)?;
        self.path.pop();
        let order = match object.get("order") {
            None => None,
            Some(Value::String(order))
                if matches!(
                    order.to_ascii_lowercase().as_str(),
                    "ascending" | "descending" | "ignore"
                ) =>
            {
                Some(order.to_ascii_lowercase())
            }
            Some(other) => {
                return Err(self.error(format_args!(
                    "the field '{name}' has \"order\" {other}; use \"ascending\", \
                     \"descending\" or \"ignore\""
                )));
            }
        };
        let aliases = match object.get("aliases") {
            None => Vec::new(),
            Some(Value::Array(list)) if list.iter().all(Value::is_string) => list
                .iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect(),
            Some(_) => {
                return Err(self.error(format_args!(
                    "the field '{name}' has \"aliases\" that are not an array of strings"
                )));
            }
        };
        self.fields.pop();
        Ok(Field {
            name: name.to_string(),
            aliases,
            ty,
            default: object.get("default").cloned(),
            doc: object
                .get("doc")
                .and_then(Value::as_str)
                .map(str::to_string),
            order,
            props: props_except(
                object,
                &["name", "type", "default", "doc", "aliases", "order"],
            ),
        })
    }

    fn enum_symbols(
        &self,
        object: &Map<String, Value>,
        full_name: &str,
    ) -> Result<NamedKind, SchemaError> {
        let Some(values) = object.get("symbols").and_then(Value::as_array) else {
            return Err(self.error(format_args!(
                "the enum '{full_name}' has no \"symbols\" array"
            )));
        };
        let mut symbols: Vec<String> = Vec::with_capacity(values.len());
        for value in values {
            let Some(symbol) = value.as_str() else {
                return Err(self.error(format_args!(
                    "the enum '{full_name}' has a symbol that is not a string: {value}"
                )));
            };
            if let Err(why) = check_name(symbol) {
                return Err(self.error(format_args!(
                    "the enum '{full_name}' has a symbol '{symbol}' that {why}"
                )));
            }
            if symbols.iter().any(|s| s == symbol) {
                return Err(self.error(format_args!(
                    "the enum '{full_name}' lists the symbol '{symbol}' twice"
                )));
            }
            symbols.push(symbol.to_string());
        }
        let default = match object.get("default") {
            None => None,
            Some(Value::String(default)) if symbols.contains(default) => Some(default.clone()),
            Some(other) => {
                return Err(self.error(format_args!(
                    "the enum '{full_name}' has default {other}, which is not one of its symbols"
                )));
            }
        };
        Ok(NamedKind::Enum { symbols, default })
    }

    fn fixed_size(
        &self,
        object: &Map<String, Value>,
        full_name: &str,
    ) -> Result<NamedKind, SchemaError> {
        let size = object
            .get("size")
            .and_then(Value::as_u64)
            .filter(|size| *size <= i32::MAX as u64)
            .and_then(|size| usize::try_from(size).ok());
        match size {
            Some(size) => Ok(NamedKind::Fixed { size }),
            None => Err(self.error(format_args!(
                "the fixed '{full_name}' needs a \"size\" that is a non-negative integer"
            ))),
        }
    }
}

/// Why `name` is not a valid Avro name (the name part, without namespace). Letters and digits
/// are Unicode ones, as Avro Java accepts.
fn check_name(name: &str) -> Result<(), &'static str> {
    let mut chars = name.chars();
    match chars.next() {
        None => Err("is empty"),
        Some(first) if !(first.is_alphabetic() || first == '_') => {
            Err("must start with a letter or '_'")
        }
        _ if chars.any(|c| !(c.is_alphanumeric() || c == '_')) => {
            Err("may contain only letters, digits and '_'")
        }
        _ => Ok(()),
    }
}

/// The attributes Avro Java reserves for schemas (`Schema.SCHEMA_RESERVED`): on a primitive,
/// an array or a map they are not properties, and its parser drops them.
const SCHEMA_RESERVED: &[&str] = &[
    "doc",
    "fields",
    "items",
    "name",
    "namespace",
    "size",
    "symbols",
    "values",
    "type",
    "aliases",
];

/// The schema's JSON with what Avro Java's parser ignores taken out, as its `Schema.toString()`
/// (Confluent's canonical string) writes it back: a primitive, array or map written as an
/// object loses the reserved attributes ([`SCHEMA_RESERVED`]), and a primitive left without
/// properties is its bare name, so `{"type": "int", "name": "n"}` is `"int"`. Everything else
/// stays as written.
fn without_ignored_attributes(value: &Value) -> Value {
    let Value::Object(object) = value else {
        return match value {
            Value::Array(branches) => {
                Value::Array(branches.iter().map(without_ignored_attributes).collect())
            }
            other => other.clone(),
        };
    };
    let Some(Value::String(type_name)) = object.get("type") else {
        return value.clone();
    };
    let kept = |structural: &[&str]| -> Map<String, Value> {
        object
            .iter()
            .filter(|(key, _)| {
                structural.contains(&key.as_str()) || !SCHEMA_RESERVED.contains(&key.as_str())
            })
            .map(|(key, value)| {
                let value = if key == "items" || key == "values" {
                    without_ignored_attributes(value)
                } else {
                    value.clone()
                };
                (key.clone(), value)
            })
            .collect()
    };
    match type_name.as_str() {
        name if Primitive::from_name(name).is_some() => {
            let kept = kept(&["type"]);
            if kept.len() == 1 {
                Value::String(name.to_string())
            } else {
                Value::Object(kept)
            }
        }
        "array" => Value::Object(kept(&["type", "items"])),
        "map" => Value::Object(kept(&["type", "values"])),
        "record" | "error" => {
            let mut object = object.clone();
            if let Some(Value::Array(fields)) = object.get_mut("fields") {
                for field in fields {
                    if let Some(ty) = field.get_mut("type") {
                        *ty = without_ignored_attributes(ty);
                    }
                }
            }
            Value::Object(object)
        }
        _ => value.clone(),
    }
}

fn props_except(object: &Map<String, Value>, reserved: &[&str]) -> Props {
    object
        .iter()
        .filter(|(key, _)| !reserved.contains(&key.as_str()))
        .map(|(key, value)| (key.clone(), value.clone()))
        .collect()
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

fn render_path(path: &[String]) -> String {
    if path.is_empty() {
        "/".to_string()
    } else {
        path.iter().map(|segment| format!("/{segment}")).collect()
    }
}

/// Checks the defaults of the fields of record `index`, as Avro Java does when it validates
/// defaults: a default must be a JSON value of the field's type.
fn check_defaults(types: &[NamedType], index: usize) -> Result<(), SchemaError> {
    let record = &types[index];
    let NamedKind::Record { fields } = &record.kind else {
        return Ok(());
    };
    for field in fields {
        let Some(default) = &field.default else {
            continue;
        };
        let mut steps = 0;
        match default_matches(types, &field.ty, default, &mut steps) {
            Some(true) => {}
            Some(false) => {
                return Err(SchemaError(format!(
                    "invalid default for field '{}' of record '{}': {default} is not a valid {}",
                    field.name,
                    record.full_name,
                    describe(types, &field.ty)
                )));
            }
            None => {
                return Err(SchemaError(format!(
                    "the default for field '{}' of record '{}' is too complex to check; \
                     simplify it",
                    field.name, record.full_name
                )));
            }
        }
    }
    Ok(())
}

/// Whether `value` is a valid JSON default for `node`; `None` when the check ran out of steps.
/// A record field the value leaves out must have a default of its own (checked on its own).
fn default_matches(
    types: &[NamedType],
    node: &Node,
    value: &Value,
    steps: &mut usize,
) -> Option<bool> {
    *steps += 1;
    if *steps > MAX_DEFAULT_CHECK_STEPS {
        return None;
    }
    Some(match node {
        Node::Primitive { kind, .. } => match kind {
            Primitive::Null => value.is_null(),
            Primitive::Boolean => value.is_boolean(),
            Primitive::Int => value.as_i64().is_some_and(|n| i32::try_from(n).is_ok()),
            Primitive::Long => value.is_i64(),
            Primitive::Float | Primitive::Double => value.is_number(),
            Primitive::Bytes | Primitive::String => value.is_string(),
        },
        Node::Array { items, .. } => match value {
            Value::Array(elements) => {
                for element in elements {
                    if !default_matches(types, items, element, steps)? {
                        return Some(false);
                    }
                }
                true
            }
            _ => false,
        },
        Node::Map { values, .. } => match value {
            Value::Object(entries) => {
                for entry in entries.values() {
                    if !default_matches(types, values, entry, steps)? {
                        return Some(false);
                    }
                }
                true
            }
            _ => false,
        },
        Node::Union(branches) => {
            for branch in branches {
                if default_matches(types, branch, value, steps)? {
                    return Some(true);
                }
            }
            false
        }
        Node::Named(index) => match &types[*index].kind {
            NamedKind::Record { fields } => match value {
                Value::Object(entries) => {
                    for field in fields {
                        let ok = match entries.get(&field.name) {
                            Some(entry) => default_matches(types, &field.ty, entry, steps)?,
                            None => field.default.is_some(),
                        };
                        if !ok {
                            return Some(false);
                        }
                    }
                    true
                }
                _ => false,
            },
            NamedKind::Enum { symbols, .. } => value
                .as_str()
                .is_some_and(|s| symbols.iter().any(|symbol| symbol == s)),
            // Fixed and bytes defaults are strings of code points 0 to 255, one per byte.
            NamedKind::Fixed { size } => value
                .as_str()
                .is_some_and(|s| s.chars().count() == *size && s.chars().all(|c| c <= '\u{ff}')),
        },
    })
}

/// A short description of a type for messages: `int`, `array`, `record 'com.acme.User'`.
fn describe(types: &[NamedType], node: &Node) -> String {
    match node {
        Node::Primitive { kind, .. } => kind.name().to_string(),
        Node::Array { .. } => "array".to_string(),
        Node::Map { .. } => "map".to_string(),
        Node::Union(_) => "union".to_string(),
        Node::Named(index) => {
            let named = &types[*index];
            format!("{} '{}'", named.kind.word(), named.full_name)
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Normal form

struct Normalizer<'a> {
    types: &'a [NamedType],
    /// Named types already written out in full.
    written: Vec<bool>,
    out: &'a mut String,
}

impl Normalizer<'_> {
    fn node(&mut self, node: &Node) {
        match node {
            Node::Primitive { kind, props } => {
                if props.is_empty() {
                    self.string(kind.name());
                } else {
                    self.out.push_str("{\"type\":");
                    self.string(kind.name());
                    self.props(props);
                    self.out.push('}');
                }
            }
            Node::Array { items, props } => {
                self.out.push_str("{\"type\":\"array\",\"items\":");
                self.node(items);
                self.props(props);
                self.out.push('}');
            }
            Node::Map { values, props } => {
                self.out.push_str("{\"type\":\"map\",\"values\":");
                self.node(values);
                self.props(props);
                self.out.push('}');
            }
            Node::Union(branches) => {
                self.out.push('[');
                for (i, branch) in branches.iter().enumerate() {
                    if i > 0 {
                        self.out.push(',');
                    }
                    self.node(branch);
                }
                self.out.push(']');
            }
            Node::Named(index) => self.named(*index),
        }
    }

    fn named(&mut self, index: usize) {
        let types = self.types;
        let named = &types[index];
        if named.from_reference || self.written[index] {
            self.string(&named.full_name);
            return;
        }
        self.written[index] = true;
        self.out.push_str("{\"name\":");
        self.string(&named.full_name);
        self.out.push_str(",\"type\":");
        self.string(named.kind.word());
        match &named.kind {
            NamedKind::Record { fields } => {
                self.out.push_str(",\"fields\":[");
                for (i, field) in fields.iter().enumerate() {
                    if i > 0 {
                        self.out.push(',');
                    }
                    self.field(field);
                }
                self.out.push(']');
            }
            NamedKind::Enum { symbols, .. } => {
                self.out.push_str(",\"symbols\":[");
                for (i, symbol) in symbols.iter().enumerate() {
                    if i > 0 {
                        self.out.push(',');
                    }
                    self.string(symbol);
                }
                self.out.push(']');
            }
            NamedKind::Fixed { size } => {
                self.out.push_str(&format!(",\"size\":{size}"));
            }
        }
        if let Some(doc) = named.doc.as_deref().filter(|doc| !doc.is_empty()) {
            self.out.push_str(",\"doc\":");
            self.string(doc);
        }
        self.aliases(&named.aliases);
        if let NamedKind::Enum {
            default: Some(default),
            ..
        } = &named.kind
        {
            self.out.push_str(",\"default\":");
            self.string(default);
        }
        self.props(&named.props);
        self.out.push('}');
    }

    fn field(&mut self, field: &Field) {
        self.out.push_str("{\"name\":");
        self.string(&field.name);
        self.out.push_str(",\"type\":");
        self.node(&field.ty);
        if let Some(order) = field.order.as_deref().filter(|order| *order != "ascending") {
            self.out.push_str(",\"order\":");
            self.string(order);
        }
        if let Some(doc) = &field.doc {
            self.out.push_str(",\"doc\":");
            self.string(doc);
        }
        self.aliases(&field.aliases);
        if let Some(default) = &field.default {
            self.out.push_str(",\"default\":");
            write_sorted_json(self.out, default);
        }
        self.props(&field.props);
        self.out.push('}');
    }

    fn aliases(&mut self, aliases: &[String]) {
        if aliases.is_empty() {
            return;
        }
        let sorted: BTreeSet<&String> = aliases.iter().collect();
        self.out.push_str(",\"aliases\":[");
        for (i, alias) in sorted.into_iter().enumerate() {
            if i > 0 {
                self.out.push(',');
            }
            self.string(alias);
        }
        self.out.push(']');
    }

    fn props(&mut self, props: &Props) {
        let mut sorted: Vec<&(String, Value)> = props.iter().collect();
        sorted.sort_by(|a, b| a.0.cmp(&b.0));
        for (key, value) in sorted {
            self.out.push(',');
            self.string(key);
            self.out.push(':');
            write_sorted_json(self.out, value);
        }
    }

    fn string(&mut self, s: &str) {
        self.out.push_str(&Value::from(s).to_string());
    }
}

/// Writes `value` as compact JSON with the keys of every object sorted.
fn write_sorted_json(out: &mut String, value: &Value) {
    match value {
        Value::Object(entries) => {
            let mut sorted: Vec<(&String, &Value)> = entries.iter().collect();
            sorted.sort_by(|a, b| a.0.cmp(b.0));
            out.push('{');
            for (i, (key, entry)) in sorted.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::from(key.as_str()).to_string());
                out.push(':');
                write_sorted_json(out, entry);
            }
            out.push('}');
        }
        Value::Array(elements) => {
            out.push('[');
            for (i, element) in elements.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_sorted_json(out, element);
            }
            out.push(']');
        }
        other => out.push_str(&other.to_string()),
    }
}

// ---------------------------------------------------------------------------------------------
// Compatibility

/// The rule names of Avro's `SchemaCompatibility.SchemaIncompatibilityType`.
#[derive(Debug, Clone, Copy)]
enum Rule {
    TypeMismatch,
    NameMismatch,
    FixedSizeMismatch,
    MissingEnumSymbols,
    ReaderFieldMissingDefaultValue,
    MissingUnionBranch,
    /// Spate's own: the schemas nest deeper than [`MAX_COMPATIBILITY_NESTING`].
    NestingTooDeep,
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Rule::TypeMismatch => "TYPE_MISMATCH",
            Rule::NameMismatch => "NAME_MISMATCH",
            Rule::FixedSizeMismatch => "FIXED_SIZE_MISMATCH",
            Rule::MissingEnumSymbols => "MISSING_ENUM_SYMBOLS",
            Rule::ReaderFieldMissingDefaultValue => "READER_FIELD_MISSING_DEFAULT_VALUE",
            Rule::MissingUnionBranch => "MISSING_UNION_BRANCH",
            Rule::NestingTooDeep => "NESTING_TOO_DEEP",
        })
    }
}

struct Checker<'a> {
    reader: &'a AvroSchema,
    writer: &'a AvroSchema,
    /// The path in the reader's schema, like Avro Java's location (`fields`, `1`, `type`).
    path: Vec<String>,
    /// The names of the fields enclosing the current position.
    fields: Vec<String>,
    /// Results for pairs of named types (reader index, writer index); `None` while the pair
    /// is being compared, which then counts as compatible.
    memo: HashMap<(usize, usize), Option<Vec<String>>>,
    /// How many comparisons enclose the current one.
    depth: usize,
}

impl<'a> Checker<'a> {
    fn message(&self, rule: Rule, segment: Option<&str>, what: impl fmt::Display) -> String {
        let mut path = render_path(&self.path);
        if let Some(segment) = segment {
            if path.len() > 1 {
                path.push('/');
            }
            path.push_str(segment);
        }
        let field =
            if self.fields.is_empty() || matches!(rule, Rule::ReaderFieldMissingDefaultValue) {
                String::new()
            } else {
                format!(" (field '{}')", self.fields.join("."))
            };
        format!("{rule} at {path}{field}: {what}")
    }

    fn describe_reader(&self, node: &Node) -> String {
        describe(&self.reader.types, node)
    }

    fn describe_writer(&self, node: &Node) -> String {
        describe(&self.writer.types, node)
    }

    fn check(&mut self, reader: &'a Node, writer: &'a Node) -> Vec<String> {
        if self.depth >= MAX_COMPATIBILITY_NESTING {
            return vec![self.message(
                Rule::NestingTooDeep,
                None,
                format_args!(
                    "the schemas nest types more than {MAX_COMPATIBILITY_NESTING} levels deep \
                     here, too deep to compare"
                ),
            )];
        }
        self.depth += 1;
        let found = self.check_nested(reader, writer);
        self.depth -= 1;
        found
    }

    fn check_nested(&mut self, reader: &'a Node, writer: &'a Node) -> Vec<String> {
        match (reader, writer) {
            // Every branch the writer may have used must be readable.
            (_, Node::Union(branches)) => {
                let mut found = Vec::new();
                for (i, branch) in branches.iter().enumerate() {
                    self.path.push(i.to_string());
                    found.extend(self.check(reader, branch));
                    self.path.pop();
                }
                found
            }
            (Node::Union(branches), _) => {
                // Trial comparisons may memoise pairs; their messages are dropped here.
                let readable = branches
                    .iter()
                    .any(|branch| self.check(branch, writer).is_empty());
                if readable {
                    Vec::new()
                } else {
                    vec![self.message(
                        Rule::MissingUnionBranch,
                        None,
                        format_args!(
                            "the reader's union has no branch that can read the writer's {}",
                            self.describe_writer(writer)
                        ),
                    )]
                }
            }
            (Node::Primitive { kind: r, .. }, Node::Primitive { kind: w, .. }) if r.reads(*w) => {
                Vec::new()
            }
            (Node::Array { items: r, .. }, Node::Array { items: w, .. }) => {
                self.path.push("items".to_string());
                let found = self.check(r, w);
                self.path.pop();
                found
            }
            (Node::Map { values: r, .. }, Node::Map { values: w, .. }) => {
                self.path.push("values".to_string());
                let found = self.check(r, w);
                self.path.pop();
                found
            }
            (Node::Named(r), Node::Named(w)) => {
                match self.memo.get(&(*r, *w)) {
                    Some(None) => return Vec::new(),
                    Some(Some(found)) => return found.clone(),
                    None => {}
                }
                self.memo.insert((*r, *w), None);
                let found = self.check_named(*r, *w, reader, writer);
                self.memo.insert((*r, *w), Some(found.clone()));
                found
            }
            _ => vec![self.type_mismatch(reader, writer)],
        }
    }

    fn type_mismatch(&self, reader: &Node, writer: &Node) -> String {
        self.message(
            Rule::TypeMismatch,
            None,
            format_args!(
                "the reader's {} cannot read the writer's {}",
                self.describe_reader(reader),
                self.describe_writer(writer)
            ),
        )
    }

    fn check_named(
        &mut self,
        reader_index: usize,
        writer_index: usize,
        reader_node: &Node,
        writer_node: &Node,
    ) -> Vec<String> {
        let reader: &'a NamedType = &self.reader.types[reader_index];
        let writer: &'a NamedType = &self.writer.types[writer_index];
        let mut found = Vec::new();
        match (&reader.kind, &writer.kind) {
            (NamedKind::Record { .. }, NamedKind::Record { .. })
            | (NamedKind::Enum { .. }, NamedKind::Enum { .. })
            | (NamedKind::Fixed { .. }, NamedKind::Fixed { .. }) => {
                // Avro Java compares unqualified names, then the reader's aliases.
                let same_name =
                    reader.name == writer.name || reader.aliases.contains(&writer.full_name);
                if !same_name {
                    found.push(self.message(
                        Rule::NameMismatch,
                        Some("name"),
                        format_args!(
                            "the reader's {} '{}' has neither the name nor an alias matching the \
                             writer's '{}'",
                            reader.kind.word(),
                            reader.full_name,
                            writer.full_name
                        ),
                    ));
                }
            }
            _ => return vec![self.type_mismatch(reader_node, writer_node)],
        }
        match (&reader.kind, &writer.kind) {
            (
                NamedKind::Record {
                    fields: reader_fields,
                },
                NamedKind::Record {
                    fields: writer_fields,
                },
            ) => {
                self.path.push("fields".to_string());
                for (i, reader_field) in reader_fields.iter().enumerate() {
                    self.path.push(i.to_string());
                    self.fields.push(reader_field.name.clone());
                    match writer_field(writer_fields, reader_field) {
                        Some(writer_field) => {
                            self.path.push("type".to_string());
                            found.extend(self.check(&reader_field.ty, &writer_field.ty));
                            self.path.pop();
                        }
                        None if reader_field.default.is_none() => found.push(self.message(
                            Rule::ReaderFieldMissingDefaultValue,
                            None,
                            format_args!(
                                "field '{}' is in the reader's schema without a default and \
                                 missing from the writer's",
                                self.fields.join(".")
                            ),
                        )),
                        None => {}
                    }
                    self.fields.pop();
                    self.path.pop();
                }
                self.path.pop();
            }
            (
                NamedKind::Enum {
                    symbols: reader_symbols,
                    default,
                },
                NamedKind::Enum {
                    symbols: writer_symbols,
                    ..
                },
            ) => {
                let missing: Vec<&str> = writer_symbols
                    .iter()
                    .filter(|symbol| !reader_symbols.contains(symbol))
                    .map(String::as_str)
                    .collect();
                if !missing.is_empty() && default.is_none() {
                    found.push(self.message(
                        Rule::MissingEnumSymbols,
                        Some("symbols"),
                        format_args!(
                            "the writer's enum '{}' has symbols [{}] that the reader's enum '{}' \
                             lacks, and the reader's enum has no default",
                            writer.full_name,
                            missing.join(", "),
                            reader.full_name
                        ),
                    ));
                }
            }
            (NamedKind::Fixed { size: reader_size }, NamedKind::Fixed { size: writer_size })
                if reader_size != writer_size =>
            {
                found.push(self.message(
                    Rule::FixedSizeMismatch,
                    Some("size"),
                    format_args!(
                        "the reader's fixed '{}' has size {reader_size} but the writer's '{}' \
                         has size {writer_size}",
                        reader.full_name, writer.full_name
                    ),
                ));
            }
            _ => {}
        }
        found
    }
}

/// The writer field a reader field reads: the one of the same name, else the first one named
/// like one of the reader field's aliases (Avro Java's `lookupWriterField`).
fn writer_field<'w>(writer_fields: &'w [Field], reader_field: &Field) -> Option<&'w Field> {
    writer_fields
        .iter()
        .find(|f| f.name == reader_field.name)
        .or_else(|| {
            reader_field
                .aliases
                .iter()
                .find_map(|alias| writer_fields.iter().find(|f| f.name == *alias))
        })
}

// ---------------------------------------------------------------------------------------------
// Payloads

/// Walks one datum of Avro's binary encoding without building it.
///
/// Nothing is allocated in proportion to the input: lengths are checked against the bytes
/// left before anything is sliced. Every loop consumes input, except that a block of items
/// that take no bytes (nulls, empty records) is skipped whole once one item took none, so a
/// block claiming 2^62 nulls costs one step.
struct Decoder<'a> {
    bytes: &'a [u8],
    pos: usize,
    types: &'a [NamedType],
}

impl<'a> Decoder<'a> {
    fn ended(&self) -> String {
        format!("the payload ends early, at byte {}", self.bytes.len())
    }

    fn take(&mut self, count: usize) -> Result<&'a [u8], String> {
        let end = self
            .pos
            .checked_add(count)
            .filter(|end| *end <= self.bytes.len())
            .ok_or_else(|| self.ended())?;
        let taken = &self.bytes[self.pos..end];
        self.pos = end;
        Ok(taken)
    }

    /// An unsigned base-128 varint of at most `max_bytes` bytes.
    fn varint(&mut self, max_bytes: usize) -> Result<u64, String> {
        let start = self.pos;
        let mut result: u64 = 0;
        for i in 0..max_bytes {
            let byte = *self.bytes.get(self.pos).ok_or_else(|| self.ended())?;
            self.pos += 1;
            let bits = u64::from(byte & 0x7f);
            let shift = 7 * i;
            if shift == 63 && bits > 1 {
                return Err(format!("the number at byte {start} overflows 64 bits"));
            }
            result |= bits << shift;
            if byte & 0x80 == 0 {
                return Ok(result);
            }
        }
        Err(format!(
            "the number at byte {start} is longer than {max_bytes} bytes"
        ))
    }

    fn long(&mut self) -> Result<i64, String> {
        let n = self.varint(10)?;
        // Zig-zag: 0, -1, 1, -2, ... The casts reinterpret bits, as the encoding intends.
        Ok((n >> 1) as i64 ^ -((n & 1) as i64))
    }

    fn int(&mut self) -> Result<i32, String> {
        let start = self.pos;
        let n = self.varint(5)?;
        let n =
            u32::try_from(n).map_err(|_| format!("the int at byte {start} overflows 32 bits"))?;
        Ok((n >> 1) as i32 ^ -((n & 1) as i32))
    }

    /// A length or size: a long that must not be negative.
    fn length(&mut self) -> Result<usize, String> {
        let start = self.pos;
        let n = self.long()?;
        usize::try_from(n).map_err(|_| format!("negative length {n} at byte {start}"))
    }

    /// A value one level deeper than `depth`.
    fn nested(&mut self, node: &'a Node, depth: usize) -> Result<(), String> {
        if depth >= MAX_PAYLOAD_NESTING {
            return Err(format!(
                "the payload nests values more than {MAX_PAYLOAD_NESTING} levels deep"
            ));
        }
        self.value(node, depth + 1)
    }

    fn value(&mut self, node: &'a Node, depth: usize) -> Result<(), String> {
        match node {
            Node::Primitive { kind, .. } => self.primitive(*kind),
            Node::Array { items, .. } => self.blocks(false, items, depth),
            Node::Map { values, .. } => self.blocks(true, values, depth),
            Node::Union(branches) => {
                let start = self.pos;
                let index = self.long()?;
                let branch = usize::try_from(index)
                    .ok()
                    .and_then(|i| branches.get(i))
                    .ok_or_else(|| {
                        format!(
                            "union branch {index} at byte {start} does not exist (the union has \
                             {} branches)",
                            branches.len()
                        )
                    })?;
                self.nested(branch, depth)
            }
            Node::Named(index) => {
                let types = self.types;
                match &types[*index].kind {
                    NamedKind::Record { fields } => {
                        for field in fields {
                            self.nested(&field.ty, depth)?;
                        }
                        Ok(())
                    }
                    NamedKind::Enum { symbols, .. } => {
                        let start = self.pos;
                        let symbol = self.int()?;
                        if usize::try_from(symbol).is_ok_and(|i| i < symbols.len()) {
                            Ok(())
                        } else {
                            Err(format!(
                                "enum symbol {symbol} at byte {start} does not exist (the enum \
                                 '{}' has {} symbols)",
                                types[*index].full_name,
                                symbols.len()
                            ))
                        }
                    }
                    NamedKind::Fixed { size } => self.take(*size).map(|_| ()),
                }
            }
        }
    }

    fn primitive(&mut self, kind: Primitive) -> Result<(), String> {
        let start = self.pos;
        match kind {
            Primitive::Null => Ok(()),
            Primitive::Boolean => match self.take(1)? {
                [0 | 1] => Ok(()),
                other => Err(format!(
                    "the boolean at byte {start} is {other:?}, not 0 or 1"
                )),
            },
            Primitive::Int => self.int().map(|_| ()),
            Primitive::Long => self.long().map(|_| ()),
            Primitive::Float => self.take(4).map(|_| ()),
            Primitive::Double => self.take(8).map(|_| ()),
            Primitive::Bytes => {
                let length = self.length()?;
                self.take(length).map(|_| ())
            }
            Primitive::String => self.string(),
        }
    }

    fn string(&mut self) -> Result<(), String> {
        let start = self.pos;
        let length = self.length()?;
        let bytes = self.take(length)?;
        std::str::from_utf8(bytes)
            .map(|_| ())
            .map_err(|_| format!("the string at byte {start} is not valid UTF-8"))
    }

    /// The blocks of an array, or of a map when `map` (each item then starts with its string
    /// key): each block is a count, then (when the count is negative) its size in bytes, then
    /// the items; a zero count ends them.
    fn blocks(&mut self, map: bool, item: &'a Node, depth: usize) -> Result<(), String> {
        loop {
            let block_start = self.pos;
            let count = self.long()?;
            if count == 0 {
                return Ok(());
            }
            let size = if count < 0 {
                Some(self.length()?)
            } else {
                None
            };
            let items_start = self.pos;
            for _ in 0..count.unsigned_abs() {
                let item_start = self.pos;
                if map {
                    self.string()?;
                }
                self.nested(item, depth)?;
                if self.pos == item_start {
                    // This type takes no bytes, so neither do the rest of the block's items.
                    break;
                }
            }
            if let Some(size) = size {
                let used = self.pos - items_start;
                if used != size {
                    return Err(format!(
                        "the block at byte {block_start} declares {size} bytes but its items \
                         take {used}"
                    ));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> AvroSchema {
        AvroSchema::parse(text, &[], false).expect("schema parses")
    }

    fn normalized(text: &str) -> String {
        AvroSchema::parse(text, &[], true)
            .expect("schema parses")
            .canonical()
            .to_string()
    }

    fn parse_error(text: &str) -> String {
        AvroSchema::parse(text, &[], false)
            .expect_err("schema is refused")
            .0
    }

    fn incompatibilities(reader: &str, writer: &str) -> Vec<String> {
        AvroSchema::incompatibilities(&parse(reader), &parse(writer))
    }

    /// Zig-zag varint encoding, for building payloads by hand.
    fn long(n: i64) -> Vec<u8> {
        let mut z = ((n << 1) ^ (n >> 63)) as u64;
        let mut out = Vec::new();
        loop {
            let byte = (z & 0x7f) as u8;
            z >>= 7;
            if z == 0 {
                out.push(byte);
                return out;
            }
            out.push(byte | 0x80);
        }
    }

    const USER: &str = r#"{
        "type": "record",
        "name": "User",
        "namespace": "com.acme",
        "doc": "a user",
        "fields": [
            {"name": "name", "type": "string"},
            {"name": "age", "type": "int", "x-custom": {"b": 1, "a": 2}}
        ]
    }"#;

    // --- parsing and canonical forms ---

    #[test]
    fn whitespace_only_differences_canonicalise_equal() {
        let compact = r#"{"type":"record","name":"User","namespace":"com.acme","doc":"a user","fields":[{"name":"name","type":"string"},{"name":"age","type":"int","x-custom":{"b":1,"a":2}}]}"#;
        assert_eq!(parse(USER).canonical(), compact);
        assert_eq!(parse(compact).canonical(), compact);
    }

    #[test]
    fn primitives_written_as_objects_canonicalise_without_ignored_attributes() {
        // Avro's parser ignores reserved attributes on primitives, arrays and maps, so these
        // are the same schema as their plain spelling, as in Confluent.
        assert_eq!(
            parse(r#"{"type": "int", "name": "n"}"#).canonical(),
            r#""int""#
        );
        assert_eq!(parse(r#"{"type": "int"}"#).canonical(), r#""int""#);
        assert_eq!(
            parse(r#"{"type": "string", "doc": "d", "aliases": ["a"], "namespace": "x"}"#)
                .canonical(),
            r#""string""#
        );
        // Properties that are not reserved stay, in the order written.
        assert_eq!(
            parse(r#"{"type": "long", "name": "t", "logicalType": "timestamp-millis"}"#)
                .canonical(),
            r#"{"type":"long","logicalType":"timestamp-millis"}"#
        );
        assert_eq!(
            parse(r#"{"type": "array", "name": "xs", "items": {"type": "int", "name": "x"}}"#)
                .canonical(),
            r#"{"type":"array","items":"int"}"#
        );
        assert_eq!(
            parse(r#"{"type": "map", "values": ["null", {"type": "bytes", "doc": "b"}], "x": 1}"#)
                .canonical(),
            r#"{"type":"map","values":["null","bytes"],"x":1}"#
        );
        let record = r#"{"type": "record", "name": "R", "doc": "kept",
            "fields": [{"name": "a", "type": {"type": "int", "name": "a"}, "doc": "kept too"}]}"#;
        assert_eq!(
            parse(record).canonical(),
            r#"{"type":"record","name":"R","doc":"kept","fields":[{"name":"a","type":"int","doc":"kept too"}]}"#
        );
        assert_eq!(normalized(r#"{"type": "int", "name": "n"}"#), r#""int""#);
    }

    #[test]
    fn canonical_keeps_key_order_docs_defaults_and_custom_properties() {
        let text = r#"{"name": "E", "type": "enum", "symbols": ["A", "B"], "default": "A",
                       "aliases": ["F"], "doc": "d", "x": [1]}"#;
        assert_eq!(
            parse(text).canonical(),
            r#"{"name":"E","type":"enum","symbols":["A","B"],"default":"A","aliases":["F"],"doc":"d","x":[1]}"#
        );
        assert_eq!(parse(r#""string""#).canonical(), r#""string""#);
        // Avro Java reads both as the same primitive and writes it back bare.
        assert_eq!(parse(r#"{"type": "string"}"#).canonical(), r#""string""#);
    }

    #[test]
    fn normalized_form_equates_equivalent_spellings() {
        assert_eq!(
            normalized(r#""string""#),
            normalized(r#"{"type": "string"}"#)
        );
        let dotted = r#"{"type": "record", "name": "com.acme.User", "fields": [
            {"type": {"type": "int"}, "name": "age"}]}"#;
        let namespaced = r#"{"namespace": "com.acme", "fields": [{"name": "age", "type": "int"}],
            "name": "User", "type": "record"}"#;
        assert_eq!(normalized(dotted), normalized(namespaced));
        assert_eq!(
            normalized(dotted),
            r#"{"name":"com.acme.User","type":"record","fields":[{"name":"age","type":"int"}]}"#
        );
    }

    #[test]
    fn normalized_form_writes_names_in_full_and_repeats_by_name() {
        let text = r#"{"type": "record", "name": "Pair", "namespace": "n", "x-b": 2, "x-a": 1,
            "aliases": ["Z", "o.Y"], "fields": [
            {"name": "left", "type": {"type": "fixed", "name": "Id", "size": 4}, "order": "ASCENDING"},
            {"name": "right", "type": "Id", "doc": "d", "default": "abcd", "order": "ignore"},
            {"name": "m", "type": {"type": "map", "values": "long", "x-p": {"z": 1, "y": 2}}}]}"#;
        assert_eq!(
            normalized(text),
            concat!(
                r#"{"name":"n.Pair","type":"record","fields":["#,
                r#"{"name":"left","type":{"name":"n.Id","type":"fixed","size":4}},"#,
                r#"{"name":"right","type":"n.Id","order":"ignore","doc":"d","default":"abcd"},"#,
                r#"{"name":"m","type":{"type":"map","values":"long","x-p":{"y":2,"z":1}}}],"#,
                r#""aliases":["n.Z","o.Y"],"x-a":1,"x-b":2}"#
            )
        );
    }

    #[test]
    fn references_resolve_by_full_name() {
        let address = Dependency {
            name: "com.acme.Address".to_string(),
            text: r#"{"type": "record", "name": "Address", "namespace": "com.acme",
                      "fields": [{"name": "city", "type": "string"}]}"#
                .to_string(),
        };
        let text = r#"{"type": "record", "name": "Customer", "namespace": "com.acme",
            "fields": [{"name": "home", "type": "com.acme.Address"},
                       {"name": "work", "type": "Address"}]}"#;
        let schema = AvroSchema::parse(text, std::slice::from_ref(&address), false)
            .expect("references resolve");
        assert_eq!(schema.name(), Some("com.acme.Customer"));
        assert_eq!(schema.validate_payload(&[2, b'X', 2, b'Y']), Ok(()));

        let normal = AvroSchema::parse(text, &[address], true).expect("references resolve");
        assert!(normal.canonical().contains(r#""type":"com.acme.Address""#));
        assert!(!normal.canonical().contains("city"));

        let error = parse_error(text);
        assert!(error.contains("unknown type 'com.acme.Address'"), "{error}");
        assert!(error.contains("/fields/0/type (field 'home')"), "{error}");
    }

    #[test]
    fn references_see_earlier_references() {
        let id = Dependency {
            name: "a.Id".to_string(),
            text: r#"{"type": "fixed", "name": "a.Id", "size": 2}"#.to_string(),
        };
        let key = Dependency {
            name: "a.Key".to_string(),
            text:
                r#"{"type": "record", "name": "a.Key", "fields": [{"name": "id", "type": "Id"}]}"#
                    .to_string(),
        };
        let schema = AvroSchema::parse(r#"["null", "a.Key"]"#, &[id.clone(), key.clone()], false)
            .expect("parses");
        assert_eq!(schema.validate_payload(&[2, 7, 7]), Ok(()));
        let error = AvroSchema::parse(r#""a.Key""#, &[key, id], false)
            .expect_err("order matters")
            .0;
        assert!(
            error.starts_with("in reference 'a.Key': unknown type 'Id'"),
            "{error}"
        );
    }

    #[test]
    fn bad_defaults_refused_naming_the_field() {
        let error = parse_error(
            r#"{"type": "record", "name": "R", "fields": [
                {"name": "count", "type": "int", "default": "x"}]}"#,
        );
        assert_eq!(
            error,
            r#"invalid default for field 'count' of record 'R': "x" is not a valid int"#
        );
        for (ty, default) in [
            (r#""int""#, "2147483648"),
            (r#""int""#, "1.5"),
            (r#""long""#, "true"),
            (r#""string""#, "null"),
            (r#"["null", "string"]"#, "1"),
            (r#"{"type": "array", "items": "int"}"#, r#"[1, "a"]"#),
            (
                r#"{"type": "enum", "name": "E", "symbols": ["A"]}"#,
                r#""B""#,
            ),
            (r#"{"type": "fixed", "name": "F", "size": 2}"#, r#""abc""#),
            (
                r#"{"type": "record", "name": "In", "fields": [{"name": "a", "type": "int"}]}"#,
                "{}",
            ),
        ] {
            let text = format!(
                r#"{{"type": "record", "name": "R", "fields": [
                    {{"name": "f", "type": {ty}, "default": {default}}}]}}"#
            );
            let error = parse_error(&text);
            assert!(
                error.starts_with("invalid default for field 'f'"),
                "{ty}: {error}"
            );
        }
    }

    #[test]
    fn good_defaults_accepted() {
        for (ty, default) in [
            (r#""int""#, "-5"),
            (r#""double""#, "1"),
            (r#""bytes""#, r#""\u00ff""#),
            (r#"["null", "string"]"#, "null"),
            // Avro Java accepts a default matching any branch, not only the first.
            (r#"["null", "string"]"#, r#""x""#),
            (r#"{"type": "map", "values": "long"}"#, r#"{"a": 1}"#),
            (
                r#"{"type": "record", "name": "In", "fields": [
                    {"name": "a", "type": "int"}, {"name": "b", "type": "int", "default": 0}]}"#,
                r#"{"a": 1}"#,
            ),
        ] {
            let text = format!(
                r#"{{"type": "record", "name": "R", "fields": [
                    {{"name": "f", "type": {ty}, "default": {default}}}]}}"#
            );
            AvroSchema::parse(&text, &[], false)
                .unwrap_or_else(|e| panic!("{ty} with default {default}: {e}"));
        }
    }

    #[test]
    fn invalid_schemas_refused_with_what_and_where() {
        for (text, expected) in [
            ("{", "the schema is not valid JSON"),
            (r#""strin""#, "unknown type 'strin'"),
            (r#""array""#, "type 'array' must be written as an object"),
            (
                r#"{"type": "array"}"#,
                "the type object has no \"items\" at /",
            ),
            (r#"{"items": "int"}"#, "the type object has no \"type\""),
            (
                r#"{"type": "record", "name": "R", "fields": [
                    {"name": "a", "type": "int"}, {"name": "a", "type": "long"}]}"#,
                "the record 'R' already has a field named 'a' at /fields/1",
            ),
            (
                r#"{"type": "record", "name": "R", "fields": [{"name": "a", "type": "nope"}]}"#,
                "unknown type 'nope': it is not a primitive type, and no named type of that \
                 name is defined before this point or by a reference at /fields/0/type (field 'a')",
            ),
            (
                r#"{"type": "record", "name": "R", "fields": [{"name": "1a", "type": "int"}]}"#,
                "the field name '1a' of record 'R' must start with a letter or '_'",
            ),
            (
                r#"["int", "int"]"#,
                "the union already has a branch of type 'int'",
            ),
            (
                r#"["null", ["int"]]"#,
                "a union cannot directly contain another union at /1",
            ),
            (
                r#"{"type": "enum", "name": "E", "symbols": ["A", "A"]}"#,
                "the enum 'E' lists the symbol 'A' twice",
            ),
            (
                r#"{"type": "enum", "name": "E", "symbols": ["A"], "default": "B"}"#,
                "the enum 'E' has default \"B\", which is not one of its symbols",
            ),
            (
                r#"{"type": "fixed", "name": "F", "size": -1}"#,
                "needs a \"size\"",
            ),
            (
                r#"["null", {"type": "fixed", "name": "F", "size": 1},
                           {"type": "fixed", "name": "F", "size": 2}]"#,
                "the name 'F' is already defined",
            ),
            (
                r#"{"type": "record", "name": "int", "fields": []}"#,
                "primitive type 'int'",
            ),
            (r#"{"type": "record", "name": "R"}"#, "no \"fields\" array"),
            ("12", "found a number"),
        ] {
            let error = parse_error(text);
            assert!(error.contains(expected), "{text}: {error}");
        }
    }

    #[test]
    fn names_resolve_in_the_enclosing_namespace_then_the_null_namespace() {
        let text = r#"{"type": "record", "name": "a.Outer", "fields": [
            {"name": "top", "type": {"type": "fixed", "name": "Top", "namespace": "", "size": 1}},
            {"name": "inner", "type": {"type": "fixed", "name": "Inner", "size": 2}},
            {"name": "x", "type": "Inner"},
            {"name": "y", "type": "a.Inner"},
            {"name": "z", "type": "Top"}]}"#;
        let schema = parse(text);
        assert_eq!(schema.validate_payload(&[1, 2, 2, 3, 3, 3, 3, 4]), Ok(()));
        assert!(normalized(text).contains(r#""name":"Top","type":"fixed""#));
        assert!(normalized(text).contains(r#""name":"a.Inner","type":"fixed""#));
    }

    // --- compatibility ---

    const V1: &str = r#"{"type": "record", "name": "User", "fields": [
        {"name": "id", "type": "long"},
        {"name": "name", "type": "string"}]}"#;

    #[test]
    fn adding_a_field_with_a_default_is_backward_compatible() {
        let v2 = r#"{"type": "record", "name": "User", "fields": [
            {"name": "id", "type": "long"},
            {"name": "name", "type": "string"},
            {"name": "email", "type": ["null", "string"], "default": null}]}"#;
        assert_eq!(incompatibilities(v2, V1), Vec::<String>::new());
    }

    #[test]
    fn adding_a_field_without_a_default_is_not_backward_compatible() {
        let v2 = r#"{"type": "record", "name": "User", "fields": [
            {"name": "id", "type": "long"},
            {"name": "name", "type": "string"},
            {"name": "email", "type": "string"}]}"#;
        assert_eq!(
            incompatibilities(v2, V1),
            vec![
                "READER_FIELD_MISSING_DEFAULT_VALUE at /fields/2: field 'email' is in the \
                 reader's schema without a default and missing from the writer's"
            ]
        );
    }

    #[test]
    fn removing_a_field_is_fine_for_the_reader() {
        let v2 =
            r#"{"type": "record", "name": "User", "fields": [{"name": "id", "type": "long"}]}"#;
        assert_eq!(incompatibilities(v2, V1), Vec::<String>::new());
        // The old schema, as reader of the new, misses the removed field and has no default.
        let found = incompatibilities(V1, v2);
        assert_eq!(found.len(), 1);
        assert!(
            found[0].starts_with("READER_FIELD_MISSING_DEFAULT_VALUE at /fields/1: field 'name'")
        );
    }

    #[test]
    fn int_promotes_to_long_but_long_does_not_narrow_to_int() {
        assert!(incompatibilities(r#""long""#, r#""int""#).is_empty());
        assert_eq!(
            incompatibilities(r#""int""#, r#""long""#),
            vec!["TYPE_MISMATCH at /: the reader's int cannot read the writer's long"]
        );
        let reader = r#"{"type": "record", "name": "R", "fields": [{"name": "n", "type": "int"}]}"#;
        let writer =
            r#"{"type": "record", "name": "R", "fields": [{"name": "n", "type": "long"}]}"#;
        assert!(incompatibilities(writer, reader).is_empty());
        assert_eq!(
            incompatibilities(reader, writer),
            vec![
                "TYPE_MISMATCH at /fields/0/type (field 'n'): the reader's int cannot read the \
                 writer's long"
            ]
        );
    }

    #[test]
    fn primitive_promotions_follow_the_avro_table() {
        let allowed = [
            ("long", "int"),
            ("float", "int"),
            ("double", "int"),
            ("float", "long"),
            ("double", "long"),
            ("double", "float"),
            ("bytes", "string"),
            ("string", "bytes"),
        ];
        let names = [
            "null", "boolean", "int", "long", "float", "double", "bytes", "string",
        ];
        for reader in names {
            for writer in names {
                let ok = reader == writer || allowed.contains(&(reader, writer));
                let found = incompatibilities(&format!("\"{reader}\""), &format!("\"{writer}\""));
                assert_eq!(found.is_empty(), ok, "{reader} reading {writer}: {found:?}");
            }
        }
    }

    const COLOR: &str = r#"{"type": "enum", "name": "Color", "symbols": ["RED", "GREEN"]}"#;
    const COLOR_MORE: &str =
        r#"{"type": "enum", "name": "Color", "symbols": ["RED", "GREEN", "BLUE"]}"#;

    #[test]
    fn enum_symbol_added_can_be_read_by_new_but_not_by_old_reader() {
        assert!(incompatibilities(COLOR_MORE, COLOR).is_empty());
        assert_eq!(
            incompatibilities(COLOR, COLOR_MORE),
            vec![
                "MISSING_ENUM_SYMBOLS at /symbols: the writer's enum 'Color' has symbols [BLUE] \
                 that the reader's enum 'Color' lacks, and the reader's enum has no default"
            ]
        );
    }

    #[test]
    fn enum_symbol_removed_needs_a_reader_default() {
        // Removing BLUE: the new schema reads old data only with a default.
        assert!(!incompatibilities(COLOR, COLOR_MORE).is_empty());
        let with_default =
            r#"{"type": "enum", "name": "Color", "symbols": ["RED", "GREEN"], "default": "RED"}"#;
        assert!(incompatibilities(with_default, COLOR_MORE).is_empty());
        // And the old schema still reads what the new one writes.
        assert!(incompatibilities(COLOR_MORE, with_default).is_empty());
    }

    #[test]
    fn union_widening_is_readable_and_narrowing_is_not() {
        let narrow = r#"["null", "string"]"#;
        let wide = r#"["null", "string", "int"]"#;
        assert!(incompatibilities(wide, narrow).is_empty());
        assert_eq!(
            incompatibilities(narrow, wide),
            vec![
                "MISSING_UNION_BRANCH at /2: the reader's union has no branch that can read the \
                 writer's int"
            ]
        );
        // A reader union reads a plain writer type through a matching branch; a plain reader
        // reads a writer union only if it reads every branch.
        assert!(incompatibilities(narrow, r#""string""#).is_empty());
        assert_eq!(
            incompatibilities(r#""string""#, narrow),
            vec!["TYPE_MISMATCH at /0: the reader's string cannot read the writer's null"]
        );
        // Promotions apply inside unions.
        assert!(incompatibilities(r#"["null", "long"]"#, r#"["int", "null"]"#).is_empty());
    }

    #[test]
    fn record_rename_needs_an_alias_in_the_reader() {
        let writer = r#"{"type": "record", "name": "com.acme.User",
            "fields": [{"name": "id", "type": "long"}]}"#;
        let renamed = r#"{"type": "record", "name": "com.acme.Person",
            "fields": [{"name": "id", "type": "long"}]}"#;
        let aliased = r#"{"type": "record", "name": "com.acme.Person", "aliases": ["User"],
            "fields": [{"name": "id", "type": "long"}]}"#;
        assert_eq!(
            incompatibilities(renamed, writer),
            vec![
                "NAME_MISMATCH at /name: the reader's record 'com.acme.Person' has neither the \
                 name nor an alias matching the writer's 'com.acme.User'"
            ]
        );
        assert!(incompatibilities(aliased, writer).is_empty());
    }

    #[test]
    fn field_rename_needs_an_alias_in_the_reader() {
        let writer =
            r#"{"type": "record", "name": "R", "fields": [{"name": "old", "type": "int"}]}"#;
        let aliased = r#"{"type": "record", "name": "R",
            "fields": [{"name": "new", "type": "int", "aliases": ["old"]}]}"#;
        let bare = r#"{"type": "record", "name": "R", "fields": [{"name": "new", "type": "int"}]}"#;
        assert!(incompatibilities(aliased, writer).is_empty());
        assert_eq!(incompatibilities(bare, writer).len(), 1);
    }

    #[test]
    fn fixed_types_must_match_in_size_and_nested_types_report_their_path() {
        let reader = r#"{"type": "record", "name": "R", "fields": [
            {"name": "tags", "type": {"type": "map", "values": {"type": "array",
                "items": {"type": "fixed", "name": "H", "size": 16}}}}]}"#;
        let writer = r#"{"type": "record", "name": "R", "fields": [
            {"name": "tags", "type": {"type": "map", "values": {"type": "array",
                "items": {"type": "fixed", "name": "H", "size": 32}}}}]}"#;
        assert_eq!(
            incompatibilities(reader, writer),
            vec![
                "FIXED_SIZE_MISMATCH at /fields/0/type/values/items/size (field 'tags'): the \
                 reader's fixed 'H' has size 16 but the writer's 'H' has size 32"
            ]
        );
        assert_eq!(
            incompatibilities(
                r#"{"type": "array", "items": "int"}"#,
                r#"{"type": "map", "values": "int"}"#
            ),
            vec!["TYPE_MISMATCH at /: the reader's array cannot read the writer's map"]
        );
    }

    const LIST: &str = r#"{"type": "record", "name": "Node", "fields": [
        {"name": "value", "type": "int"},
        {"name": "next", "type": ["null", "Node"], "default": null}]}"#;

    #[test]
    fn recursive_linked_list_schema_does_not_hang() {
        assert!(incompatibilities(LIST, LIST).is_empty());
        let wider = r#"{"type": "record", "name": "Node", "fields": [
            {"name": "value", "type": "long"},
            {"name": "next", "type": ["null", "Node"], "default": null}]}"#;
        assert!(incompatibilities(wider, LIST).is_empty());
        assert_eq!(
            incompatibilities(LIST, wider),
            vec![
                "TYPE_MISMATCH at /fields/0/type (field 'value'): the reader's int cannot read \
                 the writer's long"
            ]
        );
        // Payload: 1 -> 2 -> end.
        assert_eq!(parse(LIST).validate_payload(&[2, 2, 4, 0]), Ok(()));
    }

    #[test]
    fn long_chains_of_named_types_are_compared_without_overflowing_the_stack() {
        // References T0 to T1999, each Tk holding a T(k-1); the schema is T1999 itself, so the
        // comparison walks the whole chain from the top.
        let chain = |length: usize| {
            let mut references = vec![Dependency {
                name: "T0".to_string(),
                text: r#"{"type": "record", "name": "T0", "fields": []}"#.to_string(),
            }];
            for k in 1..length {
                references.push(Dependency {
                    name: format!("T{k}"),
                    text: format!(
                        r#"{{"type": "record", "name": "T{k}",
                            "fields": [{{"name": "inner", "type": "T{}"}}]}}"#,
                        k - 1
                    ),
                });
            }
            let top = format!("\"T{}\"", length - 1);
            AvroSchema::parse(&top, &references, false).expect("parses")
        };
        let long = chain(2000);
        let found = AvroSchema::incompatibilities(&long, &long);
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(found[0].starts_with("NESTING_TOO_DEEP at /fields/0/type/fields/0/type/"));
        let short = chain(100);
        assert!(AvroSchema::incompatibilities(&short, &short).is_empty());
    }

    // --- payloads ---

    #[test]
    fn payload_of_the_schema_is_accepted() {
        let user = parse(USER);
        assert_eq!(user.validate_payload(&[6, b'A', b'n', b'n', 60]), Ok(()));
    }

    #[test]
    fn payload_cut_short_is_refused() {
        let user = parse(USER);
        let error = user
            .validate_payload(&[6, b'A', b'n'])
            .expect_err("refused");
        assert_eq!(error, "the payload ends early, at byte 3");
        assert!(user.validate_payload(&[]).is_err());
    }

    #[test]
    fn payload_with_trailing_bytes_is_refused() {
        let user = parse(USER);
        let error = user
            .validate_payload(&[6, b'A', b'n', b'n', 60, 0])
            .expect_err("refused");
        assert_eq!(error, "1 bytes left over after the datum ends at byte 5");
    }

    #[test]
    fn payload_with_bad_values_is_refused() {
        assert!(parse(r#""boolean""#).validate_payload(&[2]).is_err());
        assert!(parse(r#""string""#).validate_payload(&[2, 0xff]).is_err());
        assert!(parse(r#"["null", "int"]"#).validate_payload(&[4]).is_err());
        assert!(parse(r#"["null", "int"]"#).validate_payload(&[1]).is_err());
        assert!(parse(COLOR).validate_payload(&[4]).is_err());
        assert!(parse(COLOR).validate_payload(&[2]).is_ok());
        assert!(
            parse(r#""int""#)
                .validate_payload(&[0xff, 0xff, 0xff, 0xff, 0x7f])
                .is_err()
        );
        assert!(parse(r#""long""#).validate_payload(&[0xff; 11]).is_err());
        // A block whose declared byte size disagrees with its items.
        let array = parse(r#"{"type": "array", "items": "int"}"#);
        assert!(array.validate_payload(&[1, 2, 2, 0]).is_ok());
        assert!(array.validate_payload(&[1, 4, 2, 0]).is_err());
    }

    #[test]
    fn hostile_lengths_and_counts_fail_fast_without_allocating() {
        let mut huge_string = long(i64::MAX);
        huge_string.push(b'a');
        assert!(parse(r#""bytes""#).validate_payload(&huge_string).is_err());
        // 2^62 nulls in one block, then the end: valid, and checked in one step.
        let mut nulls = long(1 << 62);
        nulls.push(0);
        let array = parse(r#"{"type": "array", "items": "null"}"#);
        assert_eq!(array.validate_payload(&nulls), Ok(()));
        // A huge count of ints runs out of bytes.
        let mut ints = long(1 << 62);
        ints.extend([2, 2, 2]);
        assert!(
            parse(r#"{"type": "array", "items": "int"}"#)
                .validate_payload(&ints)
                .is_err()
        );
    }

    #[test]
    fn deep_recursive_payload_is_refused_without_overflowing_the_stack() {
        // Each node: value 0, then union branch 1 (another node); never ends.
        let payload = [0u8, 2].repeat(100_000);
        let error = parse(LIST).validate_payload(&payload).expect_err("refused");
        assert!(error.contains("more than 256 levels"), "{error}");
    }

    #[test]
    fn payloads_encoded_by_apache_avro_are_accepted() {
        use apache_avro::types::Value as AvroValue;
        let text = r#"{"type": "record", "name": "Everything", "fields": [
            {"name": "b", "type": "boolean"},
            {"name": "i", "type": "int"},
            {"name": "l", "type": "long"},
            {"name": "f", "type": "float"},
            {"name": "d", "type": "double"},
            {"name": "s", "type": "string"},
            {"name": "a", "type": {"type": "array", "items": "long"}},
            {"name": "m", "type": {"type": "map", "values": "string"}},
            {"name": "u", "type": ["null", "string"]},
            {"name": "e", "type": {"type": "enum", "name": "E", "symbols": ["X", "Y"]}},
            {"name": "x", "type": {"type": "fixed", "name": "F", "size": 3}}]}"#;
        let avro_schema = apache_avro::Schema::parse_str(text).expect("apache-avro parses");
        let value = AvroValue::Record(vec![
            ("b".into(), AvroValue::Boolean(true)),
            ("i".into(), AvroValue::Int(-123_456)),
            ("l".into(), AvroValue::Long(i64::MIN)),
            ("f".into(), AvroValue::Float(1.5)),
            ("d".into(), AvroValue::Double(-2.25)),
            ("s".into(), AvroValue::String("héllo".into())),
            (
                "a".into(),
                AvroValue::Array((0..300).map(AvroValue::Long).collect()),
            ),
            (
                "m".into(),
                AvroValue::Map(
                    [("k".to_string(), AvroValue::String("v".into()))]
                        .into_iter()
                        .collect(),
                ),
            ),
            (
                "u".into(),
                AvroValue::Union(1, Box::new(AvroValue::String("u".into()))),
            ),
            ("e".into(), AvroValue::Enum(1, "Y".into())),
            ("x".into(), AvroValue::Fixed(3, vec![1, 2, 3])),
        ]);
        let bytes = apache_avro::to_avro_datum(&avro_schema, value).expect("encodes");
        let schema = parse(text);
        assert_eq!(schema.validate_payload(&bytes), Ok(()));
        for cut in 0..bytes.len() {
            assert!(
                schema.validate_payload(&bytes[..cut]).is_err(),
                "a payload cut at {cut} is refused"
            );
        }
    }
}
