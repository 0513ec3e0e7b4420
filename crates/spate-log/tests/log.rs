//! Storage engine tests: a log against a simple model, across rolls, restarts and crashes.

use std::collections::BTreeMap;
use std::fs::OpenOptions;
use std::io::Write;
use std::path::Path;

use spate_log::batch::{self, HEADER_LEN};
use spate_log::{BatchBuilder, Compression, Log, LogConfig, LogError};

const NOW: i64 = 1_700_000_000_000;

fn config(pairs: &[(&str, &str)]) -> LogConfig {
    let overrides: BTreeMap<String, String> = pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    LogConfig::resolve(&BTreeMap::new(), &overrides).expect("valid config")
}

fn make_batch(values: &[&[u8]], timestamp: i64) -> Vec<u8> {
    let mut builder = BatchBuilder::new(0, timestamp);
    for (i, value) in values.iter().enumerate() {
        builder.push(i as i64, Some(format!("k{i}").as_bytes()), Some(value));
    }
    builder.build().expect("build")
}

fn append(log: &Log, values: &[&[u8]], timestamp: i64) -> i64 {
    let bytes = make_batch(values, timestamp);
    let header = batch::validate_produce_batch(&bytes, false, 1 << 20).expect("valid");
    let info = log.append(&bytes, &header, NOW).expect("append");
    if info.needs_sync {
        log.sync(NOW).expect("sync");
    }
    info.base_offset
}

/// Every (offset, value) readable from `from`, following batches across segments.
fn read_all(log: &Log, from: i64) -> Vec<(i64, Vec<u8>)> {
    let mut out = Vec::new();
    let mut next = from;
    loop {
        let result = log.read(next, 64 * 1024, true).expect("read");
        if result.records.is_empty() {
            if next >= result.high_watermark {
                return out;
            }
            panic!(
                "empty read at {next} below high watermark {}",
                result.high_watermark
            );
        }
        let mut rest = &result.records[..];
        while !rest.is_empty() {
            let header = spate_log::BatchHeader::parse(rest).expect("header");
            let bytes = &rest[..header.total_len()];
            batch::verify_crc(bytes, &header).expect("stored batches keep a valid crc");
            let records = batch::record_bytes(bytes, 1 << 24).expect("records");
            for record in batch::parse_records(&records, &header).expect("parse") {
                let offset = header.base_offset + i64::from(record.offset_delta);
                if offset >= next {
                    out.push((offset, record.value.map(<[u8]>::to_vec).unwrap_or_default()));
                }
            }
            next = header.last_offset() + 1;
            rest = &rest[header.total_len()..];
        }
    }
}

fn open(dir: &Path, config: LogConfig, clean: bool) -> Log {
    Log::open(dir, "t-0".into(), config, clean, NOW)
        .expect("open")
        .0
}

#[test]
fn offsets_are_assigned_in_order_and_reads_start_at_the_holding_batch() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = Log::create(dir.path(), "t-0".into(), LogConfig::default(), NOW).expect("create");
    assert_eq!(append(&log, &[b"a", b"b", b"c"], NOW), 0);
    assert_eq!(append(&log, &[b"d"], NOW), 3);
    let offsets = log.offsets();
    assert_eq!((offsets.log_start_offset, offsets.high_watermark), (0, 4));
    let from_one = read_all(&log, 1);
    assert_eq!(
        from_one.iter().map(|(o, _)| *o).collect::<Vec<_>>(),
        vec![1, 2, 3]
    );
    assert!(matches!(
        log.read(5, 1024, true),
        Err(LogError::OffsetOutOfRange { .. })
    ));
    assert!(log.read(4, 1024, true).expect("at end").records.is_empty());
}

#[test]
fn acknowledged_data_is_invisible_until_fsynced() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = Log::create(dir.path(), "t-0".into(), LogConfig::default(), NOW).expect("create");
    let bytes = make_batch(&[b"x"], NOW);
    let header = batch::validate_produce_batch(&bytes, false, 1 << 20).expect("valid");
    let info = log.append(&bytes, &header, NOW).expect("append");
    assert!(info.needs_sync && info.wait_for_durable);
    assert_eq!(log.offsets().high_watermark, 0, "not visible before fsync");
    assert_eq!(log.offsets().log_end_offset, 1);
    log.sync(NOW).expect("sync");
    assert_eq!(log.offsets().high_watermark, 1);
    assert_eq!(log.offsets().durable_offset, 1);
}

