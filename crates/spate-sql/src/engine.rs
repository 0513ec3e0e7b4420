//! The SQL worker: carries out statements and runs their jobs. Tables, jobs and views are
//! records of the compacted topic `_spate-sql` (key `table:<name>`, `job:<id>`,
//! `view:<name>`; value the statement's text and state as JSON; a tombstone drops), written
//! before a statement is answered and replayed at start, so a restart brings back every table
//! and every running job — which then resumes from its own checkpoint. A materialized view is
//! a job writing an upsert topic (`spate-sql-view-<name>`) that the worker tails
//! read_committed into memory for lookups.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use parking_lot::{Mutex, RwLock};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::{Offset, TopicPartitionList};
use serde_json::{Value as Json, json};

use crate::catalog::{Catalog, Format, Table};
use crate::errors::SqlError;
use crate::exec::{Change, Kind};
use crate::format::{Decoder, Encoder, Record};
use crate::job::{self, Cluster, JobMetrics, JobOptions, Output};
use crate::parse::{self, ColumnKind, DropKind, Statement};
use crate::plan::{self, Planned, Tables};
use crate::tasks::JobSpec;
use crate::types::{DataType, Field, Value};

/// The worker's settings.
#[derive(Debug, Clone)]
pub struct SqlConfig {
    /// The cluster.
    pub cluster: Cluster,
    /// The schema registry for topics as tables and registry formats.
    pub registry_url: Option<String>,
    /// How often jobs commit a checkpoint (`execution.checkpointing.interval`).
    pub checkpoint_interval: Duration,
    /// The topic holding tables, jobs and views.
    pub statements_topic: String,
}

impl SqlConfig {
    /// Defaults for `bootstrap`.
    pub fn new(bootstrap: &str) -> SqlConfig {
        SqlConfig {
            cluster: Cluster {
                bootstrap: bootstrap.to_string(),
                client: Vec::new(),
            },
            registry_url: None,
            checkpoint_interval: Duration::from_secs(1),
            statements_topic: "_spate-sql".to_string(),
        }
    }
}

/// A job's state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobState {
    /// Running.
    Running,
    /// Stopped by STOP JOB.
    Stopped,
    /// Failed, with why.
    Failed(String),
}

impl JobState {
    /// The name shown.
    pub fn name(&self) -> &'static str {
        match self {
            JobState::Running => "RUNNING",
            JobState::Stopped => "STOPPED",
            JobState::Failed(_) => "FAILED",
        }
    }
}

struct JobEntry {
    sql: String,
    sink: String,
    /// `SET` properties the job was started with.
    properties: BTreeMap<String, String>,
    created_ms: i64,
    state: Arc<Mutex<JobState>>,
    stop: Arc<AtomicBool>,
    metrics: Arc<JobMetrics>,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// A materialized view's rows by key.
pub struct View {
    /// Its name.
    pub name: String,
    /// The query.
    pub sql: String,
    /// The job keeping it.
    pub job: String,
    /// The columns.
    pub fields: Vec<Field>,
    /// The key columns.
    pub key: Vec<usize>,
    rows: RwLock<BTreeMap<String, Vec<Value>>>,
    stop: Arc<AtomicBool>,
}

impl View {
    /// The text a key is looked up by: a single key column's value as text, or the JSON array
    /// of a composite key's values.
    pub fn key_text(&self, row: &[Value]) -> String {
        if self.key.len() == 1 {
            row[self.key[0]].to_string()
        } else {
            Json::Array(
                self.key
                    .iter()
                    .map(|i| row[*i].to_json(&self.fields[*i].data_type))
                    .collect(),
            )
            .to_string()
        }
    }

    /// The row of `key`.
    pub fn get(&self, key: &str) -> Option<Json> {
        self.rows.read().get(key).map(|row| self.row_json(row))
    }

    /// Up to `limit` rows in key order.
    pub fn scan(&self, limit: usize) -> Vec<Json> {
        self.rows
            .read()
            .values()
            .take(limit)
            .map(|row| self.row_json(row))
            .collect()
    }

    /// How many rows it holds.
    pub fn len(&self) -> usize {
        self.rows.read().len()
    }

    /// Whether it holds no row.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn row_json(&self, row: &[Value]) -> Json {
        let mut map = serde_json::Map::new();
        for (f, v) in self.fields.iter().zip(row) {
            map.insert(f.name.clone(), v.to_json(&f.data_type));
        }
        Json::Object(map)
    }
}

/// What a statement did.
#[derive(Debug, Clone)]
pub enum Outcome {
    /// Done; a message.
    Done(String),
    /// A job started.
    Job {
        /// Its id.
        id: String,
        /// What it does.
        message: String,
    },
    /// Rows (SHOW, DESCRIBE).
    Rows {
        /// Column names.
        columns: Vec<String>,
        /// Rows.
        rows: Vec<Vec<Json>>,
    },
    /// EXPLAIN's plan.
    Plan(String),
}

impl Outcome {
    /// The JSON answer.
    pub fn to_json(&self, statement: &str) -> Json {
        match self {
            Outcome::Done(message) => {
                json!({"statementText": statement, "type": "done", "message": message})
            }
            Outcome::Job { id, message } => {
                json!({"statementText": statement, "type": "job", "jobId": id, "message": message})
            }
            Outcome::Rows { columns, rows } => {
                json!({"statementText": statement, "type": "rows", "columnNames": columns, "rows": rows})
            }
            Outcome::Plan(plan) => {
                json!({"statementText": statement, "type": "explain", "plan": plan})
            }
        }
    }
}

/// A running ad-hoc query's result stream.
pub struct QueryStream {
    /// Its id.
    pub id: String,
    /// The columns.
    pub fields: Vec<Field>,
    /// Whether rows carry a changelog kind (`op` column first).
    pub updating: bool,
    /// The rows, in batches.
    pub rows: tokio::sync::mpsc::Receiver<Vec<Change>>,
    /// Set to stop the query.
    pub stop: Arc<AtomicBool>,
    /// The query's error, once it ended with one.
    pub error: Arc<Mutex<Option<SqlError>>>,
}

/// An ad-hoc query's thread with what stops it.
struct RunningQuery {
    stop: Arc<AtomicBool>,
    error: Arc<Mutex<Option<SqlError>>>,
    thread: std::thread::JoinHandle<()>,
}

/// The SQL worker.
pub struct Engine {
    config: SqlConfig,
    catalog: RwLock<Catalog>,
    jobs: Mutex<BTreeMap<String, JobEntry>>,
    views: RwLock<BTreeMap<String, Arc<View>>>,
    /// Logical views (`CREATE VIEW`): name → (statement text, query).
    logical: RwLock<BTreeMap<String, (String, sqlparser::ast::Query)>>,
    /// Writes `_spate-sql`; taken at shutdown, so no client outlives the worker.
    producer: Mutex<Option<BaseProducer>>,
    /// The views' reader threads, joined at shutdown.
    readers: Mutex<Vec<std::thread::JoinHandle<()>>>,
    /// The ad-hoc queries streaming to callers: stopped when the worker stops, so no open
    /// `/query-stream` holds the shutdown up.
    queries: Mutex<Vec<RunningQuery>>,
    /// Serialises statements that change the catalog.
    ddl: Mutex<()>,
    /// Set at shutdown: the statements' follower stops.
    stopping: AtomicBool,
    /// The thread following `_spate-sql`.
    follower: Mutex<Option<std::thread::JoinHandle<()>>>,
}

