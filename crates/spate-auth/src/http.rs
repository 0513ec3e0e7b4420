//! HTTP authentication without I/O: the `Authorization` header's Basic (RFC 7617) and Bearer
//! (RFC 6750) schemes, checked against the same users and tokens as the Kafka listeners' SASL,
//! a cache of verified passwords, and the [`Principal`] an HTTP handler is called for.
//!
//! - Basic: `user:password`, checked with [`check_password`] (PLAIN's check) against the
//!   user's SCRAM credentials (the ones `__user_credentials` holds), so there is one user store
//!   for Kafka and HTTP. The check costs a PBKDF2 derivation, and schema registry clients send the
//!   password with every request, so a [`PasswordCache`] remembers recent successes.
//! - Bearer: a JWT, checked by the same [`TokenValidator`](crate::sasl::TokenValidator) as
//!   SASL/OAUTHBEARER (signature, expiry, issuer, audience).
//!
//! Either way the principal is `User:<name>`, as on the Kafka listeners, so one ACL covers a
//! user on every listener. The server crate reads the header, runs the checks (passwords off
//! its async workers), answers refusals and puts the [`Principal`] into the request's
//! extensions for handlers, authorization and audit to read.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard};

use base64::Engine;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

pub use crate::sasl::plain::{PasswordCheck, check_password};
use crate::sasl::scram::random_bytes;
use crate::sasl::{Clock, CredentialStore, ScramCredential};

/// The principal of requests on a listener without authentication (Kafka's name for the
/// principal of a PLAINTEXT connection).
pub const ANONYMOUS: &str = "User:ANONYMOUS";

/// How long a verified password is remembered (it is also forgotten as soon as the user's
/// credential changes).
pub const PASSWORD_CACHE_TTL_MS: i64 = 60_000;

/// How many verified `(user, password)` pairs are remembered at most.
pub const PASSWORD_CACHE_CAPACITY: usize = 1024;

/// Who sent an HTTP request, as the authentication layer established it. The server puts one
/// into every authenticated request's extensions (`request.extensions().get::<Principal>()`),
/// `User:ANONYMOUS` when the listener does not authenticate; handlers, authorization and audit
/// read it from there. The client's address is beside it, in axum's `ConnectInfo`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Principal {
    name: Arc<str>,
    method: AuthMethod,
}

/// How a [`Principal`] was established.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AuthMethod {
    /// The listener does not authenticate: every request is `User:ANONYMOUS`.
    Anonymous,
    /// HTTP Basic: a user name and password checked against the user's SCRAM credentials.
    Basic,
    /// A bearer JWT.
    Bearer,
}

impl AuthMethod {
    /// A short name for logs and audit records.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            AuthMethod::Anonymous => "anonymous",
            AuthMethod::Basic => "basic",
            AuthMethod::Bearer => "bearer",
        }
    }
}

impl Principal {
    /// `User:ANONYMOUS`, for listeners that do not authenticate.
    #[must_use]
    pub fn anonymous() -> Principal {
        Principal {
            name: Arc::from(ANONYMOUS),
            method: AuthMethod::Anonymous,
        }
    }

    /// `User:<user>`, authenticated by `method`.
    #[must_use]
    pub fn user(user: &str, method: AuthMethod) -> Principal {
        Principal {
            name: Arc::from(format!("User:{user}")),
            method,
        }
    }

    /// The principal as ACLs name it, e.g. `User:alice`.
    #[must_use]
    pub fn name(&self) -> &str {
        &self.name
    }

    /// How it was established.
    #[must_use]
    pub fn method(&self) -> AuthMethod {
        self.method
    }
}

impl fmt::Display for Principal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name)
    }
}

/// What an `Authorization` header presents. [`fmt::Debug`] hides the password and the token.
#[derive(Clone, PartialEq, Eq)]
pub enum Presented {
    /// `Basic base64(user:password)`.
    Basic {
        /// The user name.
        user: String,
        /// The password.
        password: String,
    },
    /// `Bearer <token>`.
    Bearer {
        /// The token.
        token: String,
    },
}

impl fmt::Debug for Presented {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Presented::Basic { user, .. } => f
                .debug_struct("Basic")
                .field("user", user)
                .field("password", &"<hidden>")
                .finish(),
            Presented::Bearer { .. } => f
                .debug_struct("Bearer")
                .field("token", &"<hidden>")
                .finish(),
        }
    }
}

