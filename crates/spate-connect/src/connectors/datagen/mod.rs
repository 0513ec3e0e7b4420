//! Confluent's kafka-connect-datagen (`io.confluent.kafka.connect.datagen.DatagenConnector`):
//! a source of mock records generated from an Avro schema with Avro Random Generator's hints,
//! one of the bundled quickstarts (`users`, `pageviews`, `orders`, ...) or the user's own
//! (`schema.string`, `schema.filename`), under datagen's config keys.
//!
//! Each task generates on its own: source partition `{"task.id": n}`, source offset
//! `{"task.generation", "current.iteration", "random.seed"}` holding the task's *next* state (as
//! datagen stores it), so a restarted task goes on with the same iteration count and random
//! sequence. Records carry datagen's headers `task.generation`, `task.id` and
//! `current.iteration` (as `SimpleHeaderConverter` writes longs: decimal text). `max.interval`
//! is honoured without sleeping: each record is due a random `0..max.interval` ms after the one
//! before, and a poll returns the records due by now, so stopping never waits on the pacing.
//!
//! The quickstart schemas under `quickstarts/` are re-typed from kafka-connect-datagen's
//! `src/main/resources` (Apache License 2.0), the same fields and hints.

mod avro;
mod regex_gen;

use std::time::{Duration, Instant};

use bytes::Bytes;
use rand::rngs::StdRng;
use rand::{Rng, RngExt, SeedableRng};
use serde_json::{Value as Json, json};

use crate::config::{ConfigProblem, Props};
use crate::convert;
use crate::data::{ConnectRecord, Schema, SchemaType, Value};
use crate::plugin::{ConfigKey, Connector, ConnectorKind, OffsetReader, SourceTask, TaskError};

/// `io.confluent.kafka.connect.datagen.DatagenConnector`.
pub struct Datagen;

const KAFKA_TOPIC: &str = "kafka.topic";
const MAX_INTERVAL: &str = "max.interval";
const ITERATIONS: &str = "iterations";
const SCHEMA_STRING: &str = "schema.string";
const SCHEMA_FILENAME: &str = "schema.filename";
const SCHEMA_KEYFIELD: &str = "schema.keyfield";
const QUICKSTART: &str = "quickstart";
const RANDOM_SEED: &str = "random.seed";

/// The task config key the connector adds (datagen's `DatagenTask.TASK_ID`).
const TASK_ID: &str = "task.id";
const TASK_GENERATION: &str = "task.generation";
const CURRENT_ITERATION: &str = "current.iteration";

/// `max.interval`'s default, in milliseconds.
const DEFAULT_MAX_INTERVAL_MS: u64 = 500;
/// Records one poll returns at most, however many are due (`max.interval` 0 is unpaced).
const MAX_RECORDS_PER_POLL: usize = 500;
/// How far behind its schedule a task may fall before it forgets the backlog (after a pause or a
/// slow producer) instead of bursting to catch up.
const MAX_BACKLOG: Duration = Duration::from_secs(1);

/// The quickstarts: name, Avro schema, key field.
const QUICKSTARTS: &[(&str, &str, &str)] = &[
    (
        "clickstream_codes",
        include_str!("quickstarts/clickstream_codes.avro"),
        "code",
    ),
    ("orders", include_str!("quickstarts/orders.avro"), "orderid"),
    (
        "ratings",
        include_str!("quickstarts/ratings.avro"),
        "rating_id",
    ),
    ("users", include_str!("quickstarts/users.avro"), "userid"),
    (
        "pageviews",
        include_str!("quickstarts/pageviews.avro"),
        "viewtime",
    ),
    (
        "stock_trades",
        include_str!("quickstarts/stock_trades.avro"),
        "symbol",
    ),
    (
        "inventory",
        include_str!("quickstarts/inventory.avro"),
        "id",
    ),
    ("product", include_str!("quickstarts/product.avro"), "id"),
    (
        "purchases",
        include_str!("quickstarts/purchases.avro"),
        "id",
    ),
    (
        "transactions",
        include_str!("quickstarts/transactions.avro"),
        "transaction_id",
    ),
    (
        "stores",
        include_str!("quickstarts/stores.avro"),
        "store_id",
    ),
    (
        "credit_cards",
        include_str!("quickstarts/credit_cards.avro"),
        "card_id",
    ),
];

