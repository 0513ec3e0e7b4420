//! Wire-level tests against an in-process server: bad input gets the answer Kafka gives (or the
//! connection closed where Kafka closes it), the broker keeps serving everyone else, nothing
//! acknowledged is lost, responses keep request order, and long polls end when data arrives.
//! The HTTP listener's health endpoints tell a starting server from a ready one.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes, encode_request_header_into_buffer};
use spate_log::BatchBuilder;
use spate_server::{Config, Server};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

mod common;
use common::{Serving, local_config};

const DEADLINE: Duration = Duration::from_secs(20);

struct TestServer {
    addr: SocketAddr,
    serving: Serving,
    _dir: Option<tempfile::TempDir>,
}

impl TestServer {
    async fn start(adjust: impl FnOnce(&mut Config)) -> TestServer {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut config = local_config(dir.path());
        adjust(&mut config);
        let keep_dir = config.data_dir == dir.path();
        TestServer::start_with(config, keep_dir.then_some(dir)).await
    }

    async fn start_with(config: Config, dir: Option<tempfile::TempDir>) -> TestServer {
        let server = Server::bind(config).await.expect("bind");
        TestServer {
            addr: server.kafka_addr(),
            serving: Serving::spawn(server),
            _dir: dir,
        }
    }

    async fn stop(self) {
        self.serving.stop().await;
    }
}

/// A bare Kafka connection: encodes requests with kafka-protocol, reads raw responses.
struct Raw {
    stream: TcpStream,
    next_id: i32,
}

impl Raw {
    async fn connect(addr: SocketAddr) -> Raw {
        Raw {
            stream: TcpStream::connect(addr).await.expect("connect"),
            next_id: 1,
        }
    }

    async fn send<R: Encodable>(&mut self, api: ApiKey, version: i16, request: &R) -> i32 {
        let (id, frame) = self.frame(api, version, request);
        self.stream.write_all(&frame).await.expect("write");
        id
    }

    /// A request's frame, with its correlation id, for sending later (several in one write).
    fn frame<R: Encodable>(&mut self, api: ApiKey, version: i16, request: &R) -> (i32, BytesMut) {
        let id = self.next_id;
        self.next_id += 1;
        let mut body = BytesMut::new();
        let header = RequestHeader::default()
            .with_request_api_key(api as i16)
            .with_request_api_version(version)
            .with_correlation_id(id)
            .with_client_id(Some(StrBytes::from_static_str("wire-test")));
        encode_request_header_into_buffer(&mut body, &header).expect("header");
        request.encode(&mut body, version).expect("body");
        let mut frame = BytesMut::new();
        frame.put_i32(body.len() as i32);
        frame.put_slice(&body);
        (id, frame)
    }

    async fn send_raw(&mut self, bytes: &[u8]) {
        let _ = self.stream.write_all(bytes).await;
    }

    /// The next response frame, or `None` when the broker closed the connection.
    async fn recv(&mut self) -> Option<Bytes> {
        let read = async {
            let mut prefix = [0u8; 4];
            self.stream.read_exact(&mut prefix).await.ok()?;
            let mut body = vec![0u8; i32::from_be_bytes(prefix) as usize];
            self.stream.read_exact(&mut body).await.ok()?;
            Some(Bytes::from(body))
        };
        tokio::time::timeout(DEADLINE, read)
            .await
            .expect("the broker answers or closes before the deadline")
    }

    async fn recv_response<R: Decodable>(&mut self, api: ApiKey, version: i16, id: i32) -> R {
        let mut frame = self
            .recv()
            .await
            .expect("a response, not a closed connection");
        let header = ResponseHeader::decode(&mut frame, api.response_header_version(version))
            .expect("header");
        assert_eq!(
            header.correlation_id, id,
            "responses come back in request order"
        );
        R::decode(&mut frame, version).expect("response body")
    }

    async fn call<Req: Encodable, Resp: Decodable>(
        &mut self,
        api: ApiKey,
        version: i16,
        request: &Req,
    ) -> Resp {
        let id = self.send(api, version, request).await;
        self.recv_response(api, version, id).await
    }

