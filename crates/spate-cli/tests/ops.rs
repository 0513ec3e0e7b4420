//! End to end: the daily-work commands against the real `spate serve`, as a user runs them:
//! `topic list|trim|describe` (internal topics, DeleteRecords, sizes from DescribeLogDirs),
//! `produce` (its report, JSON lines, topics that are not auto-created), `consume --format`
//! (compared byte for byte with kcat's `-f` on the same records), `cluster info|health|config`,
//! `schema mode` and contexts, `acl remove --producer` and `profile`.
//!
//! Each test starts its own server on free ports in a temporary directory and kills it when
//! done; profiles live in a temporary XDG_CONFIG_HOME. Waiting is on a condition with a
//! deadline (the ready line, a command's exit), never a fixed sleep.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use serde_json::Value;

mod common;
use common::{Run, Serve, run_to_end};

/// How long one command may take.
const COMMAND_DEADLINE: Duration = Duration::from_secs(120);

struct Server {
    kafka_addr: String,
    registry_addr: String,
    serve: Serve,
    /// XDG_CONFIG_HOME of every command: where profiles are kept.
    config_home: tempfile::TempDir,
}

impl Server {
    fn start(flags: &[&str]) -> Server {
        let serve = Serve::start(flags);
        Server {
            kafka_addr: serve.field("kafka_addr"),
            registry_addr: serve.field("registry_addr"),
            serve,
            config_home: tempfile::tempdir().expect("config home"),
        }
    }

    /// `spate ARGS` with the connection in the environment (or, `with_env` false, only from
    /// what the arguments and profiles say).
    fn command(&self, args: &[&str], with_env: bool) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_spate"));
        command
            .args(args)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("XDG_CONFIG_HOME", self.config_home.path());
        if with_env {
            command
                .env("SPATE_BROKERS", &self.kafka_addr)
                .env("SPATE_REGISTRY", format!("http://{}", self.registry_addr));
        }
        command
    }

    fn finish(&self, args: &[&str], command: Command, stdin: &[u8]) -> Run {
        let output = run_to_end(command, stdin, COMMAND_DEADLINE).unwrap_or_else(|stderr| {
            panic!(
                "`spate {}` did not finish within {COMMAND_DEADLINE:?}; stderr:\n{stderr}\nserver log:\n{}",
                args.join(" "),
                self.serve.log_text()
            )
        });
        Run::finished(args, output)
    }

    fn run(&self, args: &[&str], stdin: &[u8]) -> Run {
        self.finish(args, self.command(args, true), stdin)
    }

    /// Runs without SPATE_BROKERS / SPATE_REGISTRY: the profile (or flags) must say.
    fn run_bare(&self, args: &[&str]) -> Run {
        self.finish(args, self.command(args, false), b"")
    }

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

    fn fails(&self, args: &[&str], stdin: &[u8]) -> Run {
        let run = self.run(args, stdin);
        assert!(
            !run.status.success(),
            "`spate {}` succeeded but should fail:\n{}",
            run.args,
            run.stdout()
        );
        run
    }

    fn consume_all(&self, topic: &str) -> Vec<Value> {
        self.ok(
            &[
                "consume",
                topic,
                "--from-beginning",
                "--exit-at-end",
                "--format",
                "json",
            ],
            b"",
        )
        .json_lines()
    }

    /// Fails the test on an ERROR line in the server log.
    fn assert_no_errors_logged(&self) {
        let log = self.serve.log.lock().expect("log");
        let errors: Vec<&String> = log.iter().filter(|l| l.contains(" ERROR ")).collect();
        assert!(errors.is_empty(), "server logged errors: {errors:#?}");
    }
}

