//! Client quotas as Kafka models them (KIP-13, KIP-55, KIP-124, KIP-219, KIP-546, KIP-612):
//! the quota configs, kept in the internal compacted topic `__client_quotas`, their
//! administration (DescribeClientQuotas, AlterClientQuotas, in `admin.rs`), and the measuring
//! the connection loop asks for on every request (`rate.rs` holds the arithmetic).
//!
//! Entities are a user, a client id, a user with a client id, or an IP address; any name may
//! be the default (`<default>` in Kafka's tools, null on the wire). The quota of a
//! (user, client id) pair for one key is the first of Kafka's eight levels that sets that key:
//! user+client-id, user+default client, user, default user+client-id, default user+default
//! client, default user, client-id, default client. The level also decides who shares a
//! measurement: a quota on a user is shared by all its client ids, a default quota is measured
//! per user (or per client id), as Kafka's metric tags do.
//!
//! The broker never sees sockets: the server asks [`ClientQuotas::for_client`] for a
//! connection's [`ClientQuota`] (nothing, at the cost of one atomic load, when no user or
//! client-id quota exists), records what each request cost, puts the throttle into the
//! response and mutes the connection for that long. Connection creation rates per IP
//! ([`ClientQuotas::connection_rate`]) are enforced by the server's accept loop.

mod admin;
pub mod rate;

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use parking_lot::{Mutex, RwLock};
use serde::{Deserialize, Serialize};

use crate::Broker;
use crate::error::BrokerError;
use rate::{SampledRate, Window};

/// The internal topic quota configs live in.
pub const QUOTAS_TOPIC: &str = "__client_quotas";

/// Kafka's entity type names.
pub const USER: &str = "user";
/// See [`USER`].
pub const CLIENT_ID: &str = "client-id";
/// See [`USER`].
pub const IP: &str = "ip";

/// A name in a quota entity.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum EntityName {
    /// The default for its type (null on the wire, `<default>` in Kafka's tools).
    Default,
    /// One user, client id or address.
    Named(String),
}

impl EntityName {
    /// From the wire, where null is the default.
    pub fn from_wire(name: Option<&str>) -> EntityName {
        match name {
            None => EntityName::Default,
            Some(n) => EntityName::Named(n.to_string()),
        }
    }

    /// For the wire.
    pub fn as_wire(&self) -> Option<&str> {
        match self {
            EntityName::Default => None,
            EntityName::Named(n) => Some(n),
        }
    }
}

impl std::fmt::Display for EntityName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            EntityName::Default => f.write_str("<default>"),
            EntityName::Named(n) => f.write_str(n),
        }
    }
}

/// Whom a quota applies to.
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct QuotaEntity {
    /// The user (the principal's name), if part of the entity.
    pub user: Option<EntityName>,
    /// The client id, if part of the entity.
    pub client_id: Option<EntityName>,
    /// The client address, if part of the entity (never with a user or client id).
    pub ip: Option<EntityName>,
}

impl QuotaEntity {
    /// The entity's (type, name) pairs in Kafka's order: user, client-id, ip.
    pub fn components(&self) -> Vec<(&'static str, &EntityName)> {
        [
            (USER, &self.user),
            (CLIENT_ID, &self.client_id),
            (IP, &self.ip),
        ]
        .into_iter()
        .filter_map(|(t, n)| n.as_ref().map(|n| (t, n)))
        .collect()
    }

    /// The name of one type, if part of the entity.
    pub fn get(&self, entity_type: &str) -> Option<&EntityName> {
        match entity_type {
            USER => self.user.as_ref(),
            CLIENT_ID => self.client_id.as_ref(),
            IP => self.ip.as_ref(),
            _ => None,
        }
    }

    fn is_user_or_client(&self) -> bool {
        self.ip.is_none() && (self.user.is_some() || self.client_id.is_some())
    }
}

impl std::fmt::Display for QuotaEntity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let parts: Vec<String> = self
            .components()
            .into_iter()
            .map(|(t, n)| format!("{t}={n}"))
            .collect();
        write!(f, "{{{}}}", parts.join(", "))
    }
}

