//! Ingest's use case: record the event, put it durably on the queue, say whether it was new.

use chrono::{DateTime, Utc};
use lb_domain::QueuedLead;
use tracing::warn;

use crate::ports::{LeadQueue, Ledger, LedgerStatus, PortError, Received};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Accepted {
    /// Durably queued now.
    Queued,
    /// The ledger already had this event queued, synced or dead: nothing sent again.
    Duplicate,
}

#[derive(Debug, thiserror::Error)]
pub enum AcceptError {
    /// The queue did not take the message: nothing was accepted, the sender must retry.
    #[error("the queue did not accept the event: {0}")]
    QueueUnavailable(PortError),
    /// The event id is known with a different payload.
    #[error("event_id was already used for a different payload")]
    Conflict,
}

/// Records `lead` in the ledger and enqueues it. Returns `Ok` only once the
/// queue has accepted the message (or the ledger proves an earlier delivery was).
///
/// A ledger outage does not block intake: the event is still queued (the
/// worker's ledger `begin` is the idempotency guard), only the duplicate
/// answer is lost.
pub async fn accept_lead(
    ledger: &dyn Ledger,
    queue: &dyn LeadQueue,
    lead: &QueuedLead,
    now: DateTime<Utc>,
) -> Result<Accepted, AcceptError> {
    let event_id = lead.event.event_id.as_str();
    let body = lead.for_ledger().to_json();
    let mut ledger_ok = true;
    match ledger.record_received(lead, &body, now).await {
        Ok(Received::New) => {}
        Ok(Received::Existing(rec)) => {
            if rec
                .payload_hash
                .as_deref()
                .is_some_and(|h| h != lead.payload_hash)
            {
                return Err(AcceptError::Conflict);
            }
            if rec.status != LedgerStatus::Received {
                return Ok(Accepted::Duplicate);
            }
            // `received` only: an earlier delivery may not have reached the queue.
            // Send again; the queue deduplicates by event id.
        }
        Err(e) => {
            ledger_ok = false;
            warn!(event_id, error = %e, "ledger unavailable at ingest; queueing without duplicate check");
        }
    }
    queue
        .enqueue(lead)
        .await
        .map_err(AcceptError::QueueUnavailable)?;
    if ledger_ok {
        if let Err(e) = ledger.mark_queued(&lead.delivery_id(), now).await {
            warn!(event_id, error = %e, "event queued but ledger not updated to queued");
        }
    }
    crate::telemetry::accepted(lead.event.bot_id.as_str());
    Ok(Accepted::Queued)
}

