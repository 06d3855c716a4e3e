//! The ledger's contract as one test suite: the same cases and the same
//! assertions for every [`Ledger`], run against [`InMemoryLedger`] (below) and
//! against the DynamoDB adapter on moto (`tests/e2e/ledger.rs`). The port's
//! docs are the contract; the cases cover every conditional branch of it.
//!
//! The cases share one ledger (one table): every name a case
//! uses (event ids, connections, bots, CRM connections, identities, records,
//! holders) starts with the run's and the case's prefix. Every method takes
//! `now`, so a case picks its own times and a lease runs out without sleeping.
//!
//! [`InMemoryLedger`]: crate::fakes::InMemoryLedger

use std::any::Any;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use lb_domain::{Delivery, FieldError, QueuedLead};

use crate::ports::*;

type CaseFuture = Pin<Box<dyn Future<Output = ()> + Send>>;

/// One case of the contract.
pub struct Case {
    pub name: &'static str,
    run: fn(Arc<dyn Ledger>, Cx) -> CaseFuture,
}

macro_rules! cases {
    ($($case:ident),* $(,)?) => {
        vec![$(Case {
            name: stringify!($case),
            run: |l, cx| Box::pin($case(l, cx)) as CaseFuture,
        }),*]
    };
}

/// Every case of the contract.
pub fn cases() -> Vec<Case> {
    cases![
        received_is_recorded_once,
        begin_takes_the_lease_and_counts_attempts,
        begin_waits_for_a_held_lease_and_takes_over_an_expired_one,
        begin_refuses_another_payload_under_the_same_id,
        synced_is_final,
        dead_is_left_alone,
        fail_uses_an_attempt_unless_it_is_given_back,
        progress_is_kept_for_later_attempts_and_replays,
        only_a_dead_event_with_its_payload_is_replayed,
        a_late_dead_letter_leaves_a_replay_alone,
        every_attempt_is_kept_in_the_history,
        deliveries_are_one_per_connection,
        list_filters_by_status_time_bot_and_reason,
        rejections_are_recorded_and_counted_per_window,
        a_lock_claims_identities_until_they_are_linked,
        a_record_created_under_the_claims_is_linked_and_a_late_release_checks_again,
        identities_are_answered_in_order_however_many_and_repeated,
        a_lock_is_all_or_nothing,
        leases_and_claims_run_out_and_are_taken_over,
        release_keeps_a_link_to_another_record,
        a_replaced_record_gives_its_identities_up,
        last_applied_only_moves_forward,
        a_conflict_is_recorded_once_per_set_of_records,
        erasure_takes_the_person_and_every_identity_linked_to_them,
        a_key_is_claimed_once,
    ]
}

/// Runs every case against `ledger`, one after the other, each to its end
/// (a failed case does not stop the others); `run` makes this run's names
/// unique (letters, digits, `-`, `_`). Panics listing every case that failed.
///
/// One at a time: the cases read what they wrote, and each is easier to read
/// on its own when it fails.
pub async fn ledger_contract(ledger: Arc<dyn Ledger>, run: &str) {
    let now = Utc::now();
    let t0 = DateTime::from_timestamp(now.timestamp(), 0).unwrap_or(now);
    let cases = cases();
    let total = cases.len();
    let mut failed = Vec::new();
    for case in cases {
        let cx = Cx {
            prefix: format!("{run}-{}", case.name),
            t0,
        };
        // Its own task: a failed assertion ends the case, not the run.
        if let Err(e) = tokio::spawn((case.run)(ledger.clone(), cx)).await {
            let why = if e.is_panic() {
                panic_message(e.into_panic())
            } else {
                e.to_string()
            };
            failed.push(format!("- {}: {why}", case.name));
        }
    }
    assert!(
        failed.is_empty(),
        "{} of {total} ledger contract cases failed:\n{}",
        failed.len(),
        failed.join("\n")
    );
}

fn panic_message(p: Box<dyn Any + Send>) -> String {
    match p.downcast::<String>() {
        Ok(s) => *s,
        Err(p) => p
            .downcast_ref::<&str>()
            .map_or_else(|| "panicked".to_string(), |s| s.to_string()),
    }
}

/// One case's names and times.
#[derive(Clone)]
pub struct Cx {
    prefix: String,
    /// A whole second: times are `t0 + n s` (whole milliseconds, as the table keeps them).
    t0: DateTime<Utc>,
}

impl Cx {
    /// A name of this case's own.
    fn name(&self, what: &str) -> String {
        format!("{}-{what}", self.prefix)
    }
    fn at(&self, secs: i64) -> DateTime<Utc> {
        self.t0 + Duration::seconds(secs)
    }
    fn bot(&self) -> String {
        self.name("bot")
    }
    fn lead(&self, event: &str) -> QueuedLead {
        self.lead_of(event, &self.bot(), "Asked about pricing")
    }
    /// A lead of this case's event `event`, from `bot`, whose transcript says `summary`.
    fn lead_of(&self, event: &str, bot: &str, summary: &str) -> QueuedLead {
        let event: lb_domain::LeadEvent = serde_json::from_value(serde_json::json!({
            "event_id": self.name(event),
            "event_type": "lead.created",
            "occurred_at": "2026-05-04T11:23:45Z",
            "bot_id": bot,
            "visitor": {"name": "Priya Sharma", "email": "priya@example.com"},
            "transcript": {"summary": summary}
        }))
        .expect("valid contract event");
        QueuedLead::new(event, self.t0).expect("the contract's lead has an identity")
    }
    /// The lead of `event` for the named connection `connection` (of this case).
    fn routed(&self, event: &str, connection: &str) -> QueuedLead {
        self.lead(event).for_delivery(Delivery {
            connection: self.name(connection),
            lead_source: None,
            object: "contact".into(),
            split_name: None,
        })
    }
}

fn reason(class: ErrorClass, code: &str) -> FailureReason {
    FailureReason {
        class,
        code: code.into(),
        message: format!("{code} (contract)"),
        crm: Some("hubspot".into()),
        http_status: Some(503),
    }
}

fn transient() -> FailureReason {
    reason(ErrorClass::Transient, "crm_unavailable")
}

fn permanent() -> FailureReason {
    reason(ErrorClass::Permanent, "crm_rejected")
}

fn outcome(contact: &str, note: Option<&str>, deal: Option<&str>) -> SyncOutcome {
    SyncOutcome {
        crm: "hubspot".into(),
        contact_id: contact.into(),
        contact_created: true,
        note_id: note.map(str::to_string),
        deal_id: deal.map(str::to_string),
    }
}

async fn get(l: &dyn Ledger, id: &str) -> LedgerRecord {
    l.get(id)
        .await
        .unwrap_or_else(|e| panic!("get {id}: {e}"))
        .unwrap_or_else(|| panic!("{id} is in the ledger"))
}

async fn begin(l: &dyn Ledger, lead: &QueuedLead, now: DateTime<Utc>, lease: i64) -> Begin {
    l.begin(lead, &lead.to_json(), now, now + Duration::seconds(lease))
        .await
        .expect("begin")
}

fn proceed(attempt: u32, follows_earlier: bool, prior: Option<SyncOutcome>) -> Begin {
    Begin::Proceed {
        attempt,
        follows_earlier,
        prior,
    }
}

/// `record_received` (New, then Existing) and `mark_queued` (received → queued only).
async fn received_is_recorded_once(l: Arc<dyn Ledger>, cx: Cx) {
    let l = l.as_ref();
    let lead = cx.lead("e1");
    let id = lead.delivery_id();
    let body = lead.to_json();
    assert_eq!(
        l.get(&id).await.expect("get"),
        None,
        "nothing before ingest"
    );
    assert_eq!(
        l.record_received(&lead, &body, cx.at(0)).await.expect("rr"),
        Received::New,
        "the first write of an event id records it"
    );
    let rec = get(l, &id).await;
    let expected = LedgerRecord {
        event_id: cx.name("e1"),
        connection: None,
        status: LedgerStatus::Received,
        bot_id: Some(cx.bot()),
        contact_key_hash: Some(lead.contact_key.hashed()),
        payload_hash: Some(lead.payload_hash.clone()),
        payload: Some(body.clone()),
        contact: Some(lead.contact_key.masked()),
        attempts: 0,
        replays: 0,
        lease_until: None,
        next_attempt_at: None,
        last_error: None,
        outcome: None,
        received_at: Some(cx.at(0)),
        updated_at: Some(cx.at(0)),
        history: Vec::new(),
    };
    assert_eq!(rec, expected, "what ingest recorded");
    match l.record_received(&lead, &body, cx.at(5)).await.expect("rr") {
        Received::Existing(r) => assert_eq!(
            *r, expected,
            "a second write changes nothing and returns what the ledger holds"
        ),
        Received::New => panic!("an event id is recorded once: the second write said New"),
    }

    l.mark_queued(&id, cx.at(1)).await.expect("queued");
    let rec = get(l, &id).await;
    assert_eq!(rec.status, LedgerStatus::Queued, "received → queued");
    assert_eq!(
        rec.updated_at,
        Some(cx.at(1)),
        "mark_queued updates the time"
    );
    assert!(
        matches!(begin(l, &lead, cx.at(2), 60).await, Begin::Proceed { .. }),
        "a queued event begins"
    );
    l.mark_queued(&id, cx.at(3)).await.expect("queued");
    let rec = get(l, &id).await;
    assert_eq!(
        rec.status,
        LedgerStatus::InProgress,
        "mark_queued leaves a later state alone"
    );
    assert_eq!(rec.updated_at, Some(cx.at(2)), "and its time");

    let unknown = cx.name("unknown");
    l.mark_queued(&unknown, cx.at(1)).await.expect("queued");
    assert_eq!(
        l.get(&unknown).await.expect("get"),
        None,
        "mark_queued of an unknown event creates nothing"
    );
}

