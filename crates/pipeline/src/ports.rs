//! Ports: the narrow traits the use cases need from the outside world.

use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use lb_domain::{EventId, QueuedLead};
use serde::{Deserialize, Serialize};

/// An infrastructure call failed (queue, table, topic, secret store). Use cases
/// treat it as transient (nothing is acknowledged on the strength of it),
/// unless the service refused the request itself (`permanent`: DynamoDB's
/// `ValidationException`, an item too large): asking again cannot help.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{0}")]
pub struct PortError(pub String, pub bool);

impl PortError {
    pub fn new(msg: impl Into<String>) -> Self {
        Self(msg.into(), false)
    }
    /// The service refused this request as it is (validation): not an outage.
    pub fn refused(msg: impl Into<String>) -> Self {
        Self(msg.into(), true)
    }
    pub fn is_permanent(&self) -> bool {
        self.1
    }
}

/// How a failure should be handled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorClass {
    /// Try again later (5xx, timeouts, connection errors, locks).
    Transient,
    /// The CRM said slow down; retry after its reset.
    RateLimited,
    /// Retrying cannot help (validation, unknown property, auth): dead-letter now.
    Permanent,
}

impl ErrorClass {
    pub fn as_str(&self) -> &'static str {
        match self {
            ErrorClass::Transient => "transient",
            ErrorClass::RateLimited => "rate_limited",
            ErrorClass::Permanent => "permanent",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "transient" => Some(Self::Transient),
            "rate_limited" => Some(Self::RateLimited),
            "permanent" => Some(Self::Permanent),
            _ => None,
        }
    }
}

/// Why an event failed: carried on dead letters, stored in the ledger, shown in alerts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FailureReason {
    pub class: ErrorClass,
    /// Stable machine code: `crm_rejected`, `crm_unavailable`, `retries_exhausted`,
    /// `poison_message`, `event_id_conflict`, `max_receive_count_exceeded`, …
    pub code: String,
    /// The CRM's own error text (or ours when the CRM said nothing).
    pub message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub crm: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http_status: Option<u16>,
}

/// An error from a CRM adapter, already classified.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{crm} {}: {message}", class.as_str())]
pub struct CrmError {
    pub crm: String,
    pub class: ErrorClass,
    pub http_status: Option<u16>,
    /// The CRM's category/error code when it gave one (`VALIDATION_ERROR`, …).
    pub category: Option<String>,
    pub message: String,
    /// When the CRM told us when to come back (Retry-After, rate-limit interval).
    pub retry_after: Option<Duration>,
    /// Our own failure code when it says more than the class does (`schema_drift`,
    /// `unknown_connection`); `None` uses the class's code (`crm_rejected`, …).
    pub code: Option<String>,
    /// A write to one record was refused because another record already holds
    /// one of the event's unique identities (HubSpot's 409 `Existing ID`): that
    /// record's id. The identity rule decides what happens next.
    pub taken_by: Option<String>,
}

impl CrmError {
    /// An error with no CRM category, retry hint or code of our own.
    pub fn new(
        crm: impl Into<String>,
        class: ErrorClass,
        http_status: Option<u16>,
        message: impl Into<String>,
    ) -> Self {
        Self {
            crm: crm.into(),
            class,
            http_status,
            category: None,
            message: message.into(),
            retry_after: None,
            code: None,
            taken_by: None,
        }
    }

    /// A refusal leadbridge makes itself before writing (a schema drift, a
    /// stage the CRM does not have): permanent, with its own `code`.
    pub fn refused(crm: impl Into<String>, code: &str, message: impl Into<String>) -> Self {
        Self {
            code: Some(code.to_string()),
            ..Self::new(crm, ErrorClass::Permanent, None, message)
        }
    }

    pub fn reason(&self) -> FailureReason {
        let code = match self.class {
            ErrorClass::Permanent => "crm_rejected",
            ErrorClass::RateLimited => "crm_rate_limited",
            ErrorClass::Transient => "crm_unavailable",
        };
        FailureReason {
            class: self.class,
            code: self.code.clone().unwrap_or_else(|| code.to_string()),
            message: self.message.clone(),
            crm: Some(self.crm.clone()),
            http_status: self.http_status,
        }
    }
}

