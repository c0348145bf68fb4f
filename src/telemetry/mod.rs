//! Metrics and health, beside the pipeline: the Prometheus recorder, logging set-up, and a
//! small HTTP endpoint for `/metrics`, `/healthz` and `/readyz`.

pub mod http;
pub mod process;
pub mod sources;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

/// Bucket bounds (seconds) of every `_seconds` histogram: from 10 µs (a queue that was
/// nearly free) to a minute (a broker outage).
const SECONDS_BUCKETS: &[f64] = &[
    0.00001, 0.0001, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0, 30.0, 60.0,
];
const BYTES_BUCKETS: &[f64] = &[
    128.0, 256.0, 512.0, 1024.0, 2048.0, 4096.0, 8192.0, 16384.0, 32768.0, 65536.0, 262144.0,
];

/// Installs the process-wide Prometheus recorder (once; later calls return the same
/// handle).
pub fn install() -> PrometheusHandle {
    static HANDLE: Mutex<Option<PrometheusHandle>> = Mutex::new(None);
    let mut guard = HANDLE.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(handle) = guard.as_ref() {
        return handle.clone();
    }
    let handle = PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), SECONDS_BUCKETS)
        .and_then(|b| b.set_buckets_for_metric(Matcher::Suffix("_bytes".into()), BYTES_BUCKETS))
        .expect("bucket lists are not empty")
        .install_recorder()
        .expect("no other metrics recorder is installed");
    spawn_upkeep(handle.clone());
    describe();
    metrics::gauge!("sluice_build_info", "version" => env!("CARGO_PKG_VERSION")).set(1.0);
    *guard = Some(handle.clone());
    handle
}

/// How often histograms' raw samples are folded into their buckets.
const UPKEEP_EVERY: std::time::Duration = std::time::Duration::from_secs(5);

/// Name of the thread that runs the upkeep.
pub const UPKEEP_THREAD: &str = "sluice-metrics";

/// Histograms keep every raw sample (8 bytes each, several per message) until upkeep folds
/// them into buckets, and the recorder does not schedule it itself. A thread of its own,
/// started with the recorder, does: tied to the HTTP endpoint, it did not run when
/// `metrics.address` was empty, and memory grew by about 29 bytes a message without end.
fn spawn_upkeep(handle: PrometheusHandle) {
    let spawned = std::thread::Builder::new()
        .name(UPKEEP_THREAD.into())
        .spawn(move || loop {
            std::thread::sleep(UPKEEP_EVERY);
            handle.run_upkeep();
        });
    if let Err(e) = spawned {
        // Without it a long run's memory grows: say so loudly, but sluice still works.
        tracing::error!(error = %e, "cannot start the metrics upkeep thread; histogram samples will accumulate");
    }
}

