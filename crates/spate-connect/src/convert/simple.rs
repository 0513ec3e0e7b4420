//! The converters without structure: `StringConverter`, `ByteArrayConverter`,
//! `BooleanConverter` and the number converters (`ShortConverter`, `IntegerConverter`,
//! `LongConverter`, `FloatConverter`, `DoubleConverter`), writing what Kafka's serializers
//! write (numbers big-endian, booleans one byte) and reading back with the optional schema
//! Java returns, even for a null.

use bytes::Bytes;

use super::json::{java_double_string, java_float_string};
use super::{ConvertError, decimal};
use crate::data::{Schema, SchemaType, Value, logical};

/// `org.apache.kafka.connect.converters.ByteArrayConverter`: bytes pass through.
#[derive(Debug, Clone, Copy)]
pub struct ByteArrayConverter;

impl super::Converter for ByteArrayConverter {
    fn from_connect(
        &self,
        _topic: &str,
        schema: Option<&Schema>,
        value: &Value,
    ) -> Result<Option<Bytes>, ConvertError> {
        if let Some(schema) = schema.filter(|s| s.kind != SchemaType::Bytes) {
            return Err(ConvertError::Unsupported {
                converter: "ByteArrayConverter",
                found: format!("a schema of type {}", schema.kind.name()),
                hint: "it takes bytes; use another converter for other types",
            });
        }
        match value {
            Value::Null => Ok(None),
            Value::Bytes(b) => Ok(Some(b.clone())),
            other => Err(ConvertError::Unsupported {
                converter: "ByteArrayConverter",
                found: format!("a {} value", type_name(other)),
                hint: "it takes bytes; use another converter for other types",
            }),
        }
    }

    fn to_connect(
        &self,
        _topic: &str,
        bytes: Option<&[u8]>,
    ) -> Result<(Option<std::sync::Arc<Schema>>, Value), ConvertError> {
        let value = bytes.map_or(Value::Null, |b| Value::Bytes(Bytes::copy_from_slice(b)));
        Ok((Some(Schema::optional(SchemaType::Bytes).into()), value))
    }
}

/// `org.apache.kafka.connect.converters.BooleanConverter`: one byte, 1 for true, 0 for false.
#[derive(Debug, Clone, Copy)]
pub struct BooleanConverter;

impl super::Converter for BooleanConverter {
    fn from_connect(
        &self,
        _topic: &str,
        schema: Option<&Schema>,
        value: &Value,
    ) -> Result<Option<Bytes>, ConvertError> {
        if let Some(schema) = schema.filter(|s| s.kind != SchemaType::Boolean) {
            return Err(ConvertError::Unsupported {
                converter: "BooleanConverter",
                found: format!("a schema of type {}", schema.kind.name()),
                hint: "it takes booleans",
            });
        }
        match value {
            Value::Null => Ok(None),
            Value::Boolean(b) => Ok(Some(Bytes::from(vec![u8::from(*b)]))),
            other => Err(ConvertError::Unsupported {
                converter: "BooleanConverter",
                found: format!("a {} value", type_name(other)),
                hint: "it takes booleans",
            }),
        }
    }

    fn to_connect(
        &self,
        _topic: &str,
        bytes: Option<&[u8]>,
    ) -> Result<(Option<std::sync::Arc<Schema>>, Value), ConvertError> {
        let schema = Some(Schema::optional(SchemaType::Boolean).into());
        let value = match bytes {
            None => Value::Null,
            Some([0]) => Value::Boolean(false),
            Some([1]) => Value::Boolean(true),
            Some([byte]) => return Err(ConvertError::InvalidBoolean { byte: *byte }),
            Some(other) => {
                return Err(ConvertError::WrongSize {
                    converter: "BooleanConverter",
                    expected: 1,
                    actual: other.len(),
                });
            }
        };
        Ok((schema, value))
    }
}

/// Which number a [`NumberConverter`] converts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NumberKind {
    /// `ShortConverter`: int16.
    Short,
    /// `IntegerConverter`: int32.
    Integer,
    /// `LongConverter`: int64.
    Long,
    /// `FloatConverter`: float32.
    Float,
    /// `DoubleConverter`: float64.
    Double,
}