#[test]
fn the_syncer_times_each_fsync_it_runs() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = std::sync::Arc::new(
        Log::create(dir.path(), "t-0".into(), LogConfig::default(), NOW).expect("create"),
    );
    let syncer = spate_log::Syncer::start(1);
    assert_eq!(syncer.fsync_seconds().count(), 0);
    for round in 1..=2 {
        let bytes = make_batch(&[b"x"], NOW);
        let header = batch::validate_produce_batch(&bytes, false, 1 << 20).expect("valid");
        log.append(&bytes, &header, NOW).expect("append");
        syncer.request(&log);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        while log.offsets().durable_offset < round {
            assert!(std::time::Instant::now() < deadline, "no fsync in 20 s");
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        assert_eq!(syncer.fsync_seconds().count(), round as u64);
    }
    // Asked again with nothing new to make durable, it runs no fsync and records nothing
    // (shutdown finishes queued requests first).
    syncer.request(&log);
    syncer.shutdown();
    assert_eq!(syncer.fsync_seconds().count(), 2);
}

#[test]
fn relaxed_flush_policy_makes_writes_visible_at_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = Log::create(
        dir.path(),
        "t-0".into(),
        config(&[("flush.messages", "1000")]),
        NOW,
    )
    .expect("create");
    let bytes = make_batch(&[b"x"], NOW);
    let header = batch::validate_produce_batch(&bytes, false, 1 << 20).expect("valid");
    let info = log.append(&bytes, &header, NOW).expect("append");
    assert!(!info.needs_sync && !info.wait_for_durable);
    assert_eq!(log.offsets().high_watermark, 1);
    assert_eq!(log.offsets().durable_offset, 0);
}

#[test]
fn segments_roll_and_survive_clean_and_unclean_restarts() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = config(&[
        ("internal.segment.bytes", "2000"),
        ("index.interval.bytes", "100"),
    ]);
    let log = Log::create(dir.path(), "t-0".into(), cfg.clone(), NOW).expect("create");
    let value = [7u8; 100];
    for _ in 0..100 {
        append(&log, &[&value, &value], NOW);
    }
    assert!(log.segment_count() > 5, "segments: {}", log.segment_count());
    let before = read_all(&log, 0);
    assert_eq!(before.len(), 200);
    log.close().expect("close");
    drop(log);

    let reopened = open(dir.path(), cfg.clone(), true);
    assert_eq!(read_all(&reopened, 0), before);
    assert_eq!(read_all(&reopened, 137)[0].0, 137);
    assert_eq!(append(&reopened, &[b"more"], NOW), 200);
    drop(reopened);

    let recovered = open(dir.path(), cfg, false);
    assert_eq!(recovered.offsets().log_end_offset, 201);
    assert_eq!(read_all(&recovered, 0).len(), 201);
}

#[test]
fn closing_a_log_untouched_since_a_clean_start_writes_nothing_and_loses_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = config(&[]);
    let log = Log::create(dir.path(), "t-0".into(), cfg.clone(), NOW).expect("create");
    append_idempotent(&log, 7, 0, 0, 3).expect("append");
    let before = read_all(&log, 0);
    log.close().expect("close");
    drop(log);
    let modified = |dir: &Path| -> Vec<(std::path::PathBuf, std::time::SystemTime)> {
        let mut files: Vec<_> = std::fs::read_dir(dir)
            .expect("list")
            .map(|e| {
                let e = e.expect("entry");
                (
                    e.path(),
                    e.metadata().expect("meta").modified().expect("mtime"),
                )
            })
            .collect();
        files.sort();
        files
    };
    let files = modified(dir.path());

    // Untouched: close leaves every file as the last clean stop wrote it.
    let log = open(dir.path(), cfg.clone(), true);
    log.close().expect("close untouched");
    drop(log);
    assert_eq!(modified(dir.path()), files);

    // Still a complete clean state: records and producer state come back.
    let log = open(dir.path(), cfg.clone(), true);
    assert_eq!(read_all(&log, 0), before);
    assert!(
        append_idempotent(&log, 7, 0, 0, 3)
            .expect("retry")
            .duplicate
    );
    // Touched: the next close writes again, and a clean start sees the new record.
    append(&log, &[b"more"], NOW);
    log.close().expect("close touched");
    drop(log);
    let log = open(dir.path(), cfg, true);
    assert_eq!(read_all(&log, 0).len(), before.len() + 1);
}

