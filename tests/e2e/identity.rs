//! One person, one record, one note: identity resolution across email, phone and
//! WhatsApp id, through retries and replays, on moto and the HubSpot simulator
//! (which searches phones as HubSpot does: national number only, after a lag).

use chrono::Utc;
use lb_local::ops::OpsTarget;
use lb_pipeline::{LedgerStatus, ListFilter};
use lb_tests::{lead, start, TestStack};
use reqwest::Method;
use serde_json::{json, Value};

/// The contacts of the simulator with the identity properties.
async fn contacts(t: &TestStack) -> Vec<Value> {
    t.hubspot_all(
        "contacts",
        "&properties=email,phone,hs_whatsapp_phone_number,firstname,company",
    )
    .await
}

/// The note bodies associated with a contact (every page).
async fn note_bodies(t: &TestStack, contact_id: &str) -> Vec<String> {
    let ids = t
        .client
        .hubspot_associations("contacts", contact_id, "notes", None)
        .await
        .expect("associations");
    let all = t.hubspot_all("notes", "&properties=hs_note_body").await;
    all.iter()
        .filter(|n| ids.iter().any(|i| n["id"] == *i))
        .filter_map(|n| n["properties"]["hs_note_body"].as_str().map(str::to_string))
        .collect()
}

/// How many of a contact's notes carry exactly this event's tag.
async fn notes_of_event(t: &TestStack, contact_id: &str, event_id: &str) -> usize {
    let id = lb_domain::EventId::parse(event_id).unwrap();
    note_bodies(t, contact_id)
        .await
        .iter()
        .filter(|b| lb_domain::note::carries_tag(b, &id))
        .count()
}

