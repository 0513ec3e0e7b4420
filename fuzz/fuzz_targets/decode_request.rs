//! Request frames from untrusted clients: decoding must return a value or an error, never
//! panic, hang or allocate without bound.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(request) = spate_protocol::decode_request(bytes::Bytes::copy_from_slice(data)) {
        // Whatever decodes must also have a size we can account for.
        assert_eq!(request.size_bytes, data.len());
    }
});
