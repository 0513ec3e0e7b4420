//! SASL on a connection (SASL_PLAINTEXT and SASL_SSL listeners): the SaslHandshake and
//! SaslAuthenticate exchange that must come before any other request except ApiVersions, and
//! re-authentication (KIP-368) when a session has a lifetime.
//!
//! The mechanisms themselves are `spate_auth::sasl`'s; this module keeps the connection's state
//! and answers the two requests. A failed authentication is answered with
//! SASL_AUTHENTICATION_FAILED and the connection closes, as in Kafka; the client is told nothing
//! that says whether the user exists, while the log line has the reason.

use std::sync::Arc;
use std::time::{Duration, Instant};

use kafka_protocol::ResponseError;
use kafka_protocol::messages::{
    ApiKey, SaslAuthenticateRequest, SaslAuthenticateResponse, SaslHandshakeRequest,
    SaslHandshakeResponse,
};
use kafka_protocol::protocol::StrBytes;
use spate_auth::sasl::{Authenticator, CredentialStore, Mechanism, Step, TokenValidator};

/// What a SASL listener accepts.
#[derive(Clone)]
pub struct SaslSettings {
    /// Enabled mechanisms, in the order the handshake lists them.
    pub mechanisms: Vec<Mechanism>,
    /// Users' SCRAM credentials.
    pub store: Arc<dyn CredentialStore + Send + Sync>,
    /// Checks OAUTHBEARER tokens, when that mechanism is configured.
    pub tokens: Option<Arc<dyn TokenValidator + Send + Sync>>,
    /// Kafka's `connections.max.reauth.ms`: sessions must re-authenticate this often.
    pub max_reauth: Option<Duration>,
}

/// A connection's SASL state.
pub struct SaslState {
    settings: Arc<SaslSettings>,
    authenticator: Option<Authenticator>,
    /// The authenticated principal, once there is one.
    pub principal: Option<String>,
    /// The user name a failed authentication claimed (for the audit log).
    pub failed_user: Option<String>,
    /// Set when an exchange completes; read once by [`SaslState::authenticated_now`].
    completed: bool,
    /// When the session must have re-authenticated by.
    pub expires: Option<Instant>,
}

/// What the connection does after a SASL request.
pub enum Outcome {
    /// Send this response and go on.
    Answer(kafka_protocol::messages::ResponseKind),
    /// Send this response, then close the connection (failed authentication).
    AnswerAndClose(kafka_protocol::messages::ResponseKind, String),
}

impl SaslState {
    /// A connection that has not authenticated.
    pub fn new(settings: Arc<SaslSettings>) -> SaslState {
        SaslState {
            settings,
            authenticator: None,
            principal: None,
            failed_user: None,
            completed: false,
            expires: None,
        }
    }

    /// Whether a request of this API may be handled now: before authentication only
    /// ApiVersions and the SASL requests may.
    pub fn allows(&self, api_key: ApiKey) -> bool {
        matches!(
            api_key,
            ApiKey::ApiVersions | ApiKey::SaslHandshake | ApiKey::SaslAuthenticate
        ) || (self.principal.is_some() && self.expires.is_none_or(|e| Instant::now() < e))
    }

    /// Answers SaslHandshake: picks the mechanism for the exchange that follows.
    pub fn handshake(&mut self, req: &SaslHandshakeRequest) -> Outcome {
        let names: Vec<StrBytes> = self
            .settings
            .mechanisms
            .iter()
            .map(|m| StrBytes::from_static_str(m.name()))
            .collect();
        let response = SaslHandshakeResponse::default().with_mechanisms(names);
        let chosen =
            Mechanism::parse(&req.mechanism).filter(|m| self.settings.mechanisms.contains(m));
        match chosen {
            Some(mechanism) => {
                self.authenticator = Some(Authenticator::new(
                    mechanism,
                    Arc::clone(&self.settings.store),
                    self.settings.tokens.clone(),
                ));
                Outcome::Answer(kafka_protocol::messages::ResponseKind::SaslHandshake(
                    response,
                ))
            }
            None => Outcome::AnswerAndClose(
                kafka_protocol::messages::ResponseKind::SaslHandshake(
                    response.with_error_code(ResponseError::UnsupportedSaslMechanism.code()),
                ),
                format!(
                    "client asked for SASL mechanism {:?}, which is not enabled",
                    req.mechanism.as_str()
                ),
            ),
        }
    }

