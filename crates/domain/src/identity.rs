//! Identities of a person: email, phone (E.164), WhatsApp id, and the contact key
//! derived from them.

use std::fmt;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use unicode_normalization::UnicodeNormalization;

use crate::error::FieldError;

/// A syntactically valid email address (RFC 5322 `addr-spec`, checked by the
/// `email_address` crate): trimmed, lowercased, NFC, plus-addressing kept.
///
/// Internationalized domains are accepted and kept in **Unicode** form
/// (`priya@bücher.de`), after UTS #46 processing by `idna`: a sender that
/// writes the punycode form (`priya@xn--bcher-kva.de`) gets the same value,
/// so one person keeps one contact key whichever form arrives, and the CRM
/// shows the address as the person typed it. [`Email::to_ascii`] gives the
/// punycode form for systems that need ASCII domains.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Email(String);

impl Email {
    pub const MAX_LEN: usize = 254;

    pub fn parse(raw: &str) -> Result<Email, FieldError> {
        let invalid = |why: &str| {
            FieldError::new(
                "visitor.email",
                "invalid_email",
                format!("not a valid email address: {why}"),
            )
        };
        let too_long = || {
            FieldError::new(
                "visitor.email",
                "too_long",
                format!("email is longer than {} characters", Self::MAX_LEN),
            )
        };
        let t = raw.trim();
        if t.is_empty() {
            return Err(FieldError::new(
                "visitor.email",
                "required",
                "email is empty",
            ));
        }
        if t.len() > Self::MAX_LEN * 4 || t.chars().count() > Self::MAX_LEN {
            return Err(too_long());
        }
        // Invisible characters (controls, zero-width and bidi marks, soft hyphen)
        // make an address that looks right and never delivers.
        if t.chars().any(|c| {
            c.is_control()
                || matches!(c, '\u{00AD}' | '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2060}'..='\u{2064}' | '\u{2066}'..='\u{2069}' | '\u{FEFF}')
        }) {
            return Err(invalid("it contains invisible or control characters"));
        }
        let lowered: String = t.to_lowercase().nfc().collect();
        let Some((local, domain)) = lowered.rsplit_once('@') else {
            return Err(invalid("it has no @"));
        };
        if local.is_empty() || domain.is_empty() {
            return Err(invalid("the part before or after the @ is empty"));
        }
        if local.starts_with('"') || local.contains(char::is_whitespace) {
            return Err(invalid("quoted or spaced local parts are not accepted"));
        }
        if domain.starts_with('[') {
            return Err(invalid("an IP address is not a domain"));
        }
        let ascii_domain = idna::domain_to_ascii_strict(domain)
            .map_err(|_| invalid("the domain is not a valid domain name"))?;
        if !ascii_domain.contains('.') || ascii_domain.ends_with('.') {
            return Err(invalid("the domain has no dot"));
        }
        let (unicode_domain, checked) = idna::uts46::Uts46::new().to_unicode(
            ascii_domain.as_bytes(),
            idna::uts46::AsciiDenyList::STD3,
            idna::uts46::Hyphens::Check,
        );
        checked.map_err(|_| invalid("the domain is not a valid domain name"))?;
        email_address::EmailAddress::parse_with_options(
            &format!("{local}@{ascii_domain}"),
            email_address::Options::default()
                .without_display_text()
                .without_domain_literal()
                .with_required_tld(),
        )
        .map_err(|e| invalid(&e.to_string()))?;
        let v = format!("{local}@{unicode_domain}");
        if v.chars().count() > Self::MAX_LEN || local.len() + 1 + ascii_domain.len() > Self::MAX_LEN
        {
            return Err(too_long());
        }
        Ok(Email(v))
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
    /// The address with its domain in ASCII (punycode) form.
    pub fn to_ascii(&self) -> String {
        match self.0.rsplit_once('@') {
            Some((local, domain)) => match idna::domain_to_ascii(domain) {
                Ok(d) => format!("{local}@{d}"),
                Err(_) => self.0.clone(),
            },
            None => self.0.clone(),
        }
    }
}

impl TryFrom<String> for Email {
    type Error = FieldError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Email::parse(&s)
    }
}
impl From<Email> for String {
    fn from(e: Email) -> String {
        e.0
    }
}
impl fmt::Debug for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Email({})", crate::mask::email(&self.0))
    }
}

