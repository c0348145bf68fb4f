//! The normalised event: target paths into the OCSF JSON tree and the tree builder.

pub mod node;
pub mod ocsf;

pub use node::{Node, Object};

/// One step of a target path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Segment {
    Key(String),
    /// `evidences[0]`: the element at this index (objects are created up to it).
    Index(usize),
}

/// A dotted OCSF path such as `src_endpoint.ip`, `evidences[0].file.name`, or
/// `file.hashes[]` (append to the array).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TargetPath {
    pub text: String,
    pub segments: Vec<Segment>,
    pub push: bool,
    /// The containers this path opens (after segment `i`, for each `i` below the last),
    /// as its grammar numbers and sizes them (`grammar::compile`). Empty until then.
    pub opens: Vec<Opening>,
}

/// A container a target path opens, as its grammar knows it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Opening {
    /// The same for every path of the grammar through this container (the same segments
    /// up to it), and different for any other: [`build_sorted`] tells whether a container
    /// it holds open is on the next path by this number, where comparing the segments'
    /// names called `memcmp` a dozen times an event.
    pub id: u32,
    /// How many members or items it can get in one event of its grammar: [`build_sorted`]
    /// opens it at that size, where growing from empty reallocated most containers once
    /// or twice.
    pub capacity: u16,
}

impl TargetPath {
    pub fn parse(text: &str) -> Result<TargetPath, String> {
        let mut segments = Vec::new();
        let mut push = false;
        let parts: Vec<&str> = text.split('.').collect();
        for (i, part) in parts.iter().enumerate() {
            let (name, index) = match part.find('[') {
                Some(open) if part.ends_with(']') => {
                    (&part[..open], Some(&part[open + 1..part.len() - 1]))
                }
                Some(_) => return Err(format!("target path {text:?}: unclosed '['")),
                None => (*part, None),
            };
            if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
                return Err(format!(
                    "target path {text:?}: {part:?} is not an attribute name (letters, digits, '_')"
                ));
            }
            segments.push(Segment::Key(name.to_string()));
            match index {
                None => {}
                Some("") if i + 1 == parts.len() => push = true,
                Some("") => {
                    return Err(format!(
                        "target path {text:?}: '[]' (append) only at the end"
                    ))
                }
                Some(n) => {
                    segments.push(Segment::Index(n.parse().map_err(|_| {
                        format!("target path {text:?}: index {n:?} is not a number")
                    })?))
                }
            }
        }
        if matches!(segments.first(), Some(Segment::Key(k)) if k == "unmapped" || k == "sluice") {
            return Err(format!(
                "target path {text:?}: unmapped and sluice are filled by sluice itself"
            ));
        }
        Ok(TargetPath {
            text: text.to_string(),
            segments,
            push,
            opens: Vec::new(),
        })
    }

    /// Sets (or, for `[]` paths, appends) `value`, creating objects on the way. Returns
    /// false when the tree already has a non-object where the path needs one.
    pub fn insert<'a>(&'a self, root: &mut Object<'a>, value: Node<'a>) -> bool {
        self.insert_with(root, value, Present::Replace)
    }

    /// Sets `value` only when nothing is at this path yet (`[]` paths: no array yet),
    /// creating objects on the way, in one walk. True when it was set.
    pub fn insert_if_absent<'a>(&'a self, root: &mut Object<'a>, value: Node<'a>) -> bool {
        self.insert_with(root, value, Present::Keep)
    }

    // Inlined: outlined, this walk cost 200-600 instructions/event (bench/callgrind.sh).
    #[inline(always)]
    fn insert_with<'a>(&'a self, root: &mut Object<'a>, value: Node<'a>, present: Present) -> bool {
        let Some((Segment::Key(first), rest)) = self.segments.split_first() else {
            return false;
        };
        if rest.is_empty() {
            return set_or_push(root, first, self.push, value, present);
        }
        let child = root.entry_or_insert_with(first.as_str(), || Node::Object(Object::new()));
        insert_into(child, rest, self.push, value, present)
    }

    /// Sets `value` only when every object on the way to the final key exists and the
    /// key does not, without creating anything else. True when it was set.
    pub fn insert_if_parent_exists<'a>(&'a self, root: &mut Object<'a>, value: Node<'a>) -> bool {
        let Some((last, parents)) = self.segments.split_last() else {
            return false;
        };
        let Segment::Key(last) = last else {
            // A final index may turn an empty object into an array: the general walk.
            if self.parent_exists(root) && self.get(root).is_none() {
                return self.insert(root, value);
            }
            return false;
        };
        let parent = if parents.is_empty() {
            root
        } else {
            match find_mut(root, parents) {
                Some(Node::Object(obj)) => obj,
                _ => return false,
            }
        };
        set_or_push(parent, last, self.push, value, Present::Keep)
    }

    /// The value at this path, if present (`[]` paths: the array).
    pub fn get<'n, 'a>(&self, root: &'n Object<'a>) -> Option<&'n Node<'a>> {
        find(root, &self.segments)
    }

    /// True when every object on the way to the final key exists.
    pub fn parent_exists(&self, root: &Object<'_>) -> bool {
        match self.segments.split_last() {
            None => false,
            Some((_, [])) => true,
            Some((_, parents)) => find(root, parents).is_some_and(|n| n.as_object().is_some()),
        }
    }
}

