//! OAUTHBEARER (RFC 7628, Kafka's KIP-255): the client sends a bearer token, here a JWT, and
//! [`JwtValidator`] checks it against the keys of a JWKS document.
//!
//! The client's one message:
//!
//! ```text
//! n,[a=authzid],^Aauth=Bearer <token>^A[key=value^A]*^A        (^A is 0x01)
//! ```
//!
//! A valid token ends the exchange with the token's principal and the time until it expires,
//! after which the broker ends the session unless the client re-authenticates. An invalid one
//! is answered as RFC 7628 and Kafka's `OAuthBearerSaslServer` do: the server sends the error
//! `{"status":"invalid_token"}` as a challenge, the client answers `^A`, and the exchange fails
//! with that error as its message. Extensions (`key=value`) are checked for syntax and ignored,
//! as Kafka does when no handler validates them.
//!
//! [`JwtValidator`] follows Kafka's broker-side JWT checks (`BrokerJwtValidator`): a signature
//! by a JWKS key chosen by `kid`, an allow-list of asymmetric algorithms, `exp` and `iat`
//! required, `nbf` honoured, the expected issuer and audiences when configured, a clock skew
//! allowance, and the principal from a configurable claim (`sub` by default).

use std::collections::HashSet;

use base64::Engine;
use base64::engine::DecodePaddingMode;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::{Map, Value};

use super::{AuthError, Clock, Mechanism, Step, TokenInfo, TokenValidator, saslname, system_clock};

/// The error sent to the client for any refused token, as Kafka sends it.
const INVALID_TOKEN_ERROR: &str = r#"{"status":"invalid_token"}"#;

/// The client's answer to an error challenge (RFC 7628 section 3.2.3).
const ERROR_ACKNOWLEDGEMENT: &[u8] = b"\x01";

/// The server side of one OAUTHBEARER exchange.
pub(super) struct OAuthServer {
    /// Why the token was refused, once the error challenge has been sent.
    refused: Option<String>,
}

impl OAuthServer {
    pub(super) fn new() -> OAuthServer {
        OAuthServer { refused: None }
    }

    pub(super) fn step(
        &mut self,
        client_bytes: &[u8],
        tokens: &dyn TokenValidator,
        clock: &dyn Fn() -> i64,
        attempted_user: &mut Option<String>,
    ) -> Result<Step, AuthError> {
        if let Some(reason) = self.refused.take() {
            let reason = if client_bytes == ERROR_ACKNOWLEDGEMENT {
                reason
            } else {
                format!("{reason} (and the client answered the error with other than 0x01)")
            };
            return Err(AuthError::InvalidToken {
                reason,
                client_error: INVALID_TOKEN_ERROR.to_owned(),
            });
        }
        let malformed = |reason: String| AuthError::Malformed {
            mechanism: Mechanism::OAuthBearer,
            reason,
        };
        let message = std::str::from_utf8(client_bytes)
            .map_err(|_| malformed("the initial response is not UTF-8".to_owned()))?;
        let initial = InitialResponse::parse(message).map_err(malformed)?;
        if let Some(authorization_id) = &initial.authorization_id {
            *attempted_user = Some(authorization_id.clone());
        }
        let info = match tokens.validate(initial.token) {
            Ok(info) => info,
            Err(reason) => {
                self.refused = Some(reason);
                return Ok(Step::Challenge(INVALID_TOKEN_ERROR.as_bytes().to_vec()));
            }
        };
        *attempted_user = Some(info.principal.clone());
        if let Some(authorization_id) = initial.authorization_id {
            if authorization_id != info.principal {
                return Err(AuthError::AuthorizationIdMismatch {
                    mechanism: Mechanism::OAuthBearer,
                    authorization_id,
                    user: info.principal,
                });
            }
        }
        let session_lifetime_ms = info.expires_at_ms.saturating_sub(clock()).max(0);
        Ok(Step::Done {
            response: Vec::new(),
            principal: info.principal,
            session_lifetime_ms: Some(session_lifetime_ms),
        })
    }
}

/// The client's initial response, parsed.
#[derive(Debug, PartialEq, Eq)]
struct InitialResponse<'a> {
    authorization_id: Option<String>,
    token: &'a str,
}

