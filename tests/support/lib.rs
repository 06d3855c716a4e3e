//! Helpers for the end-to-end tests: a local stack per test (one moto per test
//! binary, resources isolated by prefix), signed posts, and reads of the
//! simulator, the ledger and the alerts inbox — all with deadlines, never sleeps.

use std::future::Future;
use std::time::{Duration, Instant};

use lb_local::moto::Moto;
use lb_local::{LocalStack, StackOptions};
use lb_pipeline::{LedgerRecord, LedgerStatus};
use serde_json::{json, Value};

pub struct TestStack {
    pub stack: LocalStack,
    pub http: reqwest::Client,
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
    TestStack {
        stack,
        http: reqwest::Client::new(),
    }
}

/// Polls `f` until it returns `Some`, or panics with `what` after `timeout`.
pub async fn eventually<T, F, Fut>(what: &str, timeout: Duration, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f().await {
            return v;
        }
        if Instant::now() > deadline {
            panic!("timed out after {timeout:?} waiting for: {what}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A canonical event body for `email` (or `visitor` overrides).
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

    /// Posts `body` signed with the stack's webhook secret.
    pub async fn post(&self, body: &Value) -> (u16, Value) {
        let raw = serde_json::to_vec(body).unwrap();
        let sig = lb_vendors::signature::sign(self.secret(), chrono::Utc::now().timestamp(), &raw);
        self.post_raw(
            raw,
            &[
                ("content-type", "application/json"),
                ("leadbridge-signature", &sig),
            ],
        )
        .await
    }

    pub async fn post_raw(&self, body: Vec<u8>, headers: &[(&str, &str)]) -> (u16, Value) {
        let mut req = self
            .http
            .post(format!("{}/v1/events", self.stack.info.ingest_url))
            .body(body);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let resp = req.send().await.expect("ingest answers");
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap_or_default();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
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

    async fn hubspot(&self, path: &str) -> Value {
        let hs = &self.stack.info.crm.hubspot;
        self.http
            .get(format!("{}{path}", hs.base_url))
            .bearer_auth(&hs.token)
            .send()
            .await
            .expect("simulator answers")
            .json()
            .await
            .expect("simulator JSON")
    }

    /// Every record of `object` in the simulator (paging through the list endpoint).
    pub async fn hubspot_all(&self, object: &str, extra: &str) -> Vec<Value> {
        let mut out = Vec::new();
        let mut after = String::new();
        loop {
            let v = self
                .hubspot(&format!("/crm/v3/objects/{object}?limit=100{after}{extra}"))
                .await;
            out.extend(v["results"].as_array().cloned().unwrap_or_default());
            match v["paging"]["next"]["after"].as_str() {
                Some(a) => after = format!("&after={a}"),
                None => return out,
            }
        }
    }

    /// The contact with `email`, with its note and deal associations.
    pub async fn contact_by_email(&self, email: &str) -> Value {
        self.hubspot(&format!(
            "/crm/v3/objects/contacts/{email}?idProperty=email&associations=notes,deals&properties=email,firstname,lastname,phone,country,leadbridge_source"
        ))
        .await
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
        let mut req = self.http.request(
            method,
            format!("{}/__admin/{path}", self.stack.info.crm.hubspot.base_url),
        );
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.expect("admin answers");
        resp.json().await.unwrap_or(Value::Null)
    }

    /// Alerts published to SNS so far, read from the inbox queue subscribed to the topic.
    pub async fn alerts(&self) -> Vec<(String, String)> {
        let sqs = aws_sdk_sqs::Client::new(&self.stack.sdk);
        let mut out = Vec::new();
        loop {
            let r = sqs
                .receive_message()
                .queue_url(&self.stack.info.alerts_queue_url)
                .max_number_of_messages(10)
                .send()
                .await
                .expect("alerts inbox");
            let msgs = r.messages.unwrap_or_default();
            if msgs.is_empty() {
                return out;
            }
            for m in msgs {
                let env: Value = serde_json::from_str(m.body().unwrap_or("{}")).unwrap_or_default();
                out.push((
                    env["Subject"].as_str().unwrap_or_default().to_string(),
                    env["Message"].as_str().unwrap_or_default().to_string(),
                ));
                sqs.delete_message()
                    .queue_url(&self.stack.info.alerts_queue_url)
                    .set_receipt_handle(m.receipt_handle)
                    .send()
                    .await
                    .expect("delete alert");
            }
        }
    }
}