fn kafka_error(what: &str) -> impl Fn(rdkafka::error::KafkaError) -> SqlError + '_ {
    move |e| SqlError::Io(format!("{what}: {e}"))
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

impl Engine {
    /// Starts the worker: reads `_spate-sql` and starts the jobs it says run.
    pub fn start(config: SqlConfig) -> Result<Arc<Engine>, SqlError> {
        let mut producer_config = config.cluster.config();
        producer_config
            .set("enable.idempotence", "true")
            .set("acks", "all");
        let producer: BaseProducer = producer_config
            .create()
            .map_err(kafka_error("creating the statements producer"))?;
        let engine = Arc::new(Engine {
            config,
            catalog: RwLock::new(Catalog::default()),
            jobs: Mutex::new(BTreeMap::new()),
            views: RwLock::new(BTreeMap::new()),
            logical: RwLock::new(BTreeMap::new()),
            producer: Mutex::new(Some(producer)),
            readers: Mutex::new(Vec::new()),
            queries: Mutex::new(Vec::new()),
            ddl: Mutex::new(()),
            stopping: AtomicBool::new(false),
            follower: Mutex::new(None),
        });
        engine.ensure_topic(&engine.config.statements_topic)?;
        let (mut records, end) = engine.read_statements()?;
        // In first-write order, but tables and logical views before the materialized views
        // that read them, and the jobs last (a stable sort keeps the order within each).
        records.sort_by_key(|(key, _)| match key.split_once(':').map(|(kind, _)| kind) {
            Some("view") => 1,
            Some("job") => 2,
            _ => 0,
        });
        for (key, value) in records {
            engine.apply(&key, Some(value));
        }
        // Statements made on other workers take effect here too.
        let weak = Arc::downgrade(&engine);
        let follower = std::thread::Builder::new()
            .name("sql-statements".into())
            .spawn(move || follow_statements(&weak, end))
            .map_err(|e| SqlError::Io(format!("starting the statements' reader: {e}")))?;
        *engine.follower.lock() = Some(follower);
        Ok(engine)
    }

    /// Takes in job `id` as `_spate-sql` records it (at start, or made by another worker),
    /// starting it if it runs.
    fn adopt_job(&self, id: &str, value: &Json) {
        let text = |k: &str| {
            value
                .get(k)
                .and_then(Json::as_str)
                .unwrap_or_default()
                .to_string()
        };
        let (sql, sink) = (text("sql"), text("sink"));
        let running = value.get("state").and_then(Json::as_str) == Some("RUNNING");
        let properties: BTreeMap<String, String> = value
            .get("properties")
            .and_then(Json::as_object)
            .map(|m| {
                m.iter()
                    .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
                    .collect()
            })
            .unwrap_or_default();
        let entry = JobEntry {
            sql: sql.clone(),
            sink: sink.clone(),
            properties,
            created_ms: value.get("created").and_then(Json::as_i64).unwrap_or(0),
            state: Arc::new(Mutex::new(JobState::Stopped)),
            stop: Arc::new(AtomicBool::new(false)),
            metrics: Arc::new(JobMetrics::new()),
            thread: None,
        };
        self.jobs.lock().insert(id.to_string(), entry);
        if running && let Err(e) = self.launch(id, &sql, &sink) {
            tracing::error!(job = %id, "a stored job could not start: {e}");
            if let Some(j) = self.jobs.lock().get(id) {
                *j.state.lock() = JobState::Failed(e.to_string());
            }
        }
    }

    /// Applies a record of `_spate-sql`: at start, or while running, one another worker wrote
    /// (this worker's own come back too, and change nothing).
    fn apply(&self, key: &str, value: Option<Json>) {
        let _guard = self.ddl.lock();
        if let Some(name) = key.strip_prefix("table:") {
            match value
                .as_ref()
                .and_then(|v| v.get("sql"))
                .and_then(Json::as_str)
            {
                Some(sql) if self.catalog.read().table(name).is_none() => match self.declare(sql) {
                    Ok(table) => self.catalog.write().put(table),
                    Err(e) => tracing::warn!(table = name, "a recorded table does not plan: {e}"),
                },
                Some(_) => {}
                None => {
                    self.catalog.write().remove(name);
                }
            }
        } else if let Some(name) = key.strip_prefix("lview:") {
            match value
                .as_ref()
                .and_then(|v| v.get("sql"))
                .and_then(Json::as_str)
            {
                Some(sql) if !self.logical.read().contains_key(name) => {
                    match parse::parse(sql).map(|mut p| p.remove(0).statement) {
                        Ok(Statement::CreateLogicalView { query, .. }) => {
                            self.logical
                                .write()
                                .insert(name.to_string(), (sql.to_string(), *query));
                        }
                        _ => tracing::warn!(view = name, "a recorded view does not parse"),
                    }
                }
                Some(_) => {}
                None => {
                    self.logical.write().remove(name);
                }
            }
        } else if let Some(name) = key.strip_prefix("view:") {
            match &value {
                Some(v) if !self.views.read().contains_key(name) => {
                    if let (Some(name), Some(sql), Some(job)) = (
                        v.get("name").and_then(Json::as_str),
                        v.get("sql").and_then(Json::as_str),
                        v.get("job").and_then(Json::as_str),
                    ) && let Err(e) = self.open_view(name, sql, job)
                    {
                        tracing::warn!(view = name, "a recorded view does not plan: {e}");
                    }
                }
                Some(_) => {}
                None => {
                    if let Some(view) = self.views.write().remove(name) {
                        view.stop.store(true, Ordering::Relaxed);
                    }
                }
            }
        } else if let Some(id) = key.strip_prefix("job:") {
            let known = self.jobs.lock().contains_key(id);
            let running = value
                .as_ref()
                .and_then(|v| v.get("state"))
                .and_then(Json::as_str)
                == Some("RUNNING");
            match (&value, known) {
                (Some(v), false) => self.adopt_job(id, v),
                (Some(_), true) if running => {}
                // Stopped (or dropped) elsewhere: this worker's share stops too.
                (_, true) => {
                    let _ = self.stop_locally(id);
                    if value.is_none() {
                        self.jobs.lock().remove(id);
                    }
                }
                (None, false) => {}
            }
        }
    }

    /// The worker's settings.
    pub fn config(&self) -> &SqlConfig {
        &self.config
    }

    fn ensure_topic(&self, topic: &str) -> Result<(), SqlError> {
        job::create_topic(
            &self.config.cluster,
            topic,
            1,
            &[("cleanup.policy", "compact")],
        )
    }

