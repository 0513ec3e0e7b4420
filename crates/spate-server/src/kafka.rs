//! The Kafka protocol listener: one task pair per connection.
//!
//! A reader task reads frames, decodes them and hands them to the broker in arrival order; a
//! writer task writes the responses in the same order. Work that completes later (an fsync
//! wait, a fetch long-poll) runs as its own task while the reader goes on, so one connection can
//! have several produces in flight (bounded), and the Kafka rule of in-order responses holds.
//! Requests also take effect in the order they were sent, as on Kafka, which handles one
//! request per connection at a time: a produce appends while it is handled, so produces may
//! pipeline; any other request waits until every earlier request of its connection has been
//! answered ([`InFlight`]), so a commit, a join or a read never overtakes what came before it.
//! Limits: frame size, in-flight requests per connection, request bytes across all connections,
//! connection count, idle time. An SSL listener completes the TLS handshake first (bounded in
//! time); every request carries the connection's [`Session`]: the listener's name and the
//! principal (`User:ANONYMOUS`, or the client certificate's subject). Connection creation
//! rates are checked on accept (`connection_rate.rs`); client quotas throttle a connection by
//! muting it after a response (`quota.rs`).
//!
//! Slow senders (slowloris): once the first byte of a frame has arrived, the rest must follow
//! at a minimum rate ([`MinRate`], as Apache's mod_reqtimeout), and once half the request
//! memory is taken, memory for a frame is granted as its bytes arrive ([`RequestMemory`]), so
//! clients that announce large frames and send a byte a second cannot take more than half of
//! it, and are closed after `request-read-timeout-ms`.
//! A SASL client must authenticate within the same time, with frames no larger than
//! `sasl-server-max-receive-size` until it has. Such closures log one WARN line (at most one a
//! second across the broker) and write an audit record each.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::messages::{ApiKey, RequestKind, ResponseKind};
use spate_broker::audit::{AuditEvent, AuditKind};
use spate_broker::{Broker, Reply};
use spate_protocol::{DecodeError, Session};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufWriter};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_rustls::TlsAcceptor;
use tokio_util::task::TaskTracker;

use crate::request_memory::{FrameMemory, RequestMemory};

/// Limits applied to every connection.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Largest frame accepted.
    pub max_request_bytes: usize,
    /// Requests in flight per connection.
    pub max_in_flight: usize,
    /// Idle time before a connection is closed.
    pub idle_timeout: Duration,
    /// How fast a frame must arrive once it has begun; on SASL listeners also the time a
    /// client has to authenticate.
    pub min_rate: MinRate,
    /// Largest frame a SASL listener reads before the client has authenticated (Kafka's
    /// `sasl.server.max.receive.size`).
    pub sasl_max_receive_bytes: usize,
}

/// How fast a frame must arrive once its first byte has: Apache's mod_reqtimeout `MinRate`.
/// A frame may take `timeout`, plus one second for every `bytes_per_second` bytes received so
/// far, counted from its first byte; time spent waiting for memory does not count.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MinRate {
    /// Time every frame gets, however small (`request-read-timeout-ms`).
    pub timeout: Duration,
    /// The rate that earns more time (`request-read-min-bytes-per-second`); 0 is taken as 1.
    pub bytes_per_second: u64,
}

impl MinRate {
    /// How long after its first byte a frame that has delivered `received` bytes may go
    /// before its next byte.
    pub fn allowance(&self, received: usize) -> Duration {
        let earned_ns = u128::try_from(received)
            .unwrap_or(u128::MAX)
            .saturating_mul(1_000_000_000)
            / u128::from(self.bytes_per_second.max(1));
        let earned = Duration::from_nanos(u64::try_from(earned_ns).unwrap_or(u64::MAX));
        self.timeout.saturating_add(earned)
    }
}

/// The first read-ahead step of a frame's memory: frames this small get theirs in one grant.
const FIRST_STEP_BYTES: usize = 16 * 1024;