/// The CRM record ids a synced event produced.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncOutcome {
    pub crm: String,
    pub contact_id: String,
    pub contact_created: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deal_id: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LedgerStatus {
    /// Ingest recorded it; not yet confirmed on the queue.
    Received,
    /// On the queue, waiting for the worker.
    Queued,
    /// A worker holds the lease.
    InProgress,
    /// Failed transiently; another attempt is scheduled.
    Retrying,
    Synced,
    Dead,
    /// Refused at ingest (422): the sender was told why; kept for the audit trail.
    Rejected,
}

impl LedgerStatus {
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Received => "received",
            Self::Queued => "queued",
            Self::InProgress => "in_progress",
            Self::Retrying => "retrying",
            Self::Synced => "synced",
            Self::Dead => "dead",
            Self::Rejected => "rejected",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "received" => Self::Received,
            "queued" => Self::Queued,
            "in_progress" => Self::InProgress,
            "retrying" => Self::Retrying,
            "synced" => Self::Synced,
            "dead" => Self::Dead,
            "rejected" => Self::Rejected,
            _ => return None,
        })
    }
}

/// The ledger's view of one delivery of an event (one per connection it is
/// routed to): its sync status and audit trail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LedgerRecord {
    pub event_id: String,
    /// The connection this delivery is for (`None`: the single connection of a
    /// deployment without a config file).
    pub connection: Option<String>,
    pub status: LedgerStatus,
    pub bot_id: Option<String>,
    pub contact_key_hash: Option<String>,
    pub payload_hash: Option<String>,
    /// What a replay needs of the lead ([`QueuedLead::for_ledger`]): kept while
    /// the delivery is not synced (a dead one can be replayed), dropped once it is.
    pub payload: Option<String>,
    /// The person, masked (`p***@a***.in`): what lists and the status API show
    /// once the payload is gone.
    pub contact: Option<String>,
    pub attempts: u32,
    /// How many times an operator replayed it after it was dead.
    pub replays: u32,
    pub lease_until: Option<DateTime<Utc>>,
    pub next_attempt_at: Option<DateTime<Utc>>,
    pub last_error: Option<FailureReason>,
    pub outcome: Option<SyncOutcome>,
    pub received_at: Option<DateTime<Utc>>,
    pub updated_at: Option<DateTime<Utc>>,
    /// Every attempt's end, oldest first: each failure with the CRM's answer,
    /// the sync, the death ([`Ledger::fail`], [`Ledger::complete`],
    /// [`Ledger::mark_dead`] append to it in the same write).
    pub history: Vec<AttemptRecord>,
}

/// How one attempt ended, as the ledger keeps it (the console's story).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttemptRecord {
    pub at: DateTime<Utc>,
    /// `retrying`, `synced` or `dead`.
    pub outcome: String,
    /// The failure code (`crm_unavailable`, `crm_rate_limited`, …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    /// The CRM's answer, scrubbed and cut to [`AttemptRecord::MAX_MESSAGE`] characters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http_status: Option<u16>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub crm: Option<String>,
}

impl AttemptRecord {
    /// The longest message kept per attempt (the item stays far below DynamoDB's 400 KB).
    pub const MAX_MESSAGE: usize = 200;

    /// A failure (`retrying` or `dead`).
    pub fn failed(outcome: &str, reason: &FailureReason, at: DateTime<Utc>) -> Self {
        let message: String = reason.message.chars().take(Self::MAX_MESSAGE).collect();
        Self {
            at,
            outcome: outcome.into(),
            code: Some(reason.code.clone()),
            message: Some(message),
            http_status: reason.http_status,
            crm: reason.crm.clone(),
        }
    }

    pub fn synced(outcome: &SyncOutcome, at: DateTime<Utc>) -> Self {
        Self {
            at,
            outcome: "synced".into(),
            code: None,
            message: None,
            http_status: None,
            crm: Some(outcome.crm.clone()),
        }
    }
}

impl LedgerRecord {
    /// The ledger key: `<event_id>` or `<event_id>@<connection>`.
    pub fn delivery_id(&self) -> String {
        lb_domain::delivery_id(&self.event_id, self.connection.as_deref())
    }
}