#[test]
fn topic_list_hides_internal_topics_unless_asked() {
    let server = Server::start(&[]);
    server.ok(&["topic", "create", "orders"], b"");
    // Committed offsets and schemas make the platform's own topics exist.
    server.ok(
        &[
            "schema",
            "register",
            "orders-value",
            "--schema",
            "\"string\"",
        ],
        b"",
    );
    let listed = server.ok(&["topic", "list"], b"").lines();
    assert!(listed.contains(&"orders".to_string()), "{listed:?}");
    assert!(
        listed.iter().all(|t| !t.starts_with('_')),
        "internal topics listed: {listed:?}"
    );
    let all = server.ok(&["topic", "list", "--internal"], b"").lines();
    assert!(all.contains(&"_schemas".to_string()), "{all:?}");
    assert!(all.contains(&"orders".to_string()), "{all:?}");
    let short = server
        .ok(&["topic", "list", "-i", "--format", "json"], b"")
        .json();
    let schemas = short
        .as_array()
        .expect("array")
        .iter()
        .find(|t| t["name"] == "_schemas")
        .expect("_schemas listed with -i");
    assert_eq!(schemas["internal"], true, "{schemas}");
    // The old flag still works (and is the default now).
    let excluded = server
        .ok(&["topic", "list", "--exclude-internal"], b"")
        .lines();
    assert_eq!(excluded, listed);
    server.assert_no_errors_logged();
}

#[test]
fn produce_reports_what_it_wrote_to_stderr_and_fails_fast_on_a_missing_topic() {
    let server = Server::start(&["--auto-create-topics", "false"]);
    server.ok(&["topic", "create", "two", "--partitions", "2"], b"");
    let lines: String = (0..6).map(|i| format!("k{i}:v{i}\n")).collect();
    let run = server.ok(
        &["produce", "two", "--key-separator", ":"],
        lines.as_bytes(),
    );
    assert!(
        run.stdout.is_empty(),
        "stdout stays clean: {}",
        run.stdout()
    );
    assert!(
        run.stderr.contains("produced 6 records to two"),
        "{}",
        run.stderr
    );
    // Each partition's count and last offset, as the consumer sees them.
    let records = server.consume_all("two");
    for partition in 0..2 {
        let offsets: Vec<i64> = records
            .iter()
            .filter(|r| r["partition"] == partition)
            .map(|r| r["offset"].as_i64().expect("offset"))
            .collect();
        if let Some(last) = offsets.last() {
            let expected = format!(
                "partition {partition}: {} (last offset {last})",
                offsets.len()
            );
            assert!(run.stderr.contains(&expected), "{expected}: {}", run.stderr);
        }
    }

    // The cluster does not create topics: the producer says so at once, with what to do,
    // even with a request timeout longer than this test's deadline.
    let run = server.fails(
        &["produce", "missing", "--request-timeout-ms", "600000"],
        b"x\n",
    );
    assert!(run.stderr.contains("does not exist"), "{}", run.stderr);
    assert!(
        run.stderr.contains("spate topic create missing"),
        "{}",
        run.stderr
    );
    let listed = server.ok(&["topic", "list"], b"").lines();
    assert!(!listed.contains(&"missing".to_string()));
    server.assert_no_errors_logged();
}

