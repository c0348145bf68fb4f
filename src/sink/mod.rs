//! Where events go: Kafka (with routing and a dead-letter topic), NDJSON to stdout or a
//! file, or nowhere (benchmarks).
//!
//! The sink runs on its own thread, fed by a bounded channel of batches from the parse
//! workers; when it is slow the workers wait, the parse queue fills, and the listeners
//! stop reading.

use std::io::{self, Write};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use metrics::counter;
use tokio::sync::mpsc;

use crate::config;
use crate::pipeline::Event;
use crate::Status;

pub mod file;
#[cfg(feature = "kafka")]
pub mod kafka;
pub mod route;
pub mod spool;

/// One normalised event, serialised, with what routing and accounting need.
#[derive(Clone, Debug)]
pub struct SinkRecord {
    /// The event as compact JSON, without a trailing newline (for a dead-lettered event on
    /// Kafka, the dead-letter record).
    pub payload: Vec<u8>,
    pub status: Status,
    /// Receive time of the message, ms since the epoch (delivery latency).
    pub received_ms: i64,
    /// Topic, key and headers, when the sink routes (Kafka).
    pub route: Option<route::Route>,
    /// Settled by the sink once the event is written (flushed), delivered or spooled.
    pub receipt: Option<Arc<crate::source::Receipt>>,
}

pub trait Sink: Send {
    /// A metric label: `stdout`, `file`, `null`, `kafka`.
    fn name(&self) -> &'static str;
    fn write(&mut self, record: &SinkRecord) -> io::Result<()>;
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

/// One event per line on any writer.
pub struct LineSink<W: Write + Send> {
    name: &'static str,
    out: W,
}

impl<W: Write + Send> LineSink<W> {
    pub fn new(name: &'static str, out: W) -> Self {
        LineSink { name, out }
    }
}

impl<W: Write + Send> Sink for LineSink<W> {
    fn name(&self) -> &'static str {
        self.name
    }

    fn write(&mut self, record: &SinkRecord) -> io::Result<()> {
        self.out.write_all(&record.payload)?;
        self.out.write_all(b"\n")
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
    fn write(&mut self, _: &SinkRecord) -> io::Result<()> {
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
        config::Sink::Stdout => Box::new(LineSink::new(
            "stdout",
            io::BufWriter::with_capacity(256 * 1024, io::stdout()),
        )),
        config::Sink::File {
            path,
            max_bytes,
            keep,
        } => Box::new(file::RotatingFile::open(path.clone(), *max_bytes, *keep)?),
        config::Sink::Null => Box::new(NullSink),
    })
}

/// Runs `sink` on its own thread until every sender of `batches` is gone and the channel
/// is drained, then closes it within `close_timeout`. `written` counts the events written
/// (sinks that count on acknowledgement do so themselves).
pub fn spawn(
    mut sink: Box<dyn Sink>,
    mut batches: mpsc::Receiver<Vec<SinkRecord>>,
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
                let batch = if sink.has_backlog() {
                    match batches.try_recv() {
                        Ok(batch) => batch,
                        Err(mpsc::error::TryRecvError::Empty) => {
                            sink.tick();
                            std::thread::sleep(Duration::from_millis(10));
                            continue;
                        }
                        Err(mpsc::error::TryRecvError::Disconnected) => break,
                    }
                } else {
                    match batches.blocking_recv() {
                        Some(batch) => batch,
                        None => break,
                    }
                };
                for record in &batch {
                    // A failing output (disk full, closed pipe) holds the pipeline back
                    // instead of losing events: retry until it recovers or the process is
                    // stopped, which reports what was not written.
                    while let Err(e) = sink.write(record) {
                        errors.increment(1);
                        tracing::error!(sink = name, error = %e, "write failed; retrying in 1 s");
                        std::thread::sleep(Duration::from_secs(1));
                    }
                }
                if sink.counts_on_write() {
                    events.increment(batch.len() as u64);
                    written.fetch_add(batch.len() as u64, Ordering::Relaxed);
                    // A source waiting for these events to be out (S3) hears so only once
                    // they left sluice's buffers.
                    if batch.iter().any(|r| r.receipt.is_some()) {
                        while let Err(e) = sink.flush() {
                            errors.increment(1);
                            tracing::error!(sink = name, error = %e, "flush failed; retrying in 1 s");
                            std::thread::sleep(Duration::from_secs(1));
                        }
                        for receipt in batch.iter().filter_map(|r| r.receipt.as_ref()) {
                            receipt.settle();
                        }
                    }
                }
                if batches.is_empty() {
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
            event.write_json(&mut self.buffer);
        }
        self.buffer.push(b'\n');
        self.out.write_all(&self.buffer)
    }

    pub fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}
