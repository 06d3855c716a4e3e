//! The worker's use case: sync a batch of queued leads to the CRM exactly once.

use std::collections::HashMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use lb_domain::conversation;
use lb_domain::{identity, ContactKey, QueuedLead};
use tracing::{info, info_span, warn, Instrument};

use crate::batch::Gate;
use crate::hooks::Hooks;
use crate::ports::{
    Alerts, Begin, Connections, ContactRef, ContactUpsert, ContactWrite, Crm, CrmError, DeadLetter,
    ErrorClass, FailureReason, IdentityConflict, LeadQueue, Ledger, Locked, PersonLock,
    PersonRelease, PortError, SyncOutcome, Written,
};
use crate::retry::RetryPolicy;

/// One message as the queue delivered it.
#[derive(Debug, Clone)]
pub struct InboundMessage {
    pub message_id: String,
    pub receipt_handle: String,
    pub body: String,
    /// FIFO message group (the hashed contact key).
    pub group_id: Option<String>,
    /// How many times the queue has delivered it (ApproximateReceiveCount).
    pub receive_count: u32,
    /// The queue it came from.
    pub lane: lb_domain::Lane,
}

/// What happened to one message.
#[derive(Debug, Clone, PartialEq)]
pub enum ItemOutcome {
    Synced(SyncOutcome),
    /// Already synced or dead: acknowledged without touching the CRM.
    AlreadyDone,
    /// Sent to the dead-letter queue with this reason; acknowledged.
    DeadLettered(FailureReason),
    /// Not done; will come back after `delay`.
    RetryLater {
        delay: Duration,
        reason: FailureReason,
    },
    /// Not attempted: an earlier message of its group failed in this batch (FIFO order).
    HeldForOrder,
    /// Not attempted: the invocation is about to run out of time.
    OutOfTime,
}

impl ItemOutcome {
    /// Whether the message is finished with (deleted from the queue).
    pub fn is_ack(&self) -> bool {
        matches!(
            self,
            ItemOutcome::Synced(_) | ItemOutcome::AlreadyDone | ItemOutcome::DeadLettered(_)
        )
    }
}

pub trait Clock: Send + Sync {
    fn now(&self) -> DateTime<Utc>;
}

pub struct SystemClock;
impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

pub struct Worker<'a> {
    pub ledger: &'a dyn Ledger,
    pub queue: &'a dyn LeadQueue,
    /// The CRM connections, by name (a single CRM is a set of one).
    pub crm: &'a dyn Connections,
    /// Where a `possible_duplicate` (one person, several CRM records) is told, once.
    pub alerts: &'a dyn Alerts,
    pub clock: &'a dyn Clock,
    pub policy: RetryPolicy,
    /// Messages not started when less than this remains before the deadline are handed back.
    pub safety_margin: Duration,
    pub hooks: &'a Hooks,
}

/// Processes a batch and returns one outcome per message, in the same order.
/// The messages of one group are one flow, in order, and FIFO semantics hold
/// within it: once a message of a group is not acknowledged, every later
/// message of that group in the batch is held back too. Flows run side by
/// side, and their CRM calls meet in batch calls ([`crate::batch`]).
pub async fn sync_batch(
    w: &Worker<'_>,
    messages: &[InboundMessage],
    deadline: DateTime<Utc>,
) -> Vec<ItemOutcome> {
    // One flow per group (first appearance order); an ungrouped message is a flow of its own.
    let mut flows: Vec<Vec<usize>> = Vec::new();
    let mut by_group: HashMap<&str, usize> = HashMap::new();
    for (i, m) in messages.iter().enumerate() {
        match m.group_id.as_deref() {
            Some(g) => match by_group.get(g) {
                Some(&f) => flows[f].push(i),
                None => {
                    by_group.insert(g, flows.len());
                    flows.push(vec![i]);
                }
            },
            None => flows.push(vec![i]),
        }
    }
    let gate = Gate::new(flows.len(), w.ledger);
    let gate = &gate;
    let done = futures_util::future::join_all(flows.iter().map(|flow| async move {
        let outcomes = sync_flow(w, gate, messages, flow, deadline).await;
        gate.leave().await;
        outcomes
    }))
    .await;
    let mut out: Vec<Option<ItemOutcome>> = (0..messages.len()).map(|_| None).collect();
    for (flow, outcomes) in flows.iter().zip(done) {
        for (&i, o) in flow.iter().zip(outcomes) {
            out[i] = Some(o);
        }
    }
    out.into_iter()
        .map(|o| o.expect("every message has an outcome"))
        .collect()
}

/// One group's messages, in order.
async fn sync_flow<'a>(
    w: &Worker<'a>,
    gate: &Gate<'a>,
    messages: &[InboundMessage],
    flow: &[usize],
    deadline: DateTime<Utc>,
) -> Vec<ItemOutcome> {
    let mut blocked = false;
    let mut out = Vec::with_capacity(flow.len());
    for &i in flow {
        let m = &messages[i];
        if blocked {
            // Release it at once: an in-flight follower would otherwise block its
            // whole group in the queue until its visibility timeout ran out.
            if let Err(e) = w
                .queue
                .retry_later(m.lane, &m.receipt_handle, Duration::ZERO)
                .await
            {
                warn!(message_id = %m.message_id, error = %e, "could not release a held message");
            }
            out.push(ItemOutcome::HeldForOrder);
            continue;
        }
        let remaining = (deadline - w.clock.now()).to_std().unwrap_or_default();
        let outcome = if remaining < w.safety_margin {
            // Hand it back at once rather than after a whole visibility timeout.
            if let Err(e) = w
                .queue
                .retry_later(m.lane, &m.receipt_handle, Duration::ZERO)
                .await
            {
                warn!(message_id = %m.message_id, error = %e, "could not hand back an unstarted message");
            }
            ItemOutcome::OutOfTime
        } else {
            let span = info_span!("lead", message_id = %m.message_id, event_id = tracing::field::Empty, connection = tracing::field::Empty);
            sync_message(w, gate, m, deadline).instrument(span).await
        };
        if !outcome.is_ack() && m.group_id.is_some() {
            blocked = true;
        }
        out.push(outcome);
    }
    out
}

enum StepError {
    Crm(CrmError),
    Port(PortError),
    /// Another event of the same person is creating its CRM record right now.
    ContactBusy,
    /// The message names a connection this worker does not have.
    UnknownConnection(String),
}

impl From<CrmError> for StepError {
    fn from(e: CrmError) -> Self {
        StepError::Crm(e)
    }
}
impl From<PortError> for StepError {
    fn from(e: PortError) -> Self {
        StepError::Port(e)
    }
}

impl StepError {
    fn reason(&self) -> FailureReason {
        match self {
            StepError::Crm(e) => e.reason(),
            StepError::Port(e) if e.is_permanent() => FailureReason {
                class: ErrorClass::Permanent,
                code: "ledger_rejected".into(),
                message: e.0.clone(),
                crm: None,
                http_status: None,
            },
            StepError::Port(e) => FailureReason {
                class: ErrorClass::Transient,
                code: "infrastructure_unavailable".into(),
                message: e.0.clone(),
                crm: None,
                http_status: None,
            },
            StepError::UnknownConnection(msg) => FailureReason {
                class: ErrorClass::Permanent,
                code: "unknown_connection".into(),
                message: msg.clone(),
                crm: None,
                http_status: None,
            },
            StepError::ContactBusy => FailureReason {
                class: ErrorClass::Transient,
                code: "contact_busy".into(),
                message: "another event of this person is creating its CRM record".into(),
                crm: None,
                http_status: None,
            },
        }
    }
    fn retry_after(&self) -> Option<Duration> {
        match self {
            StepError::ContactBusy => Some(Duration::from_secs(1)),
            StepError::Crm(e) => e.retry_after,
            StepError::Port(_) | StepError::UnknownConnection(_) => None,
        }
    }
}

