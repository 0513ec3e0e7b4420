//! A partition's log: an ordered list of segments, the last one active.
//!
//! Appends are serialised by one mutex. Reads take the mutex only to find the file and byte
//! range, then read without it. Two marks bound what is visible:
//!
//! - the **durable** mark: everything before it has been fsync'd;
//! - the **high watermark**: everything before it is visible to readers and counted by
//!   `latest` offsets. With `flush.messages=1` (the default) it equals the durable mark, so a
//!   consumer never sees a record that a crash could take back; otherwise it is the log end.
//!
//! fsync happens outside the mutex (see [`crate::Syncer`]); a failed fsync takes the log offline
//! rather than pretending the data is safe.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use bytes::Bytes;
use parking_lot::Mutex;
use tokio::sync::watch;

use crate::batch::{self, BatchHeader, HEADER_LEN};
use crate::config::{LogConfig, TimestampType};
use crate::error::LogError;
use crate::producer_state::{AbortedTxn, Admission, ProducerEntry, ProducerState};
use crate::segment::{OpenMode, Segment};

const LOG_START_FILE: &str = "log-start-offset";
const SNAPSHOT_SUFFIX: &str = ".snapshot";
/// Producer-state snapshots kept per partition.
const SNAPSHOTS_KEPT: usize = 2;
/// Upper bound for decompressing one batch when a lookup must look inside it.
const MAX_LOOKUP_DECOMPRESSED_BYTES: usize = 256 << 20;

/// A position in the log: an offset and where it falls on disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Mark {
    offset: i64,
    segment_base: i64,
    position: u64,
}

/// Result of an append.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AppendInfo {
    /// Offset assigned to the first record.
    pub base_offset: i64,
    /// Offset of the last record.
    pub last_offset: i64,
    /// The broker's append time for log-append-time topics, else -1.
    pub log_append_time_ms: i64,
    /// First offset held by the log.
    pub log_start_offset: i64,
    /// Whether the caller must request an fsync (and, for acks=all, wait for it).
    pub needs_sync: bool,
    /// Whether the append is acknowledged only once durable.
    pub wait_for_durable: bool,
    /// Whether this was a retried idempotent batch already in the log (nothing was written;
    /// the offsets are the original ones).
    pub duplicate: bool,
}

/// Result of a read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadResult {
    /// Whole record batches starting with the one that holds the requested offset.
    pub records: Bytes,
    /// High watermark at the time of the read.
    pub high_watermark: i64,
    /// Offset below which every transaction is decided (= high watermark without open ones).
    pub last_stable_offset: i64,
    /// First offset held by the log.
    pub log_start_offset: i64,
}

/// Offsets describing the log's extent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogOffsets {
    /// First offset held.
    pub log_start_offset: i64,
    /// Offset after the last visible record.
    pub high_watermark: i64,
    /// Offset after the last record written.
    pub log_end_offset: i64,
    /// Offset after the last fsync'd record.
    pub durable_offset: i64,
    /// Offset below which every transaction is decided.
    pub last_stable_offset: i64,
}

/// What opening the log found.
#[derive(Debug, Default, Clone)]
pub struct OpenReport {
    /// Segments opened.
    pub segments: usize,
    /// Bytes cut from a torn or corrupt tail.
    pub truncated_bytes: u64,
    /// Why the tail was cut.
    pub truncation_reason: Option<String>,
    /// Indexes rebuilt from the log.
    pub rebuilt_indexes: usize,
    /// Batches read to rebuild idempotent producer state.
    pub replayed_batches: usize,
}

/// What a retention pass removed.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct RetentionReport {
    /// Segments deleted.
    pub deleted_segments: usize,
    /// Bytes freed.
    pub deleted_bytes: u64,
}

struct Inner {
    config: LogConfig,
    segments: Vec<Segment>,
    /// Wall-clock time of the active segment's first append (for `segment.ms`).
    active_since_ms: Option<i64>,
    log_start_offset: i64,
    high_watermark: Mark,
    durable: Mark,
    unflushed_messages: i64,
    last_flush_ms: i64,
    offline: Option<String>,
    closed: bool,
    leader_epoch: i32,
    /// Offsets below this have been through a compaction pass (in memory: a restart cleans
    /// the whole log once more, which is safe).
    first_dirty_offset: i64,
    /// Idempotent producers seen in this partition.
    producers: ProducerState,
    /// The log end for which the active segment is synced and its index and a producer
    /// snapshot are on disk, as a clean stop left them; `None` once anything changed.
    persisted_end: Option<i64>,
}

impl Inner {
    fn active(&self) -> &Segment {
        self.segments
            .last()
            .expect("a log always has an active segment")
    }

    fn active_mut(&mut self) -> &mut Segment {
        self.segments
            .last_mut()
            .expect("a log always has an active segment")
    }

    fn end_mark(&self) -> Mark {
        let active = self.active();
        Mark {
            offset: active.meta.next_offset,
            segment_base: active.base_offset,
            position: active.meta.size,
        }
    }

    fn visible_limit(&self, segment: &Segment) -> Option<u64> {
        let hw = self.high_watermark;
        if segment.base_offset < hw.segment_base {
            Some(segment.meta.size)
        } else if segment.base_offset == hw.segment_base {
            Some(hw.position)
        } else {
            None
        }
    }

    fn segment_index_for(&self, offset: i64) -> usize {
        self.segments
            .partition_point(|segment| segment.base_offset <= offset)
            .saturating_sub(1)
    }

    fn last_stable_offset(&self) -> i64 {
        let hw = self.high_watermark.offset;
        self.producers
            .first_unstable_offset()
            .map_or(hw, |first| first.min(hw))
    }

    fn check_writable(&self) -> Result<(), LogError> {
        if self.closed {
            return Err(LogError::Closed);
        }
        if let Some(reason) = &self.offline {
            return Err(LogError::Offline {
                reason: reason.clone(),
            });
        }
        Ok(())
    }
}

/// A partition's log. Share it as `Arc<Log>`.
pub struct Log {
    dir: PathBuf,
    name: String,
    inner: Mutex<Inner>,
    visible_tx: watch::Sender<i64>,
    durable_tx: watch::Sender<i64>,
    pub(crate) sync_queued: AtomicBool,
}

