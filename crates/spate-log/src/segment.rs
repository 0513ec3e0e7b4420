//! One segment: a `.log` file of record batches and its sparse `.index`.
//!
//! The `.log` file holds batches back to back exactly as they go out on the wire. The index is
//! kept in memory and written to `.index` when the segment is sealed (and for the active segment
//! at clean shutdown). Each index entry maps a relative offset to a file position and carries the
//! largest timestamp of every batch before it, so one sparse table answers both offset and time
//! lookups. A missing, torn or stale index is rebuilt from the log.

use std::fs::{File, OpenOptions};
use std::io::{self, BufReader, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::batch::{self, BatchHeader, HEADER_LEN};
use crate::error::LogError;

const INDEX_MAGIC: &[u8; 4] = b"SPIX";
const INDEX_VERSION: u32 = 1;
const INDEX_HEADER_LEN: usize = 4 + 4 + 8 * 4 + 4;
const INDEX_ENTRY_LEN: usize = 16;

/// One sparse index entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct IndexEntry {
    /// Batch base offset relative to the segment's base offset.
    pub rel_offset: u32,
    /// File position of that batch.
    pub position: u32,
    /// Largest timestamp of all batches before this one in the segment.
    pub max_timestamp_before: i64,
}

/// What is known about a segment's contents, kept current on append.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SegmentMeta {
    /// Bytes of valid batches.
    pub size: u64,
    /// Offset after the last record (equals the base offset when empty).
    pub next_offset: i64,
    /// Largest batch max-timestamp, or -1.
    pub max_timestamp: i64,
    /// Base offset of the batch holding `max_timestamp`.
    pub max_timestamp_batch: i64,
    /// Max timestamp of the first batch, used for `segment.ms` rolls.
    pub first_timestamp: Option<i64>,
    /// Sparse index.
    pub index: Vec<IndexEntry>,
    /// Bytes appended since the last index entry.
    pub bytes_since_index: u64,
}

impl SegmentMeta {
    fn empty(base_offset: i64) -> SegmentMeta {
        SegmentMeta {
            size: 0,
            next_offset: base_offset,
            max_timestamp: -1,
            max_timestamp_batch: base_offset,
            first_timestamp: None,
            index: Vec::new(),
            bytes_since_index: 0,
        }
    }

    /// Records a batch appended at `position`.
    fn observe(
        &mut self,
        base_offset: i64,
        header: &BatchHeader,
        position: u64,
        interval_bytes: u64,
    ) {
        let len = header.total_len() as u64;
        if position > 0 && self.bytes_since_index >= interval_bytes {
            self.index.push(IndexEntry {
                rel_offset: (header.base_offset - base_offset) as u32,
                position: position as u32,
                max_timestamp_before: self.max_timestamp,
            });
            self.bytes_since_index = 0;
        }
        self.bytes_since_index += len;
        if header.max_timestamp > self.max_timestamp {
            self.max_timestamp = header.max_timestamp;
            self.max_timestamp_batch = header.base_offset;
        }
        if self.first_timestamp.is_none() {
            self.first_timestamp = Some(header.max_timestamp);
        }
        self.size = position + len;
        self.next_offset = header.last_offset() + 1;
    }
}

/// A segment of a partition's log.
#[derive(Debug)]
pub(crate) struct Segment {
    pub base_offset: i64,
    pub file: Arc<File>,
    pub log_path: PathBuf,
    pub meta: SegmentMeta,
}

/// File names for a segment: `<20-digit base offset>.log` and `.index`.
pub(crate) fn segment_paths(dir: &Path, base_offset: i64) -> (PathBuf, PathBuf) {
    let stem = format!("{base_offset:020}");
    (
        dir.join(format!("{stem}.log")),
        dir.join(format!("{stem}.index")),
    )
}

/// How to treat a segment's existing bytes when opening it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum OpenMode {
    /// Trust a valid index file; rebuild from batch headers if it is missing or invalid.
    Trusted,
    /// Verify every batch's CRC and truncate at the first bad or torn one.
    Recover,
}

/// What `open` found while recovering.
#[derive(Debug, Default)]
pub(crate) struct RecoveryReport {
    /// Bytes cut off the end.
    pub truncated_bytes: u64,
    /// Why the tail was cut.
    pub reason: Option<String>,
    /// Whether the index had to be rebuilt.
    pub rebuilt_index: bool,
}

