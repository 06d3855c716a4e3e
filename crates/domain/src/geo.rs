//! Countries (ISO 3166-1 alpha-2) and their subdivisions (ISO 3166-2), from
//! whatever a chatbot form sends: codes, names, aliases, local names.
//!
//! The code lists come from [`rust_iso3166`]: it has alpha-2, alpha-3, numeric
//! codes and English short names for all 249 countries *and* the ISO 3166-2
//! subdivision list with names, in one maintained, Apache-2.0 crate with no
//! run-time data files. (`celes` needs a newer compiler than the workspace's;
//! `isocountry` has no subdivisions, so it would need a hand-kept table.)
//! On top of it sit two small tables this module owns: common aliases and
//! local names of countries ([`COUNTRY_ALIASES`]) and subdivision codes that
//! ISO changed recently or that people still use ([`SUBDIVISION_ALIASES`]).
//! Site-specific value maps belong in configuration later; these tables are
//! the defaults every deployment wants.

use std::collections::HashMap;
use std::fmt;
use std::sync::LazyLock;

use serde::Serialize;
use unicode_normalization::char::is_combining_mark;
use unicode_normalization::UnicodeNormalization;

use crate::error::FieldError;
use crate::text::clean_collapsed;

/// What to do with a country the tables do not know.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CountryPolicy {
    /// A `unknown_country` field error (→ 422): the sender hears about it.
    #[default]
    Reject,
    /// Keep the value as sent (cleaned: controls out, whitespace collapsed, NFC).
    PassThrough,
}

/// The longest country value accepted (a long official name fits).
pub const MAX_COUNTRY_CHARS: usize = 64;
/// The longest subdivision value accepted.
pub const MAX_STATE_CHARS: usize = 128;

/// A lookup key: compatibility-decomposed, accents and other combining marks
/// dropped, lowercased, dots and apostrophes dropped (`U.S.A.` → `usa`,
/// `Côte d'Ivoire` → `cote divoire`), `&` read as `and`, every other
/// non-alphanumeric character a word break, a leading `the` dropped, and
/// `st` read as `saint` in names of more than one word.
fn key(s: &str) -> String {
    let mut words: Vec<String> = Vec::new();
    let mut cur = String::new();
    for c in s.nfkd() {
        if is_combining_mark(c) || matches!(c, '.' | '\'' | '’' | 'ʼ') {
            continue;
        }
        if c.is_alphanumeric() {
            cur.extend(c.to_lowercase());
        } else {
            if !cur.is_empty() {
                words.push(std::mem::take(&mut cur));
            }
            if c == '&' {
                words.push("and".into());
            }
        }
    }
    if !cur.is_empty() {
        words.push(cur);
    }
    if words.len() > 1 && words[0] == "the" {
        words.remove(0);
    }
    if words.len() > 1 {
        for w in &mut words {
            if w == "st" {
                *w = "saint".into();
            }
        }
    }
    words.join(" ")
}

