//! `spate consume`: print records of a topic, without a consumer group.
//!
//! Start positions come from ListOffsets (earliest, latest, or by timestamp) or `--offset`.
//! The consumer long-polls every partition leader and prints records per partition in offset
//! order. `--exit-at-end` stops once every partition has reached the end offset it had when
//! the command started (records after that are not printed); `--count` stops after N records.
//!
//! Text output is the value per line (`key<TAB>value` with `--print-key`; a null prints as
//! `null`, bytes pass through unchanged). JSON output is one object per line, see
//! [`JsonRecord`].

use std::collections::BTreeMap;
use std::io::Write;
use std::time::Duration;

use anyhow::{Context, bail};
use base64::Engine;
use bytes::Bytes;
use spate_client::{
    Client, ConsumedRecord, Consumer, ConsumerConfig, ConsumerEvent, OffsetSpec, TimestampType,
    TopicMetadata,
};

use super::client_args::{ClientArgs, is_broken_pipe, runtime};

/// Arguments of `spate consume`.
#[derive(Debug, clap::Args)]
pub struct ConsumeArgs {
    #[command(flatten)]
    client: ClientArgs,
    /// Topic to read.
    topic: String,
    /// Start at the earliest offset [default: the latest, printing only new records].
    #[arg(long, conflicts_with_all = ["offset", "from_timestamp"])]
    from_beginning: bool,
    /// Start at this offset in every partition read (clamped to each partition's log).
    #[arg(long, value_name = "N", conflicts_with = "from_timestamp")]
    offset: Option<i64>,
    /// Start at the first record with a timestamp at or after MS (milliseconds since epoch).
    #[arg(long, value_name = "MS")]
    from_timestamp: Option<i64>,
    /// Read only this partition [default: all partitions].
    #[arg(long)]
    partition: Option<i32>,
    /// Stop after printing N records.
    #[arg(long, value_name = "N")]
    count: Option<u64>,
    /// Stop once every partition reaches the end offset it had when the command started.
    #[arg(long)]
    exit_at_end: bool,
    /// Output format.
    #[arg(long, value_enum, default_value = "text")]
    format: Format,
    /// In text format, print the key and a tab before the value.
    #[arg(long)]
    print_key: bool,
    /// How long each fetch waits for new data, in ms.
    #[arg(long, default_value_t = 500)]
    max_wait_ms: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Format {
    /// The value per line (`key<TAB>value` with --print-key).
    Text,
    /// One JSON object per line.
    Json,
}

/// Writes one line of `--format json`: an object with `topic`, `partition`, `offset`,
/// `timestamp` (ms since the epoch), `timestamp_type` (`"CreateTime"` or `"LogAppendTime"`),
/// `key`, `key_encoding`, `value`, `value_encoding`, `headers` and `headers_encoding`.
///
/// Keys, values and header values are UTF-8 strings when they are valid UTF-8, else base64
/// (standard alphabet, padded); the `*_encoding` fields say which (`"utf8"` or `"base64"`;
/// one binary header value makes all header values of the record base64). A null key or
/// value is `null`. Headers are a list of `[name, value]` pairs in record order.
///
/// Written by hand rather than through serde: this is the hot loop of `consume`, and the
/// format is small and fixed.
fn write_json(out: &mut Vec<u8>, topic: &str, partition: i32, record: &ConsumedRecord) {
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
    out.extend_from_slice(b",\"key\":");
    let key_encoding = write_json_bytes(out, record.key.as_ref(), true);
    out.extend_from_slice(b",\"key_encoding\":\"");
    out.extend_from_slice(key_encoding.as_bytes());
    out.extend_from_slice(b"\",\"value\":");
    let value_encoding = write_json_bytes(out, record.value.as_ref(), true);
    out.extend_from_slice(b",\"value_encoding\":\"");
    out.extend_from_slice(value_encoding.as_bytes());
    out.extend_from_slice(b"\",\"headers\":[");
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
    runtime()?.block_on(consume(args))
}

/// Writes records to stdout, buffered; a closed pipe ends the command quietly.
struct Output {
    out: std::io::BufWriter<std::io::Stdout>,
    format: Format,
    print_key: bool,
    closed: bool,
    /// Reused buffer for one JSON line.
    line: Vec<u8>,
}

impl Output {
    fn write(
        &mut self,
        topic: &str,
        partition: i32,
        record: &ConsumedRecord,
    ) -> anyhow::Result<()> {
        let result = match self.format {
            Format::Json => {
                self.line.clear();
                write_json(&mut self.line, topic, partition, record);
                self.out.write_all(&self.line)
            }
            Format::Text => {
                let null = Bytes::from_static(b"null");
                let mut result = Ok(());
                if self.print_key {
                    result = self
                        .out
                        .write_all(record.key.as_ref().unwrap_or(&null))
                        .and_then(|()| self.out.write_all(b"\t"));
                }
                result
                    .and_then(|()| self.out.write_all(record.value.as_ref().unwrap_or(&null)))
                    .and_then(|()| self.out.write_all(b"\n"))
            }
        };
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

async fn consume(args: ConsumeArgs) -> anyhow::Result<()> {
    let client = args.client.connect().await?;
    let topic = client.topic_metadata(&args.topic, false).await?;
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

    let config = ConsumerConfig {
        max_wait: Duration::from_millis(args.max_wait_ms),
        ..ConsumerConfig::default()
    };
    let mut consumer = Consumer::new(client, topic, positions, config);
    let mut output = Output {
        out: std::io::BufWriter::with_capacity(64 * 1024, std::io::stdout()),
        format: args.format,
        print_key: args.print_key,
        closed: false,
        line: Vec::with_capacity(1024),
    };
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
            Ok(()) = tokio::signal::ctrl_c() => break,
        };
        for event in &poll.events {
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
        write_json(&mut line, topic, partition, record);
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
}
