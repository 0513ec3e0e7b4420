//! Protobuf schemas: parsing one `.proto` file, its canonical text, Confluent's compatibility
//! rules and payload checks. Works on strings and bytes only: it never touches the filesystem
//! or the network, and imports resolve only from the references it is given and the few files
//! built in below.
//!
//! # Parsing
//!
//! A schema is one `.proto` file (proto2 or proto3), given either as source text or, as
//! confluent-kafka's Python serializer registers it, as the base64 of a serialized
//! `FileDescriptorProto`. As Confluent does, text that does not parse as source but decodes as
//! base64 to a descriptor is taken as a descriptor. References ([`Dependency`]) are named by
//! their import path (`"other.proto"`) and may use either form. As in Confluent's registry,
//! `google/protobuf/*.proto`, Google's common types `google/type/*.proto` (the sixteen Confluent
//! ships: `date`, `money`, `latlng`, ...) and Confluent's `confluent/meta.proto` and
//! `confluent/type/decimal.proto` resolve without references; a reference of the same name takes
//! precedence. The file is compiled with protox, so syntax errors, unknown types and missing imports are refused
//! with `file:line:column` where the input is source.
//!
//! # Canonical text
//!
//! The canonical text is printed from the compiled descriptor, never copied from the input, so
//! comments, whitespace and the input form (source or base64 descriptor) do not change it:
//! `syntax` is always printed; type names are fully qualified with a leading dot
//! (`.pkg.Message`); map fields print as `map<K, V>` without their entry message; proto3
//! `optional` fields print as `optional`, not as their synthetic oneof; `json_name` prints only
//! when it differs from the default; options (custom ones included) print from their decoded
//! values. Top-level and nested messages keep their order, because Confluent's message indexes
//! in every payload point into it. [`ProtobufSchema::serialized`] gives the descriptor itself,
//! base64-encoded, for the REST API's `format=serialized`.
//!
//! With `normalize` (Confluent's `normalize=true`) the printer also: sorts and deduplicates
//! imports; sorts options by name; prints plain fields by number, then oneofs ordered by their
//! lowest field number, each with its fields by number; keeps an enum's first value first (it
//! is the default value, and proto3 needs it to be zero) and sorts the others by number, then
//! name; prints each reserved range and name in its own statement, ranges by start, then names;
//! sorts `extend` fields by extendee and number. Messages, enums and services keep their order.
//!
//! # Compatibility
//!
//! [`ProtobufSchema::incompatibilities`] follows Confluent's protobuf diff
//! (`io.confluent.kafka.schemaregistry.protobuf.diff`), with the writer as Confluent's
//! "original" and the reader as its "update". Messages are matched by their name inside the
//! package, nested messages recursively, fields by number. Incompatible, each reported with its
//! Confluent difference type and path (`#/Message/Nested/3`):
//!
//! - `PACKAGE_CHANGED`: the packages differ.
//! - `MESSAGE_REMOVED`: a writer message is missing from the reader.
//! - `FIELD_KIND_CHANGED`: a field changes between scalar (enums count as scalars), message and map.
//! - `FIELD_SCALAR_KIND_CHANGED`: a scalar leaves its wire-compatible group: {int32, uint32,
//!   int64, uint64, bool, enums}, {sint32, sint64}, {fixed32, sfixed32}, {fixed64, sfixed64},
//!   {string, bytes}, {float}, {double}.
//! - `FIELD_NAMED_TYPE_CHANGED`: a message field's type changes name (package aside), or names
//!   a type from a referenced file that the reader cannot read as the writer wrote it.
//! - `FIELD_NUMERIC_LABEL_CHANGED`: a numeric (or enum) field changes between singular,
//!   repeated and required; string and bytes fields may change.
//! - `REQUIRED_FIELD_ADDED` / `REQUIRED_FIELD_REMOVED`: a proto2 required field appears or goes.
//! - `ONEOF_FIELD_REMOVED`: a field leaves a oneof and the message.
//! - `MULTIPLE_FIELDS_MOVED_TO_ONEOF`: two or more plain writer fields share one reader oneof.
//! - `FIELD_MOVED_TO_EXISTING_ONEOF`: a plain writer field joins a oneof whose other fields the
//!   writer already had in a oneof.
//!
//! Compatible, so not reported: adding or removing messages, enums, enum values, optional
//! fields, oneofs and oneof fields; renaming fields and enum values; moving messages; and so
//! changing a field's number (Confluent sees a removed field and an added one).
//!
//! # Payloads
//!
//! [`ProtobufSchema::validate_payload`] reads Confluent's message-index list (a zigzag varint
//! count, then that many zigzag varints; the single byte 0 means `[0]`), follows it from the
//! file's top-level messages into nested ones (map entries do not count, as in Confluent's Java
//! serializer), and decodes the rest as that message.
//!
//! # Deviations from Confluent
//!
//! - The canonical text is not byte-for-byte Confluent's: type names are always fully qualified
//!   and a oneof prints where its first field was declared. Both still parse as the same file.
//! - `FIELD_NUMERIC_LABEL_CHANGED` also applies to proto3 fields without a label, which
//!   Confluent skips; a singular field reading a packed repeated one loses data either way.
//! - Message-typed fields are compared recursively only when the type comes from a referenced
//!   file; Confluent also skips comparing them when both sides use the same reference
//!   subject-version, which this module cannot see.
//! - Custom options whose extension no file defines (`option (acme.owner) = "x";` with nothing
//!   defining `acme.owner`) are accepted and ignored, as Confluent's registry ignores them, but
//!   they are left out of the canonical text, where Confluent keeps them as written.
//! - Option values that name an extension the file does not import cannot be printed and are
//!   left out of the canonical text (they stay in [`ProtobufSchema::serialized`]), as are
//!   extension-range options.
//! - A proto2 group's message prints inline with its field, so it may move among its
//!   siblings' nested messages.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use prost::Message as _;
use prost_reflect::prost_types::field_descriptor_proto::Label as ProtoLabel;
use prost_reflect::prost_types::{
    DescriptorProto, EnumDescriptorProto, FieldDescriptorProto, FileDescriptorProto,
    UninterpretedOption,
};
use prost_reflect::{
    Cardinality, DynamicMessage, EnumDescriptor, ExtensionDescriptor, FieldDescriptor,
    FileDescriptor, Kind, MapKey, MessageDescriptor, OneofDescriptor, ReflectMessage as _,
    ServiceDescriptor, Syntax, Value,
};
use protox::file::{File, FileResolver, GoogleFileResolver};

use crate::{Dependency, SchemaError};

/// The name the schema's own file gets in the descriptor pool (and in `serialized()`), unless a
/// reference already uses it.
const MAIN_FILE_NAME: &str = "schema.proto";

/// The longest message-index list a payload may carry: deeper nesting than this is hostile.
const MAX_MESSAGE_INDEXES: usize = 100;

/// `uninterpreted_option`, present in every options message, never printed.
const UNINTERPRETED_OPTION_NUMBER: u32 = 999;

/// Confluent's `confluent/meta.proto`, importable without a reference as in Confluent.
const CONFLUENT_META_PROTO: &str = r#"syntax = "proto3";
package confluent;

import "google/protobuf/descriptor.proto";

option go_package = "../confluent";
option java_package = "io.confluent.protobuf";
option java_outer_classname = "MetaProto";

message Meta {
  string doc = 1;
  map<string, string> params = 2;
  repeated string tags = 3;
}

extend google.protobuf.FileOptions {
  Meta file_meta = 1088;
}
extend google.protobuf.MessageOptions {
  Meta message_meta = 1088;
}
extend google.protobuf.FieldOptions {
  Meta field_meta = 1088;
}
extend google.protobuf.EnumOptions {
  Meta enum_meta = 1088;
}
extend google.protobuf.EnumValueOptions {
  Meta enum_value_meta = 1088;
}
"#;

/// Confluent's `confluent/type/decimal.proto`, importable without a reference as in Confluent.
const CONFLUENT_DECIMAL_PROTO: &str = r#"syntax = "proto3";
package confluent.type;

option go_package = "../type";
option java_package = "io.confluent.protobuf.type";
option java_outer_classname = "DecimalProto";

message Decimal {
  bytes value = 1;
  uint32 precision = 2;
  int32 scale = 3;
}
"#;

/// Google's common types (`google/type/*.proto`, from googleapis, Apache-2.0), importable
/// without a reference: Confluent's registry ships the same files as well-known dependencies.
const GOOGLE_TYPE_PROTOS: &[(&str, &str)] = &[
    (
        "google/type/calendar_period.proto",
        include_str!("../proto/google/type/calendar_period.proto"),
    ),
    (
        "google/type/color.proto",
        include_str!("../proto/google/type/color.proto"),
    ),
    (
        "google/type/date.proto",
        include_str!("../proto/google/type/date.proto"),
    ),
    (
        "google/type/datetime.proto",
        include_str!("../proto/google/type/datetime.proto"),
    ),
    (
        "google/type/dayofweek.proto",
        include_str!("../proto/google/type/dayofweek.proto"),
    ),
    (
        "google/type/decimal.proto",
        include_str!("../proto/google/type/decimal.proto"),
    ),
    (
        "google/type/expr.proto",
        include_str!("../proto/google/type/expr.proto"),
    ),
    (
        "google/type/fraction.proto",
        include_str!("../proto/google/type/fraction.proto"),
    ),
    (
        "google/type/interval.proto",
        include_str!("../proto/google/type/interval.proto"),
    ),
    (
        "google/type/latlng.proto",
        include_str!("../proto/google/type/latlng.proto"),
    ),
    (
        "google/type/money.proto",
        include_str!("../proto/google/type/money.proto"),
    ),
    (
        "google/type/month.proto",
        include_str!("../proto/google/type/month.proto"),
    ),
    (
        "google/type/phone_number.proto",
        include_str!("../proto/google/type/phone_number.proto"),
    ),
    (
        "google/type/postal_address.proto",
        include_str!("../proto/google/type/postal_address.proto"),
    ),
    (
        "google/type/quaternion.proto",
        include_str!("../proto/google/type/quaternion.proto"),
    ),
    (
        "google/type/timeofday.proto",
        include_str!("../proto/google/type/timeofday.proto"),
    ),
];

/// The text of a file Confluent's registry resolves without a reference (besides
/// `google/protobuf/*.proto`, which protox bundles).
fn bundled_file(name: &str) -> Option<&'static str> {
    match name {
        "confluent/meta.proto" => Some(CONFLUENT_META_PROTO),
        "confluent/type/decimal.proto" => Some(CONFLUENT_DECIMAL_PROTO),
        _ => GOOGLE_TYPE_PROTOS
            .iter()
            .find(|(path, _)| *path == name)
            .map(|(_, text)| *text),
    }
}

/// A parsed Protobuf file, with the files it imports.
#[derive(Debug, Clone)]
pub struct ProtobufSchema {
    file: FileDescriptor,
    canonical: String,
    serialized: String,
}

