//! End to end with real syslog clients: util-linux `logger`, syslog-ng's `loggen` and
//! `rsyslogd`, sending seed-shaped messages into a real `sluice run` over TCP, UDP and TLS.
//! Each test asserts the exact number of events, and that every event parses exactly as
//! the pipeline of `sluice parse` parses the same bytes.
//!
//! These need the clients installed (`deploy/dev/install-test-tools.sh`), so they are
//! ignored by a plain `cargo test`; `.ci/run` installs the clients and runs them with
//! `cargo test --test e2e_clients -- --ignored`.

mod common;
#[path = "../benches/corpus/mod.rs"]
mod corpus;

use std::io::Write;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use common::pki::Pki;
use common::server::Sluice;
use serde_json::Value;
use sluice::source::{Message, ReceiveInfo, Transport};

const WAIT: Duration = Duration::from_secs(120);

fn tool(name: &str) -> PathBuf {
    std::env::var_os("PATH")
        .and_then(|paths| {
            std::env::split_paths(&paths)
                .map(|p| p.join(name))
                .find(|p| p.is_file())
        })
        .unwrap_or_else(|| panic!("{name} is not installed: run deploy/dev/install-test-tools.sh"))
}

fn run(command: &mut Command) -> Output {
    let out = command.output().expect("start the client");
    assert!(
        out.status.success(),
        "{command:?} failed: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Every non-empty line of the seed logs (the vendor documents' examples, verbatim).
fn seed_lines() -> Vec<String> {
    let dir = common::repo_root().join("tests/seeds");
    let mut lines = Vec::new();
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "log"))
        .collect();
    files.sort();
    for f in files {
        let text = std::fs::read_to_string(f).unwrap();
        lines.extend(
            text.lines()
                .filter(|l| !l.trim().is_empty())
                .map(String::from),
        );
    }
    lines
}

fn write_lines(dir: &Path, name: &str, lines: &[String]) -> PathBuf {
    let path = dir.join(name);
    let mut f = std::fs::File::create(&path).unwrap();
    for l in lines {
        writeln!(f, "{l}").unwrap();
    }
    path
}

/// Without `sluice.received` (how it arrived), an event must equal what the `sluice parse`
/// pipeline makes of its raw bytes at the same receive time.
fn assert_parses_like_sluice_parse(events: &[Value]) {
    let pipeline = common::pipeline();
    for event in events {
        common::assert_valid(event);
        let raw = event["raw_data"].as_str().expect("raw_data");
        let received_ms = event["metadata"]["logged_time"].as_i64().unwrap();
        let mut message = Message::new(
            raw.as_bytes().to_vec(),
            std::sync::Arc::new(ReceiveInfo::new("parse", Transport::File)),
            received_ms,
        );
        message.truncated = event["metadata"]["is_truncated"] == true;
        let mut expected = pipeline.parse(&message);
        let mut actual = event.clone();
        for e in [&mut expected, &mut actual] {
            e["sluice"].as_object_mut().unwrap().remove("received");
        }
        assert_eq!(
            actual, expected,
            "network and file parse differ for {raw:?}"
        );
    }
}

/// Waits for exactly `n` events: at least `n` within the timeout, and no more shortly after.
fn exactly(sluice: &Sluice, n: usize) -> Vec<Value> {
    let events = sluice.wait_events(n, WAIT);
    if events.len() < n {
        let counters: Vec<String> = sluice
            .scrape()
            .lines()
            .filter(|l| l.starts_with("sluice_") && !l.contains("_bucket"))
            .map(String::from)
            .collect();
        panic!(
            "only {} of {n} events arrived; sluice counted:\n{}",
            events.len(),
            counters.join("\n")
        );
    }
    std::thread::sleep(Duration::from_millis(500));
    let events = sluice.events();
    assert_eq!(events.len(), n, "more events than messages sent");
    events
}

fn tcp_and_udp() -> String {
    "[[listener]]\nname = \"tcp\"\ntransport = \"tcp\"\naddress = \"127.0.0.1:0\"\n\n\
     [[listener]]\nname = \"udp\"\ntransport = \"udp\"\naddress = \"127.0.0.1:0\"\n"
        .to_string()
}