/// An event refused at ingest (422), as the ledger keeps it: never the
/// payload, only what lets someone see what went wrong and for whom.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    /// The sender's event id when it was valid, else `body-<sha256 prefix>`.
    pub id: String,
    pub bot_id: Option<String>,
    /// What the sender was told, in order (`consent_required` on `consent.given_at`,
    /// …); a refusal of the whole body has an empty field.
    pub errors: Vec<lb_domain::FieldError>,
    /// The person, masked (`p***@a***.in`), when an identity could be read.
    pub identity: Option<String>,
    /// What the sender was answered (422, or 400 for a body that is not JSON).
    pub http_status: u16,
}

impl Rejection {
    /// As a failure reason (what `leadbridge list --status rejected` shows): the
    /// first code, and every code with its field in the message.
    pub fn reason(&self) -> FailureReason {
        let mut message = self
            .errors
            .iter()
            .map(|e| match e.field.as_str() {
                "" => e.code.clone(),
                f => format!("{} ({f})", e.code),
            })
            .collect::<Vec<_>>()
            .join(", ");
        if let Some(who) = &self.identity {
            message.push_str(&format!("; visitor {who}"));
        }
        FailureReason {
            class: ErrorClass::Permanent,
            code: self
                .errors
                .first()
                .map_or_else(|| "invalid_lead".into(), |e| e.code.clone()),
            message,
            crm: None,
            http_status: Some(self.http_status),
        }
    }
}

/// How many rejections the current alert window has seen (this one included).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RejectionTally {
    pub in_window: u64,
}

/// What ingest's first write found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Received {
    /// First time this event id is seen.
    New,
    /// Seen before; here is what the ledger holds.
    Existing(Box<LedgerRecord>),
}

/// What the worker's `begin` decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Begin {
    /// The lease is ours; this is attempt number `attempt` (1-based; attempts
    /// given back by [`Ledger::fail`] are not counted). `follows_earlier`: an
    /// earlier attempt of this delivery ran (a retry, a lease takeover, a
    /// replay), so it may have written something. `prior`: what earlier
    /// attempts recorded as written (see [`Ledger::record_progress`]).
    Proceed {
        attempt: u32,
        follows_earlier: bool,
        prior: Option<SyncOutcome>,
    },
    /// Already synced: acknowledge without touching the CRM.
    AlreadySynced(Option<SyncOutcome>),
    /// Already dead-lettered; a stray redelivery is acknowledged and left alone.
    AlreadyDead,
    /// Another invocation holds an unexpired lease.
    InProgress { lease_until: DateTime<Utc> },
    /// Same event id, different payload.
    Conflict,
}

