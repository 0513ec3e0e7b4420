//! SCRAM-SHA-256 and SCRAM-SHA-512 (RFC 5802, RFC 7677) as Kafka serves them, and the salted
//! credentials the broker stores for them.
//!
//! The exchange is two round trips:
//!
//! ```text
//! client-first  n,[a=authzid],n=user,r=cnonce[,ext=value]*
//! server-first  r=cnonce+snonce,s=base64(salt),i=iterations
//! client-final  c=base64(gs2-header),r=cnonce+snonce,p=base64(ClientProof)
//! server-final  v=base64(ServerSignature)
//! ```
//!
//! As in Kafka: no channel binding (gs2 flag `n` only), no SASLprep (passwords are their UTF-8
//! bytes), an authorization id must equal the user, and extensions other than `tokenauth` are
//! ignored; `tokenauth=true` (a delegation token) is refused, Spate has none.
//!
//! Unlike Kafka, an unknown user is not refused at the first message: it gets a server-first
//! message with a salt derived from its name and a per-process secret and Kafka's default
//! iterations, and fails at the proof exactly as a wrong password does.
//!
//! A [`ScramCredential`] holds what RFC 5802 lets the server keep (salt, iterations, StoredKey,
//! ServerKey), never the password. PLAIN checks passwords against the same credentials.

use std::fmt;
use std::sync::OnceLock;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, KeyInit, Mac};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256, Sha512};
use subtle::ConstantTimeEq;

use super::{AuthError, CredentialStore, Mechanism, Step, saslname};

/// The fewest iterations a credential may have (Kafka's minimum for both SHA-256 and SHA-512).
pub const MIN_ITERATIONS: u32 = 4096;
/// The most iterations a credential may have (Kafka's limit in AlterUserScramCredentials).
pub const MAX_ITERATIONS: u32 = 16384;
/// The iterations `spate user create` uses unless told otherwise, and the ones an unknown user
/// is shown.
pub const DEFAULT_ITERATIONS: u32 = 4096;
/// The length of a generated salt.
pub const SALT_BYTES: usize = 32;

/// The hash function behind a SCRAM mechanism.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum ScramHash {
    Sha256,
    Sha512,
}

impl ScramHash {
    pub(super) fn of(mechanism: Mechanism) -> Option<ScramHash> {
        match mechanism {
            Mechanism::ScramSha256 => Some(ScramHash::Sha256),
            Mechanism::ScramSha512 => Some(ScramHash::Sha512),
            Mechanism::Plain | Mechanism::OAuthBearer => None,
        }
    }

    /// The length of the hash's output, which is also that of every SCRAM key and proof.
    pub(super) fn output_bytes(self) -> usize {
        match self {
            ScramHash::Sha256 => 32,
            ScramHash::Sha512 => 64,
        }
    }

    /// `HMAC(key, data)`.
    pub(super) fn hmac(self, key: &[u8], data: &[u8]) -> Vec<u8> {
        match self {
            ScramHash::Sha256 => hmac_with::<Hmac<Sha256>>(key, data),
            ScramHash::Sha512 => hmac_with::<Hmac<Sha512>>(key, data),
        }
    }

    /// `H(data)`.
    pub(super) fn hash(self, data: &[u8]) -> Vec<u8> {
        match self {
            ScramHash::Sha256 => Sha256::digest(data).to_vec(),
            ScramHash::Sha512 => Sha512::digest(data).to_vec(),
        }
    }

    /// `Hi(password, salt, iterations)`: PBKDF2 with one block of output.
    fn hi(self, password: &[u8], salt: &[u8], iterations: u32) -> Vec<u8> {
        let mut out = vec![0; self.output_bytes()];
        match self {
            ScramHash::Sha256 => {
                pbkdf2::pbkdf2_hmac::<Sha256>(password, salt, iterations, &mut out)
            }
            ScramHash::Sha512 => {
                pbkdf2::pbkdf2_hmac::<Sha512>(password, salt, iterations, &mut out)
            }
        }
        out
    }

    /// StoredKey and ServerKey of a salted password.
    fn keys(self, salted_password: &[u8]) -> (Vec<u8>, Vec<u8>) {
        let client_key = self.hmac(salted_password, b"Client Key");
        let stored_key = self.hash(&client_key);
        let server_key = self.hmac(salted_password, b"Server Key");
        (stored_key, server_key)
    }
}

fn hmac_with<M: Mac + KeyInit>(key: &[u8], data: &[u8]) -> Vec<u8> {
    let mut mac = <M as KeyInit>::new_from_slice(key).expect("HMAC takes keys of any length");
    mac.update(data);
    mac.finalize().into_bytes().to_vec()
}

/// Why a [`ScramCredential`] cannot be made or read.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CredentialError {
    /// Only the SCRAM mechanisms have credentials.
    #[error("{mechanism} has no SCRAM credentials; use SCRAM-SHA-256 or SCRAM-SHA-512")]
    NotScram {
        /// The mechanism asked for.
        mechanism: Mechanism,
    },
    /// The iteration count is outside Kafka's limits.
    #[error("{iterations} iterations is out of range; use between {min} and {max}")]
    IterationsOutOfRange {
        /// The count asked for.
        iterations: u32,
        /// The fewest allowed.
        min: u32,
        /// The most allowed.
        max: u32,
    },
    /// The password is empty.
    #[error("the password is empty; give a non-empty password")]
    EmptyPassword,
    /// The salt is empty.
    #[error("the salt is empty")]
    EmptySalt,
    /// A stored key has the wrong length for the mechanism's hash.
    #[error("{field} is {len_bytes} bytes but {mechanism} keys are {expected_bytes} bytes")]
    KeyLength {
        /// The mechanism of the credential.
        mechanism: Mechanism,
        /// `stored_key` or `server_key`.
        field: &'static str,
        /// Its length.
        len_bytes: usize,
        /// The hash's output length.
        expected_bytes: usize,
    },
    /// A stored byte field is not valid base64.
    #[error("{field} is not valid base64")]
    Base64 {
        /// The field.
        field: &'static str,
    },
}

/// A user's salted SCRAM credential for one mechanism: what the broker stores instead of the
/// password.
///
/// Stored as JSON with the byte fields in standard base64:
///
/// ```json
/// {"mechanism":"SCRAM-SHA-512","salt":"…","iterations":4096,"stored_key":"…","server_key":"…"}
/// ```
///
/// Reading one checks the mechanism, the iteration range and the key lengths. StoredKey with an
/// overheard exchange is enough to impersonate the user, so [`fmt::Debug`] hides the keys.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "CredentialRecord", into = "CredentialRecord")]
pub struct ScramCredential {
    /// SCRAM-SHA-256 or SCRAM-SHA-512.
    pub mechanism: Mechanism,
    /// The salt of the password.
    pub salt: Vec<u8>,
    /// The PBKDF2 iteration count.
    pub iterations: u32,
    /// `H(HMAC(SaltedPassword, "Client Key"))`.
    pub stored_key: Vec<u8>,
    /// `HMAC(SaltedPassword, "Server Key")`.
    pub server_key: Vec<u8>,
}

