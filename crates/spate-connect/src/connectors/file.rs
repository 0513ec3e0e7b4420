//! Kafka's FileStream connectors (`org.apache.kafka.connect.file`): a source that tails a file
//! line by line into a topic, remembering its byte position as the source offset
//! (`{"filename": f}` → `{"position": n}`), and a sink that appends each record's value to a
//! file, one line per record. Kafka ships them as examples; they are what its quickstart runs.

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, BufWriter, Seek, SeekFrom, Write};

use serde_json::json;

use crate::config::{ConfigProblem, Props};
use crate::convert;
use crate::data::{ConnectRecord, Schema, SchemaType, Value};
use crate::plugin::{
    ConfigKey, Connector, ConnectorKind, OffsetReader, SinkTask, SourceTask, TaskError,
};

/// `org.apache.kafka.connect.file.FileStreamSourceConnector`.
pub struct FileStreamSource;

/// `org.apache.kafka.connect.file.FileStreamSinkConnector`.
pub struct FileStreamSink;

/// Lines per poll at most (`batch.size`'s default).
const DEFAULT_BATCH_SIZE: usize = 2000;

impl Connector for FileStreamSource {
    fn class(&self) -> &'static str {
        "org.apache.kafka.connect.file.FileStreamSourceConnector"
    }

    fn kind(&self) -> ConnectorKind {
        ConnectorKind::Source
    }

    fn config_keys(&self) -> Vec<ConfigKey> {
        vec![
            ConfigKey::optional(
                "file",
                "STRING",
                "",
                "Source filename. If not specified, the standard input will be used",
            ),
            ConfigKey::required("topic", "LIST", "The topic to publish data to"),
            ConfigKey::optional(
                "batch.size",
                "INT",
                "2000",
                "The maximum number of records the source task can read from the file each time it is polled",
            ),
        ]
    }

    fn validate(&self, props: &Props) -> Vec<ConfigProblem> {
        let mut problems = Vec::new();
        if let Some(topic) = props.get("topic")
            && topic.split(',').filter(|t| !t.trim().is_empty()).count() != 1
        {
            problems.push(ConfigProblem::new("topic", "'topic' in FileStreamSourceConnector configuration requires definition of a single topic"));
        }
        if props.get("file").is_none_or(|f| f.is_empty()) {
            problems.push(ConfigProblem::new(
                "file",
                "Spate's FileStream source needs a file; it does not read its standard input",
            ));
        }
        if let Some(size) = props.get("batch.size")
            && size.parse::<usize>().map_or(true, |n| n == 0)
        {
            problems.push(ConfigProblem::new(
                "batch.size",
                format!(
                    "Invalid value {size} for configuration batch.size: must be a positive number"
                ),
            ));
        }
        problems
    }

    fn task_configs(&self, props: &Props, _max_tasks: usize) -> Result<Vec<Props>, TaskError> {
        // One file, one reader: Kafka's connector makes one task whatever tasks.max says.
        Ok(vec![props.clone()])
    }

    fn source_task(&self) -> Option<Box<dyn SourceTask>> {
        Some(Box::new(FileSourceTask::default()))
    }
}

#[derive(Default)]
struct FileSourceTask {
    file: String,
    topic: String,
    batch_size: usize,
    reader: Option<BufReader<File>>,
    position: u64,
    partial: Vec<u8>,
}

impl FileSourceTask {
    fn open(&mut self) -> Result<bool, TaskError> {
        if self.reader.is_some() {
            return Ok(true);
        }
        match File::open(&self.file) {
            Ok(mut file) => {
                file.seek(SeekFrom::Start(self.position)).map_err(|e| {
                    TaskError::fatal(format!(
                        "cannot seek to position {} of {}: {e}",
                        self.position, self.file
                    ))
                })?;
                self.reader = Some(BufReader::new(file));
                Ok(true)
            }
            // Kafka's task waits for a file that does not exist yet.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(TaskError::retriable(format!(
                "cannot open {}: {e}",
                self.file
            ))),
        }
    }
}

