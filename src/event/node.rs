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

// A whole-word tag: with the default byte tag, moving a node (every transform's result, every
// member pushed) copied bytes 1 to 15 in pieces of 8, 4, 2 and 1, and the 4-byte piece
// straddled the 8-byte store that had written the payload; such a load cannot be forwarded
// from the store buffer and stalled (a quarter of the mapping loop's perf samples).
#[derive(Clone, Debug, PartialEq)]
#[repr(u64)]
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

// The wider tag costs no space: the payload's alignment padded it to a word already, and
// `Option<Node>` still uses the tag's spare values.
const _: () = assert!(std::mem::size_of::<Option<Node>>() == 32);

/// A JSON object whose members stay sorted by key (the order serde_json's map writes).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Object<'a> {
    members: Vec<Member<'a>>,
}

/// A key with its [`key_prefix`], kept so most comparisons are one integer compare.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Member<'a> {
    prefix: u64,
    key: Cow<'a, str>,
    value: Node<'a>,
}

impl<'a> Member<'a> {
    pub(crate) fn new(key: Cow<'a, str>, value: Node<'a>) -> Self {
        Member {
            prefix: key_prefix(key.as_bytes()),
            key,
            value,
        }
    }

    /// `members.push(Member::new(key, value))`, stored field by field
    /// ([`crate::event::push_fields`]; `push` cost three quarters of `push_sorted`'s
    /// samples). The same for `Vec::insert` measured slower: inserts are rarer, and the
    /// code grew.
    #[inline(always)]
    pub(crate) fn push_onto(members: &mut Vec<Member<'a>>, key: Cow<'a, str>, value: Node<'a>) {
        crate::event::push_fields!(
            members,
            Member {
                prefix: key_prefix(key.as_bytes()),
                key: key,
                value: value,
            }
        );
    }

    fn order(&self, other: &Member<'_>) -> std::cmp::Ordering {
        compare_keys(self.prefix, &self.key, other.prefix, &other.key)
    }
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

    // Inlined, with the search out of line: most lookups end at the last member, and the
    // call cost more than that comparison.
    #[inline(always)]
    fn position(&self, key: &str) -> Result<usize, usize> {
        let prefix = key_prefix(key.as_bytes());
        // The last member first: objects are mostly built in key order (grammar slots are
        // numbered so), which makes an insert an append.
        let Some(last) = self.members.last() else {
            return Err(0);
        };
        match compare_keys(last.prefix, &last.key, prefix, key) {
            std::cmp::Ordering::Less => Err(self.members.len()),
            std::cmp::Ordering::Equal => Ok(self.members.len() - 1),
            std::cmp::Ordering::Greater => self.search_before_last(prefix, key),
        }
    }

    #[inline(never)]
    fn search_before_last(&self, prefix: u64, key: &str) -> Result<usize, usize> {
        self.members[..self.members.len() - 1]
            .binary_search_by(|m| compare_keys(m.prefix, &m.key, prefix, key))
    }