impl Segment {
    /// Creates an empty segment file.
    pub fn create(dir: &Path, base_offset: i64) -> Result<Segment, LogError> {
        let (log_path, index_path) = segment_paths(dir, base_offset);
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&log_path)
            .map_err(|e| LogError::io("create segment", &log_path, e))?;
        let _ = std::fs::remove_file(index_path);
        Ok(Segment {
            base_offset,
            file: Arc::new(file),
            log_path,
            meta: SegmentMeta::empty(base_offset),
        })
    }

    /// Opens an existing segment, loading or rebuilding its index.
    pub fn open(
        dir: &Path,
        base_offset: i64,
        mode: OpenMode,
        interval_bytes: u64,
    ) -> Result<(Segment, RecoveryReport), LogError> {
        let (log_path, index_path) = segment_paths(dir, base_offset);
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(&log_path)
            .map_err(|e| LogError::io("open segment", &log_path, e))?;
        let file_len = file
            .metadata()
            .map_err(|e| LogError::io("stat segment", &log_path, e))?
            .len();
        let mut report = RecoveryReport::default();
        let loaded = match mode {
            OpenMode::Trusted => load_index(&index_path, base_offset, file_len),
            OpenMode::Recover => None,
        };
        let meta = match loaded {
            Some(meta) => meta,
            None => {
                report.rebuilt_index = true;
                let scan = scan(
                    &file,
                    base_offset,
                    mode == OpenMode::Recover,
                    interval_bytes,
                )
                .map_err(|e| LogError::io("scan segment", &log_path, e))?;
                if scan.meta.size < file_len {
                    report.truncated_bytes = file_len - scan.meta.size;
                    report.reason = scan.stop_reason.clone();
                    file.set_len(scan.meta.size)
                        .map_err(|e| LogError::io("truncate segment", &log_path, e))?;
                    file.sync_all()
                        .map_err(|e| LogError::io("sync segment", &log_path, e))?;
                }
                let _ = std::fs::remove_file(&index_path);
                scan.meta
            }
        };
        Ok((
            Segment {
                base_offset,
                file: Arc::new(file),
                log_path,
                meta,
            },
            report,
        ))
    }

    /// Appends a batch given as its rewritten header and its untouched records, so the
    /// records are never copied in user space.
    pub fn append(
        &mut self,
        parts: [&[u8]; 2],
        header: &BatchHeader,
        interval_bytes: u64,
    ) -> Result<(), LogError> {
        let position = self.meta.size;
        let write = self.file.write_all_at(parts[0], position).and_then(|()| {
            self.file
                .write_all_at(parts[1], position + parts[0].len() as u64)
        });
        if let Err(err) = write {
            // Leave no partial batch behind: the next append must start on a batch boundary.
            let _ = self.file.set_len(position);
            return Err(LogError::io("append", &self.log_path, err));
        }
        self.meta
            .observe(self.base_offset, header, position, interval_bytes);
        Ok(())
    }

    /// Whether a batch with this last offset still fits the 32-bit relative offsets.
    pub fn fits_offset(&self, last_offset: i64) -> bool {
        last_offset - self.base_offset <= i64::from(u32::MAX)
    }

    /// Position of the last indexed batch at or before `offset`.
    pub fn lookup_offset(&self, offset: i64) -> u64 {
        let rel = offset - self.base_offset;
        let idx = self
            .meta
            .index
            .partition_point(|entry| i64::from(entry.rel_offset) <= rel);
        if idx == 0 {
            0
        } else {
            u64::from(self.meta.index[idx - 1].position)
        }
    }

    /// Position from which every batch at or after it may hold timestamps >= `timestamp`,
    /// with every record before it older than `timestamp`.
    pub fn lookup_timestamp(&self, timestamp: i64) -> u64 {
        let idx = self
            .meta
            .index
            .partition_point(|entry| entry.max_timestamp_before < timestamp);
        if idx == 0 {
            0
        } else {
            u64::from(self.meta.index[idx - 1].position)
        }
    }

    /// Writes the index file and fsyncs the log and index; called when the segment is sealed.
    pub fn seal(&self, dir: &Path) -> Result<(), LogError> {
        self.file
            .sync_data()
            .map_err(|e| LogError::io("sync segment", &self.log_path, e))?;
        self.write_index(dir)
    }

    /// Writes the index file atomically (temp file, fsync, rename).
    pub fn write_index(&self, dir: &Path) -> Result<(), LogError> {
        let (_, index_path) = segment_paths(dir, self.base_offset);
        let tmp = index_path.with_extension("index.tmp");
        let mut buf =
            Vec::with_capacity(INDEX_HEADER_LEN + self.meta.index.len() * INDEX_ENTRY_LEN + 4);
        buf.extend_from_slice(INDEX_MAGIC);
        buf.extend_from_slice(&INDEX_VERSION.to_be_bytes());
        buf.extend_from_slice(&self.meta.size.to_be_bytes());
        buf.extend_from_slice(&self.meta.next_offset.to_be_bytes());
        buf.extend_from_slice(&self.meta.max_timestamp.to_be_bytes());
        buf.extend_from_slice(&self.meta.max_timestamp_batch.to_be_bytes());
        buf.extend_from_slice(&(self.meta.index.len() as u32).to_be_bytes());
        for entry in &self.meta.index {
            buf.extend_from_slice(&entry.rel_offset.to_be_bytes());
            buf.extend_from_slice(&entry.position.to_be_bytes());
            buf.extend_from_slice(&entry.max_timestamp_before.to_be_bytes());
        }
        let first = self.meta.first_timestamp.unwrap_or(i64::MIN);
        buf.extend_from_slice(&first.to_be_bytes());
        let crc = crc32c::crc32c(&buf);
        buf.extend_from_slice(&crc.to_be_bytes());
        let write = || -> io::Result<()> {
            let mut file = File::create(&tmp)?;
            file.write_all(&buf)?;
            file.sync_data()?;
            std::fs::rename(&tmp, &index_path)
        };
        write().map_err(|e| LogError::io("write index", &index_path, e))
    }

    /// Reads `len` bytes at `position` into a new buffer.
    pub fn read_at(file: &File, position: u64, len: usize) -> io::Result<Vec<u8>> {
        let mut buf = vec![0u8; len];
        file.read_exact_at(&mut buf, position)?;
        Ok(buf)
    }
}