    /// `_spate-sql`'s records, the latest value per key, in first-write order.
    fn read_statements(&self) -> Result<(Vec<(String, Json)>, i64), SqlError> {
        let topic = &self.config.statements_topic;
        let mut config = self.config.cluster.config();
        config
            .set("group.id", "spate-sql-statements")
            .set("enable.auto.commit", "false");
        let consumer: BaseConsumer = config.create().map_err(kafka_error("reading statements"))?;
        let (_, high) = consumer
            .fetch_watermarks(topic, 0, Duration::from_secs(10))
            .map_err(kafka_error("reading the statements topic's end"))?;
        let mut latest: BTreeMap<String, (usize, Option<Json>)> = BTreeMap::new();
        if high > 0 {
            let mut tpl = TopicPartitionList::new();
            tpl.add_partition_offset(topic, 0, Offset::Beginning)
                .map_err(kafka_error("statements"))?;
            consumer.assign(&tpl).map_err(kafka_error("statements"))?;
            let deadline = Instant::now() + Duration::from_secs(60);
            let mut seq = 0usize;
            loop {
                if Instant::now() > deadline {
                    return Err(SqlError::Io(
                        "reading the statements topic timed out".into(),
                    ));
                }
                match consumer.poll(Duration::from_millis(200)) {
                    Some(Ok(m)) => {
                        let offset = m.offset();
                        if let Some(key) = m.key().and_then(|k| std::str::from_utf8(k).ok()) {
                            let value = m.payload().and_then(|v| serde_json::from_slice(v).ok());
                            seq += 1;
                            let first = latest.get(key).map_or(seq, |(s, _)| *s);
                            latest.insert(key.to_string(), (first, value));
                        }
                        if offset + 1 >= high {
                            break;
                        }
                    }
                    Some(Err(e)) => return Err(SqlError::Io(format!("reading statements: {e}"))),
                    None => {
                        let done = consumer
                            .position()
                            .ok()
                            .and_then(|p| p.find_partition(topic, 0).map(|e| e.offset()))
                            .is_some_and(|o| matches!(o, Offset::Offset(o) if o >= high));
                        if done {
                            break;
                        }
                    }
                }
            }
        }
        let mut records: Vec<(usize, String, Json)> = latest
            .into_iter()
            .filter_map(|(k, (seq, v))| Some((seq, k, v?)))
            .collect();
        records.sort_by_key(|(seq, _, _)| *seq);
        Ok((records.into_iter().map(|(_, k, v)| (k, v)).collect(), high))
    }

    /// Writes a record of `_spate-sql` and waits until it is acknowledged.
    fn write(&self, key: &str, value: Option<Json>) -> Result<(), SqlError> {
        let payload = value.map(|v| v.to_string());
        let mut record: BaseRecord<'_, str, str> =
            BaseRecord::to(&self.config.statements_topic).key(key);
        if let Some(p) = &payload {
            record = record.payload(p.as_str());
        }
        let producer = self.producer.lock();
        let Some(producer) = producer.as_ref() else {
            return Err(SqlError::Io("the SQL worker is stopping".into()));
        };
        producer
            .send(record)
            .map_err(|(e, _)| SqlError::Io(format!("writing the statement: {e}")))?;
        producer
            .flush(Duration::from_secs(30))
            .map_err(kafka_error("writing the statement"))
    }

    fn declare(&self, sql: &str) -> Result<Table, SqlError> {
        let parsed = parse::parse(sql)?;
        match parsed.first().map(|p| &p.statement) {
            Some(Statement::CreateTable(create)) => {
                Table::declare(create, sql, self.config.registry_url.as_deref())
            }
            _ => Err(SqlError::Option(format!("not a CREATE TABLE: {sql}"))),
        }
    }

    /// Executes `sql` (one or more statements), each answered in order; stops at the first
    /// error. Queries are refused here: they stream ([`Engine::query`]).
    pub fn execute(
        &self,
        sql: &str,
        properties: &BTreeMap<String, String>,
    ) -> Result<Vec<(String, Outcome)>, SqlError> {
        let parsed = parse::parse(sql)?;
        let mut properties = properties.clone();
        check_properties(&properties)?;
        let mut out = Vec::new();
        for p in parsed {
            let outcome = match &p.statement {
                Statement::Set(Some((key, value))) => {
                    let mut one = BTreeMap::new();
                    one.insert(key.clone(), value.clone());
                    check_properties(&one)?;
                    properties.insert(key.clone(), value.clone());
                    Outcome::Done(format!("{key} = {value}"))
                }
                Statement::Set(None) => Outcome::Rows {
                    columns: vec!["key".into(), "value".into()],
                    rows: properties
                        .iter()
                        .map(|(k, v)| vec![json!(k), json!(v)])
                        .collect(),
                },
                Statement::Reset(key) => {
                    match key {
                        Some(k) => {
                            properties.remove(k);
                        }
                        None => properties.clear(),
                    }
                    Outcome::Done("properties reset".into())
                }
                statement => self.statement(statement, &p.text, &properties)?,
            };
            out.push((p.text, outcome));
        }
        Ok(out)
    }

