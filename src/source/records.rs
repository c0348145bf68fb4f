//! Splitting a stream of bytes (a file, an S3 object) into records, one event each,
//! without holding the whole stream: chunks go in as they arrive, complete records come out.
//!
//! The shape is decided by the first byte that is not white space:
//! - `[`: a JSON array; each element is a record (Panoptica's findings files);
//! - `{`: a stream of JSON values, one per line (NDJSON) or pretty-printed and concatenated
//!   (MetaDefender's "JSON" files); a line that starts with `{` always starts a new value,
//!   so one cut-off object does not swallow the rest of the file;
//! - anything else: one record per line (syslog lines, MetaDefender's "SYSLOG" files of
//!   braceless JSON members).
//!
//! Gzip is recognised by its magic bytes (or a `.gz` name) and decompressed on the way in.
//! The scanner only finds boundaries (strings, escapes and nesting depth); the pipeline
//! parses each record and reports a bad one, with its offset, while the rest go through.

use std::io::{self, Write};

/// One record: its bytes, where it starts in the (decompressed) stream, and how it was cut.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub bytes: Vec<u8>,
    pub offset: u64,
    /// Found as a JSON value (no syslog header to look for).
    pub json: bool,
    /// Longer than the record limit: cut there.
    pub truncated: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Shape {
    Undecided,
    Lines,
    JsonStream,
    JsonArray,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Within {
    /// Between records.
    Nothing,
    /// A JSON value (object or array; in an array, also a scalar element).
    Value,
    /// A line that is not JSON (text records, or junk between JSON values).
    Line,
}

/// Incremental record splitter; see the module documentation for the shapes.
pub struct Splitter {
    shape: Shape,
    within: Within,
    max_record: usize,
    current: Vec<u8>,
    start: u64,
    position: u64,
    truncated: bool,
    depth: u32,
    in_string: bool,
    escaped: bool,
    at_line_start: bool,
    /// JSON array shape: inside the outer `[`.
    array_open: bool,
    /// A scalar array element (ends at `,` or `]` outside any string).
    scalar: bool,
}

impl Splitter {
    /// `max_record`: longer records are cut at this many bytes and flagged.
    pub fn new(max_record: usize) -> Splitter {
        Splitter {
            shape: Shape::Undecided,
            within: Within::Nothing,
            max_record: max_record.max(1),
            current: Vec::new(),
            start: 0,
            position: 0,
            truncated: false,
            depth: 0,
            in_string: false,
            escaped: false,
            at_line_start: true,
            array_open: false,
            scalar: false,
        }
    }

    /// Feeds the next chunk; complete records are appended to `out`.
    pub fn feed(&mut self, chunk: &[u8], out: &mut Vec<Record>) {
        let mut i = 0;
        while i < chunk.len() {
            if self.shape == Shape::Lines {
                i += self.feed_lines(&chunk[i..], out);
                continue;
            }
            let byte = chunk[i];
            self.step(byte, out);
            self.position += 1;
            i += 1;
        }
    }

    /// End of input: whatever is still open becomes the last record (a cut-off JSON value
    /// then fails to parse, and says so).
    pub fn finish(&mut self, out: &mut Vec<Record>) {
        if self.within != Within::Nothing {
            self.emit(out);
        }
    }

    /// Lines shape: whole lines at a time with memchr; returns the bytes consumed.
    fn feed_lines(&mut self, chunk: &[u8], out: &mut Vec<Record>) -> usize {
        match memchr::memchr(b'\n', chunk) {
            Some(end) => {
                self.push_slice(&chunk[..end]);
                self.position += end as u64 + 1;
                self.emit(out);
                end + 1
            }
            None => {
                self.push_slice(chunk);
                self.position += chunk.len() as u64;
                chunk.len()
            }
        }
    }

    fn push_slice(&mut self, bytes: &[u8]) {
        if self.within == Within::Nothing {
            self.within = Within::Line;
            self.start = self.position;
        }
        let room = self.max_record.saturating_sub(self.current.len());
        if bytes.len() > room {
            self.truncated = true;
        }
        self.current
            .extend_from_slice(&bytes[..bytes.len().min(room)]);
    }

    fn push(&mut self, byte: u8) {
        if self.current.len() < self.max_record {
            self.current.push(byte);
        } else {
            self.truncated = true;
        }
    }

    fn begin(&mut self, within: Within) {
        self.within = within;
        self.start = self.position;
        self.current.clear();
        self.truncated = false;
        self.depth = 0;
        self.in_string = false;
        self.escaped = false;
        self.scalar = false;
    }

    fn emit(&mut self, out: &mut Vec<Record>) {
        let json = self.within == Within::Value;
        self.within = Within::Nothing;
        // Trailing white space and a CR of a CRLF line are not part of the record.
        while self.current.last().is_some_and(|b| b.is_ascii_whitespace()) {
            self.current.pop();
        }
        let bytes = std::mem::take(&mut self.current);
        if !bytes.is_empty() {
            out.push(Record {
                bytes,
                offset: self.start,
                json,
                truncated: self.truncated,
            });
        }
        self.truncated = false;
    }

    fn step(&mut self, byte: u8, out: &mut Vec<Record>) {
        let line_start = self.at_line_start;
        self.at_line_start = byte == b'\n';
        if self.shape == Shape::Undecided {
            match byte {
                b'[' => {
                    self.shape = Shape::JsonArray;
                    self.array_open = true;
                }
                b'{' => {
                    self.shape = Shape::JsonStream;
                    self.begin(Within::Value);
                    self.value_byte(byte, out);
                }
                b' ' | b'\t' | b'\r' | b'\n' => {}
                // A byte-order mark is passed over, whatever follows it.
                0xEF | 0xBB | 0xBF if self.position < 3 => {}
                _ => {
                    self.shape = Shape::Lines;
                    self.begin(Within::Line);
                    self.push(byte);
                }
            }
            return;
        }
        match self.within {
            Within::Line => {
                if byte == b'\n' {
                    self.emit(out);
                } else {
                    self.push(byte);
                }
            }
            Within::Value => {
                if self.shape == Shape::JsonStream && line_start && byte == b'{' && self.depth > 0 {
                    // The value before never closed: it goes out as it is (and fails to
                    // parse, with its offset); this line starts the next one.
                    self.emit(out);
                    self.begin(Within::Value);
                }
                self.value_byte(byte, out);
            }
            Within::Nothing => self.between(byte, out),
        }
    }

    /// A byte between records.
    fn between(&mut self, byte: u8, out: &mut Vec<Record>) {
        match (self.shape, byte) {
            (_, b' ' | b'\t' | b'\r' | b'\n') => {}
            (Shape::JsonArray, b',') if self.array_open => {}
            (Shape::JsonArray, b']') if self.array_open => self.array_open = false,
            // Concatenated arrays: another one starts.
            (Shape::JsonArray, b'[') if !self.array_open => self.array_open = true,
            (Shape::JsonArray, _) if self.array_open => {
                self.begin(Within::Value);
                self.scalar = !matches!(byte, b'{' | b'[');
                self.value_byte(byte, out);
            }
            (_, b'{' | b'[') => {
                self.begin(Within::Value);
                self.value_byte(byte, out);
            }
            _ => {
                self.begin(Within::Line);
                self.push(byte);
            }
        }
    }

    /// A byte inside a JSON value: track strings and depth to find where it ends.
    fn value_byte(&mut self, byte: u8, out: &mut Vec<Record>) {
        if self.in_string {
            self.push(byte);
            if self.escaped {
                self.escaped = false;
            } else if byte == b'\\' {
                self.escaped = true;
            } else if byte == b'"' || byte == b'\n' {
                // JSON strings hold no raw line breaks: a string still open at the end of
                // its line was never closed; depth tracking resumes on the next line.
                self.in_string = false;
            }
            return;
        }
        if self.scalar && self.depth == 0 && matches!(byte, b',' | b']') {
            self.emit(out);
            self.between(byte, out);
            return;
        }
        self.push(byte);
        match byte {
            b'"' => self.in_string = true,
            b'{' | b'[' => self.depth += 1,
            b'}' | b']' => {
                self.depth = self.depth.saturating_sub(1);
                if self.depth == 0 && !self.scalar {
                    self.emit(out);
                }
            }
            _ => {}
        }
    }
}

/// Whether a name or the first bytes say gzip.
/// Whether the magic bytes say gzip; the name decides only when the first chunk is too
/// short to tell.
pub fn is_gzip(name: &str, first_bytes: &[u8]) -> bool {
    first_bytes.starts_with(&[0x1f, 0x8b]) || (first_bytes.len() < 2 && name.ends_with(".gz"))
}

/// Decompresses when needed and splits: the whole way from raw chunks to records.
pub struct RecordReader {
    name: String,
    gzip: Option<flate2::write::MultiGzDecoder<Vec<u8>>>,
    decided: bool,
    /// The first bytes, held until there are enough to see the gzip magic number (so the
    /// decision does not depend on how the input was cut into chunks).
    head: Vec<u8>,
    splitter: Splitter,
    /// Bytes read, before decompression.
    pub raw_bytes: u64,
}

impl RecordReader {
    pub fn new(name: &str, max_record: usize) -> RecordReader {
        RecordReader {
            name: name.to_string(),
            gzip: None,
            decided: false,
            head: Vec::new(),
            splitter: Splitter::new(max_record),
            raw_bytes: 0,
        }
    }

    /// Feeds raw (possibly compressed) bytes; an error means the gzip data is corrupt (the
    /// records found before it are in `out`).
    pub fn feed(&mut self, chunk: &[u8], out: &mut Vec<Record>) -> io::Result<()> {
        if chunk.is_empty() {
            return Ok(());
        }
        self.raw_bytes += chunk.len() as u64;
        if !self.decided {
            self.head.extend_from_slice(chunk);
            if self.head.len() < 2 {
                return Ok(());
            }
            let head = std::mem::take(&mut self.head);
            self.decide(&head);
            return self.pass(&head, out);
        }
        self.pass(chunk, out)
    }

    fn decide(&mut self, first_bytes: &[u8]) {
        self.decided = true;
        if is_gzip(&self.name, first_bytes) {
            self.gzip = Some(flate2::write::MultiGzDecoder::new(Vec::new()));
        }
    }

    /// Decompresses (when gzip) and splits. What was decompressed before an error in the
    /// data is split too, then the error returned.
    fn pass(&mut self, chunk: &[u8], out: &mut Vec<Record>) -> io::Result<()> {
        match &mut self.gzip {
            Some(decoder) => {
                let written = decoder.write_all(chunk);
                let plain = std::mem::take(decoder.get_mut());
                self.splitter.feed(&plain, out);
                // Hand the buffer back so its allocation is reused.
                *decoder.get_mut() = plain;
                decoder.get_mut().clear();
                written
            }
            None => {
                self.splitter.feed(chunk, out);
                Ok(())
            }
        }
    }

    /// End of input. A gzip stream that stops early is an error (the records it did hold
    /// are in `out` first).
    pub fn finish(mut self, out: &mut Vec<Record>) -> io::Result<()> {
        let mut result = Ok(());
        // An empty object is empty, whatever its name says.
        if !self.decided && !self.head.is_empty() {
            let head = std::mem::take(&mut self.head);
            self.decide(&head);
            result = self.pass(&head, out);
        }
        if let Some(mut decoder) = self.gzip.take() {
            let finished = decoder.try_finish();
            result = result.and(finished);
            let plain = std::mem::take(decoder.get_mut());
            self.splitter.feed(&plain, out);
        }
        self.splitter.finish(out);
        result
    }
}

/// Reads a whole file (or stdin) through a [`RecordReader`], 256 KiB at a time, handing
/// records over in batches.
pub fn read_all(
    name: &str,
    mut input: impl io::Read,
    max_record: usize,
    mut batch: impl FnMut(Vec<Record>) -> io::Result<()>,
) -> io::Result<()> {
    let mut reader = RecordReader::new(name, max_record);
    let mut buffer = vec![0u8; 256 * 1024];
    loop {
        let n = match input.read(&mut buffer) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        let mut out = Vec::new();
        let fed = reader.feed(&buffer[..n], &mut out);
        batch(out)?;
        fed.map_err(|e| io::Error::new(e.kind(), format!("{name}: corrupt gzip data: {e}")))?;
    }
    let mut out = Vec::new();
    let finished = reader.finish(&mut out);
    batch(out)?;
    finished.map_err(|e| io::Error::new(e.kind(), format!("{name}: gzip data cut short: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Splits `data` fed in chunks of every size from 1 to 7 bytes and whole; all must agree.
    fn split(data: &[u8]) -> Vec<Record> {
        let whole = {
            let mut s = Splitter::new(1 << 20);
            let mut out = Vec::new();
            s.feed(data, &mut out);
            s.finish(&mut out);
            out
        };
        for size in 1..=7 {
            let mut s = Splitter::new(1 << 20);
            let mut out = Vec::new();
            for chunk in data.chunks(size) {
                s.feed(chunk, &mut out);
            }
            s.finish(&mut out);
            assert_eq!(out, whole, "chunk size {size}");
        }
        whole
    }

    fn texts(records: &[Record]) -> Vec<(&str, u64, bool)> {
        records
            .iter()
            .map(|r| (std::str::from_utf8(&r.bytes).unwrap(), r.offset, r.json))
            .collect()
    }

    #[test]
    fn lines_with_crlf_and_blank_lines() {
        let r = split(b"a b\r\n\n  \nc\n");
        assert_eq!(texts(&r), [("a b", 0, false), ("c", 9, false)]);
    }

    #[test]
    fn braceless_member_lines_are_lines() {
        let r = split(b"\"log_type\":\"config\",\"x\":1\n\"log_type\":\"added\"\n");
        assert_eq!(
            texts(&r),
            [
                ("\"log_type\":\"config\",\"x\":1", 0, false),
                ("\"log_type\":\"added\"", 26, false)
            ]
        );
    }

    #[test]
    fn concatenated_pretty_objects_at_column_zero() {
        let data = b"{\n\"a\": \"x}\",\n\"b\": {\"c\": [1, {}]}\n}\n{\n\"a\": 2\n}\n";
        let r = split(data);
        assert_eq!(r.len(), 2);
        assert_eq!(r[0].bytes, &data[..34]);
        assert_eq!(texts(&r)[1], ("{\n\"a\": 2\n}", 35, true));
    }

    #[test]
    fn ndjson_and_strings_with_escaped_quotes_and_braces() {
        let r = split(b"{\"a\":\"q\\\"}{\"}\n{\"b\":\"\\\\\"}\n");
        assert_eq!(
            texts(&r),
            [
                ("{\"a\":\"q\\\"}{\"}", 0, true),
                ("{\"b\":\"\\\\\"}", 14, true)
            ]
        );
    }

    #[test]
    fn array_of_objects_and_scalars() {
        let r = split(b"[\n  {\"a\": [1, 2]},\n  {\"b\": \"]\"}, 3, \"s,t\"\n]\n");
        assert_eq!(
            texts(&r),
            [
                ("{\"a\": [1, 2]}", 4, true),
                ("{\"b\": \"]\"}", 21, true),
                ("3", 33, true),
                ("\"s,t\"", 36, true)
            ]
        );
    }

    #[test]
    fn an_object_cut_short_does_not_swallow_the_next() {
        let data = b"{\n\"a\": 1,\n\"b\": \n{\n\"a\": 2\n}\n";
        let r = split(data);
        assert_eq!(
            texts(&r),
            [
                ("{\n\"a\": 1,\n\"b\":", 0, true),
                ("{\n\"a\": 2\n}", 16, true)
            ]
        );
    }

    #[test]
    fn an_unclosed_string_ends_at_its_line() {
        let r = split(b"{\"a\": \"open\n}\n{\"b\": 1}\n");
        assert_eq!(
            texts(&r),
            [("{\"a\": \"open\n}", 0, true), ("{\"b\": 1}", 14, true)]
        );
    }

    #[test]
    fn a_truncated_last_value_is_emitted() {
        let r = split(b"{\"a\":1}\n{\"b\": [1, ");
        assert_eq!(
            texts(&r),
            [("{\"a\":1}", 0, true), ("{\"b\": [1,", 8, true)]
        );
    }

    #[test]
    fn junk_between_values_is_its_own_record() {
        let r = split(b"{\"a\":1}\nnot json\n{\"b\":2}");
        assert_eq!(
            texts(&r),
            [
                ("{\"a\":1}", 0, true),
                ("not json", 8, false),
                ("{\"b\":2}", 17, true)
            ]
        );
    }

    #[test]
    fn empty_and_blank_input() {
        assert!(split(b"").is_empty());
        assert!(split(b" \n\t\n").is_empty());
        assert!(split(b"[]").is_empty());
    }

    #[test]
    fn byte_order_mark_is_skipped() {
        let r = split(b"\xEF\xBB\xBF{\"a\":1}");
        assert_eq!(texts(&r), [("{\"a\":1}", 3, true)]);
        let r = split(b"\xEF\xBB\xBFline\n");
        assert_eq!(texts(&r), [("line", 3, false)]);
    }

    #[test]
    fn long_records_are_cut_and_flagged() {
        let mut s = Splitter::new(4);
        let mut out = Vec::new();
        s.feed(b"abcdefgh\nij\n{\"k\":12345}{}", &mut out);
        s.finish(&mut out);
        assert_eq!(out[0].bytes, b"abcd");
        assert!(out[0].truncated);
        assert_eq!(out[1].bytes, b"ij");
        assert!(!out[1].truncated);
        // Lines shape: the JSON-looking rest is lines too, each cut.
        assert_eq!(out[2].bytes, b"{\"k\"");
        assert!(out[2].truncated);
    }

    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        encoder.write_all(data).unwrap();
        encoder.finish().unwrap()
    }

    #[test]
    fn gzip_by_magic_bytes_in_small_chunks() {
        let plain = b"{\"a\":1}\n{\"a\":2}\n".repeat(100);
        let mut compressed = gzip(&plain);
        // Two gzip members back to back (as `cat a.gz b.gz` gives) are one stream.
        compressed.extend(gzip(b"{\"a\":3}\n"));
        let mut records = Vec::new();
        read_all("export.json", &compressed[..], 1 << 20, |batch| {
            records.extend(batch);
            Ok(())
        })
        .unwrap();
        assert_eq!(records.len(), 201);
        assert_eq!(records[200].bytes, b"{\"a\":3}");
        assert_eq!(records[1].offset, 8);
    }

    #[test]
    fn gzip_is_recognised_whatever_the_chunk_size() {
        let plain = b"{\"a\":1}\n{\"a\":2}\n";
        let compressed = gzip(plain);
        for name in ["x.json", "x.json.gz"] {
            let mut reader = RecordReader::new(name, 1024);
            let mut out = Vec::new();
            for byte in &compressed {
                reader.feed(std::slice::from_ref(byte), &mut out).unwrap();
            }
            reader.finish(&mut out).unwrap();
            assert_eq!(out.len(), 2, "{name}");
            assert_eq!(out[1].bytes, b"{\"a\":2}");
        }
        // One byte in all, the gzip magic's first: not enough to be gzip, read as text.
        let mut reader = RecordReader::new("x.log", 1024);
        let mut out = Vec::new();
        reader.feed(&[0x1f], &mut out).unwrap();
        reader.finish(&mut out).unwrap();
        assert_eq!(out[0].bytes, [0x1f]);
    }

    #[test]
    fn truncated_gzip_keeps_what_it_held_and_fails() {
        let compressed = gzip(&b"line one\nline two\n".repeat(1000));
        let cut = &compressed[..compressed.len() - 10];
        let mut records = Vec::new();
        let result = read_all("x.gz", cut, 1 << 20, |batch| {
            records.extend(batch);
            Ok(())
        });
        assert!(result.is_err(), "a cut gzip stream is an error");
        assert!(
            records.len() > 1000,
            "records before the cut: {}",
            records.len()
        );
    }

    #[test]
    fn empty_object_gives_nothing() {
        let mut records = Vec::new();
        read_all("empty.json.gz", &b""[..], 1024, |batch| {
            records.extend(batch);
            Ok(())
        })
        .unwrap();
        assert!(records.is_empty());
    }
}
