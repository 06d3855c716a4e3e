//! The DynamoDB ledger adapter against the ledger's contract: the suite the
//! in-memory fake runs too (`lb_pipeline::contract`), here on moto, in a table
//! created with the template's settings.

use std::sync::Arc;

use lb_aws::{aws_sdk_dynamodb, DynamoLedger};
use lb_local::moto::Moto;
use lb_local::resources::{self, Names};
use lb_pipeline::contract::ledger_contract;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dynamodb_ledger_keeps_the_ledger_contract() {
    let moto = Moto::shared().expect("moto server (run `make venv` first)");
    let sdk = lb_aws::sdk_config_for(&moto.endpoint, "us-east-1").await;
    let run = format!("t{}-ledger", rand::random::<u32>());
    let created = resources::create(&sdk, &Names::new(&run), "whsec_contract", "pat-contract")
        .await
        .expect("the stack's resources are created");
    let ledger = DynamoLedger::new(aws_sdk_dynamodb::Client::new(&sdk), &created.table_name);
    ledger_contract(Arc::new(ledger), &run).await;
}

/// A request DynamoDB will never take (an item over 400 KB) is a refusal, not
/// an outage: the worker dead-letters instead of retrying it forever.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_item_dynamodb_refuses_is_a_permanent_error() {
    use lb_pipeline::Ledger;
    let moto = Moto::shared().expect("moto server (run `make venv` first)");
    let sdk = lb_aws::sdk_config_for(&moto.endpoint, "us-east-1").await;
    let run = format!("t{}-refused", rand::random::<u32>());
    let created = resources::create(&sdk, &Names::new(&run), "whsec_x", "pat-x")
        .await
        .expect("resources");
    let ledger = DynamoLedger::new(aws_sdk_dynamodb::Client::new(&sdk), &created.table_name);
    let lead = lb_pipeline::fakes::sample_lead("evt_huge", "a@b.co");
    let huge = "x".repeat(500 * 1024);
    let err = ledger
        .record_received(&lead, &huge, chrono::Utc::now())
        .await
        .expect_err("DynamoDB refuses a 500 KB item");
    assert!(err.is_permanent(), "{err}");
    assert!(err.to_string().contains("ValidationException"), "{err}");
}

/// The shared access token on DynamoDB: one instance at a time holds the
/// refresh lease; sharing a token ends it; an expired lease is taken over; the
/// item outlives its token by a day (TTL), never longer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_token_lease_is_held_by_one_instance_and_sharing_ends_it() {
    use chrono::{Duration, Utc};
    use lb_pipeline::{SharedToken, TokenShare};
    let moto = Moto::shared().expect("moto server (run `make venv` first)");
    let sdk = lb_aws::sdk_config_for(&moto.endpoint, "us-east-1").await;
    let run = format!("t{}-token", rand::random::<u32>());
    let created = resources::create(&sdk, &Names::new(&run), "whsec_x", "pat-x")
        .await
        .expect("resources");
    let client = aws_sdk_dynamodb::Client::new(&sdk);
    let ledger = DynamoLedger::new(client.clone(), &created.table_name);
    let now = Utc::now();
    assert_eq!(ledger.shared_token("zoho").await.unwrap(), None);
    assert!(ledger
        .lease_refresh("zoho", now + Duration::seconds(30))
        .await
        .unwrap());
    assert!(
        !ledger
            .lease_refresh("zoho", now + Duration::seconds(30))
            .await
            .unwrap(),
        "another instance waits while one refreshes"
    );
    let token = SharedToken {
        value: "tok-1".into(),
        api_domain: Some("https://www.zohoapis.eu".into()),
        expires_at: now + Duration::hours(1),
        refresh_at: now + Duration::minutes(59),
    };
    ledger.share_token("zoho", &token).await.unwrap();
    assert_eq!(
        ledger.shared_token("zoho").await.unwrap(),
        Some(token.clone())
    );
    assert!(
        ledger
            .lease_refresh("zoho", now + Duration::seconds(30))
            .await
            .unwrap(),
        "sharing ended the lease"
    );
    // A holder that crashed: its lease runs out and the next instance takes over.
    assert!(!ledger
        .lease_refresh("zoho", now + Duration::seconds(30))
        .await
        .unwrap());
    assert!(ledger
        .lease_refresh("other", now - Duration::seconds(1))
        .await
        .unwrap());
    assert!(
        ledger
            .lease_refresh("other", now + Duration::seconds(30))
            .await
            .unwrap(),
        "an expired lease is taken over"
    );
    let item = client
        .get_item()
        .table_name(&created.table_name)
        .key(
            "pk",
            aws_sdk_dynamodb::types::AttributeValue::S("TOKEN#zoho".into()),
        )
        .key(
            "sk",
            aws_sdk_dynamodb::types::AttributeValue::S("TOKEN".into()),
        )
        .send()
        .await
        .unwrap();
    let ttl: i64 = item.item().unwrap()["expires_at"]
        .as_n()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(ttl, (token.expires_at + Duration::days(1)).timestamp());
}

