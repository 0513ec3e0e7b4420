//! The server side of the SASL mechanisms Kafka clients use, as pure state machines.
//!
//! An [`Authenticator`] runs one SASL exchange: the broker feeds it the bytes of each
//! SaslAuthenticate request and sends back what [`Authenticator::step`] answers, until it
//! returns [`Step::Done`] with the authenticated principal or an [`AuthError`].
//!
//! - [`scram`]: SCRAM-SHA-256 and SCRAM-SHA-512 (RFC 5802, RFC 7677) and the salted
//!   [`ScramCredential`]s the broker stores.
//! - [`plain`]: PLAIN (RFC 4616), checked against the same SCRAM credentials, so Spate never
//!   stores a password.
//! - [`oauth`]: OAUTHBEARER (RFC 7628, KIP-255) with a [`TokenValidator`]; [`JwtValidator`]
//!   checks JWTs against a JWKS document.
//! - [`client`]: the client side of PLAIN and SCRAM ([`SaslClient`]), for Spate's own client.
//!
//! This module does no I/O: credentials come from a [`CredentialStore`], the time from a
//! [`Clock`]. It never reveals to a client whether a user exists: an unknown user and a wrong
//! password fail with the same [`AuthError`], at the same step, after the same work.
//!
//! Errors carry a reason for the broker's log ([`std::fmt::Display`]) and a separate text for
//! the client ([`AuthError::client_message`]) that, as Kafka's, names no detail.

use std::fmt;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Deserializer, Serialize, Serializer};

pub mod client;
pub mod oauth;
pub mod plain;
pub mod scram;

pub use client::{ClientError, ClientStep, SaslClient};
pub use oauth::{JwksError, JwtConfig, JwtValidator};
pub use scram::{CredentialError, ScramCredential};

/// The largest client message an exchange accepts, in bytes. Big enough for any JWT an
/// identity provider issues; SCRAM and PLAIN messages are far smaller.
pub const MAX_CLIENT_MESSAGE_BYTES: usize = 64 * 1024;

/// A SASL mechanism Spate serves.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Mechanism {
    /// `PLAIN`: user name and password in the clear (use it over TLS only).
    Plain,
    /// `SCRAM-SHA-256`.
    ScramSha256,
    /// `SCRAM-SHA-512`.
    ScramSha512,
    /// `OAUTHBEARER`: a bearer token, here a JWT.
    OAuthBearer,
}

impl Mechanism {
    /// Every mechanism, in the order Spate prefers them.
    pub const ALL: [Mechanism; 4] = [
        Mechanism::ScramSha512,
        Mechanism::ScramSha256,
        Mechanism::OAuthBearer,
        Mechanism::Plain,
    ];

    /// The mechanism's name in SaslHandshake, as Kafka spells it.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Mechanism::Plain => "PLAIN",
            Mechanism::ScramSha256 => "SCRAM-SHA-256",
            Mechanism::ScramSha512 => "SCRAM-SHA-512",
            Mechanism::OAuthBearer => "OAUTHBEARER",
        }
    }

    /// The mechanism a SaslHandshake name asks for; names are case-sensitive, as in Kafka.
    #[must_use]
    pub fn parse(name: &str) -> Option<Mechanism> {
        Mechanism::ALL.into_iter().find(|m| m.name() == name)
    }

    /// Whether this is one of the SCRAM mechanisms, the ones with a [`ScramCredential`].
    #[must_use]
    pub fn is_scram(self) -> bool {
        matches!(self, Mechanism::ScramSha256 | Mechanism::ScramSha512)
    }
}

impl fmt::Display for Mechanism {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Stored as its name (`"SCRAM-SHA-512"`), the form Kafka's admin APIs use.
impl Serialize for Mechanism {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.name())
    }
}

impl<'de> Deserialize<'de> for Mechanism {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let name = String::deserialize(deserializer)?;
        Mechanism::parse(&name)
            .ok_or_else(|| serde::de::Error::custom(format!("unknown SASL mechanism {name:?}")))
    }
}

/// Where the SCRAM credentials of users come from (the broker keeps them in an internal topic).
pub trait CredentialStore {
    /// The user's credential for a SCRAM `mechanism`, or `None` if the user has none.
    fn scram(&self, user: &str, mechanism: Mechanism) -> Option<ScramCredential>;
}

