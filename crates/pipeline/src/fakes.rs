//! In-memory fakes of every port, for fast unit tests of the use cases
//! (alongside, never instead of, the end-to-end tests against moto and the simulators).

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use lb_domain::{split_delivery_id, EventId, QueuedLead};

use crate::ports::*;

fn down(flag: &AtomicBool, what: &str) -> Result<(), PortError> {
    match flag.load(Ordering::SeqCst) {
        true => Err(PortError::new(format!("{what} unavailable (fake)"))),
        false => Ok(()),
    }
}

/// A bot's alert window of rejections: its start and the bot.
type RejectionWindow = (DateTime<Utc>, Option<String>);

/// A ledger with the same semantics as the DynamoDB one.
#[derive(Default)]
pub struct InMemoryLedger {
    records: Mutex<HashMap<String, LedgerRecord>>,
    /// `<crm>#<identity hash>` → its record and claim.
    identities: Mutex<HashMap<String, IdentityItem>>,
    /// `<crm>#<record id>` → its lease and newest applied event.
    persons: Mutex<HashMap<String, PersonItem>>,
    conflicts: Mutex<Vec<(String, IdentityConflict)>>,
    rejections: Mutex<Vec<LedgerRecord>>,
    rejection_windows: Mutex<HashMap<RejectionWindow, u64>>,
    /// Keys claimed once ([`Ledger::claim_once`]).
    claimed: Mutex<std::collections::HashSet<String>>,
    /// When each delivery was last replayed ([`Ledger::requeue`]).
    replayed_at: Mutex<HashMap<String, DateTime<Utc>>>,
    failing: AtomicBool,
    fail_complete: AtomicBool,
    /// `begin` refused as DynamoDB refuses an invalid request (ValidationException).
    refusing: AtomicBool,
    /// [`Ledger::identities`] calls so far.
    identity_reads: std::sync::atomic::AtomicUsize,
    /// How the identity reads misbehave (see [`InMemoryLedger::identities_answer`]).
    identities_fault: Mutex<Option<IdentitiesFault>>,
}

/// A wrong answer of [`Ledger::identities`], for the callers' error paths.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IdentitiesFault {
    /// The read fails (the store is unreachable).
    Fail,
    /// One answer fewer than the hashes asked about.
    Short,
}

#[derive(Default)]
struct IdentityItem {
    crm_id: Option<String>,
    claim: Option<(String, DateTime<Utc>)>,
}

#[derive(Default)]
struct PersonItem {
    lease: Option<(String, DateTime<Utc>)>,
    last_applied: Option<DateTime<Utc>>,
}

impl InMemoryLedger {
    /// How many times the identity memory was read.
    pub fn identity_reads(&self) -> usize {
        self.identity_reads
            .load(std::sync::atomic::Ordering::SeqCst)
    }

    /// The possible duplicates recorded so far, first first.
    pub fn conflicts(&self) -> Vec<IdentityConflict> {
        self.conflicts
            .lock()
            .unwrap()
            .iter()
            .map(|(_, c)| c.clone())
            .collect()
    }
    /// The delivery as dead-lettered, with its payload and no recorded progress.
    pub fn seed_dead(&self, delivery_id: &str, lead: &QueuedLead) {
        let mut m = self.records.lock().unwrap();
        let r = m
            .entry(delivery_id.to_string())
            .or_insert_with(|| blank(delivery_id, LedgerStatus::Dead, None));
        r.status = LedgerStatus::Dead;
        r.outcome = None;
        r.payload = Some(lead.to_json());
    }
    /// Links an identity to a record, as an earlier sync would have.
    pub fn seed_identity(&self, crm: &str, key_hash: &str, record: &str) {
        self.identities
            .lock()
            .unwrap()
            .entry(format!("{crm}#{key_hash}"))
            .or_default()
            .crm_id = Some(record.to_string());
    }
    /// The record of one delivery (`evt_1`, or `evt_1@connection`).
    pub fn record(&self, delivery_id: &str) -> Option<LedgerRecord> {
        self.records.lock().unwrap().get(delivery_id).cloned()
    }
    /// The rejections recorded so far, oldest first.
    pub fn rejections(&self) -> Vec<LedgerRecord> {
        self.rejections.lock().unwrap().clone()
    }
    pub fn set_failing(&self, f: bool) {
        self.failing.store(f, Ordering::SeqCst);
    }
    /// `begin` is refused as DynamoDB refuses a request it will never take.
    pub fn refuse_everything(&self, r: bool) {
        self.refusing.store(r, Ordering::SeqCst);
    }
    /// From now on, the identity reads answer so (`None`: rightly).
    pub fn identities_answer(&self, fault: Option<IdentitiesFault>) {
        *self.identities_fault.lock().unwrap() = fault;
    }
    /// The next `complete` fails (a crash between the CRM write and the ledger write).
    pub fn fail_next_complete(&self) {
        self.fail_complete.store(true, Ordering::SeqCst);
    }
    /// Every in-progress lease has run out (its invocation timed out).
    pub fn expire_leases(&self) {
        for r in self.records.lock().unwrap().values_mut() {
            r.lease_until = Some(Utc::now() - chrono::Duration::seconds(1));
        }
    }
    /// The delivery as after one failed attempt.
    pub fn seed_failure(&self, event_id: &str, reason: FailureReason) {
        self.records.lock().unwrap().insert(
            event_id.to_string(),
            LedgerRecord {
                attempts: 1,
                ..blank(event_id, LedgerStatus::Retrying, Some(reason))
            },
        );
    }
}