impl ScramCredential {
    /// A credential for `password` with a random salt of [`SALT_BYTES`].
    pub fn generate(
        mechanism: Mechanism,
        password: &str,
        iterations: u32,
    ) -> Result<ScramCredential, CredentialError> {
        let mut salt = vec![0; SALT_BYTES];
        random_bytes(&mut salt);
        ScramCredential::from_salted(mechanism, password, &salt, iterations)
    }

    /// The credential for `password` with a given salt (to import one, or check test vectors).
    pub fn from_salted(
        mechanism: Mechanism,
        password: &str,
        salt: &[u8],
        iterations: u32,
    ) -> Result<ScramCredential, CredentialError> {
        let salted_password = salted_password(mechanism, password, salt, iterations)?;
        ScramCredential::from_salted_password(mechanism, &salted_password, salt, iterations)
    }

    /// The credential for a password already salted by the client, as AlterUserScramCredentials
    /// carries it (KIP-554: the password itself never reaches the broker).
    pub fn from_salted_password(
        mechanism: Mechanism,
        salted_password: &[u8],
        salt: &[u8],
        iterations: u32,
    ) -> Result<ScramCredential, CredentialError> {
        let hash = ScramHash::of(mechanism).ok_or(CredentialError::NotScram { mechanism })?;
        check_iterations(iterations)?;
        if salt.is_empty() {
            return Err(CredentialError::EmptySalt);
        }
        if salted_password.len() != hash.output_bytes() {
            return Err(CredentialError::KeyLength {
                mechanism,
                field: "salted_password",
                len_bytes: salted_password.len(),
                expected_bytes: hash.output_bytes(),
            });
        }
        let (stored_key, server_key) = hash.keys(salted_password);
        Ok(ScramCredential {
            mechanism,
            salt: salt.to_vec(),
            iterations,
            stored_key,
            server_key,
        })
    }

    /// Whether `password` is the one this credential was made from, compared in constant time.
    /// Costs `iterations` HMACs; false for a credential that fails [`ScramCredential::check`].
    #[must_use]
    pub fn verify_password(&self, password: &str) -> bool {
        let Some(hash) = ScramHash::of(self.mechanism) else {
            return false;
        };
        if self.check().is_err() {
            return false;
        }
        let salted_password = hash.hi(password.as_bytes(), &self.salt, self.iterations);
        let (stored_key, _) = hash.keys(&salted_password);
        stored_key.ct_eq(&self.stored_key).into()
    }

    /// Checks what reading a stored credential checks: a SCRAM mechanism, iterations in range,
    /// a salt, and keys as long as the hash's output.
    pub fn check(&self) -> Result<(), CredentialError> {
        let hash = ScramHash::of(self.mechanism).ok_or(CredentialError::NotScram {
            mechanism: self.mechanism,
        })?;
        check_iterations(self.iterations)?;
        if self.salt.is_empty() {
            return Err(CredentialError::EmptySalt);
        }
        for (field, key) in [
            ("stored_key", &self.stored_key),
            ("server_key", &self.server_key),
        ] {
            if key.len() != hash.output_bytes() {
                return Err(CredentialError::KeyLength {
                    mechanism: self.mechanism,
                    field,
                    len_bytes: key.len(),
                    expected_bytes: hash.output_bytes(),
                });
            }
        }
        Ok(())
    }
}

pub(super) fn check_iterations(iterations: u32) -> Result<(), CredentialError> {
    if (MIN_ITERATIONS..=MAX_ITERATIONS).contains(&iterations) {
        Ok(())
    } else {
        Err(CredentialError::IterationsOutOfRange {
            iterations,
            min: MIN_ITERATIONS,
            max: MAX_ITERATIONS,
        })
    }
}

/// `SaltedPassword = Hi(password, salt, iterations)`, what a client sends in
/// AlterUserScramCredentials (as `spate user create` does).
pub fn salted_password(
    mechanism: Mechanism,
    password: &str,
    salt: &[u8],
    iterations: u32,
) -> Result<Vec<u8>, CredentialError> {
    let hash = ScramHash::of(mechanism).ok_or(CredentialError::NotScram { mechanism })?;
    check_iterations(iterations)?;
    if password.is_empty() {
        return Err(CredentialError::EmptyPassword);
    }
    if salt.is_empty() {
        return Err(CredentialError::EmptySalt);
    }
    Ok(hash.hi(password.as_bytes(), salt, iterations))
}

/// Fills `out` from a cryptographically secure generator (for salts).
pub fn random_bytes(out: &mut [u8]) {
    rand::fill(out);
}

impl fmt::Debug for ScramCredential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ScramCredential")
            .field("mechanism", &self.mechanism)
            .field("salt", &STANDARD.encode(&self.salt))
            .field("iterations", &self.iterations)
            .field("stored_key", &"<redacted>")
            .field("server_key", &"<redacted>")
            .finish()
    }
}

/// The stored form of a [`ScramCredential`].
#[derive(Serialize, Deserialize)]
struct CredentialRecord {
    mechanism: Mechanism,
    salt: String,
    iterations: u32,
    stored_key: String,
    server_key: String,
}

impl From<ScramCredential> for CredentialRecord {
    fn from(credential: ScramCredential) -> CredentialRecord {
        CredentialRecord {
            mechanism: credential.mechanism,
            salt: STANDARD.encode(&credential.salt),
            iterations: credential.iterations,
            stored_key: STANDARD.encode(&credential.stored_key),
            server_key: STANDARD.encode(&credential.server_key),
        }
    }
}

impl TryFrom<CredentialRecord> for ScramCredential {
    type Error = CredentialError;

    fn try_from(record: CredentialRecord) -> Result<ScramCredential, CredentialError> {
        let decode = |field: &'static str, text: &str| {
            STANDARD
                .decode(text)
                .map_err(|_| CredentialError::Base64 { field })
        };
        let credential = ScramCredential {
            mechanism: record.mechanism,
            salt: decode("salt", &record.salt)?,
            iterations: record.iterations,
            stored_key: decode("stored_key", &record.stored_key)?,
            server_key: decode("server_key", &record.server_key)?,
        };
        credential.check()?;
        Ok(credential)
    }
}

/// A random server nonce: 24 bytes in base64, printable and free of `,` as RFC 5802 asks.
pub(super) fn random_nonce() -> String {
    let mut bytes = [0u8; 24];
    random_bytes(&mut bytes);
    STANDARD.encode(bytes)
}

