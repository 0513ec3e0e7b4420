//! The audit log: authentication results, authorisation denials and administrative changes,
//! written as JSON records to the internal topic `_audit`, which operators read with any Kafka
//! client.
//!
//! Each record is a CloudEvents 1.0 envelope, the shape of Confluent's audit log
//! (`type` `io.spate.kafka/authentication|authorization|admin`, `time`, `subject` the resource,
//! `data` who, from where, what and the outcome); the key is the principal. Recording never
//! waits: events go into a bounded queue that one task ([`Broker::run_audit`]) appends to the
//! log in batches. When the queue is full (a flood of failed logins, say) events are dropped
//! and counted (`spate_audit_events_dropped_total`) rather than slowing requests down.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, UNIX_EPOCH};

use serde::Serialize;
use spate_log::BatchBuilder;
use tokio::sync::mpsc;

use crate::Broker;
use crate::authz::Caller;

/// The internal topic audit records go to.
pub const AUDIT_TOPIC: &str = "_audit";

/// How long audit records are kept: 90 days, as Confluent keeps its audit log topic.
pub(crate) const AUDIT_RETENTION_MS: &str = "7776000000";

/// Events waiting to be written; beyond this they are dropped and counted.
const QUEUE_CAPACITY: usize = 10_000;

/// Most events written as one batch.
const MAX_BATCH: usize = 500;

/// What kind of event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuditKind {
    /// A client proved who it is, or failed to.
    Authentication,
    /// A request was denied by the ACLs.
    Authorization,
    /// Something changed: topics, partitions, configs, ACLs, users, quotas, records, groups.
    Admin,
}

impl AuditKind {
    fn event_type(self) -> &'static str {
        match self {
            AuditKind::Authentication => "io.spate.kafka/authentication",
            AuditKind::Authorization => "io.spate.kafka/authorization",
            AuditKind::Admin => "io.spate.kafka/admin",
        }
    }
}

/// One audit event, before it is given its envelope.
#[derive(Debug, Clone, Serialize)]
pub struct AuditEvent {
    /// Kind of event.
    #[serde(skip)]
    pub kind: AuditKind,
    /// The principal (`User:alice`), or for a failed authentication the name it claimed.
    pub principal: String,
    /// The client's address.
    pub client_address: String,
    /// The listener the client connected to, when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub listener: Option<String>,
    /// The Kafka API (`CreateTopics`), or `SaslAuthenticate`, `TlsHandshake`, `Connection`.
    pub method: String,
    /// The resource acted on, `TYPE:name` (`TOPIC:orders`, `CLUSTER:kafka-cluster`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resource: Option<String>,
    /// The operation (`WRITE`, `CREATE`, ...), for authorisation and admin events.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub operation: Option<String>,
    /// Whether it was allowed / succeeded.
    pub granted: bool,
    /// Why (the deciding rule, the failure's reason), or what changed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

impl AuditEvent {
    /// An event about a request from `caller`.
    pub(crate) fn from_caller(kind: AuditKind, caller: &Caller, granted: bool) -> AuditEvent {
        AuditEvent {
            kind,
            principal: caller.principal.to_string(),
            client_address: caller.host().to_owned(),
            listener: caller.listener.as_deref().map(str::to_owned),
            method: caller.api.to_string(),
            resource: None,
            operation: None,
            granted,
            detail: None,
        }
    }

    /// Names the resource and operation.
    pub fn on(mut self, resource: String, operation: &str) -> AuditEvent {
        self.resource = Some(resource);
        self.operation = Some(operation.to_owned());
        self
    }

    /// Adds the detail.
    pub fn detail(mut self, detail: impl Into<String>) -> AuditEvent {
        self.detail = Some(detail.into());
        self
    }
}

/// The CloudEvents envelope.
#[derive(Serialize)]
struct Envelope<'a> {
    specversion: &'static str,
    id: String,
    source: &'a str,
    #[serde(rename = "type")]
    kind: &'static str,
    time: String,
    datacontenttype: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    subject: Option<&'a str>,
    data: &'a AuditEvent,
}

