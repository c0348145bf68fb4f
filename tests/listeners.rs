//! `sluice run` over real loopback sockets: framing modes, truncation, UDP, allowlists,
//! connection limits, timeouts, back-pressure, pinned grammars and tags, shutdown.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use common::server::{raw, tcp_send, udp_send, Sluice};
use serde_json::Value;

const WAIT: Duration = Duration::from_secs(20);

fn listener(name: &str, transport: &str, extra: &str) -> String {
    format!(
        "[[listener]]\nname = \"{name}\"\ntransport = \"{transport}\"\naddress = \"127.0.0.1:0\"\n{extra}\n"
    )
}

/// Each connection's (or sender's) event texts, in arrival order; the groups sorted.
fn by_peer(events: &[Value]) -> Vec<Vec<String>> {
    let mut groups: Vec<(String, Vec<String>)> = Vec::new();
    for e in events {
        let peer = e["sluice"]["received"]["peer"]
            .as_str()
            .unwrap()
            .to_string();
        let text = e["raw_data"].as_str().unwrap().to_string();
        match groups.iter_mut().find(|(p, _)| *p == peer) {
            Some((_, texts)) => texts.push(text),
            None => groups.push((peer, vec![text])),
        }
    }
    let mut groups: Vec<Vec<String>> = groups.into_iter().map(|(_, t)| t).collect();
    groups.sort();
    groups
}

fn assert_all_valid(events: &[Value]) {
    for e in events {
        common::assert_valid(e);
    }
}

#[test]
fn tcp_framing_modes_each_connection_in_order() {
    let sluice = Sluice::start(&listener("tcp", "tcp", ""));
    let addr = sluice.addr("tcp");
    let lines: Vec<String> = (0..20)
        .map(|i| format!("<13>Jan 25 09:59:01 host app: line {i}"))
        .collect();
    let newline: String = lines.iter().map(|l| format!("{l}\n")).collect();
    let crlf: String = lines.iter().map(|l| format!("{l}\r\n")).collect();
    let nul: String = lines.iter().map(|l| format!("{l}\0")).collect();
    let counted: String = lines.iter().map(|l| format!("{} {l}", l.len())).collect();
    for stream in [&newline, &crlf, &nul, &counted] {
        tcp_send(addr, stream.as_bytes());
    }
    let events = sluice.wait_events(80, WAIT);
    assert_eq!(events.len(), 80);
    // Four connections, each in its own framing, each in order.
    assert_eq!(by_peer(&events), vec![lines.clone(); 4]);
    assert!(events
        .iter()
        .all(|e| e["sluice"]["received"]["transport"] == "tcp"));
    assert_all_valid(&events);
    let stopped = sluice.stop();
    assert!(stopped.status.success());
}

#[test]
fn over_long_frames_are_cut_flagged_and_the_stream_resynchronises() {
    let sluice = Sluice::start(&listener("tcp", "tcp", "max_message_bytes = 512"));
    let addr = sluice.addr("tcp");
    let long = format!("<13>Jan 25 09:59:01 host app: {}", "x".repeat(2000));
    let good = "<13>Jan 25 09:59:01 host app: after";
    tcp_send(addr, format!("{long}\n{good}\n").as_bytes());
    tcp_send(
        addr,
        format!("{} {long}{} {good}", long.len(), good.len()).as_bytes(),
    );
    let events = sluice.wait_events(4, WAIT);
    assert_eq!(events.len(), 4, "{events:#?}");
    for connection in by_peer(&events) {
        let [cut, after] = &connection[..] else {
            panic!("{connection:?}")
        };
        assert_eq!(cut.len(), 512);
        assert!(long.starts_with(cut.as_str()));
        assert_eq!(after, good);
    }
    for e in events.iter().filter(|e| e["raw_data"] != good) {
        assert_eq!(
            e["sluice"]["parse"]["errors"][0]["code"],
            "message_truncated"
        );
        assert_eq!(e["metadata"]["is_truncated"], true);
    }
    assert_eq!(
        sluice.metric(
            "sluice_messages_truncated_total",
            &[("listener", "tcp"), ("reason", "too_long")]
        ),
        2.0
    );
    assert_eq!(
        sluice.metric("sluice_bytes_discarded_total", &[("listener", "tcp")]),
        2.0 * (long.len() - 512) as f64
    );
    assert_all_valid(&events);
}

