//! The four Kafka compression codecs, with a hard bound on decompressed size.
//!
//! The broker never decompresses on the produce/fetch hot path. It does so only where a feature
//! needs record contents (keys for compacted topics, timestamp lookups, the cleaner), and then
//! the output is capped so a small "compression bomb" cannot exhaust memory.

use std::io::{Read, Write};

use crate::batch::BatchError;

/// A Kafka compression codec (attribute bits 0-2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Compression {
    /// Uncompressed.
    None,
    /// gzip.
    Gzip,
    /// Snappy, raw or in xerial framing.
    Snappy,
    /// LZ4 frame format.
    Lz4,
    /// Zstandard.
    Zstd,
}

impl Compression {
    /// Maps the attribute bits to a codec.
    pub fn from_id(id: i16) -> Result<Compression, BatchError> {
        match id {
            0 => Ok(Compression::None),
            1 => Ok(Compression::Gzip),
            2 => Ok(Compression::Snappy),
            3 => Ok(Compression::Lz4),
            4 => Ok(Compression::Zstd),
            codec => Err(BatchError::UnknownCompression { codec }),
        }
    }

    /// The attribute bits for this codec.
    pub fn id(self) -> i16 {
        match self {
            Compression::None => 0,
            Compression::Gzip => 1,
            Compression::Snappy => 2,
            Compression::Lz4 => 3,
            Compression::Zstd => 4,
        }
    }

    /// Kafka's name for the codec, as used by `compression.type`.
    pub fn name(self) -> &'static str {
        match self {
            Compression::None => "uncompressed",
            Compression::Gzip => "gzip",
            Compression::Snappy => "snappy",
            Compression::Lz4 => "lz4",
            Compression::Zstd => "zstd",
        }
    }
}

const XERIAL_MAGIC: &[u8] = b"\x82SNAPPY\x00";
const XERIAL_HEADER_LEN: usize = 16;
const XERIAL_BLOCK: usize = 32 * 1024;

/// Decompresses `data`, failing once the output would exceed `limit_bytes`.
pub fn decompress(
    codec: Compression,
    data: &[u8],
    limit_bytes: usize,
) -> Result<Vec<u8>, BatchError> {
    let fail = |reason: String| BatchError::Decompress { codec, reason };
    match codec {
        Compression::None => {
            if data.len() > limit_bytes {
                return Err(BatchError::DecompressedTooLarge { limit_bytes });
            }
            Ok(data.to_vec())
        }
        Compression::Gzip => {
            read_bounded(flate2::read::MultiGzDecoder::new(data), limit_bytes, codec)
        }
        Compression::Lz4 => {
            let decoder = lz4::Decoder::new(data).map_err(|e| fail(e.to_string()))?;
            read_bounded(decoder, limit_bytes, codec)
        }
        Compression::Zstd => {
            let decoder =
                zstd::stream::read::Decoder::new(data).map_err(|e| fail(e.to_string()))?;
            read_bounded(decoder, limit_bytes, codec)
        }
        Compression::Snappy => {
            if data.len() >= XERIAL_HEADER_LEN && data.starts_with(XERIAL_MAGIC) {
                let mut out = Vec::new();
                let mut rest = &data[XERIAL_HEADER_LEN..];
                while !rest.is_empty() {
                    if rest.len() < 4 {
                        return Err(fail("truncated xerial block length".to_string()));
                    }
                    let len = u32::from_be_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
                    let block = rest
                        .get(4..4 + len)
                        .ok_or_else(|| fail("truncated xerial block".to_string()))?;
                    snappy_raw_into(block, &mut out, limit_bytes, codec)?;
                    rest = &rest[4 + len..];
                }
                Ok(out)
            } else {
                let mut out = Vec::new();
                snappy_raw_into(data, &mut out, limit_bytes, codec)?;
                Ok(out)
            }
        }
    }
}

fn snappy_raw_into(
    block: &[u8],
    out: &mut Vec<u8>,
    limit_bytes: usize,
    codec: Compression,
) -> Result<(), BatchError> {
    let len = snap::raw::decompress_len(block).map_err(|e| BatchError::Decompress {
        codec,
        reason: e.to_string(),
    })?;
    if out.len() + len > limit_bytes {
        return Err(BatchError::DecompressedTooLarge { limit_bytes });
    }
    let start = out.len();
    out.resize(start + len, 0);
    snap::raw::Decoder::new()
        .decompress(block, &mut out[start..])
        .map_err(|e| BatchError::Decompress {
            codec,
            reason: e.to_string(),
        })?;
    Ok(())
}

fn read_bounded(
    reader: impl Read,
    limit_bytes: usize,
    codec: Compression,
) -> Result<Vec<u8>, BatchError> {
    let mut out = Vec::new();
    reader
        .take(limit_bytes as u64 + 1)
        .read_to_end(&mut out)
        .map_err(|e| BatchError::Decompress {
            codec,
            reason: e.to_string(),
        })?;
    if out.len() > limit_bytes {
        return Err(BatchError::DecompressedTooLarge { limit_bytes });
    }
    Ok(out)
}

/// Compresses `data` with `codec` in the framing Kafka's own clients write.
pub fn compress(codec: Compression, data: &[u8]) -> Result<Vec<u8>, BatchError> {
    let fail = |reason: String| BatchError::Decompress { codec, reason };
    match codec {
        Compression::None => Ok(data.to_vec()),
        Compression::Gzip => {
            let mut encoder =
                flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
            encoder.write_all(data).map_err(|e| fail(e.to_string()))?;
            encoder.finish().map_err(|e| fail(e.to_string()))
        }
        Compression::Lz4 => {
            let mut encoder = lz4::EncoderBuilder::new()
                .build(Vec::new())
                .map_err(|e| fail(e.to_string()))?;
            encoder.write_all(data).map_err(|e| fail(e.to_string()))?;
            let (out, result) = encoder.finish();
            result.map_err(|e| fail(e.to_string()))?;
            Ok(out)
        }
        Compression::Zstd => zstd::stream::encode_all(data, 3).map_err(|e| fail(e.to_string())),
        Compression::Snappy => {
            let mut out = Vec::with_capacity(XERIAL_HEADER_LEN + data.len());
            out.extend_from_slice(XERIAL_MAGIC);
            out.extend_from_slice(&1u32.to_be_bytes());
            out.extend_from_slice(&1u32.to_be_bytes());
            let mut encoder = snap::raw::Encoder::new();
            for block in data.chunks(XERIAL_BLOCK) {
                let compressed = encoder
                    .compress_vec(block)
                    .map_err(|e| fail(e.to_string()))?;
                out.extend_from_slice(&(compressed.len() as u32).to_be_bytes());
                out.extend_from_slice(&compressed);
            }
            Ok(out)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raw_snappy_is_read_as_well_as_xerial() {
        let data = b"hello hello hello hello".repeat(10);
        let raw = snap::raw::Encoder::new()
            .compress_vec(&data)
            .expect("compress");
        assert_eq!(
            decompress(Compression::Snappy, &raw, 1 << 20).expect("raw"),
            data
        );
        let framed = compress(Compression::Snappy, &data).expect("compress");
        assert_eq!(
            decompress(Compression::Snappy, &framed, 1 << 20).expect("xerial"),
            data
        );
    }

    #[test]
    fn garbage_is_an_error_for_every_codec() {
        for codec in [
            Compression::Gzip,
            Compression::Snappy,
            Compression::Lz4,
            Compression::Zstd,
        ] {
            assert!(decompress(codec, b"definitely not compressed", 1 << 20).is_err());
        }
    }
}
