//! The group of workers (Kafka Connect's `group.id`, `connect-cluster`): every worker joins it
//! with the protocol type `connect`, and the leader spreads connectors and tasks over the
//! members round-robin, as Kafka Connect's eager protocol does. librdkafka offers no custom
//! group protocols, so membership goes through `spate-client`'s [`Membership`]; everything
//! else the worker does goes through librdkafka.
//!
//! The protocol is Spate's own (`spate-1`: JSON metadata and assignments), so Java workers
//! that join the same group id are refused by the coordinator (no common protocol) instead of
//! running the same tasks twice. Rebalancing is eager: before rejoining, a worker stops all its
//! tasks (each commits what it has), so no task ever runs on two workers at once. A worker
//! rejoins when the coordinator says the group is rebalancing, and when the shape of the
//! work (connectors, their task counts, their target states) differs from what the leader
//! assigned, so new connectors and tasks get owners.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use bytes::Bytes;
use serde_json::{Value as Json, json};
use spate_client::{Client, ClientConfig, GroupProtocol, Membership, MembershipConfig};

use crate::herder::Shared;
use crate::store::{ClusterState, TargetState};

/// The protocol type Kafka Connect's workers use.
const PROTOCOL_TYPE: &str = "connect";
/// Spate's assignment protocol within it.
const PROTOCOL: &str = "spate-1";

/// What this worker was given in a generation.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Assignment {
    /// The generation.
    pub generation: i32,
    /// Whether this worker leads.
    pub is_leader: bool,
    /// The leader's REST URL.
    pub leader_url: String,
    /// Connectors this worker runs (computes task configs for, reports status of).
    pub connectors: BTreeSet<String>,
    /// Tasks this worker runs.
    pub tasks: BTreeSet<(String, usize)>,
    /// The shape of the work the leader assigned.
    pub shape: String,
}

/// The connectors, their task counts and target states, as text: equal shapes need no
/// rebalance.
pub fn shape(state: &ClusterState) -> String {
    let entries: Vec<Json> = state
        .connectors
        .keys()
        .map(|name| {
            let tasks = state.tasks.get(name).map_or(0, Vec::len);
            let stopped = state.target_state(name) == TargetState::Stopped;
            json!([name, tasks, stopped])
        })
        .collect();
    Json::Array(entries).to_string()
}

/// The leader's side of the protocol.
struct WorkerProtocol {
    shared: Arc<Shared>,
    url: String,
}

impl GroupProtocol for WorkerProtocol {
    fn protocol_type(&self) -> &str {
        PROTOCOL_TYPE
    }

    fn protocols(&self) -> Vec<(String, Bytes)> {
        let metadata = json!({ "url": self.url, "worker_id": self.shared.config.worker_id });
        vec![(PROTOCOL.to_string(), Bytes::from(metadata.to_string()))]
    }

    fn assign(&self, _protocol: &str, members: &[(String, Bytes)]) -> BTreeMap<String, Bytes> {
        let state = self.shared.state.lock().clone();
        let mut ids: Vec<&str> = members.iter().map(|(id, _)| id.as_str()).collect();
        ids.sort_unstable();
        let leader_url = self.url.clone();
        let work_shape = shape(&state);
        let mut connectors: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
        let mut tasks: BTreeMap<&str, Vec<Json>> = BTreeMap::new();
        let mut next = 0;
        for name in state.connectors.keys() {
            connectors
                .entry(ids[next % ids.len()])
                .or_default()
                .push(name);
            next += 1;
        }
        for name in state.connectors.keys() {
            if state.target_state(name) == TargetState::Stopped {
                continue;
            }
            for task in 0..state.tasks.get(name).map_or(0, Vec::len) {
                tasks
                    .entry(ids[next % ids.len()])
                    .or_default()
                    .push(json!([name, task]));
                next += 1;
            }
        }
        ids.iter()
            .map(|id| {
                let assignment = json!({
                    "leader_url": leader_url,
                    "shape": work_shape,
                    "connectors": connectors.get(id).cloned().unwrap_or_default(),
                    "tasks": tasks.get(id).cloned().unwrap_or_default(),
                });
                (id.to_string(), Bytes::from(assignment.to_string()))
            })
            .collect()
    }
}

fn decode(generation: &spate_client::Generation) -> Assignment {
    let json: Json = serde_json::from_slice(&generation.data).unwrap_or(Json::Null);
    let connectors = json["connectors"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|c| c.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    let tasks = json["tasks"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|t| Some((t[0].as_str()?.to_string(), t[1].as_u64()? as usize)))
                .collect()
        })
        .unwrap_or_default();
    Assignment {
        generation: generation.generation_id,
        is_leader: generation.is_leader,
        leader_url: json["leader_url"].as_str().unwrap_or_default().to_string(),
        connectors,
        tasks,
        shape: json["shape"].as_str().unwrap_or_default().to_string(),
    }
}

