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
    if flag.load(Ordering::SeqCst) {
        Err(PortError::new(format!("{what} unavailable (fake)")))
    } else {
        Ok(())
    }
}

/// A ledger with the same semantics as the DynamoDB one.
#[derive(Default)]
pub struct InMemoryLedger {
    records: Mutex<HashMap<String, LedgerRecord>>,
    contacts: Mutex<HashMap<String, ContactMemory>>,
    claims: Mutex<HashMap<String, (String, DateTime<Utc>)>>,
    rejections: Mutex<Vec<LedgerRecord>>,
    rejection_windows: Mutex<HashMap<DateTime<Utc>, u64>>,
    failing: AtomicBool,
    fail_complete: AtomicBool,
}

impl InMemoryLedger {
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
    pub fn seed_failure(&self, event_id: &str, reason: FailureReason) {
        self.records.lock().unwrap().insert(
            event_id.to_string(),
            blank(event_id, LedgerStatus::Retrying, Some(reason)),
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
        attempts: 0,
        replays: 0,
        lease_until: None,
        next_attempt_at: None,
        last_error,
        outcome: None,
        received_at: None,
        updated_at: None,
    }
}

fn fresh(lead: &QueuedLead, body: &str, status: LedgerStatus, now: DateTime<Utc>) -> LedgerRecord {
    LedgerRecord {
        bot_id: Some(lead.event.bot_id.as_str().into()),
        contact_key_hash: Some(lead.contact_key.hashed()),
        payload_hash: Some(lead.payload_hash.clone()),
        payload: Some(body.to_string()),
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
            LedgerStatus::InProgress if r.lease_until.is_some_and(|l| l > now) => {
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
        r.lease_until = None;
        r.updated_at = Some(now);
        Ok(())
    }
    async fn fail(
        &self,
        delivery_id: &str,
        reason: &FailureReason,
        next_attempt_at: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<(), PortError> {
        down(&self.failing, "ledger")?;
        let mut m = self.records.lock().unwrap();
        let r = m
            .get_mut(delivery_id)
            .ok_or_else(|| PortError::new("no such event"))?;
        r.status = LedgerStatus::Retrying;
        r.last_error = Some(reason.clone());
        r.next_attempt_at = Some(next_attempt_at);
        r.lease_until = None;
        r.updated_at = Some(now);
        Ok(())
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
        if r.payload.is_none() {
            r.payload = payload.map(str::to_string);
        }
        r.updated_at = Some(now);
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
    async fn contact(&self, crm: &str, key_hash: &str) -> Result<Option<ContactMemory>, PortError> {
        down(&self.failing, "ledger")?;
        Ok(self
            .contacts
            .lock()
            .unwrap()
            .get(&format!("{crm}#{key_hash}"))
            .cloned())
    }
    async fn remember_contact(
        &self,
        crm: &str,
        key_hashes: &[String],
        crm_id: &str,
        _now: DateTime<Utc>,
    ) -> Result<(), PortError> {
        down(&self.failing, "ledger")?;
        let mut c = self.contacts.lock().unwrap();
        for k in key_hashes {
            c.entry(format!("{crm}#{k}"))
                .and_modify(|m| m.crm_id = crm_id.to_string())
                .or_insert(ContactMemory {
                    crm_id: crm_id.to_string(),
                    last_occurred_at: None,
                });
        }
        Ok(())
    }
    async fn record_applied(
        &self,
        crm: &str,
        key_hash: &str,
        crm_id: &str,
        occurred_at: DateTime<Utc>,
        _now: DateTime<Utc>,
    ) -> Result<(), PortError> {
        down(&self.failing, "ledger")?;
        let mut c = self.contacts.lock().unwrap();
        let m = c
            .entry(format!("{crm}#{key_hash}"))
            .or_insert(ContactMemory {
                crm_id: crm_id.to_string(),
                last_occurred_at: None,
            });
        m.crm_id = crm_id.to_string();
        if m.last_occurred_at.is_none_or(|t| t < occurred_at) {
            m.last_occurred_at = Some(occurred_at);
        }
        Ok(())
    }
    async fn claim_contact(
        &self,
        crm: &str,
        key_hash: &str,
        event_id: &str,
        until: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<bool, PortError> {
        down(&self.failing, "ledger")?;
        let k = format!("{crm}#{key_hash}");
        if self.contacts.lock().unwrap().contains_key(&k) {
            return Ok(false);
        }
        let mut claims = self.claims.lock().unwrap();
        match claims.get(&k) {
            Some((by, exp)) if by != event_id && *exp >= now => Ok(false),
            _ => {
                claims.insert(k, (event_id.to_string(), until));
                Ok(true)
            }
        }
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
            Some(r) if r.status == LedgerStatus::Dead => {
                r.status = LedgerStatus::Queued;
                r.attempts = 0;
                r.replays += 1;
                r.updated_at = Some(now);
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
        let n = w.entry(window_start).or_insert(0);
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
    async fn requeue(&self, lead: &QueuedLead, _replay: u32) -> Result<(), PortError> {
        down(&self.failing, "queue")?;
        self.enqueued.lock().unwrap().push(lead.clone());
        Ok(())
    }
    async fn retry_later(&self, receipt_handle: &str, delay: Duration) -> Result<(), PortError> {
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

#[derive(Debug, Clone)]
struct FakeContact {
    id: String,
    email: Option<String>,
    phone: Option<String>,
    /// The event whose fields the contact holds (the last full write).
    fields_from: Option<String>,
}

/// A CRM that keeps contacts, notes and deals in memory and can be told to fail.
#[derive(Default)]
pub struct FakeCrm {
    contacts: Mutex<Vec<FakeContact>>,
    notes: Mutex<Vec<(String, String, String)>>,
    deals: Mutex<Vec<(String, String, String)>>,
    failures: Mutex<VecDeque<CrmError>>,
    calls: AtomicUsize,
    stall: AtomicBool,
    /// `Some`: a named connection; `(name, keeps_records)`.
    identity: Option<(String, bool)>,
}

impl FakeCrm {
    /// A named connection; `keeps_records: false` behaves like a webhook target.
    pub fn named(name: &str, keeps_records: bool) -> Self {
        Self {
            identity: Some((name.to_string(), keeps_records)),
            ..Self::default()
        }
    }
    /// The next call never answers (a CRM that holds the request).
    pub fn stall_next(&self) {
        self.stall.store(true, Ordering::SeqCst);
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
    pub fn deal_count(&self) -> usize {
        self.deals.lock().unwrap().len()
    }
    pub fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }
    /// The event whose fields the contact with `email` holds.
    pub fn fields_from(&self, email: &str) -> Option<String> {
        let cs = self.contacts.lock().unwrap();
        cs.iter()
            .find(|c| c.email.as_deref() == Some(email))
            .and_then(|c| c.fields_from.clone())
    }
    async fn call(&self) -> Result<(), CrmError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
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
    async fn upsert_contact(
        &self,
        lead: &QueuedLead,
        known_id: Option<&str>,
        write: ContactWrite,
    ) -> Result<ContactRef, CrmError> {
        self.call().await?;
        let writer =
            (write == ContactWrite::Full).then(|| lead.event.event_id.as_str().to_string());
        let v = &lead.event.visitor;
        let email = v.email.as_ref().map(|e| e.as_str().to_string());
        let phone = v.phone.as_ref().map(|p| p.as_str().to_string());
        let mut cs = self.contacts.lock().unwrap();
        let found = cs.iter().position(|c| {
            known_id.is_some_and(|k| k == c.id)
                || (email.is_some() && c.email == email)
                || (email.is_none() && phone.is_some() && c.phone == phone)
        });
        match found {
            Some(i) => {
                if writer.is_some() {
                    cs[i].fields_from = writer;
                }
                Ok(ContactRef {
                    id: cs[i].id.clone(),
                    created: false,
                })
            }
            None => {
                let id = format!("c{}", cs.len() + 1);
                cs.push(FakeContact {
                    id: id.clone(),
                    email,
                    phone,
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
    }
}

/// A valid queued lead for `email`.
pub fn sample_lead(event_id: &str, email: &str) -> QueuedLead {
    sample_lead_with_phone(event_id, Some(email), "")
}

pub fn sample_lead_with_phone(event_id: &str, email: Option<&str>, phone: &str) -> QueuedLead {
    let mut visitor = serde_json::json!({"name": "Priya Sharma"});
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