/// Aliases and local names of countries, beyond the ISO codes and English
/// short names (which are matched from the code list itself).
pub const COUNTRY_ALIASES: &[(&str, &[&str])] = &[
    (
        "US",
        &[
            "USA",
            "United States",
            "America",
            "United States of America",
            "Estados Unidos",
            "États-Unis",
            "Vereinigte Staaten",
        ],
    ),
    (
        "GB",
        &[
            "UK",
            "United Kingdom",
            "Great Britain",
            "Britain",
            "England",
            "Scotland",
            "Wales",
            "Northern Ireland",
            "Reino Unido",
            "Royaume-Uni",
            "Großbritannien",
            "Vereinigtes Königreich",
        ],
    ),
    ("DE", &["Deutschland", "Allemagne", "Alemania", "Germania"]),
    (
        "IN",
        &[
            "Bharat",
            "Hindustan",
            "Republic of India",
            "भारत",
            "भारत गणराज्य",
        ],
    ),
    ("FR", &["République française", "Frankreich", "Francia"]),
    ("ES", &["España", "Spanien", "Espagne"]),
    ("IT", &["Italia", "Italien", "Italie"]),
    (
        "NL",
        &["Holland", "Nederland", "Netherlands", "Niederlande"],
    ),
    (
        "CH",
        &["Schweiz", "Suisse", "Svizzera", "Swiss Confederation"],
    ),
    ("AT", &["Österreich", "Autriche"]),
    ("BE", &["België", "Belgique", "Belgien"]),
    ("BR", &["Brasil"]),
    ("MX", &["México", "Estados Unidos Mexicanos"]),
    ("JP", &["Nippon", "Nihon", "日本"]),
    (
        "CN",
        &[
            "PRC",
            "People's Republic of China",
            "Mainland China",
            "中国",
            "中华人民共和国",
        ],
    ),
    ("TW", &["Taiwan", "Republic of China", "台灣", "台湾"]),
    (
        "KR",
        &[
            "South Korea",
            "Republic of Korea",
            "Korea, South",
            "대한민국",
            "한국",
        ],
    ),
    ("KP", &["North Korea", "Korea, North", "DPRK"]),
    ("RU", &["Russia", "Россия"]),
    ("UA", &["Україна"]),
    ("AE", &["UAE", "Emirates", "U.A.E.", "الإمارات"]),
    (
        "SA",
        &["KSA", "Saudi", "Kingdom of Saudi Arabia", "السعودية"],
    ),
    ("EG", &["مصر"]),
    ("IL", &["ישראל", "מדינת ישראל"]),
    ("VN", &["Vietnam"]),
    ("LA", &["Laos"]),
    ("SY", &["Syria"]),
    ("IR", &["Iran", "ایران"]),
    ("CZ", &["Czech Republic", "Česko"]),
    ("SK", &["Slovak Republic"]),
    ("CI", &["Ivory Coast"]),
    ("TR", &["Turkey", "Turkiye"]),
    ("MK", &["Macedonia"]),
    ("SZ", &["Swaziland"]),
    ("MM", &["Burma"]),
    ("CV", &["Cape Verde"]),
    ("VA", &["Vatican", "Vatican City"]),
    ("PS", &["Palestine"]),
    ("MO", &["Macau"]),
    ("BN", &["Brunei"]),
    ("BO", &["Bolivia"]),
    ("VE", &["Venezuela"]),
    ("TZ", &["Tanzania"]),
    ("MD", &["Moldova"]),
    ("FM", &["Micronesia"]),
    (
        "CD",
        &[
            "DRC",
            "DR Congo",
            "Democratic Republic of the Congo",
            "Congo-Kinshasa",
        ],
    ),
    ("CG", &["Republic of the Congo", "Congo-Brazzaville"]),
    ("IE", &["Éire", "Eire"]),
    ("GR", &["Hellas", "Ελλάδα"]),
    ("NZ", &["Aotearoa"]),
    ("BA", &["Bosnia"]),
    ("TL", &["East Timor"]),
    ("FK", &["Falklands"]),
    ("VG", &["British Virgin Islands"]),
    ("VI", &["US Virgin Islands"]),
    ("SE", &["Sverige"]),
    ("NO", &["Norge"]),
    ("DK", &["Danmark"]),
    ("FI", &["Suomi"]),
    ("PL", &["Polska"]),
    ("PT", &["Portuguesa"]),
    ("HU", &["Magyarország"]),
    ("HR", &["Hrvatska"]),
    ("ID", &["Republik Indonesia"]),
    ("PK", &["پاکستان"]),
    ("BD", &["বাংলাদেশ"]),
    ("LK", &["Ceylon"]),
];

struct Countries {
    /// alpha-2 (and `UK`), alpha-3, numeric → alpha-2.
    codes: HashMap<String, &'static str>,
    /// [`key`] of names and aliases → alpha-2.
    names: HashMap<String, &'static str>,
}

static COUNTRIES: LazyLock<Countries> = LazyLock::new(|| {
    let mut codes = HashMap::new();
    let mut names: HashMap<String, &'static str> = HashMap::new();
    // Names with their parenthesized or comma part dropped ("Bolivia
    // (Plurinational State of)" → "Bolivia"): kept only where unambiguous
    // ("Korea" is two countries, so it is not a name of either).
    let mut derived: HashMap<String, Option<&'static str>> = HashMap::new();
    for c in rust_iso3166::ALL {
        codes.insert(c.alpha2.to_string(), c.alpha2);
        codes.insert(c.alpha3.to_string(), c.alpha2);
        codes.insert(c.numeric_str(), c.alpha2);
        names.insert(key(c.name), c.alpha2);
        let short = c.name.split([',', '(']).next().unwrap_or(c.name);
        if short.len() < c.name.len() {
            derived
                .entry(key(short))
                .and_modify(|v| {
                    if *v != Some(c.alpha2) {
                        *v = None
                    }
                })
                .or_insert(Some(c.alpha2));
        }
    }
    codes.insert("UK".into(), "GB");
    for (k, v) in derived {
        if let Some(v) = v {
            names.entry(k).or_insert(v);
        }
    }
    for (code, aliases) in COUNTRY_ALIASES {
        for a in *aliases {
            names.insert(key(a), code);
        }
    }
    Countries { codes, names }
});

