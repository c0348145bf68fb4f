//! TLS listeners (RFC 5425) against rustls clients, with certificates made in the test:
//! mTLS accepted and rejected, TLS 1.2 and 1.3, plaintext on the TLS port, certificate
//! reload on SIGHUP and on file change, and a certificate that does not load.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::pki::{ca, client_config, leaf, Pki};
use common::server::Sluice;
use rustls::pki_types::ServerName;

const WAIT: Duration = Duration::from_secs(20);

type Tls = rustls::StreamOwned<rustls::ClientConnection, TcpStream>;

/// Connects and completes the handshake (or returns its error).
fn connect(addr: SocketAddr, config: Arc<rustls::ClientConfig>) -> std::io::Result<Tls> {
    let tcp = TcpStream::connect(addr)?;
    tcp.set_read_timeout(Some(Duration::from_secs(10)))?;
    let conn =
        rustls::ClientConnection::new(config, ServerName::try_from("localhost").unwrap()).unwrap();
    let mut tls = rustls::StreamOwned::new(conn, tcp);
    while tls.conn.is_handshaking() {
        tls.conn.complete_io(&mut tls.sock)?;
    }
    Ok(tls)
}

/// Sends octet-counted frames, as rsyslog and KATA do over TLS, and closes cleanly.
fn send_frames(mut tls: Tls, frames: &[&str]) {
    for f in frames {
        write!(tls, "{} {f}", f.len()).unwrap();
    }
    tls.flush().unwrap();
    tls.conn.send_close_notify();
    let _ = tls.conn.complete_io(&mut tls.sock);
    let mut rest = Vec::new();
    let _ = tls.read_to_end(&mut rest);
}

fn server_subject(tls: &Tls) -> String {
    let der = &tls.conn.peer_certificates().unwrap()[0];
    sluice::source::tls::subject_of(der).unwrap()
}

#[test]
fn mtls_client_is_accepted_and_its_subject_recorded() {
    let pki = Pki::new();
    let sluice = Sluice::start(&pki.listener(true, ""));
    let addr = sluice.addr("tls");
    let identity = leaf(&pki.ca, "kata-node-1", true);
    let kata = common::server::seed_line("kaspersky_kata.log");
    for versions in [
        &[&rustls::version::TLS13][..],
        &[&rustls::version::TLS12][..],
    ] {
        let tls = connect(
            addr,
            client_config(&pki.ca, Some(identity.clone()), versions),
        )
        .unwrap();
        assert_eq!(server_subject(&tls), "CN=sluice-server-1, O=sluice tests");
        send_frames(tls, &[&kata, "<13>Jan 25 09:59:01 host app: second"]);
    }
    let events = sluice.wait_events(4, WAIT);
    assert_eq!(events.len(), 4);
    for e in &events {
        assert_eq!(e["sluice"]["received"]["transport"], "tls");
        assert_eq!(
            e["sluice"]["received"]["tls"]["client_subject"],
            "CN=kata-node-1, O=sluice tests"
        );
        common::assert_valid(e);
    }
    assert_eq!(
        events
            .iter()
            .filter(|e| e["sluice"]["grammar"] == "kaspersky_kata")
            .count(),
        2
    );
}

#[test]
fn clients_without_a_valid_certificate_are_refused_and_counted() {
    let pki = Pki::new();
    let sluice = Sluice::start(&pki.listener(true, ""));
    let addr = sluice.addr("tls");
    let tls13 = &[&rustls::version::TLS13][..];

    // No certificate: TLS 1.3 lets the client finish first; the server refuses.
    if let Ok(mut tls) = connect(addr, client_config(&pki.ca, None, tls13)) {
        let _ = write!(tls, "14 <13>refused it");
        let _ = tls.flush();
        let _ = tls.read(&mut [0u8; 16]);
    }
    assert_eq!(
        sluice.wait_metric(
            "sluice_tls_handshake_failures_total",
            &[("reason", "no_client_certificate")],
            1.0
        ),
        1.0
    );

    // A certificate from another CA.
    let stranger = ca("someone else's CA");
    let identity = leaf(&stranger, "intruder", true);
    if let Ok(mut tls) = connect(addr, client_config(&pki.ca, Some(identity), tls13)) {
        let _ = tls.read(&mut [0u8; 16]);
    }
    assert_eq!(
        sluice.wait_metric(
            "sluice_tls_handshake_failures_total",
            &[("reason", "unknown_issuer")],
            1.0
        ),
        1.0
    );

    // Plain syslog on the TLS port.
    let mut plain = TcpStream::connect(addr).unwrap();
    plain
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    plain
        .write_all(b"<13>Jan 25 09:59:01 host app: plaintext\n")
        .unwrap();
    let _ = plain.read(&mut [0u8; 64]);
    assert_eq!(
        sluice.wait_metric(
            "sluice_tls_handshake_failures_total",
            &[("reason", "not_tls")],
            1.0
        ),
        1.0
    );
    // Nothing from any of them became an event.
    assert!(sluice.events().is_empty(), "{:?}", sluice.events());
}

