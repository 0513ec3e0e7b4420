//! Log compaction (`cleanup.policy=compact`): keep the last record per key.
//!
//! A pass works on sealed segments only, never the active one. It maps every key in the dirty
//! part of the log (segments not yet cleaned and older than `min.compaction.lag.ms`) to its
//! latest offset, then rewrites each sealed segment up to the end of that part, keeping a
//! record only if no later record has the same key. Tombstones (null values) are dropped once
//! older than `delete.retention.ms`. Batches keep their base offset, last offset delta and
//! codec, as Kafka's cleaner does, so offsets never move. A rewritten segment is written to
//! `<base>.cleaned`, fsync'd, and renamed over the original; a crash at any point leaves either
//! the old or the new segment. Transactional and control batches are kept as they are.

use std::collections::HashMap;
use std::collections::hash_map::DefaultHasher;
use std::fs::{File, OpenOptions};
use std::hash::{Hash, Hasher};
use std::io::Write;
use std::path::Path;
use std::sync::Arc;

use crate::batch::{self, BatchBuilder, BatchHeader, HEADER_LEN};
use crate::error::LogError;
use crate::log::{Log, sync_dir};
use crate::segment::{OpenMode, Segment, segment_paths};

/// Most distinct keys one pass maps (about 40 MB); a larger dirty section is cleaned in steps.
const MAX_KEYS_PER_PASS: usize = 1_000_000;
/// Upper bound for decompressing one batch.
const MAX_BATCH_DECOMPRESSED_BYTES: usize = 64 << 20;

/// What a compaction pass did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct CleanReport {
    /// Segments rewritten or removed.
    pub segments_cleaned: usize,
    /// Records dropped.
    pub records_removed: u64,
    /// Bytes before and after.
    pub bytes_before: u64,
    /// Bytes after cleaning.
    pub bytes_after: u64,
}

type KeyHash = u128;

fn key_hash(key: &[u8]) -> KeyHash {
    let mut first = DefaultHasher::new();
    0u8.hash(&mut first);
    key.hash(&mut first);
    let mut second = DefaultHasher::new();
    1u8.hash(&mut second);
    key.hash(&mut second);
    (u128::from(first.finish()) << 64) | u128::from(second.finish())
}

struct SealedSegment {
    base_offset: i64,
    file: Arc<File>,
    size: u64,
    next_offset: i64,
    max_timestamp: i64,
}

