//! The transaction coordinator: exactly-once producers (KIP-98, transaction version 1).
//!
//! Each transactional id has a producer id and epoch and a state (`Empty`, `Ongoing`,
//! `PrepareCommit`/`PrepareAbort`, `CompleteCommit`/`CompleteAbort`), persisted in the internal
//! compacted topic `__transaction_state` before any step is acknowledged. Ending a transaction
//! records the decision (`Prepare*`), writes a commit or abort marker into every partition of
//! the transaction and waits until they are durable, then records completion; a restart that
//! finds a `Prepare*` state finishes it. Offsets committed in a transaction reach
//! `__consumer_offsets` as transactional records and become visible when its commit marker
//! lands. A new producer for the same transactional id, or a transaction that outlives its
//! timeout, bumps the epoch and aborts, fencing the old producer everywhere. Operations on one
//! transactional id are serialised by its own async lock; produce requests check
//! (synchronously) that a transactional batch belongs to an ongoing transaction that added the
//! partition, so no batch can open a transaction the coordinator does not know (KIP-890 part 1).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::ResponseError;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use parking_lot::Mutex;
use spate_log::BatchBuilder;

use spate_auth::acl::{Operation, ResourceType};

use crate::Broker;
use crate::authz::Caller;
use crate::error::BrokerError;
use crate::groups::store::{self as offsets_store, OFFSETS_TOPIC, get_string};
use crate::internal::replay_topic;
use crate::topics::TopicRegistry;

/// Name of the internal topic.
pub const TRANSACTIONS_TOPIC: &str = "__transaction_state";

/// Coordinator settings (Kafka's `transaction.*` broker configs).
#[derive(Debug, Clone)]
pub struct TransactionSettings {
    /// `transaction.state.log.num.partitions`.
    pub partitions: i32,
    /// `transaction.max.timeout.ms`.
    pub max_timeout_ms: i32,
}

impl Default for TransactionSettings {
    fn default() -> TransactionSettings {
        TransactionSettings {
            partitions: 50,
            max_timeout_ms: 900_000,
        }
    }
}

/// A transaction's state, named as Kafka names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TxnState {
    /// No transaction open.
    Empty,
    /// Partitions were added; produce and offset commits go on.
    Ongoing,
    /// Commit decided; markers being written.
    PrepareCommit,
    /// Abort decided; markers being written.
    PrepareAbort,
    /// Last transaction committed.
    CompleteCommit,
    /// Last transaction aborted.
    CompleteAbort,
}

impl TxnState {
    /// Kafka's name.
    pub fn name(self) -> &'static str {
        match self {
            TxnState::Empty => "Empty",
            TxnState::Ongoing => "Ongoing",
            TxnState::PrepareCommit => "PrepareCommit",
            TxnState::PrepareAbort => "PrepareAbort",
            TxnState::CompleteCommit => "CompleteCommit",
            TxnState::CompleteAbort => "CompleteAbort",
        }
    }

    fn id(self) -> i8 {
        match self {
            TxnState::Empty => 0,
            TxnState::Ongoing => 1,
            TxnState::PrepareCommit => 2,
            TxnState::PrepareAbort => 3,
            TxnState::CompleteCommit => 4,
            TxnState::CompleteAbort => 5,
        }
    }

    fn from_id(id: i8) -> Option<TxnState> {
        Some(match id {
            0 => TxnState::Empty,
            1 => TxnState::Ongoing,
            2 => TxnState::PrepareCommit,
            3 => TxnState::PrepareAbort,
            4 => TxnState::CompleteCommit,
            5 => TxnState::CompleteAbort,
            _ => return None,
        })
    }
}

/// One transactional id's metadata.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxnMetadata {
    /// Producer id.
    pub producer_id: i64,
    /// Producer epoch.
    pub producer_epoch: i16,
    /// Timeout of a transaction.
    pub timeout_ms: i32,
    /// State.
    pub state: TxnState,
    /// Partitions in the current (or last) transaction.
    pub partitions: BTreeSet<(String, i32)>,
    /// When the current transaction started.
    pub start_ms: i64,
    /// Last change.
    pub last_update_ms: i64,
}

/// An ongoing transaction as the produce path checks it: epoch and partitions added.
type ActiveTxn = (i16, BTreeSet<(String, i32)>);

/// Offsets committed in a transaction, waiting for its marker.
type PendingOffsets = Vec<(String, i32, crate::groups::store::CommittedOffset)>;

/// The coordinator's state.
#[derive(Debug)]
pub struct TxnCoordinator {
    settings: TransactionSettings,
    txns: Mutex<HashMap<String, Arc<tokio::sync::Mutex<TxnMetadata>>>>,
    /// Ongoing transactions by producer id: epoch and partitions (checked on produce).
    active: Mutex<HashMap<i64, ActiveTxn>>,
    /// Current epoch of every transactional producer id (to tell fenced producers apart).
    epochs: Mutex<HashMap<i64, i16>>,
    /// Offsets committed in transactions: (group, producer id) → offsets.
    pending_offsets: Mutex<HashMap<(String, i64), PendingOffsets>>,
}

