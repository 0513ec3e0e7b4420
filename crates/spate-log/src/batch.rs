//! The Kafka RecordBatch v2 format, on bytes.
//!
//! The log stores batches exactly as producers sent them; this module reads and checks their
//! headers, walks uncompressed records, rewrites the few fields the broker owns (base offset,
//! leader epoch, log-append time) and builds new batches for the cleaner and for tests.
//! It does no I/O and never trusts the bytes it is given: every length is checked before use.

use bytes::{BufMut, BytesMut};

use crate::compression::{self, Compression};

/// Bytes before the batch-length field ends: base offset (8) and batch length (4).
pub const LOG_OVERHEAD: usize = 12;
/// Size of the fixed RecordBatch v2 header, up to and including the record count.
pub const HEADER_LEN: usize = 61;
/// The only message format Spate stores (Kafka 4 dropped formats 0 and 1).
pub const MAGIC_V2: i8 = 2;

const CRC_OFFSET: usize = 17;
const ATTRIBUTES_OFFSET: usize = 21;
const MAX_TIMESTAMP_OFFSET: usize = 35;

const ATTR_COMPRESSION_MASK: i16 = 0x07;
const ATTR_LOG_APPEND_TIME: i16 = 0x08;
const ATTR_TRANSACTIONAL: i16 = 0x10;
const ATTR_CONTROL: i16 = 0x20;

/// Why a batch was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum BatchError {
    /// Fewer bytes than a batch header, or than the header says the batch holds.
    #[error("record batch truncated: need {needed_bytes} bytes, have {available_bytes}")]
    Truncated {
        /// Bytes the header requires.
        needed_bytes: usize,
        /// Bytes present.
        available_bytes: usize,
    },
    /// The batch-length field is negative or too small to hold a header.
    #[error("record batch length {length} is invalid")]
    InvalidLength {
        /// The length field as sent.
        length: i32,
    },
    /// A message format other than v2.
    #[error("message format v{magic} is not supported; only v2 is")]
    UnsupportedMagic {
        /// The magic byte as sent.
        magic: i8,
    },
    /// The CRC-32C does not match the batch contents.
    #[error("record batch crc {stored:#010x} does not match computed {computed:#010x}")]
    CorruptCrc {
        /// CRC carried in the batch.
        stored: u32,
        /// CRC computed over the batch.
        computed: u32,
    },
    /// An unknown compression codec id.
    #[error("unknown compression codec {codec}")]
    UnknownCompression {
        /// Codec id from the attributes.
        codec: i16,
    },
    /// The record count or offset delta disagree with the records.
    #[error("invalid record batch: {reason}")]
    InvalidRecords {
        /// What is wrong.
        reason: String,
    },
    /// Records the topic does not accept (a missing key on a compacted topic, a timestamp out
    /// of the allowed window); the batch is refused whole, every failing record named.
    #[error("{}", records_refused_message(errors))]
    RecordsRefused {
        /// Each refused record, in batch order.
        errors: Vec<RecordError>,
    },
    /// Produce requests carry exactly one batch per partition.
    #[error("produce request carries {count} record batches for one partition; send exactly one")]
    NotOneBatch {
        /// Batches found.
        count: usize,
    },
    /// A compressed batch expands beyond the limit.
    #[error("compressed batch expands beyond {limit_bytes} bytes")]
    DecompressedTooLarge {
        /// The limit that was hit.
        limit_bytes: usize,
    },
    /// The compressed payload cannot be decompressed.
    #[error("cannot decompress {codec:?} batch: {reason}")]
    Decompress {
        /// Codec in use.
        codec: Compression,
        /// Decoder's message.
        reason: String,
    },
}

/// The fixed header of a RecordBatch v2.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchHeader {
    /// Offset of the first record (assigned by the broker).
    pub base_offset: i64,
    /// Bytes after the length field.
    pub batch_length: i32,
    /// Leader epoch when appended.
    pub partition_leader_epoch: i32,
    /// Message format version; always 2 once validated.
    pub magic: i8,
    /// CRC-32C over attributes..end.
    pub crc: u32,
    /// Compression, timestamp type, transactional and control flags.
    pub attributes: i16,
    /// Offset of the last record relative to `base_offset`.
    pub last_offset_delta: i32,
    /// Timestamp of the first record.
    pub base_timestamp: i64,
    /// Largest timestamp in the batch (the append time for log-append-time batches).
    pub max_timestamp: i64,
    /// Idempotent producer id, or -1.
    pub producer_id: i64,
    /// Producer epoch, or -1.
    pub producer_epoch: i16,
    /// Sequence of the first record, or -1.
    pub base_sequence: i32,
    /// Number of records in the batch.
    pub record_count: i32,
}

