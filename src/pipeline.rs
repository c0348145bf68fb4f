//! One received message → one normalised event:
//! syslog header → format detection → format parser → grammar → OCSF event.
//!
//! `Pipeline::parse` never fails and never panics on any input: a message it cannot read
//! becomes a Base Event with status `unrecognised` or `failed`, its raw text and the reason.

use std::borrow::Cow;
use std::sync::Arc;

use serde_json::Value;

use crate::event::{ocsf, Node, Object};
use crate::format::{self, cef, json, kv, pipe, Format};
use crate::grammar::{FlatField, Grammar, GrammarSet, MapContext, Namespace, Record};
use crate::source::Message;
use crate::syslog::{self, SyslogHeader, TimeContext};
use crate::time::{self, DefaultZone};

/// The members [`Pipeline::finish`] adds to `metadata` (a grammar sizes the object for
/// them: `grammar::compile`).
pub(crate) const METADATA_MEMBERS: [&str; 4] =
    ["is_truncated", "logged_time", "product", "version"];

/// Version of the `sluice` extension object contract.
pub const SCHEMA_VERSION: &str = "1";

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Status {
    Ok,
    Partial,
    Unrecognised,
    Failed,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Ok => "ok",
            Status::Partial => "partial",
            Status::Unrecognised => "unrecognised",
            Status::Failed => "failed",
        }
    }
}

/// Stable error codes (metric labels; documented in docs/parse-errors.md).
pub mod codes {
    pub const INVALID_UTF8: &str = "invalid_utf8";
    pub const MESSAGE_TRUNCATED: &str = "message_truncated";
    pub const UNRECOGNISED_FORMAT: &str = "unrecognised_format";
    pub const EMPTY_MESSAGE: &str = "empty_message";
    pub const CEF_HEADER_TRUNCATED: &str = "cef_header_truncated";
    pub const JSON_INVALID: &str = "json_invalid";
    pub const JSON_REPAIRED: &str = "json_repaired";
    pub const EMBEDDED_JSON_INVALID: &str = "embedded_json_invalid";
    pub const NO_GRAMMAR: &str = "no_grammar";
    pub const GRAMMAR_FORMAT_MISMATCH: &str = "grammar_format_mismatch";
    pub const NO_EVENT_KIND: &str = "no_event_kind";
    pub const FIELD_CONVERSION_FAILED: &str = "field_conversion_failed";

    pub const ALL: &[&str] = &[
        INVALID_UTF8,
        MESSAGE_TRUNCATED,
        UNRECOGNISED_FORMAT,
        EMPTY_MESSAGE,
        CEF_HEADER_TRUNCATED,
        JSON_INVALID,
        JSON_REPAIRED,
        EMBEDDED_JSON_INVALID,
        NO_GRAMMAR,
        GRAMMAR_FORMAT_MISMATCH,
        NO_EVENT_KIND,
        FIELD_CONVERSION_FAILED,
    ];
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParseError {
    pub code: &'static str,
    pub message: String,
    pub offset: Option<usize>,
}

impl ParseError {
    fn new(code: &'static str, message: impl Into<String>, offset: Option<usize>) -> Self {
        ParseError {
            code,
            message: message.into(),
            offset,
        }
    }

    fn into_node<'a>(self) -> Node<'a> {
        let mut obj = Object::with_capacity(3);
        obj.push_sorted("code", self.code);
        obj.push_sorted("message", self.message);
        if let Some(offset) = self.offset {
            obj.push_sorted("offset", offset);
        }
        Node::Object(obj)
    }
}

#[derive(Clone, Debug)]
pub struct ParseOptions {
    pub zone: DefaultZone,
    /// Keep `raw_data` (the message as received) in events parsed `ok`; events of any other
    /// status always keep it. On by default.
    pub raw_data: bool,
    /// Force this grammar for every message (`sluice parse --grammar`, a pinned listener).
    pub grammar: Option<String>,
}

impl Default for ParseOptions {
    fn default() -> Self {
        ParseOptions {
            zone: DefaultZone::Utc,
            raw_data: true,
            grammar: None,
        }
    }
}

pub struct Pipeline {
    grammars: GrammarSet,
    options: ParseOptions,
    forced: Option<Arc<Grammar>>,
}

/// The parts of the outcome that exist whatever the path through `parse`.
struct Outcome<'m> {
    text: &'m str,
    header: SyslogHeader<'m>,
    format: Format,
    errors: Vec<ParseError>,
    /// Extra members for `unmapped` (CEF prefix, JSON trailing text, a truncated field).
    extra: Object<'m>,
}

