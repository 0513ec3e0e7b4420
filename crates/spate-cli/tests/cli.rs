//! End to end: the real `spate serve` on free ports, driven by the `spate topic`, `produce`,
//! `consume` and `schema` commands run as subprocesses, the way a user runs them.
//!
//! Each test starts its own server in a temporary directory and kills it when done (a Drop
//! guard). Waiting is always on a condition with a deadline: the server's "spate is ready"
//! line, or a command's exit.

use std::collections::BTreeMap;
use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine;
use serde_json::Value;

mod common;
use common::{Run, Serve, run_to_end};

/// How long one command may take.
const COMMAND_DEADLINE: Duration = Duration::from_secs(120);

/// A running `spate serve`, killed on drop.
struct Server {
    kafka_addr: String,
    #[allow(dead_code)]
    http_addr: String,
    registry_addr: String,
    serve: Serve,
}

impl Server {
    fn start() -> Server {
        Server::start_with(&[])
    }

    /// Starts `spate serve` with more flags.
    fn start_with(flags: &[&str]) -> Server {
        let serve = Serve::start(flags);
        Server {
            kafka_addr: serve.field("kafka_addr"),
            http_addr: serve.field("http_addr"),
            registry_addr: serve.field("registry_addr"),
            serve,
        }
    }

    /// Runs `spate ARGS` against this server with `stdin` as input.
    fn run(&self, args: &[&str], stdin: &[u8]) -> Run {
        self.run_env(args, stdin, &[])
    }

    /// Runs `spate ARGS` with these environment variables too.
    fn run_env(&self, args: &[&str], stdin: &[u8], env: &[(&str, &str)]) -> Run {
        let mut command = Command::new(env!("CARGO_BIN_EXE_spate"));
        command
            .args(args)
            .env("SPATE_BROKERS", &self.kafka_addr)
            .env("SPATE_REGISTRY", format!("http://{}", self.registry_addr))
            .env_remove("SPATE_REGISTRY_USER")
            .env_remove("SPATE_REGISTRY_PASSWORD")
            .env_remove("SPATE_REGISTRY_TOKEN")
            // No connection profile of the machine may leak in (`spate profile`).
            .env("XDG_CONFIG_HOME", self.serve.config_home())
            .envs(env.iter().copied());
        let output = run_to_end(command, stdin, COMMAND_DEADLINE).unwrap_or_else(|stderr| {
            panic!(
                "`spate {}` did not finish within {COMMAND_DEADLINE:?}; stderr:\n{stderr}\nserver log:\n{}",
                args.join(" "),
                self.serve.log_text()
            )
        });
        Run::finished(args, output)
    }

    /// Runs a command that must succeed.
    fn ok(&self, args: &[&str], stdin: &[u8]) -> Run {
        let run = self.run(args, stdin);
        assert!(
            run.status.success(),
            "`spate {}` failed ({}):\n{}\nserver log:\n{}",
            run.args,
            run.status,
            run.stderr,
            self.serve.log_text()
        );
        run
    }

    /// Consumes all of `topic` as JSON records.
    fn consume_all(&self, topic: &str) -> Vec<Value> {
        let run = self.ok(
            &[
                "consume",
                topic,
                "--from-beginning",
                "--exit-at-end",
                "--format",
                "json",
            ],
            b"",
        );
        run.json_lines()
    }
}

fn config<'a>(describe: &'a Value, name: &str) -> &'a Value {
    describe["configs"]
        .as_array()
        .expect("configs")
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no config {name} in {describe}"))
}