fn s(value: &str) -> StrBytes {
    StrBytes::from_string(value.to_string())
}

fn encode_key(transactional_id: &str) -> Bytes {
    let mut buf = BytesMut::new();
    buf.put_i16(0);
    buf.put_i16(transactional_id.len() as i16);
    buf.put_slice(transactional_id.as_bytes());
    buf.freeze()
}

fn encode_value(meta: &TxnMetadata) -> Bytes {
    let mut buf = BytesMut::new();
    buf.put_i16(0);
    buf.put_i64(meta.producer_id);
    buf.put_i16(meta.producer_epoch);
    buf.put_i32(meta.timeout_ms);
    buf.put_i8(meta.state.id());
    let mut by_topic: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
    for (topic, partition) in &meta.partitions {
        by_topic.entry(topic).or_default().push(*partition);
    }
    buf.put_i32(by_topic.len() as i32);
    for (topic, partitions) in by_topic {
        buf.put_i16(topic.len() as i16);
        buf.put_slice(topic.as_bytes());
        buf.put_i32(partitions.len() as i32);
        for p in partitions {
            buf.put_i32(p);
        }
    }
    buf.put_i64(meta.last_update_ms);
    buf.put_i64(meta.start_ms);
    buf.freeze()
}

fn decode_record(key: &[u8], value: Option<&[u8]>) -> Option<(String, Option<TxnMetadata>)> {
    let mut key = Bytes::copy_from_slice(key);
    if key.remaining() < 2 || key.get_i16() != 0 {
        return None;
    }
    let id = get_string(&mut key)?;
    let Some(value) = value else {
        return Some((id, None));
    };
    let mut v = Bytes::copy_from_slice(value);
    if v.remaining() < 2 + 8 + 2 + 4 + 1 + 4 {
        return None;
    }
    let _version = v.get_i16();
    let producer_id = v.get_i64();
    let producer_epoch = v.get_i16();
    let timeout_ms = v.get_i32();
    let state = TxnState::from_id(v.get_i8())?;
    let topics = v.get_i32();
    let mut partitions = BTreeSet::new();
    for _ in 0..topics.max(0) {
        let topic = get_string(&mut v)?;
        if v.remaining() < 4 {
            return None;
        }
        let n = v.get_i32();
        for _ in 0..n.max(0) {
            if v.remaining() < 4 {
                return None;
            }
            partitions.insert((topic.clone(), v.get_i32()));
        }
    }
    if v.remaining() < 16 {
        return None;
    }
    let last_update_ms = v.get_i64();
    let start_ms = v.get_i64();
    Some((
        id,
        Some(TxnMetadata {
            producer_id,
            producer_epoch,
            timeout_ms,
            state,
            partitions,
            start_ms,
            last_update_ms,
        }),
    ))
}

impl TxnCoordinator {
    /// Replays `__transaction_state` (created at the first transactional id's record).
    /// Blocking.
    pub fn open(
        settings: TransactionSettings,
        topics: &TopicRegistry,
    ) -> Result<TxnCoordinator, BrokerError> {
        let mut txns: HashMap<String, TxnMetadata> = HashMap::new();
        replay_topic(topics, TRANSACTIONS_TOPIC, |_, _, key, value| {
            if let Some((id, meta)) = key.and_then(|k| decode_record(k, value)) {
                match meta {
                    Some(meta) => {
                        txns.insert(id, meta);
                    }
                    None => {
                        txns.remove(&id);
                    }
                }
            }
        })?;
        let epochs: HashMap<i64, i16> = txns
            .values()
            .map(|meta| (meta.producer_id, meta.producer_epoch))
            .collect();
        let mut active = HashMap::new();
        for meta in txns.values() {
            if meta.state == TxnState::Ongoing {
                active.insert(
                    meta.producer_id,
                    (meta.producer_epoch, meta.partitions.clone()),
                );
            }
        }
        if !txns.is_empty() {
            tracing::info!(transactional_ids = txns.len(), "restored transaction state");
        }
        Ok(TxnCoordinator {
            settings,
            txns: Mutex::new(
                txns.into_iter()
                    .map(|(id, meta)| (id, Arc::new(tokio::sync::Mutex::new(meta))))
                    .collect(),
            ),
            active: Mutex::new(active),
            epochs: Mutex::new(epochs),
            pending_offsets: Mutex::new(HashMap::new()),
        })
    }

