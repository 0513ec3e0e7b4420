//! The client side of PLAIN and SCRAM-SHA-256/512, as pure state machines: what a Kafka client
//! puts in each SaslAuthenticate request, and the check of the broker's answers.
//!
//! A [`SaslClient`] is made with the user's name and password; [`SaslClient::start`] gives the
//! first message, and each server message goes to [`SaslClient::step`], which answers the next
//! client message or, at the end, [`ClientStep::Done`]. The sockets, the SaslHandshake and the
//! framing are the caller's (`spate-client`).
//!
//! SCRAM follows RFC 5802 as Kafka's `ScramSaslClient` does: no channel binding (`n,,`), no
//! SASLprep, the user name escaped as a saslname, and the server's signature checked before the
//! exchange counts as done, so a server that does not know the password cannot pass for the
//! broker. Unlike Kafka's client, a server asking for more than [`scram::MAX_ITERATIONS`]
//! iterations is refused too: a hostile server could otherwise make the client hash for hours.
//!
//! OAUTHBEARER is not offered: its tokens come from an identity provider, which is I/O.

use std::fmt;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use subtle::ConstantTimeEq;

use super::scram::{self, ScramHash};
use super::{Mechanism, saslname};

/// Why a client-side exchange cannot go on. The broker's own refusal arrives as an error code
/// in SaslAuthenticate, which the caller reports; these are the client's findings.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ClientError {
    /// The client has no implementation of the mechanism.
    #[error(
        "SASL mechanism {mechanism} is not supported by this client; use PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512"
    )]
    UnsupportedMechanism {
        /// The mechanism asked for.
        mechanism: Mechanism,
    },
    /// The user name or password is empty.
    #[error("SASL/{mechanism} needs a {field}; it is empty")]
    MissingCredential {
        /// The mechanism of the exchange.
        mechanism: Mechanism,
        /// `user name` or `password`.
        field: &'static str,
    },
    /// A server message that does not parse.
    #[error("malformed SASL/{mechanism} server message: {reason}")]
    Malformed {
        /// The mechanism of the exchange.
        mechanism: Mechanism,
        /// What is wrong with it.
        reason: String,
    },
    /// The server answered with an RFC 5802 `e=` error.
    #[error("SASL/{mechanism} server error: {message}")]
    ServerError {
        /// The mechanism of the exchange.
        mechanism: Mechanism,
        /// The `e=` value.
        message: String,
    },
    /// The server's nonce does not extend the client's.
    #[error("SASL/{mechanism} server nonce does not start with the client nonce")]
    NonceMismatch {
        /// The mechanism of the exchange.
        mechanism: Mechanism,
    },
    /// The server asked for an iteration count outside the accepted range.
    #[error(
        "SASL/{mechanism} server asked for {iterations} iterations; this client accepts \
         {min} to {max}"
    )]
    IterationsOutOfRange {
        /// The mechanism of the exchange.
        mechanism: Mechanism,
        /// The count the server asked for.
        iterations: u32,
        /// The fewest accepted.
        min: u32,
        /// The most accepted.
        max: u32,
    },
    /// The server's final signature is wrong: it does not know the user's credential.
    #[error(
        "SASL/{mechanism} server signature is invalid: the broker does not hold this user's \
         credential (or is not the broker it claims to be)"
    )]
    InvalidServerSignature {
        /// The mechanism of the exchange.
        mechanism: Mechanism,
    },
    /// A message arrived after the exchange had finished.
    #[error("SASL/{mechanism} exchange already finished")]
    ExchangeFinished {
        /// The mechanism of the exchange.
        mechanism: Mechanism,
    },
}

/// What the client does after a server message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ClientStep {
    /// Send these bytes in the next SaslAuthenticate request.
    Send(Vec<u8>),
    /// The exchange succeeded (and for SCRAM, the server proved it knows the credential).
    Done,
}