    async fn assert_closed(&mut self) {
        assert!(
            self.recv().await.is_none(),
            "the broker should close this connection"
        );
    }
}

async fn assert_still_serving(addr: SocketAddr) {
    let mut raw = Raw::connect(addr).await;
    let response: ApiVersionsResponse = raw
        .call(ApiKey::ApiVersions, 3, &ApiVersionsRequest::default())
        .await;
    assert_eq!(response.error_code, 0);
}

async fn create_topic(raw: &mut Raw, name: &str, configs: &[(&str, &str)]) {
    let configs = configs
        .iter()
        .map(|(k, v)| {
            create_topics_request::CreatableTopicConfig::default()
                .with_name(StrBytes::from_string(k.to_string()))
                .with_value(Some(StrBytes::from_string(v.to_string())))
        })
        .collect();
    let request = CreateTopicsRequest::default().with_topics(vec![
        create_topics_request::CreatableTopic::default()
            .with_name(TopicName(StrBytes::from_string(name.to_string())))
            .with_num_partitions(1)
            .with_replication_factor(1)
            .with_configs(configs),
    ]);
    let response: CreateTopicsResponse = raw.call(ApiKey::CreateTopics, 7, &request).await;
    assert_eq!(
        response.topics[0].error_code, 0,
        "{:?}",
        response.topics[0].error_message
    );
}

fn batch(values: &[&[u8]]) -> Bytes {
    let mut builder = BatchBuilder::new(0, spate_broker::system_clock()());
    for value in values {
        builder.push(0, Some(b"k"), Some(value));
    }
    Bytes::from(builder.build().expect("batch"))
}

fn produce_request(topic: &str, records: Bytes, acks: i16) -> ProduceRequest {
    ProduceRequest::default()
        .with_acks(acks)
        .with_timeout_ms(30_000)
        .with_topic_data(vec![
            produce_request::TopicProduceData::default()
                .with_name(TopicName(StrBytes::from_string(topic.to_string())))
                .with_partition_data(vec![
                    produce_request::PartitionProduceData::default()
                        .with_index(0)
                        .with_records(Some(records)),
                ]),
        ])
}

async fn produce(
    raw: &mut Raw,
    topic: &str,
    records: Bytes,
) -> produce_response::PartitionProduceResponse {
    let response: ProduceResponse = raw
        .call(ApiKey::Produce, 9, &produce_request(topic, records, -1))
        .await;
    response.responses[0].partition_responses[0].clone()
}

async fn latest_offset(raw: &mut Raw, topic: &str) -> i64 {
    let request = ListOffsetsRequest::default().with_topics(vec![
        list_offsets_request::ListOffsetsTopic::default()
            .with_name(TopicName(StrBytes::from_string(topic.to_string())))
            .with_partitions(vec![
                list_offsets_request::ListOffsetsPartition::default().with_timestamp(-1),
            ]),
    ]);
    let response: ListOffsetsResponse = raw.call(ApiKey::ListOffsets, 7, &request).await;
    response.topics[0].partitions[0].offset
}

fn fetch_request(topic: &str, offset: i64, max_wait_ms: i32) -> FetchRequest {
    FetchRequest::default()
        .with_max_wait_ms(max_wait_ms)
        .with_min_bytes(1)
        .with_max_bytes(1 << 20)
        .with_topics(vec![
            fetch_request::FetchTopic::default()
                .with_topic(TopicName(StrBytes::from_string(topic.to_string())))
                .with_partitions(vec![
                    fetch_request::FetchPartition::default()
                        .with_fetch_offset(offset)
                        .with_partition_max_bytes(1 << 20),
                ]),
        ])
}

#[tokio::test]
async fn garbage_frame_closes_only_that_connection() {
    let server = TestServer::start(|_| {}).await;
    let mut bad = Raw::connect(server.addr).await;
    let mut healthy = Raw::connect(server.addr).await;
    bad.send_raw(b"\x00\x00\x00\x0bhello world").await;
    bad.assert_closed().await;
    let response: ApiVersionsResponse = healthy
        .call(ApiKey::ApiVersions, 3, &ApiVersionsRequest::default())
        .await;
    assert_eq!(response.error_code, 0);
    server.stop().await;
}

