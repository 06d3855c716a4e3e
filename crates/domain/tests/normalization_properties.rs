//! Properties of ingest normalization: every normalizer is idempotent (a value
//! it produced comes back unchanged) and none panics, whatever the input —
//! arbitrary Unicode included.

use lb_domain::{
    redact::redact, Country, CountryPolicy, DisplayName, Email, HttpUrl, Phone, ShortText,
    Subdivision,
};
use proptest::prelude::*;

const REGIONS: [Option<&str>; 12] = [
    None,
    Some("IN"),
    Some("US"),
    Some("GB"),
    Some("DE"),
    Some("FR"),
    Some("BR"),
    Some("JP"),
    Some("AU"),
    Some("IT"),
    Some("AR"),
    Some("AQ"),
];

const COUNTRIES: [&str; 16] = [
    "IN",
    "India",
    "Bharat",
    "USA",
    "U.S.A.",
    "us",
    "Deutschland",
    "uk",
    "Great Britain",
    "IND",
    "Canada",
    "Australia",
    "Côte d'Ivoire",
    "Narnia",
    "St. Lucia",
    "ישראל",
];

const STATES: [&str; 14] = [
    "California",
    "CA",
    "ca",
    "US-CA",
    "Ontario",
    "Québec",
    "Maharashtra",
    "IN-TS",
    "Telangana",
    "NSW",
    "new south wales",
    "Bayern",
    "Washington, D.C.",
    " tamil  nadu ",
];

/// Text that mixes scripts, controls, bidi marks, emoji and odd whitespace.
fn messy_text() -> impl Strategy<Value = String> {
    prop::collection::vec(
        prop_oneof![
            any::<char>().prop_map(String::from),
            Just(" ".to_string()),
            Just("\t\n\u{00A0}\u{2003}".to_string()),
            Just("\u{0000}\u{0007}\u{001B}\u{0085}".to_string()),
            Just("\u{202E}\u{2066}\u{200F}\u{FEFF}".to_string()),
            Just("e\u{0301}".to_string()),
            Just("محمد".to_string()),
            Just("דוד".to_string()),
            Just("👩\u{200D}💻".to_string()),
            Just("Ω\u{2126}".to_string()),
            "[A-Za-z]{1,8}",
        ],
        0..24,
    )
    .prop_map(|parts| parts.concat())
}

fn email_like() -> impl Strategy<Value = String> {
    (
        "[A-Za-z0-9._%+-]{1,20}|[a-zà-ÿ]{1,10}|[ΑΒΓαβγ]{1,6}",
        prop::collection::vec("[A-Za-z0-9-]{1,12}|[a-zà-ÿü]{1,8}|xn--[a-z0-9]{2,8}", 1..4),
        "[A-Za-z]{2,6}|[ä-ü]{2,4}",
        "[ \t]{0,2}",
    )
        .prop_map(|(local, labels, tld, pad)| {
            format!("{pad}{local}@{}.{tld}{pad}", labels.join("."))
        })
}

fn phone_like() -> impl Strategy<Value = String> {
    prop_oneof![
        ("[1-9][0-9]{5,14}", "[ -]?").prop_map(|(d, sep)| {
            let (a, b) = d.split_at(d.len() / 2);
            format!("+{a}{sep}{b}")
        }),
        "0?[1-9][0-9]{5,11}",
        "\\(?[2-9][0-9]{2}\\)? ?[0-9]{3}-[0-9]{4}",
        "00[1-9][0-9]{6,13}",
    ]
}

fn url_like() -> impl Strategy<Value = String> {
    (
        "(http|https|HTTP|ftp|javascript)",
        "(://|:/|:)",
        "[A-Za-z0-9.-]{0,20}|[a-zà-ÿü]{1,8}\\.[a-z]{2,3}",
        "(:[0-9]{1,5})?",
        "(/[A-Za-z0-9 %._~!$&'()*+,;=:@é<>\"-]{0,12}){0,4}",
        "(\\?[A-Za-z0-9=&%. -]{0,12})?",
        "(#[A-Za-z0-9 ]{0,8})?",
    )
        .prop_map(|(s, sep, host, port, path, q, frag)| {
            format!("{s}{sep}{host}{port}{path}{q}{frag}")
        })
}

