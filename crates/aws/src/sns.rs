use async_trait::async_trait;
use aws_sdk_sns::Client;
use lb_pipeline::{Alerts, PortError};

use crate::port_err;

/// [`Alerts`] over an SNS topic (email subscribers read the plain-text body).
#[derive(Clone)]
pub struct SnsAlerts {
    client: Client,
    topic_arn: String,
}

impl SnsAlerts {
    pub fn new(client: Client, topic_arn: impl Into<String>) -> Self {
        Self {
            client,
            topic_arn: topic_arn.into(),
        }
    }
}

/// SNS takes at most 256 KiB per message.
const MAX_MESSAGE_BYTES: usize = 250 * 1024;

#[async_trait]
impl Alerts for SnsAlerts {
    async fn publish(&self, subject: &str, message: &str) -> Result<(), PortError> {
        let mut body = message.to_string();
        if body.len() > MAX_MESSAGE_BYTES {
            let mut cut = MAX_MESSAGE_BYTES;
            while !body.is_char_boundary(cut) {
                cut -= 1;
            }
            body.truncate(cut);
            body.push_str("\n… (cut; the ledger has every dead event)");
        }
        self.client
            .publish()
            .topic_arn(&self.topic_arn)
            .subject(subject)
            .message(body)
            .send()
            .await
            .map_err(|e| port_err("sns:Publish", e))?;
        Ok(())
    }
}