    fn statement(
        &self,
        statement: &Statement,
        text: &str,
        properties: &BTreeMap<String, String>,
    ) -> Result<Outcome, SqlError> {
        match statement {
            Statement::CreateTable(create) => {
                let _guard = self.ddl.lock();
                if self.catalog.read().table(&create.name).is_some() {
                    if create.if_not_exists {
                        return Ok(Outcome::Done(format!("table {} exists", create.name)));
                    }
                    return Err(SqlError::Exists {
                        kind: "table",
                        name: create.name.clone(),
                    });
                }
                let table = Table::declare(create, text, self.config.registry_url.as_deref())?;
                self.write(
                    &format!("table:{}", table.name.to_ascii_lowercase()),
                    Some(json!({"sql": text})),
                )?;
                let name = table.name.clone();
                self.catalog.write().put(table);
                Ok(Outcome::Done(format!("table {name} created")))
            }
            Statement::CreateTableAs {
                name,
                options,
                query,
            } => {
                let _guard = self.ddl.lock();
                if self.catalog.read().table(name).is_some() {
                    return Err(SqlError::Exists {
                        kind: "table",
                        name: name.clone(),
                    });
                }
                let planned = plan::plan_query(query, self)?;
                self.check_sources(&planned)?;
                let ddl = ctas_ddl(name, options, &planned);
                let table = self.declare(&ddl)?;
                self.ensure_sink_topic(&table.topic)?;
                self.write(
                    &format!("table:{}", name.to_ascii_lowercase()),
                    Some(json!({"sql": ddl})),
                )?;
                self.catalog.write().put(table);
                let id = self.submit_job(text, name, properties)?;
                Ok(Outcome::Job {
                    id,
                    message: format!("table {name} created; a job fills it"),
                })
            }
            Statement::Insert { table, query } => {
                let sink = self.table(table)?;
                let planned = plan::plan_query(query, self)?;
                check_sink(&sink, &planned)?;
                self.check_sources(&planned)?;
                let id = self.submit_job(text, &sink.name, properties)?;
                Ok(Outcome::Job {
                    id,
                    message: format!("a job writes into {}", sink.name),
                })
            }
            Statement::CreateView { name, query } => {
                let _guard = self.ddl.lock();
                if self.views.read().contains_key(&name.to_ascii_lowercase()) {
                    return Err(SqlError::Exists {
                        kind: "view",
                        name: name.clone(),
                    });
                }
                let planned = plan::plan_query(query, self)?;
                self.check_sources(&planned)?;
                if planned.upsert_key.is_empty() {
                    return Err(SqlError::Unsupported(
                        "a materialized view without GROUP BY: its rows need a key (the GROUP BY columns, selected)"
                            .into(),
                    ));
                }
                let view_table = format!("spate-sql-view-{}", name.to_ascii_lowercase());
                let ddl = ctas_ddl(
                    &view_table,
                    &[
                        ("connector".to_string(), "upsert-kafka".to_string()),
                        ("topic".to_string(), view_table.clone()),
                    ],
                    &planned,
                );
                let table = self.declare(&ddl)?;
                self.ensure_topic(&view_table)?;
                self.write(&format!("table:{}", view_table), Some(json!({"sql": ddl})))?;
                self.catalog.write().put(table);
                let id = self.submit_job(text, &view_table, properties)?;
                self.write(
                    &format!("view:{}", name.to_ascii_lowercase()),
                    Some(json!({"name": name, "sql": text, "job": id})),
                )?;
                self.open_view(name, text, &id)?;
                Ok(Outcome::Job {
                    id,
                    message: format!("materialized view {name} created"),
                })
            }
            Statement::CreateLogicalView {
                name,
                if_not_exists,
                query,
            } => {
                let _guard = self.ddl.lock();
                let key = name.to_ascii_lowercase();
                if self.logical.read().contains_key(&key)
                    || self.catalog.read().table(name).is_some()
                {
                    if *if_not_exists {
                        return Ok(Outcome::Done(format!("view {name} exists")));
                    }
                    return Err(SqlError::Exists {
                        kind: "view",
                        name: name.clone(),
                    });
                }
                // It must plan now, not only where it is used.
                plan::plan_query(query, self)?;
                self.write(&format!("lview:{key}"), Some(json!({"sql": text})))?;
                self.logical
                    .write()
                    .insert(key, (text.to_string(), (**query).clone()));
                Ok(Outcome::Done(format!("view {name} created")))
            }
            Statement::Query(_) => Err(SqlError::Unsupported(
                "a query here: SELECT streams its results from POST /query-stream (or `spate sql`)"
                    .into(),
            )),
            Statement::Explain(inner) => {
                let query = match &**inner {
                    Statement::Query(q)
                    | Statement::Insert { query: q, .. }
                    | Statement::CreateTableAs { query: q, .. }
                    | Statement::CreateView { query: q, .. } => q,
                    _ => return Err(SqlError::Unsupported("EXPLAIN of this statement".into())),
                };
                let planned = plan::plan_query(query, self)?;
                Ok(Outcome::Plan(planned.explain()))
            }
            Statement::ShowTables => {
                let mut names: Vec<String> = self
                    .catalog
                    .read()
                    .tables()
                    .filter(|t| !t.name.starts_with("spate-sql-view-"))
                    .map(|t| t.name.clone())
                    .collect();
                names.sort();
                Ok(Outcome::Rows {
                    columns: vec!["table name".into()],
                    rows: names.into_iter().map(|n| vec![json!(n)]).collect(),
                })
            }
            Statement::ShowViews => {
                let mut rows: Vec<Vec<Json>> = self
                    .views
                    .read()
                    .values()
                    .map(|v| vec![json!(v.name), json!(v.job), json!(v.len())])
                    .collect();
                rows.extend(
                    self.logical
                        .read()
                        .keys()
                        .map(|name| vec![json!(name), Json::Null, Json::Null]),
                );
                Ok(Outcome::Rows {
                    columns: vec!["view name".into(), "job".into(), "rows".into()],
                    rows,
                })
            }
            Statement::ShowJobs => Ok(Outcome::Rows {
                columns: vec![
                    "job id".into(),
                    "status".into(),
                    "sink".into(),
                    "statement".into(),
                ],
                rows: self
                    .jobs()
                    .into_iter()
                    .map(|j| {
                        vec![
                            j["id"].clone(),
                            j["status"].clone(),
                            j["sink"].clone(),
                            j["statement"].clone(),
                        ]
                    })
                    .collect(),
            }),
            Statement::Describe(name) => {
                let table = self.table(name)?;
                Ok(Outcome::Rows {
                    columns: vec!["name".into(), "type".into(), "extras".into()],
                    rows: table
                        .describe()
                        .into_iter()
                        .map(|(n, t, e)| vec![json!(n), json!(t), json!(e)])
                        .collect(),
                })
            }
            Statement::Drop {
                kind,
                name,
                if_exists,
            } => {
                let _guard = self.ddl.lock();
                match kind {
                    DropKind::Table => {
                        if self.catalog.read().table(name).is_none() {
                            if *if_exists {
                                return Ok(Outcome::Done(format!("table {name} does not exist")));
                            }
                            return Err(SqlError::NotFound {
                                kind: "table",
                                name: name.clone(),
                            });
                        }
                        let users: Vec<String> = self
                            .jobs
                            .lock()
                            .iter()
                            .filter(|(_, j)| {
                                *j.state.lock() == JobState::Running
                                    && j.sink.eq_ignore_ascii_case(name)
                            })
                            .map(|(id, _)| id.clone())
                            .collect();
                        if !users.is_empty() {
                            return Err(SqlError::Option(format!(
                                "table {name} is written by running job(s) {}; STOP JOB first",
                                users.join(", ")
                            )));
                        }
                        self.write(&format!("table:{}", name.to_ascii_lowercase()), None)?;
                        self.catalog.write().remove(name);
                        Ok(Outcome::Done(format!(
                            "table {name} dropped (its topic is kept)"
                        )))
                    }
                    DropKind::View => {
                        let key = name.to_ascii_lowercase();
                        if self.logical.write().remove(&key).is_some() {
                            self.write(&format!("lview:{key}"), None)?;
                            return Ok(Outcome::Done(format!("view {name} dropped")));
                        }
                        let Some(view) = self.views.write().remove(&name.to_ascii_lowercase())
                        else {
                            if *if_exists {
                                return Ok(Outcome::Done(format!("view {name} does not exist")));
                            }
                            return Err(SqlError::NotFound {
                                kind: "view",
                                name: name.clone(),
                            });
                        };
                        view.stop.store(true, Ordering::Relaxed);
                        self.stop_job(&view.job)?;
                        self.write(&format!("view:{}", name.to_ascii_lowercase()), None)?;
                        Ok(Outcome::Done(format!("view {name} dropped")))
                    }
                }
            }
            Statement::StopJob(id) => {
                self.stop_job(id)?;
                Ok(Outcome::Done(format!("job {id} stopped")))
            }
            Statement::Set(_) | Statement::Reset(_) => Ok(Outcome::Done(
                "properties apply to the statements after them".into(),
            )),
        }
    }

