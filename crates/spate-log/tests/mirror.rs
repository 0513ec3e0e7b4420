//! Mirror topics (`spate.mirror.offsets=preserve`): records land at the source offsets their
//! header carries, with gaps; re-sends below the log end are dropped; records without a source
//! offset are refused; recovery, reads and offsets accept the gaps.

use std::collections::BTreeMap;

use spate_log::batch::{self, encode_headers};
use spate_log::mirror::SOURCE_OFFSET_HEADER;
use spate_log::{AppendInfo, BatchBuilder, Compression, Log, LogConfig, LogError};

const NOW: i64 = 1_700_000_000_000;
const LIMIT: usize = 1 << 24;

fn mirror_config() -> LogConfig {
    let overrides: BTreeMap<String, String> = [("spate.mirror.offsets", "preserve")]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let config = LogConfig::resolve(&BTreeMap::new(), &overrides).expect("valid config");
    assert!(config.mirror_offsets);
    config
}

struct Rec {
    source_offset: Option<i64>,
    value: String,
}

fn rec(source_offset: i64, value: &str) -> Rec {
    Rec {
        source_offset: Some(source_offset),
        value: value.to_string(),
    }
}

/// A batch as the mirror connector's producer sends it: offset deltas 0.., each record with an
/// `app` header and its source offset.
fn mirror_batch(records: &[Rec], producer: Option<(i64, i32)>, codec: Compression) -> Vec<u8> {
    let mut builder = BatchBuilder::new(0, NOW - 1000).compression(codec);
    if let Some((id, sequence)) = producer {
        builder.producer_id = id;
        builder.producer_epoch = 0;
        builder.base_sequence = sequence;
    }
    for (i, r) in records.iter().enumerate() {
        let offset_bytes = r.source_offset.map(i64::to_be_bytes);
        let mut headers: Vec<(&[u8], Option<&[u8]>)> = vec![(b"app", Some(b"x"))];
        if let Some(bytes) = offset_bytes.as_ref() {
            headers.push((SOURCE_OFFSET_HEADER.as_bytes(), Some(bytes)));
        }
        builder.push_raw(
            i as i32,
            i as i64,
            Some(format!("k{i}").as_bytes()),
            Some(r.value.as_bytes()),
            &encode_headers(headers.into_iter()),
        );
    }
    builder.build().expect("build")
}

fn append(log: &Log, bytes: &[u8]) -> Result<AppendInfo, LogError> {
    let header = batch::validate_produce_batch(bytes, false, LIMIT).expect("valid");
    let info = log.append_at_source_offsets(bytes, &header, NOW, LIMIT)?;
    if info.needs_sync {
        log.sync(NOW).expect("sync");
    }
    Ok(info)
}

/// Every stored record from offset 0: (offset, value, header names, timestamp).
fn read_all(log: &Log) -> Vec<(i64, String, Vec<String>, i64)> {
    let mut out = Vec::new();
    let mut next = 0;
    loop {
        let result = log.read(next, 1 << 20, true).expect("read");
        if result.records.is_empty() {
            assert!(
                next >= result.high_watermark,
                "empty read at {next} below the high watermark"
            );
            return out;
        }
        let mut rest = &result.records[..];
        while !rest.is_empty() {
            let header = spate_log::BatchHeader::parse(rest).expect("header");
            let bytes = &rest[..header.total_len()];
            batch::verify_crc(bytes, &header).expect("stored batches keep a valid crc");
            let records = batch::record_bytes(bytes, LIMIT).expect("records");
            for record in batch::parse_records(&records, &header).expect("parse") {
                let offset = header.base_offset + i64::from(record.offset_delta);
                if offset >= next {
                    let names = batch::parse_headers(record.headers)
                        .expect("headers")
                        .into_iter()
                        .map(|(n, _)| String::from_utf8_lossy(n).into_owned())
                        .collect();
                    out.push((
                        offset,
                        String::from_utf8_lossy(record.value.unwrap_or_default()).into_owned(),
                        names,
                        header.base_timestamp + record.timestamp_delta,
                    ));
                }
            }
            next = header.last_offset() + 1;
            rest = &rest[header.total_len()..];
        }
    }
}

fn offsets_and_values(log: &Log) -> Vec<(i64, String)> {
    read_all(log)
        .into_iter()
        .map(|(o, v, _, _)| (o, v))
        .collect()
}

#[test]
fn records_land_at_their_source_offsets_with_gaps_and_survive_recovery() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = Log::create(dir.path(), "m-0".into(), mirror_config(), NOW).expect("create");
    let info = append(
        &log,
        &mirror_batch(
            &[rec(0, "a"), rec(1, "b"), rec(4, "c")],
            None,
            Compression::None,
        ),
    )
    .expect("append");
    assert_eq!((info.base_offset, info.last_offset), (0, 4));
    // A gap between batches too (an aborted transaction and its marker on the source).
    append(
        &log,
        &mirror_batch(&[rec(7, "d"), rec(9, "e")], None, Compression::Lz4),
    )
    .expect("append");
    let stored = read_all(&log);
    let expected = [(0, "a"), (1, "b"), (4, "c"), (7, "d"), (9, "e")];
    assert_eq!(
        stored
            .iter()
            .map(|(o, v, _, _)| (*o, v.as_str()))
            .collect::<Vec<_>>(),
        expected
    );
    for (_, _, headers, timestamp) in &stored {
        assert_eq!(
            headers,
            &["app"],
            "the source offset header is stripped, others kept"
        );
        assert!(
            *timestamp >= NOW - 1000 && *timestamp <= NOW,
            "source timestamps kept"
        );
    }
    assert_eq!(log.offsets().log_end_offset, 10);
    // A read starting inside a gap gets the next record.
    let from_gap = log.read(5, 1 << 20, true).expect("read");
    let first = spate_log::BatchHeader::parse(&from_gap.records).expect("header");
    assert_eq!(first.base_offset, 7);
    drop(log);
    // Recovery (an unclean start verifies and rescans) accepts the gaps.
    let (log, report) =
        Log::open(dir.path(), "m-0".into(), mirror_config(), false, NOW).expect("open");
    assert_eq!(report.truncated_bytes, 0);
    assert_eq!(log.offsets().log_end_offset, 10);
    assert_eq!(
        offsets_and_values(&log),
        expected
            .iter()
            .map(|(o, v)| (*o, v.to_string()))
            .collect::<Vec<_>>()
    );
}

