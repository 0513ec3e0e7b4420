//! The cluster view: bootstrap, metadata, and a connection per broker.
//!
//! A [`Client`] starts from the bootstrap list, learns the brokers, the controller and each
//! partition's leader from Metadata, and keeps one [`Connection`] per broker node id. Requests
//! that must reach a partition's leader (Produce, Fetch, ListOffsets) are routed by node id, so
//! the client works on multi-broker clusters; admin requests go to the controller when it is
//! a live broker, else to any broker. Failed connections are replaced on next use. Every
//! connection, the first and each replacement, is secured as [`ClientConfig::security`] says
//! (TLS, SASL), the certificate files read once when the client is made. The client is cheap
//! to clone and safe to use from concurrent futures; no lock is held across an await.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::{MetadataRequest, TopicName};
use kafka_protocol::protocol::StrBytes;
use uuid::Uuid;

use crate::connection::{Connection, Timeouts};
use crate::error::{Error, KafkaError, Result, code};
use crate::security::{Security, SecurityConfig};

/// How long a topic asked to be auto-created may stay unknown before the client concludes
/// the cluster will not create it.
const AUTO_CREATE_GRACE: Duration = Duration::from_secs(1);

/// How a [`Client`] reaches the cluster.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// Bootstrap brokers, `HOST:PORT` each.
    pub bootstrap: Vec<String>,
    /// Sent as the request header's client id.
    pub client_id: String,
    /// Connect and request timeouts.
    pub timeouts: Timeouts,
    /// TLS and SASL (Kafka's `security.protocol` and friends); PLAINTEXT by default.
    pub security: SecurityConfig,
}

impl ClientConfig {
    /// A config with Kafka's usual timeouts (10 s to connect, 30 s per request).
    pub fn new(bootstrap: Vec<String>) -> ClientConfig {
        ClientConfig {
            bootstrap,
            client_id: "spate".to_string(),
            timeouts: Timeouts {
                connect: Duration::from_secs(10),
                request: Duration::from_secs(30),
            },
            security: SecurityConfig::default(),
        }
    }
}

/// A broker as Metadata describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerMetadata {
    /// Node id.
    pub node_id: i32,
    /// Advertised host.
    pub host: String,
    /// Advertised port.
    pub port: i32,
    /// Rack, if configured.
    pub rack: Option<String>,
}

/// A partition as Metadata describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionMetadata {
    /// Partition index.
    pub partition: i32,
    /// Leader node id, `-1` when there is none.
    pub leader: i32,
    /// Leader epoch, `-1` when unknown.
    pub leader_epoch: i32,
    /// Replica node ids.
    pub replicas: Vec<i32>,
    /// In-sync replica node ids.
    pub isr: Vec<i32>,
    /// Offline replica node ids.
    pub offline_replicas: Vec<i32>,
    /// The partition's error, e.g. LEADER_NOT_AVAILABLE.
    pub error: Option<KafkaError>,
}

/// A topic as Metadata describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicMetadata {
    /// Topic name.
    pub name: String,
    /// Topic id (nil before Metadata v10 or on brokers without ids).
    pub topic_id: Uuid,
    /// Whether it is an internal topic such as `__consumer_offsets`.
    pub is_internal: bool,
    /// Partitions in index order.
    pub partitions: Vec<PartitionMetadata>,
    /// The topic's error, e.g. UNKNOWN_TOPIC_OR_PARTITION.
    pub error: Option<KafkaError>,
}

impl TopicMetadata {
    /// The partition with this index.
    pub fn partition(&self, partition: i32) -> Option<&PartitionMetadata> {
        self.partitions.iter().find(|p| p.partition == partition)
    }

    /// The leader of `partition`, or an error saying why there is none.
    pub fn leader_of(&self, partition: i32) -> Result<i32> {
        let p = self
            .partition(partition)
            .ok_or_else(|| Error::UnknownPartition {
                topic: self.name.clone(),
                partition,
                partition_count: self.partitions.len(),
            })?;
        if p.leader < 0 {
            return Err(Error::NoLeader {
                topic: self.name.clone(),
                partition,
            });
        }
        Ok(p.leader)
    }