fn blank(
    delivery_id: &str,
    status: LedgerStatus,
    last_error: Option<FailureReason>,
) -> LedgerRecord {
    let (event_id, connection) = split_delivery_id(delivery_id);
    LedgerRecord {
        event_id: event_id.to_string(),
        connection: connection.map(str::to_string),
        status,
        bot_id: None,
        contact_key_hash: None,
        payload_hash: None,
        payload: None,
        contact: None,
        attempts: 0,
        replays: 0,
        lease_until: None,
        next_attempt_at: None,
        last_error,
        outcome: None,
        received_at: None,
        updated_at: None,
        history: Vec::new(),
    }
}

fn fresh(lead: &QueuedLead, body: &str, status: LedgerStatus, now: DateTime<Utc>) -> LedgerRecord {
    LedgerRecord {
        bot_id: Some(lead.event.bot_id.as_str().into()),
        contact_key_hash: Some(lead.contact_key.hashed()),
        payload_hash: Some(lead.payload_hash.clone()),
        payload: Some(body.to_string()),
        contact: Some(lead.contact_key.masked()),
        received_at: Some(now),
        updated_at: Some(now),
        ..blank(&lead.delivery_id(), status, None)
    }
}

#[async_trait]
impl Ledger for InMemoryLedger {
    async fn record_received(
        &self,
        lead: &QueuedLead,
        body: &str,
        now: DateTime<Utc>,
    ) -> Result<Received, PortError> {
        down(&self.failing, "ledger")?;
        let mut m = self.records.lock().unwrap();
        let id = lead.delivery_id();
        if let Some(r) = m.get(&id) {
            return Ok(Received::Existing(Box::new(r.clone())));
        }
        m.insert(id, fresh(lead, body, LedgerStatus::Received, now));
        Ok(Received::New)
    }
    async fn mark_queued(&self, delivery_id: &str, now: DateTime<Utc>) -> Result<(), PortError> {
        down(&self.failing, "ledger")?;
        if let Some(r) = self.records.lock().unwrap().get_mut(delivery_id) {
            if r.status == LedgerStatus::Received {
                r.status = LedgerStatus::Queued;
                r.updated_at = Some(now);
            }
        }
        Ok(())
    }
    async fn begin(
        &self,
        lead: &QueuedLead,
        body: &str,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
    ) -> Result<Begin, PortError> {
        down(&self.failing, "ledger")?;
        if self.refusing.load(Ordering::SeqCst) {
            return Err(PortError::refused(
                "ValidationException: Item size has exceeded the maximum allowed size (fake)",
            ));
        }
        let mut m = self.records.lock().unwrap();
        let r = m
            .entry(lead.delivery_id())
            .or_insert_with(|| fresh(lead, body, LedgerStatus::Queued, now));
        if r.payload_hash
            .as_deref()
            .is_some_and(|h| h != lead.payload_hash)
        {
            return Ok(Begin::Conflict);
        }
        match r.status {
            LedgerStatus::Synced => return Ok(Begin::AlreadySynced(r.outcome.clone())),
            LedgerStatus::Dead => return Ok(Begin::AlreadyDead),
            // Held up to and including its last instant (`lease_until < now` has run out).
            LedgerStatus::InProgress if r.lease_until.is_some_and(|l| l >= now) => {
                return Ok(Begin::InProgress {
                    lease_until: r.lease_until.unwrap_or(now),
                })
            }
            _ => {}
        }
        r.status = LedgerStatus::InProgress;
        r.attempts += 1;
        r.lease_until = Some(lease_until);
        r.updated_at = Some(now);
        Ok(Begin::Proceed {
            attempt: r.attempts,
            follows_earlier: r.attempts > 1 || r.replays > 0 || r.last_error.is_some(),
            prior: r.outcome.clone(),
        })
    }
    async fn complete(
        &self,
        delivery_id: &str,
        outcome: &SyncOutcome,
        now: DateTime<Utc>,
    ) -> Result<(), PortError> {
        down(&self.failing, "ledger")?;
        if self.fail_complete.swap(false, Ordering::SeqCst) {
            return Err(PortError::new("crash before the ledger write (fake)"));
        }
        let mut m = self.records.lock().unwrap();
        let r = m
            .get_mut(delivery_id)
            .ok_or_else(|| PortError::new("no such event"))?;
        r.status = LedgerStatus::Synced;
        r.outcome = Some(outcome.clone());
        r.payload = None;
        r.lease_until = None;
        r.next_attempt_at = None;
        r.updated_at = Some(now);
        r.history
            .push(crate::ports::AttemptRecord::synced(outcome, now));
        Ok(())
    }
    async fn fail(
        &self,
        delivery_id: &str,
        reason: &FailureReason,
        next_attempt_at: DateTime<Utc>,
        counted: bool,
        now: DateTime<Utc>,
    ) -> Result<(), PortError> {
        down(&self.failing, "ledger")?;
        let mut m = self.records.lock().unwrap();
        // Like the conditional update: an unknown, synced or dead event is left alone.
        let Some(r) = m.get_mut(delivery_id) else {
            return Ok(());
        };
        if matches!(r.status, LedgerStatus::Synced | LedgerStatus::Dead) {
            return Ok(());
        }
        if !counted {
            r.attempts = r.attempts.saturating_sub(1);
        }
        r.status = LedgerStatus::Retrying;
        r.last_error = Some(reason.clone());
        r.next_attempt_at = Some(next_attempt_at);
        r.lease_until = None;
        r.updated_at = Some(now);
        r.history
            .push(crate::ports::AttemptRecord::failed("retrying", reason, now));
        Ok(())
    }
    async fn mark_dead_letter(
        &self,
        delivery_id: &str,
        reason: &FailureReason,
        payload: Option<&str>,
        sent_at: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<bool, PortError> {
        down(&self.failing, "ledger")?;
        let replayed_since = self
            .replayed_at
            .lock()
            .unwrap()
            .get(delivery_id)
            .is_some_and(|at| *at >= sent_at);
        if replayed_since {
            return Ok(false);
        }
        self.mark_dead(delivery_id, reason, payload, now).await
    }
    async fn mark_dead(
        &self,
        event_id: &str,
        reason: &FailureReason,
        payload: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<bool, PortError> {
        down(&self.failing, "ledger")?;
        let mut m = self.records.lock().unwrap();
        let r = m
            .entry(event_id.into())
            .or_insert_with(|| blank(event_id, LedgerStatus::Dead, None));
        if r.status == LedgerStatus::Synced {
            return Ok(false);
        }
        r.status = LedgerStatus::Dead;
        r.last_error = Some(reason.clone());
        r.lease_until = None;
        r.next_attempt_at = None;
        if r.payload.is_none() {
            r.payload = payload.map(str::to_string);
        }
        r.received_at.get_or_insert(now);
        r.updated_at = Some(now);
        r.history
            .push(crate::ports::AttemptRecord::failed("dead", reason, now));
        Ok(true)
    }
    async fn get(&self, delivery_id: &str) -> Result<Option<LedgerRecord>, PortError> {
        down(&self.failing, "ledger")?;
        Ok(self.record(delivery_id))
    }
    async fn deliveries(&self, event_id: &str) -> Result<Vec<LedgerRecord>, PortError> {
        down(&self.failing, "ledger")?;
        let mut v: Vec<LedgerRecord> = self
            .records
            .lock()
            .unwrap()
            .values()
            .filter(|r| r.event_id == event_id)
            .cloned()
            .collect();
        v.sort_by(|a, b| a.connection.cmp(&b.connection));
        Ok(v)
    }
    async fn identities(
        &self,
        crm: &str,
        key_hashes: &[String],
    ) -> Result<Vec<Option<String>>, PortError> {
        down(&self.failing, "ledger")?;
        self.identity_reads
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let fault = *self.identities_fault.lock().unwrap();
        if fault == Some(IdentitiesFault::Fail) {
            return Err(PortError::new("ledger unavailable"));
        }
        let m = self.identities.lock().unwrap();
        let mut found: Vec<Option<String>> = key_hashes
            .iter()
            .map(|h| m.get(&format!("{crm}#{h}")).and_then(|i| i.crm_id.clone()))
            .collect();
        if fault == Some(IdentitiesFault::Short) {
            found.pop();
        }
        Ok(found)
    }
    async fn lock_person(
        &self,
        lock: &PersonLock,
        now: DateTime<Utc>,
    ) -> Result<Locked, PortError> {
        down(&self.failing, "ledger")?;
        let mut ids = self.identities.lock().unwrap();
        let mut persons = self.persons.lock().unwrap();
        let free = |held: &Option<(String, DateTime<Utc>)>| {
            held.as_ref()
                .is_none_or(|(by, until)| *until < now || *by == lock.holder)
        };
        // All or nothing, as the DynamoDB adapter (which gives back what it took).
        for h in &lock.claim {
            if let Some(i) = ids.get(&format!("{}#{h}", lock.crm)) {
                if i.crm_id.is_some() || !free(&i.claim) {
                    return Ok(Locked::Busy);
                }
            }
        }
        if let Some(r) = &lock.record {
            if let Some(p) = persons.get(&format!("{}#{r}", lock.crm)) {
                if !free(&p.lease) {
                    return Ok(Locked::Busy);
                }
            }
        }
        for h in &lock.claim {
            ids.entry(format!("{}#{h}", lock.crm)).or_default().claim =
                Some((lock.holder.clone(), lock.until));
        }
        let last_applied = match &lock.record {
            Some(r) => {
                let p = persons.entry(format!("{}#{r}", lock.crm)).or_default();
                p.lease = Some((lock.holder.clone(), lock.until));
                p.last_applied
            }
            None => None,
        };
        Ok(Locked::Held { last_applied })
    }
    async fn release_person(
        &self,
        release: &PersonRelease,
        _now: DateTime<Utc>,
    ) -> Result<Vec<LinkedElsewhere>, PortError> {
        down(&self.failing, "ledger")?;
        let crm = &release.crm;
        let mut ids = self.identities.lock().unwrap();
        let mut persons = self.persons.lock().unwrap();
        let mine = |held: &Option<(String, DateTime<Utc>)>| {
            held.as_ref().is_some_and(|(by, _)| *by == release.holder)
        };
        let mut elsewhere = Vec::new();
        let mut linked: Vec<&str> = Vec::new();
        if let Some(w) = &release.written {
            for h in &w.link {
                let i = ids.entry(format!("{crm}#{h}")).or_default();
                match &i.crm_id {
                    Some(other) if *other != w.record && Some(other) != w.replaces.as_ref() => {
                        elsewhere.push(LinkedElsewhere {
                            key_hash: h.clone(),
                            record: other.clone(),
                        })
                    }
                    _ => {
                        i.crm_id = Some(w.record.clone());
                        i.claim = None;
                        linked.push(h);
                    }
                }
            }
            if let Some(t) = w.applied {
                let p = persons.entry(format!("{crm}#{}", w.record)).or_default();
                if p.last_applied.is_none_or(|l| l <= t) && (p.lease.is_none() || mine(&p.lease)) {
                    p.last_applied = Some(t);
                    p.lease = None;
                }
            }
        }
        for r in &release.records {
            if let Some(p) = persons.get_mut(&format!("{crm}#{r}")) {
                if mine(&p.lease) {
                    p.lease = None;
                }
            }
        }
        for h in release
            .claims
            .iter()
            .filter(|h| !linked.contains(&h.as_str()))
        {
            if let Some(i) = ids.get_mut(&format!("{crm}#{h}")) {
                if mine(&i.claim) {
                    i.claim = None;
                }
            }
        }
        Ok(elsewhere)
    }
    async fn record_conflict(
        &self,
        conflict: &IdentityConflict,
        _now: DateTime<Utc>,
    ) -> Result<bool, PortError> {
        down(&self.failing, "ledger")?;
        let key = format!("{}#{}", conflict.crm, conflict.records().join("+"));
        let mut c = self.conflicts.lock().unwrap();
        if c.iter().any(|(k, _)| *k == key) {
            return Ok(false);
        }
        c.push((key, conflict.clone()));
        Ok(true)
    }
    async fn claim_once(&self, key: &str, _now: DateTime<Utc>) -> Result<bool, PortError> {
        down(&self.failing, "ledger")?;
        Ok(self.claimed.lock().unwrap().insert(key.to_string()))
    }
    async fn record_progress(
        &self,
        delivery_id: &str,
        progress: &SyncOutcome,
        now: DateTime<Utc>,
    ) -> Result<(), PortError> {
        down(&self.failing, "ledger")?;
        if let Some(r) = self.records.lock().unwrap().get_mut(delivery_id) {
            if r.status != LedgerStatus::Synced {
                r.outcome = Some(progress.clone());
                r.updated_at = Some(now);
            }
        }
        Ok(())
    }
    async fn erase_person(&self, key_hashes: &[String]) -> Result<Erased, PortError> {
        down(&self.failing, "ledger")?;
        let mut ids = self.identities.lock().unwrap();
        let mut persons = self.persons.lock().unwrap();
        let mut conflicts = self.conflicts.lock().unwrap();
        let mut records = self.records.lock().unwrap();
        let split = |k: &str| {
            k.split_once('#')
                .map(|(c, h)| (c.to_string(), h.to_string()))
        };
        let links: Vec<(String, String, String)> = ids
            .iter()
            .filter_map(|(k, i)| {
                let (crm, h) = split(k)?;
                Some((crm, h, i.crm_id.clone()?))
            })
            .collect();
        let (hashes, owned) = crate::erase::person_of(&links, key_hashes);
        let mut out = Erased::default();
        ids.retain(|k, _| {
            let gone = split(k).is_some_and(|(_, h)| hashes.contains(&h));
            out.identity_links += usize::from(gone);
            !gone
        });
        persons.retain(|k, _| {
            let gone = split(k).is_some_and(|(c, r)| owned.contains(&(c, r)));
            out.records += usize::from(gone);
            !gone
        });
        conflicts.retain(|(_, c)| {
            let gone = c
                .records()
                .iter()
                .any(|r| owned.contains(&(c.crm.clone(), r.clone())));
            out.conflicts += usize::from(gone);
            !gone
        });
        records.retain(|id, r| {
            let gone = r
                .contact_key_hash
                .as_ref()
                .is_some_and(|h| hashes.contains(h));
            if gone {
                out.deliveries.push(id.clone());
            }
            !gone
        });
        out.deliveries.sort();
        out.key_hashes = hashes.into_iter().collect();
        Ok(out)
    }
    async fn list(&self, filter: &ListFilter) -> Result<Vec<LedgerRecord>, PortError> {
        down(&self.failing, "ledger")?;
        let mut v: Vec<LedgerRecord> = self
            .records
            .lock()
            .unwrap()
            .values()
            .chain(self.rejections.lock().unwrap().iter())
            .filter(|r| r.status == filter.status)
            .filter(|r| {
                filter
                    .since
                    .is_none_or(|s| r.updated_at.is_some_and(|u| u >= s))
            })
            .filter(|r| {
                filter
                    .bot_id
                    .as_ref()
                    .is_none_or(|b| r.bot_id.as_ref() == Some(b))
            })
            .filter(|r| {
                filter
                    .reason
                    .as_ref()
                    .is_none_or(|c| r.last_error.as_ref().is_some_and(|e| &e.code == c))
            })
            .cloned()
            .collect();
        v.sort_by_key(|r| std::cmp::Reverse(r.updated_at));
        if let Some(l) = filter.limit {
            v.truncate(l);
        }
        Ok(v)
    }
    async fn requeue(
        &self,
        delivery_id: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<u32>, PortError> {
        down(&self.failing, "ledger")?;
        let mut m = self.records.lock().unwrap();
        match m.get_mut(delivery_id) {
            Some(r) if r.status == LedgerStatus::Dead && r.payload.is_some() => {
                r.status = LedgerStatus::Queued;
                r.attempts = 0;
                r.replays += 1;
                r.lease_until = None;
                r.next_attempt_at = None;
                r.updated_at = Some(now);
                self.replayed_at
                    .lock()
                    .unwrap()
                    .insert(delivery_id.to_string(), now);
                Ok(Some(r.replays))
            }
            _ => Ok(None),
        }
    }
    async fn record_rejected(
        &self,
        rejection: &Rejection,
        window_start: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<RejectionTally, PortError> {
        down(&self.failing, "ledger")?;
        self.rejections.lock().unwrap().push(LedgerRecord {
            bot_id: rejection.bot_id.clone(),
            received_at: Some(now),
            updated_at: Some(now),
            ..blank(
                &rejection.id,
                LedgerStatus::Rejected,
                Some(rejection.reason()),
            )
        });
        let mut w = self.rejection_windows.lock().unwrap();
        let n = w
            .entry((window_start, rejection.bot_id.clone()))
            .or_insert(0);
        *n += 1;
        Ok(RejectionTally { in_window: *n })
    }
}

#[derive(Default)]
pub struct InMemoryQueue {
    enqueued: Mutex<Vec<QueuedLead>>,
    dead: Mutex<Vec<DeadLetter>>,
    retries: Mutex<Vec<(String, Duration)>>,
    failing: AtomicBool,
}

impl InMemoryQueue {
    pub fn set_failing(&self, f: bool) {
        self.failing.store(f, Ordering::SeqCst);
    }
    pub fn enqueued(&self) -> Vec<QueuedLead> {
        self.enqueued.lock().unwrap().clone()
    }
    pub fn dead_letters(&self) -> Vec<DeadLetter> {
        self.dead.lock().unwrap().clone()
    }
    pub fn retries(&self) -> Vec<(String, Duration)> {
        self.retries.lock().unwrap().clone()
    }
}

#[async_trait]
impl LeadQueue for InMemoryQueue {
    async fn enqueue(&self, lead: &QueuedLead) -> Result<(), PortError> {
        down(&self.failing, "queue")?;
        let mut q = self.enqueued.lock().unwrap();
        // FIFO deduplication by delivery id.
        if !q.iter().any(|l| l.delivery_id() == lead.delivery_id()) {
            q.push(lead.clone());
        }
        Ok(())
    }
    async fn dead_letter(&self, letter: &DeadLetter) -> Result<(), PortError> {
        down(&self.failing, "queue")?;
        self.dead.lock().unwrap().push(letter.clone());
        Ok(())
    }
    async fn erase_dead_letters(&self, key_hashes: &[String]) -> Result<usize, PortError> {
        down(&self.failing, "queue")?;
        let mut dead = self.dead.lock().unwrap();
        let before = dead.len();
        dead.retain(|d| !crate::erase::carries_any(&d.body, key_hashes));
        Ok(before - dead.len())
    }
    async fn requeue(&self, lead: &QueuedLead, _replay: u32) -> Result<(), PortError> {
        down(&self.failing, "queue")?;
        self.enqueued.lock().unwrap().push(lead.clone());
        Ok(())
    }
    async fn retry_later(
        &self,
        _lane: lb_domain::Lane,
        receipt_handle: &str,
        delay: Duration,
    ) -> Result<(), PortError> {
        down(&self.failing, "queue")?;
        self.retries
            .lock()
            .unwrap()
            .push((receipt_handle.to_string(), delay));
        Ok(())
    }
}

#[derive(Default)]
pub struct RecordingAlerts {
    sent: Mutex<Vec<(String, String)>>,
    failing: AtomicBool,
}

impl RecordingAlerts {
    pub fn sent(&self) -> Vec<(String, String)> {
        self.sent.lock().unwrap().clone()
    }
    pub fn set_failing(&self, f: bool) {
        self.failing.store(f, Ordering::SeqCst);
    }
}

#[async_trait]
impl Alerts for RecordingAlerts {
    async fn publish(&self, subject: &str, message: &str) -> Result<(), PortError> {
        down(&self.failing, "alerts")?;
        self.sent
            .lock()
            .unwrap()
            .push((subject.into(), message.into()));
        Ok(())
    }
}

#[derive(Default)]
pub struct StaticSecrets {
    values: Mutex<HashMap<String, String>>,
}

impl StaticSecrets {
    pub fn set(&self, id: &str, value: &str) {
        self.values.lock().unwrap().insert(id.into(), value.into());
    }
    /// Secrets Manager no longer answers for `id`.
    pub fn remove(&self, id: &str) {
        self.values.lock().unwrap().remove(id);
    }
}

#[async_trait]
impl SecretStore for StaticSecrets {
    async fn get_secret(&self, id: &str) -> Result<String, PortError> {
        self.values
            .lock()
            .unwrap()
            .get(id)
            .cloned()
            .ok_or_else(|| PortError::new(format!("no secret {id}")))
    }
}

/// `(id, email, phone, wa_id)` of a fake contact.
pub type FakeContactRow = (String, Option<String>, Option<String>, Option<String>);

#[derive(Debug, Clone)]
struct FakeContact {
    id: String,
    email: Option<String>,
    phone: Option<String>,
    wa_id: Option<String>,
    /// The event whose fields the contact holds (the last full write).
    fields_from: Option<String>,
}

/// A CRM that keeps contacts, notes and deals in memory and can be told to fail.
#[derive(Default)]
pub struct FakeCrm {
    contacts: Mutex<Vec<FakeContact>>,
    notes: Mutex<Vec<(String, String, String)>>,
    /// Conversation notes: `(note id, contact id, body)`.
    conversation_notes: Mutex<Vec<(String, String, String)>>,
    deals: Mutex<Vec<(String, String, String)>>,
    failures: Mutex<VecDeque<CrmError>>,
    /// `(n, error)`: the call after the next `n` successful ones fails.
    fail_at: Mutex<Option<(usize, CrmError)>>,
    calls: AtomicUsize,
    stall: AtomicBool,
    /// `Some`: a named connection; `(name, keeps_records)`.
    identity: Option<(String, bool)>,
    /// What the next [`Crm::take_quota_warning`] answers.
    quota_warning: Mutex<Option<crate::ports::QuotaUsage>>,
    /// [`Crm::batch_limit`]; 0 is taken as 1.
    batch_limit: AtomicUsize,
    /// Every batch call, as `(kind, items)`.
    batches: Mutex<Vec<(&'static str, usize)>>,
    /// Contacts with this email are refused, item by item, as HubSpot's 207 would.
    refused_email: Mutex<Option<String>>,
}

impl FakeCrm {
    /// A named connection; `keeps_records: false` behaves like a webhook target.
    pub fn named(name: &str, keeps_records: bool) -> Self {
        Self {
            identity: Some((name.to_string(), keeps_records)),
            ..Self::default()
        }
    }
    /// The adapter reports this quota usage once (as past 70%).
    pub fn report_quota(&self, usage: crate::ports::QuotaUsage) {
        *self.quota_warning.lock().unwrap() = Some(usage);
    }
    /// The next call never answers (a CRM that holds the request).
    /// Takes up to `n` items per batch call.
    pub fn batch_up_to(&self, n: usize) {
        self.batch_limit.store(n, Ordering::SeqCst);
    }
    /// The batch calls made, as `(kind, items)`: kinds `find`, `contacts`, `notes`, `deals`.
    pub fn batches(&self) -> Vec<(&'static str, usize)> {
        self.batches.lock().unwrap().clone()
    }
    /// Refuses the contact with this email (alone, whatever else its batch holds).
    pub fn refuse_email(&self, email: &str) {
        *self.refused_email.lock().unwrap() = Some(email.to_string());
    }
    fn batched(&self, kind: &'static str, n: usize) {
        self.batches.lock().unwrap().push((kind, n));
    }
    pub fn stall_next(&self) {
        self.stall.store(true, Ordering::SeqCst);
    }
    /// The next `n` calls succeed, the one after fails with `e`.
    pub fn fail_after(&self, n: usize, e: CrmError) {
        *self.fail_at.lock().unwrap() = Some((self.calls() + n, e));
    }
    pub fn fail_next(&self, e: CrmError) {
        self.failures.lock().unwrap().push_back(e);
    }
    pub fn contact_count(&self) -> usize {
        self.contacts.lock().unwrap().len()
    }
    pub fn note_count(&self) -> usize {
        self.notes.lock().unwrap().len()
    }
    /// The bodies of the conversation notes on a contact, in the order created.
    pub fn conversation_bodies(&self, contact_id: &str) -> Vec<String> {
        self.conversation_notes
            .lock()
            .unwrap()
            .iter()
            .filter(|(_, c, _)| c == contact_id)
            .map(|(_, _, b)| b.clone())
            .collect()
    }
    pub fn deal_count(&self) -> usize {
        self.deals.lock().unwrap().len()
    }
    pub fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }
    /// Creates a contact as someone outside leadbridge would (a form, a rep); its id.
    pub fn seed_contact(&self, email: Option<&str>, phone: Option<&str>) -> String {
        let mut cs = self.contacts.lock().unwrap();
        let id = format!("c{}", cs.len() + 1);
        cs.push(FakeContact {
            id: id.clone(),
            email: email.map(str::to_string),
            phone: phone.map(str::to_string),
            wa_id: None,
            fields_from: None,
        });
        id
    }
    /// `(id, email, phone, wa_id)` of every contact, in creation order.
    pub fn contacts(&self) -> Vec<FakeContactRow> {
        self.contacts
            .lock()
            .unwrap()
            .iter()
            .map(|c| {
                (
                    c.id.clone(),
                    c.email.clone(),
                    c.phone.clone(),
                    c.wa_id.clone(),
                )
            })
            .collect()
    }
    /// The event whose fields the contact with this id holds.
    pub fn fields_of(&self, id: &str) -> Option<String> {
        let cs = self.contacts.lock().unwrap();
        cs.iter()
            .find(|c| c.id == id)
            .and_then(|c| c.fields_from.clone())
    }
    /// The event ids of the notes on a contact, in the order written.
    pub fn notes_of(&self, contact_id: &str) -> Vec<String> {
        self.notes
            .lock()
            .unwrap()
            .iter()
            .filter(|(_, c, _)| c == contact_id)
            .map(|(_, _, e)| e.clone())
            .collect()
    }
    /// The event whose fields the contact with `email` holds.
    pub fn fields_from(&self, email: &str) -> Option<String> {
        let cs = self.contacts.lock().unwrap();
        cs.iter()
            .find(|c| c.email.as_deref() == Some(email))
            .and_then(|c| c.fields_from.clone())
    }
    async fn call(&self) -> Result<(), CrmError> {
        let before = self.calls.fetch_add(1, Ordering::SeqCst);
        {
            let mut at = self.fail_at.lock().unwrap();
            if at.as_ref().is_some_and(|(n, _)| *n == before) {
                return Err(at.take().expect("checked").1);
            }
        }
        if self.stall.swap(false, Ordering::SeqCst) {
            std::future::pending::<()>().await;
        }
        match self.failures.lock().unwrap().pop_front() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}

#[async_trait]
impl Crm for FakeCrm {
    fn name(&self) -> &str {
        self.identity.as_ref().map_or("fake", |(n, _)| n.as_str())
    }
    fn keeps_records(&self) -> bool {
        self.identity.as_ref().is_none_or(|(_, k)| *k)
    }
    /// Finds by phone and WhatsApp number (as HubSpot's search would), at once.
    async fn find_contacts(&self, lead: &QueuedLead) -> Result<Vec<(usize, String)>, CrmError> {
        self.call().await?;
        let cs = self.contacts.lock().unwrap();
        let mut out = Vec::new();
        for (i, key) in lead.event.identities().iter().enumerate() {
            let number = match key {
                lb_domain::ContactKey::Email(_) => continue,
                lb_domain::ContactKey::Phone(p) => p.as_str().to_string(),
                lb_domain::ContactKey::WaId(w) => format!("+{}", w.as_str()),
            };
            if let Some(c) = cs.iter().find(|c| {
                c.phone.as_deref() == Some(&number)
                    || c.wa_id.as_ref().map(|w| format!("+{w}")).as_deref() == Some(&number)
            }) {
                out.push((i, c.id.clone()));
            }
        }
        Ok(out)
    }
    /// Like HubSpot: an email is unique (upsert by email; another record's email
    /// on an update → `taken_by`); a known record is updated; else created.
    async fn upsert_contact(
        &self,
        lead: &QueuedLead,
        known_id: Option<&str>,
        write: ContactWrite,
    ) -> Result<ContactRef, CrmError> {
        if let (Some(id), ContactWrite::IdentityOnly) = (known_id, write) {
            return Ok(ContactRef {
                id: id.to_string(),
                created: false,
            });
        }
        let refused = self.refused_email.lock().unwrap().clone();
        if refused.is_some_and(|r| {
            lead.event.visitor.email.as_ref().map(|e| e.as_str()) == Some(r.as_str())
        }) {
            return Err(CrmError::new(
                "fake",
                ErrorClass::Permanent,
                Some(207),
                "Property values were not valid: email",
            ));
        }
        self.call().await?;
        let writer =
            (write == ContactWrite::Full).then(|| lead.event.event_id.as_str().to_string());
        let v = &lead.event.visitor;
        let email = v.email.as_ref().map(|e| e.as_str().to_string());
        let phone = v.phone.as_ref().map(|p| p.as_str().to_string());
        let wa_id = v.wa_id.as_ref().map(|w| w.as_str().to_string());
        let mut cs = self.contacts.lock().unwrap();
        let by_email = email
            .as_ref()
            .and_then(|e| cs.iter().position(|c| c.email.as_ref() == Some(e)));
        // A known record that is gone (deleted, merged away) is written as if unknown.
        let known = known_id.and_then(|k| cs.iter().position(|c| c.id == k));
        let found = match known {
            Some(i) => {
                if let Some(j) = by_email.filter(|&j| j != i) {
                    return Err(CrmError {
                        taken_by: Some(cs[j].id.clone()),
                        ..CrmError::new(
                            "fake",
                            ErrorClass::Permanent,
                            Some(409),
                            format!("Contact already exists. Existing ID: {}", cs[j].id),
                        )
                    });
                }
                Some(i)
            }
            None => by_email,
        };
        match found {
            Some(i) => {
                let c = &mut cs[i];
                if writer.is_some() {
                    c.fields_from = writer;
                    c.phone = phone.or(c.phone.take());
                    c.wa_id = wa_id.or(c.wa_id.take());
                }
                c.email = email.or(c.email.take());
                Ok(ContactRef {
                    id: c.id.clone(),
                    created: false,
                })
            }
            None => {
                let id = format!("c{}", cs.len() + 1);
                cs.push(FakeContact {
                    id: id.clone(),
                    email,
                    phone,
                    wa_id,
                    fields_from: writer,
                });
                Ok(ContactRef { id, created: true })
            }
        }
    }
    async fn find_note(
        &self,
        contact_id: &str,
        event_id: &EventId,
    ) -> Result<Option<String>, CrmError> {
        self.call().await?;
        let n = self.notes.lock().unwrap();
        Ok(n.iter()
            .find(|(_, c, e)| c == contact_id && e == event_id.as_str())
            .map(|(id, _, _)| id.clone()))
    }
    async fn add_note(&self, contact_id: &str, lead: &QueuedLead) -> Result<String, CrmError> {
        self.call().await?;
        let mut n = self.notes.lock().unwrap();
        let id = format!("n{}", n.len() + 1);
        n.push((
            id.clone(),
            contact_id.into(),
            lead.event.event_id.as_str().into(),
        ));
        Ok(id)
    }
    async fn find_deal(
        &self,
        contact_id: &str,
        event_id: &EventId,
    ) -> Result<Option<String>, CrmError> {
        self.call().await?;
        let d = self.deals.lock().unwrap();
        Ok(d.iter()
            .find(|(_, c, e)| c == contact_id && e == event_id.as_str())
            .map(|(id, _, _)| id.clone()))
    }
    fn keeps_conversations(&self) -> bool {
        self.keeps_records()
    }
    fn batch_limit(&self) -> usize {
        self.batch_limit.load(Ordering::SeqCst).max(1)
    }
    async fn find_contacts_batch(
        &self,
        leads: &[QueuedLead],
    ) -> Vec<Result<Vec<(usize, String)>, CrmError>> {
        self.batched("find", leads.len());
        let mut out = Vec::new();
        for l in leads {
            out.push(self.find_contacts(l).await);
        }
        out
    }
    async fn upsert_contacts(
        &self,
        items: &[crate::ports::ContactUpsert],
    ) -> Vec<Result<ContactRef, CrmError>> {
        self.batched("contacts", items.len());
        let mut out = Vec::new();
        for i in items {
            out.push(
                self.upsert_contact(&i.lead, i.known_id.as_deref(), i.write)
                    .await,
            );
        }
        out
    }
    async fn add_notes(&self, items: &[(String, QueuedLead)]) -> Vec<Result<String, CrmError>> {
        self.batched("notes", items.len());
        let mut out = Vec::new();
        for (c, l) in items {
            out.push(self.add_note(c, l).await);
        }
        out
    }
    async fn create_deals(&self, items: &[(String, QueuedLead)]) -> Vec<Result<String, CrmError>> {
        self.batched("deals", items.len());
        let mut out = Vec::new();
        for (c, l) in items {
            out.push(self.create_deal(c, l).await);
        }
        out
    }
    fn take_quota_warning(&self) -> Option<crate::ports::QuotaUsage> {
        self.quota_warning.lock().unwrap().take()
    }
    async fn conversation_notes(
        &self,
        contact_id: &str,
        conversation_tag: &str,
    ) -> Result<Vec<(String, String)>, CrmError> {
        self.call().await?;
        let n = self.conversation_notes.lock().unwrap();
        Ok(n.iter()
            .filter(|(_, c, b)| {
                c == contact_id && lb_domain::conversation::is_note_of(b, conversation_tag)
            })
            .map(|(id, _, b)| (id.clone(), b.clone()))
            .collect())
    }
    async fn add_note_body(
        &self,
        contact_id: &str,
        body: &str,
        _at: chrono::DateTime<chrono::Utc>,
    ) -> Result<String, CrmError> {
        self.call().await?;
        let mut n = self.conversation_notes.lock().unwrap();
        let id = format!("cn{}", n.len() + 1);
        n.push((id.clone(), contact_id.into(), body.into()));
        Ok(id)
    }
    async fn update_note(&self, note_id: &str, body: &str) -> Result<(), CrmError> {
        self.call().await?;
        let mut n = self.conversation_notes.lock().unwrap();
        match n.iter_mut().find(|(id, _, _)| id == note_id) {
            Some(note) => {
                note.2 = body.to_string();
                Ok(())
            }
            None => Err(permanent("no such note")),
        }
    }
    async fn create_deal(&self, contact_id: &str, lead: &QueuedLead) -> Result<String, CrmError> {
        self.call().await?;
        let mut d = self.deals.lock().unwrap();
        let id = format!("d{}", d.len() + 1);
        d.push((
            id.clone(),
            contact_id.into(),
            lead.event.event_id.as_str().into(),
        ));
        Ok(id)
    }
}

pub fn transient(status: u16) -> CrmError {
    CrmError {
        crm: "fake".into(),
        class: ErrorClass::Transient,
        http_status: Some(status),
        category: None,
        message: format!("HTTP {status}"),
        retry_after: None,
        code: None,
        taken_by: None,
    }
}

pub fn permanent(message: &str) -> CrmError {
    CrmError {
        crm: "fake".into(),
        class: ErrorClass::Permanent,
        http_status: Some(400),
        category: Some("VALIDATION_ERROR".into()),
        message: message.into(),
        retry_after: None,
        code: None,
        taken_by: None,
    }
}

/// A valid queued lead for `email`.
pub fn sample_lead(event_id: &str, email: &str) -> QueuedLead {
    sample_lead_with_phone(event_id, Some(email), "")
}

pub fn sample_lead_with_phone(event_id: &str, email: Option<&str>, phone: &str) -> QueuedLead {
    sample_person(event_id, email, Some(phone).filter(|p| !p.is_empty()), None)
}

/// A valid queued lead with any of the three identities (at least one).
pub fn sample_person(
    event_id: &str,
    email: Option<&str>,
    phone: Option<&str>,
    wa_id: Option<&str>,
) -> QueuedLead {
    let mut visitor = serde_json::json!({"name": "Priya Sharma"});
    if let Some(w) = wa_id {
        visitor["wa_id"] = lb_domain::WaId::parse(w)
            .expect("valid test WhatsApp id")
            .as_str()
            .into();
    }
    let phone = phone.unwrap_or("");
    if let Some(e) = email {
        visitor["email"] = lb_domain::Email::parse(e)
            .expect("valid test email")
            .as_str()
            .into();
    }
    if !phone.is_empty() {
        visitor["phone"] = lb_domain::Phone::parse(phone, None)
            .expect("valid test phone")
            .as_str()
            .into();
    }
    let event: lb_domain::LeadEvent = serde_json::from_value(serde_json::json!({
        "event_id": event_id,
        "event_type": "lead.created",
        "occurred_at": "2026-05-04T11:23:45Z",
        "bot_id": "bot_test",
        "visitor": visitor,
        "transcript": {"summary": "Asked about pricing"}
    }))
    .expect("valid test event");
    QueuedLead::new(event, Utc::now()).expect("test lead has an identity")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn only_dead_events_can_be_requeued_and_each_replay_is_numbered() {
        let l = InMemoryLedger::default();
        let lead = sample_lead("evt_1", "a@b.co");
        let now = Utc::now();
        l.record_received(&lead, "{}", now).await.unwrap();
        assert_eq!(
            l.requeue("evt_1", now).await.unwrap(),
            None,
            "a queued event is not replayed"
        );
        let reason = permanent("x").reason();
        l.mark_dead("evt_1", &reason, None, now).await.unwrap();
        assert_eq!(
            l.list(&ListFilter::status(LedgerStatus::Dead))
                .await
                .unwrap()
                .len(),
            1
        );
        assert_eq!(l.requeue("evt_1", now).await.unwrap(), Some(1));
        assert_eq!(l.record("evt_1").unwrap().status, LedgerStatus::Queued);
        assert_eq!(l.record("evt_1").unwrap().attempts, 0);
        l.mark_dead("evt_1", &reason, None, now).await.unwrap();
        assert_eq!(l.requeue("evt_1", now).await.unwrap(), Some(2));
        let outcome = SyncOutcome::default();
        l.complete(&lead.delivery_id(), &outcome, now)
            .await
            .unwrap();
        assert_eq!(
            l.requeue("evt_1", now).await.unwrap(),
            None,
            "a synced event never runs twice"
        );
    }
}