/// HELP text of every metric (docs/metrics.md has the labels and more).
fn describe() {
    use metrics::{describe_counter, describe_gauge, describe_histogram, Unit};
    describe_gauge!(
        "sluice_build_info",
        "Always 1; the version label says which sluice runs."
    );
    describe_counter!(
        "sluice_messages_received_total",
        Unit::Count,
        "Messages after framing, per listener and transport."
    );
    describe_counter!(
        "sluice_batches_queued_total",
        Unit::Count,
        "Batches of messages a listener handed to the parse queue (one or more per read or wake-up)."
    );
    describe_counter!(
        "sluice_bytes_received_total",
        Unit::Bytes,
        "Bytes read from sockets (TLS: after decryption)."
    );
    describe_counter!(
        "sluice_connections_accepted_total",
        Unit::Count,
        "TCP/TLS connections accepted."
    );
    describe_gauge!(
        "sluice_connections_open",
        Unit::Count,
        "TCP/TLS connections open now."
    );
    describe_counter!(
        "sluice_connections_refused_total",
        Unit::Count,
        "Connections closed at once, by reason (allowlist, limits)."
    );
    describe_counter!(
        "sluice_connections_closed_total",
        Unit::Count,
        "Connections ended, by reason."
    );
    describe_counter!(
        "sluice_datagrams_refused_total",
        Unit::Count,
        "UDP datagrams from senders outside the allowlist."
    );
    describe_counter!(
        "sluice_udp_datagrams_dropped_total",
        Unit::Count,
        "UDP datagrams lost, by reason (kernel_buffer_full: the socket buffer overflowed)."
    );
    describe_counter!(
        "sluice_messages_truncated_total",
        Unit::Count,
        "Messages cut (kept, flagged message_truncated), by reason."
    );
    describe_counter!(
        "sluice_bytes_discarded_total",
        Unit::Bytes,
        "Bytes thrown away after a cut, up to the next frame."
    );
    describe_counter!(
        "sluice_framing_errors_total",
        Unit::Count,
        "Octet-counted frames that did not start with a length."
    );
    describe_counter!(
        "sluice_tls_handshake_failures_total",
        Unit::Count,
        "TLS handshakes that failed, by reason."
    );
    describe_counter!(
        "sluice_tls_reloads_total",
        Unit::Count,
        "Certificate reloads, by result."
    );
    describe_gauge!(
        "sluice_queue_depth",
        Unit::Count,
        "Messages waiting for the parse workers."
    );
    describe_gauge!(
        "sluice_queue_capacity",
        Unit::Count,
        "Capacity of the parse queue (general.queue_capacity)."
    );
    describe_gauge!(
        "sluice_queue_bytes",
        Unit::Bytes,
        "Bytes of the messages waiting for the parse workers."
    );
    describe_gauge!(
        "sluice_queue_max_bytes",
        Unit::Bytes,
        "Byte bound of the parse queue (general.queue_max_bytes)."
    );
    describe_histogram!(
        "sluice_queue_blocked_seconds",
        Unit::Seconds,
        "Each wait of a listener for room in the parse queue (back-pressure)."
    );
    describe_counter!(
        "sluice_parse_total",
        Unit::Count,
        "Parse outcomes by grammar and status."
    );
    describe_counter!(
        "sluice_parse_errors_total",
        Unit::Count,
        "Parse errors by grammar and stable error code."
    );
    describe_gauge!(
        "sluice_spool_oldest_event_age_seconds",
        Unit::Seconds,
        "Age of the oldest event in the disk spool (its oldest segment's first event); 0 when empty."
    );
    describe_histogram!(
        "sluice_message_size_bytes",
        Unit::Bytes,
        "Size of each message after framing (S3: each record), per listener."
    );
    describe_gauge!(
        "sluice_source_last_seen_timestamp_seconds",
        Unit::Seconds,
        "Unix time of the last message from each source (grammar and reporting host)."
    );
    describe_counter!(
        "sluice_source_messages_total",
        Unit::Count,
        "Messages from each source (grammar and reporting host)."
    );
    describe_gauge!(
        "sluice_source_last_heartbeat_timestamp_seconds",
        Unit::Seconds,
        "Unix time of the last heartbeat event from each source (grammar and reporting host)."
    );
    describe_gauge!(
        "sluice_heartbeat_interval_seconds",
        Unit::Seconds,
        "Heartbeat interval configured per grammar ([heartbeats]), as set on the vendor's side."
    );
    describe_gauge!(
        "sluice_s3_objects_listed",
        Unit::Count,
        "Objects under the S3 source's prefix at the last listing."
    );
    describe_gauge!(
        "sluice_s3_objects_pending",
        Unit::Count,
        "Listed objects not yet read and delivered."
    );
    describe_gauge!(
        "sluice_s3_lag_seconds",
        Unit::Seconds,
        "Age of the oldest object not yet read (0 when none waits)."
    );
    describe_gauge!(
        "sluice_s3_last_poll_timestamp_seconds",
        Unit::Seconds,
        "Unix time of the last successful listing of the S3 source."
    );
    describe_counter!(
        "sluice_s3_objects_read_total",
        Unit::Count,
        "S3 objects read to the end."
    );
    describe_counter!(
        "sluice_s3_objects_completed_total",
        Unit::Count,
        "S3 objects whose every event was delivered, recorded in the checkpoint."
    );
    describe_counter!(
        "sluice_s3_objects_failed_total",
        Unit::Count,
        "S3 listings and objects that failed, by reason."
    );
    describe_counter!(
        "sluice_s3_records_total",
        Unit::Count,
        "Records of S3 objects queued for parsing."
    );
    describe_counter!(
        "sluice_s3_bytes_total",
        Unit::Bytes,
        "S3 object bytes read, as stored."
    );
    describe_counter!(
        "sluice_events_written_total",
        Unit::Count,
        "Events written by the stdout, file or null sink."
    );
    describe_counter!(
        "sluice_sink_errors_total",
        Unit::Count,
        "Write or flush errors of the stdout or file sink (retried)."
    );
    describe_counter!(
        "sluice_events_delivered_total",
        Unit::Count,
        "Events acknowledged by Kafka, by topic."
    );
    describe_counter!(
        "sluice_events_dead_lettered_total",
        Unit::Count,
        "Dead-letter records acknowledged by Kafka, by topic."
    );
    describe_counter!(
        "sluice_events_dropped_total",
        Unit::Count,
        "Events Kafka refused for good, by reason."
    );
    describe_counter!(
        "sluice_kafka_errors_total",
        Unit::Count,
        "Kafka errors: class client (retried) or fatal (dropped)."
    );
    describe_histogram!(
        "sluice_kafka_delivery_seconds",
        Unit::Seconds,
        "From receiving a message to Kafka's acknowledgement of its event."
    );
    describe_histogram!(
        "sluice_sink_blocked_seconds",
        Unit::Seconds,
        "Each wait of the Kafka sink for room in the producer queue."
    );
}