/// A phone number in E.164 form (`+919876543210`).
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Phone(String);

impl Phone {
    /// Parses a phone number written any common way. A number without a `+`
    /// country prefix needs `default_region` (ISO 3166-1 alpha-2).
    ///
    /// A `+` number is read first exactly as written after its country code,
    /// and only when that is not a valid number with the country's national
    /// prefix dropped (`+44 (0)20 7946 0958`). Read the other way round, the
    /// `phonenumber` crate takes the `8` of `+7 812 …` (St Petersburg) for
    /// Russia's national prefix; and the E.164 value stored must read back as
    /// itself when the worker takes it off the queue.
    pub fn parse(raw: &str, default_region: Option<&str>) -> Result<Phone, FieldError> {
        let cleaned = crate::text::clean_line(raw);
        if cleaned.is_empty() {
            return Err(FieldError::new(
                "visitor.phone",
                "required",
                "phone is empty",
            ));
        }
        if cleaned.chars().count() > 40 {
            return Err(FieldError::new(
                "visitor.phone",
                "too_long",
                "phone is longer than 40 characters",
            ));
        }
        let region = default_region
            .map(|r| r.trim().to_ascii_uppercase())
            .and_then(|r| r.parse::<phonenumber::country::Id>().ok());
        // Spain's numbering plan has no national prefix, so with it as the
        // region nothing after a `+` country code is taken for one.
        let as_written = phonenumber::country::Id::ES;
        let mut attempts = if cleaned.starts_with('+') {
            vec![(Some(as_written), cleaned.clone())]
        } else {
            vec![]
        };
        attempts.push((region, cleaned.clone()));
        if let Some(intl) = region.and_then(|r| national_to_international(r, &cleaned)) {
            attempts.push((Some(as_written), intl));
        }
        let mut error = None;
        for (r, text) in attempts {
            match phonenumber::parse(r, &text) {
                Ok(n) if phonenumber::is_valid(&n) => {
                    return Ok(Phone(n.format().mode(phonenumber::Mode::E164).to_string()));
                }
                Ok(_) => {
                    error = Some(FieldError::new(
                        "visitor.phone",
                        "invalid_phone",
                        "not a valid phone number for its country (add the +country code, or send visitor.country)",
                    ))
                }
                Err(e) => {
                    error = error.or(Some(FieldError::new(
                        "visitor.phone",
                        "invalid_phone",
                        format!("not a phone number: {e}"),
                    )))
                }
            }
        }
        Err(error.unwrap_or_else(|| {
            FieldError::new("visitor.phone", "invalid_phone", "not a phone number")
        }))
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
    /// The national significant number (`+1 415 555 2671` → `4155552671`):
    /// what HubSpot's phone search matches on ("HubSpot only uses the area code
    /// and local number"). Digits after the country code when the number no
    /// longer parses.
    pub fn national_number(&self) -> String {
        match phonenumber::parse(None, &self.0) {
            Ok(n) => n.national().to_string(),
            Err(_) => self.0.chars().filter(char::is_ascii_digit).collect(),
        }
    }
    /// The country calling code (`+91 98765 43210` → `91`).
    pub fn country_code(&self) -> Option<u16> {
        phonenumber::parse(None, &self.0)
            .ok()
            .map(|n| n.code().value())
    }
}

/// `8 812 123-45-67` in Russia → `+7 8121234567`: a national number written
/// with the region's national prefix, rewritten with the country code. The
/// `phonenumber` crate strips Russia's `8` twice when it reads the national form.
fn national_to_international(region: phonenumber::country::Id, text: &str) -> Option<String> {
    if !text
        .chars()
        .all(|c| c.is_ascii_digit() || " -().".contains(c))
    {
        return None;
    }
    let meta = phonenumber::metadata::DATABASE.by_id(region.as_ref())?;
    let prefix = meta.national_prefix()?;
    let digits: String = text.chars().filter(char::is_ascii_digit).collect();
    let rest = digits.strip_prefix(prefix)?;
    Some(format!("+{}{rest}", meta.country_code()))
}

impl TryFrom<String> for Phone {
    type Error = FieldError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        if !s.starts_with('+') {
            return Err(FieldError::new(
                "visitor.phone",
                "invalid_phone",
                "stored phone is not E.164",
            ));
        }
        Phone::parse(&s, None)
    }
}
impl From<Phone> for String {
    fn from(p: Phone) -> String {
        p.0
    }
}
impl fmt::Debug for Phone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Phone({})", crate::mask::phone(&self.0))
    }
}

