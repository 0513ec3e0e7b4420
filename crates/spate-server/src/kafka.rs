//! The Kafka protocol listener: one task pair per connection.
//!
//! A reader task reads frames, decodes them and hands them to the broker in arrival order; a
//! writer task writes the responses in the same order. Work that completes later (an fsync
//! wait, a fetch long-poll) runs as its own task while the reader goes on, so one connection can
//! have several requests in flight (bounded), and the Kafka rule of in-order responses holds.
//! Limits: frame size, in-flight requests per connection, request bytes across all connections,
//! connection count, idle time. An SSL listener completes the TLS handshake first (bounded in
//! time); every request carries the connection's [`Session`]: the listener's name and the
//! principal (`User:ANONYMOUS`, or the client certificate's subject). Connection creation
//! rates are checked on accept (`connection_rate.rs`); client quotas throttle a connection by
//! muting it after a response (`quota.rs`).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::ResponseKind;
use spate_broker::audit::{AuditEvent, AuditKind};
use spate_broker::{Broker, Reply};
use spate_protocol::{DecodeError, Session};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufWriter};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, mpsc, watch};
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;
use tokio_util::task::TaskTracker;

/// Limits applied to every connection.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Largest frame accepted.
    pub max_request_bytes: usize,
    /// Requests in flight per connection.
    pub max_in_flight: usize,
    /// Idle time before a connection is closed.
    pub idle_timeout: Duration,
}

/// Connection counters for `/metrics`.
#[derive(Debug, Default)]
pub struct ConnectionMetrics {
    /// Connections accepted.
    pub accepted: AtomicU64,
    /// Connections refused at the limit.
    pub refused: AtomicU64,
    /// Open connections.
    pub active: AtomicU64,
    /// Frames that could not be decoded (connection closed).
    pub decode_errors: AtomicU64,
    /// Connections refused by their address's `connection_creation_rate` quota.
    pub rate_limited: AtomicU64,
    /// Times accepting waited for `max-connection-creation-rate`.
    pub accept_delays: AtomicU64,
}

/// How long a client gets to complete the TLS handshake.
const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// The principal of a client that has not proven who it is, as Kafka names it.
pub const ANONYMOUS: &str = "User:ANONYMOUS";

/// Shared state of the listener.
pub struct Listener {
    /// The listener's name (requests carry it; Metadata answers its advertised address).
    pub(crate) name: Arc<str>,
    /// Set for SSL and SASL_SSL listeners.
    pub(crate) tls: Option<TlsAcceptor>,
    /// Set for SASL_PLAINTEXT and SASL_SSL listeners.
    pub(crate) sasl: Option<Arc<crate::sasl::SaslSettings>>,
    pub(crate) broker: Arc<Broker>,
    pub(crate) limits: Limits,
    pub(crate) connections: Arc<Semaphore>,
    /// Open connections per client address, shared by all listeners.
    pub(crate) per_ip: Arc<PerIp>,
    /// Connection creation rates, shared by all listeners.
    pub(crate) rates: Arc<crate::connection_rate::ConnectionRates>,
    pub(crate) memory: Arc<Semaphore>,
    pub(crate) metrics: Arc<ConnectionMetrics>,
    pub(crate) tracker: TaskTracker,
}

/// Open connections per client IP address, with a cap.
#[derive(Debug)]
pub struct PerIp {
    limit: usize,
    open: std::sync::Mutex<std::collections::HashMap<std::net::IpAddr, usize>>,
    /// Refusals not yet logged, and when the last log line went out (one line per second at
    /// most, so a flood does not flood the log).
    refused_since_log: AtomicU64,
    last_log: std::sync::Mutex<Option<std::time::Instant>>,
}

impl PerIp {
    /// A cap of `limit` connections per address.
    pub fn new(limit: usize) -> PerIp {
        PerIp {
            limit,
            open: Default::default(),
            refused_since_log: AtomicU64::new(0),
            last_log: Default::default(),
        }
    }

