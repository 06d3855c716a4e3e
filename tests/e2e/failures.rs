use lb_pipeline::LedgerStatus;
use lb_tests::{eventually, lead, start};
use reqwest::Method;
use serde_json::json;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hubspot_503s_then_recovery_syncs_the_lead_after_retries() {
    let t = start("flaky", |_| {}).await;
    t.admin(
        Method::POST,
        "faults",
        Some(json!({"kind": "error", "status": 503, "probability": 1.0, "count": 3})),
    )
    .await;
    let (status, _) = t
        .post(&lead("evt_flaky", json!({"email": "flaky@x.io"})))
        .await;
    assert_eq!(status, 202);
    let rec = t.wait_status("evt_flaky", LedgerStatus::Synced).await;
    assert!(
        rec.attempts >= 2,
        "synced after retries, attempts = {}",
        rec.attempts
    );
    assert_eq!(t.hubspot_all("contacts", "").await.len(), 1);
    assert_eq!(
        t.hubspot_all("notes", "").await.len(),
        1,
        "retries wrote no second note"
    );
    let stats = t.admin(Method::GET, "stats", None).await;
    assert_eq!(stats["faulted"], 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_property_is_dead_lettered_as_schema_drift_with_one_alert() {
    let t = start("dead", |_| {}).await;
    let mut ev = lead(
        "evt_dead",
        json!({"email": "priya.sharma@acmecorp.in", "name": "Priya Sharma"}),
    );
    ev["answers"] = json!({"favourite_colour": "teal"});
    let (status, _) = t.post(&ev).await;
    assert_eq!(status, 202);
    let rec = t.wait_status("evt_dead", LedgerStatus::Dead).await;
    let err = rec.last_error.expect("last error");
    // Stopped by the schema check before anything was written.
    assert_eq!(err.code, "schema_drift");
    assert_eq!(err.http_status, None);
    assert!(
        err.message.contains(
            "property \"favourite_colour\": the property does not exist \
             (mapped from answers.favourite_colour)"
        ),
        "{}",
        err.message
    );
    assert!(!err.message.contains("teal"), "no visitor values");
    assert!(
        rec.payload
            .as_deref()
            .is_some_and(|p| p.contains("evt_dead")),
        "the payload is kept for replay"
    );
    assert_eq!(rec.attempts, 1, "a permanent error is not retried");

    let alerts = eventually("one SNS alert", Duration::from_secs(20), || async {
        let a = t.alerts().await;
        (!a.is_empty()).then_some(a)
    })
    .await;
    assert_eq!(alerts.len(), 1, "{alerts:?}");
    let (subject, message) = &alerts[0];
    assert!(
        subject.contains("1 lead could not be delivered to hubspot"),
        "{subject}"
    );
    assert!(message.contains("evt_dead") && message.contains("bot_acme_pricing"));
    assert!(
        message.contains("property \"favourite_colour\": the property does not exist"),
        "{message}"
    );
    assert!(message.contains("p***@acmecorp.in"));
    assert!(
        !message.contains("priya.sharma@acmecorp.in"),
        "alerts are PII-masked: {message}"
    );
    assert!(!message.contains("Priya Sharma"));
    assert_eq!(t.hubspot_all("contacts", "").await.len(), 0);
    // nothing more arrives
    assert!(t.alerts().await.is_empty());
}

/// A 429 burst (HubSpot's body and rate-limit headers, injected so that it
/// happens whatever the machine's speed) on top of a tight real limit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leads_over_the_rate_limit_are_all_synced_once_without_loss() {
    let t = start("rate", |o| {
        o.sim.rate_limit_max = 4;
        o.sim.rate_limit_window_ms = 1_000;
    })
    .await;
    t.admin(
        Method::POST,
        "faults",
        Some(json!({"kind": "error", "status": 429, "probability": 1.0, "count": 3})),
    )
    .await;
    for i in 0..8 {
        let (s, _) = t
            .post(&lead(
                &format!("evt_rl_{i}"),
                json!({"email": format!("p{i}@rate.io")}),
            ))
            .await;
        assert_eq!(s, 202);
    }
    let mut attempts = 0;
    for i in 0..8 {
        attempts += t
            .wait_status(&format!("evt_rl_{i}"), LedgerStatus::Synced)
            .await
            .attempts;
    }
    let stats = t.admin(Method::GET, "stats", None).await;
    assert_eq!(stats["faulted"], 3, "{stats}");
    // Each 429 was waited out and retried, and none of them used up an attempt
    // (RETRY_MAX_ATTEMPTS counts real attempts only).
    assert_eq!(
        attempts, 8,
        "a 429 is not an attempt: {attempts} for 8 leads"
    );
    assert_eq!(t.hubspot_all("contacts", "").await.len(), 8);
    assert_eq!(t.hubspot_all("notes", "").await.len(), 8);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lead_that_keeps_failing_is_dead_lettered_after_the_attempt_cap() {
    let t = start("cap", |o| {
        o.policy.max_attempts = 3;
        o.policy.base = Duration::from_millis(100);
        o.policy.cap = Duration::from_millis(300);
    })
    .await;
    t.admin(
        Method::POST,
        "faults",
        Some(json!({"kind": "error", "status": 502, "probability": 1.0})),
    )
    .await;
    let (s, _) = t.post(&lead("evt_cap", json!({"email": "cap@x.io"}))).await;
    assert_eq!(s, 202);
    let rec = t.wait_status("evt_cap", LedgerStatus::Dead).await;
    assert_eq!(rec.attempts, 3);
    let err = rec.last_error.unwrap();
    assert_eq!(err.code, "retries_exhausted");
    assert_eq!(err.http_status, Some(502));
    assert!(
        err.message
            .starts_with("gave up after 3 attempts; last error: "),
        "{}",
        err.message
    );
    t.alert_where("the alert", |_, body| {
        body.contains("evt_cap") && body.contains("retries_exhausted")
    })
    .await;
}

/// A message on the leads queue that is not a lead (poison) is dead-lettered at
/// once and reaches an alert that names it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_poison_message_reaches_an_alert() {
    let t = start("poison", |_| {}).await;
    let sqs = aws_sdk_sqs::Client::new(&t.stack.sdk);
    let sent = sqs
        .send_message()
        .queue_url(&t.stack.info.queue_url)
        .message_body("{\"not\": \"a lead\"}")
        .message_group_id("poison")
        .message_deduplication_id("poison-1")
        .send()
        .await
        .expect("sent");
    assert!(sent.message_id().is_some());
    t.alert_where("the alert", |_, body| {
        body.contains("poison_message")
            && body.contains("not a leadbridge queue message")
            && body.contains("event sqs:")
    })
    .await;
}

/// A token without a scope the lead needs: HubSpot's 403 MISSING_SCOPES is a
/// dead letter whose reason names the scope (the simulator checks scopes per
/// endpoint as HubSpot's specs give them).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_missing_a_scope_dead_letters_naming_the_scope() {
    let t = start("scopes", |o| {
        o.sim.scopes = crm_sim::hubspot::SCOPES
            .iter()
            .filter(|s| **s != "crm.objects.contacts.read")
            .map(|s| s.to_string())
            .collect();
    })
    .await;
    // a phone-only lead needs a search, which needs contacts.read
    t.post(&lead("evt_scope", json!({"phone": "+1 415 555 0142"})))
        .await;
    let rec = t.wait_status("evt_scope", LedgerStatus::Dead).await;
    let err = rec.last_error.expect("reason");
    assert_eq!(
        (err.code.as_str(), err.http_status),
        ("crm_rejected", Some(403)),
        "{err:?}"
    );
    assert!(
        err.message.contains("crm.objects.contacts.read"),
        "{}",
        err.message
    );
}

