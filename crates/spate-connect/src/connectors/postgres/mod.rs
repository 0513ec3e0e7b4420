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
pub(crate) mod tls;
mod types;

use regex::Regex;

use crate::config::{ConfigProblem, Props, Reader};
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
    pub tls: tls::PgTls,
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

fn regex_list(r: &mut Reader, key: &str) -> Vec<Regex> {
    let mut out = Vec::new();
    for pattern in r.list(key) {
        match Regex::new(&format!("^(?:{pattern})$")) {
            Ok(regex) => out.push(regex),
            Err(e) => r.problem(key, format!("{pattern:?} is not a regular expression: {e}")),
        }
    }
    out
}

/// Reads the config; every problem the runtime's type checks cannot see is named.
pub(crate) fn parse(props: &Props) -> Result<PgConfig, Vec<ConfigProblem>> {
    let mut r = Reader::new(props);
    let host = r.required("database.hostname");
    let user = r.required("database.user");
    let dbname = r.required("database.dbname");
    let prefix = r.required("topic.prefix");
    let port = r.number("database.port", 5432, 1..=65_535) as u16;
    let heartbeat_ms = r.unsigned("heartbeat.interval.ms", 0, 0..=u64::MAX);
    let fetch_size = r.unsigned("snapshot.fetch.size", 10_240, 1..=u64::MAX) as usize;
    let max_batch = r.unsigned("max.batch.size", 2048, 1..=u64::MAX) as usize;
    let max_retries = r.number("errors.max.retries", -1, -1..=i64::MAX);
    let retry_wait_ms = r.unsigned("retriable.restart.connector.wait.ms", 10_000, 0..=u64::MAX);
    let snapshot_mode = SNAPSHOT_MODES[r.choice("snapshot.mode", 0, SNAPSHOT_MODES)].to_string();
    let autocreate =
        AUTOCREATE_MODES[r.choice("publication.autocreate.mode", 0, AUTOCREATE_MODES)].to_string();
    let ssl_mode = tls::MODES[r.choice("database.sslmode", 2, tls::MODES)];
    let tls = ssl_settings(&mut r, "database.", ssl_mode);
    // Spate decodes pgoutput only: the other plugins are refused by name.
    r.choice("plugin.name", 0, &["pgoutput"]);
    let decimal = [
        DecimalMode::Precise,
        DecimalMode::Double,
        DecimalMode::String,
    ][r.choice("decimal.handling.mode", 0, &["precise", "double", "string"])];
    let time = [TimeMode::Adaptive, TimeMode::Adaptive, TimeMode::Connect][r.choice(
        "time.precision.mode",
        0,
        &["adaptive", "adaptive_time_microseconds", "connect"],
    )];
    let slot = r.string("slot.name", "debezium").trim().to_string();
    if slot.is_empty()
        || !slot
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
    {
        r.problem(
            "slot.name",
            format!("Invalid value {slot} for configuration slot.name: a replication slot name has only lower-case letters, digits and underscores"),
        );
    }
    let skipped: Vec<String> = r
        .list("skipped.operations")
        .into_iter()
        .map(|s| s.to_ascii_lowercase())
        .collect();
    let skipped = if props.contains_key("skipped.operations") {
        skipped
    } else {
        vec!["t".to_string()]
    };
    for op in &skipped {
        if !OPERATIONS.contains(&op.as_str()) {
            r.problem(
                "skipped.operations",
                format!("Invalid value {op} for configuration skipped.operations: one of c, u, d, t, none"),
            );
        }
    }
    let drop_slot_on_stop = r.boolean("slot.drop.on.stop", false);
    let tombstones_on_delete = r.boolean("tombstones.on.delete", true);
    let include_tables = regex_list(&mut r, "table.include.list");
    let exclude_tables = regex_list(&mut r, "table.exclude.list");
    let include_schemas = regex_list(&mut r, "schema.include.list");
    let exclude_schemas = regex_list(&mut r, "schema.exclude.list");
    if !include_tables.is_empty() && !exclude_tables.is_empty() {
        r.problem(
            "table.exclude.list",
            "\"table.include.list\" is already specified",
        );
    }
    if !include_schemas.is_empty() && !exclude_schemas.is_empty() {
        r.problem(
            "schema.exclude.list",
            "\"schema.include.list\" is already specified",
        );
    }
    let heartbeat_prefix = r.string("topic.heartbeat.prefix", "__debezium-heartbeat");
    let config = PgConfig {
        host,
        port,
        user,
        password: r.string("database.password", ""),
        dbname,
        heartbeat_topic: format!("{}.{prefix}", heartbeat_prefix.trim()),
        prefix,
        slot,
        drop_slot_on_stop,
        publication: r
            .string("publication.name", "dbz_publication")
            .trim()
            .to_string(),
        autocreate,
        include_tables,
        exclude_tables,
        include_schemas,
        exclude_schemas,
        snapshot_mode,
        heartbeat_ms,
        tombstones_on_delete,
        skipped: skipped.into_iter().filter(|s| s != "none").collect(),
        modes: Modes { decimal, time },
        fetch_size,
        max_batch,
        max_retries,
        retry_wait_ms,
        tls,
    };
    r.finish(config)
}

