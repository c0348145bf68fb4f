//! Where events go: Kafka (with routing and a dead-letter topic), NDJSON to stdout or a
//! file, or nowhere (benchmarks).
//!
//! The sink runs on its own thread, fed by a bounded channel of deliveries from the parse
//! workers; when it is slow the workers wait, the parse queue fills, and the listeners
//! stop reading.

use std::io::{self, Write};
use std::ops::Range;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use metrics::counter;
use tokio::sync::mpsc;

use crate::config;
use crate::pipeline::Event;
use crate::Status;

pub mod file;
#[cfg(feature = "kafka")]
pub mod kafka;
#[cfg(feature = "kafka")]
mod producer;
pub mod route;
pub mod spool;

/// One normalised event in a [`Delivery`], with what routing and accounting need.
#[derive(Clone, Debug)]
pub struct SinkRecord {
    /// Where the event's compact JSON is in the delivery's text, without the newline (for
    /// a dead-lettered event on Kafka, the dead-letter record).
    span: Range<usize>,
    pub status: Status,
    /// Receive time of the message, ms since the epoch (delivery latency).
    pub received_ms: i64,
    /// Topic, key and headers, when the sink routes (Kafka).
    pub route: Option<route::Route>,
    /// Settled by the sink once the event is written (flushed), delivered or spooled.
    pub receipt: Option<Arc<crate::source::Receipt>>,
}

/// Events from one parse worker on their way to the sink, in order: their JSON one per line
/// in one buffer, which line sinks write as it is, and a [`SinkRecord`] for each.
///
/// Writing every event into one buffer spares an allocation, a copy and a cross-thread free
/// per event, and the file and stdout sinks a second copy into their own buffer. The
/// buffer goes back to its pool when the delivery is dropped, so a steady stream reuses a
/// few buffers that have grown to the size deliveries need.
#[derive(Debug, Default)]
pub struct Delivery {
    text: Vec<u8>,
    records: Vec<SinkRecord>,
    pool: Option<Arc<TextPool>>,
}

/// A delivery that lines up a record with the event text it did not append.
#[derive(Debug)]
pub struct RecordMismatch;

impl Delivery {
    pub fn new() -> Delivery {
        Delivery::default()
    }

    /// An empty delivery whose text buffer comes from `pool` and returns to it.
    pub fn from_pool(pool: &Arc<TextPool>) -> Delivery {
        Delivery {
            text: pool.take(),
            records: Vec::new(),
            pool: Some(pool.clone()),
        }
    }

    /// Appends one event's text, which `write` puts at the end of the buffer, and returns
    /// where it is; [`Delivery::push`] then adds its record.
    pub fn append(&mut self, write: impl FnOnce(&mut Vec<u8>)) -> Range<usize> {
        let start = self.text.len();
        write(&mut self.text);
        let span = start..self.text.len();
        self.text.push(b'\n');
        span
    }

    /// Adds the record of the event [`Delivery::append`] added last, found at `span`.
    pub fn push(
        &mut self,
        span: Range<usize>,
        status: Status,
        received_ms: i64,
        route: Option<route::Route>,
        receipt: Option<Arc<crate::source::Receipt>>,
    ) -> Result<(), RecordMismatch> {
        let follows = self.records.last().map_or(0, |r| r.span.end + 1);
        if span.start != follows || span.end + 1 != self.text.len() {
            return Err(RecordMismatch);
        }
        self.records.push(SinkRecord {
            span,
            status,
            received_ms,
            route,
            receipt,
        });
        Ok(())
    }

    /// Appends one event given as bytes, and its record.
    pub fn push_payload(
        &mut self,
        payload: &[u8],
        status: Status,
        received_ms: i64,
        route: Option<route::Route>,
        receipt: Option<Arc<crate::source::Receipt>>,
    ) {
        let span = self.append(|text| text.extend_from_slice(payload));
        self.push(span, status, received_ms, route, receipt)
            .expect("the record of the text just appended");
    }

    pub fn records(&self) -> &[SinkRecord] {
        &self.records
    }

    pub fn len(&self) -> usize {
        self.records.len()
    }

    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    /// Every event, one per line, each line ending in a newline.
    pub fn text(&self) -> &[u8] {
        &self.text
    }

    /// The event's JSON, without the newline.
    pub fn payload(&self, record: &SinkRecord) -> &[u8] {
        &self.text[record.span.clone()]
    }

