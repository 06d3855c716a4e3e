//! Helpers for the end-to-end tests: a local stack per test (one moto per test
//! binary, resources isolated by prefix) and a [`StackClient`] to drive it.

pub mod webdriver;

use std::future::Future;
use std::time::Duration;

use lb_local::client::StackClient;
use lb_local::moto::Moto;
use lb_local::{LocalStack, StackOptions};
use lb_pipeline::{LedgerRecord, LedgerStatus};
use serde_json::{json, Value};

pub struct TestStack {
    pub stack: LocalStack,
    pub client: StackClient,
}

/// Starts a stack for one test, with a unique resource prefix.
pub async fn start(name: &str, tweak: impl FnOnce(&mut StackOptions)) -> TestStack {
    let moto = Moto::shared().expect("moto server (run `make venv` first)");
    let mut opts = StackOptions {
        prefix: format!("t{}-{name}", rand::random::<u32>()),
        moto: Some(moto),
        worker_concurrency: 2,
        ..StackOptions::default()
    };
    opts.sim.search_lag_ms = 1_500;
    tweak(&mut opts);
    let stack = LocalStack::start(opts).await.expect("local stack starts");
    let client = StackClient::new(stack.info.clone());
    TestStack { stack, client }
}

/// Polls `f` until it returns `Some`; panics naming `what` after `timeout`.
pub async fn eventually<T, F, Fut>(what: &str, timeout: Duration, f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    lb_local::client::eventually(what, timeout, f)
        .await
        .unwrap_or_else(|e| panic!("{e}"))
}

/// A canonical event body for `visitor`.
pub fn lead(event_id: &str, visitor: Value) -> Value {
    json!({
        "event_id": event_id,
        "event_type": "lead.created",
        "occurred_at": "2026-05-04T11:23:45.123Z",
        "bot_id": "bot_acme_pricing",
        "conversation_id": "conv_1",
        "visitor": visitor,
        "context": {"source_url": "https://example.com/pricing", "utm_source": "google", "utm_campaign": "q2"},
        "intent": {"primary": "pricing_inquiry", "labels": ["pricing"], "qualification_score": 78},
        "transcript": {"summary": "Asked about Pro tier pricing", "messages": 14},
        "consent": {"given_at": "2026-05-04T11:21:00Z", "text_version": "v3", "purpose": "sales_followup"}
    })
}

impl TestStack {
    pub fn secret(&self) -> &str {
        &self.stack.info.webhook_secret
    }

    pub async fn post(&self, body: &Value) -> (u16, Value) {
        self.client.post(body).await.expect("ingest answers")
    }

    pub async fn post_raw(&self, body: Vec<u8>, headers: &[(&str, &str)]) -> (u16, Value) {
        self.client
            .post_raw(body, headers)
            .await
            .expect("ingest answers")
    }

    pub async fn ledger(&self, event_id: &str) -> Option<LedgerRecord> {
        self.stack
            .ledger()
            .get(event_id)
            .await
            .expect("ledger reachable")
    }

    /// Waits until the event reaches `status` in the ledger.
    pub async fn wait_status(&self, event_id: &str, status: LedgerStatus) -> LedgerRecord {
        eventually(
            &format!("{event_id} to be {}", status.as_str()),
            Duration::from_secs(30),
            || async { self.ledger(event_id).await.filter(|r| r.status == status) },
        )
        .await
    }

    pub async fn hubspot_all(&self, object: &str, extra: &str) -> Vec<Value> {
        self.client
            .hubspot_all(object, extra)
            .await
            .expect("simulator answers")
    }

    /// The contact with `email`, with its note and deal associations.
    pub async fn contact_by_email(&self, email: &str) -> Value {
        self.client
            .hubspot(&format!(
                "/crm/v3/objects/contacts/{email}?idProperty=email&associations=notes,deals\
                 &properties=email,firstname,lastname,phone,country,leadbridge_source"
            ))
            .await
            .expect("simulator answers")
    }

    pub fn note_ids(contact: &Value) -> Vec<String> {
        contact["associations"]["notes"]["results"]
            .as_array()
            .map(|r| {
                r.iter()
                    .filter_map(|n| n["id"].as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default()
    }

    pub async fn admin(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        self.client
            .admin(method, path, body)
            .await
            .expect("admin answers")
    }

    /// Waits for the first alert for which `matches(subject, message)` holds
    /// (the others taken meanwhile are dropped); panics naming `what`.
    pub async fn alert_where(
        &self,
        what: &str,
        matches: impl Fn(&str, &str) -> bool,
    ) -> (String, String) {
        let seen = std::sync::Mutex::new(Vec::new());
        eventually(what, Duration::from_secs(30), || async {
            let taken = self.alerts().await;
            let mut seen = seen.lock().unwrap_or_else(|p| p.into_inner());
            seen.extend(taken);
            seen.iter().find(|(s, m)| matches(s, m)).cloned()
        })
        .await
    }

    /// Alerts published to SNS so far (taken off the inbox queue).
    pub async fn alerts(&self) -> Vec<(String, String)> {
        let sqs = aws_sdk_sqs::Client::new(&self.stack.sdk);
        self.client.take_alerts(&sqs).await.expect("alerts inbox")
    }
}

/// Captures, for the rest of this test binary, every log line the pipeline's
/// crates write (JSON, debug level), as production would write them. The
/// simulator's own logs are left out: it stands in for HubSpot.
pub fn capture_logs() -> std::sync::Arc<std::sync::Mutex<Vec<u8>>> {
    use std::sync::{Arc, Mutex, OnceLock};
    static BUF: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    BUF.get_or_init(|| {
        let buf: Arc<Mutex<Vec<u8>>> = Arc::default();
        let writer_buf = buf.clone();
        let subscriber = tracing_subscriber::fmt()
            .json()
            .with_current_span(true)
            .with_env_filter(tracing_subscriber::EnvFilter::new(
                "info,lb_pipeline=debug,lb_crm=debug,lb_aws=debug,lb_vendors=debug,ingest=debug,worker=debug,\
                 dlq_alerter=debug,lb_local=debug,crm_sim=off",
            ))
            .with_writer(move || SharedWriter(writer_buf.clone()))
            .finish();
        tracing::subscriber::set_global_default(subscriber).expect("no other global subscriber");
        buf
    })
    .clone()
}

struct SharedWriter(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for SharedWriter {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .map_err(|_| std::io::Error::other("poisoned"))?
            .extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
