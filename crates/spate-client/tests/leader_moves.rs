//! The client against a fake two-broker cluster whose partition leader moves: requests must
//! go to the leader by node id, and NOT_LEADER_OR_FOLLOWER must lead to a metadata refresh
//! and a retry at the new leader, for produce and for fetch. The fake brokers speak older
//! API versions than Spate (Metadata v9, Produce v8, Fetch v11), as a Kafka 2.x cluster would.

use std::sync::{Arc, Mutex};

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::api_versions_response::ApiVersion;
use kafka_protocol::messages::fetch_response::{FetchableTopicResponse, PartitionData};
use kafka_protocol::messages::list_offsets_response::{
    ListOffsetsPartitionResponse, ListOffsetsTopicResponse,
};
use kafka_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::messages::produce_response::{PartitionProduceResponse, TopicProduceResponse};
use kafka_protocol::messages::{
    ApiKey, ApiVersionsResponse, BrokerId, FetchRequest, FetchResponse, ListOffsetsRequest,
    ListOffsetsResponse, MetadataResponse, ProduceRequest, ProduceResponse, RequestHeader,
    ResponseHeader, TopicName,
};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use spate_client::{
    Client, ClientConfig, Consumer, ConsumerConfig, OffsetSpec, Producer, ProducerConfig,
    ProducerRecord,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const NOT_LEADER_OR_FOLLOWER: i16 = 6;
const TOPIC: &str = "moving";

#[derive(Default)]
struct Cluster {
    /// Node the metadata names as leader of partition 0.
    metadata_leader: i32,
    /// Node that really leads; the other answers NOT_LEADER_OR_FOLLOWER and, as a side
    /// effect, brings the metadata up to date.
    real_leader: i32,
    /// The partition's log: one stored batch per produce.
    log: Vec<Bytes>,
    /// (node, api) of every request, for the assertions.
    seen: Vec<(i32, ApiKey)>,
    addresses: Vec<(i32, u16)>,
}

async fn serve(node: i32, listener: TcpListener, cluster: Arc<Mutex<Cluster>>) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            return;
        };
        tokio::spawn(connection(node, stream, Arc::clone(&cluster)));
    }
}

async fn connection(node: i32, mut stream: TcpStream, cluster: Arc<Mutex<Cluster>>) {
    loop {
        let mut prefix = [0u8; 4];
        if stream.read_exact(&mut prefix).await.is_err() {
            return;
        }
        let mut frame = vec![0u8; i32::from_be_bytes(prefix) as usize];
        if stream.read_exact(&mut frame).await.is_err() {
            return;
        }
        let mut buf = Bytes::from(frame);
        let api = ApiKey::try_from(i16::from_be_bytes([buf[0], buf[1]])).expect("api key");
        let version = i16::from_be_bytes([buf[2], buf[3]]);
        let header =
            RequestHeader::decode(&mut buf, api.request_header_version(version)).expect("header");
        let mut out = BytesMut::new();
        out.put_i32(0);
        ResponseHeader::default()
            .with_correlation_id(header.correlation_id)
            .encode(&mut out, api.response_header_version(version))
            .expect("response header");
        respond(node, api, version, &mut buf, &cluster, &mut out);
        let size = (out.len() - 4) as i32;
        out[..4].copy_from_slice(&size.to_be_bytes());
        if stream.write_all(&out).await.is_err() {
            return;
        }
    }
}

