//! `spate consume`: print records of a topic, from given positions or as a member of a
//! consumer group.
//!
//! Without `--group`, start positions come from ListOffsets (earliest, latest, or by
//! timestamp) or `--offset`, and the consumer long-polls every partition leader and prints
//! records per partition in offset order. `--exit-at-end` stops once every partition has
//! reached the end offset it had when the command started (records after that are not
//! printed); `--count` stops after N records.
//!
//! With `--group G` the command joins the classic consumer group G (`spate_client::member`),
//! reads the partitions the group assigns it, starting at the group's committed offsets (or,
//! where it has none, at the latest offset, the earliest with `--from-beginning`), commits what
//! it printed every 5 seconds, when the group rebalances and when it stops (Ctrl-C, SIGTERM or
//! `--count`), then leaves the group. What it was assigned is reported on stderr.
//!
//! Output formats: `text` is the value per line (`key<TAB>value` with `--print-key`; a null
//! prints as `null`, bytes pass through unchanged); `json` is one object per line, see
//! [`write_json`]; anything else is a kcat `-f` format string, see [`parse_template`].
//!
//! Keys and values in Confluent's wire format (magic byte 0, schema id) are decoded through
//! the schema registry and printed as JSON (`wire.rs`), unless `--no-decode`. A record whose
//! schema cannot be had is printed as it is, with one warning per schema id; after a few
//! such ids decoding stops (binary data that happens to start with a zero byte).

use std::collections::BTreeMap;
use std::io::Write;
use std::time::Duration;

use anyhow::{Context, bail};
use base64::Engine;
use bytes::Bytes;
use serde_json::Value;
use spate_client::{
    Client, ConsumedRecord, Consumer, ConsumerConfig, ConsumerEvent, Membership, MembershipConfig,
    OffsetSpec, TimestampType, TopicMetadata,
};
use tokio::signal::unix::{Signal, SignalKind, signal};

use super::client_args::{ClientArgs, RegistryArgs, is_broken_pipe, runtime};
use super::wire::{Schemas, unframe};

/// How often a group member commits what it printed.
const AUTO_COMMIT_INTERVAL: Duration = Duration::from_secs(5);
/// Schema ids that fail to resolve before decoding is switched off.
const MAX_FAILED_SCHEMA_IDS: usize = 3;

/// Arguments of `spate consume`.
#[derive(Debug, clap::Args)]
pub struct ConsumeArgs {
    #[command(flatten)]
    client: ClientArgs,
    #[command(flatten)]
    registry: RegistryArgs,
    /// Topic to read.
    topic: String,
    /// Start at the earliest offset [default: the latest, printing only new records]; with
    /// --group, where the group has no committed offset.
    #[arg(long, conflicts_with_all = ["offset", "from_timestamp"])]
    from_beginning: bool,
    /// Start at this offset in every partition read (clamped to each partition's log).
    #[arg(long, value_name = "N", conflicts_with_all = ["from_timestamp", "group"])]
    offset: Option<i64>,
    /// Start at the first record with a timestamp at or after MS (milliseconds since epoch).
    #[arg(long, value_name = "MS", conflicts_with = "group")]
    from_timestamp: Option<i64>,
    /// Read only this partition [default: all partitions].
    #[arg(long, conflicts_with = "group")]
    partition: Option<i32>,
    /// Stop after printing N records.
    #[arg(long, value_name = "N")]
    count: Option<u64>,
    /// Stop once every partition reaches the end offset it had when the command started.
    #[arg(long, conflicts_with = "group")]
    exit_at_end: bool,
    /// Consume as a member of this consumer group: share the partitions with the group's
    /// other members and commit offsets.
    #[arg(long, short = 'g', value_name = "GROUP")]
    group: Option<String>,
    /// Output: `text`, `json` (one object per line), or a kcat format string such as
    /// '%t [%p] at %o: %k=%s\n' (tokens %t topic, %p partition, %o offset, %k key, %K key
    /// length, %s value, %S value length, %R value length as 4 big-endian bytes, %T timestamp
    /// ms, %h headers n=v,..., %% a percent sign; escapes \n \r \t \xHH).
    #[arg(long, short = 'f', default_value = "text", value_parser = parse_format)]
    format: OutputFormat,
    /// In text format, print the key and a tab before the value.
    #[arg(long)]
    print_key: bool,
    /// Print schema'd records (Confluent's wire format) as they are, without the registry.
    #[arg(long)]
    no_decode: bool,
    /// How long each fetch waits for new data, in ms.
    #[arg(long, default_value_t = 500)]
    max_wait_ms: u64,
}

