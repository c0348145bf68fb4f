#![no_main]
use libfuzzer_sys::fuzz_target;
use sluice::syslog::{parse, TimeContext};
use sluice::time::DefaultZone;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let ctx = TimeContext { received_ms: 1_700_000_000_000, zone: DefaultZone::Utc };
        let (_, payload) = parse(text, &ctx);
        // The payload is always a suffix of the message.
        assert!(text.ends_with(payload));
    }
});