    /// Replication factor (replicas of partition 0).
    pub fn replication_factor(&self) -> usize {
        self.partitions.first().map_or(0, |p| p.replicas.len())
    }
}

/// The answer to a Metadata request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterMetadata {
    /// Cluster id, if the broker reports one.
    pub cluster_id: Option<String>,
    /// Controller node id as reported (`-1` when unknown).
    pub controller_id: i32,
    /// Live brokers.
    pub brokers: Vec<BrokerMetadata>,
    /// Topics asked for (or all).
    pub topics: Vec<TopicMetadata>,
}

#[derive(Default)]
struct ClusterState {
    /// Node id to `HOST:PORT`.
    brokers: HashMap<i32, String>,
    controller_id: Option<i32>,
    connections: HashMap<i32, Arc<Connection>>,
    /// A connection to a bootstrap address (its node id is unknown).
    bootstrap: Option<Arc<Connection>>,
}

struct Inner {
    config: ClientConfig,
    security: Security,
    state: Mutex<ClusterState>,
}

/// A client for one Kafka cluster.
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("bootstrap", &self.inner.config.bootstrap)
            .finish_non_exhaustive()
    }
}

/// Checks that `address` looks like `HOST:PORT`.
pub fn validate_broker_address(address: &str) -> Result<()> {
    let invalid = || Error::InvalidBrokerAddress {
        address: address.to_string(),
    };
    let (host, port) = address.rsplit_once(':').ok_or_else(invalid)?;
    if host.is_empty() || port.parse::<u16>().is_err() {
        return Err(invalid());
    }
    Ok(())
}

impl Client {
    /// Connects to the first reachable bootstrap broker and reads the cluster's brokers.
    pub async fn connect(config: ClientConfig) -> Result<Client> {
        if config.bootstrap.is_empty() {
            return Err(Error::InvalidArgument(
                "no brokers given; pass --brokers HOST:PORT".to_string(),
            ));
        }
        for address in &config.bootstrap {
            validate_broker_address(address)?;
        }
        let security = Security::new(&config.security)?;
        let client = Client {
            inner: Arc::new(Inner {
                config,
                security,
                state: Mutex::new(ClusterState::default()),
            }),
        };
        client.metadata(Some(&[]), false).await?;
        Ok(client)
    }

    /// The config the client was built with.
    pub fn config(&self) -> &ClientConfig {
        &self.inner.config
    }

    fn state(&self) -> MutexGuard<'_, ClusterState> {
        // The state is a cache; a panic elsewhere cannot leave it inconsistent.
        self.inner
            .state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// A new connection to `address`, secured and authenticated as configured.
    pub(crate) async fn open(&self, address: &str) -> Result<Arc<Connection>> {
        let config = &self.inner.config;
        Ok(Arc::new(
            Connection::connect_with(
                address,
                &config.client_id,
                config.timeouts,
                &self.inner.security,
            )
            .await?,
        ))
    }

    /// A live connection to any broker: one already open, else a bootstrap address, else a
    /// broker learnt from metadata.
    pub async fn any_broker(&self) -> Result<Arc<Connection>> {
        let known: Vec<String> = {
            let state = self.state();
            if let Some(conn) = state.bootstrap.as_ref().filter(|c| !c.is_closed()) {
                return Ok(Arc::clone(conn));
            }
            if let Some(conn) = state.connections.values().find(|c| !c.is_closed()) {
                return Ok(Arc::clone(conn));
            }
            state.brokers.values().cloned().collect()
        };
        let mut candidates = self.inner.config.bootstrap.clone();
        candidates.extend(
            known
                .into_iter()
                .filter(|b| !self.inner.config.bootstrap.contains(b)),
        );
        let mut last_error = None;
        for address in &candidates {
            match self.open(address).await {
                Ok(conn) => {
                    self.state().bootstrap = Some(Arc::clone(&conn));
                    return Ok(conn);
                }
                // Wrong credentials or certificates fail the same on every broker: say so now.
                Err(e) if !e.is_connect_failure() => return Err(e),
                Err(e) => {
                    tracing::debug!(broker = %address, error = %e, "bootstrap broker unreachable");
                    last_error = Some(e);
                }
            }
        }
        Err(Error::NoBrokerReachable {
            brokers: self.inner.config.bootstrap.join(","),
            last_error: Box::new(last_error.unwrap_or_else(|| {
                Error::InvalidArgument("no broker addresses known".to_string())
            })),
        })
    }