impl<'a> InitialResponse<'a> {
    /// Parses with the syntax of Kafka's `OAuthBearerClientInitialResponse`.
    fn parse(message: &'a str) -> Result<InitialResponse<'a>, String> {
        let Some(after_flag) = message.strip_prefix("n,") else {
            return Err("the gs2 header must start with 'n,' (no channel binding)".to_owned());
        };
        let (authzid, rest) = after_flag
            .split_once(',')
            .ok_or("the gs2 header has no second ','")?;
        let authorization_id = if authzid.is_empty() {
            None
        } else {
            let name = authzid
                .strip_prefix("a=")
                .ok_or("the authorization id in the gs2 header must start with 'a='")?;
            Some(saslname::decode(name).ok_or("the authorization id is not a valid saslname")?)
        };
        let pairs = rest
            .strip_prefix('\x01')
            .and_then(|pairs| pairs.strip_suffix('\x01'))
            .ok_or("the key-value pairs must start after 0x01 and end with 0x01")?;
        if pairs.is_empty() {
            return Err("no auth key-value pair".to_owned());
        }
        let pairs = pairs
            .strip_suffix('\x01')
            .ok_or("every key-value pair must end with 0x01")?;

        let mut auth = None;
        for pair in pairs.split('\x01') {
            let (key, value) = pair
                .split_once('=')
                .ok_or_else(|| format!("{pair:?} is not key=value"))?;
            if key.is_empty() || !key.bytes().all(|b| b.is_ascii_alphabetic()) {
                return Err(format!("key {key:?} must be letters"));
            }
            if value.is_empty()
                || !value.bytes().all(|b| {
                    (0x21..=0x7E).contains(&b) || matches!(b, b' ' | b'\t' | b'\r' | b'\n')
                })
            {
                return Err(format!(
                    "the value of {key} has characters outside RFC 7628's"
                ));
            }
            if key == "auth" {
                if auth.is_some() {
                    return Err("auth appears twice".to_owned());
                }
                auth = Some(value);
            }
        }
        let auth = auth.ok_or("no auth key-value pair")?;
        let (scheme, token) = auth
            .split_once(' ')
            .ok_or("auth must be 'Bearer <token>'")?;
        if !scheme.eq_ignore_ascii_case("bearer") {
            return Err(format!("auth scheme {scheme:?} is not Bearer"));
        }
        let token = token.trim_start_matches(' ');
        let is_token_char = |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.');
        if token.is_empty() || !token.bytes().all(is_token_char) {
            return Err("the token must be base64url characters and '.'".to_owned());
        }
        Ok(InitialResponse {
            authorization_id,
            token,
        })
    }
}

/// What [`JwtValidator`] expects of a token. The fields mirror Kafka's broker settings
/// `sasl.oauthbearer.expected.issuer`, `sasl.oauthbearer.expected.audience`,
/// `sasl.oauthbearer.sub.claim.name` and `sasl.oauthbearer.clock.skew.seconds`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JwtConfig {
    /// The `iss` a token must have; `None` accepts any issuer.
    pub expected_issuer: Option<String>,
    /// A token's `aud` must name one of these; empty accepts any audience.
    pub expected_audiences: Vec<String>,
    /// The claim holding the principal's name.
    pub principal_claim: String,
    /// How far the broker's and the issuer's clocks may disagree, for `exp` and `nbf`.
    pub clock_skew_secs: u64,
}

impl Default for JwtConfig {
    fn default() -> JwtConfig {
        JwtConfig {
            expected_issuer: None,
            expected_audiences: Vec::new(),
            principal_claim: "sub".to_owned(),
            clock_skew_secs: 30,
        }
    }
}

/// Why a JWKS document gives no [`JwtValidator`].
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum JwksError {
    /// The document is not JSON.
    #[error("the JWKS document is not valid JSON: {reason}")]
    InvalidJson {
        /// The parser's complaint.
        reason: String,
    },
    /// The document has no `keys` array.
    #[error("the JWKS document has no \"keys\" array")]
    NoKeysArray,
    /// No key in the document can verify tokens.
    #[error(
        "the JWKS document has no RSA (2048 bits or more) or P-256/P-384 signing key; skipped: \
         {}", skipped.join("; ")
    )]
    NoUsableKey {
        /// Why each key was skipped.
        skipped: Vec<String>,
    },
    /// The principal claim is empty.
    #[error("the principal claim name is empty; use e.g. \"sub\"")]
    EmptyPrincipalClaim,
}

/// The signature algorithms accepted: asymmetric only, so a public key can never be used as
/// an HMAC secret.
const ALLOWED_ALGORITHMS: [Algorithm; 6] = [
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::ES256,
    Algorithm::ES384,
    Algorithm::PS256,
];

/// The smallest RSA modulus accepted, as jose4j (behind Kafka's validator) requires.
const MIN_RSA_BITS: usize = 2048;

/// Checks JWTs against the keys of a JWKS document.
pub struct JwtValidator {
    keys: Vec<VerificationKey>,
    config: JwtConfig,
    clock: Clock,
}

struct VerificationKey {
    kid: Option<String>,
    kind: KeyKind,
    /// The `alg` the JWKS pins the key to, if any.
    algorithm: Option<Algorithm>,
    key: DecodingKey,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum KeyKind {
    Rsa,
    EcP256,
    EcP384,
}

impl VerificationKey {
    fn verifies(&self, algorithm: Algorithm) -> bool {
        let kind_fits = match self.kind {
            KeyKind::Rsa => matches!(
                algorithm,
                Algorithm::RS256 | Algorithm::RS384 | Algorithm::RS512 | Algorithm::PS256
            ),
            KeyKind::EcP256 => algorithm == Algorithm::ES256,
            KeyKind::EcP384 => algorithm == Algorithm::ES384,
        };
        kind_fits && self.algorithm.is_none_or(|pinned| pinned == algorithm)
    }

    fn describe(&self) -> String {
        self.kid.as_deref().map_or_else(
            || "the key without kid".to_owned(),
            |kid| format!("key {kid:?}"),
        )
    }
}

impl JwtValidator {
    /// A validator for the signing keys of a JWKS document (RFC 7517). Keys it cannot use
    /// (symmetric, encryption-only, RSA under 2048 bits, other curves, other algorithms) are
    /// skipped; it fails only if none is left.
    pub fn from_jwks(jwks_json: &str, config: JwtConfig) -> Result<JwtValidator, JwksError> {
        if config.principal_claim.is_empty() {
            return Err(JwksError::EmptyPrincipalClaim);
        }
        let document: Value =
            serde_json::from_str(jwks_json).map_err(|error| JwksError::InvalidJson {
                reason: error.to_string(),
            })?;
        let entries = document
            .get("keys")
            .and_then(Value::as_array)
            .ok_or(JwksError::NoKeysArray)?;
        let mut keys = Vec::new();
        let mut skipped = Vec::new();
        for (index, entry) in entries.iter().enumerate() {
            match verification_key(entry) {
                Ok(key) => keys.push(key),
                Err(reason) => {
                    let name = entry
                        .get("kid")
                        .and_then(Value::as_str)
                        .map_or_else(|| format!("key #{index}"), |kid| format!("key {kid:?}"));
                    skipped.push(format!("{name}: {reason}"));
                }
            }
        }
        if keys.is_empty() {
            return Err(JwksError::NoUsableKey { skipped });
        }
        Ok(JwtValidator {
            keys,
            config,
            clock: system_clock(),
        })
    }

