//! Pure domain types and rules of leadbridge: no async, no AWS, no HTTP.
//!
//! Every value type here can only be built valid (`parse`, or `TryFrom` during
//! deserialization), so code downstream can trust what it holds.

pub mod conversation;
pub mod deal;
pub mod error;
pub mod event;
pub mod geo;
pub mod identity;
pub mod mapping;
pub mod mask;
pub mod note;
pub mod queued;
pub mod redact;
pub mod text;
pub mod web;

pub use deal::DealAmount;
pub use error::{FieldError, FieldErrors};
pub use event::{
    BotId, Consent, CrmTarget, EventId, EventType, Intent, LeadContext, LeadEvent, Transcript,
    TranscriptLine, Visitor,
};
pub use geo::{Country, CountryPolicy, Subdivision};
pub use identity::{ContactKey, Email, Phone, WaId};
pub use queued::{delivery_id, split_delivery_id, Delivery, Lane, QueuedLead};
pub use redact::{Redaction, RedactionKind};
pub use text::{DisplayName, ShortText};
pub use web::HttpUrl;
