//! Grammar files → compiled grammars: conditions with parsed paths, one hash table per
//! flat namespace and a trie for JSON paths, interned target slots. Errors name the file,
//! the line and what is wrong.

use std::fmt;

use super::table::KeyTable;

use super::fields::{Namespace, SourcePath};
use super::spec::{ConditionSpec, EventSpec, GrammarSpec, MapSpec};
use super::transform::{Transform, TRANSFORM_NAMES};
use crate::event::{ocsf, Node, Opening, Segment, TargetPath};
use crate::format::Format;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GrammarError {
    pub file: String,
    pub line: usize,
    pub message: String,
}

impl fmt::Display for GrammarError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}: {}", self.file, self.line, self.message)
    }
}

impl std::error::Error for GrammarError {}

#[derive(Debug)]
pub enum Condition {
    Equals(SourcePath, Vec<String>),
    IEquals(SourcePath, Vec<String>),
    StartsWith(SourcePath, Vec<String>),
    Matches(SourcePath, regex::Regex),
    Exists(SourcePath, bool),
    All(Vec<Condition>),
    Any(Vec<Condition>),
}

impl Condition {
    /// Every source path the condition reads.
    pub fn paths(&self) -> Vec<&SourcePath> {
        match self {
            Condition::Equals(p, _)
            | Condition::IEquals(p, _)
            | Condition::StartsWith(p, _)
            | Condition::Matches(p, _)
            | Condition::Exists(p, _) => vec![p],
            Condition::All(list) | Condition::Any(list) => {
                list.iter().flat_map(Condition::paths).collect()
            }
        }
    }
}

#[derive(Debug)]
pub struct Rule {
    pub slot: u16,
    pub source: SourcePath,
    pub transform: Transform,
    /// Maps the first capture group (or the whole match) of this expression. Such a rule
    /// reads part of a field: it never takes the field out of `unmapped`.
    pub pattern: Option<regex::Regex>,
    pub keep: bool,
    /// Another rule of the same kind fills the same slot. Such a rule's field stays in
    /// `unmapped` until the slot is decided, so the losing value is never dropped.
    pub contested: bool,
    /// The index of the first rule reading the same source field: rules read one field
    /// exactly when their ids are equal (compared per event, so an integer).
    pub source_id: u16,
    /// Some rule reading this source field has `keep` set.
    pub source_kept: bool,
}

/// A trie node for JSON source paths.
#[derive(Debug, Default)]
pub struct JsonNode {
    pub rules: Vec<u16>,
    pub children: KeyTable<JsonNode>,
}

#[derive(Debug)]
pub struct Mapper {
    /// In priority order: the first rule that fills a slot wins.
    pub rules: Vec<Rule>,
    /// Per flat namespace (indexed by `Namespace::index`): key → rules.
    pub flat: Vec<KeyTable<Vec<u16>>>,
    pub json: JsonNode,
}

#[derive(Debug)]
pub struct EventKind {
    pub name: String,
    pub when: Option<Condition>,
    pub class_uid: u32,
    pub activity_id: u32,
    pub activity_name: Option<String>,
    /// A periodic "I am alive" message (KATA's heartbeat): tracked per source.
    pub heartbeat: bool,
    pub mapper: Mapper,
    pub set: Vec<(TargetPath, Node<'static>)>,
    pub ensure: Vec<(TargetPath, Node<'static>)>,
}

#[derive(Debug)]
pub struct Grammar {
    pub name: String,
    pub title: String,
    pub file: String,
    pub formats: Vec<Format>,
    pub priority: i32,
    pub max_message_bytes: usize,
    pub product_vendor: Option<String>,
    pub product_name: Option<String>,
    pub json_keys: Vec<String>,
    pub custom_labels: bool,
    pub detect: Option<Condition>,
    pub kinds: Vec<EventKind>,
    /// Slot → target path; shared by all kinds.
    pub targets: Vec<TargetPath>,
}

impl Grammar {
    pub fn accepts(&self, format: Format) -> bool {
        self.formats.iter().any(|f| f.same_kind(format))
    }
}

struct Ctx<'a> {
    file: &'a str,
    text: &'a str,
    targets: Vec<TargetPath>,
}

impl Ctx<'_> {
    fn err(&self, span: std::ops::Range<usize>, message: impl Into<String>) -> GrammarError {
        let line = self.text[..span.start.min(self.text.len())]
            .bytes()
            .filter(|&b| b == b'\n')
            .count()
            + 1;
        GrammarError {
            file: self.file.to_string(),
            line,
            message: message.into(),
        }
    }

