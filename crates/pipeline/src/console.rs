//! The operators' console (`GET /console` and `/v1/console/…`, served by ingest):
//! lead flow per hour, bot and connection; a searchable list of deliveries; one
//! event's story; replay of dead deliveries.
//!
//! Everything is read from the ledger through [`Ledger::list`] (the status index),
//! [`Ledger::get`] and [`Ledger::deliveries`]. People are shown masked (the
//! ledger's `contact`) and every CRM message is scrubbed of the lead's identities,
//! as in the status API ([`EventStatus::from_record`]). A key limited to bots
//! ([`KeyScope::Bots`]) sees and replays only those bots' events, and learns
//! nothing of the others (an event outside its bots is "not found").
//!
//! The ledger keeps one record per delivery with the history of its attempts:
//! a story shows each failed attempt with the CRM's answer and its HTTP status
//! (scrubbed), the next attempt, the replays and how it ended (`history`).

use std::collections::{BTreeMap, HashSet};

use chrono::{DateTime, Duration, SecondsFormat, Utc};
use lb_domain::{split_delivery_id, EventId, QueuedLead};
use serde::{Deserialize, Serialize, Serializer};
use tracing::info;

use crate::ports::{
    LeadQueue, Ledger, LedgerRecord, LedgerStatus, ListFilter, PortError, SyncOutcome,
};
use crate::replay::{ReplayAction, ReplayEntry};
use crate::status::{DeliveryStatus, ErrorView, EventStatus, KeyScope};

/// The flow's default window, in hours.
pub const DEFAULT_HOURS: u32 = 24;
/// The flow's widest window: a week of hours.
pub const MAX_HOURS: u32 = 24 * 7;
/// Rows in an event list unless asked otherwise, and at most.
pub const DEFAULT_LIMIT: usize = 50;
pub const MAX_LIMIT: usize = 500;
/// At most this many records of one status (and one bot) are read for the
/// flow. An answer that reached it says `truncated`.
pub const SCAN_CAP: usize = 5_000;
/// An id prefix (or a rejection's id) is looked for among this many newest
/// records of each status (and one bot); a complete event id's deliveries are
/// read directly, whatever their age.
pub const SEARCH_CAP: usize = 1_000;
/// At most this many deliveries are replayed (or ids named) by one request.
pub const MAX_REPLAY: usize = 500;
/// What a story says the ledger keeps of the attempts.
pub const HISTORY: &str = "every_attempt";

/// Every ledger status, in the order of a lead's life.
const LEDGER_STATUSES: [LedgerStatus; 7] = [
    LedgerStatus::Received,
    LedgerStatus::Queued,
    LedgerStatus::InProgress,
    LedgerStatus::Retrying,
    LedgerStatus::Synced,
    LedgerStatus::Dead,
    LedgerStatus::Rejected,
];

/// A status as the status API names it (`not_queued`, `processing`, …); the
/// ledger's own names (`received`, `in_progress`) are taken too.
pub fn parse_status(s: &str) -> Option<DeliveryStatus> {
    LEDGER_STATUSES
        .iter()
        .map(|l| DeliveryStatus::of(*l))
        .find(|d| d.as_str() == s)
        .or_else(|| LedgerStatus::parse(s).map(DeliveryStatus::of))
}

fn ledger_status(d: DeliveryStatus) -> LedgerStatus {
    LEDGER_STATUSES
        .into_iter()
        .find(|l| DeliveryStatus::of(*l) == d)
        .unwrap_or(LedgerStatus::Received)
}

// ------------------------------------------------------------------ reading

/// One status for the key's bots (one query per bot for a limited key), newest
/// first; `true` when a query stopped at `cap` (there may be more).
async fn list_scoped(
    ledger: &dyn Ledger,
    scope: &KeyScope,
    status: LedgerStatus,
    bot: Option<&str>,
    since: Option<DateTime<Utc>>,
    reason: Option<&str>,
    cap: usize,
) -> Result<(Vec<LedgerRecord>, bool), PortError> {
    let bots: Vec<Option<String>> = match scope {
        KeyScope::All => vec![bot.map(str::to_string)],
        KeyScope::Bots(allowed) => match bot {
            Some(b) if allowed.iter().any(|a| a == b) => vec![Some(b.to_string())],
            Some(_) => Vec::new(),
            None => allowed.iter().cloned().map(Some).collect(),
        },
    };
    let mut out = Vec::new();
    let mut truncated = false;
    for bot_id in bots {
        let filter = ListFilter {
            status,
            since,
            bot_id,
            reason: reason.map(str::to_string),
            limit: Some(cap),
        };
        let page = ledger.list(&filter).await?;
        truncated |= page.len() >= cap;
        out.extend(page);
    }
    newest_first(&mut out);
    Ok((out, truncated))
}

fn newest_first(records: &mut [LedgerRecord]) {
    records.sort_by(|a, b| {
        b.updated_at
            .cmp(&a.updated_at)
            .then_with(|| a.delivery_id().cmp(&b.delivery_id()))
    });
}

/// Every delivery of an event, or the one delivery `<event_id>@<connection>`
/// names; nothing for a malformed id.
async fn by_id(ledger: &dyn Ledger, id: &str) -> Result<Vec<LedgerRecord>, PortError> {
    if EventId::parse(split_delivery_id(id).0).is_err() {
        return Ok(Vec::new());
    }
    if split_delivery_id(id).1.is_some() {
        return Ok(ledger.get(id).await?.into_iter().collect());
    }
    ledger.deliveries(id).await
}

// ------------------------------------------------------------------ flow

/// Deliveries counted in one hour, bot or connection.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    /// Deliveries recorded by ingest (`received_at`), whatever became of them.
    pub accepted: u64,
    /// Deliveries that reached their CRM (counted when they did).
    pub synced: u64,
    /// Leads refused at ingest (422/400), before routing.
    pub rejected: u64,
    /// Deliveries given up on (counted when they were).
    pub dead: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Accepted,
    Synced,
    Rejected,
    Dead,
}

