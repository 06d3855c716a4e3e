use lb_pipeline::LedgerStatus;
use lb_tests::{lead, start, TestStack};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_valid_event_lands_as_one_contact_with_one_note() {
    let t = start("one", |_| {}).await;
    let (status, body) = t
        .post(&lead(
            "evt_one",
            json!({"email": "Priya.Sharma@AcmeCorp.in ", "phone": "+91 98765 43210",
        "name": "Priya Sharma", "company": "AcmeCorp", "country": "IN"}),
        ))
        .await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(body, json!({"event_id": "evt_one", "status": "queued"}));
    let rec = t.wait_status("evt_one", LedgerStatus::Synced).await;
    let outcome = rec.outcome.expect("outcome");
    assert!(outcome.contact_created);

    let c = t.contact_by_email("priya.sharma@acmecorp.in").await;
    assert_eq!(c["id"], outcome.contact_id);
    let p = &c["properties"];
    assert_eq!(p["firstname"], "Priya");
    assert_eq!(p["lastname"], "Sharma");
    assert_eq!(p["phone"], "+919876543210");
    assert_eq!(p["country"], "IN");
    assert_eq!(p["leadbridge_source"], "chatbot:bot_acme_pricing");
    let notes = TestStack::note_ids(&c);
    assert_eq!(notes, vec![outcome.note_id.clone().unwrap()]);
    let all_notes = t.hubspot_all("notes", "&properties=hs_note_body").await;
    let body = all_notes[0]["properties"]["hs_note_body"].as_str().unwrap();
    for expected in [
        "Asked about Pro tier pricing",
        "pricing_inquiry",
        "utm_source=google",
        "https://example.com/pricing",
        "purpose sales_followup",
        "leadbridge-event:evt_one",
    ] {
        assert!(body.contains(expected), "note lacks {expected:?}: {body}");
    }
    assert_eq!(t.hubspot_all("contacts", "").await.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_event_delivered_three_times_and_concurrently_writes_one_contact_and_one_note() {
    let t = start("dup", |_| {}).await;
    let ev = lead("evt_dup", json!({"email": "dup@x.io"}));
    let (a, b, c) = tokio::join!(t.post(&ev), t.post(&ev), t.post(&ev));
    for (status, body) in [&a, &b, &c] {
        assert_eq!(*status, 202, "{body}");
    }
    t.wait_status("evt_dup", LedgerStatus::Synced).await;
    let (status, body) = t.post(&ev).await;
    assert_eq!(status, 202);
    assert_eq!(
        body["duplicate"], true,
        "a later delivery is reported as a duplicate: {body}"
    );
    // And once more after sync: still acknowledged, nothing new written.
    let (status, _) = t.post(&ev).await;
    assert_eq!(status, 202);
    assert_eq!(t.hubspot_all("contacts", "").await.len(), 1);
    assert_eq!(t.hubspot_all("notes", "").await.len(), 1);
    let rec = t.ledger("evt_dup").await.unwrap();
    assert_eq!(rec.attempts, 1, "the CRM was written once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_events_for_one_email_in_different_case_make_one_contact_with_two_notes() {
    let t = start("same", |_| {}).await;
    let (s1, _) = t
        .post(&lead(
            "evt_a",
            json!({"email": "PRIYA@ACME.IN ", "name": "Priya"}),
        ))
        .await;
    let (s2, _) = t
        .post(&lead(
            "evt_b",
            json!({"email": "priya@acme.in", "company": "Acme"}),
        ))
        .await;
    assert_eq!((s1, s2), (202, 202));
    t.wait_status("evt_a", LedgerStatus::Synced).await;
    t.wait_status("evt_b", LedgerStatus::Synced).await;
    let contacts = t.hubspot_all("contacts", "").await;
    assert_eq!(contacts.len(), 1);
    let c = t.contact_by_email("priya@acme.in").await;
    assert_eq!(TestStack::note_ids(&c).len(), 2);
    assert_eq!(c["properties"]["firstname"], "Priya");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn phone_only_leads_for_one_person_make_one_contact_despite_search_lag() {
    // Search lags 1.5 s behind writes; the ledger remembers the id meanwhile.
    let t = start("phone", |_| {}).await;
    let (s1, _) = t
        .post(&lead("evt_p1", json!({"phone": "+1 415 555 2671"})))
        .await;
    let (s2, _) = t
        .post(&lead(
            "evt_p2",
            json!({"phone": "(415) 555-2671", "country": "US"}),
        ))
        .await;
    assert_eq!((s1, s2), (202, 202));
    t.wait_status("evt_p1", LedgerStatus::Synced).await;
    t.wait_status("evt_p2", LedgerStatus::Synced).await;
    let contacts = t.hubspot_all("contacts", "&properties=phone").await;
    assert_eq!(contacts.len(), 1, "{contacts:?}");
    assert_eq!(contacts[0]["properties"]["phone"], "+14155552671");
    assert_eq!(t.hubspot_all("notes", "").await.len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_qualified_lead_asking_for_a_deal_gets_one_deal_associated_with_the_contact() {
    let t = start("deal", |_| {}).await;
    let mut ev = lead(
        "evt_deal",
        json!({"email": "buyer@corp.io", "company": "Corp"}),
    );
    ev["event_type"] = json!("lead.qualified");
    ev["crm_target"] =
        json!({"object": "contact", "create_deal": true, "deal_stage": "appointmentscheduled"});
    let (status, _) = t.post(&ev).await;
    assert_eq!(status, 202);
    let rec = t.wait_status("evt_deal", LedgerStatus::Synced).await;
    let deal_id = rec.outcome.unwrap().deal_id.expect("deal id");
    let c = t.contact_by_email("buyer@corp.io").await;
    let deals: Vec<&str> = c["associations"]["deals"]["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["id"].as_str().unwrap())
        .collect();
    assert_eq!(deals, vec![deal_id.as_str()]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deal_stage_the_pipeline_does_not_have_is_refused_before_anything_is_written() {
    let t = start("stage", |_| {}).await;
    let mut ev = lead(
        "evt_stage",
        json!({"email": "stage@x.io", "name": "Sam Stage"}),
    );
    ev["crm_target"] = json!({"create_deal": true, "deal_stage": "negotiationz"});
    let (status, body) = t.post(&ev).await;
    assert_eq!(status, 202, "{body}");
    let dead = t.wait_status("evt_stage", LedgerStatus::Dead).await;
    let reason = dead.last_error.expect("a reason");
    assert_eq!(reason.code, "bad_deal_stage", "{reason:?}");
    assert!(
        reason.message.contains("\"negotiationz\"")
            && reason.message.contains("appointmentscheduled"),
        "names the stage and the pipeline's stages: {reason:?}"
    );
    assert!(
        t.hubspot_all("contacts", "").await.is_empty(),
        "no contact was written"
    );
    assert!(t.hubspot_all("notes", "").await.is_empty(), "no note");
    assert!(t.hubspot_all("deals", "").await.is_empty(), "no deal");
}
