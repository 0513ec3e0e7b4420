//! One TCP connection to one broker: framing, correlation ids and version negotiation.
//!
//! A frame is a 4-byte big-endian size and that many bytes. Requests are written under a lock
//! in the order their correlation ids are registered; a reader task matches each response to
//! the oldest outstanding request (Kafka answers in order on a connection), so several
//! requests can be in flight at once. The first request on a connection is ApiVersions (v3,
//! falling back to an older version when the broker answers UNSUPPORTED_VERSION); every later
//! request uses the highest version both sides speak.
//!
//! On SSL listeners the frames travel over TLS ([`Security`] opens the stream). On SASL
//! listeners the connection authenticates right after ApiVersions, before it is handed out:
//! SaslHandshake (v1) names the mechanism, then SaslAuthenticate requests carry the exchange of
//! `spate_auth::sasl::SaslClient`, as librdkafka and the Java client do. A broker that gives
//! the session a lifetime (KIP-368) gets a new, freshly authenticated connection once most of
//! it has passed: the old one reports itself closed.
//!
//! Every call has a deadline. A timeout, a write error or a request abandoned half-written
//! closes the connection (the byte stream can no longer be trusted), and the owner opens a
//! new one. This module knows nothing about topics or partitions.

use std::collections::{HashMap, VecDeque};
use std::marker::PhantomData;
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{
    ApiKey, ApiVersionsRequest, ApiVersionsResponse, RequestHeader, ResponseHeader,
    SaslAuthenticateRequest, SaslHandshakeRequest,
};
use kafka_protocol::protocol::{Decodable, Encodable, Request, StrBytes};
use spate_auth::sasl::{ClientStep, SaslClient};
use tokio::io::{AsyncReadExt, AsyncWriteExt, ReadHalf, WriteHalf};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, oneshot};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::error::{Error, KafkaError, Result, code};
use crate::security::{SaslConfig, Security, Stream};

/// Largest response frame accepted. Fetch responses are bounded by the request's `max_bytes`
/// (see `fetch.rs`); this leaves room above it.
pub const MAX_RESPONSE_BYTES: usize = 128 * 1024 * 1024;

/// Requests outstanding on one connection at most (further callers wait).
const MAX_IN_FLIGHT_REQUESTS: usize = 32;

/// The ApiVersions version tried first.
const API_VERSIONS_FIRST_VERSION: i16 = 3;

/// SaslAuthenticate round trips one exchange may take (SCRAM needs two).
const MAX_SASL_ROUNDS: usize = 4;

/// Kafka's UNSUPPORTED_SASL_MECHANISM.
const UNSUPPORTED_SASL_MECHANISM: i16 = 33;
/// Kafka's ILLEGAL_SASL_STATE.
const ILLEGAL_SASL_STATE: i16 = 34;

/// Timeouts for a connection.
#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    /// Opening the TCP connection.
    pub connect: Duration,
    /// Waiting for a response (a fetch adds its long-poll wait on top).
    pub request: Duration,
}

type Waiter = oneshot::Sender<Result<Bytes>>;

#[derive(Default)]
struct State {
    /// Outstanding requests, oldest first, by correlation id.
    pending: VecDeque<(i32, Waiter)>,
    /// Why the connection is unusable, once it is.
    closed: Option<String>,
}

struct Shared {
    broker: String,
    state: Mutex<State>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding this lock cannot leave the queue half-updated; keep going.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Marks the connection unusable and fails every outstanding request.
    fn close(&self, reason: &str) {
        let waiters: Vec<Waiter> = {
            let mut state = self.lock();
            if state.closed.is_none() {
                state.closed = Some(reason.to_string());
            }
            state.pending.drain(..).map(|(_, waiter)| waiter).collect()
        };
        if !waiters.is_empty() {
            tracing::debug!(broker = %self.broker, reason, "connection closed with requests outstanding");
        }
        for waiter in waiters {
            let _ = waiter.send(Err(self.closed_error(reason)));
        }
    }

    fn closed_error(&self, reason: &str) -> Error {
        Error::ConnectionClosed {
            broker: self.broker.clone(),
            reason: reason.to_string(),
        }
    }
}

/// Closes the connection if dropped before `disarm`: a request abandoned half-written would
/// leave garbage at the head of the stream.
struct CloseOnDrop<'a> {
    shared: &'a Shared,
    armed: bool,
}

impl Drop for CloseOnDrop<'_> {
    fn drop(&mut self) {
        if self.armed {
            self.shared
                .close("a request was abandoned while being written");
        }
    }
}