/// The idempotency ledger and per-lead audit trail (DynamoDB in production).
#[async_trait]
pub trait Ledger: Send + Sync {
    /// Ingest: conditionally records the event as `received` with its payload.
    async fn record_received(
        &self,
        lead: &QueuedLead,
        body: &str,
        now: DateTime<Utc>,
    ) -> Result<Received, PortError>;
    /// Ingest: the queue accepted the message (`received` → `queued`; a later state is left alone).
    /// Keyed, like every method below, by delivery id (see [`LedgerRecord::delivery_id`]).
    async fn mark_queued(&self, delivery_id: &str, now: DateTime<Utc>) -> Result<(), PortError>;
    /// Worker: take the in-progress lease until `lease_until`, or say why not.
    async fn begin(
        &self,
        lead: &QueuedLead,
        body: &str,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
    ) -> Result<Begin, PortError>;
    async fn complete(
        &self,
        delivery_id: &str,
        outcome: &SyncOutcome,
        now: DateTime<Utc>,
    ) -> Result<(), PortError>;
    /// A transient failure: status `retrying`, lease released, error and next attempt
    /// recorded. `counted: false` (a rate limit, a wait behind another event of the
    /// person) gives the attempt back: it does not use up the retry budget.
    async fn fail(
        &self,
        delivery_id: &str,
        reason: &FailureReason,
        next_attempt_at: DateTime<Utc>,
        counted: bool,
        now: DateTime<Utc>,
    ) -> Result<(), PortError>;
    /// Terminal failure. Never overwrites a `synced` record (returns `false` then).
    /// `payload` fills in the stored payload if the ledger did not have it.
    async fn mark_dead(
        &self,
        delivery_id: &str,
        reason: &FailureReason,
        payload: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<bool, PortError>;
    /// [`Ledger::mark_dead`] for a dead letter the queue sent at `sent_at`,
    /// unless the delivery was replayed after that: a late dead letter never
    /// undoes a replay (`false` then, and the ledger stays as the replay left it).
    async fn mark_dead_letter(
        &self,
        delivery_id: &str,
        reason: &FailureReason,
        payload: Option<&str>,
        sent_at: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<bool, PortError>;
    async fn get(&self, delivery_id: &str) -> Result<Option<LedgerRecord>, PortError>;
    /// Every delivery of one event (one per connection), in connection order.
    async fn deliveries(&self, event_id: &str) -> Result<Vec<LedgerRecord>, PortError>;
    /// The CRM record id the ledger remembers for each identity (hash) of a
    /// person on one connection, in the order asked (`None`: not known).
    async fn identities(
        &self,
        crm: &str,
        key_hashes: &[String],
    ) -> Result<Vec<Option<String>>, PortError>;
    /// Takes the person's lock before their CRM record is written: the lease of
    /// the record (when one is known) and a claim on every identity no record is
    /// known for, all or nothing, until `lock.until`. Busy when another holder
    /// has any of them, or a claimed identity got a record meanwhile. A holder
    /// may take again what it holds (a retry of the same delivery).
    async fn lock_person(&self, lock: &PersonLock, now: DateTime<Utc>)
        -> Result<Locked, PortError>;
    /// Releases what [`Ledger::lock_person`] took, after linking the written
    /// record's new identities to it and moving its `last_applied` forward
    /// (never backwards). Returns the identities that were linked to another
    /// record already (they keep that link: a possible duplicate).
    async fn release_person(
        &self,
        release: &PersonRelease,
        now: DateTime<Utc>,
    ) -> Result<Vec<LinkedElsewhere>, PortError>;
    /// Records a possible duplicate (one person, several CRM records). `true`
    /// the first time this set of records is seen: the caller alerts once.
    async fn record_conflict(
        &self,
        conflict: &IdentityConflict,
        now: DateTime<Utc>,
    ) -> Result<bool, PortError>;
    /// Claims a key once across every instance (a quota warning per connection
    /// per day): `true` for the first caller, `false` after. Kept 8 days.
    async fn claim_once(&self, key: &str, now: DateTime<Utc>) -> Result<bool, PortError>;
    /// What an attempt wrote before it failed (contact, note, deal ids), kept so
    /// that a later attempt or replay skips it. Never touches a synced record.
    async fn record_progress(
        &self,
        delivery_id: &str,
        progress: &SyncOutcome,
        now: DateTime<Utc>,
    ) -> Result<(), PortError>;
    /// Right to erasure: removes everything the ledger keeps of the person
    /// known by any of `key_hashes` (identity hashes), on every connection, and
    /// of every identity linked to the same CRM records: identity links, record
    /// items, conflicts naming those records, and every delivery whose contact
    /// key is one of them (with its payload). Rejections keep no identity but a
    /// masked one and are not touched.
    async fn erase_person(&self, key_hashes: &[String]) -> Result<Erased, PortError>;
    /// Events in one status, newest first, narrowed by `filter`.
    async fn list(&self, filter: &ListFilter) -> Result<Vec<LedgerRecord>, PortError>;
    /// Replay: a `dead` event goes back to `queued` with its attempts reset.
    /// Returns the replay number, or `None` when the event is not dead (a synced
    /// event never runs twice).
    async fn requeue(
        &self,
        delivery_id: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<u32>, PortError>;
    /// Records an event refused at ingest (status `rejected`) and counts it in
    /// its bot's alert window starting at `window_start` (each bot's own count).
    async fn record_rejected(
        &self,
        rejection: &Rejection,
        window_start: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<RejectionTally, PortError>;
}

/// What [`Ledger::erase_person`] removed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Erased {
    /// Delivery ids (`<event_id>[@<connection>]`) removed, sorted.
    pub deliveries: Vec<String>,
    /// Identity links removed (one per identity and connection).
    pub identity_links: usize,
    /// CRM record items (lease, newest applied event) removed.
    pub records: usize,
    /// Possible-duplicate records removed.
    pub conflicts: usize,
    /// Every identity hash of the person (the ones asked and the ones linked to
    /// the same records), for erasing elsewhere (the dead-letter queue).
    pub key_hashes: Vec<String>,
}

/// The lock on one person's record(s) for one connection (see [`Ledger::lock_person`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PersonLock {
    /// The connection (its records and identities are its own).
    pub crm: String,
    /// Who holds it: the delivery id.
    pub holder: String,
    pub until: DateTime<Utc>,
    /// The record to lease, when one is known.
    pub record: Option<String>,
    /// Hashes of the identities no record is known for.
    pub claim: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Locked {
    /// Held. `last_applied`: the `occurred_at` of the newest event whose fields
    /// were written to the leased record (none for a new or unknown record).
    Held { last_applied: Option<DateTime<Utc>> },
    /// Another event of this person holds part of it.
    Busy,
}

/// What [`Ledger::release_person`] records and releases.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PersonRelease {
    pub crm: String,
    pub holder: String,
    /// The record written, when the write happened.
    pub written: Option<Written>,
    /// Every record lease the holder took.
    pub records: Vec<String>,
    /// Every identity claim the holder took.
    pub claims: Vec<String>,
    /// Until when the holder's lock was taken (its claims' and leases' end).
    pub held_until: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Written {
    pub record: String,
    /// Identity hashes to link to the record (those already linked to it are fine).
    pub link: Vec<String>,
    /// The `occurred_at` whose fields were written (`None`: the event was older
    /// than one already applied and wrote no field).
    pub applied: Option<DateTime<Utc>>,
    /// A record the ledger knew that the CRM no longer has (deleted or merged
    /// away): identities linked to it are re-linked to `record`.
    pub replaces: Option<String>,
    /// The CRM created `record` in this write. With every identity in `link`
    /// claimed by the holder and the lock not yet run out, nobody else can
    /// know the record or link those identities, so a ledger may record it
    /// all without conditions (DynamoDB: one `BatchWriteItem`).
    pub created: bool,
}

/// An identity that could not be linked: it belongs to another record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkedElsewhere {
    pub key_hash: String,
    pub record: String,
}

/// One person, several CRM records: what the ledger keeps of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdentityConflict {
    pub crm: String,
    /// The record the event was written to (the strongest identity's).
    pub written_to: String,
    /// The other records, sorted.
    pub others: Vec<String>,
    /// The delivery that found it.
    pub delivery_id: String,
    /// Which identities point where, masked (`email p***@a***.in → 512`).
    pub detail: String,
}

impl IdentityConflict {
    /// Every record involved, sorted: the conflict's identity.
    pub fn records(&self) -> Vec<String> {
        let mut v: Vec<String> = self.others.clone();
        v.push(self.written_to.clone());
        v.sort();
        v.dedup();
        v
    }
}

/// Which ledger records to list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListFilter {
    pub status: LedgerStatus,
    /// Only records updated at or after this time.
    pub since: Option<DateTime<Utc>>,
    pub bot_id: Option<String>,
    /// Only records whose last error has this code (`crm_rejected`, …).
    pub reason: Option<String>,
    pub limit: Option<usize>,
}

