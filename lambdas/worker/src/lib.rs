//! The worker function: an SQS batch (the real-time FIFO queue or the bulk
//! queue) → [`lb_pipeline::sync::sync_batch`] → partial batch response
//! (`ReportBatchItemFailures`); and the hourly EventBridge schedule →
//! [`lb_pipeline::check::hourly`] (every connection's schema and quota).

use std::sync::Arc;
use std::time::Duration;

use aws_lambda_events::event::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent, SqsMessage};
use chrono::{DateTime, Utc};
use lambda_runtime::LambdaEvent;
use lb_pipeline::hooks::Hooks;
use lb_pipeline::retry::RetryPolicy;
use lb_pipeline::sync::{sync_batch, InboundMessage, ItemOutcome, SystemClock, Worker};
use lb_pipeline::{env_parse, env_var, Alerts, Connections, LeadQueue, Ledger};
use tracing::{error, info, warn};

pub struct WorkerApp {
    pub ledger: Arc<dyn Ledger>,
    pub queue: Arc<dyn LeadQueue>,
    /// The CRM connections (one CRM, or every connection of the config file).
    pub crm: Arc<dyn Connections>,
    /// Where a possible duplicate (one person, several CRM records) is told.
    pub alerts: Arc<dyn Alerts>,
    pub policy: RetryPolicy,
    pub safety_margin: Duration,
    /// Fault hooks (the chaos suite's; none in production).
    pub hooks: Hooks,
}

impl WorkerApp {
    /// Cold-start work for every connection, side by side, so that the first
    /// lead pays no token read, schema read or TLS handshake to the CRM.
    pub async fn warm_up(&self) {
        futures_util::future::join_all(self.crm.all().into_iter().map(|c| c.warm_up())).await;
    }
}

/// The longest CRM timeout the worker accepts (the config file's `timeout_ms`
/// has the same bound).
pub const MAX_CONNECTION_TIMEOUT: Duration = Duration::from_secs(20);

/// The worker runs 60 s and keeps the slowest timeout plus 2 s free before it
/// starts a lead; a sync makes several calls. Checked at cold start.
pub fn check_timeout(timeout: Duration) -> Result<(), String> {
    if timeout > MAX_CONNECTION_TIMEOUT {
        return Err(format!(
            "HUBSPOT_TIMEOUT_MS is {} ms; at most {} ms leaves the worker time to sync a lead",
            timeout.as_millis(),
            MAX_CONNECTION_TIMEOUT.as_millis()
        ));
    }
    Ok(())
}

/// How long before the function's deadline a batch still in flight is aborted.
pub const DEADLINE_MARGIN: Duration = Duration::from_millis(250);

/// The settings the worker reads from its environment at cold start.
#[derive(Debug, Clone)]
pub struct WorkerEnv {
    pub queue_url: String,
    pub dlq_url: String,
    /// The bulk lane's standard queue (`BULK_QUEUE_URL`); none: bulk leads ride the real-time lane.
    pub bulk_queue_url: Option<String>,
    pub table_name: String,
    pub alerts_topic_arn: String,
    pub hubspot_secret_id: String,
    pub hubspot_base_url: String,
    pub hubspot_timeout: Duration,
    /// Contact property for `chatbot:<bot_id>` (`HUBSPOT_LEAD_SOURCE_PROPERTY`; empty: none).
    pub hubspot_lead_source_property: Option<String>,
    pub hubspot_context_properties: bool,
    pub hubspot_answer_properties: bool,
    pub secret_ttl: Duration,
    pub policy: RetryPolicy,
}

impl WorkerEnv {
    pub fn from_env() -> Result<Self, String> {
        let env = Self::read()?;
        check_timeout(env.hubspot_timeout)?;
        Ok(env)
    }

    fn read() -> Result<Self, String> {
        Ok(Self {
            queue_url: env_var("LEADS_QUEUE_URL")?,
            dlq_url: env_var("LEADS_DLQ_URL")?,
            bulk_queue_url: std::env::var("BULK_QUEUE_URL")
                .ok()
                .filter(|u| !u.is_empty()),
            table_name: env_var("LEDGER_TABLE")?,
            alerts_topic_arn: env_var("ALERTS_TOPIC_ARN")?,
            hubspot_secret_id: env_var("HUBSPOT_SECRET_ID")?,
            hubspot_base_url: env_parse("HUBSPOT_BASE_URL", "https://api.hubapi.com".to_string())?,
            hubspot_timeout: Duration::from_millis(env_parse("HUBSPOT_TIMEOUT_MS", 10_000u64)?),
            hubspot_lead_source_property: match std::env::var("HUBSPOT_LEAD_SOURCE_PROPERTY") {
                Ok(v) if v.trim().is_empty() => None,
                Ok(v) => Some(v.trim().to_string()),
                Err(_) => Some("leadbridge_source".to_string()),
            },
            hubspot_context_properties: env_parse("HUBSPOT_CONTEXT_PROPERTIES", true)?,
            hubspot_answer_properties: env_parse("HUBSPOT_ANSWER_PROPERTIES", true)?,
            secret_ttl: Duration::from_secs(env_parse("SECRET_TTL_SECONDS", 300u64)?),
            policy: RetryPolicy {
                base: Duration::from_millis(env_parse("RETRY_BASE_MS", 2_000u64)?),
                cap: Duration::from_millis(env_parse("RETRY_CAP_MS", 3_600_000u64)?),
                max_attempts: env_parse("RETRY_MAX_ATTEMPTS", 16u32)?,
            },
        })
    }
}