impl std::fmt::Debug for Log {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Log")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl Log {
    /// Creates an empty log in `dir` (which must exist and be empty).
    pub fn create(
        dir: &Path,
        name: String,
        config: LogConfig,
        now_ms: i64,
    ) -> Result<Log, LogError> {
        let segment = Segment::create(dir, 0)?;
        sync_dir(dir)?;
        Ok(Log::from_parts(
            dir,
            name,
            config,
            vec![segment],
            0,
            ProducerState::default(),
            now_ms,
        ))
    }

    /// Opens the log in `dir`. After an unclean shutdown (`clean == false`) the active segment
    /// is verified batch by batch and cut at the first torn or corrupt batch.
    pub fn open(
        dir: &Path,
        name: String,
        config: LogConfig,
        clean: bool,
        now_ms: i64,
    ) -> Result<(Log, OpenReport), LogError> {
        let mut bases = Vec::new();
        let entries = std::fs::read_dir(dir).map_err(|e| LogError::io("list log", dir, e))?;
        for entry in entries {
            let entry = entry.map_err(|e| LogError::io("list log", dir, e))?;
            let file_name = entry.file_name();
            let file_name = file_name.to_string_lossy();
            if let Some(stem) = file_name.strip_suffix(".log") {
                if let Ok(base) = stem.parse::<i64>() {
                    bases.push(base);
                }
            } else if file_name.ends_with(".tmp") || file_name.ends_with(".cleaned") {
                let _ = std::fs::remove_file(entry.path());
            }
        }
        bases.sort_unstable();
        let mut report = OpenReport::default();
        let mut segments = Vec::with_capacity(bases.len());
        let interval = config.index_interval_bytes;
        let mut active_index_read = false;
        for (i, base) in bases.iter().enumerate() {
            let last = i + 1 == bases.len();
            let mode = if last && !clean {
                OpenMode::Recover
            } else {
                OpenMode::Trusted
            };
            let (segment, segment_report) = Segment::open(dir, *base, mode, interval)?;
            if segment_report.rebuilt_index {
                report.rebuilt_indexes += 1;
            }
            active_index_read = last && !segment_report.rebuilt_index;
            if segment_report.truncated_bytes > 0 {
                tracing::warn!(
                    log = %name,
                    segment = base,
                    truncated_bytes = segment_report.truncated_bytes,
                    reason = segment_report.reason.as_deref().unwrap_or(""),
                    "recovery cut an invalid tail off the log"
                );
                report.truncated_bytes += segment_report.truncated_bytes;
                report.truncation_reason = segment_report.reason;
            }
            segments.push(segment);
        }
        let stored_start = read_log_start(dir);
        if segments.is_empty() {
            let base = stored_start.unwrap_or(0).max(0);
            segments.push(Segment::create(dir, base)?);
            sync_dir(dir)?;
        }
        // After a crash the active segment's bytes survived in the page cache; make them
        // durable before anyone treats them as acknowledged. A clean stop synced them already.
        if let Some(active) = segments.last().filter(|_| !clean) {
            active
                .file
                .sync_data()
                .map_err(|e| LogError::io("sync segment", &active.log_path, e))?;
        }
        // The stored start wins: compaction may have removed the first segments entirely
        // without moving the start, and reads below the first segment find the next batch.
        let first_base = segments.first().map_or(0, |s| s.base_offset);
        let log_start = stored_start.unwrap_or(first_base);
        report.segments = segments.len();
        let (producers, replayed, snapshot) = restore_producers(dir, &segments)?;
        report.replayed_batches = replayed;
        let log = Log::from_parts(dir, name, config, segments, log_start, producers, now_ms);
        {
            // What a clean stop left is still true until the log changes: `close` can skip it.
            let mut inner = log.inner.lock();
            let end = inner.end_mark().offset;
            if clean && active_index_read && snapshot == Some(end) {
                inner.persisted_end = Some(end);
            }
        }
        Ok((log, report))
    }

    fn from_parts(
        dir: &Path,
        name: String,
        config: LogConfig,
        segments: Vec<Segment>,
        log_start_offset: i64,
        producers: ProducerState,
        now_ms: i64,
    ) -> Log {
        let active = segments.last().expect("at least one segment");
        let end = Mark {
            offset: active.meta.next_offset,
            segment_base: active.base_offset,
            position: active.meta.size,
        };
        let active_since_ms = (active.meta.size > 0).then_some(now_ms);
        Log {
            dir: dir.to_path_buf(),
            name,
            inner: Mutex::new(Inner {
                config,
                segments,
                active_since_ms,
                log_start_offset: log_start_offset.min(end.offset),
                high_watermark: end,
                durable: end,
                unflushed_messages: 0,
                last_flush_ms: now_ms,
                offline: None,
                closed: false,
                leader_epoch: 0,
                first_dirty_offset: 0,
                producers,
                persisted_end: None,
            }),
            visible_tx: watch::Sender::new(end.offset),
            durable_tx: watch::Sender::new(end.offset),
            sync_queued: AtomicBool::new(false),
        }
    }

    /// The log's name for messages (`topic-partition`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The directory holding the segments.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The current config.
    pub fn config(&self) -> LogConfig {
        self.inner.lock().config.clone()
    }

    /// Replaces the config; takes effect for the next append, read and retention pass.
    pub fn set_config(&self, config: LogConfig) {
        let mut inner = self.inner.lock();
        inner.config = config;
        if !inner.config.sync_every_write() {
            let end = inner.end_mark();
            if end.offset > inner.high_watermark.offset {
                inner.high_watermark = end;
                self.visible_tx.send_replace(end.offset);
            }
        }
    }

    /// Current offsets.
    pub fn offsets(&self) -> LogOffsets {
        let inner = self.inner.lock();
        LogOffsets {
            log_start_offset: inner.log_start_offset,
            high_watermark: inner.high_watermark.offset,
            log_end_offset: inner.end_mark().offset,
            durable_offset: inner.durable.offset,
            last_stable_offset: inner.last_stable_offset(),
        }
    }

