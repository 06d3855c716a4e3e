//! The canonical, normalized lead event: what every chatbot vendor's payload
//! becomes after ingest, and what the worker syncs to the CRM.

use std::collections::BTreeMap;
use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::deal::DealAmount;
use crate::error::FieldError;
use crate::identity::{ContactKey, Email, Phone, WaId};
use crate::redact::{redact, Redaction};

fn valid_id(field: &str, raw: &str, max: usize) -> Result<String, FieldError> {
    let v = raw.trim();
    if v.is_empty() {
        return Err(FieldError::new(
            field,
            "required",
            format!("{field} is required"),
        ));
    }
    if v.len() > max {
        return Err(FieldError::new(
            field,
            "too_long",
            format!("{field} is longer than {max} characters"),
        ));
    }
    if !v.chars().all(EventId::is_id_char) {
        return Err(FieldError::new(
            field,
            "invalid_id",
            format!("{field} may contain only letters, digits, '-', '_', '.', ':'"),
        ));
    }
    Ok(v.to_string())
}

/// The sender's id for one event: the idempotency key of the whole pipeline.
/// At most 128 characters of `[A-Za-z0-9-_.:]` (it is also the SQS deduplication id).
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct EventId(String);

impl EventId {
    pub fn parse(raw: &str) -> Result<Self, FieldError> {
        valid_id("event_id", raw, 128).map(EventId)
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
    /// The characters an id is made of: ASCII letters, digits, `-`, `_`, `.`, `:`.
    pub fn is_id_char(c: char) -> bool {
        c.is_ascii_alphanumeric() || "-_.:".contains(c)
    }
}
impl TryFrom<String> for EventId {
    type Error = FieldError;
    fn try_from(s: String) -> Result<Self, FieldError> {
        EventId::parse(&s)
    }
}
impl From<EventId> for String {
    fn from(e: EventId) -> String {
        e.0
    }
}
impl fmt::Display for EventId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}
impl fmt::Debug for EventId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "EventId({})", self.0)
    }
}

/// The chatbot that captured the lead (routes and policies hang off it).
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct BotId(String);

impl BotId {
    pub fn parse(raw: &str) -> Result<Self, FieldError> {
        valid_id("bot_id", raw, 128).map(BotId)
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}
impl TryFrom<String> for BotId {
    type Error = FieldError;
    fn try_from(s: String) -> Result<Self, FieldError> {
        BotId::parse(&s)
    }
}
impl From<BotId> for String {
    fn from(e: BotId) -> String {
        e.0
    }
}
impl fmt::Display for BotId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}
impl fmt::Debug for BotId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "BotId({})", self.0)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum EventType {
    #[serde(rename = "lead.created")]
    LeadCreated,
    #[serde(rename = "lead.updated")]
    LeadUpdated,
    #[serde(rename = "lead.qualified")]
    LeadQualified,
    #[serde(rename = "conversation.ended")]
    ConversationEnded,
    /// One inbound message of a messaging conversation (WhatsApp, SMS): the
    /// person is written at once; the message joins the conversation's note.
    #[serde(rename = "message.received")]
    MessageReceived,
}

impl EventType {
    pub const ALL: [&'static str; 5] = [
        "lead.created",
        "lead.updated",
        "lead.qualified",
        "conversation.ended",
        "message.received",
    ];

    pub fn parse(raw: &str) -> Result<Self, FieldError> {
        match raw {
            "lead.created" => Ok(Self::LeadCreated),
            "lead.updated" => Ok(Self::LeadUpdated),
            "lead.qualified" => Ok(Self::LeadQualified),
            "conversation.ended" => Ok(Self::ConversationEnded),
            "message.received" => Ok(Self::MessageReceived),
            other => Err(FieldError::new(
                "event_type",
                "unknown_event_type",
                format!(
                    "unknown event_type {other:?}; expected one of {}",
                    Self::ALL.join(", ")
                ),
            )),
        }
    }
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::LeadCreated => "lead.created",
            Self::LeadUpdated => "lead.updated",
            Self::LeadQualified => "lead.qualified",
            Self::ConversationEnded => "conversation.ended",
            Self::MessageReceived => "message.received",
        }
    }
}