#[test]
fn json_lines_produce_records_and_copy_a_topic_through_a_pipe() {
    let server = Server::start(&[]);
    server.ok(&["topic", "create", "source", "--partitions", "3"], b"");
    let input = [
        r#"{"key":"a","value":{"id":1,"item":"pen"},"headers":[["h1","x"],["h2",null]],"partition":2,"timestamp":1700000000001}"#,
        r#"{"key":"b","value":"plain text","headers":{"origin":"rpk"},"partition":0,"timestamp":1700000000002}"#,
        r#"{"key":null,"payload":"/wA=","value_encoding":"base64","headers":[{"key":"k","value":"v"}],"partition":1,"ts":1700000000003}"#,
        r#"{"key":"tomb","value":null,"partition":0,"timestamp":1700000000004}"#,
        r#"not json"#,
    ]
    .join("\n");
    let run = server.fails(
        &["produce", "source", "--input-format", "json"],
        input.as_bytes(),
    );
    assert!(
        run.stderr.contains("line 5 skipped: not a JSON object"),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("produced 4 records"), "{}", run.stderr);

    let records = server.consume_all("source");
    assert_eq!(records.len(), 4, "{records:?}");
    let by_key = |key: Value| {
        records
            .iter()
            .find(|r| r["key"] == key)
            .unwrap_or_else(|| panic!("no record with key {key}: {records:?}"))
            .clone()
    };
    let a = by_key("a".into());
    assert_eq!(a["partition"], 2);
    assert_eq!(a["timestamp"], 1_700_000_000_001i64);
    assert_eq!(
        a["value"], r#"{"id":1,"item":"pen"}"#,
        "an object is its JSON text"
    );
    assert_eq!(a["headers"], serde_json::json!([["h1", "x"], ["h2", null]]));
    let b = by_key("b".into());
    assert_eq!(
        (b["partition"].clone(), b["value"].clone()),
        (0.into(), "plain text".into())
    );
    assert_eq!(b["headers"], serde_json::json!([["origin", "rpk"]]));
    let binary = by_key(Value::Null);
    assert_eq!(binary["value"], "/wA=");
    assert_eq!(binary["value_encoding"], "base64");
    assert_eq!(binary["timestamp"], 1_700_000_000_003i64);
    assert_eq!(by_key("tomb".into())["value"], Value::Null);

    // consume --format json | produce --input-format json copies the topic.
    server.ok(&["topic", "create", "copy", "--partitions", "3"], b"");
    let dump = server.ok(
        &[
            "consume",
            "source",
            "--from-beginning",
            "--exit-at-end",
            "--format",
            "json",
        ],
        b"",
    );
    server.ok(&["produce", "copy", "--input-format", "json"], &dump.stdout);
    let strip = |records: Vec<Value>| -> BTreeSet<String> {
        records
            .into_iter()
            .map(|mut r| {
                let object = r.as_object_mut().expect("object");
                object.remove("topic");
                object.remove("offset");
                r.to_string()
            })
            .collect()
    };
    assert_eq!(strip(server.consume_all("copy")), strip(records));
    server.assert_no_errors_logged();
}

#[test]
fn format_strings_print_what_kcat_prints() {
    let server = Server::start(&[]);
    server.ok(&["topic", "create", "fmt", "--partitions", "2"], b"");
    server.ok(
        &[
            "produce",
            "fmt",
            "--key-separator",
            ":",
            "-H",
            "trace=abc",
            "-H",
            "empty=",
            "--null-value",
            "NULL",
        ],
        b"k1:hello\nk2:NULL\n:no key\nk4:tab\there\n",
    );
    let format = r"%t|%p|%o|%k|%K|%s|%S|%T|%h|100%%\n";
    let ours = server.ok(
        &[
            "consume",
            "fmt",
            "--from-beginning",
            "--exit-at-end",
            "--format",
            format,
        ],
        b"",
    );
    let kcat = Command::new("kcat")
        .args([
            "-C",
            "-b",
            &server.kafka_addr,
            "-t",
            "fmt",
            "-o",
            "beginning",
            "-e",
            "-q",
            "-f",
            format,
        ])
        .output()
        .expect("kcat is installed (scripts/test's deps phase)");
    assert!(
        kcat.status.success(),
        "kcat failed: {}",
        String::from_utf8_lossy(&kcat.stderr)
    );
    let sorted = |bytes: &[u8]| -> Vec<String> {
        let mut lines: Vec<String> = String::from_utf8_lossy(bytes)
            .lines()
            .map(str::to_string)
            .collect();
        lines.sort();
        lines
    };
    let ours = sorted(&ours.stdout);
    assert_eq!(ours.len(), 4, "{ours:?}");
    assert_eq!(ours, sorted(&kcat.stdout), "spate and kcat disagree");
    assert!(
        ours.iter().any(|l| l.contains("|k2|2||-1|")),
        "a null value prints nothing and -1: {ours:?}"
    );
    assert!(
        ours.iter().any(|l| l.contains("|trace=abc,empty=|100%")),
        "{ours:?}"
    );

    let bad = server.fails(&["consume", "fmt", "--format", "%q"], b"");
    assert!(
        bad.stderr.contains("unsupported format token %q"),
        "{}",
        bad.stderr
    );
    server.assert_no_errors_logged();
}