    pub fn get(&self, key: &str) -> Option<&Node<'a>> {
        self.position(key).ok().map(|i| &self.members[i].value)
    }

    pub fn get_mut(&mut self, key: &str) -> Option<&mut Node<'a>> {
        match self.position(key) {
            Ok(i) => Some(&mut self.members[i].value),
            Err(_) => None,
        }
    }

    /// Sets `key` to `value`, replacing what was there.
    pub fn insert(&mut self, key: impl Into<Cow<'a, str>>, value: impl Into<Node<'a>>) {
        let key = key.into();
        let value = value.into();
        match self.position(&key) {
            Ok(i) => self.members[i].value = value,
            Err(i) => {
                self.reserve_first();
                self.members.insert(i, Member::new(key, value))
            }
        }
    }

    /// Before an object's first member: grow in one step to a size most event objects fit,
    /// not 4, 8, 16.
    #[inline(always)]
    fn reserve_first(&mut self) {
        if self.members.capacity() == 0 {
            self.members.reserve(8);
        }
    }

    /// Appends `key`, which must sort after every key already here (checked in debug
    /// builds). For objects whose keys are fixed and written in order (the `sluice` object,
    /// `received`, `syslog`, `metadata.product`): no search, where `insert` pays one for each
    /// of the two dozen such members in every event.
    #[inline]
    pub fn push_sorted(&mut self, key: impl Into<Cow<'a, str>>, value: impl Into<Node<'a>>) {
        let key = key.into();
        debug_assert!(
            self.members.last().is_none_or(|last| compare_keys(
                last.prefix,
                &last.key,
                key_prefix(key.as_bytes()),
                &key
            )
            .is_lt()),
            "push_sorted: {key:?} does not sort after the last key",
        );
        self.reserve_first();
        Member::push_onto(&mut self.members, key, value.into());
    }

    /// The last member's key and value: where a run of appends to one array continues.
    #[inline]
    pub(crate) fn last_mut(&mut self) -> Option<(&str, &mut Node<'a>)> {
        self.members.last_mut().map(|m| (&*m.key, &mut m.value))
    }

    /// Adds the members of `other`, whose keys are in order (as [`Object::push_sorted`]
    /// keeps them), in one merge pass; a key in both takes `other`'s value. For the dozen
    /// members every event gets after mapping, which interleave with the mapped ones:
    /// inserted one at a time, each cost a search and a shift of the members after it.
    pub fn merge(&mut self, other: Object<'a>) {
        let mut new = other.members;
        if new.is_empty() {
            return;
        }
        let old = &mut self.members;
        old.reserve(new.len());
        let (n, m) = (old.len(), new.len());
        // From the back, into the room just reserved after the old members: each member
        // is moved at most once (and the old ones before the first new key not at all).
        // SAFETY: `base` has room for n + m members. Invariant: the old members not yet
        // placed are [0, i), the new ones [0, j), and [w, n + m) holds the merged tail;
        // w >= i + j, so a write at w - 1 never lands on a member not yet placed. An old
        // member replaced by a new one with its key is dropped and leaves one more slot of
        // room; at the end the gap [i, w) between the untouched old prefix and the tail is
        // closed. Every member is then in `old` exactly once, `new` owns none (its length
        // is set to zero before it frees its buffer), and comparing keys cannot panic.
        unsafe {
            let base = old.as_mut_ptr();
            let added = new.as_ptr();
            let (mut i, mut j, mut w) = (n, m, n + m);
            while j > 0 {
                let incoming = &*added.add(j - 1);
                if i > 0 {
                    match (*base.add(i - 1)).order(incoming) {
                        std::cmp::Ordering::Greater => {
                            i -= 1;
                            w -= 1;
                            std::ptr::copy(base.add(i), base.add(w), 1);
                            continue;
                        }
                        std::cmp::Ordering::Equal => {
                            i -= 1;
                            std::ptr::drop_in_place(base.add(i));
                        }
                        std::cmp::Ordering::Less => {}
                    }
                }
                j -= 1;
                w -= 1;
                std::ptr::copy_nonoverlapping(added.add(j), base.add(w), 1);
            }
            new.set_len(0);
            std::ptr::copy(base.add(w), base.add(i), n + m - w);
            old.set_len(i + n + m - w);
        }
    }

    /// Sets `key` to `value` only when absent (one search); true when it was set.
    pub fn insert_if_absent(&mut self, key: impl Into<Cow<'a, str>>, value: Node<'a>) -> bool {
        let key = key.into();
        match self.position(&key) {
            Ok(_) => false,
            Err(i) => {
                self.reserve_first();
                self.members.insert(i, Member::new(key, value));
                true
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
                self.reserve_first();
                self.members.insert(i, Member::new(key, make()));
                i
            }
        };
        &mut self.members[i].value
    }

    pub fn remove(&mut self, key: &str) -> Option<Node<'a>> {
        match self.position(key) {
            Ok(i) => Some(self.members.remove(i).value),
            Err(_) => None,
        }
    }

    pub fn contains_key(&self, key: &str) -> bool {
        self.position(key).is_ok()
    }

    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    /// Keeps the members for which `keep(key, value)` holds, in order.
    pub fn retain(&mut self, mut keep: impl FnMut(&str, &mut Node<'a>) -> bool) {
        self.members.retain_mut(|m| keep(&m.key, &mut m.value));
    }

    /// An owned object from a serde_json map (already in key order).
    fn from_map(map: Map<String, Value>) -> Object<'static> {
        Object {
            members: map
                .into_iter()
                .map(|(k, v)| Member::new(Cow::Owned(k), Node::from(v)))
                .collect(),
        }
    }

    pub fn into_members(self) -> impl Iterator<Item = (Cow<'a, str>, Node<'a>)> {
        self.members.into_iter().map(|m| (m.key, m.value))
    }

    pub fn into_value(self) -> Map<String, Value> {
        self.members
            .into_iter()
            .map(|m| (m.key.into_owned(), m.value.into_value()))
            .collect()
    }

    pub fn write_json(&self, out: &mut Vec<u8>) {
        out.push(b'{');
        for (i, Member { key, value, .. }) in self.members.iter().enumerate() {
            write_key(out, key, i > 0);
            // Most values are strings: written here, not through a call per value.
            match value {
                Node::Str(s) => write_str(out, s),
                _ => value.write_json(out),
            }
        }
        out.push(b'}');
    }

    /// [`Object::write_json`], dropping each member as soon as it is written: one walk of
    /// the tree instead of a walk to write it and another to free it.
    pub fn into_json(self, out: &mut Vec<u8>) {
        let mut members = std::mem::ManuallyDrop::new(self.members);
        // SAFETY: the length is zero before the first member is dropped, so a panic (a
        // reservation overflowing) leaks the members left instead of dropping any twice.
        // Each member is written in place, then its key and what its value owns are dropped
        // once; the vector, empty, then frees only its buffer.
        unsafe {
            let count = members.len();
            members.set_len(0);
            let base = members.as_mut_ptr();
            out.push(b'{');
            for i in 0..count {
                let member = &mut *base.add(i);
                write_key(out, &member.key, i > 0);
                // Strings written here, not through a call, as `write_json` does.
                match &mut member.value {
                    Node::Str(s) => {
                        write_str(out, s);
                        std::ptr::drop_in_place(s);
                    }
                    value => value.write_json_in_place(out),
                }
                std::ptr::drop_in_place(&mut member.key);
            }
            out.push(b'}');
            std::mem::ManuallyDrop::drop(&mut members);
        }
    }
}

/// A key's first eight bytes as a big-endian number, zero-padded: two keys whose prefixes
/// differ compare as their prefixes do, so most comparisons are one integer compare (keys
/// are short, and comparing them was a tenth of building an event).
#[inline]
pub(crate) fn key_prefix(key: &[u8]) -> u64 {
    let n = key.len();
    if let Some(head) = key.first_chunk::<8>() {
        return u64::from_be_bytes(*head);
    }
    if n >= 4 {
        // Two overlapping four-byte loads; the overlap ORs equal bytes onto each other.
        let first = u32::from_be_bytes(key[..4].try_into().expect("four bytes")) as u64;
        let last = u32::from_be_bytes(key[n - 4..].try_into().expect("four bytes")) as u64;
        return first << 32 | last << (8 * (8 - n));
    }
    let mut prefix = 0u64;
    for (i, &b) in key.iter().enumerate() {
        prefix |= (b as u64) << (56 - 8 * i);
    }
    prefix
}

/// `a.cmp(b)`, given both keys' [`key_prefix`]es.
#[inline]
fn compare_keys(a_prefix: u64, a: &str, b_prefix: u64, b: &str) -> std::cmp::Ordering {
    a_prefix.cmp(&b_prefix).then_with(|| {
        // Equal prefixes of keys no longer than eight bytes: the prefixes held all of both
        // (the shorter one zero-padded), so only the lengths can differ. This spares a
        // `memcmp` for every exact match of a short key.
        if a.len() <= 8 && b.len() <= 8 {
            a.len().cmp(&b.len())
        } else {
            a.as_bytes().cmp(b.as_bytes())
        }
    })
}

impl<'a> FromIterator<(Cow<'a, str>, Node<'a>)> for Object<'a> {
    fn from_iter<I: IntoIterator<Item = (Cow<'a, str>, Node<'a>)>>(iter: I) -> Self {
        Object::from_members(iter.into_iter().collect())
    }
}

impl<'a> Object<'a> {
    /// Sorts `members` by key; of repeated keys the last one wins, as repeated inserts into
    /// a map would (and as serde_json keeps the last of a JSON object's duplicate keys).
    fn from_members(members: Vec<(Cow<'a, str>, Node<'a>)>) -> Self {
        Object::from_unsorted(
            members
                .into_iter()
                .map(|(key, value)| Member::new(key, value))
                .collect(),
        )
    }