fn load_index(path: &Path, base_offset: i64, file_len: u64) -> Option<SegmentMeta> {
    let data = std::fs::read(path).ok()?;
    if data.len() < INDEX_HEADER_LEN + 12 || &data[0..4] != INDEX_MAGIC {
        return None;
    }
    let (body, crc) = data.split_at(data.len() - 4);
    if crc32c::crc32c(body) != u32::from_be_bytes(crc.try_into().ok()?) {
        return None;
    }
    let u32_at = |at: usize| u32::from_be_bytes(body[at..at + 4].try_into().unwrap_or([0; 4]));
    let i64_at = |at: usize| i64::from_be_bytes(body[at..at + 8].try_into().unwrap_or([0; 8]));
    if u32_at(4) != INDEX_VERSION {
        return None;
    }
    let size = i64_at(8) as u64;
    let next_offset = i64_at(16);
    let max_timestamp = i64_at(24);
    let max_timestamp_batch = i64_at(32);
    let count = u32_at(40) as usize;
    if size != file_len
        || next_offset < base_offset
        || body.len() != INDEX_HEADER_LEN + count * INDEX_ENTRY_LEN + 8
    {
        return None;
    }
    let mut index = Vec::with_capacity(count);
    for i in 0..count {
        let at = INDEX_HEADER_LEN + i * INDEX_ENTRY_LEN;
        let entry = IndexEntry {
            rel_offset: u32_at(at),
            position: u32_at(at + 4),
            max_timestamp_before: i64_at(at + 8),
        };
        if u64::from(entry.position) >= size {
            return None;
        }
        if let Some(prev) = index.last() {
            let prev: &IndexEntry = prev;
            if entry.rel_offset <= prev.rel_offset || entry.position <= prev.position {
                return None;
            }
        }
        index.push(entry);
    }
    let first = i64_at(INDEX_HEADER_LEN + count * INDEX_ENTRY_LEN);
    Some(SegmentMeta {
        size,
        next_offset,
        max_timestamp,
        max_timestamp_batch,
        first_timestamp: (first != i64::MIN).then_some(first),
        index,
        // Appends to a reopened segment start a fresh index interval.
        bytes_since_index: 0,
    })
}

struct ScanResult {
    meta: SegmentMeta,
    stop_reason: Option<String>,
}

/// Walks the batches of a segment file, rebuilding its metadata. With `verify_crc` each batch's
/// CRC is checked. Scanning stops at the first torn or invalid batch; `meta.size` is then the
/// length of the valid prefix.
fn scan(
    file: &File,
    base_offset: i64,
    verify_crc: bool,
    interval_bytes: u64,
) -> io::Result<ScanResult> {
    let file_len = file.metadata()?.len();
    let mut reader = BufReader::with_capacity(1 << 20, file);
    reader.seek(SeekFrom::Start(0))?;
    let mut meta = SegmentMeta::empty(base_offset);
    let mut position = 0u64;
    let mut header_buf = [0u8; HEADER_LEN];
    let mut batch_buf = Vec::new();
    let mut expected_min_offset = base_offset;
    let stop_reason = loop {
        if position == file_len {
            break None;
        }
        if file_len - position < HEADER_LEN as u64 {
            break Some(format!("torn batch header at position {position}"));
        }
        reader.read_exact(&mut header_buf)?;
        let header = match BatchHeader::parse(&header_buf) {
            Ok(header) => header,
            Err(err) => break Some(format!("invalid batch at position {position}: {err}")),
        };
        let total = header.total_len() as u64;
        if position + total > file_len {
            break Some(format!(
                "torn batch at position {position}: {total} bytes declared, {} present",
                file_len - position
            ));
        }
        if header.base_offset < expected_min_offset || header.last_offset_delta < 0 {
            break Some(format!(
                "batch at position {position} has offset {} below {expected_min_offset}",
                header.base_offset
            ));
        }
        if verify_crc {
            batch_buf.clear();
            batch_buf.extend_from_slice(&header_buf);
            batch_buf.resize(total as usize, 0);
            reader.read_exact(&mut batch_buf[HEADER_LEN..])?;
            if let Err(err) = batch::verify_crc(&batch_buf, &header) {
                break Some(format!("batch at position {position}: {err}"));
            }
        } else {
            reader.seek_relative(total as i64 - HEADER_LEN as i64)?;
        }
        meta.observe(base_offset, &header, position, interval_bytes);
        expected_min_offset = header.last_offset() + 1;
        position += total;
    };
    debug_assert!(meta.size <= file_len);
    Ok(ScanResult { meta, stop_reason })
}
