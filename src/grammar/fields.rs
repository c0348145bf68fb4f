//! The parsed record as grammars see it: named fields in a few namespaces.
//!
//! | path            | what                                                        |
//! |-----------------|-------------------------------------------------------------|
//! | `syslog.<f>`    | syslog header: hostname, app_name, procid, msgid, timestamp |
//! | `header.<f>`    | CEF header: version, vendor, product, device_version, signature_id, name, severity |
//! | `cef.<key>`     | CEF extension key, exactly as sent (`cef.fName`, `cef.cs3Label`) |
//! | `cef_custom.<label>` | CEF custom field named by its `csNLabel`            |
//! | `json.<a.b.c>`  | JSON record, or the embedded JSON of a CEF `json=` key      |
//! | `pipe.<Key>`    | Perception Point key (`pipe.Scan ID`)                       |
//! | `kv.<key>`      | generic key=value                                           |

use std::borrow::Cow;

use crate::event::Node;

use crate::format::cef::CefHeader;
use crate::syslog::SyslogHeader;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Namespace {
    Syslog,
    Header,
    Cef,
    CefCustom,
    Json,
    Pipe,
    Kv,
}

impl Namespace {
    pub const ALL: [Namespace; 7] = [
        Namespace::Syslog,
        Namespace::Header,
        Namespace::Cef,
        Namespace::CefCustom,
        Namespace::Json,
        Namespace::Pipe,
        Namespace::Kv,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Namespace::Syslog => "syslog",
            Namespace::Header => "header",
            Namespace::Cef => "cef",
            Namespace::CefCustom => "cef_custom",
            Namespace::Json => "json",
            Namespace::Pipe => "pipe",
            Namespace::Kv => "kv",
        }
    }

    /// Index into per-namespace tables.
    pub fn index(self) -> usize {
        self as usize
    }
}

pub const SYSLOG_FIELDS: [&str; 5] = ["hostname", "app_name", "procid", "msgid", "timestamp"];

/// A source path from a grammar file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SourcePath {
    pub ns: Namespace,
    /// Flat namespaces: the key as written (it may contain dots: `ad.foo`).
    /// `json`: the dotted path's segments.
    pub segments: Vec<String>,
}

impl SourcePath {
    pub fn parse(text: &str) -> Result<SourcePath, String> {
        let (ns_name, rest) = text
            .split_once('.')
            .ok_or_else(|| format!("source path {text:?} has no namespace: write e.g. cef.src, json.file.name, pipe.Scan ID"))?;
        let ns = Namespace::ALL
            .into_iter()
            .find(|ns| ns.name() == ns_name)
            .ok_or_else(|| {
                format!(
                    "unknown namespace {ns_name:?} in {text:?}; known: {}",
                    Namespace::ALL.map(Namespace::name).join(", ")
                )
            })?;
        if rest.is_empty() {
            return Err(format!("source path {text:?} names no field"));
        }
        let segments = match ns {
            Namespace::Json => rest.split('.').map(str::to_string).collect(),
            _ => vec![rest.to_string()],
        };
        match ns {
            Namespace::Syslog if !SYSLOG_FIELDS.contains(&rest) => {
                return Err(format!(
                    "unknown syslog field {rest:?}; known: {}",
                    SYSLOG_FIELDS.join(", ")
                ))
            }
            Namespace::Header if !CefHeader::FIELD_NAMES.contains(&rest) => {
                return Err(format!(
                    "unknown CEF header field {rest:?}; known: {}",
                    CefHeader::FIELD_NAMES.join(", ")
                ))
            }
            _ => {}
        }
        Ok(SourcePath { ns, segments })
    }

    pub fn key(&self) -> &str {
        &self.segments[0]
    }
}

impl std::fmt::Display for SourcePath {
    /// As written in a grammar file: `json.file.name`, `pipe.Scan ID`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}", self.ns.name(), self.segments.join("."))
    }
}

/// A field value as a rule sees it. `'a` is the message text the event may borrow from,
/// `'r` the borrow of the parsed record.
#[derive(Clone, Copy, Debug)]
pub enum FieldRef<'r, 'a> {
    /// Text borrowed from the message: a transform's output can borrow it too.
    Text(&'a str),
    /// Text made while parsing (unescaped, part of a field): copied when kept.
    Temp(&'r str),
    Json(&'r Node<'a>),
}

impl<'r, 'a: 'r> FieldRef<'r, 'a> {
    pub fn from_cow(text: &'r Cow<'a, str>) -> Self {
        match text {
            Cow::Borrowed(s) => FieldRef::Text(s),
            Cow::Owned(s) => FieldRef::Temp(s),
        }
    }

    /// Text form: strings as they are, numbers and booleans printed, objects/arrays/null none.
    pub fn as_text(self) -> Option<Cow<'r, str>> {
        self.text().map(FieldText::into_cow)
    }

