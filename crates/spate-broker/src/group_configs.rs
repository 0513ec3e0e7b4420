//! Group configs (config resource type GROUP, KIP-848): per-group overrides of the
//! coordinator's session timeout and heartbeat interval, with Kafka 4's names, types, bounds
//! and messages (`GroupConfig`). They are stored with the dynamic broker configs in
//! `__cluster_configs` (see `dynamic.rs`) and read by the KIP-848 coordinator on every
//! heartbeat, so a change applies to the group's next heartbeat. The `share.*` configs are
//! accepted, validated and described like Kafka's; Spate has no share groups, so they have no
//! effect, and their documentation says so.

use std::collections::BTreeMap;
use std::sync::Arc;

use spate_log::config::ConfigType;

use crate::Broker;
use crate::dynamic::{RESOURCE_GROUP, Refusal, apply_ops, check_ops, diff};

/// One group config.
#[derive(Debug, Clone, Copy)]
pub(crate) struct GroupConfigDef {
    pub name: &'static str,
    pub kind: ConfigType,
    pub doc: &'static str,
    /// The broker config that sets its default (`group.` + name), if Kafka has one.
    pub broker_config: Option<&'static str>,
    /// Smallest value (Kafka's `atLeast`), for integers.
    pub at_least: i64,
}

/// Kafka 4.x's group configs, sorted by name.
pub(crate) const GROUP_CONFIGS: &[GroupConfigDef] = &[
    GroupConfigDef {
        name: "consumer.heartbeat.interval.ms",
        kind: ConfigType::Int,
        doc: "how often members of this consumer group (group.protocol=consumer) are told to heartbeat",
        broker_config: Some("group.consumer.heartbeat.interval.ms"),
        at_least: 1,
    },
    GroupConfigDef {
        name: "consumer.session.timeout.ms",
        kind: ConfigType::Int,
        doc: "how long a member of this consumer group may go without a heartbeat before it is removed",
        broker_config: Some("group.consumer.session.timeout.ms"),
        at_least: 1,
    },
    GroupConfigDef {
        name: "share.auto.offset.reset",
        kind: ConfigType::String,
        doc: "no effect on Spate: there are no share groups (Kafka: where a share group starts reading, latest or earliest)",
        broker_config: None,
        at_least: 0,
    },
    GroupConfigDef {
        name: "share.heartbeat.interval.ms",
        kind: ConfigType::Int,
        doc: "no effect on Spate: there are no share groups (Kafka: heartbeat interval of share group members)",
        broker_config: Some("group.share.heartbeat.interval.ms"),
        at_least: 1,
    },
    GroupConfigDef {
        name: "share.record.lock.duration.ms",
        kind: ConfigType::Int,
        doc: "no effect on Spate: there are no share groups (Kafka: how long a share group member holds a record)",
        broker_config: Some("group.share.record.lock.duration.ms"),
        at_least: 1000,
    },
    GroupConfigDef {
        name: "share.session.timeout.ms",
        kind: ConfigType::Int,
        doc: "no effect on Spate: there are no share groups (Kafka: session timeout of share group members)",
        broker_config: Some("group.share.session.timeout.ms"),
        at_least: 1,
    },
];

/// Looks up a group config by name.
pub(crate) fn group_config_def(name: &str) -> Option<&'static GroupConfigDef> {
    GROUP_CONFIGS.iter().find(|d| d.name == name)
}

/// The broker-side bounds and defaults group configs are checked against (Kafka's
/// `group.consumer.*` and `group.share.*` broker configs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupConfigBounds {
    /// `group.consumer.session.timeout.ms`, the default.
    pub consumer_session_timeout_ms: i32,
    /// `group.consumer.min.session.timeout.ms`.
    pub consumer_min_session_timeout_ms: i32,
    /// `group.consumer.max.session.timeout.ms`.
    pub consumer_max_session_timeout_ms: i32,
    /// `group.consumer.heartbeat.interval.ms`, the default.
    pub consumer_heartbeat_interval_ms: i32,
    /// `group.consumer.min.heartbeat.interval.ms`.
    pub consumer_min_heartbeat_interval_ms: i32,
    /// `group.consumer.max.heartbeat.interval.ms`.
    pub consumer_max_heartbeat_interval_ms: i32,
}

impl Default for GroupConfigBounds {
    fn default() -> GroupConfigBounds {
        GroupConfigBounds {
            consumer_session_timeout_ms: 45_000,
            consumer_min_session_timeout_ms: 45_000,
            consumer_max_session_timeout_ms: 60_000,
            consumer_heartbeat_interval_ms: 1_000,
            consumer_min_heartbeat_interval_ms: 1_000,
            consumer_max_heartbeat_interval_ms: 15_000,
        }
    }
}

/// Kafka's share group broker defaults and bounds (Spate has no share groups; these only
/// check values as Kafka would).
const SHARE_SESSION_TIMEOUT_MS: (i64, i64, i64) = (45_000, 45_000, 60_000);
const SHARE_HEARTBEAT_INTERVAL_MS: (i64, i64, i64) = (5_000, 5_000, 15_000);
const SHARE_RECORD_LOCK_DURATION_MS: (i64, i64, i64) = (30_000, 15_000, 60_000);

