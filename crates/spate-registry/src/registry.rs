//! The registry's operations: register, look up, read, delete, configure, test compatibility.
//!
//! Reads take a snapshot under a short read lock. Writes are serialised by one async lock
//! held across catch up → check → durable append to `_schemas` → apply to the state, so two
//! concurrent registrations never get the same id or version, and nothing is applied (or
//! answered) before it is durable. A write that fails leaves the state as it was.
//!
//! The registry also follows `_schemas` while it runs ([`Registry::run_tail`]): records that
//! another writer appends (another registry through the broker, later a cluster peer) are
//! applied as they become readable. The state is keyed by offset (`State::next_offset`): the
//! tail and the registry's own writes both apply records in offset order and each record once,
//! whichever gets to it first. A write applies its own records at the offsets the log gave
//! them when nothing unseen lies before them, else it reads the log up to them first, so a read
//! after a write is answered sees that write and everything before it.

use std::collections::BTreeSet;
use std::sync::Arc;

use parking_lot::RwLock;
use spate_broker::Broker;
use spate_schema::{Dependency, Parsed, SchemaType};

use crate::error::RegistryError;
use crate::store::{
    Change, Compatibility, Config, Mode, Reference, SCHEMAS_TOPIC, SchemaEntry, State,
    VersionEntry, encode,
};

/// Settings from the server's configuration.
#[derive(Debug, Clone)]
pub struct RegistrySettings {
    /// The compatibility level when neither the subject nor the registry sets one
    /// (Confluent's `schema.compatibility.level`, BACKWARD).
    pub default_compatibility: Compatibility,
}

impl Default for RegistrySettings {
    fn default() -> RegistrySettings {
        RegistrySettings {
            default_compatibility: Compatibility::Backward,
        }
    }
}

/// A schema as a client sends it for registration, lookup or a compatibility test.
#[derive(Debug, Clone)]
pub struct SchemaRequest {
    /// The schema's text.
    pub schema: String,
    /// Its type (AVRO when the request names none).
    pub schema_type: SchemaType,
    /// The schemas it references.
    pub references: Vec<Reference>,
    /// An explicit id, only in IMPORT mode.
    pub id: Option<i32>,
    /// An explicit version, only in IMPORT mode.
    pub version: Option<i32>,
}

/// A subject version as the REST API shows it.
#[derive(Debug, Clone)]
pub struct SubjectVersion {
    /// The subject.
    pub subject: String,
    /// The version.
    pub version: i32,
    /// Soft-deleted.
    pub deleted: bool,
    /// The schema.
    pub schema: Arc<SchemaEntry>,
}

/// Which version a request names: a number, or `latest` (also `-1`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VersionSpec {
    /// The highest version.
    Latest,
    /// A version number.
    Number(i32),
}

impl VersionSpec {
    /// Parses a path segment as Confluent does.
    pub fn parse(text: &str) -> Result<VersionSpec, RegistryError> {
        let trimmed = text.trim();
        if trimmed.eq_ignore_ascii_case("latest") {
            return Ok(VersionSpec::Latest);
        }
        match trimmed.parse::<i32>() {
            Ok(-1) => Ok(VersionSpec::Latest),
            Ok(n) if n >= 1 => Ok(VersionSpec::Number(n)),
            _ => Err(RegistryError::invalid_version(text)),
        }
    }
}

/// The schema registry: its state, and the broker whose `_schemas` topic keeps it.
pub struct Registry {
    broker: Arc<Broker>,
    /// `_schemas`' high watermark: how far the state could be caught up.
    high_watermark: tokio::sync::watch::Receiver<i64>,
    settings: RegistrySettings,
    state: RwLock<State>,
    writer: tokio::sync::Mutex<()>,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry").finish_non_exhaustive()
    }
}

impl Registry {
    /// Creates `_schemas` if needed and rebuilds the state from it. Blocking.
    pub fn open(
        broker: Arc<Broker>,
        settings: RegistrySettings,
    ) -> Result<Registry, RegistryError> {
        broker
            .ensure_state_topic(SCHEMAS_TOPIC)
            .map_err(RegistryError::store)?;
        let high_watermark = broker
            .watch_state_topic(SCHEMAS_TOPIC)
            .map_err(RegistryError::store)?;
        let mut state = State::default();
        read_records_into(&broker, &mut state)?;
        if !state.schemas.is_empty() {
            tracing::info!(
                schemas = state.schemas.len(),
                subjects = state.subjects.len(),
                "restored schema registry"
            );
        }
        Ok(Registry {
            broker,
            high_watermark,
            settings,
            state: RwLock::new(state),
            writer: tokio::sync::Mutex::new(()),
        })
    }

