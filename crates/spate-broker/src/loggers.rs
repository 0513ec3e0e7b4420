//! Log levels at runtime (config resource type BROKER_LOGGER, KIP-412), as
//! `kafka-configs --entity-type broker-loggers` uses them: DescribeConfigs lists the loggers
//! with their levels, IncrementalAlterConfigs sets (SET) or resets (DELETE) them.
//!
//! A logger is a tracing target (`spate_broker`, `spate_broker::groups`, ...) or `root`, the
//! level of everything else; levels are Kafka's names (TRACE, DEBUG, INFO, WARN, ERROR, FATAL,
//! where FATAL logs what ERROR does). The broker checks requests with Kafka's rules and
//! messages; the process's log filter is changed through [`LogLevels`], which the binary that
//! set up logging provides. As in Kafka, levels set this way are not persisted: a restart
//! starts from the configured filter again.

use std::sync::Arc;

use crate::Broker;
use crate::dynamic::{OP_APPEND, OP_DELETE, OP_SET, OP_SUBTRACT, Refusal};

/// The root logger's name, as Kafka's.
pub const ROOT_LOGGER: &str = "root";

/// Kafka's valid log levels (`LogLevelConfig.VALID_LOG_LEVELS`).
pub const VALID_LOG_LEVELS: &[&str] = &["FATAL", "ERROR", "WARN", "INFO", "DEBUG", "TRACE"];

/// The process's log filter, changed at runtime.
pub trait LogLevels: Send + Sync {
    /// Every logger with its effective level, `root` first.
    fn loggers(&self) -> Vec<(String, String)>;
    /// Whether a logger of this name exists.
    fn exists(&self, name: &str) -> bool;
    /// Sets (`Some(level)`) or resets (`None`) levels, all or none.
    fn apply(&self, changes: &[(String, Option<String>)]) -> Result<(), String>;
}

impl Broker {
    /// The loggers and their levels, for DescribeConfigs; `None` when this process cannot
    /// change its log filter.
    pub(crate) fn describe_loggers(&self, name: &str) -> Result<Vec<(String, String)>, Refusal> {
        if name.is_empty() {
            return Err(Refusal::request("Broker id must not be empty"));
        }
        self.check_broker_name(name)?;
        Ok(self
            .options
            .log_levels
            .as_ref()
            .map(|levels| levels.loggers())
            .unwrap_or_default())
    }

    /// Checks and applies an IncrementalAlterConfigs on BROKER_LOGGER (Kafka's
    /// `RuntimeLoggerManager`).
    pub(crate) fn alter_loggers(
        self: &Arc<Self>,
        name: &str,
        ops: &[(String, i8, Option<String>)],
        validate_only: bool,
    ) -> Result<Vec<String>, Refusal> {
        self.check_broker_name(name)?;
        if name.is_empty() {
            return Err(Refusal::request("Node id must be an integer, but it is: "));
        }
        crate::dynamic::check_ops(ops)?;
        let Some(levels) = self.options.log_levels.as_ref() else {
            return Err(Refusal::request(
                "this process has no reloadable log filter, so log levels cannot change at runtime",
            ));
        };
        let mut changes = Vec::new();
        for (logger, op, value) in ops {
            let exists = || {
                if logger == ROOT_LOGGER || levels.exists(logger) {
                    Ok(())
                } else {
                    Err(Refusal::config(format!("Logger {logger} does not exist!")))
                }
            };
            match *op {
                OP_SET => {
                    exists()?;
                    let level = value.clone().unwrap_or_default();
                    if !VALID_LOG_LEVELS.contains(&level.as_str()) {
                        return Err(Refusal::config(format!(
                            "Cannot set the log level of {logger} to {level} as it is not a supported log level. Valid log levels are {}",
                            VALID_LOG_LEVELS.join(", ")
                        )));
                    }
                    changes.push((logger.clone(), Some(level)));
                }
                OP_DELETE => {
                    exists()?;
                    if logger == ROOT_LOGGER {
                        return Err(Refusal::request(format!(
                            "Removing the log level of the {ROOT_LOGGER} logger is not allowed"
                        )));
                    }
                    changes.push((logger.clone(), None));
                }
                OP_APPEND => {
                    return Err(Refusal::request(
                        "APPEND operation is not allowed for the BROKER_LOGGER resource",
                    ));
                }
                OP_SUBTRACT => {
                    return Err(Refusal::request(
                        "SUBTRACT operation is not allowed for the BROKER_LOGGER resource",
                    ));
                }
                other => {
                    return Err(Refusal::request(format!(
                        "Unknown operation type {other} is not allowed for the BROKER_LOGGER resource"
                    )));
                }
            }
        }
        if validate_only || changes.is_empty() {
            return Ok(Vec::new());
        }
        levels.apply(&changes).map_err(Refusal::request)?;
        let described: Vec<String> = changes
            .iter()
            .map(|(logger, level)| match level {
                Some(level) => format!("{logger}={level}"),
                None => format!("{logger} reset"),
            })
            .collect();
        tracing::info!(changes = %described.join(", "), "changed log levels");
        Ok(described)
    }
}