    /// Bytes held in segment files.
    pub fn size_bytes(&self) -> u64 {
        self.inner.lock().segments.iter().map(|s| s.meta.size).sum()
    }

    /// Number of segments.
    pub fn segment_count(&self) -> usize {
        self.inner.lock().segments.len()
    }

    /// Base offsets of the segments, oldest first.
    pub fn segment_bases(&self) -> Vec<i64> {
        self.inner
            .lock()
            .segments
            .iter()
            .map(|s| s.base_offset)
            .collect()
    }

    /// A receiver that changes whenever the high watermark moves.
    pub fn watch_high_watermark(&self) -> watch::Receiver<i64> {
        self.visible_tx.subscribe()
    }

    /// Appends one validated batch (as sent by a producer), assigning its offsets.
    ///
    /// The stored copy carries the assigned base offset, the leader epoch and, for
    /// log-append-time topics, the append time (with its CRC); `batch` itself is not modified
    /// or copied. On error nothing is appended.
    pub fn append(
        &self,
        batch: &[u8],
        header: &BatchHeader,
        now_ms: i64,
    ) -> Result<AppendInfo, LogError> {
        self.append_inner(batch, header, None, now_ms)
    }

    /// Appends a transaction marker (commit or abort) for a producer's transaction.
    pub fn append_marker(
        &self,
        producer_id: i64,
        producer_epoch: i16,
        commit: bool,
        coordinator_epoch: i32,
        now_ms: i64,
    ) -> Result<AppendInfo, LogError> {
        let batch = batch::build_marker(
            producer_id,
            producer_epoch,
            commit,
            coordinator_epoch,
            now_ms,
        );
        let header = BatchHeader::parse(&batch)?;
        self.append_inner(&batch, &header, Some(commit), now_ms)
    }

    fn append_inner(
        &self,
        batch: &[u8],
        header: &BatchHeader,
        marker: Option<bool>,
        now_ms: i64,
    ) -> Result<AppendInfo, LogError> {
        if batch.len() < HEADER_LEN || batch.len() != header.total_len() {
            return Err(LogError::Batch(crate::BatchError::Truncated {
                needed_bytes: header.total_len().max(HEADER_LEN),
                available_bytes: batch.len(),
            }));
        }
        let mut inner = self.inner.lock();
        inner.check_writable()?;
        self.append_locked(&mut inner, batch, header, marker, None, now_ms)
    }

    /// Appends a batch of a mirror topic (`spate.mirror.offsets=preserve`): each record goes to
    /// the source offset its `spate.source.offset` header gives (see [`crate::mirror`]), records
    /// the log already holds (below the log end) are skipped, and a record without the header is
    /// refused. Offsets between are a gap, as compaction leaves them. An idempotent producer's
    /// retry is answered as for any topic.
    pub fn append_at_source_offsets(
        &self,
        batch: &[u8],
        header: &BatchHeader,
        now_ms: i64,
        limit_bytes: usize,
    ) -> Result<AppendInfo, LogError> {
        let mut inner = self.inner.lock();
        inner.check_writable()?;
        if let Admission::Duplicate(original) = inner.producers.check(header)? {
            let sync = inner.config.sync_every_write();
            return Ok(AppendInfo {
                base_offset: original.base_offset,
                last_offset: original.last_offset,
                log_append_time_ms: -1,
                log_start_offset: inner.log_start_offset,
                needs_sync: sync,
                wait_for_durable: sync,
                duplicate: true,
            });
        }
        let log_end = inner.active().meta.next_offset;
        let placed =
            match crate::mirror::place_at_source_offsets(batch, header, log_end, limit_bytes)? {
                crate::mirror::Placement::Placed(placed) => placed,
                crate::mirror::Placement::AlreadyHeld {
                    first_offset,
                    last_offset,
                } => {
                    // The producer's sequence still moves on, so its next batch follows.
                    let mut sequenced = *header;
                    sequenced.base_offset = first_offset;
                    inner.producers.record(&sequenced, now_ms);
                    let sync = inner.config.sync_every_write();
                    return Ok(AppendInfo {
                        base_offset: first_offset,
                        last_offset: last_offset.min(log_end - 1),
                        log_append_time_ms: -1,
                        log_start_offset: inner.log_start_offset,
                        needs_sync: sync,
                        wait_for_durable: sync,
                        duplicate: true,
                    });
                }
            };
        let placed_header = BatchHeader::parse(&placed)?;
        let info = self.append_locked(
            &mut inner,
            &placed,
            &placed_header,
            None,
            Some(placed_header.base_offset),
            now_ms,
        )?;
        // The stored batch carries no sequence (its offset deltas count source offsets); the
        // producer's sequence is remembered from the batch as sent.
        let mut sequenced = *header;
        sequenced.base_offset = info.base_offset;
        inner.producers.record(&sequenced, now_ms);
        Ok(info)
    }

