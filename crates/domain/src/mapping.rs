//! The field-mapping model: which canonical field of a lead goes to which CRM
//! property (or webhook body field), with static values and value transforms.
//! Built from the TOML config (`lb-config`) or a CRM adapter's built-in default;
//! rendered by the outbound adapters, checked against the CRM's schema.

use std::collections::BTreeMap;
use std::fmt;

use crate::event::LeadEvent;

/// What kind of value a canonical field holds (for schema checks).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ValueKind {
    Text,
    /// An integer (score, counts).
    Number,
    /// RFC 3339 UTC timestamp.
    DateTime,
}

impl ValueKind {
    pub fn as_str(&self) -> &'static str {
        match self {
            ValueKind::Text => "text",
            ValueKind::Number => "number",
            ValueKind::DateTime => "datetime",
        }
    }
}

/// A canonical field of a lead event, named by its path in the canonical
/// payload (`visitor.email`, `context.utm_source`, `answers.budget`, …).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum FieldPath {
    EventId,
    EventType,
    OccurredAt,
    BotId,
    ConversationId,
    /// The route's lead source (config), else `chatbot:<bot_id>`.
    LeadSource,
    Email,
    Phone,
    /// The WhatsApp number, as `+<wa_id>`.
    WhatsApp,
    Name,
    FirstName,
    LastName,
    Company,
    Country,
    State,
    SourceUrl,
    Referrer,
    UtmSource,
    UtmMedium,
    UtmCampaign,
    UtmTerm,
    UtmContent,
    SessionId,
    /// The messaging channel (`whatsapp`, `sms`, `chat`) of a native source.
    Channel,
    /// An ad's click id (WhatsApp `ctwa_clid`).
    AdClickId,
    AdId,
    AdHeadline,
    /// When the person last wrote (the time of a `message.received` event; none
    /// for other events): tells a rep whether WhatsApp's 24-hour window is open.
    LastInboundAt,
    IntentPrimary,
    /// Labels joined with `;`.
    IntentLabels,
    QualificationScore,
    /// Competitor mentions joined with `;`.
    CompetitorMentions,
    TranscriptSummary,
    TranscriptUrl,
    Sentiment,
    Messages,
    DurationSeconds,
    ConsentGivenAt,
    ConsentTextVersion,
    ConsentPurpose,
    /// One answer, by its key as the bot sent it.
    Answer(String),
    /// Every answer (`answers.*`): the target is a pattern where `{key}` is the
    /// answer key in snake case (see [`property_name`]).
    AllAnswers,
}

const NAMED: &[(&str, FieldPath)] = &[
    ("event_id", FieldPath::EventId),
    ("event_type", FieldPath::EventType),
    ("occurred_at", FieldPath::OccurredAt),
    ("bot_id", FieldPath::BotId),
    ("conversation_id", FieldPath::ConversationId),
    ("lead_source", FieldPath::LeadSource),
    ("visitor.email", FieldPath::Email),
    ("visitor.phone", FieldPath::Phone),
    ("visitor.wa_id", FieldPath::WhatsApp),
    ("visitor.name", FieldPath::Name),
    ("visitor.first_name", FieldPath::FirstName),
    ("visitor.last_name", FieldPath::LastName),
    ("visitor.company", FieldPath::Company),
    ("visitor.country", FieldPath::Country),
    ("visitor.state", FieldPath::State),
    ("context.source_url", FieldPath::SourceUrl),
    ("context.referrer", FieldPath::Referrer),
    ("context.utm_source", FieldPath::UtmSource),
    ("context.utm_medium", FieldPath::UtmMedium),
    ("context.utm_campaign", FieldPath::UtmCampaign),
    ("context.utm_term", FieldPath::UtmTerm),
    ("context.utm_content", FieldPath::UtmContent),
    ("context.session_id", FieldPath::SessionId),
    ("context.channel", FieldPath::Channel),
    ("context.ad_click_id", FieldPath::AdClickId),
    ("context.ad_id", FieldPath::AdId),
    ("context.ad_headline", FieldPath::AdHeadline),
    ("last_inbound_at", FieldPath::LastInboundAt),
    ("intent.primary", FieldPath::IntentPrimary),
    ("intent.labels", FieldPath::IntentLabels),
    ("intent.qualification_score", FieldPath::QualificationScore),
    ("intent.competitor_mentions", FieldPath::CompetitorMentions),
    ("transcript.summary", FieldPath::TranscriptSummary),
    ("transcript.transcript_url", FieldPath::TranscriptUrl),
    ("transcript.sentiment", FieldPath::Sentiment),
    ("transcript.messages", FieldPath::Messages),
    ("transcript.duration_seconds", FieldPath::DurationSeconds),
    ("consent.given_at", FieldPath::ConsentGivenAt),
    ("consent.text_version", FieldPath::ConsentTextVersion),
    ("consent.purpose", FieldPath::ConsentPurpose),
];

