//! Every advertised API answers in every advertised version with a response that encodes and
//! decodes. The generated encoders refuse fields a version does not carry, so a handler that
//! fills a newer field for an older client would otherwise break that client (kcat's
//! ListOffsets v2 did, before this test).

use std::collections::BTreeMap;
use std::sync::Arc;

use bytes::Bytes;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use spate_broker::{Broker, BrokerOptions, Reply};
use spate_log::BatchBuilder;
use spate_protocol::{Request, SUPPORTED_APIS};

fn s(value: &str) -> StrBytes {
    StrBytes::from_string(value.to_string())
}

fn open_broker_with(
    dir: &std::path::Path,
    authorization: Option<spate_auth::acl::AuthorizerConfig>,
) -> Arc<Broker> {
    Broker::open(BrokerOptions {
        authorization,
        data_dir: dir.to_path_buf(),
        node_id: 1,
        advertised_host: "localhost".into(),
        advertised_port: 9092,
        listeners: Vec::new(),
        auto_create_topics: true,
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

fn batch() -> Bytes {
    let mut builder = BatchBuilder::new(0, spate_broker::system_clock()());
    builder.push(0, Some(b"key"), Some(b"value"));
    Bytes::from(builder.build().expect("batch"))
}

fn requests(api: ApiKey, version: i16, topic_id: uuid::Uuid) -> Vec<RequestKind> {
    let name = TopicName(s("t"));
    let unknown = TopicName(s("no-such-topic"));
    match api {
        ApiKey::ApiVersions => vec![RequestKind::ApiVersions(ApiVersionsRequest::default())],
        ApiKey::Metadata => {
            let mut topic =
                metadata_request::MetadataRequestTopic::default().with_name(Some(name.clone()));
            if version >= 10 {
                topic.topic_id = topic_id;
            }
            let mut with_ops = MetadataRequest::default().with_topics(Some(vec![
                topic,
                metadata_request::MetadataRequestTopic::default()
                    .with_name(Some(TopicName(s("bad/name")))),
            ]));
            if version >= 8 {
                with_ops.include_topic_authorized_operations = true;
            }
            if (8..=10).contains(&version) {
                with_ops.include_cluster_authorized_operations = true;
            }
            let all = if version == 0 {
                MetadataRequest::default().with_topics(Some(Vec::new()))
            } else {
                MetadataRequest::default().with_topics(None)
            };
            vec![RequestKind::Metadata(with_ops), RequestKind::Metadata(all)]
        }
        ApiKey::Produce => {
            let mut known = produce_request::TopicProduceData::default().with_partition_data(vec![
                produce_request::PartitionProduceData::default()
                    .with_index(0)
                    .with_records(Some(batch())),
                produce_request::PartitionProduceData::default()
                    .with_index(7)
                    .with_records(Some(batch())),
            ]);
            let mut missing =
                produce_request::TopicProduceData::default().with_partition_data(vec![
                    produce_request::PartitionProduceData::default()
                        .with_index(0)
                        .with_records(Some(Bytes::from_static(b"junk"))),
                ]);
            if version >= 13 {
                known.topic_id = topic_id;
                missing.topic_id = uuid::Uuid::new_v4();
            } else {
                known.name = name.clone();
                missing.name = unknown.clone();
            }
            vec![RequestKind::Produce(
                ProduceRequest::default()
                    .with_acks(-1)
                    .with_timeout_ms(10_000)
                    .with_topic_data(vec![known, missing]),
            )]
        }
        ApiKey::Fetch => {
            let partition = fetch_request::FetchPartition::default()
                .with_partition(0)
                .with_fetch_offset(0)
                .with_partition_max_bytes(1 << 20);
            let mut known = fetch_request::FetchTopic::default().with_partitions(vec![
                partition.clone(),
                partition.clone().with_fetch_offset(1_000_000),
            ]);
            let mut missing = fetch_request::FetchTopic::default().with_partitions(vec![partition]);
            if version >= 13 {
                known.topic_id = topic_id;
                missing.topic_id = uuid::Uuid::new_v4();
            } else {
                known.topic = name.clone();
                missing.topic = unknown.clone();
            }
            vec![RequestKind::Fetch(
                FetchRequest::default()
                    .with_max_wait_ms(0)
                    .with_max_bytes(1 << 20)
                    .with_isolation_level(1)
                    .with_topics(vec![known, missing]),
            )]
        }
        ApiKey::ListOffsets => {
            let partitions = [-1i64, -2, -3, 0, i64::MAX]
                .iter()
                .map(|ts| {
                    list_offsets_request::ListOffsetsPartition::default()
                        .with_partition_index(0)
                        .with_timestamp(*ts)
                })
                .collect();
            vec![RequestKind::ListOffsets(
                ListOffsetsRequest::default().with_topics(vec![
                    list_offsets_request::ListOffsetsTopic::default()
                        .with_name(name.clone())
                        .with_partitions(partitions),
                    list_offsets_request::ListOffsetsTopic::default()
                        .with_name(unknown.clone())
                        .with_partitions(vec![
                            list_offsets_request::ListOffsetsPartition::default(),
                        ]),
                ]),
            )]
        }
        ApiKey::CreateTopics => {
            let config = create_topics_request::CreatableTopicConfig::default()
                .with_name(s("retention.ms"))
                .with_value(Some(s("1000")));
            vec![RequestKind::CreateTopics(
                CreateTopicsRequest::default().with_topics(vec![
                    create_topics_request::CreatableTopic::default()
                        .with_name(TopicName(s(&format!("created-{version}"))))
                        .with_num_partitions(2)
                        .with_replication_factor(1)
                        .with_configs(vec![config]),
                    create_topics_request::CreatableTopic::default()
                        .with_name(TopicName(s("bad/name")))
                        .with_num_partitions(1)
                        .with_replication_factor(1),
                    create_topics_request::CreatableTopic::default()
                        .with_name(TopicName(s("t")))
                        .with_num_partitions(1)
                        .with_replication_factor(3),
                ]),
            )]
        }
        ApiKey::DeleteTopics => {
            let created = TopicName(s(&format!("created-{}", 7.min(version + 1))));
            let mut request = DeleteTopicsRequest::default().with_timeout_ms(1000);
            if version >= 6 {
                request.topics = vec![
                    delete_topics_request::DeleteTopicState::default().with_name(Some(created)),
                    delete_topics_request::DeleteTopicState::default()
                        .with_name(None)
                        .with_topic_id(uuid::Uuid::new_v4()),
                ];
            } else {
                request.topic_names = vec![created, unknown.clone()];
            }
            vec![RequestKind::DeleteTopics(request)]
        }
        ApiKey::DeleteRecords => vec![RequestKind::DeleteRecords(
            DeleteRecordsRequest::default().with_topics(vec![
                delete_records_request::DeleteRecordsTopic::default()
                    .with_name(name.clone())
                    .with_partitions(vec![
                        delete_records_request::DeleteRecordsPartition::default()
                            .with_partition_index(0)
                            .with_offset(0),
                        delete_records_request::DeleteRecordsPartition::default()
                            .with_partition_index(0)
                            .with_offset(1 << 40),
                    ]),
            ]),
        )],
        ApiKey::OffsetForLeaderEpoch => vec![RequestKind::OffsetForLeaderEpoch(
            OffsetForLeaderEpochRequest::default().with_topics(vec![
                offset_for_leader_epoch_request::OffsetForLeaderTopic::default()
                    .with_topic(name.clone())
                    .with_partitions(vec![
                        offset_for_leader_epoch_request::OffsetForLeaderPartition::default()
                            .with_partition(0)
                            .with_leader_epoch(0),
                        offset_for_leader_epoch_request::OffsetForLeaderPartition::default()
                            .with_partition(0)
                            .with_leader_epoch(5),
                    ]),
            ]),
        )],
        ApiKey::DescribeConfigs => vec![RequestKind::DescribeConfigs(
            DescribeConfigsRequest::default()
                .with_include_synonyms(true)
                .with_include_documentation(version >= 3)
                .with_resources(vec![
                    describe_configs_request::DescribeConfigsResource::default()
                        .with_resource_type(2)
                        .with_resource_name(s("t")),
                    describe_configs_request::DescribeConfigsResource::default()
                        .with_resource_type(4)
                        .with_resource_name(s("1")),
                    describe_configs_request::DescribeConfigsResource::default()
                        .with_resource_type(2)
                        .with_resource_name(s("no-such-topic")),
                    describe_configs_request::DescribeConfigsResource::default()
                        .with_resource_type(4)
                        .with_resource_name(s("")),
                    describe_configs_request::DescribeConfigsResource::default()
                        .with_resource_type(8)
                        .with_resource_name(s("1")),
                    describe_configs_request::DescribeConfigsResource::default()
                        .with_resource_type(32)
                        .with_resource_name(s("g")),
                ]),
        )],
        ApiKey::AlterConfigs => vec![RequestKind::AlterConfigs(
            AlterConfigsRequest::default().with_resources(vec![
                alter_configs_request::AlterConfigsResource::default()
                    .with_resource_type(2)
                    .with_resource_name(s("t"))
                    .with_configs(vec![
                        alter_configs_request::AlterableConfig::default()
                            .with_name(s("retention.ms"))
                            .with_value(Some(s("100000"))),
                    ]),
                alter_configs_request::AlterConfigsResource::default()
                    .with_resource_type(2)
                    .with_resource_name(s("t"))
                    .with_configs(vec![
                        alter_configs_request::AlterableConfig::default()
                            .with_name(s("retention.ms"))
                            .with_value(Some(s("soon"))),
                    ]),
            ]),
        )],
        ApiKey::IncrementalAlterConfigs => vec![RequestKind::IncrementalAlterConfigs(
            IncrementalAlterConfigsRequest::default().with_resources(vec![
                incremental_alter_configs_request::AlterConfigsResource::default()
                    .with_resource_type(2)
                    .with_resource_name(s("t"))
                    .with_configs(vec![
                        incremental_alter_configs_request::AlterableConfig::default()
                            .with_name(s("retention.ms"))
                            .with_config_operation(0)
                            .with_value(Some(s("200000"))),
                    ]),
                incremental_alter_configs_request::AlterConfigsResource::default()
                    .with_resource_type(4)
                    .with_resource_name(s("1"))
                    .with_configs(vec![]),
                incremental_alter_configs_request::AlterConfigsResource::default()
                    .with_resource_type(32)
                    .with_resource_name(s("g"))
                    .with_configs(vec![
                        incremental_alter_configs_request::AlterableConfig::default()
                            .with_name(s("consumer.heartbeat.interval.ms"))
                            .with_config_operation(0)
                            .with_value(Some(s("2000"))),
                    ]),
                incremental_alter_configs_request::AlterConfigsResource::default()
                    .with_resource_type(8)
                    .with_resource_name(s("1"))
                    .with_configs(vec![
                        incremental_alter_configs_request::AlterableConfig::default()
                            .with_name(s("root"))
                            .with_config_operation(0)
                            .with_value(Some(s("INFO"))),
                    ]),
            ]),
        )],
        ApiKey::CreatePartitions => vec![RequestKind::CreatePartitions(
            CreatePartitionsRequest::default().with_topics(vec![
                create_partitions_request::CreatePartitionsTopic::default()
                    .with_name(TopicName(s("grow")))
                    .with_count(version as i32 + 2),
                create_partitions_request::CreatePartitionsTopic::default()
                    .with_name(unknown)
                    .with_count(3),
            ]),
        )],
        ApiKey::DescribeLogDirs => vec![
            RequestKind::DescribeLogDirs(DescribeLogDirsRequest::default().with_topics(None)),
            RequestKind::DescribeLogDirs(DescribeLogDirsRequest::default().with_topics(Some(
                vec![
                    describe_log_dirs_request::DescribableLogDirTopic::default()
                        .with_topic(name.clone())
                        .with_partitions(vec![0, 9]),
                    describe_log_dirs_request::DescribableLogDirTopic::default()
                        .with_topic(unknown.clone())
                        .with_partitions(vec![0]),
                ],
            ))),
        ],
        ApiKey::DescribeCluster => vec![RequestKind::DescribeCluster(
            DescribeClusterRequest::default().with_include_cluster_authorized_operations(true),
        )],
        ApiKey::FindCoordinator => [0i8, 1]
            .iter()
            .map(|key_type| {
                let mut request = FindCoordinatorRequest::default();
                if version >= 1 {
                    request.key_type = *key_type;
                }
                if version >= 4 {
                    request.coordinator_keys = vec![s("group-a"), s("group-b")];
                } else {
                    request.key = s("group-a");
                }
                RequestKind::FindCoordinator(request)
            })
            .collect(),
        ApiKey::InitProducerId => vec![
            RequestKind::InitProducerId(
                InitProducerIdRequest::default().with_transaction_timeout_ms(60_000),
            ),
            RequestKind::InitProducerId(
                InitProducerIdRequest::default()
                    .with_transactional_id(Some(TransactionalId(s("tx")))),
            ),
        ],
        ApiKey::JoinGroup => {
            let protocol = join_group_request::JoinGroupRequestProtocol::default()
                .with_name(s("range"))
                .with_metadata(Bytes::from_static(b"\x00\x00\x00\x00\x00\x00\x00\x00"));
            let mut request = JoinGroupRequest::default()
                .with_group_id(GroupId(s(&format!("g{version}"))))
                .with_session_timeout_ms(10_000)
                .with_protocol_type(s("consumer"))
                .with_protocols(vec![protocol]);
            if version >= 1 {
                request.rebalance_timeout_ms = 10_000;
            }
            vec![
                RequestKind::JoinGroup(request.clone()),
                RequestKind::JoinGroup(request.clone().with_session_timeout_ms(1)),
                RequestKind::JoinGroup(request.with_member_id(s("nobody"))),
            ]
        }
        ApiKey::SyncGroup => vec![RequestKind::SyncGroup(
            SyncGroupRequest::default()
                .with_group_id(GroupId(s("g0")))
                .with_member_id(s("nobody"))
                .with_generation_id(1),
        )],
        ApiKey::Heartbeat => vec![RequestKind::Heartbeat(
            HeartbeatRequest::default()
                .with_group_id(GroupId(s("g0")))
                .with_member_id(s("nobody")),
        )],
        ApiKey::LeaveGroup => {
            let mut request = LeaveGroupRequest::default().with_group_id(GroupId(s("g0")));
            if version >= 3 {
                request.members = vec![
                    leave_group_request::MemberIdentity::default().with_member_id(s("nobody")),
                ];
            } else {
                request.member_id = s("nobody");
            }
            vec![RequestKind::LeaveGroup(request)]
        }
        ApiKey::OffsetCommit => {
            let mut partition = offset_commit_request::OffsetCommitRequestPartition::default()
                .with_partition_index(0)
                .with_committed_offset(1)
                .with_committed_metadata(Some(s("m")));
            if version >= 6 {
                partition.committed_leader_epoch = 0;
            }
            vec![RequestKind::OffsetCommit(
                OffsetCommitRequest::default()
                    .with_group_id(GroupId(s("standalone")))
                    .with_generation_id_or_member_epoch(-1)
                    .with_topics(vec![
                        offset_commit_request::OffsetCommitRequestTopic::default()
                            .with_name(name.clone())
                            .with_partitions(vec![
                                partition.clone(),
                                partition.clone().with_partition_index(9),
                            ]),
                        offset_commit_request::OffsetCommitRequestTopic::default()
                            .with_name(unknown.clone())
                            .with_partitions(vec![partition]),
                    ]),
            )]
        }
        ApiKey::OffsetFetch => {
            if version >= 8 {
                vec![RequestKind::OffsetFetch(
                    OffsetFetchRequest::default().with_groups(vec![
                        offset_fetch_request::OffsetFetchRequestGroup::default()
                            .with_group_id(GroupId(s("standalone")))
                            .with_topics(None),
                        offset_fetch_request::OffsetFetchRequestGroup::default()
                            .with_group_id(GroupId(s("standalone")))
                            .with_topics(Some(vec![
                                offset_fetch_request::OffsetFetchRequestTopics::default()
                                    .with_name(name.clone())
                                    .with_partition_indexes(vec![0, 1]),
                            ])),
                    ]),
                )]
            } else {
                vec![RequestKind::OffsetFetch(
                    OffsetFetchRequest::default()
                        .with_group_id(GroupId(s("standalone")))
                        .with_topics(Some(vec![
                            offset_fetch_request::OffsetFetchRequestTopic::default()
                                .with_name(name.clone())
                                .with_partition_indexes(vec![0, 1]),
                        ])),
                )]
            }
        }
        ApiKey::DescribeGroups => vec![RequestKind::DescribeGroups(
            DescribeGroupsRequest::default().with_groups(vec![
                GroupId(s("standalone")),
                GroupId(s("missing")),
                GroupId(s("g0")),
            ]),
        )],
        ApiKey::ListGroups => {
            let mut request = ListGroupsRequest::default();
            if version >= 4 {
                request.states_filter = vec![s("Empty")];
            }
            vec![RequestKind::ListGroups(request)]
        }
        ApiKey::DeleteGroups => vec![RequestKind::DeleteGroups(
            DeleteGroupsRequest::default().with_groups_names(vec![GroupId(s("missing"))]),
        )],
        ApiKey::OffsetDelete => vec![RequestKind::OffsetDelete(
            OffsetDeleteRequest::default()
                .with_group_id(GroupId(s("standalone")))
                .with_topics(vec![
                    offset_delete_request::OffsetDeleteRequestTopic::default()
                        .with_name(name.clone())
                        .with_partitions(vec![
                            offset_delete_request::OffsetDeleteRequestPartition::default(),
                        ]),
                ]),
        )],
        ApiKey::ConsumerGroupHeartbeat => vec![
            RequestKind::ConsumerGroupHeartbeat(
                ConsumerGroupHeartbeatRequest::default()
                    .with_group_id(GroupId(s(&format!("kip848-{version}"))))
                    .with_member_id(s(&format!("member-{version}")))
                    .with_rebalance_timeout_ms(30_000)
                    .with_subscribed_topic_names(Some(vec![name.clone()]))
                    .with_topic_partitions(Some(vec![])),
            ),
            RequestKind::ConsumerGroupHeartbeat(
                ConsumerGroupHeartbeatRequest::default()
                    .with_group_id(GroupId(s("kip848-x")))
                    .with_member_id(s("nobody"))
                    .with_member_epoch(5),
            ),
        ],
        ApiKey::ConsumerGroupDescribe => vec![RequestKind::ConsumerGroupDescribe(
            ConsumerGroupDescribeRequest::default().with_group_ids(vec![
                GroupId(s("kip848-0")),
                GroupId(s("missing")),
                GroupId(s("standalone")),
            ]),
        )],
        ApiKey::AddPartitionsToTxn => vec![RequestKind::AddPartitionsToTxn(
            AddPartitionsToTxnRequest::default()
                .with_v3_and_below_transactional_id(TransactionalId(s("tx")))
                .with_v3_and_below_producer_id(ProducerId(12345))
                .with_v3_and_below_topics(vec![
                    add_partitions_to_txn_request::AddPartitionsToTxnTopic::default()
                        .with_name(name.clone())
                        .with_partitions(vec![0]),
                ]),
        )],
        ApiKey::AddOffsetsToTxn => vec![RequestKind::AddOffsetsToTxn(
            AddOffsetsToTxnRequest::default()
                .with_transactional_id(TransactionalId(s("tx")))
                .with_producer_id(ProducerId(12345))
                .with_group_id(GroupId(s("g"))),
        )],
        ApiKey::EndTxn => vec![RequestKind::EndTxn(
            EndTxnRequest::default()
                .with_transactional_id(TransactionalId(s("tx")))
                .with_producer_id(ProducerId(12345))
                .with_committed(true),
        )],
        ApiKey::TxnOffsetCommit => vec![RequestKind::TxnOffsetCommit(
            TxnOffsetCommitRequest::default()
                .with_transactional_id(TransactionalId(s("tx")))
                .with_group_id(GroupId(s("g")))
                .with_producer_id(ProducerId(12345))
                .with_topics(vec![
                    txn_offset_commit_request::TxnOffsetCommitRequestTopic::default()
                        .with_name(name.clone())
                        .with_partitions(vec![
                            txn_offset_commit_request::TxnOffsetCommitRequestPartition::default(),
                        ]),
                ]),
        )],
        ApiKey::DescribeProducers => vec![RequestKind::DescribeProducers(
            DescribeProducersRequest::default().with_topics(vec![
                describe_producers_request::TopicRequest::default()
                    .with_name(name.clone())
                    .with_partition_indexes(vec![0, 5]),
            ]),
        )],
        ApiKey::DescribeTransactions => vec![RequestKind::DescribeTransactions(
            DescribeTransactionsRequest::default().with_transactional_ids(vec![
                TransactionalId(s("tx")),
                TransactionalId(s("missing")),
            ]),
        )],
        ApiKey::ListTransactions => {
            let mut request = ListTransactionsRequest::default()
                .with_state_filters(vec![s("Ongoing"), s("Weird")]);
            if version >= 1 {
                request.duration_filter = -1;
            }
            vec![RequestKind::ListTransactions(request)]
        }
        // On a connection without SASL these get ILLEGAL_SASL_STATE; the server answers them
        // itself on SASL listeners.
        ApiKey::SaslHandshake => vec![RequestKind::SaslHandshake(
            SaslHandshakeRequest::default().with_mechanism(s("SCRAM-SHA-512")),
        )],
        ApiKey::SaslAuthenticate => vec![RequestKind::SaslAuthenticate(
            SaslAuthenticateRequest::default().with_auth_bytes(Bytes::from_static(b"n,,n=u,r=x")),
        )],
        ApiKey::AlterUserScramCredentials => vec![RequestKind::AlterUserScramCredentials(
            AlterUserScramCredentialsRequest::default()
                .with_upsertions(vec![
                    alter_user_scram_credentials_request::ScramCredentialUpsertion::default()
                        .with_name(s("alice"))
                        .with_mechanism(2)
                        .with_iterations(4096)
                        .with_salt(Bytes::from_static(b"salt"))
                        .with_salted_password(Bytes::from(vec![7u8; 64])),
                    alter_user_scram_credentials_request::ScramCredentialUpsertion::default()
                        .with_name(s("weak"))
                        .with_mechanism(1)
                        .with_iterations(10),
                ])
                .with_deletions(vec![
                    alter_user_scram_credentials_request::ScramCredentialDeletion::default()
                        .with_name(s("nobody"))
                        .with_mechanism(9),
                ]),
        )],
        ApiKey::DescribeUserScramCredentials => vec![
            RequestKind::DescribeUserScramCredentials(
                DescribeUserScramCredentialsRequest::default(),
            ),
            RequestKind::DescribeUserScramCredentials(
                DescribeUserScramCredentialsRequest::default().with_users(Some(vec![
                    describe_user_scram_credentials_request::UserName::default()
                        .with_name(s("alice")),
                    describe_user_scram_credentials_request::UserName::default()
                        .with_name(s("ghost")),
                ])),
            ),
        ],
        ApiKey::CreateAcls => vec![RequestKind::CreateAcls(
            CreateAclsRequest::default().with_creations(vec![
                create_acls_request::AclCreation::default()
                    .with_resource_type(2)
                    .with_resource_name(s("orders-"))
                    .with_resource_pattern_type(4)
                    .with_principal(s("User:alice"))
                    .with_host(s("*"))
                    .with_operation(3)
                    .with_permission_type(3),
                create_acls_request::AclCreation::default()
                    .with_resource_type(9)
                    .with_resource_name(s(""))
                    .with_resource_pattern_type(3),
            ]),
        )],
        ApiKey::DescribeAcls => vec![RequestKind::DescribeAcls(
            DescribeAclsRequest::default()
                .with_resource_type_filter(1)
                .with_pattern_type_filter(1)
                .with_operation(1)
                .with_permission_type(1),
        )],
        ApiKey::DeleteAcls => vec![RequestKind::DeleteAcls(
            DeleteAclsRequest::default().with_filters(vec![
                delete_acls_request::DeleteAclsFilter::default()
                    .with_resource_type_filter(2)
                    .with_pattern_type_filter(1)
                    .with_principal_filter(Some(s("User:alice")))
                    .with_operation(1)
                    .with_permission_type(1),
            ]),
        )],
        ApiKey::AlterClientQuotas => {
            let entity = |entity_type: &str, name: Option<&str>| {
                alter_client_quotas_request::EntityData::default()
                    .with_entity_type(s(entity_type))
                    .with_entity_name(name.map(s))
            };
            let op = |key: &str, value: f64| {
                alter_client_quotas_request::OpData::default()
                    .with_key(s(key))
                    .with_value(value)
            };
            vec![RequestKind::AlterClientQuotas(
                AlterClientQuotasRequest::default().with_entries(vec![
                    alter_client_quotas_request::EntryData::default()
                        .with_entity(vec![
                            entity("user", Some("alice")),
                            entity("client-id", None),
                        ])
                        .with_ops(vec![op("producer_byte_rate", 1048576.0)]),
                    alter_client_quotas_request::EntryData::default()
                        .with_entity(vec![entity("ip", Some("10.0.0.1"))])
                        .with_ops(vec![op("connection_creation_rate", 10.0)]),
                    alter_client_quotas_request::EntryData::default()
                        .with_entity(vec![entity("user", None)])
                        .with_ops(vec![op("producer_byte_rate", -1.0)]),
                ]),
            )]
        }
        ApiKey::DescribeClientQuotas => vec![
            RequestKind::DescribeClientQuotas(DescribeClientQuotasRequest::default()),
            RequestKind::DescribeClientQuotas(
                DescribeClientQuotasRequest::default()
                    .with_components(vec![
                        describe_client_quotas_request::ComponentData::default()
                            .with_entity_type(s("user"))
                            .with_match_type(0)
                            .with_match(Some(s("alice"))),
                    ])
                    .with_strict(true),
            ),
            RequestKind::DescribeClientQuotas(
                DescribeClientQuotasRequest::default().with_components(vec![
                    describe_client_quotas_request::ComponentData::default()
                        .with_entity_type(s("topic"))
                        .with_match_type(2),
                ]),
            ),
        ],
        other => panic!("no sample request for advertised API {other:?}"),
    }
}

/// A broker with the topics the samples name (`t`, `grow`) and the server's maintenance loop
/// running (it drives group timers: a v0-v3 JoinGroup waits for them).
fn fixture(
    authorization: Option<spate_auth::acl::AuthorizerConfig>,
) -> (tempfile::TempDir, Arc<Broker>, uuid::Uuid) {
    let dir = tempfile::tempdir().expect("tempdir");
    let broker = open_broker_with(dir.path(), authorization);
    tokio::spawn(Arc::clone(&broker).run_maintenance(60_000, std::future::pending()));
    let topic = broker
        .topics()
        .create("t", 1, BTreeMap::new(), spate_broker::system_clock()())
        .expect("topic");
    broker
        .topics()
        .create("grow", 1, BTreeMap::new(), spate_broker::system_clock()())
        .expect("topic");
    (dir, broker, topic.id)
}

/// Every sample request of every advertised API in every accepted version, made by `session`
/// from `peer`.
fn every_request(
    topic_id: uuid::Uuid,
    session: Option<Arc<spate_protocol::Session>>,
    peer: Option<std::net::SocketAddr>,
) -> Vec<Request> {
    let mut all = Vec::new();
    for (api, min, max) in SUPPORTED_APIS {
        let min = if *api == ApiKey::Produce { 3 } else { *min };
        for version in min..=*max {
            for body in requests(*api, version, topic_id) {
                all.push(Request {
                    api_key: *api,
                    api_version: version,
                    correlation_id: 1,
                    client_id: None,
                    body,
                    size_bytes: 0,
                    peer,
                    session: session.clone(),
                    received: None,
                });
            }
        }
    }
    all
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_api_answers_in_every_advertised_version() {
    let (_dir, broker, topic_id) = fixture(None);
    for request in every_request(topic_id, None, None) {
        let (api, version) = (request.api_key, request.api_version);
        let response = match broker.handle(request).await {
            Reply::Now(response) => response,
            Reply::Later(future) => future.await,
            Reply::Nothing => panic!("{api:?} v{version} gave no response"),
        };
        let mut frame = spate_protocol::encode_response(api, version, 1, &response)
            .unwrap_or_else(|e| panic!("{api:?} v{version} response does not encode: {e}"));
        let mut body = spate_protocol::split_frame(&mut frame).expect("one frame");
        let header_version = api.response_header_version(version);
        <ResponseHeader as kafka_protocol::protocol::Decodable>::decode(&mut body, header_version)
            .expect("header");
        ResponseKind::decode(api, &mut body, version)
            .unwrap_or_else(|e| panic!("{api:?} v{version} response does not decode: {e:#}"));
    }
}

/// APIs that need no permission (or answer with what the caller may see, filtered).
const OPEN_APIS: &[ApiKey] = &[
    ApiKey::ApiVersions,
    ApiKey::SaslHandshake,
    ApiKey::SaslAuthenticate,
    ApiKey::DescribeCluster,
    ApiKey::ListGroups,
    ApiKey::ListTransactions,
];

/// Kafka's authorisation error codes: topic, group, cluster, transactional id.
const AUTHORIZATION_ERRORS: &[i16] = &[29, 30, 31, 53];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_acls_on_every_api_refuses_a_principal_without_any_in_every_version() {
    let (_dir, broker, topic_id) = fixture(Some(spate_auth::acl::AuthorizerConfig::default()));
    let session = Arc::new(spate_protocol::Session {
        listener: Arc::from("EXTERNAL"),
        principal: Arc::from("User:nobody"),
    });
    let peer = "10.1.2.3:5555".parse().expect("address");
    for request in every_request(topic_id, Some(session), Some(peer)) {
        let (api, version) = (request.api_key, request.api_version);
        let response = match broker.handle(request).await {
            Reply::Now(response) => response,
            Reply::Later(future) => future.await,
            Reply::Nothing => continue,
        };
        spate_protocol::encode_response(api, version, 1, &response)
            .unwrap_or_else(|e| panic!("{api:?} v{version} refusal does not encode: {e}"));
        if let ResponseKind::Metadata(metadata) = &response {
            assert!(
                metadata.topics.iter().all(|t| t.error_code == 29),
                "Metadata v{version} shows a topic: {metadata:?}"
            );
            continue;
        }
        if OPEN_APIS.contains(&api) {
            continue;
        }
        let text = format!("{response:?}");
        assert!(
            AUTHORIZATION_ERRORS
                .iter()
                .any(|code| text.contains(&format!("error_code: {code},"))),
            "{api:?} v{version} answered a principal without ACLs with no authorization error: {text}"
        );
    }
    let (recorded, _) = broker.audit_counts();
    assert!(recorded > 0, "denials are audited");
}
