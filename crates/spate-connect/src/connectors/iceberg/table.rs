//! Apache Iceberg's table format, the parts an appending writer needs (format version 2): a
//! table schema made from a Connect schema (fresh field ids, assigned as Iceberg's
//! `AssignFreshIds` does) or matched against one by name (with evolution: new fields become new
//! optional columns), table metadata JSON, and the Avro manifest and manifest list of an append
//! snapshot, with the field ids Iceberg's readers resolve columns by.

use serde_json::{Value as Json, json};

use crate::connectors::storage::format::{AvroCodec, AvroContainer, read_container, write_bytes};
use crate::connectors::storage::parquet::FieldIds;
use crate::data::{Schema, SchemaType, Value, logical};

/// The Iceberg type (JSON) of a Connect schema and the ids of its children, fresh ids taken
/// from `last` (the table's last column id).
pub(crate) fn fresh_type(schema: &Schema, last: &mut i32) -> Result<(Json, Vec<FieldIds>), String> {
    let mut take = || {
        *last += 1;
        *last
    };
    Ok(match schema.kind {
        SchemaType::Struct => {
            let ids: Vec<i32> = schema.fields.iter().map(|_| take()).collect();
            let mut fields = Vec::new();
            let mut children = Vec::new();
            for (field, id) in schema.fields.iter().zip(ids) {
                let (ty, grandchildren) = fresh_type(&field.schema, last)?;
                fields.push(json!({"id": id, "name": field.name,
                                   "required": !field.schema.optional, "type": ty}));
                children.push(FieldIds {
                    id,
                    children: grandchildren,
                });
            }
            (json!({"type": "struct", "fields": fields}), children)
        }
        SchemaType::Array => {
            let items = schema
                .key_or_items
                .as_deref()
                .ok_or("an array without items")?;
            let id = take();
            let (ty, children) = fresh_type(items, last)?;
            (
                json!({"type": "list", "element-id": id, "element": ty,
                       "element-required": !items.optional}),
                vec![FieldIds { id, children }],
            )
        }
        SchemaType::Map => {
            let (Some(key), Some(value)) =
                (schema.key_or_items.as_deref(), schema.map_value.as_deref())
            else {
                return Err("a map without key or value".to_string());
            };
            let (key_id, value_id) = (take(), take());
            let (key_type, key_children) = fresh_type(key, last)?;
            let (value_type, value_children) = fresh_type(value, last)?;
            (
                json!({"type": "map", "key-id": key_id, "key": key_type, "value-id": value_id,
                       "value": value_type, "value-required": !value.optional}),
                vec![
                    FieldIds {
                        id: key_id,
                        children: key_children,
                    },
                    FieldIds {
                        id: value_id,
                        children: value_children,
                    },
                ],
            )
        }
        _ => (Json::String(primitive(schema)?), Vec::new()),
    })
}

/// The Iceberg primitive type name of a Connect primitive schema.
fn primitive(schema: &Schema) -> Result<String, String> {
    let name = schema.name.as_deref().unwrap_or("");
    Ok(match (schema.kind, name) {
        (SchemaType::Int32, logical::DATE) => "date".into(),
        (SchemaType::Int32, logical::TIME) => "time".into(),
        (SchemaType::Int64, logical::TIMESTAMP) => "timestamptz".into(),
        (SchemaType::Bytes, logical::DECIMAL) => {
            let scale = schema
                .parameters
                .get(logical::DECIMAL_SCALE)
                .and_then(|s| s.parse::<i32>().ok())
                .ok_or("a Decimal schema has no integer scale parameter")?;
            format!("decimal(38, {scale})")
        }
        (SchemaType::Int8 | SchemaType::Int16 | SchemaType::Int32, _) => "int".into(),
        (SchemaType::Int64, _) => "long".into(),
        (SchemaType::Float32, _) => "float".into(),
        (SchemaType::Float64, _) => "double".into(),
        (SchemaType::Boolean, _) => "boolean".into(),
        (SchemaType::String, _) => "string".into(),
        (SchemaType::Bytes, _) => "binary".into(),
        (kind, _) => return Err(format!("{} is not a primitive type", kind.name())),
    })
}