impl FieldPath {
    /// Every fixed path, for error messages and docs (plus `answers.<key>` and `answers.*`).
    pub fn known() -> impl Iterator<Item = &'static str> {
        NAMED.iter().map(|(n, _)| *n)
    }

    pub fn parse(raw: &str) -> Result<FieldPath, String> {
        let raw = raw.trim();
        if raw == "answers.*" {
            return Ok(FieldPath::AllAnswers);
        }
        if let Some(key) = raw.strip_prefix("answers.") {
            if key.is_empty() || key.contains('*') {
                return Err(format!("{raw:?} is not a field: name one answer (answers.<key>) or every answer (answers.*)"));
            }
            return Ok(FieldPath::Answer(key.to_string()));
        }
        NAMED
            .iter()
            .find(|(n, _)| *n == raw)
            .map(|(_, p)| p.clone())
            .ok_or_else(|| {
                format!(
                    "unknown field {raw:?}; known fields: {}, answers.<key>, answers.*",
                    Self::known().collect::<Vec<_>>().join(", ")
                )
            })
    }

    pub fn as_str(&self) -> String {
        match self {
            FieldPath::Answer(k) => format!("answers.{k}"),
            FieldPath::AllAnswers => "answers.*".into(),
            other => NAMED
                .iter()
                .find(|(_, p)| p == other)
                .map(|(n, _)| n.to_string())
                .unwrap_or_default(),
        }
    }

    pub fn kind(&self) -> ValueKind {
        match self {
            FieldPath::QualificationScore | FieldPath::Messages | FieldPath::DurationSeconds => {
                ValueKind::Number
            }
            FieldPath::OccurredAt | FieldPath::ConsentGivenAt | FieldPath::LastInboundAt => {
                ValueKind::DateTime
            }
            _ => ValueKind::Text,
        }
    }

    /// Whether the field is one of the person's identities (what finds the CRM record).
    pub fn is_identity(&self) -> bool {
        matches!(
            self,
            FieldPath::Email | FieldPath::Phone | FieldPath::WhatsApp
        )
    }

    /// The field's value in `event` (`None` when absent or empty). `lead_source`
    /// is the route's; `split_name` derives first/last from the full name when
    /// the sender gave only that.
    pub fn value(
        &self,
        event: &LeadEvent,
        lead_source: Option<&str>,
        split_name: bool,
    ) -> Option<String> {
        let v = &event.visitor;
        let c = &event.context;
        let ts = |t: &chrono::DateTime<chrono::Utc>| {
            t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
        };
        let joined = |xs: &[String]| (!xs.is_empty()).then(|| xs.join(";"));
        let s = |x: &Option<String>| x.clone();
        let out = match self {
            FieldPath::EventId => Some(event.event_id.as_str().to_string()),
            FieldPath::EventType => Some(event.event_type.as_str().to_string()),
            FieldPath::OccurredAt => Some(ts(&event.occurred_at)),
            FieldPath::BotId => Some(event.bot_id.as_str().to_string()),
            FieldPath::ConversationId => s(&event.conversation_id),
            FieldPath::LeadSource => Some(
                lead_source
                    .map(str::to_string)
                    .unwrap_or_else(|| format!("chatbot:{}", event.bot_id)),
            ),
            FieldPath::Email => v.email.as_ref().map(|e| e.as_str().to_string()),
            FieldPath::Phone => v.phone.as_ref().map(|p| p.as_str().to_string()),
            FieldPath::WhatsApp => v.wa_id.as_ref().map(|w| format!("+{}", w.as_str())),
            FieldPath::Name => s(&v.name),
            FieldPath::FirstName | FieldPath::LastName => {
                let (first, last) = if split_name {
                    event.first_last_name()
                } else {
                    (v.first_name.clone(), v.last_name.clone())
                };
                if *self == FieldPath::FirstName {
                    first
                } else {
                    last
                }
            }
            FieldPath::Company => s(&v.company),
            FieldPath::Country => s(&v.country),
            FieldPath::State => s(&v.state),
            FieldPath::SourceUrl => s(&c.source_url),
            FieldPath::Referrer => s(&c.referrer),
            FieldPath::UtmSource => s(&c.utm_source),
            FieldPath::UtmMedium => s(&c.utm_medium),
            FieldPath::UtmCampaign => s(&c.utm_campaign),
            FieldPath::UtmTerm => s(&c.utm_term),
            FieldPath::UtmContent => s(&c.utm_content),
            FieldPath::SessionId => s(&c.session_id),
            FieldPath::Channel => s(&c.channel),
            FieldPath::AdClickId => s(&c.ad_click_id),
            FieldPath::AdId => s(&c.ad_id),
            FieldPath::AdHeadline => s(&c.ad_headline),
            FieldPath::LastInboundAt => (event.event_type == crate::EventType::MessageReceived)
                .then(|| ts(&event.occurred_at)),
            FieldPath::IntentPrimary => event.intent.as_ref().and_then(|i| i.primary.clone()),
            FieldPath::IntentLabels => event.intent.as_ref().and_then(|i| joined(&i.labels)),
            FieldPath::QualificationScore => event
                .intent
                .as_ref()
                .and_then(|i| i.qualification_score)
                .map(|n| n.to_string()),
            FieldPath::CompetitorMentions => event
                .intent
                .as_ref()
                .and_then(|i| joined(&i.competitor_mentions)),
            FieldPath::TranscriptSummary => event.transcript.as_ref().and_then(|t| s(&t.summary)),
            FieldPath::TranscriptUrl => {
                event.transcript.as_ref().and_then(|t| s(&t.transcript_url))
            }
            FieldPath::Sentiment => event.transcript.as_ref().and_then(|t| s(&t.sentiment)),
            FieldPath::Messages => event
                .transcript
                .as_ref()
                .and_then(|t| t.messages)
                .map(|n| n.to_string()),
            FieldPath::DurationSeconds => event
                .transcript
                .as_ref()
                .and_then(|t| t.duration_seconds)
                .map(|n| n.to_string()),
            FieldPath::ConsentGivenAt => event.consent.as_ref().map(|k| ts(&k.given_at)),
            FieldPath::ConsentTextVersion => {
                event.consent.as_ref().and_then(|k| s(&k.text_version))
            }
            FieldPath::ConsentPurpose => event.consent.as_ref().and_then(|k| s(&k.purpose)),
            FieldPath::Answer(k) => event.answers.get(k).cloned(),
            FieldPath::AllAnswers => None,
        };
        out.filter(|s| !s.trim().is_empty())
    }
}