    /// As [`Object::from_members`], for members already paired with their key prefixes.
    pub(crate) fn from_unsorted(mut members: Vec<Member<'a>>) -> Self {
        // Most objects arrive in key order: one pass instead of a sort.
        if !members.is_sorted_by(|a, b| a.order(b).is_lt()) {
            // Stable, so repeated keys keep their order.
            members.sort_by(Member::order);
            // `dedup_by` keeps the earlier of two equal neighbours: hand it the later value.
            members.dedup_by(|later, kept| {
                let same = later.key == kept.key;
                if same {
                    std::mem::swap(&mut later.value, &mut kept.value);
                }
                same
            });
        }
        Object { members }
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

    /// [`Node::write_json`] for a node no longer needed: each part is dropped as soon as
    /// it is written (see [`Object::into_json`]).
    pub fn into_json(self, out: &mut Vec<u8>) {
        let mut node = std::mem::ManuallyDrop::new(self);
        // SAFETY: `node` is never used or dropped again.
        unsafe { node.write_json_in_place(out) }
    }

    /// Writes the node, and drops what it owns inside (its members, items and text) as it
    /// goes; the node itself is then an empty shell that must not be dropped or used.
    ///
    /// # Safety
    /// After the call the node must be forgotten: its parts are freed already.
    unsafe fn write_json_in_place(&mut self, out: &mut Vec<u8>) {
        match self {
            Node::Str(s) => {
                write_str(out, s);
                std::ptr::drop_in_place(s);
            }
            Node::Array(arr) => {
                // As in `Object::into_json`: the length is zero before any item is freed.
                let count = arr.len();
                arr.set_len(0);
                let base = arr.as_mut_ptr();
                out.push(b'[');
                for i in 0..count {
                    if i > 0 {
                        out.push(b',');
                    }
                    (*base.add(i)).write_json_in_place(out);
                }
                out.push(b']');
                std::ptr::drop_in_place(arr);
            }
            Node::Object(obj) => std::ptr::read(obj).into_json(out),
            scalar => scalar.write_json(out),
        }
    }

    /// The same value owning all its text.
    pub fn into_owned(self) -> Node<'static> {
        match self {
            Node::Null => Node::Null,
            Node::Bool(b) => Node::Bool(b),
            Node::Int(n) => Node::Int(n),
            Node::UInt(n) => Node::UInt(n),
            Node::Float(f) => Node::Float(f),
            Node::Str(s) => Node::Str(Cow::Owned(s.into_owned())),
            Node::Array(arr) => Node::Array(arr.into_iter().map(Node::into_owned).collect()),
            Node::Object(obj) => Node::Object(Object {
                members: obj
                    .members
                    .into_iter()
                    .map(|m| Member {
                        prefix: m.prefix,
                        key: Cow::Owned(m.key.into_owned()),
                        value: m.value.into_owned(),
                    })
                    .collect(),
            }),
        }
    }

    /// The same value with its text borrowed from `self` (a grammar's constants, copied
    /// into each event without allocating).
    pub fn reborrow(&self) -> Node<'_> {
        match self {
            Node::Null => Node::Null,
            Node::Bool(b) => Node::Bool(*b),
            Node::Int(n) => Node::Int(*n),
            Node::UInt(n) => Node::UInt(*n),
            Node::Float(f) => Node::Float(*f),
            Node::Str(s) => Node::Str(Cow::Borrowed(s)),
            Node::Array(arr) => Node::Array(arr.iter().map(Node::reborrow).collect()),
            Node::Object(obj) => Node::Object(Object {
                members: obj
                    .members
                    .iter()
                    .map(|m| Member {
                        prefix: m.prefix,
                        key: Cow::Borrowed(m.key.as_ref()),
                        value: m.value.reborrow(),
                    })
                    .collect(),
            }),
        }
    }

    /// The text a field condition or a text transform sees: strings as they are, numbers
    /// and booleans as JSON writes them; null, arrays and objects have none.
    pub fn scalar_text(&self) -> Option<Cow<'_, str>> {
        match self {
            Node::Str(s) => Some(Cow::Borrowed(s)),
            Node::Bool(_) | Node::Int(_) | Node::UInt(_) | Node::Float(_) => {
                let mut out = Vec::with_capacity(24);
                self.write_json(&mut out);
                Some(Cow::Owned(
                    String::from_utf8(out).expect("numbers are ASCII"),
                ))
            }
            Node::Null | Node::Array(_) | Node::Object(_) => None,
        }
    }

    pub fn is_null(&self) -> bool {
        matches!(self, Node::Null)
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
///
/// Inlined: about a hundred strings per event are short and need no escape, and a call
/// (saving the registers the long paths use) cost more than testing and copying one.
#[inline(always)]
pub fn write_str(out: &mut Vec<u8>, s: &str) {
    let bytes = s.as_bytes();
    if bytes.len() < 16 {
        if let Some(first) = write_short(out, bytes) {
            write_escaped_from(out, bytes, first);
        }
        return;
    }
    write_long(out, bytes);
}

/// Writes an object member's key with the comma before it (unless it is the first) and the
/// colon after it. A key shorter than sixteen bytes that needs no escape (nearly all of
/// them: a hundred per event) is written in one step: one reservation and one block store
/// for the separator, the quoted key and the colon, where three writes each checked the
/// capacity.
#[inline(always)]
fn write_key(out: &mut Vec<u8>, key: &str, comma: bool) {
    let bytes = key.as_bytes();
    #[cfg(target_arch = "x86_64")]
    if bytes.len() < 16 {
        use std::arch::x86_64::_mm_storeu_si128;
        let (v, lanes) = short_block(bytes);
        if special_mask(v) & lanes == 0 {
            out.reserve(20);
            let len = out.len();
            let comma = usize::from(comma);
            // SAFETY: the reservation leaves 20 bytes after `len`: the comma (written in any
            // case, and kept only when `comma` is 1: otherwise the quote overwrites it), the
            // opening quote, the sixteen-byte store (its bytes past the key are spare
            // capacity, not kept) and the quote and colon at comma + 1 + bytes.len() <= 17.
            unsafe {
                let start = out.as_mut_ptr().add(len);
                *start = b',';
                let dst = start.add(comma);
                *dst = b'"';
                _mm_storeu_si128(dst.add(1).cast(), v);
                dst.add(bytes.len() + 1)
                    .cast::<[u8; 2]>()
                    .write_unaligned(*b"\":");
                out.set_len(len + comma + bytes.len() + 3);
            }
            return;
        }
    }
    if comma {
        out.push(b',');
    }
    write_str(out, key);
    out.push(b':');
}

/// A string of sixteen bytes or more.
#[inline(never)]
fn write_long(out: &mut Vec<u8>, bytes: &[u8]) {
    match next_json_special(bytes, 0) {
        Some(first) => write_escaped_from(out, bytes, first),
        None => write_plain(out, bytes),
    }
}

/// A string whose first byte to escape is at `first`.
#[inline(never)]
fn write_escaped_from(out: &mut Vec<u8>, bytes: &[u8], first: usize) {
    out.reserve(bytes.len() + 2);
    out.push(b'"');
    out.extend_from_slice(&bytes[..first]);
    write_escaped(out, &bytes[first..]);
    out.push(b'"');
}

/// Writes a string shorter than sixteen bytes if it needs no escape; otherwise writes
/// nothing and returns the index of its first byte that does. Most keys and many values
/// are such strings: each is tested and copied as one sixteen-byte block, with no call to
/// memcpy (two of those, for a string this short, cost more than the rest).
#[inline(always)]
fn write_short(out: &mut Vec<u8>, bytes: &[u8]) -> Option<usize> {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::_mm_storeu_si128;
        let (v, lanes) = short_block(bytes);
        let mask = special_mask(v) & lanes;
        if mask != 0 {
            return Some(mask.trailing_zeros() as usize);
        }
        out.reserve(18);
        let len = out.len();
        // SAFETY: the reservation leaves 18 bytes after `len`: the opening quote, the
        // sixteen-byte store (its bytes past the string are spare capacity, not kept) and
        // the closing quote at 1 + bytes.len() <= 16.
        unsafe {
            let dst = out.as_mut_ptr().add(len);
            *dst = b'"';
            _mm_storeu_si128(dst.add(1).cast(), v);
            *dst.add(bytes.len() + 1) = b'"';
            out.set_len(len + bytes.len() + 2);
        }
        None
    }
    #[cfg(not(target_arch = "x86_64"))]
    match next_json_special(bytes, 0) {
        None => {
            write_plain(out, bytes);
            None
        }
        first => first,
    }
}