/// Outages are ridden out, not dead-lettered: the default schedule (2 s base,
/// 1 h cap, 16 attempts) spans at least 2.5 h; scaled down 1,000 times, a
/// two-hour outage (7.2 s) ends with every lead synced, none dead, no replay.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_two_hour_outage_on_a_scaled_schedule_is_ridden_out_without_a_dead_letter() {
    let scale = 1_000;
    let production = lb_pipeline::retry::RetryPolicy::default();
    let policy = lb_pipeline::retry::RetryPolicy {
        base: production.base / scale,
        cap: production.cap / scale,
        max_attempts: production.max_attempts,
    };
    let outage = Duration::from_secs(2 * 3600) / scale;
    assert!(policy.span().0 > outage, "{:?}", policy.span());
    let t = start("outage2h", |o| o.policy = policy).await;
    t.admin(
        Method::POST,
        "faults",
        Some(json!({"kind": "error", "status": 503, "probability": 1.0})),
    )
    .await;
    let started = std::time::Instant::now();
    let ids: Vec<String> = (0..5).map(|i| format!("evt_out_{i}")).collect();
    for (i, id) in ids.iter().enumerate() {
        let (s, _) = t
            .post(&lead(id, json!({"email": format!("out{i}@example.com")})))
            .await;
        assert_eq!(s, 202);
    }
    tokio::time::sleep(outage.saturating_sub(started.elapsed())).await;
    t.admin(Method::DELETE, "faults", None).await;
    for id in &ids {
        let rec = eventually(&format!("{id} synced"), Duration::from_secs(60), || async {
            t.ledger(id)
                .await
                .filter(|r| matches!(r.status, LedgerStatus::Synced | LedgerStatus::Dead))
        })
        .await;
        assert_eq!(rec.status, LedgerStatus::Synced, "{id}: {rec:?}");
        assert_eq!(rec.replays, 0, "no replay was needed");
        assert!(rec.attempts > 1, "{id} waited out the outage: {rec:?}");
    }
    assert!(t.alerts().await.is_empty(), "nothing was dead-lettered");
}

