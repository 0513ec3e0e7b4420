//! The worker's configuration under Kafka Connect's distributed-worker names
//! (`connect-distributed.properties`): the cluster to use, the group of workers, the three
//! internal topics, the default converters, and the client settings passed on to librdkafka.

use std::time::Duration;

use rdkafka::ClientConfig;

use crate::config::{ConfigProblem, Props};

/// Defaults of Kafka Connect's distributed worker (`DistributedConfig`, `WorkerConfig`).
pub mod defaults {
    /// `group.id`
    pub const GROUP_ID: &str = "connect-cluster";
    /// `config.storage.topic`
    pub const CONFIG_TOPIC: &str = "connect-configs";
    /// `offset.storage.topic`
    pub const OFFSET_TOPIC: &str = "connect-offsets";
    /// `status.storage.topic`
    pub const STATUS_TOPIC: &str = "connect-status";
    /// `offset.storage.partitions`
    pub const OFFSET_PARTITIONS: i32 = 25;
    /// `status.storage.partitions`
    pub const STATUS_PARTITIONS: i32 = 5;
    /// `key.converter` and `value.converter` as `connect-distributed.properties` sets them.
    pub const CONVERTER: &str = "org.apache.kafka.connect.json.JsonConverter";
    /// `offset.flush.interval.ms`
    pub const OFFSET_FLUSH_INTERVAL_MS: u64 = 60_000;
}

/// Client settings librdkafka knows under the same name as Java's clients.
pub(crate) const CLIENT_KEYS: &[&str] = &[
    "bootstrap.servers",
    "client.id",
    "security.protocol",
    "sasl.mechanism",
    "sasl.mechanisms",
    "sasl.username",
    "sasl.password",
    "ssl.ca.location",
    "ssl.certificate.location",
    "ssl.key.location",
    "ssl.key.password",
    "ssl.endpoint.identification.algorithm",
    "enable.ssl.certificate.verification",
    "client.rack",
];

/// A worker's configuration.
#[derive(Debug, Clone)]
pub struct WorkerConfig {
    /// Every property as given (the worker's and the clients').
    pub props: Props,
    /// `group.id`.
    pub group_id: String,
    /// `config.storage.topic`.
    pub config_topic: String,
    /// `offset.storage.topic`.
    pub offset_topic: String,
    /// `status.storage.topic`.
    pub status_topic: String,
    /// `offset.storage.partitions`.
    pub offset_partitions: i32,
    /// `status.storage.partitions`.
    pub status_partitions: i32,
    /// Replication factor of the internal topics (`-1`: the cluster's default).
    pub replication_factor: i32,
    /// How often source offsets are written and sink offsets committed.
    pub offset_flush_interval: Duration,
    /// This worker's id as statuses report it (`host:port` of its REST listener).
    pub worker_id: String,
}

impl WorkerConfig {
    /// A configuration from worker properties; `worker_id` names this worker in statuses.
    pub fn from_props(props: Props, worker_id: &str) -> Result<WorkerConfig, Vec<ConfigProblem>> {
        let mut problems = Vec::new();
        if props
            .get("bootstrap.servers")
            .is_none_or(|s| s.trim().is_empty())
        {
            problems.push(ConfigProblem::new(
                "bootstrap.servers",
                "missing required configuration \"bootstrap.servers\" which has no default value",
            ));
        }
        let text = |key: &str, default: &str| {
            props
                .get(key)
                .cloned()
                .unwrap_or_else(|| default.to_string())
        };
        let mut number = |key: &str, default: i64| -> i64 {
            match props.get(key) {
                None => default,
                Some(v) => v.trim().parse().unwrap_or_else(|_| {
                    problems.push(ConfigProblem::new(
                        key,
                        format!("invalid value {v} for configuration {key}: not a number"),
                    ));
                    default
                }),
            }
        };
        let offset_partitions = number(
            "offset.storage.partitions",
            defaults::OFFSET_PARTITIONS.into(),
        );
        let status_partitions = number(
            "status.storage.partitions",
            defaults::STATUS_PARTITIONS.into(),
        );
        let replication_factor = number("config.storage.replication.factor", -1);
        let flush_ms = number(
            "offset.flush.interval.ms",
            defaults::OFFSET_FLUSH_INTERVAL_MS as i64,
        );
        let config = WorkerConfig {
            group_id: text("group.id", defaults::GROUP_ID),
            config_topic: text("config.storage.topic", defaults::CONFIG_TOPIC),
            offset_topic: text("offset.storage.topic", defaults::OFFSET_TOPIC),
            status_topic: text("status.storage.topic", defaults::STATUS_TOPIC),
            offset_partitions: offset_partitions.clamp(1, 10_000) as i32,
            status_partitions: status_partitions.clamp(1, 10_000) as i32,
            replication_factor: replication_factor.clamp(-1, 100) as i32,
            offset_flush_interval: Duration::from_millis(flush_ms.clamp(1, 3_600_000) as u64),
            worker_id: worker_id.to_string(),
            props,
        };
        if problems.is_empty() {
            Ok(config)
        } else {
            Err(problems)
        }
    }