#[test]
fn topic_create_list_describe_alter_delete() {
    let server = Server::start();
    let run = server.ok(
        &[
            "topic",
            "create",
            "orders",
            "--partitions",
            "3",
            "--config",
            "retention.ms=3600000",
            "--config",
            "cleanup.policy=delete",
        ],
        b"",
    );
    assert!(
        run.stdout().contains("created topic orders"),
        "{}",
        run.stdout()
    );

    assert!(
        server
            .ok(&["topic", "list"], b"")
            .lines()
            .contains(&"orders".to_string())
    );
    let listed = server
        .ok(&["topic", "list", "--format", "json"], b"")
        .json();
    let orders = listed
        .as_array()
        .expect("array")
        .iter()
        .find(|t| t["name"] == "orders")
        .expect("orders listed");
    assert_eq!(orders["partitions"], 3);

    let describe = server
        .ok(&["topic", "describe", "orders", "--format", "json"], b"")
        .json();
    assert_eq!(describe["partition_count"], 3);
    assert_eq!(describe["replication_factor"], 1);
    let topic_id = describe["topic_id"].as_str().expect("topic id");
    assert_eq!(
        topic_id.len(),
        22,
        "Kafka's base64 form of a UUID: {topic_id}"
    );
    assert_ne!(topic_id, "AAAAAAAAAAAAAAAAAAAAAA", "a real topic id");
    for (i, p) in describe["partitions"]
        .as_array()
        .expect("partitions")
        .iter()
        .enumerate()
    {
        assert_eq!(p["partition"], i);
        assert!(p["leader"].as_i64().expect("leader") >= 0);
        assert_eq!(p["replicas"].as_array().expect("replicas").len(), 1);
        assert_eq!(p["earliest_offset"], 0);
        assert_eq!(p["latest_offset"], 0);
    }
    assert_eq!(config(&describe, "retention.ms")["value"], "3600000");
    assert_eq!(
        config(&describe, "retention.ms")["source"],
        "DYNAMIC_TOPIC_CONFIG"
    );
    assert_eq!(
        config(&describe, "segment.bytes")["source"],
        "DEFAULT_CONFIG"
    );

    let text = server.ok(&["topic", "describe", "orders"], b"").stdout();
    assert!(
        text.starts_with(&format!(
            "Topic: orders\tTopicId: {topic_id}\tPartitionCount: 3"
        )),
        "{text}"
    );
    assert!(
        text.contains("\tretention.ms=3600000\t(DYNAMIC_TOPIC_CONFIG)"),
        "{text}"
    );

    server.ok(
        &[
            "topic",
            "alter",
            "orders",
            "--config",
            "retention.ms=60000",
            "--partitions",
            "5",
        ],
        b"",
    );
    let describe = server
        .ok(&["topic", "describe", "orders", "--format", "json"], b"")
        .json();
    assert_eq!(describe["partition_count"], 5);
    assert_eq!(config(&describe, "retention.ms")["value"], "60000");

    server.ok(
        &[
            "topic",
            "alter",
            "orders",
            "--delete-config",
            "retention.ms",
        ],
        b"",
    );
    let describe = server
        .ok(&["topic", "describe", "orders", "--format", "json"], b"")
        .json();
    assert_eq!(
        config(&describe, "retention.ms")["source"],
        "DEFAULT_CONFIG"
    );
    assert_eq!(
        config(&describe, "cleanup.policy")["source"],
        "DYNAMIC_TOPIC_CONFIG"
    );

    let shrink = server.run(&["topic", "alter", "orders", "--partitions", "2"], b"");
    assert!(!shrink.status.success());
    assert!(
        shrink.stderr.contains("cannot shrink") || shrink.stderr.contains("not shrink"),
        "{}",
        shrink.stderr
    );

    let again = server.run(&["topic", "create", "orders"], b"");
    assert!(!again.status.success());
    assert!(
        again.stderr.contains("TOPIC_ALREADY_EXISTS"),
        "{}",
        again.stderr
    );
    server.ok(&["topic", "create", "orders", "--if-not-exists"], b"");

    server.ok(&["topic", "delete", "orders"], b"");
    assert!(
        !server
            .ok(&["topic", "list"], b"")
            .lines()
            .contains(&"orders".to_string())
    );
    let gone = server.run(&["topic", "describe", "orders"], b"");
    assert!(!gone.status.success());
    assert!(gone.stderr.contains("does not exist"), "{}", gone.stderr);
    let gone = server.run(&["topic", "delete", "orders"], b"");
    assert!(!gone.status.success());
    assert!(
        gone.stderr.contains("UNKNOWN_TOPIC_OR_PARTITION"),
        "{}",
        gone.stderr
    );
    server.ok(&["topic", "delete", "orders", "--if-exists"], b"");
}

