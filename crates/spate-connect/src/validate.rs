//! Validating a connector config as Kafka Connect does: the common keys every connector has
//! (`ConnectorConfig`, `SinkConnectorConfig`, `SourceConnectorConfig`), the converters and the
//! transform chain, then the connector's own keys; and the answer of
//! `PUT /connector-plugins/{p}/config/validate`, one entry per key with its errors.

use serde_json::{Value as Json, json};

use crate::config::{ConfigProblem, Props, sub_props};
use crate::convert;
use crate::plugin::{self, ConfigKey, Connector, ConnectorKind};
use crate::transforms;
use crate::worker_config::WorkerConfig;

/// The keys every connector has.
fn common_keys(kind: Option<ConnectorKind>) -> Vec<ConfigKey> {
    let mut keys = vec![
        ConfigKey::required(
            "name",
            "STRING",
            "Globally unique name to use for this connector.",
        ),
        ConfigKey::required(
            "connector.class",
            "STRING",
            "Name or alias of the class for this connector. Must be a subclass of org.apache.kafka.connect.connector.Connector.",
        ),
        ConfigKey::optional(
            "tasks.max",
            "INT",
            "1",
            "Maximum number of tasks to use for this connector.",
        ),
        ConfigKey::optional(
            "key.converter",
            "CLASS",
            "",
            "Converter class used to convert between Kafka Connect format and the serialized form that is written to Kafka; the worker's when not set.",
        ),
        ConfigKey::optional(
            "value.converter",
            "CLASS",
            "",
            "Converter class used to convert between Kafka Connect format and the serialized form that is written to Kafka; the worker's when not set.",
        ),
        ConfigKey::optional(
            "header.converter",
            "CLASS",
            "",
            "HeaderConverter class used to convert between Kafka Connect format and the serialized form that is written to Kafka.",
        ),
        ConfigKey::optional(
            "transforms",
            "LIST",
            "",
            "Aliases for the transformations to be applied to records.",
        ),
        ConfigKey::optional(
            "predicates",
            "LIST",
            "",
            "Aliases for the predicates used by transformations.",
        ),
        ConfigKey::optional(
            "config.action.reload",
            "STRING",
            "restart",
            "The action that Connect should take on the connector when changes in external configuration providers result in a change in the connector's configuration properties.",
        ),
        ConfigKey::optional(
            "errors.retry.timeout",
            "LONG",
            "0",
            "The maximum duration in milliseconds that a failed operation will be reattempted.",
        ),
        ConfigKey::optional(
            "errors.retry.delay.max.ms",
            "LONG",
            "60000",
            "The maximum duration in milliseconds between consecutive retry attempts.",
        ),
        ConfigKey::optional(
            "errors.tolerance",
            "STRING",
            "none",
            "Behavior for tolerating errors during connector operation: 'none' or 'all'.",
        ),
        ConfigKey::optional(
            "errors.log.enable",
            "BOOLEAN",
            "false",
            "If true, write each error and the details of the failed operation and problematic record to the Connect application log.",
        ),
        ConfigKey::optional(
            "errors.log.include.messages",
            "BOOLEAN",
            "false",
            "Whether to include in the log the Connect record that resulted in a failure.",
        ),
    ];
    match kind {
        Some(ConnectorKind::Sink) => keys.extend([
            ConfigKey::optional("topics", "LIST", "", "List of topics to consume, separated by commas"),
            ConfigKey::optional("topics.regex", "STRING", "", "Regular expression giving topics to consume."),
            ConfigKey::optional("errors.deadletterqueue.topic.name", "STRING", "", "The name of the topic to be used as the dead letter queue (DLQ) for messages that result in an error when processed by this sink connector."),
            ConfigKey::optional("errors.deadletterqueue.topic.replication.factor", "SHORT", "3", "Replication factor used to create the dead letter queue topic when it doesn't already exist."),
            ConfigKey::optional("errors.deadletterqueue.context.headers.enable", "BOOLEAN", "false", "If true, add headers containing error context to the messages written to the dead letter queue."),
        ]),
        Some(ConnectorKind::Source) => keys.extend([
            ConfigKey::optional("exactly.once.support", "STRING", "requested", "Permitted values are requested, required."),
            ConfigKey::optional("transaction.boundary", "STRING", "poll", "Permitted values are: poll, interval, connector."),
            ConfigKey::optional("offsets.storage.topic", "STRING", "", "The name of a separate offsets topic to use for this connector."),
        ]),
        None => {}
    }
    keys
}