/// What a valid bearer token says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TokenInfo {
    /// The user the token was issued to (without the `User:` prefix).
    pub principal: String,
    /// When the token expires, in milliseconds since the Unix epoch.
    pub expires_at_ms: i64,
}

/// Checks OAUTHBEARER tokens.
pub trait TokenValidator {
    /// What `token` says if it is valid now, or why not (for the broker's log only: the client
    /// is told `invalid_token` whatever the reason).
    fn validate(&self, token: &str) -> Result<TokenInfo, String>;
}

/// The current time in milliseconds since the Unix epoch. Tests pass a fixed one.
pub type Clock = Arc<dyn Fn() -> i64 + Send + Sync>;

/// The system's wall clock.
#[must_use]
pub fn system_clock() -> Clock {
    Arc::new(|| {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |elapsed| {
                i64::try_from(elapsed.as_millis()).unwrap_or(i64::MAX)
            })
    })
}

/// What the broker sends the client after a step that succeeded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Step {
    /// Send these bytes to the client; the exchange needs another message from it.
    Challenge(Vec<u8>),
    /// The client is authenticated.
    Done {
        /// The last bytes for the client (SCRAM's server-final message; empty for the others).
        response: Vec<u8>,
        /// The authenticated user name; the broker makes it the principal `User:<name>`.
        principal: String,
        /// For a credential that expires (an OAUTHBEARER token): milliseconds from now until it
        /// does, never negative. The broker answers SaslAuthenticate's `session_lifetime_ms`
        /// with the smaller of this and `connections.max.reauth.ms`. `None` for credentials
        /// that do not expire.
        session_lifetime_ms: Option<i64>,
    },
}

/// Why an exchange failed. Every variant is Kafka's `SASL_AUTHENTICATION_FAILED` for the client
/// (except [`AuthError::ExchangeFinished`], Kafka's `ILLEGAL_SASL_STATE`), with the text of
/// [`AuthError::client_message`]; the [`std::fmt::Display`] text is the reason, for the log.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// The user does not exist or the password (proof) is wrong: deliberately one variant,
    /// so that nothing, not even the broker's log, tells the two apart.
    #[error("invalid credentials for SASL/{mechanism}: unknown user or wrong password")]
    InvalidCredentials {
        /// The mechanism of the exchange.
        mechanism: Mechanism,
    },
    /// A client message could not be parsed.
    #[error("malformed SASL/{mechanism} client message: {reason}")]
    Malformed {
        /// The mechanism of the exchange.
        mechanism: Mechanism,
        /// What is wrong with the message.
        reason: String,
    },
    /// A well-formed message that contradicts the exchange so far (a changed nonce or channel
    /// binding).
    #[error("SASL/{mechanism} protocol violation: {reason}")]
    ProtocolViolation {
        /// The mechanism of the exchange.
        mechanism: Mechanism,
        /// What the client got wrong.
        reason: String,
    },
    /// The client asked to act as someone other than the user it authenticates as.
    #[error(
        "SASL/{mechanism} client asked for authorization id {authorization_id:?} but \
         authenticates as {user:?}; Spate allows only the user itself"
    )]
    AuthorizationIdMismatch {
        /// The mechanism of the exchange.
        mechanism: Mechanism,
        /// The authorization id the client asked for.
        authorization_id: String,
        /// The user it authenticates as.
        user: String,
    },
    /// The client needs a SASL extension Spate does not implement.
    #[error("SASL/{mechanism} extension {extension:?} is not supported: {reason}")]
    UnsupportedExtension {
        /// The mechanism of the exchange.
        mechanism: Mechanism,
        /// The extension's name.
        extension: String,
        /// Why it is refused.
        reason: String,
    },
    /// The OAUTHBEARER token was refused.
    #[error("invalid SASL/OAUTHBEARER token: {reason}")]
    InvalidToken {
        /// Why, from the [`TokenValidator`].
        reason: String,
        /// The RFC 7628 error the client was sent (`{"status":"invalid_token"}`), which Kafka
        /// also makes the failure's message.
        client_error: String,
    },
    /// OAUTHBEARER was asked for but no [`TokenValidator`] is configured.
    #[error("SASL/OAUTHBEARER needs a token validator; configure a JWKS file to enable it")]
    NoTokenValidator,
    /// A client message is larger than [`MAX_CLIENT_MESSAGE_BYTES`].
    #[error(
        "SASL/{mechanism} client message of {size_bytes} bytes is over the limit of \
         {limit_bytes} bytes"
    )]
    MessageTooLarge {
        /// The mechanism of the exchange.
        mechanism: Mechanism,
        /// The size of the message.
        size_bytes: usize,
        /// The limit.
        limit_bytes: usize,
    },
    /// A message arrived after the exchange had succeeded or failed; a new exchange needs a new
    /// [`Authenticator`].
    #[error("SASL/{mechanism} exchange already finished; start a new one for another attempt")]
    ExchangeFinished {
        /// The mechanism of the exchange.
        mechanism: Mechanism,
    },
}