    /// Appends under the lock: at the log end, or at `at` (a mirror's source offset, at or past
    /// the log end).
    fn append_locked(
        &self,
        inner: &mut Inner,
        batch: &[u8],
        header: &BatchHeader,
        marker: Option<bool>,
        at: Option<i64>,
        now_ms: i64,
    ) -> Result<AppendInfo, LogError> {
        if batch.len() < HEADER_LEN || batch.len() != header.total_len() {
            return Err(LogError::Batch(crate::BatchError::Truncated {
                needed_bytes: header.total_len().max(HEADER_LEN),
                available_bytes: batch.len(),
            }));
        }
        let mut prefix = [0u8; HEADER_LEN];
        prefix.copy_from_slice(&batch[..HEADER_LEN]);
        let records = &batch[HEADER_LEN..];
        let config = &inner.config;
        if batch.len() > config.max_message_bytes {
            return Err(LogError::MessageTooLarge {
                size_bytes: batch.len(),
                limit_bytes: config.max_message_bytes,
            });
        }
        if batch.len() as u64 > config.segment_bytes {
            return Err(LogError::BatchLargerThanSegment {
                size_bytes: batch.len(),
                segment_bytes: config.segment_bytes,
            });
        }
        let mut header = *header;
        if let Admission::Duplicate(original) = inner.producers.check(&header)? {
            let sync = config.sync_every_write();
            return Ok(AppendInfo {
                base_offset: original.base_offset,
                last_offset: original.last_offset,
                log_append_time_ms: -1,
                log_start_offset: inner.log_start_offset,
                needs_sync: sync,
                wait_for_durable: sync,
                duplicate: true,
            });
        }
        let log_append_time_ms = match config.timestamp_type {
            TimestampType::LogAppendTime => {
                batch::set_log_append_time_split(&mut prefix, records, now_ms);
                header.max_timestamp = now_ms;
                header.attributes |= 0x08;
                now_ms
            }
            TimestampType::CreateTime => {
                let earliest = now_ms.saturating_sub(config.timestamp_before_max_ms);
                let latest = now_ms.saturating_add(config.timestamp_after_max_ms);
                for timestamp_ms in [header.base_timestamp, header.max_timestamp] {
                    if timestamp_ms < earliest || timestamp_ms > latest {
                        return Err(LogError::InvalidTimestamp {
                            timestamp_ms,
                            now_ms,
                        });
                    }
                }
                -1
            }
        };
        self.maybe_roll(
            inner,
            batch.len() as u64,
            at,
            header.last_offset_delta,
            now_ms,
        )?;
        let log_end = inner.active().meta.next_offset;
        let base_offset = match at {
            Some(at) => {
                assert!(
                    at >= log_end,
                    "a placed batch starts at or past the log end"
                );
                at
            }
            None => log_end,
        };
        batch::set_base_offset(&mut prefix, base_offset);
        batch::set_partition_leader_epoch(&mut prefix, inner.leader_epoch);
        header.base_offset = base_offset;
        let interval = inner.config.index_interval_bytes;
        inner
            .active_mut()
            .append([&prefix, records], &header, interval)?;
        match marker {
            Some(commit) => inner.producers.record_marker(
                header.producer_id,
                header.producer_epoch,
                commit,
                base_offset,
                now_ms,
            ),
            None => inner.producers.record(&header, now_ms),
        }
        if inner.active_since_ms.is_none() {
            inner.active_since_ms = Some(now_ms);
        }
        let sync_every_write = inner.config.sync_every_write();
        let mut needs_sync = sync_every_write;
        if !sync_every_write {
            inner.unflushed_messages += i64::from(header.record_count);
            let end = inner.end_mark();
            inner.high_watermark = end;
            self.visible_tx.send_replace(end.offset);
            needs_sync = inner.unflushed_messages >= inner.config.flush_messages;
        }
        Ok(AppendInfo {
            base_offset,
            last_offset: header.last_offset(),
            log_append_time_ms,
            log_start_offset: inner.log_start_offset,
            needs_sync,
            wait_for_durable: sync_every_write,
            duplicate: false,
        })
    }

    /// Rolls the active segment when the incoming batch (at the log end, or at `at`) would make
    /// it too big, too old, or overflow its 32-bit relative offsets.
    fn maybe_roll(
        &self,
        inner: &mut Inner,
        incoming_bytes: u64,
        at: Option<i64>,
        last_offset_delta: i32,
        now_ms: i64,
    ) -> Result<(), LogError> {
        let active = inner.active();
        let base = at.unwrap_or(active.meta.next_offset);
        let offsets_overflow = !active.fits_offset(base + i64::from(last_offset_delta));
        if offsets_overflow && at.is_some() {
            // A mirrored batch far past the segment's base (the source's log starts late, or
            // a long gap) starts a segment of its own.
            return self.roll_at(inner, base);
        }
        if active.meta.size == 0 {
            return Ok(());
        }
        let too_big = active.meta.size + incoming_bytes > inner.config.segment_bytes;
        let too_old = inner
            .active_since_ms
            .is_some_and(|since| now_ms.saturating_sub(since) >= inner.config.segment_ms);
        if too_big || too_old || offsets_overflow {
            self.roll(inner)?;
        }
        Ok(())
    }

    /// Seals the active segment (fsync + index) and starts a new one at the log end.
    fn roll(&self, inner: &mut Inner) -> Result<(), LogError> {
        let next_offset = inner.active().meta.next_offset;
        self.roll_at(inner, next_offset)
    }

    /// Seals the active segment and starts a new one at `new_base` (at or past the log end);
    /// offsets between are a gap.
    fn roll_at(&self, inner: &mut Inner, new_base: i64) -> Result<(), LogError> {
        let next_offset = inner.active().meta.next_offset;
        assert!(
            new_base >= next_offset,
            "a new segment starts at or past the log end"
        );
        if let Err(err) = inner.active().seal(&self.dir) {
            inner.offline = Some(err.to_string());
            self.durable_tx.send_modify(|_| {});
            return Err(err);
        }
        write_snapshot(&self.dir, next_offset, &inner.producers)?;
        let segment = Segment::create(&self.dir, new_base)?;
        sync_dir(&self.dir)?;
        let new_base = segment.base_offset;
        inner.segments.push(segment);
        inner.active_since_ms = None;
        inner.persisted_end = None;
        // Everything in the sealed segment is now on disk.
        let boundary = Mark {
            offset: next_offset,
            segment_base: new_base,
            position: 0,
        };
        if inner.durable.offset <= next_offset {
            inner.durable = boundary;
            self.durable_tx.send_replace(next_offset);
        }
        if inner.high_watermark.offset <= next_offset {
            inner.high_watermark = boundary;
            self.visible_tx.send_replace(next_offset);
        }
        Ok(())
    }

    /// Starts a new segment now (used by tests and by retention of an expired active segment).
    pub fn force_roll(&self) -> Result<(), LogError> {
        let mut inner = self.inner.lock();
        inner.check_writable()?;
        if inner.active().meta.size == 0 {
            return Ok(());
        }
        self.roll(&mut inner)
    }

    /// Makes everything appended so far durable and, with `flush.messages=1`, visible.
    /// Called from a [`crate::Syncer`] thread; blocks on fsync.
    pub fn sync(&self, now_ms: i64) -> Result<(), LogError> {
        self.sync_recorded(now_ms, None)
    }

