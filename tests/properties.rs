//! Property tests: CEF written with proper escaping parses back to the same values, and no
//! input (random bytes, huge lines, deep nesting) panics or overflows the stack.

mod common;
#[path = "../benches/corpus/mod.rs"]
mod corpus;

use proptest::prelude::*;
use sluice::format::{self, cef, Format};

fn header_field() -> impl Strategy<Value = String> {
    // Printable text including `|` and `\`; no leading/trailing spaces (CEF header fields
    // are trimmed, normalised-schema rule 2).
    "[ -~]{0,20}".prop_map(|s| s.trim().to_string())
}

fn ext_value() -> impl Strategy<Value = String> {
    // Any text with spaces, `=`, `\`, `|`, newlines and non-ASCII; no trailing whitespace
    // (the last value of a message is trimmed at its end).
    proptest::string::string_regex("[ -~\\n\\réü中]{0,30}")
        .unwrap()
        .prop_map(|s| s.trim_end().to_string())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn cef_roundtrip(
        header in proptest::collection::vec(header_field(), 6),
        ext in proptest::collection::btree_map("[A-Za-z][A-Za-z0-9_]{0,10}", ext_value(), 0..8),
    ) {
        let mut line = String::from("CEF:0");
        for field in &header {
            line.push('|');
            line.push_str(&cef::escape_header(field));
        }
        line.push('|');
        let pairs: Vec<String> = ext.iter().map(|(k, v)| format!("{k}={}", cef::escape_value(v))).collect();
        line.push_str(&pairs.join(" "));

        let start = match format::detect(&line) {
            Format::Cef { start } => start,
            other => panic!("{other:?} for {line:?}"),
        };
        let message = cef::parse_header(&line, start).unwrap();
        let got = [
            &message.header.vendor, &message.header.product, &message.header.device_version,
            &message.header.signature_id, &message.header.name, &message.header.severity,
        ];
        for (want, got) in header.iter().zip(got) {
            prop_assert_eq!(want.as_str(), got.as_ref());
        }
        let parsed: Vec<(String, String)> = cef::parse_extension::<&str>(message.extension, &[])
            .into_iter()
            .map(|f| (f.key.to_string(), f.value.into_owned()))
            .collect();
        let want: Vec<(String, String)> = ext.into_iter().collect();
        prop_assert_eq!(parsed, want);
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
        let pipeline = common::pipeline();
        let event = pipeline.parse(&common::message(&bytes, false));
        prop_assert!(event["sluice"]["parse"]["status"].is_string());
    }

    #[test]
    fn syslog_shaped_text_never_panics(text in "(<[0-9]{1,3}>)?(1 )?[A-Za-z0-9 :|=\\[\\]\"{},.\\\\-]{0,300}") {
        let pipeline = common::pipeline();
        let event = common::parse_line(&pipeline, &text);
        common::assert_valid(&event);
    }
}

#[test]
fn huge_and_deep_inputs_do_not_overflow() {
    let pipeline = common::pipeline();
    let huge = format!("CEF:0|v|p|1|s|n|5|msg={}", "x ".repeat(4 * 1024 * 1024));
    let event = common::parse_line(&pipeline, &huge);
    assert_eq!(event["sluice"]["parse"]["status"], "ok");
    for deep in ["[".repeat(200_000), "{\"a\":".repeat(200_000)] {
        let event = common::parse_line(&pipeline, &deep);
        assert_eq!(event["sluice"]["parse"]["status"], "failed");
        assert_eq!(
            event["sluice"]["parse"]["errors"][0]["code"],
            "json_invalid"
        );
    }
    let deep_embedded = format!(
        "CEF:0|Symantec|ATPU|3.0.0|1|atp_incident|0|json={}",
        "[".repeat(200_000)
    );
    let event = common::parse_line(&pipeline, &deep_embedded);
    assert_eq!(
        event["sluice"]["parse"]["errors"][0]["code"],
        "embedded_json_invalid"
    );
}

