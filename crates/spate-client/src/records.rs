//! Record batches: encoding what the producer sends and reading what a fetch returns.
//!
//! The batch codec (framing, CRC-32C, every compression codec) is the `kafka-protocol`
//! crate's. This module only adds what a client needs around it: a batch per partition with
//! offsets and sequences laid out as a non-idempotent Java producer does, and, on the read
//! side, splitting a fetch response into complete batches (a broker may cut the last one
//! short), skipping control records and records before the fetch offset, and advancing past a
//! batch by its last offset delta so that compacted or transactional gaps cannot stall a
//! consumer. Pure functions on bytes.

use bytes::Bytes;
use kafka_protocol::records::{Compression, TimestampType};
use spate_log::{BatchBuilder, BatchHeader};

use crate::error::{Error, Result};

/// Byte positions in a v2 record batch header.
mod header {
    /// `baseOffset: int64`.
    pub const BASE_OFFSET: usize = 0;
    /// `batchLength: int32`, counting the bytes after this field.
    pub const LENGTH: usize = 8;
    /// `magic: int8`.
    pub const MAGIC: usize = 16;
    /// `lastOffsetDelta: int32`.
    pub const LAST_OFFSET_DELTA: usize = 23;
    /// Size of the header up to and including `records count`.
    pub const SIZE: usize = 61;
    /// Size of the fields before `batchLength`'s payload (`baseOffset` and `batchLength`).
    pub const LOG_OVERHEAD: usize = 12;
}

/// A record to produce.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProducerRecord {
    /// The key (`None` is a null key).
    pub key: Option<Bytes>,
    /// The value (`None` is a null value, a tombstone on compacted topics).
    pub value: Option<Bytes>,
    /// Headers in order; a name may repeat.
    pub headers: Vec<(String, Option<Bytes>)>,
    /// Create time in milliseconds since the epoch.
    pub timestamp_ms: i64,
}

impl ProducerRecord {
    /// Bytes the record adds to an uncompressed batch, approximately (for sizing batches).
    pub fn estimated_size_bytes(&self) -> usize {
        const RECORD_OVERHEAD_BYTES: usize = 21;
        let headers: usize = self
            .headers
            .iter()
            .map(|(name, value)| name.len() + value.as_ref().map_or(0, Bytes::len) + 10)
            .sum();
        RECORD_OVERHEAD_BYTES
            + self.key.as_ref().map_or(0, Bytes::len)
            + self.value.as_ref().map_or(0, Bytes::len)
            + headers
    }
}

/// Encodes `records` as one v2 record batch for one partition (offset deltas from 0, no
/// producer id or sequence, as a non-idempotent Java producer writes them). Headers keep their
/// order and repeated names.
pub fn encode_batch(records: &[ProducerRecord], compression: Compression) -> Result<Bytes> {
    let Some(first) = records.first() else {
        return Err(Error::RecordEncode {
            reason: "a batch needs at least one record".to_string(),
        });
    };
    let mut builder = BatchBuilder::new(0, first.timestamp_ms).compression(codec(compression));
    for (i, record) in records.iter().enumerate() {
        let headers = spate_log::batch::encode_headers(
            record
                .headers
                .iter()
                .map(|(name, value)| (name.as_bytes(), value.as_deref())),
        );
        builder.push_raw(
            i as i32,
            record.timestamp_ms - first.timestamp_ms,
            record.key.as_deref(),
            record.value.as_deref(),
            &headers,
        );
    }
    builder
        .build()
        .map(Bytes::from)
        .map_err(|e| Error::RecordEncode {
            reason: e.to_string(),
        })
}

fn codec(compression: Compression) -> spate_log::Compression {
    match compression {
        Compression::None => spate_log::Compression::None,
        Compression::Gzip => spate_log::Compression::Gzip,
        Compression::Snappy => spate_log::Compression::Snappy,
        Compression::Lz4 => spate_log::Compression::Lz4,
        Compression::Zstd => spate_log::Compression::Zstd,
    }
}

/// Largest decompressed batch a consumer accepts.
const MAX_DECOMPRESSED_BATCH_BYTES: usize = 256 << 20;

/// A record read from a partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumedRecord {
    /// Its offset.
    pub offset: i64,
    /// Milliseconds since the epoch: create time, or the broker's append time.
    pub timestamp_ms: i64,
    /// Which of the two `timestamp_ms` is.
    pub timestamp_type: TimestampType,
    /// The key (`None` is a null key).
    pub key: Option<Bytes>,
    /// The value (`None` is a null value).
    pub value: Option<Bytes>,
    /// Headers in order.
    pub headers: Vec<(String, Option<Bytes>)>,
}

/// The records of a fetch response's `records` field.
#[derive(Debug, Default)]
pub struct FetchedRecords {
    /// Data records at or after the fetch offset, in offset order.
    pub records: Vec<ConsumedRecord>,
    /// The offset after the last complete batch, if there was one: where the next fetch
    /// starts, even when the batch held only control or compacted-away records.
    pub next_offset: Option<i64>,
}