    /// The same validator reading the time from `clock`.
    #[must_use]
    pub fn with_clock(mut self, clock: Clock) -> JwtValidator {
        self.clock = clock;
        self
    }

    /// The `kid`s of the keys in use (for the broker's startup log).
    #[must_use]
    pub fn key_ids(&self) -> Vec<Option<&str>> {
        self.keys.iter().map(|key| key.kid.as_deref()).collect()
    }

    fn select_key(
        &self,
        kid: Option<&str>,
        algorithm: Algorithm,
    ) -> Result<&VerificationKey, String> {
        let candidates: Vec<&VerificationKey> = match kid {
            Some(kid) => self
                .keys
                .iter()
                .filter(|key| key.kid.as_deref() == Some(kid))
                .collect(),
            None if self.keys.len() == 1 => self.keys.iter().collect(),
            None => {
                return Err(format!(
                    "the token names no key (kid) and the JWKS holds {} keys",
                    self.keys.len()
                ));
            }
        };
        if candidates.is_empty() {
            return Err(format!(
                "no key with kid {:?} in the JWKS",
                kid.unwrap_or_default()
            ));
        }
        candidates
            .iter()
            .find(|key| key.verifies(algorithm))
            .copied()
            .ok_or_else(|| {
                format!(
                    "{} cannot verify {algorithm:?} signatures",
                    candidates[0].describe()
                )
            })
    }