async fn sync_message<'a>(
    w: &Worker<'a>,
    gate: &Gate<'a>,
    m: &InboundMessage,
    deadline: DateTime<Utc>,
) -> ItemOutcome {
    let lead = match QueuedLead::from_json(&m.body) {
        Ok(l) => l,
        Err(e) => {
            let reason = FailureReason {
                class: ErrorClass::Permanent,
                code: "poison_message".into(),
                message: e,
                crm: None,
                http_status: None,
            };
            let letter = DeadLetter {
                body: m.body.clone(),
                group_id: m.group_id.clone().unwrap_or_else(|| "poison".into()),
                dedup_id: m.message_id.clone(),
                event_id: None,
                attempts: m.receive_count,
                reason: reason.clone(),
            };
            warn!(
                code = "poison_message",
                "message is not a leadbridge lead; dead-lettering"
            );
            return match w.queue.dead_letter(&letter).await {
                Ok(()) => ItemOutcome::DeadLettered(reason),
                Err(e) => retry_infra(w, m, m.receive_count, e).await,
            };
        }
    };
    let event_id = lead.event.event_id.as_str().to_string();
    tracing::Span::current().record("event_id", event_id.as_str());
    if let Some(c) = lead.connection() {
        tracing::Span::current().record("connection", c);
    }
    let now = w.clock.now();
    let begin = match w
        .ledger
        .begin(&lead, &lead.for_ledger().to_json(), now, deadline)
        .await
    {
        Ok(b) => b,
        Err(e) => return ledger_failure(w, m, &lead, m.receive_count, e).await,
    };
    match begin {
        Begin::AlreadySynced(_) | Begin::AlreadyDead => {
            info!(event_id, "already handled; acknowledged without a CRM call");
            ItemOutcome::AlreadyDone
        }
        Begin::InProgress { lease_until } => {
            let delay = (lease_until - now).to_std().unwrap_or_default() + Duration::from_secs(1);
            let reason = FailureReason {
                class: ErrorClass::Transient,
                code: "in_progress_elsewhere".into(),
                message: "another invocation holds the lease".into(),
                crm: None,
                http_status: None,
            };
            hand_back(w, m, delay, reason).await
        }
        Begin::Conflict => {
            let reason = FailureReason {
                class: ErrorClass::Permanent,
                code: "event_id_conflict".into(),
                message: "event_id was already used for a different payload".into(),
                crm: None,
                http_status: None,
            };
            dead_letter(w, m, &lead, 0, reason, false).await
        }
        Begin::Proceed {
            attempt,
            follows_earlier,
            prior,
        } => match sync_to_crm(
            w,
            gate,
            &lead,
            &Attempt {
                follows_earlier,
                prior,
            },
            deadline,
        )
        .await
        {
            Ok(outcome) => match complete(w, &lead, &outcome).await {
                Ok(()) => {
                    info!(
                        event_id,
                        attempt,
                        crm = %outcome.crm,
                        contact_id = %outcome.contact_id,
                        created = outcome.contact_created,
                        "lead synced"
                    );
                    let latency = (w.clock.now() - lead.received_at).num_milliseconds().max(0);
                    crate::telemetry::synced(&outcome.crm, latency as f64);
                    ItemOutcome::Synced(outcome)
                }
                // The CRM has it; the next attempt redoes the idempotent upsert and finds its note.
                Err(e) => ledger_failure(w, m, &lead, attempt, e).await,
            },
            Err(e) => {
                let reason = e.reason();
                let permanent = reason.class == ErrorClass::Permanent;
                // Throttling delays a lead, it does not kill it: 429s do not use up the
                // attempts (the queue's maxReceiveCount still bounds them).
                let throttled = reason.class == ErrorClass::RateLimited;
                if permanent || (!throttled && w.policy.exhausted(attempt)) {
                    let reason = if permanent {
                        reason
                    } else {
                        FailureReason {
                            code: "retries_exhausted".into(),
                            message: format!(
                                "gave up after {attempt} attempts; last error: {}",
                                reason.message
                            ),
                            ..reason
                        }
                    };
                    dead_letter(w, m, &lead, attempt, reason, true).await
                } else {
                    let delay = {
                        let mut rng = rand::rng();
                        w.policy.delay(attempt, e.retry_after(), &mut rng)
                    };
                    let next =
                        w.clock.now() + chrono::Duration::from_std(delay).unwrap_or_default();
                    // Waiting on a rate limit or on another event of the person is not an attempt.
                    let counted = !throttled && !matches!(e, StepError::ContactBusy);
                    if let Err(le) = w
                        .ledger
                        .fail(
                            &lead.delivery_id(),
                            &scrubbed(&reason, &lead),
                            next,
                            counted,
                            w.clock.now(),
                        )
                        .await
                    {
                        warn!(event_id, error = %le, "could not record the failure in the ledger");
                    }
                    warn!(
                        event_id,
                        attempt,
                        class = reason.class.as_str(),
                        code = %reason.code,
                        http_status = ?reason.http_status,
                        delay_ms = delay.as_millis() as u64,
                        "sync failed; retrying later"
                    );
                    hand_back(w, m, delay, reason).await
                }
            }
        },
    }
}

/// Records the sync. The chaos suite can crash here, after the CRM took the write.
async fn complete(
    w: &Worker<'_>,
    lead: &QueuedLead,
    outcome: &SyncOutcome,
) -> Result<(), PortError> {
    w.hooks.after_crm_write();
    w.ledger
        .complete(&lead.delivery_id(), outcome, w.clock.now())
        .await
}

/// What `begin` handed this attempt.
struct Attempt {
    /// An earlier attempt (a retry, a lease takeover, a replay) ran and may
    /// have written something this one would write again.
    follows_earlier: bool,
    prior: Option<SyncOutcome>,
}

/// The CRM side of one event: contact upsert, then note, then (when asked) deal.
/// A connection that keeps no records (a webhook target) gets one delivery call.
async fn sync_to_crm<'a>(
    w: &Worker<'a>,
    gate: &Gate<'a>,
    lead: &QueuedLead,
    attempt: &Attempt,
    deadline: DateTime<Utc>,
) -> Result<SyncOutcome, StepError> {
    let target = w
        .crm
        .crm_for(lead.connection())
        .map_err(StepError::UnknownConnection)?;
    if !target.keeps_records() {
        let delivered = gate
            .upsert_contact(
                target,
                ContactUpsert {
                    lead: lead.clone(),
                    known_id: None,
                    write: ContactWrite::Full,
                },
            )
            .await?;
        return Ok(SyncOutcome {
            crm: target.name().to_string(),
            contact_id: delivered.id,
            contact_created: delivered.created,
            note_id: None,
            deal_id: None,
        });
    }
    let written = write_records(w, gate, target, lead, attempt, deadline).await;
    // What the calls just made say about the day's quota (success or not).
    if let Some(usage) = target.take_quota_warning() {
        warn_quota(w, target.name(), &usage).await;
    }
    written
}

/// The person, then the event's note and deal, on a connection that keeps records.
async fn write_records<'a>(
    w: &Worker<'a>,
    gate: &Gate<'a>,
    target: &'a dyn Crm,
    lead: &QueuedLead,
    attempt: &Attempt,
    deadline: DateTime<Utc>,
) -> Result<SyncOutcome, StepError> {
    if lead.event.crm_target.create_deal {
        // A stage the pipeline does not have fails the event before the contact
        // and note are written (not a deal refused after them).
        target.check_deal(lead).await?;
    }
    let contact = write_person(w, gate, target, lead, deadline).await?;
    let mut done = SyncOutcome {
        crm: target.name().to_string(),
        contact_id: contact.id,
        contact_created: contact.created,
        note_id: None,
        deal_id: None,
    };
    // What an earlier attempt recorded as written to this same contact is skipped.
    let prior = attempt
        .prior
        .as_ref()
        .filter(|p| p.crm == done.crm && p.contact_id == done.contact_id);
    let written = write_activities(gate, target, lead, attempt, prior, &mut done).await;
    match written {
        Ok(()) => Ok(done),
        Err(e) => {
            // Keep what this attempt wrote, so that the next one (or a replay) skips it.
            let progressed = prior.map_or(done.note_id.is_some(), |p| {
                p.note_id != done.note_id || p.deal_id != done.deal_id
            });
            if progressed && (done.note_id.is_some() || done.deal_id.is_some()) {
                if let Err(le) = w
                    .ledger
                    .record_progress(&lead.delivery_id(), &done, w.clock.now())
                    .await
                {
                    warn!(error = %le, "could not record what was written; the next attempt looks it up");
                }
            }
            Err(e)
        }
    }
}

/// The event's note and (when asked) deal, each exactly once: skipped when an
/// earlier attempt recorded it, looked up by the event's tag when an earlier
/// attempt may have written it, else written.
async fn write_activities<'a>(
    gate: &Gate<'a>,
    crm: &'a dyn Crm,
    lead: &QueuedLead,
    attempt: &Attempt,
    prior: Option<&SyncOutcome>,
    done: &mut SyncOutcome,
) -> Result<(), StepError> {
    let event_id = &lead.event.event_id;
    let contact_id = done.contact_id.clone();
    let look = attempt.follows_earlier;
    let mut note = prior.and_then(|p| p.note_id.clone());
    if note.is_none() && conversation::is_message(&lead.event) && crm.keeps_conversations() {
        note = Some(write_message(crm, &contact_id, lead).await?);
    }
    if note.is_none() && look {
        note = crm.find_note(&contact_id, event_id).await?;
    }
    done.note_id = Some(match note {
        Some(id) => id,
        None => gate.add_note(crm, &contact_id, lead).await?,
    });
    if lead.event.crm_target.create_deal {
        let mut deal = prior.and_then(|p| p.deal_id.clone());
        if deal.is_none() && look {
            deal = crm.find_deal(&contact_id, event_id).await?;
        }
        done.deal_id = Some(match deal {
            Some(id) => id,
            None => gate.create_deal(crm, &contact_id, lead).await?,
        });
    }
    Ok(())
}

