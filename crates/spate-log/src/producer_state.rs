//! Idempotent producer state of one partition: per producer id, its epoch and the metadata of
//! its last five batches, used to refuse out-of-order sequences and to answer retried batches
//! with their original offsets instead of appending them twice.
//!
//! The rules follow Kafka's `ProducerStateManager`: a batch from an older epoch is fenced; a new
//! epoch must start at sequence 0; within an epoch the first sequence must follow the last one;
//! a producer whose state is gone (expired, or removed with old segments) may continue at any
//! sequence. Everything here is derived from batch headers, so the state can always be rebuilt by
//! scanning the log; snapshots written at segment rolls make that scan short.

use std::collections::{HashMap, VecDeque};

use crate::batch::BatchHeader;
use crate::error::LogError;

/// Batches remembered per producer (Kafka's `max.in.flight.requests.per.connection` bound).
pub const BATCHES_PER_PRODUCER: usize = 5;

const SNAPSHOT_MAGIC: &[u8; 4] = b"SPPS";
const SNAPSHOT_VERSION: u32 = 2;

/// One appended batch of a producer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchMeta {
    /// Sequence of the first record.
    pub first_sequence: i32,
    /// Sequence of the last record.
    pub last_sequence: i32,
    /// Offset of the first record.
    pub base_offset: i64,
    /// Offset of the last record.
    pub last_offset: i64,
    /// The batch's max timestamp.
    pub timestamp_ms: i64,
}

/// What is known about one producer in this partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProducerEntry {
    /// Current epoch.
    pub epoch: i16,
    /// Newest batches, oldest first.
    pub batches: VecDeque<BatchMeta>,
    /// Wall-clock time of the producer's last append (for expiry).
    pub last_append_ms: i64,
    /// First offset of the producer's open transaction in this partition.
    pub txn_first_offset: Option<i64>,
}

/// A transaction that was aborted in this partition: read_committed consumers skip the
/// producer's records from `first_offset` to `last_offset` (the abort marker).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AbortedTxn {
    /// The producer.
    pub producer_id: i64,
    /// Offset of its first record in the transaction.
    pub first_offset: i64,
    /// Offset of the abort marker.
    pub last_offset: i64,
}

/// The verdict on an incoming idempotent batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// Append it.
    Append,
    /// A retry of a batch already in the log: answer with its offsets, append nothing.
    Duplicate(BatchMeta),
}

/// All producers of a partition.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProducerState {
    producers: HashMap<i64, ProducerEntry>,
    aborted: Vec<AbortedTxn>,
}

fn last_sequence(header: &BatchHeader) -> i32 {
    // Sequences wrap from i32::MAX back to 0.
    ((i64::from(header.base_sequence) + i64::from(header.last_offset_delta))
        % (i64::from(i32::MAX) + 1)) as i32
}

fn follows(last: i32, next: i32) -> bool {
    (last == i32::MAX && next == 0) || i64::from(next) == i64::from(last) + 1
}

impl ProducerState {
    /// Number of producers tracked.
    pub fn len(&self) -> usize {
        self.producers.len()
    }

    /// Whether no producer is tracked.
    pub fn is_empty(&self) -> bool {
        self.producers.is_empty()
    }

    /// A producer's entry.
    pub fn get(&self, producer_id: i64) -> Option<&ProducerEntry> {
        self.producers.get(&producer_id)
    }

    /// Decides whether an idempotent batch may be appended. Non-idempotent batches
    /// (producer id -1) always may.
    pub fn check(&self, header: &BatchHeader) -> Result<Admission, LogError> {
        if header.producer_id < 0 {
            return Ok(Admission::Append);
        }
        let Some(entry) = self.producers.get(&header.producer_id) else {
            return Ok(Admission::Append);
        };
        let epoch = header.producer_epoch;
        if epoch < entry.epoch {
            return Err(LogError::InvalidProducerEpoch {
                producer_id: header.producer_id,
                epoch,
                current_epoch: entry.epoch,
            });
        }
        if header.is_control() || header.base_sequence < 0 {
            // Transaction markers and the broker's own transactional writes (offsets committed
            // in a transaction) carry no sequence; producers' batches always do (validated).
            return Ok(Admission::Append);
        }
        let first = header.base_sequence;
        let last = last_sequence(header);
        if epoch > entry.epoch {
            if first != 0 {
                return Err(LogError::OutOfOrderSequence {
                    producer_id: header.producer_id,
                    expected: 0,
                    received: first,
                });
            }
            return Ok(Admission::Append);
        }
        if let Some(original) = entry
            .batches
            .iter()
            .find(|b| b.first_sequence == first && b.last_sequence == last)
        {
            return Ok(Admission::Duplicate(*original));
        }
        match entry.batches.back() {
            Some(newest) if !follows(newest.last_sequence, first) => {
                Err(LogError::OutOfOrderSequence {
                    producer_id: header.producer_id,
                    expected: newest.last_sequence.wrapping_add(1).max(0),
                    received: first,
                })
            }
            _ => Ok(Admission::Append),
        }
    }

