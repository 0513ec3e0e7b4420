//! Spate's broker: topics, partitions, the produce and fetch paths, metadata and admin APIs.
//!
//! The broker takes decoded requests (from `spate-protocol`) and returns responses. It owns the
//! topic registry and the group-commit syncer, and runs background maintenance (retention,
//! compaction, `flush.ms`). It never touches a socket: `spate-server` reads frames, calls
//! [`Broker::handle`] and writes what comes back, in request order.
//!
//! A request is handled in two phases. Everything that must happen in arrival order (a
//! produce's append) runs inside `handle`; what may complete later (waiting for fsync, a fetch
//! long-poll) comes back as [`Reply::Later`], so the connection can read its next request while
//! earlier ones finish.

mod acls;
mod admin;
pub mod audit;
pub mod authz;
mod configs;
pub mod credentials;
pub mod dynamic;
pub mod error;
mod fetch;
mod group_configs;
pub mod groups;
mod internal;
mod log_dirs;
pub mod loggers;
mod maintenance;
mod metadata;
mod metrics;
mod offsets;
mod produce;
mod producers;
pub mod quotas;
pub mod topics;
pub mod transactions;
pub mod usage;
pub mod validation;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{SystemTime, UNIX_EPOCH};

use futures::future::BoxFuture;
use kafka_protocol::ResponseError;
use kafka_protocol::messages::{RequestKind, ResponseKind};
use kafka_protocol::protocol::StrBytes;
use serde::{Deserialize, Serialize};
use spate_log::Syncer;
use spate_protocol::Request;

pub use error::BrokerError;
pub use group_configs::GroupConfigBounds;
pub use internal::StateRecord;
pub use loggers::LogLevels;
pub use metrics::{ApiMetrics, Metrics};
pub use topics::{Partition, Topic, TopicRegistry};

/// The broker's clock in milliseconds since the epoch; tests substitute their own.
pub type Clock = Arc<dyn Fn() -> i64 + Send + Sync>;

/// The wall clock.
pub fn system_clock() -> Clock {
    Arc::new(|| {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or(0)
    })
}

/// What the broker needs to know at start.
#[derive(Clone)]
pub struct BrokerOptions {
    /// Data directory.
    pub data_dir: PathBuf,
    /// This broker's id.
    pub node_id: i32,
    /// Host clients connect to.
    pub advertised_host: String,
    /// Port clients connect to.
    pub advertised_port: i32,
    /// Addresses advertised to clients of each named listener; a request from a listener not
    /// named here (or with no listener) gets `advertised_host:advertised_port`.
    pub listeners: Vec<AdvertisedListener>,
    /// Kafka's `auto.create.topics.enable`.
    pub auto_create_topics: bool,
    /// Kafka's `num.partitions`.
    pub default_partitions: i32,
    /// Upper bound of one Fetch response.
    pub fetch_max_bytes: usize,
    /// Broker-wide topic config defaults (Kafka topic config names), from the config file and
    /// flags; dynamic broker configs (`log.retention.ms`, ...) override them at runtime.
    pub topic_defaults: BTreeMap<String, String>,
    /// Other broker configs the server was started with, under Kafka's broker config names
    /// (`max.connections`, ...): described as STATIC_BROKER_CONFIG, the base that dynamic
    /// configs override.
    pub static_configs: BTreeMap<String, String>,
    /// The process's log filter, for log levels at runtime (BROKER_LOGGER); `None` when the
    /// process cannot change it.
    pub log_levels: Option<Arc<dyn loggers::LogLevels>>,
    /// fsync threads.
    pub sync_threads: usize,
    /// Group coordinator settings.
    pub groups: groups::CoordinatorSettings,
    /// Transaction coordinator settings.
    pub transactions: transactions::TransactionSettings,
    /// Time source.
    pub clock: Clock,
    /// ACL authorisation: `None` allows every request (Kafka without an authorizer); `Some`
    /// checks each request against the ACLs, denying what none allows.
    pub authorization: Option<spate_auth::acl::AuthorizerConfig>,
}