    /// A live connection to broker `node_id` (learnt from metadata).
    pub async fn broker(&self, node_id: i32) -> Result<Arc<Connection>> {
        let address = {
            let state = self.state();
            if let Some(conn) = state.connections.get(&node_id).filter(|c| !c.is_closed()) {
                return Ok(Arc::clone(conn));
            }
            state
                .brokers
                .get(&node_id)
                .cloned()
                .ok_or(Error::UnknownBroker { node_id })?
        };
        let conn = self.open(&address).await?;
        self.state().connections.insert(node_id, Arc::clone(&conn));
        Ok(conn)
    }

    /// The controller if metadata names a live broker as controller, else any broker.
    pub async fn controller(&self) -> Result<Arc<Connection>> {
        let controller = {
            let state = self.state();
            state
                .controller_id
                .filter(|id| state.brokers.contains_key(id))
        };
        match controller {
            Some(id) => match self.broker(id).await {
                Ok(conn) => Ok(conn),
                Err(e) if e.is_retriable() => self.any_broker().await,
                Err(e) => Err(e),
            },
            None => self.any_broker().await,
        }
    }

    /// Sends Metadata for `topics` (`None`: all topics; `Some(&[])`: brokers only) and
    /// updates the broker table. `allow_auto_create` asks the broker to create missing
    /// topics (as producers do).
    pub async fn metadata(
        &self,
        topics: Option<&[String]>,
        allow_auto_create: bool,
    ) -> Result<ClusterMetadata> {
        let conn = self.any_broker().await?;
        let version = conn.version::<MetadataRequest>()?;
        let topics = match topics {
            // v0 has no null array: an empty one means all topics.
            None if version == 0 => Some(Vec::new()),
            None => None,
            Some([]) if version == 0 => {
                return Err(Error::UnsupportedApi {
                    broker: conn.broker().to_string(),
                    api: kafka_protocol::messages::ApiKey::Metadata,
                    client_min: 1,
                    client_max: 13,
                    broker_versions: "0..=0".to_string(),
                });
            }
            Some(names) => Some(
                names
                    .iter()
                    .map(|name| {
                        MetadataRequestTopic::default()
                            .with_name(Some(TopicName(StrBytes::from_string(name.clone()))))
                    })
                    .collect(),
            ),
        };
        let request = MetadataRequest::default()
            .with_topics(topics)
            // Before v4 the broker decides; the field must keep its default there.
            .with_allow_auto_topic_creation(allow_auto_create || version < 4);
        let response = conn.send(&request, version).await?;

        let metadata = ClusterMetadata {
            cluster_id: response.cluster_id.map(|s| s.to_string()),
            controller_id: response.controller_id.0,
            brokers: response
                .brokers
                .into_iter()
                .map(|b| BrokerMetadata {
                    node_id: b.node_id.0,
                    host: b.host.to_string(),
                    port: b.port,
                    rack: b.rack.map(|r| r.to_string()),
                })
                .collect(),
            topics: response
                .topics
                .into_iter()
                .map(|t| {
                    let mut partitions: Vec<PartitionMetadata> = t
                        .partitions
                        .into_iter()
                        .map(|p| PartitionMetadata {
                            partition: p.partition_index,
                            leader: p.leader_id.0,
                            leader_epoch: p.leader_epoch,
                            replicas: p.replica_nodes.into_iter().map(|n| n.0).collect(),
                            isr: p.isr_nodes.into_iter().map(|n| n.0).collect(),
                            offline_replicas: p.offline_replicas.into_iter().map(|n| n.0).collect(),
                            error: KafkaError::from_code(p.error_code, None),
                        })
                        .collect();
                    partitions.sort_by_key(|p| p.partition);
                    TopicMetadata {
                        name: t.name.map(|n| n.0.to_string()).unwrap_or_default(),
                        topic_id: t.topic_id,
                        is_internal: t.is_internal,
                        partitions,
                        error: KafkaError::from_code(t.error_code, None),
                    }
                })
                .collect(),
        };
        {
            let mut state = self.state();
            state.brokers = metadata
                .brokers
                .iter()
                .map(|b| (b.node_id, broker_address(&b.host, b.port)))
                .collect();
            state.controller_id = (metadata.controller_id >= 0).then_some(metadata.controller_id);
            // Drop connections to brokers that left or moved.
            let brokers = state.brokers.clone();
            state
                .connections
                .retain(|id, conn| brokers.get(id).is_some_and(|a| a == conn.broker()));
        }
        Ok(metadata)
    }