fn lookup_country(cleaned: &str) -> Option<&'static str> {
    let k = key(cleaned);
    if k.is_ascii() && (2..=3).contains(&k.len()) {
        if let Some(c) = COUNTRIES.codes.get(&k.to_ascii_uppercase()) {
            return Some(c);
        }
    }
    COUNTRIES.names.get(&k).copied()
}

/// A country: an ISO 3166-1 alpha-2 code (`IN`, `US`, `GB`), or — only under
/// [`CountryPolicy::PassThrough`] — an unrecognized value kept as sent.
#[derive(Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(into = "String")]
pub struct Country(Repr);

#[derive(Clone, PartialEq, Eq, Hash)]
enum Repr {
    Iso(&'static str),
    Verbatim(String),
}

impl Country {
    /// `"IN"`, `"ind"`, `"India"`, `"Bharat"`, `"भारत"` → `IN`; `"U.S.A."`,
    /// `"United States"`, `"us"` → `US`; `"uk"`, `"Great Britain"` → `GB`.
    /// `Ok(None)` when the value is blank. `field` names the JSON path in errors.
    pub fn parse(
        field: &str,
        raw: &str,
        policy: CountryPolicy,
    ) -> Result<Option<Self>, FieldError> {
        if raw.len() > MAX_COUNTRY_CHARS * 16 {
            return Err(too_long(field, MAX_COUNTRY_CHARS));
        }
        let cleaned = clean_collapsed(raw);
        if cleaned.is_empty() {
            return Ok(None);
        }
        if cleaned.chars().count() > MAX_COUNTRY_CHARS {
            return Err(too_long(field, MAX_COUNTRY_CHARS));
        }
        match (lookup_country(&cleaned), policy) {
            (Some(code), _) => Ok(Some(Country(Repr::Iso(code)))),
            (None, CountryPolicy::PassThrough) => Ok(Some(Country(Repr::Verbatim(cleaned)))),
            (None, CountryPolicy::Reject) => Err(FieldError::new(
                field,
                "unknown_country",
                format!("{field} is not a country we know: send an ISO 3166-1 code such as IN, US or DE, or the country's name"),
            )),
        }
    }

    /// The ISO 3166-1 alpha-2 code; `None` for a value kept as sent.
    pub fn alpha2(&self) -> Option<&'static str> {
        match &self.0 {
            Repr::Iso(c) => Some(c),
            Repr::Verbatim(_) => None,
        }
    }
    pub fn as_str(&self) -> &str {
        match &self.0 {
            Repr::Iso(c) => c,
            Repr::Verbatim(s) => s,
        }
    }
}