    fn ensure_sink_topic(&self, topic: &str) -> Result<(), SqlError> {
        job::create_topic(&self.config.cluster, topic, 1, &[])
    }

    fn submit_job(
        &self,
        sql: &str,
        sink: &str,
        properties: &BTreeMap<String, String>,
    ) -> Result<String, SqlError> {
        let id = uuid::Uuid::new_v4().simple().to_string()[..16].to_string();
        let created_ms = now_ms();
        // Known here before it is recorded: the statements' follower, seeing the record,
        // leaves it to this call.
        self.jobs.lock().insert(
            id.clone(),
            JobEntry {
                sql: sql.to_string(),
                sink: sink.to_string(),
                properties: properties.clone(),
                created_ms,
                state: Arc::new(Mutex::new(JobState::Running)),
                stop: Arc::new(AtomicBool::new(false)),
                metrics: Arc::new(JobMetrics::new()),
                thread: None,
            },
        );
        if let Err(e) = self.write(
            &format!("job:{id}"),
            Some(json!({"sql": sql, "sink": sink, "state": "RUNNING", "created": created_ms, "properties": properties})),
        ) {
            self.jobs.lock().remove(&id);
            return Err(e);
        }
        self.launch(&id, sql, sink)?;
        Ok(id)
    }

    /// Starts job `id`'s thread.
    fn launch(&self, id: &str, sql: &str, sink: &str) -> Result<(), SqlError> {
        let parsed = parse::parse(sql)?;
        let query = match parsed.first().map(|p| &p.statement) {
            Some(
                Statement::Insert { query, .. }
                | Statement::CreateTableAs { query, .. }
                | Statement::CreateView { query, .. },
            ) => query,
            _ => return Err(SqlError::Runtime(format!("job {id} runs no query: {sql}"))),
        };
        let sink_table = self.table(sink)?;
        let recording = plan::Recording::new(self);
        let planned = plan::plan_query(query, &recording)?;
        let snapshot = recording.snapshot();
        check_sink(&sink_table, &planned)?;
        for source in &planned.sources {
            if let crate::catalog::ErrorPolicy::DeadLetter(topic) = &source.table.error_policy {
                self.ensure_sink_topic(topic)?;
            }
        }
        // Each task makes its own encoder; this one only says now, to the statement, if the
        // sink cannot take the rows.
        Encoder::new(Arc::clone(&sink_table))?;
        let mut jobs = self.jobs.lock();
        let entry = jobs.get_mut(id).ok_or_else(|| SqlError::NotFound {
            kind: "job",
            name: id.to_string(),
        })?;
        entry.stop.store(false, Ordering::Relaxed);
        *entry.state.lock() = JobState::Running;
        let stop = Arc::clone(&entry.stop);
        let state = Arc::clone(&entry.state);
        let metrics = Arc::clone(&entry.metrics);
        let cluster = self.config.cluster.clone();
        let (checkpoint_interval, state_ttl, parallelism) =
            job_settings(&entry.properties, self.config.checkpoint_interval)?;
        let query = query.clone();
        let spec = JobSpec {
            plan: Arc::new(move || plan::plan_query(&query, &snapshot)),
            sink: sink_table,
            options: JobOptions {
                id: id.to_string(),
                checkpoint_interval,
                skip_errors: false,
                state_ttl,
                parallelism,
            },
        };
        let job_id = id.to_string();
        let thread = std::thread::Builder::new()
            .name(format!("sql-{id}"))
            .spawn(move || {
                let result = crate::tasks::run_job(&cluster, &spec, &stop, &metrics);
                match result {
                    Ok(()) => *state.lock() = JobState::Stopped,
                    Err(e) => {
                        tracing::error!(job = %job_id, "the job failed: {e}");
                        *state.lock() = JobState::Failed(e.to_string());
                    }
                }
            })
            .map_err(|e| SqlError::Io(format!("starting the job's thread: {e}")))?;
        entry.thread = Some(thread);
        Ok(())
    }

    /// Stops this worker's share of job `id` (each task's last checkpoint commits).
    fn stop_locally(&self, id: &str) -> Result<(), SqlError> {
        let thread = {
            let mut jobs = self.jobs.lock();
            let entry = jobs.get_mut(id).ok_or_else(|| SqlError::NotFound {
                kind: "job",
                name: id.to_string(),
            })?;
            entry.stop.store(true, Ordering::Relaxed);
            entry.thread.take()
        };
        if let Some(t) = thread {
            let _ = t.join();
        }
        if let Some(entry) = self.jobs.lock().get(id) {
            *entry.state.lock() = JobState::Stopped;
        }
        Ok(())
    }

    /// Stops job `id` (its last checkpoint commits) and records it stopped.
    pub fn stop_job(&self, id: &str) -> Result<(), SqlError> {
        self.stop_locally(id)?;
        let (sql, sink, created, properties) = {
            let jobs = self.jobs.lock();
            let entry = jobs.get(id).ok_or_else(|| SqlError::NotFound {
                kind: "job",
                name: id.to_string(),
            })?;
            *entry.state.lock() = JobState::Stopped;
            (
                entry.sql.clone(),
                entry.sink.clone(),
                entry.created_ms,
                entry.properties.clone(),
            )
        };
        self.write(
            &format!("job:{id}"),
            Some(json!({"sql": sql, "sink": sink, "state": "STOPPED", "created": created, "properties": properties})),
        )
    }

    /// Ends the ad-hoc queries (for shutdown, before the API waits for its connections): each
    /// caller's stream ends with an error line saying why.
    pub fn stop_queries(&self) {
        let queries = std::mem::take(&mut *self.queries.lock());
        for q in &queries {
            q.error
                .lock()
                .get_or_insert_with(|| SqlError::Io("the SQL worker is stopping".into()));
            q.stop.store(true, Ordering::Relaxed);
        }
        for q in queries {
            let _ = q.thread.join();
        }
    }

    /// Stops every job's thread (for shutdown): each commits its last checkpoint. Then the
    /// views' readers stop and the statements producer closes: no client of the cluster is
    /// left connected once this returns (in-process, the broker stops next).
    pub fn shutdown(&self) {
        self.stopping.store(true, Ordering::Relaxed);
        let follower = self.follower.lock().take();
        if let Some(f) = follower {
            let _ = f.join();
        }
        let threads: Vec<_> = {
            let mut jobs = self.jobs.lock();
            jobs.values_mut()
                .filter_map(|j| {
                    j.stop.store(true, Ordering::Relaxed);
                    j.thread.take()
                })
                .collect()
        };
        for t in threads {
            let _ = t.join();
        }
        for view in self.views.read().values() {
            view.stop.store(true, Ordering::Relaxed);
        }
        let readers = std::mem::take(&mut *self.readers.lock());
        for r in readers {
            let _ = r.join();
        }
        self.producer.lock().take();
    }

