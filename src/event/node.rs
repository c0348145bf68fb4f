//! The event tree a parse builds and the sinks write: JSON values whose keys and text can
//! borrow from the message and the grammar, objects kept as sorted vectors.
//!
//! A `serde_json::Value` tree owns every key and string (one allocation each, plus B-tree
//! nodes) and is written through serde; building, writing and freeing it were four fifths
//! of a parse (docs/performance.md). This tree writes the same bytes as serde_json writes
//! for the equivalent `Value` (sorted keys, same escaping and number forms), which
//! tests/properties.rs and the fuzz target check.

use std::borrow::Cow;

use serde_json::{Map, Number, Value};

#[derive(Clone, Debug, PartialEq)]
pub enum Node<'a> {
    Null,
    Bool(bool),
    Int(i64),
    UInt(u64),
    Float(f64),
    Str(Cow<'a, str>),
    Array(Vec<Node<'a>>),
    Object(Object<'a>),
}

/// A JSON object whose members stay sorted by key (the order serde_json's map writes).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Object<'a> {
    members: Vec<(Cow<'a, str>, Node<'a>)>,
}

impl<'a> Object<'a> {
    pub fn new() -> Self {
        Object {
            members: Vec::new(),
        }
    }

    pub fn with_capacity(capacity: usize) -> Self {
        Object {
            members: Vec::with_capacity(capacity),
        }
    }

    fn position(&self, key: &str) -> Result<usize, usize> {
        self.members.binary_search_by(|(k, _)| k.as_ref().cmp(key))
    }

    pub fn get(&self, key: &str) -> Option<&Node<'a>> {
        self.position(key).ok().map(|i| &self.members[i].1)
    }

    pub fn get_mut(&mut self, key: &str) -> Option<&mut Node<'a>> {
        match self.position(key) {
            Ok(i) => Some(&mut self.members[i].1),
            Err(_) => None,
        }
    }

    /// Sets `key` to `value`, replacing what was there.
    pub fn insert(&mut self, key: impl Into<Cow<'a, str>>, value: impl Into<Node<'a>>) {
        let key = key.into();
        let value = value.into();
        match self.position(&key) {
            Ok(i) => self.members[i].1 = value,
            Err(i) => {
                // Grow in one step to a size most event objects fit, not 4, 8, 16.
                if self.members.capacity() == 0 {
                    self.members.reserve(8);
                }
                self.members.insert(i, (key, value))
            }
        }
    }

    /// The member at `key`, first set to `make()` when absent.
    pub fn entry_or_insert_with(
        &mut self,
        key: impl Into<Cow<'a, str>>,
        make: impl FnOnce() -> Node<'a>,
    ) -> &mut Node<'a> {
        let key = key.into();
        let i = match self.position(&key) {
            Ok(i) => i,
            Err(i) => {
                if self.members.capacity() == 0 {
                    self.members.reserve(8);
                }
                self.members.insert(i, (key, make()));
                i
            }
        };
        &mut self.members[i].1
    }

    pub fn remove(&mut self, key: &str) -> Option<Node<'a>> {
        match self.position(key) {
            Ok(i) => Some(self.members.remove(i).1),
            Err(_) => None,
        }
    }

    pub fn contains_key(&self, key: &str) -> bool {
        self.position(key).is_ok()
    }

    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    /// An owned object from a serde_json map (already in key order).
    fn from_map(map: Map<String, Value>) -> Object<'static> {
        Object {
            members: map
                .into_iter()
                .map(|(k, v)| (Cow::Owned(k), Node::from(v)))
                .collect(),
        }
    }

    pub fn into_members(self) -> impl Iterator<Item = (Cow<'a, str>, Node<'a>)> {
        self.members.into_iter()
    }

    pub fn into_value(self) -> Map<String, Value> {
        self.members
            .into_iter()
            .map(|(k, v)| (k.into_owned(), v.into_value()))
            .collect()
    }

    pub fn write_json(&self, out: &mut Vec<u8>) {
        out.push(b'{');
        for (i, (key, value)) in self.members.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            write_str(out, key);
            out.push(b':');
            value.write_json(out);
        }
        out.push(b'}');
    }
}