#[test]
fn handshake_timeout_frees_a_silent_connection() {
    let pki = Pki::new();
    let sluice = Sluice::start(&pki.listener(false, "handshake_timeout = \"300ms\"\n"));
    let mut silent = TcpStream::connect(sluice.addr("tls")).unwrap();
    common::server::assert_closed_by_sluice(&mut silent);
    assert_eq!(
        sluice.wait_metric(
            "sluice_tls_handshake_failures_total",
            &[("reason", "timeout")],
            1.0
        ),
        1.0
    );
}

fn wait_for_subject(addr: SocketAddr, config: &Arc<rustls::ClientConfig>, subject: &str) -> String {
    let started = Instant::now();
    loop {
        let tls = connect(addr, config.clone()).unwrap();
        let seen = server_subject(&tls);
        if seen == subject || started.elapsed() > WAIT {
            return seen;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn certificate_reload_on_sighup() {
    let pki = Pki::new();
    let sluice = Sluice::start(&pki.listener(false, "reload_interval = \"1h\"\n"));
    let addr = sluice.addr("tls");
    let config = client_config(&pki.ca, None, &[&rustls::version::TLS13]);
    assert_eq!(
        server_subject(&connect(addr, config.clone()).unwrap()),
        "CN=sluice-server-1, O=sluice tests"
    );
    pki.write_server("sluice-server-2");
    sluice.signal(libc::SIGHUP);
    assert_eq!(
        wait_for_subject(addr, &config, "CN=sluice-server-2, O=sluice tests"),
        "CN=sluice-server-2, O=sluice tests"
    );
    assert_eq!(
        sluice.metric("sluice_tls_reloads_total", &[("result", "ok")]),
        1.0
    );
}

#[test]
fn certificate_reload_on_file_change_and_a_broken_file_keeps_the_old_one() {
    let pki = Pki::new();
    let sluice = Sluice::start(&pki.listener(false, "reload_interval = \"100ms\"\n"));
    let addr = sluice.addr("tls");
    let config = client_config(&pki.ca, None, &[&rustls::version::TLS13]);
    pki.write_server("sluice-server-2");
    assert_eq!(
        wait_for_subject(addr, &config, "CN=sluice-server-2, O=sluice tests"),
        "CN=sluice-server-2, O=sluice tests"
    );
    // A half-written certificate: the reload fails, the listener keeps serving.
    std::fs::write(
        pki.path("server.pem"),
        "-----BEGIN CERTIFICATE-----\nnot base64\n",
    )
    .unwrap();
    assert!(sluice.wait_metric("sluice_tls_reloads_total", &[("result", "error")], 1.0) >= 1.0);
    assert_eq!(
        server_subject(&connect(addr, config.clone()).unwrap()),
        "CN=sluice-server-2, O=sluice tests"
    );
}

#[test]
fn a_certificate_that_does_not_load_stops_the_start_with_its_path() {
    let pki = Pki::new();
    std::fs::write(pki.path("server.key"), "not a key").unwrap();
    let config_path = Path::new(&pki.path("sluice.toml")).to_path_buf();
    std::fs::write(&config_path, pki.listener(false, "")).unwrap();
    common::server::assert_start_fails(
        &config_path,
        &format!("cannot read a private key from {}", pki.path("server.key")),
    );
}

#[test]
fn a_sender_that_never_reads_loses_nothing_when_it_closes() {
    // Like loggen and most syslog senders: write, close, never read. Anything the server
    // sent after the handshake (TLS 1.3 session tickets) would sit unread, turn the close
    // into a reset, and make the kernel drop data sluice had not read yet.
    let pki = Pki::new();
    let sluice = Sluice::start(&pki.listener(false, ""));
    let addr = sluice.addr("tls");
    let config = client_config(&pki.ca, None, &[&rustls::version::TLS13]);
    let connections = 20;
    let per_connection = 200;
    for c in 0..connections {
        let mut tls = connect(addr, config.clone()).unwrap();
        for i in 0..per_connection {
            let frame = format!("<13>Jan 25 09:59:01 host app: connection {c} message {i}");
            write!(tls, "{} {frame}", frame.len()).unwrap();
        }
        tls.flush().unwrap();
        // Close the socket outright: no close_notify, no read.
        drop(tls);
    }
    let events = sluice.wait_events(connections * per_connection, WAIT);
    assert_eq!(events.len(), connections * per_connection);
}

#[test]
fn check_config_loads_the_certificates_without_binding() {
    let pki = Pki::new();
    let config = pki.path("sluice.toml");
    // Port 1 would need privileges to bind: check-config must not try.
    std::fs::write(
        &config,
        pki.listener(false, "")
            .replace("127.0.0.1:0", "127.0.0.1:1"),
    )
    .unwrap();
    let check = || {
        std::process::Command::new(env!("CARGO_BIN_EXE_sluice"))
            .args(["check-config", "--config", &config])
            .output()
            .unwrap()
    };
    let out = check();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("ok  listener \"tls\": tls 127.0.0.1:1"));
    std::fs::remove_file(pki.path("server.pem")).unwrap();
    let out = check();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!(
            "listener \"tls\": cannot read certificate {}",
            pki.path("server.pem")
        )),
        "{stderr}"
    );
}
