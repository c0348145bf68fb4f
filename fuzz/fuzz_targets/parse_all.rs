#![no_main]
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use sluice::grammar::GrammarSet;
use sluice::source::{Message, ReceiveInfo, Transport};
use sluice::{ParseOptions, Pipeline};

fn pipeline() -> &'static Pipeline {
    static P: OnceLock<Pipeline> = OnceLock::new();
    P.get_or_init(|| Pipeline::new(GrammarSet::embedded().unwrap(), ParseOptions::default()).unwrap())
}

fuzz_target!(|data: &[u8]| {
    let mut message = Message::new(
        data.to_vec(),
        std::sync::Arc::new(ReceiveInfo::new("fuzz", Transport::Tcp)),
        1_700_000_000_000,
    );
    message.json_record = data.first() == Some(&b'{');
    // The event writer must write what serde_json writes for the same event.
    let (written, event) = pipeline().parse_with(&message, |event| {
        let mut written = Vec::new();
        event.write_json(&mut written);
        // The writer that frees the tree as it goes (the workers'): same bytes, and
        // AddressSanitizer sees each part freed once.
        let mut consumed = Vec::new();
        event.tree.clone().into_json(&mut consumed);
        assert_eq!(consumed, written);
        (written, event.into_value())
    });
    assert!(event["sluice"]["parse"]["status"].is_string());
    assert_eq!(written, serde_json::to_vec(&event).unwrap());
});
