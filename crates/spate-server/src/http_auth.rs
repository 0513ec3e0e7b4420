//! Authentication on the HTTP listeners: the schema registry's, the admin API's and the
//! in-process Connect worker's (Kafka Connect's REST API).
//!
//! With `http-auth` set, every request but `/health` must carry `Authorization: Basic` (a user
//! and password, checked against the users' SCRAM credentials as SASL/PLAIN checks them) or
//! `Authorization: Bearer` (a JWT, checked as SASL/OAUTHBEARER checks it), whichever are
//! enabled. A request that passes reaches its handler with a [`Principal`] (`User:<name>`) in
//! its extensions; with `http-auth = "none"` every request gets `User:ANONYMOUS`, so a later
//! authorization layer always finds one. The client's address is in axum's `ConnectInfo`.
//!
//! A refusal is 401 with a `WWW-Authenticate` challenge per enabled scheme and Confluent's
//! body `{"error_code":401,"message":"Unauthorized"}`, the same whatever went wrong (so an
//! unknown user and a wrong password look alike). The reason goes to the log: one WARN line
//! per refusal, at most one a second per client address, never with a password or token.
//!
//! A password check derives a key (thousands of HMACs), and schema registry clients send the
//! password with every request. So a [`PasswordCache`] is asked first, and a miss runs on the
//! blocking pool, on at most half the cores at once, so a flood of guesses leaves CPU for the
//! requests whose passwords are cached. At most [`MAX_WAITING_PASSWORD_CHECKS`] requests wait
//! for a check; more are answered 503 (clients retry it) instead of queueing without bound.

use std::collections::HashMap;
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use spate_auth::acl::{CLUSTER_NAME, Operation, ResourceType};
use spate_auth::http::{
    AuthMethod, HeaderError, PASSWORD_CACHE_CAPACITY, PASSWORD_CACHE_TTL_MS, PasswordCache,
    PasswordCheck, Presented, Principal, check_password, parse_authorization,
};
use spate_auth::sasl::{CredentialStore, TokenValidator};
use spate_broker::Broker;
use spate_registry::SCHEMAS_TOPIC;
use tokio::sync::Semaphore;

use crate::config::HttpAuthMethods;

/// Requests waiting for a password check at once; more are answered 503.
const MAX_WAITING_PASSWORD_CHECKS: usize = 256;

/// At most one refusal line per client address in this long.
const REFUSAL_LOG_INTERVAL: Duration = Duration::from_secs(1);

/// Client addresses whose refusals are rate-limited one by one; past this many (within an
/// interval), the rest share one limit.
const MAX_TRACKED_ADDRESSES: usize = 4096;

/// Which listener a request came through: it decides the error body and names the log line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Listener {
    /// The schema registry: Confluent's error body and content type.
    Registry,
    /// The HTTP admin listener (`/metrics`).
    Admin,
    /// Kafka Connect's REST API of the in-process worker: Kafka Connect's error body, as the
    /// admin listener's.
    Connect,
    /// The SQL API of the in-process SQL worker.
    Sql,
}

impl Listener {
    fn name(self) -> &'static str {
        match self {
            Listener::Registry => "registry",
            Listener::Admin => "http",
            Listener::Connect => "connect",
            Listener::Sql => "sql",
        }
    }
}

/// Counters for `/metrics`.
#[derive(Debug, Default)]
pub(crate) struct AuthMetrics {
    /// Requests refused with 401.
    pub refused: AtomicU64,
    /// Basic requests answered from the password cache.
    pub cache_hits: AtomicU64,
    /// Key derivations run to check a Basic password.
    pub password_checks: AtomicU64,
}

/// The HTTP listeners' authenticator: the enabled schemes and what checks them.
pub(crate) struct HttpAuth {
    methods: HttpAuthMethods,
    store: Arc<dyn CredentialStore + Send + Sync>,
    tokens: Option<Arc<dyn TokenValidator + Send + Sync>>,
    cache: Arc<PasswordCache>,
    /// Key derivations running at once.
    derivations: Arc<Semaphore>,
    /// Requests waiting for (or holding) a permit of `derivations`.
    waiting: AtomicUsize,
    refusals: RefusalLog,
    pub metrics: AuthMetrics,
}

