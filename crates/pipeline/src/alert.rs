//! The dlq-alerter's use case: record each dead letter in the ledger and tell a
//! person, in one readable, PII-masked alert per batch.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use lb_domain::{mask, QueuedLead};
use tracing::{info, warn};

use crate::ports::{
    Alerts, DeadLetter, ErrorClass, FailureReason, LeadQueue, Ledger, LedgerStatus, PortError,
};

/// SQS message attribute names carried by explicit dead letters.
pub mod attrs {
    pub const EVENT_ID: &str = "leadbridge-event-id";
    pub const ERROR_CLASS: &str = "leadbridge-error-class";
    pub const ERROR_CODE: &str = "leadbridge-error-code";
    pub const ERROR_MESSAGE: &str = "leadbridge-error-message";
    pub const CRM: &str = "leadbridge-crm";
    pub const HTTP_STATUS: &str = "leadbridge-http-status";
    pub const ATTEMPTS: &str = "leadbridge-attempts";
}

/// The CRM's text in a dead letter's attributes, at most this many bytes, so that
/// every queued lead can be dead-lettered within SQS's message size
/// (see [`lb_domain::queued::DEAD_LETTER_RESERVE_BYTES`]).
const MAX_ATTR_MESSAGE: usize = 4_000;

/// The message attributes of a dead letter (what the alerter reads back).
pub fn dead_letter_attributes(letter: &DeadLetter) -> Vec<(&'static str, String)> {
    let r = &letter.reason;
    let mut v = vec![
        (attrs::ERROR_CLASS, r.class.as_str().to_string()),
        (attrs::ERROR_CODE, r.code.clone()),
        (
            attrs::ERROR_MESSAGE,
            // The CRM's own text may echo the lead: scrubbed like an alert.
            truncate_bytes(&scrub_for(&r.message, &letter.body), MAX_ATTR_MESSAGE),
        ),
        (attrs::ATTEMPTS, letter.attempts.to_string()),
    ];
    if let Some(e) = &letter.event_id {
        v.push((attrs::EVENT_ID, e.clone()));
    }
    if let Some(c) = &r.crm {
        v.push((attrs::CRM, c.clone()));
    }
    if let Some(s) = r.http_status {
        v.push((attrs::HTTP_STATUS, s.to_string()));
    }
    v
}

/// `text` without the lead's identities (read from its queue message `body`),
/// email addresses or international numbers.
fn scrub_for(text: &str, body: &str) -> String {
    let known = QueuedLead::from_json(body)
        .map(|l| crate::status::lead_identities(&l))
        .unwrap_or_default();
    let refs: Vec<&str> = known.iter().map(String::as_str).collect();
    mask::scrub(text, &refs)
}

/// The reason an explicit dead letter carries; `None` for a message the queue
/// redrove on its own after maxReceiveCount.
pub fn reason_from_attributes(a: &HashMap<String, String>) -> Option<FailureReason> {
    let class = ErrorClass::parse(a.get(attrs::ERROR_CLASS)?)?;
    Some(FailureReason {
        class,
        code: a
            .get(attrs::ERROR_CODE)
            .cloned()
            .unwrap_or_else(|| "unknown".into()),
        message: a.get(attrs::ERROR_MESSAGE).cloned().unwrap_or_default(),
        crm: a.get(attrs::CRM).cloned(),
        http_status: a.get(attrs::HTTP_STATUS).and_then(|s| s.parse().ok()),
    })
}

/// An SNS subject: ASCII only (SNS refuses others; a non-ASCII character
/// becomes `?`), no line breaks, at most 100 characters (`...` when cut).
pub fn subject_line(s: &str) -> String {
    let ascii: String = s
        .chars()
        .map(|c| match c {
            '\n' | '\r' | '\t' => ' ',
            c if c.is_ascii() && !c.is_ascii_control() => c,
            _ => '?',
        })
        .collect();
    if ascii.len() <= 100 {
        ascii
    } else {
        format!("{}...", &ascii[..97])
    }
}

