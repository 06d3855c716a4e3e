//! The status view of one event: what the status API (`GET /v1/events/{event_id}`)
//! answers and what `leadbridge status` prints. Built from the ledger record;
//! the CRM's error text is scrubbed of the lead's own identities.

use chrono::{DateTime, SecondsFormat, Utc};
use lb_domain::{mask, QueuedLead};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::secrets::{secret_values, string_values};

use crate::ports::{ErrorClass, Ledger, LedgerRecord, LedgerStatus, PortError};

/// An event's status as an operator or the chatbot vendor sees it. The ledger's
/// `received` (recorded, never queued: the sender got 503) is `not_queued`,
/// `in_progress` is `processing`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryStatus {
    /// Recorded, but the queue never took it: the sender was answered 503 and
    /// must send it again (nothing will happen to it otherwise).
    NotQueued,
    Queued,
    Processing,
    Retrying,
    Synced,
    Dead,
    /// Refused at ingest (422).
    Rejected,
}

impl DeliveryStatus {
    pub fn of(status: LedgerStatus) -> Self {
        match status {
            LedgerStatus::Received => Self::NotQueued,
            LedgerStatus::Queued => Self::Queued,
            LedgerStatus::InProgress => Self::Processing,
            LedgerStatus::Retrying => Self::Retrying,
            LedgerStatus::Synced => Self::Synced,
            LedgerStatus::Dead => Self::Dead,
            LedgerStatus::Rejected => Self::Rejected,
        }
    }
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::NotQueued => "not_queued",
            Self::Queued => "queued",
            Self::Processing => "processing",
            Self::Retrying => "retrying",
            Self::Synced => "synced",
            Self::Dead => "dead",
            Self::Rejected => "rejected",
        }
    }
    /// How far from done: an event is as far from done as its least-done delivery.
    fn rank(&self) -> u8 {
        match self {
            Self::Synced => 0,
            Self::Queued => 1,
            Self::Processing => 2,
            Self::Retrying => 3,
            Self::NotQueued => 4,
            Self::Rejected => 5,
            Self::Dead => 6,
        }
    }
}

/// The last failure, every field present (`null` when unknown).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorView {
    pub class: ErrorClass,
    pub code: String,
    /// The CRM's text, with the lead's email, phone and name masked.
    pub message: String,
    pub crm: Option<String>,
    pub http_status: Option<u16>,
}

/// Where the event landed in the CRM.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CrmView {
    pub name: String,
    pub contact_id: String,
    pub note_id: Option<String>,
    pub deal_id: Option<String>,
    pub contact_created: bool,
}

/// Every field of [`EventStatus`] that is always present, in order (`deliveries`
/// is added for a routed event).
pub const FIELDS: [&str; 11] = [
    "event_id",
    "connection",
    "status",
    "attempts",
    "replays",
    "next_attempt_at",
    "last_error",
    "crm",
    "bot_id",
    "received_at",
    "updated_at",
];

/// The answer of `GET /v1/events/{event_id}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventStatus {
    pub event_id: String,
    /// The connection of this delivery (`null` for an event with one unnamed connection).
    #[serde(default)]
    pub connection: Option<String>,
    /// For an event routed to several connections: the overall status (the
    /// least-done delivery's), with each delivery below.
    pub status: DeliveryStatus,
    pub attempts: u32,
    pub replays: u32,
    #[serde(with = "millis")]
    pub next_attempt_at: Option<DateTime<Utc>>,
    pub last_error: Option<ErrorView>,
    pub crm: Option<CrmView>,
    pub bot_id: Option<String>,
    #[serde(with = "millis")]
    pub received_at: Option<DateTime<Utc>>,
    #[serde(with = "millis")]
    pub updated_at: Option<DateTime<Utc>>,
    /// One entry per connection when the event was routed by the config.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub deliveries: Vec<EventStatus>,
}

impl EventStatus {
    pub fn from_record(r: &LedgerRecord) -> Self {
        let identities = r
            .payload
            .as_deref()
            .and_then(|p| QueuedLead::from_json(p).ok())
            .map(|l| lead_identities(&l))
            .unwrap_or_default();
        let known: Vec<&str> = identities.iter().map(String::as_str).collect();
        Self {
            event_id: r.event_id.clone(),
            connection: r.connection.clone(),
            status: DeliveryStatus::of(r.status),
            attempts: r.attempts,
            replays: r.replays,
            next_attempt_at: r.next_attempt_at,
            last_error: r.last_error.as_ref().map(|e| ErrorView {
                class: e.class,
                code: e.code.clone(),
                message: mask::scrub(&e.message, &known),
                crm: e.crm.clone(),
                http_status: e.http_status,
            }),
            crm: r.outcome.as_ref().map(|o| CrmView {
                name: o.crm.clone(),
                contact_id: o.contact_id.clone(),
                note_id: o.note_id.clone(),
                deal_id: o.deal_id.clone(),
                contact_created: o.contact_created,
            }),
            bot_id: r.bot_id.clone(),
            received_at: r.received_at,
            updated_at: r.updated_at,
            deliveries: Vec::new(),
        }
    }

