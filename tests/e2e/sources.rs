//! Native sources end to end: each vendor's own payload, signed as the vendor
//! signs it, posted to `POST /v1/sources/<vendor>` of a stack started without a
//! config file (one source of every kind), lands in the HubSpot simulator as one
//! contact with its conversation; a bad signature writes nothing; a redelivery
//! writes nothing twice; a non-lead notification is acknowledged and ignored.

use std::time::Duration;

use chrono::Utc;
use lb_local::sources::local_custom_fields;
use lb_pipeline::LedgerStatus;
use lb_tests::{eventually, start, TestStack};
use lb_vendors::source::{Sample, SourceContext, SourceOptions};
use reqwest::Method;
use serde_json::Value;

fn options_of(kind: &str) -> SourceOptions {
    SourceOptions {
        fields: if kind == "custom_json" {
            local_custom_fields()
        } else {
            Vec::new()
        },
        ..SourceOptions::default()
    }
}

/// The simulator's contacts holding this email or phone.
async fn contacts_of(t: &TestStack, email: &str, phone: &str) -> Vec<Value> {
    t.hubspot_all("contacts", "&properties=email,phone,firstname,lastname,hs_whatsapp_phone_number,leadbridge_channel,leadbridge_ad_click_id,leadbridge_last_inbound_at")
        .await
        .into_iter()
        .filter(|c| {
            c["properties"]["email"].as_str() == Some(email)
                || c["properties"]["phone"].as_str() == Some(phone)
        })
        .collect()
}

/// The note bodies on a contact.
async fn note_bodies(t: &TestStack, contact_id: &str) -> Vec<String> {
    let ids = t
        .client
        .hubspot_associations("contacts", contact_id, "notes", None)
        .await
        .expect("associations");
    t.hubspot_all("notes", "&properties=hs_note_body")
        .await
        .iter()
        .filter(|n| ids.iter().any(|i| n["id"] == *i))
        .filter_map(|n| n["properties"]["hs_note_body"].as_str().map(str::to_string))
        .collect()
}