/// How records are printed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OutputFormat {
    /// The value per line (`key<TAB>value` with --print-key).
    Text,
    /// One JSON object per line.
    Json,
    /// A kcat `-f` format string.
    Template(Vec<Token>),
}

/// One piece of a format string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Token {
    /// Bytes printed as they are.
    Literal(Vec<u8>),
    /// `%t`.
    Topic,
    /// `%p`.
    Partition,
    /// `%o`.
    Offset,
    /// `%k`.
    Key,
    /// `%K`: key length, -1 for null.
    KeyLength,
    /// `%s`.
    Value,
    /// `%S`: value length, -1 for null.
    ValueLength,
    /// `%R`: value length as a 4-byte big-endian signed integer.
    ValueLengthBinary,
    /// `%T`: timestamp in ms.
    Timestamp,
    /// `%h`: headers as `name=value` separated by commas (`NULL` for a null value).
    Headers,
}

fn parse_format(text: &str) -> Result<OutputFormat, String> {
    match text {
        "text" => Ok(OutputFormat::Text),
        "json" => Ok(OutputFormat::Json),
        template if template.contains(['%', '\\']) => {
            parse_template(template).map(OutputFormat::Template)
        }
        other => Err(format!(
            "unknown format {other:?}: use text, json or a format string with %-tokens (e.g. '%k=%s\\n')"
        )),
    }
}

/// Parses a format string as kcat's `-f` does: `%t %p %o %k %K %s %S %R %T %h %%` and the
/// escapes `\n \r \t \\ \xHH` (an octal `\0NN` or decimal `\NNN` byte too). Nothing is added
/// after a record: end the string with `\n` for one record per line.
pub fn parse_template(text: &str) -> Result<Vec<Token>, String> {
    let mut tokens = Vec::new();
    let mut literal = Vec::new();
    let bytes = text.as_bytes();
    let mut i = 0;
    let flush = |literal: &mut Vec<u8>, tokens: &mut Vec<Token>| {
        if !literal.is_empty() {
            tokens.push(Token::Literal(std::mem::take(literal)));
        }
    };
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let Some(&c) = bytes.get(i + 1) else {
                    return Err("the format string ends with a lone %".to_string());
                };
                let token = match c {
                    b't' => Token::Topic,
                    b'p' => Token::Partition,
                    b'o' => Token::Offset,
                    b'k' => Token::Key,
                    b'K' => Token::KeyLength,
                    b's' => Token::Value,
                    b'S' => Token::ValueLength,
                    b'R' => Token::ValueLengthBinary,
                    b'T' => Token::Timestamp,
                    b'h' => Token::Headers,
                    b'%' => {
                        literal.push(b'%');
                        i += 2;
                        continue;
                    }
                    other => {
                        return Err(format!(
                            "unsupported format token %{}: use %t %p %o %k %K %s %S %R %T %h or %%",
                            char::from(other)
                        ));
                    }
                };
                flush(&mut literal, &mut tokens);
                tokens.push(token);
                i += 2;
            }
            b'\\' if i + 1 < bytes.len() => {
                let c = bytes[i + 1];
                i += 2;
                match c {
                    b'n' => literal.push(b'\n'),
                    b'r' => literal.push(b'\r'),
                    b't' => literal.push(b'\t'),
                    b'x' => {
                        let digits: String = text[i..]
                            .chars()
                            .take_while(char::is_ascii_hexdigit)
                            .take(2)
                            .collect();
                        if digits.is_empty() {
                            return Err("\\x needs hex digits, e.g. \\x1f".to_string());
                        }
                        i += digits.len();
                        literal.push(u8::from_str_radix(&digits, 16).map_err(|e| e.to_string())?);
                    }
                    b'0'..=b'9' => {
                        let start = i - 1;
                        let digits: String = text[start..]
                            .chars()
                            .take_while(char::is_ascii_digit)
                            .take(3)
                            .collect();
                        i = start + digits.len();
                        let radix = if digits.starts_with('0') { 8 } else { 10 };
                        let value = u32::from_str_radix(&digits, radix)
                            .map_err(|_| format!("\\{digits} is not a byte"))?;
                        literal.push(value as u8);
                    }
                    other => literal.push(other),
                }
            }
            other => {
                literal.push(other);
                i += 1;
            }
        }
    }
    flush(&mut literal, &mut tokens);
    Ok(tokens)
}

/// A key or value as printed: raw bytes, or JSON decoded with a registry schema.
#[derive(Debug, Clone, PartialEq)]
enum Field<'a> {
    Raw(Option<&'a Bytes>),
    Decoded { schema_id: i32, json: Value },
}