/// The quota keys Spate enforces, with Kafka's names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum QuotaKey {
    /// Bytes per second of produce requests.
    ProducerByteRate,
    /// Bytes per second of fetch responses.
    ConsumerByteRate,
    /// Time spent handling requests, in percent of one thread.
    RequestPercentage,
    /// New connections per second from one address.
    ConnectionCreationRate,
}

impl QuotaKey {
    /// Every key.
    pub const ALL: [QuotaKey; 4] = [
        QuotaKey::ProducerByteRate,
        QuotaKey::ConsumerByteRate,
        QuotaKey::RequestPercentage,
        QuotaKey::ConnectionCreationRate,
    ];

    /// Kafka's name.
    pub fn name(self) -> &'static str {
        match self {
            QuotaKey::ProducerByteRate => "producer_byte_rate",
            QuotaKey::ConsumerByteRate => "consumer_byte_rate",
            QuotaKey::RequestPercentage => "request_percentage",
            QuotaKey::ConnectionCreationRate => "connection_creation_rate",
        }
    }

    /// From Kafka's name.
    pub fn parse(name: &str) -> Option<QuotaKey> {
        QuotaKey::ALL.into_iter().find(|k| k.name() == name)
    }

    /// Whether the key applies to IP entities (otherwise to user and client-id entities).
    pub fn is_ip_key(self) -> bool {
        self == QuotaKey::ConnectionCreationRate
    }

    /// The largest whole value of an integral key (Kafka's LONG and INT config types);
    /// `None` for `request_percentage`, a DOUBLE.
    fn integral_max(self) -> Option<f64> {
        match self {
            QuotaKey::ProducerByteRate | QuotaKey::ConsumerByteRate => Some(i64::MAX as f64),
            QuotaKey::ConnectionCreationRate => Some(f64::from(i32::MAX)),
            QuotaKey::RequestPercentage => None,
        }
    }
}

/// Quota values of one entity.
pub type QuotaValues = BTreeMap<QuotaKey, f64>;

/// What a request costs, by quota.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum QuotaType {
    Produce,
    Fetch,
    Request,
}

impl QuotaType {
    fn key(self) -> QuotaKey {
        match self {
            QuotaType::Produce => QuotaKey::ProducerByteRate,
            QuotaType::Fetch => QuotaKey::ConsumerByteRate,
            QuotaType::Request => QuotaKey::RequestPercentage,
        }
    }

    /// The longest throttle: the whole measurement span for bytes, one window for request
    /// time (Kafka's `ClientRequestQuotaManager` bound).
    fn max_throttle_ms(self) -> i64 {
        match self {
            QuotaType::Produce | QuotaType::Fetch => Window::PACED.span_ms(),
            QuotaType::Request => rate::WINDOW_MS,
        }
    }
}

/// Who shares a measurement: Kafka's (user, client-id) metric tags, empty where the level
/// that set the quota does not distinguish.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct SensorKey {
    quota: QuotaType,
    user: String,
    client_id: String,
}

/// One shared measurement.
#[derive(Debug)]
struct Sensor {
    rate: Mutex<SampledRate>,
}

/// A quota and the measurement it is checked against.
#[derive(Debug, Clone)]
struct Limit {
    sensor: Arc<Sensor>,
    quota: f64,
    max_throttle_ms: i64,
}

impl Limit {
    fn record(&self, value: f64, now_ms: i64) -> u32 {
        let mut rate = self.sensor.rate.lock();
        rate.record(value, now_ms);
        rate.throttle_ms(self.quota, now_ms, self.max_throttle_ms)
    }
}

/// The quotas of one (user, client id) pair, with their measurements. The server gets one per
/// connection from [`ClientQuotas::for_client`] and reports what each request cost; each
/// `record_*` returns how long the client must now wait (0 within its quota).
#[derive(Debug)]
pub struct ClientQuota {
    epoch: Instant,
    produce: Option<Limit>,
    fetch: Option<Limit>,
    request: Option<Limit>,
}

impl ClientQuota {
    /// Milliseconds on the quotas' monotonic clock, for the `record_*` calls.
    pub fn now_ms(&self) -> i64 {
        i64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(i64::MAX)
    }