    /// Follows `_schemas` until `shutdown`: whenever its high watermark moves past what the
    /// state holds, applies the new records (another writer's; the registry's own are usually
    /// applied already, and are then passed over).
    pub async fn run_tail(self: Arc<Self>, shutdown: impl std::future::Future<Output = ()>) {
        let mut high_watermark = self.high_watermark.clone();
        tokio::pin!(shutdown);
        loop {
            let end = *high_watermark.borrow_and_update();
            // A failed read is logged where it happens; the next move of the high watermark
            // (or the next write) tries again.
            if end > self.state.read().next_offset
                && let Ok(applied @ 1..) = self.catch_up().await
            {
                tracing::debug!(records = applied, "applied records read from _schemas");
            }
            tokio::select! {
                () = &mut shutdown => return,
                changed = high_watermark.changed() => {
                    if changed.is_err() {
                        return;
                    }
                }
            }
        }
    }

    /// Applies the records of `_schemas` the state does not hold yet, in offset order, up to
    /// the high watermark; nothing to do (no read) when the watched high watermark says the
    /// state holds everything. Returns how many records it applied.
    async fn catch_up(&self) -> Result<usize, RegistryError> {
        if *self.high_watermark.borrow() <= self.state.read().next_offset {
            return Ok(0);
        }
        self.read_up().await
    }

    /// [`Registry::catch_up`] without asking the watch first (which the log updates just
    /// after it wakes durability waiters): reads from the log whatever it has.
    async fn read_up(&self) -> Result<usize, RegistryError> {
        let mut from = self.state.read().next_offset;
        let mut total = 0;
        loop {
            let reader = Arc::clone(&self.broker);
            let (records, next) = tokio::task::spawn_blocking(move || {
                reader.read_state_records(SCHEMAS_TOPIC, from, READ_CHUNK_BYTES)
            })
            .await
            .map_err(|e| RegistryError::store(e.to_string()))?
            .map_err(|e| {
                tracing::error!(error = %e, topic = SCHEMAS_TOPIC, offset = from, "schema registry could not read its topic");
                RegistryError::store(e)
            })?;
            if next <= from {
                return Ok(total);
            }
            let mut state = self.state.write();
            for record in &records {
                let before = state.next_offset;
                state.replay(
                    record.offset,
                    record.key.as_deref(),
                    record.value.as_deref(),
                );
                total += usize::from(state.next_offset != before);
            }
            // Offsets without a record (compacted away, transaction markers) are passed too.
            state.next_offset = state.next_offset.max(next);
            from = state.next_offset;
        }
    }