#[test]
fn cluster_info_health_and_broker_configs() {
    let server = Server::start(&["--node-id", "3"]);
    let info = server
        .ok(&["cluster", "info", "--format", "json"], b"")
        .json();
    assert!(
        info["cluster_id"].as_str().is_some_and(|id| !id.is_empty()),
        "{info}"
    );
    assert_eq!(info["controller_id"], 3, "{info}");
    let brokers = info["brokers"].as_array().expect("brokers");
    assert_eq!(brokers.len(), 1, "{info}");
    let (host, port) = server.kafka_addr.rsplit_once(':').expect("HOST:PORT");
    assert_eq!(brokers[0]["host"], host);
    assert_eq!(brokers[0]["port"].to_string(), port);
    assert_eq!(brokers[0]["controller"], true);
    let text = server.ok(&["cluster", "info"], b"").stdout();
    assert!(
        text.contains(info["cluster_id"].as_str().expect("id")),
        "{text}"
    );
    assert!(text.contains("3*"), "the controller is marked: {text}");

    server.ok(&["topic", "create", "h", "--partitions", "2"], b"");
    let health = server
        .ok(&["cluster", "health", "--format", "json"], b"")
        .json();
    assert_eq!(health["healthy"], true, "{health}");
    assert_eq!(health["controller_id"], 3);
    assert_eq!(health["brokers_down"], serde_json::json!([]));
    assert_eq!(health["leaderless_partitions"], serde_json::json!([]));
    let text = server.ok(&["cluster", "health"], b"").stdout();
    assert!(text.contains("Healthy:") && text.contains("true"), "{text}");

    // Broker configs: the cluster defaults (resource name "") and broker 3's.
    let defaults = server
        .ok(&["cluster", "config", "get", "--format", "json"], b"")
        .json();
    let value_of = |configs: &Value, name: &str| {
        configs
            .as_array()
            .expect("configs")
            .iter()
            .find(|c| c["name"] == name)
            .unwrap_or_else(|| panic!("no {name} in {configs}"))["value"]
            .clone()
    };
    assert_eq!(value_of(&defaults, "auto.create.topics.enable"), "true");
    let broker = server
        .ok(
            &[
                "cluster", "config", "get", "--broker", "3", "--format", "json",
            ],
            b"",
        )
        .json();
    assert_eq!(value_of(&broker, "broker.id"), "3");
    let one = server.ok(&["cluster", "config", "get", "node.id"], b"");
    assert_eq!(one.stdout(), "3\n");
    let unknown = server.fails(&["cluster", "config", "get", "no.such.config"], b"");
    assert!(
        unknown.stderr.contains("no config named"),
        "{}",
        unknown.stderr
    );
    let other = server.fails(&["cluster", "config", "get", "--broker", "9"], b"");
    assert!(other.stderr.contains("broker 9"), "{}", other.stderr);

    // Changing a config: the cluster default by default, one broker with --broker; the
    // effective value and its source read back; an invalid value refused with Kafka's reason.
    let source_of = |configs: &Value, name: &str| {
        configs
            .as_array()
            .expect("configs")
            .iter()
            .find(|c| c["name"] == name)
            .unwrap_or_else(|| panic!("no {name} in {configs}"))["source"]
            .clone()
    };
    server.ok(
        &["cluster", "config", "set", "log.retention.ms=7200000"],
        b"",
    );
    let effective = server
        .ok(&["cluster", "config", "get", "--format", "json"], b"")
        .json();
    assert_eq!(value_of(&effective, "log.retention.ms"), "7200000");
    assert_eq!(
        source_of(&effective, "log.retention.ms"),
        "DYNAMIC_DEFAULT_BROKER_CONFIG"
    );
    let defaults = server
        .ok(
            &[
                "cluster",
                "config",
                "get",
                "--cluster-default",
                "--format",
                "json",
            ],
            b"",
        )
        .json();
    assert_eq!(value_of(&defaults, "log.retention.ms"), "7200000");
    server.ok(
        &[
            "cluster",
            "config",
            "set",
            "--broker",
            "3",
            "log.retention.ms=3600000",
        ],
        b"",
    );
    let one = server.ok(&["cluster", "config", "get", "log.retention.ms"], b"");
    assert_eq!(
        one.stdout(),
        "3600000\n",
        "a broker's own value wins over the default"
    );
    server.ok(
        &[
            "cluster",
            "config",
            "set",
            "--broker",
            "3",
            "--delete",
            "log.retention.ms",
        ],
        b"",
    );
    let one = server.ok(&["cluster", "config", "get", "log.retention.ms"], b"");
    assert_eq!(one.stdout(), "7200000\n");
    let refused = server.fails(&["cluster", "config", "set", "log.retention.ms=soon"], b"");
    assert!(
        refused.stderr.contains("INVALID_REQUEST"),
        "{}",
        refused.stderr
    );
    assert!(
        refused.stderr.contains("log.retention.ms"),
        "{}",
        refused.stderr
    );
    let one = server.ok(&["cluster", "config", "get", "log.retention.ms"], b"");
    assert_eq!(
        one.stdout(),
        "7200000\n",
        "a refused change changes nothing"
    );
    server.assert_no_errors_logged();
}

