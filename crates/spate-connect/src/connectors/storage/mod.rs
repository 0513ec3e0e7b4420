//! Confluent's object storage sinks over `object_store`, one connector per store as Confluent
//! ships them, with the same layout and each its own key names ([`Cloud`]):
//! `io.confluent.connect.s3.S3SinkConnector` (`s3.*`, `aws.*`),
//! `io.confluent.connect.gcs.GcsSinkConnector` (`gcs.*`) and
//! `io.confluent.connect.azure.blob.AzureBlobStorageSinkConnector` (`azblob.*`, `az.*`): topics
//! into objects in JSON, raw bytes, Avro or Parquet, laid out by a partitioner, with Confluent's
//! keys, object names and rotation rules. `store.url` is the endpoint (MinIO, moto, Azurite, a
//! GCS emulator, ...) or, a Spate extension, `file:///dir` for a local directory.
//!
//! Exactly once, as Confluent's: each Kafka partition's records go into files of at most
//! `flush.size` records, named by topic, partition and the offset of their first record; the
//! files of a partition are written together when one rotates, and only then does the task let
//! the runtime commit the offset after them (`pre_commit`). After a crash the same records are
//! read again from the committed offset, fall into the same files and overwrite them with the
//! same contents; an object appears whole or not at all (one PUT, or a multipart upload
//! completed). Rotation on a wall-clock schedule (`rotate.schedule.interval.ms`) cuts files at
//! times that differ between runs, so it is at-least-once, as Confluent documents.

pub(crate) mod format;
pub(crate) mod parquet;
mod partitioner;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload, WriteMultipart};
use tokio::runtime::Runtime;

use crate::config::{ConfigProblem, Props, Reader};
use crate::data::{ConnectRecord, Schema, same_schema};
use crate::plugin::{ConfigKey, Connector, ConnectorKind, SinkOffsets, SinkTask, TaskError};

use format::{AvroCodec, FileWriter, Format};
use partitioner::{Extractor, Partitioner};

/// An object storage sink connector: Confluent's for one store.
pub struct StorageSink(pub Cloud);

/// The store a sink writes to. Confluent's three sinks share their layout and most keys; these
/// are the keys and names that differ.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Cloud {
    /// Amazon S3 and S3-compatible stores.
    #[default]
    S3,
    /// Google Cloud Storage.
    Gcs,
    /// Azure Blob Storage.
    Azure,
}

impl Cloud {
    fn class(self) -> &'static str {
        match self {
            Cloud::S3 => "io.confluent.connect.s3.S3SinkConnector",
            Cloud::Gcs => "io.confluent.connect.gcs.GcsSinkConnector",
            Cloud::Azure => "io.confluent.connect.azure.blob.AzureBlobStorageSinkConnector",
        }
    }

    /// The package of its format classes, with the trailing dot.
    fn formats(self) -> &'static str {
        match self {
            Cloud::S3 => "io.confluent.connect.s3.format.",
            Cloud::Gcs => "io.confluent.connect.gcs.format.",
            Cloud::Azure => "io.confluent.connect.azure.blob.format.",
        }
    }

    /// The key naming the bucket (the container, on Azure).
    fn bucket_key(self) -> &'static str {
        match self {
            Cloud::S3 => "s3.bucket.name",
            Cloud::Gcs => "gcs.bucket.name",
            Cloud::Azure => "azblob.container.name",
        }
    }

    /// The keys of the compression type and level.
    fn compression_keys(self) -> (&'static str, &'static str) {
        match self {
            Cloud::S3 => ("s3.compression.type", "s3.compression.level"),
            Cloud::Gcs => ("gcs.compression.type", "gcs.compression.level"),
            Cloud::Azure => ("az.compression.type", "az.compression.level"),
        }
    }

    /// The key of the multipart upload's part size (the block size, on Azure).
    fn part_size_key(self) -> &'static str {
        match self {
            Cloud::S3 => "s3.part.size",
            Cloud::Gcs => "gcs.part.size",
            Cloud::Azure => "azblob.block.size",
        }
    }

    /// The key of the retry count.
    fn retries_key(self) -> &'static str {
        match self {
            Cloud::S3 => "s3.part.retries",
            Cloud::Gcs => "gcs.part.retries",
            Cloud::Azure => "azblob.retry.retries",
        }
    }

    fn storage_class(self) -> &'static str {
        match self {
            Cloud::S3 => "io.confluent.connect.s3.storage.S3Storage",
            Cloud::Gcs => "io.confluent.connect.gcs.storage.GcsStorage",
            Cloud::Azure => "io.confluent.connect.azure.blob.storage.AzureBlobStorage",
        }
    }
}

/// The format classes, after their package ([`Cloud::formats`]).
const FORMATS: [&str; 4] = [
    "json.JsonFormat",
    "bytearray.ByteArrayFormat",
    "avro.AvroFormat",
    "parquet.ParquetFormat",
];

const PARTITIONERS: [&str; 5] = [
    "io.confluent.connect.storage.partitioner.DefaultPartitioner",
    "io.confluent.connect.storage.partitioner.FieldPartitioner",
    "io.confluent.connect.storage.partitioner.TimeBasedPartitioner",
    "io.confluent.connect.storage.partitioner.HourlyPartitioner",
    "io.confluent.connect.storage.partitioner.DailyPartitioner",
];

