//! The PostgreSQL connector's task: connects lazily in `poll` (never while the runtime holds its
//! state lock in `start`), checks the server, makes the publication and slot, takes the
//! snapshot the mode asks for and then streams the slot.
//!
//! Exactly what is written: a change is skipped when the offsets say it was written already —
//! a transaction committed before the last written one, or a change at or before the last
//! written change of the same transaction (Debezium's `lsn_commit`/`lsn_proc` rule) — so
//! re-reading from the slot after a crash or a lost connection duplicates nothing the offsets
//! record. The slot's confirmed position is moved in `commit` to the end of the last
//! transaction the runtime has committed wholly (or, when idle, to the server's position).

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use pgwire_replication::{
    Lsn, PgWireError, ReplicationClient, ReplicationConfig, ReplicationEvent,
};
use serde_json::{Value as Json, json};
use tokio::runtime::Runtime;
use tokio_postgres::{Client, SimpleQueryMessage};
use tokio_util::either::Either;

use super::envelope::{self, Column, Source, Table};
use super::pgoutput::{self, Cell, Message, OldKind, Relation};
use super::types::ColumnType;
use super::{PgConfig, parse, tls};
use crate::config::{Props, describe};
use crate::data::{ConnectRecord, Schema, SchemaType, Struct, Value};
use crate::plugin::{OffsetReader, SourceTask, TaskError};

/// Session settings that put every value's text in one shape (see `types`).
const SESSION_OPTIONS: &str =
    "-c DateStyle=ISO -c TimeZone=UTC -c IntervalStyle=iso_8601 -c extra_float_digits=3";
/// Microseconds from the Unix epoch to PostgreSQL's (2000-01-01).
const PG_EPOCH_US: i64 = 946_684_800_000_000;
/// How long connecting to PostgreSQL may take (TCP, TLS and the login).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a poll waits for the first change before returning none.
const POLL_WAIT: Duration = Duration::from_millis(100);
/// The snapshot's cursor.
const CURSOR: &str = "spate_snapshot";

/// The task; everything is made in `poll`.
#[derive(Default)]
pub struct PostgresTask {
    runtime: Option<Runtime>,
    inner: Option<Inner>,
}

enum Phase {
    /// Connect (again) when `next_attempt` is due.
    Connect,
    /// Reading the snapshot; the slot is made, not yet streamed.
    Snapshot(Box<Snapshot>),
    /// Streaming the slot.
    Stream,
    /// `initial_only`: the snapshot is all there is.
    Done,
}

struct Snapshot {
    /// In a REPEATABLE READ transaction on the slot's exported snapshot.
    client: Client,
    tables: VecDeque<Arc<Table>>,
    open: Option<Arc<Table>>,
    lsn: u64,
    ts_us: i64,
    /// The last record, held back to be marked `last` if nothing follows.
    held: Option<ConnectRecord>,
    first: bool,
}

#[derive(Clone)]
struct Tx {
    xid: u32,
    commit_lsn: u64,
    ts_us: i64,
    /// Written already (committed before the last written transaction).
    skip: bool,
    /// Changes at or before this LSN were written already.
    skip_upto: Option<u64>,
}

struct Inner {
    config: PgConfig,
    partition: Json,
    server: Arc<str>,
    db: Arc<str>,
    phase: Phase,
    /// Whether a snapshot the mode asks for has been taken (by this task or before).
    snapshot_done: bool,
    sql: Option<Client>,
    repl: Option<ReplicationClient>,
    /// Captured tables by OID; `None` for tables not captured.
    tables: HashMap<u32, Option<Arc<Table>>>,
    tx: Option<Tx>,
    /// (commit LSN, change LSN) of the last change written.
    position: Option<(u64, u64)>,
    last_commit_lsn: Option<u64>,
    /// The end of the last transaction all of whose events have been polled, or the server's
    /// position when nothing was in flight: what `commit` may confirm.
    completed_lsn: u64,
    confirmed_lsn: u64,
    /// Events were polled that the runtime has not committed yet.
    uncommitted: bool,
    server_lsn: u64,
    retries: i64,
    next_attempt: Instant,
    last_heartbeat: Instant,
}

fn quote(ident: &str) -> String {
    format!("\"{}\"", ident.replace('"', "\"\""))
}

