//! Where events go: NDJSON to stdout or a file, or nowhere (benchmarks). Kafka arrives with
//! its own issue and plugs in as another [`Sink`].
//!
//! The sink runs on its own thread, fed by a bounded channel of batches from the parse
//! workers; when it is slow the workers wait, the parse queue fills, and the listeners
//! stop reading.

use std::io::{self, Write};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use metrics::counter;
use serde_json::Value;
use tokio::sync::mpsc;

use crate::config;
use crate::Status;

/// One normalised event, serialised, with what routing and accounting need.
#[derive(Clone, Debug)]
pub struct SinkRecord {
    /// The event as compact JSON, without a trailing newline.
    pub payload: Vec<u8>,
    pub status: Status,
}

pub trait Sink: Send {
    /// A metric label: `stdout`, `file`, `null`.
    fn name(&self) -> &'static str;
    fn write(&mut self, record: &SinkRecord) -> io::Result<()>;
    fn flush(&mut self) -> io::Result<()>;
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

pub fn open(config: &config::Sink) -> io::Result<Box<dyn Sink>> {
    Ok(match config {
        config::Sink::Stdout => Box::new(LineSink::new(
            "stdout",
            io::BufWriter::with_capacity(256 * 1024, io::stdout()),
        )),
        config::Sink::File { path } => {
            let file = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", path.display())))?;
            Box::new(LineSink::new(
                "file",
                io::BufWriter::with_capacity(256 * 1024, file),
            ))
        }
        config::Sink::Null => Box::new(NullSink),
    })
}

/// Runs `sink` on its own thread until every sender of `batches` is gone and the channel
/// is drained. `written` counts the events it wrote.
pub fn spawn(
    mut sink: Box<dyn Sink>,
    mut batches: mpsc::Receiver<Vec<SinkRecord>>,
    written: Arc<AtomicU64>,
) -> std::thread::JoinHandle<()> {
    std::thread::Builder::new()
        .name("sluice-sink".into())
        .spawn(move || {
            let name = sink.name();
            let events = counter!("sluice_events_written_total", "sink" => name);
            let errors = counter!("sluice_sink_errors_total", "sink" => name);
            while let Some(batch) = batches.blocking_recv() {
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
                events.increment(batch.len() as u64);
                written.fetch_add(batch.len() as u64, Ordering::Relaxed);
                if batches.is_empty() {
                    if let Err(e) = sink.flush() {
                        errors.increment(1);
                        tracing::error!(sink = name, error = %e, "flush failed");
                    }
                }
            }
            if let Err(e) = sink.flush() {
                tracing::error!(sink = name, error = %e, "final flush failed");
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

    pub fn write(&mut self, event: &Value) -> io::Result<()> {
        self.buffer.clear();
        if self.pretty {
            serde_json::to_writer_pretty(&mut self.buffer, event)?;
        } else {
            serde_json::to_writer(&mut self.buffer, event)?;
        }
        self.buffer.push(b'\n');
        self.out.write_all(&self.buffer)
    }

    pub fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}