/// The ids of a record's struct fields in the table's struct type `table` (JSON, changed in
/// place when `evolve` adds columns, taking ids from `last`); `changed` says whether it was.
pub(crate) fn match_struct(
    schema: &Schema,
    table: &mut Json,
    evolve: bool,
    last: &mut i32,
    changed: &mut bool,
    path: &str,
) -> Result<Vec<FieldIds>, String> {
    let fields = table
        .get_mut("fields")
        .and_then(Json::as_array_mut)
        .ok_or_else(|| format!("the table's type at {path} is not a struct"))?;
    let mut ids = Vec::new();
    for field in &schema.fields {
        let at = if path.is_empty() {
            field.name.clone()
        } else {
            format!("{path}.{}", field.name)
        };
        let existing = fields.iter_mut().find(|f| f["name"] == field.name.as_str());
        match existing {
            Some(column) => {
                let id = column["id"].as_i64().unwrap_or(0) as i32;
                let children = match_type(
                    &field.schema,
                    &mut column["type"],
                    evolve,
                    last,
                    changed,
                    &at,
                )?;
                ids.push(FieldIds { id, children });
            }
            None if evolve => {
                *last += 1;
                let id = *last;
                let (ty, children) = fresh_type(&field.schema, last)?;
                fields.push(json!({"id": id, "name": field.name, "required": false, "type": ty}));
                *changed = true;
                ids.push(FieldIds { id, children });
            }
            None => {
                return Err(format!(
                    "the table has no column {at}; set iceberg.tables.evolve-schema-enabled=true \
                     to add it"
                ));
            }
        }
    }
    for column in fields.iter() {
        let name = column["name"].as_str().unwrap_or("");
        if column["required"] == true && schema.field(name).is_none() {
            return Err(format!(
                "the table's column {} is required and the record has no such field",
                if path.is_empty() {
                    name.to_string()
                } else {
                    format!("{path}.{name}")
                }
            ));
        }
    }
    Ok(ids)
}

fn match_type(
    schema: &Schema,
    table: &mut Json,
    evolve: bool,
    last: &mut i32,
    changed: &mut bool,
    path: &str,
) -> Result<Vec<FieldIds>, String> {
    let mismatch = |table: &Json| {
        format!(
            "column {path} is {} in the table and {} in the record",
            table,
            schema.kind.name()
        )
    };
    match schema.kind {
        SchemaType::Struct => {
            if table["type"] != "struct" {
                return Err(mismatch(table));
            }
            match_struct(schema, table, evolve, last, changed, path)
        }
        SchemaType::Array => {
            if table["type"] != "list" {
                return Err(mismatch(table));
            }
            let items = schema
                .key_or_items
                .as_deref()
                .ok_or("an array without items")?;
            let id = table["element-id"].as_i64().unwrap_or(0) as i32;
            let children = match_type(items, &mut table["element"], evolve, last, changed, path)?;
            Ok(vec![FieldIds { id, children }])
        }
        SchemaType::Map => {
            if table["type"] != "map" {
                return Err(mismatch(table));
            }
            let (Some(key), Some(value)) =
                (schema.key_or_items.as_deref(), schema.map_value.as_deref())
            else {
                return Err("a map without key or value".to_string());
            };
            let key_id = table["key-id"].as_i64().unwrap_or(0) as i32;
            let value_id = table["value-id"].as_i64().unwrap_or(0) as i32;
            let key_children = match_type(key, &mut table["key"], evolve, last, changed, path)?;
            let value_children =
                match_type(value, &mut table["value"], evolve, last, changed, path)?;
            Ok(vec![
                FieldIds {
                    id: key_id,
                    children: key_children,
                },
                FieldIds {
                    id: value_id,
                    children: value_children,
                },
            ])
        }
        _ => {
            let wanted = primitive(schema)?;
            let have = table.as_str().unwrap_or("");
            let promoted = matches!(
                (have, wanted.as_str()),
                ("long", "int") | ("double", "float")
            );
            if have.replace(' ', "") != wanted.replace(' ', "") && !promoted {
                return Err(mismatch(table));
            }
            Ok(Vec::new())
        }
    }
}

/// A random UUID (version 4), as text.
pub(crate) fn uuid() -> String {
    use rand::RngExt;
    let mut bytes: [u8; 16] = rand::rng().random();
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..]
    )
}

