//! The Kafka sink of a real `sluice run` against librdkafka's mock cluster (in this test
//! process, on real loopback sockets): routing, keys, headers, the dead-letter topic, and
//! fault injection (request errors, a broker down) with exact counts.
//! The same against a real broker is in tests/e2e_kafka.rs.

mod common;

use std::time::Duration;

use common::kafka::{consume, header, json, key};
use common::server::{tcp_send, Sluice};
use rdkafka::mocking::MockCluster;
use rdkafka::types::{RDKafkaApiKey, RDKafkaRespErr};

const WAIT: Duration = Duration::from_secs(30);

fn config(brokers: &str, sink_extra: &str) -> String {
    format!(
        "[[listener]]\nname = \"tcp\"\ntransport = \"tcp\"\naddress = \"127.0.0.1:0\"\n\n\
         [sink]\ntype = \"kafka\"\nbrokers = \"{brokers}\"\n{sink_extra}\n"
    )
}

#[test]
fn events_are_routed_keyed_and_labelled_and_bad_ones_dead_lettered() {
    let cluster = MockCluster::new(1).unwrap();
    let brokers = cluster.bootstrap_servers();
    for topic in [
        "siem.kaspersky_kata",
        "siem.perception_point",
        "sluice.deadletter",
    ] {
        cluster.create_topic(topic, 2, 1).unwrap();
    }
    let sluice = Sluice::start(&config(&brokers, "topic = \"siem.{sluice.grammar}\"\n"));
    let kata = common::server::seed_line("kaspersky_kata.log");
    let pp = common::server::seed_line("perception_point.log");
    let mut stream = String::new();
    for i in 0..10 {
        stream.push_str(&format!(
            "<134>1 2026-11-23T10:00:00Z kata-node-{} kata - - - {kata}\n",
            i % 2
        ));
        stream.push_str(&format!("<134>Feb  4 07:07:35 pp-relay {pp}\n"));
    }
    stream.push_str("<13>Jan 25 09:59:01 host app: no vendor format at all\n");
    stream.push_str("\u{1}\u{2}binary junk\n");
    tcp_send(sluice.addr("tcp"), stream.as_bytes());

    let kata_events = consume(&brokers, "siem.kaspersky_kata", 2, 10, WAIT);
    assert_eq!(kata_events.len(), 10);
    for m in &kata_events {
        let event = json(m);
        common::assert_valid(&event);
        assert_eq!(event["sluice"]["grammar"], "kaspersky_kata");
        // Keyed by the reporting host: one node, one partition, in order.
        let host = event["sluice"]["syslog"]["hostname"].as_str().unwrap();
        assert_eq!(key(m).as_deref(), Some(host));
        assert_eq!(
            header(m, "content-type").as_deref(),
            Some("application/json")
        );
        assert_eq!(header(m, "sluice-schema-version").as_deref(), Some("1"));
        assert_eq!(
            header(m, "sluice-grammar").as_deref(),
            Some("kaspersky_kata")
        );
        assert_eq!(
            header(m, "ocsf-class-uid"),
            event["class_uid"].as_i64().map(|c| c.to_string())
        );
    }
    let partitions: std::collections::BTreeMap<String, std::collections::BTreeSet<i32>> =
        kata_events.iter().fold(Default::default(), |mut acc, m| {
            use rdkafka::Message;
            acc.entry(key(m).unwrap())
                .or_default()
                .insert(m.partition());
            acc
        });
    assert!(partitions.values().all(|p| p.len() == 1), "{partitions:?}");

    assert_eq!(
        consume(&brokers, "siem.perception_point", 2, 10, WAIT).len(),
        10
    );
    let dead = consume(&brokers, "sluice.deadletter", 2, 2, WAIT);
    assert_eq!(dead.len(), 2);
    for m in &dead {
        let record = json(m);
        assert_eq!(record["status"], "unrecognised");
        assert_eq!(record["received"]["listener"], "tcp");
        assert!(record["received"]["peer"]
            .as_str()
            .unwrap()
            .starts_with("127.0.0.1:"));
        assert!(record["errors"][0]["code"].is_string());
        use base64::Engine;
        let raw = base64::engine::general_purpose::STANDARD
            .decode(record["raw_base64"].as_str().unwrap())
            .unwrap();
        assert!(stream
            .as_bytes()
            .windows(raw.len())
            .any(|w| w == raw.as_slice()));
        assert_eq!(
            header(m, "sluice-parse-status").as_deref(),
            Some("unrecognised")
        );
    }
    assert_eq!(
        sluice.wait_metric(
            "sluice_events_delivered_total",
            &[("topic", "siem.kaspersky_kata")],
            10.0
        ),
        10.0
    );
    assert_eq!(
        sluice.metric(
            "sluice_events_delivered_total",
            &[("topic", "siem.perception_point")]
        ),
        10.0
    );
    assert_eq!(
        sluice.metric(
            "sluice_events_dead_lettered_total",
            &[("topic", "sluice.deadletter")]
        ),
        2.0
    );
    let stopped = sluice.stop();
    assert!(stopped.status.success());
    let report = stopped
        .logs
        .iter()
        .find(|l| l["message"] == "stopped; everything accepted was written")
        .unwrap();
    assert_eq!(report["written"], 22);
}