impl BatchHeader {
    /// Reads a header from the start of `buf` without checking the CRC.
    pub fn parse(buf: &[u8]) -> Result<BatchHeader, BatchError> {
        if buf.len() < HEADER_LEN {
            return Err(BatchError::Truncated {
                needed_bytes: HEADER_LEN,
                available_bytes: buf.len(),
            });
        }
        let header = BatchHeader {
            base_offset: read_i64(buf, 0),
            batch_length: read_i32(buf, 8),
            partition_leader_epoch: read_i32(buf, 12),
            magic: buf[16] as i8,
            crc: read_u32(buf, CRC_OFFSET),
            attributes: read_i16(buf, ATTRIBUTES_OFFSET),
            last_offset_delta: read_i32(buf, 23),
            base_timestamp: read_i64(buf, 27),
            max_timestamp: read_i64(buf, MAX_TIMESTAMP_OFFSET),
            producer_id: read_i64(buf, 43),
            producer_epoch: read_i16(buf, 51),
            base_sequence: read_i32(buf, 53),
            record_count: read_i32(buf, 57),
        };
        if header.magic != MAGIC_V2 {
            return Err(BatchError::UnsupportedMagic {
                magic: header.magic,
            });
        }
        if header.batch_length < (HEADER_LEN - LOG_OVERHEAD) as i32 {
            return Err(BatchError::InvalidLength {
                length: header.batch_length,
            });
        }
        Ok(header)
    }

    /// Total bytes of the batch including the offset and length fields.
    pub fn total_len(&self) -> usize {
        self.batch_length as usize + LOG_OVERHEAD
    }

    /// Offset of the last record.
    pub fn last_offset(&self) -> i64 {
        self.base_offset + i64::from(self.last_offset_delta)
    }

    /// The batch's compression codec.
    pub fn compression(&self) -> Result<Compression, BatchError> {
        Compression::from_id(self.attributes & ATTR_COMPRESSION_MASK)
    }

    /// Whether the timestamp is the broker's append time.
    pub fn is_log_append_time(&self) -> bool {
        self.attributes & ATTR_LOG_APPEND_TIME != 0
    }

    /// Whether the batch belongs to a transaction.
    pub fn is_transactional(&self) -> bool {
        self.attributes & ATTR_TRANSACTIONAL != 0
    }

    /// Whether the batch is a transaction marker.
    pub fn is_control(&self) -> bool {
        self.attributes & ATTR_CONTROL != 0
    }
}

/// What a topic asks of each record it accepts, beyond being well formed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RecordRules {
    /// Every record needs a key (compacted topics).
    pub require_keys: bool,
    /// CreateTime timestamps must fall in this window (`message.timestamp.before.max.ms` and
    /// `after.max.ms` around now); records without a timestamp (-1) pass.
    pub timestamps: Option<TimestampWindow>,
}

/// The inclusive range of timestamps a topic accepts now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimestampWindow {
    /// Earliest accepted timestamp.
    pub earliest_ms: i64,
    /// Latest accepted timestamp.
    pub latest_ms: i64,
}

impl TimestampWindow {
    /// The window `before_max_ms` before and `after_max_ms` after `now_ms`; `i64::MAX` (Kafka's
    /// default for `before`) leaves that side open.
    pub fn around(now_ms: i64, before_max_ms: i64, after_max_ms: i64) -> TimestampWindow {
        let bound = |max_ms: i64, open: i64, at: i64| if max_ms == i64::MAX { open } else { at };
        TimestampWindow {
            earliest_ms: bound(
                before_max_ms,
                i64::MIN,
                now_ms.saturating_sub(before_max_ms),
            ),
            latest_ms: bound(after_max_ms, i64::MAX, now_ms.saturating_add(after_max_ms)),
        }
    }

    fn contains(&self, timestamp_ms: i64) -> bool {
        (self.earliest_ms..=self.latest_ms).contains(&timestamp_ms)
    }
}

/// One record a topic refused: its index in the batch and why (Kafka's `RecordError`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordError {
    /// Index of the record in its batch, from 0.
    pub index: i32,
    /// Why.
    pub reason: RecordErrorReason,
}

/// Why a record was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecordErrorReason {
    /// A record without a key on a compacted topic.
    MissingKey,
    /// A CreateTime timestamp outside the topic's window.
    TimestampOutOfRange {
        /// The record's timestamp.
        timestamp_ms: i64,
        /// The window it missed.
        window: TimestampWindow,
    },
}

impl RecordError {
    /// Kafka's per-record message (LogValidator's wording), for `record_errors`.
    pub fn message(&self, topic_partition: &str) -> String {
        match &self.reason {
            RecordErrorReason::MissingKey => format!(
                "Compacted topic cannot accept message without key in topic partition {topic_partition}"
            ),
            RecordErrorReason::TimestampOutOfRange {
                timestamp_ms,
                window,
            } => format!(
                "Timestamp {timestamp_ms} of message with offset {} is out of range. The timestamp should be within [{}, {}]",
                self.index, window.earliest_ms, window.latest_ms
            ),
        }
    }

    /// Whether Kafka answers this one with INVALID_TIMESTAMP (else INVALID_RECORD).
    pub fn is_timestamp(&self) -> bool {
        matches!(self.reason, RecordErrorReason::TimestampOutOfRange { .. })
    }
}

fn records_refused_message(errors: &[RecordError]) -> String {
    let first = errors.first().map_or(String::new(), |e| {
        format!("record {}: {}", e.index, e.message("this partition"))
    });
    format!("{} record(s) refused, first {first}", errors.len())
}