    /// Metadata of one topic, waiting (up to the request timeout) while the cluster reports
    /// it as still being created (LEADER_NOT_AVAILABLE, no partitions, or no leader at all).
    pub async fn topic_metadata(
        &self,
        topic: &str,
        allow_auto_create: bool,
    ) -> Result<TopicMetadata> {
        let start = tokio::time::Instant::now();
        let deadline = start + self.inner.config.timeouts.request;
        let mut backoff = Duration::from_millis(50);
        loop {
            let metadata = self
                .metadata(Some(&[topic.to_string()]), allow_auto_create)
                .await?;
            let Some(found) = metadata.topics.into_iter().find(|t| t.name == topic) else {
                return Err(Error::UnknownTopic {
                    topic: topic.to_string(),
                });
            };
            let error = match &found.error {
                Some(e) if e.code == code::UNKNOWN_TOPIC_OR_PARTITION && !allow_auto_create => {
                    return Err(Error::UnknownTopic {
                        topic: topic.to_string(),
                    });
                }
                // A broker that creates topics on request answers LEADER_NOT_AVAILABLE while it
                // does; UNKNOWN_TOPIC_OR_PARTITION means it will not. A short grace covers a
                // topic created a moment ago on another broker.
                Some(e)
                    if e.code == code::UNKNOWN_TOPIC_OR_PARTITION
                        && start.elapsed() >= AUTO_CREATE_GRACE =>
                {
                    return Err(Error::TopicNotAutoCreated {
                        topic: topic.to_string(),
                    });
                }
                Some(e) if e.is_retriable() => Error::Kafka {
                    context: format!("metadata of topic {topic:?}"),
                    error: e.clone(),
                },
                Some(e) => {
                    return Err(Error::Kafka {
                        context: format!("metadata of topic {topic:?}"),
                        error: e.clone(),
                    });
                }
                // A topic being created has no partitions or no leaders yet. A topic with some
                // leaders is usable now: callers see NoLeader for the others.
                None if found.partitions.is_empty() => Error::UnknownTopic {
                    topic: topic.to_string(),
                },
                None if found.partitions.iter().all(|p| p.leader < 0) => Error::NoLeader {
                    topic: topic.to_string(),
                    partition: found.partitions[0].partition,
                },
                None => return Ok(found),
            };
            if tokio::time::Instant::now() + backoff > deadline {
                return Err(error);
            }
            tracing::debug!(topic, error = %error, "waiting for topic metadata");
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_secs(1));
        }
    }

    /// Forgets the connection to `node_id` (after it failed).
    pub fn drop_connection(&self, node_id: i32) {
        self.state().connections.remove(&node_id);
    }
}

/// `HOST:PORT`, bracketing IPv6 literals.
pub(crate) fn broker_address(host: &str, port: i32) -> String {
    if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broker_addresses_are_checked() {
        assert!(validate_broker_address("localhost:9092").is_ok());
        assert!(validate_broker_address("[::1]:9092").is_ok());
        assert!(validate_broker_address("localhost").is_err());
        assert!(validate_broker_address(":9092").is_err());
        assert!(validate_broker_address("host:99999").is_err());
    }

    #[test]
    fn ipv6_hosts_are_bracketed() {
        assert_eq!(broker_address("::1", 9092), "[::1]:9092");
        assert_eq!(broker_address("b1", 9092), "b1:9092");
    }
}