impl Counts {
    fn add(&mut self, kind: Kind) {
        match kind {
            Kind::Accepted => self.accepted += 1,
            Kind::Synced => self.synced += 1,
            Kind::Rejected => self.rejected += 1,
            Kind::Dead => self.dead += 1,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HourCounts {
    /// The hour's start.
    #[serde(serialize_with = "ts")]
    pub hour: DateTime<Utc>,
    #[serde(flatten)]
    pub counts: Counts,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BotCounts {
    pub bot_id: Option<String>,
    #[serde(flatten)]
    pub counts: Counts,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ConnectionCounts {
    /// `null`: the one connection of a deployment without a config file.
    pub connection: Option<String>,
    #[serde(flatten)]
    pub counts: Counts,
}

/// `GET /v1/console/flow`: deliveries per hour of the window, oldest hour first,
/// and per bot and per connection over the whole window (rejections have no
/// connection: they are refused before routing).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Flow {
    pub hours: u32,
    #[serde(serialize_with = "ts")]
    pub from: DateTime<Utc>,
    #[serde(serialize_with = "ts")]
    pub to: DateTime<Utc>,
    pub totals: Counts,
    pub per_hour: Vec<HourCounts>,
    pub per_bot: Vec<BotCounts>,
    pub per_connection: Vec<ConnectionCounts>,
    /// A status had more than [`SCAN_CAP`] records in the window: counts are low.
    pub truncated: bool,
}

struct Tally {
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    per_hour: Vec<HourCounts>,
    per_bot: BTreeMap<Option<String>, Counts>,
    per_connection: BTreeMap<Option<String>, Counts>,
    totals: Counts,
}

impl Tally {
    fn count(&mut self, r: &LedgerRecord, kind: Kind, at: Option<DateTime<Utc>>) {
        let Some(at) = at.filter(|t| *t >= self.from && *t <= self.to) else {
            return;
        };
        let hour = (at.timestamp() - self.from.timestamp()).div_euclid(3600);
        let Some(row) = usize::try_from(hour)
            .ok()
            .and_then(|h| self.per_hour.get_mut(h))
        else {
            return;
        };
        row.counts.add(kind);
        self.totals.add(kind);
        self.per_bot.entry(r.bot_id.clone()).or_default().add(kind);
        if kind != Kind::Rejected {
            self.per_connection
                .entry(r.connection.clone())
                .or_default()
                .add(kind);
        }
    }
}

fn hour_of(t: DateTime<Utc>) -> DateTime<Utc> {
    DateTime::from_timestamp(t.timestamp().div_euclid(3600) * 3600, 0).unwrap_or(t)
}

/// The lead flow of the last `hours` hours (the current one included).
pub async fn flow(
    ledger: &dyn Ledger,
    scope: &KeyScope,
    hours: u32,
    now: DateTime<Utc>,
) -> Result<Flow, PortError> {
    let hours = hours.clamp(1, MAX_HOURS);
    let from = hour_of(now) - Duration::hours(i64::from(hours) - 1);
    let mut tally = Tally {
        from,
        to: now,
        per_hour: (0..hours)
            .map(|h| HourCounts {
                hour: from + Duration::hours(i64::from(h)),
                counts: Counts::default(),
            })
            .collect(),
        per_bot: BTreeMap::new(),
        per_connection: BTreeMap::new(),
        totals: Counts::default(),
    };
    let mut truncated = false;
    for status in LEDGER_STATUSES {
        // Anything received, synced, dead or refused in the window was updated in it.
        let (records, cut) =
            list_scoped(ledger, scope, status, None, Some(from), None, SCAN_CAP).await?;
        truncated |= cut;
        for r in &records {
            match status {
                LedgerStatus::Rejected => {
                    tally.count(r, Kind::Rejected, r.received_at.or(r.updated_at))
                }
                _ => {
                    tally.count(r, Kind::Accepted, r.received_at);
                    match status {
                        LedgerStatus::Synced => tally.count(r, Kind::Synced, r.updated_at),
                        LedgerStatus::Dead => tally.count(r, Kind::Dead, r.updated_at),
                        _ => {}
                    }
                }
            }
        }
    }
    Ok(Flow {
        hours,
        from,
        to: now,
        totals: tally.totals,
        per_hour: tally.per_hour,
        per_bot: tally
            .per_bot
            .into_iter()
            .map(|(bot_id, counts)| BotCounts { bot_id, counts })
            .collect(),
        per_connection: tally
            .per_connection
            .into_iter()
            .map(|(connection, counts)| ConnectionCounts { connection, counts })
            .collect(),
        truncated,
    })
}

// ------------------------------------------------------------------ events

/// `GET /v1/console/events?status=&bot=&q=&limit=`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EventQuery {
    pub status: Option<DeliveryStatus>,
    pub bot: Option<String>,
    /// A prefix of the event id (or of the delivery id `<event_id>@<connection>`).
    pub q: Option<String>,
    pub limit: Option<usize>,
}

/// One delivery in the list: never the payload, the person masked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EventRow {
    /// The delivery id: `<event_id>` or `<event_id>@<connection>` (what replay takes).
    pub id: String,
    pub event_id: String,
    pub connection: Option<String>,
    pub status: DeliveryStatus,
    pub bot_id: Option<String>,
    /// The person, masked (`p***@acmecorp.in`).
    pub contact: Option<String>,
    pub attempts: u32,
    pub replays: u32,
    pub error_code: Option<String>,
    pub http_status: Option<u16>,
    #[serde(serialize_with = "ts_opt")]
    pub received_at: Option<DateTime<Utc>>,
    #[serde(serialize_with = "ts_opt")]
    pub updated_at: Option<DateTime<Utc>>,
    /// Dead with a stored payload: replay can put it back on the queue.
    pub replayable: bool,
}

impl EventRow {
    fn of(r: &LedgerRecord) -> Self {
        Self {
            id: r.delivery_id(),
            event_id: r.event_id.clone(),
            connection: r.connection.clone(),
            status: DeliveryStatus::of(r.status),
            bot_id: r.bot_id.clone(),
            contact: masked_contact(r),
            attempts: r.attempts,
            replays: r.replays,
            error_code: r.last_error.as_ref().map(|e| e.code.clone()),
            http_status: r.last_error.as_ref().and_then(|e| e.http_status),
            received_at: r.received_at,
            updated_at: r.updated_at,
            replayable: replayable(r),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EventList {
    /// Newest first (by last change).
    pub events: Vec<EventRow>,
    /// There are more than these (a narrower filter finds them).
    pub truncated: bool,
}

/// Deliveries in one status (or all), newest first. With `q`, the newest
/// [`SEARCH_CAP`] records of each status are searched for the prefix, and a
/// complete event id is also read directly, whatever its age.
pub async fn events(
    ledger: &dyn Ledger,
    scope: &KeyScope,
    query: &EventQuery,
) -> Result<EventList, PortError> {
    let limit = query.limit.unwrap_or(DEFAULT_LIMIT).clamp(1, MAX_LIMIT);
    let q = query.q.as_deref().map(str::trim).filter(|q| !q.is_empty());
    let bot = query
        .bot
        .as_deref()
        .map(str::trim)
        .filter(|b| !b.is_empty());
    let statuses: Vec<LedgerStatus> = match query.status {
        Some(s) => vec![ledger_status(s)],
        None => LEDGER_STATUSES.to_vec(),
    };
    let cap = if q.is_some() { SEARCH_CAP } else { limit };
    let mut rows: Vec<LedgerRecord> = Vec::new();
    let mut truncated = false;
    for status in &statuses {
        let (records, cut) = list_scoped(ledger, scope, *status, bot, None, None, cap).await?;
        truncated |= cut;
        rows.extend(
            records
                .into_iter()
                .filter(|r| q.is_none_or(|q| r.delivery_id().starts_with(q))),
        );
    }
    if let Some(q) = q {
        let seen: HashSet<String> = rows.iter().map(LedgerRecord::delivery_id).collect();
        let exact = by_id(ledger, q).await?.into_iter().filter(|r| {
            statuses.contains(&r.status)
                && scope.may_read(r.bot_id.as_deref())
                && bot.is_none_or(|b| r.bot_id.as_deref() == Some(b))
                && !seen.contains(&r.delivery_id())
        });
        rows.extend(exact.collect::<Vec<_>>());
    }
    newest_first(&mut rows);
    truncated |= rows.len() > limit;
    rows.truncate(limit);
    Ok(EventList {
        events: rows.iter().map(EventRow::of).collect(),
        truncated,
    })
}

// ------------------------------------------------------------------ story

/// How a connection's records are linked to from a story.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum CrmLinks {
    /// No link (a webhook target keeps no records; Pipedrive's and Zoho's
    /// record pages are on the account's own domain).
    #[default]
    None,
    /// HubSpot's app: `https://app.hubspot.com/contacts/_/contact/{id}`.
    HubSpotApp,
    /// Another HubSpot API base (the local simulator): its read URL,
    /// `{base_url}/crm/v3/objects/contacts/{id}`.
    HubSpotApi { base_url: String },
}

/// The links of every connection, by name; `single` for the one connection of a
/// deployment without a config file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecordLinks {
    pub connections: BTreeMap<String, CrmLinks>,
    pub single: CrmLinks,
}

/// One CRM record a delivery wrote, and where to see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RecordLink {
    /// `contact`, `note` or `deal`.
    pub object: &'static str,
    pub id: String,
    pub url: Option<String>,
}

impl RecordLinks {
    fn of(&self, connection: Option<&str>) -> &CrmLinks {
        match connection {
            Some(c) => self.connections.get(c).unwrap_or(&CrmLinks::None),
            None => &self.single,
        }
    }

    fn links(&self, connection: Option<&str>, o: &SyncOutcome) -> Vec<RecordLink> {
        let how = self.of(connection);
        let url = |object: &'static str, id: &str| -> Option<String> {
            // Record ids are the CRM's own (digits for HubSpot); anything else is not linked.
            if id.is_empty() || !id.chars().all(EventId::is_id_char) {
                return None;
            }
            match how {
                CrmLinks::None => None,
                CrmLinks::HubSpotApp => match object {
                    "contact" | "deal" => {
                        Some(format!("https://app.hubspot.com/contacts/_/{object}/{id}"))
                    }
                    // A note is on its contact's timeline.
                    _ => None,
                },
                CrmLinks::HubSpotApi { base_url } => Some(format!(
                    "{}/crm/v3/objects/{object}s/{id}",
                    base_url.trim_end_matches('/')
                )),
            }
        };
        let mut out = vec![RecordLink {
            object: "contact",
            id: o.contact_id.clone(),
            url: url("contact", &o.contact_id),
        }];
        for (object, id) in [("note", &o.note_id), ("deal", &o.deal_id)] {
            if let Some(id) = id {
                out.push(RecordLink {
                    object,
                    id: id.clone(),
                    url: url(object, id),
                });
            }
        }
        out
    }
}

/// Where a delivery landed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CrmRecords {
    pub name: String,
    pub contact_id: String,
    pub contact_created: bool,
    pub note_id: Option<String>,
    pub deal_id: Option<String>,
    pub links: Vec<RecordLink>,
}