/// One SASL exchange, client side.
pub struct SaslClient {
    mechanism: Mechanism,
    state: State,
}

enum State {
    /// PLAIN: the message to send first.
    PlainStart(Vec<u8>),
    /// PLAIN, sent: the next server message (empty) ends the exchange.
    PlainSent,
    /// SCRAM, before or after the client-first message.
    Scram(Box<ScramClient>),
    Finished,
}

impl SaslClient {
    /// An exchange for `mechanism` as `user` with `password`.
    pub fn new(
        mechanism: Mechanism,
        user: &str,
        password: &str,
    ) -> Result<SaslClient, ClientError> {
        if user.is_empty() {
            return Err(ClientError::MissingCredential {
                mechanism,
                field: "user name",
            });
        }
        if password.is_empty() {
            return Err(ClientError::MissingCredential {
                mechanism,
                field: "password",
            });
        }
        let state = match mechanism {
            // RFC 4616: authzid (empty: the user itself), user, password.
            Mechanism::Plain => State::PlainStart(format!("\0{user}\0{password}").into_bytes()),
            Mechanism::ScramSha256 | Mechanism::ScramSha512 => State::Scram(Box::new(
                ScramClient::new(mechanism, user, password, scram::random_nonce()),
            )),
            Mechanism::OAuthBearer => return Err(ClientError::UnsupportedMechanism { mechanism }),
        };
        Ok(SaslClient { mechanism, state })
    }

    /// The mechanism of this exchange.
    #[must_use]
    pub fn mechanism(&self) -> Mechanism {
        self.mechanism
    }

    /// The first message, for the first SaslAuthenticate request. Calling it twice is an
    /// [`ClientError::ExchangeFinished`].
    pub fn start(&mut self) -> Result<Vec<u8>, ClientError> {
        match &mut self.state {
            State::PlainStart(message) => {
                let message = std::mem::take(message);
                self.state = State::PlainSent;
                Ok(message)
            }
            State::Scram(client) if client.phase == ScramPhase::Start => Ok(client.client_first()),
            _ => Err(self.finished()),
        }
    }

    /// Feeds the server's answer to the last message sent.
    pub fn step(&mut self, server_bytes: &[u8]) -> Result<ClientStep, ClientError> {
        match std::mem::replace(&mut self.state, State::Finished) {
            // Kafka's PLAIN server answers with no bytes; anything else is still a success
            // (the error code, not the bytes, says whether it worked).
            State::PlainSent => Ok(ClientStep::Done),
            State::Scram(mut client) => {
                let step = client.step(server_bytes)?;
                if step != ClientStep::Done {
                    self.state = State::Scram(client);
                }
                Ok(step)
            }
            State::PlainStart(_) | State::Finished => Err(self.finished()),
        }
    }

    /// Whether the exchange has finished, successfully or not.
    #[must_use]
    pub fn is_finished(&self) -> bool {
        matches!(self.state, State::Finished)
    }

    fn finished(&self) -> ClientError {
        ClientError::ExchangeFinished {
            mechanism: self.mechanism,
        }
    }
}

impl fmt::Debug for SaslClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never the password.
        f.debug_struct("SaslClient")
            .field("mechanism", &self.mechanism)
            .field("finished", &self.is_finished())
            .finish_non_exhaustive()
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ScramPhase {
    Start,
    AwaitServerFirst,
    AwaitServerFinal,
}

/// The client side of one SCRAM exchange.
struct ScramClient {
    mechanism: Mechanism,
    hash: ScramHash,
    user: String,
    password: String,
    client_nonce: String,
    phase: ScramPhase,
    /// `n=user,r=cnonce`, part of the AuthMessage.
    client_first_bare: String,
    /// The ServerSignature expected in the server-final message.
    expected_signature: Vec<u8>,
}

/// The gs2 header: no channel binding, no authorization id (as Kafka's client sends).
const GS2_HEADER: &str = "n,,";