impl fmt::Debug for HttpAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpAuth")
            .field("methods", &self.methods)
            .field("cache", &self.cache)
            .finish_non_exhaustive()
    }
}

/// Why a request was refused; the text is for the log and holds no secret.
#[derive(Debug)]
enum Refusal {
    NoHeader,
    Header(HeaderError),
    SchemeOff(&'static str),
    UnknownUser(String),
    WrongPassword(String),
    InvalidToken(String),
    CheckFailed(String),
    /// Too many password checks waiting: 503, not 401, the credentials were not looked at.
    Busy,
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refusal::NoHeader => f.write_str("no Authorization header"),
            Refusal::Header(error) => write!(f, "{error}"),
            Refusal::SchemeOff(scheme) => {
                write!(f, "{scheme} authentication is not enabled (http-auth)")
            }
            Refusal::UnknownUser(user) => write!(f, "unknown user {user:?}"),
            Refusal::WrongPassword(user) => write!(f, "wrong password for user {user:?}"),
            Refusal::InvalidToken(reason) => write!(f, "invalid bearer token: {reason}"),
            Refusal::CheckFailed(reason) => write!(f, "the password check failed: {reason}"),
            Refusal::Busy => write!(
                f,
                "{MAX_WAITING_PASSWORD_CHECKS} requests already wait for a password check"
            ),
        }
    }
}

impl HttpAuth {
    /// An authenticator for `methods`; `tokens` must be set if bearer is (the config's
    /// validation makes sure of it; without one every token is refused).
    pub fn new(
        methods: HttpAuthMethods,
        store: Arc<dyn CredentialStore + Send + Sync>,
        tokens: Option<Arc<dyn TokenValidator + Send + Sync>>,
    ) -> HttpAuth {
        let cores = std::thread::available_parallelism().map_or(2, std::num::NonZero::get);
        let derivations = (cores / 2).max(1);
        HttpAuth {
            methods,
            store,
            tokens,
            cache: Arc::new(PasswordCache::new(
                PASSWORD_CACHE_CAPACITY,
                PASSWORD_CACHE_TTL_MS,
                spate_auth::sasl::system_clock(),
            )),
            derivations: Arc::new(Semaphore::new(derivations)),
            waiting: AtomicUsize::new(0),
            refusals: RefusalLog::default(),
            metrics: AuthMetrics::default(),
        }
    }

    /// Who sent a request with these headers.
    async fn authenticate(&self, headers: &HeaderMap) -> Result<Principal, Refusal> {
        if !self.methods.enabled() {
            return Ok(Principal::anonymous());
        }
        let value = headers
            .get(header::AUTHORIZATION)
            .ok_or(Refusal::NoHeader)?;
        match parse_authorization(value.as_bytes()).map_err(Refusal::Header)? {
            Presented::Basic { user, password } if self.methods.basic => {
                self.basic(user, password).await
            }
            Presented::Bearer { token } if self.methods.bearer => self.bearer(&token),
            Presented::Basic { .. } => Err(Refusal::SchemeOff("Basic")),
            Presented::Bearer { .. } => Err(Refusal::SchemeOff("Bearer")),
        }
    }

    async fn basic(&self, user: String, password: String) -> Result<Principal, Refusal> {
        let principal = || Principal::user(&user, AuthMethod::Basic);
        if self.cache.contains(self.store.as_ref(), &user, &password) {
            self.metrics.cache_hits.fetch_add(1, Ordering::Relaxed);
            return Ok(principal());
        }
        let _waiting = WaitSlot::take(&self.waiting).ok_or(Refusal::Busy)?;
        let permit = Arc::clone(&self.derivations)
            .acquire_owned()
            .await
            .map_err(|e| Refusal::CheckFailed(e.to_string()))?;
        // Requests that waited for the permit behind the same user's first check find its
        // result here instead of deriving the key again.
        if self.cache.contains(self.store.as_ref(), &user, &password) {
            self.metrics.cache_hits.fetch_add(1, Ordering::Relaxed);
            return Ok(principal());
        }
        self.metrics.password_checks.fetch_add(1, Ordering::Relaxed);
        let store = Arc::clone(&self.store);
        let cache = Arc::clone(&self.cache);
        let checked_user = user.clone();
        let check = tokio::task::spawn_blocking(move || {
            let _permit = permit;
            let check = check_password(store.as_ref(), &checked_user, &password);
            if let PasswordCheck::Matched(credential) = &check {
                cache.insert(&checked_user, &password, credential.clone());
            }
            check
        })
        .await
        .map_err(|e| Refusal::CheckFailed(e.to_string()))?;
        match check {
            PasswordCheck::Matched(_) => Ok(principal()),
            PasswordCheck::WrongPassword => Err(Refusal::WrongPassword(user)),
            PasswordCheck::UnknownUser => Err(Refusal::UnknownUser(user)),
        }
    }

