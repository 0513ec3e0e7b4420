//! The file formats of Confluent's storage sinks (`format.class`): newline-delimited JSON as
//! `JsonConverter` with `schemas.enable=false` writes it, raw bytes with a separator, Avro
//! object container files, and Parquet. Each file is built in memory and written as one object
//! (a multipart upload when large): `flush.size` records at most.

use std::hash::{Hash, Hasher};
use std::io::Write;

use crate::convert::avro_data::{self, AvroOptions, AvroType};
use crate::convert::json_converter::{JsonOptions, Path, write_value};
use crate::data::{ConnectRecord, Schema, Value};

use super::parquet::ParquetWriter;

/// Avro container codecs (`avro.codec`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AvroCodec {
    Null,
    Deflate,
    Snappy,
}

/// A configured `format.class`.
#[derive(Debug, Clone)]
pub(crate) enum Format {
    /// `JsonFormat`: one JSON document per line, gzip'd when `s3.compression.type=gzip`.
    Json {
        gzip: Option<u32>,
        decimal_numeric: bool,
    },
    /// `ByteArrayFormat`: each value's bytes, then the separator.
    ByteArray {
        extension: String,
        separator: Vec<u8>,
        gzip: Option<u32>,
    },
    /// `AvroFormat`: an Avro object container file of the values.
    Avro { codec: AvroCodec },
    /// `ParquetFormat`: a Parquet file of the (struct) values.
    Parquet {
        compression: parquet::basic::Compression,
    },
}

impl Format {
    /// The file name's extension, as Confluent's record writer providers give it.
    pub(crate) fn extension(&self) -> String {
        match self {
            Format::Json { gzip, .. } => {
                if gzip.is_some() {
                    ".json.gz".to_string()
                } else {
                    ".json".to_string()
                }
            }
            Format::ByteArray {
                extension, gzip, ..
            } => {
                if gzip.is_some() {
                    format!("{extension}.gz")
                } else {
                    extension.clone()
                }
            }
            Format::Avro { .. } => ".avro".to_string(),
            // parquet-mr's CompressionCodecName extension, then `.parquet`.
            Format::Parquet { compression } => {
                use parquet::basic::Compression::*;
                let codec = match compression {
                    SNAPPY => ".snappy",
                    GZIP(_) => ".gz",
                    ZSTD(_) => ".zstd",
                    LZ4_RAW => ".lz4raw",
                    _ => "",
                };
                format!("{codec}.parquet")
            }
        }
    }

    /// Whether records need a value schema in this format.
    pub(crate) fn needs_schema(&self) -> bool {
        matches!(self, Format::Avro { .. } | Format::Parquet { .. })
    }
}

/// One file being filled.
pub(crate) enum FileWriter {
    Text { out: Vec<u8>, gzip: Option<u32> },
    Avro(AvroFile),
    Parquet(ParquetWriter),
}

impl std::fmt::Debug for FileWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FileWriter::Text { out, .. } => write!(f, "Text({} bytes)", out.len()),
            FileWriter::Avro(a) => write!(f, "Avro({} bytes)", a.container.out.len()),
            FileWriter::Parquet(p) => write!(f, "{p:?}"),
        }
    }
}

impl FileWriter {
    /// A file of `format` for records whose values have `schema`; `name` seeds the Avro sync
    /// marker, so a file written again from the same records has the same bytes.
    pub(crate) fn new(
        format: &Format,
        schema: Option<&Schema>,
        name: &str,
    ) -> Result<FileWriter, String> {
        Ok(match format {
            Format::Json { gzip, .. } | Format::ByteArray { gzip, .. } => FileWriter::Text {
                out: Vec::new(),
                gzip: *gzip,
            },
            Format::Avro { codec } => {
                let schema = schema.ok_or(
                    "the Avro format needs records with a value schema: use a converter that \
                     gives one (AvroConverter, JsonConverter with schemas.enable=true, ...)",
                )?;
                FileWriter::Avro(AvroFile::new(schema, *codec, name)?)
            }
            Format::Parquet { compression } => {
                let schema = schema.ok_or(
                    "the Parquet format needs records with a value schema: use a converter \
                     that gives one (AvroConverter, JsonConverter with schemas.enable=true, ...)",
                )?;
                FileWriter::Parquet(ParquetWriter::new(schema, *compression)?)
            }
        })
    }

