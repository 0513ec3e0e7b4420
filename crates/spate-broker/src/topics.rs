//! Topics and their partitions, persisted under `<data-dir>/topics/`.
//!
//! Layout: `topics/<name>/topic.json` (id, partition count, config overrides) and one
//! directory per partition, `topics/<name>/<partition>/`, holding that partition's log.
//! Creation builds the topic under `topics/~creating-<uuid>` and renames it into place;
//! deletion renames it to `topics/~deleted-<uuid>` before removing the files. Both renames are
//! atomic, so a crash leaves a topic either fully there or gone (`~` cannot appear in a topic
//! name, so these never collide with a real topic). Admin operations are serialised by one lock
//! and do blocking file I/O: call them off the async workers.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use parking_lot::{Mutex, RwLock};
use serde::{Deserialize, Serialize};
use spate_log::{Log, LogConfig};
use uuid::Uuid;

use crate::error::BrokerError;

/// Longest topic name Kafka allows.
pub const MAX_TOPIC_NAME_LEN: usize = 249;
/// Topics the broker owns.
pub const INTERNAL_TOPICS: &[&str] = &[
    "__consumer_offsets",
    "__transaction_state",
    "_schemas",
    "__user_credentials",
    "__acls",
    "_audit",
    "__usage",
    "__client_quotas",
    "__cluster_configs",
];
/// Most partitions one topic may have.
pub const MAX_PARTITIONS_PER_TOPIC: i32 = 10_000;

const TOPIC_FILE: &str = "topic.json";
const CREATING_PREFIX: &str = "~creating-";
const DELETED_PREFIX: &str = "~deleted-";

/// One partition of a topic.
#[derive(Debug)]
pub struct Partition {
    /// The topic's name.
    pub topic: String,
    /// Partition index.
    pub index: i32,
    /// Its log.
    pub log: Arc<Log>,
}

#[derive(Debug)]
struct TopicState {
    configs: BTreeMap<String, String>,
    partitions: Vec<Arc<Partition>>,
}

/// A topic: name, id, config overrides and partitions.
#[derive(Debug)]
pub struct Topic {
    /// Name.
    pub name: String,
    /// Topic id (KIP-516).
    pub id: Uuid,
    dir: PathBuf,
    state: RwLock<TopicState>,
}

impl Topic {
    /// Whether the topic is one of the platform's own (`__consumer_offsets`,
    /// `__transaction_state`, the schema registry's `_schemas`): clients may read it but not
    /// write, delete or grow it.
    pub fn is_internal(&self) -> bool {
        INTERNAL_TOPICS.contains(&self.name.as_str())
    }

    /// Number of partitions.
    pub fn partition_count(&self) -> i32 {
        self.state.read().partitions.len() as i32
    }

    /// One partition.
    pub fn partition(&self, index: i32) -> Option<Arc<Partition>> {
        usize::try_from(index)
            .ok()
            .and_then(|i| self.state.read().partitions.get(i).cloned())
    }

    /// Every partition.
    pub fn partitions(&self) -> Vec<Arc<Partition>> {
        self.state.read().partitions.clone()
    }

    /// The topic's config overrides (Kafka names).
    pub fn config_overrides(&self) -> BTreeMap<String, String> {
        self.state.read().configs.clone()
    }
}

#[derive(Debug, Serialize, Deserialize)]
struct TopicFile {
    version: u32,
    name: String,
    id: Uuid,
    partitions: i32,
    configs: BTreeMap<String, String>,
}

#[derive(Debug, Default)]
struct Maps {
    by_name: HashMap<String, Arc<Topic>>,
    by_id: HashMap<Uuid, Arc<Topic>>,
}

/// All topics on this broker.
#[derive(Debug)]
pub struct TopicRegistry {
    root: PathBuf,
    /// Topic config defaults (Kafka topic names): static, overlaid with dynamic broker configs.
    defaults: RwLock<BTreeMap<String, String>>,
    maps: RwLock<Maps>,
    admin: Mutex<()>,
}

/// Checks a topic name the way Kafka does.
pub fn validate_topic_name(name: &str) -> Result<(), BrokerError> {
    let invalid = |reason: &str| BrokerError::InvalidTopic {
        name: name.chars().take(300).collect(),
        reason: reason.to_string(),
    };
    if name.is_empty() {
        return Err(invalid("a topic name cannot be empty"));
    }
    if name == "." || name == ".." {
        return Err(invalid("a topic name cannot be \".\" or \"..\""));
    }
    if name.len() > MAX_TOPIC_NAME_LEN {
        return Err(invalid("a topic name cannot be longer than 249 characters"));
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || b == b'-')
    {
        return Err(invalid(
            "a topic name may contain only ASCII letters, digits, '.', '_' and '-'",
        ));
    }
    Ok(())
}

