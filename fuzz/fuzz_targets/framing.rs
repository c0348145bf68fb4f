#![no_main]
//! Any byte stream, in chunks of any size (pushed, or appended to the framer's read
//! buffer, in turn): framing never panics and never yields a frame longer than the limit;
//! what is left at the end comes out flagged truncated. Frames are views of the buffer they
//! were read into: each is kept to the end and must still hold the bytes it held when it
//! came out, however the buffer was appended to and reallocated since.
use libfuzzer_sys::fuzz_target;
use sluice::source::framing::Framer;

fuzz_target!(|data: &[u8]| {
    let Some((&split_seed, stream)) = data.split_first() else {
        return;
    };
    let max = 16 + (split_seed as usize % 64);
    let chunk = 1 + (split_seed as usize % 7);
    let mut framer = Framer::new(max);
    let mut kept = Vec::new();
    for (i, piece) in stream.chunks(chunk).enumerate() {
        // Both ways in: a copy, and a read straight into the framer's buffer.
        if i % 2 == 0 {
            framer.push(piece);
        } else {
            framer
                .read_buffer(piece.len(), piece.len() + chunk)
                .extend_from_slice(piece);
        }
        while let Some(frame) = framer.next_frame() {
            assert!(frame.bytes.len() <= max);
            kept.push((frame.bytes.to_vec(), frame.bytes));
        }
    }
    if let Some(frame) = framer.finish() {
        assert!(frame.truncated);
        assert!(frame.bytes.len() <= max);
    }
    for (copy, frame) in &kept {
        assert_eq!(&copy[..], &frame[..]);
    }
});