    /// One event's view over its deliveries: the least-done delivery sets the
    /// status, attempts, error and next attempt; the first CRM outcome is shown.
    pub fn from_deliveries(records: &[LedgerRecord]) -> Option<Self> {
        let views: Vec<EventStatus> = records.iter().map(Self::from_record).collect();
        if views.len() == 1 && views[0].connection.is_none() {
            return views.into_iter().next();
        }
        let worst = views.iter().max_by_key(|v| v.status.rank())?.clone();
        Some(Self {
            connection: None,
            replays: views.iter().map(|v| v.replays).max().unwrap_or(0),
            crm: views.iter().find_map(|v| v.crm.clone()),
            received_at: views.iter().filter_map(|v| v.received_at).min(),
            updated_at: views.iter().filter_map(|v| v.updated_at).max(),
            deliveries: views,
            ..worst
        })
    }
}

/// The lead's own identities (email, phone, WhatsApp id, names): what to scrub
/// from free text before a person or a log sees it.
pub fn lead_identities(lead: &QueuedLead) -> Vec<String> {
    let v = &lead.event.visitor;
    let mut known: Vec<String> = Vec::new();
    known.extend(v.email.as_ref().map(|e| e.as_str().to_string()));
    known.extend(v.phone.as_ref().map(|p| p.as_str().to_string()));
    known.extend(v.wa_id.as_ref().map(|w| w.as_str().to_string()));
    known.extend(v.name.clone());
    known.extend(v.first_name.clone());
    known.extend(v.last_name.clone());
    known
}

/// The status of one event (every delivery of it), or of one delivery when
/// `id` is `<event_id>@<connection>`; `None` when the ledger has never seen it.
pub async fn event_status(ledger: &dyn Ledger, id: &str) -> Result<Option<EventStatus>, PortError> {
    if lb_domain::split_delivery_id(id).1.is_some() {
        return Ok(ledger.get(id).await?.as_ref().map(EventStatus::from_record));
    }
    Ok(EventStatus::from_deliveries(&ledger.deliveries(id).await?))
}

/// RFC 3339 timestamps with milliseconds (`2026-05-04T11:23:45.123Z`), `null` when absent.
mod millis {
    use super::*;
    use serde::{Deserializer, Serializer};