type Probe = Box<dyn Fn() -> Option<String> + Send + Sync>;

/// Readiness as the endpoints report it: ready once every listener is bound, while the
/// sink can deliver, and while the parse queue has room; otherwise the reasons. A load
/// balancer that sees "not ready" sends new connections to another sluice.
#[derive(Default)]
pub struct Health {
    listening: AtomicBool,
    problems: Mutex<Vec<String>>,
    probes: Mutex<Vec<Probe>>,
}

impl Health {
    pub fn new() -> Arc<Health> {
        Arc::new(Health::default())
    }

    pub fn set_listening(&self, on: bool) {
        self.listening.store(on, Ordering::Release);
    }

    pub fn set_problem(&self, key: &str, problem: Option<String>) {
        let mut problems = self.problems.lock().unwrap_or_else(|p| p.into_inner());
        problems.retain(|p| !p.starts_with(key));
        if let Some(p) = problem {
            problems.push(format!("{key}: {p}"));
        }
    }

    /// A check run at each readiness request: `Some(reason)` when not ready.
    pub fn add_probe(&self, probe: impl Fn() -> Option<String> + Send + Sync + 'static) {
        self.probes
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(Box::new(probe));
    }

    /// `Ok` when ready, else the reasons.
    pub fn readiness(&self) -> Result<(), Vec<String>> {
        let mut reasons = self
            .problems
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        reasons.extend(
            self.probes
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .iter()
                .filter_map(|probe| probe()),
        );
        if !self.listening.load(Ordering::Acquire) {
            reasons.insert(0, "listeners: not bound (starting or stopping)".into());
        }
        if reasons.is_empty() {
            Ok(())
        } else {
            Err(reasons)
        }
    }
}

/// Sets up `tracing` on stderr: human-readable or JSON lines; level from `level` unless
/// RUST_LOG is set.
pub fn init_logging(json: bool, level: &str) {
    use tracing_subscriber::EnvFilter;
    // object_store logs each retry of an S3 request at info; sluice logs the outcome.
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new(format!("{level},object_store=warn")));
    use std::io::IsTerminal;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    let _ = if json {
        builder.json().flatten_event(true).try_init()
    } else {
        builder.try_init()
    };
}