fn active_segment_path(dir: &Path) -> std::path::PathBuf {
    let mut logs: Vec<_> = std::fs::read_dir(dir)
        .expect("list")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "log"))
        .collect();
    logs.sort();
    logs.pop().expect("a segment")
}

#[test]
fn recovery_cuts_a_torn_tail_and_keeps_every_complete_batch() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = Log::create(dir.path(), "t-0".into(), LogConfig::default(), NOW).expect("create");
    for i in 0..10 {
        append(&log, &[format!("v{i}").as_bytes()], NOW);
    }
    drop(log); // no close: an unclean stop
    // A write that was cut short: the first 30 bytes of another batch.
    let torn = make_batch(&[b"torn"], NOW);
    let mut file = OpenOptions::new()
        .append(true)
        .open(active_segment_path(dir.path()))
        .expect("open");
    file.write_all(&torn[..30]).expect("write");
    drop(file);

    let (log, report) =
        Log::open(dir.path(), "t-0".into(), LogConfig::default(), false, NOW).expect("open");
    assert_eq!(report.truncated_bytes, 30);
    assert_eq!(log.offsets().log_end_offset, 10);
    assert_eq!(read_all(&log, 0).len(), 10);
    assert_eq!(append(&log, &[b"after"], NOW), 10);
}

#[test]
fn recovery_cuts_at_a_batch_with_a_bad_crc() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = Log::create(dir.path(), "t-0".into(), LogConfig::default(), NOW).expect("create");
    for i in 0..5 {
        append(&log, &[format!("v{i}").as_bytes()], NOW);
    }
    drop(log);
    let path = active_segment_path(dir.path());
    let mut bytes = std::fs::read(&path).expect("read");
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    std::fs::write(&path, &bytes).expect("write");
    let (log, report) =
        Log::open(dir.path(), "t-0".into(), LogConfig::default(), false, NOW).expect("open");
    assert!(report.truncation_reason.expect("a reason").contains("crc"));
    assert_eq!(log.offsets().log_end_offset, 4);
}

#[test]
fn a_garbled_index_is_rebuilt() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = config(&[
        ("internal.segment.bytes", "1000"),
        ("index.interval.bytes", "50"),
    ]);
    let log = Log::create(dir.path(), "t-0".into(), cfg.clone(), NOW).expect("create");
    for _ in 0..40 {
        append(&log, &[&[1u8; 60]], NOW);
    }
    log.close().expect("close");
    drop(log);
    let index = std::fs::read_dir(dir.path())
        .expect("list")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| p.extension().is_some_and(|e| e == "index"))
        .expect("an index file");
    std::fs::write(&index, b"garbage").expect("clobber");
    let (log, report) = Log::open(dir.path(), "t-0".into(), cfg, true, NOW).expect("open");
    assert_eq!(report.rebuilt_indexes, 1);
    assert_eq!(read_all(&log, 0).len(), 40);
    assert_eq!(read_all(&log, 23)[0].0, 23);
}

#[test]
fn retention_by_bytes_and_time_deletes_whole_old_segments() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = config(&[
        ("internal.segment.bytes", "1000"),
        ("retention.bytes", "3000"),
    ]);
    let log = Log::create(dir.path(), "t-0".into(), cfg, NOW).expect("create");
    for _ in 0..60 {
        append(&log, &[&[0u8; 100]], NOW);
    }
    let report = log.enforce_retention(NOW).expect("retention");
    assert!(report.deleted_segments > 0);
    assert!(log.size_bytes() <= 3000 + 1000, "size {}", log.size_bytes());
    let start = log.offsets().log_start_offset;
    assert!(start > 0);
    assert_eq!(read_all(&log, start).len() as i64, 60 - start);
    assert!(matches!(
        log.read(0, 100, true),
        Err(LogError::OffsetOutOfRange { .. })
    ));

    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = config(&[("retention.ms", "1000")]);
    let log = Log::create(dir.path(), "t-0".into(), cfg, NOW).expect("create");
    append(&log, &[b"old"], NOW - 5000);
    append(&log, &[b"old too"], NOW - 4000);
    let report = log.enforce_retention(NOW).expect("retention");
    assert_eq!(
        report.deleted_segments, 1,
        "the expired active segment is rolled and deleted"
    );
    assert_eq!(log.offsets().log_start_offset, 2);
    assert_eq!(append(&log, &[b"new"], NOW), 2);
}

