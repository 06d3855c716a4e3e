//! The message on the leads queue: a normalized event plus what ingest learned.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::event::LeadEvent;
use crate::identity::ContactKey;

/// Version 1 of the queue message (`"v": 1`). The worker rejects other versions
/// as poison rather than guessing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QueuedLead {
    pub v: u32,
    pub received_at: DateTime<Utc>,
    /// Hex SHA-256 of the normalized event: a redelivered event id with a
    /// different payload is a conflict, not a duplicate.
    pub payload_hash: String,
    pub contact_key: ContactKey,
    pub event: LeadEvent,
    /// The connection this message is for, when the config routes the bot's
    /// events (one message per connection: fan-out). `None`: the single
    /// connection of a deployment without a config file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delivery: Option<Delivery>,
    /// Which queue carries it (a replay or a retry keeps it there).
    #[serde(default, skip_serializing_if = "Lane::is_realtime")]
    pub lane: Lane,
}

/// The two ways to the worker. **Real-time** (the FIFO queue, small batches,
/// seconds to the CRM): live chatbot leads. **Bulk** (a standard queue with a
/// batching window, large batches, low concurrency): backfills and imports,
/// written to the CRM in as few calls as it allows. The ledger keeps
/// exactly-once in both; the ordering guard orders a person's events in both.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Lane {
    #[default]
    Realtime,
    Bulk,
}

impl Lane {
    pub fn is_realtime(&self) -> bool {
        *self == Lane::Realtime
    }
    pub fn as_str(&self) -> &'static str {
        match self {
            Lane::Realtime => "realtime",
            Lane::Bulk => "bulk",
        }
    }
    pub fn parse(s: &str) -> Option<Lane> {
        match s.trim().to_ascii_lowercase().as_str() {
            "realtime" | "real-time" => Some(Lane::Realtime),
            "bulk" => Some(Lane::Bulk),
            _ => None,
        }
    }
}

/// Which connection one queue message is for, and what its route asked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Delivery {
    /// The connection's name in the config (`[connections.<name>]`).
    pub connection: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lead_source: Option<String>,
    /// `contact` or `lead`.
    #[serde(default = "contact_object")]
    pub object: String,
    /// The route's `split_name` (a full name split into first and last for
    /// the field maps); `None`: the connection's mapping decides.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub split_name: Option<bool>,
}

fn contact_object() -> String {
    "contact".into()
}

/// SQS's maximum message size, which the template pins on both queues
/// (`MaximumMessageSize: 262144`): body and message attributes together.
pub const MAX_QUEUE_MESSAGE_BYTES: usize = 262_144;
/// What a dead letter adds to its lead's message (the reason's attributes,
/// whose error text is capped at 4,000 bytes): kept free so that any lead
/// that was queued can also be dead-lettered.
pub const DEAD_LETTER_RESERVE_BYTES: usize = 8 * 1024;
/// The largest queue message a lead may become: a lead that would not fit is
/// refused at ingest (413) rather than accepted and then lost.
pub const MAX_LEAD_MESSAGE_BYTES: usize = MAX_QUEUE_MESSAGE_BYTES - DEAD_LETTER_RESERVE_BYTES;

/// Separates an event id from a connection name in a delivery id
/// (event ids never contain it).
pub const DELIVERY_SEPARATOR: char = '@';

/// The ledger key of one delivery: the event id, plus `@<connection>` when the
/// event was routed to a named connection.
pub fn delivery_id(event_id: &str, connection: Option<&str>) -> String {
    match connection {
        Some(c) => format!("{event_id}{DELIVERY_SEPARATOR}{c}"),
        None => event_id.to_string(),
    }
}

/// A delivery id's event id and connection.
pub fn split_delivery_id(id: &str) -> (&str, Option<&str>) {
    match id.split_once(DELIVERY_SEPARATOR) {
        Some((e, c)) => (e, Some(c)),
        None => (id, None),
    }
}

impl QueuedLead {
    pub const VERSION: u32 = 1;

    /// Wraps a validated event. `None` when the event has no identity.
    pub fn new(event: LeadEvent, received_at: DateTime<Utc>) -> Option<Self> {
        let contact_key = event.contact_key()?;
        let payload_hash = payload_hash(&event);
        Some(Self {
            v: Self::VERSION,
            received_at,
            payload_hash,
            contact_key,
            event,
            delivery: None,
            lane: Lane::Realtime,
        })
    }

