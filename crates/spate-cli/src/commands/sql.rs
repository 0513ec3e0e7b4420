//! `spate sql`: the SQL shell and worker. `spate sql` alone is an interactive shell (statements
//! end with `;`, history kept in `$XDG_STATE_HOME/spate/sql_history`); `-e "..."` runs
//! statements and `-f file.sql` a file, as `sql-client.sh -e/-f` and `ksql -e/-f` do.
//! Queries stream their rows as a table until their LIMIT or Ctrl-C; other statements print
//! their answer. `spate sql worker --brokers ...` runs a SQL worker against any
//! Kafka-compatible cluster.

use std::io::{BufRead, Write};
use std::net::SocketAddr;

use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use serde_json::{Value as Json, json};

/// `spate sql`.
#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct SqlArgs {
    #[command(subcommand)]
    command: Option<SqlCommand>,
    /// Statements to run (separated by `;`), then exit.
    #[arg(
        short = 'e',
        long = "execute",
        value_name = "SQL",
        conflicts_with = "file"
    )]
    execute: Option<String>,
    /// A file of statements to run, then exit.
    #[arg(short = 'f', long = "file", value_name = "FILE")]
    file: Option<std::path::PathBuf>,
    /// The SQL API; a worker that authenticates takes `user:password@` in the URL, or
    /// SPATE_SQL_USER with SPATE_SQL_PASSWORD, or a bearer token in SPATE_SQL_TOKEN.
    #[arg(long, env = "SPATE_SQL_URL", default_value = "http://localhost:8088")]
    url: String,
    /// Print the API's JSON (one line per answer or row) instead of tables.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Subcommand)]
enum SqlCommand {
    /// Run a SQL worker (the SQL API and its jobs) against a Kafka cluster.
    Worker(WorkerArgs),
}

#[derive(Debug, Args)]
struct WorkerArgs {
    /// Bootstrap brokers.
    #[arg(long, env = "SPATE_SQL_BROKERS", default_value = "localhost:9092")]
    brokers: String,
    /// Where the SQL API listens.
    #[arg(long, default_value = "0.0.0.0:8088", env = "SPATE_SQL_LISTEN")]
    listen: SocketAddr,
    /// The schema registry (topics with schemas are tables; registry formats).
    #[arg(long, env = "SPATE_SQL_SCHEMA_REGISTRY_URL")]
    schema_registry_url: Option<String>,
    /// How often jobs commit a checkpoint, in milliseconds.
    #[arg(long, default_value_t = 1000)]
    checkpoint_interval_ms: u64,
    /// A librdkafka client setting (security), `key=value`; repeatable.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    set: Vec<String>,
    /// Log filter.
    #[arg(long, default_value = "info", env = "SPATE_LOG")]
    log: String,
}

/// Runs `spate sql`.
pub fn run(args: SqlArgs) -> Result<()> {
    if let Some(SqlCommand::Worker(worker_args)) = args.command {
        return worker(worker_args);
    }
    let (base, from_url) = super::registry::split_user_info(&args.url)?;
    let client = Client {
        url: base.trim_end_matches('/').to_string(),
        json: args.json,
        properties: Default::default(),
        authorization: super::http_authorization("the SQL API", "SPATE_SQL", from_url)?,
    };
    if let Some(sql) = &args.execute {
        return client.run_text(sql);
    }
    if let Some(path) = &args.file {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        return client.run_text(&text);
    }
    shell(&client)
}

struct Client {
    url: String,
    json: bool,
    /// The session's `SET` properties, sent with every statement.
    properties: std::cell::RefCell<std::collections::BTreeMap<String, String>>,
    /// The `Authorization` header, for a worker that authenticates.
    authorization: Option<String>,
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into()
}

fn error_message(status: u16, text: &str) -> String {
    serde_json::from_str::<Json>(text)
        .ok()
        .and_then(|j| j.get("message").and_then(Json::as_str).map(str::to_string))
        .unwrap_or_else(|| format!("{text} (HTTP {status})"))
}

