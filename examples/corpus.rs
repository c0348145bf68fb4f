//! Writes the generated mixed vendor corpus (the four syslog-delivered shapes in turn), one
//! message per line: `cargo run --release --example corpus -- MESSAGES [SEED] > corpus.log`.
#[path = "../benches/corpus/mod.rs"]
mod corpus;

use std::io::Write;

fn main() {
    let count: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(100_000);
    // Another seed gives other values in the same shapes (e.g. a training corpus that is
    // not the one measured).
    let seed: u64 = std::env::args()
        .nth(2)
        .and_then(|a| a.parse().ok())
        .unwrap_or(42);
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    for line in corpus::mixed(count, seed) {
        writeln!(out, "{line}").expect("write the corpus");
    }
}