impl fmt::Display for FieldPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.as_str())
    }
}

/// Letter case applied to a mapped value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Case {
    Lower,
    Upper,
    /// First letter of each word upper case, the rest lower case.
    Title,
}

impl Case {
    pub fn parse(raw: &str) -> Result<Case, String> {
        match raw {
            "lower" => Ok(Case::Lower),
            "upper" => Ok(Case::Upper),
            "title" => Ok(Case::Title),
            other => Err(format!(
                "unknown case {other:?}; expected lower, upper or title"
            )),
        }
    }
}

/// What is done to a value on its way to the CRM.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Transform {
    /// Cut to at most this many characters (the CRM's field length).
    pub truncate: Option<usize>,
    pub case: Option<Case>,
    /// Value map applied last: a value found here is replaced (e.g. `"US" = "United States"`).
    pub values: BTreeMap<String, String>,
}

impl Transform {
    pub fn apply(&self, value: &str) -> String {
        let mut v = match self.case {
            None => value.to_string(),
            Some(Case::Lower) => value.to_lowercase(),
            Some(Case::Upper) => value.to_uppercase(),
            Some(Case::Title) => title_case(value),
        };
        if let Some(mapped) = self.values.get(&v) {
            v = mapped.clone();
        }
        if let Some(max) = self.truncate {
            if v.chars().count() > max {
                v = v.chars().take(max).collect();
            }
        }
        v
    }
}