async fn synced_contact(t: &TestStack, event_id: &str) -> String {
    t.wait_status(event_id, LedgerStatus::Synced)
        .await
        .outcome
        .expect("outcome")
        .contact_id
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_phone_first_lead_who_later_gives_an_email_stays_one_contact() {
    let t = start("phonefirst", |_| {}).await;
    t.post(&lead("evt_pf1", json!({"phone": "+1 415 555 2671"})))
        .await;
    let first = synced_contact(&t, "evt_pf1").await;
    let named = contacts(&t).await;
    assert_eq!(
        named[0]["properties"]["firstname"], "+14155552671",
        "HubSpot needs a name: a number-only contact is named after its number"
    );
    let (s, b) = t
        .post(&lead(
            "evt_pf2",
            json!({"email": "pat@example.com", "phone": "(415) 555-2671", "country": "US", "name": "Pat Lee"}),
        ))
        .await;
    assert_eq!(s, 202, "{b}");
    assert_eq!(synced_contact(&t, "evt_pf2").await, first);
    let all = contacts(&t).await;
    assert_eq!(all.len(), 1, "{all:#?}");
    let p = &all[0]["properties"];
    assert_eq!(
        p["email"], "pat@example.com",
        "the phone-only contact gained the email"
    );
    assert_eq!(
        p["firstname"], "Pat",
        "the number-as-name was replaced by the real name"
    );
    // and an email-only lead later lands on it too
    t.post(&lead("evt_pf3", json!({"email": "PAT@example.com"})))
        .await;
    assert_eq!(synced_contact(&t, "evt_pf3").await, first);
    assert_eq!(contacts(&t).await.len(), 1);
    assert!(t.alerts().await.is_empty(), "no conflict, no alert");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_whatsapp_first_lead_who_gives_email_and_phone_stays_one_contact() {
    let t = start("wafirst", |_| {}).await;
    t.post(&lead(
        "evt_wa1",
        json!({"wa_id": "919876543210", "name": "Priya Sharma"}),
    ))
    .await;
    let first = synced_contact(&t, "evt_wa1").await;
    // Within the simulator's search lag: only the ledger can tell it is her.
    t.post(&lead(
        "evt_wa2",
        json!({"email": "priya@acme.in", "phone": "+91 98765 43210"}),
    ))
    .await;
    assert_eq!(synced_contact(&t, "evt_wa2").await, first);
    let all = contacts(&t).await;
    assert_eq!(all.len(), 1, "{all:#?}");
    assert_eq!(all[0]["properties"]["email"], "priya@acme.in");
    assert_eq!(
        all[0]["properties"]["hs_whatsapp_phone_number"],
        "+919876543210"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_email_first_lead_then_phone_only_and_a_contact_the_ledger_never_saw_are_found() {
    let t = start("emailfirst", |_| {}).await;
    t.post(&lead(
        "evt_ef1",
        json!({"email": "sam@example.com", "phone": "+44 20 7946 0958"}),
    ))
    .await;
    let first = synced_contact(&t, "evt_ef1").await;
    t.post(&lead(
        "evt_ef2",
        json!({"phone": "020 7946 0958", "country": "GB"}),
    ))
    .await;
    assert_eq!(synced_contact(&t, "evt_ef2").await, first);

    // A contact a rep created in HubSpot: the ledger has never seen it; HubSpot's
    // search finds it by national number (how HubSpot standardizes a number typed
    // without its country code is not documented, so the rep typed it with one).
    let created = t
        .client
        .hubspot_post(
            "/crm/v3/objects/contacts",
            &json!({"properties": {"firstname": "Rep-made", "phone": "+44 161 496 0000"}}),
        )
        .await
        .expect("create");
    let rep_made = created["id"].as_str().unwrap().to_string();
    // HubSpot's search sees a new contact after a lag: wait until it does.
    let search = json!({"filterGroups": [{"filters": [
        {"propertyName": "phone", "operator": "EQ", "value": "1614960000"}]}]});
    lb_tests::eventually(
        "the rep's contact in search",
        std::time::Duration::from_secs(20),
        || async {
            let found = t
                .client
                .hubspot_post("/crm/v3/objects/contacts/search", &search)
                .await
                .ok()?;
            (found["total"].as_u64().unwrap_or(0) > 0).then_some(())
        },
    )
    .await;
    t.post(&lead("evt_ef3", json!({"phone": "+44 161 496 0000"})))
        .await;
    assert_eq!(synced_contact(&t, "evt_ef3").await, rep_made);
    assert_eq!(contacts(&t).await.len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_records_known_for_one_person_the_emails_record_wins_and_one_alert_names_both() {
    let t = start("conflict", |_| {}).await;
    t.post(&lead("evt_c1", json!({"email": "dana@example.com"})))
        .await;
    t.post(&lead("evt_c2", json!({"phone": "+1 212 555 0147"})))
        .await;
    let a = synced_contact(&t, "evt_c1").await;
    let b = synced_contact(&t, "evt_c2").await;
    assert_ne!(a, b, "two people as far as anyone could tell");
    t.post(&lead(
        "evt_c3",
        json!({"email": "dana@example.com", "phone": "+1 212 555 0147"}),
    ))
    .await;
    assert_eq!(
        synced_contact(&t, "evt_c3").await,
        a,
        "the email's record wins"
    );
    assert_eq!(
        contacts(&t).await.len(),
        2,
        "never a third record, never a merge"
    );
    let alerts = t.alerts().await;
    let dup: Vec<_> = alerts
        .iter()
        .filter(|(s, _)| s.contains("possible duplicate"))
        .collect();
    assert_eq!(dup.len(), 1, "{alerts:#?}");
    let (subject, body) = dup[0];
    assert!(subject.contains(&a) && subject.contains(&b), "{subject}");
    assert!(subject.len() <= 100 && subject.is_ascii(), "{subject}");
    for raw in ["dana@example.com", "2125550147", "+12125550147"] {
        assert!(
            !body.contains(raw) && !subject.contains(raw),
            "{raw} in {body}"
        );
    }
    // the same conflict again: recorded once, alerted once
    t.post(&lead(
        "evt_c4",
        json!({"email": "dana@example.com", "phone": "+1 212 555 0147"}),
    ))
    .await;
    assert_eq!(synced_contact(&t, "evt_c4").await, a);
    assert!(t
        .alerts()
        .await
        .iter()
        .all(|(s, _)| !s.contains("possible duplicate")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_email_that_another_contact_already_has_takes_the_write_and_is_reported() {
    let t = start("taken", |_| {}).await;
    t.post(&lead(
        "evt_t1",
        json!({"phone": "+1 303 555 0188", "name": "Kim"}),
    ))
    .await;
    let by_phone = synced_contact(&t, "evt_t1").await;
    let created = t
        .client
        .hubspot_post(
            "/crm/v3/objects/contacts",
            &json!({"properties": {"email": "kim@example.com", "firstname": "Kim"}}),
        )
        .await
        .expect("create");
    let owner = created["id"].as_str().unwrap().to_string();
    t.post(&lead(
        "evt_t2",
        json!({"email": "kim@example.com", "phone": "+1 303 555 0188"}),
    ))
    .await;
    assert_eq!(
        synced_contact(&t, "evt_t2").await,
        owner,
        "the email's record wins"
    );
    assert_eq!(contacts(&t).await.len(), 2);
    let alerts = t.alerts().await;
    assert!(
        alerts.iter().any(|(s, _)| s.contains("possible duplicate")
            && s.contains(&by_phone)
            && s.contains(&owner)),
        "{alerts:#?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_events_of_one_person_with_different_identities_make_one_record() {
    let t = start("concurrent", |o| o.worker_concurrency = 3).await;
    let people = 6;
    let mut posts = Vec::new();
    for i in 0..people {
        let phone = format!("+1 415 555 01{i:02}");
        posts.push(lead(&format!("evt_cc{i}a"), json!({"phone": phone})));
        posts.push(lead(
            &format!("evt_cc{i}b"),
            json!({"email": format!("cc{i}@example.com"), "phone": phone, "name": "Cee Cee"}),
        ));
        posts.push(lead(
            &format!("evt_cc{i}c"),
            json!({"wa_id": format!("1415555{:04}", 100 + i), "phone": phone}),
        ));
    }
    let sent = futures_join(&t, &posts).await;
    assert!(sent.iter().all(|s| *s == 202), "{sent:?}");
    for i in 0..people {
        let ids: Vec<String> = ["a", "b", "c"]
            .iter()
            .map(|s| format!("evt_cc{i}{s}"))
            .collect();
        let mut records = Vec::new();
        for id in &ids {
            records.push(synced_contact(&t, id).await);
        }
        records.dedup();
        assert_eq!(records.len(), 1, "person {i}: {records:?}");
        for id in &ids {
            assert_eq!(notes_of_event(&t, &records[0], id).await, 1, "{id}");
        }
    }
    assert_eq!(contacts(&t).await.len(), people);
}

/// Posts every body at once; the statuses.
async fn futures_join(t: &TestStack, bodies: &[Value]) -> Vec<u16> {
    let mut set = tokio::task::JoinSet::new();
    for b in bodies {
        let client = t.client.clone();
        let b = b.clone();
        set.spawn(async move { client.post(&b).await.map(|(s, _)| s).unwrap_or(0) });
    }
    let mut out = Vec::new();
    while let Some(r) = set.join_next().await {
        out.push(r.unwrap_or(0));
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replay_after_the_note_was_written_and_the_deal_refused_ends_with_one_of_each() {
    let t = start("partial", |_| {}).await;
    t.admin(
        Method::POST,
        "faults",
        Some(
            json!({"kind": "error", "status": 400, "probability": 1.0, "count": 1,
                    "route": "POST /crm/v3/objects/deals"}),
        ),
    )
    .await;
    let mut ev = lead("evt_part", json!({"email": "part@example.com"}));
    ev["crm_target"] = json!({"object": "contact", "create_deal": true});
    t.post(&ev).await;
    let dead = t.wait_status("evt_part", LedgerStatus::Dead).await;
    let kept = dead.outcome.expect("what was written is kept");
    assert!(kept.note_id.is_some() && kept.deal_id.is_none(), "{kept:?}");
    // the cause is fixed (the fault was one-shot); the operator replays it
    let ops = OpsTarget::from_stack(&t.stack.info).connect().await;
    let report = ops
        .replay(&ListFilter::status(LedgerStatus::Dead), false, Utc::now())
        .await
        .expect("replay");
    assert_eq!(report.replayed(), 1, "{report:?}");
    let rec = t.wait_status("evt_part", LedgerStatus::Synced).await;
    let out = rec.outcome.unwrap();
    assert_eq!(out.note_id, kept.note_id, "the same note");
    assert!(out.deal_id.is_some());
    assert_eq!(notes_of_event(&t, &out.contact_id, "evt_part").await, 1);
    assert_eq!(t.hubspot_all("notes", "").await.len(), 1);
    assert_eq!(t.hubspot_all("deals", "").await.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retry_whose_event_id_prefixes_another_ones_writes_its_own_note() {
    let t = start("prefix", |_| {}).await;
    t.post(&lead("evt_7", json!({"email": "pre@example.com"})))
        .await;
    let _ = t
        .post(&lead("evt_70", json!({"email": "pre@example.com"})))
        .await;
    let contact = synced_contact(&t, "evt_70").await;
    synced_contact(&t, "evt_7").await;
    // evt_1's first note write fails; its retry looks for its note and must not
    // take evt_10's for it.
    t.post(&lead("evt_10", json!({"email": "pre@example.com"})))
        .await;
    synced_contact(&t, "evt_10").await;
    t.admin(
        Method::POST,
        "faults",
        Some(
            json!({"kind": "error", "status": 503, "probability": 1.0, "count": 1,
                    "route": "POST /crm/v3/objects/notes"}),
        ),
    )
    .await;
    t.post(&lead("evt_1", json!({"email": "pre@example.com"})))
        .await;
    let rec = t.wait_status("evt_1", LedgerStatus::Synced).await;
    assert_eq!(rec.attempts, 2, "the first attempt failed on its note");
    for id in ["evt_1", "evt_10", "evt_7", "evt_70"] {
        assert_eq!(notes_of_event(&t, &contact, id).await, 1, "{id}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retry_finds_its_note_among_more_than_five_hundred() {
    // A limit the seeding of 521 notes does not wait on.
    let t = start("manynotes", |o| o.sim.rate_limit_max = 100_000).await;
    t.post(&lead("evt_many0", json!({"email": "busy@example.com"})))
        .await;
    let contact = synced_contact(&t, "evt_many0").await;
    let note = |event: &str| {
        json!({"properties": {"hs_timestamp": "2026-05-04T11:00:00Z",
                              "hs_note_body": format!("<p>Ref: leadbridge-event:{event}</p>")},
               "associations": [{"to": {"id": contact}, "types": [{"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": 202}]}]})
    };
    for i in 0..520 {
        t.client
            .hubspot_post("/crm/v3/objects/notes", &note(&format!("evt_other{i}")))
            .await
            .expect("note");
    }
    // As if an earlier attempt of evt_many1 wrote its note (the 522nd) and then died
    // before recording it: its retry must find it on the second page.
    t.client
        .hubspot_post("/crm/v3/objects/notes", &note("evt_many1"))
        .await
        .expect("note");
    t.admin(
        Method::POST,
        "faults",
        Some(
            json!({"kind": "error", "status": 503, "probability": 1.0, "count": 1,
                    "route": "PATCH /crm/v3/objects/contacts/{id}"}),
        ),
    )
    .await;
    t.post(&lead("evt_many1", json!({"email": "busy@example.com"})))
        .await;
    let rec = t.wait_status("evt_many1", LedgerStatus::Synced).await;
    assert_eq!(rec.attempts, 2, "the first attempt failed on the contact");
    assert_eq!(notes_of_event(&t, &contact, "evt_many1").await, 1);
    assert_eq!(note_bodies(&t, &contact).await.len(), 522);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_occurred_at_far_in_the_future_is_refused_with_a_field_error() {
    let t = start("future", |_| {}).await;
    let mut ev = lead("evt_future", json!({"email": "f@example.com"}));
    ev["occurred_at"] = json!((Utc::now() + chrono::Duration::hours(2)).to_rfc3339());
    let (status, body) = t.post(&ev).await;
    assert_eq!(status, 422, "{body}");
    let errors = body["errors"].as_array().expect("errors");
    assert!(
        errors
            .iter()
            .any(|e| e["field"] == "occurred_at" && e["code"] == "in_the_future"),
        "{body}"
    );
    // within the clock-skew tolerance it is accepted
    let mut ev = lead("evt_soon", json!({"email": "f@example.com"}));
    ev["occurred_at"] = json!((Utc::now() + chrono::Duration::minutes(2)).to_rfc3339());
    assert_eq!(t.post(&ev).await.0, 202);
}