    /// Takes the write lock and brings the state up to the end of `_schemas`, so a write is
    /// checked against everything written before it, whoever wrote it.
    async fn lock_writer(&self) -> Result<tokio::sync::MutexGuard<'_, ()>, RegistryError> {
        let writer = self.writer.lock().await;
        self.catch_up().await?;
        Ok(writer)
    }

    /// Appends the changes to `_schemas` as one batch, durably, then applies them at their
    /// offsets (reading first whatever another writer appended before them).
    async fn commit(&self, changes: Vec<Change>) -> Result<(), RegistryError> {
        let records: Vec<_> = changes.iter().map(encode).collect();
        let base = self
            .broker
            .append_state_records(SCHEMAS_TOPIC, &records)
            .await
            .map_err(|e| {
                tracing::error!(error = %e, "schema registry write failed");
                RegistryError::store(e)
            })?;
        {
            let mut state = self.state.write();
            if state.next_offset >= base {
                for (offset, change) in (base..).zip(changes) {
                    state.apply_at(offset, change);
                }
                return Ok(());
            }
        }
        // Records this registry has not seen lie before its own: read them, and its own,
        // from the log (durable, so readable), in order.
        let end = base + i64::try_from(records.len()).unwrap_or(i64::MAX);
        self.read_up().await?;
        let next = self.state.read().next_offset;
        if next < end {
            tracing::error!(
                offset = base,
                next,
                "schema registry write is durable but not readable yet"
            );
            return Err(RegistryError::store(
                "the write is durable but could not be read back",
            ));
        }
        Ok(())
    }

    // --- parsing ---------------------------------------------------------------------------

    /// The schemas reachable from `references`, dependencies first, each once.
    fn dependencies(
        state: &State,
        references: &[Reference],
    ) -> Result<Vec<Dependency>, RegistryError> {
        fn visit(
            state: &State,
            references: &[Reference],
            seen: &mut BTreeSet<String>,
            path: &mut Vec<(String, i32)>,
            out: &mut Vec<Dependency>,
        ) -> Result<(), RegistryError> {
            for reference in references {
                let key = (reference.subject.clone(), reference.version);
                if path.contains(&key) {
                    return Err(RegistryError::invalid_schema(format!(
                        "circular reference to subject '{}' version {}",
                        reference.subject, reference.version
                    )));
                }
                let entry = state
                    .subjects
                    .get(&reference.subject)
                    .and_then(|versions| versions.get(&reference.version))
                    .and_then(|v| state.schemas.get(&v.id))
                    .ok_or_else(|| {
                        RegistryError::invalid_schema(format!(
                            "reference '{}' names subject '{}' version {}, which does not exist",
                            reference.name, reference.subject, reference.version
                        ))
                    })?;
                if seen.contains(&reference.name) {
                    continue;
                }
                path.push(key);
                visit(state, &entry.references, seen, path, out)?;
                path.pop();
                seen.insert(reference.name.clone());
                out.push(Dependency {
                    name: reference.name.clone(),
                    text: entry.text.clone(),
                });
            }
            Ok(())
        }
        let mut out = Vec::new();
        visit(
            state,
            references,
            &mut BTreeSet::new(),
            &mut Vec::new(),
            &mut out,
        )?;
        Ok(out)
    }

    /// The request's references with Confluent's version `-1` replaced by the latest live
    /// version of the referenced subject, as Confluent resolves (and stores) them.
    fn resolve_references(
        state: &State,
        references: &[Reference],
    ) -> Result<Vec<Reference>, RegistryError> {
        references
            .iter()
            .map(|reference| {
                if reference.version != -1 {
                    return Ok(reference.clone());
                }
                let latest = state
                    .subjects
                    .get(&reference.subject)
                    .and_then(|versions| versions.iter().rev().find(|(_, e)| !e.deleted))
                    .map(|(version, _)| *version)
                    .ok_or_else(|| {
                        RegistryError::invalid_schema(format!(
                            "reference '{}' names the latest version (-1) of subject '{}', \
                             which has no versions",
                            reference.name, reference.subject
                        ))
                    })?;
                Ok(Reference {
                    version: latest,
                    ..reference.clone()
                })
            })
            .collect()
    }

    /// Parses a request's schema with its references (resolved: see
    /// [`Registry::resolve_references`], which are returned too).
    fn parse_request(
        state: &State,
        request: &SchemaRequest,
        normalize: bool,
    ) -> Result<(Parsed, Vec<Reference>), RegistryError> {
        let references = Registry::resolve_references(state, &request.references)?;
        let dependencies = Registry::dependencies(state, &references)?;
        let parsed = Parsed::parse(
            request.schema_type,
            &request.schema,
            &dependencies,
            normalize,
        )
        .map_err(RegistryError::invalid_schema)?;
        Ok((parsed, references))
    }

    /// The parsed form of a stored schema (parsed once, then cached).
    pub fn parsed(&self, entry: &SchemaEntry) -> Result<Arc<Parsed>, RegistryError> {
        let result = entry.parsed.get_or_init(|| {
            let state = self.state.read();
            let dependencies = Registry::dependencies(&state, &entry.references)
                .map_err(|e| spate_schema::SchemaError(e.message))?;
            Parsed::parse(entry.schema_type, &entry.text, &dependencies, false).map(Arc::new)
        });
        result.clone().map_err(RegistryError::invalid_schema)
    }

    fn normalize_for(state: &State, subject: &str, requested: bool) -> bool {
        requested
            || state
                .subject_configs
                .get(subject)
                .and_then(|c| c.normalize)
                .or_else(|| state.global_config.and_then(|c| c.normalize))
                .unwrap_or(false)
    }

    /// The compatibility level that applies to a subject.
    pub fn compatibility_for(&self, subject: &str) -> Compatibility {
        let state = self.state.read();
        state
            .subject_configs
            .get(subject)
            .and_then(|c| c.compatibility)
            .or_else(|| state.global_config.and_then(|c| c.compatibility))
            .unwrap_or(self.settings.default_compatibility)
    }

    fn mode_for(state: &State, subject: &str) -> Mode {
        match state.global_mode {
            Some(Mode::ReadOnlyOverride) => Mode::ReadOnlyOverride,
            global => state
                .subject_modes
                .get(subject)
                .copied()
                .or(global)
                .unwrap_or(Mode::ReadWrite),
        }
    }

    fn check_writable(state: &State, subject: &str) -> Result<Mode, RegistryError> {
        match Registry::mode_for(state, subject) {
            Mode::ReadOnly | Mode::ReadOnlyOverride => Err(RegistryError::not_permitted(format!(
                "Subject {subject} is in read-only mode"
            ))),
            mode => Ok(mode),
        }
    }

    /// Whether a stored version holds the same schema as `parsed` (the request's canonical
    /// form, normalised when `normalize`).
    fn same_schema(
        &self,
        entry: &SchemaEntry,
        parsed: &Parsed,
        references: &[Reference],
        normalize: bool,
    ) -> bool {
        if entry.schema_type != parsed.schema_type() || entry.references != references {
            return false;
        }
        if entry.text == parsed.canonical() {
            return true;
        }
        if !normalize {
            return false;
        }
        let state = self.state.read();
        let Ok(dependencies) = Registry::dependencies(&state, &entry.references) else {
            return false;
        };
        drop(state);
        Parsed::parse(entry.schema_type, &entry.text, &dependencies, true)
            .is_ok_and(|stored| stored.canonical() == parsed.canonical())
    }

    // --- compatibility ---------------------------------------------------------------------

    /// Why `parsed` may not follow the subject's versions under `level`; empty if it may.
    /// `only` restricts the check to one version (the `/compatibility/.../versions/{v}` API).
    fn incompatibilities(
        &self,
        subject: &str,
        level: Compatibility,
        parsed: &Parsed,
        only: Option<i32>,
    ) -> Result<Vec<String>, RegistryError> {
        if level == Compatibility::None {
            return Ok(Vec::new());
        }
        let previous: Vec<(i32, Arc<SchemaEntry>)> = {
            let state = self.state.read();
            let Some(versions) = state.subjects.get(subject) else {
                return Ok(Vec::new());
            };
            versions
                .iter()
                .filter(|(version, entry)| !entry.deleted && only.is_none_or(|o| o == **version))
                .filter_map(|(version, entry)| {
                    state
                        .schemas
                        .get(&entry.id)
                        .map(|s| (*version, Arc::clone(s)))
                })
                .collect()
        };
        let against: Vec<&(i32, Arc<SchemaEntry>)> = if level.transitive() || only.is_some() {
            previous.iter().rev().collect()
        } else {
            previous.last().into_iter().collect()
        };
        let mut messages = Vec::new();
        for (version, entry) in against {
            let old = self.parsed(entry)?;
            if level.backward() {
                for message in Parsed::incompatibilities(parsed, &old) {
                    messages.push(format!(
                        "{{oldSchemaVersion: {version}, compatibility: '{}', the new schema cannot read data written with version {version}: {message}}}",
                        level.name()
                    ));
                }
            }
            if level.forward() {
                for message in Parsed::incompatibilities(&old, parsed) {
                    messages.push(format!(
                        "{{oldSchemaVersion: {version}, compatibility: '{}', version {version} cannot read data written with the new schema: {message}}}",
                        level.name()
                    ));
                }
            }
        }
        Ok(messages)
    }

    /// Tests a schema against a subject's versions under its level: against one version, or
    /// (`version` `None`) against those the level names. Returns the reasons it is not
    /// compatible; empty if it is.
    ///
    /// As in Confluent, the version is looked up before the subject is: a numbered version the
    /// subject does not have live is 40402 even when the subject does not exist, and `latest`
    /// of a subject without live versions is checked against nothing, so compatible.
    pub fn test_compatibility(
        &self,
        subject: &str,
        version: Option<VersionSpec>,
        request: &SchemaRequest,
        normalize: bool,
    ) -> Result<Vec<String>, RegistryError> {
        let (parsed, only) = {
            let state = self.state.read();
            let only = match version {
                None => None,
                Some(spec) => {
                    let found = state
                        .subjects
                        .get(subject)
                        .and_then(|versions| resolve_version(versions, spec, false).ok());
                    match (found, spec) {
                        (Some((version, _)), _) => Some(version),
                        (None, VersionSpec::Number(n)) => {
                            return Err(RegistryError::version_not_found(n));
                        }
                        (None, VersionSpec::Latest) => {
                            let normalize = Registry::normalize_for(&state, subject, normalize);
                            Registry::parse_request(&state, request, normalize)?;
                            return Ok(Vec::new());
                        }
                    }
                }
            };
            let normalize = Registry::normalize_for(&state, subject, normalize);
            let (parsed, _) = Registry::parse_request(&state, request, normalize)?;
            (parsed, only)
        };
        let level = self.compatibility_for(subject);
        self.incompatibilities(subject, level, &parsed, only)
    }

    // --- writes ----------------------------------------------------------------------------

    /// Registers a schema under a subject; returns its id and version. A schema the subject
    /// already has returns the existing id without a write.
    pub async fn register(
        &self,
        subject: &str,
        mut request: SchemaRequest,
        normalize: bool,
    ) -> Result<(i32, i32), RegistryError> {
        validate_subject(subject)?;
        let _writer = self.lock_writer().await?;
        let (parsed, mode, normalize) = {
            let state = self.state.read();
            let mode = Registry::check_writable(&state, subject)?;
            let normalize = Registry::normalize_for(&state, subject, normalize);
            let (parsed, references) = Registry::parse_request(&state, &request, normalize)?;
            request.references = references;
            (parsed, mode, normalize)
        };
        // Already registered under this subject: the same answer, nothing written.
        let existing: Vec<(i32, Arc<SchemaEntry>)> = {
            let state = self.state.read();
            state
                .subjects
                .get(subject)
                .map(|versions| {
                    versions
                        .iter()
                        .filter(|(_, v)| !v.deleted)
                        .filter_map(|(version, v)| {
                            state.schemas.get(&v.id).map(|s| (*version, Arc::clone(s)))
                        })
                        .collect()
                })
                .unwrap_or_default()
        };
        for (version, entry) in &existing {
            if self.same_schema(entry, &parsed, &request.references, normalize)
                && request.id.is_none_or(|id| id == entry.id)
            {
                return Ok((entry.id, *version));
            }
        }
        if mode == Mode::Import {
            if request.id.is_none() {
                return Err(RegistryError::not_permitted(format!(
                    "Subject {subject} is in import mode: a registration must give its id"
                )));
            }
        } else if request.id.is_some() || request.version.is_some() {
            return Err(RegistryError::not_permitted(format!(
                "Subject {subject} is not in import mode: a registration cannot choose its id or version"
            )));
        }
        if mode != Mode::Import {
            let level = self.compatibility_for(subject);
            let messages = self.incompatibilities(subject, level, &parsed, None)?;
            if !messages.is_empty() {
                return Err(RegistryError::incompatible(subject, &messages));
            }
        }
        let text = parsed.canonical().to_string();
        let (id, version) = {
            let state = self.state.read();
            let known = state.id_of(request.schema_type, &text, &request.references);
            let id = match (request.id, known) {
                (Some(id), _) => {
                    if let Some(entry) = state.schemas.get(&id) {
                        if entry.text != text
                            || entry.schema_type != request.schema_type
                            || entry.references != request.references
                        {
                            return Err(RegistryError::not_permitted(format!(
                                "Overwrite new schema with id {id} is not permitted."
                            )));
                        }
                    }
                    id
                }
                (None, Some(id)) => id,
                (None, None) => state
                    .max_id
                    .checked_add(1)
                    .ok_or_else(|| RegistryError::store("no schema ids left"))?,
            };
            let versions = state.subjects.get(subject);
            let version = match request.version {
                Some(version) => {
                    if version < 1 {
                        return Err(RegistryError::invalid_version(&version.to_string()));
                    }
                    if versions.is_some_and(|v| v.contains_key(&version)) {
                        return Err(RegistryError::not_permitted(format!(
                            "Subject {subject} already has a version {version}"
                        )));
                    }
                    version
                }
                None => {
                    versions
                        .and_then(|v| v.keys().next_back().copied())
                        .unwrap_or(0)
                        + 1
                }
            };
            (id, version)
        };
        self.commit(vec![Change::Schema {
            subject: subject.to_string(),
            version,
            id,
            schema_type: request.schema_type,
            text,
            references: request.references,
            deleted: false,
        }])
        .await?;
        tracing::info!(subject, version, id, "registered schema");
        Ok((id, version))
    }

    /// Deletes one version, softly or (after a soft delete) permanently. Returns the version.
    pub async fn delete_version(
        &self,
        subject: &str,
        spec: VersionSpec,
        permanent: bool,
    ) -> Result<i32, RegistryError> {
        let _writer = self.lock_writer().await?;
        let (change, version) = {
            let state = self.state.read();
            Registry::check_writable(&state, subject)?;
            let versions = state
                .subjects
                .get(subject)
                .ok_or_else(|| RegistryError::subject_not_found(subject))?;
            // A number finds soft-deleted versions too, so deleting one again says so.
            let any = permanent || matches!(spec, VersionSpec::Number(_));
            let (version, entry) = resolve_version(versions, spec, any)?;
            if referenced(&state, subject, version) {
                return Err(RegistryError::reference_exists(subject, version));
            }
            let change = match (permanent, entry.deleted) {
                (false, true) => return Err(RegistryError::version_soft_deleted(subject, version)),
                (true, false) => {
                    return Err(RegistryError::version_not_soft_deleted(subject, version));
                }
                (true, true) => Change::SchemaRemoved {
                    subject: subject.to_string(),
                    version,
                },
                (false, false) => soft_deleted(&state, subject, version, entry),
            };
            (change, version)
        };
        self.commit(vec![change]).await?;
        let verb = if permanent {
            "permanently deleted"
        } else {
            "soft-deleted"
        };
        tracing::info!(subject, version, "{verb} schema version");
        Ok(version)
    }

    /// Deletes a subject, softly or (after a soft delete) permanently. Returns its versions.
    pub async fn delete_subject(
        &self,
        subject: &str,
        permanent: bool,
    ) -> Result<Vec<i32>, RegistryError> {
        let _writer = self.lock_writer().await?;
        let (changes, deleted) = {
            let state = self.state.read();
            Registry::check_writable(&state, subject)?;
            let versions = state
                .subjects
                .get(subject)
                .ok_or_else(|| RegistryError::subject_not_found(subject))?;
            let live: Vec<i32> = versions
                .iter()
                .filter(|(_, e)| !e.deleted)
                .map(|(v, _)| *v)
                .collect();
            for version in versions.keys() {
                if referenced(&state, subject, *version) {
                    return Err(RegistryError::reference_exists(subject, *version));
                }
            }
            if permanent {
                if !live.is_empty() {
                    return Err(RegistryError::subject_not_soft_deleted(subject));
                }
                let mut changes: Vec<Change> = versions
                    .keys()
                    .map(|version| Change::SchemaRemoved {
                        subject: subject.to_string(),
                        version: *version,
                    })
                    .collect();
                if state.subject_configs.contains_key(subject) {
                    changes.push(Change::Config {
                        subject: Some(subject.to_string()),
                        config: None,
                    });
                }
                if state.subject_modes.contains_key(subject) {
                    changes.push(Change::Mode {
                        subject: Some(subject.to_string()),
                        mode: None,
                    });
                }
                (changes, versions.keys().copied().collect())
            } else {
                if live.is_empty() {
                    return Err(RegistryError::subject_soft_deleted(subject));
                }
                let changes = live
                    .iter()
                    .map(|version| soft_deleted(&state, subject, *version, versions[version]))
                    .collect();
                (changes, live)
            }
        };
        self.commit(changes).await?;
        tracing::info!(
            subject,
            permanent,
            versions = deleted.len(),
            "deleted subject"
        );
        Ok(deleted)
    }

    /// Sets the global config (`subject` `None`) or a subject's. Returns what was set.
    pub async fn set_config(
        &self,
        subject: Option<&str>,
        config: Config,
    ) -> Result<Config, RegistryError> {
        let _writer = self.lock_writer().await?;
        let merged = {
            let state = self.state.read();
            let current = match subject {
                None => state.global_config,
                Some(s) => state.subject_configs.get(s).copied(),
            }
            .unwrap_or_default();
            Config {
                compatibility: config.compatibility.or(current.compatibility),
                normalize: config.normalize.or(current.normalize),
            }
        };
        self.commit(vec![Change::Config {
            subject: subject.map(str::to_string),
            config: Some(merged),
        }])
        .await?;
        Ok(merged)
    }

    /// Deletes a subject's config (it falls back to the global one) or resets the global one.
    /// Returns the config that was in force.
    pub async fn delete_config(&self, subject: Option<&str>) -> Result<Config, RegistryError> {
        let _writer = self.lock_writer().await?;
        let previous = {
            let state = self.state.read();
            match subject {
                None => state.global_config.unwrap_or(Config {
                    compatibility: Some(self.settings.default_compatibility),
                    normalize: None,
                }),
                Some(s) => *state
                    .subject_configs
                    .get(s)
                    .ok_or_else(|| RegistryError::subject_config_not_found(s))?,
            }
        };
        self.commit(vec![Change::Config {
            subject: subject.map(str::to_string),
            config: None,
        }])
        .await?;
        Ok(previous)
    }

    /// Sets the global mode or a subject's. IMPORT on a subject (or registry) that already has
    /// schemas needs `force`, as in Confluent.
    pub async fn set_mode(
        &self,
        subject: Option<&str>,
        mode: Mode,
        force: bool,
    ) -> Result<Mode, RegistryError> {
        let _writer = self.lock_writer().await?;
        {
            let state = self.state.read();
            let has_schemas = match subject {
                None => !state.subjects.is_empty(),
                Some(s) => state.subjects.contains_key(s),
            };
            if mode == Mode::Import && has_schemas && !force {
                return Err(RegistryError::not_permitted(
                    "Cannot import since found existing subjects",
                ));
            }
        }
        self.commit(vec![Change::Mode {
            subject: subject.map(str::to_string),
            mode: Some(mode),
        }])
        .await?;
        Ok(mode)
    }

    /// Deletes a subject's mode. Returns the mode that was set.
    pub async fn delete_mode(&self, subject: &str) -> Result<Mode, RegistryError> {
        let _writer = self.lock_writer().await?;
        let previous = self
            .state
            .read()
            .subject_modes
            .get(subject)
            .copied()
            .ok_or_else(|| RegistryError::subject_mode_not_found(subject))?;
        self.commit(vec![Change::Mode {
            subject: Some(subject.to_string()),
            mode: None,
        }])
        .await?;
        Ok(previous)
    }

    // --- reads -----------------------------------------------------------------------------

    /// Finds a schema among a subject's versions (POST `/subjects/{subject}`).
    pub fn lookup(
        &self,
        subject: &str,
        request: &SchemaRequest,
        normalize: bool,
        deleted: bool,
    ) -> Result<SubjectVersion, RegistryError> {
        let (parsed, references, candidates, normalize) = {
            let state = self.state.read();
            let versions = state
                .subjects
                .get(subject)
                .filter(|v| deleted || v.values().any(|e| !e.deleted))
                .ok_or_else(|| RegistryError::subject_not_found(subject))?;
            let normalize = Registry::normalize_for(&state, subject, normalize);
            let (parsed, references) = Registry::parse_request(&state, request, normalize)?;
            let candidates: Vec<SubjectVersion> = versions
                .iter()
                .rev()
                .filter(|(_, e)| deleted || !e.deleted)
                .filter_map(|(version, e)| {
                    state.schemas.get(&e.id).map(|schema| SubjectVersion {
                        subject: subject.to_string(),
                        version: *version,
                        deleted: e.deleted,
                        schema: Arc::clone(schema),
                    })
                })
                .collect();
            (parsed, references, candidates, normalize)
        };
        candidates
            .into_iter()
            .find(|c| self.same_schema(&c.schema, &parsed, &references, normalize))
            .ok_or_else(RegistryError::schema_not_found)
    }

    /// Subjects, optionally by prefix, with soft-deleted ones if asked (or only them).
    pub fn subjects(&self, prefix: &str, deleted: bool, deleted_only: bool) -> Vec<String> {
        let state = self.state.read();
        state
            .subjects
            .iter()
            .filter(|(name, _)| name.starts_with(prefix))
            .filter(|(_, versions)| {
                let live = versions.values().any(|e| !e.deleted);
                let dead = versions.values().any(|e| e.deleted);
                if deleted_only {
                    dead
                } else {
                    live || (deleted && dead)
                }
            })
            .map(|(name, _)| name.clone())
            .collect()
    }

    /// A subject's version numbers.
    pub fn versions(
        &self,
        subject: &str,
        deleted: bool,
        deleted_only: bool,
    ) -> Result<Vec<i32>, RegistryError> {
        let state = self.state.read();
        let versions: Vec<i32> = state
            .subjects
            .get(subject)
            .map(|versions| {
                versions
                    .iter()
                    .filter(|(_, e)| {
                        if deleted_only {
                            e.deleted
                        } else {
                            deleted || !e.deleted
                        }
                    })
                    .map(|(v, _)| *v)
                    .collect()
            })
            .unwrap_or_default();
        if versions.is_empty() {
            return Err(RegistryError::subject_not_found(subject));
        }
        Ok(versions)
    }

    /// One subject version.
    pub fn version(
        &self,
        subject: &str,
        spec: VersionSpec,
        deleted: bool,
    ) -> Result<SubjectVersion, RegistryError> {
        let state = self.state.read();
        let versions = state
            .subjects
            .get(subject)
            .filter(|v| deleted || v.values().any(|e| !e.deleted))
            .ok_or_else(|| RegistryError::subject_not_found(subject))?;
        let (version, entry) = resolve_version(versions, spec, deleted)?;
        let schema = state
            .schemas
            .get(&entry.id)
            .ok_or_else(|| RegistryError::schema_id_not_found(entry.id))?;
        Ok(SubjectVersion {
            subject: subject.to_string(),
            version,
            deleted: entry.deleted,
            schema: Arc::clone(schema),
        })
    }

    /// A schema by id.
    pub fn schema(&self, id: i32) -> Result<Arc<SchemaEntry>, RegistryError> {
        self.state
            .read()
            .schemas
            .get(&id)
            .cloned()
            .ok_or_else(|| RegistryError::schema_id_not_found(id))
    }

    /// The subject versions that hold a schema id.
    pub fn versions_of_id(
        &self,
        id: i32,
        deleted: bool,
    ) -> Result<Vec<(String, i32)>, RegistryError> {
        let state = self.state.read();
        if !state.schemas.contains_key(&id) {
            // Confluent names no id here (`/schemas/ids/{id}/subjects` and `/versions`).
            return Err(RegistryError::schema_not_found());
        }
        Ok(state
            .subjects
            .iter()
            .flat_map(|(subject, versions)| {
                versions
                    .iter()
                    .filter(move |(_, e)| e.id == id && (deleted || !e.deleted))
                    .map(move |(v, _)| (subject.clone(), *v))
            })
            .collect())
    }

    /// Whether a live (not soft-deleted) version of the subject holds the schema id.
    pub fn subject_has_live_id(&self, subject: &str, id: i32) -> bool {
        self.state
            .read()
            .subjects
            .get(subject)
            .is_some_and(|versions| versions.values().any(|e| e.id == id && !e.deleted))
    }

    /// Ids of the schemas that reference a subject version.
    pub fn referenced_by(
        &self,
        subject: &str,
        spec: VersionSpec,
    ) -> Result<Vec<i32>, RegistryError> {
        let state = self.state.read();
        let versions = state
            .subjects
            .get(subject)
            .ok_or_else(|| RegistryError::subject_not_found(subject))?;
        let (version, _) = resolve_version(versions, spec, false)?;
        let mut ids: Vec<i32> = referrers(&state, subject, version).map(|s| s.id).collect();
        ids.sort_unstable();
        ids.dedup();
        Ok(ids)
    }

    /// The global config, with the default level filled in.
    pub fn global_config(&self) -> Config {
        let config = self.state.read().global_config.unwrap_or_default();
        Config {
            compatibility: Some(
                config
                    .compatibility
                    .unwrap_or(self.settings.default_compatibility),
            ),
            normalize: config.normalize,
        }
    }

    /// A subject's own config; with `default_to_global`, the global one when it has none.
    pub fn subject_config(
        &self,
        subject: &str,
        default_to_global: bool,
    ) -> Result<Config, RegistryError> {
        let own = self.state.read().subject_configs.get(subject).copied();
        match own {
            Some(config) => Ok(config),
            None if default_to_global => Ok(self.global_config()),
            None => Err(RegistryError::subject_config_not_found(subject)),
        }
    }

    /// The global mode.
    pub fn global_mode(&self) -> Mode {
        self.state.read().global_mode.unwrap_or(Mode::ReadWrite)
    }

    /// A subject's own mode; with `default_to_global`, the global one when it has none.
    pub fn subject_mode(
        &self,
        subject: &str,
        default_to_global: bool,
    ) -> Result<Mode, RegistryError> {
        let state = self.state.read();
        match state.subject_modes.get(subject) {
            Some(mode) => Ok(*mode),
            None if default_to_global => Ok(state.global_mode.unwrap_or(Mode::ReadWrite)),
            None => Err(RegistryError::subject_mode_not_found(subject)),
        }
    }
}

