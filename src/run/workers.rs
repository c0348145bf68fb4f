//! Parse workers: plain threads that take batches off their queue, run the pipeline on
//! each message, count the outcome, and hand the serialised events to the sink in order.

use std::sync::Arc;
use std::time::{Duration, Instant};

use metrics::{counter, Counter};
use rustc_hash::FxHashMap;
use tokio::sync::mpsc;

use crate::event::Node;
use crate::pipeline::{Event, Pipeline};
use crate::queue::{WorkQueue, TRICKLE_WAIT};
use crate::sink::route::{dead_letter_record, Router};
use crate::sink::{Delivery, TextPool};
use crate::source::Message;
use crate::telemetry::sources::{SourceMetrics, SourceTracker};
use crate::Status;

/// How often one kind of parse failure is logged (with one sample), per worker.
const LOG_EVERY: Duration = Duration::from_secs(10);

/// Fewer events than this from one wake-up, with nothing more queued, mean the senders
/// trickle: the worker then waits [`TRICKLE_WAIT`] (at most once per delivery) for more
/// before handing the events to the sink. Without the wait, a sender that a worker
/// outpaces woke the worker and the sink for every two or three messages: one UDP sender
/// at 165k messages/s cost 330,000 context switches a second in each thread, a third of
/// sluice's CPU.
const SMALL_DELIVERY: usize = 64;
/// A delivery to the sink ends once its events reach this size, which bounds the memory
/// held in the sink's channel (a few deliveries per worker).
const MAX_DELIVERY_BYTES: usize = 256 * 1024;

pub fn run(
    pipeline: Arc<Pipeline>,
    mut queue: WorkQueue,
    sink: mpsc::Sender<Delivery>,
    router: Option<Arc<Router>>,
    sources: Arc<SourceTracker>,
    texts: Arc<TextPool>,
) {
    let mut worker = Worker {
        pipeline,
        router,
        outcomes: Outcomes::default(),
        sources: SourceMetrics::new(sources),
    };
    while let Some(first) = queue.recv_blocking() {
        let now_seconds = crate::source::now_ms() as f64 / 1000.0;
        let mut delivery = Delivery::from_pool(&texts);
        let mut next = Some(first);
        let mut waited = false;
        loop {
            while let Some((batch, room)) = next.take() {
                worker.parse_batch(batch, now_seconds, &mut delivery);
                queue.release(room);
                if delivery.text().len() >= MAX_DELIVERY_BYTES {
                    break;
                }
                next = queue.try_recv();
            }
            if waited
                || delivery.len() >= SMALL_DELIVERY
                || delivery.text().len() >= MAX_DELIVERY_BYTES
            {
                break;
            }
            std::thread::sleep(TRICKLE_WAIT);
            waited = true;
            next = queue.try_recv();
            if next.is_none() {
                break;
            }
        }
        worker.outcomes.flush();
        worker.sources.flush(now_seconds);
        if sink.blocking_send(delivery).is_err() {
            tracing::error!("the sink stopped; parse worker exits");
            return;
        }
    }
}

/// What a parse worker keeps between batches.
struct Worker {
    pipeline: Arc<Pipeline>,
    router: Option<Arc<Router>>,
    outcomes: Outcomes,
    sources: SourceMetrics,
}

impl Worker {
    /// Parses `batch` onto the end of `delivery`.
    fn parse_batch(&mut self, batch: Vec<Message>, now_seconds: f64, delivery: &mut Delivery) {
        for mut message in batch {
            let (span, status, route) = self.pipeline.parse_with(&message, |event| {
                let status = event.status;
                let grammar = event.grammar.unwrap_or("none");
                self.outcomes.record(&event, grammar, &message);
                self.sources
                    .seen(grammar, event.heartbeat, &event.tree, now_seconds);
                let route = self.router.as_ref().map(|r| r.route(&event.tree, status));
                let span = match &route {
                    Some(r) if r.dead_letter => {
                        let record = dead_letter_record(&event.into_value(), &message.bytes);
                        delivery.append(|text| {
                            sonic_rs::to_writer(text, &record)
                                .expect("a JSON value always serialises")
                        })
                    }
                    _ => delivery.append(|text| event.into_json(text)),
                };
                (span, status, route)
            });
            delivery
                .push(
                    span,
                    status,
                    message.received_ms,
                    route,
                    message.receipt.take(),
                )
                .expect("each event's record follows its text");
        }
    }
}

/// Counters by grammar and status, and by grammar and error code, looked up once each.
/// A run of events with one grammar and status is counted locally and published once.
#[derive(Default)]
struct Outcomes {
    status: FxHashMap<String, [Option<Counter>; 4]>,
    run: StatusRun,
    /// grammar → error code → its counter and log state: looked up by borrowed names, as a
    /// fifth of the corpus (Symantec's repaired `json=`) has an error in every event.
    errors: FxHashMap<String, FxHashMap<String, ErrorKind>>,
}