impl Client {
    /// A POST of `body` (JSON) to `path`.
    fn post(&self, path: &str, body: &Json) -> Result<ureq::http::Response<ureq::Body>> {
        let mut request = agent()
            .post(&format!("{}{path}", self.url))
            .header("Content-Type", "application/json");
        if let Some(a) = &self.authorization {
            request = request.header("Authorization", a);
        }
        request
            .send(body.to_string())
            .with_context(|| format!("cannot reach the SQL API at {}", self.url))
    }

    /// Runs each statement of `text` in order; stops at the first error.
    fn run_text(&self, text: &str) -> Result<()> {
        let statements = spate_sql::parse::parse(text).map_err(|e| anyhow::anyhow!("{e}"))?;
        for p in statements {
            self.run_one(&p.statement, &p.text)?;
        }
        Ok(())
    }

    fn run_one(&self, statement: &spate_sql::parse::Statement, text: &str) -> Result<()> {
        use spate_sql::parse::Statement;
        match statement {
            Statement::Query(_) => return self.query(text),
            // SET and RESET last for the session: they go with every later statement.
            Statement::Set(Some((key, value))) => {
                let mut one = self.properties.borrow().clone();
                one.insert(key.clone(), value.clone());
                self.check(&one)?;
                self.properties
                    .borrow_mut()
                    .insert(key.clone(), value.clone());
                println!("[INFO] {key} = {value}");
                return Ok(());
            }
            Statement::Reset(key) => {
                match key {
                    Some(k) => {
                        self.properties.borrow_mut().remove(k);
                    }
                    None => self.properties.borrow_mut().clear(),
                }
                println!("[INFO] properties reset");
                return Ok(());
            }
            _ => {}
        }
        let mut response = self.post(
            "/statements",
            &json!({"sql": text, "properties": *self.properties.borrow()}),
        )?;
        let status = response.status().as_u16();
        let body = response.body_mut().read_to_string().unwrap_or_default();
        if status >= 400 {
            anyhow::bail!("{}", error_message(status, &body));
        }
        let answers: Json = serde_json::from_str(&body).context("the API's answer")?;
        for answer in answers.as_array().into_iter().flatten() {
            if self.json {
                println!("{answer}");
                continue;
            }
            match answer.get("type").and_then(Json::as_str) {
                Some("rows") => {
                    let columns: Vec<String> = answer["columnNames"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .map(|c| c.as_str().unwrap_or_default().to_string())
                        .collect();
                    let rows: Vec<Vec<String>> = answer["rows"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .map(|r| r.as_array().into_iter().flatten().map(cell).collect())
                        .collect();
                    print!("{}", table(&columns, &rows));
                }
                Some("job") => println!(
                    "[INFO] {} (job id: {})",
                    answer["message"].as_str().unwrap_or_default(),
                    answer["jobId"].as_str().unwrap_or_default()
                ),
                Some("explain") => println!("{}", answer["plan"].as_str().unwrap_or_default()),
                _ => println!("[INFO] {}", answer["message"].as_str().unwrap_or_default()),
            }
        }
        Ok(())
    }

    /// Asks the API whether `properties` are valid (a `SET` alone runs nothing).
    fn check(&self, properties: &std::collections::BTreeMap<String, String>) -> Result<()> {
        let mut response = self.post(
            "/statements",
            &json!({"sql": "SET", "properties": properties}),
        )?;
        let status = response.status().as_u16();
        if status >= 400 {
            let body = response.body_mut().read_to_string().unwrap_or_default();
            anyhow::bail!("{}", error_message(status, &body));
        }
        Ok(())
    }

    /// Streams a query's rows: the header, then rows as they come, aligned to the header.
    fn query(&self, text: &str) -> Result<()> {
        let mut response = self.post("/query-stream", &json!({"sql": text}))?;
        let status = response.status().as_u16();
        if status >= 400 {
            let body = response.body_mut().read_to_string().unwrap_or_default();
            anyhow::bail!("{}", error_message(status, &body));
        }
        let reader = std::io::BufReader::new(response.into_body().into_reader());
        let mut widths: Vec<usize> = Vec::new();
        let mut stdout = std::io::stdout().lock();
        let mut rows = 0u64;
        for (i, line) in reader.lines().enumerate() {
            let line = line.context("reading the query's rows")?;
            if line.trim().is_empty() {
                continue;
            }
            if self.json {
                writeln!(stdout, "{line}")?;
                stdout.flush()?;
                continue;
            }
            let json: Json = serde_json::from_str(&line).context("a row that is not JSON")?;
            if i == 0 {
                let names: Vec<String> = json["columnNames"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|c| c.as_str().unwrap_or_default().to_string())
                    .collect();
                widths = names.iter().map(|n| n.chars().count().max(12)).collect();
                writeln!(stdout, "{}", separator(&widths))?;
                writeln!(stdout, "{}", line_of(&names, &widths))?;
                writeln!(stdout, "{}", separator(&widths))?;
                continue;
            }
            if json.get("@type").is_some() {
                anyhow::bail!("{}", json["message"].as_str().unwrap_or_default());
            }
            let cells: Vec<String> = json.as_array().into_iter().flatten().map(cell).collect();
            writeln!(stdout, "{}", line_of(&cells, &widths))?;
            stdout.flush()?;
            rows += 1;
        }
        if !self.json && !widths.is_empty() {
            writeln!(stdout, "{}", separator(&widths))?;
            writeln!(
                stdout,
                "{rows} row{} in set",
                if rows == 1 { "" } else { "s" }
            )?;
        }
        Ok(())
    }
}

fn cell(v: &Json) -> String {
    match v {
        Json::Null => "NULL".to_string(),
        Json::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn separator(widths: &[usize]) -> String {
    let mut s = String::from("+");
    for w in widths {
        s.push_str(&"-".repeat(w + 2));
        s.push('+');
    }
    s
}

fn line_of(cells: &[String], widths: &[usize]) -> String {
    let mut s = String::from("|");
    for (i, c) in cells.iter().enumerate() {
        let w = widths.get(i).copied().unwrap_or(12);
        s.push_str(&format!(" {c:>w$} |"));
    }
    s
}

/// A whole table, columns as wide as their widest cell.
fn table(columns: &[String], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = columns.iter().map(|c| c.chars().count()).collect();
    for row in rows {
        for (i, c) in row.iter().enumerate() {
            if let Some(w) = widths.get_mut(i) {
                *w = (*w).max(c.chars().count());
            }
        }
    }
    let mut out = String::new();
    out.push_str(&separator(&widths));
    out.push('\n');
    out.push_str(&line_of(columns, &widths));
    out.push('\n');
    out.push_str(&separator(&widths));
    out.push('\n');
    for row in rows {
        out.push_str(&line_of(row, &widths));
        out.push('\n');
    }
    out.push_str(&separator(&widths));
    out.push('\n');
    out.push_str(&format!(
        "{} row{} in set\n",
        rows.len(),
        if rows.len() == 1 { "" } else { "s" }
    ));
    out
}

fn history_path() -> Option<std::path::PathBuf> {
    let base = std::env::var_os("XDG_STATE_HOME")
        .map(std::path::PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME").map(|h| std::path::PathBuf::from(h).join(".local/state"))
        })?;
    Some(base.join("spate").join("sql_history"))
}

/// Where the shell's next line comes from: a terminal, with line editing and the history
/// (rustyline: arrows recall earlier statements, Ctrl-R searches them), or a pipe.
enum Lines {
    Terminal(Box<rustyline::DefaultEditor>),
    Piped(std::io::Stdin),
}

impl Lines {
    /// The next line; None at the end of input.
    fn next(&mut self, prompt: &str) -> Result<Option<String>> {
        match self {
            Lines::Terminal(editor) => match editor.readline(prompt) {
                Ok(line) => Ok(Some(line + "\n")),
                // Ctrl-C drops the statement being typed, as psql does.
                Err(rustyline::error::ReadlineError::Interrupted) => Ok(Some(String::new())),
                Err(rustyline::error::ReadlineError::Eof) => Ok(None),
                Err(e) => Err(e).context("reading the terminal"),
            },
            Lines::Piped(stdin) => {
                let mut line = String::new();
                Ok((stdin.lock().read_line(&mut line)? > 0).then_some(line))
            }
        }
    }
}

/// The interactive shell: reads statements ending with `;`, runs each, keeps a history.
fn shell(client: &Client) -> Result<()> {
    let interactive = std::io::IsTerminal::is_terminal(&std::io::stdin());
    let history = history_path();
    if let Some(dir) = history.as_ref().and_then(|p| p.parent()) {
        let _ = std::fs::create_dir_all(dir);
    }
    let mut lines = if interactive {
        let mut editor = rustyline::DefaultEditor::new().context("starting the line editor")?;
        if let Some(path) = &history {
            let _ = editor.load_history(path);
        }
        println!(
            "Spate SQL shell ({}). Statements end with ';'. Type HELP; or QUIT;.",
            client.url
        );
        Lines::Terminal(Box::new(editor))
    } else {
        Lines::Piped(std::io::stdin())
    };
    let mut buffer = String::new();
    let mut failed = false;
    loop {
        let prompt = if buffer.is_empty() {
            "spate-sql> "
        } else {
            "         > "
        };
        let Some(line) = lines.next(prompt)? else {
            break;
        };
        if line.is_empty() {
            buffer.clear(); // Ctrl-C
            continue;
        }
        buffer.push_str(&line);
        if !buffer.trim_end().ends_with(';') {
            continue;
        }
        let text = std::mem::take(&mut buffer);
        let trimmed = text.trim().trim_end_matches(';').trim();
        let entry = text.trim().replace('\n', " ");
        match (&mut lines, &history) {
            (Lines::Terminal(editor), Some(path)) => {
                let _ = editor.add_history_entry(entry);
                let _ = editor.save_history(path);
            }
            (Lines::Piped(_), Some(path)) => {
                if let Ok(mut file) = std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)
                {
                    let _ = writeln!(file, "{entry}");
                }
            }
            _ => {}
        }
        match trimmed.to_ascii_uppercase().as_str() {
            "QUIT" | "EXIT" => break,
            "HELP" => {
                println!(
                    "SELECT ... streams rows (LIMIT n to stop); INSERT INTO t SELECT ..., CREATE TABLE ... AS SELECT and\n\
                     CREATE MATERIALIZED VIEW v AS SELECT ... start jobs; SHOW TABLES|JOBS|VIEWS; DESCRIBE t;\n\
                     EXPLAIN ...; STOP JOB 'id'; DROP TABLE|VIEW name; QUIT;"
                );
                continue;
            }
            _ => {}
        }
        if let Err(e) = client.run_text(&text) {
            eprintln!("[ERROR] {e:#}");
            failed = true;
        }
    }
    if !interactive && failed {
        anyhow::bail!("a statement failed");
    }
    Ok(())
}

fn worker(args: WorkerArgs) -> Result<()> {
    let filter = tracing_subscriber::EnvFilter::try_new(&args.log)
        .with_context(|| format!("--log {}: not a log filter", args.log))?;
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let mut config = spate_sql::engine::SqlConfig::new(&args.brokers);
    config.registry_url = args.schema_registry_url.clone();
    config.checkpoint_interval =
        std::time::Duration::from_millis(args.checkpoint_interval_ms.max(10));
    for pair in &args.set {
        let (k, v) = pair
            .split_once('=')
            .with_context(|| format!("--set {pair}: expected key=value"))?;
        config
            .cluster
            .client
            .push((k.trim().to_string(), v.to_string()));
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind(args.listen)
            .await
            .with_context(|| format!("cannot listen on {}", args.listen))?;
        let shutdown = super::stop_signal();
        spate_sql::server::serve(
            listener,
            config,
            |router| router,
            |_, addr| tracing::info!(sql_addr = %addr, "spate sql worker is ready"),
            shutdown,
        )
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))
    })
}
