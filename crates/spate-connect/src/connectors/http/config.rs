//! The HTTP sink's settings, read from Confluent's keys (`io.confluent.connect.http`) or
//! Aiven's (`io.aiven.kafka.connect.http`) into one [`Settings`], with every problem found on
//! the way named by its key. Pure: no I/O.

use std::time::Duration;

use crate::config::{ConfigProblem, Props, Reader};

/// Records per request at most, whatever `batch.max.size` says: a batch is held in memory
/// until it is delivered.
pub const MAX_BATCH_RECORDS: usize = 10_000;
/// Retries per request at most.
pub const MAX_RETRIES: u32 = 1_000;
/// The longest wait between two attempts, whatever the backoff policy grows to.
pub const MAX_BACKOFF: Duration = Duration::from_secs(60);

/// An HTTP request method the sink sends records with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// `POST` (the default).
    Post,
    /// `PUT`.
    Put,
    /// `PATCH`.
    Patch,
    /// `DELETE` (with the batch as its body).
    Delete,
}

impl Method {
    /// The method's name on the wire.
    pub fn name(self) -> &'static str {
        match self {
            Method::Post => "POST",
            Method::Put => "PUT",
            Method::Patch => "PATCH",
            Method::Delete => "DELETE",
        }
    }
}

/// How a request proves who sends it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Auth {
    /// Nothing.
    None,
    /// `Authorization: Basic base64(user:password)`.
    Basic {
        /// The user.
        user: String,
        /// The password.
        password: String,
    },
    /// A fixed `Authorization` header value (`Bearer <token>`, Aiven's `static`).
    Header(String),
    /// OAuth 2 client credentials: a token fetched from `token_url` and sent as a bearer token.
    OAuth2(OAuth2),
}

/// OAuth 2 client credentials grant settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OAuth2 {
    /// Where tokens come from.
    pub token_url: String,
    /// The client id.
    pub client_id: String,
    /// The client secret.
    pub client_secret: String,
    /// The scope asked for, if any.
    pub scope: Option<String>,
    /// The property of the token response holding the token.
    pub token_property: String,
    /// Whether the client credentials go in an `Authorization: Basic` header (else in the form).
    pub credentials_in_header: bool,
}

/// How a record's value becomes text in a request body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyFormat {
    /// A string value as it is; anything else as JSON text.
    String,
    /// The value as JSON.
    Json,
}

/// What to do with a record whose value is null (a tombstone).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnNull {
    /// Skip it.
    Ignore,
    /// Skip it and log where it was.
    Log,
    /// Treat it as an error, handled as `behavior.on.error` says.
    Fail,
    /// Send a `DELETE` to the record's URL.
    Delete,
}

/// What to do when a request is not delivered after its retries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnError {
    /// Fail the task: its offsets are not committed, so the records are sent again after a
    /// restart.
    Fail,
    /// Log the failure and go on; the records are lost.
    Log,
    /// Go on silently; the records are lost.
    Ignore,
}

/// Status codes as `retry.on.status.codes` gives them: `404,408,500-` or `400-499`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusRanges(Vec<(u16, u16)>);

impl StatusRanges {
    /// Parses a comma-separated list of codes and inclusive ranges, `500-` meaning 500 and up.
    pub fn parse(text: &str) -> Result<StatusRanges, String> {
        let code = |s: &str| -> Result<u16, String> {
            match s.trim().parse::<u16>() {
                Ok(n) if (100..=599).contains(&n) => Ok(n),
                _ => Err(format!(
                    "{:?} is not an HTTP status code (100 to 599)",
                    s.trim()
                )),
            }
        };
        let mut ranges = Vec::new();
        for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let range = match part.split_once('-') {
                None => (code(part)?, code(part)?),
                Some((start, end)) if end.trim().is_empty() => (code(start)?, 599),
                Some((start, end)) => (code(start)?, code(end)?),
            };
            if range.0 > range.1 {
                return Err(format!("the range {part} ends before it starts"));
            }
            ranges.push(range);
        }
        Ok(StatusRanges(ranges))
    }

    /// Whether `status` is one of the codes.
    pub fn contains(&self, status: u16) -> bool {
        self.0.iter().any(|(lo, hi)| (*lo..=*hi).contains(&status))
    }
}

