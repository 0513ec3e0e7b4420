//! `spate schema`: a client of the schema registry's REST API (Spate's, or Confluent Schema
//! Registry's: only the documented API is used). Register, get, list, check compatibility,
//! delete, and read or set compatibility levels.
//!
//! Registry errors print Confluent's error code and message and exit with status 1; `check`
//! also exits 1 when the schema is incompatible, so scripts can gate deployments on it.

use std::io::Read;

use anyhow::{Context, bail};
use serde_json::{Value, json};

/// Arguments of `spate schema`.
#[derive(Debug, clap::Args)]
pub struct SchemaArgs {
    /// Schema registry URL.
    #[arg(
        long,
        env = "SPATE_REGISTRY",
        default_value = "http://localhost:8081",
        global = true
    )]
    registry: String,
    #[command(subcommand)]
    command: SchemaCommand,
}

#[derive(Debug, clap::Subcommand)]
enum SchemaCommand {
    /// Register a schema under a subject; prints its id.
    Register(RegisterArgs),
    /// Print a subject version's schema, or a schema by id.
    Get(GetArgs),
    /// List subjects, or a subject's versions.
    List(ListArgs),
    /// Test a schema against a subject's versions under its compatibility level.
    Check(CheckArgs),
    /// Delete a subject or one version (soft, or --permanent after a soft delete).
    Delete(DeleteArgs),
    /// Print or set the compatibility level, global or of a subject.
    Config(ConfigArgs),
}