    fn check_claims(&self, claims: &Map<String, Value>) -> Result<TokenInfo, String> {
        let now_ms = (self.clock)();
        let skew_ms =
            i64::try_from(self.config.clock_skew_secs.saturating_mul(1000)).unwrap_or(i64::MAX);
        let exp_ms = numeric_date_ms(claims, "exp")?.ok_or("the token has no exp claim")?;
        if now_ms >= exp_ms.saturating_add(skew_ms) {
            return Err(format!(
                "the token expired at {exp_ms} ms since the epoch; it is now {now_ms}"
            ));
        }
        if let Some(nbf_ms) = numeric_date_ms(claims, "nbf")? {
            if now_ms.saturating_add(skew_ms) < nbf_ms {
                return Err(format!(
                    "the token is not valid before {nbf_ms} ms since the epoch; it is now {now_ms}"
                ));
            }
        }
        numeric_date_ms(claims, "iat")?.ok_or("the token has no iat claim")?;
        let claim = &self.config.principal_claim;
        let principal = claims
            .get(claim)
            .and_then(Value::as_str)
            .map(str::trim)
            .filter(|principal| !principal.is_empty())
            .ok_or_else(|| format!("the token has no {claim} claim naming the principal"))?;
        Ok(TokenInfo {
            principal: principal.to_owned(),
            expires_at_ms: exp_ms,
        })
    }
}

impl TokenValidator for JwtValidator {
    fn validate(&self, token: &str) -> Result<TokenInfo, String> {
        let header = jsonwebtoken::decode_header(token)
            .map_err(|error| format!("the token header is malformed: {error}"))?;
        if !ALLOWED_ALGORITHMS.contains(&header.alg) {
            return Err(format!(
                "algorithm {:?} is not allowed; sign with one of {ALLOWED_ALGORITHMS:?}",
                header.alg
            ));
        }
        let key = self.select_key(header.kid.as_deref(), header.alg)?;

        let mut validation = Validation::new(header.alg);
        // Time claims are checked below against the injected clock.
        validation.validate_exp = false;
        validation.validate_nbf = false;
        validation.leeway = 0;
        validation.required_spec_claims = HashSet::new();
        if let Some(issuer) = &self.config.expected_issuer {
            validation.set_issuer(&[issuer]);
            validation.required_spec_claims.insert("iss".to_owned());
        }
        if self.config.expected_audiences.is_empty() {
            validation.validate_aud = false;
        } else {
            validation.set_audience(&self.config.expected_audiences);
            validation.required_spec_claims.insert("aud".to_owned());
        }
        let data = jsonwebtoken::decode::<Map<String, Value>>(token, &key.key, &validation)
            .map_err(|error| format!("the token was refused: {error}"))?;
        self.check_claims(&data.claims)
    }
}

/// A NumericDate claim (seconds since the epoch, possibly fractional) in milliseconds; `None`
/// if absent, an error if not a number.
fn numeric_date_ms(claims: &Map<String, Value>, name: &str) -> Result<Option<i64>, String> {
    let Some(value) = claims.get(name) else {
        return Ok(None);
    };
    if let Some(secs) = value.as_i64() {
        return Ok(Some(secs.saturating_mul(1000)));
    }
    match value.as_f64() {
        // `as` saturates, which is what an absurd date deserves.
        Some(secs) if secs.is_finite() => Ok(Some((secs * 1000.0) as i64)),
        _ => Err(format!("the {name} claim is not a number")),
    }
}

/// base64url, with or without padding, as JWKS documents are found.
const BASE64_URL: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::URL_SAFE,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

fn verification_key(entry: &Value) -> Result<VerificationKey, String> {
    let field = |name: &str| entry.get(name).and_then(Value::as_str);
    let bytes = |name: &str| {
        let text = field(name).ok_or_else(|| format!("no {name}"))?;
        BASE64_URL
            .decode(text)
            .map_err(|_| format!("{name} is not base64url"))
    };
    if let Some(usage) = field("use") {
        if usage != "sig" {
            return Err(format!("its use is {usage:?}, not \"sig\""));
        }
    }
    let algorithm = match field("alg") {
        None => None,
        Some(name) => {
            let algorithm: Algorithm = name
                .parse()
                .map_err(|_| format!("its alg {name:?} is not a JWS algorithm"))?;
            if !ALLOWED_ALGORITHMS.contains(&algorithm) {
                return Err(format!("its alg {name:?} is not allowed"));
            }
            Some(algorithm)
        }
    };
    let (kind, key) = match field("kty") {
        Some("RSA") => {
            let modulus = bytes("n")?;
            let exponent = bytes("e")?;
            let bits = bit_length(&modulus);
            if bits < MIN_RSA_BITS {
                return Err(format!(
                    "its RSA modulus has {bits} bits, under {MIN_RSA_BITS}"
                ));
            }
            if exponent.is_empty() {
                return Err("its RSA exponent is empty".to_owned());
            }
            (
                KeyKind::Rsa,
                DecodingKey::from_rsa_raw_components(&modulus, &exponent),
            )
        }
        Some("EC") => {
            let (kind, coordinate_bytes) = match field("crv") {
                Some("P-256") => (KeyKind::EcP256, 32),
                Some("P-384") => (KeyKind::EcP384, 48),
                other => return Err(format!("curve {other:?} is not supported")),
            };
            let x = bytes("x")?;
            let y = bytes("y")?;
            if x.len() != coordinate_bytes || y.len() != coordinate_bytes {
                return Err("its coordinates have the wrong length for the curve".to_owned());
            }
            // An uncompressed SEC1 point, the form the verifier reads.
            let mut point = Vec::with_capacity(1 + 2 * coordinate_bytes);
            point.push(0x04);
            point.extend_from_slice(&x);
            point.extend_from_slice(&y);
            (kind, DecodingKey::from_ec_der(&point))
        }
        Some("oct") => return Err("symmetric keys are not accepted".to_owned()),
        other => return Err(format!("key type {other:?} is not supported")),
    };
    if let Some(pinned) = algorithm {
        let probe = VerificationKey {
            kid: None,
            kind,
            algorithm: None,
            key: key.clone(),
        };
        if !probe.verifies(pinned) {
            return Err(format!("its alg {pinned:?} does not fit its key type"));
        }
    }
    Ok(VerificationKey {
        kid: field("kid").map(str::to_owned),
        kind,
        algorithm,
        key,
    })
}

/// The number of significant bits of a big-endian unsigned integer.
fn bit_length(bytes: &[u8]) -> usize {
    let Some(first) = bytes.iter().position(|&b| b != 0) else {
        return 0;
    };
    (bytes.len() - first) * 8 - bytes[first].leading_zeros() as usize
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use base64::engine::general_purpose::URL_SAFE_NO_PAD as BASE64_URL_NO_PAD;
    use jsonwebtoken::{EncodingKey, Header};
    use serde_json::json;

    use super::super::Authenticator;
    use super::super::test_support::{MemStore, fixed_clock};
    use super::*;

    const RSA_PRIVATE_PEM: &str = "-----BEGIN PRIVATE KEY-----
MIIEvgIBADANBgkqhkiG9w0BAQEFAASCBKgwggSkAgEAAoIBAQCSv43ihMMvfEwn
vHZjrmbwJb+w3lxF/iffAu4+TdxT0W0bLFyItIgjmvqLec//MfJUXJ0zGJcbl5K/
wqAiDqMU2oXlHi7xKR5r1tCOtjLN1Y1NegE/n36jwXxhmKScRllDUyOgBLXtKvG6
bpefr0TiT0KUjw+VrN2hwg41MSoXUL8HQXQDj9zXE+e1GU3gYxReWvzWlWzYoxwS
y87PcNPy9Kqz65vl0Gi1YSzQUqlKWRIvC/8gYTb+4FJnD5IhZBD6ilHALHEghPTZ
YYL4rUfzJBWDyO5U5XsifzJfwZQQ9cysAg2pLSX4wqDAba6UQmQW1nlLmfjfQEbT
GZM3rJ/zAgMBAAECggEAChwPmpENebPlJgDaFRohAriCOrb7tPsb5Kvo6gdNWPbl
PqLkb94kDNpMTWSKCEL46bsecOebE8fYg8TVAroIarmqBMB63zSEFIDOVsgr7gZt
8ofBSaoWvHhQnDahJhgqMrTdECHGJYpSVq1WXVli2pM3e1DAJzSrNhqBn3d9UCRh
eUSp8lVBUr28FoJC/66QGo7GNob49BRgmFrxH4AphldGWSnBD8X9Ebk2XvUWTpTO
LwDsSSbnhHY7rMyYGUx6yNBpkphF6FT2G+/saPzJHA5/nD8sBUhTfe8XgTnq9+iy
toWA7+6nw53Potx9++kVvw3U2/Kmr1utkgZRRodsyQKBgQDNaAvCIN9TLK3LS3bz
vQl5UceKcqZ3YOvG7iFwlIF4nqDBhdo2ijNSAIb01PCGryOt2d8AhV5/64MXxBaj
/1bv5wuzeg8VST1E+Srn3c4S3vPNKS0x+F6snCLhLc8/XN/hSa8paaVS2MQQxryU
Ab68pf17mjgYfUpD30w9l/XDOwKBgQC25M13SmybSd4YOcIzYWCo/C9WQsaCZTfu
pfzEdcB959SFYMxfSg5dI9LB0vx0fX2ke9+5C8ReSJej9nvL64GJoLQMalr/mWdh
cPPU+TnGuBJLlslJIVnCVhveUr83EHKxULkKghBpjI5JFV8oH63gTd60qboiuPQ3
2URCaqRaqQKBgQDHzwl5Gs8DMrgQxOT+bonzuOiZNbPW9rIEPgrLX7qeIfiQp+tA
GKmZgCfHrAgZi+7yI7i44gOt/eP0z2uStkTUc3U/bmGTvD3chWEGUg4u7zBMB10O
eeNmly+ayhwLMAYcObgpWbpXX8NB6oDwnM305qcwgDFHKUF/yox4cgTAlwKBgQCt
txURQTd3J+ozyGiUtOFCoIW1wScbo1hE7JPxZoa3EAPjy9VSjNynyubcArKXUrqM
CLyu3mZdx0WBDxT203Hubx2UzVAxhluTSd3PZAlknmGCOm5lb6/5ziAaQy4r9wt5
L9sSCAfeuQpMkGgZjD1y14O4xZ1ubY5JnawgCXqiQQKBgDqMzl5XWhbXAVJQcB9E
HCAduQkPFuIFzKxEfYHcur8yPvRvdqwiykiqcay99aJm9Whu16VGIuXIrqwG3+yn
f3J/sGd/KyK+bCgrlB8zx19AKeovxMEEd3TSpvp+TokYKb6BYmHjBekkyczX6grx
zGp+fAoiU/NOVBi0Gw+WNSXk
-----END PRIVATE KEY-----
";

    const EC_PRIVATE_PEM: &str = "-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgiA/eSxPcYc+QjLs/
c6eDV1kAdnbsN3WWy1JKGG0ptK2hRANCAAR5EGh+hWFml8sPhcjjYQ+F+HZJhxlw
o+tj3uVqdnzIxn6z/p95nnanoIL3YokdRdzBCESInB1MGuusQlYe+NGI
-----END PRIVATE KEY-----
";

    /// A P-256 key that is not in the JWKS: an attacker's.
    const OTHER_EC_PRIVATE_PEM: &str = "-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgXEaP0n9opOJ0KrO7
zn064iucM2yKUDMbI6HhxRQOO9ShRANCAAR33jt1iwax+DOoSuWUhQH9kDLSJlHz
zVOLx8wxCZ6SDmZIJyQbuteuNHxP+vWj4vZoMkORoqaMS8JdGDxroexB
-----END PRIVATE KEY-----
";

    /// The public halves of the RSA and EC keys above.
    const JWKS: &str = r#"{
      "keys": [
        {
          "kty": "RSA",
          "kid": "rsa-1",
          "use": "sig",
          "alg": "RS256",
          "n": "kr-N4oTDL3xMJ7x2Y65m8CW_sN5cRf4n3wLuPk3cU9FtGyxciLSII5r6i3nP_zHyVFydMxiXG5eSv8KgIg6jFNqF5R4u8Skea9bQjrYyzdWNTXoBP59-o8F8YZiknEZZQ1MjoAS17Srxum6Xn69E4k9ClI8PlazdocIONTEqF1C_B0F0A4_c1xPntRlN4GMUXlr81pVs2KMcEsvOz3DT8vSqs-ub5dBotWEs0FKpSlkSLwv_IGE2_uBSZw-SIWQQ-opRwCxxIIT02WGC-K1H8yQVg8juVOV7In8yX8GUEPXMrAINqS0l-MKgwG2ulEJkFtZ5S5n430BG0xmTN6yf8w",
          "e": "AQAB"
        },
        {
          "kty": "EC",
          "kid": "ec-1",
          "use": "sig",
          "crv": "P-256",
          "x": "eRBofoVhZpfLD4XI42EPhfh2SYcZcKPrY97lanZ8yMY",
          "y": "frP-n3medqeggvdiiR1F3MEIRIicHUwa66xCVh740Yg"
        }
      ]
    }"#;