    /// Adds a record's value.
    pub(crate) fn write(&mut self, format: &Format, record: &ConnectRecord) -> Result<(), String> {
        match (self, format) {
            (
                FileWriter::Text { out, .. },
                Format::Json {
                    decimal_numeric, ..
                },
            ) => {
                let options = JsonOptions {
                    decimal_numeric: *decimal_numeric,
                    ..JsonOptions::default()
                };
                let mut text = String::with_capacity(256);
                write_value(
                    record.value_schema.as_deref(),
                    &record.value,
                    &options,
                    &Path::Root,
                    &mut text,
                )
                .map_err(|e| format!("converting the value to JSON: {e}"))?;
                out.extend_from_slice(text.as_bytes());
                out.push(b'\n');
            }
            (FileWriter::Text { out, .. }, Format::ByteArray { separator, .. }) => {
                let Value::Bytes(bytes) = &record.value else {
                    return Err(
                        "the ByteArray format writes bytes values: use value.converter \
                         org.apache.kafka.connect.converters.ByteArrayConverter"
                            .to_string(),
                    );
                };
                out.extend_from_slice(bytes);
                out.extend_from_slice(separator);
            }
            (FileWriter::Avro(file), _) => file.write(&record.value)?,
            (FileWriter::Parquet(file), _) => file.write(&record.value)?,
            (_, _) => return Err("the file's writer does not match the format".to_string()),
        }
        Ok(())
    }

    /// The file's bytes.
    pub(crate) fn finish(self) -> Result<Vec<u8>, String> {
        match self {
            FileWriter::Text { out, gzip: None } => Ok(out),
            FileWriter::Text {
                out,
                gzip: Some(level),
            } => {
                let mut encoder =
                    flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::new(level));
                encoder
                    .write_all(&out)
                    .and_then(|()| encoder.finish())
                    .map_err(|e| format!("compressing the file: {e}"))
            }
            FileWriter::Avro(file) => file.finish(),
            FileWriter::Parquet(file) => file.finish(),
        }
    }
}

/// Bytes of encoded records an Avro block holds before it is written (Avro's default sync
/// interval is 64 KB).
const AVRO_BLOCK_BYTES: usize = 64 * 1024;

/// An Avro object container file of Connect values (Avro's spec, "Object Container Files").
pub(crate) struct AvroFile {
    avro: AvroType,
    container: AvroContainer,
}

impl AvroFile {
    fn new(schema: &Schema, codec: AvroCodec, name: &str) -> Result<AvroFile, String> {
        let json = avro_data::from_connect_schema(schema, AvroOptions::default())
            .map_err(|e| format!("the value schema has no Avro schema: {e}"))?;
        let text = avro_data::schema_text(&json);
        let avro = avro_data::parse(&text, &[])
            .map_err(|e| format!("the value schema's Avro schema does not parse: {e}"))?;
        Ok(AvroFile {
            avro,
            container: AvroContainer::new(&text, codec, &[], name),
        })
    }

    fn write(&mut self, value: &Value) -> Result<(), String> {
        let encoded = avro_data::encode(&self.avro, value)
            .map_err(|e| format!("encoding the value as Avro: {e}"))?;
        self.container.append(&encoded)
    }

    fn finish(self) -> Result<Vec<u8>, String> {
        self.container.finish()
    }
}

/// The container of Avro datums already encoded: header (schema, codec, other metadata), then
/// blocks of about 64 KB, each followed by the sync marker.
pub(crate) struct AvroContainer {
    codec: AvroCodec,
    sync: [u8; 16],
    out: Vec<u8>,
    block: Vec<u8>,
    count: i64,
}

impl AvroContainer {
    /// A container of datums of `schema` (Avro schema JSON text); `name` seeds the sync marker,
    /// so the same datums give the same bytes.
    pub(crate) fn new(
        schema: &str,
        codec: AvroCodec,
        metadata: &[(&str, &str)],
        name: &str,
    ) -> AvroContainer {
        let mut sync = [0u8; 16];
        for (i, half) in sync.chunks_mut(8).enumerate() {
            let mut hasher = std::collections::hash_map::DefaultHasher::new();
            (name, i).hash(&mut hasher);
            half.copy_from_slice(&hasher.finish().to_le_bytes());
        }
        let mut out = b"Obj\x01".to_vec();
        let codec_name: &str = match codec {
            AvroCodec::Null => "null",
            AvroCodec::Deflate => "deflate",
            AvroCodec::Snappy => "snappy",
        };
        // The metadata map: one block of its entries, then the end.
        write_long(&mut out, 2 + metadata.len() as i64);
        write_bytes(&mut out, b"avro.schema");
        write_bytes(&mut out, schema.as_bytes());
        write_bytes(&mut out, b"avro.codec");
        write_bytes(&mut out, codec_name.as_bytes());
        for (key, value) in metadata {
            write_bytes(&mut out, key.as_bytes());
            write_bytes(&mut out, value.as_bytes());
        }
        write_long(&mut out, 0);
        out.extend_from_slice(&sync);
        AvroContainer {
            codec,
            sync,
            out,
            block: Vec::new(),
            count: 0,
        }
    }

    /// Adds one encoded datum.
    pub(crate) fn append(&mut self, datum: &[u8]) -> Result<(), String> {
        self.block.extend_from_slice(datum);
        self.count += 1;
        if self.block.len() >= AVRO_BLOCK_BYTES {
            self.write_block()?;
        }
        Ok(())
    }

