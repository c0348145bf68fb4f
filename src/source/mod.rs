//! Where messages come from: the message type every source produces, stream framing, the
//! network listeners of `sluice run` (TCP, TLS, UDP) with their limits, the S3 source, and
//! the record splitter that files and objects share.

pub mod framing;
pub mod limits;
pub mod metrics;
pub mod records;
pub mod s3;
pub mod tcp;
pub mod tls;
pub mod udp;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use bytes::Bytes;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transport {
    Tcp,
    Udp,
    Tls,
    S3,
    File,
}

impl Transport {
    pub fn as_str(self) -> &'static str {
        match self {
            Transport::Tcp => "tcp",
            Transport::Udp => "udp",
            Transport::Tls => "tls",
            Transport::S3 => "s3",
            Transport::File => "file",
        }
    }
}

/// How and when a message was received: shared per listener, cheap to clone.
#[derive(Clone, Debug)]
pub struct ReceiveInfo {
    pub listener: Arc<str>,
    pub transport: Transport,
    pub peer: Option<Arc<str>>,
    pub tls_client_subject: Option<Arc<str>>,
    /// File path or S3 object key.
    pub object_key: Option<Arc<str>>,
    pub tags: Arc<BTreeMap<String, String>>,
    /// Grammar pinned by the listener (checked against the loaded grammars at start-up).
    pub grammar: Option<Arc<str>>,
}

impl ReceiveInfo {
    pub fn new(listener: &str, transport: Transport) -> ReceiveInfo {
        ReceiveInfo {
            listener: Arc::from(listener),
            transport,
            peer: None,
            tls_client_subject: None,
            object_key: None,
            tags: Arc::new(BTreeMap::new()),
            grammar: None,
        }
    }
}

/// One message after framing.
#[derive(Clone, Debug)]
pub struct Message {
    /// A view of the buffer the listener read it into (see `framing`), or its own bytes.
    pub bytes: Bytes,
    /// Shared by every message of a connection, UDP sender or S3 object: one reference
    /// count moves per message, not one per field.
    pub received: Arc<ReceiveInfo>,
    /// Receive time, ms since the epoch.
    pub received_ms: i64,
    /// The framing layer cut this message (longer than the limit, or a partial frame at close).
    pub truncated: bool,
    /// Byte offset of the record in its file or object, where there is one.
    pub offset: Option<u64>,
    /// Set when the source already knows the format (a record from a JSON file).
    pub json_record: bool,
    /// Settled once the event is out of sluice's hands (see [`Receipt`]).
    pub receipt: Option<Arc<Receipt>>,
}

impl Message {
    pub fn new(bytes: impl Into<Bytes>, received: Arc<ReceiveInfo>, received_ms: i64) -> Message {
        Message {
            bytes: bytes.into(),
            received,
            received_ms,
            truncated: false,
            offset: None,
            json_record: false,
            receipt: None,
        }
    }
}

/// Tells a source when every event of one unit of its input (an S3 object) has been
/// delivered, spooled, or dropped with a count, so it may record the unit as done.
///
/// The source holds one share while it reads and takes one more per message; the sink
/// settles each message's share; the callback runs when the last share is settled. A
/// message lost before the sink (the process stopped) never settles: its unit is not
/// recorded as done and is read again.
pub struct Receipt {
    shares: AtomicU64,
    on_done: Box<dyn Fn() + Send + Sync>,
}

impl Receipt {
    /// A receipt with the reader's own share.
    pub fn new(on_done: impl Fn() + Send + Sync + 'static) -> Arc<Receipt> {
        Arc::new(Receipt {
            shares: AtomicU64::new(1),
            on_done: Box::new(on_done),
        })
    }

    /// One more share, for one more message.
    pub fn share(self: &Arc<Self>) -> Arc<Receipt> {
        self.shares.fetch_add(1, Ordering::AcqRel);
        self.clone()
    }

    pub fn settle(&self) {
        if self.shares.fetch_sub(1, Ordering::AcqRel) == 1 {
            (self.on_done)();
        }
    }
}

impl std::fmt::Debug for Receipt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Receipt")
            .field("shares", &self.shares.load(Ordering::Relaxed))
            .finish()
    }
}

pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}