    /// Records a batch that was appended (its header carries the assigned offsets).
    pub fn record(&mut self, header: &BatchHeader, now_ms: i64) {
        if header.producer_id < 0 {
            return;
        }
        let entry = self
            .producers
            .entry(header.producer_id)
            .or_insert_with(|| ProducerEntry {
                epoch: header.producer_epoch,
                batches: VecDeque::new(),
                last_append_ms: now_ms,
                txn_first_offset: None,
            });
        if header.producer_epoch != entry.epoch {
            entry.epoch = header.producer_epoch;
            entry.batches.clear();
        }
        entry.last_append_ms = now_ms;
        if header.is_control() {
            return;
        }
        if header.is_transactional() && entry.txn_first_offset.is_none() {
            entry.txn_first_offset = Some(header.base_offset);
        }
        if header.base_sequence < 0 {
            return;
        }
        entry.batches.push_back(BatchMeta {
            first_sequence: header.base_sequence,
            last_sequence: last_sequence(header),
            base_offset: header.base_offset,
            last_offset: header.last_offset(),
            timestamp_ms: header.max_timestamp,
        });
        while entry.batches.len() > BATCHES_PER_PRODUCER {
            entry.batches.pop_front();
        }
    }

    /// Records a transaction marker appended at `marker_offset`: the producer's open
    /// transaction in this partition ends, and an aborted one is remembered.
    pub fn record_marker(
        &mut self,
        producer_id: i64,
        epoch: i16,
        commit: bool,
        marker_offset: i64,
        now_ms: i64,
    ) {
        let entry = self
            .producers
            .entry(producer_id)
            .or_insert_with(|| ProducerEntry {
                epoch,
                batches: VecDeque::new(),
                last_append_ms: now_ms,
                txn_first_offset: None,
            });
        if epoch > entry.epoch {
            entry.epoch = epoch;
            entry.batches.clear();
        }
        entry.last_append_ms = now_ms;
        if let Some(first_offset) = entry.txn_first_offset.take()
            && !commit
        {
            self.aborted.push(AbortedTxn {
                producer_id,
                first_offset,
                last_offset: marker_offset,
            });
        }
    }

    /// The first offset of the oldest open transaction, if any (bounds the last stable offset).
    pub fn first_unstable_offset(&self) -> Option<i64> {
        self.producers
            .values()
            .filter_map(|e| e.txn_first_offset)
            .min()
    }

    /// The producers with an open transaction and where it started.
    pub fn open_transactions(&self) -> Vec<(i64, i64)> {
        let mut open: Vec<(i64, i64)> = self
            .producers
            .iter()
            .filter_map(|(pid, e)| e.txn_first_offset.map(|first| (*pid, first)))
            .collect();
        open.sort_unstable();
        open
    }

    /// Every producer with its entry (for DescribeProducers).
    pub fn producers(&self) -> impl Iterator<Item = (&i64, &ProducerEntry)> {
        self.producers.iter()
    }

    /// Aborted transactions overlapping `[from, to]`, by first offset.
    pub fn aborted_between(&self, from: i64, to: i64) -> Vec<AbortedTxn> {
        let mut out: Vec<AbortedTxn> = self
            .aborted
            .iter()
            .filter(|a| a.last_offset >= from && a.first_offset <= to)
            .copied()
            .collect();
        out.sort_by_key(|a| a.first_offset);
        out
    }

    /// Forgets aborted transactions that ended before the log start.
    pub fn truncate_aborted_below(&mut self, log_start_offset: i64) {
        self.aborted.retain(|a| a.last_offset >= log_start_offset);
    }

