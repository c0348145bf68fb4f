//! The Kafka sink, on librdkafka (rdkafka): idempotent, `acks=all`, zstd by default, and
//! any librdkafka property passed through from the configuration (SASL, SSL, …).
//!
//! Accounting: an event counts as written only when the broker acknowledged it
//! (`sluice_events_delivered_total`, or `sluice_events_dead_lettered_total` for the
//! dead-letter topic). Retriable errors (a broker down, a timeout) are retried without end
//! (`message.timeout.ms = 0`): the events wait in the producer's bounded queue, and when
//! it is full the sink waits, which holds back the parse workers and then the listeners.
//! Fatal errors (the topic does not exist, the message is too large, not authorised) end
//! the event as dropped, counted by reason and logged.

use std::collections::{BTreeMap, HashMap};
use std::io;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use metrics::{counter, gauge, histogram, Counter, Gauge, Histogram};
use rdkafka::config::ClientConfig;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext};
use rdkafka::ClientContext;
use rdkafka::Message as _;

use super::producer::PolledProducer;
use super::spool::{AppendError, Fsync, Spool, SpoolRecord};
use super::{Delivery, Sink, SinkRecord};
use crate::source::now_ms;
use crate::telemetry::Health;

/// The producer settings sluice starts from; the configuration's `properties` override any.
pub const DEFAULT_PROPERTIES: &[(&str, &str)] = &[
    ("enable.idempotence", "true"),
    ("acks", "all"),
    ("compression.type", "zstd"),
    ("linger.ms", "5"),
    ("batch.size", "1000000"),
    ("queue.buffering.max.messages", "100000"),
    // 64 MiB: at full rate on 2 cores this held the same throughput as 256 MiB with half
    // the peak memory and half the queueing latency (docs/performance.md, session 18). The
    // spool, not this queue, is what rides out a broker outage.
    ("queue.buffering.max.kbytes", "65536"),
    ("message.timeout.ms", "0"),
];

/// What the delivery callback needs to know about each event.
pub struct Pending {
    received_ms: i64,
    dead_letter: bool,
    /// The spool segment the event was replayed from.
    spool_segment: Option<u64>,
    receipt: Option<Arc<crate::source::Receipt>>,
}

pub struct DeliveryReports {
    written: Arc<AtomicU64>,
    health: Arc<Health>,
    /// No broker reachable, as librdkafka last said (cleared by the next acknowledgement).
    brokers_down: Arc<AtomicBool>,
    /// Spool segments of events that are done with (delivered or dropped).
    acks: Arc<Mutex<Vec<u64>>>,
    latency: Histogram,
    counters: Mutex<HashMap<&'static str, HashMap<String, Counter>>>,
    last_logged: Mutex<HashMap<String, Instant>>,
}

impl DeliveryReports {
    /// Counts one event; the handle is looked up by borrowed name, so a known topic or
    /// reason costs no allocation on the delivery path.
    fn count(&self, name: &'static str, label: &'static str, value: &str) {
        let mut counters = self.counters.lock().unwrap_or_else(|p| p.into_inner());
        let by_value = counters.entry(name).or_default();
        match by_value.get(value) {
            Some(counter) => counter.increment(1),
            None => {
                let counter = counter!(name, label => value.to_string());
                counter.increment(1);
                by_value.insert(value.to_string(), counter);
            }
        }
    }

    /// At most one log line per kind every 10 s: a broker outage must not flood the log.
    fn log_limited(&self, kind: &str, line: impl FnOnce()) {
        let mut last = self.last_logged.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        match last.get(kind) {
            Some(at) if now.duration_since(*at) < Duration::from_secs(10) => {}
            _ => {
                last.insert(kind.to_string(), now);
                line();
            }
        }
    }
}

/// Every reason an event can be dropped with.
pub const DROP_REASONS: &[&str] = &[
    "spool_full",
    "unknown_topic",
    "message_too_large",
    "not_authorised",
    "invalid_topic",
    "delivery_failed",
    "produce_failed",
];

/// A bounded set of reasons for events that cannot be delivered at all.
pub fn fatal_reason(code: RDKafkaErrorCode) -> Option<&'static str> {
    use RDKafkaErrorCode::*;
    Some(match code {
        UnknownTopic | UnknownTopicOrPartition | UnknownPartition => "unknown_topic",
        MessageSizeTooLarge | InvalidMessageSize => "message_too_large",
        TopicAuthorizationFailed
        | ClusterAuthorizationFailed
        | SaslAuthenticationFailed
        | Authentication => "not_authorised",
        InvalidTopic => "invalid_topic",
        _ => return None,
    })
}