    /// Whether the last SaslAuthenticate completed an exchange (asked once per exchange).
    pub fn authenticated_now(&mut self) -> bool {
        std::mem::take(&mut self.completed)
    }

    /// Answers SaslAuthenticate: one step of the exchange.
    pub fn authenticate(&mut self, req: &SaslAuthenticateRequest, version: i16) -> Outcome {
        let reauthentication = self.principal.is_some();
        let Some(authenticator) = self.authenticator.as_mut() else {
            let response = SaslAuthenticateResponse::default()
                .with_error_code(ResponseError::IllegalSaslState.code())
                .with_error_message(Some(StrBytes::from_static_str(
                    "SaslAuthenticate must follow SaslHandshake",
                )));
            return Outcome::AnswerAndClose(
                kafka_protocol::messages::ResponseKind::SaslAuthenticate(response),
                "SaslAuthenticate without SaslHandshake".to_string(),
            );
        };
        match authenticator.step(&req.auth_bytes) {
            Ok(Step::Challenge(bytes)) => {
                Outcome::Answer(kafka_protocol::messages::ResponseKind::SaslAuthenticate(
                    SaslAuthenticateResponse::default().with_auth_bytes(bytes.into()),
                ))
            }
            Ok(Step::Done {
                response,
                principal,
                session_lifetime_ms,
            }) => {
                let mechanism = authenticator.mechanism();
                let principal = format!("User:{principal}");
                if reauthentication && self.principal.as_deref() != Some(principal.as_str()) {
                    // KIP-368: re-authentication may not change who the connection is.
                    let response = SaslAuthenticateResponse::default()
                        .with_error_code(ResponseError::SaslAuthenticationFailed.code())
                        .with_error_message(Some(StrBytes::from_static_str(
                            "Cannot change principals during re-authentication",
                        )));
                    return Outcome::AnswerAndClose(
                        kafka_protocol::messages::ResponseKind::SaslAuthenticate(response),
                        format!(
                            "re-authentication as {principal} on a connection of {:?}",
                            self.principal
                        ),
                    );
                }
                let lifetime = [
                    session_lifetime_ms.map(|ms| Duration::from_millis(ms.max(0) as u64)),
                    self.settings.max_reauth,
                ]
                .into_iter()
                .flatten()
                .min();
                self.expires = lifetime.map(|l| Instant::now() + l);
                tracing::info!(%principal, mechanism = mechanism.name(), reauthentication, "authenticated");
                self.principal = Some(principal);
                self.authenticator = None;
                self.completed = true;
                let mut answer =
                    SaslAuthenticateResponse::default().with_auth_bytes(response.into());
                if version >= 1 {
                    answer.session_lifetime_ms =
                        lifetime.map_or(0, |l| i64::try_from(l.as_millis()).unwrap_or(i64::MAX));
                }
                Outcome::Answer(kafka_protocol::messages::ResponseKind::SaslAuthenticate(
                    answer,
                ))
            }
            Err(error) => {
                let user = authenticator.attempted_user().unwrap_or("").to_string();
                self.failed_user = Some(user.clone());
                let response = SaslAuthenticateResponse::default()
                    .with_error_code(ResponseError::SaslAuthenticationFailed.code())
                    .with_error_message(Some(StrBytes::from_string(
                        error.client_message(reauthentication),
                    )));
                Outcome::AnswerAndClose(
                    kafka_protocol::messages::ResponseKind::SaslAuthenticate(response),
                    format!("authentication failed for user {user:?}: {error}"),
                )
            }
        }
    }
}