impl ProtobufSchema {
    /// Parses `text` (`.proto` source, or the base64 of a serialized `FileDescriptorProto`),
    /// resolving imports through `dependencies` (named by import path). With `normalize`, the
    /// canonical text is also normalised (see the module documentation for the rule).
    pub fn parse(
        text: &str,
        dependencies: &[Dependency],
        normalize: bool,
    ) -> Result<ProtobufSchema, SchemaError> {
        let main_name = main_file_name(dependencies);
        let mut files = HashMap::with_capacity(dependencies.len() + 1);
        for dependency in dependencies {
            files.insert(
                dependency.name.clone(),
                load_file(&dependency.name, &dependency.text)?,
            );
        }
        files.insert(main_name.clone(), load_file(&main_name, text)?);
        let files = Arc::new(files);

        let file = match compile(&main_name, Arc::clone(&files)) {
            Ok(file) => file,
            // Confluent's registry ignores custom options that no file defines; so does this
            // one, by compiling again without them (only when there are some, since the retry
            // loses the source positions of later errors).
            Err(error) => match without_undefined_options(&main_name, &files) {
                Some(stripped) => compile(&main_name, Arc::new(stripped)).map_err(compile_error)?,
                None => return Err(compile_error(error)),
            },
        };

        let printer = Printer {
            normalize,
            proto3: file.syntax() == Syntax::Proto3,
        };
        let canonical = printer.file(&file);
        let serialized = BASE64.encode(encode_without_source_info(&file));
        Ok(ProtobufSchema {
            file,
            canonical,
            serialized,
        })
    }

    /// The canonical text: the file printed back as `.proto` source.
    pub fn canonical(&self) -> &str {
        &self.canonical
    }

    /// The file's `FileDescriptorProto`, serialized and base64-encoded, without source
    /// locations: what the REST API returns for `format=serialized`.
    pub fn serialized(&self) -> String {
        self.serialized.clone()
    }

    /// Why `reader` cannot read what `writer` wrote, one message per Confluent difference that
    /// is not compatible; empty when it can.
    pub fn incompatibilities(reader: &ProtobufSchema, writer: &ProtobufSchema) -> Vec<String> {
        let mut checker = Checker {
            writer_file: writer.file.name().to_owned(),
            reader_file: reader.file.name().to_owned(),
            found: Vec::new(),
            compared: HashMap::new(),
        };
        checker.compare_files(&writer.file, &reader.file);
        checker.found
    }

    /// The compiled file (with the files it imports), for clients that encode and decode
    /// messages with `prost-reflect`.
    pub fn file(&self) -> &FileDescriptor {
        &self.file
    }

    /// Checks that `payload` (after the 5-byte wire-format header) is a message-index list
    /// followed by a message of this file that decodes.
    pub fn validate_payload(&self, payload: &[u8]) -> Result<(), String> {
        let (indexes, body) = read_message_indexes(payload)?;
        let message = self.message_at(&indexes)?;
        DynamicMessage::decode(message.clone(), body).map_err(|error| {
            format!(
                "payload is not a valid {} message: {error}",
                message.full_name()
            )
        })?;
        Ok(())
    }

    /// The message a message-index list points at: top-level first, then nested.
    fn message_at(&self, indexes: &[i32]) -> Result<MessageDescriptor, String> {
        let mut candidates: Vec<MessageDescriptor> = self.file.messages().collect();
        let mut chosen: Option<MessageDescriptor> = None;
        for &index in indexes {
            let message = usize::try_from(index)
                .ok()
                .and_then(|i| candidates.get(i))
                .cloned()
                .ok_or_else(|| match &chosen {
                    None => format!(
                        "message index {index} is out of range: the schema has {} top-level messages",
                        candidates.len()
                    ),
                    Some(parent) => format!(
                        "message index {index} is out of range: {} has {} nested messages",
                        parent.full_name(),
                        candidates.len()
                    ),
                })?;
            candidates = message
                .child_messages()
                .filter(|child| !child.is_map_entry())
                .collect();
            chosen = Some(message);
        }
        chosen.ok_or_else(|| "the payload's message-index list is empty".to_owned())
    }
}

// ---------------------------------------------------------------------------------------------
// Parsing

/// Serves the schema's file, its references and the built-in files to protox.
struct MemoryResolver {
    files: Arc<HashMap<String, File>>,
    google: GoogleFileResolver,
}

impl FileResolver for MemoryResolver {
    fn open_file(&self, name: &str) -> Result<File, protox::Error> {
        if let Some(file) = self.files.get(name) {
            return Ok(file.clone());
        }
        match bundled_file(name) {
            Some(text) => File::from_source(name, text),
            None => self.google.open_file(name),
        }
    }
}

/// Compiles the schema's file (`main_name`) with the files it may import.
fn compile(
    main_name: &str,
    files: Arc<HashMap<String, File>>,
) -> Result<FileDescriptor, protox::Error> {
    let mut compiler = protox::Compiler::with_file_resolver(MemoryResolver {
        files,
        google: GoogleFileResolver::new(),
    });
    compiler.include_imports(true);
    compiler.open_file(main_name)?;
    compiler
        .descriptor_pool()
        .get_file_by_name(main_name)
        .ok_or_else(|| protox::Error::file_not_found(main_name))
}

/// The files with every custom option whose extension no file defines taken out, or `None`
/// when there is no such option (the compile error is then about something else).
///
/// The extensions that exist are found by compiling once with all custom options taken out;
/// an option is kept when its name, relative or absolute, ends one of their full names.
fn without_undefined_options(
    main_name: &str,
    files: &HashMap<String, File>,
) -> Option<HashMap<String, File>> {
    let has_custom = files.values().any(|file| {
        let mut found = false;
        visit_options(&mut file.file_descriptor_proto().clone(), &mut |options| {
            found |= options.iter().any(is_custom_option);
        });
        found
    });
    if !has_custom {
        return None;
    }
    let stripped = |keep: &dyn Fn(&UninterpretedOption) -> bool| {
        let mut removed_any = false;
        let files: HashMap<String, File> = files
            .iter()
            .map(|(name, file)| {
                let mut descriptor = file.file_descriptor_proto().clone();
                let mut removed = false;
                visit_options(&mut descriptor, &mut |options| {
                    let before = options.len();
                    options.retain(|option| keep(option));
                    removed |= options.len() != before;
                });
                removed_any |= removed;
                let file = if removed {
                    File::from_file_descriptor_proto(descriptor)
                } else {
                    file.clone()
                };
                (name.clone(), file)
            })
            .collect();
        (files, removed_any)
    };
    let (probe, _) = stripped(&|option| !is_custom_option(option));
    let pool = compile(main_name, Arc::new(probe))
        .ok()?
        .parent_pool()
        .clone();
    let defined: Vec<String> = pool
        .all_extensions()
        .map(|extension| extension.full_name().to_owned())
        .collect();
    let resolves = |name: &str| {
        let name = name.trim_start_matches('.');
        defined
            .iter()
            .any(|full| full == name || full.ends_with(&format!(".{name}")))
    };
    let (files, removed_any) = stripped(&|option| {
        option
            .name
            .iter()
            .filter(|part| part.is_extension)
            .all(|part| resolves(&part.name_part))
    });
    removed_any.then_some(files)
}

/// Whether an option names an extension (`(my.option) = ...`), not a field of the options
/// message itself.
fn is_custom_option(option: &UninterpretedOption) -> bool {
    option.name.iter().any(|part| part.is_extension)
}

/// Calls `visit` with the not yet interpreted options of the file and of everything in it.
fn visit_options(
    file: &mut FileDescriptorProto,
    visit: &mut dyn FnMut(&mut Vec<UninterpretedOption>),
) {
    fn message(proto: &mut DescriptorProto, visit: &mut dyn FnMut(&mut Vec<UninterpretedOption>)) {
        if let Some(options) = &mut proto.options {
            visit(&mut options.uninterpreted_option);
        }
        for field in proto.field.iter_mut().chain(&mut proto.extension) {
            if let Some(options) = &mut field.options {
                visit(&mut options.uninterpreted_option);
            }
        }
        for oneof in &mut proto.oneof_decl {
            if let Some(options) = &mut oneof.options {
                visit(&mut options.uninterpreted_option);
            }
        }
        for range in &mut proto.extension_range {
            if let Some(options) = &mut range.options {
                visit(&mut options.uninterpreted_option);
            }
        }
        for nested in &mut proto.enum_type {
            enumeration(nested, visit);
        }
        for nested in &mut proto.nested_type {
            message(nested, visit);
        }
    }
    fn enumeration(
        proto: &mut EnumDescriptorProto,
        visit: &mut dyn FnMut(&mut Vec<UninterpretedOption>),
    ) {
        if let Some(options) = &mut proto.options {
            visit(&mut options.uninterpreted_option);
        }
        for value in &mut proto.value {
            if let Some(options) = &mut value.options {
                visit(&mut options.uninterpreted_option);
            }
        }
    }
    if let Some(options) = &mut file.options {
        visit(&mut options.uninterpreted_option);
    }
    for nested in &mut file.message_type {
        message(nested, visit);
    }
    for nested in &mut file.enum_type {
        enumeration(nested, visit);
    }
    for extension in &mut file.extension {
        if let Some(options) = &mut extension.options {
            visit(&mut options.uninterpreted_option);
        }
    }
    for service in &mut file.service {
        if let Some(options) = &mut service.options {
            visit(&mut options.uninterpreted_option);
        }
        for method in &mut service.method {
            if let Some(options) = &mut method.options {
                visit(&mut options.uninterpreted_option);
            }
        }
    }
}

/// A name for the schema's own file that no reference uses.
fn main_file_name(dependencies: &[Dependency]) -> String {
    let mut name = MAIN_FILE_NAME.to_owned();
    let mut suffix = 0;
    while dependencies
        .iter()
        .any(|dependency| dependency.name == name)
    {
        suffix += 1;
        name = format!("schema_{suffix}.proto");
    }
    name
}

/// Parses one file: as source, or failing that as a base64 `FileDescriptorProto`.
fn load_file(name: &str, text: &str) -> Result<File, SchemaError> {
    match File::from_source(name, text) {
        Ok(file) => Ok(file),
        Err(source_error) => {
            decode_descriptor(name, text).ok_or_else(|| compile_error(source_error))
        }
    }
}

/// Decodes a base64 `FileDescriptorProto`, renamed to `name` (the import path the referencing
/// file uses) and without source locations. Goes through a dynamic message so that custom
/// options, unknown to `prost_types`, are kept.
fn decode_descriptor(name: &str, text: &str) -> Option<File> {
    let bytes = BASE64.decode(text.trim()).ok()?;
    let mut descriptor = DynamicMessage::decode(
        FileDescriptorProto::default().descriptor(),
        bytes.as_slice(),
    )
    .ok()?;
    descriptor.set_field_by_name("name", Value::String(name.to_owned()));
    descriptor.clear_field_by_name("source_code_info");
    File::decode_file_descriptor_proto(descriptor.encode_to_vec().as_slice()).ok()
}

fn compile_error(error: protox::Error) -> SchemaError {
    let hint = if error.is_file_not_found() {
        "; register the imported file and pass it as a schema reference"
    } else {
        ""
    };
    // protox's Debug form is `file:line:column: message`, its Display only the message.
    SchemaError(format!("invalid protobuf schema: {error:?}{hint}"))
}

