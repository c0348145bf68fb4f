//! Where messages come from: the message type every source produces, stream framing, the
//! network listeners of `sluice run` (TCP, TLS, UDP) with their limits, and the file reader
//! of `sluice parse`.

pub mod file;
pub mod framing;
pub mod limits;
pub mod metrics;
pub mod tcp;
pub mod tls;
pub mod udp;

use std::collections::BTreeMap;
use std::sync::Arc;

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
    pub bytes: Vec<u8>,
    pub received: ReceiveInfo,
    /// Receive time, ms since the epoch.
    pub received_ms: i64,
    /// The framing layer cut this message (longer than the limit, or a partial frame at close).
    pub truncated: bool,
    /// Byte offset of the record in its file or object, where there is one.
    pub offset: Option<u64>,
    /// Set when the source already knows the format (a record from a JSON file).
    pub json_record: bool,
}

impl Message {
    pub fn new(bytes: Vec<u8>, received: ReceiveInfo, received_ms: i64) -> Message {
        Message {
            bytes,
            received,
            received_ms,
            truncated: false,
            offset: None,
            json_record: false,
        }
    }
}

pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}
