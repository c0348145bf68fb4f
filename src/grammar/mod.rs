//! Vendor grammars: which grammar a message belongs to, which OCSF class each of its event
//! kinds maps to, and how its fields map. Grammar files live in `grammars/`, are embedded
//! as defaults, and a user's directory adds or overrides them by name.

pub mod compile;
pub mod fields;
pub mod spec;
pub mod table;
pub mod transform;

use std::path::Path;
use std::sync::Arc;

use crate::event::{Node, Object};

pub use compile::{compile, Condition, EventKind, Grammar, GrammarError};
pub use fields::{FieldRef, FieldText, FlatField, Namespace, Record, SourcePath};

use crate::format::Format;
use crate::time::DefaultZone;

/// The grammars shipped with sluice (`grammars/*.toml`).
pub const EMBEDDED: &[(&str, &str)] = &[
    (
        "perception_point.toml",
        include_str!("../../grammars/perception_point.toml"),
    ),
    (
        "kaspersky_kata.toml",
        include_str!("../../grammars/kaspersky_kata.toml"),
    ),
    (
        "symantec_edr.toml",
        include_str!("../../grammars/symantec_edr.toml"),
    ),
    (
        "opswat_metadefender.toml",
        include_str!("../../grammars/opswat_metadefender.toml"),
    ),
    (
        "cisco_panoptica.toml",
        include_str!("../../grammars/cisco_panoptica.toml"),
    ),
    ("cef.toml", include_str!("../../grammars/cef.toml")),
    ("json.toml", include_str!("../../grammars/json.toml")),
    ("kv.toml", include_str!("../../grammars/kv.toml")),
];

/// All loaded grammars, ordered by priority (highest first) for selection.
#[derive(Debug, Clone)]
pub struct GrammarSet {
    grammars: Vec<Arc<Grammar>>,
}

impl GrammarSet {
    /// The embedded grammars only.
    pub fn embedded() -> Result<GrammarSet, GrammarError> {
        let mut set = GrammarSet {
            grammars: Vec::new(),
        };
        for (file, text) in EMBEDDED {
            set.add(compile(&format!("<embedded>/{file}"), text)?);
        }
        Ok(set)
    }

    /// The embedded grammars, with every `*.toml` in `dir` added or replacing the embedded
    /// grammar of the same name.
    pub fn with_dir(dir: &Path) -> Result<GrammarSet, Vec<GrammarError>> {
        let mut set = GrammarSet::embedded().map_err(|e| vec![e])?;
        for grammar in load_dir(dir)? {
            set.add(grammar);
        }
        Ok(set)
    }

    fn add(&mut self, grammar: Grammar) {
        self.grammars.retain(|g| g.name != grammar.name);
        self.grammars.push(Arc::new(grammar));
        // Stable: among equal priorities, the file order stays.
        self.grammars.sort_by_key(|g| std::cmp::Reverse(g.priority));
    }

    pub fn get(&self, name: &str) -> Option<&Arc<Grammar>> {
        self.grammars.iter().find(|g| g.name == name)
    }

