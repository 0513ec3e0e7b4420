//! The process's log filter as runtime log levels (Kafka's broker loggers, KIP-412): the
//! binary that sets up logging installs a reload function once; the broker's BROKER_LOGGER
//! requests then list and change levels through [`LogLevels`].
//!
//! The filter is the configured one (`--log`, e.g. `info` or `spate_broker=debug,info`) with
//! the levels set at runtime laid over it: a logger's level replaces the directive for that
//! target, `root` replaces the default level. Nothing is persisted, as in Kafka.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, OnceLock};

/// Rebuilds the process's filter from directives (`info,spate_broker=debug`).
pub type Reload = Box<dyn Fn(&str) -> Result<(), String> + Send + Sync>;

/// Crates whose targets are loggers of this binary.
const CRATES: &[&str] = &[
    "spate",
    "spate_auth",
    "spate_broker",
    "spate_cli",
    "spate_client",
    "spate_log",
    "spate_protocol",
    "spate_registry",
    "spate_schema",
    "spate_server",
];

static INSTALLED: OnceLock<Arc<LogLevels>> = OnceLock::new();

/// Installs the reload function for the filter built from `directives`; later calls do nothing.
pub fn install(directives: &str, reload: Reload) {
    let _ = INSTALLED.set(Arc::new(LogLevels::new(directives, reload)));
}

/// The installed log levels, if the binary installed them.
pub fn installed() -> Option<Arc<dyn spate_broker::LogLevels>> {
    INSTALLED
        .get()
        .map(|levels| Arc::clone(levels) as Arc<dyn spate_broker::LogLevels>)
}

/// The configured directives and the levels set at runtime.
pub struct LogLevels {
    /// (target or `None` for the default, level), as configured.
    base: Vec<(Option<String>, String)>,
    /// Levels set at runtime: logger → Kafka level name.
    overrides: Mutex<BTreeMap<String, String>>,
    reload: Reload,
}

impl LogLevels {
    /// Levels over the configured `directives`, applied through `reload`.
    pub fn new(directives: &str, reload: Reload) -> LogLevels {
        let base = directives
            .split(',')
            .map(str::trim)
            .filter(|d| !d.is_empty())
            .map(|d| match d.split_once('=') {
                Some((target, level)) => {
                    (Some(target.trim().to_string()), level.trim().to_string())
                }
                None => (None, d.to_string()),
            })
            .collect();
        LogLevels {
            base,
            overrides: Mutex::default(),
            reload,
        }
    }

    fn root_level(&self, overrides: &BTreeMap<String, String>) -> String {
        overrides
            .get(spate_broker::loggers::ROOT_LOGGER)
            .cloned()
            .or_else(|| {
                self.base
                    .iter()
                    .rev()
                    .find(|(t, _)| t.is_none())
                    .map(|(_, l)| l.to_ascii_uppercase())
            })
            .unwrap_or_else(|| "ERROR".to_string())
    }

    /// The level of `logger`: the most specific directive whose target is it or its parent.
    fn level_of(&self, logger: &str, overrides: &BTreeMap<String, String>) -> String {
        let mut best: Option<(usize, String)> = None;
        let candidates = self
            .base
            .iter()
            .filter_map(|(t, l)| {
                t.as_ref()
                    .filter(|t| !overrides.contains_key(*t))
                    .map(|t| (t.clone(), l.to_ascii_uppercase()))
            })
            .chain(
                overrides
                    .iter()
                    .filter(|(t, _)| *t != spate_broker::loggers::ROOT_LOGGER)
                    .map(|(t, l)| (t.clone(), l.clone())),
            );
        for (target, level) in candidates {
            let matches = logger == target || logger.starts_with(&format!("{target}::"));
            if matches && best.as_ref().is_none_or(|(len, _)| target.len() >= *len) {
                best = Some((target.len(), level));
            }
        }
        best.map_or_else(|| self.root_level(overrides), |(_, level)| level)
    }