    /// [`Log::sync`], recording how long the fsync itself took when one was needed.
    pub(crate) fn sync_recorded(
        &self,
        now_ms: i64,
        fsync_seconds: Option<&spate_metrics::Histogram>,
    ) -> Result<(), LogError> {
        let (file, target) = {
            let inner = self.inner.lock();
            if inner.closed {
                return Ok(());
            }
            inner.check_writable()?;
            let target = inner.end_mark();
            if target.offset <= inner.durable.offset {
                return Ok(());
            }
            (Arc::clone(&inner.active().file), target)
        };
        let started = std::time::Instant::now();
        let result = file.sync_data();
        if let Some(histogram) = fsync_seconds {
            histogram.observe_since(started);
        }
        let mut inner = self.inner.lock();
        match result {
            Err(err) => {
                tracing::error!(log = %self.name, error = %err, "fsync failed; taking the log offline");
                inner.offline = Some(format!("fsync failed: {err}"));
                self.durable_tx.send_modify(|_| {});
                Err(LogError::Offline {
                    reason: err.to_string(),
                })
            }
            Ok(()) => {
                if target.offset > inner.durable.offset {
                    inner.durable = target;
                    self.durable_tx.send_replace(target.offset);
                    if inner.config.sync_every_write()
                        && target.offset > inner.high_watermark.offset
                    {
                        inner.high_watermark = target;
                        self.visible_tx.send_replace(target.offset);
                    }
                }
                inner.unflushed_messages = 0;
                inner.last_flush_ms = now_ms;
                Ok(())
            }
        }
    }

    /// Whether `flush.ms` says a relaxed-durability log is due for an fsync.
    pub fn flush_due(&self, now_ms: i64) -> bool {
        let inner = self.inner.lock();
        !inner.config.sync_every_write()
            && inner.durable.offset < inner.end_mark().offset
            && now_ms.saturating_sub(inner.last_flush_ms) >= inner.config.flush_ms
    }

    /// Waits until every offset below `offset` is durable.
    pub async fn wait_durable(&self, offset: i64) -> Result<(), LogError> {
        let mut rx = self.durable_tx.subscribe();
        loop {
            {
                let inner = self.inner.lock();
                if inner.durable.offset >= offset {
                    return Ok(());
                }
                if let Some(reason) = &inner.offline {
                    return Err(LogError::Offline {
                        reason: reason.clone(),
                    });
                }
                if inner.closed {
                    return Err(LogError::Closed);
                }
            }
            rx.borrow_and_update();
            // Re-check after marking seen so a change between the check and here is not missed.
            if *rx.borrow() >= offset {
                continue;
            }
            if rx.changed().await.is_err() {
                return Err(LogError::Closed);
            }
        }
    }

    /// Reads whole batches starting with the one holding `offset`, up to `max_bytes`
    /// (the first batch is returned whole even if larger when `min_one_batch`).
    /// Blocks on file reads: call it off the async workers.
    pub fn read(
        &self,
        offset: i64,
        max_bytes: usize,
        min_one_batch: bool,
    ) -> Result<ReadResult, LogError> {
        self.read_isolated(offset, max_bytes, min_one_batch, false)
    }

    /// [`Log::read`], stopping at the last stable offset when `committed_only`
    /// (read_committed consumers).
    pub fn read_isolated(
        &self,
        offset: i64,
        max_bytes: usize,
        min_one_batch: bool,
        committed_only: bool,
    ) -> Result<ReadResult, LogError> {
        let (candidates, high_watermark, last_stable_offset, log_start_offset) = {
            let inner = self.inner.lock();
            if inner.closed {
                return Err(LogError::Closed);
            }
            let log_end = inner.end_mark().offset;
            if offset < inner.log_start_offset || offset > log_end {
                return Err(LogError::OffsetOutOfRange {
                    offset,
                    log_start_offset: inner.log_start_offset,
                    log_end_offset: log_end,
                });
            }
            let hw = inner.high_watermark.offset;
            let lso = inner.last_stable_offset();
            let limit = if committed_only { lso } else { hw };
            if offset >= limit {
                return Ok(ReadResult {
                    records: Bytes::new(),
                    high_watermark: hw,
                    last_stable_offset: lso,
                    log_start_offset: inner.log_start_offset,
                });
            }
            let first = inner.segment_index_for(offset);
            let mut candidates = Vec::new();
            for (i, segment) in inner.segments.iter().enumerate().skip(first).take(4) {
                let Some(limit) = inner.visible_limit(segment) else {
                    break;
                };
                let start = if i == first {
                    segment.lookup_offset(offset)
                } else {
                    0
                };
                candidates.push((Arc::clone(&segment.file), start, limit));
            }
            (candidates, hw, lso, inner.log_start_offset)
        };
        let max_offset = if committed_only {
            last_stable_offset
        } else {
            high_watermark
        };
        for (file, start, limit) in candidates {
            let found = read_from(
                &file,
                ReadRange {
                    start,
                    limit,
                    offset,
                    max_offset,
                },
                max_bytes,
                min_one_batch,
            )
            .map_err(|e| LogError::io("read", &self.dir, e))?;
            if let Some(records) = found {
                return Ok(ReadResult {
                    records,
                    high_watermark,
                    last_stable_offset,
                    log_start_offset,
                });
            }
        }
        Ok(ReadResult {
            records: Bytes::new(),
            high_watermark,
            last_stable_offset,
            log_start_offset,
        })
    }