/// Names that differ only in '.' versus '_' collide in Kafka's metric names.
fn collision_key(name: &str) -> String {
    name.replace('.', "_")
}

impl TopicRegistry {
    /// Opens every topic under `root`, recovering their logs; removes half-created and
    /// half-deleted topics left by a crash.
    pub fn open(
        root: &Path,
        defaults: BTreeMap<String, String>,
        clean_shutdown: bool,
        now_ms: i64,
    ) -> Result<TopicRegistry, BrokerError> {
        let storage = |op: &str, path: &Path, err: std::io::Error| {
            BrokerError::from(spate_log::LogError::Io {
                op: "open topics",
                path: path.to_path_buf(),
                source: std::io::Error::new(err.kind(), format!("{op}: {err}")),
            })
        };
        std::fs::create_dir_all(root).map_err(|e| storage("create", root, e))?;
        LogConfig::resolve(&defaults, &BTreeMap::new()).map_err(|e| {
            BrokerError::InvalidConfig {
                reason: e.to_string(),
            }
        })?;
        let registry = TopicRegistry {
            root: root.to_path_buf(),
            defaults: RwLock::new(defaults),
            maps: RwLock::new(Maps::default()),
            admin: Mutex::new(()),
        };
        let entries = std::fs::read_dir(root).map_err(|e| storage("list", root, e))?;
        let mut maps = Maps::default();
        for entry in entries {
            let entry = entry.map_err(|e| storage("list", root, e))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            let path = entry.path();
            if name.starts_with(CREATING_PREFIX) || name.starts_with(DELETED_PREFIX) {
                tracing::info!(path = %path.display(), "removing a topic left half-created or half-deleted");
                let _ = std::fs::remove_dir_all(&path);
                continue;
            }
            if !path.is_dir() {
                continue;
            }
            let topic = registry.open_topic(&path, clean_shutdown, now_ms)?;
            maps.by_id.insert(topic.id, Arc::clone(&topic));
            maps.by_name.insert(topic.name.clone(), topic);
        }
        *registry.maps.write() = maps;
        Ok(registry)
    }

    fn open_topic(
        &self,
        dir: &Path,
        clean_shutdown: bool,
        now_ms: i64,
    ) -> Result<Arc<Topic>, BrokerError> {
        let file_path = dir.join(TOPIC_FILE);
        let text = std::fs::read_to_string(&file_path).map_err(|e| {
            BrokerError::from(spate_log::LogError::Io {
                op: "read topic metadata",
                path: file_path.clone(),
                source: e,
            })
        })?;
        let file: TopicFile =
            serde_json::from_str(&text).map_err(|e| BrokerError::InvalidConfig {
                reason: format!("corrupt {}: {e}", file_path.display()),
            })?;
        let config = self.log_config(&file.configs)?;
        let mut partitions = Vec::with_capacity(file.partitions.max(0) as usize);
        for index in 0..file.partitions {
            let partition_dir = dir.join(index.to_string());
            let name = format!("{}-{index}", file.name);
            let log = if partition_dir.exists() {
                let (log, report) =
                    Log::open(&partition_dir, name, config.clone(), clean_shutdown, now_ms)?;
                if report.truncated_bytes > 0 {
                    tracing::warn!(
                        topic = %file.name,
                        partition = index,
                        truncated_bytes = report.truncated_bytes,
                        "recovered partition after an unclean shutdown"
                    );
                }
                log
            } else {
                // CreatePartitions crashed after recording the count: create the missing log.
                create_dir(&partition_dir)?;
                Log::create(&partition_dir, name, config.clone(), now_ms)?
            };
            partitions.push(Arc::new(Partition {
                topic: file.name.clone(),
                index,
                log: Arc::new(log),
            }));
        }
        // Partition directories beyond the count are left by a CreatePartitions that crashed
        // before recording the new count.
        if let Ok(entries) = std::fs::read_dir(dir) {
            for entry in entries.flatten() {
                if let Some(index) = entry
                    .file_name()
                    .to_str()
                    .and_then(|n| n.parse::<i32>().ok())
                    && index >= file.partitions
                {
                    let _ = std::fs::remove_dir_all(entry.path());
                }
            }
        }
        Ok(Arc::new(Topic {
            name: file.name,
            id: file.id,
            dir: dir.to_path_buf(),
            state: RwLock::new(TopicState {
                configs: file.configs,
                partitions,
            }),
        }))
    }