    const NOW_MS: i64 = 1_700_000_000_000;
    const NOW_S: i64 = NOW_MS / 1000;
    const ISSUER: &str = "https://idp.example.com";
    const AUDIENCE: &str = "spate";

    fn config() -> JwtConfig {
        JwtConfig {
            expected_issuer: Some(ISSUER.to_owned()),
            expected_audiences: vec![AUDIENCE.to_owned()],
            ..JwtConfig::default()
        }
    }

    fn validator(config: JwtConfig) -> JwtValidator {
        JwtValidator::from_jwks(JWKS, config)
            .expect("the test JWKS is valid")
            .with_clock(fixed_clock(NOW_MS))
    }

    /// Claims valid for an hour from `NOW_MS`.
    fn claims() -> Value {
        json!({
            "sub": "alice",
            "iss": ISSUER,
            "aud": AUDIENCE,
            "iat": NOW_S - 60,
            "exp": NOW_S + 3600,
        })
    }

    fn with(mut claims: Value, name: &str, value: Value) -> Value {
        claims[name] = value;
        claims
    }

    fn without(mut claims: Value, name: &str) -> Value {
        claims.as_object_mut().expect("object").remove(name);
        claims
    }

    fn sign(algorithm: Algorithm, kid: Option<&str>, claims: &Value) -> String {
        let key = match algorithm {
            Algorithm::RS256 | Algorithm::RS384 | Algorithm::RS512 | Algorithm::PS256 => {
                EncodingKey::from_rsa_pem(RSA_PRIVATE_PEM.as_bytes())
            }
            _ => EncodingKey::from_ec_pem(EC_PRIVATE_PEM.as_bytes()),
        }
        .expect("the test key parses");
        sign_with(algorithm, kid, claims, &key)
    }

    fn sign_with(
        algorithm: Algorithm,
        kid: Option<&str>,
        claims: &Value,
        key: &EncodingKey,
    ) -> String {
        let mut header = Header::new(algorithm);
        header.kid = kid.map(str::to_owned);
        jsonwebtoken::encode(&header, claims, key).expect("signs")
    }

