#![no_main]
use libfuzzer_sys::fuzz_target;
use sluice::format::{kv, pipe};

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        for field in pipe::parse(text) {
            assert!(!field.key.is_empty());
        }
        let _ = kv::parse(text);
    }
});