/// A new snapshot id: random and positive, as Iceberg's.
pub(crate) fn snapshot_id() -> i64 {
    use rand::RngExt;
    (rand::rng().random::<u64>() >> 1) as i64
}

/// The metadata of a new, unpartitioned, empty table of `schema` at `location`.
pub(crate) fn new_table(location: &str, schema: &Schema, now_ms: i64) -> Result<Json, String> {
    let mut last = 0;
    let (ty, _) = fresh_type(schema, &mut last)?;
    let mut table_schema = ty;
    table_schema["schema-id"] = json!(0);
    table_schema["identifier-field-ids"] = json!([]);
    Ok(json!({
        "format-version": 2,
        "table-uuid": uuid(),
        "location": location,
        "last-sequence-number": 0,
        "last-updated-ms": now_ms,
        "last-column-id": last,
        "current-schema-id": 0,
        "schemas": [table_schema],
        "default-spec-id": 0,
        "partition-specs": [{"spec-id": 0, "fields": []}],
        "last-partition-id": 999,
        "default-sort-order-id": 0,
        "sort-orders": [{"order-id": 0, "fields": []}],
        "properties": {"write.format.default": "parquet", "created-by": "spate"},
        "snapshots": [],
        "snapshot-log": [],
        "metadata-log": [],
        "refs": {},
    }))
}

/// The current schema of `metadata`.
pub(crate) fn current_schema(metadata: &Json) -> Result<&Json, String> {
    let id = &metadata["current-schema-id"];
    metadata["schemas"]
        .as_array()
        .and_then(|schemas| schemas.iter().find(|s| &s["schema-id"] == id))
        .ok_or_else(|| "the table metadata has no current schema".to_string())
}

/// The current snapshot of `metadata`, if it has one.
pub(crate) fn current_snapshot(metadata: &Json) -> Option<&Json> {
    let id = metadata["current-snapshot-id"]
        .as_i64()
        .filter(|id| *id >= 0)?;
    snapshot(metadata, id)
}

pub(crate) fn snapshot(metadata: &Json, id: i64) -> Option<&Json> {
    metadata["snapshots"]
        .as_array()?
        .iter()
        .find(|s| s["snapshot-id"].as_i64() == Some(id))
}

/// A data file written for a snapshot.
#[derive(Debug, Clone)]
pub(crate) struct DataFile {
    pub path: String,
    pub records: i64,
    pub bytes: i64,
}

/// A manifest (a row of the manifest list).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ManifestFile {
    pub path: String,
    pub length: i64,
    pub spec_id: i32,
    pub content: i32,
    pub sequence_number: i64,
    pub min_sequence_number: i64,
    pub added_snapshot_id: i64,
    pub added_files: i32,
    pub existing_files: i32,
    pub deleted_files: i32,
    pub added_rows: i64,
    pub existing_rows: i64,
    pub deleted_rows: i64,
}

const MANIFEST_ENTRY_SCHEMA: &str = r#"{"type":"record","name":"manifest_entry","fields":[{"name":"status","type":"int","field-id":0},{"name":"snapshot_id","type":["null","long"],"default":null,"field-id":1},{"name":"sequence_number","type":["null","long"],"default":null,"field-id":3},{"name":"file_sequence_number","type":["null","long"],"default":null,"field-id":4},{"name":"data_file","type":{"type":"record","name":"r2","fields":[{"name":"content","type":"int","field-id":134},{"name":"file_path","type":"string","field-id":100},{"name":"file_format","type":"string","field-id":101},{"name":"partition","type":{"type":"record","name":"r102","fields":[]},"field-id":102},{"name":"record_count","type":"long","field-id":103},{"name":"file_size_in_bytes","type":"long","field-id":104}]},"field-id":2}]}"#;

const MANIFEST_FILE_SCHEMA: &str = r#"{"type":"record","name":"manifest_file","fields":[{"name":"manifest_path","type":"string","field-id":500},{"name":"manifest_length","type":"long","field-id":501},{"name":"partition_spec_id","type":"int","field-id":502},{"name":"content","type":"int","field-id":517},{"name":"sequence_number","type":"long","field-id":515},{"name":"min_sequence_number","type":"long","field-id":516},{"name":"added_snapshot_id","type":"long","field-id":503},{"name":"added_files_count","type":"int","field-id":504},{"name":"existing_files_count","type":"int","field-id":505},{"name":"deleted_files_count","type":"int","field-id":506},{"name":"added_rows_count","type":"long","field-id":512},{"name":"existing_rows_count","type":"long","field-id":513},{"name":"deleted_rows_count","type":"long","field-id":514}]}"#;

