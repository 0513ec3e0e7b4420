//! `spate produce`: one record per stdin line, batched, to a topic.
//!
//! A thread reads stdin (lines as bytes, so any encoding passes through) and hands chunks of
//! lines to the async side over a bounded channel; the producer batches them per partition
//! and sends a partition's batch when it is full or when the linger time has passed since
//! the first unsent line. Keyed lines go to the partition Kafka's Java client would pick.
//!
//! A line is the value (`--key-separator` splits off a key), or with `--input-format json` a
//! JSON object, see [`LineFormat::json_record`]. With `--value-schema-subject`/`--value-schema-id` (and
//! the `--key-` twins) values are JSON encoded by a registry schema into Confluent's wire
//! format (`wire.rs`). A line that cannot become a record is reported with its number and
//! skipped. At the end the command reports what it wrote to stderr (records, and per
//! partition the count and last offset), so stdout stays clean; it exits non-zero if any
//! record failed. A topic that does not exist fails at once when the cluster does not create
//! topics on first use.

use std::io::BufRead;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};
use base64::Engine;
use bytes::Bytes;
use prost_reflect::MessageDescriptor;
use serde_json::Value;
use spate_client::{Acks, Compression, ProduceFailure, Producer, ProducerConfig, ProducerRecord};
use tokio::sync::mpsc;

use super::client_args::{ClientArgs, RegistryArgs, parse_name_value, runtime};
use super::wire::{Codec, SchemaChoice, Schemas};

/// Lines per chunk handed from the stdin thread at most.
const LINES_PER_CHUNK: usize = 1024;
/// Chunks queued between the stdin thread and the producer at most.
const CHUNKS_QUEUED: usize = 16;
/// How often to look for answers to outstanding requests while stdin is idle.
const ANSWER_CHECK_INTERVAL: Duration = Duration::from_millis(50);