fn quickstart(name: &str) -> Option<(&'static str, &'static str)> {
    QUICKSTARTS
        .iter()
        .find(|(q, _, _)| q.eq_ignore_ascii_case(name.trim()))
        .map(|(_, schema, key)| (*schema, *key))
}

fn non_empty<'a>(props: &'a Props, key: &str) -> Option<&'a str> {
    props.get(key).map(|v| v.trim()).filter(|v| !v.is_empty())
}

/// The schema a config names, its key field, or the problem with them.
fn schema_of(props: &Props) -> Result<(avro::Node, String), ConfigProblem> {
    let sources: Vec<&str> = [QUICKSTART, SCHEMA_STRING, SCHEMA_FILENAME]
        .into_iter()
        .filter(|k| non_empty(props, k).is_some())
        .collect();
    let keyfield = non_empty(props, SCHEMA_KEYFIELD).map(str::to_string);
    let (text, default_key, source) = match sources.as_slice() {
        [] => {
            return Err(ConfigProblem::new(
                QUICKSTART,
                "set one of quickstart, schema.string or schema.filename to say what to generate",
            ));
        }
        [_, second, ..] => {
            return Err(ConfigProblem::new(
                *second,
                format!(
                    "set only one of quickstart, schema.string and schema.filename, not {}",
                    sources.join(" and ")
                ),
            ));
        }
        [QUICKSTART] => {
            let name = non_empty(props, QUICKSTART).unwrap_or_default();
            let Some((text, key)) = quickstart(name) else {
                let known: Vec<&str> = QUICKSTARTS.iter().map(|(q, _, _)| *q).collect();
                return Err(ConfigProblem::new(
                    QUICKSTART,
                    format!("unknown quickstart {name}; use one of {}", known.join(", ")),
                ));
            };
            (text.to_string(), Some(key), QUICKSTART)
        }
        [SCHEMA_STRING] => (
            non_empty(props, SCHEMA_STRING)
                .unwrap_or_default()
                .to_string(),
            None,
            SCHEMA_STRING,
        ),
        [_] => {
            let path = non_empty(props, SCHEMA_FILENAME).unwrap_or_default();
            let text = std::fs::read_to_string(path).map_err(|e| {
                ConfigProblem::new(
                    SCHEMA_FILENAME,
                    format!("cannot read the schema file {path}: {e}"),
                )
            })?;
            (text, None, SCHEMA_FILENAME)
        }
    };
    let node = avro::parse(&text).map_err(|e| {
        ConfigProblem::new(source, format!("unable to parse the provided schema: {e}"))
    })?;
    let keyfield = keyfield
        .or(default_key.map(str::to_string))
        .unwrap_or_default();
    if !keyfield.is_empty() && !node.field_names().contains(&keyfield.as_str()) {
        return Err(ConfigProblem::new(
            SCHEMA_KEYFIELD,
            format!(
                "the schema has no field {keyfield}; use one of {}",
                node.field_names().join(", ")
            ),
        ));
    }
    Ok((node, keyfield))
}

