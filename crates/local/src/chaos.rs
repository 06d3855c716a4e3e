//! The chaos suite: many signed events through the local stack while the CRM
//! fails, throttles, stalls, refuses writes and goes down, and the worker crashes
//! between the CRM write and the ledger write; dead events are replayed mid-run.
//! The events are those of people known by an email, a phone number, a WhatsApp
//! id or several of them, arriving in every order. A share of the events is
//! sent as a vendor's own webhook to a native source (`POST /v1/sources/<kind>`:
//! Intercom, Tidio, Standard Webhooks, Chatbase, a custom JSON form, WhatsApp and
//! Twilio messages) instead of `POST /v1/events`. Then it checks, from what the
//! CRM holds, what must hold: nothing lost, one CRM record per person, exactly
//! one note per synced event (a message's note being its conversation's, shared
//! with the other messages of that conversation), no older event overwriting a
//! newer one; and that older events did arrive after newer ones (the ordering
//! guard was exercised). With `fan_out` (the default), a config file routes
//! every event to all four CRMs (HubSpot, Pipedrive, Zoho CRM, Salesforce),
//! each simulator fails and stalls, and each CRM, read through its own API, is
//! checked on its own deliveries: nothing lost, one record per person, exactly
//! one note (Salesforce: Task) per synced delivery.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use lb_pipeline::retry::RetryPolicy;
use lb_pipeline::{LedgerStatus, ListFilter};
use rand::seq::{IndexedRandom, SliceRandom};
use rand::Rng;
use reqwest::Method;
use serde::Serialize;
use serde_json::{json, Value};
use tokio::sync::{Mutex, Semaphore};

use lb_vendors::source::{read_signed, Parsed, Sample, SourceContext, SourceKind, SourceOptions};

use crate::client::StackClient;
use crate::moto::Moto;
use crate::ops::OpsTarget;
use crate::{LocalStack, StackOptions};

#[derive(Debug, Clone)]
pub struct ChaosConfig {
    pub prefix: String,
    /// Webhook deliveries in all.
    pub events: usize,
    /// Share of deliveries that repeat an earlier event (half of them concurrently with it).
    pub duplicate_ratio: f64,
    /// Share of distinct events that belong to a person with 2–4 events (the
    /// rest are one person each). A person's events carry different identity
    /// sets, arrive in random order, some in the same second, and for every
    /// third such person the oldest event is sent last.
    pub same_person_ratio: f64,
    /// Share of distinct events (phone-only or WhatsApp-only ones) sent without any name.
    pub nameless_ratio: f64,
    /// Share of distinct events sent as a vendor's own webhook to a native source
    /// (see [`VENDORS`]) instead of the canonical `POST /v1/events`.
    pub vendor_ratio: f64,
    pub concurrency: usize,
    /// Deliveries started per second (`None`: as fast as possible). Pacing keeps the
    /// queue short: moto scans a FIFO queue's whole backlog on every receive.
    pub send_rate: Option<f64>,
    /// Share of CRM requests answered 503.
    pub error_rate: f64,
    /// The CRM's rate limit: this many requests per window (429 bursts above it).
    pub rate_limit: (u32, u64),
    /// Share of CRM requests that stall past the worker's timeout, and for how long.
    pub stall_rate: f64,
    pub stall: Duration,
    /// Writes the CRM refuses with a 400 (a permanent error: the event dies), on
    /// the contact upsert and on the note create, this many of each before and
    /// again after the outage. They are what the mid-run replay brings back.
    pub refused_writes: u32,
    /// Share of the events dead once the outage is over that are replayed (at least one).
    pub replay_share: f64,
    /// A total CRM outage, starting this long after the first delivery.
    pub outage_after: Duration,
    pub outage: Duration,
    /// A crash between the CRM write and the ledger write on every n-th sync.
    pub crash_every: u64,
    pub worker_timeout: Duration,
    pub worker_concurrency: usize,
    pub policy: RetryPolicy,
    /// How long to wait for every event to settle.
    pub settle_timeout: Duration,
    /// Fan every event out to all four CRMs (HubSpot, Pipedrive, Zoho CRM,
    /// Salesforce) through a config file's catch-all route, fault all four, and
    /// check each CRM on its own (see [`CrmReport`]); otherwise HubSpot alone,
    /// as a stack without a config file runs.
    pub fan_out: bool,
    /// The share of the canonical events sent through the bulk lane
    /// (`Leadbridge-Lane: bulk`), the rest real-time: both lanes meet the
    /// same people, faults and checks.
    pub bulk_ratio: f64,
    /// The bulk lane's batching window.
    pub bulk_window: Duration,
    /// Shows the run's progress (sending, then settling); hidden by default.
    pub progress: indicatif::ProgressBar,
}

impl ChaosConfig {
    /// `make chaos`: 5,000 deliveries and a 60-second outage.
    pub fn full() -> Self {
        Self {
            prefix: "leadbridge-chaos".into(),
            events: 5_000,
            duplicate_ratio: 0.2,
            same_person_ratio: 0.5,
            nameless_ratio: 0.03,
            vendor_ratio: 0.2,
            concurrency: 16,
            send_rate: Some(3.0),
            error_rate: 0.2,
            rate_limit: (60, 1_000),
            // Rare on purpose: one stall aborts a whole batch of 10, which then waits out
            // the visibility timeout.
            stall_rate: 0.002,
            stall: Duration::from_secs(25),
            refused_writes: 10,
            replay_share: 0.5,
            outage_after: Duration::from_secs(10),
            outage: Duration::from_secs(60),
            crash_every: 50,
            // Long enough for a whole batch against moto under load (production: 60 s).
            worker_timeout: Duration::from_secs(20),
            worker_concurrency: 4,
            // The production schedule (2 s base, 1 h cap, 16 attempts) at 1/60 scale: the
            // 60-second outage stands for an hour, and is ridden out without a dead letter.
            policy: RetryPolicy {
                base: Duration::from_millis(2_000 / 60),
                cap: Duration::from_secs(3_600 / 60),
                max_attempts: 16,
            },
            settle_timeout: Duration::from_secs(1_200),
            fan_out: true,
            bulk_ratio: 0.15,
            bulk_window: Duration::from_secs(crate::resources::settings::BULK_BATCHING_WINDOW_SECS),
            progress: indicatif::ProgressBar::hidden(),
        }
    }

    /// The reduced run in `make test`: the same faults, small and quick.
    pub fn reduced() -> Self {
        Self {
            prefix: format!("chaos{}", rand::random::<u32>()),
            // Each event goes to four CRMs: four deliveries.
            events: 120,
            // Fewer people with several events than the full run: their retries
            // (one person's record is written by one event at a time) set the wall time.
            same_person_ratio: 0.3,
            send_rate: None,
            outage_after: Duration::from_millis(500),
            outage: Duration::from_secs(3),
            crash_every: 25,
            stall_rate: 0.02,
            stall: Duration::from_secs(4),
            refused_writes: 2,
            worker_timeout: Duration::from_secs(3),
            // More pollers do not help: they contend for the same people's records.
            worker_concurrency: 3,
            rate_limit: (40, 1_000),
            policy: RetryPolicy {
                base: Duration::from_millis(100),
                cap: Duration::from_secs(2),
                max_attempts: 12,
            },
            // A deadline, not a wait: it settles in about a minute, but shares one moto
            // with the rest of the e2e binary, and a loaded CI host has taken 150 s.
            settle_timeout: Duration::from_secs(420),
            bulk_ratio: 0.2,
            bulk_window: Duration::from_secs(1),
            ..Self::full()
        }
    }
}

/// Counts one delivery sent (or given up on) when its task ends, however it ends.
struct Sent(indicatif::ProgressBar);

impl Drop for Sent {
    fn drop(&mut self) {
        self.0.inc(1);
    }
}

/// The CRMs of a fan-out run, as the config file names their connections.
const CRMS: [&str; 4] = ["hubspot", "pipedrive", "zoho", "salesforce"];

/// What one CRM holds at the end, checked as the HubSpot figures are (HubSpot's
/// row repeats them), from its deliveries (`<event_id>@<connection>`) alone.
#[derive(Debug, Clone, Serialize)]
pub struct CrmReport {
    pub crm: String,
    /// Its deliveries synced, dead, and neither (lost).
    pub synced: usize,
    pub dead: usize,
    pub lost: usize,
    /// Person records (contacts, persons, Leads) it holds.
    pub records: usize,
    /// Per person, the records holding any of their identities beyond the first, summed.
    pub duplicates: usize,
    /// People with a synced delivery and no record holding any of their identities.
    pub persons_without_record: usize,
    /// Records holding the identities of more than one person.
    pub merged_people: usize,
    /// Notes (Salesforce: Tasks) carrying an event's tag beyond the first one for that event.
    pub duplicate_notes: usize,
    /// Synced deliveries with no note of their own on the record the ledger names.
    pub missing_notes: usize,
    /// Notes carrying the tags of several events (a conversation's messages).
    pub notes_with_several_events: usize,
    pub requests: u64,
    pub faulted: u64,
    pub rate_limited: u64,
}

/// One figure of a CRM's row, as the table prints it.
type CrmCell = fn(&CrmReport) -> String;

