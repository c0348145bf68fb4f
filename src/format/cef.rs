//! CEF (ArcSight Common Event Format), to the spec and tolerant of what vendors send.
//!
//! Parsing is split in two so the grammar can be chosen from the header before the
//! extension is read: the grammar decides which keys carry embedded JSON that runs to the
//! end of the message (Symantec's `json=`).

use std::borrow::Cow;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CefHeader<'a> {
    pub version: Cow<'a, str>,
    pub vendor: Cow<'a, str>,
    pub product: Cow<'a, str>,
    pub device_version: Cow<'a, str>,
    pub signature_id: Cow<'a, str>,
    pub name: Cow<'a, str>,
    pub severity: Cow<'a, str>,
}

impl<'a> CefHeader<'a> {
    /// Header fields by the names grammars use (`header.<name>`).
    pub const FIELD_NAMES: [&'static str; 7] = [
        "version",
        "vendor",
        "product",
        "device_version",
        "signature_id",
        "name",
        "severity",
    ];

    pub fn fields(&self) -> [(&'static str, &Cow<'a, str>); 7] {
        [
            ("version", &self.version),
            ("vendor", &self.vendor),
            ("product", &self.product),
            ("device_version", &self.device_version),
            ("signature_id", &self.signature_id),
            ("name", &self.name),
            ("severity", &self.severity),
        ]
    }

    pub fn get(&self, name: &str) -> Option<&Cow<'a, str>> {
        self.fields()
            .into_iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v)
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CefMessage<'a> {
    /// Text before `CEF:` (e.g. `INFO - ATP-Appliance`), trimmed.
    pub prefix: &'a str,
    pub header: CefHeader<'a>,
    /// Everything after the seventh unescaped `|`.
    pub extension: &'a str,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HeaderTruncated<'a> {
    /// The header fields that were complete, in order.
    pub fields: Vec<Cow<'a, str>>,
}

/// Reads the header of the CEF record that starts at `start` (the offset of `CEF:`).
///
/// A record with six separators and no trailing `|` is accepted (severity then runs to the
/// end, extension empty): vendors omit the last pipe often enough. Fewer fields is an
/// error carrying the complete ones.
pub fn parse_header(payload: &str, start: usize) -> Result<CefMessage<'_>, HeaderTruncated<'_>> {
    let prefix = payload[..start].trim();
    let body = &payload[start + 4..];
    let bytes = body.as_bytes();
    let mut fields: Vec<Cow<'_, str>> = Vec::with_capacity(7);
    let mut field_start = 0;
    // Whether the current field holds a backslash: most do not, and are borrowed without
    // a second search.
    let mut escaped = false;
    let mut i = 0;
    // Only a backslash or a pipe matters: each is found sixteen bytes at a time, not byte
    // by byte (about ten instructions a byte of KATA's 120-byte headers).
    while fields.len() < 7 {
        let Some(at) = next_pipe_or_backslash(bytes, i) else {
            break;
        };
        i = at;
        if bytes[i] == b'\\' {
            escaped = true;
            i += 2;
        } else {
            fields.push(header_field(&body[field_start..i], escaped));
            escaped = false;
            field_start = i + 1;
            i += 1;
        }
    }
    let extension = if fields.len() == 7 {
        &body[field_start..]
    } else if fields.len() == 6 {
        fields.push(header_field(&body[field_start.min(body.len())..], escaped));
        ""
    } else {
        if field_start < body.len() {
            fields.push(header_field(&body[field_start..], escaped));
        }
        return Err(HeaderTruncated { fields });
    };
    let mut it = fields.into_iter();
    let mut next = || it.next().unwrap_or_default();
    let header = CefHeader {
        version: next(),
        vendor: next(),
        product: next(),
        device_version: next(),
        signature_id: next(),
        name: next(),
        severity: next(),
    };
    Ok(CefMessage {
        prefix,
        header,
        extension,
    })
}