/// The file's descriptor bytes (custom options included) without `source_code_info`.
fn encode_without_source_info(file: &FileDescriptor) -> Vec<u8> {
    let bytes = file.encode_to_vec();
    match DynamicMessage::decode(
        FileDescriptorProto::default().descriptor(),
        bytes.as_slice(),
    ) {
        Ok(mut descriptor) => {
            descriptor.clear_field_by_name("source_code_info");
            descriptor.encode_to_vec()
        }
        Err(_) => {
            // The pool encoded these bytes itself, so this does not happen; fall back to the
            // prost form, which only lacks custom options.
            let mut descriptor = file.file_descriptor_proto().clone();
            descriptor.source_code_info = None;
            descriptor.encode_to_vec()
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Canonical text

/// Prints descriptors back as `.proto` source, each element as a list of lines.
struct Printer {
    normalize: bool,
    proto3: bool,
}

/// What printing a field or an extension needs.
struct FieldParts<'a> {
    proto: &'a FieldDescriptorProto,
    kind: Kind,
    is_map: bool,
    is_group: bool,
    options: DynamicMessage,
    in_oneof: bool,
}

impl Printer {
    fn file(&self, file: &FileDescriptor) -> String {
        let proto = file.file_descriptor_proto();
        let mut header = vec![format!(
            "syntax = \"{}\";",
            if self.proto3 { "proto3" } else { "proto2" }
        )];
        if !proto.package().is_empty() {
            header.push(format!("package {};", proto.package()));
        }

        let groups = group_types(file.extensions().map(|e| (e.is_group(), e.kind())));
        let mut types = Vec::new();
        for message in file.messages() {
            if !groups.contains(message.full_name()) {
                types.extend(self.message(&message));
            }
        }
        for enumeration in file.enums() {
            types.extend(self.enumeration(&enumeration));
        }
        let mut services = Vec::new();
        for service in file.services() {
            services.extend(self.service(&service));
        }

        let lines = join_sections(vec![
            header,
            self.imports(proto),
            self.option_statements(&file.options()),
            types,
            self.extends(file.extensions().collect()),
            services,
        ]);
        let mut text = lines.join("\n");
        text.push('\n');
        text
    }

    fn imports(&self, proto: &FileDescriptorProto) -> Vec<String> {
        let public: HashSet<usize> = proto
            .public_dependency
            .iter()
            .filter_map(|&i| usize::try_from(i).ok())
            .collect();
        let weak: HashSet<usize> = proto
            .weak_dependency
            .iter()
            .filter_map(|&i| usize::try_from(i).ok())
            .collect();
        let mut lines: Vec<String> = proto
            .dependency
            .iter()
            .enumerate()
            .map(|(i, name)| {
                let modifier = if public.contains(&i) {
                    "public "
                } else if weak.contains(&i) {
                    "weak "
                } else {
                    ""
                };
                format!("import {modifier}{};", quote(name.as_bytes()))
            })
            .collect();
        if self.normalize {
            lines.sort();
            lines.dedup();
        }
        lines
    }

    fn message(&self, message: &MessageDescriptor) -> Vec<String> {
        wrap(
            format!("message {}", message.name()),
            self.message_body(message),
        )
    }

    /// The sections of a message's body: reserved, options, fields, extension ranges, nested
    /// `extend`s, nested types.
    fn message_body(&self, message: &MessageDescriptor) -> Vec<Vec<String>> {
        let proto = message.descriptor_proto();
        let reserved_ranges = message
            .reserved_ranges()
            .map(|r| (i64::from(r.start), i64::from(r.end) - 1))
            .collect();
        let mut sections = vec![
            self.reserved(reserved_ranges, message.reserved_names().collect()),
            self.option_statements(&message.options()),
        ];

        let fields: Vec<FieldDescriptor> = proto
            .field
            .iter()
            .filter_map(|f| message.get_field(u32::try_from(f.number()).ok()?))
            .collect();
        if self.normalize {
            let mut plain: Vec<&FieldDescriptor> =
                fields.iter().filter(|f| real_oneof(f).is_none()).collect();
            plain.sort_by_key(|f| f.number());
            sections.push(plain.iter().flat_map(|f| self.field(f, false)).collect());
            let mut oneofs: Vec<(u32, OneofDescriptor)> = message
                .oneofs()
                .filter(|o| !o.is_synthetic())
                .filter_map(|o| Some((o.fields().map(|f| f.number()).min()?, o)))
                .collect();
            oneofs.sort_by_key(|(first, _)| *first);
            sections.push(oneofs.iter().flat_map(|(_, o)| self.oneof(o)).collect());
        } else {
            // Declaration order, each oneof where its first field was declared.
            let mut lines = Vec::new();
            let mut printed_oneofs = HashSet::new();
            for field in &fields {
                match real_oneof(field) {
                    Some(oneof) => {
                        if printed_oneofs.insert(oneof.name().to_owned()) {
                            lines.extend(self.oneof(&oneof));
                        }
                    }
                    None => lines.extend(self.field(field, false)),
                }
            }
            sections.push(lines);
        }

        let mut extension_ranges: Vec<(i64, i64)> = message
            .extension_ranges()
            .map(|r| (i64::from(r.start), i64::from(r.end) - 1))
            .collect();
        if !extension_ranges.is_empty() {
            if self.normalize {
                extension_ranges.sort_unstable();
            }
            let ranges: Vec<String> = extension_ranges.iter().map(range_text).collect();
            sections.push(vec![format!("extensions {};", ranges.join(", "))]);
        }
        sections.push(self.extends(message.child_extensions().collect()));

        let groups = group_types(
            message
                .fields()
                .map(|f| (f.is_group(), f.kind()))
                .chain(message.child_extensions().map(|e| (e.is_group(), e.kind()))),
        );
        let mut nested = Vec::new();
        for child in message.child_messages() {
            if !child.is_map_entry() && !groups.contains(child.full_name()) {
                nested.extend(self.message(&child));
            }
        }
        for enumeration in message.child_enums() {
            nested.extend(self.enumeration(&enumeration));
        }
        sections.push(nested);
        sections
    }

    fn oneof(&self, oneof: &OneofDescriptor) -> Vec<String> {
        let mut fields: Vec<FieldDescriptor> = oneof.fields().collect();
        if self.normalize {
            fields.sort_by_key(|f| f.number());
        }
        let body = fields.iter().flat_map(|f| self.field(f, true)).collect();
        wrap(
            format!("oneof {}", oneof.name()),
            vec![self.option_statements(&oneof.options()), body],
        )
    }

    fn field(&self, field: &FieldDescriptor, in_oneof: bool) -> Vec<String> {
        self.field_parts(FieldParts {
            proto: field.field_descriptor_proto(),
            kind: field.kind(),
            is_map: field.is_map(),
            is_group: field.is_group(),
            options: field.options(),
            in_oneof,
        })
    }

    fn extension(&self, extension: &ExtensionDescriptor) -> Vec<String> {
        self.field_parts(FieldParts {
            proto: extension.field_descriptor_proto(),
            kind: extension.kind(),
            is_map: false,
            is_group: extension.is_group(),
            options: extension.options(),
            in_oneof: false,
        })
    }

    fn field_parts(&self, field: FieldParts<'_>) -> Vec<String> {
        let proto = field.proto;
        let label = if field.in_oneof || field.is_map {
            ""
        } else {
            match proto.label() {
                ProtoLabel::Repeated => "repeated ",
                ProtoLabel::Required => "required ",
                ProtoLabel::Optional => {
                    if !self.proto3 || proto.proto3_optional() {
                        "optional "
                    } else {
                        ""
                    }
                }
            }
        };
        let (type_text, name) = match (&field.kind, field.is_map, field.is_group) {
            (Kind::Message(entry), true, _) => (
                format!(
                    "map<{}, {}>",
                    type_name(&entry.map_entry_key_field().kind()),
                    type_name(&entry.map_entry_value_field().kind())
                ),
                proto.name().to_owned(),
            ),
            (Kind::Message(group), _, true) => ("group".to_owned(), group.name().to_owned()),
            (kind, _, _) => (type_name(kind), proto.name().to_owned()),
        };

        let mut entries = Vec::new();
        if let Some(default) = &proto.default_value {
            entries.push(("default".to_owned(), default_text(default, &field.kind)));
        }
        if let Some(json_name) = &proto.json_name {
            if *json_name != default_json_name(proto.name()) {
                entries.push(("json_name".to_owned(), quote(json_name.as_bytes())));
            }
        }
        entries.extend(self.option_entries(&field.options));
        if self.normalize {
            entries.sort_by(|a, b| a.0.cmp(&b.0));
        }

        let head = format!(
            "{label}{type_text} {name} = {}{}",
            proto.number(),
            bracketed(&entries)
        );
        match (&field.kind, field.is_group) {
            (Kind::Message(group), true) => wrap(head, self.message_body(group)),
            _ => vec![format!("{head};")],
        }
    }

    fn enumeration(&self, enumeration: &EnumDescriptor) -> Vec<String> {
        let reserved_ranges = enumeration
            .reserved_ranges()
            .map(|r| (i64::from(*r.start()), i64::from(*r.end())))
            .collect();
        // `values()` runs in number order; the path's last element is the declaration index.
        let mut values: Vec<_> = enumeration.values().collect();
        values.sort_by_key(|value| value.path().last().copied());
        if self.normalize && values.len() > 1 {
            // The first value is the enum's default (and must be zero in proto3): it stays.
            values[1..].sort_by(|a, b| {
                a.number()
                    .cmp(&b.number())
                    .then_with(|| a.name().cmp(b.name()))
            });
        }
        let value_lines = values
            .iter()
            .map(|value| {
                let entries = self.option_entries(&value.options());
                format!(
                    "{} = {}{};",
                    value.name(),
                    value.number(),
                    bracketed(&entries)
                )
            })
            .collect();
        wrap(
            format!("enum {}", enumeration.name()),
            vec![
                self.reserved(reserved_ranges, enumeration.reserved_names().collect()),
                self.option_statements(&enumeration.options()),
                value_lines,
            ],
        )
    }

    fn service(&self, service: &ServiceDescriptor) -> Vec<String> {
        let mut methods = Vec::new();
        for method in service.methods() {
            let head = format!(
                "rpc {} ({}.{}) returns ({}.{})",
                method.name(),
                if method.is_client_streaming() {
                    "stream "
                } else {
                    ""
                },
                method.input().full_name(),
                if method.is_server_streaming() {
                    "stream "
                } else {
                    ""
                },
                method.output().full_name()
            );
            let options = self.option_statements(&method.options());
            if options.is_empty() {
                methods.push(format!("{head};"));
            } else {
                methods.extend(wrap(head, vec![options]));
            }
        }
        wrap(
            format!("service {}", service.name()),
            vec![self.option_statements(&service.options()), methods],
        )
    }

    /// `extend` blocks, one per run of extensions of the same message.
    fn extends(&self, mut extensions: Vec<ExtensionDescriptor>) -> Vec<String> {
        if self.normalize {
            extensions.sort_by(|a, b| {
                a.containing_message()
                    .full_name()
                    .cmp(b.containing_message().full_name())
                    .then_with(|| a.number().cmp(&b.number()))
            });
        }
        let mut lines = Vec::new();
        let mut rest = extensions.as_slice();
        while let Some(first) = rest.first() {
            let extendee = first.containing_message();
            let run = rest
                .iter()
                .take_while(|e| e.containing_message().full_name() == extendee.full_name())
                .count();
            let body = rest[..run].iter().flat_map(|e| self.extension(e)).collect();
            lines.extend(wrap(
                format!("extend .{}", extendee.full_name()),
                vec![body],
            ));
            rest = &rest[run..];
        }
        lines
    }

    /// `reserved` statements; ranges are inclusive.
    fn reserved(&self, mut ranges: Vec<(i64, i64)>, mut names: Vec<&str>) -> Vec<String> {
        if self.normalize {
            ranges.sort_unstable();
            names.sort_unstable();
            ranges
                .iter()
                .map(|r| format!("reserved {};", range_text(r)))
                .chain(
                    names
                        .iter()
                        .map(|n| format!("reserved {};", quote(n.as_bytes()))),
                )
                .collect()
        } else {
            let mut lines = Vec::new();
            if !ranges.is_empty() {
                let ranges: Vec<String> = ranges.iter().map(range_text).collect();
                lines.push(format!("reserved {};", ranges.join(", ")));
            }
            if !names.is_empty() {
                let names: Vec<String> = names.iter().map(|n| quote(n.as_bytes())).collect();
                lines.push(format!("reserved {};", names.join(", ")));
            }
            lines
        }
    }

    fn option_statements(&self, options: &DynamicMessage) -> Vec<String> {
        self.option_entries(options)
            .into_iter()
            .map(|(name, value)| format!("option {name} = {value};"))
            .collect()
    }

    /// `(name, value)` for every option set: standard ones by number, then extensions by
    /// number, or everything by name when normalising. A repeated option gives one entry per
    /// value.
    fn option_entries(&self, options: &DynamicMessage) -> Vec<(String, String)> {
        let mut entries = Vec::new();
        for (field, value) in options.fields() {
            if field.number() != UNINTERPRETED_OPTION_NUMBER {
                push_option_entries(&mut entries, field.name(), &field.kind(), value);
            }
        }
        for (extension, value) in options.extensions() {
            let name = format!("(.{})", extension.full_name());
            push_option_entries(&mut entries, &name, &extension.kind(), value);
        }
        if self.normalize {
            entries.sort_by(|a, b| a.0.cmp(&b.0));
        }
        entries
    }
}

fn push_option_entries(
    entries: &mut Vec<(String, String)>,
    name: &str,
    kind: &Kind,
    value: &Value,
) {
    match value {
        Value::List(items) => {
            entries.extend(
                items
                    .iter()
                    .map(|item| (name.to_owned(), value_text(item, kind))),
            );
        }
        Value::Map(map) => {
            let mut pairs: Vec<_> = map.iter().collect();
            pairs.sort_by(|a, b| a.0.cmp(b.0));
            entries.extend(
                pairs
                    .into_iter()
                    .map(|(key, value)| (name.to_owned(), map_entry_text(key, value, kind))),
            );
        }
        _ => entries.push((name.to_owned(), value_text(value, kind))),
    }
}

/// A single option or text-format value.
fn value_text(value: &Value, kind: &Kind) -> String {
    match value {
        Value::Bool(v) => v.to_string(),
        Value::I32(v) => v.to_string(),
        Value::I64(v) => v.to_string(),
        Value::U32(v) => v.to_string(),
        Value::U64(v) => v.to_string(),
        Value::F32(v) => float_text(f64::from(*v), format!("{v:?}")),
        Value::F64(v) => float_text(*v, format!("{v:?}")),
        Value::String(s) => quote(s.as_bytes()),
        Value::Bytes(b) => quote(b),
        Value::EnumNumber(number) => match kind {
            Kind::Enum(enumeration) => enumeration
                .get_value(*number)
                .map(|v| v.name().to_owned())
                .unwrap_or_else(|| number.to_string()),
            _ => number.to_string(),
        },
        Value::Message(message) => text_message(message),
        Value::List(items) => {
            let items: Vec<String> = items.iter().map(|item| value_text(item, kind)).collect();
            format!("[{}]", items.join(", "))
        }
        Value::Map(map) => {
            let mut pairs: Vec<_> = map.iter().collect();
            pairs.sort_by(|a, b| a.0.cmp(b.0));
            let entries: Vec<String> = pairs
                .into_iter()
                .map(|(key, value)| map_entry_text(key, value, kind))
                .collect();
            format!("[{}]", entries.join(", "))
        }
    }
}

/// A finite float as Rust's shortest round-tripping form (`1.0`, `1e20`), else `inf`/`nan`.
fn float_text(value: f64, finite: String) -> String {
    if value.is_nan() {
        "nan".to_owned()
    } else if value.is_infinite() {
        if value < 0.0 { "-inf" } else { "inf" }.to_owned()
    } else {
        finite
    }
}

/// A message value in the protobuf text format, on one line, map entries sorted by key.
fn text_message(message: &DynamicMessage) -> String {
    let mut parts = Vec::new();
    for (field, value) in message.fields() {
        let name = match (field.is_group(), field.kind()) {
            (true, Kind::Message(group)) => group.name().to_owned(),
            _ => field.name().to_owned(),
        };
        push_text_field(&mut parts, &name, &field.kind(), value);
    }
    for (extension, value) in message.extensions() {
        let name = format!("[{}]", extension.full_name());
        push_text_field(&mut parts, &name, &extension.kind(), value);
    }
    if parts.is_empty() {
        "{}".to_owned()
    } else {
        format!("{{ {} }}", parts.join(" "))
    }
}

fn push_text_field(parts: &mut Vec<String>, name: &str, kind: &Kind, value: &Value) {
    match value {
        Value::List(items) => parts.extend(items.iter().map(|item| text_single(name, kind, item))),
        Value::Map(map) => {
            let mut pairs: Vec<_> = map.iter().collect();
            pairs.sort_by(|a, b| a.0.cmp(b.0));
            parts.extend(
                pairs
                    .into_iter()
                    .map(|(key, value)| format!("{name} {}", map_entry_text(key, value, kind))),
            );
        }
        _ => parts.push(text_single(name, kind, value)),
    }
}

fn text_single(name: &str, kind: &Kind, value: &Value) -> String {
    match value {
        Value::Message(message) => format!("{name} {}", text_message(message)),
        _ => format!("{name}: {}", value_text(value, kind)),
    }
}

/// One map entry as a text-format message; `kind` is the map field's (entry message) kind.
fn map_entry_text(key: &MapKey, value: &Value, kind: &Kind) -> String {
    let key = match key {
        MapKey::Bool(k) => k.to_string(),
        MapKey::I32(k) => k.to_string(),
        MapKey::I64(k) => k.to_string(),
        MapKey::U32(k) => k.to_string(),
        MapKey::U64(k) => k.to_string(),
        MapKey::String(k) => quote(k.as_bytes()),
    };
    match kind.as_message() {
        Some(entry) => format!(
            "{{ key: {key} {} }}",
            text_single("value", &entry.map_entry_value_field().kind(), value)
        ),
        None => format!("{{ key: {key} }}"),
    }
}

/// A field's `default`, from the descriptor's string form (bytes are C-escaped there).
fn default_text(default: &str, kind: &Kind) -> String {
    match kind {
        Kind::String => quote(default.as_bytes()),
        Kind::Bytes => quote(&unescape_c(default)),
        _ => default.to_owned(),
    }
}

/// Undoes the C escapes protoc and protox use for `bytes` defaults.
fn unescape_c(text: &str) -> Vec<u8> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let byte = bytes[i];
        i += 1;
        if byte != b'\\' || i >= bytes.len() {
            out.push(byte);
            continue;
        }
        let escape = bytes[i];
        i += 1;
        match escape {
            b'n' => out.push(b'\n'),
            b'r' => out.push(b'\r'),
            b't' => out.push(b'\t'),
            b'a' => out.push(0x07),
            b'b' => out.push(0x08),
            b'f' => out.push(0x0c),
            b'v' => out.push(0x0b),
            b'0'..=b'7' => {
                let mut value = u32::from(escape - b'0');
                let mut digits = 1;
                while digits < 3 && i < bytes.len() && (b'0'..=b'7').contains(&bytes[i]) {
                    value = value * 8 + u32::from(bytes[i] - b'0');
                    i += 1;
                    digits += 1;
                }
                out.push((value & 0xff) as u8);
            }
            b'x' | b'X' => {
                let mut value = 0u32;
                let mut digits = 0;
                while digits < 2 && i < bytes.len() && bytes[i].is_ascii_hexdigit() {
                    value = value * 16 + char::from(bytes[i]).to_digit(16).unwrap_or(0);
                    i += 1;
                    digits += 1;
                }
                if digits == 0 {
                    out.push(escape);
                } else {
                    out.push((value & 0xff) as u8);
                }
            }
            other => out.push(other),
        }
    }
    out
}

