//! The log engine's errors.

use std::io;
use std::path::{Path, PathBuf};

use crate::batch::BatchError;

/// Why a log operation failed.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    /// A file operation failed (full disk, permissions, I/O error).
    #[error("{op} failed for {path}: {source}")]
    Io {
        /// What was being done.
        op: &'static str,
        /// File or directory involved.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// The batch is malformed.
    #[error(transparent)]
    Batch(#[from] BatchError),
    /// The batch exceeds `max.message.bytes`.
    #[error("record batch of {size_bytes} bytes exceeds max.message.bytes {limit_bytes}")]
    MessageTooLarge {
        /// Batch size.
        size_bytes: usize,
        /// The topic's limit.
        limit_bytes: usize,
    },
    /// The batch is larger than a whole segment (`segment.bytes`), so it can never be stored.
    #[error("record batch of {size_bytes} bytes exceeds segment.bytes {segment_bytes}")]
    BatchLargerThanSegment {
        /// Batch size.
        size_bytes: usize,
        /// The topic's segment size.
        segment_bytes: u64,
    },
    /// A CreateTime timestamp outside the allowed window.
    #[error("timestamp {timestamp_ms} is outside the allowed range around {now_ms}")]
    InvalidTimestamp {
        /// Offending timestamp.
        timestamp_ms: i64,
        /// Broker time.
        now_ms: i64,
    },
    /// An offset outside `[log start, log end]`.
    #[error("offset {offset} is outside the log's range [{log_start_offset}, {log_end_offset}]")]
    OffsetOutOfRange {
        /// Requested offset.
        offset: i64,
        /// First offset held.
        log_start_offset: i64,
        /// Offset after the last record.
        log_end_offset: i64,
    },
    /// An idempotent producer's batch comes from an older epoch than the partition has seen.
    #[error("producer {producer_id} epoch {epoch} is older than the current epoch {current_epoch}")]
    InvalidProducerEpoch {
        /// Producer id.
        producer_id: i64,
        /// Epoch of the batch.
        epoch: i16,
        /// Epoch the partition has.
        current_epoch: i16,
    },
    /// An idempotent producer's batch does not follow its previous one.
    #[error("producer {producer_id} sent sequence {received}, expected {expected}")]
    OutOfOrderSequence {
        /// Producer id.
        producer_id: i64,
        /// The next sequence the partition expects.
        expected: i32,
        /// The batch's first sequence.
        received: i32,
    },
    /// An earlier fsync failed; the log refuses writes until restarted and recovered.
    #[error("log is offline after a storage failure: {reason}")]
    Offline {
        /// The failure that took it offline.
        reason: String,
    },
    /// A record for a mirror topic (`spate.mirror.offsets=preserve`) without its source offset:
    /// only a mirror writer may append to a mirror topic.
    #[error(
        "cannot append records to read-only mirror topic: record {index} has no spate.source.offset header; only the Mirror source connector writes to a mirror topic (set spate.mirror.offsets=none to promote it to a normal topic)"
    )]
    MissingSourceOffset {
        /// The record's index in its batch.
        index: i32,
    },
    /// A mirror topic's record with a source offset that cannot be placed.
    #[error("record {index} cannot be placed at its source offset: {reason}")]
    InvalidSourceOffset {
        /// The record's index in its batch.
        index: i32,
        /// What is wrong.
        reason: String,
    },
    /// The log was deleted or closed.
    #[error("log is closed")]
    Closed,
}

impl LogError {
    pub(crate) fn io(op: &'static str, path: &Path, source: io::Error) -> LogError {
        LogError::Io {
            op,
            path: path.to_path_buf(),
            source,
        }
    }

    /// Whether the error means the disk is full.
    pub fn is_disk_full(&self) -> bool {
        matches!(self, LogError::Io { source, .. } if source.raw_os_error() == Some(libc::ENOSPC))
    }
}