/// Writes a string that needs no escape: quote, copy, quote in one step.
fn write_plain(out: &mut Vec<u8>, bytes: &[u8]) {
    out.reserve(bytes.len() + 2);
    let len = out.len();
    // SAFETY: the reservation leaves room for `bytes.len() + 2` bytes after `len`; all of
    // them are written (through raw pointers: the spare capacity is uninitialised) before
    // the length covers them.
    unsafe {
        let dst = out.as_mut_ptr().add(len);
        *dst = b'"';
        std::ptr::copy_nonoverlapping(bytes.as_ptr(), dst.add(1), bytes.len());
        *dst.add(bytes.len() + 1) = b'"';
        out.set_len(len + bytes.len() + 2);
    }
}

#[cfg(target_arch = "x86_64")]
/// `bytes` (shorter than sixteen) in the first lanes of a register, with the mask of those
/// lanes; the lanes past them hold unspecified bytes, so a test must keep to the mask.
///
/// Built in general registers from at most two overlapping loads and moved to the vector
/// register without a round trip through memory: a sixteen-byte load of a block just
/// written by narrower stores cannot be forwarded from the store buffer and stalled each
/// key (half the writer's samples under `perf`).
#[inline(always)]
fn short_block(bytes: &[u8]) -> (std::arch::x86_64::__m128i, u32) {
    let n = bytes.len();
    debug_assert!(n < 16);
    let src = bytes.as_ptr();
    // SAFETY: every read is inside `bytes`: each branch checks `n` first.
    let (low, high) = unsafe {
        if n >= 8 {
            // The last eight bytes, shifted down so byte 8 lands in lane 8. At n = 8 the
            // shift wraps to 0 and the high lanes repeat the low ones: past the mask.
            let tail = src.add(n - 8).cast::<u64>().read_unaligned();
            (
                src.cast::<u64>().read_unaligned(),
                tail.wrapping_shr(((16 - n) * 8) as u32),
            )
        } else if n >= 4 {
            let head = src.cast::<u32>().read_unaligned() as u64;
            let tail = src.add(n - 4).cast::<u32>().read_unaligned() as u64;
            // The overlapping lanes get the same byte from both loads.
            (head | tail << ((n - 4) * 8), 0)
        } else if n > 0 {
            let byte = |i: usize| (*src.add(i) as u64) << (i * 8);
            (byte(0) | byte(n / 2) | byte(n - 1), 0)
        } else {
            (0, 0)
        }
    };
    // SAFETY: SSE2 is part of every x86_64 target; this only moves registers.
    let v = unsafe { std::arch::x86_64::_mm_set_epi64x(high as i64, low as i64) };
    (v, (1u32 << n) - 1)
}

/// Appends `bytes` with JSON's escapes. Text with many quotes (`raw_data` that carries
/// JSON, Windows paths) is common, so each special byte costs one sixteen-byte compare and
/// store, not a search and a `memcpy` call; where the CPU has SSSE3 (all but the oldest
/// x86_64 ones), a block's quotes and backslashes are escaped together by two shuffles.
fn write_escaped(out: &mut Vec<u8>, bytes: &[u8]) {
    // Bounds the worst-case reservation (six output bytes per input byte).
    const CHUNK: usize = 4096;
    #[cfg(target_arch = "x86_64")]
    let shuffles = std::arch::is_x86_feature_detected!("ssse3");
    for chunk in bytes.chunks(CHUNK) {
        out.reserve(chunk.len() * 6 + 16);
        let len = out.len();
        // SAFETY: the reservation gives either escaper the room it needs after `len`, and
        // it returns how many bytes it initialised there; the SSSE3 one runs only where the
        // CPU was found to have SSSE3.
        unsafe {
            let dst = out.as_mut_ptr().add(len);
            #[cfg(target_arch = "x86_64")]
            let written = match shuffles {
                true => escape_into_by_shuffles(chunk, dst),
                false => escape_into(chunk, dst),
            };
            #[cfg(not(target_arch = "x86_64"))]
            let written = escape_into(chunk, dst);
            out.set_len(len + written);
        }
    }
}