impl From<Country> for String {
    fn from(c: Country) -> String {
        c.as_str().to_string()
    }
}
impl fmt::Debug for Country {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Country({})", self.as_str())
    }
}
impl fmt::Display for Country {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The countries whose subdivisions are normalized to ISO 3166-2.
pub const SUBDIVISION_COUNTRIES: [&str; 4] = ["US", "CA", "IN", "AU"];

/// Subdivision codes and names people use that the ISO list does not (or no
/// longer) has, per country, mapped to today's ISO 3166-2 code. India renamed
/// `IN-TS` to `IN-TG` (Telangana) in 2023; the crate still lists `IN-TS`.
pub const SUBDIVISION_ALIASES: &[(&str, &str)] = &[
    ("IN-TG", "TS"),
    ("IN-TG", "TG"),
    ("IN-TG", "Telangana"),
    ("IN-TG", "IN-TS"),
    ("IN-OD", "OR"),
    ("IN-OD", "Orissa"),
    ("IN-UK", "UT"),
    ("IN-UK", "UA"),
    ("IN-UK", "Uttaranchal"),
    ("IN-CG", "CT"),
    ("IN-PY", "Pondicherry"),
    ("IN-DL", "NCT of Delhi"),
    ("IN-DL", "New Delhi"),
    ("IN-DH", "DN"),
    ("IN-DH", "DD"),
    ("IN-JK", "Jammu & Kashmir"),
    ("IN-MH", "Maharastra"),
    ("CA-QC", "PQ"),
    ("CA-QC", "Québec"),
    ("CA-NL", "NF"),
    ("CA-NL", "Newfoundland"),
    ("CA-YT", "YK"),
    ("CA-YT", "Yukon Territory"),
    ("CA-NT", "NWT"),
    ("US-DC", "Washington DC"),
    ("US-DC", "Washington, D.C."),
    ("US-DC", "D.C."),
    ("US-VI", "US Virgin Islands"),
    ("AU-NSW", "N.S.W."),
    ("AU-VIC", "Vic"),
    ("AU-QLD", "Qld"),
    ("AU-TAS", "Tas"),
];

static SUBDIVISIONS: LazyLock<HashMap<&'static str, HashMap<String, String>>> =
    LazyLock::new(|| {
        let mut out: HashMap<&'static str, HashMap<String, String>> = HashMap::new();
        for cc in SUBDIVISION_COUNTRIES {
            let m = out.entry(cc).or_default();
            let list = rust_iso3166::iso3166_2::SUBDIVISION_COUNTRY_MAP
                .get(cc)
                .copied()
                .unwrap_or(&[]);
            for s in list {
                let suffix = s.code.split_once('-').map_or(s.code, |(_, b)| b);
                m.insert(key(suffix), s.code.to_string());
                m.insert(key(s.code), s.code.to_string());
                m.insert(key(s.name), s.code.to_string());
            }
        }
        for (code, alias) in SUBDIVISION_ALIASES {
            let cc = code.split_once('-').map_or(*code, |(a, _)| a);
            if let Some(m) = out.get_mut(cc) {
                m.insert(key(alias), code.to_string());
                // The target itself must map to itself (IN-TG is not in the crate's list).
                m.insert(key(code), code.to_string());
            }
        }
        // Codes ISO has since replaced must not come out: IN-TS now reads IN-TG.
        for (code, alias) in SUBDIVISION_ALIASES {
            if alias.contains('-') {
                let cc = code.split_once('-').map_or(*code, |(a, _)| a);
                if let Some(m) = out.get_mut(cc) {
                    for v in m.values_mut() {
                        if v == alias {
                            *v = code.to_string();
                        }
                    }
                }
            }
        }
        out
    });

/// A state, province or territory. For the US, Canada, India and Australia it
/// is an ISO 3166-2 code (`US-CA`, `CA-ON`, `IN-MH`, `AU-NSW`); for other
/// countries (and without a country) it is the value as sent, cleaned.
#[derive(Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(into = "String")]
pub struct Subdivision(String);

impl Subdivision {
    /// `"California"`/`"CA"`/`"US-CA"` with country `US` → `US-CA`; `"Ontario"`
    /// with `CA` → `CA-ON`; `"Maharashtra"` with `IN` → `IN-MH`; `"NSW"` with `AU`
    /// → `AU-NSW`. A value that is not a subdivision of one of those four
    /// countries is an `unknown_state` error. `Ok(None)` when blank.
    pub fn parse(
        field: &str,
        raw: &str,
        country: Option<&Country>,
    ) -> Result<Option<Self>, FieldError> {
        if raw.len() > MAX_STATE_CHARS * 16 {
            return Err(too_long(field, MAX_STATE_CHARS));
        }
        let cleaned = clean_collapsed(raw);
        if cleaned.is_empty() {
            return Ok(None);
        }
        if cleaned.chars().count() > MAX_STATE_CHARS {
            return Err(too_long(field, MAX_STATE_CHARS));
        }
        let table = country
            .and_then(Country::alpha2)
            .and_then(|cc| SUBDIVISIONS.get(cc).map(|t| (cc, t)));
        match table {
            None => Ok(Some(Subdivision(cleaned))),
            Some((cc, t)) => match t.get(&key(&cleaned)) {
                Some(code) => Ok(Some(Subdivision(code.clone()))),
                None => Err(FieldError::new(
                    field,
                    "unknown_state",
                    format!("{field} is not a state, province or territory of {cc}: send its name or its ISO 3166-2 code"),
                )),
            },
        }
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
    pub fn into_string(self) -> String {
        self.0
    }
}

impl From<Subdivision> for String {
    fn from(s: Subdivision) -> String {
        s.0
    }
}
impl fmt::Debug for Subdivision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Subdivision({})", self.0)
    }
}

