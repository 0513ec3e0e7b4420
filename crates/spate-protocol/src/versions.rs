//! The APIs and versions Spate advertises in ApiVersions.
//!
//! Only APIs the broker really handles are listed. Ranges are the intersection of what the
//! `kafka-protocol` crate can decode and what the broker implements, with one deliberate
//! exception: Produce is advertised from v0 although only v3+ (message format v2) is accepted.
//! librdkafka decides whether the broker supports compression by looking for Produce v0..v2 in
//! this table and silently stops compressing otherwise (librdkafka#4956); Apache Kafka 4.0 does
//! the same (KAFKA-18659). Produce v0..v2 requests themselves are refused.

use kafka_protocol::messages::ApiKey;
use kafka_protocol::messages::api_versions_response::{ApiVersion, ApiVersionsResponse};

/// Advertised (api key, min version, max version).
pub const SUPPORTED_APIS: &[(ApiKey, i16, i16)] = &[
    (ApiKey::Produce, 0, 13),
    (ApiKey::Fetch, 4, 17),
    (ApiKey::ListOffsets, 1, 10),
    (ApiKey::Metadata, 0, 13),
    (ApiKey::ApiVersions, 0, 4),
    (ApiKey::CreateTopics, 2, 7),
    (ApiKey::DeleteTopics, 1, 6),
    (ApiKey::DeleteRecords, 0, 2),
    (ApiKey::OffsetForLeaderEpoch, 2, 4),
    (ApiKey::DescribeConfigs, 1, 4),
    (ApiKey::AlterConfigs, 0, 2),
    (ApiKey::CreatePartitions, 0, 3),
    (ApiKey::IncrementalAlterConfigs, 0, 1),
    (ApiKey::DescribeCluster, 0, 1),
    (ApiKey::DescribeLogDirs, 1, 4),
    (ApiKey::FindCoordinator, 0, 6),
    (ApiKey::InitProducerId, 0, 5),
    (ApiKey::JoinGroup, 0, 9),
    (ApiKey::SyncGroup, 0, 5),
    (ApiKey::Heartbeat, 0, 4),
    (ApiKey::LeaveGroup, 0, 5),
    (ApiKey::OffsetCommit, 2, 9),
    (ApiKey::OffsetFetch, 1, 9),
    (ApiKey::DescribeGroups, 0, 6),
    (ApiKey::ListGroups, 0, 5),
    (ApiKey::DeleteGroups, 0, 2),
    (ApiKey::OffsetDelete, 0, 0),
    (ApiKey::ConsumerGroupHeartbeat, 0, 1),
    (ApiKey::ConsumerGroupDescribe, 0, 1),
    (ApiKey::AddPartitionsToTxn, 0, 3),
    (ApiKey::AddOffsetsToTxn, 0, 3),
    (ApiKey::EndTxn, 0, 4),
    (ApiKey::TxnOffsetCommit, 0, 3),
    (ApiKey::DescribeProducers, 0, 0),
    (ApiKey::DescribeTransactions, 0, 0),
    (ApiKey::ListTransactions, 0, 2),
    (ApiKey::DescribeAcls, 1, 3),
    (ApiKey::CreateAcls, 1, 3),
    (ApiKey::DeleteAcls, 1, 3),
    (ApiKey::SaslHandshake, 0, 1),
    (ApiKey::SaslAuthenticate, 0, 2),
    (ApiKey::AlterUserScramCredentials, 0, 0),
    (ApiKey::DescribeUserScramCredentials, 0, 0),
    (ApiKey::DescribeClientQuotas, 0, 1),
    (ApiKey::AlterClientQuotas, 0, 1),
];

/// Lowest Produce version Spate accepts (message format v2).
pub const MIN_ACCEPTED_PRODUCE_VERSION: i16 = 3;

/// The advertised version range of an API, if Spate serves it.
pub fn supported_versions(api_key: ApiKey) -> Option<(i16, i16)> {
    SUPPORTED_APIS
        .iter()
        .find(|(key, _, _)| *key == api_key)
        .map(|(_, min, max)| (*min, *max))
}

/// Whether a request of this API and version is accepted (Produce v0..v2 are advertised only).
pub fn accepts(api_key: ApiKey, version: i16) -> bool {
    match supported_versions(api_key) {
        Some((_, max)) if api_key == ApiKey::Produce => {
            (MIN_ACCEPTED_PRODUCE_VERSION..=max).contains(&version)
        }
        Some((min, max)) => (min..=max).contains(&version),
        None => false,
    }
}

/// The ApiVersions answer: every supported API, no optional tagged fields (librdkafka 2.0's
/// parser cannot skip the feature fields some brokers add).
pub fn api_versions_response(error_code: i16) -> ApiVersionsResponse {
    let api_keys = SUPPORTED_APIS
        .iter()
        .map(|(key, min, max)| {
            ApiVersion::default()
                .with_api_key(*key as i16)
                .with_min_version(*min)
                .with_max_version(*max)
        })
        .collect();
    ApiVersionsResponse::default()
        .with_error_code(error_code)
        .with_api_keys(api_keys)
        .with_throttle_time_ms(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::*;
    use kafka_protocol::protocol::Message;

    fn crate_range(key: ApiKey) -> (i16, i16) {
        let range = key.valid_versions();
        (range.min, range.max)
    }

    #[test]
    fn every_advertised_version_can_be_decoded_except_old_produce() {
        for (key, min, max) in SUPPORTED_APIS {
            let (crate_min, crate_max) = crate_range(*key);
            assert!(
                *max <= crate_max,
                "{key:?} max {max} > decodable {crate_max}"
            );
            if *key == ApiKey::Produce {
                assert_eq!(crate_min, MIN_ACCEPTED_PRODUCE_VERSION);
                assert_eq!(*min, 0, "librdkafka needs Produce v0 advertised");
            } else {
                assert!(
                    *min >= crate_min,
                    "{key:?} min {min} < decodable {crate_min}"
                );
            }
        }
        assert!(!accepts(ApiKey::Produce, 2));
        assert!(accepts(ApiKey::Produce, 3));
        let _ = ProduceRequest::VERSIONS;
    }
}
