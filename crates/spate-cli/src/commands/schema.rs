//! `spate schema`: a client of the schema registry's REST API (Spate's, or Confluent Schema
//! Registry's: only the documented API is used). Register, get, list, check compatibility,
//! delete, read or set compatibility levels and modes, and list contexts.
//!
//! Registry errors print Confluent's error code and message and exit with status 1; `check`
//! also exits 1 when the schema is incompatible, so scripts can gate deployments on it.
//! Credentials: see `registry.rs`.
//!
//! Contexts (Confluent's schema contexts): `--context .staging` makes every subject the
//! command names the qualified subject `:.staging:NAME`, lists the subjects of that context,
//! reads ids in it, and makes the global config and mode those of the context (the subject
//! `:.staging:`, Confluent's context wildcard). Qualified names (`:.ctx:subject`) can also
//! be given directly.

use std::io::Read;

use anyhow::{Context, bail};
use serde_json::{Value, json};

use super::client_args::RegistryArgs;
use super::registry::segment;

/// Arguments of `spate schema`.
#[derive(Debug, clap::Args)]
pub struct SchemaArgs {
    #[command(flatten)]
    registry: RegistryArgs,
    /// A schema context, e.g. `.staging`: subjects, ids and the global config and mode are
    /// those of the context [default: the default context].
    #[arg(
        long,
        global = true,
        env = "SPATE_SCHEMA_CONTEXT",
        value_name = "CONTEXT"
    )]
    context: Option<String>,
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
    /// Print or set the mode (READWRITE, READONLY, IMPORT), global or of a subject.
    Mode(ModeArgs),
    /// List the registry's contexts.
    Contexts,
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

#[derive(Debug, clap::Args)]
struct ModeArgs {
    /// Subject; without it, the global mode (of the context, with --context).
    subject: Option<String>,
    /// Set this mode: READWRITE, READONLY, READONLY_OVERRIDE or IMPORT.
    #[arg(long, conflicts_with = "delete", value_parser = parse_mode)]
    set: Option<String>,
    /// With --set IMPORT: switch even though the registry (or subject) has schemas.
    #[arg(long, requires = "set")]
    force: bool,
    /// Remove the subject's own mode (it falls back to the global one).
    #[arg(long, requires = "subject")]
    delete: bool,
}

fn parse_mode(value: &str) -> Result<String, String> {
    let mode = value.trim().to_ascii_uppercase();
    match mode.as_str() {
        "READWRITE" | "READONLY" | "READONLY_OVERRIDE" | "IMPORT" => Ok(mode),
        _ => Err(format!(
            "unknown mode {value:?}: use READWRITE, READONLY, READONLY_OVERRIDE or IMPORT"
        )),
    }
}

/// Subjects and paths of one context.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Scope {
    /// The context with its leading dot, `None` for the default context.
    context: Option<String>,
}

impl Scope {
    fn new(context: Option<&str>) -> anyhow::Result<Scope> {
        let context = match context.map(str::trim) {
            None | Some("") | Some(".") => None,
            Some(name) if name.contains(':') => {
                bail!("a context name cannot contain ':', got {name:?}")
            }
            Some(name) if name.starts_with('.') => Some(name.to_string()),
            Some(name) => Some(format!(".{name}")),
        };
        Ok(Scope { context })
    }

    /// The subject as the registry names it: qualified with the context, unless it is
    /// qualified already.
    fn subject(&self, subject: &str) -> String {
        match &self.context {
            Some(context) if !subject.starts_with(':') => format!(":{context}:{subject}"),
            _ => subject.to_string(),
        }
    }

    /// The path of a context-wide setting (`/config`, `/mode`): the context wildcard subject
    /// in a named context, else the global path.
    fn global_path(&self, base: &str) -> String {
        match &self.context {
            Some(context) => format!("{base}/{}", segment(&format!(":{context}:"))),
            None => base.to_string(),
        }
    }

    /// The prefix of the context's qualified subjects (empty for the default context).
    fn prefix(&self) -> String {
        self.context
            .as_ref()
            .map_or(String::new(), |c| format!(":{c}:"))
    }
}