    fn write_block(&mut self) -> Result<(), String> {
        if self.count == 0 {
            return Ok(());
        }
        let data = match self.codec {
            AvroCodec::Null => std::mem::take(&mut self.block),
            AvroCodec::Deflate => {
                let mut encoder =
                    flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::default());
                encoder
                    .write_all(&self.block)
                    .and_then(|()| encoder.finish())
                    .map_err(|e| format!("compressing an Avro block: {e}"))?
            }
            AvroCodec::Snappy => {
                let mut data = snap::raw::Encoder::new()
                    .compress_vec(&self.block)
                    .map_err(|e| format!("compressing an Avro block: {e}"))?;
                data.extend_from_slice(&crc32fast::hash(&self.block).to_be_bytes());
                data
            }
        };
        self.block.clear();
        write_long(&mut self.out, self.count);
        write_long(&mut self.out, data.len() as i64);
        self.out.extend_from_slice(&data);
        self.out.extend_from_slice(&self.sync);
        self.count = 0;
        Ok(())
    }

    /// The file's bytes.
    pub(crate) fn finish(mut self) -> Result<Vec<u8>, String> {
        self.write_block()?;
        Ok(self.out)
    }
}

/// Appends an Avro `long` (zig-zag varint).
pub(crate) fn write_long(out: &mut Vec<u8>, v: i64) {
    let mut raw = ((v << 1) ^ (v >> 63)) as u64;
    while raw >= 0x80 {
        out.push((raw as u8) | 0x80);
        raw >>= 7;
    }
    out.push(raw as u8);
}

/// Appends Avro `bytes` or a `string`: its length, then it.
pub(crate) fn write_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    write_long(out, bytes.len() as i64);
    out.extend_from_slice(bytes);
}

/// The schema text and the datums of an Avro container file, decoded as Connect values (the
/// codecs [`AvroContainer`] writes).
pub(crate) fn read_container(bytes: &[u8]) -> Result<(String, Vec<Value>), String> {
    let mut r = Cursor { bytes, pos: 0 };
    if r.take(4)? != b"Obj\x01" {
        return Err("not an Avro container file".to_string());
    }
    let mut schema_text = String::new();
    let mut codec = AvroCodec::Null;
    loop {
        let count = r.long()?;
        if count == 0 {
            break;
        }
        if count < 0 {
            r.long()?;
        }
        for _ in 0..count.unsigned_abs() {
            let key = r.bytes()?.to_vec();
            let value = r.bytes()?.to_vec();
            match key.as_slice() {
                b"avro.schema" => schema_text = String::from_utf8_lossy(&value).into_owned(),
                b"avro.codec" => {
                    codec = match value.as_slice() {
                        b"null" => AvroCodec::Null,
                        b"deflate" => AvroCodec::Deflate,
                        b"snappy" => AvroCodec::Snappy,
                        other => {
                            return Err(format!(
                                "Avro codec {} is not supported",
                                String::from_utf8_lossy(other)
                            ));
                        }
                    }
                }
                _ => {}
            }
        }
    }
    let sync = r.take(16)?.to_vec();
    let avro = avro_data::parse(&schema_text, &[]).map_err(|e| e.to_string())?;
    let schema = std::sync::Arc::new(
        avro_data::to_connect_schema(&avro, AvroOptions::default()).map_err(|e| e.to_string())?,
    );
    let mut values = Vec::new();
    while r.pos < bytes.len() {
        let count = usize::try_from(r.long()?).map_err(|_| "a negative block count")?;
        let size = usize::try_from(r.long()?).map_err(|_| "a negative block size")?;
        let data = r.take(size)?;
        let block = match codec {
            AvroCodec::Null => data.to_vec(),
            AvroCodec::Deflate => {
                let mut out = Vec::new();
                std::io::Read::read_to_end(&mut flate2::read::DeflateDecoder::new(data), &mut out)
                    .map_err(|e| format!("inflating an Avro block: {e}"))?;
                out
            }
            AvroCodec::Snappy => snap::raw::Decoder::new()
                .decompress_vec(&data[..data.len().saturating_sub(4)])
                .map_err(|e| format!("decompressing an Avro block: {e}"))?,
        };
        values.extend(
            avro_data::decode_many(&block, count, &avro, &schema).map_err(|e| e.to_string())?,
        );
        if r.take(16)? != sync.as_slice() {
            return Err("an Avro block does not end with the file's sync marker".to_string());
        }
    }
    Ok((schema_text, values))
}

struct Cursor<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        let end = self.pos.checked_add(n).filter(|e| *e <= self.bytes.len());
        let end = end.ok_or("the Avro file ends early")?;
        let out = &self.bytes[self.pos..end];
        self.pos = end;
        Ok(out)
    }

    fn long(&mut self) -> Result<i64, String> {
        let mut raw: u64 = 0;
        for shift in (0..70).step_by(7) {
            let byte = self.take(1)?[0];
            raw |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Ok(((raw >> 1) as i64) ^ -((raw & 1) as i64));
            }
        }
        Err("a varint is longer than 10 bytes".to_string())
    }

    fn bytes(&mut self) -> Result<&'a [u8], String> {
        let n = usize::try_from(self.long()?).map_err(|_| "a negative length")?;
        self.take(n)
    }
}
