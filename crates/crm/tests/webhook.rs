//! The webhook adapter against the webhook target simulator, over real HTTP.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use crm_sim::RunningWebhookSim;
use lb_crm::{WebhookAuthKind, WebhookCrm, WebhookSettings};
use lb_domain::mapping::Mapping;
use lb_domain::{Delivery, QueuedLead};
use lb_pipeline::fakes::{sample_lead, StaticSecrets};
use lb_pipeline::secrets::CachedSecret;
use lb_pipeline::{ContactWrite, Crm, ErrorClass};
use serde_json::{json, Value};

const SECRET_ID: &str = "leadbridge/zap";

struct Harness {
    sim: RunningWebhookSim,
    http: reqwest::Client,
    secrets: Arc<StaticSecrets>,
}

impl Harness {
    async fn start() -> Harness {
        let addr = "127.0.0.1:0".parse().expect("socket address");
        Harness {
            sim: RunningWebhookSim::start(addr)
                .await
                .expect("simulator starts"),
            http: reqwest::Client::new(),
            secrets: Arc::new(StaticSecrets::default()),
        }
    }

    fn settings(&self, auth: WebhookAuthKind) -> WebhookSettings {
        let mut mapping = Mapping::from_pairs(&[
            ("visitor.email", "email"),
            ("visitor.first_name", "first_name"),
            ("transcript.summary", "summary"),
        ]);
        mapping.statics = BTreeMap::from([("source".to_string(), "Chatbot".to_string())]);
        WebhookSettings {
            name: "zap".into(),
            url: format!("{}/hooks/catch/1/abc", self.sim.base_url),
            auth,
            headers: vec![("X-Team".into(), "growth".into())],
            timeout: Duration::from_secs(5),
            mapping,
            // the simulator runs on this machine
            allow_internal: true,
        }
    }

    /// An adapter whose secret (if any) holds `secret`, cached for an hour.
    fn crm(&self, auth: WebhookAuthKind, secret: Option<&str>) -> WebhookCrm {
        self.crm_with(self.settings(auth), secret)
    }

    fn crm_with(&self, settings: WebhookSettings, secret: Option<&str>) -> WebhookCrm {
        let secret = secret.map(|value| {
            self.secrets.set(SECRET_ID, value);
            Arc::new(CachedSecret::new(
                self.secrets.clone(),
                SECRET_ID,
                Duration::from_secs(3600),
            ))
        });
        WebhookCrm::new(settings, secret).expect("client builds")
    }

    async fn admin(&self, path: &str, body: Value) {
        let status = self
            .http
            .post(format!("{}{path}", self.sim.base_url))
            .json(&body)
            .send()
            .await
            .expect("admin call")
            .status();
        assert!(status.is_success(), "{path}: {status}");
    }

    async fn require_header(&self, name: &str, value: &str) {
        self.admin(
            "/__admin/config",
            json!({"require_header": {"name": name, "value": value}}),
        )
        .await;
    }

    async fn fault(&self, fault: Value) {
        self.admin("/__admin/faults", fault).await;
    }

    async fn received(&self) -> Vec<Value> {
        let v: Value = self
            .http
            .get(format!("{}/__admin/received", self.sim.base_url))
            .send()
            .await
            .expect("admin call")
            .json()
            .await
            .expect("JSON");
        v["requests"].as_array().expect("requests").clone()
    }
}

fn lead() -> QueuedLead {
    sample_lead("evt_1", "jane@example.com").for_delivery(Delivery {
        connection: "zap".into(),
        lead_source: None,
        object: "contact".into(),
        split_name: None,
    })
}

/// Delivers the lead with `crm` and returns the one request the target recorded.
async fn deliver(h: &Harness, crm: &WebhookCrm) -> Value {
    let contact = crm
        .upsert_contact(&lead(), None, ContactWrite::Full)
        .await
        .expect("delivered");
    assert_eq!(contact.id, "wh_1", "the target's id");
    assert!(contact.created);
    let got = h.received().await;
    assert_eq!(got.len(), 1);
    got[0].clone()
}

