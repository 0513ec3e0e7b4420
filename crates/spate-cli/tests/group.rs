//! End to end: `spate group list|describe|delete|reset-offsets` against the real `spate serve`,
//! with groups made by a real client (kcat's balanced consumer, librdkafka underneath).
//!
//! Each test starts its own server on free ports in a temporary directory and kills it when
//! done. Waiting is always on a condition with a deadline (the server's "spate is ready" line,
//! a process exit, a group reaching a state), never a fixed sleep.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::Value;

mod common;
use common::{Serve, drain, run_to_end};

/// How long one command may take.
const COMMAND_DEADLINE: Duration = Duration::from_secs(120);
/// How long a group may take to reach a state (join, commit, leave).
const GROUP_DEADLINE: Duration = Duration::from_secs(60);
/// Pause between two looks at a condition.
const POLL_INTERVAL: Duration = Duration::from_millis(100);

/// A running `spate serve`, killed on drop.
struct Server {
    kafka_addr: String,
    serve: Serve,
}

impl Server {
    fn start() -> Server {
        let serve = Serve::start(&[]);
        Server {
            kafka_addr: serve.field("kafka_addr"),
            serve,
        }
    }

    fn log(&self) -> String {
        self.serve.log_text()
    }

    /// Runs `spate ARGS` against this server with `stdin` as input.
    fn run(&self, args: &[&str], stdin: &[u8]) -> Run {
        let mut command = Command::new(env!("CARGO_BIN_EXE_spate"));
        command
            .args(args)
            .env("SPATE_BROKERS", &self.kafka_addr)
            // No connection profile of the machine may leak in (`spate profile`).
            .env("XDG_CONFIG_HOME", self.serve.config_home());
        let output = run_to_end(command, stdin, COMMAND_DEADLINE).unwrap_or_else(|_| {
            panic!(
                "`spate {}` did not finish within {COMMAND_DEADLINE:?}; server log:\n{}",
                args.join(" "),
                self.log()
            )
        });
        Run {
            args: args.join(" "),
            status: output.status,
            stdout: String::from_utf8(output.stdout).expect("utf-8 stdout"),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }

    /// Runs a command that must succeed.
    fn ok(&self, args: &[&str]) -> Run {
        let run = self.run(args, b"");
        assert!(
            run.status.success(),
            "`spate {}` failed ({}):\n{}\nserver log:\n{}",
            run.args,
            run.status,
            run.stderr,
            self.log()
        );
        run
    }

    /// Runs a command that must fail, returning its stderr.
    fn fails(&self, args: &[&str]) -> String {
        let run = self.run(args, b"");
        assert!(
            !run.status.success(),
            "`spate {}` succeeded but should fail:\n{}",
            run.args,
            run.stdout
        );
        run.stderr
    }

    /// Produces `lines` (`KEY:VALUE` each) to `topic`.
    fn produce(&self, topic: &str, lines: &str) {
        let run = self.run(
            &["produce", topic, "--key-separator", ":"],
            lines.as_bytes(),
        );
        assert!(run.status.success(), "produce failed: {}", run.stderr);
    }

    fn describe(&self, group: &str) -> Value {
        self.ok(&["group", "describe", group, "--format", "json"])
            .json()
    }

    /// Describes `group` until `done` holds for the description, or panics at the deadline.
    fn wait_for_group(&self, group: &str, what: &str, done: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + GROUP_DEADLINE;
        loop {
            let run = self.run(&["group", "describe", group, "--format", "json"], b"");
            if run.status.success() {
                let description = run.json();
                if done(&description) {
                    return description;
                }
                if Instant::now() > deadline {
                    panic!("group {group} not {what} within {GROUP_DEADLINE:?}: {description}");
                }
            } else if Instant::now() > deadline {
                panic!(
                    "group {group} not {what} within {GROUP_DEADLINE:?}: {}",
                    run.stderr
                );
            }
            std::thread::sleep(POLL_INTERVAL);
        }
    }

    /// Fails the test on an ERROR line in the server log.
    fn assert_no_errors_logged(&self) {
        let log = self.serve.log.lock().expect("log");
        let errors: Vec<&String> = log.iter().filter(|l| l.contains(" ERROR ")).collect();
        assert!(errors.is_empty(), "server logged errors: {errors:#?}");
    }
}

/// Waits for `child` to exit, at most `limit`; `None` (and the child killed) past it.
fn wait_exit(child: &mut Child, limit: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().expect("wait") {
            return Some(status);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

struct Run {
    args: String,
    status: ExitStatus,
    stdout: String,
    stderr: String,
}

impl Run {
    fn json(&self) -> Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| {
            panic!(
                "`spate {}` printed no JSON ({e}): {}",
                self.args, self.stdout
            )
        })
    }
}

/// A kcat balanced consumer (`-G`), killed on drop if still running.
struct Kcat {
    child: Child,
}

impl Kcat {
    fn spawn(server: &Server, group: &str, topic: &str, extra: &[&str]) -> Kcat {
        let child = Command::new("kcat")
            .args([
                "-b",
                &server.kafka_addr,
                "-G",
                group,
                topic,
                "-o",
                "beginning",
                "-q",
            ])
            .args(["-X", "client.id=spate-test-kcat"])
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start kcat (apt-get install kcat)");
        Kcat { child }
    }

