//! KIP-158: a source connector's topics are made with the connector's settings before their
//! first record, as Kafka Connect makes them. `topic.creation.default.replication.factor` and
//! `topic.creation.default.partitions` turn it on (`-1`: the broker's default) when the worker's
//! `topic.creation.enable` (default true) allows; `topic.creation.groups` names more groups, each
//! with `include`/`exclude` regex lists, its own partitions and replication factor; every other
//! `topic.creation.<group>.<name>` is a topic config (`cleanup.policy`, `compression.type`, ...).
//! A topic takes the first named group that includes and does not exclude it, else the default
//! group. A topic that exists is left as it is.

use std::collections::HashSet;
use std::time::Duration;

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::types::RDKafkaErrorCode;
use regex::Regex;

use crate::config::{ConfigProblem, Props};
use crate::plugin::TaskError;

const PREFIX: &str = "topic.creation.";

/// How one group of topics is made.
#[derive(Debug)]
struct Group {
    name: String,
    include: Vec<Regex>,
    exclude: Vec<Regex>,
    partitions: i32,
    replication: i32,
    configs: Vec<(String, String)>,
}

impl Group {
    fn matches(&self, topic: &str) -> bool {
        if self.name == "default" {
            return true;
        }
        self.include.iter().any(|r| r.is_match(topic))
            && !self.exclude.iter().any(|r| r.is_match(topic))
    }
}

/// The groups a connector's config defines, the default last; `None` when its config does not
/// ask for topic creation. Every problem is named by its key.
fn groups(props: &Props) -> Result<Option<Vec<Group>>, Vec<ConfigProblem>> {
    let named: Vec<String> = props
        .get("topic.creation.groups")
        .map(|g| {
            g.split(',')
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
                .collect()
        })
        .unwrap_or_default();
    let default_keys = ["replication.factor", "partitions"]
        .map(|k| props.contains_key(&format!("{PREFIX}default.{k}")));
    if default_keys == [false, false] && named.is_empty() {
        return Ok(None);
    }
    let mut problems = Vec::new();
    for (key, given) in ["replication.factor", "partitions"]
        .iter()
        .zip(default_keys)
    {
        if !given {
            let name = format!("{PREFIX}default.{key}");
            problems.push(ConfigProblem::new(
                &name,
                format!("Missing required configuration \"{name}\" which has no default value."),
            ));
        }
    }
    let mut out = Vec::new();
    for name in named.iter().map(String::as_str).chain(["default"]) {
        let key = |k: &str| format!("{PREFIX}{name}.{k}");
        let mut number = |k: &str, default: i32| -> i32 {
            let full = key(k);
            match props.get(&full).map(|v| v.trim().parse::<i32>()) {
                None => default,
                Some(Ok(n)) if n == -1 || n >= 1 => n,
                _ => {
                    problems.push(ConfigProblem::new(
                        &full,
                        format!(
                            "Invalid value {} for configuration {full}: must be -1 (the broker's default) or at least 1",
                            props.get(&full).map_or("", String::as_str)
                        ),
                    ));
                    default
                }
            }
        };
        let partitions = number("partitions", -1);
        let replication = number("replication.factor", -1);
        let mut regexes = |k: &str| -> Vec<Regex> {
            let full = key(k);
            let mut list = Vec::new();
            for pattern in props
                .get(&full)
                .map(|v| v.split(',').map(str::trim).filter(|p| !p.is_empty()))
                .into_iter()
                .flatten()
            {
                match Regex::new(&format!("^(?:{pattern})$")) {
                    Ok(regex) => list.push(regex),
                    Err(e) => problems.push(ConfigProblem::new(
                        &full,
                        format!("{pattern:?} is not a regular expression: {e}"),
                    )),
                }
            }
            list
        };
        let (include, exclude) = if name == "default" {
            // Takes every topic (see `Group::matches`).
            (Vec::new(), Vec::new())
        } else {
            let (include, exclude) = (regexes("include"), regexes("exclude"));
            if include.is_empty() {
                problems.push(ConfigProblem::new(
                    key("include"),
                    format!(
                        "topic creation group {name} needs {}: the topics it makes",
                        key("include")
                    ),
                ));
            }
            (include, exclude)
        };
        let own = format!("{PREFIX}{name}.");
        let configs = props
            .iter()
            .filter_map(|(k, v)| k.strip_prefix(&own).map(|k| (k.to_string(), v.clone())))
            .filter(|(k, _)| {
                !matches!(
                    k.as_str(),
                    "include" | "exclude" | "partitions" | "replication.factor"
                )
            })
            .collect();
        out.push(Group {
            name: name.to_string(),
            include,
            exclude,
            partitions,
            replication,
            configs,
        });
    }
    if problems.is_empty() {
        Ok(Some(out))
    } else {
        Err(problems)
    }
}

