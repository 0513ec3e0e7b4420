//! Choosing a partition for a record the way the Java client does.
//!
//! A keyed record goes to `toPositive(murmur2(key)) % partitions` (Kafka's
//! `BuiltInPartitioner.partitionForKey`), so records produced here land in the same partition
//! as the same keys produced by any Java, librdkafka (`murmur2_random`) or kafkajs client. An
//! unkeyed record sticks to one partition until its batch is sent, then the next batch moves
//! on round-robin (the sticky partitioner of KIP-480, without the load-based weighting).
//! Pure functions only.

/// Kafka's murmur2 hash (`org.apache.kafka.common.utils.Utils.murmur2`), seed `0x9747b28c`.
pub fn murmur2(data: &[u8]) -> i32 {
    const SEED: u32 = 0x9747_b28c;
    const M: u32 = 0x5bd1_e995;
    const R: u32 = 24;

    let length = data.len();
    // Java hashes the int length; keys longer than 2^31 bytes cannot exist on the wire.
    let mut h: u32 = SEED ^ (length as u32);
    let mut chunks = data.chunks_exact(4);
    for chunk in &mut chunks {
        let mut k = u32::from_le_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
        k = k.wrapping_mul(M);
        k ^= k >> R;
        k = k.wrapping_mul(M);
        h = h.wrapping_mul(M);
        h ^= k;
    }
    let tail = chunks.remainder();
    if tail.len() == 3 {
        h ^= u32::from(tail[2]) << 16;
    }
    if tail.len() >= 2 {
        h ^= u32::from(tail[1]) << 8;
    }
    if !tail.is_empty() {
        h ^= u32::from(tail[0]);
        h = h.wrapping_mul(M);
    }
    h ^= h >> 13;
    h = h.wrapping_mul(M);
    h ^= h >> 15;
    h as i32
}

/// Kafka's `Utils.toPositive`: clears the sign bit (not `abs`, which overflows on `i32::MIN`).
pub fn to_positive(n: i32) -> i32 {
    n & 0x7fff_ffff
}

/// The partition of a keyed record among `partition_count` partitions.
///
/// # Panics
/// If `partition_count` is not positive: a topic always has at least one partition.
pub fn partition_for_key(key: &[u8], partition_count: i32) -> i32 {
    assert!(partition_count > 0, "a topic has at least one partition");
    to_positive(murmur2(key)) % partition_count
}

/// The partition for unkeyed records: fixed until [`StickyPartitioner::next_batch`].
#[derive(Debug, Clone)]
pub struct StickyPartitioner {
    current: i32,
}

impl StickyPartitioner {
    /// Starts at `start % partition_count` (callers pass something varying, e.g. the time, so
    /// that short runs do not all fill partition 0).
    pub fn new(start: u64, partition_count: i32) -> StickyPartitioner {
        assert!(partition_count > 0, "a topic has at least one partition");
        StickyPartitioner {
            current: (start % partition_count as u64) as i32,
        }
    }

    /// The partition for the next unkeyed record.
    pub fn partition(&self) -> i32 {
        self.current
    }

    /// Moves on after the current partition's batch was sent.
    pub fn next_batch(&mut self, partition_count: i32) {
        assert!(partition_count > 0, "a topic has at least one partition");
        self.current = (self.current + 1) % partition_count;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Vectors from Apache Kafka's `UtilsTest.testMurmur2`.
    #[test]
    fn murmur2_matches_kafka_utils_test() {
        let cases: &[(&[u8], i32)] = &[
            (b"21", -973_932_308),
            (b"foobar", -790_332_482),
            (b"a-little-bit-long-string", -985_981_536),
            (b"a-little-bit-longer-string", -1_486_304_829),
            (
                b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8",
                -58_897_971,
            ),
            (b"abc", 479_470_107),
        ];
        for (input, expected) in cases {
            assert_eq!(
                murmur2(input),
                *expected,
                "murmur2({:?})",
                String::from_utf8_lossy(input)
            );
        }
    }

    /// Values of the Java implementation quoted by Akka's Kafka-compatible sharding tests,
    /// covering every tail length (1 to 3 bytes left after the 4-byte blocks).
    #[test]
    fn murmur2_matches_java_for_every_tail_length() {
        let cases: &[(&[u8], i32)] = &[
            (b"1", -1_993_445_489),
            (b"12", 126_087_238),
            (b"123", -267_702_483),
            (b"1234", -1_614_185_708),
            (b"12345", -1_188_365_604),
        ];
        for (input, expected) in cases {
            assert_eq!(
                murmur2(input),
                *expected,
                "murmur2({:?})",
                String::from_utf8_lossy(input)
            );
        }
    }

    #[test]
    fn murmur2_of_empty_input_is_the_mixed_seed() {
        // With no data, h = seed ^ 0 goes straight to the final mix.
        let mut h: u32 = 0x9747_b28c;
        h ^= h >> 13;
        h = h.wrapping_mul(0x5bd1_e995);
        h ^= h >> 15;
        assert_eq!(murmur2(b""), h as i32);
    }

    #[test]
    fn keyed_partition_is_non_negative_and_stable() {
        // "foobar" hashes negative; toPositive(-790332482) = 1357151166.
        assert_eq!(to_positive(-790_332_482), 1_357_151_166);
        assert_eq!(partition_for_key(b"foobar", 3), 1_357_151_166 % 3);
        assert_eq!(to_positive(i32::MIN), 0);
        for partitions in 1..20 {
            let p = partition_for_key(b"21", partitions);
            assert!((0..partitions).contains(&p));
        }
    }

    #[test]
    fn sticky_partitioner_moves_round_robin() {
        let mut sticky = StickyPartitioner::new(7, 3);
        assert_eq!(sticky.partition(), 1);
        sticky.next_batch(3);
        assert_eq!(sticky.partition(), 2);
        sticky.next_batch(3);
        assert_eq!(sticky.partition(), 0);
    }
}