impl Field<'_> {
    /// The bytes `text` and templates print: raw, or the compact JSON text.
    fn printed(&self) -> Option<std::borrow::Cow<'_, [u8]>> {
        match self {
            Field::Raw(bytes) => bytes.map(|b| std::borrow::Cow::Borrowed(&b[..])),
            Field::Decoded { json, .. } => {
                Some(std::borrow::Cow::Owned(json.to_string().into_bytes()))
            }
        }
    }
}

/// Decodes schema'd keys and values through the registry.
struct Decoder {
    schemas: Option<Schemas>,
    failed_ids: usize,
}

impl Decoder {
    fn field<'a>(&mut self, bytes: Option<&'a Bytes>) -> Field<'a> {
        let (Some(schemas), Some(raw)) = (self.schemas.as_mut(), bytes) else {
            return Field::Raw(bytes);
        };
        let Some((id, payload)) = unframe(raw) else {
            return Field::Raw(bytes);
        };
        let Some(codec) = schemas.for_decoding(id) else {
            self.failed_ids += 1;
            if self.failed_ids >= MAX_FAILED_SCHEMA_IDS {
                eprintln!(
                    "warning: {} schema ids could not be read; printing every record as it is \
                     (--no-decode does so from the start)",
                    self.failed_ids
                );
                self.schemas = None;
            }
            return Field::Raw(bytes);
        };
        match codec.decode(payload) {
            Ok(json) => Field::Decoded {
                schema_id: id,
                json,
            },
            Err(error) => {
                eprintln!("warning: a record is printed as it is: {error:#}");
                Field::Raw(bytes)
            }
        }
    }
}

/// Writes one line of `--format json`: an object with `topic`, `partition`, `offset`,
/// `timestamp` (ms since the epoch), `timestamp_type` (`"CreateTime"` or `"LogAppendTime"`),
/// `key`, `key_encoding`, `value`, `value_encoding`, `headers` and `headers_encoding`.
///
/// Keys, values and header values are UTF-8 strings when they are valid UTF-8, else base64
/// (standard alphabet, padded); the `*_encoding` fields say which (`"utf8"` or `"base64"`;
/// one binary header value makes all header values of the record base64). A key or value
/// decoded with a registry schema is the decoded JSON document, with encoding `"json"` and
/// its `key_schema_id`/`value_schema_id`. A null key or value is `null`. Headers are a list
/// of `[name, value]` pairs in record order.
///
/// Written by hand rather than through serde: this is the hot loop of `consume`, and the
/// format is small and fixed.
fn write_json(
    out: &mut Vec<u8>,
    topic: &str,
    partition: i32,
    record: &ConsumedRecord,
    key: &Field<'_>,
    value: &Field<'_>,
) {
    let headers_utf8 = record
        .headers
        .iter()
        .filter_map(|(_, v)| v.as_ref())
        .all(|v| std::str::from_utf8(v).is_ok());
    out.extend_from_slice(b"{\"topic\":");
    write_json_string(out, topic);
    out.extend_from_slice(
        format!(
            ",\"partition\":{partition},\"offset\":{},\"timestamp\":{},\"timestamp_type\":\"{}\"",
            record.offset,
            record.timestamp_ms,
            match record.timestamp_type {
                TimestampType::Creation => "CreateTime",
                TimestampType::LogAppend => "LogAppendTime",
            }
        )
        .as_bytes(),
    );
    for (name, field) in [("key", key), ("value", value)] {
        out.extend_from_slice(format!(",\"{name}\":").as_bytes());
        match field {
            Field::Raw(bytes) => {
                let encoding = write_json_bytes(out, *bytes, true);
                out.extend_from_slice(format!(",\"{name}_encoding\":\"{encoding}\"").as_bytes());
            }
            Field::Decoded { schema_id, json } => {
                // A Value always serialises.
                let _ = serde_json::to_writer(&mut *out, json);
                out.extend_from_slice(
                    format!(",\"{name}_encoding\":\"json\",\"{name}_schema_id\":{schema_id}")
                        .as_bytes(),
                );
            }
        }
    }
    out.extend_from_slice(b",\"headers\":[");
    for (i, (name, value)) in record.headers.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.push(b'[');
        write_json_string(out, name);
        out.push(b',');
        write_json_bytes(out, value.as_ref(), headers_utf8);
        out.push(b']');
    }
    out.extend_from_slice(b"],\"headers_encoding\":\"");
    out.extend_from_slice(if headers_utf8 { UTF8 } else { BASE64 }.as_bytes());
    out.extend_from_slice(b"\"}\n");
}

