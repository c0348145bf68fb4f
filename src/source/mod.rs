//! Where messages come from. Network listeners arrive with `sluice run`; this module holds
//! the message type every source produces and the file reader used by `sluice parse`.

pub mod file;

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

pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}