#[tokio::test]
async fn oversized_and_negative_frame_sizes_close_the_connection_without_reading_on() {
    let server = TestServer::start(|c| c.max_request_bytes = 1 << 20).await;
    for prefix in [(200i32 << 20).to_be_bytes(), (-5i32).to_be_bytes()] {
        let mut raw = Raw::connect(server.addr).await;
        raw.send_raw(&prefix).await;
        raw.assert_closed().await;
    }
    assert_still_serving(server.addr).await;
    server.stop().await;
}

#[tokio::test]
async fn unknown_api_keys_and_truncated_frames_close_the_connection() {
    let server = TestServer::start(|_| {}).await;
    let mut raw = Raw::connect(server.addr).await;
    let mut frame = BytesMut::new();
    frame.put_i32(10);
    frame.put_i16(9999);
    frame.put_i16(0);
    frame.put_i32(1);
    frame.put_i16(-1);
    raw.send_raw(&frame).await;
    raw.assert_closed().await;

    let mut raw = Raw::connect(server.addr).await;
    raw.send_raw(&[0, 0, 1, 0, 0, 18]).await; // promises 256 bytes, sends 2, hangs up
    drop(raw);
    assert_still_serving(server.addr).await;
    server.stop().await;
}

#[tokio::test]
async fn api_versions_of_an_unknown_version_is_answered_in_v0_with_unsupported_version() {
    let server = TestServer::start(|_| {}).await;
    let mut raw = Raw::connect(server.addr).await;
    let mut frame = BytesMut::new();
    frame.put_i32(8);
    frame.put_i16(ApiKey::ApiVersions as i16);
    frame.put_i16(99);
    frame.put_i32(77);
    raw.send_raw(&frame).await;
    let mut response = raw.recv().await.expect("an answer");
    assert_eq!(response.get_i32(), 77);
    let body = ApiVersionsResponse::decode(&mut response, 0).expect("v0 body");
    assert_eq!(body.error_code, 35);
    assert!(
        body.api_keys
            .iter()
            .any(|k| k.api_key == ApiKey::Produce as i16 && k.min_version == 0)
    );
    // The client retries with a version both know, on the same connection.
    let retry: ApiVersionsResponse = raw
        .call(ApiKey::ApiVersions, 3, &ApiVersionsRequest::default())
        .await;
    assert_eq!(retry.error_code, 0);
    server.stop().await;
}

#[tokio::test]
async fn produce_with_the_old_message_format_closes_the_connection() {
    let server = TestServer::start(|_| {}).await;
    let mut raw = Raw::connect(server.addr).await;
    let mut frame = BytesMut::new();
    frame.put_i32(16);
    frame.put_i16(ApiKey::Produce as i16);
    frame.put_i16(2);
    frame.put_i32(1);
    frame.put_i16(-1);
    frame.put_i16(-1);
    frame.put_i32(1000);
    raw.send_raw(&frame).await;
    raw.assert_closed().await;
    server.stop().await;
}

#[tokio::test]
async fn corrupt_and_oversized_batches_are_refused_and_nothing_is_appended() {
    let server = TestServer::start(|_| {}).await;
    let mut raw = Raw::connect(server.addr).await;
    create_topic(&mut raw, "checked", &[("max.message.bytes", "2000")]).await;

    let mut corrupt = batch(&[b"hello"]).to_vec();
    let last = corrupt.len() - 1;
    corrupt[last] ^= 0x55;
    let refused = produce(&mut raw, "checked", Bytes::from(corrupt)).await;
    assert_eq!(refused.error_code, 2, "CORRUPT_MESSAGE");
    assert!(refused.error_message.expect("a message").contains("crc"));

    let too_big = produce(&mut raw, "checked", batch(&[&[0u8; 3000]])).await;
    assert_eq!(too_big.error_code, 10, "MESSAGE_TOO_LARGE");

    let mut two_batches = batch(&[b"a"]).to_vec();
    two_batches.extend_from_slice(&batch(&[b"b"]));
    let refused = produce(&mut raw, "checked", Bytes::from(two_batches)).await;
    assert_eq!(refused.error_code, 87, "INVALID_RECORD");

    assert_eq!(
        latest_offset(&mut raw, "checked").await,
        0,
        "nothing refused was appended"
    );
    let accepted = produce(&mut raw, "checked", batch(&[b"good"])).await;
    assert_eq!((accepted.error_code, accepted.base_offset), (0, 0));
    server.stop().await;
}