    /// The jobs, as the API lists them.
    pub fn jobs(&self) -> Vec<Json> {
        self.jobs
            .lock()
            .iter()
            .map(|(id, j)| job_json(id, j))
            .collect()
    }

    /// One job.
    pub fn job(&self, id: &str) -> Result<Json, SqlError> {
        self.jobs
            .lock()
            .get(id)
            .map(|j| job_json(id, j))
            .ok_or_else(|| SqlError::NotFound {
                kind: "job",
                name: id.to_string(),
            })
    }

    /// The view `name`.
    pub fn view(&self, name: &str) -> Result<Arc<View>, SqlError> {
        self.views
            .read()
            .get(&name.to_ascii_lowercase())
            .cloned()
            .ok_or_else(|| SqlError::NotFound {
                kind: "view",
                name: name.to_string(),
            })
    }

    /// The names of the tables.
    pub fn table_names(&self) -> Vec<String> {
        self.catalog
            .read()
            .tables()
            .map(|t| t.name.clone())
            .collect()
    }

    /// Prometheus text for every job.
    pub fn render_metrics(&self, out: &mut String) {
        use std::fmt::Write as _;
        type Read = fn(&JobMetrics) -> i64;
        let series: [(&str, &str, &str, Read); 10] = [
            (
                "spate_sql_job_records_in_total",
                "counter",
                "Records a job read.",
                |m| m.records_in.load(Ordering::Relaxed) as i64,
            ),
            (
                "spate_sql_job_records_out_total",
                "counter",
                "Rows a job wrote.",
                |m| m.records_out.load(Ordering::Relaxed) as i64,
            ),
            (
                "spate_sql_job_late_records_dropped_total",
                "counter",
                "Rows dropped because their window had closed.",
                |m| m.late_dropped.load(Ordering::Relaxed) as i64,
            ),
            (
                "spate_sql_job_records_skipped_total",
                "counter",
                "Records skipped by the error policy.",
                |m| m.skipped.load(Ordering::Relaxed) as i64,
            ),
            (
                "spate_sql_job_checkpoints_total",
                "counter",
                "Checkpoints committed.",
                |m| m.checkpoints.load(Ordering::Relaxed) as i64,
            ),
            (
                "spate_sql_job_checkpoint_duration_us",
                "gauge",
                "The last checkpoint's duration.",
                |m| m.checkpoint_us.load(Ordering::Relaxed) as i64,
            ),
            (
                "spate_sql_job_state_entries",
                "gauge",
                "Keyed state entries a job holds.",
                |m| m.state_entries.load(Ordering::Relaxed) as i64,
            ),
            (
                "spate_sql_job_tasks",
                "gauge",
                "A job's tasks running on this worker.",
                |m| m.tasks.load(Ordering::Relaxed) as i64,
            ),
            (
                "spate_sql_job_consumer_lag_records",
                "gauge",
                "Records between a job's position and its sources' ends.",
                |m| m.lag_records.load(Ordering::Relaxed),
            ),
            (
                "spate_sql_job_watermark_lag_ms",
                "gauge",
                "How far the job's watermark is behind the wall clock.",
                |m| {
                    let wm = m.watermark_ms.load(Ordering::Relaxed);
                    if wm == i64::MIN { -1 } else { now_ms() - wm }
                },
            ),
        ];
        let jobs = self.jobs.lock();
        for (name, kind, help, read) in series {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
            for (id, j) in jobs.iter() {
                let _ = writeln!(out, "{name}{{job=\"{id}\"}} {}", read(&j.metrics));
            }
        }
    }

    fn open_view(&self, name: &str, sql: &str, job: &str) -> Result<(), SqlError> {
        let parsed = parse::parse(sql)?;
        let Some(Statement::CreateView { query, .. }) = parsed.first().map(|p| &p.statement) else {
            return Err(SqlError::Runtime(format!("not a view: {sql}")));
        };
        let planned = plan::plan_query(query, self)?;
        let table_name = format!("spate-sql-view-{}", name.to_ascii_lowercase());
        let table = self.table(&table_name)?;
        let view = Arc::new(View {
            name: name.to_string(),
            sql: sql.to_string(),
            job: job.to_string(),
            fields: planned.fields.clone(),
            key: planned.upsert_key.clone(),
            rows: RwLock::new(BTreeMap::new()),
            stop: Arc::new(AtomicBool::new(false)),
        });
        self.views
            .write()
            .insert(name.to_ascii_lowercase(), Arc::clone(&view));
        let cluster = self.config.cluster.clone();
        let reader = std::thread::Builder::new()
            .name(format!("sql-view-{name}"))
            .spawn(move || {
                if let Err(e) = tail_view(&cluster, table, &view) {
                    tracing::error!(view = %view.name, "the view's reader stopped: {e}");
                }
            })
            .map_err(|e| SqlError::Io(format!("starting the view's reader: {e}")))?;
        let mut readers = self.readers.lock();
        readers.retain(|r| !r.is_finished());
        readers.push(reader);
        Ok(())
    }

    /// Starts an ad-hoc query: its rows stream until LIMIT, a stop, or the receiver is dropped.
    pub fn query(&self, sql: &str) -> Result<QueryStream, SqlError> {
        let parsed = parse::parse(sql)?;
        if parsed.len() != 1 {
            return Err(SqlError::Unsupported(
                "more than one statement in a query".into(),
            ));
        }
        let Statement::Query(query) = &parsed[0].statement else {
            return Err(SqlError::Unsupported(
                "a statement that is not a query on /query-stream: use /statements".into(),
            ));
        };
        let planned = plan::plan_query(query, self)?;
        self.check_sources(&planned)?;
        let id = uuid::Uuid::new_v4().simple().to_string()[..16].to_string();
        let (tx, rx) = tokio::sync::mpsc::channel(16);
        let stop = Arc::new(AtomicBool::new(false));
        let error = Arc::new(Mutex::new(None));
        let fields = planned.fields.clone();
        let updating = planned.updating;
        let cluster = self.config.cluster.clone();
        let options = JobOptions {
            id: id.clone(),
            checkpoint_interval: Duration::from_secs(3600),
            skip_errors: false,
            state_ttl: None,
            parallelism: 1,
        };
        let thread_stop = Arc::clone(&stop);
        let thread_error = Arc::clone(&error);
        let thread = std::thread::Builder::new()
            .name(format!("sql-query-{id}"))
            .spawn(move || {
                let metrics = JobMetrics::new();
                if let Err(e) = job::run(
                    &cluster,
                    planned,
                    Output::Caller(tx),
                    &options,
                    &thread_stop,
                    &metrics,
                ) {
                    *thread_error.lock() = Some(e);
                }
            })
            .map_err(|e| SqlError::Io(format!("starting the query: {e}")))?;
        let mut queries = self.queries.lock();
        queries.retain(|q| !q.thread.is_finished());
        queries.push(RunningQuery {
            stop: Arc::clone(&stop),
            error: Arc::clone(&error),
            thread,
        });
        drop(queries);
        Ok(QueryStream {
            id,
            fields,
            updating,
            rows: rx,
            stop,
            error,
        })
    }