/// `begin`: Proceed on a received or queued event, and on one ingest never recorded.
async fn begin_takes_the_lease_and_counts_attempts(l: Arc<dyn Ledger>, cx: Cx) {
    let l = l.as_ref();
    let lead = cx.lead("e1");
    let id = lead.delivery_id();
    l.record_received(&lead, &lead.to_json(), cx.at(0))
        .await
        .expect("rr");
    assert_eq!(
        begin(l, &lead, cx.at(1), 60).await,
        proceed(1, false, None),
        "a received event: the first attempt, nothing earlier"
    );
    let rec = get(l, &id).await;
    assert_eq!(rec.status, LedgerStatus::InProgress);
    assert_eq!(rec.attempts, 1, "the attempt is counted");
    assert_eq!(
        rec.lease_until,
        Some(cx.at(61)),
        "the lease is held until the time asked"
    );
    assert_eq!(rec.updated_at, Some(cx.at(1)));
    assert_eq!(rec.received_at, Some(cx.at(0)), "received_at is kept");

    // A message ingest never recorded (its write failed after the enqueue).
    let lead = cx.lead("e2");
    let id = lead.delivery_id();
    assert_eq!(
        begin(l, &lead, cx.at(2), 60).await,
        proceed(1, false, None),
        "an unrecorded event begins"
    );
    let rec = get(l, &id).await;
    assert_eq!(rec.status, LedgerStatus::InProgress);
    assert_eq!(rec.attempts, 1);
    assert_eq!(
        rec.payload.as_deref(),
        Some(lead.to_json().as_str()),
        "begin records the payload (the replay source)"
    );
    assert_eq!(
        rec.payload_hash.as_deref(),
        Some(lead.payload_hash.as_str())
    );
    assert_eq!(rec.bot_id, Some(cx.bot()));
    assert_eq!(rec.contact_key_hash, Some(lead.contact_key.hashed()));
    assert_eq!(rec.received_at, Some(cx.at(2)), "first seen by the worker");
}

/// `begin`: InProgress while an unexpired lease is held, takeover after it ran out.
async fn begin_waits_for_a_held_lease_and_takes_over_an_expired_one(l: Arc<dyn Ledger>, cx: Cx) {
    let l = l.as_ref();
    let lead = cx.lead("e1");
    let id = lead.delivery_id();
    assert_eq!(begin(l, &lead, cx.at(0), 60).await, proceed(1, false, None));
    assert_eq!(
        begin(l, &lead, cx.at(30), 60).await,
        Begin::InProgress {
            lease_until: cx.at(60)
        },
        "a held lease: another invocation waits, told until when"
    );
    assert_eq!(
        begin(l, &lead, cx.at(60), 60).await,
        Begin::InProgress {
            lease_until: cx.at(60)
        },
        "a lease is held up to and including its last instant"
    );
    let rec = get(l, &id).await;
    assert_eq!(rec.attempts, 1, "a refused begin uses no attempt");
    assert_eq!(
        rec.lease_until,
        Some(cx.at(60)),
        "a refused begin leaves the lease"
    );
    assert_eq!(
        begin(l, &lead, cx.at(61), 60).await,
        proceed(2, true, None),
        "an expired lease is taken over: attempt 2, following an earlier one"
    );
    let rec = get(l, &id).await;
    assert_eq!(rec.status, LedgerStatus::InProgress);
    assert_eq!(rec.attempts, 2);
    assert_eq!(rec.lease_until, Some(cx.at(121)), "the new lease");
}

/// `begin` → Conflict for the same event id with another payload, even once synced.
async fn begin_refuses_another_payload_under_the_same_id(l: Arc<dyn Ledger>, cx: Cx) {
    let l = l.as_ref();
    let lead = cx.lead("e1");
    let other = cx.lead_of("e1", &cx.bot(), "Asked about something else");
    assert_eq!(lead.delivery_id(), other.delivery_id());
    assert_ne!(lead.payload_hash, other.payload_hash);
    let id = lead.delivery_id();
    l.record_received(&lead, &lead.to_json(), cx.at(0))
        .await
        .expect("rr");
    assert_eq!(
        begin(l, &other, cx.at(1), 60).await,
        Begin::Conflict,
        "another payload under a recorded event id"
    );
    let rec = get(l, &id).await;
    assert_eq!(
        rec.status,
        LedgerStatus::Received,
        "a conflict changes nothing"
    );
    assert_eq!(rec.attempts, 0, "a conflict uses no attempt");
    assert_eq!(rec.lease_until, None, "a conflict takes no lease");
    assert_eq!(
        rec.payload_hash.as_deref(),
        Some(lead.payload_hash.as_str()),
        "the first payload is kept"
    );
    match l
        .record_received(&other, &other.to_json(), cx.at(2))
        .await
        .expect("rr")
    {
        Received::Existing(r) => assert_eq!(
            r.payload_hash.as_deref(),
            Some(lead.payload_hash.as_str()),
            "ingest sees the first payload's hash"
        ),
        Received::New => panic!("a conflicting payload is not a new event"),
    }
    assert_eq!(begin(l, &lead, cx.at(3), 60).await, proceed(1, false, None));
    let done = outcome("c1", Some("n1"), None);
    l.complete(&id, &done, cx.at(4)).await.expect("complete");
    assert_eq!(
        begin(l, &other, cx.at(5), 60).await,
        Begin::Conflict,
        "another payload is a conflict even once the event synced"
    );
    assert_eq!(
        begin(l, &lead, cx.at(6), 60).await,
        Begin::AlreadySynced(Some(done)),
        "the same payload is a duplicate"
    );
}

/// `claim_once`: the first caller has the key, every later one is told no.
async fn a_key_is_claimed_once(l: Arc<dyn Ledger>, cx: Cx) {
    let l = l.as_ref();
    let key = cx.name("quota-warning#hubspot#2026-11-29");
    assert!(l.claim_once(&key, cx.at(0)).await.expect("claim"), "first");
    assert!(
        !l.claim_once(&key, cx.at(1)).await.expect("claim"),
        "a second instance is told no"
    );
    assert!(
        l.claim_once(&cx.name("quota-warning#hubspot#2026-11-30"), cx.at(2))
            .await
            .expect("claim"),
        "another day is another key"
    );
}

