//! Reading a file (or standard input) for `sluice parse`: one syslog message per line, or,
//! when the input is a JSON value stream (an array, NDJSON, or concatenated pretty-printed
//! objects as MetaDefender and Panoptica write to S3), one message per JSON value.

use crate::format::json::{split_stream, StreamItem};

/// One record read from a file: its text and byte offset.
#[derive(Debug, PartialEq, Eq)]
pub struct FileRecord<'a> {
    pub bytes: &'a [u8],
    pub offset: u64,
    /// Read from a JSON value stream (no syslog header to look for).
    pub json: bool,
}

/// Whether the text is a JSON value stream: it starts with `{` or `[` and does not look like
/// one syslog line per line (a line-oriented file whose first line is a bare JSON object is
/// still read correctly as a stream: each line is one value).
pub fn is_json_stream(text: &str) -> bool {
    matches!(text.trim_start().as_bytes().first(), Some(b'{' | b'['))
}

/// Splits file contents into records. Invalid UTF-8 is passed through as bytes (the
/// pipeline reports it), so a line-oriented file is never rejected for its encoding.
pub fn records(data: &[u8]) -> Vec<FileRecord<'_>> {
    if let Some(text) = std::str::from_utf8(data).ok().filter(|t| is_json_stream(t)) {
        return split_stream(text)
            .into_iter()
            .map(|item| match item {
                StreamItem::Value { raw, offset } => FileRecord {
                    bytes: raw.as_bytes(),
                    offset: offset as u64,
                    json: true,
                },
                // The pipeline re-reads the text and reports why it is not JSON.
                StreamItem::Invalid { raw, offset, .. } => FileRecord {
                    bytes: raw.as_bytes(),
                    offset: offset as u64,
                    json: true,
                },
            })
            .collect();
    }
    let mut out = Vec::new();
    let mut offset = 0usize;
    for line in data.split_inclusive(|&b| b == b'\n') {
        let mut content = line;
        while let [rest @ .., b'\n' | b'\r'] = content {
            content = rest;
        }
        if !content.iter().all(u8::is_ascii_whitespace) {
            out.push(FileRecord {
                bytes: content,
                offset: offset as u64,
                json: false,
            });
        }
        offset += line.len();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_and_offsets() {
        let r = records(b"a\r\n\nb\n");
        assert_eq!(r.len(), 2);
        assert_eq!(r[1].bytes, b"b");
        assert_eq!(r[1].offset, 4);
    }

    #[test]
    fn pretty_json_objects() {
        let r = records(b"{\n\"a\": 1\n}\n{\n\"a\": 2\n}\n");
        assert_eq!(r.len(), 2);
        assert!(r[0].json);
    }
}