    fn slot(&mut self, path: TargetPath) -> u16 {
        if let Some(i) = self.targets.iter().position(|t| t.text == path.text) {
            return i as u16;
        }
        self.targets.push(path);
        (self.targets.len() - 1) as u16
    }
}

/// Compiles one grammar file. `file` is used in error messages only.
pub fn compile(file: &str, text: &str) -> Result<Grammar, GrammarError> {
    let spec: GrammarSpec = toml::from_str(text).map_err(|e| {
        let line = e
            .span()
            .map(|s| text[..s.start.min(text.len())].matches('\n').count() + 1)
            .unwrap_or(0);
        GrammarError {
            file: file.to_string(),
            line,
            message: e.message().to_string(),
        }
    })?;
    let mut ctx = Ctx {
        file,
        text,
        targets: Vec::new(),
    };
    let name = spec.name.get_ref().clone();
    if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
        return Err(ctx.err(
            spec.name.span(),
            format!("grammar name {name:?} must be letters, digits and '_'"),
        ));
    }
    let mut formats = Vec::new();
    for f in spec.format.get_ref().to_vec() {
        formats.push(Format::from_name(&f).ok_or_else(|| {
            ctx.err(
                spec.format.span(),
                format!("unknown format {f:?}; known: cef, pipe, json, json_members, kv"),
            )
        })?);
    }
    let is_cef = formats
        .iter()
        .any(|f| f.same_kind(Format::Cef { start: 0 }));
    let detect = match &spec.detect {
        Some(d) => {
            let cond = condition(&ctx, d.when.get_ref(), d.when.span())?;
            // The CEF extension is read only after the grammar is chosen (the grammar says
            // which keys hold JSON), so CEF detection may look at the header and syslog only.
            if is_cef {
                if let Some(p) = cond
                    .paths()
                    .into_iter()
                    .find(|p| !matches!(p.ns, Namespace::Header | Namespace::Syslog))
                {
                    return Err(ctx.err(
                        d.when.span(),
                        format!(
                            "a CEF grammar detects on header.* and syslog.* only, not {}.{}",
                            p.ns.name(),
                            p.segments.join(".")
                        ),
                    ));
                }
            }
            Some(cond)
        }
        None => None,
    };
    if spec.events.is_empty() {
        return Err(ctx.err(0..0, "a grammar needs at least one [[event]]"));
    }
    let mut kinds = Vec::new();
    let count = spec.events.len();
    for (i, event) in spec.events.iter().enumerate() {
        if event.when.is_none() && i + 1 != count {
            return Err(ctx.err(
                event.class_uid.span(),
                format!(
                    "event {:?} has no `when` but is not the last one: a fallback kind goes last",
                    event.name
                ),
            ));
        }
        let kind = event_kind(&mut ctx, event, &spec.map)?;
        check_places(&kind, &ctx.targets).map_err(|clash| {
            // At the mapping that makes the clash, where there is one: that is the line
            // to change, not the `[[event]]` line far above it.
            let span = clash
                .rule
                .and_then(|i| event.map.iter().chain(&spec.map).nth(i))
                .map_or_else(|| event.class_uid.span(), |map| map.to.span());
            ctx.err(span, clash.message)
        })?;
        kinds.push(kind);
    }
    let mut targets = order_slots(ctx.targets, &mut kinds);
    size_containers(&mut targets, &kinds);
    Ok(Grammar {
        name,
        title: spec.title,
        file: file.to_string(),
        formats,
        priority: spec.priority,
        max_message_bytes: spec.max_message_bytes,
        product_vendor: spec.product.as_ref().and_then(|p| p.vendor_name.clone()),
        product_name: spec.product.as_ref().and_then(|p| p.name.clone()),
        json_keys: spec.cef.json_keys,
        custom_labels: spec.cef.custom_labels,
        detect,
        kinds,
        targets,
    })
}

