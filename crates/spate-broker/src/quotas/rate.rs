//! A rate measured over sample windows, and the throttle that brings it back to a quota.
//!
//! This is Kafka's `Rate` over a `SampledStat` (`quota.window.num` = 11 samples of
//! `quota.window.size.seconds` = 1 s): a sample starts at the first value recorded after the
//! previous one ended, samples older than all the windows together are dropped, and the rate is
//! the sum of the samples over the time they cover. When a recorded value takes the rate over
//! the quota, the client is throttled for `(rate - quota) / quota * covered time`: after that
//! long without traffic the rate is back at the quota.
//!
//! One difference from Kafka, on purpose: Kafka pretends a new measurement already covers
//! ten empty windows, which lets a new client send ten seconds' worth of its quota at once and
//! then, every eleven seconds as that burst leaves the window, lets it burst again. Here the
//! covered time is the time really covered, but at least [`Window::min_covered_ms`]: 1 ms for
//! byte and time quotas (a client is paced from its first request, so its rate stays at the
//! quota over any few seconds) and one window for connection rates (a new address may open
//! its per-second quota of connections in its first second).
//!
//! Everything takes the time as an argument, so tests drive it with a made-up clock.

/// Kafka's `quota.window.num`.
pub const WINDOW_SAMPLES: usize = 11;
/// Kafka's `quota.window.size.seconds`, in ms.
pub const WINDOW_MS: i64 = 1_000;

/// How a rate is sampled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    /// Samples kept.
    pub samples: usize,
    /// Length of one sample.
    pub sample_ms: i64,
    /// The shortest time a rate is measured over.
    pub min_covered_ms: i64,
}

impl Window {
    /// Byte rates and request time: paced from the first request.
    pub const PACED: Window = Window {
        samples: WINDOW_SAMPLES,
        sample_ms: WINDOW_MS,
        min_covered_ms: 1,
    };

    /// Connection creation rates: a new measurement covers at least one window.
    pub const ONE_WINDOW: Window = Window {
        samples: WINDOW_SAMPLES,
        sample_ms: WINDOW_MS,
        min_covered_ms: WINDOW_MS,
    };

    /// All samples together: older values no longer count.
    pub fn span_ms(&self) -> i64 {
        self.sample_ms * self.samples as i64
    }
}

#[derive(Debug, Clone, Copy)]
struct Sample {
    start_ms: i64,
    value: f64,
}

/// A rate over sample windows.
#[derive(Debug, Clone)]
pub struct SampledRate {
    window: Window,
    samples: Vec<Sample>,
    current: usize,
    last_record_ms: i64,
}

impl SampledRate {
    /// An empty measurement.
    pub fn new(window: Window) -> SampledRate {
        SampledRate {
            window,
            samples: Vec::with_capacity(window.samples),
            current: 0,
            last_record_ms: i64::MIN,
        }
    }

    /// Adds `value` (bytes, connections, percent-seconds) at `now_ms`.
    pub fn record(&mut self, value: f64, now_ms: i64) {
        self.purge(now_ms);
        self.last_record_ms = now_ms;
        if self.samples.is_empty() {
            self.samples.push(Sample {
                start_ms: now_ms,
                value: 0.0,
            });
            self.current = 0;
        }
        if now_ms - self.samples[self.current].start_ms >= self.window.sample_ms {
            self.current = (self.current + 1) % self.window.samples;
            let fresh = Sample {
                start_ms: now_ms,
                value: 0.0,
            };
            match self.samples.get_mut(self.current) {
                Some(sample) => *sample = fresh,
                None => self.samples.push(fresh),
            }
        }
        self.samples[self.current].value += value;
    }

    /// Drops samples that ended longer ago than all the windows together.
    fn purge(&mut self, now_ms: i64) {
        let span = self.window.span_ms();
        let before = self.samples.len();
        self.samples.retain(|s| now_ms - s.start_ms < span);
        if self.samples.len() != before {
            // Keep the ring in start order with the newest last.
            self.samples.sort_by_key(|s| s.start_ms);
            self.current = self.samples.len().saturating_sub(1);
        }
    }

    /// The time the rate is measured over at `now_ms`.
    pub fn covered_ms(&mut self, now_ms: i64) -> i64 {
        self.purge(now_ms);
        let oldest = self
            .samples
            .iter()
            .map(|s| s.start_ms)
            .min()
            .unwrap_or(now_ms);
        (now_ms - oldest).max(self.window.min_covered_ms).max(1)
    }

    /// The rate per second at `now_ms`.
    pub fn rate(&mut self, now_ms: i64) -> f64 {
        let covered = self.covered_ms(now_ms);
        let total: f64 = self.samples.iter().map(|s| s.value).sum();
        total * 1000.0 / covered as f64
    }

    /// How long the client must stay quiet for the rate to come back to `quota`, at most
    /// `max_ms`; 0 when it is within the quota.
    pub fn throttle_ms(&mut self, quota: f64, now_ms: i64, max_ms: i64) -> u32 {
        let rate = self.rate(now_ms);
        throttle_ms(rate, quota, self.covered_ms(now_ms), max_ms)
    }

    /// When a value was last recorded (`i64::MIN` if never).
    pub fn last_record_ms(&self) -> i64 {
        self.last_record_ms
    }

    /// Whether nothing recorded is still inside the windows: the measurement is as good as new.
    pub fn is_idle(&self, now_ms: i64) -> bool {
        self.last_record_ms == i64::MIN
            || now_ms.saturating_sub(self.last_record_ms) >= self.window.span_ms()
    }
}