fn type_problem(key: &ConfigKey, value: &str) -> Option<String> {
    let ok = match key.kind {
        "INT" | "SHORT" => value.trim().parse::<i32>().is_ok(),
        "LONG" => value.trim().parse::<i64>().is_ok(),
        "DOUBLE" => value.trim().parse::<f64>().is_ok(),
        "BOOLEAN" => matches!(value.trim().to_ascii_lowercase().as_str(), "true" | "false"),
        _ => true,
    };
    (!ok).then(|| {
        format!(
            "Invalid value {value} for configuration {}: Not a number of type {}",
            key.name, key.kind
        )
    })
}

fn unknown_class_problem(class: &str) -> ConfigProblem {
    let available: Vec<_> = plugin::connectors().iter().map(|c| c.class()).collect();
    ConfigProblem::new(
        "connector.class",
        format!(
            "Failed to find any class that implements Connector and which name matches {class}, available connectors are: {}",
            available.join(", ")
        ),
    )
}

/// Every problem with a connector config, common keys first.
pub fn problems(worker: &WorkerConfig, props: &Props) -> Vec<ConfigProblem> {
    let class = props.get("connector.class").cloned().unwrap_or_default();
    let connector = plugin::find_connector(&class);
    let mut problems = Vec::new();
    if class.is_empty() {
        problems.push(ConfigProblem::new(
            "connector.class",
            "Missing required configuration \"connector.class\" which has no default value.",
        ));
    } else if connector.is_none() {
        problems.push(unknown_class_problem(&class));
    }
    let mut keys = common_keys(connector.as_ref().map(|c| c.kind()));
    if let Some(connector) = &connector {
        keys.extend(connector.config_keys());
    }
    for key in &keys {
        match props.get(key.name) {
            None if key.default.is_none() && key.name != "connector.class" => {
                problems.push(ConfigProblem::new(
                    key.name,
                    format!(
                        "Missing required configuration \"{}\" which has no default value.",
                        key.name
                    ),
                ))
            }
            Some(value) => {
                problems.extend(type_problem(key, value).map(|m| ConfigProblem::new(key.name, m)))
            }
            None => {}
        }
    }
    if let Some(tasks) = props
        .get("tasks.max")
        .and_then(|t| t.trim().parse::<i32>().ok())
        && tasks < 1
    {
        problems.push(ConfigProblem::new(
            "tasks.max",
            format!("Invalid value {tasks} for configuration tasks.max: Value must be at least 1"),
        ));
    }
    if let Some(boundary) = props.get("transaction.boundary")
        && boundary != "poll"
    {
        problems.push(ConfigProblem::new(
            "transaction.boundary",
            format!("Spate supports transaction.boundary=poll only, not {boundary}"),
        ));
    }
    let eos = worker
        .props
        .get("exactly.once.source.support")
        .is_some_and(|v| v.eq_ignore_ascii_case("enabled"));
    if props
        .get("exactly.once.support")
        .is_some_and(|v| v == "required")
        && !eos
    {
        problems.push(ConfigProblem::new("exactly.once.support", "This connector requires exactly-once support, but the worker's exactly.once.source.support is not enabled"));
    }
    if let Some(tolerance) = props.get("errors.tolerance")
        && !matches!(tolerance.as_str(), "none" | "all")
    {
        problems.push(ConfigProblem::new("errors.tolerance", format!("Invalid value {tolerance} for configuration errors.tolerance: String must be one of: none, all")));
    }
    for name in ["key.converter", "value.converter"] {
        let (class, settings) = match props.get(name) {
            Some(class) if !class.is_empty() => {
                (class.clone(), sub_props(props, &format!("{name}.")))
            }
            _ => (
                worker
                    .connector_default(name)
                    .unwrap_or(crate::worker_config::defaults::CONVERTER)
                    .to_string(),
                sub_props(&worker.props, &format!("{name}.")),
            ),
        };
        if let Err(found) = convert::converter(&class, &settings, name == "key.converter") {
            problems.extend(found.into_iter().map(|p| {
                let field = if p.name == "converter" || p.name.is_empty() {
                    name.to_string()
                } else if p.name.starts_with(name) {
                    p.name.clone()
                } else {
                    format!("{name}.{}", p.name)
                };
                ConfigProblem::new(field, p.message)
            }));
        }
    }
    if let Err(found) = transforms::chain(props) {
        problems.extend(found);
    }
    if connector
        .as_ref()
        .is_some_and(|c| c.kind() == ConnectorKind::Source)
    {
        problems.extend(crate::topic_creation::problems(props));
    }
    if let Some(connector) = &connector {
        if connector.kind() == ConnectorKind::Sink {
            let topics = props.get("topics").is_some_and(|t| !t.trim().is_empty());
            let regex = props
                .get("topics.regex")
                .is_some_and(|t| !t.trim().is_empty());
            if topics && regex {
                problems.push(ConfigProblem::new(
                    "topics",
                    "topics and topics.regex are mutually exclusive options, but both are set.",
                ));
            } else if !topics && !regex {
                problems.push(ConfigProblem::new(
                    "topics",
                    "Must configure one of topics or topics.regex",
                ));
            }
            if let Some(regex) = props.get("topics.regex").filter(|r| !r.is_empty())
                && let Err(e) = regex::Regex::new(regex)
            {
                problems.push(ConfigProblem::new(
                    "topics.regex",
                    format!("Invalid regex: {e}"),
                ));
            }
        }
        problems.extend(connector.validate(props));
    }
    problems
}

