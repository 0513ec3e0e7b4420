//! Topics as Apache Iceberg tables: Apache Iceberg's Kafka Connect sink
//! (`org.apache.iceberg.connect.IcebergSinkConnector`, and Tabular's class name before it) with
//! its `iceberg.*` keys, writing Parquet data files to the warehouse (S3 or a local directory,
//! through `object_store`) and committing them as append snapshots through Iceberg's JDBC
//! catalog in PostgreSQL.
//!
//! Exactly once without a control topic: each commit writes, in the snapshot's summary, the
//! next offset of every topic partition whose records the table holds
//! (`spate.connect.offsets.<connector>`), and the catalog's compare-and-set makes the snapshot
//! and those offsets one atomic step. A task that takes a partition reads them from the table
//! and skips records below; the consumer group's offsets follow the table's (for lag), and
//! matter only as where reading starts. Records are committed every
//! `iceberg.control.commit.interval-ms`; one data file per table and value schema per commit.

mod catalog;
mod table;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use serde_json::{Value as Json, json};
use tokio::runtime::Runtime;

use crate::config::{ConfigProblem, Props, Reader};
use crate::connectors::storage::parquet::{FieldIds, ParquetWriter};
use crate::data::{ConnectRecord, Schema, SchemaType, same_schema};
use crate::plugin::{ConfigKey, Connector, ConnectorKind, SinkOffsets, SinkTask, TaskError};

use catalog::JdbcCatalog;
use table::{DataFile, ManifestFile};

/// The Iceberg sink connector.
pub struct IcebergSink;

/// The snapshot summary key holding a connector's offsets.
const OFFSETS_KEY: &str = "spate.connect.offsets.";
/// Tries of a commit that lost a race with another writer.
const COMMIT_TRIES: usize = 20;

/// The connector's settings.
#[derive(Debug, Clone)]
struct Settings {
    /// `namespace.table` of each destination table.
    tables: Vec<(String, String)>,
    auto_create: bool,
    evolve: bool,
    commit_interval: Duration,
    catalog_name: String,
    database: tokio_postgres::Config,
    warehouse: String,
    s3_endpoint: String,
    s3_access_key: String,
    s3_secret_key: String,
    s3_region: String,
    s3_path_style: bool,
}

