//! JSON parsed straight into the event tree, for the common case: no visitor calls per
//! value, and each string found with the SIMD scan the writer uses.
//!
//! It accepts a subset of what serde_json accepts and builds exactly the tree serde_json's
//! `Deserialize` for [`Node`] builds (the same values, the same borrowed strings, the last
//! of duplicate keys). Anything else (an error, a number it does not read itself, deep
//! nesting) gives `None`, and the caller parses with serde_json, which then gives the same
//! value or the same error message as before this parser existed.

use std::borrow::Cow;

use crate::event::node::{next_json_special, Member};
use crate::event::{Node, Object};

/// Deeper nesting is left to serde_json: its limit (128) turns it into an error, and this
/// parser's recursion stays well inside any thread's stack.
const MAX_DEPTH: usize = 100;

/// Integers of at most this many digits fit an `i64` whatever their digits.
const MAX_FAST_DIGITS: usize = 18;

/// The whole of `text` as one value, with only whitespace around it.
pub(crate) fn parse_whole(text: &str) -> Option<Node<'_>> {
    let mut parser = Parser::new(text);
    let value = parser.value(0)?;
    parser.skip_whitespace();
    (parser.at == text.len()).then_some(value)
}

/// The object, array or string that starts `text` (after whitespace) and the offset just
/// past it. Other values are left to serde_json, whose stream reader checks what follows
/// them.
pub(crate) fn parse_first(text: &str) -> Option<(Node<'_>, usize)> {
    let mut parser = Parser::new(text);
    parser.skip_whitespace();
    if !matches!(parser.peek()?, b'{' | b'[' | b'"') {
        return None;
    }
    let value = parser.value(0)?;
    Some((value, parser.at))
}

/// As [`parse_first`] for an object, with the repairs `json::parse_lenient` makes by
/// rewriting the text first, made here without the copy: a backslash that does not start
/// a JSON escape is a literal backslash, and a raw control character in a string is kept.
/// With `braceless`, the text is an object's members without its opening `{`.
pub(crate) fn parse_lenient_first(
    text: &str,
    braceless: bool,
) -> Option<(Node<'_>, usize, Repaired)> {
    let mut parser = Parser::new(text);
    parser.lenient = Some(Repaired::default());
    parser.skip_whitespace();
    let value = if braceless {
        parser.object_members(1)?
    } else {
        if parser.peek()? != b'{' {
            return None;
        }
        parser.value(0)?
    };
    Some((value, parser.at, parser.lenient.unwrap_or_default()))
}

struct Parser<'t> {
    text: &'t str,
    bytes: &'t [u8],
    at: usize,
    /// Symantec's repairs, made while parsing (see [`parse_lenient_first`]).
    lenient: Option<Repaired>,
    /// The members of the objects being parsed, innermost last: each object takes its own
    /// from the top when it closes, in one allocation of its exact size, where a vector per
    /// object grew 8, 16, 32 and was then copied into members.
    members: Vec<Member<'t>>,
    /// The same for arrays' items.
    items: Vec<Node<'t>>,
}

/// What a lenient parse repaired inside strings.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Repaired {
    pub invalid_escapes: usize,
    pub raw_control_chars: usize,
}

