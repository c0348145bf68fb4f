#![no_main]
//! Any bytes as a spool segment (what a crash or a disk error can leave): reading never
//! panics, stops at the first bad record, and what it accepts re-encodes to exactly the
//! bytes it came from.
use libfuzzer_sys::fuzz_target;
use sluice::sink::spool::{encode_record, scan};

fuzz_target!(|data: &[u8]| {
    let (records, good) = scan(data);
    assert!(good <= data.len());
    let reencoded: Vec<u8> = records.iter().flat_map(encode_record).collect();
    assert_eq!(&reencoded[..], &data[..good]);
});