impl ScramClient {
    fn new(mechanism: Mechanism, user: &str, password: &str, client_nonce: String) -> ScramClient {
        let hash = ScramHash::of(mechanism).expect("ScramClient is only made for SCRAM");
        ScramClient {
            mechanism,
            hash,
            user: user.to_owned(),
            password: password.to_owned(),
            client_nonce,
            phase: ScramPhase::Start,
            client_first_bare: String::new(),
            expected_signature: Vec::new(),
        }
    }

    fn client_first(&mut self) -> Vec<u8> {
        self.client_first_bare =
            format!("n={},r={}", saslname::encode(&self.user), self.client_nonce);
        self.phase = ScramPhase::AwaitServerFirst;
        format!("{GS2_HEADER}{}", self.client_first_bare).into_bytes()
    }

    fn step(&mut self, server_bytes: &[u8]) -> Result<ClientStep, ClientError> {
        match self.phase {
            ScramPhase::AwaitServerFirst => self.server_first(server_bytes).map(ClientStep::Send),
            ScramPhase::AwaitServerFinal => {
                self.server_final(server_bytes).map(|()| ClientStep::Done)
            }
            ScramPhase::Start => Err(ClientError::ExchangeFinished {
                mechanism: self.mechanism,
            }),
        }
    }

    /// Answers `r=nonce,s=salt,i=iterations` with the client-final message.
    fn server_first(&mut self, server_bytes: &[u8]) -> Result<Vec<u8>, ClientError> {
        let message = self.text(server_bytes, "server-first")?;
        let first = ServerFirst::parse(message).map_err(|reason| self.fail(reason))?;
        if let Some(error) = first.error {
            return Err(ClientError::ServerError {
                mechanism: self.mechanism,
                message: error.to_owned(),
            });
        }
        if !first.nonce.starts_with(&self.client_nonce)
            || first.nonce.len() <= self.client_nonce.len()
        {
            return Err(ClientError::NonceMismatch {
                mechanism: self.mechanism,
            });
        }
        if scram::check_iterations(first.iterations).is_err() {
            return Err(ClientError::IterationsOutOfRange {
                mechanism: self.mechanism,
                iterations: first.iterations,
                min: scram::MIN_ITERATIONS,
                max: scram::MAX_ITERATIONS,
            });
        }
        let salted_password = scram::salted_password(
            self.mechanism,
            &self.password,
            &first.salt,
            first.iterations,
        )
        .map_err(|e| self.fail(e.to_string()))?;
        let without_proof = format!("c={},r={}", STANDARD.encode(GS2_HEADER), first.nonce);
        let auth_message = format!("{},{message},{without_proof}", self.client_first_bare);
        let client_key = self.hash.hmac(&salted_password, b"Client Key");
        let stored_key = self.hash.hash(&client_key);
        let client_signature = self.hash.hmac(&stored_key, auth_message.as_bytes());
        let proof: Vec<u8> = client_key
            .iter()
            .zip(&client_signature)
            .map(|(key, signature)| key ^ signature)
            .collect();
        let server_key = self.hash.hmac(&salted_password, b"Server Key");
        self.expected_signature = self.hash.hmac(&server_key, auth_message.as_bytes());
        self.phase = ScramPhase::AwaitServerFinal;
        Ok(format!("{without_proof},p={}", STANDARD.encode(proof)).into_bytes())
    }

    /// Checks `v=ServerSignature` (or reports `e=error`).
    fn server_final(&mut self, server_bytes: &[u8]) -> Result<(), ClientError> {
        let message = self.text(server_bytes, "server-final")?;
        let mut attributes = message.split(',');
        let first = attributes.next().unwrap_or_default();
        if let Some(error) = first.strip_prefix("e=") {
            return Err(ClientError::ServerError {
                mechanism: self.mechanism,
                message: error.to_owned(),
            });
        }
        let signature = first
            .strip_prefix("v=")
            .ok_or_else(|| self.fail("the server-final message must start with v= or e="))?;
        let signature = STANDARD
            .decode(signature)
            .map_err(|_| self.fail("the server signature is not valid base64"))?;
        let genuine: bool = signature.ct_eq(&self.expected_signature).into();
        if !genuine {
            return Err(ClientError::InvalidServerSignature {
                mechanism: self.mechanism,
            });
        }
        Ok(())
    }

