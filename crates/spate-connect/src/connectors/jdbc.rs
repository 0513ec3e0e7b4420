//! A JDBC sink to PostgreSQL under the class name and keys of Confluent's JDBC sink
//! (`io.confluent.connect.jdbc.JdbcSinkConnector`): each record (a struct with a schema) becomes
//! a row of the table `table.name.format` names, inserted, upserted (`ON CONFLICT ... DO UPDATE`)
//! or updated by `insert.mode`, keyed by `pk.mode`/`pk.fields`; a tombstone deletes its row with
//! `delete.enabled`. `auto.create` makes a missing table from the record's schema and
//! `auto.evolve` adds missing columns, as Confluent's does.
//!
//! Delivery: each `put` is written in one database transaction (in batches of `batch.size`)
//! before it returns, so the offsets the runtime commits after `flush` are of rows already
//! committed. A redelivered record (after a crash) is written again: idempotent with `upsert`.
//!
//! TLS as pgjdbc's URL parameters say: `sslmode` (disable, allow, prefer — the default —,
//! require, verify-ca, verify-full; `ssl=true` alone is verify-full), `sslrootcert`, `sslcert`,
//! `sslkey` (PEM files; see [`tls`]).
//!
//! What differs: PostgreSQL only (`jdbc:postgresql://` URLs); a topic with dots names
//! `schema.table` (its last two parts), as Confluent's `TableId` reads `catalog.schema.table`.

use std::collections::{BTreeSet, HashMap};
use std::time::Duration;

use tokio::runtime::Runtime;
use tokio_postgres::{Client, Statement};

use super::postgres::tls;

use crate::config::{ConfigProblem, Props, Reader, describe};
use crate::convert::decimal;
use crate::data::{ConnectRecord, Schema, SchemaType, Value};
use crate::plugin::{ConfigKey, Connector, ConnectorKind, SinkTask, TaskError};
use crate::transforms::timefmt::civil_from_days;

