//! Client quotas on a connection (KIP-219): measure what each request costs, put the throttle
//! into its response and mute the connection for that long.
//!
//! The broker owns the quotas and the measurements (`spate_broker::quotas`); this is the part
//! that needs the connection. Before a request goes to the broker, [`ConnectionQuota::start`]
//! finds the client's quota (nothing, after one atomic load, when no user or client-id quota
//! exists) and caps a fetch at one window of the consumer quota. When the broker answers, the
//! [`Ticket`] records the produce bytes, the fetch response bytes and the time the broker
//! spent (its handler and, for a reply that completes later, the time its future was actually
//! running, not waiting), raises the response's `throttle_time_ms` and mutes the connection:
//! the response goes out at once, and the reader takes no further request until the throttle
//! has passed.

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use kafka_protocol::messages::{ApiKey, RequestKind, ResponseKind};
use kafka_protocol::protocol::Encodable;
use spate_broker::quotas::{ClientQuota, ClientQuotas, QuotaCache};
use spate_protocol::Request;
use tokio::sync::watch;
use tokio::time::Instant;

/// One connection's quota state: its cached quota and until when it is muted (made on the
/// first request a quota applies to, so unlimited connections never touch it).
#[derive(Debug, Default)]
pub(crate) struct ConnectionQuota {
    cache: QuotaCache,
    mute: Option<Arc<Mute>>,
}

/// Until when a connection reads no request.
#[derive(Debug, Default)]
struct Mute {
    until: Mutex<Option<Instant>>,
}

impl Mute {
    fn extend(&self, throttle_ms: u32) {
        if throttle_ms == 0 {
            return;
        }
        let until = Instant::now() + Duration::from_millis(u64::from(throttle_ms));
        let mut current = self.until.lock().unwrap_or_else(|p| p.into_inner());
        if current.is_none_or(|c| c < until) {
            *current = Some(until);
        }
    }

    fn until(&self) -> Option<Instant> {
        *self.until.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl ConnectionQuota {
    /// Waits while the connection is muted. Returns false if the server stops meanwhile.
    pub(crate) async fn wait_unmuted(&self, stop: &mut watch::Receiver<bool>) -> bool {
        let Some(until) = self.mute.as_ref().and_then(|m| m.until()) else {
            return true;
        };
        if until <= Instant::now() {
            return true;
        }
        tokio::select! {
            _ = stop.wait_for(|s| *s) => false,
            _ = tokio::time::sleep_until(until) => true,
        }
    }

    /// Starts measuring a request, if a quota applies to its client.
    pub(crate) fn start(
        &mut self,
        quotas: &ClientQuotas,
        principal: &Arc<str>,
        request: &mut Request,
    ) -> Option<Ticket> {
        let client_id = request.client_id.as_deref().unwrap_or("");
        let quota = quotas.for_client(&mut self.cache, principal, client_id)?;
        if let (Some(max_bytes), RequestKind::Fetch(fetch)) =
            (quota.fetch_max_bytes(), &mut request.body)
        {
            fetch.max_bytes = fetch.max_bytes.min(max_bytes);
        }
        let produce_bytes = match request.api_key {
            ApiKey::Produce => request.size_bytes,
            _ => 0,
        };
        Some(Ticket {
            quota,
            mute: Arc::clone(self.mute.get_or_insert_with(Arc::default)),
            version: request.api_version,
            produce_bytes,
            started: Instant::now(),
        })
    }
}

/// What one request has cost so far.
#[derive(Debug)]
pub(crate) struct Ticket {
    quota: Arc<ClientQuota>,
    mute: Arc<Mute>,
    version: i16,
    produce_bytes: usize,
    started: Instant,
}

impl Ticket {
    /// Records what the broker's handler did: the produce bytes and its time.
    fn handled(&self) -> u32 {
        let now = self.quota.now_ms();
        let mut throttle = 0;
        if self.produce_bytes > 0 {
            throttle = self.quota.record_produce(self.produce_bytes, now);
        }
        if self.quota.measures_request_time() {
            let busy = self.started.elapsed();
            throttle = throttle.max(self.quota.record_request_time(busy, now));
        }
        throttle
    }

    /// A request answered with nothing (acks=0): the connection is still muted.
    pub(crate) fn finish_without_response(self) {
        self.mute.extend(self.handled());
    }

    /// A response ready now.
    pub(crate) fn finish_now(self, response: &mut ResponseKind) {
        let throttle = self.handled().max(self.record_response(response));
        self.mute.extend(throttle);
        spate_protocol::throttle::raise_throttle(response, throttle);
    }

    /// A response that completes later: measures the time its future runs and its size.
    pub(crate) fn finish_later(
        self,
        mut future: futures::future::BoxFuture<'static, ResponseKind>,
    ) -> impl Future<Output = ResponseKind> + Send + 'static {
        // Muted from now on, not from when the response is ready: a produce waiting for its
        // fsync must not let the client's next request in early.
        let handled = self.handled();
        self.mute.extend(handled);
        async move {
            let mut busy = Duration::ZERO;
            let mut response = std::future::poll_fn(|cx| {
                let started = std::time::Instant::now();
                let polled = future.as_mut().poll(cx);
                busy += started.elapsed();
                polled
            })
            .await;
            let mut later = self.record_response(&response);
            if self.quota.measures_request_time() {
                let now = self.quota.now_ms();
                later = later.max(self.quota.record_request_time(busy, now));
            }
            // The handler's throttle is already running; only what was found now adds to it.
            self.mute.extend(later);
            spate_protocol::throttle::raise_throttle(&mut response, handled.max(later));
            response
        }
    }

    /// Records a fetch response's size (Kafka counts the whole response).
    fn record_response(&self, response: &ResponseKind) -> u32 {
        match response {
            ResponseKind::Fetch(fetch) => {
                let bytes = fetch.compute_size(self.version).unwrap_or(0);
                self.quota.record_fetch(bytes, self.quota.now_ms())
            }
            _ => 0,
        }
    }
}