/// A WhatsApp id: the digits of the sender's WhatsApp number, kept apart from `phone`.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct WaId(String);

impl WaId {
    pub fn parse(raw: &str) -> Result<WaId, FieldError> {
        let digits: String = raw.trim().trim_start_matches('+').to_string();
        if digits.len() < 6 || digits.len() > 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(FieldError::new(
                "visitor.wa_id",
                "invalid_wa_id",
                "wa_id must be 6 to 20 digits (the WhatsApp number without '+')",
            ));
        }
        Ok(WaId(digits))
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
    /// The WhatsApp number as a phone number (`+<digits>`), when it is a valid one.
    pub fn as_phone(&self) -> Option<Phone> {
        Phone::parse(&format!("+{}", self.0), None).ok()
    }
}
impl TryFrom<String> for WaId {
    type Error = FieldError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        WaId::parse(&s)
    }
}
impl From<WaId> for String {
    fn from(w: WaId) -> String {
        w.0
    }
}
impl fmt::Debug for WaId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "WaId({})", crate::mask::phone(&self.0))
    }
}

/// The identity a lead is matched on: the normalized email, else the phone,
/// else the WhatsApp id. One person, one key, one CRM record.
#[derive(Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "kind", content = "value", rename_all = "snake_case")]
pub enum ContactKey {
    Email(Email),
    Phone(Phone),
    WaId(WaId),
}

impl ContactKey {
    pub fn from_identities(
        email: Option<&Email>,
        phone: Option<&Phone>,
        wa_id: Option<&WaId>,
    ) -> Option<Self> {
        email
            .cloned()
            .map(ContactKey::Email)
            .or_else(|| phone.cloned().map(ContactKey::Phone))
            .or_else(|| wa_id.cloned().map(ContactKey::WaId))
    }
    pub fn kind(&self) -> &'static str {
        match self {
            ContactKey::Email(_) => "email",
            ContactKey::Phone(_) => "phone",
            ContactKey::WaId(_) => "wa_id",
        }
    }
    pub fn value(&self) -> &str {
        match self {
            ContactKey::Email(e) => e.as_str(),
            ContactKey::Phone(p) => p.as_str(),
            ContactKey::WaId(w) => w.as_str(),
        }
    }
    /// A stable, non-reversible id for the key (hex SHA-256 of `kind:value`):
    /// used as SQS MessageGroupId, ledger key and log field, never the raw value.
    pub fn hashed(&self) -> String {
        let mut h = Sha256::new();
        h.update(self.kind().as_bytes());
        h.update(b":");
        h.update(self.value().as_bytes());
        hex::encode(h.finalize())
    }
    pub fn masked(&self) -> String {
        match self {
            ContactKey::Email(e) => crate::mask::email(e.as_str()),
            ContactKey::Phone(p) => crate::mask::phone(p.as_str()),
            ContactKey::WaId(w) => crate::mask::phone(w.as_str()),
        }
    }
}

/// Which CRM record one event of a person is written to, from what is known of
/// each of its identities (the ledger's memory, or what a CRM search found).
///
/// A person is a set of identities: email, phone, WhatsApp id. The rule, the
/// same for every connection that keeps records:
/// - no identity known: no record; the caller finds or creates one;
/// - one record known (by one or several identities): that record, and the
///   identities not known yet are to be linked to it;
/// - several records known (email → A, phone → B): the record of the strongest
///   identity wins the write (email, then phone, then WhatsApp id); the others
///   are reported as possible duplicates and keep their identities. Never a
///   silent merge, never a third record.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Resolution {
    /// The record to write to, when one is known.
    pub record: Option<String>,
    /// Other records the event's identities point to (possible duplicates), in
    /// identity order, without repeats.
    pub others: Vec<String>,
    /// The identities (by index into the event's identities) known to no record.
    pub unknown: Vec<usize>,
}