/// What clients of one listener are told to connect to (Kafka's `advertised.listeners`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdvertisedListener {
    /// The listener's name.
    pub name: String,
    /// Host.
    pub host: String,
    /// Port.
    pub port: i32,
}

impl std::fmt::Debug for BrokerOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BrokerOptions")
            .field("data_dir", &self.data_dir)
            .field("node_id", &self.node_id)
            .field("advertised_host", &self.advertised_host)
            .field("advertised_port", &self.advertised_port)
            .finish_non_exhaustive()
    }
}

/// How a request is answered.
// A reply is built once per request and moved straight to the connection's writer; boxing the
// response would only add an allocation.
#[allow(clippy::large_enum_variant)]
pub enum Reply {
    /// The response is ready.
    Now(ResponseKind),
    /// The response completes later (fsync wait, long poll); responses still go out in order.
    Later(BoxFuture<'static, ResponseKind>),
    /// No response at all (a produce with acks=0).
    Nothing,
}

impl std::fmt::Debug for Reply {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Reply::Now(response) => f.debug_tuple("Now").field(response).finish(),
            Reply::Later(_) => f.write_str("Later(..)"),
            Reply::Nothing => f.write_str("Nothing"),
        }
    }
}

/// Why the broker could not start.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// The data directory cannot be used.
    #[error("cannot use data directory {path}: {reason}")]
    DataDir {
        /// The directory.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
    /// Opening topics failed.
    #[error("cannot open topics: {0}")]
    Topics(#[from] BrokerError),
}

#[derive(Debug, Serialize, Deserialize)]
struct ClusterFile {
    cluster_id: String,
}

const CLUSTER_FILE: &str = "cluster.json";
const CLEAN_SHUTDOWN_FILE: &str = ".clean-shutdown";

/// Threads that close logs at shutdown.
const SHUTDOWN_THREADS: usize = 16;

/// The broker. Share it as `Arc<Broker>`.
pub struct Broker {
    options: BrokerOptions,
    cluster_id: String,
    topics: TopicRegistry,
    syncer: Arc<Syncer>,
    metrics: Metrics,
    producer_ids: producers::ProducerIds,
    groups: groups::GroupCoordinator,
    transactions: transactions::TxnCoordinator,
    schema_validator: parking_lot::RwLock<Option<Arc<dyn validation::SchemaValidator>>>,
    credentials: Arc<credentials::Credentials>,
    acls: acls::Acls,
    audit: audit::AuditLog,
    /// The audit records' `source`: `spate://<cluster id>`.
    audit_source: String,
    usage: usage::Usage,
    client_quotas: quotas::ClientQuotas,
    /// Dynamic broker and group configs (`__cluster_configs`).
    dynamic: dynamic::DynamicConfigs,
    /// Held from open until the broker is dropped, after its shutdown flushed everything.
    _dir_lock: spate_log::DirLock,
}

impl std::fmt::Debug for Broker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Broker")
            .field("node_id", &self.options.node_id)
            .field("cluster_id", &self.cluster_id)
            .finish_non_exhaustive()
    }
}

