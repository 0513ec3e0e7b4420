//! `spate schema`: a client of the schema registry's REST API (Spate's, or Confluent Schema
//! Registry's: only the documented API is used). Register, get, list, check compatibility,
//! delete, and read or set compatibility levels.
//!
//! Registry errors print Confluent's error code and message and exit with status 1; `check`
//! also exits 1 when the schema is incompatible, so scripts can gate deployments on it.
//!
//! A registry that authenticates (Spate's with `http-auth`, Confluent's with basic auth or
//! OAuth) gets HTTP Basic credentials from `--registry-user` (or `SPATE_REGISTRY_USER`) with
//! `SPATE_REGISTRY_PASSWORD`, or from the URL's `user:password@`, or a bearer token from
//! `SPATE_REGISTRY_TOKEN`. Secrets come from the environment, not flags, so they stay out of
//! process listings, and no error message repeats them.

use std::io::Read;

use anyhow::{Context, bail};
use base64::Engine;
use serde_json::{Value, json};

/// Where the registry password comes from.
const PASSWORD_ENV: &str = "SPATE_REGISTRY_PASSWORD";
/// Where a bearer token for the registry comes from.
const TOKEN_ENV: &str = "SPATE_REGISTRY_TOKEN";

/// Arguments of `spate schema`.
#[derive(Debug, clap::Args)]
pub struct SchemaArgs {
    /// Schema registry URL; `http://user:password@host:8081` gives basic credentials.
    #[arg(
        long,
        env = "SPATE_REGISTRY",
        default_value = "http://localhost:8081",
        global = true,
        hide_env_values = true
    )]
    registry: String,
    /// User for the registry's basic authentication; the password is read from
    /// SPATE_REGISTRY_PASSWORD. For a bearer token instead, set SPATE_REGISTRY_TOKEN.
    #[arg(long, env = "SPATE_REGISTRY_USER", global = true)]
    registry_user: Option<String>,
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

/// Splits `scheme://user:password@host...` into the URL without the user info and the
/// percent-decoded user and password; a URL without user info comes back as it is.
fn split_user_info(url: &str) -> anyhow::Result<(String, Option<(String, String)>)> {
    let Some((scheme, rest)) = url.split_once("://") else {
        return Ok((url.to_string(), None));
    };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, path) = rest.split_at(authority_end);
    let Some((user_info, host)) = authority.rsplit_once('@') else {
        return Ok((url.to_string(), None));
    };
    let (user, password) = user_info.split_once(':').unwrap_or((user_info, ""));
    let decode = |text: &str| {
        percent_decode(text)
            .context("the registry URL's user:password@ is not valid percent-encoded UTF-8")
    };
    Ok((
        format!("{scheme}://{host}{path}"),
        Some((decode(user)?, decode(password)?)),
    ))
}

fn percent_decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// The registry's URL (without user info) and the `Authorization` header value, if any, from
/// the URL, `--registry-user` and the environment.
fn connection(
    url: &str,
    user: Option<String>,
    password: Option<String>,
    token: Option<String>,
) -> anyhow::Result<(String, Option<String>)> {
    let (base, from_url) = split_user_info(url)?;
    let basic = match (user, from_url) {
        (Some(user), _) => {
            let Some(password) = password else {
                bail!("--registry-user {user} needs the password in {PASSWORD_ENV}");
            };
            Some((user, password))
        }
        (None, Some((user, password))) => Some((user, password)),
        (None, None) => None,
    };
    let header = match (basic, token) {
        (Some(_), Some(_)) => bail!(
            "give the registry either basic credentials (--registry-user or user:password@ in \
             the URL) or {TOKEN_ENV}, not both"
        ),
        (Some((user, password)), None) => {
            let encoded =
                base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
            Some(format!("Basic {encoded}"))
        }
        (None, Some(token)) => Some(format!("Bearer {}", token.trim())),
        (None, None) => None,
    };
    Ok((base.trim_end_matches('/').to_string(), header))
}

/// A non-empty environment variable.
fn env_secret(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

struct Registry {
    base: String,
    agent: ureq::Agent,
    /// The `Authorization` header sent with every request.
    authorization: Option<String>,
}

impl Registry {
    fn new(base: String, authorization: Option<String>) -> Registry {
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(std::time::Duration::from_secs(30)))
            .build()
            .into();
        Registry {
            base,
            agent,
            authorization,
        }
    }

    /// Adds the `Authorization` header, if there are credentials.
    fn authorize<B>(&self, request: ureq::RequestBuilder<B>) -> ureq::RequestBuilder<B> {
        match &self.authorization {
            Some(value) => request.header("Authorization", value),
            None => request,
        }
    }

    /// Sends a request; a registry error becomes an error naming its code and message.
    fn call(&self, method: &str, path: &str, body: Option<&Value>) -> anyhow::Result<Value> {
        let url = format!("{}{path}", self.base);
        let content_type = "application/vnd.schemaregistry.v1+json";
        let response = match (method, body) {
            ("GET", _) => self.authorize(self.agent.get(&url)).call(),
            ("DELETE", _) => self.authorize(self.agent.delete(&url)).call(),
            ("POST", Some(body)) => self
                .authorize(self.agent.post(&url))
                .header("Content-Type", content_type)
                .send(body.to_string()),
            ("PUT", Some(body)) => self
                .authorize(self.agent.put(&url))
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
            let hint = if status.as_u16() == 401 {
                format!(
                    ": the registry wants credentials: --registry-user with {PASSWORD_ENV}, or \
                     {TOKEN_ENV}"
                )
            } else {
                String::new()
            };
            match code {
                Some(code) => bail!("{message} (error code {code}){hint}"),
                None => bail!("{message} (HTTP {status}){hint}"),
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
    let (base, authorization) = connection(
        &args.registry,
        args.registry_user,
        env_secret(PASSWORD_ENV),
        env_secret(TOKEN_ENV),
    )?;
    let registry = Registry::new(base, authorization);
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
    fn credentials_come_from_the_user_flag_the_url_or_a_token() {
        let basic = |user_password: &str| {
            Some(format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(user_password)
            ))
        };
        let plain = connection("http://host:8081/", None, None, None).expect("ok");
        assert_eq!(plain, ("http://host:8081".to_string(), None));

        let flag = connection(
            "http://host:8081",
            Some("alice".into()),
            Some("pw".into()),
            None,
        );
        assert_eq!(flag.expect("ok").1, basic("alice:pw"));

        let url =
            connection("http://bob:p%40ss%3Aword@host:8081/ctx", None, None, None).expect("ok");
        assert_eq!(url.0, "http://host:8081/ctx", "no secret left in the URL");
        assert_eq!(url.1, basic("bob:p@ss:word"));

        let token = connection("http://host:8081", None, None, Some("eyJ.x.y\n".into()));
        assert_eq!(token.expect("ok").1.as_deref(), Some("Bearer eyJ.x.y"));

        let no_password = connection("http://host:8081", Some("alice".into()), None, None)
            .expect_err("a user needs a password");
        assert!(
            no_password.to_string().contains(PASSWORD_ENV),
            "{no_password}"
        );
        assert!(
            connection("http://a:b@host", None, None, Some("t".into())).is_err(),
            "basic and bearer at once"
        );
        assert!(connection("http://a:%zz@host", None, None, None).is_err());
    }

    #[test]
    fn subjects_are_percent_encoded_in_paths() {
        assert_eq!(segment("orders-value"), "orders-value");
        assert_eq!(segment("a/b c"), "a%2Fb%20c");
    }
}