/// The node at `segments` below `root` (none for an empty path).
fn find<'n, 'a>(root: &'n Object<'a>, segments: &[Segment]) -> Option<&'n Node<'a>> {
    let mut node: Option<&Node> = None;
    for segment in segments {
        node = match (node, segment) {
            (None, Segment::Key(k)) => root.get(k),
            (Some(Node::Object(obj)), Segment::Key(k)) => obj.get(k),
            (Some(Node::Array(arr)), Segment::Index(i)) => arr.get(*i),
            _ => None,
        };
        node?;
    }
    node
}

/// Builds `root` (empty) from values sorted by slot, where slot order is the order of the
/// target paths and no two paths of the set overlap (a grammar's event kind: compile.rs
/// numbers the slots so and checks the overlaps). The same tree as inserting each value
/// along its path, but each object is filled by appends: a path that shares its parents
/// with the one before continues in the objects still open, and an object is attached to
/// its parent when the paths move past it. No key search, no walk from the root.
///
/// `targets` are one compiled grammar's: their [`Opening`]s say which containers two
/// paths share.
pub fn build_sorted<'a>(
    root: &mut Object<'a>,
    targets: &'a [TargetPath],
    values: impl IntoIterator<Item = (u16, Node<'a>)>,
) {
    debug_assert!(root.is_empty());
    // The objects and arrays open below the root, outermost first, each with the grammar's
    // number for it and the segment that leads to it from its parent.
    let mut open: Vec<Open<'a>> = Vec::with_capacity(8);
    for (slot, value) in values {
        let target = &targets[slot as usize];
        let Some((leaf, parents)) = target.segments.split_last() else {
            continue;
        };
        debug_assert_eq!(target.opens.len(), parents.len(), "{}", target.text);
        let shared = open
            .iter()
            .zip(&target.opens)
            .take_while(|(((id, _), _), opening)| *id == opening.id)
            .count();
        close_down_to(root, &mut open, shared);
        for (i, (segment, opening)) in parents.iter().zip(&target.opens).enumerate().skip(shared) {
            let capacity = opening.capacity as usize;
            // The segment after this one says what this place holds.
            let container = match target.segments[i + 1] {
                Segment::Index(_) => Node::Array(Vec::with_capacity(capacity)),
                Segment::Key(_) => Node::Object(Object::with_capacity(capacity)),
            };
            push_pair(&mut open, (opening.id, segment), container);
        }
        match open.last_mut() {
            None => attach(root, leaf, value, target.push),
            Some((_, Node::Object(obj))) => attach(obj, leaf, value, target.push),
            Some((_, Node::Array(arr))) => place(arr, leaf, value),
            Some(_) => unreachable!("only objects and arrays are opened"),
        }
    }
    close_down_to(root, &mut open, 0);
}

/// `vec.push(Type { field: value, .. })` or `vec.push((first, second))`, with each field
/// stored straight into the vector's spare slot (every field of a struct must be listed,
/// as in a struct literal: a check that never runs makes the compiler hold to that).
/// `push` assembles the value on the stack and copies it
/// with sixteen-byte loads that straddle the narrower stores before them, which the CPU
/// cannot forward from its store buffer; such loads held a fifth to three quarters of the
/// samples of the loops that push members, slot values and flat fields (`perf annotate`).
/// The values are evaluated in the order written, before any of them is stored.
macro_rules! push_fields {
    ($vec:expr, $ty:ident { $($field:ident: $value:expr),+ $(,)? }) => {{
        let vec = $vec;
        #[allow(unreachable_code, clippy::diverging_sub_expression)]
        if false {
            let _ = $ty { $($field: unreachable!()),+ };
        }
        // Before the values: held across a possible reallocation, they were spilled to
        // the stack and copied back with the loads this is here to avoid.
        vec.reserve(1);
        $(
            #[allow(clippy::redundant_locals)]
            let $field = $value;
        )+
        let len = vec.len();
        // SAFETY: the reservation leaves room for one value at `len`; every field (the
        // check above makes sure none is missing) is written before the length covers it.
        unsafe {
            let spare = vec.as_mut_ptr().add(len);
            $(::std::ptr::addr_of_mut!((*spare).$field).write($field);)+
            vec.set_len(len + 1);
        }
    }};
    // A pair: both of its fields.
    ($vec:expr, ($first:expr, $second:expr)) => {{
        let vec = $vec;
        vec.reserve(1);
        let (first, second) = ($first, $second);
        let len = vec.len();
        // SAFETY: the reservation leaves room for one pair at `len`; both fields are
        // written before the length covers them.
        unsafe {
            let spare = vec.as_mut_ptr().add(len);
            ::std::ptr::addr_of_mut!((*spare).0).write(first);
            ::std::ptr::addr_of_mut!((*spare).1).write(second);
            vec.set_len(len + 1);
        }
    }};
}
pub(crate) use push_fields;