impl NumberKind {
    fn converter(self) -> &'static str {
        match self {
            NumberKind::Short => "ShortConverter",
            NumberKind::Integer => "IntegerConverter",
            NumberKind::Long => "LongConverter",
            NumberKind::Float => "FloatConverter",
            NumberKind::Double => "DoubleConverter",
        }
    }

    fn hint(self) -> &'static str {
        match self {
            NumberKind::Short => "it takes int16 values",
            NumberKind::Integer => "it takes int32 values",
            NumberKind::Long => "it takes int64 values",
            NumberKind::Float => "it takes float32 values",
            NumberKind::Double => "it takes float64 values",
        }
    }

    fn schema_type(self) -> SchemaType {
        match self {
            NumberKind::Short => SchemaType::Int16,
            NumberKind::Integer => SchemaType::Int32,
            NumberKind::Long => SchemaType::Int64,
            NumberKind::Float => SchemaType::Float32,
            NumberKind::Double => SchemaType::Float64,
        }
    }
}

/// The number converters: big-endian as Kafka's `ShortSerializer`, `IntegerSerializer`, ...
/// (floats by their IEEE 754 bits). The schema given is ignored, as in Java; the value's type
/// must be the converter's.
#[derive(Debug, Clone, Copy)]
pub struct NumberConverter(pub NumberKind);

impl super::Converter for NumberConverter {
    fn from_connect(
        &self,
        _topic: &str,
        _schema: Option<&Schema>,
        value: &Value,
    ) -> Result<Option<Bytes>, ConvertError> {
        let bytes: Vec<u8> = match (self.0, value) {
            (_, Value::Null) => return Ok(None),
            (NumberKind::Short, Value::Int16(v)) => v.to_be_bytes().to_vec(),
            (NumberKind::Integer, Value::Int32(v)) => v.to_be_bytes().to_vec(),
            (NumberKind::Long, Value::Int64(v)) => v.to_be_bytes().to_vec(),
            (NumberKind::Float, Value::Float32(v)) => v.to_bits().to_be_bytes().to_vec(),
            (NumberKind::Double, Value::Float64(v)) => v.to_bits().to_be_bytes().to_vec(),
            (kind, other) => {
                return Err(ConvertError::Unsupported {
                    converter: kind.converter(),
                    found: format!("a {} value", type_name(other)),
                    hint: kind.hint(),
                });
            }
        };
        Ok(Some(Bytes::from(bytes)))
    }

    fn to_connect(
        &self,
        _topic: &str,
        bytes: Option<&[u8]>,
    ) -> Result<(Option<std::sync::Arc<Schema>>, Value), ConvertError> {
        let schema = Some(Schema::optional(self.0.schema_type()).into());
        let Some(bytes) = bytes else {
            return Ok((schema, Value::Null));
        };
        let wrong_size = |expected| ConvertError::WrongSize {
            converter: self.0.converter(),
            expected,
            actual: bytes.len(),
        };
        let value = match self.0 {
            NumberKind::Short => Value::Int16(i16::from_be_bytes(
                bytes.try_into().map_err(|_| wrong_size(2))?,
            )),
            NumberKind::Integer => Value::Int32(i32::from_be_bytes(
                bytes.try_into().map_err(|_| wrong_size(4))?,
            )),
            NumberKind::Long => Value::Int64(i64::from_be_bytes(
                bytes.try_into().map_err(|_| wrong_size(8))?,
            )),
            NumberKind::Float => Value::Float32(f32::from_bits(u32::from_be_bytes(
                bytes.try_into().map_err(|_| wrong_size(4))?,
            ))),
            NumberKind::Double => Value::Float64(f64::from_bits(u64::from_be_bytes(
                bytes.try_into().map_err(|_| wrong_size(8))?,
            ))),
        };
        Ok((schema, value))
    }
}

