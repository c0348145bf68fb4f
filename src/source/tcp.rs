//! TCP and TLS syslog listeners: accept, check the allowlist and the connection limits,
//! (for TLS) handshake, then read frames and queue them for the parse workers.
//!
//! A connection reads only when the parse queue has room, so a slow sink closes the
//! sender's TCP window instead of growing memory; and it never holds more than one frame
//! plus one read buffer, whatever the sender does. An idle connection holds a small read
//! buffer only: the large one exists while data flows, so 10,000 quiet senders cost little.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio::time::Instant;

use super::framing::{Frame, Framer};
use super::limits::ConnectionLimits;
use super::metrics::{closed, truncated, ListenerMetrics};
use super::tls::TlsServer;
use super::{now_ms, Message, ReceiveInfo};
use crate::queue::{Dispatcher, TRICKLE_WAIT};

/// Read size while data flows.
const READ_BUFFER: usize = 64 * 1024;
/// While data flows, a read goes into what is left of the current READ_BUFFER until less
/// than this is left (frames hold on to the buffer they were read into; see
/// `Framer::read_buffer`). At most this much of each READ_BUFFER stays unfilled.
const LEAST_READ: usize = 16 * 1024;
/// Read size of a quiet connection (part of its task, so always resident). A read that fills
/// it means data is flowing: the next reads use a READ_BUFFER.
const IDLE_READ_BUFFER: usize = 2 * 1024;

/// A read shorter than this means the connection outpaces its sender: it then waits
/// [`TRICKLE_WAIT`] before reading again, so it reads (and queues) once per many messages
/// rather than per one or two.
const TRICKLE_READ: usize = 16 * 1024;
// A read shorter than TRICKLE_READ must mean the sender is slow, not that the buffer had
// less room than that.
const _: () = assert!(LEAST_READ >= TRICKLE_READ);

/// What every connection of one listener shares.
pub struct StreamListener {
    /// Template for each connection's `ReceiveInfo` (listener name, transport, tags, grammar).
    pub info: ReceiveInfo,
    pub metrics: ListenerMetrics,
    pub dispatcher: Dispatcher,
    pub limits: Arc<ConnectionLimits>,
    pub allow: Vec<crate::config::Cidr>,
    pub max_message_bytes: usize,
    pub idle_timeout: Duration,
    pub frame_timeout: Duration,
    pub tls: Option<Arc<TlsServer>>,
    /// Connection ids, shared by all listeners: the key that keeps a connection on one
    /// parse worker.
    pub connection_ids: Arc<AtomicU64>,
}

