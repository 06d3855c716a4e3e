//! Right to erasure (`leadbridge erase`), end to end: leads synced and dead on
//! the local stack, then the person erased by one identity from the ledger
//! (DynamoDB on moto) and from the dead-letter queue (SQS on moto).

use lb_aws::{aws_sdk_sqs, SqsLeadQueue};
use lb_domain::{ContactKey, Email, Phone};
use lb_local::moto::Moto;
use lb_local::ops::OpsTarget;
use lb_local::resources::{self, Names};
use lb_pipeline::{DeadLetter, LeadQueue, LedgerStatus};
use lb_tests::{lead, start};
use reqwest::Method;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_person_erased_by_one_identity_leaves_nothing_in_the_ledger_and_others_stay() {
    let t = start("erase", |_| {}).await;
    t.post(&lead(
        "evt_er1",
        json!({"email": "erin@example.com", "phone": "+1 415 555 0177", "name": "Erin Roe"}),
    ))
    .await;
    t.wait_status("evt_er1", LedgerStatus::Synced).await;
    // her phone-only lead, and one HubSpot refuses (dead, payload kept for replay)
    t.post(&lead("evt_er2", json!({"phone": "+1 415 555 0177"})))
        .await;
    t.wait_status("evt_er2", LedgerStatus::Synced).await;
    t.admin(
        Method::POST,
        "faults",
        Some(
            json!({"kind": "error", "status": 400, "probability": 1.0, "count": 1,
                    "route": "PATCH /crm/v3/objects/contacts/{id}"}),
        ),
    )
    .await;
    t.post(&lead("evt_er3", json!({"email": "erin@example.com"})))
        .await;
    t.wait_status("evt_er3", LedgerStatus::Dead).await;
    // someone else
    t.post(&lead("evt_other", json!({"email": "sam@example.com"})))
        .await;
    t.wait_status("evt_other", LedgerStatus::Synced).await;

    let ops = OpsTarget::from_stack(&t.stack.info).connect().await;
    let email = ContactKey::Email(Email::parse("ERIN@example.com").unwrap());
    let report = ops.erase(&[email]).await.expect("erase");
    assert_eq!(
        report.ledger.deliveries,
        vec!["evt_er1", "evt_er2", "evt_er3"],
        "every delivery of hers, the phone-only one too: {report:?}"
    );
    assert_eq!(report.ledger.identity_links, 2, "her email and phone");
    assert_eq!(report.ledger.records, 1);
    for id in ["evt_er1", "evt_er2", "evt_er3"] {
        assert!(t.ledger(id).await.is_none(), "{id} erased");
    }
    assert_eq!(
        t.ledger("evt_other").await.expect("others stay").status,
        LedgerStatus::Synced
    );
    let phone = ContactKey::Phone(Phone::parse("+14155550177", None).unwrap());
    let links = t
        .stack
        .ledger()
        .identities("hubspot", &[phone.hashed()])
        .await
        .unwrap();
    assert_eq!(links, vec![None]);
    let printed = report.render();
    assert!(
        !printed.contains("erin") && !printed.contains("4155550177"),
        "{printed}"
    );
    // and again: nothing left to erase
    let again = ops.erase(&[phone]).await.expect("erase");
    assert!(again.ledger.deliveries.is_empty(), "{again:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_persons_dead_letters_are_erased_from_the_queue_and_others_are_left() {
    // Resources only (no alerter consuming the DLQ meanwhile).
    let moto = Moto::shared().expect("moto server (run `make venv` first)");
    let sdk = lb_aws::sdk_config_for(&moto.endpoint, "us-east-1").await;
    let run = format!("t{}-erasedlq", rand::random::<u32>());
    let created = resources::create(&sdk, &Names::new(&run), "whsec_x", "pat-x")
        .await
        .expect("resources");
    let queue = SqsLeadQueue::new(
        aws_sdk_sqs::Client::new(&sdk),
        &created.queue_url,
        &created.dlq_url,
    );
    let letter = |lead: &lb_domain::QueuedLead, n: u32| DeadLetter {
        body: lead.to_json(),
        group_id: lead.group_id(),
        dedup_id: format!("{}-{n}", lead.delivery_id()),
        event_id: Some(lead.delivery_id()),
        attempts: 1,
        reason: lb_pipeline::fakes::permanent("refused").reason(),
    };
    let erin = lb_pipeline::fakes::sample_person(
        "evt_d1",
        Some("erin@example.com"),
        Some("+14155550177"),
        None,
    );
    let erin2 = lb_pipeline::fakes::sample_person("evt_d2", None, Some("+14155550177"), None);
    let sam = lb_pipeline::fakes::sample_person("evt_d3", Some("sam@example.com"), None, None);
    for (i, l) in [&erin, &erin2, &sam].into_iter().enumerate() {
        queue.dead_letter(&letter(l, i as u32)).await.unwrap();
    }
    let phone = ContactKey::Phone(Phone::parse("+14155550177", None).unwrap());
    assert_eq!(
        queue.erase_dead_letters(&[phone.hashed()]).await.unwrap(),
        2
    );
    // sam's is still there, visible
    let sqs = aws_sdk_sqs::Client::new(&sdk);
    let left = sqs
        .receive_message()
        .queue_url(&created.dlq_url)
        .max_number_of_messages(10)
        .wait_time_seconds(1)
        .send()
        .await
        .unwrap()
        .messages
        .unwrap_or_default();
    assert_eq!(left.len(), 1);
    assert!(left[0].body().unwrap_or_default().contains("evt_d3"));
}

/// Retention: every item a lead leaves in the ledger (deliveries, the person's
/// identity links and record item, rejections and their counter) carries a TTL,
/// a synced delivery about 90 days, a dead one about 365.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_ledger_item_a_lead_leaves_expires() {
    let t = start("ttl", |_| {}).await;
    t.post(&lead(
        "evt_ttl1",
        json!({"email": "tess@example.com", "phone": "+1 415 555 0166"}),
    ))
    .await;
    t.wait_status("evt_ttl1", LedgerStatus::Synced).await;
    t.admin(
        Method::POST,
        "faults",
        Some(
            json!({"kind": "error", "status": 400, "probability": 1.0, "count": 1,
                    "route": "PATCH /crm/v3/objects/contacts/{id}"}),
        ),
    )
    .await;
    t.post(&lead("evt_ttl2", json!({"email": "tess@example.com"})))
        .await;
    t.wait_status("evt_ttl2", LedgerStatus::Dead).await;
    let (s, _) = t.post(&lead("evt_ttl3", json!({"name": "nobody"}))).await;
    assert_eq!(s, 422);
    let ddb = lb_aws::aws_sdk_dynamodb::Client::new(&t.stack.sdk);
    let items = ddb
        .scan()
        .table_name(&t.stack.info.table_name)
        .send()
        .await
        .expect("scan")
        .items
        .unwrap_or_default();
    let now = chrono::Utc::now().timestamp();
    let days = |item: &std::collections::HashMap<
        String,
        lb_aws::aws_sdk_dynamodb::types::AttributeValue,
    >| {
        item.get("expires_at")
            .and_then(|v| v.as_n().ok())
            .and_then(|n| n.parse::<i64>().ok())
            .map(|t| (t - now) / 86_400)
    };
    let kinds: Vec<String> = items
        .iter()
        .map(|i| {
            let pk = i["pk"].as_s().unwrap();
            pk.split('#').next().unwrap().to_string()
        })
        .collect();
    for k in ["EVENT", "CONTACT", "PERSON", "REJECTED", "REJECTIONS"] {
        assert!(kinds.iter().any(|x| x == k), "a {k} item: {kinds:?}");
    }
    for item in &items {
        assert!(days(item).is_some(), "no TTL on {:?}", item["pk"]);
    }
    let by_event = |id: &str| {
        items
            .iter()
            .find(|i| i["pk"].as_s().unwrap() == &format!("EVENT#{id}"))
            .and_then(days)
    };
    let about = |d: Option<i64>, want: i64| d.is_some_and(|d| (want - 1..=want).contains(&d));
    assert!(
        about(by_event("evt_ttl1"), 90),
        "synced: 90 days, {:?}",
        by_event("evt_ttl1")
    );
    assert!(
        about(by_event("evt_ttl2"), 365),
        "dead: 365 days, {:?}",
        by_event("evt_ttl2")
    );
}
