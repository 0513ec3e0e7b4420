//! Request frames in, response frames out.
//!
//! A frame on the wire is a 4-byte big-endian size followed by that many bytes. The server
//! reads the size (checking it against its limit with [`read_frame_length`]), reads the body,
//! and hands the body to [`decode_request`]. Responses are encoded with their size prefix by
//! [`encode_response`].

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, RequestHeader, RequestKind, ResponseHeader, ResponseKind};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};

use crate::versions::{self, api_versions_response};

/// Kafka's UNSUPPORTED_VERSION error code.
const UNSUPPORTED_VERSION: i16 = 35;

/// A decoded request.
#[derive(Debug, Clone, PartialEq)]
pub struct Request {
    /// Which API.
    pub api_key: ApiKey,
    /// The request's version (also the version the response must be encoded in).
    pub api_version: i16,
    /// Echoed in the response.
    pub correlation_id: i32,
    /// The client's self-reported id, if any.
    pub client_id: Option<StrBytes>,
    /// The request body.
    pub body: RequestKind,
    /// Size of the frame body in bytes.
    pub size_bytes: usize,
    /// The client's address, filled in by the server (JoinGroup reports it as client host).
    pub peer: Option<std::net::SocketAddr>,
    /// Who sent it and through which listener, filled in by the server.
    pub session: Option<std::sync::Arc<Session>>,
    /// When the server finished reading the frame, filled in by the server: the broker
    /// measures from it how long the request waited before it was handled.
    pub received: Option<std::time::Instant>,
}

/// A connection's identity: the listener it came through and its authenticated principal
/// (`User:ANONYMOUS` until a mechanism says otherwise, as in Kafka).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    /// The listener's name, e.g. `PLAINTEXT` or `EXTERNAL`.
    pub listener: std::sync::Arc<str>,
    /// The principal, e.g. `User:alice` or `User:CN=alice,O=acme`.
    pub principal: std::sync::Arc<str>,
}

/// Why a frame could not be turned into a request. Each variant says what the server should
/// do, following Apache Kafka: answer an ApiVersions request of an unknown version with the
/// supported list, close the connection otherwise.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DecodeError {
    /// Fewer bytes than a request header.
    #[error("request frame of {size_bytes} bytes is too short for a header")]
    Truncated {
        /// Frame size.
        size_bytes: usize,
    },
    /// An API key Kafka does not define or Spate does not serve.
    #[error("unsupported api key {api_key} (version {api_version})")]
    UnknownApiKey {
        /// The key as sent.
        api_key: i16,
        /// The version as sent.
        api_version: i16,
        /// For the log line.
        correlation_id: i32,
    },
    /// A served API at a version Spate does not accept.
    #[error("unsupported version {api_version} of {api_key:?}")]
    UnsupportedVersion {
        /// Which API.
        api_key: ApiKey,
        /// The version as sent.
        api_version: i16,
        /// Needed to answer an ApiVersions request.
        correlation_id: i32,
    },
    /// Bytes that do not parse as the declared request.
    #[error("malformed {api_key:?} v{api_version} request: {reason}")]
    Malformed {
        /// Which API.
        api_key: ApiKey,
        /// Its version.
        api_version: i16,
        /// Decoder message.
        reason: String,
    },
}

/// Checks a frame's size prefix. Returns the body length, or `None` when it is negative or
/// larger than `max_bytes` (the server then closes the connection, as Kafka does).
pub fn read_frame_length(prefix: [u8; 4], max_bytes: usize) -> Option<usize> {
    let length = i32::from_be_bytes(prefix);
    if length < 0 || length as usize > max_bytes {
        None
    } else {
        Some(length as usize)
    }
}

