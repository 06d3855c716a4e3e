use async_trait::async_trait;
use aws_sdk_secretsmanager::Client;
use lb_pipeline::{PortError, SecretStore};

use crate::port_err;

/// [`SecretStore`] over AWS Secrets Manager (string secrets).
#[derive(Clone)]
pub struct SecretsManagerStore {
    client: Client,
}

impl SecretsManagerStore {
    pub fn new(client: Client) -> Self {
        Self { client }
    }
}

#[async_trait]
impl SecretStore for SecretsManagerStore {
    async fn get_secret(&self, id: &str) -> Result<String, PortError> {
        let out = self
            .client
            .get_secret_value()
            .secret_id(id)
            .send()
            .await
            .map_err(|e| port_err("secretsmanager:GetSecretValue", e))?;
        out.secret_string()
            .map(str::to_string)
            .ok_or_else(|| PortError::new(format!("secret {id} has no string value")))
    }

    async fn put_secret(&self, id: &str, value: &str) -> Result<(), PortError> {
        self.client
            .put_secret_value()
            .secret_id(id)
            .secret_string(value)
            .send()
            .await
            .map_err(|e| port_err("secretsmanager:PutSecretValue", e))?;
        Ok(())
    }
}
