//! Connection creation rates, as Kafka's `ConnectionQuotas` enforces them (KIP-612).
//!
//! Server-wide, `max-connection-creation-rate` (Kafka's `max.connection.creation.rate`) slows
//! accepting down: above the rate the accept loop waits before taking the next connection, so
//! clients queue in the listen backlog instead of being refused. Per address, the
//! `connection_creation_rate` quota of IP entities (set with AlterClientQuotas) refuses: a
//! connection that takes its address over the rate is not counted and is closed once the
//! throttle time has passed, so a client that reconnects at once does not spin (Kafka's
//! delayed close). Both are measured like every quota (`spate_broker::quotas::rate`), each
//! throttle bounded by one window, as Kafka's.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use spate_broker::quotas::rate::{SampledRate, WINDOW_MS, Window};
use tokio::net::TcpStream;
use tokio::sync::watch;

use crate::kafka::Listener;

/// Refused connections held open at once until their delayed close; past this they are
/// closed at once, so a flood cannot hold file descriptors without bound.
const MAX_DELAYED_CLOSES: usize = 1024;

/// Address measurements kept before idle ones are dropped.
const MIN_PRUNE_AT: usize = 1024;

/// Connection creation rates across all listeners.
#[derive(Debug)]
pub struct ConnectionRates {
    /// `max.connection.creation.rate`, a broker config that may change at runtime.
    limits: Arc<spate_broker::dynamic::ConnectionLimits>,
    server: Mutex<SampledRate>,
    per_ip: Mutex<PerIpRates>,
    delayed_closes: Arc<AtomicUsize>,
    epoch: Instant,
    /// Refusals not yet logged, and when the last line went out (one a second at most).
    refused_since_log: AtomicU64,
    last_log: Mutex<Option<Instant>>,
}

#[derive(Debug, Default)]
struct PerIpRates {
    by_ip: HashMap<IpAddr, SampledRate>,
    prune_at: usize,
}

impl ConnectionRates {
    /// Rates with the server-wide cap of `limits` (new connections per second), if any.
    pub fn new(limits: Arc<spate_broker::dynamic::ConnectionLimits>) -> ConnectionRates {
        ConnectionRates {
            limits,
            server: Mutex::new(SampledRate::new(Window::ONE_WINDOW)),
            per_ip: Mutex::default(),
            delayed_closes: Arc::default(),
            epoch: Instant::now(),
            refused_since_log: AtomicU64::new(0),
            last_log: Mutex::default(),
        }
    }

    fn now_ms(&self) -> i64 {
        i64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(i64::MAX)
    }

    /// Counts a new connection server-wide; returns how long accepting must wait, if the
    /// server is above `max-connection-creation-rate`.
    pub fn accept_delay(&self) -> Option<Duration> {
        self.accept_delay_at(self.now_ms())
    }

    fn accept_delay_at(&self, now_ms: i64) -> Option<Duration> {
        let max_rate = self.limits.max_connection_creation_rate()?;
        let mut rate = self.server.lock().unwrap_or_else(|p| p.into_inner());
        rate.record(1.0, now_ms);
        let throttle = rate.throttle_ms(max_rate, now_ms, WINDOW_MS);
        (throttle > 0).then(|| Duration::from_millis(u64::from(throttle)))
    }

    /// Counts a new connection from `ip` against its quota of `quota` per second; returns the
    /// throttle if it goes over (the connection is then not counted and must be refused).
    pub fn ip_throttle(&self, ip: IpAddr, quota: f64) -> Option<Duration> {
        self.ip_throttle_at(ip, quota, self.now_ms())
    }

    fn ip_throttle_at(&self, ip: IpAddr, quota: f64, now_ms: i64) -> Option<Duration> {
        let mut rates = self.per_ip.lock().unwrap_or_else(|p| p.into_inner());
        if rates.by_ip.len() >= rates.prune_at.max(MIN_PRUNE_AT) {
            rates.by_ip.retain(|_, r| !r.is_idle(now_ms));
            rates.prune_at = rates.by_ip.len() * 2;
        }
        let rate = rates
            .by_ip
            .entry(ip)
            .or_insert_with(|| SampledRate::new(Window::ONE_WINDOW));
        rate.record(1.0, now_ms);
        let throttle = rate.throttle_ms(quota, now_ms, WINDOW_MS);
        if throttle == 0 {
            return None;
        }
        rate.record(-1.0, now_ms);
        Some(Duration::from_millis(u64::from(throttle)))
    }

