//! The configuration of `sluice run`: one typed tree read from TOML, validated in one place.
//! Every key is documented in docs/configuration.md; `deploy/sluice.toml` is an example.
//!
//! Errors name the file, the line and the key: `sluice.toml:12: listener[1].allow[0]:
//! invalid CIDR "10.0.0.0/33"`. Unknown keys are errors too, so a typo never silently
//! falls back to a default.

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use ipnet::IpNet;
use serde::{Deserialize, Deserializer};

use crate::grammar::GrammarSet;
use crate::time::DefaultZone;

/// Default bind address of the embedded default listeners (loopback: safe on any machine).
pub const DEFAULT_ADDRESS: &str = "127.0.0.1:5514";
pub const DEFAULT_METRICS_ADDRESS: &str = "127.0.0.1:9514";
pub const DEFAULT_MAX_MESSAGE_BYTES: usize = 64 * 1024;

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default)]
    pub general: General,
    #[serde(default)]
    pub limits: Limits,
    #[serde(default, rename = "listener")]
    pub listeners: Vec<Listener>,
    /// Buckets to pull vendor exports from (MetaDefender IT Access, Panoptica).
    #[serde(default, rename = "s3")]
    pub s3_sources: Vec<S3Source>,
    #[serde(default)]
    pub sink: Sink,
    #[serde(default)]
    pub metrics: Metrics,
    /// Heartbeat interval per grammar, as set on the vendor's side (KATA's SIEM settings):
    /// exported so an alert can fire after three missed heartbeats.
    #[serde(default)]
    pub heartbeats: BTreeMap<String, Seconds>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct General {
    /// Zone for timestamps that carry none.
    pub timezone: Zone,
    /// Directory of grammar files that add to or override the embedded ones.
    pub grammar_dir: Option<PathBuf>,
    /// Keep `raw_data` in events parsed `ok` (other events always keep it).
    pub raw_data: bool,
    /// Parse worker threads; 0 means one per core.
    pub workers: usize,
    /// Messages waiting between the listeners and the parse workers, in all.
    pub queue_capacity: usize,
    /// Bytes of messages waiting between the listeners and the parse workers, in all.
    pub queue_max_bytes: usize,
    /// Time allowed after SIGTERM/SIGINT to finish frames already read and flush the sink.
    pub shutdown_timeout: Seconds,
    /// Sources (grammar + reporting host) tracked one by one in the per-source metrics;
    /// more are counted together as `other`.
    pub max_sources: usize,
    /// Where sluice keeps state between runs (the S3 checkpoints).
    pub state_dir: PathBuf,
}

