//! A deployed stack found by its CloudFormation name (`--stack NAME`): the
//! template's outputs and its `Prefix` parameter say where everything is, so
//! an operator types a stack name instead of a table and three queue URLs.

use std::collections::BTreeMap;

use anyhow::{bail, Context};
pub use aws_sdk_cloudformation;
use aws_sdk_cloudformation::Client;

use crate::ops::OpsTarget;

/// The outputs every command reads (`infra/template.yaml` declares each; a
/// test checks the template against this list).
pub const OUTPUTS: [&str; 6] = [
    "LedgerTableName",
    "LeadsQueueUrl",
    "LeadsDlqUrl",
    "BulkQueueUrl",
    "AlertsTopicArn",
    "IngestUrl",
];

/// One deployed stack's outputs and parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeployedStack {
    pub name: String,
    pub outputs: BTreeMap<String, String>,
    pub parameters: BTreeMap<String, String>,
}

impl DeployedStack {
    /// `DescribeStacks` for `name` (a stack name or id) with `sdk`'s credentials
    /// and region (SSO and `credential_process` profiles included).
    pub async fn find(sdk: &aws_config::SdkConfig, name: &str) -> anyhow::Result<Self> {
        let answer = Client::new(sdk)
            .describe_stacks()
            .stack_name(name)
            .send()
            .await
            .map_err(|e| {
                let e = aws_sdk_cloudformation::error::DisplayErrorContext(e);
                anyhow::anyhow!("CloudFormation has no stack {name:?} here ({e}); check the name, the region (AWS_REGION) and the profile (AWS_PROFILE)")
            })?;
        let stack = answer
            .stacks()
            .first()
            .with_context(|| format!("CloudFormation answered no stack for {name:?}"))?;
        let status = stack
            .stack_status()
            .map(|s| s.as_str().to_string())
            .unwrap_or_default();
        if status.ends_with("_FAILED")
            || status == "ROLLBACK_COMPLETE"
            || status.starts_with("DELETE_")
        {
            bail!("stack {name:?} is {status}: it has no usable resources; deploy it again (make deploy)");
        }
        let outputs = stack
            .outputs()
            .iter()
            .filter_map(|o| Some((o.output_key()?.to_string(), o.output_value()?.to_string())))
            .collect();
        let parameters = stack
            .parameters()
            .iter()
            .filter_map(|p| {
                Some((
                    p.parameter_key()?.to_string(),
                    p.parameter_value()?.to_string(),
                ))
            })
            .collect();
        Ok(Self {
            name: name.to_string(),
            outputs,
            parameters,
        })
    }

    /// An output the template declares; its absence means this is not a leadbridge stack.
    pub fn output(&self, key: &str) -> anyhow::Result<&str> {
        self.outputs.get(key).map(String::as_str).with_context(|| {
            format!(
                "stack {:?} has no output {key}: is it a leadbridge stack (infra/template.yaml)?",
                self.name
            )
        })
    }

    /// The resources' name prefix (the template's `Prefix` parameter; else the
    /// ledger table's name without `-ledger`).
    pub fn prefix(&self) -> anyhow::Result<String> {
        if let Some(p) = self.parameters.get("Prefix") {
            return Ok(p.clone());
        }
        let table = self.output("LedgerTableName")?;
        table
            .strip_suffix("-ledger")
            .map(str::to_string)
            .with_context(|| format!("the ledger table {table:?} is not <prefix>-ledger"))
    }

    /// Where the operator commands read and write (with `sdk`'s environment).
    pub fn ops_target(&self) -> anyhow::Result<OpsTarget> {
        let optional = |k: &str| self.outputs.get(k).cloned().filter(|v| !v.is_empty());
        Ok(OpsTarget::aws(
            self.output("LedgerTableName")?.to_string(),
            optional("LeadsQueueUrl"),
            optional("LeadsDlqUrl"),
            optional("BulkQueueUrl"),
        ))
    }
}

/// The outputs as `leadbridge outputs` prints them, then the next steps.
pub fn render(stack: &DeployedStack) -> anyhow::Result<String> {
    use std::fmt::Write;
    let prefix = stack.prefix()?;
    let mut out = format!("stack {}\n", stack.name);
    let width = stack.outputs.keys().map(String::len).max().unwrap_or(0);
    for (k, v) in &stack.outputs {
        let _ = writeln!(out, "  {k:<width$}  {v}");
    }
    let _ = write!(
        out,
        "\nnext:\n  \
         1. the CRM token:      aws secretsmanager put-secret-value --secret-id {prefix}/hubspot --secret-string '{{\"token\":\"pat-…\"}}'\n  \
         2. the chatbot's key:  aws secretsmanager get-secret-value --secret-id {prefix}/webhook --query SecretString --output text\n  \
         3. paste the IngestUrl (or a source's /v1/sources/<name>) into the chatbot's webhook settings\n  \
         4. check it all:       leadbridge doctor --stack {}\n",
        stack.name
    );
    Ok(out)
}