#[test]
fn trim_deletes_records_before_an_offset_and_describe_shows_sizes() {
    let server = Server::start(&[]);
    server.ok(&["topic", "create", "logs", "--partitions", "2"], b"");
    let lines: String = (0..10).map(|i| format!("line {i}\n")).collect();
    server.ok(&["produce", "logs", "--partition", "0"], lines.as_bytes());
    server.ok(&["produce", "logs", "--partition", "1"], b"one\n");

    let describe = server
        .ok(&["topic", "describe", "logs", "--format", "json"], b"")
        .json();
    let partitions = describe["partitions"].as_array().expect("partitions");
    let sizes: Vec<i64> = partitions
        .iter()
        .map(|p| p["size_bytes"].as_i64().expect("a size per partition"))
        .collect();
    assert!(sizes[0] > sizes[1] && sizes[1] > 0, "{sizes:?}");
    assert_eq!(describe["size_bytes"], sizes.iter().sum::<i64>());
    let text = server.ok(&["topic", "describe", "logs"], b"").stdout();
    assert!(text.contains(&format!("\tSize: {}", sizes[0])), "{text}");

    let run = server.ok(
        &["topic", "trim", "logs", "--offset", "4", "--partition", "0"],
        b"",
    );
    assert_eq!(run.stdout(), "partition 0: start offset 4\n");
    let earliest = |server: &Server| -> Vec<i64> {
        server
            .ok(&["topic", "describe", "logs", "--format", "json"], b"")
            .json()["partitions"]
            .as_array()
            .expect("partitions")
            .iter()
            .map(|p| p["earliest_offset"].as_i64().expect("offset"))
            .collect()
    };
    assert_eq!(earliest(&server), vec![4, 0]);
    let values: Vec<Value> = server
        .consume_all("logs")
        .into_iter()
        .filter(|r| r["partition"] == 0)
        .map(|r| r["value"].clone())
        .collect();
    assert_eq!(values.first(), Some(&Value::from("line 4")));
    assert_eq!(values.len(), 6);

    let run = server.ok(&["topic", "trim", "logs", "-o", "end"], b"");
    assert_eq!(
        run.lines(),
        vec![
            "partition 0: start offset 10",
            "partition 1: start offset 1"
        ]
    );
    assert_eq!(earliest(&server), vec![10, 1]);
    assert!(server.consume_all("logs").is_empty());

    let beyond = server.fails(&["topic", "trim", "logs", "--offset", "99", "-p", "1"], b"");
    assert!(
        beyond.stderr.contains("OFFSET_OUT_OF_RANGE"),
        "{}",
        beyond.stderr
    );
    let missing = server.fails(&["topic", "trim", "logs", "--offset", "1", "-p", "7"], b"");
    assert!(
        missing.stderr.contains("no partition 7"),
        "{}",
        missing.stderr
    );
    server.assert_no_errors_logged();
}