impl Broker {
    /// Opens (or initialises) the data directory and every topic in it. Blocking: run it
    /// before serving or on a blocking thread.
    pub fn open(options: BrokerOptions) -> Result<Arc<Broker>, OpenError> {
        let data_dir = options.data_dir.clone();
        let dir_error = |reason: String| OpenError::DataDir {
            path: data_dir.clone(),
            reason,
        };
        std::fs::create_dir_all(&data_dir).map_err(|e| dir_error(e.to_string()))?;
        // Before anything is read: a second process must not recover a directory in use.
        let dir_lock =
            spate_log::DirLock::acquire(&data_dir).map_err(|e| dir_error(e.to_string()))?;
        let cluster_id = load_or_create_cluster_id(&data_dir).map_err(dir_error)?;
        let marker = data_dir.join(CLEAN_SHUTDOWN_FILE);
        let clean = marker.exists();
        if clean {
            std::fs::remove_file(&marker).map_err(|e| dir_error(e.to_string()))?;
            spate_log::sync_dir(&data_dir).map_err(|e| dir_error(e.to_string()))?;
        }
        let now = (options.clock)();
        let topics = TopicRegistry::open(
            &data_dir.join("topics"),
            options.topic_defaults.clone(),
            clean,
            now,
        )?;
        if !clean && !topics.list().is_empty() {
            tracing::info!(
                topics = topics.list().len(),
                "recovered after an unclean shutdown"
            );
        }
        let producer_ids = producers::ProducerIds::open(&data_dir).map_err(dir_error)?;
        let groups = groups::GroupCoordinator::open(options.groups.clone(), &topics, now)?;
        let transactions =
            transactions::TxnCoordinator::open(options.transactions.clone(), &topics)?;
        for ((group, pid), offsets) in groups.take_open_transaction_offsets() {
            transactions.add_pending_offsets(&group, pid, offsets);
        }
        let syncer = Syncer::start(options.sync_threads);
        let options_authorization = options.authorization.clone().unwrap_or_default();
        let audit_source = format!("spate://{cluster_id}");
        let broker = Arc::new(Broker {
            options,
            cluster_id,
            topics,
            syncer,
            metrics: Metrics::default(),
            producer_ids,
            groups,
            transactions,
            schema_validator: parking_lot::RwLock::new(None),
            credentials: Arc::new(credentials::Credentials::default()),
            acls: acls::Acls::new(options_authorization),
            audit: audit::AuditLog::default(),
            audit_source,
            usage: usage::Usage::default(),
            client_quotas: quotas::ClientQuotas::default(),
            dynamic: dynamic::DynamicConfigs::default(),
            _dir_lock: dir_lock,
        });
        broker.credentials.load(&broker)?;
        broker.acls.load(&broker)?;
        broker.warn_if_nobody_is_allowed();
        broker.client_quotas.load(&broker)?;
        broker.load_dynamic_configs()?;
        broker.load_usage()?;
        Ok(broker)
    }

    /// The cluster id (generated once, kept in the data directory).
    pub fn cluster_id(&self) -> &str {
        &self.cluster_id
    }

    /// The topic registry.
    pub fn topics(&self) -> &TopicRegistry {
        &self.topics
    }

    /// Request and storage counters.
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// Appends the broker's counters and histograms (group-commit fsyncs included) in
    /// Prometheus text format.
    pub fn render_metrics(&self, out: &mut String) {
        self.metrics.render(out);
        let name = "spate_log_fsync_seconds";
        spate_metrics::write_header(
            out,
            name,
            "histogram",
            "Time of each group-commit fsync of a partition's log.",
        );
        spate_metrics::write_histogram(out, name, "", self.syncer.fsync_seconds());
    }

    /// Committed offsets of every group, for lag reporting.
    pub fn committed_offsets(&self) -> Vec<groups::GroupOffset> {
        self.groups.committed_offsets()
    }

    /// Start-up options.
    pub fn options(&self) -> &BrokerOptions {
        &self.options
    }

    /// The host and port a client of this request's listener should connect to.
    pub(crate) fn advertised_for(
        &self,
        session: Option<&spate_protocol::Session>,
    ) -> (String, i32) {
        session
            .and_then(|s| {
                self.options
                    .listeners
                    .iter()
                    .find(|l| *l.name == *s.listener)
            })
            .map_or_else(
                || {
                    (
                        self.options.advertised_host.clone(),
                        self.options.advertised_port,
                    )
                },
                |l| (l.host.clone(), l.port),
            )
    }

    pub(crate) fn now_ms(&self) -> i64 {
        (self.options.clock)()
    }

