//! `sluice run`: listeners → bounded queue → parse workers → sink, and an orderly stop.
//!
//! Shutdown order: the listeners stop accepting and reading, each connection queues the
//! frames it already read (a partial one flagged truncated), the queue drains through the
//! workers, and the sink flushes; all within `general.shutdown_timeout`. Whatever did not
//! reach the sink by then is reported.

pub mod workers;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use anyhow::Context;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;

use crate::config::{self, Config, TransportKind};
use crate::grammar::GrammarSet;
use crate::pipeline::{ParseOptions, Pipeline};
use crate::queue;
use crate::sink;
use crate::source::limits::ConnectionLimits;
use crate::source::metrics::ListenerMetrics;
use crate::source::s3::S3Reader;
use crate::source::tcp::{self, StreamListener};
use crate::source::tls::TlsServer;
use crate::source::udp::{self, DatagramListener};
use crate::source::{ReceiveInfo, Transport};
use crate::telemetry::{self, Health};

/// What a run ended with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RunReport {
    /// Messages the listeners queued for parsing.
    pub accepted: u64,
    /// Events the sink wrote.
    pub written: u64,
    /// Everything drained within the shutdown deadline.
    pub drained: bool,
}

/// Where each listener ended up bound (port 0 resolved).
#[derive(Clone, Debug)]
pub struct Bound {
    pub name: String,
    pub transport: TransportKind,
    pub address: SocketAddr,
}

enum Socket {
    Stream(tokio::net::TcpListener, Arc<StreamListener>),
    Datagram(Vec<tokio::net::UdpSocket>, Arc<DatagramListener>),
}

