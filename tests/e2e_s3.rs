//! End to end from a real S3 API: moto in server mode (deploy/dev/moto.sh install), started
//! here on a loopback port. MetaDefender JSON and SYSLOG (gzip) exports and Panoptica
//! findings are uploaded; `sluice run` with two S3 sources must emit exactly their events;
//! after a restart nothing may be read twice; a new object, and a rewritten one, are read.
//!
//! Ignored by a plain `cargo test`; `.ci/run` installs moto and runs
//! `cargo test --test e2e_s3 -- --ignored`.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use common::server::Sluice;

const WAIT: Duration = Duration::from_secs(60);
const BUCKET: &str = "exports";

fn moto_binary() -> PathBuf {
    if let Some(path) = std::env::var_os("MOTO_SERVER") {
        return PathBuf::from(path);
    }
    let path = common::repo_root().join("target/e2e-tools/moto/bin/moto_server");
    assert!(
        path.is_file(),
        "no moto at {}: run deploy/dev/moto.sh install",
        path.display()
    );
    path
}

struct Moto {
    child: Child,
    address: SocketAddr,
}

impl Moto {
    fn start() -> Moto {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new(moto_binary())
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start moto_server");
        let address: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        let started = Instant::now();
        while TcpStream::connect_timeout(&address, Duration::from_millis(200)).is_err() {
            assert!(started.elapsed() < WAIT, "moto did not start");
            std::thread::sleep(Duration::from_millis(100));
        }
        Moto { child, address }
    }

    fn endpoint(&self) -> String {
        format!("http://{}", self.address)
    }

    /// A request with a placeholder signature: moto does not check signatures, but treats
    /// a request with none as anonymous (which may not overwrite). Returns the status code.
    fn request(&self, method: &str, path: &str, body: &[u8]) -> u16 {
        let mut stream = TcpStream::connect_timeout(&self.address, WAIT).unwrap();
        stream.set_read_timeout(Some(WAIT)).unwrap();
        write!(
            stream,
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nContent-Length: {}\r\nConnection: close\r\n\
             Authorization: AWS4-HMAC-SHA256 Credential=test/20261123/us-east-1/s3/aws4_request, \
             SignedHeaders=host, Signature=00\r\n\r\n",
            self.address,
            body.len()
        )
        .unwrap();
        stream.write_all(body).unwrap();
        let mut response = Vec::new();
        stream.read_to_end(&mut response).unwrap();
        let head = String::from_utf8_lossy(&response[..response.len().min(64)]).into_owned();
        head.split(' ').nth(1).unwrap().parse().unwrap()
    }

    fn create_bucket(&self, bucket: &str) {
        assert_eq!(self.request("PUT", &format!("/{bucket}"), b""), 200);
    }

    fn put(&self, key: &str, body: &[u8]) {
        assert_eq!(
            self.request("PUT", &format!("/{BUCKET}/{key}"), body),
            200,
            "upload {key}"
        );
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn seed(name: &str) -> Vec<u8> {
    std::fs::read(common::repo_root().join("tests/seeds").join(name)).unwrap()
}

fn golden(name: &str) -> Vec<Value> {
    serde_json::from_str(
        &std::fs::read_to_string(common::repo_root().join("tests/golden").join(name)).unwrap(),
    )
    .unwrap()
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(data).unwrap();
    encoder.finish().unwrap()
}

fn config(moto: &Moto, state: &Path) -> String {
    let source = |name: &str, prefix: &str| {
        format!(
            r#"
[[s3]]
name = "{name}"
bucket = "{BUCKET}"
prefix = "{prefix}"
endpoint = "{}"
region = "us-east-1"
access_key_id = "test"
secret_access_key = "test"
poll_interval = "1s"
tags = {{ vendor = "{name}" }}
"#,
            moto.endpoint()
        )
    };
    format!(
        "[general]\nstate_dir = \"{}\"\n[sink]\ntype = \"stdout\"\n{}{}",
        state.display(),
        source("metadefender", "metadefender/"),
        source("panoptica", "panoptica/")
    )
}

fn object_key(event: &Value) -> &str {
    event["sluice"]["received"]["object_key"].as_str().unwrap()
}

fn events_of<'a>(events: &'a [Value], key: &str) -> Vec<&'a Value> {
    events.iter().filter(|e| object_key(e) == key).collect()
}