/// Sets each target's `opens`: a number for each container it opens, shared by the paths
/// through it, and how many members (or, for an array, items) the container can get in one
/// event, from every path of the grammar that can write into it (any kind's rules, `set` and
/// `ensure`, and the members the pipeline adds to `metadata`): an upper bound over the
/// kinds, counted once at load.
fn size_containers(targets: &mut [TargetPath], kinds: &[EventKind]) {
    let added: Vec<Vec<Segment>> = crate::pipeline::METADATA_MEMBERS
        .iter()
        .map(|key| vec![Segment::Key("metadata".into()), Segment::Key((*key).into())])
        .collect();
    let paths: Vec<&[Segment]> = targets
        .iter()
        .map(|t| t.segments.as_slice())
        .chain(
            kinds
                .iter()
                .flat_map(|k| k.set.iter().chain(&k.ensure))
                .map(|(t, _)| t.segments.as_slice()),
        )
        .chain(added.iter().map(Vec::as_slice))
        .collect();
    let capacity = |prefix: &[Segment]| -> u16 {
        let mut keys: Vec<&str> = Vec::new();
        let mut items = 0usize;
        for path in &paths {
            if path.len() <= prefix.len() || !path.starts_with(prefix) {
                continue;
            }
            match &path[prefix.len()] {
                Segment::Key(key) if !keys.contains(&key.as_str()) => keys.push(key),
                Segment::Key(_) => {}
                Segment::Index(i) => items = items.max(i + 1),
            }
        }
        u16::try_from(keys.len().max(items)).unwrap_or(u16::MAX)
    };
    // Each container's path from the root, numbered in order of first sight.
    let mut containers: Vec<&[Segment]> = Vec::new();
    let opens: Vec<Vec<Opening>> = targets
        .iter()
        .map(|target| {
            let parents = target.segments.len().saturating_sub(1);
            (0..parents)
                .map(|i| {
                    let prefix = &target.segments[..=i];
                    let id = match containers.iter().position(|c| *c == prefix) {
                        Some(id) => id,
                        None => {
                            containers.push(prefix);
                            containers.len() - 1
                        }
                    };
                    Opening {
                        id: id as u32,
                        capacity: capacity(prefix),
                    }
                })
                .collect()
        })
        .collect();
    for (target, opens) in targets.iter_mut().zip(opens) {
        target.opens = opens;
    }
}

/// Renumbers slots in the order of their target paths. An event's winning values are
/// inserted in slot order, so each one then lands after the last member of its object (an
/// append, not a search and a shift).
fn order_slots(targets: Vec<TargetPath>, kinds: &mut [EventKind]) -> Vec<TargetPath> {
    fn segment_order(a: &Segment, b: &Segment) -> std::cmp::Ordering {
        match (a, b) {
            (Segment::Key(a), Segment::Key(b)) => a.as_bytes().cmp(b.as_bytes()),
            (Segment::Index(a), Segment::Index(b)) => a.cmp(b),
            (Segment::Key(_), Segment::Index(_)) => std::cmp::Ordering::Less,
            (Segment::Index(_), Segment::Key(_)) => std::cmp::Ordering::Greater,
        }
    }
    let mut order: Vec<usize> = (0..targets.len()).collect();
    order.sort_by(|&a, &b| {
        let (a, b) = (&targets[a].segments, &targets[b].segments);
        a.iter()
            .zip(b)
            .map(|(x, y)| segment_order(x, y))
            .find(|o| o.is_ne())
            .unwrap_or(a.len().cmp(&b.len()))
    });
    let mut new_slot = vec![0u16; targets.len()];
    for (new, &old) in order.iter().enumerate() {
        new_slot[old] = new as u16;
    }
    for rule in kinds.iter_mut().flat_map(|k| k.mapper.rules.iter_mut()) {
        rule.slot = new_slot[rule.slot as usize];
    }
    let mut targets: Vec<Option<TargetPath>> = targets.into_iter().map(Some).collect();
    order
        .iter()
        .map(|&old| targets[old].take().expect("each slot once"))
        .collect()
}

fn condition(
    ctx: &Ctx<'_>,
    spec: &ConditionSpec,
    span: std::ops::Range<usize>,
) -> Result<Condition, GrammarError> {
    let ops = [
        spec.equals.is_some(),
        spec.iequals.is_some(),
        spec.starts_with.is_some(),
        spec.matches.is_some(),
        spec.exists.is_some(),
        spec.all.is_some(),
        spec.any.is_some(),
    ]
    .iter()
    .filter(|&&b| b)
    .count();
    if ops != 1 {
        return Err(ctx.err(
            span,
            "a condition needs exactly one of equals, iequals, starts_with, matches, exists, all, any",
        ));
    }
    if let Some(list) = spec.all.as_ref().or(spec.any.as_ref()) {
        let inner = list
            .iter()
            .map(|c| condition(ctx, c, span.clone()))
            .collect::<Result<Vec<_>, _>>()?;
        return Ok(if spec.all.is_some() {
            Condition::All(inner)
        } else {
            Condition::Any(inner)
        });
    }
    let field = spec
        .field
        .as_deref()
        .ok_or_else(|| ctx.err(span.clone(), "this condition needs `field`"))?;
    let path = SourcePath::parse(field).map_err(|m| ctx.err(span.clone(), m))?;
    Ok(if let Some(v) = &spec.equals {
        Condition::Equals(path, v.to_vec())
    } else if let Some(v) = &spec.iequals {
        Condition::IEquals(path, v.to_vec())
    } else if let Some(v) = &spec.starts_with {
        Condition::StartsWith(path, v.to_vec())
    } else if let Some(pattern) = &spec.matches {
        Condition::Matches(path, regex(ctx, pattern, span)?)
    } else {
        Condition::Exists(path, spec.exists.unwrap_or(true))
    })
}