#[test]
fn keyed_lines_with_headers_round_trip_in_every_codec() {
    let server = Server::start();
    for codec in ["none", "gzip", "snappy", "lz4", "zstd"] {
        let topic = format!("codec-{codec}");
        server.ok(&["topic", "create", &topic, "--partitions", "3"], b"");
        let lines: String = (0..300)
            .map(|i| format!("key-{i}:value {i} of {codec}\n"))
            .collect();
        let run = server.ok(
            &[
                "produce",
                &topic,
                "--key-separator",
                ":",
                "--header",
                "source=cli-test",
                "--header",
                "trace=a=b",
                "--compression",
                codec,
            ],
            lines.as_bytes(),
        );
        assert!(run.stdout.is_empty(), "produce prints nothing to stdout");
        assert_eq!(
            run.stderr.lines().collect::<Vec<_>>().len(),
            1,
            "only the report on stderr: {}",
            run.stderr
        );
        assert!(
            run.stderr
                .starts_with(&format!("produced 300 records to {topic} (partition 0: ")),
            "{}",
            run.stderr
        );

        let records = server.consume_all(&topic);
        assert_eq!(records.len(), 300, "{codec}");
        let mut by_partition: BTreeMap<i64, Vec<i64>> = BTreeMap::new();
        let mut seen = BTreeMap::new();
        for r in &records {
            assert_eq!(r["topic"], topic.as_str());
            assert_eq!(r["key_encoding"], "utf8");
            assert_eq!(r["value_encoding"], "utf8");
            assert_eq!(r["timestamp_type"], "CreateTime");
            assert!(r["timestamp"].as_i64().expect("timestamp") > 0);
            assert_eq!(
                r["headers"],
                serde_json::json!([["source", "cli-test"], ["trace", "a=b"]])
            );
            let key = r["key"].as_str().expect("key").to_string();
            let partition = r["partition"].as_i64().expect("partition");
            // The Java client's partitioner: toPositive(murmur2(key)) % partitions.
            let expected = spate_client::partitioner::partition_for_key(key.as_bytes(), 3);
            assert_eq!(partition, i64::from(expected), "{key} in {codec}");
            by_partition
                .entry(partition)
                .or_default()
                .push(r["offset"].as_i64().expect("offset"));
            seen.insert(key, r["value"].as_str().expect("value").to_string());
        }
        for i in 0..300 {
            assert_eq!(seen[&format!("key-{i}")], format!("value {i} of {codec}"));
        }
        for offsets in by_partition.values() {
            let expected: Vec<i64> = (0..offsets.len() as i64).collect();
            assert_eq!(
                offsets, &expected,
                "offsets are dense and in order per partition"
            );
        }
    }
}

#[test]
fn many_large_lines_span_batches_and_fetches() {
    let server = Server::start();
    server.ok(&["topic", "create", "bulk", "--partitions", "2"], b"");
    let filler = "x".repeat(2000);
    let lines: String = (0..3000).map(|i| format!("{i} {filler}\n")).collect();
    server.ok(
        &["produce", "bulk", "--compression", "lz4"],
        lines.as_bytes(),
    );
    let run = server.ok(
        &["consume", "bulk", "--from-beginning", "--exit-at-end"],
        b"",
    );
    let mut numbers: Vec<u32> = run
        .lines()
        .iter()
        .map(|l| {
            let (n, rest) = l.split_once(' ').expect("number and filler");
            assert_eq!(rest, filler);
            n.parse().expect("number")
        })
        .collect();
    numbers.sort_unstable();
    assert_eq!(numbers, (0..3000).collect::<Vec<_>>());
}

