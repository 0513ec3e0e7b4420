//! Cluster administration: broker configs, record deletion, storage per partition and
//! transactions, as `kafka-configs --entity-type brokers`, `kafka-delete-records`,
//! `kafka-log-dirs` and `kafka-transactions` do.
//!
//! - Broker configs are DescribeConfigs and IncrementalAlterConfigs on resource type BROKER:
//!   a broker's own configs are asked of that broker, the cluster-wide defaults (resource
//!   name `""`, `kafka-configs --entity-default`) of any broker.
//! - DeleteRecords goes to each partition's leader and moves its log start offset.
//! - DescribeLogDirs is asked of every broker (each knows only its own replicas); brokers that
//!   do not advertise it are reported as such, not as failures.
//! - ListTransactions is asked of every broker (each lists the transactional ids it
//!   coordinates); DescribeTransactions goes to each id's coordinator (FindCoordinator key
//!   type 1); DescribeProducers to each partition's leader.
//!
//! Like the rest of the crate this module never prints; results are plain values.

use std::collections::BTreeMap;

use kafka_protocol::messages::delete_records_request::{
    DeleteRecordsPartition, DeleteRecordsTopic,
};
use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use kafka_protocol::messages::describe_log_dirs_request::DescribableLogDirTopic;
use kafka_protocol::messages::describe_producers_request::TopicRequest;
use kafka_protocol::messages::{
    ApiKey, DeleteRecordsRequest, DescribeConfigsRequest, DescribeLogDirsRequest,
    DescribeProducersRequest, DescribeTransactionsRequest, ListTransactionsRequest, ProducerId,
    TopicName, TransactionalId,
};
use kafka_protocol::protocol::StrBytes;

use crate::admin::{ConfigChange, ConfigEntry, ConfigSource};
use crate::client::{Client, TopicMetadata};
use crate::error::{Error, KafkaError, Result};

/// DescribeConfigs / IncrementalAlterConfigs resource type of a broker.
const RESOURCE_TYPE_BROKER: i8 = 4;
/// FindCoordinator key type of a transactional id.
const KEY_TYPE_TRANSACTION: i8 = 1;

fn text(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_string())
}

fn topic_name(s: &str) -> TopicName {
    TopicName(text(s))
}

fn kafka_error(context: impl FnOnce() -> String, code: i16, message: Option<&str>) -> Result<()> {
    match KafkaError::from_code(code, message) {
        Some(error) => Err(Error::Kafka {
            context: context(),
            error,
        }),
        None => Ok(()),
    }
}

/// Which broker configs: one broker's, or the defaults every broker shares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BrokerConfigTarget {
    /// The cluster-wide defaults (resource name `""`, `--entity-default`).
    ClusterDefault,
    /// One broker, by node id.
    Broker(i32),
}

impl BrokerConfigTarget {
    fn resource_name(self) -> String {
        match self {
            BrokerConfigTarget::ClusterDefault => String::new(),
            BrokerConfigTarget::Broker(id) => id.to_string(),
        }
    }

    fn describe(self) -> String {
        match self {
            BrokerConfigTarget::ClusterDefault => "the cluster defaults".to_string(),
            BrokerConfigTarget::Broker(id) => format!("broker {id}"),
        }
    }
}

/// A partition's replica in a log directory, as DescribeLogDirs reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplicaSize {
    /// Topic.
    pub topic: String,
    /// Partition.
    pub partition: i32,
    /// Bytes on disk.
    pub size_bytes: i64,
    /// How far the replica is behind the log end (0 on a leader).
    pub offset_lag: i64,
    /// Whether it is a future replica being moved between directories.
    pub is_future: bool,
}

/// One log directory of a broker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogDir {
    /// The directory's path on the broker.
    pub path: String,
    /// The directory's error (e.g. KAFKA_STORAGE_ERROR), if any.
    pub error: Option<KafkaError>,
    /// Size of the volume in bytes, `None` when not reported (before v4, or unknown).
    pub total_bytes: Option<i64>,
    /// Free bytes on the volume, `None` when not reported.
    pub usable_bytes: Option<i64>,
    /// The replicas it holds (of the topics asked for).
    pub replicas: Vec<ReplicaSize>,
}

/// A broker's answer to DescribeLogDirs.
#[derive(Debug)]
pub struct BrokerLogDirs {
    /// The broker's node id.
    pub node_id: i32,
    /// Its directories, or why they could not be described (including a broker that does
    /// not support DescribeLogDirs).
    pub dirs: Result<Vec<LogDir>>,
}

