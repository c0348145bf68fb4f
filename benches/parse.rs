//! Parser and pipeline benchmarks: `cargo bench --bench parse`.
//!
//! Per vendor: one message through the whole pipeline (header → detect → parse → grammar →
//! OCSF event → JSON bytes). Per parser: the format parser alone.

mod corpus;

use std::sync::Arc;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};

// The allocator the sluice binary uses, so the figures match it.
#[global_allocator]
static GLOBAL: sluice::allocator::Mimalloc = sluice::allocator::Mimalloc;
use sluice::format::{cef, json, pipe};
use sluice::grammar::GrammarSet;
use sluice::source::{Message, ReceiveInfo, Transport};
use sluice::{ParseOptions, Pipeline};

fn message(text: &str) -> Message {
    let mut received = ReceiveInfo::new("bench", Transport::Tcp);
    received.peer = Some(Arc::from("127.0.0.1:40000"));
    Message::new(
        text.as_bytes().to_vec(),
        Arc::new(received),
        1_700_000_000_000,
    )
}

fn pipeline_per_vendor(c: &mut Criterion) {
    let pipeline = Pipeline::new(GrammarSet::embedded().unwrap(), ParseOptions::default()).unwrap();
    let mut rng = corpus::Rng::new(7);
    let vendors: [(&str, String); 4] = [
        ("symantec_edr", corpus::symantec(&mut rng)),
        ("kaspersky_kata", corpus::kata(&mut rng)),
        ("perception_point", corpus::perception_point(&mut rng)),
        ("opswat_metadefender", corpus::metadefender(&mut rng)),
    ];
    let mut group = c.benchmark_group("pipeline");
    let mut out = Vec::with_capacity(8192);
    for (name, text) in &vendors {
        group.throughput(Throughput::Bytes(text.len() as u64));
        group.bench_function(*name, |b| {
            b.iter_batched_ref(
                || message(text),
                |m| {
                    out.clear();
                    pipeline.parse_with(m, |event| event.into_json(&mut out));
                },
                BatchSize::SmallInput,
            )
        });
    }
    group.finish();
}

fn parsers(c: &mut Criterion) {
    let mut rng = corpus::Rng::new(11);
    let symantec = corpus::symantec(&mut rng);
    let start = symantec.find("CEF:").unwrap();
    let pp = corpus::perception_point(&mut rng);
    let pp_payload = &pp[pp.find("datetime").unwrap()..];
    let json_text = &symantec[symantec.find("json=").unwrap() + 5..];
    let mut group = c.benchmark_group("parser");
    group.throughput(Throughput::Bytes(symantec.len() as u64));
    group.bench_function("cef_header_and_extension", |b| {
        b.iter(|| {
            let m = cef::parse_header(&symantec, start).unwrap();
            cef::parse_extension(m.extension, &["json"]).len()
        })
    });
    group.throughput(Throughput::Bytes(pp_payload.len() as u64));
    group.bench_function("pipe", |b| b.iter(|| pipe::parse(pp_payload).len()));
    group.throughput(Throughput::Bytes(json_text.len() as u64));
    group.bench_function("json_lenient_repair", |b| {
        b.iter(|| json::parse_lenient(json_text, &json::Made::new()).is_ok())
    });
    group.finish();
}

fn mixed_throughput(c: &mut Criterion) {
    let pipeline = Pipeline::new(GrammarSet::embedded().unwrap(), ParseOptions::default()).unwrap();
    let lines = corpus::mixed(4_000, 42);
    let messages: Vec<Message> = lines.iter().map(|l| message(l)).collect();
    let bytes: usize = lines.iter().map(String::len).sum();
    let mut group = c.benchmark_group("mixed");
    group.throughput(Throughput::Elements(messages.len() as u64));
    let mut out = Vec::with_capacity(1 << 20);
    group.bench_function("parse_normalise_serialise_4000", |b| {
        b.iter(|| {
            out.clear();
            for m in &messages {
                pipeline.parse_with(m, |event| event.into_json(&mut out));
                out.push(b'\n');
            }
            out.len()
        })
    });
    group.finish();
    eprintln!(
        "mixed corpus: {} messages, {} bytes, {:.1} B/message",
        messages.len(),
        bytes,
        bytes as f64 / messages.len() as f64
    );
}

criterion_group!(benches, pipeline_per_vendor, parsers, mixed_throughput);
criterion_main!(benches);
