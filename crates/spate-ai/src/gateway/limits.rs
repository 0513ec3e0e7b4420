//! Rate limits of principals and virtual keys: requests and tokens per minute, each a token
//! bucket that holds a minute's worth and refills continuously (so a client may burst to its
//! limit, then is paced). A request takes one request at its start and needs a token left;
//! its prompt and completion tokens are taken once the answer is known (the bucket may go
//! below zero, holding the next requests back until it refills). Time comes in as an
//! argument; no I/O.

use std::collections::HashMap;
use std::time::{Duration, Instant};

/// A subject's limits per minute; `None` is unlimited.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Limits {
    /// Requests per minute.
    pub requests: Option<u64>,
    /// Tokens per minute.
    pub tokens: Option<u64>,
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    level: f64,
    at: Instant,
}

impl Bucket {
    fn refill(&mut self, per_minute: u64, now: Instant) {
        let capacity = per_minute as f64;
        let elapsed = now.saturating_duration_since(self.at).as_secs_f64();
        self.level = (self.level + elapsed * capacity / 60.0).min(capacity);
        self.at = now;
    }

    /// Time until `level` reaches `target`.
    fn until(&self, per_minute: u64, target: f64) -> Duration {
        let missing = (target - self.level).max(0.0);
        Duration::from_secs_f64(missing * 60.0 / per_minute.max(1) as f64)
    }
}

/// One limit's state as OpenAI's `x-ratelimit-*` headers tell it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Window {
    /// The limit per minute.
    pub limit: u64,
    /// What is left now.
    pub remaining: u64,
    /// Time until the bucket is full again.
    pub reset: Duration,
}

/// The limits' state after a request was let through or refused.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Status {
    /// The requests window, when limited.
    pub requests: Option<Window>,
    /// The tokens window, when limited.
    pub tokens: Option<Window>,
}

/// Which limit refused a request (OpenAI's error `type`: `requests` or `tokens`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exceeded {
    /// Requests per minute.
    Requests,
    /// Tokens per minute.
    Tokens,
}

/// A refusal: which limit, the windows, and when to come back.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Refused {
    /// The limit reached.
    pub exceeded: Exceeded,
    /// The windows.
    pub status: Status,
    /// When a request would pass.
    pub retry_after: Duration,
}

#[derive(Debug, Default)]
struct Buckets {
    requests: Option<Bucket>,
    tokens: Option<Bucket>,
}

/// The buckets of every subject seen (principals and virtual keys: as many as are configured
/// or authenticate).
#[derive(Debug, Default)]
pub struct RateLimiter {
    subjects: HashMap<String, Buckets>,
}

fn bucket(slot: &mut Option<Bucket>, per_minute: u64, now: Instant) -> &mut Bucket {
    let b = slot.get_or_insert(Bucket {
        level: per_minute as f64,
        at: now,
    });
    b.refill(per_minute, now);
    b
}

fn window(b: &Bucket, per_minute: u64) -> Window {
    Window {
        limit: per_minute,
        remaining: b.level.max(0.0).floor() as u64,
        reset: b.until(per_minute, per_minute as f64),
    }
}

impl RateLimiter {
    /// Lets a request of `subject` through (taking one request) or refuses it.
    pub fn admit(
        &mut self,
        subject: &str,
        limits: Limits,
        now: Instant,
    ) -> Result<Status, Refused> {
        if limits == Limits::default() {
            return Ok(Status::default());
        }
        let buckets = self.subjects.entry(subject.to_string()).or_default();
        let mut status = Status::default();
        let mut refused: Option<(Exceeded, Duration)> = None;
        if let Some(rpm) = limits.requests {
            let b = bucket(&mut buckets.requests, rpm, now);
            if b.level < 1.0 {
                refused = Some((Exceeded::Requests, b.until(rpm, 1.0)));
            }
            status.requests = Some(window(b, rpm));
        }
        if let Some(tpm) = limits.tokens {
            let b = bucket(&mut buckets.tokens, tpm, now);
            if b.level < 1.0 && refused.is_none() {
                refused = Some((Exceeded::Tokens, b.until(tpm, 1.0)));
            }
            status.tokens = Some(window(b, tpm));
        }
        if let Some((exceeded, retry_after)) = refused {
            return Err(Refused {
                exceeded,
                status,
                retry_after,
            });
        }
        if let (Some(rpm), Some(b)) = (limits.requests, buckets.requests.as_mut()) {
            b.level -= 1.0;
            status.requests = Some(window(b, rpm));
        }
        Ok(status)
    }

    /// Takes `tokens` from `subject`'s tokens bucket.
    pub fn spend_tokens(&mut self, subject: &str, limits: Limits, tokens: u64, now: Instant) {
        let Some(tpm) = limits.tokens else {
            return;
        };
        let buckets = self.subjects.entry(subject.to_string()).or_default();
        let b = bucket(&mut buckets.tokens, tpm, now);
        b.level -= tokens as f64;
    }
}

/// A duration as OpenAI writes `x-ratelimit-reset-*`: `20ms`, `1s`, `6m0s`.
pub fn reset_text(d: Duration) -> String {
    let ms = d.as_millis();
    if ms < 1000 {
        return format!("{ms}ms");
    }
    let secs = d.as_secs_f64();
    if secs < 60.0 {
        let s = format!("{secs:.3}");
        let s = s.trim_end_matches('0').trim_end_matches('.');
        return format!("{s}s");
    }
    let whole = d.as_secs();
    format!("{}m{}s", whole / 60, whole % 60)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_burst_to_the_limit_then_refill() {
        let now = Instant::now();
        let mut l = RateLimiter::default();
        let limits = Limits {
            requests: Some(2),
            tokens: None,
        };
        let s = l.admit("a", limits, now).expect("first");
        assert_eq!(s.requests.map(|w| w.remaining), Some(1));
        l.admit("a", limits, now).expect("second");
        let r = l.admit("a", limits, now).expect_err("third is refused");
        assert_eq!(r.exceeded, Exceeded::Requests);
        assert_eq!(r.retry_after, Duration::from_secs(30));
        assert!(l.admit("b", limits, now).is_ok(), "subjects are apart");
        assert!(l.admit("a", limits, now + Duration::from_secs(30)).is_ok());
    }

    #[test]
    fn tokens_spent_hold_back_later_requests() {
        let now = Instant::now();
        let mut l = RateLimiter::default();
        let limits = Limits {
            requests: None,
            tokens: Some(600),
        };
        l.admit("a", limits, now).expect("first");
        l.spend_tokens("a", limits, 700, now);
        let r = l.admit("a", limits, now).expect_err("over budget");
        assert_eq!(r.exceeded, Exceeded::Tokens);
        assert_eq!(
            r.retry_after,
            Duration::from_millis(10_100),
            "101 tokens at 10 a second"
        );
        assert_eq!(r.status.tokens.map(|w| w.remaining), Some(0));
    }

    #[test]
    fn reset_is_written_as_openai_does() {
        assert_eq!(reset_text(Duration::from_millis(20)), "20ms");
        assert_eq!(reset_text(Duration::from_secs(1)), "1s");
        assert_eq!(reset_text(Duration::from_millis(1500)), "1.5s");
        assert_eq!(reset_text(Duration::from_secs(360)), "6m0s");
    }
}