/// A transaction as ListTransactions reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedTransaction {
    /// Transactional id.
    pub transactional_id: String,
    /// Producer id.
    pub producer_id: i64,
    /// State, e.g. `Ongoing`, `CompleteCommit`.
    pub state: String,
    /// The coordinator that listed it.
    pub coordinator_id: i32,
}

/// A transaction as DescribeTransactions reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransactionDescription {
    /// Transactional id.
    pub transactional_id: String,
    /// The coordinator's node id.
    pub coordinator_id: i32,
    /// State, e.g. `Ongoing`.
    pub state: String,
    /// Producer id.
    pub producer_id: i64,
    /// Producer epoch.
    pub producer_epoch: i16,
    /// Transaction timeout.
    pub timeout_ms: i32,
    /// When the ongoing transaction started (ms since the epoch), `None` when none is.
    pub start_time_ms: Option<i64>,
    /// Partitions in the ongoing transaction, by topic.
    pub partitions: Vec<(String, Vec<i32>)>,
}

/// An active producer of a partition, as DescribeProducers reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProducerDescription {
    /// Producer id.
    pub producer_id: i64,
    /// Producer epoch.
    pub producer_epoch: i32,
    /// Sequence number of its last batch.
    pub last_sequence: i32,
    /// Timestamp of its last batch (ms since the epoch).
    pub last_timestamp_ms: i64,
    /// Coordinator epoch of its last transaction marker, `-1` if none.
    pub coordinator_epoch: i32,
    /// First offset of its open transaction, `None` when none is open.
    pub current_txn_start_offset: Option<i64>,
}

impl Client {
    /// The configs of a broker or of the cluster defaults, sorted by name.
    pub async fn describe_broker_configs(
        &self,
        target: BrokerConfigTarget,
    ) -> Result<Vec<ConfigEntry>> {
        let conn = match target {
            BrokerConfigTarget::ClusterDefault => self.any_broker().await?,
            BrokerConfigTarget::Broker(id) => self.broker(id).await?,
        };
        let version = conn.version::<DescribeConfigsRequest>()?;
        let request = DescribeConfigsRequest::default()
            .with_resources(vec![
                DescribeConfigsResource::default()
                    .with_resource_type(RESOURCE_TYPE_BROKER)
                    .with_resource_name(text(&target.resource_name()))
                    .with_configuration_keys(None),
            ])
            .with_include_synonyms(false);
        let response = conn.send(&request, version).await?;
        let mut entries = Vec::new();
        for result in response.results {
            kafka_error(
                || format!("cannot describe the configs of {}", target.describe()),
                result.error_code,
                result.error_message.as_deref(),
            )?;
            entries.extend(result.configs.into_iter().map(|c| ConfigEntry {
                name: c.name.to_string(),
                value: c.value.map(|v| v.to_string()),
                source: ConfigSource::from_code(c.config_source),
                read_only: c.read_only,
                is_sensitive: c.is_sensitive,
            }));
        }
        entries.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(entries)
    }

    /// Changes configs of a broker or of the cluster defaults (IncrementalAlterConfigs).
    pub async fn alter_broker_configs(
        &self,
        target: BrokerConfigTarget,
        changes: &[ConfigChange],
    ) -> Result<()> {
        let conn = match target {
            BrokerConfigTarget::ClusterDefault => self.any_broker().await?,
            BrokerConfigTarget::Broker(id) => self.broker(id).await?,
        };
        crate::admin::incremental_alter_configs(
            &conn,
            RESOURCE_TYPE_BROKER,
            &target.resource_name(),
            changes,
            || format!("cannot alter the configs of {}", target.describe()),
        )
        .await
    }

    /// Deletes the records of partitions of `topic` below the given offsets (DeleteRecords at
    /// each leader; `-1` means the high watermark). Returns each partition's new log start
    /// offset or its error, by partition.
    pub async fn delete_records(
        &self,
        topic: &TopicMetadata,
        offsets: &[(i32, i64)],
    ) -> Result<BTreeMap<i32, std::result::Result<i64, KafkaError>>> {
        let mut by_leader: BTreeMap<i32, Vec<(i32, i64)>> = BTreeMap::new();
        for &(partition, offset) in offsets {
            by_leader
                .entry(topic.leader_of(partition)?)
                .or_default()
                .push((partition, offset));
        }
        let timeout_ms = self
            .config()
            .timeouts
            .request
            .as_millis()
            .min(i32::MAX as u128) as i32;
        let requests = by_leader.into_iter().map(|(leader, parts)| async move {
            let conn = self.broker(leader).await?;
            let version = conn.version::<DeleteRecordsRequest>()?;
            let request = DeleteRecordsRequest::default()
                .with_topics(vec![
                    DeleteRecordsTopic::default()
                        .with_name(topic_name(&topic.name))
                        .with_partitions(
                            parts
                                .iter()
                                .map(|&(partition, offset)| {
                                    DeleteRecordsPartition::default()
                                        .with_partition_index(partition)
                                        .with_offset(offset)
                                })
                                .collect(),
                        ),
                ])
                .with_timeout_ms(timeout_ms);
            let response = conn.send(&request, version).await?;
            let mut out = Vec::new();
            for t in response.topics {
                for p in t.partitions {
                    let result = match KafkaError::from_code(p.error_code, None) {
                        Some(error) => Err(error),
                        None => Ok(p.low_watermark),
                    };
                    out.push((p.partition_index, result));
                }
            }
            Ok::<_, Error>(out)
        });
        let mut results = BTreeMap::new();
        for answer in futures::future::join_all(requests).await {
            results.extend(answer?);
        }
        Ok(results)
    }

