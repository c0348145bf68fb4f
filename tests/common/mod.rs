//! Shared test helpers: a pipeline with a fixed receive time, the repo's output schema,
//! the OCSF class schemas from `../shared/ocsf` (when present), and subset matching.
#![allow(dead_code)]

#[cfg(feature = "kafka")]
pub mod kafka;
pub mod pki;
pub mod server;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use serde_json::Value;
use sluice::grammar::GrammarSet;
use sluice::source::{records, Message, ReceiveInfo, Transport};
use sluice::{ParseOptions, Pipeline};

/// 2023-11-14T22:13:20Z: the receive time of every test message.
pub const RECEIVED_MS: i64 = 1_700_000_000_000;

pub fn pipeline() -> Pipeline {
    Pipeline::new(GrammarSet::embedded().unwrap(), ParseOptions::default()).unwrap()
}

pub fn message(bytes: &[u8], json_record: bool) -> Message {
    let mut message = Message::new(
        bytes.to_vec(),
        std::sync::Arc::new(ReceiveInfo::new("test", Transport::File)),
        RECEIVED_MS,
    );
    message.json_record = json_record;
    message
}

pub fn parse_line(pipeline: &Pipeline, line: &str) -> Value {
    pipeline.parse(&message(line.as_bytes(), false))
}

/// Parses a file the way `sluice parse` does.
pub fn parse_file(pipeline: &Pipeline, path: &Path) -> Vec<Value> {
    let mut events = Vec::new();
    let file = std::fs::File::open(path).unwrap();
    records::read_all(&path.display().to_string(), file, 1 << 20, |batch| {
        events.extend(
            batch
                .iter()
                .map(|r| pipeline.parse(&message(&r.bytes, r.json))),
        );
        Ok(())
    })
    .unwrap();
    events
}

pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// `../shared` beside the repo, where CI and developers have it; users' clones do not.
pub fn shared_dir() -> Option<PathBuf> {
    let dir = repo_root().join("../shared");
    if dir.is_dir() {
        Some(dir)
    } else {
        eprintln!(
            "note: ../shared is absent: OCSF-schema and corpus checks are skipped (CI has it)"
        );
        None
    }
}

fn repo_validator() -> &'static jsonschema::Validator {
    static V: OnceLock<jsonschema::Validator> = OnceLock::new();
    V.get_or_init(|| {
        let text =
            std::fs::read_to_string(repo_root().join("schema/sluice-event.schema.json")).unwrap();
        jsonschema::draft202012::new(&serde_json::from_str::<Value>(&text).unwrap()).unwrap()
    })
}

const OCSF_FILES: &[(u64, &str)] = &[
    (0, "base_event"),
    (1001, "file_activity"),
    (2002, "vulnerability_finding"),
    (2003, "compliance_finding"),
    (2004, "detection_finding"),
    (2005, "incident_finding"),
    (3001, "account_change"),
    (3002, "authentication"),
    (3004, "entity_management"),
    (4009, "email_activity"),
    (5019, "device_config_state_change"),
    (6001, "web_resources_activity"),
    (6002, "application_lifecycle"),
];

/// Strict OCSF validators: the class schema with `sluice` added and no other unknown
/// top-level attribute allowed (the shared README's advice).
fn ocsf_validators() -> Option<&'static HashMap<u64, jsonschema::Validator>> {
    static V: OnceLock<Option<HashMap<u64, jsonschema::Validator>>> = OnceLock::new();
    V.get_or_init(|| {
        let dir = shared_dir()?.join("ocsf");
        let mut map = HashMap::new();
        for (uid, name) in OCSF_FILES {
            let text = std::fs::read_to_string(dir.join(format!("{name}.schema.json"))).ok()?;
            let mut schema: Value = serde_json::from_str(&text).unwrap();
            schema["properties"]["sluice"] = serde_json::json!({"type": "object"});
            schema["additionalProperties"] = Value::Bool(false);
            map.insert(*uid, jsonschema::draft202012::new(&schema).unwrap());
        }
        Some(map)
    })
    .as_ref()
}

/// Asserts the event is valid against the repo's schema and (when ../shared is present)
/// the strict OCSF schema of its class.
pub fn assert_valid(event: &Value) {
    let errors: Vec<String> = repo_validator()
        .iter_errors(event)
        .map(|e| format!("{e} at {}", e.instance_path()))
        .collect();
    assert!(
        errors.is_empty(),
        "sluice schema: {errors:#?}\nevent: {event:#}"
    );
    if let Some(validators) = ocsf_validators() {
        let class = event["class_uid"].as_u64().unwrap();
        let validator = validators
            .get(&class)
            .unwrap_or_else(|| panic!("no OCSF schema for class {class}"));
        let errors: Vec<String> = validator
            .iter_errors(event)
            .map(|e| format!("{e} at {}", e.instance_path()))
            .collect();
        assert!(
            errors.is_empty(),
            "OCSF class {class}: {errors:#?}\nevent: {event:#}"
        );
    }
}

/// Every member of `expected` is in `actual` with the same value (objects recursively,
/// arrays element by element with equal length, scalars equal). Returns the paths that differ.
pub fn subset_diff(expected: &Value, actual: &Value, path: &str, diffs: &mut Vec<String>) {
    match (expected, actual) {
        (Value::Object(e), Value::Object(a)) => {
            for (k, v) in e {
                let p = format!("{path}.{k}");
                match a.get(k) {
                    Some(av) => subset_diff(v, av, &p, diffs),
                    // An expected null says the attribute must not be there.
                    None if v.is_null() => {}
                    None => diffs.push(format!("{p}: missing (expected {v})")),
                }
            }
        }
        (Value::Array(e), Value::Array(a)) if e.len() == a.len() => {
            for (i, (ev, av)) in e.iter().zip(a).enumerate() {
                subset_diff(ev, av, &format!("{path}[{i}]"), diffs);
            }
        }
        (e, a) if e == a => {}
        (e, a) => diffs.push(format!("{path}: expected {e}, got {a}")),
    }
}