/// What to do with a record whose value is null (`behavior.on.null.values`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum OnNull {
    Fail,
    Ignore,
}

/// The connector's settings.
#[derive(Debug, Clone)]
struct Settings {
    cloud: Cloud,
    bucket: String,
    region: String,
    /// GCS: a service account key file (`gcs.credentials.path`) or its JSON
    /// (`gcs.credentials.json`); empty for the environment's.
    gcs_credentials_path: String,
    gcs_credentials_json: String,
    /// Azure: the storage account, its key or a SAS token.
    azure_account: String,
    azure_key: String,
    azure_sas: String,
    store_url: String,
    path_style: bool,
    access_key: String,
    secret_key: String,
    part_size: usize,
    retries: usize,
    retry_backoff: Duration,
    topics_dir: String,
    directory_delim: String,
    file_delim: String,
    flush_size: usize,
    rotate_interval_ms: i64,
    rotate_schedule_interval_ms: i64,
    /// The `timezone`'s offset, for scheduled rotation and time-based partitioning.
    zone_offset_ms: i64,
    zero_pad: usize,
    format: Format,
    partitioner: Partitioner,
    on_null: OnNull,
}

/// Reads the config; every problem the runtime's type checks cannot see is named.
fn parse(props: &Props, cloud: Cloud) -> Result<Settings, Vec<ConfigProblem>> {
    let mut r = Reader::new(props);
    let bucket = if cloud == Cloud::Azure {
        r.string("azblob.container.name", "default")
    } else {
        r.required(cloud.bucket_key())
    };
    let azure_account = if cloud == Cloud::Azure {
        r.required("azblob.account.name")
    } else {
        String::new()
    };
    let store_url = r.string("store.url", "").trim().to_string();
    if !store_url.is_empty()
        && !["http://", "https://", "file://"]
            .iter()
            .any(|s| store_url.starts_with(s))
    {
        r.problem(
            "store.url",
            "store.url must be an http:// or https:// endpoint, or file:///dir for a local directory",
        );
    }
    let format_index = format_class(&mut r, cloud);
    let (compression_type, compression_level) = cloud.compression_keys();
    let compression = r.choice(compression_type, 0, &["none", "gzip"]);
    let level = r.number(compression_level, -1, -1..=9);
    let gzip = (compression == 1).then_some(if level < 0 { 6 } else { level as u32 });
    let format = match format_index {
        0 => Format::Json {
            gzip,
            decimal_numeric: r.choice("json.decimal.format", 0, &["BASE64", "NUMERIC"]) == 1,
        },
        1 => Format::ByteArray {
            extension: r.string("format.bytearray.extension", ".bin"),
            separator: r
                .string("format.bytearray.separator", "\n")
                .replace("\\n", "\n")
                .replace("\\r", "\r")
                .into_bytes(),
            gzip,
        },
        2 => Format::Avro {
            codec: match r.choice(
                "avro.codec",
                0,
                &["null", "deflate", "snappy", "bzip2", "xz", "zstandard"],
            ) {
                0 => AvroCodec::Null,
                1 => AvroCodec::Deflate,
                2 => AvroCodec::Snappy,
                _ => {
                    r.problem(
                        "avro.codec",
                        "Spate writes Avro files with the null, deflate or snappy codec",
                    );
                    AvroCodec::Null
                }
            },
        },
        _ => {
            use ::parquet::basic::{Compression, GzipLevel, ZstdLevel};
            Format::Parquet {
                compression: match r.choice(
                    "parquet.codec",
                    1,
                    &["none", "snappy", "gzip", "zstd", "lz4", "lzo", "brotli"],
                ) {
                    0 => Compression::UNCOMPRESSED,
                    1 => Compression::SNAPPY,
                    2 => Compression::GZIP(GzipLevel::default()),
                    3 => Compression::ZSTD(ZstdLevel::default()),
                    _ => {
                        r.problem(
                            "parquet.codec",
                            "Spate writes Parquet files with none, snappy, gzip or zstd",
                        );
                        Compression::SNAPPY
                    }
                },
            }
        }
    };
    if compression == 1 && format.needs_schema() {
        r.problem(
            compression_type,
            format!("{compression_type}=gzip applies to the JSON and ByteArray formats; Avro and Parquet compress with avro.codec and parquet.codec"),
        );
    }
    let timezone = r.string("timezone", "");
    let zone_offset_ms = if timezone.trim().is_empty() {
        0
    } else {
        match partitioner::zone_offset(&timezone) {
            Ok(offset) => offset,
            Err(e) => {
                r.problem(
                    "timezone",
                    format!("Invalid value {timezone} for configuration timezone: {e}"),
                );
                0
            }
        }
    };
    let partitioner_index = r.choice("partitioner.class", 0, &PARTITIONERS);
    let partitioner = match partitioner_index {
        0 => Partitioner::Default,
        1 => {
            let names = r.list("partition.field.name");
            if names.is_empty() {
                r.problem(
                    "partition.field.name",
                    "FieldPartitioner needs partition.field.name: the value fields to partition by",
                );
            }
            Partitioner::Field(names)
        }
        index => {
            let (default_format, default_duration) = match index {
                3 => ("'year'=YYYY/'month'=MM/'day'=dd/'hour'=HH", 3_600_000),
                4 => ("'year'=YYYY/'month'=MM/'day'=dd", 86_400_000),
                _ => ("", -1),
            };
            let path_format = if index == 2 {
                r.string("path.format", "")
            } else {
                default_format.to_string()
            };
            let duration_ms = if index == 2 {
                r.number("partition.duration.ms", -1, -1..=i64::MAX)
            } else {
                default_duration
            };
            if index == 2 && path_format.trim().is_empty() {
                r.problem(
                    "path.format",
                    "TimeBasedPartitioner needs path.format, e.g. 'year'=YYYY/'month'=MM/'day'=dd/'hour'=HH",
                );
            }
            if index == 2 && duration_ms <= 0 {
                r.problem(
                    "partition.duration.ms",
                    "TimeBasedPartitioner needs partition.duration.ms greater than 0",
                );
            }
            if timezone.trim().is_empty() {
                r.problem(
                    "timezone",
                    "timezone cannot be empty when using a time-based partitioner",
                );
            }
            let format = match partitioner::path_format(&path_format) {
                Ok(format) => format,
                Err(e) => {
                    r.problem("path.format", format!("path.format does not parse: {e}"));
                    partitioner::path_format("").unwrap_or_else(|_| unreachable!())
                }
            };
            let extractor = match r.choice(
                "timestamp.extractor",
                0,
                &["Wallclock", "Record", "RecordField"],
            ) {
                0 => Extractor::Wallclock,
                1 => Extractor::Record,
                _ => Extractor::RecordField(
                    r.string("timestamp.field", "timestamp")
                        .split('.')
                        .map(str::to_string)
                        .collect(),
                ),
            };
            Partitioner::Time {
                format,
                duration_ms: duration_ms.max(1),
                offset_ms: zone_offset_ms,
                extractor,
            }
        }
    };
    let rotate_schedule_interval_ms = r.number("rotate.schedule.interval.ms", -1, -1..=i64::MAX);
    if rotate_schedule_interval_ms > 0 && timezone.trim().is_empty() {
        r.problem(
            "timezone",
            "timezone cannot be empty when using scheduled file rotation",
        );
    }
    let settings = Settings {
        cloud,
        gcs_credentials_path: r.string("gcs.credentials.path", "").trim().to_string(),
        gcs_credentials_json: r.string("gcs.credentials.json", "").trim().to_string(),
        azure_account,
        azure_key: r.string("azblob.account.key", ""),
        azure_sas: r.string("azblob.sas.token", ""),
        region: r.string("s3.region", "us-west-2"),
        path_style: r.boolean("s3.path.style.access.enabled", true),
        access_key: r.string("aws.access.key.id", ""),
        secret_key: r.string("aws.secret.access.key", ""),
        part_size: r.unsigned(
            cloud.part_size_key(),
            25 * 1024 * 1024,
            5 * 1024 * 1024..=(1 << 31) - 1,
        ) as usize,
        retries: r.unsigned(cloud.retries_key(), 3, 0..=1_000) as usize,
        retry_backoff: Duration::from_millis(r.unsigned("s3.retry.backoff.ms", 200, 0..=3_600_000)),
        topics_dir: r.string("topics.dir", "topics"),
        directory_delim: r.string("directory.delim", "/"),
        file_delim: r.string("file.delim", "+"),
        flush_size: r.unsigned("flush.size", 0, 1..=100_000_000) as usize,
        rotate_interval_ms: r.number("rotate.interval.ms", -1, -1..=i64::MAX),
        rotate_schedule_interval_ms,
        zone_offset_ms,
        zero_pad: r.unsigned("filename.offset.zero.pad.width", 10, 0..=19) as usize,
        on_null: match r.choice("behavior.on.null.values", 0, &["fail", "ignore"]) {
            0 => OnNull::Fail,
            _ => OnNull::Ignore,
        },
        bucket,
        store_url,
        format,
        partitioner,
    };
    r.finish(settings)
}