    /// A produce request of `bytes` (the request's size, as Kafka counts it).
    pub fn record_produce(&self, bytes: usize, now_ms: i64) -> u32 {
        self.produce
            .as_ref()
            .map_or(0, |l| l.record(bytes as f64, now_ms))
    }

    /// A fetch response of `bytes`.
    pub fn record_fetch(&self, bytes: usize, now_ms: i64) -> u32 {
        self.fetch
            .as_ref()
            .map_or(0, |l| l.record(bytes as f64, now_ms))
    }

    /// Time the broker spent handling a request (Kafka's request handler and network thread
    /// time, as a percentage of one thread over time).
    pub fn record_request_time(&self, busy: Duration, now_ms: i64) -> u32 {
        self.request
            .as_ref()
            .map_or(0, |l| l.record(busy.as_secs_f64() * 100.0, now_ms))
    }

    /// Whether the request time is measured (so the server knows to time requests).
    pub fn measures_request_time(&self) -> bool {
        self.request.is_some()
    }

    /// The most a fetch response may carry: one window of the consumer quota, so a single
    /// response cannot overshoot the quota by much (Kafka bounds it by the whole measurement).
    pub fn fetch_max_bytes(&self) -> Option<i32> {
        self.fetch.as_ref().map(|l| {
            let bytes = l.quota * rate::WINDOW_MS as f64 / 1000.0;
            bytes.clamp(1.0, f64::from(i32::MAX)) as i32
        })
    }
}

/// A connection's cached [`ClientQuota`], valid until the quota configs change.
#[derive(Debug, Default)]
pub struct QuotaCache {
    cached: Option<CachedQuota>,
}

#[derive(Debug)]
struct CachedQuota {
    generation: u64,
    principal: Arc<str>,
    client_id: String,
    quota: Option<Arc<ClientQuota>>,
}

/// Measurements by who shares them; idle ones nobody holds are dropped as the map grows.
#[derive(Debug, Default)]
struct Sensors {
    by_key: HashMap<SensorKey, Arc<Sensor>>,
    prune_at: usize,
}

const MIN_PRUNE_AT: usize = 1024;

/// Connection creation rates of IP entities.
#[derive(Debug, Default)]
struct IpRates {
    by_ip: HashMap<IpAddr, f64>,
    default: Option<f64>,
}

/// The quota configs and the measurements of the clients they apply to.
#[derive(Debug)]
pub struct ClientQuotas {
    entries: RwLock<BTreeMap<QuotaEntity, QuotaValues>>,
    /// Bumped on every change, so connections re-resolve their quotas.
    generation: AtomicU64,
    /// Whether any user or client-id quota exists (the hot path checks only this).
    clients_limited: AtomicBool,
    /// Whether any IP connection rate exists.
    ips_limited: AtomicBool,
    ip_rates: RwLock<IpRates>,
    sensors: Mutex<Sensors>,
    epoch: Instant,
    /// Held by an alteration from reading the current values to applying its changes, so
    /// concurrent alterations land in the log in the order they are applied.
    writer: tokio::sync::Mutex<()>,
}

impl Default for ClientQuotas {
    fn default() -> ClientQuotas {
        ClientQuotas {
            entries: RwLock::default(),
            generation: AtomicU64::new(0),
            clients_limited: AtomicBool::new(false),
            ips_limited: AtomicBool::new(false),
            ip_rates: RwLock::default(),
            sensors: Mutex::default(),
            epoch: Instant::now(),
            writer: tokio::sync::Mutex::new(()),
        }
    }
}

/// The key of a `__client_quotas` record: one entity and one quota key (so compaction keeps
/// the last value of each), as Kafka's `ClientQuotaRecord`.
#[derive(Debug, Serialize, Deserialize)]
struct RecordKey {
    entity: BTreeMap<String, Option<String>>,
    key: String,
}

#[derive(Debug, Serialize, Deserialize)]
struct RecordValue {
    value: f64,
}

fn record_key(entity: &QuotaEntity, key: QuotaKey) -> Vec<u8> {
    let record = RecordKey {
        entity: entity
            .components()
            .into_iter()
            .map(|(t, n)| (t.to_string(), n.as_wire().map(str::to_string)))
            .collect(),
        key: key.name().to_string(),
    };
    serde_json::to_vec(&record).unwrap_or_default()
}