fn event_kind(
    ctx: &mut Ctx<'_>,
    event: &EventSpec,
    common: &[MapSpec],
) -> Result<EventKind, GrammarError> {
    let class_uid = *event.class_uid.get_ref();
    let Some(class) = ocsf::class(class_uid) else {
        return Err(ctx.err(
            event.class_uid.span(),
            format!(
                "class_uid {class_uid} is not one sluice knows; known: {}",
                ocsf::CLASSES
                    .iter()
                    .map(|c| format!("{} {}", c.uid, c.name))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        ));
    };
    if !class.activities.contains(&event.activity_id) {
        return Err(ctx.err(
            event.class_uid.span(),
            format!(
                "activity_id {} is not valid for {} ({}); valid: {:?}",
                event.activity_id, class.name, class.uid, class.activities
            ),
        ));
    }
    let when = match &event.when {
        Some(w) => Some(condition(ctx, w.get_ref(), w.span())?),
        None => None,
    };
    let mut rules = Vec::new();
    let mut flat: Vec<KeyTable<Vec<u16>>> = (0..Namespace::ALL.len())
        .map(|_| KeyTable::default())
        .collect();
    let mut json = JsonNode::default();
    // Kind-specific mappings first: they are the more specific, so they win a slot.
    for map in event.map.iter().chain(common) {
        let source =
            SourcePath::parse(map.from.get_ref()).map_err(|m| ctx.err(map.from.span(), m))?;
        let target = TargetPath::parse(map.to.get_ref()).map_err(|m| ctx.err(map.to.span(), m))?;
        let transform = transform(ctx, map)?;
        let pattern = match &map.pattern {
            Some(p) => Some(regex(ctx, p.get_ref(), p.span())?),
            None => None,
        };
        let slot = ctx.slot(target);
        let index = rules.len() as u16;
        rules.push(Rule {
            slot,
            source: source.clone(),
            transform,
            keep: map.keep,
            pattern,
            contested: false,
            source_id: index,
            source_kept: false,
        });
        match source.ns {
            Namespace::Json => {
                let mut node = &mut json;
                for segment in &source.segments {
                    node = node.children.get_or_insert_default(segment);
                }
                node.rules.push(index);
            }
            ns => flat[ns.index()]
                .get_or_insert_default(source.key())
                .push(index),
        }
    }
    for i in 0..rules.len() {
        let slot = rules[i].slot;
        let push = ctx.targets[slot as usize].push;
        rules[i].contested = !push && rules.iter().filter(|r| r.slot == slot).count() > 1;
        let source = &rules[i].source;
        let first = rules.iter().position(|r| &r.source == source).unwrap_or(i);
        let kept = rules.iter().any(|r| &r.source == source && r.keep);
        rules[i].source_id = first as u16;
        rules[i].source_kept = kept;
    }
    let constants = |ctx: &Ctx<'_>, table: &std::collections::BTreeMap<String, toml::Value>| {
        table
            .iter()
            .map(|(path, value)| {
                let target =
                    TargetPath::parse(path).map_err(|m| ctx.err(event.class_uid.span(), m))?;
                let value = serde_json::to_value(value)
                    .map_err(|e| ctx.err(event.class_uid.span(), e.to_string()))?;
                Ok((target, Node::from(value)))
            })
            .collect::<Result<Vec<_>, GrammarError>>()
    };
    Ok(EventKind {
        name: event.name.clone(),
        when,
        class_uid,
        activity_id: event.activity_id,
        activity_name: event.activity_name.clone(),
        heartbeat: event.heartbeat,
        mapper: Mapper { rules, flat, json },
        set: constants(ctx, &event.set)?,
        ensure: constants(ctx, &event.ensure)?,
    })
}