#[test]
fn partial_frame_at_close_is_kept_as_truncated() {
    let sluice = Sluice::start(&listener("tcp", "tcp", ""));
    let addr = sluice.addr("tcp");
    tcp_send(
        addr,
        b"<13>Jan 25 09:59:01 host app: whole\n<13>Jan 25 09:59:01 host app: half",
    );
    tcp_send(addr, b"100 <13>Jan 25 09:59:01 host app: counted but short");
    let events = sluice.wait_events(3, WAIT);
    let mut expected = vec![
        vec!["<13>Jan 25 09:59:01 host app: counted but short".to_string()],
        vec![
            "<13>Jan 25 09:59:01 host app: whole".to_string(),
            "<13>Jan 25 09:59:01 host app: half".to_string(),
        ],
    ];
    expected.sort();
    assert_eq!(by_peer(&events), expected);
    for e in &events {
        let whole = e["raw_data"].as_str().unwrap().ends_with("whole");
        assert_eq!(
            e["metadata"]["is_truncated"].as_bool().unwrap_or(false),
            !whole,
            "{e}"
        );
    }
    assert_eq!(
        sluice.metric(
            "sluice_messages_truncated_total",
            &[("listener", "tcp"), ("reason", "connection_closed")]
        ),
        2.0
    );
}

#[test]
fn udp_datagrams_one_message_each_and_long_ones_cut() {
    let sluice = Sluice::start(&listener(
        "udp",
        "udp",
        "max_message_bytes = 1024\nsockets = 2\nreceive_buffer_bytes = 1048576",
    ));
    let addr = sluice.addr("udp");
    let pp = common::server::seed_line("perception_point.log");
    let long = format!("<13>Jan 25 09:59:01 host app: {}", "y".repeat(3000));
    let with_newline = "<13>Jan 25 09:59:01 host app: trailing newline\n";
    udp_send(
        addr,
        &[pp.as_bytes(), long.as_bytes(), with_newline.as_bytes()],
    );
    let events = sluice.wait_events(3, WAIT);
    assert_eq!(events.len(), 3);
    let pp_event = &events[0];
    assert_eq!(pp_event["sluice"]["grammar"], "perception_point");
    assert_eq!(pp_event["sluice"]["received"]["transport"], "udp");
    assert!(pp_event["sluice"]["received"]["peer"]
        .as_str()
        .unwrap()
        .starts_with("127.0.0.1:"));
    assert_eq!(events[1]["raw_data"].as_str().unwrap().len(), 1024);
    assert_eq!(events[1]["metadata"]["is_truncated"], true);
    assert_eq!(
        events[2]["raw_data"],
        "<13>Jan 25 09:59:01 host app: trailing newline"
    );
    assert_eq!(
        sluice.metric(
            "sluice_messages_received_total",
            &[("listener", "udp"), ("transport", "udp")]
        ),
        3.0
    );
    assert_all_valid(&events);
}

/// A burst is read many datagrams per recvmmsg call: each must come out whole, once, in the
/// order sent, whatever its size relative to the others in the same call.
#[test]
fn a_udp_burst_arrives_whole_and_in_order() {
    let sluice = Sluice::start(&listener(
        "udp",
        "udp",
        "max_message_bytes = 2048\nreceive_buffer_bytes = 4194304",
    ));
    let addr = sluice.addr("udp");
    let sent: Vec<String> = (0..300)
        .map(|i| {
            format!(
                "<13>Jan 25 09:59:01 host app: n={i} {}",
                "x".repeat((i * 37) % 1900)
            )
        })
        .collect();
    let datagrams: Vec<&[u8]> = sent.iter().map(|s| s.as_bytes()).collect();
    udp_send(addr, &datagrams);
    let events = sluice.wait_events(sent.len(), WAIT);
    assert_eq!(common::server::raw(&events), sent);
    assert!(events
        .iter()
        .all(|e| e["metadata"]["is_truncated"].is_null()));
}

