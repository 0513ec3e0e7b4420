//! The exact-match cache: answers by their request's normalized body ([`key`]), each with
//! its own time to live, bounded by entries and bytes, least recently used evicted first.
//! Time comes in as an argument (tests control it); no I/O.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Map, Value as Json};

/// The key of a request: its JSON with object keys sorted and no whitespace, so requests that
/// differ only in key order or spacing share an answer. The provider is not part of it: the
/// same request answered by a fallback is the same answer.
pub fn key(body: &Map<String, Json>) -> String {
    fn sorted(v: &Json) -> Json {
        match v {
            Json::Object(m) => {
                let mut entries: Vec<(&String, &Json)> = m.iter().collect();
                entries.sort_by(|a, b| a.0.cmp(b.0));
                Json::Object(
                    entries
                        .into_iter()
                        .map(|(k, v)| (k.clone(), sorted(v)))
                        .collect(),
                )
            }
            Json::Array(a) => Json::Array(a.iter().map(sorted).collect()),
            other => other.clone(),
        }
    }
    sorted(&Json::Object(body.clone())).to_string()
}

struct Entry<V> {
    value: Arc<V>,
    bytes: usize,
    expires: Instant,
    used: u64,
}

/// Answers `V` by key.
pub struct Cache<V> {
    entries: HashMap<String, Entry<V>>,
    /// Entries by last use, oldest first.
    by_use: BTreeMap<u64, String>,
    tick: u64,
    bytes: usize,
    max_entries: usize,
    max_bytes: usize,
}

impl<V> Cache<V> {
    /// An empty cache holding at most `max_entries` and `max_bytes`.
    pub fn new(max_entries: usize, max_bytes: usize) -> Cache<V> {
        Cache {
            entries: HashMap::new(),
            by_use: BTreeMap::new(),
            tick: 0,
            bytes: 0,
            max_entries,
            max_bytes,
        }
    }

    /// Entries held.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether it holds nothing.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Bytes held.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    fn remove(&mut self, key: &str) {
        if let Some(e) = self.entries.remove(key) {
            self.by_use.remove(&e.used);
            self.bytes -= e.bytes;
        }
    }

    /// The answer for `key` if it has not expired at `now`.
    pub fn get(&mut self, key: &str, now: Instant) -> Option<Arc<V>> {
        let expired = self.entries.get(key)?.expires <= now;
        if expired {
            self.remove(key);
            return None;
        }
        self.tick += 1;
        let tick = self.tick;
        let entry = self.entries.get_mut(key)?;
        self.by_use.remove(&entry.used);
        entry.used = tick;
        self.by_use.insert(tick, key.to_string());
        Some(Arc::clone(&entry.value))
    }

    /// Keeps `value` (about `bytes` large with its key) for `ttl` from `now`, evicting the least
    /// recently used; an answer larger than the whole cache is not kept.
    pub fn insert(&mut self, key: String, value: V, bytes: usize, ttl: Duration, now: Instant) {
        let bytes = bytes + key.len();
        if bytes > self.max_bytes || ttl.is_zero() {
            return;
        }
        self.remove(&key);
        while self.entries.len() >= self.max_entries || self.bytes + bytes > self.max_bytes {
            let Some((_, oldest)) = self.by_use.pop_first() else {
                break;
            };
            if let Some(e) = self.entries.remove(&oldest) {
                self.bytes -= e.bytes;
            }
        }
        self.tick += 1;
        self.by_use.insert(self.tick, key.clone());
        self.bytes += bytes;
        self.entries.insert(
            key,
            Entry {
                value: Arc::new(value),
                bytes,
                expires: now + ttl,
                used: self.tick,
            },
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn object(v: Json) -> Map<String, Json> {
        match v {
            Json::Object(m) => m,
            _ => Map::new(),
        }
    }

    #[test]
    fn key_order_and_spacing_do_not_matter() {
        let a = object(json!({"model": "m", "messages": [{"role": "user", "content": "x"}]}));
        let b: Map<String, Json> =
            serde_json::from_str(r#"{ "messages":[{"content":"x","role":"user"}], "model":"m"}"#)
                .expect("json");
        assert_eq!(key(&a), key(&b));
        let c = object(json!({"model": "m", "messages": [{"role": "user", "content": "y"}]}));
        assert_ne!(key(&a), key(&c));
    }

    #[test]
    fn entries_expire_and_the_least_recently_used_goes_first() {
        let now = Instant::now();
        let mut cache: Cache<u32> = Cache::new(2, 1000);
        cache.insert("a".into(), 1, 10, Duration::from_secs(5), now);
        cache.insert("b".into(), 2, 10, Duration::from_secs(60), now);
        assert_eq!(cache.get("a", now).as_deref(), Some(&1));
        cache.insert("c".into(), 3, 10, Duration::from_secs(60), now);
        assert!(cache.get("b", now).is_none(), "b was least recently used");
        assert_eq!(
            cache.get("a", now + Duration::from_secs(6)),
            None,
            "a expired"
        );
        assert_eq!(cache.get("c", now).as_deref(), Some(&3));
        assert_eq!(cache.len(), 1);
    }

    #[test]
    fn bytes_are_bounded() {
        let now = Instant::now();
        let mut cache: Cache<u32> = Cache::new(100, 50);
        for (i, k) in ["a", "b", "c"].into_iter().enumerate() {
            cache.insert(k.into(), i as u32, 19, Duration::from_secs(60), now);
        }
        assert_eq!(cache.len(), 2);
        assert!(cache.bytes() <= 50);
        cache.insert("huge".into(), 9, 100, Duration::from_secs(60), now);
        assert!(cache.get("huge", now).is_none());
    }
}