impl AuthError {
    /// The mechanism of the exchange that failed.
    #[must_use]
    pub fn mechanism(&self) -> Mechanism {
        match self {
            AuthError::InvalidCredentials { mechanism }
            | AuthError::Malformed { mechanism, .. }
            | AuthError::ProtocolViolation { mechanism, .. }
            | AuthError::AuthorizationIdMismatch { mechanism, .. }
            | AuthError::UnsupportedExtension { mechanism, .. }
            | AuthError::MessageTooLarge { mechanism, .. }
            | AuthError::ExchangeFinished { mechanism } => *mechanism,
            AuthError::InvalidToken { .. } | AuthError::NoTokenValidator => Mechanism::OAuthBearer,
        }
    }

    /// The error message for the client's SaslAuthenticate response: Kafka's texts, which never
    /// say whether the user exists nor why a message was refused. `reauthentication` is whether
    /// the exchange re-authenticates an open session (KIP-368).
    #[must_use]
    pub fn client_message(&self, reauthentication: bool) -> String {
        match self {
            // Kafka's PlainSaslServer: the same text for an unknown user and a wrong password.
            AuthError::InvalidCredentials {
                mechanism: Mechanism::Plain,
            } => "Authentication failed: Invalid username or password".to_owned(),
            AuthError::AuthorizationIdMismatch { .. } => "Authentication failed: Client requested \
                 an authorization id that is different from username"
                .to_owned(),
            AuthError::InvalidToken { client_error, .. } => client_error.clone(),
            AuthError::InvalidCredentials { .. }
            | AuthError::Malformed { .. }
            | AuthError::ProtocolViolation { .. }
            | AuthError::UnsupportedExtension { .. }
            | AuthError::NoTokenValidator
            | AuthError::MessageTooLarge { .. }
            | AuthError::ExchangeFinished { .. } => {
                generic_failure_message(self.mechanism(), reauthentication)
            }
        }
    }
}

/// Kafka's message for a refused exchange (`SaslServerAuthenticator.handleSaslToken`): it
/// names only the phase and the mechanism.
fn generic_failure_message(mechanism: Mechanism, reauthentication: bool) -> String {
    let phase = if reauthentication {
        "re-authentication"
    } else {
        "authentication"
    };
    format!(
        "Authentication failed during {phase} due to invalid credentials with SASL mechanism {}",
        mechanism.name()
    )
}

/// One connection's SASL exchange, from the first SaslAuthenticate to the principal.
///
/// Steps are CPU work only, but PLAIN derives a key from the password (thousands of HMACs), so
/// the broker should run [`Authenticator::step`] off its network threads.
pub struct Authenticator {
    mechanism: Mechanism,
    store: Arc<dyn CredentialStore + Send + Sync>,
    tokens: Option<Arc<dyn TokenValidator + Send + Sync>>,
    clock: Clock,
    state: State,
    attempted_user: Option<String>,
}

enum State {
    Plain,
    Scram(scram::ScramServer),
    OAuth(oauth::OAuthServer),
    Finished,
}

