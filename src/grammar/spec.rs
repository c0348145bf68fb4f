//! The grammar file format (TOML), as written by users. `compile` turns it into lookup
//! tables; nothing here is looked at per message.

use std::collections::BTreeMap;

use serde::Deserialize;
use toml::Spanned;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GrammarSpec {
    pub name: Spanned<String>,
    #[serde(default)]
    pub title: String,
    /// `cef`, `pipe`, `json`, `json_members`, `kv`, or a list of them.
    pub format: Spanned<OneOrMany>,
    /// Higher is tried first; generic grammars use 0.
    #[serde(default)]
    pub priority: i32,
    /// The vendor's own cut-off (KATA 32768, Perception Point 1024): a message this long or
    /// longer is treated as truncated and its last field as incomplete.
    #[serde(default)]
    pub max_message_bytes: usize,
    /// Product for formats without a CEF header.
    #[serde(default)]
    pub product: Option<ProductSpec>,
    #[serde(default)]
    pub cef: CefOptions,
    #[serde(default)]
    pub detect: Option<DetectSpec>,
    /// Mappings that apply to every event kind of this grammar.
    #[serde(default)]
    pub map: Vec<MapSpec>,
    #[serde(default, rename = "event")]
    pub events: Vec<EventSpec>,
}

#[derive(Debug, Deserialize, Clone)]
#[serde(untagged)]
pub enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

impl OneOrMany {
    pub fn to_vec(&self) -> Vec<String> {
        match self {
            OneOrMany::One(s) => vec![s.clone()],
            OneOrMany::Many(v) => v.clone(),
        }
    }
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct ProductSpec {
    pub vendor_name: Option<String>,
    pub name: Option<String>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct CefOptions {
    /// Extension keys whose value is JSON running to the end of the message (`json`).
    #[serde(default)]
    pub json_keys: Vec<String>,
    /// Fold `cs1Label`/`cs1`-style pairs into `cef_custom.<label>`. KATA puts data in
    /// `cs3Label`, so its grammar turns this off.
    #[serde(default = "default_true")]
    pub custom_labels: bool,
}

fn default_true() -> bool {
    true
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DetectSpec {
    pub when: Spanned<ConditionSpec>,
}

/// One condition. Exactly one of `equals`, `starts_with`, `exists` with `field`, or one of
/// `all` / `any`.
#[derive(Debug, Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub struct ConditionSpec {
    pub field: Option<String>,
    pub equals: Option<OneOrMany>,
    /// Case-insensitive `equals`.
    pub iequals: Option<OneOrMany>,
    pub starts_with: Option<OneOrMany>,
    /// A regular expression that must match somewhere in the field's text.
    pub matches: Option<String>,
    pub exists: Option<bool>,
    pub all: Option<Vec<ConditionSpec>>,
    pub any: Option<Vec<ConditionSpec>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventSpec {
    pub name: String,
    /// Absent: the fallback kind (must be the last one).
    pub when: Option<Spanned<ConditionSpec>>,
    pub class_uid: Spanned<u32>,
    pub activity_id: u32,
    pub activity_name: Option<String>,
    /// Events of this kind are the source's heartbeat (`sluice.heartbeat`, and the
    /// `sluice_source_last_heartbeat_timestamp_seconds` metric).
    #[serde(default)]
    pub heartbeat: bool,
    /// Why this class: required reading for whoever maintains the grammar.
    #[serde(default)]
    pub why: String,
    /// Constants set when the mapping left them absent.
    #[serde(default)]
    pub set: BTreeMap<String, toml::Value>,
    /// Constants set only when their parent object exists (e.g. `device.type_id = 0`).
    #[serde(default)]
    pub ensure: BTreeMap<String, toml::Value>,
    #[serde(default)]
    pub map: Vec<MapSpec>,
}

#[derive(Debug, Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub struct MapSpec {
    pub from: Spanned<String>,
    pub to: Spanned<String>,
    #[serde(default)]
    pub transform: Option<Spanned<String>>,
    /// Enum table for `transform = "enum"` (implied when present); keys match case-insensitively.
    #[serde(default, rename = "enum")]
    pub table: Option<BTreeMap<String, toml::Value>>,
    /// Value when the enum table has no entry (otherwise the field stays unmapped).
    #[serde(default)]
    pub default: Option<toml::Value>,
    /// Separator for `transform = "list"` / `"email_list"`.
    #[serde(default)]
    pub separator: Option<String>,
    /// A regular expression: the rule maps its first capture group (or the whole match when
    /// it has no group) and skips the field when it does not match. Such a rule reads part
    /// of a field, so it never takes the field out of `unmapped`: another rule must.
    #[serde(default)]
    pub pattern: Option<Spanned<String>>,
    /// Also keep the vendor's value under `unmapped` (e.g. the vendor's own severity).
    #[serde(default)]
    pub keep: bool,
}