/// How many more bytes of a `length`-byte frame to hold when `held` have been filled: as much
/// again as it holds (at least [`FIRST_STEP_BYTES`]), so a frame needs few grants yet never
/// holds more than twice what it has received, plus the first step.
pub fn next_step(length: usize, held: usize) -> usize {
    length.saturating_sub(held).min(held.max(FIRST_STEP_BYTES))
}

/// The clock of one frame being read.
#[derive(Debug)]
struct FrameClock {
    rate: MinRate,
    started: Instant,
    /// Bytes of the frame received, length prefix included.
    received: usize,
    /// Time spent waiting for memory: the broker's doing, not the client's.
    paused: Duration,
}

impl FrameClock {
    fn start(rate: MinRate) -> FrameClock {
        FrameClock {
            rate,
            started: Instant::now(),
            received: 0,
            paused: Duration::ZERO,
        }
    }

    /// The latest moment the next bytes may arrive.
    fn deadline(&self) -> Instant {
        let allowed = self
            .paused
            .saturating_add(self.rate.allowance(self.received));
        self.started
            .checked_add(allowed)
            .unwrap_or_else(|| self.started + Duration::from_secs(365 * 24 * 3600))
    }

    /// Why a frame that missed its deadline is too slow.
    fn too_slow(&self, what: &str) -> FrameError {
        let elapsed = self.started.elapsed().saturating_sub(self.paused);
        FrameError::TooSlow(format!(
            "{what} arrived too slowly: {} bytes in {:.1}s (request-read-timeout-ms {}, request-read-min-bytes-per-second {})",
            self.received,
            elapsed.as_secs_f64(),
            self.rate.timeout.as_millis(),
            self.rate.bytes_per_second,
        ))
    }
}

/// Why a frame could not be read.
#[derive(Debug)]
enum FrameError {
    /// Nothing arrived before the connection's wait ended (idle, or not authenticated in time).
    Quiet,
    /// The peer closed the connection between frames.
    Closed,
    /// The client sent part of a frame too slowly.
    TooSlow(String),
    /// The socket failed or the client broke off inside a frame.
    Failed(String),
}

/// A request frame read in full, with the memory it holds until the request is handled.
struct Frame {
    body: Bytes,
    memory: FrameMemory,
}

/// Reads a frame's 4-byte length prefix: the first byte may take until `quiet_until`, the
/// rest must follow at `rate`. Returns the prefix and the frame's clock.
async fn read_prefix(
    reader: &mut (impl AsyncRead + Unpin),
    quiet_until: Instant,
    rate: MinRate,
) -> Result<([u8; 4], FrameClock), FrameError> {
    let mut prefix = [0u8; 4];
    let first = match tokio::time::timeout_at(quiet_until, reader.read(&mut prefix)).await {
        Err(_) => return Err(FrameError::Quiet),
        Ok(Ok(0)) => return Err(FrameError::Closed),
        Ok(Ok(n)) => n,
        // A TLS peer that closes without close_notify (kafka-python, librdkafka at times)
        // closed between frames: a normal end.
        Ok(Err(err)) if err.kind() == std::io::ErrorKind::UnexpectedEof => {
            return Err(FrameError::Closed);
        }
        Ok(Err(err)) => return Err(FrameError::Failed(format!("read failed: {err}"))),
    };
    let mut clock = FrameClock::start(rate);
    clock.received = first;
    while clock.received < prefix.len() {
        let read =
            tokio::time::timeout_at(clock.deadline(), reader.read(&mut prefix[clock.received..]));
        match read.await {
            Err(_) => return Err(clock.too_slow("a frame's length")),
            // A peer that goes away inside the prefix is as good as one that closed.
            Ok(Ok(0)) => return Err(FrameError::Closed),
            Ok(Ok(n)) => clock.received += n,
            Ok(Err(err)) if err.kind() == std::io::ErrorKind::UnexpectedEof => {
                return Err(FrameError::Closed);
            }
            Ok(Err(err)) => return Err(FrameError::Failed(format!("read failed: {err}"))),
        }
    }
    Ok((prefix, clock))
}

