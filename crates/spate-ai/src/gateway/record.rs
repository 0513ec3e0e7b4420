//! Every gateway call as a record in `_ai_requests`: a bounded queue the request path puts
//! records into without waiting (a full queue drops the record and counts it), and the task
//! that produces them with librdkafka once the cluster answers. Also the redaction of logged
//! bodies.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use rdkafka::producer::{FutureProducer, FutureRecord};
use serde_json::Value as Json;
use tokio::sync::mpsc;

use crate::kafka::{self, Cluster};

/// The topic of the gateway's records.
pub const TOPIC: &str = "_ai_requests";

/// What replaces a redacted value.
pub const REDACTED: &str = "[REDACTED]";

/// Replaces the value of every object key in `fields`, at any depth.
pub fn redact(value: &mut Json, fields: &[String]) {
    match value {
        Json::Object(m) => {
            for (k, v) in m.iter_mut() {
                if fields.iter().any(|f| f == k) {
                    *v = Json::String(REDACTED.to_string());
                } else {
                    redact(v, fields);
                }
            }
        }
        Json::Array(a) => a.iter_mut().for_each(|v| redact(v, fields)),
        _ => {}
    }
}

/// A record's key and JSON value.
type Queued = (String, Vec<u8>);

/// The queue between requests and the producer.
pub struct Recorder {
    queue: mpsc::Sender<Queued>,
    receiver: parking_lot::Mutex<Option<mpsc::Receiver<Queued>>>,
    /// Records dropped because the queue was full or the producer refused them.
    pub dropped: AtomicU64,
    /// Records produced (delivered).
    pub produced: AtomicU64,
}

impl Recorder {
    /// A queue of `capacity` records.
    pub fn new(capacity: usize) -> Recorder {
        let (queue, receiver) = mpsc::channel(capacity.max(1));
        Recorder {
            queue,
            receiver: parking_lot::Mutex::new(Some(receiver)),
            dropped: AtomicU64::new(0),
            produced: AtomicU64::new(0),
        }
    }

    /// Queues a record keyed `key`; never waits.
    pub fn record(&self, key: String, value: &Json) {
        let bytes = value.to_string().into_bytes();
        if self.queue.try_send((key, bytes)).is_err() {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Produces queued records to `_ai_requests` on `cluster` (created if missing) until
    /// `stop` turns true; waits for the cluster first, retrying each second.
    pub async fn run(
        self: Arc<Self>,
        cluster: Cluster,
        mut stop: tokio::sync::watch::Receiver<bool>,
    ) {
        let Some(mut receiver) = self.receiver.lock().take() else {
            return;
        };
        let producer = loop {
            let attempt = cluster.clone();
            let made = tokio::task::spawn_blocking(move || {
                kafka::create_topic(&attempt, TOPIC, &[])?;
                kafka::config(&attempt)
                    .set("linger.ms", "20")
                    .set("queue.buffering.max.messages", "100000")
                    .set("message.timeout.ms", "30000")
                    .create::<FutureProducer>()
                    .map_err(kafka::error("creating the gateway's producer"))
            })
            .await;
            match made {
                Ok(Ok(p)) => break p,
                Ok(Err(e)) => tracing::warn!("the ai gateway's records wait for the cluster: {e}"),
                Err(e) => {
                    tracing::error!("the ai gateway's recorder could not start: {e}");
                    return;
                }
            }
            tokio::select! {
                _ = stop.wait_for(|s| *s) => return,
                () = tokio::time::sleep(Duration::from_secs(1)) => {}
            }
        };
        tracing::info!(topic = TOPIC, "ai gateway records are produced");
        loop {
            let next = tokio::select! {
                _ = stop.wait_for(|s| *s) => None,
                next = receiver.recv() => next,
            };
            let Some((key, value)) = next else {
                break;
            };
            self.produce(&producer, &key, &value);
        }
        // What was queued before the stop still goes out.
        while let Ok((key, value)) = receiver.try_recv() {
            self.produce(&producer, &key, &value);
        }
        let _ = tokio::task::spawn_blocking(move || {
            use rdkafka::producer::Producer as _;
            let _ = producer.flush(Duration::from_secs(5));
        })
        .await;
    }

    fn produce(self: &Arc<Self>, producer: &FutureProducer, key: &str, value: &[u8]) {
        let record: FutureRecord<'_, str, [u8]> = FutureRecord::to(TOPIC).key(key).payload(value);
        match producer.send_result(record) {
            Ok(delivery) => {
                let me = Arc::clone(self);
                tokio::spawn(async move {
                    match delivery.await {
                        Ok(Ok(_)) => me.produced.fetch_add(1, Ordering::Relaxed),
                        _ => me.dropped.fetch_add(1, Ordering::Relaxed),
                    };
                });
            }
            Err(_) => {
                self.dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn redaction_reaches_every_depth() {
        let mut body = json!({"messages": [{"role": "user", "content": "secret"}], "content": 1});
        redact(&mut body, &["content".to_string()]);
        assert_eq!(
            body,
            json!({"messages": [{"role": "user", "content": REDACTED}], "content": REDACTED})
        );
    }

    #[test]
    fn a_full_queue_drops_and_counts() {
        let r = Recorder::new(1);
        r.record("a".into(), &json!({}));
        r.record("b".into(), &json!({}));
        assert_eq!(r.dropped.load(Ordering::Relaxed), 1);
    }
}
