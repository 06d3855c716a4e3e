//! `leadbridge schema-check` and `leadbridge test-connection`: the config's
//! connections against the live CRM / webhook target (a running local stack by
//! default, or AWS Secrets Manager with `--aws`).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use lb_config::{Config, Connection, ConnectionKind, HubSpotConnection, CONFIG_ENV};
use lb_crm::connections;
use lb_crm::{render_schema_table, SchemaStatus};
use lb_local::StackInfo;
use lb_pipeline::SecretStore;

/// Where the connections and their secrets come from.
#[derive(clap::Args, Debug, Clone)]
pub struct SourceArgs {
    /// The config file (default: LEADBRIDGE_CONFIG). Without one, the local stack's
    /// HubSpot connection. With a local stack, `{hubspot_url}` and `{webhook_url}`
    /// in the file are replaced by its simulators' URLs.
    #[arg(long, env = CONFIG_ENV)]
    config: Option<PathBuf>,
    /// Read secrets from AWS Secrets Manager (the default credentials and region)
    /// instead of the local stack's moto.
    #[arg(long)]
    aws: bool,
    /// The stack file of a running `leadbridge dev` (ignored with --aws).
    #[arg(long, default_value = "target/leadbridge-local.json")]
    stack_file: PathBuf,
}

#[derive(clap::Args, Debug)]
pub struct SchemaCheckArgs {
    #[command(flatten)]
    source: SourceArgs,
    /// Only this connection (default: every HubSpot connection).
    #[arg(long)]
    connection: Option<String>,
}

#[derive(clap::Args, Debug)]
pub struct TestConnectionArgs {
    /// The connection's name in the config (`[connections.<name>]`).
    name: String,
    #[command(flatten)]
    source: SourceArgs,
}

struct Source {
    config: Config,
    secrets: Arc<dyn SecretStore>,
}

impl SourceArgs {
    async fn load(&self) -> anyhow::Result<Source> {
        let stack = if self.aws {
            None
        } else {
            Some(crate::read_stack_file(&self.stack_file)?)
        };
        let config = match (&self.config, &stack) {
            (Some(path), stack) => {
                let mut text = std::fs::read_to_string(path)
                    .with_context(|| format!("reading {}", path.display()))?;
                let local = stack.is_some();
                if let Some(s) = stack {
                    text = with_stack_urls(&text, s);
                }
                // Against the local stack, connections point at its simulators (http on loopback).
                let parsed = if local {
                    Config::parse_local(&text)
                } else {
                    Config::parse(&text)
                };
                parsed.map_err(|e| {
                    anyhow::anyhow!("{}: the config is not valid:\n{e}", path.display())
                })?
            }
            (None, Some(s)) => Config::parse_local(&s.default_config())
                .map_err(|e| anyhow::anyhow!("the local default config: {e}"))?,
            (None, None) => {
                bail!("with --aws, name the config file: --config FILE or {CONFIG_ENV}")
            }
        };
        let sdk = match &stack {
            Some(s) => lb_aws::sdk_config_for(&s.aws_endpoint, &s.region).await,
            None => lb_aws::sdk_config().await,
        };
        let secrets: Arc<dyn SecretStore> = Arc::new(lb_aws::SecretsManagerStore::new(
            lb_aws::aws_sdk_secretsmanager::Client::new(&sdk),
        ));
        Ok(Source { config, secrets })
    }
}

pub(crate) fn with_stack_urls(text: &str, s: &StackInfo) -> String {
    let mut t = text.replace("{hubspot_url}", &s.crm.hubspot.base_url);
    if let Some(w) = &s.crm.webhook {
        t = t.replace("{webhook_url}", &w.base_url);
    }
    if let Some(p) = &s.crm.pipedrive {
        t = t
            .replace("{pipedrive_url}", &p.base_url)
            .replace("{pipedrive_secret}", &p.secret_id);
    }
    if let Some(f) = &s.crm.salesforce {
        t = t
            .replace("{salesforce_login_url}", &f.login_url)
            .replace("{salesforce_secret}", &f.secret_id);
    }
    if let Some(z) = &s.crm.zoho {
        t = t
            .replace("{zoho_accounts_url}", &z.accounts_url)
            .replace("{zoho_secret}", &z.secret_id);
    }
    t
}

const TTL: Duration = Duration::from_secs(60);

pub async fn schema_check(args: SchemaCheckArgs) -> anyhow::Result<()> {
    let src = args.source.load().await?;
    let chosen: Vec<&Connection> = match &args.connection {
        Some(name) => vec![connection(&src.config, name)?],
        None => src.config.connections.values().collect(),
    };
    let mut not_ok = 0;
    let mut checked = 0;
    for conn in chosen {
        let ConnectionKind::HubSpot(h) = &conn.kind else {
            if args.connection.is_some() {
                bail!(
                    "{} is a {} connection; schema-check reads HubSpot schemas \
                     (try `leadbridge test-connection {}`)",
                    conn.name,
                    conn.kind_name(),
                    conn.name
                );
            }
            continue;
        };
        checked += 1;
        not_ok += check_one(&src, conn, h).await?;
    }
    if checked == 0 {
        bail!("the config has no HubSpot connection to check");
    }
    if not_ok > 0 {
        bail!("{not_ok} mapped propert(y/ies) would be refused: leads using them are dead-lettered as schema_drift");
    }
    Ok(())
}