/// A character set `StringConverter` can use (`converter.encoding`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Encoding {
    /// UTF-8, the default.
    #[default]
    Utf8,
    /// UTF-16 big-endian with a byte order mark, as Java's `UTF-16` encoder writes; reading
    /// honours a mark and assumes big-endian without one.
    Utf16,
    /// UTF-16 big-endian, no mark.
    Utf16Be,
    /// UTF-16 little-endian, no mark.
    Utf16Le,
    /// ISO-8859-1 (Latin-1); characters beyond it are written as `?`, as Java does.
    Latin1,
    /// US-ASCII; characters beyond it are written as `?`.
    Ascii,
}

impl Encoding {
    /// The encoding for a Java charset name or common alias, case-insensitive.
    pub fn from_java_name(name: &str) -> Option<Encoding> {
        let n = name.trim().to_ascii_lowercase().replace('_', "-");
        Some(match n.as_str() {
            "utf-8" | "utf8" | "unicode-1-1-utf-8" => Encoding::Utf8,
            "utf-16" | "utf16" | "unicode" => Encoding::Utf16,
            "utf-16be" | "utf16be" | "x-utf-16be" | "unicodebigunmarked" => Encoding::Utf16Be,
            "utf-16le" | "utf16le" | "x-utf-16le" | "unicodelittleunmarked" => Encoding::Utf16Le,
            "iso-8859-1" | "iso8859-1" | "iso-8859-1:1987" | "latin1" | "l1" | "iso-ir-100"
            | "cp819" | "ibm819" | "819" | "8859-1" | "csisolatin1" => Encoding::Latin1,
            "us-ascii" | "ascii" | "ascii7" | "646" | "iso646-us" | "us" | "cp367" | "ibm367"
            | "default" | "csascii" => Encoding::Ascii,
            _ => return None,
        })
    }

    /// `String.getBytes(charset)`.
    fn encode(self, s: &str) -> Vec<u8> {
        match self {
            Encoding::Utf8 => s.as_bytes().to_vec(),
            Encoding::Utf16 => [0xFE, 0xFF]
                .into_iter()
                .chain(s.encode_utf16().flat_map(u16::to_be_bytes))
                .collect(),
            Encoding::Utf16Be => s.encode_utf16().flat_map(u16::to_be_bytes).collect(),
            Encoding::Utf16Le => s.encode_utf16().flat_map(u16::to_le_bytes).collect(),
            // One `?` per UTF-16 unit, as Java replaces each unmappable char.
            Encoding::Latin1 => s
                .encode_utf16()
                .map(|u| u8::try_from(u).unwrap_or(b'?'))
                .collect(),
            Encoding::Ascii => s
                .encode_utf16()
                .map(|u| u8::try_from(u).ok().filter(u8::is_ascii).unwrap_or(b'?'))
                .collect(),
        }
    }

    /// `new String(bytes, charset)`: malformed input becomes U+FFFD, never an error.
    fn decode(self, bytes: &[u8]) -> String {
        fn utf16(bytes: &[u8], big_endian: bool) -> String {
            let units = bytes.chunks_exact(2).map(|c| {
                let pair = [c[0], c[1]];
                if big_endian {
                    u16::from_be_bytes(pair)
                } else {
                    u16::from_le_bytes(pair)
                }
            });
            let mut s: String = char::decode_utf16(units)
                .map(|c| c.unwrap_or(char::REPLACEMENT_CHARACTER))
                .collect();
            if bytes.len() % 2 == 1 {
                s.push(char::REPLACEMENT_CHARACTER);
            }
            s
        }
        match self {
            Encoding::Utf8 => String::from_utf8_lossy(bytes).into_owned(),
            Encoding::Utf16 => match bytes {
                [0xFE, 0xFF, rest @ ..] => utf16(rest, true),
                [0xFF, 0xFE, rest @ ..] => utf16(rest, false),
                _ => utf16(bytes, true),
            },
            Encoding::Utf16Be => utf16(bytes, true),
            Encoding::Utf16Le => utf16(bytes, false),
            Encoding::Latin1 => bytes.iter().map(|b| char::from(*b)).collect(),
            Encoding::Ascii => bytes
                .iter()
                .map(|b| {
                    if b.is_ascii() {
                        char::from(*b)
                    } else {
                        char::REPLACEMENT_CHARACTER
                    }
                })
                .collect(),
        }
    }
}