/// One message of a conversation joins the conversation's note, exactly once:
/// the note that already carries the message's tag is its note (a retry, a
/// redelivery); otherwise the message is appended to the latest note, or opens
/// a new one after a silence or when that note is full
/// ([`lb_domain::conversation`]). Messages of one person are one FIFO group, so
/// two never edit a note at once.
async fn write_message(
    crm: &dyn Crm,
    contact_id: &str,
    lead: &QueuedLead,
) -> Result<String, StepError> {
    let event = &lead.event;
    let conversation_tag = conversation::tag(event.conversation_id.as_deref().unwrap_or_default());
    let notes = crm
        .conversation_notes(contact_id, &conversation_tag)
        .await?;
    if let Some((id, _)) = notes
        .iter()
        .find(|(_, body)| lb_domain::note::carries_tag(body, &event.event_id))
    {
        return Ok(id.clone());
    }
    let max = crm.note_max_chars();
    if let Some((id, body)) = notes.last() {
        match conversation::append(body, event, max) {
            conversation::Append::Already => return Ok(id.clone()),
            conversation::Append::Body(new_body) => {
                crm.update_note(id, &new_body).await?;
                return Ok(id.clone());
            }
            conversation::Append::NewNote => {}
        }
    }
    Ok(crm
        .add_note_body(
            contact_id,
            &conversation::new_note(event, max),
            event.occurred_at,
        )
        .await?)
}

/// One alert per connection per day when its daily API quota passes 70%
/// (other tools share the quota; at 100% leads wait for the reset).
async fn warn_quota(w: &Worker<'_>, connection: &str, usage: &crate::ports::QuotaUsage) {
    warn_quota_once(w.ledger, w.alerts, connection, usage, w.clock.now()).await
}

/// One alert per connection per day when its daily API quota passes 70%
/// (claimed across instances on the ledger).
pub(crate) async fn warn_quota_once(
    ledger: &dyn Ledger,
    alerts: &dyn Alerts,
    connection: &str,
    usage: &crate::ports::QuotaUsage,
    now: DateTime<Utc>,
) {
    let key = format!("quota-warning#{connection}#{}", usage.day);
    match ledger.claim_once(&key, now).await {
        Ok(true) => {}
        Ok(false) => return,
        Err(e) => {
            warn!(error = %e, "could not claim the quota warning; not alerting");
            return;
        }
    }
    let percent = usage.used * 100 / usage.limit.max(1);
    warn!(
        connection,
        used = usage.used,
        limit = usage.limit,
        percent,
        "daily API quota past the warning threshold"
    );
    let subject = format!("[leadbridge] {connection} has used {percent}% of its daily API quota");
    let message = format!(
        "The connection {connection} has made {} of the {} API calls its CRM account allows \
         today ({}, {percent}%). The quota is shared with every other tool of the account.\n\n\
         When it is spent, leads are not lost: they wait in the queue and are written after \
         the quota resets (HubSpot: midnight in the account's time zone).\n\n\
         What to do: find what else uses the account's API today, or raise the account's \
         limit; leadbridge's own calls per lead are in `make bench`.",
        usage.used, usage.limit, usage.day
    );
    if let Err(e) = alerts.publish(&subject, &message).await {
        warn!(error = %e, "quota warning not published");
    }
}

/// What the person's lock holds: given back on every path.
#[derive(Default)]
struct Held {
    records: Vec<String>,
    claims: Vec<String>,
}

/// Finds or creates the person's one record and writes the event to it, under
/// the person's lock (see [`lb_domain::identity::Resolution`] for the rule).
async fn write_person<'a>(
    w: &Worker<'a>,
    gate: &Gate<'a>,
    crm: &'a dyn Crm,
    lead: &QueuedLead,
    deadline: DateTime<Utc>,
) -> Result<ContactRef, StepError> {
    let name = crm.name();
    let keys = lead.event.identities();
    let hashes: Vec<String> = keys.iter().map(ContactKey::hashed).collect();
    let memory = gate.identities(crm, &hashes).await?;
    let known = identity::resolve(&memory);
    let holder = lead.delivery_id();
    let mut held = Held::default();
    let claim: Vec<String> = known.unknown.iter().map(|&i| hashes[i].clone()).collect();
    let last_applied = lock(
        w,
        name,
        &holder,
        known.record.clone(),
        claim,
        deadline,
        &mut held,
    )
    .await?;
    let written = write_locked(
        w,
        gate,
        crm,
        lead,
        &keys,
        known.clone(),
        last_applied,
        &holder,
        deadline,
        &mut held,
    )
    .await;
    let now = w.clock.now();
    match written {
        Ok((contact, applied, mut others)) => {
            // The CRM wrote elsewhere than the record asked for: that one is gone.
            let replaces = known
                .record
                .clone()
                .filter(|r| *r != contact.id && !others.contains(r));
            let link: Vec<String> = hashes
                .iter()
                .zip(&memory)
                .filter(|(_, m)| m.is_none() || (m.is_some() && *m == &replaces))
                .map(|(h, _)| h.clone())
                .collect();
            let elsewhere = w
                .ledger
                .release_person(
                    &PersonRelease {
                        crm: name.to_string(),
                        holder: holder.clone(),
                        written: Some(Written {
                            record: contact.id.clone(),
                            link,
                            applied,
                            replaces,
                            created: contact.created,
                        }),
                        records: held.records,
                        claims: held.claims,
                        held_until: deadline,
                    },
                    now,
                )
                .await?;
            others.extend(elsewhere.into_iter().map(|e| e.record));
            others.retain(|o| *o != contact.id);
            others.sort();
            others.dedup();
            if !others.is_empty() {
                report_conflict(w, name, lead, &keys, &memory, &contact.id, others).await;
            }
            Ok(contact)
        }
        Err(e) => {
            let release = PersonRelease {
                crm: name.to_string(),
                holder,
                written: None,
                records: held.records,
                claims: held.claims,
                held_until: deadline,
            };
            if let Err(le) = w.ledger.release_person(&release, now).await {
                warn!(error = %le, "could not release the person's lock; it runs out at the deadline");
            }
            Err(e)
        }
    }
}

/// Takes (more of) the person's lock; the `last_applied` of the record.
async fn lock(
    w: &Worker<'_>,
    crm: &str,
    holder: &str,
    record: Option<String>,
    claim: Vec<String>,
    until: DateTime<Utc>,
    held: &mut Held,
) -> Result<Option<DateTime<Utc>>, StepError> {
    let lock = PersonLock {
        crm: crm.to_string(),
        holder: holder.to_string(),
        until,
        record: record.clone(),
        claim: claim.clone(),
    };
    match w.ledger.lock_person(&lock, w.clock.now()).await? {
        Locked::Busy => Err(StepError::ContactBusy),
        Locked::Held { last_applied } => {
            held.records.extend(record);
            for c in claim {
                if !held.claims.contains(&c) {
                    held.claims.push(c);
                }
            }
            Ok(last_applied)
        }
    }
}

/// The write itself, with the lock held: `(contact, occurred_at applied, other records)`.
#[allow(clippy::too_many_arguments)]
async fn write_locked<'a>(
    w: &Worker<'a>,
    gate: &Gate<'a>,
    crm: &'a dyn Crm,
    lead: &QueuedLead,
    keys: &[ContactKey],
    known: identity::Resolution,
    mut last_applied: Option<DateTime<Utc>>,
    holder: &str,
    deadline: DateTime<Utc>,
    held: &mut Held,
) -> Result<(ContactRef, Option<DateTime<Utc>>, Vec<String>), StepError> {
    let name = crm.name();
    let mut record = known.record;
    let mut others = known.others;
    // Nobody known: ask the CRM by every identity it can search (an upsert by
    // email already matches the email by itself).
    let searchable = known
        .unknown
        .iter()
        .any(|&i| !matches!(keys[i], ContactKey::Email(_)));
    if record.is_none() && searchable {
        let mut found = vec![None; keys.len()];
        for (i, id) in gate.find_contacts(crm, lead).await? {
            if let Some(slot) = found.get_mut(i) {
                *slot = Some(id);
            }
        }
        let r = identity::resolve(&found);
        if let Some(id) = &r.record {
            last_applied = lock(
                w,
                name,
                holder,
                Some(id.clone()),
                Vec::new(),
                deadline,
                held,
            )
            .await?;
        }
        record = r.record;
        others.extend(r.others);
    }
    let occurred_at = lead.event.occurred_at;
    for round in 0..2 {
        // An event older than one already applied to the record writes no field.
        let stale = record.is_some() && last_applied.is_some_and(|t| occurred_at < t);
        let write = if stale {
            info!(
                event_id = lead.event.event_id.as_str(),
                "older than the last applied event; fields left as they are"
            );
            ContactWrite::IdentityOnly
        } else {
            ContactWrite::Full
        };
        let item = ContactUpsert {
            lead: lead.clone(),
            known_id: record.clone(),
            write,
        };
        match gate.upsert_contact(crm, item).await {
            Ok(contact) => return Ok((contact, (!stale).then_some(occurred_at), others)),
            // Another record holds the event's email: the email's record wins the write.
            Err(CrmError {
                taken_by: Some(owner),
                ..
            }) if round == 0 => {
                last_applied = lock(
                    w,
                    name,
                    holder,
                    Some(owner.clone()),
                    Vec::new(),
                    deadline,
                    held,
                )
                .await?;
                others.extend(record.replace(owner));
            }
            Err(e) => return Err(e.into()),
        }
    }
    unreachable!("the second round returns")
}