/// Writes `src` escaped at `dst` and returns the number of bytes written.
///
/// # Safety
/// `dst` must be valid for writes of `6 * src.len() + 16` bytes: an escape takes at most
/// six bytes per input byte, and a block store may run sixteen bytes past what it keeps.
unsafe fn escape_into(src: &[u8], dst: *mut u8) -> usize {
    let (mut i, mut w) = (0, 0);
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::_mm_loadu_si128;
        while i + 16 <= src.len() {
            let v = _mm_loadu_si128(src.as_ptr().add(i).cast());
            w += escape_block_by_bytes(src, i, v, special_mask(v), dst.add(w));
            i += 16;
        }
    }
    w + escape_tail(&src[i..], dst.add(w))
}

/// [`escape_into`] for CPUs with SSSE3. A block whose only special bytes are quotes and
/// backslashes (in text that carries JSON, most blocks with any: two to four quotes each)
/// is written as two halves, each spread by one shuffle to make room for a backslash before
/// each special byte: the same few instructions for one quote or eight, where escaping
/// them one by one cost a search, a copy and a store each. Blocks with control characters
/// (rare) are escaped byte by byte as [`escape_into`] does.
///
/// # Safety
/// As [`escape_into`]; and the CPU must have SSSE3.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "ssse3")]
unsafe fn escape_into_by_shuffles(src: &[u8], dst: *mut u8) -> usize {
    use std::arch::x86_64::{
        _mm_add_epi8, _mm_and_si128, _mm_cmpeq_epi8, _mm_loadu_si128, _mm_movemask_epi8,
        _mm_or_si128, _mm_set1_epi8, _mm_shuffle_epi8, _mm_storeu_si128,
    };
    let backslash = _mm_set1_epi8(b'\\' as i8);
    let gap = _mm_set1_epi8(SPREAD_GAP as i8);
    let high_half = _mm_set1_epi8(8);
    let (mut i, mut w) = (0, 0);
    while i + 16 <= src.len() {
        let v = _mm_loadu_si128(src.as_ptr().add(i).cast());
        let control = _mm_movemask_epi8(control_lanes(v)) as u32;
        let quoted = _mm_movemask_epi8(quote_or_backslash_lanes(v)) as u32;
        if control != 0 {
            w += escape_block_by_bytes(src, i, v, control | quoted, dst.add(w));
        } else if quoted == 0 {
            _mm_storeu_si128(dst.add(w).cast(), v);
            w += 16;
        } else {
            for (half, offset) in [(quoted & 0xff, None), (quoted >> 8, Some(high_half))] {
                let spread = SPREAD[half as usize];
                let mut order = _mm_loadu_si128(spread.as_ptr().cast());
                // The gaps' high bit makes the shuffle write zero there; the backslash
                // goes in by an or.
                let gaps = _mm_and_si128(_mm_cmpeq_epi8(order, gap), backslash);
                if let Some(offset) = offset {
                    order = _mm_add_epi8(order, offset);
                }
                _mm_storeu_si128(
                    dst.add(w).cast(),
                    _mm_or_si128(_mm_shuffle_epi8(v, order), gaps),
                );
                w += SPREAD_LEN[half as usize] as usize;
            }
        }
        i += 16;
    }
    w + escape_tail(&src[i..], dst.add(w))
}

/// Where [`SPREAD`] leaves a gap for a backslash: any byte with its high bit set makes
/// `pshufb` write zero.
#[cfg(target_arch = "x86_64")]
const SPREAD_GAP: u8 = 0x80;

/// For each set of special bytes among eight (bit `j` for byte `j`), the shuffle that spreads
/// the eight bytes over up to sixteen with a [`SPREAD_GAP`] before each special one. The
/// lanes past `8 + specials` are gaps too, and not kept.
#[cfg(target_arch = "x86_64")]
static SPREAD: [[u8; 16]; 256] = {
    let mut table = [[SPREAD_GAP; 16]; 256];
    let mut mask = 0;
    while mask < 256 {
        let (mut byte, mut lane) = (0, 0);
        while byte < 8 {
            if mask >> byte & 1 == 1 {
                lane += 1;
            }
            table[mask][lane] = byte as u8;
            lane += 1;
            byte += 1;
        }
        mask += 1;
    }
    table
};

/// How many bytes each [`SPREAD`] shuffle keeps: eight and one more for each special byte
/// (a load where counting the bits took five instructions).
#[cfg(target_arch = "x86_64")]
static SPREAD_LEN: [u8; 256] = {
    let mut table = [0u8; 256];
    let mut mask = 0;
    while mask < 256 {
        table[mask] = 8 + (mask as u8).count_ones() as u8;
        mask += 1;
    }
    table
};

/// Escapes one sixteen-byte block `v` (the bytes of `src` at `i`), whose special bytes are
/// the bits of `mask`, at `dst`; returns the bytes written. Every special byte of the block
/// comes from one mask (quote-dense text has several per block): each run before one is
/// copied by a sixteen-byte store of which only the run is kept (the escape and the next
/// store overwrite the rest).
///
/// # Safety
/// `i + 16 <= src.len()`, and `dst` must be valid for writes of `6 * 16 + 16` bytes.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
unsafe fn escape_block_by_bytes(
    src: &[u8],
    i: usize,
    v: std::arch::x86_64::__m128i,
    mut mask: u32,
    dst: *mut u8,
) -> usize {
    use std::arch::x86_64::_mm_storeu_si128;
    let (mut from, mut w) = (0, 0);
    while mask != 0 {
        let at = mask.trailing_zeros() as usize;
        copy_run(src, i + from, at - from, dst.add(w));
        w += at - from;
        w += write_escape(*src.get_unchecked(i + at), dst.add(w));
        from = at + 1;
        mask &= mask - 1;
    }
    // The rest of the block (all of it, already loaded, when it had no special byte).
    if from == 0 {
        _mm_storeu_si128(dst.add(w).cast(), v);
    } else {
        copy_run(src, i + from, 16 - from, dst.add(w));
    }
    w + 16 - from
}

