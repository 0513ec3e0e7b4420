//! Spate's storage engine: a partition's log on local disk.
//!
//! A log is a directory of segments named by base offset, Kafka style. Record batches are
//! stored as producers sent them (RecordBatch v2, compressed payload untouched) after
//! validation, with the base offset assigned here. Each segment has a sparse offset and time
//! index, rebuilt from the log when missing or torn. Recovery after a crash verifies the
//! active segment's CRCs and cuts a torn tail. Retention deletes whole segments; compaction
//! keeps the last record per key.
//!
//! This crate owns files only: it knows nothing about sockets or the Kafka protocol, and it
//! never decides policy it is not given (configs arrive as [`LogConfig`]).

pub mod batch;
pub mod cleaner;
pub mod compression;
pub mod config;
mod dir_lock;
mod error;
mod log;
pub mod mirror;
pub mod producer_state;
mod segment;
mod sync;

pub use batch::{BatchBuilder, BatchError, BatchHeader};
pub use cleaner::{CleanReport, clean};
pub use compression::Compression;
pub use config::{ConfigError, LogConfig, TimestampType};
pub use dir_lock::{DirLock, DirLockError, LOCK_FILE};
pub use error::LogError;
pub use log::{
    AppendInfo, Log, LogOffsets, OpenReport, ReadResult, RetentionReport, sync_dir, write_atomic,
};
pub use producer_state::{AbortedTxn, Admission, ProducerEntry, ProducerState};
pub use sync::Syncer;