/// One person, several records: recorded on the ledger, alerted once per set of records.
async fn report_conflict(
    w: &Worker<'_>,
    crm: &str,
    lead: &QueuedLead,
    keys: &[ContactKey],
    memory: &[Option<String>],
    written_to: &str,
    others: Vec<String>,
) {
    let detail = keys
        .iter()
        .zip(memory)
        .map(|(k, m)| {
            format!(
                "{} {} → {}",
                k.kind(),
                k.masked(),
                m.as_deref().unwrap_or("(new)")
            )
        })
        .collect::<Vec<_>>()
        .join(", ");
    let conflict = IdentityConflict {
        crm: crm.to_string(),
        written_to: written_to.to_string(),
        others,
        delivery_id: lead.delivery_id(),
        detail,
    };
    warn!(
        code = "possible_duplicate",
        crm,
        written_to,
        others = ?conflict.others,
        "one person, several CRM records"
    );
    match w.ledger.record_conflict(&conflict, w.clock.now()).await {
        Ok(true) => {
            let (subject, message) = crate::alert::render_possible_duplicate(&conflict);
            if let Err(e) = w.alerts.publish(&subject, &message).await {
                warn!(error = %e, "could not publish the possible_duplicate alert");
            }
        }
        Ok(false) => {}
        Err(e) => warn!(error = %e, "could not record the possible duplicate"),
    }
}

async fn hand_back(
    w: &Worker<'_>,
    m: &InboundMessage,
    delay: Duration,
    reason: FailureReason,
) -> ItemOutcome {
    crate::telemetry::retried(reason.crm.as_deref().unwrap_or("default"));
    if let Err(e) = w.queue.retry_later(m.lane, &m.receipt_handle, delay).await {
        // It comes back after the queue's visibility timeout instead.
        warn!(error = %e, "could not set the retry delay");
    }
    ItemOutcome::RetryLater { delay, reason }
}

/// The ledger failed for this lead: a refusal of the request itself (an item
/// DynamoDB will never take) is a dead letter, anything else is retried.
async fn ledger_failure(
    w: &Worker<'_>,
    m: &InboundMessage,
    lead: &QueuedLead,
    attempt: u32,
    e: PortError,
) -> ItemOutcome {
    if !e.is_permanent() {
        return retry_infra(w, m, attempt, e).await;
    }
    let reason = StepError::Port(e).reason();
    warn!(code = %reason.code, "the ledger refused this lead; dead-lettering");
    dead_letter(w, m, lead, attempt, reason, false).await
}

async fn retry_infra(
    w: &Worker<'_>,
    m: &InboundMessage,
    attempt: u32,
    e: PortError,
) -> ItemOutcome {
    let err = StepError::Port(e);
    let delay = {
        let mut rng = rand::rng();
        w.policy.delay(attempt.max(1), None, &mut rng)
    };
    warn!(error = %err.reason().message, delay_ms = delay.as_millis() as u64, "infrastructure error; retrying later");
    hand_back(w, m, delay, err.reason()).await
}

/// The reason as the ledger keeps it (its last error, each attempt's answer):
/// the CRM's text scrubbed of the lead's own identities, which the ledger
/// outlives (the payload is dropped once the event syncs).
fn scrubbed(reason: &FailureReason, lead: &QueuedLead) -> FailureReason {
    let identities = crate::status::lead_identities(lead);
    let known: Vec<&str> = identities.iter().map(String::as_str).collect();
    FailureReason {
        message: lb_domain::mask::scrub(&reason.message, &known),
        ..reason.clone()
    }
}