#[test]
fn records_below_the_log_end_are_skipped_so_a_resend_is_not_duplicated() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = Log::create(dir.path(), "m-0".into(), mirror_config(), NOW).expect("create");
    append(
        &log,
        &mirror_batch(
            &[rec(0, "a"), rec(1, "b"), rec(2, "c")],
            None,
            Compression::None,
        ),
    )
    .expect("append");
    // A re-send overlapping the end: only the new records are appended.
    let info = append(
        &log,
        &mirror_batch(
            &[rec(1, "b"), rec(2, "c"), rec(3, "d"), rec(5, "e")],
            None,
            Compression::None,
        ),
    )
    .expect("append");
    assert_eq!((info.base_offset, info.last_offset), (3, 5));
    // A re-send of records all held: answered, nothing appended.
    let info = append(
        &log,
        &mirror_batch(&[rec(0, "a"), rec(1, "b")], None, Compression::None),
    )
    .expect("append");
    assert!(info.duplicate);
    assert_eq!(info.base_offset, 0);
    assert_eq!(
        offsets_and_values(&log),
        [(0, "a"), (1, "b"), (2, "c"), (3, "d"), (5, "e")]
            .iter()
            .map(|(o, v)| (*o, v.to_string()))
            .collect::<Vec<_>>()
    );
    assert_eq!(log.offsets().log_end_offset, 6);
}

#[test]
fn a_record_without_its_source_offset_is_refused_and_nothing_is_appended() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = Log::create(dir.path(), "m-0".into(), mirror_config(), NOW).expect("create");
    let without = [
        rec(0, "a"),
        Rec {
            source_offset: None,
            value: "plain".into(),
        },
    ];
    let err = append(&log, &mirror_batch(&without, None, Compression::None)).expect_err("refused");
    assert!(
        matches!(err, LogError::MissingSourceOffset { index: 1 }),
        "{err:?}"
    );
    assert!(err.to_string().contains("read-only mirror topic"), "{err}");
    let err = append(
        &log,
        &mirror_batch(&[rec(3, "a"), rec(2, "b")], None, Compression::None),
    )
    .expect_err("refused");
    assert!(
        matches!(err, LogError::InvalidSourceOffset { index: 1, .. }),
        "{err:?}"
    );
    assert_eq!(log.offsets().log_end_offset, 0);
    assert!(read_all(&log).is_empty());
}

#[test]
fn an_offset_far_past_the_segment_base_starts_a_segment_of_its_own() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = Log::create(dir.path(), "m-0".into(), mirror_config(), NOW).expect("create");
    let far = 5_000_000_000;
    append(
        &log,
        &mirror_batch(&[rec(far, "a"), rec(far + 2, "b")], None, Compression::None),
    )
    .expect("append");
    assert!(log.segment_bases().contains(&far));
    assert_eq!(
        offsets_and_values(&log),
        [(far, "a".to_string()), (far + 2, "b".to_string())]
    );
    drop(log);
    let (log, _) = Log::open(dir.path(), "m-0".into(), mirror_config(), false, NOW).expect("open");
    assert_eq!(log.offsets().log_end_offset, far + 3);
}

#[test]
fn an_idempotent_mirror_producer_keeps_its_sequence_across_gaps() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = Log::create(dir.path(), "m-0".into(), mirror_config(), NOW).expect("create");
    let first = mirror_batch(
        &[rec(10, "a"), rec(20, "b")],
        Some((7, 0)),
        Compression::None,
    );
    append(&log, &first).expect("append");
    // The next batch's sequence follows the record count, not the offset span.
    append(
        &log,
        &mirror_batch(&[rec(30, "c")], Some((7, 2)), Compression::None),
    )
    .expect("append");
    // A retry of the first batch is answered with its offsets.
    let retry = append(&log, &first).expect("append");
    assert!(retry.duplicate);
    assert_eq!(retry.base_offset, 10);
    // A gap in sequences is still refused.
    let err = append(
        &log,
        &mirror_batch(&[rec(40, "d")], Some((7, 9)), Compression::None),
    )
    .expect_err("refused");
    assert!(
        matches!(err, LogError::OutOfOrderSequence { .. }),
        "{err:?}"
    );
    assert_eq!(
        offsets_and_values(&log),
        [(10, "a"), (20, "b"), (30, "c")]
            .iter()
            .map(|(o, v)| (*o, v.to_string()))
            .collect::<Vec<_>>()
    );
}
