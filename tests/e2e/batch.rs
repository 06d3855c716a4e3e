//! Many leads per CRM call: the leads of one worker invocation meet in one
//! HubSpot batch call per kind, and each keeps its own answer.

use std::time::Duration;

use lb_pipeline::hooks::Hooks;
use lb_pipeline::LedgerStatus;
use lb_tests::{eventually, lead, start, TestStack};
use serde_json::{json, Value};

/// Requests the simulator counted on `route` (`"POST /crm/v3/…"`).
async fn calls(t: &TestStack, route: &str) -> u64 {
    let stats = t.admin(reqwest::Method::GET, "stats", None).await;
    stats["by_route"][route].as_u64().unwrap_or(0)
}

const UPSERT: &str = "POST /crm/v3/objects/contacts/batch/upsert";
const NOTES: &str = "POST /crm/v3/objects/notes/batch/create";
const ONE_NOTE: &str = "POST /crm/v3/objects/notes";

async fn post_all(t: &TestStack, leads: &[Value]) {
    for l in leads {
        let (status, body) = t.post(l).await;
        assert_eq!(status, 202, "{body}");
    }
}

/// Posts `lead` signed, asking for `lane` (`leadbridge-lane`).
async fn post_in_lane(t: &TestStack, lead: &Value, lane: &str) -> (u16, Value) {
    let body = serde_json::to_vec(lead).unwrap();
    let sig = lb_vendors::signature::sign(t.secret(), chrono::Utc::now().timestamp(), &body);
    t.post_raw(
        body,
        &[
            ("content-type", "application/json"),
            ("leadbridge-signature", sig.as_str()),
            ("leadbridge-lane", lane),
        ],
    )
    .await
}

