//! Parses N generated messages of one vendor shape through the whole pipeline (parse,
//! normalise, serialise), for instruction counts under callgrind (bench/callgrind.sh):
//! `cargo run --release --example vendor_cost -- VENDOR N`. Prints the input bytes;
//! `-- --list` prints the vendor shapes.
//! Generating the messages is not counted: only `parse_and_serialise` is.
#[path = "../benches/corpus/mod.rs"]
mod corpus;

#[global_allocator]
static GLOBAL: sluice::allocator::Mimalloc = sluice::allocator::Mimalloc;

use sluice::grammar::GrammarSet;
use sluice::source::{Message, ReceiveInfo, Transport};
use sluice::{ParseOptions, Pipeline};

fn main() {
    let mut args = std::env::args().skip(1);
    let vendor = args.next().unwrap_or_default();
    if vendor == "--list" {
        println!("{}", corpus::VENDORS.join("\n"));
        return;
    }
    let count: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(1000);
    let mut rng = corpus::Rng::new(42);
    let Some(_) = corpus::vendor(&vendor, &mut rng) else {
        eprintln!(
            "vendor_cost VENDOR N; vendors: {}",
            corpus::VENDORS.join(", ")
        );
        std::process::exit(2);
    };
    let pipeline = Pipeline::new(GrammarSet::embedded().unwrap(), ParseOptions::default()).unwrap();
    let received = std::sync::Arc::new(ReceiveInfo::new("bench", Transport::Tcp));
    let messages: Vec<Message> = (0..count)
        .map(|_| {
            let line = corpus::vendor(&vendor, &mut rng).expect("known vendor");
            Message::new(line.into_bytes(), received.clone(), 1_700_000_000_000)
        })
        .collect();
    let mut out = Vec::with_capacity(1 << 16);
    for message in &messages {
        parse_and_serialise(&pipeline, message, &mut out);
    }
    println!("{}", messages.iter().map(|m| m.bytes.len()).sum::<usize>());
}

/// What is counted (callgrind --toggle-collect): one event, from bytes to JSON bytes,
/// including freeing the event.
#[inline(never)]
fn parse_and_serialise(pipeline: &Pipeline, message: &Message, out: &mut Vec<u8>) {
    out.clear();
    pipeline.parse_with(message, |event| event.into_json(out));
}
