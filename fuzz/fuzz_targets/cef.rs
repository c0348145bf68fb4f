#![no_main]
use libfuzzer_sys::fuzz_target;
use sluice::format::{cef, detect, Format};

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        if let Format::Cef { start } = detect(text) {
            if let Ok(message) = cef::parse_header(text, start) {
                let _ = cef::parse_extension(message.extension, &["json"]);
            }
        }
        let _ = cef::parse_extension::<&str>(text, &[]);
    }
});