/// Who the lead is. At least one of email, phone, wa_id is present
/// (checked when the event is built; see [`LeadEvent::contact_key`]).
#[derive(Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Visitor {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<Email>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phone: Option<Phone>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wa_id: Option<WaId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub company: Option<String>,
    /// ISO 3166-1 alpha-2, from a code, name or alias ([`crate::Country`]).
    /// (Plain text rather than `Country` so events queued or stored by earlier
    /// versions, which kept non-code values as sent, still read back.)
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub country: Option<String>,
    /// State, province or territory: ISO 3166-2 (`US-CA`, `CA-ON`, `IN-MH`,
    /// `AU-NSW`) for the US, Canada, India and Australia, else as sent
    /// ([`crate::Subdivision`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
}

impl fmt::Debug for Visitor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Visitor")
            .field("email", &self.email)
            .field("phone", &self.phone)
            .field("wa_id", &self.wa_id)
            .field("name", &self.name.as_deref().map(crate::mask::name))
            .field("country", &self.country)
            .field("state", &self.state)
            .finish_non_exhaustive()
    }
}

/// Where the conversation happened and what brought the visitor there.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LeadContext {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub referrer: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub utm_source: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub utm_medium: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub utm_campaign: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub utm_term: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub utm_content: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_id: Option<String>,
    /// The messaging channel a native source heard the visitor on (`whatsapp`, `sms`, `chat`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel: Option<String>,
    /// An ad's click id (WhatsApp click-to-chat ads: `ctwa_clid`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ad_click_id: Option<String>,
    /// The ad's id (WhatsApp `referral.source_id`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ad_id: Option<String>,
    /// The ad's headline (WhatsApp `referral.headline`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ad_headline: Option<String>,
}