fn parse(props: &Props) -> Result<Settings, Vec<ConfigProblem>> {
    let mut r = Reader::new(props);
    let mut tables = Vec::new();
    for name in r.list("iceberg.tables") {
        match name.rsplit_once('.') {
            Some((namespace, table)) if !namespace.is_empty() && !table.is_empty() => {
                tables.push((namespace.to_string(), table.to_string()))
            }
            _ => r.problem(
                "iceberg.tables",
                format!("table {name:?} must be named namespace.table"),
            ),
        }
    }
    if tables.is_empty() && !props.contains_key("iceberg.tables") {
        r.problem(
            "iceberg.tables",
            "iceberg.tables must name at least one table",
        );
    }
    if r.boolean("iceberg.tables.dynamic-enabled", false) {
        r.problem(
            "iceberg.tables.dynamic-enabled",
            "dynamic routing (iceberg.tables.route-field) is not supported yet: list the tables in iceberg.tables",
        );
    }
    if !r
        .string("iceberg.tables.default-partition-by", "")
        .trim()
        .is_empty()
    {
        r.problem(
            "iceberg.tables.default-partition-by",
            "Spate's Iceberg sink makes unpartitioned tables so far",
        );
    }
    let catalog_type = r.string("iceberg.catalog.type", "");
    let catalog_impl = r.string("iceberg.catalog.catalog-impl", "");
    let jdbc = catalog_impl.trim() == "org.apache.iceberg.jdbc.JdbcCatalog"
        || (catalog_impl.trim().is_empty() && catalog_type.trim().eq_ignore_ascii_case("jdbc"));
    if !jdbc {
        r.problem(
            "iceberg.catalog.catalog-impl",
            format!(
                "catalog {} is not supported: Spate's Iceberg sink commits through the JDBC \
                 catalog (iceberg.catalog.catalog-impl=org.apache.iceberg.jdbc.JdbcCatalog, \
                 iceberg.catalog.uri=jdbc:postgresql://...)",
                if catalog_impl.trim().is_empty() {
                    format!("type {catalog_type:?}")
                } else {
                    catalog_impl.clone()
                }
            ),
        );
    }
    let uri = r.required("iceberg.catalog.uri");
    let mut database = tokio_postgres::Config::new();
    match crate::connectors::jdbc::parse_url(&uri) {
        Some((host, port, db, params)) => {
            database.host(&host).port(port).dbname(&db);
            let user = r.string(
                "iceberg.catalog.jdbc.user",
                params.get("user").map_or("", String::as_str),
            );
            let password = r.string(
                "iceberg.catalog.jdbc.password",
                params.get("password").map_or("", String::as_str),
            );
            if !user.is_empty() {
                database.user(&user);
            }
            if !password.is_empty() {
                database.password(&password);
            }
            database.connect_timeout(Duration::from_secs(10));
        }
        None if uri.is_empty() => {}
        None => r.problem(
            "iceberg.catalog.uri",
            format!("{uri:?} is not a PostgreSQL JDBC URL (jdbc:postgresql://host:port/database)"),
        ),
    }
    let warehouse = r.required("iceberg.catalog.warehouse");
    let warehouse = warehouse.trim_end_matches('/').to_string();
    let known = warehouse.starts_with("s3://") || warehouse.starts_with("file:///");
    if !warehouse.is_empty() && !known {
        r.problem(
            "iceberg.catalog.warehouse",
            "the warehouse must be an s3://bucket/path or file:///dir location",
        );
    }
    let settings = Settings {
        tables,
        auto_create: r.boolean("iceberg.tables.auto-create-enabled", false),
        evolve: r.boolean("iceberg.tables.evolve-schema-enabled", false),
        commit_interval: Duration::from_millis(r.unsigned(
            "iceberg.control.commit.interval-ms",
            300_000,
            1..=86_400_000,
        )),
        catalog_name: r.string("iceberg.catalog", "iceberg"),
        database,
        warehouse,
        s3_endpoint: r.string("iceberg.catalog.s3.endpoint", ""),
        s3_access_key: r.string("iceberg.catalog.s3.access-key-id", ""),
        s3_secret_key: r.string("iceberg.catalog.s3.secret-access-key", ""),
        s3_region: r.string(
            "iceberg.catalog.client.region",
            &r.string("iceberg.catalog.s3.region", "us-east-1"),
        ),
        s3_path_style: r.boolean("iceberg.catalog.s3.path-style-access", true),
    };
    r.finish(settings)
}

