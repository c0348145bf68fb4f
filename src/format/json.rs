//! JSON payloads: objects, braceless members (MetaDefender "SYSLOG"), value streams (S3
//! exports: arrays, NDJSON, concatenated pretty-printed objects), and a lenient repair for
//! the broken JSON Symantec EDR embeds in CEF `json=`.
//!
//! Parsed by `json_tree` straight into the event tree where it can, else by serde_json,
//! which gives the same tree and the errors. sonic-rs, parsing into the same tree, saved
//! about 2 % of a Symantec event's instructions, but its nesting limit (255 levels,
//! serde_json's is 128) let deeply nested input overflow a 2 MiB thread stack
//! (docs/performance.md, 2026-12-04); serde_json's limit turns deep nesting into an error.

use super::json_tree;
use crate::event::Node;

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

    /// Appends what was repaired, the parts joined by "; ". Written piece by piece: every
    /// Symantec event carries this text, and formatting it cost more than the repairs.
    pub fn describe_into(&self, text: &mut String) {
        let start = text.len();
        let part = |text: &mut String, pieces: &[&str]| {
            if text.len() > start {
                text.push_str("; ");
            }
            pieces.iter().for_each(|p| text.push_str(p));
        };
        if self.added_opening_brace {
            part(text, &["added the missing opening '{'"]);
        }
        let mut number = itoa::Buffer::new();
        if self.invalid_escapes > 0 {
            let n = number.format(self.invalid_escapes);
            part(
                text,
                &["kept ", n, " invalid escape(s) as literal backslashes"],
            );
        }
        if self.raw_control_chars > 0 {
            let n = number.format(self.raw_control_chars);
            part(
                text,
                &["escaped ", n, " raw control character(s) in strings"],
            );
        }
        if let Some(trailing) = &self.trailing {
            let n = number.format(trailing.len());
            part(text, &["kept ", n, " byte(s) of trailing text apart"]);
        }
    }
}

/// Text a parse had to make (braceless members wrapped in braces, repaired JSON), kept for
/// as long as the event borrows its strings. One per message: a second use finds it taken
/// and parses into an owned tree instead.
pub type Made = std::cell::OnceCell<String>;

/// `text` moved into `made` when that is free; else `text` back.
fn keep(made: &Made, text: String) -> Result<&str, String> {
    if made.get().is_some() {
        return Err(text);
    }
    Ok(made.get_or_init(|| text))
}

/// A strict parse of one JSON value; strings without escapes borrow from `text`.
pub fn parse(text: &str) -> Result<Node<'_>, serde_json::Error> {
    match json_tree::parse_whole(text) {
        Some(value) => Ok(value),
        None => serde_json::from_str(text),
    }
}

/// Braceless members `"a":1,"b":"x"` → the object they describe.
pub fn parse_members<'a>(text: &str, made: &'a Made) -> Result<Node<'a>, serde_json::Error> {
    let trimmed = text.trim().trim_end_matches(',');
    let mut wrapped = String::with_capacity(trimmed.len() + 2);
    wrapped.push('{');
    wrapped.push_str(trimmed);
    wrapped.push('}');
    match keep(made, wrapped) {
        Ok(kept) => parse(kept),
        Err(wrapped) => parse(&wrapped).map(Node::into_owned),
    }
}

