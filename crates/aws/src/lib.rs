//! AWS implementations of the pipeline's ports: [`DynamoLedger`], [`SqsLeadQueue`],
//! [`SnsAlerts`], [`SecretsManagerStore`]. Only this crate knows the AWS SDK.
//! Every adapter is handed its client; [`sdk_config`] builds the shared config.

mod dynamo;
mod secrets;
mod sns;
mod sqs;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::context::BeforeTransmitInterceptorContextRef;
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::config_bag::ConfigBag;
use lb_pipeline::PortError;

pub mod emf;

pub use dynamo::{DynamoLedger, STATUS_INDEX};
pub use secrets::SecretsManagerStore;
pub use sns::SnsAlerts;
pub use sqs::{SqsLeadQueue, SQS_MAX_VISIBILITY_SECS};

pub use aws_config;
pub use aws_sdk_dynamodb;
pub use aws_sdk_secretsmanager;
pub use aws_sdk_sns;
pub use aws_sdk_sqs;

/// The SDK config from the environment (region, credentials, and any
/// `AWS_ENDPOINT_URL[_SERVICE]` override, which is how the local stack points
/// the same code at moto).
pub async fn sdk_config() -> aws_config::SdkConfig {
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .load()
        .await
}

/// A config for an explicit endpoint with static credentials (the local stack and tests).
pub async fn sdk_config_for(endpoint: &str, region: &str) -> aws_config::SdkConfig {
    use aws_sdk_sqs::config::Credentials;
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .endpoint_url(endpoint)
        .region(aws_config::Region::new(region.to_string()))
        .credentials_provider(Credentials::new(
            "testing",
            "testing",
            None,
            None,
            "leadbridge-local",
        ))
        .timeout_config(
            aws_config::timeout::TimeoutConfig::builder()
                .operation_timeout(std::time::Duration::from_secs(20))
                .connect_timeout(std::time::Duration::from_secs(2))
                .build(),
        )
        .load()
        .await
}

/// Counts the requests an SDK client sends (the bench's DynamoDB requests per
/// lead), in total and per operation (the `X-Amz-Target` the request names).
#[derive(Debug, Clone, Default)]
pub struct RequestCounter(Arc<Counts>);

#[derive(Debug, Default)]
struct Counts {
    total: AtomicU64,
    by_operation: std::sync::Mutex<std::collections::BTreeMap<String, u64>>,
}

impl RequestCounter {
    pub fn get(&self) -> u64 {
        self.0.total.load(Ordering::Relaxed)
    }

    /// Requests so far per operation (`PutItem`, `Query`, …).
    pub fn by_operation(&self) -> std::collections::BTreeMap<String, u64> {
        self.0
            .by_operation
            .lock()
            .map(|m| m.clone())
            .unwrap_or_default()
    }
}

impl Intercept for RequestCounter {
    fn name(&self) -> &'static str {
        "RequestCounter"
    }
    fn read_before_transmit(
        &self,
        ctx: &BeforeTransmitInterceptorContextRef<'_>,
        _rc: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        self.0.total.fetch_add(1, Ordering::Relaxed);
        let target = ctx.request().headers().get("x-amz-target").unwrap_or("?");
        let op = target.rsplit('.').next().unwrap_or(target).to_string();
        if let Ok(mut m) = self.0.by_operation.lock() {
            *m.entry(op).or_default() += 1;
        }
        Ok(())
    }
}

/// An AWS SDK error with its whole chain of causes, for a person to read.
pub fn port_err_text<E>(e: &E) -> String
where
    E: std::error::Error + Send + Sync + 'static,
{
    aws_smithy_types::error::display::DisplayErrorContext(e).to_string()
}

pub(crate) fn port_err<E>(op: &str, e: E) -> PortError
where
    E: std::error::Error + Send + Sync + 'static,
{
    PortError::new(format!(
        "{op}: {}",
        aws_smithy_types::error::display::DisplayErrorContext(&e)
    ))
}
