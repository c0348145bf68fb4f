//! TLS for syslog (RFC 5425) with rustls: TLS 1.2 and 1.3 only, a PEM chain and key,
//! optional client-certificate verification, and certificate reload without a restart
//! (on SIGHUP, or when the files change).

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, SystemTime};

use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;

use super::metrics::ListenerMetrics;
use crate::config;

/// One TLS listener's server configuration, swapped whole on reload so that a connection
/// in its handshake keeps the configuration it started with.
pub struct TlsServer {
    settings: config::Tls,
    current: RwLock<Arc<ServerConfig>>,
    stamps: Mutex<Vec<Stamp>>,
}

/// What a certificate file looked like when it was loaded.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Stamp {
    path: PathBuf,
    modified: Option<SystemTime>,
    len: u64,
}

fn stamps(settings: &config::Tls) -> Vec<Stamp> {
    std::iter::once(&settings.cert)
        .chain(std::iter::once(&settings.key))
        .chain(settings.client_ca.as_ref())
        .map(|path| {
            let meta = std::fs::metadata(path).ok();
            Stamp {
                path: path.clone(),
                modified: meta.as_ref().and_then(|m| m.modified().ok()),
                len: meta.map(|m| m.len()).unwrap_or(0),
            }
        })
        .collect()
}

fn read_pem_certs(path: &Path, what: &str) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| format!("cannot read {what} {}: {e}", path.display()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("invalid PEM in {what} {}: {e}", path.display()))?;
    if certs.is_empty() {
        return Err(format!("no certificate in {what} {}", path.display()));
    }
    Ok(certs)
}

/// The TLS crypto of every sluice connection (listeners and the S3 client): rustls with
/// *ring*, which builds without cmake or a C++ toolchain, unlike aws-lc-rs. rustls 0.23.48
/// deprecates it for having no post-quantum key exchange; handshakes settle on X25519 or
/// the NIST curves, as they did before.
#[allow(deprecated)]
pub fn crypto_provider() -> rustls::crypto::CryptoProvider {
    rustls::crypto::ring::default_provider()
}

