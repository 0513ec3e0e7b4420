//! A client of the schema registry's REST API (Spate's, or Confluent Schema Registry's: only
//! the documented API is used), shared by `spate schema` and by `produce`/`consume` when they
//! encode or decode schema'd records.
//!
//! A registry that authenticates (Spate's with `http-auth`, Confluent's with basic auth or
//! OAuth) gets HTTP Basic credentials from `--registry-user` (or `SPATE_REGISTRY_USER`) with
//! `SPATE_REGISTRY_PASSWORD`, or from the URL's `user:password@`, or a bearer token from
//! `SPATE_REGISTRY_TOKEN`. Secrets come from the environment (or a profile that saved them),
//! not flags, so they stay out of process listings, and no error message repeats them.
//! Registry errors carry Confluent's error code and message.

use anyhow::{Context, bail};
use base64::Engine;
use serde_json::Value;

/// Where the registry password comes from.
pub const PASSWORD_ENV: &str = "SPATE_REGISTRY_PASSWORD";
/// Where a bearer token for the registry comes from.
pub const TOKEN_ENV: &str = "SPATE_REGISTRY_TOKEN";

/// Percent-encodes a subject for a URL path segment.
pub fn segment(text: &str) -> String {
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
pub(crate) fn split_user_info(url: &str) -> anyhow::Result<(String, Option<(String, String)>)> {
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
pub fn env_secret(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

pub struct Registry {
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

    /// Connects to the registry at `url` (user info in the URL gives basic credentials), with
    /// basic credentials from `user` and `password` or a bearer `token`.
    pub fn connect(
        url: &str,
        user: Option<String>,
        password: Option<String>,
        token: Option<String>,
    ) -> anyhow::Result<Registry> {
        let (base, authorization) = connection(url, user, password, token)?;
        Ok(Registry::new(base, authorization))
    }

    /// The registry's URL, without credentials.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// Sends a request; a registry error becomes an error naming its code and message.
    pub fn call(&self, method: &str, path: &str, body: Option<&Value>) -> anyhow::Result<Value> {
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

#[cfg(test)]
mod tests {
    use super::*;

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
        assert_eq!(segment(":.ctx:orders"), "%3A.ctx%3Aorders");
    }
}
