//! The operator's use case: put dead events back on the queue once their cause is
//! fixed (`leadbridge replay`). The ledger decides (`requeue` only moves a `dead`
//! event, so a synced one never runs twice); the queue gets the stored payload
//! under a fresh deduplication id.

use chrono::{DateTime, Utc};
use lb_domain::QueuedLead;
use serde::Serialize;
use tracing::{info, warn};

use crate::ports::{
    ErrorClass, FailureReason, LeadQueue, Ledger, LedgerRecord, LedgerStatus, ListFilter, PortError,
};

/// What replay did (or, in a dry run, would do) with one dead event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum ReplayAction {
    /// Dry run: it is dead and its payload is readable.
    WouldReplay,
    /// Back on the queue; `replay` is its replay number (1 for the first replay).
    Replayed { replay: u32 },
    /// Left alone: no readable payload, or it is no longer dead.
    Skipped { reason: String },
    /// The queue refused it; the event was put back to `dead`.
    Failed { error: String },
}

impl ReplayAction {
    /// `would_replay`, `replayed`, `skipped`, `failed`.
    pub fn name(&self) -> &'static str {
        match self {
            Self::WouldReplay => "would_replay",
            Self::Replayed { .. } => "replayed",
            Self::Skipped { .. } => "skipped",
            Self::Failed { .. } => "failed",
        }
    }
}

impl std::fmt::Display for ReplayAction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::WouldReplay => f.write_str("would replay"),
            Self::Replayed { replay } => write!(f, "replayed (replay #{replay})"),
            Self::Skipped { reason } => write!(f, "skipped: {reason}"),
            Self::Failed { error } => write!(f, "failed: {error}"),
        }
    }
}

/// One dead event and what happened to it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReplayEntry {
    pub event_id: String,
    pub bot_id: Option<String>,
    /// The masked contact key (`p***@acmecorp.in`), when the payload is readable.
    pub who: Option<String>,
    #[serde(flatten)]
    pub action: ReplayAction,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReplayReport {
    pub dry_run: bool,
    pub entries: Vec<ReplayEntry>,
}

impl ReplayReport {
    fn count(&self, name: &str) -> usize {
        self.entries
            .iter()
            .filter(|e| e.action.name() == name)
            .count()
    }
    pub fn would_replay(&self) -> usize {
        self.count("would_replay")
    }
    pub fn replayed(&self) -> usize {
        self.count("replayed")
    }
    pub fn skipped(&self) -> usize {
        self.count("skipped")
    }
    pub fn failed(&self) -> usize {
        self.count("failed")
    }
}

/// Replays the dead events `filter` selects (its status must be `dead`).
///
/// For each: the stored payload is read (unreadable → skipped); unless `dry_run`,
/// the ledger moves it `dead` → `queued` (not dead any more → skipped), then the
/// queue takes it; if the queue fails, the event is put back to `dead` with its
/// previous reason and reported as failed. Only listing the ledger fails the whole run.
pub async fn replay_dead(
    ledger: &dyn Ledger,
    queue: &dyn LeadQueue,
    filter: &ListFilter,
    dry_run: bool,
    now: DateTime<Utc>,
) -> Result<ReplayReport, PortError> {
    replay_dead_reporting(ledger, queue, filter, dry_run, now, &|_, _| {}).await
}

/// [`replay_dead`], telling `progress` (done, of total) after each event.
pub async fn replay_dead_reporting(
    ledger: &dyn Ledger,
    queue: &dyn LeadQueue,
    filter: &ListFilter,
    dry_run: bool,
    now: DateTime<Utc>,
    progress: &(dyn Fn(usize, usize) + Sync),
) -> Result<ReplayReport, PortError> {
    if filter.status != LedgerStatus::Dead {
        return Err(PortError::new(format!(
            "only dead events are replayed, not {}",
            filter.status.as_str()
        )));
    }
    let records = ledger.list(filter).await?;
    let mut entries = Vec::with_capacity(records.len());
    progress(0, records.len());
    for record in &records {
        entries.push(replay_one(ledger, queue, record, dry_run, now).await);
        progress(entries.len(), records.len());
    }
    let report = ReplayReport { dry_run, entries };
    info!(
        dry_run,
        listed = records.len(),
        replayed = report.replayed(),
        skipped = report.skipped(),
        failed = report.failed(),
        "replay finished"
    );
    Ok(report)
}