impl Authenticator {
    /// An exchange for `mechanism`. `tokens` checks OAUTHBEARER tokens; without it OAUTHBEARER
    /// fails with [`AuthError::NoTokenValidator`].
    #[must_use]
    pub fn new(
        mechanism: Mechanism,
        store: Arc<dyn CredentialStore + Send + Sync>,
        tokens: Option<Arc<dyn TokenValidator + Send + Sync>>,
    ) -> Authenticator {
        let state = match mechanism {
            Mechanism::Plain => State::Plain,
            Mechanism::ScramSha256 | Mechanism::ScramSha512 => {
                State::Scram(scram::ScramServer::new(mechanism, scram::random_nonce()))
            }
            Mechanism::OAuthBearer => State::OAuth(oauth::OAuthServer::new()),
        };
        Authenticator {
            mechanism,
            store,
            tokens,
            clock: system_clock(),
            state,
            attempted_user: None,
        }
    }

    /// The same exchange reading the time from `clock` (for the OAUTHBEARER session lifetime).
    #[must_use]
    pub fn with_clock(mut self, clock: Clock) -> Authenticator {
        self.clock = clock;
        self
    }

    /// The mechanism of this exchange.
    #[must_use]
    pub fn mechanism(&self) -> Mechanism {
        self.mechanism
    }

    /// The user name the client claimed, once a message named one, whether or not it
    /// authenticated: for the broker's log and audit records, never for the client.
    #[must_use]
    pub fn attempted_user(&self) -> Option<&str> {
        self.attempted_user.as_deref()
    }

    /// Feeds the client's next message. After [`Step::Done`] or an error the exchange is
    /// finished and every further message fails with [`AuthError::ExchangeFinished`].
    pub fn step(&mut self, client_bytes: &[u8]) -> Result<Step, AuthError> {
        if client_bytes.len() > MAX_CLIENT_MESSAGE_BYTES && !self.is_finished() {
            self.state = State::Finished;
            return Err(AuthError::MessageTooLarge {
                mechanism: self.mechanism,
                size_bytes: client_bytes.len(),
                limit_bytes: MAX_CLIENT_MESSAGE_BYTES,
            });
        }
        let result = match &mut self.state {
            State::Finished => Err(AuthError::ExchangeFinished {
                mechanism: self.mechanism,
            }),
            State::Plain => {
                plain::authenticate(client_bytes, &*self.store, &mut self.attempted_user)
            }
            State::Scram(server) => {
                server.step(client_bytes, &*self.store, &mut self.attempted_user)
            }
            State::OAuth(server) => match &self.tokens {
                None => Err(AuthError::NoTokenValidator),
                Some(tokens) => server.step(
                    client_bytes,
                    &**tokens,
                    &*self.clock,
                    &mut self.attempted_user,
                ),
            },
        };
        if !matches!(result, Ok(Step::Challenge(_))) {
            self.state = State::Finished;
        }
        result
    }

    /// Whether the exchange has finished, successfully or not.
    #[must_use]
    pub fn is_finished(&self) -> bool {
        matches!(self.state, State::Finished)
    }
}

impl fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match self.state {
            State::Plain | State::Scram(_) | State::OAuth(_) => "in progress",
            State::Finished => "finished",
        };
        f.debug_struct("Authenticator")
            .field("mechanism", &self.mechanism)
            .field("state", &state)
            .field("attempted_user", &self.attempted_user)
            .finish_non_exhaustive()
    }
}

/// SASL names (RFC 5802 section 5.1), shared by SCRAM and OAUTHBEARER.
mod saslname {
    /// Decodes a SASL name (RFC 5802 section 5.1): `=2C` is `,`, `=3D` is `=`, and no other `=`
    /// may appear. `None` for an empty or badly escaped name or one holding NUL.
    pub(super) fn decode(name: &str) -> Option<String> {
        if name.is_empty() || name.contains('\0') || name.contains(',') {
            return None;
        }
        let mut out = String::with_capacity(name.len());
        let mut rest = name;
        while let Some(at) = rest.find('=') {
            out.push_str(&rest[..at]);
            let escape = rest.get(at..at + 3)?;
            match escape {
                "=2C" => out.push(','),
                "=3D" => out.push('='),
                _ => return None,
            }
            rest = &rest[at + 3..];
        }
        out.push_str(rest);
        Some(out)
    }