/// Prints one connection's table; returns how many rows are not ok.
async fn check_one(
    src: &Source,
    conn: &Connection,
    h: &HubSpotConnection,
) -> anyhow::Result<usize> {
    let crm =
        connections::hubspot(conn, h, src.secrets.clone(), TTL).map_err(anyhow::Error::msg)?;
    let rows = crm
        .schema_report()
        .await
        .map_err(|e| anyhow::anyhow!("{}: could not read the schema: {e}", conn.name))?;
    let bad = rows.iter().filter(|r| r.status != SchemaStatus::Ok).count();
    println!(
        "{} (hubspot, {}): contact properties",
        conn.name, h.base_url
    );
    print!("{}", render_schema_table(&rows));
    println!(
        "{} mapped, {} ok, {bad} not ok\n",
        rows.len(),
        rows.len() - bad
    );
    Ok(bad)
}

fn connection<'a>(config: &'a Config, name: &str) -> anyhow::Result<&'a Connection> {
    config.connection(name).with_context(|| {
        format!(
            "no connection {name:?} in the config; known: {}",
            config
                .connections
                .keys()
                .cloned()
                .collect::<Vec<_>>()
                .join(", ")
        )
    })
}

pub async fn test_connection(args: TestConnectionArgs) -> anyhow::Result<()> {
    let src = args.source.load().await?;
    let conn = connection(&src.config, &args.name)?;
    match &conn.kind {
        ConnectionKind::HubSpot(h) => {
            println!(
                "{} is a HubSpot connection: checking its token and schema",
                conn.name
            );
            let bad = check_one(&src, conn, h).await?;
            if bad > 0 {
                bail!("{bad} mapped propert(y/ies) would be refused");
            }
            Ok(())
        }
        ConnectionKind::Pipedrive(_) | ConnectionKind::Zoho(_) | ConnectionKind::Salesforce(_) => {
            let crm = connections::connection(conn, src.secrets.clone(), TTL)
                .map_err(anyhow::Error::msg)?;
            let started = std::time::Instant::now();
            match connections::probe(crm.as_ref()).await {
                Ok(found) => {
                    println!(
                        "{} ({}): authorized; a search answered in {} ms ({} record(s) hold the probe number)",
                        conn.name,
                        conn.kind_name(),
                        started.elapsed().as_millis(),
                        found
                    );
                    Ok(())
                }
                Err(e) => bail!(
                    "{} ({}): {} — leads to it would be {}",
                    conn.name,
                    conn.kind_name(),
                    e.message,
                    if e.class == lb_pipeline::ErrorClass::Permanent {
                        "dead-lettered"
                    } else {
                        "retried"
                    }
                ),
            }
        }
        ConnectionKind::Webhook(w) => {
            let crm = connections::webhook(conn, w, src.secrets.clone(), TTL)
                .map_err(anyhow::Error::msg)?;
            let reply = crm
                .send_test()
                .await
                .map_err(|e| anyhow::anyhow!("{}: no answer: {e}", conn.name))?;
            println!(
                "{}: sent a test lead (leadbridge.test = true, X-Leadbridge-Test: true)\n\
                 answer: HTTP {} in {} ms\n{}",
                conn.name,
                reply.status,
                reply.elapsed.as_millis(),
                reply.body
            );
            match reply.refused {
                None => Ok(()),
                Some(e) => bail!(
                    "leads to {} would be {}: {}",
                    conn.name,
                    if e.class == lb_pipeline::ErrorClass::Permanent {
                        "dead-lettered"
                    } else {
                        "retried"
                    },
                    e.message
                ),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_local_default_is_a_valid_config_naming_the_stacks_hubspot() {
        let info: StackInfo = serde_json::from_value(serde_json::json!({
            "ingest_url": "http://127.0.0.1:1", "webhook_secret": "s", "aws_endpoint": "http://127.0.0.1:2",
            "region": "us-east-1", "queue_url": "q", "dlq_url": "d", "table_name": "t", "topic_arn": "a",
            "alerts_queue_url": "aq", "webhook_secret_id": "w", "hubspot_secret_id": "p/hubspot",
            "crm": {"hubspot": {"base_url": "http://127.0.0.1:3", "token": "x"},
                    "webhook": {"base_url": "http://127.0.0.1:4"}}
        }))
        .unwrap();
        let c = Config::parse_local(&info.default_config()).unwrap();
        match &c.connection("hubspot").unwrap().kind {
            ConnectionKind::HubSpot(h) => {
                assert_eq!(h.secret, "p/hubspot");
                assert_eq!(h.base_url, "http://127.0.0.1:3");
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(
            with_stack_urls("url = \"{webhook_url}/x\"", &info),
            "url = \"http://127.0.0.1:4/x\""
        );
    }
}