/// Escapes the last bytes of a text (fewer than sixteen) one at a time; returns the bytes
/// written.
///
/// # Safety
/// `dst` must be valid for writes of `6 * src.len()` bytes.
#[inline(always)]
unsafe fn escape_tail(src: &[u8], dst: *mut u8) -> usize {
    let mut w = 0;
    for &b in src {
        if needs_escape(b) {
            w += write_escape(b, dst.add(w));
        } else {
            *dst.add(w) = b;
            w += 1;
        }
    }
    w
}

/// Copies the `len` (at most sixteen) bytes of `src` at `at` to `dst`: as one sixteen-byte
/// load and store, whose bytes past `len` the caller overwrites, while sixteen bytes
/// remain in `src`; near its end, exactly.
///
/// # Safety
/// `at + len <= src.len()`, and `dst` must be valid for writes of sixteen bytes.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
unsafe fn copy_run(src: &[u8], at: usize, len: usize, dst: *mut u8) {
    use std::arch::x86_64::{_mm_loadu_si128, _mm_storeu_si128};
    debug_assert!(len <= 16 && at + len <= src.len());
    if at + 16 <= src.len() {
        _mm_storeu_si128(dst.cast(), _mm_loadu_si128(src.as_ptr().add(at).cast()));
    } else {
        std::ptr::copy_nonoverlapping(src.as_ptr().add(at), dst, len);
    }
}

/// Writes the escape for `b` (a byte [`needs_escape`] holds for) and returns its length.
///
/// # Safety
/// `dst` must be valid for writes of six bytes.
unsafe fn write_escape(b: u8, dst: *mut u8) -> usize {
    let short = SHORT_ESCAPES[b as usize];
    if short != 0 {
        dst.cast::<[u8; 2]>().write_unaligned(short.to_le_bytes());
        return 2;
    }
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let escape = [
        b'\\',
        b'u',
        b'0',
        b'0',
        HEX[(b >> 4) as usize],
        HEX[(b & 0xf) as usize],
    ];
    std::ptr::copy_nonoverlapping(escape.as_ptr(), dst, 6);
    6
}

/// The two bytes of each short escape (`\"`, `\\`, `\n`, `\r`, `\t`, `\b`, `\f`) by the byte
/// escaped, as one number; 0 where the escape is `\u00XX`. A quote-dense text (raw_data
/// carrying JSON) escapes a hundred or more bytes per event, and the table is one load
/// where the match was a chain of compares.
static SHORT_ESCAPES: [u16; 256] = {
    let mut table = [0u16; 256];
    let pairs: [(u8, u8); 7] = [
        (b'"', b'"'),
        (b'\\', b'\\'),
        (b'\n', b'n'),
        (b'\r', b'r'),
        (b'\t', b't'),
        (0x08, b'b'),
        (0x0c, b'f'),
    ];
    let mut i = 0;
    while i < pairs.len() {
        table[pairs[i].0 as usize] = u16::from_le_bytes([b'\\', pairs[i].1]);
        i += 1;
    }
    table
};

/// Bit `i` set where byte `i` of `v` is a quote, a backslash or a control character.
#[cfg(target_arch = "x86_64")]
#[inline]
fn special_mask(v: std::arch::x86_64::__m128i) -> u32 {
    use std::arch::x86_64::{_mm_movemask_epi8, _mm_or_si128};
    // SAFETY: SSE2 is part of every x86_64 target; these only compute on registers.
    unsafe { _mm_movemask_epi8(_mm_or_si128(control_lanes(v), quote_or_backslash_lanes(v))) as u32 }
}

/// All ones in the lanes of `v` that hold a control character (0x00 to 0x1f).
#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn control_lanes(v: std::arch::x86_64::__m128i) -> std::arch::x86_64::__m128i {
    use std::arch::x86_64::{_mm_cmpeq_epi8, _mm_min_epu8, _mm_set1_epi8};
    // SAFETY: SSE2 is part of every x86_64 target; these only compute on registers.
    // min(v, 0x1f) == v exactly when v <= 0x1f, as unsigned bytes.
    unsafe { _mm_cmpeq_epi8(_mm_min_epu8(v, _mm_set1_epi8(0x1f)), v) }
}

/// All ones in the lanes of `v` that hold a quote or a backslash: the bytes whose escape
/// is a backslash before them.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn quote_or_backslash_lanes(v: std::arch::x86_64::__m128i) -> std::arch::x86_64::__m128i {
    use std::arch::x86_64::{_mm_cmpeq_epi8, _mm_or_si128, _mm_set1_epi8};
    // SAFETY: SSE2 is part of every x86_64 target; these only compute on registers.
    unsafe {
        _mm_or_si128(
            _mm_cmpeq_epi8(v, _mm_set1_epi8(b'"' as i8)),
            _mm_cmpeq_epi8(v, _mm_set1_epi8(b'\\' as i8)),
        )
    }
}

/// The index of the first byte at or after `from` that a JSON string must escape (a quote,
/// a backslash or a control character).
pub(crate) fn next_json_special(bytes: &[u8], from: usize) -> Option<usize> {
    let mut i = from;
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::_mm_loadu_si128;
        // SAFETY: SSE2 is part of every x86_64 target, and each load reads the sixteen bytes
        // at i..i + 16, which the loop condition keeps inside `bytes`.
        unsafe {
            while i + 16 <= bytes.len() {
                let mask = special_mask(_mm_loadu_si128(bytes.as_ptr().add(i).cast()));
                if mask != 0 {
                    return Some(i + mask.trailing_zeros() as usize);
                }
                i += 16;
            }
            if i == bytes.len() {
                return None;
            }
            // The last few bytes: in a long text, the last sixteen bytes, less those already
            // tested; in a short one, the rest built in a register. No memcpy call.
            let mask = if bytes.len() >= 16 {
                let start = bytes.len() - 16;
                special_mask(_mm_loadu_si128(bytes.as_ptr().add(start).cast())) >> (i - start)
            } else {
                let (v, lanes) = short_block(&bytes[i..]);
                special_mask(v) & lanes
            };
            return (mask != 0).then(|| i + mask.trailing_zeros() as usize);
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

from_unsigned!(u8, u16, u32, u64, usize);

impl<'a> From<Object<'a>> for Node<'a> {
    fn from(obj: Object<'a>) -> Self {
        Node::Object(obj)
    }
}

/// Parsed JSON borrows every string that has no escapes from the text it was parsed from
/// (serde_json hands those over as borrowed), so a JSON payload costs one allocation per
/// object and array, not one per key and string as a `serde_json::Value` does.
impl<'de> serde::Deserialize<'de> for Node<'de> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(NodeVisitor)
    }
}