    /// The first offset whose record timestamp is at or after `timestamp_ms`, with that
    /// record's timestamp; `None` if every visible record is older.
    pub fn offset_for_timestamp(&self, timestamp_ms: i64) -> Result<Option<(i64, i64)>, LogError> {
        let (candidates, log_start) = {
            let inner = self.inner.lock();
            let mut candidates = Vec::new();
            for segment in &inner.segments {
                if segment.meta.next_offset <= inner.log_start_offset
                    || segment.meta.max_timestamp < timestamp_ms
                {
                    continue;
                }
                let Some(limit) = inner.visible_limit(segment) else {
                    break;
                };
                candidates.push((
                    Arc::clone(&segment.file),
                    segment.lookup_timestamp(timestamp_ms),
                    limit,
                ));
            }
            (candidates, inner.log_start_offset)
        };
        for (file, start, limit) in candidates {
            let mut position = start;
            while position < limit {
                let header =
                    read_header(&file, position).map_err(|e| LogError::io("read", &self.dir, e))?;
                let total = header.total_len() as u64;
                if header.last_offset() >= log_start && header.max_timestamp >= timestamp_ms {
                    if header.is_log_append_time() {
                        return Ok(Some((
                            header.base_offset.max(log_start),
                            header.max_timestamp,
                        )));
                    }
                    let bytes = Segment::read_at(&file, position, total as usize)
                        .map_err(|e| LogError::io("read", &self.dir, e))?;
                    let records = batch::record_bytes(&bytes, MAX_LOOKUP_DECOMPRESSED_BYTES)?;
                    for record in batch::parse_records(&records, &header)? {
                        let offset = header.base_offset + i64::from(record.offset_delta);
                        let record_ts = header.base_timestamp + record.timestamp_delta;
                        if offset >= log_start && record_ts >= timestamp_ms {
                            return Ok(Some((offset, record_ts)));
                        }
                    }
                }
                position += total;
            }
        }
        Ok(None)
    }

    /// The offset and timestamp of the record with the largest timestamp (KIP-734).
    pub fn max_timestamp_offset(&self) -> Result<Option<(i64, i64)>, LogError> {
        let target = {
            let inner = self.inner.lock();
            let mut best: Option<(i64, i64, Arc<File>, u64)> = None;
            for segment in &inner.segments {
                if inner.visible_limit(segment).is_none() {
                    break;
                }
                let meta = &segment.meta;
                if meta.size == 0 || meta.next_offset <= inner.log_start_offset {
                    continue;
                }
                if best
                    .as_ref()
                    .is_none_or(|(ts, ..)| meta.max_timestamp > *ts)
                {
                    let position = segment.lookup_offset(meta.max_timestamp_batch);
                    best = Some((
                        meta.max_timestamp,
                        meta.max_timestamp_batch,
                        Arc::clone(&segment.file),
                        position,
                    ));
                }
            }
            best
        };
        let Some((max_ts, batch_offset, file, mut position)) = target else {
            return Ok(None);
        };
        loop {
            let header =
                read_header(&file, position).map_err(|e| LogError::io("read", &self.dir, e))?;
            if header.base_offset < batch_offset {
                position += header.total_len() as u64;
                continue;
            }
            if header.is_log_append_time() || header.max_timestamp != max_ts {
                return Ok(Some((header.last_offset(), header.max_timestamp)));
            }
            let bytes = Segment::read_at(&file, position, header.total_len())
                .map_err(|e| LogError::io("read", &self.dir, e))?;
            let records = batch::record_bytes(&bytes, MAX_LOOKUP_DECOMPRESSED_BYTES)?;
            for record in batch::parse_records(&records, &header)? {
                if header.base_timestamp + record.timestamp_delta == max_ts {
                    return Ok(Some((
                        header.base_offset + i64::from(record.offset_delta),
                        max_ts,
                    )));
                }
            }
            return Ok(Some((header.last_offset(), max_ts)));
        }
    }

    /// Moves the log start forward (DeleteRecords). `offset` -1 means the high watermark.
    /// Returns the new log start offset.
    pub fn delete_records_before(&self, offset: i64) -> Result<i64, LogError> {
        let mut inner = self.inner.lock();
        inner.check_writable()?;
        let hw = inner.high_watermark.offset;
        let target = if offset == -1 { hw } else { offset };
        if target < 0 || target > hw {
            return Err(LogError::OffsetOutOfRange {
                offset: target,
                log_start_offset: inner.log_start_offset,
                log_end_offset: hw,
            });
        }
        if target > inner.log_start_offset {
            write_log_start(&self.dir, target)?;
            inner.log_start_offset = target;
            self.drop_segments_below_start(&mut inner);
        }
        Ok(inner.log_start_offset)
    }

    fn drop_segments_below_start(&self, inner: &mut Inner) -> RetentionReport {
        let start = inner.log_start_offset;
        inner.producers.truncate_aborted_below(start);
        let mut report = RetentionReport::default();
        while inner.segments.len() > 1
            && inner.segments[0].meta.next_offset <= inner.log_start_offset
        {
            let segment = inner.segments.remove(0);
            report.deleted_segments += 1;
            report.deleted_bytes += segment.meta.size;
            remove_segment_files(&self.dir, &segment);
        }
        report
    }

    /// Deletes segments past `retention.ms` or beyond `retention.bytes` (delete policy only).
    pub fn enforce_retention(&self, now_ms: i64) -> Result<RetentionReport, LogError> {
        let mut inner = self.inner.lock();
        if inner.closed || inner.offline.is_some() || !inner.config.delete {
            return Ok(RetentionReport::default());
        }
        let mut new_start = inner.log_start_offset;
        if let Some(retention_ms) = inner.config.retention_ms {
            let cutoff = now_ms.saturating_sub(retention_ms);
            let active = inner.active();
            let active_expired = active.meta.size > 0
                && active.meta.max_timestamp < cutoff
                && inner.high_watermark.offset == active.meta.next_offset;
            if active_expired {
                self.roll(&mut inner)?;
            }
            for segment in &inner.segments[..inner.segments.len() - 1] {
                if segment.meta.max_timestamp >= cutoff {
                    break;
                }
                new_start = new_start.max(segment.meta.next_offset);
            }
        }
        if let Some(retention_bytes) = inner.config.retention_bytes {
            let mut total: u64 = inner.segments.iter().map(|s| s.meta.size).sum();
            for segment in &inner.segments[..inner.segments.len() - 1] {
                if total.saturating_sub(segment.meta.size) < retention_bytes {
                    break;
                }
                total -= segment.meta.size;
                new_start = new_start.max(segment.meta.next_offset);
            }
        }
        if new_start > inner.log_start_offset {
            // Only whole segments go; the start offset lands on a segment boundary.
            write_log_start(&self.dir, new_start)?;
            inner.log_start_offset = new_start;
        }
        Ok(self.drop_segments_below_start(&mut inner))
    }