#[test]
fn consume_from_timestamp_starts_at_the_first_later_record() {
    let server = Server::start();
    server.ok(&["topic", "create", "events", "--partitions", "1"], b"");
    server.ok(&["produce", "events"], b"early-1\nearly-2\nearly-3\n");
    let early = server.consume_all("events");
    let cutoff = early
        .iter()
        .map(|r| r["timestamp"].as_i64().expect("timestamp"))
        .max()
        .expect("records")
        + 1;
    server.ok(&["produce", "events"], b"late-1\nlate-2\n");

    let all = server.consume_all("events");
    let expected: Vec<Value> = all
        .iter()
        .filter(|r| r["timestamp"].as_i64().expect("timestamp") >= cutoff)
        .map(|r| r["value"].clone())
        .collect();
    let run = server.ok(
        &[
            "consume",
            "events",
            "--from-timestamp",
            &cutoff.to_string(),
            "--exit-at-end",
            "--format",
            "json",
        ],
        b"",
    );
    let got: Vec<Value> = run
        .json_lines()
        .iter()
        .map(|r| r["value"].clone())
        .collect();
    assert_eq!(got, expected);
    assert!(got.contains(&Value::from("late-1")) && got.contains(&Value::from("late-2")));
    assert!(!got.contains(&Value::from("early-1")));

    // No record that late: nothing to print, and --exit-at-end still ends.
    let future = (cutoff + 365 * 24 * 3600 * 1000).to_string();
    let run = server.ok(
        &[
            "consume",
            "events",
            "--from-timestamp",
            &future,
            "--exit-at-end",
        ],
        b"",
    );
    assert!(run.stdout.is_empty());
}

#[test]
fn count_offset_partition_and_print_key() {
    let server = Server::start();
    server.ok(&["topic", "create", "numbers", "--partitions", "2"], b"");
    let lines: String = (0..50).map(|i| format!("k{i}\t{i}\n")).collect();
    server.ok(
        &[
            "produce",
            "numbers",
            "--partition",
            "1",
            "--key-separator",
            "\t",
            "--acks",
            "1",
        ],
        lines.as_bytes(),
    );

    let run = server.ok(
        &["consume", "numbers", "--from-beginning", "--count", "10"],
        b"",
    );
    assert_eq!(
        run.lines(),
        (0..10).map(|i| i.to_string()).collect::<Vec<_>>()
    );

    let run = server.ok(
        &[
            "consume",
            "numbers",
            "--partition",
            "1",
            "--offset",
            "45",
            "--exit-at-end",
            "--print-key",
        ],
        b"",
    );
    assert_eq!(
        run.lines(),
        (45..50).map(|i| format!("k{i}\t{i}")).collect::<Vec<_>>()
    );
    let run = server.ok(
        &[
            "consume",
            "numbers",
            "--partition",
            "0",
            "--from-beginning",
            "--exit-at-end",
        ],
        b"",
    );
    assert!(run.stdout.is_empty(), "everything went to partition 1");

    let run = server.run(
        &["consume", "numbers", "--partition", "7", "--exit-at-end"],
        b"",
    );
    assert!(!run.status.success());
    assert!(run.stderr.contains("no partition 7"), "{}", run.stderr);
}

#[test]
fn nulls_binary_values_and_acks_zero() {
    let server = Server::start();
    server.ok(&["topic", "create", "raw", "--partitions", "1"], b"");
    let mut input = b"k1|NULL\nk2|".to_vec();
    input.extend_from_slice(&[0xff, 0xfe, 0x00, b'x']);
    input.extend_from_slice(b"\r\nk3|plain\n");
    server.ok(
        &[
            "produce",
            "raw",
            "--key-separator",
            "|",
            "--null-value",
            "NULL",
        ],
        &input,
    );
    server.ok(
        &["produce", "raw", "--acks", "0", "--key-separator", "|"],
        b"k4|fire and forget\n",
    );

    let records = server.consume_all("raw");
    assert_eq!(records.len(), 4, "{records:?}");
    assert_eq!(records[0]["key"], "k1");
    assert_eq!(
        records[0]["value"],
        Value::Null,
        "the null marker is a tombstone"
    );
    assert_eq!(records[1]["value_encoding"], "base64");
    let binary = base64::engine::general_purpose::STANDARD
        .decode(records[1]["value"].as_str().expect("base64"))
        .expect("valid base64");
    assert_eq!(binary, vec![0xff, 0xfe, 0x00, b'x'], "\\r\\n is a line end");
    assert_eq!(records[2]["value"], "plain");
    assert_eq!(records[3]["value"], "fire and forget");
    assert!(
        records
            .iter()
            .all(|r| r["headers"] == serde_json::json!([]))
    );
}