/// A connection to one broker, after ApiVersions negotiation (and SASL authentication on
/// SASL listeners).
pub struct Connection {
    shared: Arc<Shared>,
    writer: tokio::sync::Mutex<WriteHalf<Box<dyn Stream>>>,
    reader: JoinHandle<()>,
    in_flight: Arc<Semaphore>,
    next_correlation_id: AtomicI32,
    client_id: StrBytes,
    timeouts: Timeouts,
    /// Broker's advertised (min, max) per API key.
    versions: HashMap<i16, (i16, i16)>,
    /// When the authenticated session should be replaced, if the broker gave it a lifetime.
    replace_at: Option<Instant>,
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection")
            .field("broker", &self.shared.broker)
            .finish_non_exhaustive()
    }
}

impl Drop for Connection {
    fn drop(&mut self) {
        self.reader.abort();
    }
}

impl Connection {
    /// Opens a PLAINTEXT connection to `broker` (`HOST:PORT`) and negotiates API versions.
    pub async fn connect(broker: &str, client_id: &str, timeouts: Timeouts) -> Result<Connection> {
        Connection::connect_with(broker, client_id, timeouts, &Security::plaintext()).await
    }

    /// Opens a connection to `broker` secured as `security` says (TLS, SASL), negotiates API
    /// versions and, on SASL listeners, authenticates.
    pub async fn connect_with(
        broker: &str,
        client_id: &str,
        timeouts: Timeouts,
        security: &Security,
    ) -> Result<Connection> {
        let stream = security.open(broker, timeouts).await?;
        let tls = security.protocol().uses_tls();
        let (read_half, write_half) = tokio::io::split(stream);
        let shared = Arc::new(Shared {
            broker: broker.to_string(),
            state: Mutex::new(State::default()),
        });
        let reader = tokio::spawn(read_loop(read_half, Arc::clone(&shared), tls));
        let mut connection = Connection {
            shared,
            writer: tokio::sync::Mutex::new(write_half),
            reader,
            in_flight: Arc::new(Semaphore::new(MAX_IN_FLIGHT_REQUESTS)),
            next_correlation_id: AtomicI32::new(1),
            client_id: StrBytes::from_string(client_id.to_string()),
            timeouts,
            versions: HashMap::new(),
            replace_at: None,
        };
        connection.versions = connection.negotiate_versions().await?;
        if let Some(sasl) = security.sasl() {
            connection.authenticate(sasl).await?;
        }
        tracing::debug!(broker, apis = connection.versions.len(), protocol = %security.protocol(), "connected");
        Ok(connection)
    }

    /// `HOST:PORT` of the broker.
    pub fn broker(&self) -> &str {
        &self.shared.broker
    }

    /// Whether the connection has failed, or its authenticated session is near its end, and
    /// it must be replaced.
    pub fn is_closed(&self) -> bool {
        self.shared.lock().closed.is_some()
            || self.replace_at.is_some_and(|at| Instant::now() >= at)
    }

    /// The highest version of `R` both sides speak.
    pub fn version<R: Request>(&self) -> Result<i16> {
        self.version_within(api_key_of::<R>(), R::VERSIONS.min, R::VERSIONS.max)
    }

    /// The highest version of `api` in `client_min..=client_max` that the broker speaks.
    pub fn version_within(&self, api: ApiKey, client_min: i16, client_max: i16) -> Result<i16> {
        let advertised = self.versions.get(&(api as i16)).copied();
        if let Some((broker_min, broker_max)) = advertised {
            let version = client_max.min(broker_max);
            if version >= client_min.max(broker_min) {
                return Ok(version);
            }
        }
        Err(Error::UnsupportedApi {
            broker: self.shared.broker.clone(),
            api,
            client_min,
            client_max,
            broker_versions: advertised
                .map(|(min, max)| format!("{min}..={max}"))
                .unwrap_or_else(|| "none".to_string()),
        })
    }

    /// Sends `request` as `version` and waits for its response.
    pub async fn send<R: Request>(&self, request: &R, version: i16) -> Result<R::Response> {
        self.send_with_timeout(request, version, self.timeouts.request)
            .await
    }

    /// Like [`Connection::send`] with an explicit response timeout (a fetch's long poll).
    pub async fn send_with_timeout<R: Request>(
        &self,
        request: &R,
        version: i16,
        timeout: Duration,
    ) -> Result<R::Response> {
        self.start(request, version, timeout)
            .await?
            .response()
            .await
    }

    /// Writes `request` without waiting for a response: Produce with `acks=0`, which the
    /// broker never answers.
    pub async fn send_without_response<R: Request>(&self, request: &R, version: i16) -> Result<()> {
        let api = api_key_of::<R>();
        let correlation_id = self.next_correlation_id();
        let frame = self.encode(api, version, correlation_id, request)?;
        let timeout = self.timeouts.request;
        let write = async {
            let mut writer = self.writer.lock().await;
            self.check_open()?;
            let mut guard = CloseOnDrop {
                shared: &self.shared,
                armed: true,
            };
            let result = writer.write_all(&frame).await;
            guard.armed = false;
            result.map_err(|e| self.fail(&format!("write failed: {e}")))
        };
        tokio::time::timeout(timeout, write)
            .await
            .map_err(|_| self.timed_out(api, timeout))?
    }

