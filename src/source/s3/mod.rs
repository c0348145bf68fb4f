//! The S3 source: polls a bucket prefix for exported files (MetaDefender IT Access every
//! 5 minutes, Panoptica after each scan), reads each new object as a stream, and feeds its
//! records to the parse queue like any listener.
//!
//! Exactly once per object: an object is recorded in the checkpoint only when every one
//! of its events has been delivered to Kafka, spooled, or written by the file/stdout sink
//! (a [`Receipt`] per object counts them). After a restart, objects in the checkpoint with
//! the same ETag are skipped; an object rewritten under the same key (a new ETag) is read
//! again, whole. An object whose read fails part-way is retried at the next poll, and the
//! records already queued from it are skipped then (with `If-Match`, so the skip is only
//! trusted while the object is unchanged). Objects are read oldest first, one at a time
//! per source, so their events keep the order the vendor wrote them in.
//!
//! What can still repeat: a process killed (or a shutdown deadline passed) after some of
//! an object's events were delivered but before all were, reads that object again.

pub mod checkpoint;
pub mod credentials;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::StreamExt;
use metrics::{counter, gauge, histogram, Counter, Gauge, Histogram};
use object_store::aws::AmazonS3Builder;
use object_store::path::Path as ObjectPath;
use object_store::{GetOptions, ObjectMeta, ObjectStore};
use tokio::sync::watch;

use self::checkpoint::{Checkpoint, Done};
use crate::config::{General, S3Source};
use crate::queue::Dispatcher;
use crate::source::records::{Record, RecordReader};
use crate::source::{now_ms, Message, Receipt, ReceiveInfo, Transport};

/// Why an object (or a listing) failed: the `reason` label of
/// `sluice_s3_objects_failed_total`.
pub const FAILURES: &[&str] = &[
    "list",
    "get",
    "read",
    "changed",
    "corrupt_gzip",
    "checkpoint_write",
];

/// Makes the client. Credentials: the configuration's keys, else its profile (or
/// AWS_PROFILE), else what `object_store` finds (environment, web identity, ECS, IMDS).
pub fn build_store(config: &S3Source) -> Result<Arc<dyn ObjectStore>, String> {
    // The HTTP client takes its TLS crypto from the process default: the same `ring`
    // provider the TLS listeners use. Installing it twice is harmless.
    let _ = crate::source::tls::crypto_provider().install_default();
    let mut builder = AmazonS3Builder::from_env().with_bucket_name(&config.bucket);
    if let Some(region) = &config.region {
        builder = builder.with_region(region);
    } else if let Ok(region) = std::env::var("AWS_DEFAULT_REGION") {
        if std::env::var_os("AWS_REGION").is_none() {
            builder = builder.with_region(region);
        }
    }
    if let Some(endpoint) = &config.endpoint {
        builder = builder
            .with_endpoint(endpoint)
            .with_allow_http(endpoint.starts_with("http://"));
    }
    let path_style = config.path_style.unwrap_or(config.endpoint.is_some());
    builder = builder.with_virtual_hosted_style_request(!path_style);
    let profile = config
        .profile
        .clone()
        .or_else(|| std::env::var("AWS_PROFILE").ok().filter(|p| !p.is_empty()));
    match (&config.access_key_id, &config.secret_access_key, profile) {
        (Some(id), Some(secret), _) => {
            builder = builder
                .with_access_key_id(id)
                .with_secret_access_key(secret);
            if let Some(token) = &config.session_token {
                builder = builder.with_token(token);
            }
        }
        // Keys in the environment win over AWS_PROFILE, as in the AWS CLI; a profile named
        // in the configuration wins over both.
        (_, _, Some(profile))
            if config.profile.is_some() || std::env::var_os("AWS_ACCESS_KEY_ID").is_none() =>
        {
            let keys = credentials::load_profile(&profile)?;
            builder = builder
                .with_access_key_id(keys.access_key_id)
                .with_secret_access_key(keys.secret_access_key);
            if let Some(token) = keys.session_token {
                builder = builder.with_token(token);
            }
        }
        _ => {}
    }
    let store = builder
        .build()
        .map_err(|e| format!("s3 source {:?}: {e}", config.name))?;
    Ok(Arc::new(store))
}