fn parse_record_key(bytes: &[u8]) -> Option<(QuotaEntity, QuotaKey)> {
    let record: RecordKey = serde_json::from_slice(bytes).ok()?;
    let mut entity = QuotaEntity::default();
    for (entity_type, name) in record.entity {
        let name = Some(EntityName::from_wire(name.as_deref()));
        match entity_type.as_str() {
            USER => entity.user = name,
            CLIENT_ID => entity.client_id = name,
            IP => entity.ip = name,
            _ => return None,
        }
    }
    Some((entity, QuotaKey::parse(&record.key)?))
}

/// The user name of a principal (`User:alice` → `alice`), as Kafka's quotas see it.
fn user_of(principal: &str) -> &str {
    principal
        .split_once(':')
        .map_or(principal, |(_, name)| name)
}

impl ClientQuotas {
    /// Rebuilds the quota configs from `__client_quotas` (created with the first quota).
    /// Blocking.
    pub(crate) fn load(&self, broker: &Broker) -> Result<(), BrokerError> {
        {
            let mut entries = self.entries.write();
            broker.replay_state_topic(QUOTAS_TOPIC, |offset, key, value| {
                let Some((entity, quota_key)) = key.and_then(parse_record_key) else {
                    tracing::warn!(topic = QUOTAS_TOPIC, offset, "skipped a record without a readable key");
                    return;
                };
                match value.map(serde_json::from_slice::<RecordValue>) {
                    None => remove_value(&mut entries, &entity, quota_key),
                    Some(Ok(v)) => {
                        entries.entry(entity).or_default().insert(quota_key, v.value);
                    }
                    Some(Err(err)) => {
                        tracing::warn!(topic = QUOTAS_TOPIC, offset, error = %err, "skipped an unreadable quota");
                    }
                }
            })?;
        }
        self.refresh();
        Ok(())
    }

    /// Every quota config.
    pub fn entries(&self) -> BTreeMap<QuotaEntity, QuotaValues> {
        self.entries.read().clone()
    }

    /// Applies changes already made durable: `Some(value)` sets, `None` removes.
    fn apply(&self, changes: &[(QuotaEntity, QuotaKey, Option<f64>)]) {
        {
            let mut entries = self.entries.write();
            for (entity, key, value) in changes {
                match value {
                    Some(v) => {
                        entries.entry(entity.clone()).or_default().insert(*key, *v);
                    }
                    None => remove_value(&mut entries, entity, *key),
                }
            }
        }
        self.refresh();
    }

    /// Recomputes what the hot paths read after the configs changed.
    fn refresh(&self) {
        let entries = self.entries.read();
        let clients = entries
            .iter()
            .any(|(e, values)| e.is_user_or_client() && values.keys().any(|k| !k.is_ip_key()));
        let mut ips = IpRates::default();
        for (entity, values) in entries.iter() {
            let (Some(ip), Some(rate)) =
                (&entity.ip, values.get(&QuotaKey::ConnectionCreationRate))
            else {
                continue;
            };
            match ip {
                EntityName::Default => ips.default = Some(*rate),
                EntityName::Named(name) => {
                    if let Ok(addr) = name.parse::<IpAddr>() {
                        ips.by_ip.insert(addr, *rate);
                    }
                }
            }
        }
        let ips_limited = ips.default.is_some() || !ips.by_ip.is_empty();
        *self.ip_rates.write() = ips;
        self.clients_limited.store(clients, Ordering::Release);
        self.ips_limited.store(ips_limited, Ordering::Release);
        self.generation.fetch_add(1, Ordering::AcqRel);
    }

    /// Milliseconds on the quotas' monotonic clock, for the `record_*` calls.
    pub fn now_ms(&self) -> i64 {
        i64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(i64::MAX)
    }