/// `complete`; a synced record is never dead, failed, given progress or replayed.
async fn synced_is_final(l: Arc<dyn Ledger>, cx: Cx) {
    let l = l.as_ref();
    let lead = cx.lead("e1");
    let id = lead.delivery_id();
    assert_eq!(begin(l, &lead, cx.at(0), 60).await, proceed(1, false, None));
    l.fail(&id, &transient(), cx.at(30), true, cx.at(1))
        .await
        .expect("fail");
    assert_eq!(begin(l, &lead, cx.at(30), 60).await, proceed(2, true, None));
    let done = outcome("c1", Some("n1"), Some("d1"));
    l.complete(&id, &done, cx.at(40)).await.expect("complete");
    let rec = get(l, &id).await;
    assert_eq!(rec.status, LedgerStatus::Synced);
    assert_eq!(rec.outcome, Some(done.clone()), "the CRM ids are kept");
    assert_eq!(rec.lease_until, None, "complete releases the lease");
    assert_eq!(
        rec.next_attempt_at, None,
        "a synced event has no next attempt"
    );
    assert_eq!(rec.updated_at, Some(cx.at(40)));
    assert_eq!(rec.payload, None, "a synced delivery keeps no payload");
    assert_eq!(
        rec.contact,
        Some(lead.contact_key.masked()),
        "only the masked person, for lists and the status API"
    );
    assert_eq!(
        begin(l, &lead, cx.at(50), 60).await,
        Begin::AlreadySynced(Some(done.clone())),
        "a synced event is acknowledged without touching the CRM"
    );
    assert!(
        !l.mark_dead(&id, &permanent(), None, cx.at(51))
            .await
            .expect("dead"),
        "mark_dead never overwrites a synced record"
    );
    l.fail(&id, &transient(), cx.at(90), true, cx.at(52))
        .await
        .expect("fail");
    l.record_progress(&id, &outcome("c9", None, None), cx.at(53))
        .await
        .expect("progress");
    assert_eq!(
        l.requeue(&id, cx.at(54)).await.expect("requeue"),
        None,
        "a synced event never runs twice"
    );
    let rec = get(l, &id).await;
    assert_eq!(
        rec.status,
        LedgerStatus::Synced,
        "dead, fail and requeue leave a synced record alone"
    );
    assert_eq!(
        rec.outcome,
        Some(done),
        "progress never touches a synced record"
    );
    assert_eq!(rec.next_attempt_at, None, "fail left no next attempt");
    assert_eq!(rec.attempts, 2);
    assert_eq!(rec.updated_at, Some(cx.at(40)), "nothing was written");

    assert!(
        l.complete(&cx.name("unknown"), &outcome("c1", None, None), cx.at(1))
            .await
            .is_err(),
        "completing an event the ledger does not have is an error"
    );
}

/// `mark_dead`: terminal; fills in a missing payload only; a dead record is left alone.
async fn dead_is_left_alone(l: Arc<dyn Ledger>, cx: Cx) {
    let l = l.as_ref();
    let lead = cx.lead("e1");
    let id = lead.delivery_id();
    assert_eq!(begin(l, &lead, cx.at(0), 60).await, proceed(1, false, None));
    l.fail(&id, &transient(), cx.at(30), true, cx.at(1))
        .await
        .expect("fail");
    assert_eq!(begin(l, &lead, cx.at(30), 60).await, proceed(2, true, None));
    assert!(
        l.mark_dead(&id, &permanent(), Some("another body"), cx.at(31))
            .await
            .expect("dead"),
        "mark_dead of an event in progress"
    );
    let rec = get(l, &id).await;
    assert_eq!(rec.status, LedgerStatus::Dead);
    assert_eq!(rec.last_error, Some(permanent()), "the reason is kept");
    assert_eq!(rec.lease_until, None, "a dead event holds no lease");
    assert_eq!(
        rec.next_attempt_at, None,
        "a dead event has no next attempt"
    );
    assert_eq!(
        rec.payload.as_deref(),
        Some(lead.to_json().as_str()),
        "the payload the ledger had is kept"
    );
    assert_eq!(rec.updated_at, Some(cx.at(31)));
    assert_eq!(
        begin(l, &lead, cx.at(32), 60).await,
        Begin::AlreadyDead,
        "a stray redelivery of a dead event is left alone"
    );
    l.fail(&id, &transient(), cx.at(90), true, cx.at(33))
        .await
        .expect("fail");
    let rec = get(l, &id).await;
    assert_eq!(
        rec.status,
        LedgerStatus::Dead,
        "fail leaves a dead record alone"
    );
    assert_eq!(rec.last_error, Some(permanent()));
    assert_eq!(rec.attempts, 2);

    // A dead letter of an event the ledger never saw (the alerter, a poison message).
    let unseen = cx.name("e2");
    assert!(
        l.mark_dead(&unseen, &permanent(), Some("the body"), cx.at(40))
            .await
            .expect("dead"),
        "mark_dead of an unknown event records it"
    );
    let rec = get(l, &unseen).await;
    assert_eq!(rec.status, LedgerStatus::Dead);
    assert_eq!(rec.event_id, unseen);
    assert_eq!(rec.connection, None);
    assert_eq!(
        rec.payload.as_deref(),
        Some("the body"),
        "the payload is filled in"
    );
    assert_eq!(rec.last_error, Some(permanent()));
    assert_eq!(rec.received_at, Some(cx.at(40)), "first seen when it died");
    assert_eq!(rec.attempts, 0);
    let unseen = format!("{}@{}", cx.name("e3"), cx.name("conn"));
    assert!(l
        .mark_dead(&unseen, &permanent(), None, cx.at(41))
        .await
        .expect("dead"));
    let rec = get(l, &unseen).await;
    assert_eq!(rec.event_id, cx.name("e3"));
    assert_eq!(
        rec.connection,
        Some(cx.name("conn")),
        "a delivery's connection"
    );
    assert_eq!(rec.payload, None, "no payload given, none kept");
}

/// `mark_dead_letter`: a dead letter sent before the delivery's last replay
/// leaves the replay alone; one sent after it (the replay died too) is recorded.
async fn a_late_dead_letter_leaves_a_replay_alone(l: Arc<dyn Ledger>, cx: Cx) {
    let l = l.as_ref();
    let lead = cx.lead("e1");
    let id = lead.delivery_id();
    l.record_received(&lead, &lead.to_json(), cx.at(0))
        .await
        .expect("received");
    assert!(l
        .mark_dead(&id, &permanent(), None, cx.at(10))
        .await
        .expect("dead"));
    assert_eq!(l.requeue(&id, cx.at(20)).await.expect("requeue"), Some(1));
    assert!(
        !l.mark_dead_letter(&id, &permanent(), None, cx.at(10), cx.at(25))
            .await
            .expect("late letter"),
        "a letter sent before the replay is late"
    );
    let rec = get(l, &id).await;
    assert_eq!(rec.status, LedgerStatus::Queued, "the replay stands");
    assert_eq!(rec.replays, 1);
    assert!(
        l.mark_dead_letter(&id, &permanent(), None, cx.at(30), cx.at(31))
            .await
            .expect("letter"),
        "a letter sent after the replay is recorded"
    );
    assert_eq!(get(l, &id).await.status, LedgerStatus::Dead);
    // A letter of a delivery never replayed is recorded as mark_dead records it.
    let other = cx.lead("e2");
    let other_id = other.delivery_id();
    l.record_received(&other, &other.to_json(), cx.at(0))
        .await
        .expect("received");
    assert!(l
        .mark_dead_letter(&other_id, &permanent(), None, cx.at(5), cx.at(6))
        .await
        .expect("letter"));
    assert_eq!(get(l, &other_id).await.status, LedgerStatus::Dead);
}

/// `history`: each failure (with the CRM's answer, cut), the death, the replay's
/// sync, oldest first.
async fn every_attempt_is_kept_in_the_history(l: Arc<dyn Ledger>, cx: Cx) {
    let l = l.as_ref();
    let lead = cx.lead("e1");
    let id = lead.delivery_id();
    assert_eq!(begin(l, &lead, cx.at(0), 60).await, proceed(1, false, None));
    let mut long = transient();
    long.message = "x".repeat(500);
    l.fail(&id, &long, cx.at(30), true, cx.at(10))
        .await
        .expect("fail");
    assert!(l
        .mark_dead(&id, &permanent(), None, cx.at(20))
        .await
        .expect("dead"));
    assert_eq!(l.requeue(&id, cx.at(30)).await.expect("requeue"), Some(1));
    begin(l, &lead, cx.at(31), 60).await;
    let outcome = SyncOutcome {
        crm: "hubspot".into(),
        contact_id: "c1".into(),
        ..SyncOutcome::default()
    };
    l.complete(&id, &outcome, cx.at(40))
        .await
        .expect("complete");
    let history = get(l, &id).await.history;
    let seen: Vec<(&str, Option<&str>, DateTime<Utc>)> = history
        .iter()
        .map(|a| (a.outcome.as_str(), a.code.as_deref(), a.at))
        .collect();
    assert_eq!(
        seen,
        [
            ("retrying", Some(transient().code.as_str()), cx.at(10)),
            ("dead", Some(permanent().code.as_str()), cx.at(20)),
            ("synced", None, cx.at(40)),
        ]
    );
    assert_eq!(
        history[0].message.as_deref().map(|m| m.chars().count()),
        Some(crate::ports::AttemptRecord::MAX_MESSAGE),
        "a long answer is cut"
    );
    assert_eq!(history[1].http_status, permanent().http_status);
    assert_eq!(history[2].crm.as_deref(), Some("hubspot"));
}