    fn bearer(&self, token: &str) -> Result<Principal, Refusal> {
        let tokens = self
            .tokens
            .as_ref()
            .ok_or_else(|| Refusal::InvalidToken("no JWKS is configured".to_owned()))?;
        let info = tokens.validate(token).map_err(Refusal::InvalidToken)?;
        Ok(Principal::user(&info.principal, AuthMethod::Bearer))
    }

    /// The 401 answer, the same for every reason, and its log line.
    fn refuse(
        &self,
        listener: Listener,
        refusal: &Refusal,
        peer: Option<SocketAddr>,
        request: &Request,
    ) -> Response {
        self.metrics.refused.fetch_add(1, Ordering::Relaxed);
        let ip = peer.map(|p| p.ip());
        if let Some(suppressed) = self.refusals.admit(ip, Instant::now()) {
            tracing::warn!(
                listener = listener.name(),
                client = %ip.map_or_else(|| "unknown".to_owned(), |ip| ip.to_string()),
                method = %request.method(),
                path = request.uri().path(),
                reason = %refusal,
                suppressed,
                "http authentication failed"
            );
        }
        if matches!(refusal, Refusal::Busy) {
            return busy(listener);
        }
        let mut response = match listener {
            Listener::Registry => spate_registry::RegistryError::unauthorized().into_response(),
            Listener::Admin | Listener::Connect | Listener::Sql => (
                StatusCode::UNAUTHORIZED,
                [(header::CONTENT_TYPE, "application/json")],
                "{\"error_code\":401,\"message\":\"Unauthorized\"}",
            )
                .into_response(),
        };
        let headers = response.headers_mut();
        if self.methods.basic {
            headers.append(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static(r#"Basic realm="spate", charset="UTF-8""#),
            );
        }
        if self.methods.bearer {
            headers.append(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static(r#"Bearer realm="spate""#),
            );
        }
        response
    }
}

/// 503 with `Retry-After`, for a request that found the password checks' queue full.
fn busy(listener: Listener) -> Response {
    let error = spate_registry::RegistryError {
        status: StatusCode::SERVICE_UNAVAILABLE,
        code: 503,
        message: "Too many requests wait for a password check; retry later".to_owned(),
    };
    let mut response = match listener {
        Listener::Registry => error.into_response(),
        Listener::Admin | Listener::Connect | Listener::Sql => (
            error.status,
            [(header::CONTENT_TYPE, "application/json")],
            serde_json::json!({"error_code": error.code, "message": error.message}).to_string(),
        )
            .into_response(),
    };
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    response
}

/// One request counted in [`HttpAuth`]'s `waiting` until dropped (also when the client goes
/// away while it waits).
struct WaitSlot<'a>(&'a AtomicUsize);

impl<'a> WaitSlot<'a> {
    fn take(waiting: &'a AtomicUsize) -> Option<WaitSlot<'a>> {
        let before = waiting.fetch_add(1, Ordering::AcqRel);
        let slot = WaitSlot(waiting);
        (before < MAX_WAITING_PASSWORD_CHECKS).then_some(slot)
    }
}

impl Drop for WaitSlot<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// What the middleware needs: the authenticator and the listener it guards.
#[derive(Clone)]
struct Guard {
    auth: Arc<HttpAuth>,
    listener: Listener,
}

/// Puts authentication in front of every route and the fallback of `router`. Routes added to
/// the result afterwards stay open (that is how `/health` is).
pub(crate) fn protect(router: Router, auth: Arc<HttpAuth>, listener: Listener) -> Router {
    router.layer(axum::middleware::from_fn_with_state(
        Guard { auth, listener },
        guard,
    ))
}

async fn guard(State(guard): State<Guard>, mut request: Request, next: Next) -> Response {
    match guard.auth.authenticate(request.headers()).await {
        Ok(principal) => {
            request.extensions_mut().insert(principal);
            next.run(request).await
        }
        Err(refusal) => {
            let peer = request
                .extensions()
                .get::<ConnectInfo<SocketAddr>>()
                .map(|c| c.0);
            guard.auth.refuse(guard.listener, &refusal, peer, &request)
        }
    }
}

/// When each client address last had a refusal logged, and how many went unlogged since.
#[derive(Debug, Default)]
struct RefusalLog {
    slots: Mutex<HashMap<Option<IpAddr>, LogSlot>>,
}

#[derive(Debug)]
struct LogSlot {
    logged_at: Instant,
    suppressed: u64,
}

impl RefusalLog {
    /// Whether a refusal from `ip` at `now` gets a log line; if so, how many refusals from it
    /// went unlogged before. `None` addresses (unknown, or past the tracked number) share one
    /// slot.
    fn admit(&self, ip: Option<IpAddr>, now: Instant) -> Option<u64> {
        let mut slots = self
            .slots
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut key = ip;
        if !slots.contains_key(&key) && slots.len() >= MAX_TRACKED_ADDRESSES {
            slots.retain(|_, s| now.saturating_duration_since(s.logged_at) < REFUSAL_LOG_INTERVAL);
            if slots.len() >= MAX_TRACKED_ADDRESSES {
                key = None;
            }
        }
        match slots.get_mut(&key) {
            Some(slot) if now.saturating_duration_since(slot.logged_at) < REFUSAL_LOG_INTERVAL => {
                slot.suppressed += 1;
                None
            }
            Some(slot) => {
                let suppressed = std::mem::take(&mut slot.suppressed);
                slot.logged_at = now;
                Some(suppressed)
            }
            None => {
                slots.insert(
                    key,
                    LogSlot {
                        logged_at: now,
                        suppressed: 0,
                    },
                );
                Some(0)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::RwLock;

    use axum::Extension;
    use axum::routing::get;
    use base64::Engine;
    use spate_auth::sasl::{Mechanism, ScramCredential, TokenInfo};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    /// Credentials in a map, changeable while the server runs.
    #[derive(Default)]
    struct Users(RwLock<HashMap<(String, Mechanism), ScramCredential>>);

    impl Users {
        fn set(&self, user: &str, password: &str, mechanism: Mechanism) {
            let credential =
                ScramCredential::generate(mechanism, password, 4096).expect("valid parameters");
            self.0
                .write()
                .expect("lock")
                .insert((user.to_owned(), mechanism), credential);
        }
    }

    impl CredentialStore for Users {
        fn scram(&self, user: &str, mechanism: Mechanism) -> Option<ScramCredential> {
            self.0
                .read()
                .expect("lock")
                .get(&(user.to_owned(), mechanism))
                .cloned()
        }
    }

    /// Accepts the token `good-<user>` as `<user>`.
    struct Tokens;

    impl TokenValidator for Tokens {
        fn validate(&self, token: &str) -> Result<TokenInfo, String> {
            token
                .strip_prefix("good-")
                .map(|user| TokenInfo {
                    principal: user.to_owned(),
                    expires_at_ms: i64::MAX,
                })
                .ok_or_else(|| "not a good token".to_owned())
        }
    }

    struct Answer {
        status: u16,
        headers: Vec<(String, String)>,
        body: String,
    }

    impl Answer {
        fn header_values(&self, name: &str) -> Vec<&str> {
            self.headers
                .iter()
                .filter(|(n, _)| n.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.as_str())
                .collect()
        }
    }

    /// A served router: `/who` answers the principal's name, `/health` is open.
    async fn serve(
        methods: &str,
        users: Arc<Users>,
        listener: Listener,
    ) -> (SocketAddr, Arc<HttpAuth>) {
        let auth = Arc::new(HttpAuth::new(
            HttpAuthMethods::parse(methods).expect("methods"),
            users,
            Some(Arc::new(Tokens)),
        ));
        let guarded = Router::new().route(
            "/who",
            get(|Extension(principal): Extension<Principal>| async move {
                format!("{principal} {}", principal.method().name())
            }),
        );
        let router =
            protect(guarded, Arc::clone(&auth), listener).route("/health", get(|| async { "ok" }));
        let socket = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = socket.local_addr().expect("addr");
        tokio::spawn(async move {
            let _ = axum::serve(
                socket,
                router.into_make_service_with_connect_info::<SocketAddr>(),
            )
            .await;
        });
        (addr, auth)
    }

    async fn get_path(addr: SocketAddr, path: &str, authorization: Option<&str>) -> Answer {
        let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
        let mut request = format!("GET {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n");
        if let Some(value) = authorization {
            request.push_str(&format!("Authorization: {value}\r\n"));
        }
        request.push_str("\r\n");
        stream.write_all(request.as_bytes()).await.expect("write");
        let mut raw = String::new();
        stream.read_to_string(&mut raw).await.expect("read");
        let (head, body) = raw.split_once("\r\n\r\n").expect("a header block");
        let mut lines = head.lines();
        let status = lines
            .next()
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|s| s.parse().ok())
            .expect("a status line");
        let headers = lines
            .filter_map(|l| l.split_once(": "))
            .map(|(n, v)| (n.to_owned(), v.to_owned()))
            .collect();
        Answer {
            status,
            headers,
            body: body.to_owned(),
        }
    }

    fn basic(user: &str, password: &str) -> String {
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
        )
    }

    #[tokio::test]
    async fn basic_credentials_reach_the_handler_as_a_user_principal() {
        let users = Arc::new(Users::default());
        users.set("alice", "s3cret", Mechanism::ScramSha512);
        let (addr, _) = serve("basic", users, Listener::Admin).await;
        let answer = get_path(addr, "/who", Some(&basic("alice", "s3cret"))).await;
        assert_eq!(
            (answer.status, answer.body.as_str()),
            (200, "User:alice basic")
        );
    }

    #[tokio::test]
    async fn without_http_auth_every_request_is_anonymous() {
        let (addr, _) = serve("none", Arc::default(), Listener::Admin).await;
        let answer = get_path(addr, "/who", None).await;
        assert_eq!(
            (answer.status, answer.body.as_str()),
            (200, "User:ANONYMOUS anonymous")
        );
    }

    #[tokio::test]
    async fn wrong_password_unknown_user_and_no_header_get_the_same_401() {
        let users = Arc::new(Users::default());
        users.set("alice", "s3cret", Mechanism::ScramSha256);
        let (addr, auth) = serve("basic", users, Listener::Registry).await;
        let wrong = get_path(addr, "/who", Some(&basic("alice", "guess"))).await;
        let unknown = get_path(addr, "/who", Some(&basic("mallory", "s3cret"))).await;
        let missing = get_path(addr, "/who", None).await;
        let garbled = get_path(addr, "/who", Some("Basic !!")).await;
        for answer in [&wrong, &unknown, &missing, &garbled] {
            assert_eq!(answer.status, 401);
            assert_eq!(
                answer.body,
                r#"{"error_code":401,"message":"Unauthorized"}"#
            );
            assert_eq!(
                answer.header_values("www-authenticate"),
                [r#"Basic realm="spate", charset="UTF-8""#]
            );
            assert_eq!(
                answer.header_values("content-type"),
                ["application/vnd.schemaregistry.v1+json"]
            );
        }
        assert_eq!(auth.metrics.refused.load(Ordering::Relaxed), 4);
    }

    #[tokio::test]
    async fn health_stays_open_and_unknown_paths_need_credentials() {
        let (addr, _) = serve("basic", Arc::default(), Listener::Admin).await;
        assert_eq!(get_path(addr, "/health", None).await.status, 200);
        assert_eq!(get_path(addr, "/who", None).await.status, 401);
        assert_eq!(get_path(addr, "/no-such-path", None).await.status, 401);
    }

    #[tokio::test]
    async fn bearer_tokens_and_scheme_selection() {
        let users = Arc::new(Users::default());
        users.set("alice", "s3cret", Mechanism::ScramSha512);
        let (addr, _) = serve("bearer", Arc::clone(&users), Listener::Admin).await;
        let carol = get_path(addr, "/who", Some("Bearer good-carol")).await;
        assert_eq!(
            (carol.status, carol.body.as_str()),
            (200, "User:carol bearer")
        );
        let bad = get_path(addr, "/who", Some("Bearer forged")).await;
        assert_eq!(bad.status, 401);
        assert_eq!(
            bad.header_values("www-authenticate"),
            [r#"Bearer realm="spate""#]
        );
        assert_eq!(
            bad.header_values("content-type"),
            ["application/json"],
            "the admin listener answers plain JSON"
        );
        // Basic is not enabled on this listener, whatever the password.
        let basic_off = get_path(addr, "/who", Some(&basic("alice", "s3cret"))).await;
        assert_eq!(basic_off.status, 401);

        let (both, _) = serve("basic,bearer", users, Listener::Admin).await;
        assert_eq!(
            get_path(both, "/who", Some("Bearer good-dave"))
                .await
                .status,
            200
        );
        let alice = get_path(both, "/who", Some(&basic("alice", "s3cret"))).await;
        assert_eq!(alice.status, 200);
        let refused = get_path(both, "/who", None).await;
        assert_eq!(refused.header_values("www-authenticate").len(), 2);
    }

    #[tokio::test]
    async fn verified_passwords_are_cached_until_the_credential_changes() {
        let users = Arc::new(Users::default());
        users.set("alice", "one", Mechanism::ScramSha512);
        let (addr, auth) = serve("basic", Arc::clone(&users), Listener::Registry).await;
        for _ in 0..3 {
            assert_eq!(
                get_path(addr, "/who", Some(&basic("alice", "one")))
                    .await
                    .status,
                200
            );
        }
        let checks = |auth: &HttpAuth| {
            (
                auth.metrics.password_checks.load(Ordering::Relaxed),
                auth.metrics.cache_hits.load(Ordering::Relaxed),
            )
        };
        assert_eq!(checks(&auth), (1, 2), "one derivation, then the cache");
        // A new password: the old one stops working at once, cache or not.
        users.set("alice", "two", Mechanism::ScramSha512);
        assert_eq!(
            get_path(addr, "/who", Some(&basic("alice", "one")))
                .await
                .status,
            401
        );
        assert_eq!(
            get_path(addr, "/who", Some(&basic("alice", "two")))
                .await
                .status,
            200
        );
        assert_eq!(checks(&auth), (3, 2));
    }

    #[test]
    fn password_checks_wait_in_a_bounded_queue() {
        let waiting = AtomicUsize::new(0);
        let slots: Vec<_> = (0..MAX_WAITING_PASSWORD_CHECKS)
            .map(|_| WaitSlot::take(&waiting).expect("room"))
            .collect();
        assert!(WaitSlot::take(&waiting).is_none(), "full");
        assert_eq!(waiting.load(Ordering::Relaxed), MAX_WAITING_PASSWORD_CHECKS);
        drop(slots);
        assert_eq!(
            waiting.load(Ordering::Relaxed),
            0,
            "a refused take leaves no count"
        );
        assert!(WaitSlot::take(&waiting).is_some());
    }

    #[test]
    fn refusal_lines_are_limited_per_client_address() {
        let log = RefusalLog::default();
        let start = Instant::now();
        let a = Some(IpAddr::from([10, 0, 0, 1]));
        let b = Some(IpAddr::from([10, 0, 0, 2]));
        assert_eq!(log.admit(a, start), Some(0));
        assert_eq!(log.admit(a, start + Duration::from_millis(10)), None);
        assert_eq!(log.admit(a, start + Duration::from_millis(20)), None);
        assert_eq!(
            log.admit(b, start + Duration::from_millis(30)),
            Some(0),
            "another address has its own limit"
        );
        assert_eq!(
            log.admit(a, start + REFUSAL_LOG_INTERVAL),
            Some(2),
            "the next line counts what was left out"
        );
    }

    #[test]
    fn refusal_log_tracks_a_bounded_number_of_addresses() {
        let log = RefusalLog::default();
        let now = Instant::now();
        for i in 0..MAX_TRACKED_ADDRESSES as u32 + 10 {
            log.admit(Some(IpAddr::from(i.to_be_bytes())), now);
        }
        let slots = log.slots.lock().expect("lock").len();
        assert!(slots <= MAX_TRACKED_ADDRESSES + 1, "{slots} slots");
    }
}

/// With the ACL authorizer on, checks each authenticated request against the ACLs: the admin
/// API needs DESCRIBE on the cluster; Kafka Connect's API DESCRIBE on the cluster to read and
/// ALTER to change anything; the schema registry, a view over the `_schemas` topic,
/// needs READ on that topic to read (GET, and the POST lookups and compatibility checks) and
/// WRITE to change anything. Apply it before [`protect`], which must run first.
pub(crate) fn authorize(router: Router, broker: Arc<Broker>, listener: Listener) -> Router {
    router.layer(axum::middleware::from_fn_with_state(
        (broker, listener),
        check_acls,
    ))
}

/// The registry requests that only read: GET/HEAD, "is this schema registered" (POST
/// /subjects/{subject}) and compatibility checks.
fn registry_reads(method: &axum::http::Method, path: &str) -> bool {
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    method == axum::http::Method::GET
        || method == axum::http::Method::HEAD
        || (method == axum::http::Method::POST
            && (segments.first() == Some(&"compatibility")
                || (segments.len() == 2 && segments[0] == "subjects")))
}

async fn check_acls(
    State((broker, listener)): State<(Arc<Broker>, Listener)>,
    request: Request,
    next: Next,
) -> Response {
    if !broker.authorization_enabled() {
        return next.run(request).await;
    }
    let principal = request.extensions().get::<Principal>().map_or_else(
        || crate::kafka::ANONYMOUS.to_string(),
        |p| p.name().to_string(),
    );
    let ip = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip());
    let route = format!("{} {}", request.method(), request.uri().path());
    let (operation, resource_type, name) = match listener {
        Listener::Admin => (Operation::Describe, ResourceType::Cluster, CLUSTER_NAME),
        Listener::Registry if registry_reads(request.method(), request.uri().path()) => {
            (Operation::Read, ResourceType::Topic, SCHEMAS_TOPIC)
        }
        Listener::Registry => (Operation::Write, ResourceType::Topic, SCHEMAS_TOPIC),
        // Connect: DESCRIBE on the cluster to look, ALTER to change connectors.
        Listener::Connect
            if request.method() == axum::http::Method::GET
                || request.method() == axum::http::Method::HEAD =>
        {
            (Operation::Describe, ResourceType::Cluster, CLUSTER_NAME)
        }
        Listener::Connect => (Operation::Alter, ResourceType::Cluster, CLUSTER_NAME),
        // SQL: DESCRIBE on the cluster to look (and query), ALTER to run statements.
        Listener::Sql
            if request.method() == axum::http::Method::GET
                || request.uri().path() == "/query-stream"
                || request.uri().path() == "/query" =>
        {
            (Operation::Describe, ResourceType::Cluster, CLUSTER_NAME)
        }
        Listener::Sql => (Operation::Alter, ResourceType::Cluster, CLUSTER_NAME),
    };
    if broker.allows_http(&principal, ip, route, operation, resource_type, name) {
        return next.run(request).await;
    }
    let message = format!("User is denied operation {operation} on {resource_type}: {name}");
    match listener {
        Listener::Registry => spate_registry::RegistryError::forbidden(message).into_response(),
        Listener::Admin | Listener::Connect | Listener::Sql => (
            StatusCode::FORBIDDEN,
            [(header::CONTENT_TYPE, "application/json")],
            serde_json::json!({ "error_code": 403, "message": message }).to_string(),
        )
            .into_response(),
    }
}

#[cfg(test)]
mod authorize_tests {
    use super::registry_reads;
    use axum::http::Method;

    #[test]
    fn registry_lookups_and_compatibility_checks_only_read() {
        assert!(registry_reads(
            &Method::GET,
            "/subjects/orders-value/versions"
        ));
        assert!(registry_reads(&Method::POST, "/subjects/orders-value"));
        assert!(registry_reads(
            &Method::POST,
            "/compatibility/subjects/orders-value/versions/latest"
        ));
        assert!(!registry_reads(
            &Method::POST,
            "/subjects/orders-value/versions"
        ));
        assert!(!registry_reads(&Method::DELETE, "/subjects/orders-value"));
        assert!(!registry_reads(&Method::PUT, "/config"));
    }
}