/// Runs one compaction pass if the log is compacted and dirty enough. Blocks on file I/O.
pub fn clean(log: &Log, now_ms: i64) -> Result<CleanReport, LogError> {
    let plan = log.with_inner_for_cleaner(|access| {
        let config = access.config().clone();
        if !access.is_usable() || !config.compact {
            return None;
        }
        let segments = access.segments();
        let sealed: Vec<SealedSegment> = segments[..segments.len() - 1]
            .iter()
            .filter(|s| s.meta.next_offset <= access.high_watermark())
            .map(|s| SealedSegment {
                base_offset: s.base_offset,
                file: Arc::clone(&s.file),
                size: s.meta.size,
                next_offset: s.meta.next_offset,
                max_timestamp: s.meta.max_timestamp,
            })
            .collect();
        Some((
            config,
            sealed,
            access.first_dirty_offset(),
            access.log_start_offset(),
        ))
    });
    let Some((config, sealed, first_dirty, log_start)) = plan else {
        return Ok(CleanReport::default());
    };
    // The cleanable range ends before the first sealed segment still inside the lag.
    let lag_cutoff = now_ms.saturating_sub(config.min_compaction_lag_ms);
    let cleanable: Vec<&SealedSegment> = sealed
        .iter()
        .take_while(|s| s.max_timestamp <= lag_cutoff)
        .collect();
    let total_bytes: u64 = cleanable.iter().map(|s| s.size).sum();
    let dirty: Vec<&&SealedSegment> = cleanable
        .iter()
        .filter(|s| s.next_offset > first_dirty)
        .collect();
    let dirty_bytes: u64 = dirty.iter().map(|s| s.size).sum();
    if dirty.is_empty() || total_bytes == 0 {
        return Ok(CleanReport::default());
    }
    let ratio = dirty_bytes as f64 / total_bytes as f64;
    let overdue = dirty
        .first()
        .is_some_and(|s| now_ms.saturating_sub(s.max_timestamp) >= config.max_compaction_lag_ms);
    if ratio < config.min_cleanable_dirty_ratio && !overdue {
        return Ok(CleanReport::default());
    }

    // Map keys of the dirty section to their latest offset.
    let mut latest: HashMap<KeyHash, i64> = HashMap::new();
    let mut mapped_end = first_dirty;
    for segment in &dirty {
        let mut segment_keys = Vec::new();
        for_each_batch(&segment.file, segment.size, |header, bytes| {
            if header.is_control() || header.is_transactional() {
                return;
            }
            let Ok(records) = batch::record_bytes(bytes, MAX_BATCH_DECOMPRESSED_BYTES) else {
                return;
            };
            let Ok(parsed) = batch::parse_records(&records, header) else {
                return;
            };
            for record in parsed {
                if let Some(key) = record.key {
                    segment_keys.push((
                        key_hash(key),
                        header.base_offset + i64::from(record.offset_delta),
                    ));
                }
            }
        })
        .map_err(|e| LogError::Io {
            op: "read segment for compaction",
            path: log.dir().to_path_buf(),
            source: e,
        })?;
        if latest.len() + segment_keys.len() > MAX_KEYS_PER_PASS && mapped_end > first_dirty {
            break;
        }
        for (hash, offset) in segment_keys {
            latest.insert(hash, offset);
        }
        mapped_end = segment.next_offset;
    }

    let tombstone_cutoff = now_ms.saturating_sub(config.delete_retention_ms);
    let mut report = CleanReport::default();
    for segment in cleanable
        .iter()
        .filter(|s| s.base_offset < mapped_end && s.next_offset > log_start)
    {
        let (rewritten, removed) = rewrite_segment(log.dir(), segment, &latest, tombstone_cutoff)?;
        report.records_removed += removed;
        report.bytes_before += segment.size;
        if removed == 0 {
            report.bytes_after += segment.size;
            if let Some(path) = rewritten {
                let _ = std::fs::remove_file(path);
            }
            continue;
        }
        let Some(cleaned_path) = rewritten else {
            continue;
        };
        report.segments_cleaned += 1;
        let swapped =
            log.with_inner_for_cleaner(|access| -> Result<u64, LogError> {
                let still_there =
                    access.segments().iter().rev().skip(1).any(|s| {
                        s.base_offset == segment.base_offset && s.meta.size == segment.size
                    });
                if !still_there || !access.is_usable() {
                    let _ = std::fs::remove_file(&cleaned_path);
                    return Ok(segment.size);
                }
                let (log_path, _) = segment_paths(access.dir, segment.base_offset);
                std::fs::rename(&cleaned_path, &log_path)
                    .map_err(|e| LogError::io("swap cleaned segment", &log_path, e))?;
                sync_dir(access.dir)?;
                let (replacement, _) = Segment::open(
                    access.dir,
                    segment.base_offset,
                    OpenMode::Recover,
                    access.config().index_interval_bytes,
                )?;
                let size = replacement.meta.size;
                if size == 0 {
                    access.remove(segment.base_offset)?;
                } else {
                    replacement.write_index(access.dir)?;
                    access.replace(replacement);
                }
                Ok(size)
            })?;
        report.bytes_after += swapped;
    }
    log.with_inner_for_cleaner(|access| {
        if mapped_end > access.first_dirty_offset() {
            access.set_first_dirty_offset(mapped_end);
        }
    });
    if report.segments_cleaned > 0 {
        tracing::info!(
            log = log.name(),
            segments = report.segments_cleaned,
            records_removed = report.records_removed,
            bytes_before = report.bytes_before,
            bytes_after = report.bytes_after,
            "compacted log"
        );
    }
    Ok(report)
}