#[test]
fn schema_modes_and_contexts() {
    let server = Server::start(&[]);
    assert_eq!(server.ok(&["schema", "mode"], b"").stdout(), "READWRITE\n");
    server.ok(
        &["schema", "register", "a-value", "--schema", "\"string\""],
        b"",
    );
    assert_eq!(
        server
            .ok(&["schema", "mode", "a-value", "--set", "readonly"], b"")
            .stdout(),
        "READONLY\n"
    );
    assert_eq!(
        server.ok(&["schema", "mode", "a-value"], b"").stdout(),
        "READONLY\n"
    );
    let refused = server.fails(
        &["schema", "register", "a-value", "--schema", "\"bytes\""],
        b"",
    );
    assert!(
        refused.stderr.contains("error code 42205"),
        "{}",
        refused.stderr
    );
    server.ok(&["schema", "mode", "a-value", "--delete"], b"");
    assert_eq!(
        server.ok(&["schema", "mode", "a-value"], b"").stdout(),
        "READWRITE\n",
        "back to the global mode"
    );
    let bad = server.fails(&["schema", "mode", "--set", "WRITEONLY"], b"");
    assert!(bad.stderr.contains("unknown mode"), "{}", bad.stderr);

    // A context qualifies subject names; the default context does not see them unqualified.
    let id = server
        .ok(
            &[
                "schema",
                "--context",
                ".staging",
                "register",
                "orders-value",
                "--schema",
                "\"long\"",
            ],
            b"",
        )
        .stdout();
    let in_context = server
        .ok(&["schema", "list", "--context", "staging"], b"")
        .lines();
    assert_eq!(in_context, vec![":.staging:orders-value"]);
    let raw = server
        .ok(
            &[
                "schema",
                "get",
                "orders-value",
                "--context",
                ".staging",
                "--raw",
            ],
            b"",
        )
        .stdout();
    assert_eq!(raw, "\"long\"\n");
    let qualified = server
        .ok(&["schema", "get", ":.staging:orders-value"], b"")
        .json();
    assert_eq!(qualified["id"].to_string(), id.trim());
    assert!(
        server
            .fails(&["schema", "get", "orders-value"], b"")
            .stderr
            .contains("40401")
    );
    server.ok(
        &["schema", "--context", ".staging", "config", "--set", "FULL"],
        b"",
    );
    assert_eq!(
        server
            .ok(&["schema", "--context", ".staging", "config"], b"")
            .stdout(),
        "FULL\n"
    );
    assert_eq!(
        server.ok(&["schema", "config"], b"").stdout(),
        "BACKWARD\n",
        "the default context keeps its level"
    );
    server.assert_no_errors_logged();
}

#[test]
fn acl_remove_producer_removes_what_add_producer_wrote() {
    let server = Server::start(&["--authorizer", "acl", "--super-user", "User:ANONYMOUS"]);
    server.ok(
        &[
            "acl",
            "add",
            "--allow-principal",
            "User:alice",
            "--producer",
            "--topic",
            "t",
        ],
        b"",
    );
    server.ok(
        &[
            "acl",
            "add",
            "--allow-principal",
            "User:bob",
            "--consumer",
            "--topic",
            "t",
            "--group",
            "g",
        ],
        b"",
    );
    let count = |server: &Server| server.ok(&["acl", "list"], b"").lines().len() - 1;
    assert_eq!(count(&server), 3 + 3);
    let removed = server.ok(
        &[
            "acl",
            "remove",
            "--allow-principal",
            "User:alice",
            "--producer",
            "--topic",
            "t",
        ],
        b"",
    );
    assert_eq!(removed.lines().len() - 1, 3, "{}", removed.stdout());
    assert!(
        removed.stderr.contains("removed 3 ACL(s)"),
        "{}",
        removed.stderr
    );
    let left = server.ok(&["acl", "list"], b"").stdout();
    assert!(!left.contains("User:alice"), "{left}");
    assert_eq!(left.matches("User:bob").count(), 3, "{left}");
    let removed = server.ok(
        &[
            "acl",
            "remove",
            "--consumer",
            "--topic",
            "t",
            "--group",
            "g",
        ],
        b"",
    );
    assert!(
        removed.stderr.contains("removed 3 ACL(s)"),
        "{}",
        removed.stderr
    );
    assert_eq!(count(&server), 0);
}