    /// Whether a transactional batch from this producer may go to this partition now.
    pub fn allows(
        &self,
        producer_id: i64,
        producer_epoch: i16,
        topic: &str,
        partition: i32,
    ) -> Result<(), ResponseError> {
        match self.active.lock().get(&producer_id) {
            // A producer fenced by a newer epoch (a new instance, or a timeout abort) gets
            // INVALID_PRODUCER_EPOCH, which clients treat as fatal, not the abortable
            // INVALID_TXN_STATE.
            None if self
                .epochs
                .lock()
                .get(&producer_id)
                .is_some_and(|current| producer_epoch < *current) =>
            {
                Err(ResponseError::InvalidProducerEpoch)
            }
            None => Err(ResponseError::InvalidTxnState),
            Some((epoch, _)) if *epoch != producer_epoch => {
                Err(ResponseError::InvalidProducerEpoch)
            }
            Some((_, partitions)) if !partitions.contains(&(topic.to_string(), partition)) => {
                Err(ResponseError::InvalidTxnState)
            }
            Some(_) => Ok(()),
        }
    }

    fn entry(&self, id: &str) -> Option<Arc<tokio::sync::Mutex<TxnMetadata>>> {
        self.txns.lock().get(id).cloned()
    }

    /// Offsets committed by a producer's transaction to a group, waiting for the marker.
    pub(crate) fn add_pending_offsets(
        &self,
        group: &str,
        producer_id: i64,
        offsets: PendingOffsets,
    ) {
        self.pending_offsets
            .lock()
            .entry((group.to_string(), producer_id))
            .or_default()
            .extend(offsets);
    }

    /// Partitions of a group with offsets waiting in an open transaction.
    pub(crate) fn pending_partitions(
        &self,
        group: &str,
    ) -> std::collections::HashSet<(String, i32)> {
        self.pending_offsets
            .lock()
            .iter()
            .filter(|((g, _), _)| g == group)
            .flat_map(|(_, offsets)| {
                offsets
                    .iter()
                    .map(|(topic, partition, _)| (topic.clone(), *partition))
            })
            .collect()
    }

    fn take_pending_offsets(&self, producer_id: i64) -> Vec<(String, PendingOffsets)> {
        let mut pending = self.pending_offsets.lock();
        let keys: Vec<(String, i64)> = pending
            .keys()
            .filter(|(_, pid)| *pid == producer_id)
            .cloned()
            .collect();
        keys.into_iter()
            .filter_map(|key| pending.remove(&key).map(|offsets| (key.0, offsets)))
            .collect()
    }

    /// Every transactional id with a copy of its metadata.
    pub async fn snapshot(&self) -> Vec<(String, TxnMetadata)> {
        let entries: Vec<(String, Arc<tokio::sync::Mutex<TxnMetadata>>)> = self
            .txns
            .lock()
            .iter()
            .map(|(id, m)| (id.clone(), Arc::clone(m)))
            .collect();
        let mut out = Vec::with_capacity(entries.len());
        for (id, meta) in entries {
            out.push((id, meta.lock().await.clone()));
        }
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }
}

/// The error a fenced producer gets: PRODUCER_FENCED from the API version that introduced it
/// (KIP-588), INVALID_PRODUCER_EPOCH before, which older clients treat as fatal too.
fn fenced(version: i16, since: i16) -> ResponseError {
    if version >= since {
        ResponseError::ProducerFenced
    } else {
        ResponseError::InvalidProducerEpoch
    }
}

fn partition_for(transactional_id: &str, partitions: i32) -> i32 {
    offsets_store::partition_for(transactional_id, partitions)
}

impl Broker {
    fn txn(&self) -> &TxnCoordinator {
        &self.transactions
    }

    /// Records a transactional id's metadata durably in `__transaction_state`.
    async fn persist_txn(
        self: &Arc<Self>,
        id: &str,
        meta: &TxnMetadata,
    ) -> Result<(), BrokerError> {
        let count = self.internal_partitions(TRANSACTIONS_TOPIC);
        {
            let mut epochs = self.txn().epochs.lock();
            let current = epochs
                .entry(meta.producer_id)
                .or_insert(meta.producer_epoch);
            *current = (*current).max(meta.producer_epoch);
        }
        let mut builder = BatchBuilder::new(0, self.now_ms());
        builder.push(0, Some(&encode_key(id)), Some(&encode_value(meta)));
        self.append_internal(TRANSACTIONS_TOPIC, partition_for(id, count), builder)
            .await?;
        Ok(())
    }