    /// The quotas of a connection's (principal, client id), cached in `cache` until the
    /// configs change. `None`, after one atomic load, when no user or client-id quota exists
    /// or none applies to this client.
    pub fn for_client(
        &self,
        cache: &mut QuotaCache,
        principal: &Arc<str>,
        client_id: &str,
    ) -> Option<Arc<ClientQuota>> {
        if !self.clients_limited.load(Ordering::Acquire) {
            return None;
        }
        let generation = self.generation.load(Ordering::Acquire);
        if let Some(c) = &cache.cached {
            if c.generation == generation && c.principal == *principal && c.client_id == client_id {
                return c.quota.clone();
            }
        }
        let quota = self.resolve(user_of(principal), client_id, self.now_ms());
        cache.cached = Some(CachedQuota {
            generation,
            principal: Arc::clone(principal),
            client_id: client_id.to_string(),
            quota: quota.clone(),
        });
        quota
    }

    /// Resolves every quota type of a (user, client id) pair to its level and measurement.
    fn resolve(&self, user: &str, client_id: &str, now_ms: i64) -> Option<Arc<ClientQuota>> {
        let found: Vec<(QuotaType, SensorKey, f64)> = {
            let entries = self.entries.read();
            [QuotaType::Produce, QuotaType::Fetch, QuotaType::Request]
                .into_iter()
                .filter_map(|quota| {
                    resolve_level(&entries, user, client_id, quota.key()).map(
                        |(user_tag, client_tag, value)| {
                            let key = SensorKey {
                                quota,
                                user: user_tag,
                                client_id: client_tag,
                            };
                            (quota, key, value)
                        },
                    )
                })
                .collect()
        };
        if found.is_empty() {
            return None;
        }
        let mut sensors = self.sensors.lock();
        sensors.prune_if_large(now_ms);
        let mut out = ClientQuota {
            epoch: self.epoch,
            produce: None,
            fetch: None,
            request: None,
        };
        for (quota, key, value) in found {
            let sensor = Arc::clone(sensors.by_key.entry(key).or_insert_with(|| {
                Arc::new(Sensor {
                    rate: Mutex::new(SampledRate::new(Window::PACED)),
                })
            }));
            let limit = Some(Limit {
                sensor,
                quota: value,
                max_throttle_ms: quota.max_throttle_ms(),
            });
            match quota {
                QuotaType::Produce => out.produce = limit,
                QuotaType::Fetch => out.fetch = limit,
                QuotaType::Request => out.request = limit,
            }
        }
        Some(Arc::new(out))
    }

    /// The connection creation rate of an address (its own, else the default IP quota), when
    /// one is set.
    pub fn connection_rate(&self, ip: IpAddr) -> Option<f64> {
        if !self.ips_limited.load(Ordering::Acquire) {
            return None;
        }
        let rates = self.ip_rates.read();
        rates.by_ip.get(&ip).copied().or(rates.default)
    }
}

impl Sensors {
    /// Drops measurements that no connection holds and that have nothing left in their
    /// windows (a new one would measure the same), once the map has doubled since last time.
    fn prune_if_large(&mut self, now_ms: i64) {
        if self.by_key.len() < self.prune_at.max(MIN_PRUNE_AT) {
            return;
        }
        self.by_key
            .retain(|_, s| Arc::strong_count(s) > 1 || !s.rate.lock().is_idle(now_ms));
        self.prune_at = self.by_key.len() * 2;
    }
}

fn remove_value(
    entries: &mut BTreeMap<QuotaEntity, QuotaValues>,
    entity: &QuotaEntity,
    key: QuotaKey,
) {
    if let Some(values) = entries.get_mut(entity) {
        values.remove(&key);
        if values.is_empty() {
            entries.remove(entity);
        }
    }
}