#[tokio::test]
async fn invalid_topic_names_and_acks_get_kafka_error_codes() {
    let server = TestServer::start(|_| {}).await;
    let mut raw = Raw::connect(server.addr).await;
    let request = CreateTopicsRequest::default().with_topics(
        ["bad/name", "..", &"x".repeat(250)]
            .iter()
            .map(|n| {
                create_topics_request::CreatableTopic::default()
                    .with_name(TopicName(StrBytes::from_string(n.to_string())))
                    .with_num_partitions(1)
                    .with_replication_factor(1)
            })
            .collect(),
    );
    let response: CreateTopicsResponse = raw.call(ApiKey::CreateTopics, 7, &request).await;
    assert!(
        response.topics.iter().all(|t| t.error_code == 17),
        "INVALID_TOPIC_EXCEPTION"
    );

    create_topic(&mut raw, "acks", &[]).await;
    let response: ProduceResponse = raw
        .call(
            ApiKey::Produce,
            9,
            &produce_request("acks", batch(&[b"x"]), 2),
        )
        .await;
    assert_eq!(
        response.responses[0].partition_responses[0].error_code, 21,
        "INVALID_REQUIRED_ACKS"
    );
    server.stop().await;
}

#[tokio::test]
async fn pipelined_requests_are_answered_in_order() {
    let server = TestServer::start(|_| {}).await;
    let mut raw = Raw::connect(server.addr).await;
    create_topic(&mut raw, "ordered", &[]).await;
    let mut sent = Vec::new();
    for i in 0..30 {
        let id = match i % 3 {
            0 => {
                raw.send(
                    ApiKey::Produce,
                    9,
                    &produce_request("ordered", batch(&[b"v"]), -1),
                )
                .await
            }
            1 => {
                raw.send(ApiKey::ApiVersions, 3, &ApiVersionsRequest::default())
                    .await
            }
            _ => {
                raw.send(ApiKey::Fetch, 12, &fetch_request("ordered", 0, 0))
                    .await
            }
        };
        sent.push((i % 3, id));
    }
    let mut expected_offset = 0;
    for (kind, id) in sent {
        match kind {
            0 => {
                let response: ProduceResponse = raw.recv_response(ApiKey::Produce, 9, id).await;
                let partition = &response.responses[0].partition_responses[0];
                assert_eq!(
                    partition.base_offset, expected_offset,
                    "appends keep arrival order"
                );
                expected_offset += 1;
            }
            1 => {
                let _: ApiVersionsResponse = raw.recv_response(ApiKey::ApiVersions, 3, id).await;
            }
            _ => {
                let _: FetchResponse = raw.recv_response(ApiKey::Fetch, 12, id).await;
            }
        }
    }
    server.stop().await;
}