    /// The same lead, addressed to one connection.
    pub fn for_delivery(&self, delivery: Delivery) -> QueuedLead {
        QueuedLead {
            delivery: Some(delivery),
            ..self.clone()
        }
    }

    /// The ledger key of this message: see [`delivery_id`].
    pub fn delivery_id(&self) -> String {
        delivery_id(self.event.event_id.as_str(), self.connection())
    }

    pub fn connection(&self) -> Option<&str> {
        self.delivery.as_ref().map(|d| d.connection.as_str())
    }

    /// The route's `split_name`, when the delivery carries one.
    pub fn split_name(&self) -> Option<bool> {
        self.delivery.as_ref().and_then(|d| d.split_name)
    }

    pub fn lead_source(&self) -> Option<&str> {
        self.delivery
            .as_ref()
            .and_then(|d| d.lead_source.as_deref())
    }

    /// The FIFO message group: the hashed contact key, per connection (one
    /// connection's failures do not hold up another's).
    pub fn group_id(&self) -> String {
        match self.connection() {
            Some(c) => format!("{}:{c}", self.contact_key.hashed()),
            None => self.contact_key.hashed(),
        }
    }

    /// What the ledger keeps of the lead (for a replay of a dead delivery and
    /// nothing else): the lead without the transcript's lines (no CRM write
    /// reads them; a note carries the summary) and without unknown fields
    /// (`extra`: no connection maps them). A messaging message keeps its line:
    /// it is the message its conversation note holds. The payload hash is the
    /// queued lead's, so a replay is the same event.
    pub fn for_ledger(&self) -> QueuedLead {
        let mut kept = self.clone();
        if kept.event.event_type != crate::EventType::MessageReceived {
            if let Some(t) = kept.event.transcript.as_mut() {
                t.lines.clear();
            }
        }
        kept.event.extra.clear();
        kept
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("a QueuedLead always serializes")
    }

    pub fn from_json(s: &str) -> Result<Self, String> {
        let q: QueuedLead =
            serde_json::from_str(s).map_err(|e| format!("not a leadbridge queue message: {e}"))?;
        if q.v != Self::VERSION {
            return Err(format!("unsupported queue message version {}", q.v));
        }
        Ok(q)
    }
}

/// Hex SHA-256 of the event's canonical JSON (struct order, sorted maps).
pub fn payload_hash(event: &LeadEvent) -> String {
    let bytes = serde_json::to_vec(event).expect("a LeadEvent always serializes");
    hex::encode(Sha256::digest(&bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lead(event_type: &str) -> QueuedLead {
        let event: LeadEvent = serde_json::from_value(serde_json::json!({
            "event_id": "evt_1", "event_type": event_type, "occurred_at": "2026-05-04T11:00:00Z",
            "bot_id": "bot_a", "conversation_id": "c1", "visitor": {"email": "a@b.co"},
            "transcript": {"summary": "wants Pro", "lines": [{"from": "visitor", "text": "my number is +1 415 555 2671"}]},
            "custom_field": {"kept": "by the queue only"}
        }))
        .unwrap();
        QueuedLead::new(event, Utc::now()).unwrap()
    }

    #[test]
    fn the_ledger_keeps_no_transcript_lines_and_no_unknown_fields_but_the_same_event() {
        let full = lead("lead.created");
        let kept = full.for_ledger();
        let t = kept.event.transcript.as_ref().unwrap();
        assert!(t.lines.is_empty());
        assert_eq!(
            t.summary.as_deref(),
            Some("wants Pro"),
            "the note's summary stays"
        );
        assert!(kept.event.extra.is_empty());
        assert_eq!(
            kept.payload_hash, full.payload_hash,
            "a replay is the same event"
        );
        assert_eq!(kept.delivery_id(), full.delivery_id());
        assert!(kept.to_json().len() < full.to_json().len());
        assert!(!kept.to_json().contains("555"));
    }

    #[test]
    fn a_messaging_message_keeps_its_line() {
        let kept = lead("message.received").for_ledger();
        assert_eq!(kept.event.transcript.unwrap().lines.len(), 1);
        assert!(kept.event.extra.is_empty());
    }
}
