//! The `sluice` command: wires configuration to the library; no behaviour lives here.

use std::collections::BTreeMap;
use std::io::{self, Read, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Parser, Subcommand};

use sluice::grammar::{self, GrammarSet};
use sluice::sink::NdjsonWriter;
use sluice::source::{self, file, Message, ReceiveInfo, Transport};
use sluice::time::DefaultZone;
use sluice::{ParseOptions, Pipeline};

#[derive(Parser)]
#[command(
    name = "sluice",
    version,
    about = "Syslog receiver and normaliser: vendor events in, OCSF JSON out"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Parse files (or standard input) and write one NDJSON event per input event.
    Parse {
        /// Files to read; none or `-` reads standard input.
        files: Vec<PathBuf>,
        /// Use this grammar for every message instead of detecting one.
        #[arg(long)]
        grammar: Option<String>,
        /// Add or override grammars from this directory (*.toml).
        #[arg(long)]
        grammar_dir: Option<PathBuf>,
        /// Zone for timestamps without one: UTC, +02:00, or an IANA name.
        #[arg(long, default_value = "UTC")]
        timezone: String,
        /// Leave out raw_data (the message as received).
        #[arg(long)]
        no_raw_data: bool,
        /// Indent the JSON (one event spans several lines).
        #[arg(long)]
        pretty: bool,
    },
    /// Work with grammar files.
    Grammars {
        #[command(subcommand)]
        command: GrammarsCommand,
    },
}

#[derive(Subcommand)]
enum GrammarsCommand {
    /// Validate every *.toml in DIR; report each error with file and line.
    Check { dir: PathBuf },
    /// List the loaded grammars (embedded, plus --grammar-dir).
    List {
        #[arg(long)]
        grammar_dir: Option<PathBuf>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("sluice: {e:#}");
            ExitCode::from(1)
        }
    }
}

fn load_grammars(dir: Option<&PathBuf>) -> anyhow::Result<GrammarSet> {
    match dir {
        Some(dir) => GrammarSet::with_dir(dir).map_err(|errors| {
            anyhow::anyhow!(
                "invalid grammars:\n{}",
                errors
                    .iter()
                    .map(|e| format!("  {e}"))
                    .collect::<Vec<_>>()
                    .join("\n")
            )
        }),
        None => Ok(GrammarSet::embedded()?),
    }
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Parse {
            files,
            grammar,
            grammar_dir,
            timezone,
            no_raw_data,
            pretty,
        } => {
            let zone = DefaultZone::parse(&timezone).map_err(anyhow::Error::msg)?;
            let grammars = load_grammars(grammar_dir.as_ref())?;
            let options = ParseOptions {
                zone,
                raw_data: !no_raw_data,
                grammar,
            };
            let pipeline = Pipeline::new(grammars, options).map_err(anyhow::Error::msg)?;
            let stdout = io::stdout();
            let mut writer = NdjsonWriter::new(io::BufWriter::new(stdout.lock()), pretty);
            let inputs = if files.is_empty() {
                vec![PathBuf::from("-")]
            } else {
                files
            };
            for path in inputs {
                let (name, data) = if path.as_os_str() == "-" {
                    let mut data = Vec::new();
                    io::stdin().read_to_end(&mut data)?;
                    ("-".to_string(), data)
                } else {
                    let data = std::fs::read(&path)
                        .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", path.display()))?;
                    (path.display().to_string(), data)
                };
                parse_file(&pipeline, &name, &data, &mut writer)?;
            }
            writer.flush()?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Grammars { command } => match command {
            GrammarsCommand::Check { dir } => match grammar::load_dir(&dir) {
                Ok(grammars) => {
                    for g in &grammars {
                        println!("ok  {}  {} ({} event kinds)", g.file, g.name, g.kinds.len());
                    }
                    if grammars.is_empty() {
                        println!("no *.toml grammar files in {}", dir.display());
                    }
                    Ok(ExitCode::SUCCESS)
                }
                Err(errors) => {
                    for e in &errors {
                        eprintln!("{e}");
                    }
                    Ok(ExitCode::from(1))
                }
            },
            GrammarsCommand::List { grammar_dir } => {
                let set = load_grammars(grammar_dir.as_ref())?;
                let mut out = io::stdout().lock();
                for g in set.iter() {
                    let formats: Vec<_> = g.formats.iter().map(|f| f.as_str()).collect();
                    writeln!(
                        out,
                        "{:<22} {:<18} priority {:>4}  {}",
                        g.name,
                        formats.join(","),
                        g.priority,
                        g.file
                    )?;
                }
                Ok(ExitCode::SUCCESS)
            }
        },
    }
}

fn parse_file<W: Write>(
    pipeline: &Pipeline,
    name: &str,
    data: &[u8],
    writer: &mut NdjsonWriter<W>,
) -> anyhow::Result<()> {
    let received = ReceiveInfo {
        listener: Arc::from("parse"),
        transport: Transport::File,
        peer: None,
        tls_client_subject: None,
        object_key: Some(Arc::from(name)),
        tags: Arc::new(BTreeMap::new()),
    };
    let received_ms = source::now_ms();
    for record in file::records(data) {
        let message = Message {
            bytes: record.bytes.to_vec(),
            received: received.clone(),
            received_ms,
            truncated: false,
            offset: Some(record.offset),
            json_record: record.json,
        };
        writer.write(&pipeline.parse(&message))?;
    }
    Ok(())
}