fn long(out: &mut Vec<u8>, v: i64) {
    crate::connectors::storage::format::write_long(out, v);
}

/// The bytes of a manifest listing `files` as added by snapshot `snapshot_id`.
pub(crate) fn manifest(
    files: &[DataFile],
    snapshot_id: i64,
    table_schema: &Json,
    name: &str,
) -> Result<Vec<u8>, String> {
    let schema_id = table_schema["schema-id"].to_string();
    let schema_text = table_schema.to_string();
    let mut container = AvroContainer::new(
        MANIFEST_ENTRY_SCHEMA,
        AvroCodec::Deflate,
        &[
            ("schema", schema_text.as_str()),
            ("schema-id", schema_id.as_str()),
            ("partition-spec", "[]"),
            ("partition-spec-id", "0"),
            ("format-version", "2"),
            ("content", "data"),
        ],
        name,
    );
    for file in files {
        let mut datum = Vec::new();
        long(&mut datum, 1); // status: ADDED
        long(&mut datum, 1); // snapshot_id: the long branch
        long(&mut datum, snapshot_id);
        long(&mut datum, 0); // sequence_number: null, inherited from the manifest
        long(&mut datum, 0); // file_sequence_number: null, inherited
        long(&mut datum, 0); // content: DATA
        write_bytes(&mut datum, file.path.as_bytes());
        write_bytes(&mut datum, b"PARQUET");
        long(&mut datum, file.records);
        long(&mut datum, file.bytes);
        container.append(&datum)?;
    }
    container.finish()
}

/// The bytes of a manifest list.
pub(crate) fn manifest_list(
    manifests: &[ManifestFile],
    snapshot_id: i64,
    parent: Option<i64>,
    sequence_number: i64,
    name: &str,
) -> Result<Vec<u8>, String> {
    let (id, parent, seq) = (
        snapshot_id.to_string(),
        parent.map_or("null".to_string(), |p| p.to_string()),
        sequence_number.to_string(),
    );
    let mut container = AvroContainer::new(
        MANIFEST_FILE_SCHEMA,
        AvroCodec::Deflate,
        &[
            ("snapshot-id", id.as_str()),
            ("parent-snapshot-id", parent.as_str()),
            ("sequence-number", seq.as_str()),
            ("format-version", "2"),
        ],
        name,
    );
    for m in manifests {
        let mut datum = Vec::new();
        write_bytes(&mut datum, m.path.as_bytes());
        long(&mut datum, m.length);
        long(&mut datum, i64::from(m.spec_id));
        long(&mut datum, i64::from(m.content));
        long(&mut datum, m.sequence_number);
        long(&mut datum, m.min_sequence_number);
        long(&mut datum, m.added_snapshot_id);
        long(&mut datum, i64::from(m.added_files));
        long(&mut datum, i64::from(m.existing_files));
        long(&mut datum, i64::from(m.deleted_files));
        long(&mut datum, m.added_rows);
        long(&mut datum, m.existing_rows);
        long(&mut datum, m.deleted_rows);
        container.append(&datum)?;
    }
    container.finish()
}