/// `org.apache.kafka.connect.storage.StringConverter`: a value's text (Java's `toString()`
/// of any value) in `converter.encoding`; reads give an optional string schema.
#[derive(Debug, Clone, Copy, Default)]
pub struct StringConverter {
    /// `converter.encoding`.
    pub encoding: Encoding,
}

impl super::Converter for StringConverter {
    fn from_connect(
        &self,
        _topic: &str,
        schema: Option<&Schema>,
        value: &Value,
    ) -> Result<Option<Bytes>, ConvertError> {
        if value.is_null() {
            return Ok(None);
        }
        let text = java_to_string(schema, value)?;
        Ok(Some(Bytes::from(self.encoding.encode(&text))))
    }

    fn to_connect(
        &self,
        _topic: &str,
        bytes: Option<&[u8]>,
    ) -> Result<(Option<std::sync::Arc<Schema>>, Value), ConvertError> {
        let value = bytes.map_or(Value::Null, |b| Value::String(self.encoding.decode(b)));
        Ok((Some(Schema::optional(SchemaType::String).into()), value))
    }
}

fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Boolean(_) => "boolean",
        Value::Int8(_) => "int8",
        Value::Int16(_) => "int16",
        Value::Int32(_) => "int32",
        Value::Int64(_) => "int64",
        Value::Float32(_) => "float32",
        Value::Float64(_) => "float64",
        Value::String(_) => "string",
        Value::Bytes(_) => "bytes",
        Value::Array(_) => "array",
        Value::Map(_) => "map",
        Value::Struct(_) => "struct",
    }
}

