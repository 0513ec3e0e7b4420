//! Records into request bodies, as Confluent's HTTP sink writes them: each record's value as
//! text (a string as it is, anything else as JSON; or always JSON with
//! `request.body.format=json`), the records of a batch joined by `batch.separator` between
//! `batch.prefix` and `batch.suffix`, or as a JSON array with `batch.json.as.array`. Records go
//! to the URL their `${topic}` and `${key}` give, a batch per URL. Pure: no I/O.

use crate::convert;
use crate::data::{ConnectRecord, Value};

use super::config::{BodyFormat, Settings};

/// Batches waiting for more records at most; past it the oldest is sent as it is. Only a
/// `${key}` URL makes more than one.
pub const MAX_OPEN_BATCHES: usize = 1_000;

/// Records bound for one URL, in the order they were put.
#[derive(Debug, Clone, PartialEq)]
pub struct Batch {
    /// Where they go.
    pub url: String,
    /// Each record's text.
    pub texts: Vec<String>,
    /// Where the first record came from (`topic-partition@offset`), for messages.
    pub first: String,
}

impl Batch {
    /// The request body.
    pub fn body(&self, settings: &Settings) -> String {
        let (prefix, separator, suffix) = if settings.json_as_array {
            ("[", ",", "]")
        } else {
            (
                settings.batch_prefix.as_str(),
                settings.batch_separator.as_str(),
                settings.batch_suffix.as_str(),
            )
        };
        let mut body = String::with_capacity(
            prefix.len()
                + suffix.len()
                + self
                    .texts
                    .iter()
                    .map(|t| t.len() + separator.len())
                    .sum::<usize>(),
        );
        body.push_str(prefix);
        for (i, text) in self.texts.iter().enumerate() {
            if i > 0 {
                body.push_str(separator);
            }
            body.push_str(text);
        }
        body.push_str(suffix);
        body
    }

    /// `n records from topic-partition@offset`, for messages.
    pub fn describe(&self) -> String {
        format!("{} record(s) from {}", self.texts.len(), self.first)
    }
}

/// Where a record came from, for messages.
pub fn coordinates(record: &ConnectRecord) -> String {
    format!(
        "{}-{}@{}",
        record.topic,
        record.partition.unwrap_or(-1),
        record.kafka_offset.unwrap_or(-1)
    )
}

/// A record's value as body text; `None` for a null value.
pub fn record_text(format: BodyFormat, record: &ConnectRecord) -> Option<String> {
    match (&record.value, format) {
        (Value::Null, _) => None,
        (Value::String(s), BodyFormat::String) => Some(s.clone()),
        (Value::Bytes(b), BodyFormat::String) => Some(String::from_utf8_lossy(b).into_owned()),
        (value, _) => {
            Some(convert::connect_to_json(record.value_schema.as_deref(), value).to_string())
        }
    }
}

/// The URL of a record: `${topic}` and `${key}` (percent-encoded) replaced.
pub fn record_url(template: &str, record: &ConnectRecord) -> String {
    if !template.contains("${") {
        return template.to_string();
    }
    let key = match &record.key {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        Value::Bytes(b) => String::from_utf8_lossy(b).into_owned(),
        key => convert::connect_to_json(record.key_schema.as_deref(), key).to_string(),
    };
    template
        .replace("${topic}", &encode(&record.topic))
        .replace("${key}", &encode(&key))
}

/// Percent-encodes all but RFC 3986's unreserved characters, so a key stays one path segment.
pub(super) fn encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The batches being filled, one per URL, oldest first.
#[derive(Debug, Default)]
pub struct Batcher {
    open: Vec<Batch>,
}

impl Batcher {
    /// Adds a record's text for `url`; returns the batches now ready to send: the record's
    /// batch when it reached `max` records, the oldest batch when too many are open.
    pub fn add(&mut self, max: usize, url: String, text: String, first: String) -> Vec<Batch> {
        let mut ready = Vec::new();
        let index = match self.open.iter().position(|b| b.url == url) {
            Some(i) => i,
            None => {
                if self.open.len() >= MAX_OPEN_BATCHES {
                    ready.push(self.open.remove(0));
                }
                self.open.push(Batch {
                    url,
                    texts: Vec::new(),
                    first,
                });
                self.open.len() - 1
            }
        };
        self.open[index].texts.push(text);
        if self.open[index].texts.len() >= max {
            ready.push(self.open.remove(index));
        }
        ready
    }

    /// The open batch for `url`, if any (sent before a tombstone's `DELETE` to keep order).
    pub fn take(&mut self, url: &str) -> Option<Batch> {
        let i = self.open.iter().position(|b| b.url == url)?;
        Some(self.open.remove(i))
    }

    /// Every open batch, oldest first.
    pub fn take_all(&mut self) -> Vec<Batch> {
        std::mem::take(&mut self.open)
    }

    /// Puts back batches that could not be sent, ahead of newer ones.
    pub fn restore(&mut self, mut batches: Vec<Batch>) {
        batches.append(&mut self.open);
        self.open = batches;
    }

    /// Records waiting.
    pub fn len(&self) -> usize {
        self.open.iter().map(|b| b.texts.len()).sum()
    }