#[test]
fn delete_records_moves_the_start_and_persists() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = Log::create(dir.path(), "t-0".into(), LogConfig::default(), NOW).expect("create");
    for _ in 0..10 {
        append(&log, &[b"v"], NOW);
    }
    assert_eq!(log.delete_records_before(4).expect("delete"), 4);
    assert!(matches!(
        log.delete_records_before(11),
        Err(LogError::OffsetOutOfRange { .. })
    ));
    assert_eq!(read_all(&log, 4).len(), 6);
    log.close().expect("close");
    drop(log);
    let log = open(dir.path(), LogConfig::default(), true);
    assert_eq!(log.offsets().log_start_offset, 4);
    assert_eq!(log.delete_records_before(-1).expect("to hw"), 10);
}

#[test]
fn timestamp_lookups_find_the_first_record_at_or_after() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = config(&[
        ("internal.segment.bytes", "600"),
        ("index.interval.bytes", "1"),
    ]);
    let log = Log::create(dir.path(), "t-0".into(), cfg, NOW).expect("create");
    for i in 0..20 {
        // Records 2i and 2i+1 carry timestamps base+10i and base+10i+1.
        let mut builder = BatchBuilder::new(0, NOW - 1000 + 10 * i).compression(Compression::Lz4);
        builder.push(0, Some(b"a"), Some(b"x"));
        builder.push(1, Some(b"b"), Some(b"y"));
        let bytes = builder.build().expect("build");
        let header = batch::validate_produce_batch(&bytes, false, 1 << 20).expect("valid");
        log.append(&bytes, &header, NOW).expect("append");
        log.sync(NOW).expect("sync");
    }
    assert_eq!(
        log.offset_for_timestamp(NOW - 1000).expect("lookup"),
        Some((0, NOW - 1000))
    );
    assert_eq!(
        log.offset_for_timestamp(NOW - 1000 + 71).expect("lookup"),
        Some((15, NOW - 1000 + 71))
    );
    assert_eq!(
        log.offset_for_timestamp(NOW - 1000 + 72).expect("lookup"),
        Some((16, NOW - 1000 + 80))
    );
    assert_eq!(log.offset_for_timestamp(NOW).expect("lookup"), None);
    assert_eq!(
        log.max_timestamp_offset().expect("max"),
        Some((39, NOW - 1000 + 191))
    );
}

#[test]
fn log_append_time_topics_stamp_the_broker_clock() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = Log::create(
        dir.path(),
        "t-0".into(),
        config(&[("message.timestamp.type", "LogAppendTime")]),
        NOW,
    )
    .expect("create");
    let bytes = make_batch(&[b"x"], 5);
    let header = batch::validate_produce_batch(&bytes, false, 1 << 20).expect("valid");
    let info = log.append(&bytes, &header, NOW).expect("append");
    assert_eq!(info.log_append_time_ms, NOW);
    log.sync(NOW).expect("sync");
    let read = log.read(0, 1024, true).expect("read");
    let stored = spate_log::BatchHeader::parse(&read.records).expect("header");
    assert!(stored.is_log_append_time());
    assert_eq!(stored.max_timestamp, NOW);
    batch::verify_crc(&read.records, &stored).expect("crc recomputed");
}

#[test]
fn create_time_outside_the_window_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = Log::create(dir.path(), "t-0".into(), LogConfig::default(), NOW).expect("create");
    let bytes = make_batch(&[b"x"], NOW + 2 * 3_600_000);
    let header = batch::validate_produce_batch(&bytes, false, 1 << 20).expect("valid");
    assert!(matches!(
        log.append(&bytes, &header, NOW),
        Err(LogError::InvalidTimestamp { .. })
    ));
    assert_eq!(log.offsets().log_end_offset, 0);
}