#[tokio::test]
async fn a_lead_is_posted_as_mapped_fields_statics_and_envelope_with_bearer_auth() {
    let h = Harness::start().await;
    h.require_header("authorization", "Bearer s3cret").await;
    let crm = h.crm(WebhookAuthKind::Bearer, Some("s3cret"));
    assert_eq!(crm.name(), "zap");
    assert!(!crm.keeps_records());

    let request = deliver(&h, &crm).await;
    assert_eq!(request["path"], "/hooks/catch/1/abc");
    assert_eq!(
        request["body"],
        json!({
            "email": "jane@example.com",
            "first_name": "Priya",
            "summary": "Asked about pricing",
            "source": "Chatbot",
            "leadbridge": {
                "event_id": "evt_1",
                "event_type": "lead.created",
                "occurred_at": "2026-05-04T11:23:45Z",
                "bot_id": "bot_test",
                "connection": "zap",
                "object": "contact",
                "test": false,
            }
        })
    );
    let headers = &request["headers"];
    assert_eq!(headers["authorization"], "Bearer s3cret");
    assert_eq!(headers["content-type"], "application/json");
    assert_eq!(headers["idempotency-key"], "evt_1@zap");
    assert_eq!(headers["x-leadbridge-event-id"], "evt_1");
    assert_eq!(headers["x-team"], "growth");
    assert!(headers["user-agent"]
        .as_str()
        .is_some_and(|ua| ua.starts_with("leadbridge/")));
    assert_eq!(headers.get("x-leadbridge-test"), None);
}