/// Why an `Authorization` header could not be read. The texts are for the server's log and
/// never contain the credentials.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum HeaderError {
    /// The header is not visible ASCII.
    #[error("the Authorization header is not ASCII")]
    NotAscii,
    /// A scheme other than Basic and Bearer.
    #[error("unsupported Authorization scheme {scheme:?}: use Basic or Bearer")]
    UnknownScheme {
        /// The scheme as sent if it looks like one (up to 12 letters); otherwise `<not shown>`,
        /// since a header without a scheme may be a bare secret.
        scheme: String,
    },
    /// Nothing after the scheme.
    #[error("the Authorization header has no credentials after {scheme}")]
    NoCredentials {
        /// `Basic` or `Bearer`.
        scheme: &'static str,
    },
    /// Basic credentials that are not base64.
    #[error("Basic credentials are not base64")]
    NotBase64,
    /// Basic credentials that are not UTF-8 once decoded.
    #[error("Basic credentials are not UTF-8")]
    NotUtf8,
    /// Basic credentials without the `:` between user and password.
    #[error("Basic credentials are not user:password")]
    NoColon,
    /// An empty user name or password.
    #[error("Basic credentials have an empty user name or password")]
    Empty,
}

/// Base64 as RFC 7617 uses it, accepting missing padding.
const BASIC_BASE64: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// Reads an `Authorization` header value: `Basic base64(user:password)` or `Bearer token`,
/// schemes case-insensitive (RFC 7235).
pub fn parse_authorization(value: &[u8]) -> Result<Presented, HeaderError> {
    let text = std::str::from_utf8(value)
        .ok()
        .filter(|t| t.is_ascii())
        .ok_or(HeaderError::NotAscii)?;
    let text = text.trim();
    let (scheme, rest) = text.split_once(' ').unwrap_or((text, ""));
    let credentials = rest.trim();
    if scheme.eq_ignore_ascii_case("basic") {
        if credentials.is_empty() {
            return Err(HeaderError::NoCredentials { scheme: "Basic" });
        }
        let decoded = BASIC_BASE64
            .decode(credentials)
            .map_err(|_| HeaderError::NotBase64)?;
        let decoded = String::from_utf8(decoded).map_err(|_| HeaderError::NotUtf8)?;
        // RFC 7617: the user id cannot contain a colon; the password can.
        let (user, password) = decoded.split_once(':').ok_or(HeaderError::NoColon)?;
        if user.is_empty() || password.is_empty() {
            return Err(HeaderError::Empty);
        }
        Ok(Presented::Basic {
            user: user.to_owned(),
            password: password.to_owned(),
        })
    } else if scheme.eq_ignore_ascii_case("bearer") {
        if credentials.is_empty() {
            return Err(HeaderError::NoCredentials { scheme: "Bearer" });
        }
        Ok(Presented::Bearer {
            token: credentials.to_owned(),
        })
    } else {
        let looks_like_a_scheme =
            scheme.len() <= 12 && scheme.bytes().all(|b| b.is_ascii_alphabetic());
        Err(HeaderError::UnknownScheme {
            scheme: if looks_like_a_scheme {
                scheme.to_owned()
            } else {
                "<not shown>".to_owned()
            },
        })
    }
}

/// Recently verified `(user, password)` pairs, so that a client sending its password with every
/// request costs one key derivation a minute instead of one per request.
///
/// - The password is never kept: entries are keyed by the user and an HMAC-SHA-256 of the
///   password under a key drawn at random for this cache.
/// - An entry holds the credential the password matched; a lookup compares it with the user's
///   current one, so changing or deleting the credential forgets the password at once.
/// - Entries expire after a TTL; at capacity the oldest goes. Only successes are stored, so
///   wrong guesses cannot fill it.
pub struct PasswordCache {
    key: [u8; 32],
    capacity: usize,
    ttl_ms: i64,
    clock: Clock,
    entries: Mutex<HashMap<CacheKey, Verified>>,
}

type CacheKey = (String, [u8; 32]);

struct Verified {
    credential: Arc<ScramCredential>,
    verified_at_ms: i64,
}

impl fmt::Debug for PasswordCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PasswordCache")
            .field("capacity", &self.capacity)
            .field("ttl_ms", &self.ttl_ms)
            .field("len", &self.len())
            .finish_non_exhaustive()
    }
}

impl PasswordCache {
    /// A cache of at most `capacity` entries that live `ttl_ms` by `clock`.
    #[must_use]
    pub fn new(capacity: usize, ttl_ms: i64, clock: Clock) -> PasswordCache {
        let mut key = [0u8; 32];
        random_bytes(&mut key);
        PasswordCache {
            key,
            capacity: capacity.max(1),
            ttl_ms,
            clock,
            entries: Mutex::new(HashMap::new()),
        }
    }