/// What identifies this version of an object.
fn version_of(meta: &ObjectMeta) -> String {
    meta.e_tag.clone().unwrap_or_else(|| {
        format!(
            "{}-{}",
            meta.size,
            meta.last_modified.timestamp_nanos_opt().unwrap_or(0)
        )
    })
}

struct Metrics {
    listed: Gauge,
    pending: Gauge,
    lag: Gauge,
    last_poll: Gauge,
    read: Counter,
    completed: Counter,
    bytes: Counter,
    events: Counter,
    messages: Counter,
    message_bytes: Counter,
    truncated: Counter,
    queue_blocked: Histogram,
    message_size: Histogram,
    failed: HashMap<&'static str, Counter>,
}

impl Metrics {
    fn new(name: &str) -> Metrics {
        let s = name.to_string();
        Metrics {
            listed: gauge!("sluice_s3_objects_listed", "source" => s.clone()),
            pending: gauge!("sluice_s3_objects_pending", "source" => s.clone()),
            lag: gauge!("sluice_s3_lag_seconds", "source" => s.clone()),
            last_poll: gauge!("sluice_s3_last_poll_timestamp_seconds", "source" => s.clone()),
            read: counter!("sluice_s3_objects_read_total", "source" => s.clone()),
            completed: counter!("sluice_s3_objects_completed_total", "source" => s.clone()),
            bytes: counter!("sluice_s3_bytes_total", "source" => s.clone()),
            events: counter!("sluice_s3_records_total", "source" => s.clone()),
            messages: counter!("sluice_messages_received_total", "listener" => s.clone(), "transport" => "s3"),
            message_bytes: counter!("sluice_bytes_received_total", "listener" => s.clone(), "transport" => "s3"),
            truncated: counter!("sluice_messages_truncated_total", "listener" => s.clone(), "reason" => "too_long"),
            queue_blocked: histogram!("sluice_queue_blocked_seconds", "listener" => s.clone()),
            message_size: histogram!("sluice_message_size_bytes", "listener" => s.clone()),
            failed: FAILURES
                .iter()
                .map(|reason| {
                    let c = counter!("sluice_s3_objects_failed_total", "source" => s.clone(), "reason" => *reason);
                    c.increment(0);
                    (*reason, c)
                })
                .collect(),
        }
    }

    fn failed(&self, reason: &'static str) {
        if let Some(c) = self.failed.get(reason) {
            c.increment(1);
        }
    }
}

/// An object being read, or read and waiting for its events to be delivered.
struct InFlight {
    version: String,
    receipt: Arc<Receipt>,
    /// Records queued so far (a retry after a failed read skips them).
    queued: u64,
    /// Read to the end: only the deliveries are outstanding.
    read: bool,
}

/// Shared between the polling task and the receipts' callbacks (on the sink's threads).
struct Ledger {
    checkpoint: Checkpoint,
    in_flight: HashMap<String, InFlight>,
}

/// One configured S3 source, ready to run.
pub struct S3Reader {
    config: S3Source,
    store: Arc<dyn ObjectStore>,
    ledger: Arc<Mutex<Ledger>>,
    info: ReceiveInfo,
    metrics: Arc<Metrics>,
    /// Wakes the poller when an object completes, so the checkpoint is written promptly.
    completed: Arc<tokio::sync::Notify>,
}

impl S3Reader {
    /// Builds the client and loads the checkpoint; errors here stop sluice from starting.
    pub fn new(config: &S3Source, general: &General) -> Result<S3Reader, String> {
        let store = build_store(config)?;
        Self::with_store(config, general, store)
    }