/// The TLS settings from `{prefix}sslrootcert`, `sslcert` and `sslkey` (files, read now) for
/// `mode`; a file that cannot be used is a problem named by its key.
pub(crate) fn ssl_settings(r: &mut Reader, prefix: &str, mode: &str) -> tls::PgTls {
    let file = |name: &str| {
        let path = r.string(&format!("{prefix}{name}"), "");
        (!path.trim().is_empty()).then(|| path.trim().to_string())
    };
    let (root, cert, key) = (file("sslrootcert"), file("sslcert"), file("sslkey"));
    match tls::PgTls::new(mode, root.as_deref(), cert.as_deref(), key.as_deref()) {
        Ok(settings) => settings,
        Err(e) => {
            // The message starts with the key it is about, without the prefix.
            let key = ["sslrootcert", "sslcert", "sslkey"]
                .into_iter()
                .find(|k| e.starts_with(k))
                .unwrap_or("sslmode");
            r.problem(&format!("{prefix}{key}"), format!("{prefix}{e}"));
            tls::PgTls::disabled()
        }
    }
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
                "Whether to use an encrypted connection to Postgres. Options include: 'disable' to use an unencrypted connection; 'allow' to connect unencrypted (Spate does not retry with TLS); 'prefer' (the default) to use a secure (encrypted) connection if the server supports it and an unencrypted one otherwise; 'require' to use a secure (encrypted) connection, and fail if one cannot be established; 'verify-ca' like 'require' but also verify the server TLS certificate against the configured Certificate Authority (CA) certificates, or fail if no valid matching CA certificates are found; or 'verify-full' like 'verify-ca' but also verify that the server certificate matches the host to which the connection is attempted.",
            ),
            ConfigKey::optional(
                "database.sslrootcert",
                "STRING",
                "",
                "The path to the file that contains the root certificate(s) against which the server is validated (PEM). Without it, verify-ca and verify-full use the system's root certificates.",
            ),
            ConfigKey::optional(
                "database.sslcert",
                "STRING",
                "",
                "The path to the file that contains the SSL certificate for the client (PEM).",
            ),
            ConfigKey::optional(
                "database.sslkey",
                "STRING",
                "",
                "The path to the file that contains the SSL private key of the client (unencrypted PEM).",
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
    fn names_every_bad_key_the_runtime_cannot_see() {
        let mut p = props(BASE);
        for (k, v) in [
            ("database.port", "70000"),
            ("snapshot.mode", "sometimes"),
            ("plugin.name", "decoderbufs"),
            ("database.sslmode", "required"),
            ("table.include.list", "a(b"),
            ("slot.name", "Bad-Slot"),
        ] {
            p.insert(k.into(), v.into());
        }
        let problems = parse(&p).expect_err("bad");
        let names: Vec<&str> = problems.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "database.port",
                "snapshot.mode",
                "database.sslmode",
                "plugin.name",
                "slot.name",
                "table.include.list"
            ]
        );
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