impl GroupConfigBounds {
    /// A group config's broker default.
    pub(crate) fn default_of(&self, name: &str) -> String {
        match name {
            "consumer.session.timeout.ms" => self.consumer_session_timeout_ms.to_string(),
            "consumer.heartbeat.interval.ms" => self.consumer_heartbeat_interval_ms.to_string(),
            "share.session.timeout.ms" => SHARE_SESSION_TIMEOUT_MS.0.to_string(),
            "share.heartbeat.interval.ms" => SHARE_HEARTBEAT_INTERVAL_MS.0.to_string(),
            "share.record.lock.duration.ms" => SHARE_RECORD_LOCK_DURATION_MS.0.to_string(),
            "share.auto.offset.reset" => "latest".to_string(),
            _ => String::new(),
        }
    }

    /// Kafka's `GroupConfig.validate`: names, types, ranges, then the broker bounds.
    pub(crate) fn validate(&self, configs: &BTreeMap<String, String>) -> Result<(), Refusal> {
        let mut ints: BTreeMap<&str, i64> = BTreeMap::new();
        for def in GROUP_CONFIGS {
            let value = configs
                .get(def.name)
                .cloned()
                .unwrap_or_else(|| self.default_of(def.name));
            let bad = |reason: &str| {
                Refusal::config(format!(
                    "Invalid value {value} for configuration {}: {reason}",
                    def.name
                ))
            };
            match def.kind {
                ConfigType::Int => {
                    let parsed = value
                        .trim()
                        .parse::<i32>()
                        .map_err(|_| bad("Not a number of type INT"))?;
                    if i64::from(parsed) < def.at_least {
                        return Err(bad(&format!("Value must be at least {}", def.at_least)));
                    }
                    ints.insert(def.name, i64::from(parsed));
                }
                _ => {
                    if !["latest", "earliest"].contains(&value.trim()) {
                        return Err(bad("String must be one of: latest, earliest"));
                    }
                }
            }
        }
        if let Some(name) = configs.keys().find(|n| group_config_def(n).is_none()) {
            return Err(Refusal::config(format!(
                "Unknown group config name: {name}"
            )));
        }
        let bound = |name: &str, value: i64, min: (i64, &str), max: (i64, &str)| {
            if value < min.0 {
                return Err(Refusal::config(format!(
                    "{name} must be greater than or equal to {}",
                    min.1
                )));
            }
            if value > max.0 {
                return Err(Refusal::config(format!(
                    "{name} must be less than or equal to {}",
                    max.1
                )));
            }
            Ok(())
        };
        let heartbeat = ints["consumer.heartbeat.interval.ms"];
        let session = ints["consumer.session.timeout.ms"];
        bound(
            "consumer.heartbeat.interval.ms",
            heartbeat,
            (
                i64::from(self.consumer_min_heartbeat_interval_ms),
                "group.consumer.min.heartbeat.interval.ms",
            ),
            (
                i64::from(self.consumer_max_heartbeat_interval_ms),
                "group.consumer.max.heartbeat.interval.ms",
            ),
        )?;
        bound(
            "consumer.session.timeout.ms",
            session,
            (
                i64::from(self.consumer_min_session_timeout_ms),
                "group.consumer.min.session.timeout.ms",
            ),
            (
                i64::from(self.consumer_max_session_timeout_ms),
                "group.consumer.max.session.timeout.ms",
            ),
        )?;
        let share_heartbeat = ints["share.heartbeat.interval.ms"];
        let share_session = ints["share.session.timeout.ms"];
        bound(
            "share.heartbeat.interval.ms",
            share_heartbeat,
            (
                SHARE_HEARTBEAT_INTERVAL_MS.1,
                "group.share.min.heartbeat.interval.ms",
            ),
            (
                SHARE_HEARTBEAT_INTERVAL_MS.2,
                "group.share.max.heartbeat.interval.ms",
            ),
        )?;
        bound(
            "share.session.timeout.ms",
            share_session,
            (
                SHARE_SESSION_TIMEOUT_MS.1,
                "group.share.min.session.timeout.ms",
            ),
            (
                SHARE_SESSION_TIMEOUT_MS.2,
                "group.share.max.session.timeout.ms",
            ),
        )?;
        bound(
            "share.record.lock.duration.ms",
            ints["share.record.lock.duration.ms"],
            (
                SHARE_RECORD_LOCK_DURATION_MS.1,
                "group.share.min.record.lock.duration.ms",
            ),
            (
                SHARE_RECORD_LOCK_DURATION_MS.2,
                "group.share.max.record.lock.duration.ms",
            ),
        )?;
        if session <= heartbeat {
            return Err(Refusal::config(
                "consumer.session.timeout.ms must be greater than consumer.heartbeat.interval.ms",
            ));
        }
        if share_session <= share_heartbeat {
            return Err(Refusal::config(
                "share.session.timeout.ms must be greater than share.heartbeat.interval.ms",
            ));
        }
        Ok(())
    }
}