/// Checks a batch sent by a producer: one v2 batch filling `buf`, a matching CRC, a sane record
/// count and, when uncompressed, well-formed records. `require_keys` refuses records without a
/// key (compacted topics); `max_decompressed_bytes` bounds the work for compressed batches that
/// must be opened to check keys.
pub fn validate_produce_batch(
    buf: &[u8],
    require_keys: bool,
    max_decompressed_bytes: usize,
) -> Result<BatchHeader, BatchError> {
    let rules = RecordRules {
        require_keys,
        timestamps: None,
    };
    validate_produce_batch_with(buf, &rules, max_decompressed_bytes)
}

/// [`validate_produce_batch`] with the topic's per-record rules: every record is checked, as
/// Kafka's LogValidator does, and every one that fails is named in
/// [`BatchError::RecordsRefused`]. Uncompressed batches are walked anyway; a compressed one is
/// opened only when a rule needs its records: keys required, a finite `before` bound (the
/// header has no minimum timestamp), or a header maximum past the `after` bound (to name the
/// records). Under the defaults (no `before` bound) a compressed batch whose maximum is in the
/// window is not opened: no record in it can be later than its maximum.
pub fn validate_produce_batch_with(
    buf: &[u8],
    rules: &RecordRules,
    max_decompressed_bytes: usize,
) -> Result<BatchHeader, BatchError> {
    let header = BatchHeader::parse(buf)?;
    if header.total_len() != buf.len() {
        if header.total_len() > buf.len() {
            return Err(BatchError::Truncated {
                needed_bytes: header.total_len(),
                available_bytes: buf.len(),
            });
        }
        let count = count_batches(buf);
        return Err(BatchError::NotOneBatch { count });
    }
    verify_crc(buf, &header)?;
    if header.record_count <= 0 {
        return Err(BatchError::InvalidRecords {
            reason: format!("record count {} must be positive", header.record_count),
        });
    }
    if header.last_offset_delta != header.record_count - 1 {
        return Err(BatchError::InvalidRecords {
            reason: format!(
                "last offset delta {} does not match record count {}",
                header.last_offset_delta, header.record_count
            ),
        });
    }
    let codec = header.compression()?;
    if header.producer_id >= 0 && (header.producer_epoch < 0 || header.base_sequence < 0) {
        return Err(BatchError::InvalidRecords {
            reason: format!(
                "idempotent batch of producer {} has epoch {} and sequence {}",
                header.producer_id, header.producer_epoch, header.base_sequence
            ),
        });
    }
    if header.is_control() {
        return Err(BatchError::InvalidRecords {
            reason: "producers may not send control batches".to_string(),
        });
    }
    let open_compressed = rules.require_keys
        || rules.timestamps.is_some_and(|window| {
            window.earliest_ms > i64::MIN || header.max_timestamp > window.latest_ms
        });
    let refused = match codec {
        Compression::None => check_records(&buf[HEADER_LEN..], &header, true, rules)?,
        _ if open_compressed => {
            let records =
                compression::decompress(codec, &buf[HEADER_LEN..], max_decompressed_bytes)?;
            check_records(&records, &header, true, rules)?
        }
        _ => Vec::new(),
    };
    if !refused.is_empty() {
        return Err(BatchError::RecordsRefused { errors: refused });
    }
    Ok(header)
}

/// Verifies the CRC-32C of a batch whose header was already parsed.
pub fn verify_crc(buf: &[u8], header: &BatchHeader) -> Result<(), BatchError> {
    let end = header.total_len();
    if buf.len() < end {
        return Err(BatchError::Truncated {
            needed_bytes: end,
            available_bytes: buf.len(),
        });
    }
    let computed = crc32c::crc32c(&buf[ATTRIBUTES_OFFSET..end]);
    if computed != header.crc {
        return Err(BatchError::CorruptCrc {
            stored: header.crc,
            computed,
        });
    }
    Ok(())
}

fn count_batches(mut buf: &[u8]) -> usize {
    let mut count = 0;
    while buf.len() >= LOG_OVERHEAD {
        let length = read_i32(buf, 8);
        if length < 0 {
            return count + 1;
        }
        count += 1;
        let total = length as usize + LOG_OVERHEAD;
        if total >= buf.len() {
            break;
        }
        buf = &buf[total..];
    }
    count
}

/// Writes the broker-assigned base offset into a batch (not covered by the CRC).
pub fn set_base_offset(buf: &mut [u8], base_offset: i64) {
    buf[0..8].copy_from_slice(&base_offset.to_be_bytes());
}

/// Writes the partition leader epoch into a batch (not covered by the CRC).
pub fn set_partition_leader_epoch(buf: &mut [u8], epoch: i32) {
    buf[12..16].copy_from_slice(&epoch.to_be_bytes());
}

/// Marks a batch whose first [`HEADER_LEN`] bytes are `prefix` and whose records are `rest`
/// as log-append-time, recomputing the CRC over both without copying `rest`.
pub fn set_log_append_time_split(prefix: &mut [u8; HEADER_LEN], rest: &[u8], timestamp_ms: i64) {
    let attributes = read_i16(prefix, ATTRIBUTES_OFFSET) | ATTR_LOG_APPEND_TIME;
    prefix[ATTRIBUTES_OFFSET..ATTRIBUTES_OFFSET + 2].copy_from_slice(&attributes.to_be_bytes());
    prefix[MAX_TIMESTAMP_OFFSET..MAX_TIMESTAMP_OFFSET + 8]
        .copy_from_slice(&timestamp_ms.to_be_bytes());
    let crc = crc32c::crc32c_append(crc32c::crc32c(&prefix[ATTRIBUTES_OFFSET..]), rest);
    prefix[CRC_OFFSET..CRC_OFFSET + 4].copy_from_slice(&crc.to_be_bytes());
}