#[test]
fn every_outcome_is_counted_with_a_reason() {
    let pipeline = common::pipeline();
    let cases: &[(&[u8], &str, &str)] = &[
        (b"", "unrecognised", "empty_message"),
        (b"hello world", "unrecognised", "unrecognised_format"),
        (b"CEF:0|Vendor|Prod", "failed", "cef_header_truncated"),
        (b"{\"a\":", "failed", "json_invalid"),
        (b"CEF:0|v|p|1|s|n|5|a=\xff\xfe", "partial", "invalid_utf8"),
    ];
    for (input, status, code) in cases {
        let event = pipeline.parse(&common::message(input, false));
        assert_eq!(event["sluice"]["parse"]["status"], *status, "{input:?}");
        assert_eq!(
            event["sluice"]["parse"]["errors"][0]["code"], *code,
            "{input:?}"
        );
        assert!(event["raw_data"].is_string());
        common::assert_valid(&event);
    }
    // Invalid UTF-8 is reported where it starts, past valid multi-byte characters too.
    let cut_character = ["CEF:0|v|p|1|s|n|5|a=é€😀 ".as_bytes(), b"\xe2\x82"].concat();
    for (input, at) in [
        (b"CEF:0|v|p|1|s|n|5|a=\xff\xfe".to_vec(), 20),
        (cut_character, 30),
    ] {
        let event = pipeline.parse(&common::message(&input, false));
        assert_eq!(
            event["sluice"]["parse"]["errors"][0]["offset"], at,
            "{input:?}"
        );
    }
}

#[test]
fn kata_message_cut_at_32k_keeps_complete_fields() {
    let pipeline = common::pipeline();
    let head = "<134>1 2024-05-01T10:00:00Z kata-cn1 - - - - CEF:0|AO Kaspersky Lab| Kaspersky Anti Targeted Attack Platform |5.0.0-5201|file_web| File from web detected|High|eventId=1965096788380487496 rt=Apr 25 2025 04:59:16 src=10.0.0.5 dst=10.0.0.9 fName=payload.exe request=http://evil.test/";
    let mut line = head.to_string();
    line.push_str(&"a".repeat(32768 - head.len()));
    assert_eq!(line.len(), 32768);
    let event = common::parse_line(&pipeline, &line);
    assert_eq!(event["sluice"]["parse"]["status"], "partial");
    assert_eq!(
        event["sluice"]["parse"]["errors"][0]["code"],
        "message_truncated"
    );
    assert_eq!(event["finding_info"]["uid"], "1965096788380487496");
    assert_eq!(event["time"], 1745557156000i64);
    assert_eq!(event["evidences"][0]["file"]["name"], "payload.exe");
    assert_eq!(event["severity_id"], 4);
    // The cut field is kept, apart, not mapped.
    assert!(event["unmapped"]["truncated_field"]["request"]
        .as_str()
        .unwrap()
        .starts_with("http://evil.test/aaa"));
    assert!(event["evidences"][0].get("url").is_none());
    common::assert_valid(&event);
}

#[test]
fn perception_point_cut_at_1024_keeps_complete_pairs() {
    let pipeline = common::pipeline();
    let head = "datetime:1612422455.63|Scan ID:000176_1_x|Event:Email Scanned|Verdict:MAL|Subject:";
    let line = format!("{head}{}", "s".repeat(1024 - head.len()));
    let event = common::parse_line(&pipeline, &line);
    assert_eq!(event["sluice"]["parse"]["status"], "partial");
    assert_eq!(event["severity_id"], 4);
    assert!(event["email"].get("subject").is_none());
    assert!(event["unmapped"]["truncated_field"]["Subject"].is_string());
    common::assert_valid(&event);
}