/// How the wait between attempts grows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BackoffPolicy {
    /// `retry.backoff.ms` every time.
    Constant,
    /// `retry.backoff.ms` doubled per attempt, capped at [`MAX_BACKOFF`], with jitter.
    ExponentialWithJitter,
}

/// Everything the sink task needs, whichever connector's keys it came from.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    /// The URL; `${topic}` and `${key}` are replaced per record.
    pub url: String,
    /// The method of requests carrying records.
    pub method: Method,
    /// Headers sent with every request, in order.
    pub headers: Vec<(String, String)>,
    /// Authentication.
    pub auth: Auth,
    /// Records per request at most.
    pub batch_max_size: usize,
    /// Text before a batch's first record.
    pub batch_prefix: String,
    /// Text after a batch's last record.
    pub batch_suffix: String,
    /// Text between records.
    pub batch_separator: String,
    /// How a value becomes text.
    pub body_format: BodyFormat,
    /// Whether a batch is sent as a JSON array (overriding prefix, suffix and separator).
    pub json_as_array: bool,
    /// Retries after the first attempt at most.
    pub max_retries: u32,
    /// The first wait between attempts.
    pub retry_backoff: Duration,
    /// How the wait grows.
    pub backoff_policy: BackoffPolicy,
    /// Statuses that are retried (transport errors always are).
    pub retry_on: StatusRanges,
    /// The limit on connecting.
    pub connect_timeout: Duration,
    /// The limit on one attempt, from connecting to the end of the response.
    pub request_timeout: Duration,
    /// Tombstones.
    pub on_null: OnNull,
    /// Undelivered requests.
    pub on_error: OnError,
    /// An HTTP proxy (`http://user:password@host:port`), if any.
    pub proxy: Option<String>,
}

/// A required URL that `check_url` accepts.
fn url(r: &mut Reader, key: &str) -> String {
    let url = r.required(key);
    if !url.is_empty()
        && let Err(why) = check_url(&url)
    {
        r.problem(
            key,
            format!("Invalid value {url} for configuration {key}: {why}"),
        );
    }
    url
}

/// `Name:Value` pairs split by `separator`.
fn read_headers(r: &mut Reader, key: &str, separator: &str) -> Vec<(String, String)> {
    let text = r.string(key, "");
    if text.trim().is_empty() {
        return Vec::new();
    }
    let mut headers = Vec::new();
    for entry in text.split(separator).filter(|e| !e.trim().is_empty()) {
        match entry.split_once(':') {
                Some((name, value)) if is_header_name(name.trim()) => {
                    headers.push((name.trim().to_string(), value.trim().to_string()))
                }
                _ => r.problem(
                    key,
                    format!(
                        "Invalid header {:?} in {key}: write headers as Name:Value, separated by {separator:?}",
                        entry.trim()
                    ),
                ),
            }
    }
    headers
}

fn is_header_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// Whether `url` (with its `${topic}`/`${key}` placeholders) is an absolute http(s) URL.
pub fn check_url(url: &str) -> Result<(), String> {
    if !url.contains("://") {
        return Err("the URL must start with http:// or https://".to_string());
    }
    let probe = url.replace("${topic}", "topic").replace("${key}", "key");
    let uri: ureq::http::Uri = probe.parse().map_err(|e| format!("not a valid URL: {e}"))?;
    match uri.scheme_str() {
        Some("http" | "https") => {}
        Some(other) => return Err(format!("the scheme must be http or https, not {other}")),
        None => return Err("the URL has no scheme".to_string()),
    }
    if uri.host().is_none_or(str::is_empty) {
        return Err("the URL has no host".to_string());
    }
    Ok(())
}