    fn next_correlation_id(&self) -> i32 {
        // Wraps after 2^31 requests; only the order of outstanding ids matters.
        self.next_correlation_id.fetch_add(1, Ordering::Relaxed) & i32::MAX
    }

    fn encode<R: Encodable>(
        &self,
        api: ApiKey,
        version: i16,
        correlation_id: i32,
        request: &R,
    ) -> Result<Bytes> {
        let header = RequestHeader::default()
            .with_request_api_key(api as i16)
            .with_request_api_version(version)
            .with_correlation_id(correlation_id)
            .with_client_id(Some(self.client_id.clone()));
        let mut buf = BytesMut::with_capacity(64);
        buf.put_i32(0);
        header
            .encode(&mut buf, api.request_header_version(version))
            .map_err(|e| encode_error(api, version, e))?;
        request
            .encode(&mut buf, version)
            .map_err(|e| encode_error(api, version, e))?;
        let size = i32::try_from(buf.len() - 4).map_err(|_| Error::Encode {
            api,
            version,
            reason: format!("request of {} bytes is too large", buf.len()),
        })?;
        buf[..4].copy_from_slice(&size.to_be_bytes());
        Ok(buf.freeze())
    }

    /// Writes a frame and waits for the response frame with the same correlation id.
    /// Returns the response without its size prefix (starting with the correlation id).
    async fn round_trip(
        &self,
        api: ApiKey,
        correlation_id: i32,
        frame: Bytes,
        timeout: Duration,
    ) -> Result<Bytes> {
        let (rx, _permit) =
            tokio::time::timeout(timeout, self.write_request(correlation_id, frame))
                .await
                .map_err(|_| self.timed_out(api, timeout))??;
        wait_response(&self.shared, rx, api, timeout).await
    }

    /// Registers `correlation_id` as the newest outstanding request and writes its frame.
    async fn write_request(
        &self,
        correlation_id: i32,
        frame: Bytes,
    ) -> Result<(oneshot::Receiver<Result<Bytes>>, OwnedSemaphorePermit)> {
        let permit = Arc::clone(&self.in_flight)
            .acquire_owned()
            .await
            .map_err(|_| self.shared.closed_error("connection dropped"))?;
        let mut writer = self.writer.lock().await;
        let (tx, rx) = oneshot::channel();
        {
            let mut state = self.shared.lock();
            if let Some(reason) = &state.closed {
                return Err(self.shared.closed_error(reason));
            }
            state.pending.push_back((correlation_id, tx));
        }
        let mut guard = CloseOnDrop {
            shared: &self.shared,
            armed: true,
        };
        let written = writer.write_all(&frame).await;
        guard.armed = false;
        written.map_err(|e| self.fail(&format!("write failed: {e}")))?;
        Ok((rx, permit))
    }

    /// Writes `request` now and returns a handle to await its response later. Requests
    /// started one after another on a connection reach the broker in that order, which is
    /// what keeps pipelined produce requests to one partition in order.
    pub async fn start<R: Request>(
        &self,
        request: &R,
        version: i16,
        timeout: Duration,
    ) -> Result<PendingResponse<R>> {
        let api = api_key_of::<R>();
        let correlation_id = self.next_correlation_id();
        let frame = self.encode(api, version, correlation_id, request)?;
        let (rx, permit) = tokio::time::timeout(timeout, self.write_request(correlation_id, frame))
            .await
            .map_err(|_| self.timed_out(api, timeout))??;
        Ok(PendingResponse {
            rx,
            shared: Arc::clone(&self.shared),
            api,
            version,
            timeout,
            _permit: permit,
            _request: PhantomData,
        })
    }

    fn check_open(&self) -> Result<()> {
        match &self.shared.lock().closed {
            Some(reason) => Err(self.shared.closed_error(reason)),
            None => Ok(()),
        }
    }

    fn fail(&self, reason: &str) -> Error {
        self.shared.close(reason);
        self.shared.closed_error(reason)
    }

    fn timed_out(&self, api: ApiKey, timeout: Duration) -> Error {
        self.shared.close("a request timed out");
        Error::RequestTimeout {
            broker: self.shared.broker.clone(),
            api,
            timeout_ms: timeout.as_millis() as u64,
        }
    }

    fn decode_error(&self, api: ApiKey, version: i16, e: impl std::fmt::Display) -> Error {
        decode_error(&self.shared, api, version, e)
    }