/// A delivery for a connection the worker does not have (the config changed
/// between ingest and the worker) is dead-lettered as `unknown_connection` and
/// reaches an alert.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delivery_for_an_unknown_connection_reaches_an_alert() {
    let hs = format!("e2e-{}/hubspot", rand::random::<u32>());
    let t = start("unknownconn", |o| {
        o.secrets = vec![(hs.clone(), o.sim.token.clone())];
        o.config_toml = Some(format!(
            "version = 1\n\n[connections.hubspot]\nkind = \"hubspot\"\nsecret = \"{hs}\"\n\
             base_url = \"{{hubspot_url}}\"\n\n[[routes]]\nbot_id = \"*\"\nconnections = [\"hubspot\"]\n"
        ));
    })
    .await;
    let lead = lb_pipeline::fakes::sample_lead("evt_gone", "gone@example.com").for_delivery(
        lb_domain::Delivery {
            connection: "salesforce".into(),
            lead_source: None,
            object: "contact".into(),
            split_name: None,
        },
    );
    let queue = lb_aws::SqsLeadQueue::new(
        aws_sdk_sqs::Client::new(&t.stack.sdk),
        &t.stack.info.queue_url,
        &t.stack.info.dlq_url,
    );
    lb_pipeline::LeadQueue::enqueue(&queue, &lead)
        .await
        .expect("queued");
    let rec = t
        .wait_status("evt_gone@salesforce", LedgerStatus::Dead)
        .await;
    assert_eq!(rec.last_error.expect("reason").code, "unknown_connection");
    t.alert_where("the alert", |_, body| {
        body.contains("unknown_connection") && body.contains("salesforce")
    })
    .await;
}

/// A lead the queue redrove to the DLQ after `maxReceiveCount` receives (the
/// worker never completed it; its last attempt failed) reaches an alert as
/// `max_receive_count_exceeded` with the last error, and the ledger has it dead.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lead_redriven_after_max_receive_count_reaches_an_alert() {
    let t = start("redrive", |_| {}).await;
    let lead = lb_pipeline::fakes::sample_lead("evt_redriven", "redriven@example.com");
    let ledger = t.stack.ledger();
    let now = chrono::Utc::now();
    ledger
        .begin(
            &lead,
            &lead.for_ledger().to_json(),
            now,
            now + chrono::Duration::seconds(30),
        )
        .await
        .expect("begin");
    ledger
        .fail(
            &lead.delivery_id(),
            &lb_pipeline::fakes::transient(503).reason(),
            now + chrono::Duration::seconds(60),
            true,
            now,
        )
        .await
        .expect("fail");
    // What SQS's redrive does: the same message, on the DLQ, without the
    // attributes the worker's own dead letters carry.
    aws_sdk_sqs::Client::new(&t.stack.sdk)
        .send_message()
        .queue_url(&t.stack.info.dlq_url)
        .message_body(lead.to_json())
        .message_group_id(lead.group_id())
        .message_deduplication_id("redrive-1")
        .send()
        .await
        .expect("sent");
    let (_, body) = t
        .alert_where("the alert", |_, body| {
            body.contains("max_receive_count_exceeded") && body.contains("evt_redriven")
        })
        .await;
    assert!(body.contains("HTTP 503"), "the last error: {body}");
    assert!(!body.contains("redriven@example.com"), "masked: {body}");
    let rec = t.wait_status("evt_redriven", LedgerStatus::Dead).await;
    assert_eq!(
        rec.last_error.expect("reason").code,
        "max_receive_count_exceeded"
    );
}