impl<'a> FromIterator<(Cow<'a, str>, Node<'a>)> for Object<'a> {
    fn from_iter<I: IntoIterator<Item = (Cow<'a, str>, Node<'a>)>>(iter: I) -> Self {
        let mut members: Vec<_> = iter.into_iter().collect();
        // Stable, and a later duplicate wins, as repeated inserts into a map would.
        members.sort_by(|a, b| a.0.cmp(&b.0));
        let mut deduplicated: Vec<(Cow<'a, str>, Node<'a>)> = Vec::with_capacity(members.len());
        for member in members {
            match deduplicated.last_mut() {
                Some(last) if last.0 == member.0 => *last = member,
                _ => deduplicated.push(member),
            }
        }
        Object {
            members: deduplicated,
        }
    }
}

impl<'a> Node<'a> {
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Node::Str(s) => Some(s),
            _ => None,
        }
    }

    pub fn as_i64(&self) -> Option<i64> {
        match *self {
            Node::Int(n) => Some(n),
            Node::UInt(n) => i64::try_from(n).ok(),
            _ => None,
        }
    }

    pub fn as_bool(&self) -> Option<bool> {
        match *self {
            Node::Bool(b) => Some(b),
            _ => None,
        }
    }

    pub fn as_object(&self) -> Option<&Object<'a>> {
        match self {
            Node::Object(obj) => Some(obj),
            _ => None,
        }
    }

    pub fn as_array(&self) -> Option<&[Node<'a>]> {
        match self {
            Node::Array(arr) => Some(arr),
            _ => None,
        }
    }

    /// The member `key` of an object.
    pub fn get(&self, key: &str) -> Option<&Node<'a>> {
        self.as_object()?.get(key)
    }

    /// The node at a path of object keys.
    pub fn pointer<S: AsRef<str>>(&self, path: &[S]) -> Option<&Node<'a>> {
        path.iter()
            .try_fold(self, |node, key| node.get(key.as_ref()))
    }

    pub fn is_empty_object(&self) -> bool {
        matches!(self, Node::Object(obj) if obj.is_empty())
    }

    pub fn into_value(self) -> Value {
        match self {
            Node::Null => Value::Null,
            Node::Bool(b) => Value::Bool(b),
            Node::Int(n) => Value::from(n),
            Node::UInt(n) => Value::from(n),
            Node::Float(f) => Value::from(f),
            Node::Str(s) => Value::String(s.into_owned()),
            Node::Array(arr) => Value::Array(arr.into_iter().map(Node::into_value).collect()),
            Node::Object(obj) => Value::Object(obj.into_value()),
        }
    }

    /// Appends the compact JSON text of this node.
    pub fn write_json(&self, out: &mut Vec<u8>) {
        match self {
            Node::Null => out.extend_from_slice(b"null"),
            Node::Bool(true) => out.extend_from_slice(b"true"),
            Node::Bool(false) => out.extend_from_slice(b"false"),
            Node::Int(n) => out.extend_from_slice(itoa::Buffer::new().format(*n).as_bytes()),
            Node::UInt(n) => out.extend_from_slice(itoa::Buffer::new().format(*n).as_bytes()),
            Node::Float(f) => write_f64(out, *f),
            Node::Str(s) => write_str(out, s),
            Node::Array(arr) => {
                out.push(b'[');
                for (i, item) in arr.iter().enumerate() {
                    if i > 0 {
                        out.push(b',');
                    }
                    item.write_json(out);
                }
                out.push(b']');
            }
            Node::Object(obj) => obj.write_json(out),
        }
    }

    pub fn to_json_vec(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(1024);
        self.write_json(&mut out);
        out
    }
}

/// As serde_json writes a float: shortest round-trip form, and `null` when not finite.
fn write_f64(out: &mut Vec<u8>, f: f64) {
    if f.is_finite() {
        out.extend_from_slice(zmij::Buffer::new().format_finite(f).as_bytes());
    } else {
        out.extend_from_slice(b"null");
    }
}

/// Bytes a JSON string must escape: control characters, `"` and `\`.
fn needs_escape(b: u8) -> bool {
    b < 0x20 || b == b'"' || b == b'\\'
}

