//! An HTTP sink (webhooks) under the class names and keys of Confluent's HTTP Sink connector
//! (`io.confluent.connect.http.HttpSinkConnector`) and Aiven's
//! (`io.aiven.kafka.connect.http.HttpSinkConnector`): each record's value is sent to a URL,
//! `batch.max.size` records per request.
//!
//! Delivery is at least once. `put` buffers records and sends each batch as soon as it is full;
//! `flush` sends what is left, and returns only once every record put so far was delivered (or
//! dropped, as `behavior.on.error` allows): the runtime commits offsets only after it. A request
//! is retried with backoff on transport errors and retriable statuses; one that is not delivered
//! fails the task unless `behavior.on.error` says to go on.
//!
//! What differs from Confluent's connector: `reporter.*` and `report.errors.as` are accepted and
//! ignored (no result or error topics); TLS trusts the system's root certificates, so
//! `https.ssl.truststore.location`/`keystore` are refused; `auth.type=THIRD_PARTY` is refused;
//! a value that is not a string is sent as JSON text even with `request.body.format=string`
//! (Java would send its `toString()`); fields of the record (`${field}`) in the URL are not
//! replaced, only `${topic}` and `${key}`.
//!
//! - [`config`]: the keys into [`config::Settings`], every problem named.
//! - [`batch`]: records into request bodies.
//! - [`client`]: one request, its retries and its authorization.

pub mod batch;
pub mod client;
pub mod config;

use crate::config::{ConfigProblem, Props};
use crate::data::ConnectRecord;
use crate::plugin::{ConfigKey, Connector, ConnectorKind, SinkTask, TaskError};

use batch::Batcher;
use client::Client;
use config::{OnError, OnNull, Settings};

/// `io.confluent.connect.http.HttpSinkConnector`.
pub struct ConfluentHttpSink;

/// `io.aiven.kafka.connect.http.HttpSinkConnector`.
pub struct AivenHttpSink;

type Parse = fn(&Props) -> Result<Settings, Vec<ConfigProblem>>;

const fn key(
    name: &'static str,
    kind: &'static str,
    default: &'static str,
    documentation: &'static str,
) -> ConfigKey {
    ConfigKey::optional(name, kind, default, documentation)
}

impl Connector for ConfluentHttpSink {
    fn class(&self) -> &'static str {
        "io.confluent.connect.http.HttpSinkConnector"
    }

    fn kind(&self) -> ConnectorKind {
        ConnectorKind::Sink
    }

    fn config_keys(&self) -> Vec<ConfigKey> {
        vec![
            ConfigKey::required(
                "http.api.url",
                "STRING",
                "The HTTP API URL; ${topic} and ${key} are replaced by the record's",
            ),
            key(
                "request.method",
                "STRING",
                "POST",
                "The HTTP request method: POST, PUT, PATCH or DELETE",
            ),
            key(
                "headers",
                "STRING",
                "",
                "HTTP headers, Name:Value, separated by header.separator",
            ),
            key(
                "header.separator",
                "STRING",
                "|",
                "Separator between the entries of headers",
            ),
            key(
                "auth.type",
                "STRING",
                "NONE",
                "Authentication: NONE, BASIC, OAUTH2 or BEARER",
            ),
            key(
                "connection.user",
                "STRING",
                "",
                "The user for BASIC authentication",
            ),
            key(
                "connection.password",
                "PASSWORD",
                "",
                "The password for BASIC authentication",
            ),
            key(
                "bearer.token",
                "PASSWORD",
                "",
                "The token for BEARER authentication",
            ),
            key(
                "oauth2.token.url",
                "STRING",
                "",
                "The URL OAuth 2 tokens are fetched from",
            ),
            key("oauth2.client.id", "STRING", "", "The OAuth 2 client id"),
            key(
                "oauth2.client.secret",
                "PASSWORD",
                "",
                "The OAuth 2 client secret",
            ),
            key(
                "oauth2.client.scope",
                "STRING",
                "any",
                "The OAuth 2 scope asked for",
            ),
            key(
                "oauth2.token.property",
                "STRING",
                "access_token",
                "The property of the token response holding the token",
            ),
            key(
                "oauth2.client.auth.mode",
                "STRING",
                "header",
                "How the client credentials are sent: header (Basic) or url (form fields)",
            ),
            key(
                "batch.max.size",
                "INT",
                "1",
                "Records sent in one request at most",
            ),
            key(
                "batch.prefix",
                "STRING",
                "",
                "Text before the first record of a request",
            ),
            key(
                "batch.suffix",
                "STRING",
                "",
                "Text after the last record of a request",
            ),
            key(
                "batch.separator",
                "STRING",
                ",",
                "Text between the records of a request",
            ),
            key(
                "batch.json.as.array",
                "BOOLEAN",
                "false",
                "Send the records of a request as a JSON array",
            ),
            key(
                "request.body.format",
                "STRING",
                "string",
                "How a value is written: string or json",
            ),
            key(
                "max.retries",
                "INT",
                "10",
                "Retries of a request at most before it counts as failed",
            ),
            key(
                "retry.backoff.ms",
                "INT",
                "3000",
                "The wait before the first retry",
            ),
            key(
                "retry.backoff.policy",
                "STRING",
                "EXPONENTIAL_WITH_JITTER",
                "CONSTANT_VALUE or EXPONENTIAL_WITH_JITTER (capped at 60 s)",
            ),
            key(
                "retry.on.status.codes",
                "STRING",
                "400-",
                "Statuses retried: codes and ranges such as 404,408,500- (408 and 429 always are)",
            ),
            key(
                "http.connect.timeout.ms",
                "INT",
                "30000",
                "The limit on connecting",
            ),
            key(
                "http.request.timeout.ms",
                "INT",
                "30000",
                "The limit on one attempt, from connecting to the end of the response",
            ),
            key(
                "behavior.on.null.values",
                "STRING",
                "ignore",
                "Records with a null value: ignore, delete (a DELETE to the record's URL), log or fail",
            ),
            key(
                "behavior.on.error",
                "STRING",
                "fail",
                "A request not delivered after its retries: fail the task, log and go on, or ignore",
            ),
            key("http.proxy.host", "STRING", "", "An HTTP proxy's host"),
            key("http.proxy.port", "INT", "0", "The HTTP proxy's port"),
            key("http.proxy.user", "STRING", "", "The HTTP proxy's user"),
            key(
                "http.proxy.password",
                "PASSWORD",
                "",
                "The HTTP proxy's password",
            ),
        ]
    }

    fn validate(&self, props: &Props) -> Vec<ConfigProblem> {
        config::confluent(props).err().unwrap_or_default()
    }

    fn task_configs(&self, props: &Props, max_tasks: usize) -> Result<Vec<Props>, TaskError> {
        Ok(vec![props.clone(); max_tasks.max(1)])
    }

    fn sink_task(&self) -> Option<Box<dyn SinkTask>> {
        Some(Box::new(HttpSinkTask::new(config::confluent)))
    }
}