    pub fn serialize<S: Serializer>(t: &Option<DateTime<Utc>>, s: S) -> Result<S::Ok, S::Error> {
        match t {
            Some(t) => s.serialize_str(&t.to_rfc3339_opts(SecondsFormat::Millis, true)),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<DateTime<Utc>>, D::Error> {
        Option::<DateTime<Utc>>::deserialize(d)
    }
}

/// The status API's keys: `"key"`, `{"keys": ["k1", "k2"]}` (every bot), and
/// `"bots": {"bot_a": ["k3"]}` (keys that read only those bots' events).
pub struct StatusKeys {
    all: Vec<String>,
    bots: Vec<(String, Vec<String>)>,
}

/// What one key may read.
pub enum KeyScope {
    All,
    Bots(Vec<String>),
}

impl KeyScope {
    pub fn may_read(&self, bot_id: Option<&str>) -> bool {
        match self {
            KeyScope::All => true,
            KeyScope::Bots(bots) => bot_id.is_some_and(|b| bots.iter().any(|x| x == b)),
        }
    }
}

impl StatusKeys {
    pub fn parse(raw: &str) -> Self {
        let bots = match serde_json::from_str::<serde_json::Value>(raw) {
            Ok(serde_json::Value::Object(m)) => m
                .get("bots")
                .and_then(|b| b.as_object())
                .map(|b| {
                    b.iter()
                        .map(|(bot, keys)| (bot.clone(), string_values(keys)))
                        .collect()
                })
                .unwrap_or_default(),
            _ => Vec::new(),
        };
        Self {
            all: secret_values(raw, "keys"),
            bots,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.all.is_empty() && self.bots.iter().all(|(_, k)| k.is_empty())
    }

    /// What the presented key may read; `None` for an unknown key. Every key is
    /// compared (in constant time), whichever matches.
    pub fn scope_of(&self, presented: &str) -> Option<KeyScope> {
        let all = api_key_matches(presented, &self.all);
        let bots: Vec<String> = self
            .bots
            .iter()
            .filter(|(_, keys)| api_key_matches(presented, keys))
            .map(|(bot, _)| bot.clone())
            .collect();
        if all {
            Some(KeyScope::All)
        } else if !bots.is_empty() {
            Some(KeyScope::Bots(bots))
        } else {
            None
        }
    }
}

/// Compares digests in constant time (neither the key nor its length leaks through timing).
pub fn api_key_matches(presented: &str, keys: &[String]) -> bool {
    let p = Sha256::digest(presented.as_bytes());
    let mut ok = subtle::Choice::from(0u8);
    for k in keys {
        ok |= Sha256::digest(k.as_bytes()).ct_eq(&p);
    }
    bool::from(ok)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fakes::*;
    use crate::ports::{FailureReason, SyncOutcome};

    #[tokio::test]
    async fn the_view_names_statuses_in_the_apis_words_and_keeps_every_field() {
        let ledger = InMemoryLedger::default();
        let lead = sample_lead("evt_1", "priya@acme.in");
        let now = Utc::now();
        ledger
            .record_received(&lead, &lead.to_json(), now)
            .await
            .unwrap();
        let v = event_status(&ledger, "evt_1").await.unwrap().unwrap();
        assert_eq!(
            v.status,
            DeliveryStatus::NotQueued,
            "recorded but never on the queue: not shown as queued"
        );
        let json = serde_json::to_value(&v).unwrap();
        let mut keys: Vec<&str> = json
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        let mut want = FIELDS.to_vec();
        keys.sort_unstable();
        want.sort_unstable();
        assert_eq!(keys, want, "every field, none absent, none undocumented");
        assert_eq!(json["status"], "not_queued");
        ledger.mark_queued("evt_1", now).await.unwrap();
        let v = event_status(&ledger, "evt_1").await.unwrap().unwrap();
        assert_eq!(serde_json::to_value(&v).unwrap()["status"], "queued");
        assert_eq!(json["bot_id"], "bot_test");

        ledger
            .begin(
                &lead,
                &lead.to_json(),
                now,
                now + chrono::Duration::seconds(30),
            )
            .await
            .unwrap();
        let v = event_status(&ledger, "evt_1").await.unwrap().unwrap();
        assert_eq!(v.status.as_str(), "processing");

        let outcome = SyncOutcome {
            crm: "hubspot".into(),
            contact_id: "101".into(),
            contact_created: true,
            note_id: Some("n1".into()),
            deal_id: None,
        };
        ledger.complete("evt_1", &outcome, now).await.unwrap();
        let json =
            serde_json::to_value(event_status(&ledger, "evt_1").await.unwrap().unwrap()).unwrap();
        assert_eq!(json["status"], "synced");
        assert_eq!(json["crm"]["name"], "hubspot");
        assert_eq!(json["crm"]["contact_id"], "101");
        assert_eq!(json["crm"]["deal_id"], serde_json::Value::Null);
        assert_eq!(json["last_error"], serde_json::Value::Null);
    }

    #[tokio::test]
    async fn the_crms_message_is_scrubbed_of_the_leads_identities() {
        let ledger = InMemoryLedger::default();
        let lead = sample_lead("evt_1", "priya.sharma@acmecorp.in");
        let now = Utc::now();
        ledger
            .record_received(&lead, &lead.to_json(), now)
            .await
            .unwrap();
        let reason = FailureReason {
            message: "Email priya.sharma@acmecorp.in of Priya Sharma is invalid".into(),
            ..permanent("x").reason()
        };
        ledger.mark_dead("evt_1", &reason, None, now).await.unwrap();
        let v = event_status(&ledger, "evt_1").await.unwrap().unwrap();
        let e = v.last_error.unwrap();
        assert!(!e.message.contains("priya.sharma"), "{}", e.message);
        assert!(!e.message.contains("Priya Sharma"), "{}", e.message);
        assert!(e.message.contains("p***@acmecorp.in"), "{}", e.message);
        assert_eq!(e.http_status, Some(400));
    }

    #[tokio::test]
    async fn a_routed_event_reads_as_its_least_done_delivery_with_each_one_listed() {
        let ledger = InMemoryLedger::default();
        let lead = sample_lead("evt_1", "a@b.co");
        let now = Utc::now();
        let to = |c: &str| {
            lead.for_delivery(lb_domain::Delivery {
                connection: c.into(),
                lead_source: None,
                object: "contact".into(),
                split_name: None,
            })
        };
        for d in [to("hubspot"), to("zapier")] {
            ledger.record_received(&d, &d.to_json(), now).await.unwrap();
        }
        let outcome = SyncOutcome {
            crm: "hubspot".into(),
            contact_id: "101".into(),
            ..SyncOutcome::default()
        };
        ledger
            .complete("evt_1@hubspot", &outcome, now)
            .await
            .unwrap();
        ledger
            .mark_dead("evt_1@zapier", &permanent("x").reason(), None, now)
            .await
            .unwrap();
        let v = event_status(&ledger, "evt_1").await.unwrap().unwrap();
        assert_eq!(v.status, DeliveryStatus::Dead);
        assert_eq!(v.deliveries.len(), 2);
        assert_eq!(v.deliveries[0].connection.as_deref(), Some("hubspot"));
        assert_eq!(v.deliveries[0].status, DeliveryStatus::Synced);
        assert_eq!(v.deliveries[1].status, DeliveryStatus::Dead);
        assert_eq!(v.crm.unwrap().contact_id, "101");
        let one = event_status(&ledger, "evt_1@hubspot")
            .await
            .unwrap()
            .unwrap();
        assert_eq!(one.status, DeliveryStatus::Synced);
        assert!(one.deliveries.is_empty());
    }

    #[tokio::test]
    async fn an_unknown_event_has_no_status() {
        let ledger = InMemoryLedger::default();
        assert!(event_status(&ledger, "evt_nope").await.unwrap().is_none());
    }
}