impl Default for General {
    fn default() -> Self {
        General {
            timezone: Zone(DefaultZone::Utc),
            grammar_dir: None,
            raw_data: true,
            workers: 0,
            queue_capacity: 65_536,
            queue_max_bytes: 64 * 1024 * 1024,
            shutdown_timeout: Seconds(Duration::from_secs(30)),
            max_sources: 1000,
            state_dir: PathBuf::from("/var/lib/sluice"),
        }
    }
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// Open TCP/TLS connections across all listeners.
    pub max_connections: usize,
    /// Open TCP/TLS connections from one source address, across all listeners.
    pub max_connections_per_ip: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_connections: 10_000,
            max_connections_per_ip: 1_000,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TransportKind {
    Tcp,
    Udp,
    Tls,
}

impl TransportKind {
    pub fn as_str(self) -> &'static str {
        match self {
            TransportKind::Tcp => "tcp",
            TransportKind::Udp => "udp",
            TransportKind::Tls => "tls",
        }
    }
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Listener {
    pub name: String,
    pub transport: TransportKind,
    pub address: Address,
    /// Parse every message of this listener with this grammar instead of detecting one.
    pub grammar: Option<String>,
    /// Copied into `sluice.received.tags` of every event.
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
    /// Source networks allowed to send; empty allows any.
    #[serde(default)]
    pub allow: Vec<Cidr>,
    #[serde(default = "default_max_message_bytes")]
    pub max_message_bytes: usize,
    /// TCP/TLS: close a connection that sent nothing for this long.
    #[serde(default = "default_idle_timeout")]
    pub idle_timeout: Seconds,
    /// TCP/TLS: a frame must be complete this long after its first byte arrived; a slower
    /// sender's partial frame is emitted as truncated and the connection closed.
    #[serde(default = "default_frame_timeout")]
    pub frame_timeout: Seconds,
    /// UDP: SO_RCVBUF in bytes (the kernel may cap it at net.core.rmem_max).
    pub receive_buffer_bytes: Option<usize>,
    /// UDP: sockets bound with SO_REUSEPORT, each with its own receiving task; 0 means one
    /// per parse worker.
    pub sockets: Option<usize>,
    /// UDP: keep each sender's datagrams in order by parsing them all on one worker (the
    /// default). `false` spreads a fast sender's datagrams over every worker, in batches of
    /// up to 64 that may then reach the sink out of order: for one relay sending more than
    /// one core parses.
    pub sender_order: Option<bool>,
    pub tls: Option<Tls>,
}

fn default_max_message_bytes() -> usize {
    DEFAULT_MAX_MESSAGE_BYTES
}

fn default_idle_timeout() -> Seconds {
    Seconds(Duration::from_secs(600))
}

fn default_frame_timeout() -> Seconds {
    Seconds(Duration::from_secs(60))
}

/// One S3 (or S3-compatible) bucket prefix polled for exported files.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct S3Source {
    /// Names the source in metrics and in `sluice.received.listener`.
    pub name: String,
    pub bucket: String,
    /// Only keys that start with this are read.
    #[serde(default)]
    pub prefix: String,
    /// AWS region; else AWS_REGION / AWS_DEFAULT_REGION, else us-east-1.
    pub region: Option<String>,
    /// An S3-compatible store (MinIO, Ceph, a test server): `http(s)://host:port`.
    pub endpoint: Option<String>,
    /// Path-style addressing (`endpoint/bucket/key`); the default is path style with an
    /// `endpoint` and virtual-hosted style on AWS.
    pub path_style: Option<bool>,
    /// Static credentials; without them the standard AWS chain applies (environment,
    /// `profile`, web identity / pod role, ECS task role, instance role).
    pub access_key_id: Option<String>,
    pub secret_access_key: Option<String>,
    pub session_token: Option<String>,
    /// A profile of static keys in the shared credentials file (AWS_SHARED_CREDENTIALS_FILE
    /// or ~/.aws/credentials); AWS_PROFILE sets it too.
    pub profile: Option<String>,
    #[serde(default = "default_poll_interval")]
    pub poll_interval: Seconds,
    /// Parse every record with this grammar instead of detecting one.
    pub grammar: Option<String>,
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
    /// The checkpoint file; default `<general.state_dir>/s3-<name>.json`.
    pub checkpoint: Option<PathBuf>,
    /// Records (one event each) longer than this are cut and flagged.
    #[serde(default = "default_max_record_bytes")]
    pub max_record_bytes: usize,
}

fn default_poll_interval() -> Seconds {
    Seconds(Duration::from_secs(60))
}

fn default_max_record_bytes() -> usize {
    1024 * 1024
}

