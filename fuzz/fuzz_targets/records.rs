#![no_main]
//! The record splitter of files and S3 objects: any bytes (not gzip), fed in any chunk
//! size, give the same records as fed whole; each record is the input's own bytes at its offset (cut to
//! the limit when flagged), and offsets only grow.
use libfuzzer_sys::fuzz_target;
use sluice::source::records::{Record, RecordReader};

fn split(data: &[u8], chunk: usize, max_record: usize) -> Vec<Record> {
    let mut reader = RecordReader::new("fuzz", max_record);
    let mut out = Vec::new();
    for piece in data.chunks(chunk) {
        if reader.feed(piece, &mut out).is_err() {
            return out;
        }
    }
    let _ = reader.finish(&mut out);
    out
}

fuzz_target!(|input: &[u8]| {
    let [chunk, limit, data @ ..] = input else {
        return;
    };
    let chunk = usize::from(*chunk % 64) + 1;
    let max_record = usize::from(*limit) * 16 + 1;
    let pieces = split(data, chunk, max_record);
    let whole = split(data, data.len().max(1), max_record);
    if data.starts_with(&[0x1f, 0x8b]) {
        // Random gzip is corrupt: where decoding stops may depend on the chunks. No panic,
        // and the record limit holds.
        assert!(pieces.iter().chain(&whole).all(|r| r.bytes.len() <= max_record));
        return;
    }
    assert_eq!(pieces, whole, "chunking changed the records");
    let mut last = None;
    for record in &whole {
        let at = record.offset as usize;
        assert!(last.is_none_or(|l| at > l), "offsets must grow");
        last = Some(at);
        assert!(record.bytes.len() <= max_record);
        assert!(!record.bytes.is_empty());
        let source = &data[at..];
        assert!(
            source.starts_with(&record.bytes),
            "a record is the input's own bytes at its offset"
        );
    }
});
