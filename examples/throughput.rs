//! Single-thread throughput of parse + normalise + serialise over a generated mixed corpus:
//! `cargo run --release --example throughput -- [MESSAGES]` (default 200000).
#[path = "../benches/corpus/mod.rs"]
mod corpus;

use std::time::Instant;

// As the sluice binary: mimalloc, and sonic-rs to serialise.
#[global_allocator]
static GLOBAL: sluice::allocator::Mimalloc = sluice::allocator::Mimalloc;

use sluice::grammar::GrammarSet;
use sluice::source::{Message, ReceiveInfo, Transport};
use sluice::{ParseOptions, Pipeline};

fn main() {
    let count: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(200_000);
    let pipeline = Pipeline::new(GrammarSet::embedded().unwrap(), ParseOptions::default()).unwrap();
    let received = std::sync::Arc::new(ReceiveInfo::new("bench", Transport::Tcp));
    let messages: Vec<Message> = corpus::mixed(count, 42)
        .into_iter()
        .map(|line| Message::new(line.into_bytes(), received.clone(), 1_700_000_000_000))
        .collect();
    let bytes: usize = messages.iter().map(|m| m.bytes.len()).sum();
    let mut out = Vec::with_capacity(1 << 20);
    let mut written = 0usize;
    let start = Instant::now();
    for m in &messages {
        out.clear();
        pipeline.parse_with(m, |event| event.into_json(&mut out));
        written += out.len();
    }
    let secs = start.elapsed().as_secs_f64();
    println!(
        "{count} messages, {:.1} MB in, {:.1} MB out, {secs:.2} s: {:.0} events/s, {:.1} MB/s in, {:.2} µs/event (one thread)",
        bytes as f64 / 1e6,
        written as f64 / 1e6,
        count as f64 / secs,
        bytes as f64 / 1e6 / secs,
        secs * 1e6 / count as f64
    );
}