/// `format.class`'s index in [`FORMATS`]. The class may name any of the three sinks' packages
/// (configs move between them); a problem lists this sink's.
fn format_class(r: &mut Reader, cloud: Cloud) -> usize {
    // Missing: the runtime reports it (a required key).
    let class = r.string("format.class", "").trim().to_string();
    if class.is_empty() {
        return 0;
    }
    let found = [Cloud::S3, Cloud::Gcs, Cloud::Azure]
        .iter()
        .filter_map(|c| class.strip_prefix(c.formats()))
        .find_map(|name| FORMATS.iter().position(|f| *f == name));
    found.unwrap_or_else(|| {
        let names: Vec<String> = FORMATS
            .iter()
            .map(|f| format!("{}{f}", cloud.formats()))
            .collect();
        r.problem(
            "format.class",
            format!(
                "Invalid value {class} for configuration format.class: must be one of {}",
                names.join(", ")
            ),
        );
        0
    })
}

/// The S3 sink's own keys.
fn s3_keys() -> Vec<ConfigKey> {
    let opt = ConfigKey::optional;
    vec![
        ConfigKey::required("s3.bucket.name", "STRING", "The S3 Bucket."),
        opt(
            "s3.region",
            "STRING",
            "us-west-2",
            "The AWS region to be used the connector.",
        ),
        opt(
            "s3.path.style.access.enabled",
            "BOOLEAN",
            "true",
            "Specifies whether or not to enable path style access to the bucket used by the connector",
        ),
        opt(
            "aws.access.key.id",
            "STRING",
            "",
            "The AWS access key ID used to authenticate personal AWS credentials.",
        ),
        opt(
            "aws.secret.access.key",
            "PASSWORD",
            "",
            "The secret access key used to authenticate personal AWS credentials.",
        ),
        opt(
            "s3.retry.backoff.ms",
            "LONG",
            "200",
            "How long to wait in milliseconds before attempting the first retry of a failed S3 request.",
        ),
    ]
}