    /// The worker-level default of a connector setting such as `key.converter`.
    pub fn connector_default(&self, key: &str) -> Option<&str> {
        self.props.get(key).map(String::as_str)
    }

    /// A librdkafka configuration with the cluster and security settings, plus the
    /// properties under `prefix` (`producer.`, `consumer.`, `admin.`) with the prefix removed.
    pub fn client(&self, prefix: &str) -> ClientConfig {
        let mut config = ClientConfig::new();
        for (key, value) in &self.props {
            if CLIENT_KEYS.contains(&key.as_str()) {
                let key = if key == "sasl.mechanism" {
                    "sasl.mechanisms"
                } else {
                    key
                };
                config.set(key, value);
            }
        }
        if let Some((user, password)) = self
            .props
            .get("sasl.jaas.config")
            .and_then(|j| jaas_credentials(j))
        {
            config.set("sasl.username", user);
            config.set("sasl.password", password);
        }
        // Prefixed, the worker group's own names are the clients' settings (Kafka Connect's
        // `consumer.session.timeout.ms` is its sink consumers'); only `group.id` is the
        // runtime's to set.
        for (key, value) in &self.props {
            if let Some(key) = key.strip_prefix(prefix)
                && key != "group.id"
            {
                config.set(key, value);
            }
        }
        config
    }
}

/// The `username` and `password` of a Java `sasl.jaas.config` for PLAIN or SCRAM
/// (`org.apache.kafka.common.security.plain.PlainLoginModule required username="u" password="p";`).
pub fn jaas_credentials(jaas: &str) -> Option<(String, String)> {
    let field = |name: &str| {
        let start = jaas.find(&format!("{name}=\""))? + name.len() + 2;
        let end = jaas[start..].find('"')? + start;
        Some(jaas[start..end].to_string())
    };
    Some((field("username")?, field("password")?))
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

    #[test]
    fn defaults_are_kafka_connects() {
        let config = WorkerConfig::from_props(props(&[("bootstrap.servers", "b:9092")]), "w:8083")
            .expect("valid");
        assert_eq!(config.group_id, "connect-cluster");
        assert_eq!(config.config_topic, "connect-configs");
        assert_eq!(config.offset_topic, "connect-offsets");
        assert_eq!(config.status_topic, "connect-status");
        assert_eq!(config.offset_partitions, 25);
        assert_eq!(config.status_partitions, 5);
    }

    #[test]
    fn missing_bootstrap_and_bad_numbers_are_named() {
        let problems = WorkerConfig::from_props(props(&[("offset.storage.partitions", "x")]), "w")
            .expect_err("invalid");
        let names: Vec<_> = problems.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["bootstrap.servers", "offset.storage.partitions"]);
    }

    #[test]
    fn jaas_config_gives_librdkafka_credentials() {
        let jaas = r#"org.apache.kafka.common.security.scram.ScramLoginModule required username="alice" password="s3cr=t";"#;
        assert_eq!(
            jaas_credentials(jaas),
            Some(("alice".to_string(), "s3cr=t".to_string()))
        );
    }
}