/// Marks a batch as log-append-time with the given time and recomputes its CRC.
pub fn set_log_append_time(buf: &mut [u8], timestamp_ms: i64) {
    let attributes = read_i16(buf, ATTRIBUTES_OFFSET) | ATTR_LOG_APPEND_TIME;
    buf[ATTRIBUTES_OFFSET..ATTRIBUTES_OFFSET + 2].copy_from_slice(&attributes.to_be_bytes());
    buf[MAX_TIMESTAMP_OFFSET..MAX_TIMESTAMP_OFFSET + 8]
        .copy_from_slice(&timestamp_ms.to_be_bytes());
    let crc = crc32c::crc32c(&buf[ATTRIBUTES_OFFSET..]);
    buf[CRC_OFFSET..CRC_OFFSET + 4].copy_from_slice(&crc.to_be_bytes());
}

/// One record inside a batch, borrowed from the (decompressed) record bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordView<'a> {
    /// Offset relative to the batch's base offset.
    pub offset_delta: i32,
    /// Timestamp relative to the batch's base timestamp.
    pub timestamp_delta: i64,
    /// Key, or `None` for a null key.
    pub key: Option<&'a [u8]>,
    /// Value, or `None` for a null value (a tombstone).
    pub value: Option<&'a [u8]>,
    /// The encoded header section: count then the headers, as on the wire.
    pub headers: &'a [u8],
    /// Number of headers.
    pub header_count: i32,
}

/// Parses every record in `records` (uncompressed record bytes of a batch).
pub fn parse_records<'a>(
    records: &'a [u8],
    header: &BatchHeader,
) -> Result<Vec<RecordView<'a>>, BatchError> {
    let mut out = Vec::with_capacity((header.record_count.max(0) as usize).min(records.len()));
    let mut cursor = Cursor {
        buf: records,
        pos: 0,
    };
    for _ in 0..header.record_count.max(0) {
        out.push(read_record(&mut cursor)?);
    }
    if cursor.pos != records.len() {
        return Err(invalid("bytes left after the last record"));
    }
    Ok(out)
}

/// Returns the uncompressed record bytes of a whole batch, bounded by `limit_bytes`.
pub fn record_bytes(
    batch: &[u8],
    limit_bytes: usize,
) -> Result<std::borrow::Cow<'_, [u8]>, BatchError> {
    let header = BatchHeader::parse(batch)?;
    let end = header.total_len();
    if batch.len() < end {
        return Err(BatchError::Truncated {
            needed_bytes: end,
            available_bytes: batch.len(),
        });
    }
    match header.compression()? {
        Compression::None => Ok(std::borrow::Cow::Borrowed(&batch[HEADER_LEN..end])),
        codec => Ok(std::borrow::Cow::Owned(compression::decompress(
            codec,
            &batch[HEADER_LEN..end],
            limit_bytes,
        )?)),
    }
}

/// Walks every record: a malformed one fails the batch; the ones the rules refuse are
/// returned, all of them.
fn check_records(
    records: &[u8],
    header: &BatchHeader,
    sequential_offsets: bool,
    rules: &RecordRules,
) -> Result<Vec<RecordError>, BatchError> {
    let mut cursor = Cursor {
        buf: records,
        pos: 0,
    };
    let mut refused = Vec::new();
    let create_time = !header.is_log_append_time();
    for index in 0..header.record_count {
        let record = read_record(&mut cursor)?;
        if sequential_offsets && record.offset_delta != index {
            return Err(invalid(format!(
                "record {index} has offset delta {}",
                record.offset_delta
            )));
        }
        if rules.require_keys && record.key.is_none() {
            refused.push(RecordError {
                index,
                reason: RecordErrorReason::MissingKey,
            });
            continue;
        }
        if let Some(window) = rules.timestamps.filter(|_| create_time) {
            let timestamp_ms = header.base_timestamp.saturating_add(record.timestamp_delta);
            if timestamp_ms != -1 && !window.contains(timestamp_ms) {
                refused.push(RecordError {
                    index,
                    reason: RecordErrorReason::TimestampOutOfRange {
                        timestamp_ms,
                        window,
                    },
                });
            }
        }
    }
    if cursor.pos != records.len() {
        return Err(invalid("bytes left after the last record"));
    }
    Ok(refused)
}

fn invalid(reason: impl Into<String>) -> BatchError {
    BatchError::InvalidRecords {
        reason: reason.into(),
    }
}

