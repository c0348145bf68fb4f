//! Counters of one listener, registered once at start-up so the receive path only
//! increments atomics. Names and labels are documented in docs/metrics.md.

use metrics::{counter, gauge, histogram, Counter, Gauge, Histogram};

#[derive(Clone)]
pub struct ListenerMetrics {
    name: String,
    transport: &'static str,
    pub messages: Counter,
    /// Batches handed to the parse queue: messages / batches is how many each wake-up read.
    pub batches: Counter,
    pub bytes: Counter,
    pub connections_accepted: Counter,
    pub connections_open: Gauge,
    pub bytes_discarded: Counter,
    pub framing_errors: Counter,
    /// Each wait for room in the parse queue (back-pressure), in seconds.
    pub queue_blocked: Histogram,
    /// Size of each message after framing.
    pub message_size: Histogram,
}

/// Why a connection or datagram was refused.
pub mod refused {
    pub const ALLOWLIST: &str = "allowlist";
    pub const MAX_CONNECTIONS: &str = "max_connections";
    pub const MAX_CONNECTIONS_PER_IP: &str = "max_connections_per_ip";
    pub const ALL: &[&str] = &[ALLOWLIST, MAX_CONNECTIONS, MAX_CONNECTIONS_PER_IP];
}

/// Why a connection ended.
pub mod closed {
    pub const EOF: &str = "eof";
    pub const IDLE_TIMEOUT: &str = "idle_timeout";
    pub const FRAME_TIMEOUT: &str = "frame_timeout";
    pub const ERROR: &str = "error";
    pub const SHUTDOWN: &str = "shutdown";
    pub const ALL: &[&str] = &[EOF, IDLE_TIMEOUT, FRAME_TIMEOUT, ERROR, SHUTDOWN];
}

/// Why a message was cut.
pub mod truncated {
    pub const TOO_LONG: &str = "too_long";
    pub const CONNECTION_CLOSED: &str = "connection_closed";
    pub const FRAME_TIMEOUT: &str = "frame_timeout";
    pub const SHUTDOWN: &str = "shutdown";
    pub const ALL: &[&str] = &[TOO_LONG, CONNECTION_CLOSED, FRAME_TIMEOUT, SHUTDOWN];
}

/// Why UDP datagrams were lost.
pub mod udp_dropped {
    pub const KERNEL_BUFFER_FULL: &str = "kernel_buffer_full";
    pub const QUEUE_CLOSED: &str = "queue_closed";
}

impl ListenerMetrics {
    /// Registers the listener's series at zero, so that dashboards and alerts see every
    /// listener and reason from the start, not only after the first event.
    pub fn new(listener: &str, transport: &'static str) -> ListenerMetrics {
        let l = listener.to_string();
        if transport == "udp" {
            counter!("sluice_datagrams_refused_total", "listener" => l.clone(), "reason" => refused::ALLOWLIST).increment(0);
            counter!("sluice_udp_datagrams_dropped_total", "listener" => l.clone(), "reason" => udp_dropped::KERNEL_BUFFER_FULL).increment(0);
            counter!("sluice_messages_truncated_total", "listener" => l.clone(), "reason" => truncated::TOO_LONG).increment(0);
        } else {
            for reason in refused::ALL {
                counter!("sluice_connections_refused_total", "listener" => l.clone(), "reason" => *reason).increment(0);
            }
            for reason in closed::ALL {
                counter!("sluice_connections_closed_total", "listener" => l.clone(), "reason" => *reason).increment(0);
            }
            for reason in truncated::ALL {
                counter!("sluice_messages_truncated_total", "listener" => l.clone(), "reason" => *reason).increment(0);
            }
        }
        if transport == "tls" {
            for reason in super::tls::HANDSHAKE_FAILURES {
                counter!("sluice_tls_handshake_failures_total", "listener" => l.clone(), "reason" => *reason).increment(0);
            }
            for result in ["ok", "error"] {
                counter!("sluice_tls_reloads_total", "listener" => l.clone(), "result" => result)
                    .increment(0);
            }
        }
        ListenerMetrics {
            messages: counter!("sluice_messages_received_total", "listener" => l.clone(), "transport" => transport),
            batches: counter!("sluice_batches_queued_total", "listener" => l.clone(), "transport" => transport),
            bytes: counter!("sluice_bytes_received_total", "listener" => l.clone(), "transport" => transport),
            connections_accepted: counter!("sluice_connections_accepted_total", "listener" => l.clone()),
            connections_open: gauge!("sluice_connections_open", "listener" => l.clone()),
            bytes_discarded: counter!("sluice_bytes_discarded_total", "listener" => l.clone()),
            framing_errors: counter!("sluice_framing_errors_total", "listener" => l.clone()),
            queue_blocked: histogram!("sluice_queue_blocked_seconds", "listener" => l.clone()),
            message_size: histogram!("sluice_message_size_bytes", "listener" => l.clone()),
            name: l,
            transport,
        }
    }

    pub fn refused(&self, reason: &'static str) {
        counter!("sluice_connections_refused_total", "listener" => self.name.clone(), "reason" => reason)
            .increment(1);
    }

    pub fn closed(&self, reason: &'static str) {
        counter!("sluice_connections_closed_total", "listener" => self.name.clone(), "reason" => reason)
            .increment(1);
    }

    pub fn truncated(&self, reason: &'static str) {
        counter!("sluice_messages_truncated_total", "listener" => self.name.clone(), "reason" => reason)
            .increment(1);
    }

    pub fn tls_handshake_failed(&self, reason: &'static str) {
        counter!("sluice_tls_handshake_failures_total", "listener" => self.name.clone(), "reason" => reason)
            .increment(1);
    }

    pub fn tls_reload(&self, result: &'static str) {
        counter!("sluice_tls_reloads_total", "listener" => self.name.clone(), "result" => result)
            .increment(1);
    }

    pub fn udp_dropped(&self, reason: &'static str, n: u64) {
        counter!("sluice_udp_datagrams_dropped_total", "listener" => self.name.clone(), "reason" => reason)
            .increment(n);
    }

    pub fn datagram_refused(&self, reason: &'static str) {
        counter!("sluice_datagrams_refused_total", "listener" => self.name.clone(), "reason" => reason)
            .increment(1);
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn transport(&self) -> &'static str {
        self.transport
    }
}