/// Kafka's precedence for the quota `key` of (user, client id): the first level that sets it,
/// with the (user, client-id) tags of the measurement it is checked against.
fn resolve_level(
    entries: &BTreeMap<QuotaEntity, QuotaValues>,
    user: &str,
    client_id: &str,
    key: QuotaKey,
) -> Option<(String, String, f64)> {
    let named = |n: &str| Some(EntityName::Named(n.to_string()));
    let default = || Some(EntityName::Default);
    let (u, c) = (user.to_string(), client_id.to_string());
    let levels = [
        (named(user), named(client_id), u.clone(), c.clone()),
        (named(user), default(), u.clone(), c.clone()),
        (named(user), None, u.clone(), String::new()),
        (default(), named(client_id), u.clone(), c.clone()),
        (default(), default(), u.clone(), c.clone()),
        (default(), None, u.clone(), String::new()),
        (None, named(client_id), String::new(), c.clone()),
        (None, default(), String::new(), c),
    ];
    levels
        .into_iter()
        .find_map(|(user, client_id, user_tag, client_tag)| {
            let entity = QuotaEntity {
                user,
                client_id,
                ip: None,
            };
            entries
                .get(&entity)
                .and_then(|values| values.get(&key))
                .map(|value| (user_tag, client_tag, *value))
        })
}