struct Cursor<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn varlong(&mut self) -> Result<i64, BatchError> {
        let mut value: u64 = 0;
        let mut shift = 0;
        loop {
            let byte = *self
                .buf
                .get(self.pos)
                .ok_or_else(|| invalid("record truncated inside a varint"))?;
            self.pos += 1;
            value |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                break;
            }
            shift += 7;
            if shift > 63 {
                return Err(invalid("varint longer than 10 bytes"));
            }
        }
        Ok(((value >> 1) as i64) ^ -((value & 1) as i64))
    }

    fn varint(&mut self) -> Result<i32, BatchError> {
        let value = self.varlong()?;
        i32::try_from(value).map_err(|_| invalid("varint out of range"))
    }

    fn bytes(&mut self, len: usize) -> Result<&'a [u8], BatchError> {
        let end = self
            .pos
            .checked_add(len)
            .filter(|end| *end <= self.buf.len())
            .ok_or_else(|| invalid("record field runs past the end of the batch"))?;
        let slice = &self.buf[self.pos..end];
        self.pos = end;
        Ok(slice)
    }

    fn nullable_bytes(&mut self) -> Result<Option<&'a [u8]>, BatchError> {
        let len = self.varint()?;
        match len {
            -1 => Ok(None),
            len if len < 0 => Err(invalid(format!("negative field length {len}"))),
            len => Ok(Some(self.bytes(len as usize)?)),
        }
    }
}

fn read_record<'a>(cursor: &mut Cursor<'a>) -> Result<RecordView<'a>, BatchError> {
    let length = cursor.varint()?;
    if length < 0 {
        return Err(invalid(format!("negative record length {length}")));
    }
    let start = cursor.pos;
    let end = start
        .checked_add(length as usize)
        .filter(|end| *end <= cursor.buf.len())
        .ok_or_else(|| invalid("record length runs past the end of the batch"))?;
    cursor.bytes(1)?; // attributes, unused in v2
    let timestamp_delta = cursor.varlong()?;
    let offset_delta = cursor.varint()?;
    let key = cursor.nullable_bytes()?;
    let value = cursor.nullable_bytes()?;
    let headers_start = cursor.pos;
    let header_count = cursor.varint()?;
    if header_count < 0 {
        return Err(invalid(format!("negative header count {header_count}")));
    }
    for _ in 0..header_count {
        let key_len = cursor.varint()?;
        if key_len < 0 {
            return Err(invalid("header key must not be null"));
        }
        cursor.bytes(key_len as usize)?;
        cursor.nullable_bytes()?;
    }
    if cursor.pos != end {
        return Err(invalid(format!(
            "record length {length} does not match its fields ({} bytes)",
            cursor.pos - start
        )));
    }
    Ok(RecordView {
        offset_delta,
        timestamp_delta,
        key,
        value,
        headers: &cursor.buf[headers_start..end],
        header_count,
    })
}

/// Encodes a record's header section (count, then each name and value), keeping order and
/// repeated names.
pub fn encode_headers<'a>(
    headers: impl ExactSizeIterator<Item = (&'a [u8], Option<&'a [u8]>)>,
) -> Vec<u8> {
    let mut out = Vec::new();
    put_varlong(&mut out, headers.len() as i64);
    for (name, value) in headers {
        put_varlong(&mut out, name.len() as i64);
        out.extend_from_slice(name);
        put_nullable(&mut out, value);
    }
    out
}

/// Control record type of a transaction's abort marker.
pub const CONTROL_ABORT: i16 = 0;
/// Control record type of a transaction's commit marker.
pub const CONTROL_COMMIT: i16 = 1;

/// Builds a transaction marker: a control batch holding one control record whose key is
/// (version 0, type) and whose value is (version 0, coordinator epoch).
pub fn build_marker(
    producer_id: i64,
    producer_epoch: i16,
    commit: bool,
    coordinator_epoch: i32,
    timestamp_ms: i64,
) -> Vec<u8> {
    let mut builder = BatchBuilder::new(0, timestamp_ms);
    builder.attributes = ATTR_TRANSACTIONAL | ATTR_CONTROL;
    builder.producer_id = producer_id;
    builder.producer_epoch = producer_epoch;
    builder.base_sequence = -1;
    let kind = if commit {
        CONTROL_COMMIT
    } else {
        CONTROL_ABORT
    };
    let mut key = Vec::with_capacity(4);
    key.extend_from_slice(&0i16.to_be_bytes());
    key.extend_from_slice(&kind.to_be_bytes());
    let mut value = Vec::with_capacity(6);
    value.extend_from_slice(&0i16.to_be_bytes());
    value.extend_from_slice(&coordinator_epoch.to_be_bytes());
    builder.push(0, Some(&key), Some(&value));
    // Uncompressed: building cannot fail.
    builder
        .build()
        .expect("an uncompressed marker batch always builds")
}

/// The control record type of a control batch (`CONTROL_ABORT`/`CONTROL_COMMIT`), if readable.
pub fn control_type(batch: &[u8]) -> Option<i16> {
    let header = BatchHeader::parse(batch).ok()?;
    if !header.is_control() || batch.len() < header.total_len() {
        return None;
    }
    let records = record_bytes(batch, 1 << 16).ok()?;
    let parsed = parse_records(&records, &header).ok()?;
    let key = parsed.first()?.key?;
    (key.len() >= 4).then(|| i16::from_be_bytes([key[2], key[3]]))
}

/// A record header: name and nullable value, borrowed from the record.
pub type Header<'a> = (&'a [u8], Option<&'a [u8]>);