/// Where a fetch's records came from (for error messages).
#[derive(Debug, Clone, Copy)]
pub struct PartitionRef<'a> {
    /// The topic.
    pub topic: &'a str,
    /// The partition.
    pub partition: i32,
}

/// Reads the complete batches in `data`, keeping data records with offset >= `fetch_offset`.
/// A trailing partial batch is ignored; `limit_bytes` is the fetch size, used to report a
/// batch that can never fit.
pub fn decode_fetched(
    at: PartitionRef<'_>,
    fetch_offset: i64,
    data: Bytes,
    limit_bytes: usize,
) -> Result<FetchedRecords> {
    let mut out = FetchedRecords::default();
    let mut position = 0usize;
    while data.len() - position >= header::LOG_OVERHEAD {
        let rest = &data[position..];
        let base_offset = read_i64(rest, header::BASE_OFFSET);
        let length = read_i32(rest, header::LENGTH);
        let corrupt = |reason: String| Error::RecordDecode {
            topic: at.topic.to_string(),
            partition: at.partition,
            offset: base_offset,
            reason,
        };
        if length < 0 {
            return Err(corrupt(format!("negative batch length {length}")));
        }
        let total = header::LOG_OVERHEAD + length as usize;
        if total > rest.len() {
            // A batch cut short by the response size limit: fetch again from here.
            if out.next_offset.is_none() && total > limit_bytes {
                return Err(Error::BatchTooLarge {
                    topic: at.topic.to_string(),
                    partition: at.partition,
                    offset: base_offset,
                    size_bytes: total,
                    limit_bytes,
                });
            }
            break;
        }
        if rest.len() > header::MAGIC {
            let magic = rest[header::MAGIC] as i8;
            if magic < 2 {
                return Err(Error::LegacyMessageFormat {
                    topic: at.topic.to_string(),
                    partition: at.partition,
                    offset: base_offset,
                    magic,
                });
            }
        }
        if total < header::SIZE {
            return Err(corrupt(format!(
                "batch of {total} bytes is shorter than its header"
            )));
        }
        let last_offset_delta = read_i32(rest, header::LAST_OFFSET_DELTA);
        let batch = &data[position..position + total];
        let batch_header = BatchHeader::parse(batch).map_err(|e| corrupt(e.to_string()))?;
        spate_log::batch::verify_crc(batch, &batch_header).map_err(|e| corrupt(e.to_string()))?;
        if !batch_header.is_control() {
            let records = spate_log::batch::record_bytes(batch, MAX_DECOMPRESSED_BATCH_BYTES)
                .map_err(|e| corrupt(e.to_string()))?;
            let parsed = spate_log::batch::parse_records(&records, &batch_header)
                .map_err(|e| corrupt(e.to_string()))?;
            for record in parsed {
                let offset = base_offset + i64::from(record.offset_delta);
                if offset < fetch_offset {
                    continue;
                }
                let (timestamp_type, timestamp_ms) = if batch_header.is_log_append_time() {
                    (TimestampType::LogAppend, batch_header.max_timestamp)
                } else {
                    (
                        TimestampType::Creation,
                        batch_header.base_timestamp + record.timestamp_delta,
                    )
                };
                let headers = spate_log::batch::parse_headers(record.headers)
                    .map_err(|e| corrupt(e.to_string()))?
                    .into_iter()
                    .map(|(name, value)| {
                        (
                            String::from_utf8_lossy(name).into_owned(),
                            value.map(Bytes::copy_from_slice),
                        )
                    })
                    .collect();
                out.records.push(ConsumedRecord {
                    offset,
                    timestamp_ms,
                    timestamp_type,
                    key: record.key.map(Bytes::copy_from_slice),
                    value: record.value.map(Bytes::copy_from_slice),
                    headers,
                });
            }
        }
        out.next_offset = Some(base_offset + i64::from(last_offset_delta) + 1);
        position += total;
    }
    Ok(out)
}

fn read_i64(buf: &[u8], at: usize) -> i64 {
    let mut bytes = [0u8; 8];
    bytes.copy_from_slice(&buf[at..at + 8]);
    i64::from_be_bytes(bytes)
}

fn read_i32(buf: &[u8], at: usize) -> i32 {
    let mut bytes = [0u8; 4];
    bytes.copy_from_slice(&buf[at..at + 4]);
    i32::from_be_bytes(bytes)
}