/// `fail`: retrying, lease released; `counted: false` gives the attempt back.
async fn fail_uses_an_attempt_unless_it_is_given_back(l: Arc<dyn Ledger>, cx: Cx) {
    let l = l.as_ref();
    let lead = cx.lead("e1");
    let id = lead.delivery_id();
    assert_eq!(begin(l, &lead, cx.at(0), 60).await, proceed(1, false, None));
    l.fail(&id, &transient(), cx.at(30), true, cx.at(10))
        .await
        .expect("fail");
    let rec = get(l, &id).await;
    assert_eq!(rec.status, LedgerStatus::Retrying);
    assert_eq!(rec.last_error, Some(transient()));
    assert_eq!(rec.next_attempt_at, Some(cx.at(30)));
    assert_eq!(rec.lease_until, None, "fail releases the lease");
    assert_eq!(rec.attempts, 1, "a counted failure keeps its attempt");
    assert_eq!(rec.updated_at, Some(cx.at(10)));
    assert_eq!(
        begin(l, &lead, cx.at(20), 60).await,
        proceed(2, true, None),
        "the next attempt begins before the old lease's end (released) and follows an earlier one"
    );
    let limited = reason(ErrorClass::RateLimited, "crm_rate_limited");
    l.fail(&id, &limited, cx.at(50), false, cx.at(40))
        .await
        .expect("fail");
    let rec = get(l, &id).await;
    assert_eq!(rec.status, LedgerStatus::Retrying);
    assert_eq!(rec.last_error, Some(limited));
    assert_eq!(rec.next_attempt_at, Some(cx.at(50)));
    assert_eq!(rec.attempts, 1, "counted: false gives the attempt back");
    assert_eq!(
        begin(l, &lead, cx.at(50), 60).await,
        proceed(2, true, None),
        "the attempt given back is not counted"
    );
    l.fail(&id, &transient(), cx.at(70), true, cx.at(60))
        .await
        .expect("fail");
    assert_eq!(begin(l, &lead, cx.at(70), 60).await, proceed(3, true, None));

    let unknown = cx.name("unknown");
    l.fail(&unknown, &transient(), cx.at(30), true, cx.at(1))
        .await
        .expect("fail of an unknown event is not an error");
    assert_eq!(
        l.get(&unknown).await.expect("get"),
        None,
        "fail of an unknown event creates nothing"
    );
}

/// `record_progress` → `Begin::Proceed.prior` on a retry and on a replay.
async fn progress_is_kept_for_later_attempts_and_replays(l: Arc<dyn Ledger>, cx: Cx) {
    let l = l.as_ref();
    let lead = cx.lead("e1");
    let id = lead.delivery_id();
    assert_eq!(begin(l, &lead, cx.at(0), 60).await, proceed(1, false, None));
    let contact = outcome("c1", None, None);
    l.record_progress(&id, &contact, cx.at(1))
        .await
        .expect("progress");
    let rec = get(l, &id).await;
    assert_eq!(
        rec.status,
        LedgerStatus::InProgress,
        "progress keeps the status"
    );
    assert_eq!(rec.outcome, Some(contact.clone()));
    l.fail(&id, &transient(), cx.at(10), true, cx.at(2))
        .await
        .expect("fail");
    assert_eq!(
        begin(l, &lead, cx.at(10), 60).await,
        proceed(2, true, Some(contact)),
        "the next attempt sees what the earlier one wrote"
    );
    let note = outcome("c1", Some("n1"), None);
    l.record_progress(&id, &note, cx.at(11))
        .await
        .expect("progress");
    l.fail(&id, &transient(), cx.at(20), true, cx.at(12))
        .await
        .expect("fail");
    assert_eq!(
        begin(l, &lead, cx.at(20), 60).await,
        proceed(3, true, Some(note)),
        "progress is replaced by the newer progress"
    );
    let done = outcome("c1", Some("n1"), Some("d1"));
    l.complete(&id, &done, cx.at(21)).await.expect("complete");
    l.record_progress(&id, &outcome("c2", None, None), cx.at(22))
        .await
        .expect("progress");
    assert_eq!(
        get(l, &id).await.outcome,
        Some(done),
        "progress never touches a synced record"
    );

    // A replay of a dead event skips what it wrote before it died.
    let lead = cx.lead("e2");
    let id = lead.delivery_id();
    assert_eq!(begin(l, &lead, cx.at(0), 60).await, proceed(1, false, None));
    let contact = outcome("c3", None, None);
    l.record_progress(&id, &contact, cx.at(1))
        .await
        .expect("progress");
    assert!(l
        .mark_dead(&id, &permanent(), None, cx.at(2))
        .await
        .expect("dead"));
    assert_eq!(l.requeue(&id, cx.at(3)).await.expect("requeue"), Some(1));
    assert_eq!(
        begin(l, &lead, cx.at(4), 60).await,
        proceed(1, true, Some(contact)),
        "a replay follows an earlier attempt and sees its progress"
    );

    let unknown = cx.name("unknown");
    l.record_progress(&unknown, &outcome("c1", None, None), cx.at(1))
        .await
        .expect("progress");
    assert_eq!(
        l.get(&unknown).await.expect("get"),
        None,
        "progress of an unknown event creates nothing"
    );
}

/// `requeue`: only a dead event with a payload; attempts reset, replays numbered.
async fn only_a_dead_event_with_its_payload_is_replayed(l: Arc<dyn Ledger>, cx: Cx) {
    let l = l.as_ref();
    let lead = cx.lead("e1");
    let id = lead.delivery_id();
    l.record_received(&lead, &lead.to_json(), cx.at(0))
        .await
        .expect("rr");
    assert_eq!(
        l.requeue(&id, cx.at(1)).await.expect("requeue"),
        None,
        "a received event is not replayed"
    );
    l.mark_queued(&id, cx.at(1)).await.expect("queued");
    assert_eq!(
        l.requeue(&id, cx.at(2)).await.expect("requeue"),
        None,
        "a queued event is not replayed"
    );
    assert_eq!(begin(l, &lead, cx.at(3), 60).await, proceed(1, false, None));
    assert_eq!(
        l.requeue(&id, cx.at(4)).await.expect("requeue"),
        None,
        "an event in progress is not replayed"
    );
    l.fail(&id, &transient(), cx.at(20), true, cx.at(5))
        .await
        .expect("fail");
    assert_eq!(
        l.requeue(&id, cx.at(6)).await.expect("requeue"),
        None,
        "a retrying event is not replayed"
    );
    assert_eq!(get(l, &id).await.status, LedgerStatus::Retrying);
    assert_eq!(begin(l, &lead, cx.at(20), 60).await, proceed(2, true, None));
    assert!(l
        .mark_dead(&id, &permanent(), None, cx.at(21))
        .await
        .expect("dead"));
    assert_eq!(
        l.requeue(&id, cx.at(22)).await.expect("requeue"),
        Some(1),
        "the first replay"
    );
    let rec = get(l, &id).await;
    assert_eq!(rec.status, LedgerStatus::Queued, "dead → queued");
    assert_eq!(rec.attempts, 0, "attempts are reset");
    assert_eq!(rec.replays, 1);
    assert_eq!(rec.lease_until, None);
    assert_eq!(rec.next_attempt_at, None);
    assert_eq!(rec.updated_at, Some(cx.at(22)));
    assert_eq!(
        l.requeue(&id, cx.at(23)).await.expect("requeue"),
        None,
        "a replayed (queued) event is not replayed twice"
    );
    assert_eq!(
        begin(l, &lead, cx.at(24), 60).await,
        proceed(1, true, None),
        "a replay's first attempt follows earlier ones"
    );
    assert!(l
        .mark_dead(&id, &permanent(), None, cx.at(25))
        .await
        .expect("dead"));
    assert_eq!(
        l.requeue(&id, cx.at(26)).await.expect("requeue"),
        Some(2),
        "replays are numbered"
    );
    assert_eq!(begin(l, &lead, cx.at(27), 60).await, proceed(1, true, None));
    l.complete(&id, &outcome("c1", None, None), cx.at(28))
        .await
        .expect("complete");
    assert_eq!(
        l.requeue(&id, cx.at(29)).await.expect("requeue"),
        None,
        "a synced event is not replayed"
    );

    let no_payload = cx.name("e2");
    assert!(l
        .mark_dead(&no_payload, &permanent(), None, cx.at(0))
        .await
        .expect("dead"));
    assert_eq!(
        l.requeue(&no_payload, cx.at(1)).await.expect("requeue"),
        None,
        "a dead event without its payload cannot be replayed"
    );
    assert_eq!(get(l, &no_payload).await.status, LedgerStatus::Dead);
    assert_eq!(
        l.requeue(&cx.name("unknown"), cx.at(1))
            .await
            .expect("requeue"),
        None,
        "an unknown event is not replayed"
    );
}