/// `io.confluent.connect.jdbc.JdbcSinkConnector`.
pub struct JdbcSink;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum InsertMode {
    Insert,
    Upsert,
    Update,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PkMode {
    None,
    Kafka,
    RecordKey,
    RecordValue,
}

#[derive(Debug, Clone)]
struct Settings {
    host: String,
    port: u16,
    dbname: String,
    user: String,
    password: String,
    insert_mode: InsertMode,
    pk_mode: PkMode,
    pk_fields: Vec<String>,
    fields_whitelist: Vec<String>,
    auto_create: bool,
    auto_evolve: bool,
    delete_enabled: bool,
    table_format: String,
    batch_size: usize,
    tls: tls::PgTls,
}

/// `jdbc:postgresql://host[:port]/db[?user=..&password=..]` into (host, port, db, params).
pub(crate) fn parse_url(url: &str) -> Option<(String, u16, String, HashMap<String, String>)> {
    let rest = url.strip_prefix("jdbc:postgresql://")?;
    let (address, rest) = rest.split_once('/')?;
    let (db, query) = rest.split_once('?').unwrap_or((rest, ""));
    let (host, port) = match address.rsplit_once(':') {
        Some((h, p)) => (h.to_string(), p.parse().ok()?),
        None => (address.to_string(), 5432),
    };
    let params = query
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    (!host.is_empty() && !db.is_empty()).then(|| (host, port, db.to_string(), params))
}

/// Reads the config; every problem the runtime's type checks cannot see is named.
fn parse(props: &Props) -> Result<Settings, Vec<ConfigProblem>> {
    let mut r = Reader::new(props);
    let url = r.required("connection.url");
    let parsed = parse_url(&url);
    if parsed.is_none() && !url.is_empty() {
        r.problem(
            "connection.url",
            format!(
                "{url:?} is not a PostgreSQL JDBC URL (jdbc:postgresql://host:port/database): Spate's JDBC sink writes to PostgreSQL"
            ),
        );
    }
    let (host, port, dbname, params) = parsed.unwrap_or_default();
    // pgjdbc: `ssl=true` without `sslmode` verifies the certificate and the host name.
    let ssl_mode = match (params.get("sslmode"), params.get("ssl").map(String::as_str)) {
        (Some(mode), _) => mode.as_str(),
        (None, Some("true")) => "verify-full",
        (None, _) => "prefer",
    };
    let file = |name: &str| params.get(name).map(String::as_str);
    let tls = match tls::PgTls::new(
        ssl_mode,
        file("sslrootcert"),
        file("sslcert"),
        file("sslkey"),
    ) {
        Ok(tls) => tls,
        Err(e) => {
            r.problem("connection.url", e);
            tls::PgTls::disabled()
        }
    };
    let insert_mode = [InsertMode::Insert, InsertMode::Upsert, InsertMode::Update]
        [r.choice("insert.mode", 0, &["insert", "upsert", "update"])];
    let pk_mode = [
        PkMode::None,
        PkMode::Kafka,
        PkMode::RecordKey,
        PkMode::RecordValue,
    ][r.choice(
        "pk.mode",
        0,
        &["none", "kafka", "record_key", "record_value"],
    )];
    let delete_enabled = r.boolean("delete.enabled", false);
    if delete_enabled && pk_mode != PkMode::RecordKey {
        r.problem(
            "delete.enabled",
            "Deletes are only supported for pk.mode record_key",
        );
    }
    if insert_mode != InsertMode::Insert && pk_mode == PkMode::None {
        r.problem(
            "pk.mode",
            "insert.mode upsert and update need a primary key: set pk.mode to record_key, record_value or kafka",
        );
    }
    let settings = Settings {
        host,
        port,
        dbname,
        user: props
            .get("connection.user")
            .or_else(|| params.get("user"))
            .cloned()
            .unwrap_or_default(),
        password: props
            .get("connection.password")
            .or_else(|| params.get("password"))
            .cloned()
            .unwrap_or_default(),
        insert_mode,
        pk_mode,
        pk_fields: r.list("pk.fields"),
        fields_whitelist: r.list("fields.whitelist"),
        auto_create: r.boolean("auto.create", false),
        auto_evolve: r.boolean("auto.evolve", false),
        delete_enabled,
        table_format: r.string("table.name.format", "${topic}").trim().to_string(),
        batch_size: r.unsigned("batch.size", 3000, 1..=1_000_000) as usize,
        tls,
    };
    r.finish(settings)
}

impl Connector for JdbcSink {
    fn class(&self) -> &'static str {
        "io.confluent.connect.jdbc.JdbcSinkConnector"
    }

    fn kind(&self) -> ConnectorKind {
        ConnectorKind::Sink
    }

    fn config_keys(&self) -> Vec<ConfigKey> {
        let opt = ConfigKey::optional;
        vec![
            ConfigKey::required(
                "connection.url",
                "STRING",
                "JDBC connection URL (jdbc:postgresql://host:port/database)",
            ),
            opt("connection.user", "STRING", "", "JDBC connection user."),
            opt(
                "connection.password",
                "PASSWORD",
                "",
                "JDBC connection password.",
            ),
            opt(
                "insert.mode",
                "STRING",
                "insert",
                "The insertion mode to use: insert, upsert, update",
            ),
            opt(
                "pk.mode",
                "STRING",
                "none",
                "The primary key mode: none, kafka, record_key, record_value",
            ),
            opt(
                "pk.fields",
                "LIST",
                "",
                "List of comma-separated primary key field names. The runtime interpretation of this config depends on the pk.mode",
            ),
            opt(
                "fields.whitelist",
                "LIST",
                "",
                "List of comma-separated record value field names. If empty, all fields from the record value are utilized",
            ),
            opt(
                "auto.create",
                "BOOLEAN",
                "false",
                "Whether to automatically create the destination table based on record schema if it is found to be missing by issuing CREATE.",
            ),
            opt(
                "auto.evolve",
                "BOOLEAN",
                "false",
                "Whether to automatically add columns in the table schema when found to be missing relative to the record schema by issuing ALTER.",
            ),
            opt(
                "delete.enabled",
                "BOOLEAN",
                "false",
                "Whether to treat null record values as deletes. Requires pk.mode to be record_key.",
            ),
            opt(
                "table.name.format",
                "STRING",
                "${topic}",
                "A format string for the destination table name, which may contain '${topic}' as a placeholder for the originating topic name.",
            ),
            opt(
                "batch.size",
                "INT",
                "3000",
                "Specifies how many records to attempt to batch together for insertion into the destination table, when possible.",
            ),
        ]
    }