/// Decodes a record's header section as [`RecordView::headers`] holds it, in order.
pub fn parse_headers(section: &[u8]) -> Result<Vec<Header<'_>>, BatchError> {
    let mut cursor = Cursor {
        buf: section,
        pos: 0,
    };
    let count = cursor.varint()?;
    if count < 0 {
        return Err(invalid(format!("negative header count {count}")));
    }
    let mut headers = Vec::with_capacity((count as usize).min(section.len()));
    for _ in 0..count {
        let name_len = cursor.varint()?;
        if name_len < 0 {
            return Err(invalid("header key must not be null"));
        }
        let name = cursor.bytes(name_len as usize)?;
        headers.push((name, cursor.nullable_bytes()?));
    }
    Ok(headers)
}

/// Builds a RecordBatch v2; used by the cleaner to rewrite batches and by tests.
#[derive(Debug, Clone)]
pub struct BatchBuilder {
    /// Base offset written into the batch.
    pub base_offset: i64,
    /// Base timestamp; record timestamps are relative to it.
    pub base_timestamp: i64,
    /// Attributes (compression, timestamp type, flags); the codec bits pick the compression.
    pub attributes: i16,
    /// Overrides the last offset delta (the cleaner keeps the original one).
    pub last_offset_delta: Option<i32>,
    /// Overrides the max timestamp (the cleaner keeps the original one).
    pub max_timestamp: Option<i64>,
    /// Producer id (-1 when not idempotent).
    pub producer_id: i64,
    /// Producer epoch.
    pub producer_epoch: i16,
    /// Base sequence.
    pub base_sequence: i32,
    /// Leader epoch.
    pub partition_leader_epoch: i32,
    records: BytesMut,
    record_count: i32,
    max_timestamp_delta: i64,
    max_offset_delta: i32,
}

impl BatchBuilder {
    /// A builder for a batch at `base_offset` with timestamps relative to `base_timestamp`.
    pub fn new(base_offset: i64, base_timestamp: i64) -> BatchBuilder {
        BatchBuilder {
            base_offset,
            base_timestamp,
            attributes: 0,
            last_offset_delta: None,
            max_timestamp: None,
            producer_id: -1,
            producer_epoch: -1,
            base_sequence: -1,
            partition_leader_epoch: 0,
            records: BytesMut::new(),
            record_count: 0,
            max_timestamp_delta: 0,
            max_offset_delta: -1,
        }
    }

    /// Selects the compression codec.
    pub fn compression(mut self, codec: Compression) -> BatchBuilder {
        self.attributes = (self.attributes & !ATTR_COMPRESSION_MASK) | codec.id();
        self
    }

    /// Appends a record with the next offset delta.
    pub fn push(&mut self, timestamp_delta: i64, key: Option<&[u8]>, value: Option<&[u8]>) {
        let offset_delta = self.max_offset_delta + 1;
        self.push_raw(offset_delta, timestamp_delta, key, value, &[0]);
    }

    /// Appends a record with explicit deltas and an encoded header section (count then headers).
    pub fn push_raw(
        &mut self,
        offset_delta: i32,
        timestamp_delta: i64,
        key: Option<&[u8]>,
        value: Option<&[u8]>,
        headers: &[u8],
    ) {
        let mut body = BytesMut::new();
        body.put_u8(0);
        put_varlong(&mut body, timestamp_delta);
        put_varlong(&mut body, i64::from(offset_delta));
        put_nullable(&mut body, key);
        put_nullable(&mut body, value);
        body.put_slice(headers);
        put_varlong(&mut self.records, body.len() as i64);
        self.records.put_slice(&body);
        self.record_count += 1;
        self.max_timestamp_delta = self.max_timestamp_delta.max(timestamp_delta);
        self.max_offset_delta = self.max_offset_delta.max(offset_delta);
    }

    /// Number of records pushed so far.
    pub fn len(&self) -> usize {
        self.record_count as usize
    }

    /// Whether no record was pushed.
    pub fn is_empty(&self) -> bool {
        self.record_count == 0
    }

    /// Encodes the batch, compressing the records with the chosen codec.
    pub fn build(&self) -> Result<Vec<u8>, BatchError> {
        let codec = Compression::from_id(self.attributes & ATTR_COMPRESSION_MASK)?;
        let payload = compression::compress(codec, &self.records)?;
        let mut out = Vec::with_capacity(HEADER_LEN + payload.len());
        out.put_i64(self.base_offset);
        out.put_i32((HEADER_LEN - LOG_OVERHEAD + payload.len()) as i32);
        out.put_i32(self.partition_leader_epoch);
        out.put_i8(MAGIC_V2);
        out.put_u32(0);
        out.put_i16(self.attributes);
        out.put_i32(
            self.last_offset_delta
                .unwrap_or(self.max_offset_delta.max(0)),
        );
        out.put_i64(self.base_timestamp);
        out.put_i64(
            self.max_timestamp
                .unwrap_or(self.base_timestamp + self.max_timestamp_delta),
        );
        out.put_i64(self.producer_id);
        out.put_i16(self.producer_epoch);
        out.put_i32(self.base_sequence);
        out.put_i32(self.record_count);
        out.extend_from_slice(&payload);
        let crc = crc32c::crc32c(&out[ATTRIBUTES_OFFSET..]);
        out[CRC_OFFSET..CRC_OFFSET + 4].copy_from_slice(&crc.to_be_bytes());
        Ok(out)
    }
}

