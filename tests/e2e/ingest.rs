use lb_tests::{lead, start};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_or_stale_signatures_are_401_and_nothing_is_written() {
    let t = start("sig", |_| {}).await;
    let body = serde_json::to_vec(&lead("evt_sig_1", json!({"email": "a@b.co"}))).unwrap();
    let now = chrono::Utc::now().timestamp();
    let wrong = lb_vendors::signature::sign("not-the-secret", now, &body);
    let stale = lb_vendors::signature::sign(t.secret(), now - 600, &body);
    for headers in [
        vec![("content-type", "application/json")],
        vec![
            ("content-type", "application/json"),
            ("leadbridge-signature", wrong.as_str()),
        ],
        vec![
            ("content-type", "application/json"),
            ("leadbridge-signature", stale.as_str()),
        ],
        vec![
            ("content-type", "application/json"),
            ("leadbridge-signature", "t=abc,v1=zz"),
        ],
    ] {
        let (status, problem) = t.post_raw(body.clone(), &headers).await;
        assert_eq!(status, 401, "{headers:?}: {problem}");
        assert_eq!(problem["type"], "urn:leadbridge:problem:invalid_signature");
    }
    assert!(
        t.ledger("evt_sig_1").await.is_none(),
        "a rejected webhook leaves no ledger record"
    );
    let stats = t.admin(reqwest::Method::GET, "stats", None).await;
    assert_eq!(
        stats["total"], stats["by_route"]["GET /crm/v3/properties/contacts"],
        "nothing but the worker's start-up schema read reached HubSpot: {stats}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_json_is_400_and_a_lead_without_identity_is_422_with_field_errors() {
    let t = start("bad", |_| {}).await;
    let raw = b"{\"event_id\": ".to_vec();
    let sig = lb_vendors::signature::sign(t.secret(), chrono::Utc::now().timestamp(), &raw);
    let (status, problem) = t
        .post_raw(
            raw,
            &[
                ("content-type", "application/json"),
                ("leadbridge-signature", &sig),
            ],
        )
        .await;
    assert_eq!(status, 400, "{problem}");
    assert_eq!(problem["type"], "urn:leadbridge:problem:invalid_json");

    let (status, problem) = t
        .post(&lead("evt_anon", json!({"name": "Anonymous"})))
        .await;
    assert_eq!(status, 422, "{problem}");
    assert_eq!(problem["errors"][0]["field"], "visitor");
    assert_eq!(problem["errors"][0]["code"], "identity_required");

    let mut bad = lead("evt_bad", json!({"email": "not-an-email", "phone": "12"}));
    bad["occurred_at"] = json!("last tuesday");
    let (status, problem) = t.post(&bad).await;
    assert_eq!(status, 422);
    let fields: Vec<&str> = problem["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap())
        .collect();
    assert_eq!(
        fields,
        vec!["occurred_at", "visitor.email", "visitor.phone"],
        "{problem}"
    );
    assert!(t.ledger("evt_anon").await.is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqs_unreachable_is_503_and_the_sender_can_retry() {
    let t = start("nosqs", |o| {
        o.ingest_sqs_endpoint = Some("http://127.0.0.1:9".into())
    })
    .await;
    let (status, problem) = t.post(&lead("evt_nosqs", json!({"email": "a@b.co"}))).await;
    assert_eq!(status, 503, "{problem}");
    assert_eq!(problem["type"], "urn:leadbridge:problem:queue_unavailable");
    // Recorded as received, never as queued: the sender's retry will send it again.
    let rec = t.ledger("evt_nosqs").await.expect("ledger record");
    assert_eq!(rec.status, lb_pipeline::LedgerStatus::Received);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_body_is_413_and_wrong_content_type_is_400() {
    let t = start("size", |_| {}).await;
    let mut big = lead("evt_big", json!({"email": "a@b.co"}));
    big["transcript"]["summary"] = json!("x".repeat(300 * 1024));
    let (status, _) = t.post(&big).await;
    assert_eq!(status, 413);
    let body = serde_json::to_vec(&lead("evt_ct", json!({"email": "a@b.co"}))).unwrap();
    let sig = lb_vendors::signature::sign(t.secret(), chrono::Utc::now().timestamp(), &body);
    let (status, problem) = t
        .post_raw(
            body,
            &[
                ("content-type", "text/plain"),
                ("leadbridge-signature", &sig),
            ],
        )
        .await;
    assert_eq!(status, 400, "{problem}");
}

/// One parse, one truth: a body that names its bot twice (or any key twice) is
/// refused before anything is queued, and the refusal is recorded.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_with_a_duplicate_key_is_refused_with_400_and_recorded() {
    let t = start("dupkey", |_| {}).await;
    let raw = br#"{"event_id":"evt_dupkey","event_type":"lead.created","occurred_at":"2026-05-04T11:23:45Z","bot_id":"bot_a","bot_id":"bot_b","visitor":{"email":"a@b.co"}}"#.to_vec();
    let sig = lb_vendors::signature::sign(t.secret(), chrono::Utc::now().timestamp(), &raw);
    let (status, problem) = t
        .post_raw(
            raw,
            &[
                ("content-type", "application/json"),
                ("leadbridge-signature", &sig),
            ],
        )
        .await;
    assert_eq!(status, 400, "{problem}");
    assert_eq!(problem["type"], "urn:leadbridge:problem:invalid_json");
    assert!(
        problem["detail"]
            .as_str()
            .unwrap_or("")
            .contains("duplicate key \"/bot_id\""),
        "{problem}"
    );
    assert!(t.ledger("evt_dupkey").await.is_none(), "nothing accepted");
    let ops = lb_local::ops::OpsTarget::from_stack(&t.stack.info)
        .connect()
        .await;
    let rejected = ops
        .list(&lb_pipeline::ListFilter::status(
            lb_pipeline::LedgerStatus::Rejected,
        ))
        .await
        .expect("list");
    assert_eq!(rejected.len(), 1, "{rejected:?}");
    assert_eq!(
        rejected[0].last_error.as_ref().unwrap().code,
        "invalid_json"
    );
}

/// Size is checked on what is stored: a body under the HTTP cap whose queue
/// message (with room for a dead letter's attributes) would not fit SQS is
/// refused up front with 413 and recorded, never accepted and then lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lead_whose_queue_message_would_not_fit_is_refused_with_413() {
    let t = start("toobig", |_| {}).await;
    let line =
        |n: usize| json!({"at": "2026-05-04T11:20:01Z", "from": "visitor", "text": "x".repeat(n)});
    let mut ev = lead("evt_toobig", json!({"email": "big@example.com"}));
    ev["transcript"]["lines"] = json!([line(63_500), line(63_500), line(63_500), line(63_500)]);
    let body = serde_json::to_vec(&ev).unwrap();
    assert!(
        body.len() < lb_vendors::canonical::MAX_BODY_BYTES,
        "under the HTTP cap: {}",
        body.len()
    );
    let (status, problem) = t.post(&ev).await;
    assert_eq!(status, 413, "{problem}");
    assert_eq!(problem["type"], "urn:leadbridge:problem:payload_too_large");
    assert!(t.ledger("evt_toobig").await.is_none(), "nothing accepted");
    let ops = lb_local::ops::OpsTarget::from_stack(&t.stack.info)
        .connect()
        .await;
    let rejected = ops
        .list(&lb_pipeline::ListFilter::status(
            lb_pipeline::LedgerStatus::Rejected,
        ))
        .await
        .expect("list");
    assert_eq!(rejected.len(), 1);
    assert_eq!(
        rejected[0].last_error.as_ref().unwrap().code,
        "payload_too_large"
    );
    // the same lead with a shorter transcript is taken, and syncs
    ev["event_id"] = json!("evt_fits");
    ev["transcript"]["lines"] = json!([line(63_500), line(63_500), line(63_500)]);
    let (status, body) = t.post(&ev).await;
    assert_eq!(status, 202, "{body}");
    t.wait_status("evt_fits", lb_pipeline::LedgerStatus::Synced)
        .await;
}

/// A duplicate delivery (a vendor's retry) costs one conditional write: the
/// ledger's refusal carries what it holds, and nothing else is read or written.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_duplicate_delivery_costs_one_dynamodb_request() {
    // The worker is paused: only ingest talks to DynamoDB.
    let t = start("dupcost", |o| o.worker_paused = true).await;
    let ev = lead("evt_dup_cost", json!({"email": "dup.cost@example.com"}));
    let (status, body) = t.post(&ev).await;
    assert_eq!(status, 202, "{body}");
    let before = t.stack.dynamodb_requests.get();
    let (status, body) = t.post(&ev).await;
    assert_eq!(
        (status, body["duplicate"].as_bool()),
        (202, Some(true)),
        "{body}"
    );
    assert_eq!(t.stack.dynamodb_requests.get() - before, 1);
}

/// The worker's side: a redelivered message of a synced delivery costs its
/// `begin` alone, the refusal carrying what the ledger holds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redelivered_synced_message_costs_the_worker_one_dynamodb_request() {
    let t = start("redelivcost", |_| {}).await;
    let ev = lead("evt_redeliv", json!({"email": "redeliv@example.com"}));
    let (status, body) = t.post(&ev).await;
    assert_eq!(status, 202, "{body}");
    let rec = t
        .wait_status("evt_redeliv", lb_pipeline::LedgerStatus::Synced)
        .await;
    let event = lb_vendors::canonical::parse(&serde_json::to_vec(&ev).unwrap()).expect("valid");
    let mut queued = lb_domain::QueuedLead::new(event, chrono::Utc::now()).expect("identity");
    // The message the queue hands the worker again: the one ingest queued.
    queued.payload_hash = rec.payload_hash.expect("hash");
    let ledger = t.stack.ledger();
    let before = t.stack.dynamodb_requests.get();
    let now = chrono::Utc::now();
    let begun = ledger
        .begin(
            &queued,
            &queued.to_json(),
            now,
            now + chrono::Duration::seconds(60),
        )
        .await
        .expect("begin");
    assert!(
        matches!(begun, lb_pipeline::Begin::AlreadySynced(_)),
        "{begun:?}"
    );
    assert_eq!(t.stack.dynamodb_requests.get() - before, 1);
}
