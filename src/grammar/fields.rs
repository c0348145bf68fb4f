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

use serde_json::Value;

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

/// A field value as a rule sees it.
#[derive(Clone, Copy, Debug)]
pub enum FieldRef<'r> {
    Str(&'r str),
    Json(&'r Value),
}

impl<'r> FieldRef<'r> {
    /// Text form: strings as they are, numbers and booleans printed, objects/arrays/null none.
    pub fn as_text(self) -> Option<Cow<'r, str>> {
        match self {
            FieldRef::Str(s) => Some(Cow::Borrowed(s)),
            FieldRef::Json(Value::String(s)) => Some(Cow::Borrowed(s)),
            FieldRef::Json(v @ (Value::Number(_) | Value::Bool(_))) => {
                Some(Cow::Owned(v.to_string()))
            }
            FieldRef::Json(_) => None,
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

/// Everything a grammar can read from one message.
/// `'r` is the borrow of the parsed headers, `'a` the message text the fields borrow from.
pub struct Record<'r, 'a> {
    pub syslog: &'r SyslogHeader<'a>,
    pub header: Option<&'r CefHeader<'a>>,
    pub flat: Vec<FlatField<'a>>,
    pub json: Option<Value>,
}

impl Record<'_, '_> {
    pub fn get(&self, path: &SourcePath) -> Option<FieldRef<'_>> {
        match path.ns {
            Namespace::Syslog => {
                let s = self.syslog;
                match path.key() {
                    "hostname" => s.hostname,
                    "app_name" => s.app_name,
                    "procid" => s.procid,
                    "msgid" => s.msgid,
                    "timestamp" => s.timestamp_text,
                    _ => None,
                }
                .map(FieldRef::Str)
            }
            Namespace::Header => self
                .header?
                .get(path.key())
                .map(|v| FieldRef::Str(v.as_ref())),
            Namespace::Json => {
                let mut node = self.json.as_ref()?;
                for segment in &path.segments {
                    node = node.as_object()?.get(segment)?;
                }
                Some(FieldRef::Json(node))
            }
            ns => self
                .flat
                .iter()
                .find(|f| f.ns == ns && f.key == path.key())
                .map(|f| FieldRef::Str(f.value.as_ref())),
        }
    }
}