fn respond(
    node: i32,
    api: ApiKey,
    version: i16,
    body: &mut Bytes,
    cluster: &Mutex<Cluster>,
    out: &mut BytesMut,
) {
    let mut cluster = cluster.lock().expect("cluster");
    cluster.seen.push((node, api));
    let leads = cluster.real_leader == node;
    match api {
        ApiKey::ApiVersions => {
            let apis = [
                (ApiKey::ApiVersions, 0, 3),
                (ApiKey::Metadata, 0, 9),
                (ApiKey::Produce, 0, 8),
                (ApiKey::Fetch, 0, 11),
                (ApiKey::ListOffsets, 0, 5),
            ];
            ApiVersionsResponse::default()
                .with_api_keys(
                    apis.iter()
                        .map(|(k, min, max)| {
                            ApiVersion::default()
                                .with_api_key(*k as i16)
                                .with_min_version(*min)
                                .with_max_version(*max)
                        })
                        .collect(),
                )
                .encode(out, version)
                .expect("api versions");
        }
        ApiKey::Metadata => {
            let brokers = cluster
                .addresses
                .iter()
                .map(|&(id, port)| {
                    MetadataResponseBroker::default()
                        .with_node_id(BrokerId(id))
                        .with_host(StrBytes::from_static_str("127.0.0.1"))
                        .with_port(i32::from(port))
                })
                .collect();
            let leader = cluster.metadata_leader;
            let topic = MetadataResponseTopic::default()
                .with_name(Some(TopicName(StrBytes::from_static_str(TOPIC))))
                .with_partitions(vec![
                    MetadataResponsePartition::default()
                        .with_partition_index(0)
                        .with_leader_id(BrokerId(leader))
                        .with_replica_nodes(vec![BrokerId(1), BrokerId(2)])
                        .with_isr_nodes(vec![BrokerId(1), BrokerId(2)]),
                ]);
            MetadataResponse::default()
                .with_brokers(brokers)
                .with_controller_id(BrokerId(1))
                .with_topics(vec![topic])
                .encode(out, version)
                .expect("metadata");
        }
        ApiKey::Produce => {
            let request = ProduceRequest::decode(body, version).expect("produce request");
            let data = &request.topic_data[0];
            assert_eq!(
                data.name.0.as_str(),
                TOPIC,
                "produce before v13 names the topic"
            );
            let partition = &data.partition_data[0];
            let mut error_code = 0;
            let base_offset = cluster.log.len() as i64;
            if leads {
                cluster
                    .log
                    .push(partition.records.clone().expect("records"));
            } else {
                error_code = NOT_LEADER_OR_FOLLOWER;
                cluster.metadata_leader = cluster.real_leader;
            }
            ProduceResponse::default()
                .with_responses(vec![
                    TopicProduceResponse::default()
                        .with_name(data.name.clone())
                        .with_partition_responses(vec![
                            PartitionProduceResponse::default()
                                .with_index(0)
                                .with_error_code(error_code)
                                .with_base_offset(base_offset),
                        ]),
                ])
                .encode(out, version)
                .expect("produce response");
        }
        ApiKey::Fetch => {
            let request = FetchRequest::decode(body, version).expect("fetch request");
            let topic = &request.topics[0];
            let offset = topic.partitions[0].fetch_offset;
            let mut partition = PartitionData::default().with_partition_index(0);
            if leads {
                // One record per stored batch in this test: the batch index is the offset.
                let records: Vec<u8> = cluster
                    .log
                    .iter()
                    .enumerate()
                    .skip(offset as usize)
                    .flat_map(|(i, batch)| {
                        let mut batch = batch.to_vec();
                        batch[..8].copy_from_slice(&(i as i64).to_be_bytes());
                        batch
                    })
                    .collect();
                partition = partition
                    .with_high_watermark(cluster.log.len() as i64)
                    .with_records(Some(Bytes::from(records)));
            } else {
                partition = partition.with_error_code(NOT_LEADER_OR_FOLLOWER);
                cluster.metadata_leader = cluster.real_leader;
            }
            FetchResponse::default()
                .with_responses(vec![
                    FetchableTopicResponse::default()
                        .with_topic(topic.topic.clone())
                        .with_partitions(vec![partition]),
                ])
                .encode(out, version)
                .expect("fetch response");
        }
        ApiKey::ListOffsets => {
            let request = ListOffsetsRequest::decode(body, version).expect("list offsets");
            let topic = &request.topics[0];
            let asked = topic.partitions[0].timestamp;
            let offset = if asked == -2 {
                0
            } else {
                cluster.log.len() as i64
            };
            if !leads {
                cluster.metadata_leader = cluster.real_leader;
            }
            ListOffsetsResponse::default()
                .with_topics(vec![
                    ListOffsetsTopicResponse::default()
                        .with_name(topic.name.clone())
                        .with_partitions(vec![
                            ListOffsetsPartitionResponse::default()
                                .with_partition_index(0)
                                .with_error_code(if leads { 0 } else { NOT_LEADER_OR_FOLLOWER })
                                .with_offset(offset),
                        ]),
                ])
                .encode(out, version)
                .expect("list offsets response");
        }
        other => panic!("unexpected {other:?}"),
    }
}