    pub fn with_store(
        config: &S3Source,
        general: &General,
        store: Arc<dyn ObjectStore>,
    ) -> Result<S3Reader, String> {
        let path = config.checkpoint_path(general);
        let checkpoint = Checkpoint::load(&path, &config.bucket)
            .map_err(|e| format!("s3 source {:?}: {e}", config.name))?;
        let mut info = ReceiveInfo::new(&config.name, Transport::S3);
        info.tags = Arc::new(config.tags.clone());
        info.grammar = config.grammar.as_deref().map(Arc::from);
        Ok(S3Reader {
            config: config.clone(),
            store,
            ledger: Arc::new(Mutex::new(Ledger {
                checkpoint,
                in_flight: HashMap::new(),
            })),
            info,
            metrics: Arc::new(Metrics::new(&config.name)),
            completed: Arc::new(tokio::sync::Notify::new()),
        })
    }

    fn ledger(&self) -> std::sync::MutexGuard<'_, Ledger> {
        self.ledger.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Writes the checkpoint if objects completed since the last write.
    pub fn save_checkpoint(&self) {
        if let Err(e) = self.ledger().checkpoint.save() {
            self.metrics.failed("checkpoint_write");
            tracing::error!(source = %self.config.name, error = %e, "s3: cannot write the checkpoint; completed objects will be read again after a restart");
        }
    }

    /// Polls until `shutdown`. A listing in progress is abandoned then; the object being
    /// read gets [`SHUTDOWN_GRACE`] to be read to the end (an object left part-read is read
    /// again, whole, at the next start).
    pub async fn run(self: Arc<Self>, dispatcher: Dispatcher, mut shutdown: watch::Receiver<bool>) {
        let key = hash_name(&self.config.name);
        tracing::info!(source = %self.config.name, bucket = %self.config.bucket, prefix = %self.config.prefix, "s3: polling");
        loop {
            let grace = async {
                stopped(&shutdown).await;
                tokio::time::sleep(SHUTDOWN_GRACE).await;
            };
            tokio::select! {
                _ = self.poll(&dispatcher, key, &shutdown) => {}
                _ = grace => {
                    tracing::warn!(source = %self.config.name, "s3: stopping in the middle of an object; it is read again at the next start");
                    self.save_checkpoint();
                    return;
                }
            }
            self.save_checkpoint();
            if *shutdown.borrow() {
                return;
            }
            let sleep = tokio::time::sleep(self.config.poll_interval.0);
            tokio::pin!(sleep);
            loop {
                tokio::select! {
                    _ = &mut sleep => break,
                    _ = shutdown.changed() => return,
                    _ = self.completed.notified() => self.save_checkpoint(),
                }
            }
        }
    }

    /// One listing and the reading of every object in it not yet done.
    async fn poll(&self, dispatcher: &Dispatcher, key: u64, shutdown: &watch::Receiver<bool>) {
        let prefix = (!self.config.prefix.is_empty())
            .then(|| ObjectPath::from(self.config.prefix.trim_end_matches('/')));
        let listing = async {
            let mut listing = self.store.list(prefix.as_ref());
            let mut objects = Vec::new();
            while let Some(item) = listing.next().await {
                objects.push(item?);
            }
            Ok::<_, object_store::Error>(objects)
        };
        let mut objects = tokio::select! {
            listed = listing => match listed {
                Ok(objects) => objects,
                Err(e) => {
                    self.metrics.failed("list");
                    tracing::error!(source = %self.config.name, error = %e, "s3: listing failed; retrying at the next poll");
                    return;
                }
            },
            _ = stopped(shutdown) => return,
        };
        // A prefix like "logs/2026" also matches "logs/2026-11/…": object_store lists by
        // path segment, so filter on the raw key prefix too.
        objects.retain(|m| m.location.as_ref().starts_with(&self.config.prefix));
        self.metrics.last_poll.set(now_ms() as f64 / 1000.0);
        self.metrics.listed.set(objects.len() as f64);
        let mut todo: Vec<ObjectMeta> = {
            let mut ledger = self.ledger();
            let listed: HashSet<&str> = objects.iter().map(|m| m.location.as_ref()).collect();
            ledger.checkpoint.retain_listed(&listed);
            objects
                .into_iter()
                .filter(|m| {
                    let version = version_of(m);
                    let key = m.location.as_ref();
                    !ledger.checkpoint.is_done(key, &version)
                        && !ledger
                            .in_flight
                            .get(key)
                            .is_some_and(|f| f.read && f.version == version)
                })
                .collect()
        };
        todo.sort_by(|a, b| {
            (a.last_modified, a.location.as_ref()).cmp(&(b.last_modified, b.location.as_ref()))
        });
        self.update_backlog(&todo);
        for (i, meta) in todo.iter().enumerate() {
            if *shutdown.borrow() {
                break;
            }
            if !self.read_object(meta, dispatcher, key).await {
                // Dispatcher closed: sluice is stopping.
                return;
            }
            self.update_backlog(&todo[i + 1..]);
        }
    }