/// One step of a delivery's story, in order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Step {
    /// `received`, `rejected`, `not_queued`, `queued`, `replayed`, `attempts`, `attempt`,
    /// `error`, `processing`, `retrying`, `synced`, `dead`.
    pub step: &'static str,
    /// When, if the ledger knows.
    #[serde(serialize_with = "ts_opt")]
    pub at: Option<DateTime<Utc>>,
    pub text: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DeliveryStory {
    pub id: String,
    pub connection: Option<String>,
    pub status: DeliveryStatus,
    pub attempts: u32,
    pub replays: u32,
    #[serde(serialize_with = "ts_opt")]
    pub received_at: Option<DateTime<Utc>>,
    #[serde(serialize_with = "ts_opt")]
    pub updated_at: Option<DateTime<Utc>>,
    #[serde(serialize_with = "ts_opt")]
    pub next_attempt_at: Option<DateTime<Utc>>,
    /// The last failure: the CRM's answer (scrubbed) and HTTP status.
    pub last_error: Option<ErrorView>,
    pub crm: Option<CrmRecords>,
    pub replayable: bool,
    pub steps: Vec<Step>,
}

/// `GET /v1/console/events/{id}`: one event over its deliveries (or one delivery).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Story {
    pub event_id: String,
    /// The least-done delivery's status.
    pub status: DeliveryStatus,
    pub bot_id: Option<String>,
    pub contact: Option<String>,
    #[serde(serialize_with = "ts_opt")]
    pub received_at: Option<DateTime<Utc>>,
    /// What the ledger keeps of the attempts: [`HISTORY`] (each one's answer).
    pub history: &'static str,
    pub deliveries: Vec<DeliveryStory>,
}

/// One event's story (every delivery of it, or the one `<event_id>@<connection>`
/// names), or its refusal at ingest; `None` when the key may not see it or the
/// ledger has never seen it.
pub async fn story(
    ledger: &dyn Ledger,
    scope: &KeyScope,
    id: &str,
    links: &RecordLinks,
) -> Result<Option<Story>, PortError> {
    let mut records = by_id(ledger, id).await?;
    if records.is_empty() && split_delivery_id(id).1.is_none() {
        // Refused at ingest: its rejection(s), newest first.
        let (rejected, _) = list_scoped(
            ledger,
            scope,
            LedgerStatus::Rejected,
            None,
            None,
            None,
            SEARCH_CAP,
        )
        .await?;
        records = rejected
            .into_iter()
            .filter(|r| r.event_id == id)
            .take(10)
            .collect();
    }
    records.retain(|r| scope.may_read(r.bot_id.as_deref()));
    let Some(overall) = EventStatus::from_deliveries(&records) else {
        return Ok(None);
    };
    let deliveries: Vec<DeliveryStory> = records
        .iter()
        .map(|r| delivery_story(r, &EventStatus::from_record(r), links))
        .collect();
    Ok(Some(Story {
        event_id: overall.event_id.clone(),
        status: overall.status,
        bot_id: overall.bot_id.clone(),
        contact: records.iter().find_map(masked_contact),
        received_at: overall.received_at,
        history: HISTORY,
        deliveries,
    }))
}

fn delivery_story(r: &LedgerRecord, view: &EventStatus, links: &RecordLinks) -> DeliveryStory {
    let crm = r.outcome.as_ref().map(|o| CrmRecords {
        name: o.crm.clone(),
        contact_id: o.contact_id.clone(),
        contact_created: o.contact_created,
        note_id: o.note_id.clone(),
        deal_id: o.deal_id.clone(),
        links: if r.status == LedgerStatus::Synced {
            links.links(r.connection.as_deref(), o)
        } else {
            Vec::new()
        },
    });
    DeliveryStory {
        id: r.delivery_id(),
        connection: r.connection.clone(),
        status: view.status,
        attempts: r.attempts,
        replays: r.replays,
        received_at: r.received_at,
        updated_at: r.updated_at,
        next_attempt_at: r.next_attempt_at,
        steps: steps(r, view, crm.as_ref()),
        last_error: view.last_error.clone(),
        crm,
        replayable: replayable(r),
    }
}

