//! End to end over secured listeners: the real `spate serve` with a PLAINTEXT listener, a
//! SASL_SSL listener, a SASL_PLAINTEXT listener and an SSL listener (client certificates
//! requested), driven by the `spate` commands as a user runs them, with `--security-protocol`,
//! `--sasl-*` and `--tls-*`.
//!
//! Certificates are made here with `rcgen`: a CA, the server's certificate for 127.0.0.1 and
//! localhost, and a client certificate for `CN=alice,O=acme`. The SCRAM user is created over
//! PLAINTEXT with `spate user create`; everything else then runs over the secured listeners.
//! ACL enforcement is off (the default), so these tests check authentication and the ACL admin
//! commands, not authorisation. Waiting is always on a condition with a deadline.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{Command, ExitStatus};
use std::time::{Duration, Instant};

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose,
};

/// How long one command may take.
mod common;
use common::{Serve, run_to_end};

const COMMAND_DEADLINE: Duration = Duration::from_secs(120);
/// How long a log line may take to arrive after the event that writes it.
const LOG_DEADLINE: Duration = Duration::from_secs(30);

const USER: &str = "alice";
const PASSWORD: &str = "alice-secret";

fn spate() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_spate"));
    // No SPATE_* setting of the machine may leak in: every test says what it uses.
    command.env_clear();
    command
}

/// The test PKI, as PEM files in a temporary directory.
struct Pki {
    dir: tempfile::TempDir,
}

impl Pki {
    fn new() -> Pki {
        let dir = tempfile::tempdir().expect("temp dir");
        let ca_key = KeyPair::generate().expect("CA key");
        let mut ca = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca.distinguished_name
            .push(DnType::CommonName, "Spate Test CA");
        ca.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let ca_cert = ca.self_signed(&ca_key).expect("CA certificate");
        let issuer = Issuer::new(ca, ca_key);

        let leaf = |names: Vec<String>, subject: &[(DnType, &str)], usage, stem: &str| {
            let key = KeyPair::generate().expect("key");
            let mut params = CertificateParams::new(names).expect("params");
            // Without rcgen's default CN, so the subject has exactly these, in this order.
            params.distinguished_name = DistinguishedName::new();
            for (kind, value) in subject {
                params.distinguished_name.push(kind.clone(), *value);
            }
            params.extended_key_usages = vec![usage];
            params.use_authority_key_identifier_extension = true;
            let cert = params.signed_by(&key, &issuer).expect("signed");
            std::fs::write(dir.path().join(format!("{stem}.pem")), cert.pem()).expect("write");
            std::fs::write(dir.path().join(format!("{stem}.key")), key.serialize_pem())
                .expect("write");
        };
        leaf(
            vec!["127.0.0.1".to_string(), "localhost".to_string()],
            &[(DnType::CommonName, "localhost")],
            ExtendedKeyUsagePurpose::ServerAuth,
            "server",
        );
        leaf(
            Vec::new(),
            // As openssl's -subj /O=acme/CN=alice: Kafka names it CN=alice,O=acme.
            &[
                (DnType::OrganizationName, "acme"),
                (DnType::CommonName, "alice"),
            ],
            ExtendedKeyUsagePurpose::ClientAuth,
            "client",
        );
        std::fs::write(dir.path().join("ca.pem"), ca_cert.pem()).expect("write");
        Pki { dir }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn arg(&self, name: &str) -> String {
        self.path(name).display().to_string()
    }
}

/// A running `spate serve` with one listener of each protocol, killed on drop.
struct Server {
    /// Listener name to `HOST:PORT`.
    listeners: BTreeMap<String, String>,
    serve: Serve,
}

impl Server {
    fn start(pki: &Pki) -> Server {
        let serve = Serve::start(&[
            "--listener",
            "SECURE=SASL_SSL://127.0.0.1:0",
            "--listener",
            "INSIDE=SASL_PLAINTEXT://127.0.0.1:0",
            "--listener",
            "MTLS=SSL://127.0.0.1:0",
            "--sasl-mechanisms",
            "SCRAM-SHA-512,SCRAM-SHA-256,PLAIN",
            "--tls-cert",
            &pki.arg("server.pem"),
            "--tls-key",
            &pki.arg("server.key"),
            "--tls-client-ca",
            &pki.arg("ca.pem"),
            "--tls-client-auth",
            "requested",
            "--log",
            "info,spate_server::kafka=debug",
        ]);
        // listeners=PLAINTEXT:PLAINTEXT://127.0.0.1:1,SECURE:SASL_SSL://127.0.0.1:2,...
        let listeners = serve
            .field("listeners")
            .split(',')
            .map(|entry| {
                let (name, url) = entry.split_once(':').expect("NAME:URL");
                let (_, address) = url.split_once("://").expect("PROTOCOL://ADDRESS");
                (name.to_string(), address.to_string())
            })
            .collect();
        Server { listeners, serve }
    }

