//! Sending one request until it is delivered or cannot be: a blocking `ureq` agent (sink tasks
//! run on their own threads), each attempt bounded by `http.connect.timeout.ms` and
//! `http.request.timeout.ms`, retries on transport errors and on the statuses
//! `retry.on.status.codes` names (and always 408 and 429) with a capped backoff, and the
//! `Authorization` header `auth.type` asks for, OAuth 2 tokens fetched and renewed on a 401.

use std::io::Read;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use ureq::tls::{RootCerts, TlsConfig, TlsProvider};

use super::config::{Auth, BackoffPolicy, BodyFormat, MAX_BACKOFF, OAuth2, Settings};

/// Bytes of a failed response's body kept for the error message.
const BODY_EXCERPT_BYTES: u64 = 512;
/// Bytes of a token response read at most.
const TOKEN_RESPONSE_BYTES: u64 = 64 * 1024;

/// The wait before each retry. Randomness comes from a seed, so tests can fix it.
#[derive(Debug, Clone)]
pub struct Backoff {
    initial: Duration,
    policy: BackoffPolicy,
    state: u64,
}

impl Backoff {
    /// A backoff starting at `initial`, jittered from `seed`.
    pub fn new(initial: Duration, policy: BackoffPolicy, seed: u64) -> Backoff {
        Backoff {
            initial,
            policy,
            state: seed | 1,
        }
    }

    /// The wait before retry number `retry` (0 for the first retry).
    pub fn delay(&mut self, retry: u32) -> Duration {
        match self.policy {
            BackoffPolicy::Constant => self.initial.min(MAX_BACKOFF),
            BackoffPolicy::ExponentialWithJitter => {
                let full = self
                    .initial
                    .saturating_mul(1u32 << retry.min(20))
                    .min(MAX_BACKOFF);
                // Between half and all of it, so that tasks failing together retry apart.
                let half = full / 2;
                half + half.mul_f64(self.next_unit())
            }
        }
    }

