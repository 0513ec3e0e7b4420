//! `spate ai`: the AI pillar's indexes over the HTTP API of `spate serve` (`/v1/indexes`):
//! `spate ai index create|list|describe|delete|query`.

use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use serde_json::{Value as Json, json};

/// `spate ai`.
#[derive(Debug, Args)]
pub struct AiArgs {
    #[command(subcommand)]
    command: AiCommand,
}

#[derive(Debug, Subcommand)]
enum AiCommand {
    /// Indexes that follow topics: create, list, describe, delete, query.
    Index(IndexArgs),
}

#[derive(Debug, Args)]
struct IndexArgs {
    #[command(subcommand)]
    command: IndexCommand,
}

/// Where the API is.
#[derive(Debug, Args)]
struct Api {
    /// Spate's HTTP listener; one that authenticates takes `user:password@` in the URL, or
    /// SPATE_HTTP_USER with SPATE_HTTP_PASSWORD, or a bearer token in SPATE_HTTP_TOKEN.
    #[arg(long, env = "SPATE_HTTP_URL", default_value = "http://localhost:8080")]
    url: String,
    /// Print the API's JSON instead of text.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Subcommand)]
enum IndexCommand {
    /// Create an index over a topic (from flags, or a JSON definition with --file).
    Create(CreateArgs),
    /// List the indexes with their size and lag.
    List(Api),
    /// Show an index: its definition, size, offsets, lag, errors.
    Describe(NameArgs),
    /// Delete an index (its topic and dead letters stay).
    Delete(NameArgs),
    /// Search an index with a text: the best passages with their source.
    Query(QueryArgs),
}

#[derive(Debug, Args)]
struct NameArgs {
    /// The index.
    name: String,
    #[command(flatten)]
    api: Api,
}

#[derive(Debug, Args)]
struct CreateArgs {
    /// The index.
    name: String,
    /// The topic it follows.
    #[arg(long, required_unless_present = "file")]
    topic: Option<String>,
    /// A JSON field giving text (repeat for several, joined by newlines); none: the whole
    /// value is the text.
    #[arg(long = "field", value_name = "FIELD")]
    fields: Vec<String>,
    /// A template over JSON fields giving the text, e.g. "{title}: {body}".
    #[arg(long, conflicts_with = "fields")]
    template: Option<String>,
    /// A JSON field kept as metadata (repeatable).
    #[arg(long = "metadata", value_name = "FIELD")]
    metadata: Vec<String>,
    /// Characters per chunk of long text.
    #[arg(long, default_value_t = 1000)]
    chunk_size: usize,
    /// Characters a chunk repeats from the one before.
    #[arg(long, default_value_t = 100)]
    chunk_overlap: usize,
    /// The embedding model [default: the first served].
    #[arg(long)]
    model: Option<String>,
    /// cosine, dot or euclidean.
    #[arg(long, default_value = "cosine")]
    metric: String,
    /// How vectors are kept in the HNSW graph: f32, f16 or i8 (scores stay exact).
    #[arg(long, default_value = "f32")]
    quantization: String,
    /// A JSON field whose value is the record's namespace.
    #[arg(long)]
    namespace_field: Option<String>,
    /// Where records with no text go [default: <name>-dlq].
    #[arg(long)]
    dead_letter_topic: Option<String>,
    /// A JSON definition (`-` for stdin) instead of the flags; NAME wins over its name.
    #[arg(long, short = 'f', value_name = "FILE")]
    file: Option<String>,
    /// Wait (up to this many seconds) until the index has caught up with its topic.
    #[arg(long, value_name = "SECONDS")]
    wait: Option<u64>,
    #[command(flatten)]
    api: Api,
}

#[derive(Debug, Args)]
struct QueryArgs {
    /// The index.
    name: String,
    /// The question.
    text: String,
    /// How many passages.
    #[arg(long, default_value_t = 5)]
    top_k: u32,
    /// A metadata filter (JSON), e.g. '{"lang": {"$eq": "en"}}'.
    #[arg(long)]
    filter: Option<String>,
    /// The namespace.
    #[arg(long)]
    namespace: Option<String>,
    #[command(flatten)]
    api: Api,
}

fn call(api: &Api, method: &str, path: &str, body: Option<&Json>) -> Result<Json> {
    super::http_json(
        "Spate's HTTP API",
        "SPATE_HTTP",
        &api.url,
        method,
        path,
        body,
    )
}

fn path(name: &str) -> String {
    format!("/v1/indexes/{}", super::registry::segment(name))
}

/// Runs `spate ai`.
pub fn run(args: AiArgs) -> Result<()> {
    let AiCommand::Index(index) = args.command;
    match index.command {
        IndexCommand::Create(args) => create(args),
        IndexCommand::List(api) => {
            let answer = call(&api, "GET", "/v1/indexes", None)?;
            if api.json {
                println!("{answer}");
                return Ok(());
            }
            println!(
                "{:<24} {:<24} {:<10} {:>10} {:>10} {:>10}",
                "NAME", "TOPIC", "STATE", "DOCUMENTS", "CHUNKS", "LAG"
            );
            for i in answer["indexes"].as_array().into_iter().flatten() {
                println!(
                    "{:<24} {:<24} {:<10} {:>10} {:>10} {:>10}",
                    i["name"].as_str().unwrap_or(""),
                    i["topic"].as_str().unwrap_or(""),
                    i["state"].as_str().unwrap_or(""),
                    i["documents"].to_string(),
                    i["chunks"].to_string(),
                    lag(i),
                );
            }
            Ok(())
        }
        IndexCommand::Describe(args) => {
            let answer = call(&args.api, "GET", &path(&args.name), None)?;
            if args.api.json {
                println!("{answer}");
            } else {
                print!("{}", describe_text(&answer));
            }
            Ok(())
        }
        IndexCommand::Delete(args) => {
            let answer = call(&args.api, "DELETE", &path(&args.name), None)?;
            if args.api.json {
                println!("{answer}");
            } else {
                println!("deleted index {}", args.name);
            }
            Ok(())
        }
        IndexCommand::Query(args) => query(args),
    }
}

fn lag(i: &Json) -> String {
    match i["lag"]["records"].as_i64() {
        Some(r) => format!("{r}"),
        None => "-".into(),
    }
}

fn describe_text(i: &Json) -> String {
    let mut out = String::new();
    let line = |out: &mut String, k: &str, v: String| out.push_str(&format!("{k:<16} {v}\n"));
    let text = |v: &Json| match v {
        Json::String(s) => s.clone(),
        Json::Null => "-".into(),
        other => other.to_string(),
    };
    for (label, key) in [
        ("name", "name"),
        ("topic", "topic"),
        ("state", "state"),
        ("error", "error"),
        ("model", "model"),
        ("dimensions", "dimensions"),
        ("metric", "metric"),
        ("quantization", "quantization"),
        ("text", "text"),
        ("metadata", "metadata"),
        ("chunking", "chunking"),
        ("namespace field", "namespaceField"),
        ("dead letters", "deadLetterTopic"),
        ("changelog", "changelog"),
        ("documents", "documents"),
        ("chunks", "chunks"),
        ("records read", "records"),
        ("errors", "errors"),
        ("offsets", "offsets"),
    ] {
        if key == "error" && i.get("error").is_none() {
            continue;
        }
        line(&mut out, label, text(&i[key]));
    }
    line(
        &mut out,
        "lag",
        format!(
            "{} records, {} s",
            lag(i),
            i["lag"]["seconds"].as_f64().unwrap_or(0.0)
        ),
    );
    out
}

fn create(args: CreateArgs) -> Result<()> {
    let mut definition = match &args.file {
        Some(file) => {
            let text = if file == "-" {
                std::io::read_to_string(std::io::stdin()).context("reading stdin")?
            } else {
                std::fs::read_to_string(file).with_context(|| format!("cannot read {file}"))?
            };
            let json: Json =
                serde_json::from_str(&text).with_context(|| format!("{file} is not JSON"))?;
            anyhow::ensure!(
                json.is_object(),
                "{file}: an index definition is a JSON object"
            );
            json
        }
        None => {
            let mut text = serde_json::Map::new();
            if !args.fields.is_empty() {
                text.insert("fields".into(), json!(args.fields));
            }
            if let Some(t) = &args.template {
                text.insert("template".into(), json!(t));
            }
            let mut d = json!({
                "topic": args.topic,
                "text": text,
                "chunking": {"size": args.chunk_size, "overlap": args.chunk_overlap},
                "metric": args.metric,
                "quantization": args.quantization,
            });
            if !args.metadata.is_empty() {
                d["metadata"] = json!(args.metadata);
            }
            for (key, value) in [
                ("model", &args.model),
                ("namespaceField", &args.namespace_field),
                ("deadLetterTopic", &args.dead_letter_topic),
            ] {
                if let Some(v) = value {
                    d[key] = json!(v);
                }
            }
            d
        }
    };
    definition["name"] = json!(args.name);
    let mut answer = call(&args.api, "POST", "/v1/indexes", Some(&definition))?;
    if let Some(seconds) = args.wait {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(seconds);
        loop {
            answer = call(&args.api, "GET", &path(&args.name), None)?;
            if answer["state"] == "RUNNING" && answer["lag"]["records"] == 0 {
                break;
            }
            anyhow::ensure!(
                std::time::Instant::now() < deadline,
                "index {} has not caught up with its topic within {seconds} s (state {}, lag {} records)",
                args.name,
                answer["state"],
                lag(&answer)
            );
            std::thread::sleep(std::time::Duration::from_millis(200));
        }
    }
    if args.api.json {
        println!("{answer}");
    } else {
        println!(
            "created index {} over {} ({} with {} dimensions)",
            args.name,
            answer["topic"].as_str().unwrap_or(""),
            answer["model"].as_str().unwrap_or(""),
            answer["dimensions"]
        );
    }
    Ok(())
}

fn query(args: QueryArgs) -> Result<()> {
    let mut body = json!({"query": args.text, "topK": args.top_k});
    if let Some(f) = &args.filter {
        body["filter"] = serde_json::from_str(f).context("--filter is not JSON")?;
    }
    if let Some(n) = &args.namespace {
        body["namespace"] = json!(n);
    }
    let answer = call(
        &args.api,
        "POST",
        &format!("{}/retrieve", path(&args.name)),
        Some(&body),
    )?;
    if args.api.json {
        println!("{answer}");
        return Ok(());
    }
    for p in answer["passages"].as_array().into_iter().flatten() {
        println!(
            "{:.4}  {}  {}/{}@{}",
            p["score"].as_f64().unwrap_or(0.0),
            p["key"].as_str().unwrap_or(""),
            p["topic"].as_str().unwrap_or(""),
            p["partition"],
            p["offset"]
        );
        let text = p["text"].as_str().unwrap_or("");
        let short: String = text.chars().take(200).collect();
        println!("        {}", short.replace('\n', " "));
    }
    Ok(())
}