#[test]
fn a_batch_larger_than_a_segment_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = Log::create(
        dir.path(),
        "t-0".into(),
        config(&[("internal.segment.bytes", "500")]),
        NOW,
    )
    .expect("create");
    let bytes = make_batch(&[&[0u8; 600]], NOW);
    let header = batch::validate_produce_batch(&bytes, false, 1 << 20).expect("valid");
    assert!(matches!(
        log.append(&bytes, &header, NOW),
        Err(LogError::BatchLargerThanSegment { .. })
    ));
    assert_eq!(log.offsets().log_end_offset, 0);
}

#[test]
fn oversized_batches_are_refused_with_the_limit() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = Log::create(
        dir.path(),
        "t-0".into(),
        config(&[("max.message.bytes", "200")]),
        NOW,
    )
    .expect("create");
    let bytes = make_batch(&[&[0u8; 300]], NOW);
    let header = batch::validate_produce_batch(&bytes, false, 1 << 20).expect("valid");
    match log.append(&bytes, &header, NOW) {
        Err(LogError::MessageTooLarge { limit_bytes, .. }) => assert_eq!(limit_bytes, 200),
        other => panic!("expected MessageTooLarge, got {other:?}"),
    }
}

#[test]
fn compaction_keeps_the_latest_value_per_key_and_drops_old_tombstones() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = config(&[
        ("cleanup.policy", "compact"),
        ("internal.segment.bytes", "400"),
        ("delete.retention.ms", "1000"),
        ("min.cleanable.dirty.ratio", "0.01"),
    ]);
    let log = Log::create(dir.path(), "t-0".into(), cfg.clone(), NOW).expect("create");
    let put = |key: &str, value: Option<&str>, ts: i64| {
        let mut builder = BatchBuilder::new(0, ts).compression(Compression::Gzip);
        builder.push(0, Some(key.as_bytes()), value.map(str::as_bytes));
        let bytes = builder.build().expect("build");
        let header = batch::validate_produce_batch(&bytes, true, 1 << 20).expect("valid");
        log.append(&bytes, &header, NOW).expect("append");
        log.sync(NOW).expect("sync");
    };
    for round in 0..10 {
        for key in ["a", "b", "c"] {
            put(key, Some(&format!("{key}{round}")), NOW - 10_000);
        }
    }
    put("b", None, NOW - 10_000); // an old tombstone: dropped
    put("c", None, NOW); // a recent tombstone: kept
    put("z", Some("filler"), NOW);
    log.force_roll().expect("roll");
    put("z", Some("active"), NOW);

    let report = spate_log::clean(&log, NOW).expect("clean");
    assert!(report.records_removed >= 27, "{report:?}");
    let records = read_all(&log, 0);
    let mut latest: BTreeMap<i64, Vec<u8>> = BTreeMap::new();
    for (offset, value) in &records {
        latest.insert(*offset, value.clone());
    }
    let values: Vec<String> = records
        .iter()
        .map(|(_, v)| String::from_utf8_lossy(v).into_owned())
        .collect();
    assert!(values.contains(&"a9".to_string()), "{values:?}");
    assert!(
        !values.iter().any(|v| v == "a8" || v == "b9" || v == "c9"),
        "{values:?}"
    );
    // Offsets never move: the last record is still at 33.
    assert_eq!(records.last().map(|(o, _)| *o), Some(33));
    log.close().expect("close");
    drop(log);
    let log = open(dir.path(), cfg, true);
    assert_eq!(read_all(&log, 0), records);
}

fn idempotent_batch(producer_id: i64, epoch: i16, sequence: i32, count: usize) -> Vec<u8> {
    let mut builder = BatchBuilder::new(0, NOW);
    builder.producer_id = producer_id;
    builder.producer_epoch = epoch;
    builder.base_sequence = sequence;
    for i in 0..count {
        builder.push(
            i as i64,
            Some(b"k"),
            Some(format!("seq{}", sequence as usize + i).as_bytes()),
        );
    }
    builder.build().expect("build")
}