impl Connector for Datagen {
    fn class(&self) -> &'static str {
        "io.confluent.kafka.connect.datagen.DatagenConnector"
    }

    fn kind(&self) -> ConnectorKind {
        ConnectorKind::Source
    }

    fn config_keys(&self) -> Vec<ConfigKey> {
        let high = |key: ConfigKey| ConfigKey {
            importance: "HIGH",
            ..key
        };
        vec![
            ConfigKey::required(KAFKA_TOPIC, "STRING", "Topic to write to"),
            high(ConfigKey::optional(
                MAX_INTERVAL,
                "LONG",
                "500",
                "Max interval between messages (ms)",
            )),
            high(ConfigKey::optional(
                ITERATIONS,
                "INT",
                "-1",
                "Number of messages to send from each task, or less than 1 for unlimited",
            )),
            high(ConfigKey::optional(
                SCHEMA_STRING,
                "STRING",
                "",
                "The literal JSON-encoded Avro schema to use. Cannot be set with schema.filename or quickstart",
            )),
            high(ConfigKey::optional(
                SCHEMA_FILENAME,
                "STRING",
                "",
                "Filename of schema to use. Cannot be set with schema.string or quickstart",
            )),
            high(ConfigKey::optional(
                SCHEMA_KEYFIELD,
                "STRING",
                "",
                "Name of field to use as the message key",
            )),
            high(ConfigKey::optional(
                QUICKSTART,
                "STRING",
                "",
                "Name of quickstart to use. Cannot be set with schema.string or schema.filename",
            )),
            ConfigKey {
                importance: "LOW",
                ..ConfigKey::optional(
                    RANDOM_SEED,
                    "LONG",
                    "",
                    "Numeric seed for generating random data. Two connectors started with the same seed will deterministically produce the same data. Each task will generate different data than the other tasks in the same connector.",
                )
            },
        ]
    }

    fn validate(&self, props: &Props) -> Vec<ConfigProblem> {
        // Whether numbers parse is the runtime's check, from the keys' types.
        let mut problems = Vec::new();
        if let Some(interval) = props
            .get(MAX_INTERVAL)
            .and_then(|v| v.trim().parse::<i64>().ok())
            && interval < 0
        {
            problems.push(ConfigProblem::new(
                MAX_INTERVAL,
                format!("Invalid value {interval} for configuration max.interval: Value must be at least 0"),
            ));
        }
        if let Err(problem) = schema_of(props) {
            problems.push(problem);
        }
        problems
    }

    fn task_configs(&self, props: &Props, max_tasks: usize) -> Result<Vec<Props>, TaskError> {
        Ok((0..max_tasks.max(1))
            .map(|id| {
                let mut config = props.clone();
                config.insert(TASK_ID.to_string(), id.to_string());
                config
            })
            .collect())
    }

    fn source_task(&self) -> Option<Box<dyn SourceTask>> {
        Some(Box::new(DatagenTask::new(Box::new(Instant::now))))
    }
}

/// Where a task reads the time: the system clock, or a test's.
type Clock = Box<dyn Fn() -> Instant + Send>;

struct DatagenTask {
    clock: Clock,
    topic: String,
    max_interval_ms: u64,
    /// Records to generate in all (`iterations`), or none for no limit.
    max_records: Option<u64>,
    schema: Option<avro::Node>,
    value_schema: Option<std::sync::Arc<Schema>>,
    keyfield: String,
    task_id: u32,
    generation: i64,
    /// Records generated so far over the task's lifetimes.
    count: u64,
    rng: StdRng,
    next_due: Option<Instant>,
    finished_logged: bool,
}

impl DatagenTask {
    fn new(clock: Clock) -> DatagenTask {
        DatagenTask {
            clock,
            topic: String::new(),
            max_interval_ms: DEFAULT_MAX_INTERVAL_MS,
            max_records: None,
            schema: None,
            value_schema: None,
            keyfield: String::new(),
            task_id: 0,
            generation: 0,
            count: 0,
            rng: StdRng::seed_from_u64(0),
            next_due: None,
            finished_logged: false,
        }
    }

    fn partition(&self) -> Json {
        json!({ TASK_ID: self.task_id })
    }