#[test]
fn produce_failures_exit_non_zero() {
    let server = Server::start();
    server.ok(&["topic", "create", "strict", "--partitions", "1"], b"");
    let run = server.run(
        &["produce", "strict", "--key-separator", ":"],
        b"a:1\nno separator\nb:2\n",
    );
    assert!(!run.status.success());
    assert!(run.stderr.contains("line 2"), "{}", run.stderr);
    let values: Vec<Value> = server
        .consume_all("strict")
        .iter()
        .map(|r| r["value"].clone())
        .collect();
    assert_eq!(
        values,
        vec![Value::from("1"), Value::from("2")],
        "good lines still go"
    );

    let run = server.run(&["produce", "strict", "--partition", "3"], b"x\n");
    assert!(!run.status.success());
    assert!(run.stderr.contains("no partition 3"), "{}", run.stderr);

    // A record larger than the topic's max.message.bytes is refused by the broker.
    server.ok(
        &[
            "topic",
            "create",
            "small",
            "--config",
            "max.message.bytes=1000",
        ],
        b"",
    );
    let big = format!("{}\n", "y".repeat(5000));
    let run = server.run(&["produce", "small"], big.as_bytes());
    assert!(!run.status.success(), "{}", run.stderr);
    assert!(run.stderr.contains("MESSAGE_TOO_LARGE"), "{}", run.stderr);
}

#[test]
fn unreachable_brokers_are_a_clear_error() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr").to_string();
    drop(listener);
    let output = Command::new(env!("CARGO_BIN_EXE_spate"))
        .args(["topic", "list", "--brokers", &addr])
        .env_remove("SPATE_BROKERS")
        .output()
        .expect("run");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("no broker reachable"), "{stderr}");
    assert!(stderr.contains(&addr), "{stderr}");
}

#[test]
fn small_batches_pipelined_keep_per_partition_order() {
    let server = Server::start();
    server.ok(&["topic", "create", "ordered", "--partitions", "4"], b"");
    // Tiny batches make hundreds of Produce requests, several in flight on one connection.
    let lines: String = (0..4000).map(|i| format!("k{}:{i}\n", i % 17)).collect();
    server.ok(
        &[
            "produce",
            "ordered",
            "--key-separator",
            ":",
            "--batch-size-bytes",
            "300",
        ],
        lines.as_bytes(),
    );
    let records = server.consume_all("ordered");
    assert_eq!(records.len(), 4000);
    let mut last_per_key: BTreeMap<String, i64> = BTreeMap::new();
    for r in &records {
        let value: i64 = r["value"].as_str().expect("value").parse().expect("number");
        let key = r["key"].as_str().expect("key").to_string();
        if let Some(previous) = last_per_key.insert(key.clone(), value) {
            assert!(previous < value, "{key}: {previous} read before {value}");
        }
    }
    assert_eq!(last_per_key.len(), 17);
}

