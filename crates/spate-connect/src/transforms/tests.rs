//! Tests of the transforms against what Kafka's (and Debezium's) Java classes output.

// Case tables spell their row types inline, next to the rows.
#![allow(clippy::type_complexity)]

use bytes::Bytes;

use super::cast::{decimal_bytes, java_double_string};
use super::timefmt::{Pattern, civil_from_days, days_from_civil};
use super::*;
use crate::data::{Field, Schema, SchemaType, Struct, Value, logical};

const T: &str = "org.apache.kafka.connect.transforms.";

fn props(pairs: &[(&str, &str)]) -> Props {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// A chain of one transform `t` of `class` (short name under Kafka's package) with `keys`.
fn one(class: &str, keys: &[(&str, &str)]) -> Chain {
    let full = if class.contains('.') {
        class.to_string()
    } else {
        format!("{T}{class}")
    };
    let mut p = props(&[("transforms", "t"), ("transforms.t.type", &full)]);
    for (k, v) in keys {
        p.insert(format!("transforms.t.{k}"), v.to_string());
    }
    match chain(&p) {
        Ok(c) => c,
        Err(problems) => panic!("config problems: {problems:?}"),
    }
}

fn problems(pairs: &[(&str, &str)]) -> Vec<ConfigProblem> {
    match chain(&props(pairs)) {
        Ok(_) => panic!("expected problems"),
        Err(p) => p,
    }
}

fn names(problems: &[ConfigProblem]) -> Vec<&str> {
    problems.iter().map(|p| p.name.as_str()).collect()
}

fn apply(chain: &mut Chain, record: ConnectRecord) -> ConnectRecord {
    match chain.apply(record) {
        Ok(Some(r)) => r,
        Ok(None) => panic!("record dropped"),
        Err(e) => panic!("{e}"),
    }
}

fn fail(chain: &mut Chain, record: ConnectRecord) -> String {
    match chain.apply(record) {
        Err(TransformError::Data { reason, .. }) => reason,
        Ok(r) => panic!("expected an error, got {r:?}"),
    }
}

fn s(v: &str) -> Value {
    Value::String(v.to_string())
}

fn schemaless(value: Value) -> ConnectRecord {
    ConnectRecord::new("orders", None, value)
}

fn person_schema() -> Schema {
    Schema::structure(
        Some("com.example.Person"),
        vec![
            ("name", Schema::new(SchemaType::String)),
            ("age", Schema::optional(SchemaType::Int32)),
        ],
    )
}

fn person(name: &str, age: i32) -> Struct {
    Struct {
        schema: person_schema().into(),
        values: vec![s(name), Value::Int32(age)],
    }
}

fn schemaful(value: Struct) -> ConnectRecord {
    ConnectRecord::new(
        "orders",
        Some(std::sync::Arc::clone(&value.schema)),
        Value::Struct(value),
    )
}

fn field_names(schema: &Schema) -> Vec<&str> {
    schema.fields.iter().map(|f| f.name.as_str()).collect()
}

// ---- chain() and config problems ----

#[test]
fn chain_reports_every_problem_under_full_key_names() {
    let found = problems(&[
        ("transforms", "a,b,c,d,e"),
        ("transforms.a.type", "com.example.Nope"),
        // Kafka requires full class names; so does Spate.
        ("transforms.b.type", "InsertField$Value"),
        (
            "transforms.c.type",
            "org.apache.kafka.connect.transforms.MaskField$Value",
        ),
        (
            "transforms.d.type",
            "org.apache.kafka.connect.transforms.Filter",
        ),
        ("transforms.d.predicate", "missing"),
        ("predicates", "p"),
        (
            "predicates.p.type",
            "org.apache.kafka.connect.transforms.predicates.TopicNameMatches",
        ),
    ]);
    assert_eq!(
        names(&found),
        vec![
            "predicates.p.pattern",
            "transforms.a.type",
            "transforms.b.type",
            "transforms.c.fields",
            "transforms.d.predicate",
            "transforms.e.type",
        ]
    );
    assert!(
        found[2]
            .message
            .contains("org.apache.kafka.connect.transforms.InsertField$Value"),
        "{:?}",
        found[2]
    );
    for p in &found {
        assert!(!p.message.ends_with('.'), "{p:?}");
        assert!(
            p.message.chars().next().is_some_and(|c| !c.is_uppercase()),
            "{p:?}"
        );
    }
}

#[test]
fn chain_reports_duplicate_aliases_bad_negate_and_bad_values() {
    let found = problems(&[
        ("transforms", "a,a"),
        (
            "transforms.a.type",
            "org.apache.kafka.connect.transforms.TimestampConverter$Value",
        ),
        ("transforms.a.target.type", "epoch"),
        ("transforms.a.negate", "maybe"),
    ]);
    assert_eq!(
        names(&found),
        vec![
            "transforms",
            "transforms.a.negate",
            "transforms.a.target.type"
        ]
    );
}

#[test]
fn empty_config_is_an_empty_chain() {
    let mut c = match chain(&Props::new()) {
        Ok(c) => c,
        Err(p) => panic!("{p:?}"),
    };
    assert!(c.is_empty());
    let r = schemaless(s("x"));
    assert_eq!(apply(&mut c, r.clone()), r);
}

#[test]
fn plugins_lists_transforms_and_predicates() {
    let all = plugins();
    assert!(all.contains(&(
        "org.apache.kafka.connect.transforms.InsertField$Value",
        "transformation"
    )));
    assert!(all.contains(&(
        "io.debezium.transforms.ExtractNewRecordState",
        "transformation"
    )));
    assert!(all.contains(&(
        "org.apache.kafka.connect.transforms.predicates.RecordIsTombstone",
        "predicate"
    )));
    assert_eq!(all.iter().filter(|(_, t)| *t == "predicate").count(), 3);
}

#[test]
fn errors_name_the_transform() {
    let mut c = one("ExtractField$Value", &[("field", "nope")]);
    match c.apply(schemaful(person("ann", 3))) {
        Err(e) => assert_eq!(
            e.to_string(),
            "transform `t` (org.apache.kafka.connect.transforms.ExtractField$Value) failed: unknown field: nope"
        ),
        Ok(r) => panic!("{r:?}"),
    }
}

// ---- predicates and Filter ----

#[test]
fn filter_with_predicates_and_negate() {
    let base = [
        ("transforms", "drop"),
        (
            "transforms.drop.type",
            "org.apache.kafka.connect.transforms.Filter",
        ),
        ("transforms.drop.predicate", "p"),
        ("predicates", "p"),
    ];
    let cases: &[(&[(&str, &str)], &str, bool, bool)] = &[
        // (predicate keys, topic, tombstone, dropped)
        (
            &[
                (
                    "predicates.p.type",
                    "org.apache.kafka.connect.transforms.predicates.TopicNameMatches",
                ),
                ("predicates.p.pattern", "ord.*"),
            ],
            "orders",
            false,
            true,
        ),
        // matches() is a whole-name match: "rd" alone does not match "orders".
        (
            &[
                (
                    "predicates.p.type",
                    "org.apache.kafka.connect.transforms.predicates.TopicNameMatches",
                ),
                ("predicates.p.pattern", "rd"),
            ],
            "orders",
            false,
            false,
        ),
        (
            &[
                (
                    "predicates.p.type",
                    "org.apache.kafka.connect.transforms.predicates.TopicNameMatches",
                ),
                ("predicates.p.pattern", "ord.*"),
                ("transforms.drop.negate", "true"),
            ],
            "orders",
            false,
            false,
        ),
        (
            &[(
                "predicates.p.type",
                "org.apache.kafka.connect.transforms.predicates.RecordIsTombstone",
            )],
            "orders",
            true,
            true,
        ),
        (
            &[(
                "predicates.p.type",
                "org.apache.kafka.connect.transforms.predicates.RecordIsTombstone",
            )],
            "orders",
            false,
            false,
        ),
        (
            &[
                (
                    "predicates.p.type",
                    "org.apache.kafka.connect.transforms.predicates.HasHeaderKey",
                ),
                ("predicates.p.name", "trace"),
            ],
            "orders",
            false,
            true,
        ),
        (
            &[
                (
                    "predicates.p.type",
                    "org.apache.kafka.connect.transforms.predicates.HasHeaderKey",
                ),
                ("predicates.p.name", "other"),
            ],
            "orders",
            false,
            false,
        ),
    ];
    for (keys, topic, tombstone, dropped) in cases {
        let mut p = props(&base);
        p.extend(props(keys));
        let mut c = match chain(&p) {
            Ok(c) => c,
            Err(e) => panic!("{keys:?}: {e:?}"),
        };
        let mut r = ConnectRecord::new(topic, None, if *tombstone { Value::Null } else { s("v") });
        r.headers
            .push(("trace".into(), Some(Bytes::from_static(b"1"))));
        let out = c.apply(r).map_err(|e| e.to_string());
        assert_eq!(out.map(|o| o.is_none()), Ok(*dropped), "{keys:?}");
    }
}

#[test]
fn filter_without_predicate_drops_everything() {
    let mut c = one("Filter", &[]);
    assert!(matches!(c.apply(schemaless(s("x"))), Ok(None)));
}

// ---- InsertField ----

#[test]
fn insert_field_schemaless() {
    let mut c = one(
        "InsertField$Value",
        &[
            ("topic.field", "t"),
            ("partition.field", "p"),
            ("offset.field", "o!"),
            ("timestamp.field", "ts?"),
            ("static.field", "s"),
            ("static.value", "v"),
        ],
    );
    let mut r = schemaless(Value::map_of([("a", Value::Int32(1))]));
    r.partition = Some(2);
    r.kafka_offset = Some(7);
    r.timestamp_ms = Some(1000);
    let out = apply(&mut c, r);
    assert_eq!(
        out.value,
        Value::map_of([
            ("a", Value::Int32(1)),
            ("t", s("orders")),
            ("p", Value::Int32(2)),
            ("o", Value::Int64(7)),
            ("ts", Value::Int64(1000)),
            ("s", s("v"))
        ])
    );
}

#[test]
fn insert_field_schemaful_builds_the_schema_as_java() {
    let mut c = one(
        "InsertField$Value",
        &[
            ("topic.field", "t!"),
            ("partition.field", "p"),
            ("timestamp.field", "ts"),
        ],
    );
    let mut r = schemaful(person("ann", 3));
    r.timestamp_ms = Some(5);
    let out = apply(&mut c, r);
    let schema = out
        .value_schema
        .as_deref()
        .cloned()
        .unwrap_or_else(|| Schema::new(SchemaType::Int8));
    assert_eq!(field_names(&schema), vec!["name", "age", "t", "p", "ts"]);
    assert_eq!(schema.name.as_deref(), Some("com.example.Person"));
    assert_eq!(schema.fields[2].schema, Schema::new(SchemaType::String));
    assert_eq!(schema.fields[3].schema, Schema::optional(SchemaType::Int32));
    assert!(
        schema.fields[4].schema.is_logical(logical::TIMESTAMP) && schema.fields[4].schema.optional
    );
    let Value::Struct(v) = out.value else {
        panic!("not a struct")
    };
    // No partition on the record: the field is in the schema, its value null.
    assert_eq!(
        v.values,
        vec![
            s("ann"),
            Value::Int32(3),
            s("orders"),
            Value::Null,
            Value::Int64(5)
        ]
    );
}

#[test]
fn insert_field_passes_tombstones_and_refuses_offsets_of_source_records() {
    let mut c = one("InsertField$Value", &[("offset.field", "o")]);
    let tomb = schemaless(Value::Null);
    assert_eq!(apply(&mut c, tomb.clone()), tomb);
    assert_eq!(
        fail(&mut c, schemaless(Value::map_of([]))),
        "only SinkRecord supported for [field insertion], found: org.apache.kafka.connect.source.SourceRecord"
    );
    assert_eq!(
        fail(&mut c, schemaless(s("x"))),
        "only Map objects supported in absence of schema for [field insertion], found: java.lang.String"
    );
}

#[test]
fn insert_field_key() {
    let mut c = one("InsertField$Key", &[("topic.field", "topic")]);
    let mut r = schemaless(s("v"));
    r.key = Value::map_of([("id", Value::Int32(1))]);
    let out = apply(&mut c, r);
    assert_eq!(
        out.key,
        Value::map_of([("id", Value::Int32(1)), ("topic", s("orders"))])
    );
    assert_eq!(out.value, s("v"));
}

// ---- ReplaceField ----

#[test]
fn replace_field_cases() {
    let input = || {
        Value::map_of([
            ("a", Value::Int32(1)),
            ("b", Value::Int32(2)),
            ("c", Value::Int32(3)),
        ])
    };
    let cases: &[(&[(&str, &str)], &[(&str, i32)])] = &[
        (&[("exclude", "b")], &[("a", 1), ("c", 3)]),
        (&[("include", "a,c")], &[("a", 1), ("c", 3)]),
        (&[("include", "a,b"), ("exclude", "b")], &[("a", 1)]),
        (&[("renames", "a:x,c:y")], &[("x", 1), ("b", 2), ("y", 3)]),
        // The deprecated names still work.
        (&[("blacklist", "a")], &[("b", 2), ("c", 3)]),
        (&[("whitelist", "c")], &[("c", 3)]),
    ];
    for (keys, expected) in cases {
        let mut c = one("ReplaceField$Value", keys);
        let out = apply(&mut c, schemaless(input()));
        let want = Value::map_of(expected.iter().map(|(k, v)| (*k, Value::Int32(*v))));
        assert_eq!(out.value, want, "{keys:?}");
    }
}

#[test]
fn replace_field_schemaful_renames_and_drops() {
    let mut c = one(
        "ReplaceField$Value",
        &[("exclude", "age"), ("renames", "name:full_name")],
    );
    let out = apply(&mut c, schemaful(person("ann", 3)));
    let Value::Struct(v) = out.value else {
        panic!("not a struct")
    };
    assert_eq!(field_names(&v.schema), vec!["full_name"]);
    assert_eq!(v.schema.name.as_deref(), Some("com.example.Person"));
    assert_eq!(v.values, vec![s("ann")]);
    assert_eq!(out.value_schema.as_deref(), Some(&*v.schema));
}

#[test]
fn replace_field_bad_rename_is_a_config_problem() {
    let found = problems(&[
        ("transforms", "r"),
        (
            "transforms.r.type",
            "org.apache.kafka.connect.transforms.ReplaceField$Value",
        ),
        ("transforms.r.renames", "a:b:c"),
    ]);
    assert_eq!(names(&found), vec!["transforms.r.renames"]);
}

// ---- MaskField ----

#[test]
fn mask_field_null_equivalents_and_replacements() {
    let cases: &[(Value, Option<&str>, Result<Value, &str>)] = &[
        (Value::Int8(5), None, Ok(Value::Int8(0))),
        (Value::Int32(5), None, Ok(Value::Int32(0))),
        (Value::Int64(5), None, Ok(Value::Int64(0))),
        (Value::Float64(1.5), None, Ok(Value::Float64(0.0))),
        (Value::Boolean(true), None, Ok(Value::Boolean(false))),
        (s("secret"), None, Ok(s(""))),
        (
            Value::Array(vec![Value::Int32(1)]),
            None,
            Ok(Value::Array(vec![])),
        ),
        (
            Value::map_of([("k", Value::Int32(1))]),
            None,
            Ok(Value::Map(vec![])),
        ),
        (Value::Null, None, Ok(Value::Null)),
        (
            Value::Bytes(Bytes::from_static(b"x")),
            None,
            Err("cannot mask value of type: class [B"),
        ),
        (s("secret"), Some("***"), Ok(s("***"))),
        (Value::Int32(5), Some("123"), Ok(Value::Int32(123))),
        (Value::Float32(5.0), Some("1.5"), Ok(Value::Float32(1.5))),
        (
            Value::Int32(5),
            Some("abc"),
            Err("unable to convert abc (class java.lang.String) to number"),
        ),
        // Java has no replacement mapping for Boolean.
        (
            Value::Boolean(true),
            Some("true"),
            Err("cannot mask value of type class java.lang.Boolean with custom replacement"),
        ),
    ];
    for (input, replacement, expected) in cases {
        let mut keys = vec![("fields", "f")];
        if let Some(r) = replacement {
            keys.push(("replacement", r));
        }
        let mut c = one("MaskField$Value", &keys);
        let r = schemaless(Value::map_of([
            ("f", input.clone()),
            ("g", Value::Int32(9)),
        ]));
        let got = match c.apply(r) {
            Ok(Some(out)) => Ok(out.value.get("f").cloned().unwrap_or(Value::Int8(-1))),
            Ok(None) => panic!("dropped"),
            Err(TransformError::Data { reason, .. }) => Err(reason),
        };
        assert_eq!(
            got,
            expected.clone().map_err(str::to_string),
            "{input:?} {replacement:?}"
        );
    }
}

#[test]
fn mask_field_schemaful_keeps_the_schema() {
    let mut c = one("MaskField$Value", &[("fields", "name,age")]);
    let out = apply(&mut c, schemaful(person("ann", 3)));
    assert_eq!(
        out.value,
        Value::Struct(Struct {
            schema: person_schema().into(),
            values: vec![s(""), Value::Int32(0)]
        })
    );
    let decimal = Schema {
        parameters: [(logical::DECIMAL_SCALE.to_string(), "2".to_string())].into(),
        ..Schema::new(SchemaType::Bytes).with_name(logical::DECIMAL)
    };
    let schema = Schema::structure(None, vec![("price", decimal)]);
    let rec = schemaful(Struct {
        schema: schema.clone().into(),
        values: vec![Value::Bytes(decimal_bytes(12345))],
    });
    let mut c = one(
        "MaskField$Value",
        &[("fields", "price"), ("replacement", "1.5")],
    );
    let out = apply(&mut c, rec);
    assert_eq!(
        out.value.get("price"),
        Some(&Value::Bytes(decimal_bytes(150)))
    );
}

// ---- ValueToKey, ExtractField, HoistField, Flatten ----

#[test]
fn value_to_key_schemaful_and_schemaless() {
    let mut c = one("ValueToKey", &[("fields", "age")]);
    let out = apply(&mut c, schemaful(person("ann", 3)));
    let key_schema = Schema::structure(None, vec![("age", Schema::optional(SchemaType::Int32))]);
    assert_eq!(out.key_schema.as_deref(), Some(&key_schema));
    assert_eq!(
        out.key,
        Value::Struct(Struct {
            schema: key_schema.into(),
            values: vec![Value::Int32(3)]
        })
    );

    let out = apply(
        &mut c,
        schemaless(Value::map_of([
            ("age", Value::Int32(3)),
            ("x", Value::Int8(1)),
        ])),
    );
    assert_eq!(out.key, Value::map_of([("age", Value::Int32(3))]));

    let mut c = one("ValueToKey", &[("fields", "nope")]);
    assert_eq!(
        fail(&mut c, schemaful(person("ann", 3))),
        "field does not exist: nope"
    );
}

#[test]
fn extract_field() {
    let mut c = one("ExtractField$Value", &[("field", "name")]);
    let out = apply(&mut c, schemaful(person("ann", 3)));
    assert_eq!(
        (out.value_schema.as_deref().cloned(), out.value),
        (Some(Schema::new(SchemaType::String)), s("ann"))
    );
    let out = apply(&mut c, schemaless(Value::map_of([("name", s("bob"))])));
    assert_eq!((out.value_schema, out.value), (None, s("bob")));
    // A missing key of a map is null; a null value stays null.
    assert_eq!(
        apply(&mut c, schemaless(Value::map_of([]))).value,
        Value::Null
    );
    assert_eq!(apply(&mut c, schemaless(Value::Null)).value, Value::Null);
}

#[test]
fn hoist_field() {
    let mut c = one("HoistField$Value", &[("field", "line")]);
    let out = apply(
        &mut c,
        ConnectRecord::new(
            "t",
            Some(std::sync::Arc::new(Schema::new(SchemaType::String))),
            s("hi"),
        ),
    );
    let schema = Schema::structure(None, vec![("line", Schema::new(SchemaType::String))]);
    assert_eq!(out.value_schema.as_deref(), Some(&schema));
    assert_eq!(
        out.value,
        Value::Struct(Struct {
            schema: schema.into(),
            values: vec![s("hi")]
        })
    );
    assert_eq!(
        apply(&mut c, schemaless(Value::Int32(1))).value,
        Value::map_of([("line", Value::Int32(1))])
    );
}

#[test]
fn flatten_schemaful_and_schemaless() {
    let inner =
        Schema::structure(None, vec![("city", Schema::new(SchemaType::String))]).into_optional();
    let schema = Schema::structure(
        Some("Outer"),
        vec![
            ("id", Schema::new(SchemaType::Int32)),
            ("addr", inner.clone()),
        ],
    );
    let value = Struct {
        schema: schema.clone().into(),
        values: vec![
            Value::Int32(1),
            Value::Struct(Struct {
                schema: inner.into(),
                values: vec![s("Oslo")],
            }),
        ],
    };
    let mut c = one("Flatten$Value", &[("delimiter", "_")]);
    let out = apply(&mut c, schemaful(value));
    let Value::Struct(v) = out.value else {
        panic!("not a struct")
    };
    assert_eq!(field_names(&v.schema), vec!["id", "addr_city"]);
    // Inside an optional struct, the flattened field is optional.
    assert!(v.schema.fields[1].schema.optional);
    assert_eq!(v.values, vec![Value::Int32(1), s("Oslo")]);

    let mut c = one("Flatten$Value", &[]);
    let nested = Value::map_of([(
        "a",
        Value::map_of([
            ("b", Value::Int32(1)),
            ("c", Value::map_of([("d", s("x"))])),
        ]),
    )]);
    assert_eq!(
        apply(&mut c, schemaless(nested)).value,
        Value::map_of([("a.b", Value::Int32(1)), ("a.c.d", s("x"))])
    );
}

// ---- Cast ----

#[test]
fn cast_whole_value_schemaless() {
    let cases: &[(Value, &str, Result<Value, &str>)] = &[
        (Value::Int64(300), "int8", Ok(Value::Int8(44))), // Number.byteValue() wraps
        (Value::Int32(42), "string", Ok(s("42"))),
        (Value::Float64(1.9), "int32", Ok(Value::Int32(1))),
        (Value::Float64(-1.9), "int64", Ok(Value::Int64(-1))),
        (Value::Float64(1e10), "int32", Ok(Value::Int32(i32::MAX))),
        (Value::Float32(1.5), "string", Ok(s("1.5"))),
        (Value::Float64(1.0), "string", Ok(s("1.0"))),
        (Value::Float64(1e7), "string", Ok(s("1.0E7"))),
        (Value::Float64(0.5), "boolean", Ok(Value::Boolean(false))), // longValue() != 0
        (Value::Int32(2), "boolean", Ok(Value::Boolean(true))),
        (Value::Boolean(true), "float64", Ok(Value::Float64(1.0))),
        (s("TRUE"), "boolean", Ok(Value::Boolean(true))),
        (s("yes"), "boolean", Ok(Value::Boolean(false))),
        (s("127"), "int8", Ok(Value::Int8(127))),
        (
            s("128"),
            "int8",
            Err("value (128) was out of range for requested data type"),
        ),
        (s(" 2.5 "), "float64", Ok(Value::Float64(2.5))),
        (
            s("1.5"),
            "int32",
            Err("value (1.5) was out of range for requested data type"),
        ),
        (
            Value::Bytes(Bytes::from_static(b"hi")),
            "string",
            Ok(s("aGk=")),
        ),
        (
            Value::Bytes(Bytes::from_static(b"hi")),
            "int32",
            Err("unexpected type in cast transformation: class [B"),
        ),
        (
            Value::map_of([]),
            "string",
            Err(
                "cast transformation does not support casting from MAP; supported types are [INT8, INT16, INT32, INT64, FLOAT32, FLOAT64, BOOLEAN, STRING, BYTES]",
            ),
        ),
    ];
    for (input, target, expected) in cases {
        let mut c = one("Cast$Value", &[("spec", target)]);
        let got = match c.apply(schemaless(input.clone())) {
            Ok(Some(out)) => Ok(out.value),
            Ok(None) => panic!("dropped"),
            Err(TransformError::Data { reason, .. }) => Err(reason),
        };
        assert_eq!(
            got,
            expected.clone().map_err(str::to_string),
            "{input:?} -> {target}"
        );
    }
}

#[test]
fn cast_fields_schemaful() {
    let ts = logical_schema(SchemaType::Int64, logical::TIMESTAMP, false);
    let date = logical_schema(SchemaType::Int32, logical::DATE, true);
    let schema = Schema::structure(
        Some("S"),
        vec![
            ("a", Schema::optional(SchemaType::Int32)),
            ("b", Schema::new(SchemaType::String)),
            ("ts", ts),
            ("d", date),
        ],
    );
    let value = Struct {
        schema: schema.clone().into(),
        values: vec![
            Value::Int32(7),
            s("x"),
            Value::Int64(1_500_000_000_123),
            Value::Int32(18_000),
        ],
    };
    let mut c = one("Cast$Value", &[("spec", "a:int64, ts:string, d:string")]);
    let out = apply(&mut c, schemaful(value));
    let Value::Struct(v) = out.value else {
        panic!("not a struct")
    };
    assert_eq!(v.schema.name.as_deref(), Some("S"));
    assert_eq!(
        v.schema.fields[0].schema,
        Schema::optional(SchemaType::Int64)
    );
    assert_eq!(v.schema.fields[1].schema, Schema::new(SchemaType::String));
    // A logical Timestamp cast to string is Values.dateFormatFor's ISO-8601 UTC; a Date at
    // midnight is yyyy-MM-dd.
    assert_eq!(
        v.values,
        vec![
            Value::Int64(7),
            s("x"),
            s("2017-07-14T02:40:00.123Z"),
            s("2019-04-14")
        ]
    );
}

#[test]
fn cast_spec_problems() {
    let cases: &[(&str, &str)] = &[
        ("", "must specify at least one field to cast"),
        (
            "a:bytes",
            "cast transformation does not support casting to BYTES; supported types are [INT8, INT16, INT32, INT64, FLOAT32, FLOAT64, BOOLEAN, STRING]",
        ),
        ("a:decimal", "invalid type found in casting spec: decimal"),
        (
            "int32,a:int8",
            "cast transformations that specify a type to cast the entire value to may only specify a single cast in their spec",
        ),
    ];
    for (spec, message) in cases {
        let found = problems(&[
            ("transforms", "c"),
            (
                "transforms.c.type",
                "org.apache.kafka.connect.transforms.Cast$Key",
            ),
            ("transforms.c.spec", spec),
        ]);
        assert_eq!(
            found,
            vec![ConfigProblem::new("transforms.c.spec", *message)],
            "{spec}"
        );
    }
}

#[test]
fn cast_decimals_as_java_big_decimal() {
    let decimal = |scale: &str| Schema {
        parameters: [(logical::DECIMAL_SCALE.to_string(), scale.to_string())].into(),
        ..Schema::new(SchemaType::Bytes).with_name(logical::DECIMAL)
    };
    // (unscaled, scale, target, expected)
    let cases: &[(i128, &str, &str, Value)] = &[
        (12345, "2", "string", s("123.45")),
        (-5, "3", "string", s("-0.005")),
        (1, "10", "string", s("1E-10")),
        (12345, "2", "int32", Value::Int32(123)), // BigDecimal.intValue() truncates
        (-12345, "2", "int64", Value::Int64(-123)),
        (12345, "2", "float64", Value::Float64(123.45)),
    ];
    for (unscaled, scale, target, want) in cases {
        let schema = Schema::structure(None, vec![("d", decimal(scale))]);
        let value = Struct {
            schema: schema.into(),
            values: vec![Value::Bytes(decimal_bytes(*unscaled))],
        };
        let mut c = one("Cast$Value", &[("spec", &format!("d:{target}"))]);
        let out = apply(&mut c, schemaful(value));
        assert_eq!(
            out.value.get("d"),
            Some(want),
            "{unscaled} scale {scale} -> {target}"
        );
    }
}

#[test]
fn java_double_strings() {
    let cases: &[(f64, &str)] = &[
        (1.0, "1.0"),
        (0.1, "0.1"),
        (123.456, "123.456"),
        (1e7, "1.0E7"),
        (1.5e-5, "1.5E-5"),
        (0.001, "0.001"),
        (-2.0, "-2.0"),
        (f64::NAN, "NaN"),
        (f64::NEG_INFINITY, "-Infinity"),
    ];
    for (f, want) in cases {
        assert_eq!(java_double_string(*f, false), *want);
    }
    assert_eq!(java_double_string(f64::from(1.1f32), true), "1.1");
}

// ---- TimestampConverter, date patterns, TimestampRouter ----

#[test]
fn civil_days_round_trip() {
    for days in [-719_468, -1, 0, 1, 59, 365, 10_956, 18_000, 2_932_896] {
        let (y, m, d) = civil_from_days(days);
        assert_eq!(days_from_civil(y, m, d), days);
    }
    assert_eq!(civil_from_days(0), (1970, 1, 1));
    assert_eq!(days_from_civil(2000, 3, 1), 11_017);
}

#[test]
fn simple_date_format_patterns() {
    let ms = 1_500_000_000_123; // 2017-07-14T02:40:00.123Z, a Friday
    let cases: &[(&str, &str)] = &[
        ("yyyy-MM-dd", "2017-07-14"),
        ("yyyy-MM-dd'T'HH:mm:ss.SSS'Z'", "2017-07-14T02:40:00.123Z"),
        ("yyyyMMddHHmmss", "20170714024000"),
        ("dd/MM/yy hh:mm a", "14/07/17 02:40 AM"),
        (
            "EEE, d MMM yyyy HH:mm:ss Z",
            "Fri, 14 Jul 2017 02:40:00 +0000",
        ),
        ("MMMM ''yy", "July '17"),
        ("D", "195"),
    ];
    for (pattern, want) in cases {
        let p = Pattern::parse(pattern).unwrap_or_else(|e| panic!("{pattern}: {e}"));
        assert_eq!(p.format(ms), *want, "{pattern}");
        if pattern.contains('d') && !pattern.contains('a') {
            let back = p.parse_ms(want).unwrap_or_else(|| panic!("parse {want}"));
            let precision = if pattern.contains('S') {
                1
            } else if pattern.contains('s') {
                1000
            } else if pattern.contains('m') {
                60_000
            } else {
                86_400_000
            };
            assert_eq!(back, ms - ms % precision, "{pattern}");
        }
    }
    assert!(Pattern::parse("yyyy-MM-dd q").is_err());
    // Java's lenient parse: month 13 rolls into the next year, trailing text is ignored.
    let p = Pattern::parse("yyyy-MM-dd").unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(p.parse_ms("2016-13-01"), p.parse_ms("2017-01-01"));
    assert_eq!(p.parse_ms("2017-01-01 garbage"), p.parse_ms("2017-01-01"));
    assert_eq!(p.parse_ms("2017/01/01"), None);
    assert_eq!(p.parse_ms("é"), None);
    let iso = Pattern::parse("yyyy-MM-dd'T'HH:mm:ssXXX").unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(iso.parse_ms("1970-01-01T01:00:00+01:00"), Some(0));
}

#[test]
fn timestamp_converter_cases() {
    let ts = || logical_schema(SchemaType::Int64, logical::TIMESTAMP, false);
    // (keys, input schema, input, output schema, output)
    let cases: Vec<(
        Vec<(&str, &str)>,
        Option<Schema>,
        Value,
        Option<Schema>,
        Value,
    )> = vec![
        (
            vec![("target.type", "unix")],
            Some(ts()),
            Value::Int64(1_500_000_000_123),
            Some(Schema::new(SchemaType::Int64)),
            Value::Int64(1_500_000_000_123),
        ),
        (
            vec![("target.type", "unix"), ("unix.precision", "seconds")],
            Some(ts()),
            Value::Int64(1_500_000_000_123),
            Some(Schema::new(SchemaType::Int64)),
            Value::Int64(1_500_000_000),
        ),
        (
            vec![("target.type", "Date")],
            Some(ts()),
            Value::Int64(1_500_000_000_123),
            Some(logical_schema(SchemaType::Int32, logical::DATE, false)),
            Value::Int32(17_361),
        ),
        (
            vec![("target.type", "Time")],
            Some(ts()),
            Value::Int64(1_500_000_000_123),
            Some(logical_schema(SchemaType::Int32, logical::TIME, false)),
            Value::Int32(9_600_123),
        ),
        (
            vec![("target.type", "string"), ("format", "yyyy-MM-dd HH:mm")],
            None,
            Value::Int64(1_500_000_000_123),
            None,
            s("2017-07-14 02:40"),
        ),
        (
            vec![("target.type", "Timestamp"), ("format", "yyyy-MM-dd")],
            None,
            s("2017-07-14"),
            None,
            Value::Int64(1_499_990_400_000),
        ),
        (
            vec![
                ("target.type", "Timestamp"),
                ("unix.precision", "microseconds"),
            ],
            Some(Schema::optional(SchemaType::Int64)),
            Value::Int64(1_500_000_000_123_456),
            Some(logical_schema(SchemaType::Int64, logical::TIMESTAMP, true)),
            Value::Int64(1_500_000_000_123),
        ),
    ];
    for (keys, schema, value, out_schema, out_value) in cases {
        let mut c = one("TimestampConverter$Value", &keys);
        let out = apply(
            &mut c,
            ConnectRecord::new("t", schema.map(std::sync::Arc::new), value),
        );
        assert_eq!(
            (out.value_schema.as_deref().cloned(), out.value),
            (out_schema, out_value),
            "{keys:?}"
        );
    }
}

#[test]
fn timestamp_converter_field_and_errors() {
    let mut c = one(
        "TimestampConverter$Value",
        &[
            ("field", "at"),
            ("target.type", "string"),
            ("format", "yyyy"),
        ],
    );
    let out = apply(
        &mut c,
        schemaless(Value::map_of([
            ("at", Value::Int64(0)),
            ("x", Value::Int8(1)),
        ])),
    );
    assert_eq!(
        out.value,
        Value::map_of([("at", s("1970")), ("x", Value::Int8(1))])
    );

    let schema = Schema::structure(None, vec![("at", Schema::optional(SchemaType::String))]);
    let mut c = one(
        "TimestampConverter$Value",
        &[
            ("field", "at"),
            ("target.type", "unix"),
            ("format", "yyyy-MM-dd"),
        ],
    );
    let out = apply(
        &mut c,
        schemaful(Struct {
            schema: schema.into(),
            values: vec![s("1970-01-02")],
        }),
    );
    let Value::Struct(v) = out.value else {
        panic!("not a struct")
    };
    assert_eq!(
        v.schema.fields[0].schema,
        Schema::optional(SchemaType::Int64)
    );
    assert_eq!(v.values, vec![Value::Int64(86_400_000)]);

    let mut c = one(
        "TimestampConverter$Value",
        &[("target.type", "unix"), ("format", "yyyy-MM-dd")],
    );
    assert_eq!(
        fail(&mut c, schemaless(s("nope"))),
        "could not parse timestamp: value (nope) does not match pattern (yyyy-MM-dd)"
    );
    assert_eq!(
        fail(&mut c, schemaless(Value::Boolean(true))),
        "TimestampConverter does not support class java.lang.Boolean objects as timestamps"
    );

    let found = problems(&[
        ("transforms", "c"),
        (
            "transforms.c.type",
            "org.apache.kafka.connect.transforms.TimestampConverter$Value",
        ),
        ("transforms.c.target.type", "string"),
    ]);
    assert_eq!(names(&found), vec!["transforms.c.format"]);
}

#[test]
fn timestamp_router() {
    let mut c = one("TimestampRouter", &[]);
    let mut r = schemaless(s("v"));
    r.timestamp_ms = Some(1_500_000_000_123);
    assert_eq!(apply(&mut c, r.clone()).topic, "orders-20170714");
    let mut c = one(
        "TimestampRouter",
        &[
            ("topic.format", "${timestamp}_${topic}"),
            ("timestamp.format", "yyyy-MM"),
        ],
    );
    assert_eq!(apply(&mut c, r).topic, "2017-07_orders");
    assert_eq!(
        fail(&mut c, schemaless(s("v"))),
        "timestamp missing on record: topic orders"
    );
}

// ---- RegexRouter ----

#[test]
fn regex_router_cases() {
    let cases: &[(&str, &str, &str, &str)] = &[
        ("(.*)-(\\d+)", "$1", "orders-12", "orders"),
        ("(.*)-(\\d+)", "$2_$1", "orders-12", "12_orders"),
        ("(.*)", "prefix.$1", "orders", "prefix.orders"),
        // No whole-name match: unchanged.
        ("order", "x", "orders", "orders"),
        // Java reads $10 as group 1 then "0" when there are fewer than 10 groups.
        ("(a)", "$10", "a", "a0"),
        ("(?P<name>.*)", "${name}!", "orders", "orders!"),
        ("(.*)", "\\$1", "orders", "$1"),
    ];
    for (regex, replacement, topic, want) in cases {
        let mut c = one(
            "RegexRouter",
            &[("regex", regex), ("replacement", replacement)],
        );
        assert_eq!(
            apply(&mut c, ConnectRecord::new(topic, None, Value::Null)).topic,
            *want,
            "{regex} {replacement}"
        );
    }
    let found = problems(&[
        ("transforms", "r"),
        (
            "transforms.r.type",
            "org.apache.kafka.connect.transforms.RegexRouter",
        ),
        ("transforms.r.regex", "(a"),
    ]);
    assert_eq!(
        names(&found),
        vec!["transforms.r.replacement", "transforms.r.regex"]
    );
    let found = problems(&[
        ("transforms", "r"),
        (
            "transforms.r.type",
            "org.apache.kafka.connect.transforms.RegexRouter",
        ),
        ("transforms.r.regex", "(a)"),
        ("transforms.r.replacement", "$2"),
    ]);
    assert_eq!(names(&found), vec!["transforms.r.replacement"]);
}

// ---- Debezium ExtractNewRecordState ----

const ENR: &str = "io.debezium.transforms.ExtractNewRecordState";

fn row_schema() -> Schema {
    Schema::structure(
        Some("db.inv.customers.Value"),
        vec![
            ("id", Schema::new(SchemaType::Int32)),
            ("name", Schema::optional(SchemaType::String)),
        ],
    )
    .into_optional()
}

fn envelope(op: &str, before: Option<(i32, &str)>, after: Option<(i32, &str)>) -> ConnectRecord {
    let source = Schema::structure(
        Some("io.debezium.connector.postgresql.Source"),
        vec![
            ("table", Schema::new(SchemaType::String)),
            ("lsn", Schema::optional(SchemaType::Int64)),
            ("ts_ms", Schema::new(SchemaType::Int64)),
        ],
    );
    let schema = Schema::structure(
        Some("db.inv.customers.Envelope"),
        vec![
            ("before", row_schema()),
            ("after", row_schema()),
            ("source", source.clone()),
            ("op", Schema::new(SchemaType::String)),
            ("ts_ms", Schema::optional(SchemaType::Int64)),
        ],
    );
    let row = |r: Option<(i32, &str)>| match r {
        Some((id, name)) => Value::Struct(Struct {
            schema: row_schema().into(),
            values: vec![Value::Int32(id), s(name)],
        }),
        None => Value::Null,
    };
    let source_value = Struct {
        schema: source.into(),
        values: vec![s("customers"), Value::Int64(33), Value::Int64(1000)],
    };
    let value = Struct {
        schema: schema.into(),
        values: vec![
            row(before),
            row(after),
            Value::Struct(source_value),
            s(op),
            Value::Int64(2000),
        ],
    };
    schemaful(value)
}

#[test]
fn extract_new_record_state_unwraps_after() {
    let mut c = one(ENR, &[]);
    let out = apply(&mut c, envelope("u", Some((1, "a")), Some((1, "b"))));
    assert_eq!(out.value_schema.as_deref(), Some(&row_schema()));
    assert_eq!(
        out.value,
        Value::Struct(Struct {
            schema: row_schema().into(),
            values: vec![Value::Int32(1), s("b")]
        })
    );
    // Not an envelope: unchanged.
    let plain = schemaful(person("ann", 3));
    assert_eq!(apply(&mut c, plain.clone()), plain);
}

#[test]
fn extract_new_record_state_delete_and_tombstone_modes() {
    // (keys, delete kept as, tombstone kept)
    let cases: Vec<(Vec<(&str, &str)>, Option<Option<&str>>, bool)> = vec![
        (vec![], None, false),
        (vec![("drop.tombstones", "false")], None, true),
        (vec![("delete.handling.mode", "none")], Some(None), false),
        (
            vec![("delete.handling.mode", "rewrite")],
            Some(Some("true")),
            false,
        ),
        (
            vec![("delete.tombstone.handling.mode", "tombstone")],
            Some(None),
            true,
        ),
        (
            vec![("delete.tombstone.handling.mode", "rewrite")],
            Some(Some("true")),
            false,
        ),
        (
            vec![
                ("delete.tombstone.handling.mode", "rewrite-with-tombstone"),
                ("drop.tombstones", "true"),
            ],
            Some(Some("true")),
            true,
        ),
        (
            vec![
                ("delete.tombstone.handling.mode", "drop"),
                ("drop.tombstones", "false"),
            ],
            None,
            false,
        ),
    ];
    for (keys, delete, tombstone) in cases {
        let mut c = one(ENR, &keys);
        let out = c
            .apply(envelope("d", Some((1, "a")), None))
            .map_err(|e| e.to_string());
        match (delete, out) {
            (None, Ok(None)) => {}
            (Some(None), Ok(Some(r))) => assert_eq!(r.value, Value::Null, "{keys:?}"),
            (Some(Some(flag)), Ok(Some(r))) => {
                // rewrite: the before state with __deleted.
                assert_eq!(r.value.get("id"), Some(&Value::Int32(1)), "{keys:?}");
                assert_eq!(r.value.get("__deleted"), Some(&s(flag)), "{keys:?}");
            }
            (want, got) => panic!("{keys:?}: wanted {want:?}, got {got:?}"),
        }
        let kept = c.apply(schemaless(Value::Null)).map_err(|e| e.to_string());
        assert_eq!(kept.map(|r| r.is_some()), Ok(tombstone), "{keys:?}");
    }
    // With rewrite, other events say __deleted=false.
    let mut c = one(ENR, &[("delete.handling.mode", "rewrite")]);
    let out = apply(&mut c, envelope("c", None, Some((2, "b"))));
    assert_eq!(out.value.get("__deleted"), Some(&s("false")));
}

#[test]
fn extract_new_record_state_add_fields_and_headers() {
    let mut c = one(
        ENR,
        &[
            ("add.fields", "op,table,source.ts_ms,ts_ms"),
            ("add.headers", "op,lsn"),
        ],
    );
    let out = apply(&mut c, envelope("c", None, Some((2, "b"))));
    let Value::Struct(v) = out.value else {
        panic!("not a struct")
    };
    assert_eq!(
        field_names(&v.schema),
        vec!["id", "name", "__op", "__table", "__source_ts_ms", "__ts_ms"]
    );
    assert!(
        v.schema.fields[2..]
            .iter()
            .all(|f: &Field| f.schema.optional)
    );
    assert_eq!(
        v.values[2..],
        [
            s("c"),
            s("customers"),
            Value::Int64(1000),
            Value::Int64(2000)
        ]
    );
    assert_eq!(
        out.headers,
        vec![
            ("__op".to_string(), Some(Bytes::from_static(b"c"))),
            ("__lsn".to_string(), Some(Bytes::from_static(b"33")))
        ]
    );

    let mut c = one(ENR, &[("add.fields", "op"), ("add.fields.prefix", "cdc_")]);
    let env = Value::map_of([
        ("before", Value::Null),
        ("after", Value::map_of([("id", Value::Int32(5))])),
        ("op", s("r")),
        ("source", Value::map_of([])),
    ]);
    let out = apply(&mut c, schemaless(env));
    assert_eq!(
        out.value,
        Value::map_of([("id", Value::Int32(5)), ("cdc_op", s("r"))])
    );
}

#[test]
fn extract_new_record_state_config_problems() {
    let found = problems(&[
        ("transforms", "u"),
        ("transforms.u.type", ENR),
        ("transforms.u.delete.handling.mode", "keep"),
        ("transforms.u.delete.tombstone.handling.mode", "nope"),
    ]);
    assert_eq!(
        names(&found),
        vec![
            "transforms.u.delete.handling.mode",
            "transforms.u.delete.tombstone.handling.mode"
        ]
    );
}

#[test]
fn chain_runs_transforms_in_order() {
    let p = props(&[
        ("transforms", "unwrap,route,mask"),
        ("transforms.unwrap.type", ENR),
        (
            "transforms.route.type",
            "org.apache.kafka.connect.transforms.RegexRouter",
        ),
        ("transforms.route.regex", "(.*)"),
        ("transforms.route.replacement", "cdc.$1"),
        (
            "transforms.mask.type",
            "org.apache.kafka.connect.transforms.MaskField$Value",
        ),
        ("transforms.mask.fields", "name"),
    ]);
    let mut c = match chain(&p) {
        Ok(c) => c,
        Err(e) => panic!("{e:?}"),
    };
    assert_eq!(c.aliases(), vec!["unwrap", "route", "mask"]);
    let out = apply(&mut c, envelope("c", None, Some((2, "b"))));
    assert_eq!(out.topic, "cdc.orders");
    assert_eq!(out.value.get("name"), Some(&s("")));
}