#[test]
#[ignore = "needs logger; run by .ci/run"]
fn logger_in_every_framing_and_header_mode() {
    let logger = tool("logger");
    let sluice = Sluice::start(&tcp_and_udp());
    let seeds = seed_lines();
    let file = write_lines(sluice.dir.path(), "seeds.log", &seeds);
    let modes: &[&[&str]] = &[
        &["--tcp"],
        &["--tcp", "--octet-count"],
        &["--tcp", "--rfc5424"],
        &["--tcp", "--octet-count", "--rfc3164"],
        &["--udp"],
        &["--udp", "--rfc3164"],
        &["--udp", "--rfc5424"],
    ];
    for mode in modes {
        let listener = if mode[0] == "--tcp" { "tcp" } else { "udp" };
        let addr = sluice.addr(listener);
        run(Command::new(&logger)
            .args(*mode)
            .args(["--size", "65536", "-t", "vendor", "-n"])
            .arg(addr.ip().to_string())
            .args(["-P", &addr.port().to_string(), "-f"])
            .arg(&file));
    }
    let events = exactly(&sluice, seeds.len() * modes.len());
    assert_parses_like_sluice_parse(&events);
    // Every seed is a vendor event that a grammar maps, whatever header logger put on it.
    for e in &events {
        assert_ne!(e["sluice"]["parse"]["status"], "unrecognised", "{e}");
        assert!(e["sluice"]["grammar"].is_string(), "{e}");
    }
    let by_transport = |t: &str| {
        events
            .iter()
            .filter(|e| e["sluice"]["received"]["transport"] == t)
            .count()
    };
    assert_eq!(by_transport("tcp"), seeds.len() * 4);
    assert_eq!(by_transport("udp"), seeds.len() * 3);
    assert!(sluice.stop().status.success());
}

/// `count=N` from loggen's summary line.
fn loggen_count(out: &Output) -> usize {
    let text =
        String::from_utf8_lossy(&out.stderr).to_string() + &String::from_utf8_lossy(&out.stdout);
    text.split("count=")
        .nth(1)
        .and_then(|rest| rest.split(',').next())
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("no count in loggen's output: {text}"))
}

#[test]
#[ignore = "needs loggen; run by .ci/run"]
fn loggen_over_tcp_udp_and_tls_with_many_connections() {
    let loggen = tool("loggen");
    let pki = Pki::new();
    let config = tcp_and_udp() + "\n" + &pki.listener(false, "");
    let sluice = Sluice::start(&config);
    // loggen reads a line into a buffer of about 8 KB and sends what does not fit as broken
    // pieces, so the corpus's KATA alerts near 32 KB go by other senders (rsyslog, the soak).
    let lines: Vec<String> = corpus::mixed(400, 11)
        .into_iter()
        .filter(|l| l.len() < 8000)
        .collect();
    let file = write_lines(sluice.dir.path(), "corpus.log", &lines);
    let per_connection = 300;
    let connections = 20;
    let mut sent = 0;
    // loggen takes one transport plugin: -i with -S or -D, or -U (TLS over TCP).
    for (listener, transport_args, active) in [
        ("tcp", &["-i", "-S"][..], connections),
        ("tcp", &["-i", "-S", "-P"][..], 5),
        ("udp", &["-i", "-D"][..], 1),
        ("tls", &["-U"][..], connections),
    ] {
        let addr = sluice.addr(listener);
        let out = run(Command::new(&loggen)
            .args(transport_args)
            .arg("-R")
            .arg(&file)
            .args(["-d", "--loop-reading", "-n", &per_connection.to_string()])
            .args(["--active-connections", &active.to_string()])
            .args(["-r", "2000"])
            .arg(addr.ip().to_string())
            .arg(addr.port().to_string()));
        let count = loggen_count(&out);
        assert_eq!(count, per_connection * active, "loggen {transport_args:?}");
        sent += count;
    }
    let events = exactly(&sluice, sent);
    for e in &events {
        assert_ne!(e["sluice"]["parse"]["status"], "unrecognised", "{e}");
    }
    assert_parses_like_sluice_parse(&events);
    assert_eq!(
        sluice.metric("sluice_connections_accepted_total", &[("listener", "tls")]),
        connections as f64
    );
    assert!(sluice.stop().status.success());
}