/// `sender_order = false` spreads one sender over the workers: nothing is lost or doubled,
/// though batches may be written out of order.
#[test]
fn a_udp_sender_spread_over_workers_loses_nothing() {
    let config = "[general]\nworkers = 2\n".to_string()
        + &listener(
            "udp",
            "udp",
            "receive_buffer_bytes = 4194304\nsender_order = false",
        );
    let sluice = Sluice::start(&config);
    let addr = sluice.addr("udp");
    let mut sent: Vec<String> = (0..2000)
        .map(|i| format!("<13>Jan 25 09:59:01 host app: n={i}"))
        .collect();
    let datagrams: Vec<&[u8]> = sent.iter().map(|s| s.as_bytes()).collect();
    udp_send(addr, &datagrams);
    let events = sluice.wait_events(sent.len(), WAIT);
    let mut written = common::server::raw(&events);
    written.sort();
    sent.sort();
    assert_eq!(written, sent);
}

#[test]
fn allowlist_refuses_and_counts_other_sources() {
    let config = listener("tcp", "tcp", "allow = [\"127.0.0.2/32\"]")
        + &listener("udp", "udp", "allow = [\"127.0.0.2\"]");
    let sluice = Sluice::start(&config);
    let (tcp, udp) = (sluice.addr("tcp"), sluice.addr("udp"));
    // From 127.0.0.1: refused.
    let mut refused = TcpStream::connect(tcp).unwrap();
    refused
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut buf = [0u8; 16];
    let _ = refused.write_all(b"<13>Jan 25 09:59:01 host app: refused\n");
    assert_eq!(refused.read(&mut buf).unwrap_or(0), 0, "closed at once");
    udp_send(udp, &[b"<13>Jan 25 09:59:01 host app: refused"]);
    // From 127.0.0.2: accepted.
    let client = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    client
        .bind(&"127.0.0.2:0".parse::<SocketAddr>().unwrap().into())
        .unwrap();
    client.connect(&tcp.into()).unwrap();
    let mut allowed: TcpStream = client.into();
    allowed
        .write_all(b"<13>Jan 25 09:59:01 host app: allowed tcp\n")
        .unwrap();
    drop(allowed);
    let u = std::net::UdpSocket::bind("127.0.0.2:0").unwrap();
    u.send_to(b"<13>Jan 25 09:59:01 host app: allowed udp", udp)
        .unwrap();
    let events = sluice.wait_events(2, WAIT);
    let mut texts = raw(&events);
    texts.sort();
    assert_eq!(
        texts,
        vec![
            "<13>Jan 25 09:59:01 host app: allowed tcp",
            "<13>Jan 25 09:59:01 host app: allowed udp"
        ]
    );
    assert_eq!(
        sluice.wait_metric(
            "sluice_connections_refused_total",
            &[("listener", "tcp"), ("reason", "allowlist")],
            1.0
        ),
        1.0
    );
    assert_eq!(
        sluice.metric(
            "sluice_datagrams_refused_total",
            &[("listener", "udp"), ("reason", "allowlist")]
        ),
        1.0
    );
}

#[test]
fn connection_limits_per_ip_and_global() {
    let config = "[limits]\nmax_connections = 3\nmax_connections_per_ip = 2\n".to_string()
        + &listener("tcp", "tcp", "");
    let sluice = Sluice::start(&config);
    let addr = sluice.addr("tcp");
    let open: Vec<TcpStream> = (0..2).map(|_| TcpStream::connect(addr).unwrap()).collect();
    sluice.wait_metric("sluice_connections_open", &[("listener", "tcp")], 2.0);
    let mut third = TcpStream::connect(addr).unwrap();
    common::server::assert_closed_by_sluice(&mut third);
    assert_eq!(
        sluice.wait_metric(
            "sluice_connections_refused_total",
            &[("reason", "max_connections_per_ip")],
            1.0
        ),
        1.0
    );
    // Another address still gets in, up to the global cap.
    let other = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    other
        .bind(&"127.0.0.3:0".parse::<SocketAddr>().unwrap().into())
        .unwrap();
    other.connect(&addr.into()).unwrap();
    let fourth = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    fourth
        .bind(&"127.0.0.4:0".parse::<SocketAddr>().unwrap().into())
        .unwrap();
    fourth.connect(&addr.into()).unwrap();
    assert_eq!(
        sluice.wait_metric(
            "sluice_connections_refused_total",
            &[("reason", "max_connections")],
            1.0
        ),
        1.0
    );
    // The connections that got in still work.
    for mut s in open {
        s.write_all(b"<13>Jan 25 09:59:01 host app: still served\n")
            .unwrap();
    }
    let events = sluice.wait_events(2, WAIT);
    assert_eq!(events.len(), 2);
    drop(other);
}

