//! What emitting sluice's output costs before any parsing, on one thread, over the same
//! generated mixed corpus as `examples/throughput.rs`:
//! `cargo run --release --example floor -- [MESSAGES]` (default 200000).
//!
//! 1. `copy`: each event's finished JSON line (made once, before timing) copied into the
//!    output buffer: the memory traffic of writing the output, and nothing else.
//! 2. `raw_data`: each message written as a JSON string (quoted and escaped, as the
//!    event's `raw_data` member is) into the output buffer.
//! 3. `events without raw_data, copied, + raw_data`: the same events made with
//!    `raw_data = false` (events not parsed `ok` keep it: Symantec's repaired ones) copied,
//!    then the message written as a JSON string: about the bytes of a whole event, with
//!    the escaping its `raw_data` needs.
//!
//! 4. `header + format parsers`: no output at all, only what reading a message takes with
//!    sluice's parsers: the UTF-8 check, the syslog header, format detection, and the CEF
//!    header and extension (with Symantec's `json=` parsed into a tree), pipe or JSON
//!    parser, as `Pipeline::parse_text` calls them; no grammar, no event.
//!
//! 5. `parsed, mapped, built and freed`: `Pipeline::parse_with` with no output: the event
//!    made as in `sluice run` and dropped.
//! 6. `parsed, mapped, built, written and freed`: the whole of `examples/throughput.rs`'s
//!    work; 6 less 5 is what writing the event from its tree costs, 5 less 4 what mapping,
//!    building and freeing it cost.
//!
//! Whatever parsing and mapping cost comes on top of 1 to 3, so 1 / (time per event) there
//! bounds the events/s of any build that writes the same events; 3 and 4 added bound any
//! build that also reads them with these parsers. A benchmark: nothing is asserted.
#[path = "../benches/corpus/mod.rs"]
mod corpus;

use std::hint::black_box;
use std::time::Instant;

#[global_allocator]
static GLOBAL: sluice::allocator::Mimalloc = sluice::allocator::Mimalloc;

use std::borrow::Cow;

use sluice::event::node::{write_str, Node};
use sluice::format::{self, cef, json, kv, pipe, Format};
use sluice::grammar::GrammarSet;
use sluice::source::{Message, ReceiveInfo, Transport};
use sluice::syslog::{self, TimeContext};
use sluice::{ParseOptions, Pipeline};

fn main() {
    let count: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(200_000);
    let lines = corpus::mixed(count, 42);
    let events = written_events(&lines, true);
    let events_without_raw = written_events(&lines, false);
    let in_bytes: usize = lines.iter().map(String::len).sum();
    let out_bytes: usize = events.iter().map(Vec::len).sum();
    let out_bytes_without_raw: usize = events_without_raw.iter().map(Vec::len).sum();
    println!(
        "{count} messages, {:.0} B in and {:.0} B out per event on average ({:.0} B with raw_data = false)",
        in_bytes as f64 / count as f64,
        out_bytes as f64 / count as f64,
        out_bytes_without_raw as f64 / count as f64
    );
    let mut out = Vec::with_capacity(1 << 20);
    let mut measure = |name: &str, each: &mut dyn FnMut(usize, &mut Vec<u8>)| {
        // The fastest of five passes: the first warms the buffer and caches, and on a
        // shared host a slow pass is the neighbours' doing, not this code's.
        let mut secs = f64::INFINITY;
        for _ in 0..5 {
            let start = Instant::now();
            for i in 0..count {
                out.clear();
                each(i, &mut out);
                black_box(&out);
            }
            secs = secs.min(start.elapsed().as_secs_f64());
        }
        println!(
            "{name:>44}: {:>9.0} events/s, {:.3} µs/event",
            count as f64 / secs,
            secs * 1e6 / count as f64
        );
    };
    measure("copy", &mut |i, out| out.extend_from_slice(&events[i]));
    measure("raw_data", &mut |i, out| write_str(out, &lines[i]));
    measure(
        "events without raw_data, copied, + raw_data",
        &mut |i, out| {
            out.extend_from_slice(&events_without_raw[i]);
            write_str(out, &lines[i]);
        },
    );
    let context = TimeContext {
        received_ms: 1_700_000_000_000,
        zone: ParseOptions::default().zone,
    };
    measure("header + format parsers (no output)", &mut |i, _| {
        black_box(parse_only(lines[i].as_bytes(), &context));
    });
    let pipeline = Pipeline::new(GrammarSet::embedded().unwrap(), ParseOptions::default()).unwrap();
    let messages = messages(&lines);
    measure(
        "parsed, mapped, built and freed (no output)",
        &mut |i, _| {
            pipeline.parse_with(&messages[i], |event| black_box(event.status));
        },
    );
    measure("parsed, mapped, built, written and freed", &mut |i, out| {
        pipeline.parse_with(&messages[i], |event| event.into_json(out));
    });
}

/// The lines as received messages, made before any timing.
fn messages(lines: &[String]) -> Vec<Message> {
    let received = std::sync::Arc::new(ReceiveInfo::new("bench", Transport::Tcp));
    lines
        .iter()
        .map(|line| {
            Message::new(
                line.clone().into_bytes(),
                received.clone(),
                1_700_000_000_000,
            )
        })
        .collect()
}

/// The header and format parsers' work on one message, as `Pipeline::parse_text` does it,
/// without grammar or event; returns a count so the work is not optimised away.
fn parse_only(bytes: &[u8], context: &TimeContext) -> usize {
    let Ok(text) = simdutf8::basic::from_utf8(bytes) else {
        return 0;
    };
    let (header, payload) = syslog::parse(text, context);
    let made = json::Made::new();
    let parsed = match format::detect(payload) {
        Format::Cef { start } => match cef::parse_header(payload, start) {
            Ok(message) => cef::parse_extension(message.extension, &["json"])
                .into_iter()
                .map(|field| match (field.key, &field.value) {
                    ("json", Cow::Borrowed(text)) => json::parse_lenient_in_place(text, &made)
                        .map_or(0, |(value, _)| kept(value)),
                    _ => 1,
                })
                .sum(),
            Err(_) => 0,
        },
        Format::Pipe => pipe::parse(payload).len(),
        Format::Kv => kv::parse(payload).len(),
        Format::Json => json::parse(payload).map_or(0, kept),
        Format::JsonMembers => json::parse_members(payload, &made).map_or(0, kept),
        Format::Unknown => 0,
    };
    parsed + header.hostname.map_or(0, str::len)
}

/// A parsed JSON tree, counted and then freed (freeing is part of its cost).
fn kept(value: Node<'_>) -> usize {
    black_box(&value);
    1
}

/// Each line's event as sluice writes it.
fn written_events(lines: &[String], raw_data: bool) -> Vec<Vec<u8>> {
    let options = ParseOptions {
        raw_data,
        ..ParseOptions::default()
    };
    let pipeline = Pipeline::new(GrammarSet::embedded().unwrap(), options).unwrap();
    messages(lines)
        .iter()
        .map(|message| {
            let mut out = Vec::new();
            pipeline.parse_with(message, |event| event.into_json(&mut out));
            out
        })
        .collect()
}
