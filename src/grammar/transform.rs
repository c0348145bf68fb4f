//! Value transforms from a vendor field to an OCSF attribute. A transform that cannot
//! convert a value returns `None`; the caller then keeps the vendor's value under
//! `unmapped`, so a malformed field (Symantec's `194.1448.4.245`) is never lost and never
//! put where the schema forbids it.

use crate::event::{Node, Object};

use super::fields::FieldRef;
use crate::time::{self, DefaultZone};

#[derive(Clone, Debug)]
pub enum Transform {
    /// The value as it is (string, or the JSON value).
    Identity,
    String,
    Int,
    Float,
    Bool,
    Port,
    Ip,
    Email,
    EmailList(String),
    List(String),
    Lower,
    EpochSeconds,
    EpochMillis,
    Iso8601,
    CefTime,
    /// Any of the time forms above.
    Time,
    /// Generic CEF severity: 0–10 or Unknown/Low/Medium/High/Very-High.
    CefSeverity,
    Enum {
        table: Vec<(String, Node<'static>)>,
        default: Option<Node<'static>>,
    },
    /// A fingerprint object `{algorithm_id, value}`.
    Hash(u8),
}

/// Names accepted in grammar files, for error messages.
pub const TRANSFORM_NAMES: &[&str] = &[
    "string",
    "int",
    "float",
    "bool",
    "port",
    "ip",
    "email",
    "email_list",
    "list",
    "lower",
    "epoch_s",
    "epoch_ms",
    "iso8601",
    "cef_time",
    "time",
    "cef_severity",
    "enum",
    "md5",
    "sha1",
    "sha256",
    "sha512",
];

impl Transform {
    pub fn from_name(name: &str, separator: Option<&str>) -> Option<Transform> {
        let sep = separator.unwrap_or(",").to_string();
        Some(match name {
            "string" => Transform::String,
            "int" => Transform::Int,
            "float" => Transform::Float,
            "bool" => Transform::Bool,
            "port" => Transform::Port,
            "ip" => Transform::Ip,
            "email" => Transform::Email,
            "email_list" => Transform::EmailList(sep),
            "list" => Transform::List(sep),
            "lower" => Transform::Lower,
            "epoch_s" => Transform::EpochSeconds,
            "epoch_ms" => Transform::EpochMillis,
            "iso8601" => Transform::Iso8601,
            "cef_time" => Transform::CefTime,
            "time" => Transform::Time,
            "cef_severity" => Transform::CefSeverity,
            // OCSF fingerprint algorithm_id: 1 MD5, 2 SHA-1, 3 SHA-256, 4 SHA-512.
            "md5" => Transform::Hash(1),
            "sha1" => Transform::Hash(2),
            "sha256" => Transform::Hash(3),
            "sha512" => Transform::Hash(4),
            _ => return None,
        })
    }

    /// The name a grammar file uses for this transform.
    pub fn name(&self) -> &'static str {
        match self {
            Transform::Identity => "none",
            Transform::String => "string",
            Transform::Int => "int",
            Transform::Float => "float",
            Transform::Bool => "bool",
            Transform::Port => "port",
            Transform::Ip => "ip",
            Transform::Email => "email",
            Transform::EmailList(_) => "email_list",
            Transform::List(_) => "list",
            Transform::Lower => "lower",
            Transform::EpochSeconds => "epoch_s",
            Transform::EpochMillis => "epoch_ms",
            Transform::Iso8601 => "iso8601",
            Transform::CefTime => "cef_time",
            Transform::Time => "time",
            Transform::CefSeverity => "cef_severity",
            Transform::Enum { .. } => "enum",
            Transform::Hash(1) => "md5",
            Transform::Hash(2) => "sha1",
            Transform::Hash(3) => "sha256",
            Transform::Hash(_) => "sha512",
        }
    }

    /// Whether `None` from a non-empty value means the value is malformed (a conversion
    /// failure worth reporting). Text transforms only return `None` for empty values, and an
    /// enum table may be partial on purpose (`is_alert` only for SUS and MAL).
    pub fn reports_failures(&self) -> bool {
        !matches!(
            self,
            Transform::Identity
                | Transform::String
                | Transform::List(_)
                | Transform::Lower
                | Transform::Enum { .. }
        )
    }

