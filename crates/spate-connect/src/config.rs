//! Connector configuration as Kafka Connect takes it: a flat map of string keys to string
//! values, and the problems a validation finds, one per field, in the shape of the
//! `PUT /connector-plugins/{p}/config/validate` answer.

use std::collections::BTreeMap;

/// A connector's (or a transform's, a converter's) configuration: string keys to string values.
pub type Props = BTreeMap<String, String>;

/// A problem with one configuration field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigProblem {
    /// The field's full name (`transforms.mask.fields`).
    pub name: String,
    /// What is wrong and what to do, lowercase, no trailing period.
    pub message: String,
}

impl ConfigProblem {
    /// A problem with field `name`.
    pub fn new(name: impl Into<String>, message: impl Into<String>) -> ConfigProblem {
        ConfigProblem {
            name: name.into(),
            message: message.into(),
        }
    }
}

/// Problems as one line, `name: message; name: message`, for a task's or worker's failure.
pub fn describe(problems: &[ConfigProblem]) -> String {
    problems
        .iter()
        .map(|p| format!("{}: {}", p.name, p.message))
        .collect::<Vec<_>>()
        .join("; ")
}

/// The entries of `props` under `prefix`, with the prefix removed (`transforms.x.` → the
/// transform `x`'s own keys).
pub fn sub_props(props: &Props, prefix: &str) -> Props {
    props
        .iter()
        .filter_map(|(k, v)| k.strip_prefix(prefix).map(|k| (k.to_string(), v.clone())))
        .collect()
}