    fn update_backlog(&self, unread: &[ObjectMeta]) {
        self.metrics.pending.set(unread.len() as f64);
        let lag = unread
            .iter()
            .map(|m| m.last_modified.timestamp_millis())
            .min()
            .map(|oldest| (now_ms() - oldest).max(0) as f64 / 1000.0)
            .unwrap_or(0.0);
        self.metrics.lag.set(lag);
    }

    /// The receipt of this version of an object: the one of an earlier, failed attempt
    /// (its queued events still count), or a new one.
    fn receipt_for(&self, meta: &ObjectMeta, version: &str) -> (Arc<Receipt>, u64) {
        let key = meta.location.as_ref().to_string();
        let mut ledger = self.ledger();
        if let Some(f) = ledger.in_flight.get(&key).filter(|f| f.version == version) {
            return (f.receipt.clone(), f.queued);
        }
        let ledger_ref = Arc::downgrade(&self.ledger);
        let completed = self.completed.clone();
        let metrics = self.metrics.clone();
        let (done_key, done_version, size) = (key.clone(), version.to_string(), meta.size);
        let receipt = Receipt::new(move || {
            let Some(ledger) = ledger_ref.upgrade() else {
                return;
            };
            let mut ledger = ledger.lock().unwrap_or_else(|p| p.into_inner());
            if ledger
                .in_flight
                .get(&done_key)
                .is_some_and(|f| f.version == done_version)
            {
                ledger.in_flight.remove(&done_key);
            }
            ledger.checkpoint.mark_done(
                &done_key,
                Done {
                    version: done_version.clone(),
                    size,
                    done_ms: now_ms(),
                },
            );
            metrics.completed.increment(1);
            completed.notify_one();
        });
        ledger.in_flight.insert(
            key,
            InFlight {
                version: version.to_string(),
                receipt: receipt.clone(),
                queued: 0,
                read: false,
            },
        );
        (receipt, 0)
    }