const HEALTH_KEY: &str = "sink";

impl ClientContext for DeliveryReports {
    fn error(&self, error: KafkaError, reason: &str) {
        if error.rdkafka_error_code() == Some(RDKafkaErrorCode::AllBrokersDown) {
            self.brokers_down.store(true, Ordering::Relaxed);
            self.health.set_problem(
                HEALTH_KEY,
                Some("no Kafka broker is reachable; events wait in memory".into()),
            );
        }
        let code = error
            .rdkafka_error_code()
            .map(|c| format!("{c:?}"))
            .unwrap_or_else(|| "other".into());
        counter!("sluice_kafka_errors_total", "class" => "client", "code" => code.clone())
            .increment(1);
        self.log_limited(&code, || {
            tracing::warn!(error = %error, reason, "Kafka client error (retried; logged once per 10 s per kind)")
        });
    }
}

impl ProducerContext for DeliveryReports {
    type DeliveryOpaque = Box<Pending>;

    fn delivery(&self, result: &DeliveryResult<'_>, pending: Box<Pending>) {
        // Delivered, or dropped for good and counted: either way the source is done with it.
        if let Some(receipt) = &pending.receipt {
            receipt.settle();
        }
        if let Some(segment) = pending.spool_segment {
            self.acks
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push(segment);
        }
        match result {
            Ok(message) => {
                if self.brokers_down.swap(false, Ordering::Relaxed) {
                    self.health.set_problem(HEALTH_KEY, None);
                }
                let seconds = (now_ms() - pending.received_ms).max(0) as f64 / 1000.0;
                self.latency.record(seconds);
                let name = if pending.dead_letter {
                    "sluice_events_dead_lettered_total"
                } else {
                    "sluice_events_delivered_total"
                };
                self.count(name, "topic", message.topic());
                self.written.fetch_add(1, Ordering::Relaxed);
            }
            Err((error, message)) => {
                let code = error.rdkafka_error_code();
                let reason = code.and_then(fatal_reason).unwrap_or("delivery_failed");
                self.count("sluice_events_dropped_total", "reason", reason);
                counter!("sluice_kafka_errors_total", "class" => "fatal", "code" => reason)
                    .increment(1);
                let topic = message.topic().to_string();
                self.log_limited(reason, || {
                    tracing::error!(topic, error = %error, reason, "event not delivered: the broker refused it (logged once per 10 s per reason)")
                });
            }
        }
    }
}

/// Where events wait on disk while Kafka cannot take them.
#[derive(Clone, Debug)]
pub struct SpoolSettings {
    pub dir: std::path::PathBuf,
    pub max_bytes: u64,
    pub fsync: Fsync,
    /// When full: drop the oldest segment (counted) instead of holding the pipeline back.
    pub drop_oldest: bool,
}

struct SpoolState {
    spool: Spool,
    /// A record read back but refused by a full producer queue: sent first next time.
    held: Option<(u64, SpoolRecord)>,
    drop_oldest: bool,
    spooled: Counter,
    replayed: Counter,
    bytes: Gauge,
    records: Gauge,
    oldest_age: Gauge,
}

impl SpoolState {
    fn has_unread(&self) -> bool {
        self.held.is_some() || self.spool.unread() > 0
    }

    fn update_gauges(&self) {
        self.bytes.set(self.spool.bytes() as f64);
        self.records.set(self.spool.outstanding() as f64);
        let age = self
            .spool
            .oldest_received_ms()
            .map(|t| (now_ms() - t).max(0) as f64 / 1000.0)
            .unwrap_or(0.0);
        self.oldest_age.set(age);
    }
}

pub struct KafkaSink {
    producer: PolledProducer<DeliveryReports>,
    blocked: Histogram,
    brokers_down: Arc<AtomicBool>,
    acks: Arc<Mutex<Vec<u64>>>,
    spool: Option<SpoolState>,
    written: Arc<AtomicU64>,
    health: Arc<Health>,
    /// Records of the current delivery already handed on (after an error).
    done: usize,
}

