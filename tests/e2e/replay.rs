//! Replay of dead events (the `leadbridge replay` code path) and the status API over HTTP.

use std::time::Duration;

use chrono::Utc;
use lb_local::ops::OpsTarget;
use lb_pipeline::{LedgerStatus, ListFilter};
use lb_tests::{lead, start, TestStack};
use reqwest::Method;
use serde_json::{json, Value};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leads_dead_from_a_hubspot_outage_are_replayed_after_it_and_each_syncs_exactly_once() {
    let t = start("replay", |o| {
        o.policy.max_attempts = 2;
        o.policy.base = Duration::from_millis(100);
        o.policy.cap = Duration::from_millis(200);
    })
    .await;
    t.admin(
        Method::POST,
        "faults",
        Some(json!({"kind": "error", "status": 503, "probability": 1.0})),
    )
    .await;
    let ids = ["evt_replay_1", "evt_replay_2", "evt_replay_3"];
    let email = |i: usize| format!("replay{i}@x.io");
    for (i, id) in ids.iter().enumerate() {
        let (status, body) = t.post(&lead(id, json!({"email": email(i)}))).await;
        assert_eq!(status, 202, "{body}");
    }
    for id in ids {
        let rec = t.wait_status(id, LedgerStatus::Dead).await;
        let err = rec.last_error.expect("the reason is kept");
        assert_eq!(err.code, "retries_exhausted", "{id}: {err:?}");
        assert_eq!(rec.replays, 0);
    }
    // The outage is over; the operator replays what died, as `leadbridge replay` does.
    t.admin(Method::DELETE, "faults", None).await;
    assert!(
        t.hubspot_all("contacts", "").await.is_empty(),
        "nothing reached HubSpot during the outage"
    );
    let ops = OpsTarget::from_stack(&t.stack.info).connect().await;
    let dead = ListFilter::status(LedgerStatus::Dead);
    let dry = ops.replay(&dead, true, Utc::now()).await.expect("dry run");
    assert_eq!(dry.would_replay(), 3, "{dry:?}");
    for id in ids {
        assert_eq!(
            t.ledger(id).await.expect("in the ledger").status,
            LedgerStatus::Dead,
            "a dry run changes nothing"
        );
    }
    let report = ops.replay(&dead, false, Utc::now()).await.expect("replay");
    assert_eq!(report.replayed(), 3, "{report:?}");
    let bot = report.entries[0].bot_id.as_deref();
    assert_eq!(bot, Some("bot_acme_pricing"));

    for (i, id) in ids.iter().enumerate() {
        let rec = t.wait_status(id, LedgerStatus::Synced).await;
        assert_eq!(rec.replays, 1, "{id}");
        let outcome = rec.outcome.expect("CRM ids");
        let contact = t.contact_by_email(&email(i)).await;
        assert_eq!(contact["id"], outcome.contact_id);
        assert_eq!(
            TestStack::note_ids(&contact),
            vec![outcome.note_id.expect("note id")],
            "{id}: exactly one note"
        );
    }
    assert_eq!(t.hubspot_all("contacts", "").await.len(), 3);
    assert_eq!(t.hubspot_all("notes", "").await.len(), 3);

    let again = ops.replay(&dead, false, Utc::now()).await.expect("replay");
    assert!(
        again.entries.is_empty(),
        "synced events are not dead: {again:?}"
    );
    for id in ids {
        assert_eq!(
            t.stack
                .ledger()
                .requeue(id, Utc::now())
                .await
                .expect("ledger"),
            None,
            "the ledger refuses to requeue a synced event"
        );
    }
    assert_eq!(t.hubspot_all("notes", "").await.len(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_status_api_answers_with_the_key_and_only_with_it() {
    let t = start("status", |_| {}).await;
    let (status, body) = t
        .post(&lead("evt_status", json!({"email": "status@x.io"})))
        .await;
    assert_eq!(status, 202, "{body}");
    let rec = t.wait_status("evt_status", LedgerStatus::Synced).await;
    let outcome = rec.outcome.expect("CRM ids");

    let info = &t.stack.info;
    let url = |id: &str| format!("{}/v1/events/{id}", info.ingest_url);
    let http = &t.client.http;
    let get = |req: reqwest::RequestBuilder| async move {
        let resp = req.send().await.expect("ingest answers");
        let status = resp.status().as_u16();
        let ct = resp
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string();
        let body: Value = resp.json().await.expect("a JSON body");
        (status, ct, body)
    };

    let (status, ct, v) = get(http
        .get(url("evt_status"))
        .bearer_auth(&info.status_api_key))
    .await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(ct, "application/json");
    assert_eq!(v["event_id"], "evt_status");
    assert_eq!(v["status"], "synced");
    assert_eq!(v["crm"]["name"], "hubspot");
    assert_eq!(v["crm"]["contact_id"], outcome.contact_id.as_str());
    let contact = t.contact_by_email("status@x.io").await;
    assert_eq!(v["crm"]["contact_id"], contact["id"]);
    assert_eq!(v["bot_id"], "bot_acme_pricing");

    let (status, _, v) = get(http
        .get(url("evt_status"))
        .header("x-api-key", &info.status_api_key))
    .await;
    assert_eq!(status, 200, "{v}");

    let (status, ct, _) = get(http.get(url("evt_status"))).await;
    assert_eq!(status, 401);
    assert_eq!(ct, "application/problem+json");
    let (status, _, _) = get(http.get(url("evt_status")).bearer_auth("not-the-key")).await;
    assert_eq!(status, 401);

    let (status, ct, v) = get(http
        .get(url("evt_never_sent"))
        .bearer_auth(&info.status_api_key))
    .await;
    assert_eq!(status, 404, "{v}");
    assert_eq!(ct, "application/problem+json");
}