/// `deliveries` and delivery ids: one record per connection, in connection order.
async fn deliveries_are_one_per_connection(l: Arc<dyn Ledger>, cx: Cx) {
    let l = l.as_ref();
    let zeta = cx.routed("e1", "zeta");
    let alpha = cx.routed("e1", "alpha");
    for (i, lead) in [&zeta, &alpha].into_iter().enumerate() {
        assert_eq!(
            l.record_received(lead, &lead.to_json(), cx.at(i as i64))
                .await
                .expect("rr"),
            Received::New,
            "each delivery of one event is recorded on its own ({})",
            lead.delivery_id()
        );
    }
    assert_eq!(
        begin(l, &alpha, cx.at(5), 60).await,
        proceed(1, false, None)
    );
    let all = l.deliveries(&cx.name("e1")).await.expect("deliveries");
    let seen: Vec<_> = all
        .iter()
        .map(|r| (r.connection.clone(), r.status, r.delivery_id()))
        .collect();
    assert_eq!(
        seen,
        vec![
            (
                Some(cx.name("alpha")),
                LedgerStatus::InProgress,
                alpha.delivery_id()
            ),
            (
                Some(cx.name("zeta")),
                LedgerStatus::Received,
                zeta.delivery_id()
            ),
        ],
        "every delivery, in connection order, each with its own status"
    );
    assert!(all.iter().all(|r| r.event_id == cx.name("e1")));
    let rec = get(l, &alpha.delivery_id()).await;
    assert_eq!(rec.connection, Some(cx.name("alpha")));
    assert_eq!(
        l.get(&cx.name("e1")).await.expect("get"),
        None,
        "no delivery without a connection"
    );

    let single = cx.lead("e2");
    l.record_received(&single, &single.to_json(), cx.at(0))
        .await
        .expect("rr");
    let all = l.deliveries(&cx.name("e2")).await.expect("deliveries");
    assert_eq!(all.len(), 1);
    assert_eq!(all[0].connection, None);
    assert_eq!(all[0].delivery_id(), cx.name("e2"));
    assert!(
        l.deliveries(&cx.name("unknown"))
            .await
            .expect("deliveries")
            .is_empty(),
        "an unknown event has no delivery"
    );
}

/// `list`: one status, newest first, narrowed by time, bot and reason, limited.
async fn list_filters_by_status_time_bot_and_reason(l: Arc<dyn Ledger>, cx: Cx) {
    let l = l.as_ref();
    let bot = cx.bot();
    let other_bot = cx.name("otherbot");
    let exhausted = reason(ErrorClass::Transient, "retries_exhausted");
    let dead = [
        ("e1", &bot, permanent(), 10),
        ("e2", &bot, exhausted.clone(), 11),
        ("e3", &bot, permanent(), 12),
        ("e4", &other_bot, permanent(), 13),
    ];
    for (event, bot, why, at) in &dead {
        let lead = cx.lead_of(event, bot, "Asked about pricing");
        l.record_received(&lead, &lead.to_json(), cx.at(0))
            .await
            .expect("rr");
        assert!(l
            .mark_dead(&lead.delivery_id(), why, None, cx.at(*at))
            .await
            .expect("dead"));
    }
    let synced = cx.lead("e5");
    begin(l, &synced, cx.at(0), 60).await;
    l.complete(&synced.delivery_id(), &outcome("c1", None, None), cx.at(14))
        .await
        .expect("complete");
    let ids = |v: Vec<LedgerRecord>| v.into_iter().map(|r| r.event_id).collect::<Vec<_>>();
    let names = |v: &[&str]| v.iter().map(|e| cx.name(e)).collect::<Vec<_>>();
    let mut f = ListFilter::status(LedgerStatus::Dead);
    f.bot_id = Some(bot.clone());
    assert_eq!(
        ids(l.list(&f).await.expect("list")),
        names(&["e3", "e2", "e1"]),
        "dead events of the bot, newest first"
    );
    let mut since = f.clone();
    since.since = Some(cx.at(11));
    assert_eq!(
        ids(l.list(&since).await.expect("list")),
        names(&["e3", "e2"]),
        "updated at or after `since`"
    );
    let mut by_reason = f.clone();
    by_reason.reason = Some("crm_rejected".into());
    assert_eq!(
        ids(l.list(&by_reason).await.expect("list")),
        names(&["e3", "e1"]),
        "by the last error's code"
    );
    let mut limited = f.clone();
    limited.limit = Some(2);
    assert_eq!(
        ids(l.list(&limited).await.expect("list")),
        names(&["e3", "e2"]),
        "the newest `limit`"
    );
    let mut combined = by_reason.clone();
    combined.limit = Some(1);
    combined.since = Some(cx.at(10));
    assert_eq!(
        ids(l.list(&combined).await.expect("list")),
        names(&["e3"]),
        "every filter at once"
    );
    let mut other = f.clone();
    other.bot_id = Some(other_bot);
    assert_eq!(
        ids(l.list(&other).await.expect("list")),
        names(&["e4"]),
        "another bot's"
    );
    let mut synced_f = ListFilter::status(LedgerStatus::Synced);
    synced_f.bot_id = Some(bot);
    let got = l.list(&synced_f).await.expect("list");
    assert_eq!(ids(got.clone()), names(&["e5"]), "another status");
    assert_eq!(got[0].outcome, Some(outcome("c1", None, None)));
}

/// `record_rejected`: kept (no payload) and counted per bot and alert window.
async fn rejections_are_recorded_and_counted_per_window(l: Arc<dyn Ledger>, cx: Cx) {
    let l = l.as_ref();
    // Windows are counted per bot; pick ones of this run only all the same.
    let offset = i64::from(rand::random::<u32>() % 1_000_000) * 600;
    let w1 = cx.at(-offset);
    let w2 = cx.at(-offset + 300);
    let rejection = |id: &str, code: &str| Rejection {
        id: cx.name(id),
        bot_id: Some(cx.bot()),
        errors: vec![FieldError::new("consent.given_at", code, "required")],
        identity: Some("p***@e***.com".into()),
        http_status: 422,
    };
    let r1 = rejection("e1", "consent_required");
    let r2 = rejection("e2", "invalid_email");
    let r3 = rejection("e3", "consent_required");
    let counts = [
        l.record_rejected(&r1, w1, cx.at(1))
            .await
            .expect("rejected"),
        l.record_rejected(&r2, w1, cx.at(2))
            .await
            .expect("rejected"),
        l.record_rejected(&r3, w2, cx.at(3))
            .await
            .expect("rejected"),
    ];
    assert_eq!(
        counts.map(|t| t.in_window),
        [1, 2, 1],
        "counted per window, this one included"
    );
    // Another bot's rejection in the same window is that bot's first.
    let other = Rejection {
        bot_id: Some(format!("{}-other", cx.bot())),
        ..rejection("e4", "invalid_email")
    };
    let tally = l
        .record_rejected(&other, w1, cx.at(4))
        .await
        .expect("rejected");
    assert_eq!(tally.in_window, 1, "each bot counts its own");
    let mut f = ListFilter::status(LedgerStatus::Rejected);
    f.bot_id = Some(cx.bot());
    let got = l.list(&f).await.expect("list");
    let seen: Vec<_> = got
        .iter()
        .map(|r| (r.event_id.clone(), r.last_error.clone()))
        .collect();
    assert_eq!(
        seen,
        vec![
            (r3.id.clone(), Some(r3.reason())),
            (r2.id.clone(), Some(r2.reason())),
            (r1.id.clone(), Some(r1.reason())),
        ],
        "every rejection, newest first, with what the sender was told"
    );
    for r in &got {
        assert_eq!(r.status, LedgerStatus::Rejected);
        assert_eq!(r.payload, None, "a rejection keeps no payload");
        assert_eq!(r.payload_hash, None);
        assert_eq!(r.bot_id, Some(cx.bot()));
        assert_eq!(r.attempts, 0);
        assert_eq!(r.received_at, r.updated_at);
    }
    f.reason = Some("consent_required".into());
    let got = l.list(&f).await.expect("list");
    assert_eq!(
        got.iter().map(|r| r.event_id.clone()).collect::<Vec<_>>(),
        vec![r3.id.clone(), r1.id.clone()],
        "by the first error's code"
    );
}

