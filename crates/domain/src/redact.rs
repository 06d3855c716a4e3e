//! The sensitive-data guard: payment card numbers and national id numbers are
//! cut out of free text (transcript, answers, intent labels) before an event
//! reaches the queue, the ledger or the CRM. What was cut is recorded as a
//! [`Redaction`] (the field and the kind, never the value).
//!
//! Recognized:
//! - cards: 13–19 digits, optionally grouped by single spaces or dashes, that
//!   pass the Luhn check (a run that follows a `+` is a phone number, not a card);
//! - US social security numbers written `123-45-6789` (area not 000, 666 or
//!   9xx; group not 00; serial not 0000);
//! - Indian Aadhaar numbers written in 4-4-4 groups (`2345 6789 0123`, first digit 2–9);
//! - UK National Insurance numbers (`AB123456C`, also `AB 12 34 56 C`, any case),
//!   with prefix letters HMRC allocates.

use std::borrow::Cow;

use serde::{Deserialize, Serialize};

/// What kind of value was cut out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RedactionKind {
    Card,
    NationalId,
}

impl RedactionKind {
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Card => "card",
            Self::NationalId => "national_id",
        }
    }
    /// The text that replaces the value: never longer than what it replaces
    /// (a card number has at least 12 digits, a national id at least 9
    /// characters), so redaction never grows a value past a length limit.
    pub fn placeholder(&self) -> &'static str {
        match self {
            Self::Card => "[card]",
            Self::NationalId => "[id no.]",
        }
    }
}

/// One field of an event had one kind of value cut out (once or more).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Redaction {
    /// JSON path of the field, as in field errors: `transcript.lines[3].text`.
    pub field: String,
    pub kind: RedactionKind,
}

/// Cuts every recognized card and national id number out of `text`.
/// Returns the text (borrowed when nothing was found) and the kinds found,
/// sorted and without repeats. Idempotent: the placeholders contain no digits.
pub fn redact(text: &str) -> (Cow<'_, str>, Vec<RedactionKind>) {
    let mut kinds = Vec::new();
    let mut out = Cow::Borrowed(text);
    if text.bytes().filter(u8::is_ascii_digit).count() >= 6 {
        if let Some(s) = redact_digit_runs(&out, &mut kinds) {
            out = Cow::Owned(s);
        }
        if let Some(s) = redact_nino(&out, &mut kinds) {
            out = Cow::Owned(s);
        }
    }
    kinds.sort();
    kinds.dedup();
    (out, kinds)
}

/// A maximal run of ASCII digit groups joined by single spaces or dashes:
/// byte ranges of the groups and the separators between them.
struct Run {
    groups: Vec<(usize, usize)>,
    seps: Vec<u8>,
    after_plus: bool,
}

impl Run {
    fn digits(&self, text: &str, from: usize, to: usize) -> Vec<u8> {
        self.groups[from..=to]
            .iter()
            .flat_map(|&(a, b)| text.as_bytes()[a..b].iter().map(|d| d - b'0'))
            .collect()
    }
    fn lens(&self) -> Vec<usize> {
        self.groups.iter().map(|(a, b)| b - a).collect()
    }
}

fn runs(text: &str) -> Vec<Run> {
    let b = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if !b[i].is_ascii_digit() {
            i += 1;
            continue;
        }
        let after_plus = i > 0 && b[i - 1] == b'+';
        let mut run = Run {
            groups: Vec::new(),
            seps: Vec::new(),
            after_plus,
        };
        loop {
            let start = i;
            while i < b.len() && b[i].is_ascii_digit() {
                i += 1;
            }
            run.groups.push((start, i));
            if i + 1 < b.len() && matches!(b[i], b' ' | b'-') && b[i + 1].is_ascii_digit() {
                run.seps.push(b[i]);
                i += 1;
            } else {
                break;
            }
        }
        out.push(run);
    }
    out
}

fn luhn(digits: &[u8]) -> bool {
    let sum: u32 = digits
        .iter()
        .rev()
        .enumerate()
        .map(|(i, &d)| {
            let d = u32::from(d);
            if !i.is_multiple_of(2) {
                let x = d * 2;
                if x > 9 {
                    x - 9
                } else {
                    x
                }
            } else {
                d
            }
        })
        .sum();
    sum.is_multiple_of(10)
}

