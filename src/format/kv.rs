//! Generic `key=value` payloads. Pairs are found by the same `key=` rule as CEF
//! extensions; a value wrapped in double quotes loses the quotes and its `\"` escapes.

use std::borrow::Cow;

use super::cef;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KvField<'a> {
    pub key: &'a str,
    pub value: Cow<'a, str>,
    pub offset: usize,
}

pub fn parse(payload: &str) -> Vec<KvField<'_>> {
    cef::parse_extension::<&str>(payload, &[])
        .into_iter()
        .map(|f| KvField {
            key: f.key,
            value: unquote(f.value),
            offset: f.offset,
        })
        .collect()
}

fn unquote(value: Cow<'_, str>) -> Cow<'_, str> {
    let trimmed = value.trim();
    if trimmed.len() >= 2 && trimmed.starts_with('"') && trimmed.ends_with('"') {
        let inner = &trimmed[1..trimmed.len() - 1];
        return Cow::Owned(inner.replace("\\\"", "\""));
    }
    value
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoted_and_plain() {
        let f = parse("src=1.2.3.4 msg=\"hello \\\"world\\\"\" act=block");
        assert_eq!(f[0].value, "1.2.3.4");
        assert_eq!(f[1].value, "hello \"world\"");
        assert_eq!(f[2].key, "act");
    }
}