    /// Every broker's log directories with the sizes of the replicas of `topics` (all topics
    /// when `None`), by node id.
    pub async fn describe_log_dirs(&self, topics: Option<&[TopicMetadata]>) -> Vec<BrokerLogDirs> {
        let brokers = match self.metadata(Some(&[]), false).await {
            Ok(metadata) => metadata.brokers,
            Err(error) => {
                return vec![BrokerLogDirs {
                    node_id: -1,
                    dirs: Err(error),
                }];
            }
        };
        let asked = topics.map(|topics| {
            topics
                .iter()
                .map(|t| {
                    DescribableLogDirTopic::default()
                        .with_topic(topic_name(&t.name))
                        .with_partitions(t.partitions.iter().map(|p| p.partition).collect())
                })
                .collect::<Vec<_>>()
        });
        let asked = &asked;
        let requests = brokers.iter().map(|b| async move {
            let dirs = async {
                let conn = self.broker(b.node_id).await?;
                let version = conn.version_within(
                    ApiKey::DescribeLogDirs,
                    1,
                    <DescribeLogDirsRequest as kafka_protocol::protocol::Message>::VERSIONS.max,
                )?;
                let request = DescribeLogDirsRequest::default().with_topics(asked.clone());
                let response = conn.send(&request, version).await?;
                kafka_error(
                    || format!("describe the log directories of broker {}", b.node_id),
                    response.error_code,
                    None,
                )?;
                Ok(response
                    .results
                    .into_iter()
                    .map(|dir| LogDir {
                        path: dir.log_dir.to_string(),
                        error: KafkaError::from_code(dir.error_code, None),
                        total_bytes: (dir.total_bytes >= 0).then_some(dir.total_bytes),
                        usable_bytes: (dir.usable_bytes >= 0).then_some(dir.usable_bytes),
                        replicas: dir
                            .topics
                            .into_iter()
                            .flat_map(|t| {
                                let name = t.name.0.to_string();
                                t.partitions.into_iter().map(move |p| ReplicaSize {
                                    topic: name.clone(),
                                    partition: p.partition_index,
                                    size_bytes: p.partition_size,
                                    offset_lag: p.offset_lag,
                                    is_future: p.is_future_key,
                                })
                            })
                            .collect(),
                    })
                    .collect())
            }
            .await;
            BrokerLogDirs {
                node_id: b.node_id,
                dirs,
            }
        });
        let mut answers = futures::future::join_all(requests).await;
        answers.sort_by_key(|a| a.node_id);
        answers
    }

    /// The transactions every broker coordinates (ListTransactions), sorted by id; `states`
    /// filters by state (e.g. `Ongoing`) and `producer_ids` by producer id.
    pub async fn list_transactions(
        &self,
        states: &[String],
        producer_ids: &[i64],
    ) -> Result<Vec<ListedTransaction>> {
        let metadata = self.metadata(Some(&[]), false).await?;
        let requests = metadata.brokers.iter().map(|b| async move {
            let conn = self.broker(b.node_id).await?;
            let version = conn.version::<ListTransactionsRequest>()?;
            let mut request = ListTransactionsRequest::default()
                .with_state_filters(states.iter().map(|s| text(s)).collect())
                .with_producer_id_filters(producer_ids.iter().map(|&id| ProducerId(id)).collect());
            if version >= 1 {
                request.duration_filter = -1;
            }
            let response = conn.send(&request, version).await?;
            kafka_error(
                || format!("list the transactions of broker {}", b.node_id),
                response.error_code,
                None,
            )?;
            Ok::<_, Error>(
                response
                    .transaction_states
                    .into_iter()
                    .map(|t| ListedTransaction {
                        transactional_id: t.transactional_id.0.to_string(),
                        producer_id: t.producer_id.0,
                        state: t.transaction_state.to_string(),
                        coordinator_id: b.node_id,
                    })
                    .collect::<Vec<_>>(),
            )
        });
        let mut listed = Vec::new();
        for answer in futures::future::join_all(requests).await {
            listed.extend(answer?);
        }
        listed.sort_by(|a, b| a.transactional_id.cmp(&b.transactional_id));
        Ok(listed)
    }