impl Connector for IcebergSink {
    fn class(&self) -> &'static str {
        "org.apache.iceberg.connect.IcebergSinkConnector"
    }

    fn kind(&self) -> ConnectorKind {
        ConnectorKind::Sink
    }

    fn config_keys(&self) -> Vec<ConfigKey> {
        let opt = ConfigKey::optional;
        vec![
            ConfigKey::required(
                "iceberg.tables",
                "LIST",
                "Comma-delimited list of destination tables",
            ),
            ConfigKey::required(
                "iceberg.catalog.uri",
                "STRING",
                "The catalog's URI: jdbc:postgresql://host:port/database",
            ),
            ConfigKey::required(
                "iceberg.catalog.warehouse",
                "STRING",
                "Where tables are made: s3://bucket/path or file:///dir",
            ),
            opt(
                "iceberg.catalog",
                "STRING",
                "iceberg",
                "Name of the catalog",
            ),
            opt(
                "iceberg.catalog.catalog-impl",
                "STRING",
                "",
                "The catalog implementation: org.apache.iceberg.jdbc.JdbcCatalog",
            ),
            opt(
                "iceberg.catalog.type",
                "STRING",
                "",
                "The catalog type (jdbc), when catalog-impl is not set",
            ),
            opt(
                "iceberg.catalog.jdbc.user",
                "STRING",
                "",
                "The catalog database's user",
            ),
            opt(
                "iceberg.catalog.jdbc.password",
                "PASSWORD",
                "",
                "The catalog database's password",
            ),
            opt(
                "iceberg.catalog.s3.endpoint",
                "STRING",
                "",
                "The S3 endpoint of the warehouse",
            ),
            opt(
                "iceberg.catalog.s3.access-key-id",
                "STRING",
                "",
                "The S3 access key",
            ),
            opt(
                "iceberg.catalog.s3.secret-access-key",
                "PASSWORD",
                "",
                "The S3 secret key",
            ),
            opt(
                "iceberg.catalog.s3.path-style-access",
                "BOOLEAN",
                "true",
                "Path-style S3 requests",
            ),
            opt(
                "iceberg.catalog.client.region",
                "STRING",
                "us-east-1",
                "The S3 region",
            ),
            opt(
                "iceberg.tables.auto-create-enabled",
                "BOOLEAN",
                "false",
                "Set to true to automatically create destination tables",
            ),
            opt(
                "iceberg.tables.evolve-schema-enabled",
                "BOOLEAN",
                "false",
                "Set to true to add any missing record fields to the table schema automatically",
            ),
            opt(
                "iceberg.tables.default-partition-by",
                "STRING",
                "",
                "Default partition spec to use when creating tables (not supported yet)",
            ),
            opt(
                "iceberg.tables.dynamic-enabled",
                "BOOLEAN",
                "false",
                "Set to true to route to a table specified in routeField (not supported yet)",
            ),
            opt(
                "iceberg.control.commit.interval-ms",
                "INT",
                "300000",
                "Commit interval in msec",
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
        Some(Box::new(IcebergTask::default()))
    }
}

/// The warehouse's store and how its URIs map to paths in it.
struct Warehouse {
    store: Arc<dyn ObjectStore>,
    /// `s3://bucket` or `file://`: what a URI starts with before the store's path.
    root: String,
}

impl Warehouse {
    fn open(settings: &Settings) -> Result<Warehouse, String> {
        if settings.warehouse.starts_with("file:///") {
            std::fs::create_dir_all(&settings.warehouse["file://".len()..])
                .map_err(|e| format!("creating the warehouse {}: {e}", settings.warehouse))?;
            return Ok(Warehouse {
                store: Arc::new(object_store::local::LocalFileSystem::new()),
                root: "file://".to_string(),
            });
        }
        let rest = &settings.warehouse["s3://".len()..];
        let bucket = rest.split('/').next().unwrap_or_default();
        let store = crate::connectors::storage::s3_store(&crate::connectors::storage::S3Options {
            bucket,
            region: &settings.s3_region,
            endpoint: &settings.s3_endpoint,
            path_style: settings.s3_path_style,
            access_key: &settings.s3_access_key,
            secret_key: &settings.s3_secret_key,
            retries: 10,
            retry_backoff: Duration::from_millis(100),
        })?;
        Ok(Warehouse {
            store,
            root: format!("s3://{bucket}"),
        })
    }

    fn path(&self, uri: &str) -> Result<ObjectPath, String> {
        let rest = uri
            .strip_prefix(&self.root)
            .ok_or_else(|| format!("{uri} is not in the warehouse ({})", self.root))?;
        Ok(ObjectPath::from(rest.trim_start_matches('/')))
    }

    async fn put(&self, uri: &str, bytes: Vec<u8>) -> Result<(), String> {
        self.store
            .put(&self.path(uri)?, PutPayload::from(bytes))
            .await
            .map(drop)
            .map_err(|e| format!("writing {uri}: {e}"))
    }

    async fn get(&self, uri: &str) -> Result<Vec<u8>, String> {
        let result = self
            .store
            .get(&self.path(uri)?)
            .await
            .map_err(|e| format!("reading {uri}: {e}"))?;
        result
            .bytes()
            .await
            .map(|b| b.to_vec())
            .map_err(|e| format!("reading {uri}: {e}"))
    }
}

/// What the task holds for one destination table.
#[derive(Default)]
struct TableState {
    /// The table's metadata and its location, once loaded.
    metadata: Option<(Json, String)>,
    /// Next offsets the table holds, by topic partition (from its snapshots).
    committed: HashMap<(String, i32), i64>,
    /// Finished data files not yet committed: bytes and record count.
    files: Vec<(Vec<u8>, i64)>,
    /// The file being filled, for records of one value schema.
    writer: Option<(Arc<Schema>, ParquetWriter, i64)>,
    /// Next offsets of the records in `files` and `writer`.
    pending: BTreeMap<(String, i32), i64>,
}

/// The Iceberg sink's task.
#[derive(Default)]
struct IcebergTask {
    settings: Option<Settings>,
    connector: String,
    runtime: Option<Runtime>,
    warehouse: Option<Warehouse>,
    catalog: Option<JdbcCatalog>,
    tables: BTreeMap<String, TableState>,
    /// Per topic partition taken: the offset of the first record not yet in a commit.
    first_pending: HashMap<(String, i32), Option<i64>>,
    last_commit: Option<Instant>,
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// The offsets a table's snapshots record for `connector`: from the newest snapshot that has
/// them (another writer's snapshots, a compaction's, carry none).
fn table_offsets(metadata: &Json, connector: &str) -> HashMap<(String, i32), i64> {
    let key = format!("{OFFSETS_KEY}{connector}");
    let mut next = table::current_snapshot(metadata);
    while let Some(snapshot) = next {
        if let Some(text) = snapshot["summary"][&key].as_str() {
            let parsed: Json = serde_json::from_str(text).unwrap_or(Json::Null);
            let mut out = HashMap::new();
            if let Some(topics) = parsed.as_object() {
                for (topic, partitions) in topics {
                    for (p, offset) in partitions.as_object().into_iter().flatten() {
                        if let (Ok(p), Some(o)) = (p.parse::<i32>(), offset.as_i64()) {
                            out.insert((topic.clone(), p), o);
                        }
                    }
                }
            }
            return out;
        }
        next = snapshot["parent-snapshot-id"]
            .as_i64()
            .and_then(|id| table::snapshot(metadata, id));
    }
    HashMap::new()
}

/// The version number of a metadata file (`00003-<uuid>.metadata.json` is 3).
fn metadata_version(location: &str) -> u64 {
    let name = location.rsplit('/').next().unwrap_or_default();
    name.split('-')
        .next()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

impl IcebergTask {
    fn settings(&self) -> Result<&Settings, TaskError> {
        self.settings
            .as_ref()
            .ok_or_else(|| TaskError::fatal("the task was not started"))
    }

    /// Reads a table's current metadata; None if the catalog has no such table.
    async fn load(
        catalog: &JdbcCatalog,
        warehouse: &Warehouse,
        namespace: &str,
        name: &str,
    ) -> Result<Option<(Json, String)>, String> {
        let Some(location) = catalog.load(namespace, name).await? else {
            return Ok(None);
        };
        let bytes = warehouse.get(&location).await?;
        let metadata: Json = serde_json::from_slice(&bytes)
            .map_err(|e| format!("the metadata file {location} is not JSON: {e}"))?;
        if metadata["format-version"] != 2 {
            return Err(format!(
                "table {namespace}.{name} is Iceberg format version {}; Spate writes version 2 tables",
                metadata["format-version"]
            ));
        }
        Ok(Some((metadata, location)))
    }

    /// Writes `metadata` as the table's next metadata file and swaps the catalog to it.
    async fn swap(
        catalog: &JdbcCatalog,
        warehouse: &Warehouse,
        namespace: &str,
        name: &str,
        old: &str,
        metadata: &Json,
    ) -> Result<Option<String>, String> {
        let table_location = metadata["location"].as_str().unwrap_or_default();
        let new = format!(
            "{table_location}/metadata/{:05}-{}.metadata.json",
            metadata_version(old) + 1,
            table::uuid()
        );
        warehouse
            .put(&new, serde_json::to_vec(metadata).unwrap_or_default())
            .await?;
        Ok(catalog
            .swap(namespace, name, old, &new)
            .await?
            .then_some(new))
    }

    /// Makes sure the table is loaded (created from `schema` when allowed).
    fn ensure_table(&mut self, table_name: &str, schema: &Schema) -> Result<(), TaskError> {
        if self
            .tables
            .get(table_name)
            .is_some_and(|t| t.metadata.is_some())
        {
            return Ok(());
        }
        let settings = self.settings()?.clone();
        let (namespace, name) = table_name.rsplit_once('.').unwrap_or(("", table_name));
        let (Some(runtime), Some(warehouse), Some(catalog)) =
            (&self.runtime, &self.warehouse, &self.catalog)
        else {
            return Err(TaskError::fatal("the task was not started"));
        };
        let loaded = runtime.block_on(async {
            if let Some(loaded) = Self::load(catalog, warehouse, namespace, name).await? {
                return Ok(Some(loaded));
            }
            if !settings.auto_create {
                return Ok(None);
            }
            let location = format!("{}/{namespace}/{name}", settings.warehouse);
            let metadata = table::new_table(&location, schema, now_ms())?;
            let first = format!("{location}/metadata/00000-{}.metadata.json", table::uuid());
            warehouse
                .put(&first, serde_json::to_vec(&metadata).unwrap_or_default())
                .await?;
            if catalog.create(namespace, name, &first).await? {
                tracing::info!(table = %table_name, location = %location, "the Iceberg sink created a table");
            }
            Self::load(catalog, warehouse, namespace, name).await
        });
        let loaded = loaded.map_err(TaskError::redeliver)?.ok_or_else(|| {
            TaskError::fatal(format!(
                "table {table_name} does not exist in catalog {}; create it, or set \
                 iceberg.tables.auto-create-enabled=true",
                settings.catalog_name
            ))
        })?;
        let state = self.tables.entry(table_name.to_string()).or_default();
        state.committed = table_offsets(&loaded.0, &self.connector);
        state.metadata = Some(loaded);
        Ok(())
    }

    /// The field ids a record schema's fields have in the table, evolving the table first
    /// when allowed and needed.
    fn field_ids(&mut self, table_name: &str, schema: &Schema) -> Result<FieldIds, TaskError> {
        let settings = self.settings()?.clone();
        let (namespace, name) = table_name.rsplit_once('.').unwrap_or(("", table_name));
        for _ in 0..COMMIT_TRIES {
            let state = self
                .tables
                .get(table_name)
                .ok_or_else(|| TaskError::fatal("table not loaded"))?;
            let (metadata, location) = state
                .metadata
                .clone()
                .ok_or_else(|| TaskError::fatal("table not loaded"))?;
            let mut current = table::current_schema(&metadata)
                .map_err(TaskError::fatal)?
                .clone();
            let mut last = metadata["last-column-id"].as_i64().unwrap_or(0) as i32;
            let mut changed = false;
            let children = table::match_struct(
                schema,
                &mut current,
                settings.evolve,
                &mut last,
                &mut changed,
                "",
            )
            .map_err(|e| TaskError::fatal(format!("table {table_name}: {e}")))?;
            if !changed {
                return Ok(FieldIds { id: 0, children });
            }
            // A new schema: the next id, made current, in its own commit.
            let mut evolved = metadata.clone();
            let next_id = evolved["schemas"].as_array().map_or(0, |s| {
                s.iter()
                    .filter_map(|s| s["schema-id"].as_i64())
                    .max()
                    .unwrap_or(-1)
                    + 1
            });
            current["schema-id"] = json!(next_id);
            if let Some(schemas) = evolved["schemas"].as_array_mut() {
                schemas.push(current);
            }
            evolved["current-schema-id"] = json!(next_id);
            evolved["last-column-id"] = json!(last);
            evolved["last-updated-ms"] = json!(now_ms());
            push_metadata_log(&mut evolved, &metadata, &location);
            let (Some(runtime), Some(warehouse), Some(catalog)) =
                (&self.runtime, &self.warehouse, &self.catalog)
            else {
                return Err(TaskError::fatal("the task was not started"));
            };
            let result = runtime.block_on(async {
                if let Some(new) =
                    Self::swap(catalog, warehouse, namespace, name, &location, &evolved).await?
                {
                    return Ok(Some((evolved, new)));
                }
                Self::load(catalog, warehouse, namespace, name).await
            });
            let reloaded = result.map_err(TaskError::redeliver)?;
            if let Some(loaded) = reloaded {
                tracing::info!(table = %table_name, "the Iceberg sink evolved the table's schema");
                if let Some(state) = self.tables.get_mut(table_name) {
                    state.metadata = Some(loaded);
                }
            }
        }
        Err(TaskError::redeliver(format!(
            "evolving table {table_name}: other writers kept committing first"
        )))
    }

    fn take(&mut self, record: &ConnectRecord) -> Result<(), TaskError> {
        let partition = (record.topic.clone(), record.partition.unwrap_or(0));
        let offset = record.kafka_offset.unwrap_or(0);
        let at = format!(
            "topic {} partition {} offset {offset}",
            partition.0, partition.1
        );
        if !self.first_pending.contains_key(&partition) {
            // A partition new to this task: what the tables hold of it may have moved.
            for state in self.tables.values_mut() {
                state.metadata = None;
            }
            self.first_pending.insert(partition.clone(), None);
        }
        if record.value.is_null() {
            return Ok(());
        }
        let Some(schema) = record
            .value_schema
            .clone()
            .filter(|s| s.kind == SchemaType::Struct)
        else {
            return Err(TaskError::fatal(format!(
                "the Iceberg sink needs records whose value is a struct with a schema (a \
                 converter that gives one: AvroConverter, JsonConverter with \
                 schemas.enable=true, ...); got another at {at}"
            )));
        };
        let names: Vec<String> = self
            .settings()?
            .tables
            .iter()
            .map(|(n, t)| format!("{n}.{t}"))
            .collect();
        for table_name in names {
            self.ensure_table(&table_name, &schema)?;
            let committed = self.tables[&table_name].committed.get(&partition).copied();
            if committed.is_some_and(|next| offset < next) {
                continue;
            }
            let needs_writer = self.tables[&table_name]
                .writer
                .as_ref()
                .is_none_or(|(s, _, _)| !same_schema(Some(s), Some(&schema)));
            if needs_writer {
                let ids = self.field_ids(&table_name, &schema)?;
                let writer = ParquetWriter::for_iceberg(
                    &schema,
                    ::parquet::basic::Compression::ZSTD(Default::default()),
                    &ids,
                )
                .map_err(|e| TaskError::fatal(format!("table {table_name}: {e} (at {at})")))?;
                let state = self
                    .tables
                    .get_mut(&table_name)
                    .ok_or_else(|| TaskError::fatal("table not loaded"))?;
                if let Some((_, old, count)) = state.writer.take() {
                    let bytes = old.finish().map_err(TaskError::fatal)?;
                    state.files.push((bytes, count));
                }
                state.writer = Some((Arc::clone(&schema), writer, 0));
            }
            let state = self
                .tables
                .get_mut(&table_name)
                .ok_or_else(|| TaskError::fatal("table not loaded"))?;
            if let Some((_, writer, count)) = state.writer.as_mut() {
                writer
                    .write(&record.value)
                    .map_err(|e| TaskError::fatal(format!("table {table_name}: {e} at {at}")))?;
                *count += 1;
            }
            state.pending.insert(partition.clone(), offset + 1);
            let first = self.first_pending.entry(partition.clone()).or_default();
            first.get_or_insert(offset);
        }
        Ok(())
    }

    /// Commits every table's pending files as one append snapshot each, with the offsets.
    fn commit(&mut self) -> Result<(), TaskError> {
        let settings = self.settings()?.clone();
        let names: Vec<String> = self.tables.keys().cloned().collect();
        for table_name in names {
            let (namespace, name) = table_name.rsplit_once('.').unwrap_or(("", &table_name));
            let state = self
                .tables
                .get_mut(&table_name)
                .ok_or_else(|| TaskError::fatal("table not loaded"))?;
            if let Some((_, writer, count)) = state.writer.take() {
                let bytes = writer.finish().map_err(TaskError::fatal)?;
                state.files.push((bytes, count));
            }
            if state.files.is_empty() {
                continue;
            }
            let files = std::mem::take(&mut state.files);
            let pending = state.pending.clone();
            let (Some(runtime), Some(warehouse), Some(catalog)) =
                (&self.runtime, &self.warehouse, &self.catalog)
            else {
                return Err(TaskError::fatal("the task was not started"));
            };
            let connector = self.connector.clone();
            let started = Instant::now();
            let result: Result<(Json, String), String> = runtime.block_on(async {
                let (metadata, _) = Self::load(catalog, warehouse, namespace, name)
                    .await?
                    .ok_or_else(|| format!("table {table_name} disappeared from the catalog"))?;
                let location = metadata["location"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string();
                let mut data = Vec::new();
                for (bytes, records) in &files {
                    let path = format!("{location}/data/{}.parquet", table::uuid());
                    let size = bytes.len() as i64;
                    warehouse.put(&path, bytes.clone()).await?;
                    data.push(DataFile {
                        path,
                        records: *records,
                        bytes: size,
                    });
                }
                for _ in 0..COMMIT_TRIES {
                    let (metadata, old) = Self::load(catalog, warehouse, namespace, name)
                        .await?
                        .ok_or_else(|| {
                            format!("table {table_name} disappeared from the catalog")
                        })?;
                    let next =
                        append(&metadata, &old, &data, &pending, &connector, warehouse).await?;
                    if let Some(new) =
                        Self::swap(catalog, warehouse, namespace, name, &old, &next).await?
                    {
                        return Ok((next, new));
                    }
                }
                Err(format!(
                    "committing to {table_name}: other writers kept committing first"
                ))
            });
            match result {
                Ok(loaded) => {
                    let state = self
                        .tables
                        .get_mut(&table_name)
                        .ok_or_else(|| TaskError::fatal("table not loaded"))?;
                    state.committed = table_offsets(&loaded.0, &self.connector);
                    state.metadata = Some(loaded);
                    state.pending.clear();
                    tracing::debug!(
                        table = %table_name,
                        files = files.len(),
                        records = files.iter().map(|f| f.1).sum::<i64>(),
                        millis = started.elapsed().as_millis() as u64,
                        "the Iceberg sink committed a snapshot"
                    );
                }
                Err(e) => {
                    // The files are kept to commit again (the data files are written again
                    // too, under new names; the first ones are orphans no snapshot lists).
                    if let Some(state) = self.tables.get_mut(&table_name) {
                        state.files = files;
                    }
                    return Err(TaskError::redeliver(format!(
                        "committing to Iceberg table {table_name} (catalog {}): {e}",
                        settings.catalog_name
                    )));
                }
            }
        }
        for first in self.first_pending.values_mut() {
            *first = None;
        }
        self.last_commit = Some(Instant::now());
        Ok(())
    }
}

/// Appends a metadata-log entry for the metadata being replaced.
fn push_metadata_log(next: &mut Json, previous: &Json, previous_location: &str) {
    let entry =
        json!({"timestamp-ms": previous["last-updated-ms"], "metadata-file": previous_location});
    match next["metadata-log"].as_array_mut() {
        Some(log) => log.push(entry),
        None => next["metadata-log"] = json!([entry]),
    }
}

/// The table's metadata after an append snapshot of `data`, recording `pending` offsets.
async fn append(
    metadata: &Json,
    location: &str,
    data: &[DataFile],
    pending: &BTreeMap<(String, i32), i64>,
    connector: &str,
    warehouse: &Warehouse,
) -> Result<Json, String> {
    let table_location = metadata["location"].as_str().unwrap_or_default();
    let sequence = metadata["last-sequence-number"].as_i64().unwrap_or(0) + 1;
    let snapshot_id = table::snapshot_id();
    let parent = table::current_snapshot(metadata);
    let schema = table::current_schema(metadata)?;
    let manifest_path = format!("{table_location}/metadata/{}-m0.avro", table::uuid());
    let manifest = table::manifest(data, snapshot_id, schema, &manifest_path)?;
    let manifest_length = manifest.len() as i64;
    warehouse.put(&manifest_path, manifest).await?;
    let added_rows: i64 = data.iter().map(|d| d.records).sum();
    let added_bytes: i64 = data.iter().map(|d| d.bytes).sum();
    let mut manifests = vec![ManifestFile {
        path: manifest_path,
        length: manifest_length,
        spec_id: 0,
        content: 0,
        sequence_number: sequence,
        min_sequence_number: sequence,
        added_snapshot_id: snapshot_id,
        added_files: data.len() as i32,
        existing_files: 0,
        deleted_files: 0,
        added_rows,
        existing_rows: 0,
        deleted_rows: 0,
    }];
    if let Some(list) = parent.and_then(|p| p["manifest-list"].as_str()) {
        manifests.extend(table::read_manifest_list(&warehouse.get(list).await?)?);
    }
    let list_path = format!(
        "{table_location}/metadata/snap-{snapshot_id}-1-{}.avro",
        table::uuid()
    );
    let parent_id = parent.and_then(|p| p["snapshot-id"].as_i64());
    let list = table::manifest_list(&manifests, snapshot_id, parent_id, sequence, &list_path)?;
    warehouse.put(&list_path, list).await?;

    // The offsets: the newest recorded, then this commit's over them.
    let mut offsets: BTreeMap<String, BTreeMap<String, i64>> = BTreeMap::new();
    for ((topic, p), next) in table_offsets(metadata, connector) {
        offsets
            .entry(topic)
            .or_default()
            .insert(p.to_string(), next);
    }
    for ((topic, p), next) in pending {
        offsets
            .entry(topic.clone())
            .or_default()
            .insert(p.to_string(), *next);
    }
    let total = |key: &str| {
        parent
            .and_then(|p| p["summary"][key].as_str())
            .and_then(|v| v.parse::<i64>().ok())
            .unwrap_or(0)
    };
    let now = now_ms();
    let summary = json!({
        "operation": "append",
        "added-data-files": data.len().to_string(),
        "added-records": added_rows.to_string(),
        "added-files-size": added_bytes.to_string(),
        "total-data-files": (total("total-data-files") + data.len() as i64).to_string(),
        "total-records": (total("total-records") + added_rows).to_string(),
        "total-files-size": (total("total-files-size") + added_bytes).to_string(),
        "total-delete-files": "0",
        "total-position-deletes": "0",
        "total-equality-deletes": "0",
        format!("{OFFSETS_KEY}{connector}"): serde_json::to_string(&offsets).unwrap_or_default(),
    });
    let mut snapshot = json!({
        "snapshot-id": snapshot_id,
        "sequence-number": sequence,
        "timestamp-ms": now,
        "manifest-list": list_path,
        "summary": summary,
        "schema-id": schema["schema-id"],
    });
    if let Some(parent_id) = parent_id {
        snapshot["parent-snapshot-id"] = json!(parent_id);
    }
    let mut next = metadata.clone();
    next["last-sequence-number"] = json!(sequence);
    next["last-updated-ms"] = json!(now);
    next["current-snapshot-id"] = json!(snapshot_id);
    match next["snapshots"].as_array_mut() {
        Some(s) => s.push(snapshot),
        None => next["snapshots"] = json!([snapshot]),
    }
    next["refs"]["main"] = json!({"snapshot-id": snapshot_id, "type": "branch"});
    let log_entry = json!({"timestamp-ms": now, "snapshot-id": snapshot_id});
    match next["snapshot-log"].as_array_mut() {
        Some(log) => log.push(log_entry),
        None => next["snapshot-log"] = json!([log_entry]),
    }
    push_metadata_log(&mut next, metadata, location);
    Ok(next)
}

impl SinkTask for IcebergTask {
    fn start(&mut self, props: &Props) -> Result<(), TaskError> {
        let settings = parse(props).map_err(|problems| {
            TaskError::fatal(format!(
                "invalid config: {}",
                crate::config::describe(&problems)
            ))
        })?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| TaskError::fatal(format!("starting the task's runtime: {e}")))?;
        let warehouse = Warehouse::open(&settings).map_err(TaskError::fatal)?;
        let catalog = runtime
            .block_on(JdbcCatalog::connect(
                settings.database.clone(),
                &settings.catalog_name,
            ))
            .map_err(|e| TaskError::retriable(format!("the Iceberg catalog: {e}")))?;
        self.connector = props.get("name").cloned().unwrap_or_default();
        self.settings = Some(settings);
        self.runtime = Some(runtime);
        self.warehouse = Some(warehouse);
        self.catalog = Some(catalog);
        self.last_commit = Some(Instant::now());
        Ok(())
    }

    fn put(&mut self, records: &[ConnectRecord]) -> Result<(), TaskError> {
        for record in records {
            self.take(record)?;
        }
        let interval = self.settings()?.commit_interval;
        let due = self.last_commit.is_none_or(|at| at.elapsed() >= interval);
        let waiting = self
            .tables
            .values()
            .any(|t| !t.files.is_empty() || t.writer.is_some());
        if due && waiting {
            self.commit()?;
        } else if due {
            self.last_commit = Some(Instant::now());
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<(), TaskError> {
        Ok(())
    }

    fn pre_commit(&mut self, offsets: &SinkOffsets) -> Result<SinkOffsets, TaskError> {
        Ok(offsets
            .iter()
            .map(|(partition, next)| {
                let ready = self
                    .first_pending
                    .get(partition)
                    .copied()
                    .flatten()
                    .unwrap_or(*next);
                (partition.clone(), ready)
            })
            .collect())
    }

    fn close(&mut self, partitions: &[(String, i32)]) {
        // What was taken and not committed is dropped with the files it is in; the tables
        // are read again before the next record.
        if partitions
            .iter()
            .any(|p| self.first_pending.get(p).copied().flatten().is_some())
        {
            for state in self.tables.values_mut() {
                state.files.clear();
                state.writer = None;
                state.pending.clear();
            }
            self.first_pending.clear();
        }
        for p in partitions {
            self.first_pending.remove(p);
        }
        for state in self.tables.values_mut() {
            state.metadata = None;
        }
    }

    fn stop(&mut self) {
        self.tables.clear();
        self.catalog = None;
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_timeout(Duration::from_secs(1));
        }
    }
}