impl LeadContext {
    /// The UTM values present, in their conventional order.
    pub fn utm(&self) -> Vec<(&'static str, &str)> {
        [
            ("utm_source", &self.utm_source),
            ("utm_medium", &self.utm_medium),
            ("utm_campaign", &self.utm_campaign),
            ("utm_term", &self.utm_term),
            ("utm_content", &self.utm_content),
        ]
        .into_iter()
        .filter_map(|(k, v)| v.as_deref().map(|v| (k, v)))
        .collect()
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Intent {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub primary: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub labels: Vec<String>,
    /// 0–100.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub qualification_score: Option<u8>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub competitor_mentions: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TranscriptLine {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at: Option<DateTime<Utc>>,
    pub from: String,
    pub text: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Transcript {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub summary: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub messages: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_seconds: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transcript_url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sentiment: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub lines: Vec<TranscriptLine>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Consent {
    pub given_at: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text_version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub purpose: Option<String>,
}

/// What the sender asks of the CRM side.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CrmTarget {
    /// `contact` (default) or `lead` (for CRMs that have a Lead object).
    pub object: String,
    #[serde(default)]
    pub create_deal: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deal_stage: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deal_pipeline: Option<String>,
    /// What the deal is worth, in the CRM account's currency.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deal_amount: Option<DealAmount>,
    /// When the deal is expected to close (else the CRM's default: Salesforce,
    /// which requires one, gets 30 days after the deal is written).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deal_close_date: Option<chrono::NaiveDate>,
}

impl Default for CrmTarget {
    fn default() -> Self {
        Self {
            object: "contact".into(),
            create_deal: false,
            deal_stage: None,
            deal_pipeline: None,
            deal_amount: None,
            deal_close_date: None,
        }
    }
}

/// One normalized lead event. Built only by an inbound adapter (`lb-vendors`)
/// from a validated payload, or read back from the queue (which re-validates
/// every identity on deserialization).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LeadEvent {
    pub event_id: EventId,
    pub event_type: EventType,
    pub occurred_at: DateTime<Utc>,
    pub bot_id: BotId,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conversation_id: Option<String>,
    pub visitor: Visitor,
    #[serde(default)]
    pub context: LeadContext,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub intent: Option<Intent>,
    /// Answers to the bot's qualification questions, as strings
    /// (numbers and booleans as written; lists joined with `;`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub answers: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transcript: Option<Transcript>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consent: Option<Consent>,
    #[serde(default)]
    pub crm_target: CrmTarget,
    /// Card and national id numbers cut out of free text at ingest: which
    /// field, which kind (never the value). Empty for events queued before the
    /// guard existed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub redactions: Vec<Redaction>,
    /// Top-level fields the contract does not list: ignored, but kept.
    #[serde(default, skip_serializing_if = "serde_json::Map::is_empty")]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

impl LeadEvent {
    /// The identity this event is matched on. `None` only for an event that
    /// was never validated (every adapter rejects those with 422).
    pub fn contact_key(&self) -> Option<ContactKey> {
        ContactKey::from_identities(
            self.visitor.email.as_ref(),
            self.visitor.phone.as_ref(),
            self.visitor.wa_id.as_ref(),
        )
    }

    /// Every identity of the person this event carries, strongest first: email,
    /// phone, the WhatsApp number as a phone, WhatsApp id (see
    /// [`crate::identity::resolve`]). A WhatsApp id is the sender's phone number
    /// without `+` (WhatsApp Cloud API), so a WhatsApp-first person who later
    /// types that number in a web chat is recognised by it.
    pub fn identities(&self) -> Vec<ContactKey> {
        let v = &self.visitor;
        let mut out = Vec::with_capacity(4);
        out.extend(v.email.clone().map(ContactKey::Email));
        out.extend(v.phone.clone().map(ContactKey::Phone));
        if let Some(number) = v.wa_id.as_ref().and_then(WaId::as_phone) {
            if v.phone.as_ref() != Some(&number) {
                out.push(ContactKey::Phone(number));
            }
        }
        out.extend(v.wa_id.clone().map(ContactKey::WaId));
        out
    }

    /// The sensitive-data guard ([`crate::redact`]): cuts card and national id
    /// numbers out of the free text (transcript summary and lines, answers,
    /// intent) and records each field and kind in `redactions`. Idempotent.
    pub fn redact_free_text(&mut self) {
        let mut found = Vec::new();
        let mut guard = |field: String, text: &mut String| {
            let (clean, kinds) = redact(text);
            if kinds.is_empty() {
                return;
            }
            let clean = clean.into_owned();
            *text = clean;
            found.extend(kinds.into_iter().map(|kind| Redaction {
                field: field.clone(),
                kind,
            }));
        };
        if let Some(t) = &mut self.transcript {
            if let Some(s) = &mut t.summary {
                guard("transcript.summary".into(), s);
            }
            for (i, l) in t.lines.iter_mut().enumerate() {
                guard(format!("transcript.lines[{i}].text"), &mut l.text);
            }
        }
        for (k, v) in self.answers.iter_mut() {
            guard(format!("answers.{k}"), v);
        }
        if let Some(intent) = &mut self.intent {
            if let Some(p) = &mut intent.primary {
                guard("intent.primary".into(), p);
            }
            for (i, l) in intent.labels.iter_mut().enumerate() {
                guard(format!("intent.labels[{i}]"), l);
            }
            for (i, c) in intent.competitor_mentions.iter_mut().enumerate() {
                guard(format!("intent.competitor_mentions[{i}]"), c);
            }
        }
        for r in found {
            if !self.redactions.contains(&r) {
                self.redactions.push(r);
            }
        }
    }

    /// First and last name: explicit ones win; otherwise the full name is split
    /// at its last space ("Mary Ann Lee" → "Mary Ann" / "Lee").
    pub fn first_last_name(&self) -> (Option<String>, Option<String>) {
        let v = &self.visitor;
        if v.first_name.is_some() || v.last_name.is_some() {
            return (v.first_name.clone(), v.last_name.clone());
        }
        match v.name.as_deref().map(str::trim) {
            Some(n) if !n.is_empty() => match n.rsplit_once(' ') {
                Some((first, last)) => (
                    Some(first.trim().to_string()),
                    Some(last.trim().to_string()),
                ),
                None => (Some(n.to_string()), None),
            },
            _ => (None, None),
        }
    }
}