    /// SaslHandshake, then SaslAuthenticate until the mechanism's exchange is done. Errors
    /// name the mechanism and carry the broker's message.
    async fn authenticate(&mut self, sasl: &SaslConfig) -> Result<()> {
        let mechanism = sasl.mechanism;
        let failed = |message: String| Error::Authentication {
            broker: self.shared.broker.clone(),
            mechanism: mechanism.name().to_string(),
            message,
        };
        // v0 sends the exchange as raw frames (pre-Kafka 1.0); every broker since speaks v1.
        let version = self.version_within(ApiKey::SaslHandshake, 1, 1)?;
        let request = SaslHandshakeRequest::default()
            .with_mechanism(StrBytes::from_static_str(mechanism.name()));
        let response = self.send(&request, version).await?;
        match response.error_code {
            code::NONE => {}
            UNSUPPORTED_SASL_MECHANISM => {
                let offered: Vec<&str> = response.mechanisms.iter().map(|m| m.as_str()).collect();
                return Err(Error::SaslMechanismNotEnabled {
                    broker: self.shared.broker.clone(),
                    mechanism: mechanism.name().to_string(),
                    offered: if offered.is_empty() {
                        "none".to_string()
                    } else {
                        offered.join(", ")
                    },
                });
            }
            ILLEGAL_SASL_STATE => {
                return Err(failed(
                    "the listener does not use SASL (ILLEGAL_SASL_STATE); check \
                     --security-protocol and that the port is a SASL_PLAINTEXT or SASL_SSL \
                     listener"
                        .to_string(),
                ));
            }
            other => {
                return Err(Error::Kafka {
                    context: format!("SASL handshake with {}", self.shared.broker),
                    error: KafkaError {
                        code: other,
                        message: None,
                    },
                });
            }
        }
        let version = self.version_within(ApiKey::SaslAuthenticate, 0, 2)?;
        let mut client = SaslClient::new(mechanism, &sasl.username, &sasl.password)
            .map_err(|e| failed(e.to_string()))?;
        let mut message = client.start().map_err(|e| failed(e.to_string()))?;
        for _ in 0..MAX_SASL_ROUNDS {
            let request = SaslAuthenticateRequest::default().with_auth_bytes(message.into());
            let response = self.send(&request, version).await?;
            if let Some(error) =
                KafkaError::from_code(response.error_code, response.error_message.as_deref())
            {
                self.shared.close("SASL authentication failed");
                return Err(failed(
                    error.message.clone().unwrap_or_else(|| error.to_string()),
                ));
            }
            match client
                .step(&response.auth_bytes)
                .map_err(|e| failed(e.to_string()))?
            {
                ClientStep::Send(next) => message = next,
                ClientStep::Done => {
                    self.replace_at = session_end(response.session_lifetime_ms);
                    tracing::debug!(broker = %self.shared.broker, mechanism = mechanism.name(), "authenticated");
                    return Ok(());
                }
            }
        }
        Err(failed(format!(
            "the exchange did not finish in {MAX_SASL_ROUNDS} round trips"
        )))
    }

    /// ApiVersions: v3 first; on UNSUPPORTED_VERSION the broker answers in v0 with its list,
    /// and the request is repeated in the highest version it offers (v0 if none).
    async fn negotiate_versions(&self) -> Result<HashMap<i16, (i16, i16)>> {
        let mut version = API_VERSIONS_FIRST_VERSION;
        // v3, then the broker's own highest version below it, then v0.
        for _ in 0..3 {
            let request = ApiVersionsRequest::default()
                .with_client_software_name(StrBytes::from_static_str("spate"))
                .with_client_software_version(StrBytes::from_static_str(env!("CARGO_PKG_VERSION")));
            let request = if version >= 3 {
                request
            } else {
                ApiVersionsRequest::default()
            };
            let api = ApiKey::ApiVersions;
            let correlation_id = self.next_correlation_id();
            let frame = self.encode(api, version, correlation_id, &request)?;
            let mut body = self
                .round_trip(api, correlation_id, frame, self.timeouts.request)
                .await?;
            ResponseHeader::decode(&mut body, api.response_header_version(version))
                .map_err(|e| self.decode_error(api, version, e))?;
            // Every ApiVersions response starts with its error code; on UNSUPPORTED_VERSION
            // the rest is in v0 whatever version was asked for.
            let error_code = match body.get(..2) {
                Some(b) => i16::from_be_bytes([b[0], b[1]]),
                None => {
                    return Err(self.decode_error(api, version, "empty body"));
                }
            };
            let decode_version = if error_code == code::UNSUPPORTED_VERSION {
                0
            } else {
                version
            };
            let response = ApiVersionsResponse::decode(&mut body, decode_version)
                .map_err(|e| self.decode_error(api, decode_version, e))?;
            let table: HashMap<i16, (i16, i16)> = response
                .api_keys
                .iter()
                .map(|k| (k.api_key, (k.min_version, k.max_version)))
                .collect();
            if error_code == code::UNSUPPORTED_VERSION && version > 0 {
                version = match table.get(&(api as i16)) {
                    Some(&(_, max)) if max < version => max.max(0),
                    _ => 0,
                };
                tracing::debug!(broker = %self.shared.broker, version, "retrying ApiVersions");
                continue;
            }
            if let Some(error) = KafkaError::from_code(error_code, None) {
                return Err(Error::Kafka {
                    context: format!("ApiVersions to {}", self.shared.broker),
                    error,
                });
            }
            return Ok(table);
        }
        Err(Error::Kafka {
            context: format!("ApiVersions to {}", self.shared.broker),
            error: KafkaError {
                code: code::UNSUPPORTED_VERSION,
                message: None,
            },
        })
    }
}