    /// The broker-wide topic config defaults (Kafka names).
    pub fn defaults(&self) -> BTreeMap<String, String> {
        self.defaults.read().clone()
    }

    /// Resolves overrides against the broker defaults.
    pub fn log_config(
        &self,
        overrides: &BTreeMap<String, String>,
    ) -> Result<LogConfig, BrokerError> {
        LogConfig::resolve(&self.defaults.read(), overrides).map_err(|e| {
            BrokerError::InvalidConfig {
                reason: e.to_string(),
            }
        })
    }

    /// Checks that new broker-wide defaults resolve, alone and with every topic's overrides.
    pub fn check_defaults(&self, defaults: &BTreeMap<String, String>) -> Result<(), BrokerError> {
        let invalid = |e: spate_log::ConfigError| BrokerError::InvalidConfig {
            reason: e.to_string(),
        };
        LogConfig::resolve(defaults, &BTreeMap::new()).map_err(invalid)?;
        for topic in self.list() {
            LogConfig::resolve(defaults, &topic.config_overrides()).map_err(invalid)?;
        }
        Ok(())
    }

    /// Replaces the broker-wide defaults (a dynamic broker config changed) and applies them to
    /// every partition of every topic at once.
    pub fn set_defaults(&self, defaults: BTreeMap<String, String>) -> Result<(), BrokerError> {
        let _admin = self.admin.lock();
        self.check_defaults(&defaults)?;
        *self.defaults.write() = defaults;
        for topic in self.list() {
            let state = topic.state.read();
            let config = self.log_config(&state.configs)?;
            for partition in &state.partitions {
                partition.log.set_config(config.clone());
            }
        }
        Ok(())
    }

    /// A topic by name.
    pub fn get(&self, name: &str) -> Option<Arc<Topic>> {
        self.maps.read().by_name.get(name).cloned()
    }

    /// A topic by id.
    pub fn get_by_id(&self, id: &Uuid) -> Option<Arc<Topic>> {
        self.maps.read().by_id.get(id).cloned()
    }

    /// Every topic, sorted by name.
    pub fn list(&self) -> Vec<Arc<Topic>> {
        let mut topics: Vec<_> = self.maps.read().by_name.values().cloned().collect();
        topics.sort_by(|a, b| a.name.cmp(&b.name));
        topics
    }

    /// Checks that a topic could be created (name, count, configs), without creating it.
    pub fn check_create(
        &self,
        name: &str,
        partitions: i32,
        configs: &BTreeMap<String, String>,
    ) -> Result<(), BrokerError> {
        validate_topic_name(name)?;
        if !(1..=MAX_PARTITIONS_PER_TOPIC).contains(&partitions) {
            return Err(BrokerError::InvalidPartitions {
                reason: format!(
                    "{partitions} partitions requested; use 1 to {MAX_PARTITIONS_PER_TOPIC}"
                ),
            });
        }
        self.log_config(configs)?;
        let maps = self.maps.read();
        if maps.by_name.contains_key(name) {
            return Err(BrokerError::TopicAlreadyExists {
                name: name.to_string(),
            });
        }
        let key = collision_key(name);
        if let Some(existing) = maps.by_name.keys().find(|n| collision_key(n) == key) {
            return Err(BrokerError::InvalidTopic {
                name: name.to_string(),
                reason: format!(
                    "it collides with existing topic {existing} ('.' and '_' are equivalent in metric names)"
                ),
            });
        }
        Ok(())
    }