    fn address(&self, listener: &str) -> &str {
        self.listeners
            .get(listener)
            .unwrap_or_else(|| panic!("no listener {listener} in {:?}", self.listeners))
    }

    /// Runs `spate ARGS` against `listener` with `env` set and `stdin` as input.
    fn run<S: AsRef<str>>(
        &self,
        listener: &str,
        env: &[(&str, &str)],
        args: &[S],
        stdin: &[u8],
    ) -> Run {
        let args: Vec<&str> = args.iter().map(AsRef::as_ref).collect();
        let mut command = spate();
        command
            .args(&args)
            .env("SPATE_BROKERS", self.address(listener));
        for (name, value) in env {
            command.env(name, value);
        }
        let output = run_to_end(command, stdin, COMMAND_DEADLINE).unwrap_or_else(|_| {
            panic!(
                "`spate {}` did not finish within {COMMAND_DEADLINE:?}; server log:\n{}",
                args.join(" "),
                self.log_text()
            )
        });
        Run {
            args: args.join(" "),
            status: output.status,
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }

    /// Runs a command that must succeed.
    fn ok<S: AsRef<str>>(
        &self,
        listener: &str,
        env: &[(&str, &str)],
        args: &[S],
        stdin: &[u8],
    ) -> Run {
        let run = self.run(listener, env, args, stdin);
        assert!(
            run.status.success(),
            "`spate {}` on {listener} failed ({}):\n{}\nserver log:\n{}",
            run.args,
            run.status,
            run.stderr,
            self.log_text()
        );
        run
    }

    fn log_text(&self) -> String {
        self.serve.log_text()
    }

    /// Waits until a server log line contains every one of `needles`.
    fn wait_for_log(&self, needles: &[&str]) {
        let deadline = Instant::now() + LOG_DEADLINE;
        while Instant::now() < deadline {
            let found = self
                .serve
                .log
                .lock()
                .expect("log")
                .iter()
                .any(|line| needles.iter().all(|n| line.contains(n)));
            if found {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!(
            "no server log line with {needles:?} within {LOG_DEADLINE:?}:\n{}",
            self.log_text()
        );
    }
}

struct Run {
    args: String,
    status: ExitStatus,
    stdout: String,
    stderr: String,
}

/// The rows of an ACL table (header dropped), each split into its cells.
fn acl_rows(stdout: &str) -> Vec<Vec<String>> {
    let mut lines = stdout.lines();
    let header = lines.next().unwrap_or_default();
    assert!(
        header.starts_with("RESOURCE-TYPE"),
        "not an ACL table:\n{stdout}"
    );
    lines
        .map(|line| line.split_whitespace().map(str::to_string).collect())
        .collect()
}

fn row(cells: &[&str]) -> Vec<String> {
    cells.iter().map(|c| c.to_string()).collect()
}

/// Creates the SCRAM user over PLAINTEXT, as an administrator would before locking down.
fn create_user(server: &Server, mechanism: &str) {
    server.ok(
        "PLAINTEXT",
        &[],
        &[
            "user",
            "create",
            USER,
            "--mechanism",
            mechanism,
            "--password-stdin",
        ],
        format!("{PASSWORD}\n").as_bytes(),
    );
}

/// The environment of a SASL_SSL client: the password from SPATE_SASL_PASSWORD, as the docs
/// recommend, and the rest as flags would give it.
fn sasl_ssl_env(ca: &str, password: &str) -> Vec<(&'static str, String)> {
    vec![
        ("SPATE_SECURITY_PROTOCOL", "SASL_SSL".to_string()),
        ("SPATE_SASL_MECHANISM", "SCRAM-SHA-512".to_string()),
        ("SPATE_SASL_USERNAME", USER.to_string()),
        ("SPATE_SASL_PASSWORD", password.to_string()),
        ("SPATE_TLS_CA_FILE", ca.to_string()),
    ]
}

fn borrowed<'a>(env: &'a [(&'a str, String)]) -> Vec<(&'a str, &'a str)> {
    env.iter().map(|(k, v)| (*k, v.as_str())).collect()
}

#[test]
fn sasl_ssl_scram_runs_topic_produce_consume_group_and_acl_commands() {
    let pki = Pki::new();
    let server = Server::start(&pki);
    create_user(&server, "SCRAM-SHA-512");
    let ca = pki.arg("ca.pem");
    let env = sasl_ssl_env(&ca, PASSWORD);
    let env = borrowed(&env);
    let secure = |args: &[&str], stdin: &[u8]| server.ok("SECURE", &env, args, stdin);

    let created = secure(&["topic", "create", "orders", "--partitions", "2"], b"");
    assert!(
        created.stdout.contains("created topic orders"),
        "{}",
        created.stdout
    );
    secure(&["produce", "orders"], b"one\ntwo\nthree\n");
    let consumed = secure(
        &["consume", "orders", "--from-beginning", "--exit-at-end"],
        b"",
    );
    let mut values: Vec<&str> = consumed.stdout.lines().collect();
    values.sort_unstable();
    assert_eq!(values, ["one", "three", "two"]);
    secure(&["group", "list"], b"");
    server.wait_for_log(&["authenticated", "User:alice", "SCRAM-SHA-512"]);

    // ACLs: literal and prefixed, listed, then removed.
    let added = secure(
        &[
            "acl",
            "add",
            "--allow-principal",
            "User:bob",
            "--operation",
            "read",
            "--operation",
            "Describe",
            "--topic",
            "orders",
        ],
        b"",
    );
    assert_eq!(acl_rows(&added.stdout).len(), 2, "{}", added.stdout);
    secure(
        &[
            "acl",
            "add",
            "--allow-principal",
            "User:bob",
            "--producer",
            "--topic",
            "logs-",
            "--resource-pattern-type",
            "prefixed",
        ],
        b"",
    );
    secure(
        &[
            "acl",
            "add",
            "--deny-principal",
            "User:mallory",
            "--deny-host",
            "10.0.0.9",
            "--operation",
            "all",
            "--group",
            "payments",
        ],
        b"",
    );
    let listed = acl_rows(&secure(&["acl", "list"], b"").stdout);
    for expected in [
        row(&[
            "TOPIC", "orders", "LITERAL", "User:bob", "*", "READ", "ALLOW",
        ]),
        row(&[
            "TOPIC", "orders", "LITERAL", "User:bob", "*", "DESCRIBE", "ALLOW",
        ]),
        row(&[
            "TOPIC", "logs-", "PREFIXED", "User:bob", "*", "WRITE", "ALLOW",
        ]),
        row(&[
            "TOPIC", "logs-", "PREFIXED", "User:bob", "*", "CREATE", "ALLOW",
        ]),
        row(&[
            "TOPIC", "logs-", "PREFIXED", "User:bob", "*", "DESCRIBE", "ALLOW",
        ]),
        row(&[
            "GROUP",
            "payments",
            "LITERAL",
            "User:mallory",
            "10.0.0.9",
            "ALL",
            "DENY",
        ]),
    ] {
        assert!(listed.contains(&expected), "{expected:?} not in {listed:?}");
    }
    assert_eq!(listed.len(), 6, "{listed:?}");

    // Filters: the prefixed ACLs only; those that apply to one topic (match).
    let prefixed =
        acl_rows(&secure(&["acl", "list", "--resource-pattern-type", "prefixed"], b"").stdout);
    assert_eq!(prefixed.len(), 3, "{prefixed:?}");
    assert!(prefixed.iter().all(|r| r[2] == "PREFIXED"));
    let applying = acl_rows(
        &secure(
            &[
                "acl",
                "list",
                "--topic",
                "logs-app",
                "--resource-pattern-type",
                "match",
            ],
            b"",
        )
        .stdout,
    );
    assert_eq!(applying.len(), 3, "{applying:?}");
    let mallory = acl_rows(&secure(&["acl", "list", "--principal", "User:mallory"], b"").stdout);
    assert_eq!(mallory.len(), 1, "{mallory:?}");

    // Remove refuses a filter that would remove everything, then removes what is named.
    let refused = server.run("SECURE", &env, &["acl", "remove"], b"");
    assert!(!refused.status.success());
    assert!(refused.stderr.contains("--force"), "{}", refused.stderr);
    let removed = secure(
        &[
            "acl",
            "remove",
            "--topic",
            "logs-",
            "--resource-pattern-type",
            "prefixed",
            "--operation",
            "write",
        ],
        b"",
    );
    assert_eq!(
        acl_rows(&removed.stdout),
        vec![row(&[
            "TOPIC", "logs-", "PREFIXED", "User:bob", "*", "WRITE", "ALLOW"
        ])]
    );
    let removed = secure(&["acl", "remove", "--principal", "User:bob"], b"");
    assert_eq!(acl_rows(&removed.stdout).len(), 4, "{}", removed.stdout);
    let removed = secure(&["acl", "remove", "--force"], b"");
    assert_eq!(
        acl_rows(&removed.stdout),
        vec![row(&[
            "GROUP",
            "payments",
            "LITERAL",
            "User:mallory",
            "10.0.0.9",
            "ALL",
            "DENY"
        ])]
    );
    assert!(acl_rows(&secure(&["acl", "list"], b"").stdout).is_empty());
}

#[test]
fn a_wrong_password_or_a_plaintext_client_fails_with_a_clear_error() {
    let pki = Pki::new();
    let server = Server::start(&pki);
    create_user(&server, "SCRAM-SHA-512");
    let ca = pki.arg("ca.pem");

    let env = sasl_ssl_env(&ca, "not-the-password");
    let wrong = server.run("SECURE", &borrowed(&env), &["topic", "list"], b"");
    assert!(!wrong.status.success(), "a wrong password must fail");
    assert!(
        wrong
            .stderr
            .contains("SASL/SCRAM-SHA-512 authentication to")
            && wrong.stderr.contains(
                "Authentication failed during authentication due to invalid credentials with \
                 SASL mechanism SCRAM-SHA-512"
            ),
        "{}",
        wrong.stderr
    );
    assert!(
        !wrong.stderr.contains("no broker reachable"),
        "{}",
        wrong.stderr
    );

    // A client that speaks PLAINTEXT to the SASL listener is told what to set.
    for listener in ["SECURE", "INSIDE"] {
        let plain = server.run(listener, &[], &["topic", "list"], b"");
        assert!(!plain.status.success());
        assert!(
            plain.stderr.contains("--security-protocol"),
            "{}",
            plain.stderr
        );
    }

    // SASL settings with a protocol that has no SASL are refused before connecting.
    let mismatch = server.run(
        "PLAINTEXT",
        &[
            ("SPATE_SASL_USERNAME", USER),
            ("SPATE_SASL_PASSWORD", PASSWORD),
        ],
        &["topic", "list"],
        b"",
    );
    assert!(!mismatch.status.success());
    assert!(mismatch.stderr.contains("SASL_SSL"), "{}", mismatch.stderr);

    // A TLS client that does not trust the server's CA fails the handshake, naming TLS.
    let untrusted = server.run(
        "MTLS",
        &[
            ("SPATE_SECURITY_PROTOCOL", "SSL"),
            ("SPATE_TLS_CA_FILE", &pki.arg("client.pem")),
        ],
        &["topic", "list"],
        b"",
    );
    assert!(!untrusted.status.success());
    assert!(
        untrusted.stderr.contains("TLS handshake with"),
        "{}",
        untrusted.stderr
    );
}

#[test]
fn mutual_tls_and_sasl_plaintext_with_plain_and_scram_sha_256() {
    let pki = Pki::new();
    let server = Server::start(&pki);
    create_user(&server, "SCRAM-SHA-256");
    let ca = pki.arg("ca.pem");
    let cert = pki.arg("client.pem");
    let key = pki.arg("client.key");

    // SSL with a client certificate: the broker takes the principal from it.
    let tls_flags = [
        "--security-protocol",
        "SSL",
        "--tls-ca-file",
        &ca,
        "--tls-cert-file",
        &cert,
        "--tls-key-file",
        &key,
    ];
    let with = |args: &[&'static str]| -> Vec<String> {
        args.iter()
            .chain(tls_flags.iter())
            .map(|a| a.to_string())
            .collect()
    };
    server.ok("MTLS", &[], &with(&["topic", "create", "audit"]), b"");
    server.ok("MTLS", &[], &with(&["produce", "audit"]), b"signed\n");
    let consumed = server.ok(
        "MTLS",
        &[],
        &with(&["consume", "audit", "--from-beginning", "--exit-at-end"]),
        b"",
    );
    assert_eq!(consumed.stdout.trim(), "signed");
    server.wait_for_log(&["TLS connection", "listener=MTLS", "User:CN=alice,O=acme"]);

    // SASL_PLAINTEXT with SCRAM-SHA-256 and with PLAIN (checked against the same credential).
    for mechanism in ["SCRAM-SHA-256", "PLAIN"] {
        let env = [
            ("SPATE_SECURITY_PROTOCOL", "SASL_PLAINTEXT"),
            ("SPATE_SASL_MECHANISM", mechanism),
            ("SPATE_SASL_PASSWORD", PASSWORD),
        ];
        let listed = server.ok(
            "INSIDE",
            &env,
            &["topic", "list", "--sasl-username", USER],
            b"",
        );
        assert!(
            listed.stdout.lines().any(|l| l == "audit"),
            "{}",
            listed.stdout
        );
        server.ok(
            "INSIDE",
            &env,
            &["user", "list", "--sasl-username", USER],
            b"",
        );
    }
    // A mechanism the listener does not enable for this user fails naming the mechanism.
    let env = [
        ("SPATE_SECURITY_PROTOCOL", "SASL_PLAINTEXT"),
        ("SPATE_SASL_MECHANISM", "SCRAM-SHA-512"),
        ("SPATE_SASL_USERNAME", USER),
        ("SPATE_SASL_PASSWORD", PASSWORD),
    ];
    let no_credential = server.run("INSIDE", &env, &["topic", "list"], b"");
    assert!(!no_credential.status.success());
    assert!(
        no_credential
            .stderr
            .contains("SASL/SCRAM-SHA-512 authentication"),
        "{}",
        no_credential.stderr
    );
}