fn too_long(field: &str, max: usize) -> FieldError {
    FieldError::new(
        field,
        "too_long",
        format!("{field} is longer than {max} characters"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn country(raw: &str) -> Result<Option<String>, String> {
        Country::parse("visitor.country", raw, CountryPolicy::Reject)
            .map(|c| c.map(String::from))
            .map_err(|e| e.code)
    }

    fn state(raw: &str, cc: &str) -> Result<Option<String>, String> {
        let c = Country::parse("visitor.country", cc, CountryPolicy::Reject)
            .unwrap()
            .unwrap();
        Subdivision::parse("visitor.state", raw, Some(&c))
            .map(|s| s.map(String::from))
            .map_err(|e| e.code)
    }

    #[test]
    fn codes_names_and_aliases_become_alpha2() {
        for (raw, want) in [
            ("IN", "IN"),
            ("in", "IN"),
            ("IND", "IN"),
            ("India", "IN"),
            ("Bharat", "IN"),
            ("भारत", "IN"),
            ("USA", "US"),
            ("U.S.A.", "US"),
            ("U.S.", "US"),
            ("United States", "US"),
            ("united states of america", "US"),
            ("us", "US"),
            ("Deutschland", "DE"),
            ("uk", "GB"),
            ("Great Britain", "GB"),
            ("the Netherlands", "NL"),
            ("Côte d’Ivoire", "CI"),
            ("Cote d'Ivoire", "CI"),
            ("Bolivia", "BO"),
            ("St. Lucia", "LC"),
            ("Trinidad & Tobago", "TT"),
            ("Türkiye", "TR"),
            ("Turkey", "TR"),
            ("México", "MX"),
            ("Mexico", "MX"),
            ("Congo", "CG"),
            ("Viet Nam", "VN"),
            ("356", "IN"),
            ("  japan ", "JP"),
        ] {
            assert_eq!(country(raw), Ok(Some(want.to_string())), "{raw}");
        }
    }

    #[test]
    fn an_ambiguous_or_unknown_country_is_refused() {
        for raw in ["Korea", "Narnia", "XX", "Virgin Islands", "U"] {
            assert_eq!(country(raw), Err("unknown_country".into()), "{raw}");
        }
    }

    #[test]
    fn pass_through_keeps_an_unknown_country_as_sent() {
        let c = Country::parse(
            "visitor.country",
            " Narnia  Major ",
            CountryPolicy::PassThrough,
        )
        .unwrap()
        .unwrap();
        assert_eq!(c.as_str(), "Narnia Major");
        assert_eq!(c.alpha2(), None);
    }

    #[test]
    fn states_of_the_four_countries_become_iso_3166_2() {
        assert_eq!(state("California", "US"), Ok(Some("US-CA".into())));
        assert_eq!(state("CA", "US"), Ok(Some("US-CA".into())));
        assert_eq!(state("us-ca", "US"), Ok(Some("US-CA".into())));
        assert_eq!(state("Ontario", "CA"), Ok(Some("CA-ON".into())));
        assert_eq!(state("Québec", "Canada"), Ok(Some("CA-QC".into())));
        assert_eq!(state("Maharashtra", "India"), Ok(Some("IN-MH".into())));
        assert_eq!(state("MH", "IN"), Ok(Some("IN-MH".into())));
        assert_eq!(state("Telangana", "IN"), Ok(Some("IN-TG".into())));
        assert_eq!(state("IN-TS", "IN"), Ok(Some("IN-TG".into())));
        assert_eq!(state("Tamil Nadu", "IN"), Ok(Some("IN-TN".into())));
        assert_eq!(state("NSW", "AU"), Ok(Some("AU-NSW".into())));
        assert_eq!(state("new south wales", "AUS"), Ok(Some("AU-NSW".into())));
        assert_eq!(state("Washington, D.C.", "US"), Ok(Some("US-DC".into())));
    }

    #[test]
    fn a_state_of_another_country_is_unknown() {
        assert_eq!(state("Ontario", "US"), Err("unknown_state".into()));
        assert_eq!(state("CA", "CA"), Err("unknown_state".into()));
        assert_eq!(state("US-CA", "IN"), Err("unknown_state".into()));
    }

    #[test]
    fn other_countries_keep_the_state_as_sent() {
        assert_eq!(state("  Bayern ", "DE"), Ok(Some("Bayern".into())));
        let none = Subdivision::parse("visitor.state", "Ontario", None).unwrap();
        assert_eq!(none.map(String::from).as_deref(), Some("Ontario"));
    }
}