impl S3Source {
    pub fn checkpoint_path(&self, general: &General) -> PathBuf {
        self.checkpoint
            .clone()
            .unwrap_or_else(|| general.state_dir.join(format!("s3-{}.json", self.name)))
    }
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Tls {
    /// PEM certificate chain, leaf first.
    pub cert: PathBuf,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
    /// PEM CA bundle: when set, clients must present a certificate it signed (mTLS).
    pub client_ca: Option<PathBuf>,
    #[serde(default = "default_handshake_timeout")]
    pub handshake_timeout: Seconds,
    /// How often the certificate files are checked for changes (SIGHUP reloads at once).
    #[serde(default = "default_reload_interval")]
    pub reload_interval: Seconds,
}

fn default_handshake_timeout() -> Seconds {
    Seconds(Duration::from_secs(10))
}

fn default_reload_interval() -> Seconds {
    Seconds(Duration::from_secs(30))
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, tag = "type", rename_all = "lowercase")]
pub enum Sink {
    /// NDJSON on standard output.
    #[default]
    Stdout,
    /// NDJSON appended to a file, rotated by size.
    File {
        path: PathBuf,
        /// Rotate when the file would grow past this many bytes; 0 never rotates.
        #[serde(default)]
        max_bytes: u64,
        /// Rotated files kept (`path.1` is the newest).
        #[serde(default = "default_keep")]
        keep: usize,
    },
    /// Discard events after parsing (benchmarks).
    Null,
    /// Kafka, with routing, a dead-letter topic and acknowledged delivery.
    Kafka(Kafka),
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Kafka {
    /// `host:port[,host:port…]`
    pub brokers: String,
    /// Topic template over event fields, e.g. `siem.{sluice.grammar}`.
    #[serde(default = "default_topic")]
    pub topic: String,
    /// Message key template; by default the reporting device, so one source stays in one
    /// partition, in order.
    #[serde(default = "default_key")]
    pub key: String,
    /// Events whose parse status is `unrecognised` or `failed` go here, as dead-letter
    /// records with their raw bytes.
    #[serde(default = "default_dead_letter_topic")]
    pub dead_letter_topic: String,
    /// Send `partial` events to the dead-letter topic too.
    #[serde(default)]
    pub dead_letter_partial: bool,
    /// none, gzip, snappy, lz4 or zstd.
    #[serde(default = "default_compression")]
    pub compression: String,
    /// Any librdkafka property, passed through (`security.protocol`, `sasl.*`, `ssl.*`,
    /// `linger.ms`, …); these override sluice's defaults.
    #[serde(default)]
    pub properties: BTreeMap<String, String>,
    /// Directory of the disk spool, where events wait while no broker is reachable or the
    /// producer queue is full, and across restarts. None: events wait in memory only.
    pub spool_dir: Option<PathBuf>,
    /// Size limit of the spool.
    #[serde(default = "default_spool_max_bytes")]
    pub spool_max_bytes: u64,
    /// `always`, `never`, or a duration (`1s`): how soon spooled events are forced to disk.
    #[serde(default = "default_spool_fsync")]
    pub spool_fsync: String,
    /// When the spool is full: `backpressure` (hold the listeners back) or `drop_oldest`.
    #[serde(default)]
    pub spool_full: SpoolFull,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SpoolFull {
    #[default]
    Backpressure,
    DropOldest,
}

fn default_spool_max_bytes() -> u64 {
    1 << 30
}

fn default_spool_fsync() -> String {
    "1s".into()
}

/// `always`, `never`, or a duration.
pub fn parse_fsync(text: &str) -> Result<crate::sink::spool::Fsync, String> {
    use crate::sink::spool::Fsync;
    match text {
        "always" => Ok(Fsync::Always),
        "never" => Ok(Fsync::Never),
        other => parse_duration(other)
            .map(Fsync::Every)
            .map_err(|e| format!("{e}; or use always / never")),
    }
}

fn default_keep() -> usize {
    5
}

impl Sink {
    /// NDJSON to `path`, never rotated.
    pub fn file(path: PathBuf) -> Sink {
        Sink::File {
            path,
            max_bytes: 0,
            keep: default_keep(),
        }
    }
}

pub const DEFAULT_TOPIC: &str = "sluice.events";
pub const DEFAULT_DEAD_LETTER_TOPIC: &str = "sluice.deadletter";
pub const DEFAULT_KEY: &str =
    "{device.hostname|device.ip|sluice.syslog.hostname|sluice.received.peer}";

fn default_topic() -> String {
    DEFAULT_TOPIC.into()
}
fn default_key() -> String {
    DEFAULT_KEY.into()
}
fn default_dead_letter_topic() -> String {
    DEFAULT_DEAD_LETTER_TOPIC.into()
}
fn default_compression() -> String {
    "zstd".into()
}

impl Kafka {
    pub fn new(brokers: &str) -> Kafka {
        Kafka {
            brokers: brokers.to_string(),
            topic: default_topic(),
            key: default_key(),
            dead_letter_topic: default_dead_letter_topic(),
            dead_letter_partial: false,
            compression: default_compression(),
            properties: BTreeMap::new(),
            spool_dir: None,
            spool_max_bytes: default_spool_max_bytes(),
            spool_fsync: default_spool_fsync(),
            spool_full: SpoolFull::Backpressure,
        }
    }

    #[cfg(feature = "kafka")]
    pub fn spool_settings(&self) -> Option<crate::sink::kafka::SpoolSettings> {
        Some(crate::sink::kafka::SpoolSettings {
            dir: self.spool_dir.clone()?,
            max_bytes: self.spool_max_bytes,
            fsync: parse_fsync(&self.spool_fsync).unwrap_or(crate::sink::spool::Fsync::Always),
            drop_oldest: self.spool_full == SpoolFull::DropOldest,
        })
    }

    #[cfg(feature = "kafka")]
    pub fn client_config(&self) -> rdkafka::ClientConfig {
        crate::sink::kafka::client_config(&self.brokers, &self.compression, &self.properties)
    }

    pub fn router(&self) -> Result<crate::sink::route::Router, String> {
        crate::sink::route::Router::new(
            &self.topic,
            &self.key,
            &self.dead_letter_topic,
            self.dead_letter_partial,
        )
    }
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Metrics {
    /// Address of `/metrics`, `/healthz` and `/readyz`; empty disables them.
    pub address: String,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics {
            address: DEFAULT_METRICS_ADDRESS.to_string(),
        }
    }
}

/// `host:port`, IPv4 or IPv6 (`[::1]:5514`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Address(pub SocketAddr);

impl<'de> Deserialize<'de> for Address {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map(Address).map_err(|_| {
            serde::de::Error::custom(format!(
                "invalid address {text:?}: expected IP:PORT such as 0.0.0.0:514 or [::]:514"
            ))
        })
    }
}

/// A network in CIDR notation; a bare address means that one host.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cidr(pub IpNet);

impl FromStr for Cidr {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, String> {
        if let Ok(net) = text.parse::<IpNet>() {
            return Ok(Cidr(net.trunc()));
        }
        if let Ok(ip) = text.parse::<std::net::IpAddr>() {
            return Ok(Cidr(IpNet::from(ip)));
        }
        Err(format!(
            "invalid CIDR {text:?}: expected a network such as 10.0.0.0/8 or 2001:db8::/32"
        ))
    }
}

impl<'de> Deserialize<'de> for Cidr {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

#[derive(Clone, Copy, Debug)]
pub struct Zone(pub DefaultZone);

impl<'de> Deserialize<'de> for Zone {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        DefaultZone::parse(&text)
            .map(Zone)
            .map_err(serde::de::Error::custom)
    }
}

/// A duration: `30s`, `500ms`, `10m`, `1h`, or a number of seconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Seconds(pub Duration);

pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: f64 = number
        .parse()
        .map_err(|_| format!("invalid duration {text:?}: expected e.g. 30s, 500ms, 10m"))?;
    let scale = match unit.trim() {
        "" | "s" => 1.0,
        "ms" => 0.001,
        "m" => 60.0,
        "h" => 3600.0,
        other => {
            return Err(format!(
                "invalid duration unit {other:?} in {text:?}: use ms, s, m or h"
            ))
        }
    };
    Ok(Duration::from_secs_f64(number * scale))
}

