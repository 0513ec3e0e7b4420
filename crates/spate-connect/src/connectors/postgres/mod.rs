//! PostgreSQL change data capture under Debezium's name and keys
//! (`io.debezium.connector.postgresql.PostgresConnector`): a consistent snapshot of the
//! captured tables, then their changes from a logical replication slot (`pgoutput`, through a
//! publication), as Debezium's change events (see [`envelope`]), in commit order.
//!
//! One task. Its source partition is `{"server": <topic.prefix>}`; the offset of each event is
//! Debezium's (`lsn`, `lsn_commit`, `lsn_proc`, `txId`, `ts_usec`, and `snapshot` /
//! `last_snapshot_record` while snapshotting). The slot's confirmed position advances only to
//! the end of transactions whose events the runtime has committed (produced and their offsets
//! written, or in one transaction with exactly-once source), so a crash anywhere re-reads from
//! the slot and the offsets say which of the re-read changes were already written.

mod envelope;
mod pgoutput;
mod source;
mod types;

use regex::Regex;

use crate::config::{ConfigProblem, Props};
use crate::plugin::{ConfigKey, Connector, ConnectorKind, SourceTask, TaskError};
use types::{DecimalMode, Modes, TimeMode};

/// `io.debezium.connector.postgresql.PostgresConnector`.
pub struct PostgresConnector;

const SNAPSHOT_MODES: &[&str] = &[
    "initial",
    "initial_only",
    "never",
    "no_data",
    "when_needed",
    "always",
];
const AUTOCREATE_MODES: &[&str] = &["all_tables", "filtered", "disabled", "no_tables"];
const SSL_MODES: &[&str] = &["disable", "allow", "prefer"];
const OPERATIONS: &[&str] = &["c", "u", "d", "t", "none"];

/// A connector's config, checked.
#[derive(Debug, Clone)]
pub(crate) struct PgConfig {
    pub host: String,
    pub port: u16,
    pub user: String,
    pub password: String,
    pub dbname: String,
    pub prefix: String,
    pub slot: String,
    pub drop_slot_on_stop: bool,
    pub publication: String,
    pub autocreate: String,
    pub include_tables: Vec<Regex>,
    pub exclude_tables: Vec<Regex>,
    pub include_schemas: Vec<Regex>,
    pub exclude_schemas: Vec<Regex>,
    pub snapshot_mode: String,
    pub heartbeat_ms: u64,
    pub heartbeat_topic: String,
    pub tombstones_on_delete: bool,
    pub skipped: Vec<String>,
    pub modes: Modes,
    pub fetch_size: usize,
    pub max_batch: usize,
    pub max_retries: i64,
    pub retry_wait_ms: u64,
}

impl PgConfig {
    /// Whether changes to `schema.table` are captured.
    pub fn captures(&self, schema: &str, table: &str) -> bool {
        let full = format!("{schema}.{table}");
        let matches = |list: &[Regex], text: &str| list.iter().any(|r| r.is_match(text));
        if !self.include_schemas.is_empty() && !matches(&self.include_schemas, schema) {
            return false;
        }
        if matches(&self.exclude_schemas, schema) {
            return false;
        }
        if !self.include_tables.is_empty() {
            return matches(&self.include_tables, &full);
        }
        !matches(&self.exclude_tables, &full)
    }
}

fn regex_list(props: &Props, key: &str, problems: &mut Vec<ConfigProblem>) -> Vec<Regex> {
    let Some(text) = props.get(key) else {
        return Vec::new();
    };
    text.split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .filter_map(|p| match Regex::new(&format!("^(?:{p})$")) {
            Ok(r) => Some(r),
            Err(e) => {
                problems.push(ConfigProblem::new(
                    key,
                    format!("{p:?} is not a regular expression: {e}"),
                ));
                None
            }
        })
        .collect()
}