    /// Writes a marker into every partition of the transaction, waits until all are durable,
    /// then applies (commit) or drops (abort) offsets committed in it.
    async fn write_markers(
        self: &Arc<Self>,
        meta: &TxnMetadata,
        commit: bool,
    ) -> Result<(), BrokerError> {
        let now = self.now_ms();
        let mut waits = Vec::new();
        for (topic, index) in &meta.partitions {
            let Some(partition) = self.topics.get(topic).and_then(|t| t.partition(*index)) else {
                continue; // deleted since: nothing left to mark
            };
            if partition.log.config().mirror_offsets {
                // A mirror topic refuses transactional records, so the transaction wrote
                // nothing there; a marker would take an offset that is its source's.
                continue;
            }
            let (pid, epoch) = (meta.producer_id, meta.producer_epoch);
            let info = self
                .append_blocking(&partition.log, move |log| {
                    log.append_marker(pid, epoch, commit, 0, now)
                })
                .await?;
            if info.wait_for_durable {
                waits.push((Arc::clone(&partition.log), info.last_offset + 1));
            }
        }
        for (log, offset) in waits {
            log.wait_durable(offset).await?;
        }
        for (group, offsets) in self.txn().take_pending_offsets(meta.producer_id) {
            if commit {
                self.apply_committed_offsets(&group, offsets);
            }
        }
        Ok(())
    }

    /// Ends the current transaction of `meta` (commit or abort) and records completion.
    async fn complete(
        self: &Arc<Self>,
        id: &str,
        meta: &mut TxnMetadata,
        commit: bool,
    ) -> Result<(), BrokerError> {
        meta.state = if commit {
            TxnState::PrepareCommit
        } else {
            TxnState::PrepareAbort
        };
        meta.last_update_ms = self.now_ms();
        self.persist_txn(id, meta).await?;
        self.txn().active.lock().remove(&meta.producer_id);
        self.write_markers(meta, commit).await?;
        meta.state = if commit {
            TxnState::CompleteCommit
        } else {
            TxnState::CompleteAbort
        };
        meta.last_update_ms = self.now_ms();
        self.persist_txn(id, meta).await?;
        Ok(())
    }

    pub(crate) async fn init_transactional_producer(
        self: &Arc<Self>,
        req: &InitProducerIdRequest,
        id: &str,
        version: i16,
    ) -> InitProducerIdResponse {
        let failed = |error: ResponseError| {
            InitProducerIdResponse::default()
                .with_error_code(error.code())
                .with_producer_id(ProducerId(-1))
                .with_producer_epoch(-1)
        };
        if req.transaction_timeout_ms <= 0
            || req.transaction_timeout_ms > self.txn().settings.max_timeout_ms
        {
            return failed(ResponseError::InvalidTransactionTimeout);
        }
        let entry = match self.txn().entry(id) {
            Some(entry) => entry,
            None => {
                let broker = Arc::clone(self);
                let producer_id =
                    match tokio::task::spawn_blocking(move || broker.producer_ids.allocate()).await
                    {
                        Ok(Ok(pid)) => pid,
                        _ => return failed(ResponseError::KafkaStorageError),
                    };
                let now = self.now_ms();
                let meta = TxnMetadata {
                    producer_id,
                    producer_epoch: -1,
                    timeout_ms: req.transaction_timeout_ms,
                    state: TxnState::Empty,
                    partitions: BTreeSet::new(),
                    start_ms: -1,
                    last_update_ms: now,
                };
                Arc::clone(
                    self.txn()
                        .txns
                        .lock()
                        .entry(id.to_string())
                        .or_insert_with(|| Arc::new(tokio::sync::Mutex::new(meta))),
                )
            }
        };
        let mut meta = entry.lock().await;
        // KIP-360: a producer that names its current id and epoch asks for a bump; anything
        // else from an older producer is fenced.
        if req.producer_id.0 >= 0
            && !(req.producer_id.0 == meta.producer_id && req.producer_epoch == meta.producer_epoch)
        {
            return failed(fenced(version, 4));
        }
        match meta.state {
            TxnState::Ongoing | TxnState::PrepareAbort => {
                // The previous producer's transaction is aborted under a new epoch, fencing it.
                meta.producer_epoch = meta.producer_epoch.saturating_add(1);
                let mut aborted = meta.clone();
                if let Err(err) = self.complete(id, &mut aborted, false).await {
                    tracing::error!(transactional_id = id, error = %err, "could not abort the previous transaction");
                    return failed(
                        ResponseError::try_from_code(err.code())
                            .unwrap_or(ResponseError::UnknownServerError),
                    );
                }
                *meta = aborted;
            }
            TxnState::PrepareCommit => {
                let mut committed = meta.clone();
                if let Err(err) = self.complete(id, &mut committed, true).await {
                    tracing::error!(transactional_id = id, error = %err, "could not finish a prepared commit");
                    return failed(
                        ResponseError::try_from_code(err.code())
                            .unwrap_or(ResponseError::UnknownServerError),
                    );
                }
                *meta = committed;
            }
            TxnState::Empty | TxnState::CompleteCommit | TxnState::CompleteAbort => {}
        }
        if meta.producer_epoch >= i16::MAX - 1 {
            let broker = Arc::clone(self);
            match tokio::task::spawn_blocking(move || broker.producer_ids.allocate()).await {
                Ok(Ok(pid)) => {
                    meta.producer_id = pid;
                    meta.producer_epoch = 0;
                }
                _ => return failed(ResponseError::KafkaStorageError),
            }
        } else {
            meta.producer_epoch += 1;
        }
        meta.timeout_ms = req.transaction_timeout_ms;
        meta.state = TxnState::Empty;
        meta.partitions.clear();
        meta.last_update_ms = self.now_ms();
        let snapshot = meta.clone();
        if let Err(err) = self.persist_txn(id, &snapshot).await {
            tracing::error!(transactional_id = id, error = %err, "could not record transaction state");
            return failed(ResponseError::KafkaStorageError);
        }
        InitProducerIdResponse::default()
            .with_producer_id(ProducerId(meta.producer_id))
            .with_producer_epoch(meta.producer_epoch)
    }