    /// The next record; advances the random state as datagen does, re-seeding from itself so
    /// that the seed can be stored in the source offset.
    fn record(&mut self) -> Result<ConnectRecord, TaskError> {
        let Some(node) = &self.schema else {
            return Err(TaskError::fatal("the datagen task was not started"));
        };
        let value = node.generate(&mut self.rng, self.count);
        let key = match &value {
            Value::Struct(s) if !self.keyfield.is_empty() => s.get(&self.keyfield).cloned(),
            _ => None,
        };
        let (key_schema, key) = match key {
            Some(Value::Null) | None => (Schema::optional(SchemaType::String), Value::Null),
            Some(Value::String(s)) => (Schema::new(SchemaType::String), Value::String(s)),
            Some(other) => {
                let field_schema = self
                    .value_schema
                    .as_ref()
                    .and_then(|s| s.field(&self.keyfield))
                    .map(|f| &f.schema);
                let text = match convert::connect_to_json(field_schema, &other) {
                    Json::String(s) => s,
                    json => json.to_string(),
                };
                (Schema::new(SchemaType::String), Value::String(text))
            }
        };
        let seed = self.rng.next_u64();
        self.rng = StdRng::seed_from_u64(seed);
        let mut record = ConnectRecord::new(&self.topic, self.value_schema.clone(), value);
        record.key_schema = Some(key_schema.into());
        record.key = key;
        record.source_partition = Some(self.partition());
        record.source_offset = Some(json!({
            TASK_GENERATION: self.generation + 1,
            CURRENT_ITERATION: self.count + 1,
            RANDOM_SEED: seed as i64,
        }));
        record.headers = vec![
            header(TASK_GENERATION, self.generation),
            header(TASK_ID, i64::from(self.task_id)),
            header(CURRENT_ITERATION, self.count as i64),
        ];
        self.count += 1;
        Ok(record)
    }

    fn finished(&self) -> bool {
        self.max_records.is_some_and(|max| self.count >= max)
    }
}

fn header(name: &str, value: i64) -> (String, Option<Bytes>) {
    (name.to_string(), Some(Bytes::from(value.to_string())))
}

fn config_error(problem: ConfigProblem) -> TaskError {
    TaskError::fatal(format!("{}: {}", problem.name, problem.message))
}

impl SourceTask for DatagenTask {
    fn start(&mut self, props: &Props, offsets: &dyn OffsetReader) -> Result<(), TaskError> {
        let parse = |key: &str| -> Result<Option<i64>, TaskError> {
            match non_empty(props, key) {
                None => Ok(None),
                Some(v) => v
                    .parse()
                    .map(Some)
                    .map_err(|_| TaskError::fatal(format!("{key}: {v} is not a whole number"))),
            }
        };
        self.topic = non_empty(props, KAFKA_TOPIC)
            .ok_or_else(|| TaskError::fatal("kafka.topic: set the topic to write to"))?
            .to_string();
        self.max_interval_ms =
            parse(MAX_INTERVAL)?.map_or(DEFAULT_MAX_INTERVAL_MS, |ms| ms.max(0) as u64);
        self.max_records = parse(ITERATIONS)?.filter(|&n| n > 0).map(|n| n as u64);
        self.task_id = parse(TASK_ID)?.unwrap_or(0).clamp(0, i64::from(u32::MAX)) as u32;
        let (schema, keyfield) = schema_of(props).map_err(config_error)?;
        self.value_schema = Some(schema.connect_schema().into());
        self.schema = Some(schema);
        self.keyfield = keyfield;

        // As datagen: a seed gives every task its own deterministic sequence (task n re-seeds
        // n times from the seed); without one, the sequence is the system's randomness.
        self.rng = match parse(RANDOM_SEED)? {
            Some(seed) => {
                let mut rng = StdRng::seed_from_u64(seed as u64);
                for _ in 0..self.task_id {
                    rng = StdRng::seed_from_u64(rng.next_u64());
                }
                rng
            }
            None => StdRng::seed_from_u64(rand::rng().next_u64()),
        };
        self.generation = 0;
        self.count = 0;
        if let Some(offset) = offsets.offset(&self.partition()) {
            // The stored offset is the next state; restore it as it is.
            self.generation = offset
                .get(TASK_GENERATION)
                .and_then(Json::as_i64)
                .unwrap_or(0);
            self.count = offset
                .get(CURRENT_ITERATION)
                .and_then(Json::as_u64)
                .unwrap_or(0);
            if let Some(seed) = offset.get(RANDOM_SEED).and_then(Json::as_i64) {
                self.rng = StdRng::seed_from_u64(seed as u64);
            }
        }
        self.next_due = None;
        self.finished_logged = false;
        Ok(())
    }