/// HubSpot's daily quota: past 70% one alert; once spent, leads wait (rate
/// limited, never dead) and are written after the quota resets.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_spent_daily_quota_delays_leads_until_it_resets_and_warns_once_at_seventy_percent() {
    let t = start("dailyquota", |o| {
        o.sim.daily_limit = 4;
        o.hubspot_daily_recheck = Duration::from_secs(2);
    })
    .await;
    // The schema read, the upsert and the note: 3 of 4 calls, 75%.
    t.post(&lead("evt_quota_1", json!({"email": "quota1@example.com"})))
        .await;
    t.wait_status("evt_quota_1", LedgerStatus::Synced).await;
    t.alert_where("the quota warning", |s, _| {
        s.contains("hubspot has used 75% of its daily API quota")
    })
    .await;
    // The next lead meets the spent quota: it waits, it is not dead.
    t.post(&lead("evt_quota_2", json!({"email": "quota2@example.com"})))
        .await;
    let waiting = t.wait_status("evt_quota_2", LedgerStatus::Retrying).await;
    assert_eq!(waiting.last_error.expect("reason").code, "crm_rate_limited");
    // Midnight in the account's time zone.
    t.admin(Method::POST, "config", Some(json!({"daily_used": 0})))
        .await;
    let synced = t.wait_status("evt_quota_2", LedgerStatus::Synced).await;
    assert!(synced.outcome.is_some());
    assert_eq!(synced.replays, 0, "written without a replay");
    let dead = t
        .stack
        .ledger()
        .list(&lb_pipeline::ListFilter::status(LedgerStatus::Dead))
        .await
        .unwrap();
    assert!(dead.is_empty(), "nothing dead-lettered: {dead:?}");
}

/// Two worker instances (two adapters, as two Lambda instances have) share one
/// rate limit through the ledger table: together they never go over it, so
/// HubSpot never answers 429, where each alone would see only its own calls.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_worker_instances_share_one_rate_limit_through_the_ledger() {
    use lb_pipeline::{Connections, ContactUpsert, ContactWrite};
    // The configured limit sits a little under HubSpot's: headroom for the
    // network's jitter between a slot taken and the call arriving.
    let t = start("sharedlimit", |o| {
        o.sim.rate_limit_max = 12;
        o.sim.rate_limit_window_ms = 2_000;
    })
    .await;
    let config = lb_config::Config::parse_local(&format!(
        "version = 1\n\n[connections.hubspot]\nkind = \"hubspot\"\nsecret = \"{}\"\n\
         base_url = \"{}\"\nrate_limit = {{ requests = 10, per_seconds = 2 }}\n\n\
         [[routes]]\nbot_id = \"*\"\nconnections = [\"hubspot\"]\n",
        t.stack.info.hubspot_secret_id, t.stack.info.crm.hubspot.base_url
    ))
    .expect("config");
    let instance = || t.stack.another_instance(&config).expect("connections");
    let (a, b) = (instance(), instance());
    let writes = |set: lb_pipeline::CrmSet, who: &'static str| async move {
        let crm = set.crm_for(Some("hubspot")).expect("hubspot");
        let mut ok = 0;
        for i in 0..16 {
            let lead = lb_pipeline::fakes::sample_lead(
                &format!("evt_{who}{i}"),
                &format!("{who}{i}@limit.io"),
            );
            let item = ContactUpsert {
                lead,
                known_id: None,
                write: ContactWrite::Full,
            };
            let answer = crm.upsert_contacts(&[item]).await;
            if answer.iter().all(Result::is_ok) {
                ok += 1;
            }
        }
        ok
    };
    let (ok_a, ok_b) = tokio::join!(tokio::spawn(writes(a, "a")), tokio::spawn(writes(b, "b")));
    assert_eq!((ok_a.unwrap(), ok_b.unwrap()), (16, 16));
    let stats = t.admin(Method::GET, "stats", None).await;
    assert_eq!(stats["rate_limited"], 0, "{stats}");
    assert_eq!(t.hubspot_all("contacts", "").await.len(), 32);
}