    /// Every source topic of `planned` exists.
    fn check_sources(&self, planned: &Planned) -> Result<(), SqlError> {
        let producer = self.producer.lock();
        let Some(producer) = producer.as_ref() else {
            return Err(SqlError::Io("the SQL worker is stopping".into()));
        };
        for source in &planned.sources {
            let metadata = producer
                .client()
                .fetch_metadata(Some(&source.table.topic), Duration::from_secs(10))
                .map_err(kafka_error("reading the topics' metadata"))?;
            let exists = metadata
                .topics()
                .iter()
                .any(|t| t.error().is_none() && !t.partitions().is_empty());
            if !exists {
                return Err(SqlError::NotFound {
                    kind: "topic",
                    name: format!("{} (of table {})", source.table.topic, source.table.name),
                });
            }
        }
        Ok(())
    }

    /// The table `name`: declared, or from the schema registry.
    pub fn table(&self, name: &str) -> Result<Arc<Table>, SqlError> {
        if let Some(t) = self.catalog.read().table(name) {
            return Ok(t);
        }
        let not_found = || SqlError::NotFound {
            kind: "table",
            name: name.to_string(),
        };
        let Some(url) = &self.config.registry_url else {
            return Err(not_found());
        };
        // A topic with a registered value schema is a table.
        let subject = format!("{name}-value");
        let answer = ureq::get(&format!(
            "{}/subjects/{subject}/versions/latest",
            url.trim_end_matches('/')
        ))
        .call();
        let schema_type = match answer {
            Ok(mut response) => {
                let body: Json = response.body_mut().read_json().map_err(|e| {
                    SqlError::Io(format!("the schema registry's answer for {subject}: {e}"))
                })?;
                body.get("schemaType")
                    .and_then(Json::as_str)
                    .unwrap_or("AVRO")
                    .to_string()
            }
            Err(ureq::Error::StatusCode(404)) => return Err(not_found()),
            Err(e) => return Err(SqlError::Io(format!("the schema registry at {url}: {e}"))),
        };
        let format = match schema_type.as_str() {
            "AVRO" => Format::Avro,
            "JSON" => Format::JsonRegistry,
            "PROTOBUF" => Format::Protobuf,
            other => return Err(SqlError::Unsupported(format!("schema type {other}"))),
        };
        let converter = crate::format::registry_converter(&format, url, false)?;
        let schema = converter
            .latest_schema(name)
            .map_err(|e| SqlError::Io(format!("the schema of {subject}: {e}")))?
            .ok_or_else(not_found)?;
        Ok(Arc::new(Table::from_schema(name, &schema, format, url)?))
    }
}

impl Tables for Engine {
    fn table(&self, name: &str) -> Result<Arc<Table>, SqlError> {
        Engine::table(self, name)
    }

    fn view(&self, name: &str) -> Option<sqlparser::ast::Query> {
        self.logical
            .read()
            .get(&name.to_ascii_lowercase())
            .map(|(_, q)| q.clone())
    }
}

fn job_json(id: &str, j: &JobEntry) -> Json {
    let state = j.state.lock().clone();
    let m = &j.metrics;
    let wm = m.watermark_ms.load(Ordering::Relaxed);
    json!({
        "id": id,
        "status": state.name(),
        "error": match &state { JobState::Failed(e) => Json::String(e.clone()), _ => Json::Null },
        "sink": j.sink,
        "statement": j.sql,
        "createdMs": j.created_ms,
        "parallelism": j.properties.get("parallelism.default").and_then(|p| p.parse::<i64>().ok()).unwrap_or(1),
        "metrics": {
            "recordsIn": m.records_in.load(Ordering::Relaxed),
            "recordsOut": m.records_out.load(Ordering::Relaxed),
            "lateRecordsDropped": m.late_dropped.load(Ordering::Relaxed),
            "recordsSkipped": m.skipped.load(Ordering::Relaxed),
            "checkpoints": m.checkpoints.load(Ordering::Relaxed),
            "lastCheckpointUs": m.checkpoint_us.load(Ordering::Relaxed),
            "stateEntries": m.state_entries.load(Ordering::Relaxed),
            "tasks": m.tasks.load(Ordering::Relaxed),
            "lagRecords": match m.lag_records.load(Ordering::Relaxed) {
                n if n < 0 => Json::Null,
                n => json!(n),
            },
            "watermark": if wm == i64::MIN { Json::Null } else { Json::String(crate::types::format_timestamp(wm)) },
        },
    })
}

/// The properties a statement may `SET`.
pub const PROPERTIES: &[&str] = &[
    "table.exec.state.ttl",
    "execution.checkpointing.interval",
    "parallelism.default",
];

/// The most tasks per stage a job may have.
pub const MAX_PARALLELISM: i32 = 256;

fn check_properties(properties: &BTreeMap<String, String>) -> Result<(), SqlError> {
    for (k, v) in properties {
        if !PROPERTIES.contains(&k.as_str()) {
            return Err(SqlError::Option(format!(
                "unsupported property '{k}' (supported: {})",
                PROPERTIES.join(", ")
            )));
        }
        if k == "parallelism.default" {
            if !v
                .trim()
                .parse::<i32>()
                .is_ok_and(|n| (1..=MAX_PARALLELISM).contains(&n))
            {
                return Err(SqlError::Option(format!(
                    "'{k}' = '{v}': a number of tasks from 1 to {MAX_PARALLELISM}"
                )));
            }
        } else if crate::catalog::parse_duration(v).is_none() {
            return Err(SqlError::Option(format!(
                "'{k}' = '{v}': a duration such as '1 h', '30 s' or '500 ms'"
            )));
        }
    }
    Ok(())
}

/// A job's checkpoint interval, state TTL and parallelism from its properties.
fn job_settings(
    properties: &BTreeMap<String, String>,
    default_interval: Duration,
) -> Result<(Duration, Option<Duration>, i32), SqlError> {
    check_properties(properties)?;
    let interval = properties
        .get("execution.checkpointing.interval")
        .and_then(|v| crate::catalog::parse_duration(v))
        .unwrap_or(default_interval)
        .max(Duration::from_millis(10));
    let ttl = properties
        .get("table.exec.state.ttl")
        .and_then(|v| crate::catalog::parse_duration(v))
        .filter(|d| !d.is_zero());
    let parallelism = properties
        .get("parallelism.default")
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(1);
    Ok((interval, ttl, parallelism))
}