impl<'t> Parser<'t> {
    fn new(text: &'t str) -> Self {
        Parser {
            text,
            bytes: text.as_bytes(),
            at: 0,
            lenient: None,
            members: Vec::with_capacity(32),
            items: Vec::new(),
        }
    }

    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.at).copied()
    }

    fn skip_whitespace(&mut self) {
        while let Some(b' ' | b'\n' | b'\t' | b'\r') = self.peek() {
            self.at += 1;
        }
    }

    // Inlined into the loops that store its result: returned from a call, the node (or
    // string) was written with word stores and moved with sixteen-byte loads the CPU could
    // not forward from them (two fifths of the object loop's `perf` samples).
    #[inline(always)]
    fn value(&mut self, depth: usize) -> Option<Node<'t>> {
        self.skip_whitespace();
        match self.peek()? {
            b'{' => self.object(depth + 1),
            b'[' => self.array(depth + 1),
            b'"' => self.string().map(Node::Str),
            b't' => self.literal(b"true", Node::Bool(true)),
            b'f' => self.literal(b"false", Node::Bool(false)),
            b'n' => self.literal(b"null", Node::Null),
            b'-' | b'0'..=b'9' => self.number(),
            _ => None,
        }
    }

    fn literal(&mut self, word: &[u8], value: Node<'t>) -> Option<Node<'t>> {
        if self.bytes[self.at..].starts_with(word) {
            self.at += word.len();
            Some(value)
        } else {
            None
        }
    }

    fn object(&mut self, depth: usize) -> Option<Node<'t>> {
        if depth > MAX_DEPTH {
            return None;
        }
        self.at += 1;
        self.object_members(depth)
    }

    /// An object's members and its closing `}`, after the opening `{`.
    fn object_members(&mut self, depth: usize) -> Option<Node<'t>> {
        let mark = self.members.len();
        let object = self.members_until_close(depth);
        // Also on failure: the caller falls back to serde_json, and an enclosing object's
        // members must not include this one's.
        let members = self.members.split_off(mark);
        object?;
        Some(Node::Object(Object::from_unsorted(members)))
    }

    /// Pushes an object's members onto `self.members` up to its closing `}`.
    fn members_until_close(&mut self, depth: usize) -> Option<()> {
        self.until_close(b'}', |parser| {
            parser.skip_whitespace();
            if parser.peek()? != b'"' {
                return None;
            }
            let key = parser.string()?;
            parser.skip_whitespace();
            if parser.peek()? != b':' {
                return None;
            }
            parser.at += 1;
            parser.skip_whitespace();
            // A string value (most are) is stored from its own branch: through the join
            // with the other kinds, every node was copied once more on the stack, by a
            // sixteen-byte load the CPU could not forward from the stores before it.
            let value = if parser.peek()? == b'"' {
                Node::Str(parser.string()?)
            } else {
                parser.value(depth)?
            };
            Member::push_onto(&mut parser.members, key, value);
            Some(())
        })
    }

    fn array(&mut self, depth: usize) -> Option<Node<'t>> {
        if depth > MAX_DEPTH {
            return None;
        }
        self.at += 1;
        let mark = self.items.len();
        let array = self.items_until_close(depth);
        let items = self.items.split_off(mark);
        array?;
        Some(Node::Array(items))
    }

    /// Pushes an array's items onto `self.items` up to its closing `]`.
    fn items_until_close(&mut self, depth: usize) -> Option<()> {
        self.until_close(b']', |parser| {
            let item = parser.value(depth)?;
            parser.items.push(item);
            Some(())
        })
    }

    /// Elements separated by commas, each read by `element`, up to and past `close`
    /// (after the opening bracket).
    #[inline(always)]
    fn until_close(
        &mut self,
        close: u8,
        mut element: impl FnMut(&mut Self) -> Option<()>,
    ) -> Option<()> {
        self.skip_whitespace();
        if self.peek()? == close {
            self.at += 1;
            return Some(());
        }
        loop {
            element(self)?;
            self.skip_whitespace();
            match self.peek()? {
                b',' => self.at += 1,
                b if b == close => {
                    self.at += 1;
                    return Some(());
                }
                _ => return None,
            }
        }
    }

    /// The string whose opening quote is at `self.at`: borrowed when it has no escapes.
    /// Inlined for the reason [`Self::value`] is.
    #[inline(always)]
    fn string(&mut self) -> Option<Cow<'t, str>> {
        let start = self.at + 1;
        let at = next_json_special(self.bytes, start)?;
        match self.bytes[at] {
            b'"' => {
                self.at = at + 1;
                Some(Cow::Borrowed(&self.text[start..at]))
            }
            b'\\' => self.escaped_string(start, at),
            // A raw control character: serde_json's error, kept when lenient.
            _ if self.lenient.is_some() => self.escaped_string(start, at),
            _ => None,
        }
    }

    fn escaped_string(&mut self, start: usize, first_escape: usize) -> Option<Cow<'t, str>> {
        let bytes = self.bytes;
        let mut out = String::with_capacity(first_escape - start + 16);
        let mut copied = start;
        let mut at = first_escape;
        loop {
            // Every special byte is ASCII, so `copied` and `at` are character boundaries.
            out.push_str(&self.text[copied..at]);
            match bytes[at] {
                b'"' => {
                    self.at = at + 1;
                    return Some(Cow::Owned(out));
                }
                b'\\' if !starts_escape(bytes, at) && self.lenient.is_some() => {
                    out.push('\\');
                    at += 1;
                    copied = at;
                    if let Some(repaired) = &mut self.lenient {
                        repaired.invalid_escapes += 1;
                    }
                }
                b'\\' => {
                    let (decoded, length) = match *bytes.get(at + 1)? {
                        b'"' => ('"', 2),
                        b'\\' => ('\\', 2),
                        b'/' => ('/', 2),
                        b'b' => ('\u{8}', 2),
                        b'f' => ('\u{c}', 2),
                        b'n' => ('\n', 2),
                        b'r' => ('\r', 2),
                        b't' => ('\t', 2),
                        b'u' => unicode_escape(bytes, at)?,
                        _ => return None,
                    };
                    out.push(decoded);
                    at += length;
                    copied = at;
                }
                control => {
                    let repaired = self.lenient.as_mut()?;
                    repaired.raw_control_chars += 1;
                    out.push(char::from(control));
                    at += 1;
                    copied = at;
                }
            }
            at = next_json_special(bytes, at)?;
        }
    }

    /// Plain integers are read here; any other number (fraction, exponent, `-0`, leading
    /// zeros, more than 18 digits) is handed to serde_json on its own, so its value is
    /// exactly serde_json's.
    fn number(&mut self) -> Option<Node<'t>> {
        let start = self.at;
        let negative = self.bytes[start] == b'-';
        let digits = start + usize::from(negative);
        let mut end = digits;
        let mut value: u64 = 0;
        while let Some(&digit @ b'0'..=b'9') = self.bytes.get(end) {
            if end - digits == MAX_FAST_DIGITS {
                return self.number_by_serde(start);
            }
            value = value * 10 + u64::from(digit - b'0');
            end += 1;
        }
        let no_digits = end == digits;
        let leading_zero = !no_digits && self.bytes[digits] == b'0' && end - digits > 1;
        let fraction_or_exponent = matches!(self.bytes.get(end), Some(b'.' | b'e' | b'E'));
        let minus_zero = negative && value == 0;
        if no_digits || leading_zero || fraction_or_exponent || minus_zero {
            return self.number_by_serde(start);
        }
        self.at = end;
        Some(if negative {
            Node::Int(-(value as i64))
        } else {
            Node::UInt(value)
        })
    }

    /// The longest run of number characters at `start`, parsed by serde_json. When that
    /// run is a valid number, serde_json reading the whole text stops at its end too.
    fn number_by_serde(&mut self, start: usize) -> Option<Node<'t>> {
        let length = self.bytes[start..]
            .iter()
            .position(|b| !matches!(b, b'0'..=b'9' | b'-' | b'+' | b'.' | b'e' | b'E'))
            .unwrap_or(self.bytes.len() - start);
        let end = start + length;
        let value = serde_json::from_str::<Node>(&self.text[start..end]).ok()?;
        self.at = end;
        Some(value)
    }
}

