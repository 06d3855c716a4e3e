//! Clean data in, loud failures out: normalization into one contact, schema
//! drift, and a config file routing a bot to HubSpot and a webhook target.

use std::time::Duration;

use lb_pipeline::{LedgerStatus, ListFilter};
use lb_tests::{eventually, lead, start, TestStack};
use reqwest::Method;
use serde_json::{json, Value};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_person_written_two_ways_is_one_contact_with_e164_phone_and_iso_country() {
    let t = start("oneperson", |_| {}).await;
    let mut first = lead(
        "evt_p1",
        json!({"email": "PRIYA@ACME.IN ", "phone": "+91 98765-43210", "name": "Priya Sharma"}),
    );
    first["occurred_at"] = json!("2026-05-04T11:00:00Z");
    let mut second = lead(
        "evt_p2",
        json!({"email": "priya@acme.in", "phone": "09876543210", "country": "IN"}),
    );
    second["occurred_at"] = json!("2026-05-04T11:05:00Z");
    for ev in [&first, &second] {
        let (status, body) = t.post(ev).await;
        assert_eq!(status, 202, "{body}");
    }
    let a = t.wait_status("evt_p1", LedgerStatus::Synced).await;
    let b = t.wait_status("evt_p2", LedgerStatus::Synced).await;
    assert_eq!(
        a.outcome.unwrap().contact_id,
        b.outcome.unwrap().contact_id,
        "both events landed on one record"
    );
    let contacts = t
        .hubspot_all("contacts", "&properties=email,phone,country")
        .await;
    assert_eq!(contacts.len(), 1, "one HubSpot contact: {contacts:?}");
    let c = t.contact_by_email("priya@acme.in").await;
    assert_eq!(c["properties"]["email"], "priya@acme.in");
    assert_eq!(c["properties"]["phone"], "+919876543210");
    assert_eq!(c["properties"]["country"], "IN");
    assert_eq!(TestStack::note_ids(&c).len(), 2, "one note per event");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mapped_property_deleted_in_the_crm_dead_letters_the_lead_as_schema_drift_and_alerts() {
    let t = start("drift", |_| {}).await;
    // Someone deletes a property the mapping writes (utm_campaign → leadbridge_utm_campaign).
    t.admin(
        Method::DELETE,
        "properties/contacts/leadbridge_utm_campaign",
        None,
    )
    .await;
    let (status, body) = t
        .post(&lead("evt_drift", json!({"email": "drift@acme.in"})))
        .await;
    assert_eq!(status, 202, "{body}");
    let rec = t.wait_status("evt_drift", LedgerStatus::Dead).await;
    let err = rec.last_error.expect("the reason");
    assert_eq!(err.code, "schema_drift");
    assert!(
        err.message.contains("\"leadbridge_utm_campaign\"")
            && err.message.contains("does not exist")
            && err.message.contains("context.utm_campaign"),
        "{}",
        err.message
    );
    let contacts = t.hubspot_all("contacts", "").await;
    assert!(contacts.is_empty(), "nothing half-written: {contacts:?}");
    let alerts = eventually("the drift alert", Duration::from_secs(20), || async {
        let a = t.alerts().await;
        (!a.is_empty()).then_some(a)
    })
    .await;
    let (_, message) = &alerts[0];
    assert!(message.contains("schema_drift"), "{message}");
    assert!(message.contains("leadbridge_utm_campaign"), "{message}");
}

const ROUTED: &str = r#"
version = 1

[enums."answers.company_size"]
allowed = ["1-10", "11-50", "51-200", "201+"]
map = { "just me" = "1-10" }

[connections.hubspot]
kind = "hubspot"
secret = "{hs_secret}"
base_url = "{hubspot_url}"

[connections.zapier]
kind = "webhook"
url = "{webhook_url}/hooks/catch/123/abc"
auth = "bearer"
secret = "{zap_secret}"
headers = { "X-Source" = "leadbridge-e2e" }

[connections.zapier.fields]
"visitor.email" = "email"
"visitor.phone" = "phone"
"visitor.first_name" = "first_name"
"visitor.company" = { property = "company", case = "upper", truncate = 10 }
"answers.company_size" = "company_size"
"lead_source" = "source"

[connections.zapier.static]
pipeline = "inbound"
owner = "team-apac"

[[routes]]
bot_id = "bot_gdpr"
connections = ["hubspot", "zapier"]
lead_source = "Chatbot - pricing"
require_consent = true
phone_region = "IN"

[[routes]]
bot_id = "*"
connections = ["hubspot"]
"#;

async fn routed_stack(name: &str) -> (TestStack, reqwest::Client, String) {
    let n = rand::random::<u32>();
    let hs_secret = format!("e2e-{n}/hubspot");
    let zap_secret = format!("e2e-{n}/zapier");
    let t = start(name, |o| {
        o.secrets = vec![
            (hs_secret.clone(), o.sim.token.clone()),
            (zap_secret.clone(), r#"{"token": "zap-s3cret"}"#.into()),
        ];
        o.config_toml = Some(
            ROUTED
                .replace("{hs_secret}", &hs_secret)
                .replace("{zap_secret}", &zap_secret),
        );
    })
    .await;
    let hook = t
        .stack
        .info
        .crm
        .webhook
        .as_ref()
        .expect("the stack runs the webhook target")
        .base_url
        .clone();
    let http = reqwest::Client::new();
    http.post(format!("{hook}/__admin/config"))
        .json(&json!({"require_header": {"name": "authorization", "value": "Bearer zap-s3cret"}}))
        .send()
        .await
        .expect("webhook admin");
    (t, http, hook)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_route_fans_out_to_hubspot_and_a_webhook_target_with_mapped_fields_statics_and_auth() {
    let (t, http, hook) = routed_stack("fanout").await;
    // One 503 first: the webhook delivery is retried on its own, HubSpot's is not held up.
    http.post(format!("{hook}/__admin/faults"))
        .json(&json!({"kind": "error", "status": 503, "probability": 1.0, "count": 1, "retry_after": 1}))
        .send()
        .await
        .expect("webhook admin");
    let mut ev = lead(
        "evt_w1",
        json!({"email": "Priya@Acme.in", "phone": "09876543210", "first_name": "Priya",
               "company": "Acme Corporation India"}),
    );
    ev["bot_id"] = json!("bot_gdpr");
    ev["answers"] = json!({"company_size": "Just me"});
    let (status, body) = t.post(&ev).await;
    assert_eq!(status, 202, "{body}");
    let hs = t.wait_status("evt_w1@hubspot", LedgerStatus::Synced).await;
    let zap = t.wait_status("evt_w1@zapier", LedgerStatus::Synced).await;
    assert_eq!(hs.connection.as_deref(), Some("hubspot"));
    assert_eq!(zap.outcome.as_ref().unwrap().crm, "zapier");
    assert!(zap.attempts >= 2, "the 503 was retried");

    let received: Value = http
        .get(format!("{hook}/__admin/received"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let delivered: Vec<&Value> = received["requests"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["status"] == 200)
        .collect();
    assert_eq!(delivered.len(), 1, "{received}");
    let r = delivered[0];
    assert_eq!(r["path"], "/hooks/catch/123/abc");
    assert_eq!(r["headers"]["authorization"], "Bearer zap-s3cret");
    assert_eq!(r["headers"]["x-source"], "leadbridge-e2e");
    assert_eq!(r["headers"]["idempotency-key"], "evt_w1@zapier");
    let b = &r["body"];
    assert_eq!(b["email"], "priya@acme.in");
    assert_eq!(
        b["phone"], "+919876543210",
        "national number read in the route's region"
    );
    assert_eq!(b["first_name"], "Priya");
    assert_eq!(b["company"], "ACME CORPO", "upper case, cut to 10");
    assert_eq!(b["company_size"], "1-10", "value map applied at ingest");
    assert_eq!(b["source"], "Chatbot - pricing");
    assert_eq!(b["pipeline"], "inbound");
    assert_eq!(b["owner"], "team-apac");
    assert_eq!(b["leadbridge"]["event_id"], "evt_w1");
    assert_eq!(b["leadbridge"]["test"], false);

    let c = t.contact_by_email("priya@acme.in").await;
    assert_eq!(c["properties"]["leadbridge_source"], "Chatbot - pricing");
    assert_eq!(c["properties"]["phone"], "+919876543210");

    // The status API shows the event and each delivery.
    let info = &t.stack.info;
    let v: Value = http
        .get(format!("{}/v1/events/evt_w1", info.ingest_url))
        .bearer_auth(&info.status_api_key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(v["status"], "synced", "{v}");
    let conns: Vec<&str> = v["deliveries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["connection"].as_str().unwrap())
        .collect();
    assert_eq!(conns, ["hubspot", "zapier"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lead_without_consent_under_a_consent_policy_is_refused_recorded_and_alerted_once() {
    let (t, _, _) = routed_stack("consent").await;
    for i in 0..3 {
        let mut ev = lead(&format!("evt_nc{i}"), json!({"email": "nc@acme.in"}));
        ev["bot_id"] = json!("bot_gdpr");
        ev.as_object_mut().unwrap().remove("consent");
        let (status, body) = t.post(&ev).await;
        assert_eq!(status, 422, "{body}");
        assert_eq!(body["type"], "urn:leadbridge:problem:consent_required");
        assert_eq!(body["errors"][0]["code"], "consent_required");
    }
    // Another bot's route does not ask for consent.
    let mut ev = lead("evt_other", json!({"email": "nc@acme.in"}));
    ev.as_object_mut().unwrap().remove("consent");
    assert_eq!(t.post(&ev).await.0, 202);

    let rejected = t
        .stack
        .ledger()
        .list(&ListFilter::status(LedgerStatus::Rejected))
        .await
        .unwrap();
    assert_eq!(rejected.len(), 3, "every refusal is in the ledger");
    let e = rejected[0].last_error.as_ref().unwrap();
    assert_eq!(e.code, "consent_required");
    assert!(e.message.contains("n***@acme.in"), "{}", e.message);
    assert_eq!(rejected[0].bot_id.as_deref(), Some("bot_gdpr"));
    // One alert per 15-minute window (aligned to the epoch): the three
    // refusals fall in one window, or in two when the run crosses a boundary.
    let windows: std::collections::BTreeSet<String> = rejected
        .iter()
        .map(|r| {
            let at = r.received_at.expect("a rejection has its time");
            let start = lb_pipeline::reject::window_start(at, Duration::from_secs(900));
            start.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
        })
        .collect();
    let alerts = eventually("the rejection alerts", Duration::from_secs(20), || async {
        let a = t.alerts().await;
        (a.len() >= windows.len()).then_some(a)
    })
    .await;
    assert_eq!(
        alerts.len(),
        windows.len(),
        "one alert per window {windows:?}: {alerts:?}"
    );
    for w in &windows {
        let named = alerts.iter().filter(|a| a.1.contains(w.as_str())).count();
        assert_eq!(named, 1, "window {w} alerted once: {alerts:?}");
    }
    assert!(
        alerts[0].0.contains("rejected at ingest"),
        "{}",
        alerts[0].0
    );
    assert!(
        !alerts[0].1.contains("nc@acme.in"),
        "masked: {}",
        alerts[0].1
    );
}