    /// The loaded grammars' names, comma-separated (for error messages).
    pub fn names(&self) -> String {
        self.grammars
            .iter()
            .map(|g| g.name.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    }

    pub fn iter(&self) -> impl Iterator<Item = &Arc<Grammar>> {
        self.grammars.iter()
    }

    /// The first grammar, by priority, that accepts `format` and whose `detect` holds.
    pub fn select(&self, format: Format, record: &Record<'_, '_>) -> Option<&Arc<Grammar>> {
        self.grammars
            .iter()
            .find(|g| g.accepts(format) && g.detect.as_ref().is_none_or(|c| evaluate(c, record)))
    }
}

/// Compiles every `*.toml` in `dir`, collecting all errors rather than stopping at the first.
pub fn load_dir(dir: &Path) -> Result<Vec<Grammar>, Vec<GrammarError>> {
    let read_error = |message: String| GrammarError {
        file: dir.display().to_string(),
        line: 0,
        message,
    };
    let entries = std::fs::read_dir(dir)
        .map_err(|e| vec![read_error(format!("cannot read directory: {e}"))])?;
    let mut paths: Vec<_> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    paths.sort();
    let mut grammars = Vec::new();
    let mut errors = Vec::new();
    for path in paths {
        let file = path.display().to_string();
        match std::fs::read_to_string(&path) {
            Ok(text) => match compile(&file, &text) {
                Ok(g) => grammars.push(g),
                Err(e) => errors.push(e),
            },
            Err(e) => errors.push(GrammarError {
                file,
                line: 0,
                message: format!("cannot read: {e}"),
            }),
        }
    }
    if errors.is_empty() {
        Ok(grammars)
    } else {
        Err(errors)
    }
}

pub fn evaluate(condition: &Condition, record: &Record<'_, '_>) -> bool {
    let text = |path: &SourcePath| record.get(path).and_then(FieldRef::as_text);
    match condition {
        Condition::Equals(path, values) => {
            text(path).is_some_and(|t| values.iter().any(|v| v == t.as_ref()))
        }
        Condition::IEquals(path, values) => {
            text(path).is_some_and(|t| values.iter().any(|v| v.eq_ignore_ascii_case(&t)))
        }
        Condition::StartsWith(path, values) => {
            text(path).is_some_and(|t| values.iter().any(|v| t.starts_with(v.as_str())))
        }
        Condition::Matches(path, regex) => text(path).is_some_and(|t| regex.is_match(&t)),
        Condition::Exists(path, wanted) => record.get(path).is_some() == *wanted,
        Condition::All(list) => list.iter().all(|c| evaluate(c, record)),
        Condition::Any(list) => list.iter().any(|c| evaluate(c, record)),
    }
}

impl Grammar {
    /// The event kind for this record: the first whose `when` holds, else the fallback.
    pub fn kind(&self, record: &Record<'_, '_>) -> Option<&EventKind> {
        self.kinds
            .iter()
            .find(|k| k.when.as_ref().is_none_or(|c| evaluate(c, record)))
    }
}

/// A value a rule produced for a slot.
#[derive(Debug)]
pub struct SlotValue<'a> {
    pub slot: u16,
    /// The rule's index: its priority (the lowest wins).
    pub rule: u16,
    /// The next value of this slot while [`EventKind::resolve`] orders them (it fits in
    /// what would be padding).
    next: u32,
    pub value: Node<'a>,
}

impl<'a> SlotValue<'a> {
    /// `values.push(SlotValue { .. })`, stored field by field
    /// ([`crate::event::push_fields`]; `push` cost a fifth of the mapping loop's samples).
    #[inline(always)]
    fn push_onto(values: &mut Vec<SlotValue<'a>>, slot: u16, rule: u16, value: Node<'a>) {
        crate::event::push_fields!(
            values,
            SlotValue {
                slot: slot,
                rule: rule,
                next: NO_VALUE,
                value: value,
            }
        );
    }
}

impl EventKind {
    /// Decides each slot (the lowest rule index wins; `[]` slots keep every value) and
    /// returns the winners in slot order. Fields whose contested rules all won leave
    /// `unmapped`; a field that lost any slot stays there, so no value is dropped.
    pub fn resolve<'a>(
        &self,
        grammar: &Grammar,
        mut values: Vec<SlotValue<'a>>,
        unmapped: &mut Object<'_>,
    ) -> Vec<(u16, Node<'a>)> {
        let rules = &self.mapper.rules;
        let mut winners = Vec::with_capacity(values.len());
        let mut contested: Vec<(u16, bool)> = Vec::new();
        let mut previous = None;
        let slots = grammar.targets.len();
        let (mut head_inline, mut head_heap);
        let head: &mut [u32] = if slots <= INLINE_SLOTS {
            head_inline = [NO_VALUE; INLINE_SLOTS];
            &mut head_inline[..slots]
        } else {
            head_heap = vec![NO_VALUE; slots];
            &mut head_heap
        };
        link_by_slot(&mut values, head);
        // In order of slot, then rule index, then arrival: the order a stable sort by (slot,
        // rule index) gives, which decides the winners (a field sent twice fires its rule
        // twice, and the first one sent wins).
        let mut walk = SlotWalk::default();
        while let Some(i) = walk.next(head, &values) {
            let taken = &mut values[i];
            let (slot, index) = (taken.slot, taken.rule);
            let value = std::mem::replace(&mut taken.value, Node::Null);
            let push = grammar.targets[slot as usize].push;
            let won = push || previous != Some(slot);
            previous = Some(slot);
            if rules[index as usize].contested {
                contested.push((index, won));
            }
            if won {
                crate::event::push_pair(&mut winners, slot, value);
            }
        }
        // SAFETY: a shorter length exposes nothing uninitialised. Every value was taken
        // (each is in its slot's chain) and the `Null`s left own nothing, so not dropping
        // them one by one leaks nothing.
        unsafe { values.set_len(0) };
        let mut consumed = Vec::with_capacity(contested.len());
        for &(index, won) in &contested {
            let rule = &rules[index as usize];
            let source_lost = contested
                .iter()
                .any(|&(other, w)| !w && rules[other as usize].source_id == rule.source_id);
            if won && !source_lost && !rule.source_kept && rule.pattern.is_none() {
                consumed.push(&rule.source);
            }
        }
        remove_all_unmapped(unmapped, &consumed);
        winners
    }
}

