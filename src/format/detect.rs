//! Format detection on a payload: one look at its first bytes, plus one `memmem` for the
//! `CEF:` marker. No parser is tried and abandoned on the hot path.

use memchr::memmem;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// CEF; `start` is the byte offset of `CEF:` (text before it is a vendor prefix such as
    /// Symantec's `INFO - ATP-Appliance `).
    Cef {
        start: usize,
    },
    /// Perception Point `Key:Value|Key:Value`.
    Pipe,
    /// A JSON object or array.
    Json,
    /// JSON members without the outer braces (MetaDefender's "SYSLOG" format).
    JsonMembers,
    /// Generic `key=value key=value`.
    Kv,
    Unknown,
}

impl Format {
    pub fn as_str(self) -> &'static str {
        match self {
            Format::Cef { .. } => "cef",
            Format::Pipe => "pipe",
            Format::Json => "json",
            Format::JsonMembers => "json_members",
            Format::Kv => "kv",
            Format::Unknown => "unknown",
        }
    }

    /// The name used in grammar files (`format = "cef"`).
    pub fn from_name(name: &str) -> Option<Format> {
        Some(match name {
            "cef" => Format::Cef { start: 0 },
            "pipe" => Format::Pipe,
            "json" => Format::Json,
            "json_members" => Format::JsonMembers,
            "kv" => Format::Kv,
            _ => return None,
        })
    }

    /// Same variant, ignoring the CEF offset.
    pub fn same_kind(self, other: Format) -> bool {
        std::mem::discriminant(&self) == std::mem::discriminant(&other)
    }
}

static CEF_FINDER: std::sync::LazyLock<memmem::Finder<'static>> =
    std::sync::LazyLock::new(|| memmem::Finder::new(b"CEF:"));

/// Longest key accepted at the start of a pipe or kv payload.
const MAX_KEY_LEN: usize = 64;

pub fn detect(payload: &str) -> Format {
    let trimmed = payload.trim_start();
    let offset = payload.len() - trimmed.len();
    let bytes = trimmed.as_bytes();
    match bytes.first() {
        None => return Format::Unknown,
        Some(b'{') | Some(b'[') => return Format::Json,
        Some(b'"') if looks_like_json_member(bytes) => return Format::JsonMembers,
        _ => {}
    }
    if let Some(pos) = find_cef(bytes) {
        return Format::Cef {
            start: offset + pos,
        };
    }
    match leading_key(bytes) {
        Some(b':') if memchr::memchr(b'|', bytes).is_some() => Format::Pipe,
        Some(b'=') => Format::Kv,
        _ => Format::Unknown,
    }
}

/// `CEF:` followed by a digit, at the start or after a space.
fn find_cef(bytes: &[u8]) -> Option<usize> {
    let mut from = 0;
    while let Some(pos) = CEF_FINDER.find(&bytes[from..]) {
        let at = from + pos;
        let at_boundary = at == 0 || bytes[at - 1] == b' ';
        if at_boundary && bytes.get(at + 4).is_some_and(u8::is_ascii_digit) {
            return Some(at);
        }
        from = at + 4;
    }
    None
}

/// `"name":` at the start: a quoted key (escapes allowed) followed by a colon.
fn looks_like_json_member(bytes: &[u8]) -> bool {
    let mut i = 1;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' => i += 2,
            b'"' => {
                let rest = &bytes[i + 1..];
                let rest = rest.trim_ascii_start();
                return rest.first() == Some(&b':');
            }
            _ => i += 1,
        }
    }
    false
}

/// The separator (`:` or `=`) after a leading key of word characters, dots, dashes and
/// inner spaces (`Scan ID`, `IP Address`), if the payload starts with such a key.
fn leading_key(bytes: &[u8]) -> Option<u8> {
    if !bytes.first()?.is_ascii_alphabetic() && bytes[0] != b'_' {
        return None;
    }
    let mut has_space = false;
    for (i, &b) in bytes.iter().enumerate().take(MAX_KEY_LEN + 1) {
        match b {
            b':' => return (bytes[i - 1] != b' ').then_some(b),
            // kv keys never contain spaces; pipe keys may (`Scan ID`).
            b'=' => return (!has_space).then_some(b),
            b' ' => has_space = true,
            b if b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-' | b' ') => {}
            _ => return None,
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detects_each_seed_shape() {
        assert_eq!(
            detect("datetime:1612422455.63|Scan ID:000176_1|Event:Email Scanned"),
            Format::Pipe
        );
        assert_eq!(
            detect("INFO - ATP-Appliance CEF:0|Symantec|ATPU|3.0.0|4123|x|0|a=b"),
            Format::Cef { start: 21 }
        );
        assert_eq!(
            detect("CEF:0|AO Kaspersky Lab|x|"),
            Format::Cef { start: 0 }
        );
        assert_eq!(detect("{\"log_type\": \"x\"}"), Format::Json);
        assert_eq!(detect("[{\"a\":1}]"), Format::Json);
        assert_eq!(
            detect("\"log_type\":\"config\",\"a\":1"),
            Format::JsonMembers
        );
        assert_eq!(detect("src=1.2.3.4 dst=5.6.7.8"), Format::Kv);
        assert_eq!(detect("connect host= /192.0.2.1"), Format::Unknown);
        assert_eq!(detect(""), Format::Unknown);
        assert_eq!(detect("\"just a string\""), Format::Unknown);
        assert_eq!(detect("see xCEF:0 a"), Format::Unknown);
    }
}