fn is_ssn(run: &Run, text: &str) -> bool {
    if run.lens() != [3, 2, 4] || run.seps != [b'-', b'-'] {
        return false;
    }
    let g = |i: usize| &text[run.groups[i].0..run.groups[i].1];
    let area = g(0);
    area != "000" && area != "666" && !area.starts_with('9') && g(1) != "00" && g(2) != "0000"
}

fn is_aadhaar(run: &Run, text: &str) -> bool {
    run.lens() == [4, 4, 4]
        && run.seps[0] == run.seps[1]
        && matches!(text.as_bytes()[run.groups[0].0], b'2'..=b'9')
}

/// Card spans in a run, as (first group, last group): for each start group,
/// the longest span of 13–19 digits that passes Luhn.
fn card_spans(run: &Run, text: &str) -> Vec<(usize, usize)> {
    let mut spans = Vec::new();
    if run.after_plus {
        return spans;
    }
    let lens = run.lens();
    let mut i = 0;
    while i < lens.len() {
        let mut best = None;
        let mut total = 0;
        for (j, len) in lens.iter().enumerate().skip(i) {
            total += len;
            if total > 19 {
                break;
            }
            if total >= 13 && luhn(&run.digits(text, i, j)) {
                best = Some(j);
            }
        }
        match best {
            Some(j) => {
                spans.push((i, j));
                i = j + 1;
            }
            None => i += 1,
        }
    }
    spans
}

fn redact_digit_runs(text: &str, kinds: &mut Vec<RedactionKind>) -> Option<String> {
    let mut cuts: Vec<(usize, usize, RedactionKind)> = Vec::new();
    for run in runs(text) {
        let whole = (run.groups[0].0, run.groups[run.groups.len() - 1].1);
        if is_ssn(&run, text) || is_aadhaar(&run, text) {
            cuts.push((whole.0, whole.1, RedactionKind::NationalId));
            continue;
        }
        for (i, j) in card_spans(&run, text) {
            cuts.push((run.groups[i].0, run.groups[j].1, RedactionKind::Card));
        }
    }
    splice(text, cuts, kinds)
}

fn splice(
    text: &str,
    cuts: Vec<(usize, usize, RedactionKind)>,
    kinds: &mut Vec<RedactionKind>,
) -> Option<String> {
    if cuts.is_empty() {
        return None;
    }
    let mut out = String::with_capacity(text.len());
    let mut at = 0;
    for (a, b, kind) in cuts {
        out.push_str(&text[at..a]);
        out.push_str(kind.placeholder());
        kinds.push(kind);
        at = b;
    }
    out.push_str(&text[at..]);
    Some(out)
}

/// UK National Insurance number prefixes: neither letter D, F, I, Q, U or V,
/// the second not O, and not BG, GB, KN, NK, NT, TN or ZZ.
fn nino_prefix_ok(a: u8, b: u8) -> bool {
    let bad_any = |c: u8| matches!(c, b'D' | b'F' | b'I' | b'Q' | b'U' | b'V');
    let unallocated = matches!(
        &[a, b],
        b"BG" | b"GB" | b"KN" | b"NK" | b"NT" | b"TN" | b"ZZ"
    );
    !(bad_any(a) || bad_any(b) || b == b'O' || unallocated)
}

/// Matches a NINO starting at byte `i` (letters in any case, optional single
/// spaces between the letter pair, the three digit pairs and the suffix).
/// Returns the end byte.
fn nino_at(b: &[u8], i: usize) -> Option<usize> {
    let up = |k: usize| b.get(k).map(u8::to_ascii_uppercase);
    let (p0, p1) = (up(i)?, up(i + 1)?);
    if !p0.is_ascii_uppercase() || !p1.is_ascii_uppercase() || !nino_prefix_ok(p0, p1) {
        return None;
    }
    let mut k = i + 2;
    let skip_space = |k: usize| if b.get(k) == Some(&b' ') { k + 1 } else { k };
    for _ in 0..3 {
        k = skip_space(k);
        if !(b.get(k)?.is_ascii_digit() && b.get(k + 1)?.is_ascii_digit()) {
            return None;
        }
        k += 2;
    }
    k = skip_space(k);
    if !matches!(up(k)?, b'A'..=b'D') {
        return None;
    }
    k += 1;
    // Not in the middle of a longer word or number.
    if b.get(k).is_some_and(u8::is_ascii_alphanumeric) {
        return None;
    }
    Some(k)
}