/// Decodes a request frame body (without the size prefix).
pub fn decode_request(frame: Bytes) -> Result<Request, DecodeError> {
    let size_bytes = frame.len();
    if size_bytes < 8 {
        return Err(DecodeError::Truncated { size_bytes });
    }
    let raw_key = i16::from_be_bytes([frame[0], frame[1]]);
    let api_version = i16::from_be_bytes([frame[2], frame[3]]);
    let correlation_id = i32::from_be_bytes([frame[4], frame[5], frame[6], frame[7]]);
    let api_key = ApiKey::try_from(raw_key).map_err(|_| DecodeError::UnknownApiKey {
        api_key: raw_key,
        api_version,
        correlation_id,
    })?;
    if versions::supported_versions(api_key).is_none() {
        return Err(DecodeError::UnknownApiKey {
            api_key: raw_key,
            api_version,
            correlation_id,
        });
    }
    if !versions::accepts(api_key, api_version) {
        return Err(DecodeError::UnsupportedVersion {
            api_key,
            api_version,
            correlation_id,
        });
    }
    let malformed = |reason: String| DecodeError::Malformed {
        api_key,
        api_version,
        reason,
    };
    let mut buf = frame;
    let header_version = api_key.request_header_version(api_version);
    let header =
        RequestHeader::decode(&mut buf, header_version).map_err(|e| malformed(format!("{e:#}")))?;
    let body = RequestKind::decode(api_key, &mut buf, api_version)
        .map_err(|e| malformed(format!("{e:#}")))?;
    Ok(Request {
        api_key,
        api_version,
        correlation_id,
        client_id: header.client_id,
        body,
        size_bytes,
        peer: None,
        session: None,
        received: None,
    })
}

/// Encodes a response frame (size prefix, header, body) in the request's version.
pub fn encode_response(
    api_key: ApiKey,
    api_version: i16,
    correlation_id: i32,
    body: &ResponseKind,
) -> Result<Bytes, String> {
    let mut buf = BytesMut::with_capacity(64);
    buf.put_i32(0);
    let header = ResponseHeader::default().with_correlation_id(correlation_id);
    header
        .encode(&mut buf, api_key.response_header_version(api_version))
        .map_err(|e| format!("{e:#}"))?;
    body.encode(&mut buf, api_version)
        .map_err(|e| format!("{e:#}"))?;
    let size = (buf.len() - 4) as i32;
    buf[0..4].copy_from_slice(&size.to_be_bytes());
    Ok(buf.freeze())
}

/// The answer to an ApiVersions request of a version Spate does not know: a v0 response with
/// UNSUPPORTED_VERSION and the supported list, so the client retries with a version it shares.
pub fn unsupported_api_versions_response(correlation_id: i32) -> Bytes {
    let body = ResponseKind::ApiVersions(api_versions_response(UNSUPPORTED_VERSION));
    // Encoding a fixed, well-formed v0 message cannot fail.
    encode_response(ApiKey::ApiVersions, 0, correlation_id, &body).expect("ApiVersions v0 encodes")
}

