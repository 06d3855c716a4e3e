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