    /// Encodes a user name as a SASL name (the inverse of [`decode`]).
    pub(super) fn encode(user: &str) -> String {
        user.replace('=', "=3D").replace(',', "=2C")
    }
}

#[cfg(test)]
pub(crate) mod test_support {
    //! A credential store and helpers for the mechanism tests.

    use std::collections::HashMap;
    use std::sync::Arc;

    use super::{Clock, CredentialStore, Mechanism, ScramCredential};

    /// Credentials in a map.
    #[derive(Default)]
    pub(crate) struct MemStore {
        pub(crate) credentials: HashMap<(String, Mechanism), ScramCredential>,
    }

    impl MemStore {
        /// A store holding `user`'s credentials for each of `mechanisms`.
        pub(crate) fn with(user: &str, password: &str, mechanisms: &[Mechanism]) -> MemStore {
            let mut store = MemStore::default();
            for &mechanism in mechanisms {
                store.add(user, password, mechanism);
            }
            store
        }

        pub(crate) fn add(&mut self, user: &str, password: &str, mechanism: Mechanism) {
            let credential = ScramCredential::generate(mechanism, password, 4096)
                .expect("test credential parameters are valid");
            self.credentials
                .insert((user.to_owned(), mechanism), credential);
        }

        pub(crate) fn shared(self) -> Arc<dyn CredentialStore + Send + Sync> {
            Arc::new(self)
        }
    }

    impl CredentialStore for MemStore {
        fn scram(&self, user: &str, mechanism: Mechanism) -> Option<ScramCredential> {
            self.credentials.get(&(user.to_owned(), mechanism)).cloned()
        }
    }