/// What Java's `value.toString()` prints for the Java object Connect would hold: numbers as
/// `Float.toString`/`Double.toString`, lists `[a, b]`, maps `{k=v, k2=v2}`, structs
/// `Struct{a=1,b=x}` (null fields left out), a `Decimal` as `BigDecimal.toString()`.
/// Bytes are refused: Java would print the array's identity (`[B@1b6d3586`).
/// `Date`/`Time`/`Timestamp` print their integer, where Java prints `java.util.Date` in the
/// JVM's time zone.
fn java_to_string(schema: Option<&Schema>, value: &Value) -> Result<String, ConvertError> {
    Ok(match value {
        Value::Null => "null".to_string(),
        Value::Boolean(b) => b.to_string(),
        Value::Int8(v) => v.to_string(),
        Value::Int16(v) => v.to_string(),
        Value::Int32(v) => v.to_string(),
        Value::Int64(v) => v.to_string(),
        Value::Float32(v) => java_float_string(*v),
        Value::Float64(v) => java_double_string(*v),
        Value::String(s) => s.clone(),
        Value::Bytes(b) => {
            let scale = schema
                .filter(|s| s.is_logical(logical::DECIMAL))
                .and_then(|s| s.parameters.get(logical::DECIMAL_SCALE))
                .and_then(|s| s.parse().ok());
            match scale.and_then(|scale| decimal::to_text(b, scale).ok()) {
                Some(text) => text,
                None => {
                    return Err(ConvertError::Unsupported {
                        converter: "StringConverter",
                        found: "a bytes value".to_string(),
                        hint: "use ByteArrayConverter for bytes",
                    });
                }
            }
        }
        Value::Array(items) => {
            let item_schema = schema.and_then(|s| s.key_or_items.as_deref());
            let items = items
                .iter()
                .map(|v| java_to_string(item_schema, v))
                .collect::<Result<Vec<_>, _>>()?;
            format!("[{}]", items.join(", "))
        }
        Value::Map(entries) => {
            let key_schema = schema.and_then(|s| s.key_or_items.as_deref());
            let value_schema = schema.and_then(|s| s.map_value.as_deref());
            let entries = entries
                .iter()
                .map(|(k, v)| {
                    Ok(format!(
                        "{}={}",
                        java_to_string(key_schema, k)?,
                        java_to_string(value_schema, v)?
                    ))
                })
                .collect::<Result<Vec<_>, ConvertError>>()?;
            format!("{{{}}}", entries.join(", "))
        }
        Value::Struct(st) => {
            let mut fields = Vec::new();
            for (field, v) in st.schema.fields.iter().zip(&st.values) {
                if !v.is_null() {
                    fields.push(format!(
                        "{}={}",
                        field.name,
                        java_to_string(Some(&field.schema), v)?
                    ));
                }
            }
            format!("Struct{{{}}}", fields.join(","))
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::convert::{Converter, converter};
    use crate::data::Struct;

    fn build(class: &str, props: &[(&str, &str)]) -> Box<dyn Converter> {
        let props = props
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        converter(class, &props, true).expect("valid config")
    }

    /// (class, value, the bytes Kafka's serializer writes).
    #[test]
    fn numbers_are_big_endian_as_kafkas_serializers() {
        let p = "org.apache.kafka.connect.converters.";
        for (class, value, bytes, schema_type) in [
            (
                "ShortConverter",
                Value::Int16(-2),
                &[0xFF, 0xFE][..],
                SchemaType::Int16,
            ),
            (
                "IntegerConverter",
                Value::Int32(258),
                &[0, 0, 1, 2],
                SchemaType::Int32,
            ),
            (
                "LongConverter",
                Value::Int64(-1),
                &[0xFF; 8],
                SchemaType::Int64,
            ),
            (
                "FloatConverter",
                Value::Float32(1.5),
                &[0x3F, 0xC0, 0, 0],
                SchemaType::Float32,
            ),
            (
                "DoubleConverter",
                Value::Float64(-2.0),
                &[0xC0, 0, 0, 0, 0, 0, 0, 0],
                SchemaType::Float64,
            ),
            (
                "BooleanConverter",
                Value::Boolean(true),
                &[1],
                SchemaType::Boolean,
            ),
            (
                "BooleanConverter",
                Value::Boolean(false),
                &[0],
                SchemaType::Boolean,
            ),
        ] {
            let conv = build(&format!("{p}{class}"), &[]);
            let written = conv.from_connect("t", None, &value).expect("writes");
            assert_eq!(written.as_deref(), Some(bytes), "{class}");
            assert_eq!(
                conv.to_connect("t", Some(bytes)).expect("reads"),
                (
                    Some(std::sync::Arc::new(Schema::optional(schema_type))),
                    value
                ),
                "{class}"
            );
            // Nulls both ways, with Java's optional schema on the way in.
            assert_eq!(
                conv.from_connect("t", None, &Value::Null).expect("ok"),
                None
            );
            assert_eq!(
                conv.to_connect("t", None).expect("ok"),
                (
                    Some(std::sync::Arc::new(Schema::optional(schema_type))),
                    Value::Null
                )
            );
        }
    }

    #[test]
    fn number_converter_errors() {
        let int = build("org.apache.kafka.connect.converters.IntegerConverter", &[]);
        assert_eq!(
            int.to_connect("t", Some(&[1, 2, 3]))
                .expect_err("short")
                .to_string(),
            "IntegerConverter needs 4 bytes but the data has 3"
        );
        assert_eq!(
            int.from_connect("t", None, &Value::Int64(1))
                .expect_err("wrong type")
                .to_string(),
            "IntegerConverter cannot write a int64 value; it takes int32 values"
        );
        let boolean = build("org.apache.kafka.connect.converters.BooleanConverter", &[]);
        assert_eq!(
            boolean
                .to_connect("t", Some(&[2]))
                .expect_err("bad byte")
                .to_string(),
            "BooleanConverter needs byte 0 or 1 but the data has 2"
        );
        assert!(
            boolean
                .from_connect(
                    "t",
                    Some(&Schema::new(SchemaType::String)),
                    &Value::Boolean(true)
                )
                .is_err()
        );
    }

    #[test]
    fn byte_array_passes_bytes_through() {
        let conv = build(
            "org.apache.kafka.connect.converters.ByteArrayConverter",
            &[],
        );
        let bytes = Bytes::from_static(b"\x00\xffraw");
        assert_eq!(
            conv.from_connect(
                "t",
                Some(&Schema::new(SchemaType::Bytes)),
                &Value::Bytes(bytes.clone())
            )
            .expect("writes"),
            Some(bytes.clone())
        );
        assert_eq!(
            conv.to_connect("t", Some(&bytes)).expect("reads"),
            (
                Some(std::sync::Arc::new(Schema::optional(SchemaType::Bytes))),
                Value::Bytes(bytes)
            )
        );
        assert_eq!(
            conv.from_connect("t", None, &Value::String("x".into()))
                .expect_err("not bytes")
                .to_string(),
            "ByteArrayConverter cannot write a string value; it takes bytes; use another converter for other types"
        );
        assert!(
            conv.from_connect("t", Some(&Schema::new(SchemaType::String)), &Value::Null)
                .is_err()
        );
    }

    #[test]
    fn string_converter_writes_javas_to_string() {
        let conv = build("org.apache.kafka.connect.storage.StringConverter", &[]);
        let inner = Schema::structure(
            None,
            vec![
                ("a", Schema::new(SchemaType::Int32)),
                ("b", Schema::optional(SchemaType::String)),
                ("c", Schema::new(SchemaType::Float64)),
            ],
        );
        let mut st = Struct::new(inner);
        st.put("a", Value::Int32(1));
        st.put("c", Value::Float64(1e-5));
        let decimal = Schema {
            parameters: [("scale".to_string(), "2".to_string())].into(),
            ..Schema::new(SchemaType::Bytes).with_name(logical::DECIMAL)
        };
        for (schema, value, want) in [
            (None, Value::String("héllo".into()), "héllo"),
            (None, Value::Int64(-7), "-7"),
            (None, Value::Float32(0.1), "0.1"),
            (None, Value::Boolean(false), "false"),
            (None, Value::Struct(st), "Struct{a=1,c=1.0E-5}"),
            (
                None,
                Value::Array(vec![
                    Value::Int32(1),
                    Value::Null,
                    Value::String("x".into()),
                ]),
                "[1, null, x]",
            ),
            (
                None,
                Value::map_of([("k", Value::Int32(1)), ("j", Value::Boolean(true))]),
                "{k=1, j=true}",
            ),
            (
                Some(decimal),
                Value::Bytes(Bytes::from_static(&[0x30, 0x39])),
                "123.45",
            ),
        ] {
            let bytes = conv
                .from_connect("t", schema.as_ref(), &value)
                .expect("writes")
                .expect("some");
            assert_eq!(String::from_utf8_lossy(&bytes), want);
        }
        assert!(
            conv.from_connect("t", None, &Value::Bytes(Bytes::from_static(b"x")))
                .is_err()
        );
        assert_eq!(
            conv.to_connect("t", Some(b"ok \xff")).expect("reads"),
            (
                Some(std::sync::Arc::new(Schema::optional(SchemaType::String))),
                Value::String("ok \u{FFFD}".into())
            )
        );
    }

    #[test]
    fn string_converter_encodings() {
        for (name, text, bytes) in [
            ("UTF-8", "é", &[0xC3, 0xA9][..]),
            ("utf8", "é", &[0xC3, 0xA9]),
            ("ISO-8859-1", "é€", &[0xE9, b'?']),
            ("latin1", "é", &[0xE9]),
            ("US-ASCII", "aé", b"a?"),
            ("UTF-16BE", "a€", &[0x00, 0x61, 0x20, 0xAC]),
            ("UTF-16LE", "a", &[0x61, 0x00]),
            ("UTF-16", "a", &[0xFE, 0xFF, 0x00, 0x61]),
        ] {
            let conv = build(
                "org.apache.kafka.connect.storage.StringConverter",
                &[("converter.encoding", name)],
            );
            let written = conv
                .from_connect("t", None, &Value::String(text.into()))
                .expect("writes");
            assert_eq!(written.as_deref(), Some(bytes), "{name}");
        }
        let utf16 = build(
            "org.apache.kafka.connect.storage.StringConverter",
            &[("converter.encoding", "UTF-16")],
        );
        assert_eq!(
            utf16
                .to_connect("t", Some(&[0xFF, 0xFE, 0x61, 0x00]))
                .expect("reads")
                .1,
            Value::String("a".into())
        );
    }
}