/// Slot counts up to which [`EventKind::resolve`] keeps the chains' heads on the stack
/// (every embedded grammar has fewer than fifty slots).
const INLINE_SLOTS: usize = 64;
const NO_VALUE: u32 = u32::MAX;
/// Value counts up to which values are linked into chains as they come, each insert
/// walking its slot's chain; more are sorted first (see [`link_by_slot`]).
const CHAINED_VALUES: usize = 128;

/// Links each value into its slot's chain (`head[slot]`, then each value's `next`), kept
/// in order of rule index, then arrival. Walking the slots in turn then visits the values
/// as a stable sort by (slot, rule index) orders them: a slot mostly gets one value, and
/// sorting moved each 40-byte value several times.
fn link_by_slot(values: &mut [SlotValue<'_>], head: &mut [u32]) {
    if values.len() > CHAINED_VALUES {
        // Many values (a field sent many times) could make the chain walks below quadratic:
        // a stable sort puts each slot's values in chain order, in one run a slot.
        values.sort_by_key(|v| (v.slot, v.rule));
        for i in 0..values.len() {
            let slot = values[i].slot;
            if i == 0 || values[i - 1].slot != slot {
                head[slot as usize] = i as u32;
            }
            values[i].next = match values.get(i + 1) {
                Some(after) if after.slot == slot => i as u32 + 1,
                _ => NO_VALUE,
            };
        }
        return;
    }
    for i in 0..values.len() {
        let (slot, rule) = (values[i].slot as usize, values[i].rule);
        let (mut before, mut at) = (NO_VALUE, head[slot]);
        while at != NO_VALUE && values[at as usize].rule <= rule {
            (before, at) = (at, values[at as usize].next);
        }
        values[i].next = at;
        if before == NO_VALUE {
            head[slot] = i as u32;
        } else {
            values[before as usize].next = i as u32;
        }
    }
}

/// Visits the chains [`link_by_slot`] built, slot by slot.
struct SlotWalk {
    slot: usize,
    at: u32,
}

impl Default for SlotWalk {
    fn default() -> Self {
        SlotWalk {
            slot: 0,
            at: NO_VALUE,
        }
    }
}

impl SlotWalk {
    /// The index of the next value.
    #[inline]
    fn next(&mut self, head: &[u32], values: &[SlotValue<'_>]) -> Option<usize> {
        while self.at == NO_VALUE {
            self.at = *head.get(self.slot)?;
            self.slot += 1;
        }
        let i = self.at as usize;
        self.at = values[i].next;
        Some(i)
    }
}

/// Removes source fields from `unmapped`, as [`remove_unmapped`] does for each. Several
/// fields of one flat namespace (a Symantec event's CEF fields that won over its JSON) go
/// in one pass over their group, where each removal was a search and a shift.
fn remove_all_unmapped(unmapped: &mut Object<'_>, sources: &[&SourcePath]) {
    match sources {
        [first, _, _, ..]
            if first.ns != Namespace::Json && sources.iter().all(|s| s.ns == first.ns) =>
        {
            if let Some(Node::Object(group)) = unmapped.get_mut(first.ns.name()) {
                group.retain(|key, _| !sources.iter().any(|s| s.key() == key));
                if group.is_empty() {
                    unmapped.remove(first.ns.name());
                }
            }
        }
        _ => {
            for source in sources {
                remove_unmapped(unmapped, source);
            }
        }
    }
}

/// Removes a source field from `unmapped`, and any object the removal leaves empty.
fn remove_unmapped(unmapped: &mut Object<'_>, source: &SourcePath) {
    fn remove_path<S: AsRef<str>>(obj: &mut Object<'_>, path: &[S]) {
        match path {
            [] => {}
            [last] => {
                obj.remove(last.as_ref());
            }
            [first, rest @ ..] => {
                if let Some(Node::Object(inner)) = obj.get_mut(first.as_ref()) {
                    remove_path(inner, rest);
                    if inner.is_empty() {
                        obj.remove(first.as_ref());
                    }
                }
            }
        }
    }
    if let Some(Node::Object(group)) = unmapped.get_mut(source.ns.name()) {
        remove_path(group, &source.segments);
        if group.is_empty() {
            unmapped.remove(source.ns.name());
        }
    }
}

/// Time zone and receive time for transforms.
#[derive(Clone, Copy, Debug)]
pub struct MapContext {
    pub zone: DefaultZone,
    pub now_ms: i64,
}

/// A value a typed rule could not convert (`194.1448.4.245` for an `ip`): the field stays
/// under `unmapped`, and the event says so.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConversionFailure {
    /// Index into the kind's rules.
    pub rule: u16,
    /// The value as sent, cut to [`FAILED_VALUE_CHARS`] characters.
    pub value: String,
}

/// How much of an unconvertible value an error message quotes.
pub const FAILED_VALUE_CHARS: usize = 64;

/// What mapping one record produced.
#[derive(Debug, Default)]
pub struct Mapped<'a> {
    pub values: Vec<SlotValue<'a>>,
    /// Every field no rule consumed, by namespace (borrowing the message's text).
    pub unmapped: Object<'a>,
    pub failures: Vec<ConversionFailure>,
}