impl Broker {
    /// A KIP-848 group's session timeout and heartbeat interval: its group configs, else the
    /// broker's defaults.
    pub(crate) fn group_timers(&self, group: &str) -> (i32, i32) {
        let configs = self.dynamic.of(RESOURCE_GROUP, group);
        let settings = &self.options.groups;
        let value = |name: &str, default: i32| {
            configs
                .get(name)
                .and_then(|v| v.trim().parse::<i32>().ok())
                .unwrap_or(default)
        };
        (
            value(
                "consumer.session.timeout.ms",
                settings.consumer_session_timeout_ms,
            ),
            value(
                "consumer.heartbeat.interval.ms",
                settings.consumer_heartbeat_interval_ms,
            ),
        )
    }

    /// The bounds group configs are checked against.
    pub(crate) fn group_config_bounds(&self) -> GroupConfigBounds {
        let settings = &self.options.groups;
        GroupConfigBounds {
            consumer_session_timeout_ms: settings.consumer_session_timeout_ms,
            consumer_min_session_timeout_ms: settings.consumer_min_session_timeout_ms,
            consumer_max_session_timeout_ms: settings.consumer_max_session_timeout_ms,
            consumer_heartbeat_interval_ms: settings.consumer_heartbeat_interval_ms,
            consumer_min_heartbeat_interval_ms: settings.consumer_min_heartbeat_interval_ms,
            consumer_max_heartbeat_interval_ms: settings.consumer_max_heartbeat_interval_ms,
        }
    }

    /// Changes a group's configs: checked whole, stored durably, then applied.
    pub(crate) async fn alter_group_configs(
        self: &Arc<Self>,
        group: &str,
        ops: Option<&[(String, i8, Option<String>)]>,
        replacement: Option<BTreeMap<String, String>>,
        validate_only: bool,
    ) -> Result<Vec<String>, Refusal> {
        if group.is_empty() {
            return Err(Refusal::request("Default group resources are not allowed."));
        }
        if let Some(ops) = ops {
            check_ops(ops)?;
        }
        let _writer = self.dynamic.writer.lock().await;
        let current = self.dynamic.of(RESOURCE_GROUP, group);
        let mut new = replacement.unwrap_or_else(|| current.clone());
        let bounds = self.group_config_bounds();
        if let Some(ops) = ops {
            let kind = |n: &str| group_config_def(n).map(|d| d.kind);
            let value = |n: &str| bounds.default_of(n);
            apply_ops(&mut new, ops, &kind, &value).map_err(|mut r| {
                r.code = kafka_protocol::ResponseError::InvalidConfig;
                r
            })?;
        }
        bounds.validate(&new)?;
        let changes = diff(&current, &new);
        if validate_only || changes.is_empty() {
            return Ok(Vec::new());
        }
        self.store_configs(RESOURCE_GROUP, group, &changes).await?;
        self.replace_dynamic(RESOURCE_GROUP, group, new);
        let described: Vec<String> = changes
            .iter()
            .map(|(k, v)| match v {
                Some(v) => format!("{k}={v}"),
                None => format!("{k} deleted"),
            })
            .collect();
        tracing::info!(group, changes = %described.join(", "), "altered group configs");
        Ok(described)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn group_configs_are_checked_against_the_broker_bounds() {
        let bounds = GroupConfigBounds::default();
        bounds
            .validate(&BTreeMap::new())
            .expect("defaults are valid");
        bounds
            .validate(&map(&[
                ("consumer.heartbeat.interval.ms", "2000"),
                ("consumer.session.timeout.ms", "50000"),
            ]))
            .expect("within bounds");
        for (pairs, message) in [
            (
                vec![("consumer.heartbeat.interval.ms", "500")],
                "consumer.heartbeat.interval.ms must be greater than or equal to group.consumer.min.heartbeat.interval.ms",
            ),
            (
                vec![("consumer.session.timeout.ms", "90000")],
                "consumer.session.timeout.ms must be less than or equal to group.consumer.max.session.timeout.ms",
            ),
            (
                vec![("consumer.session.timeout.ms", "soon")],
                "Invalid value soon for configuration consumer.session.timeout.ms: Not a number of type INT",
            ),
            (
                vec![("no.such.config", "1")],
                "Unknown group config name: no.such.config",
            ),
            (
                vec![("share.auto.offset.reset", "middle")],
                "Invalid value middle for configuration share.auto.offset.reset: String must be one of: latest, earliest",
            ),
        ] {
            let err = bounds.validate(&map(&pairs)).expect_err(message);
            assert_eq!(err.message, message);
            assert_eq!(err.code, kafka_protocol::ResponseError::InvalidConfig);
        }
        let tight = GroupConfigBounds {
            consumer_min_session_timeout_ms: 1_000,
            ..GroupConfigBounds::default()
        };
        let err = tight
            .validate(&map(&[
                ("consumer.session.timeout.ms", "2000"),
                ("consumer.heartbeat.interval.ms", "2000"),
            ]))
            .expect_err("session not above heartbeat");
        assert!(
            err.message
                .contains("must be greater than consumer.heartbeat")
        );
    }
}