fn with_luhn_digit(body: &str) -> String {
    let sum: u32 = body
        .bytes()
        .rev()
        .enumerate()
        .map(|(i, b)| {
            let d = u32::from(b - b'0');
            if i.is_multiple_of(2) {
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
    format!("{body}{}", (10 - sum % 10) % 10)
}

proptest! {
    #[test]
    fn an_email_normalizes_to_itself_and_never_panics(raw in prop_oneof![email_like(), messy_text(), any::<String>()]) {
        if let Ok(e) = Email::parse(&raw) {
            prop_assert_eq!(Email::parse(e.as_str()), Ok(e.clone()));
            prop_assert_eq!(Email::parse(&e.to_ascii()), Ok(e.clone()));
            prop_assert_eq!(e.as_str().trim(), e.as_str());
            // The local part is lowercased; the domain is in UTS #46 form (which
            // for a few scripts, Cherokee for one, is not `to_lowercase`).
            let local = e.as_str().rsplit_once('@').map(|(l, _)| l).unwrap_or_default();
            prop_assert_eq!(local.to_lowercase(), local);
        }
    }

    #[test]
    fn a_phone_normalizes_to_itself_and_never_panics(
        raw in prop_oneof![phone_like(), messy_text(), any::<String>()],
        region in prop::sample::select(REGIONS.to_vec()),
    ) {
        if let Ok(p) = Phone::parse(&raw, region) {
            prop_assert!(p.as_str().starts_with('+'));
            prop_assert_eq!(Phone::parse(p.as_str(), None), Ok(p.clone()));
            prop_assert_eq!(Phone::parse(p.as_str(), region), Ok(p.clone()));
        }
    }

    #[test]
    fn a_name_normalizes_to_itself_and_never_panics(raw in prop_oneof![messy_text(), any::<String>()]) {
        if let Ok(Some(n)) = DisplayName::parse("visitor.name", &raw) {
            prop_assert_eq!(DisplayName::parse("visitor.name", n.as_str()), Ok(Some(n.clone())));
            prop_assert!(!n.as_str().chars().any(char::is_control));
            prop_assert!(!n.as_str().contains("  "));
            prop_assert!(n.as_str().chars().count() <= DisplayName::MAX_CHARS);
        }
        if let Ok(Some(t)) = ShortText::parse("context.utm_source", &raw) {
            prop_assert_eq!(ShortText::parse("context.utm_source", t.as_str()), Ok(Some(t.clone())));
            prop_assert!(!t.as_str().chars().any(char::is_control));
        }
    }

    #[test]
    fn a_country_normalizes_to_itself_and_never_panics(
        raw in prop_oneof![prop::sample::select(COUNTRIES.to_vec()).prop_map(String::from), messy_text(), "[A-Za-z.]{1,4}"],
        pass in any::<bool>(),
    ) {
        let policy = if pass { CountryPolicy::PassThrough } else { CountryPolicy::Reject };
        if let Ok(Some(c)) = Country::parse("visitor.country", &raw, policy) {
            prop_assert_eq!(Country::parse("visitor.country", c.as_str(), policy), Ok(Some(c.clone())));
            if let Some(a2) = c.alpha2() {
                prop_assert_eq!(a2.len(), 2);
                prop_assert_eq!(Country::parse("visitor.country", a2, CountryPolicy::Reject), Ok(Some(c.clone())));
            }
        }
    }

    #[test]
    fn a_state_normalizes_to_itself_and_never_panics(
        raw in prop_oneof![prop::sample::select(STATES.to_vec()).prop_map(String::from), messy_text(), "[A-Za-z-]{1,6}"],
        cc in prop::sample::select(vec!["US", "CA", "IN", "AU", "DE", "Narnia"]),
    ) {
        let country = Country::parse("visitor.country", cc, CountryPolicy::PassThrough).ok().flatten();
        if let Ok(Some(s)) = Subdivision::parse("visitor.state", &raw, country.as_ref()) {
            prop_assert_eq!(Subdivision::parse("visitor.state", s.as_str(), country.as_ref()), Ok(Some(s.clone())));
        }
    }

    #[test]
    fn a_url_normalizes_to_itself_and_never_panics(raw in prop_oneof![url_like(), messy_text(), any::<String>()]) {
        if let Ok(Some(u)) = HttpUrl::parse("context.source_url", &raw) {
            prop_assert_eq!(HttpUrl::parse("context.source_url", u.as_str()), Ok(Some(u.clone())));
            prop_assert!(u.as_str().starts_with("http://") || u.as_str().starts_with("https://"));
            prop_assert!(u.as_str().chars().count() <= HttpUrl::MAX_CHARS);
        }
    }

    #[test]
    fn redaction_is_idempotent_and_never_panics(
        raw in prop_oneof![messy_text(), any::<String>(), "[0-9 -]{0,40}", "[A-Za-z0-9 ]{0,30}"],
    ) {
        let (once, _) = redact(&raw);
        let (twice, kinds) = redact(&once);
        prop_assert_eq!(&once, &twice);
        prop_assert!(kinds.is_empty());
        // Redaction never grows a value (a field at its length limit stays within it).
        prop_assert!(once.chars().count() <= raw.chars().count(), "{:?} → {:?}", raw, once);
        prop_assert!(once.len() <= raw.len());
    }

    #[test]
    fn redaction_of_national_ids_and_cards_never_grows_the_text(
        raw in prop_oneof![
            "[A-Z]{2}[0-9]{6}[A-D]",
            "[0-9]{3}-[0-9]{2}-[0-9]{4}",
            "[2-9][0-9]{3} [0-9]{4} [0-9]{4}",
            "4[0-9]{11,18}",
        ],
        before in "[a-z ]{0,5}",
    ) {
        let text = format!("{before}{raw}");
        let (out, _) = redact(&text);
        prop_assert!(out.chars().count() <= text.chars().count(), "{:?} → {:?}", text, out);
    }

    #[test]
    fn a_luhn_valid_card_in_text_is_always_cut(
        body in "4[0-9]{14}|5[1-5][0-9]{13}|3[47][0-9]{12}",
        sep in "[ -]?",
        before in "[A-Za-z ,.:]{0,12}",
        after in "[A-Za-z ,.:]{0,12}",
    ) {
        let card = with_luhn_digit(&body);
        let grouped: Vec<String> = card.as_bytes().chunks(4).map(|c| String::from_utf8_lossy(c).into_owned()).collect();
        let text = format!("{before} {} {after}", grouped.join(&sep));
        let (out, kinds) = redact(&text);
        prop_assert!(out.contains("[card]"), "{}", out);
        prop_assert!(!out.chars().any(|c| c.is_ascii_digit()), "{}", out);
        prop_assert_eq!(kinds, vec![lb_domain::RedactionKind::Card]);
    }
}