    /// Closes a refused connection after `delay`, or at once when too many wait already.
    pub fn close_later(&self, stream: TcpStream, delay: Duration) {
        let waiting = Arc::clone(&self.delayed_closes);
        if waiting.fetch_add(1, Ordering::AcqRel) >= MAX_DELAYED_CLOSES {
            waiting.fetch_sub(1, Ordering::AcqRel);
            drop(stream);
            return;
        }
        tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            drop(stream);
            waiting.fetch_sub(1, Ordering::AcqRel);
        });
    }

    /// One WARN line a second at most, however many connections are refused.
    pub fn log_refusal(&self, ip: IpAddr, quota: f64) {
        let refused = self.refused_since_log.fetch_add(1, Ordering::Relaxed) + 1;
        let mut last = self.last_log.lock().unwrap_or_else(|p| p.into_inner());
        if last.is_none_or(|t| t.elapsed() >= Duration::from_secs(1)) {
            *last = Some(Instant::now());
            self.refused_since_log.store(0, Ordering::Relaxed);
            tracing::warn!(%ip, refused, connection_creation_rate = quota, "connections refused: connection_creation_rate quota of the address exceeded");
        }
    }
}

/// What the accept loop does with a new connection.
pub(crate) enum RateCheck {
    /// Serve it.
    Admit(TcpStream),
    /// Refused (and closed later).
    Refused,
    /// The server is stopping.
    Stopped,
}

impl Listener {
    /// Applies the connection creation rates to a new connection: refused when its address is
    /// above its `connection_creation_rate` quota, admitted after a wait when the server is
    /// above `max-connection-creation-rate`.
    pub(crate) async fn check_connection_rates(
        &self,
        stream: TcpStream,
        peer: SocketAddr,
        stop: &mut watch::Receiver<bool>,
    ) -> RateCheck {
        let ip = peer.ip();
        if let Some(quota) = self.broker.client_quotas().connection_rate(ip) {
            if let Some(delay) = self.rates.ip_throttle(ip, quota) {
                self.metrics.rate_limited.fetch_add(1, Ordering::Relaxed);
                self.rates.log_refusal(ip, quota);
                self.rates.close_later(stream, delay);
                return RateCheck::Refused;
            }
        }
        if let Some(delay) = self.rates.accept_delay() {
            self.metrics.accept_delays.fetch_add(1, Ordering::Relaxed);
            tokio::select! {
                _ = stop.wait_for(|s| *s) => return RateCheck::Stopped,
                _ = tokio::time::sleep(delay) => {}
            }
        }
        RateCheck::Admit(stream)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_rate(max_rate: Option<u32>) -> ConnectionRates {
        ConnectionRates::new(Arc::new(spate_broker::dynamic::ConnectionLimits::new(
            usize::MAX,
            usize::MAX,
            max_rate,
        )))
    }

    #[test]
    fn accepting_waits_above_the_server_wide_rate() {
        let rates = with_rate(Some(10));
        for i in 0..10 {
            assert_eq!(rates.accept_delay_at(i), None, "connection {i}");
        }
        // The 11th within the first second: wait until the rate is back at 10/s.
        assert_eq!(rates.accept_delay_at(10), Some(Duration::from_millis(100)));
        // Bounded by one window however far above.
        for _ in 0..100 {
            rates.accept_delay_at(20);
        }
        assert_eq!(rates.accept_delay_at(20), Some(Duration::from_secs(1)));
        assert_eq!(with_rate(None).accept_delay_at(0), None);
    }

    #[test]
    fn an_address_above_its_quota_is_refused_and_others_are_not() {
        let rates = with_rate(None);
        let flood: IpAddr = "127.0.0.2".parse().expect("ip");
        let other: IpAddr = "127.0.0.1".parse().expect("ip");
        for i in 0..5 {
            assert_eq!(rates.ip_throttle_at(flood, 5.0, i), None, "connection {i}");
        }
        let refused = rates.ip_throttle_at(flood, 5.0, 5).expect("over the rate");
        assert_eq!(refused, Duration::from_millis(200));
        // Refused connections do not count: once six fit in the time passed, the sixth is in.
        assert_eq!(
            rates.ip_throttle_at(flood, 5.0, 1_100),
            Some(Duration::from_millis(100))
        );
        assert_eq!(rates.ip_throttle_at(flood, 5.0, 1_200), None);
        assert_eq!(rates.ip_throttle_at(other, 5.0, 6), None);
    }
}