/// Waits until the event's delivery is synced (whatever its ledger id).
async fn synced(t: &TestStack, event_id: &str) {
    eventually(
        &format!("{event_id} synced"),
        Duration::from_secs(40),
        || async {
            let recs = t
                .stack
                .ledger()
                .deliveries(event_id)
                .await
                .unwrap_or_default();
            recs.iter()
                .any(|r| r.status == LedgerStatus::Synced)
                .then_some(())
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_vendor_kind_lands_as_one_contact_with_its_note_and_holds_at_the_edges() {
    let t = start("sources", |_| {}).await;
    let kinds: Vec<String> = t.stack.info.sources.keys().cloned().collect();
    assert_eq!(
        kinds.len(),
        lb_vendors::sources::KINDS.len(),
        "one local source per kind: {kinds:?}"
    );
    for (i, name) in kinds.iter().enumerate() {
        let email = format!("{name}.lead@example.com");
        let phone = format!("+1415555{:04}", 1000 + i);
        let vendor_id = format!("{name}-msg-0001");
        let text = format!("Hello from {name}, what does Pro cost?");
        let lead = Sample {
            vendor_id: &vendor_id,
            name: "Sheena Nelson",
            email: &email,
            phone: &phone,
            text: &text,
            at: Utc::now() - chrono::Duration::seconds(5),
        };
        let opts = options_of(name);
        let (status, _, body) = t
            .client
            .send_as_vendor(name, &lead, &opts)
            .await
            .expect("ingest answers");
        assert!((200..300).contains(&status), "{name}: {status} {body}");
        assert!(
            !body.contains("rejected") && !body.contains("ignored"),
            "{name}: the sample is a lead: {body}"
        );

        // One contact, with the conversation in a note.
        let contact = eventually(
            &format!("{name}: one contact"),
            Duration::from_secs(40),
            || async {
                let cs = contacts_of(&t, &email, &phone).await;
                (cs.len() == 1).then(|| cs[0].clone())
            },
        )
        .await;
        let id = contact["id"].as_str().unwrap().to_string();
        let notes = eventually(
            &format!("{name}: its note"),
            Duration::from_secs(40),
            || async {
                let n = note_bodies(&t, &id).await;
                (!n.is_empty()).then_some(n)
            },
        )
        .await;
        assert_eq!(notes.len(), 1, "{name}: {notes:?}");

        // A redelivery of the same vendor message writes nothing more.
        let (kind, url, secret) = t.client.source(name).unwrap();
        let (ct, raw) = kind.sample(&lead, &opts);
        let event_id = event_id_of(name, kind, &url, &secret, &ct, &raw, &opts);
        synced(&t, &event_id).await;
        let (status, _, body) = t
            .client
            .send_signed(name, kind, &url, &secret, &ct, raw.clone())
            .await
            .unwrap();
        assert!(
            (200..300).contains(&status),
            "{name} redelivery: {status} {body}"
        );
        if let Ok(reply) = serde_json::from_str::<Value>(&body) {
            if reply.get("duplicate").is_some() {
                assert_eq!(reply["duplicate"], true, "{name}: {reply}");
            }
        }
        synced(&t, &event_id).await;
        assert_eq!(contacts_of(&t, &email, &phone).await.len(), 1, "{name}");
        assert_eq!(
            note_bodies(&t, &id).await.len(),
            1,
            "{name}: no second note"
        );

        // A bad signature: 401, nothing written.
        let other = Sample {
            vendor_id: "never-0001",
            email: "never@example.com",
            phone: "+14155559999",
            ..lead
        };
        let (ct, raw) = kind.sample(&other, &opts);
        let (status, _, _) = t
            .client
            .send_signed(name, kind, &url, "not-the-secret", &ct, raw)
            .await
            .unwrap();
        assert_eq!(status, 401, "{name}: a wrong secret");
        let (status, _, _) = t
            .client
            .source_request(
                Method::POST,
                name,
                "",
                b"{}".to_vec(),
                &[("content-type".into(), "application/json".into())],
            )
            .await
            .unwrap();
        assert_eq!(status, 401, "{name}: no signature at all");
    }
    assert!(
        contacts_of(&t, "never@example.com", "+14155559999")
            .await
            .is_empty(),
        "nothing written for a bad signature"
    );
}

/// The event id ingest gives a vendor's delivery (the kind's own parse).
fn event_id_of(
    name: &str,
    kind: &dyn lb_vendors::source::SourceKind,
    url: &str,
    secret: &str,
    content_type: &str,
    body: &[u8],
    options: &SourceOptions,
) -> String {
    let cx = SourceContext {
        source: name,
        bot_id: "x",
        now: Utc::now(),
        options,
    };
    match lb_vendors::source::read_signed(kind, &cx, url, secret, content_type, body) {
        Ok(lb_vendors::source::Parsed::Leads(leads)) => {
            leads[0]["event_id"].as_str().unwrap().to_string()
        }
        other => panic!("{name}: the sample is not a lead: {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_whatsapp_conversation_is_one_contact_with_every_message_once_and_its_ad_referral() {
    let t = start("waconv", |_| {}).await;
    let (kind, url, secret) = t.client.source("whatsapp").unwrap();
    // The GET handshake Meta makes when the webhook is set up.
    let (status, _, body) = t
        .client
        .source_request(
            Method::GET,
            "whatsapp",
            &format!(
                "hub.mode=subscribe&hub.challenge=1158201444&hub.verify_token={}",
                lb_local::sources::LOCAL_VERIFY_TOKEN
            ),
            Vec::new(),
            &[],
        )
        .await
        .unwrap();
    assert_eq!((status, body.as_str()), (200, "1158201444"));
    let (status, _, _) = t
        .client
        .source_request(
            Method::GET,
            "whatsapp",
            "hub.mode=subscribe&hub.challenge=1158201444&hub.verify_token=wrong",
            Vec::new(),
            &[],
        )
        .await
        .unwrap();
    assert_eq!(status, 401);

    // The first message comes from a click-to-WhatsApp ad (Meta's referral object).
    let now = Utc::now() - chrono::Duration::seconds(60);
    let first = include_str!("../fixtures/vendors/whatsapp/referral_message.CONSTRUCTED.json");
    let mut first: Value = serde_json::from_str(first).unwrap();
    let msg = &mut first["entry"][0]["changes"][0]["value"]["messages"][0];
    msg["timestamp"] = now.timestamp().to_string().into();
    let wa_id = first["entry"][0]["changes"][0]["value"]["contacts"][0]["wa_id"]
        .as_str()
        .unwrap()
        .to_string();
    let ctwa = first["entry"][0]["changes"][0]["value"]["messages"][0]["referral"]["ctwa_clid"]
        .as_str()
        .unwrap()
        .to_string();
    let raw = serde_json::to_vec(&first).unwrap();
    let (status, _, body) = t
        .client
        .send_signed("whatsapp", kind, &url, &secret, "application/json", raw)
        .await
        .unwrap();
    assert_eq!(status, 200, "{body}");

    // Then three more messages, one of them delivered twice (Meta retries).
    let texts = ["Is it available in blue?", "And the price?", "Thanks!"];
    for (i, text) in texts.iter().enumerate() {
        let id = format!("wamid.conv-{i}");
        let lead = Sample {
            vendor_id: &id,
            name: "Sheena Nelson",
            email: "",
            phone: &format!("+{wa_id}"),
            text,
            at: now + chrono::Duration::seconds(10 * (i as i64 + 1)),
        };
        let times = if i == 1 { 2 } else { 1 };
        for _ in 0..times {
            let (ct, raw) = kind.sample(&lead, &SourceOptions::default());
            let (status, _, body) = t
                .client
                .send_signed("whatsapp", kind, &url, &secret, &ct, raw)
                .await
                .unwrap();
            assert_eq!(status, 200, "{body}");
        }
    }
    let phone = format!("+{wa_id}");
    let contact = eventually("one contact", Duration::from_secs(40), || async {
        let cs = contacts_of(&t, "", &phone).await;
        (cs.len() == 1).then(|| cs[0].clone())
    })
    .await;
    let id = contact["id"].as_str().unwrap().to_string();
    let bodies = eventually(
        "every message in the conversation note",
        Duration::from_secs(40),
        || async {
            let b = note_bodies(&t, &id).await;
            (b.len() == 1 && texts.iter().all(|x| b[0].contains(x))).then_some(b)
        },
    )
    .await;
    for text in texts {
        assert_eq!(
            bodies[0].matches(text).count(),
            1,
            "{text} once: {}",
            bodies[0]
        );
    }
    let contact = contacts_of(&t, "", &phone).await.remove(0);
    assert_eq!(
        contact["properties"]["leadbridge_ad_click_id"],
        ctwa.as_str()
    );
    assert_eq!(contact["properties"]["leadbridge_channel"], "whatsapp");
    assert!(
        contact["properties"]["leadbridge_last_inbound_at"].is_string(),
        "{contact}"
    );
    assert_eq!(contacts_of(&t, "", &phone).await.len(), 1);
}

/// A genuine delivery of each vendor that carries no lead (from the vendor's
/// own samples in `tests/fixtures/vendors/`): content type and body.
fn non_leads() -> Vec<(&'static str, &'static str, &'static [u8])> {
    const JSON: &str = "application/json";
    vec![
        (
            "whatsapp",
            JSON,
            include_bytes!("../fixtures/vendors/whatsapp/status_delivered.CONSTRUCTED.json"),
        ),
        (
            "twilio",
            "application/x-www-form-urlencoded",
            include_bytes!("../fixtures/vendors/twilio/status_callback_delivered.CONSTRUCTED.txt"),
        ),
        (
            "intercom",
            JSON,
            include_bytes!("../fixtures/vendors/intercom/ping.zulip.json"),
        ),
        (
            "crisp",
            JSON,
            include_bytes!("../fixtures/vendors/crisp/message_send.quickstart.json"),
        ),
        (
            "tidio",
            JSON,
            include_bytes!(
                "../fixtures/vendors/tidio/conversation_solved_by_operator.CONSTRUCTED.json"
            ),
        ),
        (
            "drift",
            JSON,
            include_bytes!("../fixtures/vendors/drift/new_message.CONSTRUCTED.json"),
        ),
        (
            "chatbase",
            JSON,
            include_bytes!("../fixtures/vendors/chatbase/other_event.CONSTRUCTED.json"),
        ),
        (
            "dialogflow_cx",
            JSON,
            include_bytes!(
                "../fixtures/vendors/dialogflow_cx/python_docs_samples_log_session_info.json"
            ),
        ),
        (
            "standard_webhooks",
            JSON,
            include_bytes!("../fixtures/vendors/standard_webhooks/spec_example_event.json"),
        ),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_vendors_non_lead_notification_is_acknowledged_and_nothing_is_written() {
    let t = start("nonlead", |_| {}).await;
    for (name, ct, body) in non_leads() {
        let (kind, url, secret) = t.client.source(name).unwrap();
        let (status, _, reply) = t
            .client
            .send_signed(name, kind, &url, &secret, ct, body.to_vec())
            .await
            .unwrap();
        assert_eq!(status, 200, "{name}: {reply}");
        if let Ok(v) = serde_json::from_str::<Value>(&reply) {
            if v.get("status").is_some() {
                assert_eq!(v["status"], "ignored", "{name}: {v}");
            }
        }
    }
    // Ingest answers after it has recorded and queued whatever it accepts: an
    // empty ledger now means nothing was (or will be) written.
    for status in [
        LedgerStatus::Received,
        LedgerStatus::Queued,
        LedgerStatus::Rejected,
    ] {
        let recs = t
            .stack
            .ledger()
            .list(&lb_pipeline::ListFilter::status(status))
            .await
            .unwrap();
        assert!(recs.is_empty(), "{}: {recs:?}", status.as_str());
    }
    assert!(t.hubspot_all("contacts", "").await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lead_a_vendor_sends_that_validation_refuses_is_answered_200_recorded_and_alerted() {
    let t = start("srcreject", |_| {}).await;
    // Chatbase's documented lead form with a fictitious 555-01xx number, which
    // no phone plan assigns: refused as invalid_phone.
    let body =
        include_bytes!("../fixtures/vendors/chatbase/chatbase_leads_submit.CONSTRUCTED.min.json");
    let (kind, url, secret) = t.client.source("chatbase").unwrap();
    let (status, _, reply) = t
        .client
        .send_signed(
            "chatbase",
            kind,
            &url,
            &secret,
            "application/json",
            body.to_vec(),
        )
        .await
        .unwrap();
    // 200, so that the vendor does not retry a lead that will never pass.
    assert_eq!(status, 200, "{reply}");
    let v: Value = serde_json::from_str(&reply).unwrap();
    assert_eq!(v["status"], "rejected", "{v}");
    assert!(reply.contains("invalid_phone"), "{v}");
    let rejected = t
        .stack
        .ledger()
        .list(&lb_pipeline::ListFilter::status(LedgerStatus::Rejected))
        .await
        .unwrap();
    assert_eq!(rejected.len(), 1, "{rejected:?}");
    assert_eq!(rejected[0].bot_id.as_deref(), Some("bot_chatbase"));
    let (_, body) = t
        .alert_where("the rejection alert", |s, body| {
            s.contains("rejected") && body.contains("bot_chatbase")
        })
        .await;
    assert!(!body.contains("5555550100"), "no raw phone in the alert");
}