/// Binds a listening socket (IPv4 or IPv6; `[::]` accepts both families).
pub fn bind(address: SocketAddr) -> std::io::Result<TcpListener> {
    let domain = socket2::Domain::for_address(address);
    let socket = socket2::Socket::new(domain, socket2::Type::STREAM, Some(socket2::Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    socket.set_nonblocking(true)?;
    socket.bind(&address.into())?;
    socket.listen(1024)?;
    TcpListener::from_std(socket.into())
}

impl StreamListener {
    fn allows(&self, ip: std::net::IpAddr) -> bool {
        crate::config::allowed(&self.allow, ip)
    }

    /// Accepts until shutdown, then waits for every connection to finish its frames.
    pub async fn serve(
        self: Arc<Self>,
        listener: TcpListener,
        mut shutdown: watch::Receiver<bool>,
    ) {
        let mut connections = JoinSet::new();
        loop {
            while connections.try_join_next().is_some() {}
            let accepted = tokio::select! {
                biased;
                _ = shutdown.changed() => break,
                accepted = listener.accept() => accepted,
            };
            let (stream, peer) = match accepted {
                Ok(pair) => pair,
                Err(e) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    tracing::warn!(listener = %self.info.listener, error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            if !self.allows(peer.ip()) {
                self.metrics.refused(super::metrics::refused::ALLOWLIST);
                tracing::debug!(listener = %self.info.listener, %peer, "refused: not in the allowlist");
                continue;
            }
            let permit = match self.limits.acquire(peer.ip()) {
                Ok(permit) => permit,
                Err(reason) => {
                    self.metrics.refused(reason);
                    tracing::debug!(listener = %self.info.listener, %peer, reason, "refused");
                    continue;
                }
            };
            self.metrics.connections_accepted.increment(1);
            let this = self.clone();
            let shutdown = shutdown.clone();
            connections.spawn(async move {
                this.metrics.connections_open.increment(1.0);
                this.connection(stream, peer, shutdown).await;
                this.metrics.connections_open.decrement(1.0);
                drop(permit);
            });
        }
        drop(listener);
        while connections.join_next().await.is_some() {}
    }

    async fn connection(
        &self,
        stream: TcpStream,
        peer: SocketAddr,
        shutdown: watch::Receiver<bool>,
    ) {
        let mut info = self.info.clone();
        info.peer = Some(Arc::from(peer.to_string()));
        let id = self.connection_ids.fetch_add(1, Ordering::Relaxed);
        match &self.tls {
            None => self.read_frames(stream, info, id, shutdown).await,
            Some(tls) => match tls.handshake(stream, &self.metrics).await {
                Ok((stream, subject)) => {
                    info.tls_client_subject = subject.map(Arc::from);
                    self.read_frames(stream, info, id, shutdown).await
                }
                Err(reason) => {
                    tracing::info!(listener = %self.info.listener, %peer, reason, "TLS handshake failed");
                }
            },
        }
    }

    async fn read_frames<S: AsyncRead + Unpin>(
        &self,
        mut stream: S,
        info: ReceiveInfo,
        id: u64,
        mut shutdown: watch::Receiver<bool>,
    ) {
        let info = Arc::new(info);
        let mut framer = Framer::new(self.max_message_bytes);
        let mut idle_buffer = [0u8; IDLE_READ_BUFFER];
        // Set once a read fills idle_buffer: reads then go straight into the framer's
        // buffer (its spare capacity, never zeroed), READ_BUFFER at a time.
        let mut flowing = false;
        let mut partial_since: Option<Instant> = None;
        let mut idle_since = Instant::now();
        let mut trickle = false;
        let end: &'static str = loop {
            if trickle {
                tokio::select! {
                    biased;
                    _ = shutdown.changed() => break closed::SHUTDOWN,
                    _ = tokio::time::sleep(TRICKLE_WAIT) => {}
                }
            }
            let deadline = match partial_since {
                Some(since) => (since + self.frame_timeout).min(idle_since + self.idle_timeout),
                None => idle_since + self.idle_timeout,
            };
            let read = tokio::select! {
                biased;
                _ = shutdown.changed() => break closed::SHUTDOWN,
                read = tokio::time::timeout_at(
                    deadline,
                    read_some(
                        &mut stream,
                        &mut idle_buffer,
                        flowing.then(|| framer.read_buffer(LEAST_READ, READ_BUFFER)),
                    ),
                ) => read,
            };
            let n = match read {
                Err(_elapsed) => {
                    if partial_since.is_some_and(|s| s + self.frame_timeout <= Instant::now()) {
                        break closed::FRAME_TIMEOUT;
                    }
                    break closed::IDLE_TIMEOUT;
                }
                Ok(Ok(0)) => break closed::EOF,
                Ok(Ok(n)) => n,
                Ok(Err(e)) => {
                    tracing::debug!(listener = %info.listener, peer = ?info.peer, error = %e, "read failed");
                    break closed::ERROR;
                }
            };
            let now = Instant::now();
            idle_since = now;
            trickle = n < TRICKLE_READ;
            self.metrics.bytes.increment(n as u64);
            if !flowing {
                framer.push(&idle_buffer[..n]);
            }
            let received_ms = now_ms();
            let mut batch = Vec::new();
            while let Some(frame) = framer.next_frame() {
                batch.push(self.message(frame, &info, received_ms, truncated::TOO_LONG));
            }
            self.account(&mut framer);
            if !flowing && n == IDLE_READ_BUFFER {
                flowing = true;
            } else if flowing && n < IDLE_READ_BUFFER && !framer.has_partial() {
                // The sender went quiet: give the large buffer back.
                flowing = false;
                framer.release_buffer();
            }
            partial_since = match (framer.has_partial(), partial_since) {
                (false, _) => None,
                (true, Some(since)) if batch.is_empty() => Some(since),
                (true, _) => Some(now),
            };
            if !batch.is_empty() && !self.dispatch(id, batch).await {
                break closed::SHUTDOWN;
            }
        };
        // Whatever the sender managed to deliver is kept, flagged as cut.
        let reason = match end {
            closed::FRAME_TIMEOUT => truncated::FRAME_TIMEOUT,
            closed::SHUTDOWN => truncated::SHUTDOWN,
            _ => truncated::CONNECTION_CLOSED,
        };
        let mut rest = Vec::new();
        while let Some(frame) = framer.finish() {
            rest.push(self.message(frame, &info, now_ms(), reason));
        }
        self.account(&mut framer);
        if !rest.is_empty() {
            self.dispatch(id, rest).await;
        }
        if end == closed::FRAME_TIMEOUT {
            tracing::info!(listener = %info.listener, peer = ?info.peer, "closed a connection whose frame did not complete in time");
        }
        self.metrics.closed(end);
    }

    fn message(
        &self,
        frame: Frame,
        info: &Arc<ReceiveInfo>,
        received_ms: i64,
        reason: &'static str,
    ) -> Message {
        self.metrics.message_size.record(frame.bytes.len() as f64);
        if frame.truncated {
            self.metrics.truncated(reason);
        }
        let mut message = Message::new(frame.bytes, info.clone(), received_ms);
        message.truncated = frame.truncated;
        message
    }

    fn account(&self, framer: &mut Framer) {
        let discarded = framer.take_discarded();
        if discarded > 0 {
            self.metrics.bytes_discarded.increment(discarded);
        }
        let errors = framer.take_framing_errors();
        if errors > 0 {
            self.metrics.framing_errors.increment(errors);
        }
    }

    /// False when the workers are gone (the process is stopping past its deadline).
    async fn dispatch(&self, id: u64, batch: Vec<Message>) -> bool {
        // Counted per batch, not per message: a shared counter's cache line bouncing
        // between the cores was a visible part of the listener thread's time.
        self.metrics.messages.increment(batch.len() as u64);
        self.metrics.batches.increment(1);
        match self
            .dispatcher
            .send(id, batch, &self.metrics.queue_blocked)
            .await
        {
            Ok(()) => true,
            Err(closed) => {
                tracing::error!(listener = %self.info.listener, lost = closed.0.len(), "parse queue closed; messages not processed");
                false
            }
        }
    }
}

/// One read: appended to `flowing` (the framer's buffer) while data flows, else into `idle`.
async fn read_some<S: AsyncRead + Unpin>(
    stream: &mut S,
    idle: &mut [u8],
    flowing: Option<&mut bytes::BytesMut>,
) -> std::io::Result<usize> {
    match flowing {
        Some(buffer) => stream.read_buf(buffer).await,
        None => stream.read(idle).await,
    }
}