/// One normalised event, as a tree that borrows from the message and the grammar while
/// the parse worker writes and routes it.
pub struct Event<'a> {
    /// The event object (always a `Node::Object`).
    pub tree: Node<'a>,
    pub status: Status,
    /// The grammar that mapped the event, if any (`sluice.grammar`): kept beside the tree
    /// so the worker's counters need not search for it.
    pub grammar: Option<&'a str>,
    /// The event is a source's heartbeat (`sluice.heartbeat`).
    pub heartbeat: bool,
}

impl<'a> Event<'a> {
    /// Appends the event's compact JSON (the bytes serde_json writes for `into_value`).
    pub fn write_json(&self, out: &mut Vec<u8>) {
        self.tree.write_json(out)
    }

    /// [`Event::write_json`] for an event no longer needed: the tree is freed as it is
    /// written, in one walk.
    pub fn into_json(self, out: &mut Vec<u8>) {
        self.tree.into_json(out)
    }

    pub fn into_value(self) -> Value {
        self.tree.into_value()
    }
}

/// Byte offset of `part` inside `whole` (both from the same buffer).
fn offset_in(whole: &str, part: &str) -> usize {
    (part.as_ptr() as usize).saturating_sub(whole.as_ptr() as usize)
}

impl Pipeline {
    pub fn new(grammars: GrammarSet, options: ParseOptions) -> Result<Pipeline, String> {
        let forced = match &options.grammar {
            Some(name) => Some(grammars.get(name).cloned().ok_or_else(|| {
                format!("no grammar named {name:?}; loaded: {}", grammars.names())
            })?),
            None => None,
        };
        Ok(Pipeline {
            grammars,
            options,
            forced,
        })
    }

    pub fn grammars(&self) -> &GrammarSet {
        &self.grammars
    }

    /// Parses one message into one event, as a `serde_json::Value` (tests, tools).
    pub fn parse(&self, message: &Message) -> Value {
        self.parse_with(message, |event| event.into_value())
    }