fn steps(r: &LedgerRecord, view: &EventStatus, crm: Option<&CrmRecords>) -> Vec<Step> {
    let step =
        |step: &'static str, at: Option<DateTime<Utc>>, text: String| Step { step, at, text };
    let error_text = |e: &ErrorView| {
        let who = e.crm.as_deref().unwrap_or("the CRM");
        let status = e
            .http_status
            .map(|s| format!(" HTTP {s}"))
            .unwrap_or_default();
        format!("{who} answered{status}: {} ({})", e.message, e.code)
    };
    if r.status == LedgerStatus::Rejected {
        let why = view
            .last_error
            .as_ref()
            .map(|e| e.message.clone())
            .unwrap_or_default();
        return vec![step(
            "rejected",
            r.received_at.or(r.updated_at),
            format!("Refused at ingest: {why}. The sender was told why; it is never replayed."),
        )];
    }
    let target = r.connection.as_deref().unwrap_or("the CRM");
    let mut out = vec![step(
        "received",
        r.received_at,
        format!("Received by ingest, for {target}"),
    )];
    if r.status == LedgerStatus::Received {
        out.push(step(
            "not_queued",
            r.updated_at,
            "Recorded, but the queue never took it: the sender was answered 503 and must send it again".into(),
        ));
        return out;
    }
    out.push(step("queued", None, "Put on the queue".into()));
    if r.replays > 0 {
        out.push(step(
            "replayed",
            None,
            format!(
                "Replayed by an operator {} time{} (attempts count again from 0)",
                r.replays,
                if r.replays == 1 { "" } else { "s" }
            ),
        ));
    }
    if r.attempts > 0 && r.history.is_empty() {
        // Written before the ledger kept each attempt.
        out.push(step(
            "attempts",
            None,
            format!(
                "{} attempt{} (the ledger keeps the last answer only)",
                r.attempts,
                if r.attempts == 1 { "" } else { "s" }
            ),
        ));
    }
    // Each attempt that failed, with the CRM's answer (the last one ends the story below).
    let known = known_identities(r);
    let known: Vec<&str> = known.iter().map(String::as_str).collect();
    let failures: Vec<&crate::ports::AttemptRecord> =
        r.history.iter().filter(|a| a.outcome != "synced").collect();
    let shown = match r.status {
        // The story's last step tells the last failure.
        LedgerStatus::Dead | LedgerStatus::Retrying => failures.len().saturating_sub(1),
        _ => failures.len(),
    };
    for a in &failures[..shown] {
        let who = a.crm.as_deref().unwrap_or("the CRM");
        let status = a
            .http_status
            .map(|s| format!(" HTTP {s}"))
            .unwrap_or_default();
        let message = lb_domain::mask::scrub(a.message.as_deref().unwrap_or(""), &known);
        let code = a.code.as_deref().unwrap_or("failed");
        let then = if a.outcome == "dead" {
            "dead, then replayed"
        } else {
            "retried"
        };
        out.push(step(
            "attempt",
            Some(a.at),
            format!("Attempt failed: {who} answered{status}: {message} ({code}); {then}"),
        ));
    }
    let error = view.last_error.as_ref();
    match r.status {
        LedgerStatus::Synced => {
            if let Some(e) = error.filter(|_| r.history.is_empty()) {
                out.push(step(
                    "error",
                    None,
                    format!("Before that, {}", error_text(e)),
                ));
            }
            let text = match crm {
                Some(c) => format!(
                    "Synced to {}: contact {} ({}){}{}",
                    c.name,
                    c.contact_id,
                    if c.contact_created {
                        "created"
                    } else {
                        "updated"
                    },
                    c.note_id
                        .as_deref()
                        .map(|n| format!(", note {n}"))
                        .unwrap_or_default(),
                    c.deal_id
                        .as_deref()
                        .map(|d| format!(", deal {d}"))
                        .unwrap_or_default(),
                ),
                None => format!("Synced to {target}"),
            };
            out.push(step("synced", r.updated_at, text));
        }
        LedgerStatus::Dead => {
            let text = match error {
                Some(e) => format!("Dead: {}", error_text(e)),
                None => "Dead (no reason recorded)".into(),
            };
            out.push(step("dead", r.updated_at, text));
        }
        LedgerStatus::Retrying => {
            if let Some(e) = error {
                out.push(step("error", r.updated_at, error_text(e)));
            }
            out.push(step(
                "retrying",
                r.next_attempt_at,
                "Next attempt scheduled".into(),
            ));
        }
        LedgerStatus::InProgress => {
            if let Some(e) = error.filter(|_| r.history.is_empty()) {
                out.push(step("error", None, format!("Earlier, {}", error_text(e))));
            }
            out.push(step(
                "processing",
                r.updated_at,
                "A worker is sending it".into(),
            ));
        }
        _ => {}
    }
    out
}

/// The lead's identities while the ledger holds its payload (to scrub the CRM's text).
fn known_identities(r: &LedgerRecord) -> Vec<String> {
    r.payload
        .as_deref()
        .and_then(|p| QueuedLead::from_json(p).ok())
        .map(|l| crate::status::lead_identities(&l))
        .unwrap_or_default()
}

fn masked_contact(r: &LedgerRecord) -> Option<String> {
    r.contact.clone().or_else(|| {
        r.payload
            .as_deref()
            .and_then(|p| QueuedLead::from_json(p).ok())
            .map(|l| l.contact_key.masked())
    })
}

fn replayable(r: &LedgerRecord) -> bool {
    r.status == LedgerStatus::Dead && r.payload.is_some()
}

// ------------------------------------------------------------------ replay

/// `POST /v1/console/replay`: `{"ids": [...]}` (event or delivery ids: their
/// dead deliveries are replayed), or `{"filter": {...}, "confirm": true}` (the
/// dead deliveries the filter selects; without `confirm`, what would be
/// replayed, changing nothing).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReplayRequest {
    #[serde(default)]
    pub ids: Vec<String>,
    #[serde(default)]
    pub filter: Option<ReplayFilter>,
    #[serde(default)]
    pub confirm: bool,
}

/// Which dead deliveries: all of them, narrowed like the event list.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReplayFilter {
    #[serde(default)]
    pub bot: Option<String>,
    /// An id prefix, as the list's `q`.
    #[serde(default)]
    pub q: Option<String>,
    /// The failure code (`crm_rejected`, `retries_exhausted`, …).
    #[serde(default)]
    pub reason: Option<String>,
    /// Only deliveries that died at or after this time.
    #[serde(default)]
    pub since: Option<DateTime<Utc>>,
    /// `dead` (the only one replayed) or absent; accepted so that the list's filter can be sent as it is.
    #[serde(default)]
    pub status: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReplayAnswer {
    /// Nothing was changed: what would be replayed (a filter without `confirm`).
    pub dry_run: bool,
    pub replayed: usize,
    pub would_replay: usize,
    pub skipped: usize,
    pub failed: usize,
    /// The filter selected more than [`MAX_REPLAY`]: replay again for the rest.
    pub truncated: bool,
    pub entries: Vec<ReplayEntry>,
}

impl ReplayAnswer {
    fn of(dry_run: bool, truncated: bool, entries: Vec<ReplayEntry>) -> Self {
        let count = |name: &str| entries.iter().filter(|e| e.action.name() == name).count();
        Self {
            dry_run,
            replayed: count("replayed"),
            would_replay: count("would_replay"),
            skipped: count("skipped"),
            failed: count("failed"),
            truncated,
            entries,
        }
    }
}

#[derive(Debug)]
pub enum ConsoleError {
    /// The request is not one the console serves (400).
    BadRequest(String),
    /// The ledger could not be read (503).
    Unavailable(PortError),
}