    /// Adds partitions to a transaction (AddPartitionsToTxn, AddOffsetsToTxn).
    async fn add_to_txn(
        self: &Arc<Self>,
        id: &str,
        producer_id: i64,
        producer_epoch: i16,
        partitions: &[(String, i32)],
        fenced_error: ResponseError,
    ) -> Result<(), ResponseError> {
        let entry = self
            .txn()
            .entry(id)
            .ok_or(ResponseError::InvalidProducerIdMapping)?;
        let mut meta = entry.lock().await;
        if meta.producer_id != producer_id {
            return Err(ResponseError::InvalidProducerIdMapping);
        }
        if meta.producer_epoch != producer_epoch {
            return Err(fenced_error);
        }
        if matches!(meta.state, TxnState::PrepareCommit | TxnState::PrepareAbort) {
            return Err(ResponseError::ConcurrentTransactions);
        }
        let mut updated = meta.clone();
        if updated.state != TxnState::Ongoing {
            updated.partitions.clear();
            updated.start_ms = self.now_ms();
        }
        let before = updated.partitions.len();
        updated.partitions.extend(partitions.iter().cloned());
        if updated.state == TxnState::Ongoing && updated.partitions.len() == before {
            return Ok(());
        }
        updated.state = TxnState::Ongoing;
        updated.last_update_ms = self.now_ms();
        self.persist_txn(id, &updated).await.map_err(|err| {
            tracing::error!(transactional_id = id, error = %err, "could not record transaction state");
            ResponseError::try_from_code(err.code()).unwrap_or(ResponseError::UnknownServerError)
        })?;
        self.txn().active.lock().insert(
            updated.producer_id,
            (updated.producer_epoch, updated.partitions.clone()),
        );
        *meta = updated;
        Ok(())
    }

    pub(crate) async fn add_partitions_to_txn(
        self: &Arc<Self>,
        req: AddPartitionsToTxnRequest,
        version: i16,
    ) -> AddPartitionsToTxnResponse {
        let id = req.v3_and_below_transactional_id.to_string();
        let mut unknown = BTreeSet::new();
        let mut partitions = Vec::new();
        for topic in &req.v3_and_below_topics {
            let known = self.topics.get(&topic.name).filter(|t| !t.is_internal());
            for p in &topic.partitions {
                if known.as_ref().and_then(|t| t.partition(*p)).is_none() {
                    unknown.insert((topic.name.to_string(), *p));
                } else {
                    partitions.push((topic.name.to_string(), *p));
                }
            }
        }
        let outcome = if unknown.is_empty() {
            self.add_to_txn(
                &id,
                req.v3_and_below_producer_id.0,
                req.v3_and_below_producer_epoch,
                &partitions,
                fenced(version, 2),
            )
            .await
        } else {
            Err(ResponseError::OperationNotAttempted)
        };
        let results = req
            .v3_and_below_topics
            .iter()
            .map(|topic| {
                add_partitions_to_txn_response::AddPartitionsToTxnTopicResult::default()
                    .with_name(topic.name.clone())
                    .with_results_by_partition(
                        topic
                            .partitions
                            .iter()
                            .map(|p| {
                                let code = if unknown.contains(&(topic.name.to_string(), *p)) {
                                    ResponseError::UnknownTopicOrPartition.code()
                                } else {
                                    outcome.err().map_or(0, |e| e.code())
                                };
                                add_partitions_to_txn_response::AddPartitionsToTxnPartitionResult::default()
                                    .with_partition_index(*p)
                                    .with_partition_error_code(code)
                            })
                            .collect(),
                    )
            })
            .collect();
        AddPartitionsToTxnResponse::default().with_results_by_topic_v3_and_below(results)
    }

