//! Metrics of a real `sluice run`, scraped over HTTP: the exact counters that good, partial
//! and garbage messages over TCP and UDP move; and every metric name that the Grafana
//! dashboards and the Prometheus alert rules use exists in a real scrape, so renaming a
//! metric without updating them fails the build.

mod common;

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use common::server::{tcp_send, udp_send, Sluice};
use rdkafka::mocking::MockCluster;

const WAIT: Duration = Duration::from_secs(20);

/// A KATA heartbeat from its own host.
const HEARTBEAT: &str = "<14>1 2026-11-23T10:00:00Z kata-node-1 KATA - - - CEF:0|AO Kaspersky Lab| Kaspersky Anti Targeted Attack Platform |5.0.0-5201|heartbeat| Heartbeat|0|eventId=77";

fn listeners() -> &'static str {
    "[heartbeats]\nkaspersky_kata = \"5m\"\n\n[[listener]]\nname = \"tcp\"\ntransport = \"tcp\"\naddress = \"127.0.0.1:0\"\n\n\
     [[listener]]\nname = \"udp\"\ntransport = \"udp\"\naddress = \"127.0.0.1:0\"\n\n\
     [[listener]]\nname = \"tls\"\ntransport = \"tls\"\naddress = \"127.0.0.1:0\"\n"
}

/// Drives every path that moves a metric: good, partial and unrecognised messages over TCP
/// and UDP, plaintext on the TLS port. Returns the scrape.
fn exercise(sluice: &Sluice) -> String {
    let kata = common::server::seed_line("kaspersky_kata.log");
    let pp = common::server::seed_line("perception_point.log");
    tcp_send(
        sluice.addr("tcp"),
        format!("{kata}\n{HEARTBEAT}\n{kata}\nnot a vendor format\n").as_bytes(),
    );
    // Cut by the end of the connection: partial.
    tcp_send(sluice.addr("tcp"), kata.as_bytes());
    udp_send(sluice.addr("udp"), &[pp.as_bytes(), b"garbage \xff\xfe"]);
    let mut plain = TcpStream::connect(sluice.addr("tls")).unwrap();
    plain
        .write_all(b"<13>Jan 25 09:59:01 host app: plaintext\n")
        .unwrap();
    plain.set_read_timeout(Some(WAIT)).unwrap();
    let _ = plain.read(&mut [0u8; 64]);
    sluice.wait_metric(
        "sluice_tls_handshake_failures_total",
        &[("reason", "not_tls")],
        1.0,
    );
    sluice.wait_metric("sluice_parse_total", &[], 7.0);
    sluice.scrape()
}

fn tls_section(pki: &common::pki::Pki) -> String {
    format!(
        "\n[listener.tls]\ncert = \"{}\"\nkey = \"{}\"\n",
        pki.path("server.pem"),
        pki.path("server.key")
    )
}