#[test]
fn slow_sender_is_cut_off_and_its_partial_frame_kept() {
    let config = listener(
        "tcp",
        "tcp",
        "frame_timeout = \"1s\"\nidle_timeout = \"30s\"",
    );
    let sluice = Sluice::start(&config);
    let mut slow = TcpStream::connect(sluice.addr("tcp")).unwrap();
    let started = Instant::now();
    let mut sent = Vec::new();
    // One byte every 100 ms: never idle, but the frame never completes.
    let mut closed = false;
    for b in b"<13>Jan 25 09:59:01 host app: drip drip drip drip drip drip"
        .iter()
        .cycle()
        .take(100)
    {
        if slow.write_all(&[*b]).is_err() {
            closed = true;
            break;
        }
        sent.push(*b);
        std::thread::sleep(Duration::from_millis(100));
        if sluice.metric(
            "sluice_connections_closed_total",
            &[("reason", "frame_timeout")],
        ) >= 1.0
        {
            closed = true;
            break;
        }
    }
    assert!(
        closed,
        "connection still open after {:?}",
        started.elapsed()
    );
    let events = sluice.wait_events(1, WAIT);
    assert_eq!(events.len(), 1);
    let text = events[0]["raw_data"].as_str().unwrap();
    // Everything received before the cut-off, and nothing else.
    assert!(text.len() >= 5, "{text:?}");
    assert!(String::from_utf8(sent).unwrap().starts_with(text));
    assert_eq!(events[0]["metadata"]["is_truncated"], true);
    assert_eq!(
        sluice.metric(
            "sluice_messages_truncated_total",
            &[("reason", "frame_timeout")]
        ),
        1.0
    );
}

#[test]
fn idle_connection_is_closed() {
    let sluice = Sluice::start(&listener("tcp", "tcp", "idle_timeout = \"500ms\""));
    let mut idle = TcpStream::connect(sluice.addr("tcp")).unwrap();
    idle.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let started = Instant::now();
    assert_eq!(idle.read(&mut [0u8; 8]).unwrap_or(0), 0);
    assert!(started.elapsed() < Duration::from_secs(10));
    assert_eq!(
        sluice.wait_metric(
            "sluice_connections_closed_total",
            &[("reason", "idle_timeout")],
            1.0
        ),
        1.0
    );
}

#[test]
fn pinned_grammar_and_tags_reach_the_event() {
    let config = listener(
        "kata",
        "tcp",
        "grammar = \"kaspersky_kata\"\ntags = { tenant = \"acme\", site = \"ams\" }",
    );
    let sluice = Sluice::start(&config);
    let kata = common::server::seed_line("kaspersky_kata.log");
    let pp = common::server::seed_line("perception_point.log");
    tcp_send(sluice.addr("kata"), format!("{kata}\n{pp}\n").as_bytes());
    let events = sluice.wait_events(2, WAIT);
    assert_eq!(events.len(), 2);
    assert_eq!(events[0]["sluice"]["grammar"], "kaspersky_kata");
    assert_eq!(events[0]["sluice"]["parse"]["status"], "ok");
    assert_eq!(
        events[0]["sluice"]["received"]["tags"],
        serde_json::json!({"tenant": "acme", "site": "ams"})
    );
    // A pipe message on the KATA port is not guessed at: the pin is a contract.
    assert_eq!(events[1]["sluice"]["parse"]["status"], "failed");
    assert_eq!(
        events[1]["sluice"]["parse"]["errors"][0]["code"],
        "grammar_format_mismatch"
    );
    assert_all_valid(&events);
    assert_eq!(
        sluice.metric(
            "sluice_parse_errors_total",
            &[("code", "grammar_format_mismatch")]
        ),
        1.0
    );
}