/// One grammar's error code: its counter, and when it was last logged with how many since.
struct ErrorKind {
    counter: Counter,
    logged_at: Option<Instant>,
    since_logged: u64,
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
            let by_code = match self.errors.get_mut(grammar) {
                Some(by_code) => by_code,
                None => self.errors.entry(grammar.to_string()).or_default(),
            };
            let kind = match by_code.get_mut(code) {
                Some(kind) => kind,
                None => by_code.entry(code.to_string()).or_insert_with(|| ErrorKind {
                    counter: counter!("sluice_parse_errors_total", "grammar" => grammar.to_string(), "code" => code.to_string()),
                    logged_at: None,
                    since_logged: 0,
                }),
            };
            kind.counter.increment(1);
            kind.since_logged += 1;
            let now = Instant::now();
            if kind
                .logged_at
                .is_none_or(|at| now.duration_since(at) >= LOG_EVERY)
            {
                let sample =
                    String::from_utf8_lossy(&message.bytes[..message.bytes.len().min(256)]);
                tracing::warn!(
                    grammar,
                    code,
                    status = status.as_str(),
                    listener = %message.received.listener,
                    peer = message.received.peer.as_deref().unwrap_or("-"),
                    count = kind.since_logged,
                    message = field("message").unwrap_or(""),
                    sample = %sample,
                    "parse problem (logged once per 10 s per kind; count since the last line)"
                );
                kind.logged_at = Some(now);
                kind.since_logged = 0;
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::grammar::GrammarSet;
    use crate::source::{Message, ReceiveInfo, Transport};
    use crate::telemetry::sources::SourceTracker;
    use crate::ParseOptions;

    const KATA: &str = "<14>1 2026-11-23T10:00:00Z kata-node-1 KATA - - - CEF:0|AO Kaspersky Lab|Kaspersky Anti Targeted Attack Platform|5.0.0-5201|heartbeat|Heartbeat|0|eventId=";

    fn batch(first: usize, count: usize) -> Vec<Message> {
        let info = Arc::new(ReceiveInfo::new("test", Transport::Tcp));
        (first..first + count)
            .map(|i| Message::new(format!("{KATA}{i}").into_bytes(), info.clone(), 0))
            .collect()
    }

    fn event_id(payload: &[u8]) -> u64 {
        let event: serde_json::Value = serde_json::from_slice(payload).unwrap();
        event["metadata"]["uid"]
            .as_str()
            .and_then(|id| id.parse().ok())
            .unwrap_or_else(|| panic!("no event id in {event}"))
    }

    /// Runs one worker over `batches` sent one by one, `gap` apart (all before the worker
    /// starts when `None`), and returns what reached the sink, delivery by delivery.
    fn deliveries(batches: Vec<Vec<Message>>, gap: Option<Duration>) -> Vec<Vec<u64>> {
        let pipeline = Arc::new(
            Pipeline::new(GrammarSet::embedded().unwrap(), ParseOptions::default()).unwrap(),
        );
        let (dispatcher, mut queues) = crate::queue::bounded(1, 10_000, 64 << 20);
        let (sink_tx, mut sink_rx) = mpsc::channel(1024);
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let blocked = metrics::histogram!("test_blocked");
        let queue = queues.remove(0);
        let start = move || {
            std::thread::spawn(move || {
                run(
                    pipeline,
                    queue,
                    sink_tx,
                    None,
                    SourceTracker::new(10),
                    TextPool::new(4),
                )
            })
        };
        let worker = match gap {
            None => {
                for b in batches {
                    runtime.block_on(dispatcher.send(1, b, &blocked)).unwrap();
                }
                start()
            }
            Some(gap) => {
                let worker = start();
                for b in batches {
                    runtime.block_on(dispatcher.send(1, b, &blocked)).unwrap();
                    std::thread::sleep(gap);
                }
                worker
            }
        };
        drop(dispatcher);
        worker.join().unwrap();
        let mut out = Vec::new();
        while let Ok(delivery) = sink_rx.try_recv() {
            let ids = delivery.records().iter().map(|r| delivery.payload(r));
            out.push(ids.map(event_id).collect());
        }
        out
    }

    #[test]
    fn batches_waiting_in_the_queue_reach_the_sink_as_one_delivery_in_order() {
        let batches = (0..10).map(|i| batch(i * 3, 3)).collect();
        let got = deliveries(batches, None);
        assert_eq!(got, vec![(0..30).collect::<Vec<u64>>()]);
    }

    #[test]
    fn a_delivery_ends_at_its_byte_bound() {
        // Each event is well over 1 KiB, so the bound cuts this into several deliveries.
        let batches = (0..20).map(|i| batch(i * 50, 50)).collect();
        let got = deliveries(batches, None);
        assert!(got.len() > 1, "one delivery of {} events", got[0].len());
        for delivery in &got[..got.len() - 1] {
            assert!(delivery.len() < 1000);
        }
        assert_eq!(got.concat(), (0..1000).collect::<Vec<u64>>());
    }

    #[test]
    fn a_trickle_is_delivered_whole_and_in_order_with_fewer_deliveries_than_batches() {
        // One message every 200 µs or so, which the worker outpaces: without the wait each
        // would be a delivery (and a wake-up of the sink) of its own; with it, a delivery
        // gathers the messages of a millisecond.
        let batches = (0..200).map(|i| batch(i, 1)).collect();
        let got = deliveries(batches, Some(Duration::from_micros(200)));
        assert_eq!(got.concat(), (0..200).collect::<Vec<u64>>());
        assert!(got.len() <= 100, "{} deliveries for 200 batches", got.len());
    }
}