/// A secret drawn once per process, from which unknown users' fake credentials derive.
fn process_secret() -> &'static [u8; 32] {
    static SECRET: OnceLock<[u8; 32]> = OnceLock::new();
    SECRET.get_or_init(|| {
        let mut secret = [0u8; 32];
        random_bytes(&mut secret);
        secret
    })
}

/// The credential an unknown user is shown: a salt stable for the name (so asking twice shows
/// the same salt, as for a real user), [`DEFAULT_ITERATIONS`], and keys no password matches.
fn fake_credential(mechanism: Mechanism, hash: ScramHash, user: &str) -> ScramCredential {
    let secret = process_secret();
    let derive = |label: &str| {
        let mut data = Vec::with_capacity(label.len() + mechanism.name().len() + user.len() + 2);
        data.extend_from_slice(label.as_bytes());
        data.push(0);
        data.extend_from_slice(mechanism.name().as_bytes());
        data.push(0);
        data.extend_from_slice(user.as_bytes());
        data
    };
    let salt = ScramHash::Sha256.hmac(secret, &derive("salt"));
    ScramCredential {
        mechanism,
        salt: salt[..SALT_BYTES].to_vec(),
        iterations: DEFAULT_ITERATIONS,
        stored_key: hash.hmac(secret, &derive("stored_key")),
        server_key: hash.hmac(secret, &derive("server_key")),
    }
}

/// The stored credential of `user` for `mechanism` if it has a usable one, with `true`; else a
/// fake one, with `false`.
pub(super) fn credential_or_fake(
    store: &dyn CredentialStore,
    user: &str,
    mechanism: Mechanism,
) -> Option<(ScramCredential, bool)> {
    let hash = ScramHash::of(mechanism)?;
    match store.scram(user, mechanism) {
        Some(credential) if credential.mechanism == mechanism && credential.check().is_ok() => {
            Some((credential, true))
        }
        _ => Some((fake_credential(mechanism, hash, user), false)),
    }
}

/// The server side of one SCRAM exchange.
pub(super) struct ScramServer {
    mechanism: Mechanism,
    hash: ScramHash,
    server_nonce: String,
    phase: Phase,
}

enum Phase {
    AwaitClientFirst,
    AwaitClientFinal(Box<Pending>),
    Finished,
}

/// What the server remembers between the two round trips.
struct Pending {
    user: String,
    gs2_header: String,
    client_first_bare: String,
    server_first: String,
    nonce: String,
    credential: ScramCredential,
    known_user: bool,
}

impl ScramServer {
    /// An exchange for a SCRAM `mechanism` that appends `server_nonce` to the client's nonce.
    ///
    /// # Panics
    /// If `mechanism` is not SCRAM (a bug in the caller).
    pub(super) fn new(mechanism: Mechanism, server_nonce: String) -> ScramServer {
        let hash = ScramHash::of(mechanism).expect("ScramServer is only made for SCRAM");
        ScramServer {
            mechanism,
            hash,
            server_nonce,
            phase: Phase::AwaitClientFirst,
        }
    }

    pub(super) fn step(
        &mut self,
        client_bytes: &[u8],
        store: &dyn CredentialStore,
        attempted_user: &mut Option<String>,
    ) -> Result<Step, AuthError> {
        match std::mem::replace(&mut self.phase, Phase::Finished) {
            Phase::AwaitClientFirst => self.client_first(client_bytes, store, attempted_user),
            Phase::AwaitClientFinal(pending) => self.client_final(client_bytes, *pending),
            Phase::Finished => Err(AuthError::ExchangeFinished {
                mechanism: self.mechanism,
            }),
        }
    }

    fn client_first(
        &mut self,
        client_bytes: &[u8],
        store: &dyn CredentialStore,
        attempted_user: &mut Option<String>,
    ) -> Result<Step, AuthError> {
        let message = std::str::from_utf8(client_bytes)
            .map_err(|_| self.malformed("client-first message is not UTF-8"))?;
        let first = ClientFirst::parse(message).map_err(|reason| self.malformed(reason))?;
        *attempted_user = Some(first.user.clone());
        if first.token_auth {
            return Err(AuthError::UnsupportedExtension {
                mechanism: self.mechanism,
                extension: "tokenauth".to_owned(),
                reason: "Spate has no delegation tokens; authenticate with a user's password"
                    .to_owned(),
            });
        }
        // Checked before the user is looked up, so that it says nothing about the user.
        if let Some(authorization_id) = first.authorization_id {
            if authorization_id != first.user {
                return Err(AuthError::AuthorizationIdMismatch {
                    mechanism: self.mechanism,
                    authorization_id,
                    user: first.user,
                });
            }
        }
        let (credential, known_user) =
            credential_or_fake(store, &first.user, self.mechanism).expect("the mechanism is SCRAM");
        let nonce = format!("{}{}", first.nonce, self.server_nonce);
        let server_first = format!(
            "r={nonce},s={},i={}",
            STANDARD.encode(&credential.salt),
            credential.iterations
        );
        self.phase = Phase::AwaitClientFinal(Box::new(Pending {
            user: first.user,
            gs2_header: first.gs2_header.to_owned(),
            client_first_bare: first.bare.to_owned(),
            server_first: server_first.clone(),
            nonce,
            credential,
            known_user,
        }));
        Ok(Step::Challenge(server_first.into_bytes()))
    }

    fn client_final(&self, client_bytes: &[u8], pending: Pending) -> Result<Step, AuthError> {
        let message = std::str::from_utf8(client_bytes)
            .map_err(|_| self.malformed("client-final message is not UTF-8"))?;
        let last = ClientFinal::parse(message).map_err(|reason| self.malformed(reason))?;
        if last.channel_binding != pending.gs2_header.as_bytes() {
            return Err(self.violation(
                "channel binding (c=) differs from the gs2 header of the client-first message",
            ));
        }
        // librdkafka before 2.6.1 (Debian 12's 2.0.2 among them) sends the client nonce once
        // more in front of the combined one (librdkafka#4895); Apache Kafka accepts that since
        // 3.8.1, and so does Spate, exactly that form and no other. The proof still covers the
        // message as sent, so this weakens nothing.
        let repeated = pending
            .nonce
            .strip_suffix(self.server_nonce.as_str())
            .is_some_and(|client_nonce| {
                last.nonce.len() == client_nonce.len() + pending.nonce.len()
                    && last.nonce.starts_with(client_nonce)
                    && last.nonce.ends_with(pending.nonce.as_str())
            });
        if last.nonce != pending.nonce && !repeated {
            return Err(self.violation("nonce (r=) differs from the one the server sent"));
        }
        if last.proof.len() != self.hash.output_bytes() {
            return Err(self.malformed(format!(
                "proof is {} bytes, {} needs {}",
                last.proof.len(),
                self.mechanism,
                self.hash.output_bytes()
            )));
        }
        let auth_message = format!(
            "{},{},{}",
            pending.client_first_bare, pending.server_first, last.without_proof
        );
        let credential = &pending.credential;
        // ClientKey = ClientProof XOR HMAC(StoredKey, AuthMessage); it must hash to StoredKey.
        let client_signature = self
            .hash
            .hmac(&credential.stored_key, auth_message.as_bytes());
        let client_key: Vec<u8> = last
            .proof
            .iter()
            .zip(&client_signature)
            .map(|(proof, signature)| proof ^ signature)
            .collect();
        let proof_matches: bool = self
            .hash
            .hash(&client_key)
            .ct_eq(&credential.stored_key)
            .into();
        if !(proof_matches & pending.known_user) {
            return Err(AuthError::InvalidCredentials {
                mechanism: self.mechanism,
            });
        }
        let server_signature = self
            .hash
            .hmac(&credential.server_key, auth_message.as_bytes());
        Ok(Step::Done {
            response: format!("v={}", STANDARD.encode(server_signature)).into_bytes(),
            principal: pending.user,
            session_lifetime_ms: None,
        })
    }

