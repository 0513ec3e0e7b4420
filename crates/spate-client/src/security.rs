//! How the client secures its connections, in Kafka's client terms: `security.protocol`
//! (PLAINTEXT, SSL, SASL_PLAINTEXT, SASL_SSL), TLS trust and client certificates, and the SASL
//! mechanism with its user name and password.
//!
//! [`SecurityConfig`] is what a caller fills in; [`Security`] is it prepared once per client
//! (certificate files read, the TLS config built), so that a bad file is reported before any
//! connection and every connection, including reconnects to each broker in the metadata, opens
//! the same way. This module opens the byte stream (TCP, then TLS); the SASL exchange runs on
//! the Kafka framing and lives in [`crate::connection`], with the mechanisms'
//! state machines from `spate_auth::sasl::SaslClient`.
//!
//! Without a CA file, the broker's certificate is checked against the system's CA
//! certificates, as Kafka's Java client checks it against the JRE's and librdkafka against
//! OpenSSL's. The name checked is the broker's host as the client dials it: a bootstrap
//! address, or the host a broker advertises in Metadata.

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;

use rustls::RootCertStore;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

pub use spate_auth::sasl::Mechanism as SaslMechanism;

use crate::connection::Timeouts;
use crate::error::{Error, Result};

/// Kafka's `security.protocol`: whether connections use TLS, SASL, both or neither.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SecurityProtocol {
    /// Neither (Kafka's default).
    #[default]
    Plaintext,
    /// TLS.
    Ssl,
    /// SASL without TLS (passwords cross the network hashed for SCRAM, in clear for PLAIN).
    SaslPlaintext,
    /// SASL over TLS.
    SaslSsl,
}

impl SecurityProtocol {
    /// Every protocol.
    pub const ALL: [SecurityProtocol; 4] = [
        SecurityProtocol::Plaintext,
        SecurityProtocol::Ssl,
        SecurityProtocol::SaslPlaintext,
        SecurityProtocol::SaslSsl,
    ];

    /// Kafka's name, e.g. `SASL_SSL`.
    pub fn name(self) -> &'static str {
        match self {
            SecurityProtocol::Plaintext => "PLAINTEXT",
            SecurityProtocol::Ssl => "SSL",
            SecurityProtocol::SaslPlaintext => "SASL_PLAINTEXT",
            SecurityProtocol::SaslSsl => "SASL_SSL",
        }
    }

    /// Whether connections use TLS.
    pub fn uses_tls(self) -> bool {
        matches!(self, SecurityProtocol::Ssl | SecurityProtocol::SaslSsl)
    }

    /// Whether connections authenticate with SASL.
    pub fn uses_sasl(self) -> bool {
        matches!(
            self,
            SecurityProtocol::SaslPlaintext | SecurityProtocol::SaslSsl
        )
    }
}

impl fmt::Display for SecurityProtocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for SecurityProtocol {
    type Err = Error;

    /// Kafka's names, case-insensitively (librdkafka accepts `sasl_ssl` too).
    fn from_str(value: &str) -> Result<SecurityProtocol> {
        SecurityProtocol::ALL
            .into_iter()
            .find(|p| p.name().eq_ignore_ascii_case(value.trim()))
            .ok_or_else(|| {
                Error::InvalidArgument(format!(
                    "unknown security protocol {value:?}: use PLAINTEXT, SSL, SASL_PLAINTEXT or \
                     SASL_SSL"
                ))
            })
    }
}

/// TLS settings (Kafka's `ssl.*`, librdkafka's `ssl.ca.location` and friends), all PEM files.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsConfig {
    /// CA certificates that sign the brokers' certificates; `None` uses the system's.
    pub ca_file: Option<PathBuf>,
    /// The client's certificate chain, for brokers that ask for one (mutual TLS).
    pub cert_file: Option<PathBuf>,
    /// The private key of `cert_file`.
    pub key_file: Option<PathBuf>,
}

/// SASL settings (Kafka's `sasl.mechanism` and the user's credentials).
#[derive(Clone, PartialEq, Eq)]
pub struct SaslConfig {
    /// PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512.
    pub mechanism: SaslMechanism,
    /// The user name.
    pub username: String,
    /// The password; never printed.
    pub password: String,
}