/// The queue between requests and the writer task.
pub(crate) struct AuditLog {
    tx: mpsc::Sender<(i64, AuditEvent)>,
    rx: parking_lot::Mutex<Option<mpsc::Receiver<(i64, AuditEvent)>>>,
    /// Events recorded, and dropped because the queue was full.
    pub(crate) recorded: AtomicU64,
    pub(crate) dropped: AtomicU64,
}

impl Default for AuditLog {
    fn default() -> AuditLog {
        let (tx, rx) = mpsc::channel(QUEUE_CAPACITY);
        AuditLog {
            tx,
            rx: parking_lot::Mutex::new(Some(rx)),
            recorded: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
        }
    }
}

impl Broker {
    /// Records an audit event; never waits.
    pub fn audit(&self, event: AuditEvent) {
        match self.audit.tx.try_send((self.now_ms(), event)) {
            Ok(()) => {
                self.audit.recorded.fetch_add(1, Ordering::Relaxed);
            }
            Err(_) => {
                self.audit.dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// Writes recorded events to `_audit` until `shutdown` resolves, then writes what is
    /// still queued. Run it once, on the runtime.
    pub async fn run_audit(self: Arc<Self>, shutdown: impl std::future::Future<Output = ()>) {
        let Some(mut rx) = self.audit.rx.lock().take() else {
            tracing::error!("the audit writer was started twice");
            return;
        };
        tokio::pin!(shutdown);
        let mut batch = Vec::new();
        loop {
            let stopping = tokio::select! {
                _ = &mut shutdown => true,
                received = rx.recv_many(&mut batch, MAX_BATCH) => received == 0,
            };
            if stopping {
                while let Ok(event) = rx.try_recv() {
                    batch.push(event);
                }
            }
            while !batch.is_empty() {
                let rest = batch.split_off(batch.len().min(MAX_BATCH));
                self.write_audit(&batch).await;
                batch = rest;
            }
            if stopping {
                return;
            }
        }
    }

    async fn write_audit(self: &Arc<Self>, events: &[(i64, AuditEvent)]) {
        let base = events.iter().map(|(at, _)| *at).min().unwrap_or(0);
        let mut builder = BatchBuilder::new(0, base);
        for (at, event) in events {
            let time = UNIX_EPOCH + Duration::from_millis(u64::try_from(*at).unwrap_or(0));
            let envelope = Envelope {
                specversion: "1.0",
                id: uuid::Uuid::new_v4().to_string(),
                source: &self.audit_source,
                kind: event.kind.event_type(),
                time: humantime::format_rfc3339_millis(time).to_string(),
                datacontenttype: "application/json",
                subject: event.resource.as_deref(),
                data: event,
            };
            match serde_json::to_vec(&envelope) {
                Ok(value) => {
                    builder.push(at - base, Some(event.principal.as_bytes()), Some(&value))
                }
                Err(err) => tracing::error!(error = %err, "could not encode an audit event"),
            }
        }
        if let Err(err) = self.append_internal(AUDIT_TOPIC, 0, builder).await {
            self.audit
                .dropped
                .fetch_add(events.len() as u64, Ordering::Relaxed);
            tracing::error!(error = %err, events = events.len(), "could not write audit events");
        }
    }
}

impl Broker {
    /// Records a change `caller` made: `operation` on `resource` (`TOPIC:orders`).
    pub(crate) fn audit_change(
        &self,
        caller: &Caller,
        resource: String,
        operation: &str,
        detail: impl Into<String>,
    ) {
        self.audit(
            AuditEvent::from_caller(AuditKind::Admin, caller, true)
                .on(resource, operation)
                .detail(detail),
        );
    }

    /// Audit events written so far and dropped (queue full or write failed), for `/metrics`.
    pub fn audit_counts(&self) -> (u64, u64) {
        (
            self.audit.recorded.load(Ordering::Relaxed),
            self.audit.dropped.load(Ordering::Relaxed),
        )
    }
}