#[test]
#[ignore = "needs rsyslogd; run by .ci/run"]
fn rsyslog_forwards_a_file_over_tls_with_octet_counting() {
    let root = std::env::var_os("SLUICE_RSYSLOG_ROOT")
        .map(PathBuf::from)
        .unwrap_or_else(|| common::repo_root().join("target/e2e-tools/rsyslog"));
    let rsyslogd = root.join("usr/sbin/rsyslogd");
    assert!(
        rsyslogd.is_file(),
        "no {}: run deploy/dev/install-test-tools.sh",
        rsyslogd.display()
    );
    let libs = root.join("usr/lib/x86_64-linux-gnu");
    let pki = Pki::new();
    let client = common::pki::leaf(&pki.ca, "rsyslog-forwarder", true);
    std::fs::write(pki.path("client.pem"), &client.0).unwrap();
    std::fs::write(pki.path("client.key"), &client.1).unwrap();
    let sluice = Sluice::start(&pki.listener(true, ""));
    let addr = sluice.addr("tls");

    // rsyslog reads a vendor's log file of bare payloads and puts its own header on each.
    let ctx = sluice::syslog::TimeContext {
        received_ms: common::RECEIVED_MS,
        zone: sluice::time::DefaultZone::Utc,
    };
    let mut lines = seed_lines();
    lines.extend(
        corpus::mixed(500, 5)
            .iter()
            .map(|l| sluice::syslog::parse(l, &ctx).1.to_string()),
    );
    let work = tempfile::tempdir().unwrap();
    let input = write_lines(work.path(), "vendor.log", &lines);
    let config = format!(
        r#"global(
  workDirectory="{work}"
  maxMessageSize="64k"
  DefaultNetstreamDriverCAFile="{ca}"
  DefaultNetstreamDriverCertFile="{cert}"
  DefaultNetstreamDriverKeyFile="{key}"
)
module(load="imfile")
input(type="imfile" file="{input}" tag="vendor" severity="info" facility="local0")
action(type="omfwd" target="{ip}" port="{port}" protocol="tcp"
       StreamDriver="gtls" StreamDriverMode="1" StreamDriverAuthMode="x509/name"
       StreamDriverPermittedPeers="localhost" TCP_Framing="octet-counted"
       template="RSYSLOG_SyslogProtocol23Format")
"#,
        work = work.path().display(),
        ca = pki.path("ca.pem"),
        cert = pki.path("client.pem"),
        key = pki.path("client.key"),
        input = input.display(),
        ip = addr.ip(),
        port = addr.port(),
    );
    let conf = work.path().join("rsyslog.conf");
    std::fs::write(&conf, config).unwrap();
    let mut child = Command::new(&rsyslogd)
        .args(["-n", "-iNONE", "-f"])
        .arg(&conf)
        .arg("-M")
        .arg(libs.join("rsyslog"))
        .env("LD_LIBRARY_PATH", &libs)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("start rsyslogd");
    let events = sluice.wait_events(lines.len(), WAIT);
    let _ = child.kill();
    let rsyslog_out = child.wait_with_output().unwrap();
    assert_eq!(
        events.len(),
        lines.len(),
        "rsyslogd said: {}",
        String::from_utf8_lossy(&rsyslog_out.stderr)
    );
    let events = exactly(&sluice, lines.len());
    assert_parses_like_sluice_parse(&events);
    for e in &events {
        assert_eq!(e["sluice"]["received"]["transport"], "tls");
        assert_eq!(
            e["sluice"]["received"]["tls"]["client_subject"],
            "CN=rsyslog-forwarder, O=sluice tests"
        );
        assert_eq!(e["sluice"]["syslog"]["rfc"], "5424");
        assert_eq!(e["sluice"]["syslog"]["app_name"], "vendor");
        assert_ne!(e["sluice"]["parse"]["status"], "unrecognised", "{e}");
    }
    // rsyslog sent each line once, in file order, over one connection.
    let payloads: Vec<String> = events
        .iter()
        .map(|e| {
            let raw = e["raw_data"].as_str().unwrap();
            // `<PRI>1 TIMESTAMP HOST APP PROCID MSGID SD MSG`: the message follows the
            // seventh space.
            raw.splitn(8, ' ').nth(7).unwrap().to_string()
        })
        .collect();
    assert_eq!(payloads, lines);
}

#[test]
#[ignore = "a 60 s soak; run by .ci/run"]
fn soak_100_concurrent_senders_for_60_seconds() {
    let sluice = Sluice::start(&tcp_and_udp());
    let addr = sluice.addr("tcp");
    let senders = 100;
    let per_sender = 600;
    let lines = corpus::mixed(per_sender, 3);
    let started = Instant::now();
    let threads: Vec<_> = (0..senders)
        .map(|s| {
            let lines = lines.clone();
            std::thread::spawn(move || {
                let mut stream = TcpStream::connect(addr).unwrap();
                for (i, line) in lines.iter().enumerate() {
                    // Paced: 600 messages over 60 s per sender, 1,000/s in all.
                    let due = started + Duration::from_millis(100 * i as u64);
                    if let Some(wait) = due.checked_duration_since(Instant::now()) {
                        std::thread::sleep(wait);
                    }
                    let framed =
                        format!("<134>1 2026-11-23T10:00:00Z sender-{s} soak {i} - - {line}");
                    write!(stream, "{} {framed}", framed.len()).unwrap();
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let events = exactly(&sluice, senders * per_sender);
    // Each sender's messages arrived once each, in order.
    let mut next = vec![0usize; senders];
    for e in &events {
        let host = e["sluice"]["syslog"]["hostname"].as_str().unwrap();
        let s: usize = host.trim_start_matches("sender-").parse().unwrap();
        let i: usize = e["sluice"]["syslog"]["procid"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap();
        assert_eq!(i, next[s], "sender {s} out of order");
        next[s] += 1;
    }
    assert!(next.iter().all(|&n| n == per_sender));
    assert_eq!(
        sluice.metric("sluice_connections_accepted_total", &[("listener", "tcp")]),
        senders as f64
    );
    let stopped = sluice.stop();
    assert!(stopped.status.success());
}