/// The GCS sink's own keys.
fn gcs_keys() -> Vec<ConfigKey> {
    let opt = ConfigKey::optional;
    vec![
        ConfigKey::required("gcs.bucket.name", "STRING", "The GCS Bucket."),
        opt(
            "gcs.credentials.path",
            "STRING",
            "",
            "Path to the GCP service account key file (JSON). Without it or gcs.credentials.json, the environment's application default credentials.",
        ),
        opt(
            "gcs.credentials.json",
            "PASSWORD",
            "",
            "The GCP service account key, as JSON.",
        ),
    ]
}

/// The Azure Blob Storage sink's own keys.
fn azure_keys() -> Vec<ConfigKey> {
    let opt = ConfigKey::optional;
    vec![
        ConfigKey::required(
            "azblob.account.name",
            "STRING",
            "The account name. Must include 3-24 alphanumeric characters.",
        ),
        opt(
            "azblob.account.key",
            "PASSWORD",
            "",
            "The Azure Storage account key.",
        ),
        opt(
            "azblob.sas.token",
            "PASSWORD",
            "",
            "A shared access signature token for the container, instead of the account key.",
        ),
        opt(
            "azblob.container.name",
            "STRING",
            "default",
            "The container name. Must be between 3-63 alphanumeric and '-' characters.",
        ),
    ]
}

impl Connector for StorageSink {
    fn class(&self) -> &'static str {
        self.0.class()
    }

    fn kind(&self) -> ConnectorKind {
        ConnectorKind::Sink
    }

    fn config_keys(&self) -> Vec<ConfigKey> {
        let opt = ConfigKey::optional;
        let cloud = self.0;
        let mut keys = match cloud {
            Cloud::S3 => s3_keys(),
            Cloud::Gcs => gcs_keys(),
            Cloud::Azure => azure_keys(),
        };
        keys.extend([
            ConfigKey::required(
                "flush.size",
                "INT",
                "Number of records written to store before invoking file commits.",
            ),
            ConfigKey::required(
                "format.class",
                "CLASS",
                "The format class to use when writing data to the store. Format classes implement the io.confluent.connect.storage.format.Format interface.",
            ),
            opt(
                "storage.class",
                "CLASS",
                cloud.storage_class(),
                "The underlying storage layer.",
            ),
            opt(
                "store.url",
                "STRING",
                "",
                "Store's connection URL, if applicable (an S3-compatible endpoint, the GCS base URL or the Azure blob endpoint, e.g. of an emulator; file:///dir writes to a local directory).",
            ),
            opt(
                cloud.part_size_key(),
                "INT",
                "26214400",
                "The part size of multipart uploads (the block size, on Azure).",
            ),
            opt(
                cloud.retries_key(),
                "INT",
                "3",
                "Maximum number of retry attempts for failed requests.",
            ),
            ConfigKey::optional(
                cloud.compression_keys().0,
                "STRING",
                "none",
                "Compression type for files written to the store. Applied when using JsonFormat or ByteArrayFormat. Available values: none, gzip.",
            ),
            ConfigKey::optional(
                cloud.compression_keys().1,
                "INT",
                "-1",
                "Compression level for files written to the store. Applied when using JsonFormat or ByteArrayFormat.",
            ),
        ]);
        keys.extend(vec![
            opt(
                "topics.dir",
                "STRING",
                "topics",
                "Top level directory to store the data ingested from Kafka.",
            ),
            opt(
                "directory.delim",
                "STRING",
                "/",
                "Directory delimiter pattern",
            ),
            opt("file.delim", "STRING", "+", "File delimiter pattern"),
            opt(
                "rotate.interval.ms",
                "LONG",
                "-1",
                "The time interval in milliseconds to invoke file commits. This configuration ensures that file commits are invoked every configured interval. The time is taken from the partitioner's timestamp extractor.",
            ),
            opt(
                "rotate.schedule.interval.ms",
                "LONG",
                "-1",
                "The time interval in milliseconds to periodically invoke file commits, on the wall clock.",
            ),
            opt(
                "filename.offset.zero.pad.width",
                "INT",
                "10",
                "Width to zero-pad offsets in store's filenames if offsets are too short in order to provide fixed-width filenames that can be ordered by simple lexicographic sorting.",
            ),
            opt(
                "behavior.on.null.values",
                "STRING",
                "fail",
                "How to handle records with a null value (i.e. Kafka tombstone records). Valid options are 'ignore' and 'fail'.",
            ),
            opt(
                "avro.codec",
                "STRING",
                "null",
                "The Avro compression codec to be used for output files. Available values: null, deflate, snappy.",
            ),
            opt(
                "parquet.codec",
                "STRING",
                "snappy",
                "The Parquet compression codec to be used for output files. Available values: none, snappy, gzip, zstd.",
            ),
            opt(
                "json.decimal.format",
                "STRING",
                "BASE64",
                "Controls which format json converter will serialize decimals in: BASE64 or NUMERIC.",
            ),
            opt(
                "format.bytearray.extension",
                "STRING",
                ".bin",
                "Output file extension for ByteArrayFormat.",
            ),
            opt(
                "format.bytearray.separator",
                "STRING",
                "\\n",
                "String inserted between records for ByteArrayFormat.",
            ),
            opt(
                "partitioner.class",
                "CLASS",
                "io.confluent.connect.storage.partitioner.DefaultPartitioner",
                "The partitioner to use when writing data to the store.",
            ),
            opt(
                "partition.field.name",
                "LIST",
                "",
                "The name of the partitioning field when FieldPartitioner is used.",
            ),
            opt(
                "path.format",
                "STRING",
                "",
                "This configuration is used to set the format of the data directories when partitioning with TimeBasedPartitioner, e.g. 'year'=YYYY/'month'=MM/'day'=dd/'hour'=HH.",
            ),
            opt(
                "partition.duration.ms",
                "LONG",
                "-1",
                "The duration of a partition milliseconds used by TimeBasedPartitioner.",
            ),
            opt(
                "locale",
                "STRING",
                "",
                "The locale to use when partitioning with TimeBasedPartitioner.",
            ),
            opt(
                "timezone",
                "STRING",
                "",
                "The timezone to use when partitioning with TimeBasedPartitioner (UTC or a fixed offset such as +02:00).",
            ),
            opt(
                "timestamp.extractor",
                "STRING",
                "Wallclock",
                "The extractor that gets the timestamp for records when partitioning with TimeBasedPartitioner: Wallclock, Record or RecordField.",
            ),
            opt(
                "timestamp.field",
                "STRING",
                "timestamp",
                "The record field to be used as timestamp by the timestamp extractor (RecordField).",
            ),
            opt(
                "schema.compatibility",
                "STRING",
                "NONE",
                "The schema compatibility rule: a file is cut when the value schema changes.",
            ),
        ]);
        keys
    }

    fn validate(&self, props: &Props) -> Vec<ConfigProblem> {
        parse(props, self.0).err().unwrap_or_default()
    }

    fn task_configs(&self, props: &Props, max_tasks: usize) -> Result<Vec<Props>, TaskError> {
        Ok(vec![props.clone(); max_tasks.max(1)])
    }

    fn sink_task(&self) -> Option<Box<dyn SinkTask>> {
        Some(Box::new(StorageTask {
            cloud: self.0,
            ..StorageTask::default()
        }))
    }
}