/// A request on the wire whose response has not been read yet (see [`Connection::start`]).
/// Dropping it is harmless: the response is read and discarded.
pub struct PendingResponse<R: Request> {
    rx: oneshot::Receiver<Result<Bytes>>,
    shared: Arc<Shared>,
    api: ApiKey,
    version: i16,
    timeout: Duration,
    _permit: OwnedSemaphorePermit,
    _request: PhantomData<fn() -> R>,
}

impl<R: Request> std::fmt::Debug for PendingResponse<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PendingResponse")
            .field("broker", &self.shared.broker)
            .field("api", &self.api)
            .finish_non_exhaustive()
    }
}

impl<R: Request> PendingResponse<R> {
    /// Waits for the response (up to the timeout given to `start`) and decodes it.
    pub async fn response(self) -> Result<R::Response> {
        let PendingResponse {
            rx,
            shared,
            api,
            version,
            timeout,
            _permit,
            ..
        } = self;
        let mut body = wait_response(&shared, rx, api, timeout).await?;
        ResponseHeader::decode(&mut body, api.response_header_version(version))
            .and_then(|_| R::Response::decode(&mut body, version))
            .map_err(|e| decode_error(&shared, api, version, e))
    }
}

/// Waits for a registered response; a timeout closes the connection.
async fn wait_response(
    shared: &Shared,
    rx: oneshot::Receiver<Result<Bytes>>,
    api: ApiKey,
    timeout: Duration,
) -> Result<Bytes> {
    match tokio::time::timeout(timeout, rx).await {
        Ok(Ok(result)) => result,
        Ok(Err(_)) => Err(shared.closed_error("the connection was closed")),
        Err(_) => {
            shared.close("a request timed out");
            Err(Error::RequestTimeout {
                broker: shared.broker.clone(),
                api,
                timeout_ms: timeout.as_millis() as u64,
            })
        }
    }
}

fn decode_error(shared: &Shared, api: ApiKey, version: i16, e: impl std::fmt::Display) -> Error {
    Error::Decode {
        broker: shared.broker.clone(),
        api,
        version,
        reason: format!("{e:#}"),
    }
}

fn encode_error(api: ApiKey, version: i16, e: impl std::fmt::Display) -> Error {
    Error::Encode {
        api,
        version,
        reason: format!("{e:#}"),
    }
}

/// The API key of a request type.
pub(crate) fn api_key_of<R: Request>() -> ApiKey {
    // `R::KEY` comes from the generated code, which only implements `Request` for known keys.
    ApiKey::try_from(R::KEY).unwrap_or(ApiKey::ApiVersions)
}

/// When to replace a session the broker gave `lifetime_ms` (0: no limit): at 85% of it, as
/// Kafka's clients re-authenticate at 85-95% (KIP-368).
fn session_end(lifetime_ms: i64) -> Option<Instant> {
    let lifetime_ms = u64::try_from(lifetime_ms).ok().filter(|&ms| ms > 0)?;
    Some(Instant::now() + Duration::from_millis(lifetime_ms.saturating_mul(85) / 100))
}

/// Reads frames and hands each to the oldest outstanding request until the stream fails.
///
/// `tls` says whether the stream is TLS: on a plaintext stream, a first frame that starts like a
/// TLS record means the port is a TLS listener, which is worth saying in plain words.
async fn read_loop(mut reader: ReadHalf<Box<dyn Stream>>, shared: Arc<Shared>, tls: bool) {
    let mut first = !tls;
    let reason = loop {
        let frame = match read_frame(&mut reader, first).await {
            Ok(frame) => frame,
            Err(reason) => break reason,
        };
        first = false;
        let Some(id) = frame.get(..4) else {
            break "response frame shorter than a header".to_string();
        };
        let actual = i32::from_be_bytes([id[0], id[1], id[2], id[3]]);
        let next = shared.lock().pending.pop_front();
        match next {
            Some((expected, waiter)) if expected == actual => {
                let _ = waiter.send(Ok(frame));
            }
            Some((expected, waiter)) => {
                let _ = waiter.send(Err(Error::CorrelationMismatch {
                    broker: shared.broker.clone(),
                    expected,
                    actual,
                }));
                break format!("correlation id {actual} out of order (expected {expected})");
            }
            None => break format!("unexpected response with correlation id {actual}"),
        }
    };
    shared.close(&reason);
}

