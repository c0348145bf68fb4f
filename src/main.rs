//! The `sluice` command: wires configuration to the library; no behaviour lives here.

use std::io::{self, Read, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use std::net::SocketAddr;

use clap::{Parser, Subcommand};

use sluice::config::{Config, Listener, Seconds, Tls as TlsSettings, TransportKind};

use sluice::grammar::{self, GrammarSet};
use sluice::sink::NdjsonWriter;
use sluice::source::{self, records, Message, ReceiveInfo, Transport};
use sluice::time::DefaultZone;
use sluice::{ParseOptions, Pipeline};

// mimalloc instead of glibc's malloc: building each event allocates many small strings and
// vectors, and callgrind counts 20 % fewer instructions per event with it (docs/performance.md).
#[global_allocator]
static GLOBAL: sluice::allocator::Mimalloc = sluice::allocator::Mimalloc;

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
    /// Receive syslog over TCP, UDP and TLS and write normalised events. With no listener
    /// given, listens on TCP and UDP 127.0.0.1:5514 and writes NDJSON to stdout.
    Run(Box<RunArgs>),
    /// Ask a running sluice for its health over HTTP (a container health check without
    /// curl); exit 0 on 200, 1 otherwise.
    Healthcheck {
        /// The metrics address of the sluice to ask.
        #[arg(long, default_value = sluice::config::DEFAULT_METRICS_ADDRESS)]
        address: SocketAddr,
        /// /healthz (alive) or /readyz (ready to take traffic).
        #[arg(long, default_value = "/healthz")]
        path: String,
    },
    /// Check a configuration file, the grammars it names, its certificates and its Kafka
    /// settings, without binding or connecting; exit 0 when it would start.
    CheckConfig {
        #[arg(long, short)]
        config: PathBuf,
    },
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
        /// Leave out raw_data (the message as received) from events parsed ok.
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

#[derive(clap::Args)]
struct RunArgs {
    /// TOML configuration file (see docs/configuration.md).
    #[arg(long, short)]
    config: Option<PathBuf>,
    /// Add a TCP listener (repeatable), e.g. 0.0.0.0:514 or [::]:514.
    #[arg(long = "tcp", value_name = "ADDR")]
    tcp: Vec<SocketAddr>,
    /// Add a UDP listener (repeatable).
    #[arg(long = "udp", value_name = "ADDR")]
    udp: Vec<SocketAddr>,
    /// Add a TLS listener (repeatable); needs --tls-cert and --tls-key.
    #[arg(long = "tls", value_name = "ADDR", requires_all = ["tls_cert", "tls_key"])]
    tls: Vec<SocketAddr>,
    /// PEM certificate chain for --tls listeners.
    #[arg(long, value_name = "PEM")]
    tls_cert: Option<PathBuf>,
    /// PEM private key for --tls listeners.
    #[arg(long, value_name = "PEM")]
    tls_key: Option<PathBuf>,
    /// PEM CA bundle: --tls listeners require client certificates it signed.
    #[arg(long, value_name = "PEM")]
    tls_client_ca: Option<PathBuf>,
    /// Pin this grammar on the listeners given by flags.
    #[arg(long)]
    grammar: Option<String>,
    /// Add or override grammars from this directory.
    #[arg(long)]
    grammar_dir: Option<PathBuf>,
    /// Write NDJSON to this file instead of stdout.
    #[arg(long, value_name = "FILE", conflicts_with = "kafka_brokers")]
    output: Option<PathBuf>,
    /// Publish to Kafka (`host:port[,…]`) instead of stdout: topic `sluice.events`,
    /// dead letters to `sluice.deadletter` (the [sink] table sets the rest).
    #[arg(long, value_name = "BROKERS")]
    kafka_brokers: Option<String>,
    /// Address for /metrics, /healthz, /readyz ("" disables).
    #[arg(long, value_name = "ADDR")]
    metrics: Option<String>,
    /// Parse worker threads (0: one per core).
    #[arg(long)]
    workers: Option<usize>,
    /// Log format on stderr.
    #[arg(long, value_enum, default_value = "text")]
    log_format: LogFormat,
    /// Log level (RUST_LOG overrides).
    #[arg(long, default_value = "info")]
    log_level: String,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

/// One error that lists several problems, one per indented line.
fn error_list<E: std::fmt::Display>(title: &str, errors: &[E]) -> anyhow::Error {
    let lines: Vec<String> = errors.iter().map(|e| format!("  {e}")).collect();
    anyhow::anyhow!("{title}:\n{}", lines.join("\n"))
}

fn config_errors(errors: Vec<sluice::config::ConfigError>) -> anyhow::Error {
    error_list("invalid configuration", &errors)
}

/// The configuration of `sluice run`: the file (or the embedded default) with the flags
/// applied, checked against the grammars.
fn run_config(args: &RunArgs) -> anyhow::Result<(Config, GrammarSet)> {
    let mut config = match &args.config {
        Some(path) => Config::from_file(path).map_err(config_errors)?,
        None => Config::from_toml("(flags)", "").map_err(config_errors)?,
    };
    let flagged: Vec<(TransportKind, SocketAddr)> = args
        .tcp
        .iter()
        .map(|a| (TransportKind::Tcp, *a))
        .chain(args.udp.iter().map(|a| (TransportKind::Udp, *a)))
        .chain(args.tls.iter().map(|a| (TransportKind::Tls, *a)))
        .collect();
    for (transport, address) in flagged {
        let n = config
            .listeners
            .iter()
            .filter(|l| l.transport == transport)
            .count();
        let name = match n {
            0 => transport.as_str().to_string(),
            n => format!("{}-{}", transport.as_str(), n + 1),
        };
        let mut listener = Listener::new(&name, transport, address);
        listener.grammar = args.grammar.clone();
        if transport == TransportKind::Tls {
            listener.tls = Some(TlsSettings {
                cert: args.tls_cert.clone().expect("clap requires it"),
                key: args.tls_key.clone().expect("clap requires it"),
                client_ca: args.tls_client_ca.clone(),
                handshake_timeout: Seconds(std::time::Duration::from_secs(10)),
                reload_interval: Seconds(std::time::Duration::from_secs(30)),
            });
        }
        config.listeners.push(listener);
    }
    // A configuration that only pulls from S3 needs no listener.
    if config.listeners.is_empty() && config.s3_sources.is_empty() {
        config.listeners = Config::embedded_default().listeners;
    }
    if let Some(dir) = &args.grammar_dir {
        config.general.grammar_dir = Some(dir.clone());
    }
    if let Some(path) = &args.output {
        config.sink = sluice::config::Sink::file(path.clone());
    }
    if let Some(brokers) = &args.kafka_brokers {
        match &mut config.sink {
            sluice::config::Sink::Kafka(k) => k.brokers = brokers.clone(),
            other => *other = sluice::config::Sink::Kafka(sluice::config::Kafka::new(brokers)),
        }
    }
    if let Some(address) = &args.metrics {
        config.metrics.address = address.clone();
    }
    if let Some(workers) = args.workers {
        config.general.workers = workers;
    }
    // Flags may have added listeners (a second one on the same port, say): check again.
    config.recheck().map_err(config_errors)?;
    let grammars = load_grammars(config.general.grammar_dir.as_ref())?;
    config.validate_grammars(&grammars).map_err(config_errors)?;
    Ok((config, grammars))
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
        Some(dir) => {
            GrammarSet::with_dir(dir).map_err(|errors| error_list("invalid grammars", &errors))
        }
        None => Ok(GrammarSet::embedded()?),
    }
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Run(args) => {
            sluice::telemetry::init_logging(
                matches!(args.log_format, LogFormat::Json),
                &args.log_level,
            );
            let (config, grammars) = run_config(&args)?;
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .thread_name("sluice-io")
                .build()?;
            let report = runtime.block_on(sluice::run::run(
                config,
                grammars,
                sluice::run::termination_signal(),
            ))?;
            // Connections still open past the deadline are dropped with the runtime.
            runtime.shutdown_timeout(std::time::Duration::from_secs(1));
            Ok(if report.drained {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(3)
            })
        }
        Command::Healthcheck { address, path } => {
            match sluice::telemetry::http::probe(address, &path, std::time::Duration::from_secs(3))
            {
                Ok((200, body)) => {
                    println!("{}", body.trim());
                    Ok(ExitCode::SUCCESS)
                }
                Ok((status, body)) => {
                    eprintln!("sluice: {path} answered {status}: {}", body.trim());
                    Ok(ExitCode::from(1))
                }
                Err(e) => {
                    eprintln!("sluice: cannot ask {address}{path}: {e}");
                    Ok(ExitCode::from(1))
                }
            }
        }
        Command::CheckConfig { config } => {
            let config = Config::from_file(&config).map_err(config_errors)?;
            let grammars = load_grammars(config.general.grammar_dir.as_ref())?;
            config.validate_grammars(&grammars).map_err(config_errors)?;
            sluice::run::preflight(&config)
                .map_err(|problems| error_list("invalid configuration", &problems))?;
            for l in &config.listeners {
                println!(
                    "ok  listener {:?}: {} {}{}",
                    l.name,
                    l.transport.as_str(),
                    l.address.0,
                    l.grammar
                        .as_ref()
                        .map(|g| format!(" (grammar {g})"))
                        .unwrap_or_default()
                );
            }
            for s in &config.s3_sources {
                println!(
                    "ok  s3 {:?}: s3://{}/{}{}, checkpoint {}",
                    s.name,
                    s.bucket,
                    s.prefix,
                    s.grammar
                        .as_ref()
                        .map(|g| format!(" (grammar {g})"))
                        .unwrap_or_default(),
                    s.checkpoint_path(&config.general).display()
                );
            }
            println!("ok  {} grammars loaded", grammars.iter().count());
            Ok(ExitCode::SUCCESS)
        }
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
                if path.as_os_str() == "-" {
                    parse_file(&pipeline, "-", io::stdin().lock(), &mut writer)?;
                } else {
                    let file = std::fs::File::open(&path)
                        .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", path.display()))?;
                    parse_file(&pipeline, &path.display().to_string(), file, &mut writer)?;
                }
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

/// Longest record `sluice parse` takes from a file; longer ones are cut and flagged.
const PARSE_MAX_RECORD_BYTES: usize = 16 * 1024 * 1024;

/// Parses a file (or stdin) the way the S3 source reads an object: gzip or not, JSON array,
/// NDJSON, concatenated objects, or lines, streamed.
fn parse_file<W: Write>(
    pipeline: &Pipeline,
    name: &str,
    input: impl Read,
    writer: &mut NdjsonWriter<W>,
) -> anyhow::Result<()> {
    let mut received = ReceiveInfo::new("parse", Transport::File);
    received.object_key = Some(Arc::from(name));
    let received = Arc::new(received);
    let received_ms = source::now_ms();
    records::read_all(name, input, PARSE_MAX_RECORD_BYTES, |batch| {
        for record in batch {
            let mut message = Message::new(record.bytes, received.clone(), received_ms);
            message.offset = Some(record.offset);
            message.json_record = record.json;
            message.truncated = record.truncated;
            pipeline.parse_with(&message, |event| writer.write_event(event))?;
        }
        Ok(())
    })?;
    Ok(())
}