    /// xorshift64*: a number in [0, 1).
    fn next_unit(&mut self) -> f64 {
        self.state ^= self.state >> 12;
        self.state ^= self.state << 25;
        self.state ^= self.state >> 27;
        (self.state.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// Why an attempt did not deliver.
#[derive(Debug)]
enum Failure {
    Status { status: u16, body: String },
    Transport(String),
}

/// An HTTP client configured by the sink's settings.
pub struct Client {
    agent: ureq::Agent,
    settings: Settings,
    backoff: Backoff,
    token: Option<String>,
}

impl Client {
    /// A client for `settings`; TLS trusts the system's root certificates.
    pub fn new(settings: Settings) -> Result<Client, String> {
        let proxy = match &settings.proxy {
            Some(uri) => Some(
                ureq::Proxy::new(uri).map_err(|e| format!("the proxy {uri} is invalid: {e}"))?,
            ),
            None => None,
        };
        let uses_tls = settings.url.starts_with("https:")
            || matches!(&settings.auth, Auth::OAuth2(o) if o.token_url.starts_with("https:"));
        let roots = if uses_tls {
            let found = rustls_native_certs::load_native_certs();
            if found.certs.is_empty() {
                return Err(format!(
                    "no root certificates found on this system to check the server's certificate: {:?}",
                    found.errors
                ));
            }
            RootCerts::new_with_certs(
                &found
                    .certs
                    .iter()
                    .map(|c| ureq::tls::Certificate::from_der(c.as_ref()).to_owned())
                    .collect::<Vec<_>>(),
            )
        } else {
            RootCerts::Specific(Arc::new(Vec::new()))
        };
        let tls = TlsConfig::builder()
            .provider(TlsProvider::Rustls)
            .unversioned_rustls_crypto_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .root_certs(roots)
            .build();
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .max_redirects(0)
            // Only the configured proxy: none from the environment.
            .proxy(proxy)
            .tls_config(tls)
            .timeout_connect(Some(settings.connect_timeout))
            .timeout_global(Some(settings.request_timeout))
            .user_agent(concat!("spate-connect/", env!("CARGO_PKG_VERSION")))
            .build()
            .new_agent();
        let seed = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(1, |d| d.as_nanos() as u64);
        Ok(Client {
            agent,
            backoff: Backoff::new(settings.retry_backoff, settings.backoff_policy, seed),
            settings,
            token: None,
        })
    }

    /// Sends `body` to `url` with `method`, retrying as configured. The error says what was
    /// sent where and what came back.
    pub fn send(&mut self, method: &str, url: &str, body: Option<&str>) -> Result<(), String> {
        let mut retry = 0;
        loop {
            let failure = match self.attempt(method, url, body) {
                Ok(()) => return Ok(()),
                Err(failure) => failure,
            };
            let retriable = match &failure {
                Failure::Transport(_) => true,
                Failure::Status { status: 401, .. }
                    if matches!(self.settings.auth, Auth::OAuth2(_)) =>
                {
                    // The token may have expired: fetch a new one.
                    self.token = None;
                    true
                }
                Failure::Status { status, .. } => {
                    matches!(status, 408 | 429) || self.settings.retry_on.contains(*status)
                }
            };
            let what = describe(method, url, &failure);
            if !retriable || retry >= self.settings.max_retries {
                let attempts = retry + 1;
                return Err(if attempts > 1 {
                    format!("{what} (after {attempts} attempts)")
                } else {
                    what
                });
            }
            let wait = self.backoff.delay(retry);
            tracing::warn!(
                retry = retry + 1,
                max_retries = self.settings.max_retries,
                wait_ms = wait.as_millis() as u64,
                "http sink: {what}; retrying"
            );
            std::thread::sleep(wait);
            retry += 1;
        }
    }

    fn attempt(&mut self, method: &str, url: &str, body: Option<&str>) -> Result<(), Failure> {
        let mut request = ureq::http::Request::builder().method(method).uri(url);
        let mut has_content_type = false;
        for (name, value) in &self.settings.headers {
            has_content_type |= name.eq_ignore_ascii_case("content-type");
            request = request.header(name, value);
        }
        if body.is_some() && !has_content_type {
            let json = self.settings.body_format == BodyFormat::Json || self.settings.json_as_array;
            request = request.header(
                "Content-Type",
                if json {
                    "application/json"
                } else {
                    "text/plain; charset=utf-8"
                },
            );
        }
        if let Some(authorization) = self.authorization()? {
            request = request.header("Authorization", authorization);
        }
        let result = match body {
            Some(body) => request
                .body(body.as_bytes().to_vec())
                .map_err(|e| Failure::Transport(format!("cannot build the request: {e}")))
                .and_then(|r| self.agent.run(r).map_err(transport)),
            None => request
                .body(())
                .map_err(|e| Failure::Transport(format!("cannot build the request: {e}")))
                .and_then(|r| self.agent.run(r).map_err(transport)),
        };
        let mut response = result?;
        let status = response.status().as_u16();
        if (200..300).contains(&status) {
            // Read what little comes back so that the connection can be used again.
            let _ = std::io::copy(
                &mut response.body_mut().as_reader().take(64 * 1024),
                &mut std::io::sink(),
            );
            return Ok(());
        }
        let mut excerpt = Vec::new();
        let _ = response
            .body_mut()
            .as_reader()
            .take(BODY_EXCERPT_BYTES)
            .read_to_end(&mut excerpt);
        Err(Failure::Status {
            status,
            body: String::from_utf8_lossy(&excerpt)
                .chars()
                .map(|c| if c.is_control() { ' ' } else { c })
                .collect::<String>()
                .trim()
                .to_string(),
        })
    }

    fn authorization(&mut self) -> Result<Option<String>, Failure> {
        Ok(match &self.settings.auth {
            Auth::None => None,
            Auth::Basic { user, password } => Some(format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
            )),
            Auth::Header(value) => Some(value.clone()),
            Auth::OAuth2(oauth) => {
                if self.token.is_none() {
                    self.token = Some(fetch_token(&self.agent, oauth)?);
                }
                self.token.as_ref().map(|t| format!("Bearer {t}"))
            }
        })
    }
}

fn transport(error: ureq::Error) -> Failure {
    Failure::Transport(error.to_string())
}

fn describe(method: &str, url: &str, failure: &Failure) -> String {
    match failure {
        Failure::Status { status, body } => {
            let reason = ureq::http::StatusCode::from_u16(*status)
                .ok()
                .and_then(|s| s.canonical_reason())
                .unwrap_or("");
            let body = if body.is_empty() {
                "an empty body".to_string()
            } else {
                format!("body {body:?}")
            };
            format!("{method} {url} answered {status} {reason} with {body}")
        }
        Failure::Transport(error) => format!("{method} {url} failed: {error}"),
    }
}

/// An OAuth 2 client credentials grant.
fn fetch_token(agent: &ureq::Agent, oauth: &OAuth2) -> Result<String, Failure> {
    let mut form = vec![("grant_type", "client_credentials")];
    if let Some(scope) = &oauth.scope {
        form.push(("scope", scope));
    }
    if !oauth.credentials_in_header {
        form.push(("client_id", &oauth.client_id));
        form.push(("client_secret", &oauth.client_secret));
    }
    let body = form
        .iter()
        .map(|(k, v)| format!("{k}={}", super::batch::encode(v)))
        .collect::<Vec<_>>()
        .join("&");
    let mut request = ureq::http::Request::builder()
        .method("POST")
        .uri(&oauth.token_url)
        .header("Content-Type", "application/x-www-form-urlencoded")
        .header("Accept", "application/json");
    if oauth.credentials_in_header {
        request = request.header(
            "Authorization",
            format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD
                    .encode(format!("{}:{}", oauth.client_id, oauth.client_secret))
            ),
        );
    }
    let failed = |why: String| {
        Failure::Transport(format!(
            "fetching an OAuth 2 token from {} failed: {why}",
            oauth.token_url
        ))
    };
    let request = request
        .body(body.into_bytes())
        .map_err(|e| failed(e.to_string()))?;
    let mut response = agent.run(request).map_err(|e| failed(e.to_string()))?;
    let mut text = Vec::new();
    response
        .body_mut()
        .as_reader()
        .take(TOKEN_RESPONSE_BYTES)
        .read_to_end(&mut text)
        .map_err(|e| failed(e.to_string()))?;
    if !response.status().is_success() {
        return Err(failed(format!(
            "it answered {} with {:?}",
            response.status(),
            String::from_utf8_lossy(&text[..text.len().min(BODY_EXCERPT_BYTES as usize)])
        )));
    }
    let json: serde_json::Value = serde_json::from_slice(&text)
        .map_err(|e| failed(format!("the answer is not JSON: {e}")))?;
    json.get(&oauth.token_property)
        .and_then(serde_json::Value::as_str)
        .map(str::to_string)
        .ok_or_else(|| failed(format!("the answer has no string {}", oauth.token_property)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exponential_backoff_doubles_with_jitter_up_to_the_cap() {
        let mut backoff = Backoff::new(
            Duration::from_millis(100),
            BackoffPolicy::ExponentialWithJitter,
            42,
        );
        for retry in 0..12 {
            let full = (Duration::from_millis(100) * (1 << retry)).min(MAX_BACKOFF);
            let wait = backoff.delay(retry);
            assert!(wait >= full / 2 && wait <= full, "retry {retry}: {wait:?}");
        }
        assert!(backoff.delay(u32::MAX) <= MAX_BACKOFF);
        let mut constant = Backoff::new(Duration::from_millis(300), BackoffPolicy::Constant, 1);
        assert_eq!(constant.delay(0), constant.delay(9));
        assert_eq!(constant.delay(5), Duration::from_millis(300));
    }

    #[test]
    fn the_same_seed_gives_the_same_waits() {
        let waits = |seed| {
            let mut b = Backoff::new(
                Duration::from_secs(1),
                BackoffPolicy::ExponentialWithJitter,
                seed,
            );
            (0..5).map(|r| b.delay(r)).collect::<Vec<_>>()
        };
        assert_eq!(waits(7), waits(7));
        assert_ne!(waits(7), waits(8));
    }

    #[test]
    fn failures_name_the_url_the_status_and_the_body() {
        let message = describe(
            "POST",
            "http://h/hook",
            &Failure::Status {
                status: 400,
                body: "bad field".into(),
            },
        );
        assert_eq!(
            message,
            "POST http://h/hook answered 400 Bad Request with body \"bad field\""
        );
    }
}