    /// A clock stopped at `now_ms`.
    pub(crate) fn fixed_clock(now_ms: i64) -> Clock {
        Arc::new(move || now_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::test_support::MemStore;
    use super::*;

    #[test]
    fn mechanism_names_round_trip_and_are_case_sensitive() {
        for mechanism in Mechanism::ALL {
            assert_eq!(Mechanism::parse(mechanism.name()), Some(mechanism));
            assert_eq!(mechanism.to_string(), mechanism.name());
        }
        assert_eq!(Mechanism::parse("scram-sha-512"), None);
        assert_eq!(Mechanism::parse("GSSAPI"), None);
        assert_eq!(Mechanism::parse(""), None);
    }

    #[test]
    fn mechanism_serialises_as_its_name() {
        let json = serde_json::to_string(&Mechanism::ScramSha256).expect("serialises");
        assert_eq!(json, "\"SCRAM-SHA-256\"");
        let back: Mechanism = serde_json::from_str(&json).expect("deserialises");
        assert_eq!(back, Mechanism::ScramSha256);
        assert!(serde_json::from_str::<Mechanism>("\"MD5\"").is_err());
    }

    #[test]
    fn saslname_escapes_decode_and_bad_escapes_are_refused() {
        assert_eq!(saslname::decode("user").as_deref(), Some("user"));
        assert_eq!(saslname::decode("a=2Cb=3Dc").as_deref(), Some("a,b=c"));
        assert_eq!(saslname::encode("a,b=c"), "a=2Cb=3Dc");
        for bad in ["", "a=", "a=2", "a=41", "a=2c", "a,b", "a\0b", "=3"] {
            assert_eq!(saslname::decode(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn client_messages_name_no_reason_and_no_user() {
        let secret = "alice-secret-detail";
        let errors = [
            AuthError::InvalidCredentials {
                mechanism: Mechanism::ScramSha512,
            },
            AuthError::InvalidCredentials {
                mechanism: Mechanism::Plain,
            },
            AuthError::Malformed {
                mechanism: Mechanism::ScramSha256,
                reason: secret.to_owned(),
            },
            AuthError::ProtocolViolation {
                mechanism: Mechanism::ScramSha256,
                reason: secret.to_owned(),
            },
            AuthError::AuthorizationIdMismatch {
                mechanism: Mechanism::Plain,
                authorization_id: secret.to_owned(),
                user: secret.to_owned(),
            },
            AuthError::UnsupportedExtension {
                mechanism: Mechanism::ScramSha512,
                extension: secret.to_owned(),
                reason: secret.to_owned(),
            },
            AuthError::InvalidToken {
                reason: secret.to_owned(),
                client_error: r#"{"status":"invalid_token"}"#.to_owned(),
            },
            AuthError::NoTokenValidator,
            AuthError::MessageTooLarge {
                mechanism: Mechanism::Plain,
                size_bytes: 1,
                limit_bytes: 0,
            },
            AuthError::ExchangeFinished {
                mechanism: Mechanism::OAuthBearer,
            },
        ];
        for error in &errors {
            for reauthentication in [false, true] {
                let message = error.client_message(reauthentication);
                assert!(!message.is_empty());
                assert!(!message.contains(secret), "{error:?} leaks: {message}");
            }
        }
    }

    #[test]
    fn generic_client_message_is_kafkas() {
        let error = AuthError::InvalidCredentials {
            mechanism: Mechanism::ScramSha512,
        };
        assert_eq!(
            error.client_message(false),
            "Authentication failed during authentication due to invalid credentials with SASL \
             mechanism SCRAM-SHA-512"
        );
        assert_eq!(
            error.client_message(true),
            "Authentication failed during re-authentication due to invalid credentials with \
             SASL mechanism SCRAM-SHA-512"
        );
    }

    #[test]
    fn oversized_message_is_refused_before_parsing() {
        let mut auth = Authenticator::new(Mechanism::Plain, MemStore::default().shared(), None);
        let big = vec![b'a'; MAX_CLIENT_MESSAGE_BYTES + 1];
        assert_eq!(
            auth.step(&big),
            Err(AuthError::MessageTooLarge {
                mechanism: Mechanism::Plain,
                size_bytes: MAX_CLIENT_MESSAGE_BYTES + 1,
                limit_bytes: MAX_CLIENT_MESSAGE_BYTES,
            })
        );
        assert!(auth.is_finished());
    }

    #[test]
    fn a_finished_exchange_refuses_further_messages() {
        let store = MemStore::with("alice", "secret", &[Mechanism::ScramSha512]).shared();
        let mut auth = Authenticator::new(Mechanism::Plain, store, None);
        assert!(auth.step(b"\0alice\0secret").is_ok());
        assert_eq!(
            auth.step(b"\0alice\0secret"),
            Err(AuthError::ExchangeFinished {
                mechanism: Mechanism::Plain
            })
        );
    }

    #[test]
    fn a_failed_exchange_refuses_further_messages() {
        let mut auth =
            Authenticator::new(Mechanism::ScramSha256, MemStore::default().shared(), None);
        assert!(auth.step(b"garbage").is_err());
        assert!(auth.is_finished());
        assert_eq!(
            auth.step(b"n,,n=user,r=abc"),
            Err(AuthError::ExchangeFinished {
                mechanism: Mechanism::ScramSha256
            })
        );
    }

    /// Deterministic noise through every mechanism: errors, never panics.
    #[test]
    fn random_bytes_never_panic_any_mechanism() {
        let store = MemStore::with("user", "pencil", &[Mechanism::ScramSha256]).shared();
        let tokens: Arc<dyn TokenValidator + Send + Sync> = Arc::new(RefuseAll);
        let mut seed: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let alphabet = b"nyp,=arcsivmtokenauth\x01\x00 Bearer2C3D+/biwsABC";
        for _ in 0..300 {
            for mechanism in [
                Mechanism::ScramSha256,
                Mechanism::OAuthBearer,
                Mechanism::ScramSha512,
            ] {
                let mut auth = Authenticator::new(mechanism, store.clone(), Some(tokens.clone()));
                for _ in 0..3 {
                    let len = usize::try_from(next() % 48).expect("small");
                    let message: Vec<u8> = (0..len)
                        .map(|_| {
                            let pick = next();
                            if pick % 5 == 0 {
                                u8::try_from(pick >> 56).expect("one byte")
                            } else {
                                let index =
                                    usize::try_from(pick % alphabet.len() as u64).expect("small");
                                alphabet[index]
                            }
                        })
                        .collect();
                    if auth.step(&message).is_err() {
                        break;
                    }
                }
            }
        }
    }

    struct RefuseAll;

    impl TokenValidator for RefuseAll {
        fn validate(&self, _token: &str) -> Result<TokenInfo, String> {
            Err("refused".to_owned())
        }
    }
}