fn parse_reference(value: &str) -> Result<Value, String> {
    let parsed = value.split_once('=').and_then(|(name, rest)| {
        let (subject, version) = rest.rsplit_once(':')?;
        let version: i32 = version.parse().ok()?;
        Some(json!({"name": name, "subject": subject, "version": version}))
    });
    parsed.ok_or_else(|| format!("expected NAME=SUBJECT:VERSION, got {value:?}"))
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
    let scope = Scope::new(args.context.as_deref())?;
    let registry = args.registry.client()?;
    match args.command {
        SchemaCommand::Register(a) => {
            let body = read_schema(&a.input)?;
            let path = format!(
                "/subjects/{}/versions?normalize={}",
                segment(&scope.subject(&a.subject)),
                a.input.normalize
            );
            let answer = registry.call("POST", &path, Some(&body))?;
            let id = answer.get("id").and_then(Value::as_i64).unwrap_or(-1);
            println!("{id}");
        }
        SchemaCommand::Get(a) => {
            let answer = match (a.id, &a.subject) {
                (Some(id), _) if scope.context.is_some() => registry.call(
                    "GET",
                    &format!("/schemas/ids/{id}?subject={}", segment(&scope.prefix())),
                    None,
                )?,
                (Some(id), _) => registry.call("GET", &format!("/schemas/ids/{id}"), None)?,
                (None, Some(subject)) => registry.call(
                    "GET",
                    &format!(
                        "/subjects/{}/versions/{}",
                        segment(&scope.subject(subject)),
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
                        segment(&scope.subject(subject)),
                        a.deleted
                    ),
                    None,
                )?,
                None => registry.call(
                    "GET",
                    &format!(
                        "/subjects?deleted={}&subjectPrefix={}",
                        a.deleted,
                        segment(&format!("{}{}", scope.prefix(), a.prefix))
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
                segment(&scope.subject(&a.subject)),
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
            let subject = segment(&scope.subject(&a.subject));
            let path = match &a.version {
                Some(v) => format!(
                    "/subjects/{subject}/versions/{}?permanent={}",
                    segment(v),
                    a.permanent
                ),
                None => format!("/subjects/{subject}?permanent={}", a.permanent),
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
                Some(subject) => format!("/config/{}", segment(&scope.subject(subject))),
                None => scope.global_path("/config"),
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
        SchemaCommand::Mode(a) => {
            let path = match &a.subject {
                Some(subject) => format!("/mode/{}", segment(&scope.subject(subject))),
                None => scope.global_path("/mode"),
            };
            let answer = if let Some(mode) = &a.set {
                let query = if a.force { "?force=true" } else { "" };
                registry.call(
                    "PUT",
                    &format!("{path}{query}"),
                    Some(&json!({"mode": mode})),
                )?
            } else if a.delete {
                registry.call("DELETE", &path, None)?
            } else if a.subject.is_some() {
                registry.call("GET", &format!("{path}?defaultToGlobal=true"), None)?
            } else {
                registry.call("GET", &path, None)?
            };
            println!(
                "{}",
                answer
                    .get("mode")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
            );
        }
        SchemaCommand::Contexts => {
            let answer = registry.call("GET", "/contexts", None)?;
            for item in answer.as_array().into_iter().flatten() {
                match item {
                    Value::String(s) => println!("{s}"),
                    other => println!("{other}"),
                }
            }
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
    fn contexts_qualify_subjects_and_scope_global_settings() {
        let default = Scope::new(None).expect("default");
        assert_eq!(default.subject("orders-value"), "orders-value");
        assert_eq!(default.global_path("/mode"), "/mode");
        assert_eq!(default.prefix(), "");
        assert_eq!(Scope::new(Some(".")).expect("dot"), default);

        let staging = Scope::new(Some("staging")).expect("named");
        assert_eq!(staging.subject("orders-value"), ":.staging:orders-value");
        assert_eq!(
            staging.subject(":.other:orders-value"),
            ":.other:orders-value",
            "a qualified name stays as given"
        );
        assert_eq!(staging.global_path("/config"), "/config/%3A.staging%3A");
        assert_eq!(staging.prefix(), ":.staging:");
        assert!(Scope::new(Some(".a:b")).is_err());
    }

    #[test]
    fn modes_are_confluents() {
        assert_eq!(parse_mode("readonly"), Ok("READONLY".to_string()));
        assert!(parse_mode("WRITEONLY").is_err());
    }
}