#[tokio::test]
async fn an_answer_is_not_held_back_by_a_long_poll_behind_it() {
    let server = TestServer::start(|_| {}).await;
    let mut consumer = Raw::connect(server.addr).await;
    let mut producer = Raw::connect(server.addr).await;
    create_topic(&mut producer, "behind", &[]).await;
    // In one write: a fetch answered at once (max wait 0), then one that waits 60 s for data.
    // The first answer must reach the client while the second waits: the test's deadline
    // (20 s) is far shorter than the wait.
    let (first, mut frames) = consumer.frame(ApiKey::Fetch, 12, &fetch_request("behind", 0, 0));
    let (second, frame) = consumer.frame(ApiKey::Fetch, 12, &fetch_request("behind", 0, 60_000));
    frames.put_slice(&frame);
    consumer.send_raw(&frames).await;
    let answered: FetchResponse = consumer.recv_response(ApiKey::Fetch, 12, first).await;
    assert_eq!(answered.responses[0].partitions[0].error_code, 0);
    assert!(
        answered.responses[0].partitions[0]
            .records
            .as_ref()
            .is_none_or(|r| r.is_empty())
    );
    produce(&mut producer, "behind", batch(&[b"wake up"])).await;
    let woken: FetchResponse = consumer.recv_response(ApiKey::Fetch, 12, second).await;
    assert!(
        woken.responses[0].partitions[0]
            .records
            .as_ref()
            .is_some_and(|r| !r.is_empty())
    );
    server.stop().await;
}

#[tokio::test]
async fn long_poll_fetch_is_answered_when_data_arrives() {
    let server = TestServer::start(|_| {}).await;
    let mut consumer = Raw::connect(server.addr).await;
    let mut producer = Raw::connect(server.addr).await;
    create_topic(&mut producer, "waiting", &[]).await;
    // Wait up to 60 s for one byte; the test's deadline (20 s) is far shorter, so only an
    // answer triggered by the append can pass.
    let id = consumer
        .send(ApiKey::Fetch, 12, &fetch_request("waiting", 0, 60_000))
        .await;
    let produced = produce(&mut producer, "waiting", batch(&[b"wake up"])).await;
    assert_eq!(produced.error_code, 0);
    let response: FetchResponse = consumer.recv_response(ApiKey::Fetch, 12, id).await;
    let partition = &response.responses[0].partitions[0];
    assert_eq!(partition.high_watermark, 1);
    assert!(!partition.records.as_ref().expect("records").is_empty());
    server.stop().await;
}

#[tokio::test]
async fn fetch_returns_at_max_wait_with_no_data() {
    let server = TestServer::start(|_| {}).await;
    let mut raw = Raw::connect(server.addr).await;
    create_topic(&mut raw, "quiet", &[]).await;
    let response: FetchResponse = raw
        .call(ApiKey::Fetch, 12, &fetch_request("quiet", 0, 200))
        .await;
    let partition = &response.responses[0].partitions[0];
    assert_eq!((partition.error_code, partition.high_watermark), (0, 0));
    assert!(partition.records.as_ref().expect("records").is_empty());
    server.stop().await;
}

#[tokio::test]
async fn acks_zero_gets_no_response_but_is_appended() {
    let server = TestServer::start(|_| {}).await;
    let mut raw = Raw::connect(server.addr).await;
    create_topic(&mut raw, "fire-and-forget", &[]).await;
    raw.send(
        ApiKey::Produce,
        9,
        &produce_request("fire-and-forget", batch(&[b"a", b"b"]), 0),
    )
    .await;
    // The next response on the connection is the ListOffsets one: no Produce response came.
    let deadline = tokio::time::Instant::now() + DEADLINE;
    loop {
        if latest_offset(&mut raw, "fire-and-forget").await == 2 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "acks=0 records never became visible"
        );
        tokio::task::yield_now().await;
    }
    server.stop().await;
}

#[tokio::test]
async fn connections_over_the_limit_are_closed_while_others_keep_working() {
    let server = TestServer::start(|c| c.max_connections = 2).await;
    let mut first = Raw::connect(server.addr).await;
    let mut second = Raw::connect(server.addr).await;
    let _: ApiVersionsResponse = first
        .call(ApiKey::ApiVersions, 3, &ApiVersionsRequest::default())
        .await;
    let _: ApiVersionsResponse = second
        .call(ApiKey::ApiVersions, 3, &ApiVersionsRequest::default())
        .await;
    let mut third = Raw::connect(server.addr).await;
    third.assert_closed().await;
    let _: ApiVersionsResponse = first
        .call(ApiKey::ApiVersions, 3, &ApiVersionsRequest::default())
        .await;
    server.stop().await;
}