impl Connector for AivenHttpSink {
    fn class(&self) -> &'static str {
        "io.aiven.kafka.connect.http.HttpSinkConnector"
    }

    fn kind(&self) -> ConnectorKind {
        ConnectorKind::Sink
    }

    fn config_keys(&self) -> Vec<ConfigKey> {
        vec![
            ConfigKey::required("http.url", "STRING", "The URL to send records to"),
            ConfigKey::required(
                "http.authorization.type",
                "STRING",
                "Authorization: none, static or oauth2",
            ),
            key(
                "http.headers.authorization",
                "PASSWORD",
                "",
                "The Authorization header for static authorization",
            ),
            key(
                "http.headers.content.type",
                "STRING",
                "",
                "The Content-Type header",
            ),
            key(
                "http.headers.additional",
                "STRING",
                "",
                "More headers, Name:Value, separated by commas",
            ),
            key(
                "oauth2.access.token.url",
                "STRING",
                "",
                "The URL OAuth 2 tokens are fetched from",
            ),
            key("oauth2.client.id", "STRING", "", "The OAuth 2 client id"),
            key(
                "oauth2.client.secret",
                "PASSWORD",
                "",
                "The OAuth 2 client secret",
            ),
            key(
                "oauth2.client.scope",
                "STRING",
                "",
                "The OAuth 2 scope asked for",
            ),
            key(
                "oauth2.client.authorization.mode",
                "STRING",
                "header",
                "How the client credentials are sent: header or url",
            ),
            key(
                "oauth2.response.token.property",
                "STRING",
                "access_token",
                "The property of the token response holding the token",
            ),
            key(
                "batching.enabled",
                "BOOLEAN",
                "false",
                "Send several records per request",
            ),
            key(
                "batch.max.size",
                "INT",
                "500",
                "Records sent in one request at most, with batching",
            ),
            key(
                "batch.prefix",
                "STRING",
                "",
                "Text before the first record of a request",
            ),
            key(
                "batch.suffix",
                "STRING",
                "\n",
                "Text after the last record of a request",
            ),
            key(
                "batch.separator",
                "STRING",
                "\n",
                "Text between the records of a request",
            ),
            key("max.retries", "INT", "1", "Retries of a request at most"),
            key(
                "retry.backoff.ms",
                "INT",
                "3000",
                "The wait between attempts",
            ),
            key(
                "http.timeout",
                "INT",
                "30",
                "The limit on one attempt, in seconds",
            ),
        ]
    }

    fn validate(&self, props: &Props) -> Vec<ConfigProblem> {
        config::aiven(props).err().unwrap_or_default()
    }

    fn task_configs(&self, props: &Props, max_tasks: usize) -> Result<Vec<Props>, TaskError> {
        Ok(vec![props.clone(); max_tasks.max(1)])
    }

    fn sink_task(&self) -> Option<Box<dyn SinkTask>> {
        Some(Box::new(HttpSinkTask::new(config::aiven)))
    }
}