async fn dead_letter(
    w: &Worker<'_>,
    m: &InboundMessage,
    lead: &QueuedLead,
    attempt: u32,
    reason: FailureReason,
    record_in_ledger: bool,
) -> ItemOutcome {
    let delivery = lead.delivery_id();
    let event_id = delivery.as_str();
    let letter = DeadLetter {
        body: m.body.clone(),
        group_id: lead.group_id(),
        dedup_id: format!("{}-{}", event_id, attempt),
        event_id: Some(event_id.to_string()),
        attempts: attempt,
        reason: reason.clone(),
    };
    if let Err(e) = w.queue.dead_letter(&letter).await {
        return retry_infra(w, m, attempt, e).await;
    }
    if record_in_ledger {
        // The dlq-alerter records it too; doing it here keeps the ledger right even if the alerter lags.
        if let Err(e) = w
            .ledger
            .mark_dead(
                event_id,
                &scrubbed(&reason, lead),
                Some(&m.body),
                w.clock.now(),
            )
            .await
        {
            warn!(event_id, error = %e, "dead-lettered, but the ledger was not updated (the alerter will)");
        }
    }
    warn!(
        event_id,
        attempt,
        class = reason.class.as_str(),
        code = %reason.code,
        http_status = ?reason.http_status,
        "lead dead-lettered"
    );
    ItemOutcome::DeadLettered(reason)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fakes::*;
    use crate::ports::LedgerStatus;

    static NO_HOOKS: Hooks = Hooks::NONE;

    struct Env {
        ledger: InMemoryLedger,
        queue: InMemoryQueue,
        crm: FakeCrm,
        alerts: RecordingAlerts,
    }

    impl Env {
        /// Every scenario runs through the batch gate: the fake CRM takes batches.
        fn new() -> Self {
            let env = Self::one_at_a_time();
            env.crm.batch_up_to(100);
            env
        }
        /// A CRM without batch calls.
        fn one_at_a_time() -> Self {
            Self {
                ledger: InMemoryLedger::default(),
                queue: InMemoryQueue::default(),
                crm: FakeCrm::default(),
                alerts: RecordingAlerts::default(),
            }
        }
        fn worker(&self) -> Worker<'_> {
            Worker {
                ledger: &self.ledger,
                queue: &self.queue,
                crm: &self.crm,
                alerts: &self.alerts,
                clock: &SystemClock,
                policy: RetryPolicy {
                    base: Duration::from_millis(10),
                    cap: Duration::from_millis(100),
                    max_attempts: 3,
                },
                safety_margin: Duration::from_millis(100),
                hooks: &NO_HOOKS,
            }
        }
        async fn run(&self, msgs: &[InboundMessage]) -> Vec<ItemOutcome> {
            sync_batch(
                &self.worker(),
                msgs,
                Utc::now() + chrono::Duration::seconds(30),
            )
            .await
        }
    }

    fn msg(id: &str, lead: &QueuedLead) -> InboundMessage {
        InboundMessage {
            message_id: id.into(),
            receipt_handle: format!("rh-{id}"),
            body: lead.to_json(),
            group_id: Some(lead.contact_key.hashed()),
            receive_count: 1,
            lane: lead.lane,
        }
    }

    /// One WhatsApp message of a person (wa id 16505551234) at `at`.
    fn wa_message(id: &str, at: &str, text: &str) -> QueuedLead {
        let event: lb_domain::LeadEvent = serde_json::from_value(serde_json::json!({
            "event_id": id, "event_type": "message.received", "occurred_at": at,
            "bot_id": "bot_wa", "conversation_id": "whatsapp:106540352242922:16505551234",
            "visitor": {"wa_id": "16505551234", "phone": "+16505551234", "name": "Sheena Nelson"},
            "context": {"channel": "whatsapp"},
            "transcript": {"lines": [{"at": at, "from": "visitor", "text": text}]}
        }))
        .unwrap();
        QueuedLead::new(event, Utc::now()).unwrap()
    }

    /// Ten people, each with an email and a phone.
    fn ten_people() -> Vec<InboundMessage> {
        (0..10)
            .map(|i| {
                let lead = person(
                    &format!("evt_{i}"),
                    Some(&format!("p{i}@b.co")),
                    Some(&format!("+1415555{:04}", 2600 + i)),
                    None,
                );
                msg(&format!("m{i}"), &lead)
            })
            .collect()
    }

    #[tokio::test]
    async fn one_invocations_leads_meet_in_one_call_per_kind() {
        let env = Env::new();
        let out = env.run(&ten_people()).await;
        assert!(
            out.iter().all(|o| matches!(o, ItemOutcome::Synced(_))),
            "{out:?}"
        );
        assert_eq!(
            env.crm.batches(),
            [("find", 10), ("contacts", 10), ("notes", 10)],
            "one search, one upsert and one note call for ten people"
        );
        assert_eq!(
            env.ledger.identity_reads(),
            1,
            "and one read of the ledger's identity memory"
        );
        assert_eq!(env.crm.contact_count(), 10);
        assert_eq!(env.crm.note_count(), 10);
        // Redelivered, the batch costs the CRM nothing.
        let calls = env.crm.calls();
        let again = env.run(&ten_people()).await;
        assert!(
            again.iter().all(|o| matches!(o, ItemOutcome::AlreadyDone)),
            "{again:?}"
        );
        assert_eq!(env.crm.calls(), calls);
    }

    #[tokio::test]
    async fn leads_without_a_phone_wait_for_the_ones_still_searching_and_share_the_upsert() {
        let env = Env::new();
        let msgs: Vec<InboundMessage> = (0..10)
            .map(|i| {
                let phone = format!("+1415555{:04}", 2600 + i);
                let lead = person(
                    &format!("evt_{i}"),
                    Some(&format!("p{i}@b.co")),
                    (i % 2 == 0).then_some(phone.as_str()),
                    None,
                );
                msg(&format!("m{i}"), &lead)
            })
            .collect();
        let out = env.run(&msgs).await;
        assert!(
            out.iter().all(|o| matches!(o, ItemOutcome::Synced(_))),
            "{out:?}"
        );
        assert_eq!(
            env.crm.batches(),
            [("find", 5), ("contacts", 10), ("notes", 10)]
        );
    }

    #[tokio::test]
    async fn batches_never_exceed_the_crms_limit() {
        let env = Env::one_at_a_time();
        env.crm.batch_up_to(4);
        let out = env.run(&ten_people()).await;
        assert!(
            out.iter().all(|o| matches!(o, ItemOutcome::Synced(_))),
            "{out:?}"
        );
        let sizes: Vec<usize> = env
            .crm
            .batches()
            .iter()
            .filter(|(k, _)| *k == "contacts")
            .map(|(_, n)| *n)
            .collect();
        assert_eq!(sizes.iter().sum::<usize>(), 10);
        assert!(sizes.iter().all(|&n| n <= 4), "{sizes:?}");
        assert_eq!(env.crm.contact_count(), 10);
    }

    #[tokio::test]
    async fn a_crm_without_batch_calls_gets_each_lead_on_its_own() {
        let env = Env::one_at_a_time();
        let out = env.run(&ten_people()).await;
        assert!(
            out.iter().all(|o| matches!(o, ItemOutcome::Synced(_))),
            "{out:?}"
        );
        assert!(env.crm.batches().is_empty());
        assert_eq!(env.crm.note_count(), 10);
    }

    #[tokio::test]
    async fn one_lead_the_crm_refuses_in_a_batch_fails_alone_with_the_crms_error() {
        let env = Env::new();
        env.crm.refuse_email("p3@b.co");
        let out = env.run(&ten_people()).await;
        for (i, o) in out.iter().enumerate() {
            if i == 3 {
                assert!(
                    matches!(o, ItemOutcome::DeadLettered(r) if r.message.contains("Property values were not valid")),
                    "{o:?}"
                );
            } else {
                assert!(matches!(o, ItemOutcome::Synced(_)), "{i}: {o:?}");
            }
        }
        assert_eq!(env.crm.batches()[1], ("contacts", 10));
        assert_eq!(env.crm.batches()[2], ("notes", 9));
        assert_eq!(env.queue.dead_letters().len(), 1);
    }

    #[tokio::test]
    async fn two_events_of_one_person_in_one_batch_are_one_contact_with_both_notes() {
        let env = Env::new();
        let first = person("evt_a", Some("same@b.co"), None, None);
        let second = person("evt_b", Some("same@b.co"), Some("+14155552671"), None);
        // Different groups (as a phone-keyed and an email-keyed sender would make).
        let mut m2 = msg("m2", &second);
        m2.group_id = Some("another-group".into());
        let out = env.run(&[msg("m1", &first), m2.clone()]).await;
        let synced = out
            .iter()
            .filter(|o| matches!(o, ItemOutcome::Synced(_)))
            .count();
        let busy = out
            .iter()
            .filter(|o| matches!(o, ItemOutcome::RetryLater { reason, .. } if reason.code == "contact_busy"))
            .count();
        assert_eq!(
            (synced, busy),
            (1, 1),
            "one writes, the other waits: {out:?}"
        );
        // The one that waited comes back and joins the same contact.
        let waiting = if matches!(out[0], ItemOutcome::Synced(_)) {
            m2
        } else {
            msg("m1", &first)
        };
        let out = env.run(&[waiting]).await;
        assert!(
            matches!(&out[0], ItemOutcome::Synced(o) if !o.contact_created),
            "{out:?}"
        );
        assert_eq!(env.crm.contact_count(), 1);
        assert_eq!(env.crm.note_count(), 2);
    }

    #[tokio::test]
    async fn a_quota_past_seventy_percent_is_alerted_once_a_day_across_instances() {
        let env = Env::new();
        let usage = crate::ports::QuotaUsage {
            used: 180_000,
            limit: 250_000,
            day: "2026-11-29".into(),
        };
        env.crm.report_quota(usage.clone());
        env.run(&[msg("m1", &sample_lead("evt_1", "a@b.co"))]).await;
        // another worker instance reports the same day
        env.crm.report_quota(usage);
        env.run(&[msg("m2", &sample_lead("evt_2", "b@b.co"))]).await;
        let sent = env.alerts.sent();
        let quota: Vec<_> = sent
            .iter()
            .filter(|(s, _)| s.contains("daily API quota"))
            .collect();
        assert_eq!(quota.len(), 1, "{sent:?}");
        assert!(quota[0].0.contains("fake has used 72%"), "{}", quota[0].0);
        assert!(
            quota[0].1.contains("180000 of the 250000"),
            "{}",
            quota[0].1
        );
    }

    #[tokio::test]
    async fn messages_of_one_conversation_are_one_contact_and_one_note_holding_each_once() {
        let env = Env::new();
        let a = wa_message("wa:1", "2026-05-04T11:00:00Z", "Hi");
        let b = wa_message("wa:2", "2026-05-04T11:05:00Z", "Do you ship to Lisbon?");
        let c = wa_message("wa:3", "2026-05-04T11:06:00Z", "Thanks");
        env.run(&[msg("m1", &a)]).await;
        env.run(&[msg("m2", &b), msg("m3", &c)]).await;
        // an attempt that follows one which wrote the note but crashed before
        // the ledger heard of it finds the message in the note and adds nothing
        assert_eq!(write_message(&env.crm, "c1", &b).await.ok().unwrap(), "cn1");
        assert_eq!(write_message(&env.crm, "c1", &a).await.ok().unwrap(), "cn1");
        assert_eq!(env.crm.contact_count(), 1);
        assert_eq!(env.crm.note_count(), 0, "no per-message notes");
        let bodies = env.crm.conversation_bodies("c1");
        assert_eq!(bodies.len(), 1, "{bodies:?}");
        for text in ["Hi", "Do you ship to Lisbon?", "Thanks"] {
            assert_eq!(
                bodies[0].matches(&format!(": {text}</p>")).count(),
                1,
                "{text}: {}",
                bodies[0]
            );
        }
    }

    #[tokio::test]
    async fn a_message_after_a_long_silence_opens_a_new_note_and_a_crash_after_writing_adds_nothing(
    ) {
        let env = Env::new();
        env.run(&[msg("m1", &wa_message("wa:1", "2026-05-04T11:00:00Z", "Hi"))])
            .await;
        let later = wa_message("wa:2", "2026-05-04T15:00:00Z", "Back again");
        env.run(&[msg("m2", &later)]).await;
        // a crash after the new note was written: the retry finds it, not the older note
        assert_eq!(
            write_message(&env.crm, "c1", &later).await.ok().unwrap(),
            "cn2"
        );
        let bodies = env.crm.conversation_bodies("c1");
        assert_eq!(bodies.len(), 2, "{bodies:?}");
        assert_eq!(
            bodies.iter().filter(|b| b.contains("Back again")).count(),
            1
        );
    }

    #[tokio::test]
    async fn each_delivery_goes_to_its_own_connection_and_a_webhook_gets_one_call() {
        let hubspot = std::sync::Arc::new(FakeCrm::named("hubspot", true));
        let hook = std::sync::Arc::new(FakeCrm::named("zapier", false));
        let mut set = crate::ports::CrmSet::default();
        set.add(hubspot.clone());
        set.add(hook.clone());
        let env = Env::new();
        let w = Worker {
            crm: &set,
            ..env.worker()
        };
        let lead = sample_lead("evt_1", "a@b.co");
        let to = |c: &str| {
            lead.for_delivery(lb_domain::Delivery {
                connection: c.into(),
                lead_source: None,
                object: "contact".into(),
                split_name: None,
            })
        };
        let (a, b, c) = (to("hubspot"), to("zapier"), to("salesforce"));
        let out = sync_batch(
            &w,
            &[
                msg("m1", &a),
                msg("m2", &b),
                msg("m3", &c),
                msg("m4", &lead),
            ],
            Utc::now() + chrono::Duration::seconds(30),
        )
        .await;
        assert!(
            matches!(&out[0], ItemOutcome::Synced(o) if o.crm == "hubspot" && o.note_id.is_some())
        );
        assert!(
            matches!(&out[1], ItemOutcome::Synced(o) if o.crm == "zapier" && o.note_id.is_none()),
            "{:?}",
            out[1]
        );
        assert_eq!(hook.calls(), 1, "one delivery call, no note or deal calls");
        assert_eq!(hubspot.note_count(), 1);
        for (i, expected) in [(2, "salesforce"), (3, "names no connection")] {
            match &out[i] {
                ItemOutcome::DeadLettered(r) => {
                    assert_eq!(r.code, "unknown_connection");
                    assert!(r.message.contains(expected), "{}", r.message);
                }
                other => panic!("{other:?}"),
            }
        }
        let ledger = &env.ledger;
        assert_eq!(
            ledger.record("evt_1@hubspot").unwrap().status,
            LedgerStatus::Synced
        );
        assert_eq!(
            ledger.record("evt_1@zapier").unwrap().status,
            LedgerStatus::Synced
        );
        assert_eq!(
            ledger.record("evt_1@salesforce").unwrap().status,
            LedgerStatus::Dead
        );
    }

    #[tokio::test]
    async fn a_lead_becomes_one_contact_and_one_note() {
        let env = Env::new();
        let lead = sample_lead("evt_1", "a@b.co");
        let out = env.run(&[msg("m1", &lead)]).await;
        assert!(
            matches!(&out[0], ItemOutcome::Synced(o) if o.contact_created && o.note_id.is_some())
        );
        assert_eq!(env.crm.contact_count(), 1);
        assert_eq!(env.crm.note_count(), 1);
        assert_eq!(
            env.ledger.record("evt_1").unwrap().status,
            LedgerStatus::Synced
        );
    }

    #[tokio::test]
    async fn a_redelivered_synced_event_does_not_touch_the_crm() {
        let env = Env::new();
        let lead = sample_lead("evt_1", "a@b.co");
        env.run(&[msg("m1", &lead)]).await;
        let calls = env.crm.calls();
        let out = env.run(&[msg("m2", &lead)]).await;
        assert_eq!(out[0], ItemOutcome::AlreadyDone);
        assert_eq!(env.crm.calls(), calls);
        assert_eq!(env.crm.note_count(), 1);
    }

    #[tokio::test]
    async fn transient_error_schedules_a_retry_and_records_it() {
        let env = Env::new();
        env.crm.fail_next(transient(503));
        let lead = sample_lead("evt_1", "a@b.co");
        let out = env.run(&[msg("m1", &lead)]).await;
        assert!(matches!(&out[0], ItemOutcome::RetryLater { .. }));
        assert_eq!(env.queue.retries().len(), 1);
        let rec = env.ledger.record("evt_1").unwrap();
        assert_eq!(rec.status, LedgerStatus::Retrying);
        assert_eq!(rec.last_error.unwrap().http_status, Some(503));
        // the retry succeeds
        let out = env
            .run(&[InboundMessage {
                receive_count: 2,
                ..msg("m1", &lead)
            }])
            .await;
        assert!(matches!(&out[0], ItemOutcome::Synced(_)));
        assert_eq!(env.crm.contact_count(), 1);
    }

    #[tokio::test]
    async fn a_crash_after_the_note_does_not_write_a_second_note() {
        let env = Env::new();
        let lead = sample_lead("evt_1", "a@b.co");
        env.ledger.fail_next_complete();
        let out = env.run(&[msg("m1", &lead)]).await;
        assert!(matches!(&out[0], ItemOutcome::RetryLater { .. }));
        assert_eq!(env.crm.note_count(), 1);
        // the lease of the failed attempt is over when the message returns
        env.ledger.expire_leases();
        let out = env
            .run(&[InboundMessage {
                receive_count: 2,
                ..msg("m1", &lead)
            }])
            .await;
        assert!(matches!(&out[0], ItemOutcome::Synced(_)), "{out:?}");
        assert_eq!(env.crm.note_count(), 1);
        assert_eq!(env.crm.contact_count(), 1);
    }

    #[tokio::test]
    async fn permanent_error_dead_letters_with_the_crm_message() {
        let env = Env::new();
        env.crm
            .fail_next(permanent("Property \"foo\" does not exist"));
        let lead = sample_lead("evt_1", "a@b.co");
        let out = env.run(&[msg("m1", &lead)]).await;
        assert!(matches!(&out[0], ItemOutcome::DeadLettered(r) if r.message.contains("foo")));
        let dl = env.queue.dead_letters();
        assert_eq!(dl.len(), 1);
        assert_eq!(dl[0].reason.code, "crm_rejected");
        assert_eq!(
            env.ledger.record("evt_1").unwrap().status,
            LedgerStatus::Dead
        );
    }

    #[tokio::test]
    async fn transient_errors_past_the_attempt_cap_dead_letter() {
        let env = Env::new();
        let lead = sample_lead("evt_1", "a@b.co");
        for attempt in 1..=3u32 {
            env.crm.fail_next(transient(503));
            let out = env
                .run(&[InboundMessage {
                    receive_count: attempt,
                    ..msg("m1", &lead)
                }])
                .await;
            if attempt < 3 {
                assert!(matches!(&out[0], ItemOutcome::RetryLater { .. }));
                env.ledger.expire_leases();
            } else {
                assert!(
                    matches!(&out[0], ItemOutcome::DeadLettered(r) if r.code == "retries_exhausted")
                );
            }
        }
    }

    #[tokio::test]
    async fn rate_limit_reset_is_honoured() {
        let env = Env::new();
        env.crm.fail_next(CrmError {
            retry_after: Some(Duration::from_secs(7)),
            code: None,
            class: ErrorClass::RateLimited,
            ..transient(429)
        });
        let out = env.run(&[msg("m1", &sample_lead("evt_1", "a@b.co"))]).await;
        assert!(
            matches!(&out[0], ItemOutcome::RetryLater { delay, .. } if *delay >= Duration::from_secs(7))
        );
    }

    #[tokio::test]
    async fn rate_limiting_past_the_attempt_cap_delays_the_lead_instead_of_killing_it() {
        let env = Env::new();
        let lead = sample_lead("evt_1", "a@b.co");
        for attempt in 1..=4u32 {
            env.crm.fail_next(CrmError {
                class: ErrorClass::RateLimited,
                ..transient(429)
            });
            let out = env
                .run(&[InboundMessage {
                    receive_count: attempt,
                    ..msg("m1", &lead)
                }])
                .await;
            assert!(
                matches!(&out[0], ItemOutcome::RetryLater { .. }),
                "attempt {attempt}: {out:?}"
            );
            env.ledger.expire_leases();
        }
        let out = env
            .run(&[InboundMessage {
                receive_count: 5,
                ..msg("m1", &lead)
            }])
            .await;
        assert!(matches!(&out[0], ItemOutcome::Synced(_)));
    }

    #[tokio::test]
    async fn after_a_failure_later_messages_of_the_same_group_are_held() {
        let env = Env::new();
        let a1 = sample_lead("evt_1", "a@b.co");
        let a2 = sample_lead("evt_2", "a@b.co");
        let b1 = sample_lead("evt_3", "b@b.co");
        env.crm.fail_next(transient(503));
        let out = env
            .run(&[msg("m1", &a1), msg("m2", &b1), msg("m3", &a2)])
            .await;
        assert!(matches!(&out[0], ItemOutcome::RetryLater { .. }));
        assert!(matches!(&out[1], ItemOutcome::Synced(_)));
        assert_eq!(out[2], ItemOutcome::HeldForOrder);
        // the held message is released at once; the failed one after its backoff
        let retries = env.queue.retries();
        assert_eq!(retries.len(), 2);
        assert_eq!(retries[1], ("rh-m3".to_string(), Duration::ZERO));
    }

    #[tokio::test]
    async fn poison_message_is_dead_lettered_not_retried_forever() {
        let env = Env::new();
        let m = InboundMessage {
            message_id: "m1".into(),
            receipt_handle: "rh".into(),
            body: "{not json".into(),
            group_id: Some("g".into()),
            receive_count: 1,
            lane: lb_domain::Lane::Realtime,
        };
        let out = env.run(&[m]).await;
        assert!(matches!(&out[0], ItemOutcome::DeadLettered(r) if r.code == "poison_message"));
    }

    #[tokio::test]
    async fn a_lead_the_ledger_refuses_is_dead_lettered_not_retried_forever() {
        let env = Env::new();
        env.ledger.refuse_everything(true);
        let out = env.run(&[msg("m1", &sample_lead("evt_1", "a@b.co"))]).await;
        assert!(
            matches!(&out[0], ItemOutcome::DeadLettered(r) if r.code == "ledger_rejected"),
            "{out:?}"
        );
        assert_eq!(env.crm.calls(), 0);
        assert_eq!(env.queue.dead_letters().len(), 1);
    }

    /// The identity memory of one invocation is read in one call: when that
    /// read fails, or answers short, no lead of the batch is written and each
    /// is retried.
    #[tokio::test]
    async fn a_failed_or_short_identity_read_writes_nothing_and_retries_every_lead() {
        for fault in [
            crate::fakes::IdentitiesFault::Fail,
            crate::fakes::IdentitiesFault::Short,
        ] {
            let env = Env::new();
            env.ledger.identities_answer(Some(fault));
            let out = env.run(&ten_people()).await;
            assert!(
                out.iter()
                    .all(|o| matches!(o, ItemOutcome::RetryLater { .. })),
                "{fault:?}: {out:?}"
            );
            assert_eq!(
                env.ledger.identity_reads(),
                1,
                "{fault:?}: one read for all"
            );
            assert_eq!(env.crm.contact_count(), 0, "{fault:?}");
            env.ledger.identities_answer(None);
            let out = env.run(&ten_people()).await;
            assert!(
                out.iter().all(|o| matches!(o, ItemOutcome::Synced(_))),
                "{fault:?}, retried: {out:?}"
            );
            assert_eq!(env.crm.contact_count(), 10, "{fault:?}");
        }
    }

    #[tokio::test]
    async fn ledger_outage_leaves_the_crm_untouched_and_retries() {
        let env = Env::new();
        env.ledger.set_failing(true);
        let out = env.run(&[msg("m1", &sample_lead("evt_1", "a@b.co"))]).await;
        assert!(matches!(&out[0], ItemOutcome::RetryLater { .. }));
        assert_eq!(env.crm.calls(), 0);
    }

    #[tokio::test]
    async fn phone_only_lead_reuses_the_contact_remembered_for_that_phone() {
        let env = Env::new();
        let with_email_and_phone = sample_lead_with_phone("evt_1", Some("a@b.co"), "+14155552671");
        let phone_only = sample_lead_with_phone("evt_2", None, "+1 415 555 2671");
        env.run(&[msg("m1", &with_email_and_phone)]).await;
        env.run(&[msg("m2", &phone_only)]).await;
        assert_eq!(env.crm.contact_count(), 1);
        assert_eq!(env.crm.note_count(), 2);
    }

    fn lead_at(event_id: &str, email: &str, occurred_at: &str) -> QueuedLead {
        let mut l = sample_lead(event_id, email);
        l.event.occurred_at = occurred_at.parse().unwrap();
        QueuedLead::new(l.event, Utc::now()).unwrap()
    }

    #[tokio::test]
    async fn an_older_event_arriving_late_adds_its_note_but_leaves_the_fields_of_the_newer_one() {
        let env = Env::new();
        let newer = lead_at("evt_new", "a@b.co", "2026-05-04T12:00:00Z");
        let older = lead_at("evt_old", "a@b.co", "2026-05-04T11:00:00Z");
        env.run(&[msg("m1", &newer)]).await;
        let out = env.run(&[msg("m2", &older)]).await;
        assert!(matches!(&out[0], ItemOutcome::Synced(_)));
        assert_eq!(env.crm.fields_from("a@b.co").as_deref(), Some("evt_new"));
        assert_eq!(env.crm.note_count(), 2);
        // and a still newer one writes its fields
        env.run(&[msg(
            "m3",
            &lead_at("evt_newest", "a@b.co", "2026-05-04T13:00:00Z"),
        )])
        .await;
        assert_eq!(env.crm.fields_from("a@b.co").as_deref(), Some("evt_newest"));
    }

    #[tokio::test]
    async fn a_phone_only_lead_waits_while_another_event_of_that_person_creates_the_contact() {
        let env = Env::new();
        let lead = sample_lead_with_phone("evt_2", None, "+14155552671");
        let now = Utc::now();
        let claimed = env
            .ledger
            .lock_person(
                &PersonLock {
                    crm: "fake".into(),
                    holder: "evt_1".into(),
                    until: now + chrono::Duration::seconds(30),
                    record: None,
                    claim: vec![lead.contact_key.hashed()],
                },
                now,
            )
            .await
            .unwrap();
        assert!(matches!(claimed, Locked::Held { .. }));
        let out = env.run(&[msg("m2", &lead)]).await;
        assert!(
            matches!(&out[0], ItemOutcome::RetryLater { reason, .. } if reason.code == "contact_busy"),
            "{out:?}"
        );
        assert_eq!(env.crm.contact_count(), 0, "no second contact was created");
    }

    /// A lead with any of the three identities (and an `occurred_at`).
    fn person(
        event_id: &str,
        email: Option<&str>,
        phone: Option<&str>,
        wa: Option<&str>,
    ) -> QueuedLead {
        sample_person(event_id, email, phone, wa)
    }

    fn at(mut lead: QueuedLead, occurred_at: &str) -> QueuedLead {
        lead.event.occurred_at = occurred_at.parse().unwrap();
        QueuedLead::new(lead.event, Utc::now()).unwrap()
    }

    #[tokio::test]
    async fn a_phone_first_person_who_gives_an_email_stays_one_contact_that_gains_it() {
        let env = Env::new();
        env.run(&[msg(
            "m1",
            &person("evt_1", None, Some("+14155552671"), None),
        )])
        .await;
        let out = env
            .run(&[msg(
                "m2",
                &person("evt_2", Some("a@b.co"), Some("+14155552671"), None),
            )])
            .await;
        assert!(
            matches!(&out[0], ItemOutcome::Synced(o) if !o.contact_created),
            "{out:?}"
        );
        let contacts = env.crm.contacts();
        assert_eq!(contacts.len(), 1, "{contacts:?}");
        assert_eq!(
            contacts[0].1.as_deref(),
            Some("a@b.co"),
            "the contact gained the email"
        );
        // and an email-only event later finds the same record
        env.run(&[msg("m3", &person("evt_3", Some("a@b.co"), None, None))])
            .await;
        assert_eq!(env.crm.contact_count(), 1);
        assert_eq!(env.crm.note_count(), 3);
        assert!(env.alerts.sent().is_empty());
    }

    #[tokio::test]
    async fn a_whatsapp_first_person_is_found_by_the_crm_when_the_ledger_does_not_know_the_phone() {
        let env = Env::new();
        env.run(&[msg("m1", &person("evt_1", None, None, Some("14155552671")))])
            .await;
        // email + phone (not the WhatsApp id): the ledger knows neither; the CRM finds
        // the WhatsApp number it holds.
        let out = env
            .run(&[msg(
                "m2",
                &person("evt_2", Some("a@b.co"), Some("+14155552671"), None),
            )])
            .await;
        assert!(matches!(&out[0], ItemOutcome::Synced(_)), "{out:?}");
        assert_eq!(env.crm.contact_count(), 1, "{:?}", env.crm.contacts());
    }

    #[tokio::test]
    async fn two_records_known_for_one_person_the_emails_wins_and_it_is_alerted_once() {
        let env = Env::new();
        env.run(&[msg("m1", &person("evt_1", Some("a@b.co"), None, None))])
            .await;
        env.run(&[msg(
            "m2",
            &person("evt_2", None, Some("+14155552671"), None),
        )])
        .await;
        assert_eq!(
            env.crm.contact_count(),
            2,
            "two people as far as anyone knew"
        );
        let both = person("evt_3", Some("a@b.co"), Some("+14155552671"), None);
        let out = env.run(&[msg("m3", &both)]).await;
        assert!(
            matches!(&out[0], ItemOutcome::Synced(o) if o.contact_id == "c1"),
            "{out:?}"
        );
        assert_eq!(env.crm.contact_count(), 2, "never a third record");
        assert_eq!(env.crm.notes_of("c1"), vec!["evt_1", "evt_3"]);
        let conflicts = env.ledger.conflicts();
        assert_eq!(conflicts.len(), 1);
        assert_eq!(
            (
                conflicts[0].written_to.as_str(),
                conflicts[0].others.clone()
            ),
            ("c1", vec!["c2".to_string()])
        );
        assert!(!conflicts[0].detail.contains("a@b.co") && conflicts[0].detail.contains("email"));
        let alerts = env.alerts.sent();
        assert_eq!(alerts.len(), 1);
        assert!(
            alerts[0].0.contains("possible duplicate") && alerts[0].0.contains("c1, c2"),
            "{alerts:?}"
        );
        assert!(!alerts[0].1.contains("a@b.co") && !alerts[0].1.contains("4155552671"));
        // the phone keeps its record; the same conflict again is not alerted again
        env.run(&[msg(
            "m4",
            &person("evt_4", Some("a@b.co"), Some("+14155552671"), None),
        )])
        .await;
        assert_eq!(env.alerts.sent().len(), 1);
        assert_eq!(env.crm.contact_count(), 2);
    }

    #[tokio::test]
    async fn an_email_that_belongs_to_another_record_in_the_crm_takes_the_write() {
        let env = Env::new();
        env.run(&[msg(
            "m1",
            &person("evt_1", None, Some("+14155552671"), None),
        )])
        .await;
        // A rep created a contact with the email, outside leadbridge.
        let owner = env.crm.seed_contact(Some("a@b.co"), None);
        let out = env
            .run(&[msg(
                "m2",
                &person("evt_2", Some("a@b.co"), Some("+14155552671"), None),
            )])
            .await;
        assert!(
            matches!(&out[0], ItemOutcome::Synced(o) if o.contact_id == owner),
            "{out:?}"
        );
        assert_eq!(env.crm.contact_count(), 2);
        assert_eq!(env.ledger.conflicts().len(), 1);
        assert_eq!(env.alerts.sent().len(), 1);
    }

    #[tokio::test]
    async fn concurrent_events_of_one_person_with_different_identities_wait_for_each_other() {
        let env = Env::new();
        let phone_only = person("evt_1", None, Some("+14155552671"), None);
        let both = person("evt_2", Some("a@b.co"), Some("+14155552671"), None);
        // evt_1 is creating the record (holds the claim on the phone)
        let now = Utc::now();
        let held = env
            .ledger
            .lock_person(
                &PersonLock {
                    crm: "fake".into(),
                    holder: phone_only.delivery_id(),
                    until: now + chrono::Duration::seconds(30),
                    record: None,
                    claim: vec![phone_only.contact_key.hashed()],
                },
                now,
            )
            .await
            .unwrap();
        assert!(matches!(held, Locked::Held { .. }));
        let out = env.run(&[msg("m2", &both)]).await;
        assert!(
            matches!(&out[0], ItemOutcome::RetryLater { reason, .. } if reason.code == "contact_busy"),
            "{out:?}"
        );
        assert_eq!(
            env.crm.calls(),
            0,
            "nothing written while the person is busy"
        );
        assert_eq!(
            env.ledger.record("evt_2").unwrap().attempts,
            0,
            "waiting is not an attempt"
        );
        // evt_1 finishes (its own retry takes its claim again), then evt_2 joins its record
        env.run(&[msg("m1", &phone_only)]).await;
        env.run(&[msg("m2", &both)]).await;
        assert_eq!(env.crm.contact_count(), 1, "{:?}", env.crm.contacts());
        assert_eq!(env.crm.note_count(), 2);
    }

    #[tokio::test]
    async fn an_older_event_never_overwrites_a_newer_ones_phone_or_whatsapp_number() {
        let env = Env::new();
        let newer = at(
            person(
                "evt_new",
                Some("a@b.co"),
                Some("+14155550100"),
                Some("14155550100"),
            ),
            "2026-05-04T12:00:00Z",
        );
        let older = at(
            person("evt_old", None, Some("+14155552671"), Some("14155552671")),
            "2026-05-04T11:00:00Z",
        );
        env.run(&[msg("m1", &newer)]).await;
        // the older one names the person by the newer one's WhatsApp id too, so it is them
        let older = {
            let mut e = older.event.clone();
            e.visitor.wa_id = Some(lb_domain::WaId::parse("14155550100").unwrap());
            QueuedLead::new(e, Utc::now()).unwrap()
        };
        let out = env.run(&[msg("m2", &older)]).await;
        assert!(matches!(&out[0], ItemOutcome::Synced(_)), "{out:?}");
        let c = env.crm.contacts();
        assert_eq!(c.len(), 1);
        assert_eq!(
            c[0].2.as_deref(),
            Some("+14155550100"),
            "phone of the newer event kept"
        );
        assert_eq!(env.crm.fields_of("c1").as_deref(), Some("evt_new"));
        assert_eq!(
            env.crm.note_count(),
            2,
            "the older event still adds its note"
        );
    }

    #[tokio::test]
    async fn a_replay_after_a_partial_write_adds_neither_a_second_note_nor_a_second_deal() {
        let env = Env::new();
        let mut lead = sample_lead("evt_1", "a@b.co");
        lead.event.crm_target.create_deal = true;
        let lead = QueuedLead::new(lead.event, Utc::now()).unwrap();
        // contact + note written, then the deal is refused
        env.crm
            .fail_after(2, permanent("Pipeline stage does not exist"));
        let out = env.run(&[msg("m1", &lead)]).await;
        assert!(matches!(&out[0], ItemOutcome::DeadLettered(_)), "{out:?}");
        assert_eq!((env.crm.note_count(), env.crm.deal_count()), (1, 0));
        let rec = env.ledger.record("evt_1").unwrap();
        assert_eq!(
            rec.outcome.and_then(|o| o.note_id).as_deref(),
            Some("n1"),
            "the note is kept in the ledger"
        );
        // the cause is fixed; the operator replays it
        assert_eq!(
            env.ledger.requeue("evt_1", Utc::now()).await.unwrap(),
            Some(1)
        );
        let calls = env.crm.calls();
        let out = env.run(&[msg("m1r", &lead)]).await;
        assert!(
            matches!(&out[0], ItemOutcome::Synced(o) if o.note_id.as_deref() == Some("n1")),
            "{out:?}"
        );
        assert_eq!((env.crm.note_count(), env.crm.deal_count()), (1, 1));
        // upsert + deal lookup + deal: the note was neither looked up nor written
        assert_eq!(env.crm.calls() - calls, 3);
    }

    #[tokio::test]
    async fn a_replay_without_recorded_progress_looks_for_its_note_before_writing() {
        let env = Env::new();
        let lead = sample_lead("evt_1", "a@b.co");
        env.run(&[msg("m1", &lead)]).await;
        // as if the ledger lost the outcome and the event was dead-lettered after its note
        env.ledger.seed_dead("evt_1", &lead);
        env.ledger.requeue("evt_1", Utc::now()).await.unwrap();
        let out = env.run(&[msg("m2", &lead)]).await;
        assert!(matches!(&out[0], ItemOutcome::Synced(_)), "{out:?}");
        assert_eq!(env.crm.note_count(), 1);
    }

    #[tokio::test]
    async fn a_remembered_record_the_crm_no_longer_has_is_replaced_and_relinked() {
        let env = Env::new();
        let lead = person("evt_1", None, Some("+14155552671"), None);
        env.ledger
            .seed_identity("fake", &lead.contact_key.hashed(), "c999");
        let out = env.run(&[msg("m1", &lead)]).await;
        assert!(
            matches!(&out[0], ItemOutcome::Synced(o) if o.contact_id == "c1"),
            "{out:?}"
        );
        assert_eq!(
            env.ledger
                .identities("fake", &[lead.contact_key.hashed()])
                .await
                .unwrap(),
            vec![Some("c1".to_string())]
        );
        assert!(env.ledger.conflicts().is_empty());
    }

    #[tokio::test]
    async fn near_the_deadline_messages_are_handed_back_unstarted() {
        let env = Env::new();
        let out = sync_batch(
            &env.worker(),
            &[msg("m1", &sample_lead("evt_1", "a@b.co"))],
            Utc::now(),
        )
        .await;
        assert_eq!(out[0], ItemOutcome::OutOfTime);
        assert_eq!(env.crm.calls(), 0);
        assert_eq!(
            env.queue.retries(),
            vec![("rh-m1".to_string(), Duration::ZERO)]
        );
    }
}
