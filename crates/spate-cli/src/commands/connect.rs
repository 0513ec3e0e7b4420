//! `spate connect`: run a Connect worker against any Kafka-compatible cluster
//! (`spate connect worker --brokers HOST:PORT`), and manage connectors through Kafka Connect's
//! REST API — Spate's or Apache Kafka's, only the documented API is used — as `kcctl` and
//! `confluent connect` do: list, create/update from a JSON file, status, pause, resume, stop,
//! restart, delete, plugins, offsets, validate.

use std::net::SocketAddr;

use anyhow::{Context, Result};
use clap::{Args, Subcommand};

/// `spate connect`.
#[derive(Debug, Args)]
pub struct ConnectArgs {
    #[command(subcommand)]
    command: ConnectCommand,
}

#[derive(Debug, Subcommand)]
enum ConnectCommand {
    /// Run a Connect worker (Kafka Connect's distributed worker) against a Kafka cluster.
    Worker(WorkerArgs),
    /// List connectors with their state and tasks.
    List(Rest),
    /// Create a connector from a JSON file: `{"name": ..., "config": {...}}`, or a flat config
    /// with `name` (as `confluent connect cluster create --config-file`).
    Create(FileArgs),
    /// Create or update a connector from a JSON file (as `kcctl apply -f`).
    Apply(FileArgs),
    /// A connector's config, tasks and status.
    Describe(NameArgs),
    /// A connector's status and its tasks'.
    Status(NameArgs),
    /// Pause a connector's tasks.
    Pause(NameArgs),
    /// Resume a paused or stopped connector.
    Resume(NameArgs),
    /// Stop a connector and its tasks (its offsets can then be changed).
    Stop(NameArgs),
    /// Restart a connector, its tasks, or one task.
    Restart(RestartArgs),
    /// Delete a connector (its offsets are kept).
    Delete(NameArgs),
    /// Connector plugins (`--all`: converters and transforms too).
    Plugins(PluginArgs),
    /// Show a connector's offsets, reset them, or set them from a JSON file (KIP-875).
    Offsets(OffsetArgs),
    /// Check a connector config from a JSON file without creating anything.
    Validate(FileArgs),
}

/// Where the Connect REST API is.
#[derive(Debug, Args)]
struct Rest {
    /// The Connect REST API [default: http://localhost:8083]; a worker that authenticates
    /// takes `user:password@` in the URL, or SPATE_CONNECT_USER with SPATE_CONNECT_PASSWORD,
    /// or a bearer token in SPATE_CONNECT_TOKEN.
    #[arg(
        long,
        env = "SPATE_CONNECT_URL",
        default_value = "http://localhost:8083"
    )]
    url: String,
    /// Print the API's JSON instead of a table.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
struct NameArgs {
    /// The connector.
    name: String,
    #[command(flatten)]
    rest: Rest,
}

#[derive(Debug, Args)]
struct FileArgs {
    /// The JSON file (`-` for stdin).
    #[arg(long = "config", short = 'f', value_name = "FILE")]
    file: String,
    #[command(flatten)]
    rest: Rest,
}

#[derive(Debug, Args)]
struct RestartArgs {
    /// The connector.
    name: String,
    /// Restart its tasks too.
    #[arg(long)]
    include_tasks: bool,
    /// Only what has FAILED.
    #[arg(long)]
    only_failed: bool,
    /// Restart only this task.
    #[arg(long, conflicts_with_all = ["include_tasks", "only_failed"])]
    task: Option<u32>,
    #[command(flatten)]
    rest: Rest,
}

#[derive(Debug, Args)]
struct PluginArgs {
    /// Converters, transforms and predicates too.
    #[arg(long)]
    all: bool,
    #[command(flatten)]
    rest: Rest,
}