#[tokio::test]
async fn api_key_auth_sends_the_key_in_its_header() {
    let h = Harness::start().await;
    h.require_header("x-api-key", "k-123").await;
    let crm = h.crm(
        WebhookAuthKind::ApiKey {
            header: "X-Api-Key".into(),
        },
        Some(r#"{"api_key": "k-123"}"#),
    );
    let request = deliver(&h, &crm).await;
    assert_eq!(request["headers"]["x-api-key"], "k-123");
    assert_eq!(request["headers"].get("authorization"), None);
}

#[tokio::test]
async fn basic_auth_encodes_the_user_and_password() {
    let h = Harness::start().await;
    // base64("ann:pw")
    h.require_header("authorization", "Basic YW5uOnB3").await;
    let crm = h.crm(
        WebhookAuthKind::Basic,
        Some(r#"{"username": "ann", "password": "pw"}"#),
    );
    deliver(&h, &crm).await;

    h.admin("/__admin/reset", json!({})).await;
    h.require_header("authorization", "Basic YW5uOnB3").await;
    let plain = h.crm(WebhookAuthKind::Basic, Some("ann:pw"));
    deliver(&h, &plain).await;
}

#[tokio::test]
async fn without_auth_no_credential_is_sent() {
    let h = Harness::start().await;
    let crm = h.crm(WebhookAuthKind::None, None);
    let request = deliver(&h, &crm).await;
    assert_eq!(request["headers"].get("authorization"), None);
    assert_eq!(request["headers"]["idempotency-key"], "evt_1@zap");
}

#[tokio::test]
async fn a_503_with_retry_after_is_transient_and_says_when_to_come_back() {
    let h = Harness::start().await;
    h.fault(json!({"kind": "error", "status": 503, "count": 1, "retry_after": 3}))
        .await;
    let crm = h.crm(WebhookAuthKind::None, None);
    let e = crm
        .upsert_contact(&lead(), None, ContactWrite::Full)
        .await
        .expect_err("503");
    assert_eq!(e.class, ErrorClass::Transient);
    assert_eq!(e.http_status, Some(503));
    assert_eq!(e.retry_after, Some(Duration::from_secs(3)));
    assert_eq!(e.crm, "zap");
    assert_eq!(e.reason().code, "crm_unavailable");
    // The retry goes through (and would carry the same idempotency key).
    crm.upsert_contact(&lead(), None, ContactWrite::Full)
        .await
        .expect("delivered on retry");
    let keys: Vec<Value> = h
        .received()
        .await
        .iter()
        .map(|r| r["headers"]["idempotency-key"].clone())
        .collect();
    assert_eq!(keys, [json!("evt_1@zap"), json!("evt_1@zap")]);
}

#[tokio::test]
async fn a_429_is_rate_limited() {
    let h = Harness::start().await;
    h.fault(json!({"kind": "error", "status": 429, "count": 1, "retry_after": 2}))
        .await;
    let e = h
        .crm(WebhookAuthKind::None, None)
        .upsert_contact(&lead(), None, ContactWrite::Full)
        .await
        .expect_err("429");
    assert_eq!(e.class, ErrorClass::RateLimited);
    assert_eq!(e.retry_after, Some(Duration::from_secs(2)));
}

#[tokio::test]
async fn a_400_is_permanent_and_carries_the_targets_answer_but_not_our_body() {
    let h = Harness::start().await;
    h.fault(json!({"kind": "error", "status": 400})).await;
    let e = h
        .crm(WebhookAuthKind::None, None)
        .upsert_contact(&lead(), None, ContactWrite::Full)
        .await
        .expect_err("400");
    assert_eq!(e.class, ErrorClass::Permanent);
    assert_eq!(e.http_status, Some(400));
    assert_eq!(e.retry_after, None);
    assert!(e.message.contains("HTTP 400"), "{}", e.message);
    assert!(e.message.contains("Bad Request"), "{}", e.message);
    assert!(!e.message.contains("jane@example.com"), "{}", e.message);
    assert!(!e.message.contains("/hooks/catch"), "{}", e.message);
}

#[tokio::test]
async fn a_401_rereads_a_rotated_secret_once_and_succeeds() {
    let h = Harness::start().await;
    h.require_header("authorization", "Bearer new").await;
    let crm = h.crm(WebhookAuthKind::Bearer, Some("old"));
    // The adapter has cached "old" by the time the secret is rotated.
    crm.send_test().await.expect("answered");
    h.secrets.set(SECRET_ID, "new");
    h.admin("/__admin/reset", json!({})).await;
    h.require_header("authorization", "Bearer new").await;

    let contact = crm
        .upsert_contact(&lead(), None, ContactWrite::Full)
        .await
        .expect("delivered after re-reading the secret");
    assert_eq!(contact.id, "wh_2");
    let statuses: Vec<Value> = h
        .received()
        .await
        .iter()
        .map(|r| r["status"].clone())
        .collect();
    assert_eq!(statuses, [json!(401), json!(200)]);
}

#[tokio::test]
async fn credentials_still_refused_after_the_reread_are_permanent() {
    let h = Harness::start().await;
    h.require_header("authorization", "Bearer right").await;
    let e = h
        .crm(WebhookAuthKind::Bearer, Some("wrong-token"))
        .upsert_contact(&lead(), None, ContactWrite::Full)
        .await
        .expect_err("401");
    assert_eq!(e.class, ErrorClass::Permanent);
    assert_eq!(e.http_status, Some(401));
    assert!(
        e.message.contains("refused our credentials (401)"),
        "{}",
        e.message
    );
    assert!(e.message.contains(SECRET_ID), "{}", e.message);
    assert!(!e.message.contains("wrong-token"), "{}", e.message);
    assert_eq!(h.received().await.len(), 2, "one re-read, one retry");
}

#[tokio::test]
async fn a_secret_without_a_credential_is_permanent_and_names_the_secret_not_its_value() {
    let h = Harness::start().await;
    let e = h
        .crm(WebhookAuthKind::Basic, Some("just-a-password"))
        .upsert_contact(&lead(), None, ContactWrite::Full)
        .await
        .expect_err("no credential");
    assert_eq!(e.class, ErrorClass::Permanent);
    assert!(e.message.contains(SECRET_ID), "{}", e.message);
    assert!(!e.message.contains("just-a-password"), "{}", e.message);
    assert!(h.received().await.is_empty());
}

#[tokio::test]
async fn a_target_that_never_answers_is_transient() {
    let h = Harness::start().await;
    h.fault(json!({"kind": "timeout", "count": 1})).await;
    let mut settings = h.settings(WebhookAuthKind::None);
    settings.timeout = Duration::from_millis(300);
    let e = h
        .crm_with(settings, None)
        .upsert_contact(&lead(), None, ContactWrite::Full)
        .await
        .expect_err("timed out");
    assert_eq!(e.class, ErrorClass::Transient);
    assert_eq!(e.http_status, None);
    assert!(e.message.contains("timed out"), "{}", e.message);
    assert!(!e.message.contains("/hooks/catch"), "{}", e.message);
}

#[tokio::test]
async fn a_target_that_refuses_connections_is_transient() {
    let h = Harness::start().await;
    let closed = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = closed.local_addr().expect("addr").port();
    drop(closed);
    let mut settings = h.settings(WebhookAuthKind::None);
    settings.url = format!("http://127.0.0.1:{port}/hook");
    let e = h
        .crm_with(settings, None)
        .upsert_contact(&lead(), None, ContactWrite::Full)
        .await
        .expect_err("refused");
    assert_eq!(e.class, ErrorClass::Transient);
}

#[tokio::test]
async fn notes_and_deals_are_refused_without_a_request() {
    let h = Harness::start().await;
    let crm = h.crm(WebhookAuthKind::None, None);
    let l = lead();
    let id = &l.event.event_id;
    for e in [
        crm.find_note("c", id).await.expect_err("no notes"),
        crm.add_note("c", &l).await.expect_err("no notes"),
        crm.find_deal("c", id).await.expect_err("no deals"),
        crm.create_deal("c", &l).await.expect_err("no deals"),
    ] {
        assert_eq!(e.class, ErrorClass::Permanent);
        assert!(e.message.contains("keeps no records"), "{}", e.message);
    }
    assert!(h.received().await.is_empty());
}

#[tokio::test]
async fn send_test_posts_a_marked_test_lead_and_returns_any_answer() {
    let h = Harness::start().await;
    h.require_header("authorization", "Bearer s3cret").await;
    let crm = h.crm(WebhookAuthKind::Bearer, Some("s3cret"));
    let reply = crm.send_test().await.expect("answered");
    assert_eq!(reply.status, 200);
    assert!(reply.body.contains("wh_1"), "{}", reply.body);

    let got = h.received().await;
    let request = &got[0];
    let headers = &request["headers"];
    assert_eq!(headers["x-leadbridge-test"], "true");
    assert_eq!(headers["authorization"], "Bearer s3cret");
    assert_eq!(headers["x-team"], "growth");
    let body = &request["body"];
    assert_eq!(body["email"], "test@leadbridge.invalid");
    assert_eq!(body["first_name"], "leadbridge test");
    assert_eq!(body["source"], "Chatbot");
    let envelope = &body["leadbridge"];
    assert_eq!(envelope["test"], true);
    assert_eq!(envelope["bot_id"], "leadbridge-test");
    assert_eq!(envelope["connection"], "zap");
    let event_id = envelope["event_id"].as_str().expect("event id");
    assert!(event_id.starts_with("test_"), "{event_id}");
    assert_eq!(headers["x-leadbridge-event-id"], event_id);
    assert_eq!(headers["idempotency-key"], format!("{event_id}@zap"));

    h.fault(json!({"kind": "error", "status": 500, "count": 1}))
        .await;
    let failed = crm.send_test().await.expect("an answer, not an error");
    assert_eq!(failed.status, 500);
    assert!(
        failed.body.contains("Internal Server Error"),
        "{}",
        failed.body
    );
    assert_eq!(
        failed.refused.map(|e| e.class),
        Some(ErrorClass::Transient),
        "a real lead would be retried"
    );
    h.fault(json!({"kind": "error", "status": 422, "count": 1}))
        .await;
    let refused = crm.send_test().await.expect("an answer");
    assert_eq!(
        refused.refused.map(|e| e.class),
        Some(ErrorClass::Permanent),
        "a real lead would be dead-lettered"
    );
    assert!(crm.send_test().await.expect("an answer").refused.is_none());
}
