//! Identities of a person: email, phone (E.164), WhatsApp id, and the contact key
//! derived from them.

use std::fmt;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::FieldError;

/// A syntactically valid email address, trimmed and lowercased.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Email(String);

impl Email {
    pub const MAX_LEN: usize = 254;

    pub fn parse(raw: &str) -> Result<Email, FieldError> {
        let v = raw.trim().to_lowercase();
        if v.is_empty() {
            return Err(FieldError::new(
                "visitor.email",
                "required",
                "email is empty",
            ));
        }
        if v.len() > Self::MAX_LEN {
            return Err(FieldError::new(
                "visitor.email",
                "too_long",
                format!("email is longer than {} characters", Self::MAX_LEN),
            ));
        }
        let parsed = v.parse::<email_address::EmailAddress>().map_err(|e| {
            FieldError::new(
                "visitor.email",
                "invalid_email",
                format!("not a valid email address: {e}"),
            )
        })?;
        // The crate accepts `user@localhost`; a lead needs a routable domain.
        if !parsed.domain().contains('.') || parsed.domain().starts_with('[') {
            return Err(FieldError::new(
                "visitor.email",
                "invalid_email",
                "not a valid email address: the domain has no dot",
            ));
        }
        Ok(Email(v))
    }
    pub fn as_str(&self) -> &str {
        &self.0
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
    pub fn parse(raw: &str, default_region: Option<&str>) -> Result<Phone, FieldError> {
        let trimmed = raw.trim();
        if trimmed.is_empty() {
            return Err(FieldError::new(
                "visitor.phone",
                "required",
                "phone is empty",
            ));
        }
        if trimmed.len() > 40 {
            return Err(FieldError::new(
                "visitor.phone",
                "too_long",
                "phone is longer than 40 characters",
            ));
        }
        let region = default_region
            .map(|r| r.trim().to_ascii_uppercase())
            .and_then(|r| r.parse::<phonenumber::country::Id>().ok());
        let number = phonenumber::parse(region, trimmed).map_err(|e| {
            FieldError::new(
                "visitor.phone",
                "invalid_phone",
                format!("not a phone number: {e}"),
            )
        })?;
        if !phonenumber::is_valid(&number) {
            return Err(FieldError::new(
                "visitor.phone",
                "invalid_phone",
                "not a valid phone number for its country (add the +country code, or send visitor.country)",
            ));
        }
        Ok(Phone(
            number.format().mode(phonenumber::Mode::E164).to_string(),
        ))
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
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

impl fmt::Debug for ContactKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ContactKey({}:{})", self.kind(), self.masked())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