    fn malformed(&self, reason: impl Into<String>) -> AuthError {
        AuthError::Malformed {
            mechanism: self.mechanism,
            reason: reason.into(),
        }
    }

    fn violation(&self, reason: impl Into<String>) -> AuthError {
        AuthError::ProtocolViolation {
            mechanism: self.mechanism,
            reason: reason.into(),
        }
    }
}

/// `gs2-header client-first-message-bare`, parsed.
#[derive(Debug)]
struct ClientFirst<'a> {
    /// `n,,` or `n,a=authzid,`, as sent: the channel binding of the final message must echo it.
    gs2_header: &'a str,
    authorization_id: Option<String>,
    user: String,
    nonce: &'a str,
    /// `n=user,r=nonce[,extensions]` as sent, part of the AuthMessage.
    bare: &'a str,
    /// Whether the client sent `tokenauth=true`.
    token_auth: bool,
}

impl<'a> ClientFirst<'a> {
    fn parse(message: &'a str) -> Result<ClientFirst<'a>, String> {
        let Some(after_flag) = message.strip_prefix("n,") else {
            return Err(if message.starts_with("y,") || message.starts_with("p=") {
                "channel binding is not supported; the gs2 header must start with 'n,'"
            } else {
                "the gs2 header must start with 'n,'"
            }
            .to_owned());
        };
        let (authzid, bare) = after_flag
            .split_once(',')
            .ok_or("the gs2 header has no second ','")?;
        let gs2_header = &message[..message.len() - bare.len()];
        let authorization_id = if authzid.is_empty() {
            None
        } else {
            let name = authzid
                .strip_prefix("a=")
                .ok_or("the authorization id in the gs2 header must start with 'a='")?;
            Some(saslname::decode(name).ok_or("the authorization id is not a valid saslname")?)
        };

        let mut attributes = bare.split(',');
        let user_attribute = attributes.next().unwrap_or_default();
        if user_attribute.starts_with("m=") {
            return Err("mandatory extension (m=) is not supported".to_owned());
        }
        let user = user_attribute
            .strip_prefix("n=")
            .ok_or("the first attribute must be the user name (n=)")?;
        let user = saslname::decode(user).ok_or("the user name is not a valid saslname")?;
        let nonce = attributes
            .next()
            .and_then(|attribute| attribute.strip_prefix("r="))
            .ok_or("the second attribute must be the nonce (r=)")?;
        if !is_printable(nonce) {
            return Err("the nonce must be printable ASCII without ','".to_owned());
        }
        let mut token_auth = false;
        for attribute in attributes {
            let (key, value) = parse_extension(attribute)?;
            if key == "tokenauth" && value.eq_ignore_ascii_case("true") {
                token_auth = true;
            }
        }
        Ok(ClientFirst {
            gs2_header,
            authorization_id,
            user,
            nonce,
            bare,
            token_auth,
        })
    }
}

/// `channel-binding,nonce[,extensions],proof`, parsed.
#[derive(Debug)]
struct ClientFinal<'a> {
    channel_binding: Vec<u8>,
    nonce: &'a str,
    /// Everything before `,p=`, part of the AuthMessage.
    without_proof: &'a str,
    proof: Vec<u8>,
}