pub(crate) async fn replay_one(
    ledger: &dyn Ledger,
    queue: &dyn LeadQueue,
    record: &LedgerRecord,
    dry_run: bool,
    now: DateTime<Utc>,
) -> ReplayEntry {
    // The delivery id: `<event_id>@<connection>` for a routed event.
    let event_id = record.delivery_id();
    let entry = |who: Option<String>, action: ReplayAction| ReplayEntry {
        event_id: event_id.clone(),
        bot_id: record.bot_id.clone(),
        who,
        action,
    };
    let lead = match readable_payload(record) {
        Ok(lead) => lead,
        Err(reason) => {
            warn!(event_id, reason, "dead event not replayed");
            return entry(None, ReplayAction::Skipped { reason });
        }
    };
    let who = Some(lead.contact_key.masked());
    if dry_run {
        return entry(who, ReplayAction::WouldReplay);
    }
    let replay = match ledger.requeue(&event_id, now).await {
        Ok(Some(n)) => n,
        Ok(None) => {
            return entry(
                who,
                ReplayAction::Skipped {
                    reason: "no longer dead".into(),
                },
            )
        }
        Err(e) => {
            warn!(event_id, error = %e, "ledger refused the replay");
            return entry(
                who,
                ReplayAction::Failed {
                    error: format!("ledger: {e}"),
                },
            );
        }
    };
    match queue.requeue(&lead, replay).await {
        Ok(()) => {
            info!(event_id, replay, contact = %lead.contact_key.hashed(), "dead event replayed");
            entry(who, ReplayAction::Replayed { replay })
        }
        Err(e) => {
            let reason = record.last_error.clone().unwrap_or_else(|| FailureReason {
                class: ErrorClass::Transient,
                code: "replay_failed".into(),
                message: "the replay could not be enqueued".into(),
                crm: None,
                http_status: None,
            });
            let error = match ledger.mark_dead(&event_id, &reason, None, now).await {
                Ok(_) => format!("queue: {e}; the event is dead again"),
                Err(back) => format!(
                    "queue: {e}; and it could not be put back to dead ({back}): the ledger shows it queued"
                ),
            };
            warn!(event_id, error, "replay not enqueued");
            entry(who, ReplayAction::Failed { error })
        }
    }
}