/// The librdkafka configuration: sluice's defaults, the compression, then the user's
/// properties.
pub fn client_config(
    brokers: &str,
    compression: &str,
    properties: &BTreeMap<String, String>,
) -> ClientConfig {
    let mut config = ClientConfig::new();
    config.set("bootstrap.servers", brokers);
    for (k, v) in DEFAULT_PROPERTIES {
        config.set(*k, *v);
    }
    config.set("compression.type", compression);
    if compression == "zstd" {
        // Level 1 rather than librdkafka's default 3: on sluice's events the batches came
        // out 1 % larger, and the broker thread, where compression runs, took 7.35-7.60
        // against 6.15-6.80 µs per event (docs/performance.md, session 23).
        config.set("compression.level", "1");
    }
    for (k, v) in properties {
        config.set(k, v);
    }
    config
}

enum Sent {
    /// Taken by the producer, or ended for good (counted as dropped).
    Done,
    /// The producer queue is full.
    QueueFull,
}

impl KafkaSink {
    pub fn new(
        config: &ClientConfig,
        written: Arc<AtomicU64>,
        health: Arc<Health>,
        spool: Option<SpoolSettings>,
    ) -> Result<KafkaSink, String> {
        // Zero series for every reason, so alerts on drops have something to watch.
        for reason in DROP_REASONS {
            counter!("sluice_events_dropped_total", "reason" => *reason).increment(0);
            counter!("sluice_kafka_errors_total", "class" => "fatal", "code" => *reason)
                .increment(0);
        }
        let brokers_down = Arc::new(AtomicBool::new(false));
        let acks = Arc::new(Mutex::new(Vec::new()));
        let spool = match spool {
            None => None,
            Some(settings) => {
                let (spool, recovery) =
                    Spool::open(&settings.dir, settings.max_bytes, settings.fsync).map_err(
                        |e| format!("cannot open the spool {}: {e}", settings.dir.display()),
                    )?;
                if recovery.records > 0 || recovery.dropped_bytes > 0 {
                    tracing::warn!(
                        dir = %settings.dir.display(),
                        records = recovery.records,
                        segments = recovery.segments,
                        torn_bytes = recovery.dropped_bytes,
                        "spool holds events from before; they are sent first (some may be sent twice)"
                    );
                }
                counter!("sluice_spool_torn_bytes_total").increment(recovery.dropped_bytes);
                let state = SpoolState {
                    spool,
                    held: None,
                    drop_oldest: settings.drop_oldest,
                    spooled: counter!("sluice_events_spooled_total"),
                    replayed: counter!("sluice_events_replayed_total"),
                    bytes: gauge!("sluice_spool_bytes"),
                    records: gauge!("sluice_spool_records"),
                    oldest_age: gauge!("sluice_spool_oldest_event_age_seconds"),
                };
                state.update_gauges();
                Some(state)
            }
        };
        let context = DeliveryReports {
            written: written.clone(),
            health: health.clone(),
            brokers_down: brokers_down.clone(),
            acks: acks.clone(),
            latency: histogram!("sluice_kafka_delivery_seconds"),
            counters: Mutex::new(HashMap::new()),
            last_logged: Mutex::new(HashMap::new()),
        };
        let producer = PolledProducer::new(config, context)
            .map_err(|e| format!("cannot create the Kafka producer: {e}"))?;
        Ok(KafkaSink {
            producer,
            blocked: histogram!("sluice_sink_blocked_seconds", "sink" => "kafka"),
            brokers_down,
            acks,
            spool,
            written,
            health,
            done: 0,
        })
    }

    /// Events handed to the producer and not yet acknowledged.
    pub fn in_flight(&self) -> i32 {
        self.producer.in_flight_count()
    }