    /// Handles one request. Appends happen before this returns; waiting happens in the
    /// returned [`Reply::Later`].
    pub async fn handle(self: &Arc<Self>, request: Request) -> Reply {
        let version = request.api_version;
        self.metrics.record_request(request.api_key);
        // A produce starts when its append thread does (`produce.rs`).
        if let Some(received) = request.received
            && request.api_key != kafka_protocol::messages::ApiKey::Produce
        {
            self.metrics
                .observe_queue(request.api_key, received.elapsed());
        }
        let client_id = request.client_id.as_deref().unwrap_or("").to_string();
        let client_host = request
            .peer
            .map_or_else(String::new, |p| format!("/{}", p.ip()));
        let advertised = self.advertised_for(request.session.as_deref());
        let caller = authz::Caller::of(&request);
        self.meter_request(&caller.principal);
        if let Some(refusal) = self.refuse(&caller, &request.body, version) {
            if let RequestKind::Produce(req) = &request.body
                && req.acks == 0
            {
                return Reply::Nothing;
            }
            return Reply::Now(refusal);
        }
        let caller = &caller;
        match request.body {
            RequestKind::ApiVersions(_) => Reply::Now(ResponseKind::ApiVersions(
                spate_protocol::api_versions_response(0),
            )),
            RequestKind::Metadata(req) => Reply::Now(ResponseKind::Metadata(
                self.metadata(req, version, &advertised, caller).await,
            )),
            RequestKind::Produce(req) => self.produce(req, version, caller, request.received).await,
            RequestKind::Fetch(req) => self.fetch(req, version, caller),
            RequestKind::ListOffsets(req) => Reply::Now(ResponseKind::ListOffsets(
                self.list_offsets(req, version, caller).await,
            )),
            RequestKind::CreateTopics(req) => Reply::Now(ResponseKind::CreateTopics(
                self.create_topics(req, version, caller).await,
            )),
            RequestKind::DeleteTopics(req) => Reply::Now(ResponseKind::DeleteTopics(
                self.delete_topics(req, version, caller).await,
            )),
            RequestKind::CreatePartitions(req) => Reply::Now(ResponseKind::CreatePartitions(
                self.create_partitions(req, caller).await,
            )),
            RequestKind::DeleteRecords(req) => Reply::Now(ResponseKind::DeleteRecords(
                self.delete_records(req, caller).await,
            )),
            RequestKind::OffsetForLeaderEpoch(req) => Reply::Now(
                ResponseKind::OffsetForLeaderEpoch(self.offset_for_leader_epoch(req, caller)),
            ),
            RequestKind::DescribeConfigs(req) => Reply::Now(ResponseKind::DescribeConfigs(
                self.describe_configs(req, version, caller),
            )),
            RequestKind::AlterConfigs(req) => Reply::Now(ResponseKind::AlterConfigs(
                self.alter_configs(req, caller).await,
            )),
            RequestKind::IncrementalAlterConfigs(req) => {
                Reply::Now(ResponseKind::IncrementalAlterConfigs(
                    self.incremental_alter_configs(req, caller).await,
                ))
            }
            RequestKind::DescribeCluster(req) => Reply::Now(ResponseKind::DescribeCluster(
                self.describe_cluster(req, &advertised, caller),
            )),
            RequestKind::DescribeLogDirs(req) => {
                Reply::Now(ResponseKind::DescribeLogDirs(self.describe_log_dirs(req)))
            }
            RequestKind::ConsumerGroupHeartbeat(req) => {
                Reply::Now(ResponseKind::ConsumerGroupHeartbeat(
                    self.consumer_group_heartbeat(req, version, &client_id, &client_host),
                ))
            }
            RequestKind::ConsumerGroupDescribe(req) => Reply::Now(
                ResponseKind::ConsumerGroupDescribe(self.consumer_group_describe(req, caller)),
            ),
            RequestKind::AddPartitionsToTxn(req) => Reply::Now(ResponseKind::AddPartitionsToTxn(
                self.add_partitions_to_txn(req, version).await,
            )),
            RequestKind::AddOffsetsToTxn(req) => Reply::Now(ResponseKind::AddOffsetsToTxn(
                self.add_offsets_to_txn(req, version).await,
            )),
            RequestKind::EndTxn(req) => {
                Reply::Now(ResponseKind::EndTxn(self.end_txn(req, version).await))
            }
            RequestKind::TxnOffsetCommit(req) => Reply::Now(ResponseKind::TxnOffsetCommit(
                self.txn_offset_commit(req, version, caller).await,
            )),
            RequestKind::DescribeTransactions(req) => Reply::Now(
                ResponseKind::DescribeTransactions(self.describe_transactions(req, caller).await),
            ),
            RequestKind::ListTransactions(req) => Reply::Now(ResponseKind::ListTransactions(
                self.list_transactions(req, version, caller).await,
            )),
            RequestKind::DescribeProducers(req) => Reply::Now(ResponseKind::DescribeProducers(
                self.describe_producers(req, caller),
            )),
            RequestKind::JoinGroup(req) => {
                self.join_group(req, version, &client_id, &client_host)
                    .await
            }
            RequestKind::SyncGroup(req) => self.sync_group(req, version),
            RequestKind::Heartbeat(req) => Reply::Now(ResponseKind::Heartbeat(self.heartbeat(req))),
            RequestKind::LeaveGroup(req) => {
                Reply::Now(ResponseKind::LeaveGroup(self.leave_group(req, version)))
            }
            RequestKind::OffsetCommit(req) => {
                let broker = Arc::clone(self);
                let caller = caller.clone();
                Reply::Later(Box::pin(async move {
                    ResponseKind::OffsetCommit(broker.offset_commit(req, version, &caller).await)
                }))
            }
            RequestKind::OffsetFetch(req) => Reply::Now(ResponseKind::OffsetFetch(
                self.offset_fetch(req, version, caller),
            )),
            RequestKind::DescribeGroups(req) => Reply::Now(ResponseKind::DescribeGroups(
                self.describe_groups(req, version, caller),
            )),
            RequestKind::ListGroups(req) => Reply::Now(ResponseKind::ListGroups(
                self.list_groups(req, version, caller),
            )),
            RequestKind::DeleteGroups(req) => Reply::Now(ResponseKind::DeleteGroups(
                self.delete_groups(req, caller).await,
            )),
            RequestKind::OffsetDelete(req) => Reply::Now(ResponseKind::OffsetDelete(
                self.offset_delete(req, caller).await,
            )),
            RequestKind::InitProducerId(req) => Reply::Now(ResponseKind::InitProducerId(
                self.init_producer_id(req, version).await,
            )),
            RequestKind::CreateAcls(req) => Reply::Now(ResponseKind::CreateAcls(
                self.create_acls(req, caller).await,
            )),
            RequestKind::DescribeAcls(req) => {
                Reply::Now(ResponseKind::DescribeAcls(self.describe_acls(req)))
            }
            RequestKind::DeleteAcls(req) => Reply::Now(ResponseKind::DeleteAcls(
                self.delete_acls(req, caller).await,
            )),
            RequestKind::AlterUserScramCredentials(req) => {
                Reply::Now(ResponseKind::AlterUserScramCredentials(
                    self.alter_user_scram_credentials(req, caller).await,
                ))
            }
            RequestKind::DescribeClientQuotas(req) => Reply::Now(
                ResponseKind::DescribeClientQuotas(self.describe_client_quotas(req)),
            ),
            RequestKind::AlterClientQuotas(req) => Reply::Now(ResponseKind::AlterClientQuotas(
                self.alter_client_quotas(req, caller).await,
            )),
            RequestKind::DescribeUserScramCredentials(req) => {
                Reply::Now(ResponseKind::DescribeUserScramCredentials(
                    self.describe_user_scram_credentials(req),
                ))
            }
            // Authentication happens on the connection, before requests reach the broker; here
            // it is either a listener without SASL or a handshake after authentication.
            RequestKind::SaslHandshake(_) => Reply::Now(ResponseKind::SaslHandshake(
                kafka_protocol::messages::SaslHandshakeResponse::default()
                    .with_error_code(ResponseError::IllegalSaslState.code()),
            )),
            RequestKind::SaslAuthenticate(_) => Reply::Now(ResponseKind::SaslAuthenticate(
                kafka_protocol::messages::SaslAuthenticateResponse::default()
                    .with_error_code(ResponseError::IllegalSaslState.code())
                    .with_error_message(Some(StrBytes::from_static_str(
                        "this listener does not use SASL",
                    ))),
            )),
            RequestKind::FindCoordinator(req) => Reply::Now(ResponseKind::FindCoordinator(
                self.find_coordinator(req, version, &advertised, caller),
            )),
            other => {
                // spate-protocol only decodes advertised APIs, and every advertised API has an
                // arm above; reaching here is a broken invariant between the two crates.
                unreachable!("request {other:?} passed decoding but has no handler")
            }
        }
    }