#[test]
fn lines_are_sent_before_stdin_closes() {
    let server = Server::start();
    server.ok(&["topic", "create", "live", "--partitions", "1"], b"");
    let mut producer = Command::new(env!("CARGO_BIN_EXE_spate"))
        .args(["produce", "live"])
        .env("SPATE_BROKERS", &server.kafka_addr)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start producer");
    let mut stdin = producer.stdin.take().expect("stdin");
    stdin.write_all(b"first\n").expect("write");
    stdin.flush().expect("flush");
    // Blocks until the record is in the log; the producer's stdin is still open.
    let run = server.run(
        &["consume", "live", "--from-beginning", "--count", "1"],
        b"",
    );
    let still_running = producer.try_wait().expect("try_wait").is_none();
    drop(stdin);
    let deadline = Instant::now() + COMMAND_DEADLINE;
    let status = loop {
        if let Some(status) = producer.try_wait().expect("try_wait") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = producer.kill();
            panic!("the producer did not exit after stdin closed");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    assert!(run.status.success(), "{}", run.stderr);
    assert_eq!(run.lines(), vec!["first".to_string()]);
    assert!(
        still_running,
        "the record arrived while the producer was still reading"
    );
    assert!(status.success());
}

#[test]
fn schema_commands_register_get_list_check_configure_and_delete() {
    let server = Server::start();
    let dir = tempfile::tempdir().expect("temp dir");
    let write = |name: &str, text: &str| {
        let path = dir.path().join(name);
        std::fs::write(&path, text).expect("write schema");
        path.to_string_lossy().into_owned()
    };
    let v1 = write(
        "v1.avsc",
        r#"{"type": "record", "name": "User", "fields": [{"name": "id", "type": "long"}]}"#,
    );
    let v2 = write(
        "v2.avsc",
        r#"{"type": "record", "name": "User", "fields": [{"name": "id", "type": "long"},
            {"name": "email", "type": "string", "default": ""}]}"#,
    );
    let breaking = write(
        "breaking.avsc",
        r#"{"type": "record", "name": "User", "fields": [{"name": "id", "type": "long"},
            {"name": "email", "type": "string"}]}"#,
    );

    let first = server.ok(&["schema", "register", "users-value", "--file", &v1], b"");
    assert_eq!(first.stdout().trim(), "1");
    let again = server.ok(&["schema", "register", "users-value", "--file", &v1], b"");
    assert_eq!(again.stdout().trim(), "1", "the same schema keeps its id");

    let compatible = server.ok(&["schema", "check", "users-value", "--file", &v2], b"");
    assert_eq!(compatible.stdout().trim(), "compatible");
    let refused = server.run(
        &["schema", "check", "users-value", "--file", &breaking],
        b"",
    );
    assert!(
        !refused.status.success(),
        "an incompatible schema fails the check"
    );
    assert!(
        refused.stdout().starts_with("incompatible"),
        "{}",
        refused.stdout()
    );
    assert!(refused.stdout().contains("email"), "{}", refused.stdout());
    let conflict = server.run(
        &["schema", "register", "users-value", "--file", &breaking],
        b"",
    );
    assert!(!conflict.status.success());
    assert!(
        conflict.stderr.contains("error code 409"),
        "{}",
        conflict.stderr
    );

    let second = server.ok(&["schema", "register", "users-value", "--file", &v2], b"");
    assert_eq!(second.stdout().trim(), "2");
    assert_eq!(
        server.ok(&["schema", "list"], b"").stdout(),
        "users-value\n"
    );
    assert_eq!(
        server.ok(&["schema", "list", "users-value"], b"").stdout(),
        "1\n2\n"
    );
    let raw = server.ok(
        &["schema", "get", "users-value", "--version", "1", "--raw"],
        b"",
    );
    let stored: Value = serde_json::from_str(raw.stdout().trim()).expect("schema JSON");
    assert_eq!(stored["fields"][0]["name"], "id");
    let by_id: Value = serde_json::from_str(
        server
            .ok(&["schema", "get", "--id", "2"], b"")
            .stdout()
            .trim(),
    )
    .expect("JSON document");
    assert!(by_id["schema"].as_str().expect("schema").contains("email"));

    // A Protobuf schema from stdin.
    let proto = b"syntax = \"proto3\";\nmessage Order { int64 id = 1; }\n";
    let order = server.ok(
        &[
            "schema",
            "register",
            "orders-value",
            "--type",
            "protobuf",
            "--file",
            "-",
        ],
        proto,
    );
    assert_eq!(order.stdout().trim(), "3");

    assert_eq!(
        server.ok(&["schema", "config"], b"").stdout().trim(),
        "BACKWARD"
    );
    server.ok(&["schema", "config", "users-value", "--set", "FULL"], b"");
    assert_eq!(
        server
            .ok(&["schema", "config", "users-value"], b"")
            .stdout()
            .trim(),
        "FULL"
    );
    let bad_level = server.run(
        &["schema", "config", "users-value", "--set", "SIDEWAYS"],
        b"",
    );
    assert!(bad_level.stderr.contains("42203"), "{}", bad_level.stderr);

    assert_eq!(
        server
            .ok(&["schema", "delete", "users-value", "--version", "1"], b"")
            .stdout()
            .trim(),
        "1"
    );
    assert_eq!(
        server.ok(&["schema", "list", "users-value"], b"").stdout(),
        "2\n"
    );
    let missing = server.run(&["schema", "get", "nobody-value"], b"");
    assert!(!missing.status.success());
    assert!(missing.stderr.contains("40401"), "{}", missing.stderr);
}