/// Writes `s` as a JSON string with serde_json's escapes (`\"`, `\\`, `\b \f \n \r \t`,
/// `\u00XX` for other control characters; everything else as is). Runs of plain bytes are
/// found sixteen at a time and copied whole.
pub fn write_str(out: &mut Vec<u8>, s: &str) {
    let bytes = s.as_bytes();
    out.reserve(bytes.len() + 2);
    out.push(b'"');
    let mut start = 0;
    while let Some(at) = next_json_special(bytes, start) {
        out.extend_from_slice(&bytes[start..at]);
        match bytes[at] {
            b'"' => out.extend_from_slice(b"\\\""),
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            b'\t' => out.extend_from_slice(b"\\t"),
            0x08 => out.extend_from_slice(b"\\b"),
            0x0c => out.extend_from_slice(b"\\f"),
            b => {
                const HEX: &[u8; 16] = b"0123456789abcdef";
                out.extend_from_slice(b"\\u00");
                out.push(HEX[(b >> 4) as usize]);
                out.push(HEX[(b & 0xf) as usize]);
            }
        }
        start = at + 1;
    }
    out.extend_from_slice(&bytes[start..]);
    out.push(b'"');
}

/// The index of the first byte at or after `from` that a JSON string must escape (a quote,
/// a backslash or a control character).
pub(crate) fn next_json_special(bytes: &[u8], from: usize) -> Option<usize> {
    let mut i = from;
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::{
            _mm_cmpeq_epi8, _mm_loadu_si128, _mm_min_epu8, _mm_movemask_epi8, _mm_or_si128,
            _mm_set1_epi8,
        };
        // SAFETY: SSE2 is part of every x86_64 target, and each load reads the sixteen bytes
        // at i..i + 16, which the loop condition keeps inside `bytes`.
        unsafe {
            let quote = _mm_set1_epi8(b'"' as i8);
            let backslash = _mm_set1_epi8(b'\\' as i8);
            let control_max = _mm_set1_epi8(0x1f);
            while i + 16 <= bytes.len() {
                let v = _mm_loadu_si128(bytes.as_ptr().add(i).cast());
                // min(v, 0x1f) == v exactly when v <= 0x1f, as unsigned bytes.
                let control = _mm_cmpeq_epi8(_mm_min_epu8(v, control_max), v);
                let special = _mm_or_si128(_mm_cmpeq_epi8(v, quote), _mm_cmpeq_epi8(v, backslash));
                let mask = _mm_movemask_epi8(_mm_or_si128(control, special)) as u32;
                if mask != 0 {
                    return Some(i + mask.trailing_zeros() as usize);
                }
                i += 16;
            }
            // The last few bytes (most keys and short values are only these): the same
            // test on a copy padded with a plain byte.
            if i < bytes.len() {
                let mut block = [b'a'; 16];
                block[..bytes.len() - i].copy_from_slice(&bytes[i..]);
                let v = _mm_loadu_si128(block.as_ptr().cast());
                let control = _mm_cmpeq_epi8(_mm_min_epu8(v, control_max), v);
                let special = _mm_or_si128(_mm_cmpeq_epi8(v, quote), _mm_cmpeq_epi8(v, backslash));
                let mask = _mm_movemask_epi8(_mm_or_si128(control, special)) as u32;
                return (mask != 0).then(|| i + mask.trailing_zeros() as usize);
            }
            return None;
        }
    }
    #[allow(unreachable_code)]
    bytes[i..]
        .iter()
        .position(|&b| needs_escape(b))
        .map(|p| i + p)
}

impl From<Value> for Node<'_> {
    fn from(value: Value) -> Self {
        match value {
            Value::Null => Node::Null,
            Value::Bool(b) => Node::Bool(b),
            Value::Number(n) => Node::from(n),
            Value::String(s) => Node::Str(Cow::Owned(s)),
            Value::Array(arr) => Node::Array(arr.into_iter().map(Node::from).collect()),
            Value::Object(obj) => Node::Object(Object::from_map(obj)),
        }
    }
}