    /// Where `record`'s line (its JSON and newline) is in [`Delivery::text`].
    pub fn line(&self, record: &SinkRecord) -> Range<usize> {
        record.span.start..record.span.end + 1
    }
}

impl Drop for Delivery {
    fn drop(&mut self) {
        if let Some(pool) = self.pool.take() {
            pool.give_back(std::mem::take(&mut self.text));
        }
    }
}

/// Text buffers for deliveries, shared by the parse workers (which take them) and the sink
/// (which drops the deliveries). Holds at most `kept` idle buffers, each no larger than
/// [`TextPool::LARGEST_KEPT`]: one huge record (S3 records reach 16 MiB) must not pin its
/// buffer.
#[derive(Debug)]
pub struct TextPool {
    idle: Mutex<Vec<Vec<u8>>>,
    kept: usize,
}

impl TextPool {
    /// Capacity of a new buffer: a delivery ends once it passes 256 KiB, after the batch
    /// that crossed it.
    pub const FIRST_CAPACITY: usize = 512 * 1024;
    pub const LARGEST_KEPT: usize = 4 * 1024 * 1024;

    pub fn new(kept: usize) -> Arc<TextPool> {
        Arc::new(TextPool {
            idle: Mutex::new(Vec::with_capacity(kept)),
            kept,
        })
    }

    fn take(&self) -> Vec<u8> {
        let reused = self.idle.lock().unwrap_or_else(|p| p.into_inner()).pop();
        reused.unwrap_or_else(|| Vec::with_capacity(Self::FIRST_CAPACITY))
    }

    fn give_back(&self, mut text: Vec<u8>) {
        if text.capacity() == 0 || text.capacity() > Self::LARGEST_KEPT {
            return;
        }
        text.clear();
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        if idle.len() < self.kept {
            idle.push(text);
        }
    }

    /// Idle buffers held (tests).
    pub fn idle(&self) -> usize {
        self.idle.lock().unwrap_or_else(|p| p.into_inner()).len()
    }
}

pub trait Sink: Send {
    /// A metric label: `stdout`, `file`, `null`, `kafka`.
    fn name(&self) -> &'static str;
    /// Writes every event of `delivery`. After an error the caller retries with the same
    /// delivery, and the sink goes on after what it already wrote: nothing twice, nothing
    /// skipped.
    fn write(&mut self, delivery: &Delivery) -> io::Result<()>;
    /// Pushes buffered output out (called when the input queue runs empty).
    fn flush(&mut self) -> io::Result<()>;
    /// False when the sink counts an event as written only once it is acknowledged, later.
    fn counts_on_write(&self) -> bool {
        true
    }
    /// At the end: everything out within `timeout`, or an error that says what was not.
    fn close(&mut self, _timeout: Duration) -> io::Result<()> {
        self.flush()
    }
    /// True while the sink has work of its own (a spool to replay) even with no input.
    fn has_backlog(&self) -> bool {
        false
    }
    /// Works on the backlog a little; called about every 10 ms while there is one.
    fn tick(&mut self) {}
}