fn person_lock(
    cx: &Cx,
    holder: &str,
    record: Option<&str>,
    claim: &[&str],
    until: i64,
) -> PersonLock {
    PersonLock {
        crm: cx.name("crm"),
        holder: cx.name(holder),
        until: cx.at(until),
        record: record.map(|r| cx.name(r)),
        claim: claim.iter().map(|h| cx.name(h)).collect(),
    }
}

fn release(
    cx: &Cx,
    holder: &str,
    written: Option<Written>,
    records: &[&str],
    claims: &[&str],
) -> PersonRelease {
    PersonRelease {
        crm: cx.name("crm"),
        holder: cx.name(holder),
        written,
        records: records.iter().map(|r| cx.name(r)).collect(),
        claims: claims.iter().map(|h| cx.name(h)).collect(),
        held_until: cx.at(3600),
    }
}

fn written(
    cx: &Cx,
    record: &str,
    link: &[&str],
    applied: Option<DateTime<Utc>>,
    replaces: Option<&str>,
) -> Option<Written> {
    Some(Written {
        record: cx.name(record),
        link: link.iter().map(|h| cx.name(h)).collect(),
        applied,
        replaces: replaces.map(|r| cx.name(r)),
        created: false,
    })
}

async fn lock(l: &dyn Ledger, lock: PersonLock, now: DateTime<Utc>) -> Locked {
    l.lock_person(&lock, now).await.expect("lock_person")
}

async fn unlock(l: &dyn Ledger, r: PersonRelease, now: DateTime<Utc>) -> Vec<LinkedElsewhere> {
    l.release_person(&r, now).await.expect("release_person")
}

/// The records the ledger knows for this case's identities `hashes`.
async fn known(l: &dyn Ledger, cx: &Cx, hashes: &[&str]) -> Vec<Option<String>> {
    let hashes: Vec<String> = hashes.iter().map(|h| cx.name(h)).collect();
    l.identities(&cx.name("crm"), &hashes)
        .await
        .expect("identities")
}

fn records(cx: &Cx, r: &[Option<&str>]) -> Vec<Option<String>> {
    r.iter().map(|r| r.map(|r| cx.name(r))).collect()
}

const HELD: Locked = Locked::Held { last_applied: None };

/// `identities`, claims, re-taking one's own lock, linking on release.
async fn a_lock_claims_identities_until_they_are_linked(l: Arc<dyn Ledger>, cx: Cx) {
    let l = l.as_ref();
    assert_eq!(
        known(l, &cx, &["x", "y"]).await,
        vec![None, None],
        "nothing known yet, in the order asked"
    );
    assert_eq!(
        l.identities(&cx.name("crm"), &[])
            .await
            .expect("identities"),
        Vec::<Option<String>>::new()
    );
    assert_eq!(
        lock(l, person_lock(&cx, "a", None, &[], 60), cx.at(0)).await,
        HELD,
        "a lock of nothing is held"
    );
    assert_eq!(
        lock(l, person_lock(&cx, "a", None, &["x", "y"], 60), cx.at(0)).await,
        HELD,
        "claims on identities nobody has"
    );
    assert_eq!(
        known(l, &cx, &["x", "y"]).await,
        vec![None, None],
        "a claim is not a link"
    );
    assert_eq!(
        lock(l, person_lock(&cx, "b", None, &["y"], 60), cx.at(10)).await,
        Locked::Busy,
        "another holder's claim"
    );
    assert_eq!(
        lock(l, person_lock(&cx, "a", None, &["x", "y"], 90), cx.at(20)).await,
        HELD,
        "a holder takes again what it holds"
    );
    assert_eq!(
        lock(l, person_lock(&cx, "b", None, &["y"], 80), cx.at(70)).await,
        Locked::Busy,
        "re-taking extended the claim"
    );
    let applied = cx.at(-3600);
    assert_eq!(
        unlock(
            l,
            release(
                &cx,
                "a",
                written(&cx, "r1", &["x", "y"], Some(applied), None),
                &[],
                &["x", "y"]
            ),
            cx.at(30)
        )
        .await,
        vec![],
        "nothing was linked elsewhere"
    );
    assert_eq!(
        known(l, &cx, &["x", "y"]).await,
        records(&cx, &[Some("r1"), Some("r1")]),
        "the identities are linked to the written record"
    );
    assert_eq!(
        lock(l, person_lock(&cx, "b", None, &["x"], 90), cx.at(31)).await,
        Locked::Busy,
        "an identity with a record is not claimed"
    );
    assert_eq!(
        lock(l, person_lock(&cx, "a", None, &["y"], 90), cx.at(31)).await,
        Locked::Busy,
        "not even by the holder that linked it"
    );
    let other_crm: Vec<String> = ["x", "y"].iter().map(|h| cx.name(h)).collect();
    assert_eq!(
        l.identities(&cx.name("other-crm"), &other_crm)
            .await
            .expect("identities"),
        vec![None, None],
        "each connection has its own identities"
    );
    assert_eq!(
        lock(l, person_lock(&cx, "b", Some("r1"), &[], 90), cx.at(32)).await,
        Locked::Held {
            last_applied: Some(applied)
        },
        "the release left the record unleased, with its last applied event"
    );
}

/// A record the CRM created under the holder's claims, released while the
/// lock holds: its identities are linked, its last applied event kept, the
/// claims it did not link given back (the DynamoDB ledger writes it in one
/// request). Released after the lock ran out, the links are conditional
/// again: a claim another holder took over and linked is not overwritten.
async fn a_record_created_under_the_claims_is_linked_and_a_late_release_checks_again(
    l: Arc<dyn Ledger>,
    cx: Cx,
) {
    let l = l.as_ref();
    assert_eq!(
        lock(
            l,
            person_lock(&cx, "a", None, &["x", "y", "z"], 60),
            cx.at(0)
        )
        .await,
        HELD
    );
    let applied = cx.at(-60);
    let mut created = written(&cx, "r1", &["x", "y"], Some(applied), None);
    if let Some(w) = created.as_mut() {
        w.created = true;
    }
    let mut r = release(&cx, "a", created, &[], &["x", "y", "z"]);
    r.held_until = cx.at(60);
    assert_eq!(unlock(l, r, cx.at(5)).await, vec![]);
    assert_eq!(
        known(l, &cx, &["x", "y", "z"]).await,
        records(&cx, &[Some("r1"), Some("r1"), None]),
        "the created record's identities are linked"
    );
    assert_eq!(
        lock(l, person_lock(&cx, "b", None, &["z"], 90), cx.at(6)).await,
        HELD,
        "the claim it did not link was given back"
    );
    assert_eq!(
        lock(l, person_lock(&cx, "b", Some("r1"), &[], 90), cx.at(6)).await,
        Locked::Held {
            last_applied: Some(applied)
        },
        "the record's last applied event, unleased"
    );
    // `c` claims `w`, runs out; `d` takes the claim over and links `w` to r3;
    // `c`'s late release of its created record r2 finds `w` linked elsewhere.
    assert_eq!(
        lock(l, person_lock(&cx, "c", None, &["w"], 10), cx.at(0)).await,
        HELD
    );
    assert_eq!(
        lock(l, person_lock(&cx, "d", None, &["w"], 100), cx.at(20)).await,
        HELD
    );
    unlock(
        l,
        release(
            &cx,
            "d",
            written(&cx, "r3", &["w"], Some(cx.at(20)), None),
            &[],
            &["w"],
        ),
        cx.at(21),
    )
    .await;
    let mut late = written(&cx, "r2", &["w"], Some(cx.at(0)), None);
    if let Some(w) = late.as_mut() {
        w.created = true;
    }
    let mut r = release(&cx, "c", late, &[], &["w"]);
    r.held_until = cx.at(10);
    assert_eq!(
        unlock(l, r, cx.at(30)).await,
        vec![LinkedElsewhere {
            key_hash: cx.name("w"),
            record: cx.name("r3")
        }],
        "the late release did not take the identity"
    );
    assert_eq!(known(l, &cx, &["w"]).await, records(&cx, &[Some("r3")]));
}

