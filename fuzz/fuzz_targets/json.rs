#![no_main]
use libfuzzer_sys::fuzz_target;
use sluice::format::json;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = json::parse_lenient(text, &json::Made::new());
        let _ = json::parse_members(text, &json::Made::new());
    }
});
