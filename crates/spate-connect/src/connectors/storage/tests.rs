//! The S3 sink's tests: files rotated and named as Confluent's, offsets committed after them,
//! redelivered puts written once, partitions closed by a rebalance dropped; Parquet and Avro files
//! read back.

use super::*;
use crate::data::{SchemaType, Struct, Value};

use ::parquet::file::reader::{FileReader, SerializedFileReader};
use ::parquet::record::Field as PqField;

fn props(pairs: &[(&str, &str)]) -> Props {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn started(dir: &std::path::Path, extra: &[(&str, &str)]) -> StorageTask {
    let url = format!("file://{}", dir.display());
    let mut all = vec![
        ("s3.bucket.name", "b"),
        ("store.url", url.as_str()),
        ("flush.size", "3"),
        (
            "format.class",
            "io.confluent.connect.s3.format.json.JsonFormat",
        ),
    ];
    all.extend_from_slice(extra);
    let mut task = StorageTask::default();
    task.start(&props(&all)).expect("the task starts");
    task
}

fn json_record(partition: i32, offset: i64, n: i64) -> ConnectRecord {
    let mut record = ConnectRecord::new("t", None, Value::map_of([("n", Value::Int64(n))]));
    record.partition = Some(partition);
    record.kafka_offset = Some(offset);
    record.timestamp_ms = Some(1_714_557_600_000 + offset);
    record
}

fn files(dir: &std::path::Path) -> Vec<String> {
    fn walk(dir: &std::path::Path, base: &std::path::Path, out: &mut Vec<String>) {
        for entry in std::fs::read_dir(dir).expect("it succeeds") {
            let path = entry.expect("it succeeds").path();
            if path.is_dir() {
                walk(&path, base, out);
            } else {
                out.push(
                    path.strip_prefix(base)
                        .expect("it succeeds")
                        .display()
                        .to_string(),
                );
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out);
    out.sort();
    out
}

#[test]
fn files_rotate_at_flush_size_and_offsets_commit_after_them() {
    let dir = tempfile::tempdir().expect("it succeeds");
    let mut task = started(dir.path(), &[]);
    task.put(&(0..7).map(|o| json_record(0, o, o)).collect::<Vec<_>>())
        .expect("it succeeds");
    assert_eq!(
        files(dir.path()),
        [
            "topics/t/partition=0/t+0+0000000000.json",
            "topics/t/partition=0/t+0+0000000003.json"
        ]
    );
    let first =
        std::fs::read_to_string(dir.path().join("topics/t/partition=0/t+0+0000000000.json"))
            .expect("it succeeds");
    assert_eq!(first, "{\"n\":0}\n{\"n\":1}\n{\"n\":2}\n");
    // Offset 6 is in a file not yet written: the commit stops before it.
    let given: SinkOffsets = [(("t".to_string(), 0), 7)].into_iter().collect();
    assert_eq!(
        task.pre_commit(&given).expect("it succeeds")[&("t".to_string(), 0)],
        6
    );

    // A put given again (redelivered) does not write its records twice.
    task.put(&(5..9).map(|o| json_record(0, o, o)).collect::<Vec<_>>())
        .expect("it succeeds");
    let third =
        std::fs::read_to_string(dir.path().join("topics/t/partition=0/t+0+0000000006.json"))
            .expect("it succeeds");
    assert_eq!(third, "{\"n\":6}\n{\"n\":7}\n{\"n\":8}\n");
    let given: SinkOffsets = [(("t".to_string(), 0), 9)].into_iter().collect();
    assert_eq!(
        task.pre_commit(&given).expect("it succeeds")[&("t".to_string(), 0)],
        9
    );

    // A partition taken by a rebalance drops its half-filled file; its next owner starts it
    // again from the last commit, under the same name.
    task.put(&[json_record(1, 40, 40)]).expect("it succeeds");
    task.close(&[("t".to_string(), 1)]);
    task.put(&(40..43).map(|o| json_record(1, o, o)).collect::<Vec<_>>())
        .expect("it succeeds");
    let p1 = std::fs::read_to_string(dir.path().join("topics/t/partition=1/t+1+0000000040.json"))
        .expect("it succeeds");
    assert_eq!(p1.lines().count(), 3);
}

#[test]
fn time_based_partitioning_cuts_files_per_hour_and_on_schema_change() {
    let dir = tempfile::tempdir().expect("it succeeds");
    let mut task = started(
        dir.path(),
        &[
            ("flush.size", "100"),
            (
                "partitioner.class",
                "io.confluent.connect.storage.partitioner.HourlyPartitioner",
            ),
            ("timezone", "UTC"),
            ("timestamp.extractor", "Record"),
            ("rotate.interval.ms", "3600000"),
        ],
    );
    let hour = 3_600_000;
    let mut records: Vec<ConnectRecord> = (0..4)
        .map(|o| {
            let mut r = json_record(0, o, o);
            r.timestamp_ms = Some(1_714_557_600_000 + o * hour / 2);
            r
        })
        .collect();
    // A record with a schema: the file of its hour is cut before it.
    let schema = Schema::structure(None, vec![("n", Schema::new(SchemaType::Int64))]);
    let mut value = Struct::new(schema.clone());
    value.put("n", Value::Int64(4));
    let mut with_schema = ConnectRecord::new("t", Some(schema.into()), Value::Struct(value));
    with_schema.partition = Some(0);
    with_schema.kafka_offset = Some(4);
    with_schema.timestamp_ms = Some(1_714_557_600_000 + 3 * hour / 2 + 1);
    records.push(with_schema);
    task.put(&records).expect("it succeeds");
    assert_eq!(
        files(dir.path()),
        [
            "topics/t/year=2024/month=05/day=01/hour=10/t+0+0000000000.json",
            "topics/t/year=2024/month=05/day=01/hour=11/t+0+0000000002.json",
        ]
    );
    let given: SinkOffsets = [(("t".to_string(), 0), 5)].into_iter().collect();
    assert_eq!(
        task.pre_commit(&given).expect("it succeeds")[&("t".to_string(), 0)],
        4
    );
}

#[test]
fn bad_configs_name_their_fields() {
    let problems = parse(
        &props(&[
            ("s3.bucket.name", "b"),
            ("flush.size", "0"),
            (
                "format.class",
                "io.confluent.connect.s3.format.csv.CsvFormat",
            ),
            (
                "partitioner.class",
                "io.confluent.connect.storage.partitioner.TimeBasedPartitioner",
            ),
            ("timezone", "Mars/Olympus"),
            ("parquet.codec", "lzo"),
            ("store.url", "ftp://x"),
        ]),
        Cloud::S3,
    )
    .expect_err("it fails");
    let names: Vec<&str> = problems.iter().map(|p| p.name.as_str()).collect();
    for field in [
        "flush.size",
        "format.class",
        "timezone",
        "path.format",
        "partition.duration.ms",
        "store.url",
    ] {
        assert!(names.contains(&field), "{field} in {problems:?}");
    }
}

fn nested_schema() -> Schema {
    let mut decimal = Schema::new(SchemaType::Bytes).with_name(crate::data::logical::DECIMAL);
    decimal
        .parameters
        .insert("scale".to_string(), "2".to_string());
    let address = Schema::structure(
        Some("Address"),
        vec![
            ("city", Schema::new(SchemaType::String)),
            ("zip", Schema::optional(SchemaType::Int32)),
        ],
    )
    .into_optional();
    Schema::structure(
        Some("com.example.Order"),
        vec![
            ("id", Schema::new(SchemaType::Int64)),
            ("small", Schema::new(SchemaType::Int8)),
            ("note", Schema::optional(SchemaType::String)),
            ("price", decimal),
            (
                "at",
                Schema::new(SchemaType::Int64).with_name(crate::data::logical::TIMESTAMP),
            ),
            (
                "tags",
                Schema::array(Schema::optional(SchemaType::String)).into_optional(),
            ),
            (
                "counts",
                Schema::map(
                    Schema::new(SchemaType::String),
                    Schema::new(SchemaType::Int32),
                ),
            ),
            ("address", address),
        ],
    )
}

fn nested_value(schema: &Schema, id: i64) -> Value {
    let mut s = Struct::new(schema.clone());
    s.put("id", Value::Int64(id));
    s.put("small", Value::Int8(-3));
    if id % 2 == 0 {
        s.put("note", Value::String(format!("note {id}")));
    }
    s.put("price", Value::Bytes(vec![0x04, 0xD2].into())); // 12.34
    s.put("at", Value::Int64(1_714_557_600_000));
    s.put(
        "tags",
        match id {
            0 => Value::Null,
            1 => Value::Array(vec![]),
            _ => Value::Array(vec![Value::String("a".into()), Value::Null]),
        },
    );
    s.put(
        "counts",
        Value::Map(vec![(Value::String("x".into()), Value::Int32(id as i32))]),
    );
    if id != 1 {
        let address_schema = schema.field("address").expect("it succeeds").schema.clone();
        let mut address = Struct::new(address_schema);
        address.put("city", Value::String("Oslo".into()));
        s.put("address", Value::Struct(address));
    }
    Value::Struct(s)
}

#[test]
fn parquet_files_hold_nested_values_readers_understand() {
    let schema = nested_schema();
    let mut writer = parquet::ParquetWriter::new(&schema, ::parquet::basic::Compression::SNAPPY)
        .expect("it succeeds");
    for id in 0..3 {
        writer
            .write(&nested_value(&schema, id))
            .expect("it succeeds");
    }
    // A value that breaks the schema is refused and leaves the file as it was.
    let mut broken = Struct::new(schema.clone());
    broken.put("id", Value::Null);
    assert!(writer.write(&Value::Struct(broken)).is_err());
    let bytes = writer.finish().expect("it succeeds");
    let reader = SerializedFileReader::new(bytes::Bytes::from(bytes)).expect("it succeeds");
    assert_eq!(reader.metadata().file_metadata().num_rows(), 3);
    let rows: Vec<_> = reader
        .get_row_iter(None)
        .expect("it succeeds")
        .map(|r| r.expect("it succeeds"))
        .collect();
    let field = |row: &::parquet::record::Row, name: &str| -> PqField {
        row.get_column_iter()
            .find(|(n, _)| n.as_str() == name)
            .map(|(_, f)| f.clone())
            .expect("it succeeds")
    };
    assert_eq!(field(&rows[2], "id"), PqField::Long(2));
    assert_eq!(field(&rows[2], "small"), PqField::Byte(-3));
    assert_eq!(field(&rows[0], "note"), PqField::Str("note 0".into()));
    assert_eq!(field(&rows[1], "note"), PqField::Null);
    assert_eq!(
        field(&rows[0], "at"),
        PqField::TimestampMillis(1_714_557_600_000)
    );
    match field(&rows[0], "price") {
        PqField::Decimal(d) => {
            assert_eq!(d.data(), &[0x04, 0xD2]);
            assert_eq!(d.scale(), 2);
        }
        other => panic!("price is {other:?}"),
    }
    assert_eq!(field(&rows[0], "tags"), PqField::Null);
    match field(&rows[1], "tags") {
        PqField::ListInternal(list) => assert!(list.elements().is_empty()),
        other => panic!("tags is {other:?}"),
    }
    match field(&rows[2], "tags") {
        PqField::ListInternal(list) => {
            assert_eq!(list.elements(), &[PqField::Str("a".into()), PqField::Null])
        }
        other => panic!("tags is {other:?}"),
    }
    match field(&rows[2], "counts") {
        PqField::MapInternal(map) => {
            assert_eq!(
                map.entries(),
                &[(PqField::Str("x".into()), PqField::Int(2))]
            )
        }
        other => panic!("counts is {other:?}"),
    }
    assert_eq!(field(&rows[1], "address"), PqField::Null);
    match field(&rows[0], "address") {
        PqField::Group(address) => {
            assert_eq!(field(&address, "city"), PqField::Str("Oslo".into()));
            assert_eq!(field(&address, "zip"), PqField::Null);
        }
        other => panic!("address is {other:?}"),
    }
}

#[test]
fn avro_files_are_containers_with_the_connect_schema() {
    let dir = tempfile::tempdir().expect("it succeeds");
    let mut task = started(
        dir.path(),
        &[
            (
                "format.class",
                "io.confluent.connect.s3.format.avro.AvroFormat",
            ),
            ("avro.codec", "deflate"),
            ("flush.size", "2"),
        ],
    );
    let schema = Schema::structure(None, vec![("n", Schema::new(SchemaType::Int64))]);
    let records: Vec<ConnectRecord> = (0..2)
        .map(|o| {
            let mut value = Struct::new(schema.clone());
            value.put("n", Value::Int64(o));
            let mut r = ConnectRecord::new("t", Some(schema.clone().into()), Value::Struct(value));
            r.partition = Some(0);
            r.kafka_offset = Some(o);
            r
        })
        .collect();
    task.put(&records).expect("it succeeds");
    let bytes = std::fs::read(dir.path().join("topics/t/partition=0/t+0+0000000000.avro"))
        .expect("it succeeds");
    assert_eq!(&bytes[..4], b"Obj\x01");
    let text = String::from_utf8_lossy(&bytes);
    assert!(text.contains("\"name\":\"ConnectDefault\""), "{text}");
    assert!(text.contains("deflate"));

    // Schemaless records cannot be Avro: the task fails naming where.
    let error = task.put(&[json_record(0, 2, 2)]).expect_err("it fails");
    assert!(error.message.contains("value schema"), "{}", error.message);
    assert!(error.message.contains("offset 2"), "{}", error.message);
}

#[test]
fn each_sink_reads_its_own_keys_and_takes_any_sinks_format_class() {
    let gcs = parse(
        &props(&[
            ("gcs.bucket.name", "b"),
            ("flush.size", "3"),
            (
                "format.class",
                "io.confluent.connect.s3.format.avro.AvroFormat",
            ),
            ("gcs.part.size", "6000000"),
            ("gcs.compression.type", "gzip"),
        ]),
        Cloud::Gcs,
    );
    let problems = gcs.expect_err("gzip does not apply to Avro");
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert_eq!(problems[0].name, "gcs.compression.type");
    let azure = parse(
        &props(&[
            ("azblob.account.name", "acct"),
            ("flush.size", "3"),
            (
                "format.class",
                "io.confluent.connect.azure.blob.format.bytearray.ByteArrayFormat",
            ),
            ("azblob.block.size", "6000000"),
        ]),
        Cloud::Azure,
    )
    .expect("valid");
    assert_eq!(
        (
            azure.bucket.as_str(),
            azure.azure_account.as_str(),
            azure.part_size
        ),
        ("default", "acct", 6_000_000)
    );
    assert!(matches!(azure.format, Format::ByteArray { .. }));
}