/// Arguments of `spate produce`.
#[derive(Debug, clap::Args)]
pub struct ProduceArgs {
    #[command(flatten)]
    client: ClientArgs,
    #[command(flatten)]
    registry: RegistryArgs,
    /// Topic to produce to (created if the broker auto-creates topics).
    topic: String,
    /// What a line is: `text` (the value, or KEY SEP VALUE with --key-separator) or `json`
    /// (an object with key, value, headers, partition and timestamp; see the README).
    #[arg(long, value_enum, default_value = "text")]
    input_format: InputFormat,
    /// Split each line into key and value at the first SEP (lines without SEP fail).
    #[arg(long, value_name = "SEP", conflicts_with = "input_format")]
    key_separator: Option<String>,
    /// Encode values (JSON) with the latest schema of this registry subject, e.g.
    /// orders-value.
    #[arg(long, value_name = "SUBJECT", conflicts_with = "value_schema_id")]
    value_schema_subject: Option<String>,
    /// Encode values (JSON) with the registry schema of this id.
    #[arg(long, value_name = "ID")]
    value_schema_id: Option<i32>,
    /// The Protobuf message values are written as (full name) [default: the schema's first].
    #[arg(long, value_name = "NAME")]
    value_schema_message: Option<String>,
    /// Encode keys (JSON) with the latest schema of this registry subject.
    #[arg(long, value_name = "SUBJECT", conflicts_with = "key_schema_id")]
    key_schema_subject: Option<String>,
    /// Encode keys (JSON) with the registry schema of this id.
    #[arg(long, value_name = "ID")]
    key_schema_id: Option<i32>,
    /// The Protobuf message keys are written as (full name) [default: the schema's first].
    #[arg(long, value_name = "NAME")]
    key_schema_message: Option<String>,
    /// A header added to every record, NAME=VALUE (repeatable).
    #[arg(long = "header", short = 'H', value_name = "NAME=VALUE", value_parser = parse_name_value)]
    headers: Vec<(String, String)>,
    /// Send every record to this partition [default: by key hash, or sticky round-robin].
    #[arg(long)]
    partition: Option<i32>,
    /// Acknowledgements to wait for: all in-sync replicas, the leader, or none.
    #[arg(long, value_enum, default_value = "all")]
    acks: AcksArg,
    /// Compression codec of record batches.
    #[arg(long, value_enum, default_value = "none")]
    compression: CompressionArg,
    /// A value that stands for a null value (a tombstone), e.g. NULL.
    #[arg(long, value_name = "MARKER")]
    null_value: Option<String>,
    /// How long a line may wait for more lines to share its batch, in ms.
    #[arg(long, default_value_t = 100)]
    linger_ms: u64,
    /// Uncompressed bytes per partition batch at most.
    #[arg(long, default_value_t = 256 * 1024)]
    batch_size_bytes: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum InputFormat {
    /// One value per line (KEY SEP VALUE with --key-separator).
    Text,
    /// One JSON object per line.
    Json,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum AcksArg {
    /// All in-sync replicas (-1).
    #[value(name = "all", alias = "-1")]
    All,
    /// The leader only.
    #[value(name = "1")]
    Leader,
    /// No acknowledgement: errors on the broker go unnoticed.
    #[value(name = "0")]
    None,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum CompressionArg {
    None,
    Gzip,
    Snappy,
    Lz4,
    Zstd,
}

impl CompressionArg {
    fn codec(self) -> Compression {
        match self {
            CompressionArg::None => Compression::None,
            CompressionArg::Gzip => Compression::Gzip,
            CompressionArg::Snappy => Compression::Snappy,
            CompressionArg::Lz4 => Compression::Lz4,
            CompressionArg::Zstd => Compression::Zstd,
        }
    }
}

/// A schema to encode keys or values with.
struct Encoder {
    codec: Arc<Codec>,
    message: Option<MessageDescriptor>,
}

impl Encoder {
    fn new(codec: Arc<Codec>, message: Option<&str>) -> anyhow::Result<Encoder> {
        let message = codec.protobuf_message(message)?;
        Ok(Encoder { codec, message })
    }

    fn encode(&self, json: &Value) -> Result<Bytes, String> {
        self.codec
            .encode(json, self.message.as_ref())
            .map(Bytes::from)
            .map_err(|e| format!("{e:#}"))
    }
}

/// Which part of a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Part {
    Key,
    Value,
}

impl Part {
    fn name(self) -> &'static str {
        match self {
            Part::Key => "key",
            Part::Value => "value",
        }
    }
}

/// How a line becomes a record.
struct LineFormat {
    input: InputFormat,
    key_separator: Option<Vec<u8>>,
    null_value: Option<Vec<u8>>,
    headers: Vec<(String, Option<Bytes>)>,
    key_schema: Option<Encoder>,
    value_schema: Option<Encoder>,
    /// The registry, for records that name their own schema ids (JSON input).
    schemas: Option<Schemas>,
}

/// A record and the partition the line asks for, if any.
struct LineRecord {
    record: ProducerRecord,
    partition: Option<i32>,
}

fn encoding_of<'a>(
    object: &'a serde_json::Map<String, Value>,
    field: &str,
) -> Result<Option<&'a str>, String> {
    match object.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => match s.as_str() {
            "utf8" | "base64" | "json" => Ok(Some(s.as_str())),
            other => Err(format!("{field} {other:?} is not utf8, base64 or json")),
        },
        Some(other) => Err(format!("{field} must be a string, got {other}")),
    }
}

fn text_bytes(text: &str, encoding: Option<&str>, what: &str) -> Result<Bytes, String> {
    match encoding {
        Some("base64") => base64::engine::general_purpose::STANDARD
            .decode(text)
            .map(Bytes::from)
            .map_err(|e| format!("{what} is not valid base64: {e}")),
        _ => Ok(Bytes::copy_from_slice(text.as_bytes())),
    }
}

impl LineFormat {
    /// The record for `line`, or why it has none.
    fn record(&mut self, line: Vec<u8>, timestamp_ms: i64) -> Result<LineRecord, String> {
        match self.input {
            InputFormat::Text => self.text_record(line, timestamp_ms),
            InputFormat::Json => self.json_record(&line, timestamp_ms),
        }
    }