impl<'de> Deserialize<'de> for Seconds {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Number(u64),
            Text(String),
        }
        match Raw::deserialize(d)? {
            Raw::Number(n) => Ok(Seconds(Duration::from_secs(n))),
            Raw::Text(t) => parse_duration(&t)
                .map(Seconds)
                .map_err(serde::de::Error::custom),
        }
    }
}

/// A configuration error: where and what.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError {
    pub file: String,
    pub line: Option<usize>,
    pub key: String,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file)?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
        }
        if !self.key.is_empty() {
            write!(f, ": {}", self.key)?;
        }
        write!(f, ": {}", self.message)
    }
}

impl std::error::Error for ConfigError {}

impl Config {
    /// The embedded default: TCP and UDP on 127.0.0.1:5514, NDJSON to stdout.
    pub fn embedded_default() -> Config {
        let mut config: Config = toml::from_str("").expect("empty config is valid");
        config.listeners = vec![
            Listener::new("tcp", TransportKind::Tcp, DEFAULT_ADDRESS.parse().unwrap()),
            Listener::new("udp", TransportKind::Udp, DEFAULT_ADDRESS.parse().unwrap()),
        ];
        config
    }

    pub fn from_file(path: &Path) -> Result<Config, Vec<ConfigError>> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            vec![ConfigError {
                file: path.display().to_string(),
                line: None,
                key: String::new(),
                message: format!("cannot read: {e}"),
            }]
        })?;
        Config::from_toml(&path.display().to_string(), &text)
    }

    /// Parses and checks the keys, types and values; cross-checks that need the grammars
    /// are in [`Config::validate`].
    pub fn from_toml(file: &str, text: &str) -> Result<Config, Vec<ConfigError>> {
        let deserializer = toml::Deserializer::new(text);
        let config: Config = serde_path_to_error::deserialize(deserializer).map_err(|e| {
            let key = e.path().to_string();
            let inner = e.into_inner();
            vec![ConfigError {
                file: file.to_string(),
                line: inner.span().map(|s| line_of(text, s.start)),
                key: if key == "." { String::new() } else { key },
                message: inner.message().to_string(),
            }]
        })?;
        let mut errors = Vec::new();
        config.check(&mut |key, message| {
            errors.push(ConfigError {
                file: file.to_string(),
                line: find_line(text, &key),
                key,
                message,
            })
        });
        if errors.is_empty() {
            Ok(config)
        } else {
            Err(errors)
        }
    }

    /// The cross-checks again, after flags changed the configuration.
    pub fn recheck(&self) -> Result<(), Vec<ConfigError>> {
        let mut errors = Vec::new();
        self.check(&mut |key, message| {
            errors.push(ConfigError {
                file: "(configuration and flags)".into(),
                line: None,
                key,
                message,
            })
        });
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors)
        }
    }

    /// Checks that need more than one key.
    fn check(&self, report: &mut dyn FnMut(String, String)) {
        let mut names = BTreeMap::new();
        let mut binds: BTreeMap<(SocketAddr, bool), &str> = BTreeMap::new();
        for (i, l) in self.listeners.iter().enumerate() {
            let key = |k: &str| format!("listener[{i}].{k}");
            if l.name.trim().is_empty() {
                report(key("name"), "must not be empty".into());
            }
            if let Some(first) = names.insert(l.name.as_str(), format!("listener[{i}]")) {
                report(
                    key("name"),
                    format!("{:?} is also the name of {first}", l.name),
                );
            }
            let udp = l.transport == TransportKind::Udp;
            // Port 0 asks the kernel for a free port: never a clash.
            let fixed_port = l.address.0.port() != 0;
            if let Some(other) = binds
                .insert((l.address.0, udp), &l.name)
                .filter(|_| fixed_port)
            {
                report(
                    key("address"),
                    format!("{} is also bound by listener {other:?}", l.address.0),
                );
            }
            if l.max_message_bytes < 480 || l.max_message_bytes > 16 * 1024 * 1024 {
                report(
                    key("max_message_bytes"),
                    format!(
                        "{} is out of range: RFC 5426 requires at least 480, and sluice takes at most 16 MiB",
                        l.max_message_bytes
                    ),
                );
            }
            match (l.transport, &l.tls) {
                (TransportKind::Tls, None) => report(
                    key("tls"),
                    "a tls listener needs [listener.tls] with cert and key".into(),
                ),
                (TransportKind::Tcp | TransportKind::Udp, Some(_)) => report(
                    key("tls"),
                    format!(
                        "only a tls listener takes [listener.tls]; this one is {}",
                        l.transport.as_str()
                    ),
                ),
                _ => {}
            }
            if !udp {
                for (k, set) in [
                    ("receive_buffer_bytes", l.receive_buffer_bytes.is_some()),
                    ("sockets", l.sockets.is_some()),
                    ("sender_order", l.sender_order.is_some()),
                ] {
                    if set {
                        report(
                            key(k),
                            format!(
                                "only a udp listener takes {k}; this one is {}",
                                l.transport.as_str()
                            ),
                        );
                    }
                }
            }
            for (k, d) in [
                ("idle_timeout", l.idle_timeout),
                ("frame_timeout", l.frame_timeout),
            ] {
                if d.0.is_zero() {
                    report(key(k), "must be longer than zero".into());
                }
            }
        }
        for (i, source) in self.s3_sources.iter().enumerate() {
            let key = |k: &str| format!("s3[{i}].{k}");
            let valid_name = !source.name.is_empty()
                && source
                    .name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
            if !valid_name {
                report(
                    key("name"),
                    format!(
                        "{:?}: use letters, digits, '-', '_' and '.' (it names the checkpoint file)",
                        source.name
                    ),
                );
            }
            // Listeners and S3 sources share the `listener` label of the ingest metrics.
            if let Some(first) = names.insert(source.name.as_str(), format!("s3[{i}]")) {
                report(
                    key("name"),
                    format!("{:?} is also the name of {first}", source.name),
                );
            }
            if source.bucket.trim().is_empty() {
                report(key("bucket"), "must not be empty".into());
            }
            if source.access_key_id.is_some() != source.secret_access_key.is_some() {
                report(
                    key("access_key_id"),
                    "access_key_id and secret_access_key go together".into(),
                );
            }
            if source.profile.is_some() && source.access_key_id.is_some() {
                report(
                    key("profile"),
                    "give either a profile or access_key_id/secret_access_key, not both".into(),
                );
            }
            if let Some(endpoint) = &source.endpoint {
                if !(endpoint.starts_with("http://") || endpoint.starts_with("https://")) {
                    report(
                        key("endpoint"),
                        format!("{endpoint:?}: expected http://host:port or https://host:port"),
                    );
                }
            }
            if source.poll_interval.0 < Duration::from_secs(1) {
                report(key("poll_interval"), "must be at least 1s".into());
            }
            if source.max_record_bytes < 1024 || source.max_record_bytes > 64 * 1024 * 1024 {
                report(
                    key("max_record_bytes"),
                    format!(
                        "{} is out of range: 1 KiB to 64 MiB",
                        source.max_record_bytes
                    ),
                );
            }
        }
        if let Sink::Kafka(k) = &self.sink {
            if let Err(e) = k.router() {
                report("sink".into(), e);
            }
            if !["none", "gzip", "snappy", "lz4", "zstd"].contains(&k.compression.as_str()) {
                report(
                    "sink.compression".into(),
                    format!("{:?}: use none, gzip, snappy, lz4 or zstd", k.compression),
                );
            }
            if let Err(e) = parse_fsync(&k.spool_fsync) {
                report("sink.spool_fsync".into(), e);
            }
            if k.brokers.trim().is_empty() {
                report(
                    "sink.brokers".into(),
                    "must name at least one broker".into(),
                );
            }
            let dead = crate::sink::route::Template::parse(&k.dead_letter_topic)
                .map(|t| t.topic(&crate::event::Node::Null));
            if dead.as_deref() != Ok(k.dead_letter_topic.as_str()) {
                report(
                    "sink.dead_letter_topic".into(),
                    format!(
                        "{:?} is not a plain topic name ([A-Za-z0-9._-])",
                        k.dead_letter_topic
                    ),
                );
            }
        }
        for (grammar, interval) in &self.heartbeats {
            if interval.0.is_zero() {
                report(
                    format!("heartbeats.{grammar}"),
                    "must be longer than zero".into(),
                );
            }
        }
        if self.general.queue_capacity == 0 {
            report("general.queue_capacity".into(), "must be at least 1".into());
        }
        if self.general.queue_max_bytes < 1024 * 1024
            || self.general.queue_max_bytes > crate::queue::MAX_BYTES_LIMIT
        {
            report(
                "general.queue_max_bytes".into(),
                format!(
                    "{} is out of range: from 1048576 (1 MiB) to {}",
                    self.general.queue_max_bytes,
                    crate::queue::MAX_BYTES_LIMIT
                ),
            );
        }
        if self.limits.max_connections == 0 || self.limits.max_connections_per_ip == 0 {
            report(
                "limits".into(),
                "max_connections and max_connections_per_ip must be at least 1".into(),
            );
        }
        if !self.metrics.address.is_empty() && self.metrics.address.parse::<SocketAddr>().is_err() {
            report(
                "metrics.address".into(),
                format!(
                    "invalid address {:?}: expected IP:PORT, or \"\" to disable",
                    self.metrics.address
                ),
            );
        }
    }

    /// Cross-checks against the loaded grammars.
    pub fn validate_grammars(&self, grammars: &GrammarSet) -> Result<(), Vec<ConfigError>> {
        let heartbeat_grammars: Vec<(String, Option<String>)> = self
            .heartbeats
            .keys()
            .map(|g| (format!("heartbeats.{g}"), Some(g.clone())))
            .collect();
        let pinned = self
            .listeners
            .iter()
            .enumerate()
            .map(|(i, l)| (format!("listener[{i}].grammar"), &l.grammar))
            .chain(heartbeat_grammars.iter().map(|(k, g)| (k.clone(), g)))
            .chain(
                self.s3_sources
                    .iter()
                    .enumerate()
                    .map(|(i, s)| (format!("s3[{i}].grammar"), &s.grammar)),
            );
        let errors: Vec<ConfigError> = pinned
            .filter_map(|(key, grammar)| {
                let name = grammar.as_ref()?;
                if grammars.get(name).is_some() {
                    return None;
                }
                Some(ConfigError {
                    file: String::new(),
                    line: None,
                    key,
                    message: format!("no grammar named {name:?}; loaded: {}", grammars.names()),
                })
            })
            .collect();
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors)
        }
    }

    pub fn workers(&self) -> usize {
        match self.general.workers {
            0 => std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1),
            n => n,
        }
    }
}