    fn initial_response(token: &str) -> Vec<u8> {
        format!("n,,\x01auth=Bearer {token}\x01\x01").into_bytes()
    }

    fn authenticator(config: JwtConfig) -> Authenticator {
        let tokens: Arc<dyn TokenValidator + Send + Sync> = Arc::new(validator(config));
        Authenticator::new(
            Mechanism::OAuthBearer,
            MemStore::default().shared(),
            Some(tokens),
        )
        .with_clock(fixed_clock(NOW_MS))
    }

    /// Runs an exchange for a refused token and returns the reason it was refused.
    fn refused(config: JwtConfig, message: &[u8]) -> String {
        let mut auth = authenticator(config);
        assert_eq!(
            auth.step(message),
            Ok(Step::Challenge(INVALID_TOKEN_ERROR.as_bytes().to_vec()))
        );
        match auth.step(b"\x01") {
            Err(error @ AuthError::InvalidToken { .. }) => {
                assert_eq!(error.client_message(false), INVALID_TOKEN_ERROR);
                let AuthError::InvalidToken { reason, .. } = error else {
                    unreachable!()
                };
                reason
            }
            other => panic!("expected an invalid token, got {other:?}"),
        }
    }

    fn refused_token(config: JwtConfig, token: &str) -> String {
        refused(config, &initial_response(token))
    }

    #[test]
    fn rs256_token_authenticates_for_its_remaining_lifetime() {
        let mut auth = authenticator(config());
        let token = sign(Algorithm::RS256, Some("rsa-1"), &claims());
        assert_eq!(
            auth.step(&initial_response(&token)),
            Ok(Step::Done {
                response: Vec::new(),
                principal: "alice".to_owned(),
                session_lifetime_ms: Some(3_600_000),
            })
        );
        assert_eq!(auth.attempted_user(), Some("alice"));
    }

    #[test]
    fn token_info_expiry_is_the_exp_claim() {
        let token = sign(Algorithm::ES256, Some("ec-1"), &claims());
        assert_eq!(
            validator(config()).validate(&token),
            Ok(TokenInfo {
                principal: "alice".to_owned(),
                expires_at_ms: (NOW_S + 3600) * 1000,
            })
        );
    }

    #[test]
    fn every_allowed_algorithm_verifies_with_a_fitting_key() {
        let validator = validator(JwtConfig::default());
        for (algorithm, kid) in [
            (Algorithm::RS384, "rsa-any"),
            (Algorithm::RS512, "rsa-any"),
            (Algorithm::PS256, "rsa-any"),
            (Algorithm::ES256, "ec-1"),
        ] {
            // "rsa-1" is pinned to RS256; "rsa-any" is the same key without a pin.
            let validator = if kid == "rsa-any" {
                let mut jwks: Value = serde_json::from_str(JWKS).expect("JSON");
                jwks["keys"][0]["kid"] = "rsa-any".into();
                jwks["keys"][0]
                    .as_object_mut()
                    .expect("object")
                    .remove("alg");
                JwtValidator::from_jwks(&jwks.to_string(), JwtConfig::default())
                    .expect("valid")
                    .with_clock(fixed_clock(NOW_MS))
            } else {
                JwtValidator::from_jwks(JWKS, JwtConfig::default())
                    .expect("valid")
                    .with_clock(fixed_clock(NOW_MS))
            };
            let token = sign(algorithm, Some(kid), &claims());
            assert!(validator.validate(&token).is_ok(), "{algorithm:?}");
        }
        // The pinned key refuses another algorithm.
        let token = sign(Algorithm::RS512, Some("rsa-1"), &claims());
        assert!(validator.validate(&token).is_err());
    }

    #[test]
    fn expired_token_gets_the_error_challenge_then_fails() {
        let token = sign(
            Algorithm::RS256,
            Some("rsa-1"),
            &with(claims(), "exp", json!(NOW_S - 31)),
        );
        let reason = refused_token(config(), &token);
        assert!(reason.contains("expired"), "{reason}");
    }

    #[test]
    fn token_expired_within_the_clock_skew_is_accepted_with_no_lifetime_left() {
        let mut auth = authenticator(config());
        let token = sign(
            Algorithm::RS256,
            Some("rsa-1"),
            &with(claims(), "exp", json!(NOW_S - 10)),
        );
        assert!(matches!(
            auth.step(&initial_response(&token)),
            Ok(Step::Done {
                session_lifetime_ms: Some(0),
                ..
            })
        ));
    }

    #[test]
    fn token_not_yet_valid_is_refused() {
        let token = sign(
            Algorithm::RS256,
            Some("rsa-1"),
            &with(claims(), "nbf", json!(NOW_S + 600)),
        );
        assert!(refused_token(config(), &token).contains("not valid before"));
    }

    #[test]
    fn wrong_issuer_is_refused() {
        let token = sign(
            Algorithm::RS256,
            Some("rsa-1"),
            &with(claims(), "iss", json!("https://evil")),
        );
        assert!(refused_token(config(), &token).contains("Issuer"));
        let token = sign(Algorithm::RS256, Some("rsa-1"), &without(claims(), "iss"));
        assert!(refused_token(config(), &token).contains("iss"));
    }

    #[test]
    fn wrong_or_missing_audience_is_refused() {
        let token = sign(
            Algorithm::RS256,
            Some("rsa-1"),
            &with(claims(), "aud", json!("other")),
        );
        assert!(refused_token(config(), &token).contains("Audience"));
        let token = sign(Algorithm::RS256, Some("rsa-1"), &without(claims(), "aud"));
        assert!(refused_token(config(), &token).contains("aud"));
        let token = sign(
            Algorithm::RS256,
            Some("rsa-1"),
            &with(claims(), "aud", json!(["other", AUDIENCE])),
        );
        assert!(validator(config()).validate(&token).is_ok());
    }