/// At most `max` bytes (cut at a character boundary, marked with `…`).
fn truncate_bytes(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut end = max.saturating_sub('…'.len_utf8());
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

#[derive(Debug, Clone)]
pub struct DeadLetterMessage {
    pub message_id: String,
    pub body: String,
    pub attributes: HashMap<String, String>,
    /// When the queue took it (SQS `SentTimestamp`): a delivery replayed after
    /// that is not marked dead again by this late letter.
    pub sent_at: Option<DateTime<Utc>>,
}

/// One line of an alert, already masked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlertEntry {
    pub event_id: String,
    pub bot_id: String,
    pub who: String,
    pub reason: FailureReason,
}

/// How many times a lead the queue redrove without a single real attempt (it
/// only waited: behind an earlier event of the same person, or on rate limits)
/// is put back on the leads queue instead of dead-lettered.
pub const MAX_HELD_REQUEUES: u32 = 3;

/// What became of a batch of dead letters.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeadLetterReport {
    /// The alert's lines (one per dead lead), in order.
    pub entries: Vec<AlertEntry>,
    /// Message ids to deliver again (the ledger could not be updated for them;
    /// they were alerted all the same).
    pub failed: Vec<String>,
}

/// Records every dead letter as `dead` (with reason and payload) and publishes
/// one alert for the batch. Each message stands on its own: a ledger that
/// cannot record one does not stop the others, nor the alert (which says so);
/// that message is reported in [`DeadLetterReport::failed`] for the queue to
/// deliver again (every step is idempotent). Only an alert that cannot be
/// published fails the whole batch.
///
/// A lead the queue redrove after maxReceiveCount that was never really
/// attempted (0 attempts: it was held behind an earlier event of its person,
/// or only rate-limited) is not dead: it goes back on the leads queue as a
/// replay, up to [`MAX_HELD_REQUEUES`] times, without an alert.
pub async fn alert_dead_letters(
    ledger: &dyn Ledger,
    alerts: &dyn Alerts,
    queue: &dyn LeadQueue,
    messages: &[DeadLetterMessage],
    now: DateTime<Utc>,
) -> Result<DeadLetterReport, PortError> {
    let mut entries = Vec::with_capacity(messages.len());
    let mut failed = Vec::new();
    for m in messages {
        let lead = QueuedLead::from_json(&m.body).ok();
        // The delivery id (`<event_id>@<connection>` for a routed event): the ledger's key.
        let event_id = lead
            .as_ref()
            .map(|l| l.delivery_id())
            .or_else(|| m.attributes.get(attrs::EVENT_ID).cloned())
            .unwrap_or_else(|| format!("sqs:{}", m.message_id));
        let redriven = reason_from_attributes(&m.attributes).is_none();
        if let (true, Some(l)) = (redriven, &lead) {
            match requeue_if_only_held(ledger, queue, l, &event_id, now).await {
                Ok(true) => continue,
                Ok(false) => {}
                Err(e) => {
                    // Not known to be dead yet: try again, alert nothing.
                    warn!(event_id, error = %e, "could not check a redriven lead; it comes back");
                    failed.push(m.message_id.clone());
                    continue;
                }
            }
        }
        let mut ledger_error: Option<PortError> = None;
        let reason = match reason_from_attributes(&m.attributes) {
            Some(r) => r,
            None => {
                // Redriven by the queue: the ledger knows the last error.
                let last = match ledger.get(&event_id).await {
                    Ok(r) => r.and_then(|r| r.last_error),
                    Err(e) => {
                        ledger_error = Some(e);
                        None
                    }
                };
                FailureReason {
                    class: last.as_ref().map(|l| l.class).unwrap_or(ErrorClass::Transient),
                    code: "max_receive_count_exceeded".into(),
                    message: match &last {
                        Some(l) => format!("delivered too many times without success; last error: {}", l.message),
                        None => "delivered too many times without success (the worker never completed it)".into(),
                    },
                    crm: last.as_ref().and_then(|l| l.crm.clone()),
                    http_status: last.as_ref().and_then(|l| l.http_status),
                }
            }
        };
        if ledger_error.is_none() {
            // What the ledger keeps for a replay (a poison message: as it came).
            let kept = QueuedLead::from_json(&m.body)
                .map(|l| l.for_ledger().to_json())
                .unwrap_or_else(|_| m.body.clone());
            let marked = match m.sent_at {
                Some(sent_at) => {
                    ledger
                        .mark_dead_letter(&event_id, &reason, Some(&kept), sent_at, now)
                        .await
                }
                None => ledger.mark_dead(&event_id, &reason, Some(&kept), now).await,
            };
            match marked {
                Ok(true) => {}
                Ok(false) => warn!(
                    event_id,
                    "dead letter for an event the ledger has as synced, or replayed since; ledger left as is"
                ),
                Err(e) => ledger_error = Some(e),
            }
        }
        if let Some(e) = &ledger_error {
            warn!(event_id, error = %e, "dead letter not recorded in the ledger; alerted, and it comes back");
            failed.push(m.message_id.clone());
        }
        let (bot_id, who, known) = match &lead {
            Some(l) => (
                l.event.bot_id.as_str().to_string(),
                l.contact_key.masked(),
                crate::status::lead_identities(l),
            ),
            None => ("?".into(), "unreadable message".into(), vec![]),
        };
        let known_refs: Vec<&str> = known.iter().map(String::as_str).collect();
        let mut message = mask::scrub(&reason.message, &known_refs);
        if ledger_error.is_some() {
            message.push_str(
                " [not yet recorded in the ledger: the ledger was unavailable; it will be]",
            );
        }
        let reason = FailureReason { message, ..reason };
        crate::telemetry::dead(
            lead.as_ref()
                .and_then(|l| l.connection())
                .or(reason.crm.as_deref())
                .unwrap_or("default"),
        );
        entries.push(AlertEntry {
            event_id,
            bot_id,
            who,
            reason,
        });
    }
    if entries.is_empty() {
        return Ok(DeadLetterReport { entries, failed });
    }
    let (subject, body) = render_alert(&entries);
    alerts.publish(&subject, &body).await?;
    info!(count = entries.len(), "dead-letter alert published");
    Ok(DeadLetterReport { entries, failed })
}