/// Reads and checks the config; every problem is named.
pub(crate) fn parse(props: &Props) -> Result<PgConfig, Vec<ConfigProblem>> {
    let mut problems = Vec::new();
    let text = |key: &str, default: &str| {
        props
            .get(key)
            .map_or(default, String::as_str)
            .trim()
            .to_string()
    };
    let mut required = |key: &str| {
        let value = text(key, "");
        if value.is_empty() {
            problems.push(ConfigProblem::new(
                key,
                "Missing required configuration \"".to_string()
                    + key
                    + "\" which has no default value.",
            ));
        }
        value
    };
    let host = required("database.hostname");
    let user = required("database.user");
    let dbname = required("database.dbname");
    let prefix = required("topic.prefix");
    let mut number = |key: &str, default: i64, min: i64| -> i64 {
        let raw = text(key, &default.to_string());
        match raw.parse::<i64>() {
            Ok(n) if n >= min => n,
            _ => {
                problems.push(ConfigProblem::new(
                    key,
                    format!("Invalid value {raw} for configuration {key}: must be an integer at least {min}"),
                ));
                default
            }
        }
    };
    let port = number("database.port", 5432, 1);
    let heartbeat_ms = number("heartbeat.interval.ms", 0, 0);
    let fetch_size = number("snapshot.fetch.size", 10_240, 1);
    let max_batch = number("max.batch.size", 2048, 1);
    let max_retries = number("errors.max.retries", -1, -1);
    let retry_wait_ms = number("retriable.restart.connector.wait.ms", 10_000, 0);
    let mut choice = |key: &str, default: &str, allowed: &[&str], why: &str| -> String {
        let value = text(key, default).to_ascii_lowercase();
        if !allowed.contains(&value.as_str()) {
            problems.push(ConfigProblem::new(
                key,
                format!(
                    "Invalid value {value} for configuration {key}: {why}; one of {}",
                    allowed.join(", ")
                ),
            ));
        }
        value
    };
    let snapshot_mode = choice(
        "snapshot.mode",
        "initial",
        SNAPSHOT_MODES,
        "unknown snapshot mode",
    );
    let autocreate = choice(
        "publication.autocreate.mode",
        "all_tables",
        AUTOCREATE_MODES,
        "unknown mode",
    );
    choice(
        "database.sslmode",
        "prefer",
        SSL_MODES,
        "Spate's PostgreSQL connector does not encrypt its connections yet",
    );
    choice(
        "plugin.name",
        "pgoutput",
        &["pgoutput"],
        "Spate decodes PostgreSQL's built-in pgoutput plugin only",
    );
    let decimal = match choice(
        "decimal.handling.mode",
        "precise",
        &["precise", "double", "string"],
        "unknown mode",
    )
    .as_str()
    {
        "double" => DecimalMode::Double,
        "string" => DecimalMode::String,
        _ => DecimalMode::Precise,
    };
    let time = match choice(
        "time.precision.mode",
        "adaptive",
        &["adaptive", "adaptive_time_microseconds", "connect"],
        "unknown mode",
    )
    .as_str()
    {
        "connect" => TimeMode::Connect,
        _ => TimeMode::Adaptive,
    };
    let slot = text("slot.name", "debezium");
    if slot.is_empty()
        || !slot
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
    {
        problems.push(ConfigProblem::new(
            "slot.name",
            format!("Invalid value {slot} for configuration slot.name: a replication slot name has only lower-case letters, digits and underscores"),
        ));
    }
    let skipped: Vec<String> = text("skipped.operations", "t")
        .split(',')
        .map(|s| s.trim().to_ascii_lowercase())
        .filter(|s| !s.is_empty())
        .collect();
    for op in &skipped {
        if !OPERATIONS.contains(&op.as_str()) {
            problems.push(ConfigProblem::new(
                "skipped.operations",
                format!("Invalid value {op} for configuration skipped.operations: one of c, u, d, t, none"),
            ));
        }
    }
    let boolean = |key: &str, default: bool, problems: &mut Vec<ConfigProblem>| -> bool {
        match text(key, if default { "true" } else { "false" })
            .to_ascii_lowercase()
            .as_str()
        {
            "true" => true,
            "false" => false,
            other => {
                problems.push(ConfigProblem::new(
                    key,
                    format!("Invalid value {other} for configuration {key}: Expected value to be either true or false"),
                ));
                default
            }
        }
    };
    let drop_slot_on_stop = boolean("slot.drop.on.stop", false, &mut problems);
    let tombstones_on_delete = boolean("tombstones.on.delete", true, &mut problems);
    let include_tables = regex_list(props, "table.include.list", &mut problems);
    let exclude_tables = regex_list(props, "table.exclude.list", &mut problems);
    let include_schemas = regex_list(props, "schema.include.list", &mut problems);
    let exclude_schemas = regex_list(props, "schema.exclude.list", &mut problems);
    if !include_tables.is_empty() && !exclude_tables.is_empty() {
        problems.push(ConfigProblem::new(
            "table.exclude.list",
            "\"table.include.list\" is already specified",
        ));
    }
    if !include_schemas.is_empty() && !exclude_schemas.is_empty() {
        problems.push(ConfigProblem::new(
            "schema.exclude.list",
            "\"schema.include.list\" is already specified",
        ));
    }
    let heartbeat_prefix = text("topic.heartbeat.prefix", "__debezium-heartbeat");
    if !problems.is_empty() {
        return Err(problems);
    }
    Ok(PgConfig {
        host,
        port: port.clamp(1, 65_535) as u16,
        user,
        password: text("database.password", ""),
        dbname,
        heartbeat_topic: format!("{heartbeat_prefix}.{prefix}"),
        prefix,
        slot,
        drop_slot_on_stop,
        publication: text("publication.name", "dbz_publication"),
        autocreate,
        include_tables,
        exclude_tables,
        include_schemas,
        exclude_schemas,
        snapshot_mode,
        heartbeat_ms: heartbeat_ms as u64,
        tombstones_on_delete,
        skipped: skipped.into_iter().filter(|s| s != "none").collect(),
        modes: Modes { decimal, time },
        fetch_size: fetch_size as usize,
        max_batch: max_batch as usize,
        max_retries,
        retry_wait_ms: retry_wait_ms as u64,
    })
}