/// A double-quoted string literal: valid UTF-8 keeps its characters, other bytes and control
/// characters become octal escapes.
fn quote(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() + 2);
    out.push('"');
    let push_byte = |out: &mut String, byte: u8| match byte {
        b'"' => out.push_str("\\\""),
        b'\\' => out.push_str("\\\\"),
        b'\n' => out.push_str("\\n"),
        b'\r' => out.push_str("\\r"),
        b'\t' => out.push_str("\\t"),
        0x20..=0x7e => out.push(char::from(byte)),
        _ => out.push_str(&format!("\\{byte:03o}")),
    };
    match std::str::from_utf8(bytes) {
        Ok(text) => {
            for c in text.chars() {
                match u8::try_from(c) {
                    Ok(byte) => push_byte(&mut out, byte),
                    Err(_) => out.push(c),
                }
            }
        }
        Err(_) => {
            for &byte in bytes {
                push_byte(&mut out, byte);
            }
        }
    }
    out.push('"');
    out
}

/// protoc's default `json_name`: underscores dropped, the letter after each upper-cased.
fn default_json_name(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut upper_next = false;
    for c in name.chars() {
        if c == '_' {
            upper_next = true;
        } else if upper_next {
            out.extend(c.to_uppercase());
            upper_next = false;
        } else {
            out.push(c);
        }
    }
    out
}

fn scalar_name(kind: &Kind) -> Option<&'static str> {
    Some(match kind {
        Kind::Double => "double",
        Kind::Float => "float",
        Kind::Int32 => "int32",
        Kind::Int64 => "int64",
        Kind::Uint32 => "uint32",
        Kind::Uint64 => "uint64",
        Kind::Sint32 => "sint32",
        Kind::Sint64 => "sint64",
        Kind::Fixed32 => "fixed32",
        Kind::Fixed64 => "fixed64",
        Kind::Sfixed32 => "sfixed32",
        Kind::Sfixed64 => "sfixed64",
        Kind::Bool => "bool",
        Kind::String => "string",
        Kind::Bytes => "bytes",
        Kind::Message(_) | Kind::Enum(_) => return None,
    })
}

/// A field type as printed: a scalar keyword or a fully-qualified name with a leading dot.
fn type_name(kind: &Kind) -> String {
    match kind {
        Kind::Message(message) => format!(".{}", message.full_name()),
        Kind::Enum(enumeration) => format!(".{}", enumeration.full_name()),
        scalar => scalar_name(scalar).unwrap_or("bytes").to_owned(),
    }
}

/// The full names of the messages that `group` fields among `fields` define.
fn group_types(fields: impl Iterator<Item = (bool, Kind)>) -> HashSet<String> {
    fields
        .filter_map(|(is_group, kind)| match (is_group, kind) {
            (true, Kind::Message(group)) => Some(group.full_name().to_owned()),
            _ => None,
        })
        .collect()
}

/// The oneof a field belongs to, unless it is proto3 `optional`'s synthetic one.
fn real_oneof(field: &FieldDescriptor) -> Option<OneofDescriptor> {
    field
        .containing_oneof()
        .filter(|oneof| !oneof.is_synthetic())
}

fn range_text(&(start, end): &(i64, i64)) -> String {
    if start == end {
        start.to_string()
    } else {
        format!("{start} to {end}")
    }
}

fn bracketed(entries: &[(String, String)]) -> String {
    if entries.is_empty() {
        return String::new();
    }
    let entries: Vec<String> = entries
        .iter()
        .map(|(name, value)| format!("{name} = {value}"))
        .collect();
    format!(" [{}]", entries.join(", "))
}

