#![no_main]
use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock};

use libfuzzer_sys::fuzz_target;
use sluice::grammar::GrammarSet;
use sluice::source::{Message, ReceiveInfo, Transport};
use sluice::{ParseOptions, Pipeline};

fn pipeline() -> &'static Pipeline {
    static P: OnceLock<Pipeline> = OnceLock::new();
    P.get_or_init(|| Pipeline::new(GrammarSet::embedded().unwrap(), ParseOptions::default()).unwrap())
}

fuzz_target!(|data: &[u8]| {
    let message = Message {
        bytes: data.to_vec(),
        received: ReceiveInfo {
            listener: Arc::from("fuzz"),
            transport: Transport::Tcp,
            peer: None,
            tls_client_subject: None,
            object_key: None,
            tags: Arc::new(BTreeMap::new()),
        },
        received_ms: 1_700_000_000_000,
        truncated: false,
        offset: None,
        json_record: data.first() == Some(&b'{'),
    };
    let event = pipeline().parse(&message);
    assert!(event["sluice"]["parse"]["status"].is_string());
    assert!(serde_json::to_vec(&event).is_ok());
});