    pub(crate) async fn add_offsets_to_txn(
        self: &Arc<Self>,
        req: AddOffsetsToTxnRequest,
        version: i16,
    ) -> AddOffsetsToTxnResponse {
        // The transaction's marker will be written to the group's offsets partition.
        if let Err(err) = self.ensure_internal_topic(OFFSETS_TOPIC).await {
            tracing::error!(error = %err, "could not create {OFFSETS_TOPIC}");
            return AddOffsetsToTxnResponse::default().with_error_code(err.code());
        }
        let count = self.internal_partitions(OFFSETS_TOPIC);
        let partition = (
            OFFSETS_TOPIC.to_string(),
            offsets_store::partition_for(&req.group_id, count),
        );
        let outcome = self
            .add_to_txn(
                &req.transactional_id,
                req.producer_id.0,
                req.producer_epoch,
                &[partition],
                fenced(version, 2),
            )
            .await;
        AddOffsetsToTxnResponse::default().with_error_code(outcome.err().map_or(0, |e| e.code()))
    }

    pub(crate) async fn end_txn(
        self: &Arc<Self>,
        req: EndTxnRequest,
        version: i16,
    ) -> EndTxnResponse {
        let respond = |result: Result<(), ResponseError>| {
            EndTxnResponse::default().with_error_code(result.err().map_or(0, |e| e.code()))
        };
        let Some(entry) = self.txn().entry(&req.transactional_id) else {
            return respond(Err(ResponseError::InvalidProducerIdMapping));
        };
        let mut meta = entry.lock().await;
        if meta.producer_id != req.producer_id.0 {
            return respond(Err(ResponseError::InvalidProducerIdMapping));
        }
        if meta.producer_epoch != req.producer_epoch {
            return respond(Err(fenced(version, 2)));
        }
        let result = match (meta.state, req.committed) {
            (TxnState::Ongoing, commit) => {
                let mut ended = meta.clone();
                match self
                    .complete(&req.transactional_id, &mut ended, commit)
                    .await
                {
                    Ok(()) => {
                        *meta = ended;
                        Ok(())
                    }
                    Err(err) => {
                        tracing::error!(transactional_id = %req.transactional_id.as_str(), error = %err, "could not end transaction");
                        Err(ResponseError::try_from_code(err.code())
                            .unwrap_or(ResponseError::UnknownServerError))
                    }
                }
            }
            // A retried EndTxn whose first attempt finished.
            (TxnState::CompleteCommit, true) | (TxnState::CompleteAbort, false) => Ok(()),
            (TxnState::PrepareCommit | TxnState::PrepareAbort, _) => {
                Err(ResponseError::ConcurrentTransactions)
            }
            _ => Err(ResponseError::InvalidTxnState),
        };
        respond(result)
    }

    pub(crate) async fn txn_offset_commit(
        self: &Arc<Self>,
        req: TxnOffsetCommitRequest,
        version: i16,
        caller: &Caller,
    ) -> TxnOffsetCommitResponse {
        let group = req.group_id.to_string();
        let mut response = TxnOffsetCommitResponse::default();
        for topic in &req.topics {
            response.topics.push(
                txn_offset_commit_response::TxnOffsetCommitResponseTopic::default()
                    .with_name(topic.name.clone())
                    .with_partitions(
                        topic
                            .partitions
                            .iter()
                            .map(|p| txn_offset_commit_response::TxnOffsetCommitResponsePartition::default().with_partition_index(p.partition_index))
                            .collect(),
                    ),
            );
        }
        let fail_all = |mut response: TxnOffsetCommitResponse, error: ResponseError| {
            for topic in &mut response.topics {
                for partition in &mut topic.partitions {
                    partition.error_code = error.code();
                }
            }
            response
        };
        let count = self.internal_partitions(OFFSETS_TOPIC);
        let offsets_partition = offsets_store::partition_for(&group, count);
        // The offsets partition must be part of the transaction (AddOffsetsToTxn first).
        if let Err(error) = self.txn().allows(
            req.producer_id.0,
            req.producer_epoch,
            OFFSETS_TOPIC,
            offsets_partition,
        ) {
            let error = if error == ResponseError::InvalidProducerEpoch {
                fenced(version, 3)
            } else {
                error
            };
            return fail_all(response, error);
        }
        if let Err(error) =
            self.check_txn_offset_commit_member(&group, req.generation_id, &req.member_id)
        {
            return fail_all(response, error);
        }
        let now = self.now_ms();
        let mut builder = BatchBuilder::new(0, now);
        builder.attributes = 0x10; // transactional
        builder.producer_id = req.producer_id.0;
        builder.producer_epoch = req.producer_epoch;
        builder.base_sequence = -1;
        let mut pending = Vec::new();
        for (t, topic) in req.topics.iter().enumerate() {
            let known = self.topics.get(&topic.name);
            let readable = self.allows(caller, Operation::Read, ResourceType::Topic, &topic.name);
            for (p, partition) in topic.partitions.iter().enumerate() {
                if !readable {
                    response.topics[t].partitions[p].error_code =
                        ResponseError::TopicAuthorizationFailed.code();
                    continue;
                }
                if known
                    .as_ref()
                    .and_then(|k| k.partition(partition.partition_index))
                    .is_none()
                {
                    response.topics[t].partitions[p].error_code =
                        ResponseError::UnknownTopicOrPartition.code();
                    continue;
                }
                let metadata = partition.committed_metadata.as_deref().unwrap_or("");
                builder.push(
                    0,
                    Some(&offsets_store::offset_key(
                        &group,
                        &topic.name,
                        partition.partition_index,
                    )),
                    Some(&offsets_store::offset_value(
                        partition.committed_offset,
                        partition.committed_leader_epoch,
                        metadata,
                        now,
                    )),
                );
                pending.push((
                    topic.name.to_string(),
                    partition.partition_index,
                    crate::groups::store::CommittedOffset {
                        offset: partition.committed_offset,
                        leader_epoch: partition.committed_leader_epoch,
                        metadata: metadata.to_string(),
                        commit_timestamp_ms: now,
                        log_offset: 0,
                    },
                ));
            }
        }
        if pending.is_empty() {
            return response;
        }
        match self
            .append_internal(OFFSETS_TOPIC, offsets_partition, builder)
            .await
        {
            Ok(base_offset) => {
                for (i, entry) in pending.iter_mut().enumerate() {
                    entry.2.log_offset = base_offset + i as i64;
                }
                self.txn()
                    .add_pending_offsets(&group, req.producer_id.0, pending);
                response
            }
            Err(err) => {
                tracing::error!(group = %group, error = %err, "could not store transactional offsets");
                fail_all(
                    response,
                    ResponseError::try_from_code(err.code())
                        .unwrap_or(ResponseError::UnknownServerError),
                )
            }
        }
    }