/// Parses one JSON value, repairing what Symantec EDR really sends: a missing opening `{`,
/// backslashes that are not JSON escapes (`C:\Users`), raw control characters inside
/// strings, and text after the value. Returns the value and what was repaired
/// (`Repairs::any()` is false for valid JSON).
pub fn parse_lenient<'a>(text: &str, made: &'a Made) -> Result<(Node<'a>, Repairs), String> {
    let trimmed = text.trim();
    let braceless = trimmed.starts_with('"');
    // A lone JSON string is valid as it is; braceless members fail at their first ':'.
    if braceless && may_be_one_string(trimmed) {
        if let Ok(value) = parse(trimmed) {
            return Ok((value.into_owned(), Repairs::default()));
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
    let value = match keep(made, fixed) {
        Ok(kept) => first_value(kept, &mut repairs)?,
        Err(fixed) => first_value(&fixed, &mut repairs)?.into_owned(),
    };
    Ok((value, repairs))
}

/// As [`parse_lenient`], for text that lives as long as the event: the repairs are made
/// while parsing, and strings borrow from `text`, so the value is neither copied nor
/// scanned twice. What the parse declines (an error, a rare shape) takes
/// [`parse_lenient`], so results and error texts are the same.
pub fn parse_lenient_in_place<'a>(
    text: &'a str,
    made: &'a Made,
) -> Result<(Node<'a>, Repairs), String> {
    let trimmed = text.trim();
    let braceless = trimmed.starts_with('"');
    if braceless && may_be_one_string(trimmed) {
        if let Ok(value) = parse(trimmed) {
            return Ok((value, Repairs::default()));
        }
    }
    let Some((value, end, repaired)) = json_tree::parse_lenient_first(trimmed, braceless) else {
        return parse_lenient(text, made);
    };
    let mut repairs = Repairs {
        added_opening_brace: braceless,
        invalid_escapes: repaired.invalid_escapes,
        raw_control_chars: repaired.raw_control_chars,
        trailing: None,
    };
    // As `parse_lenient`, which repairs the text after the value too (counted, and kept
    // repaired).
    let mut rest = String::new();
    fix_strings(&trimmed[end..], &mut rest, &mut repairs);
    keep_trailing(&rest, &mut repairs);
    Ok((value, repairs))
}

/// Whether `text` (trimmed, starting with `"`) can be one JSON string: its first string,
/// as JSON delimits strings, does not end before its last byte. Braceless members (every
/// Symantec `json=` value) fail this at their first key, where a strict parse would fail
/// twice (the tree parser, then serde_json building its error) before the repair.
fn may_be_one_string(text: &str) -> bool {
    let bytes = text.as_bytes();
    let mut at = 1;
    while let Some(found) = memchr::memchr2(b'"', b'\\', &bytes[at..]) {
        let i = at + found;
        if bytes[i] == b'"' {
            return i == bytes.len() - 1;
        }
        at = i + 2;
        if at >= bytes.len() {
            break;
        }
    }
    true
}

fn keep_trailing(rest: &str, repairs: &mut Repairs) {
    let rest = rest.trim();
    if !rest.is_empty() {
        repairs.trailing = Some(rest.to_string());
    }
}

/// The first JSON value in `text`; what follows it goes to `repairs.trailing`.
fn first_value<'t>(text: &'t str, repairs: &mut Repairs) -> Result<Node<'t>, String> {
    if let Some((value, end)) = json_tree::parse_first(text) {
        keep_trailing(&text[end..], repairs);
        return Ok(value);
    }
    let mut stream = serde_json::Deserializer::from_str(text).into_iter::<Node>();
    match stream.next() {
        Some(Ok(value)) => {
            keep_trailing(&text[stream.byte_offset()..], repairs);
            Ok(value)
        }
        Some(Err(e)) => Err(format!("invalid JSON even after repair: {e}")),
        None => Err("empty JSON value".to_string()),
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
                    if json_tree::starts_escape(bytes, i) {
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
        // That one is repaired in place, not by the fallback.
        assert!(json_tree::parse_lenient_first(r#""f":"C:\Users","g":1} rest"#, true).is_some());
        let made = Made::new();
        let (value, repairs) = parse_lenient(text, &made).unwrap();
        let value = value.into_value();
        assert!(repairs.added_opening_brace);
        assert_eq!(repairs.invalid_escapes, 3);
        assert_eq!(value["file"]["folder"], "C:\\Users\\Admin\\Downloads");
        assert_eq!(value["sep_installed"], true);
    }

    #[test]
    fn repairs_are_described_in_order_and_joined() {
        let mut text = String::from("json= JSON repaired: ");
        Repairs {
            added_opening_brace: true,
            invalid_escapes: 3,
            raw_control_chars: 12,
            trailing: Some("x=1".into()),
        }
        .describe_into(&mut text);
        assert_eq!(
            text,
            "json= JSON repaired: added the missing opening '{'; kept 3 invalid escape(s) as literal backslashes; escaped 12 raw control character(s) in strings; kept 3 byte(s) of trailing text apart"
        );
        let mut text = String::new();
        Repairs {
            raw_control_chars: 1,
            ..Repairs::default()
        }
        .describe_into(&mut text);
        assert_eq!(text, "escaped 1 raw control character(s) in strings");
    }

    #[test]
    fn valid_json_needs_no_repair() {
        // That one is repaired in place, not by the fallback.
        assert!(json_tree::parse_lenient_first(r#""f":"C:\Users","g":1} rest"#, true).is_some());
        let made = Made::new();
        let (value, repairs) = parse_lenient(r#"{"a":"C:\\x"}"#, &made).unwrap();
        let value = value.into_value();
        assert!(!repairs.any());
        assert_eq!(value["a"], "C:\\x");
    }

    #[test]
    fn trailing_garbage_is_kept_apart() {
        // That one is repaired in place, not by the fallback.
        assert!(json_tree::parse_lenient_first(r#""f":"C:\Users","g":1} rest"#, true).is_some());
        let made = Made::new();
        let (value, repairs) = parse_lenient(r#"{"a":1} tail=x"#, &made).unwrap();
        let value = value.into_value();
        assert_eq!(value["a"], 1);
        assert_eq!(repairs.trailing.as_deref(), Some("tail=x"));
    }

    #[test]
    fn truncated_json_fails() {
        assert!(parse_lenient(r#"{"a":"b","c":"#, &Made::new()).is_err());
    }

    #[test]
    fn members() {
        let made = Made::new();
        let text = r#""log_type":"config","timestamp":"2022-07-15T11:19:41.629Z""#;
        let v = parse_members(text, &made).unwrap().into_value();
        assert_eq!(v["log_type"], "config");
        // The spare text is taken: a second parse still works, into an owned tree.
        let again = parse_members(text, &made).unwrap().into_value();
        assert_eq!(again, v);
        let (second, _) = parse_lenient(r#"{"a":"C:\x"}"#, &made).unwrap();
        assert_eq!(second.into_value(), serde_json::json!({"a": "C:\\x"}));
    }

    #[test]
    fn strings_without_escapes_borrow_from_the_text() {
        let text = r#"{"plain":"abc","escaped":"a\nb","list":["x"]}"#;
        let node = parse(text).unwrap();
        let borrowed = |n: &Node| matches!(n, Node::Str(std::borrow::Cow::Borrowed(_)));
        assert!(borrowed(node.get("plain").unwrap()));
        assert!(!borrowed(node.get("escaped").unwrap()));
        assert!(borrowed(&node.get("list").unwrap().as_array().unwrap()[0]));
    }

    #[test]
    fn the_tree_is_what_serde_json_parses() {
        for text in [
            r#"{"b":1,"a":[true,false,null,-5,18446744073709551615,1.5,1e300,0.1,-0.0]}"#,
            r#"{"dup":1,"x":{"k":"\u00e9\"\\"},"dup":2,"dup":{"z":[]}}"#,
            r#"[{"a":"\ud83d\ude00"},"s",12345678901234567890]"#,
            r#""lone""#,
            "1e400",
            r#"{"a":1,}"#,
            "  [1, 2 ,3]  ",
        ] {
            let ours = parse(text).map(Node::into_value).map_err(|e| e.to_string());
            let theirs = serde_json::from_str::<serde_json::Value>(text).map_err(|e| e.to_string());
            assert_eq!(ours, theirs, "{text}");
        }
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
                    if json_tree::starts_escape(bytes, i) {
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

    /// The repair made while parsing gives what the copy-and-reparse path gives.
    fn same_as_repair_then_parse(text: &str) -> Result<(), proptest::test_runner::TestCaseError> {
        let (made_in_place, made_copied) = (Made::new(), Made::new());
        let in_place = parse_lenient_in_place(text, &made_in_place);
        let copied = parse_lenient(text, &made_copied);
        proptest::prop_assert_eq!(in_place, copied, "{:?}", text);
        Ok(())
    }

    #[test]
    fn in_place_repair_on_hand_picked_texts() {
        for text in [
            r#""actual_action":"Quarantined","file":{"folder":"C:\Users\Admin\Downloads","name":"a.exe"},"sep_installed":true}"#,
            "{\"a\":\"C:\\x\",\"b\":\"\\u00e9\\ud83d\\ude00\",\"c\":\"\\ud83d\"} tail \\q \"x\\y\u{1}\"",
            "{\"a\":\"C:\\x\",\"b\":\"\\u00e9\\ud83d\\ude00\"} tail \\q \"x\\y\u{1}\"",
            "{\"tab\":\"a\tb\u{1f}\",\"n\":[1,-2,0.5,-0,1e2]}",
            r#"{"end":"x\"#,
            r#""lone""#,
            r#""a":1,}"#,
            "  {\"a\":{}}  ",
            "[1,2]",
            "",
        ] {
            same_as_repair_then_parse(text).unwrap();
        }
        // That one is repaired in place, not by the fallback.
        assert!(json_tree::parse_lenient_first(r#""f":"C:\Users","g":1} rest"#, true).is_some());
        let made = Made::new();
        let (value, repairs) =
            parse_lenient_in_place(r#""f":"C:\Users","g":1} rest"#, &made).unwrap();
        assert_eq!(value.get("f").and_then(Node::as_str), Some(r"C:\Users"));
        assert!(repairs.added_opening_brace);
        assert_eq!(repairs.invalid_escapes, 1);
        assert_eq!(repairs.trailing.as_deref(), Some("rest"));
    }

    /// Skipping the strict parse of braceless text changes nothing: whenever the text may
    /// not be one string, the strict parse fails.
    fn one_string_check_only_skips_failures(
        text: &str,
    ) -> Result<(), proptest::test_runner::TestCaseError> {
        let text = text.trim();
        if text.starts_with('"') && !may_be_one_string(text) {
            proptest::prop_assert!(parse(text).is_err(), "{:?} parsed", text);
        }
        Ok(())
    }

    #[test]
    fn one_string_check_on_hand_picked_texts() {
        for (text, may) in [
            (r#""lone""#, true),
            (r#""a \" quote \\ and \u00e9""#, true),
            (r#""a":1"#, false),
            (r#""a\\":1"#, false),
            (r#""x" "#, true),
            (r#""x"y"#, false),
            (r#""unterminated"#, true),
            (r#""ends in a backslash\"#, true),
            ("\"", true),
        ] {
            assert_eq!(may_be_one_string(text.trim()), may, "{text:?}");
            one_string_check_only_skips_failures(text).unwrap();
        }
        assert!(parse(r#""a \" quote""#).is_ok());
    }

    proptest::proptest! {
        #[test]
        fn one_string_check_matches_a_strict_parse(
            text in "\"[\"\\\\a-zu0-9:,{} \\x00-\\x1f é]{0,40}"
        ) {
            one_string_check_only_skips_failures(&text)?;
        }

        #[test]
        fn in_place_repair_matches_repair_then_parse(
            soup in "[\"\\\\a-zU0-9u:{},\\[\\] \\x00-\\x1f é]{0,60}"
        ) {
            same_as_repair_then_parse(&soup)?;
        }

        #[test]
        fn in_place_repair_of_symantec_shaped_values(
            junk in proptest::collection::vec(
                "([a-z ]|\\\\[A-Za-z\"\\\\/]|\\\\u[0-9a-fA-FdD]{4}|[\\x00-\\x1f]|é)+", 3),
            braceless in proptest::bool::ANY,
            tail in "( [a-z=\"\\\\\\x01]{0,8})?",
        ) {
            let body = format!(
                r#""a":"{}","o":{{"b":"{}","n":[1,2.5,-3]}},"c":"{}"}}{}"#,
                junk[0], junk[1], junk[2], tail
            );
            let text = if braceless { body } else { format!("{{{body}") };
            same_as_repair_then_parse(&text)?;
        }
    }

    #[test]
    fn deep_nesting_is_an_error_not_a_crash() {
        let deep = "[".repeat(100_000);
        assert!(parse(&deep).is_err());
        assert!(parse_lenient(&deep, &Made::new()).is_err());
        assert!(parse_lenient_in_place(&deep, &Made::new()).is_err());
        assert!(parse_lenient_in_place(&"\"a\":{".repeat(100_000), &Made::new()).is_err());
        assert!(parse_members(&"{\"a\":".repeat(100_000), &Made::new()).is_err());
    }
}