    /// Waits for kcat to exit by itself; returns its stdout lines.
    fn wait(mut self) -> Vec<String> {
        let stdout = drain(self.child.stdout.take().expect("stdout"));
        let stderr = drain(self.child.stderr.take().expect("stderr"));
        let status = wait_exit(&mut self.child, COMMAND_DEADLINE)
            .unwrap_or_else(|| panic!("kcat did not finish within {COMMAND_DEADLINE:?}"));
        let stderr = String::from_utf8_lossy(&stderr.join().expect("stderr")).into_owned();
        assert!(status.success(), "kcat failed ({status}): {stderr}");
        String::from_utf8(stdout.join().expect("stdout"))
            .expect("utf-8")
            .lines()
            .map(str::to_string)
            .collect()
    }

    /// Asks kcat to stop (SIGTERM: it leaves the group cleanly) and waits for it.
    fn stop(mut self) {
        let pid = self.child.id().to_string();
        let status = Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -TERM {pid} failed");
        let _stdout = drain(self.child.stdout.take().expect("stdout"));
        let _stderr = drain(self.child.stderr.take().expect("stderr"));
        wait_exit(&mut self.child, COMMAND_DEADLINE)
            .unwrap_or_else(|| panic!("kcat did not stop within {COMMAND_DEADLINE:?}"));
    }
}

impl Drop for Kcat {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn offsets(description: &Value) -> &Vec<Value> {
    description["offsets"].as_array().expect("offsets")
}

/// One partition row of `describe --format json`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct PartitionRow {
    partition: i64,
    current: Option<i64>,
    end: Option<i64>,
    lag: Option<i64>,
}

fn partition_rows(description: &Value) -> Vec<PartitionRow> {
    offsets(description)
        .iter()
        .map(|r| PartitionRow {
            partition: r["partition"].as_i64().expect("partition"),
            current: r["current_offset"].as_i64(),
            end: r["log_end_offset"].as_i64(),
            lag: r["lag"].as_i64(),
        })
        .collect()
}

fn keyed_lines(prefix: &str, count: usize) -> String {
    (0..count)
        .map(|i| format!("{prefix}-{i}:value {i}\n"))
        .collect()
}

/// The `new_offset` of each partition in a `reset-offsets --format json` plan.
fn planned(run: &Run) -> Vec<(i64, i64)> {
    run.json()["offsets"]
        .as_array()
        .expect("offsets")
        .iter()
        .map(|o| {
            (
                o["partition"].as_i64().expect("partition"),
                o["new_offset"].as_i64().expect("new offset"),
            )
        })
        .collect()
}

#[test]
fn describe_shows_lag_and_reset_offsets_moves_committed_offsets() {
    let server = Server::start();
    server.ok(&["topic", "create", "orders", "--partitions", "3"]);
    server.produce("orders", &keyed_lines("a", 30));

    // A real consumer reads everything and commits on its way out.
    let consumed = Kcat::spawn(&server, "lagging", "orders", &["-e"]).wait();
    assert_eq!(consumed.len(), 30, "{consumed:?}");
    let description = server.wait_for_group("lagging", "empty with offsets committed", |d| {
        d["state"] == "Empty"
            && offsets(d).len() == 3
            && partition_rows(d).iter().all(|r| r.lag == Some(0))
    });
    assert_eq!(description["total_lag"], 0);
    assert_eq!(description["members"].as_array().map(Vec::len), Some(0));
    let ends: i64 = partition_rows(&description)
        .iter()
        .map(|r| r.end.expect("log end"))
        .sum();
    assert_eq!(ends, 30);

    // Listing: text, JSON and the state filter.
    let list = server.ok(&["group", "list"]).stdout;
    assert!(list.starts_with("GROUP"), "{list}");
    let row = list
        .lines()
        .find(|l| l.starts_with("lagging "))
        .unwrap_or_else(|| panic!("lagging not listed: {list}"));
    assert_eq!(
        row.split_whitespace().collect::<Vec<_>>(),
        ["lagging", "Empty", "classic", "consumer"]
    );
    let listed = server.ok(&["group", "list", "--format", "json"]).json();
    let listed = listed
        .as_array()
        .expect("array")
        .iter()
        .find(|g| g["group"] == "lagging")
        .expect("lagging listed");
    assert_eq!(listed["state"], "Empty");
    assert_eq!(listed["protocol_type"], "consumer");
    let empty = server.ok(&["group", "list", "--state", "empty"]).stdout;
    assert!(empty.contains("lagging"), "{empty}");
    let stable = server.ok(&["group", "list", "--state", "Stable"]).stdout;
    assert!(!stable.contains("lagging"), "{stable}");
    assert!(
        server
            .fails(&["group", "list", "--state", "busy"])
            .contains("unknown group state")
    );

    // More records while no consumer runs: the lag is exactly what was added.
    server.produce("orders", &keyed_lines("b", 9));
    let description = server.describe("lagging");
    assert_eq!(description["total_lag"], 9, "{description}");
    for row in partition_rows(&description) {
        let (current, end) = (row.current.expect("committed"), row.end.expect("log end"));
        assert_eq!(row.lag, Some(end - current), "{row:?}");
    }
    let text = server.ok(&["group", "describe", "lagging"]).stdout;
    assert!(
        text.contains("GROUP    TOPIC   PARTITION  CURRENT-OFFSET  LOG-END-OFFSET  LAG"),
        "{text}"
    );
    assert!(text.contains("State: Empty"), "{text}");
    assert!(text.contains("TotalLag: 9"), "{text}");
    assert!(
        server
            .fails(&["group", "describe", "no-such-group"])
            .contains("does not exist")
    );

    // A dry run (the default) prints the plan and commits nothing.
    let dry = server.ok(&[
        "group",
        "reset-offsets",
        "lagging",
        "--topic",
        "orders",
        "--to-earliest",
    ]);
    assert!(dry.stdout.starts_with("GROUP"), "{}", dry.stdout);
    assert!(dry.stderr.contains("dry run"), "{}", dry.stderr);
    assert_eq!(server.describe("lagging")["total_lag"], 9);

    let run = server.ok(&[
        "group",
        "reset-offsets",
        "lagging",
        "--topic",
        "orders",
        "--to-earliest",
        "--execute",
        "--format",
        "json",
    ]);
    assert_eq!(run.json()["executed"], true);
    assert_eq!(planned(&run), [(0, 0), (1, 0), (2, 0)]);
    let description = server.describe("lagging");
    assert_eq!(description["total_lag"], 39, "{description}");
    assert!(
        partition_rows(&description)
            .iter()
            .all(|r| r.current == Some(0) && r.lag == r.end)
    );

    // --shift-by on one partition; --to-offset, --to-datetime and --by-duration clamp.
    server.ok(&[
        "group",
        "reset-offsets",
        "lagging",
        "--topic",
        "orders:0",
        "--shift-by",
        "2",
        "--execute",
    ]);
    let rows = partition_rows(&server.describe("lagging"));
    let p0 = rows.iter().find(|r| r.partition == 0).expect("partition 0");
    assert_eq!(p0.current, Some(2.min(p0.end.expect("end"))));
    let end_of = |p: i64| {
        rows.iter()
            .find(|r| r.partition == p)
            .and_then(|r| r.end)
            .expect("end")
    };
    let json_plan = |extra: &[&str]| {
        let mut args = vec!["group", "reset-offsets", "lagging", "--format", "json"];
        args.extend_from_slice(extra);
        planned(&server.ok(&args))
    };
    assert_eq!(
        json_plan(&["--topic", "orders:1", "--to-offset", "1000000"]),
        [(1, end_of(1))]
    );
    assert_eq!(
        json_plan(&["--topic", "orders:0,2", "--shift-by", "-5"]),
        [(0, 0), (2, 0)]
    );
    assert_eq!(
        json_plan(&["--topic", "orders", "--to-datetime", "2999-01-01T00:00:00Z"]),
        [(0, end_of(0)), (1, end_of(1)), (2, end_of(2))]
    );
    assert_eq!(
        json_plan(&["--all-topics", "--to-datetime", "2000-01-01T00:00:00+02:00"]),
        [(0, 0), (1, 0), (2, 0)]
    );
    assert_eq!(
        json_plan(&["--topic", "orders", "--by-duration", "PT1H"]),
        [(0, 0), (1, 0), (2, 0)]
    );
    assert_eq!(
        json_plan(&["--topic", "orders:2", "--to-latest"]),
        [(2, end_of(2))]
    );
    assert!(
        server
            .fails(&[
                "group",
                "reset-offsets",
                "lagging",
                "--topic",
                "orders:9",
                "--to-earliest"
            ])
            .contains("no partition 9")
    );
    assert!(
        server
            .fails(&[
                "group",
                "reset-offsets",
                "lagging",
                "--topic",
                "nope",
                "--to-earliest"
            ])
            .contains("does not exist")
    );
    assert!(
        server
            .fails(&[
                "group",
                "reset-offsets",
                "fresh",
                "--topic",
                "orders",
                "--shift-by",
                "1"
            ])
            .contains("no committed offset")
    );
    let both = server.fails(&[
        "group",
        "reset-offsets",
        "lagging",
        "--topic",
        "orders",
        "--to-earliest",
        "--dry-run",
        "--execute",
    ]);
    assert!(both.contains("cannot be used with"), "{both}");
    let two_targets = server.fails(&[
        "group",
        "reset-offsets",
        "lagging",
        "--topic",
        "orders",
        "--to-earliest",
        "--to-latest",
    ]);
    assert!(two_targets.contains("cannot be used with"), "{two_targets}");
    assert!(
        server
            .fails(&[
                "group",
                "reset-offsets",
                "lagging",
                "--topic",
                "orders",
                "--by-duration",
                "10x"
            ])
            .contains("bad duration")
    );

    // A group that does not exist yet gets offsets too (the plan is committed as is).
    server.ok(&[
        "group",
        "reset-offsets",
        "fresh",
        "--topic",
        "orders:1",
        "--to-latest",
        "--execute",
    ]);
    let fresh = server.describe("fresh");
    assert_eq!(
        partition_rows(&fresh),
        [PartitionRow {
            partition: 1,
            current: Some(end_of(1)),
            end: Some(end_of(1)),
            lag: Some(0),
        }]
    );

    // Deleting empty groups.
    let deleted = server.ok(&["group", "delete", "lagging", "fresh"]).stdout;
    assert_eq!(deleted, "deleted group lagging\ndeleted group fresh\n");
    let list = server.ok(&["group", "list"]).stdout;
    assert!(
        !list.contains("lagging") && !list.contains("fresh"),
        "{list}"
    );
    assert!(
        server
            .fails(&["group", "describe", "lagging"])
            .contains("does not exist")
    );
    let again = server.fails(&["group", "delete", "lagging"]);
    assert!(again.contains("does not exist"), "{again}");
    server.assert_no_errors_logged();
}

#[test]
fn groups_with_active_members_cannot_be_deleted_or_reset() {
    let server = Server::start();
    server.ok(&["topic", "create", "live", "--partitions", "2"]);
    server.produce("live", &keyed_lines("k", 20));

    let consumer = Kcat::spawn(&server, "active", "live", &[]);
    let description = server.wait_for_group("active", "stable with one member", |d| {
        d["state"] == "Stable"
            && d["members"].as_array().is_some_and(|m| m.len() == 1)
            && d["members"][0]["assignment"][0]["partitions"]
                .as_array()
                .is_some_and(|p| p.len() == 2)
    });
    // The member's assignment, decoded from the ConsumerProtocolAssignment bytes.
    let member = &description["members"][0];
    assert_eq!(member["client_id"], "spate-test-kcat");
    assert_eq!(member["assignment"][0]["topic"], "live");
    assert_eq!(description["protocol_type"], "consumer");
    assert_eq!(description["type"], "classic");
    assert!(
        ["range", "roundrobin", "cooperative-sticky"]
            .contains(&description["protocol"].as_str().expect("protocol")),
        "{description}"
    );
    for row in offsets(&description) {
        assert_eq!(row["consumer_id"], member["member_id"], "{row}");
        assert_eq!(row["client_id"], "spate-test-kcat");
        assert!(
            row["host"]
                .as_str()
                .is_some_and(|h| h.contains("127.0.0.1"))
        );
    }
    let text = server.ok(&["group", "describe", "active"]).stdout;
    assert!(text.contains("spate-test-kcat"), "{text}");
    assert!(text.contains("State: Stable"), "{text}");
    let stable = server.ok(&["group", "list", "--state", "stable"]).stdout;
    assert!(stable.contains("active"), "{stable}");

    let refused = server.fails(&["group", "delete", "active"]);
    assert!(
        refused.contains("NON_EMPTY_GROUP") && refused.contains("active members"),
        "{refused}"
    );
    let refused = server.fails(&[
        "group",
        "reset-offsets",
        "active",
        "--topic",
        "live",
        "--to-earliest",
        "--execute",
    ]);
    assert!(
        refused.contains("Stable") && refused.contains("stop its consumers"),
        "{refused}"
    );

    // Once the consumer leaves, the group is Empty and can be deleted.
    consumer.stop();
    server.wait_for_group("active", "empty", |d| d["state"] == "Empty");
    server.ok(&["group", "delete", "active"]);
    assert!(!server.ok(&["group", "list"]).stdout.contains("active"));
    server.assert_no_errors_logged();
}

/// A KIP-848 consumer (`group.protocol=consumer`) from confluent-kafka in the test venv:
/// reads `count` records, commits, prints `consumed`, and leaves when stdin closes.
const KIP848_CONSUMER: &str = r#"
import sys
from confluent_kafka import Consumer
brokers, group, topic, count = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
c = Consumer({
    "bootstrap.servers": brokers,
    "group.id": group,
    "group.protocol": "consumer",
    "auto.offset.reset": "earliest",
    "enable.auto.commit": False,
    "client.id": "spate-test-kip848",
})
c.subscribe([topic])
n = 0
while n < count:
    m = c.poll(0.5)
    if m is not None and not m.error():
        n += 1
c.commit(asynchronous=False)
print("consumed", n, flush=True)
sys.stdin.read()
c.close()
"#;

fn venv_python() -> std::path::PathBuf {
    let home = std::env::var_os("HOME").expect("HOME");
    std::path::Path::new(&home).join(".cache/spate/venv/bin/python")
}

#[test]
fn kip848_consumer_groups_are_described_with_consumer_group_describe() {
    let server = Server::start();
    server.ok(&["topic", "create", "modern", "--partitions", "3"]);
    server.produce("modern", &keyed_lines("m", 24));

    let mut consumer = Command::new(venv_python())
        .args([
            "-c",
            KIP848_CONSUMER,
            &server.kafka_addr,
            "next-gen",
            "modern",
            "24",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the confluent-kafka consumer from the test venv");
    let stdout = consumer.stdout.take().expect("stdout");
    let stderr = drain(consumer.stderr.take().expect("stderr"));
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            let _ = tx.send(line);
        }
    });
    match rx.recv_timeout(GROUP_DEADLINE) {
        Ok(line) => assert_eq!(line, "consumed 24"),
        Err(_) => {
            let _ = consumer.kill();
            let _ = consumer.wait();
            panic!(
                "the KIP-848 consumer did not consume 24 records within {GROUP_DEADLINE:?}: {}",
                String::from_utf8_lossy(&stderr.join().expect("stderr"))
            );
        }
    }