    /// The OCSF value for `value`, borrowing the message's text where it can (the grammar's
    /// enum tables are borrowed from the grammar).
    pub fn apply<'a>(
        &'a self,
        value: FieldRef<'_, 'a>,
        zone: &DefaultZone,
        now_ms: i64,
    ) -> Option<Node<'a>> {
        match (self, value) {
            (Transform::Identity, FieldRef::Json(v)) => return (!v.is_null()).then(|| v.clone()),
            (Transform::List(_), FieldRef::Json(Node::Array(items))) => {
                return (!items.is_empty()).then(|| Node::Array(items.clone()))
            }
            _ => {}
        }
        let field = value.text()?;
        let text = field.as_str();
        let keep = |part: &str| Node::Str(field.keep(part));
        match self {
            Transform::Identity | Transform::String => {
                (!text.is_empty()).then(|| Node::Str(field.keep_all()))
            }
            Transform::Int => crate::format::trim(text)
                .parse::<i64>()
                .ok()
                .map(Node::from),
            Transform::Float => text
                .trim()
                .parse::<f64>()
                .ok()
                .filter(|f| f.is_finite())
                .map(Node::Float),
            Transform::Bool => {
                let t = crate::format::trim(text);
                if ["true", "1", "yes"]
                    .iter()
                    .any(|w| t.eq_ignore_ascii_case(w))
                {
                    Some(Node::Bool(true))
                } else if ["false", "0", "no"]
                    .iter()
                    .any(|w| t.eq_ignore_ascii_case(w))
                {
                    Some(Node::Bool(false))
                } else {
                    None
                }
            }
            Transform::Port => crate::format::trim(text)
                .parse::<u16>()
                .ok()
                .map(Node::from),
            Transform::Ip => {
                let ip = crate::format::trim(text);
                ip.parse::<std::net::IpAddr>().ok().map(|_| keep(ip))
            }
            Transform::Email => email_address(text).map(keep),
            Transform::EmailList(sep) => {
                let mut list = Vec::new();
                let all_addresses = each_list_item(text, sep, |item| match email_address(item) {
                    Some(address) => {
                        list.push(keep(address));
                        true
                    }
                    None => false,
                });
                (all_addresses && !list.is_empty()).then_some(Node::Array(list))
            }
            Transform::List(sep) => {
                let mut list = Vec::new();
                each_list_item(text, sep, |item| {
                    list.push(keep(item));
                    true
                });
                (!list.is_empty()).then_some(Node::Array(list))
            }
            Transform::Lower => (!text.is_empty()).then(|| {
                if text.is_ascii() && !text.bytes().any(|b| b.is_ascii_uppercase()) {
                    Node::Str(field.keep_all())
                } else {
                    Node::from(text.to_lowercase())
                }
            }),
            Transform::EpochSeconds => time::parse_epoch_seconds(text).map(Node::from),
            Transform::EpochMillis => time::parse_epoch_millis(text).map(Node::from),
            Transform::Iso8601 => time::parse_iso(text, zone).map(Node::from),
            Transform::CefTime => time::parse_cef_time(text, zone, now_ms).map(Node::from),
            Transform::Time => time::parse_iso(text, zone)
                .or_else(|| time::parse_cef_time(text, zone, now_ms))
                .or_else(|| time::parse_epoch_seconds(text).filter(|_| text.contains('.')))
                .map(Node::from),
            Transform::CefSeverity => cef_severity(text).map(Node::from),
            Transform::Enum { table, default } => table
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(crate::format::trim(text)))
                .map(|(_, v)| v)
                .or(default.as_ref())
                .map(Node::reborrow),
            Transform::Hash(algorithm_id) => {
                let hash = crate::format::trim(text);
                (!hash.is_empty() && hash.bytes().all(|b| b.is_ascii_hexdigit())).then(|| {
                    let mut fingerprint = Object::with_capacity(2);
                    fingerprint.insert("algorithm_id", *algorithm_id);
                    fingerprint.insert("value", field.keep(hash));
                    Node::Object(fingerprint)
                })
            }
        }
    }
}

/// Generic CEF severity → OCSF severity_id (normalised-schema rule 4).
pub fn cef_severity(text: &str) -> Option<u8> {
    let text = crate::format::trim(text);
    if let Ok(n) = text.parse::<u8>() {
        return match n {
            0..=3 => Some(2),
            4..=6 => Some(3),
            7..=8 => Some(4),
            9..=10 => Some(5),
            _ => None,
        };
    }
    match text.to_ascii_lowercase().as_str() {
        "unknown" => Some(0),
        "low" => Some(2),
        "medium" => Some(3),
        "high" => Some(4),
        "very-high" | "very high" | "veryhigh" => Some(5),
        _ => None,
    }
}

/// The address in `Name <addr@host>` or a bare `addr@host`, if it has OCSF's email shape.
/// Calls `visit` with each trimmed, non-empty item of a `sep`-separated list until it
/// returns false; returns whether it never did. A one-byte separator (nearly every grammar's
/// `,`) is found with memchr: `str::split` with a `&str` pattern sets up a two-way searcher
/// on every call, which cost more than the addresses' checks for a short recipient list.
fn each_list_item<'t>(text: &'t str, sep: &str, mut visit: impl FnMut(&'t str) -> bool) -> bool {
    let mut item = |part: &'t str| {
        let part = part.trim();
        part.is_empty() || visit(part)
    };
    let &[byte] = sep.as_bytes() else {
        return text.split(sep).all(item);
    };
    // A one-byte separator is ASCII, so every cut falls on a character boundary.
    let mut rest = text;
    while let Some(at) = memchr::memchr(byte, rest.as_bytes()) {
        if !item(&rest[..at]) {
            return false;
        }
        rest = &rest[at + 1..];
    }
    item(rest)
}