    /// Counts a new connection from `ip`, or refuses it at the cap.
    fn admit(self: &Arc<Self>, ip: std::net::IpAddr) -> Option<IpSlot> {
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        let count = open.entry(ip).or_default();
        if *count >= self.limit {
            return None;
        }
        *count += 1;
        Some(IpSlot {
            per_ip: Arc::clone(self),
            ip,
        })
    }

    /// Logs a refusal at most once a second; returns how many refusals the line covered
    /// when it logged.
    fn log_refusal(&self, ip: std::net::IpAddr) -> Option<u64> {
        let refused = self.refused_since_log.fetch_add(1, Ordering::Relaxed) + 1;
        let mut last = self.last_log.lock().unwrap_or_else(|p| p.into_inner());
        if last.is_none_or(|t| t.elapsed() >= Duration::from_secs(1)) {
            *last = Some(std::time::Instant::now());
            self.refused_since_log.store(0, Ordering::Relaxed);
            tracing::warn!(%ip, refused, limit = self.limit, "connections refused: max-connections-per-ip reached");
            return Some(refused);
        }
        None
    }
}

/// One counted connection; uncounted when dropped.
struct IpSlot {
    per_ip: Arc<PerIp>,
    ip: std::net::IpAddr,
}

impl Drop for IpSlot {
    fn drop(&mut self) {
        let mut open = self.per_ip.open.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(count) = open.get_mut(&self.ip) {
            *count -= 1;
            if *count == 0 {
                open.remove(&self.ip);
            }
        }
    }
}

enum Pending {
    Ready(Bytes),
    Task(JoinHandle<Option<Bytes>>),
}

