//! Committed offsets in the internal compacted topic `__consumer_offsets`, in Kafka's own
//! record format (OffsetCommitKey v1, OffsetCommitValue v3), so the topic reads the same as on
//! Kafka. A group's records live in partition `abs(javaHash(group)) % partitions`, as in Kafka.
//! A null value (tombstone) deletes an offset; compaction keeps the last record per key.

use bytes::{Buf, BufMut, Bytes, BytesMut};

/// Name of the internal topic.
pub const OFFSETS_TOPIC: &str = "__consumer_offsets";

const OFFSET_KEY_VERSION: i16 = 1;
const OFFSET_VALUE_VERSION: i16 = 3;
const GROUP_KEY_VERSION: i16 = 2;

/// Kafka's `String.hashCode`, over UTF-16 code units.
pub fn java_string_hash(value: &str) -> i32 {
    value.encode_utf16().fold(0i32, |hash, unit| {
        hash.wrapping_mul(31).wrapping_add(i32::from(unit))
    })
}

/// The `__consumer_offsets` partition holding a group's records.
pub fn partition_for(group: &str, partitions: i32) -> i32 {
    (java_string_hash(group) & 0x7fff_ffff) % partitions.max(1)
}

/// A committed offset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommittedOffset {
    /// Next offset to consume.
    pub offset: i64,
    /// Leader epoch of the record before it, or -1.
    pub leader_epoch: i32,
    /// The client's metadata string.
    pub metadata: String,
    /// When it was committed.
    pub commit_timestamp_ms: i64,
    /// Offset of the record in `__consumer_offsets`: a newer record wins when applying.
    pub log_offset: i64,
}

/// A decoded `__consumer_offsets` record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoredRecord {
    /// An offset commit, or its deletion (`None`).
    Offset {
        /// Group.
        group: String,
        /// Topic.
        topic: String,
        /// Partition.
        partition: i32,
        /// The commit, or `None` for a tombstone.
        value: Option<CommittedOffset>,
    },
    /// Group metadata (Spate writes only tombstones, on group deletion).
    Group {
        /// Group.
        group: String,
    },
}

fn put_string(buf: &mut BytesMut, value: &str) {
    buf.put_i16(value.len().min(i16::MAX as usize) as i16);
    buf.put_slice(&value.as_bytes()[..value.len().min(i16::MAX as usize)]);
}

/// Reads a Kafka `string` (i16 length, UTF-8 bytes).
pub(crate) fn get_string(buf: &mut Bytes) -> Option<String> {
    if buf.remaining() < 2 {
        return None;
    }
    let len = buf.get_i16();
    if len < 0 || buf.remaining() < len as usize {
        return None;
    }
    String::from_utf8(buf.split_to(len as usize).to_vec()).ok()
}

/// Key of an offset commit.
pub fn offset_key(group: &str, topic: &str, partition: i32) -> Bytes {
    let mut buf = BytesMut::with_capacity(8 + group.len() + topic.len());
    buf.put_i16(OFFSET_KEY_VERSION);
    put_string(&mut buf, group);
    put_string(&mut buf, topic);
    buf.put_i32(partition);
    buf.freeze()
}

/// Value of an offset commit.
pub fn offset_value(
    offset: i64,
    leader_epoch: i32,
    metadata: &str,
    commit_timestamp_ms: i64,
) -> Bytes {
    let mut buf = BytesMut::with_capacity(24 + metadata.len());
    buf.put_i16(OFFSET_VALUE_VERSION);
    buf.put_i64(offset);
    buf.put_i32(leader_epoch);
    put_string(&mut buf, metadata);
    buf.put_i64(commit_timestamp_ms);
    buf.freeze()
}

/// Key of a group's metadata record.
pub fn group_key(group: &str) -> Bytes {
    let mut buf = BytesMut::with_capacity(4 + group.len());
    buf.put_i16(GROUP_KEY_VERSION);
    put_string(&mut buf, group);
    buf.freeze()
}

/// Decodes a record; `None` for keys Spate does not use (other versions are skipped).
pub fn decode(key: &[u8], value: Option<&[u8]>, log_offset: i64) -> Option<StoredRecord> {
    let mut key = Bytes::copy_from_slice(key);
    if key.remaining() < 2 {
        return None;
    }
    match key.get_i16() {
        0 | 1 => {
            let group = get_string(&mut key)?;
            let topic = get_string(&mut key)?;
            if key.remaining() < 4 {
                return None;
            }
            let partition = key.get_i32();
            let value = match value {
                None => None,
                Some(value) => {
                    let mut value = Bytes::copy_from_slice(value);
                    if value.remaining() < 10 {
                        return None;
                    }
                    let version = value.get_i16();
                    let offset = value.get_i64();
                    let leader_epoch = if version >= 3 && value.remaining() >= 4 {
                        value.get_i32()
                    } else {
                        -1
                    };
                    let metadata = get_string(&mut value)?;
                    let commit_timestamp_ms = if value.remaining() >= 8 {
                        value.get_i64()
                    } else {
                        -1
                    };
                    Some(CommittedOffset {
                        offset,
                        leader_epoch,
                        metadata,
                        commit_timestamp_ms,
                        log_offset,
                    })
                }
            };
            Some(StoredRecord::Offset {
                group,
                topic,
                partition,
                value,
            })
        }
        2 => Some(StoredRecord::Group {
            group: get_string(&mut key)?,
        }),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partitions_follow_kafkas_string_hash() {
        // Java: "".hashCode() == 0, "a".hashCode() == 97, "my-group".hashCode() == 1611217519...
        assert_eq!(java_string_hash(""), 0);
        assert_eq!(java_string_hash("a"), 97);
        assert_eq!(java_string_hash("hello"), 99_162_322);
        // Overflow wraps like Java's int arithmetic; negative hashes are masked, not negated.
        let long = "a-consumer-group-name-that-overflows";
        assert!(java_string_hash(long) < 0 || java_string_hash(long) > 0);
        assert!((0..50).contains(&partition_for(long, 50)));
    }

    #[test]
    fn offset_records_round_trip() {
        let key = offset_key("g", "orders", 3);
        let value = offset_value(42, 7, "meta", 1000);
        let decoded = decode(&key, Some(&value), 9);
        assert_eq!(
            decoded,
            Some(StoredRecord::Offset {
                group: "g".into(),
                topic: "orders".into(),
                partition: 3,
                value: Some(CommittedOffset {
                    offset: 42,
                    leader_epoch: 7,
                    metadata: "meta".into(),
                    commit_timestamp_ms: 1000,
                    log_offset: 9,
                }),
            })
        );
        assert!(matches!(
            decode(&key, None, 10),
            Some(StoredRecord::Offset { value: None, .. })
        ));
        assert!(matches!(
            decode(&group_key("g"), None, 11),
            Some(StoredRecord::Group { .. })
        ));
        assert_eq!(decode(&[0, 9, 1], None, 0), None);
        assert_eq!(decode(&key[..5], Some(&value), 0), None);
    }
}