impl EventKind {
    /// Runs every field of `record` through this kind's rules once.
    pub fn map<'a>(&'a self, record: Record<'_, 'a>, ctx: &MapContext) -> Mapped<'a> {
        let mapper = &self.mapper;
        let mut mapped = Mapped {
            values: Vec::with_capacity(mapper.rules.len()),
            ..Mapped::default()
        };
        let apply = |rules: &[u16], value: FieldRef<'_, 'a>, mapped: &mut Mapped<'a>| -> bool {
            let mut consumed = false;
            let mut keep = false;
            for &index in rules {
                let rule = &mapper.rules[index as usize];
                // Holds the field's text while a pattern's capture borrows from it.
                let text;
                let captured;
                let input = match &rule.pattern {
                    None => value,
                    Some(regex) => {
                        let Some(field_text) = value.text() else {
                            continue;
                        };
                        text = field_text;
                        let Some(caps) = regex.captures(text.as_str()) else {
                            continue;
                        };
                        let part = caps.get(1).or_else(|| caps.get(0));
                        captured = text.keep(part.map_or("", |m| m.as_str()));
                        FieldRef::from_cow(&captured)
                    }
                };
                match rule.transform.apply(input, &ctx.zone, ctx.now_ms) {
                    Some(v) => {
                        SlotValue::push_onto(&mut mapped.values, rule.slot, index, v);
                        // Part of a field (a pattern's capture) does not account for all of it.
                        if rule.pattern.is_none() {
                            consumed = true;
                            keep |= rule.keep || rule.contested;
                        }
                    }
                    None if rule.transform.reports_failures() => {
                        if let Some(text) = input.as_text().filter(|t| !t.trim().is_empty()) {
                            mapped.failures.push(ConversionFailure {
                                rule: index,
                                value: text.chars().take(FAILED_VALUE_CHARS).collect(),
                            });
                        }
                    }
                    None => {}
                }
            }
            consumed && !keep
        };

        let syslog_rules = &mapper.flat[Namespace::Syslog.index()];
        if !syslog_rules.is_empty() {
            for name in fields::SYSLOG_FIELDS {
                if let Some(rules) = syslog_rules.get(name) {
                    if let Some(value) = record.syslog_field(name) {
                        apply(rules, FieldRef::Text(value), &mut mapped);
                    }
                }
            }
        }

        if let Some(header) = record.header {
            let rules = &mapper.flat[Namespace::Header.index()];
            let mut rest = Object::new();
            for (name, value) in header.fields() {
                // Vendor, product and version always go to metadata.product.
                if matches!(name, "vendor" | "product" | "device_version") {
                    continue;
                }
                let consumed = rules
                    .get(name)
                    .is_some_and(|r| apply(r, FieldRef::from_cow(value), &mut mapped));
                if !consumed {
                    rest.insert(name, value.clone());
                }
            }
            if !rest.is_empty() {
                mapped.unmapped.insert("header", rest);
            }
        }

        let mut groups: [Option<Object<'a>>; 7] = Default::default();
        let fields = record.flat.len();
        for (i, field) in record.flat.into_iter().enumerate() {
            let consumed = mapper.flat[field.ns.index()]
                .get(field.key.as_ref())
                .is_some_and(|r| apply(r, FieldRef::from_cow(&field.value), &mut mapped));
            if !consumed {
                // Sized once for the fields still to come, not grown 8, 16, 32.
                groups[field.ns.index()]
                    .get_or_insert_with(|| Object::with_capacity(fields - i))
                    .insert(field.key, field.value);
            }
        }
        for ns in Namespace::ALL {
            if let Some(group) = groups[ns.index()].take() {
                mapped.unmapped.insert(ns.name(), group);
            }
        }

        if let Some(json) = record.json {
            let rest = match json {
                Node::Object(mut obj) => {
                    walk_json(&mut obj, &mapper.json, &apply, &mut mapped);
                    (!obj.is_empty()).then_some(Node::Object(obj))
                }
                other => Some(other),
            };
            if let Some(rest) = rest {
                mapped.unmapped.insert("json", rest);
            }
        }
        mapped
    }
}