/// A file being filled for one encoded partition of a Kafka partition.
#[derive(Debug)]
struct OpenFile {
    key: String,
    schema: Option<std::sync::Arc<Schema>>,
    writer: Option<FileWriter>,
    /// The finished bytes, kept until written (a failed write is tried again with them).
    bytes: Option<Vec<u8>>,
    written: bool,
}

/// What the task holds for one Kafka partition (Confluent's `TopicPartitionWriter`).
#[derive(Debug, Default)]
struct PartitionFiles {
    files: BTreeMap<String, OpenFile>,
    /// Records in the open files.
    count: usize,
    /// The offset of the first record in the open files.
    first_offset: Option<i64>,
    /// The offset after the last record taken (written or skipped); records below it that
    /// come again (a put retried) are skipped.
    next_offset: Option<i64>,
    /// The extracted time of the first record in the open files.
    base_timestamp: Option<i64>,
    current_encoded: Option<String>,
    /// The open files must be written before anything else is taken.
    rotate_pending: bool,
    next_scheduled_rotation: Option<i64>,
}

/// An object storage sink's task.
#[derive(Default)]
struct StorageTask {
    cloud: Cloud,
    settings: Option<Settings>,
    store: Option<Arc<dyn ObjectStore>>,
    runtime: Option<Runtime>,
    partitions: HashMap<(String, i32), PartitionFiles>,
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// The next scheduled rotation after `now`: intervals counted from the start of the day in
/// the time zone (Confluent's `DateTimeUtils.getNextTimeAdjustedByDay`).
fn next_scheduled(now: i64, interval: i64, zone_offset_ms: i64) -> i64 {
    const DAY: i64 = 86_400_000;
    let local = now + zone_offset_ms;
    let start_of_day = local - local.rem_euclid(DAY) - zone_offset_ms;
    start_of_day + ((now - start_of_day) / interval + 1) * interval
}

/// The object store `settings` name.
fn open_store(settings: &Settings) -> Result<Arc<dyn ObjectStore>, String> {
    if let Some(dir) = settings.store_url.strip_prefix("file://") {
        std::fs::create_dir_all(dir).map_err(|e| format!("creating directory {dir}: {e}"))?;
        let store = object_store::local::LocalFileSystem::new_with_prefix(dir)
            .map_err(|e| format!("opening directory {dir}: {e}"))?;
        return Ok(Arc::new(store));
    }
    match settings.cloud {
        Cloud::S3 => {}
        Cloud::Gcs => return gcs_store(settings),
        Cloud::Azure => return azure_store(settings),
    }
    let store = s3_store(&S3Options {
        bucket: &settings.bucket,
        region: &settings.region,
        endpoint: &settings.store_url,
        path_style: settings.path_style,
        access_key: &settings.access_key,
        secret_key: &settings.secret_key,
        retries: settings.retries,
        retry_backoff: settings.retry_backoff,
    })?;
    Ok(store)
}

fn retry_config(retries: usize, backoff: Duration) -> object_store::RetryConfig {
    object_store::RetryConfig {
        backoff: object_store::BackoffConfig {
            init_backoff: backoff.max(Duration::from_millis(1)),
            max_backoff: Duration::from_secs(10),
            base: 2.0,
        },
        max_retries: retries,
        retry_timeout: Duration::from_secs(60),
    }
}

/// A GCS bucket: the service account from `gcs.credentials.*`, else the environment's
/// application default credentials; with `store.url` (an emulator) and no credentials,
/// requests go unsigned.
fn gcs_store(settings: &Settings) -> Result<Arc<dyn ObjectStore>, String> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut builder = object_store::gcp::GoogleCloudStorageBuilder::from_env()
        .with_bucket_name(&settings.bucket)
        .with_retry(retry_config(settings.retries, settings.retry_backoff));
    if !settings.store_url.is_empty() {
        builder = builder
            .with_base_url(settings.store_url.trim_end_matches('/'))
            .with_client_options(
                object_store::ClientOptions::new()
                    .with_allow_http(settings.store_url.starts_with("http://")),
            );
    }
    if !settings.gcs_credentials_path.is_empty() {
        builder = builder.with_service_account_path(&settings.gcs_credentials_path);
    } else if !settings.gcs_credentials_json.is_empty() {
        builder = builder.with_service_account_key(&settings.gcs_credentials_json);
    } else if !settings.store_url.is_empty() {
        // An emulator: no credentials to look for. object_store 0.14 still asks for a token
        // on uploads with `skip_signature`, so a fixed one stands in (emulators ignore it).
        builder = builder.with_credentials(Arc::new(object_store::StaticCredentialProvider::new(
            object_store::gcp::GcpCredential {
                bearer: "emulator".to_string(),
            },
        )));
    }
    let store = builder
        .build()
        .map_err(|e| format!("configuring GCS bucket {}: {e}", settings.bucket))?;
    Ok(Arc::new(store))
}