#[test]
fn retriable_errors_and_a_broker_outage_lose_nothing_and_duplicate_nothing() {
    let cluster = MockCluster::new(3).unwrap();
    let brokers = cluster.bootstrap_servers();
    cluster.create_topic("sluice.events", 3, 3).unwrap();
    let sluice = Sluice::start(&config(
        &brokers,
        "properties = { \"retry.backoff.ms\" = \"50\" }\n",
    ));
    let addr = sluice.addr("tcp");
    let send = |from: usize, to: usize| tcp_send(addr, numbered(from, to).as_bytes());
    // Produce requests fail with retriable errors for a while.
    cluster.request_errors(
        RDKafkaApiKey::Produce,
        &[RDKafkaRespErr::RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS; 10],
    );
    send(0, 300);
    // Then every broker goes away while more arrive, and comes back.
    for b in 1..=3 {
        cluster.broker_down(b).unwrap();
    }
    send(300, 600);
    std::thread::sleep(Duration::from_secs(2));
    assert!(sluice.metric("sluice_events_delivered_total", &[]) < 600.0);
    for b in 1..=3 {
        cluster.broker_up(b).unwrap();
    }
    let messages = consume(&brokers, "sluice.events", 3, 600, Duration::from_secs(60));
    assert_eq!(
        sequence_numbers(&messages),
        (0..600).collect::<Vec<u64>>(),
        "each event exactly once"
    );
    assert_eq!(
        sluice.wait_metric("sluice_events_delivered_total", &[], 600.0),
        600.0
    );
    assert_eq!(sluice.metric("sluice_events_dropped_total", &[]), 0.0);
    assert!(sluice.stop().status.success());
}

#[test]
fn an_unknown_topic_is_a_counted_fatal_drop() {
    let cluster = MockCluster::new(1).unwrap();
    let brokers = cluster.bootstrap_servers();
    cluster
        .topic_error(
            "sluice.events",
            RDKafkaRespErr::RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART,
        )
        .unwrap();
    // librdkafka waits this long for a topic to appear before failing its messages (30 s by
    // default).
    let sluice = Sluice::start(&config(
        &brokers,
        "properties = { \"topic.metadata.propagation.max.ms\" = \"1000\" }\n",
    ));
    tcp_send(
        sluice.addr("tcp"),
        b"<134>1 2026-11-23T10:00:00Z h app - - - CEF:0|Acme|Probe|1.0|100|lost|3|src=192.0.2.1\n",
    );
    assert_eq!(
        sluice.wait_metric(
            "sluice_events_dropped_total",
            &[("reason", "unknown_topic")],
            1.0
        ),
        1.0
    );
    let logs = sluice.logs();
    assert!(
        logs.iter()
            .any(|l| l["reason"] == "unknown_topic" && l["level"] == "ERROR"),
        "{}",
        common::server::dump(&logs)
    );
}

#[test]
fn a_bad_librdkafka_property_stops_the_start() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sluice.toml");
    std::fs::write(
        &path,
        config(
            "127.0.0.1:1",
            "properties = { \"no.such.property\" = \"1\" }\n",
        ),
    )
    .unwrap();
    common::server::assert_start_fails(&path, "no.such.property");
}