/// Picks a version: `Latest` is the highest one visible (soft-deleted ones only with
/// `deleted`); a number must exist, and be live unless `deleted`.
fn resolve_version(
    versions: &std::collections::BTreeMap<i32, VersionEntry>,
    spec: VersionSpec,
    deleted: bool,
) -> Result<(i32, VersionEntry), RegistryError> {
    match spec {
        VersionSpec::Latest => versions
            .iter()
            .rev()
            .find(|(_, e)| deleted || !e.deleted)
            .map(|(v, e)| (*v, *e))
            .ok_or_else(|| RegistryError::version_not_found(-1)),
        VersionSpec::Number(n) => versions
            .get(&n)
            .filter(|e| deleted || !e.deleted)
            .map(|e| (n, *e))
            .ok_or_else(|| RegistryError::version_not_found(n)),
    }
}

/// The live schemas that reference this subject version (a schema once per live version
/// holding it).
fn referrers<'a>(
    state: &'a State,
    subject: &'a str,
    version: i32,
) -> impl Iterator<Item = &'a Arc<SchemaEntry>> + 'a {
    state
        .subjects
        .values()
        .flat_map(|versions| versions.values())
        .filter(|e| !e.deleted)
        .filter_map(|e| state.schemas.get(&e.id))
        .filter(move |s| {
            s.references
                .iter()
                .any(|r| r.subject == subject && r.version == version)
        })
}