    fn validate(&self, props: &Props) -> Vec<ConfigProblem> {
        parse(props).err().unwrap_or_default()
    }

    fn task_configs(&self, props: &Props, max_tasks: usize) -> Result<Vec<Props>, TaskError> {
        Ok(vec![props.clone(); max_tasks.max(1)])
    }

    fn sink_task(&self) -> Option<Box<dyn SinkTask>> {
        Some(Box::new(JdbcTask::default()))
    }
}

/// A column of a destination table: name, SQL type, nullable.
#[derive(Debug, Clone)]
struct ColumnDef {
    name: String,
    sql_type: &'static str,
    nullable: bool,
}

/// One record as a row: its table, key columns and values, other columns and values.
struct Row {
    table: (Option<String>, String),
    keys: Vec<(ColumnDef, Option<String>)>,
    fields: Vec<(ColumnDef, Option<String>)>,
    delete: bool,
}

#[derive(Default)]
struct JdbcTask {
    runtime: Option<Runtime>,
    settings: Option<Settings>,
    client: Option<Client>,
    /// The columns each table is known to have.
    tables: HashMap<(Option<String>, String), BTreeSet<String>>,
    statements: HashMap<String, Statement>,
}

fn quote(ident: &str) -> String {
    format!("\"{}\"", ident.replace('"', "\"\""))
}

fn qualified(table: &(Option<String>, String)) -> String {
    match &table.0 {
        Some(schema) => format!("{}.{}", quote(schema), quote(&table.1)),
        None => quote(&table.1),
    }
}

/// The SQL type of a Connect schema, as Confluent's PostgreSQL dialect maps it.
fn sql_type(schema: &Schema) -> Result<&'static str, String> {
    if let Some(name) = schema.name.as_deref() {
        match name {
            "org.apache.kafka.connect.data.Decimal" => return Ok("NUMERIC"),
            "org.apache.kafka.connect.data.Date" => return Ok("DATE"),
            "org.apache.kafka.connect.data.Time" => return Ok("TIME"),
            "org.apache.kafka.connect.data.Timestamp" => return Ok("TIMESTAMP"),
            _ => {}
        }
    }
    Ok(match schema.kind {
        SchemaType::Int8 | SchemaType::Int16 => "SMALLINT",
        SchemaType::Int32 => "INT",
        SchemaType::Int64 => "BIGINT",
        SchemaType::Float32 => "REAL",
        SchemaType::Float64 => "DOUBLE PRECISION",
        SchemaType::Boolean => "BOOLEAN",
        SchemaType::String => "TEXT",
        SchemaType::Bytes => "BYTEA",
        other => {
            return Err(format!(
                "a {} field cannot be a column (Confluent's JDBC sink writes primitive and logical types only)",
                other.name()
            ));
        }
    })
}

/// A value as PostgreSQL's text input of its column type.
fn sql_text(schema: &Schema, value: &Value) -> Result<Option<String>, String> {
    let days = |d: i64| {
        let (y, m, d) = civil_from_days(d);
        format!("{y:04}-{m:02}-{d:02}")
    };
    let time = |ms: i64| {
        let ms = ms.rem_euclid(86_400_000);
        format!(
            "{:02}:{:02}:{:02}.{:03}",
            ms / 3_600_000,
            ms / 60_000 % 60,
            ms / 1000 % 60,
            ms % 1000
        )
    };
    Ok(Some(match value {
        Value::Null => return Ok(None),
        Value::Bytes(b) if schema.is_logical("org.apache.kafka.connect.data.Decimal") => {
            let scale = schema
                .parameters
                .get("scale")
                .and_then(|s| s.parse().ok())
                .unwrap_or(0);
            decimal::to_text(b, scale).map_err(|e| format!("a decimal: {e:?}"))?
        }
        Value::Int32(d) if schema.is_logical("org.apache.kafka.connect.data.Date") => {
            days(i64::from(*d))
        }
        Value::Int32(ms) if schema.is_logical("org.apache.kafka.connect.data.Time") => {
            time(i64::from(*ms))
        }
        Value::Int64(ms) if schema.is_logical("org.apache.kafka.connect.data.Timestamp") => {
            format!("{} {}", days(ms.div_euclid(86_400_000)), time(*ms))
        }
        Value::Boolean(b) => b.to_string(),
        Value::Int8(n) => n.to_string(),
        Value::Int16(n) => n.to_string(),
        Value::Int32(n) => n.to_string(),
        Value::Int64(n) => n.to_string(),
        Value::Float32(f) => float_text(f64::from(*f)),
        Value::Float64(f) => float_text(*f),
        Value::String(s) => s.clone(),
        Value::Bytes(b) => {
            let mut out = String::with_capacity(2 + b.len() * 2);
            out.push_str("\\x");
            for byte in b.iter() {
                out.push_str(&format!("{byte:02x}"));
            }
            out
        }
        Value::Array(_) | Value::Map(_) | Value::Struct(_) => {
            return Err("a nested value cannot be a column".into());
        }
    }))
}

