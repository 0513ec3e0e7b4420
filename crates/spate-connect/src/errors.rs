//! Kafka Connect's error handling for a task (`RetryWithToleranceOperator` and its reporters):
//! with `errors.tolerance=none` (the default) a record that a converter or transform cannot
//! handle fails the task, naming its topic, partition and offset; with `all` the record is
//! skipped, logged when `errors.log.enable` is set, and — for sinks — written as it was
//! consumed to `errors.deadletterqueue.topic.name`, with Kafka's `__connect.errors.*` headers
//! when `errors.deadletterqueue.context.headers.enable` is set.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};

use crate::config::Props;
use crate::herder::Shared;
use crate::metrics::TaskMetrics;
use crate::plugin::TaskError;
use crate::store;

/// Where in a task's pipeline an error happened (Kafka's `Stage`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// Reading records from the source system.
    TaskPoll,
    /// Writing records to the sink system.
    TaskPut,
    /// A key converter.
    KeyConverter,
    /// A value converter.
    ValueConverter,
    /// A single message transform.
    Transformation,
    /// Producing to Kafka.
    KafkaProduce,
}

impl Stage {
    /// Kafka's name for it.
    pub fn name(self) -> &'static str {
        match self {
            Stage::TaskPoll => "TASK_POLL",
            Stage::TaskPut => "TASK_PUT",
            Stage::KeyConverter => "KEY_CONVERTER",
            Stage::ValueConverter => "VALUE_CONVERTER",
            Stage::Transformation => "TRANSFORMATION",
            Stage::KafkaProduce => "KAFKA_PRODUCE",
        }
    }
}

/// The record a failure happened on, as it was consumed.
pub struct Failed<'a> {
    /// Its topic.
    pub topic: &'a str,
    /// Its partition.
    pub partition: i32,
    /// Its offset.
    pub offset: i64,
    /// Its key bytes.
    pub key: Option<&'a [u8]>,
    /// Its value bytes.
    pub value: Option<&'a [u8]>,
    /// Its headers.
    pub headers: Vec<(String, Option<Vec<u8>>)>,
}

/// A task's error policy and dead letter queue.
pub struct ErrorHandler {
    connector: String,
    task: usize,
    tolerate_all: bool,
    log: bool,
    log_messages: bool,
    dlq: Option<(String, bool, BaseProducer)>,
    class: String,
    metrics: Arc<TaskMetrics>,
}

impl ErrorHandler {
    /// The policy of a connector's config; the DLQ producer is made (and its topic created)
    /// only for sinks that name one.
    pub fn new(
        shared: &Shared,
        connector: &str,
        task: usize,
        props: &Props,
        sink: bool,
        metrics: Arc<TaskMetrics>,
    ) -> Result<ErrorHandler, TaskError> {
        let flag = |key: &str| {
            props
                .get(key)
                .is_some_and(|v| v.eq_ignore_ascii_case("true"))
        };
        let tolerate_all = props.get("errors.tolerance").is_some_and(|v| v == "all");
        let dlq_topic = props
            .get("errors.deadletterqueue.topic.name")
            .filter(|t| sink && !t.trim().is_empty())
            .map(|t| t.trim().to_string());
        let dlq = match dlq_topic {
            None => None,
            Some(topic) => {
                let replication: i32 = props
                    .get("errors.deadletterqueue.topic.replication.factor")
                    .and_then(|r| r.parse().ok())
                    .unwrap_or(3);
                let mut config = shared.config.clone();
                config.replication_factor = replication;
                if let Err(e) = store::create_topics(&config, &[(topic.clone(), 1)], false) {
                    tracing::warn!(connector, task, topic = %topic, "cannot create the dead letter queue topic (it is created on first write if the cluster allows): {e}");
                }
                let producer: BaseProducer = shared
                    .config
                    .client("producer.")
                    .set("acks", "all")
                    .set("enable.idempotence", "true")
                    .set(
                        "client.id",
                        format!("connector-dlq-producer-{connector}-{task}"),
                    )
                    .create()
                    .map_err(|e| {
                        TaskError::fatal(format!("creating the dead letter queue producer: {e}"))
                    })?;
                Some((
                    topic,
                    flag("errors.deadletterqueue.context.headers.enable"),
                    producer,
                ))
            }
        };
        Ok(ErrorHandler {
            connector: connector.to_string(),
            task,
            tolerate_all,
            log: flag("errors.log.enable"),
            log_messages: flag("errors.log.include.messages"),
            dlq,
            class: props.get("connector.class").cloned().unwrap_or_default(),
            metrics,
        })
    }