/// Confluent's keys (`io.confluent.connect.http.HttpSinkConnector`).
pub fn confluent(props: &Props) -> Result<Settings, Vec<ConfigProblem>> {
    let mut r = Reader::new(props);
    let url = url(&mut r, "http.api.url");
    let method = [Method::Post, Method::Put, Method::Patch, Method::Delete]
        [r.choice("request.method", 0, &["POST", "PUT", "PATCH", "DELETE"])];
    let separator = r.string("header.separator", "|");
    if separator.is_empty() {
        r.problem("header.separator", "header.separator must not be empty");
    }
    let headers = if separator.is_empty() {
        Vec::new()
    } else {
        read_headers(&mut r, "headers", &separator)
    };
    let auth = match r.choice(
        "auth.type",
        0,
        &["NONE", "BASIC", "OAUTH2", "BEARER", "THIRD_PARTY"],
    ) {
        1 => {
            let user = r.string("connection.user", "");
            if user.is_empty() {
                r.problem(
                    "connection.user",
                    "auth.type BASIC needs connection.user (and connection.password)",
                );
            }
            Auth::Basic {
                user,
                password: r.string("connection.password", ""),
            }
        }
        2 => {
            let mut needed = |key: &str| {
                let value = r.string(key, "");
                if value.trim().is_empty() {
                    r.problem(key, format!("auth.type OAUTH2 needs {key}"));
                }
                value
            };
            let token_url = needed("oauth2.token.url");
            let client_id = needed("oauth2.client.id");
            let client_secret = needed("oauth2.client.secret");
            if !token_url.is_empty()
                && let Err(why) = check_url(&token_url)
            {
                r.problem(
                    "oauth2.token.url",
                    format!("Invalid value {token_url} for configuration oauth2.token.url: {why}"),
                );
            }
            let scope = r.string("oauth2.client.scope", "any");
            Auth::OAuth2(OAuth2 {
                token_url,
                client_id,
                client_secret,
                scope: (!scope.is_empty()).then_some(scope),
                token_property: r.string("oauth2.token.property", "access_token"),
                credentials_in_header: r.choice("oauth2.client.auth.mode", 0, &["header", "url"])
                    == 0,
            })
        }
        3 => {
            let token = r.string("bearer.token", "");
            if token.trim().is_empty() {
                r.problem("bearer.token", "auth.type BEARER needs bearer.token");
            }
            Auth::Header(format!("Bearer {}", token.trim()))
        }
        4 => {
            r.problem(
                "auth.type",
                "auth.type THIRD_PARTY is not supported by Spate; use OAUTH2, BEARER or a headers entry",
            );
            Auth::None
        }
        _ => Auth::None,
    };
    let batch_max_size = r.unsigned("batch.max.size", 1, 1..=MAX_BATCH_RECORDS as u64) as usize;
    let body_format = [BodyFormat::String, BodyFormat::Json]
        [r.choice("request.body.format", 0, &["string", "json"])];
    let max_retries = r.unsigned("max.retries", 10, 0..=u64::from(MAX_RETRIES)) as u32;
    let retry_backoff = Duration::from_millis(r.unsigned(
        "retry.backoff.ms",
        3000,
        0..=MAX_BACKOFF.as_millis() as u64,
    ));
    let backoff_policy = [
        BackoffPolicy::Constant,
        BackoffPolicy::ExponentialWithJitter,
    ][r.choice(
        "retry.backoff.policy",
        1,
        &["CONSTANT_VALUE", "EXPONENTIAL_WITH_JITTER"],
    )];
    let retry_on = match StatusRanges::parse(&r.string("retry.on.status.codes", "400-")) {
        Ok(ranges) => ranges,
        Err(why) => {
            r.problem(
                "retry.on.status.codes",
                format!("Invalid value for configuration retry.on.status.codes: {why}"),
            );
            StatusRanges(Vec::new())
        }
    };
    let connect_timeout =
        Duration::from_millis(r.unsigned("http.connect.timeout.ms", 30_000, 1..=3_600_000));
    let request_timeout =
        Duration::from_millis(r.unsigned("http.request.timeout.ms", 30_000, 1..=3_600_000));
    let on_null = [OnNull::Ignore, OnNull::Delete, OnNull::Log, OnNull::Fail][r.choice(
        "behavior.on.null.values",
        0,
        &["ignore", "delete", "log", "fail"],
    )];
    let on_error = [OnError::Fail, OnError::Log, OnError::Ignore]
        [r.choice("behavior.on.error", 0, &["fail", "log", "ignore"])];
    let proxy = proxy(&mut r);
    for key in [
        "https.ssl.truststore.location",
        "https.ssl.keystore.location",
    ] {
        if props.get(key).is_some_and(|v| !v.is_empty()) {
            r.problem(
                key,
                format!("{key} is not supported by Spate, which trusts the system's root certificates; leave it unset"),
            );
        }
    }
    let settings = Settings {
        url,
        method,
        headers,
        auth,
        batch_max_size,
        batch_prefix: r.string("batch.prefix", ""),
        batch_suffix: r.string("batch.suffix", ""),
        batch_separator: r.string("batch.separator", ","),
        body_format,
        json_as_array: r.boolean("batch.json.as.array", false),
        max_retries,
        retry_backoff,
        backoff_policy,
        retry_on,
        connect_timeout,
        request_timeout,
        on_null,
        on_error,
        proxy,
    };
    r.finish(settings)
}