/// Mounts a small tmpfs as the data directory: the real ENOSPC path, not a simulation.
struct SmallDisk {
    path: std::path::PathBuf,
}

impl SmallDisk {
    fn mount(size: &str) -> SmallDisk {
        let path = std::env::temp_dir().join(format!("spate-full-disk-{}", std::process::id()));
        std::fs::create_dir_all(&path).expect("mount point");
        let status = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(&path)
            .status()
            .expect("run mount (this test needs root, as CI has)");
        assert!(status.success(), "mounting a tmpfs needs root, as CI has");
        SmallDisk { path }
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg(&self.path)
            .status();
        let _ = std::fs::remove_dir(&self.path);
    }
}

#[tokio::test]
async fn a_full_disk_refuses_writes_keeps_serving_and_loses_nothing_acknowledged() {
    let disk = SmallDisk::mount("2m");
    let config = local_config(&disk.path.join("data"));
    let server = TestServer::start_with(config, None).await;
    let mut raw = Raw::connect(server.addr).await;
    create_topic(&mut raw, "filling", &[]).await;
    let value = [7u8; 50_000];
    let mut acknowledged = 0i64;
    let mut refusal = None;
    for _ in 0..100 {
        let response = produce(&mut raw, "filling", batch(&[&value])).await;
        if response.error_code == 0 {
            assert_eq!(response.base_offset, acknowledged);
            acknowledged += 1;
        } else {
            refusal = Some(response);
            break;
        }
    }
    let refusal = refusal.expect("a 2 MiB disk fills before 5 MB are written");
    assert_eq!(refusal.error_code, 56, "KAFKA_STORAGE_ERROR");
    assert!(acknowledged > 10);
    // Reads still work and return every acknowledged record.
    assert_eq!(latest_offset(&mut raw, "filling").await, acknowledged);
    let mut next = 0;
    while next < acknowledged {
        let response: FetchResponse = raw
            .call(ApiKey::Fetch, 12, &fetch_request("filling", next, 0))
            .await;
        let mut records = response.responses[0].partitions[0]
            .records
            .clone()
            .expect("records");
        assert!(!records.is_empty());
        while records.remaining() > 0 {
            let header = spate_log::BatchHeader::parse(&records).expect("header");
            assert_eq!(header.base_offset, next);
            next = header.last_offset() + 1;
            records.advance(header.total_len());
        }
    }
    assert_eq!(next, acknowledged);
    assert_still_serving(server.addr).await;
    server.stop().await;
    drop(disk);
}

fn join_request(
    group: &str,
    member_id: &str,
    session_ms: i32,
    rebalance_ms: i32,
) -> JoinGroupRequest {
    JoinGroupRequest::default()
        .with_group_id(GroupId(StrBytes::from_string(group.to_string())))
        .with_member_id(StrBytes::from_string(member_id.to_string()))
        .with_session_timeout_ms(session_ms)
        .with_rebalance_timeout_ms(rebalance_ms)
        .with_protocol_type(StrBytes::from_static_str("consumer"))
        .with_protocols(vec![
            join_group_request::JoinGroupRequestProtocol::default()
                .with_name(StrBytes::from_static_str("range"))
                .with_metadata(Bytes::from_static(b"\x00\x00\x00\x00\x00\x00\x00\x00")),
        ])
}

/// Joins with KIP-394's two steps; returns the JoinGroup response.
async fn join(raw: &mut Raw, group: &str, session_ms: i32, rebalance_ms: i32) -> JoinGroupResponse {
    let first: JoinGroupResponse = raw
        .call(
            ApiKey::JoinGroup,
            7,
            &join_request(group, "", session_ms, rebalance_ms),
        )
        .await;
    assert_eq!(first.error_code, 79, "MEMBER_ID_REQUIRED");
    raw.call(
        ApiKey::JoinGroup,
        7,
        &join_request(group, &first.member_id, session_ms, rebalance_ms),
    )
    .await
}