impl From<PortError> for ConsoleError {
    fn from(e: PortError) -> Self {
        Self::Unavailable(e)
    }
}

impl std::fmt::Display for ConsoleError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::BadRequest(m) => f.write_str(m),
            Self::Unavailable(e) => write!(f, "{e}"),
        }
    }
}

/// Replays dead deliveries for the key's bots: those `ids` name, or those the
/// filter selects (a dry run without `confirm`). Each goes as `leadbridge
/// replay` sends it: the ledger moves it `dead` → `queued` (a delivery no longer
/// dead is skipped), then the queue takes its stored payload; a queue failure
/// puts it back to `dead` with its reason.
pub async fn replay(
    ledger: &dyn Ledger,
    queue: &dyn LeadQueue,
    scope: &KeyScope,
    req: &ReplayRequest,
    now: DateTime<Utc>,
) -> Result<ReplayAnswer, ConsoleError> {
    let answer = match (&req.filter, req.ids.is_empty()) {
        (Some(_), false) | (None, true) => {
            return Err(ConsoleError::BadRequest(
                "send either \"ids\" (a non-empty list) or a \"filter\"".into(),
            ))
        }
        (None, false) => replay_ids(ledger, queue, scope, &req.ids, now).await?,
        (Some(filter), true) => {
            replay_filter(ledger, queue, scope, filter, !req.confirm, now).await?
        }
    };
    info!(
        dry_run = answer.dry_run,
        replayed = answer.replayed,
        would_replay = answer.would_replay,
        skipped = answer.skipped,
        failed = answer.failed,
        "console replay"
    );
    Ok(answer)
}

async fn replay_ids(
    ledger: &dyn Ledger,
    queue: &dyn LeadQueue,
    scope: &KeyScope,
    ids: &[String],
    now: DateTime<Utc>,
) -> Result<ReplayAnswer, ConsoleError> {
    if ids.len() > MAX_REPLAY {
        return Err(ConsoleError::BadRequest(format!(
            "at most {MAX_REPLAY} ids at a time"
        )));
    }
    let mut entries = Vec::new();
    for id in ids {
        let id = id.trim();
        let mut records = by_id(ledger, id).await?;
        records.retain(|r| scope.may_read(r.bot_id.as_deref()));
        if records.is_empty() {
            // Unknown, or another bot's: the same answer.
            entries.push(ReplayEntry {
                event_id: id.chars().take(200).collect(),
                bot_id: None,
                who: None,
                action: ReplayAction::Skipped {
                    reason: "not found".into(),
                },
            });
            continue;
        }
        for r in &records {
            if r.status == LedgerStatus::Dead {
                entries.push(replay_record(ledger, queue, r, false, now).await);
            } else {
                entries.push(ReplayEntry {
                    event_id: r.delivery_id(),
                    bot_id: r.bot_id.clone(),
                    who: masked_contact(r),
                    action: ReplayAction::Skipped {
                        reason: format!("not dead: {}", DeliveryStatus::of(r.status).as_str()),
                    },
                });
            }
        }
    }
    Ok(ReplayAnswer::of(false, false, entries))
}

async fn replay_filter(
    ledger: &dyn Ledger,
    queue: &dyn LeadQueue,
    scope: &KeyScope,
    filter: &ReplayFilter,
    dry_run: bool,
    now: DateTime<Utc>,
) -> Result<ReplayAnswer, ConsoleError> {
    if let Some(s) = filter.status.as_deref().filter(|s| !s.is_empty()) {
        if parse_status(s) != Some(DeliveryStatus::Dead) {
            return Err(ConsoleError::BadRequest(format!(
                "only dead deliveries are replayed, not {}",
                s.chars().take(40).collect::<String>()
            )));
        }
    }
    let trimmed = |v: &Option<String>| {
        v.as_deref()
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
    };
    let (bot, q, reason) = (
        trimmed(&filter.bot),
        trimmed(&filter.q),
        trimmed(&filter.reason),
    );
    let cap = if q.is_some() {
        SEARCH_CAP
    } else {
        MAX_REPLAY + 1
    };
    let (mut records, cut) = list_scoped(
        ledger,
        scope,
        LedgerStatus::Dead,
        bot.as_deref(),
        filter.since,
        reason.as_deref(),
        cap,
    )
    .await?;
    if let Some(q) = &q {
        records.retain(|r| r.delivery_id().starts_with(q.as_str()));
    }
    let truncated = records.len() > MAX_REPLAY || (q.is_some() && cut);
    records.truncate(MAX_REPLAY);
    let mut entries = Vec::with_capacity(records.len());
    for r in &records {
        entries.push(replay_record(ledger, queue, r, dry_run, now).await);
    }
    Ok(ReplayAnswer::of(dry_run, truncated, entries))
}

/// One dead delivery back on the queue: exactly what `leadbridge replay` does.
async fn replay_record(
    ledger: &dyn Ledger,
    queue: &dyn LeadQueue,
    record: &LedgerRecord,
    dry_run: bool,
    now: DateTime<Utc>,
) -> ReplayEntry {
    crate::replay::replay_one(ledger, queue, record, dry_run, now).await
}

// ------------------------------------------------------------------ timestamps

/// RFC 3339 with milliseconds, as the status API writes them.
fn ts<S: Serializer>(t: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&t.to_rfc3339_opts(SecondsFormat::Millis, true))
}