fn float_text(f: f64) -> String {
    if f.is_nan() {
        "NaN".into()
    } else if f.is_infinite() {
        if f > 0.0 { "Infinity" } else { "-Infinity" }.into()
    } else {
        f.to_string()
    }
}

impl Settings {
    fn table(&self, topic: &str) -> (Option<String>, String) {
        let name = self.table_format.replace("${topic}", topic);
        let parts: Vec<&str> = name.split('.').collect();
        match parts.as_slice() {
            [table] => (None, table.to_string()),
            [.., schema, table] => (Some(schema.to_string()), table.to_string()),
            [] => (None, name.clone()),
        }
    }

    /// The row a record writes.
    fn row(&self, record: &ConnectRecord) -> Result<Row, String> {
        let table = self.table(&record.topic);
        let column = |name: &str, schema: &Schema| -> Result<ColumnDef, String> {
            Ok(ColumnDef {
                name: name.to_string(),
                sql_type: sql_type(schema).map_err(|e| format!("field {name}: {e}"))?,
                nullable: schema.optional,
            })
        };
        let cell = |name: &str, schema: &Schema, value: &Value| {
            Ok::<_, String>((
                column(name, schema)?,
                sql_text(schema, value).map_err(|e| format!("field {name}: {e}"))?,
            ))
        };
        let mut keys = Vec::new();
        let mut used_value_keys = BTreeSet::new();
        match self.pk_mode {
            PkMode::None => {}
            PkMode::Kafka => {
                let names = if self.pk_fields.len() == 3 {
                    self.pk_fields.clone()
                } else {
                    vec![
                        "__connect_topic".into(),
                        "__connect_partition".into(),
                        "__connect_offset".into(),
                    ]
                };
                let values = [
                    (
                        Schema::new(SchemaType::String),
                        Value::String(record.topic.clone()),
                    ),
                    (
                        Schema::new(SchemaType::Int32),
                        Value::Int32(record.partition.unwrap_or(0)),
                    ),
                    (
                        Schema::new(SchemaType::Int64),
                        Value::Int64(record.kafka_offset.unwrap_or(0)),
                    ),
                ];
                for (name, (schema, value)) in names.iter().zip(values.iter()) {
                    keys.push(cell(name, schema, value)?);
                }
            }
            PkMode::RecordKey => {
                let schema = record.key_schema.as_deref().ok_or(
                    "pk.mode record_key needs a key with a schema (a converter with schemas, or a primitive key)",
                )?;
                if schema.kind == SchemaType::Struct {
                    let Value::Struct(key) = &record.key else {
                        return Err("the record has no key, and pk.mode is record_key".into());
                    };
                    for field in &schema.fields {
                        if self.pk_fields.is_empty() || self.pk_fields.contains(&field.name) {
                            let value = key.get(&field.name).unwrap_or(&Value::Null);
                            keys.push(cell(&field.name, &field.schema, value)?);
                        }
                    }
                } else {
                    let name = self.pk_fields.first().ok_or(
                        "a primitive key needs its column's name in pk.fields (pk.mode record_key)",
                    )?;
                    keys.push(cell(name, schema, &record.key)?);
                }
            }
            PkMode::RecordValue => {}
        }
        let delete = record.value.is_null();
        if delete {
            if !self.delete_enabled {
                return Err("a tombstone (null value) with delete.enabled=false".into());
            }
            return Ok(Row {
                table,
                keys,
                fields: Vec::new(),
                delete: true,
            });
        }
        let schema = record.value_schema.as_deref().filter(|s| s.kind == SchemaType::Struct).ok_or(
            "the JDBC sink needs a struct value with a schema: use a converter with schemas (JsonConverter with schemas.enable=true, AvroConverter, ...)",
        )?;
        let Value::Struct(value) = &record.value else {
            return Err("the value is not a struct".into());
        };
        if self.pk_mode == PkMode::RecordValue {
            for field in &schema.fields {
                if self.pk_fields.is_empty() || self.pk_fields.contains(&field.name) {
                    let v = value.get(&field.name).unwrap_or(&Value::Null);
                    keys.push(cell(&field.name, &field.schema, v)?);
                    used_value_keys.insert(field.name.clone());
                }
            }
        }
        let mut fields = Vec::new();
        for field in &schema.fields {
            if used_value_keys.contains(&field.name)
                || keys.iter().any(|(c, _)| c.name == field.name)
                || (!self.fields_whitelist.is_empty()
                    && !self.fields_whitelist.contains(&field.name))
            {
                continue;
            }
            let v = value.get(&field.name).unwrap_or(&Value::Null);
            fields.push(cell(&field.name, &field.schema, v)?);
        }
        Ok(Row {
            table,
            keys,
            fields,
            delete: false,
        })
    }
}