struct NodeVisitor;

impl<'de> serde::de::Visitor<'de> for NodeVisitor {
    type Value = Node<'de>;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E>(self, b: bool) -> Result<Node<'de>, E> {
        Ok(Node::Bool(b))
    }

    fn visit_i64<E>(self, n: i64) -> Result<Node<'de>, E> {
        Ok(Node::from(n))
    }

    fn visit_u64<E>(self, n: u64) -> Result<Node<'de>, E> {
        Ok(Node::UInt(n))
    }

    fn visit_f64<E>(self, f: f64) -> Result<Node<'de>, E> {
        // As serde_json's Value: a float that is not finite has no JSON form.
        Ok(if f.is_finite() {
            Node::Float(f)
        } else {
            Node::Null
        })
    }

    fn visit_borrowed_str<E>(self, s: &'de str) -> Result<Node<'de>, E> {
        Ok(Node::Str(Cow::Borrowed(s)))
    }

    fn visit_str<E>(self, s: &str) -> Result<Node<'de>, E> {
        Ok(Node::Str(Cow::Owned(s.to_string())))
    }

    fn visit_string<E>(self, s: String) -> Result<Node<'de>, E> {
        Ok(Node::Str(Cow::Owned(s)))
    }

    fn visit_unit<E>(self) -> Result<Node<'de>, E> {
        Ok(Node::Null)
    }

    fn visit_none<E>(self) -> Result<Node<'de>, E> {
        Ok(Node::Null)
    }

    fn visit_some<D: serde::Deserializer<'de>>(self, d: D) -> Result<Node<'de>, D::Error> {
        serde::Deserialize::deserialize(d)
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Node<'de>, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(64));
        while let Some(item) = seq.next_element()? {
            items.push(item);
        }
        Ok(Node::Array(items))
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Node<'de>, A::Error> {
        let mut members = Vec::with_capacity(map.size_hint().unwrap_or(0).clamp(8, 64));
        while let Some(MemberKey(key)) = map.next_key()? {
            members.push((key, map.next_value()?));
        }
        Ok(Node::Object(Object::from_members(members)))
    }
}

/// An object key, borrowed when it has no escapes (`Cow<str>`'s own impl always copies).
struct MemberKey<'de>(Cow<'de, str>);