/// Reads a `length`-byte frame body at the clock's rate, taking memory from `memory` as the
/// bytes arrive.
async fn read_body(
    reader: &mut (impl AsyncRead + Unpin),
    length: usize,
    memory: &Arc<RequestMemory>,
    clock: &mut FrameClock,
) -> Result<Frame, FrameError> {
    let mut frame_memory = memory.frame(length);
    // Into spare capacity: no zeroing of up to max-request-bytes per request.
    let mut body: Vec<u8> = if frame_memory.try_grow_all() {
        Vec::with_capacity(length)
    } else {
        Vec::new()
    };
    while body.len() < length {
        if body.len() == frame_memory.held() {
            let step = next_step(length, frame_memory.held());
            let waiting = Instant::now();
            frame_memory.grow(step).await;
            clock.paused += waiting.elapsed();
            body.reserve_exact(frame_memory.held() - body.len());
        }
        let room = (frame_memory.held() - body.len()) as u64;
        let mut limited = (&mut *reader).take(room);
        match tokio::time::timeout_at(clock.deadline(), limited.read_buf(&mut body)).await {
            Err(_) => return Err(clock.too_slow(&format!("a {length}-byte request"))),
            Ok(Ok(0)) => {
                return Err(FrameError::Failed(format!(
                    "connection closed inside a {length}-byte frame"
                )));
            }
            Ok(Ok(n)) => clock.received += n,
            Ok(Err(err)) => return Err(FrameError::Failed(format!("read failed: {err}"))),
        }
    }
    Ok(Frame {
        body: Bytes::from(body),
        memory: frame_memory,
    })
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
    /// Connections closed for sending a frame too slowly or not authenticating in time.
    pub closed_slow: AtomicU64,
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
    pub(crate) connections: Arc<OpenConnections>,
    /// Open connections per client address, shared by all listeners.
    pub(crate) per_ip: Arc<PerIp>,
    /// Connection creation rates, shared by all listeners.
    pub(crate) rates: Arc<crate::connection_rate::ConnectionRates>,
    pub(crate) memory: Arc<RequestMemory>,
    /// Limits the WARN lines about slow connections, shared by all listeners.
    pub(crate) slow_log: Arc<LogThrottle>,
    pub(crate) metrics: Arc<ConnectionMetrics>,
    pub(crate) tracker: TaskTracker,
}

/// Open connections across all listeners, capped by `max.connections` (a broker config that
/// changes at runtime: a lower limit refuses new connections, open ones keep working).
#[derive(Debug)]
pub struct OpenConnections {
    limits: Arc<spate_broker::dynamic::ConnectionLimits>,
    open: AtomicUsize,
}

impl OpenConnections {
    /// Counts connections against `limits`.
    pub fn new(limits: Arc<spate_broker::dynamic::ConnectionLimits>) -> OpenConnections {
        OpenConnections {
            limits,
            open: AtomicUsize::new(0),
        }
    }

    /// Counts a new connection, or refuses it at the cap.
    fn admit(self: &Arc<Self>) -> Option<ConnectionSlot> {
        let limit = self.limits.max_connections();
        self.open
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |open| {
                (open < limit).then_some(open + 1)
            })
            .ok()?;
        Some(ConnectionSlot(Arc::clone(self)))
    }
}

/// One counted connection; uncounted when dropped.
struct ConnectionSlot(Arc<OpenConnections>);

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        self.0.open.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Open connections per client IP address, capped by `max.connections.per.ip` and its
/// overrides (broker configs that change at runtime).
#[derive(Debug)]
pub struct PerIp {
    limits: Arc<spate_broker::dynamic::ConnectionLimits>,
    open: std::sync::Mutex<std::collections::HashMap<std::net::IpAddr, usize>>,
    /// One log line per second at most, so a flood does not flood the log.
    log: LogThrottle,
}