impl ListFilter {
    pub fn status(status: LedgerStatus) -> Self {
        Self {
            status,
            since: None,
            bot_id: None,
            reason: None,
            limit: None,
        }
    }
}

/// A message to park on the dead-letter queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetter {
    pub body: String,
    pub group_id: String,
    pub dedup_id: String,
    /// The delivery id (`<event_id>` or `<event_id>@<connection>`), when the body was a lead.
    pub event_id: Option<String>,
    pub attempts: u32,
    pub reason: FailureReason,
}

/// The leads queue and its dead-letter queue (SQS FIFO in production).
#[async_trait]
pub trait LeadQueue: Send + Sync {
    /// Durably enqueues: group = hashed contact key, deduplication id = event id.
    async fn enqueue(&self, lead: &QueuedLead) -> Result<(), PortError>;
    /// Enqueues a replay of a dead event (its own deduplication id, so the
    /// queue does not drop it as a copy of the original).
    async fn requeue(&self, lead: &QueuedLead, replay: u32) -> Result<(), PortError>;
    async fn dead_letter(&self, letter: &DeadLetter) -> Result<(), PortError>;
    /// Right to erasure: deletes the dead letters of leads that carry any of
    /// `key_hashes` (identity hashes); the number deleted.
    async fn erase_dead_letters(&self, key_hashes: &[String]) -> Result<usize, PortError>;
    /// Makes a message received from `lane`'s queue visible again after `delay`.
    async fn retry_later(
        &self,
        lane: lb_domain::Lane,
        receipt_handle: &str,
        delay: std::time::Duration,
    ) -> Result<(), PortError>;
}