fn title_case(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut start = true;
    for ch in s.chars() {
        if ch.is_whitespace() || ch == '-' {
            start = true;
            out.push(ch);
        } else if start {
            out.extend(ch.to_uppercase());
            start = false;
        } else {
            out.extend(ch.to_lowercase());
        }
    }
    out
}

/// One canonical field → one target property (or, for `answers.*`, a pattern).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldMap {
    pub source: FieldPath,
    /// The CRM property / body field; for [`FieldPath::AllAnswers`] a pattern with `{key}`.
    pub target: String,
    pub transform: Transform,
}

/// One property an event may write, as a schema check sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub property: String,
    /// Where its value comes from: a canonical field, or a static value.
    pub source: TargetSource,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TargetSource {
    Field(FieldPath, ValueKind),
    Static(String),
}

/// A connection's whole mapping.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mapping {
    pub fields: Vec<FieldMap>,
    /// Fixed values written with every lead (`lead_source = "Chatbot"`).
    pub statics: BTreeMap<String, String>,
    /// Derive first/last name from a full name when the sender gave only that.
    pub split_name: bool,
}

impl Default for Mapping {
    fn default() -> Self {
        Self {
            fields: Vec::new(),
            statics: BTreeMap::new(),
            split_name: true,
        }
    }
}

impl Mapping {
    /// A mapping of `(source path, target)` pairs without transforms (tests, defaults).
    /// Panics on an unknown path: for literals only.
    pub fn from_pairs(pairs: &[(&str, &str)]) -> Mapping {
        Mapping {
            fields: pairs
                .iter()
                .map(|(s, t)| FieldMap {
                    source: FieldPath::parse(s).expect("a known field path"),
                    target: t.to_string(),
                    transform: Transform::default(),
                })
                .collect(),
            ..Mapping::default()
        }
    }

    /// The properties a delivery writes: [`Mapping::render`] with the lead's
    /// route's lead source and `split_name` (else the mapping's own).
    pub fn render_lead(&self, lead: &crate::QueuedLead) -> BTreeMap<String, String> {
        let split_name = lead.split_name().unwrap_or(self.split_name);
        self.render_with(&lead.event, lead.lead_source(), split_name)
    }

    /// The properties this event writes: static values, then every mapped field
    /// that has a value (transformed). Empty values are left out.
    pub fn render(&self, event: &LeadEvent, lead_source: Option<&str>) -> BTreeMap<String, String> {
        self.render_with(event, lead_source, self.split_name)
    }

    fn render_with(
        &self,
        event: &LeadEvent,
        lead_source: Option<&str>,
        split_name: bool,
    ) -> BTreeMap<String, String> {
        let mut out = self.statics.clone();
        for m in &self.fields {
            if m.source == FieldPath::AllAnswers {
                for (k, v) in &event.answers {
                    let name = m.target.replace("{key}", &property_name(k));
                    if name.is_empty() || v.trim().is_empty() {
                        continue;
                    }
                    out.insert(name, m.transform.apply(v));
                }
                continue;
            }
            if let Some(v) = m.source.value(event, lead_source, split_name) {
                out.insert(m.target.clone(), m.transform.apply(&v));
            }
        }
        out
    }

    /// The targets fed by the person's identities (email, phone, WhatsApp).
    pub fn identity_targets(&self) -> Vec<&str> {
        self.fields
            .iter()
            .filter(|m| m.source.is_identity())
            .map(|m| m.target.as_str())
            .collect()
    }