/// Walks a JSON object against the rule trie, removing the members rules consumed, so what
/// stays is the unmapped JSON with the vendor's nesting.
fn walk_json<'a, F>(obj: &mut Object<'a>, node: &compile::JsonNode, apply: &F, out: &mut Mapped<'a>)
where
    F: Fn(&[u16], FieldRef<'_, 'a>, &mut Mapped<'a>) -> bool,
{
    obj.retain(|key, value| {
        let Some(child) = node.children.get(key) else {
            return true;
        };
        if !child.rules.is_empty() && apply(&child.rules, FieldRef::Json(value), out) {
            return false;
        }
        match value {
            Node::Object(inner) if !child.children.is_empty() => {
                walk_json(inner, child, apply, out);
                !inner.is_empty()
            }
            _ => true,
        }
    });
}

#[cfg(test)]
mod tests {
    proptest::proptest! {
        /// Values are decided in the order a stable sort by (slot, rule index) gives them.
        #[test]
        fn slot_chains_visit_values_as_a_stable_sort_orders_them(
            slots in 1usize..80,
            picks in proptest::collection::vec((0u16..80, 0u16..6), 0..300),
        ) {
            let mut values: Vec<SlotValue<'_>> = Vec::new();
            for (i, &(slot, rule)) in picks.iter().enumerate() {
                SlotValue::push_onto(&mut values, slot % slots as u16, rule, Node::from(i as i64));
            }
            // Each value carries its arrival index.
            let mut sorted: Vec<i64> = (0..values.len() as i64).collect();
            sorted.sort_by_key(|&i| (values[i as usize].slot, values[i as usize].rule));
            let mut head = vec![NO_VALUE; slots];
            link_by_slot(&mut values, &mut head);
            let mut walk = SlotWalk::default();
            let mut visited = Vec::new();
            while let Some(i) = walk.next(&head, &values) {
                visited.push(values[i].value.as_i64().expect("an arrival index"));
            }
            proptest::prop_assert_eq!(visited, sorted);
        }
    }

    use super::*;

    #[test]
    fn embedded_grammars_compile() {
        let set = GrammarSet::embedded().unwrap();
        for name in [
            "perception_point",
            "kaspersky_kata",
            "symantec_edr",
            "opswat_metadefender",
            "cisco_panoptica",
            "cef",
            "json",
            "kv",
        ] {
            assert!(set.get(name).is_some(), "{name}");
        }
    }

    #[test]
    fn slots_are_numbered_in_target_order_and_rules_follow() {
        let set = GrammarSet::embedded().unwrap();
        for grammar in set.iter() {
            let keys = |t: &crate::event::TargetPath| {
                t.segments
                    .iter()
                    .map(|s| match s {
                        crate::event::Segment::Key(k) => k.clone(),
                        crate::event::Segment::Index(i) => format!("[{i:09}]"),
                    })
                    .collect::<Vec<_>>()
            };
            for pair in grammar.targets.windows(2) {
                assert!(
                    keys(&pair[0]) < keys(&pair[1]),
                    "{}: {pair:?}",
                    grammar.name
                );
            }
        }
        // A rule still writes where its file says.
        let grammar = compile("p.toml", PATTERNED).unwrap();
        let rules = &grammar.kinds[0].mapper.rules;
        let written: Vec<(String, String)> = rules
            .iter()
            .map(|r| {
                (
                    r.source.to_string(),
                    grammar.targets[r.slot as usize].text.clone(),
                )
            })
            .collect();
        assert_eq!(
            written,
            [
                ("json.text", "message"),
                ("json.text", "actor.user.name"),
                ("json.port", "src_endpoint.port"),
            ]
            .map(|(a, b)| (a.to_string(), b.to_string()))
        );
    }

    /// The event builder appends each kind's mapped values in slot order; inserting each
    /// along its path from the root must give the same tree, whichever of a kind's places
    /// are filled and however many values a `[]` place gets.
    #[test]
    fn values_built_in_slot_order_match_inserting_each_along_its_path() {
        let set = GrammarSet::embedded().unwrap();
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let mut compared = 0;
        for grammar in set.iter() {
            for kind in &grammar.kinds {
                let mut slots: Vec<u16> = kind.mapper.rules.iter().map(|r| r.slot).collect();
                slots.sort_unstable();
                slots.dedup();
                for round in 0..200 {
                    // All places on the first round, then random subsets.
                    let mut values: Vec<(u16, Node<'_>)> = Vec::new();
                    for &slot in &slots {
                        if round > 0 && next() % 3 == 0 {
                            continue;
                        }
                        let copies = if grammar.targets[slot as usize].push {
                            1 + next() % 3
                        } else {
                            1
                        };
                        for copy in 0..copies {
                            values.push((slot, Node::from(format!("{slot}/{copy}"))));
                        }
                    }
                    let mut inserted = Object::new();
                    for (slot, value) in values.clone() {
                        assert!(grammar.targets[slot as usize].insert(&mut inserted, value));
                    }
                    let mut built = Object::new();
                    crate::event::build_sorted(&mut built, &grammar.targets, values);
                    assert_eq!(built, inserted, "{} {}", grammar.name, kind.name);
                    compared += 1;
                }
            }
        }
        assert!(compared > 1000, "{compared}");
    }

    /// Each container a path opens is sized for every member any kind can put in it: the
    /// rules' places, `set` and `ensure` paths, and what the pipeline adds to `metadata`.
    #[test]
    fn containers_are_sized_for_every_member_a_kind_can_add() {
        let grammar = compile(
            "sized.toml",
            r#"
name = "sized"
format = "json"
[[map]]
from = "json.a"
to = "actor.user.name"
[[map]]
from = "json.b"
to = "actor.user.uid"
[[map]]
from = "json.c"
to = "actor.process.name"
[[map]]
from = "json.d"
to = "evidences[2].file.hashes[]"
[[map]]
from = "json.e"
to = "metadata.uid"
[[event]]
name = "one"
when = { field = "json.a", exists = true }
class_uid = 2004
activity_id = 1
set = { "actor.session.uid" = "s" }
[[event]]
name = "other"
class_uid = 2004
activity_id = 99
ensure = { "actor.user.type_id" = 0 }
"#,
        )
        .unwrap();
        let opens = |text: &str| {
            let target = grammar.targets.iter().find(|t| t.text == text).unwrap();
            target.opens.clone()
        };
        let sizes = |text: &str| opens(text).iter().map(|o| o.capacity).collect::<Vec<u16>>();
        // actor: user, process and session (another kind's `set`); actor.user: name, uid
        // and type_id (an `ensure`).
        assert_eq!(sizes("actor.user.name"), [3, 3]);
        assert_eq!(sizes("actor.process.name"), [3, 1]);
        // evidences: items up to index 2; each item an object with `file`, whose object
        // holds the one array.
        assert_eq!(sizes("evidences[2].file.hashes[]"), [3, 1, 1]);
        // Paths through one container share its number; no other container has it.
        let ids = |text: &str| opens(text).iter().map(|o| o.id).collect::<Vec<u32>>();
        let (name, uid, process) = (
            ids("actor.user.name"),
            ids("actor.user.uid"),
            ids("actor.process.name"),
        );
        assert_eq!(name, uid);
        assert_eq!(name[0], process[0]);
        assert_ne!(name[1], process[1]);
        assert!(!ids("evidences[2].file.hashes[]").contains(&name[0]));
        // metadata: uid and the four members the pipeline adds.
        assert_eq!(
            sizes("metadata.uid"),
            [1 + crate::pipeline::METADATA_MEMBERS.len() as u16]
        );
        // Every embedded grammar's paths are sized.
        for grammar in GrammarSet::embedded().unwrap().iter() {
            for target in &grammar.targets {
                assert_eq!(target.opens.len() + 1, target.segments.len());
                assert!(target.opens.iter().all(|o| o.capacity > 0), "{target:?}");
            }
        }
    }

    /// Several flat fields removed in one pass leave what removing each one leaves,
    /// including the group gone once empty; other namespaces stay untouched.
    #[test]
    fn removing_fields_together_is_removing_each() {
        let source = |text: &str| SourcePath::parse(text).unwrap();
        let unmapped = || {
            let mut cef = Object::new();
            for key in ["a", "b", "dvchost", "fileHash", "src", "z"] {
                cef.insert(key.to_string(), Node::from(format!("{key}!")));
            }
            let mut pipe = Object::new();
            pipe.insert("a", Node::from("x"));
            let mut root = Object::new();
            root.insert("cef", cef);
            root.insert("pipe", pipe);
            root
        };
        let cases: [&[&str]; 4] = [
            &["cef.b", "cef.src", "cef.fileHash"],
            &[
                "cef.a",
                "cef.b",
                "cef.dvchost",
                "cef.fileHash",
                "cef.src",
                "cef.z",
            ],
            &["cef.b", "cef.missing", "cef.z", "cef.b"],
            &["cef.b", "pipe.a", "cef.z"],
        ];
        for case in cases {
            let sources: Vec<SourcePath> = case.iter().map(|t| source(t)).collect();
            let refs: Vec<&SourcePath> = sources.iter().collect();
            let mut together = unmapped();
            remove_all_unmapped(&mut together, &refs);
            let mut each = unmapped();
            for s in &sources {
                remove_unmapped(&mut each, s);
            }
            assert_eq!(together, each, "{case:?}");
        }
    }

    #[test]
    fn errors_name_file_and_line() {
        let text = "name = \"x\"\nformat = \"cef\"\n\n[[event]]\nname = \"a\"\nclass_uid = 2004\nactivity_id = 1\n[[event.map]]\nfrom = \"cef.src\"\nto = \"src_endpoint.ip\"\ntransform = \"ipv9\"\n";
        let err = compile("g.toml", text).unwrap_err();
        assert_eq!(err.file, "g.toml");
        assert_eq!(err.line, 11);
        assert!(
            err.message.contains("unknown transform \"ipv9\""),
            "{}",
            err.message
        );

        let err = compile("g.toml", "name = \"x\"\nformat = \"xml\"\n").unwrap_err();
        assert_eq!(err.line, 2);
        let err = compile("g.toml", "name = \"x\"\nformat = \"cef\"\nbogus = 1\n").unwrap_err();
        assert!(err.message.contains("bogus"), "{}", err.message);
        let err = compile("g.toml", "name = \"x\"\nformat = \"cef\"\n[[event]]\nname = \"a\"\nclass_uid = 4242\nactivity_id = 1\n").unwrap_err();
        assert_eq!(err.line, 5);
    }

    const KIND_HEAD: &str =
        "name = \"x\"\nformat = \"json\"\n[[event]]\nname = \"a\"\nclass_uid = 2004\nactivity_id = 1\n";

    fn place_error(maps: &[(&str, &str)], constants: &str) -> Result<Grammar, GrammarError> {
        let mut text = format!("{KIND_HEAD}{constants}\n");
        for (from, to) in maps {
            text.push_str(&format!(
                "[[event.map]]\nfrom = \"{from}\"\nto = \"{to}\"\n"
            ));
        }
        compile("g.toml", &text)
    }

    #[test]
    fn one_place_holds_one_thing() {
        let err = place_error(&[("json.a", "device"), ("json.b", "device.hostname")], "")
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            "g.toml:13: event \"a\": target paths \"device\" and \"device.hostname\" overlap \
             (one place cannot hold a value and members, or members and elements)"
        );
        // A clash with a constant or a class member is at the one rule in it; one between
        // constants alone is at the event's `class_uid`.
        let err =
            place_error(&[("json.a", "device.hostname")], "set = { device = \"d\" }").unwrap_err();
        assert_eq!(err.line, 10, "{err}");
        let err = place_error(&[("json.a", "x"), ("json.b", "class_uid.x")], "").unwrap_err();
        assert_eq!(err.line, 13, "{err}");
        let err = place_error(&[], "set = { a = 1, \"a.b\" = 2 }").unwrap_err();
        assert_eq!(err.line, 5, "{err}");
        for (maps, constants) in [
            (
                &[("json.a", "evidences.name"), ("json.b", "evidences[0]")][..],
                "",
            ),
            (&[("json.a", "x"), ("json.b", "x[]")][..], ""),
            (
                &[("json.a", "device.hostname")][..],
                "set = { device = \"d\" }",
            ),
            (
                &[("json.a", "device")][..],
                "ensure = { \"device.type_id\" = 0 }",
            ),
            (&[("json.a", "class_uid.x")][..], ""),
        ] {
            let err = place_error(maps, constants).unwrap_err().to_string();
            assert!(err.contains("overlap"), "{maps:?} {constants}: {err}");
        }
        let err = place_error(&[("json.a", "a[0].b")], "ensure = { \"a[1]\" = 0 }")
            .unwrap_err()
            .to_string();
        assert!(err.contains("ends in a key"), "{err}");
        // One place from two rules, from a rule and its default, or elements side by side.
        place_error(
            &[
                ("json.a", "device.type_id"),
                ("json.b", "device.type_id"),
                ("json.c", "file.hashes[]"),
                ("json.d", "file.hashes[]"),
                ("json.e", "evidences[0].name"),
                ("json.f", "evidences[1].name"),
            ],
            "set = { \"device.type_id\" = 0, \"file.hashes\" = [] }",
        )
        .unwrap();
    }

    use serde_json::Value;

    fn map_json(grammar: &Grammar, json: Value) -> (Option<&str>, Mapped<'_>) {
        let header = crate::syslog::SyslogHeader::absent();
        let record = Record {
            syslog: &header,
            header: None,
            flat: Vec::new(),
            json: Some(Node::from(json)),
        };
        let Some(kind) = grammar.kind(&record) else {
            return (None, Mapped::default());
        };
        let ctx = MapContext {
            zone: DefaultZone::Utc,
            now_ms: 0,
        };
        (Some(kind.name.as_str()), kind.map(record, &ctx))
    }

    const PATTERNED: &str = r#"
name = "p"
format = "json"
[[map]]
from = "json.text"
to = "message"
[[map]]
from = "json.text"
to = "actor.user.name"
pattern = 'by (\w+)'
[[map]]
from = "json.port"
to = "src_endpoint.port"
transform = "port"
[[event]]
name = "cve"
when = { field = "json.text", matches = 'CVE-\d{4}-\d+' }
class_uid = 2002
activity_id = 1
[[event]]
name = "other"
class_uid = 0
activity_id = 0
"#;

    #[test]
    fn patterns_capture_part_of_a_field_and_conditions_match() {
        let grammar = compile("p.toml", PATTERNED).unwrap();
        let (kind, mapped) = map_json(
            &grammar,
            serde_json::json!({"text": "CVE-2021-44228 reported by alice", "port": "443"}),
        );
        assert_eq!(kind, Some("cve"));
        let mut values: Vec<(String, Value)> = mapped
            .values
            .into_iter()
            .map(|v| {
                let path = grammar.targets[v.slot as usize].text.clone();
                (path, v.value.into_value())
            })
            .collect();
        values.sort_by(|a, b| a.0.cmp(&b.0));
        assert_eq!(
            values,
            vec![
                ("actor.user.name".to_string(), Value::from("alice")),
                (
                    "message".to_string(),
                    Value::from("CVE-2021-44228 reported by alice")
                ),
                ("src_endpoint.port".to_string(), Value::from(443)),
            ]
        );
        assert!(mapped.unmapped.is_empty(), "{:?}", mapped.unmapped);
        assert!(mapped.failures.is_empty());

        // No match: the pattern rule is skipped, and no failure is reported for it.
        let (kind, mapped) = map_json(&grammar, serde_json::json!({"text": "nothing here"}));
        assert_eq!(kind, Some("other"));
        assert_eq!(mapped.values.len(), 1);
        assert!(mapped.failures.is_empty());
    }

    #[test]
    fn unconvertible_values_are_reported_and_kept() {
        let grammar = compile("p.toml", PATTERNED).unwrap();
        let (_, mapped) = map_json(&grammar, serde_json::json!({"port": "http", "text": ""}));
        assert_eq!(mapped.failures.len(), 1);
        let rule = &grammar.kinds[1].mapper.rules[mapped.failures[0].rule as usize];
        assert_eq!(rule.source.to_string(), "json.port");
        assert_eq!(mapped.failures[0].value, "http");
        assert_eq!(
            mapped.unmapped.get("json").and_then(|j| j.get("port")),
            Some(&Node::from("http"))
        );
        // An empty value is absent, not malformed.
        let (_, mapped) = map_json(&grammar, serde_json::json!({"port": " "}));
        assert!(mapped.failures.is_empty());
        // Long values are quoted in part.
        let long = "x".repeat(500);
        let (_, mapped) = map_json(&grammar, serde_json::json!({"port": long}));
        assert_eq!(mapped.failures[0].value.len(), FAILED_VALUE_CHARS);
    }

    #[test]
    fn invalid_patterns_are_grammar_errors_with_a_line() {
        let text = "name = \"x\"\nformat = \"json\"\n[[event]]\nname = \"a\"\nclass_uid = 0\nactivity_id = 0\n[[event.map]]\nfrom = \"json.a\"\nto = \"message\"\npattern = '(unclosed'\n";
        let err = compile("g.toml", text).unwrap_err();
        assert_eq!(err.line, 10, "{err}");
        assert!(err.message.contains("invalid regular expression"), "{err}");
        let text = "name = \"x\"\nformat = \"json\"\n[[event]]\nname = \"a\"\nwhen = { field = \"json.a\", matches = '[z-a]' }\nclass_uid = 0\nactivity_id = 0\n";
        let err = compile("g.toml", text).unwrap_err();
        assert!(err.message.contains("invalid regular expression"), "{err}");
    }
}
