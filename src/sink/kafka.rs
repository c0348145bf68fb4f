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

use metrics::{counter, histogram, Counter, Histogram};
use rdkafka::config::ClientConfig;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};
use rdkafka::ClientContext;
use rdkafka::Message as _;

use super::{Sink, SinkRecord};
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
    ("queue.buffering.max.kbytes", "262144"),
    ("message.timeout.ms", "0"),
];

/// What the delivery callback needs to know about each event.
pub struct Pending {
    received_ms: i64,
    dead_letter: bool,
}

pub struct Delivery {
    written: Arc<AtomicU64>,
    health: Arc<Health>,
    /// No broker reachable, as librdkafka last said (cleared by the next acknowledgement).
    brokers_down: AtomicBool,
    latency: Histogram,
    counters: Mutex<HashMap<(&'static str, String), Counter>>,
    last_logged: Mutex<HashMap<String, Instant>>,
}

impl Delivery {
    fn count(&self, name: &'static str, label: &'static str, value: &str) {
        let mut counters = self.counters.lock().unwrap_or_else(|p| p.into_inner());
        let key = (name, value.to_string());
        counters
            .entry(key)
            .or_insert_with(|| counter!(name, label => value.to_string()))
            .increment(1);
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

impl ClientContext for Delivery {
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

impl ProducerContext for Delivery {
    type DeliveryOpaque = Box<Pending>;

    fn delivery(&self, result: &DeliveryResult<'_>, pending: Box<Pending>) {
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

pub struct KafkaSink {
    producer: ThreadedProducer<Delivery>,
    blocked: Histogram,
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
    for (k, v) in properties {
        config.set(k, v);
    }
    config
}

impl KafkaSink {
    pub fn new(
        config: &ClientConfig,
        written: Arc<AtomicU64>,
        health: Arc<Health>,
    ) -> Result<KafkaSink, String> {
        // Zero series for every reason, so alerts on drops have something to watch.
        for reason in DROP_REASONS {
            counter!("sluice_events_dropped_total", "reason" => *reason).increment(0);
            counter!("sluice_kafka_errors_total", "class" => "fatal", "code" => *reason)
                .increment(0);
        }
        let context = Delivery {
            written,
            health,
            brokers_down: AtomicBool::new(false),
            latency: histogram!("sluice_kafka_delivery_seconds"),
            counters: Mutex::new(HashMap::new()),
            last_logged: Mutex::new(HashMap::new()),
        };
        let producer: ThreadedProducer<Delivery> = config
            .create_with_context(context)
            .map_err(|e| format!("cannot create the Kafka producer: {e}"))?;
        Ok(KafkaSink {
            producer,
            blocked: histogram!("sluice_sink_blocked_seconds", "sink" => "kafka"),
        })
    }

    /// Events handed to the producer and not yet acknowledged.
    pub fn in_flight(&self) -> i32 {
        self.producer.in_flight_count()
    }
}

impl Sink for KafkaSink {
    fn name(&self) -> &'static str {
        "kafka"
    }

    fn counts_on_write(&self) -> bool {
        false
    }

    fn write(&mut self, record: &SinkRecord) -> io::Result<()> {
        let Some(route) = &record.route else {
            return Err(io::Error::other("a Kafka record without a route"));
        };
        let mut headers = OwnedHeaders::new_with_capacity(route.headers.len());
        for (name, value) in &route.headers {
            headers = headers.insert(Header {
                key: name,
                value: Some(value.as_bytes()),
            });
        }
        let mut pending = Box::new(Pending {
            received_ms: record.received_ms,
            dead_letter: route.dead_letter,
        });
        let mut blocked_since: Option<Instant> = None;
        loop {
            let mut base = BaseRecord::with_opaque_to(&route.topic, pending)
                .payload(&record.payload)
                .headers(headers.clone());
            if let Some(key) = &route.key {
                base = base.key(key.as_bytes());
            }
            match self.producer.send(base) {
                Ok(()) => break,
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                    // The producer holds as much as it may: wait for acknowledgements.
                    pending = back.delivery_opaque;
                    blocked_since.get_or_insert_with(Instant::now);
                    std::thread::sleep(Duration::from_millis(5));
                }
                Err((error, back)) => {
                    drop(back);
                    let reason = error
                        .rdkafka_error_code()
                        .and_then(fatal_reason)
                        .unwrap_or("produce_failed");
                    counter!("sluice_events_dropped_total", "reason" => reason).increment(1);
                    tracing::error!(topic = %route.topic, error = %error, reason, "event not produced");
                    break;
                }
            }
        }
        if let Some(since) = blocked_since {
            self.blocked.record(since.elapsed().as_secs_f64());
        }
        Ok(())
    }

    fn flush(&mut self) -> io::Result<()> {
        // Batches go out on their own (linger.ms); nothing to push between batches.
        Ok(())
    }

    fn close(&mut self, timeout: Duration) -> io::Result<()> {
        match self.producer.flush(timeout) {
            Ok(()) => Ok(()),
            Err(e) => Err(io::Error::other(format!(
                "{} events not acknowledged by Kafka: {e}",
                self.in_flight()
            ))),
        }
    }
}