    /// Creates a topic. Blocking.
    pub fn create(
        &self,
        name: &str,
        partitions: i32,
        configs: BTreeMap<String, String>,
        now_ms: i64,
    ) -> Result<Arc<Topic>, BrokerError> {
        let _admin = self.admin.lock();
        self.check_create(name, partitions, &configs)?;
        let config = self.log_config(&configs)?;
        let id = Uuid::new_v4();
        let staging = self.root.join(format!("{CREATING_PREFIX}{id}"));
        let final_dir = self.root.join(name);
        let build = || -> Result<(), BrokerError> {
            create_dir(&staging)?;
            for index in 0..partitions {
                create_dir(&staging.join(index.to_string()))?;
            }
            write_topic_file(&staging, name, id, partitions, &configs)?;
            rename_durably(&staging, &final_dir, &self.root)
        };
        if let Err(err) = build() {
            let _ = std::fs::remove_dir_all(&staging);
            return Err(err);
        }
        let mut logs = Vec::with_capacity(partitions as usize);
        for index in 0..partitions {
            let log = Log::create(
                &final_dir.join(index.to_string()),
                format!("{name}-{index}"),
                config.clone(),
                now_ms,
            )?;
            logs.push(Arc::new(Partition {
                topic: name.to_string(),
                index,
                log: Arc::new(log),
            }));
        }
        let topic = Arc::new(Topic {
            name: name.to_string(),
            id,
            dir: final_dir,
            state: RwLock::new(TopicState {
                configs,
                partitions: logs,
            }),
        });
        let mut maps = self.maps.write();
        maps.by_id.insert(id, Arc::clone(&topic));
        maps.by_name.insert(name.to_string(), Arc::clone(&topic));
        tracing::info!(topic = name, partitions, topic_id = %id, "created topic");
        Ok(topic)
    }

    /// Deletes a topic: it disappears at once, its files are removed in the background.
    pub fn delete(&self, name: &str) -> Result<(), BrokerError> {
        let _admin = self.admin.lock();
        let topic = self
            .get(name)
            .ok_or_else(|| BrokerError::UnknownTopicOrPartition {
                name: name.to_string(),
            })?;
        let graveyard = self.root.join(format!("{DELETED_PREFIX}{}", topic.id));
        rename_durably(&topic.dir, &graveyard, &self.root)?;
        {
            let mut maps = self.maps.write();
            maps.by_name.remove(name);
            maps.by_id.remove(&topic.id);
        }
        for partition in topic.partitions() {
            partition.log.mark_deleted();
        }
        std::thread::spawn(move || {
            if let Err(err) = std::fs::remove_dir_all(&graveyard) {
                tracing::warn!(path = %graveyard.display(), error = %err, "could not remove a deleted topic's files");
            }
        });
        tracing::info!(topic = name, topic_id = %topic.id, "deleted topic");
        Ok(())
    }

    /// Grows a topic to `total` partitions. Blocking.
    pub fn add_partitions(
        &self,
        name: &str,
        total: i32,
        validate_only: bool,
        now_ms: i64,
    ) -> Result<(), BrokerError> {
        let _admin = self.admin.lock();
        let topic = self
            .get(name)
            .ok_or_else(|| BrokerError::UnknownTopicOrPartition {
                name: name.to_string(),
            })?;
        let current = topic.partition_count();
        if total <= current {
            return Err(BrokerError::InvalidPartitions {
                reason: format!(
                    "topic {name} has {current} partitions; the new count must be larger, not {total}"
                ),
            });
        }
        if total > MAX_PARTITIONS_PER_TOPIC {
            return Err(BrokerError::InvalidPartitions {
                reason: format!("at most {MAX_PARTITIONS_PER_TOPIC} partitions per topic"),
            });
        }
        if validate_only {
            return Ok(());
        }
        let configs = topic.config_overrides();
        let config = self.log_config(&configs)?;
        let mut added = Vec::new();
        for index in current..total {
            let dir = topic.dir.join(index.to_string());
            if dir.exists() {
                std::fs::remove_dir_all(&dir)
                    .map_err(|e| io_error("remove stale partition", &dir, e))?;
            }
            create_dir(&dir)?;
            let log = Log::create(&dir, format!("{name}-{index}"), config.clone(), now_ms)?;
            added.push(Arc::new(Partition {
                topic: name.to_string(),
                index,
                log: Arc::new(log),
            }));
        }
        write_topic_file(&topic.dir, name, topic.id, total, &configs)?;
        topic.state.write().partitions.extend(added);
        tracing::info!(topic = name, from = current, to = total, "added partitions");
        Ok(())
    }

    /// Replaces a topic's config overrides. Blocking.
    pub fn set_configs(
        &self,
        name: &str,
        configs: BTreeMap<String, String>,
        validate_only: bool,
    ) -> Result<(), BrokerError> {
        let _admin = self.admin.lock();
        let topic = self
            .get(name)
            .ok_or_else(|| BrokerError::UnknownTopicOrPartition {
                name: name.to_string(),
            })?;
        let config = self.log_config(&configs)?;
        if validate_only {
            return Ok(());
        }
        write_topic_file(
            &topic.dir,
            name,
            topic.id,
            topic.partition_count(),
            &configs,
        )?;
        let mut state = topic.state.write();
        for partition in &state.partitions {
            partition.log.set_config(config.clone());
        }
        state.configs = configs;
        tracing::info!(topic = name, "altered topic configs");
        Ok(())
    }
}