/// A header field: `\|` → `|`, `\\` → `\`, other backslashes kept; spaces trimmed
/// (KATA pads its header fields). `escaped`: the field holds a backslash.
fn header_field(raw: &str, escaped: bool) -> Cow<'_, str> {
    let raw = super::trim(raw);
    if !escaped {
        return Cow::Borrowed(raw);
    }
    let mut out = String::with_capacity(raw.len());
    let mut chars = raw.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            match chars.next() {
                Some(n @ ('|' | '\\')) => out.push(n),
                Some(n) => {
                    out.push('\\');
                    out.push(n);
                }
                None => out.push('\\'),
            }
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// One extension pair. `offset` is the byte offset of the key within the extension.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExtField<'a> {
    pub key: &'a str,
    pub value: Cow<'a, str>,
    pub offset: usize,
}

/// Reads the extension. Keys are found by the `key=` rule: a run of key characters that
/// starts after a space (or at the start) and ends at an unescaped `=`. Everything up to the
/// space before the next key is the value, so values keep spaces, unescaped pipes and
/// `=` signs that do not follow a key-shaped word (URLs). A key in `rest_of_message_keys`
/// takes everything after it, verbatim.
pub fn parse_extension<'a, K: AsRef<str>>(
    extension: &'a str,
    rest_of_message_keys: &[K],
) -> Vec<ExtField<'a>> {
    let bytes = extension.as_bytes();
    // Find the first key.
    let Some((mut key_start, mut eq)) = next_key(bytes, 0, &mut false) else {
        return Vec::new();
    };
    // Room for the dozen or two fields vendors send, not grown 4, 8, 16.
    let mut fields = Vec::with_capacity(16);
    loop {
        let key = &extension[key_start..eq];
        let value_start = eq + 1;
        if rest_of_message_keys.iter().any(|k| k.as_ref() == key) {
            let value = extension[value_start..].trim_end_matches(['\r', '\n']);
            fields.push(ExtField {
                key,
                value: Cow::Borrowed(value),
                offset: key_start,
            });
            return fields;
        }
        // Whether the value holds a backslash, seen on the way to the next key: most do
        // not, and are borrowed without a second search.
        let mut escaped = false;
        match next_key(bytes, value_start, &mut escaped) {
            Some((next_start, next_eq)) => {
                // The value ends at the space that precedes the next key.
                let value_end = next_start.saturating_sub(1).max(value_start);
                let value = &extension[value_start..value_end];
                fields.push(ExtField {
                    key,
                    value: extension_value(value, escaped),
                    offset: key_start,
                });
                key_start = next_start;
                eq = next_eq;
            }
            None => {
                let value = extension[value_start..].trim_end();
                fields.push(ExtField {
                    key,
                    value: extension_value(value, escaped),
                    offset: key_start,
                });
                return fields;
            }
        }
    }
}

fn is_key_byte(b: u8) -> bool {
    KEY_BYTES[b as usize]
}

/// The bytes a key is made of: one load per byte on the walk back over each key, where the
/// range tests were a chain of compares.
static KEY_BYTES: [bool; 256] = {
    let mut table = [false; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        table[b] =
            c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b'-' | b'[' | b']' | b',');
        b += 1;
    }
    table
};

/// The index of the first `|` or `\` at or after `from`. Header fields are short (a few
/// to forty bytes): a sixteen-byte compare in registers costs less there than a call to
/// memchr (measured: more instructions than the byte loop for Symantec's 55-byte header).
#[inline(always)]
fn next_pipe_or_backslash(bytes: &[u8], from: usize) -> Option<usize> {
    let mut i = from;
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::{
            _mm_cmpeq_epi8, _mm_loadu_si128, _mm_movemask_epi8, _mm_or_si128, _mm_set1_epi8,
        };
        // SAFETY: SSE2 is part of every x86_64 target, and each load reads the sixteen
        // bytes at i..i + 16, which the loop condition keeps inside `bytes`.
        unsafe {
            while i + 16 <= bytes.len() {
                let v = _mm_loadu_si128(bytes.as_ptr().add(i).cast());
                let mask = _mm_movemask_epi8(_mm_or_si128(
                    _mm_cmpeq_epi8(v, _mm_set1_epi8(b'|' as i8)),
                    _mm_cmpeq_epi8(v, _mm_set1_epi8(b'\\' as i8)),
                ));
                if mask != 0 {
                    return Some(i + mask.trailing_zeros() as usize);
                }
                i += 16;
            }
        }
    }
    bytes
        .get(i..)?
        .iter()
        .position(|&b| b == b'|' || b == b'\\')
        .map(|p| i + p)
}

