//! Lambda entry point: API Gateway (HTTP API: `POST /v1/events`, `GET /v1/events/{event_id}`,
//! `POST`/`GET /v1/sources/{source}`, `GET /console` and `/v1/console/…`)
//! → [`ingest::handle`], which routes by method and path.

use std::sync::Arc;

use ingest::{handle, Ingest, IngestEnv, WebhookRequest};
use lambda_http::{service_fn, Body, Error, Request};
use lb_aws::{
    aws_sdk_dynamodb, aws_sdk_secretsmanager, aws_sdk_sns, aws_sdk_sqs, DynamoLedger,
    SecretsManagerStore, SnsAlerts, SqsLeadQueue,
};

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_http::tracing::init_default_subscriber();
    let env = IngestEnv::from_env()?;
    // A bad config file stops the cold start with every error and its line.
    let config = lb_config::Config::from_env()?.map(Arc::new);
    let cfg = lb_aws::sdk_config().await;
    let app = Arc::new(Ingest::new(
        Arc::new(DynamoLedger::new(
            aws_sdk_dynamodb::Client::new(&cfg),
            &env.table_name,
        )),
        Arc::new(
            SqsLeadQueue::new(aws_sdk_sqs::Client::new(&cfg), &env.queue_url, &env.dlq_url)
                .with_bulk(env.bulk_queue_url.clone()),
        ),
        Arc::new(SecretsManagerStore::new(
            aws_sdk_secretsmanager::Client::new(&cfg),
        )),
        Arc::new(SnsAlerts::new(
            aws_sdk_sns::Client::new(&cfg),
            &env.alerts_topic_arn,
        )),
        config,
        &env,
    ));
    // Secrets and connections during init, not on the first (timed) webhook.
    app.warm_up().await;
    let metrics = lb_aws::emf::install();
    lambda_http::run(service_fn(move |req: Request| {
        let app = app.clone();
        async move {
            let (parts, body) = req.into_parts();
            let body = match body {
                Body::Empty => vec![],
                Body::Text(t) => t.into_bytes(),
                Body::Binary(b) => b,
                _ => vec![],
            };
            let request =
                WebhookRequest::from_http(&parts.method, "https", &parts.uri, &parts.headers, body);
            let r = handle(&app, &request, chrono::Utc::now()).await;
            lb_aws::emf::flush(metrics);
            Ok::<_, Error>(r.into_http().map(Body::Text))
        }
    }))
    .await
}
