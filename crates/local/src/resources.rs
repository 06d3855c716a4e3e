//! Creating the stack's AWS resources in moto with the names and settings of
//! `infra/template.yaml` (a test keeps the two in step).

use std::collections::HashMap;

use anyhow::Context;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType, Projection,
    ProjectionType, ScalarAttributeType, TimeToLiveSpecification,
};
use aws_sdk_sqs::types::QueueAttributeName;

/// Settings shared with the SAM template.
pub mod settings {
    pub const WORKER_TIMEOUT_SECS: u64 = 60;
    pub const ALERTER_TIMEOUT_SECS: u64 = 30;
    pub const LEADS_VISIBILITY_SECS: u64 = 6 * WORKER_TIMEOUT_SECS;
    pub const LEADS_RETENTION_SECS: u64 = 345_600;
    pub const MAX_RECEIVE_COUNT: u32 = 40;
    pub const DLQ_VISIBILITY_SECS: u64 = 6 * ALERTER_TIMEOUT_SECS;
    pub const DLQ_RETENTION_SECS: u64 = 1_209_600;
    pub const BATCH_SIZE: i32 = 10;
    /// The bulk lane's batch: the template's `BulkLeads` event.
    pub const BULK_BATCH_SIZE: i32 = 100;
    pub const BULK_BATCHING_WINDOW_SECS: u64 = 10;
    pub const TTL_ATTRIBUTE: &str = "expires_at";
}

/// The names of a stack's resources, all derived from its prefix (`leadbridge`).
#[derive(Debug, Clone)]
pub struct Names {
    pub prefix: String,
}

impl Names {
    pub fn new(prefix: impl Into<String>) -> Self {
        Self {
            prefix: prefix.into(),
        }
    }
    pub fn leads_queue(&self) -> String {
        format!("{}-leads.fifo", self.prefix)
    }
    pub fn dlq(&self) -> String {
        format!("{}-leads-dlq.fifo", self.prefix)
    }
    pub fn bulk_queue(&self) -> String {
        format!("{}-bulk", self.prefix)
    }
    pub fn bulk_dlq(&self) -> String {
        format!("{}-bulk-dlq", self.prefix)
    }
    pub fn table(&self) -> String {
        format!("{}-ledger", self.prefix)
    }
    pub fn topic(&self) -> String {
        format!("{}-alerts", self.prefix)
    }
    /// Local only: an SQS queue subscribed to the alerts topic, so tools can read alerts.
    pub fn alerts_inbox(&self) -> String {
        format!("{}-alerts-inbox", self.prefix)
    }
    pub fn webhook_secret(&self) -> String {
        format!("{}/webhook", self.prefix)
    }
    pub fn hubspot_secret(&self) -> String {
        format!("{}/hubspot", self.prefix)
    }
    pub fn status_api_key_secret(&self) -> String {
        format!("{}/status-api-key", self.prefix)
    }
}

#[derive(Debug, Clone)]
pub struct Created {
    pub queue_url: String,
    pub dlq_url: String,
    pub bulk_queue_url: String,
    pub bulk_dlq_url: String,
    pub table_name: String,
    pub topic_arn: String,
    pub alerts_queue_url: String,
}

async fn queue_arn(sqs: &aws_sdk_sqs::Client, url: &str) -> anyhow::Result<String> {
    let a = sqs
        .get_queue_attributes()
        .queue_url(url)
        .attribute_names(QueueAttributeName::QueueArn)
        .send()
        .await?;
    a.attributes()
        .and_then(|m| m.get(&QueueAttributeName::QueueArn))
        .cloned()
        .context("queue has no ARN")
}