pub fn email_address(text: &str) -> Option<&str> {
    let text = crate::format::trim(text);
    let bytes = text.as_bytes();
    let addr = match (memchr::memrchr(b'<', bytes), memchr::memrchr(b'>', bytes)) {
        (Some(open), Some(close)) if open < close => &text[open + 1..close],
        _ => text,
    };
    let at = memchr::memchr(b'@', addr.as_bytes())?;
    let (local, domain) = (&addr.as_bytes()[..at], &addr.as_bytes()[at + 1..]);
    let local_ok = !local.is_empty() && local.iter().all(|&b| EMAIL_BYTES[b as usize] & LOCAL != 0);
    let domain_ok = domain.first().is_some_and(|&b| b != b'.')
        && domain.contains(&b'.')
        && domain
            .iter()
            .all(|&b| EMAIL_BYTES[b as usize] & DOMAIN != 0);
    (local_ok && domain_ok).then_some(addr)
}

/// Which bytes an address's local part ([`LOCAL`]) and domain ([`DOMAIN`]) may hold: one
/// lookup a byte, where testing each against the list of symbols cost a search.
const EMAIL_BYTES: [u8; 256] = {
    let mut table = [0u8; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        if c.is_ascii_alphanumeric() {
            table[b] = LOCAL | DOMAIN;
        }
        b += 1;
    }
    let symbols = b"!#$%&'*+-/=?^_`{|}~.";
    let mut i = 0;
    while i < symbols.len() {
        table[symbols[i] as usize] |= LOCAL;
        i += 1;
    }
    table[b'-' as usize] |= DOMAIN;
    table[b'.' as usize] |= DOMAIN;
    table
};
const LOCAL: u8 = 1;
const DOMAIN: u8 = 2;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails() {
        assert_eq!(
            email_address(" Sender <sender@domain.com>"),
            Some("sender@domain.com")
        );
        assert_eq!(email_address("harold@acme.com"), Some("harold@acme.com"));
        assert_eq!(email_address("Phuong(phuong@gmail.com)"), None);
    }

    /// The address shape as first written, with the standard library's searches.
    fn email_address_by_chars(text: &str) -> Option<&str> {
        let text = text.trim();
        let addr = match (text.rfind('<'), text.rfind('>')) {
            (Some(open), Some(close)) if open < close => &text[open + 1..close],
            _ => text,
        };
        let (local, domain) = addr.split_once('@')?;
        let local_ok = !local.is_empty()
            && local
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-/=?^_`{|}~.".contains(&b));
        let domain_ok = domain.contains('.')
            && !domain.starts_with('.')
            && domain
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.');
        (local_ok && domain_ok).then_some(addr)
    }

    proptest::proptest! {
        #[test]
        fn list_items_are_those_split_gives(
            text in r"[ a,;b|\-]{0,30}",
            sep in proptest::sample::select(vec![",", ";", " ", "|", ", ", "--", ""]),
        ) {
            let mut items = Vec::new();
            let all = each_list_item(&text, sep, |item| {
                items.push(item);
                true
            });
            proptest::prop_assert!(all);
            let want: Vec<&str> = text.split(sep).map(str::trim).filter(|s| !s.is_empty()).collect();
            proptest::prop_assert_eq!(items, want);
        }

        #[test]
        fn email_address_agrees_with_the_character_rules(
            text in r"[ a-zA-Z0-9@.<>!#$%&'*+/=?^_`{|}~\\\-\tÜ]{0,40}",
        ) {
            proptest::prop_assert_eq!(email_address(&text), email_address_by_chars(&text));
        }
    }

    /// The byte table accepts exactly what the character rules of the address shape do.
    #[test]
    fn email_byte_table_matches_the_character_rules() {
        for b in 0..=255u8 {
            let local = b.is_ascii_alphanumeric() || b"!#$%&'*+-/=?^_`{|}~.".contains(&b);
            let domain = b.is_ascii_alphanumeric() || b == b'-' || b == b'.';
            assert_eq!(EMAIL_BYTES[b as usize] & LOCAL != 0, local, "byte {b}");
            assert_eq!(EMAIL_BYTES[b as usize] & DOMAIN != 0, domain, "byte {b}");
        }
        for (text, want) in [
            ("a@b.c", Some("a@b.c")),
            ("a@.b.c", None),
            ("a@bc", None),
            ("@b.c", None),
            ("a@b@c.d", None),
            ("x <a@b.c> y", Some("a@b.c")),
            ("> a@b.c <", None),
            ("Ünïcode <u@b.c>", Some("u@b.c")),
            ("u@b.c ", Some("u@b.c")),
        ] {
            assert_eq!(email_address(text), want, "{text:?}");
        }
    }

    #[test]
    fn severities() {
        assert_eq!(cef_severity("0"), Some(2));
        assert_eq!(cef_severity("10"), Some(5));
        assert_eq!(cef_severity("very-high"), Some(5));
        assert_eq!(cef_severity("Unknown"), Some(0));
        assert_eq!(cef_severity("11"), None);
    }
}