/// Parses a codec name as the CLI and Kafka's `compression.type` spell it.
pub fn parse_compression(name: &str) -> Option<Compression> {
    Some(match name.to_ascii_lowercase().as_str() {
        "none" => Compression::None,
        "gzip" => Compression::Gzip,
        "snappy" => Compression::Snappy,
        "lz4" => Compression::Lz4,
        "zstd" => Compression::Zstd,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(i: usize) -> ProducerRecord {
        ProducerRecord {
            key: (i % 2 == 0).then(|| Bytes::from(format!("k{i}"))),
            value: Some(Bytes::from(format!("value-{i}"))),
            headers: vec![("h".to_string(), Some(Bytes::from_static(b"v")))],
            timestamp_ms: 1_700_000_000_000 + i as i64,
        }
    }

    const AT: PartitionRef<'static> = PartitionRef {
        topic: "t",
        partition: 0,
    };

    fn batch_at(base_offset: i64, records: &[ProducerRecord], compression: Compression) -> Bytes {
        let mut bytes = encode_batch(records, compression).expect("encode").to_vec();
        bytes[..8].copy_from_slice(&base_offset.to_be_bytes());
        // The CRC does not cover the base offset, so the batch stays valid.
        Bytes::from(bytes)
    }

    #[test]
    fn many_records_make_one_batch_in_every_codec() {
        let records: Vec<_> = (0..50).map(record).collect();
        for compression in [
            Compression::None,
            Compression::Gzip,
            Compression::Snappy,
            Compression::Lz4,
            Compression::Zstd,
        ] {
            let bytes = encode_batch(&records, compression).expect("encode");
            let info = BatchHeader::parse(&bytes).expect("header");
            assert_eq!(info.total_len(), bytes.len(), "{compression:?}: one batch");
            assert_eq!(info.record_count, 50);
            assert_eq!(info.base_sequence, -1, "NO_SEQUENCE");
            assert_eq!(info.producer_id, -1);
            let fetched = decode_fetched(AT, 0, bytes, 1 << 20).expect("decode");
            assert_eq!(fetched.records.len(), 50);
            assert_eq!(fetched.next_offset, Some(50));
            for (i, r) in fetched.records.iter().enumerate() {
                assert_eq!(r.offset, i as i64);
                assert_eq!(r.key, records[i].key);
                assert_eq!(r.value, records[i].value);
                assert_eq!(r.headers, records[i].headers);
                assert_eq!(r.timestamp_ms, records[i].timestamp_ms);
            }
        }
    }

    #[test]
    fn partial_trailing_batch_is_left_for_the_next_fetch() {
        let first = batch_at(10, &[record(0), record(1)], Compression::None);
        let second = batch_at(12, &[record(2)], Compression::None);
        let mut data = first.to_vec();
        data.extend_from_slice(&second[..second.len() - 3]);
        let fetched = decode_fetched(AT, 10, Bytes::from(data), 1 << 20).expect("decode");
        assert_eq!(fetched.records.len(), 2);
        assert_eq!(fetched.next_offset, Some(12));
    }

    #[test]
    fn records_before_the_fetch_offset_are_skipped() {
        let data = batch_at(100, &[record(0), record(1), record(2)], Compression::Lz4);
        let fetched = decode_fetched(AT, 102, data, 1 << 20).expect("decode");
        assert_eq!(fetched.records.len(), 1);
        assert_eq!(fetched.records[0].offset, 102);
        assert_eq!(fetched.next_offset, Some(103));
    }

    #[test]
    fn a_batch_larger_than_the_fetch_size_is_an_error_not_a_stall() {
        let data = batch_at(0, &[record(0)], Compression::None);
        let cut = data.slice(..20);
        assert!(matches!(
            decode_fetched(AT, 0, cut, 16),
            Err(Error::BatchTooLarge { .. })
        ));
        assert!(decode_fetched(AT, 0, data.slice(..20), 1 << 20).is_ok());
    }

    #[test]
    fn corrupt_batches_are_errors() {
        let mut data = batch_at(0, &[record(0)], Compression::None).to_vec();
        let last = data.len() - 1;
        data[last] ^= 0xff;
        assert!(matches!(
            decode_fetched(AT, 0, Bytes::from(data), 1 << 20),
            Err(Error::RecordDecode { .. })
        ));
        let mut legacy = batch_at(0, &[record(0)], Compression::None).to_vec();
        legacy[header::MAGIC] = 1;
        assert!(matches!(
            decode_fetched(AT, 0, Bytes::from(legacy), 1 << 20),
            Err(Error::LegacyMessageFormat { magic: 1, .. })
        ));
    }

    #[test]
    fn arbitrary_bytes_never_panic() {
        let valid = batch_at(0, &[record(0), record(1)], Compression::Gzip);
        for cut in 0..valid.len() {
            let _ = decode_fetched(AT, 0, valid.slice(..cut), 1 << 20);
            let mut flipped = valid.to_vec();
            flipped[cut] = flipped[cut].wrapping_add(1);
            let _ = decode_fetched(AT, 0, Bytes::from(flipped), 1 << 20);
        }
    }

    #[test]
    fn codec_names() {
        assert_eq!(parse_compression("ZSTD"), Some(Compression::Zstd));
        assert_eq!(parse_compression("brotli"), None);
    }
}