    /// Forgets producers idle for longer than `max_idle_ms` (Kafka's
    /// `producer.id.expiration.ms`). Returns how many were dropped.
    pub fn expire(&mut self, now_ms: i64, max_idle_ms: i64) -> usize {
        let before = self.producers.len();
        self.producers.retain(|_, entry| {
            entry.txn_first_offset.is_some()
                || now_ms.saturating_sub(entry.last_append_ms) < max_idle_ms
        });
        before - self.producers.len()
    }

    /// Encodes the state for a snapshot file (checksummed).
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend_from_slice(SNAPSHOT_MAGIC);
        out.extend_from_slice(&SNAPSHOT_VERSION.to_be_bytes());
        out.extend_from_slice(&(self.producers.len() as u32).to_be_bytes());
        let mut ids: Vec<&i64> = self.producers.keys().collect();
        ids.sort_unstable();
        for id in ids {
            let entry = &self.producers[id];
            out.extend_from_slice(&id.to_be_bytes());
            out.extend_from_slice(&entry.epoch.to_be_bytes());
            out.extend_from_slice(&entry.last_append_ms.to_be_bytes());
            out.extend_from_slice(&entry.txn_first_offset.unwrap_or(-1).to_be_bytes());
            out.push(entry.batches.len() as u8);
            for batch in &entry.batches {
                out.extend_from_slice(&batch.first_sequence.to_be_bytes());
                out.extend_from_slice(&batch.last_sequence.to_be_bytes());
                out.extend_from_slice(&batch.base_offset.to_be_bytes());
                out.extend_from_slice(&batch.last_offset.to_be_bytes());
                out.extend_from_slice(&batch.timestamp_ms.to_be_bytes());
            }
        }
        out.extend_from_slice(&(self.aborted.len() as u32).to_be_bytes());
        for aborted in &self.aborted {
            out.extend_from_slice(&aborted.producer_id.to_be_bytes());
            out.extend_from_slice(&aborted.first_offset.to_be_bytes());
            out.extend_from_slice(&aborted.last_offset.to_be_bytes());
        }
        let crc = crc32c::crc32c(&out);
        out.extend_from_slice(&crc.to_be_bytes());
        out
    }

    /// Decodes a snapshot; `None` if it is torn, corrupt or of another version.
    pub fn decode(bytes: &[u8]) -> Option<ProducerState> {
        if bytes.len() < 16 || &bytes[0..4] != SNAPSHOT_MAGIC {
            return None;
        }
        let (body, crc) = bytes.split_at(bytes.len() - 4);
        if crc32c::crc32c(body) != u32::from_be_bytes(crc.try_into().ok()?) {
            return None;
        }
        let mut reader = Reader { buf: &body[4..] };
        if reader.u32()? != SNAPSHOT_VERSION {
            return None;
        }
        let count = reader.u32()? as usize;
        let mut producers = HashMap::with_capacity(count.min(body.len() / 19));
        for _ in 0..count {
            let id = reader.i64()?;
            let epoch = reader.i16()?;
            let last_append_ms = reader.i64()?;
            let txn_first_offset = reader.i64()?;
            let n = reader.u8()? as usize;
            let mut batches = VecDeque::with_capacity(n.min(BATCHES_PER_PRODUCER));
            for _ in 0..n {
                batches.push_back(BatchMeta {
                    first_sequence: reader.i32()?,
                    last_sequence: reader.i32()?,
                    base_offset: reader.i64()?,
                    last_offset: reader.i64()?,
                    timestamp_ms: reader.i64()?,
                });
            }
            producers.insert(
                id,
                ProducerEntry {
                    epoch,
                    batches,
                    last_append_ms,
                    txn_first_offset: (txn_first_offset >= 0).then_some(txn_first_offset),
                },
            );
        }
        let aborted_count = reader.u32()? as usize;
        let mut aborted = Vec::with_capacity(aborted_count.min(reader.buf.len() / 24));
        for _ in 0..aborted_count {
            aborted.push(AbortedTxn {
                producer_id: reader.i64()?,
                first_offset: reader.i64()?,
                last_offset: reader.i64()?,
            });
        }
        reader
            .buf
            .is_empty()
            .then_some(ProducerState { producers, aborted })
    }
}

struct Reader<'a> {
    buf: &'a [u8],
}