/// Each event matches its hand-written golden expectation, came in by S3 from its object
/// and validates against the schemas.
fn assert_events(events: &[&Value], expected: &[Value], source: &str, key: &str) {
    assert_eq!(events.len(), expected.len(), "{key}: one event per record");
    for (event, want) in events.iter().zip(expected) {
        let mut diffs = Vec::new();
        common::subset_diff(want, event, "", &mut diffs);
        assert!(diffs.is_empty(), "{key}:\n{}\n{event:#}", diffs.join("\n"));
        let received = &event["sluice"]["received"];
        assert_eq!(received["transport"], "s3");
        assert_eq!(received["listener"], source);
        assert_eq!(received["tags"]["vendor"], source);
        assert!(received["offset"].is_u64());
        common::assert_valid(event);
    }
}

/// Waits until every source has listed at least `polls` more times than `before`.
fn wait_polls(sluice: &Sluice, polls: u32) {
    let listed = |s: &Sluice| {
        ["metadefender", "panoptica"].map(|source| {
            s.metric(
                "sluice_s3_last_poll_timestamp_seconds",
                &[("source", source)],
            )
        })
    };
    let mut seen = listed(sluice);
    let mut count = [0u32; 2];
    let started = Instant::now();
    while count.iter().any(|c| *c < polls) {
        assert!(started.elapsed() < WAIT, "the S3 sources stopped polling");
        std::thread::sleep(Duration::from_millis(100));
        let now = listed(sluice);
        for i in 0..2 {
            if now[i] > seen[i] {
                count[i] += 1;
                seen[i] = now[i];
            }
        }
    }
}