#[tokio::test]
async fn a_member_that_dies_during_a_rebalance_is_dropped_at_its_session_timeout() {
    let server = TestServer::start(|c| {
        c.group_min_session_timeout_ms = 100;
        c.group_initial_rebalance_delay_ms = 0;
    })
    .await;
    // Member A joins and syncs, then goes silent (no heartbeat, no rejoin): it has died.
    let mut a = Raw::connect(server.addr).await;
    let joined = join(&mut a, "dying", 500, 600_000).await;
    assert_eq!(joined.error_code, 0);
    let sync = SyncGroupRequest::default()
        .with_group_id(GroupId(StrBytes::from_static_str("dying")))
        .with_generation_id(joined.generation_id)
        .with_member_id(joined.member_id.clone())
        .with_assignments(vec![
            sync_group_request::SyncGroupRequestAssignment::default()
                .with_member_id(joined.member_id.clone()),
        ]);
    let synced: SyncGroupResponse = a.call(ApiKey::SyncGroup, 3, &sync).await;
    assert_eq!(synced.error_code, 0);
    // Member B's join starts a rebalance that waits for A. A's rebalance timeout is ten
    // minutes; its session is half a second. B must be answered once A's session ends, long
    // before the test's 20 s deadline (the 600 s rebalance timeout would fail it).
    let mut b = Raw::connect(server.addr).await;
    let joined_b = join(&mut b, "dying", 10_000, 600_000).await;
    assert_eq!(joined_b.error_code, 0);
    assert_eq!(
        joined_b.leader, joined_b.member_id,
        "A is gone, B leads alone"
    );
    assert_eq!(joined_b.members.len(), 1);
    server.stop().await;
}

/// `GET path` over HTTP/1.1: the status code and the body.
async fn http_get(addr: SocketAddr, path: &str) -> (u16, String) {
    let exchange = async {
        let mut stream = TcpStream::connect(addr).await.expect("connect");
        let request = format!("GET {path} HTTP/1.1\r\nHost: spate\r\nConnection: close\r\n\r\n");
        stream.write_all(request.as_bytes()).await.expect("write");
        let mut response = Vec::new();
        stream.read_to_end(&mut response).await.expect("read");
        String::from_utf8(response).expect("utf-8")
    };
    let response = tokio::time::timeout(DEADLINE, exchange)
        .await
        .expect("an answer before the deadline");
    let status = response
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {response:?}"));
    let body = response
        .split_once("\r\n\r\n")
        .map_or(String::new(), |(_, body)| body.to_string());
    (status, body)
}

#[tokio::test]
async fn health_says_starting_until_the_server_serves_and_liveness_holds_throughout() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = local_config(dir.path());
    // Bound and opened, not serving yet: what an orchestrator sees during a long recovery.
    let server = Server::bind(config).await.expect("bind");
    let http = server.http_addr();
    let starting = "{\"status\":\"starting\"}\n".to_string();
    assert_eq!(
        http_get(http, "/health/live").await,
        (200, "{\"status\":\"ok\"}\n".into())
    );
    assert_eq!(
        http_get(http, "/health/ready").await,
        (503, starting.clone())
    );
    assert_eq!(http_get(http, "/health").await, (503, starting.clone()));
    assert_eq!(http_get(http, "/metrics").await, (503, starting));

    let serving = Serving::spawn(server);
    let deadline = tokio::time::Instant::now() + DEADLINE;
    while http_get(http, "/health/ready").await.0 != 200 {
        assert!(tokio::time::Instant::now() < deadline, "never ready");
        tokio::task::yield_now().await;
    }
    assert_eq!(http_get(http, "/health").await.0, 200);
    let (status, metrics) = http_get(http, "/metrics").await;
    assert_eq!(status, 200);
    assert!(metrics.contains("spate_uptime_seconds "), "{metrics}");
    assert_eq!(http_get(http, "/no-such-path").await.0, 404);

    serving.stop().await;
    assert!(
        TcpStream::connect(http).await.is_err(),
        "the HTTP listener stops last, with the server"
    );
}