/// A person-readable notification (SNS in production).
#[async_trait]
pub trait Alerts: Send + Sync {
    async fn publish(&self, subject: &str, message: &str) -> Result<(), PortError>;
}

/// The outbound CRM adapter. Every write is idempotent or findable:
/// contacts are upserted by identity, notes and deals carry the event's tag.
#[async_trait]
pub trait Crm: Send + Sync {
    /// Short name used in ledger rows, contact memory and alerts: the
    /// connection's name (`hubspot` without a config file).
    fn name(&self) -> &str;
    /// Whether the CRM keeps person records (contacts, notes, deals). A webhook
    /// target does not: it receives each lead once, in one call to
    /// [`Crm::upsert_contact`], and there is nothing to find or add afterwards.
    fn keeps_records(&self) -> bool {
        true
    }
    /// The records the CRM holds for the event's identities, found by every
    /// identity it can search that an upsert would not match by itself, as
    /// `(index into the event's identities, record id)`: the same shape as the
    /// ledger's memory, so one rule ([`lb_domain::identity::resolve`]) applies to
    /// both. Search may lag writes; the ledger's memory covers that.
    async fn find_contacts(&self, _lead: &QueuedLead) -> Result<Vec<(usize, String)>, CrmError> {
        Ok(Vec::new())
    }
    /// Writes the person. `known_id`: the record the identity rule chose; that
    /// record is updated (a refusal because another record holds one of the
    /// event's unique identities comes back with [`CrmError::taken_by`]). `None`:
    /// the CRM's own create-or-update (upsert by email, else create). With
    /// [`ContactWrite::IdentityOnly`] (an event older than one already applied)
    /// a known record is not written at all; a new one gets only the identities.
    async fn upsert_contact(
        &self,
        lead: &QueuedLead,
        known_id: Option<&str>,
        write: ContactWrite,
    ) -> Result<ContactRef, CrmError>;
    /// The note this event already wrote to the contact, if any (found by its tag).
    async fn find_note(
        &self,
        contact_id: &str,
        event_id: &EventId,
    ) -> Result<Option<String>, CrmError>;
    async fn add_note(&self, contact_id: &str, lead: &QueuedLead) -> Result<String, CrmError>;
    /// The deal this event already created for the contact, if any.
    async fn find_deal(
        &self,
        contact_id: &str,
        event_id: &EventId,
    ) -> Result<Option<String>, CrmError>;
    async fn create_deal(&self, contact_id: &str, lead: &QueuedLead) -> Result<String, CrmError>;