/// Every contact with its notes, as `(email, phone, note count)`, sorted.
async fn people(t: &TestStack) -> Vec<(String, String, usize)> {
    let mut out = Vec::new();
    for c in t.hubspot_all("contacts", "&properties=email,phone").await {
        let email = c["properties"]["email"].as_str().unwrap_or_default();
        let full = t.contact_by_email(email).await;
        out.push((
            email.to_string(),
            c["properties"]["phone"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
            TestStack::note_ids(&full).len(),
        ));
    }
    out.sort();
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_lead_hubspot_refuses_in_a_batch_is_dead_lettered_alone_with_hubspots_error() {
    let t = start("batch-bad", |o| {
        o.worker_paused = true;
        o.worker_concurrency = 1;
    })
    .await;
    // The worker read the contact schema at start; then a HubSpot admin turns
    // `country` into a dropdown without India. Only the lead from India writes
    // it, and HubSpot refuses that input alone (207).
    t.admin(
        reqwest::Method::PATCH,
        "properties/contacts/country",
        Some(json!({"type": "enumeration", "fieldType": "select",
                    "options": [{"value": "US", "label": "United States"}]})),
    )
    .await;
    let leads: Vec<Value> = (0..6)
        .map(|i| {
            let mut visitor = json!({"email": format!("b{i}@x.io")});
            if i == 3 {
                visitor["country"] = json!("IN");
            }
            lead(&format!("evt_b{i}"), visitor)
        })
        .collect();
    post_all(&t, &leads).await;
    t.stack.resume_worker();
    for i in [0, 1, 2, 4, 5] {
        t.wait_status(&format!("evt_b{i}"), LedgerStatus::Synced)
            .await;
    }
    let dead = t.wait_status("evt_b3", LedgerStatus::Dead).await;
    let reason = dead.last_error.expect("a reason");
    assert_eq!(reason.code, "schema_drift", "{reason:?}");
    assert!(
        reason.message.contains("country") && reason.message.contains("HubSpot said"),
        "what changed and HubSpot's own words for that input: {reason:?}"
    );
    assert_eq!(calls(&t, UPSERT).await, 1, "six people, one upsert call");
    assert_eq!(calls(&t, NOTES).await, 1, "five notes, one call");
    assert_eq!(calls(&t, ONE_NOTE).await, 0);
    let all = people(&t).await;
    assert_eq!(all.len(), 5, "{all:?}");
    assert!(all.iter().all(|(_, _, notes)| *notes == 1), "{all:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_events_of_one_person_in_one_batch_are_one_contact_with_both_notes() {
    let t = start("batch-meet", |o| {
        o.worker_paused = true;
        o.worker_concurrency = 1;
    })
    .await;
    let at = |mut l: Value, t: &str| {
        l["occurred_at"] = json!(t);
        l
    };
    post_all(
        &t,
        &[
            // One person twice by email (one message group: in order).
            at(
                lead("evt_m1", json!({"email": "same@x.io"})),
                "2026-05-04T11:00:00Z",
            ),
            at(
                lead(
                    "evt_m2",
                    json!({"email": "same@x.io", "phone": "+14155552671"}),
                ),
                "2026-05-04T11:05:00Z",
            ),
            // Another first by phone, then by email and the phone (two groups
            // side by side: the person's lock makes one wait for the other).
            at(
                lead("evt_m3", json!({"phone": "+14155550000"})),
                "2026-05-04T11:00:00Z",
            ),
            at(
                lead(
                    "evt_m4",
                    json!({"email": "other@x.io", "phone": "+14155550000"}),
                ),
                "2026-05-04T11:05:00Z",
            ),
        ],
    )
    .await;
    t.stack.resume_worker();
    for id in ["evt_m1", "evt_m2", "evt_m3", "evt_m4"] {
        t.wait_status(id, LedgerStatus::Synced).await;
    }
    assert_eq!(
        people(&t).await,
        [
            ("other@x.io".into(), "+14155550000".into(), 2),
            ("same@x.io".into(), "+14155552671".into(), 2),
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_between_the_batch_write_and_the_ledger_write_duplicates_nothing() {
    let (hooks, crashes) = Hooks::crash_every(3);
    let t = start("batch-crash", |o| {
        o.worker_paused = true;
        o.worker_concurrency = 1;
        o.worker_hooks = hooks;
        // A crashed invocation's leases end with its (short) timeout, and its
        // messages come back soon after.
        o.worker_timeout = Duration::from_secs(4);
        o.safety_margin = Some(Duration::from_millis(500));
        o.leads_visibility_secs = Some(5);
    })
    .await;
    let leads: Vec<Value> = (0..5)
        .map(|i| lead(&format!("evt_c{i}"), json!({"email": format!("c{i}@x.io")})))
        .collect();
    post_all(&t, &leads).await;
    t.stack.resume_worker();
    eventually(
        "a crash after the batch write",
        Duration::from_secs(30),
        || async { (crashes.crashes() >= 1).then_some(()) },
    )
    .await;
    // One crash is the case; the redelivery runs clean.
    crashes.disarm();
    for i in 0..5 {
        let id = format!("evt_c{i}");
        eventually(&format!("{id} synced"), Duration::from_secs(60), || async {
            t.ledger(&id)
                .await
                .filter(|r| r.status == LedgerStatus::Synced)
        })
        .await;
    }
    let all = people(&t).await;
    assert_eq!(all.len(), 5, "{all:?}");
    assert!(
        all.iter().all(|(_, _, notes)| *notes == 1),
        "one note each after the redelivery: {all:?}"
    );
    assert!(calls(&t, NOTES).await >= 1, "the notes went in a batch");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_bulk_lane_writes_sixty_leads_in_one_call_per_kind_and_a_bad_lane_is_refused() {
    let t = start("bulk", |o| {
        o.worker_paused = true;
        o.bulk_window = Duration::from_secs(1);
    })
    .await;
    let post = |l: Value, lane: &'static str| {
        let t = &t;
        async move { post_in_lane(t, &l, lane).await }
    };
    let (status, problem) = post(lead("evt_lane", json!({"email": "l@x.io"})), "slow").await;
    assert_eq!(status, 400, "{problem}");
    assert_eq!(problem["type"], "urn:leadbridge:problem:invalid_lane");
    for i in 0..60 {
        let (status, body) = post(
            lead(&format!("evt_k{i}"), json!({"email": format!("k{i}@x.io")})),
            "bulk",
        )
        .await;
        assert_eq!(status, 202, "{body}");
    }
    t.stack.resume_worker();
    for i in 0..60 {
        t.wait_status(&format!("evt_k{i}"), LedgerStatus::Synced)
            .await;
    }
    assert_eq!(calls(&t, UPSERT).await, 1, "sixty people, one upsert call");
    assert_eq!(calls(&t, NOTES).await, 1, "sixty notes, one call");
    let all = people(&t).await;
    assert_eq!(all.len(), 60);
    assert!(all.iter().all(|(_, _, notes)| *notes == 1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bulk_lead_that_meets_a_crm_outage_is_retried_in_the_bulk_lane() {
    let t = start("bulk-retry", |o| {
        o.bulk_window = Duration::from_secs(1);
    })
    .await;
    // The retry hands the message back on the bulk queue (its receipt handle is
    // that queue's): on the wrong queue it would only come back after the
    // 6-minute visibility timeout, far past this test's wait.
    t.admin(
        reqwest::Method::POST,
        "faults",
        Some(json!({"kind": "error", "status": 503, "probability": 1.0, "count": 1, "route": UPSERT})),
    )
    .await;
    let (status, answer) = post_in_lane(
        &t,
        &lead("evt_bulk_retry", json!({"email": "retry@x.io"})),
        "bulk",
    )
    .await;
    assert_eq!(status, 202, "{answer}");
    let rec = t.wait_status("evt_bulk_retry", LedgerStatus::Synced).await;
    assert_eq!(rec.attempts, 2, "one failed attempt, one that synced");
    assert_eq!(people(&t).await.len(), 1);
}

/// Messages waiting on a queue (the worker is paused, none is in flight).
async fn waiting(t: &TestStack, queue_url: &str) -> usize {
    let attrs = aws_sdk_sqs::Client::new(&t.stack.sdk)
        .get_queue_attributes()
        .queue_url(queue_url)
        .attribute_names(aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessages)
        .send()
        .await
        .expect("queue attributes");
    attrs
        .attributes()
        .and_then(|a| a.get(&aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessages))
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

/// A route's `event_lanes` sends one event type through the bulk lane and
/// leaves the others real-time, without a `Leadbridge-Lane` header.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_route_sends_an_event_type_through_the_bulk_lane() {
    let hs = format!("e2e-{}/hubspot", rand::random::<u32>());
    let t = start("routelane", |o| {
        o.worker_paused = true;
        o.bulk_window = Duration::from_secs(1);
        o.secrets = vec![(hs.clone(), o.sim.token.clone())];
        o.config_toml = Some(format!(
            "version = 1\n\n[connections.hubspot]\nkind = \"hubspot\"\nsecret = \"{hs}\"\n\
             base_url = \"{{hubspot_url}}\"\n\n[[routes]]\nbot_id = \"*\"\nconnections = [\"hubspot\"]\n\
             event_lanes = {{ \"lead.updated\" = \"bulk\" }}\n"
        ));
    })
    .await;
    let mut leads = Vec::new();
    for i in 0..30 {
        let mut l = lead(&format!("evt_u{i}"), json!({"email": format!("u{i}@x.io")}));
        l["event_type"] = json!("lead.updated");
        leads.push(l);
    }
    leads.push(lead("evt_new", json!({"email": "new@x.io"})));
    post_all(&t, &leads).await;
    assert_eq!(waiting(&t, &t.stack.info.bulk_queue_url).await, 30);
    assert_eq!(waiting(&t, &t.stack.info.queue_url).await, 1);
    t.stack.resume_worker();
    for l in &leads {
        let id = format!("{}@hubspot", l["event_id"].as_str().unwrap());
        t.wait_status(&id, LedgerStatus::Synced).await;
    }
    let all = people(&t).await;
    assert_eq!(all.len(), 31);
    assert!(all.iter().all(|(_, _, notes)| *notes == 1));
}

/// Second events of people the ledger remembers go to HubSpot in one batch
/// update by id, not one PATCH each; each keeps its own note.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn remembered_people_are_updated_in_one_batch_call() {
    let t = start("bulk-update", |o| {
        o.worker_paused = true;
        o.bulk_window = Duration::from_secs(1);
    })
    .await;
    let post = |l: Value| {
        let t = &t;
        async move {
            let (status, body) = post_in_lane(t, &l, "bulk").await;
            assert_eq!(status, 202, "{body}");
        }
    };
    for i in 0..20 {
        post(lead(
            &format!("evt_u{i}"),
            json!({"email": format!("u{i}@x.io")}),
        ))
        .await;
    }
    t.stack.resume_worker();
    for i in 0..20 {
        t.wait_status(&format!("evt_u{i}"), LedgerStatus::Synced)
            .await;
    }
    t.stack.pause_worker().await;
    for i in 0..20 {
        let mut l = lead(
            &format!("evt_v{i}"),
            json!({"email": format!("u{i}@x.io"), "name": format!("Una Number{i}")}),
        );
        l["occurred_at"] = json!(chrono::Utc::now().to_rfc3339());
        post(l).await;
    }
    t.stack.resume_worker();
    for i in 0..20 {
        t.wait_status(&format!("evt_v{i}"), LedgerStatus::Synced)
            .await;
    }
    assert_eq!(
        calls(&t, "POST /crm/v3/objects/contacts/batch/update").await,
        1,
        "twenty remembered people, one update call"
    );
    assert_eq!(calls(&t, "PATCH /crm/v3/objects/contacts/{id}").await, 0);
    for i in 0..20 {
        let c = t.contact_by_email(&format!("u{i}@x.io")).await;
        assert_eq!(c["properties"]["lastname"], format!("Number{i}"), "{c}");
    }
    let all = people(&t).await;
    assert_eq!(all.len(), 20, "{all:?}");
    assert!(all.iter().all(|(_, _, notes)| *notes == 2), "{all:?}");
}