#[test]
fn counters_move_exactly_for_good_partial_and_garbage_input() {
    let pki = common::pki::Pki::new();
    let cluster = MockCluster::new(1).unwrap();
    let brokers = cluster.bootstrap_servers();
    let config = format!(
        "{}{}\n[sink]\ntype = \"kafka\"\nbrokers = \"{brokers}\"\n",
        listeners(),
        tls_section(&pki)
    );
    let sluice = Sluice::start(&config);
    let scrape = exercise(&sluice);
    let value =
        |name: &str, labels: &[(&str, &str)]| common::server::metric_value(&scrape, name, labels);
    assert_eq!(
        value(
            "sluice_messages_received_total",
            &[("listener", "tcp"), ("transport", "tcp")]
        ),
        5.0
    );
    assert_eq!(
        value(
            "sluice_messages_received_total",
            &[("listener", "udp"), ("transport", "udp")]
        ),
        2.0
    );
    assert_eq!(
        value("sluice_connections_accepted_total", &[("listener", "tcp")]),
        2.0
    );
    assert_eq!(
        value("sluice_connections_accepted_total", &[("listener", "tls")]),
        1.0
    );
    assert_eq!(
        value(
            "sluice_parse_total",
            &[("grammar", "kaspersky_kata"), ("status", "ok")]
        ),
        3.0
    );
    assert_eq!(
        value(
            "sluice_parse_total",
            &[("grammar", "kaspersky_kata"), ("status", "partial")]
        ),
        1.0
    );
    assert_eq!(
        value(
            "sluice_parse_total",
            &[("grammar", "perception_point"), ("status", "ok")]
        ),
        1.0
    );
    assert_eq!(
        value(
            "sluice_parse_total",
            &[("grammar", "none"), ("status", "unrecognised")]
        ),
        2.0
    );
    assert_eq!(
        value(
            "sluice_parse_errors_total",
            &[("grammar", "kaspersky_kata"), ("code", "message_truncated")]
        ),
        1.0
    );
    assert_eq!(
        value(
            "sluice_parse_errors_total",
            &[("grammar", "none"), ("code", "unrecognised_format")]
        ),
        2.0
    );
    assert_eq!(
        value(
            "sluice_parse_errors_total",
            &[("grammar", "none"), ("code", "invalid_utf8")]
        ),
        1.0
    );
    assert_eq!(
        value(
            "sluice_messages_truncated_total",
            &[("listener", "tcp"), ("reason", "connection_closed")]
        ),
        1.0
    );
    assert_eq!(
        value(
            "sluice_tls_handshake_failures_total",
            &[("listener", "tls"), ("reason", "not_tls")]
        ),
        1.0
    );
    // Five events to the main topic, two dead letters, once the broker acknowledged them.
    assert_eq!(
        sluice.wait_metric(
            "sluice_events_delivered_total",
            &[("topic", "sluice.events")],
            5.0
        ),
        5.0
    );
    assert_eq!(
        sluice.wait_metric(
            "sluice_events_dead_lettered_total",
            &[("topic", "sluice.deadletter")],
            2.0
        ),
        2.0
    );
    assert_eq!(
        sluice.metric("sluice_kafka_delivery_seconds_count", &[]),
        7.0
    );
    assert_eq!(sluice.metric("sluice_events_dropped_total", &[]), 0.0);
    // Per source: grammar and reporting host (the syslog hostname here, or the peer).
    assert_eq!(
        value(
            "sluice_source_messages_total",
            &[("grammar", "kaspersky_kata")]
        ),
        4.0
    );
    assert_eq!(
        value(
            "sluice_source_messages_total",
            &[("grammar", "none"), ("source", "127.0.0.1")]
        ),
        2.0
    );
    let last_seen = value(
        "sluice_source_last_seen_timestamp_seconds",
        &[("grammar", "perception_point")],
    );
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    assert!(
        (now - last_seen).abs() < 60.0,
        "last seen {last_seen}, now {now}"
    );
    // The heartbeat: its source's last-heartbeat time, and the configured interval. Sources
    // that sent no heartbeat have no heartbeat series.
    let heartbeat = value(
        "sluice_source_last_heartbeat_timestamp_seconds",
        &[("grammar", "kaspersky_kata"), ("source", "kata-node-1")],
    );
    assert!((now - heartbeat).abs() < 60.0, "heartbeat {heartbeat}");
    assert_eq!(
        scrape
            .lines()
            .filter(|l| l.starts_with("sluice_source_last_heartbeat_timestamp_seconds{"))
            .count(),
        1,
        "{scrape}"
    );
    assert_eq!(
        value(
            "sluice_heartbeat_interval_seconds",
            &[("grammar", "kaspersky_kata")]
        ),
        300.0
    );
    // Zero series exist before anything happens, for alerts to watch.
    assert!(scrape.contains("sluice_events_dropped_total{reason=\"unknown_topic\"} 0"));
    assert!(scrape.contains(
        "sluice_udp_datagrams_dropped_total{listener=\"udp\",reason=\"kernel_buffer_full\"} 0"
    ));
}

/// `sluice_…` names in a text, with a histogram's `_bucket`/`_sum`/`_count` kept as written.
fn metric_names(text: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let bytes = text.as_bytes();
    let mut i = 0;
    while let Some(at) = text[i..].find("sluice_") {
        let start = i + at;
        let end = start
            + text[start..]
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(text.len() - start);
        // Not part of a longer identifier (e.g. a label value such as "my_sluice_x").
        if start == 0 || !(bytes[start - 1].is_ascii_alphanumeric() || bytes[start - 1] == b'_') {
            names.insert(text[start..end].to_string());
        }
        i = end;
    }
    names
}

