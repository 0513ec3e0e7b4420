//! Placing a mirror topic's records at their source offsets (`spate.mirror.offsets=preserve`).
//!
//! A mirror writer (the Mirror source connector) sends each record with a
//! [`SOURCE_OFFSET_HEADER`] holding the offset the record has in its source partition. Kafka
//! producers cannot choose offsets, so the header carries it; this module rebuilds the batch
//! with the header removed and the offsets set to the source's. Gaps are allowed (the source's
//! compaction, aborted transactions and transaction markers leave them, as compaction leaves
//! them here), records already below the log end are dropped (a re-send after a crash), and a
//! record without the header is refused, so the mirror stays an exact copy of its source.
//!
//! Pure: bytes in, bytes out; the log calls it under its append lock, where the log end is
//! known.

use crate::LogError;
use crate::batch::{self, BatchBuilder, BatchHeader};

/// The record header that carries a mirrored record's source offset, 8 bytes big-endian.
pub const SOURCE_OFFSET_HEADER: &str = "spate.source.offset";

/// What placing a batch at its source offsets gives.
#[derive(Debug, PartialEq, Eq)]
pub enum Placement {
    /// The batch to store, its base offset the first kept record's source offset.
    Placed(Vec<u8>),
    /// Every record is below the log end: the log already holds them.
    AlreadyHeld {
        /// The source offset of the batch's first record.
        first_offset: i64,
        /// The source offset of its last record.
        last_offset: i64,
    },
}

/// Rebuilds `batch` (validated, as a producer sent it) with each record at the source offset
/// its [`SOURCE_OFFSET_HEADER`] gives and that header removed, keeping only records at or past
/// `log_end`. Keys, values, other headers (in order), timestamps, compression, the producer id
/// and the transactional flag are kept; the sequence is cleared, because the producer's
/// sequences count records and the stored offset deltas now count source offsets.
pub fn place_at_source_offsets(
    batch: &[u8],
    header: &BatchHeader,
    log_end: i64,
    limit_bytes: usize,
) -> Result<Placement, LogError> {
    if header.is_control() {
        return Err(LogError::InvalidSourceOffset {
            index: 0,
            reason: "a control batch cannot be mirrored".into(),
        });
    }
    let records = batch::record_bytes(batch, limit_bytes)?;
    let parsed = batch::parse_records(&records, header)?;
    let mut placed: Vec<(i64, usize, Vec<u8>)> = Vec::with_capacity(parsed.len());
    let mut previous: Option<i64> = None;
    let mut first_offset: Option<i64> = None;
    for (index, record) in parsed.iter().enumerate() {
        let index = i32::try_from(index).unwrap_or(i32::MAX);
        let headers = batch::parse_headers(record.headers)?;
        let mut offset = None;
        let mut kept = Vec::with_capacity(headers.len());
        for (name, value) in headers {
            if name == SOURCE_OFFSET_HEADER.as_bytes() {
                let bytes: [u8; 8] = value.and_then(|v| v.try_into().ok()).ok_or_else(|| {
                    LogError::InvalidSourceOffset {
                        index,
                        reason: format!("the {SOURCE_OFFSET_HEADER} header must hold 8 bytes (a big-endian offset)"),
                    }
                })?;
                offset = Some(i64::from_be_bytes(bytes));
            } else {
                kept.push((name, value));
            }
        }
        let offset = offset.ok_or(LogError::MissingSourceOffset { index })?;
        if offset < 0 {
            return Err(LogError::InvalidSourceOffset {
                index,
                reason: format!("source offset {offset} is negative"),
            });
        }
        if let Some(previous) = previous
            && offset <= previous
        {
            return Err(LogError::InvalidSourceOffset {
                index,
                reason: format!(
                    "source offset {offset} does not follow {previous}: a batch's source offsets must increase"
                ),
            });
        }
        previous = Some(offset);
        first_offset.get_or_insert(offset);
        if offset >= log_end {
            placed.push((
                offset,
                index as usize,
                batch::encode_headers(kept.into_iter()),
            ));
        }
    }
    let (Some(first_offset), Some(last_offset)) = (first_offset, previous) else {
        return Err(LogError::Batch(batch::BatchError::InvalidRecords {
            reason: "a batch without records".into(),
        }));
    };
    let Some(&(base_offset, _, _)) = placed.first() else {
        return Ok(Placement::AlreadyHeld {
            first_offset,
            last_offset,
        });
    };
    let span = last_offset - base_offset;
    let Ok(_) = i32::try_from(span) else {
        return Err(LogError::InvalidSourceOffset {
            index: 0,
            reason: format!("source offsets of one batch span {span}, more than a batch can hold"),
        });
    };
    let mut builder = BatchBuilder::new(base_offset, header.base_timestamp);
    builder.attributes = header.attributes;
    builder.producer_id = header.producer_id;
    builder.producer_epoch = header.producer_epoch;
    builder.base_sequence = -1;
    for (offset, index, headers) in &placed {
        let record = &parsed[*index];
        builder.push_raw(
            (offset - base_offset) as i32,
            record.timestamp_delta,
            record.key,
            record.value,
            headers,
        );
    }
    Ok(Placement::Placed(builder.build()?))
}