fn literal(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

fn rows(messages: Vec<SimpleQueryMessage>) -> Vec<Vec<Option<String>>> {
    messages
        .into_iter()
        .filter_map(|m| match m {
            SimpleQueryMessage::Row(row) => Some(
                (0..row.len())
                    .map(|i| row.get(i).map(str::to_string))
                    .collect(),
            ),
            _ => None,
        })
        .collect()
}

fn lsn_text(lsn: u64) -> String {
    format!("{:X}/{:X}", lsn >> 32, lsn & 0xffff_ffff)
}

fn parse_lsn(text: &str) -> Option<u64> {
    let (hi, lo) = text.split_once('/')?;
    Some((u64::from_str_radix(hi, 16).ok()? << 32) | u64::from_str_radix(lo, 16).ok()?)
}

impl Inner {
    fn error(&self, context: &str, e: &tokio_postgres::Error) -> TaskError {
        let Some(db) = e.as_db_error() else {
            return TaskError::retriable(format!(
                "{context}: cannot reach PostgreSQL at {}:{} ({e}); check database.hostname and database.port and that the server is running",
                self.config.host, self.config.port
            ));
        };
        let code = db.code().code();
        let message = db.message();
        match code {
            "28P01" => TaskError::fatal(format!(
                "{context}: password authentication failed for user {:?}; check database.user and database.password",
                self.config.user
            )),
            "28000" => TaskError::fatal(format!(
                "{context}: PostgreSQL refused the connection ({message}); allow user {:?} in pg_hba.conf",
                self.config.user
            )),
            "3D000" => TaskError::fatal(format!(
                "{context}: database {:?} does not exist; check database.dbname",
                self.config.dbname
            )),
            "42501" => TaskError::fatal(format!(
                "{context}: permission denied ({message}); grant user {:?} the privilege, or create the object yourself",
                self.config.user
            )),
            "57P01" | "57P02" | "57P03" | "53300" | "08006" | "08001" => {
                TaskError::retriable(format!("{context}: {message} ({code})"))
            }
            _ => TaskError::fatal(format!("{context}: {message} ({code})")),
        }
    }

    fn wire_error(&self, context: &str, e: &PgWireError) -> TaskError {
        match e {
            PgWireError::Auth(m) => TaskError::fatal(format!(
                "{context}: {m}; check database.user and database.password"
            )),
            PgWireError::Server(m)
                if m.contains("42501") || m.contains("55000") || m.contains("42704") =>
            {
                TaskError::fatal(format!("{context}: {m}"))
            }
            _ => TaskError::retriable(format!("{context}: {e}")),
        }
    }

    async fn sql_connect(&self) -> Result<Client, TaskError> {
        let mut config = tokio_postgres::Config::new();
        config
            .host(&self.config.host)
            .port(self.config.port)
            .user(&self.config.user)
            .password(&self.config.password)
            .dbname(&self.config.dbname)
            .options(SESSION_OPTIONS)
            .application_name("spate-connect")
            .connect_timeout(CONNECT_TIMEOUT);
        tls::sql_connect(
            &mut config,
            &self.config.tls,
            &self.config.host,
            self.config.port,
            CONNECT_TIMEOUT,
        )
        .await
        .map_err(|e| match e {
            tls::ConnectError::Postgres(e) => self.error("connecting", &e),
            tls::ConnectError::Open(e) => e,
        })
    }

    async fn query(
        &self,
        client: &Client,
        context: &str,
        sql: &str,
    ) -> Result<Vec<Vec<Option<String>>>, TaskError> {
        client
            .simple_query(sql)
            .await
            .map(rows)
            .map_err(|e| self.error(context, &e))
    }

    /// The replication connection's settings. When it may be encrypted, Spate opens it (see
    /// [`tls`]) and pgwire-replication reaches it through a Unix socket.
    async fn replication_config(&self) -> Result<ReplicationConfig, TaskError> {
        let direct = (self.config.host.clone(), self.config.port);
        let (host, port) = if self.config.tls.may_encrypt() && !self.config.host.starts_with('/') {
            match self
                .config
                .tls
                .open(&self.config.host, self.config.port, CONNECT_TIMEOUT)
                .await?
            {
                tls @ Either::Right(_) => (tls::bridge(tls)?, tls::BRIDGE_PORT),
                // `prefer`, and the server has no TLS: pgwire-replication connects itself.
                Either::Left(_) => direct,
            }
        } else {
            direct
        };
        Ok(ReplicationConfig::new(
            host,
            self.config.user.clone(),
            self.config.password.clone(),
            self.config.dbname.clone(),
            self.config.slot.clone(),
            self.config.publication.clone(),
        )
        .with_port(port)
        .with_options(SESSION_OPTIONS)
        .with_application_name(format!("spate-connect-{}", self.config.prefix))
        .with_status_interval(Duration::from_secs(1))
        .with_wakeup_interval(Duration::from_secs(1))
        .with_start_lsn(Lsn(0)))
    }

    /// The catalog's view of a table's columns: name, type, key, nullable.
    async fn columns(&self, client: &Client, oid: u32) -> Result<Vec<Column>, TaskError> {
        let sql = format!(
            "SELECT a.attname, a.atttypid, a.atttypmod, NOT a.attnotnull, \
             coalesce(a.attnum = ANY(i.indkey), false) \
             FROM pg_attribute a LEFT JOIN pg_index i ON i.indrelid = a.attrelid AND i.indisprimary \
             WHERE a.attrelid = {oid} AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum"
        );
        Ok(self
            .query(client, "reading a table's columns", &sql)
            .await?
            .into_iter()
            .map(|r| Column {
                name: r[0].clone().unwrap_or_default(),
                ty: ColumnType {
                    oid: r[1].as_deref().and_then(|t| t.parse().ok()).unwrap_or(25),
                    modifier: r[2].as_deref().and_then(|t| t.parse().ok()).unwrap_or(-1),
                },
                nullable: r[3].as_deref() == Some("t"),
                key: r[4].as_deref() == Some("t"),
            })
            .collect())
    }

    /// The captured tables: (oid, schema, table).
    async fn captured_tables(
        &self,
        client: &Client,
    ) -> Result<Vec<(u32, String, String)>, TaskError> {
        let sql = "SELECT c.oid, n.nspname, c.relname FROM pg_class c \
                   JOIN pg_namespace n ON n.oid = c.relnamespace \
                   WHERE c.relkind IN ('r', 'p') AND NOT c.relispartition \
                   AND n.nspname NOT IN ('pg_catalog', 'information_schema') \
                   AND n.nspname NOT LIKE 'pg\\_toast%' AND n.nspname NOT LIKE 'pg\\_temp%' \
                   ORDER BY 2, 3";
        Ok(self
            .query(client, "listing tables", sql)
            .await?
            .into_iter()
            .filter_map(|r| {
                let oid = r[0].as_deref()?.parse().ok()?;
                Some((oid, r[1].clone()?, r[2].clone()?))
            })
            .filter(|(_, s, t)| self.config.captures(s, t))
            .collect())
    }

    /// Checks the server and the user, makes the publication; returns the slot's state.
    async fn prepare(&mut self, client: &Client) -> Result<Option<(String, bool)>, TaskError> {
        let wal_level = self
            .query(client, "reading wal_level", "SHOW wal_level")
            .await?;
        let wal_level = wal_level
            .first()
            .and_then(|r| r[0].clone())
            .unwrap_or_default();
        if wal_level != "logical" {
            return Err(TaskError::fatal(format!(
                "PostgreSQL's wal_level is '{wal_level}', and change data capture needs 'logical': set wal_level = logical in postgresql.conf (or ALTER SYSTEM SET wal_level = logical) and restart PostgreSQL"
            )));
        }
        let role = self
            .query(
                client,
                "reading the user's attributes",
                "SELECT rolreplication OR rolsuper FROM pg_roles WHERE rolname = current_user",
            )
            .await?;
        if role.first().and_then(|r| r[0].as_deref()) != Some("t") {
            return Err(TaskError::fatal(format!(
                "user {:?} may not read a replication slot: ALTER ROLE {} REPLICATION",
                self.config.user,
                quote(&self.config.user)
            )));
        }
        let publication = quote(&self.config.publication);
        let exists = !self
            .query(
                client,
                "reading publications",
                &format!(
                    "SELECT 1 FROM pg_publication WHERE pubname = {}",
                    literal(&self.config.publication)
                ),
            )
            .await?
            .is_empty();
        let tables = || async {
            let tables = self.captured_tables(client).await?;
            if tables.is_empty() {
                return Err(TaskError::fatal(format!(
                    "no table matches table.include.list/schema.include.list, so publication {} would be empty",
                    self.config.publication
                )));
            }
            Ok::<_, TaskError>(
                tables
                    .iter()
                    .map(|(_, s, t)| format!("{}.{}", quote(s), quote(t)))
                    .collect::<Vec<_>>()
                    .join(", "),
            )
        };
        let statement = match (exists, self.config.autocreate.as_str()) {
            (false, "disabled") => {
                return Err(TaskError::fatal(format!(
                    "publication {:?} does not exist and publication.autocreate.mode is disabled: CREATE PUBLICATION {publication} FOR TABLE ... in database {:?}",
                    self.config.publication, self.config.dbname
                )));
            }
            (false, "all_tables") => {
                Some(format!("CREATE PUBLICATION {publication} FOR ALL TABLES"))
            }
            (false, "no_tables") => Some(format!("CREATE PUBLICATION {publication}")),
            (false, _) => Some(format!(
                "CREATE PUBLICATION {publication} FOR TABLE {}",
                tables().await?
            )),
            (true, "filtered") => Some(format!(
                "ALTER PUBLICATION {publication} SET TABLE {}",
                tables().await?
            )),
            (true, _) => None,
        };
        if let Some(statement) = statement {
            client.simple_query(&statement).await.map_err(|e| {
                let mut error = self.error(&statement, &e);
                if e.as_db_error().is_some_and(|d| d.code().code() == "42501") {
                    error.message.push_str(
                        " (FOR ALL TABLES needs a superuser; a filtered publication needs the tables' owner: create the publication as one, or set publication.autocreate.mode=filtered)",
                    );
                }
                error
            })?;
            tracing::info!(publication = %self.config.publication, "created/updated the publication");
        }
        let slot = self
            .query(
                client,
                "reading replication slots",
                &format!(
                    "SELECT plugin, database, active, confirmed_flush_lsn FROM pg_replication_slots WHERE slot_name = {}",
                    literal(&self.config.slot)
                ),
            )
            .await?;
        let Some(slot) = slot.first() else {
            return Ok(None);
        };
        let plugin = slot[0].clone().unwrap_or_default();
        let database = slot[1].clone().unwrap_or_default();
        if plugin != "pgoutput" || database != self.config.dbname {
            return Err(TaskError::fatal(format!(
                "replication slot {:?} exists for plugin {plugin:?} in database {database:?}; this connector needs one for pgoutput in {:?}: set slot.name to another name",
                self.config.slot, self.config.dbname
            )));
        }
        if let Some(confirmed) = slot[3].as_deref().and_then(parse_lsn) {
            self.confirmed_lsn = self.confirmed_lsn.max(confirmed);
        }
        Ok(Some((plugin, slot[2].as_deref() == Some("t"))))
    }

    async fn drop_slot(&self, client: &Client) -> Result<(), TaskError> {
        // The walsender of a session that just ended may hold the slot a moment longer.
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let result = client
                .simple_query(&format!(
                    "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = {}",
                    literal(&self.config.slot)
                ))
                .await;
            match result {
                Ok(_) => return Ok(()),
                Err(e)
                    if Instant::now() < deadline
                        && e.as_db_error().is_some_and(|d| d.code().code() == "55006") =>
                {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(e) => return Err(self.error("dropping the replication slot", &e)),
            }
        }
    }

    /// Connects, and snapshots or streams as the mode and the offsets say.
    async fn connect(&mut self) -> Result<(), TaskError> {
        let client = self.sql_connect().await?;
        let slot = self.prepare(&client).await?;
        let mode = self.config.snapshot_mode.clone();
        let snapshot = match mode.as_str() {
            "always" | "initial" | "initial_only" => !self.snapshot_done,
            "when_needed" => !self.snapshot_done || slot.is_none(),
            _ => false,
        };
        if let Some((_, true)) = slot {
            return Err(TaskError::retriable(format!(
                "replication slot {:?} is in use by another session (another connector with the same slot.name?)",
                self.config.slot
            )));
        }
        if !snapshot {
            if mode == "initial_only" {
                self.sql = Some(client);
                self.phase = Phase::Done;
                return Ok(());
            }
            if slot.is_none() {
                let created = self
                    .query(
                        &client,
                        "creating the replication slot",
                        &format!(
                            "SELECT lsn FROM pg_create_logical_replication_slot({}, 'pgoutput')",
                            literal(&self.config.slot)
                        ),
                    )
                    .await
                    .map_err(|e| slot_error(&self.config.slot, e))?;
                if let Some(lsn) = created
                    .first()
                    .and_then(|r| r[0].as_deref())
                    .and_then(parse_lsn)
                {
                    self.confirmed_lsn = self.confirmed_lsn.max(lsn);
                }
            }
            let repl = ReplicationClient::connect(self.replication_config().await?)
                .await
                .map_err(|e| self.wire_error("starting replication", &e))?;
            self.sql = Some(client);
            self.repl = Some(repl);
            self.phase = Phase::Stream;
            return Ok(());
        }
        // A consistent snapshot: a new slot exports the snapshot at its consistent point, and
        // streaming starts there. An existing slot is made again (nothing was streamed from it
        // that the new snapshot does not hold).
        if slot.is_some() {
            self.drop_slot(&client).await?;
        }
        let mut repl = ReplicationClient::connect_gated(self.replication_config().await?)
            .await
            .map_err(|e| self.wire_error("opening a replication session", &e))?;
        let created = repl
            .simple_query(&format!(
                "CREATE_REPLICATION_SLOT {} LOGICAL pgoutput EXPORT_SNAPSHOT",
                self.config.slot
            ))
            .await
            .map_err(|e| {
                slot_error(
                    &self.config.slot,
                    self.wire_error("creating the replication slot", &e),
                )
            })?;
        let row = created
            .first()
            .ok_or_else(|| TaskError::fatal("CREATE_REPLICATION_SLOT returned no row"))?;
        let field = |i: usize| {
            row.get(i)
                .and_then(|v| v.as_ref())
                .map(|b| String::from_utf8_lossy(b).into_owned())
                .unwrap_or_default()
        };
        let lsn = parse_lsn(&field(1)).unwrap_or(0);
        self.confirmed_lsn = self.confirmed_lsn.max(lsn);
        let snapshot_name = field(2);
        let snap_client = self.sql_connect().await?;
        self.query(
            &snap_client,
            "starting the snapshot",
            &format!(
                "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY; SET TRANSACTION SNAPSHOT {}",
                literal(&snapshot_name)
            ),
        )
        .await?;
        let mut tables = VecDeque::new();
        for (oid, schema, table) in self.captured_tables(&snap_client).await? {
            let columns = self.columns(&snap_client, oid).await?;
            let table = Arc::new(Table::new(
                &self.config.prefix,
                &schema,
                &table,
                columns,
                self.config.modes,
            ));
            self.tables.insert(oid, Some(Arc::clone(&table)));
            tables.push_back(table);
        }
        tracing::info!(
            slot = %self.config.slot,
            lsn = %lsn_text(lsn),
            tables = tables.len(),
            "snapshot started"
        );
        self.sql = Some(client);
        self.repl = Some(repl);
        self.phase = Phase::Snapshot(Box::new(Snapshot {
            client: snap_client,
            tables,
            open: None,
            lsn,
            ts_us: envelope::now_us(),
            held: None,
            first: true,
        }));
        Ok(())
    }

    fn snapshot_record(
        &self,
        snap: &Snapshot,
        table: &Table,
        row: Struct,
        marker: &'static str,
    ) -> ConnectRecord {
        let source = Source {
            server: Arc::clone(&self.server),
            db: Arc::clone(&self.db),
            ts_us: snap.ts_us,
            snapshot: marker,
            tx_id: None,
            lsn: Some(snap.lsn),
            last_commit_lsn: None,
        };
        let offset = json!({
            "lsn": snap.lsn,
            "ts_usec": snap.ts_us,
            "snapshot": true,
            "last_snapshot_record": false,
        });
        let key = table.key(&row);
        envelope::event(
            table,
            "r",
            key,
            None,
            Some(row),
            &source,
            Some((&self.partition, offset)),
        )
    }

    async fn poll_snapshot(&mut self) -> Result<Vec<ConnectRecord>, TaskError> {
        let Phase::Snapshot(mut snap) = std::mem::replace(&mut self.phase, Phase::Connect) else {
            return Ok(Vec::new());
        };
        let mut out = Vec::new();
        let result = loop {
            if out.len() >= self.config.max_batch {
                break Ok(false);
            }
            let table = match &snap.open {
                Some(table) => Arc::clone(table),
                None => {
                    let Some(table) = snap.tables.pop_front() else {
                        break Ok(true);
                    };
                    let declare = format!(
                        "DECLARE {CURSOR} NO SCROLL CURSOR FOR SELECT * FROM {}.{}",
                        quote(&table.schema),
                        quote(&table.table)
                    );
                    if let Err(e) = self
                        .query(&snap.client, "reading the snapshot", &declare)
                        .await
                    {
                        break Err(e);
                    }
                    snap.open = Some(Arc::clone(&table));
                    table
                }
            };
            let fetch = format!(
                "FETCH FORWARD {} FROM {CURSOR}",
                self.config.fetch_size.min(self.config.max_batch)
            );
            let fetched = match self
                .query(&snap.client, "reading the snapshot", &fetch)
                .await
            {
                Ok(rows) => rows,
                Err(e) => break Err(e),
            };
            if fetched.is_empty() {
                if let Err(e) = self
                    .query(
                        &snap.client,
                        "reading the snapshot",
                        &format!("CLOSE {CURSOR}"),
                    )
                    .await
                {
                    break Err(e);
                }
                snap.open = None;
                continue;
            }
            for values in fetched {
                let cells: Vec<Cell> = values
                    .into_iter()
                    .map(|v| v.map_or(Cell::Null, |t| Cell::Text(Bytes::from(t))))
                    .collect();
                let row = table.row(&cells, self.config.modes, false).map_err(|e| {
                    TaskError::fatal(format!("snapshot of {}.{}: {e}", table.schema, table.table))
                })?;
                let marker = if snap.first { "first" } else { "true" };
                snap.first = false;
                let record = self.snapshot_record(&snap, &table, row, marker);
                if let Some(held) = snap.held.replace(record) {
                    out.push(held);
                }
            }
        };
        match result {
            Err(e) => Err(e),
            Ok(false) => {
                self.phase = Phase::Snapshot(snap);
                Ok(out)
            }
            Ok(true) => {
                if let Some(mut last) = snap.held.take() {
                    if let Value::Struct(envelope) = &mut last.value
                        && let Some(Value::Struct(source)) = envelope.values.get_mut(2)
                    {
                        source.put("snapshot", Value::String("last".into()));
                    }
                    if let Some(offset) = last.source_offset.as_mut() {
                        offset["last_snapshot_record"] = json!(true);
                    }
                    out.push(last);
                }
                self.query(&snap.client, "ending the snapshot", "COMMIT")
                    .await?;
                self.snapshot_done = true;
                self.completed_lsn = self.completed_lsn.max(snap.lsn);
                tracing::info!(slot = %self.config.slot, "snapshot done");
                if self.config.snapshot_mode == "initial_only" {
                    if let Some(mut repl) = self.repl.take() {
                        let _ = repl.shutdown().await;
                    }
                    self.phase = Phase::Done;
                } else {
                    let repl = self.repl.as_mut().expect("a snapshot's session");
                    repl.start()
                        .await
                        .map_err(|e| self.wire_error("starting replication", &e))?;
                    self.phase = Phase::Stream;
                }
                Ok(out)
            }
        }
    }

    /// A Relation message: the table's shape, with nullability and the primary key from the
    /// catalog (the message has neither).
    async fn relation(&mut self, relation: Relation) {
        if !self.config.captures(&relation.schema, &relation.table) {
            self.tables.insert(relation.oid, None);
            return;
        }
        let catalog = match &self.sql {
            Some(client) => self.columns(client, relation.oid).await.unwrap_or_default(),
            None => Vec::new(),
        };
        let has_pk = catalog.iter().any(|c| c.key);
        let columns = relation
            .columns
            .iter()
            .map(|c| {
                let known = catalog.iter().find(|k| k.name == c.name);
                Column {
                    name: c.name.clone(),
                    ty: ColumnType {
                        oid: c.type_oid,
                        modifier: c.type_modifier,
                    },
                    key: if has_pk {
                        known.is_some_and(|k| k.key)
                    } else {
                        c.key
                    },
                    nullable: known.map_or(!c.key, |k| k.nullable),
                }
            })
            .collect();
        let table = Table::new(
            &self.config.prefix,
            &relation.schema,
            &relation.table,
            columns,
            self.config.modes,
        );
        self.tables.insert(relation.oid, Some(Arc::new(table)));
    }

    fn source(&self, tx: &Tx, lsn: u64) -> Source {
        Source {
            server: Arc::clone(&self.server),
            db: Arc::clone(&self.db),
            ts_us: tx.ts_us,
            snapshot: "false",
            tx_id: Some(i64::from(tx.xid)),
            lsn: Some(lsn),
            last_commit_lsn: self.last_commit_lsn,
        }
    }

    fn offset(tx: &Tx, lsn: u64) -> Json {
        json!({
            "lsn_proc": lsn,
            "lsn_commit": tx.commit_lsn,
            "lsn": lsn,
            "txId": tx.xid,
            "ts_usec": tx.ts_us,
        })
    }

    fn table(&self, oid: u32) -> Result<Option<Arc<Table>>, TaskError> {
        match self.tables.get(&oid) {
            Some(t) => Ok(t.clone()),
            None => Err(TaskError::fatal(format!(
                "a change to table oid {oid} came before its Relation message"
            ))),
        }
    }

    fn row(
        &self,
        table: &Table,
        cells: &[Cell],
        partial: bool,
        lsn: u64,
    ) -> Result<Struct, TaskError> {
        table.row(cells, self.config.modes, partial).map_err(|e| {
            TaskError::fatal(format!(
                "decoding a change to {}.{} at LSN {}: {e}",
                table.schema,
                table.table,
                lsn_text(lsn)
            ))
        })
    }

    fn skipped(&self, op: &str) -> bool {
        self.config.skipped.iter().any(|s| s == op)
    }

    /// The events of one change.
    fn change(
        &mut self,
        lsn: u64,
        data: Bytes,
        out: &mut Vec<ConnectRecord>,
    ) -> Result<Option<Relation>, TaskError> {
        let message = pgoutput::decode(data)
            .map_err(|e| TaskError::fatal(format!("at LSN {}: {e}", lsn_text(lsn))))?;
        if let Message::Relation(relation) = message {
            return Ok(Some(relation));
        }
        let Some(tx) = &self.tx else {
            return Ok(None);
        };
        if tx.skip || tx.skip_upto.is_some_and(|upto| lsn <= upto) {
            return Ok(None);
        }
        let source = self.source(tx, lsn);
        let commit_lsn = tx.commit_lsn;
        // The offset is set on the poll's last event only (`poll_stream`).
        let event = |table: &Table, op, key, before, after| {
            envelope::event(table, op, key, before, after, &source, None)
        };
        let mut emitted = Vec::new();
        match message {
            Message::Insert { relation, new } => {
                if let Some(table) = self.table(relation)?
                    && !self.skipped("c")
                {
                    let after = self.row(&table, &new, false, lsn)?;
                    emitted.push(event(&table, "c", table.key(&after), None, Some(after)));
                }
            }
            Message::Update { relation, old, new } => {
                if let Some(table) = self.table(relation)?
                    && !self.skipped("u")
                {
                    let after = self.row(&table, &new, false, lsn)?;
                    let new_key = table.key(&after);
                    let before = match &old {
                        Some((kind, cells)) => {
                            Some(self.row(&table, cells, *kind == OldKind::Key, lsn)?)
                        }
                        None => None,
                    };
                    let old_key = before.as_ref().map(|b| table.key(b));
                    match old_key {
                        // The key changed: Debezium writes a delete of the old key (and its
                        // tombstone) and a create under the new one.
                        Some(old_key) if old_key != new_key => {
                            let delete = event(&table, "d", old_key, before, None);
                            let tombstone = envelope::tombstone(&delete);
                            emitted.push(delete);
                            if self.config.tombstones_on_delete {
                                emitted.push(tombstone);
                            }
                            emitted.push(event(&table, "c", new_key, None, Some(after)));
                        }
                        _ => {
                            let before = before.filter(|_| matches!(old, Some((OldKind::Full, _))));
                            emitted.push(event(&table, "u", new_key, before, Some(after)));
                        }
                    }
                }
            }
            Message::Delete { relation, old } => {
                if let Some(table) = self.table(relation)?
                    && !self.skipped("d")
                {
                    let before = self.row(&table, &old.1, old.0 == OldKind::Key, lsn)?;
                    let delete = event(&table, "d", table.key(&before), Some(before), None);
                    let tombstone = envelope::tombstone(&delete);
                    emitted.push(delete);
                    if self.config.tombstones_on_delete {
                        emitted.push(tombstone);
                    }
                }
            }
            Message::Truncate { relations } => {
                if !self.skipped("t") {
                    for relation in relations {
                        if let Some(table) = self.table(relation)? {
                            emitted.push(event(&table, "t", Value::Null, None, None));
                        }
                    }
                }
            }
            Message::Relation(_) | Message::Other(_) => {}
        }
        if !emitted.is_empty() {
            self.position = Some((commit_lsn, lsn));
            out.extend(emitted);
        }
        Ok(None)
    }

    fn heartbeat(&mut self) -> ConnectRecord {
        self.last_heartbeat = Instant::now();
        let key_schema = Arc::new(Schema::structure(
            Some("io.debezium.connector.common.ServerNameKey"),
            vec![("serverName", Schema::new(SchemaType::String))],
        ));
        let value_schema = Arc::new(Schema::structure(
            Some("io.debezium.connector.common.Heartbeat"),
            vec![("ts_ms", Schema::new(SchemaType::Int64))],
        ));
        let mut key = Struct::new(Arc::clone(&key_schema));
        key.put("serverName", Value::String(self.server.to_string()));
        let mut value = Struct::new(Arc::clone(&value_schema));
        let now = envelope::now_us();
        value.put("ts_ms", Value::Int64(now / 1000));
        let mut record = ConnectRecord::new(
            &self.config.heartbeat_topic,
            Some(value_schema),
            Value::Struct(value),
        );
        record.key_schema = Some(key_schema);
        record.key = Value::Struct(key);
        let (commit, proc_) = self.position.unwrap_or((0, 0));
        record.source_partition = Some(self.partition.clone());
        record.source_offset = Some(json!({
            "lsn": self.completed_lsn,
            "lsn_commit": commit,
            "lsn_proc": proc_,
            "ts_usec": now,
        }));
        record
    }

    /// The changes streamed in one poll. Only the poll's last event carries the source
    /// offset: the runtime keeps the last offset of each poll (it writes offsets between
    /// polls), so one is enough, and building one per event was a tenth of the task's time.
    /// A poll that fails hands over nothing, so what it had read is forgotten: the position
    /// is put back, and the changes are read again from the slot after reconnecting.
    async fn poll_stream(&mut self) -> Result<Vec<ConnectRecord>, TaskError> {
        let before = (self.position, self.last_commit_lsn, self.completed_lsn);
        let mut last = None;
        match self.poll_changes(&mut last).await {
            Ok(mut out) => {
                if let (Some((tx, lsn)), Some(event)) = (
                    last,
                    out.iter_mut().rev().find(|r| r.source_offset.is_none()),
                ) {
                    event.source_partition = Some(self.partition.clone());
                    event.source_offset = Some(Self::offset(&tx, lsn));
                }
                Ok(out)
            }
            Err(e) => {
                (self.position, self.last_commit_lsn, self.completed_lsn) = before;
                Err(e)
            }
        }
    }

    async fn poll_changes(
        &mut self,
        last: &mut Option<(Tx, u64)>,
    ) -> Result<Vec<ConnectRecord>, TaskError> {
        let mut out = Vec::new();
        let deadline = tokio::time::Instant::now() + POLL_WAIT;
        loop {
            if out.len() >= self.config.max_batch {
                break;
            }
            let repl = self.repl.as_mut().expect("streaming has a session");
            let wait = if out.is_empty() {
                deadline.saturating_duration_since(tokio::time::Instant::now())
            } else {
                Duration::ZERO
            };
            let event = match tokio::time::timeout(wait, repl.recv()).await {
                Err(_) => break,
                Ok(Ok(Some(event))) => event,
                Ok(Ok(None)) => {
                    return Err(TaskError::retriable(
                        "PostgreSQL ended the replication stream",
                    ));
                }
                Ok(Err(e)) => return Err(self.wire_error("streaming changes", &e)),
            };
            self.retries = 0;
            match event {
                ReplicationEvent::Begin {
                    final_lsn,
                    xid,
                    commit_time_micros,
                } => {
                    let commit_lsn = final_lsn.0;
                    let (skip, skip_upto) = match self.position {
                        Some((c, _)) if commit_lsn < c => (true, None),
                        Some((c, p)) if commit_lsn == c => (false, Some(p)),
                        _ => (false, None),
                    };
                    self.tx = Some(Tx {
                        xid,
                        commit_lsn,
                        ts_us: commit_time_micros + PG_EPOCH_US,
                        skip,
                        skip_upto,
                    });
                }
                ReplicationEvent::XLogData {
                    wal_start,
                    wal_end,
                    data,
                    ..
                } => {
                    self.server_lsn = self.server_lsn.max(wal_end.0);
                    let before = out.len();
                    if let Some(relation) = self.change(wal_start.0, data, &mut out)? {
                        self.relation(relation).await;
                    }
                    if out.len() > before
                        && let Some(tx) = &self.tx
                    {
                        *last = Some((tx.clone(), wal_start.0));
                    }
                }
                ReplicationEvent::Commit { lsn, end_lsn, .. } => {
                    self.tx = None;
                    self.last_commit_lsn = Some(lsn.0);
                    self.completed_lsn = self.completed_lsn.max(end_lsn.0);
                    self.server_lsn = self.server_lsn.max(end_lsn.0);
                }
                ReplicationEvent::KeepAlive { wal_end, .. } => {
                    self.server_lsn = self.server_lsn.max(wal_end.0);
                    if self.tx.is_none() {
                        self.completed_lsn = self.completed_lsn.max(wal_end.0);
                        // With no event in flight the server's position is confirmed at once:
                        // a shutting-down PostgreSQL waits for its walsender's client to
                        // confirm everything sent.
                        if out.is_empty() && !self.uncommitted {
                            self.confirm();
                        }
                    }
                }
                ReplicationEvent::Message { .. } | ReplicationEvent::StoppedAt { .. } => {}
            }
        }
        if !out.is_empty() {
            self.uncommitted = true;
        }
        if self.config.heartbeat_ms > 0
            && self.tx.is_none()
            && self.last_heartbeat.elapsed() >= Duration::from_millis(self.config.heartbeat_ms)
        {
            let heartbeat = self.heartbeat();
            out.push(heartbeat);
        }
        Ok(out)
    }

    /// Confirms to the slot what the runtime has committed.
    fn confirm(&mut self) {
        if self.completed_lsn > self.confirmed_lsn
            && let Some(repl) = &self.repl
            && matches!(self.phase, Phase::Stream)
        {
            repl.update_applied_lsn(Lsn(self.completed_lsn));
            self.confirmed_lsn = self.completed_lsn;
        }
    }

    /// Drops the sessions after a failure; the next poll connects again.
    async fn disconnect(&mut self) {
        if let Some(mut repl) = self.repl.take() {
            repl.abort();
        }
        self.sql = None;
        self.tx = None;
        self.phase = Phase::Connect;
    }
}

fn slot_error(slot: &str, mut e: TaskError) -> TaskError {
    if e.message.contains("53400") || e.message.contains("max_replication_slots") {
        e.message = format!(
            "{} (all replication slots are in use: raise max_replication_slots or drop an unused slot; this connector needs slot {slot:?})",
            e.message
        );
        e.retriable = false;
    }
    e
}

impl SourceTask for PostgresTask {
    fn start(&mut self, props: &Props, offsets: &dyn OffsetReader) -> Result<(), TaskError> {
        let config = parse(props).map_err(|p| TaskError::fatal(describe(&p)))?;
        // One thread, the task's own: the replication stream is read while a poll runs (and
        // waits in the socket's buffer between polls). A runtime thread of its own reading
        // ahead woke the task for every change and was woken back for every one taken from
        // their queue: two context switches per change, a third of the task's time.
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| TaskError::fatal(format!("starting the task's runtime: {e}")))?;
        let partition = json!({ "server": config.prefix });
        let stored = offsets.offset(&partition);
        // `always` snapshots at every start; the others once, unless a snapshot was cut short.
        let snapshot_done = config.snapshot_mode != "always"
            && stored.as_ref().is_some_and(|o| {
                o.get("snapshot").and_then(Json::as_bool) != Some(true)
                    || o.get("last_snapshot_record").and_then(Json::as_bool) == Some(true)
            });
        let lsn_of = |key: &str| {
            stored
                .as_ref()
                .and_then(|o| o.get(key))
                .and_then(Json::as_u64)
        };
        let position = match (lsn_of("lsn_commit"), lsn_of("lsn_proc")) {
            (Some(c), Some(p)) if c > 0 => Some((c, p)),
            _ => None,
        };
        let completed = lsn_of("lsn").unwrap_or(0);
        self.inner = Some(Inner {
            server: Arc::from(config.prefix.as_str()),
            db: Arc::from(config.dbname.as_str()),
            config,
            partition,
            phase: Phase::Connect,
            snapshot_done,
            sql: None,
            repl: None,
            tables: HashMap::new(),
            tx: None,
            position,
            last_commit_lsn: position.map(|(c, _)| c),
            completed_lsn: completed,
            confirmed_lsn: 0,
            uncommitted: false,
            server_lsn: 0,
            retries: 0,
            next_attempt: Instant::now(),
            last_heartbeat: Instant::now(),
        });
        self.runtime = Some(runtime);
        Ok(())
    }

    fn poll(&mut self) -> Result<Vec<ConnectRecord>, TaskError> {
        let (Some(runtime), Some(inner)) = (&self.runtime, &mut self.inner) else {
            return Ok(Vec::new());
        };
        runtime.block_on(async {
            let result = match inner.phase {
                Phase::Connect => {
                    if Instant::now() < inner.next_attempt {
                        tokio::time::sleep(POLL_WAIT.min(inner.next_attempt - Instant::now()))
                            .await;
                        return Ok(Vec::new());
                    }
                    inner.connect().await.map(|()| Vec::new())
                }
                Phase::Snapshot(_) => inner.poll_snapshot().await,
                Phase::Stream => inner.poll_stream().await,
                Phase::Done => {
                    tokio::time::sleep(POLL_WAIT).await;
                    Ok(Vec::new())
                }
            };
            match result {
                Ok(records) => Ok(records),
                Err(e) if e.retriable => {
                    let max = inner.config.max_retries;
                    if max >= 0 && inner.retries >= max {
                        inner.disconnect().await;
                        return Err(TaskError::fatal(format!(
                            "{} (gave up after {} retries: errors.max.retries)",
                            e.message, inner.retries
                        )));
                    }
                    inner.retries += 1;
                    let wait = Duration::from_millis(inner.config.retry_wait_ms);
                    tracing::warn!(
                        slot = %inner.config.slot,
                        retry = inner.retries,
                        wait_ms = wait.as_millis() as u64,
                        "PostgreSQL connection failed, connecting again: {}",
                        e.message
                    );
                    inner.disconnect().await;
                    inner.next_attempt = Instant::now() + wait;
                    Ok(Vec::new())
                }
                Err(e) => {
                    inner.disconnect().await;
                    Err(e)
                }
            }
        })
    }

    fn commit(&mut self) -> Result<(), TaskError> {
        if let Some(inner) = &mut self.inner {
            inner.uncommitted = false;
            inner.confirm();
        }
        Ok(())
    }

    fn idle_wait(&self) -> Duration {
        // A poll waits for changes itself.
        Duration::ZERO
    }

    fn lag_bytes(&self) -> Option<u64> {
        let inner = self.inner.as_ref()?;
        (matches!(inner.phase, Phase::Stream) && inner.confirmed_lsn > 0)
            .then(|| inner.server_lsn.saturating_sub(inner.confirmed_lsn))
    }

    fn stop(&mut self) {
        let (Some(runtime), Some(mut inner)) = (self.runtime.take(), self.inner.take()) else {
            return;
        };
        runtime.block_on(async {
            if let Some(mut repl) = inner.repl.take() {
                repl.stop();
                let _ = tokio::time::timeout(Duration::from_secs(5), repl.shutdown()).await;
            }
            if inner.config.drop_slot_on_stop {
                let client = match inner.sql.take() {
                    Some(c) => Ok(c),
                    None => inner.sql_connect().await,
                };
                match client {
                    Ok(client) => {
                        if let Err(e) = inner.drop_slot(&client).await {
                            tracing::warn!(slot = %inner.config.slot, "could not drop the replication slot: {}", e.message);
                        }
                    }
                    Err(e) => tracing::warn!(slot = %inner.config.slot, "could not drop the replication slot: {}", e.message),
                }
            }
        });
        runtime.shutdown_timeout(Duration::from_secs(1));
    }
}