/// Writes one record as a format string says.
fn write_template(
    out: &mut Vec<u8>,
    tokens: &[Token],
    topic: &str,
    partition: i32,
    record: &ConsumedRecord,
    key: &Field<'_>,
    value: &Field<'_>,
) {
    let length = |bytes: Option<&Bytes>| bytes.map_or(-1, |b| b.len() as i64);
    let raw = |field: &Field<'_>, fallback: Option<&Bytes>| match field {
        Field::Raw(bytes) => length(*bytes),
        Field::Decoded { .. } => length(fallback),
    };
    for token in tokens {
        match token {
            Token::Literal(bytes) => out.extend_from_slice(bytes),
            Token::Topic => out.extend_from_slice(topic.as_bytes()),
            Token::Partition => out.extend_from_slice(partition.to_string().as_bytes()),
            Token::Offset => out.extend_from_slice(record.offset.to_string().as_bytes()),
            Token::Timestamp => out.extend_from_slice(record.timestamp_ms.to_string().as_bytes()),
            Token::Key => {
                if let Some(bytes) = key.printed() {
                    out.extend_from_slice(&bytes);
                }
            }
            Token::Value => {
                if let Some(bytes) = value.printed() {
                    out.extend_from_slice(&bytes);
                }
            }
            Token::KeyLength => {
                out.extend_from_slice(raw(key, record.key.as_ref()).to_string().as_bytes())
            }
            Token::ValueLength => {
                out.extend_from_slice(raw(value, record.value.as_ref()).to_string().as_bytes())
            }
            Token::ValueLengthBinary => {
                let n = raw(value, record.value.as_ref()) as i32;
                out.extend_from_slice(&n.to_be_bytes());
            }
            Token::Headers => {
                for (i, (name, value)) in record.headers.iter().enumerate() {
                    if i > 0 {
                        out.push(b',');
                    }
                    out.extend_from_slice(name.as_bytes());
                    out.push(b'=');
                    match value {
                        Some(v) => out.extend_from_slice(v),
                        None => out.extend_from_slice(b"NULL"),
                    }
                }
            }
        }
    }
}

const UTF8: &str = "utf8";
const BASE64: &str = "base64";

/// Writes `bytes` as a JSON string (UTF-8 text if allowed and valid, else base64) or `null`,
/// and returns the encoding used.
fn write_json_bytes(out: &mut Vec<u8>, bytes: Option<&Bytes>, utf8_allowed: bool) -> &'static str {
    let Some(bytes) = bytes else {
        out.extend_from_slice(b"null");
        return UTF8;
    };
    match std::str::from_utf8(bytes) {
        Ok(text) if utf8_allowed => {
            write_json_string(out, text);
            UTF8
        }
        _ => {
            out.push(b'"');
            out.extend_from_slice(
                base64::engine::general_purpose::STANDARD
                    .encode(bytes)
                    .as_bytes(),
            );
            out.push(b'"');
            BASE64
        }
    }
}

/// Writes `text` as a JSON string literal (RFC 8259 escaping).
fn write_json_string(out: &mut Vec<u8>, text: &str) {
    out.push(b'"');
    let bytes = text.as_bytes();
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let escape: &[u8] = match b {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            0x00..=0x1f => b"",
            _ => continue,
        };
        out.extend_from_slice(&bytes[start..i]);
        if escape.is_empty() {
            out.extend_from_slice(format!("\\u{b:04x}").as_bytes());
        } else {
            out.extend_from_slice(escape);
        }
        start = i + 1;
    }
    out.extend_from_slice(&bytes[start..]);
    out.push(b'"');
}

/// Runs `spate consume`.
pub fn run(args: ConsumeArgs) -> anyhow::Result<()> {
    if args.offset.is_some_and(|o| o < 0) {
        bail!("--offset must be 0 or more; use --from-beginning for the earliest offset");
    }
    if args.count == Some(0) {
        return Ok(());
    }
    if args.group.as_deref().is_some_and(|g| g.trim().is_empty()) {
        bail!("--group needs a group id");
    }
    let schemas = if args.no_decode {
        None
    } else {
        Some(Schemas::new(args.registry.client()?))
    };
    let decoder = Decoder {
        schemas,
        failed_ids: 0,
    };
    runtime()?.block_on(consume(args, decoder))
}

/// Writes records to stdout, buffered; a closed pipe ends the command quietly.
struct Output {
    out: std::io::BufWriter<std::io::Stdout>,
    format: OutputFormat,
    print_key: bool,
    closed: bool,
    /// Reused buffer for one record.
    line: Vec<u8>,
    decoder: Decoder,
}