/// The stored queue message, or why it cannot be replayed. Never echoes the
/// payload (it holds the lead's personal data).
fn readable_payload(record: &LedgerRecord) -> Result<QueuedLead, String> {
    let raw = record
        .payload
        .as_deref()
        .ok_or_else(|| "no stored payload".to_string())?;
    let lead = QueuedLead::from_json(raw).map_err(|e| {
        if e.starts_with("unsupported") {
            format!("unreadable payload: {e}")
        } else {
            "unreadable payload: not a leadbridge queue message".to_string()
        }
    })?;
    if lead.event.event_id.as_str() != record.event_id {
        return Err("unreadable payload: it belongs to another event".into());
    }
    Ok(lead)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fakes::*;
    use crate::ports::SyncOutcome;

    async fn dead(ledger: &InMemoryLedger, event_id: &str, email: &str) -> QueuedLead {
        let lead = sample_lead(event_id, email);
        let now = Utc::now();
        ledger
            .record_received(&lead, &lead.to_json(), now)
            .await
            .unwrap();
        ledger
            .mark_dead(event_id, &transient(503).reason(), None, now)
            .await
            .unwrap();
        lead
    }

    fn dead_filter() -> ListFilter {
        ListFilter::status(LedgerStatus::Dead)
    }

    #[tokio::test]
    async fn a_dry_run_lists_what_would_be_replayed_and_changes_nothing() {
        let (ledger, queue) = (InMemoryLedger::default(), InMemoryQueue::default());
        dead(&ledger, "evt_1", "a@b.co").await;
        dead(&ledger, "evt_2", "c@d.co").await;
        let report = replay_dead(&ledger, &queue, &dead_filter(), true, Utc::now())
            .await
            .unwrap();
        assert!(report.dry_run);
        assert_eq!(report.would_replay(), 2);
        assert!(queue.enqueued().is_empty());
        for id in ["evt_1", "evt_2"] {
            let r = ledger.record(id).unwrap();
            assert_eq!(r.status, LedgerStatus::Dead);
            assert_eq!(r.replays, 0);
        }
        let who: Vec<_> = report
            .entries
            .iter()
            .filter_map(|e| e.who.clone())
            .collect();
        assert!(who.contains(&"a***@b.co".to_string()), "{who:?}");
    }

    #[tokio::test]
    async fn replay_requeues_the_dead_events_and_only_those() {
        let (ledger, queue) = (InMemoryLedger::default(), InMemoryQueue::default());
        dead(&ledger, "evt_dead", "a@b.co").await;
        let waiting = sample_lead("evt_waiting", "w@b.co");
        ledger
            .record_received(&waiting, &waiting.to_json(), Utc::now())
            .await
            .unwrap();
        let report = replay_dead(&ledger, &queue, &dead_filter(), false, Utc::now())
            .await
            .unwrap();
        assert_eq!(report.entries.len(), 1, "{report:?}");
        assert_eq!(report.entries[0].event_id, "evt_dead");
        assert_eq!(
            report.entries[0].action,
            ReplayAction::Replayed { replay: 1 }
        );
        let enqueued = queue.enqueued();
        assert_eq!(enqueued.len(), 1);
        assert_eq!(enqueued[0].event.event_id.as_str(), "evt_dead");
        let r = ledger.record("evt_dead").unwrap();
        assert_eq!(
            (r.status, r.attempts, r.replays),
            (LedgerStatus::Queued, 0, 1)
        );
        assert_eq!(
            ledger.record("evt_waiting").unwrap().status,
            LedgerStatus::Received
        );
    }

    #[tokio::test]
    async fn a_synced_event_is_never_replayed() {
        let (ledger, queue) = (InMemoryLedger::default(), InMemoryQueue::default());
        let lead = dead(&ledger, "evt_1", "a@b.co").await;
        replay_dead(&ledger, &queue, &dead_filter(), false, Utc::now())
            .await
            .unwrap();
        ledger
            .complete(&lead.delivery_id(), &SyncOutcome::default(), Utc::now())
            .await
            .unwrap();
        let again = replay_dead(&ledger, &queue, &dead_filter(), false, Utc::now())
            .await
            .unwrap();
        assert!(again.entries.is_empty(), "{again:?}");
        assert_eq!(
            queue.enqueued().len(),
            1,
            "enqueued once, by the first replay"
        );
        assert_eq!(
            ledger.requeue("evt_1", Utc::now()).await.unwrap(),
            None,
            "even asked directly, the ledger refuses a synced event"
        );
    }

    #[tokio::test]
    async fn an_event_that_stopped_being_dead_after_the_listing_is_skipped() {
        /// Lists dead events as they were, then sees them synced (a stale index).
        struct StaleListing(InMemoryLedger, Vec<LedgerRecord>);
        #[async_trait::async_trait]
        impl Ledger for StaleListing {
            async fn record_received(
                &self,
                l: &QueuedLead,
                b: &str,
                n: DateTime<Utc>,
            ) -> Result<crate::ports::Received, PortError> {
                self.0.record_received(l, b, n).await
            }
            async fn mark_queued(&self, e: &str, n: DateTime<Utc>) -> Result<(), PortError> {
                self.0.mark_queued(e, n).await
            }
            async fn begin(
                &self,
                l: &QueuedLead,
                b: &str,
                n: DateTime<Utc>,
                u: DateTime<Utc>,
            ) -> Result<crate::ports::Begin, PortError> {
                self.0.begin(l, b, n, u).await
            }
            async fn complete(
                &self,
                e: &str,
                o: &SyncOutcome,
                n: DateTime<Utc>,
            ) -> Result<(), PortError> {
                self.0.complete(e, o, n).await
            }
            async fn fail(
                &self,
                e: &str,
                r: &FailureReason,
                a: DateTime<Utc>,
                c: bool,
                n: DateTime<Utc>,
            ) -> Result<(), PortError> {
                self.0.fail(e, r, a, c, n).await
            }
            async fn mark_dead(
                &self,
                e: &str,
                r: &FailureReason,
                p: Option<&str>,
                n: DateTime<Utc>,
            ) -> Result<bool, PortError> {
                self.0.mark_dead(e, r, p, n).await
            }
            async fn mark_dead_letter(
                &self,
                e: &str,
                r: &FailureReason,
                p: Option<&str>,
                at: DateTime<Utc>,
                n: DateTime<Utc>,
            ) -> Result<bool, PortError> {
                self.0.mark_dead_letter(e, r, p, at, n).await
            }
            async fn get(&self, e: &str) -> Result<Option<LedgerRecord>, PortError> {
                self.0.get(e).await
            }
            async fn deliveries(&self, e: &str) -> Result<Vec<LedgerRecord>, PortError> {
                self.0.deliveries(e).await
            }
            async fn record_rejected(
                &self,
                r: &crate::ports::Rejection,
                w: DateTime<Utc>,
                n: DateTime<Utc>,
            ) -> Result<crate::ports::RejectionTally, PortError> {
                self.0.record_rejected(r, w, n).await
            }
            async fn identities(
                &self,
                c: &str,
                k: &[String],
            ) -> Result<Vec<Option<String>>, PortError> {
                self.0.identities(c, k).await
            }
            async fn lock_person(
                &self,
                l: &crate::ports::PersonLock,
                n: DateTime<Utc>,
            ) -> Result<crate::ports::Locked, PortError> {
                self.0.lock_person(l, n).await
            }
            async fn release_person(
                &self,
                r: &crate::ports::PersonRelease,
                n: DateTime<Utc>,
            ) -> Result<Vec<crate::ports::LinkedElsewhere>, PortError> {
                self.0.release_person(r, n).await
            }
            async fn record_conflict(
                &self,
                c: &crate::ports::IdentityConflict,
                n: DateTime<Utc>,
            ) -> Result<bool, PortError> {
                self.0.record_conflict(c, n).await
            }
            async fn claim_once(&self, k: &str, n: DateTime<Utc>) -> Result<bool, PortError> {
                self.0.claim_once(k, n).await
            }
            async fn record_progress(
                &self,
                e: &str,
                o: &SyncOutcome,
                n: DateTime<Utc>,
            ) -> Result<(), PortError> {
                self.0.record_progress(e, o, n).await
            }
            async fn erase_person(&self, k: &[String]) -> Result<crate::ports::Erased, PortError> {
                self.0.erase_person(k).await
            }
            async fn list(&self, _f: &ListFilter) -> Result<Vec<LedgerRecord>, PortError> {
                Ok(self.1.clone())
            }
            async fn requeue(&self, e: &str, n: DateTime<Utc>) -> Result<Option<u32>, PortError> {
                self.0.requeue(e, n).await
            }
        }

        let inner = InMemoryLedger::default();
        let lead = dead(&inner, "evt_1", "a@b.co").await;
        let listed = vec![inner.record("evt_1").unwrap()];
        inner
            .complete(&lead.delivery_id(), &SyncOutcome::default(), Utc::now())
            .await
            .unwrap();
        let ledger = StaleListing(inner, listed);
        let queue = InMemoryQueue::default();
        let report = replay_dead(&ledger, &queue, &dead_filter(), false, Utc::now())
            .await
            .unwrap();
        assert_eq!(
            report.entries[0].action,
            ReplayAction::Skipped {
                reason: "no longer dead".into()
            }
        );
        assert!(queue.enqueued().is_empty());
    }

    #[tokio::test]
    async fn an_enqueue_failure_puts_the_event_back_to_dead_with_its_reason() {
        let (ledger, queue) = (InMemoryLedger::default(), InMemoryQueue::default());
        dead(&ledger, "evt_1", "a@b.co").await;
        let before = ledger.record("evt_1").unwrap().last_error;
        queue.set_failing(true);
        let report = replay_dead(&ledger, &queue, &dead_filter(), false, Utc::now())
            .await
            .unwrap();
        assert_eq!(report.failed(), 1, "{report:?}");
        assert!(
            matches!(&report.entries[0].action, ReplayAction::Failed { error } if error.contains("dead again")),
            "{report:?}"
        );
        let r = ledger.record("evt_1").unwrap();
        assert_eq!(r.status, LedgerStatus::Dead);
        assert_eq!(r.last_error, before, "the previous reason is kept");

        queue.set_failing(false);
        let report = replay_dead(&ledger, &queue, &dead_filter(), false, Utc::now())
            .await
            .unwrap();
        assert_eq!(
            report.replayed(),
            1,
            "it can be replayed once the queue is back"
        );
    }

    #[tokio::test]
    async fn an_unreadable_payload_is_skipped_with_a_reason_and_never_panics() {
        let (ledger, queue) = (InMemoryLedger::default(), InMemoryQueue::default());
        let now = Utc::now();
        ledger
            .mark_dead(
                "sqs:m1",
                &permanent("x").reason(),
                Some("{\"email\":\"priya@acme.in\"}"),
                now,
            )
            .await
            .unwrap();
        ledger
            .mark_dead("evt_nopayload", &permanent("x").reason(), None, now)
            .await
            .unwrap();
        let report = replay_dead(&ledger, &queue, &dead_filter(), false, now)
            .await
            .unwrap();
        assert_eq!(report.skipped(), 2, "{report:?}");
        for e in &report.entries {
            let ReplayAction::Skipped { reason } = &e.action else {
                panic!("{e:?}")
            };
            assert!(!reason.contains("priya"), "{reason}");
        }
        assert!(queue.enqueued().is_empty());
        assert_eq!(ledger.record("sqs:m1").unwrap().status, LedgerStatus::Dead);
    }

    #[tokio::test]
    async fn only_dead_events_can_be_asked_for() {
        let (ledger, queue) = (InMemoryLedger::default(), InMemoryQueue::default());
        let r = replay_dead(
            &ledger,
            &queue,
            &ListFilter::status(LedgerStatus::Synced),
            false,
            Utc::now(),
        )
        .await;
        assert!(r.is_err());
    }

    #[tokio::test]
    async fn the_report_serializes_each_action_by_name() {
        let (ledger, queue) = (InMemoryLedger::default(), InMemoryQueue::default());
        dead(&ledger, "evt_1", "a@b.co").await;
        let report = replay_dead(&ledger, &queue, &dead_filter(), false, Utc::now())
            .await
            .unwrap();
        let v = serde_json::to_value(&report).unwrap();
        assert_eq!(v["entries"][0]["action"], "replayed");
        assert_eq!(v["entries"][0]["replay"], 1);
        assert_eq!(v["entries"][0]["event_id"], "evt_1");
        assert_eq!(v["entries"][0]["bot_id"], "bot_test");
    }
}