impl From<Number> for Node<'_> {
    fn from(n: Number) -> Self {
        if let Some(u) = n.as_u64() {
            Node::UInt(u)
        } else if let Some(i) = n.as_i64() {
            Node::Int(i)
        } else {
            Node::Float(n.as_f64().unwrap_or(f64::NAN))
        }
    }
}

impl<'a> From<&'a str> for Node<'a> {
    fn from(s: &'a str) -> Self {
        Node::Str(Cow::Borrowed(s))
    }
}

impl From<String> for Node<'_> {
    fn from(s: String) -> Self {
        Node::Str(Cow::Owned(s))
    }
}

impl<'a> From<Cow<'a, str>> for Node<'a> {
    fn from(s: Cow<'a, str>) -> Self {
        Node::Str(s)
    }
}

impl From<bool> for Node<'_> {
    fn from(b: bool) -> Self {
        Node::Bool(b)
    }
}

impl From<i64> for Node<'_> {
    fn from(n: i64) -> Self {
        if n >= 0 {
            Node::UInt(n as u64)
        } else {
            Node::Int(n)
        }
    }
}

macro_rules! from_unsigned {
    ($($t:ty),*) => {$(
        impl From<$t> for Node<'_> {
            fn from(n: $t) -> Self {
                Node::UInt(n as u64)
            }
        }
    )*};
}

from_unsigned!(u8, u32, u64, usize);

impl<'a> From<Object<'a>> for Node<'a> {
    fn from(obj: Object<'a>) -> Self {
        Node::Object(obj)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn same_bytes(value: Value) {
        let node = Node::from(value.clone());
        assert_eq!(
            String::from_utf8(node.to_json_vec()).unwrap(),
            serde_json::to_string(&value).unwrap()
        );
        assert_eq!(node.into_value(), value);
    }

    #[test]
    fn writes_what_serde_json_writes() {
        same_bytes(json!({
            "z": 1, "a": [true, false, null, -5, 18446744073709551615u64, 1.5, 1e300, 0.1],
            "m": {"b": "x", "a": ""}, "é": "ü\u{1F600}"
        }));
        let mut every_byte = String::new();
        for c in 0u8..=0x7f {
            every_byte.push(c as char);
        }
        every_byte.push_str("\u{80}\u{7ff}\u{800}\u{ffff}\u{10ffff}");
        same_bytes(json!({ "every": every_byte, "key\n\"": "\\\"\\" }));
        // Escapes at every position relative to the sixteen-byte blocks.
        for len in 0..40 {
            for at in 0..len {
                for special in ['"', '\\', '\n', '\u{1}', '\u{1f}', ' ', '\u{7f}', 'é'] {
                    let mut s: String = "a".repeat(len);
                    s.replace_range(at..at + 1, &special.to_string());
                    same_bytes(Value::String(s));
                }
            }
        }
    }

    #[test]
    fn objects_stay_sorted_and_replace() {
        let mut obj = Object::new();
        obj.insert("b", 1i64);
        obj.insert("a", "x");
        obj.insert("c", Node::Null);
        obj.insert("b", 2i64);
        assert_eq!(
            Node::Object(obj.clone()).into_value(),
            json!({"a": "x", "b": 2, "c": null})
        );
        assert_eq!(obj.remove("a"), Some(Node::from("x")));
        assert!(!obj.contains_key("a"));
        let collected: Object = [
            (Cow::Borrowed("y"), Node::from(1i64)),
            (Cow::Borrowed("x"), Node::from(2i64)),
            (Cow::Borrowed("y"), Node::from(3i64)),
        ]
        .into_iter()
        .collect();
        assert_eq!(
            Node::Object(collected).into_value(),
            json!({"x": 2, "y": 3})
        );
    }

    #[test]
    fn numbers_keep_their_kind() {
        assert_eq!(Node::from(json!(-1)), Node::Int(-1));
        assert_eq!(Node::from(json!(7)), Node::UInt(7));
        assert_eq!(Node::from(json!(2.5)), Node::Float(2.5));
        assert_eq!(Node::from(-3i64).as_i64(), Some(-3));
        assert_eq!(Node::UInt(u64::MAX).as_i64(), None);
        same_bytes(json!([f64::MIN_POSITIVE, -0.0, 123456789.0]));
    }
}