impl Output {
    fn write(
        &mut self,
        topic: &str,
        partition: i32,
        record: &ConsumedRecord,
    ) -> anyhow::Result<()> {
        let key = self.decoder.field(record.key.as_ref());
        let value = self.decoder.field(record.value.as_ref());
        self.line.clear();
        match &self.format {
            OutputFormat::Json => {
                write_json(&mut self.line, topic, partition, record, &key, &value)
            }
            OutputFormat::Template(tokens) => write_template(
                &mut self.line,
                tokens,
                topic,
                partition,
                record,
                &key,
                &value,
            ),
            OutputFormat::Text => {
                if self.print_key {
                    match key.printed() {
                        Some(bytes) => self.line.extend_from_slice(&bytes),
                        None => self.line.extend_from_slice(b"null"),
                    }
                    self.line.push(b'\t');
                }
                match value.printed() {
                    Some(bytes) => self.line.extend_from_slice(&bytes),
                    None => self.line.extend_from_slice(b"null"),
                }
                self.line.push(b'\n');
            }
        }
        let result = self.out.write_all(&self.line);
        self.check(result)
    }

    fn flush(&mut self) -> anyhow::Result<()> {
        let result = self.out.flush();
        self.check(result)
    }

    fn check(&mut self, result: std::io::Result<()>) -> anyhow::Result<()> {
        match result {
            Err(e) if is_broken_pipe(&e) => {
                self.closed = true;
                Ok(())
            }
            other => other.context("cannot write to stdout"),
        }
    }
}

/// SIGINT (Ctrl-C) and SIGTERM, registered once so none is missed between polls.
struct Signals {
    interrupt: Signal,
    terminate: Signal,
}

impl Signals {
    fn new() -> anyhow::Result<Signals> {
        Ok(Signals {
            interrupt: signal(SignalKind::interrupt()).context("cannot listen for SIGINT")?,
            terminate: signal(SignalKind::terminate()).context("cannot listen for SIGTERM")?,
        })
    }

    /// Waits for either signal.
    async fn recv(&mut self) {
        tokio::select! {
            _ = self.interrupt.recv() => {}
            _ = self.terminate.recv() => {}
        }
    }
}

fn report_events(events: &[ConsumerEvent]) {
    for event in events {
        match event {
            ConsumerEvent::OffsetReset {
                partition,
                from,
                to,
            } => eprintln!(
                "warning: offset {from} of partition {partition} is out of range; continuing at {to}"
            ),
        }
    }
}

async fn start_offsets(
    client: &Client,
    topic: &TopicMetadata,
    partitions: &[i32],
    args: &ConsumeArgs,
) -> anyhow::Result<(BTreeMap<i32, i64>, BTreeMap<i32, i64>)> {
    let lookup = |spec: OffsetSpec| {
        let queries: Vec<(i32, OffsetSpec)> = partitions.iter().map(|&p| (p, spec)).collect();
        async move { client.list_offsets(topic, &queries).await }
    };
    let latest = lookup(OffsetSpec::Latest).await?;
    let end: BTreeMap<i32, i64> = latest
        .iter()
        .map(|(&p, o)| (p, o.offset.unwrap_or(0)))
        .collect();
    let positions = if args.from_beginning {
        lookup(OffsetSpec::Earliest)
            .await?
            .iter()
            .map(|(&p, o)| (p, o.offset.unwrap_or(0)))
            .collect()
    } else if let Some(ms) = args.from_timestamp {
        // No record at or after the timestamp: start at the end.
        lookup(OffsetSpec::Timestamp(ms))
            .await?
            .iter()
            .map(|(&p, o)| {
                (
                    p,
                    o.offset
                        .unwrap_or_else(|| end.get(&p).copied().unwrap_or(0)),
                )
            })
            .collect()
    } else if let Some(offset) = args.offset {
        let earliest = lookup(OffsetSpec::Earliest).await?;
        let mut positions = BTreeMap::new();
        for &p in partitions {
            let first = earliest.get(&p).and_then(|o| o.offset).unwrap_or(0);
            let last = end.get(&p).copied().unwrap_or(0);
            let start = offset.clamp(first, last.max(first));
            if start != offset {
                eprintln!(
                    "warning: offset {offset} is outside partition {p} ({first}..{last}); starting at {start}"
                );
            }
            positions.insert(p, start);
        }
        positions
    } else {
        end.clone()
    };
    Ok((positions, end))
}