impl<'a> ClientFinal<'a> {
    fn parse(message: &'a str) -> Result<ClientFinal<'a>, String> {
        let (without_proof, proof) = message
            .rsplit_once(",p=")
            .ok_or("the last attribute must be the proof (p=)")?;
        if proof.contains(',') {
            return Err("the proof must be the last attribute".to_owned());
        }
        let proof = STANDARD
            .decode(proof)
            .map_err(|_| "the proof is not valid base64")?;
        let mut attributes = without_proof.split(',');
        let channel_binding = attributes
            .next()
            .and_then(|attribute| attribute.strip_prefix("c="))
            .ok_or("the first attribute must be the channel binding (c=)")?;
        let channel_binding = STANDARD
            .decode(channel_binding)
            .map_err(|_| "the channel binding is not valid base64")?;
        let nonce = attributes
            .next()
            .and_then(|attribute| attribute.strip_prefix("r="))
            .ok_or("the second attribute must be the nonce (r=)")?;
        if !is_printable(nonce) {
            return Err("the nonce must be printable ASCII without ','".to_owned());
        }
        for attribute in attributes {
            parse_extension(attribute)?;
        }
        Ok(ClientFinal {
            channel_binding,
            nonce,
            without_proof,
            proof,
        })
    }
}

/// RFC 5802's `printable`: ASCII 0x21..=0x7E except `,`, at least one.
pub(super) fn is_printable(text: &str) -> bool {
    !text.is_empty()
        && text
            .bytes()
            .all(|b| (0x21..=0x7E).contains(&b) && b != b',')
}

/// An extension attribute `key=value`, with Kafka's syntax: letters, then ASCII 0x01..=0x7F
/// other than `,`.
fn parse_extension(attribute: &str) -> Result<(&str, &str), String> {
    let (key, value) = attribute
        .split_once('=')
        .ok_or_else(|| format!("attribute {attribute:?} is not key=value"))?;
    if key.is_empty() || !key.bytes().all(|b| b.is_ascii_alphabetic()) {
        return Err(format!("extension name {key:?} must be letters"));
    }
    if value.is_empty()
        || !value
            .bytes()
            .all(|b| (0x01..=0x7F).contains(&b) && b != b',')
    {
        return Err(format!("extension {key} has an invalid value"));
    }
    Ok((key, value))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::super::test_support::MemStore;
    use super::super::{Authenticator, saslname};
    use super::*;

    /// An RFC 5802 client, written against the RFC with the hash crates directly rather than
    /// the server's helpers, so that the two check each other.
    struct Client {
        mechanism: Mechanism,
        user: String,
        password: String,
        gs2_header: String,
        client_nonce: String,
        /// Appended to the bare client-first message: `,key=value` each.
        extensions: String,
        /// Sends `r=client-nonce + server's r=` as librdkafka before 2.6.1 does.
        repeat_client_nonce: bool,
        auth_message: String,
        salted_password: Vec<u8>,
    }

    fn hmac(mechanism: Mechanism, key: &[u8], data: &[u8]) -> Vec<u8> {
        match mechanism {
            Mechanism::ScramSha256 => {
                let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("any key");
                mac.update(data);
                mac.finalize().into_bytes().to_vec()
            }
            _ => {
                let mut mac = Hmac::<Sha512>::new_from_slice(key).expect("any key");
                mac.update(data);
                mac.finalize().into_bytes().to_vec()
            }
        }
    }

    fn digest(mechanism: Mechanism, data: &[u8]) -> Vec<u8> {
        match mechanism {
            Mechanism::ScramSha256 => Sha256::digest(data).to_vec(),
            _ => Sha512::digest(data).to_vec(),
        }
    }

    impl Client {
        fn new(mechanism: Mechanism, user: &str, password: &str) -> Client {
            Client {
                mechanism,
                user: user.to_owned(),
                password: password.to_owned(),
                gs2_header: "n,,".to_owned(),
                client_nonce: "fyko+d2lbbFgONRv9qkxdawL".to_owned(),
                extensions: String::new(),
                repeat_client_nonce: false,
                auth_message: String::new(),
                salted_password: Vec::new(),
            }
        }

        fn bare(&self) -> String {
            format!(
                "n={},r={}{}",
                saslname::encode(&self.user),
                self.client_nonce,
                self.extensions
            )
        }

        fn first(&self) -> Vec<u8> {
            format!("{}{}", self.gs2_header, self.bare()).into_bytes()
        }

        /// The client-final message for `server_first`, with `nonce` in place of the one the
        /// server sent when given.
        fn last(&mut self, server_first: &[u8], channel_binding: Option<&str>) -> Vec<u8> {
            let server_first = std::str::from_utf8(server_first).expect("UTF-8");
            let mut nonce = "";
            let mut salt = Vec::new();
            let mut iterations = 0;
            for attribute in server_first.split(',') {
                let (key, value) = attribute.split_once('=').expect("key=value");
                match key {
                    "r" => nonce = value,
                    "s" => salt = STANDARD.decode(value).expect("base64 salt"),
                    "i" => iterations = value.parse().expect("iterations"),
                    other => panic!("unexpected attribute {other}"),
                }
            }
            assert!(
                nonce.starts_with(&self.client_nonce),
                "server kept the nonce"
            );
            let mut salted_password = vec![0; digest(self.mechanism, b"").len()];
            match self.mechanism {
                Mechanism::ScramSha256 => pbkdf2::pbkdf2_hmac::<Sha256>(
                    self.password.as_bytes(),
                    &salt,
                    iterations,
                    &mut salted_password,
                ),
                _ => pbkdf2::pbkdf2_hmac::<Sha512>(
                    self.password.as_bytes(),
                    &salt,
                    iterations,
                    &mut salted_password,
                ),
            }
            let channel_binding =
                channel_binding.map_or_else(|| STANDARD.encode(&self.gs2_header), str::to_owned);
            let nonce = if self.repeat_client_nonce {
                format!("{}{nonce}", self.client_nonce)
            } else {
                nonce.to_owned()
            };
            let without_proof = format!("c={channel_binding},r={nonce}");
            self.auth_message = format!("{},{server_first},{without_proof}", self.bare());
            let client_key = hmac(self.mechanism, &salted_password, b"Client Key");
            let stored_key = digest(self.mechanism, &client_key);
            let signature = hmac(self.mechanism, &stored_key, self.auth_message.as_bytes());
            let proof: Vec<u8> = client_key
                .iter()
                .zip(&signature)
                .map(|(a, b)| a ^ b)
                .collect();
            self.salted_password = salted_password;
            format!("{without_proof},p={}", STANDARD.encode(proof)).into_bytes()
        }

        fn server_final_is_genuine(&self, server_final: &[u8]) -> bool {
            let server_key = hmac(self.mechanism, &self.salted_password, b"Server Key");
            let signature = hmac(self.mechanism, &server_key, self.auth_message.as_bytes());
            server_final == format!("v={}", STANDARD.encode(signature)).as_bytes()
        }
    }

    fn challenge(step: Result<Step, AuthError>) -> Vec<u8> {
        match step {
            Ok(Step::Challenge(bytes)) => bytes,
            other => panic!("expected a challenge, got {other:?}"),
        }
    }

    fn authenticator(mechanism: Mechanism, store: MemStore) -> Authenticator {
        Authenticator::new(mechanism, store.shared(), None)
    }

    fn exchange_succeeds(mechanism: Mechanism) {
        let store = MemStore::with("alice", "s3cret", &[mechanism]);
        let mut auth = authenticator(mechanism, store);
        let mut client = Client::new(mechanism, "alice", "s3cret");
        let server_first = challenge(auth.step(&client.first()));
        let last = client.last(&server_first, None);
        match auth.step(&last) {
            Ok(Step::Done {
                response,
                principal,
                session_lifetime_ms,
            }) => {
                assert!(client.server_final_is_genuine(&response));
                assert_eq!(principal, "alice");
                assert_eq!(session_lifetime_ms, None);
            }
            other => panic!("expected success, got {other:?}"),
        }
        assert_eq!(auth.attempted_user(), Some("alice"));
    }

    #[test]
    fn scram_sha256_exchange_yields_the_principal() {
        exchange_succeeds(Mechanism::ScramSha256);
    }

    #[test]
    fn scram_sha512_exchange_yields_the_principal() {
        exchange_succeeds(Mechanism::ScramSha512);
    }

    /// RFC 7677 section 3: user "user", password "pencil".
    #[test]
    fn rfc7677_test_vector_matches_key_derivation_and_every_server_message() {
        let salt = STANDARD.decode("W22ZaJ0SNY7soEsUEjb6gQ==").expect("base64");
        let credential =
            ScramCredential::from_salted(Mechanism::ScramSha256, "pencil", &salt, 4096)
                .expect("valid parameters");
        assert!(credential.verify_password("pencil"));
        assert!(!credential.verify_password("pencil2"));

        let mut store = MemStore::default();
        store
            .credentials
            .insert(("user".to_owned(), Mechanism::ScramSha256), credential);
        let mut server = ScramServer::new(
            Mechanism::ScramSha256,
            "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0".to_owned(),
        );
        let mut attempted_user = None;
        let server_first = challenge(server.step(
            b"n,,n=user,r=rOprNGfwEbeRWgbNEkqO",
            &store,
            &mut attempted_user,
        ));
        assert_eq!(
            std::str::from_utf8(&server_first).expect("UTF-8"),
            "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,\
             i=4096"
        );
        let done = server.step(
            b"c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,\
              p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=",
            &store,
            &mut attempted_user,
        );
        assert_eq!(
            done,
            Ok(Step::Done {
                response: b"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=".to_vec(),
                principal: "user".to_owned(),
                session_lifetime_ms: None,
            })
        );
    }

    fn failed_final(
        mechanism: Mechanism,
        user: &str,
        password: &str,
        store: MemStore,
    ) -> (Vec<u8>, AuthError) {
        let mut auth = authenticator(mechanism, store);
        let mut client = Client::new(mechanism, user, password);
        let server_first = challenge(auth.step(&client.first()));
        let last = client.last(&server_first, None);
        let error = auth.step(&last).expect_err("must fail");
        (server_first, error)
    }

    #[test]
    fn unknown_user_and_wrong_password_fail_identically() {
        for mechanism in [Mechanism::ScramSha256, Mechanism::ScramSha512] {
            let store = || MemStore::with("alice", "right", &[mechanism]);
            let (_, wrong_password) = failed_final(mechanism, "alice", "wrong", store());
            let (server_first, unknown_user) = failed_final(mechanism, "mallory", "any", store());
            assert_eq!(wrong_password, unknown_user);
            assert_eq!(wrong_password.to_string(), unknown_user.to_string());
            assert_eq!(
                wrong_password.client_message(false),
                unknown_user.client_message(false)
            );
            assert_eq!(
                unknown_user.client_message(false),
                format!(
                    "Authentication failed during authentication due to invalid credentials \
                     with SASL mechanism {mechanism}"
                )
            );

            // The unknown user got a server-first message shaped like a real one.
            let text = String::from_utf8(server_first).expect("UTF-8");
            let attributes: Vec<&str> = text.split(',').collect();
            assert_eq!(attributes.len(), 3, "{text}");
            assert!(attributes[0].starts_with("r=fyko+d2lbbFgONRv9qkxdawL"));
            let salt = STANDARD
                .decode(attributes[1].strip_prefix("s=").expect("salt"))
                .expect("base64");
            assert_eq!(salt.len(), SALT_BYTES);
            assert_eq!(attributes[2], format!("i={DEFAULT_ITERATIONS}"));
        }
    }

    #[test]
    fn unknown_user_sees_a_stable_salt_that_differs_per_user() {
        let salt_of = |user: &str| {
            let mut auth = authenticator(Mechanism::ScramSha512, MemStore::default());
            let first =
                challenge(auth.step(&Client::new(Mechanism::ScramSha512, user, "p").first()));
            let text = String::from_utf8(first).expect("UTF-8");
            text.split(',').nth(1).expect("salt").to_owned()
        };
        assert_eq!(salt_of("mallory"), salt_of("mallory"));
        assert_ne!(salt_of("mallory"), salt_of("trudy"));
    }

    #[test]
    fn a_credential_of_another_mechanism_counts_as_no_credential() {
        // A user with only SCRAM-SHA-256 cannot log in with SCRAM-SHA-512.
        let store = MemStore::with("alice", "pw", &[Mechanism::ScramSha256]);
        let (_, error) = failed_final(Mechanism::ScramSha512, "alice", "pw", store);
        assert_eq!(
            error,
            AuthError::InvalidCredentials {
                mechanism: Mechanism::ScramSha512
            }
        );
    }

    fn final_error(last: impl FnOnce(&mut Client, &[u8]) -> Vec<u8>) -> AuthError {
        let store = MemStore::with("alice", "pw", &[Mechanism::ScramSha256]);
        let mut auth = authenticator(Mechanism::ScramSha256, store);
        let mut client = Client::new(Mechanism::ScramSha256, "alice", "pw");
        let server_first = challenge(auth.step(&client.first()));
        let message = last(&mut client, &server_first);
        auth.step(&message).expect_err("must be refused")
    }

    #[test]
    fn librdkafka_before_2_6_1_repeating_the_client_nonce_logs_in() {
        for mechanism in [Mechanism::ScramSha256, Mechanism::ScramSha512] {
            let store = MemStore::with("alice", "s3cret", &[mechanism]);
            let mut auth = authenticator(mechanism, store);
            let mut client = Client::new(mechanism, "alice", "s3cret");
            client.repeat_client_nonce = true;
            let server_first = challenge(auth.step(&client.first()));
            let last = client.last(&server_first, None);
            assert!(
                String::from_utf8_lossy(&last).contains("r=fyko+d2lbbFgONRv9qkxdawLfyko+"),
                "the client repeats its nonce"
            );
            match auth.step(&last) {
                Ok(Step::Done {
                    response,
                    principal,
                    ..
                }) => {
                    assert!(client.server_final_is_genuine(&response));
                    assert_eq!(principal, "alice");
                }
                other => panic!("expected success, got {other:?}"),
            }
        }
    }

    #[test]
    fn a_nonce_with_anything_else_in_front_is_refused() {
        let error = final_error(|client, server_first| {
            // As long as the repeated client nonce, but not it.
            let last = String::from_utf8(client.last(server_first, None)).expect("UTF-8");
            last.replacen(",r=", ",r=XXXXXXXXXXXXXXXXXXXXXXXX", 1)
                .into_bytes()
        });
        assert!(
            matches!(error, AuthError::ProtocolViolation { ref reason, .. } if reason.contains("nonce")),
            "{error:?}"
        );
    }

    #[test]
    fn tampered_nonce_is_refused() {
        let error = final_error(|client, server_first| {
            let text = String::from_utf8(server_first.to_vec()).expect("UTF-8");
            // The client answers with a nonce the server never sent.
            let tampered = text.replacen(",s=", "X,s=", 1);
            client.last(tampered.as_bytes(), None)
        });
        assert!(
            matches!(error, AuthError::ProtocolViolation { ref reason, .. } if reason.contains("nonce")),
            "{error:?}"
        );
    }

    #[test]
    fn tampered_proof_is_refused() {
        let error = final_error(|client, server_first| {
            let last = client.last(server_first, None);
            let text = String::from_utf8(last).expect("UTF-8");
            let (head, proof) = text.rsplit_once(",p=").expect("proof");
            let mut proof = STANDARD.decode(proof).expect("base64");
            proof[0] ^= 1;
            format!("{head},p={}", STANDARD.encode(proof)).into_bytes()
        });
        assert_eq!(
            error,
            AuthError::InvalidCredentials {
                mechanism: Mechanism::ScramSha256
            }
        );
    }

    #[test]
    fn tampered_channel_binding_is_refused() {
        // "eSws" is base64("y,,"): a client claiming it could have bound the channel.
        let error = final_error(|client, server_first| client.last(server_first, Some("eSws")));
        assert!(
            matches!(error, AuthError::ProtocolViolation { ref reason, .. } if reason.contains("channel binding")),
            "{error:?}"
        );
    }

    #[test]
    fn channel_binding_flags_other_than_n_are_refused() {
        for first in [
            "y,,n=alice,r=abc",
            "p=tls-unique,,n=alice,r=abc",
            "p=tls-server-end-point,,n=alice,r=abc",
        ] {
            let mut auth = authenticator(Mechanism::ScramSha256, MemStore::default());
            let error = auth.step(first.as_bytes()).expect_err("refused");
            assert!(
                matches!(error, AuthError::Malformed { ref reason, .. } if reason.contains("channel binding")),
                "{first}: {error:?}"
            );
        }
    }

    #[test]
    fn authorization_id_equal_to_the_user_is_accepted() {
        let store = MemStore::with("alice", "pw", &[Mechanism::ScramSha256]);
        let mut auth = authenticator(Mechanism::ScramSha256, store);
        let mut client = Client::new(Mechanism::ScramSha256, "alice", "pw");
        client.gs2_header = "n,a=alice,".to_owned();
        let server_first = challenge(auth.step(&client.first()));
        let last = client.last(&server_first, None);
        assert!(
            matches!(auth.step(&last), Ok(Step::Done { principal, .. }) if principal == "alice")
        );
    }

    #[test]
    fn authorization_id_of_another_user_is_refused_whether_or_not_the_user_exists() {
        let refuse = |store: MemStore| {
            let mut auth = authenticator(Mechanism::ScramSha256, store);
            auth.step(b"n,a=admin,n=alice,r=abc").expect_err("refused")
        };
        let known = refuse(MemStore::with("alice", "pw", &[Mechanism::ScramSha256]));
        let unknown = refuse(MemStore::default());
        assert_eq!(known, unknown);
        assert_eq!(
            known,
            AuthError::AuthorizationIdMismatch {
                mechanism: Mechanism::ScramSha256,
                authorization_id: "admin".to_owned(),
                user: "alice".to_owned(),
            }
        );
    }

    #[test]
    fn tokenauth_extension_is_refused() {
        let mut auth = authenticator(Mechanism::ScramSha512, MemStore::default());
        let error = auth
            .step(b"n,,n=tokenid,r=abc,tokenauth=true")
            .expect_err("refused");
        assert!(
            matches!(error, AuthError::UnsupportedExtension { ref extension, .. } if extension == "tokenauth"),
            "{error:?}"
        );
    }

    #[test]
    fn unknown_extensions_are_ignored_and_count_in_the_auth_message() {
        let store = MemStore::with("alice", "pw", &[Mechanism::ScramSha256]);
        let mut auth = authenticator(Mechanism::ScramSha256, store);
        let mut client = Client::new(Mechanism::ScramSha256, "alice", "pw");
        client.extensions = ",x=1,tokenauth=false".to_owned();
        let server_first = challenge(auth.step(&client.first()));
        let last = client.last(&server_first, None);
        assert!(matches!(auth.step(&last), Ok(Step::Done { .. })));
    }

    #[test]
    fn escaped_user_names_authenticate_as_the_unescaped_name() {
        let store = MemStore::with("a,b=c", "pw", &[Mechanism::ScramSha256]);
        let mut auth = authenticator(Mechanism::ScramSha256, store);
        let mut client = Client::new(Mechanism::ScramSha256, "a,b=c", "pw");
        let first = client.first();
        assert!(first.starts_with(b"n,,n=a=2Cb=3Dc,"));
        let server_first = challenge(auth.step(&first));
        let last = client.last(&server_first, None);
        assert!(
            matches!(auth.step(&last), Ok(Step::Done { principal, .. }) if principal == "a,b=c")
        );
    }

    #[test]
    fn malformed_client_first_messages_are_refused() {
        let cases: &[&[u8]] = &[
            b"",
            b"n",
            b"n,",
            b"n,,",
            b"n,,n=alice",
            b"n,,n=alice,",
            b"n,,n=alice,r=",
            b"n,,r=abc,n=alice",
            b"n,,n=,r=abc",
            b"n,,n=al=41ce,r=abc",
            b"n,,n=alice,r=ab c",
            b"n,,n=alice,r=abc,",
            b"n,,n=alice,r=abc,=x",
            b"n,,n=alice,r=abc,1=x",
            b"n,,n=alice,r=abc,x=",
            b"n,,n=alice,r=abc,x",
            b"n,,m=ext,n=alice,r=abc",
            b"n,b=alice,n=alice,r=abc",
            b"n,a=,n=alice,r=abc",
            b"N,,n=alice,r=abc",
            b"n,,n=al\xffice,r=abc",
            b"n,,n=al\0ice,r=abc",
            b"n,,n=alice,r=ab\xc3\xa9c",
        ];
        for &case in cases {
            let mut auth = authenticator(Mechanism::ScramSha256, MemStore::default());
            let error = auth.step(case).expect_err("refused");
            assert!(
                matches!(error, AuthError::Malformed { .. }),
                "{:?}: {error:?}",
                String::from_utf8_lossy(case)
            );
            assert_eq!(
                error.client_message(false),
                "Authentication failed during authentication due to invalid credentials with \
                 SASL mechanism SCRAM-SHA-256"
            );
        }
    }

    #[test]
    fn malformed_client_final_messages_are_refused() {
        let cases: &[&str] = &[
            "",
            "c=biws",
            "c=biws,r=NONCE",
            "c=biws,r=NONCE,p=",
            "c=biws,r=NONCE,p=!!!",
            "c=biws,r=NONCE,p=AAAA",
            "r=NONCE,c=biws,p=AAAA",
            "c=bi*s,r=NONCE,p=AAAA",
            "c=biws,p=AAAA",
            "c=biws,r=NONCE,x,p=AAAA",
            "c=biws,r=NONCE,p=AAAA,x=1",
            "c=biws,r=,p=AAAA",
        ];
        for &case in cases {
            let store = MemStore::with("alice", "pw", &[Mechanism::ScramSha256]);
            let mut auth = authenticator(Mechanism::ScramSha256, store);
            let server_first = challenge(auth.step(b"n,,n=alice,r=abc"));
            let text = String::from_utf8(server_first).expect("UTF-8");
            let nonce = text
                .split(',')
                .next()
                .and_then(|r| r.strip_prefix("r="))
                .expect("nonce");
            let message = case.replace("NONCE", nonce);
            let error = auth.step(message.as_bytes()).expect_err("refused");
            assert!(
                matches!(error, AuthError::Malformed { .. }),
                "{message:?}: {error:?}"
            );
        }
    }

    #[test]
    fn a_client_final_message_first_is_refused() {
        let mut auth = authenticator(Mechanism::ScramSha256, MemStore::default());
        assert!(matches!(
            auth.step(b"c=biws,r=abc,p=AAAA"),
            Err(AuthError::Malformed { .. })
        ));
    }

    #[test]
    fn generate_makes_a_random_salt_and_a_verifiable_credential() {
        let first = ScramCredential::generate(Mechanism::ScramSha512, "pw", 4096).expect("ok");
        let second = ScramCredential::generate(Mechanism::ScramSha512, "pw", 4096).expect("ok");
        assert_eq!(first.salt.len(), SALT_BYTES);
        assert_ne!(first.salt, second.salt);
        assert_eq!(first.stored_key.len(), 64);
        assert_eq!(first.server_key.len(), 64);
        assert!(first.verify_password("pw"));
        assert!(!first.verify_password("pW"));
        assert!(!first.verify_password(""));
    }

    #[test]
    fn generate_refuses_bad_parameters() {
        assert_eq!(
            ScramCredential::generate(Mechanism::ScramSha256, "pw", 4095),
            Err(CredentialError::IterationsOutOfRange {
                iterations: 4095,
                min: MIN_ITERATIONS,
                max: MAX_ITERATIONS
            })
        );
        assert!(matches!(
            ScramCredential::generate(Mechanism::ScramSha256, "pw", 16385),
            Err(CredentialError::IterationsOutOfRange { .. })
        ));
        assert_eq!(
            ScramCredential::generate(Mechanism::Plain, "pw", 4096),
            Err(CredentialError::NotScram {
                mechanism: Mechanism::Plain
            })
        );
        assert_eq!(
            ScramCredential::generate(Mechanism::ScramSha256, "", 4096),
            Err(CredentialError::EmptyPassword)
        );
        assert_eq!(
            ScramCredential::from_salted(Mechanism::ScramSha256, "pw", &[], 4096),
            Err(CredentialError::EmptySalt)
        );
    }

    #[test]
    fn a_client_salted_password_gives_the_same_credential_as_the_password() {
        let salt = STANDARD.decode("W22ZaJ0SNY7soEsUEjb6gQ==").expect("base64");
        let salted = salted_password(Mechanism::ScramSha256, "pencil", &salt, 4096).expect("ok");
        assert_eq!(
            ScramCredential::from_salted_password(Mechanism::ScramSha256, &salted, &salt, 4096),
            ScramCredential::from_salted(Mechanism::ScramSha256, "pencil", &salt, 4096)
        );
        assert_eq!(
            ScramCredential::from_salted_password(Mechanism::ScramSha512, &salted, &salt, 4096),
            Err(CredentialError::KeyLength {
                mechanism: Mechanism::ScramSha512,
                field: "salted_password",
                len_bytes: 32,
                expected_bytes: 64,
            })
        );
        assert!(matches!(
            ScramCredential::from_salted_password(Mechanism::ScramSha256, &salted, &salt, 100),
            Err(CredentialError::IterationsOutOfRange { .. })
        ));
        assert_eq!(
            salted_password(Mechanism::OAuthBearer, "pencil", &salt, 4096),
            Err(CredentialError::NotScram {
                mechanism: Mechanism::OAuthBearer
            })
        );
    }

    #[test]
    fn credential_json_round_trips_with_base64_fields() {
        let credential = ScramCredential::from_salted(
            Mechanism::ScramSha256,
            "pencil",
            &STANDARD.decode("W22ZaJ0SNY7soEsUEjb6gQ==").expect("base64"),
            4096,
        )
        .expect("ok");
        let json = serde_json::to_value(&credential).expect("serialises");
        assert_eq!(json["mechanism"], "SCRAM-SHA-256");
        assert_eq!(json["salt"], "W22ZaJ0SNY7soEsUEjb6gQ==");
        assert_eq!(json["iterations"], 4096);
        assert_eq!(
            json["stored_key"]
                .as_str()
                .map(|key| STANDARD.decode(key).ok()),
            Some(Some(credential.stored_key.clone()))
        );
        let back: ScramCredential = serde_json::from_value(json).expect("deserialises");
        assert_eq!(back, credential);
    }

    #[test]
    fn reading_a_stored_credential_checks_it() {
        let valid = serde_json::to_value(
            ScramCredential::generate(Mechanism::ScramSha256, "pw", 4096).expect("ok"),
        )
        .expect("serialises");
        let with = |field: &str, value: serde_json::Value| {
            let mut json = valid.clone();
            json[field] = value;
            serde_json::from_value::<ScramCredential>(json)
        };
        assert!(with("iterations", 1.into()).is_err());
        assert!(with("mechanism", "PLAIN".into()).is_err());
        assert!(with("mechanism", "SCRAM-SHA-1".into()).is_err());
        assert!(with("salt", "".into()).is_err());
        assert!(with("salt", "not base64!".into()).is_err());
        assert!(with("stored_key", STANDARD.encode([0u8; 31]).into()).is_err());
        // A SHA-256 credential relabelled SHA-512 has keys of the wrong length.
        assert!(with("mechanism", "SCRAM-SHA-512".into()).is_err());
        assert!(with("iterations", 4096.into()).is_ok());
    }

    #[test]
    fn credential_debug_hides_the_keys() {
        let credential = ScramCredential::generate(Mechanism::ScramSha256, "pw", 4096).expect("ok");
        let debug = format!("{credential:?}");
        assert!(debug.contains("<redacted>"));
        assert!(!debug.contains(&STANDARD.encode(&credential.stored_key)));
        assert!(!debug.contains(&STANDARD.encode(&credential.server_key)));
    }

    #[test]
    fn an_invalid_credential_verifies_no_password() {
        let mut credential =
            ScramCredential::generate(Mechanism::ScramSha256, "pw", 4096).expect("ok");
        credential.iterations = u32::MAX;
        assert!(!credential.verify_password("pw"));
        credential.iterations = 4096;
        credential.mechanism = Mechanism::Plain;
        assert!(!credential.verify_password("pw"));
    }

    #[test]
    fn every_exchange_gets_a_fresh_server_nonce() {
        let nonce_of = || {
            let mut auth =
                Authenticator::new(Mechanism::ScramSha256, Arc::new(MemStore::default()), None);
            challenge(auth.step(b"n,,n=u,r=abc"))
        };
        assert_ne!(nonce_of(), nonce_of());
    }
}