/// The event writer (src/event/node.rs) must write exactly the bytes serde_json writes for
/// the same event as a `Value`: sorted keys, the same escapes and number forms.
fn assert_writer_matches_serde_json(pipeline: &sluice::Pipeline, bytes: &[u8], json_record: bool) {
    let message = common::message(bytes, json_record);
    let (written, value, grammar, heartbeat) = pipeline.parse_with(&message, |event| {
        let mut written = Vec::new();
        event.write_json(&mut written);
        // The workers' writer, which frees the tree as it writes it, writes the same bytes.
        let mut consumed = Vec::new();
        event.tree.clone().into_json(&mut consumed);
        assert_eq!(consumed, written, "into_json and write_json differ");
        let grammar = event.grammar.map(str::to_string);
        let heartbeat = event.heartbeat;
        (written, event.into_value(), grammar, heartbeat)
    });
    // The worker counts by these fields; they must say what the event says.
    assert_eq!(
        grammar.as_deref(),
        value["sluice"]["grammar"].as_str(),
        "{}",
        String::from_utf8_lossy(bytes)
    );
    assert_eq!(heartbeat, value["sluice"]["heartbeat"] == true);
    let expected = serde_json::to_vec(&value).unwrap();
    assert_eq!(
        String::from_utf8_lossy(&written),
        String::from_utf8_lossy(&expected),
        "{}",
        String::from_utf8_lossy(bytes)
    );
}

/// Every shape of event: the generated corpus, the seeds, and text with control
/// characters, U+2028, quotes, backslashes, huge numbers and repeated SD parameters.
fn every_event_shape(seed: u64) -> Vec<String> {
    let mut lines = corpus::mixed(2000, seed);
    for f in std::fs::read_dir(common::repo_root().join("tests/seeds")).unwrap() {
        let text = std::fs::read_to_string(f.unwrap().path()).unwrap();
        lines.extend(text.lines().map(String::from));
    }
    lines.push("CEF:0|a|b|1|2|3|4|x=\u{7f}\u{1}\u{2028}é\"\\/ y=1.5e300 z=-0".into());
    lines.push("\"k\":\"\\ud83d\\ude00\",\"n\":12345678901234567890,\"f\":1e-7".into());
    lines.push("<34>1 2003-10-11T22:14:15.003Z h a 1 m [id k=\"v\\\"\" k=\"w\"][id x=\"y\"] CEF:0|a|b|1|2|3|4|".into());
    // A heartbeat, which the worker tells by `Event::heartbeat`.
    lines.push("<14>1 2026-11-23T10:00:00Z kata-node-1 KATA - - - CEF:0|AO Kaspersky Lab| Kaspersky Anti Targeted Attack Platform |5.0.0-5201|heartbeat| Heartbeat|0|eventId=77".into());
    lines
}

#[test]
fn the_event_writer_writes_the_same_bytes_as_serde_json() {
    let pipeline = common::pipeline();
    let lines = every_event_shape(11);
    for line in &lines {
        assert_writer_matches_serde_json(&pipeline, line.as_bytes(), false);
        assert_writer_matches_serde_json(&pipeline, line.as_bytes(), line.starts_with('{'));
    }
    assert_writer_matches_serde_json(&pipeline, b"CEF:0|\xff\xfe|b|1|2|3|4|k=\x00\x1f", false);
}

fn shared_pipeline() -> &'static sluice::Pipeline {
    static PIPELINE: std::sync::OnceLock<sluice::Pipeline> = std::sync::OnceLock::new();
    PIPELINE.get_or_init(common::pipeline)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn the_event_writer_matches_serde_json_on_any_input(
        prefix in prop_oneof![Just(""), Just("<13>Jan 25 09:59:01 host app: "), Just("CEF:0|"), Just("{\"a\":")],
        body in proptest::collection::vec(any::<u8>(), 0..200),
    ) {
        let mut bytes = prefix.as_bytes().to_vec();
        bytes.extend_from_slice(&body);
        assert_writer_matches_serde_json(shared_pipeline(), &bytes, false);
        assert_writer_matches_serde_json(shared_pipeline(), &bytes, true);
    }
}

/// Dead-letter records are serialised with sonic-rs (faster escaping); it must write
/// exactly the bytes serde_json writes, for every shape of event.
#[test]
fn sonic_rs_writes_the_same_bytes_as_serde_json() {
    let pipeline = common::pipeline();
    let lines = every_event_shape(7);
    for line in &lines {
        let event = common::parse_line(&pipeline, line);
        let expected = serde_json::to_vec(&event).unwrap();
        let written = sonic_rs::to_vec(&event).unwrap();
        assert_eq!(
            String::from_utf8_lossy(&written),
            String::from_utf8_lossy(&expected),
            "{line}"
        );
    }
}