    /// Writes the active segment's index so the next start can skip recovery. Call after the
    /// last append and a final [`Log::sync`].
    pub fn close(&self) -> Result<(), LogError> {
        let mut inner = self.inner.lock();
        if inner.closed {
            return Ok(());
        }
        inner.closed = true;
        self.durable_tx.send_modify(|_| {});
        if inner.offline.is_some() {
            return Ok(());
        }
        // Untouched since a clean start: what is on disk already describes it.
        if inner.persisted_end == Some(inner.end_mark().offset) {
            return Ok(());
        }
        let active = inner.active();
        active
            .file
            .sync_data()
            .map_err(|e| LogError::io("sync segment", &active.log_path, e))?;
        active.write_index(&self.dir)?;
        write_snapshot(&self.dir, active.meta.next_offset, &inner.producers)
    }

    /// Forgets idempotent producers idle longer than `max_idle_ms`; returns how many.
    pub fn expire_producers(&self, now_ms: i64, max_idle_ms: i64) -> usize {
        self.inner.lock().producers.expire(now_ms, max_idle_ms)
    }

    /// Number of idempotent producers tracked.
    pub fn producer_count(&self) -> usize {
        self.inner.lock().producers.len()
    }

    /// Aborted transactions a read_committed consumer must skip between two offsets.
    pub fn aborted_transactions(&self, from: i64, to: i64) -> Vec<AbortedTxn> {
        self.inner.lock().producers.aborted_between(from, to)
    }

    /// The producers with an open transaction here, and each one's first offset.
    pub fn open_transactions(&self) -> Vec<(i64, i64)> {
        self.inner.lock().producers.open_transactions()
    }

    /// Every producer tracked here (DescribeProducers).
    pub fn producer_entries(&self) -> Vec<(i64, ProducerEntry)> {
        self.inner
            .lock()
            .producers
            .producers()
            .map(|(pid, entry)| (*pid, entry.clone()))
            .collect()
    }

    /// Marks the log closed without writing anything (its directory is being deleted).
    pub fn mark_deleted(&self) {
        let mut inner = self.inner.lock();
        inner.closed = true;
        self.durable_tx.send_modify(|_| {});
        self.visible_tx.send_modify(|_| {});
    }

    /// Whether the log is closed or deleted.
    pub fn is_closed(&self) -> bool {
        self.inner.lock().closed
    }

    pub(crate) fn with_inner_for_cleaner<R>(
        &self,
        f: impl FnOnce(&mut CleanerAccess<'_>) -> R,
    ) -> R {
        let mut inner = self.inner.lock();
        let mut access = CleanerAccess {
            dir: &self.dir,
            inner: &mut inner,
        };
        f(&mut access)
    }
}

/// The cleaner's view of a log's segments, held under the log's lock.
pub(crate) struct CleanerAccess<'a> {
    pub dir: &'a Path,
    inner: &'a mut Inner,
}

impl CleanerAccess<'_> {
    pub fn config(&self) -> &LogConfig {
        &self.inner.config
    }

    pub fn segments(&self) -> &[Segment] {
        &self.inner.segments
    }

    pub fn log_start_offset(&self) -> i64 {
        self.inner.log_start_offset
    }

    pub fn is_usable(&self) -> bool {
        !self.inner.closed && self.inner.offline.is_none()
    }

    /// Swaps a sealed segment for its cleaned replacement (same base offset).
    pub fn replace(&mut self, replacement: Segment) {
        let position = self
            .inner
            .segments
            .iter()
            .position(|s| s.base_offset == replacement.base_offset)
            .expect("the cleaner only replaces segments that exist");
        assert!(
            position + 1 < self.inner.segments.len(),
            "the cleaner never replaces the active segment"
        );
        self.inner.segments[position] = replacement;
    }

    /// Drops a sealed segment that cleaning left empty. The log start offset stays where it
    /// is, persisted so a restart does not move it to the next segment's base.
    pub fn remove(&mut self, base_offset: i64) -> Result<(), LogError> {
        if let Some(position) = self
            .inner
            .segments
            .iter()
            .position(|s| s.base_offset == base_offset)
        {
            assert!(
                position + 1 < self.inner.segments.len(),
                "never remove the active segment"
            );
            if position == 0 {
                write_log_start(self.dir, self.inner.log_start_offset)?;
            }
            let segment = self.inner.segments.remove(position);
            remove_segment_files(self.dir, &segment);
        }
        Ok(())
    }

    /// Offset below which records are visible (the cleaner never touches beyond it).
    pub fn high_watermark(&self) -> i64 {
        self.inner.high_watermark.offset
    }

    /// First offset not yet compacted.
    pub fn first_dirty_offset(&self) -> i64 {
        self.inner.first_dirty_offset
    }

    /// Records that everything below `offset` has been compacted.
    pub fn set_first_dirty_offset(&mut self, offset: i64) {
        self.inner.first_dirty_offset = offset;
    }
}

fn read_header(file: &File, position: u64) -> std::io::Result<BatchHeader> {
    let mut buf = [0u8; HEADER_LEN];
    file.read_exact_at(&mut buf, position)?;
    BatchHeader::parse(&buf).map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))
}

/// Reads batches from one segment: skips to the batch holding `offset`, then returns whole
/// batches up to `max_bytes`. `None` when the segment holds nothing at or after `offset`.
/// Where to read in one segment: bytes `[start, limit)`, from the batch holding `offset`, and
/// no batch starting at or after `max_offset`.
struct ReadRange {
    start: u64,
    limit: u64,
    offset: i64,
    max_offset: i64,
}