/// Writes the retained records of `segment` to `<base>.cleaned`. Returns the path (if written)
/// and how many records were dropped.
fn rewrite_segment(
    dir: &Path,
    segment: &SealedSegment,
    latest: &HashMap<KeyHash, i64>,
    tombstone_cutoff_ms: i64,
) -> Result<(Option<std::path::PathBuf>, u64), LogError> {
    let (log_path, _) = segment_paths(dir, segment.base_offset);
    let cleaned_path = log_path.with_extension("cleaned");
    let mut out = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(&cleaned_path)
        .map_err(|e| LogError::io("create cleaned segment", &cleaned_path, e))?;
    let mut removed = 0u64;
    let mut write_error = None;
    let mut buffer = Vec::new();
    for_each_batch(&segment.file, segment.size, |header, bytes| {
        let keep_whole = |buffer: &mut Vec<u8>| buffer.extend_from_slice(bytes);
        if header.is_control() || header.is_transactional() {
            keep_whole(&mut buffer);
            return;
        }
        let Ok(records) = batch::record_bytes(bytes, MAX_BATCH_DECOMPRESSED_BYTES) else {
            keep_whole(&mut buffer);
            return;
        };
        let Ok(parsed) = batch::parse_records(&records, header) else {
            keep_whole(&mut buffer);
            return;
        };
        let mut builder = BatchBuilder::new(header.base_offset, header.base_timestamp);
        builder.attributes = header.attributes;
        builder.last_offset_delta = Some(header.last_offset_delta);
        builder.max_timestamp = Some(header.max_timestamp);
        builder.producer_id = header.producer_id;
        builder.producer_epoch = header.producer_epoch;
        builder.base_sequence = header.base_sequence;
        builder.partition_leader_epoch = header.partition_leader_epoch;
        let mut dropped = 0u64;
        for record in &parsed {
            let offset = header.base_offset + i64::from(record.offset_delta);
            let superseded = record
                .key
                .and_then(|key| latest.get(&key_hash(key)))
                .is_some_and(|last| *last > offset);
            let timestamp = if header.is_log_append_time() {
                header.max_timestamp
            } else {
                header.base_timestamp + record.timestamp_delta
            };
            let expired_tombstone = record.value.is_none() && timestamp < tombstone_cutoff_ms;
            if superseded || expired_tombstone {
                dropped += 1;
                continue;
            }
            builder.push_raw(
                record.offset_delta,
                record.timestamp_delta,
                record.key,
                record.value,
                record.headers,
            );
        }
        removed += dropped;
        if dropped == 0 {
            keep_whole(&mut buffer);
        } else if !builder.is_empty() {
            match builder.build() {
                Ok(rebuilt) => buffer.extend_from_slice(&rebuilt),
                Err(_) => {
                    removed -= dropped;
                    keep_whole(&mut buffer);
                }
            }
        }
        if buffer.len() >= 1 << 20 {
            if let Err(err) = out.write_all(&buffer) {
                write_error.get_or_insert(err);
            }
            buffer.clear();
        }
    })
    .map_err(|e| LogError::io("read segment for compaction", &log_path, e))?;
    if let Err(err) = out.write_all(&buffer) {
        write_error.get_or_insert(err);
    }
    if let Some(err) = write_error {
        let _ = std::fs::remove_file(&cleaned_path);
        return Err(LogError::io("write cleaned segment", &cleaned_path, err));
    }
    out.sync_all()
        .map_err(|e| LogError::io("sync cleaned segment", &cleaned_path, e))?;
    Ok((Some(cleaned_path), removed))
}

/// Calls `f` with each batch of a sealed segment.
fn for_each_batch(
    file: &File,
    size: u64,
    mut f: impl FnMut(&BatchHeader, &[u8]),
) -> std::io::Result<()> {
    use std::os::unix::fs::FileExt;
    let mut position = 0u64;
    let mut header_buf = [0u8; HEADER_LEN];
    while position + HEADER_LEN as u64 <= size {
        file.read_exact_at(&mut header_buf, position)?;
        let header = BatchHeader::parse(&header_buf)
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))?;
        let total = header.total_len();
        let bytes = Segment::read_at(file, position, total)?;
        f(&header, &bytes);
        position += total as u64;
    }
    Ok(())
}