    #[test]
    fn without_expectations_any_issuer_and_audience_pass() {
        let token = sign(
            Algorithm::RS256,
            Some("rsa-1"),
            &with(with(claims(), "aud", json!("x")), "iss", json!("y")),
        );
        assert!(validator(JwtConfig::default()).validate(&token).is_ok());
    }

    #[test]
    fn unknown_kid_is_refused() {
        let token = sign(Algorithm::RS256, Some("rsa-2"), &claims());
        assert!(refused_token(config(), &token).contains("no key with kid"));
    }

    #[test]
    fn token_without_kid_is_refused_when_the_jwks_has_several_keys() {
        let token = sign(Algorithm::RS256, None, &claims());
        assert!(refused_token(config(), &token).contains("names no key"));
    }

    #[test]
    fn token_without_kid_uses_the_only_key() {
        let mut jwks: Value = serde_json::from_str(JWKS).expect("JSON");
        jwks["keys"].as_array_mut().expect("array").truncate(1);
        let validator = JwtValidator::from_jwks(&jwks.to_string(), config())
            .expect("valid")
            .with_clock(fixed_clock(NOW_MS));
        assert!(
            validator
                .validate(&sign(Algorithm::RS256, None, &claims()))
                .is_ok()
        );
    }

    #[test]
    fn signature_by_a_key_outside_the_jwks_is_refused() {
        let other = EncodingKey::from_ec_pem(OTHER_EC_PRIVATE_PEM.as_bytes()).expect("parses");
        let token = sign_with(Algorithm::ES256, Some("ec-1"), &claims(), &other);
        assert!(refused_token(config(), &token).contains("refused"));
    }

    #[test]
    fn tampered_claims_are_refused() {
        let token = sign(Algorithm::RS256, Some("rsa-1"), &claims());
        let mut parts: Vec<&str> = token.split('.').collect();
        let forged = BASE64_URL_NO_PAD.encode(with(claims(), "sub", json!("admin")).to_string());
        parts[1] = &forged;
        assert!(refused_token(config(), &parts.join(".")).contains("refused"));
    }

