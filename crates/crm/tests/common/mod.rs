//! What the CRM adapters' tests against their simulators share: the grant
//! secret as Secrets Manager holds it, the simulators' admin API, and leads.
//! (Each test file uses a part of it.)
#![allow(dead_code)]

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use lb_domain::{EventId, LeadEvent, QueuedLead};
use lb_pipeline::secrets::CachedSecret;
use lb_pipeline::{ContactUpsert, ContactWrite, PortError, SecretStore};
use reqwest::Method;
use serde_json::{json, Value};

/// The grant secret, as Secrets Manager would hold it.
pub struct GrantStore(std::sync::Mutex<String>);

impl GrantStore {
    pub fn new(value: String) -> Self {
        GrantStore(std::sync::Mutex::new(value))
    }
    pub fn value(&self) -> String {
        self.0.lock().unwrap().clone()
    }
    /// The store behind a connection's cached secret named `name`.
    pub fn cached(self: Arc<Self>, name: &str) -> Arc<CachedSecret> {
        Arc::new(CachedSecret::new(self, name, Duration::from_secs(300)))
    }
}

#[async_trait]
impl SecretStore for GrantStore {
    async fn get_secret(&self, _: &str) -> Result<String, PortError> {
        Ok(self.value())
    }
    /// As Secrets Manager's PutSecretValue: the next read sees the new value.
    async fn put_secret(&self, _: &str, value: &str) -> Result<(), PortError> {
        *self.0.lock().unwrap() = value.to_string();
        Ok(())
    }
}

/// A simulator's admin API at `base` (`/__admin/{path}`); a 3xx or worse fails the test.
pub async fn admin(
    http: &reqwest::Client,
    base: &str,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> Value {
    let mut req = http.request(method, format!("{base}/__admin/{path}"));
    if let Some(b) = body {
        req = req.json(&b);
    }
    let resp = req.send().await.expect("answered");
    let status = resp.status().as_u16();
    let v: Value = resp.json().await.unwrap_or(Value::Null);
    assert!(status < 300, "admin {path}: {status} {v}");
    v
}

/// How many calls the simulator at `base` has answered on `route` (`"POST /path"`).
pub async fn calls(http: &reqwest::Client, base: &str, route: &str) -> u64 {
    admin(http, base, Method::GET, "stats", None).await["by_route"][route]
        .as_u64()
        .unwrap_or(0)
}

/// A lead of `bot_acme` with an entry page, UTM, intent and a summary.
pub fn lead(event_id: &str, visitor: Value) -> QueuedLead {
    lead_with(event_id, visitor, json!({}))
}

/// [`lead`] with more top-level fields (`answers`, `consent`, `crm_target`…).
pub fn lead_with(event_id: &str, visitor: Value, more: Value) -> QueuedLead {
    let mut event = json!({
        "event_id": event_id,
        "event_type": "lead.created",
        "occurred_at": "2026-05-04T11:23:45Z",
        "bot_id": "bot_acme",
        "visitor": visitor,
        "context": {"source_url": "https://acme.in/pricing", "utm_source": "google"},
        "intent": {"primary": "pricing", "qualification_score": 80},
        "transcript": {"summary": "Asked about pricing"}
    });
    for (k, v) in more.as_object().into_iter().flatten() {
        event[k] = v.clone();
    }
    let event: LeadEvent = serde_json::from_value(event).expect("event");
    QueuedLead::new(event, chrono::Utc::now()).expect("identity")
}

/// A lead with an email, a name, a company and a country.
pub fn person(event_id: &str, email: &str, name: &str) -> QueuedLead {
    lead(
        event_id,
        json!({"email": email, "name": name, "company": "Acme", "country": "IN"}),
    )
}

/// One item of a batch: a person nobody remembers, written in full.
pub fn item(lead: QueuedLead) -> ContactUpsert {
    ContactUpsert {
        lead,
        known_id: None,
        write: ContactWrite::Full,
    }
}

pub fn eid(s: &str) -> EventId {
    EventId::parse(s).expect("event id")
}

/// Five people of one batch; the third one's name is longer than 10 characters.
pub fn five_with_one_long_name() -> Vec<ContactUpsert> {
    [
        "Ann Lee",
        "Bo Chan",
        "Bartholomew-Maximilian Jones",
        "Di Ng",
        "Ed Roe",
    ]
    .iter()
    .enumerate()
    .map(|(i, n)| item(person(&format!("evt_b{i}"), &format!("p{i}@x.io"), n)))
    .collect()
}

/// Of [`five_with_one_long_name`]'s answers, the third alone is refused
/// (permanent, with the CRM's `category` and HTTP `status`, its message holding
/// each of `says` and no name); the others are new records.
pub fn only_the_long_name_refused(
    answers: &[Result<lb_pipeline::ContactRef, lb_pipeline::CrmError>],
    category: &str,
    status: u16,
    says: &[&str],
) {
    assert_eq!(answers.len(), 5);
    for (i, a) in answers.iter().enumerate() {
        if i == 2 {
            let e = a.as_ref().expect_err("refused");
            assert_eq!(e.class, lb_pipeline::ErrorClass::Permanent, "{e:?}");
            assert_eq!(e.category.as_deref(), Some(category));
            assert_eq!(e.http_status, Some(status));
            for s in says {
                assert!(e.message.contains(s), "{s}: {}", e.message);
            }
            assert!(
                !e.message.contains("Bartholomew"),
                "no personal data: {}",
                e.message
            );
        } else {
            assert!(a.as_ref().expect("written").created, "item {i}");
        }
    }
}
