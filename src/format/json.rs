//! JSON payloads: objects, braceless members (MetaDefender "SYSLOG"), value streams (S3
//! exports: arrays, NDJSON, concatenated pretty-printed objects), and a lenient repair for
//! the broken JSON Symantec EDR embeds in CEF `json=`.
//!
//! serde_json was measured against sonic-rs and simd-json on this workload (see
//! docs/performance.md); its recursion limit (128) also turns deep nesting into an error
//! instead of a stack overflow.

use serde_json::Value;

/// What a lenient parse had to repair. Each becomes part of the `json_repaired` error text.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Repairs {
    pub added_opening_brace: bool,
    pub invalid_escapes: usize,
    pub raw_control_chars: usize,
    /// Text after the first complete JSON value (kept by the caller, never dropped).
    pub trailing: Option<String>,
}

impl Repairs {
    pub fn any(&self) -> bool {
        self.added_opening_brace
            || self.invalid_escapes > 0
            || self.raw_control_chars > 0
            || self.trailing.is_some()
    }

    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        if self.added_opening_brace {
            parts.push("added the missing opening '{'".to_string());
        }
        if self.invalid_escapes > 0 {
            parts.push(format!(
                "kept {} invalid escape(s) as literal backslashes",
                self.invalid_escapes
            ));
        }
        if self.raw_control_chars > 0 {
            parts.push(format!(
                "escaped {} raw control character(s) in strings",
                self.raw_control_chars
            ));
        }
        if let Some(trailing) = &self.trailing {
            parts.push(format!(
                "kept {} byte(s) of trailing text apart",
                trailing.len()
            ));
        }
        parts.join("; ")
    }
}

/// A strict parse of one JSON value.
pub fn parse(text: &str) -> Result<Value, serde_json::Error> {
    serde_json::from_str(text)
}

/// Braceless members `"a":1,"b":"x"` → the object they describe.
pub fn parse_members(text: &str) -> Result<Value, serde_json::Error> {
    let trimmed = text.trim().trim_end_matches(',');
    let mut wrapped = String::with_capacity(trimmed.len() + 2);
    wrapped.push('{');
    wrapped.push_str(trimmed);
    wrapped.push('}');
    serde_json::from_str(&wrapped)
}

/// Parses one JSON value, repairing what Symantec EDR really sends: a missing opening `{`,
/// backslashes that are not JSON escapes (`C:\Users`), raw control characters inside
/// strings, and text after the value. Returns the value and what was repaired
/// (`Repairs::any()` is false for valid JSON).
pub fn parse_lenient(text: &str) -> Result<(Value, Repairs), String> {
    let trimmed = text.trim();
    let braceless = trimmed.starts_with('"');
    // A lone JSON string is valid as it is; braceless members fail at their first ':'.
    if braceless {
        if let Ok(value) = serde_json::from_str::<Value>(trimmed) {
            return Ok((value, Repairs::default()));
        }
    }
    // One scan finds (and fixes) what a strict parse would stop at, so the value is parsed
    // once, not once to fail deep inside and again after the repair.
    let mut repairs = Repairs::default();
    let mut fixed = String::with_capacity(trimmed.len() + 16);
    if braceless {
        fixed.push('{');
        repairs.added_opening_brace = true;
    }
    fix_strings(trimmed, &mut fixed, &mut repairs);
    let mut stream = serde_json::Deserializer::from_str(&fixed).into_iter::<Value>();
    match stream.next() {
        Some(Ok(value)) => {
            let rest = fixed[stream.byte_offset()..].trim();
            if !rest.is_empty() {
                repairs.trailing = Some(rest.to_string());
            }
            Ok((value, repairs))
        }
        Some(Err(e)) => Err(format!("invalid JSON even after repair: {e}")),
        None => Err("empty JSON value".to_string()),
    }
}

/// Whether the backslash at `at` starts an escape JSON allows.
fn starts_valid_escape(bytes: &[u8], at: usize) -> bool {
    match bytes.get(at + 1) {
        Some(b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't') => true,
        Some(b'u') => {
            bytes.len() >= at + 6 && bytes[at + 2..at + 6].iter().all(u8::is_ascii_hexdigit)
        }
        _ => false,
    }
}