fn read_from(
    file: &File,
    range: ReadRange,
    max_bytes: usize,
    min_one_batch: bool,
) -> std::io::Result<Option<Bytes>> {
    let ReadRange {
        start,
        limit,
        offset,
        max_offset,
    } = range;
    let mut position = start;
    let first_len = loop {
        if position >= limit {
            return Ok(None);
        }
        let header = read_header(file, position)?;
        if header.base_offset >= max_offset {
            return Ok(Some(Bytes::new()));
        }
        if header.last_offset() >= offset {
            break header.total_len() as u64;
        }
        position += header.total_len() as u64;
    };
    if first_len > max_bytes as u64 && !min_one_batch {
        return Ok(Some(Bytes::new()));
    }
    let want = (limit - position).min((max_bytes as u64).max(first_len));
    let mut buf = vec![0u8; want as usize];
    file.read_exact_at(&mut buf, position)?;
    // Cut at the last whole batch, and before the first one at or past `max_offset`.
    let mut end = 0usize;
    while end + HEADER_LEN <= buf.len() {
        let mut base = [0u8; 8];
        base.copy_from_slice(&buf[end..end + 8]);
        let base_offset = i64::from_be_bytes(base);
        let length = i32::from_be_bytes([buf[end + 8], buf[end + 9], buf[end + 10], buf[end + 11]]);
        let total = length as usize + batch::LOG_OVERHEAD;
        if length < 0 || end + total > buf.len() || (end > 0 && base_offset >= max_offset) {
            break;
        }
        end += total;
    }
    buf.truncate(end);
    Ok(Some(Bytes::from(buf)))
}

fn remove_segment_files(dir: &Path, segment: &Segment) {
    let (log_path, index_path) = crate::segment::segment_paths(dir, segment.base_offset);
    if let Err(err) = std::fs::remove_file(&log_path) {
        tracing::warn!(path = %log_path.display(), error = %err, "could not remove deleted segment");
    }
    let _ = std::fs::remove_file(index_path);
}

fn read_log_start(dir: &Path) -> Option<i64> {
    std::fs::read_to_string(dir.join(LOG_START_FILE))
        .ok()
        .and_then(|s| s.trim().parse().ok())
}

fn write_log_start(dir: &Path, offset: i64) -> Result<(), LogError> {
    write_atomic(&dir.join(LOG_START_FILE), format!("{offset}\n").as_bytes())
}

/// Writes a small file atomically: temp file, fsync, rename, fsync the directory.
pub fn write_atomic(path: &Path, contents: &[u8]) -> Result<(), LogError> {
    use std::io::Write;
    let tmp = path.with_extension("tmp");
    let write = || -> std::io::Result<()> {
        let mut file = File::create(&tmp)?;
        file.write_all(contents)?;
        file.sync_data()?;
        std::fs::rename(&tmp, path)?;
        if let Some(parent) = path.parent() {
            File::open(parent)?.sync_all()?;
        }
        Ok(())
    };
    write().map_err(|e| LogError::io("write", path, e))
}

/// fsyncs a directory so created, renamed or removed entries survive a crash.
pub fn sync_dir(dir: &Path) -> Result<(), LogError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| LogError::io("sync directory", dir, e))
}

fn snapshot_path(dir: &Path, offset: i64) -> PathBuf {
    dir.join(format!("{offset:020}{SNAPSHOT_SUFFIX}"))
}

fn snapshot_offsets(dir: &Path) -> Vec<i64> {
    let mut offsets: Vec<i64> = std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .filter_map(|e| {
                    e.file_name()
                        .to_str()
                        .and_then(|n| n.strip_suffix(SNAPSHOT_SUFFIX))
                        .and_then(|n| n.parse().ok())
                })
                .collect()
        })
        .unwrap_or_default();
    offsets.sort_unstable();
    offsets
}

/// Writes the producer state as of `offset` and keeps only the newest snapshots.
fn write_snapshot(dir: &Path, offset: i64, producers: &ProducerState) -> Result<(), LogError> {
    write_atomic(&snapshot_path(dir, offset), &producers.encode())?;
    let offsets = snapshot_offsets(dir);
    for old in offsets
        .iter()
        .take(offsets.len().saturating_sub(SNAPSHOTS_KEPT))
    {
        let _ = std::fs::remove_file(snapshot_path(dir, *old));
    }
    Ok(())
}

/// Rebuilds producer state: the newest valid snapshot at or below the log end, then every
/// batch header after it. Snapshots beyond the log end (the tail was cut) are removed.
/// The producer state as of the log end: the newest readable snapshot, then the batches after
/// it. Also returns how many batches were replayed and the snapshot's offset (if one was used).
fn restore_producers(
    dir: &Path,
    segments: &[Segment],
) -> Result<(ProducerState, usize, Option<i64>), LogError> {
    let log_end = segments.last().map_or(0, |s| s.meta.next_offset);
    let first_base = segments.first().map_or(0, |s| s.base_offset);
    let mut state = ProducerState::default();
    let mut from = first_base;
    let mut snapshot = None;
    for offset in snapshot_offsets(dir).into_iter().rev() {
        if offset > log_end || offset < first_base {
            let _ = std::fs::remove_file(snapshot_path(dir, offset));
            continue;
        }
        let loaded = std::fs::read(snapshot_path(dir, offset))
            .ok()
            .and_then(|bytes| ProducerState::decode(&bytes));
        if let Some(loaded) = loaded {
            state = loaded;
            from = offset;
            snapshot = Some(offset);
            break;
        }
    }
    let mut replayed = 0;
    for segment in segments.iter().filter(|s| s.meta.next_offset > from) {
        let mut position = if segment.base_offset <= from {
            segment.lookup_offset(from)
        } else {
            0
        };
        while position < segment.meta.size {
            let header = read_header(&segment.file, position)
                .map_err(|e| LogError::io("read", &segment.log_path, e))?;
            if header.base_offset >= from && header.producer_id >= 0 {
                if header.is_control() {
                    let bytes = Segment::read_at(&segment.file, position, header.total_len())
                        .map_err(|e| LogError::io("read", &segment.log_path, e))?;
                    if let Some(kind) = batch::control_type(&bytes) {
                        state.record_marker(
                            header.producer_id,
                            header.producer_epoch,
                            kind == batch::CONTROL_COMMIT,
                            header.base_offset,
                            header.max_timestamp,
                        );
                    }
                } else {
                    state.record(&header, header.max_timestamp);
                }
                replayed += 1;
            }
            position += header.total_len() as u64;
        }
    }
    Ok((state, replayed, snapshot))
}