/// Non-empty sections, separated by a blank line.
fn join_sections(sections: Vec<Vec<String>>) -> Vec<String> {
    let mut lines = Vec::new();
    for section in sections.into_iter().filter(|s| !s.is_empty()) {
        if !lines.is_empty() {
            lines.push(String::new());
        }
        lines.extend(section);
    }
    lines
}

/// `header { ... }` around the indented, non-empty sections, or `header {}`.
fn wrap(header: String, sections: Vec<Vec<String>>) -> Vec<String> {
    let body = join_sections(sections);
    if body.is_empty() {
        return vec![format!("{header} {{}}")];
    }
    let mut lines = Vec::with_capacity(body.len() + 2);
    lines.push(format!("{header} {{"));
    lines.extend(body.into_iter().map(|line| {
        if line.is_empty() {
            line
        } else {
            format!("  {line}")
        }
    }));
    lines.push("}".to_owned());
    lines
}

// ---------------------------------------------------------------------------------------------
// Compatibility

/// Walks a writer file and a reader file, collecting Confluent's incompatible differences.
struct Checker {
    writer_file: String,
    reader_file: String,
    found: Vec<String>,
    /// Referenced-file message pairs (writer, reader) compared through a field, and whether
    /// they were incompatible; a pair being compared counts as compatible, which ends cycles.
    compared: HashMap<(String, String), bool>,
}

/// A field's label as the compatibility rules see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Label {
    Singular,
    Repeated,
    Required,
}

impl Label {
    fn of(field: &FieldDescriptor) -> Label {
        match field.cardinality() {
            Cardinality::Optional => Label::Singular,
            Cardinality::Repeated => Label::Repeated,
            Cardinality::Required => Label::Required,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Label::Singular => "singular",
            Label::Repeated => "repeated",
            Label::Required => "required",
        }
    }
}

/// Confluent's groups of wire-compatible scalars (`FieldSchemaDiff.ScalarKind`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ScalarGroup {
    GeneralNumber,
    SignedNumber,
    StringOrBytes,
    Fixed32,
    Fixed64,
    Float,
    Double,
}

/// A field's type as the compatibility rules see it (Confluent's `Kind`).
enum FieldType {
    Scalar {
        group: ScalarGroup,
        name: String,
    },
    Message(MessageDescriptor),
    Map {
        key: Box<FieldType>,
        value: Box<FieldType>,
    },
}

impl FieldType {
    fn of(field: &FieldDescriptor) -> FieldType {
        FieldType::from_kind(field.kind(), field.is_map())
    }

    fn from_kind(kind: Kind, is_map: bool) -> FieldType {
        let group = match &kind {
            Kind::Message(entry) if is_map => {
                return FieldType::Map {
                    key: Box::new(FieldType::from_kind(
                        entry.map_entry_key_field().kind(),
                        false,
                    )),
                    value: Box::new(FieldType::from_kind(
                        entry.map_entry_value_field().kind(),
                        false,
                    )),
                };
            }
            Kind::Message(message) => return FieldType::Message(message.clone()),
            Kind::Enum(enumeration) => {
                return FieldType::Scalar {
                    group: ScalarGroup::GeneralNumber,
                    name: format!("enum {}", enumeration.full_name()),
                };
            }
            Kind::Int32 | Kind::Int64 | Kind::Uint32 | Kind::Uint64 | Kind::Bool => {
                ScalarGroup::GeneralNumber
            }
            Kind::Sint32 | Kind::Sint64 => ScalarGroup::SignedNumber,
            Kind::String | Kind::Bytes => ScalarGroup::StringOrBytes,
            Kind::Fixed32 | Kind::Sfixed32 => ScalarGroup::Fixed32,
            Kind::Fixed64 | Kind::Sfixed64 => ScalarGroup::Fixed64,
            Kind::Float => ScalarGroup::Float,
            Kind::Double => ScalarGroup::Double,
        };
        FieldType::Scalar {
            group,
            name: type_name(&kind),
        }
    }

    fn describe(&self) -> String {
        match self {
            FieldType::Scalar { name, .. } => format!("scalar {name}"),
            FieldType::Message(message) => format!("message {}", message.full_name()),
            FieldType::Map { key, value } => {
                format!("map<{}, {}>", key.short_name(), value.short_name())
            }
        }
    }

    fn short_name(&self) -> String {
        match self {
            FieldType::Scalar { name, .. } => name.clone(),
            FieldType::Message(message) => message.full_name().to_owned(),
            FieldType::Map { .. } => "map".to_owned(),
        }
    }
}

/// A message's fields by number, split by oneof membership (proto3 `optional` counts as plain).
#[derive(Default)]
struct FieldLayout {
    plain: BTreeMap<u32, FieldDescriptor>,
    all: BTreeMap<u32, FieldDescriptor>,
    oneof_of: BTreeMap<u32, String>,
    oneofs: BTreeMap<String, Vec<FieldDescriptor>>,
}

impl FieldLayout {
    fn of(message: &MessageDescriptor) -> FieldLayout {
        let mut layout = FieldLayout::default();
        for field in message.fields() {
            let number = field.number();
            match real_oneof(&field) {
                Some(oneof) => {
                    layout.oneof_of.insert(number, oneof.name().to_owned());
                    layout
                        .oneofs
                        .entry(oneof.name().to_owned())
                        .or_default()
                        .push(field.clone());
                }
                None => {
                    layout.plain.insert(number, field.clone());
                }
            }
            layout.all.insert(number, field);
        }
        layout
    }
}

/// A message's name inside its package (`Outer.Inner`).
fn local_name(message: &MessageDescriptor) -> &str {
    let package = message.package_name();
    if package.is_empty() {
        return message.full_name();
    }
    message
        .full_name()
        .strip_prefix(package)
        .and_then(|rest| rest.strip_prefix('.'))
        .unwrap_or(message.full_name())
}

fn field_subject(writer: &FieldDescriptor, reader: &FieldDescriptor) -> String {
    if writer.name() == reader.name() {
        format!("field {} (number {})", reader.full_name(), reader.number())
    } else {
        format!(
            "field {} (number {}, named {} in the writer)",
            reader.full_name(),
            reader.number(),
            writer.name()
        )
    }
}

impl Checker {
    fn report(&mut self, difference: &str, path: &str, detail: String) {
        self.found.push(format!("{difference} at {path}: {detail}"));
    }

    fn compare_files(&mut self, writer: &FileDescriptor, reader: &FileDescriptor) {
        if writer.package_name() != reader.package_name() {
            self.report(
                "PACKAGE_CHANGED",
                "#/",
                format!(
                    "the reader's package '{}' differs from the writer's package '{}'",
                    reader.package_name(),
                    writer.package_name()
                ),
            );
        }
        self.compare_message_lists(writer.messages(), reader.messages(), "#");
    }

    /// Matches messages by name (map entries aside) and compares each pair.
    fn compare_message_lists(
        &mut self,
        writer: impl Iterator<Item = MessageDescriptor>,
        reader: impl Iterator<Item = MessageDescriptor>,
        parent_path: &str,
    ) {
        let reader: HashMap<String, MessageDescriptor> = reader
            .filter(|m| !m.is_map_entry())
            .map(|m| (m.name().to_owned(), m))
            .collect();
        for writer_message in writer.filter(|m| !m.is_map_entry()) {
            let path = format!("{parent_path}/{}", writer_message.name());
            match reader.get(writer_message.name()) {
                Some(reader_message) => {
                    self.compare_message(&writer_message, reader_message, &path)
                }
                None => self.report(
                    "MESSAGE_REMOVED",
                    &path,
                    format!(
                        "the reader has no message {}, which the writer has",
                        local_name(&writer_message)
                    ),
                ),
            }
        }
    }

    /// Confluent's `MessageSchemaDiff`: oneof moves, oneof members, plain fields, fields that
    /// changed oneof membership, then nested messages.
    fn compare_message(
        &mut self,
        writer: &MessageDescriptor,
        reader: &MessageDescriptor,
        path: &str,
    ) {
        let writer_fields = FieldLayout::of(writer);
        let reader_fields = FieldLayout::of(reader);
        let mut writer_plain = writer_fields.plain.clone();

        for (oneof, fields) in &reader_fields.oneofs {
            let mut moved = Vec::new();
            let mut already_in_oneof = 0;
            for field in fields {
                if let Some(writer_field) = writer_plain.remove(&field.number()) {
                    moved.push(writer_field);
                } else if writer_fields.oneof_of.contains_key(&field.number()) {
                    already_in_oneof += 1;
                }
            }
            let oneof_path = format!("{path}/{oneof}");
            if moved.len() > 1 {
                let names: Vec<String> = moved
                    .iter()
                    .map(|f| format!("{} (number {})", f.name(), f.number()))
                    .collect();
                self.report(
                    "MULTIPLE_FIELDS_MOVED_TO_ONEOF",
                    &oneof_path,
                    format!(
                        "fields {} of message {} are outside any oneof in the writer but share oneof {oneof} in the reader, which keeps only one of their values",
                        names.join(", "),
                        reader.full_name()
                    ),
                );
            } else if let [field] = moved.as_slice() {
                if already_in_oneof > 0 {
                    self.report(
                        "FIELD_MOVED_TO_EXISTING_ONEOF",
                        &oneof_path,
                        format!(
                            "field {} (number {}) is outside any oneof in the writer but joins oneof {oneof} in the reader, whose other fields the writer already has in a oneof",
                            field.full_name(),
                            field.number()
                        ),
                    );
                }
            }
        }

        for (oneof, writer_members) in &writer_fields.oneofs {
            let Some(reader_members) = reader_fields.oneofs.get(oneof) else {
                continue; // ONEOF_REMOVED is compatible
            };
            for writer_field in writer_members {
                let number = writer_field.number();
                let field_path = format!("{path}/{oneof}/{number}");
                match reader_members.iter().find(|f| f.number() == number) {
                    Some(reader_field) => {
                        self.compare_field(writer_field, reader_field, &field_path);
                    }
                    None if !reader_fields.all.contains_key(&number) => self.report(
                        "ONEOF_FIELD_REMOVED",
                        &field_path,
                        format!(
                            "the reader has no field {number}, which the writer has as {} in oneof {oneof}",
                            writer_field.full_name()
                        ),
                    ),
                    None => {} // moved elsewhere: compared below
                }
            }
        }

        let numbers: BTreeSet<u32> = writer_plain
            .keys()
            .chain(reader_fields.plain.keys())
            .copied()
            .collect();
        for number in numbers {
            let field_path = format!("{path}/{number}");
            match (writer_plain.get(&number), reader_fields.plain.get(&number)) {
                (Some(writer_field), Some(reader_field)) => {
                    self.compare_field(writer_field, reader_field, &field_path);
                }
                (Some(writer_field), None) if Label::of(writer_field) == Label::Required => self
                    .report(
                        "REQUIRED_FIELD_REMOVED",
                        &field_path,
                        format!(
                            "the reader has no field {number}, which the writer has as required field {}",
                            writer_field.full_name()
                        ),
                    ),
                (None, Some(reader_field)) if Label::of(reader_field) == Label::Required => self
                    .report(
                        "REQUIRED_FIELD_ADDED",
                        &field_path,
                        format!(
                            "the reader requires field {} (number {number}), which the writer does not have",
                            reader_field.full_name()
                        ),
                    ),
                _ => {} // FIELD_ADDED and FIELD_REMOVED are compatible
            }
        }

        for (number, writer_field) in &writer_fields.all {
            let Some(reader_field) = reader_fields.all.get(number) else {
                continue;
            };
            let same_place = match (
                writer_fields.oneof_of.get(number),
                reader_fields.oneof_of.get(number),
            ) {
                (None, None) => true,
                (Some(writer_oneof), Some(reader_oneof)) => writer_oneof == reader_oneof,
                _ => false,
            };
            if !same_place {
                self.compare_field(writer_field, reader_field, &format!("{path}/{number}"));
            }
        }

        self.compare_message_lists(writer.child_messages(), reader.child_messages(), path);
    }