fn ts_opt<S: Serializer>(t: &Option<DateTime<Utc>>, s: S) -> Result<S::Ok, S::Error> {
    match t {
        Some(t) => ts(t, s),
        None => s.serialize_none(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fakes::*;
    use crate::ports::{FailureReason, Rejection};

    fn lead_of(event_id: &str, email: &str, bot: &str) -> QueuedLead {
        let mut lead = sample_lead(event_id, email);
        lead.event.bot_id = lb_domain::BotId::parse(bot).unwrap();
        lead
    }

    async fn received(ledger: &InMemoryLedger, lead: &QueuedLead, at: DateTime<Utc>) {
        ledger
            .record_received(lead, &lead.to_json(), at)
            .await
            .unwrap();
        ledger.mark_queued(&lead.delivery_id(), at).await.unwrap();
    }

    async fn synced(ledger: &InMemoryLedger, lead: &QueuedLead, at: DateTime<Utc>) {
        received(ledger, lead, at).await;
        let outcome = SyncOutcome {
            crm: "hubspot".into(),
            contact_id: "101".into(),
            contact_created: true,
            note_id: Some("n-7".into()),
            deal_id: None,
        };
        ledger
            .complete(&lead.delivery_id(), &outcome, at)
            .await
            .unwrap();
    }

    async fn dead(ledger: &InMemoryLedger, lead: &QueuedLead, at: DateTime<Utc>) {
        received(ledger, lead, at).await;
        let reason = FailureReason {
            message: format!(
                "Property values were not valid: email {} of Priya Sharma",
                lead.event.visitor.email.as_ref().unwrap().as_str()
            ),
            ..permanent("x").reason()
        };
        ledger
            .mark_dead(&lead.delivery_id(), &reason, None, at)
            .await
            .unwrap();
    }

    async fn rejected(ledger: &InMemoryLedger, id: &str, bot: &str, at: DateTime<Utc>) {
        let rejection = Rejection {
            id: id.into(),
            bot_id: Some(bot.into()),
            errors: vec![lb_domain::FieldError {
                field: "consent.given_at".into(),
                code: "consent_required".into(),
                message: "consent is required".into(),
            }],
            identity: Some("p***@x.io".into()),
            http_status: 422,
        };
        ledger.record_rejected(&rejection, at, at).await.unwrap();
    }

    fn at(h: i64) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-05-04T12:30:00Z")
            .unwrap()
            .with_timezone(&Utc)
            - Duration::hours(h)
    }

    fn bots(b: &[&str]) -> KeyScope {
        KeyScope::Bots(b.iter().map(|s| s.to_string()).collect())
    }

    #[test]
    fn statuses_are_named_as_the_status_api_names_them() {
        assert_eq!(parse_status("dead"), Some(DeliveryStatus::Dead));
        assert_eq!(parse_status("processing"), Some(DeliveryStatus::Processing));
        assert_eq!(
            parse_status("in_progress"),
            Some(DeliveryStatus::Processing)
        );
        assert_eq!(parse_status("not_queued"), Some(DeliveryStatus::NotQueued));
        assert_eq!(parse_status("received"), Some(DeliveryStatus::NotQueued));
        assert_eq!(parse_status("gone"), None);
        assert_eq!(
            ledger_status(DeliveryStatus::Processing),
            LedgerStatus::InProgress
        );
    }

    #[tokio::test]
    async fn the_flow_counts_each_hour_bot_and_connection() {
        let ledger = InMemoryLedger::default();
        let now = at(0);
        synced(&ledger, &lead_of("evt_a", "a@x.io", "bot_a"), at(0)).await;
        dead(&ledger, &lead_of("evt_b", "b@x.io", "bot_a"), at(2)).await;
        received(&ledger, &lead_of("evt_c", "c@x.io", "bot_b"), at(2)).await;
        rejected(&ledger, "evt_r", "bot_b", at(1)).await;
        // Outside the window: not counted.
        synced(&ledger, &lead_of("evt_old", "o@x.io", "bot_a"), at(30)).await;

        let f = flow(&ledger, &KeyScope::All, 24, now).await.unwrap();
        assert_eq!(f.hours, 24);
        assert_eq!(f.per_hour.len(), 24);
        assert_eq!(f.per_hour[23].hour, hour_of(now));
        assert_eq!(
            f.totals,
            Counts {
                accepted: 3,
                synced: 1,
                rejected: 1,
                dead: 1
            }
        );
        assert_eq!(f.per_hour[23].counts.synced, 1);
        assert_eq!(f.per_hour[21].counts.accepted, 2);
        assert_eq!(f.per_hour[21].counts.dead, 1);
        assert_eq!(f.per_hour[22].counts.rejected, 1);
        let bot_a = f
            .per_bot
            .iter()
            .find(|b| b.bot_id.as_deref() == Some("bot_a"))
            .unwrap();
        assert_eq!(
            (bot_a.counts.accepted, bot_a.counts.dead),
            (2, 1),
            "{bot_a:?}"
        );
        assert_eq!(
            f.per_connection.len(),
            1,
            "rejections have no connection: {:?}",
            f.per_connection
        );
        assert_eq!(f.per_connection[0].counts.accepted, 3);
        assert!(!f.truncated);

        let json = serde_json::to_value(&f).unwrap();
        assert_eq!(json["per_hour"][23]["synced"], 1);
        assert_eq!(json["per_hour"][23]["hour"], "2026-05-04T12:00:00.000Z");
        assert_eq!(json["per_bot"][0]["bot_id"], "bot_a");
    }

    #[tokio::test]
    async fn a_key_limited_to_bots_counts_and_lists_only_theirs() {
        let ledger = InMemoryLedger::default();
        dead(&ledger, &lead_of("evt_a", "a@x.io", "bot_a"), at(0)).await;
        dead(&ledger, &lead_of("evt_b", "b@x.io", "bot_b"), at(0)).await;
        let scope = bots(&["bot_a"]);
        let f = flow(&ledger, &scope, 24, at(0)).await.unwrap();
        assert_eq!(f.totals.dead, 1);
        let list = events(&ledger, &scope, &EventQuery::default())
            .await
            .unwrap();
        let ids: Vec<&str> = list.events.iter().map(|e| e.id.as_str()).collect();
        assert_eq!(ids, ["evt_a"]);
        let other = EventQuery {
            bot: Some("bot_b".into()),
            ..EventQuery::default()
        };
        assert!(events(&ledger, &scope, &other)
            .await
            .unwrap()
            .events
            .is_empty());
        let exact = EventQuery {
            q: Some("evt_b".into()),
            ..EventQuery::default()
        };
        assert!(
            events(&ledger, &scope, &exact)
                .await
                .unwrap()
                .events
                .is_empty(),
            "not even by its exact id"
        );
        assert!(story(&ledger, &scope, "evt_b", &RecordLinks::default())
            .await
            .unwrap()
            .is_none());
        let queue = InMemoryQueue::default();
        let req = ReplayRequest {
            ids: vec!["evt_b".into()],
            ..ReplayRequest::default()
        };
        let answer = replay(&ledger, &queue, &scope, &req, at(0)).await.unwrap();
        assert_eq!(answer.replayed, 0);
        assert_eq!(
            answer.entries[0].action,
            ReplayAction::Skipped {
                reason: "not found".into()
            }
        );
        let all = ReplayRequest {
            filter: Some(ReplayFilter::default()),
            confirm: true,
            ..ReplayRequest::default()
        };
        let answer = replay(&ledger, &queue, &scope, &all, at(0)).await.unwrap();
        assert_eq!(answer.replayed, 1);
        assert_eq!(answer.entries[0].event_id, "evt_a");
        assert_eq!(
            ledger.record("evt_b").unwrap().status,
            LedgerStatus::Dead,
            "another bot's dead delivery is left alone"
        );
    }

    #[tokio::test]
    async fn the_list_filters_by_status_bot_and_id_prefix_newest_first() {
        let ledger = InMemoryLedger::default();
        synced(&ledger, &lead_of("evt_10", "a@x.io", "bot_a"), at(3)).await;
        dead(&ledger, &lead_of("evt_11", "b@x.io", "bot_a"), at(2)).await;
        dead(&ledger, &lead_of("evt_2", "c@x.io", "bot_b"), at(1)).await;
        rejected(&ledger, "evt_12", "bot_a", at(0)).await;
        let list = |q: EventQuery| {
            let ledger = &ledger;
            async move {
                events(ledger, &KeyScope::All, &q)
                    .await
                    .unwrap()
                    .events
                    .into_iter()
                    .map(|e| e.id)
                    .collect::<Vec<_>>()
            }
        };
        assert_eq!(
            list(EventQuery::default()).await,
            ["evt_12", "evt_2", "evt_11", "evt_10"]
        );
        let dead_only = EventQuery {
            status: Some(DeliveryStatus::Dead),
            ..EventQuery::default()
        };
        assert_eq!(list(dead_only.clone()).await, ["evt_2", "evt_11"]);
        assert_eq!(
            list(EventQuery {
                bot: Some("bot_a".into()),
                ..dead_only.clone()
            })
            .await,
            ["evt_11"]
        );
        assert_eq!(
            list(EventQuery {
                q: Some("evt_1".into()),
                ..EventQuery::default()
            })
            .await,
            ["evt_12", "evt_11", "evt_10"]
        );
        let limited = events(
            &ledger,
            &KeyScope::All,
            &EventQuery {
                limit: Some(1),
                ..EventQuery::default()
            },
        )
        .await
        .unwrap();
        assert_eq!(limited.events.len(), 1);
        assert!(limited.truncated);

        let rows = events(&ledger, &KeyScope::All, &dead_only).await.unwrap();
        let json = serde_json::to_string(&rows).unwrap();
        assert!(
            !json.contains("c@x.io") && !json.contains("Priya"),
            "never the person: {json}"
        );
        assert!(json.contains("c***@x.io"), "{json}");
        let row = &rows.events[0];
        assert!(row.replayable);
        assert_eq!(row.error_code.as_deref(), Some("crm_rejected"));
        assert_eq!(row.http_status, Some(400));
    }

    /// Every failed attempt is in the story with its time and the CRM's answer
    /// (scrubbed), the death of the first life, the replay, and the sync.
    #[tokio::test]
    async fn a_story_tells_each_attempt_with_the_crms_answer() {
        let ledger = InMemoryLedger::default();
        let lead = lead_of("evt_h", "priya.sharma@acmecorp.in", "bot_a");
        received(&ledger, &lead, at(0)).await;
        let id = lead.delivery_id();
        let busy = FailureReason {
            message: "HubSpot is down for priya.sharma@acmecorp.in".into(),
            ..FailureReason {
                class: crate::ports::ErrorClass::Transient,
                code: "crm_unavailable".into(),
                message: String::new(),
                crm: Some("hubspot".into()),
                http_status: Some(503),
            }
        };
        ledger.fail(&id, &busy, at(60), true, at(1)).await.unwrap();
        dead(&ledger, &lead, at(2)).await;
        ledger.requeue(&id, at(3)).await.unwrap();
        let outcome = crate::ports::SyncOutcome {
            crm: "hubspot".into(),
            contact_id: "101".into(),
            ..Default::default()
        };
        ledger.complete(&id, &outcome, at(4)).await.unwrap();
        let s = story(&ledger, &KeyScope::All, "evt_h", &RecordLinks::default())
            .await
            .unwrap()
            .unwrap();
        let steps: Vec<(&str, Option<DateTime<Utc>>)> = s.deliveries[0]
            .steps
            .iter()
            .map(|st| (st.step, st.at))
            .collect();
        assert_eq!(
            steps,
            [
                ("received", Some(at(0))),
                ("queued", None),
                ("replayed", None),
                ("attempt", Some(at(1))),
                ("attempt", Some(at(2))),
                ("synced", Some(at(4))),
            ]
        );
        let texts: Vec<&str> = s.deliveries[0]
            .steps
            .iter()
            .map(|st| st.text.as_str())
            .collect();
        assert!(
            texts[3].contains("hubspot answered HTTP 503") && texts[3].contains("retried"),
            "{}",
            texts[3]
        );
        assert!(
            texts[4].contains("crm_rejected") && texts[4].contains("dead, then replayed"),
            "{}",
            texts[4]
        );
        let json = serde_json::to_string(&s).unwrap();
        assert!(!json.contains("priya.sharma"), "scrubbed: {json}");
        assert_eq!(s.history, "every_attempt");
    }

    #[tokio::test]
    async fn a_dead_events_story_has_the_crms_answer_masked_and_can_be_replayed() {
        let ledger = InMemoryLedger::default();
        let lead = lead_of("evt_d", "priya.sharma@acmecorp.in", "bot_a");
        dead(&ledger, &lead, at(1)).await;
        let s = story(&ledger, &KeyScope::All, "evt_d", &RecordLinks::default())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(s.status, DeliveryStatus::Dead);
        assert_eq!(s.history, HISTORY);
        assert_eq!(s.contact.as_deref(), Some("p***@acmecorp.in"));
        let d = &s.deliveries[0];
        assert!(d.replayable);
        let e = d.last_error.as_ref().unwrap();
        assert_eq!(
            (e.code.as_str(), e.http_status),
            ("crm_rejected", Some(400))
        );
        let json = serde_json::to_string(&s).unwrap();
        assert!(
            !json.contains("priya.sharma") && !json.contains("Priya Sharma"),
            "{json}"
        );
        let kinds: Vec<&str> = d.steps.iter().map(|s| s.step).collect();
        assert_eq!(kinds, ["received", "queued", "dead"]);
        assert!(
            d.steps[2].text.contains("HTTP 400") && d.steps[2].text.contains("crm_rejected"),
            "{:?}",
            d.steps
        );
    }

    #[tokio::test]
    async fn a_synced_story_links_to_the_crm_records() {
        let ledger = InMemoryLedger::default();
        let lead = lead_of("evt_s", "a@x.io", "bot_a");
        synced(&ledger, &lead, at(0)).await;
        let app = story(
            &ledger,
            &KeyScope::All,
            "evt_s",
            &RecordLinks {
                single: CrmLinks::HubSpotApp,
                ..RecordLinks::default()
            },
        )
        .await
        .unwrap()
        .unwrap();
        let crm = app.deliveries[0].crm.as_ref().unwrap();
        assert_eq!(
            crm.links[0].url.as_deref(),
            Some("https://app.hubspot.com/contacts/_/contact/101")
        );
        assert_eq!(crm.links[1].object, "note");
        assert_eq!(crm.links[1].url, None);
        let kinds: Vec<&str> = app.deliveries[0].steps.iter().map(|s| s.step).collect();
        assert_eq!(kinds, ["received", "queued", "synced"]);

        let sim = RecordLinks {
            single: CrmLinks::HubSpotApi {
                base_url: "http://127.0.0.1:4010/".into(),
            },
            ..RecordLinks::default()
        };
        let local = story(&ledger, &KeyScope::All, "evt_s", &sim)
            .await
            .unwrap()
            .unwrap();
        let links = &local.deliveries[0].crm.as_ref().unwrap().links;
        assert_eq!(
            links[0].url.as_deref(),
            Some("http://127.0.0.1:4010/crm/v3/objects/contacts/101")
        );
        assert_eq!(
            links[1].url.as_deref(),
            Some("http://127.0.0.1:4010/crm/v3/objects/notes/n-7")
        );
    }

    #[tokio::test]
    async fn a_routed_events_story_tells_each_delivery_and_one_of_them_can_be_asked_for() {
        let ledger = InMemoryLedger::default();
        let lead = lead_of("evt_r", "a@x.io", "bot_a");
        let to = |c: &str| {
            lead.for_delivery(lb_domain::Delivery {
                connection: c.into(),
                lead_source: None,
                object: "contact".into(),
                split_name: None,
            })
        };
        synced(&ledger, &to("hubspot"), at(0)).await;
        dead(&ledger, &to("zapier"), at(0)).await;
        let links = RecordLinks {
            connections: [("hubspot".to_string(), CrmLinks::HubSpotApp)].into(),
            single: CrmLinks::None,
        };
        let s = story(&ledger, &KeyScope::All, "evt_r", &links)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(s.status, DeliveryStatus::Dead, "the least-done delivery");
        let ids: Vec<&str> = s.deliveries.iter().map(|d| d.id.as_str()).collect();
        assert_eq!(ids, ["evt_r@hubspot", "evt_r@zapier"]);
        assert!(s.deliveries[0].crm.as_ref().unwrap().links[0].url.is_some());
        let one = story(&ledger, &KeyScope::All, "evt_r@zapier", &links)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(one.deliveries.len(), 1);
        assert_eq!(one.status, DeliveryStatus::Dead);

        // Replaying the event replays its dead delivery only.
        let queue = InMemoryQueue::default();
        let req = ReplayRequest {
            ids: vec!["evt_r".into()],
            ..ReplayRequest::default()
        };
        let answer = replay(&ledger, &queue, &KeyScope::All, &req, at(0))
            .await
            .unwrap();
        assert_eq!(answer.replayed, 1, "{answer:?}");
        let names: Vec<(&str, &str)> = answer
            .entries
            .iter()
            .map(|e| (e.event_id.as_str(), e.action.name()))
            .collect();
        assert_eq!(
            names,
            [("evt_r@hubspot", "skipped"), ("evt_r@zapier", "replayed")]
        );
        assert_eq!(queue.enqueued().len(), 1);
    }

    #[tokio::test]
    async fn a_rejected_events_story_is_its_refusal() {
        let ledger = InMemoryLedger::default();
        rejected(&ledger, "evt_no", "bot_a", at(0)).await;
        let s = story(&ledger, &KeyScope::All, "evt_no", &RecordLinks::default())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(s.status, DeliveryStatus::Rejected);
        assert!(!s.deliveries[0].replayable);
        assert_eq!(s.deliveries[0].steps[0].step, "rejected");
        assert!(
            s.deliveries[0].steps[0].text.contains("consent_required"),
            "{:?}",
            s.deliveries[0].steps
        );
        assert!(story(
            &ledger,
            &KeyScope::All,
            "evt_never",
            &RecordLinks::default()
        )
        .await
        .unwrap()
        .is_none());
        assert!(story(
            &ledger,
            &KeyScope::All,
            "not an id!",
            &RecordLinks::default()
        )
        .await
        .unwrap()
        .is_none());
    }

    #[tokio::test]
    async fn replay_by_id_requeues_a_dead_delivery_once_and_leaves_the_rest() {
        let ledger = InMemoryLedger::default();
        let queue = InMemoryQueue::default();
        dead(&ledger, &lead_of("evt_d", "d@x.io", "bot_a"), at(0)).await;
        synced(&ledger, &lead_of("evt_s", "s@x.io", "bot_a"), at(0)).await;
        let req = ReplayRequest {
            ids: vec!["evt_d".into(), "evt_s".into(), "evt_nope".into()],
            ..ReplayRequest::default()
        };
        let answer = replay(&ledger, &queue, &KeyScope::All, &req, at(0))
            .await
            .unwrap();
        assert_eq!(
            (answer.replayed, answer.skipped, answer.dry_run),
            (1, 2, false)
        );
        assert_eq!(
            answer.entries[1].action,
            ReplayAction::Skipped {
                reason: "not dead: synced".into()
            }
        );
        let r = ledger.record("evt_d").unwrap();
        assert_eq!((r.status, r.replays), (LedgerStatus::Queued, 1));
        assert_eq!(queue.enqueued().len(), 1);
        assert_eq!(answer.entries[0].who.as_deref(), Some("d***@x.io"));

        let again = replay(&ledger, &queue, &KeyScope::All, &req, at(0))
            .await
            .unwrap();
        assert_eq!(again.replayed, 0, "no longer dead: {again:?}");
        assert_eq!(queue.enqueued().len(), 1);
    }

    #[tokio::test]
    async fn a_filtered_replay_without_confirm_only_says_what_it_would_do() {
        let ledger = InMemoryLedger::default();
        let queue = InMemoryQueue::default();
        dead(&ledger, &lead_of("evt_1", "a@x.io", "bot_a"), at(0)).await;
        dead(&ledger, &lead_of("evt_2", "b@x.io", "bot_b"), at(0)).await;
        let filter = ReplayFilter {
            bot: Some("bot_a".into()),
            status: Some("dead".into()),
            ..ReplayFilter::default()
        };
        let dry = ReplayRequest {
            filter: Some(filter.clone()),
            ..ReplayRequest::default()
        };
        let answer = replay(&ledger, &queue, &KeyScope::All, &dry, at(0))
            .await
            .unwrap();
        assert!(answer.dry_run);
        assert_eq!(answer.would_replay, 1);
        assert!(queue.enqueued().is_empty());
        assert_eq!(ledger.record("evt_1").unwrap().status, LedgerStatus::Dead);

        let go = ReplayRequest {
            confirm: true,
            ..dry
        };
        let answer = replay(&ledger, &queue, &KeyScope::All, &go, at(0))
            .await
            .unwrap();
        assert_eq!((answer.dry_run, answer.replayed), (false, 1));
        assert_eq!(ledger.record("evt_2").unwrap().status, LedgerStatus::Dead);
    }

    #[tokio::test]
    async fn a_replay_request_must_say_what_and_only_dead_is_replayed() {
        let ledger = InMemoryLedger::default();
        let queue = InMemoryQueue::default();
        let bad = |req: ReplayRequest| {
            let (ledger, queue) = (&ledger, &queue);
            async move {
                matches!(
                    replay(ledger, queue, &KeyScope::All, &req, at(0)).await,
                    Err(ConsoleError::BadRequest(_))
                )
            }
        };
        assert!(bad(ReplayRequest::default()).await);
        assert!(
            bad(ReplayRequest {
                ids: vec!["evt_1".into()],
                filter: Some(ReplayFilter::default()),
                confirm: true,
            })
            .await
        );
        assert!(
            bad(ReplayRequest {
                filter: Some(ReplayFilter {
                    status: Some("synced".into()),
                    ..ReplayFilter::default()
                }),
                confirm: true,
                ..ReplayRequest::default()
            })
            .await
        );
        assert!(
            bad(ReplayRequest {
                ids: vec!["evt_1".into(); MAX_REPLAY + 1],
                ..ReplayRequest::default()
            })
            .await
        );
        assert!(serde_json::from_str::<ReplayRequest>(r#"{"idz": ["x"]}"#).is_err());
    }

    #[tokio::test]
    async fn a_queue_failure_puts_the_delivery_back_to_dead() {
        let ledger = InMemoryLedger::default();
        let queue = InMemoryQueue::default();
        dead(&ledger, &lead_of("evt_q", "q@x.io", "bot_a"), at(0)).await;
        queue.set_failing(true);
        let req = ReplayRequest {
            ids: vec!["evt_q".into()],
            ..ReplayRequest::default()
        };
        let answer = replay(&ledger, &queue, &KeyScope::All, &req, at(0))
            .await
            .unwrap();
        assert_eq!(answer.failed, 1, "{answer:?}");
        assert_eq!(ledger.record("evt_q").unwrap().status, LedgerStatus::Dead);
    }

    #[tokio::test]
    async fn a_ledger_outage_is_an_error_not_an_empty_answer() {
        let ledger = InMemoryLedger::default();
        ledger.set_failing(true);
        assert!(flow(&ledger, &KeyScope::All, 24, at(0)).await.is_err());
        assert!(events(&ledger, &KeyScope::All, &EventQuery::default())
            .await
            .is_err());
    }
}