    fn poll(&mut self) -> Result<Vec<ConnectRecord>, TaskError> {
        let mut records = Vec::new();
        if self.finished() {
            if !self.finished_logged {
                tracing::info!(
                    topic = %self.topic,
                    task = self.task_id,
                    iterations = self.count,
                    "datagen task generated its configured iterations and is idle"
                );
                self.finished_logged = true;
            }
            return Ok(records);
        }
        let now = (self.clock)();
        let mut due = match self.next_due {
            Some(due) if due + MAX_BACKLOG >= now => due,
            _ => now,
        };
        while due <= now && records.len() < MAX_RECORDS_PER_POLL && !self.finished() {
            records.push(self.record()?);
            let wait_ms = if self.max_interval_ms == 0 {
                0
            } else {
                self.rng.random_range(0..self.max_interval_ms)
            };
            due += Duration::from_millis(wait_ms);
        }
        self.next_due = Some(due);
        Ok(records)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::sync::Arc;

    use parking_lot::Mutex;

    use super::*;
    use crate::data::Struct;

    struct NoOffsets;

    impl OffsetReader for NoOffsets {
        fn offset(&self, _partition: &Json) -> Option<Json> {
            None
        }
    }

    struct StoredOffsets(BTreeMap<String, Json>);

    impl OffsetReader for StoredOffsets {
        fn offset(&self, partition: &Json) -> Option<Json> {
            self.0.get(&partition.to_string()).cloned()
        }
    }

    fn props(pairs: &[(&str, &str)]) -> Props {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn started(pairs: &[(&str, &str)], offsets: &dyn OffsetReader) -> DatagenTask {
        let mut task = DatagenTask::new(Box::new(Instant::now));
        let mut config = props(&[("kafka.topic", "t"), ("max.interval", "0")]);
        config.extend(props(pairs));
        task.start(&config, offsets).expect("task starts");
        task
    }

    fn generate(task: &mut DatagenTask, n: usize) -> Vec<ConnectRecord> {
        let mut records = Vec::new();
        while records.len() < n {
            let polled = task.poll().expect("poll");
            assert!(!polled.is_empty(), "an unpaced task always has records due");
            records.extend(polled);
        }
        records.truncate(n);
        records
    }

    fn structure(record: &ConnectRecord) -> &Struct {
        match &record.value {
            Value::Struct(s) => s,
            other => panic!("not a struct: {other:?}"),
        }
    }

    #[test]
    fn every_quickstart_parses_and_generates_values_of_its_schema() {
        for (name, _, key) in QUICKSTARTS {
            let mut task = started(&[("quickstart", name), ("random.seed", "1")], &NoOffsets);
            for record in generate(&mut task, 50) {
                let value = structure(&record);
                assert_eq!(
                    Some(&*value.schema),
                    record.value_schema.as_deref(),
                    "{name}"
                );
                assert_eq!(value.values.len(), value.schema.fields.len(), "{name}");
                for (field, v) in value.schema.fields.iter().zip(&value.values) {
                    assert!(
                        !v.is_null() || field.schema.optional,
                        "{name}.{}",
                        field.name
                    );
                }
                assert!(record.key.as_str().is_some(), "{name} keyed by {key}");
            }
        }
    }

    #[test]
    fn users_schema_is_named_and_typed_as_datagen_names_it() {
        let (node, key) = schema_of(&props(&[("quickstart", "users")])).expect("schema");
        assert_eq!(key, "userid");
        let schema = node.connect_schema();
        assert_eq!(schema.kind, SchemaType::Struct);
        assert_eq!(schema.name.as_deref(), Some("ksql.users"));
        let fields: Vec<(&str, SchemaType, bool)> = schema
            .fields
            .iter()
            .map(|f| (f.name.as_str(), f.schema.kind, f.schema.optional))
            .collect();
        assert_eq!(
            fields,
            vec![
                ("registertime", SchemaType::Int64, false),
                ("userid", SchemaType::String, false),
                ("regionid", SchemaType::String, false),
                ("gender", SchemaType::String, false),
            ]
        );
        let orders = schema_of(&props(&[("quickstart", "orders")]))
            .expect("schema")
            .0
            .connect_schema();
        let address = &orders.field("address").expect("address").schema;
        assert_eq!(address.name.as_deref(), Some("ksql.address"));
        assert_eq!(
            address.field("zipcode").map(|f| f.schema.kind),
            Some(SchemaType::Int64)
        );
        let orderunits = &orders.field("orderunits").expect("orderunits").schema;
        assert_eq!(orderunits.kind, SchemaType::Float64);
    }

    #[test]
    fn nullable_unions_enums_arrays_and_maps_convert_as_avro_data_does() {
        let text = r#"{"type": "record", "name": "r", "namespace": "n", "fields": [
            {"name": "maybe", "type": ["null", "string"]},
            {"name": "either", "type": ["int", "string"]},
            {"name": "colour", "type": {"type": "enum", "name": "Colour", "symbols": ["RED", "BLUE"]}},
            {"name": "tags", "type": {"type": "array", "items": "string", "arg.properties": {"length": 3}}},
            {"name": "counts", "type": {"type": "map", "values": "long"}},
            {"name": "when", "type": {"type": "long", "logicalType": "timestamp-millis"}}
        ]}"#;
        let node = avro::parse(text).expect("parses");
        let schema = node.connect_schema();
        let field = |name: &str| schema.field(name).expect(name).schema.clone();
        assert_eq!(schema.name.as_deref(), Some("n.r"));
        assert!(field("maybe").optional);
        assert_eq!(field("maybe").kind, SchemaType::String);
        assert_eq!(
            field("either").name.as_deref(),
            Some("io.confluent.connect.avro.Union")
        );
        assert_eq!(field("colour").name.as_deref(), Some("n.Colour"));
        assert_eq!(field("tags").kind, SchemaType::Array);
        assert_eq!(field("counts").kind, SchemaType::Map);
        assert!(field("when").is_logical(crate::data::logical::TIMESTAMP));
        let mut rng = StdRng::seed_from_u64(3);
        for _ in 0..50 {
            let Value::Struct(value) = node.generate(&mut rng, 0) else {
                panic!("not a struct")
            };
            match value.get("tags") {
                Some(Value::Array(tags)) => assert_eq!(tags.len(), 3),
                other => panic!("tags {other:?}"),
            }
            match value.get("colour") {
                Some(Value::String(c)) => assert!(c == "RED" || c == "BLUE"),
                other => panic!("colour {other:?}"),
            }
            match value.get("either") {
                Some(Value::Struct(u)) => {
                    assert_eq!(u.values.iter().filter(|v| !v.is_null()).count(), 1)
                }
                other => panic!("either {other:?}"),
            }
        }
    }