    /// Parses one message into one event and hands it to `use_event`, which may borrow it
    /// (the event borrows the message text, repaired when it was not UTF-8).
    pub fn parse_with<R>(&self, message: &Message, use_event: impl FnOnce(Event<'_>) -> R) -> R {
        // The SIMD check first (every message passes it); the standard library's only to
        // find where an invalid message goes wrong.
        let (text, utf8_error) = match simdutf8::basic::from_utf8(&message.bytes) {
            Ok(text) => (Cow::Borrowed(text), None),
            Err(_) => (
                String::from_utf8_lossy(&message.bytes),
                std::str::from_utf8(&message.bytes)
                    .err()
                    .map(|e| e.valid_up_to()),
            ),
        };
        let made = json::Made::new();
        use_event(self.parse_text(message, &text, utf8_error, &made))
    }

    fn parse_text<'a>(
        &'a self,
        message: &'a Message,
        text: &'a str,
        utf8_error: Option<usize>,
        made: &'a json::Made,
    ) -> Event<'a> {
        let tctx = TimeContext {
            received_ms: message.received_ms,
            zone: self.options.zone,
        };
        let (header, payload) = if message.json_record {
            (SyslogHeader::absent(), text)
        } else {
            syslog::parse(text, &tctx)
        };
        let mut out = Outcome {
            text,
            header,
            format: Format::Unknown,
            errors: Vec::new(),
            extra: Object::new(),
        };
        if let Some(at) = utf8_error {
            out.errors.push(ParseError::new(
                codes::INVALID_UTF8,
                "invalid UTF-8 replaced with U+FFFD",
                Some(at),
            ));
        }
        if message.truncated {
            out.errors.push(ParseError::new(
                codes::MESSAGE_TRUNCATED,
                "the message was cut at the receive limit",
                Some(text.len()),
            ));
        }
        out.format = format::detect(payload);
        let payload_at = offset_in(text, payload);
        match out.format {
            Format::Unknown => {
                let (code, why) = if payload.trim().is_empty() {
                    (codes::EMPTY_MESSAGE, "the message has no payload")
                } else {
                    (
                        codes::UNRECOGNISED_FORMAT,
                        "the payload is not CEF, pipe, JSON or key=value",
                    )
                };
                out.errors
                    .push(ParseError::new(code, why, Some(payload_at)));
                self.base_event(message, out, Status::Unrecognised, None)
            }
            Format::Cef { start } => self.parse_cef(message, out, payload, start, made),
            Format::Pipe | Format::Kv => {
                let flat = if out.format == Format::Pipe {
                    pipe::parse(payload)
                        .into_iter()
                        .map(|f| FlatField {
                            ns: Namespace::Pipe,
                            key: Cow::Borrowed(f.key),
                            value: Cow::Borrowed(f.value),
                        })
                        .collect()
                } else {
                    kv::parse(payload)
                        .into_iter()
                        .map(|f| FlatField {
                            ns: Namespace::Kv,
                            key: Cow::Borrowed(f.key),
                            value: f.value,
                        })
                        .collect()
                };
                self.map_record(message, out, None, flat, None)
            }
            Format::Json | Format::JsonMembers => {
                let parsed = if out.format == Format::Json {
                    json::parse(payload)
                } else {
                    json::parse_members(payload, made)
                };
                match parsed {
                    Ok(value) => self.map_record(message, out, None, Vec::new(), Some(value)),
                    Err(e) => {
                        out.errors.push(ParseError::new(
                            codes::JSON_INVALID,
                            format!("invalid JSON: {e}"),
                            Some(payload_at),
                        ));
                        self.base_event(message, out, Status::Failed, None)
                    }
                }
            }
        }
    }

    fn parse_cef<'a>(
        &'a self,
        message: &'a Message,
        mut out: Outcome<'a>,
        payload: &'a str,
        start: usize,
        made: &'a json::Made,
    ) -> Event<'a> {
        let cef_message = match cef::parse_header(payload, start) {
            Ok(m) => m,
            Err(truncated) => {
                out.errors.push(ParseError::new(
                    codes::CEF_HEADER_TRUNCATED,
                    format!(
                        "the CEF header has {} of its 7 fields",
                        truncated.fields.len()
                    ),
                    Some(offset_in(out.text, payload) + start),
                ));
                let fields = truncated.fields.into_iter().map(Node::from).collect();
                out.extra.insert("header_fields", Node::Array(fields));
                return self.base_event(message, out, Status::Failed, None);
            }
        };
        if !cef_message.prefix.is_empty() {
            out.extra.insert("cef_prefix", cef_message.prefix);
        }
        let probe = Record {
            syslog: &out.header,
            header: Some(&cef_message.header),
            flat: Vec::new(),
            json: None,
        };
        let grammar = match self.choose(message, out.format, &probe) {
            Ok(g) => g,
            Err(e) => {
                out.errors.push(e);
                return self.base_event(message, out, Status::Failed, None);
            }
        };
        let ext_at = offset_in(out.text, cef_message.extension);
        let fields = cef::parse_extension(cef_message.extension, &grammar.json_keys);
        let mut flat = Vec::with_capacity(fields.len());
        let mut embedded = None;
        let truncated = self.truncated(message, grammar, &mut out);
        let last = fields.len().saturating_sub(1);
        for (i, field) in fields.into_iter().enumerate() {
            if truncated && i == last {
                out.extra
                    .insert("truncated_field", single(field.key, field.value));
                continue;
            }
            if embedded.is_none() && grammar.json_keys.iter().any(|k| k == field.key) {
                let at = ext_at + field.offset;
                let parsed = match &field.value {
                    Cow::Borrowed(text) => json::parse_lenient_in_place(text, made),
                    Cow::Owned(text) => json::parse_lenient(text, made),
                };
                match parsed {
                    Ok((value, repairs)) => {
                        if repairs.any() {
                            out.errors.push(ParseError::new(
                                codes::JSON_REPAIRED,
                                {
                                    let mut text = String::with_capacity(160);
                                    text.push_str(field.key);
                                    text.push_str("= JSON repaired: ");
                                    repairs.describe_into(&mut text);
                                    text
                                },
                                Some(at),
                            ));
                        }
                        if let Some(trailing) = repairs.trailing {
                            out.extra.insert("json_trailing", trailing);
                        }
                        embedded = Some(value);
                        continue;
                    }
                    Err(e) => out.errors.push(ParseError::new(
                        codes::EMBEDDED_JSON_INVALID,
                        format!("{}= is not JSON ({e}); kept as text", field.key),
                        Some(at),
                    )),
                }
            }
            FlatField::push_onto(
                &mut flat,
                Namespace::Cef,
                Cow::Borrowed(field.key),
                field.value,
            );
        }
        if grammar.custom_labels {
            fold_custom_labels(&mut flat);
        }
        self.map_record_with(
            message,
            out,
            grammar,
            Some(&cef_message.header),
            flat,
            embedded,
        )
    }

    /// Whether the message is (or must be assumed) cut at its end, adding the error once.
    fn truncated(&self, message: &Message, grammar: &Grammar, out: &mut Outcome<'_>) -> bool {
        if message.truncated {
            return true;
        }
        if grammar.max_message_bytes > 0 && message.bytes.len() >= grammar.max_message_bytes {
            out.errors.push(ParseError::new(
                codes::MESSAGE_TRUNCATED,
                format!(
                    "the message is {} bytes, at the {} limit of {}: its last field may be cut",
                    message.bytes.len(),
                    grammar.name,
                    grammar.max_message_bytes
                ),
                Some(out.text.len()),
            ));
            return true;
        }
        false
    }

    /// The grammar for this message: forced by the options, pinned by the listener, or
    /// detected.
    fn choose<'p>(
        &'p self,
        message: &Message,
        format: Format,
        record: &Record<'_, '_>,
    ) -> Result<&'p Arc<Grammar>, ParseError> {
        let pinned = match (&self.forced, &message.received.grammar) {
            (Some(g), _) => Some(g),
            (None, Some(name)) => Some(self.grammars.get(name).ok_or_else(|| {
                ParseError::new(
                    codes::NO_GRAMMAR,
                    format!("the listener's grammar {name:?} is not loaded"),
                    None,
                )
            })?),
            (None, None) => None,
        };
        match pinned {
            Some(g) if g.accepts(format) => Ok(g),
            Some(g) => Err(ParseError::new(
                codes::GRAMMAR_FORMAT_MISMATCH,
                format!(
                    "grammar {} reads {}, but the message is {}",
                    g.name,
                    g.formats
                        .iter()
                        .map(|f| f.as_str())
                        .collect::<Vec<_>>()
                        .join("/"),
                    format.as_str()
                ),
                None,
            )),
            None => self.grammars.select(format, record).ok_or_else(|| {
                ParseError::new(
                    codes::NO_GRAMMAR,
                    format!("no grammar accepts this {} message", format.as_str()),
                    None,
                )
            }),
        }
    }

    fn map_record<'a>(
        &'a self,
        message: &'a Message,
        mut out: Outcome<'a>,
        cef_header: Option<&cef::CefHeader<'a>>,
        flat: Vec<FlatField<'a>>,
        json: Option<Node<'a>>,
    ) -> Event<'a> {
        let probe = Record {
            syslog: &out.header,
            header: cef_header,
            flat,
            json,
        };
        let chosen = self.choose(message, out.format, &probe);
        let Record { mut flat, json, .. } = probe;
        let grammar = match chosen {
            Ok(g) => g,
            Err(e) => {
                out.errors.push(e);
                return self.base_event(message, out, Status::Failed, None);
            }
        };
        if self.truncated(message, grammar, &mut out) {
            if let Some(last) = flat.pop() {
                out.extra
                    .insert("truncated_field", single(last.key, last.value));
            }
        }
        self.map_record_with(message, out, grammar, cef_header, flat, json)
    }

    fn map_record_with<'a>(
        &'a self,
        message: &'a Message,
        mut out: Outcome<'a>,
        grammar: &'a Arc<Grammar>,
        cef_header: Option<&cef::CefHeader<'a>>,
        flat: Vec<FlatField<'a>>,
        json: Option<Node<'a>>,
    ) -> Event<'a> {
        let header = std::mem::replace(&mut out.header, SyslogHeader::absent());
        let record = Record {
            syslog: &header,
            header: cef_header,
            flat,
            json,
        };
        let Some(kind) = grammar.kind(&record) else {
            out.errors.push(ParseError::new(
                codes::NO_EVENT_KIND,
                format!(
                    "grammar {} has no event kind for this message",
                    grammar.name
                ),
                None,
            ));
            out.header = header;
            return self.base_event(message, out, Status::Partial, Some(grammar));
        };
        let ctx = MapContext {
            zone: self.options.zone,
            now_ms: message.received_ms,
        };
        let mapped = kind.map(record, &ctx);
        let mut unmapped = mapped.unmapped;
        for failure in &mapped.failures {
            let rule = &kind.mapper.rules[failure.rule as usize];
            out.errors.push(ParseError::new(
                codes::FIELD_CONVERSION_FAILED,
                format!(
                    "{} {:?} is not a valid {} for {}; kept under unmapped",
                    rule.source,
                    failure.value,
                    rule.transform.name(),
                    grammar.targets[rule.slot as usize].text
                ),
                None,
            ));
        }
        let winners = kind.resolve(grammar, mapped.values, &mut unmapped);
        let mut root = Object::with_capacity(24);
        crate::event::build_sorted(&mut root, &grammar.targets, winners);
        for (target, value) in &kind.set {
            target.insert_if_absent(&mut root, value.reborrow());
        }
        for (target, value) in &kind.ensure {
            target.insert_if_parent_exists(&mut root, value.reborrow());
        }
        let class = ocsf::class(kind.class_uid).expect("class checked at compile time");
        let class = ClassMembers {
            activity_id: kind.activity_id,
            activity_name: kind.activity_name.as_deref(),
            category_name: class.category_name,
            category_uid: class.category_uid,
            class_name: class.name,
            class_uid: class.uid,
            type_uid: class.uid as u64 * 100 + kind.activity_id as u64,
        };
        let product = match cef_header {
            Some(h) => product(
                Some(h.vendor.clone()),
                Some(h.product.clone()),
                Some(h.device_version.clone()),
            ),
            None => product(
                grammar.product_vendor.as_deref().map(Cow::Borrowed),
                grammar.product_name.as_deref().map(Cow::Borrowed),
                None,
            ),
        };
        out.header = header;
        for (key, value) in std::mem::take(&mut out.extra).into_members() {
            unmapped.insert(key, value);
        }
        let status = if out.errors.is_empty() {
            Status::Ok
        } else {
            Status::Partial
        };
        let kind = Some((kind.name.as_str(), kind.heartbeat));
        self.finish(
            message,
            out,
            root,
            class,
            product,
            unmapped,
            status,
            Some(grammar),
            kind,
        )
    }

    /// A Base Event for a message no grammar mapped (unrecognised, failed, no event kind).
    fn base_event<'a>(
        &'a self,
        message: &'a Message,
        mut out: Outcome<'a>,
        status: Status,
        grammar: Option<&'a Arc<Grammar>>,
    ) -> Event<'a> {
        let class = ClassMembers {
            activity_id: 0,
            activity_name: None,
            category_name: "Uncategorized",
            category_uid: 0,
            class_name: "Base Event",
            class_uid: 0,
            type_uid: 0,
        };
        let name = out.header.app_name.unwrap_or("unknown");
        let product = product(None, Some(Cow::Borrowed(name)), None);
        let unmapped = std::mem::take(&mut out.extra);
        let root = Object::new();
        self.finish(
            message, out, root, class, product, unmapped, status, grammar, None,
        )
    }

    #[allow(clippy::too_many_arguments)]
    fn finish<'a>(
        &'a self,
        message: &'a Message,
        out: Outcome<'a>,
        mut root: Object<'a>,
        class: ClassMembers<'a>,
        product: Object<'a>,
        unmapped: Object<'a>,
        status: Status,
        grammar: Option<&'a Arc<Grammar>>,
        // The grammar's event kind that mapped the message, and whether it is a heartbeat.
        kind: Option<(&'a str, bool)>,
    ) -> Event<'a> {
        let mapped_severity_id = root.get("severity_id").and_then(Node::as_i64);
        let time = root
            .get("time")
            .and_then(Node::as_i64)
            .or(out.header.timestamp_ms)
            .unwrap_or(message.received_ms);
        let metadata = root.entry_or_insert_with("metadata", || {
            Node::Object(Object::with_capacity(METADATA_MEMBERS.len()))
        });
        if let Node::Object(metadata) = metadata {
            if status != Status::Ok {
                let truncated = out
                    .errors
                    .iter()
                    .any(|e| e.code == codes::MESSAGE_TRUNCATED);
                if truncated {
                    metadata.insert("is_truncated", true);
                }
            }
            metadata.insert("logged_time", message.received_ms);
            metadata.insert("product", product);
            metadata.insert("version", ocsf::OCSF_VERSION);
        }
        // Members in key order: each one is appended.
        let mut sluice = Object::with_capacity(8);
        if let Some((kind, _)) = kind {
            sluice.push_sorted("event_kind", kind);
        }
        sluice.push_sorted("format", out.format.as_str());
        if let Some(g) = grammar {
            sluice.push_sorted("grammar", g.name.as_str());
        }
        let heartbeat = kind.is_some_and(|(_, heartbeat)| heartbeat);
        if heartbeat {
            sluice.push_sorted("heartbeat", true);
        }
        let mut parse = Object::with_capacity(2);
        parse.push_sorted(
            "errors",
            Node::Array(out.errors.into_iter().map(ParseError::into_node).collect()),
        );
        parse.push_sorted("status", status.as_str());
        sluice.push_sorted("parse", parse);
        sluice.push_sorted("received", received_json(message));
        sluice.push_sorted("schema_version", SCHEMA_VERSION);
        if out.header.rfc != syslog::Rfc::None {
            sluice.push_sorted("syslog", syslog_json(&out.header));
        }
        // The members every event gets, in key order, merged into the mapped ones in one
        // pass: they interleave with them, and inserted one by one each cost a search and
        // a shift. Each replaces a mapped value at its key (a class member overrides a
        // rule; the time is the mapped one or its fallback).
        let mut fixed = Object::with_capacity(16);
        fixed.push_sorted("activity_id", class.activity_id);
        if let Some(name) = class.activity_name {
            fixed.push_sorted("activity_name", name);
        }
        fixed.push_sorted("category_name", class.category_name);
        fixed.push_sorted("category_uid", class.category_uid);
        fixed.push_sorted("class_name", class.class_name);
        fixed.push_sorted("class_uid", class.class_uid);
        // Turning raw_data off saves output for events that were understood; one that was
        // not fully parsed keeps its text, else nothing would carry what the sender meant.
        if self.options.raw_data || status != Status::Ok {
            fixed.push_sorted("raw_data", out.text);
        }
        fixed.push_sorted(
            "severity",
            ocsf::severity_caption(mapped_severity_id.unwrap_or(0)),
        );
        if mapped_severity_id.is_none() {
            fixed.push_sorted("severity_id", 0u32);
        }
        fixed.push_sorted("sluice", sluice);
        fixed.push_sorted("time", time);
        if let Some(dt) = time::ms_to_rfc3339(time) {
            fixed.push_sorted("time_dt", dt);
        }
        fixed.push_sorted("type_uid", class.type_uid);
        if !unmapped.is_empty() {
            fixed.push_sorted("unmapped", unmapped);
        }
        root.merge(fixed);
        Event {
            tree: Node::Object(root),
            status,
            grammar: grammar.map(|g| g.name.as_str()),
            heartbeat,
        }
    }
}