    /// Confluent's `FieldSchemaDiff`; renaming a field is compatible.
    fn compare_field(&mut self, writer: &FieldDescriptor, reader: &FieldDescriptor, path: &str) {
        let subject = field_subject(writer, reader);
        self.compare_types(
            &FieldType::of(writer),
            &FieldType::of(reader),
            Some((Label::of(writer), Label::of(reader))),
            path,
            &subject,
        );
    }

    fn compare_types(
        &mut self,
        writer: &FieldType,
        reader: &FieldType,
        labels: Option<(Label, Label)>,
        path: &str,
        subject: &str,
    ) {
        match (writer, reader) {
            (
                FieldType::Scalar {
                    group: writer_group,
                    name: writer_name,
                },
                FieldType::Scalar {
                    group: reader_group,
                    name: reader_name,
                },
            ) => {
                if writer_group != reader_group {
                    self.report(
                        "FIELD_SCALAR_KIND_CHANGED",
                        path,
                        format!(
                            "{subject} is {reader_name} in the reader but {writer_name} in the writer, and their wire encodings are not compatible"
                        ),
                    );
                } else if let Some((writer_label, reader_label)) = labels {
                    if writer_label != reader_label && *writer_group != ScalarGroup::StringOrBytes {
                        self.report(
                            "FIELD_NUMERIC_LABEL_CHANGED",
                            path,
                            format!(
                                "{subject} is {} in the reader but {} in the writer; a numeric field cannot change between singular, repeated and required",
                                reader_label.name(),
                                writer_label.name()
                            ),
                        );
                    }
                }
            }
            (FieldType::Message(writer_message), FieldType::Message(reader_message)) => {
                self.compare_named_types(writer_message, reader_message, path, subject);
            }
            (
                FieldType::Map {
                    key: writer_key,
                    value: writer_value,
                },
                FieldType::Map {
                    key: reader_key,
                    value: reader_value,
                },
            ) => {
                let key_subject = format!("the map key of {subject}");
                self.compare_types(writer_key, reader_key, None, path, &key_subject);
                let value_subject = format!("the map value of {subject}");
                self.compare_types(writer_value, reader_value, None, path, &value_subject);
            }
            _ => self.report(
                "FIELD_KIND_CHANGED",
                path,
                format!(
                    "{subject} is a {} in the reader but a {} in the writer",
                    reader.describe(),
                    writer.describe()
                ),
            ),
        }
    }