impl Listener {
    pub fn new(name: &str, transport: TransportKind, address: SocketAddr) -> Listener {
        Listener {
            name: name.to_string(),
            transport,
            address: Address(address),
            grammar: None,
            tags: BTreeMap::new(),
            allow: Vec::new(),
            max_message_bytes: DEFAULT_MAX_MESSAGE_BYTES,
            idle_timeout: default_idle_timeout(),
            frame_timeout: default_frame_timeout(),
            receive_buffer_bytes: None,
            sockets: None,
            sender_order: None,
            tls: None,
        }
    }

    pub fn allows(&self, ip: std::net::IpAddr) -> bool {
        allowed(&self.allow, ip)
    }
}

/// Whether `ip` is in the allowlist (an empty list allows any). An IPv4 sender reaching a
/// dual-stack `[::]` socket appears as `::ffff:a.b.c.d` and is matched as IPv4.
pub fn allowed(allow: &[Cidr], ip: std::net::IpAddr) -> bool {
    let ip = match ip {
        std::net::IpAddr::V6(v6) => v6.to_ipv4_mapped().map(std::net::IpAddr::V4).unwrap_or(ip),
        v4 => v4,
    };
    allow.is_empty() || allow.iter().any(|c| c.0.contains(&ip))
}

fn line_of(text: &str, offset: usize) -> usize {
    text[..offset.min(text.len())].matches('\n').count() + 1
}