#[test]
fn every_metric_in_the_dashboards_and_alerts_exists_in_a_real_scrape() {
    let root = common::repo_root();
    let mut used = BTreeSet::new();
    let mut files = vec![root.join("deploy/prometheus/alerts.yml")];
    for entry in std::fs::read_dir(root.join("dashboards")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "json") {
            files.push(path);
        }
    }
    for f in &files {
        let text = std::fs::read_to_string(f).unwrap();
        // Only expressions: in the dashboards, the `expr` and `query` strings.
        if f.extension().is_some_and(|e| e == "json") {
            let json: serde_json::Value = serde_json::from_str(&text).unwrap();
            let mut exprs = Vec::new();
            collect_strings(&json, &["expr", "query", "definition"], &mut exprs);
            for e in exprs {
                used.extend(metric_names(&e));
            }
        } else {
            for line in text.lines().filter(|l| !l.trim_start().starts_with('#')) {
                if !line.contains("summary:") && !line.contains("description:") {
                    used.extend(metric_names(line));
                }
            }
        }
    }
    assert!(used.len() > 15, "found only {used:?}");

    // Scrapes of a Kafka-sink and of a stdout-sink sluice, together.
    let pki = common::pki::Pki::new();
    let cluster = MockCluster::new(1).unwrap();
    let spool = tempfile::tempdir().unwrap();
    let kafka_config = format!(
        "{}{}\n[sink]\ntype = \"kafka\"\nbrokers = \"{}\"\nspool_dir = \"{}\"\n",
        listeners(),
        tls_section(&pki),
        cluster.bootstrap_servers(),
        spool.path().display()
    );
    // With an S3 source whose endpoint refuses connections: its series exist from the start,
    // and its listing (retried) must not hold up the stop.
    let state = tempfile::tempdir().unwrap();
    let closed_port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let stdout_config = format!(
        "[general]\nstate_dir = \"{}\"\n{}{}\n[[s3]]\nname = \"exports\"\nbucket = \"b\"\n\
         endpoint = \"http://127.0.0.1:{closed_port}\"\naccess_key_id = \"k\"\nsecret_access_key = \"s\"\n",
        state.path().display(),
        listeners(),
        tls_section(&pki)
    );
    let mut scraped = BTreeSet::new();
    for config in [kafka_config, stdout_config] {
        let sluice = Sluice::start(&config);
        let mut scrape = exercise(&sluice);
        if config.contains("kafka") {
            sluice.wait_metric("sluice_events_delivered_total", &[], 4.0);
            sluice.wait_metric("sluice_events_dead_lettered_total", &[], 2.0);
            scrape = sluice.scrape();
        }
        for line in scrape
            .lines()
            .filter(|l| !l.starts_with('#') && !l.is_empty())
        {
            let name = line.split(['{', ' ']).next().unwrap();
            scraped.insert(name.to_string());
        }
    }
    let missing: Vec<&String> = used.difference(&scraped).collect();
    assert!(
        missing.is_empty(),
        "used by dashboards/alerts but not exported: {missing:?}\nexported: {scraped:?}"
    );
}

fn collect_strings(value: &serde_json::Value, keys: &[&str], out: &mut Vec<String>) {
    match value {
        serde_json::Value::Object(map) => {
            for (k, v) in map {
                match v {
                    serde_json::Value::String(s) if keys.contains(&k.as_str()) => {
                        out.push(s.clone())
                    }
                    other => collect_strings(other, keys, out),
                }
            }
        }
        serde_json::Value::Array(items) => {
            for item in items {
                collect_strings(item, keys, out);
            }
        }
        _ => {}
    }
}

#[test]
fn metric_names_are_found_in_expressions() {
    assert_eq!(
        metric_names("sum by (le) (rate(sluice_kafka_delivery_seconds_bucket{instance=~\"$i\"}[5m])) / my_sluice_x"),
        BTreeSet::from(["sluice_kafka_delivery_seconds_bucket".to_string()])
    );
}

/// With the metrics endpoint off, histograms still record a sample per message, so their
/// upkeep must run without it: it did not, and memory grew by about 29 bytes a message for
/// as long as sluice ran. The upkeep thread must exist in the real process.
#[test]
fn histograms_are_kept_up_with_the_metrics_endpoint_off() {
    let sluice = Sluice::start_without_metrics(
        "[[listener]]\nname = \"tcp\"\ntransport = \"tcp\"\naddress = \"127.0.0.1:0\"\n",
    );
    assert!(sluice.metrics.is_none());
    let kata = common::server::seed_line("kaspersky_kata.log");
    tcp_send(sluice.addr("tcp"), format!("{kata}\n").as_bytes());
    assert_eq!(sluice.wait_events(1, WAIT).len(), 1);
    let threads: Vec<String> = std::fs::read_dir(format!("/proc/{}/task", sluice.pid()))
        .unwrap()
        .map(|task| {
            let comm = task.unwrap().path().join("comm");
            std::fs::read_to_string(comm).unwrap().trim().to_string()
        })
        .collect();
    assert!(
        threads
            .iter()
            .any(|t| t == sluice::telemetry::UPKEEP_THREAD),
        "no {} thread among {threads:?}",
        sluice::telemetry::UPKEEP_THREAD
    );
    let stopped = sluice.stop();
    assert!(stopped.status.success(), "{:?}", stopped.status);
}
