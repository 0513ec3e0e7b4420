//! Record batches from producers: validation and record parsing must never panic, and
//! decompression stays within its bound.
#![no_main]

use libfuzzer_sys::fuzz_target;
use spate_log::batch;

fuzz_target!(|data: &[u8]| {
    let _ = batch::validate_produce_batch(data, true, 1 << 20);
    if let Ok(header) = batch::BatchHeader::parse(data) {
        if let Ok(records) = batch::record_bytes(data, 1 << 20) {
            assert!(records.len() <= 1 << 20);
            let _ = batch::parse_records(&records, &header);
        }
    }
});