/// The line of the `n`-th `[[listener]]` (or `[[s3]]`) table's `key` (or of the table itself), for errors
/// found after parsing. Config files are small, so a scan is fine.
fn find_line(text: &str, key: &str) -> Option<usize> {
    let (section, field) = match key.split_once('.') {
        Some((s, f)) => (s, f),
        None => (key, ""),
    };
    let field = field.split(['.', '[']).next().unwrap_or("");
    let mut table_start = None;
    let array_entry = section.split_once('[').and_then(|(name, rest)| {
        let index = rest.strip_suffix(']')?.parse::<usize>().ok()?;
        Some((format!("[[{name}]]"), index))
    });
    if let Some((header, index)) = array_entry {
        let mut seen = 0;
        for (n, line) in text.lines().enumerate() {
            if line.trim() == header {
                if seen == index {
                    table_start = Some(n);
                    break;
                }
                seen += 1;
            }
        }
    } else {
        for (n, line) in text.lines().enumerate() {
            if line.trim() == format!("[{section}]") {
                table_start = Some(n);
                break;
            }
        }
    }
    let start = table_start?;
    for (n, line) in text.lines().enumerate().skip(start + 1) {
        let t = line.trim_start();
        if t.starts_with("[[") || (t.starts_with('[') && !t.starts_with(&format!("[{section}"))) {
            break;
        }
        if !field.is_empty()
            && t.strip_prefix(field)
                .is_some_and(|r| r.trim_start().starts_with('='))
        {
            return Some(n + 1);
        }
    }
    Some(start + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn errors(text: &str) -> Vec<String> {
        Config::from_toml("t.toml", text)
            .err()
            .unwrap_or_default()
            .iter()
            .map(|e| e.to_string())
            .collect()
    }

    #[test]
    fn full_example_parses() {
        let text = include_str!("../deploy/sluice.toml");
        let config = Config::from_toml("deploy/sluice.toml", text).unwrap();
        assert!(config.listeners.len() >= 3);
        config
            .validate_grammars(&GrammarSet::embedded().unwrap())
            .unwrap();
    }

    #[test]
    fn wrong_value_names_file_line_and_key() {
        let text = "[general]\nworkers = 2\n\n[[listener]]\nname = \"a\"\ntransport = \"tcp\"\naddress = \"0.0.0.0:514\"\nallow = [\"10.0.0.0/33\"]\n";
        assert_eq!(
            errors(text),
            vec!["t.toml:8: listener[0].allow[0]: invalid CIDR \"10.0.0.0/33\": expected a network such as 10.0.0.0/8 or 2001:db8::/32"]
        );
    }

    #[test]
    fn unknown_key_is_an_error() {
        let e =
            errors("[[listener]]\nname = \"a\"\ntransport = \"tcp\"\nadress = \"0.0.0.0:514\"\n");
        assert_eq!(e.len(), 1);
        assert!(
            e[0].starts_with("t.toml:4: listener[0].adress: unknown field `adress`"),
            "{e:?}"
        );
    }

    #[test]
    fn bad_transport_and_duration() {
        let e =
            errors("[[listener]]\nname = \"a\"\ntransport = \"sctp\"\naddress = \"0.0.0.0:514\"\n");
        assert!(
            e[0].starts_with("t.toml:3: listener[0].transport: unknown variant `sctp`"),
            "{e:?}"
        );
        let e = errors("[general]\nshutdown_timeout = \"5 fortnights\"\n");
        assert!(
            e[0].starts_with("t.toml:2: general.shutdown_timeout: invalid duration unit"),
            "{e:?}"
        );
    }

    #[test]
    fn cross_checks_point_at_the_key() {
        let text = "[[listener]]\nname = \"a\"\ntransport = \"tls\"\naddress = \"0.0.0.0:6514\"\n\n[[listener]]\nname = \"a\"\ntransport = \"udp\"\naddress = \"[::]:514\"\nmax_message_bytes = 100\n";
        assert_eq!(
            errors(text),
            vec![
                "t.toml:1: listener[0].tls: a tls listener needs [listener.tls] with cert and key",
                "t.toml:7: listener[1].name: \"a\" is also the name of listener[0]",
                "t.toml:10: listener[1].max_message_bytes: 100 is out of range: RFC 5426 requires at least 480, and sluice takes at most 16 MiB",
            ]
        );
    }

    #[test]
    fn queue_bounds_are_checked() {
        assert_eq!(
            errors("[general]\nqueue_capacity = 0\nqueue_max_bytes = 1000\n"),
            vec![
                "t.toml:2: general.queue_capacity: must be at least 1",
                "t.toml:3: general.queue_max_bytes: 1000 is out of range: from 1048576 (1 MiB) to 4294967295",
            ]
        );
        let config = Config::from_toml("t.toml", "").unwrap();
        assert_eq!(config.general.queue_max_bytes, 64 * 1024 * 1024);
    }

    #[test]
    fn udp_options_only_on_udp_listeners() {
        let text = "[[listener]]\nname = \"a\"\ntransport = \"tcp\"\naddress = \"0.0.0.0:514\"\nsender_order = false\n";
        assert_eq!(
            errors(text),
            vec!["t.toml:5: listener[0].sender_order: only a udp listener takes sender_order; this one is tcp"]
        );
    }

    #[test]
    fn s3_sources_are_checked() {
        let text = "[[listener]]\nname = \"mdf\"\ntransport = \"tcp\"\naddress = \"0.0.0.0:514\"\n\n\
                    [[s3]]\nname = \"mdf\"\nbucket = \"b\"\naccess_key_id = \"AKI\"\n\n\
                    [[s3]]\nname = \"bad name\"\nbucket = \"\"\nendpoint = \"minio:9000\"\npoll_interval = \"0s\"\n";
        assert_eq!(
            errors(text),
            vec![
                "t.toml:7: s3[0].name: \"mdf\" is also the name of listener[0]",
                "t.toml:9: s3[0].access_key_id: access_key_id and secret_access_key go together",
                "t.toml:12: s3[1].name: \"bad name\": use letters, digits, '-', '_' and '.' (it names the checkpoint file)",
                "t.toml:13: s3[1].bucket: must not be empty",
                "t.toml:14: s3[1].endpoint: \"minio:9000\": expected http://host:port or https://host:port",
                "t.toml:15: s3[1].poll_interval: must be at least 1s",
            ]
        );
        let config = Config::from_toml(
            "t.toml",
            "[general]\nstate_dir = \"/srv/sluice\"\n[[s3]]\nname = \"p\"\nbucket = \"b\"\ngrammar = \"nope\"\n",
        )
        .unwrap();
        assert_eq!(
            config.s3_sources[0].checkpoint_path(&config.general),
            PathBuf::from("/srv/sluice/s3-p.json")
        );
        let e = config
            .validate_grammars(&GrammarSet::embedded().unwrap())
            .unwrap_err();
        assert_eq!(e[0].key, "s3[0].grammar");
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("30s").unwrap(), Duration::from_secs(30));
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("10m").unwrap(), Duration::from_secs(600));
        assert_eq!(parse_duration("2").unwrap(), Duration::from_secs(2));
        assert!(parse_duration("soon").is_err());
    }

    #[test]
    fn allowlist_matches_mapped_ipv4() {
        let mut l = Listener::new("x", TransportKind::Tcp, "[::]:514".parse().unwrap());
        assert!(l.allows("192.0.2.1".parse().unwrap()));
        l.allow = vec!["192.0.2.0/24".parse().unwrap()];
        assert!(l.allows("::ffff:192.0.2.7".parse().unwrap()));
        assert!(!l.allows("198.51.100.1".parse().unwrap()));
    }

    #[test]
    fn embedded_default_is_loopback_tcp_and_udp_to_stdout() {
        let c = Config::embedded_default();
        assert_eq!(c.listeners.len(), 2);
        assert!(c.listeners.iter().all(|l| l.address.0.ip().is_loopback()));
        assert!(matches!(c.sink, Sink::Stdout));
    }
}