/// Puts a redriven lead that never had a real attempt back on the queue (as a
/// replay). `false`: it did have attempts, is done, or was put back too often.
async fn requeue_if_only_held(
    ledger: &dyn Ledger,
    queue: &dyn LeadQueue,
    lead: &QueuedLead,
    delivery_id: &str,
    now: DateTime<Utc>,
) -> Result<bool, PortError> {
    let Some(rec) = ledger.get(delivery_id).await? else {
        return Ok(false);
    };
    let waiting = matches!(
        rec.status,
        LedgerStatus::Received | LedgerStatus::Queued | LedgerStatus::Retrying
    );
    if !waiting || rec.attempts > 0 || rec.replays >= MAX_HELD_REQUEUES {
        return Ok(false);
    }
    let reason = FailureReason {
        class: ErrorClass::Transient,
        code: "held_too_long".into(),
        message: "redriven by the queue without a real attempt (it waited behind an earlier \
                  event of the same person, or on rate limits); put back on the queue"
            .into(),
        crm: rec.last_error.as_ref().and_then(|l| l.crm.clone()),
        http_status: None,
    };
    ledger
        .mark_dead(
            delivery_id,
            &reason,
            Some(&lead.for_ledger().to_json()),
            now,
        )
        .await?;
    let Some(replay) = ledger.requeue(delivery_id, now).await? else {
        return Ok(false);
    };
    queue.requeue(lead, replay).await?;
    info!(
        event_id = delivery_id,
        replay, "redriven without a real attempt; put back on the leads queue"
    );
    Ok(true)
}