async fn read_frame(
    reader: &mut ReadHalf<Box<dyn Stream>>,
    first_on_plaintext: bool,
) -> std::result::Result<Bytes, String> {
    let mut prefix = [0u8; 4];
    reader
        .read_exact(&mut prefix)
        .await
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::UnexpectedEof => "the broker closed the connection".to_string(),
            _ => format!("read failed: {e}"),
        })?;
    // A TLS record header (alert 0x15 or handshake 0x16, version 3.x) where a size should be.
    if first_on_plaintext && matches!(prefix, [0x15 | 0x16, 0x03, _, _]) {
        return Err(
            "the broker answered in TLS: this port is an SSL or SASL_SSL listener".to_string(),
        );
    }
    let size = i32::from_be_bytes(prefix);
    if size < 0 || size as usize > MAX_RESPONSE_BYTES {
        return Err(format!(
            "response frame of {size} bytes exceeds the limit of {MAX_RESPONSE_BYTES} bytes"
        ));
    }
    let mut body = vec![0u8; size as usize];
    reader
        .read_exact(&mut body)
        .await
        .map_err(|e| format!("read failed mid-frame: {e}"))?;
    Ok(Bytes::from(body))
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::api_versions_response::ApiVersion;
    use kafka_protocol::messages::{MetadataRequest, MetadataResponse};
    use tokio::net::{TcpListener, TcpStream};

    const TIMEOUTS: Timeouts = Timeouts {
        connect: Duration::from_secs(5),
        request: Duration::from_secs(5),
    };

    /// A request as the fake broker sees it.
    struct Seen {
        api_key: i16,
        version: i16,
        correlation_id: i32,
    }

    async fn read_request(stream: &mut TcpStream) -> Option<Seen> {
        let mut prefix = [0u8; 4];
        stream.read_exact(&mut prefix).await.ok()?;
        let mut body = vec![0u8; i32::from_be_bytes(prefix) as usize];
        stream.read_exact(&mut body).await.ok()?;
        Some(Seen {
            api_key: i16::from_be_bytes([body[0], body[1]]),
            version: i16::from_be_bytes([body[2], body[3]]),
            correlation_id: i32::from_be_bytes([body[4], body[5], body[6], body[7]]),
        })
    }

    async fn write_response(
        stream: &mut TcpStream,
        api: ApiKey,
        version: i16,
        correlation_id: i32,
        body: &impl Encodable,
    ) {
        let mut buf = BytesMut::new();
        buf.put_i32(0);
        ResponseHeader::default()
            .with_correlation_id(correlation_id)
            .encode(&mut buf, api.response_header_version(version))
            .expect("header");
        body.encode(&mut buf, version).expect("body");
        let size = (buf.len() - 4) as i32;
        buf[..4].copy_from_slice(&size.to_be_bytes());
        stream.write_all(&buf).await.expect("write");
    }

    fn api_versions(error_code: i16, apis: &[(ApiKey, i16, i16)]) -> ApiVersionsResponse {
        ApiVersionsResponse::default()
            .with_error_code(error_code)
            .with_api_keys(
                apis.iter()
                    .map(|(key, min, max)| {
                        ApiVersion::default()
                            .with_api_key(*key as i16)
                            .with_min_version(*min)
                            .with_max_version(*max)
                    })
                    .collect(),
            )
    }

    /// A broker that only knows ApiVersions v0..=2 (Kafka 2.3 era) and Metadata v0..=7.
    async fn old_broker(listener: TcpListener) -> Vec<(i16, i16)> {
        let (mut stream, _) = listener.accept().await.expect("accept");
        let apis = [(ApiKey::ApiVersions, 0, 2), (ApiKey::Metadata, 0, 7)];
        let mut seen = Vec::new();
        while let Some(request) = read_request(&mut stream).await {
            seen.push((request.api_key, request.version));
            let api = ApiKey::try_from(request.api_key).expect("known key");
            match api {
                ApiKey::ApiVersions if request.version > 2 => {
                    let body = api_versions(code::UNSUPPORTED_VERSION, &apis);
                    write_response(&mut stream, api, 0, request.correlation_id, &body).await;
                }
                ApiKey::ApiVersions => {
                    let body = api_versions(0, &apis);
                    write_response(
                        &mut stream,
                        api,
                        request.version,
                        request.correlation_id,
                        &body,
                    )
                    .await;
                }
                ApiKey::Metadata => {
                    let body = MetadataResponse::default();
                    write_response(
                        &mut stream,
                        api,
                        request.version,
                        request.correlation_id,
                        &body,
                    )
                    .await;
                }
                _ => break,
            }
        }
        seen
    }

    #[tokio::test]
    async fn api_versions_falls_back_when_the_broker_is_older() {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr").to_string();
        let broker = tokio::spawn(old_broker(listener));
        let conn = Connection::connect(&addr, "test", TIMEOUTS)
            .await
            .expect("connect");
        assert_eq!(conn.version::<MetadataRequest>().expect("metadata"), 7);
        assert!(matches!(
            conn.version::<kafka_protocol::messages::ProduceRequest>(),
            Err(Error::UnsupportedApi { broker_versions, .. }) if broker_versions == "none"
        ));
        // Requests pipelined on one connection are answered in order.
        let request = MetadataRequest::default();
        let requests = (0..10).map(|_| conn.send(&request, 7));
        for answer in futures::future::join_all(requests).await {
            answer.expect("metadata answer");
        }
        drop(conn);
        let seen = broker.await.expect("broker");
        assert_eq!(seen[0], (ApiKey::ApiVersions as i16, 3));
        assert_eq!(seen[1], (ApiKey::ApiVersions as i16, 2));
        assert_eq!(seen.len(), 12);
    }

    #[tokio::test]
    async fn a_silent_broker_times_out_and_closes_the_connection() {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr").to_string();
        let broker = tokio::spawn(async move {
            let (mut stream, _) = listener.accept().await.expect("accept");
            let request = read_request(&mut stream).await.expect("api versions");
            let body = api_versions(0, &[(ApiKey::ApiVersions, 0, 3), (ApiKey::Metadata, 0, 12)]);
            write_response(
                &mut stream,
                ApiKey::ApiVersions,
                3,
                request.correlation_id,
                &body,
            )
            .await;
            // Read the next request and never answer it.
            let _ = read_request(&mut stream).await;
            let _ = read_request(&mut stream).await;
        });
        let timeouts = Timeouts {
            connect: Duration::from_secs(5),
            request: Duration::from_millis(200),
        };
        let conn = Connection::connect(&addr, "test", timeouts)
            .await
            .expect("connect");
        let err = conn
            .send(&MetadataRequest::default(), 12)
            .await
            .expect_err("no answer");
        assert!(
            matches!(
                err,
                Error::RequestTimeout {
                    api: ApiKey::Metadata,
                    ..
                }
            ),
            "{err}"
        );
        assert!(conn.is_closed());
        drop(conn);
        broker.await.expect("broker");
    }

    /// Users' credentials for the fake SASL broker.
    struct OneUser(spate_auth::sasl::ScramCredential);

    impl spate_auth::sasl::CredentialStore for OneUser {
        fn scram(
            &self,
            user: &str,
            mechanism: spate_auth::sasl::Mechanism,
        ) -> Option<spate_auth::sasl::ScramCredential> {
            (user == "alice" && mechanism == self.0.mechanism).then(|| self.0.clone())
        }
    }

    /// A broker on a SASL listener: ApiVersions, then SaslHandshake and SaslAuthenticate run
    /// by spate-auth's server `Authenticator`, then Metadata. Sessions get `lifetime_ms`.
    async fn sasl_broker(listener: TcpListener, lifetime_ms: i64) {
        use kafka_protocol::messages::{SaslAuthenticateResponse, SaslHandshakeResponse};
        use spate_auth::sasl::{Authenticator, Mechanism, ScramCredential, Step};
        let credential =
            ScramCredential::generate(Mechanism::ScramSha512, "s3cret", 4096).expect("credential");
        let store = Arc::new(OneUser(credential));
        let (mut stream, _) = listener.accept().await.expect("accept");
        let mut authenticator = None;
        loop {
            let mut prefix = [0u8; 4];
            if stream.read_exact(&mut prefix).await.is_err() {
                return;
            }
            let mut body = vec![0u8; i32::from_be_bytes(prefix) as usize];
            stream.read_exact(&mut body).await.expect("body");
            let mut body = Bytes::from(body);
            let api = ApiKey::try_from(i16::from_be_bytes([body[0], body[1]])).expect("key");
            let version = i16::from_be_bytes([body[2], body[3]]);
            let header = RequestHeader::decode(&mut body, api.request_header_version(version))
                .expect("header");
            let id = header.correlation_id;
            match api {
                ApiKey::ApiVersions => {
                    let apis = [
                        (ApiKey::ApiVersions, 0, 3),
                        (ApiKey::Metadata, 0, 12),
                        (ApiKey::SaslHandshake, 0, 1),
                        (ApiKey::SaslAuthenticate, 0, 2),
                    ];
                    write_response(&mut stream, api, version, id, &api_versions(0, &apis)).await;
                }
                ApiKey::SaslHandshake => {
                    let request =
                        SaslHandshakeRequest::decode(&mut body, version).expect("handshake");
                    let response = SaslHandshakeResponse::default()
                        .with_mechanisms(vec![StrBytes::from_static_str("SCRAM-SHA-512")]);
                    let response = match Mechanism::parse(&request.mechanism) {
                        Some(Mechanism::ScramSha512) => {
                            authenticator = Some(Authenticator::new(
                                Mechanism::ScramSha512,
                                store.clone(),
                                None,
                            ));
                            response
                        }
                        _ => response.with_error_code(UNSUPPORTED_SASL_MECHANISM),
                    };
                    write_response(&mut stream, api, version, id, &response).await;
                }
                ApiKey::SaslAuthenticate => {
                    let request =
                        SaslAuthenticateRequest::decode(&mut body, version).expect("authenticate");
                    let step = authenticator
                        .as_mut()
                        .expect("handshake first")
                        .step(&request.auth_bytes);
                    let response = match step {
                        Ok(Step::Challenge(bytes)) => {
                            SaslAuthenticateResponse::default().with_auth_bytes(bytes.into())
                        }
                        Ok(Step::Done { response, .. }) => SaslAuthenticateResponse::default()
                            .with_auth_bytes(response.into())
                            .with_session_lifetime_ms(lifetime_ms),
                        Err(error) => SaslAuthenticateResponse::default()
                            .with_error_code(58)
                            .with_error_message(Some(StrBytes::from_string(
                                error.client_message(false),
                            ))),
                    };
                    write_response(&mut stream, api, version, id, &response).await;
                }
                ApiKey::Metadata => {
                    write_response(&mut stream, api, version, id, &MetadataResponse::default())
                        .await;
                }
                other => panic!("unexpected {other:?}"),
            }
        }
    }

    fn sasl_security(mechanism: spate_auth::sasl::Mechanism, password: &str) -> Security {
        Security::new(&crate::security::SecurityConfig {
            protocol: crate::security::SecurityProtocol::SaslPlaintext,
            tls: crate::security::TlsConfig::default(),
            sasl: Some(crate::security::SaslConfig {
                mechanism,
                username: "alice".to_string(),
                password: password.to_string(),
            }),
        })
        .expect("security")
    }

    async fn connect_to_sasl_broker(
        security: &Security,
        lifetime_ms: i64,
    ) -> (Result<Connection>, JoinHandle<()>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr").to_string();
        let broker = tokio::spawn(sasl_broker(listener, lifetime_ms));
        let conn = Connection::connect_with(&addr, "test", TIMEOUTS, security).await;
        (conn, broker)
    }

    #[tokio::test]
    async fn sasl_scram_authenticates_before_the_connection_is_handed_out() {
        let security = sasl_security(spate_auth::sasl::Mechanism::ScramSha512, "s3cret");
        let (conn, broker) = connect_to_sasl_broker(&security, 0).await;
        let conn = conn.expect("authenticated");
        conn.send(&MetadataRequest::default(), 12)
            .await
            .expect("metadata after authentication");
        assert!(!conn.is_closed(), "a session without a lifetime stays open");
        drop(conn);
        broker.await.expect("broker");
    }

    #[tokio::test]
    async fn a_session_with_a_lifetime_is_retired_before_it_ends() {
        let security = sasl_security(spate_auth::sasl::Mechanism::ScramSha512, "s3cret");
        let (conn, _broker) = connect_to_sasl_broker(&security, 100).await;
        let conn = conn.expect("authenticated");
        // 85% of 100 ms: the owner then opens (and authenticates) a new connection.
        let deadline = Instant::now() + Duration::from_secs(10);
        while !conn.is_closed() {
            assert!(Instant::now() < deadline, "the session was never retired");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    #[tokio::test]
    async fn a_wrong_password_is_an_authentication_error_with_the_broker_message() {
        let security = sasl_security(spate_auth::sasl::Mechanism::ScramSha512, "wrong");
        let (conn, _broker) = connect_to_sasl_broker(&security, 0).await;
        let error = conn.expect_err("refused").to_string();
        assert!(
            error.starts_with("SASL/SCRAM-SHA-512 authentication to 127.0.0.1:")
                && error.ends_with(
                    "failed: Authentication failed during authentication due to invalid \
                     credentials with SASL mechanism SCRAM-SHA-512"
                ),
            "{error}"
        );
    }

    #[tokio::test]
    async fn a_mechanism_the_broker_does_not_enable_names_what_it_offers() {
        let security = sasl_security(spate_auth::sasl::Mechanism::Plain, "s3cret");
        let (conn, _broker) = connect_to_sasl_broker(&security, 0).await;
        let error = conn.expect_err("refused");
        assert!(
            matches!(
                &error,
                Error::SaslMechanismNotEnabled { mechanism, offered, .. }
                    if mechanism == "PLAIN" && offered == "SCRAM-SHA-512"
            ),
            "{error}"
        );
    }

    #[tokio::test]
    async fn a_closed_port_is_a_connect_error() {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr").to_string();
        drop(listener);
        let err = Connection::connect(&addr, "test", TIMEOUTS)
            .await
            .expect_err("refused");
        assert!(matches!(err, Error::Connect { .. }), "{err}");
    }
}