impl JdbcTask {
    fn db_error(context: &str, e: &tokio_postgres::Error) -> TaskError {
        match e.as_db_error() {
            None => TaskError::retriable(format!("{context}: cannot reach PostgreSQL ({e})")),
            Some(db)
                if db.code().code().starts_with("08") || db.code().code().starts_with("57") =>
            {
                TaskError::retriable(format!(
                    "{context}: {} ({})",
                    db.message(),
                    db.code().code()
                ))
            }
            Some(db) => TaskError::fatal(format!(
                "{context}: {} ({})",
                db.message(),
                db.code().code()
            )),
        }
    }

    async fn connect(settings: &Settings) -> Result<Client, TaskError> {
        let mut config = tokio_postgres::Config::new();
        config
            .host(&settings.host)
            .port(settings.port)
            .user(&settings.user)
            .password(&settings.password)
            .dbname(&settings.dbname)
            .options("-c TimeZone=UTC -c DateStyle=ISO")
            .application_name("spate-connect-jdbc")
            .connect_timeout(Duration::from_secs(10));
        let timeout = Duration::from_secs(10);
        let connected = tls::sql_connect(
            &mut config,
            &settings.tls,
            &settings.host,
            settings.port,
            timeout,
        )
        .await;
        connected.map_err(|e| match e {
            tls::ConnectError::Open(e) => e,
            tls::ConnectError::Postgres(e) => {
                let mut error = Self::db_error("connecting to PostgreSQL", &e);
                if e.as_db_error().is_some_and(|d| d.code().code() == "28P01") {
                    error.message = format!(
                        "password authentication failed for user {:?}: check connection.user and connection.password",
                        settings.user
                    );
                }
                error
            }
        })
    }