/// Finds the next `key=` at or after `from`: returns (key start, offset of `=`). Sets
/// `escaped` when it passes a backslash on the way (in the value before that key).
fn next_key(bytes: &[u8], from: usize, escaped: &mut bool) -> Option<(usize, usize)> {
    let mut i = from;
    // Only a backslash or an '=' can matter; long values (URLs, 32 KB KATA alerts) are
    // skipped to the next one by memchr's vectorised search.
    while let Some(at) = bytes
        .get(i..)
        .and_then(|rest| memchr::memchr2(b'\\', b'=', rest))
    {
        i += at;
        match bytes[i] {
            b'\\' => {
                *escaped = true;
                i += 2;
            }
            _ => {
                // An '=': walk back over key characters to the preceding space.
                let mut start = i;
                while start > from && is_key_byte(bytes[start - 1]) {
                    start -= 1;
                }
                // A key starts after a space or at the very start of the extension; the
                // walk back stops at `from`, so a value's own text never becomes a key.
                if start < i && (start == 0 || bytes[start - 1] == b' ') {
                    return Some((start, i));
                }
                i += 1;
            }
        }
    }
    None
}

/// Extension value escapes: `\=` `\\` `\|` → literal, `\n` `\r` → LF / CR. Any other
/// backslash is kept as written (Symantec sends `C:\Users\…` unescaped).
pub fn unescape_value(raw: &str) -> Cow<'_, str> {
    if !raw.contains('\\') {
        return Cow::Borrowed(raw);
    }
    let mut out = String::with_capacity(raw.len());
    let mut chars = raw.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('=') => out.push('='),
            Some('\\') => out.push('\\'),
            Some('|') => out.push('|'),
            Some('n') => out.push('\n'),
            Some('r') => out.push('\r'),
            Some(other) => {
                out.push('\\');
                out.push(other);
            }
            None => out.push('\\'),
        }
    }
    Cow::Owned(out)
}

/// An extension value as read: borrowed unless the key search passed a backslash in it.
fn extension_value(raw: &str, escaped: bool) -> Cow<'_, str> {
    if escaped {
        unescape_value(raw)
    } else {
        Cow::Borrowed(raw)
    }
}

/// Escapes a value for writing CEF (used by property tests and the corpus generator).
pub fn escape_value(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '=' => out.push_str("\\="),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            c => out.push(c),
        }
    }
    out
}

/// Escapes a header field for writing CEF.
pub fn escape_header(value: &str) -> String {
    value.replace('\\', "\\\\").replace('|', "\\|")
}

/// CEF custom-field pairs: value key → label key.
pub const CUSTOM_FIELD_LABELS: &[(&str, &str)] = &[
    ("cs1", "cs1Label"),
    ("cs2", "cs2Label"),
    ("cs3", "cs3Label"),
    ("cs4", "cs4Label"),
    ("cs5", "cs5Label"),
    ("cs6", "cs6Label"),
    ("cn1", "cn1Label"),
    ("cn2", "cn2Label"),
    ("cn3", "cn3Label"),
    ("cfp1", "cfp1Label"),
    ("cfp2", "cfp2Label"),
    ("cfp3", "cfp3Label"),
    ("cfp4", "cfp4Label"),
    ("c6a1", "c6a1Label"),
    ("c6a2", "c6a2Label"),
    ("c6a3", "c6a3Label"),
    ("c6a4", "c6a4Label"),
    ("deviceCustomDate1", "deviceCustomDate1Label"),
    ("deviceCustomDate2", "deviceCustomDate2Label"),
    ("flexString1", "flexString1Label"),
    ("flexString2", "flexString2Label"),
    ("flexNumber1", "flexNumber1Label"),
    ("flexNumber2", "flexNumber2Label"),
    ("flexDate1", "flexDate1Label"),
];

#[cfg(test)]
mod tests {
    use super::*;