/// The class and activity members of an event, which every event carries.
struct ClassMembers<'a> {
    activity_id: u32,
    activity_name: Option<&'a str>,
    category_name: &'a str,
    category_uid: u32,
    class_name: &'a str,
    class_uid: u32,
    type_uid: u64,
}

fn single<'a>(key: impl Into<Cow<'a, str>>, value: Cow<'a, str>) -> Object<'a> {
    let mut obj = Object::with_capacity(1);
    obj.push_sorted(key, value);
    obj
}

fn product<'a>(
    vendor: Option<Cow<'a, str>>,
    name: Option<Cow<'a, str>>,
    version: Option<Cow<'a, str>>,
) -> Object<'a> {
    let mut obj = Object::with_capacity(3);
    // Members in key order: each one is appended.
    let name = name
        .filter(|v| !v.is_empty())
        .unwrap_or(Cow::Borrowed("unknown"));
    obj.push_sorted("name", name);
    for (key, value) in [("vendor_name", vendor), ("version", version)] {
        if let Some(v) = value.filter(|v| !v.is_empty()) {
            obj.push_sorted(key, v);
        }
    }
    obj
}

/// CEF custom fields: `cs1Label=Foo cs1=bar` → `cef_custom.Foo = bar`. A value without its
/// label, or a label without its value, stays as sent.
fn fold_custom_labels(flat: &mut Vec<FlatField<'_>>) {
    if !flat.iter().any(|f| f.key.ends_with("Label")) {
        return;
    }
    for (value_key, label_key) in cef::CUSTOM_FIELD_LABELS {
        let Some(vi) = flat.iter().position(|f| f.key == *value_key) else {
            continue;
        };
        let Some(li) = flat.iter().position(|f| f.key == *label_key) else {
            continue;
        };
        let label = flat[li].value.clone();
        if label.trim().is_empty() {
            continue;
        }
        let value = flat[vi].value.clone();
        let (first, second) = if vi > li { (vi, li) } else { (li, vi) };
        flat.remove(first);
        flat.remove(second);
        flat.push(FlatField {
            ns: Namespace::CefCustom,
            key: Cow::Owned(label.trim().to_string()),
            value,
        });
    }
}