    /// Whether no record is waiting.
    pub fn is_empty(&self) -> bool {
        self.open.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Props;
    use crate::connectors::http::config;
    use crate::data::{Schema, SchemaType};

    fn settings(pairs: &[(&str, &str)]) -> Settings {
        let mut props: Props = [("http.api.url", "http://h/")]
            .iter()
            .chain(pairs)
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        props.retain(|_, v| !v.is_empty());
        config::confluent(&props).expect("valid in this test")
    }

    fn schemaless(json: &str) -> ConnectRecord {
        let value = convert::json_value_to_connect(
            &serde_json::from_str(json).expect("valid in this test"),
        );
        ConnectRecord::new("t", None, value)
    }

    fn batch(texts: &[&str]) -> Batch {
        Batch {
            url: "http://h/".into(),
            texts: texts.iter().map(|t| t.to_string()).collect(),
            first: "t-0@0".into(),
        }
    }

    #[test]
    fn values_become_text_as_the_body_format_says() {
        let string = ConnectRecord::new(
            "t",
            Some(std::sync::Arc::new(Schema::new(SchemaType::String))),
            Value::String("plain \"text\"".into()),
        );
        let map = schemaless(r#"{"id": 1, "name": "a"}"#);
        assert_eq!(
            record_text(BodyFormat::String, &string).as_deref(),
            Some("plain \"text\"")
        );
        assert_eq!(
            record_text(BodyFormat::Json, &string).as_deref(),
            Some(r#""plain \"text\"""#)
        );
        for format in [BodyFormat::String, BodyFormat::Json] {
            assert_eq!(
                record_text(format, &map).as_deref(),
                Some(r#"{"id":1,"name":"a"}"#)
            );
            assert_eq!(
                record_text(format, &ConnectRecord::new("t", None, Value::Null)),
                None
            );
        }
        let bytes = ConnectRecord::new("t", None, Value::Bytes("raw".into()));
        assert_eq!(
            record_text(BodyFormat::String, &bytes).as_deref(),
            Some("raw")
        );
    }

    #[test]
    fn batches_join_with_prefix_separator_and_suffix() {
        let b = batch(&["1", "2", "3"]);
        assert_eq!(b.body(&settings(&[])), "1,2,3");
        assert_eq!(
            b.body(&settings(&[
                ("batch.prefix", "{\"items\":["),
                ("batch.suffix", "]}"),
                ("batch.separator", ";")
            ])),
            "{\"items\":[1;2;3]}"
        );
        // A JSON array whatever the prefix, suffix and separator say.
        assert_eq!(
            b.body(&settings(&[
                ("batch.json.as.array", "true"),
                ("batch.prefix", "<"),
                ("batch.separator", "\n")
            ])),
            "[1,2,3]"
        );
        assert_eq!(
            batch(&["x"]).body(&settings(&[("batch.json.as.array", "true")])),
            "[x]"
        );
    }

    #[test]
    fn a_batch_is_ready_when_full() {
        let mut batcher = Batcher::default();
        let url = || "http://h/".to_string();
        assert!(batcher.add(3, url(), "1".into(), "t-0@0".into()).is_empty());
        assert!(batcher.add(3, url(), "2".into(), "t-0@1".into()).is_empty());
        let ready = batcher.add(3, url(), "3".into(), "t-0@2".into());
        assert_eq!(ready, [batch(&["1", "2", "3"])]);
        assert_eq!(batcher.len(), 0);
        batcher.add(3, url(), "4".into(), "t-0@3".into());
        assert_eq!(
            batcher.take_all(),
            [Batch {
                first: "t-0@3".into(),
                ..batch(&["4"])
            }]
        );
    }

    #[test]
    fn records_group_by_their_url() {
        let mut record = schemaless(r#"{"a": 1}"#);
        record.key = Value::String("k 1/x".into());
        assert_eq!(
            record_url("http://h/${topic}/${key}", &record),
            "http://h/t/k%201%2Fx"
        );
        let mut batcher = Batcher::default();
        batcher.add(2, "http://h/a".into(), "1".into(), "t-0@0".into());
        batcher.add(2, "http://h/b".into(), "2".into(), "t-0@1".into());
        let ready = batcher.add(2, "http://h/a".into(), "3".into(), "t-0@2".into());
        assert_eq!(ready.len(), 1);
        assert_eq!(
            (ready[0].url.as_str(), ready[0].texts.len()),
            ("http://h/a", 2)
        );
        assert_eq!(
            batcher.take("http://h/b").map(|b| b.texts),
            Some(vec!["2".to_string()])
        );
        assert_eq!(batcher.len(), 0);
    }

    #[test]
    fn too_many_open_batches_send_the_oldest() {
        let mut batcher = Batcher::default();
        for i in 0..MAX_OPEN_BATCHES {
            assert!(
                batcher
                    .add(10, format!("http://h/{i}"), "x".into(), String::new())
                    .is_empty()
            );
        }
        let ready = batcher.add(10, "http://h/new".into(), "y".into(), String::new());
        assert_eq!(ready.len(), 1);
        assert_eq!(ready[0].url, "http://h/0");
        assert_eq!(batcher.len(), MAX_OPEN_BATCHES);
    }
}