    #[test]
    fn generation_honours_range_options_iteration_and_regex() {
        let mut task = started(&[("quickstart", "stock_trades")], &NoOffsets);
        let shape = regex::Regex::new("^User_[1-9]?$").expect("valid");
        for record in generate(&mut task, 300) {
            let value = structure(&record);
            let quantity = value.get("quantity").and_then(Value::as_i64).expect("int");
            assert!((1..5000).contains(&quantity), "quantity {quantity}");
            let side = value.get("side").and_then(Value::as_str).expect("side");
            assert!(["BUY", "SELL", "SHORT"].contains(&side), "side {side}");
            let user = value.get("userid").and_then(Value::as_str).expect("user");
            assert!(shape.is_match(user), "userid {user}");
        }
        let mut task = started(&[("quickstart", "pageviews")], &NoOffsets);
        let views: Vec<i64> = generate(&mut task, 5)
            .iter()
            .map(|r| {
                structure(r)
                    .get("viewtime")
                    .and_then(Value::as_i64)
                    .expect("long")
            })
            .collect();
        assert_eq!(views, vec![1, 11, 21, 31, 41]);
        let mut task = started(&[("quickstart", "orders")], &NoOffsets);
        for record in generate(&mut task, 100) {
            let Some(Value::Float64(units)) = structure(&record).get("orderunits") else {
                panic!("orderunits")
            };
            assert!((0.1..10.0).contains(units), "orderunits {units}");
        }
        let mut task = started(&[("quickstart", "stores")], &NoOffsets);
        for record in generate(&mut task, 50) {
            let value = structure(&record);
            let id = value.get("store_id").and_then(Value::as_i64).expect("id");
            let city = value.get("city").and_then(Value::as_str).expect("city");
            let expected = [
                "Raleigh",
                "Chicago",
                "Mexico City",
                "Toronto",
                "Paris",
                "London",
                "Milan",
            ];
            assert_eq!(
                city,
                expected[(id - 1) as usize],
                "whole records come from options"
            );
        }
    }

