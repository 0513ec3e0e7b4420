//! The `throttle_time_ms` field every quota-aware response carries (KIP-219).
//!
//! Quotas are enforced on the connection, after a handler has built its response, so the
//! server needs one way to stamp a throttle on any response. Of Kafka's responses only a few
//! (SASL, Raft and share-state internals) have no such field; for the others the generated
//! encoders write it only in the versions that carry it, so stamping a response of an older
//! version is harmless.

use kafka_protocol::messages::ResponseKind;

macro_rules! throttle_field {
    ($response:expr, $($variant:ident),* $(,)?) => {
        match $response {
            $(ResponseKind::$variant(r) => Some(&mut r.throttle_time_ms),)*
            _ => None,
        }
    };
}

/// The response's `throttle_time_ms`, if its message has one.
pub fn throttle_time_ms_mut(response: &mut ResponseKind) -> Option<&mut i32> {
    throttle_field!(
        response,
        Produce,
        Fetch,
        ListOffsets,
        Metadata,
        OffsetCommit,
        OffsetFetch,
        FindCoordinator,
        JoinGroup,
        Heartbeat,
        LeaveGroup,
        SyncGroup,
        DescribeGroups,
        ListGroups,
        ApiVersions,
        CreateTopics,
        DeleteTopics,
        DeleteRecords,
        InitProducerId,
        OffsetForLeaderEpoch,
        AddPartitionsToTxn,
        AddOffsetsToTxn,
        EndTxn,
        TxnOffsetCommit,
        DescribeAcls,
        CreateAcls,
        DeleteAcls,
        DescribeConfigs,
        AlterConfigs,
        AlterReplicaLogDirs,
        DescribeLogDirs,
        CreatePartitions,
        CreateDelegationToken,
        RenewDelegationToken,
        ExpireDelegationToken,
        DescribeDelegationToken,
        DeleteGroups,
        ElectLeaders,
        IncrementalAlterConfigs,
        AlterPartitionReassignments,
        ListPartitionReassignments,
        OffsetDelete,
        DescribeClientQuotas,
        AlterClientQuotas,
        DescribeUserScramCredentials,
        AlterUserScramCredentials,
        AlterPartition,
        UpdateFeatures,
        FetchSnapshot,
        DescribeCluster,
        DescribeProducers,
        BrokerRegistration,
        BrokerHeartbeat,
        UnregisterBroker,
        DescribeTransactions,
        ListTransactions,
        AllocateProducerIds,
        ConsumerGroupHeartbeat,
        ConsumerGroupDescribe,
        ControllerRegistration,
        GetTelemetrySubscriptions,
        PushTelemetry,
        AssignReplicasToDirs,
        ListConfigResources,
        DescribeTopicPartitions,
        ShareGroupHeartbeat,
        ShareGroupDescribe,
        ShareFetch,
        ShareAcknowledge,
        AddRaftVoter,
        RemoveRaftVoter,
        UpdateRaftVoter,
        DescribeShareGroupOffsets,
        AlterShareGroupOffsets,
        DeleteShareGroupOffsets,
    )
}

/// Raises the response's throttle to `throttle_ms` if that is longer than what the handler
/// put there (Kafka reports the longest of the quotas a request violated).
pub fn raise_throttle(response: &mut ResponseKind, throttle_ms: u32) {
    if let Some(field) = throttle_time_ms_mut(response) {
        let throttle = i32::try_from(throttle_ms).unwrap_or(i32::MAX);
        *field = (*field).max(throttle);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::{FetchResponse, SaslHandshakeResponse};

    #[test]
    fn the_longest_throttle_wins() {
        let mut response = ResponseKind::Fetch(FetchResponse::default().with_throttle_time_ms(50));
        raise_throttle(&mut response, 20);
        assert_eq!(throttle_time_ms_mut(&mut response).copied(), Some(50));
        raise_throttle(&mut response, 700);
        assert_eq!(throttle_time_ms_mut(&mut response).copied(), Some(700));
    }

    #[test]
    fn responses_without_the_field_are_left_alone() {
        let mut response = ResponseKind::SaslHandshake(SaslHandshakeResponse::default());
        raise_throttle(&mut response, 100);
        assert!(throttle_time_ms_mut(&mut response).is_none());
    }
}