#[test]
fn schema_commands_send_basic_credentials_to_a_registry_with_http_auth() {
    let server = Server::start_with(&["--http-auth", "basic"]);
    server.ok(
        &["user", "create", "alice", "--password-stdin"],
        b"alice-secret\n",
    );
    let schema =
        r#"{"type": "record", "name": "Order", "fields": [{"name": "id", "type": "long"}]}"#;
    let register = ["schema", "register", "orders-value", "--schema", schema];

    let anonymous = server.run(&register, b"");
    assert!(!anonymous.status.success());
    assert!(
        anonymous.stderr.contains("Unauthorized (error code 401)")
            && anonymous.stderr.contains("SPATE_REGISTRY_PASSWORD"),
        "{}",
        anonymous.stderr
    );

    let user = [("SPATE_REGISTRY_USER", "alice")];
    let without_password = server.run_env(&register, b"", &user);
    assert!(!without_password.status.success());
    assert!(
        without_password.stderr.contains("SPATE_REGISTRY_PASSWORD"),
        "{}",
        without_password.stderr
    );

    let wrong = server.run_env(
        &register,
        b"",
        &[
            ("SPATE_REGISTRY_USER", "alice"),
            ("SPATE_REGISTRY_PASSWORD", "guess"),
        ],
    );
    assert!(!wrong.status.success());
    assert!(wrong.stderr.contains("error code 401"), "{}", wrong.stderr);
    assert!(!wrong.stderr.contains("guess"), "no password in messages");

    let registered = server.run_env(
        &register,
        b"",
        &[
            ("SPATE_REGISTRY_USER", "alice"),
            ("SPATE_REGISTRY_PASSWORD", "alice-secret"),
        ],
    );
    assert!(registered.status.success(), "{}", registered.stderr);
    assert_eq!(registered.stdout().trim(), "1");

    // The password in the URL, percent-encoding and all, with --registry-user unset.
    let url = format!("http://alice:alice%2Dsecret@{}", server.registry_addr);
    let listed = server.ok(&["schema", "list", "--registry", &url], b"");
    assert_eq!(listed.stdout(), "orders-value\n");
}

/// The commit `build.rs` stamps into the binary: `SPATE_GIT_COMMIT` if set, else this
/// checkout's HEAD (12 hex digits), else "unknown" (a source tree without `.git`).
fn expected_commit() -> String {
    if let Ok(commit) = std::env::var("SPATE_GIT_COMMIT")
        && !commit.is_empty()
    {
        return commit;
    }
    let manifest_dir = std::env::var("CARGO_MANIFEST_DIR").expect("run under cargo");
    Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .current_dir(manifest_dir)
        .output()
        .ok()
        .filter(|out| out.status.success())
        .map(|out| String::from_utf8_lossy(&out.stdout).trim().to_string())
        .unwrap_or_else(|| "unknown".to_string())
}

#[test]
fn version_and_ready_line_name_the_version_and_commit() {
    let commit = expected_commit();
    assert!(
        commit == "unknown"
            || (commit.len() == 12 && commit.bytes().all(|b| b.is_ascii_hexdigit())),
        "a commit is 12 hex digits: {commit}"
    );
    let version = env!("CARGO_PKG_VERSION");

    let output = Command::new(env!("CARGO_BIN_EXE_spate"))
        .arg("--version")
        .env_clear()
        .output()
        .expect("run spate --version");
    assert!(output.status.success(), "{output:?}");
    assert_eq!(
        String::from_utf8_lossy(&output.stdout),
        format!("spate {version} (commit {commit})\n")
    );

    let serve = Serve::start(&[]);
    assert_eq!(serve.field("version"), version, "{}", serve.ready);
    assert_eq!(serve.field("commit"), commit, "{}", serve.ready);
}