    #[test]
    fn the_same_seed_gives_the_same_records_and_tasks_differ() {
        let values = |task_id: &str| -> Vec<Value> {
            let mut task = started(
                &[
                    ("quickstart", "users"),
                    ("random.seed", "42"),
                    ("task.id", task_id),
                ],
                &NoOffsets,
            );
            generate(&mut task, 20)
                .into_iter()
                .map(|r| r.value)
                .collect()
        };
        assert_eq!(values("0"), values("0"));
        assert_ne!(values("0"), values("1"));
    }

    #[test]
    fn keys_headers_and_offsets_are_datagens() {
        let mut task = started(&[("quickstart", "users"), ("task.id", "2")], &NoOffsets);
        let records = generate(&mut task, 3);
        for (i, record) in records.iter().enumerate() {
            assert_eq!(
                record.key_schema,
                Some(std::sync::Arc::new(Schema::new(SchemaType::String)))
            );
            assert_eq!(
                record.key.as_str(),
                structure(record).get("userid").and_then(Value::as_str)
            );
            assert_eq!(record.source_partition, Some(json!({"task.id": 2})));
            let offset = record.source_offset.as_ref().expect("offset");
            assert_eq!(offset["current.iteration"], json!(i + 1));
            assert_eq!(offset["task.generation"], json!(1));
            assert_eq!(
                record.header("current.iteration"),
                Some(&Some(Bytes::from(i.to_string())))
            );
            assert_eq!(record.header("task.id"), Some(&Some(Bytes::from("2"))));
        }
        // A numeric key field gives its decimal text; no key field gives a null key.
        let mut task = started(&[("quickstart", "pageviews")], &NoOffsets);
        assert_eq!(
            generate(&mut task, 1)[0].key,
            Value::String("1".to_string())
        );
        let schema = r#"{"type": "record", "name": "r", "fields": [{"name": "a", "type": "int"}]}"#;
        let mut task = started(&[("schema.string", schema)], &NoOffsets);
        let record = &generate(&mut task, 1)[0];
        assert_eq!(record.key, Value::Null);
        assert_eq!(
            record.key_schema,
            Some(std::sync::Arc::new(Schema::optional(SchemaType::String)))
        );
    }

    #[test]
    fn a_restarted_task_continues_its_iteration_count_and_random_sequence() {
        let config = [("quickstart", "orders"), ("random.seed", "9")];
        let mut first = started(&config, &NoOffsets);
        let records = generate(&mut first, 10);
        let last = &records[4];
        let stored = StoredOffsets(BTreeMap::from([(
            json!({"task.id": 0}).to_string(),
            last.source_offset.clone().expect("offset"),
        )]));
        let mut restarted = started(&config, &stored);
        let again = generate(&mut restarted, 5);
        for (before, after) in records[5..].iter().zip(&again) {
            assert_eq!(before.value, after.value);
            assert_eq!(
                before
                    .source_offset
                    .as_ref()
                    .map(|o| &o["current.iteration"]),
                after
                    .source_offset
                    .as_ref()
                    .map(|o| &o["current.iteration"])
            );
        }
        assert_eq!(
            again[0]
                .source_offset
                .as_ref()
                .map(|o| &o["task.generation"]),
            Some(&json!(2))
        );
        assert_eq!(
            structure(&again[0]).get("orderid").and_then(Value::as_i64),
            Some(5),
            "orderid iterates on from the stored count"
        );
    }