#[test]
#[ignore = "needs moto: deploy/dev/moto.sh install; run by .ci/run"]
fn s3_exports_are_read_exactly_once_across_restarts() {
    let moto = Moto::start();
    moto.create_bucket(BUCKET);
    let json_key = "metadefender/2026/11/23/1200.json";
    let syslog_key = "metadefender/2026/11/23/1205.log.gz";
    let ndjson_key = "metadefender/2026/11/23/1210.ndjson";
    let findings_key = "panoptica/scan-1.json";
    moto.put(json_key, &seed("opswat_metadefender.json"));
    moto.put(syslog_key, &gzip(&seed("opswat_metadefender_syslog.log")));
    // NDJSON with a record cut short in the middle: it is dead-lettered with its offset,
    // the records around it go through.
    let good = br#"{"log_type":"config","details":"changed settings","admin_name":"A","admin_email":"a@example.com","type":"Account","event":"Configuration Change","timestamp":"2026-11-23T12:10:00.000Z"}"#;
    let broken = br#"{"log_type":"added","device_name":"Cut Off","#;
    let ndjson = [&good[..], b"\n", broken, b"\n", good, b"\n"].concat();
    moto.put(ndjson_key, &ndjson);
    moto.put(findings_key, &seed("cisco_panoptica.json"));
    // Something outside both prefixes is not read.
    moto.put("other/ignored.json", b"{\"a\":1}\n");

    let state = tempfile::tempdir().unwrap();
    let sluice = Sluice::start(&config(&moto, state.path()));
    sluice.wait_events(10, WAIT);
    wait_polls(&sluice, 2);
    let stopped = sluice.stop();
    assert!(
        stopped.status.success(),
        "{}",
        common::server::dump(&stopped.logs)
    );
    let events = stopped.events;
    assert_eq!(events.len(), 10, "2 + 2 + 3 + 3 events: {events:#?}");

    assert_events(
        &events_of(&events, json_key),
        &golden("opswat_metadefender.expected.json"),
        "metadefender",
        json_key,
    );
    assert_events(
        &events_of(&events, syslog_key),
        &golden("opswat_metadefender_syslog.expected.json"),
        "metadefender",
        syslog_key,
    );
    assert_events(
        &events_of(&events, findings_key),
        &golden("cisco_panoptica.expected.json"),
        "panoptica",
        findings_key,
    );
    // The attack-path finding keeps its risk parameters.
    let attack_path = events_of(&events, findings_key)
        .into_iter()
        .find(|e| e.to_string().contains("attack_path"))
        .expect("the attack_path finding");
    assert!(
        attack_path.to_string().contains("risk_params"),
        "{attack_path:#}"
    );

    let ndjson_events = events_of(&events, ndjson_key);
    assert_eq!(ndjson_events.len(), 3);
    let statuses: Vec<&str> = ndjson_events
        .iter()
        .map(|e| e["sluice"]["parse"]["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses, ["ok", "failed", "ok"]);
    let failed = ndjson_events[1];
    assert_eq!(
        failed["sluice"]["received"]["offset"],
        good.len() as u64 + 1,
        "{failed:#}"
    );
    assert_eq!(failed["raw_data"], String::from_utf8_lossy(broken).as_ref());
    assert_eq!(
        ndjson_events[2]["sluice"]["received"]["offset"],
        (good.len() + 1 + broken.len() + 1) as u64
    );
    for e in &events {
        common::assert_valid(e);
    }

    // The checkpoints name every object read, with its ETag.
    let checkpoint: Value = serde_json::from_str(
        &std::fs::read_to_string(state.path().join("s3-metadefender.json")).unwrap(),
    )
    .unwrap();
    let objects = checkpoint["objects"].as_object().unwrap();
    assert_eq!(
        objects.keys().collect::<Vec<_>>(),
        [json_key, syslog_key, ndjson_key]
    );

    // Restart: nothing is read twice.
    let sluice = Sluice::start(&config(&moto, state.path()));
    wait_polls(&sluice, 2);
    assert_eq!(sluice.events().len(), 0, "{:#?}", sluice.events());
    assert_eq!(
        sluice.metric("sluice_s3_objects_listed", &[("source", "metadefender")]),
        3.0
    );
    assert_eq!(
        sluice.metric("sluice_s3_objects_pending", &[("source", "metadefender")]),
        0.0
    );
    assert_eq!(sluice.metric("sluice_s3_records_total", &[]), 0.0);

    // A new object: only it is read.
    let panoptica = serde_json::from_slice::<Vec<Value>>(&seed("cisco_panoptica.json")).unwrap();
    let scan2 = serde_json::to_vec_pretty(&panoptica[0]).unwrap();
    moto.put("panoptica/scan-2.json", &scan2);
    let events = sluice.wait_events(1, WAIT);
    wait_polls(&sluice, 2);
    // A rewritten object (new ETag) is read again, whole.
    let rewritten = br#"{"log_type":"config","details":"rewritten","admin_name":"B","admin_email":"b@example.com","type":"Account","event":"Configuration Change","timestamp":"2026-11-23T12:20:00.000Z"}"#;
    moto.put(json_key, rewritten);
    let _ = sluice.wait_events(2, WAIT);
    wait_polls(&sluice, 2);
    let stopped = sluice.stop();
    assert!(stopped.status.success());
    let after = stopped.events;
    assert_eq!(events.len(), 1);
    assert_eq!(after.len(), 2, "{after:#?}");
    assert_eq!(object_key(&after[0]), "panoptica/scan-2.json");
    let raw: Value = serde_json::from_str(after[0]["raw_data"].as_str().unwrap()).unwrap();
    assert_eq!(raw, panoptica[0]);
    assert_eq!(object_key(&after[1]), json_key);
    assert_eq!(after[1]["message"], "rewritten");
}