    /// Makes sure `row`'s table has its columns (creating or altering it as allowed).
    async fn ensure_table(
        client: &Client,
        settings: &Settings,
        tables: &mut HashMap<(Option<String>, String), BTreeSet<String>>,
        row: &Row,
    ) -> Result<(), TaskError> {
        let needed: Vec<&ColumnDef> = row.keys.iter().chain(&row.fields).map(|(c, _)| c).collect();
        if let Some(known) = tables.get(&row.table)
            && needed.iter().all(|c| known.contains(&c.name))
        {
            return Ok(());
        }
        let name = qualified(&row.table);
        let schema_filter = match &row.table.0 {
            Some(s) => format!("table_schema = '{}'", s.replace('\'', "''")),
            None => "table_schema = current_schema()".into(),
        };
        let existing: BTreeSet<String> = client
            .query(
                &format!(
                    "SELECT column_name::text FROM information_schema.columns WHERE {schema_filter} AND table_name = $1"
                ),
                &[&row.table.1],
            )
            .await
            .map_err(|e| Self::db_error("reading the table's columns", &e))?
            .iter()
            .map(|r| r.get::<_, String>(0))
            .collect();
        if existing.is_empty() {
            if !settings.auto_create {
                return Err(TaskError::fatal(format!(
                    "table {name} is missing and auto.create is disabled"
                )));
            }
            let mut columns: Vec<String> = needed
                .iter()
                .map(|c| {
                    format!(
                        "{} {}{}",
                        quote(&c.name),
                        c.sql_type,
                        if c.nullable && !row.keys.iter().any(|(k, _)| k.name == c.name) {
                            ""
                        } else {
                            " NOT NULL"
                        }
                    )
                })
                .collect();
            if !row.keys.is_empty() {
                columns.push(format!(
                    "PRIMARY KEY({})",
                    row.keys
                        .iter()
                        .map(|(c, _)| quote(&c.name))
                        .collect::<Vec<_>>()
                        .join(",")
                ));
            }
            let sql = format!("CREATE TABLE {name} ({})", columns.join(", "));
            client
                .batch_execute(&sql)
                .await
                .map_err(|e| Self::db_error(&format!("creating table {name}"), &e))?;
            tracing::info!(table = %name, "created the table (auto.create)");
            tables.insert(
                row.table.clone(),
                needed.iter().map(|c| c.name.clone()).collect(),
            );
            return Ok(());
        }
        let missing: Vec<&&ColumnDef> = needed
            .iter()
            .filter(|c| !existing.contains(&c.name))
            .collect();
        if !missing.is_empty() {
            if !settings.auto_evolve {
                return Err(TaskError::fatal(format!(
                    "table {name} has no column {} and auto.evolve is disabled",
                    missing
                        .iter()
                        .map(|c| c.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                )));
            }
            for column in &missing {
                if !column.nullable {
                    return Err(TaskError::fatal(format!(
                        "cannot add the required column {} to {name}: auto.evolve adds optional fields only",
                        column.name
                    )));
                }
                let sql = format!(
                    "ALTER TABLE {name} ADD {} {}",
                    quote(&column.name),
                    column.sql_type
                );
                client
                    .batch_execute(&sql)
                    .await
                    .map_err(|e| Self::db_error(&format!("altering table {name}"), &e))?;
                tracing::info!(table = %name, column = %column.name, "added a column (auto.evolve)");
            }
        }
        let mut known = existing;
        known.extend(needed.iter().map(|c| c.name.clone()));
        tables.insert(row.table.clone(), known);
        Ok(())
    }

    fn statement_sql(settings: &Settings, row: &Row) -> String {
        let name = qualified(&row.table);
        let cast = |i: usize, c: &ColumnDef| format!("CAST(${i}::text AS {})", c.sql_type);
        if row.delete {
            let filter: Vec<String> = row
                .keys
                .iter()
                .enumerate()
                .map(|(i, (c, _))| format!("{} = {}", quote(&c.name), cast(i + 1, c)))
                .collect();
            return format!("DELETE FROM {name} WHERE {}", filter.join(" AND "));
        }
        let all: Vec<&ColumnDef> = row.keys.iter().chain(&row.fields).map(|(c, _)| c).collect();
        match settings.insert_mode {
            InsertMode::Update => {
                let n = row.fields.len();
                let set: Vec<String> = row
                    .fields
                    .iter()
                    .enumerate()
                    .map(|(i, (c, _))| format!("{} = {}", quote(&c.name), cast(i + 1, c)))
                    .collect();
                let filter: Vec<String> = row
                    .keys
                    .iter()
                    .enumerate()
                    .map(|(i, (c, _))| format!("{} = {}", quote(&c.name), cast(n + i + 1, c)))
                    .collect();
                format!(
                    "UPDATE {name} SET {} WHERE {}",
                    set.join(", "),
                    filter.join(" AND ")
                )
            }
            InsertMode::Insert | InsertMode::Upsert => {
                let columns: Vec<String> = all.iter().map(|c| quote(&c.name)).collect();
                let values: Vec<String> = all
                    .iter()
                    .enumerate()
                    .map(|(i, c)| cast(i + 1, c))
                    .collect();
                let mut sql = format!(
                    "INSERT INTO {name} ({}) VALUES ({})",
                    columns.join(","),
                    values.join(",")
                );
                if settings.insert_mode == InsertMode::Upsert {
                    let keys: Vec<String> = row.keys.iter().map(|(c, _)| quote(&c.name)).collect();
                    let set: Vec<String> = row
                        .fields
                        .iter()
                        .map(|(c, _)| format!("{0}=EXCLUDED.{0}", quote(&c.name)))
                        .collect();
                    if set.is_empty() {
                        sql.push_str(&format!(" ON CONFLICT ({}) DO NOTHING", keys.join(",")));
                    } else {
                        sql.push_str(&format!(
                            " ON CONFLICT ({}) DO UPDATE SET {}",
                            keys.join(","),
                            set.join(",")
                        ));
                    }
                }
                sql
            }
        }
    }

    async fn write(&mut self, records: &[ConnectRecord]) -> Result<(), TaskError> {
        let settings = self
            .settings
            .clone()
            .ok_or_else(|| TaskError::fatal("not started"))?;
        if self.client.as_ref().is_none_or(Client::is_closed) {
            self.statements.clear();
            self.client = Some(Self::connect(&settings).await?);
        }
        let client = self.client.as_mut().expect("connected");
        let mut rows = Vec::with_capacity(records.len());
        for record in records {
            let row = settings.row(record).map_err(|e| {
                TaskError::fatal(format!(
                    "record {}-{}@{}: {e}",
                    record.topic,
                    record.partition.unwrap_or(-1),
                    record.kafka_offset.unwrap_or(-1)
                ))
            })?;
            Self::ensure_table(client, &settings, &mut self.tables, &row).await?;
            rows.push(row);
        }
        let tx = client
            .transaction()
            .await
            .map_err(|e| Self::db_error("beginning a transaction", &e))?;
        for (row, record) in rows.iter().zip(records) {
            let sql = Self::statement_sql(&settings, row);
            let statement = match self.statements.get(&sql) {
                Some(s) => s.clone(),
                None => {
                    let s = tx
                        .prepare(&sql)
                        .await
                        .map_err(|e| Self::db_error(&format!("preparing {sql}"), &e))?;
                    self.statements.insert(sql.clone(), s.clone());
                    s
                }
            };
            let params: Vec<&Option<String>> = if row.delete {
                row.keys.iter().map(|(_, v)| v).collect()
            } else if settings.insert_mode == InsertMode::Update {
                row.fields.iter().chain(&row.keys).map(|(_, v)| v).collect()
            } else {
                row.keys.iter().chain(&row.fields).map(|(_, v)| v).collect()
            };
            let params: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> = params
                .iter()
                .map(|v| *v as &(dyn tokio_postgres::types::ToSql + Sync))
                .collect();
            tx.execute(&statement, &params).await.map_err(|e| {
                Self::db_error(
                    &format!(
                        "writing record {}-{}@{} to {}",
                        record.topic,
                        record.partition.unwrap_or(-1),
                        record.kafka_offset.unwrap_or(-1),
                        qualified(&row.table)
                    ),
                    &e,
                )
            })?;
        }
        tx.commit()
            .await
            .map_err(|e| Self::db_error("committing the batch", &e))
    }
}

impl SinkTask for JdbcTask {
    fn start(&mut self, props: &Props) -> Result<(), TaskError> {
        let settings = parse(props).map_err(|p| TaskError::fatal(describe(&p)))?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| TaskError::fatal(format!("starting the task's runtime: {e}")))?;
        self.settings = Some(settings);
        self.runtime = Some(runtime);
        Ok(())
    }

