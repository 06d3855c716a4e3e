//! Lambda entry point: SQS (leads FIFO queue) → [`worker::handle`].

use std::sync::Arc;
use std::time::Duration;

use lambda_runtime::{service_fn, Error, LambdaEvent};
use lb_aws::{
    aws_sdk_dynamodb, aws_sdk_secretsmanager, aws_sdk_sns, aws_sdk_sqs, DynamoLedger,
    SecretsManagerStore, SnsAlerts, SqsLeadQueue,
};
use lb_crm::{default_mapping, HubSpotConfig, HubSpotCrm};
use lb_pipeline::secrets::CachedSecret;
use lb_pipeline::{Connections, SecretStore};
use worker::{dispatch, WorkerApp, WorkerEnv};

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_runtime::tracing::init_default_subscriber();
    let env = WorkerEnv::from_env()?;
    // A bad config file stops the cold start with every error and its line.
    let config = lb_config::Config::from_env()?;
    let cfg = lb_aws::sdk_config().await;
    let secrets: Arc<dyn SecretStore> = Arc::new(SecretsManagerStore::new(
        aws_sdk_secretsmanager::Client::new(&cfg),
    ));
    // With a config file: every connection it names; without: the one HubSpot portal
    // of the environment (HUBSPOT_*).
    let ledger = Arc::new(DynamoLedger::new(
        aws_sdk_dynamodb::Client::new(&cfg),
        &env.table_name,
    ));
    // Every instance counts its CRM calls in the ledger table: together they
    // stay under each connection's rate limit.
    let (crm, slowest): (Arc<dyn Connections>, Duration) = match &config {
        Some(c) => (
            Arc::new(lb_crm::connections::from_config(
                c,
                secrets,
                env.secret_ttl,
                Some(lb_crm::connections::Shared::through(ledger.clone())),
            )?),
            c.connections
                .values()
                .map(|c| c.timeout)
                .max()
                .unwrap_or(env.hubspot_timeout),
        ),
        None => {
            let token = Arc::new(CachedSecret::new(
                secrets,
                &env.hubspot_secret_id,
                env.secret_ttl,
            ));
            let hubspot = HubSpotConfig {
                base_url: env.hubspot_base_url.clone(),
                timeout: env.hubspot_timeout,
                mapping: default_mapping(
                    env.hubspot_lead_source_property.as_deref(),
                    env.hubspot_context_properties,
                    env.hubspot_answer_properties,
                ),
                ..Default::default()
            };
            (
                Arc::new(HubSpotCrm::new(hubspot, token)?.with_throttle(
                    lb_pipeline::throttle::Throttle::new(
                        ledger.clone(),
                        "hubspot",
                        lb_config::Throttling::default(),
                    ),
                )),
                env.hubspot_timeout,
            )
        }
    };
    let app = Arc::new(WorkerApp {
        ledger,
        queue: Arc::new(
            SqsLeadQueue::new(aws_sdk_sqs::Client::new(&cfg), &env.queue_url, &env.dlq_url)
                .with_bulk(env.bulk_queue_url.clone()),
        ),
        crm,
        alerts: Arc::new(SnsAlerts::new(
            aws_sdk_sns::Client::new(&cfg),
            &env.alerts_topic_arn,
        )),
        policy: env.policy,
        safety_margin: slowest + Duration::from_secs(2),
        hooks: lb_pipeline::hooks::Hooks::NONE,
    });
    // During init, not on the first lead: the token, the schema, the TLS handshake.
    app.warm_up().await;
    let metrics = lb_aws::emf::install();
    lambda_runtime::run(service_fn(move |ev: LambdaEvent<serde_json::Value>| {
        let app = app.clone();
        async move {
            let r = dispatch(app, ev).await;
            lb_aws::emf::flush(metrics);
            r
        }
    }))
    .await
}