/// The query's columns must be the sink's physical columns, in order, with types that fit.
fn check_sink(sink: &Table, planned: &Planned) -> Result<(), SqlError> {
    let physical: Vec<&Field> = sink
        .columns
        .iter()
        .filter(|c| c.kind == ColumnKind::Physical)
        .map(|c| &c.field)
        .collect();
    if physical.len() != planned.fields.len() {
        return Err(SqlError::Type(format!(
            "the query gives {} columns ({}), table {} takes {} ({})",
            planned.fields.len(),
            planned
                .fields
                .iter()
                .map(|f| f.name.as_str())
                .collect::<Vec<_>>()
                .join(", "),
            sink.name,
            physical.len(),
            physical
                .iter()
                .map(|f| f.name.as_str())
                .collect::<Vec<_>>()
                .join(", "),
        )));
    }
    for (q, s) in planned.fields.iter().zip(&physical) {
        let fits = q.data_type == s.data_type
            || q.data_type == DataType::Null
            || (q.data_type.is_numeric() && s.data_type.is_numeric())
            || (q.data_type.is_timestamp() && s.data_type.is_timestamp())
            || s.data_type == DataType::String;
        if !fits {
            return Err(SqlError::Type(format!(
                "column {} of the query is {}, column {} of table {} is {}",
                q.name, q.data_type, s.name, sink.name, s.data_type
            )));
        }
    }
    if planned.updating && !sink.upsert {
        return Err(SqlError::Unsupported(format!(
            "table {} is append-only (a 'kafka' table) and this query updates its rows (GROUP BY without a window); \
             write it to a table with 'connector' = 'upsert-kafka' and a PRIMARY KEY, or use a window",
            sink.name
        )));
    }
    Ok(())
}

/// The DDL of a table made by CREATE TABLE ... AS SELECT (or a view's topic): the query's
/// columns; JSON; an upsert table keyed by the GROUP BY columns when the query updates.
fn ctas_ddl(name: &str, options: &[(String, String)], planned: &Planned) -> String {
    let mut columns: Vec<String> = planned
        .fields
        .iter()
        .map(|f| format!("`{}` {}", f.name.replace('`', "``"), f.data_type))
        .collect();
    let mut options: Vec<(String, String)> = options.to_vec();
    let has = |options: &[(String, String)], k: &str| options.iter().any(|(key, _)| key == k);
    let updating = planned.updating
        || options
            .iter()
            .any(|(k, v)| k == "connector" && v == "upsert-kafka");
    if updating && !planned.upsert_key.is_empty() {
        columns.push(format!(
            "PRIMARY KEY ({}) NOT ENFORCED",
            planned
                .upsert_key
                .iter()
                .map(|i| format!("`{}`", planned.fields[*i].name))
                .collect::<Vec<_>>()
                .join(", ")
        ));
        if !has(&options, "connector") {
            options.push(("connector".into(), "upsert-kafka".into()));
        }
        if !has(&options, "key.format") {
            options.push(("key.format".into(), "json".into()));
        }
    }
    if !has(&options, "topic") {
        options.push(("topic".into(), name.to_string()));
    }
    if !has(&options, "value.format") && !has(&options, "format") {
        options.push(("value.format".into(), "json".into()));
    }
    format!(
        "CREATE TABLE `{name}` ({}) WITH ({})",
        columns.join(", "),
        options
            .iter()
            .map(|(k, v)| format!("'{}' = '{}'", k.replace('\'', "''"), v.replace('\'', "''")))
            .collect::<Vec<_>>()
            .join(", ")
    )
}

/// Follows `_spate-sql` from `from` until the engine stops: what other workers record (tables,
/// views, jobs started and stopped) applies here.
fn follow_statements(engine: &std::sync::Weak<Engine>, from: i64) {
    let consumer = {
        let Some(e) = engine.upgrade() else {
            return;
        };
        let mut config = e.config.cluster.config();
        config
            .set("group.id", "spate-sql-statements")
            .set("enable.auto.commit", "false")
            .set("fetch.wait.max.ms", "200");
        let consumer: BaseConsumer = match config.create() {
            Ok(c) => c,
            Err(e) => {
                tracing::error!("the statements' reader could not start: {e}");
                return;
            }
        };
        let mut tpl = TopicPartitionList::new();
        if let Err(err) = tpl
            .add_partition_offset(&e.config.statements_topic, 0, Offset::Offset(from))
            .and_then(|()| consumer.assign(&tpl))
        {
            tracing::error!("the statements' reader could not start: {err}");
            return;
        }
        consumer
    };
    loop {
        let message = consumer.poll(Duration::from_millis(200));
        let Some(engine) = engine.upgrade() else {
            return;
        };
        if engine.stopping.load(Ordering::Relaxed) {
            return;
        }
        match message {
            Some(Ok(m)) => {
                if let Some(key) = m.key().and_then(|k| std::str::from_utf8(k).ok()) {
                    let value = m.payload().and_then(|v| serde_json::from_slice(v).ok());
                    engine.apply(key, value);
                }
            }
            Some(Err(e)) => tracing::warn!("reading statements: {e}"),
            None => {}
        }
    }
}

/// Tails a view's upsert topic (read_committed) into its rows.
fn tail_view(cluster: &Cluster, table: Arc<Table>, view: &View) -> Result<(), SqlError> {
    let mut config = cluster.config();
    config
        .set("group.id", format!("spate-sql-view-reader-{}", view.name))
        .set("enable.auto.commit", "false")
        .set("isolation.level", "read_committed")
        .set("fetch.wait.max.ms", "100");
    let consumer: BaseConsumer = config.create().map_err(kafka_error("the view's reader"))?;
    let metadata = consumer
        .fetch_metadata(Some(&table.topic), Duration::from_secs(10))
        .map_err(kafka_error("the view's topic"))?;
    let mut tpl = TopicPartitionList::new();
    for t in metadata.topics() {
        for p in t.partitions() {
            tpl.add_partition_offset(&table.topic, p.id(), Offset::Beginning)
                .map_err(kafka_error("the view's topic"))?;
        }
    }
    consumer
        .assign(&tpl)
        .map_err(kafka_error("the view's topic"))?;
    let decoder = Decoder::new(Arc::clone(&table))?;
    while !view.stop.load(Ordering::Relaxed) {
        let Some(result) = consumer.poll(Duration::from_millis(200)) else {
            continue;
        };
        let Ok(m) = result else {
            continue;
        };
        let record = Record {
            topic: m.topic(),
            partition: m.partition(),
            offset: m.offset(),
            timestamp: m.timestamp().to_millis(),
            key: m.key(),
            value: m.payload(),
            headers: Vec::new(),
        };
        match decoder.decode(&record) {
            Ok(Some(change)) => {
                let key = view.key_text(&change.row);
                let mut rows = view.rows.write();
                match change.kind {
                    Kind::Insert | Kind::UpdateAfter => {
                        rows.insert(key, change.row);
                    }
                    Kind::Delete | Kind::UpdateBefore => {
                        rows.remove(&key);
                    }
                }
            }
            Ok(None) => {}
            Err(e) => tracing::warn!(view = %view.name, "a view record does not decode: {e}"),
        }
    }
    Ok(())
}