impl CrmReport {
    /// The promises this CRM's row broke.
    fn broken(&self) -> Vec<String> {
        [
            (self.lost, "deliveries neither synced nor dead"),
            (self.duplicates, "duplicate records of a person"),
            (
                self.persons_without_record,
                "people with a synced delivery and no record",
            ),
            (self.merged_people, "records holding several people"),
            (self.duplicate_notes, "duplicate notes of an event"),
            (self.missing_notes, "synced deliveries without their note"),
        ]
        .into_iter()
        .filter(|(n, _)| *n > 0)
        .map(|(n, what)| format!("{}: {n} {what}", self.crm))
        .collect()
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct ChaosReport {
    pub sent: usize,
    pub distinct_events: usize,
    pub people: usize,
    /// People with 2–4 events.
    pub people_with_several_events: usize,
    /// Distinct events per identity set (`email`, `phone+whatsapp`, …).
    pub identity_mix: BTreeMap<String, usize>,
    /// Events sent without any name (phone-only or WhatsApp-only).
    pub nameless_events: usize,
    /// Deliveries (duplicates included) sent as a vendor's own webhook to a native source.
    pub vendor_deliveries: usize,
    /// Deliveries (duplicates included) sent through the bulk lane.
    pub bulk_deliveries: usize,
    /// Those deliveries by source kind.
    pub vendor_kinds: BTreeMap<String, usize>,
    /// Distinct events that are messages of a conversation (WhatsApp, Twilio).
    pub message_events: usize,
    /// Notes carrying the tags of several events (a conversation's messages).
    pub notes_with_several_events: usize,
    pub accepted: usize,
    /// Deliveries (one per event and CRM) synced, and dead.
    pub synced: usize,
    pub dead: usize,
    pub dead_by_reason: BTreeMap<String, usize>,
    /// Dead events put back on the queue mid-run (as `leadbridge replay` does).
    pub replayed: usize,
    /// Deliveries of accepted events neither synced nor dead.
    pub lost: usize,
    /// The CRMs each event went to, and what each holds at the end (fan-out:
    /// all four; otherwise HubSpot alone).
    pub crms: Vec<CrmReport>,
    /// Contacts in the CRM (HubSpot) at the end.
    pub crm_contacts: usize,
    /// Per person, the CRM contacts holding any of their identities beyond the first, summed.
    pub crm_duplicates: usize,
    /// People with a synced event and no CRM contact holding any of their identities.
    pub persons_without_record: usize,
    /// Contacts holding the identities of more than one person.
    pub merged_people: usize,
    /// Possible duplicates the pipeline alerted on (`possible duplicate` alerts).
    pub identity_conflicts: usize,
    /// Notes carrying an event's tag beyond the first one for that event.
    pub duplicate_notes: usize,
    /// Synced events with no note of their own on the contact the ledger names.
    pub missing_notes: usize,
    /// Notes created after a note of the same contact for a newer event.
    pub out_of_order_arrivals: usize,
    pub out_of_order_overwrites: usize,
    pub crashes_injected: u64,
    /// Worker invocations (batches).
    pub worker_invocations: u64,
    /// HubSpot's requests (each CRM's are in [`ChaosReport::crms`]).
    pub crm_requests: u64,
    pub crm_faulted: u64,
    pub crm_rate_limited: u64,
    /// Deliveries by their attempts.
    pub attempts: BTreeMap<u32, usize>,
    pub latency_ms_p50: f64,
    pub latency_ms_p99: f64,
    pub latency_ms_max: f64,
    pub seconds: f64,
    /// Events that did not settle: id, ledger status, attempts, last error code (first 20).
    pub unsettled: Vec<String>,
    /// Messages left on the queues (visible + in flight): leads, DLQ.
    pub left_on_queues: (u64, u64),
}

/// The identities an event carries (bits).
const EMAIL: u8 = 1;
const PHONE: u8 = 2;
const WHATSAPP: u8 = 4;

/// The identity sets of a person's events, by the person's anchor: the identity
/// every one of their events carries (so any two of them share an identity,
/// whatever order they are processed in). The first set is the anchor alone.
const BY_ANCHOR: [&[u8]; 3] = [
    &[
        PHONE,
        EMAIL | PHONE,
        PHONE | WHATSAPP,
        EMAIL | PHONE | WHATSAPP,
    ],
    &[
        WHATSAPP,
        WHATSAPP | PHONE,
        WHATSAPP | EMAIL,
        WHATSAPP | EMAIL | PHONE,
    ],
    &[EMAIL, EMAIL | PHONE, EMAIL | WHATSAPP],
];

fn identity_set_name(set: u8) -> String {
    [(EMAIL, "email"), (PHONE, "phone"), (WHATSAPP, "whatsapp")]
        .iter()
        .filter(|(bit, _)| set & bit != 0)
        .map(|(_, name)| *name)
        .collect::<Vec<_>>()
        .join("+")
}

/// One person of the run and their identities.
#[derive(Debug, Clone)]
struct Person {
    email: String,
    /// As sent: `+1 415 555 0123`.
    phone: String,
    /// E.164: `+14155550123`.
    e164: String,
    /// The same number's digits, as WhatsApp sends them: `14155550123`.
    wa_id: String,
}

impl Person {
    /// Distinct, valid US numbers (`+1 415 555 0000` … `+1 415 555 9999`, then other area codes).
    fn new(n: usize) -> Self {
        const AREAS: [u16; 8] = [415, 212, 312, 617, 206, 303, 512, 404];
        let area = AREAS[(n / 10_000) % AREAS.len()];
        let line = n % 10_000;
        Self {
            email: format!("chaos.p{n}@example.com"),
            phone: format!("+1 {area} 555 {line:04}"),
            e164: format!("+1{area}555{line:04}"),
            wa_id: format!("1{area}555{line:04}"),
        }
    }
}

struct Planned {
    /// The id ingest records the event under (ledger, note tag): the sender's
    /// own for a canonical event; for a vendor's delivery, the one its source's
    /// kind derives from the vendor's payload.
    event_id: String,
    /// The event's name in the plan, `evt_chaos_<n>[.<m>]`: a canonical event's
    /// id, the vendor's own id of a vendor's delivery.
    key: String,
    person: usize,
    identities: u8,
    nameless: bool,
    occurred_at: DateTime<Utc>,
    /// The canonical body (`POST /v1/events`); `Null` for a vendor's delivery.
    body: Value,
    /// Sent as this vendor's own webhook instead of the canonical body.
    vendor: Option<VendorDelivery>,
    /// A canonical event sent through the bulk lane.
    bulk: bool,
}

impl Planned {
    /// Whether the event writes the `company` marker (a canonical event; a
    /// vendor's payload has no place for it).
    fn marks_fields(&self) -> bool {
        self.vendor.is_none()
    }
}

/// One event as a vendor delivers it: the exact bytes, sent (and resent) as they are.
#[derive(Debug, Clone)]
struct VendorDelivery {
    /// The native source (`POST /v1/sources/<source>`), named after its kind in a
    /// stack started without a config file.
    source: &'static str,
    content_type: String,
    body: Vec<u8>,
    /// A `message.received` event: its note is its conversation's.
    message: bool,
}

/// A vendor the run sends as.
struct Vendor {
    source: &'static str,
    /// The identity sets its delivery can carry.
    sets: &'static [u8],
    /// Its delivery carries the lead's time (`Sample::at`). The others are
    /// stamped with the receive time, newer than every planned time: they only
    /// send a person's only event.
    dated: bool,
}

/// The vendors, each sent a person's identities as its payload carries them: an
/// email and/or a phone number, or (messaging) a WhatsApp sender, its number
/// being both.
const VENDORS: [Vendor; 7] = [
    Vendor {
        source: "intercom",
        sets: &[EMAIL, PHONE, EMAIL | PHONE],
        dated: true,
    },
    Vendor {
        source: "tidio",
        sets: &[EMAIL, PHONE, EMAIL | PHONE],
        dated: true,
    },
    Vendor {
        source: "standard_webhooks",
        sets: &[EMAIL, PHONE, EMAIL | PHONE],
        dated: true,
    },
    Vendor {
        source: "whatsapp",
        sets: &[PHONE | WHATSAPP],
        dated: true,
    },
    Vendor {
        source: "chatbase",
        sets: &[EMAIL, PHONE, EMAIL | PHONE],
        dated: false,
    },
    Vendor {
        source: "custom_json",
        sets: &[EMAIL, PHONE, EMAIL | PHONE],
        dated: false,
    },
    Vendor {
        source: "twilio",
        sets: &[PHONE | WHATSAPP],
        dated: false,
    },
];

/// The options of the local source of that kind (`crate::sources::defaults`).
fn source_options(source: &str) -> SourceOptions {
    SourceOptions {
        fields: if source == "custom_json" {
            crate::sources::local_custom_fields()
        } else {
            Vec::new()
        },
        ..SourceOptions::default()
    }
}

/// The vendor's delivery of a planned event: `e.key` as the vendor's own id.
fn vendor_delivery(source: &'static str, e: &Planned, p: &Person) -> VendorDelivery {
    let kind = lb_vendors::sources::kind(source).expect("a vendor kind");
    // Meta's message ids are not valid event ids: the source hashes them.
    let vendor_id = match source {
        "whatsapp" => format!("wamid.{}=", e.key),
        _ => e.key.clone(),
    };
    let name = if e.nameless {
        String::new()
    } else {
        format!("Chaos Person{}", e.person)
    };
    let text = format!("chaos message {}", e.key);
    let sample = Sample {
        vendor_id: &vendor_id,
        name: &name,
        email: if e.identities & EMAIL != 0 {
            &p.email
        } else {
            ""
        },
        phone: if e.identities & (PHONE | WHATSAPP) != 0 {
            &p.e164
        } else {
            ""
        },
        text: &text,
        at: e.occurred_at,
    };
    let (content_type, body) = kind.sample(&sample, &source_options(source));
    VendorDelivery {
        source,
        content_type,
        body,
        message: matches!(source, "whatsapp" | "twilio"),
    }
}

/// What the source's kind makes of a delivery, as ingest reads it (signed for
/// `url` with `secret`): the one canonical event it carries.
fn vendor_event(
    v: &VendorDelivery,
    kind: &dyn SourceKind,
    url: &str,
    secret: &str,
) -> anyhow::Result<Value> {
    let options = source_options(v.source);
    let bot = format!("bot_{}", v.source);
    let cx = SourceContext {
        source: v.source,
        bot_id: &bot,
        now: Utc::now(),
        options: &options,
    };
    match read_signed(kind, &cx, url, secret, &v.content_type, &v.body) {
        Ok(Parsed::Leads(mut leads)) if leads.len() == 1 => Ok(leads.remove(0)),
        other => anyhow::bail!("{}: the delivery is not one lead: {other:?}", v.source),
    }
}

/// The event id the source's kind gives the delivery (see [`vendor_event`]).
fn vendor_event_id(
    v: &VendorDelivery,
    kind: &dyn SourceKind,
    url: &str,
    secret: &str,
) -> anyhow::Result<String> {
    let event = vendor_event(v, kind, url, secret)?;
    event["event_id"]
        .as_str()
        .map(str::to_string)
        .ok_or_else(|| anyhow::anyhow!("{}: no event id in {event}", v.source))
}

/// The local URL and secret a source is planned with (the ids its kind derives
/// depend on neither; `run` checks them against the stack's).
fn planned_source(source: &str) -> (String, String) {
    (
        format!("http://127.0.0.1/v1/sources/{source}"),
        crate::sources::local_secret(source),
    )
}

struct Plan {
    events: Vec<Planned>,
    persons: Vec<Person>,
    /// Indexes into `events`, in sending order (duplicates repeat an index).
    deliveries: Vec<usize>,
}

fn plan(cfg: &ChaosConfig) -> Plan {
    let distinct = ((cfg.events as f64) * (1.0 - cfg.duplicate_ratio))
        .round()
        .max(1.0) as usize;
    let mut rng = rand::rng();
    // How many events each person has: 2–4 for the first ones, then one each.
    let several = ((distinct as f64) * cfg.same_person_ratio).round() as usize;
    let mut sizes = Vec::new();
    let mut in_groups = 0;
    while several.min(distinct) - in_groups >= 2 {
        // The first person has 3 or 4 events: a WhatsApp conversation of two
        // messages besides their other events (see below).
        let fewest = if sizes.is_empty() { 3 } else { 2 };
        let k = rng
            .random_range(fewest..=4)
            .min(several.min(distinct) - in_groups);
        sizes.push(k);
        in_groups += k;
    }
    sizes.extend(std::iter::repeat_n(1, distinct - in_groups));

    // Every occurred_at in the past (ingest refuses one more than 5 minutes ahead),
    // in whole seconds (as most vendors send a time).
    let now = Utc::now().timestamp();
    let base: DateTime<Utc> =
        DateTime::from_timestamp(now - 3_600 - distinct as i64, 0).expect("a time");
    let mut events = Vec::with_capacity(distinct);
    let mut persons = Vec::with_capacity(sizes.len());
    let mut of_person: Vec<Vec<usize>> = Vec::with_capacity(sizes.len());
    // People whose two oldest events are WhatsApp messages of one conversation.
    let mut conversing: Vec<usize> = Vec::new();
    let mut could_converse = 0;
    for (n, &k) in sizes.iter().enumerate() {
        persons.push(Person::new(n));
        let sets = BY_ANCHOR[n % BY_ANCHOR.len()];
        // A mix: the anchor alone, one multi-identity set, the rest at random; in random order.
        let mut chosen: Vec<u8> = if k == 1 {
            vec![*sets.choose(&mut rng).expect("sets")]
        } else {
            let mut c = vec![sets[0], *sets[1..].choose(&mut rng).expect("sets")];
            c.extend((2..k).map(|_| *sets.choose(&mut rng).expect("sets")));
            c
        };
        chosen.shuffle(&mut rng);
        // Every other person known by a phone or a WhatsApp id with 3 or 4 events
        // (the first one among them): their two oldest events are messages from
        // their WhatsApp number, then the anchor alone, then the rest.
        if k >= 3 && sets[0] & (PHONE | WHATSAPP) != 0 {
            if could_converse % 2 == 0 {
                conversing.push(n);
                let mut rest: Vec<u8> = (3..k)
                    .map(|_| *sets.choose(&mut rng).expect("sets"))
                    .collect();
                rest.shuffle(&mut rng);
                chosen = [PHONE | WHATSAPP, PHONE | WHATSAPP, sets[0]]
                    .into_iter()
                    .chain(rest)
                    .collect();
            }
            could_converse += 1;
        }
        // One event of the person is `evt_chaos_<n>`, the others `evt_chaos_<n>.<m>`:
        // its note tag is the start of theirs, which a tag search must not mistake.
        let mut suffixes: Vec<usize> = (0..k).collect();
        suffixes.shuffle(&mut rng);
        let mut mine = Vec::with_capacity(k);
        for (identities, m) in chosen.into_iter().zip(suffixes) {
            let i = events.len();
            mine.push(i);
            let key = match m {
                0 => format!("evt_chaos_{n:05}"),
                m => format!("evt_chaos_{n:05}.{m}"),
            };
            events.push(Planned {
                event_id: key.clone(),
                key,
                person: n,
                identities,
                nameless: false,
                // A person's events are one second apart; their index order is their age.
                occurred_at: base + chrono::Duration::seconds(i as i64),
                body: Value::Null,
                vendor: None,
                bulk: false,
            });
        }
        of_person.push(mine);
    }

    // A few phone-only or WhatsApp-only events carry no name at all (at least one).
    let mut single_non_email: Vec<usize> = (0..distinct)
        .filter(|&i| matches!(events[i].identities, PHONE | WHATSAPP))
        .collect();
    single_non_email.shuffle(&mut rng);
    let nameless = (((distinct as f64) * cfg.nameless_ratio).round() as usize)
        .max(1)
        .min(single_non_email.len());
    for &i in &single_non_email[..nameless] {
        events[i].nameless = true;
    }
    choose_vendors(
        cfg,
        &mut events,
        &persons,
        &of_person,
        &conversing,
        &mut rng,
    );
    // A share of the canonical events travel the bulk lane.
    let mut canonical: Vec<usize> = (0..events.len())
        .filter(|&i| events[i].vendor.is_none())
        .collect();
    canonical.shuffle(&mut rng);
    let bulk = ((events.len() as f64) * cfg.bulk_ratio).round() as usize;
    for &i in canonical.iter().take(bulk) {
        events[i].bulk = true;
    }
    for e in &mut events {
        match e.vendor.clone() {
            None => e.body = event_body(e, &persons[e.person]),
            Some(v) => {
                let kind = lb_vendors::sources::kind(v.source).expect("a vendor kind");
                let (url, secret) = planned_source(v.source);
                e.event_id = vendor_event_id(&v, kind, &url, &secret)
                    .expect("the kind reads its own sample");
            }
        }
    }

    // Sending order: each person's events in random order, some of them in pairs
    // sent in the same second; blocks shuffled across people. For every third
    // person with several events, the block holding their oldest event is sent
    // at the very end, after their newer ones.
    let mut blocks: Vec<Vec<usize>> = Vec::new();
    let mut late: Vec<Vec<usize>> = Vec::new();
    for (n, mine) in of_person.iter().enumerate() {
        if mine.len() == 1 {
            blocks.push(mine.clone());
            continue;
        }
        let mut order = mine.clone();
        order.shuffle(&mut rng);
        let mut own: Vec<Vec<usize>> = Vec::new();
        let mut j = 0;
        while j < order.len() {
            if j + 1 < order.len() && rng.random_bool(0.5) {
                own.push(vec![order[j], order[j + 1]]);
                j += 2;
            } else {
                own.push(vec![order[j]]);
                j += 1;
            }
        }
        if n % 3 == 0 {
            let oldest = mine[0];
            let at = own
                .iter()
                .position(|b| b.contains(&oldest))
                .expect("the oldest is in a block");
            let mut b = own.remove(at);
            b.sort_by_key(|&i| i == oldest);
            late.push(b);
        }
        blocks.extend(own);
    }
    blocks.shuffle(&mut rng);
    late.shuffle(&mut rng);
    let is_late: HashSet<usize> = late.iter().flatten().copied().collect();
    let order: Vec<usize> = blocks.into_iter().chain(late).flatten().collect();

    let duplicates = cfg.events.saturating_sub(distinct);
    let mut deliveries = Vec::with_capacity(cfg.events);
    let every = if duplicates == 0 {
        usize::MAX
    } else {
        distinct.div_ceil(duplicates)
    };
    let mut dups = 0;
    for (n, i) in order.iter().copied().enumerate() {
        deliveries.push(i);
        if dups < duplicates && n % every == 0 {
            // Half right behind the original (concurrent), half earlier in the run
            // (never for an event that must arrive late).
            if dups % 2 == 0 || is_late.contains(&i) {
                deliveries.push(i);
            } else {
                let at = deliveries.len() / 2;
                deliveries.insert(at, i);
            }
            dups += 1;
        }
    }
    Plan {
        events,
        persons,
        deliveries,
    }
}

/// Which events are sent as a vendor's webhook, and by which vendor: the
/// conversing people's two oldest events on WhatsApp, then, people at random,
/// a person's only event by any vendor whose payload carries its identities, or
/// a person's oldest events (never their newest) by a dated vendor, until
/// `vendor_ratio` of the events are. A vendor's payload has no place for the
/// `company` marker the overwrite check reads, so a vendor event is never newer
/// than a canonical event of the same person: the ordering guard never keeps a
/// canonical event's fields out for a vendor event's sake, and the marker
/// still names the newest canonical event applied. The least used fitting
/// vendor goes first (each vendor once before any other), so that every vendor
/// has its share.
fn choose_vendors(
    cfg: &ChaosConfig,
    events: &mut [Planned],
    persons: &[Person],
    of_person: &[Vec<usize>],
    conversing: &[usize],
    rng: &mut impl Rng,
) {
    let target = ((events.len() as f64) * cfg.vendor_ratio).round() as usize;
    let mut uses = [0usize; VENDORS.len()];
    let mut assigned = 0;
    let assign = |events: &mut [Planned], i: usize, v: usize, uses: &mut [usize]| {
        let delivery = vendor_delivery(VENDORS[v].source, &events[i], &persons[events[i].person]);
        events[i].vendor = Some(delivery);
        uses[v] += 1;
    };
    let whatsapp = VENDORS
        .iter()
        .position(|v| v.source == "whatsapp")
        .expect("whatsapp");
    for &n in conversing {
        for &i in &of_person[n][..2] {
            assign(events, i, whatsapp, &mut uses);
            assigned += 1;
        }
    }
    let mut people: Vec<usize> = (0..of_person.len())
        .filter(|n| !conversing.contains(n))
        .collect();
    people.shuffle(rng);
    // Whether vendor `v` can send event `i`: a nameless event is left canonical.
    let fits = |e: &Planned, v: usize, only: bool| {
        !e.nameless && VENDORS[v].sets.contains(&e.identities) && (only || VENDORS[v].dated)
    };
    // Each vendor once first (the oldest event of the first person it fits).
    for v in 0..VENDORS.len() {
        if uses[v] > 0 || assigned >= target {
            continue;
        }
        let first = people.iter().map(|&n| &of_person[n]).find(|mine| {
            !mine.is_empty()
                && events[mine[0]].vendor.is_none()
                && fits(&events[mine[0]], v, mine.len() == 1)
        });
        if let Some(mine) = first {
            assign(events, mine[0], v, &mut uses);
            assigned += 1;
        }
    }
    for n in people {
        let mine = &of_person[n];
        let candidates = if mine.len() == 1 {
            &mine[..]
        } else {
            &mine[..mine.len() - 1]
        };
        for &i in candidates {
            if assigned >= target {
                return;
            }
            if events[i].vendor.is_some() {
                continue;
            }
            let best = (0..VENDORS.len())
                .filter(|&v| fits(&events[i], v, mine.len() == 1))
                .min_by_key(|&v| uses[v]);
            let Some(v) = best else {
                break;
            };
            assign(events, i, v, &mut uses);
            assigned += 1;
        }
    }
}

/// The webhook body of one planned event (docs/contracts.md, "The webhook contract").
fn event_body(e: &Planned, p: &Person) -> Value {
    let mut visitor = serde_json::Map::new();
    if e.identities & EMAIL != 0 {
        visitor.insert("email".into(), json!(p.email));
    }
    if e.identities & PHONE != 0 {
        visitor.insert("phone".into(), json!(p.phone));
    }
    if e.identities & WHATSAPP != 0 {
        visitor.insert("wa_id".into(), json!(p.wa_id));
    }
    if !e.nameless {
        visitor.insert("name".into(), json!(format!("Chaos Person{}", e.person)));
    }
    // The per-event marker that shows which event last wrote the contact's fields.
    visitor.insert("company".into(), json!(format!("Co {}", e.event_id)));
    json!({
        "event_id": e.event_id,
        "event_type": "lead.created",
        "occurred_at": e.occurred_at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        "bot_id": BOT_ID,
        "visitor": visitor,
        "context": {"source_url": "https://example.com/chaos", "utm_source": "chaos"},
        "transcript": {"summary": format!("chaos event {}", e.event_id)}
    })
}

const BOT_ID: &str = "bot_chaos";
const NOTE_TAG: &str = "leadbridge-event:";

/// A character of an event id (docs/contracts.md: `A-Z a-z 0-9 - _ . :`).
fn is_id_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || "-_.:".contains(c)
}

/// The event ids tagged in a note body: each `leadbridge-event:` followed by the
/// whole id (up to the first character no id contains), so that the tag of
/// `evt_1` is never read as `evt_10`'s.
fn tagged_event_ids(body: &str) -> Vec<&str> {
    body.match_indices(NOTE_TAG)
        .map(|(at, _)| {
            let rest = &body[at + NOTE_TAG.len()..];
            let end = rest.find(|c: char| !is_id_char(c)).unwrap_or(rest.len());
            &rest[..end]
        })
        .filter(|id| !id.is_empty())
        .collect()
}

/// A property's values: a string, or (a CRM keeping several) an array of them.
fn strings(v: &Value) -> Vec<&str> {
    match v {
        Value::String(s) => vec![s.as_str()],
        Value::Array(a) => a.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    }
}

/// The digits of a phone value (`+1 (415) 555-0123` → `14155550123`).
fn digits(s: &str) -> String {
    s.chars().filter(char::is_ascii_digit).collect()
}

/// A HubSpot timestamp: RFC 3339, or milliseconds since the epoch.
fn timestamp(v: &Value) -> Option<DateTime<Utc>> {
    match v {
        Value::String(s) => DateTime::parse_from_rfc3339(s)
            .map(|t| t.with_timezone(&Utc))
            .ok()
            .or_else(|| {
                s.parse::<i64>()
                    .ok()
                    .and_then(DateTime::from_timestamp_millis)
            }),
        Value::Number(n) => n.as_i64().and_then(DateTime::from_timestamp_millis),
        _ => None,
    }
}

/// How a settled event ended, as the ledger says.
#[derive(Debug, Clone)]
struct Settled {
    synced: bool,
    /// The contact the ledger's outcome names.
    contact_id: Option<String>,
}

/// What the checks found in the CRM.
#[derive(Debug, Default)]
struct Findings {
    crm_contacts: usize,
    crm_duplicates: usize,
    persons_without_record: usize,
    merged_people: usize,
    duplicate_notes: usize,
    missing_notes: usize,
    out_of_order_arrivals: usize,
    out_of_order_overwrites: usize,
    /// Notes carrying the tags of several events (a conversation's messages).
    notes_with_several_events: usize,
    /// When the first note each event opened was created (a message that joined
    /// its conversation's note later has none: the note is older than it).
    note_created: HashMap<usize, DateTime<Utc>>,
}

/// The checks, on every contact (`email`, `phone`, `mobilephone`,
/// `hs_whatsapp_phone_number`, `company`) and every note (`hs_note_body`,
/// `hs_timestamp`, `createdAt`, its associated contacts) the CRM holds.
fn check(
    events: &[Planned],
    persons: &[Person],
    settled: &HashMap<usize, Settled>,
    contacts: &[Value],
    notes: &[Value],
) -> Findings {
    let mut f = Findings {
        crm_contacts: contacts.len(),
        ..Findings::default()
    };
    let index_of: HashMap<&str, usize> = events
        .iter()
        .enumerate()
        .map(|(i, e)| (e.event_id.as_str(), i))
        .collect();
    // Every identity of every person; phones by their E.164 digits and by their
    // national number (a CRM may keep either).
    let mut person_of: HashMap<String, usize> = HashMap::new();
    for (n, p) in persons.iter().enumerate() {
        person_of.insert(format!("e:{}", p.email), n);
        let e164 = digits(&p.e164);
        person_of.insert(format!("p:{}", &e164[1..]), n);
        person_of.insert(format!("p:{e164}"), n);
    }

    // One record per person: the contacts holding any of a person's identities.
    let mut contacts_of: HashMap<usize, BTreeSet<String>> = HashMap::new();
    let mut company_of: HashMap<String, Option<String>> = HashMap::new();
    for c in contacts {
        let id = c["id"].as_str().unwrap_or_default().to_string();
        let props = &c["properties"];
        let mut people = BTreeSet::new();
        for email in strings(&props["email"]) {
            people.extend(person_of.get(&format!("e:{}", email.trim().to_lowercase())));
        }
        for prop in ["phone", "mobilephone", "hs_whatsapp_phone_number"] {
            for v in strings(&props[prop]) {
                people.extend(person_of.get(&format!("p:{}", digits(v))));
            }
        }
        if people.len() > 1 {
            f.merged_people += 1;
        }
        for n in people {
            contacts_of.entry(n).or_default().insert(id.clone());
        }
        company_of.insert(id, props["company"].as_str().map(str::to_string));
    }
    f.crm_duplicates = contacts_of
        .values()
        .map(|c| c.len().saturating_sub(1))
        .sum();
    let with_synced: HashSet<usize> = settled
        .iter()
        .filter(|(_, s)| s.synced)
        .map(|(i, _)| events[*i].person)
        .collect();
    f.persons_without_record = with_synced
        .iter()
        .filter(|n| contacts_of.get(n).is_none_or(BTreeSet::is_empty))
        .count();

    // The notes: which events they are for, on which contacts, in creation order.
    struct Note {
        id: u64,
        created: Option<DateTime<Utc>>,
        timestamp: Option<DateTime<Utc>>,
        contacts: Vec<String>,
    }
    let mut notes_of_event: HashMap<usize, Vec<usize>> = HashMap::new();
    let mut parsed: Vec<Note> = Vec::with_capacity(notes.len());
    for n in notes {
        let body = n["properties"]["hs_note_body"].as_str().unwrap_or("");
        let tagged: Vec<usize> = tagged_event_ids(body)
            .into_iter()
            .filter_map(|id| index_of.get(id).copied())
            .collect();
        let created = timestamp(&n["createdAt"]);
        let timestamp = timestamp(&n["properties"]["hs_timestamp"])
            .or_else(|| tagged.first().map(|&i| events[i].occurred_at));
        // A conversation's note carries the tag of every message it holds, each
        // once: it is the note of each of them (the same tag twice is a message
        // written twice, counted as a duplicate note below).
        for &i in &tagged {
            notes_of_event.entry(i).or_default().push(parsed.len());
        }
        if tagged.iter().collect::<HashSet<_>>().len() > 1 {
            f.notes_with_several_events += 1;
        }
        // The note was created for the first event it holds (the tags are in the
        // order the messages joined).
        if let (Some(&i), Some(t)) = (tagged.first(), created) {
            f.note_created
                .entry(i)
                .and_modify(|c| *c = (*c).min(t))
                .or_insert(t);
        }
        let contacts = n["associations"]["contacts"]["results"]
            .as_array()
            .map(|r| {
                r.iter()
                    .filter_map(|a| a["id"].as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default();
        parsed.push(Note {
            id: n["id"].as_str().and_then(|s| s.parse().ok()).unwrap_or(0),
            created,
            timestamp,
            contacts,
        });
    }
    // Exactly one note per synced event, on the contact the ledger names.
    f.duplicate_notes = notes_of_event
        .values()
        .map(|v| v.len().saturating_sub(1))
        .sum();
    f.missing_notes = settled
        .iter()
        .filter(|(_, s)| s.synced)
        .filter(|(i, s)| {
            let on_contact = |n: &usize| {
                s.contact_id
                    .as_ref()
                    .is_some_and(|c| parsed[*n].contacts.contains(c))
            };
            !notes_of_event
                .get(i)
                .is_some_and(|ns| ns.iter().any(on_contact))
        })
        .count();
    // Out-of-order arrivals: per contact, a note created after a note for a newer event.
    let mut by_contact: HashMap<&str, Vec<&Note>> = HashMap::new();
    for n in &parsed {
        for c in &n.contacts {
            by_contact.entry(c.as_str()).or_default().push(n);
        }
    }
    for notes in by_contact.values_mut() {
        notes.sort_by_key(|n| (n.created, n.id));
        let mut newest: Option<DateTime<Utc>> = None;
        for n in notes.iter() {
            if let (Some(t), Some(max)) = (n.timestamp, newest) {
                if t < max {
                    f.out_of_order_arrivals += 1;
                }
            }
            newest = newest.max(n.timestamp);
        }
    }

    // Out-of-order overwrites: a contact's fields are those of an older event than
    // one synced to it (every contact of every person the ledger names). Only the
    // events that write the marker count: a vendor's event leaves it as it is
    // (and the plan makes none newer than a canonical event of its person).
    let mut synced_to: HashMap<&str, Vec<usize>> = HashMap::new();
    for (i, s) in settled {
        if let (true, Some(c)) = (s.synced, s.contact_id.as_deref()) {
            synced_to.entry(c).or_default().push(*i);
        }
    }
    for (contact, synced) in &synced_to {
        let holder = company_of
            .get(*contact)
            .and_then(Option::as_deref)
            .and_then(|co| co.strip_prefix("Co "))
            .and_then(|id| index_of.get(id));
        if let Some(&e) = holder {
            if synced
                .iter()
                .any(|&s| events[s].marks_fields() && events[s].occurred_at > events[e].occurred_at)
            {
                f.out_of_order_overwrites += 1;
            }
        }
    }
    f
}

/// Sends a vendor's delivery to its source, signed as the vendor signs:
/// `Some(true)` when ingest took it (a 2xx that is not a refusal), `Some(false)`
/// to send it again (any other status), `None` for a 2xx refusal (rejected or
/// ignored: a vendor does not send it again).
async fn send_as_vendor(client: &StackClient, v: &VendorDelivery) -> anyhow::Result<Option<bool>> {
    let (kind, url, secret) = client.source(v.source)?;
    let (status, _, reply) = client
        .send_signed(
            v.source,
            kind,
            &url,
            &secret,
            &v.content_type,
            v.body.clone(),
        )
        .await?;
    if !(200..300).contains(&status) {
        return Ok(Some(false));
    }
    // The JSON reply names the outcome; a vendor answered otherwise (Twilio's
    // empty TwiML) gets the same 200 for every outcome.
    match serde_json::from_str::<Value>(&reply) {
        Ok(r) if r.get("status").is_some() => Ok((r["status"] == "queued").then_some(true)),
        _ => Ok(Some(true)),
    }
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    sorted[(((p / 100.0) * (sorted.len() - 1) as f64).round() as usize).min(sorted.len() - 1)]
}

/// The share of a CRM's requests that stall: with several CRMs, a batch (which
/// one stall aborts) calls each of them, so each stalls that much less often.
fn stall_rate(cfg: &ChaosConfig, crms: usize) -> f64 {
    cfg.stall_rate / crms.max(1) as f64
}

/// The usual faults: on HubSpot, and on each other CRM of a fan-out run (its
/// simulator's admin URL in `others`): 503s and stalls on every one of them.
async fn set_faults(
    client: &StackClient,
    cfg: &ChaosConfig,
    others: &[String],
) -> anyhow::Result<()> {
    let stall = stall_rate(cfg, others.len() + 1);
    for base in others {
        admin_at(client, base, Method::DELETE, "faults", None).await?;
        admin_at(
            client,
            base,
            Method::POST,
            "faults",
            Some(json!({"kind": "error", "status": 503, "probability": cfg.error_rate})),
        )
        .await?;
        admin_at(
            client,
            base,
            Method::POST,
            "faults",
            Some(json!({"kind": "latency", "ms": cfg.stall.as_millis() as u64, "probability": stall})),
        )
        .await?;
    }
    client.admin(Method::DELETE, "faults", None).await?;
    client
        .admin(
            Method::POST,
            "faults",
            Some(json!({"kind": "error", "status": 503, "probability": cfg.error_rate})),
        )
        .await?;
    client
        .admin(Method::POST, "faults", Some(json!({"kind": "latency", "ms": cfg.stall.as_millis() as u64, "probability": stall})))
        .await?;
    if cfg.refused_writes > 0 {
        // A batch HubSpot refuses as a whole is sent again one input at a time,
        // so a lead dies only when its own single write is refused too.
        for route in [
            "POST /crm/v3/objects/contacts/batch/upsert",
            "POST /crm/v3/objects/notes/batch/create",
            "POST /crm/v3/objects/notes",
        ] {
            client
                .admin(
                    Method::POST,
                    "faults",
                    Some(json!({"kind": "error", "status": 400, "probability": 0.1,
                                "count": cfg.refused_writes, "route": route})),
                )
                .await?;
        }
    }
    Ok(())
}

/// A simulator's admin API (`{base}/__admin/{path}`): an error unless it answers 2xx.
async fn admin_at(
    client: &StackClient,
    base: &str,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> anyhow::Result<Value> {
    let mut req = client
        .http
        .request(method, format!("{base}/__admin/{path}"));
    if let Some(b) = body {
        req = req.json(&b);
    }
    let r = req.send().await?;
    anyhow::ensure!(
        r.status().is_success(),
        "{base}/__admin/{path}: {}",
        r.status()
    );
    Ok(r.json().await.unwrap_or(Value::Null))
}

/// The config file of a fan-out run: the four CRMs as connections (HubSpot's
/// named `hubspot`), every bot routed to all four, and the local native
/// sources (one of each kind, as a stack without a config file has them);
/// with the secrets the sources name (`(id, value)`).
fn fan_out_config(prefix: &str, timeout: Duration) -> (String, Vec<(String, String)>) {
    let timeout_ms = timeout.as_millis().clamp(100, 20_000);
    let mut toml = format!(
        r#"version = 1

[connections.hubspot]
kind = "hubspot"
secret = "{prefix}/hubspot"
base_url = "{{hubspot_url}}"
timeout_ms = {timeout_ms}

[connections.pipedrive]
kind = "pipedrive"
secret = "{{pipedrive_secret}}"
base_url = "{{pipedrive_url}}"
timeout_ms = {timeout_ms}

[connections.zoho]
kind = "zoho"
secret = "{{zoho_secret}}"
accounts_url = "{{zoho_accounts_url}}"
timeout_ms = {timeout_ms}

[connections.salesforce]
kind = "salesforce"
secret = "{{salesforce_secret}}"
login_url = "{{salesforce_login_url}}"
timeout_ms = {timeout_ms}

[[routes]]
bot_id = "*"
connections = {CRMS:?}
"#
    );
    let mut secrets = Vec::new();
    for (name, src) in crate::sources::defaults(prefix) {
        toml.push_str(&format!(
            "\n[sources.{name}]\nkind = \"{}\"\nbot_id = \"{}\"\nsecret = \"{}\"\n",
            src.kind, src.bot_id, src.secret
        ));
        if !src.options.fields.is_empty() {
            toml.push_str(&format!("\n[sources.{name}.fields]\n"));
            for (k, v) in &src.options.fields {
                toml.push_str(&format!("{k:?} = {v:?}\n"));
            }
        }
        secrets.push((
            src.secret.clone(),
            crate::sources::default_secret_value(src.kind),
        ));
    }
    (toml, secrets)
}

/// A GET that rides out the CRM's rate limit (and any 5xx): the JSON answer,
/// `Null` for a 204.
async fn get_json(req: impl Fn() -> reqwest::RequestBuilder) -> anyhow::Result<Value> {
    let mut last = String::new();
    for _ in 0..60 {
        let r = req().send().await?;
        let status = r.status();
        if status.as_u16() == 204 {
            return Ok(Value::Null);
        }
        if status.is_success() {
            return Ok(r.json().await?);
        }
        last = format!("{status}: {}", r.text().await.unwrap_or_default());
        if status.as_u16() != 429 && !status.is_server_error() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    anyhow::bail!("a CRM read failed: {last}")
}

/// An OAuth token of our own (`grant_type=refresh_token`): the access token and
/// the token answer.
async fn oauth_token(
    client: &StackClient,
    url: &str,
    client_id: &str,
    client_secret: &str,
    refresh_token: &str,
) -> anyhow::Result<Value> {
    let body = format!(
        "grant_type=refresh_token&client_id={client_id}&client_secret={client_secret}&refresh_token={refresh_token}"
    );
    let answer = get_json(|| {
        client
            .http
            .post(url)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body.clone())
    })
    .await?;
    anyhow::ensure!(answer["access_token"].is_string(), "{url}: {answer}");
    Ok(answer)
}

/// A note as [`check`] reads it: its body, when created, and its record.
fn as_note(id: String, body: &str, created: Option<String>, record: Option<String>) -> Value {
    json!({
        "id": id,
        "createdAt": created,
        "properties": {"hs_note_body": body},
        "associations": {"contacts": {"results": record.into_iter().map(|r| json!({"id": r})).collect::<Vec<_>>()}}
    })
}

/// A record as [`check`] reads it: its emails and phone numbers.
fn as_contact(id: String, emails: Vec<Value>, phones: Vec<Value>) -> Value {
    json!({"id": id, "properties": {"email": emails, "phone": phones}})
}

/// A Salesforce id in its 15-character form (an API may give either form).
fn sf_id(id: &str) -> String {
    id.chars().take(15).collect()
}

/// Pipedrive's persons and notes, through its API, in [`check`]'s shape.
async fn pipedrive_holdings(client: &StackClient) -> anyhow::Result<(Vec<Value>, Vec<Value>)> {
    let p = client
        .info
        .crm
        .pipedrive
        .clone()
        .ok_or_else(|| anyhow::anyhow!("no Pipedrive simulator"))?;
    let get = |path: String| {
        let url = format!("{}{path}", p.base_url);
        let token = p.token.clone();
        async move { get_json(|| client.http.get(&url).header("x-api-token", &token)).await }
    };
    let mut contacts = Vec::new();
    let mut cursor = String::new();
    loop {
        let page = get(format!("/api/v2/persons?limit=500&cursor={cursor}")).await?;
        for person in page["data"].as_array().into_iter().flatten() {
            let values = |k: &str| -> Vec<Value> {
                person[k]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|e| e["value"].clone())
                    .collect()
            };
            contacts.push(as_contact(
                person["id"].to_string(),
                values("emails"),
                values("phones"),
            ));
        }
        match page["additional_data"]["next_cursor"].as_str() {
            Some(c) if !c.is_empty() => cursor = c.to_string(),
            _ => break,
        }
    }
    let mut notes = Vec::new();
    let mut start = 0;
    loop {
        let page = get(format!("/v1/notes?limit=500&start={start}")).await?;
        for n in page["data"].as_array().into_iter().flatten() {
            notes.push(as_note(
                n["id"].to_string(),
                n["content"].as_str().unwrap_or_default(),
                None,
                n["person_id"].as_u64().map(|id| id.to_string()),
            ));
        }
        match page["additional_data"]["pagination"]["next_start"].as_u64() {
            Some(next) if next > start => start = next,
            _ => break,
        }
    }
    Ok((contacts, notes))
}

/// Zoho's Contacts and their notes, through its API with a token of our own,
/// in [`check`]'s shape. A list reaches 2,000 records: read from both ends.
async fn zoho_holdings(client: &StackClient) -> anyhow::Result<(Vec<Value>, Vec<Value>)> {
    let z = client
        .info
        .crm
        .zoho
        .clone()
        .ok_or_else(|| anyhow::anyhow!("no Zoho simulator"))?;
    let token = oauth_token(
        client,
        &format!("{}/oauth/v2/token", z.accounts_url),
        &z.client_id,
        &z.client_secret,
        &z.refresh_token,
    )
    .await?;
    let auth = format!(
        "Zoho-oauthtoken {}",
        token["access_token"].as_str().unwrap_or_default()
    );
    let get = |path: String| {
        let url = format!("{}{path}", z.base_url);
        let auth = auth.clone();
        async move { get_json(|| client.http.get(&url).header("authorization", &auth)).await }
    };
    let mut by_id: BTreeMap<String, Value> = BTreeMap::new();
    'ends: for order in ["asc", "desc"] {
        for page in 1..=10 {
            let answer = get(format!(
                "/crm/v8/Contacts?fields=Email,Phone,Mobile&per_page=200&page={page}&sort_by=id&sort_order={order}"
            ))
            .await?;
            for c in answer["data"].as_array().into_iter().flatten() {
                let id = c["id"].as_str().unwrap_or_default().to_string();
                by_id.insert(
                    id.clone(),
                    as_contact(
                        id,
                        vec![c["Email"].clone()],
                        vec![c["Phone"].clone(), c["Mobile"].clone()],
                    ),
                );
            }
            if answer["info"]["more_records"] != json!(true) {
                break 'ends;
            }
        }
    }
    let mut notes = Vec::new();
    for id in by_id.keys() {
        let mut page = 1;
        loop {
            let answer = get(format!(
                "/crm/v8/Contacts/{id}/Notes?fields=Note_Content,Created_Time&per_page=200&page={page}"
            ))
            .await?;
            for n in answer["data"].as_array().into_iter().flatten() {
                notes.push(as_note(
                    n["id"].as_str().unwrap_or_default().to_string(),
                    n["Note_Content"].as_str().unwrap_or_default(),
                    n["Created_Time"].as_str().map(str::to_string),
                    Some(id.clone()),
                ));
            }
            if answer["info"]["more_records"] != json!(true) {
                break;
            }
            page += 1;
        }
    }
    Ok((by_id.into_values().collect(), notes))
}

/// Salesforce's Leads (and Contacts) and Tasks, through SOQL with a token of
/// our own, in [`check`]'s shape (ids in their 15-character form).
async fn salesforce_holdings(client: &StackClient) -> anyhow::Result<(Vec<Value>, Vec<Value>)> {
    let f = client
        .info
        .crm
        .salesforce
        .clone()
        .ok_or_else(|| anyhow::anyhow!("no Salesforce simulator"))?;
    let token = oauth_token(
        client,
        &format!("{}/services/oauth2/token", f.login_url),
        &f.client_id,
        &f.client_secret,
        &f.refresh_token,
    )
    .await?;
    let bearer = token["access_token"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let instance = token["instance_url"]
        .as_str()
        .unwrap_or(&f.instance_url)
        .to_string();
    let query = |soql: &str| {
        let url = format!("{instance}/services/data/v60.0/query");
        let (bearer, soql) = (bearer.clone(), soql.to_string());
        async move {
            get_json(|| {
                client
                    .http
                    .get(&url)
                    .query(&[("q", &soql)])
                    .bearer_auth(&bearer)
            })
            .await
        }
    };
    let mut contacts = Vec::new();
    for object in ["Lead", "Contact"] {
        let answer = query(&format!(
            "SELECT Id, Email, Phone, MobilePhone FROM {object}"
        ))
        .await?;
        for r in answer["records"].as_array().into_iter().flatten() {
            contacts.push(as_contact(
                sf_id(r["Id"].as_str().unwrap_or_default()),
                vec![r["Email"].clone()],
                vec![r["Phone"].clone(), r["MobilePhone"].clone()],
            ));
        }
    }
    let answer = query("SELECT Id, WhoId, Description, CreatedDate FROM Task").await?;
    let notes = answer["records"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|t| {
            as_note(
                sf_id(t["Id"].as_str().unwrap_or_default()),
                t["Description"].as_str().unwrap_or_default(),
                None,
                t["WhoId"].as_str().map(sf_id),
            )
        })
        .collect();
    Ok((contacts, notes))
}

/// What a CRM holds, in [`check`]'s shape (HubSpot's own).
async fn holdings(client: &StackClient, crm: &str) -> anyhow::Result<(Vec<Value>, Vec<Value>)> {
    match crm {
        "pipedrive" => pipedrive_holdings(client).await,
        "zoho" => zoho_holdings(client).await,
        "salesforce" => salesforce_holdings(client).await,
        other => anyhow::bail!("no reader for the CRM {other:?}"),
    }
}

/// The admin URL of a CRM's simulator.
fn sim_url(info: &crate::StackInfo, crm: &str) -> Option<String> {
    match crm {
        "hubspot" => Some(info.crm.hubspot.base_url.clone()),
        "pipedrive" => info.crm.pipedrive.as_ref().map(|p| p.base_url.clone()),
        "zoho" => info.crm.zoho.as_ref().map(|z| z.base_url.clone()),
        // The login server and the instance are one simulator.
        "salesforce" => info.crm.salesforce.as_ref().map(|s| s.login_url.clone()),
        _ => None,
    }
}

/// Runs the suite on its own stack (on `moto` if given) and returns the report.
pub async fn run(cfg: ChaosConfig, moto: Option<Arc<Moto>>) -> anyhow::Result<ChaosReport> {
    let (hooks, crash) = lb_pipeline::hooks::Hooks::crash_every(cfg.crash_every);
    let mut opts = StackOptions {
        worker_hooks: hooks,
        prefix: cfg.prefix.clone(),
        moto,
        worker_concurrency: cfg.worker_concurrency,
        bulk_window: cfg.bulk_window,
        worker_timeout: cfg.worker_timeout,
        // The CRM client waits longer than the function lives: a stalled call is cut off
        // by the function's timeout, as in Lambda.
        hubspot_timeout: cfg.worker_timeout + Duration::from_secs(5),
        safety_margin: Some(Duration::from_millis(500)),
        // As in AWS (360 s against a 60 s function), a message comes back only after
        // anything its last invocation sent can have landed.
        leads_visibility_secs: Some((cfg.worker_timeout + cfg.stall).as_secs() + 2),
        policy: cfg.policy,
        ..StackOptions::default()
    };
    opts.sim.rate_limit_max = cfg.rate_limit.0;
    opts.sim.rate_limit_window_ms = cfg.rate_limit.1;
    if cfg.fan_out {
        let (toml, secrets) = fan_out_config(&cfg.prefix, opts.hubspot_timeout);
        opts.config_toml = Some(toml);
        opts.secrets = secrets;
    }
    let stack = LocalStack::start(opts).await?;
    let client = StackClient::new(stack.info.clone());
    let started = Instant::now();
    // The CRMs every event goes to, and its delivery's connection in each (a
    // stack without a config file delivers to HubSpot unnamed).
    let crms: Vec<&str> = if cfg.fan_out {
        CRMS.to_vec()
    } else {
        vec!["hubspot"]
    };
    let conns: Vec<Option<&str>> = if cfg.fan_out {
        crms.iter().map(|c| Some(*c)).collect()
    } else {
        vec![None]
    };
    let others: Vec<String> = crms[1..]
        .iter()
        .map(|c| sim_url(&stack.info, c).ok_or_else(|| anyhow::anyhow!("no {c} simulator")))
        .collect::<anyhow::Result<_>>()?;
    set_faults(&client, &cfg, &others).await?;

    let Plan {
        events,
        persons,
        deliveries,
    } = plan(&cfg);
    // The stack's sources: the ids their kinds derive are those planned.
    for e in &events {
        if let Some(v) = &e.vendor {
            let (kind, url, secret) = client.source(v.source)?;
            let id = vendor_event_id(v, kind, &url, &secret)?;
            anyhow::ensure!(
                id == e.event_id,
                "{}: the stack's source gives {id}, the plan {}",
                v.source,
                e.event_id
            );
        }
    }
    let events = Arc::new(events);
    let accepted_at: Arc<Mutex<HashMap<usize, DateTime<Utc>>>> = Arc::default();

    // The outage: everything 503 for a while, then the usual faults again.
    let outage = {
        let (client, cfg, others) = (client.clone(), cfg.clone(), others.clone());
        tokio::spawn(async move {
            tokio::time::sleep(cfg.outage_after).await;
            let _ = client.admin(Method::DELETE, "faults", None).await;
            let _ = client
                .admin(
                    Method::POST,
                    "faults",
                    Some(json!({"kind": "error", "status": 503, "probability": 1.0})),
                )
                .await;
            tokio::time::sleep(cfg.outage).await;
            set_faults(&client, &cfg, &others).await
        })
    };

    let sem = Arc::new(Semaphore::new(cfg.concurrency));
    let mut tasks = tokio::task::JoinSet::new();
    let mut pace = cfg
        .send_rate
        .map(|r| tokio::time::interval(Duration::from_secs_f64(1.0 / r.max(0.1))));
    let bar = cfg.progress.clone();
    bar.set_length(deliveries.len() as u64);
    bar.set_position(0);
    bar.set_message("sending");
    for i in deliveries.iter().copied() {
        if let Some(p) = pace.as_mut() {
            p.tick().await;
        }
        let permit = sem.clone().acquire_owned().await?;
        let (client, events, accepted_at) = (client.clone(), events.clone(), accepted_at.clone());
        let bar = bar.clone();
        tasks.spawn(async move {
            let _permit = permit;
            let _sent = Sent(bar);
            // A sender retries until it gets a 2xx, as chatbot platforms and
            // vendors do; a vendor's redelivery is the same bytes, signed anew.
            for _ in 0..20 {
                let accepted = match &events[i].vendor {
                    None if events[i].bulk => matches!(
                        client.post_in_lane(&events[i].body, "bulk").await,
                        Ok((202, _))
                    ),
                    None => matches!(client.post(&events[i].body).await, Ok((202, _))),
                    Some(v) => match send_as_vendor(&client, v).await {
                        Ok(Some(accepted)) => accepted,
                        // A 2xx that is not "queued": the vendor does not retry it.
                        Ok(None) => return,
                        Err(_) => false,
                    },
                };
                if accepted {
                    accepted_at.lock().await.entry(i).or_insert_with(Utc::now);
                    return;
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        });
    }
    while tasks.join_next().await.is_some() {}
    outage.await??;

    // Settle: every accepted event synced or dead. The outage is over: the first
    // time events are dead, the operator replays a share of them, as
    // `leadbridge replay` does, and they settle again like any other.
    let accepted = accepted_at.lock().await.clone();
    let ledger = stack.ledger();
    let ops = OpsTarget::from_stack(&stack.info).connect().await;
    // Every delivery of an event (one per connection), by its ledger key.
    let delivery = |i: usize, c: usize| lb_domain::delivery_id(&events[i].event_id, conns[c]);
    let index_of: HashMap<String, (usize, usize)> = (0..events.len())
        .flat_map(|i| (0..conns.len()).map(move |c| (i, c)))
        .map(|(i, c)| (delivery(i, c), (i, c)))
        .collect();
    let mut pending: Vec<(usize, usize)> = accepted
        .keys()
        .flat_map(|&i| (0..conns.len()).map(move |c| (i, c)))
        .collect();
    let mut records: HashMap<(usize, usize), lb_pipeline::LedgerRecord> = HashMap::new();
    let mut replayed = 0;
    let mut replay_done = false;
    let deadline = Instant::now() + cfg.settle_timeout;
    bar.set_message("settling (synced or dead)");
    bar.set_length(pending.len() as u64);
    bar.set_position(0);
    while !pending.is_empty() && Instant::now() < deadline {
        bar.set_length((records.len() + pending.len()) as u64);
        bar.set_position(records.len() as u64);
        let mut still = Vec::new();
        for i in pending {
            match ledger.get(&delivery(i.0, i.1)).await? {
                Some(r) if matches!(r.status, LedgerStatus::Synced | LedgerStatus::Dead) => {
                    records.insert(i, r);
                }
                _ => still.push(i),
            }
        }
        pending = still;
        let dead_now = records
            .values()
            .filter(|r| r.status == LedgerStatus::Dead)
            .count();
        if !replay_done && dead_now > 0 {
            replay_done = true;
            // Every bot's (the canonical one's and the sources'): the run's stack
            // has a ledger of its own.
            let mut filter = ListFilter::status(LedgerStatus::Dead);
            filter.limit = Some((((dead_now as f64) * cfg.replay_share).round() as usize).max(1));
            let report = ops.replay(&filter, false, Utc::now()).await?;
            for entry in &report.entries {
                if entry.action.name() != "replayed" {
                    continue;
                }
                replayed += 1;
                if let Some(&d) = index_of.get(&entry.event_id) {
                    records.remove(&d);
                    pending.push(d);
                }
            }
        }
        if !pending.is_empty() {
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
    bar.finish_and_clear();
    client.admin(Method::DELETE, "faults", None).await?;
    for base in &others {
        admin_at(&client, base, Method::DELETE, "faults", None).await?;
    }
    let mut unsettled = Vec::new();
    for &(i, c) in pending.iter().take(20) {
        let r = ledger.get(&delivery(i, c)).await?;
        unsettled.push(match r {
            Some(r) => format!(
                "{} {} attempts={} lease={:?} next={:?} error={:?}",
                delivery(i, c),
                r.status.as_str(),
                r.attempts,
                r.lease_until,
                r.next_attempt_at,
                r.last_error.map(|e| e.code)
            ),
            None => format!("{} not in the ledger", delivery(i, c)),
        });
    }
    let sqs = aws_sdk_sqs::Client::new(&stack.sdk);
    let depth = |url: String| {
        let sqs = sqs.clone();
        async move {
            let a = sqs
                .get_queue_attributes()
                .queue_url(url)
                .attribute_names(aws_sdk_sqs::types::QueueAttributeName::All)
                .send()
                .await
                .ok()
                .and_then(|o| o.attributes)
                .unwrap_or_default();
            let n = |k: aws_sdk_sqs::types::QueueAttributeName| {
                a.get(&k).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0)
            };
            n(aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessages)
                + n(aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
        }
    };
    // Both lanes' queues.
    let left_on_queues = (
        depth(stack.info.queue_url.clone()).await + depth(stack.info.bulk_queue_url.clone()).await,
        depth(stack.info.dlq_url.clone()).await,
    );

    // Possible duplicates, as the pipeline reports them: one alert each on the
    // alerts topic, read from the inbox queue subscribed to it.
    let identity_conflicts = client
        .take_alerts(&sqs)
        .await?
        .iter()
        .filter(|(subject, _)| subject.to_lowercase().contains("possible duplicate"))
        .count();

    // What the CRM holds: every contact, and every note with its contacts (the
    // note list pages; each note has few associations, unlike a contact).
    let stats = client.admin(Method::GET, "stats", None).await?;
    let contacts = client
        .hubspot_all(
            "contacts",
            "&properties=email,phone,mobilephone,hs_whatsapp_phone_number,company",
        )
        .await?;
    let mut notes = client
        .hubspot_all(
            "notes",
            "&properties=hs_note_body,hs_timestamp&associations=contacts",
        )
        .await?;
    // A record read lists at most 100 associations per type; the rest page.
    for n in &mut notes {
        let next = &n["associations"]["contacts"]["paging"]["next"]["after"];
        let Some(after) = next.as_str().map(str::to_string) else {
            continue;
        };
        let id = n["id"].as_str().unwrap_or_default().to_string();
        let rest = client
            .hubspot_associations("notes", &id, "contacts", Some(&after))
            .await?;
        if let Some(results) = n["associations"]["contacts"]["results"].as_array_mut() {
            results.extend(rest.into_iter().map(|id| json!({"id": id})));
        }
    }
    // How each CRM's deliveries settled, by event (Salesforce ids in their
    // 15-character form, as its holdings are read).
    let settled_in = |c: usize| -> HashMap<usize, Settled> {
        records
            .iter()
            .filter(|((_, rc), _)| *rc == c)
            .map(|((i, _), r)| {
                let contact = r.outcome.as_ref().map(|o| o.contact_id.clone());
                (
                    *i,
                    Settled {
                        synced: r.status == LedgerStatus::Synced,
                        contact_id: match crms[c] {
                            "salesforce" => contact.as_deref().map(sf_id),
                            _ => contact,
                        },
                    },
                )
            })
            .collect()
    };
    let settled = settled_in(0);
    let found = check(&events, &persons, &settled, &contacts, &notes);
    let seen: HashSet<usize> = deliveries.iter().copied().collect();
    let mut crm_reports = Vec::with_capacity(crms.len());
    for (c, crm) in crms.iter().enumerate() {
        let settled = settled_in(c);
        let (f, stats) = if c == 0 {
            (None, stats.clone())
        } else {
            let (contacts, notes) = holdings(&client, crm).await?;
            let base = &others[c - 1];
            let stats = admin_at(&client, base, Method::GET, "stats", None).await?;
            (
                Some(check(&events, &persons, &settled, &contacts, &notes)),
                stats,
            )
        };
        let f = f.as_ref().unwrap_or(&found);
        let synced = settled.values().filter(|s| s.synced).count();
        crm_reports.push(CrmReport {
            crm: crm.to_string(),
            synced,
            dead: settled.len() - synced,
            lost: seen.len() - settled.len(),
            records: f.crm_contacts,
            duplicates: f.crm_duplicates,
            persons_without_record: f.persons_without_record,
            merged_people: f.merged_people,
            duplicate_notes: f.duplicate_notes,
            missing_notes: f.missing_notes,
            notes_with_several_events: f.notes_with_several_events,
            requests: stats["total"].as_u64().unwrap_or(0),
            faulted: stats["faulted"].as_u64().unwrap_or(0),
            rate_limited: stats["rate_limited"].as_u64().unwrap_or(0),
        });
    }

    let synced = records
        .values()
        .filter(|r| r.status == LedgerStatus::Synced)
        .count();
    let mut dead_by_reason: BTreeMap<String, usize> = BTreeMap::new();
    let mut attempts: BTreeMap<u32, usize> = BTreeMap::new();
    for r in records.values() {
        *attempts.entry(r.attempts).or_default() += 1;
        if r.status == LedgerStatus::Dead {
            let code = r
                .last_error
                .as_ref()
                .map(|e| e.code.clone())
                .unwrap_or_else(|| "unknown".into());
            *dead_by_reason.entry(code).or_default() += 1;
        }
    }
    let mut latencies: Vec<f64> = found
        .note_created
        .iter()
        .filter_map(|(i, created)| {
            accepted
                .get(i)
                .map(|a| (*created - *a).num_milliseconds() as f64)
        })
        .collect();
    latencies.sort_by(|a, b| a.total_cmp(b));
    let mut identity_mix: BTreeMap<String, usize> = BTreeMap::new();
    for e in events.iter() {
        *identity_mix
            .entry(identity_set_name(e.identities))
            .or_default() += 1;
    }
    let mut per_person: HashMap<usize, usize> = HashMap::new();
    for e in events.iter() {
        *per_person.entry(e.person).or_default() += 1;
    }
    let mut vendor_kinds: BTreeMap<String, usize> = BTreeMap::new();
    for &i in &deliveries {
        if let Some(v) = &events[i].vendor {
            *vendor_kinds.entry(v.source.to_string()).or_default() += 1;
        }
    }
    let report = ChaosReport {
        sent: deliveries.len(),
        distinct_events: events.len(),
        people: persons.len(),
        people_with_several_events: per_person.values().filter(|&&n| n > 1).count(),
        identity_mix,
        nameless_events: events.iter().filter(|e| e.nameless).count(),
        vendor_deliveries: vendor_kinds.values().sum(),
        bulk_deliveries: deliveries.iter().filter(|&&i| events[i].bulk).count(),
        vendor_kinds,
        message_events: events
            .iter()
            .filter(|e| e.vendor.as_ref().is_some_and(|v| v.message))
            .count(),
        notes_with_several_events: found.notes_with_several_events,
        accepted: accepted.len(),
        synced,
        dead: records.len() - synced,
        dead_by_reason,
        replayed,
        lost: seen.len() * conns.len() - records.len(),
        crms: crm_reports,
        crm_contacts: found.crm_contacts,
        crm_duplicates: found.crm_duplicates,
        persons_without_record: found.persons_without_record,
        merged_people: found.merged_people,
        identity_conflicts,
        duplicate_notes: found.duplicate_notes,
        missing_notes: found.missing_notes,
        out_of_order_arrivals: found.out_of_order_arrivals,
        out_of_order_overwrites: found.out_of_order_overwrites,
        crashes_injected: crash.crashes(),
        worker_invocations: stack
            .worker_stats
            .batches
            .load(std::sync::atomic::Ordering::Relaxed),
        crm_requests: stats["total"].as_u64().unwrap_or(0),
        crm_faulted: stats["faulted"].as_u64().unwrap_or(0),
        crm_rate_limited: stats["rate_limited"].as_u64().unwrap_or(0),
        attempts,
        latency_ms_p50: percentile(&latencies, 50.0),
        latency_ms_p99: percentile(&latencies, 99.0),
        latency_ms_max: latencies.last().copied().unwrap_or(0.0),
        seconds: (started.elapsed().as_secs_f64() * 10.0).round() / 10.0,
        unsettled,
        left_on_queues,
    };
    stack.shutdown().await;
    Ok(report)
}

impl ChaosReport {
    /// The promises the suite exists to prove: nothing lost, one CRM record per
    /// person, exactly one note per synced event, no field overwritten out of
    /// order — and older events did arrive after newer ones, so the ordering
    /// guard was exercised; and, in every CRM the events went to (see
    /// [`CrmReport`]), nothing lost, one record per person, exactly one note
    /// per synced delivery. (Identity conflicts are reported, not required to be 0.)
    pub fn holds(&self) -> bool {
        self.broken().is_empty()
    }

    /// The promises this run broke, in words.
    pub fn broken(&self) -> Vec<String> {
        let mut broken: Vec<String> = [
            (
                self.lost > 0,
                "an accepted event was neither synced nor dead",
            ),
            (self.crm_duplicates > 0, "a person has several CRM records"),
            (
                self.persons_without_record > 0,
                "a person with a synced event has no CRM record",
            ),
            (
                self.merged_people > 0,
                "a CRM record holds the identities of several people",
            ),
            (self.duplicate_notes > 0, "an event has several notes"),
            (
                self.missing_notes > 0,
                "a synced event has no note of its own on its contact",
            ),
            (
                self.out_of_order_overwrites > 0,
                "an older event overwrote the fields of a newer one",
            ),
            (
                self.out_of_order_arrivals == 0,
                "no older event arrived after a newer one (the ordering guard was not exercised)",
            ),
        ]
        .into_iter()
        .filter(|(broke, _)| *broke)
        .map(|(_, what)| what.to_string())
        .collect();
        if self.crms.is_empty() {
            broken.push("no CRM was checked".into());
        }
        broken.extend(self.crms.iter().flat_map(CrmReport::broken));
        broken
    }

    pub fn table(&self) -> String {
        let mut t = String::new();
        let mut row = |k: &str, v: String| t.push_str(&format!("  {k:<32} {v:>10}\n"));
        row("events sent", self.sent.to_string());
        row("distinct events", self.distinct_events.to_string());
        row("people", self.people.to_string());
        row(
            "  with 2-4 events",
            self.people_with_several_events.to_string(),
        );
        for (set, n) in &self.identity_mix {
            row(&format!("  events: {set}"), n.to_string());
        }
        row("  events without a name", self.nameless_events.to_string());
        let kinds: Vec<String> = self
            .vendor_kinds
            .iter()
            .map(|(k, n)| format!("{k} {n}"))
            .collect();
        row(
            "vendor-format deliveries",
            format!(
                "{:>10} (kinds {})",
                self.vendor_deliveries,
                if kinds.is_empty() {
                    "none".to_string()
                } else {
                    kinds.join(", ")
                }
            ),
        );
        row("  message events", self.message_events.to_string());
        row("bulk-lane deliveries", self.bulk_deliveries.to_string());
        row("accepted (2xx)", self.accepted.to_string());
        row("synced (deliveries)", self.synced.to_string());
        row("dead (deliveries)", self.dead.to_string());
        for (reason, n) in &self.dead_by_reason {
            row(&format!("  dead: {reason}"), n.to_string());
        }
        row("replayed mid-run", self.replayed.to_string());
        row("lost (deliveries)", self.lost.to_string());
        row("HubSpot contacts", self.crm_contacts.to_string());
        row("HubSpot duplicates", self.crm_duplicates.to_string());
        row(
            "persons without a record",
            self.persons_without_record.to_string(),
        );
        row("records of several people", self.merged_people.to_string());
        row("identity conflicts", self.identity_conflicts.to_string());
        row("duplicate notes", self.duplicate_notes.to_string());
        row("missing notes", self.missing_notes.to_string());
        row(
            "notes of several events",
            self.notes_with_several_events.to_string(),
        );
        row(
            "out-of-order arrivals",
            self.out_of_order_arrivals.to_string(),
        );
        row(
            "out-of-order overwrites",
            self.out_of_order_overwrites.to_string(),
        );
        let cell =
            |f: CrmCell| -> String { self.crms.iter().map(|c| format!("{:>11}", f(c))).collect() };
        t.push_str(&format!(
            "  {:<32} {}\n",
            "per CRM",
            cell(|c| c.crm.clone())
        ));
        let per_crm: [(&str, CrmCell); 13] = [
            ("  synced", |c| c.synced.to_string()),
            ("  dead", |c| c.dead.to_string()),
            ("  lost", |c| c.lost.to_string()),
            ("  records", |c| c.records.to_string()),
            ("  duplicates", |c| c.duplicates.to_string()),
            ("  persons without a record", |c| {
                c.persons_without_record.to_string()
            }),
            ("  records of several people", |c| {
                c.merged_people.to_string()
            }),
            ("  duplicate notes", |c| c.duplicate_notes.to_string()),
            ("  missing notes", |c| c.missing_notes.to_string()),
            ("  notes of several events", |c| {
                c.notes_with_several_events.to_string()
            }),
            ("  requests", |c| c.requests.to_string()),
            ("    answered with a fault", |c| c.faulted.to_string()),
            ("    rate-limited (429)", |c| c.rate_limited.to_string()),
        ];
        for (k, f) in per_crm {
            t.push_str(&format!("  {k:<32} {}\n", cell(f)));
        }
        let mut row = |k: &str, v: String| t.push_str(&format!("  {k:<32} {v:>10}\n"));
        row("crashes injected", self.crashes_injected.to_string());
        row("worker invocations", self.worker_invocations.to_string());
        row("HubSpot requests", self.crm_requests.to_string());
        row("  answered with a fault", self.crm_faulted.to_string());
        row("  rate-limited (429)", self.crm_rate_limited.to_string());
        for (a, n) in &self.attempts {
            row(&format!("deliveries with {a} attempt(s)"), n.to_string());
        }
        row("latency p50 (ms)", format!("{:.0}", self.latency_ms_p50));
        row("latency p99 (ms)", format!("{:.0}", self.latency_ms_p99));
        row("latency max (ms)", format!("{:.0}", self.latency_ms_max));
        row("wall time (s)", format!("{:.1}", self.seconds));
        row(
            "left on queue / DLQ",
            format!("{} / {}", self.left_on_queues.0, self.left_on_queues.1),
        );
        for u in &self.unsettled {
            t.push_str(&format!("  unsettled: {u}\n"));
        }
        t
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_person_has_valid_distinct_numbers_and_their_events_share_an_identity() {
        let cfg = ChaosConfig::full();
        let Plan {
            events,
            persons,
            deliveries,
        } = plan(&cfg);
        assert_eq!(deliveries.len(), cfg.events);
        assert_eq!(
            deliveries.iter().collect::<HashSet<_>>().len(),
            events.len(),
            "every event is sent"
        );
        let mut numbers = HashSet::new();
        for p in &persons {
            let phone = lb_domain::Phone::parse(&p.phone, None).expect("a valid number");
            assert_eq!(phone.as_str(), p.e164);
            let wa = lb_domain::WaId::parse(&p.wa_id).expect("a valid wa_id");
            assert_eq!(format!("+{}", wa.as_str()), p.e164, "the same number");
            assert!(numbers.insert(p.e164.clone()), "{} is shared", p.e164);
        }
        let mut of_person: HashMap<usize, Vec<&Planned>> = HashMap::new();
        for e in &events {
            of_person.entry(e.person).or_default().push(e);
            assert!(e.identities != 0);
            if e.nameless {
                assert!(matches!(e.identities, PHONE | WHATSAPP), "{}", e.event_id);
                assert!(e.vendor.is_none(), "{}", e.event_id);
                assert!(e.body["visitor"].get("name").is_none());
            } else if e.vendor.is_none() {
                assert!(e.body["visitor"]["name"].is_string());
            }
            if e.vendor.is_none() {
                assert_eq!(e.event_id, e.key);
                assert_eq!(
                    e.body["visitor"]["company"],
                    json!(format!("Co {}", e.event_id))
                );
            }
        }
        let ids: HashSet<&str> = events.iter().map(|e| e.event_id.as_str()).collect();
        assert_eq!(ids.len(), events.len(), "event ids are unique");
        for evs in of_person.values() {
            let common = evs.iter().fold(7u8, |acc, e| acc & e.identities);
            assert_ne!(common, 0, "a person's events share an identity");
            let bare: Vec<&&Planned> = evs.iter().filter(|e| !e.key.contains('.')).collect();
            assert_eq!(bare.len(), 1, "one event key is the start of the others'");
            assert!(evs.iter().all(|e| e.key.starts_with(&bare[0].key)));
            if evs.len() > 1 {
                assert!(evs.iter().any(|e| e.identities.count_ones() == 1));
                assert!(evs.iter().any(|e| e.identities.count_ones() > 1));
            }
        }
        let mix: HashSet<u8> = events.iter().map(|e| e.identities).collect();
        for set in [
            EMAIL,
            PHONE,
            WHATSAPP,
            EMAIL | PHONE | WHATSAPP,
            PHONE | WHATSAPP,
        ] {
            assert!(mix.contains(&set), "{}", identity_set_name(set));
        }
        assert!(events.iter().any(|e| e.nameless));
        assert!(of_person.values().any(|v| v.len() == 4));
    }

    #[test]
    fn the_reduced_plan_has_several_people_a_nameless_event_and_late_old_events() {
        let Plan { events, .. } = plan(&ChaosConfig::reduced());
        let mut per_person: HashMap<usize, usize> = HashMap::new();
        for e in &events {
            *per_person.entry(e.person).or_default() += 1;
        }
        assert!(per_person.values().filter(|&&n| n > 1).count() >= 5);
        assert!(events.iter().any(|e| e.nameless));
    }

    /// The vendor share of a plan: `vendor_ratio` of the events, every vendor,
    /// each delivery read by its kind as the planned event (id, identities,
    /// name, time), a person's vendor events older than their canonical ones,
    /// the receive-time vendors on a person's only event, and a WhatsApp
    /// conversation of two messages.
    fn assert_the_vendor_share(cfg: &ChaosConfig) {
        let Plan {
            events,
            persons,
            deliveries,
        } = plan(cfg);
        let vendor: Vec<&Planned> = events.iter().filter(|e| e.vendor.is_some()).collect();
        assert_eq!(
            vendor.len(),
            ((events.len() as f64) * cfg.vendor_ratio).round() as usize
        );
        let sent = deliveries
            .iter()
            .filter(|&&i| events[i].vendor.is_some())
            .count() as f64
            / deliveries.len() as f64;
        assert!((0.1..0.3).contains(&sent), "{sent}");
        let used: HashSet<&str> = vendor
            .iter()
            .map(|e| e.vendor.as_ref().unwrap().source)
            .collect();
        assert_eq!(used.len(), VENDORS.len(), "{used:?}");
        let mut of_person: HashMap<usize, Vec<&Planned>> = HashMap::new();
        for e in &events {
            of_person.entry(e.person).or_default().push(e);
        }
        let mut conversations: HashMap<String, Vec<&str>> = HashMap::new();
        for e in &vendor {
            let v = e.vendor.as_ref().unwrap();
            let p = &persons[e.person];
            let (url, secret) = planned_source(v.source);
            let kind = lb_vendors::sources::kind(v.source).unwrap();
            let lead = vendor_event(v, kind, &url, &secret).unwrap();
            assert_eq!(lead["event_id"], json!(e.event_id), "{}", v.source);
            assert!(e.event_id.starts_with(&format!("{}:", v.source)));
            assert_eq!(lead["bot_id"], json!(format!("bot_{}", v.source)));
            let visitor = &lead["visitor"];
            assert_eq!(
                visitor["email"].as_str(),
                (e.identities & EMAIL != 0).then_some(p.email.as_str()),
                "{}: {lead}",
                v.source
            );
            assert_eq!(
                visitor["phone"].as_str().map(digits),
                (e.identities & PHONE != 0).then(|| digits(&p.e164)),
                "{}: {lead}",
                v.source
            );
            assert_eq!(
                visitor["wa_id"].as_str(),
                (e.identities & WHATSAPP != 0).then_some(p.wa_id.as_str()),
                "{}: {lead}",
                v.source
            );
            let name = visitor["name"].as_str().map(str::to_string).or_else(|| {
                Some(format!(
                    "{} {}",
                    visitor["first_name"].as_str()?,
                    visitor["last_name"].as_str()?
                ))
            });
            assert_eq!(name, Some(format!("Chaos Person{}", e.person)), "{lead}");
            let ty = if v.message {
                "message.received"
            } else {
                "lead.created"
            };
            assert_eq!(lead["event_type"], ty, "{}", v.source);
            let at = timestamp(&lead["occurred_at"]).unwrap();
            let vendor = VENDORS.iter().find(|x| x.source == v.source).unwrap();
            if vendor.dated {
                assert_eq!(at, e.occurred_at, "{}", v.source);
            } else {
                assert_eq!(of_person[&e.person].len(), 1, "{}", v.source);
            }
            assert!(
                of_person[&e.person]
                    .iter()
                    .filter(|o| o.marks_fields())
                    .all(|o| o.occurred_at > e.occurred_at),
                "{} is older than every canonical event of its person",
                e.event_id
            );
            if let Some(c) = lead["conversation_id"].as_str().filter(|_| v.message) {
                conversations
                    .entry(c.to_string())
                    .or_default()
                    .push(&e.event_id);
            }
        }
        assert!(
            conversations.values().any(|ids| ids.len() == 2),
            "a conversation of two messages: {conversations:?}"
        );
        // Sent as planned: the event's own body, or the vendor's bytes alone.
        for e in &events {
            assert_eq!(e.vendor.is_some(), e.body.is_null(), "{}", e.event_id);
        }
    }

    #[test]
    fn a_share_of_the_events_is_sent_by_vendors_as_they_send_them() {
        assert_the_vendor_share(&ChaosConfig::full());
        for _ in 0..20 {
            assert_the_vendor_share(&ChaosConfig::reduced());
        }
    }

    #[test]
    fn a_tag_is_read_whole() {
        let body = "<p>x</p><p>Ref: leadbridge-event:evt_10</p>";
        assert_eq!(tagged_event_ids(body), ["evt_10"]);
        assert_eq!(
            tagged_event_ids("leadbridge-event:evt_1.2:a"),
            ["evt_1.2:a"]
        );
        assert!(tagged_event_ids("leadbridge-event:</p>").is_empty());
    }

    fn planned(id: &str, person: usize, secs: i64) -> Planned {
        Planned {
            event_id: id.into(),
            key: id.into(),
            person,
            identities: EMAIL,
            nameless: false,
            occurred_at: DateTime::from_timestamp(1_700_000_000 + secs, 0).unwrap(),
            body: Value::Null,
            vendor: None,
            bulk: false,
        }
    }

    /// A WhatsApp message of the person, sent as Meta sends it, with the event
    /// id and the canonical event its kind reads from it.
    fn message(
        key: &str,
        persons: &[Person],
        person: usize,
        secs: i64,
    ) -> (Planned, lb_domain::LeadEvent) {
        let mut e = planned(key, person, secs);
        e.identities = PHONE | WHATSAPP;
        let v = vendor_delivery("whatsapp", &e, &persons[person]);
        let (url, secret) = planned_source("whatsapp");
        let kind = lb_vendors::sources::kind("whatsapp").unwrap();
        let lead = vendor_event(&v, kind, &url, &secret).unwrap();
        e.event_id = lead["event_id"].as_str().unwrap().to_string();
        e.vendor = Some(v);
        (e, serde_json::from_value(lead).unwrap())
    }

    /// A note as the pipeline writes it for a conversation (the same footer).
    fn conversation_note(
        id: u64,
        messages: &[&lb_domain::LeadEvent],
        contact: &str,
        created_ms: i64,
    ) -> Value {
        use lb_domain::conversation::{append, new_note, Append};
        let mut body = new_note(messages[0], 65_536);
        for m in &messages[1..] {
            match append(&body, m, 65_536) {
                Append::Body(b) => body = b,
                other => panic!("{other:?}"),
            }
        }
        json!({
            "id": id.to_string(),
            "createdAt": DateTime::from_timestamp_millis(1_800_000_000_000 + created_ms).unwrap().to_rfc3339(),
            "properties": {
                "hs_note_body": body,
                "hs_timestamp": messages[0].occurred_at.to_rfc3339(),
            },
            "associations": {"contacts": {"results": [{"id": contact, "type": "note_to_contact"}]}}
        })
    }

    fn contact(id: &str, props: Value) -> Value {
        json!({"id": id, "properties": props})
    }

    fn note(id: u64, event: &str, contact: &str, created_ms: i64, ts_secs: i64) -> Value {
        json!({
            "id": id.to_string(),
            "createdAt": DateTime::from_timestamp_millis(1_800_000_000_000 + created_ms).unwrap().to_rfc3339(),
            "properties": {
                "hs_note_body": format!("<p>Ref: leadbridge-event:{event}</p>"),
                "hs_timestamp": DateTime::from_timestamp(1_700_000_000 + ts_secs, 0).unwrap().to_rfc3339(),
            },
            "associations": {"contacts": {"results": [{"id": contact, "type": "note_to_contact"}]}}
        })
    }

    fn synced(contact: &str) -> Settled {
        Settled {
            synced: true,
            contact_id: Some(contact.into()),
        }
    }

    #[test]
    fn the_checks_find_what_breaks_a_promise() {
        let persons = vec![Person::new(0), Person::new(1), Person::new(2)];
        let events = vec![
            planned("evt_1", 0, 0),
            planned("evt_10", 0, 10),
            planned("evt_2", 1, 2),
            planned("evt_3", 1, 3),
            planned("evt_4", 2, 4),
        ];
        let settled: HashMap<usize, Settled> = [
            (0, synced("101")),
            (1, synced("102")),
            (2, synced("201")),
            (3, synced("201")),
            (4, synced("301")),
        ]
        .into_iter()
        .collect();
        let contacts = vec![
            // Person 0 twice: by email, and by a phone written otherwise.
            contact(
                "101",
                json!({"email": "Chaos.P0@example.com", "company": "Co evt_1"}),
            ),
            contact(
                "102",
                json!({"phone": "(415) 555-0000", "company": "Co evt_10"}),
            ),
            // Person 1 once (WhatsApp), with the fields of their older event.
            contact(
                "201",
                json!({"hs_whatsapp_phone_number": "+14155550001", "company": "Co evt_2"}),
            ),
        ];
        let notes = vec![
            // evt_10's note only: evt_1 has none although evt_10's tag starts with it.
            note(1, "evt_10", "102", 0, 10),
            // evt_3 then evt_2 (older) on one contact, and evt_3 a second time.
            note(2, "evt_3", "201", 10, 3),
            note(3, "evt_2", "201", 20, 2),
            note(4, "evt_3", "201", 30, 3),
            // evt_4's note on another contact than the one the ledger names.
            note(5, "evt_4", "999", 40, 4),
        ];
        let f = check(&events, &persons, &settled, &contacts, &notes);
        assert_eq!(f.crm_contacts, 3);
        assert_eq!(f.crm_duplicates, 1, "{f:?}");
        assert_eq!(f.persons_without_record, 1, "person 2: {f:?}");
        assert_eq!(f.merged_people, 0);
        assert_eq!(f.duplicate_notes, 1, "{f:?}");
        assert_eq!(f.missing_notes, 2, "evt_1 and evt_4: {f:?}");
        assert_eq!(f.out_of_order_arrivals, 1, "evt_2 after evt_3: {f:?}");
        assert_eq!(f.out_of_order_overwrites, 1, "contact 201: {f:?}");
    }

    #[test]
    fn a_conversation_note_counts_once_for_each_of_its_messages() {
        let persons = vec![Person::new(0), Person::new(1)];
        let (m1, l1) = message("evt_chaos_00000.1", &persons, 0, 0);
        let (m2, l2) = message("evt_chaos_00000.2", &persons, 0, 1);
        let (m3, l3) = message("evt_chaos_00001.1", &persons, 1, 3);
        let (m4, l4) = message("evt_chaos_00001.2", &persons, 1, 4);
        assert!(m1.event_id.starts_with("whatsapp:h"), "{}", m1.event_id);
        let events = vec![
            m1,
            m2,
            planned("evt_chaos_00000", 0, 2),
            m3,
            m4,
            planned("evt_chaos_00001", 1, 5),
        ];
        let settled: HashMap<usize, Settled> = (0..3)
            .map(|i| (i, synced("7")))
            .chain((3..6).map(|i| (i, synced("8"))))
            .collect();
        let contacts = vec![
            contact(
                "7",
                json!({"phone": "+14155550000", "hs_whatsapp_phone_number": "+14155550000",
                       "company": "Co evt_chaos_00000"}),
            ),
            contact(
                "8",
                json!({"phone": "+14155550001", "hs_whatsapp_phone_number": "+14155550001",
                       "company": "Co evt_chaos_00001"}),
            ),
        ];
        // Person 0: the older message arrived last and joined the note of the
        // newer one; the lead has a note of its own.
        let clean = vec![
            conversation_note(1, &[&l2, &l1], "7", 0),
            note(2, "evt_chaos_00000", "7", 10, 2),
            conversation_note(3, &[&l3, &l4], "8", 20),
            note(4, "evt_chaos_00001", "8", 30, 5),
        ];
        let f = check(&events, &persons, &settled, &contacts, &clean);
        assert_eq!(
            (
                f.duplicate_notes,
                f.missing_notes,
                f.notes_with_several_events,
                f.out_of_order_overwrites
            ),
            (0, 0, 2, 0),
            "{f:?}"
        );
        // The note was created for the message that opened it, not the one that joined.
        assert!(f.note_created.contains_key(&1) && !f.note_created.contains_key(&0));
        assert!(f.note_created.contains_key(&3) && !f.note_created.contains_key(&4));

        // A message in two notes of its conversation, and a message in none.
        let broken = vec![
            conversation_note(1, &[&l2, &l1], "7", 0),
            conversation_note(5, &[&l1], "7", 5),
            note(2, "evt_chaos_00000", "7", 10, 2),
            conversation_note(3, &[&l3], "8", 20),
            note(4, "evt_chaos_00001", "8", 30, 5),
        ];
        let f = check(&events, &persons, &settled, &contacts, &broken);
        assert_eq!(
            (
                f.duplicate_notes,
                f.missing_notes,
                f.notes_with_several_events
            ),
            (1, 1, 1),
            "{f:?}"
        );

        // A message written twice into one note is a duplicate too.
        let mut twice = conversation_note(3, &[&l3, &l4], "8", 20);
        let body = twice["properties"]["hs_note_body"]
            .as_str()
            .unwrap()
            .to_string();
        let tag = format!("leadbridge-event:{}", events[4].event_id);
        twice["properties"]["hs_note_body"] = json!(body.replace(&tag, &format!("{tag} {tag}")));
        let notes = vec![clean[0].clone(), clean[1].clone(), twice, clean[3].clone()];
        let f = check(&events, &persons, &settled, &contacts, &notes);
        assert_eq!((f.duplicate_notes, f.missing_notes), (1, 0), "{f:?}");
    }

    #[test]
    fn a_vendor_event_leaves_the_marker_of_the_newest_canonical_event() {
        let persons = vec![Person::new(0)];
        let (m, _) = message("evt_chaos_00000.9", &persons, 0, 5);
        let events = vec![planned("evt_a", 0, 0), m, planned("evt_b", 0, 1)];
        let contacts = vec![contact(
            "7",
            json!({"email": "chaos.p0@example.com", "company": "Co evt_a"}),
        )];
        // The message (newer than evt_a) wrote no marker: evt_a's stands.
        let settled: HashMap<usize, Settled> =
            [(0, synced("7")), (1, synced("7"))].into_iter().collect();
        let f = check(&events, &persons, &settled, &contacts, &[]);
        assert_eq!(f.out_of_order_overwrites, 0, "{f:?}");
        // A newer canonical event synced and evt_a's marker stands: overwritten.
        let settled: HashMap<usize, Settled> =
            [(0, synced("7")), (1, synced("7")), (2, synced("7"))]
                .into_iter()
                .collect();
        let f = check(&events, &persons, &settled, &contacts, &[]);
        assert_eq!(f.out_of_order_overwrites, 1, "{f:?}");
    }

    #[test]
    fn the_fan_out_config_routes_every_bot_to_the_four_crms_and_declares_the_sources() {
        let (toml, secrets) = fan_out_config("chaos1", Duration::from_secs(8));
        let text = toml
            .replace("{hubspot_url}", "http://127.0.0.1:1")
            .replace("{pipedrive_url}", "http://127.0.0.1:2")
            .replace("{pipedrive_secret}", "chaos1/pipedrive")
            .replace("{zoho_accounts_url}", "http://127.0.0.1:3")
            .replace("{zoho_secret}", "chaos1/zoho")
            .replace("{salesforce_login_url}", "http://127.0.0.1:4")
            .replace("{salesforce_secret}", "chaos1/salesforce");
        let cfg = lb_config::Config::parse_local(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
        let defaults = crate::sources::defaults("chaos1");
        assert_eq!(cfg.sources.len(), defaults.len());
        for (name, s) in &defaults {
            assert_eq!(cfg.sources[name].bot_id, s.bot_id);
            assert_eq!(cfg.sources[name].options.fields, s.options.fields, "{name}");
        }
        assert_eq!(secrets.len(), defaults.len());
        assert!(text.contains(r#"connections = ["hubspot", "pipedrive", "zoho", "salesforce"]"#));
        assert!(text.contains("timeout_ms = 8000"));
    }

    #[test]
    fn a_crm_keeping_several_emails_and_phones_is_read_whole() {
        let persons = vec![Person::new(0), Person::new(1)];
        let events = vec![planned("evt_a", 0, 0), planned("evt_b", 1, 1)];
        let settled: HashMap<usize, Settled> =
            [(0, synced("7")), (1, synced("8"))].into_iter().collect();
        // Person 1's phone is on person 0's record too, as a second number.
        let contacts = vec![
            as_contact(
                "7".into(),
                vec![json!("chaos.p0@example.com")],
                vec![json!("+14155550000"), json!("+1 415 555 0001")],
            ),
            as_contact(
                "8".into(),
                vec![json!("chaos.p1@example.com")],
                vec![Value::Null],
            ),
        ];
        let notes = vec![
            as_note(
                "1".into(),
                "Ref: leadbridge-event:evt_a",
                None,
                Some("7".into()),
            ),
            as_note(
                "2".into(),
                "<p>leadbridge-event:evt_b</p>",
                None,
                Some("8".into()),
            ),
            as_note("3".into(), "leadbridge-event:evt_b", None, Some("8".into())),
        ];
        let f = check(&events, &persons, &settled, &contacts, &notes);
        assert_eq!(
            (
                f.merged_people,
                f.crm_duplicates,
                f.duplicate_notes,
                f.missing_notes
            ),
            (1, 1, 1, 0),
            "{f:?}"
        );
    }

    #[test]
    fn a_clean_crm_passes_the_checks() {
        let persons = vec![Person::new(0)];
        let events = vec![planned("evt_a", 0, 0), planned("evt_b", 0, 1)];
        let settled: HashMap<usize, Settled> =
            [(0, synced("7")), (1, synced("7"))].into_iter().collect();
        let contacts = vec![contact(
            "7",
            json!({"email": "chaos.p0@example.com", "phone": "+14155550000",
                   "hs_whatsapp_phone_number": "+14155550000", "company": "Co evt_b"}),
        )];
        let notes = vec![note(1, "evt_b", "7", 0, 1), note(2, "evt_a", "7", 5, 0)];
        let f = check(&events, &persons, &settled, &contacts, &notes);
        assert_eq!(
            (
                f.crm_duplicates,
                f.persons_without_record,
                f.merged_people,
                f.duplicate_notes,
                f.missing_notes,
                f.out_of_order_overwrites
            ),
            (0, 0, 0, 0, 0, 0),
            "{f:?}"
        );
        assert_eq!(f.out_of_order_arrivals, 1);
    }
}
