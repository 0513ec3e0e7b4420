//! The `spate serve` the CLI's integration tests share: started on free ports in a temporary
//! directory with the test's flags, its log collected (for failure messages and log checks),
//! ready once it logs "spate is ready", killed on drop.

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long the server may take to start.
const START_DEADLINE: Duration = Duration::from_secs(60);

/// A running `spate serve`.
pub struct Serve {
    child: Child,
    /// The "spate is ready" line.
    pub ready: String,
    /// Every line the server logged so far.
    pub log: Arc<Mutex<Vec<String>>>,
    _data_dir: tempfile::TempDir,
    config_home: tempfile::TempDir,
}

impl Serve {
    /// Starts `spate serve` on free ports with `flags` and waits until it is ready.
    pub fn start(flags: &[&str]) -> Serve {
        let data_dir = tempfile::tempdir().expect("temp dir");
        let mut child = Command::new(env!("CARGO_BIN_EXE_spate"))
            .args(["serve", "--data-dir"])
            .arg(data_dir.path())
            .args([
                "--kafka-listen",
                "127.0.0.1:0",
                "--registry-listen",
                "127.0.0.1:0",
                "--http-listen",
                "127.0.0.1:0",
                // Tests run in parallel; the in-process Connect worker has its own tests.
                "--connect-listen",
                "off",
                "--sql-listen",
                "off",
            ])
            .args(flags)
            // No SPATE_* setting of the machine may leak in: every test says what it uses.
            .env_clear()
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start spate serve");
        let stderr = child.stderr.take().expect("stderr");
        let log = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = mpsc::channel();
        {
            let log = Arc::clone(&log);
            // Drains stderr for the server's whole life, so it never blocks on a full pipe.
            std::thread::spawn(move || {
                for line in BufReader::new(stderr).lines() {
                    let Ok(line) = line else { break };
                    log.lock().expect("log").push(line.clone());
                    let _ = tx.send(line);
                }
            });
        }
        let deadline = Instant::now() + START_DEADLINE;
        let ready = loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(line) if line.contains("spate is ready") => break line,
                Ok(_) => continue,
                Err(_) => {
                    let _ = child.kill();
                    panic!(
                        "spate serve did not report ready within {START_DEADLINE:?}; stderr:\n{}",
                        log.lock().expect("log").join("\n")
                    );
                }
            }
        };
        Serve {
            child,
            ready,
            log,
            _data_dir: data_dir,
            config_home: tempfile::tempdir().expect("config home"),
        }
    }

    /// A `NAME=value` field of the ready line (`kafka_addr`, `listeners`, ...).
    pub fn field(&self, name: &str) -> String {
        self.ready
            .split_whitespace()
            .find_map(|token| token.strip_prefix(&format!("{name}=")))
            .map(|v| v.trim_matches('"').to_string())
            .unwrap_or_else(|| panic!("no {name}= in the ready line: {}", self.ready))
    }

    /// An empty directory for commands' XDG_CONFIG_HOME, so no connection profile of the
    /// machine applies to them.
    #[allow(dead_code)]
    pub fn config_home(&self) -> &std::path::Path {
        self.config_home.path()
    }

    /// The server's log so far.
    pub fn log_text(&self) -> String {
        self.log.lock().expect("log").join("\n")
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Reads a pipe to its end on a thread (so a child never blocks writing to it).
pub fn drain(mut pipe: impl Read + Send + 'static) -> std::thread::JoinHandle<Vec<u8>> {
    std::thread::spawn(move || {
        let mut out = Vec::new();
        let _ = pipe.read_to_end(&mut out);
        out
    })
}

/// What a finished command printed.
pub struct Output {
    /// How it exited.
    pub status: std::process::ExitStatus,
    /// Its standard output.
    pub stdout: Vec<u8>,
    /// Its standard error.
    pub stderr: Vec<u8>,
}

/// Runs `command` to its end with `stdin` as input (output drained as it comes, so it never
/// blocks on a pipe). A command still running after `limit` is killed: `Err` with its stderr.
pub fn run_to_end(mut command: Command, stdin: &[u8], limit: Duration) -> Result<Output, String> {
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start spate");
    let mut input = child.stdin.take().expect("stdin");
    let stdin = stdin.to_vec();
    let writer = std::thread::spawn(move || {
        use std::io::Write;
        // The command may exit before reading everything (e.g. on a bad flag).
        let _ = input.write_all(&stdin);
    });
    let stdout = drain(child.stdout.take().expect("stdout"));
    let stderr = drain(child.stderr.take().expect("stderr"));
    let deadline = Instant::now() + limit;
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            let stderr = stderr.join().expect("stderr");
            return Err(String::from_utf8_lossy(&stderr).into_owned());
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let _ = writer.join();
    Ok(Output {
        status,
        stdout: stdout.join().expect("stdout"),
        stderr: stderr.join().expect("stderr"),
    })
}

/// What a `spate` command did: its arguments (for messages), exit status and output.
// Each test crate includes this module and uses part of it.
#[allow(dead_code)]
pub struct Run {
    /// The arguments, space-separated.
    pub args: String,
    /// How it exited.
    pub status: std::process::ExitStatus,
    /// Its standard output.
    pub stdout: Vec<u8>,
    /// Its standard error.
    pub stderr: String,
}

// Each test crate includes this module and uses part of it.
#[allow(dead_code)]
impl Run {
    /// The run of `spate ARGS` that ended with `output`.
    pub fn finished(args: &[&str], output: Output) -> Run {
        Run {
            args: args.join(" "),
            status: output.status,
            stdout: output.stdout,
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }

    /// Standard output as text.
    pub fn stdout(&self) -> String {
        String::from_utf8(self.stdout.clone()).expect("utf-8 stdout")
    }

    /// Standard output's lines.
    pub fn lines(&self) -> Vec<String> {
        self.stdout().lines().map(str::to_string).collect()
    }

    /// Standard output as one JSON document.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.stdout).expect("one JSON document")
    }

    /// Standard output as one JSON document per line.
    pub fn json_lines(&self) -> Vec<serde_json::Value> {
        self.lines()
            .iter()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("bad JSON line {l:?}: {e}")))
            .collect()
    }
}
