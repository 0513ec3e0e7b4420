//! Connector configuration as Kafka Connect takes it: a flat map of string keys to string
//! values, and the problems a validation finds, one per field, in the shape of the
//! `PUT /connector-plugins/{p}/config/validate` answer.

use std::collections::BTreeMap;
use std::ops::RangeInclusive;

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

/// Reads a connector's own keys into its settings, noting a problem per bad key. Missing
/// required keys and values that do not parse as their declared type (`INT`, `BOOLEAN`, ...)
/// are the runtime's to report (`validate.rs`, from the connector's `config_keys`), once; the
/// reader reports what only the connector knows: ranges, choices, empty values, patterns.
pub(crate) struct Reader<'a> {
    props: &'a Props,
    problems: Vec<ConfigProblem>,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(props: &'a Props) -> Reader<'a> {
        Reader {
            props,
            problems: Vec::new(),
        }
    }

    pub(crate) fn problem(&mut self, key: &str, message: impl Into<String>) {
        self.problems.push(ConfigProblem::new(key, message));
    }

    /// The value as given, or `default`.
    pub(crate) fn string(&self, key: &str, default: &str) -> String {
        self.props
            .get(key)
            .cloned()
            .unwrap_or_else(|| default.to_string())
    }

    /// A required non-empty string, trimmed; the runtime reports a missing one, this an empty
    /// one.
    pub(crate) fn required(&mut self, key: &str) -> String {
        let value = self.string(key, "");
        if self.props.contains_key(key) && value.trim().is_empty() {
            self.problem(key, format!("{key} must not be empty"));
        }
        value.trim().to_string()
    }

    /// A number in `range`.
    pub(crate) fn number(&mut self, key: &str, default: i64, range: RangeInclusive<i64>) -> i64 {
        let Some(text) = self.props.get(key) else {
            return default;
        };
        match text.trim().parse::<i64>() {
            Ok(n) if range.contains(&n) => n,
            Ok(n) => {
                self.problem(
                    key,
                    format!(
                        "Invalid value {n} for configuration {key}: must be between {} and {}",
                        range.start(),
                        range.end()
                    ),
                );
                default
            }
            Err(_) => default,
        }
    }

    /// [`Reader::number`] for a count or a duration.
    pub(crate) fn unsigned(&mut self, key: &str, default: u64, range: RangeInclusive<u64>) -> u64 {
        let clamp = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
        self.number(
            key,
            clamp(default),
            clamp(*range.start())..=clamp(*range.end()),
        )
        .unsigned_abs()
    }

    pub(crate) fn boolean(&self, key: &str, default: bool) -> bool {
        self.props
            .get(key)
            .map_or(default, |v| v.trim().eq_ignore_ascii_case("true"))
    }

    /// One of `choices` (case-insensitive); the index of the one chosen.
    pub(crate) fn choice(&mut self, key: &str, default: usize, choices: &[&str]) -> usize {
        let Some(text) = self.props.get(key) else {
            return default;
        };
        match choices
            .iter()
            .position(|c| c.eq_ignore_ascii_case(text.trim()))
        {
            Some(i) => i,
            None => {
                self.problem(
                    key,
                    format!(
                        "Invalid value {text} for configuration {key}: must be one of {}",
                        choices.join(", ")
                    ),
                );
                default
            }
        }
    }

    /// A comma-separated list, trimmed, without empty entries.
    pub(crate) fn list(&self, key: &str) -> Vec<String> {
        self.string(key, "")
            .split(',')
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .collect()
    }

    /// `value`, or every problem noted.
    pub(crate) fn finish<T>(self, value: T) -> Result<T, Vec<ConfigProblem>> {
        if self.problems.is_empty() {
            Ok(value)
        } else {
            Err(self.problems)
        }
    }
}