    /// Work done once per cold start so the first lead does not pay it (the
    /// token, the schema, the connection's TLS handshake). Failures are the
    /// first lead's to meet and report; nothing is raised here.
    async fn warm_up(&self) {}
    /// What the CRM's schema would refuse of what this connection writes, read
    /// afresh: one sentence per finding (empty: all fits). The hourly check
    /// alerts on it before a lead fails. CRMs without a schema check: empty.
    async fn schema_findings(&self) -> Result<Vec<String>, CrmError> {
        Ok(Vec::new())
    }
    /// Before anything is written for an event that asks for a deal: the deal's
    /// pipeline and stage exist as the CRM's admin set them up. A refusal is
    /// permanent and names the stage; nothing of the event is written.
    async fn check_deal(&self, _lead: &QueuedLead) -> Result<(), CrmError> {
        Ok(())
    }
    /// The most items one call of the batch methods below takes; 1 (the
    /// default) means the CRM has no batch calls and each item is a call of
    /// its own. The worker gathers the calls of the deliveries it is working
    /// on at once and hands them over in chunks of this size ([`crate::batch`]).
    fn batch_limit(&self) -> usize {
        1
    }
    /// [`Crm::find_contacts`] for several events at once: one answer per
    /// lead, in order. A failure of the whole call is every lead's answer.
    async fn find_contacts_batch(
        &self,
        leads: &[QueuedLead],
    ) -> Vec<Result<Vec<(usize, String)>, CrmError>> {
        let mut out = Vec::with_capacity(leads.len());
        for lead in leads {
            out.push(self.find_contacts(lead).await);
        }
        out
    }
    /// [`Crm::upsert_contact`] for several people at once (never two items of
    /// one person): one answer per item, in order. One item the CRM refuses
    /// fails alone, with the CRM's own error for it.
    async fn upsert_contacts(&self, items: &[ContactUpsert]) -> Vec<Result<ContactRef, CrmError>> {
        let mut out = Vec::with_capacity(items.len());
        for i in items {
            out.push(
                self.upsert_contact(&i.lead, i.known_id.as_deref(), i.write)
                    .await,
            );
        }
        out
    }
    /// [`Crm::add_note`] for several events at once, `(contact id, lead)`.
    async fn add_notes(&self, items: &[(String, QueuedLead)]) -> Vec<Result<String, CrmError>> {
        let mut out = Vec::with_capacity(items.len());
        for (contact, lead) in items {
            out.push(self.add_note(contact, lead).await);
        }
        out
    }
    /// [`Crm::create_deal`] for several events at once, `(contact id, lead)`.
    async fn create_deals(&self, items: &[(String, QueuedLead)]) -> Vec<Result<String, CrmError>> {
        let mut out = Vec::with_capacity(items.len());
        for (contact, lead) in items {
            out.push(self.create_deal(contact, lead).await);
        }
        out
    }

    /// The day's quota usage, once it passes the warning threshold (70%): at
    /// most once per day per adapter instance. `None` for CRMs without a daily quota.
    fn take_quota_warning(&self) -> Option<QuotaUsage> {
        None
    }
    /// Whether messaging conversations are kept as one updatable note each
    /// ([`lb_domain::conversation`]); otherwise every message is a note of its own.
    fn keeps_conversations(&self) -> bool {
        false
    }
    /// The longest note body the CRM takes, in characters.
    fn note_max_chars(&self) -> usize {
        65_536
    }
    /// The notes of one conversation on the contact (carrying
    /// `conversation_tag`), oldest first, as `(note id, body)`.
    async fn conversation_notes(
        &self,
        _contact_id: &str,
        _conversation_tag: &str,
    ) -> Result<Vec<(String, String)>, CrmError> {
        Ok(Vec::new())
    }
    /// Adds a note with this body (a conversation's note) to the contact.
    async fn add_note_body(
        &self,
        _contact_id: &str,
        _body: &str,
        _at: chrono::DateTime<chrono::Utc>,
    ) -> Result<String, CrmError> {
        Err(no_conversations(self.name()))
    }
    /// Replaces a note's body (a message joins its conversation's note).
    async fn update_note(&self, _note_id: &str, _body: &str) -> Result<(), CrmError> {
        Err(no_conversations(self.name()))
    }
}

fn no_conversations(crm: &str) -> CrmError {
    CrmError::new(
        crm,
        ErrorClass::Permanent,
        None,
        "this connection keeps no conversation notes",
    )
}

/// Calls to a CRM counted across every worker instance: the store of the
/// shared rate limiter ([`crate::throttle::Throttle`]), the ledger table.
#[async_trait]
pub trait CallCounter: Send + Sync {
    /// Counts one call in `window` (a key naming a connection and one time
    /// slice) unless `limit` calls were counted there already: `Ok(false)` then,
    /// and nothing is counted. The count may be forgotten after `expires`.
    async fn count_call(
        &self,
        window: &str,
        limit: u32,
        expires: DateTime<Utc>,
    ) -> Result<bool, PortError>;
}

/// An OAuth access token shared by every worker instance of a connection
/// (Zoho lets one refresh token mint 10 access tokens per 10 minutes: a
/// token per instance would run out under load).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SharedToken {
    pub value: String,
    /// Zoho's `api_domain`, Salesforce's `instance_url`.
    pub api_domain: Option<String>,
    pub expires_at: DateTime<Utc>,
    /// When instances start refreshing it (before it expires).
    pub refresh_at: DateTime<Utc>,
}