impl SourceTask for FileSourceTask {
    fn start(&mut self, props: &Props, offsets: &dyn OffsetReader) -> Result<(), TaskError> {
        self.file = props.get("file").cloned().unwrap_or_default();
        self.topic = props
            .get("topic")
            .cloned()
            .unwrap_or_default()
            .trim()
            .to_string();
        self.batch_size = props
            .get("batch.size")
            .and_then(|s| s.parse().ok())
            .unwrap_or(DEFAULT_BATCH_SIZE);
        self.position = offsets
            .offset(&json!({ "filename": self.file }))
            .and_then(|o| o.get("position").and_then(serde_json::Value::as_u64))
            .unwrap_or(0);
        Ok(())
    }

    fn poll(&mut self) -> Result<Vec<ConnectRecord>, TaskError> {
        if !self.open()? {
            return Ok(Vec::new());
        }
        let mut records = Vec::new();
        let Some(reader) = self.reader.as_mut() else {
            return Ok(records);
        };
        while records.len() < self.batch_size {
            let read = reader
                .read_until(b'\n', &mut self.partial)
                .map_err(|e| TaskError::retriable(format!("cannot read {}: {e}", self.file)))?;
            if read == 0 || self.partial.last() != Some(&b'\n') {
                // End of the file so far; a partial last line waits for its newline.
                break;
            }
            self.position += self.partial.len() as u64;
            let mut line = std::mem::take(&mut self.partial);
            line.pop();
            if line.last() == Some(&b'\r') {
                line.pop();
            }
            let mut record = ConnectRecord::new(
                &self.topic,
                Some(Schema::new(SchemaType::String).into()),
                Value::String(String::from_utf8_lossy(&line).into_owned()),
            );
            record.source_partition = Some(json!({ "filename": self.file }));
            record.source_offset = Some(json!({ "position": self.position }));
            records.push(record);
        }
        if !self.partial.is_empty() {
            // Re-read the partial line from its start next time, when it may be complete.
            self.reader = None;
            self.partial.clear();
        }
        Ok(records)
    }
}

impl Connector for FileStreamSink {
    fn class(&self) -> &'static str {
        "org.apache.kafka.connect.file.FileStreamSinkConnector"
    }

    fn kind(&self) -> ConnectorKind {
        ConnectorKind::Sink
    }

    fn config_keys(&self) -> Vec<ConfigKey> {
        vec![ConfigKey::optional(
            "file",
            "STRING",
            "",
            "Destination filename. If not specified, the standard output will be used",
        )]
    }

    fn validate(&self, props: &Props) -> Vec<ConfigProblem> {
        if props.get("file").is_none_or(|f| f.is_empty()) {
            return vec![ConfigProblem::new(
                "file",
                "Spate's FileStream sink needs a file; it does not write to its standard output",
            )];
        }
        Vec::new()
    }

    fn task_configs(&self, props: &Props, max_tasks: usize) -> Result<Vec<Props>, TaskError> {
        Ok(vec![props.clone(); max_tasks.max(1)])
    }

    fn sink_task(&self) -> Option<Box<dyn SinkTask>> {
        Some(Box::new(FileSinkTask { out: None }))
    }
}

struct FileSinkTask {
    out: Option<(String, BufWriter<File>)>,
}

impl SinkTask for FileSinkTask {
    fn start(&mut self, props: &Props) -> Result<(), TaskError> {
        let path = props.get("file").cloned().unwrap_or_default();
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(|e| TaskError::retriable(format!("cannot open {path} for appending: {e}")))?;
        self.out = Some((path, BufWriter::new(file)));
        Ok(())
    }

    fn put(&mut self, records: &[ConnectRecord]) -> Result<(), TaskError> {
        let Some((path, out)) = self.out.as_mut() else {
            return Err(TaskError::fatal("the sink task was not started"));
        };
        for record in records {
            let line = match &record.value {
                Value::String(s) => s.clone(),
                Value::Null => "null".to_string(),
                value => {
                    convert::connect_to_json(record.value_schema.as_deref(), value).to_string()
                }
            };
            writeln!(out, "{line}")
                .map_err(|e| TaskError::retriable(format!("cannot write to {path}: {e}")))?;
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<(), TaskError> {
        if let Some((path, out)) = self.out.as_mut() {
            out.flush()
                .map_err(|e| TaskError::retriable(format!("cannot write to {path}: {e}")))?;
            out.get_ref()
                .sync_data()
                .map_err(|e| TaskError::retriable(format!("cannot sync {path}: {e}")))?;
        }
        Ok(())
    }

    fn stop(&mut self) {
        let _ = self.flush();
        self.out = None;
    }
}
