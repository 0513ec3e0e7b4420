//! Mirror topics through the broker's request path: a topic made with
//! `spate.mirror.offsets=preserve` (and described with it) takes records at the source offsets
//! they carry, answers a plain produce with INVALID_REQUEST and a transactional one too, and
//! ListOffsets and Fetch see the gaps.

use std::collections::BTreeMap;
use std::sync::Arc;

use bytes::Bytes;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use spate_broker::{Broker, BrokerOptions, Reply};
use spate_log::BatchBuilder;
use spate_log::batch::encode_headers;
use spate_log::mirror::SOURCE_OFFSET_HEADER;
use spate_protocol::Request;

fn s(value: &str) -> StrBytes {
    StrBytes::from_string(value.to_string())
}

fn open_broker(dir: &std::path::Path) -> Arc<Broker> {
    Broker::open(BrokerOptions {
        authorization: None,
        data_dir: dir.to_path_buf(),
        node_id: 1,
        advertised_host: "localhost".into(),
        advertised_port: 9092,
        listeners: Vec::new(),
        auto_create_topics: false,
        default_partitions: 1,
        fetch_max_bytes: 1 << 20,
        topic_defaults: BTreeMap::new(),
        static_configs: BTreeMap::new(),
        log_levels: None,
        sync_threads: 1,
        groups: Default::default(),
        transactions: Default::default(),
        clock: spate_broker::system_clock(),
    })
    .expect("open broker")
}

async fn call(
    broker: &Arc<Broker>,
    api_key: ApiKey,
    api_version: i16,
    body: RequestKind,
) -> ResponseKind {
    let request = Request {
        api_key,
        api_version,
        correlation_id: 1,
        client_id: None,
        body,
        size_bytes: 0,
        peer: None,
        session: None,
        received: None,
    };
    match broker.handle(request).await {
        Reply::Now(response) => response,
        Reply::Later(future) => future.await,
        Reply::Nothing => panic!("no response"),
    }
}

/// A batch of records with these source offsets (`None`: no header), and the transactional
/// flag.
fn batch(offsets: &[Option<i64>], transactional: bool) -> Bytes {
    let mut builder = BatchBuilder::new(0, spate_broker::system_clock()());
    if transactional {
        builder.attributes |= 0x10;
        builder.producer_id = 1;
        builder.producer_epoch = 0;
        builder.base_sequence = 0;
    }
    for (i, offset) in offsets.iter().enumerate() {
        let bytes = offset.map(i64::to_be_bytes);
        let headers: Vec<(&[u8], Option<&[u8]>)> = bytes
            .as_ref()
            .map(|b| vec![(SOURCE_OFFSET_HEADER.as_bytes(), Some(&b[..]))])
            .unwrap_or_default();
        builder.push_raw(
            i as i32,
            0,
            Some(b"k"),
            Some(format!("v{i}").as_bytes()),
            &encode_headers(headers.into_iter()),
        );
    }
    Bytes::from(builder.build().expect("batch"))
}

async fn produce(broker: &Arc<Broker>, records: Bytes) -> (i16, i64) {
    let request = ProduceRequest::default()
        .with_acks(-1)
        .with_timeout_ms(5000)
        .with_topic_data(vec![
            produce_request::TopicProduceData::default()
                .with_name(TopicName(s("m")))
                .with_partition_data(vec![
                    produce_request::PartitionProduceData::default()
                        .with_index(0)
                        .with_records(Some(records)),
                ]),
        ]);
    let ResponseKind::Produce(response) =
        call(broker, ApiKey::Produce, 9, RequestKind::Produce(request)).await
    else {
        panic!("not a produce response");
    };
    let partition = &response.responses[0].partition_responses[0];
    (partition.error_code, partition.base_offset)
}