fn syslog_json<'a>(header: &SyslogHeader<'a>) -> Object<'a> {
    // Members in key order: each one is appended.
    let mut obj = Object::with_capacity(12);
    let priority = header.priority;
    for (key, value) in [
        ("app_name", header.app_name),
        ("facility", priority.map(|p| syslog::facility_name(p >> 3))),
        ("hostname", header.hostname),
        ("msgid", header.msgid),
    ] {
        if let Some(v) = value {
            obj.push_sorted(key, v);
        }
    }
    if let Some(p) = priority {
        obj.push_sorted("priority", p);
    }
    for (key, value) in [
        ("procid", header.procid),
        ("rfc", Some(header.rfc.as_str())),
        ("severity", priority.map(|p| syslog::severity_name(p & 7))),
    ] {
        if let Some(v) = value {
            obj.push_sorted(key, v);
        }
    }
    if !header.structured_data.is_empty() {
        // Repeated SD-IDs or parameter names: the last one wins, as in a JSON object.
        let sd: Object<'a> = header
            .structured_data
            .iter()
            .map(|element| {
                let params: Object<'a> = element
                    .params
                    .iter()
                    .map(|(name, value)| (Cow::Borrowed(*name), Node::Str(value.clone())))
                    .collect();
                (Cow::Borrowed(element.id), Node::Object(params))
            })
            .collect();
        obj.push_sorted("structured_data", sd);
    }
    if let Some(v) = header.timestamp_text {
        obj.push_sorted("timestamp", v);
    }
    obj
}

fn received_json(message: &Message) -> Object<'_> {
    let r = &message.received;
    // Members in key order: each one is appended.
    let mut obj = Object::with_capacity(8);
    obj.push_sorted("listener", r.listener.as_ref());
    if let Some(key) = &r.object_key {
        obj.push_sorted("object_key", key.as_ref());
    }
    if let Some(offset) = message.offset {
        obj.push_sorted("offset", offset);
    }
    if let Some(peer) = &r.peer {
        obj.push_sorted("peer", peer.as_ref());
    }
    if !r.tags.is_empty() {
        let tags: Object<'_> = r
            .tags
            .iter()
            .map(|(k, v)| (Cow::Borrowed(k.as_str()), Node::from(v.as_str())))
            .collect();
        obj.push_sorted("tags", tags);
    }
    if let Some(subject) = &r.tls_client_subject {
        obj.push_sorted(
            "tls",
            single("client_subject", Cow::Borrowed(subject.as_ref())),
        );
    }
    obj.push_sorted("transport", r.transport.as_str());
    obj
}