/// The problems in a connector's `topic.creation.*` keys (for validation).
pub fn problems(props: &Props) -> Vec<ConfigProblem> {
    groups(props).err().unwrap_or_default()
}

/// A source task's topic maker: remembers the topics it has made or found.
pub struct TopicCreation {
    groups: Vec<Group>,
    admin: AdminClient<DefaultClientContext>,
    known: HashSet<String>,
}

impl TopicCreation {
    /// The maker for a connector's config, or `None` when it (or the worker's
    /// `topic.creation.enable`) does not ask for one.
    pub fn new(
        props: &Props,
        worker: &Props,
        admin: &ClientConfig,
    ) -> Result<Option<TopicCreation>, TaskError> {
        if worker
            .get("topic.creation.enable")
            .is_some_and(|v| v.trim().eq_ignore_ascii_case("false"))
        {
            return Ok(None);
        }
        let groups = match groups(props) {
            Ok(Some(groups)) => groups,
            Ok(None) => return Ok(None),
            Err(problems) => {
                return Err(TaskError::fatal(format!(
                    "invalid config: {}",
                    crate::config::describe(&problems)
                )));
            }
        };
        let admin = admin
            .create()
            .map_err(|e| TaskError::fatal(format!("creating the admin client: {e}")))?;
        Ok(Some(TopicCreation {
            groups,
            admin,
            known: HashSet::new(),
        }))
    }

    /// Makes `topic` unless this task made or found it before.
    pub fn ensure(&mut self, topic: &str) -> Result<(), TaskError> {
        if self.known.contains(topic) {
            return Ok(());
        }
        let group = self
            .groups
            .iter()
            .find(|g| g.matches(topic))
            .ok_or_else(|| TaskError::fatal(format!("no topic creation group for {topic}")))?;
        let mut new = NewTopic::new(
            topic,
            group.partitions,
            TopicReplication::Fixed(group.replication),
        );
        for (name, value) in &group.configs {
            new = new.set(name, value);
        }
        let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(30)));
        let results = futures::executor::block_on(self.admin.create_topics([&new], &options))
            .map_err(|e| TaskError::retriable(format!("creating topic {topic}: {e}")))?;
        for result in results {
            match result {
                Ok(_) => tracing::info!(
                    topic,
                    group = %group.name,
                    partitions = group.partitions,
                    "created the topic for a source connector (topic.creation)"
                ),
                Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
                Err((_, code)) => {
                    return Err(TaskError::fatal(format!(
                        "creating topic {topic} with topic creation group {}: {code}",
                        group.name
                    )));
                }
            }
        }
        self.known.insert(topic.to_string());
        Ok(())
    }
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
    fn groups_match_in_order_with_the_default_last() {
        let groups = groups(&props(&[
            ("topic.creation.groups", "compacted"),
            ("topic.creation.default.replication.factor", "-1"),
            ("topic.creation.default.partitions", "4"),
            (
                "topic.creation.compacted.include",
                "db\\.public\\..*, other",
            ),
            ("topic.creation.compacted.exclude", "db\\.public\\.logs"),
            ("topic.creation.compacted.partitions", "1"),
            ("topic.creation.compacted.cleanup.policy", "compact"),
        ]))
        .expect("valid")
        .expect("enabled");
        let pick = |topic: &str| {
            let group = groups.iter().find(|g| g.matches(topic)).expect("a group");
            (group.name.as_str(), group.partitions)
        };
        assert_eq!(pick("db.public.users"), ("compacted", 1));
        assert_eq!(pick("db.public.logs"), ("default", 4));
        assert_eq!(pick("other"), ("compacted", 1));
        assert_eq!(
            groups[0].configs,
            [("cleanup.policy".to_string(), "compact".to_string())]
        );
        assert!(groups[1].configs.is_empty());
    }

    #[test]
    fn off_unless_asked_and_bad_keys_are_named() {
        assert!(groups(&props(&[])).expect("valid").is_none());
        let problems = problems(&props(&[
            ("topic.creation.default.partitions", "0"),
            ("topic.creation.groups", "g"),
        ]));
        let names: Vec<&str> = problems.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "topic.creation.default.replication.factor",
                "topic.creation.g.include",
                "topic.creation.default.partitions"
            ]
        );
    }
}