impl fmt::Debug for SaslConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SaslConfig")
            .field("mechanism", &self.mechanism)
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .finish()
    }
}

/// How connections are secured; the default is PLAINTEXT.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SecurityConfig {
    /// Kafka's `security.protocol`.
    pub protocol: SecurityProtocol,
    /// Used when the protocol is SSL or SASL_SSL.
    pub tls: TlsConfig,
    /// Required when the protocol is SASL_PLAINTEXT or SASL_SSL.
    pub sasl: Option<SaslConfig>,
}

impl SecurityConfig {
    /// Checks that the settings fit the protocol: SASL settings exactly when it uses SASL, TLS
    /// files only when it uses TLS, a certificate and its key together.
    pub fn validate(&self) -> Result<()> {
        let protocol = self.protocol;
        let invalid = |message: String| Err(Error::InvalidArgument(message));
        match (&self.sasl, protocol.uses_sasl()) {
            (None, true) => {
                return invalid(format!(
                    "security protocol {protocol} needs a SASL user name and password"
                ));
            }
            (Some(_), false) => {
                return invalid(format!(
                    "SASL credentials are set but security protocol {protocol} does not use \
                     SASL; use SASL_PLAINTEXT or SASL_SSL"
                ));
            }
            (Some(sasl), true) => {
                if !matches!(
                    sasl.mechanism,
                    SaslMechanism::Plain | SaslMechanism::ScramSha256 | SaslMechanism::ScramSha512
                ) {
                    return invalid(format!(
                        "SASL mechanism {} is not supported by this client; use PLAIN, \
                         SCRAM-SHA-256 or SCRAM-SHA-512",
                        sasl.mechanism
                    ));
                }
                if sasl.username.is_empty() {
                    return invalid("the SASL user name is empty".to_string());
                }
                if sasl.password.is_empty() {
                    return invalid("the SASL password is empty".to_string());
                }
            }
            (None, false) => {}
        }
        if self.tls != TlsConfig::default() && !protocol.uses_tls() {
            return invalid(format!(
                "TLS files are set but security protocol {protocol} does not use TLS; use SSL \
                 or SASL_SSL"
            ));
        }
        if self.tls.cert_file.is_some() != self.tls.key_file.is_some() {
            return invalid(
                "a client certificate needs its key and a key its certificate; give both files"
                    .to_string(),
            );
        }
        Ok(())
    }
}

/// A byte stream to a broker: TCP, or TLS over TCP.
pub(crate) trait Stream: AsyncRead + AsyncWrite + Send + Unpin {}

impl<T: AsyncRead + AsyncWrite + Send + Unpin> Stream for T {}

/// A [`SecurityConfig`] made ready to open connections: files read, TLS configured.
/// Cheap to clone.
#[derive(Clone)]
pub struct Security {
    protocol: SecurityProtocol,
    tls: Option<TlsConnector>,
    sasl: Option<Arc<SaslConfig>>,
}

impl fmt::Debug for Security {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Security")
            .field("protocol", &self.protocol)
            .field("sasl", &self.sasl)
            .finish_non_exhaustive()
    }
}

impl Security {
    /// PLAINTEXT: no TLS, no SASL.
    pub fn plaintext() -> Security {
        Security {
            protocol: SecurityProtocol::Plaintext,
            tls: None,
            sasl: None,
        }
    }

    /// Validates `config` and reads its certificate files.
    pub fn new(config: &SecurityConfig) -> Result<Security> {
        config.validate()?;
        let tls = if config.protocol.uses_tls() {
            Some(TlsConnector::from(Arc::new(tls_client_config(
                &config.tls,
            )?)))
        } else {
            None
        };
        Ok(Security {
            protocol: config.protocol,
            tls,
            sasl: config.sasl.clone().map(Arc::new),
        })
    }

    /// The security protocol.
    pub fn protocol(&self) -> SecurityProtocol {
        self.protocol
    }

    /// The SASL settings, when the protocol uses SASL.
    pub(crate) fn sasl(&self) -> Option<&SaslConfig> {
        self.sasl.as_deref()
    }