fn append_idempotent(
    log: &Log,
    producer_id: i64,
    epoch: i16,
    sequence: i32,
    count: usize,
) -> Result<spate_log::AppendInfo, LogError> {
    let bytes = idempotent_batch(producer_id, epoch, sequence, count);
    let header = batch::validate_produce_batch(&bytes, false, 1 << 20).expect("valid");
    let info = log.append(&bytes, &header, NOW)?;
    log.sync(NOW).expect("sync");
    Ok(info)
}

#[test]
fn retried_idempotent_batches_are_not_appended_twice_even_after_a_crash() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = config(&[("internal.segment.bytes", "200")]);
    let log = Log::create(dir.path(), "t-0".into(), cfg.clone(), NOW).expect("create");
    let mut sequence = 0;
    for _ in 0..6 {
        let info = append_idempotent(&log, 42, 0, sequence, 2).expect("append");
        assert!(!info.duplicate);
        sequence += 2;
    }
    assert!(log.segment_count() > 2, "rolls wrote producer snapshots");
    let retry = append_idempotent(&log, 42, 0, sequence - 2, 2).expect("retry");
    assert!(retry.duplicate);
    assert_eq!((retry.base_offset, retry.last_offset), (10, 11));
    assert!(matches!(
        append_idempotent(&log, 42, 0, sequence + 4, 1),
        Err(LogError::OutOfOrderSequence {
            expected: 12,
            received: 16,
            ..
        })
    ));
    drop(log); // crash: no clean close, no final snapshot

    let (log, report) =
        Log::open(dir.path(), "t-0".into(), cfg.clone(), false, NOW).expect("reopen");
    assert!(report.replayed_batches >= 1);
    let retry = append_idempotent(&log, 42, 0, sequence - 2, 2).expect("retry after crash");
    assert!(retry.duplicate, "state rebuilt from snapshot + log");
    assert_eq!(retry.base_offset, 10);
    assert_eq!(log.offsets().log_end_offset, 12);
    assert!(
        matches!(append_idempotent(&log, 42, 0, sequence, 1), Ok(info) if info.base_offset == 12)
    );
    // A newer epoch fences the old one.
    append_idempotent(&log, 42, 1, 0, 1).expect("new epoch starts at 0");
    assert!(matches!(
        append_idempotent(&log, 42, 0, sequence + 1, 1),
        Err(LogError::InvalidProducerEpoch { .. })
    ));
    log.close().expect("close");
    drop(log);

    // Without any snapshot the state is rebuilt from batch headers alone.
    for entry in std::fs::read_dir(dir.path()).expect("list") {
        let path = entry.expect("entry").path();
        if path.extension().is_some_and(|e| e == "snapshot") {
            std::fs::remove_file(path).expect("remove snapshot");
        }
    }
    let log = open(dir.path(), cfg, true);
    assert!(matches!(
        append_idempotent(&log, 42, 0, 0, 1),
        Err(LogError::InvalidProducerEpoch { .. })
    ));
    assert!(
        append_idempotent(&log, 42, 1, 0, 1)
            .expect("retry of epoch 1")
            .duplicate
    );
}

fn transactional_batch(producer_id: i64, sequence: i32, value: &[u8]) -> Vec<u8> {
    let mut builder = BatchBuilder::new(0, NOW);
    builder.producer_id = producer_id;
    builder.producer_epoch = 0;
    builder.base_sequence = sequence;
    builder.attributes = 0x10; // transactional
    builder.push(0, Some(b"k"), Some(value));
    builder.build().expect("build")
}