    /// Whether `password` was verified for `user` within the TTL against the credential the
    /// user still has. Cheap: one HMAC and one credential lookup.
    pub fn contains(&self, store: &dyn CredentialStore, user: &str, password: &str) -> bool {
        let key = (user.to_owned(), self.digest(password));
        let now_ms = (self.clock)();
        let credential = {
            let mut entries = self.lock();
            match entries.get(&key) {
                Some(v) if now_ms.saturating_sub(v.verified_at_ms) < self.ttl_ms => {
                    Arc::clone(&v.credential)
                }
                Some(_) => {
                    entries.remove(&key);
                    return false;
                }
                None => return false,
            }
        };
        let current = store.scram(user, credential.mechanism);
        if current.as_ref() == Some(&*credential) {
            return true;
        }
        // The credential changed or is gone: whatever it was verified against no longer counts.
        let mut entries = self.lock();
        if entries
            .get(&key)
            .is_some_and(|v| Arc::ptr_eq(&v.credential, &credential))
        {
            entries.remove(&key);
        }
        false
    }

    /// Remembers that `password` matched `credential`, one of `user`'s.
    pub fn insert(&self, user: &str, password: &str, credential: ScramCredential) {
        let key = (user.to_owned(), self.digest(password));
        let now_ms = (self.clock)();
        let mut entries = self.lock();
        if entries.len() >= self.capacity && !entries.contains_key(&key) {
            entries.retain(|_, v| now_ms.saturating_sub(v.verified_at_ms) < self.ttl_ms);
            if entries.len() >= self.capacity {
                let oldest = entries
                    .iter()
                    .min_by_key(|(_, v)| v.verified_at_ms)
                    .map(|(k, _)| k.clone());
                if let Some(oldest) = oldest {
                    entries.remove(&oldest);
                }
            }
        }
        entries.insert(
            key,
            Verified {
                credential: Arc::new(credential),
                verified_at_ms: now_ms,
            },
        );
    }

    /// How many entries it holds, expired ones included until they are looked up or evicted.
    #[must_use]
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether it holds nothing.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn digest(&self, password: &str) -> [u8; 32] {
        let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(&self.key)
            .expect("HMAC takes a key of any length");
        mac.update(password.as_bytes());
        mac.finalize().into_bytes().into()
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<CacheKey, Verified>> {
        // A panic elsewhere while holding the lock leaves a map that is still consistent.
        self.entries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicI64, Ordering};

    use super::*;
    use crate::sasl::Mechanism;
    use crate::sasl::test_support::MemStore;

    fn basic(user_password: &str) -> Vec<u8> {
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(user_password)
        )
        .into_bytes()
    }

    #[test]
    fn basic_and_bearer_headers_parse() {
        assert_eq!(
            parse_authorization(&basic("alice:s3:cret")),
            Ok(Presented::Basic {
                user: "alice".into(),
                password: "s3:cret".into()
            })
        );
        assert_eq!(
            parse_authorization(b"bearer  eyJ.abc.def "),
            Ok(Presented::Bearer {
                token: "eyJ.abc.def".into()
            })
        );
        // Unpadded base64 of "a:b" ("YTpi" needs none; "alice:pw" does).
        assert!(parse_authorization(b"BASIC YWxpY2U6cHc").is_ok());
    }

    #[test]
    fn bad_headers_are_refused_with_a_reason() {
        let cases: &[(&[u8], HeaderError)] = &[
            (
                b"Digest abc",
                HeaderError::UnknownScheme {
                    scheme: "Digest".into(),
                },
            ),
            (
                b"sk_live_0123456789abcdef",
                HeaderError::UnknownScheme {
                    scheme: "<not shown>".into(),
                },
            ),
            (b"Basic", HeaderError::NoCredentials { scheme: "Basic" }),
            (b"Bearer ", HeaderError::NoCredentials { scheme: "Bearer" }),
            (b"Basic !!!", HeaderError::NotBase64),
            (b"Basic /w==", HeaderError::NotUtf8),
            (b"Basic YWxpY2U=", HeaderError::NoColon),
            (b"Basic OnB3", HeaderError::Empty),
            (b"Basic YWxpY2U6", HeaderError::Empty),
            (b"Basic \xff", HeaderError::NotAscii),
        ];
        for (header, expected) in cases {
            assert_eq!(
                parse_authorization(header).as_ref(),
                Err(expected),
                "{header:?}"
            );
        }
    }

    #[test]
    fn debug_output_hides_secrets() {
        let basic = parse_authorization(&basic("alice:hunter2")).expect("parses");
        let shown = format!("{basic:?}");
        assert!(
            shown.contains("alice") && !shown.contains("hunter2"),
            "{shown}"
        );
        let bearer = parse_authorization(b"Bearer secret-token").expect("parses");
        assert!(!format!("{bearer:?}").contains("secret-token"));
    }