/// `pairs.push((first, second))`, stored field by field ([`push_fields`]; `push` cost a
/// sixth of the slot-resolving loop's samples, and most of those of opening an object in
/// [`build_sorted`]).
#[inline(always)]
pub(crate) fn push_pair<A, B>(pairs: &mut Vec<(A, B)>, first: A, second: B) {
    push_fields!(pairs, (first, second));
}

/// A container [`build_sorted`] holds open: its [`Opening::id`], the segment that leads to
/// it from its parent, and the container.
type Open<'a> = ((u32, &'a Segment), Node<'a>);

/// Attaches the open places deeper than `depth` to their parents, innermost first.
fn close_down_to<'a>(root: &mut Object<'a>, open: &mut Vec<Open<'a>>, depth: usize) {
    while open.len() > depth {
        let ((_, segment), node) = open.pop().expect("longer than depth");
        match open.last_mut() {
            None => attach(root, segment, node, false),
            Some((_, Node::Object(obj))) => attach(obj, segment, node, false),
            Some((_, Node::Array(arr))) => place(arr, segment, node),
            Some(_) => unreachable!("only objects and arrays are opened"),
        }
    }
}

/// Appends `key: value` to `obj`; a `[]` path's values go into one array under the key.
fn attach<'a>(obj: &mut Object<'a>, segment: &'a Segment, value: Node<'a>, push: bool) {
    // Compiling a grammar rules the other cases out (compile.rs checks the overlaps); were
    // one to come, the value is left out as an insert along its path would, not a panic.
    let Segment::Key(key) = segment else {
        debug_assert!(false, "an object's places are keys");
        return;
    };
    if push {
        if let Some((last, Node::Array(arr))) = obj.last_mut() {
            if last == key {
                arr.push(value);
                return;
            }
        }
        obj.push_sorted(key.as_str(), Node::Array(vec![value]));
    } else {
        obj.push_sorted(key.as_str(), value);
    }
}

/// Puts `value` at its index in `arr`, after empty objects for any indexes no path filled
/// (as [`insert_into`] pads).
fn place<'a>(arr: &mut Vec<Node<'a>>, segment: &Segment, value: Node<'a>) {
    let Segment::Index(i) = *segment else {
        debug_assert!(false, "an array's places are indexes");
        return;
    };
    if let Some(taken) = arr.get_mut(i) {
        debug_assert!(false, "indexes arrive in order, each once");
        *taken = value;
        return;
    }
    while arr.len() < i {
        arr.push(Node::Object(Object::new()));
    }
    arr.push(value);
}

fn find_mut<'n, 'a>(root: &'n mut Object<'a>, segments: &[Segment]) -> Option<&'n mut Node<'a>> {
    let (first, rest) = segments.split_first()?;
    let Segment::Key(k) = first else {
        return None;
    };
    let mut node = root.get_mut(k)?;
    for segment in rest {
        node = match (node, segment) {
            (Node::Object(obj), Segment::Key(k)) => obj.get_mut(k)?,
            (Node::Array(arr), Segment::Index(i)) => arr.get_mut(*i)?,
            _ => return None,
        };
    }
    Some(node)
}

/// What an insert does when the path already holds a value.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Present {
    /// Replace it (`[]` paths: append to the array).
    Replace,
    /// Leave the tree as it is.
    Keep,
}

#[inline(always)]
fn set_or_push<'a>(
    obj: &mut Object<'a>,
    key: &'a str,
    push: bool,
    value: Node<'a>,
    present: Present,
) -> bool {
    if present == Present::Keep {
        // A `[]` path's first value starts its array.
        let value = if push {
            Node::Array(vec![value])
        } else {
            value
        };
        return obj.insert_if_absent(key, value);
    }
    if !push {
        obj.insert(key, value);
        return true;
    }
    match obj.entry_or_insert_with(key, || Node::Array(Vec::new())) {
        Node::Array(arr) => {
            arr.push(value);
            true
        }
        _ => false,
    }
}