/// Copies `text` into `out`, doubling backslashes that do not start a valid JSON escape
/// and escaping raw control characters, but only inside string literals. Plain runs are
/// skipped sixteen bytes at a time.
fn fix_strings(text: &str, out: &mut String, repairs: &mut Repairs) {
    let bytes = text.as_bytes();
    let mut copied = 0;
    let mut i = 0;
    // Outside a string: on to the next opening quote.
    while let Some(open) = memchr::memchr(b'"', &bytes[i..]) {
        i += open + 1;
        // Inside: on to the next quote, backslash or control character.
        while let Some(at) = crate::event::node::next_json_special(bytes, i) {
            i = at;
            match bytes[at] {
                b'"' => {
                    i += 1;
                    break;
                }
                b'\\' => {
                    if starts_valid_escape(bytes, i) {
                        i += 2;
                    } else {
                        out.push_str(&text[copied..i]);
                        out.push_str("\\\\");
                        repairs.invalid_escapes += 1;
                        i += 1;
                        copied = i;
                    }
                }
                b => {
                    out.push_str(&text[copied..i]);
                    out.push_str(&format!("\\u{:04x}", b));
                    repairs.raw_control_chars += 1;
                    i += 1;
                    copied = i;
                }
            }
        }
    }
    out.push_str(&text[copied..]);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn symantec_missing_brace_and_paths() {
        let text = r#""actual_action":"Quarantined","file":{"folder":"C:\Users\Admin\Downloads","name":"a.exe"},"sep_installed":true}"#;
        let (value, repairs) = parse_lenient(text).unwrap();
        assert!(repairs.added_opening_brace);
        assert_eq!(repairs.invalid_escapes, 3);
        assert_eq!(value["file"]["folder"], "C:\\Users\\Admin\\Downloads");
        assert_eq!(value["sep_installed"], true);
    }

    #[test]
    fn valid_json_needs_no_repair() {
        let (value, repairs) = parse_lenient(r#"{"a":"C:\\x"}"#).unwrap();
        assert!(!repairs.any());
        assert_eq!(value["a"], "C:\\x");
    }

    #[test]
    fn trailing_garbage_is_kept_apart() {
        let (value, repairs) = parse_lenient(r#"{"a":1} tail=x"#).unwrap();
        assert_eq!(value["a"], 1);
        assert_eq!(repairs.trailing.as_deref(), Some("tail=x"));
    }

    #[test]
    fn truncated_json_fails() {
        assert!(parse_lenient(r#"{"a":"b","c":"#).is_err());
    }

    #[test]
    fn members() {
        let v =
            parse_members(r#""log_type":"config","timestamp":"2022-07-15T11:19:41.629Z""#).unwrap();
        assert_eq!(v["log_type"], "config");
    }

    /// The byte-at-a-time repair that `fix_strings` replaced, kept as its specification.
    fn fix_strings_reference(text: &str) -> (String, Repairs) {
        let mut out = String::new();
        let mut repairs = Repairs::default();
        let bytes = text.as_bytes();
        let (mut in_string, mut copied, mut i) = (false, 0, 0);
        while i < bytes.len() {
            let b = bytes[i];
            if !in_string {
                in_string = b == b'"';
                i += 1;
                continue;
            }
            match b {
                b'"' => {
                    in_string = false;
                    i += 1;
                }
                b'\\' => {
                    if starts_valid_escape(bytes, i) {
                        i += 2;
                    } else {
                        out.push_str(&text[copied..i]);
                        out.push_str("\\\\");
                        repairs.invalid_escapes += 1;
                        i += 1;
                        copied = i;
                    }
                }
                0x00..=0x1f => {
                    out.push_str(&text[copied..i]);
                    out.push_str(&format!("\\u{:04x}", b));
                    repairs.raw_control_chars += 1;
                    i += 1;
                    copied = i;
                }
                _ => i += 1,
            }
        }
        out.push_str(&text[copied..]);
        (out, repairs)
    }

    proptest::proptest! {
        #[test]
        fn fix_strings_matches_its_byte_at_a_time_specification(
            text in "[\"\\\\a-z0-9u:{}\\x00-\\x1f é]{0,80}"
        ) {
            let mut out = String::new();
            let mut repairs = Repairs::default();
            fix_strings(&text, &mut out, &mut repairs);
            proptest::prop_assert_eq!((out, repairs), fix_strings_reference(&text));
        }
    }

    #[test]
    fn deep_nesting_is_an_error_not_a_crash() {
        let deep = "[".repeat(100_000);
        assert!(parse(&deep).is_err());
        assert!(parse_lenient(&deep).is_err());
    }
}