/// moto serves DynamoDB from a process of its own behind the one endpoint
/// (`scripts/moto_server.py`): the table written through the endpoint is the
/// one the DynamoDB process serves directly, and conditional writes through
/// both paths still meet one at a time (one lease for twenty tries).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dynamodb_has_its_own_moto_process_behind_the_one_endpoint() {
    use lb_pipeline::{Begin, Ledger, Received};
    let moto = Moto::shared().expect("moto server (run `make venv` first)");
    assert_ne!(moto.endpoint, moto.dynamodb_endpoint, "two processes");
    let sdk = lb_aws::sdk_config_for(&moto.endpoint, "us-east-1").await;
    let run = format!("t{}-split", rand::random::<u32>());
    let created = resources::create(&sdk, &Names::new(&run), "whsec_x", "pat-x")
        .await
        .expect("resources");
    let direct = aws_sdk_dynamodb::Client::from_conf(
        aws_sdk_dynamodb::config::Builder::from(&sdk)
            .endpoint_url(&moto.dynamodb_endpoint)
            .build(),
    );
    let through: Arc<dyn Ledger> = Arc::new(DynamoLedger::new(
        aws_sdk_dynamodb::Client::new(&sdk),
        &created.table_name,
    ));
    let own: Arc<dyn Ledger> = Arc::new(DynamoLedger::new(direct, &created.table_name));
    let lead = lb_pipeline::fakes::sample_lead("evt_split", "a@b.co");
    let now = chrono::Utc::now();
    let body = lead.to_json();
    assert!(matches!(
        through.record_received(&lead, &body, now).await.unwrap(),
        Received::New
    ));
    assert!(matches!(
        own.record_received(&lead, &body, now).await.unwrap(),
        Received::Existing(_)
    ));
    let tries = (0..20).map(|i| {
        let ledger = if i % 2 == 0 {
            through.clone()
        } else {
            own.clone()
        };
        let (lead, body) = (lead.clone(), body.clone());
        tokio::spawn(async move {
            ledger
                .begin(&lead, &body, now, now + chrono::Duration::minutes(5))
                .await
                .unwrap()
        })
    });
    let mut leases = 0;
    for t in tries {
        if matches!(t.await.unwrap(), Begin::Proceed { .. }) {
            leases += 1;
        }
    }
    assert_eq!(leases, 1, "one holder of the lease");
}

/// `LEADBRIDGE_MOTO_SINGLE=1`'s moto: one process, one endpoint for DynamoDB
/// too, and the ledger keeps its contract on it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_single_process_moto_serves_dynamodb_itself() {
    let moto = Moto::start_with(0, true).expect("moto server (run `make venv` first)");
    assert_eq!(moto.endpoint, moto.dynamodb_endpoint, "one process");
    let sdk = lb_aws::sdk_config_for(&moto.endpoint, "us-east-1").await;
    let created = resources::create(&sdk, &Names::new("single"), "whsec_x", "pat-x")
        .await
        .expect("resources");
    let ledger = DynamoLedger::new(aws_sdk_dynamodb::Client::new(&sdk), &created.table_name);
    ledger_contract(Arc::new(ledger), "single").await;
}

