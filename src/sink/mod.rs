//! Where events go. NDJSON to a writer (stdout or a file) now; Kafka arrives with the sink
//! issue. Serialisation reuses one buffer per writer.

use std::io::{self, Write};

use serde_json::Value;

/// Writes one JSON object per line.
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
