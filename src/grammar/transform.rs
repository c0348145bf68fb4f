//! Value transforms from a vendor field to an OCSF attribute. A transform that cannot
//! convert a value returns `None`; the caller then keeps the vendor's value under
//! `unmapped`, so a malformed field (Symantec's `194.1448.4.245`) is never lost and never
//! put where the schema forbids it.

use serde_json::{json, Value};

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
        table: Vec<(String, Value)>,
        default: Option<Value>,
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

    pub fn apply(&self, value: FieldRef<'_>, zone: &DefaultZone, now_ms: i64) -> Option<Value> {
        match (self, value) {
            (Transform::Identity, FieldRef::Json(v)) => return (!v.is_null()).then(|| v.clone()),
            (Transform::List(_), FieldRef::Json(Value::Array(items))) => {
                return (!items.is_empty()).then(|| Value::Array(items.clone()))
            }
            _ => {}
        }
        let text = value.as_text()?;
        let text = text.as_ref();
        match self {
            Transform::Identity | Transform::String => {
                (!text.is_empty()).then(|| Value::String(text.to_string()))
            }
            Transform::Int => text.trim().parse::<i64>().ok().map(Value::from),
            Transform::Float => text
                .trim()
                .parse::<f64>()
                .ok()
                .filter(|f| f.is_finite())
                .map(Value::from),
            Transform::Bool => match text.trim().to_ascii_lowercase().as_str() {
                "true" | "1" | "yes" => Some(Value::Bool(true)),
                "false" | "0" | "no" => Some(Value::Bool(false)),
                _ => None,
            },
            Transform::Port => text.trim().parse::<u16>().ok().map(Value::from),
            Transform::Ip => {
                let ip = text.trim();
                ip.parse::<std::net::IpAddr>()
                    .ok()
                    .map(|_| Value::String(ip.to_string()))
            }
            Transform::Email => email_address(text).map(Value::String),
            Transform::EmailList(sep) => {
                let list: Option<Vec<Value>> = text
                    .split(sep.as_str())
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(|s| email_address(s).map(Value::String))
                    .collect();
                list.filter(|l| !l.is_empty()).map(Value::Array)
            }
            Transform::List(sep) => {
                let list: Vec<Value> = text
                    .split(sep.as_str())
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(|s| Value::String(s.to_string()))
                    .collect();
                (!list.is_empty()).then_some(Value::Array(list))
            }
            Transform::Lower => (!text.is_empty()).then(|| Value::String(text.to_lowercase())),
            Transform::EpochSeconds => time::parse_epoch_seconds(text).map(Value::from),
            Transform::EpochMillis => time::parse_epoch_millis(text).map(Value::from),
            Transform::Iso8601 => time::parse_iso(text, zone).map(Value::from),
            Transform::CefTime => time::parse_cef_time(text, zone, now_ms).map(Value::from),
            Transform::Time => time::parse_iso(text, zone)
                .or_else(|| time::parse_cef_time(text, zone, now_ms))
                .or_else(|| time::parse_epoch_seconds(text).filter(|_| text.contains('.')))
                .map(Value::from),
            Transform::CefSeverity => cef_severity(text).map(Value::from),
            Transform::Enum { table, default } => table
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(text.trim()))
                .map(|(_, v)| v.clone())
                .or_else(|| default.clone()),
            Transform::Hash(algorithm_id) => {
                let hash = text.trim();
                (!hash.is_empty() && hash.bytes().all(|b| b.is_ascii_hexdigit()))
                    .then(|| json!({"algorithm_id": algorithm_id, "value": hash}))
            }
        }
    }
}

/// Generic CEF severity → OCSF severity_id (normalised-schema rule 4).
pub fn cef_severity(text: &str) -> Option<u8> {
    let text = text.trim();
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
pub fn email_address(text: &str) -> Option<String> {
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
    (local_ok && domain_ok).then(|| addr.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails() {
        assert_eq!(
            email_address(" Sender <sender@domain.com>").as_deref(),
            Some("sender@domain.com")
        );
        assert_eq!(
            email_address("harold@acme.com").as_deref(),
            Some("harold@acme.com")
        );
        assert_eq!(email_address("Phuong(phuong@gmail.com)"), None);
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