    /// Reads one object to the end (or to a failure, retried at the next poll). False when
    /// the parse queue is closed.
    async fn read_object(&self, meta: &ObjectMeta, dispatcher: &Dispatcher, key: u64) -> bool {
        let name = meta.location.as_ref();
        let version = version_of(meta);
        let (receipt, skip) = self.receipt_for(meta, &version);
        let options = GetOptions {
            if_match: meta.e_tag.clone(),
            ..Default::default()
        };
        let result = match self.store.get_opts(&meta.location, options).await {
            Ok(r) => r,
            Err(object_store::Error::Precondition { .. }) => {
                self.metrics.failed("changed");
                self.ledger().in_flight.remove(name);
                tracing::warn!(source = %self.config.name, key = name, "s3: the object changed while being read; it is read again, whole, at the next poll");
                return true;
            }
            Err(e) => {
                self.metrics.failed("get");
                tracing::error!(source = %self.config.name, key = name, error = %e, "s3: cannot get the object; retrying at the next poll");
                return true;
            }
        };
        let mut info = self.info.clone();
        info.object_key = Some(Arc::from(name));
        let mut object = ObjectQueue {
            info: Arc::new(info),
            receipt,
            skip,
            seen: 0,
            dispatcher,
            key,
        };
        let mut reader = RecordReader::new(name, self.config.max_record_bytes);
        let mut stream = result.into_stream();
        let mut records = Vec::new();
        let mut corrupt = None;
        while let Some(chunk) = stream.next().await {
            let chunk = match chunk {
                Ok(c) => c,
                Err(e) => {
                    self.metrics.failed("read");
                    tracing::error!(source = %self.config.name, key = name, error = %e, "s3: reading the object failed part-way; the rest is read at the next poll");
                    return true;
                }
            };
            self.metrics.bytes.increment(chunk.len() as u64);
            if let Err(e) = reader.feed(&chunk, &mut records) {
                corrupt = Some(e);
            }
            if !self.queue(&mut object, &mut records).await {
                return false;
            }
            if corrupt.is_some() {
                break;
            }
        }
        // Also after corrupt data: the record it cut goes out, flagged by the parser.
        if let Err(e) = reader.finish(&mut records) {
            corrupt.get_or_insert(e);
        }
        if !self.queue(&mut object, &mut records).await {
            return false;
        }
        if let Some(e) = corrupt {
            // Reading it again gives the same bytes: what it held is out, the rest is lost,
            // counted and logged, and the object is not retried.
            self.metrics.failed("corrupt_gzip");
            tracing::error!(source = %self.config.name, key = name, records = object.seen, error = %e, "s3: corrupt gzip data; the records before it were read, the rest of the object is lost");
        }
        self.metrics.read.increment(1);
        if let Some(f) = self.ledger().in_flight.get_mut(name) {
            f.read = true;
        }
        // The reader's own share: from here only deliveries keep the object open.
        object.receipt.settle();
        true
    }

    /// Queues the records found so far, skipping those an earlier attempt queued.
    async fn queue(&self, object: &mut ObjectQueue<'_>, records: &mut Vec<Record>) -> bool {
        if records.is_empty() {
            return true;
        }
        let received_ms = now_ms();
        let mut batch = Vec::with_capacity(records.len());
        for record in records.drain(..) {
            object.seen += 1;
            if object.seen <= object.skip {
                continue;
            }
            let size = record.bytes.len();
            self.metrics.message_bytes.increment(size as u64);
            self.metrics.message_size.record(size as f64);
            if record.truncated {
                self.metrics.truncated.increment(1);
            }
            let mut message = Message::new(record.bytes, object.info.clone(), received_ms);
            message.offset = Some(record.offset);
            message.json_record = record.json;
            message.truncated = record.truncated;
            message.receipt = Some(object.receipt.share());
            batch.push(message);
        }
        let n = batch.len() as u64;
        if n == 0 {
            return true;
        }
        self.metrics.messages.increment(n);
        self.metrics.events.increment(n);
        if object
            .dispatcher
            .send(object.key, batch, &self.metrics.queue_blocked)
            .await
            .is_err()
        {
            return false;
        }
        let key = object.info.object_key.as_deref().unwrap_or("");
        if let Some(f) = self.ledger().in_flight.get_mut(key) {
            f.queued = object.seen;
        }
        true
    }
}

/// The object being read: where its records go and how many were queued.
struct ObjectQueue<'d> {
    info: Arc<ReceiveInfo>,
    receipt: Arc<Receipt>,
    /// Records an earlier, failed attempt queued already.
    skip: u64,
    seen: u64,
    dispatcher: &'d Dispatcher,
    key: u64,
}

/// How long a stopping sluice waits for the object being read.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// Resolves once shutdown is asked for.
async fn stopped(shutdown: &watch::Receiver<bool>) {
    let mut shutdown = shutdown.clone();
    let _ = shutdown.wait_for(|stop| *stop).await;
}

/// A stable queue key per source, so one source's objects go to one parse worker in order.
fn hash_name(name: &str) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    name.hash(&mut h);
    h.finish()
}