/// Subject (≤ 100 chars, as SNS requires) and a plain-text body a person reads in an email.
pub fn render_alert(entries: &[AlertEntry]) -> (String, String) {
    let n = entries.len();
    let plural = if n == 1 { "lead" } else { "leads" };
    let mut crms: Vec<&str> = entries
        .iter()
        .filter_map(|e| e.reason.crm.as_deref())
        .collect();
    crms.sort_unstable();
    crms.dedup();
    let target = if crms.is_empty() {
        "the CRM".to_string()
    } else {
        crms.join(", ")
    };
    let subject = subject_line(&format!(
        "[leadbridge] {n} {plural} could not be delivered to {target}"
    ));
    let mut b = format!(
        "leadbridge could not deliver {n} {plural} to {target}.\n\
         Each is stored in the ledger as `dead`, with its reason and full payload, and can be replayed.\n\n"
    );
    for (i, e) in entries.iter().enumerate() {
        let r = &e.reason;
        let status = r
            .http_status
            .map(|s| format!(", HTTP {s}"))
            .unwrap_or_default();
        let who_said = r
            .crm
            .as_deref()
            .map(|c| format!("{c} said"))
            .unwrap_or_else(|| "error".into());
        b.push_str(&format!(
            "{}. event {} | bot {} | {}\n   {} ({}{}): {}: {}\n\n",
            i + 1,
            e.event_id,
            e.bot_id,
            e.who,
            r.class.as_str(),
            r.code,
            status,
            who_said,
            r.message
        ));
    }
    b.push_str("What to do: fix the cause (see the runbook in docs/operations.md), then replay the dead events from the ledger.\n");
    (subject, b)
}

/// The alert for one person found with several CRM records: subject (ASCII,
/// ≤ 100 chars) and body, masked identities only.
pub fn render_possible_duplicate(c: &crate::ports::IdentityConflict) -> (String, String) {
    let subject = subject_line(&format!(
        "[leadbridge] possible duplicate in {}: records {}",
        c.crm,
        c.records().join(", ")
    ));
    let body = format!(
        "leadbridge found one person with more than one record in {crm}.\n\n         Records: {records}\n         Identities (masked) and the record each pointed to before this event: {detail}\n         Event {delivery} was written to record {to}, the record of its strongest identity \
         (email, then phone, then WhatsApp id); the other records were left as they are and \
         keep their identities. leadbridge never merges records.\n\n         What to do: if they are the same person, merge them in {crm} (the merged record keeps \
         working: later events that name either record's identities reach it once the CRM \
         answers for it); if they are different people, nothing needs doing.\n         This alert is sent once for this set of records.\n",
        crm = c.crm,
        records = c.records().join(", "),
        detail = c.detail,
        delivery = c.delivery_id,
        to = c.written_to,
    );
    (subject, body)
}

#[cfg(test)]
mod subject_tests {
    use super::*;

    #[test]
    fn a_subject_is_ascii_on_one_line_and_at_most_100_characters() {
        let s = subject_line("[leadbridge] 2 leads could not be delivered to hubspot_münchen\nX");
        assert!(s.is_ascii() && !s.contains('\n'), "{s}");
        assert!(s.contains("hubspot_m?nchen"), "{s}");
        let long = subject_line(&"x".repeat(300));
        assert_eq!(long.len(), 100);
        assert!(long.ends_with("..."));
    }