async fn consume(args: ConsumeArgs, decoder: Decoder) -> anyhow::Result<()> {
    let client = args.client.connect().await?;
    let topic = client.topic_metadata(&args.topic, false).await?;
    let mut output = Output {
        out: std::io::BufWriter::with_capacity(64 * 1024, std::io::stdout()),
        format: args.format.clone(),
        print_key: args.print_key,
        closed: false,
        line: Vec::with_capacity(1024),
        decoder,
    };
    let config = ConsumerConfig {
        max_wait: Duration::from_millis(args.max_wait_ms),
        ..ConsumerConfig::default()
    };
    let mut signals = Signals::new()?;
    if let Some(group) = &args.group {
        let result = consume_group(
            &args,
            group,
            client,
            topic,
            config,
            &mut output,
            &mut signals,
        )
        .await;
        output.flush()?;
        return result;
    }
    let partitions: Vec<i32> = match args.partition {
        Some(p) if topic.partition(p).is_none() => bail!(
            "topic {} has no partition {p} (it has {})",
            args.topic,
            topic.partitions.len()
        ),
        Some(p) => vec![p],
        None => topic.partitions.iter().map(|p| p.partition).collect(),
    };
    let (positions, mut end) = start_offsets(&client, &topic, &partitions, &args).await?;

    let mut consumer = Consumer::new(client, topic, positions, config);
    let mut printed: u64 = 0;
    let limit = args.count.unwrap_or(u64::MAX);
    if args.exit_at_end {
        drop_finished(&mut consumer, &end);
    }
    loop {
        if args.exit_at_end && consumer.positions().is_empty() {
            break;
        }
        let poll = tokio::select! {
            poll = consumer.poll() => poll?,
            () = signals.recv() => break,
        };
        report_events(&poll.events);
        'partitions: for part in &poll.partitions {
            for record in &part.records {
                if args.exit_at_end
                    && record.offset >= end.get(&part.partition).copied().unwrap_or(i64::MAX)
                {
                    break;
                }
                output.write(&args.topic, part.partition, record)?;
                printed += 1;
                if printed >= limit || output.closed {
                    break 'partitions;
                }
            }
        }
        output.flush()?;
        if printed >= limit || output.closed {
            break;
        }
        if args.exit_at_end {
            // A log truncated below its starting end (an unclean leader change) ends lower.
            for part in &poll.partitions {
                if let Some(e) = end.get_mut(&part.partition) {
                    if part.high_watermark >= 0 && part.high_watermark < *e {
                        *e = part.high_watermark;
                    }
                }
            }
            drop_finished(&mut consumer, &end);
        }
    }
    output.flush()?;
    Ok(())
}

/// Where a group member starts in `partitions`: the group's committed offsets, else the
/// latest offset (the earliest with --from-beginning).
async fn group_positions(
    client: &Client,
    group: &str,
    topic: &TopicMetadata,
    partitions: &[i32],
    from_beginning: bool,
) -> anyhow::Result<(BTreeMap<i32, i64>, BTreeMap<i32, i64>)> {
    let committed: BTreeMap<i32, i64> = client
        .committed_offsets(group, Some(&[(topic.name.clone(), partitions.to_vec())]))
        .await?
        .into_iter()
        .filter(|c| c.topic == topic.name)
        .map(|c| (c.partition, c.offset))
        .collect();
    let missing: Vec<(i32, OffsetSpec)> = partitions
        .iter()
        .filter(|p| !committed.contains_key(p))
        .map(|&p| {
            let spec = if from_beginning {
                OffsetSpec::Earliest
            } else {
                OffsetSpec::Latest
            };
            (p, spec)
        })
        .collect();
    let mut positions = committed.clone();
    if !missing.is_empty() {
        for (p, listed) in client.list_offsets(topic, &missing).await? {
            positions.insert(p, listed.offset.unwrap_or(0));
        }
    }
    Ok((positions, committed))
}

/// Commits the positions that moved since the last commit; a failure (the group moved on
/// to a new generation) is a warning: those records may be read again.
async fn commit_moved(
    member: &mut Membership,
    topic: &str,
    consumed: &BTreeMap<i32, i64>,
    committed: &mut BTreeMap<i32, i64>,
) {
    let moved: Vec<(String, i32, i64)> = consumed
        .iter()
        .filter(|(p, offset)| committed.get(p) != Some(offset))
        .map(|(&p, &offset)| (topic.to_string(), p, offset))
        .collect();
    if moved.is_empty() {
        return;
    }
    match member.commit(&moved).await {
        Ok(()) => {
            for (_, p, offset) in moved {
                committed.insert(p, offset);
            }
        }
        Err(error) => eprintln!(
            "warning: could not commit offsets ({error}); records after the last commit may be \
             read again by the group"
        ),
    }
}

fn partition_list(partitions: &[i32]) -> String {
    if partitions.is_empty() {
        return "none".to_string();
    }
    partitions
        .iter()
        .map(i32::to_string)
        .collect::<Vec<_>>()
        .join(",")
}