/// The answer of `PUT /connector-plugins/{p}/config/validate` for `props`.
pub fn answer(worker: &WorkerConfig, connector: &dyn Connector, props: &Props) -> Json {
    let problems = problems(worker, props);
    let mut keys = common_keys(Some(connector.kind()));
    let own = connector.config_keys();
    keys.extend(own.iter().cloned());
    let mut groups: Vec<&str> = vec!["Common"];
    if connector.kind() == ConnectorKind::Sink || connector.kind() == ConnectorKind::Source {
        groups.extend(["Transforms", "Predicates", "Error Handling"]);
    }
    let mut configs: Vec<Json> = keys
        .iter()
        .enumerate()
        .map(|(order, key)| {
            let errors: Vec<&str> = problems.iter().filter(|p| p.name == key.name).map(|p| p.message.as_str()).collect();
            json!({
                "definition": definition(key, order),
                "value": {
                    "name": key.name,
                    "value": props.get(key.name).cloned().or_else(|| key.default.filter(|d| !d.is_empty()).map(str::to_string)),
                    "recommended_values": [],
                    "errors": errors,
                    "visible": true,
                },
            })
        })
        .collect();
    // Problems with keys that have no definition here (a transform's own keys) get an entry too.
    for problem in &problems {
        if !keys.iter().any(|k| k.name == problem.name) {
            configs.push(json!({
                "definition": {
                    "name": problem.name, "type": "STRING", "required": false, "default_value": null,
                    "importance": "HIGH", "documentation": "", "group": null, "width": "NONE",
                    "display_name": problem.name, "dependents": [], "order": -1,
                },
                "value": {
                    "name": problem.name, "value": props.get(&problem.name), "recommended_values": [],
                    "errors": [problem.message], "visible": true,
                },
            }));
        }
    }
    json!({
        "name": connector.class(),
        "error_count": problems.len(),
        "groups": groups,
        "configs": configs,
    })
}

/// A key's definition as the REST API shows it.
pub fn definition(key: &ConfigKey, order: usize) -> Json {
    json!({
        "name": key.name,
        "type": key.kind,
        "required": key.default.is_none(),
        "default_value": key.default,
        "importance": key.importance,
        "documentation": key.documentation,
        "group": key.group,
        "width": "NONE",
        "display_name": key.name,
        "dependents": [],
        "order": order,
    })
}

/// The definitions of a connector's keys, common ones first (`GET /connector-plugins/{p}/config`).
pub fn definitions(connector: &dyn Connector) -> Json {
    let mut keys = common_keys(Some(connector.kind()));
    keys.extend(connector.config_keys());
    Json::Array(
        keys.iter()
            .enumerate()
            .map(|(i, k)| definition(k, i))
            .collect(),
    )
}