/// Builds a rustls server configuration from the PEM files; every error says which file.
pub fn server_config(settings: &config::Tls) -> Result<Arc<ServerConfig>, String> {
    let provider = Arc::new(crypto_provider());
    let certs = read_pem_certs(&settings.cert, "certificate")?;
    let key = PrivateKeyDer::from_pem_file(&settings.key).map_err(|e| {
        format!(
            "cannot read a private key from {}: {e}",
            settings.key.display()
        )
    })?;
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| format!("TLS setup: {e}"))?;
    let builder = match &settings.client_ca {
        None => builder.with_no_client_auth(),
        Some(ca) => {
            let mut roots = RootCertStore::empty();
            for cert in read_pem_certs(ca, "client CA")? {
                roots
                    .add(cert)
                    .map_err(|e| format!("invalid client CA in {}: {e}", ca.display()))?;
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .map_err(|e| format!("client CA {}: {e}", ca.display()))?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let mut config = builder.with_single_cert(certs, key).map_err(|e| {
        format!(
            "certificate {} and key {} do not make a usable pair: {e}",
            settings.cert.display(),
            settings.key.display()
        )
    })?;
    // Syslog senders never read from the connection. TLS 1.3 session tickets, sent after
    // the handshake, sit unread in the sender's socket; when it closes, its kernel answers
    // with a reset instead of a FIN, and a reset makes Linux discard what sluice had not
    // yet read. Seen with loggen: a third of its messages lost. No tickets, no reset.
    config.send_tls13_tickets = 0;
    Ok(Arc::new(config))
}

impl TlsServer {
    pub fn new(settings: config::Tls) -> Result<Arc<TlsServer>, String> {
        let stamp = stamps(&settings);
        let config = server_config(&settings)?;
        Ok(Arc::new(TlsServer {
            settings,
            current: RwLock::new(config),
            stamps: Mutex::new(stamp),
        }))
    }

    fn acceptor(&self) -> TlsAcceptor {
        TlsAcceptor::from(
            self.current
                .read()
                .unwrap_or_else(|p| p.into_inner())
                .clone(),
        )
    }

    /// Loads the files again. On error the previous configuration stays in use.
    pub fn reload(&self) -> Result<(), String> {
        let stamp = stamps(&self.settings);
        let config = server_config(&self.settings)?;
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = config;
        *self.stamps.lock().unwrap_or_else(|p| p.into_inner()) = stamp;
        Ok(())
    }

    fn files_changed(&self) -> bool {
        *self.stamps.lock().unwrap_or_else(|p| p.into_inner()) != stamps(&self.settings)
    }

    /// Reloads on SIGHUP and when the files change, until shutdown.
    pub async fn watch(
        self: Arc<Self>,
        metrics: ListenerMetrics,
        mut shutdown: watch::Receiver<bool>,
    ) {
        let mut hangup =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok();
        let interval = self
            .settings
            .reload_interval
            .0
            .max(Duration::from_millis(100));
        loop {
            let forced = tokio::select! {
                _ = shutdown.changed() => return,
                _ = tokio::time::sleep(interval) => false,
                Some(()) = async { match hangup.as_mut() { Some(h) => h.recv().await, None => std::future::pending().await } } => true,
            };
            if !forced && !self.files_changed() {
                continue;
            }
            match self.reload() {
                Ok(()) => {
                    metrics.tls_reload("ok");
                    tracing::info!(listener = metrics.name(), "TLS certificate reloaded");
                }
                Err(e) => {
                    metrics.tls_reload("error");
                    // Keep the stamps: the next change (a complete write) tries again.
                    tracing::error!(listener = metrics.name(), error = %e, "TLS reload failed; the previous certificate stays in use");
                }
            }
        }
    }

    /// Handshakes within the timeout; the client certificate's subject when there is one,
    /// or a failure reason (a metric label).
    pub async fn handshake(
        &self,
        stream: TcpStream,
        metrics: &ListenerMetrics,
    ) -> Result<(TlsStream<TcpStream>, Option<String>), &'static str> {
        let accept = self.acceptor().accept(stream);
        let result = match tokio::time::timeout(self.settings.handshake_timeout.0, accept).await {
            Err(_) => Err("timeout"),
            Ok(Err(e)) => Err(handshake_failure(&e)),
            Ok(Ok(stream)) => Ok(stream),
        };
        match result {
            Ok(stream) => {
                let subject = stream
                    .get_ref()
                    .1
                    .peer_certificates()
                    .and_then(|certs| certs.first())
                    .and_then(|der| subject_of(der));
                Ok((stream, subject))
            }
            Err(reason) => {
                metrics.tls_handshake_failed(reason);
                Err(reason)
            }
        }
    }
}

/// The subject DN of a DER certificate, as `CN=…, O=…`.
pub fn subject_of(der: &[u8]) -> Option<String> {
    x509_parser::parse_x509_certificate(der)
        .ok()
        .map(|(_, cert)| cert.subject().to_string())
}

/// Every label [`handshake_failure`] and the handshake timeout can give.
pub const HANDSHAKE_FAILURES: &[&str] = &[
    "timeout",
    "client_closed",
    "io_error",
    "no_client_certificate",
    "unknown_issuer",
    "certificate_expired",
    "certificate_not_yet_valid",
    "certificate_revoked",
    "bad_certificate",
    "incompatible_client",
    "not_tls",
    "client_alert",
    "protocol_error",
    "other",
];

/// A bounded set of labels for handshake failures (all in [`HANDSHAKE_FAILURES`]).
pub fn handshake_failure(error: &std::io::Error) -> &'static str {
    use rustls::{CertificateError, Error};
    if error.kind() == std::io::ErrorKind::UnexpectedEof {
        return "client_closed";
    }
    let Some(tls) = error.get_ref().and_then(|e| e.downcast_ref::<Error>()) else {
        return "io_error";
    };
    match tls {
        Error::NoCertificatesPresented => "no_client_certificate",
        Error::InvalidCertificate(CertificateError::UnknownIssuer) => "unknown_issuer",
        Error::InvalidCertificate(
            CertificateError::Expired | CertificateError::ExpiredContext { .. },
        ) => "certificate_expired",
        Error::InvalidCertificate(
            CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. },
        ) => "certificate_not_yet_valid",
        Error::InvalidCertificate(CertificateError::Revoked) => "certificate_revoked",
        Error::InvalidCertificate(_) => "bad_certificate",
        Error::PeerIncompatible(_) => "incompatible_client",
        Error::InvalidMessage(_)
        | Error::InappropriateMessage { .. }
        | Error::InappropriateHandshakeMessage { .. } => "not_tls",
        Error::AlertReceived(_) => "client_alert",
        Error::PeerMisbehaved(_) => "protocol_error",
        _ => "other",
    }
}