    pub(crate) async fn describe_transactions(
        &self,
        req: DescribeTransactionsRequest,
        caller: &Caller,
    ) -> DescribeTransactionsResponse {
        let mut states = Vec::new();
        for id in req.transactional_ids {
            if !self.allows(
                caller,
                Operation::Describe,
                ResourceType::TransactionalId,
                &id,
            ) {
                states.push(
                    describe_transactions_response::TransactionState::default()
                        .with_transactional_id(id)
                        .with_error_code(ResponseError::TransactionalIdAuthorizationFailed.code()),
                );
                continue;
            }
            let Some(entry) = self.txn().entry(&id) else {
                states.push(
                    describe_transactions_response::TransactionState::default()
                        .with_transactional_id(id)
                        .with_error_code(ResponseError::TransactionalIdNotFound.code()),
                );
                continue;
            };
            let meta = entry.lock().await.clone();
            let mut by_topic: BTreeMap<String, Vec<i32>> = BTreeMap::new();
            // A completed (or empty) transaction has no partitions in Kafka's answer, whatever
            // the coordinator still remembers of the last one.
            let in_transaction = matches!(
                meta.state,
                TxnState::Ongoing | TxnState::PrepareCommit | TxnState::PrepareAbort
            );
            // Topics the caller may not describe are left out, as Kafka does.
            for (topic, partition) in meta.partitions.iter().filter(|(topic, _)| {
                in_transaction
                    && self.allows_quietly(caller, Operation::Describe, ResourceType::Topic, topic)
            }) {
                by_topic.entry(topic.clone()).or_default().push(*partition);
            }
            states.push(
                describe_transactions_response::TransactionState::default()
                    .with_transactional_id(id)
                    .with_transaction_state(s(meta.state.name()))
                    .with_transaction_timeout_ms(meta.timeout_ms)
                    .with_transaction_start_time_ms(if meta.state == TxnState::Ongoing {
                        meta.start_ms
                    } else {
                        -1
                    })
                    .with_producer_id(ProducerId(meta.producer_id))
                    .with_producer_epoch(meta.producer_epoch)
                    .with_topics(
                        by_topic
                            .into_iter()
                            .map(|(topic, partitions)| {
                                describe_transactions_response::TopicData::default()
                                    .with_topic(TopicName(s(&topic)))
                                    .with_partitions(partitions)
                            })
                            .collect(),
                    ),
            );
        }
        DescribeTransactionsResponse::default().with_transaction_states(states)
    }

