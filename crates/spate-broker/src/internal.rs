//! Writing to and reading back the broker's own compacted topics (`__consumer_offsets`,
//! `__transaction_state`): an append is acknowledged to the caller only once durable, and a
//! replay visits every record from the log start, so coordinators rebuild their state on start.

use std::sync::Arc;

use spate_log::{BatchBuilder, BatchHeader};

use crate::Broker;
use crate::error::BrokerError;
use crate::topics::TopicRegistry;

impl Broker {
    /// Appends a batch to a partition of an internal topic and waits until it is durable.
    /// Returns the offset of its first record.
    pub(crate) async fn append_internal(
        self: &Arc<Self>,
        topic: &str,
        partition: i32,
        builder: BatchBuilder,
    ) -> Result<i64, BrokerError> {
        let partition = self
            .topics
            .get(topic)
            .and_then(|t| t.partition(partition))
            .ok_or_else(|| BrokerError::UnknownTopicOrPartition {
                name: format!("{topic}-{partition}"),
            })?;
        let bytes = builder
            .build()
            .map_err(|e| BrokerError::from(spate_log::LogError::Batch(e)))?;
        let header = BatchHeader::parse(&bytes)
            .map_err(|e| BrokerError::from(spate_log::LogError::Batch(e)))?;
        let log = Arc::clone(&partition.log);
        let writer = Arc::clone(&log);
        let now = self.now_ms();
        let info = tokio::task::spawn_blocking(move || writer.append(&bytes, &header, now))
            .await
            .map_err(|e| BrokerError::InvalidRequest {
                reason: e.to_string(),
            })??;
        if info.needs_sync {
            self.syncer.request(&log);
        }
        if info.wait_for_durable {
            log.wait_durable(info.last_offset + 1).await?;
        }
        Ok(info.base_offset)
    }
}

/// Reads every record of a compacted internal topic, oldest first.
pub(crate) fn replay_topic(
    topics: &TopicRegistry,
    name: &str,
    mut visit: impl FnMut(&BatchHeader, i64, Option<&[u8]>, Option<&[u8]>),
) -> Result<(), BrokerError> {
    let Some(topic) = topics.get(name) else {
        return Ok(());
    };
    let batch_error = |e| BrokerError::from(spate_log::LogError::Batch(e));
    for partition in topic.partitions() {
        let mut next = partition.log.offsets().log_start_offset;
        loop {
            let read = partition.log.read(next, 4 << 20, true)?;
            if read.records.is_empty() {
                break;
            }
            let mut rest = &read.records[..];
            while !rest.is_empty() {
                let header = BatchHeader::parse(rest).map_err(batch_error)?;
                let batch = &rest[..header.total_len()];
                let records =
                    spate_log::batch::record_bytes(batch, 64 << 20).map_err(batch_error)?;
                for record in
                    spate_log::batch::parse_records(&records, &header).map_err(batch_error)?
                {
                    visit(
                        &header,
                        header.base_offset + i64::from(record.offset_delta),
                        record.key,
                        record.value,
                    );
                }
                next = header.last_offset() + 1;
                rest = &rest[header.total_len()..];
            }
        }
    }
    Ok(())
}
