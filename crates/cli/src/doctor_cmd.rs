//! `leadbridge doctor`: see `lb_local::doctor`.

use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use lb_config::{Config, CONFIG_ENV};
use lb_local::doctor::{examine, render, Patient};

#[derive(Args, Debug)]
pub struct DoctorArgs {
    /// A deployment, with the standard AWS environment (credentials, region,
    /// SSO and credential_process profiles); default: the running local stack.
    #[arg(long)]
    aws: bool,
    /// A deployment found by its CloudFormation stack name (implies --aws): the
    /// prefix and the alerts topic come from the stack.
    #[arg(long, env = "LEADBRIDGE_STACK")]
    stack: Option<String>,
    /// The deployment's resource prefix (the template's `Prefix`).
    #[arg(long, default_value = "leadbridge")]
    prefix: String,
    /// The config file (default: LEADBRIDGE_CONFIG; none: one HubSpot connection).
    #[arg(long, env = CONFIG_ENV)]
    config: Option<PathBuf>,
    #[arg(long, default_value = "target/leadbridge-local.json")]
    stack_file: PathBuf,
}

pub async fn run(a: DoctorArgs) -> anyhow::Result<()> {
    let patient = if a.aws || a.stack.is_some() {
        let sdk = lb_aws::sdk_config().await;
        let mut a = a;
        let mut stack_topic = None;
        if let Some(name) = &a.stack {
            let stack = lb_local::deployed::DeployedStack::find(&sdk, name).await?;
            a.prefix = stack.prefix()?;
            stack_topic = stack.outputs.get("AlertsTopicArn").cloned();
        }
        let config = match &a.config {
            Some(path) => Config::load(path).map_err(anyhow::Error::msg)?,
            None => Config::parse(&format!(
                "version = 1\n\n[connections.hubspot]\nkind = \"hubspot\"\nsecret = \"{}/hubspot\"\n\n\
                 [[routes]]\nbot_id = \"*\"\nconnections = [\"hubspot\"]\n",
                a.prefix
            ))
            .map_err(|e| anyhow::anyhow!("{e}"))?,
        };
        let topic_arn = match stack_topic {
            Some(t) => Some(t),
            None => find_topic(&sdk, &format!("{}-alerts", a.prefix)).await,
        };
        Patient {
            sdk,
            deployed: true,
            prefix: a.prefix.clone(),
            config,
            topic_arn,
        }
    } else {
        let info = crate::read_stack_file(&a.stack_file)?;
        let prefix = info
            .table_name
            .strip_suffix("-ledger")
            .context("the stack file's table is not <prefix>-ledger")?
            .to_string();
        let mut config = match &a.config {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("reading {}", path.display()))?;
                let text = crate::crm_cmd::with_stack_urls(&text, &info);
                Config::parse_local(&text)
                    .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?
            }
            None => {
                Config::parse_local(&info.default_config()).map_err(|e| anyhow::anyhow!("{e}"))?
            }
        };
        if a.config.is_none() {
            config.sources = lb_local::sources::defaults(&prefix);
        }
        Patient {
            sdk: lb_aws::sdk_config_for(&info.aws_endpoint, &info.region).await,
            deployed: false,
            prefix,
            config,
            topic_arn: Some(info.topic_arn.clone()),
        }
    };
    let findings = examine(&patient).await;
    let (text, failed) = render(&findings);
    print!("{text}");
    if failed {
        anyhow::bail!(
            "some checks failed: leads would be lost, refused or stall until they are fixed"
        );
    }
    Ok(())
}

async fn find_topic(sdk: &lb_aws::aws_config::SdkConfig, name: &str) -> Option<String> {
    let sns = lb_aws::aws_sdk_sns::Client::new(sdk);
    let mut next: Option<String> = None;
    loop {
        let page = sns
            .list_topics()
            .set_next_token(next.clone())
            .send()
            .await
            .ok()?;
        if let Some(arn) = page
            .topics()
            .iter()
            .filter_map(|t| t.topic_arn())
            .find(|arn| arn.rsplit(':').next() == Some(name))
        {
            return Some(arn.to_string());
        }
        next = page.next_token().map(str::to_string);
        next.as_ref()?;
    }
}