    let description = server.wait_for_group("next-gen", "stable with one member", |d| {
        d["state"] == "Stable"
            && d["members"].as_array().is_some_and(|m| m.len() == 1)
            && d["members"][0]["assignment"][0]["partitions"]
                .as_array()
                .is_some_and(|p| p.len() == 3)
    });
    assert_eq!(description["type"], "consumer", "{description}");
    assert_eq!(description["members"][0]["client_id"], "spate-test-kip848");
    assert_eq!(description["total_lag"], 0, "{description}");
    for row in partition_rows(&description) {
        assert!(row.current.is_some() && row.current == row.end, "{row:?}");
    }
    let listed = server.ok(&["group", "list", "--format", "json"]).json();
    assert!(
        listed
            .as_array()
            .expect("array")
            .iter()
            .any(|g| g["group"] == "next-gen" && g["type"] == "consumer"),
        "{listed}"
    );
    let refused = server.fails(&["group", "delete", "next-gen"]);
    assert!(refused.contains("NON_EMPTY_GROUP"), "{refused}");

    // Closing stdin makes the consumer leave the group.
    drop(consumer.stdin.take());
    let status = wait_exit(&mut consumer, COMMAND_DEADLINE).expect("consumer exits");
    assert!(
        status.success(),
        "consumer failed: {}",
        String::from_utf8_lossy(&stderr.join().expect("stderr"))
    );
    server.wait_for_group("next-gen", "empty", |d| d["state"] == "Empty");
    server.produce("modern", &keyed_lines("n", 4));
    assert_eq!(server.describe("next-gen")["total_lag"], 4);
    server.ok(&[
        "group",
        "reset-offsets",
        "next-gen",
        "--all-topics",
        "--to-earliest",
        "--execute",
    ]);
    assert_eq!(server.describe("next-gen")["total_lag"], 28);
    server.ok(&["group", "delete", "next-gen"]);
    assert!(
        server
            .fails(&["group", "describe", "next-gen"])
            .contains("does not exist")
    );
    server.assert_no_errors_logged();
}