/// `identities` answers each asked hash in order, for any number of hashes
/// (more than one store request holds) and the same hash asked twice (as
/// when the identity reads of a batch's flows go together).
async fn identities_are_answered_in_order_however_many_and_repeated(l: Arc<dyn Ledger>, cx: Cx) {
    let l = l.as_ref();
    let names: Vec<String> = (0..130).map(|i| format!("k{i}")).collect();
    let linked: Vec<&str> = names.iter().map(String::as_str).collect();
    unlock(
        l,
        release(
            &cx,
            "a",
            written(&cx, "r1", &linked, Some(cx.at(0)), None),
            &[],
            &[],
        ),
        cx.at(1),
    )
    .await;
    let mut asked: Vec<&str> = linked.clone();
    asked.insert(60, "unknown");
    asked.push("k3");
    let mut want: Vec<Option<&str>> = linked.iter().map(|_| Some("r1")).collect();
    want.insert(60, None);
    want.push(Some("r1"));
    assert_eq!(known(l, &cx, &asked).await, records(&cx, &want));
}

/// `lock_person` all or nothing: a refused lock takes none of its parts.
async fn a_lock_is_all_or_nothing(l: Arc<dyn Ledger>, cx: Cx) {
    let l = l.as_ref();
    assert_eq!(
        lock(l, person_lock(&cx, "a", None, &["y"], 60), cx.at(0)).await,
        HELD
    );
    assert_eq!(
        lock(l, person_lock(&cx, "b", None, &["x", "y"], 60), cx.at(1)).await,
        Locked::Busy,
        "one of the claims is another holder's"
    );
    assert_eq!(
        lock(l, person_lock(&cx, "c", None, &["x"], 60), cx.at(2)).await,
        HELD,
        "the refused lock left x unclaimed"
    );
    assert_eq!(
        lock(l, person_lock(&cx, "a", Some("r1"), &[], 60), cx.at(3)).await,
        HELD
    );
    assert_eq!(
        lock(l, person_lock(&cx, "b", Some("r1"), &["z"], 60), cx.at(4)).await,
        Locked::Busy,
        "the record is another holder's"
    );
    assert_eq!(
        lock(l, person_lock(&cx, "c", None, &["z"], 60), cx.at(5)).await,
        HELD,
        "the refused lock left z unclaimed"
    );
    assert_eq!(
        lock(l, person_lock(&cx, "b", Some("r2"), &["y"], 60), cx.at(6)).await,
        Locked::Busy,
        "a claim is another holder's"
    );
    assert_eq!(
        lock(l, person_lock(&cx, "c", Some("r2"), &[], 60), cx.at(7)).await,
        HELD,
        "the refused lock left r2 unleased"
    );
    // A claimed identity that got a record meanwhile.
    assert_eq!(
        unlock(
            l,
            release(&cx, "d", written(&cx, "r3", &["w"], None, None), &[], &[]),
            cx.at(8)
        )
        .await,
        vec![]
    );
    assert_eq!(
        lock(
            l,
            person_lock(&cx, "b", Some("r4"), &["v", "w"], 60),
            cx.at(9)
        )
        .await,
        Locked::Busy,
        "an identity that has a record now"
    );
    assert_eq!(
        lock(l, person_lock(&cx, "c", Some("r4"), &["v"], 60), cx.at(10)).await,
        HELD,
        "the refused lock left r4 and v free"
    );
}

/// Leases and claims: held up to their end, taken over after it; release frees only the holder's.
async fn leases_and_claims_run_out_and_are_taken_over(l: Arc<dyn Ledger>, cx: Cx) {
    let l = l.as_ref();
    assert_eq!(
        lock(l, person_lock(&cx, "a", Some("r1"), &["x"], 60), cx.at(0)).await,
        HELD
    );
    assert_eq!(
        lock(l, person_lock(&cx, "b", Some("r1"), &[], 120), cx.at(30)).await,
        Locked::Busy,
        "a held record lease"
    );
    assert_eq!(
        lock(l, person_lock(&cx, "b", Some("r1"), &[], 120), cx.at(60)).await,
        Locked::Busy,
        "a record lease is held up to and including its last instant"
    );
    assert_eq!(
        lock(l, person_lock(&cx, "b", None, &["x"], 120), cx.at(60)).await,
        Locked::Busy,
        "a claim is held up to and including its last instant"
    );
    assert_eq!(
        lock(l, person_lock(&cx, "b", Some("r1"), &[], 120), cx.at(61)).await,
        HELD,
        "an expired record lease is taken over"
    );
    assert_eq!(
        lock(l, person_lock(&cx, "b", None, &["x"], 120), cx.at(61)).await,
        HELD,
        "an expired claim is taken over"
    );
    assert_eq!(
        unlock(l, release(&cx, "a", None, &["r1"], &["x"]), cx.at(62)).await,
        vec![]
    );
    assert_eq!(
        lock(l, person_lock(&cx, "c", Some("r1"), &[], 120), cx.at(63)).await,
        Locked::Busy,
        "the old holder's release leaves the new holder's lease"
    );
    assert_eq!(
        lock(l, person_lock(&cx, "c", None, &["x"], 120), cx.at(63)).await,
        Locked::Busy,
        "the old holder's release leaves the new holder's claim"
    );
    assert_eq!(
        unlock(l, release(&cx, "b", None, &["r1"], &["x"]), cx.at(64)).await,
        vec![]
    );
    assert_eq!(
        lock(l, person_lock(&cx, "c", Some("r1"), &["x"], 120), cx.at(65)).await,
        HELD,
        "released: the next holder takes both at once"
    );
    assert_eq!(
        known(l, &cx, &["x"]).await,
        vec![None],
        "a release without a write links nothing"
    );
}

/// `release_person`: an identity linked to another record keeps it (`LinkedElsewhere`).
async fn release_keeps_a_link_to_another_record(l: Arc<dyn Ledger>, cx: Cx) {
    let l = l.as_ref();
    assert_eq!(
        lock(l, person_lock(&cx, "a", None, &["x"], 60), cx.at(0)).await,
        HELD
    );
    assert_eq!(
        unlock(
            l,
            release(
                &cx,
                "a",
                written(&cx, "r1", &["x"], None, None),
                &[],
                &["x"]
            ),
            cx.at(1)
        )
        .await,
        vec![]
    );
    assert_eq!(
        lock(l, person_lock(&cx, "b", None, &["y", "z"], 60), cx.at(2)).await,
        HELD
    );
    let elsewhere = unlock(
        l,
        release(
            &cx,
            "b",
            written(&cx, "r2", &["x", "y"], None, None),
            &[],
            &["y", "z"],
        ),
        cx.at(3),
    )
    .await;
    assert_eq!(
        elsewhere,
        vec![LinkedElsewhere {
            key_hash: cx.name("x"),
            record: cx.name("r1"),
        }],
        "x belongs to r1: a possible duplicate"
    );
    assert_eq!(
        known(l, &cx, &["x", "y", "z"]).await,
        records(&cx, &[Some("r1"), Some("r2"), None]),
        "x keeps its link, y is linked, z was not asked to be"
    );
    assert_eq!(
        lock(l, person_lock(&cx, "c", None, &["z"], 60), cx.at(4)).await,
        HELD,
        "a claim not turned into a link is released"
    );
    // Linking again to the same record is fine.
    assert_eq!(
        unlock(
            l,
            release(&cx, "d", written(&cx, "r2", &["y"], None, None), &[], &[]),
            cx.at(5)
        )
        .await,
        vec![],
        "an identity already linked to the record is fine"
    );
    assert_eq!(known(l, &cx, &["y"]).await, records(&cx, &[Some("r2")]));
}

/// `release_person` with `replaces`: identities of the record the CRM lost are re-linked.
async fn a_replaced_record_gives_its_identities_up(l: Arc<dyn Ledger>, cx: Cx) {
    let l = l.as_ref();
    for (record, ids) in [("r1", &["x", "y"][..]), ("r3", &["z"][..])] {
        assert_eq!(
            unlock(
                l,
                release(&cx, "a", written(&cx, record, ids, None, None), &[], &[]),
                cx.at(0)
            )
            .await,
            vec![]
        );
    }
    assert_eq!(
        lock(l, person_lock(&cx, "b", Some("r1"), &["w"], 60), cx.at(1)).await,
        HELD
    );
    let elsewhere = unlock(
        l,
        release(
            &cx,
            "b",
            written(&cx, "r2", &["x", "y", "z", "w"], None, Some("r1")),
            &["r1"],
            &["w"],
        ),
        cx.at(2),
    )
    .await;
    assert_eq!(
        elsewhere,
        vec![LinkedElsewhere {
            key_hash: cx.name("z"),
            record: cx.name("r3"),
        }],
        "only the replaced record gives its identities up"
    );
    assert_eq!(
        known(l, &cx, &["x", "y", "z", "w"]).await,
        records(&cx, &[Some("r2"), Some("r2"), Some("r3"), Some("r2")]),
        "x and y move from r1 to r2; z stays with r3; w is new"
    );
    assert_eq!(
        lock(l, person_lock(&cx, "c", Some("r1"), &[], 60), cx.at(3)).await,
        HELD,
        "the replaced record's lease was released"
    );
}

