//! The worker's use case: sync a batch of queued leads to the CRM exactly once.

use std::collections::HashSet;
use std::time::Duration;

use chrono::{DateTime, Utc};
use lb_domain::{ContactKey, QueuedLead};
use tracing::{info, info_span, warn, Instrument};

use crate::hooks::Hooks;
use crate::ports::{
    Begin, Connections, ContactWrite, CrmError, DeadLetter, ErrorClass, FailureReason, LeadQueue,
    Ledger, PortError, SyncOutcome,
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
    pub clock: &'a dyn Clock,
    pub policy: RetryPolicy,
    /// Messages not started when less than this remains before the deadline are handed back.
    pub safety_margin: Duration,
    pub hooks: &'a Hooks,
}

/// Processes a batch in order and returns one outcome per message, in the
/// same order. FIFO semantics: once a message of a group is not acknowledged,
/// every later message of that group in the batch is held back too.
pub async fn sync_batch(
    w: &Worker<'_>,
    messages: &[InboundMessage],
    deadline: DateTime<Utc>,
) -> Vec<ItemOutcome> {
    let mut blocked: HashSet<String> = HashSet::new();
    let mut out = Vec::with_capacity(messages.len());
    for m in messages {
        if let Some(g) = &m.group_id {
            if blocked.contains(g) {
                // Release it at once: an in-flight follower would otherwise block its
                // whole group in the queue until its visibility timeout ran out.
                if let Err(e) = w.queue.retry_later(&m.receipt_handle, Duration::ZERO).await {
                    warn!(message_id = %m.message_id, error = %e, "could not release a held message");
                }
                out.push(ItemOutcome::HeldForOrder);
                continue;
            }
        }
        let remaining = (deadline - w.clock.now()).to_std().unwrap_or_default();
        let outcome = if remaining < w.safety_margin {
            // Hand it back at once rather than after a whole visibility timeout.
            if let Err(e) = w.queue.retry_later(&m.receipt_handle, Duration::ZERO).await {
                warn!(message_id = %m.message_id, error = %e, "could not hand back an unstarted message");
            }
            ItemOutcome::OutOfTime
        } else {
            let span = info_span!("lead", message_id = %m.message_id, event_id = tracing::field::Empty, connection = tracing::field::Empty);
            sync_message(w, m, deadline).instrument(span).await
        };
        if !outcome.is_ack() {
            if let Some(g) = &m.group_id {
                blocked.insert(g.clone());
            }
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

async fn sync_message(w: &Worker<'_>, m: &InboundMessage, deadline: DateTime<Utc>) -> ItemOutcome {
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
    let begin = match w.ledger.begin(&lead, &m.body, now, deadline).await {
        Ok(b) => b,
        Err(e) => return retry_infra(w, m, m.receive_count, e).await,
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
        Begin::Proceed { attempt } => match sync_to_crm(w, &lead, attempt, deadline).await {
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
                    ItemOutcome::Synced(outcome)
                }
                // The CRM has it; the next attempt redoes the idempotent upsert and finds its note.
                Err(e) => retry_infra(w, m, attempt, e).await,
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
                    if let Err(le) = w
                        .ledger
                        .fail(&lead.delivery_id(), &reason, next, w.clock.now())
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

/// The CRM side of one event: contact upsert, then note, then (when asked) deal.
/// A connection that keeps no records (a webhook target) gets one delivery call.
async fn sync_to_crm(
    w: &Worker<'_>,
    lead: &QueuedLead,
    attempt: u32,
    deadline: DateTime<Utc>,
) -> Result<SyncOutcome, StepError> {
    let target = w
        .crm
        .crm_for(lead.connection())
        .map_err(StepError::UnknownConnection)?;
    if !target.keeps_records() {
        let delivered = target
            .upsert_contact(lead, None, ContactWrite::Full)
            .await?;
        return Ok(SyncOutcome {
            crm: target.name().to_string(),
            contact_id: delivered.id,
            contact_created: delivered.created,
            note_id: None,
            deal_id: None,
        });
    }
    let crm = target.name().to_string();
    let key = &lead.contact_key;
    let key_hash = key.hashed();
    let memory = w.ledger.contact(&crm, &key_hash).await?;
    // Email upserts are keyed by the CRM itself; other identities need our memory of the id.
    let known = match key {
        ContactKey::Email(_) => None,
        _ => memory.as_ref().map(|m| m.crm_id.clone()),
    };
    // An event older than one already applied must not overwrite its fields.
    let stale = memory
        .as_ref()
        .and_then(|m| m.last_occurred_at)
        .is_some_and(|t| lead.event.occurred_at < t);
    // Creating a record for an identity the CRM cannot look up at once (search lags):
    // claim the identity first, so that two events of one person never both create.
    if known.is_none() && !matches!(key, ContactKey::Email(_)) {
        let claimed = w
            .ledger
            .claim_contact(
                &crm,
                &key_hash,
                lead.event.event_id.as_str(),
                deadline,
                w.clock.now(),
            )
            .await?;
        if !claimed {
            return Err(StepError::ContactBusy);
        }
    }
    let write = if stale {
        ContactWrite::IdentityOnly
    } else {
        ContactWrite::Full
    };
    if stale {
        info!(
            event_id = lead.event.event_id.as_str(),
            "older than the last applied event; fields left as they are"
        );
    }
    let contact = target.upsert_contact(lead, known.as_deref(), write).await?;
    let aliases = secondary_key_hashes(lead);
    if !aliases.is_empty() && known.as_deref() != Some(contact.id.as_str()) {
        w.ledger
            .remember_contact(&crm, &aliases, &contact.id, w.clock.now())
            .await?;
    }
    if !stale {
        w.ledger
            .record_applied(
                &crm,
                &key_hash,
                &contact.id,
                lead.event.occurred_at,
                w.clock.now(),
            )
            .await?;
    }
    let event_id = &lead.event.event_id;
    // Only a retry can find something an earlier attempt wrote.
    let note_id = match if attempt > 1 {
        target.find_note(&contact.id, event_id).await?
    } else {
        None
    } {
        Some(id) => id,
        None => target.add_note(&contact.id, lead).await?,
    };
    let deal_id = if lead.event.crm_target.create_deal {
        Some(
            match if attempt > 1 {
                target.find_deal(&contact.id, event_id).await?
            } else {
                None
            } {
                Some(id) => id,
                None => target.create_deal(&contact.id, lead).await?,
            },
        )
    } else {
        None
    };
    Ok(SyncOutcome {
        crm,
        contact_id: contact.id,
        contact_created: contact.created,
        note_id: Some(note_id),
        deal_id,
    })
}

/// Hashes of the identities to remember for later lookups: every non-email identity.
fn secondary_key_hashes(lead: &QueuedLead) -> Vec<String> {
    let v = &lead.event.visitor;
    let mut out = Vec::new();
    if let Some(p) = &v.phone {
        out.push(ContactKey::Phone(p.clone()).hashed());
    }
    if let Some(w) = &v.wa_id {
        out.push(ContactKey::WaId(w.clone()).hashed());
    }
    out
}

async fn hand_back(
    w: &Worker<'_>,
    m: &InboundMessage,
    delay: Duration,
    reason: FailureReason,
) -> ItemOutcome {
    if let Err(e) = w.queue.retry_later(&m.receipt_handle, delay).await {
        // It comes back after the queue's visibility timeout instead.
        warn!(error = %e, "could not set the retry delay");
    }
    ItemOutcome::RetryLater { delay, reason }
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
            .mark_dead(event_id, &reason, Some(&m.body), w.clock.now())
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
    }

    impl Env {
        fn new() -> Self {
            Self {
                ledger: InMemoryLedger::default(),
                queue: InMemoryQueue::default(),
                crm: FakeCrm::default(),
            }
        }
        fn worker(&self) -> Worker<'_> {
            Worker {
                ledger: &self.ledger,
                queue: &self.queue,
                crm: &self.crm,
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
        }
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
        };
        let out = env.run(&[m]).await;
        assert!(matches!(&out[0], ItemOutcome::DeadLettered(r) if r.code == "poison_message"));
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
            .claim_contact(
                "fake",
                &lead.contact_key.hashed(),
                "evt_1",
                now + chrono::Duration::seconds(30),
                now,
            )
            .await
            .unwrap();
        assert!(claimed);
        let out = env.run(&[msg("m2", &lead)]).await;
        assert!(
            matches!(&out[0], ItemOutcome::RetryLater { reason, .. } if reason.code == "contact_busy"),
            "{out:?}"
        );
        assert_eq!(env.crm.contact_count(), 0, "no second contact was created");
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
