//! Short free-text values from senders (names, companies, UTM values): control
//! characters out, whitespace tidied, Unicode NFC. Scripts are left alone:
//! Arabic, Hebrew, Devanagari, CJK and emoji come out exactly as they went in
//! (in NFC), including the zero-width joiners that emoji and some scripts need.

use std::fmt;

use serde::Serialize;
use unicode_normalization::UnicodeNormalization;

use crate::error::FieldError;

/// A character no short text value keeps: C0/C1 controls that are not
/// whitespace, the bidirectional embedding/override/isolate controls
/// (U+202A–U+202E, U+2066–U+2069: they can make a value display as something
/// else), and the byte-order mark. Whitespace controls (tab, newline) become spaces.
fn is_dropped(c: char) -> bool {
    (c.is_control() && !c.is_whitespace())
        || matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}' | '\u{FEFF}')
}

/// Drops control characters, turns every whitespace character into a plain
/// space, trims, and normalizes to NFC. Inner runs of spaces are kept.
/// Idempotent: `clean_line(clean_line(s)) == clean_line(s)`.
pub fn clean_line(raw: &str) -> String {
    let mapped: String = raw
        .chars()
        .filter(|&c| !is_dropped(c))
        .map(|c| if c.is_whitespace() { ' ' } else { c })
        .collect();
    mapped.trim_matches(' ').nfc().collect()
}

/// Like [`clean_line`], and collapses every run of whitespace into one space.
/// Idempotent.
pub fn clean_collapsed(raw: &str) -> String {
    let kept: String = raw.chars().filter(|&c| !is_dropped(c)).collect();
    let collapsed = kept.split_whitespace().collect::<Vec<_>>().join(" ");
    collapsed.nfc().collect()
}

fn too_long(field: &str, max: usize) -> FieldError {
    FieldError::new(
        field,
        "too_long",
        format!("{field} is longer than {max} characters"),
    )
}

/// `raw` cleaned by `clean`; `None` when nothing is left, `too_long` past `max` characters.
fn cleaned_within(
    field: &str,
    raw: &str,
    max: usize,
    clean: fn(&str) -> String,
) -> Result<Option<String>, FieldError> {
    // Cheap bound first: cleaning never makes a value more than a few
    // times shorter, so a huge value is refused without normalizing it.
    if raw.len() > max * 16 {
        return Err(too_long(field, max));
    }
    let v = clean(raw);
    if v.is_empty() {
        return Ok(None);
    }
    if v.chars().count() > max {
        return Err(too_long(field, max));
    }
    Ok(Some(v))
}

/// A person's or an organization's name as people will read it in the CRM:
/// control characters removed, trimmed, inner whitespace collapsed, NFC,
/// at most [`DisplayName::MAX_CHARS`] characters. Non-Latin and right-to-left
/// scripts are kept as written.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(into = "String")]
pub struct DisplayName(String);

impl DisplayName {
    pub const MAX_CHARS: usize = 256;

    /// `Ok(None)` when nothing is left after cleaning (the field counts as absent).
    /// `field` is the JSON path reported in a `too_long` error.
    pub fn parse(field: &str, raw: &str) -> Result<Option<Self>, FieldError> {
        Ok(cleaned_within(field, raw, Self::MAX_CHARS, clean_collapsed)?.map(Self))
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
    pub fn into_string(self) -> String {
        self.0
    }
}

impl From<DisplayName> for String {
    fn from(n: DisplayName) -> String {
        n.0
    }
}
impl fmt::Debug for DisplayName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DisplayName({})", crate::mask::name(&self.0))
    }
}

/// A UTM parameter value (or another short label): control characters removed,
/// whitespace characters turned into spaces, trimmed, NFC, at most
/// [`ShortText::MAX_CHARS`] characters. Inner spacing is kept as sent.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(into = "String")]
pub struct ShortText(String);

impl ShortText {
    pub const MAX_CHARS: usize = 256;

    /// `Ok(None)` when nothing is left after cleaning.
    pub fn parse(field: &str, raw: &str) -> Result<Option<Self>, FieldError> {
        Ok(cleaned_within(field, raw, Self::MAX_CHARS, clean_line)?.map(Self))
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
    pub fn into_string(self) -> String {
        self.0
    }
}

impl From<ShortText> for String {
    fn from(t: ShortText) -> String {
        t.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(raw: &str) -> Option<String> {
        DisplayName::parse("visitor.name", raw)
            .unwrap()
            .map(DisplayName::into_string)
    }

    #[test]
    fn a_name_is_trimmed_and_its_inner_whitespace_collapsed() {
        assert_eq!(
            name("  Priya \t\n  Sharma ").as_deref(),
            Some("Priya Sharma")
        );
    }

    #[test]
    fn arabic_hebrew_and_emoji_names_are_kept_as_written() {
        for n in [
            "محمد بن سلمان",
            "דוד בן-גוריון",
            "José Ñúñez",
            "李小龙",
            "Zoë 👩‍💻",
            "زهرا\u{200C}ی",
        ] {
            assert_eq!(name(n).as_deref(), Some(n), "{n}");
        }
    }

    #[test]
    fn decomposed_accents_are_composed_to_nfc() {
        assert_eq!(name("Jose\u{301}").as_deref(), Some("José"));
    }

    #[test]
    fn control_and_bidi_override_characters_are_removed() {
        assert_eq!(
            name("Pri\u{0007}ya\u{202E} Sharma\u{0000}").as_deref(),
            Some("Priya Sharma")
        );
        assert_eq!(name("\u{FEFF}Ana\u{2066}").as_deref(), Some("Ana"));
    }

    #[test]
    fn a_blank_name_is_absent_and_a_long_one_is_refused() {
        assert_eq!(name(" \u{0007} "), None);
        assert_eq!(
            DisplayName::parse("visitor.name", &"a".repeat(257))
                .unwrap_err()
                .code,
            "too_long"
        );
        assert_eq!(
            DisplayName::parse("visitor.name", &"a".repeat(1 << 20))
                .unwrap_err()
                .code,
            "too_long"
        );
        assert!(name(&"é".repeat(256)).is_some());
    }

    #[test]
    fn a_utm_value_keeps_inner_spacing_but_loses_controls() {
        let t = ShortText::parse("context.utm_campaign", " spring\u{0000}  sale\n")
            .unwrap()
            .unwrap();
        assert_eq!(t.as_str(), "spring  sale");
        assert_eq!(
            ShortText::parse("context.utm_campaign", &"x".repeat(257))
                .unwrap_err()
                .code,
            "too_long"
        );
    }
}