/// Runs until `stop` completes, then shuts down in order. Start-up errors (a port in use,
/// a certificate that does not load) are returned before anything is accepted.
pub async fn run(
    config: Config,
    grammars: GrammarSet,
    stop: impl Future<Output = ()>,
) -> anyhow::Result<RunReport> {
    let handle = telemetry::install();
    let health = Health::new();
    let pipeline = Arc::new(
        Pipeline::new(
            grammars,
            ParseOptions {
                zone: config.general.timezone.0,
                raw_data: config.general.raw_data,
                grammar: None,
            },
        )
        .map_err(anyhow::Error::msg)?,
    );
    let workers = config.workers();
    let (dispatcher, queues) = queue::bounded(
        workers,
        config.general.queue_capacity,
        config.general.queue_max_bytes,
    );
    let written = Arc::new(AtomicU64::new(0));
    let sink = sink::open(&config.sink, &written, &health).context("cannot open the sink")?;
    let sink_name = sink.name();
    let router = match &config.sink {
        config::Sink::Kafka(k) => Some(Arc::new(k.router().map_err(anyhow::Error::msg)?)),
        _ => None,
    };
    let sources = crate::telemetry::sources::SourceTracker::new(config.general.max_sources);
    let (sink_tx, sink_rx) = mpsc::channel(workers * 4);
    // Enough idle delivery buffers for what the channel and the workers hold at once.
    let texts = sink::TextPool::new(workers * 5 + 1);
    let sink_thread = sink::spawn(
        sink,
        sink_rx,
        written.clone(),
        config.general.shutdown_timeout.0,
    );
    let worker_threads: Vec<_> = queues
        .into_iter()
        .enumerate()
        .map(|(i, queue)| {
            let pipeline = pipeline.clone();
            let sink_tx = sink_tx.clone();
            let router = router.clone();
            let sources = sources.clone();
            let texts = texts.clone();
            std::thread::Builder::new()
                .name(format!("sluice-parse-{i}"))
                .spawn(move || workers::run(pipeline, queue, sink_tx, router, sources, texts))
                .expect("spawn a parse worker")
        })
        .collect();
    drop(sink_tx);

    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    let limits = ConnectionLimits::new(
        config.limits.max_connections,
        config.limits.max_connections_per_ip,
    );
    let connection_ids = Arc::new(AtomicU64::new(0));
    let mut sockets = Vec::new();
    let mut bound = Vec::new();
    let mut tls_watchers = Vec::new();
    for l in &config.listeners {
        let transport = match l.transport {
            TransportKind::Tcp => Transport::Tcp,
            TransportKind::Udp => Transport::Udp,
            TransportKind::Tls => Transport::Tls,
        };
        let mut info = ReceiveInfo::new(&l.name, transport);
        info.tags = Arc::new(l.tags.clone());
        info.grammar = l.grammar.as_deref().map(Arc::from);
        let metrics = ListenerMetrics::new(&l.name, transport.as_str());
        let what = || {
            format!(
                "listener {:?}: cannot bind {} {}",
                l.name,
                l.transport.as_str(),
                l.address.0
            )
        };
        match l.transport {
            TransportKind::Tcp | TransportKind::Tls => {
                let tls = match &l.tls {
                    Some(settings) => {
                        let server = TlsServer::new(settings.clone())
                            .map_err(|e| anyhow::anyhow!("listener {:?}: {e}", l.name))?;
                        tls_watchers.push((server.clone(), metrics.clone()));
                        Some(server)
                    }
                    None => None,
                };
                let socket = tcp::bind(l.address.0).with_context(what)?;
                bound.push(Bound {
                    name: l.name.clone(),
                    transport: l.transport,
                    address: socket.local_addr()?,
                });
                let listener = Arc::new(StreamListener {
                    info,
                    metrics,
                    dispatcher: dispatcher.clone(),
                    limits: limits.clone(),
                    allow: l.allow.clone(),
                    max_message_bytes: l.max_message_bytes,
                    idle_timeout: l.idle_timeout.0,
                    frame_timeout: l.frame_timeout.0,
                    tls,
                    connection_ids: connection_ids.clone(),
                });
                sockets.push(Socket::Stream(socket, listener));
            }
            TransportKind::Udp => {
                let count = match l.sockets {
                    None | Some(0) => workers,
                    Some(n) => n,
                };
                let socks =
                    udp::bind(l.address.0, count, l.receive_buffer_bytes).with_context(what)?;
                bound.push(Bound {
                    name: l.name.clone(),
                    transport: l.transport,
                    address: socks[0].local_addr()?,
                });
                let listener = Arc::new(DatagramListener {
                    info,
                    metrics,
                    dispatcher: dispatcher.clone(),
                    allow: l.allow.clone(),
                    max_message_bytes: l.max_message_bytes,
                    sender_order: l.sender_order.unwrap_or(true),
                });
                sockets.push(Socket::Datagram(socks, listener));
            }
        }
    }
    for (grammar, interval) in &config.heartbeats {
        metrics::gauge!("sluice_heartbeat_interval_seconds", "grammar" => grammar.clone())
            .set(interval.0.as_secs_f64());
    }
    let mut s3_readers = Vec::new();
    for source in &config.s3_sources {
        let reader = S3Reader::new(source, &config.general).map_err(anyhow::Error::msg)?;
        s3_readers.push((Arc::new(reader), dispatcher.clone()));
    }
    let accepted = dispatcher.accepted();
    let fill = dispatcher.fill_probe();
    health.add_probe(move || {
        let fill = fill()?;
        (fill.fraction() >= 0.9).then(|| {
            format!(
                "parse queue: {} of {} places and {} of {} bytes taken; senders are being held back",
                fill.messages, fill.capacity, fill.bytes, fill.max_bytes
            )
        })
    });
    drop(dispatcher);
    let metrics_server = match config.metrics.address.as_str() {
        "" => None,
        address => {
            let address: SocketAddr = address.parse().context("metrics.address")?;
            let socket = tcp::bind(address)
                .with_context(|| format!("cannot bind the metrics address {address}"))?;
            tracing::info!(address = %socket.local_addr()?, "serving /metrics, /healthz and /readyz");
            Some(tokio::spawn(telemetry::http::serve(
                socket,
                handle,
                health.clone(),
                shutdown_rx.clone(),
            )))
        }
    };

    let mut listeners = JoinSet::new();
    for socket in sockets {
        match socket {
            Socket::Stream(socket, listener) => {
                listeners.spawn(listener.serve(socket, shutdown_rx.clone()));
            }
            Socket::Datagram(socks, listener) => {
                for socket in socks {
                    listeners.spawn(listener.clone().serve(socket, shutdown_rx.clone()));
                }
            }
        }
    }
    let s3_readers: Vec<Arc<S3Reader>> = s3_readers
        .into_iter()
        .map(|(reader, dispatcher)| {
            listeners.spawn(reader.clone().run(dispatcher, shutdown_rx.clone()));
            reader
        })
        .collect();
    for (server, metrics) in tls_watchers {
        tokio::spawn(server.watch(metrics, shutdown_rx.clone()));
    }
    for b in &bound {
        tracing::info!(listener = %b.name, transport = b.transport.as_str(), address = %b.address, "listening");
    }
    tracing::info!(workers, sink = sink_name, "sluice is running");
    health.set_listening(true);

    stop.await;
    health.set_listening(false);
    let deadline = config.general.shutdown_timeout.0;
    tracing::info!(
        deadline_seconds = deadline.as_secs_f64(),
        "stopping: no new connections; draining"
    );
    let _ = shutdown_tx.send(true);
    let drain = async {
        while listeners.join_next().await.is_some() {}
        // Every dispatcher is gone now: the workers finish the queue and drop their sink
        // senders, and the sink finishes in turn.
        tokio::task::spawn_blocking(move || {
            for worker in worker_threads {
                let _ = worker.join();
            }
            let _ = sink_thread.join();
        })
        .await
    };
    let drained = tokio::time::timeout(deadline, drain).await.is_ok();
    // The sink is closed: every object whose events all went out is in its checkpoint.
    for reader in &s3_readers {
        reader.save_checkpoint();
    }
    if let Some(server) = metrics_server {
        server.abort();
    }
    let report = RunReport {
        accepted: accepted.load(Ordering::Relaxed),
        written: written.load(Ordering::Relaxed),
        drained,
    };
    if drained {
        tracing::info!(
            accepted = report.accepted,
            written = report.written,
            "stopped; everything accepted was written"
        );
    } else {
        tracing::error!(
            accepted = report.accepted,
            written = report.written,
            not_written = report.accepted.saturating_sub(report.written),
            "shutdown deadline passed; events not written are lost"
        );
    }
    Ok(report)
}

/// What `sluice check-config` checks beyond the file itself: every TLS certificate and key
/// loads, and the Kafka settings make a producer (unknown librdkafka properties are caught
/// here). Nothing is bound and nothing connects.
pub fn preflight(config: &Config) -> Result<(), Vec<String>> {
    let mut problems = Vec::new();
    for l in &config.listeners {
        if let Some(tls) = &l.tls {
            if let Err(e) = TlsServer::new(tls.clone()) {
                problems.push(format!("listener {:?}: {e}", l.name));
            }
        }
    }
    for source in &config.s3_sources {
        if let Err(e) = S3Reader::new(source, &config.general) {
            problems.push(e);
        }
    }
    #[cfg(feature = "kafka")]
    if let config::Sink::Kafka(k) = &config.sink {
        use rdkafka::producer::BaseProducer;
        if let Err(e) = k.client_config().create::<BaseProducer>() {
            problems.push(format!("sink: Kafka producer settings: {e}"));
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems)
    }
}

/// Resolves on SIGTERM or SIGINT.
pub async fn termination_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).expect("install a SIGTERM handler");
    let mut int = signal(SignalKind::interrupt()).expect("install a SIGINT handler");
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM"),
        _ = int.recv() => tracing::info!("SIGINT"),
    }
}