/// Reads the size prefix and body of one frame from `buf` if complete (for tests and tools).
pub fn split_frame(buf: &mut Bytes) -> Option<Bytes> {
    if buf.len() < 4 {
        return None;
    }
    let length = i32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]);
    if length < 0 || buf.len() < 4 + length as usize {
        return None;
    }
    buf.advance(4);
    Some(buf.split_to(length as usize))
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::{ApiVersionsRequest, MetadataRequest};
    use kafka_protocol::protocol::encode_request_header_into_buffer;

    fn frame(api_key: ApiKey, version: i16, body: &impl Encodable) -> Bytes {
        let mut buf = BytesMut::new();
        let header = RequestHeader::default()
            .with_request_api_key(api_key as i16)
            .with_request_api_version(version)
            .with_correlation_id(7)
            .with_client_id(Some(StrBytes::from_static_str("test")));
        encode_request_header_into_buffer(&mut buf, &header).expect("header");
        body.encode(&mut buf, version).expect("body");
        buf.freeze()
    }

    #[test]
    fn decodes_a_flexible_api_versions_request() {
        let body = ApiVersionsRequest::default()
            .with_client_software_name(StrBytes::from_static_str("librdkafka"))
            .with_client_software_version(StrBytes::from_static_str("2.0.2"));
        let request = decode_request(frame(ApiKey::ApiVersions, 3, &body)).expect("decode");
        assert_eq!(request.correlation_id, 7);
        assert_eq!(request.client_id.as_deref(), Some("test"));
        assert!(matches!(request.body, RequestKind::ApiVersions(_)));
    }

    #[test]
    fn api_versions_of_an_unknown_version_is_answered_in_v0() {
        let mut bytes = BytesMut::new();
        bytes.put_i16(ApiKey::ApiVersions as i16);
        bytes.put_i16(99);
        bytes.put_i32(42);
        let err = decode_request(bytes.freeze()).expect_err("unsupported");
        assert_eq!(
            err,
            DecodeError::UnsupportedVersion {
                api_key: ApiKey::ApiVersions,
                api_version: 99,
                correlation_id: 42
            }
        );
        let mut response = unsupported_api_versions_response(42);
        let mut body = split_frame(&mut response).expect("one frame");
        assert_eq!(body.get_i32(), 42, "correlation id, v0 header");
        assert_eq!(body.get_i16(), UNSUPPORTED_VERSION);
        assert_eq!(body.get_i32() as usize, versions::SUPPORTED_APIS.len());
    }

    #[test]
    fn api_versions_v3_response_has_no_tagged_fields() {
        let body = ResponseKind::ApiVersions(api_versions_response(0));
        let mut frame = encode_response(ApiKey::ApiVersions, 3, 1, &body).expect("encode");
        let bytes = split_frame(&mut frame).expect("frame");
        // Header v0 (4 bytes), error code (2), compact array of N entries of
        // (key 2, min 2, max 2, tags 1), throttle (4), then the top-level tag count, 0.
        let n = versions::SUPPORTED_APIS.len();
        assert_eq!(bytes.len(), 4 + 2 + 1 + n * 7 + 4 + 1);
        assert_eq!(bytes[bytes.len() - 1], 0, "no top-level tagged fields");
    }

    #[test]
    fn produce_v2_is_refused_and_unknown_keys_are_reported() {
        let mut bytes = BytesMut::new();
        bytes.put_i16(ApiKey::Produce as i16);
        bytes.put_i16(2);
        bytes.put_i32(1);
        bytes.put_i16(-1);
        assert!(matches!(
            decode_request(bytes.freeze()),
            Err(DecodeError::UnsupportedVersion { api_version: 2, .. })
        ));
        let mut bytes = BytesMut::new();
        bytes.put_i16(1000);
        bytes.put_i16(0);
        bytes.put_i32(1);
        assert!(matches!(
            decode_request(bytes.freeze()),
            Err(DecodeError::UnknownApiKey { api_key: 1000, .. })
        ));
    }

    #[test]
    fn huge_array_length_is_an_error() {
        // Metadata v0 with a topic array claiming 54 million entries in 5 bytes: the
        // unpatched kafka-protocol 0.18 allocates ~4 GB here and aborts.
        let bytes = Bytes::from_static(&[
            0, 3, 0, 0, 0, 0, 0, 1, 0xff, 0xff, 0x03, 0x3c, 0x0c, 0x00, 0xb6,
        ]);
        assert!(matches!(
            decode_request(bytes),
            Err(DecodeError::Malformed { .. })
        ));
        let mut flexible = BytesMut::new();
        flexible.put_slice(&frame(ApiKey::Metadata, 12, &MetadataRequest::default())[..]);
        flexible.truncate(flexible.len() - 4);
        flexible.put_slice(&[0xff, 0xff, 0xff, 0xff, 0x0f]);
        assert!(decode_request(flexible.freeze()).is_err());
    }

    #[test]
    fn frames_captured_from_real_clients_decode() {
        // Run-time manifest directory: the build cache may be shared between checkouts.
        let manifest = std::env::var("CARGO_MANIFEST_DIR").expect("run under cargo");
        let dir = format!("{manifest}/../../fuzz/corpus/decode_request");
        let mut count = 0;
        for entry in std::fs::read_dir(dir).expect("the fuzz seed corpus") {
            let path = entry.expect("entry").path();
            let bytes = std::fs::read(&path).expect("read seed");
            let request = decode_request(Bytes::from(bytes))
                .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            assert!(request.correlation_id >= 0);
            count += 1;
        }
        assert!(
            count >= 15,
            "expected the captured kcat, confluent-kafka and kafka-python frames"
        );
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_frames_never_panic(data in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..256)) {
            let _ = decode_request(Bytes::from(data));
        }

        #[test]
        fn arbitrary_bodies_after_valid_headers_never_panic(
            key in proptest::sample::select(versions::SUPPORTED_APIS.to_vec()),
            body in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..256),
        ) {
            let (api_key, _, max) = key;
            let mut buf = BytesMut::new();
            buf.put_i16(api_key as i16);
            buf.put_i16(max);
            buf.put_i32(1);
            buf.put_i16(-1);
            buf.put_slice(&body);
            let _ = decode_request(buf.freeze());
        }
    }
}