    fn text_record(&mut self, line: Vec<u8>, timestamp_ms: i64) -> Result<LineRecord, String> {
        let (key, value) = match &self.key_separator {
            None => (None, line),
            Some(sep) => match find(&line, sep) {
                Some(at) => {
                    let value = line[at + sep.len()..].to_vec();
                    let mut key = line;
                    key.truncate(at);
                    (Some(key), value)
                }
                None => {
                    return Err(format!(
                        "no key separator {:?} in the line",
                        String::from_utf8_lossy(sep)
                    ));
                }
            },
        };
        let value = match &self.null_value {
            Some(marker) if *marker == value => None,
            _ => Some(value),
        };
        let key = key.map(|k| self.encode_text(Part::Key, k)).transpose()?;
        let value = value
            .map(|v| self.encode_text(Part::Value, v))
            .transpose()?;
        Ok(LineRecord {
            record: ProducerRecord {
                key,
                value,
                headers: self.headers.clone(),
                timestamp_ms,
            },
            partition: None,
        })
    }

    /// Text of a key or value: raw bytes, or JSON encoded by the schema when there is one.
    fn encode_text(&self, part: Part, text: Vec<u8>) -> Result<Bytes, String> {
        let encoder = match part {
            Part::Key => &self.key_schema,
            Part::Value => &self.value_schema,
        };
        match encoder {
            None => Ok(Bytes::from(text)),
            Some(encoder) => {
                let json: Value = serde_json::from_slice(&text)
                    .map_err(|e| format!("the {} is not JSON: {e}", part.name()))?;
                encoder
                    .encode(&json)
                    .map_err(|e| format!("the {} {e}", part.name()))
            }
        }
    }

    /// A line of `--input-format json`, as `spate consume --format json` writes them (so a
    /// topic can be copied with a pipe), with the field names kcat and rpk users know as
    /// aliases:
    ///
    /// - `key`, `value` (alias `payload`): a string, `null`, or any JSON value. A string is the
    ///   bytes of its UTF-8 text, or of its base64 with `key_encoding`/`value_encoding` `"base64"`;
    ///   another JSON value is its JSON text. With a schema (flag, or `key_schema_id`/
    ///   `value_schema_id` in the line) the JSON value is encoded by the schema.
    /// - `headers`: a list of `[name, value]` pairs, a list of `{"key": name, "value": value}`
    ///   objects (rpk), or an object of names to values; values are strings (base64 with
    ///   `headers_encoding` `"base64"`) or `null`.
    /// - `partition`: the partition to write to [default: --partition, else by key].
    /// - `timestamp` (alias `ts`): the create time in ms since the epoch [default: now].
    ///
    /// Other fields (`topic`, `offset`, `timestamp_type`, ...) are ignored.
    fn json_record(&mut self, line: &[u8], timestamp_ms: i64) -> Result<LineRecord, String> {
        let parsed: Value =
            serde_json::from_slice(line).map_err(|e| format!("not a JSON object: {e}"))?;
        let Value::Object(object) = parsed else {
            return Err("not a JSON object".to_string());
        };
        let key = self.json_part(&object, Part::Key)?;
        let value = self.json_part(&object, Part::Value)?;
        let headers_encoding = encoding_of(&object, "headers_encoding")?;
        let mut headers = self.headers.clone();
        let header_value = |name: &str, value: &Value| -> Result<Option<Bytes>, String> {
            match value {
                Value::Null => Ok(None),
                Value::String(s) => {
                    text_bytes(s, headers_encoding, &format!("header {name:?}")).map(Some)
                }
                other => Err(format!(
                    "header {name:?} must be a string or null, got {other}"
                )),
            }
        };
        match object.get("headers") {
            None | Some(Value::Null) => {}
            Some(Value::Array(items)) => {
                for item in items {
                    let (name, value) = match item {
                        Value::Array(pair) if pair.len() == 2 => (&pair[0], &pair[1]),
                        Value::Object(o) if o.contains_key("key") => {
                            (&o["key"], o.get("value").unwrap_or(&Value::Null))
                        }
                        other => {
                            return Err(format!(
                                "a header must be [name, value] or {{\"key\": .., \"value\": ..}}, got {other}"
                            ));
                        }
                    };
                    let Value::String(name) = name else {
                        return Err(format!("a header name must be a string, got {name}"));
                    };
                    headers.push((name.clone(), header_value(name, value)?));
                }
            }
            Some(Value::Object(map)) => {
                for (name, value) in map {
                    headers.push((name.clone(), header_value(name, value)?));
                }
            }
            Some(other) => return Err(format!("headers must be a list or an object, got {other}")),
        }
        let partition = match object.get("partition") {
            None | Some(Value::Null) => None,
            Some(p) => Some(
                p.as_i64()
                    .and_then(|p| i32::try_from(p).ok())
                    .filter(|p| *p >= 0)
                    .ok_or_else(|| format!("partition must be a number from 0, got {p}"))?,
            ),
        };
        let timestamp_ms = match object.get("timestamp").or_else(|| object.get("ts")) {
            None | Some(Value::Null) => timestamp_ms,
            Some(t) => t
                .as_i64()
                .ok_or_else(|| format!("timestamp must be ms since the epoch, got {t}"))?,
        };
        Ok(LineRecord {
            record: ProducerRecord {
                key,
                value,
                headers,
                timestamp_ms,
            },
            partition,
        })
    }