/// `consume --group`: join, read the assigned partitions, commit, rejoin on rebalances.
async fn consume_group(
    args: &ConsumeArgs,
    group: &str,
    client: Client,
    topic: TopicMetadata,
    config: ConsumerConfig,
    output: &mut Output,
    signals: &mut Signals,
) -> anyhow::Result<()> {
    let member_config = MembershipConfig {
        client_description: "spate consume".to_string(),
        ..MembershipConfig::default()
    };
    let heartbeat_interval = member_config.heartbeat_interval;
    let mut member = Membership::new(
        client.clone(),
        group,
        vec![args.topic.clone()],
        member_config,
    )?;
    let limit = args.count.unwrap_or(u64::MAX);
    let mut printed: u64 = 0;
    let mut stop = false;
    while !stop {
        let generation = tokio::select! {
            generation = member.join() => generation.with_context(|| format!("cannot join group {group:?}"))?,
            () = signals.recv() => break,
        };
        let partitions: Vec<i32> = generation
            .assignment
            .iter()
            .filter(|(t, _)| *t == args.topic)
            .flat_map(|(_, ps)| ps.iter().copied())
            .collect();
        eprintln!(
            "group {group}: generation {} assigned partitions {} of {}",
            generation.generation_id,
            partition_list(&partitions),
            args.topic
        );
        let (positions, mut committed) =
            group_positions(&client, group, &topic, &partitions, args.from_beginning).await?;
        // The next offset of each partition the group should resume from: what was printed.
        let mut consumed = positions.clone();
        let mut consumer = Consumer::new(client.clone(), topic.clone(), positions, config.clone());
        let mut last_commit = tokio::time::Instant::now();
        loop {
            if consumer.positions().is_empty() {
                // Nothing assigned: wait for the next heartbeat.
                tokio::select! {
                    () = tokio::time::sleep(heartbeat_interval) => {}
                    () = signals.recv() => { stop = true; break; }
                }
            } else {
                let poll = tokio::select! {
                    poll = consumer.poll() => poll?,
                    () = signals.recv() => { stop = true; break; }
                };
                report_events(&poll.events);
                let mut cut = false;
                'partitions: for part in &poll.partitions {
                    for record in &part.records {
                        output.write(&args.topic, part.partition, record)?;
                        consumed.insert(part.partition, record.offset + 1);
                        printed += 1;
                        if printed >= limit || output.closed {
                            cut = true;
                            break 'partitions;
                        }
                    }
                }
                if !cut {
                    // Everything fetched was printed: resume after it, markers included.
                    consumed.extend(consumer.positions().iter().map(|(&p, &o)| (p, o)));
                }
                output.flush()?;
                if cut {
                    stop = true;
                    break;
                }
            }
            if last_commit.elapsed() >= AUTO_COMMIT_INTERVAL {
                commit_moved(&mut member, &args.topic, &consumed, &mut committed).await;
                last_commit = tokio::time::Instant::now();
            }
            if member.heartbeat_due() && !member.heartbeat().await? {
                eprintln!("group {group}: rebalancing");
                break;
            }
        }
        commit_moved(&mut member, &args.topic, &consumed, &mut committed).await;
    }
    if let Err(error) = member.leave().await {
        eprintln!(
            "warning: could not leave group {group:?} ({error}); it rebalances once the session times out"
        );
    }
    Ok(())
}