fn insert_into<'a>(
    node: &mut Node<'a>,
    segments: &'a [Segment],
    push: bool,
    value: Node<'a>,
    present: Present,
) -> bool {
    match segments.split_first() {
        Some((Segment::Key(key), rest)) => {
            let Node::Object(obj) = node else {
                return false;
            };
            if rest.is_empty() {
                return set_or_push(obj, key, push, value, present);
            }
            let child = obj.entry_or_insert_with(key.as_str(), || Node::Object(Object::new()));
            insert_into(child, rest, push, value, present)
        }
        Some((Segment::Index(i), rest)) => {
            // A fresh intermediate node was created as an object; an index makes it an array.
            if node.is_empty_object() {
                *node = Node::Array(Vec::new());
            }
            let Node::Array(arr) = node else {
                return false;
            };
            if rest.is_empty() && present == Present::Keep && arr.len() > *i {
                return false;
            }
            while arr.len() <= *i {
                arr.push(Node::Object(Object::new()));
            }
            if rest.is_empty() {
                arr[*i] = value;
                return true;
            }
            insert_into(&mut arr[*i], rest, push, value, present)
        }
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    #[test]
    fn builds_nested_paths() {
        let paths: Vec<TargetPath> = [
            "evidences[0].file.name",
            "evidences[0].file.hashes[]",
            "severity_id",
        ]
        .iter()
        .map(|p| TargetPath::parse(p).unwrap())
        .collect();
        let mut root = Object::new();
        paths[0].insert(&mut root, Node::from(json!("a.exe")));
        paths[1].insert(&mut root, Node::from(json!({"algorithm_id": 1})));
        paths[1].insert(&mut root, Node::from(json!({"algorithm_id": 3})));
        paths[2].insert(&mut root, Node::from(json!(4)));
        assert_eq!(
            Value::Object(root.into_value()),
            json!({"evidences": [{"file": {"name": "a.exe", "hashes": [{"algorithm_id": 1}, {"algorithm_id": 3}]}}], "severity_id": 4})
        );
    }

    #[test]
    fn rejects_bad_paths() {
        assert!(TargetPath::parse("a..b").is_err());
        assert!(TargetPath::parse("a[].b").is_err());
        assert!(TargetPath::parse("unmapped.x").is_err());
        assert!(TargetPath::parse("a[x]").is_err());
    }

    /// The one-walk inserts do what a lookup followed by an insert did, on trees where
    /// the path is absent, present, blocked by a non-object or ends in an index.
    #[test]
    fn one_walk_inserts_match_lookup_then_insert() {
        let paths = [
            "severity_id",
            "device.type_id",
            "device.os.name",
            "file.hashes[]",
            "evidences[0].file.name",
            "evidences[1]",
            "a[0]",
        ];
        let trees = [
            json!({}),
            json!({"severity_id": 2, "device": {"hostname": "h"}}),
            json!({"device": {"type_id": 1, "os": {}}, "file": {"hashes": [{"a": 1}]}}),
            json!({"device": "flat", "file": {}, "evidences": [{"x": 1}], "a": {}}),
            json!({"device": {"os": "text"}, "file": "text", "evidences": [], "a": [5]}),
            json!({"evidences": {}, "a": "text"}),
        ];
        for path in paths {
            let target = TargetPath::parse(path).unwrap();
            for tree in &trees {
                let object = || match Node::from(tree.clone()) {
                    Node::Object(obj) => obj,
                    _ => unreachable!("every tree is an object"),
                };
                let value = || Node::from(json!("v"));
                let mut old_set = object();
                if target.get(&old_set).is_none() {
                    target.insert(&mut old_set, value());
                }
                let mut new_set = object();
                target.insert_if_absent(&mut new_set, value());
                assert_eq!(
                    new_set.into_value(),
                    old_set.into_value(),
                    "set {path} on {tree}"
                );

                let mut old_ensure = object();
                if target.parent_exists(&old_ensure) && target.get(&old_ensure).is_none() {
                    target.insert(&mut old_ensure, value());
                }
                let mut new_ensure = object();
                target.insert_if_parent_exists(&mut new_ensure, value());
                assert_eq!(
                    new_ensure.into_value(),
                    old_ensure.into_value(),
                    "ensure {path} on {tree}"
                );
            }
        }
    }

    #[test]
    fn parent_check() {
        let mut root = Object::new();
        let p = TargetPath::parse("device.type_id").unwrap();
        assert!(!p.parent_exists(&root));
        let hostname = TargetPath::parse("device.hostname").unwrap();
        hostname.insert(&mut root, Node::from("h"));
        assert!(p.parent_exists(&root));
    }
}