fn put_varlong(buf: &mut impl BufMut, value: i64) {
    let mut zigzag = ((value << 1) ^ (value >> 63)) as u64;
    while zigzag >= 0x80 {
        buf.put_u8((zigzag as u8) | 0x80);
        zigzag >>= 7;
    }
    buf.put_u8(zigzag as u8);
}

fn put_nullable(buf: &mut impl BufMut, value: Option<&[u8]>) {
    match value {
        None => put_varlong(buf, -1),
        Some(bytes) => {
            put_varlong(buf, bytes.len() as i64);
            buf.put_slice(bytes);
        }
    }
}

fn read_i16(buf: &[u8], at: usize) -> i16 {
    i16::from_be_bytes([buf[at], buf[at + 1]])
}

fn read_i32(buf: &[u8], at: usize) -> i32 {
    i32::from_be_bytes([buf[at], buf[at + 1], buf[at + 2], buf[at + 3]])
}

fn read_u32(buf: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([buf[at], buf[at + 1], buf[at + 2], buf[at + 3]])
}

fn read_i64(buf: &[u8], at: usize) -> i64 {
    let mut bytes = [0u8; 8];
    bytes.copy_from_slice(&buf[at..at + 8]);
    i64::from_be_bytes(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch(records: &[(&[u8], &[u8])]) -> Vec<u8> {
        let mut builder = BatchBuilder::new(0, 1_000);
        for (i, (key, value)) in records.iter().enumerate() {
            builder.push(i as i64, Some(key), Some(value));
        }
        builder.build().expect("build")
    }

    #[test]
    fn built_batch_validates_and_parses() {
        let bytes = batch(&[(b"k1", b"v1"), (b"k2", b"value two")]);
        let header = validate_produce_batch(&bytes, true, 1 << 20).expect("valid");
        assert_eq!(header.record_count, 2);
        assert_eq!(header.last_offset_delta, 1);
        assert_eq!(header.max_timestamp, 1_001);
        let records = parse_records(&bytes[HEADER_LEN..], &header).expect("records");
        assert_eq!(records[1].key, Some(&b"k2"[..]));
        assert_eq!(records[1].value, Some(&b"value two"[..]));
    }

    #[test]
    fn repeated_header_names_keep_every_value_in_order() {
        let headers = [
            (&b"hop"[..], Some(&b"a"[..])),
            (b"hop", Some(b"b")),
            (b"x", None),
            (b"hop", Some(b"c")),
        ];
        let section = encode_headers(headers.iter().copied());
        let mut builder = BatchBuilder::new(0, 0);
        builder.push_raw(0, 0, Some(b"k"), Some(b"v"), &section);
        let bytes = builder.build().expect("build");
        let header = validate_produce_batch(&bytes, false, 1 << 20).expect("valid");
        let records = parse_records(&bytes[HEADER_LEN..], &header).expect("records");
        assert_eq!(
            parse_headers(records[0].headers).expect("headers"),
            headers.to_vec()
        );
    }

    #[test]
    fn flipped_bit_is_a_crc_error() {
        let mut bytes = batch(&[(b"k", b"v")]);
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        assert!(matches!(
            validate_produce_batch(&bytes, false, 1 << 20),
            Err(BatchError::CorruptCrc { .. })
        ));
    }

    #[test]
    fn two_batches_in_one_partition_are_refused() {
        let mut bytes = batch(&[(b"k", b"v")]);
        bytes.extend_from_slice(&batch(&[(b"k", b"v")]));
        assert_eq!(
            validate_produce_batch(&bytes, false, 1 << 20),
            Err(BatchError::NotOneBatch { count: 2 })
        );
    }

    #[test]
    fn old_message_format_is_refused() {
        let mut bytes = batch(&[(b"k", b"v")]);
        bytes[16] = 1;
        assert_eq!(
            validate_produce_batch(&bytes, false, 1 << 20),
            Err(BatchError::UnsupportedMagic { magic: 1 })
        );
    }

    #[test]
    fn record_without_key_is_refused_when_keys_required() {
        let mut builder = BatchBuilder::new(0, 0);
        builder.push(0, None, Some(b"v"));
        let bytes = builder.build().expect("build");
        assert!(validate_produce_batch(&bytes, false, 1 << 20).is_ok());
        assert!(matches!(
            validate_produce_batch(&bytes, true, 1 << 20),
            Err(BatchError::RecordsRefused { errors }) if errors == vec![RecordError {
                index: 0,
                reason: RecordErrorReason::MissingKey,
            }]
        ));
    }

    /// Records 1 and 3 of 5 miss their key or their window; only they are named.
    fn refused_indexes(bytes: &[u8], rules: &RecordRules) -> Vec<(i32, bool)> {
        match validate_produce_batch_with(bytes, rules, 1 << 20) {
            Err(BatchError::RecordsRefused { errors }) => {
                errors.iter().map(|e| (e.index, e.is_timestamp())).collect()
            }
            Ok(_) => Vec::new(),
            Err(other) => panic!("unexpected error {other:?}"),
        }
    }

    #[test]
    fn every_record_is_checked_and_only_the_refused_ones_are_named() {
        const NOW: i64 = 1_700_000_000_000;
        const DAY: i64 = 86_400_000;
        for codec in [Compression::None, Compression::Lz4, Compression::Zstd] {
            // A day-old record in the middle of current ones: neither first nor the maximum.
            let mut builder = BatchBuilder::new(0, NOW).compression(codec);
            // (push takes the delta from the batch's base timestamp)
            builder.push(0, Some(b"k0"), Some(b"v"));
            builder.push(-DAY, Some(b"k1"), Some(b"v"));
            builder.push(1, Some(b"k2"), Some(b"v"));
            builder.push(-1 - NOW, Some(b"k3"), Some(b"v")); // no timestamp (-1): not checked
            let bytes = builder.build().expect("build");
            let hour_before = RecordRules {
                require_keys: false,
                timestamps: Some(TimestampWindow::around(NOW, 3_600_000, 3_600_000)),
            };
            assert_eq!(
                refused_indexes(&bytes, &hour_before),
                vec![(1, true)],
                "{codec:?}"
            );
            let defaults = RecordRules {
                require_keys: false,
                timestamps: Some(TimestampWindow::around(NOW, i64::MAX, 3_600_000)),
            };
            assert_eq!(refused_indexes(&bytes, &defaults), vec![], "{codec:?}");
            // Too far in the future: found even in a compressed batch under the defaults.
            let late = RecordRules {
                require_keys: false,
                timestamps: Some(TimestampWindow::around(
                    NOW - 2 * 3_600_000,
                    i64::MAX,
                    3_600_000,
                )),
            };
            assert_eq!(
                refused_indexes(&bytes, &late),
                vec![(0, true), (2, true)],
                "{codec:?}"
            );

            // A compacted topic: the keyless records only.
            let mut builder = BatchBuilder::new(0, NOW).compression(codec);
            for i in 0..5 {
                let key = format!("k{i}");
                builder.push(0, (i % 2 == 0).then_some(key.as_bytes()), Some(b"v"));
            }
            let bytes = builder.build().expect("build");
            let compacted = RecordRules {
                require_keys: true,
                timestamps: None,
            };
            assert_eq!(
                refused_indexes(&bytes, &compacted),
                vec![(1, false), (3, false)]
            );
        }
    }

    #[test]
    fn compressed_batches_round_trip_for_every_codec() {
        for codec in [
            Compression::Gzip,
            Compression::Snappy,
            Compression::Lz4,
            Compression::Zstd,
        ] {
            let mut builder = BatchBuilder::new(0, 5).compression(codec);
            for i in 0..100 {
                builder.push(i, Some(format!("key{i}").as_bytes()), Some(&[b'x'; 200]));
            }
            let bytes = builder.build().expect("build");
            let header = validate_produce_batch(&bytes, true, 1 << 20).expect("valid");
            assert_eq!(header.compression(), Ok(codec));
            let records = record_bytes(&bytes, 1 << 20).expect("decompress");
            let parsed = parse_records(&records, &header).expect("parse");
            assert_eq!(parsed.len(), 100);
            assert_eq!(parsed[42].key, Some(&b"key42"[..]));
        }
    }

    #[test]
    fn decompression_is_bounded() {
        let mut builder = BatchBuilder::new(0, 0).compression(Compression::Zstd);
        for _ in 0..1000 {
            builder.push(0, Some(b"k"), Some(&[0u8; 1000]));
        }
        let bytes = builder.build().expect("build");
        assert!(matches!(
            record_bytes(&bytes, 10_000),
            Err(BatchError::DecompressedTooLarge { .. })
        ));
    }

    #[test]
    fn log_append_time_rewrites_max_timestamp_and_crc() {
        let mut bytes = batch(&[(b"k", b"v")]);
        set_log_append_time(&mut bytes, 42);
        let header = validate_produce_batch(&bytes, false, 1 << 20).expect("still valid");
        assert!(header.is_log_append_time());
        assert_eq!(header.max_timestamp, 42);
    }

    #[test]
    fn truncated_record_is_an_error_not_a_panic() {
        let bytes = batch(&[(b"key", b"value")]);
        for cut in 0..bytes.len() {
            let _ = validate_produce_batch(&bytes[..cut], false, 1 << 20);
        }
    }

    #[test]
    fn batches_written_by_librdkafka_validate_for_every_codec() {
        // Run-time manifest directory: the build cache may be shared between checkouts.
        let manifest = std::env::var("CARGO_MANIFEST_DIR").expect("run under cargo");
        let dir = format!("{manifest}/../../fuzz/corpus/record_batch");
        for codec in ["none", "gzip", "snappy", "lz4", "zstd"] {
            let bytes = std::fs::read(format!("{dir}/{codec}")).expect("seed batch");
            let header = validate_produce_batch(&bytes, true, 1 << 20)
                .unwrap_or_else(|e| panic!("{codec}: {e}"));
            assert_eq!(
                header.compression().map(Compression::name),
                Ok(if codec == "none" {
                    "uncompressed"
                } else {
                    codec
                })
            );
            let records = record_bytes(&bytes, 1 << 20).expect("decompress");
            assert_eq!(
                parse_records(&records, &header).expect("records").len(),
                header.record_count as usize
            );
        }
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(data in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..400)) {
            let _ = validate_produce_batch(&data, true, 1 << 16);
            if let Ok(header) = BatchHeader::parse(&data) {
                if data.len() >= HEADER_LEN {
                    let _ = parse_records(&data[HEADER_LEN..], &header);
                }
            }
        }
    }
}