#[test]
fn not_ready_while_no_broker_is_reachable() {
    let cluster = MockCluster::new(1).unwrap();
    let brokers = cluster.bootstrap_servers();
    cluster.create_topic("sluice.events", 1, 1).unwrap();
    let sluice = Sluice::start(&config(&brokers, ""));
    let line =
        b"<134>1 2026-11-23T10:00:00Z h app - - - CEF:0|Acme|Probe|1.0|100|x|3|src=192.0.2.1\n";
    tcp_send(sluice.addr("tcp"), line);
    sluice.wait_metric("sluice_events_delivered_total", &[], 1.0);
    assert_eq!(sluice.get("/readyz").0, 200);
    cluster.broker_down(1).unwrap();
    tcp_send(sluice.addr("tcp"), line);
    let started = std::time::Instant::now();
    let (status, body) = loop {
        let (status, body) = sluice.get("/readyz");
        if status != 200 || started.elapsed() > WAIT {
            break (status, body);
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(status, 503);
    let body: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(body["status"], "not_ready");
    assert!(
        body["reasons"][0]
            .as_str()
            .unwrap()
            .contains("no Kafka broker is reachable"),
        "{body}"
    );
    cluster.broker_up(1).unwrap();
    assert_eq!(
        sluice.wait_metric("sluice_events_delivered_total", &[], 2.0),
        2.0
    );
    assert_eq!(sluice.get("/readyz").0, 200);
}

fn numbered(from: usize, to: usize) -> String {
    (from..to)
        .map(|i| format!("<134>1 2026-11-23T10:00:00Z host-{} app - - - CEF:0|Acme|Probe|1.0|100|n={i}|3|cs1={i}\n", i % 5))
        .collect()
}

/// The numbers of `numbered` messages, in the order they were consumed.
fn numbers_in_order(messages: &[rdkafka::message::OwnedMessage]) -> Vec<u64> {
    messages
        .iter()
        .map(|m| {
            json(m)["unmapped"]["cef"]["cs1"]
                .as_str()
                .unwrap()
                .parse()
                .unwrap()
        })
        .collect()
}

fn sequence_numbers(messages: &[rdkafka::message::OwnedMessage]) -> Vec<u64> {
    let mut seen = numbers_in_order(messages);
    seen.sort();
    seen
}

/// Waits (bounded by WAIT) until `done` holds; fails with `what` otherwise.
fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let started = std::time::Instant::now();
    while !done() {
        assert!(started.elapsed() < WAIT, "{what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn wait_not_ready(sluice: &Sluice) {
    wait_until("never saw the brokers go down", || {
        sluice.get("/readyz").0 != 200
    });
}

#[test]
fn events_wait_in_the_spool_while_the_broker_is_away() {
    let cluster = MockCluster::new(1).unwrap();
    let brokers = cluster.bootstrap_servers();
    cluster.create_topic("sluice.events", 1, 1).unwrap();
    let spool = tempfile::tempdir().unwrap();
    let sluice = Sluice::start(&config(
        &brokers,
        &format!("spool_dir = \"{}\"\n", spool.path().display()),
    ));
    let addr = sluice.addr("tcp");
    tcp_send(addr, numbered(0, 300).as_bytes());
    sluice.wait_metric("sluice_events_delivered_total", &[], 300.0);
    cluster.broker_down(1).unwrap();
    wait_not_ready(&sluice);
    tcp_send(addr, numbered(300, 600).as_bytes());
    assert_eq!(
        sluice.wait_metric("sluice_events_spooled_total", &[], 300.0),
        300.0
    );
    assert!(sluice.metric("sluice_spool_bytes", &[]) > 0.0);
    // The oldest spooled event ages while it waits.
    wait_until("the spool's oldest event does not age", || {
        sluice.metric("sluice_spool_oldest_event_age_seconds", &[]) >= 1.0
    });
    cluster.broker_up(1).unwrap();
    assert_eq!(
        sluice.wait_metric("sluice_events_delivered_total", &[], 600.0),
        600.0
    );
    assert_eq!(sluice.metric("sluice_events_replayed_total", &[]), 300.0);
    let messages = consume(&brokers, "sluice.events", 1, 600, WAIT);
    assert_eq!(
        sequence_numbers(&messages),
        (0..600).collect::<Vec<u64>>(),
        "each once"
    );
    // Order per key (one partition here, so overall) is kept across the outage.
    let in_order = numbers_in_order(&messages);
    assert!(in_order.windows(2).all(|w| w[0] < w[1]), "out of order");
    sluice.wait_metric("sluice_spool_records", &[], 0.0);
    wait_until("an empty spool has no oldest event", || {
        sluice.metric("sluice_spool_oldest_event_age_seconds", &[]) == 0.0
    });
    assert!(sluice.stop().status.success());
}

#[test]
fn the_spool_survives_kill_9_and_is_replayed_at_the_next_start() {
    let cluster = MockCluster::new(1).unwrap();
    let brokers = cluster.bootstrap_servers();
    cluster.create_topic("sluice.events", 1, 1).unwrap();
    let spool = tempfile::tempdir().unwrap();
    let sink = format!(
        "spool_dir = \"{}\"\nspool_fsync = \"never\"\n",
        spool.path().display()
    );
    cluster.broker_down(1).unwrap();
    let first = Sluice::start(&config(&brokers, &sink));
    wait_not_ready(&first);
    tcp_send(first.addr("tcp"), numbered(0, 500).as_bytes());
    assert_eq!(
        first.wait_metric("sluice_events_spooled_total", &[], 500.0),
        500.0
    );
    // No goodbye: the process dies between two writes.
    first.signal(libc::SIGKILL);
    drop(first);
    cluster.broker_up(1).unwrap();
    let second = Sluice::start(&config(&brokers, &sink));
    let recovered = second
        .logs()
        .into_iter()
        .find(|l| {
            l["message"]
                .as_str()
                .is_some_and(|m| m.starts_with("spool holds events"))
        })
        .expect("a recovery report");
    assert_eq!(recovered["records"], 500);
    assert_eq!(
        second.wait_metric("sluice_events_delivered_total", &[], 500.0),
        500.0
    );
    let messages = consume(&brokers, "sluice.events", 1, 500, WAIT);
    let seen = sequence_numbers(&messages);
    let unique: std::collections::BTreeSet<u64> = seen.iter().copied().collect();
    assert_eq!(unique, (0..500).collect(), "nothing lost");
    eprintln!("duplicates after kill -9: {}", seen.len() - unique.len());
    assert!(second.stop().status.success());
}

#[test]
fn a_full_spool_drops_its_oldest_events_and_counts_every_one() {
    let cluster = MockCluster::new(1).unwrap();
    let brokers = cluster.bootstrap_servers();
    cluster.create_topic("sluice.events", 1, 1).unwrap();
    let spool = tempfile::tempdir().unwrap();
    cluster.broker_down(1).unwrap();
    let sluice = Sluice::start(&config(
        &brokers,
        &format!(
            "spool_dir = \"{}\"\nspool_max_bytes = 40000\nspool_full = \"drop_oldest\"\n",
            spool.path().display()
        ),
    ));
    wait_not_ready(&sluice);
    tcp_send(sluice.addr("tcp"), numbered(0, 300).as_bytes());
    let dropped = sluice.wait_metric(
        "sluice_events_dropped_total",
        &[("reason", "spool_full")],
        1.0,
    );
    assert!(dropped > 0.0);
    cluster.broker_up(1).unwrap();
    // Every event is either delivered or counted as dropped, and the newest survive.
    let started = std::time::Instant::now();
    loop {
        let delivered = sluice.metric("sluice_events_delivered_total", &[]);
        let dropped = sluice.metric("sluice_events_dropped_total", &[("reason", "spool_full")]);
        if delivered + dropped >= 300.0 || started.elapsed() > WAIT {
            assert_eq!(
                delivered + dropped,
                300.0,
                "delivered {delivered}, dropped {dropped}"
            );
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let delivered = sluice.metric("sluice_events_delivered_total", &[]) as usize;
    let seen = sequence_numbers(&consume(&brokers, "sluice.events", 1, delivered, WAIT));
    assert_eq!(seen.len(), delivered);
    assert_eq!(seen.last(), Some(&299));
}

#[test]
fn a_full_spool_holds_the_senders_back_and_loses_nothing() {
    let cluster = MockCluster::new(1).unwrap();
    let brokers = cluster.bootstrap_servers();
    cluster.create_topic("sluice.events", 1, 1).unwrap();
    let spool = tempfile::tempdir().unwrap();
    cluster.broker_down(1).unwrap();
    let sluice = Sluice::start(&format!(
        "[general]\nqueue_capacity = 64\n{}",
        config(
            &brokers,
            &format!(
                "spool_dir = \"{}\"\nspool_max_bytes = 40000\n",
                spool.path().display()
            ),
        )
    ));
    wait_not_ready(&sluice);
    let addr = sluice.addr("tcp");
    // More than sluice holds in memory between the listener and a stalled sink (the queue,
    // and the sink's channel of deliveries of up to 256 KiB each): with 2,000 messages the
    // parse workers' gathered deliveries took them all and the sender finished.
    const SENT: usize = 12_000;
    let sender = std::thread::spawn(move || tcp_send(addr, numbered(0, SENT).as_bytes()));
    // The spool fills, the sink waits, the queue fills, and the listener stops reading.
    let started = std::time::Instant::now();
    loop {
        let (_, body) = sluice.get("/readyz");
        if body.contains("the spool is full") {
            break;
        }
        assert!(started.elapsed() < WAIT, "the spool never filled: {body}");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(!sender.is_finished(), "the sender was not held back");
    cluster.broker_up(1).unwrap();
    sender.join().unwrap();
    assert_eq!(
        sluice.wait_metric("sluice_events_delivered_total", &[], SENT as f64),
        SENT as f64
    );
    assert_eq!(sluice.metric("sluice_events_dropped_total", &[]), 0.0);
    let seen = sequence_numbers(&consume(&brokers, "sluice.events", 1, SENT, WAIT));
    assert_eq!(seen, (0..SENT as u64).collect::<Vec<u64>>());
}

/// The S3 source records an object as done when its receipt settles: through Kafka that
/// must be on the broker's acknowledgement of every event, not on handing them to
/// librdkafka. With the only broker down nothing settles; once it is back, all do.
#[test]
fn a_receipt_settles_only_when_kafka_acknowledged_every_event() {
    use sluice::sink::{kafka::KafkaSink, Delivery, Sink};
    use sluice::source::Receipt;
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
    use std::sync::Arc;

    let cluster = MockCluster::new(1).unwrap();
    cluster.create_topic("sluice.events", 1, 1).unwrap();
    let kafka = sluice::config::Kafka::new(&cluster.bootstrap_servers());
    let router = kafka.router().unwrap();
    let written = Arc::new(AtomicU64::new(0));
    let mut sink = KafkaSink::new(
        &kafka.client_config(),
        written.clone(),
        sluice::telemetry::Health::new(),
        None,
    )
    .unwrap();
    let done = Arc::new(AtomicBool::new(false));
    let flag = done.clone();
    let receipt = Receipt::new(move || flag.store(true, Ordering::SeqCst));
    cluster.broker_down(1).unwrap();
    for i in 0..3 {
        let event = serde_json::json!({"sluice": {"grammar": "json"}, "n": i});
        let mut delivery = Delivery::new();
        delivery.push_payload(
            &serde_json::to_vec(&event).unwrap(),
            sluice::Status::Ok,
            0,
            Some(router.route(
                &sluice::event::Node::from(event.clone()),
                sluice::Status::Ok,
            )),
            Some(receipt.share()),
        );
        sink.write(&delivery).unwrap();
    }
    // The reader is done with the object: only the deliveries keep it open.
    receipt.settle();
    std::thread::sleep(Duration::from_millis(1500));
    assert!(
        !done.load(Ordering::SeqCst),
        "settled with no broker to acknowledge"
    );
    assert_eq!(written.load(Ordering::SeqCst), 0);
    cluster.broker_up(1).unwrap();
    wait_until("not settled after the broker came back", || {
        done.load(Ordering::SeqCst)
    });
    assert_eq!(written.load(Ordering::SeqCst), 3);
    sink.close(Duration::from_secs(5)).unwrap();
    let events = consume(&cluster.bootstrap_servers(), "sluice.events", 1, 3, WAIT);
    assert_eq!(events.len(), 3);
}