impl std::fmt::Debug for SharedToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedToken")
            .field("api_domain", &self.api_domain)
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

/// Where instances share an access token and take turns refreshing it (the
/// ledger table).
#[async_trait]
pub trait TokenShare: Send + Sync {
    /// The token last shared under `key`, if any (fresh or not).
    async fn shared_token(&self, key: &str) -> Result<Option<SharedToken>, PortError>;
    /// Takes the right to refresh `key`'s token until `until`: `false` while
    /// another instance holds it.
    async fn lease_refresh(&self, key: &str, until: DateTime<Utc>) -> Result<bool, PortError>;
    /// Shares a new token under `key` and ends the lease.
    async fn share_token(&self, key: &str, token: &SharedToken) -> Result<(), PortError>;
}

/// A connection's use of its daily API quota (the CRM's day).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuotaUsage {
    pub used: u64,
    pub limit: u64,
    /// `YYYY-MM-DD` (UTC): one warning per connection per day.
    pub day: String,
}

/// The CRM connections a worker writes to, by name.
pub trait Connections: Send + Sync {
    /// The CRM for a message's connection (`None`: the deployment's single
    /// connection, when it has no config file). `Err` says why there is none.
    fn crm_for(&self, connection: Option<&str>) -> Result<&dyn Crm, String>;
    /// Every connection.
    fn all(&self) -> Vec<&dyn Crm>;
}

/// A single CRM is a set of one connection (its name, or no name).
impl<T: Crm> Connections for T {
    fn all(&self) -> Vec<&dyn Crm> {
        vec![self]
    }
    fn crm_for(&self, connection: Option<&str>) -> Result<&dyn Crm, String> {
        match connection {
            None => Ok(self),
            Some(c) if c == self.name() => Ok(self),
            Some(c) => Err(format!(
                "no connection named {c:?}; this worker writes to {:?}",
                self.name()
            )),
        }
    }
}

/// The connections of a config file, every one named. (A deployment without a
/// config file has one CRM, which is a [`Connections`] of its own.)
#[derive(Default)]
pub struct CrmSet {
    named: std::collections::BTreeMap<String, std::sync::Arc<dyn Crm>>,
}

impl CrmSet {
    /// Adds a named connection (the name is [`Crm::name`]).
    pub fn add(&mut self, crm: std::sync::Arc<dyn Crm>) {
        self.named.insert(crm.name().to_string(), crm);
    }
    pub fn names(&self) -> Vec<&str> {
        self.named.keys().map(String::as_str).collect()
    }
}

impl Connections for CrmSet {
    fn all(&self) -> Vec<&dyn Crm> {
        self.named.values().map(|c| c.as_ref()).collect()
    }
    fn crm_for(&self, connection: Option<&str>) -> Result<&dyn Crm, String> {
        match connection {
            None => Err(
                "the message names no connection (it was queued before the config file was \
                 introduced) and every connection is named now; re-send the event"
                    .to_string(),
            ),
            Some(c) => self.named.get(c).map(|c| c.as_ref()).ok_or_else(|| {
                format!(
                    "no connection named {c:?} in the config; known: {}",
                    self.names().join(", ")
                )
            }),
        }
    }
}

/// How much of the contact an event may write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContactWrite {
    /// Every mapped field.
    Full,
    /// Only what finds or creates the record: a newer event already set the fields.
    IdentityOnly,
}

/// One person's write in a batch ([`Crm::upsert_contacts`]): the arguments of
/// [`Crm::upsert_contact`].
#[derive(Debug, Clone)]
pub struct ContactUpsert {
    pub lead: QueuedLead,
    pub known_id: Option<String>,
    pub write: ContactWrite,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContactRef {
    pub id: String,
    pub created: bool,
}

/// Where secrets come from (Secrets Manager in production).
#[async_trait]
pub trait SecretStore: Send + Sync {
    async fn get_secret(&self, id: &str) -> Result<String, PortError>;
    /// Writes a new value of the secret (an OAuth grant whose refresh token
    /// rotated). A store that cannot write says so.
    async fn put_secret(&self, id: &str, _value: &str) -> Result<(), PortError> {
        Err(PortError::new(format!(
            "secret {id}: this secret store is read-only"
        )))
    }
}