/// A spate-client configuration from the worker's Kafka settings.
fn client_config(shared: &Shared) -> Result<ClientConfig, String> {
    let props = &shared.config.props;
    let bootstrap: Vec<String> = props
        .get("bootstrap.servers")
        .map(|b| {
            b.split(',')
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
                .collect()
        })
        .unwrap_or_default();
    let mut config = ClientConfig::new(bootstrap);
    config.client_id = format!("connect-worker-{}", shared.config.worker_id);
    let protocol = props
        .get("security.protocol")
        .map_or("PLAINTEXT", String::as_str);
    config.security.protocol = protocol
        .parse()
        .map_err(|e| format!("security.protocol: {e}"))?;
    if config.security.protocol.uses_sasl() {
        let mechanism = props
            .get("sasl.mechanism")
            .or_else(|| props.get("sasl.mechanisms"))
            .map_or("PLAIN", String::as_str);
        let (username, password) = match (props.get("sasl.username"), props.get("sasl.password")) {
            (Some(u), Some(p)) => (u.clone(), p.clone()),
            _ => props
                .get("sasl.jaas.config")
                .and_then(|j| crate::worker_config::jaas_credentials(j))
                .ok_or("SASL needs sasl.jaas.config (or sasl.username and sasl.password)")?,
        };
        config.security.sasl = Some(spate_client::SaslConfig {
            mechanism: spate_client::SaslMechanism::parse(mechanism)
                .ok_or_else(|| format!("sasl.mechanism {mechanism} is not one Spate knows"))?,
            username,
            password,
        });
    }
    if config.security.protocol.uses_tls() {
        config.security.tls.ca_file = props.get("ssl.ca.location").map(Into::into);
        config.security.tls.cert_file = props.get("ssl.certificate.location").map(Into::into);
        config.security.tls.key_file = props.get("ssl.key.location").map(Into::into);
    }
    Ok(config)
}

/// The membership thread: join, heartbeat, and on every rebalance stop all tasks before
/// joining again. Ends when the worker stops (leaving the group).
pub fn run(shared: Arc<Shared>, url: String) {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            tracing::error!("connect worker group: cannot start a runtime: {e}");
            return;
        }
    };
    let config = match client_config(&shared) {
        Ok(config) => config,
        Err(e) => {
            tracing::error!("connect worker group: {e}");
            return;
        }
    };
    let membership_config = MembershipConfig {
        session_timeout: Duration::from_millis(number(&shared, "session.timeout.ms", 10_000)),
        rebalance_timeout: Duration::from_millis(number(&shared, "rebalance.timeout.ms", 60_000)),
        heartbeat_interval: Duration::from_millis(number(&shared, "heartbeat.interval.ms", 3_000)),
        assignors: Vec::new(),
        client_description: format!("spate connect worker {}", shared.config.worker_id),
    };
    let protocol = Arc::new(WorkerProtocol {
        shared: Arc::clone(&shared),
        url,
    });
    let mut member: Option<Membership> = None;
    let mut backoff = Duration::from_millis(100);
    while !shared.stopping.load(Ordering::SeqCst) {
        let joined = member.as_ref().and_then(|m| m.generation().cloned());
        let Some(generation) = joined else {
            shared.release_assignment();
            let result = runtime.block_on(async {
                let client = Client::connect(config.clone()).await?;
                let mut m = Membership::with_protocol(
                    client,
                    &shared.config.group_id,
                    protocol.clone(),
                    membership_config.clone(),
                );
                m.join().await?;
                Ok::<_, spate_client::Error>(m)
            });
            match result {
                Ok(m) => {
                    take_assignment(&shared, &m);
                    member = Some(m);
                    backoff = Duration::from_millis(100);
                }
                Err(e) => {
                    tracing::warn!(group = %shared.config.group_id, "joining the connect worker group failed, retrying: {e}");
                    shared.wait_for_change(backoff);
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                }
            }
            continue;
        };
        let Some(m) = member.as_mut() else { continue };
        // Rejoin when the work changed shape since the leader assigned it.
        let current = shape(&shared.state.lock());
        let assigned_shape = shared.assignment().map(|a| a.shape).unwrap_or_default();
        let mut rejoin = current != assigned_shape;
        if !rejoin && m.heartbeat_due() {
            match runtime.block_on(m.heartbeat()) {
                Ok(true) => {}
                Ok(false) => rejoin = true,
                Err(e) => {
                    tracing::warn!(group = %shared.config.group_id, "connect worker group heartbeat failed: {e}");
                    rejoin = true;
                }
            }
        }
        if rejoin {
            tracing::debug!(
                generation = generation.generation_id,
                "rebalancing the connect worker group"
            );
            shared.release_assignment();
            let mut old = member.take();
            if let Some(m) = old.as_mut() {
                // Rejoin with the same member id: the group rebalances, nobody waits for a
                // session timeout.
                let result = runtime.block_on(m.join());
                match result {
                    Ok(_) => {
                        take_assignment(&shared, m);
                        member = old;
                    }
                    Err(e) => {
                        tracing::warn!(group = %shared.config.group_id, "rejoining the connect worker group failed, retrying: {e}");
                    }
                }
            }
            continue;
        }
        shared.wait_for_change(Duration::from_millis(250));
    }
    shared.release_assignment();
    if let Some(mut m) = member {
        let _ = runtime.block_on(m.leave());
    }
}

/// Takes the assignment of the generation `m` just joined.
fn take_assignment(shared: &Shared, m: &Membership) {
    let assignment = m.generation().map(decode).unwrap_or_default();
    tracing::info!(
        group = %shared.config.group_id,
        generation = assignment.generation,
        leader = assignment.is_leader,
        connectors = assignment.connectors.len(),
        tasks = assignment.tasks.len(),
        "joined the connect worker group"
    );
    shared.metrics.rebalances.fetch_add(1, Ordering::Relaxed);
    shared.set_assignment(assignment);
}

fn number(shared: &Shared, key: &str, default: u64) -> u64 {
    shared
        .config
        .props
        .get(key)
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(default)
}