/// One event kind writes each place in its output once: a path that needs a place to hold
/// a value and members (`device`, `device.hostname`), members and elements (`a.b`, `a[0]`),
/// or one value and a list (`x`, `x[]`, from two rules) is an error naming both paths. The
/// event builder would keep one of the two and drop the other without a word.
fn check_places(kind: &EventKind, targets: &[TargetPath]) -> Result<(), PlaceClash> {
    if let Some((path, _)) = kind
        .ensure
        .iter()
        .find(|(p, _)| matches!(p.segments.last(), Some(Segment::Index(_))))
    {
        return Err(PlaceClash {
            message: format!(
                "ensure {:?}: an ensured path ends in a key (it adds a member to an object that exists)",
                path.text
            ),
            rule: None,
        });
    }
    // Rules first: two of them at one place with and without `[]` is the only clash at a
    // place (a constant at a rule's place is its default, or a class member its override).
    let class_members: Vec<TargetPath> = [
        "activity_id",
        "category_name",
        "category_uid",
        "class_name",
        "class_uid",
        "type_uid",
    ]
    .into_iter()
    .chain(kind.activity_name.as_ref().map(|_| "activity_name"))
    .map(|p| TargetPath::parse(p).expect("a plain key"))
    .collect();
    // Each path with the index of its rule (None for constants and class members).
    let paths: Vec<(&TargetPath, Option<usize>)> = kind
        .mapper
        .rules
        .iter()
        .enumerate()
        .map(|(i, r)| (&targets[r.slot as usize], Some(i)))
        .chain(kind.set.iter().map(|(p, _)| (p, None)))
        .chain(kind.ensure.iter().map(|(p, _)| (p, None)))
        .chain(class_members.iter().map(|p| (p, None)))
        .collect();
    for (i, &(a, a_rule)) in paths.iter().enumerate() {
        for &(b, b_rule) in &paths[i + 1..] {
            if overlap(a, b, a_rule.is_some() && b_rule.is_some()) {
                return Err(PlaceClash {
                    message: format!(
                        "event {:?}: target paths {:?} and {:?} overlap (one place cannot hold a value and members, or members and elements)",
                        kind.name, a.text, b.text
                    ),
                    // The later rule: the earlier one stood alone until it came.
                    rule: b_rule.or(a_rule),
                });
            }
        }
    }
    Ok(())
}

/// Why an event kind's places clash, and the rule (index into its rules) to point at.
struct PlaceClash {
    message: String,
    rule: Option<usize>,
}

fn overlap(a: &TargetPath, b: &TargetPath, both_rules: bool) -> bool {
    for (x, y) in a.segments.iter().zip(&b.segments) {
        match (x, y) {
            (Segment::Key(x), Segment::Key(y)) if x != y => return false,
            (Segment::Index(x), Segment::Index(y)) if x != y => return false,
            (Segment::Key(_), Segment::Index(_)) | (Segment::Index(_), Segment::Key(_)) => {
                return true
            }
            _ => {}
        }
    }
    a.segments.len() != b.segments.len() || (both_rules && a.push != b.push)
}

fn regex(
    ctx: &Ctx<'_>,
    pattern: &str,
    span: std::ops::Range<usize>,
) -> Result<regex::Regex, GrammarError> {
    // The size limit keeps a user's pattern from compiling into a huge automaton.
    regex::RegexBuilder::new(pattern)
        .size_limit(1 << 20)
        .build()
        .map_err(|e| ctx.err(span, format!("invalid regular expression {pattern:?}: {e}")))
}

fn transform(ctx: &Ctx<'_>, map: &MapSpec) -> Result<Transform, GrammarError> {
    let name = map.transform.as_ref().map(|t| t.get_ref().as_str());
    let span = map
        .transform
        .as_ref()
        .map(|t| t.span())
        .unwrap_or_else(|| map.from.span());
    match (name, &map.table) {
        (None | Some("enum"), Some(table)) => {
            let table = table
                .iter()
                .map(|(k, v)| {
                    serde_json::to_value(v)
                        .map(|v| (k.clone(), Node::from(v)))
                        .map_err(|e| ctx.err(span.clone(), e.to_string()))
                })
                .collect::<Result<Vec<_>, _>>()?;
            let default = match &map.default {
                Some(d) => Some(Node::from(
                    serde_json::to_value(d).map_err(|e| ctx.err(span.clone(), e.to_string()))?,
                )),
                None => None,
            };
            Ok(Transform::Enum { table, default })
        }
        (Some("enum"), None) => Err(ctx.err(span, "transform \"enum\" needs an `enum` table")),
        (Some(other), Some(_)) => Err(ctx.err(
            span,
            format!("an `enum` table goes with transform \"enum\", not {other:?}"),
        )),
        (None, None) => Ok(Transform::Identity),
        (Some(name), None) => {
            Transform::from_name(name, map.separator.as_deref()).ok_or_else(|| {
                ctx.err(
                    span,
                    format!(
                        "unknown transform {name:?}; known: {}",
                        TRANSFORM_NAMES.join(", ")
                    ),
                )
            })
        }
    }
}