fn assert_no_profiles(dir: &Path) {
    assert!(!dir.join("spate").join("profiles.toml").exists());
}

#[test]
fn profiles_hold_brokers_and_registry_and_flags_win() {
    let server = Server::start(&[]);
    assert_no_profiles(server.config_home.path());
    // No profile and no SPATE_BROKERS: localhost:9092, which is not this server.
    let registry = format!("http://{}", server.registry_addr);
    let created = server.run_bare(&[
        "profile",
        "create",
        "local",
        "--brokers",
        &server.kafka_addr,
        "--registry",
        &registry,
    ]);
    assert!(created.status.success(), "{}", created.stderr);
    assert!(
        created.stderr.contains("profiles.toml"),
        "says where: {}",
        created.stderr
    );
    let file = server
        .config_home
        .path()
        .join("spate")
        .join("profiles.toml");
    let text = std::fs::read_to_string(&file).expect("profiles file");
    assert!(text.contains(&server.kafka_addr), "{text}");
    assert!(text.contains("current = \"local\""), "{text}");

    let made = server.run_bare(&["topic", "create", "via-profile"]);
    assert!(made.status.success(), "{}", made.stderr);
    let listed = server.ok(&["topic", "list"], b"").lines();
    assert!(listed.contains(&"via-profile".to_string()), "{listed:?}");
    let subjects = server.run_bare(&["schema", "list"]);
    assert!(
        subjects.status.success(),
        "the profile's registry: {}",
        subjects.stderr
    );
    let current = server.run_bare(&["profile", "current"]);
    assert!(
        current
            .stdout()
            .contains(&format!("brokers: {}", server.kafka_addr)),
        "{}",
        current.stdout()
    );

    // A flag wins over the profile.
    let dead = "127.0.0.1:1";
    let flagged = server.run_bare(&["topic", "list", "--brokers", dead]);
    assert!(!flagged.status.success());
    assert!(flagged.stderr.contains(dead), "{}", flagged.stderr);

    // A second profile becomes current; --profile picks another one.
    let other = server.run_bare(&["profile", "create", "dead", "--brokers", dead]);
    assert!(other.status.success(), "{}", other.stderr);
    assert!(!server.run_bare(&["topic", "list"]).status.success());
    let picked = server.run_bare(&["--profile", "local", "topic", "list"]);
    assert!(picked.status.success(), "{}", picked.stderr);
    let listed = server.run_bare(&["profile", "list"]).lines();
    assert_eq!(listed, vec!["* dead", "  local"]);
    assert!(
        server
            .run_bare(&["profile", "use", "local"])
            .status
            .success()
    );
    assert!(server.run_bare(&["topic", "list"]).status.success());
    assert!(
        server
            .run_bare(&["profile", "delete", "dead"])
            .status
            .success()
    );
    let missing = server.run_bare(&["--profile", "gone", "topic", "list"]);
    assert!(!missing.status.success());
    assert!(
        missing.stderr.contains("no profile named \"gone\""),
        "{}",
        missing.stderr
    );
    let again = server.run_bare(&["profile", "create", "local", "--brokers", dead]);
    assert!(again.stderr.contains("exists"), "{}", again.stderr);
    assert!(
        !text.contains("password ="),
        "no password saved unless asked: {text}"
    );
}