/// One task: its settings, client and the batches being filled.
struct HttpSinkTask {
    parse: Parse,
    running: Option<(Settings, Client)>,
    batcher: Batcher,
}

impl HttpSinkTask {
    fn new(parse: Parse) -> HttpSinkTask {
        HttpSinkTask {
            parse,
            running: None,
            batcher: Batcher::default(),
        }
    }

    fn running(&mut self) -> Result<(&Settings, &mut Client), TaskError> {
        match self.running.as_mut() {
            Some((settings, client)) => Ok((settings, client)),
            None => Err(TaskError::fatal("the HTTP sink task was not started")),
        }
    }

    /// Sends a batch; a failure is handled as `behavior.on.error` says.
    fn deliver(&mut self, batch: batch::Batch) -> Result<(), TaskError> {
        let (settings, client) = self.running()?;
        let body = batch.body(settings);
        let method = settings.method.name();
        let on_error = settings.on_error;
        match client.send(method, &batch.url, Some(&body)) {
            Ok(()) => Ok(()),
            Err(why) => undelivered(
                on_error,
                format!("could not deliver {}: {why}", batch.describe()),
            ),
        }
    }
}

/// Fails the task or goes on, as `behavior.on.error` says.
fn undelivered(on_error: OnError, what: String) -> Result<(), TaskError> {
    match on_error {
        OnError::Fail => Err(TaskError::fatal(format!(
            "the HTTP sink {what}; fix the endpoint or the config, then restart the task to send them again"
        ))),
        OnError::Log => {
            tracing::warn!("the HTTP sink {what}; going on as behavior.on.error is log");
            Ok(())
        }
        OnError::Ignore => {
            tracing::debug!("the HTTP sink {what}; going on as behavior.on.error is ignore");
            Ok(())
        }
    }
}

impl SinkTask for HttpSinkTask {
    fn start(&mut self, props: &Props) -> Result<(), TaskError> {
        let settings = (self.parse)(props)
            .map_err(|problems| TaskError::fatal(crate::config::describe(&problems)))?;
        let ignored: Vec<&str> = props
            .keys()
            .filter(|k| k.starts_with("reporter.") || *k == "report.errors.as")
            .map(String::as_str)
            .collect();
        if !ignored.is_empty() {
            tracing::info!(
                "the HTTP sink ignores {}: Spate does not report results or errors to topics",
                ignored.join(", ")
            );
        }
        let client = Client::new(settings.clone()).map_err(TaskError::fatal)?;
        self.running = Some((settings, client));
        Ok(())
    }

    fn put(&mut self, records: &[ConnectRecord]) -> Result<(), TaskError> {
        for record in records {
            let (settings, _) = self.running()?;
            let url = batch::record_url(&settings.url, record);
            let (max, format, on_null, on_error) = (
                settings.batch_max_size,
                settings.body_format,
                settings.on_null,
                settings.on_error,
            );
            let Some(text) = batch::record_text(format, record) else {
                let at = batch::coordinates(record);
                match on_null {
                    OnNull::Ignore => {}
                    OnNull::Log => tracing::info!("the HTTP sink skips the null value at {at}"),
                    OnNull::Fail => undelivered(
                        on_error,
                        format!(
                            "was given a null value at {at} and behavior.on.null.values is fail"
                        ),
                    )?,
                    OnNull::Delete => {
                        // What was put before the tombstone for this URL goes first.
                        if let Some(earlier) = self.batcher.take(&url) {
                            self.deliver(earlier)?;
                        }
                        let (_, client) = self.running()?;
                        if let Err(why) = client.send("DELETE", &url, None) {
                            undelivered(
                                on_error,
                                format!("could not delete for the null value at {at}: {why}"),
                            )?;
                        }
                    }
                }
                continue;
            };
            for ready in self.batcher.add(max, url, text, batch::coordinates(record)) {
                self.deliver(ready)?;
            }
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<(), TaskError> {
        let mut waiting = self.batcher.take_all().into_iter();
        while let Some(batch) = waiting.next() {
            if let Err(e) = self.deliver(batch) {
                // Keep the rest: nothing after a failed batch counts as delivered.
                self.batcher.restore(waiting.collect());
                return Err(e);
            }
        }
        Ok(())
    }

    fn stop(&mut self) {
        // The runtime flushed before stopping; what is left was not committed and is sent
        // again by the next task.
        self.running = None;
    }
}