    /// Describes transactional ids at their coordinators (DescribeTransactions), in the
    /// order given; an id the coordinator does not know is TRANSACTIONAL_ID_NOT_FOUND.
    pub async fn describe_transactions(
        &self,
        ids: &[String],
    ) -> Vec<(String, Result<TransactionDescription>)> {
        let requests = ids.iter().map(|id| async move {
            let result = async {
                let coordinator = self.find_coordinator(KEY_TYPE_TRANSACTION, id).await?;
                let conn = self.coordinator_connection(&coordinator).await?;
                let version = conn.version::<DescribeTransactionsRequest>()?;
                let request = DescribeTransactionsRequest::default()
                    .with_transactional_ids(vec![TransactionalId(text(id))]);
                let response = conn.send(&request, version).await?;
                let found = response
                    .transaction_states
                    .into_iter()
                    .find(|t| t.transactional_id.0.as_str() == id)
                    .ok_or_else(|| Error::Decode {
                        broker: conn.broker().to_string(),
                        api: ApiKey::DescribeTransactions,
                        version,
                        reason: format!("no description of transactional id {id:?}"),
                    })?;
                kafka_error(
                    || format!("describe transactional id {id:?}"),
                    found.error_code,
                    None,
                )?;
                let mut partitions: Vec<(String, Vec<i32>)> = found
                    .topics
                    .into_iter()
                    .map(|t| {
                        let mut ps = t.partitions;
                        ps.sort_unstable();
                        (t.topic.0.to_string(), ps)
                    })
                    .collect();
                partitions.sort();
                Ok(TransactionDescription {
                    transactional_id: id.clone(),
                    coordinator_id: coordinator.node_id,
                    state: found.transaction_state.to_string(),
                    producer_id: found.producer_id.0,
                    producer_epoch: found.producer_epoch,
                    timeout_ms: found.transaction_timeout_ms,
                    start_time_ms: (found.transaction_start_time_ms >= 0)
                        .then_some(found.transaction_start_time_ms),
                    partitions,
                })
            }
            .await;
            (id.clone(), result)
        });
        futures::future::join_all(requests).await
    }

    /// The active producers of partitions of `topic` (DescribeProducers at each leader), by
    /// partition.
    pub async fn describe_producers(
        &self,
        topic: &TopicMetadata,
        partitions: &[i32],
    ) -> Result<BTreeMap<i32, std::result::Result<Vec<ProducerDescription>, KafkaError>>> {
        let mut by_leader: BTreeMap<i32, Vec<i32>> = BTreeMap::new();
        for &partition in partitions {
            by_leader
                .entry(topic.leader_of(partition)?)
                .or_default()
                .push(partition);
        }
        let requests = by_leader.into_iter().map(|(leader, parts)| async move {
            let conn = self.broker(leader).await?;
            let version = conn.version::<DescribeProducersRequest>()?;
            let request = DescribeProducersRequest::default().with_topics(vec![
                TopicRequest::default()
                    .with_name(topic_name(&topic.name))
                    .with_partition_indexes(parts),
            ]);
            let response = conn.send(&request, version).await?;
            let mut out = Vec::new();
            for t in response.topics {
                for p in t.partitions {
                    let result =
                        match KafkaError::from_code(p.error_code, p.error_message.as_deref()) {
                            Some(error) => Err(error),
                            None => Ok(p
                                .active_producers
                                .into_iter()
                                .map(|s| ProducerDescription {
                                    producer_id: s.producer_id.0,
                                    producer_epoch: s.producer_epoch,
                                    last_sequence: s.last_sequence,
                                    last_timestamp_ms: s.last_timestamp,
                                    coordinator_epoch: s.coordinator_epoch,
                                    current_txn_start_offset: (s.current_txn_start_offset >= 0)
                                        .then_some(s.current_txn_start_offset),
                                })
                                .collect()),
                        };
                    out.push((p.partition_index, result));
                }
            }
            Ok::<_, Error>(out)
        });
        let mut results = BTreeMap::new();
        for answer in futures::future::join_all(requests).await {
            results.extend(answer?);
        }
        Ok(results)
    }
}