#[derive(Debug, Args)]
struct OffsetArgs {
    /// The connector.
    name: String,
    /// Reset every offset (the connector must be stopped).
    #[arg(long, conflicts_with = "set")]
    reset: bool,
    /// Set offsets from a JSON file `{"offsets": [...]}` (the connector must be stopped).
    #[arg(long, value_name = "FILE")]
    set: Option<String>,
    #[command(flatten)]
    rest: Rest,
}

#[derive(Debug, Args)]
struct WorkerArgs {
    /// Bootstrap brokers (`bootstrap.servers`).
    #[arg(long, env = "SPATE_CONNECT_BROKERS")]
    brokers: Option<String>,
    /// Where the REST API listens (Kafka Connect's `listeners`).
    #[arg(long, default_value = "0.0.0.0:8083", env = "SPATE_CONNECT_LISTEN")]
    listen: SocketAddr,
    /// A worker properties file, as `connect-distributed.properties` (group.id, the storage
    /// topics, converters, security settings, producer./consumer. overrides).
    #[arg(long, value_name = "FILE")]
    worker_config: Option<std::path::PathBuf>,
    /// A worker property, `key=value`; repeatable; wins over the file.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    set: Vec<String>,
    /// Log filter (`info`, `debug`, `spate_connect=debug`).
    #[arg(long, default_value = "info", env = "SPATE_LOG")]
    log: String,
}

/// Runs `spate connect`.
pub fn run(args: ConnectArgs) -> Result<()> {
    match args.command {
        ConnectCommand::Worker(args) => worker(args),
        ConnectCommand::List(rest) => list(&rest),
        ConnectCommand::Create(args) => {
            let (name, config) = read_connector(&args.file)?;
            let body = serde_json::json!({ "name": name, "config": config });
            let created = call(&args.rest, "POST", "/connectors", Some(&body))?;
            print_or(&args.rest, &created, || format!("created connector {name}"))
        }
        ConnectCommand::Apply(args) => {
            let (name, config) = read_connector(&args.file)?;
            let path = format!("/connectors/{}/config", segment(&name));
            let applied = call(
                &args.rest,
                "PUT",
                &path,
                Some(&serde_json::Value::Object(config)),
            )?;
            print_or(&args.rest, &applied, || format!("applied connector {name}"))
        }
        ConnectCommand::Describe(args) => describe(&args),
        ConnectCommand::Status(args) => {
            let status = call(
                &args.rest,
                "GET",
                &format!("/connectors/{}/status", segment(&args.name)),
                None,
            )?;
            print_or(&args.rest, &status, || status_table(&status))
        }
        ConnectCommand::Pause(args) => state_change(&args, "pause", "paused"),
        ConnectCommand::Resume(args) => state_change(&args, "resume", "resumed"),
        ConnectCommand::Stop(args) => state_change(&args, "stop", "stopped"),
        ConnectCommand::Restart(args) => {
            let name = segment(&args.name);
            let path = match args.task {
                Some(task) => format!("/connectors/{name}/tasks/{task}/restart"),
                None => format!(
                    "/connectors/{name}/restart?includeTasks={}&onlyFailed={}",
                    args.include_tasks, args.only_failed
                ),
            };
            let answer = call(&args.rest, "POST", &path, None)?;
            print_or(&args.rest, &answer, || {
                format!("restarting connector {}", args.name)
            })
        }
        ConnectCommand::Delete(args) => {
            call(
                &args.rest,
                "DELETE",
                &format!("/connectors/{}", segment(&args.name)),
                None,
            )?;
            print_or(&args.rest, &serde_json::Value::Null, || {
                format!("deleted connector {}", args.name)
            })
        }
        ConnectCommand::Plugins(args) => {
            let path = if args.all {
                "/connector-plugins?connectorsOnly=false"
            } else {
                "/connector-plugins"
            };
            let plugins = call(&args.rest, "GET", path, None)?;
            print_or(&args.rest, &plugins, || {
                let mut out = format!("{:<12} {:<10} CLASS\n", "TYPE", "VERSION");
                for p in plugins.as_array().into_iter().flatten() {
                    out.push_str(&format!(
                        "{:<12} {:<10} {}\n",
                        p["type"].as_str().unwrap_or(""),
                        p["version"].as_str().unwrap_or(""),
                        p["class"].as_str().unwrap_or("")
                    ));
                }
                out.trim_end().to_string()
            })
        }
        ConnectCommand::Offsets(args) => {
            let path = format!("/connectors/{}/offsets", segment(&args.name));
            let answer = if args.reset {
                call(&args.rest, "DELETE", &path, None)?
            } else if let Some(file) = &args.set {
                let body = read_json(file)?;
                call(&args.rest, "PATCH", &path, Some(&body))?
            } else {
                call(&args.rest, "GET", &path, None)?
            };
            print_or(&args.rest, &answer, || {
                match answer.get("message").and_then(|m| m.as_str()) {
                    Some(message) => message.to_string(),
                    None => serde_json::to_string_pretty(&answer).unwrap_or_default(),
                }
            })
        }
        ConnectCommand::Validate(args) => {
            let (_, config) = read_connector(&args.file)?;
            let class = config
                .get("connector.class")
                .and_then(|c| c.as_str())
                .context("the config has no connector.class")?
                .to_string();
            let path = format!("/connector-plugins/{}/config/validate", segment(&class));
            let answer = call(
                &args.rest,
                "PUT",
                &path,
                Some(&serde_json::Value::Object(config)),
            )?;
            let count = answer["error_count"].as_u64().unwrap_or(0);
            if args.rest.json {
                println!("{answer}");
            } else {
                for entry in answer["configs"].as_array().into_iter().flatten() {
                    for error in entry["value"]["errors"].as_array().into_iter().flatten() {
                        println!(
                            "{}: {}",
                            entry["value"]["name"].as_str().unwrap_or(""),
                            error.as_str().unwrap_or("")
                        );
                    }
                }
                if count == 0 {
                    println!("the config is valid");
                }
            }
            if count > 0 {
                anyhow::bail!("the config has {count} error(s)");
            }
            Ok(())
        }
    }
}