    #[test]
    fn basic_checks_any_scram_credential_and_tells_unknown_from_wrong_for_the_log() {
        let mut store = MemStore::with("alice", "a512", &[Mechanism::ScramSha512]);
        store.add("bob", "b256", Mechanism::ScramSha256);
        assert!(matches!(
            check_password(&store, "alice", "a512"),
            PasswordCheck::Matched(c) if c.mechanism == Mechanism::ScramSha512
        ));
        assert!(matches!(
            check_password(&store, "bob", "b256"),
            PasswordCheck::Matched(c) if c.mechanism == Mechanism::ScramSha256
        ));
        assert_eq!(
            check_password(&store, "alice", "nope"),
            PasswordCheck::WrongPassword
        );
        assert_eq!(
            check_password(&store, "mallory", "a512"),
            PasswordCheck::UnknownUser
        );
    }

    struct TestClock(Arc<AtomicI64>);

    impl TestClock {
        fn new() -> (TestClock, Clock) {
            let now = Arc::new(AtomicI64::new(1_000_000));
            let read = Arc::clone(&now);
            (
                TestClock(now),
                Arc::new(move || read.load(Ordering::SeqCst)),
            )
        }

        fn advance(&self, ms: i64) {
            self.0.fetch_add(ms, Ordering::SeqCst);
        }
    }

    fn matched(store: &MemStore, user: &str, password: &str) -> ScramCredential {
        match check_password(store, user, password) {
            PasswordCheck::Matched(credential) => credential,
            other => panic!("expected a match, got {other:?}"),
        }
    }

    #[test]
    fn cache_hits_only_the_same_user_and_password() {
        let store = MemStore::with("alice", "pw", &[Mechanism::ScramSha512]);
        let (_time, clock) = TestClock::new();
        let cache = PasswordCache::new(8, 60_000, clock);
        assert!(!cache.contains(&store, "alice", "pw"));
        cache.insert("alice", "pw", matched(&store, "alice", "pw"));
        assert!(cache.contains(&store, "alice", "pw"));
        assert!(!cache.contains(&store, "alice", "pw2"));
        assert!(!cache.contains(&store, "bob", "pw"));
    }

    #[test]
    fn cache_entries_expire_after_the_ttl() {
        let store = MemStore::with("alice", "pw", &[Mechanism::ScramSha512]);
        let (time, clock) = TestClock::new();
        let cache = PasswordCache::new(8, 60_000, clock);
        cache.insert("alice", "pw", matched(&store, "alice", "pw"));
        time.advance(59_999);
        assert!(cache.contains(&store, "alice", "pw"));
        time.advance(1);
        assert!(!cache.contains(&store, "alice", "pw"));
        assert!(cache.is_empty(), "the expired entry is dropped");
    }

    #[test]
    fn changing_or_deleting_the_credential_forgets_the_password() {
        let mut store = MemStore::with("alice", "old", &[Mechanism::ScramSha512]);
        let (_time, clock) = TestClock::new();
        let cache = PasswordCache::new(8, 60_000, clock);
        cache.insert("alice", "old", matched(&store, "alice", "old"));
        // The same password set again gets a new salt: a new credential.
        store.add("alice", "old", Mechanism::ScramSha512);
        assert!(!cache.contains(&store, "alice", "old"));
        assert!(cache.is_empty());

        cache.insert("alice", "old", matched(&store, "alice", "old"));
        store
            .credentials
            .remove(&("alice".to_owned(), Mechanism::ScramSha512));
        assert!(!cache.contains(&store, "alice", "old"));
    }

    #[test]
    fn cache_is_bounded_and_evicts_the_oldest() {
        let mut store = MemStore::default();
        for user in ["u0", "u1", "u2"] {
            store.add(user, "pw", Mechanism::ScramSha256);
        }
        let (time, clock) = TestClock::new();
        let cache = PasswordCache::new(2, 60_000, clock);
        for user in ["u0", "u1", "u2"] {
            cache.insert(user, "pw", matched(&store, user, "pw"));
            time.advance(10);
        }
        assert_eq!(cache.len(), 2);
        assert!(!cache.contains(&store, "u0", "pw"), "the oldest went");
        assert!(cache.contains(&store, "u1", "pw"));
        assert!(cache.contains(&store, "u2", "pw"));
    }

    #[test]
    fn principals_are_user_names_with_the_user_type() {
        let alice = Principal::user("alice", AuthMethod::Basic);
        assert_eq!(alice.name(), "User:alice");
        assert_eq!(alice.to_string(), "User:alice");
        assert_eq!(alice.method(), AuthMethod::Basic);
        assert_eq!(Principal::anonymous().name(), "User:ANONYMOUS");
    }
}
