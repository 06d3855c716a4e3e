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
        })
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