/// An Azure Blob Storage container: the account key or a SAS token, else the environment's
/// credentials; `store.url` is the blob endpoint (an emulator's is
/// `http://127.0.0.1:10000/devstoreaccount1`).
fn azure_store(settings: &Settings) -> Result<Arc<dyn ObjectStore>, String> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut builder = object_store::azure::MicrosoftAzureBuilder::from_env()
        .with_account(&settings.azure_account)
        .with_container_name(&settings.bucket)
        .with_retry(retry_config(settings.retries, settings.retry_backoff));
    if !settings.store_url.is_empty() {
        builder = builder
            .with_endpoint(settings.store_url.trim_end_matches('/').to_string())
            .with_allow_http(settings.store_url.starts_with("http://"));
    }
    if !settings.azure_key.is_empty() {
        builder = builder.with_access_key(&settings.azure_key);
    } else if !settings.azure_sas.is_empty() {
        builder = builder.with_config(
            object_store::azure::AzureConfigKey::SasKey,
            settings.azure_sas.trim_start_matches('?'),
        );
    }
    let store = builder.build().map_err(|e| {
        format!(
            "configuring Azure container {} of account {}: {e}",
            settings.bucket, settings.azure_account
        )
    })?;
    Ok(Arc::new(store))
}

/// Where an S3 bucket is and how to reach it.
pub(crate) struct S3Options<'a> {
    pub bucket: &'a str,
    pub region: &'a str,
    /// An S3-compatible endpoint, or empty for AWS.
    pub endpoint: &'a str,
    pub path_style: bool,
    /// Empty: the `AWS_*` environment, then the instance's credentials.
    pub access_key: &'a str,
    pub secret_key: &'a str,
    pub retries: usize,
    pub retry_backoff: Duration,
}

/// An S3 bucket as an object store (the S3 and Iceberg sinks').
pub(crate) fn s3_store(options: &S3Options<'_>) -> Result<Arc<dyn ObjectStore>, String> {
    // reqwest is built without a provider of its own (its default would build aws-lc-rs):
    // ring, as everywhere in Spate, is made the process's provider.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let retry = retry_config(options.retries, options.retry_backoff);
    let mut builder = object_store::aws::AmazonS3Builder::from_env()
        .with_bucket_name(options.bucket)
        .with_region(options.region)
        .with_virtual_hosted_style_request(!options.path_style)
        .with_retry(retry);
    if !options.endpoint.is_empty() {
        builder = builder
            .with_endpoint(options.endpoint)
            .with_allow_http(options.endpoint.starts_with("http://"));
    }
    if !options.access_key.is_empty() {
        builder = builder
            .with_access_key_id(options.access_key)
            .with_secret_access_key(options.secret_key);
    }
    let store = builder
        .build()
        .map_err(|e| format!("configuring S3 bucket {}: {e}", options.bucket))?;
    Ok(Arc::new(store))
}