    #[allow(clippy::too_many_arguments)]
    fn send_one<'h>(
        &self,
        topic: &str,
        key: Option<&str>,
        headers: impl Iterator<Item = (&'h str, &'h str)>,
        payload: &[u8],
        received_ms: i64,
        dead_letter: bool,
        segment: Option<u64>,
        receipt: Option<&Arc<crate::source::Receipt>>,
    ) -> Sent {
        let mut owned = OwnedHeaders::new();
        for (name, value) in headers {
            owned = owned.insert(Header {
                key: name,
                value: Some(value.as_bytes()),
            });
        }
        let pending = Box::new(Pending {
            received_ms,
            dead_letter,
            spool_segment: segment,
            receipt: receipt.cloned(),
        });
        let mut base = BaseRecord::with_opaque_to(topic, pending)
            .payload(payload)
            .headers(owned);
        if let Some(key) = key {
            base = base.key(key.as_bytes());
        }
        match self.producer.send(base) {
            Ok(()) => Sent::Done,
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), _)) => Sent::QueueFull,
            Err((error, _)) => {
                let reason = error
                    .rdkafka_error_code()
                    .and_then(fatal_reason)
                    .unwrap_or("produce_failed");
                counter!("sluice_events_dropped_total", "reason" => reason).increment(1);
                tracing::error!(topic, error = %error, reason, "event not produced");
                if let Some(receipt) = receipt {
                    receipt.settle();
                }
                if let Some(segment) = segment {
                    self.acks
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .push(segment);
                }
                Sent::Done
            }
        }
    }

    fn apply_acks(&mut self) {
        let Some(state) = self.spool.as_mut() else {
            return;
        };
        let acks = std::mem::take(&mut *self.acks.lock().unwrap_or_else(|p| p.into_inner()));
        for segment in acks {
            if let Err(e) = state.spool.ack(segment) {
                tracing::error!(error = %e, "spool: cannot remove a finished segment");
            }
        }
        state.update_gauges();
    }

    /// Sends spooled events, oldest first, while the broker is up and the producer has room.
    /// While no broker is reachable, one event at a time goes out as a probe (it stays in
    /// the spool until acknowledged): its acknowledgement says the broker is back.
    fn replay(&mut self) {
        let probing = self.brokers_down.load(Ordering::Relaxed);
        if probing && self.producer.in_flight_count() > 0 {
            return;
        }
        loop {
            let Some(state) = self.spool.as_mut() else {
                return;
            };
            let next = match state.held.take() {
                Some(held) => Some(held),
                None => match state.spool.read_next() {
                    Ok(next) => next,
                    Err(e) => {
                        tracing::error!(error = %e, "spool: cannot read");
                        None
                    }
                },
            };
            let Some((segment, record)) = next else {
                return;
            };
            let sent = self.send_one(
                &record.topic,
                record.key.as_deref(),
                record.headers.iter().map(|(k, v)| (k.as_str(), v.as_str())),
                &record.payload,
                record.received_ms,
                record.dead_letter,
                Some(segment),
                None,
            );
            let state = self.spool.as_mut().expect("spool present");
            match sent {
                Sent::Done => state.replayed.increment(1),
                Sent::QueueFull => {
                    state.held = Some((segment, record));
                    return;
                }
            }
            if probing {
                return;
            }
        }
    }

    /// Hands one event to the producer, or to the spool.
    fn write_record(&mut self, record: &SinkRecord, payload: &[u8]) -> io::Result<()> {
        let Some(route) = &record.route else {
            return Err(io::Error::other("a Kafka record without a route"));
        };
        self.apply_acks();
        if let Some(state) = &self.spool {
            // Keep order: while anything waits in the spool, new events queue behind it.
            // While no broker is reachable, events go to disk, not to memory.
            if state.has_unread() || self.brokers_down.load(Ordering::Relaxed) {
                self.spool_append(record, payload, route)?;
                self.replay();
                return Ok(());
            }
        }
        let mut blocked_since: Option<Instant> = None;
        loop {
            let sent = self.send_one(
                &route.topic,
                route.key.as_deref(),
                route.headers.iter().map(|(k, v)| (*k, v.as_str())),
                payload,
                record.received_ms,
                route.dead_letter,
                None,
                record.receipt.as_ref(),
            );
            match sent {
                Sent::Done => break,
                Sent::QueueFull if self.spool.is_some() => {
                    self.spool_append(record, payload, route)?;
                    break;
                }
                Sent::QueueFull => {
                    // The producer holds as much as it may: wait for acknowledgements.
                    blocked_since.get_or_insert_with(Instant::now);
                    std::thread::sleep(Duration::from_millis(5));
                }
            }
        }
        if let Some(since) = blocked_since {
            self.blocked.record(since.elapsed().as_secs_f64());
        }
        Ok(())
    }

    /// Appends to the spool, applying the full-spool policy.
    fn spool_append(
        &mut self,
        record: &SinkRecord,
        payload: &[u8],
        route: &super::route::Route,
    ) -> io::Result<()> {
        let spooled = SpoolRecord {
            topic: route.topic.clone(),
            key: route.key.clone(),
            headers: route
                .headers
                .iter()
                .map(|(k, v)| (k.to_string(), v.clone()))
                .collect(),
            received_ms: record.received_ms,
            dead_letter: route.dead_letter,
            payload: payload.to_vec(),
        };
        let mut waited: Option<Instant> = None;
        loop {
            let state = self.spool.as_mut().expect("spool present");
            match state.spool.append(&spooled) {
                Ok(()) => {
                    state.spooled.increment(1);
                    state.update_gauges();
                    if let Some(receipt) = &record.receipt {
                        receipt.settle();
                    }
                    if waited.is_some() {
                        self.health.set_problem(SPOOL_KEY, None);
                    }
                    return Ok(());
                }
                Err(AppendError::Io(e)) => return Err(e),
                Err(AppendError::Full) if state.drop_oldest => {
                    let mut lost = state.spool.drop_oldest()?;
                    // A record read back but not yet taken by the producer goes with it.
                    if state
                        .held
                        .as_ref()
                        .is_some_and(|(segment, _)| !state.spool.contains(*segment))
                    {
                        state.held = None;
                        lost += 1;
                    }
                    counter!("sluice_events_dropped_total", "reason" => "spool_full")
                        .increment(lost);
                    tracing::warn!(
                        lost,
                        "spool full: dropped its oldest segment (spool_full = \"drop_oldest\")"
                    );
                }
                Err(AppendError::Full) => {
                    if waited.is_none() {
                        waited = Some(Instant::now());
                        self.health.set_problem(
                            SPOOL_KEY,
                            Some("the spool is full; senders are held back".into()),
                        );
                    }
                    self.apply_acks();
                    self.replay();
                    std::thread::sleep(Duration::from_millis(10));
                }
            }
        }
    }
}