    #[test]
    fn a_dead_letters_error_text_is_scrubbed_and_bounded() {
        let lead =
            crate::fakes::sample_lead_with_phone("evt_1", Some("priya@acme.in"), "+14155552671");
        let letter = DeadLetter {
            body: lead.to_json(),
            group_id: "g".into(),
            dedup_id: "d".into(),
            event_id: Some("evt_1".into()),
            attempts: 1,
            reason: FailureReason {
                class: ErrorClass::Permanent,
                code: "crm_rejected".into(),
                message: format!(
                    "Priya Sharma <priya@acme.in> (+14155552671, +1 415-555-2671) refused {}",
                    "é".repeat(5_000)
                ),
                crm: None,
                http_status: Some(400),
            },
        };
        let attrs = dead_letter_attributes(&letter);
        let msg = &attrs
            .iter()
            .find(|(k, _)| *k == attrs::ERROR_MESSAGE)
            .unwrap()
            .1;
        for raw in ["priya@acme.in", "Priya Sharma", "555-2671", "4155552671"] {
            assert!(!msg.contains(raw), "{raw} in {msg}");
        }
        assert!(msg.len() <= MAX_ATTR_MESSAGE, "{}", msg.len());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fakes::*;

    #[tokio::test]
    async fn a_routed_delivery_is_recorded_dead_under_its_own_delivery_id() {
        let (ledger, alerts) = (InMemoryLedger::default(), RecordingAlerts::default());
        let lead = sample_lead("evt_x1", "a@b.co").for_delivery(lb_domain::Delivery {
            connection: "zapier".into(),
            lead_source: None,
            object: "contact".into(),
            split_name: None,
        });
        let reason = permanent("refused").reason();
        alert_dead_letters(
            &ledger,
            &alerts,
            &InMemoryQueue::default(),
            &[letter(&lead, &reason)],
            Utc::now(),
        )
        .await
        .unwrap();
        assert_eq!(
            ledger.record("evt_x1@zapier").unwrap().status,
            LedgerStatus::Dead
        );
        assert!(
            ledger.record("evt_x1").is_none(),
            "no stray record under the bare event id"
        );
        assert!(
            alerts.sent()[0].1.contains("evt_x1@zapier"),
            "{}",
            alerts.sent()[0].1
        );
    }

    fn letter(lead: &lb_domain::QueuedLead, reason: &FailureReason) -> DeadLetterMessage {
        let dl = DeadLetter {
            body: lead.to_json(),
            group_id: "g".into(),
            dedup_id: "d".into(),
            event_id: Some(lead.event.event_id.as_str().into()),
            attempts: 1,
            reason: reason.clone(),
        };
        DeadLetterMessage {
            message_id: "m1".into(),
            body: dl.body.clone(),
            attributes: dead_letter_attributes(&dl)
                .into_iter()
                .map(|(k, v)| (k.to_string(), v))
                .collect(),
            sent_at: None,
        }
    }

    #[tokio::test]
    async fn one_alert_per_batch_lists_every_failure_masked() {
        let (ledger, alerts) = (InMemoryLedger::default(), RecordingAlerts::default());
        let reason = permanent("Property \"favourite_colour\" does not exist").reason();
        let a = sample_lead("evt_1", "priya.sharma@acmecorp.in");
        let b = sample_lead("evt_2", "bob@x.org");
        alert_dead_letters(
            &ledger,
            &alerts,
            &InMemoryQueue::default(),
            &[letter(&a, &reason), letter(&b, &reason)],
            Utc::now(),
        )
        .await
        .unwrap();
        let sent = alerts.sent();
        assert_eq!(sent.len(), 1);
        let (subject, body) = &sent[0];
        assert!(
            subject.len() <= 100 && subject.contains("2 leads"),
            "{subject}"
        );
        assert!(body.contains("evt_1") && body.contains("evt_2"));
        assert!(body.contains("p***@acmecorp.in"));
        assert!(!body.contains("priya.sharma"));
        assert!(body.contains("Property \"favourite_colour\" does not exist"));
        assert_eq!(ledger.record("evt_1").unwrap().status, LedgerStatus::Dead);
        assert!(ledger.record("evt_1").unwrap().payload.is_some());
    }

    /// The operator replays a dead lead before the alerter reads its dead
    /// letter: the late letter is alerted, but does not undo the replay.
    #[tokio::test]
    async fn a_late_dead_letter_does_not_undo_a_replay() {
        let (ledger, alerts) = (InMemoryLedger::default(), RecordingAlerts::default());
        let reason = permanent("Property \"x\" does not exist").reason();
        let lead = sample_lead("evt_late", "late@x.org");
        let t0 = Utc::now();
        ledger
            .record_received(&lead, &lead.to_json(), t0)
            .await
            .unwrap();
        // The worker gives up: the ledger says dead, the letter goes to the DLQ.
        ledger
            .mark_dead("evt_late", &reason, Some(&lead.to_json()), t0)
            .await
            .unwrap();
        let mut late = letter(&lead, &reason);
        late.sent_at = Some(t0);
        // The replay comes first.
        let t1 = t0 + chrono::Duration::seconds(2);
        assert_eq!(ledger.requeue("evt_late", t1).await.unwrap(), Some(1));
        alert_dead_letters(
            &ledger,
            &alerts,
            &InMemoryQueue::default(),
            std::slice::from_ref(&late),
            t1 + chrono::Duration::seconds(1),
        )
        .await
        .unwrap();
        assert_eq!(alerts.sent().len(), 1, "the death is still told");
        let rec = ledger.record("evt_late").unwrap();
        assert_eq!(rec.status, LedgerStatus::Queued, "the replay stands");
        assert_eq!(rec.replays, 1);
        // A letter sent after the replay (the replay died too) is recorded.
        late.sent_at = Some(t1 + chrono::Duration::seconds(1));
        alert_dead_letters(
            &ledger,
            &alerts,
            &InMemoryQueue::default(),
            std::slice::from_ref(&late),
            t1 + chrono::Duration::seconds(2),
        )
        .await
        .unwrap();
        assert_eq!(
            ledger.record("evt_late").unwrap().status,
            LedgerStatus::Dead
        );
    }

    #[tokio::test]
    async fn a_redriven_lead_that_only_waited_goes_back_on_the_queue_a_few_times_then_dies() {
        let (ledger, alerts, queue) = (
            InMemoryLedger::default(),
            RecordingAlerts::default(),
            InMemoryQueue::default(),
        );
        let held = sample_lead("evt_held", "a@b.co");
        ledger
            .record_received(&held, &held.to_json(), Utc::now())
            .await
            .unwrap();
        let redriven = DeadLetterMessage {
            message_id: "m1".into(),
            body: held.to_json(),
            attributes: HashMap::new(),
            sent_at: None,
        };
        for n in 1..=MAX_HELD_REQUEUES {
            let entries = alert_dead_letters(
                &ledger,
                &alerts,
                &queue,
                std::slice::from_ref(&redriven),
                Utc::now(),
            )
            .await
            .unwrap()
            .entries;
            assert!(entries.is_empty(), "not dead: {entries:?}");
            let rec = ledger.record("evt_held").unwrap();
            assert_eq!((rec.status, rec.replays), (LedgerStatus::Queued, n));
            assert_eq!(queue.enqueued().len(), n as usize, "back on the queue");
        }
        assert!(alerts.sent().is_empty());
        // a lead that keeps coming back without progress is dead after all, and alerted
        let entries = alert_dead_letters(&ledger, &alerts, &queue, &[redriven], Utc::now())
            .await
            .unwrap()
            .entries;
        assert_eq!(entries.len(), 1);
        assert_eq!(
            ledger.record("evt_held").unwrap().status,
            LedgerStatus::Dead
        );
        assert_eq!(alerts.sent().len(), 1);
    }

    #[tokio::test]
    async fn a_redriven_message_gets_its_last_error_from_the_ledger() {
        let (ledger, alerts) = (InMemoryLedger::default(), RecordingAlerts::default());
        let a = sample_lead("evt_1", "a@b.co");
        ledger.seed_failure("evt_1", transient(503).reason());
        let m = DeadLetterMessage {
            message_id: "m1".into(),
            body: a.to_json(),
            attributes: HashMap::new(),
            sent_at: None,
        };
        let entries = alert_dead_letters(
            &ledger,
            &alerts,
            &InMemoryQueue::default(),
            &[m],
            Utc::now(),
        )
        .await
        .unwrap()
        .entries;
        assert_eq!(entries[0].reason.code, "max_receive_count_exceeded");
        assert_eq!(entries[0].reason.http_status, Some(503));
        assert_eq!(ledger.record("evt_1").unwrap().status, LedgerStatus::Dead);
    }

    #[tokio::test]
    async fn an_alert_that_cannot_be_published_fails_the_batch() {
        let (ledger, alerts) = (InMemoryLedger::default(), RecordingAlerts::default());
        alerts.set_failing(true);
        let a = sample_lead("evt_1", "a@b.co");
        let r = alert_dead_letters(
            &ledger,
            &alerts,
            &InMemoryQueue::default(),
            &[letter(&a, &permanent("x").reason())],
            Utc::now(),
        )
        .await;
        assert!(r.is_err());
    }

    #[tokio::test]
    async fn an_unreadable_dead_letter_is_still_recorded_and_alerted() {
        let (ledger, alerts) = (InMemoryLedger::default(), RecordingAlerts::default());
        let m = DeadLetterMessage {
            message_id: "m9".into(),
            body: "garbage".into(),
            attributes: HashMap::new(),
            sent_at: None,
        };
        alert_dead_letters(
            &ledger,
            &alerts,
            &InMemoryQueue::default(),
            &[m],
            Utc::now(),
        )
        .await
        .unwrap();
        assert_eq!(ledger.record("sqs:m9").unwrap().status, LedgerStatus::Dead);
        assert!(alerts.sent()[0].1.contains("sqs:m9"));
    }
}