/// Percent-encodes a path segment.
fn segment(text: &str) -> String {
    super::registry::segment(text)
}

/// Calls the REST API; an error answer becomes an error with Kafka Connect's message.
fn call(
    rest: &Rest,
    method: &str,
    path: &str,
    body: Option<&serde_json::Value>,
) -> Result<serde_json::Value> {
    super::http_json(
        "the Connect REST API",
        "SPATE_CONNECT",
        &rest.url,
        method,
        path,
        body,
    )
}

fn print_or(rest: &Rest, json: &serde_json::Value, human: impl FnOnce() -> String) -> Result<()> {
    if rest.json {
        if !json.is_null() {
            println!("{json}");
        }
    } else {
        println!("{}", human());
    }
    Ok(())
}

fn read_json(file: &str) -> Result<serde_json::Value> {
    let text = if file == "-" {
        std::io::read_to_string(std::io::stdin()).context("reading stdin")?
    } else {
        std::fs::read_to_string(file).with_context(|| format!("cannot read {file}"))?
    };
    serde_json::from_str(&text).with_context(|| format!("{file} is not JSON"))
}

/// A connector's name and config from `{"name", "config"}` or a flat config with `name`.
fn read_connector(file: &str) -> Result<(String, serde_json::Map<String, serde_json::Value>)> {
    let json = read_json(file)?;
    let (name, config) = match json.get("config") {
        Some(config) => (
            json.get("name").or_else(|| config.get("name")).cloned(),
            config.clone(),
        ),
        None => (json.get("name").cloned(), json.clone()),
    };
    let name = name
        .and_then(|n| n.as_str().map(str::to_string))
        .with_context(|| format!("{file} names no connector (\"name\")"))?;
    let serde_json::Value::Object(mut config) = config else {
        anyhow::bail!("{file}: the config must be a JSON object");
    };
    config.insert("name".into(), serde_json::Value::String(name.clone()));
    Ok((name, config))
}

