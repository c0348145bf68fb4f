//! Format detection and the format parsers. Each parser borrows from the payload and
//! allocates only where an escape or a repair forces it.

pub mod cef;
pub mod detect;
pub mod json;
mod json_tree;
pub mod kv;
pub mod pipe;

pub use detect::{detect, Format};

/// `str::trim`, with the common case first: text that starts and ends with a printable
/// ASCII byte has nothing to trim. The generic trim decodes characters from both ends and
/// cost about fifty instructions per field, on a score of fields per event.
#[inline]
pub fn trim(text: &str) -> &str {
    match (text.as_bytes().first(), text.as_bytes().last()) {
        (Some(&first), Some(&last))
            if (b'!'..=b'~').contains(&first) && (b'!'..=b'~').contains(&last) =>
        {
            text
        }
        (None, _) => text,
        _ => text.trim(),
    }
}

#[cfg(test)]
mod tests {
    proptest::proptest! {
        #[test]
        fn trim_is_str_trim(text in "[ \t\n\r\u{b}\u{c}\u{85}\u{a0}\u{3000}a-c~é!]{0,12}") {
            proptest::prop_assert_eq!(super::trim(&text), text.trim());
        }
    }
}