/// Maps an SQS record to what the use case needs.
pub fn inbound(m: &SqsMessage) -> InboundMessage {
    InboundMessage {
        message_id: m.message_id.clone().unwrap_or_default(),
        receipt_handle: m.receipt_handle.clone().unwrap_or_default(),
        body: m.body.clone().unwrap_or_default(),
        group_id: m.attributes.get("MessageGroupId").cloned(),
        // The real-time lane is the FIFO queue; the bulk lane a standard one.
        lane: if m
            .event_source_arn
            .as_deref()
            .is_some_and(|arn| !arn.ends_with(".fifo"))
        {
            lb_domain::Lane::Bulk
        } else {
            lb_domain::Lane::Realtime
        },
        receive_count: m
            .attributes
            .get("ApproximateReceiveCount")
            .and_then(|c| c.parse().ok())
            .unwrap_or(1),
    }
}

/// Handles one SQS batch. Never fails as a whole for one bad message: each
/// message not finished is reported in `batchItemFailures`. A panic fails
/// every message of the batch (the work already done is idempotent).
/// Whatever invoked the function: the schedule's event (`"source": "aws.events"`)
/// runs the hourly check; anything else is an SQS batch.
pub async fn dispatch(
    app: Arc<WorkerApp>,
    event: LambdaEvent<serde_json::Value>,
) -> Result<serde_json::Value, lambda_runtime::Error> {
    if event.payload["source"] == "aws.events" {
        let checked = check(&app).await;
        return Ok(serde_json::json!({ "checked": checked }));
    }
    let sqs: SqsEvent = serde_json::from_value(event.payload)?;
    let out = handle(app, LambdaEvent::new(sqs, event.context)).await?;
    Ok(serde_json::to_value(out)?)
}

/// The hourly check over every connection; what it found, per connection.
pub async fn check(app: &WorkerApp) -> Vec<serde_json::Value> {
    lb_pipeline::check::hourly(
        app.crm.as_ref(),
        app.ledger.as_ref(),
        app.alerts.as_ref(),
        Utc::now(),
    )
    .await
    .into_iter()
    .map(|c| {
        serde_json::json!({
            "connection": c.connection,
            "findings": c.findings.as_ref().map(Vec::len).ok(),
            "error": c.findings.err(),
            "alerted": c.alerted,
        })
    })
    .collect()
}

pub async fn handle(
    app: Arc<WorkerApp>,
    event: LambdaEvent<SqsEvent>,
) -> Result<SqsBatchResponse, lambda_runtime::Error> {
    let deadline: DateTime<Utc> = DateTime::from_timestamp_millis(event.context.deadline as i64)
        .filter(|d| *d > Utc::now())
        .unwrap_or_else(|| Utc::now() + chrono::Duration::seconds(30));
    let messages: Vec<InboundMessage> = event.payload.records.iter().map(inbound).collect();
    let ids: Vec<String> = messages.iter().map(|m| m.message_id.clone()).collect();
    let task = {
        let app = app.clone();
        let messages = messages.clone();
        tokio::spawn(async move {
            let w = Worker {
                ledger: app.ledger.as_ref(),
                queue: app.queue.as_ref(),
                crm: app.crm.as_ref(),
                alerts: app.alerts.as_ref(),
                clock: &SystemClock,
                policy: app.policy,
                safety_margin: app.safety_margin,
                hooks: &app.hooks,
            };
            sync_batch(&w, &messages, deadline).await
        })
    };
    // Stop just before the deadline, as Lambda would, but cleanly: abort the batch so
    // that no CRM call outlives the ledger lease (which ends at the deadline).
    let budget = (deadline - Utc::now())
        .to_std()
        .unwrap_or_default()
        .saturating_sub(DEADLINE_MARGIN);
    let mut task = task;
    let outcomes = match tokio::time::timeout(budget, &mut task).await {
        Ok(Ok(o)) => o,
        Ok(Err(e)) => {
            error!(error = %e, "worker panicked; failing the whole batch");
            return Ok(failures(ids.iter().map(String::as_str)));
        }
        Err(_) => {
            task.abort();
            warn!(
                batch = ids.len(),
                "deadline reached with work in flight; batch aborted and handed back"
            );
            return Ok(failures(ids.iter().map(String::as_str)));
        }
    };
    let synced = outcomes
        .iter()
        .filter(|o| matches!(o, ItemOutcome::Synced(_)))
        .count();
    let failed: Vec<&str> = ids
        .iter()
        .zip(&outcomes)
        .filter(|(_, o)| !o.is_ack())
        .map(|(id, _)| id.as_str())
        .collect();
    info!(
        batch = ids.len(),
        synced,
        failed = failed.len(),
        "batch done"
    );
    Ok(failures(failed.into_iter()))
}