    fn text<'a>(&self, bytes: &'a [u8], what: &str) -> Result<&'a str, ClientError> {
        std::str::from_utf8(bytes)
            .map_err(|_| self.fail(format!("the {what} message is not UTF-8")))
    }

    fn fail(&self, reason: impl Into<String>) -> ClientError {
        ClientError::Malformed {
            mechanism: self.mechanism,
            reason: reason.into(),
        }
    }
}

/// `r=nonce,s=salt,i=iterations[,ext]*` or `e=error`, parsed.
struct ServerFirst<'a> {
    error: Option<&'a str>,
    nonce: &'a str,
    salt: Vec<u8>,
    iterations: u32,
}

impl<'a> ServerFirst<'a> {
    fn parse(message: &'a str) -> Result<ServerFirst<'a>, String> {
        if let Some(error) = message.strip_prefix("e=") {
            return Ok(ServerFirst {
                error: Some(error),
                nonce: "",
                salt: Vec::new(),
                iterations: 0,
            });
        }
        if message.starts_with("m=") {
            return Err("mandatory extension (m=) is not supported".to_owned());
        }
        let mut attributes = message.split(',');
        let mut next = |key: &str| {
            attributes
                .next()
                .and_then(|attribute| attribute.strip_prefix(key))
                .ok_or_else(|| format!("expected attribute {key} in the server-first message"))
        };
        let nonce = next("r=")?;
        let salt = next("s=")?;
        let iterations = next("i=")?;
        if !scram::is_printable(nonce) {
            return Err("the nonce must be printable ASCII without ','".to_owned());
        }
        let salt = STANDARD
            .decode(salt)
            .map_err(|_| "the salt is not valid base64".to_owned())?;
        if salt.is_empty() {
            return Err("the salt is empty".to_owned());
        }
        let iterations = iterations
            .parse()
            .map_err(|_| format!("the iteration count {iterations:?} is not a number"))?;
        Ok(ServerFirst {
            error: None,
            nonce,
            salt,
            iterations,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::MemStore;
    use super::super::{AuthError, Authenticator, Step};
    use super::*;

    /// Runs `client` against `server` to the end: the server's verdict, and the client's.
    fn run(
        mut client: SaslClient,
        server: &mut Authenticator,
    ) -> Result<(String, ClientStep), Outcome> {
        let mut message = client.start().expect("first message");
        loop {
            let (server_bytes, principal) = match server.step(&message) {
                Ok(Step::Challenge(bytes)) => (bytes, None),
                Ok(Step::Done {
                    response,
                    principal,
                    ..
                }) => (response, Some(principal)),
                Err(error) => return Err(Outcome::Server(error)),
            };
            match client.step(&server_bytes) {
                Ok(ClientStep::Send(next)) => message = next,
                Ok(ClientStep::Done) => {
                    let principal = principal.expect("the client finished before the server");
                    assert!(client.is_finished());
                    return Ok((principal, ClientStep::Done));
                }
                Err(error) => return Err(Outcome::Client(error)),
            }
        }
    }

    #[derive(Debug, PartialEq)]
    enum Outcome {
        Server(AuthError),
        Client(ClientError),
    }

    fn server(mechanism: Mechanism, store: MemStore) -> Authenticator {
        Authenticator::new(mechanism, store.shared(), None)
    }

    #[test]
    fn every_mechanism_authenticates_against_the_server() {
        for mechanism in [
            Mechanism::Plain,
            Mechanism::ScramSha256,
            Mechanism::ScramSha512,
        ] {
            let store = MemStore::with(
                "alice",
                "s3cret",
                &[Mechanism::ScramSha256, Mechanism::ScramSha512],
            );
            let client = SaslClient::new(mechanism, "alice", "s3cret").expect("client");
            let (principal, _) = run(client, &mut server(mechanism, store)).expect("authenticates");
            assert_eq!(principal, "alice", "{mechanism}");
        }
    }

    #[test]
    fn a_wrong_password_is_refused_by_the_server() {
        for mechanism in [
            Mechanism::Plain,
            Mechanism::ScramSha256,
            Mechanism::ScramSha512,
        ] {
            let store = MemStore::with("alice", "s3cret", &[mechanism_or_512(mechanism)]);
            let client = SaslClient::new(mechanism, "alice", "wrong").expect("client");
            let outcome = run(client, &mut server(mechanism, store)).expect_err("refused");
            assert_eq!(
                outcome,
                Outcome::Server(AuthError::InvalidCredentials { mechanism }),
                "{mechanism}"
            );
        }
    }

    fn mechanism_or_512(mechanism: Mechanism) -> Mechanism {
        if mechanism.is_scram() {
            mechanism
        } else {
            Mechanism::ScramSha512
        }
    }

    #[test]
    fn user_names_with_commas_and_equals_are_escaped() {
        let store = MemStore::with("a,b=c", "pw", &[Mechanism::ScramSha256]);
        let mut client = SaslClient::new(Mechanism::ScramSha256, "a,b=c", "pw").expect("client");
        let first = client.start().expect("first");
        assert!(first.starts_with(b"n,,n=a=2Cb=3Dc,r="), "{first:?}");
        let client = SaslClient::new(Mechanism::ScramSha256, "a,b=c", "pw").expect("client");
        let (principal, _) =
            run(client, &mut server(Mechanism::ScramSha256, store)).expect("authenticates");
        assert_eq!(principal, "a,b=c");
    }

    /// The server's first message for a fresh exchange with `client`.
    fn server_first(client: &mut SaslClient, server: &mut Authenticator) -> String {
        let first = client.start().expect("first");
        match server.step(&first) {
            Ok(Step::Challenge(bytes)) => String::from_utf8(bytes).expect("UTF-8"),
            other => panic!("expected a challenge, got {other:?}"),
        }
    }

    fn scram_pair() -> (SaslClient, Authenticator) {
        let store = MemStore::with("alice", "pw", &[Mechanism::ScramSha512]);
        let client = SaslClient::new(Mechanism::ScramSha512, "alice", "pw").expect("client");
        (client, server(Mechanism::ScramSha512, store))
    }

    #[test]
    fn a_forged_server_signature_is_refused() {
        let (mut client, mut auth) = scram_pair();
        let first = server_first(&mut client, &mut auth);
        let ClientStep::Send(last) = client.step(first.as_bytes()).expect("final") else {
            panic!("expected the client-final message");
        };
        let Ok(Step::Done { response, .. }) = auth.step(&last) else {
            panic!("the server accepts the proof");
        };
        let mut text = String::from_utf8(response).expect("UTF-8");
        // A server that does not know the credential cannot make the signature.
        let signature = STANDARD.decode(&text[2..]).expect("base64");
        let mut forged = signature.clone();
        forged[0] ^= 1;
        text = format!("v={}", STANDARD.encode(forged));
        assert_eq!(
            client.step(text.as_bytes()),
            Err(ClientError::InvalidServerSignature {
                mechanism: Mechanism::ScramSha512
            })
        );
        assert!(client.is_finished());
    }

    #[test]
    fn a_server_nonce_that_drops_the_client_nonce_is_refused() {
        let (mut client, mut auth) = scram_pair();
        let first = server_first(&mut client, &mut auth);
        let tampered = first.replacen("r=", "r=X", 1);
        assert_eq!(
            client.step(tampered.as_bytes()),
            Err(ClientError::NonceMismatch {
                mechanism: Mechanism::ScramSha512
            })
        );
    }

    #[test]
    fn iteration_counts_outside_the_range_are_refused_before_hashing() {
        for iterations in ["1", "4095", "16385", "4294967295"] {
            let (mut client, mut auth) = scram_pair();
            let first = server_first(&mut client, &mut auth);
            let (head, _) = first.rsplit_once(",i=").expect("iterations");
            let tampered = format!("{head},i={iterations}");
            assert!(
                matches!(
                    client.step(tampered.as_bytes()),
                    Err(ClientError::IterationsOutOfRange { .. })
                ),
                "{iterations}"
            );
        }
    }

    #[test]
    fn server_errors_are_reported_with_their_text() {
        let (mut client, mut auth) = scram_pair();
        server_first(&mut client, &mut auth);
        assert_eq!(
            client.step(b"e=unknown-user"),
            Err(ClientError::ServerError {
                mechanism: Mechanism::ScramSha512,
                message: "unknown-user".to_owned()
            })
        );
    }

    #[test]
    fn malformed_server_messages_are_errors_not_panics() {
        for bad in [
            &b""[..],
            b"r=",
            b"s=abc,r=def,i=4096",
            b"m=ext,r=a,s=b,i=4096",
            b"r=NONCE",
            b"r=NONCE,s=!!!,i=4096",
            b"r=NONCE,s=,i=4096",
            b"r=NONCE,s=c2FsdA==,i=many",
            b"r=NONCE,s=c2FsdA==",
            b"\xff\xfe",
        ] {
            let (mut client, mut auth) = scram_pair();
            let first = server_first(&mut client, &mut auth);
            let nonce = first
                .split(',')
                .next()
                .and_then(|r| r.strip_prefix("r="))
                .expect("nonce");
            let message = String::from_utf8_lossy(bad).replace("NONCE", nonce);
            let bytes = if bad == b"\xff\xfe" {
                bad.to_vec()
            } else {
                message.into_bytes()
            };
            assert!(
                matches!(client.step(&bytes), Err(ClientError::Malformed { .. })),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
        for bad in [&b"x=1"[..], b"v=!!!", b""] {
            let (mut client, mut auth) = scram_pair();
            let first = server_first(&mut client, &mut auth);
            client.step(first.as_bytes()).expect("final");
            assert!(
                matches!(client.step(bad), Err(ClientError::Malformed { .. })),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn empty_credentials_and_oauthbearer_are_refused_up_front() {
        assert_eq!(
            SaslClient::new(Mechanism::ScramSha256, "", "pw").err(),
            Some(ClientError::MissingCredential {
                mechanism: Mechanism::ScramSha256,
                field: "user name"
            })
        );
        assert_eq!(
            SaslClient::new(Mechanism::Plain, "alice", "").err(),
            Some(ClientError::MissingCredential {
                mechanism: Mechanism::Plain,
                field: "password"
            })
        );
        assert_eq!(
            SaslClient::new(Mechanism::OAuthBearer, "alice", "pw").err(),
            Some(ClientError::UnsupportedMechanism {
                mechanism: Mechanism::OAuthBearer
            })
        );
    }

    #[test]
    fn a_finished_exchange_refuses_more_messages_and_debug_hides_the_password() {
        let mut client = SaslClient::new(Mechanism::Plain, "alice", "hunter2").expect("client");
        assert!(!format!("{client:?}").contains("hunter2"));
        let message = client.start().expect("first");
        assert_eq!(message, b"\0alice\0hunter2");
        assert!(client.start().is_err());
        assert_eq!(client.step(b""), Ok(ClientStep::Done));
        assert_eq!(
            client.step(b""),
            Err(ClientError::ExchangeFinished {
                mechanism: Mechanism::Plain
            })
        );
    }
}