/// Creates (or finds) every resource. Idempotent.
pub async fn create(
    cfg: &aws_config::SdkConfig,
    names: &Names,
    webhook_secret: &str,
    hubspot_token: &str,
) -> anyhow::Result<Created> {
    use settings::*;
    let sqs = aws_sdk_sqs::Client::new(cfg);
    let dlq_url = sqs
        .create_queue()
        .queue_name(names.dlq())
        .set_attributes(Some(HashMap::from([
            (QueueAttributeName::FifoQueue, "true".to_string()),
            (
                QueueAttributeName::ContentBasedDeduplication,
                "false".to_string(),
            ),
            (
                QueueAttributeName::VisibilityTimeout,
                DLQ_VISIBILITY_SECS.to_string(),
            ),
            (
                QueueAttributeName::MessageRetentionPeriod,
                DLQ_RETENTION_SECS.to_string(),
            ),
            (
                QueueAttributeName::MaximumMessageSize,
                lb_domain::queued::MAX_QUEUE_MESSAGE_BYTES.to_string(),
            ),
        ])))
        .send()
        .await
        .context("creating the DLQ")?
        .queue_url
        .context("no DLQ url")?;
    let dlq_arn = queue_arn(&sqs, &dlq_url).await?;
    let redrive =
        serde_json::json!({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": MAX_RECEIVE_COUNT})
            .to_string();
    let queue_url = sqs
        .create_queue()
        .queue_name(names.leads_queue())
        .set_attributes(Some(HashMap::from([
            (QueueAttributeName::FifoQueue, "true".to_string()),
            (
                QueueAttributeName::ContentBasedDeduplication,
                "false".to_string(),
            ),
            (
                QueueAttributeName::VisibilityTimeout,
                LEADS_VISIBILITY_SECS.to_string(),
            ),
            (
                QueueAttributeName::MessageRetentionPeriod,
                LEADS_RETENTION_SECS.to_string(),
            ),
            (
                QueueAttributeName::MaximumMessageSize,
                lb_domain::queued::MAX_QUEUE_MESSAGE_BYTES.to_string(),
            ),
            (QueueAttributeName::RedrivePolicy, redrive),
        ])))
        .send()
        .await
        .context("creating the leads queue")?
        .queue_url
        .context("no queue url")?;
    // The bulk lane: standard queues, otherwise as the real-time lane's.
    let bulk_dlq_url = sqs
        .create_queue()
        .queue_name(names.bulk_dlq())
        .set_attributes(Some(HashMap::from([
            (
                QueueAttributeName::VisibilityTimeout,
                DLQ_VISIBILITY_SECS.to_string(),
            ),
            (
                QueueAttributeName::MessageRetentionPeriod,
                DLQ_RETENTION_SECS.to_string(),
            ),
            (
                QueueAttributeName::MaximumMessageSize,
                lb_domain::queued::MAX_QUEUE_MESSAGE_BYTES.to_string(),
            ),
        ])))
        .send()
        .await
        .context("creating the bulk DLQ")?
        .queue_url
        .context("no bulk DLQ url")?;
    let bulk_redrive = serde_json::json!({
        "deadLetterTargetArn": queue_arn(&sqs, &bulk_dlq_url).await?,
        "maxReceiveCount": MAX_RECEIVE_COUNT
    })
    .to_string();
    let bulk_queue_url = sqs
        .create_queue()
        .queue_name(names.bulk_queue())
        .set_attributes(Some(HashMap::from([
            (
                QueueAttributeName::VisibilityTimeout,
                LEADS_VISIBILITY_SECS.to_string(),
            ),
            (
                QueueAttributeName::MessageRetentionPeriod,
                LEADS_RETENTION_SECS.to_string(),
            ),
            (
                QueueAttributeName::MaximumMessageSize,
                lb_domain::queued::MAX_QUEUE_MESSAGE_BYTES.to_string(),
            ),
            (QueueAttributeName::RedrivePolicy, bulk_redrive),
        ])))
        .send()
        .await
        .context("creating the bulk queue")?
        .queue_url
        .context("no bulk queue url")?;

    let ddb = aws_sdk_dynamodb::Client::new(cfg);
    let table = names.table();
    let exists = ddb.describe_table().table_name(&table).send().await.is_ok();
    if !exists {
        let key = |name: &str, kt: KeyType| {
            KeySchemaElement::builder()
                .attribute_name(name)
                .key_type(kt)
                .build()
        };
        let attr = |name: &str| {
            AttributeDefinition::builder()
                .attribute_name(name)
                .attribute_type(ScalarAttributeType::S)
                .build()
        };
        ddb.create_table()
            .table_name(&table)
            .key_schema(key("pk", KeyType::Hash)?)
            .key_schema(key("sk", KeyType::Range)?)
            .attribute_definitions(attr("pk")?)
            .attribute_definitions(attr("sk")?)
            .attribute_definitions(attr("status")?)
            .attribute_definitions(attr("updated_at")?)
            .global_secondary_indexes(
                GlobalSecondaryIndex::builder()
                    .index_name(lb_aws::STATUS_INDEX)
                    .key_schema(key("status", KeyType::Hash)?)
                    .key_schema(key("updated_at", KeyType::Range)?)
                    .projection(
                        Projection::builder()
                            .projection_type(ProjectionType::All)
                            .build(),
                    )
                    .build()?,
            )
            .billing_mode(BillingMode::PayPerRequest)
            .send()
            .await
            .context("creating the ledger table")?;
        ddb.update_time_to_live()
            .table_name(&table)
            .time_to_live_specification(
                TimeToLiveSpecification::builder()
                    .attribute_name(TTL_ATTRIBUTE)
                    .enabled(true)
                    .build()?,
            )
            .send()
            .await
            .context("enabling TTL")?;
    }

    let sns = aws_sdk_sns::Client::new(cfg);
    let topic_arn = sns
        .create_topic()
        .name(names.topic())
        .send()
        .await
        .context("creating the topic")?
        .topic_arn
        .context("no arn")?;
    let alerts_queue_url = sqs
        .create_queue()
        .queue_name(names.alerts_inbox())
        .send()
        .await?
        .queue_url
        .context("no inbox url")?;
    let inbox_arn = queue_arn(&sqs, &alerts_queue_url).await?;
    sns.subscribe()
        .topic_arn(&topic_arn)
        .protocol("sqs")
        .endpoint(inbox_arn)
        .send()
        .await
        .context("subscribing")?;

    for (name, value) in [
        (
            names.webhook_secret(),
            serde_json::json!({"secrets": [webhook_secret]}).to_string(),
        ),
        (
            names.hubspot_secret(),
            serde_json::json!({"token": hubspot_token}).to_string(),
        ),
    ] {
        put_secret(cfg, &name, &value).await?;
    }
    Ok(Created {
        queue_url,
        dlq_url,
        bulk_queue_url,
        bulk_dlq_url,
        table_name: table,
        topic_arn,
        alerts_queue_url,
    })
}

/// Creates a secret, or overwrites it when it exists. Idempotent.
pub async fn put_secret(cfg: &aws_config::SdkConfig, id: &str, value: &str) -> anyhow::Result<()> {
    let sm = aws_sdk_secretsmanager::Client::new(cfg);
    if sm
        .create_secret()
        .name(id)
        .secret_string(value)
        .send()
        .await
        .is_err()
    {
        sm.put_secret_value()
            .secret_id(id)
            .secret_string(value)
            .send()
            .await
            .with_context(|| format!("storing secret {id}"))?;
    }
    Ok(())
}

/// Stores the status API key as `{"keys": [key]}` in `<prefix>/status-api-key`.
pub async fn create_status_api_key(
    cfg: &aws_config::SdkConfig,
    names: &Names,
    key: &str,
) -> anyhow::Result<()> {
    let value = serde_json::json!({"keys": [key]}).to_string();
    put_secret(cfg, &names.status_api_key_secret(), &value).await
}

#[cfg(test)]
mod tests {
    use super::settings::*;

    /// The local stack must look like the deployed one: compare with the SAM template.
    #[test]
    fn local_settings_match_the_sam_template() {
        let path = crate::workspace_root().join("infra/template.yaml");
        let text = std::fs::read_to_string(&path).expect("infra/template.yaml");
        let t: serde_yaml::Value = serde_yaml::from_str(&text).expect("template parses");
        let props = |r: &str| t["Resources"][r]["Properties"].clone();
        let num = |v: &serde_yaml::Value| {
            v.as_u64()
                .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
        };
        assert_eq!(
            num(&props("LeadsQueue")["VisibilityTimeout"]),
            Some(LEADS_VISIBILITY_SECS)
        );
        assert_eq!(
            num(&props("LeadsQueue")["MessageRetentionPeriod"]),
            Some(LEADS_RETENTION_SECS)
        );
        assert_eq!(
            num(&props("LeadsQueue")["RedrivePolicy"]["maxReceiveCount"]),
            Some(MAX_RECEIVE_COUNT as u64)
        );
        assert_eq!(
            num(&props("LeadsDlq")["VisibilityTimeout"]),
            Some(DLQ_VISIBILITY_SECS)
        );
        for q in ["LeadsQueue", "LeadsDlq"] {
            assert_eq!(
                num(&props(q)["MaximumMessageSize"]),
                Some(lb_domain::queued::MAX_QUEUE_MESSAGE_BYTES as u64),
                "{q}: ingest's size check assumes this maximum"
            );
        }
        assert_eq!(
            num(&props("LeadsDlq")["MessageRetentionPeriod"]),
            Some(DLQ_RETENTION_SECS)
        );
        assert_eq!(
            num(&props("WorkerFunction")["Timeout"]),
            Some(WORKER_TIMEOUT_SECS)
        );
        assert_eq!(
            num(&props("DlqAlerterFunction")["Timeout"]),
            Some(ALERTER_TIMEOUT_SECS)
        );
        assert_eq!(
            props("LedgerTable")["TimeToLiveSpecification"]["AttributeName"].as_str(),
            Some(TTL_ATTRIBUTE)
        );
        let sub = |r: &str, k: &str| format!("{:?}", props(r)[k]);
        assert!(sub("LeadsQueue", "QueueName").contains("${Prefix}-leads.fifo"));
        assert!(sub("LeadsDlq", "QueueName").contains("${Prefix}-leads-dlq.fifo"));
        assert!(sub("BulkQueue", "QueueName").contains("${Prefix}-bulk"));
        assert!(sub("BulkDlq", "QueueName").contains("${Prefix}-bulk-dlq"));
        let bulk =
            &t["Resources"]["WorkerFunction"]["Properties"]["Events"]["BulkLeads"]["Properties"];
        assert_eq!(num(&bulk["BatchSize"]), Some(BULK_BATCH_SIZE as u64));
        assert_eq!(
            num(&bulk["MaximumBatchingWindowInSeconds"]),
            Some(BULK_BATCHING_WINDOW_SECS)
        );
        assert!(sub("LedgerTable", "TableName").contains("${Prefix}-ledger"));
        assert!(sub("AlertsTopic", "TopicName").contains("${Prefix}-alerts"));
        assert!(sub("WebhookSecret", "Name").contains("${Prefix}/webhook"));
        assert!(sub("HubSpotSecret", "Name").contains("${Prefix}/hubspot"));
        assert!(sub("StatusApiKeySecret", "Name").contains("${Prefix}/status-api-key"));
        let ingest_env = &props("IngestFunction")["Environment"]["Variables"];
        assert!(
            format!("{:?}", ingest_env["STATUS_API_KEY_SECRET_ID"]).contains("StatusApiKeySecret"),
            "ingest reads the status API key secret: {ingest_env:?}"
        );
        assert_eq!(
            crate::resources::Names::new("p").status_api_key_secret(),
            "p/status-api-key"
        );
        let batch = |r: &str| {
            let events = t["Resources"][r]["Properties"]["Events"]
                .as_mapping()
                .cloned()
                .unwrap_or_default();
            events
                .values()
                .find_map(|e| num(&e["Properties"]["BatchSize"]))
        };
        assert_eq!(batch("WorkerFunction"), Some(BATCH_SIZE as u64));
    }
}