    pub(crate) async fn list_transactions(
        &self,
        req: ListTransactionsRequest,
        version: i16,
        caller: &Caller,
    ) -> ListTransactionsResponse {
        let known = [
            "Empty",
            "Ongoing",
            "PrepareCommit",
            "PrepareAbort",
            "CompleteCommit",
            "CompleteAbort",
            "Dead",
            "PrepareEpochFence",
        ];
        let unknown: Vec<StrBytes> = req
            .state_filters
            .iter()
            .filter(|f| !known.contains(&f.as_str()))
            .cloned()
            .collect();
        let pattern = if version >= 2 {
            req.transactional_id_pattern
                .as_deref()
                .and_then(|p| regex::Regex::new(&format!("^(?:{p})$")).ok())
        } else {
            None
        };
        let now = self.now_ms();
        let states = self
            .txn()
            .snapshot()
            .await
            .into_iter()
            .filter(|(_, m)| {
                req.state_filters.is_empty()
                    || req
                        .state_filters
                        .iter()
                        .any(|f| f.as_str() == m.state.name())
            })
            .filter(|(_, m)| {
                req.producer_id_filters.is_empty()
                    || req.producer_id_filters.iter().any(|p| p.0 == m.producer_id)
            })
            .filter(|(_, m)| {
                version < 1
                    || req.duration_filter < 0
                    || (m.state == TxnState::Ongoing && now - m.start_ms >= req.duration_filter)
            })
            .filter(|(id, _)| pattern.as_ref().is_none_or(|re| re.is_match(id)))
            .filter(|(id, _)| {
                self.allows_quietly(
                    caller,
                    Operation::Describe,
                    ResourceType::TransactionalId,
                    id,
                )
            })
            .map(|(id, m)| {
                list_transactions_response::TransactionState::default()
                    .with_transactional_id(TransactionalId(s(&id)))
                    .with_producer_id(ProducerId(m.producer_id))
                    .with_transaction_state(s(m.state.name()))
            })
            .collect();
        ListTransactionsResponse::default()
            .with_unknown_state_filters(unknown)
            .with_transaction_states(states)
    }

    pub(crate) fn describe_producers(
        &self,
        req: DescribeProducersRequest,
        caller: &Caller,
    ) -> DescribeProducersResponse {
        let topics = req
            .topics
            .iter()
            .map(|topic| {
                let readable =
                    self.allows(caller, Operation::Read, ResourceType::Topic, &topic.name);
                let partitions = topic
                    .partition_indexes
                    .iter()
                    .map(|p| {
                        let response = describe_producers_response::PartitionResponse::default()
                            .with_partition_index(*p);
                        if !readable {
                            return response
                                .with_error_code(ResponseError::TopicAuthorizationFailed.code());
                        }
                        let Some(partition) =
                            self.topics.get(&topic.name).and_then(|t| t.partition(*p))
                        else {
                            return response
                                .with_error_code(ResponseError::UnknownTopicOrPartition.code());
                        };
                        let producers = partition
                            .log
                            .producer_entries()
                            .into_iter()
                            .map(|(pid, entry)| {
                                let last = entry.batches.back();
                                describe_producers_response::ProducerState::default()
                                    .with_producer_id(ProducerId(pid))
                                    .with_producer_epoch(i32::from(entry.epoch))
                                    .with_last_sequence(last.map_or(-1, |b| b.last_sequence))
                                    .with_last_timestamp(last.map_or(-1, |b| b.timestamp_ms))
                                    .with_coordinator_epoch(0)
                                    .with_current_txn_start_offset(
                                        entry.txn_first_offset.unwrap_or(-1),
                                    )
                            })
                            .collect();
                        response.with_active_producers(producers)
                    })
                    .collect();
                describe_producers_response::TopicResponse::default()
                    .with_name(topic.name.clone())
                    .with_partitions(partitions)
            })
            .collect();
        DescribeProducersResponse::default().with_topics(topics)
    }

    /// Aborts transactions past their timeout (fencing their producers) and finishes any
    /// left in a prepare state (after a restart).
    pub(crate) async fn tick_transactions(self: &Arc<Self>) {
        let now = self.now_ms();
        let entries: Vec<(String, Arc<tokio::sync::Mutex<TxnMetadata>>)> = self
            .txn()
            .txns
            .lock()
            .iter()
            .map(|(id, m)| (id.clone(), Arc::clone(m)))
            .collect();
        for (id, entry) in entries {
            let Ok(mut meta) = entry.try_lock() else {
                continue;
            };
            let timed_out = meta.state == TxnState::Ongoing
                && now.saturating_sub(meta.start_ms) > i64::from(meta.timeout_ms);
            let result = match meta.state {
                TxnState::Ongoing if timed_out => {
                    tracing::info!(transactional_id = %id, "aborting a transaction past its timeout");
                    let mut ended = meta.clone();
                    ended.producer_epoch = ended.producer_epoch.saturating_add(1);
                    self.txn().active.lock().remove(&meta.producer_id);
                    let result = self.complete(&id, &mut ended, false).await;
                    if result.is_ok() {
                        *meta = ended;
                    }
                    result
                }
                TxnState::PrepareCommit | TxnState::PrepareAbort => {
                    let commit = meta.state == TxnState::PrepareCommit;
                    let mut ended = meta.clone();
                    let result = self.complete(&id, &mut ended, commit).await;
                    if result.is_ok() {
                        *meta = ended;
                    }
                    result
                }
                _ => Ok(()),
            };
            if let Err(err) = result {
                tracing::error!(transactional_id = %id, error = %err, "could not end a transaction; retrying");
            }
        }
    }
}