    #[test]
    fn algorithms_outside_the_allow_list_are_refused() {
        // HS256 with the RSA key's public modulus as the secret: the key-confusion attack.
        let hs256 = sign_with(
            Algorithm::HS256,
            Some("rsa-1"),
            &claims(),
            &EncodingKey::from_secret(b"kr-N4oTDL3xMJ7x2Y65m8CW_sN5cRf4n3wLuPk3cU9FtGyxciLSII5r"),
        );
        assert!(refused_token(config(), &hs256).contains("not allowed"));
        let header = BASE64_URL_NO_PAD.encode(r#"{"alg":"none","kid":"rsa-1"}"#);
        let body = BASE64_URL_NO_PAD.encode(claims().to_string());
        let none = format!("{header}.{body}.");
        // "none" is not even an algorithm the JWT library knows.
        let reason = validator(config()).validate(&none).expect_err("refused");
        assert!(reason.contains("malformed"), "{reason}");
        // A token whose trailing '.' the initial response grammar allows is still refused.
        let dotted = format!("{header}.{body}.x");
        assert!(validator(config()).validate(&dotted).is_err());
    }

    #[test]
    fn a_key_refuses_an_algorithm_of_another_type() {
        let token = sign(Algorithm::ES256, Some("rsa-1"), &claims());
        assert!(refused_token(config(), &token).contains("cannot verify"));
    }

    #[test]
    fn exp_and_iat_are_required() {
        let token = sign(Algorithm::RS256, Some("rsa-1"), &without(claims(), "exp"));
        assert!(refused_token(config(), &token).contains("no exp"));
        let token = sign(Algorithm::RS256, Some("rsa-1"), &without(claims(), "iat"));
        assert!(refused_token(config(), &token).contains("no iat"));
        let token = sign(
            Algorithm::RS256,
            Some("rsa-1"),
            &with(claims(), "exp", json!("soon")),
        );
        assert!(refused_token(config(), &token).contains("not a number"));
    }

    #[test]
    fn principal_comes_from_the_configured_claim() {
        let config = JwtConfig {
            principal_claim: "preferred_username".to_owned(),
            ..config()
        };
        let token = sign(
            Algorithm::RS256,
            Some("rsa-1"),
            &with(claims(), "preferred_username", json!(" bob ")),
        );
        assert_eq!(
            validator(config.clone())
                .validate(&token)
                .map(|info| info.principal),
            Ok("bob".to_owned())
        );
        let token = sign(Algorithm::RS256, Some("rsa-1"), &claims());
        assert!(refused_token(config, &token).contains("preferred_username"));
        let token = sign(
            Algorithm::RS256,
            Some("rsa-1"),
            &with(claims(), "sub", json!("  ")),
        );
        assert!(refused_token(self::config(), &token).contains("sub"));
    }

    #[test]
    fn authorization_id_must_be_the_token_principal() {
        let token = sign(Algorithm::RS256, Some("rsa-1"), &claims());
        let mut auth = authenticator(config());
        let message = format!("n,a=alice,\x01auth=Bearer {token}\x01\x01");
        assert!(matches!(
            auth.step(message.as_bytes()),
            Ok(Step::Done { .. })
        ));

        let mut auth = authenticator(config());
        let message = format!("n,a=admin,\x01auth=Bearer {token}\x01\x01");
        assert_eq!(
            auth.step(message.as_bytes()),
            Err(AuthError::AuthorizationIdMismatch {
                mechanism: Mechanism::OAuthBearer,
                authorization_id: "admin".to_owned(),
                user: "alice".to_owned(),
            })
        );
    }

    #[test]
    fn extensions_and_scheme_case_are_accepted() {
        let token = sign(Algorithm::RS256, Some("rsa-1"), &claims());
        let mut auth = authenticator(config());
        let message =
            format!("n,,\x01auth=bearer  {token}\x01traceId=a b\x01logicalCluster=lkc-1\x01\x01");
        assert!(matches!(
            auth.step(message.as_bytes()),
            Ok(Step::Done { .. })
        ));
    }

    #[test]
    fn malformed_initial_responses_are_refused() {
        let cases: &[&[u8]] = &[
            b"",
            b"n,,",
            b"n,,\x01\x01",
            b"n,,\x01auth=Bearer abc\x01",
            b"n,,auth=Bearer abc\x01\x01",
            b"y,,\x01auth=Bearer abc\x01\x01",
            b"p=tls-unique,,\x01auth=Bearer abc\x01\x01",
            b"n,,\x01auth=Basic abc\x01\x01",
            b"n,,\x01auth=Bearer\x01\x01",
            b"n,,\x01auth=Bearer \x01\x01",
            b"n,,\x01auth=Bearer a+b\x01\x01",
            b"n,,\x01auth=Bearer abc\x01auth=Bearer abc\x01\x01",
            b"n,,\x01key=value\x01\x01",
            b"n,,\x01auth=Bearer abc\x011x=y\x01\x01",
            b"n,,\x01auth=Bearer abc\x01x=\x01\x01",
            b"n,,\x01auth=Bearer abc\x01x=\x7f\x01\x01",
            b"n,,\x01auth=Bearer abc\x01novalue\x01\x01",
            b"n,b=x,\x01auth=Bearer abc\x01\x01",
            b"n,a=x=,\x01auth=Bearer abc\x01\x01",
            b"n,,\x01auth=Bearer ab\xffc\x01\x01",
        ];
        for &case in cases {
            let error = authenticator(config()).step(case).expect_err("refused");
            assert!(
                matches!(error, AuthError::Malformed { .. }),
                "{:?}: {error:?}",
                String::from_utf8_lossy(case)
            );
        }
    }

    #[test]
    fn an_answer_other_than_0x01_to_the_error_still_fails() {
        let mut auth = authenticator(config());
        let token = sign(Algorithm::RS256, Some("rsa-9"), &claims());
        assert!(matches!(
            auth.step(&initial_response(&token)),
            Ok(Step::Challenge(_))
        ));
        let valid = sign(Algorithm::RS256, Some("rsa-1"), &claims());
        assert!(matches!(
            auth.step(&initial_response(&valid)),
            Err(AuthError::InvalidToken { .. })
        ));
        assert!(auth.is_finished());
    }

    #[test]
    fn oauthbearer_without_a_validator_fails() {
        let mut auth =
            Authenticator::new(Mechanism::OAuthBearer, MemStore::default().shared(), None);
        assert_eq!(
            auth.step(&initial_response("a.b.c")),
            Err(AuthError::NoTokenValidator)
        );
    }

    #[test]
    fn jwks_documents_without_usable_keys_are_refused() {
        assert!(matches!(
            JwtValidator::from_jwks("{", JwtConfig::default()),
            Err(JwksError::InvalidJson { .. })
        ));
        assert_eq!(
            JwtValidator::from_jwks(r#"{"keys": 1}"#, JwtConfig::default()).err(),
            Some(JwksError::NoKeysArray)
        );
        let unusable = json!({"keys": [
            {"kty": "oct", "kid": "hmac", "k": "c2VjcmV0"},
            {"kty": "RSA", "kid": "small", "n": BASE64_URL_NO_PAD.encode([0xFFu8; 128]), "e": "AQAB"},
            {"kty": "EC", "kid": "p521", "crv": "P-521", "x": "AA", "y": "AA"},
            {"kty": "OKP", "kid": "ed", "crv": "Ed25519", "x": "AA"},
            {"kty": "RSA", "kid": "enc", "use": "enc", "n": "AA", "e": "AQAB"},
            {"kty": "RSA", "kid": "hs", "alg": "HS256", "n": "AA", "e": "AQAB"},
            {"kty": "EC", "kid": "short", "crv": "P-256", "x": "AA", "y": "AA"},
            "not an object",
        ]});
        match JwtValidator::from_jwks(&unusable.to_string(), JwtConfig::default()) {
            Err(JwksError::NoUsableKey { skipped }) => assert_eq!(skipped.len(), 8, "{skipped:?}"),
            Err(other) => panic!("unexpected error {other}"),
            Ok(_) => panic!("no key is usable"),
        }
        assert_eq!(
            JwtValidator::from_jwks(
                JWKS,
                JwtConfig {
                    principal_claim: String::new(),
                    ..JwtConfig::default()
                }
            )
            .err(),
            Some(JwksError::EmptyPrincipalClaim)
        );
    }

    #[test]
    fn unusable_keys_are_skipped_beside_usable_ones() {
        let mut jwks: Value = serde_json::from_str(JWKS).expect("JSON");
        jwks["keys"]
            .as_array_mut()
            .expect("array")
            .push(json!({"kty": "oct", "kid": "hmac", "k": "c2VjcmV0"}));
        let validator =
            JwtValidator::from_jwks(&jwks.to_string(), JwtConfig::default()).expect("valid");
        assert_eq!(validator.key_ids(), vec![Some("rsa-1"), Some("ec-1")]);
    }

    #[test]
    fn initial_response_parses_like_kafka() {
        assert_eq!(
            InitialResponse::parse("n,a=a=2Cb,\x01auth=Bearer x.y.z\x01\x01"),
            Ok(InitialResponse {
                authorization_id: Some("a,b".to_owned()),
                token: "x.y.z",
            })
        );
    }
}