/// Writes `text[*done..]` to `out`, moving `done` past every byte written, also when an
/// error stops it; `written` grows by as many bytes. Unlike `write_all`, a failure part of
/// the way leaves the caller knowing where to go on from.
pub(crate) fn write_from(
    out: &mut impl Write,
    text: &[u8],
    done: &mut usize,
    written: &mut u64,
) -> io::Result<()> {
    while *done < text.len() {
        match out.write(&text[*done..]) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => {
                *done += n;
                *written += n as u64;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// One event per line on any writer; a delivery's text goes out as it is.
pub struct LineSink<W: Write + Send> {
    name: &'static str,
    out: W,
    /// Bytes of the current delivery's text already written (after an error).
    done: usize,
}

impl<W: Write + Send> LineSink<W> {
    pub fn new(name: &'static str, out: W) -> Self {
        LineSink { name, out, done: 0 }
    }
}

impl<W: Write + Send> Sink for LineSink<W> {
    fn name(&self) -> &'static str {
        self.name
    }

    fn write(&mut self, delivery: &Delivery) -> io::Result<()> {
        write_from(&mut self.out, delivery.text(), &mut self.done, &mut 0)?;
        self.done = 0;
        Ok(())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}

pub struct NullSink;

impl Sink for NullSink {
    fn name(&self) -> &'static str {
        "null"
    }
    fn write(&mut self, _: &Delivery) -> io::Result<()> {
        Ok(())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Opens the configured sink. `written` counts events once they are out (for Kafka: once
/// acknowledged).
pub fn open(
    config: &config::Sink,
    written: &Arc<AtomicU64>,
    health: &Arc<crate::telemetry::Health>,
) -> io::Result<Box<dyn Sink>> {
    Ok(match config {
        #[cfg(feature = "kafka")]
        config::Sink::Kafka(k) => Box::new(
            kafka::KafkaSink::new(
                &k.client_config(),
                written.clone(),
                health.clone(),
                k.spool_settings(),
            )
            .map_err(io::Error::other)?,
        ),
        #[cfg(not(feature = "kafka"))]
        config::Sink::Kafka(_) => {
            let _ = (written, health);
            return Err(io::Error::other(
                "this sluice was built without the kafka feature",
            ));
        }
        // Deliveries are large (a quarter MiB or more), so stdout needs no buffer of its own.
        config::Sink::Stdout => Box::new(LineSink::new("stdout", io::stdout())),
        config::Sink::File {
            path,
            max_bytes,
            keep,
        } => Box::new(file::RotatingFile::open(path.clone(), *max_bytes, *keep)?),
        config::Sink::Null => Box::new(NullSink),
    })
}

/// Runs `sink` on its own thread until every sender of `deliveries` is gone and the channel
/// is drained, then closes it within `close_timeout`. `written` counts the events written
/// (sinks that count on acknowledgement do so themselves).
pub fn spawn(
    mut sink: Box<dyn Sink>,
    mut deliveries: mpsc::Receiver<Delivery>,
    written: Arc<AtomicU64>,
    close_timeout: Duration,
) -> std::thread::JoinHandle<()> {
    std::thread::Builder::new()
        .name("sluice-sink".into())
        .spawn(move || {
            let name = sink.name();
            let events = counter!("sluice_events_written_total", "sink" => name);
            let errors = counter!("sluice_sink_errors_total", "sink" => name);
            loop {
                let delivery = if sink.has_backlog() {
                    match deliveries.try_recv() {
                        Ok(delivery) => delivery,
                        Err(mpsc::error::TryRecvError::Empty) => {
                            sink.tick();
                            std::thread::sleep(Duration::from_millis(10));
                            continue;
                        }
                        Err(mpsc::error::TryRecvError::Disconnected) => break,
                    }
                } else {
                    match deliveries.blocking_recv() {
                        Some(delivery) => delivery,
                        None => break,
                    }
                };
                // A failing output (disk full, closed pipe) holds the pipeline back instead
                // of losing events: retry until it recovers or the process is stopped,
                // which reports what was not written.
                while let Err(e) = sink.write(&delivery) {
                    errors.increment(1);
                    tracing::error!(sink = name, error = %e, "write failed; retrying in 1 s");
                    std::thread::sleep(Duration::from_secs(1));
                }
                if sink.counts_on_write() {
                    events.increment(delivery.len() as u64);
                    written.fetch_add(delivery.len() as u64, Ordering::Relaxed);
                    // A source waiting for these events to be out (S3) hears so only once
                    // they left sluice's buffers.
                    if delivery.records().iter().any(|r| r.receipt.is_some()) {
                        while let Err(e) = sink.flush() {
                            errors.increment(1);
                            tracing::error!(sink = name, error = %e, "flush failed; retrying in 1 s");
                            std::thread::sleep(Duration::from_secs(1));
                        }
                        for receipt in delivery.records().iter().filter_map(|r| r.receipt.as_ref()) {
                            receipt.settle();
                        }
                    }
                }
                if deliveries.is_empty() {
                    if let Err(e) = sink.flush() {
                        errors.increment(1);
                        tracing::error!(sink = name, error = %e, "flush failed");
                    }
                }
            }
            if let Err(e) = sink.close(close_timeout) {
                tracing::error!(sink = name, error = %e, "closing the sink");
            }
        })
        .expect("spawn the sink thread")
}

/// Writes one JSON object per line (used by `sluice parse`).
pub struct NdjsonWriter<W: Write> {
    out: W,
    buffer: Vec<u8>,
    pretty: bool,
}

impl<W: Write> NdjsonWriter<W> {
    pub fn new(out: W, pretty: bool) -> Self {
        NdjsonWriter {
            out,
            buffer: Vec::with_capacity(4096),
            pretty,
        }
    }

    pub fn write_event(&mut self, event: Event<'_>) -> io::Result<()> {
        self.buffer.clear();
        if self.pretty {
            serde_json::to_writer_pretty(&mut self.buffer, &event.into_value())?;
        } else {
            event.into_json(&mut self.buffer);
        }
        self.buffer.push(b'\n');
        self.out.write_all(&self.buffer)
    }

    pub fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Takes at most `step` bytes a call and fails every other call, as a disk filling up
    /// and freed again might.
    struct Faltering {
        got: Vec<u8>,
        step: usize,
        calls: usize,
    }

    impl Write for Faltering {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.calls += 1;
            if self.calls % 2 == 0 {
                return Err(io::Error::other("no space left"));
            }
            let n = buf.len().min(self.step);
            self.got.extend_from_slice(&buf[..n]);
            Ok(n)
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    fn delivery(lines: &[&str]) -> Delivery {
        let mut delivery = Delivery::new();
        for line in lines {
            delivery.push_payload(line.as_bytes(), Status::Ok, 0, None, None);
        }
        delivery
    }

    #[test]
    fn a_retried_delivery_goes_on_where_the_error_stopped_it() {
        let mut sink = LineSink::new(
            "test",
            Faltering {
                got: Vec::new(),
                step: 7,
                calls: 0,
            },
        );
        let mut expected = Vec::new();
        for round in 0..3 {
            let lines: Vec<String> = (0..5).map(|i| format!("{{\"n\":{round}{i}}}")).collect();
            let lines: Vec<&str> = lines.iter().map(String::as_str).collect();
            let delivery = delivery(&lines);
            let mut attempts = 0;
            while sink.write(&delivery).is_err() {
                attempts += 1;
                assert!(attempts < 100, "never finished");
            }
            assert!(attempts > 0, "the writer failed no call");
            for line in lines {
                expected.extend_from_slice(line.as_bytes());
                expected.push(b'\n');
            }
        }
        assert_eq!(
            String::from_utf8_lossy(&sink.out.got),
            String::from_utf8_lossy(&expected)
        );
    }

    #[test]
    fn a_delivery_finds_each_payload_and_line() {
        let delivery = delivery(&["{}", "{\"a\":1}", ""]);
        let payloads: Vec<&[u8]> = delivery
            .records()
            .iter()
            .map(|r| delivery.payload(r))
            .collect();
        assert_eq!(payloads, [&b"{}"[..], b"{\"a\":1}", b""]);
        assert_eq!(delivery.text(), b"{}\n{\"a\":1}\n\n");
        let last = &delivery.records()[2];
        assert_eq!(delivery.line(last), 11..12);
    }

    #[test]
    fn a_record_must_follow_the_text_appended_last() {
        let mut delivery = Delivery::new();
        let first = delivery.append(|t| t.extend_from_slice(b"{}"));
        let second = delivery.append(|t| t.extend_from_slice(b"[]"));
        assert!(delivery.push(first, Status::Ok, 0, None, None).is_err());
        assert!(delivery.push(second, Status::Ok, 0, None, None).is_err());
    }

    #[test]
    fn delivery_buffers_return_to_their_pool_unless_huge() {
        let pool = TextPool::new(2);
        for _ in 0..5 {
            let mut delivery = Delivery::from_pool(&pool);
            delivery.push_payload(b"{}", Status::Ok, 0, None, None);
        }
        assert_eq!(
            pool.idle(),
            1,
            "one buffer serves deliveries made one after another"
        );
        let deliveries: Vec<Delivery> = (0..4).map(|_| Delivery::from_pool(&pool)).collect();
        drop(deliveries);
        assert_eq!(pool.idle(), 2, "no more than `kept` idle");
        let mut huge = Delivery::from_pool(&pool);
        let payload = vec![b'x'; TextPool::LARGEST_KEPT + 1];
        huge.push_payload(&payload, Status::Ok, 0, None, None);
        assert_eq!(pool.idle(), 1);
        drop(huge);
        assert_eq!(pool.idle(), 1, "a huge buffer is freed, not kept");
    }
}