    /// Opens the byte stream to `broker` (`HOST:PORT`): TCP, then the TLS handshake when the
    /// protocol uses TLS. Both within the connect timeout.
    pub(crate) async fn open(&self, broker: &str, timeouts: Timeouts) -> Result<Box<dyn Stream>> {
        let open = async {
            let tcp = TcpStream::connect(broker)
                .await
                .map_err(|source| Error::Connect {
                    broker: broker.to_string(),
                    source,
                })?;
            let _ = tcp.set_nodelay(true);
            let Some(tls) = &self.tls else {
                return Ok(Box::new(tcp) as Box<dyn Stream>);
            };
            let name = server_name(broker)?;
            let stream = tls
                .connect(name, tcp)
                .await
                .map_err(|e| Error::TlsHandshake {
                    broker: broker.to_string(),
                    reason: e.to_string(),
                })?;
            Ok(Box::new(stream) as Box<dyn Stream>)
        };
        tokio::time::timeout(timeouts.connect, open)
            .await
            .map_err(|_| Error::ConnectTimeout {
                broker: broker.to_string(),
                timeout_ms: timeouts.connect.as_millis() as u64,
            })?
    }
}

/// The name the broker's certificate must carry: the host part of `HOST:PORT`, an IP address
/// or a DNS name.
fn server_name(broker: &str) -> Result<ServerName<'static>> {
    let host = broker.rsplit_once(':').map_or(broker, |(host, _)| host);
    let host = host.trim_start_matches('[').trim_end_matches(']');
    ServerName::try_from(host.to_string()).map_err(|e| Error::TlsSetup {
        reason: format!("broker host {host:?} cannot be checked against a certificate: {e}"),
    })
}

/// The rustls client config: trusted CAs, and the client certificate if any.
fn tls_client_config(config: &TlsConfig) -> Result<rustls::ClientConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let roots = match &config.ca_file {
        Some(path) => file_roots(path)?,
        None => system_roots()?,
    };
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::TlsSetup {
            reason: e.to_string(),
        })?
        .with_root_certificates(roots);
    match (&config.cert_file, &config.key_file) {
        (Some(cert_file), Some(key_file)) => {
            let chain = certificates(cert_file, "client certificate")?;
            let key = PrivateKeyDer::from_pem_file(key_file).map_err(|e| Error::TlsSetup {
                reason: format!("client key file {}: {e}", key_file.display()),
            })?;
            builder
                .with_client_auth_cert(chain, key)
                .map_err(|e| Error::TlsSetup {
                    reason: format!(
                        "client certificate {} with key {}: {e}",
                        cert_file.display(),
                        key_file.display()
                    ),
                })
        }
        _ => Ok(builder.with_no_client_auth()),
    }
}

fn file_roots(path: &Path) -> Result<RootCertStore> {
    let mut roots = RootCertStore::empty();
    for cert in certificates(path, "CA file")? {
        roots.add(cert).map_err(|e| Error::TlsSetup {
            reason: format!("CA file {}: {e}", path.display()),
        })?;
    }
    Ok(roots)
}

fn system_roots() -> Result<RootCertStore> {
    let found = rustls_native_certs::load_native_certs();
    let mut roots = RootCertStore::empty();
    let (added, _ignored) = roots.add_parsable_certificates(found.certs);
    if added == 0 {
        let why = found
            .errors
            .first()
            .map_or_else(|| "none found".to_string(), ToString::to_string);
        return Err(Error::TlsSetup {
            reason: format!(
                "no system CA certificates to check the broker's certificate with ({why}); \
                 give the CA that signed it with --tls-ca-file"
            ),
        });
    }
    Ok(roots)
}