impl<'de> serde::Deserialize<'de> for MemberKey<'de> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl<'de> serde::de::Visitor<'de> for KeyVisitor {
            type Value = MemberKey<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("an object key")
            }
            fn visit_borrowed_str<E>(self, s: &'de str) -> Result<MemberKey<'de>, E> {
                Ok(MemberKey(Cow::Borrowed(s)))
            }
            fn visit_str<E>(self, s: &str) -> Result<MemberKey<'de>, E> {
                Ok(MemberKey(Cow::Owned(s.to_string())))
            }
            fn visit_string<E>(self, s: String) -> Result<MemberKey<'de>, E> {
                Ok(MemberKey(Cow::Owned(s)))
            }
        }
        deserializer.deserialize_str(KeyVisitor)
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
        let mut consumed = Vec::new();
        node.clone().into_json(&mut consumed);
        assert_eq!(
            consumed,
            node.to_json_vec(),
            "into_json writes what write_json writes"
        );
        assert_eq!(node.into_value(), value);
    }

    /// `into_json` frees each part once as it writes it: owned and borrowed text, empty and
    /// nested arrays and objects. Here the bytes must match; a double free or a leak shows
    /// under valgrind (these tests use the system allocator) and under the `parse_all`
    /// fuzz target's AddressSanitizer, which checks `into_json` on every event.
    #[test]
    fn writing_and_freeing_in_one_walk_writes_the_same_bytes() {
        let text = String::from("borrowed \"text\" of sixteen bytes or more");
        let mut inner = Object::new();
        inner.insert("owned", Node::Str(Cow::Owned("é".repeat(20))));
        inner.insert("borrowed", Node::Str(Cow::Borrowed(&text)));
        inner.insert(
            String::from("an owned key longer than sixteen"),
            Node::Int(-3),
        );
        inner.insert("empty", Node::Object(Object::new()));
        let mut root = Object::new();
        root.insert(
            "list",
            Node::Array(vec![
                Node::Object(inner.clone()),
                Node::Array(vec![]),
                Node::Array(vec![Node::Str(Cow::Owned("x".into())), Node::Null]),
                Node::Float(0.5),
                Node::Object(Object::new()),
            ]),
        );
        root.insert("inner", Node::Object(inner));
        root.insert("flag", Node::Bool(true));
        let tree = Node::Object(root);
        let expected = tree.to_json_vec();
        let mut consumed = Vec::new();
        tree.into_json(&mut consumed);
        assert_eq!(
            String::from_utf8(consumed).unwrap(),
            String::from_utf8(expected).unwrap()
        );
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
        // Longer than one escaping chunk, with specials dense, sparse and at chunk edges.
        for pattern in ["\"", "a\\b", "0123456789abcdef\n", "é\u{1}"] {
            same_bytes(Value::String(pattern.repeat(5000)));
        }
        let mut edges = "x".repeat(4095);
        edges.push('"');
        edges.push_str(&"y".repeat(4097));
        edges.push('\\');
        same_bytes(Value::String(edges));
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
        // Several escapes in one sixteen-byte block, up to the end of the text.
        for len in 16..80 {
            for step in 1..7 {
                for offset in 0..step {
                    let s: String = (0..len)
                        .map(|i| match i % step == offset {
                            true => ['"', '\\', '\u{2}'][i % 3],
                            false => 'x',
                        })
                        .collect();
                    same_bytes(Value::String(s));
                }
            }
        }
        // Keys (written with their comma and colon in one step when short and plain) of
        // every length around the sixteen-byte block, with a special byte anywhere.
        for len in 0..40 {
            let mut obj = Map::new();
            for at in 0..len {
                for special in ['"', '\\', '\n', '\u{1}', ' ', 'é'] {
                    let mut key: String = "k".repeat(len);
                    key.replace_range(at..at + 1, &special.to_string());
                    obj.insert(key, json!(at));
                }
            }
            obj.insert("k".repeat(len), json!("plain"));
            same_bytes(Value::Object(obj.clone()));
            same_bytes(json!({ "first": obj.clone(), "": [obj] }));
        }
    }

    /// Short strings are tested in a register whose lanes past the string are not the
    /// string's: the bytes around a slice must not count, nor zero lanes read as controls.
    #[test]
    fn short_strings_ignore_the_bytes_around_them() {
        let around = "\"\\\n".repeat(16);
        for len in 0..20 {
            for start in [0, 1, 7] {
                let mut text = around[..start].to_string();
                text.push_str(&"k".repeat(len));
                text.push_str(&around);
                let plain = &text[start..start + len];
                let mut out = Vec::new();
                write_str(&mut out, plain);
                assert_eq!(out, serde_json::to_vec(plain).unwrap(), "{len} {start}");
                assert_eq!(
                    next_json_special(plain.as_bytes(), 0),
                    None,
                    "{len} {start}"
                );
                let mut out = Vec::new();
                write_key(&mut out, plain, true);
                assert_eq!(out, format!(",\"{plain}\":").into_bytes(), "{len} {start}");
            }
        }
    }

    /// Every set of quotes and backslashes a sixteen-byte block can hold (what the SSSE3
    /// escaper spreads by shuffles), alone and followed by a plain block and a tail.
    #[test]
    fn every_set_of_quotes_and_backslashes_in_a_block_escapes_as_serde_json_does() {
        for mask in 0u32..1 << 16 {
            let block: String = (0..16)
                .map(|j| match (mask >> j & 1 == 1, (mask >> (j + 1)) & 1 == 1) {
                    (true, true) => '"',
                    (true, false) => '\\',
                    (false, _) => char::from(b'a' + j as u8),
                })
                .collect();
            for text in [block.clone(), format!("{block}0123456789abcdef\"x")] {
                let mut out = Vec::new();
                write_escaped(&mut out, text.as_bytes());
                let expected = serde_json::to_string(&text).unwrap();
                assert_eq!(
                    out,
                    expected.as_bytes()[1..expected.len() - 1],
                    "mask {mask:#06x}"
                );
            }
        }
    }

    proptest::proptest! {
        /// Both escapers write the same bytes, control characters included.
        #[test]
        #[cfg(target_arch = "x86_64")]
        fn the_shuffling_escaper_writes_what_the_byte_one_writes(
            text in proptest::collection::vec(
                proptest::sample::select(vec![b'"', b'\\', b'\n', 0x01, 0x1f, b'a', 0x7f, 0xc3]),
                0..200,
            ),
        ) {
            proptest::prop_assume!(std::arch::is_x86_feature_detected!("ssse3"));
            let room = 6 * text.len() + 16;
            let (mut by_bytes, mut by_shuffles) = (Vec::with_capacity(room), Vec::with_capacity(room));
            // SAFETY: both have room for `6 * len + 16` bytes, and the lengths cover only
            // what each escaper says it wrote; SSSE3 was detected above.
            unsafe {
                let n = escape_into(&text, by_bytes.as_mut_ptr());
                by_bytes.set_len(n);
                let n = escape_into_by_shuffles(&text, by_shuffles.as_mut_ptr());
                by_shuffles.set_len(n);
            }
            proptest::prop_assert_eq!(by_bytes, by_shuffles);
        }
    }

    #[test]
    fn next_special_from_any_start_matches_a_plain_search() {
        for len in 0..48usize {
            for at in [None, Some(0), Some(len / 2), Some(len.saturating_sub(1))] {
                let mut bytes = vec![b'x'; len];
                if let Some(at) = at.filter(|&at| at < len) {
                    bytes[at] = b'"';
                }
                for from in 0..=len {
                    let plain = bytes[from..]
                        .iter()
                        .position(|&b| needs_escape(b))
                        .map(|p| from + p);
                    assert_eq!(
                        next_json_special(&bytes, from),
                        plain,
                        "{len} {at:?} {from}"
                    );
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

    proptest::proptest! {
        #[test]
        fn key_order_is_byte_order(
            // Few distinct bytes, so keys often share prefixes and differ only in length.
            a in proptest::collection::vec(proptest::sample::select(vec!['\0', '\u{1}', 'a', 'é']), 0..26),
            b in proptest::collection::vec(proptest::sample::select(vec!['\0', '\u{1}', 'a', 'é']), 0..26),
        ) {
            let a: String = a.into_iter().collect();
            // Half the time, `b` shares a prefix of `a` of random length.
            let b: String = if b.len() % 2 == 0 {
                a.chars().take(b.len()).chain(b.iter().copied().take(3)).collect()
            } else {
                b.into_iter().collect()
            };
            let (pa, pb) = (key_prefix(a.as_bytes()), key_prefix(b.as_bytes()));
            proptest::prop_assert_eq!(compare_keys(pa, &a, pb, &b), a.as_bytes().cmp(b.as_bytes()));
        }
    }

    proptest::proptest! {
        /// Merging an object's members with ordered new ones is inserting each of them:
        /// the same keys and order, and a key in both holding the new value. The values
        /// own their text, so a member dropped twice would be a double free.
        #[test]
        fn merge_is_inserting_each(
            old in proptest::collection::btree_map("[a-d]{0,3}", 0u32..1000, 0..12),
            new in proptest::collection::btree_map("[a-d]{0,3}", 0u32..1000, 0..12),
        ) {
            let object = |map: &std::collections::BTreeMap<String, u32>| {
                let mut obj = Object::new();
                for (k, v) in map {
                    obj.push_sorted(k.clone(), Node::from(format!("{v}")));
                }
                obj
            };
            let mut inserted = object(&old);
            for (k, v) in &new {
                inserted.insert(k.clone(), Node::from(format!("{v}")));
            }
            let mut merged = object(&old);
            merged.merge(object(&new));
            proptest::prop_assert_eq!(merged, inserted);
        }
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

    #[test]
    #[cfg(debug_assertions)]
    #[should_panic(expected = "does not sort after the last key")]
    fn push_sorted_refuses_a_key_out_of_order() {
        let mut obj = Object::new();
        obj.push_sorted("severity_id", 1i64);
        obj.push_sorted("severity", 2i64);
    }
}