/// Stops reading partitions that reached their end offset.
fn drop_finished(consumer: &mut Consumer, end: &BTreeMap<i32, i64>) {
    let finished: Vec<i32> = consumer
        .positions()
        .iter()
        .filter(|(p, position)| end.get(p).is_none_or(|e| *position >= e))
        .map(|(p, _)| *p)
        .collect();
    for p in finished {
        consumer.remove_partition(p);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(
        key: Option<&[u8]>,
        value: Option<&[u8]>,
        headers: &[(&str, Option<&[u8]>)],
    ) -> ConsumedRecord {
        ConsumedRecord {
            offset: 7,
            timestamp_ms: 1_700_000_000_000,
            timestamp_type: TimestampType::Creation,
            key: key.map(Bytes::copy_from_slice),
            value: value.map(Bytes::copy_from_slice),
            headers: headers
                .iter()
                .map(|(n, v)| (n.to_string(), v.map(Bytes::copy_from_slice)))
                .collect(),
        }
    }

    fn render(topic: &str, partition: i32, record: &ConsumedRecord) -> serde_json::Value {
        let mut line = Vec::new();
        let key = Field::Raw(record.key.as_ref());
        let value = Field::Raw(record.value.as_ref());
        write_json(&mut line, topic, partition, record, &key, &value);
        assert_eq!(line.last(), Some(&b'\n'));
        assert_eq!(line.iter().filter(|&&b| b == b'\n').count(), 1, "one line");
        serde_json::from_slice(&line).expect("valid JSON")
    }

    #[test]
    fn json_strings_are_escaped() {
        let text = "quote \" backslash \\ newline \n tab \t bell \u{7} nul \u{0} é 🦀";
        let r = record(
            Some(text.as_bytes()),
            Some(b"v"),
            &[("h\"1", Some(text.as_bytes()))],
        );
        let json = render("t\n", 0, &r);
        assert_eq!(json["topic"], "t\n");
        assert_eq!(json["key"], text);
        assert_eq!(json["headers"], serde_json::json!([["h\"1", text]]));
    }

    #[test]
    fn json_uses_utf8_when_it_can_and_base64_when_it_must() {
        let r = record(
            Some(b"k"),
            Some(&[0xff, 0x00]),
            &[("h", Some(b"v")), ("n", None)],
        );
        let json = render("t", 3, &r);
        assert_eq!(json["topic"], "t");
        assert_eq!(json["partition"], 3);
        assert_eq!(json["offset"], 7);
        assert_eq!(json["timestamp"], 1_700_000_000_000i64);
        assert_eq!(json["timestamp_type"], "CreateTime");
        assert_eq!(json["key"], "k");
        assert_eq!(json["key_encoding"], "utf8");
        assert_eq!(json["value"], "/wA=");
        assert_eq!(json["value_encoding"], "base64");
        assert_eq!(
            json["headers"],
            serde_json::json!([["h", "v"], ["n", null]])
        );
        assert_eq!(json["headers_encoding"], "utf8");
    }

    #[test]
    fn one_binary_header_makes_all_header_values_base64() {
        let r = record(None, None, &[("a", Some(b"x")), ("b", Some(&[0xc3]))]);
        let json = render("t", 0, &r);
        assert_eq!(json["key"], serde_json::Value::Null);
        assert_eq!(json["value"], serde_json::Value::Null);
        assert_eq!(
            json["headers"],
            serde_json::json!([["a", "eA=="], ["b", "ww=="]])
        );
        assert_eq!(json["headers_encoding"], "base64");
    }

    #[test]
    fn format_strings_follow_kcat() {
        let tokens = parse_template("%t [%p] @%o: %k=%s (%S) %T %h %%\\n").expect("parses");
        let r = record(
            Some(b"k"),
            Some(b"value"),
            &[("a", Some(b"1")), ("b", None)],
        );
        let mut out = Vec::new();
        let key = Field::Raw(r.key.as_ref());
        let value = Field::Raw(r.value.as_ref());
        write_template(&mut out, &tokens, "orders", 2, &r, &key, &value);
        assert_eq!(
            String::from_utf8(out).expect("utf8"),
            "orders [2] @7: k=value (5) 1700000000000 a=1,b=NULL %\n"
        );

        let tokens = parse_template("%K|%S|%R\\x21\\t\\012").expect("parses");
        let r = record(None, None, &[]);
        let mut out = Vec::new();
        write_template(
            &mut out,
            &tokens,
            "t",
            0,
            &r,
            &Field::Raw(None),
            &Field::Raw(None),
        );
        assert_eq!(out, b"-1|-1|\xff\xff\xff\xff!\t\n".to_vec());

        for bad in ["%z", "%", "\\x"] {
            assert!(parse_template(bad).is_err(), "{bad}");
        }
        assert_eq!(parse_format("json"), Ok(OutputFormat::Json));
        assert!(parse_format("jsno").is_err(), "a typo is not a template");
    }

    #[test]
    fn decoded_fields_print_as_json() {
        let r = record(Some(b"\0\0\0\0\x01k"), Some(b"raw"), &[]);
        let key = Field::Decoded {
            schema_id: 1,
            json: serde_json::json!({"id": 5}),
        };
        let value = Field::Raw(r.value.as_ref());
        let mut line = Vec::new();
        write_json(&mut line, "t", 0, &r, &key, &value);
        let json: Value = serde_json::from_slice(&line).expect("valid JSON");
        assert_eq!(json["key"], serde_json::json!({"id": 5}));
        assert_eq!(json["key_encoding"], "json");
        assert_eq!(json["key_schema_id"], 1);
        assert_eq!(json["value"], "raw");
        assert!(json.get("value_schema_id").is_none());
        let tokens = parse_template("%k:%s").expect("parses");
        let mut out = Vec::new();
        write_template(&mut out, &tokens, "t", 0, &r, &key, &value);
        assert_eq!(out, br#"{"id":5}:raw"#.to_vec());
    }
}