    /// Handles a failure at `stage` on `record`: `Err` fails the task (tolerance `none`),
    /// `Ok` skips the record after logging and dead-lettering it as configured.
    pub fn failed(
        &mut self,
        stage: Stage,
        record: &Failed<'_>,
        error: &str,
    ) -> Result<(), TaskError> {
        self.metrics.errors.fetch_add(1, Ordering::Relaxed);
        let context = format!(
            "topic {} partition {} offset {}",
            record.topic, record.partition, record.offset
        );
        if !self.tolerate_all {
            return Err(TaskError::fatal(format!(
                "tolerance exceeded in error handler: {} failed at {context}: {error}",
                stage.name()
            )));
        }
        if self.log {
            if self.log_messages {
                tracing::warn!(connector = %self.connector, task = self.task, stage = stage.name(), "error encountered at {context} (key {:?}, value {:?}): {error}",
                    record.key.map(String::from_utf8_lossy), record.value.map(String::from_utf8_lossy));
            } else {
                tracing::warn!(connector = %self.connector, task = self.task, stage = stage.name(), "error encountered at {context}: {error}");
            }
        }
        if let Some((topic, context_headers, producer)) = &self.dlq {
            let mut headers = OwnedHeaders::new();
            for (name, value) in &record.headers {
                headers = headers.insert(Header {
                    key: name,
                    value: value.as_deref(),
                });
            }
            if *context_headers {
                let partition = record.partition.to_string();
                let offset = record.offset.to_string();
                let task = self.task.to_string();
                let pairs: [(&str, &str); 9] = [
                    ("__connect.errors.topic", record.topic),
                    ("__connect.errors.partition", &partition),
                    ("__connect.errors.offset", &offset),
                    ("__connect.errors.connector.name", &self.connector),
                    ("__connect.errors.task.id", &task),
                    ("__connect.errors.stage", stage.name()),
                    ("__connect.errors.class.name", &self.class),
                    (
                        "__connect.errors.exception.class.name",
                        "org.apache.kafka.connect.errors.DataException",
                    ),
                    ("__connect.errors.exception.message", error),
                ];
                for (name, value) in pairs {
                    headers = headers.insert(Header {
                        key: name,
                        value: Some(value.as_bytes()),
                    });
                }
            }
            let mut out: BaseRecord<'_, [u8], [u8]> = BaseRecord::to(topic).headers(headers);
            if let Some(key) = record.key {
                out = out.key(key);
            }
            if let Some(value) = record.value {
                out = out.payload(value);
            }
            producer.send(out).map_err(|(e, _)| {
                TaskError::retriable(format!("writing to the dead letter queue {topic}: {e}"))
            })?;
            producer.poll(Duration::ZERO);
            self.metrics.dlq_records.fetch_add(1, Ordering::Relaxed);
        }
        Ok(())
    }

    /// Makes the dead-lettered records durable (before the sink commits past them).
    pub fn flush(&self) -> Result<(), TaskError> {
        if let Some((topic, _, producer)) = &self.dlq {
            producer.flush(Duration::from_secs(60)).map_err(|e| {
                TaskError::retriable(format!("flushing the dead letter queue {topic}: {e}"))
            })?;
        }
        Ok(())
    }
}