fn certificates(path: &Path, what: &str) -> Result<Vec<CertificateDer<'static>>> {
    let fail = |reason: String| Error::TlsSetup {
        reason: format!("{what} {}: {reason}", path.display()),
    };
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| fail(e.to_string()))?
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| fail(e.to_string()))?;
    if certs.is_empty() {
        return Err(fail("no PEM certificate in it".to_string()));
    }
    Ok(certs)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sasl() -> SaslConfig {
        SaslConfig {
            mechanism: SaslMechanism::ScramSha512,
            username: "alice".to_string(),
            password: "hunter2".to_string(),
        }
    }

    #[test]
    fn protocols_parse_kafka_names_in_any_case() {
        for protocol in SecurityProtocol::ALL {
            assert_eq!(
                protocol.name().parse::<SecurityProtocol>().ok(),
                Some(protocol)
            );
            assert_eq!(
                protocol
                    .name()
                    .to_lowercase()
                    .parse::<SecurityProtocol>()
                    .ok(),
                Some(protocol)
            );
        }
        assert!("TLS".parse::<SecurityProtocol>().is_err());
        assert!(SecurityProtocol::SaslSsl.uses_tls() && SecurityProtocol::SaslSsl.uses_sasl());
        assert!(!SecurityProtocol::Ssl.uses_sasl());
        assert!(!SecurityProtocol::SaslPlaintext.uses_tls());
    }

    #[test]
    fn settings_must_fit_the_protocol() {
        let config = |protocol, sasl: Option<SaslConfig>, tls: TlsConfig| SecurityConfig {
            protocol,
            tls,
            sasl,
        };
        let ca = TlsConfig {
            ca_file: Some(PathBuf::from("ca.pem")),
            ..TlsConfig::default()
        };
        assert!(
            config(SecurityProtocol::Plaintext, None, TlsConfig::default())
                .validate()
                .is_ok()
        );
        assert!(
            config(SecurityProtocol::SaslSsl, Some(sasl()), ca.clone())
                .validate()
                .is_ok()
        );
        for (bad, needle) in [
            (
                config(SecurityProtocol::SaslSsl, None, ca.clone()),
                "needs a SASL",
            ),
            (
                config(SecurityProtocol::Ssl, Some(sasl()), ca.clone()),
                "does not use SASL",
            ),
            (
                config(SecurityProtocol::SaslPlaintext, Some(sasl()), ca.clone()),
                "does not use TLS",
            ),
            (
                config(
                    SecurityProtocol::Ssl,
                    None,
                    TlsConfig {
                        cert_file: Some(PathBuf::from("client.pem")),
                        ..TlsConfig::default()
                    },
                ),
                "needs its key",
            ),
            (
                config(
                    SecurityProtocol::SaslPlaintext,
                    Some(SaslConfig {
                        mechanism: SaslMechanism::OAuthBearer,
                        ..sasl()
                    }),
                    TlsConfig::default(),
                ),
                "not supported",
            ),
            (
                config(
                    SecurityProtocol::SaslPlaintext,
                    Some(SaslConfig {
                        password: String::new(),
                        ..sasl()
                    }),
                    TlsConfig::default(),
                ),
                "password is empty",
            ),
        ] {
            let error = bad.validate().expect_err("refused").to_string();
            assert!(error.contains(needle), "{error}");
        }
    }

    #[test]
    fn debug_hides_the_password() {
        let text = format!("{:?}", sasl());
        assert!(!text.contains("hunter2"), "{text}");
        assert!(text.contains("alice"));
    }

    #[test]
    fn server_names_come_from_the_host() {
        assert_eq!(
            server_name("broker.example:9093").expect("dns"),
            ServerName::try_from("broker.example").expect("name")
        );
        assert_eq!(
            server_name("127.0.0.1:9093").expect("ip"),
            ServerName::try_from("127.0.0.1").expect("name")
        );
        assert_eq!(
            server_name("[::1]:9093").expect("ipv6"),
            ServerName::try_from("::1").expect("name")
        );
    }

    #[test]
    fn missing_or_empty_ca_files_are_clear_errors() {
        let dir = tempfile::tempdir().expect("temp dir");
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "").expect("write");
        for (path, needle) in [
            (dir.path().join("missing.pem"), "missing.pem"),
            (empty, "no PEM certificate"),
        ] {
            let config = SecurityConfig {
                protocol: SecurityProtocol::Ssl,
                tls: TlsConfig {
                    ca_file: Some(path),
                    ..TlsConfig::default()
                },
                sasl: None,
            };
            let error = Security::new(&config).expect_err("refused").to_string();
            assert!(error.contains(needle), "{error}");
        }
    }
}
