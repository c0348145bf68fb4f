//! Parse workers: plain threads that take batches off their queue, run the pipeline on
//! each message, count the outcome, and hand the serialised events to the sink in order.

use std::sync::Arc;
use std::time::{Duration, Instant};

use metrics::{counter, Counter};
use rustc_hash::FxHashMap;
use tokio::sync::mpsc;

use crate::event::Node;
use crate::pipeline::{Event, Pipeline};
use crate::queue::WorkQueue;
use crate::sink::route::{dead_letter_record, Router};
use crate::sink::SinkRecord;
use crate::source::Message;
use crate::telemetry::sources::{SourceMetrics, SourceTracker};
use crate::Status;

/// Capacity of a worker's event buffer kept between events.
const SCRATCH_KEPT: usize = 256 * 1024;

/// How often one kind of parse failure is logged (with one sample), per worker.
const LOG_EVERY: Duration = Duration::from_secs(10);

pub fn run(
    pipeline: Arc<Pipeline>,
    mut queue: WorkQueue,
    sink: mpsc::Sender<Vec<SinkRecord>>,
    router: Option<Arc<Router>>,
    sources: Arc<SourceTracker>,
) {
    let mut outcomes = Outcomes::default();
    let mut sources = SourceMetrics::new(sources);
    // Events are written here, then copied out at their exact size for the sink.
    let mut scratch = Vec::with_capacity(SCRATCH_KEPT);
    while let Some((batch, room)) = queue.recv_blocking() {
        let now_seconds = crate::source::now_ms() as f64 / 1000.0;
        let records: Vec<SinkRecord> = batch
            .into_iter()
            .map(|mut message| {
                let (payload, status, route) = pipeline.parse_with(&message, |event| {
                    let status = event.status;
                    let grammar = event.grammar().unwrap_or("none");
                    outcomes.record(&event, grammar, &message);
                    sources.seen(grammar, &event.tree, now_seconds);
                    let route = router.as_ref().map(|r| r.route(&event.tree, status));
                    let payload = match &route {
                        Some(r) if r.dead_letter => sonic_rs::to_vec(&dead_letter_record(
                            &event.into_value(),
                            &message.bytes,
                        ))
                        .expect("a JSON value always serialises"),
                        _ => {
                            scratch.clear();
                            event.write_json(&mut scratch);
                            let payload = scratch.as_slice().to_vec();
                            // One huge record (S3 records reach 16 MiB) must not pin its
                            // buffer for the life of the worker.
                            if scratch.capacity() > SCRATCH_KEPT {
                                scratch = Vec::with_capacity(SCRATCH_KEPT);
                            }
                            payload
                        }
                    };
                    (payload, status, route)
                });
                SinkRecord {
                    payload,
                    status,
                    received_ms: message.received_ms,
                    route,
                    receipt: message.receipt.take(),
                }
            })
            .collect();
        outcomes.flush();
        sources.flush(now_seconds);
        queue.release(room);
        if sink.blocking_send(records).is_err() {
            tracing::error!("the sink stopped; parse worker exits");
            return;
        }
    }
}

/// Counters by grammar and status, and by grammar and error code, looked up once each.
/// A run of events with one grammar and status is counted locally and published once.
#[derive(Default)]
struct Outcomes {
    status: FxHashMap<String, [Option<Counter>; 4]>,
    run: StatusRun,
    errors: FxHashMap<(String, String), Counter>,
    last_logged: FxHashMap<(String, String), (Instant, u64)>,
}

/// The grammar and status of the latest events and how many of them are not yet
/// published; no status when there are none.
#[derive(Default)]
struct StatusRun {
    grammar: String,
    status: Option<Status>,
    count: u64,
}

impl Outcomes {
    fn record(&mut self, event: &Event<'_>, grammar: &str, message: &Message) {
        let status = event.status;
        if self.run.status == Some(status) && self.run.grammar == grammar {
            self.run.count += 1;
        } else {
            self.flush();
            self.run.grammar.clear();
            self.run.grammar.push_str(grammar);
            self.run.status = Some(status);
            self.run.count = 1;
        }
        if status == Status::Ok {
            return;
        }
        let errors = event
            .tree
            .pointer(&["sluice", "parse", "errors"])
            .and_then(Node::as_array)
            .unwrap_or_default();
        for error in errors {
            let field = |name: &str| error.get(name).and_then(Node::as_str);
            let code = field("code").unwrap_or("unknown");
            let key = (grammar.to_string(), code.to_string());
            self.errors
                .entry(key.clone())
                .or_insert_with(|| {
                    counter!("sluice_parse_errors_total", "grammar" => key.0.clone(), "code" => key.1.clone())
                })
                .increment(1);
            let now = Instant::now();
            let entry = self.last_logged.entry(key).or_insert((now - LOG_EVERY, 0));
            entry.1 += 1;
            if now.duration_since(entry.0) >= LOG_EVERY {
                let sample =
                    String::from_utf8_lossy(&message.bytes[..message.bytes.len().min(256)]);
                tracing::warn!(
                    grammar,
                    code,
                    status = status.as_str(),
                    listener = %message.received.listener,
                    peer = message.received.peer.as_deref().unwrap_or("-"),
                    count = entry.1,
                    message = field("message").unwrap_or(""),
                    sample = %sample,
                    "parse problem (logged once per 10 s per kind; count since the last line)"
                );
                *entry = (now, 0);
            }
        }
    }

    /// Publishes the run counted but not yet published.
    fn flush(&mut self) {
        let Some(status) = self.run.status.take() else {
            return;
        };
        let grammar = self.run.grammar.as_str();
        let slots = match self.status.get_mut(grammar) {
            Some(slots) => slots,
            None => self.status.entry(grammar.to_string()).or_default(),
        };
        slots[status as usize]
            .get_or_insert_with(|| {
                counter!("sluice_parse_total", "grammar" => grammar.to_string(), "status" => status.as_str())
            })
            .increment(self.run.count);
    }
}