/// Whether a live schema references this subject version.
fn referenced(state: &State, subject: &str, version: i32) -> bool {
    referrers(state, subject, version).next().is_some()
}

fn soft_deleted(state: &State, subject: &str, version: i32, entry: VersionEntry) -> Change {
    let schema = state.schemas.get(&entry.id);
    Change::Schema {
        subject: subject.to_string(),
        version,
        id: entry.id,
        schema_type: schema.map_or(SchemaType::Avro, |s| s.schema_type),
        text: schema.map(|s| s.text.clone()).unwrap_or_default(),
        references: schema.map(|s| s.references.clone()).unwrap_or_default(),
        deleted: true,
    }
}

/// How much of `_schemas` one read brings into memory while catching up.
const READ_CHUNK_BYTES: usize = 4 << 20;

/// Reads `_schemas` into `state` from its `next_offset` to the high watermark. Blocking.
fn read_records_into(broker: &Broker, state: &mut State) -> Result<(), RegistryError> {
    loop {
        let (records, next) = broker
            .read_state_records(SCHEMAS_TOPIC, state.next_offset, READ_CHUNK_BYTES)
            .map_err(RegistryError::store)?;
        if next <= state.next_offset {
            return Ok(());
        }
        for record in &records {
            state.replay(
                record.offset,
                record.key.as_deref(),
                record.value.as_deref(),
            );
        }
        // Offsets without a record (compacted away, transaction markers) are passed too.
        state.next_offset = state.next_offset.max(next);
    }
}

/// Subject names: Confluent accepts any non-empty string without control characters.
fn validate_subject(subject: &str) -> Result<(), RegistryError> {
    if subject.is_empty() || subject.chars().any(char::is_control) || subject.len() > 4096 {
        return Err(RegistryError::unprocessable(format!(
            "Invalid subject name '{}'",
            subject.escape_default()
        )));
    }
    Ok(())
}