    /// Every property this mapping can write whatever the event (`answers.*`
    /// targets depend on the event: see [`Mapping::event_targets`]).
    pub fn targets(&self) -> Vec<Target> {
        let mut out: Vec<Target> = self
            .statics
            .iter()
            .map(|(k, v)| Target {
                property: k.clone(),
                source: TargetSource::Static(v.clone()),
            })
            .collect();
        out.extend(
            self.fields
                .iter()
                .filter(|m| m.source != FieldPath::AllAnswers)
                .map(|m| Target {
                    property: m.target.clone(),
                    source: TargetSource::Field(m.source.clone(), m.source.kind()),
                }),
        );
        out
    }

    /// The properties one event writes, with their sources (answers expanded).
    pub fn event_targets(&self, event: &LeadEvent) -> Vec<Target> {
        let mut out = self.targets();
        for m in self
            .fields
            .iter()
            .filter(|m| m.source == FieldPath::AllAnswers)
        {
            for k in event.answers.keys() {
                out.push(Target {
                    property: m.target.replace("{key}", &property_name(k)),
                    source: TargetSource::Field(FieldPath::Answer(k.clone()), ValueKind::Text),
                });
            }
        }
        out
    }
}

/// An answer key as a CRM property name: ASCII letters and digits lowercased,
/// anything else one `_` ("Company size?" → `company_size`).
pub fn property_name(key: &str) -> String {
    let mut out = String::with_capacity(key.len());
    for c in key.trim().chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c.to_ascii_lowercase());
        } else if !out.ends_with('_') {
            out.push('_');
        }
    }
    out.trim_matches('_').to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_routes_split_name_decides_for_its_deliveries() {
        let event: LeadEvent = serde_json::from_value(serde_json::json!({
            "event_id": "evt_split", "event_type": "lead.created",
            "occurred_at": "2026-05-04T11:23:45Z", "bot_id": "bot_x",
            "visitor": {"email": "a@b.co", "name": "Ana Maria Silva"}
        }))
        .unwrap();
        let lead = crate::QueuedLead::new(event, chrono::Utc::now()).unwrap();
        let mapping = Mapping::from_pairs(&[
            ("visitor.first_name", "firstname"),
            ("visitor.last_name", "lastname"),
        ]);
        let to = |split_name| {
            lead.clone().for_delivery(crate::Delivery {
                connection: "crm".into(),
                lead_source: None,
                object: "contact".into(),
                split_name,
            })
        };
        let split = mapping.render_lead(&to(None));
        assert_eq!(split["firstname"], "Ana Maria");
        assert_eq!(split["lastname"], "Silva");
        assert_eq!(mapping.render_lead(&to(Some(true))), split);
        assert!(
            mapping.render_lead(&to(Some(false))).is_empty(),
            "the route keeps full names whole"
        );
        let whole = Mapping {
            split_name: false,
            ..mapping.clone()
        };
        assert!(whole.render_lead(&to(None)).is_empty());
        assert_eq!(
            whole.render_lead(&to(Some(true))),
            split,
            "the route's says"
        );
    }

    #[test]
    fn every_named_path_round_trips() {
        for name in FieldPath::known() {
            assert_eq!(FieldPath::parse(name).unwrap().as_str(), name);
        }
        assert_eq!(
            FieldPath::parse("answers.budget").unwrap(),
            FieldPath::Answer("budget".into())
        );
        assert_eq!(
            FieldPath::parse("answers.*").unwrap(),
            FieldPath::AllAnswers
        );
        let e = FieldPath::parse("visitor.emial").unwrap_err();
        assert!(e.contains("visitor.email"), "{e}");
    }

    #[test]
    fn transforms_case_then_value_map_then_truncate() {
        let t = Transform {
            truncate: Some(5),
            case: Some(Case::Upper),
            values: BTreeMap::from([("ACME".to_string(), "Acme Corporation".to_string())]),
        };
        assert_eq!(t.apply("acme"), "Acme ");
        assert_eq!(t.apply("ünïcode"), "ÜNÏCO");
        let title = Transform {
            case: Some(Case::Title),
            ..Transform::default()
        };
        assert_eq!(title.apply("mary-ann o'neil"), "Mary-Ann O'neil");
    }

    #[test]
    fn property_names_are_snake_case() {
        assert_eq!(property_name("Company size?"), "company_size");
        assert_eq!(property_name("  budget  "), "budget");
    }
}