#[test]
fn garbage_and_binary_are_kept_and_the_listener_keeps_serving() {
    let sluice = Sluice::start(&listener("tcp", "tcp", ""));
    let addr = sluice.addr("tcp");
    let mut garbage: Vec<u8> = (0..=255u8)
        .cycle()
        .take(4096)
        .filter(|b| *b != b'\n' && *b != 0)
        .collect();
    garbage.push(b'\n');
    tcp_send(addr, &garbage);
    // Half-open connections and a connect/disconnect flood.
    let half_open: Vec<TcpStream> = (0..20).map(|_| TcpStream::connect(addr).unwrap()).collect();
    for _ in 0..200 {
        drop(TcpStream::connect(addr).unwrap());
    }
    tcp_send(addr, b"<13>Jan 25 09:59:01 host app: still here\n");
    let events = sluice.wait_events(2, WAIT);
    assert_eq!(events.len(), 2);
    // Two connections may be parsed by two workers, so their events can come out in
    // either order: tell them apart by content.
    let (garbage_events, still_here): (Vec<_>, Vec<_>) = events
        .iter()
        .partition(|e| e["raw_data"] != "<13>Jan 25 09:59:01 host app: still here");
    assert_eq!(still_here.len(), 1);
    assert_eq!(garbage_events.len(), 1);
    assert_eq!(
        garbage_events[0]["sluice"]["parse"]["errors"][0]["code"],
        "invalid_utf8"
    );
    assert_all_valid(&events);
    drop(half_open);
}

#[test]
fn a_stalled_sink_stops_tcp_reads_and_loses_nothing() {
    let sluice = stall_a_sender("queue_capacity = 64", 400, 20_000);
    let depth = sluice.metric("sluice_queue_depth", &[]);
    assert!(depth <= 64.0, "queue depth {depth} over its capacity");
    drain_and_count(sluice, 20_000);
}

#[test]
fn large_messages_fill_the_byte_bound_of_the_queue_first() {
    // 30 KB messages: 1 MiB holds about 34 of them, far fewer than the 65,536 places.
    let sluice = stall_a_sender("queue_max_bytes = 1048576", 30_000, 600);
    let queued = sluice.metric("sluice_queue_bytes", &[]);
    assert!(
        queued > 900_000.0 && queued <= 1_048_576.0,
        "queued bytes {queued}"
    );
    assert!(sluice.metric("sluice_queue_depth", &[]) < 40.0);
    assert_eq!(sluice.metric("sluice_queue_max_bytes", &[]), 1_048_576.0);
    drain_and_count(sluice, 600);
}