impl Listener {
    /// Accepts connections until `stop` turns true.
    pub async fn run(self: Arc<Self>, listener: TcpListener, mut stop: watch::Receiver<bool>) {
        loop {
            let accepted = tokio::select! {
                _ = stop.wait_for(|s| *s) => return,
                accepted = listener.accept() => accepted,
            };
            let (stream, peer) = match accepted {
                Ok(pair) => pair,
                Err(err) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    tracing::warn!(error = %err, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            let stream = match self.check_connection_rates(stream, peer, &mut stop).await {
                crate::connection_rate::RateCheck::Admit(stream) => stream,
                crate::connection_rate::RateCheck::Refused => continue,
                crate::connection_rate::RateCheck::Stopped => return,
            };
            let Some(ip_slot) = self.per_ip.admit(peer.ip()) else {
                self.metrics.refused.fetch_add(1, Ordering::Relaxed);
                if let Some(refused) = self.per_ip.log_refusal(peer.ip()) {
                    self.audit_authentication(
                        peer,
                        String::new(),
                        "Connection",
                        false,
                        format!("{refused} connection(s) refused: max-connections-per-ip reached"),
                    );
                }
                drop(stream);
                continue;
            };
            let Ok(permit) = Arc::clone(&self.connections).try_acquire_owned() else {
                self.metrics.refused.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(peer = %peer, "connection refused: max-connections reached");
                drop(stream);
                continue;
            };
            self.metrics.accepted.fetch_add(1, Ordering::Relaxed);
            let listener = Arc::clone(&self);
            let stop = stop.clone();
            self.tracker.spawn(async move {
                listener.metrics.active.fetch_add(1, Ordering::Relaxed);
                listener.accept_one(stream, peer, stop).await;
                listener.metrics.active.fetch_sub(1, Ordering::Relaxed);
                drop(permit);
                drop(ip_slot);
            });
        }
    }

    /// Completes the TLS handshake on SSL listeners, then serves the connection.
    async fn accept_one(
        self: &Arc<Self>,
        stream: TcpStream,
        peer: SocketAddr,
        stop: watch::Receiver<bool>,
    ) {
        let _ = stream.set_nodelay(true);
        let Some(tls) = &self.tls else {
            let session = self.session(ANONYMOUS.to_string());
            self.serve(stream, peer, session, stop).await;
            return;
        };
        let stream = match tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, tls.accept(stream)).await {
            Ok(Ok(stream)) => stream,
            Ok(Err(err)) => {
                tracing::warn!(peer = %peer, listener = %self.name, error = %err, "TLS handshake failed; closing connection");
                self.audit_authentication(
                    peer,
                    String::new(),
                    "TlsHandshake",
                    false,
                    err.to_string(),
                );
                return;
            }
            Err(_) => {
                tracing::warn!(peer = %peer, listener = %self.name, "TLS handshake not completed within {TLS_HANDSHAKE_TIMEOUT:?}; closing connection");
                self.audit_authentication(
                    peer,
                    String::new(),
                    "TlsHandshake",
                    false,
                    format!("not completed within {TLS_HANDSHAKE_TIMEOUT:?}"),
                );
                return;
            }
        };
        let principal = stream
            .get_ref()
            .1
            .peer_certificates()
            .and_then(|chain| chain.first())
            .and_then(crate::tls::certificate_principal)
            .unwrap_or_else(|| ANONYMOUS.to_string());
        tracing::debug!(peer = %peer, listener = %self.name, %principal, "TLS connection");
        if principal != ANONYMOUS {
            self.audit_authentication(
                peer,
                principal.clone(),
                "TlsHandshake",
                true,
                "client certificate".to_string(),
            );
        }
        let session = self.session(principal);
        self.serve(stream, peer, session, stop).await;
    }

    /// Records an authentication result in the audit log.
    fn audit_authentication(
        &self,
        peer: SocketAddr,
        principal: String,
        method: &str,
        granted: bool,
        detail: String,
    ) {
        self.broker.audit(AuditEvent {
            kind: AuditKind::Authentication,
            principal,
            client_address: peer.ip().to_string(),
            listener: Some(self.name.to_string()),
            method: method.to_string(),
            resource: None,
            operation: None,
            granted,
            detail: Some(detail),
        });
    }

    fn session(&self, principal: String) -> Arc<Session> {
        Arc::new(Session {
            listener: Arc::clone(&self.name),
            principal: principal.into(),
        })
    }

    async fn serve<S>(
        self: &Arc<Self>,
        stream: S,
        peer: SocketAddr,
        session: Arc<Session>,
        stop: watch::Receiver<bool>,
    ) where
        S: AsyncRead + AsyncWrite + Send + 'static,
    {
        let (reader, writer) = tokio::io::split(stream);
        let (tx, rx) = mpsc::channel(self.limits.max_in_flight);
        let writer = tokio::spawn(write_responses(writer, rx, peer));
        if let Err(reason) = self.read_requests(reader, peer, session, &tx, stop).await {
            tracing::warn!(peer = %peer, reason = %reason, "closing connection");
        }
        drop(tx);
        let _ = writer.await;
    }

    /// Reads and dispatches requests until the peer closes, an error, or shutdown. Returns the
    /// reason when the connection must close because of the client.
    async fn read_requests(
        self: &Arc<Self>,
        mut reader: impl AsyncRead + Unpin,
        peer: SocketAddr,
        session: Arc<Session>,
        tx: &mpsc::Sender<Pending>,
        mut stop: watch::Receiver<bool>,
    ) -> Result<(), String> {
        let mut first = true;
        let mut session = session;
        let mut sasl = self
            .sasl
            .as_ref()
            .map(|settings| crate::sasl::SaslState::new(Arc::clone(settings)));
        let mut quota = crate::quota::ConnectionQuota::default();
        loop {
            if !quota.wait_unmuted(&mut stop).await {
                return Ok(());
            }
            let mut prefix = [0u8; 4];
            let read = tokio::select! {
                _ = stop.wait_for(|s| *s) => return Ok(()),
                read = tokio::time::timeout(self.limits.idle_timeout, reader.read_exact(&mut prefix)) => read,
            };
            match read {
                Err(_) => {
                    tracing::debug!(peer = %peer, "closing idle connection");
                    return Ok(());
                }
                Ok(Err(err)) if err.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(()),
                Ok(Err(err)) => return Err(format!("read failed: {err}")),
                Ok(Ok(_)) => {}
            }
            // A TLS record header (handshake, TLS 1.x) where a Kafka frame length should be.
            if first && self.tls.is_none() && prefix[0] == 0x16 && prefix[1] == 0x03 {
                self.metrics.decode_errors.fetch_add(1, Ordering::Relaxed);
                self.audit_authentication(
                    peer,
                    session.principal.to_string(),
                    "Connection",
                    false,
                    "a TLS handshake on a listener without TLS".to_string(),
                );
                return Err(format!(
                    "a TLS handshake arrived on the listener {}, which does not use TLS",
                    self.name
                ));
            }
            first = false;
            let Some(length) =
                spate_protocol::read_frame_length(prefix, self.limits.max_request_bytes)
            else {
                self.metrics.decode_errors.fetch_add(1, Ordering::Relaxed);
                return Err(format!(
                    "frame size {} is negative or above max-request-bytes {}",
                    i32::from_be_bytes(prefix),
                    self.limits.max_request_bytes
                ));
            };
            // Bound the request bytes held across all connections; this waits under load.
            let permits = u32::try_from(length.max(1)).unwrap_or(u32::MAX);
            let Ok(permit) = Arc::clone(&self.memory).acquire_many_owned(permits).await else {
                return Ok(());
            };
            // Read into spare capacity: no zeroing of up to max-request-bytes per request.
            let mut body = BytesMut::with_capacity(length);
            let read_body = async {
                let mut limited = (&mut reader).take(length as u64);
                while body.len() < length {
                    if limited.read_buf(&mut body).await? == 0 {
                        return Err(std::io::Error::from(std::io::ErrorKind::UnexpectedEof));
                    }
                }
                Ok(())
            };
            match tokio::time::timeout(self.limits.idle_timeout, read_body).await {
                Err(_) => return Err("timed out reading a request body".into()),
                Ok(Err(err)) if err.kind() == std::io::ErrorKind::UnexpectedEof => {
                    return Err(format!("connection closed inside a {length}-byte frame"));
                }
                Ok(Err(err)) => return Err(format!("read failed: {err}")),
                Ok(Ok(_)) => {}
            }
            let request = match spate_protocol::decode_request(body.freeze()) {
                Ok(request) => request,
                Err(DecodeError::UnsupportedVersion {
                    api_key: kafka_protocol::messages::ApiKey::ApiVersions,
                    correlation_id,
                    ..
                }) => {
                    let response =
                        spate_protocol::unsupported_api_versions_response(correlation_id);
                    if tx.send(Pending::Ready(response)).await.is_err() {
                        return Ok(());
                    }
                    continue;
                }
                Err(err) => {
                    self.metrics.decode_errors.fetch_add(1, Ordering::Relaxed);
                    return Err(err.to_string());
                }
            };
            let (api_key, version, correlation_id) =
                (request.api_key, request.api_version, request.correlation_id);
            if let Some(state) = sasl.as_mut() {
                use kafka_protocol::messages::RequestKind;
                let outcome = match &request.body {
                    RequestKind::SaslHandshake(req) => Some(state.handshake(req)),
                    // PLAIN hashes the password (thousands of HMACs): not on an async worker.
                    RequestKind::SaslAuthenticate(req) => Some(tokio::task::block_in_place(|| {
                        state.authenticate(req, version)
                    })),
                    _ if !state.allows(api_key) => {
                        return Err(if state.principal.is_some() {
                            "the session's lifetime ended without re-authentication".to_string()
                        } else {
                            format!("unexpected {api_key:?} request before SASL authentication")
                        });
                    }
                    _ => None,
                };
                if let Some(outcome) = outcome {
                    let before = session.principal.clone();
                    let (response, close) = match outcome {
                        crate::sasl::Outcome::Answer(response) => (response, None),
                        crate::sasl::Outcome::AnswerAndClose(response, why) => {
                            (response, Some(why))
                        }
                    };
                    if let Some(principal) = &state.principal {
                        if *session.principal != **principal {
                            session = Arc::new(Session {
                                listener: Arc::clone(&session.listener),
                                principal: principal.as_str().into(),
                            });
                        }
                    }
                    let method = format!("{api_key:?}");
                    match &close {
                        Some(why) => {
                            let user = state.failed_user.take().unwrap_or_default();
                            self.audit_authentication(
                                peer,
                                format!("User:{user}"),
                                &method,
                                false,
                                why.clone(),
                            );
                        }
                        None if state.authenticated_now() => {
                            let detail = if *before == *session.principal {
                                "re-authenticated"
                            } else {
                                "authenticated"
                            };
                            self.audit_authentication(
                                peer,
                                session.principal.to_string(),
                                &method,
                                true,
                                detail.to_string(),
                            );
                        }
                        None => {}
                    }
                    drop(permit);
                    let Some(bytes) = encode(api_key, version, correlation_id, &response) else {
                        return Err(format!(
                            "could not encode a {api_key:?} v{version} response"
                        ));
                    };
                    if tx.send(Pending::Ready(bytes)).await.is_err() {
                        return Ok(());
                    }
                    match close {
                        Some(why) => return Err(why),
                        None => continue,
                    }
                }
            }
            let mut request = request;
            request.peer = Some(peer);
            request.session = Some(Arc::clone(&session));
            let ticket = quota.start(
                self.broker.client_quotas(),
                &session.principal,
                &mut request,
            );
            let reply = self.broker.handle(request).await;
            drop(permit);
            let pending = match reply {
                Reply::Nothing => {
                    if let Some(ticket) = ticket {
                        ticket.finish_without_response();
                    }
                    continue;
                }
                Reply::Now(mut response) => {
                    if let Some(ticket) = ticket {
                        ticket.finish_now(&mut response);
                    }
                    match encode(api_key, version, correlation_id, &response) {
                        Some(bytes) => Pending::Ready(bytes),
                        None => {
                            return Err(format!(
                                "could not encode a {api_key:?} v{version} response"
                            ));
                        }
                    }
                }
                Reply::Later(future) => {
                    let future = match ticket {
                        Some(ticket) => Box::pin(ticket.finish_later(future)),
                        None => future,
                    };
                    Pending::Task(tokio::spawn(async move {
                        let response = future.await;
                        encode(api_key, version, correlation_id, &response)
                    }))
                }
            };
            if tx.send(pending).await.is_err() {
                return Ok(());
            }
        }
    }
}

fn encode(
    api_key: kafka_protocol::messages::ApiKey,
    version: i16,
    correlation_id: i32,
    response: &ResponseKind,
) -> Option<Bytes> {
    match spate_protocol::encode_response(api_key, version, correlation_id, response) {
        Ok(bytes) => Some(bytes),
        Err(err) => {
            tracing::error!(api = ?api_key, version, error = %err, "could not encode response");
            None
        }
    }
}

async fn write_responses(
    writer: impl AsyncWrite + Unpin,
    mut rx: mpsc::Receiver<Pending>,
    peer: SocketAddr,
) {
    let mut writer = BufWriter::with_capacity(64 * 1024, writer);
    while let Some(pending) = rx.recv().await {
        let bytes = match pending {
            Pending::Ready(bytes) => bytes,
            Pending::Task(handle) => match handle.await {
                Ok(Some(bytes)) => bytes,
                Ok(None) => break,
                Err(err) => {
                    tracing::error!(peer = %peer, error = %err, "request task failed; closing connection");
                    break;
                }
            },
        };
        if writer.write_all(&bytes).await.is_err() {
            break;
        }
        if rx.is_empty() && writer.flush().await.is_err() {
            break;
        }
    }
    let _ = writer.flush().await;
    let _ = writer.into_inner().shutdown().await;
}