    /// The block search finds what a byte-by-byte one finds, from any start, with the
    /// byte at any place relative to the sixteen-byte blocks and the end.
    #[test]
    fn next_pipe_or_backslash_matches_a_plain_search() {
        for len in 0..50usize {
            for at in [
                None,
                Some(0),
                Some(15),
                Some(16),
                Some(len / 2),
                Some(len.saturating_sub(1)),
            ] {
                for special in [b'|', b'\\'] {
                    let mut bytes = vec![b'x'; len];
                    if let Some(at) = at.filter(|&at| at < len) {
                        bytes[at] = special;
                    }
                    for from in 0..=len + 2 {
                        let plain = bytes
                            .get(from..)
                            .and_then(|rest| rest.iter().position(|&b| b == b'|' || b == b'\\'))
                            .map(|p| from + p);
                        assert_eq!(
                            next_pipe_or_backslash(&bytes, from),
                            plain,
                            "{len} {at:?} {from}"
                        );
                    }
                }
            }
        }
        // Headers whose separators and escapes fall on every block position.
        for pad in 0..40 {
            let vendor = "v".repeat(pad);
            let line = format!("CEF:0|{vendor}|p\\|q|1.0|100|name \\\\ x|5|k=v");
            let message = parse_header(&line, 0).expect("seven fields");
            assert_eq!(message.header.vendor, vendor.as_str());
            assert_eq!(message.header.product, "p|q");
            assert_eq!(message.header.name, "name \\ x");
            assert_eq!(message.extension, "k=v");
        }
    }

    fn ext(text: &str) -> Vec<(String, String)> {
        parse_extension(text, &["json"])
            .into_iter()
            .map(|f| (f.key.to_string(), f.value.into_owned()))
            .collect()
    }

    #[test]
    fn kata_padded_header() {
        let msg = "CEF:0|AO Kaspersky Lab| Kaspersky Anti Targeted Attack Platform |5.0.0-5201|url_web| URL from web detected|Low|";
        let m = parse_header(msg, 0).unwrap();
        assert_eq!(m.header.product, "Kaspersky Anti Targeted Attack Platform");
        assert_eq!(m.header.name, "URL from web detected");
        assert_eq!(m.header.severity, "Low");
        assert_eq!(m.extension, "");
    }

    #[test]
    fn header_escapes_and_prefix() {
        let msg = "INFO - x CEF:0|Ven\\|dor|Pro\\\\duct|1|sig|na\\me|5|a=b";
        let m = parse_header(msg, 9).unwrap();
        assert_eq!(m.prefix, "INFO - x");
        assert_eq!(m.header.vendor, "Ven|dor");
        assert_eq!(m.header.product, "Pro\\duct");
        assert_eq!(m.header.name, "na\\me");
        assert_eq!(m.extension, "a=b");
    }

    #[test]
    fn truncated_header() {
        let err = parse_header("CEF:0|Vendor|Prod", 0).unwrap_err();
        assert_eq!(err.fields, vec!["0", "Vendor", "Prod"]);
    }

    #[test]
    fn extension_values_with_spaces_pipes_and_paths() {
        let got = ext("filePath=C:\\Users\\Admin\\Downloads fname=shample (2).exe md5= cs6=A | B | C msg=a\\=b\\nc request=http://x/?a=b&c=d");
        assert_eq!(
            got,
            vec![
                ("filePath".into(), "C:\\Users\\Admin\\Downloads".into()),
                ("fname".into(), "shample (2).exe".into()),
                ("md5".into(), "".into()),
                ("cs6".into(), "A | B | C".into()),
                ("msg".into(), "a=b\nc".into()),
                ("request".into(), "http://x/?a=b&c=d".into()),
            ]
        );
    }

    #[test]
    fn escapes_are_undone_in_the_last_value_and_after_plain_ones() {
        let got = ext("a=plain b=x\\=y c=C:\\dir\\n");
        assert_eq!(
            got,
            vec![
                ("a".into(), "plain".into()),
                ("b".into(), "x=y".into()),
                ("c".into(), "C:\\dir\n".into()),
            ]
        );
    }

    #[test]
    fn json_key_runs_to_end() {
        let got = ext("user_name=Admin json={\"a\":\"x y=z\",\"b\":1} trailing");
        assert_eq!(
            got[1],
            ("json".into(), "{\"a\":\"x y=z\",\"b\":1} trailing".into())
        );
    }

    #[test]
    fn odd_keys() {
        let got = ext("ad.foo.name[1]=v ad.Error_,Code=3 msg= leading");
        assert_eq!(got[0].0, "ad.foo.name[1]");
        assert_eq!(got[1].0, "ad.Error_,Code");
        assert_eq!(got[2].1, " leading");
    }
}
