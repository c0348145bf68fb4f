//! Perception Point's pipe format: `Key:Value|Key:Value|…`.
//!
//! A `|` separates pairs only when a key follows it (`Key:` where the key starts with a
//! letter and has no space before the colon). So `Subject:Just Landed | New season…` keeps
//! its ` | `, and values keep their own colons (URLs, `Verdict Messages`).

/// Longest key we accept; keeps a stray `|` inside a long value from starting a "key".
const MAX_KEY_LEN: usize = 64;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PipeField<'a> {
    pub key: &'a str,
    /// Trimmed of leading and trailing spaces (`From: Sender <…>` → `Sender <…>`).
    pub value: &'a str,
    pub offset: usize,
}

/// Length of the key at the start of `text` (excluding the colon), if there is one.
fn key_len(text: &[u8]) -> Option<usize> {
    if !text.first()?.is_ascii_alphabetic() {
        return None;
    }
    for (i, &b) in text.iter().enumerate().take(MAX_KEY_LEN + 1) {
        match b {
            b':' => return (text[i - 1] != b' ').then_some(i),
            b if b.is_ascii_alphanumeric() || matches!(b, b' ' | b'_' | b'.' | b'-') => {}
            _ => return None,
        }
    }
    None
}

/// `text` without leading and trailing spaces, CRs and LFs: a byte loop, where the
/// standard library's trim with a set of chars decodes each character.
fn trim_spaces_and_line_ends(text: &str) -> &str {
    let bytes = text.as_bytes();
    let blank = |b: &u8| matches!(b, b' ' | b'\r' | b'\n');
    let start = bytes.iter().position(|b| !blank(b)).unwrap_or(bytes.len());
    let end = bytes
        .iter()
        .rposition(|b| !blank(b))
        .map_or(start, |i| i + 1);
    // Both ends are next to ASCII bytes, so on character boundaries.
    &text[start..end]
}

pub fn parse(payload: &str) -> Vec<PipeField<'_>> {
    let bytes = payload.as_bytes();
    let Some(first_key) = key_len(bytes) else {
        return Vec::new();
    };
    // Room for the dozen fields Perception Point sends, not grown 4, 8, 16.
    let mut fields = Vec::with_capacity(16);
    let mut key_start = 0;
    let mut key_end = first_key;
    let mut search_from = key_end + 1;
    loop {
        let mut next = None;
        for pos in memchr::memchr_iter(b'|', &bytes[search_from..]) {
            let at = search_from + pos;
            if let Some(len) = key_len(&bytes[at + 1..]) {
                next = Some((at, len));
                break;
            }
        }
        let value_end = next.map_or(bytes.len(), |(at, _)| at);
        fields.push(PipeField {
            // Already trimmed: `key_len` takes a key that starts with a letter and ends
            // with no space before its colon.
            key: &payload[key_start..key_end],
            value: trim_spaces_and_line_ends(&payload[key_end + 1..value_end]),
            offset: key_start,
        });
        match next {
            Some((at, len)) => {
                key_start = at + 1;
                key_end = key_start + len;
                search_from = key_end + 1;
            }
            None => return fields,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn perception_point_seed() {
        let msg = "datetime:1612422455.63|Scan ID:000176_1_3e0af324-b2dd-4c24-b952-37457c5882e2|Event:Email Scanned|IP Address:1.2.3.4|Subject:Just Landed | New season femininity + Final sale reductions|Message ID:51e28gbf95n7d2650e0hphroitr3rmefedmftg01|To:harold@acme.com|From: Sender <sender@domain.com>|Layers:|Verdict:SUS|Sample:<3a1a1ddf-b20b-4536-904a5d376d9eb38c@journal.report.generator>";
        let fields: Vec<(&str, &str)> = parse(msg).iter().map(|f| (f.key, f.value)).collect();
        assert_eq!(
            fields,
            vec![
                ("datetime", "1612422455.63"),
                ("Scan ID", "000176_1_3e0af324-b2dd-4c24-b952-37457c5882e2"),
                ("Event", "Email Scanned"),
                ("IP Address", "1.2.3.4"),
                (
                    "Subject",
                    "Just Landed | New season femininity + Final sale reductions"
                ),
                ("Message ID", "51e28gbf95n7d2650e0hphroitr3rmefedmftg01"),
                ("To", "harold@acme.com"),
                ("From", "Sender <sender@domain.com>"),
                ("Layers", ""),
                ("Verdict", "SUS"),
                (
                    "Sample",
                    "<3a1a1ddf-b20b-4536-904a5d376d9eb38c@journal.report.generator>"
                ),
            ]
        );
    }

    proptest::proptest! {
        #[test]
        fn values_and_keys_are_trimmed_as_before(text in "[ \r\na-cé:|\t]{0,30}") {
            proptest::prop_assert_eq!(
                trim_spaces_and_line_ends(&text),
                text.trim_matches([' ', '\r', '\n'])
            );
            for field in parse(&text) {
                proptest::prop_assert_eq!(field.key, field.key.trim());
            }
        }
    }

    #[test]
    fn url_values_keep_colons() {
        let fields = parse("Event:URL Scanned|URL:https://x.test:8443/a?b=c|Verdict:MAL");
        assert_eq!(fields[1].value, "https://x.test:8443/a?b=c");
        assert_eq!(fields[2].key, "Verdict");
    }
}