const SPOOL_KEY: &str = "spool";

impl Sink for KafkaSink {
    fn name(&self) -> &'static str {
        "kafka"
    }

    fn counts_on_write(&self) -> bool {
        false
    }

    fn write(&mut self, delivery: &Delivery) -> io::Result<()> {
        for record in &delivery.records()[self.done..] {
            self.write_record(record, delivery.payload(record))?;
            self.done += 1;
        }
        self.done = 0;
        Ok(())
    }

    fn flush(&mut self) -> io::Result<()> {
        // Batches go out on their own (linger.ms); only the spool may need syncing.
        if let Some(state) = self.spool.as_mut() {
            state.spool.sync()?;
        }
        Ok(())
    }

    fn has_backlog(&self) -> bool {
        self.spool
            .as_ref()
            .is_some_and(|s| s.held.is_some() || s.spool.outstanding() > 0)
    }

    fn tick(&mut self) {
        self.apply_acks();
        self.replay();
    }

    fn close(&mut self, timeout: Duration) -> io::Result<()> {
        let flushed = self.producer.flush(timeout);
        self.apply_acks();
        if let Some(state) = self.spool.as_mut() {
            state.spool.sync()?;
            let kept = state.spool.outstanding();
            if kept > 0 {
                // Safe on disk: sent at the next start. Counted as written so that the
                // stop report does not call them lost.
                self.written.fetch_add(kept, Ordering::Relaxed);
                tracing::info!(events = kept, "events stay in the spool for the next start");
            }
            return Ok(());
        }
        flushed.map_err(|e| {
            io::Error::other(format!(
                "{} events not acknowledged by Kafka: {e}",
                self.in_flight()
            ))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zstd_compresses_at_level_one_unless_the_properties_say_otherwise() {
        let none = BTreeMap::new();
        let zstd = client_config("127.0.0.1:9092", "zstd", &none);
        assert_eq!(zstd.get("compression.type"), Some("zstd"));
        assert_eq!(zstd.get("compression.level"), Some("1"));
        // Levels mean something else for each codec: only zstd's is set.
        let lz4 = client_config("127.0.0.1:9092", "lz4", &none);
        assert_eq!(lz4.get("compression.level"), None);
        let chosen = BTreeMap::from([("compression.level".to_string(), "6".to_string())]);
        let zstd = client_config("127.0.0.1:9092", "zstd", &chosen);
        assert_eq!(zstd.get("compression.level"), Some("6"));
    }
}