fn redact_nino(text: &str, kinds: &mut Vec<RedactionKind>) -> Option<String> {
    let b = text.as_bytes();
    let mut cuts = Vec::new();
    let mut i = 0;
    while i + 9 <= b.len() {
        let boundary = i == 0 || !b[i - 1].is_ascii_alphanumeric();
        // Only start at an ASCII letter that begins a word (so `i` is a char boundary).
        if boundary && b[i].is_ascii_alphabetic() {
            if let Some(end) = nino_at(b, i) {
                cuts.push((i, end, RedactionKind::NationalId));
                i = end;
                continue;
            }
        }
        i += 1;
    }
    splice(text, cuts, kinds)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(s: &str) -> (String, Vec<RedactionKind>) {
        let (t, k) = redact(s);
        (t.into_owned(), k)
    }

    #[test]
    fn a_luhn_valid_card_number_is_cut_however_it_is_grouped() {
        for card in [
            "4111111111111111",
            "4111 1111 1111 1111",
            "4111-1111-1111-1111",
            "3782 822463 10005",
            "6011000990139424",
            "4222222222222",
            "6304000000000000000",
        ] {
            let (t, k) = r(&format!("my card is {card}, thanks"));
            assert_eq!(t, "my card is [card], thanks", "{card}");
            assert_eq!(k, vec![RedactionKind::Card]);
        }
    }

    #[test]
    fn digits_that_fail_luhn_or_the_length_are_left_alone() {
        for s in [
            "order 4111111111111112",
            "call +1 415 555 2671 or +44 20 7946 0958",
            "ref 123456789012",
            "invoice 12345678901234567890123",
            "+4111111111111111",
        ] {
            assert_eq!(r(s), (s.to_string(), vec![]), "{s}");
        }
    }

    #[test]
    fn a_card_next_to_other_numbers_is_cut_alone() {
        let (t, _) = r("4111 1111 1111 1111 exp 12/29 cvv 123");
        assert_eq!(t, "[card] exp 12/29 cvv 123");
    }

    #[test]
    fn national_ids_are_cut() {
        for (s, want) in [
            ("SSN 123-45-6789.", "SSN [id no.]."),
            ("aadhaar 2345 6789 0123", "aadhaar [id no.]"),
            ("aadhaar 2345-6789-0123", "aadhaar [id no.]"),
            ("NI: AB123456C", "NI: [id no.]"),
            ("ni ab 12 34 56 c ok", "ni [id no.] ok"),
        ] {
            assert_eq!(
                r(s),
                (want.to_string(), vec![RedactionKind::NationalId]),
                "{s}"
            );
        }
    }

    #[test]
    fn look_alikes_of_national_ids_are_left_alone() {
        for s in [
            "000-12-3456",
            "666-12-3456",
            "123-00-4567",
            "12-345-6789",
            "0345 6789 0123",
            "GB123456A",
            "AB123456E",
            "XAB123456C",
            "AB123456CD",
            "2345 6789-0123",
        ] {
            assert_eq!(r(s).1, vec![], "{s}");
        }
    }

    #[test]
    fn both_kinds_in_one_text_are_both_recorded() {
        let (t, k) = r("card 4111111111111111 and ssn 123-45-6789");
        assert_eq!(t, "card [card] and ssn [id no.]");
        assert_eq!(k, vec![RedactionKind::Card, RedactionKind::NationalId]);
    }

    #[test]
    fn redaction_serializes_in_snake_case() {
        let red = Redaction {
            field: "transcript.summary".into(),
            kind: RedactionKind::NationalId,
        };
        assert_eq!(
            serde_json::to_value(&red).unwrap(),
            serde_json::json!({"field": "transcript.summary", "kind": "national_id"})
        );
    }
}