/// Writes one object whole: a single PUT, or a multipart upload for large files.
async fn put_object(
    store: &dyn ObjectStore,
    key: &str,
    bytes: &[u8],
    part_size: usize,
) -> object_store::Result<()> {
    let path = ObjectPath::from(key);
    if bytes.len() <= part_size {
        store
            .put(&path, PutPayload::from(bytes.to_vec()))
            .await
            .map(drop)
    } else {
        let upload = store.put_multipart(&path).await?;
        let mut writer = WriteMultipart::new_with_chunk_size(upload, part_size);
        writer.write(bytes);
        match writer.finish().await {
            Ok(_) => Ok(()),
            Err(e) => Err(e),
        }
    }
}

impl StorageTask {
    fn running(&self) -> Result<(&Settings, &Arc<dyn ObjectStore>, &Runtime), TaskError> {
        match (&self.settings, &self.store, &self.runtime) {
            (Some(settings), Some(store), Some(runtime)) => Ok((settings, store, runtime)),
            _ => Err(TaskError::fatal("the task was not started")),
        }
    }

    /// Writes every open file of `partition`; then the offset after them may be committed.
    fn rotate(&mut self, partition: &(String, i32)) -> Result<(), TaskError> {
        let (Some(settings), Some(store), Some(runtime)) =
            (&self.settings, &self.store, &self.runtime)
        else {
            return Err(TaskError::fatal("the task was not started"));
        };
        let Some(state) = self.partitions.get_mut(partition) else {
            return Ok(());
        };
        state.rotate_pending = true;
        for file in state.files.values_mut() {
            if let Some(writer) = file.writer.take() {
                let bytes = writer.finish().map_err(|e| {
                    TaskError::fatal(format!(
                        "finishing {} (topic {} partition {}): {e}",
                        file.key, partition.0, partition.1
                    ))
                })?;
                file.bytes = Some(bytes);
            }
        }
        for file in state.files.values_mut().filter(|f| !f.written) {
            let bytes = file.bytes.as_deref().unwrap_or_default();
            runtime
                .block_on(put_object(
                    store.as_ref(),
                    &file.key,
                    bytes,
                    settings.part_size,
                ))
                .map_err(|e| {
                    TaskError::redeliver(format!(
                        "writing {} to {}: {e}",
                        file.key,
                        if settings.store_url.starts_with("file://") {
                            settings.store_url.clone()
                        } else {
                            format!(
                                "{} {}",
                                if settings.cloud == Cloud::Azure {
                                    "container"
                                } else {
                                    "bucket"
                                },
                                settings.bucket
                            )
                        }
                    ))
                })?;
            file.written = true;
            tracing::debug!(key = %file.key, bytes = bytes.len(), "the S3 sink wrote a file");
        }
        state.files.clear();
        state.count = 0;
        state.first_offset = None;
        state.base_timestamp = None;
        state.current_encoded = None;
        state.rotate_pending = false;
        Ok(())
    }

    /// Whether `state`'s files rotate on time before a record of `encoded` at `timestamp`
    /// (Confluent's `rotateOnTime`).
    fn rotates_on_time(
        settings: &Settings,
        state: &PartitionFiles,
        encoded: Option<&str>,
        timestamp: Option<i64>,
        now: i64,
    ) -> bool {
        if state.count == 0 {
            return false;
        }
        let periodic = settings.rotate_interval_ms > 0
            && settings.partitioner.is_time_based()
            && match (timestamp, state.base_timestamp) {
                (Some(ts), Some(base)) => {
                    ts - base >= settings.rotate_interval_ms
                        || encoded.is_some_and(|e| state.current_encoded.as_deref() != Some(e))
                }
                _ => false,
            };
        let scheduled = settings.rotate_schedule_interval_ms > 0
            && state.next_scheduled_rotation.is_some_and(|at| now >= at);
        periodic || scheduled
    }