fn failures<'a>(ids: impl Iterator<Item = &'a str>) -> SqsBatchResponse {
    let mut r = SqsBatchResponse::default();
    r.batch_item_failures = ids
        .map(|id| {
            let mut f = BatchItemFailure::default();
            f.item_identifier = id.to_string();
            f
        })
        .collect();
    r
}

#[cfg(test)]
mod tests {
    use super::*;
    use lb_pipeline::fakes::*;

    fn record(id: &str, body: String, group: &str) -> SqsMessage {
        let mut m = SqsMessage::default();
        m.message_id = Some(id.into());
        m.receipt_handle = Some(format!("rh-{id}"));
        m.body = Some(body);
        m.attributes.insert("MessageGroupId".into(), group.into());
        m.attributes
            .insert("ApproximateReceiveCount".into(), "1".into());
        m
    }

    #[test]
    fn a_hubspot_timeout_that_leaves_no_time_is_refused_at_cold_start() {
        assert!(check_timeout(Duration::from_secs(20)).is_ok());
        let e = check_timeout(Duration::from_millis(20_001)).unwrap_err();
        assert!(e.contains("HUBSPOT_TIMEOUT_MS"), "{e}");
    }

    fn app_with(crm: Arc<FakeCrm>) -> Arc<WorkerApp> {
        Arc::new(WorkerApp {
            ledger: Arc::new(InMemoryLedger::default()),
            queue: Arc::new(InMemoryQueue::default()),
            crm,
            alerts: Arc::new(lb_pipeline::fakes::RecordingAlerts::default()),
            policy: RetryPolicy::default(),
            safety_margin: Duration::from_millis(10),
            hooks: Hooks::NONE,
        })
    }

    /// Invokes the handler with `time_left` before the deadline; the ids it reports failed.
    async fn failed_ids(
        app: Arc<WorkerApp>,
        ev: SqsEvent,
        time_left: chrono::Duration,
    ) -> Vec<String> {
        let mut ctx = lambda_runtime::Context::default();
        ctx.deadline = (Utc::now() + time_left).timestamp_millis() as u64;
        let resp = handle(app, LambdaEvent::new(ev, ctx)).await.unwrap();
        resp.batch_item_failures
            .into_iter()
            .map(|f| f.item_identifier)
            .collect()
    }

    #[tokio::test]
    async fn a_batch_stuck_past_the_deadline_is_aborted_and_handed_back_whole() {
        let crm = Arc::new(FakeCrm::default());
        crm.stall_next();
        let app = app_with(crm.clone());
        let mut ev = SqsEvent::default();
        ev.records = vec![record("m1", sample_lead("evt_1", "a@b.co").to_json(), "ga")];
        let ids = failed_ids(app, ev, chrono::Duration::milliseconds(800)).await;
        assert_eq!(ids, vec!["m1"]);
        assert_eq!(
            crm.contact_count(),
            0,
            "the stalled call was dropped, not finished later"
        );
    }

    #[tokio::test]
    async fn failed_messages_and_their_group_followers_are_reported() {
        let crm = Arc::new(FakeCrm::default());
        let app = app_with(crm.clone());
        crm.fail_next(transient(503));
        let a1 = sample_lead("evt_1", "a@b.co");
        let a2 = sample_lead("evt_2", "a@b.co");
        let b = sample_lead("evt_3", "b@b.co");
        let mut ev = SqsEvent::default();
        ev.records = vec![
            record("m1", a1.to_json(), "ga"),
            record("m2", b.to_json(), "gb"),
            record("m3", a2.to_json(), "ga"),
        ];
        let ids = failed_ids(app, ev, chrono::Duration::seconds(30)).await;
        assert_eq!(ids, vec!["m1", "m3"]);
        assert_eq!(crm.contact_count(), 1);
    }
}