async fn latest_offset(broker: &Arc<Broker>) -> i64 {
    let request = ListOffsetsRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_topics(vec![
            list_offsets_request::ListOffsetsTopic::default()
                .with_name(TopicName(s("m")))
                .with_partitions(vec![
                    list_offsets_request::ListOffsetsPartition::default()
                        .with_partition_index(0)
                        .with_timestamp(-1),
                ]),
        ]);
    let ResponseKind::ListOffsets(response) = call(
        broker,
        ApiKey::ListOffsets,
        5,
        RequestKind::ListOffsets(request),
    )
    .await
    else {
        panic!("not a list offsets response");
    };
    response.topics[0].partitions[0].offset
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mirror_topic_takes_records_at_their_source_offsets_and_refuses_others() {
    let dir = tempfile::tempdir().expect("tempdir");
    let broker = open_broker(dir.path());
    let create = CreateTopicsRequest::default()
        .with_timeout_ms(5000)
        .with_topics(vec![
            create_topics_request::CreatableTopic::default()
                .with_name(TopicName(s("m")))
                .with_num_partitions(1)
                .with_replication_factor(1)
                .with_configs(vec![
                    create_topics_request::CreatableTopicConfig::default()
                        .with_name(s("spate.mirror.offsets"))
                        .with_value(Some(s("preserve"))),
                ]),
        ]);
    let ResponseKind::CreateTopics(created) = call(
        &broker,
        ApiKey::CreateTopics,
        5,
        RequestKind::CreateTopics(create),
    )
    .await
    else {
        panic!("not a create topics response");
    };
    assert_eq!(
        created.topics[0].error_code, 0,
        "{:?}",
        created.topics[0].error_message
    );

    let describe = DescribeConfigsRequest::default().with_resources(vec![
        describe_configs_request::DescribeConfigsResource::default()
            .with_resource_type(2)
            .with_resource_name(s("m"))
            .with_configuration_keys(Some(vec![s("spate.mirror.offsets")])),
    ]);
    let ResponseKind::DescribeConfigs(described) = call(
        &broker,
        ApiKey::DescribeConfigs,
        4,
        RequestKind::DescribeConfigs(describe),
    )
    .await
    else {
        panic!("not a describe configs response");
    };
    let entry = &described.results[0].configs[0];
    assert_eq!(entry.value.as_deref(), Some("preserve"));

    // Placed at the source's offsets, gaps and all; a re-send of held records is answered.
    assert_eq!(
        produce(&broker, batch(&[Some(3), Some(4), Some(8)], false)).await,
        (0, 3)
    );
    assert_eq!(latest_offset(&broker).await, 9);
    assert_eq!(
        produce(&broker, batch(&[Some(4), Some(8)], false)).await,
        (0, 4)
    );
    assert_eq!(
        produce(&broker, batch(&[Some(8), Some(12)], false)).await.0,
        0
    );
    assert_eq!(latest_offset(&broker).await, 13);

    // A record without its source offset, and a transactional batch, are refused.
    let invalid_request = 42;
    assert_eq!(
        produce(&broker, batch(&[Some(20), None], false)).await.0,
        invalid_request
    );
    assert_eq!(
        produce(&broker, batch(&[Some(20)], true)).await.0,
        invalid_request
    );
    assert_eq!(latest_offset(&broker).await, 13);

    // A fetch from inside a gap starts at the next record.
    let fetch = FetchRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_max_wait_ms(0)
        .with_max_bytes(1 << 20)
        .with_topics(vec![
            fetch_request::FetchTopic::default()
                .with_topic(TopicName(s("m")))
                .with_partitions(vec![
                    fetch_request::FetchPartition::default()
                        .with_partition(0)
                        .with_fetch_offset(5)
                        .with_partition_max_bytes(1 << 20),
                ]),
        ]);
    let ResponseKind::Fetch(fetched) =
        call(&broker, ApiKey::Fetch, 11, RequestKind::Fetch(fetch)).await
    else {
        panic!("not a fetch response");
    };
    let records = fetched.responses[0].partitions[0]
        .records
        .clone()
        .expect("records");
    let header = spate_log::BatchHeader::parse(&records).expect("a batch");
    assert_eq!(
        header.base_offset, 3,
        "the batch holding offset 8 starts at 3"
    );
    assert!(header.last_offset() >= 8);
}