/// Kafka's `QuotaUtils.throttleTime`: `(rate - quota) / quota * window`, rounded, bounded by
/// `max_ms`; 0 when the rate is within the quota.
pub fn throttle_ms(rate: f64, quota: f64, covered_ms: i64, max_ms: i64) -> u32 {
    // NaN rates compare false: no throttle.
    if rate.partial_cmp(&quota) != Some(std::cmp::Ordering::Greater) || quota <= 0.0 {
        return 0;
    }
    let throttle = ((rate - quota) / quota * covered_ms as f64).round();
    throttle.min(max_ms as f64).max(0.0) as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_throttle_is_the_excess_over_the_quota_times_the_window() {
        // Kafka's QuotaUtilsTest: observed 100 against a quota of 50 over 2 s → 2 s.
        assert_eq!(throttle_ms(100.0, 50.0, 2_000, i64::MAX), 2_000);
        assert_eq!(throttle_ms(18.2, 18.2, 11_000, i64::MAX), 0);
        assert_eq!(throttle_ms(16.5, 20.4, 11_000, i64::MAX), 0);
        assert_eq!(throttle_ms(100.0, 50.0, 2_000, 1_000), 1_000, "bounded");
        assert_eq!(throttle_ms(f64::NAN, 50.0, 2_000, 1_000), 0);
    }

    #[test]
    fn a_new_client_is_paced_from_its_first_request() {
        let mut rate = SampledRate::new(Window::PACED);
        rate.record(1_000.0, 10_000);
        // 1000 bytes at 100 B/s take 10 s; the first millisecond is already spent.
        assert_eq!(rate.throttle_ms(100.0, 10_000, 60_000), 9_999);
        rate.record(1_000.0, 20_000);
        // 2000 bytes over 10 s at 100 B/s: another 10 s.
        assert_eq!(rate.throttle_ms(100.0, 20_000, 60_000), 10_000);
    }

    #[test]
    fn a_client_within_its_quota_is_never_slowed() {
        // 100 units every 1.0 s (at the quota) and every 1.1 s (below it): a throttle may be
        // reported, but it always ends before the client's next request is due.
        for gap_ms in [1_000, 1_100] {
            let mut rate = SampledRate::new(Window::PACED);
            let mut now = 0;
            rate.record(100.0, now);
            now += i64::from(rate.throttle_ms(100.0, now, 60_000));
            for _ in 0..50 {
                now += gap_ms;
                rate.record(100.0, now);
                let throttle = i64::from(rate.throttle_ms(100.0, now, 60_000));
                assert!(
                    throttle <= gap_ms,
                    "{throttle} ms at {now} with a {gap_ms} ms gap"
                );
            }
        }
    }

    #[test]
    fn a_greedy_client_is_held_at_the_quota() {
        // Requests of 10 units as fast as the throttle allows, for 60 s, at a quota of 100/s.
        let mut rate = SampledRate::new(Window::PACED);
        let mut now = 0i64;
        let mut sent = Vec::new();
        while now < 60_000 {
            rate.record(10.0, now);
            sent.push(now);
            now += i64::from(rate.throttle_ms(100.0, now, 11_000)).max(1);
        }
        // Any 8 s stretch carries 8 s worth of quota, within one request.
        for start in (0..50_000).step_by(500) {
            let n = sent
                .iter()
                .filter(|&&t| t >= start && t < start + 8_000)
                .count();
            assert!((79..=81).contains(&n), "{n} requests from {start} ms");
        }
    }

    #[test]
    fn old_samples_leave_the_window() {
        let mut rate = SampledRate::new(Window::PACED);
        rate.record(500.0, 0);
        assert_eq!(rate.covered_ms(5_000), 5_000);
        assert!((rate.rate(5_000) - 100.0).abs() < 1e-9);
        rate.record(100.0, 10_500);
        // Still within the 11 s span.
        assert!((rate.rate(10_500) - 600.0 / 10.5).abs() < 1e-9);
        // At 11 s the first sample is gone; only the one from 10.5 s counts.
        assert!((rate.rate(11_000) - 100.0 / 0.5).abs() < 1e-9);
        assert!(!rate.is_idle(11_000));
        assert!(rate.is_idle(21_500));
        assert_eq!(rate.rate(30_000), 0.0);
    }

    #[test]
    fn samples_roll_over_a_ring_of_eleven() {
        let mut rate = SampledRate::new(Window::PACED);
        for second in 0..30 {
            rate.record(1.0, second * 1_000);
        }
        assert_eq!(rate.samples.len(), WINDOW_SAMPLES);
        // The last 11 samples, from 19 s to 29 s, over the 10 s since 19 s.
        assert!((rate.rate(29_000) - 11.0 / 10.0).abs() < 1e-9);
    }

    #[test]
    fn connection_rates_allow_the_quota_in_the_first_window() {
        let mut rate = SampledRate::new(Window::ONE_WINDOW);
        for i in 0..5 {
            rate.record(1.0, 100 + i);
            assert_eq!(rate.throttle_ms(5.0, 100 + i, 1_000), 0, "connection {i}");
        }
        rate.record(1.0, 110);
        let throttle = rate.throttle_ms(5.0, 110, 1_000);
        assert_eq!(throttle, 200, "6 in a 1 s window against 5/s: 0.2 s");
        // Un-recording a refused connection leaves the measurement as it was.
        rate.record(-1.0, 110);
        assert_eq!(rate.throttle_ms(5.0, 110, 1_000), 0);
    }
}