fn io_error(op: &'static str, path: &Path, source: std::io::Error) -> BrokerError {
    BrokerError::from(spate_log::LogError::Io {
        op,
        path: path.to_path_buf(),
        source,
    })
}

fn create_dir(path: &Path) -> Result<(), BrokerError> {
    std::fs::create_dir(path).map_err(|e| io_error("create directory", path, e))
}

fn write_topic_file(
    dir: &Path,
    name: &str,
    id: Uuid,
    partitions: i32,
    configs: &BTreeMap<String, String>,
) -> Result<(), BrokerError> {
    let file = TopicFile {
        version: 1,
        name: name.to_string(),
        id,
        partitions,
        configs: configs.clone(),
    };
    let text = serde_json::to_vec_pretty(&file).map_err(|e| BrokerError::InvalidConfig {
        reason: e.to_string(),
    })?;
    spate_log::write_atomic(&dir.join(TOPIC_FILE), &text)?;
    Ok(())
}

fn rename_durably(from: &Path, to: &Path, parent: &Path) -> Result<(), BrokerError> {
    std::fs::rename(from, to).map_err(|e| io_error("rename topic directory", from, e))?;
    spate_log::sync_dir(parent)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_700_000_000_000;

    #[test]
    fn topic_names_follow_kafka_rules() {
        for good in ["a", "orders.v1", "a_b-c", &"x".repeat(249)] {
            assert!(validate_topic_name(good).is_ok(), "{good}");
        }
        for bad in ["", ".", "..", "bad/name", "sp ace", "ü", &"x".repeat(250)] {
            assert!(validate_topic_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn topics_survive_reopen_and_deletion_is_atomic() {
        let dir = tempfile::tempdir().expect("tempdir");
        let registry = TopicRegistry::open(dir.path(), BTreeMap::new(), true, NOW).expect("open");
        let configs = BTreeMap::from([("retention.ms".to_string(), "1000".to_string())]);
        let created = registry
            .create("orders", 3, configs.clone(), NOW)
            .expect("create");
        assert!(matches!(
            registry.create("orders", 1, BTreeMap::new(), NOW),
            Err(BrokerError::TopicAlreadyExists { .. })
        ));
        registry
            .create("metrics.cpu", 1, BTreeMap::new(), NOW)
            .expect("create");
        assert!(matches!(
            registry.create("metrics_cpu", 1, BTreeMap::new(), NOW),
            Err(BrokerError::InvalidTopic { .. })
        ));
        registry.delete("metrics.cpu").expect("delete");
        registry
            .add_partitions("orders", 5, false, NOW)
            .expect("grow");
        registry
            .create("gone", 1, BTreeMap::new(), NOW)
            .expect("create");
        registry.delete("gone").expect("delete");
        drop(registry);

        let registry =
            TopicRegistry::open(dir.path(), BTreeMap::new(), false, NOW).expect("reopen");
        let orders = registry.get("orders").expect("orders");
        assert_eq!(orders.id, created.id);
        assert_eq!(orders.partition_count(), 5);
        assert_eq!(orders.config_overrides(), configs);
        assert!(registry.get("gone").is_none());
        assert_eq!(registry.list().len(), 1);
    }

    #[test]
    fn a_half_created_topic_is_removed_on_open() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir_all(dir.path().join("~creating-123/0")).expect("mkdir");
        let registry = TopicRegistry::open(dir.path(), BTreeMap::new(), false, NOW).expect("open");
        assert!(registry.list().is_empty());
        assert!(!dir.path().join("~creating-123").exists());
    }

    #[test]
    fn invalid_configs_are_refused_before_anything_is_written() {
        let dir = tempfile::tempdir().expect("tempdir");
        let registry = TopicRegistry::open(dir.path(), BTreeMap::new(), true, NOW).expect("open");
        let configs = BTreeMap::from([("cleanup.policy".to_string(), "shred".to_string())]);
        assert!(matches!(
            registry.create("t", 1, configs, NOW),
            Err(BrokerError::InvalidConfig { .. })
        ));
        assert!(
            std::fs::read_dir(dir.path())
                .expect("list")
                .next()
                .is_none()
        );
    }
}
