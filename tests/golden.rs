//! Golden tests: every example message in the five vendor seeds, verbatim (tests/seeds/),
//! against expectations written by hand from the seed texts (tests/golden/). Each expected
//! file lists, per input event, the fields and values that must be in the output; every
//! emitted event is also validated against the repo's schema and the OCSF class schema.

mod common;

use serde_json::Value;

fn check(seed: &str, expected: &str) {
    let pipeline = common::pipeline();
    let root = common::repo_root();
    let events = common::parse_file(&pipeline, &root.join("tests/seeds").join(seed));
    let expected: Vec<Value> = serde_json::from_str(
        &std::fs::read_to_string(root.join("tests/golden").join(expected)).unwrap(),
    )
    .unwrap();
    assert_eq!(
        events.len(),
        expected.len(),
        "{seed}: one event per input event"
    );
    for (i, (event, want)) in events.iter().zip(&expected).enumerate() {
        let mut diffs = Vec::new();
        common::subset_diff(want, event, "", &mut diffs);
        assert!(
            diffs.is_empty(),
            "{seed} event {i}:\n{}\nevent: {event:#}",
            diffs.join("\n")
        );
        common::assert_valid(event);
    }
}

#[test]
fn perception_point_email_scan() {
    check("perception_point.log", "perception_point.expected.json");
}

#[test]
fn kaspersky_kata_header_example() {
    check("kaspersky_kata.log", "kaspersky_kata.expected.json");
}

#[test]
fn symantec_edr_samples_with_broken_json() {
    check("symantec_edr.log", "symantec_edr.expected.json");
}

#[test]
fn metadefender_json_file() {
    check(
        "opswat_metadefender.json",
        "opswat_metadefender.expected.json",
    );
}

#[test]
fn metadefender_syslog_members_file() {
    check(
        "opswat_metadefender_syslog.log",
        "opswat_metadefender_syslog.expected.json",
    );
}

#[test]
fn panoptica_findings_built_from_the_seed_schema() {
    check("cisco_panoptica.json", "cisco_panoptica.expected.json");
}

#[test]
fn symantec_repair_is_reported_with_its_code() {
    let pipeline = common::pipeline();
    let line =
        std::fs::read_to_string(common::repo_root().join("tests/seeds/symantec_edr.log")).unwrap();
    let event = common::parse_line(&pipeline, line.lines().next().unwrap());
    let errors = event["sluice"]["parse"]["errors"].as_array().unwrap();
    assert_eq!(errors.len(), 2, "{errors:?}");
    assert_eq!(errors[0]["code"], "json_repaired");
    assert_eq!(
        errors[0]["message"],
        "json= JSON repaired: added the missing opening '{'; kept 3 invalid escape(s) as literal backslashes"
    );
    // The seed's embedded device_ip is 194.1448.4.245: not an address, so not device.ip.
    assert_eq!(errors[1]["code"], "field_conversion_failed");
    assert_eq!(
        errors[1]["message"],
        "json.device_ip \"194.1448.4.245\" is not a valid ip for device.ip; kept under unmapped"
    );
    assert_eq!(event["unmapped"]["json"]["device_ip"], "194.1448.4.245");
    // device.ip still comes from the CEF extension's internalIP.
    assert_eq!(event["device"]["ip"], "194.164.4.245");
}

/// KATA's heartbeat (severity 0, signature `heartbeat`, per the seed) is marked so that
/// sluice can track it per source; its alerts are not.
#[test]
fn kata_heartbeat_is_marked_and_alerts_are_not() {
    let pipeline = common::pipeline();
    let heartbeat = common::parse_line(
        &pipeline,
        "<14>1 2026-11-23T10:00:00Z kata-node-1 KATA - - - CEF:0|AO Kaspersky Lab| Kaspersky Anti Targeted Attack Platform |5.0.0-5201|heartbeat| Heartbeat|0|eventId=77",
    );
    assert_eq!(heartbeat["sluice"]["event_kind"], "heartbeat");
    assert_eq!(heartbeat["sluice"]["heartbeat"], true);
    assert_eq!(heartbeat["class_uid"], 6002);
    assert_eq!(heartbeat["activity_name"], "Heartbeat");
    common::assert_valid(&heartbeat);
    let alert = common::parse_line(&pipeline, &common::server::seed_line("kaspersky_kata.log"));
    assert_eq!(alert["sluice"]["event_kind"], "alert");
    assert!(alert["sluice"].get("heartbeat").is_none(), "{alert:#}");
}

#[test]
fn a_mapped_field_sent_twice_takes_the_first_value() {
    // Vendors occasionally repeat an extension key; the first value sent fills the
    // attribute (raw_data keeps the whole message).
    let pipeline = common::pipeline();
    let event = common::parse_line(
        &pipeline,
        "CEF:0|AO Kaspersky Lab|Kaspersky Anti Targeted Attack Platform|5.0|url_web|URL from web detected|Low|src=10.0.0.1 dst=10.0.0.9 src=10.0.0.2",
    );
    assert_eq!(event["evidences"][0]["src_endpoint"]["ip"], "10.0.0.1");
    assert_eq!(event["evidences"][0]["dst_endpoint"]["ip"], "10.0.0.9");
    assert!(event["raw_data"]
        .as_str()
        .unwrap()
        .ends_with("src=10.0.0.2"));
    common::assert_valid(&event);
}

#[test]
fn raw_data_off_leaves_out_only_the_text_of_events_parsed_ok() {
    let options = sluice::ParseOptions {
        raw_data: false,
        ..Default::default()
    };
    let pipeline =
        sluice::Pipeline::new(sluice::grammar::GrammarSet::embedded().unwrap(), options).unwrap();
    let ok = common::parse_line(&pipeline, &common::server::seed_line("kaspersky_kata.log"));
    assert_eq!(ok["sluice"]["parse"]["status"], "ok", "{ok:#}");
    assert!(ok.get("raw_data").is_none(), "{ok:#}");
    common::assert_valid(&ok);
    let unrecognised = common::parse_line(&pipeline, "<13>Nov 23 10:00:00 host app: free text");
    assert_eq!(unrecognised["sluice"]["parse"]["status"], "unrecognised");
    assert_eq!(
        unrecognised["raw_data"],
        "<13>Nov 23 10:00:00 host app: free text"
    );
    common::assert_valid(&unrecognised);
    // Symantec's broken json= is repaired: partial, and its text is kept.
    let partial = common::parse_line(&pipeline, &common::server::seed_line("symantec_edr.log"));
    assert_eq!(
        partial["sluice"]["parse"]["status"], "partial",
        "{partial:#}"
    );
    assert!(partial["raw_data"].as_str().unwrap().contains("json="));
    common::assert_valid(&partial);
}