/// Applies the rule of [`Resolution`]. `known[i]` is the record id of
/// `identities[i]` (the event's identities, strongest first), if any.
pub fn resolve(known: &[Option<String>]) -> Resolution {
    let mut r = Resolution::default();
    for (i, id) in known.iter().enumerate() {
        match (id, &r.record) {
            (None, _) => r.unknown.push(i),
            (Some(id), None) => r.record = Some(id.clone()),
            (Some(id), Some(chosen)) => {
                if id != chosen && !r.others.contains(id) {
                    r.others.push(id.clone());
                }
            }
        }
    }
    r
}

impl fmt::Debug for ContactKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ContactKey({}:{})", self.kind(), self.masked())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_phone_knows_its_national_number_and_country_code() {
        let p = Phone::parse("+91 98765 43210", None).unwrap();
        assert_eq!(p.national_number(), "9876543210");
        assert_eq!(p.country_code(), Some(91));
        let p = Phone::parse("+14155552671", None).unwrap();
        assert_eq!(
            (p.national_number().as_str(), p.country_code()),
            ("4155552671", Some(1))
        );
    }

    #[test]
    fn the_strongest_known_identity_picks_the_record_and_the_rest_are_reported() {
        let id = |s: &str| Some(s.to_string());
        assert_eq!(resolve(&[None, None]).record, None);
        assert_eq!(resolve(&[None, None]).unknown, vec![0, 1]);
        // phone-first person gives an email: the phone's record gains it
        let r = resolve(&[None, id("B")]);
        assert_eq!(
            (r.record.as_deref(), r.unknown, r.others),
            (Some("B"), vec![0], vec![])
        );
        // email → A, phone → B, WhatsApp → B: the email's record wins, B is reported once
        let r = resolve(&[id("A"), id("B"), id("B")]);
        assert_eq!(r.record.as_deref(), Some("A"));
        assert_eq!(r.others, vec!["B".to_string()]);
        assert!(r.unknown.is_empty());
        // the same record by every identity: no conflict
        assert!(resolve(&[id("A"), id("A")]).others.is_empty());
    }

    #[test]
    fn email_is_trimmed_and_lowercased() {
        assert_eq!(
            Email::parse(" Priya.Sharma@AcmeCorp.in ").unwrap().as_str(),
            "priya.sharma@acmecorp.in"
        );
    }

    #[test]
    fn plus_addressing_is_an_email() {
        assert_eq!(
            Email::parse("jane+bot@x.io").unwrap().as_str(),
            "jane+bot@x.io"
        );
    }

    #[test]
    fn email_without_at_or_dotless_domain_is_rejected() {
        for bad in ["jane", "jane@", "@x.com", "jane@localhost", "a b@x.com"] {
            let e = Email::parse(bad).unwrap_err();
            assert_eq!(e.code, "invalid_email", "{bad}");
        }
    }

    #[test]
    fn an_internationalized_domain_is_kept_in_unicode_whichever_form_arrives() {
        let u = Email::parse("Priya@Bücher.DE").unwrap();
        assert_eq!(u.as_str(), "priya@bücher.de");
        assert_eq!(Email::parse("priya@xn--bcher-kva.de").unwrap(), u);
        assert_eq!(u.to_ascii(), "priya@xn--bcher-kva.de");
        assert_eq!(
            Email::parse("δοκιμή@παράδειγμα.δοκιμή").unwrap().as_str(),
            "δοκιμή@παράδειγμα.δοκιμή"
        );
    }

    #[test]
    fn display_names_quotes_literals_and_broken_domains_are_not_emails() {
        for bad in [
            "Priya <priya@acme.in>",
            "<priya@acme.in>",
            "\"priya sharma\"@acme.in",
            "priya@[127.0.0.1]",
            "priya@acme..in",
            "priya@-acme.in",
            "priya@acme.in.",
            "priya@acme_corp.in",
            "priya@@acme.in",
            "priya.@acme.in",
            "pri ya@acme.in",
            "priya@acme .in",
            "priya@xn--.in",
        ] {
            assert_eq!(
                Email::parse(bad).unwrap_err().code,
                "invalid_email",
                "{bad}"
            );
        }
    }

    #[test]
    fn a_very_long_email_is_too_long() {
        let long = format!("{}@x.io", "a".repeat(300));
        assert_eq!(Email::parse(&long).unwrap_err().code, "too_long");
        for bad in [
            "jane\u{200B}@x.io",
            "jane@x\u{0000}.io",
            "ja\u{00AD}ne@x.io",
        ] {
            assert_eq!(
                Email::parse(bad).unwrap_err().code,
                "invalid_email",
                "{bad:?}"
            );
        }
        let huge = format!("{}@x.io", "a".repeat(1 << 20));
        assert_eq!(Email::parse(&huge).unwrap_err().code, "too_long");
    }

    #[test]
    fn phone_with_spaces_becomes_e164() {
        assert_eq!(
            Phone::parse("+91 98765 43210", None).unwrap().as_str(),
            "+919876543210"
        );
    }

    #[test]
    fn national_phone_uses_the_default_region() {
        assert_eq!(
            Phone::parse("09876543210", Some("in")).unwrap().as_str(),
            "+919876543210"
        );
        assert_eq!(
            Phone::parse("(415) 555-2671", Some("US")).unwrap().as_str(),
            "+14155552671"
        );
    }

    #[test]
    fn a_number_whose_area_code_looks_like_a_national_prefix_keeps_it() {
        // St Petersburg's area code 812 starts with Russia's national prefix 8.
        let spb = Phone::parse("+7 812 123-45-67", None).unwrap();
        assert_eq!(spb.as_str(), "+78121234567");
        assert_eq!(Phone::parse(spb.as_str(), None).unwrap(), spb);
        assert_eq!(Phone::parse("8 (812) 123-45-67", Some("RU")).unwrap(), spb);
        assert_eq!(
            Phone::parse("+44 (0)20 7946 0958", None).unwrap().as_str(),
            "+442079460958"
        );
        assert_eq!(
            Phone::parse("+39 06 6982 0000", None).unwrap().as_str(),
            "+390669820000"
        );
    }

    #[test]
    fn national_phone_without_region_is_rejected() {
        assert_eq!(
            Phone::parse("09876543210", None).unwrap_err().code,
            "invalid_phone"
        );
    }

    #[test]
    fn impossible_phone_is_rejected() {
        assert_eq!(
            Phone::parse("+1 000", None).unwrap_err().code,
            "invalid_phone"
        );
    }

    #[test]
    fn contact_key_prefers_email_then_phone_then_wa_id() {
        let e = Email::parse("a@b.co").unwrap();
        let p = Phone::parse("+14155552671", None).unwrap();
        let w = WaId::parse("14155552671").unwrap();
        assert_eq!(
            ContactKey::from_identities(Some(&e), Some(&p), Some(&w))
                .unwrap()
                .kind(),
            "email"
        );
        assert_eq!(
            ContactKey::from_identities(None, Some(&p), Some(&w))
                .unwrap()
                .kind(),
            "phone"
        );
        assert_eq!(
            ContactKey::from_identities(None, None, Some(&w))
                .unwrap()
                .kind(),
            "wa_id"
        );
        assert!(ContactKey::from_identities(None, None, None).is_none());
    }

    #[test]
    fn same_person_written_differently_has_one_key_hash() {
        let a = ContactKey::Email(Email::parse("PRIYA@ACME.IN ").unwrap());
        let b = ContactKey::Email(Email::parse("priya@acme.in").unwrap());
        assert_eq!(a.hashed(), b.hashed());
        assert_eq!(a.hashed().len(), 64);
        assert!(!a.hashed().contains("priya"));
    }

    #[test]
    fn debug_output_masks_pii() {
        let e = Email::parse("priya.sharma@acmecorp.in").unwrap();
        assert!(!format!("{e:?}").contains("priya.sharma"));
        let p = Phone::parse("+919876543210", None).unwrap();
        assert!(!format!("{p:?}").contains("9876543210"));
    }
}