/// The manifests a manifest list holds (Spate's or another writer's).
pub(crate) fn read_manifest_list(bytes: &[u8]) -> Result<Vec<ManifestFile>, String> {
    let (_, values) = read_container(bytes)?;
    values
        .iter()
        .map(|value| {
            let Value::Struct(s) = value else {
                return Err("a manifest list entry is not a record".to_string());
            };
            let int = |name: &str| -> i64 {
                match s.get(name) {
                    Some(Value::Int32(n)) => i64::from(*n),
                    Some(Value::Int64(n)) => *n,
                    _ => 0,
                }
            };
            let path = match s.get("manifest_path") {
                Some(Value::String(p)) => p.clone(),
                _ => return Err("a manifest list entry has no manifest_path".to_string()),
            };
            Ok(ManifestFile {
                path,
                length: int("manifest_length"),
                spec_id: int("partition_spec_id") as i32,
                content: int("content") as i32,
                sequence_number: int("sequence_number"),
                min_sequence_number: int("min_sequence_number"),
                added_snapshot_id: int("added_snapshot_id"),
                added_files: int("added_files_count") as i32,
                existing_files: int("existing_files_count") as i32,
                deleted_files: int("deleted_files_count") as i32,
                added_rows: int("added_rows_count"),
                existing_rows: int("existing_rows_count"),
                deleted_rows: int("deleted_rows_count"),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn order(extra: bool) -> Schema {
        let mut fields = vec![
            ("id", Schema::new(SchemaType::Int64)),
            (
                "address",
                Schema::structure(
                    None,
                    vec![
                        ("city", Schema::new(SchemaType::String)),
                        ("zip", Schema::optional(SchemaType::Int32)),
                    ],
                ),
            ),
            (
                "tags",
                Schema::array(Schema::new(SchemaType::String)).into_optional(),
            ),
        ];
        if extra {
            fields.push(("channel", Schema::optional(SchemaType::String)));
        }
        Schema::structure(None, fields)
    }

    #[test]
    fn fresh_ids_go_breadth_first_per_struct_as_icebergs() {
        let metadata = new_table("s3://b/w/ns/t", &order(false), 1).expect("it succeeds");
        let schema = current_schema(&metadata).expect("it succeeds");
        let ids: Vec<i64> = schema["fields"]
            .as_array()
            .expect("it succeeds")
            .iter()
            .map(|f| f["id"].as_i64().expect("it succeeds"))
            .collect();
        assert_eq!(ids, [1, 2, 3]);
        assert_eq!(schema["fields"][1]["type"]["fields"][0]["id"], 4);
        assert_eq!(schema["fields"][1]["type"]["fields"][1]["id"], 5);
        assert_eq!(schema["fields"][2]["type"]["element-id"], 6);
        assert_eq!(metadata["last-column-id"], 6);
        assert_eq!(schema["fields"][1]["type"]["fields"][1]["required"], false);
    }

    #[test]
    fn records_match_columns_by_name_and_evolve_with_new_optional_columns() {
        let metadata = new_table("s3://b/w/ns/t", &order(false), 1).expect("it succeeds");
        let mut table = current_schema(&metadata).expect("it succeeds").clone();
        let (mut last, mut changed) = (6, false);
        let refused = match_struct(
            &order(true),
            &mut table.clone(),
            false,
            &mut last,
            &mut changed,
            "",
        );
        assert!(
            refused
                .expect_err("it fails")
                .contains("evolve-schema-enabled")
        );
        let ids = match_struct(&order(true), &mut table, true, &mut last, &mut changed, "")
            .expect("it succeeds");
        assert!(changed);
        assert_eq!(ids.iter().map(|i| i.id).collect::<Vec<_>>(), [1, 2, 3, 7]);
        assert_eq!(
            ids[1].children.iter().map(|i| i.id).collect::<Vec<_>>(),
            [4, 5]
        );
        assert_eq!(table["fields"][3]["required"], false);
        // A record without a required column cannot be written.
        let no_id = Schema::structure(
            None,
            vec![("channel", Schema::optional(SchemaType::String))],
        );
        let error = match_struct(&no_id, &mut table, true, &mut last, &mut changed, "")
            .expect_err("it fails");
        assert!(error.contains("column id is required"), "{error}");
        // Nor one whose field changed type.
        let wrong = Schema::structure(None, vec![("id", Schema::new(SchemaType::String))]);
        assert!(match_struct(&wrong, &mut table, true, &mut last, &mut changed, "").is_err());
    }

    #[test]
    fn manifest_lists_read_back() {
        let manifest = ManifestFile {
            path: "s3://b/m.avro".into(),
            length: 1234,
            spec_id: 0,
            content: 0,
            sequence_number: 3,
            min_sequence_number: 3,
            added_snapshot_id: 77,
            added_files: 2,
            existing_files: 0,
            deleted_files: 0,
            added_rows: 40,
            existing_rows: 0,
            deleted_rows: 0,
        };
        let bytes = manifest_list(std::slice::from_ref(&manifest), 77, Some(5), 3, "x")
            .expect("it succeeds");
        assert_eq!(
            read_manifest_list(&bytes).expect("it succeeds"),
            vec![manifest]
        );
    }
}