/// Lets one log line a second through and counts the occurrences in between, so a flood of
/// refusals or closures does not flood the log.
#[derive(Debug, Default)]
pub struct LogThrottle {
    /// Occurrences since the last line.
    since_log: AtomicU64,
    last_log: std::sync::Mutex<Option<std::time::Instant>>,
}

impl LogThrottle {
    /// Counts an occurrence; returns how many the caller's line should cover when it may log
    /// now.
    pub fn admit(&self) -> Option<u64> {
        let count = self.since_log.fetch_add(1, Ordering::Relaxed) + 1;
        let mut last = self.last_log.lock().unwrap_or_else(|p| p.into_inner());
        if last.is_none_or(|t| t.elapsed() >= Duration::from_secs(1)) {
            *last = Some(std::time::Instant::now());
            self.since_log.store(0, Ordering::Relaxed);
            return Some(count);
        }
        None
    }
}

impl PerIp {
    /// Caps connections per address by `limits`.
    pub fn new(limits: Arc<spate_broker::dynamic::ConnectionLimits>) -> PerIp {
        PerIp {
            limits,
            open: Default::default(),
            log: LogThrottle::default(),
        }
    }

    /// Counts a new connection from `ip`, or refuses it at the cap.
    fn admit(self: &Arc<Self>, ip: std::net::IpAddr) -> Option<IpSlot> {
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        let count = open.entry(ip).or_default();
        if *count >= self.limits.max_connections_per_ip(ip) {
            if *count == 0 {
                open.remove(&ip);
            }
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
        let refused = self.log.admit()?;
        let limit = self.limits.max_connections_per_ip(ip);
        tracing::warn!(%ip, refused, limit, "connections refused: max-connections-per-ip reached");
        Some(refused)
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

/// The requests of one connection still being answered by their own task.
///
/// A produce takes effect (appends) while the broker handles it and only its answer waits, so
/// produces may overlap. Every other request waits, before it is handled, until all earlier
/// tasks have finished: two pipelined OffsetCommits must be appended in the order they were
/// sent (the last one appended wins), an OffsetFetch must see the commit sent before it, a
/// request behind a JoinGroup waits for the join as on Kafka.
struct InFlight {
    started: u64,
    finished: Arc<watch::Sender<u64>>,
    finished_rx: watch::Receiver<u64>,
}

/// Counts a task as finished when dropped, so a task that panics cannot stall its connection.
struct Finished(Arc<watch::Sender<u64>>);

impl Drop for Finished {
    fn drop(&mut self) {
        self.0.send_modify(|n| *n += 1);
    }
}

impl InFlight {
    fn new() -> Self {
        let (finished, finished_rx) = watch::channel(0);
        InFlight {
            started: 0,
            finished: Arc::new(finished),
            finished_rx,
        }
    }

    /// Counts a new task; the guard counts it finished when dropped.
    fn start(&mut self) -> Finished {
        self.started += 1;
        Finished(Arc::clone(&self.finished))
    }

    /// Waits until every task started so far has finished. False if `stop` turned first.
    async fn drain(&mut self, stop: &mut watch::Receiver<bool>) -> bool {
        let started = self.started;
        tokio::select! {
            _ = stop.wait_for(|s| *s) => false,
            done = self.finished_rx.wait_for(|n| *n >= started) => done.is_ok(),
        }
    }
}

/// A response on its way to the writer, with what its request's timing needs.
struct Outgoing {
    pending: Pending,
    api_key: ApiKey,
    /// When the request's frame was read.
    received: std::time::Instant,
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
            let Some(permit) = self.connections.admit() else {
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

    /// Ends a connection whose frame could not be read: quietly when the peer went away,
    /// with a WARN line (rate-limited) and an audit record when it was too slow.
    fn frame_failed(
        &self,
        peer: SocketAddr,
        session: &Session,
        err: FrameError,
    ) -> Result<(), String> {
        match err {
            FrameError::Quiet | FrameError::Closed => Ok(()),
            FrameError::Failed(reason) => Err(reason),
            FrameError::TooSlow(reason) => {
                self.close_slow(peer, session.principal.to_string(), "Connection", reason);
                Ok(())
            }
        }
    }

    /// Counts, logs (one line a second at most across the broker) and audits a connection
    /// closed for being too slow.
    fn close_slow(&self, peer: SocketAddr, principal: String, method: &str, reason: String) {
        self.metrics.closed_slow.fetch_add(1, Ordering::Relaxed);
        if let Some(closed) = self.slow_log.admit() {
            tracing::warn!(
                peer = %peer,
                listener = %self.name,
                closed,
                reason = %reason,
                "closing a slow connection"
            );
        }
        self.audit_authentication(peer, principal, method, false, reason);
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
        let writer = tokio::spawn(write_responses(writer, rx, peer, Arc::clone(&self.broker)));
        let principal = session.principal.to_string();
        if let Err(reason) = self.read_requests(reader, peer, session, &tx, stop).await {
            // Malformed or oversized frames, TLS on a plaintext port, requests before SASL.
            tracing::warn!(peer = %peer, reason = %reason, "closing connection");
            self.audit_authentication(peer, principal, "Connection", false, reason);
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
        tx: &mpsc::Sender<Outgoing>,
        mut stop: watch::Receiver<bool>,
    ) -> Result<(), String> {
        let mut first = true;
        let mut session = session;
        let mut sasl = self
            .sasl
            .as_ref()
            .map(|settings| crate::sasl::SaslState::new(Arc::clone(settings)));
        let mut quota = crate::quota::ConnectionQuota::default();
        let mut in_flight = InFlight::new();
        // A SASL client has request-read-timeout-ms from now to authenticate.
        let authenticate_by = Instant::now() + self.limits.min_rate.timeout;
        loop {
            if !quota.wait_unmuted(&mut stop).await {
                return Ok(());
            }
            let authenticated = sasl.as_ref().is_none_or(|state| state.principal.is_some());
            let idle_until = Instant::now() + self.limits.idle_timeout;
            let quiet_until = if authenticated {
                idle_until
            } else {
                idle_until.min(authenticate_by)
            };
            let read = tokio::select! {
                _ = stop.wait_for(|s| *s) => return Ok(()),
                read = read_prefix(&mut reader, quiet_until, self.limits.min_rate) => read,
            };
            let (prefix, mut clock) = match read {
                Ok(read) => read,
                Err(FrameError::Quiet) if !authenticated => {
                    let timeout = self.limits.min_rate.timeout;
                    self.close_slow(
                        peer,
                        String::new(),
                        "SaslAuthenticate",
                        format!("SASL authentication not completed within {timeout:?} of connecting (request-read-timeout-ms)"),
                    );
                    return Ok(());
                }
                Err(FrameError::Quiet) => {
                    tracing::debug!(peer = %peer, "closing idle connection");
                    return Ok(());
                }
                Err(err) => return self.frame_failed(peer, &session, err),
            };
            // A TLS record header (handshake, TLS 1.x) where a Kafka frame length should be.
            if first && self.tls.is_none() && prefix[0] == 0x16 && prefix[1] == 0x03 {
                self.metrics.decode_errors.fetch_add(1, Ordering::Relaxed);
                return Err(format!(
                    "a TLS handshake arrived on the listener {}, which does not use TLS",
                    self.name
                ));
            }
            first = false;
            let (max_bytes, limit_name) = if authenticated {
                (self.limits.max_request_bytes, "max-request-bytes")
            } else {
                (
                    self.limits
                        .max_request_bytes
                        .min(self.limits.sasl_max_receive_bytes),
                    "sasl-server-max-receive-size before authentication",
                )
            };
            let Some(length) = spate_protocol::read_frame_length(prefix, max_bytes) else {
                self.metrics.decode_errors.fetch_add(1, Ordering::Relaxed);
                return Err(format!(
                    "frame size {} is negative or above {limit_name} {max_bytes}",
                    i32::from_be_bytes(prefix),
                ));
            };
            // Memory for the request bytes held across all connections is granted as they
            // arrive; waiting for it (under load) does not count against the client.
            let read = tokio::select! {
                _ = stop.wait_for(|s| *s) => return Ok(()),
                read = read_body(&mut reader, length, &self.memory, &mut clock) => read,
            };
            let Frame {
                body,
                memory: permit,
            } = match read {
                Ok(frame) => frame,
                Err(err) => return self.frame_failed(peer, &session, err),
            };
            let received = std::time::Instant::now();
            let request = match spate_protocol::decode_request(body) {
                Ok(request) => request,
                Err(DecodeError::UnsupportedVersion {
                    api_key: kafka_protocol::messages::ApiKey::ApiVersions,
                    correlation_id,
                    ..
                }) => {
                    let response =
                        spate_protocol::unsupported_api_versions_response(correlation_id);
                    let outgoing = Outgoing {
                        pending: Pending::Ready(response),
                        api_key: ApiKey::ApiVersions,
                        received,
                    };
                    if tx.send(outgoing).await.is_err() {
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
                    let outgoing = Outgoing {
                        pending: Pending::Ready(bytes),
                        api_key,
                        received,
                    };
                    if tx.send(outgoing).await.is_err() {
                        return Ok(());
                    }
                    match close {
                        // Logged here, not by `serve`: the failure is audited above, with the
                        // user the client claimed.
                        Some(why) => {
                            tracing::warn!(peer = %peer, reason = %why, "closing connection");
                            return Ok(());
                        }
                        None => continue,
                    }
                }
            }
            if !matches!(request.body, RequestKind::Produce(_)) && !in_flight.drain(&mut stop).await
            {
                return Ok(());
            }
            let mut request = request;
            request.peer = Some(peer);
            request.session = Some(Arc::clone(&session));
            request.received = Some(received);
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
                    self.broker
                        .metrics()
                        .observe_request(api_key, received.elapsed());
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
                    let finished = in_flight.start();
                    Pending::Task(tokio::spawn(async move {
                        let response = future.await;
                        let bytes = encode(api_key, version, correlation_id, &response);
                        drop(finished);
                        bytes
                    }))
                }
            };
            let outgoing = Outgoing {
                pending,
                api_key,
                received,
            };
            if tx.send(outgoing).await.is_err() {
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

/// Writes responses in request order. The buffer is flushed when no further response is ready,
/// so a request's whole time ends when its response is in the buffer.
async fn write_responses(
    writer: impl AsyncWrite + Unpin,
    mut rx: mpsc::Receiver<Outgoing>,
    peer: SocketAddr,
    broker: Arc<Broker>,
) {
    let mut writer = BufWriter::with_capacity(64 * 1024, writer);
    while let Some(Outgoing {
        pending,
        api_key,
        received,
    }) = rx.recv().await
    {
        let bytes = match pending {
            Pending::Ready(bytes) => bytes,
            Pending::Task(handle) => {
                // Answers already written do not wait for this one (an fsync, a long poll).
                if !handle.is_finished()
                    && !writer.buffer().is_empty()
                    && writer.flush().await.is_err()
                {
                    break;
                }
                match handle.await {
                    Ok(Some(bytes)) => bytes,
                    Ok(None) => break,
                    Err(err) => {
                        tracing::error!(peer = %peer, error = %err, "request task failed; closing connection");
                        break;
                    }
                }
            }
        };
        if writer.write_all(&bytes).await.is_err() {
            break;
        }
        if rx.is_empty() && writer.flush().await.is_err() {
            break;
        }
        broker
            .metrics()
            .observe_request(api_key, received.elapsed());
    }
    let _ = writer.flush().await;
    let _ = writer.into_inner().shutdown().await;
}

#[cfg(test)]
mod tests {
    use super::*;

    const RATE: MinRate = MinRate {
        timeout: Duration::from_secs(30),
        bytes_per_second: 65_536,
    };

    #[test]
    fn a_frame_gets_the_timeout_plus_a_second_per_min_rate_bytes() {
        assert_eq!(RATE.allowance(0), Duration::from_secs(30));
        assert_eq!(RATE.allowance(65_536), Duration::from_secs(31));
        assert_eq!(RATE.allowance(32_768), Duration::from_millis(30_500));
        assert_eq!(RATE.allowance(100 << 20), Duration::from_secs(30 + 1600));
    }

    #[test]
    fn allowance_arithmetic_saturates_and_a_zero_rate_is_one() {
        let slowest = MinRate {
            timeout: Duration::from_secs(1),
            bytes_per_second: 0,
        };
        assert_eq!(slowest.allowance(3), Duration::from_secs(4));
        let huge = MinRate {
            timeout: Duration::MAX,
            bytes_per_second: 1,
        };
        assert_eq!(huge.allowance(usize::MAX), Duration::MAX);
    }

    #[test]
    fn a_byte_a_second_misses_the_deadline_soon_after_the_timeout() {
        // A slowloris: 1 byte/s against 1 KiB/s, from its first byte.
        let rate = MinRate {
            timeout: Duration::from_secs(5),
            bytes_per_second: 1024,
        };
        let first_missed = (1..60u64)
            .find(|&t| Duration::from_secs(t) > rate.allowance(t as usize))
            .expect("missed");
        assert_eq!(first_missed, 6);
        // A client at the minimum rate never misses it.
        assert!(
            (1..10_000u64).all(|t| Duration::from_secs(t) <= rate.allowance(t as usize * 1024))
        );
    }

    #[tokio::test(start_paused = true)]
    async fn waiting_for_memory_moves_the_deadline() {
        let mut clock = FrameClock::start(RATE);
        let first = clock.deadline();
        assert_eq!(first - clock.started, Duration::from_secs(30));
        clock.paused = Duration::from_secs(7);
        clock.received = 65_536;
        assert_eq!(clock.deadline() - first, Duration::from_secs(8));
    }

    #[test]
    fn memory_steps_double_from_16_kib_and_stop_at_the_frame_end() {
        assert_eq!(next_step(100, 0), 100, "a small frame in one grant");
        assert_eq!(next_step(1 << 20, 0), 16 * 1024);
        assert_eq!(next_step(1 << 20, 16 * 1024), 16 * 1024);
        assert_eq!(next_step(1 << 20, 32 * 1024), 32 * 1024);
        assert_eq!(next_step(1 << 20, 768 * 1024), 256 * 1024);
        assert_eq!(next_step(1 << 20, 1 << 20), 0);
        let mut held = 0;
        let mut grants = 0;
        while held < (100 << 20) {
            held += next_step(100 << 20, held);
            grants += 1;
        }
        assert_eq!(held, 100 << 20);
        assert!(grants <= 14, "{grants} grants for 100 MiB");
    }

    #[tokio::test(start_paused = true)]
    async fn a_slow_body_is_cut_off_at_its_deadline_holding_little_memory() {
        let memory = RequestMemory::new(1 << 20);
        let (mut client, mut server) = tokio::io::duplex(64);
        let rate = MinRate {
            timeout: Duration::from_secs(5),
            bytes_per_second: 1024,
        };
        let mut clock = FrameClock::start(rate);
        clock.received = 4;
        let reader = tokio::spawn({
            let memory = Arc::clone(&memory);
            async move {
                read_body(&mut server, 1 << 20, &memory, &mut clock)
                    .await
                    .err()
            }
        });
        for _ in 0..3 {
            client.write_all(b"x").await.expect("write");
            tokio::time::sleep(Duration::from_secs(1)).await;
            assert_eq!(memory.free_bytes(), (1 << 20) - 16 * 1024, "one step held");
        }
        let err = reader.await.expect("task");
        assert!(
            matches!(&err, Some(FrameError::TooSlow(reason)) if reason.contains("7 bytes")),
            "{err:?}"
        );
        assert_eq!(memory.free_bytes(), 1 << 20, "given back on close");
    }
}