    /// The filter directives for the configured levels with `overrides` laid over them.
    fn directives(&self, overrides: &BTreeMap<String, String>) -> String {
        let tracing_level = |kafka: &str| match kafka {
            "FATAL" => "error".to_string(),
            other => other.to_ascii_lowercase(),
        };
        let mut directives: Vec<String> = Vec::new();
        directives.push(tracing_level(&self.root_level(overrides)));
        for (target, level) in &self.base {
            if let Some(target) = target
                && !overrides.contains_key(target)
            {
                directives.push(format!("{target}={level}"));
            }
        }
        for (target, level) in overrides {
            if target != spate_broker::loggers::ROOT_LOGGER {
                directives.push(format!("{target}={}", tracing_level(level)));
            }
        }
        directives.join(",")
    }
}

impl spate_broker::LogLevels for LogLevels {
    fn loggers(&self) -> Vec<(String, String)> {
        let overrides = self.overrides.lock().unwrap_or_else(|p| p.into_inner());
        let mut names: Vec<String> = CRATES.iter().map(|c| c.to_string()).collect();
        names.extend(self.base.iter().filter_map(|(t, _)| t.clone()));
        names.extend(overrides.keys().cloned());
        names.retain(|n| n != spate_broker::loggers::ROOT_LOGGER);
        names.sort();
        names.dedup();
        let mut loggers = vec![(
            spate_broker::loggers::ROOT_LOGGER.to_string(),
            self.root_level(&overrides),
        )];
        loggers.extend(names.into_iter().map(|n| {
            let level = self.level_of(&n, &overrides);
            (n, level)
        }));
        loggers
    }

    fn exists(&self, name: &str) -> bool {
        let well_formed = name.split("::").all(|segment| {
            !segment.is_empty()
                && segment
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_')
        });
        well_formed
            && name
                .split("::")
                .next()
                .is_some_and(|first| CRATES.contains(&first))
    }

    fn apply(&self, changes: &[(String, Option<String>)]) -> Result<(), String> {
        let mut overrides = self.overrides.lock().unwrap_or_else(|p| p.into_inner());
        let mut next = overrides.clone();
        for (logger, level) in changes {
            match level {
                Some(level) => {
                    next.insert(logger.clone(), level.clone());
                }
                None => {
                    next.remove(logger);
                }
            }
        }
        (self.reload)(&self.directives(&next))?;
        *overrides = next;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use spate_broker::LogLevels as _;

    #[test]
    fn levels_lay_over_the_configured_filter() {
        let seen = Arc::new(Mutex::new(String::new()));
        let record = Arc::clone(&seen);
        let levels = LogLevels::new(
            "info,spate_log=warn",
            Box::new(move |d| {
                *record.lock().expect("lock") = d.to_string();
                Ok(())
            }),
        );
        let loggers: BTreeMap<String, String> = levels.loggers().into_iter().collect();
        assert_eq!(loggers["root"], "INFO");
        assert_eq!(loggers["spate_log"], "WARN");
        assert_eq!(loggers["spate_broker"], "INFO");
        levels
            .apply(&[
                (
                    "spate_broker::groups".to_string(),
                    Some("DEBUG".to_string()),
                ),
                ("root".to_string(), Some("WARN".to_string())),
            ])
            .expect("apply");
        assert_eq!(
            *seen.lock().expect("lock"),
            "warn,spate_log=warn,spate_broker::groups=debug"
        );
        let loggers: BTreeMap<String, String> = levels.loggers().into_iter().collect();
        assert_eq!(loggers["spate_broker::groups"], "DEBUG");
        assert_eq!(loggers["spate_broker"], "WARN");
        levels
            .apply(&[("spate_broker::groups".to_string(), None)])
            .expect("reset");
        assert!(!seen.lock().expect("lock").contains("groups"));
        assert!(levels.exists("spate_broker::groups::consumer"));
        assert!(!levels.exists("kafka.server"));
        assert!(!levels.exists("spate_broker::"));
    }
}