/// Asks the process serving DynamoDB (`scripts/moto_server.py`) to leave part
/// of the next batch calls unprocessed; answers what is still pending.
async fn unprocessed_faults(moto: &Moto, ask: serde_json::Value) -> serde_json::Value {
    reqwest::Client::new()
        .post(format!(
            "{}/__leadbridge/dynamodb-faults",
            moto.dynamodb_endpoint
        ))
        .json(&ask)
        .send()
        .await
        .expect("moto answers")
        .json()
        .await
        .expect("json")
}

/// DynamoDB may take part of a `BatchWriteItem` or `BatchGetItem` and hand the
/// rest back unprocessed: the ledger sends the rest again (after a pause) until
/// all is written and read, and says so when DynamoDB keeps handing it back.
/// (A moto of its own: the faults are the DynamoDB process's, for any caller.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_dynamodb_leaves_unprocessed_is_sent_again() {
    use chrono::{Duration, Utc};
    use lb_pipeline::{Ledger, Locked, PersonLock, PersonRelease, Written};
    let moto = Moto::start(0).expect("moto server (run `make venv` first)");
    let sdk = lb_aws::sdk_config_for(&moto.endpoint, "us-east-1").await;
    let created = resources::create(&sdk, &Names::new("unprocessed"), "whsec_x", "pat-x")
        .await
        .expect("resources");
    let ledger = DynamoLedger::new(aws_sdk_dynamodb::Client::new(&sdk), &created.table_name);
    let now = Utc::now();
    let until = now + Duration::minutes(1);
    let hashes: Vec<String> = (0..4).map(|i| format!("h{i}")).collect();
    let lock = PersonLock {
        crm: "hubspot".into(),
        holder: "evt_u@hubspot".into(),
        until,
        record: None,
        claim: hashes.clone(),
    };
    assert!(matches!(
        ledger.lock_person(&lock, now).await.expect("lock"),
        Locked::Held { .. }
    ));

    // The new record and its four links: one BatchWriteItem of five items,
    // taken one at a time twice, then the rest.
    unprocessed_faults(
        &moto,
        serde_json::json!({"BatchWriteItem": 2, "BatchGetItem": 2}),
    )
    .await;
    let release = PersonRelease {
        crm: "hubspot".into(),
        holder: "evt_u@hubspot".into(),
        written: Some(Written {
            record: "rec-1".into(),
            link: hashes.clone(),
            applied: Some(now),
            replaces: None,
            created: true,
        }),
        records: vec![],
        claims: hashes.clone(),
        held_until: until,
    };
    ledger
        .release_person(&release, now)
        .await
        .expect("released");
    assert_eq!(
        ledger.identities("hubspot", &hashes).await.expect("read"),
        vec![Some("rec-1".to_string()); 4],
        "every link written and read back"
    );
    assert_eq!(
        unprocessed_faults(&moto, serde_json::json!({})).await,
        serde_json::json!({"BatchWriteItem": 0, "BatchGetItem": 0}),
        "both calls were handed part of their batch back"
    );

    // DynamoDB that keeps handing keys back: an error after five rounds, not a
    // lead written as if nobody were known.
    let many: Vec<String> = (0..8).map(|i| format!("h{i}")).collect();
    unprocessed_faults(&moto, serde_json::json!({"BatchGetItem": 10})).await;
    let err = ledger
        .identities("hubspot", &many)
        .await
        .expect_err("keys left unprocessed");
    assert!(err.to_string().contains("unprocessed"), "{err}");
    assert!(!err.is_permanent(), "an outage, retried later: {err}");
}