impl Reader<'_> {
    fn take<const N: usize>(&mut self) -> Option<[u8; N]> {
        let (head, rest) = self.buf.split_at_checked(N)?;
        self.buf = rest;
        head.try_into().ok()
    }
    fn u8(&mut self) -> Option<u8> {
        self.take::<1>().map(|b| b[0])
    }
    fn i16(&mut self) -> Option<i16> {
        self.take().map(i16::from_be_bytes)
    }
    fn i32(&mut self) -> Option<i32> {
        self.take().map(i32::from_be_bytes)
    }
    fn u32(&mut self) -> Option<u32> {
        self.take().map(u32::from_be_bytes)
    }
    fn i64(&mut self) -> Option<i64> {
        self.take().map(i64::from_be_bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(
        producer_id: i64,
        epoch: i16,
        base_sequence: i32,
        records: i32,
        base_offset: i64,
    ) -> BatchHeader {
        BatchHeader {
            base_offset,
            batch_length: 100,
            partition_leader_epoch: 0,
            magic: 2,
            crc: 0,
            attributes: 0,
            last_offset_delta: records - 1,
            base_timestamp: 0,
            max_timestamp: 0,
            producer_id,
            producer_epoch: epoch,
            base_sequence,
            record_count: records,
        }
    }

    #[test]
    fn in_order_batches_append_and_retries_are_duplicates() {
        let mut state = ProducerState::default();
        let first = header(7, 0, 0, 3, 10);
        assert!(matches!(state.check(&first), Ok(Admission::Append)));
        state.record(&first, 0);
        let retry = header(7, 0, 0, 3, 0);
        assert!(
            matches!(state.check(&retry), Ok(Admission::Duplicate(meta)) if meta.base_offset == 10 && meta.last_offset == 12)
        );
        assert!(matches!(
            state.check(&header(7, 0, 3, 1, 0)),
            Ok(Admission::Append)
        ));
        assert!(matches!(
            state.check(&header(7, 0, 5, 1, 0)),
            Err(LogError::OutOfOrderSequence {
                expected: 3,
                received: 5,
                ..
            })
        ));
    }

    #[test]
    fn epochs_fence_older_producers_and_restart_sequences() {
        let mut state = ProducerState::default();
        state.record(&header(7, 1, 0, 1, 0), 0);
        assert!(matches!(
            state.check(&header(7, 0, 1, 1, 0)),
            Err(LogError::InvalidProducerEpoch { .. })
        ));
        assert!(matches!(
            state.check(&header(7, 2, 4, 1, 0)),
            Err(LogError::OutOfOrderSequence { .. })
        ));
        assert!(matches!(
            state.check(&header(7, 2, 0, 1, 0)),
            Ok(Admission::Append)
        ));
        // A producer with no state may continue anywhere (its state expired).
        assert!(matches!(
            state.check(&header(8, 0, 42, 1, 0)),
            Ok(Admission::Append)
        ));
    }

    #[test]
    fn sequences_wrap_and_only_five_batches_are_remembered() {
        let mut state = ProducerState::default();
        state.record(&header(1, 0, i32::MAX - 1, 2, 0), 0);
        assert!(matches!(
            state.check(&header(1, 0, 0, 1, 0)),
            Ok(Admission::Append)
        ));
        for i in 0..7 {
            state.record(&header(2, 0, i, 1, i64::from(i)), 0);
        }
        assert_eq!(
            state.get(2).map(|e| e.batches.len()),
            Some(BATCHES_PER_PRODUCER)
        );
        assert!(matches!(
            state.check(&header(2, 0, 6, 1, 0)),
            Ok(Admission::Duplicate(_))
        ));
    }

    #[test]
    fn snapshots_round_trip_and_reject_corruption() {
        let mut state = ProducerState::default();
        for pid in 0..10 {
            state.record(&header(pid, 3, 0, 5, pid * 10), 99);
        }
        let bytes = state.encode();
        assert_eq!(ProducerState::decode(&bytes), Some(state.clone()));
        let mut corrupt = bytes.clone();
        corrupt[20] ^= 1;
        assert_eq!(ProducerState::decode(&corrupt), None);
        assert_eq!(ProducerState::decode(&bytes[..bytes.len() - 1]), None);
        assert_eq!(state.expire(99 + 1000, 1000), 10);
    }
}