    /// A message-typed field: the type's name inside its package must stay; a type from a
    /// referenced file is compared structurally (the file's own types are compared by the
    /// file walk).
    fn compare_named_types(
        &mut self,
        writer: &MessageDescriptor,
        reader: &MessageDescriptor,
        path: &str,
        subject: &str,
    ) {
        let writer_local = local_name(writer).to_owned();
        if writer_local != local_name(reader) {
            self.report(
                "FIELD_NAMED_TYPE_CHANGED",
                path,
                format!(
                    "{subject} has type {} in the reader but {} in the writer",
                    reader.full_name(),
                    writer.full_name()
                ),
            );
            return;
        }
        if writer.parent_file().name() == self.writer_file
            && reader.parent_file().name() == self.reader_file
        {
            return;
        }
        let key = (writer.full_name().to_owned(), reader.full_name().to_owned());
        let incompatible = match self.compared.get(&key) {
            Some(&known) => known,
            None => {
                self.compared.insert(key.clone(), false);
                let before = self.found.len();
                self.compare_message(writer, reader, &format!("#/{writer_local}"));
                let incompatible = self.found.len() > before;
                self.compared.insert(key, incompatible);
                incompatible
            }
        };
        if incompatible {
            self.report(
                "FIELD_NAMED_TYPE_CHANGED",
                path,
                format!(
                    "{subject} has type {} in the reader, which cannot read the writer's {} (see the differences at #/{writer_local})",
                    reader.full_name(),
                    writer.full_name()
                ),
            );
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Payloads

/// Splits Confluent's message-index list off the front of a payload.
fn read_message_indexes(payload: &[u8]) -> Result<(Vec<i32>, &[u8]), String> {
    let mut rest = payload;
    let count = read_zigzag_varint(&mut rest)?;
    if count == 0 {
        return Ok((vec![0], rest));
    }
    let count = usize::try_from(count)
        .ok()
        .filter(|&count| count <= MAX_MESSAGE_INDEXES)
        .ok_or_else(|| {
            format!("message-index count {count} is not between 0 and {MAX_MESSAGE_INDEXES}")
        })?;
    let mut indexes = Vec::with_capacity(count);
    for _ in 0..count {
        indexes.push(read_zigzag_varint(&mut rest)?);
    }
    Ok((indexes, rest))
}

/// A zigzag-encoded 32-bit varint (Kafka's `ByteUtils.readVarint`), at most 5 bytes.
fn read_zigzag_varint(buf: &mut &[u8]) -> Result<i32, String> {
    let mut raw: u32 = 0;
    for shift in (0..35).step_by(7) {
        let (&byte, rest) = buf
            .split_first()
            .ok_or_else(|| "payload ends inside its message-index list".to_owned())?;
        *buf = rest;
        raw |= u32::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Ok(((raw >> 1) as i32) ^ -((raw & 1) as i32));
        }
    }
    Err("a message index in the payload is longer than 5 bytes".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> ProtobufSchema {
        ProtobufSchema::parse(text, &[], false).expect("schema parses")
    }

    fn parse_err(text: &str, dependencies: &[Dependency]) -> String {
        ProtobufSchema::parse(text, dependencies, false)
            .expect_err("refused")
            .0
    }

    fn dependency(name: &str, text: &str) -> Dependency {
        Dependency {
            name: name.to_owned(),
            text: text.to_owned(),
        }
    }

    /// The base64 descriptor confluent-kafka's Python client would register for `source`,
    /// built with protox and prost as protoc would build it.
    fn descriptor_base64(name: &str, source: &str, dependencies: &[Dependency]) -> String {
        let set = compile(name, source, dependencies).file_descriptor_set();
        let file = set
            .file
            .iter()
            .find(|f| f.name() == name)
            .expect("compiled file in the set");
        BASE64.encode(file.encode_to_vec())
    }

    /// As [`descriptor_base64`], keeping custom options, which `prost_types` cannot hold (protoc
    /// keeps them as extensions of the options messages).
    fn descriptor_base64_with_custom_options(name: &str, source: &str) -> String {
        let pool = compile(name, source, &[]).descriptor_pool();
        BASE64.encode(encode_without_source_info(
            &pool
                .get_file_by_name(name)
                .expect("compiled file in the pool"),
        ))
    }

    fn compile(name: &str, source: &str, dependencies: &[Dependency]) -> protox::Compiler {
        let mut files: HashMap<String, File> = dependencies
            .iter()
            .map(|d| {
                (
                    d.name.clone(),
                    File::from_source(&d.name, &d.text).expect("test source parses"),
                )
            })
            .collect();
        files.insert(
            name.to_owned(),
            File::from_source(name, source).expect("test source parses"),
        );
        let mut compiler = protox::Compiler::with_file_resolver(MemoryResolver {
            files: Arc::new(files),
            google: GoogleFileResolver::new(),
        });
        compiler.open_file(name).expect("test source compiles");
        compiler
    }

    /// Reader-can-read-writer differences for two schema texts.
    fn diff(reader: &str, writer: &str) -> Vec<String> {
        ProtobufSchema::incompatibilities(&parse(reader), &parse(writer))
    }

    fn assert_one(differences: &[String], kind: &str) {
        assert!(
            differences.iter().any(|d| d.starts_with(kind)),
            "expected {kind} in {differences:#?}"
        );
    }

    const USER: &str = r#"
        syntax = "proto3";
        package acme.v1;

        import "google/protobuf/timestamp.proto";

        option java_package = "com.acme";
        option java_multiple_files = true;

        // A user.
        message User {
          reserved 9, 20 to 25;
          reserved "legacy";
          string name = 1;
          int32 age = 2 [deprecated = true];
          map<string, Address> addresses = 3;
          oneof contact {
            string email = 4;
            string phone = 5;
          }
          optional bool active = 6;
          repeated Role roles = 7;
          google.protobuf.Timestamp created = 8 [json_name = "createdAt"];
          message Address {
            string street = 1;
            Kind kind = 2;
            enum Kind { KIND_UNSPECIFIED = 0; HOME = 1; WORK = 2; }
          }
        }

        enum Role {
          option allow_alias = true;
          ROLE_UNSPECIFIED = 0;
          ADMIN = 1;
          SUPERUSER = 1;
        }

        service Users {
          rpc Get (User) returns (stream User);
        }
    "#;

    #[test]
    fn source_and_base64_forms_canonicalise_equal() {
        let from_source = parse(USER);
        let encoded = descriptor_base64("acme/user.proto", USER, &[]);
        let from_descriptor = parse(&encoded);
        assert_eq!(from_source.canonical(), from_descriptor.canonical());

        let normalized_source = ProtobufSchema::parse(USER, &[], true).expect("schema parses");
        let normalized_descriptor =
            ProtobufSchema::parse(&encoded, &[], true).expect("schema parses");
        assert_eq!(
            normalized_source.canonical(),
            normalized_descriptor.canonical()
        );
    }

    #[test]
    fn canonical_text_is_proto_source_that_reparses_to_itself() {
        for normalize in [false, true] {
            let first = ProtobufSchema::parse(USER, &[], normalize).expect("schema parses");
            let second =
                ProtobufSchema::parse(first.canonical(), &[], normalize).expect("schema parses");
            assert_eq!(
                first.canonical(),
                second.canonical(),
                "{}",
                first.canonical()
            );
        }
        let canonical = parse(USER).canonical().to_owned();
        assert!(canonical.starts_with("syntax = \"proto3\";\npackage acme.v1;\n"));
        assert!(canonical.contains("map<string, .acme.v1.User.Address> addresses = 3;"));
        assert!(canonical.contains("optional bool active = 6;"));
        assert!(
            canonical
                .contains(".google.protobuf.Timestamp created = 8 [json_name = \"createdAt\"];")
        );
        assert!(canonical.contains("oneof contact {"));
        assert!(canonical.contains("reserved 9, 20 to 25;"));
        assert!(canonical.contains("rpc Get (.acme.v1.User) returns (stream .acme.v1.User);"));
        assert!(!canonical.contains("AddressesEntry"));
        assert!(!canonical.contains("_active"));
    }

    #[test]
    fn whitespace_and_comments_do_not_change_the_canonical_text() {
        let compact = "syntax=\"proto3\";package p;message M{string a=1;int64 b=2;}";
        let spread = r#"
            // leading comment
            syntax = "proto3";

            package p;   /* block comment */

            message M {
                string a = 1;  // trailing comment
                int64  b = 2;
            }
        "#;
        assert_eq!(parse(compact).canonical(), parse(spread).canonical());
    }

    #[test]
    fn normalize_orders_fields_by_number_and_options_by_name() {
        let a = r#"syntax = "proto3";
            option java_package = "x"; option go_package = "y";
            message M { int32 b = 2; int32 a = 1; oneof o { string d = 4; string c = 3; } }"#;
        let b = r#"syntax = "proto3";
            option go_package = "y"; option java_package = "x";
            message M { oneof o { string c = 3; string d = 4; } int32 a = 1; int32 b = 2; }"#;
        let normalized_a = ProtobufSchema::parse(a, &[], true).expect("schema parses");
        let normalized_b = ProtobufSchema::parse(b, &[], true).expect("schema parses");
        assert_eq!(normalized_a.canonical(), normalized_b.canonical());
        assert_ne!(parse(a).canonical(), parse(b).canonical());
        let text = normalized_a.canonical();
        assert!(
            text.find("go_package").expect("text present")
                < text.find("java_package").expect("text present")
        );
        assert!(
            text.find("int32 a = 1").expect("text present")
                < text.find("int32 b = 2").expect("text present")
        );
        assert!(
            text.find("string c = 3").expect("text present")
                < text.find("string d = 4").expect("text present")
        );
    }

    #[test]
    fn imports_resolve_through_dependencies_in_either_form() {
        let other = "syntax = \"proto3\"; package other; message Other { string id = 1; }";
        let main = r#"syntax = "proto3"; import "other.proto";
            message M { other.Other o = 1; }"#;
        let schema = ProtobufSchema::parse(main, &[dependency("other.proto", other)], false)
            .expect("schema parses");
        assert!(schema.canonical().contains("import \"other.proto\";"));
        assert!(schema.canonical().contains(".other.Other o = 1;"));

        let other_base64 = descriptor_base64("elsewhere/other.proto", other, &[]);
        let via_descriptor =
            ProtobufSchema::parse(main, &[dependency("other.proto", &other_base64)], false)
                .expect("schema parses");
        assert_eq!(schema.canonical(), via_descriptor.canonical());
    }

    #[test]
    fn well_known_and_confluent_imports_resolve_without_references() {
        let text = r#"syntax = "proto3";
            import "google/protobuf/timestamp.proto";
            import "google/protobuf/wrappers.proto";
            import "confluent/meta.proto";
            import "confluent/type/decimal.proto";
            message M {
              option (confluent.message_meta) = { doc: "a message", params: [{ key: "k", value: "v" }] };
              google.protobuf.Timestamp at = 1;
              google.protobuf.StringValue note = 2;
              confluent.type.Decimal amount = 3 [(confluent.field_meta).doc = "money"];
            }"#;
        let schema = parse(text);
        let canonical = schema.canonical();
        assert!(canonical.contains(
            "option (.confluent.message_meta) = { doc: \"a message\" params { key: \"k\" value: \"v\" } };"
        ), "{canonical}");
        assert!(
            canonical.contains("[(.confluent.field_meta) = { doc: \"money\" }]"),
            "{canonical}"
        );
        // The printed custom options parse back to the same text.
        assert_eq!(parse(canonical).canonical(), canonical);
    }

    #[test]
    fn google_common_types_resolve_without_references_as_in_confluent() {
        let text = r#"syntax = "proto3";
            package shop;
            import "google/type/date.proto";
            import "google/type/money.proto";
            import "google/type/latlng.proto";
            import "google/type/datetime.proto";
            import "google/type/color.proto";
            import "google/type/interval.proto";
            message Order {
              google.type.Date day = 1;
              google.type.Money total = 2;
              google.type.LatLng at = 3;
              google.type.DateTime placed = 4;
              google.type.Color colour = 5;
              google.type.Interval window = 6;
            }"#;
        let schema = parse(text);
        assert!(
            schema.canonical().contains(".google.type.Money total = 2;"),
            "{}",
            schema.canonical()
        );
        for (name, _) in GOOGLE_TYPE_PROTOS {
            let text =
                format!("syntax = \"proto3\";\nimport \"{name}\";\nmessage M {{ int32 a = 1; }}\n");
            ProtobufSchema::parse(&text, &[], false)
                .unwrap_or_else(|e| panic!("{name} does not import: {e}"));
        }
        // localized_text.proto is not among the files Confluent ships.
        let error = parse_err(
            "syntax = \"proto3\";\nimport \"google/type/localized_text.proto\";\n",
            &[],
        );
        assert!(error.contains("localized_text.proto"), "{error}");
    }

    #[test]
    fn custom_options_nobody_defines_are_ignored_as_in_confluent() {
        let text = r#"syntax = "proto3";
            package shop;
            import "confluent/meta.proto";
            option (acme.file_owner) = "billing";
            message Order {
              option (acme.table) = { name: "orders" };
              option (confluent.message_meta).doc = "kept";
              string id = 1 [(acme.pii) = true, json_name = "ident"];
              Status status = 2;
            }
            enum Status {
              option (acme.enum_opt) = 1;
              NEW = 0 [(acme.value_opt) = "n"];
            }
            service Orders {
              option (acme.service_opt) = true;
              rpc Get(Order) returns (Order) { option (acme.method_opt) = 3; }
            }"#;
        let schema = parse(text);
        let canonical = schema.canonical();
        assert!(!canonical.contains("acme"), "{canonical}");
        assert!(
            canonical.contains("option (.confluent.message_meta) = { doc: \"kept\" };"),
            "{canonical}"
        );
        assert!(canonical.contains("json_name = \"ident\""), "{canonical}");
        // The same schema without the undefined options is the same schema.
        let plain = r#"syntax = "proto3";
            package shop;
            import "confluent/meta.proto";
            message Order {
              option (confluent.message_meta).doc = "kept";
              string id = 1 [json_name = "ident"];
              Status status = 2;
            }
            enum Status { NEW = 0; }
            service Orders { rpc Get(Order) returns (Order); }"#;
        assert_eq!(parse(plain).canonical(), canonical);

        // In a referenced file too.
        let dependency = dependency(
            "acme/types.proto",
            "syntax = \"proto3\";\npackage acme;\nmessage Id { option (nowhere.opt) = 1; string v = 1; }\n",
        );
        ProtobufSchema::parse(
            "syntax = \"proto3\";\nimport \"acme/types.proto\";\nmessage M { acme.Id id = 1; }\n",
            &[dependency],
            false,
        )
        .expect("an undefined option in a reference is ignored too");
    }

    #[test]
    fn options_that_are_not_custom_or_have_a_wrong_value_are_still_refused() {
        // A field of FileOptions that does not exist is an error, not a custom option.
        let error = parse_err("syntax = \"proto3\";\noption no_such_option = true;\n", &[]);
        assert!(error.contains("no_such_option"), "{error}");
        // A defined custom option with a value of the wrong type is refused.
        let error = parse_err(
            "syntax = \"proto3\";\nimport \"confluent/meta.proto\";\nmessage M {\n  option (confluent.message_meta).doc = 12;\n}\n",
            &[],
        );
        assert!(error.contains("confluent.message_meta"), "{error}");
        // An unknown type stays an error even when an undefined option is there too.
        let error = parse_err(
            "syntax = \"proto3\";\nmessage M {\n  option (acme.x) = 1;\n  Missing m = 1;\n}\n",
            &[],
        );
        assert!(error.contains("Missing"), "{error}");
    }

    #[test]
    fn missing_import_is_refused() {
        let error = parse_err(
            "syntax = \"proto3\";\nimport \"missing.proto\";\nmessage M { int32 a = 1; }",
            &[],
        );
        assert!(error.contains("missing.proto"), "{error}");
        assert!(error.contains("schema reference"), "{error}");
    }

    #[test]
    fn syntax_error_is_refused_with_its_line() {
        let error = parse_err(
            "syntax = \"proto3\";\n\nmessage M {\n  int32 a = ;\n}\n",
            &[],
        );
        assert!(
            error.starts_with("invalid protobuf schema: schema.proto:4:"),
            "{error}"
        );
    }

    #[test]
    fn unknown_type_is_refused() {
        let error = parse_err(
            "syntax = \"proto3\";\nmessage M {\n  Missing m = 1;\n}\n",
            &[],
        );
        assert!(error.contains("Missing"), "{error}");
        assert!(error.contains("schema.proto:3:"), "{error}");
    }

    #[test]
    fn serialized_is_a_descriptor_that_parses_back_to_the_same_schema() {
        let schema = parse(USER);
        let bytes = BASE64
            .decode(schema.serialized())
            .expect("serialized is base64");
        let descriptor =
            FileDescriptorProto::decode(bytes.as_slice()).expect("serialized is a descriptor");
        assert_eq!(descriptor.package(), "acme.v1");
        assert!(descriptor.source_code_info.is_none());
        assert_eq!(parse(&schema.serialized()).canonical(), schema.canonical());
    }

    #[test]
    fn proto2_schemas_print_labels_defaults_and_extensions() {
        let text = r#"syntax = "proto2";
            package p;
            import "google/protobuf/descriptor.proto";
            extend google.protobuf.FieldOptions {
              repeated string tag = 50000;
              optional double weight = 50001;
            }
            message M {
              required int32 id = 1;
              optional string name = 2 [default = "a \"quoted\" name\n"];
              optional bytes raw = 3 [default = "\001\377abc"];
              repeated int64 values = 4 [packed = true, (p.tag) = "x", (p.tag) = "y", (p.weight) = 1e20];
              optional group Result = 5 { optional string url = 1; }
              optional double d = 6 [default = inf];
              optional E e = 7 [default = B];
              extensions 100 to 199, 300 to max;
              enum E { B = 1; A = -1; }
            }
            extend M { optional int32 extra = 100; }"#;
        let canonical = parse(text).canonical().to_owned();
        for expected in [
            "required int32 id = 1;",
            "optional string name = 2 [default = \"a \\\"quoted\\\" name\\n\"];",
            "optional bytes raw = 3 [default = \"\\001\\377abc\"];",
            "[packed = true, (.p.tag) = \"x\", (.p.tag) = \"y\", (.p.weight) = 1e20]",
            "optional group Result = 5 {",
            "optional double d = 6 [default = inf];",
            "optional .p.M.E e = 7 [default = B];",
            "extensions 100 to 199, 300 to 536870911;",
            "extend .p.M {",
        ] {
            assert!(
                canonical.contains(expected),
                "{expected} missing from {canonical}"
            );
        }
        let encoded = descriptor_base64_with_custom_options("p.proto", text);
        for normalize in [false, true] {
            let first = ProtobufSchema::parse(text, &[], normalize).expect("schema parses");
            let again =
                ProtobufSchema::parse(first.canonical(), &[], normalize).expect("schema parses");
            assert_eq!(first.canonical(), again.canonical());
            let from_descriptor =
                ProtobufSchema::parse(&encoded, &[], normalize).expect("schema parses");
            assert_eq!(first.canonical(), from_descriptor.canonical());
        }
        // Normalising keeps the first enum value (proto2's default) first.
        let normalized = ProtobufSchema::parse(text, &[], true).expect("schema parses");
        assert!(normalized.canonical().contains("B = 1;\n    A = -1;"));
    }

    // --- compatibility -----------------------------------------------------------------------

    const V1: &str = r#"syntax = "proto3"; package acme;
        message User { string name = 1; int32 age = 2; Address address = 3;
          message Address { string street = 1; } }"#;

    #[test]
    fn identical_schemas_are_compatible() {
        assert_eq!(diff(V1, V1), Vec::<String>::new());
    }

    #[test]
    fn adding_and_removing_optional_fields_is_compatible() {
        let added = r#"syntax = "proto3"; package acme;
            message User { string name = 1; int32 age = 2; Address address = 3; string email = 4;
              message Address { string street = 1; } }"#;
        assert_eq!(diff(added, V1), Vec::<String>::new());
        assert_eq!(diff(V1, added), Vec::<String>::new());
    }

    #[test]
    fn int32_to_string_is_refused() {
        let changed = V1.replace("int32 age = 2", "string age = 2");
        let differences = diff(&changed, V1);
        assert_eq!(differences.len(), 1, "{differences:#?}");
        assert!(differences[0].starts_with("FIELD_SCALAR_KIND_CHANGED at #/User/2: field acme.User.age (number 2) is string in the reader but int32 in the writer"), "{differences:#?}");
    }

    #[test]
    fn int32_to_int64_is_compatible() {
        let changed = V1.replace("int32 age = 2", "int64 age = 2");
        assert_eq!(diff(&changed, V1), Vec::<String>::new());
        let to_sint = V1.replace("int32 age = 2", "sint64 age = 2");
        assert_one(&diff(&to_sint, V1), "FIELD_SCALAR_KIND_CHANGED");
    }

    #[test]
    fn renaming_a_field_or_changing_its_number_is_compatible_as_in_confluent() {
        let renamed = V1.replace("int32 age = 2", "int32 years = 2");
        assert_eq!(diff(&renamed, V1), Vec::<String>::new());
        let renumbered = V1.replace("int32 age = 2", "int32 age = 7");
        assert_eq!(diff(&renumbered, V1), Vec::<String>::new());
    }

    #[test]
    fn removing_a_message_is_refused() {
        let fewer = r#"syntax = "proto3"; package acme; message Other { string x = 1; }"#;
        let differences = diff(fewer, V1);
        assert_eq!(differences.len(), 1, "{differences:#?}");
        assert!(
            differences[0].starts_with("MESSAGE_REMOVED at #/User:"),
            "{differences:#?}"
        );
        // Adding a message is compatible.
        let more = format!("{V1} message Extra {{ int32 x = 1; }}");
        assert_eq!(diff(&more, V1), Vec::<String>::new());
    }

    #[test]
    fn removing_a_nested_message_is_reported_with_its_path() {
        let changed = r#"syntax = "proto3"; package acme;
            message User { string name = 1; int32 age = 2; }"#;
        let differences = diff(changed, V1);
        assert_eq!(differences.len(), 1, "{differences:#?}");
        assert_one(&differences, "MESSAGE_REMOVED at #/User/Address");
        let nested_change = V1.replace("string street = 1", "double street = 1");
        assert_one(
            &diff(&nested_change, V1),
            "FIELD_SCALAR_KIND_CHANGED at #/User/Address/1",
        );
    }

    #[test]
    fn changing_the_package_is_refused() {
        let moved = V1.replace("package acme;", "package acme.v2;");
        let differences = diff(&moved, V1);
        assert_eq!(differences.len(), 1, "{differences:#?}");
        assert!(differences[0].starts_with("PACKAGE_CHANGED at #/: the reader's package 'acme.v2' differs from the writer's package 'acme'"));
    }

    #[test]
    fn changing_a_message_field_type_is_refused() {
        let changed = r#"syntax = "proto3"; package acme;
            message User { string name = 1; int32 age = 2; Place address = 3;
              message Address { string street = 1; } message Place { string street = 1; } }"#;
        assert_one(&diff(changed, V1), "FIELD_NAMED_TYPE_CHANGED at #/User/3");
        let to_scalar = V1.replace("Address address = 3", "string address = 3");
        assert_one(&diff(&to_scalar, V1), "FIELD_KIND_CHANGED at #/User/3");
    }

    #[test]
    fn enum_and_int_fields_share_a_group_and_enum_changes_are_compatible() {
        let writer = r#"syntax = "proto3"; message M { E e = 1; enum E { A = 0; B = 1; } }"#;
        let reader = r#"syntax = "proto3"; message M { int32 e = 1; enum E { A = 0; C = 2; } }"#;
        assert_eq!(diff(reader, writer), Vec::<String>::new());
    }

    #[test]
    fn numeric_label_change_is_refused_but_string_label_change_is_not() {
        let writer = r#"syntax = "proto3"; message M { int32 n = 1; string s = 2; }"#;
        let reader =
            r#"syntax = "proto3"; message M { repeated int32 n = 1; repeated string s = 2; }"#;
        let differences = diff(reader, writer);
        assert_eq!(differences.len(), 1, "{differences:#?}");
        assert!(differences[0].starts_with("FIELD_NUMERIC_LABEL_CHANGED at #/M/1"));
        // proto3 optional is still singular.
        let optional = r#"syntax = "proto3"; message M { optional int32 n = 1; string s = 2; }"#;
        assert_eq!(diff(optional, writer), Vec::<String>::new());
    }

    #[test]
    fn required_fields_added_or_removed_are_refused() {
        let writer =
            r#"syntax = "proto2"; message M { optional int32 a = 1; required int32 b = 2; }"#;
        let reader =
            r#"syntax = "proto2"; message M { optional int32 a = 1; required int32 c = 3; }"#;
        let differences = diff(reader, writer);
        assert_one(&differences, "REQUIRED_FIELD_REMOVED at #/M/2");
        assert_one(&differences, "REQUIRED_FIELD_ADDED at #/M/3");
    }

    #[test]
    fn moving_fields_into_a_new_oneof() {
        let writer = r#"syntax = "proto3"; message M { string a = 1; string b = 2; }"#;
        let one = r#"syntax = "proto3"; message M { oneof o { string a = 1; } string b = 2; }"#;
        assert_eq!(diff(one, writer), Vec::<String>::new());
        let both = r#"syntax = "proto3"; message M { oneof o { string a = 1; string b = 2; } }"#;
        let differences = diff(both, writer);
        assert_eq!(differences.len(), 1, "{differences:#?}");
        assert!(differences[0].starts_with("MULTIPLE_FIELDS_MOVED_TO_ONEOF at #/M/o"));
    }

    #[test]
    fn moving_a_field_into_an_existing_oneof_is_refused() {
        let writer = r#"syntax = "proto3"; message M { string a = 1; oneof o { string b = 2; } }"#;
        let reader = r#"syntax = "proto3"; message M { oneof o { string a = 1; string b = 2; } }"#;
        assert_one(
            &diff(reader, writer),
            "FIELD_MOVED_TO_EXISTING_ONEOF at #/M/o",
        );
    }

    #[test]
    fn removing_a_oneof_field_is_refused() {
        let writer = r#"syntax = "proto3"; message M { oneof o { string a = 1; int32 b = 2; } }"#;
        let reader = r#"syntax = "proto3"; message M { oneof o { string a = 1; } }"#;
        assert_one(&diff(reader, writer), "ONEOF_FIELD_REMOVED at #/M/o/2");
        // Moving it out of the oneof keeps it: compatible.
        let moved_out =
            r#"syntax = "proto3"; message M { oneof o { string a = 1; } int32 b = 2; }"#;
        assert_eq!(diff(moved_out, writer), Vec::<String>::new());
    }

    #[test]
    fn map_value_changes_are_compared() {
        let writer = r#"syntax = "proto3"; message M { map<string, int32> m = 1; }"#;
        let widened = r#"syntax = "proto3"; message M { map<string, int64> m = 1; }"#;
        assert_eq!(diff(widened, writer), Vec::<String>::new());
        let changed = r#"syntax = "proto3"; message M { map<string, string> m = 1; }"#;
        assert_one(
            &diff(changed, writer),
            "FIELD_SCALAR_KIND_CHANGED at #/M/1: the map value",
        );
        let not_a_map = r#"syntax = "proto3"; message M { repeated string m = 1; }"#;
        assert_one(&diff(not_a_map, writer), "FIELD_KIND_CHANGED at #/M/1");
    }

    #[test]
    fn changes_inside_a_referenced_type_are_detected() {
        let main = r#"syntax = "proto3"; import "other.proto"; message M { other.Other o = 1; }"#;
        let old_other = "syntax = \"proto3\"; package other; message Other { int32 id = 1; }";
        let new_other = "syntax = \"proto3\"; package other; message Other { string id = 1; }";
        let writer = ProtobufSchema::parse(main, &[dependency("other.proto", old_other)], false)
            .expect("schema parses");
        let reader = ProtobufSchema::parse(main, &[dependency("other.proto", new_other)], false)
            .expect("schema parses");
        let differences = ProtobufSchema::incompatibilities(&reader, &writer);
        assert_one(&differences, "FIELD_SCALAR_KIND_CHANGED at #/Other/1");
        assert_one(&differences, "FIELD_NAMED_TYPE_CHANGED at #/M/1");
        assert_eq!(
            ProtobufSchema::incompatibilities(&writer, &writer),
            Vec::<String>::new()
        );
    }

    // --- payloads ----------------------------------------------------------------------------

    const PAYLOAD_SCHEMA: &str = r#"syntax = "proto3";
        message First { int32 id = 1; }
        message Second {
          map<string, int32> counts = 1;
          message Inner { string text = 1; }
        }"#;

    #[test]
    fn payload_with_index_zero_decodes_as_the_first_message() {
        let schema = parse(PAYLOAD_SCHEMA);
        // Single byte 0 means [0]; field 1 varint 150.
        schema
            .validate_payload(&[0x00, 0x08, 0x96, 0x01])
            .expect("payload is valid");
        // The explicit form [0]: count 1 (zigzag 2), index 0.
        schema
            .validate_payload(&[0x02, 0x00, 0x08, 0x96, 0x01])
            .expect("payload is valid");
    }

    #[test]
    fn payload_with_a_nested_index_decodes_as_the_nested_message() {
        let schema = parse(PAYLOAD_SCHEMA);
        // [1, 0]: Second.Inner (the map entry does not count), field 1 string "hi".
        let payload = [0x04, 0x02, 0x00, 0x0a, 0x02, b'h', b'i'];
        schema.validate_payload(&payload).expect("payload is valid");
        // The same bytes are not a valid First (field 1 is a varint there).
        assert!(
            schema
                .validate_payload(&[0x00, 0x0a, 0x02, b'h', b'i'])
                .is_err()
        );
    }

    #[test]
    fn bad_payload_bytes_are_refused() {
        let schema = parse(PAYLOAD_SCHEMA);
        let error = schema.validate_payload(&[0x00, 0x08]).expect_err("refused");
        assert!(error.contains("First"), "{error}");
        assert!(schema.validate_payload(&[0x00, 0x0a, 0x05, b'a']).is_err());
    }

    #[test]
    fn bad_message_indexes_are_refused() {
        let schema = parse(PAYLOAD_SCHEMA);
        // [2]: only two top-level messages.
        let error = schema.validate_payload(&[0x02, 0x04]).expect_err("refused");
        assert!(error.contains("out of range"), "{error}");
        // [1, 1]: Second has one nested message besides its map entry.
        assert!(schema.validate_payload(&[0x04, 0x02, 0x02]).is_err());
        // A negative index, a negative count, a huge count, a truncated list.
        assert!(schema.validate_payload(&[0x02, 0x01]).is_err());
        assert!(schema.validate_payload(&[0x01]).is_err());
        assert!(
            schema
                .validate_payload(&[0xfe, 0xff, 0xff, 0xff, 0x0f])
                .is_err()
        );
        assert!(schema.validate_payload(&[0x04, 0x02]).is_err());
        assert!(schema.validate_payload(&[]).is_err());
        // A varint longer than 5 bytes.
        assert!(
            schema
                .validate_payload(&[0x80, 0x80, 0x80, 0x80, 0x80, 0x00])
                .is_err()
        );
    }
}