fn status_table(status: &serde_json::Value) -> String {
    let connector = &status["connector"];
    let mut out = format!(
        "connector {} ({}): {} on {}\n",
        status["name"].as_str().unwrap_or(""),
        status["type"].as_str().unwrap_or(""),
        connector["state"].as_str().unwrap_or(""),
        connector["worker_id"].as_str().unwrap_or("-")
    );
    for task in status["tasks"].as_array().into_iter().flatten() {
        out.push_str(&format!(
            "  task {}: {} on {}\n",
            task["id"],
            task["state"].as_str().unwrap_or(""),
            task["worker_id"].as_str().unwrap_or("-")
        ));
        if let Some(trace) = task["trace"].as_str() {
            out.push_str(&format!("    {}\n", trace.lines().next().unwrap_or("")));
        }
    }
    out.trim_end().to_string()
}

fn list(rest: &Rest) -> Result<()> {
    let all = call(rest, "GET", "/connectors?expand=status&expand=info", None)?;
    print_or(rest, &all, || {
        let mut out = format!("{:<30} {:<7} {:<10} TASKS\n", "NAME", "TYPE", "STATE");
        for (name, entry) in all.as_object().into_iter().flatten() {
            let status = &entry["status"];
            let tasks: Vec<String> = status["tasks"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|t| t["state"].as_str().unwrap_or("").to_string())
                .collect();
            out.push_str(&format!(
                "{:<30} {:<7} {:<10} {}\n",
                name,
                status["type"].as_str().unwrap_or(""),
                status["connector"]["state"].as_str().unwrap_or(""),
                tasks.join(",")
            ));
        }
        out.trim_end().to_string()
    })
}

fn describe(args: &NameArgs) -> Result<()> {
    let name = segment(&args.name);
    let info = call(&args.rest, "GET", &format!("/connectors/{name}"), None)?;
    let status = call(
        &args.rest,
        "GET",
        &format!("/connectors/{name}/status"),
        None,
    )?;
    if args.rest.json {
        println!("{}", serde_json::json!({ "info": info, "status": status }));
        return Ok(());
    }
    println!("{}", status_table(&status));
    println!("config:");
    for (key, value) in info["config"].as_object().into_iter().flatten() {
        println!("  {key} = {}", value.as_str().unwrap_or(""));
    }
    Ok(())
}

fn state_change(args: &NameArgs, action: &str, done: &str) -> Result<()> {
    call(
        &args.rest,
        "PUT",
        &format!("/connectors/{}/{action}", segment(&args.name)),
        None,
    )?;
    print_or(&args.rest, &serde_json::Value::Null, || {
        format!("{done} connector {}", args.name)
    })
}

fn worker(args: WorkerArgs) -> Result<()> {
    let mut props = match &args.worker_config {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read the worker config {}", path.display()))?;
            spate_connect::server::parse_properties(&text)
        }
        None => Default::default(),
    };
    for pair in &args.set {
        let (key, value) = pair
            .split_once('=')
            .with_context(|| format!("--set {pair}: expected key=value"))?;
        props.insert(key.trim().to_string(), value.to_string());
    }
    if let Some(brokers) = &args.brokers {
        props.insert("bootstrap.servers".into(), brokers.clone());
    }
    let filter = tracing_subscriber::EnvFilter::try_new(spate_connect::log_directives(&args.log))
        .with_context(|| format!("--log {}: not a log filter", args.log))?;
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async {
        let shutdown = super::stop_signal();
        spate_connect::server::run(
            props,
            args.listen,
            |addr| tracing::info!(rest_addr = %addr, "spate connect worker is ready"),
            shutdown,
        )
        .await
    })?;
    Ok(())
}
