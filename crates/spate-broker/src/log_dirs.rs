//! DescribeLogDirs (API 35): the bytes each partition takes on disk, as `kafka-log-dirs
//! --describe` and admin clients' `describeLogDirs` read them.
//!
//! Spate keeps every partition under one directory (`<data-dir>/topics`), so the answer has
//! one log directory. A partition's size is the sum of its segment files' sizes, read from the
//! log's in-memory segment table (no file system calls). The volume's total and usable bytes
//! (v4) are reported as unknown (`-1`), as Kafka does when it cannot read them. Topics and
//! partitions the request names that do not exist are left out, as Kafka leaves them out.
//! Authorisation (DESCRIBE on the cluster) is checked in `Broker::refuse`.

use std::collections::HashSet;

use kafka_protocol::messages::describe_log_dirs_response::{
    DescribeLogDirsPartition, DescribeLogDirsResult, DescribeLogDirsTopic,
};
use kafka_protocol::messages::{DescribeLogDirsRequest, DescribeLogDirsResponse};
use kafka_protocol::protocol::StrBytes;

use crate::Broker;
use crate::topics::Topic;

/// Kafka's value for volume sizes it cannot read.
const UNKNOWN_VOLUME_BYTES: i64 = -1;

impl Broker {
    pub(crate) fn describe_log_dirs(&self, req: DescribeLogDirsRequest) -> DescribeLogDirsResponse {
        let topics = self.topics.list();
        let described: Vec<DescribeLogDirsTopic> = match &req.topics {
            None => topics
                .iter()
                .map(|topic| describe_topic(topic, None))
                .collect(),
            Some(asked) => asked
                .iter()
                .filter_map(|wanted| {
                    let topic = topics.iter().find(|t| t.name == *wanted.topic.0)?;
                    let partitions: HashSet<i32> = wanted.partitions.iter().copied().collect();
                    Some(describe_topic(topic, Some(&partitions)))
                })
                .filter(|t| !t.partitions.is_empty())
                .collect(),
        };
        let log_dir = self.options.data_dir.join("topics");
        DescribeLogDirsResponse::default().with_results(vec![
            DescribeLogDirsResult::default()
                .with_log_dir(StrBytes::from_string(log_dir.display().to_string()))
                .with_topics(described)
                .with_total_bytes(UNKNOWN_VOLUME_BYTES)
                .with_usable_bytes(UNKNOWN_VOLUME_BYTES),
        ])
    }
}

/// The sizes of `topic`'s partitions, all of them or those in `only`.
fn describe_topic(topic: &Topic, only: Option<&HashSet<i32>>) -> DescribeLogDirsTopic {
    let partitions = topic
        .partitions()
        .iter()
        .filter(|p| only.is_none_or(|only| only.contains(&p.index)))
        .map(|p| {
            DescribeLogDirsPartition::default()
                .with_partition_index(p.index)
                .with_partition_size(i64::try_from(p.log.size_bytes()).unwrap_or(i64::MAX))
                .with_offset_lag(0)
                .with_is_future_key(false)
        })
        .collect();
    DescribeLogDirsTopic::default()
        .with_name(kafka_protocol::messages::TopicName(StrBytes::from_string(
            topic.name.clone(),
        )))
        .with_partitions(partitions)
}
