//! TLS to PostgreSQL with libpq's `sslmode` — Debezium's `database.sslmode` and pgjdbc's
//! `sslmode` URL parameter: `disable`, `allow`, `prefer` (the default), `require`, `verify-ca`,
//! `verify-full`, with the CA, client certificate and key as PEM files (`sslrootcert`,
//! `sslcert`, `sslkey`).
//!
//! As libpq: `prefer` encrypts when the server accepts it; `prefer` and `require` check no
//! certificate unless a root certificate is given, which makes them `verify-ca`; `verify-ca`
//! checks the chain and `verify-full` the host name too. `allow` connects unencrypted (libpq
//! tries TLS only when a server refuses that; Spate does not retry).
//!
//! Spate opens the connection itself — the SSLRequest, then rustls with ring — and hands the
//! stream to tokio-postgres (`connect_raw`). pgwire-replication takes only a host or a Unix
//! socket directory (its own TLS feature would build aws-lc-rs beside ring), so an encrypted
//! replication connection is handed over through a Unix socket in a private directory,
//! accepted once and piped to the TLS stream ([`bridge`]).

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, verify_tls12_signature, verify_tls13_signature};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UnixListener};
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;
use tokio_util::either::Either;

use crate::plugin::TaskError;

/// `sslmode`'s values, libpq's names.
pub(crate) const MODES: &[&str] = &[
    "disable",
    "allow",
    "prefer",
    "require",
    "verify-ca",
    "verify-full",
];

/// A connection to PostgreSQL: plain TCP, or TLS over it.
pub(crate) type PgStream = Either<TcpStream, TlsStream<TcpStream>>;

/// How connections to one server are encrypted.
#[derive(Clone)]
pub(crate) struct PgTls {
    /// Index into [`MODES`].
    mode: usize,
    /// The rustls config, for the modes that may encrypt.
    config: Option<Arc<ClientConfig>>,
}

const DISABLE: usize = 0;
const ALLOW: usize = 1;
const PREFER: usize = 2;
const REQUIRE: usize = 3;
const VERIFY_FULL: usize = 5;

impl std::fmt::Debug for PgTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "sslmode={}", MODES[self.mode])
    }
}