impl Broker {
    /// Client quota configs and measurements.
    pub fn client_quotas(&self) -> &ClientQuotas {
        &self.client_quotas
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entity(user: Option<Option<&str>>, client_id: Option<Option<&str>>) -> QuotaEntity {
        QuotaEntity {
            user: user.map(EntityName::from_wire),
            client_id: client_id.map(EntityName::from_wire),
            ip: None,
        }
    }

    fn quotas(levels: &[(QuotaEntity, f64)]) -> ClientQuotas {
        let quotas = ClientQuotas::default();
        let changes: Vec<_> = levels
            .iter()
            .map(|(e, v)| (e.clone(), QuotaKey::ProducerByteRate, Some(*v)))
            .collect();
        quotas.apply(&changes);
        quotas
    }

    #[test]
    fn kafka_precedence_picks_the_most_specific_level() {
        // One entity per level, valued by its rank in Kafka's order.
        let all = [
            (entity(Some(Some("alice")), Some(Some("app"))), 1.0),
            (entity(Some(Some("alice")), Some(None)), 2.0),
            (entity(Some(Some("alice")), None), 3.0),
            (entity(Some(None), Some(Some("app"))), 4.0),
            (entity(Some(None), Some(None)), 5.0),
            (entity(Some(None), None), 6.0),
            (entity(None, Some(Some("app"))), 7.0),
            (entity(None, Some(None)), 8.0),
        ];
        let expected_tags = [
            ("alice", "app"),
            ("alice", "app"),
            ("alice", ""),
            ("alice", "app"),
            ("alice", "app"),
            ("alice", ""),
            ("", "app"),
            ("", "app"),
        ];
        // Remove the levels one by one, most specific first: each time the next one wins.
        for (level, (user_tag, client_tag)) in expected_tags.iter().enumerate() {
            let configured = quotas(&all[level..]);
            let entries = configured.entries.read();
            let found = resolve_level(&entries, "alice", "app", QuotaKey::ProducerByteRate);
            assert_eq!(
                found,
                Some((
                    user_tag.to_string(),
                    client_tag.to_string(),
                    level as f64 + 1.0
                )),
                "with levels {}.. configured",
                level + 1
            );
        }
        // Other users and client ids only see the defaults that apply to them.
        let configured = quotas(&all);
        let entries = configured.entries.read();
        assert_eq!(
            resolve_level(&entries, "bob", "app", QuotaKey::ProducerByteRate),
            Some(("bob".into(), "app".into(), 4.0))
        );
        assert_eq!(
            resolve_level(&entries, "bob", "other", QuotaKey::ProducerByteRate),
            Some(("bob".into(), "other".into(), 5.0))
        );
        assert_eq!(
            resolve_level(&entries, "alice", "other", QuotaKey::ConsumerByteRate),
            None,
            "keys resolve independently"
        );
    }

    #[test]
    fn a_user_quota_is_shared_by_its_client_ids_and_a_default_is_per_user() {
        let configured = quotas(&[
            (entity(Some(Some("alice")), None), 100.0),
            (entity(Some(None), None), 100.0),
        ]);
        let principal: Arc<str> = "User:alice".into();
        let a = configured
            .for_client(&mut QuotaCache::default(), &principal, "one")
            .expect("quota");
        let b = configured
            .for_client(&mut QuotaCache::default(), &principal, "two")
            .expect("quota");
        let bob = configured
            .for_client(&mut QuotaCache::default(), &"User:bob".into(), "one")
            .expect("quota");
        assert_eq!(
            a.record_produce(100, 0),
            999,
            "alice/one paced from the start"
        );
        assert_eq!(
            b.record_produce(100, 1),
            1_999,
            "alice/two shares alice's measurement"
        );
        assert_eq!(
            bob.record_produce(100, 1),
            999,
            "bob has his own default measurement"
        );
        assert_eq!(a.record_fetch(1 << 20, 1), 0, "no consumer quota");
    }

    #[test]
    fn connections_reresolve_after_a_change_and_skip_work_without_quotas() {
        let configured = ClientQuotas::default();
        let mut cache = QuotaCache::default();
        let principal: Arc<str> = "User:ANONYMOUS".into();
        assert!(
            configured
                .for_client(&mut cache, &principal, "app")
                .is_none()
        );
        let app = entity(None, Some(Some("app")));
        configured.apply(&[(app.clone(), QuotaKey::RequestPercentage, Some(50.0))]);
        let quota = configured
            .for_client(&mut cache, &principal, "app")
            .expect("now limited");
        assert!(quota.measures_request_time());
        assert!(quota.fetch_max_bytes().is_none());
        configured.apply(&[(app.clone(), QuotaKey::ConsumerByteRate, Some(4096.0))]);
        let quota = configured
            .for_client(&mut cache, &principal, "app")
            .expect("still limited");
        assert_eq!(quota.fetch_max_bytes(), Some(4096));
        configured.apply(&[
            (app.clone(), QuotaKey::RequestPercentage, None),
            (app, QuotaKey::ConsumerByteRate, None),
        ]);
        assert!(
            configured
                .for_client(&mut cache, &principal, "app")
                .is_none()
        );
        assert!(configured.entries().is_empty());
    }

    #[test]
    fn request_time_is_a_percentage_of_one_thread() {
        let configured = ClientQuotas::default();
        configured.apply(&[(
            entity(None, Some(None)),
            QuotaKey::RequestPercentage,
            Some(10.0),
        )]);
        let quota = configured
            .for_client(&mut QuotaCache::default(), &"User:x".into(), "busy")
            .expect("quota");
        // 50 ms of work at 10 % of a thread is 500 ms of wall time; bounded by one window.
        assert_eq!(quota.record_request_time(Duration::from_millis(50), 0), 499);
        assert_eq!(
            quota.record_request_time(Duration::from_secs(5), 499),
            1_000,
            "request throttles are bounded by one window, as Kafka's"
        );
    }

    #[test]
    fn ip_connection_rates_fall_back_to_the_default() {
        let configured = ClientQuotas::default();
        let ip = |n: Option<&str>| QuotaEntity {
            ip: Some(EntityName::from_wire(n)),
            ..Default::default()
        };
        let local: IpAddr = "127.0.0.2".parse().expect("ip");
        let other: IpAddr = "::1".parse().expect("ip");
        assert_eq!(configured.connection_rate(local), None);
        configured.apply(&[(
            ip(Some("127.0.0.2")),
            QuotaKey::ConnectionCreationRate,
            Some(5.0),
        )]);
        assert_eq!(configured.connection_rate(local), Some(5.0));
        assert_eq!(configured.connection_rate(other), None);
        configured.apply(&[(ip(None), QuotaKey::ConnectionCreationRate, Some(50.0))]);
        assert_eq!(configured.connection_rate(other), Some(50.0));
        assert!(
            configured
                .for_client(&mut QuotaCache::default(), &"User:x".into(), "c")
                .is_none(),
            "IP quotas leave clients alone"
        );
    }

    #[test]
    fn record_keys_round_trip() {
        let e = entity(Some(Some("alice")), Some(None));
        let key = record_key(&e, QuotaKey::ConsumerByteRate);
        assert_eq!(
            std::str::from_utf8(&key).expect("json"),
            r#"{"entity":{"client-id":null,"user":"alice"},"key":"consumer_byte_rate"}"#
        );
        assert_eq!(
            parse_record_key(&key),
            Some((e, QuotaKey::ConsumerByteRate))
        );
        assert_eq!(user_of("User:CN=alice,O=acme"), "CN=alice,O=acme");
    }
}