    fn take(&mut self, record: &ConnectRecord, now: i64) -> Result<(), TaskError> {
        let partition = (record.topic.clone(), record.partition.unwrap_or(0));
        let offset = record.kafka_offset.unwrap_or(0);
        let at = || {
            format!(
                "topic {} partition {} offset {offset}",
                partition.0, partition.1
            )
        };
        let settings = self.running()?.0.clone();
        let state = self.partitions.entry(partition.clone()).or_default();
        if state.next_offset.is_some_and(|next| offset < next) {
            return Ok(());
        }
        if state.next_scheduled_rotation.is_none() && settings.rotate_schedule_interval_ms > 0 {
            state.next_scheduled_rotation = Some(next_scheduled(
                now,
                settings.rotate_schedule_interval_ms,
                settings.zone_offset_ms,
            ));
        }
        if state.rotate_pending {
            self.rotate(&partition)?;
        }
        if record.value.is_null() {
            return match settings.on_null {
                OnNull::Ignore => {
                    self.state(&partition).next_offset = Some(offset + 1);
                    Ok(())
                }
                OnNull::Fail => Err(TaskError::fatal(format!(
                    "the S3 sink was given a null value (a tombstone) at {}; set \
                     behavior.on.null.values=ignore to skip them",
                    at()
                ))),
            };
        }
        let timestamp = settings
            .partitioner
            .timestamp(record, now)
            .map_err(|e| TaskError::fatal(format!("{e} at {}", at())))?;
        let encoded = settings
            .partitioner
            .encode(record, timestamp, &settings.directory_delim)
            .map_err(|e| TaskError::fatal(format!("{e} at {}", at())))?;
        let state = self.state(&partition);
        let schema_changed = state
            .files
            .get(&encoded)
            .is_some_and(|f| !same_schema(f.schema.as_ref(), record.value_schema.as_ref()));
        if schema_changed || Self::rotates_on_time(&settings, state, Some(&encoded), timestamp, now)
        {
            if settings.rotate_schedule_interval_ms > 0
                && state.next_scheduled_rotation.is_some_and(|at| now >= at)
            {
                state.next_scheduled_rotation = Some(next_scheduled(
                    now,
                    settings.rotate_schedule_interval_ms,
                    settings.zone_offset_ms,
                ));
            }
            self.rotate(&partition)?;
        }
        let state = self.state(&partition);
        if !state.files.contains_key(&encoded) {
            let key = format!(
                "{dir}{d}{topic}{d}{encoded}{d}{topic}{f}{p}{f}{offset:0pad$}{ext}",
                dir = settings.topics_dir,
                d = settings.directory_delim,
                topic = partition.0,
                f = settings.file_delim,
                p = partition.1,
                pad = settings.zero_pad,
                ext = settings.format.extension(),
            );
            let writer = FileWriter::new(&settings.format, record.value_schema.as_deref(), &key)
                .map_err(|e| TaskError::fatal(format!("{e} (at {})", at())))?;
            state.files.insert(
                encoded.clone(),
                OpenFile {
                    key,
                    schema: record.value_schema.clone(),
                    writer: Some(writer),
                    bytes: None,
                    written: false,
                },
            );
        }
        let file = state
            .files
            .get_mut(&encoded)
            .and_then(|f| f.writer.as_mut())
            .ok_or_else(|| TaskError::fatal("a file being written has no writer"))?;
        file.write(&settings.format, record)
            .map_err(|e| TaskError::fatal(format!("{e} at {}", at())))?;
        state.count += 1;
        state.first_offset.get_or_insert(offset);
        state.next_offset = Some(offset + 1);
        if state.base_timestamp.is_none() {
            state.base_timestamp = timestamp;
        }
        state.current_encoded = Some(encoded);
        if state.count >= settings.flush_size {
            self.rotate(&partition)?;
        }
        Ok(())
    }

    fn state(&mut self, partition: &(String, i32)) -> &mut PartitionFiles {
        self.partitions.entry(partition.clone()).or_default()
    }
}

impl SinkTask for StorageTask {
    fn start(&mut self, props: &Props) -> Result<(), TaskError> {
        let settings = parse(props, self.cloud).map_err(|problems| {
            TaskError::fatal(format!(
                "invalid config: {}",
                crate::config::describe(&problems)
            ))
        })?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| TaskError::fatal(format!("starting the task's runtime: {e}")))?;
        let store = open_store(&settings).map_err(TaskError::fatal)?;
        self.settings = Some(settings);
        self.store = Some(store);
        self.runtime = Some(runtime);
        Ok(())
    }

    fn put(&mut self, records: &[ConnectRecord]) -> Result<(), TaskError> {
        let now = now_ms();
        for record in records {
            self.take(record, now)?;
        }
        // Files due on the wall clock rotate without new records too.
        let settings = self.running()?.0.clone();
        let due: Vec<(String, i32)> = self
            .partitions
            .iter()
            .filter(|(_, state)| {
                state.rotate_pending || Self::rotates_on_time(&settings, state, None, None, now)
            })
            .map(|(partition, _)| partition.clone())
            .collect();
        for partition in due {
            let state = self.state(&partition);
            if settings.rotate_schedule_interval_ms > 0 {
                state.next_scheduled_rotation = Some(next_scheduled(
                    now,
                    settings.rotate_schedule_interval_ms,
                    settings.zone_offset_ms,
                ));
            }
            self.rotate(&partition)?;
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<(), TaskError> {
        // Files are written when they rotate, never half full: pre_commit says how far that is.
        Ok(())
    }

    fn pre_commit(&mut self, offsets: &SinkOffsets) -> Result<SinkOffsets, TaskError> {
        Ok(offsets
            .iter()
            .map(|(partition, next)| {
                let ready = match self.partitions.get(partition) {
                    Some(state) => state.first_offset.unwrap_or(*next),
                    None => *next,
                };
                (partition.clone(), ready)
            })
            .collect())
    }

    fn close(&mut self, partitions: &[(String, i32)]) {
        for partition in partitions {
            self.partitions.remove(partition);
        }
    }

    fn stop(&mut self) {
        self.partitions.clear();
        self.store = None;
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_timeout(Duration::from_secs(1));
        }
    }
}

#[cfg(test)]
mod tests;