impl PgTls {
    /// The settings for `mode` (one of [`MODES`]); the files are read now, so a missing or
    /// unreadable one is a config problem, named.
    pub fn new(
        mode: &str,
        root_cert: Option<&str>,
        cert: Option<&str>,
        key: Option<&str>,
    ) -> Result<PgTls, String> {
        let mode = MODES
            .iter()
            .position(|m| *m == mode)
            .ok_or_else(|| format!("sslmode {mode:?} is not one of {}", MODES.join(", ")))?;
        if mode <= ALLOW {
            return Ok(PgTls { mode, config: None });
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let verifier: Arc<dyn ServerCertVerifier> = match (mode, root_cert) {
            (PREFER | REQUIRE, None) => Arc::new(NoVerifier(Arc::clone(&provider))),
            _ => {
                let roots = match root_cert {
                    Some(path) => file_roots(path)?,
                    None => system_roots()?,
                };
                let webpki = WebPkiServerVerifier::builder_with_provider(
                    Arc::new(roots),
                    Arc::clone(&provider),
                )
                .build()
                .map_err(|e| format!("the root certificates cannot be used: {e}"))?;
                if mode == VERIFY_FULL {
                    webpki
                } else {
                    Arc::new(ChainOnly(webpki))
                }
            }
        };
        let builder = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?
            .dangerous()
            .with_custom_certificate_verifier(verifier);
        let config = match (cert, key) {
            (Some(cert), Some(key)) => {
                let chain = certificates(cert, "sslcert")?;
                let key = PrivateKeyDer::from_pem_file(key).map_err(|e| {
                    format!("sslkey {key}: {e} (an unencrypted PEM private key is needed)")
                })?;
                builder.with_client_auth_cert(chain, key).map_err(|e| {
                    format!("sslcert and sslkey do not make a client certificate: {e}")
                })?
            }
            (None, None) => builder.with_no_client_auth(),
            _ => return Err("sslcert and sslkey go together: give both or neither".to_string()),
        };
        Ok(PgTls {
            mode,
            config: Some(Arc::new(config)),
        })
    }

    /// No encryption.
    pub fn disabled() -> PgTls {
        PgTls {
            mode: DISABLE,
            config: None,
        }
    }

    /// Whether connections may be encrypted (so must be opened by [`PgTls::open`]).
    pub fn may_encrypt(&self) -> bool {
        self.config.is_some()
    }

    /// Connects to `host:port`, encrypted as the mode says, within `timeout`. Refusals that
    /// settings must fix (no TLS on a server that must have it, a certificate that does not
    /// check) are fatal; the rest may pass.
    pub async fn open(
        &self,
        host: &str,
        port: u16,
        timeout: Duration,
    ) -> Result<PgStream, TaskError> {
        tokio::time::timeout(timeout, self.open_now(host, port))
            .await
            .map_err(|_| {
                TaskError::retriable(format!(
                    "connecting to PostgreSQL at {host}:{port}: no answer within {} s",
                    timeout.as_secs()
                ))
            })?
    }

    async fn open_now(&self, host: &str, port: u16) -> Result<PgStream, TaskError> {
        let mut tcp = TcpStream::connect((host, port)).await.map_err(|e| {
            TaskError::retriable(format!(
                "cannot reach PostgreSQL at {host}:{port} ({e}): check the host and port, and that the server is running"
            ))
        })?;
        tcp.set_nodelay(true).ok();
        let Some(config) = &self.config else {
            return Ok(Either::Left(tcp));
        };
        let lost = |e: std::io::Error| {
            TaskError::retriable(format!("asking PostgreSQL at {host}:{port} for TLS: {e}"))
        };
        // SSLRequest: length 8, then the code 1234.5679.
        tcp.write_all(&[0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f])
            .await
            .map_err(lost)?;
        let mut answer = [0u8; 1];
        tcp.read_exact(&mut answer).await.map_err(lost)?;
        match answer[0] {
            b'S' => {}
            b'N' if self.mode == PREFER => return Ok(Either::Left(tcp)),
            b'N' => {
                return Err(TaskError::fatal(format!(
                    "PostgreSQL at {host}:{port} does not accept TLS connections, and sslmode is {}: turn ssl on in its postgresql.conf, or use sslmode=prefer",
                    MODES[self.mode]
                )));
            }
            other => {
                return Err(TaskError::fatal(format!(
                    "PostgreSQL at {host}:{port} answered the TLS request with {other:#04x}, not S or N: is it PostgreSQL?"
                )));
            }
        }
        let name = ServerName::try_from(host.to_string())
            .or_else(|_| ServerName::try_from("localhost"))
            .map_err(|e| TaskError::fatal(format!("{host:?} cannot name a TLS server: {e}")))?;
        TlsConnector::from(Arc::clone(config))
            .connect(name, tcp)
            .await
            .map(Either::Right)
            .map_err(|e| {
                let message = format!(
                    "TLS with PostgreSQL at {host}:{port} (sslmode {}): {e}",
                    MODES[self.mode]
                );
                // A certificate that does not check is for the settings to fix.
                if e.get_ref()
                    .and_then(|inner| inner.downcast_ref::<rustls::Error>())
                    .is_some_and(|r| matches!(r, rustls::Error::InvalidCertificate(_)))
                {
                    TaskError::fatal(format!(
                        "{message}: check sslrootcert, or the server's certificate and its name"
                    ))
                } else {
                    TaskError::retriable(message)
                }
            })
    }
}

/// Why [`sql_connect`] failed.
pub(crate) enum ConnectError {
    /// From tokio-postgres: the server refused, or the session failed.
    Postgres(tokio_postgres::Error),
    /// Opening the connection or its TLS.
    Open(TaskError),
}

/// Connects tokio-postgres over `tls`: to `host:port`, with `config`'s other settings for the
/// session. tokio-postgres's own TLS is not used (its rustls glue would be another crate for
/// what [`PgTls::open`] does), so the SCRAM exchange goes without channel binding.
pub(crate) async fn sql_connect(
    config: &mut tokio_postgres::Config,
    tls: &PgTls,
    host: &str,
    port: u16,
    timeout: Duration,
) -> Result<tokio_postgres::Client, ConnectError> {
    if !tls.may_encrypt() || host.starts_with('/') {
        let (client, connection) = config
            .connect(tokio_postgres::NoTls)
            .await
            .map_err(ConnectError::Postgres)?;
        tokio::spawn(async move {
            let _ = connection.await;
        });
        return Ok(client);
    }
    let stream = tls
        .open(host, port, timeout)
        .await
        .map_err(ConnectError::Open)?;
    config.ssl_mode(tokio_postgres::config::SslMode::Disable);
    let (client, connection) = config
        .connect_raw(stream, tokio_postgres::NoTls)
        .await
        .map_err(ConnectError::Postgres)?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    Ok(client)
}

/// Hands `stream` to a client that can only connect to a host or a Unix socket directory:
/// returns the directory, which holds a socket `.s.PGSQL.5432` that accepts one connection and
/// pipes it to `stream`. The directory is removed once that connection is made (or after 30
/// seconds without one); the pipe ends when either side closes. Runs on the caller's runtime.
pub(crate) fn bridge(stream: PgStream) -> Result<String, TaskError> {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let dir: PathBuf = std::env::temp_dir().join(format!(
        "spate-pg-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ));
    let failed = |e: std::io::Error| {
        TaskError::retriable(format!(
            "making a socket for the replication connection in {}: {e}",
            dir.display()
        ))
    };
    std::fs::create_dir(&dir).map_err(failed)?;
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).map_err(failed)?;
    }
    let listener =
        UnixListener::bind(dir.join(format!(".s.PGSQL.{BRIDGE_PORT}"))).map_err(failed)?;
    let path = dir.to_string_lossy().into_owned();
    tokio::spawn(async move {
        let accepted = tokio::time::timeout(Duration::from_secs(30), listener.accept()).await;
        drop(listener);
        let _ = std::fs::remove_dir_all(&dir);
        if let Ok(Ok((mut local, _))) = accepted {
            let mut remote = stream;
            let _ = tokio::io::copy_bidirectional(&mut local, &mut remote).await;
        }
    });
    Ok(path)
}

/// The port in the name of [`bridge`]'s socket.
pub(crate) const BRIDGE_PORT: u16 = 5432;

/// `prefer` and `require` without a root certificate: encrypted, but any certificate is taken
/// (libpq's behaviour). Handshake signatures are still checked.
#[derive(Debug)]
struct NoVerifier(Arc<CryptoProvider>);

impl ServerCertVerifier for NoVerifier {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// `verify-ca`: the chain must lead to a trusted root; the name in the certificate is not
/// checked.
#[derive(Debug)]
struct ChainOnly(Arc<WebPkiServerVerifier>);

impl ServerCertVerifier for ChainOnly {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        // webpki checks the chain first, the name last: a wrong name means the chain held.
        match self
            .0
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
        {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

fn certificates(path: &str, key: &str) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| format!("{key} {path}: {e}"))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("{key} {path}: {e}"))?;
    if certs.is_empty() {
        return Err(format!("{key} {path}: no PEM certificate in it"));
    }
    Ok(certs)
}

fn file_roots(path: &str) -> Result<RootCertStore, String> {
    let mut roots = RootCertStore::empty();
    for cert in certificates(path, "sslrootcert")? {
        roots
            .add(cert)
            .map_err(|e| format!("sslrootcert {path}: {e}"))?;
    }
    Ok(roots)
}

fn system_roots() -> Result<RootCertStore, String> {
    let found = rustls_native_certs::load_native_certs();
    let mut roots = RootCertStore::empty();
    let (added, _) = roots.add_parsable_certificates(found.certs);
    if added == 0 {
        return Err(
            "no system root certificates to check PostgreSQL's certificate with: give sslrootcert"
                .to_string(),
        );
    }
    Ok(roots)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_are_libpq_names_and_files_are_read_up_front() {
        assert!(
            !PgTls::new("disable", None, None, None)
                .expect("disable")
                .may_encrypt()
        );
        assert!(
            !PgTls::new("allow", None, None, None)
                .expect("allow")
                .may_encrypt()
        );
        assert!(
            PgTls::new("prefer", None, None, None)
                .expect("prefer")
                .may_encrypt()
        );
        assert!(
            PgTls::new("require", None, None, None)
                .expect("require")
                .may_encrypt()
        );
        let wrong = PgTls::new("required", None, None, None).expect_err("refused");
        assert!(wrong.contains("verify-full"), "{wrong}");
        let missing = PgTls::new("verify-full", Some("/nonexistent/ca.pem"), None, None)
            .expect_err("refused");
        assert!(
            missing.contains("sslrootcert /nonexistent/ca.pem"),
            "{missing}"
        );
        let half = PgTls::new("require", None, Some("/x.pem"), None).expect_err("refused");
        assert!(half.contains("together"), "{half}");
    }
}