    fn put(&mut self, records: &[ConnectRecord]) -> Result<(), TaskError> {
        let Some(runtime) = self.runtime.take() else {
            return Err(TaskError::fatal("not started"));
        };
        let batch = self.settings.as_ref().map_or(3000, |s| s.batch_size);
        let result = runtime.block_on(async {
            for chunk in records.chunks(batch) {
                if let Err(e) = self.write(chunk).await {
                    // A broken connection is made again on the next try.
                    if e.retriable {
                        self.client = None;
                    }
                    return Err(e);
                }
            }
            Ok(())
        });
        self.runtime = Some(runtime);
        result
    }

    fn flush(&mut self) -> Result<(), TaskError> {
        // Every put is committed before it returns.
        Ok(())
    }

    fn stop(&mut self) {
        self.client = None;
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_timeout(Duration::from_secs(1));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::Struct;

    fn props(pairs: &[(&str, &str)]) -> Props {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn reads_postgres_urls_and_names_bad_keys() {
        let (host, port, db, params) =
            parse_url("jdbc:postgresql://db.example:6543/shop?user=a&password=b").expect("url");
        assert_eq!(
            (host.as_str(), port, db.as_str()),
            ("db.example", 6543, "shop")
        );
        assert_eq!(params["user"], "a");
        let problems = parse(&props(&[
            ("connection.url", "jdbc:mysql://x/y"),
            ("insert.mode", "upsert"),
            ("delete.enabled", "true"),
        ]))
        .expect_err("bad");
        let names: Vec<&str> = problems.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["connection.url", "delete.enabled", "pk.mode"]);
    }

    #[test]
    fn upserts_by_the_record_key_and_deletes_on_tombstones() {
        let settings = parse(&props(&[
            ("connection.url", "jdbc:postgresql://h/db"),
            ("insert.mode", "upsert"),
            ("pk.mode", "record_key"),
            ("delete.enabled", "true"),
        ]))
        .expect("valid");
        let key_schema = Schema::structure(Some("k"), vec![("id", Schema::new(SchemaType::Int32))]);
        let value_schema = Schema::structure(
            Some("v"),
            vec![
                ("id", Schema::new(SchemaType::Int32)),
                ("name", Schema::optional(SchemaType::String)),
            ],
        );
        let mut key = Struct::new(key_schema.clone());
        key.put("id", Value::Int32(7));
        let mut value = Struct::new(value_schema.clone());
        value.put("id", Value::Int32(7));
        value.put("name", Value::String("x".into()));
        let mut record = ConnectRecord::new(
            "dbserver1.inventory.customers",
            Some(value_schema.into()),
            Value::Struct(value),
        );
        record.key_schema = Some(key_schema.into());
        record.key = Value::Struct(key);
        let row = settings.row(&record).expect("row");
        assert_eq!(row.table, (Some("inventory".into()), "customers".into()));
        assert_eq!(
            JdbcTask::statement_sql(&settings, &row),
            "INSERT INTO \"inventory\".\"customers\" (\"id\",\"name\") VALUES (CAST($1::text AS INT),CAST($2::text AS TEXT)) ON CONFLICT (\"id\") DO UPDATE SET \"name\"=EXCLUDED.\"name\""
        );
        record.value = Value::Null;
        let row = settings.row(&record).expect("tombstone");
        assert_eq!(
            JdbcTask::statement_sql(&settings, &row),
            "DELETE FROM \"inventory\".\"customers\" WHERE \"id\" = CAST($1::text AS INT)"
        );
    }

    #[test]
    fn writes_logical_types_as_postgres_text() {
        let date = Schema {
            name: Some("org.apache.kafka.connect.data.Date".into()),
            ..Schema::new(SchemaType::Int32)
        };
        assert_eq!(
            sql_text(&date, &Value::Int32(19_737)).expect("date"),
            Some("2024-01-15".into())
        );
        let ts = Schema {
            name: Some("org.apache.kafka.connect.data.Timestamp".into()),
            ..Schema::new(SchemaType::Int64)
        };
        assert_eq!(
            sql_text(&ts, &Value::Int64(1_705_314_030_500)).expect("ts"),
            Some("2024-01-15 10:20:30.500".into())
        );
        let bytes = Schema::new(SchemaType::Bytes);
        assert_eq!(
            sql_text(&bytes, &Value::Bytes(bytes::Bytes::from_static(&[0, 255]))).expect("b"),
            Some("\\x00ff".into())
        );
        assert!(sql_type(&Schema::array(Schema::new(SchemaType::Int32))).is_err());
    }
}