/// The character a `\u` escape at `at` stands for, and the escape's length (a surrogate
/// pair is two escapes). A lone surrogate gives `None`, as it is serde_json's error.
fn unicode_escape(bytes: &[u8], at: usize) -> Option<(char, usize)> {
    let first = hex4(bytes, at + 2)?;
    match first {
        0xD800..=0xDBFF => {
            if bytes.get(at + 6..at + 8)? != b"\\u" {
                return None;
            }
            let second = hex4(bytes, at + 8)?;
            if !(0xDC00..=0xDFFF).contains(&second) {
                return None;
            }
            let code = 0x10000 + ((first - 0xD800) << 10) + (second - 0xDC00);
            Some((char::from_u32(code)?, 12))
        }
        0xDC00..=0xDFFF => None,
        _ => Some((char::from_u32(first)?, 6)),
    }
}

/// Whether the backslash at `at` starts an escape JSON allows (a `\u` with four hex
/// digits counts, even a lone surrogate, which then fails the parse as it does serde_json's).
pub(crate) fn starts_escape(bytes: &[u8], at: usize) -> bool {
    match bytes.get(at + 1) {
        Some(b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't') => true,
        Some(b'u') => hex4(bytes, at + 2).is_some(),
        _ => false,
    }
}

fn hex4(bytes: &[u8], at: usize) -> Option<u32> {
    bytes.get(at..at + 4)?.iter().try_fold(0u32, |code, &b| {
        Some(code << 4 | char::from(b).to_digit(16)?)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// What serde_json's `Deserialize` builds: the reference this parser must equal.
    fn by_serde(text: &str) -> Option<Node<'_>> {
        serde_json::from_str(text).ok()
    }

    /// Which keys and strings borrow from the text, in tree order.
    fn borrowed(node: Node) -> Vec<bool> {
        fn walk(node: Node, out: &mut Vec<bool>) {
            match node {
                Node::Str(s) => out.push(matches!(s, Cow::Borrowed(_))),
                Node::Array(items) => items.into_iter().for_each(|i| walk(i, out)),
                Node::Object(obj) => obj.into_members().for_each(|(key, value)| {
                    out.push(matches!(key, Cow::Borrowed(_)));
                    walk(value, out)
                }),
                _ => {}
            }
        }
        let mut out = Vec::new();
        walk(node, &mut out);
        out
    }

    /// Whatever this parser accepts, serde_json accepts too, with the same tree and the
    /// same strings borrowed.
    fn agrees(text: &str) -> Result<(), TestCaseError> {
        if let Some(ours) = parse_whole(text) {
            let theirs = by_serde(text);
            prop_assert_eq!(Some(&ours), theirs.as_ref(), "{:?}", text);
            prop_assert_eq!(borrowed(ours), borrowed(theirs.unwrap()));
        }
        if let Some((ours, end)) = parse_first(text) {
            let mut stream = serde_json::Deserializer::from_str(text).into_iter::<Node>();
            let theirs = stream.next().and_then(Result::ok);
            prop_assert_eq!(Some(&ours), theirs.as_ref(), "{:?}", text);
            prop_assert_eq!(end, stream.byte_offset(), "{:?}", text);
        }
        Ok(())
    }

    #[test]
    fn hand_picked_texts() {
        for text in [
            r#"{"b":1,"a":[true,false,null,-5,18446744073709551615,1.5,1e300,0.1,-0.0]}"#,
            r#"{"dup":1,"x":{"k":"\u00e9\"\\\/\b\f\n\r\t"},"dup":2,"dup":{"z":[]}}"#,
            r#"[{"a":"\ud83d\ude00"},"s",12345678901234567890,123456789012345678,-123456789012345678]"#,
            r#""lone""#,
            r#"{"a":"\ud83d"}"#,
            r#"{"a":"\udc00x"}"#,
            r#"{"a":"\u00"}"#,
            r#"{"a":"\u0000"}"#,
            "{\"a\":\"\u{1}\"}",
            "1e400",
            "-0",
            "-",
            "01",
            "[1.]",
            r#"{"a":1,}"#,
            "[1,]",
            "  [1, 2 ,3]  ",
            " \t\r\n{ \"k\" : [ ] , \"e\" : { } }\n",
            "{} tail",
            "[] []",
            "tru",
            "nulls",
            "{\"a\":-}",
            "[[[[[[[[[[]]]]]]]]]]",
        ] {
            agrees(text).unwrap();
        }
        assert!(parse_whole(r#"{"a":1,"b":[2,"c"]}"#).is_some());
        assert!(parse_first(r#"{"a":1} tail"#).is_some_and(|(_, end)| end == 7));
    }

    #[test]
    fn deep_nesting_is_left_to_serde_json() {
        let deep = format!("{}{}", "[".repeat(MAX_DEPTH + 1), "]".repeat(MAX_DEPTH + 1));
        assert!(parse_whole(&deep).is_none());
        let shallow = format!("{}{}", "[".repeat(MAX_DEPTH), "]".repeat(MAX_DEPTH));
        assert!(parse_whole(&shallow).is_some());
        assert!(parse_whole(&"[".repeat(100_000)).is_none());
    }

    fn json_value() -> impl Strategy<Value = serde_json::Value> {
        use serde_json::Value;
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::from),
            any::<u64>().prop_map(Value::from),
            any::<f64>().prop_map(Value::from),
            "[a-z\"\\\\/\\x00-\\x1f é😀]{0,12}".prop_map(Value::String),
        ];
        leaf.prop_recursive(4, 48, 6, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..6).prop_map(serde_json::Value::Array),
                proptest::collection::vec(("[a-c\"\\\\é]{0,3}", inner), 0..6)
                    .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
            ]
        })
    }

    proptest! {
        #[test]
        fn valid_json_parses_as_serde_json_parses_it(value in json_value(), pretty in any::<bool>()) {
            let text = if pretty {
                serde_json::to_string_pretty(&value).unwrap()
            } else {
                serde_json::to_string(&value).unwrap()
            };
            // Valid JSON always takes this parser's path; its numbers may go to serde_json.
            let ours = parse_whole(&text).map(Node::into_value);
            prop_assert!(ours.is_some(), "{:?} ({:?})", text, value);
            prop_assert_eq!(ours, serde_json::from_str(&text).ok());
            agrees(&text)?;
        }

        #[test]
        fn any_text_parses_as_serde_json_parses_it(
            text in "[\\[\\]{}\",:0-9.eE+\\-\\\\u tfrnlsa \\x01é]{0,40}"
        ) {
            agrees(&text)?;
        }

        #[test]
        fn escapes_decode_as_serde_json_decodes_them(
            text in "\"([a-z]|\\\\[\"\\\\/bfnrtux]|\\\\u[0-9a-fA-FdD]{4}){0,8}\""
        ) {
            agrees(&text)?;
        }
    }
}
