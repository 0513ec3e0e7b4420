//! `spate produce`: one record per stdin line, batched, to a topic.
//!
//! A thread reads stdin (lines as bytes, so any encoding passes through) and hands chunks of
//! lines to the async side over a bounded channel; the producer batches them per partition
//! and sends a partition's batch when it is full or when the linger time has passed since
//! the first unsent line. Keyed lines go to the partition Kafka's Java client would pick.
//! Nothing is printed on success; each failure is printed to stderr and the command exits
//! non-zero if any record failed.

use std::io::BufRead;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};
use bytes::Bytes;
use spate_client::{Acks, Compression, ProduceFailure, Producer, ProducerConfig, ProducerRecord};
use tokio::sync::mpsc;

use super::client_args::{ClientArgs, parse_name_value, runtime};

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
    /// Topic to produce to (created if the broker auto-creates topics).
    topic: String,
    /// Split each line into key and value at the first SEP (lines without SEP fail).
    #[arg(long, value_name = "SEP")]
    key_separator: Option<String>,
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

/// How a line becomes a record.
struct LineFormat {
    key_separator: Option<Vec<u8>>,
    null_value: Option<Vec<u8>>,
    headers: Vec<(String, Option<Bytes>)>,
}

impl LineFormat {
    /// The record for `line`, or why it has none.
    fn record(&self, line: Vec<u8>, timestamp_ms: i64) -> Result<ProducerRecord, String> {
        let (key, value) = match &self.key_separator {
            None => (None, line),
            Some(sep) => match find(&line, sep) {
                Some(at) => {
                    let value = line[at + sep.len()..].to_vec();
                    let mut key = line;
                    key.truncate(at);
                    (Some(Bytes::from(key)), value)
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
            _ => Some(Bytes::from(value)),
        };
        Ok(ProducerRecord {
            key,
            value,
            headers: self.headers.clone(),
            timestamp_ms,
        })
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

/// Runs `spate produce`.
pub fn run(args: ProduceArgs) -> anyhow::Result<()> {
    if args.key_separator.as_deref() == Some("") {
        bail!("--key-separator must not be empty");
    }
    if args.batch_size_bytes == 0 {
        bail!("--batch-size-bytes must be positive");
    }
    let format = LineFormat {
        key_separator: args.key_separator.clone().map(String::into_bytes),
        null_value: args.null_value.clone().map(String::into_bytes),
        headers: args
            .headers
            .iter()
            .map(|(name, value)| (name.clone(), Some(Bytes::from(value.clone()))))
            .collect(),
    };
    runtime()?.block_on(produce(args, format))
}

async fn produce(args: ProduceArgs, format: LineFormat) -> anyhow::Result<()> {
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
                    match format.record(line, timestamp_ms) {
                        Ok(record) => producer.send(record, args.partition).await?,
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
            key_separator: sep.map(|s| s.as_bytes().to_vec()),
            null_value: null.map(|s| s.as_bytes().to_vec()),
            headers: vec![("h".to_string(), Some(Bytes::from_static(b"1")))],
        }
    }

    #[test]
    fn lines_split_at_the_first_separator() {
        let record = format(Some("::"), None)
            .record(b"k::v::w".to_vec(), 5)
            .expect("record");
        assert_eq!(record.key.as_deref(), Some(&b"k"[..]));
        assert_eq!(record.value.as_deref(), Some(&b"v::w"[..]));
        assert_eq!(record.headers.len(), 1);
        assert_eq!(record.timestamp_ms, 5);
        let record = format(Some("\t"), None)
            .record(b"\tv".to_vec(), 5)
            .expect("record");
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
            .expect("record");
        assert_eq!(record.key, None);
        assert_eq!(record.value.as_deref(), Some(&b"a:b"[..]));
    }

    #[test]
    fn the_null_marker_makes_a_tombstone() {
        let f = format(Some(":"), Some("NULL"));
        let record = f.record(b"k:NULL".to_vec(), 5).expect("record");
        assert_eq!(record.value, None);
        let record = f.record(b"k:NULLx".to_vec(), 5).expect("record");
        assert_eq!(record.value.as_deref(), Some(&b"NULLx"[..]));
    }
}