/// `release_person` moves a record's `last_applied` forward, never backwards.
async fn last_applied_only_moves_forward(l: Arc<dyn Ledger>, cx: Cx) {
    let l = l.as_ref();
    let ms = Duration::milliseconds;
    let t1 = cx.at(-300) + ms(123);
    let t2 = cx.at(-200) + ms(456);
    let t3 = cx.at(-100) + ms(789);
    assert_eq!(
        lock(l, person_lock(&cx, "a", Some("r1"), &[], 60), cx.at(0)).await,
        HELD,
        "a record nothing was applied to"
    );
    let apply = |holder: &str, t: Option<DateTime<Utc>>| {
        release(&cx, holder, written(&cx, "r1", &[], t, None), &["r1"], &[])
    };
    unlock(l, apply("a", Some(t2)), cx.at(1)).await;
    assert_eq!(
        lock(l, person_lock(&cx, "b", Some("r1"), &[], 60), cx.at(2)).await,
        Locked::Held {
            last_applied: Some(t2)
        },
        "released, with the applied event's time (to the millisecond)"
    );
    unlock(l, apply("b", Some(t1)), cx.at(3)).await;
    assert_eq!(
        lock(l, person_lock(&cx, "a", Some("r1"), &[], 60), cx.at(4)).await,
        Locked::Held {
            last_applied: Some(t2)
        },
        "an older event does not move it backwards (and the lease was released)"
    );
    unlock(l, apply("a", None), cx.at(5)).await;
    assert_eq!(
        lock(l, person_lock(&cx, "b", Some("r1"), &[], 60), cx.at(6)).await,
        Locked::Held {
            last_applied: Some(t2)
        },
        "a write of no field leaves it"
    );
    unlock(l, apply("b", Some(t3)), cx.at(7)).await;
    assert_eq!(
        lock(l, person_lock(&cx, "c", Some("r1"), &["x"], 60), cx.at(8)).await,
        Locked::Held {
            last_applied: Some(t3)
        },
        "a newer event moves it forward (reported with claims too)"
    );
    // Applied to a record that was never leased (a new record).
    unlock(
        l,
        release(
            &cx,
            "c",
            written(&cx, "r2", &["x"], Some(t1), None),
            &["r1"],
            &["x"],
        ),
        cx.at(9),
    )
    .await;
    assert_eq!(
        lock(l, person_lock(&cx, "d", Some("r2"), &[], 60), cx.at(10)).await,
        Locked::Held {
            last_applied: Some(t1)
        },
        "a new record remembers its first applied event"
    );
    assert_eq!(
        lock(l, person_lock(&cx, "d", Some("r1"), &[], 60), cx.at(10)).await,
        Locked::Held {
            last_applied: Some(t3)
        },
        "c's release freed r1"
    );
}

/// `record_conflict`: `true` once per set of records (and connection).
async fn a_conflict_is_recorded_once_per_set_of_records(l: Arc<dyn Ledger>, cx: Cx) {
    let l = l.as_ref();
    let conflict = |crm: &str, written_to: &str, others: &[&str]| IdentityConflict {
        crm: cx.name(crm),
        written_to: cx.name(written_to),
        others: others.iter().map(|r| cx.name(r)).collect(),
        delivery_id: cx.name("e1"),
        detail: "email p***@e***.com → r1".into(),
    };
    let now = cx.at(0);
    let record = |c: IdentityConflict| async move {
        l.record_conflict(&c, now).await.expect("record_conflict")
    };
    assert!(
        record(conflict("crm", "r1", &["r2"])).await,
        "the first time these records are seen"
    );
    assert!(
        !record(conflict("crm", "r1", &["r2"])).await,
        "the same conflict again"
    );
    assert!(
        !record(conflict("crm", "r2", &["r1"])).await,
        "the same set of records, written to the other one"
    );
    assert!(
        record(conflict("crm", "r1", &["r2", "r3"])).await,
        "another set of records"
    );
    assert!(
        record(conflict("other-crm", "r1", &["r2"])).await,
        "the same records on another connection"
    );
}

/// `erase_person`: by one identity, everything of the person (the identities
/// linked to the same record too), and nobody else's.
async fn erasure_takes_the_person_and_every_identity_linked_to_them(l: Arc<dyn Ledger>, cx: Cx) {
    let l = l.as_ref();
    let lead = |event: &str, visitor: serde_json::Value| {
        let e: lb_domain::LeadEvent = serde_json::from_value(serde_json::json!({
            "event_id": cx.name(event),
            "event_type": "lead.created",
            "occurred_at": "2026-05-04T11:23:45Z",
            "bot_id": cx.bot(),
            "visitor": visitor,
        }))
        .expect("valid contract event");
        QueuedLead::new(e, cx.t0).expect("an identity")
    };
    // Unique to this run and case, short enough for an email's local part.
    let short = |what: &str| {
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        cx.name(what).hash(&mut h);
        format!("{what}{:x}@example.com", h.finish())
    };
    let email = short("p");
    let hers = lead(
        "e1",
        serde_json::json!({"email": email, "phone": "+14155550123"}),
    );
    let her_phone_only = lead("e2", serde_json::json!({"phone": "+14155550123"}));
    let someone = lead("e3", serde_json::json!({"email": short("q")}));
    for x in [&hers, &her_phone_only, &someone] {
        l.record_received(x, &x.to_json(), cx.at(0))
            .await
            .expect("received");
    }
    let crm = cx.name("crm");
    let link = |record: &str, keys: Vec<String>| {
        let crm = crm.clone();
        let record = cx.name(record);
        let at = cx.at(1);
        async move {
            l.release_person(
                &PersonRelease {
                    crm,
                    holder: "h".into(),
                    written: Some(Written {
                        record,
                        link: keys,
                        applied: Some(at),
                        replaces: None,
                        created: false,
                    }),
                    records: vec![],
                    claims: vec![],
                    held_until: at,
                },
                at,
            )
            .await
            .expect("release")
        }
    };
    let hashes = |x: &QueuedLead| -> Vec<String> {
        x.event.identities().iter().map(|k| k.hashed()).collect()
    };
    link("r1", hashes(&hers)).await;
    link("r2", hashes(&someone)).await;
    l.record_conflict(
        &IdentityConflict {
            crm: crm.clone(),
            written_to: cx.name("r1"),
            others: vec![cx.name("r9")],
            delivery_id: cx.name("e1"),
            detail: "email p***@e***.com → r1".into(),
        },
        cx.at(2),
    )
    .await
    .expect("conflict");

    // asked by email only
    let erased = l
        .erase_person(&[hers.contact_key.hashed()])
        .await
        .expect("erase_person");
    assert_eq!(
        erased.deliveries,
        vec![cx.name("e1"), cx.name("e2")],
        "her deliveries, the phone-only one too (its phone is linked to her record)"
    );
    assert_eq!(erased.identity_links, 2, "her email and phone");
    assert_eq!(erased.records, 1, "her record's item");
    assert_eq!(erased.conflicts, 1, "the conflict naming her record");
    let mut want = hashes(&hers);
    want.sort();
    assert_eq!(
        erased.key_hashes, want,
        "every identity of hers, for the DLQ"
    );
    for e in ["e1", "e2"] {
        assert!(
            l.get(&cx.name(e)).await.expect("get").is_none(),
            "{e} erased"
        );
    }
    assert!(
        l.get(&cx.name("e3")).await.expect("get").is_some(),
        "nobody else"
    );
    assert_eq!(
        l.identities(&crm, &hashes(&hers))
            .await
            .expect("identities"),
        vec![None, None]
    );
    assert_eq!(
        l.identities(&crm, &hashes(&someone))
            .await
            .expect("identities"),
        vec![Some(cx.name("r2"))]
    );
    let again = l
        .erase_person(&[hers.contact_key.hashed()])
        .await
        .expect("erase_person");
    assert!(
        again.deliveries.is_empty() && again.identity_links == 0,
        "{again:?}"
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fakes::InMemoryLedger;

    #[tokio::test]
    async fn the_in_memory_ledger_keeps_the_ledger_contract() {
        let run = format!("m{}", rand::random::<u32>());
        ledger_contract(Arc::new(InMemoryLedger::default()), &run).await;
    }

    #[test]
    fn every_case_has_its_own_name() {
        let mut names: Vec<_> = cases().iter().map(|c| c.name).collect();
        let n = names.len();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), n);
    }
}