fn proxy(r: &mut Reader<'_>) -> Option<String> {
    let host = r.string("http.proxy.host", "");
    if host.trim().is_empty() {
        return None;
    }
    let port = r.unsigned("http.proxy.port", 0, 1..=65_535);
    let user = r.string("http.proxy.user", "");
    let password = r.string("http.proxy.password", "");
    let credentials = if user.is_empty() {
        String::new()
    } else {
        format!("{user}:{password}@")
    };
    Some(format!("http://{credentials}{}:{port}", host.trim()))
}

/// Aiven's keys (`io.aiven.kafka.connect.http.HttpSinkConnector`).
pub fn aiven(props: &Props) -> Result<Settings, Vec<ConfigProblem>> {
    let mut r = Reader::new(props);
    let url = url(&mut r, "http.url");
    let mut headers = Vec::new();
    if let Some(content_type) = props.get("http.headers.content.type")
        && !content_type.trim().is_empty()
    {
        headers.push(("Content-Type".to_string(), content_type.trim().to_string()));
    }
    headers.extend(read_headers(&mut r, "http.headers.additional", ","));
    let auth = match r.choice("http.authorization.type", 0, &["none", "static", "oauth2"]) {
        1 => {
            let value = r.string("http.headers.authorization", "");
            if value.trim().is_empty() {
                r.problem(
                    "http.headers.authorization",
                    "http.authorization.type static needs http.headers.authorization",
                );
            }
            Auth::Header(value.trim().to_string())
        }
        2 => {
            let mut needed = |key: &str| {
                let value = r.string(key, "");
                if value.trim().is_empty() {
                    r.problem(key, format!("http.authorization.type oauth2 needs {key}"));
                }
                value
            };
            let token_url = needed("oauth2.access.token.url");
            let client_id = needed("oauth2.client.id");
            let client_secret = needed("oauth2.client.secret");
            let scope = r.string("oauth2.client.scope", "");
            Auth::OAuth2(OAuth2 {
                token_url,
                client_id,
                client_secret,
                scope: (!scope.is_empty()).then_some(scope),
                token_property: r.string("oauth2.response.token.property", "access_token"),
                credentials_in_header: r.choice(
                    "oauth2.client.authorization.mode",
                    0,
                    &["header", "url"],
                ) == 0,
            })
        }
        _ => Auth::None,
    };
    let batching = r.boolean("batching.enabled", false);
    let batch_max_size = r.unsigned("batch.max.size", 500, 1..=MAX_BATCH_RECORDS as u64) as usize;
    let max_retries = r.unsigned("max.retries", 1, 0..=u64::from(MAX_RETRIES)) as u32;
    let retry_backoff = Duration::from_millis(r.unsigned(
        "retry.backoff.ms",
        3000,
        0..=MAX_BACKOFF.as_millis() as u64,
    ));
    let timeout = Duration::from_secs(r.unsigned("http.timeout", 30, 1..=3600));
    let settings = Settings {
        url,
        method: Method::Post,
        headers,
        auth,
        batch_max_size: if batching { batch_max_size } else { 1 },
        batch_prefix: r.string("batch.prefix", ""),
        batch_suffix: r.string("batch.suffix", "\n"),
        batch_separator: r.string("batch.separator", "\n"),
        body_format: BodyFormat::String,
        json_as_array: false,
        max_retries,
        retry_backoff,
        backoff_policy: BackoffPolicy::Constant,
        retry_on: StatusRanges(vec![(300, 599)]),
        connect_timeout: timeout,
        request_timeout: timeout,
        on_null: OnNull::Ignore,
        on_error: OnError::Fail,
        proxy: None,
    };
    r.finish(settings)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn props(pairs: &[(&str, &str)]) -> Props {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn problem_keys(result: Result<Settings, Vec<ConfigProblem>>) -> Vec<String> {
        result
            .expect_err("the config should be refused")
            .into_iter()
            .map(|p| p.name)
            .collect()
    }

    #[test]
    fn confluent_defaults_are_confluents() {
        let s = confluent(&props(&[("http.api.url", "http://localhost:8080/api")]))
            .expect("valid in this test");
        assert_eq!(s.method, Method::Post);
        assert_eq!(s.auth, Auth::None);
        assert_eq!(s.batch_max_size, 1);
        assert_eq!(s.batch_separator, ",");
        assert_eq!(s.body_format, BodyFormat::String);
        assert_eq!(s.max_retries, 10);
        assert_eq!(s.retry_backoff, Duration::from_millis(3000));
        assert_eq!(s.backoff_policy, BackoffPolicy::ExponentialWithJitter);
        assert!(s.retry_on.contains(400) && s.retry_on.contains(503) && !s.retry_on.contains(302));
        assert_eq!(s.request_timeout, Duration::from_secs(30));
        assert_eq!((s.on_null, s.on_error), (OnNull::Ignore, OnError::Fail));
        assert_eq!(s.proxy, None);
    }

    #[test]
    fn every_bad_key_is_named() {
        let keys = problem_keys(confluent(&props(&[
            ("http.api.url", "ftp://example.com/x"),
            ("request.method", "GET"),
            ("headers", "X-Ok:1|no colon here"),
            ("auth.type", "KERBEROS"),
            ("batch.max.size", "0"),
            ("request.body.format", "xml"),
            ("max.retries", "-1"),
            ("retry.backoff.policy", "LINEAR"),
            ("retry.on.status.codes", "500-400"),
            ("http.request.timeout.ms", "0"),
            ("behavior.on.null.values", "explode"),
            ("behavior.on.error", "retry"),
        ])));
        assert_eq!(
            keys,
            [
                "http.api.url",
                "request.method",
                "headers",
                "auth.type",
                "batch.max.size",
                "request.body.format",
                "max.retries",
                "retry.backoff.policy",
                "retry.on.status.codes",
                "http.request.timeout.ms",
                "behavior.on.null.values",
                "behavior.on.error",
            ]
        );
    }

    #[test]
    fn a_bad_url_is_refused_with_the_reason() {
        for (url, why) in [
            ("localhost:8080/api", "http:// or https://"),
            ("http://", "not a valid URL"),
            ("ftp://example.com/x", "scheme must be http or https"),
            ("http:///path", "not a valid URL"),
        ] {
            let problems =
                confluent(&props(&[("http.api.url", url)])).expect_err("a bad URL is refused");
            assert_eq!(problems.len(), 1, "{url}: {problems:?}");
            assert_eq!(problems[0].name, "http.api.url");
            assert!(
                problems[0].message.contains(why),
                "{url}: {}",
                problems[0].message
            );
        }
        assert!(confluent(&props(&[("http.api.url", "https://h/t/${topic}/${key}")])).is_ok());
    }

    #[test]
    fn auth_types_need_their_keys() {
        let base = [("http.api.url", "http://h/")];
        let with = |extra: &[(&str, &str)]| {
            let mut p = props(&base);
            p.extend(props(extra));
            confluent(&p)
        };
        assert_eq!(
            problem_keys(with(&[("auth.type", "BASIC")])),
            ["connection.user"]
        );
        assert_eq!(
            problem_keys(with(&[("auth.type", "OAUTH2")])),
            [
                "oauth2.token.url",
                "oauth2.client.id",
                "oauth2.client.secret"
            ]
        );
        assert_eq!(
            problem_keys(with(&[("auth.type", "BEARER")])),
            ["bearer.token"]
        );
        assert_eq!(
            problem_keys(with(&[("auth.type", "THIRD_PARTY")])),
            ["auth.type"]
        );
        let s = with(&[
            ("auth.type", "basic"),
            ("connection.user", "u"),
            ("connection.password", "p"),
        ])
        .expect("valid in this test");
        assert_eq!(
            s.auth,
            Auth::Basic {
                user: "u".into(),
                password: "p".into()
            }
        );
        let s =
            with(&[("auth.type", "BEARER"), ("bearer.token", "t0k")]).expect("valid in this test");
        assert_eq!(s.auth, Auth::Header("Bearer t0k".into()));
    }

    #[test]
    fn headers_split_on_the_separator_and_the_first_colon() {
        let s = confluent(&props(&[
            ("http.api.url", "http://h/"),
            (
                "headers",
                "Content-Type: application/json;X-Url:http://x:1/",
            ),
            ("header.separator", ";"),
        ]))
        .expect("valid in this test");
        assert_eq!(
            s.headers,
            [
                ("Content-Type".to_string(), "application/json".to_string()),
                ("X-Url".to_string(), "http://x:1/".to_string()),
            ]
        );
    }

    #[test]
    fn status_ranges_parse_as_confluent_writes_them() {
        let r = StatusRanges::parse("404, 408,500-").expect("valid in this test");
        assert!(r.contains(404) && r.contains(408) && r.contains(500) && r.contains(599));
        assert!(!r.contains(400) && !r.contains(499));
        let r = StatusRanges::parse("400-499").expect("valid in this test");
        assert!(r.contains(400) && r.contains(499) && !r.contains(500));
        assert!(
            !StatusRanges::parse("")
                .expect("valid in this test")
                .contains(500)
        );
        for bad in ["abc", "99", "600-", "500-400", "4x0"] {
            assert!(StatusRanges::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn aiven_keys_map_onto_the_same_settings() {
        let s = aiven(&props(&[
            ("http.url", "http://h/hook"),
            ("http.authorization.type", "static"),
            ("http.headers.authorization", "Bearer abc"),
            ("http.headers.content.type", "application/json"),
            ("batching.enabled", "true"),
            ("batch.max.size", "50"),
        ]))
        .expect("valid in this test");
        assert_eq!(s.url, "http://h/hook");
        assert_eq!(s.auth, Auth::Header("Bearer abc".into()));
        assert_eq!(
            s.headers,
            [("Content-Type".to_string(), "application/json".to_string())]
        );
        assert_eq!(s.batch_max_size, 50);
        assert_eq!(
            (s.batch_separator.as_str(), s.batch_suffix.as_str()),
            ("\n", "\n")
        );
        let s = aiven(&props(&[
            ("http.url", "http://h/hook"),
            ("http.authorization.type", "none"),
            ("batch.max.size", "50"),
        ]))
        .expect("valid in this test");
        assert_eq!(s.batch_max_size, 1, "batching is off unless enabled");
        assert_eq!(
            problem_keys(aiven(&props(&[
                ("http.url", "nope"),
                ("http.authorization.type", "digest")
            ]))),
            ["http.url", "http.authorization.type"]
        );
    }
}