    /// The key or value of a JSON line.
    fn json_part(
        &mut self,
        object: &serde_json::Map<String, Value>,
        part: Part,
    ) -> Result<Option<Bytes>, String> {
        let name = part.name();
        let field = match part {
            Part::Key => object.get("key"),
            Part::Value => object.get("value").or_else(|| object.get("payload")),
        };
        let Some(field) = field.filter(|f| !f.is_null()) else {
            return Ok(None);
        };
        let encoding = encoding_of(object, &format!("{name}_encoding"))?;
        let schema_id = match object.get(&format!("{name}_schema_id")) {
            None | Some(Value::Null) => None,
            Some(id) => Some(
                id.as_i64()
                    .and_then(|id| i32::try_from(id).ok())
                    .ok_or_else(|| format!("{name}_schema_id must be a schema id, got {id}"))?,
            ),
        };
        let flag_encoder = match part {
            Part::Key => self.key_schema.as_ref(),
            Part::Value => self.value_schema.as_ref(),
        };
        if let Some(encoder) = flag_encoder {
            return encoder
                .encode(field)
                .map(Some)
                .map_err(|e| format!("the {name} {e}"));
        }
        if let Some(id) = schema_id {
            let schemas = self
                .schemas
                .as_mut()
                .ok_or_else(|| format!("{name}_schema_id needs a schema registry"))?;
            let codec = schemas.by_id(id).map_err(|e| format!("{e:#}"))?;
            let encoder = Encoder::new(codec, None).map_err(|e| format!("{e:#}"))?;
            return encoder
                .encode(field)
                .map(Some)
                .map_err(|e| format!("the {name} {e}"));
        }
        match field {
            Value::String(text) if encoding != Some("json") => {
                text_bytes(text, encoding, name).map(Some)
            }
            other => serde_json::to_vec(other)
                .map(|b| Some(Bytes::from(b)))
                .map_err(|e| format!("cannot write the {name} as JSON: {e}")),
        }
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() {
        return None;
    }
    haystack.windows(needle.len()).position(|w| w == needle)
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// Reads stdin on a plain thread: chunks of lines without their `\n` (or `\r\n`). A chunk is
/// handed over when full or when no more input is buffered, so interactive lines go at once.
fn spawn_stdin_reader(tx: mpsc::Sender<std::io::Result<Vec<Vec<u8>>>>) {
    std::thread::spawn(move || {
        let stdin = std::io::stdin();
        let mut reader = std::io::BufReader::with_capacity(256 * 1024, stdin.lock());
        let mut chunk = Vec::new();
        loop {
            let mut line = Vec::new();
            match reader.read_until(b'\n', &mut line) {
                Ok(0) => break,
                Ok(_) => {
                    if line.last() == Some(&b'\n') {
                        line.pop();
                        if line.last() == Some(&b'\r') {
                            line.pop();
                        }
                    }
                    chunk.push(line);
                    let hand_over = chunk.len() >= LINES_PER_CHUNK || reader.buffer().is_empty();
                    if hand_over && tx.blocking_send(Ok(std::mem::take(&mut chunk))).is_err() {
                        return;
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    let _ = tx.blocking_send(Err(e));
                    return;
                }
            }
        }
        if !chunk.is_empty() {
            let _ = tx.blocking_send(Ok(chunk));
        }
    });
}

fn report(failures: Vec<ProduceFailure>, topic: &str) {
    for f in failures {
        eprintln!(
            "error: {} record(s) to {topic}-{} failed: {}",
            f.record_count, f.partition, f.error
        );
    }
}

fn schema_choice(subject: &Option<String>, id: Option<i32>) -> Option<SchemaChoice> {
    match (subject, id) {
        (Some(subject), _) => Some(SchemaChoice::Subject(subject.clone())),
        (None, Some(id)) => Some(SchemaChoice::Id(id)),
        (None, None) => None,
    }
}

/// Runs `spate produce`.
pub fn run(args: ProduceArgs) -> anyhow::Result<()> {
    if args.key_separator.as_deref() == Some("") {
        bail!("--key-separator must not be empty");
    }
    if args.batch_size_bytes == 0 {
        bail!("--batch-size-bytes must be positive");
    }
    let key_choice = schema_choice(&args.key_schema_subject, args.key_schema_id);
    let value_choice = schema_choice(&args.value_schema_subject, args.value_schema_id);
    if key_choice.is_none() && args.key_schema_message.is_some() {
        bail!("--key-schema-message needs --key-schema-subject or --key-schema-id");
    }
    if value_choice.is_none() && args.value_schema_message.is_some() {
        bail!("--value-schema-message needs --value-schema-subject or --value-schema-id");
    }
    if key_choice.is_some()
        && args.key_separator.is_none()
        && args.input_format == InputFormat::Text
    {
        bail!("a key schema needs keys: pass --key-separator, or --input-format json");
    }
    // The registry is needed for schema flags, and may be for JSON lines naming schema ids.
    let mut schemas =
        if key_choice.is_some() || value_choice.is_some() || args.input_format == InputFormat::Json
        {
            Some(Schemas::new(args.registry.client()?))
        } else {
            None
        };
    let mut encoder = |choice: &Option<SchemaChoice>, message: &Option<String>| {
        choice
            .as_ref()
            .map(|choice| {
                let schemas = schemas.as_mut().context("no registry")?;
                Encoder::new(schemas.choose(choice)?, message.as_deref())
            })
            .transpose()
    };
    let key_schema = encoder(&key_choice, &args.key_schema_message)?;
    let value_schema = encoder(&value_choice, &args.value_schema_message)?;
    let format = LineFormat {
        input: args.input_format,
        key_separator: args.key_separator.clone().map(String::into_bytes),
        null_value: args.null_value.clone().map(String::into_bytes),
        headers: args
            .headers
            .iter()
            .map(|(name, value)| (name.clone(), Some(Bytes::from(value.clone()))))
            .collect(),
        key_schema,
        value_schema,
        schemas,
    };
    runtime()?.block_on(produce(args, format))
}

/// What the command wrote, for stderr: records, and per partition the count and last offset.
fn summary(topic: &str, producer: &Producer) -> String {
    let acked = producer.acked_partitions();
    let total: u64 = acked.values().map(|a| a.records).sum();
    let mut out = format!(
        "produced {total} record{} to {topic}",
        if total == 1 { "" } else { "s" }
    );
    let parts: Vec<String> = acked
        .iter()
        .map(|(partition, a)| match a.last_offset {
            Some(last) => format!("partition {partition}: {} (last offset {last})", a.records),
            None => format!("partition {partition}: {}", a.records),
        })
        .collect();
    if !parts.is_empty() {
        out.push_str(&format!(" ({})", parts.join(", ")));
    }
    out
}

async fn produce(args: ProduceArgs, mut format: LineFormat) -> anyhow::Result<()> {
    let client = args.client.connect().await?;
    let config = ProducerConfig {
        acks: match args.acks {
            AcksArg::All => Acks::All,
            AcksArg::Leader => Acks::Leader,
            AcksArg::None => Acks::None,
        },
        compression: args.compression.codec(),
        batch_size_bytes: args.batch_size_bytes,
        timeout: Duration::from_millis(args.client.request_timeout_ms.max(1)),
        ..ProducerConfig::default()
    };
    let mut producer = Producer::new(client, &args.topic, config)
        .await
        .with_context(|| format!("cannot produce to topic {:?}", args.topic))?;
    if let Some(partition) = args.partition {
        if !(0..producer.partition_count()).contains(&partition) {
            bail!(
                "topic {} has no partition {partition} (it has {})",
                args.topic,
                producer.partition_count()
            );
        }
    }

    let (tx, mut rx) = mpsc::channel(CHUNKS_QUEUED);
    spawn_stdin_reader(tx);
    let linger = Duration::from_millis(args.linger_ms);
    let mut linger_deadline: Option<tokio::time::Instant> = None;
    let mut line_number: u64 = 0;
    let mut bad_lines: u64 = 0;
    let mut interrupted = false;
    loop {
        tokio::select! {
            chunk = rx.recv() => {
                let lines = match chunk {
                    None => break,
                    Some(Err(e)) => {
                        producer.flush().await;
                        report(producer.take_failures(), &args.topic);
                        return Err(e).context("cannot read stdin");
                    }
                    Some(Ok(lines)) => lines,
                };
                let timestamp_ms = now_ms();
                for line in lines {
                    line_number += 1;
                    let outcome = format.record(line, timestamp_ms).and_then(|r| {
                        let partition = r.partition.or(args.partition);
                        match partition {
                            Some(p) if p >= producer.partition_count() => Err(format!(
                                "topic {} has no partition {p} (it has {})",
                                args.topic,
                                producer.partition_count()
                            )),
                            _ => Ok((r.record, partition)),
                        }
                    });
                    match outcome {
                        Ok((record, partition)) => producer.send(record, partition).await?,
                        Err(reason) => {
                            bad_lines += 1;
                            eprintln!("error: line {line_number} skipped: {reason}");
                        }
                    }
                }
                if producer.has_buffered() && linger_deadline.is_none() {
                    linger_deadline = Some(tokio::time::Instant::now() + linger);
                }
            }
            () = sleep_until(linger_deadline) => {
                linger_deadline = None;
                producer.send_buffered().await;
            }
            () = tokio::time::sleep(ANSWER_CHECK_INTERVAL), if producer.has_in_flight() => {
                producer.complete_ready().await;
            }
            Ok(()) = tokio::signal::ctrl_c() => {
                interrupted = true;
                break;
            }
        }
        report(producer.take_failures(), &args.topic);
    }
    producer.flush().await;
    report(producer.take_failures(), &args.topic);
    eprintln!("{}", summary(&args.topic, &producer));

    let failed = producer.failed_records() + bad_lines;
    if failed > 0 {
        bail!(
            "{failed} of {} records were not produced to {}",
            producer.acked_records() + failed,
            args.topic
        );
    }
    if interrupted {
        bail!("interrupted; lines read so far were produced");
    }
    Ok(())
}

/// Sleeps until `deadline`, or forever without one.
async fn sleep_until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn format(sep: Option<&str>, null: Option<&str>) -> LineFormat {
        LineFormat {
            input: InputFormat::Text,
            key_separator: sep.map(|s| s.as_bytes().to_vec()),
            null_value: null.map(|s| s.as_bytes().to_vec()),
            headers: vec![("h".to_string(), Some(Bytes::from_static(b"1")))],
            key_schema: None,
            value_schema: None,
            schemas: None,
        }
    }

    fn json(line: &str) -> Result<LineRecord, String> {
        let mut f = format(None, None);
        f.input = InputFormat::Json;
        f.headers.clear();
        f.record(line.as_bytes().to_vec(), 5)
    }

    #[test]
    fn json_lines_take_consume_output_and_kcat_and_rpk_names() {
        let r = json(
            r#"{"topic":"t","partition":2,"offset":9,"timestamp":1700,"key":"k","key_encoding":"utf8","value":"/wA=","value_encoding":"base64","headers":[["a","x"],["n",null]],"headers_encoding":"utf8"}"#,
        )
        .expect("consume output");
        assert_eq!(r.partition, Some(2));
        assert_eq!(r.record.timestamp_ms, 1700);
        assert_eq!(r.record.key.as_deref(), Some(&b"k"[..]));
        assert_eq!(r.record.value.as_deref(), Some(&[0xff, 0x00][..]));
        assert_eq!(
            r.record.headers,
            vec![
                ("a".to_string(), Some(Bytes::from_static(b"x"))),
                ("n".to_string(), None)
            ]
        );
        let r =
            json(r#"{"payload":"p","ts":7,"headers":[{"key":"h","value":"v"}]}"#).expect("kcat");
        assert_eq!(r.record.value.as_deref(), Some(&b"p"[..]));
        assert_eq!(r.record.timestamp_ms, 7);
        assert_eq!(r.record.headers.len(), 1);
        let r = json(r#"{"value":{"id":1},"headers":{"h":"v"}}"#).expect("object value");
        assert_eq!(r.record.value.as_deref(), Some(&br#"{"id":1}"#[..]));
        assert_eq!(r.record.timestamp_ms, 5, "now when the line has none");
        assert_eq!(r.record.key, None);
        let r = json(r#"{"key":null,"value":null}"#).expect("tombstone");
        assert_eq!(r.record.value, None);
    }

    #[test]
    fn bad_json_lines_say_why() {
        for (line, needle) in [
            ("not json", "not a JSON object"),
            ("[1]", "not a JSON object"),
            (r#"{"partition":-1}"#, "partition"),
            (r#"{"timestamp":"now"}"#, "timestamp"),
            (r#"{"value":"@@","value_encoding":"base64"}"#, "base64"),
            (
                r#"{"value":"x","value_encoding":"hex"}"#,
                "utf8, base64 or json",
            ),
            (r#"{"headers":[["a"]]}"#, "header"),
            (r#"{"value":{},"value_schema_id":3}"#, "registry"),
        ] {
            let error = json(line)
                .err()
                .unwrap_or_else(|| panic!("{line} accepted"));
            assert!(error.contains(needle), "{line}: {error}");
        }
    }

    #[test]
    fn lines_split_at_the_first_separator() {
        let record = format(Some("::"), None)
            .record(b"k::v::w".to_vec(), 5)
            .expect("record")
            .record;
        assert_eq!(record.key.as_deref(), Some(&b"k"[..]));
        assert_eq!(record.value.as_deref(), Some(&b"v::w"[..]));
        assert_eq!(record.headers.len(), 1);
        assert_eq!(record.timestamp_ms, 5);
        let record = format(Some("\t"), None)
            .record(b"\tv".to_vec(), 5)
            .expect("record")
            .record;
        assert_eq!(
            record.key.as_deref(),
            Some(&b""[..]),
            "an empty key is not a null key"
        );
        assert!(
            format(Some(":"), None)
                .record(b"no separator".to_vec(), 5)
                .is_err()
        );
    }

    #[test]
    fn without_a_separator_the_line_is_the_value() {
        let record = format(None, None)
            .record(b"a:b".to_vec(), 5)
            .expect("record")
            .record;
        assert_eq!(record.key, None);
        assert_eq!(record.value.as_deref(), Some(&b"a:b"[..]));
    }

    #[test]
    fn the_null_marker_makes_a_tombstone() {
        let mut f = format(Some(":"), Some("NULL"));
        let record = f.record(b"k:NULL".to_vec(), 5).expect("record").record;
        assert_eq!(record.value, None);
        let record = f.record(b"k:NULLx".to_vec(), 5).expect("record").record;
        assert_eq!(record.value.as_deref(), Some(&b"NULLx"[..]));
    }
}