async fn start_cluster() -> (Arc<Mutex<Cluster>>, String) {
    let cluster = Arc::new(Mutex::new(Cluster::default()));
    let mut bootstrap = String::new();
    for node in [1, 2] {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = listener.local_addr().expect("addr").port();
        cluster
            .lock()
            .expect("cluster")
            .addresses
            .push((node, port));
        if node == 1 {
            bootstrap = format!("127.0.0.1:{port}");
        }
        tokio::spawn(serve(node, listener, Arc::clone(&cluster)));
    }
    (cluster, bootstrap)
}

fn record(value: &str) -> ProducerRecord {
    ProducerRecord {
        key: None,
        value: Some(Bytes::from(value.to_string())),
        headers: vec![],
        timestamp_ms: 1_700_000_000_000,
    }
}

#[tokio::test]
async fn produce_and_fetch_follow_the_leader() {
    let (cluster, bootstrap) = start_cluster().await;
    {
        let mut c = cluster.lock().expect("cluster");
        c.metadata_leader = 1;
        c.real_leader = 2;
    }
    let client = Client::connect(ClientConfig::new(vec![bootstrap]))
        .await
        .expect("connect");
    let mut producer = Producer::new(client.clone(), TOPIC, ProducerConfig::default())
        .await
        .expect("producer");
    for value in ["a", "b", "c"] {
        producer.send(record(value), None).await.expect("send");
        producer.flush().await;
    }
    assert!(producer.take_failures().is_empty());
    assert_eq!(producer.acked_records(), 3);
    let produced_at: Vec<i32> = cluster
        .lock()
        .expect("cluster")
        .seen
        .iter()
        .filter(|(_, api)| *api == ApiKey::Produce)
        .map(|(node, _)| *node)
        .collect();
    assert_eq!(
        produced_at,
        vec![1, 2, 2, 2],
        "refused at the stale leader, then the new one"
    );

    // The metadata goes stale again: the fetch is refused once, then follows the leader.
    cluster.lock().expect("cluster").metadata_leader = 1;
    let topic = client.topic_metadata(TOPIC, false).await.expect("metadata");
    let offsets = client
        .list_offsets(&topic, &[(0, OffsetSpec::Earliest)])
        .await
        .expect("list offsets retries at the new leader");
    assert_eq!(offsets[&0].offset, Some(0));
    cluster.lock().expect("cluster").metadata_leader = 1;
    let topic = client.topic_metadata(TOPIC, false).await.expect("metadata");
    let mut consumer = Consumer::new(
        client,
        topic,
        [(0, 0)].into_iter().collect(),
        ConsumerConfig::default(),
    );
    let mut values = Vec::new();
    for _ in 0..5 {
        let poll = consumer.poll().await.expect("poll");
        for part in poll.partitions {
            values.extend(part.records.into_iter().map(|r| r.value.expect("value")));
        }
        if values.len() == 3 {
            break;
        }
    }
    assert_eq!(values, vec!["a", "b", "c"]);
    assert_eq!(consumer.positions()[&0], 3);
    let fetched_at: Vec<i32> = cluster
        .lock()
        .expect("cluster")
        .seen
        .iter()
        .filter(|(_, api)| *api == ApiKey::Fetch)
        .map(|(node, _)| *node)
        .collect();
    assert_eq!(fetched_at[0], 1);
    assert!(fetched_at[1..].iter().all(|&n| n == 2), "{fetched_at:?}");
}