#[test]
fn open_transactions_hold_back_read_committed_and_aborts_are_listed_after_a_crash() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = Log::create(dir.path(), "t-0".into(), LogConfig::default(), NOW).expect("create");
    append(&log, &[b"plain"], NOW); // offset 0
    let txn = |pid: i64, seq: i32, value: &[u8]| {
        let bytes = transactional_batch(pid, seq, value);
        let header = batch::validate_produce_batch(&bytes, false, 1 << 20).expect("valid");
        let info = log.append(&bytes, &header, NOW).expect("append");
        log.sync(NOW).expect("sync");
        info.base_offset
    };
    assert_eq!(txn(7, 0, b"t7-a"), 1);
    assert_eq!(txn(8, 0, b"t8-a"), 2);
    append(&log, &[b"plain2"], NOW); // 3
    let offsets = log.offsets();
    assert_eq!((offsets.high_watermark, offsets.last_stable_offset), (4, 1));
    // read_committed stops before the first open transaction; read_uncommitted does not.
    assert_eq!(read_all(&log, 0).len(), 4);
    let committed = log.read_isolated(0, 1 << 20, true, true).expect("read");
    assert_eq!(
        spate_log::BatchHeader::parse(&committed.records)
            .expect("header")
            .last_offset(),
        0
    );
    assert_eq!(
        committed.records.len(),
        spate_log::BatchHeader::parse(&committed.records)
            .expect("h")
            .total_len()
    );

    log.append_marker(7, 0, false, 0, NOW).expect("abort 7"); // 4
    log.sync(NOW).expect("sync");
    assert_eq!(log.offsets().last_stable_offset, 2, "8 is still open");
    log.append_marker(8, 0, true, 0, NOW).expect("commit 8"); // 5
    log.sync(NOW).expect("sync");
    let offsets = log.offsets();
    assert_eq!(offsets.last_stable_offset, offsets.high_watermark);
    let aborted = log.aborted_transactions(0, 10);
    assert_eq!(aborted.len(), 1);
    assert_eq!(
        (
            aborted[0].producer_id,
            aborted[0].first_offset,
            aborted[0].last_offset
        ),
        (7, 1, 4)
    );
    txn(8, 1, b"t8-b"); // 6: a new open transaction
    drop(log); // crash

    let log = open(dir.path(), LogConfig::default(), false);
    assert_eq!(
        log.offsets().last_stable_offset,
        6,
        "open transaction restored from the log"
    );
    assert_eq!(
        log.aborted_transactions(0, 10).len(),
        1,
        "aborted list rebuilt"
    );
    assert_eq!(log.open_transactions(), vec![(8, 6)]);
}

mod model {
    use super::*;
    use proptest::prelude::*;

    #[derive(Debug, Clone)]
    enum Op {
        Append(Vec<usize>),
        Roll,
        Reopen { clean: bool },
        Read(usize),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            6 => proptest::collection::vec(0usize..300, 1..5).prop_map(Op::Append),
            1 => Just(Op::Roll),
            1 => any::<bool>().prop_map(|clean| Op::Reopen { clean }),
            3 => (0usize..1000).prop_map(Op::Read),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]
        #[test]
        fn log_matches_a_vec_model(ops in proptest::collection::vec(op(), 1..40)) {
            let dir = tempfile::tempdir().expect("tempdir");
            let cfg = config(&[("internal.segment.bytes", "1500"), ("index.interval.bytes", "200")]);
            let mut log = Log::create(dir.path(), "t-0".into(), cfg.clone(), NOW).expect("create");
            let mut model: Vec<Vec<u8>> = Vec::new();
            for op in ops {
                match op {
                    Op::Append(sizes) => {
                        let values: Vec<Vec<u8>> = sizes.iter().enumerate().map(|(i, n)| vec![(model.len() + i) as u8; *n]).collect();
                        let refs: Vec<&[u8]> = values.iter().map(Vec::as_slice).collect();
                        let base = append(&log, &refs, NOW);
                        prop_assert_eq!(base, model.len() as i64);
                        model.extend(values);
                    }
                    Op::Roll => log.force_roll().expect("roll"),
                    Op::Reopen { clean } => {
                        if clean { log.close().expect("close"); }
                        drop(log);
                        log = open(dir.path(), cfg.clone(), clean);
                    }
                    Op::Read(at) => {
                        if model.is_empty() { continue; }
                        let at = at % model.len();
                        let got = read_all(&log, at as i64);
                        let want: Vec<(i64, Vec<u8>)> = model.iter().enumerate().skip(at).map(|(o, v)| (o as i64, v.clone())).collect();
                        prop_assert_eq!(got, want);
                    }
                }
            }
            prop_assert_eq!(log.offsets().log_end_offset, model.len() as i64);
            let _ = HEADER_LEN;
        }
    }
}