    /// Makes every log durable, writes indexes and marks the shutdown clean. Blocking.
    ///
    /// Logs untouched since a clean start are skipped (their files already say it all); the
    /// rest are closed by a few threads at once, since each close waits on a handful of fsyncs
    /// and a disk serves several at a time.
    pub fn shutdown(&self) {
        let now = self.now_ms();
        let partitions: Vec<_> = self
            .topics
            .list()
            .iter()
            .flat_map(|topic| topic.partitions())
            .collect();
        let next = std::sync::atomic::AtomicUsize::new(0);
        let failed = std::sync::atomic::AtomicBool::new(false);
        let threads = partitions.len().clamp(1, SHUTDOWN_THREADS);
        std::thread::scope(|scope| {
            for _ in 0..threads {
                scope.spawn(|| {
                    while let Some(partition) =
                        partitions.get(next.fetch_add(1, Ordering::Relaxed))
                    {
                        if let Err(err) =
                            partition.log.sync(now).and_then(|()| partition.log.close())
                        {
                            tracing::error!(topic = %partition.topic, partition = partition.index, error = %err, "could not flush at shutdown");
                            failed.store(true, Ordering::Relaxed);
                        }
                    }
                });
            }
        });
        let failed = failed.into_inner();
        self.syncer.shutdown();
        if !failed {
            let marker = self.options.data_dir.join(CLEAN_SHUTDOWN_FILE);
            if let Err(err) = spate_log::write_atomic(&marker, b"") {
                tracing::warn!(error = %err, "could not record a clean shutdown; the next start will recover");
            }
        }
    }

    /// Runs retention, compaction and `flush.ms` until `shutdown` resolves.
    pub async fn run_maintenance(
        self: Arc<Self>,
        interval_ms: u64,
        shutdown: impl std::future::Future<Output = ()>,
    ) {
        maintenance::run(self, interval_ms, shutdown).await;
    }
}

fn load_or_create_cluster_id(data_dir: &Path) -> Result<String, String> {
    let path = data_dir.join(CLUSTER_FILE);
    match std::fs::read_to_string(&path) {
        Ok(text) => serde_json::from_str::<ClusterFile>(&text)
            .map(|f| f.cluster_id)
            .map_err(|e| format!("corrupt {}: {e}", path.display())),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
            use base64::Engine;
            // Kafka cluster ids are a UUID in URL-safe base64 without padding (22 characters).
            let id = base64::engine::general_purpose::URL_SAFE_NO_PAD
                .encode(uuid::Uuid::new_v4().as_bytes());
            let text = serde_json::to_vec(&ClusterFile {
                cluster_id: id.clone(),
            })
            .map_err(|e| e.to_string())?;
            spate_log::write_atomic(&path, &text).map_err(|e| e.to_string())?;
            Ok(id)
        }
        Err(err) => Err(err.to_string()),
    }
}