/// A schema given on the command line.
#[derive(Debug, clap::Args)]
struct SchemaInput {
    /// File holding the schema; `-` reads stdin.
    #[arg(long, short = 'f', conflicts_with = "schema")]
    file: Option<String>,
    /// The schema's text.
    #[arg(long)]
    schema: Option<String>,
    /// Schema type.
    #[arg(long = "type", value_enum, default_value = "avro")]
    schema_type: SchemaType,
    /// A reference, NAME=SUBJECT:VERSION (repeatable).
    #[arg(long = "reference", value_name = "NAME=SUBJECT:VERSION", value_parser = parse_reference)]
    references: Vec<Value>,
    /// Normalise the schema before comparing it (Confluent's normalize=true).
    #[arg(long)]
    normalize: bool,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum SchemaType {
    Avro,
    Json,
    Protobuf,
}

#[derive(Debug, clap::Args)]
struct RegisterArgs {
    /// Subject, e.g. orders-value.
    subject: String,
    #[command(flatten)]
    input: SchemaInput,
}

#[derive(Debug, clap::Args)]
struct GetArgs {
    /// Subject (or use --id).
    #[arg(required_unless_present = "id")]
    subject: Option<String>,
    /// Version number or `latest`.
    #[arg(long, default_value = "latest")]
    version: String,
    /// A schema id instead of a subject version.
    #[arg(long, conflicts_with = "subject")]
    id: Option<i32>,
    /// Print only the schema text, not the registry's JSON document.
    #[arg(long)]
    raw: bool,
}

#[derive(Debug, clap::Args)]
struct ListArgs {
    /// A subject: list its versions instead of the subjects.
    subject: Option<String>,
    /// Only subjects starting with this.
    #[arg(long, default_value = "")]
    prefix: String,
    /// Include soft-deleted subjects or versions.
    #[arg(long)]
    deleted: bool,
}

#[derive(Debug, clap::Args)]
struct CheckArgs {
    /// Subject to check against.
    subject: String,
    /// Check against this version only (number or `latest`); by default against the
    /// versions the subject's level names.
    #[arg(long)]
    version: Option<String>,
    #[command(flatten)]
    input: SchemaInput,
}

#[derive(Debug, clap::Args)]
struct DeleteArgs {
    /// Subject.
    subject: String,
    /// Delete only this version (number or `latest`).
    #[arg(long)]
    version: Option<String>,
    /// Delete permanently (only what was soft-deleted before).
    #[arg(long)]
    permanent: bool,
}

#[derive(Debug, clap::Args)]
struct ConfigArgs {
    /// Subject; without it, the global level.
    subject: Option<String>,
    /// Set this level: NONE, BACKWARD, BACKWARD_TRANSITIVE, FORWARD, FORWARD_TRANSITIVE,
    /// FULL or FULL_TRANSITIVE.
    #[arg(long, conflicts_with = "delete")]
    set: Option<String>,
    /// Remove the subject's own level (it falls back to the global one).
    #[arg(long, requires = "subject")]
    delete: bool,
}

fn parse_reference(value: &str) -> Result<Value, String> {
    let parsed = value.split_once('=').and_then(|(name, rest)| {
        let (subject, version) = rest.rsplit_once(':')?;
        let version: i32 = version.parse().ok()?;
        Some(json!({"name": name, "subject": subject, "version": version}))
    });
    parsed.ok_or_else(|| format!("expected NAME=SUBJECT:VERSION, got {value:?}"))
}

/// Percent-encodes a subject for a URL path segment.
fn segment(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

struct Registry {
    base: String,
    agent: ureq::Agent,
}

impl Registry {
    fn new(url: &str) -> Registry {
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(std::time::Duration::from_secs(30)))
            .build()
            .into();
        Registry {
            base: url.trim_end_matches('/').to_string(),
            agent,
        }
    }

    /// Sends a request; a registry error becomes an error naming its code and message.
    fn call(&self, method: &str, path: &str, body: Option<&Value>) -> anyhow::Result<Value> {
        let url = format!("{}{path}", self.base);
        let content_type = "application/vnd.schemaregistry.v1+json";
        let response = match (method, body) {
            ("GET", _) => self.agent.get(&url).call(),
            ("DELETE", _) => self.agent.delete(&url).call(),
            ("POST", Some(body)) => self
                .agent
                .post(&url)
                .header("Content-Type", content_type)
                .send(body.to_string()),
            ("PUT", Some(body)) => self
                .agent
                .put(&url)
                .header("Content-Type", content_type)
                .send(body.to_string()),
            _ => bail!("unsupported request {method} {path}"),
        }
        .with_context(|| format!("cannot reach the schema registry at {}", self.base))?;
        let status = response.status();
        let text = response
            .into_body()
            .read_to_string()
            .context("reading the registry's answer")?;
        let value: Value = serde_json::from_str(&text).unwrap_or(Value::String(text));
        if !status.is_success() {
            let code = value.get("error_code").and_then(Value::as_i64);
            let message = value
                .get("message")
                .and_then(Value::as_str)
                .map(str::to_string)
                .unwrap_or_else(|| value.to_string());
            match code {
                Some(code) => bail!("{message} (error code {code})"),
                None => bail!("{message} (HTTP {status})"),
            }
        }
        Ok(value)
    }
}

fn read_schema(input: &SchemaInput) -> anyhow::Result<Value> {
    let text = match (&input.file, &input.schema) {
        (Some(path), _) if path == "-" => {
            let mut text = String::new();
            std::io::stdin()
                .read_to_string(&mut text)
                .context("reading the schema from stdin")?;
            text
        }
        (Some(path), _) => {
            std::fs::read_to_string(path).with_context(|| format!("reading {path}"))?
        }
        (None, Some(text)) => text.clone(),
        (None, None) => bail!("give the schema with --file or --schema"),
    };
    let schema_type = match input.schema_type {
        SchemaType::Avro => "AVRO",
        SchemaType::Json => "JSON",
        SchemaType::Protobuf => "PROTOBUF",
    };
    let mut body = json!({"schema": text, "schemaType": schema_type});
    if !input.references.is_empty() {
        body["references"] = Value::Array(input.references.clone());
    }
    Ok(body)
}

/// Runs `spate schema`.
pub fn run(args: SchemaArgs) -> anyhow::Result<()> {
    let registry = Registry::new(&args.registry);
    match args.command {
        SchemaCommand::Register(a) => {
            let body = read_schema(&a.input)?;
            let path = format!(
                "/subjects/{}/versions?normalize={}",
                segment(&a.subject),
                a.input.normalize
            );
            let answer = registry.call("POST", &path, Some(&body))?;
            let id = answer.get("id").and_then(Value::as_i64).unwrap_or(-1);
            println!("{id}");
        }
        SchemaCommand::Get(a) => {
            let answer = match (a.id, &a.subject) {
                (Some(id), _) => registry.call("GET", &format!("/schemas/ids/{id}"), None)?,
                (None, Some(subject)) => registry.call(
                    "GET",
                    &format!(
                        "/subjects/{}/versions/{}",
                        segment(subject),
                        segment(&a.version)
                    ),
                    None,
                )?,
                (None, None) => bail!("give a subject or --id"),
            };
            if a.raw {
                println!(
                    "{}",
                    answer.get("schema").and_then(Value::as_str).unwrap_or("")
                );
            } else {
                println!("{answer}");
            }
        }
        SchemaCommand::List(a) => {
            let answer = match &a.subject {
                Some(subject) => registry.call(
                    "GET",
                    &format!(
                        "/subjects/{}/versions?deleted={}",
                        segment(subject),
                        a.deleted
                    ),
                    None,
                )?,
                None => registry.call(
                    "GET",
                    &format!(
                        "/subjects?deleted={}&subjectPrefix={}",
                        a.deleted,
                        segment(&a.prefix)
                    ),
                    None,
                )?,
            };
            for item in answer.as_array().into_iter().flatten() {
                match item {
                    Value::String(s) => println!("{s}"),
                    other => println!("{other}"),
                }
            }
        }
        SchemaCommand::Check(a) => {
            let body = read_schema(&a.input)?;
            let versions = match &a.version {
                Some(v) => format!("/versions/{}", segment(v)),
                None => "/versions".to_string(),
            };
            let path = format!(
                "/compatibility/subjects/{}{versions}?verbose=true&normalize={}",
                segment(&a.subject),
                a.input.normalize
            );
            let answer = registry.call("POST", &path, Some(&body))?;
            if answer.get("is_compatible").and_then(Value::as_bool) == Some(true) {
                println!("compatible");
            } else {
                println!("incompatible");
                for message in answer
                    .get("messages")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                {
                    println!("  {}", message.as_str().unwrap_or_default());
                }
                bail!("the schema is not compatible with subject {}", a.subject);
            }
        }
        SchemaCommand::Delete(a) => {
            let path = match &a.version {
                Some(v) => format!(
                    "/subjects/{}/versions/{}?permanent={}",
                    segment(&a.subject),
                    segment(v),
                    a.permanent
                ),
                None => format!(
                    "/subjects/{}?permanent={}",
                    segment(&a.subject),
                    a.permanent
                ),
            };
            let answer = registry.call("DELETE", &path, None)?;
            match answer {
                Value::Array(versions) => {
                    for v in versions {
                        println!("{v}");
                    }
                }
                other => println!("{other}"),
            }
        }
        SchemaCommand::Config(a) => {
            let path = match &a.subject {
                Some(subject) => format!("/config/{}", segment(subject)),
                None => "/config".to_string(),
            };
            let answer = if let Some(level) = &a.set {
                registry.call("PUT", &path, Some(&json!({"compatibility": level})))?
            } else if a.delete {
                registry.call("DELETE", &path, None)?
            } else if a.subject.is_some() {
                registry.call("GET", &format!("{path}?defaultToGlobal=true"), None)?
            } else {
                registry.call("GET", &path, None)?
            };
            let level = answer
                .get("compatibilityLevel")
                .or_else(|| answer.get("compatibility"))
                .and_then(Value::as_str)
                .unwrap_or_default();
            println!("{level}");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_parse_as_name_subject_version() {
        assert_eq!(
            parse_reference("shop.Customer=customers-value:3").expect("parses"),
            json!({"name": "shop.Customer", "subject": "customers-value", "version": 3})
        );
        assert!(parse_reference("no-version=subject").is_err());
    }

    #[test]
    fn subjects_are_percent_encoded_in_paths() {
        assert_eq!(segment("orders-value"), "orders-value");
        assert_eq!(segment("a/b c"), "a%2Fb%20c");
    }
}