impl Connector for PostgresConnector {
    fn class(&self) -> &'static str {
        "io.debezium.connector.postgresql.PostgresConnector"
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
            ConfigKey::required(
                "topic.prefix",
                "STRING",
                "Topic prefix that identifies and provides a namespace for the particular database server/cluster that is capturing changes. The topic prefix should be unique across all other connectors, since it is used as a prefix for all Kafka topic names that receive events emitted by this connector.",
            ),
            ConfigKey::required(
                "database.hostname",
                "STRING",
                "Resolvable hostname or IP address of the database server.",
            ),
            high(ConfigKey::optional(
                "database.port",
                "INT",
                "5432",
                "Port of the database server.",
            )),
            ConfigKey::required(
                "database.user",
                "STRING",
                "Name of the database user to be used when connecting to the database.",
            ),
            high(ConfigKey::optional(
                "database.password",
                "PASSWORD",
                "",
                "Password of the database user to be used when connecting to the database.",
            )),
            ConfigKey::required(
                "database.dbname",
                "STRING",
                "The name of the database from which the connector should capture changes",
            ),
            ConfigKey::optional(
                "database.sslmode",
                "STRING",
                "prefer",
                "Whether to use an encrypted connection to Postgres. Spate connects unencrypted: disable, allow or prefer.",
            ),
            ConfigKey::optional(
                "plugin.name",
                "STRING",
                "pgoutput",
                "The name of the Postgres logical decoding plugin installed on the server. Spate supports pgoutput.",
            ),
            ConfigKey::optional(
                "slot.name",
                "STRING",
                "debezium",
                "The name of the Postgres logical decoding slot created for streaming changes from a plugin. Defaults to 'debezium",
            ),
            ConfigKey::optional(
                "slot.drop.on.stop",
                "BOOLEAN",
                "false",
                "Whether or not to drop the logical replication slot when the connector finishes orderly. By default the replication is kept so that on restart progress can resume from the last recorded location",
            ),
            ConfigKey::optional(
                "publication.name",
                "STRING",
                "dbz_publication",
                "The name of the Postgres 10+ publication used for streaming changes from a plugin. Defaults to 'dbz_publication'",
            ),
            ConfigKey::optional(
                "publication.autocreate.mode",
                "STRING",
                "all_tables",
                "Applies only when streaming changes using pgoutput. Determine how creation of a publication should work: all_tables, disabled, filtered, no_tables",
            ),
            ConfigKey::optional(
                "table.include.list",
                "LIST",
                "",
                "The tables for which changes are to be captured (regular expressions matching schema.table)",
            ),
            ConfigKey::optional(
                "table.exclude.list",
                "LIST",
                "",
                "A comma-separated list of regular expressions that match the fully-qualified names of tables to be excluded from monitoring",
            ),
            ConfigKey::optional(
                "schema.include.list",
                "LIST",
                "",
                "The schemas for which events should be captured",
            ),
            ConfigKey::optional(
                "schema.exclude.list",
                "LIST",
                "",
                "The schemas for which events must not be captured",
            ),
            ConfigKey::optional(
                "snapshot.mode",
                "STRING",
                "initial",
                "The criteria for running a snapshot upon startup of the connector: initial, initial_only, never, no_data, when_needed, always",
            ),
            ConfigKey::optional(
                "snapshot.fetch.size",
                "INT",
                "10240",
                "The maximum number of records that should be loaded into memory while performing a snapshot.",
            ),
            ConfigKey::optional(
                "max.batch.size",
                "INT",
                "2048",
                "Maximum size of each batch of source records. Defaults to 2048.",
            ),
            ConfigKey::optional(
                "heartbeat.interval.ms",
                "INT",
                "0",
                "Length of an interval in milli-seconds in in which the connector periodically sends heartbeat messages to a heartbeat topic. Use 0 to disable heartbeat messages. Disabled by default.",
            ),
            ConfigKey::optional(
                "topic.heartbeat.prefix",
                "STRING",
                "__debezium-heartbeat",
                "The prefix that is used to name heartbeat topics.",
            ),
            ConfigKey::optional(
                "tombstones.on.delete",
                "BOOLEAN",
                "true",
                "Whether delete operations should be represented by a delete event and a subsequent tombstone event (true) or only by a delete event (false).",
            ),
            ConfigKey::optional(
                "skipped.operations",
                "LIST",
                "t",
                "The comma-separated list of operations to skip during streaming, defined as: 'c' for inserts/create; 'u' for updates; 'd' for deletes, 't' for truncates, and 'none' to indicate nothing skipped.",
            ),
            ConfigKey::optional(
                "decimal.handling.mode",
                "STRING",
                "precise",
                "Specify how DECIMAL and NUMERIC columns should be represented in change events: precise, string, double",
            ),
            ConfigKey::optional(
                "time.precision.mode",
                "STRING",
                "adaptive",
                "Time, date, and timestamps can be represented with different kinds of precisions: adaptive, adaptive_time_microseconds, connect",
            ),
            ConfigKey::optional(
                "errors.max.retries",
                "INT",
                "-1",
                "The maximum number of retries on connection errors before failing (-1 = no limit, 0 = disabled, > 0 = num of retries).",
            ),
            ConfigKey::optional(
                "retriable.restart.connector.wait.ms",
                "LONG",
                "10000",
                "Time to wait before restarting connector after retriable exception occurs. Defaults to 10000ms.",
            ),
        ]
    }

    fn validate(&self, props: &Props) -> Vec<ConfigProblem> {
        parse(props).err().unwrap_or_default()
    }

    fn task_configs(&self, props: &Props, _max_tasks: usize) -> Result<Vec<Props>, TaskError> {
        // A slot is read by one session: Debezium's PostgreSQL connector has one task.
        Ok(vec![props.clone()])
    }

    fn source_task(&self) -> Option<Box<dyn SourceTask>> {
        Some(Box::new(source::PostgresTask::default()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn props(pairs: &[(&str, &str)]) -> Props {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    const BASE: &[(&str, &str)] = &[
        ("database.hostname", "localhost"),
        ("database.user", "postgres"),
        ("database.dbname", "inventory"),
        ("topic.prefix", "dbserver1"),
    ];

    #[test]
    fn names_every_bad_key() {
        let problems = parse(&props(&[
            ("database.port", "x"),
            ("snapshot.mode", "sometimes"),
            ("plugin.name", "decoderbufs"),
            ("table.include.list", "a(b"),
        ]))
        .expect_err("fails");
        let names: Vec<&str> = problems.iter().map(|p| p.name.as_str()).collect();
        for key in [
            "database.hostname",
            "database.user",
            "database.dbname",
            "topic.prefix",
            "database.port",
            "snapshot.mode",
            "plugin.name",
            "table.include.list",
        ] {
            assert!(names.contains(&key), "{key} not in {names:?}");
        }
    }

    #[test]
    fn include_and_exclude_lists_match_whole_names() {
        let mut p = props(BASE);
        p.insert(
            "table.include.list".into(),
            "inventory\\.cust.*, public.orders".into(),
        );
        let config = parse(&p).expect("present");
        assert!(config.captures("inventory", "customers"));
        assert!(config.captures("public", "orders"));
        assert!(!config.captures("public", "orders2"));
        assert!(!config.captures("other", "customers"));
        let mut p = props(BASE);
        p.insert("schema.exclude.list".into(), "audit".into());
        let config = parse(&p).expect("present");
        assert!(config.captures("inventory", "x") && !config.captures("audit", "x"));
        assert_eq!(config.skipped, vec!["t"]);
        assert_eq!(config.heartbeat_topic, "__debezium-heartbeat.dbserver1");
    }
}
