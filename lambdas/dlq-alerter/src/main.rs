//! Lambda entry point: SQS (dead-letter queue) → [`dlq_alerter::handle`].

use std::sync::Arc;

use dlq_alerter::{handle, AlerterApp, AlerterEnv};
use lambda_runtime::{service_fn, Error, LambdaEvent};
use lb_aws::{aws_sdk_dynamodb, aws_sdk_sns, aws_sdk_sqs, DynamoLedger, SnsAlerts, SqsLeadQueue};

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_runtime::tracing::init_default_subscriber();
    let env = AlerterEnv::from_env()?;
    let cfg = lb_aws::sdk_config().await;
    let app = Arc::new(AlerterApp {
        ledger: Arc::new(DynamoLedger::new(
            aws_sdk_dynamodb::Client::new(&cfg),
            &env.table_name,
        )),
        alerts: Arc::new(SnsAlerts::new(
            aws_sdk_sns::Client::new(&cfg),
            &env.topic_arn,
        )),
        queue: Arc::new(
            SqsLeadQueue::new(aws_sdk_sqs::Client::new(&cfg), &env.queue_url, &env.dlq_url)
                .with_bulk(env.bulk_queue_url.clone()),
        ),
    });
    let metrics = lb_aws::emf::install();
    lambda_runtime::run(service_fn(move |ev: LambdaEvent<_>| {
        let app = app.clone();
        async move {
            let r = handle(app, ev).await;
            lb_aws::emf::flush(metrics);
            r
        }
    }))
    .await
}