/// Starts sluice with one TCP listener, one worker and `general` added to `[general]`, and
/// a sender of `total` lines of `body_len` bytes that nobody drains: the stdout pipe fills,
/// then the sink, the worker and the queue, and the sender is held back by TCP. Returns once
/// sluice reports the full queue (waits for room, and "not ready").
fn stall_a_sender(general: &str, body_len: usize, total: usize) -> StalledSluice {
    let config = format!("[general]\n{general}\nworkers = 1\n") + &listener("tcp", "tcp", "");
    let sluice = Sluice::start_with(&config, &[], false);
    let addr = sluice.addr("tcp");
    let line = format!("<13>Jan 25 09:59:01 host app: {}\n", "z".repeat(body_len));
    let sender = std::thread::spawn(move || {
        let mut s = TcpStream::connect(addr).unwrap();
        let mut sent = 0;
        for _ in 0..total {
            s.write_all(line.as_bytes()).unwrap();
            sent += 1;
        }
        sent
    });
    // A full queue is "not ready": a load balancer should send new senders elsewhere. The
    // queue fills once the stdout pipe, the sink and the worker are full, so the stall is
    // awaited, not sampled once.
    let started = Instant::now();
    let (status, body) = loop {
        let (status, body) = sluice.get("/readyz");
        if status == 503 || started.elapsed() > WAIT {
            break (status, body);
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(status, 503, "the queue never filled: {body}");
    assert!(body.contains("parse queue"), "{body}");
    assert!(!sender.is_finished(), "the sender was not held back");
    StalledSluice { sluice, sender }
}

struct StalledSluice {
    sluice: Sluice,
    sender: std::thread::JoinHandle<usize>,
}

impl std::ops::Deref for StalledSluice {
    type Target = Sluice;
    fn deref(&self) -> &Sluice {
        &self.sluice
    }
}

/// Reads sluice's stdout again: every line the sender wrote comes out as an event.
fn drain_and_count(stalled: StalledSluice, total: usize) {
    let StalledSluice { mut sluice, sender } = stalled;
    sluice.read_stdout();
    assert_eq!(sender.join().unwrap(), total);
    let events = sluice.wait_events(total, Duration::from_secs(60));
    assert_eq!(events.len(), total);
    // The listener's wait for room is recorded when it ends, once the queue drains.
    let waits = sluice.metric("sluice_queue_blocked_seconds_count", &[("listener", "tcp")]);
    assert!(waits >= 1.0, "no wait for room was recorded");
}

#[test]
fn shutdown_drains_everything_and_exits_zero() {
    let sluice = Sluice::start(&(listener("tcp", "tcp", "") + &listener("udp", "udp", "")));
    let addr = sluice.addr("tcp");
    let mut open = TcpStream::connect(addr).unwrap();
    let mut payload = String::new();
    for i in 0..1000 {
        payload.push_str(&format!("<13>Jan 25 09:59:01 host app: n={i}\n"));
    }
    payload.push_str("<13>Jan 25 09:59:01 host app: cut by the stop");
    open.write_all(payload.as_bytes()).unwrap();
    sluice.wait_metric(
        "sluice_messages_received_total",
        &[("listener", "tcp")],
        1000.0,
    );
    let stopped = sluice.stop();
    assert!(
        stopped.status.success(),
        "{}",
        common::server::dump(&stopped.logs)
    );
    assert_eq!(stopped.events.len(), 1001);
    let last = stopped.events.last().unwrap();
    assert_eq!(
        last["raw_data"],
        "<13>Jan 25 09:59:01 host app: cut by the stop"
    );
    assert_eq!(last["metadata"]["is_truncated"], true);
    let report = stopped
        .logs
        .iter()
        .find(|l| l["message"] == "stopped; everything accepted was written")
        .expect("a shutdown report");
    assert_eq!(report["accepted"], 1001);
    assert_eq!(report["written"], 1001);
}

#[test]
fn invalid_config_fails_at_start_with_file_line_and_key() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.toml");
    std::fs::write(
        &path,
        "[[listener]]\nname = \"x\"\ntransport = \"tcp\"\naddress = \"0.0.0.0:99999\"\n",
    )
    .unwrap();
    common::server::assert_start_fails(
        &path,
        &format!(
            "{}:4: listener[0].address: invalid address \"0.0.0.0:99999\"",
            path.display()
        ),
    );
}

#[test]
fn health_endpoints() {
    let sluice = Sluice::start(&listener("tcp", "tcp", ""));
    assert_eq!(
        sluice.get("/healthz"),
        (200, r#"{"status":"alive"}"#.to_string())
    );
    assert_eq!(
        sluice.get("/readyz"),
        (200, r#"{"status":"ready"}"#.to_string())
    );
    assert_eq!(sluice.get("/nope").0, 404);
}

#[test]
fn udp_datagrams_the_kernel_drops_are_counted_exactly() {
    let sluice = Sluice::start(&listener(
        "udp",
        "udp",
        "sockets = 1\nreceive_buffer_bytes = 65536",
    ));
    let addr = sluice.addr("udp");
    let sent = 2000;
    let line = format!("<13>Jan 25 09:59:01 host app: {}", "d".repeat(900));
    // Frozen, sluice cannot read: the socket buffer fills and the kernel drops the rest.
    sluice.signal(libc::SIGSTOP);
    let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    for _ in 0..sent {
        socket.send_to(line.as_bytes(), addr).unwrap();
    }
    sluice.signal(libc::SIGCONT);
    let started = Instant::now();
    let (received, dropped) = loop {
        let scrape = sluice.scrape();
        let received = common::server::metric_value(
            &scrape,
            "sluice_messages_received_total",
            &[("listener", "udp")],
        );
        let dropped = common::server::metric_value(
            &scrape,
            "sluice_udp_datagrams_dropped_total",
            &[("listener", "udp"), ("reason", "kernel_buffer_full")],
        );
        if received + dropped >= sent as f64 || started.elapsed() > WAIT {
            break (received, dropped);
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(
        dropped > 0.0,
        "nothing dropped: the buffer held {received} datagrams"
    );
    assert_eq!(received + dropped, sent as f64);
    assert_eq!(
        sluice.wait_events(received as usize, WAIT).len(),
        received as usize
    );
}

#[test]
fn ipv6_listeners() {
    let config = "[[listener]]\nname = \"tcp6\"\ntransport = \"tcp\"\naddress = \"[::1]:0\"\n\n\
                  [[listener]]\nname = \"udp6\"\ntransport = \"udp\"\naddress = \"[::1]:0\"\n";
    let sluice = Sluice::start(config);
    let (tcp, udp) = (sluice.addr("tcp6"), sluice.addr("udp6"));
    assert!(tcp.is_ipv6() && udp.is_ipv6());
    tcp_send(tcp, b"<13>Jan 25 09:59:01 host app: over tcp6\n");
    let socket = std::net::UdpSocket::bind("[::1]:0").unwrap();
    socket
        .send_to(b"<13>Jan 25 09:59:01 host app: over udp6", udp)
        .unwrap();
    let events = sluice.wait_events(2, WAIT);
    let mut peers: Vec<&str> = events
        .iter()
        .map(|e| e["sluice"]["received"]["peer"].as_str().unwrap())
        .collect();
    peers.sort();
    assert_eq!(peers.len(), 2);
    assert!(peers.iter().all(|p| p.starts_with("[::1]:")), "{peers:?}");
}

#[test]
fn shutdown_past_its_deadline_reports_what_was_not_written() {
    let config = "[general]\nshutdown_timeout = \"1s\"\nqueue_capacity = 64\nworkers = 1\n"
        .to_string()
        + &listener("tcp", "tcp", "");
    // Nobody reads stdout: the sink cannot finish.
    let sluice = Sluice::start_with(&config, &[], false);
    let addr = sluice.addr("tcp");
    let line = format!("<13>Jan 25 09:59:01 host app: {}\n", "w".repeat(400));
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_write_timeout(Some(Duration::from_secs(2)))
        .unwrap();
    // Fill the pipe, the sink channel and the queue (the write times out once TCP holds
    // the sender back).
    for _ in 0..5_000 {
        if stream.write_all(line.as_bytes()).is_err() {
            break;
        }
    }
    sluice.wait_metric(
        "sluice_queue_blocked_seconds_count",
        &[("listener", "tcp")],
        1.0,
    );
    let mut sluice = sluice;
    sluice.signal(libc::SIGTERM);
    let started = Instant::now();
    // Still not reading: the deadline passes.
    while sluice
        .logs()
        .iter()
        .all(|l| l["message"] != "shutdown deadline passed; events not written are lost")
    {
        assert!(started.elapsed() < WAIT, "no deadline report");
        std::thread::sleep(Duration::from_millis(50));
    }
    sluice.read_stdout();
    let stopped = sluice.stop();
    assert_eq!(stopped.status.code(), Some(3));
    let report = stopped
        .logs
        .iter()
        .find(|l| l["message"] == "shutdown deadline passed; events not written are lost")
        .unwrap();
    let accepted = report["accepted"].as_u64().unwrap();
    let written = report["written"].as_u64().unwrap();
    assert!(accepted > written, "{report}");
    assert_eq!(report["not_written"].as_u64().unwrap(), accepted - written);
}

/// The container health check: `sluice healthcheck` asks a running sluice over HTTP.
#[test]
fn healthcheck_subcommand_asks_a_running_sluice() {
    let sluice = Sluice::start(&listener("tcp", "tcp", ""));
    let ask = |path: &str| {
        std::process::Command::new(env!("CARGO_BIN_EXE_sluice"))
            .args([
                "healthcheck",
                "--address",
                &sluice.metrics.expect("metrics on").to_string(),
                "--path",
                path,
            ])
            .output()
            .unwrap()
    };
    let alive = ask("/healthz");
    assert!(alive.status.success(), "{alive:?}");
    assert_eq!(
        String::from_utf8_lossy(&alive.stdout).trim(),
        r#"{"status":"alive"}"#
    );
    assert!(ask("/readyz").status.success());
    let missing = ask("/nowhere");
    assert_eq!(missing.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("answered 404"));
    drop(sluice);
    let closed = std::process::Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args(["healthcheck", "--address", "127.0.0.1:1"])
        .output()
        .unwrap();
    assert_eq!(closed.status.code(), Some(1));
}

/// How many batches a listener handed to the parse queue.
fn batches_queued(sluice: &Sluice, listener: &str) -> f64 {
    sluice.metric("sluice_batches_queued_total", &[("listener", listener)])
}

fn trickle(count: usize) -> Vec<String> {
    (0..count)
        .map(|i| format!("<13>Jan 25 09:59:01 host app: trickle n={i}"))
        .collect()
}

/// A sender that sluice outpaces (a message every 200 µs or so) is read once per
/// millisecond, not once per message: each read queues a batch and wakes a worker.
#[test]
fn a_trickling_tcp_sender_is_read_in_batches_and_loses_nothing() {
    let sluice = Sluice::start(&listener("tcp", "tcp", ""));
    let sent = trickle(200);
    let mut stream = TcpStream::connect(sluice.addr("tcp")).unwrap();
    stream.set_nodelay(true).unwrap();
    for line in &sent {
        stream.write_all(format!("{line}\n").as_bytes()).unwrap();
        std::thread::sleep(Duration::from_micros(200));
    }
    let events = sluice.wait_events(sent.len(), WAIT);
    assert_eq!(raw(&events), sent);
    let batches = batches_queued(&sluice, "tcp");
    assert!(
        (1.0..=100.0).contains(&batches),
        "{batches} batches queued for 200 messages"
    );
}

/// The same over UDP, where the listener sleeps only when the kernel granted its socket a
/// buffer of at least 4 MiB (so that the sleep cannot cost a datagram).
#[test]
fn a_trickling_udp_sender_is_read_in_batches_and_loses_nothing() {
    let sluice = Sluice::start(&listener("udp", "udp", "receive_buffer_bytes = 8388608"));
    let sent = trickle(200);
    let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    for line in &sent {
        socket.send_to(line.as_bytes(), sluice.addr("udp")).unwrap();
        std::thread::sleep(Duration::from_micros(200));
    }
    let events = sluice.wait_events(sent.len(), WAIT);
    assert_eq!(raw(&events), sent);
    // Linux doubles the request up to twice net.core.rmem_max.
    let rmem_max: usize = std::fs::read_to_string("/proc/sys/net/core/rmem_max")
        .map(|t| t.trim().parse().unwrap_or(0))
        .unwrap_or(0);
    let batches = batches_queued(&sluice, "udp");
    assert!(batches >= 1.0, "no batches counted");
    if 2 * rmem_max.min(8_388_608) < 4 * 1024 * 1024 {
        eprintln!(
            "net.core.rmem_max = {rmem_max}: the socket's buffer is under 4 MiB, so the \
             listener reads at once ({batches} batches); the batching is not checked"
        );
        return;
    }
    assert!(
        batches <= 100.0,
        "{batches} batches queued for 200 datagrams"
    );
}