    /// The text form, knowing whether it lives as long as the message.
    pub fn text(self) -> Option<FieldText<'r, 'a>> {
        match self {
            FieldRef::Text(s) => Some(FieldText::Kept(s)),
            FieldRef::Temp(s) => Some(FieldText::Temp(Cow::Borrowed(s))),
            FieldRef::Json(Node::Str(Cow::Borrowed(s))) => Some(FieldText::Kept(s)),
            FieldRef::Json(node) => node.scalar_text().map(FieldText::Temp),
        }
    }
}

/// A field's text for a transform: [`FieldText::keep`] hands out parts of it that borrow
/// from the message when the text does.
#[derive(Debug)]
pub enum FieldText<'r, 'a> {
    Kept(&'a str),
    Temp(Cow<'r, str>),
}

impl<'r, 'a: 'r> FieldText<'r, 'a> {
    pub fn as_str(&self) -> &str {
        match self {
            FieldText::Kept(s) => s,
            FieldText::Temp(s) => s,
        }
    }

    fn into_cow(self) -> Cow<'r, str> {
        match self {
            FieldText::Kept(s) => Cow::Borrowed(s),
            FieldText::Temp(s) => s,
        }
    }

    /// `part` (a slice of [`Self::as_str`], or any other text) for the event: borrowed
    /// when it lies inside message text, else copied.
    pub fn keep(&self, part: &str) -> Cow<'a, str> {
        if let FieldText::Kept(whole) = self {
            let start = (part.as_ptr() as usize).wrapping_sub(whole.as_ptr() as usize);
            if let Some(inside) = whole.get(start..start.wrapping_add(part.len())) {
                if inside.as_ptr() == part.as_ptr() {
                    return Cow::Borrowed(inside);
                }
            }
        }
        Cow::Owned(part.to_string())
    }

    /// The whole text, for the event.
    pub fn keep_all(&self) -> Cow<'a, str> {
        match self {
            FieldText::Kept(s) => Cow::Borrowed(s),
            FieldText::Temp(s) => Cow::Owned(s.to_string()),
        }
    }
}

/// One flat field (CEF extension, custom field, pipe or kv pair).
#[derive(Clone, Debug)]
pub struct FlatField<'a> {
    pub ns: Namespace,
    pub key: Cow<'a, str>,
    pub value: Cow<'a, str>,
}

impl<'a> FlatField<'a> {
    /// `fields.push(FlatField { .. })`, stored field by field
    /// ([`crate::event::push_fields`]; `push` cost a tenth of the CEF parse's samples).
    #[inline(always)]
    pub fn push_onto(
        fields: &mut Vec<FlatField<'a>>,
        ns: Namespace,
        key: Cow<'a, str>,
        value: Cow<'a, str>,
    ) {
        crate::event::push_fields!(
            fields,
            FlatField {
                ns: ns,
                key: key,
                value: value,
            }
        );
    }
}

/// Everything a grammar can read from one message.
/// `'r` is the borrow of the parsed headers, `'a` the message text the fields borrow from.
pub struct Record<'r, 'a> {
    pub syslog: &'r SyslogHeader<'a>,
    pub header: Option<&'r CefHeader<'a>>,
    pub flat: Vec<FlatField<'a>>,
    pub json: Option<Node<'a>>,
}

impl<'a> Record<'_, 'a> {
    pub fn get(&self, path: &SourcePath) -> Option<FieldRef<'_, 'a>> {
        match path.ns {
            Namespace::Syslog => self.syslog_field(path.key()).map(FieldRef::Text),
            Namespace::Header => self.header?.get(path.key()).map(FieldRef::from_cow),
            Namespace::Json => {
                let mut node = self.json.as_ref()?;
                for segment in &path.segments {
                    node = node.get(segment)?;
                }
                Some(FieldRef::Json(node))
            }
            ns => self
                .flat
                .iter()
                .find(|f| f.ns == ns && f.key == path.key())
                .map(|f| FieldRef::from_cow(&f.value)),
        }
    }

    /// A syslog header field by its name in [`SYSLOG_FIELDS`].
    pub fn syslog_field(&self, name: &str) -> Option<&'a str> {
        let s = self.syslog;
        match name {
            "hostname" => s.hostname,
            "app_name" => s.app_name,
            "procid" => s.procid,
            "msgid" => s.msgid,
            "timestamp" => s.timestamp_text,
            _ => None,
        }
    }
}