/// Accepts one event routed to several connections: each delivery is recorded
/// and queued on its own (see [`accept_lead`]). `Duplicate` only when every
/// delivery was; a conflict or a queue failure on any delivery is the answer
/// (the sender retries, and the deliveries already queued read as duplicates).
pub async fn accept_deliveries(
    ledger: &dyn Ledger,
    queue: &dyn LeadQueue,
    deliveries: &[QueuedLead],
    now: DateTime<Utc>,
) -> Result<Accepted, AcceptError> {
    let mut all_duplicates = true;
    for d in deliveries {
        if accept_lead(ledger, queue, d, now).await? == Accepted::Queued {
            all_duplicates = false;
        }
    }
    Ok(if all_duplicates && !deliveries.is_empty() {
        Accepted::Duplicate
    } else {
        Accepted::Queued
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fakes::{sample_lead, InMemoryLedger, InMemoryQueue};

    #[tokio::test]
    async fn new_event_is_queued_and_marked_queued() {
        let (ledger, queue) = (InMemoryLedger::default(), InMemoryQueue::default());
        let lead = sample_lead("evt_1", "a@b.co");
        assert_eq!(
            accept_lead(&ledger, &queue, &lead, Utc::now())
                .await
                .unwrap(),
            Accepted::Queued
        );
        assert_eq!(queue.enqueued().len(), 1);
        assert_eq!(ledger.record("evt_1").unwrap().status, LedgerStatus::Queued);
    }

    #[tokio::test]
    async fn the_ledger_keeps_what_a_replay_needs_and_the_queue_gets_the_whole_lead() {
        let (ledger, queue) = (InMemoryLedger::default(), InMemoryQueue::default());
        let mut lead = sample_lead("evt_1", "a@b.co");
        lead.event.transcript = Some(lb_domain::Transcript {
            summary: Some("wants Pro".into()),
            lines: vec![lb_domain::TranscriptLine {
                at: None,
                from: "visitor".into(),
                text: "call me on +1 415 555 2671".into(),
            }],
            ..Default::default()
        });
        accept_lead(&ledger, &queue, &lead, Utc::now())
            .await
            .unwrap();
        let stored = ledger.record("evt_1").unwrap().payload.unwrap();
        assert!(
            !stored.contains("call me on"),
            "no transcript line in the ledger: {stored}"
        );
        assert!(stored.contains("wants Pro"));
        assert_eq!(
            queue.enqueued()[0]
                .event
                .transcript
                .as_ref()
                .unwrap()
                .lines
                .len(),
            1
        );
    }

    #[tokio::test]
    async fn second_delivery_is_a_duplicate_and_not_sent_again() {
        let (ledger, queue) = (InMemoryLedger::default(), InMemoryQueue::default());
        let lead = sample_lead("evt_1", "a@b.co");
        accept_lead(&ledger, &queue, &lead, Utc::now())
            .await
            .unwrap();
        assert_eq!(
            accept_lead(&ledger, &queue, &lead, Utc::now())
                .await
                .unwrap(),
            Accepted::Duplicate
        );
        assert_eq!(queue.enqueued().len(), 1);
    }

    #[tokio::test]
    async fn same_event_id_with_other_payload_is_a_conflict() {
        let (ledger, queue) = (InMemoryLedger::default(), InMemoryQueue::default());
        accept_lead(&ledger, &queue, &sample_lead("evt_1", "a@b.co"), Utc::now())
            .await
            .unwrap();
        let err = accept_lead(
            &ledger,
            &queue,
            &sample_lead("evt_1", "other@b.co"),
            Utc::now(),
        )
        .await
        .unwrap_err();
        assert!(matches!(err, AcceptError::Conflict));
    }

    #[tokio::test]
    async fn queue_outage_accepts_nothing_and_a_retry_sends_again() {
        let (ledger, queue) = (InMemoryLedger::default(), InMemoryQueue::default());
        let lead = sample_lead("evt_1", "a@b.co");
        queue.set_failing(true);
        assert!(matches!(
            accept_lead(&ledger, &queue, &lead, Utc::now()).await,
            Err(AcceptError::QueueUnavailable(_))
        ));
        assert_eq!(
            ledger.record("evt_1").unwrap().status,
            LedgerStatus::Received
        );
        queue.set_failing(false);
        assert_eq!(
            accept_lead(&ledger, &queue, &lead, Utc::now())
                .await
                .unwrap(),
            Accepted::Queued
        );
        assert_eq!(queue.enqueued().len(), 1);
    }

    fn routed(lead: &QueuedLead, connection: &str) -> QueuedLead {
        lead.for_delivery(lb_domain::Delivery {
            connection: connection.into(),
            lead_source: Some("Chatbot".into()),
            object: "contact".into(),
            split_name: None,
        })
    }

    #[tokio::test]
    async fn a_routed_event_is_queued_once_per_connection_and_tracked_per_delivery() {
        let (ledger, queue) = (InMemoryLedger::default(), InMemoryQueue::default());
        let lead = sample_lead("evt_1", "a@b.co");
        let both = [routed(&lead, "hubspot"), routed(&lead, "zapier")];
        assert_eq!(
            accept_deliveries(&ledger, &queue, &both, Utc::now())
                .await
                .unwrap(),
            Accepted::Queued
        );
        let sent: Vec<String> = queue.enqueued().iter().map(|l| l.delivery_id()).collect();
        assert_eq!(sent, ["evt_1@hubspot", "evt_1@zapier"]);
        for id in ["evt_1@hubspot", "evt_1@zapier"] {
            assert_eq!(ledger.record(id).unwrap().status, LedgerStatus::Queued);
        }
        assert_ne!(
            both[0].group_id(),
            both[1].group_id(),
            "one FIFO group per connection"
        );
        assert_eq!(
            accept_deliveries(&ledger, &queue, &both, Utc::now())
                .await
                .unwrap(),
            Accepted::Duplicate
        );
        assert_eq!(queue.enqueued().len(), 2);
    }

    #[tokio::test]
    async fn a_queue_failure_on_the_second_delivery_fails_the_event_and_a_retry_completes_it() {
        let (ledger, queue) = (InMemoryLedger::default(), InMemoryQueue::default());
        let lead = sample_lead("evt_1", "a@b.co");
        let both = [routed(&lead, "hubspot"), routed(&lead, "zapier")];
        accept_lead(&ledger, &queue, &both[0], Utc::now())
            .await
            .unwrap();
        queue.set_failing(true);
        assert!(accept_deliveries(&ledger, &queue, &both, Utc::now())
            .await
            .is_err());
        queue.set_failing(false);
        assert_eq!(
            accept_deliveries(&ledger, &queue, &both, Utc::now())
                .await
                .unwrap(),
            Accepted::Queued
        );
        assert_eq!(queue.enqueued().len(), 2);
    }

    #[tokio::test]
    async fn ledger_outage_still_queues_the_lead() {
        let (ledger, queue) = (InMemoryLedger::default(), InMemoryQueue::default());
        ledger.set_failing(true);
        let lead = sample_lead("evt_1", "a@b.co");
        assert_eq!(
            accept_lead(&ledger, &queue, &lead, Utc::now())
                .await
                .unwrap(),
            Accepted::Queued
        );
        assert_eq!(queue.enqueued().len(), 1);
    }
}
