//! sluice's parse + normalise + serialise against VRL's `parse_syslog` + `parse_cef` +
//! `parse_json` + JSON encoding, one thread, in memory, on the CEF lines of a corpus (the
//! Symantec EDR lines with their embedded `json=`, and the KATA lines). Prints events/s,
//! MB/s, CPU µs per event, failures, and the ratio.
//!
//!     vrl-compare CORPUS [RUNS]
use std::collections::BTreeMap;
use std::hint::black_box;
use std::time::Instant;

use sluice::grammar::GrammarSet;
use sluice::source::{Message, ReceiveInfo, Transport};
use sluice::{ParseOptions, Pipeline, Status};
use vrl::compiler::runtime::Runtime;
use vrl::compiler::state::RuntimeState;
use vrl::compiler::{Program, TargetValue, TimeZone};
use vrl::value::{Secrets, Value};

// Both sides run with the allocator the sluice binary uses.
#[global_allocator]
static GLOBAL: sluice::allocator::Mimalloc = sluice::allocator::Mimalloc;

/// VRL's nearest equivalent of what sluice does with these lines: the syslog header, the
/// CEF header and extension (lenient, as KATA's `requestUrl` holds unescaped `=`), and the
/// embedded JSON cut from the raw text (VRL's CEF parser unescapes `\\`, which breaks the
/// Windows paths inside it). VRL has no repair for Symantec's broken JSON: those events keep
/// their CEF fields and a null `json`.
const PROGRAM: &str = r#"
header = parse_syslog!(.message)
text = string!(header.message)
cef_at = split(text, "CEF:", limit: 2)
cef = parse_cef!("CEF:" + string!(cef_at[1]), strict: false)
. = merge(header, cef)
json_at = split(text, " json=", limit: 2)
if length(json_at) > 1 {
  .json = parse_json(string!(json_at[1])) ?? null
}
"#;

fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap();
    let fields: Vec<&str> = stat[stat.rfind(')').unwrap() + 2..].split(' ').collect();
    let ticks: f64 = 100.0;
    (fields[11].parse::<f64>().unwrap() + fields[12].parse::<f64>().unwrap()) / ticks
}

struct Outcome {
    seconds: f64,
    cpu: f64,
    failed: usize,
    out_bytes: usize,
}

/// Times `parse` over every line: it returns whether the line failed and the JSON size out.
fn measure(lines: &[&str], mut parse: impl FnMut(&str) -> (bool, usize)) -> Outcome {
    let (mut failed, mut out_bytes) = (0, 0);
    let cpu0 = cpu_seconds();
    let started = Instant::now();
    for line in lines {
        let (line_failed, size) = parse(line);
        failed += usize::from(line_failed);
        out_bytes += size;
    }
    Outcome {
        seconds: started.elapsed().as_secs_f64(),
        cpu: cpu_seconds() - cpu0,
        failed,
        out_bytes,
    }
}

fn run_vrl(program: &Program, lines: &[&str]) -> Outcome {
    let zone = TimeZone::default();
    let mut runtime = Runtime::new(RuntimeState::default());
    let mut out = Vec::with_capacity(8192);
    measure(lines, |line| {
        let mut event = BTreeMap::new();
        event.insert(
            "message".into(),
            Value::Bytes(bytes::Bytes::copy_from_slice(line.as_bytes())),
        );
        let mut target = TargetValue {
            value: Value::Object(event.into()),
            metadata: Value::Object(BTreeMap::new().into()),
            secrets: Secrets::default(),
        };
        let size = runtime.resolve(&mut target, program, &zone).ok().map(|_| {
            out.clear();
            serde_json::to_writer(&mut out, &target.value).unwrap();
            out.len()
        });
        runtime.clear();
        black_box(&target);
        (size.is_none(), size.unwrap_or(0))
    })
}

fn run_sluice(pipeline: &Pipeline, lines: &[&str]) -> Outcome {
    let received = std::sync::Arc::new(ReceiveInfo::new("bench", Transport::Tcp));
    measure(lines, |line| {
        let message = Message::new(
            line.as_bytes().to_vec(),
            received.clone(),
            1_700_000_000_000,
        );
        // As the parse workers do: the event tree written straight to bytes.
        pipeline.parse_with(&message, |event| {
            let mut out = Vec::with_capacity(2 * line.len() + 1024);
            event.write_json(&mut out);
            black_box(&out);
            (event.status == Status::Failed, out.len())
        })
    })
}

fn median(mut values: Vec<f64>) -> (f64, f64, f64) {
    values.sort_by(|a, b| a.partial_cmp(b).unwrap());
    (
        values[0],
        values[values.len() / 2],
        values[values.len() - 1],
    )
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let corpus =
        std::fs::read_to_string(args.get(1).expect("usage: vrl-compare CORPUS [RUNS]")).unwrap();
    let runs: usize = args.get(2).and_then(|r| r.parse().ok()).unwrap_or(3);
    let lines: Vec<&str> = corpus.lines().filter(|l| l.contains("CEF:")).collect();
    let bytes: usize = lines.iter().map(|l| l.len()).sum();
    let program = match vrl::compiler::compile(PROGRAM, &vrl::stdlib::all()) {
        Ok(compiled) => compiled.program,
        Err(diagnostics) => panic!("the VRL program does not compile: {diagnostics:?}"),
    };
    let pipeline = Pipeline::new(GrammarSet::embedded().unwrap(), ParseOptions::default()).unwrap();
    println!(
        "CEF lines: {} ({:.1} MB, {:.0} B/line), {runs} runs each, one thread (min / median / max)",
        lines.len(),
        bytes as f64 / 1e6,
        bytes as f64 / lines.len() as f64
    );
    println!("| parser | events/s | MB/s in | CPU µs/event | failed | JSON out MB |");
    println!("|---|---|---|---|---|---|");
    let mut medians = Vec::new();
    for name in ["sluice", "vrl"] {
        let outcomes: Vec<Outcome> = (0..runs)
            .map(|_| match name {
                "sluice" => run_sluice(&pipeline, &lines),
                _ => run_vrl(&program, &lines),
            })
            .collect();
        let rate = median(
            outcomes
                .iter()
                .map(|o| lines.len() as f64 / o.seconds)
                .collect(),
        );
        let mb = median(
            outcomes
                .iter()
                .map(|o| bytes as f64 / 1e6 / o.seconds)
                .collect(),
        );
        let cpu = median(
            outcomes
                .iter()
                .map(|o| o.cpu / lines.len() as f64 * 1e6)
                .collect(),
        );
        let last = outcomes.last().unwrap();
        println!(
            "| {name} | {:.0} / {:.0} / {:.0} | {:.1} | {:.1} / {:.1} / {:.1} | {} | {:.1} |",
            rate.0,
            rate.1,
            rate.2,
            mb.1,
            cpu.0,
            cpu.1,
            cpu.2,
            last.failed,
            last.out_bytes as f64 / 1e6
        );
        medians.push(rate.1);
    }
    println!(
        "sluice vs VRL on the same CEF lines: {:.1}× the events/s",
        medians[0] / medians[1]
    );
}