    #[test]
    fn iterations_bound_the_records_then_the_task_idles() {
        let mut task = started(&[("quickstart", "users"), ("iterations", "7")], &NoOffsets);
        let mut total = 0;
        for _ in 0..5 {
            total += task.poll().expect("poll").len();
        }
        assert_eq!(total, 7);
    }

    #[test]
    fn max_interval_paces_records_by_the_clock_without_sleeping() {
        let now = Arc::new(Mutex::new(Instant::now()));
        let clock = Arc::clone(&now);
        let mut task = DatagenTask::new(Box::new(move || *clock.lock()));
        let config = props(&[
            ("kafka.topic", "t"),
            ("quickstart", "users"),
            ("max.interval", "100"),
            ("random.seed", "5"),
        ]);
        task.start(&config, &NoOffsets).expect("start");
        let started_at = Instant::now();
        let mut total = task.poll().expect("poll").len();
        assert!(total >= 1, "the first record is due at once");
        for _ in 0..100 {
            *now.lock() += Duration::from_millis(10);
            total += task.poll().expect("poll").len();
        }
        // One second at a mean of 50 ms per record: about 20.
        assert!(
            (10..=40).contains(&total),
            "{total} records in a simulated second"
        );
        assert!(
            started_at.elapsed() < Duration::from_secs(1),
            "poll never sleeps"
        );
    }

    #[test]
    fn bad_configs_name_the_key() {
        let problems = |pairs: &[(&str, &str)]| -> Vec<String> {
            let mut config = props(&[("kafka.topic", "t")]);
            config.extend(props(pairs));
            Datagen
                .validate(&config)
                .into_iter()
                .map(|p| p.name)
                .collect()
        };
        assert_eq!(problems(&[("quickstart", "users")]), Vec::<String>::new());
        assert_eq!(problems(&[("quickstart", "nope")]), vec!["quickstart"]);
        assert_eq!(problems(&[]), vec!["quickstart"]);
        assert_eq!(
            problems(&[("schema.string", "{not json")]),
            vec!["schema.string"]
        );
        assert_eq!(
            problems(&[("schema.string", r#"{"type": "string"}"#)]),
            vec!["schema.string"]
        );
        assert_eq!(
            problems(&[(
                "schema.string",
                r#"{"type": "record", "name": "r", "fields": [{"name": "a", "type": {"type": "string", "arg.properties": {"regex": "[a-"}}}]}"#
            )]),
            vec!["schema.string"]
        );
        assert_eq!(
            problems(&[("quickstart", "users"), ("schema.string", "{}")]),
            vec!["schema.string"]
        );
        assert_eq!(
            problems(&[("schema.filename", "/no/such/schema.avsc")]),
            vec!["schema.filename"]
        );
        assert_eq!(
            problems(&[("quickstart", "users"), ("schema.keyfield", "nope")]),
            vec!["schema.keyfield"]
        );
        assert_eq!(
            problems(&[("quickstart", "users"), ("max.interval", "-1")]),
            vec!["max.interval"]
        );
        let message = Datagen
            .validate(&props(&[("kafka.topic", "t"), ("quickstart", "nope")]))
            .remove(0)
            .message;
        assert!(message.contains("users"), "{message}");
    }

    #[test]
    fn one_task_config_per_task_with_its_id() {
        let configs = Datagen
            .task_configs(&props(&[("quickstart", "users")]), 3)
            .expect("configs");
        let ids: Vec<&str> = configs.iter().map(|c| c["task.id"].as_str()).collect();
        assert_eq!(ids, vec!["0", "1", "2"]);
    }

    #[test]
    fn the_connector_is_found_by_its_class_and_aliases() {
        for name in [
            "io.confluent.kafka.connect.datagen.DatagenConnector",
            "DatagenConnector",
            "Datagen",
        ] {
            let connector = crate::plugin::find_connector(name).expect(name);
            assert_eq!(connector.kind(), ConnectorKind::Source);
        }
    }
}
