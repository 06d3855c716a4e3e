//! The dlq-alerter function: dead letters → ledger `dead` → one SNS alert per batch.

use std::sync::Arc;

use aws_lambda_events::event::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent, SqsMessage};
use lambda_runtime::LambdaEvent;
use lb_pipeline::alert::{alert_dead_letters, DeadLetterMessage};
use lb_pipeline::{env_var, Alerts, LeadQueue, Ledger};

pub struct AlerterApp {
    pub ledger: Arc<dyn Ledger>,
    pub alerts: Arc<dyn Alerts>,
    /// Where a lead redriven without a real attempt goes back.
    pub queue: Arc<dyn LeadQueue>,
}

#[derive(Debug, Clone)]
pub struct AlerterEnv {
    pub table_name: String,
    pub topic_arn: String,
    pub queue_url: String,
    pub dlq_url: String,
    /// The bulk lane's standard queue (`BULK_QUEUE_URL`); none: bulk leads ride the real-time lane.
    pub bulk_queue_url: Option<String>,
}

impl AlerterEnv {
    pub fn from_env() -> Result<Self, String> {
        Ok(Self {
            table_name: env_var("LEDGER_TABLE")?,
            topic_arn: env_var("ALERTS_TOPIC_ARN")?,
            queue_url: env_var("LEADS_QUEUE_URL")?,
            dlq_url: env_var("LEADS_DLQ_URL")?,
            bulk_queue_url: std::env::var("BULK_QUEUE_URL")
                .ok()
                .filter(|u| !u.is_empty()),
        })
    }
}

pub fn dead_letter(m: &SqsMessage) -> DeadLetterMessage {
    DeadLetterMessage {
        message_id: m.message_id.clone().unwrap_or_default(),
        body: m.body.clone().unwrap_or_default(),
        attributes: m
            .message_attributes
            .iter()
            .filter_map(|(k, v)| v.string_value.clone().map(|s| (k.clone(), s)))
            .collect(),
        sent_at: m
            .attributes
            .get("SentTimestamp")
            .and_then(|ms| ms.parse::<i64>().ok())
            .and_then(chrono::DateTime::from_timestamp_millis),
    }
}

/// Reports per message (`ReportBatchItemFailures`): a message the ledger could
/// not record comes back on its own (it was alerted all the same); only an
/// alert SNS did not take fails the whole batch. Every step is idempotent.
pub async fn handle(
    app: Arc<AlerterApp>,
    event: LambdaEvent<SqsEvent>,
) -> Result<SqsBatchResponse, lambda_runtime::Error> {
    let messages: Vec<DeadLetterMessage> = event.payload.records.iter().map(dead_letter).collect();
    let failed: Vec<String> = match alert_dead_letters(
        app.ledger.as_ref(),
        app.alerts.as_ref(),
        app.queue.as_ref(),
        &messages,
        chrono::Utc::now(),
    )
    .await
    {
        Ok(report) => report.failed,
        Err(e) => {
            tracing::error!(error = %e, "the alert could not be published; the batch comes back");
            messages.iter().map(|m| m.message_id.clone()).collect()
        }
    };
    let mut response = SqsBatchResponse::default();
    response.batch_item_failures = failed
        .into_iter()
        .map(|id| {
            let mut f = BatchItemFailure::default();
            f.item_identifier = id;
            f
        })
        .collect();
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_lambda_events::event::sqs::SqsMessageAttribute;
    use lb_pipeline::fakes::*;

    #[tokio::test]
    async fn a_batch_of_dead_letters_becomes_one_alert() {
        let ledger = Arc::new(InMemoryLedger::default());
        let alerts = Arc::new(RecordingAlerts::default());
        let app = Arc::new(AlerterApp {
            ledger: ledger.clone(),
            alerts: alerts.clone(),
            queue: Arc::new(InMemoryQueue::default()),
        });
        let mut ev = SqsEvent::default();
        for (i, email) in ["a@b.co", "c@d.co"].iter().enumerate() {
            let mut m = SqsMessage::default();
            m.message_id = Some(format!("m{i}"));
            m.body = Some(sample_lead(&format!("evt_{i}"), email).to_json());
            for (k, v) in [
                ("leadbridge-error-class", "permanent"),
                ("leadbridge-error-code", "crm_rejected"),
            ] {
                let mut a = SqsMessageAttribute::default();
                a.string_value = Some(v.into());
                a.data_type = Some("String".into());
                m.message_attributes.insert(k.into(), a);
            }
            ev.records.push(m);
        }
        handle(
            app,
            LambdaEvent::new(ev, lambda_runtime::Context::default()),
        )
        .await
        .unwrap();
        assert_eq!(alerts.sent().len(), 1);
        assert!(alerts.sent()[0].1.contains("crm_rejected"));
        assert_eq!(
            ledger.record("evt_1").unwrap().status,
            lb_pipeline::LedgerStatus::Dead
        );
    }

    fn batch(n: usize) -> SqsEvent {
        let mut ev = SqsEvent::default();
        for i in 0..n {
            let mut m = SqsMessage::default();
            m.message_id = Some(format!("m{i}"));
            m.body = Some(sample_lead(&format!("evt_{i}"), "a@b.co").to_json());
            let mut a = SqsMessageAttribute::default();
            a.string_value = Some("permanent".into());
            a.data_type = Some("String".into());
            m.message_attributes
                .insert("leadbridge-error-class".into(), a);
            ev.records.push(m);
        }
        ev
    }

    fn failed_ids(r: &SqsBatchResponse) -> Vec<String> {
        r.batch_item_failures
            .iter()
            .map(|f| f.item_identifier.clone())
            .collect()
    }

    #[tokio::test]
    async fn a_ledger_that_cannot_record_does_not_blind_the_alert() {
        let ledger = Arc::new(InMemoryLedger::default());
        let alerts = Arc::new(RecordingAlerts::default());
        let app = Arc::new(AlerterApp {
            ledger: ledger.clone(),
            alerts: alerts.clone(),
            queue: Arc::new(InMemoryQueue::default()),
        });
        ledger.set_failing(true);
        let r = handle(
            app,
            LambdaEvent::new(batch(2), lambda_runtime::Context::default()),
        )
        .await
        .unwrap();
        let sent = alerts.sent();
        assert_eq!(sent.len(), 1, "published although the ledger is down");
        assert!(sent[0].1.contains("evt_0") && sent[0].1.contains("evt_1"));
        assert!(sent[0].1.contains("not yet recorded in the ledger"));
        assert_eq!(
            failed_ids(&r),
            vec!["m0", "m1"],
            "each comes back to be recorded"
        );
    }

    #[tokio::test]
    async fn an_alert_sns_refuses_brings_the_whole_batch_back() {
        let alerts = Arc::new(RecordingAlerts::default());
        let app = Arc::new(AlerterApp {
            ledger: Arc::new(InMemoryLedger::default()),
            alerts: alerts.clone(),
            queue: Arc::new(InMemoryQueue::default()),
        });
        alerts.set_failing(true);
        let r = handle(
            app,
            LambdaEvent::new(batch(3), lambda_runtime::Context::default()),
        )
        .await
        .unwrap();
        assert_eq!(failed_ids(&r), vec!["m0", "m1", "m2"]);
    }
}
