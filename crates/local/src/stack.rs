//! Wiring the whole pipeline together locally, with real components on free ports.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use crm_sim::{RunningSim, RunningWebhookSim, SimConfig};
use dlq_alerter::AlerterApp;
use ingest::{Ingest, IngestEnv};
use lb_aws::{DynamoLedger, RequestCounter, SecretsManagerStore, SnsAlerts, SqsLeadQueue};
use lb_crm::{HubSpotConfig, HubSpotCrm};
use lb_pipeline::retry::RetryPolicy;
use lb_pipeline::secrets::CachedSecret;
use lb_pipeline::{Ledger, SecretStore};
use serde::{Deserialize, Serialize};
use tokio::sync::watch;
use worker::WorkerApp;

use crate::esm::{self, BatchResult, EsmStats, Mapping};
use crate::moto::Moto;
use crate::resources::{self, settings, Names};

/// `target/leadbridge-local.json`: every URL and secret a tool or test needs.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StackInfo {
    pub ingest_url: String,
    pub webhook_secret: String,
    pub aws_endpoint: String,
    pub region: String,
    pub queue_url: String,
    pub dlq_url: String,
    /// The bulk lane's standard queue (absent in stack files from before it).
    #[serde(default)]
    pub bulk_queue_url: String,
    pub table_name: String,
    pub topic_arn: String,
    pub alerts_queue_url: String,
    pub webhook_secret_id: String,
    pub hubspot_secret_id: String,
    pub crm: CrmInfo,
    /// The key of the status API (`GET /v1/events/{event_id}`).
    #[serde(default)]
    pub status_api_key: String,
    #[serde(default)]
    pub status_api_key_secret_id: String,
    /// The native sources (`POST /v1/sources/<name>`), by name.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub sources: std::collections::BTreeMap<String, crate::sources::SourceInfo>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CrmInfo {
    pub hubspot: CrmEndpoint,
    /// The webhook-target simulator (Zapier/Make/n8n stand-in).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webhook: Option<WebhookTarget>,
    /// The Pipedrive simulator (`kind = "pipedrive"` connections).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pipedrive: Option<PipedriveEndpoint>,
    /// The Zoho CRM simulator (`kind = "zoho"` connections).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub zoho: Option<ZohoEndpoint>,
    /// The Salesforce simulator (`kind = "salesforce"` connections).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub salesforce: Option<SalesforceEndpoint>,
}

/// The Salesforce simulator: its login server and instance, the grant and the
/// secret holding it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SalesforceEndpoint {
    pub login_url: String,
    pub instance_url: String,
    pub client_id: String,
    pub client_secret: String,
    pub refresh_token: String,
    /// `<prefix>/salesforce`: what a connection's `secret` names.
    pub secret_id: String,
}

/// The Pipedrive simulator: its base URL, API token and the secret holding it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PipedriveEndpoint {
    pub base_url: String,
    pub token: String,
    /// `<prefix>/pipedrive`: what a connection's `secret` names.
    pub secret_id: String,
}

/// The Zoho simulator: its API domain, accounts server, the grant and the
/// secret holding it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ZohoEndpoint {
    pub base_url: String,
    pub accounts_url: String,
    pub client_id: String,
    pub client_secret: String,
    pub refresh_token: String,
    /// `<prefix>/zoho`: what a connection's `secret` names.
    pub secret_id: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WebhookTarget {
    pub base_url: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CrmEndpoint {
    pub base_url: String,
    pub token: String,
}

#[derive(Debug, Clone)]
pub struct StackOptions {
    /// Resource name prefix (tests use a unique one each).
    pub prefix: String,
    /// Use this moto instead of starting one.
    pub moto: Option<Arc<Moto>>,
    pub moto_port: u16,
    pub ingest_port: u16,
    pub hubspot_port: u16,
    pub sim: SimConfig,
    pub webhook_secret: String,
    pub policy: RetryPolicy,
    /// Concurrent worker pollers (Lambda's MaximumConcurrency).
    pub worker_concurrency: usize,
    /// The worker's function timeout (deadline of each batch).
    pub worker_timeout: Duration,
    pub hubspot_timeout: Duration,
    /// How often a spent daily quota is checked again (production: 1 h).
    pub hubspot_daily_recheck: Duration,
    /// Messages are not started with less than this left before the deadline
    /// (default: the HubSpot timeout + 2 s).
    pub safety_margin: Option<Duration>,
    /// Override the leads queues' visibility timeout (both lanes; the chaos run shortens it so
    /// that crashed invocations come back in seconds, not minutes).
    pub leads_visibility_secs: Option<u64>,
    /// Fault hooks handed to the worker (the chaos suite's crash).
    pub worker_hooks: lb_pipeline::hooks::Hooks,
    /// Point ingest's SQS client elsewhere (an unreachable port, to test outages).
    pub ingest_sqs_endpoint: Option<String>,
    pub region: String,
    /// The status API key stored in `<prefix>/status-api-key`.
    pub status_api_key: String,
    /// A config file's text (`LEADBRIDGE_CONFIG`) for ingest and the worker;
    /// `{hubspot_url}`, `{webhook_url}`, `{pipedrive_url}` and `{zoho_accounts_url}` are
    /// replaced by the simulators' URLs; `{pipedrive_secret}` and `{zoho_secret}` by the
    /// ids of the secrets the stack writes for them.
    pub config_toml: Option<String>,
    /// Secrets to create before start (`(id, value)`): the ones the config names.
    pub secrets: Vec<(String, String)>,
    /// At most one rejection alert per window.
    pub rejection_window: Duration,
    /// The worker does not poll until [`LocalStack::resume_worker`]: leads sent
    /// meanwhile reach it together, as one batch.
    pub worker_paused: bool,
    /// The bulk lane's batching window (the template's 10 s; tests shorten it).
    pub bulk_window: Duration,
}

impl Default for StackOptions {
    fn default() -> Self {
        Self {
            prefix: "leadbridge".into(),
            moto: None,
            moto_port: 0,
            ingest_port: 0,
            hubspot_port: 0,
            sim: SimConfig {
                token: "pat-local-hubspot-token".into(),
                ..SimConfig::default()
            },
            webhook_secret: "whsec_local_demo_secret".into(),
            policy: RetryPolicy {
                base: Duration::from_millis(500),
                cap: Duration::from_secs(5),
                max_attempts: 5,
            },
            worker_concurrency: 2,
            worker_timeout: Duration::from_secs(settings::WORKER_TIMEOUT_SECS),
            hubspot_timeout: Duration::from_secs(5),
            hubspot_daily_recheck: Duration::from_secs(3600),
            safety_margin: None,
            leads_visibility_secs: None,
            worker_hooks: lb_pipeline::hooks::Hooks::NONE,
            ingest_sqs_endpoint: None,
            region: "us-east-1".into(),
            status_api_key: "lbk_local_status_api_key".into(),
            config_toml: None,
            secrets: Vec::new(),
            rejection_window: Duration::from_secs(900),
            worker_paused: false,
            bulk_window: Duration::from_secs(settings::BULK_BATCHING_WINDOW_SECS),
        }
    }
}

impl StackInfo {
    /// The config a stack without a config file behaves as: its HubSpot
    /// simulator as the one connection, every bot routed to it (for the
    /// connection checks and `doctor` against the stack).
    pub fn default_config(&self) -> String {
        format!(
            "version = 1\n\n[connections.hubspot]\nkind = \"hubspot\"\nsecret = \"{}\"\nbase_url = \"{}\"\n\n\
             [[routes]]\nbot_id = \"*\"\nconnections = [\"hubspot\"]\n",
            self.hubspot_secret_id, self.crm.hubspot.base_url
        )
    }
}

impl StackOptions {
    /// Ports from `LEADBRIDGE_MOTO_PORT`, `LEADBRIDGE_INGEST_PORT`, `LEADBRIDGE_HUBSPOT_PORT` (0 or unset: free ports).
    pub fn with_env_ports(mut self) -> anyhow::Result<Self> {
        let port = |name: &str| -> anyhow::Result<u16> {
            match std::env::var(name) {
                Ok(v) if !v.is_empty() => v
                    .parse()
                    .with_context(|| format!("{name}={v:?} is not a port")),
                _ => Ok(0),
            }
        };
        self.moto_port = port("LEADBRIDGE_MOTO_PORT")?;
        self.ingest_port = port("LEADBRIDGE_INGEST_PORT")?;
        self.hubspot_port = port("LEADBRIDGE_HUBSPOT_PORT")?;
        Ok(self)
    }
}

/// A running local stack. Dropping it stops the pollers, the ingest server and
/// the simulator (and moto, if it started its own).
pub struct LocalStack {
    pub info: StackInfo,
    pub moto: Arc<Moto>,
    pub sim: RunningSim,
    pub webhook_sim: RunningWebhookSim,
    pub pipedrive_sim: crm_sim::pipedrive::RunningPipedriveSim,
    pub zoho_sim: crm_sim::zoho::RunningZohoSim,
    pub salesforce_sim: crm_sim::salesforce::RunningSalesforceSim,
    /// The config the stack runs with (placeholders replaced), if any.
    pub config: Option<Arc<lb_config::Config>>,
    pub sdk: aws_config::SdkConfig,
    pub ledger: Arc<DynamoLedger>,
    /// DynamoDB requests made by the three handlers.
    pub dynamodb_requests: RequestCounter,
    /// SQS requests made by the three handlers and the event source mappings.
    pub sqs_requests: RequestCounter,
    pub worker_stats: Arc<EsmStats>,
    pub alerter_stats: Arc<EsmStats>,
    stop: watch::Sender<bool>,
    worker_paused: watch::Sender<bool>,
    /// Worker pollers parked by a pause, out of `worker_pollers`.
    worker_parked: Arc<std::sync::atomic::AtomicUsize>,
    worker_pollers: usize,
    worker_app: Arc<WorkerApp>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl LocalStack {
    pub async fn start(opts: StackOptions) -> anyhow::Result<LocalStack> {
        let moto = match &opts.moto {
            Some(m) => m.clone(),
            None => Arc::new(Moto::start(opts.moto_port)?),
        };
        let sdk = lb_aws::sdk_config_for(&moto.endpoint, &opts.region).await;
        let names = Names::new(&opts.prefix);
        let created =
            resources::create(&sdk, &names, &opts.webhook_secret, &opts.sim.token).await?;
        if let Some(v) = opts.leads_visibility_secs {
            // Both lanes' queues: a message whose invocation died comes back after it.
            for url in [&created.queue_url, &created.bulk_queue_url] {
                aws_sdk_sqs::Client::new(&sdk)
                    .set_queue_attributes()
                    .queue_url(url)
                    .attributes(
                        aws_sdk_sqs::types::QueueAttributeName::VisibilityTimeout,
                        v.to_string(),
                    )
                    .send()
                    .await
                    .context("shortening the visibility timeout")?;
            }
        }
        resources::create_status_api_key(&sdk, &names, &opts.status_api_key).await?;
        let sim = RunningSim::start(
            SocketAddr::from(([127, 0, 0, 1], opts.hubspot_port)),
            opts.sim.clone(),
        )
        .await
        .context("starting the HubSpot simulator")?;
        let webhook_sim = RunningWebhookSim::start(SocketAddr::from(([127, 0, 0, 1], 0)))
            .await
            .context("starting the webhook-target simulator")?;
        let pipedrive_sim = crm_sim::pipedrive::RunningPipedriveSim::start(
            SocketAddr::from(([127, 0, 0, 1], 0)),
            crm_sim::pipedrive::PipedriveSimConfig::default(),
        )
        .await
        .context("starting the Pipedrive simulator")?;
        let zoho_sim = crm_sim::zoho::RunningZohoSim::start(
            SocketAddr::from(([127, 0, 0, 1], 0)),
            crm_sim::zoho::ZohoSimConfig::default(),
        )
        .await
        .context("starting the Zoho simulator")?;
        let salesforce_sim = crm_sim::salesforce::RunningSalesforceSim::start(
            SocketAddr::from(([127, 0, 0, 1], 0)),
            crm_sim::salesforce::SalesforceSimConfig::default(),
        )
        .await
        .context("starting the Salesforce simulator")?;
        let salesforce_secret = format!("{}/salesforce", opts.prefix);
        resources::put_secret(
            &sdk,
            &salesforce_secret,
            &serde_json::json!({
                "client_id": salesforce_sim.client_id,
                "client_secret": salesforce_sim.client_secret,
                "refresh_token": salesforce_sim.refresh_token,
            })
            .to_string(),
        )
        .await?;
        let pipedrive_secret = format!("{}/pipedrive", opts.prefix);
        let zoho_secret = format!("{}/zoho", opts.prefix);
        resources::put_secret(
            &sdk,
            &pipedrive_secret,
            &serde_json::json!({"api_token": pipedrive_sim.token}).to_string(),
        )
        .await?;
        resources::put_secret(
            &sdk,
            &zoho_secret,
            &serde_json::json!({
                "client_id": zoho_sim.client_id,
                "client_secret": zoho_sim.client_secret,
                "refresh_token": zoho_sim.refresh_token,
            })
            .to_string(),
        )
        .await?;
        for (id, value) in &opts.secrets {
            resources::put_secret(&sdk, id, value).await?;
        }
        let config = match &opts.config_toml {
            None => None,
            Some(text) => {
                let text = text
                    .replace("{hubspot_url}", &sim.base_url)
                    .replace("{hubspot_secret}", &names.hubspot_secret())
                    .replace("{webhook_url}", &webhook_sim.base_url)
                    .replace("{pipedrive_url}", &pipedrive_sim.base_url)
                    .replace("{zoho_accounts_url}", &zoho_sim.accounts_url)
                    .replace("{pipedrive_secret}", &pipedrive_secret)
                    .replace("{zoho_secret}", &zoho_secret)
                    .replace("{salesforce_login_url}", &salesforce_sim.login_url)
                    .replace("{salesforce_secret}", &salesforce_secret);
                let cfg = lb_config::Config::parse_local(&text)
                    .map_err(|e| anyhow::anyhow!("the stack's config file is not valid:\n{e}"))?;
                Some(Arc::new(cfg))
            }
        };
        let alerts: Arc<SnsAlerts> = Arc::new(SnsAlerts::new(
            aws_sdk_sns::Client::new(&sdk),
            &created.topic_arn,
        ));

        let counter = RequestCounter::default();
        let ddb = aws_sdk_dynamodb::Client::from_conf(
            aws_sdk_dynamodb::config::Builder::from(&sdk)
                .endpoint_url(&moto.dynamodb_endpoint)
                .interceptor(counter.clone())
                .build(),
        );
        let sqs_counter = RequestCounter::default();
        let sqs = aws_sdk_sqs::Client::from_conf(
            aws_sdk_sqs::config::Builder::from(&sdk)
                .interceptor(sqs_counter.clone())
                .build(),
        );
        let ledger = Arc::new(DynamoLedger::new(ddb, &created.table_name));
        let secrets: Arc<dyn SecretStore> = Arc::new(SecretsManagerStore::new(
            aws_sdk_secretsmanager::Client::new(&sdk),
        ));
        let queue = Arc::new(
            SqsLeadQueue::new(sqs.clone(), &created.queue_url, &created.dlq_url)
                .with_bulk(Some(created.bulk_queue_url.clone())),
        );

        let ingest_queue = match &opts.ingest_sqs_endpoint {
            None => queue.clone(),
            Some(endpoint) => {
                let cfg = lb_aws::sdk_config_for(endpoint, &opts.region).await;
                Arc::new(
                    SqsLeadQueue::new(
                        aws_sdk_sqs::Client::new(&cfg),
                        &created.queue_url,
                        &created.dlq_url,
                    )
                    .with_bulk(Some(created.bulk_queue_url.clone())),
                )
            }
        };
        let ingest_env = IngestEnv {
            queue_url: created.queue_url.clone(),
            dlq_url: created.dlq_url.clone(),
            bulk_queue_url: Some(created.bulk_queue_url.clone()),
            table_name: created.table_name.clone(),
            webhook_secret_id: names.webhook_secret(),
            status_api_key_secret_id: names.status_api_key_secret(),
            secret_ttl: Duration::from_secs(30),
            alerts_topic_arn: created.topic_arn.clone(),
            rejection_window: opts.rejection_window,
        };
        let mut ingest_app = Ingest::new(
            ledger.clone(),
            ingest_queue,
            secrets.clone(),
            alerts.clone(),
            config.clone(),
            &ingest_env,
        );
        // Secret values by id, for the stack file's `sources`.
        let mut secret_values: std::collections::BTreeMap<String, String> =
            opts.secrets.iter().cloned().collect();
        if config.is_none() {
            let defaults = crate::sources::defaults(&opts.prefix);
            for s in defaults.values() {
                let value = crate::sources::default_secret_value(s.kind);
                resources::put_secret(&sdk, &s.secret, &value).await?;
                secret_values.insert(s.secret.clone(), value);
            }
            ingest_app.set_sources(defaults);
        }
        let source_list = ingest_app.sources().clone();
        let ingest_app = Arc::new(ingest_app);

        let token = Arc::new(CachedSecret::new(
            secrets.clone(),
            names.hubspot_secret(),
            Duration::from_secs(30),
        ));
        let hubspot = HubSpotCrm::new(
            HubSpotConfig {
                base_url: sim.base_url.clone(),
                timeout: opts.hubspot_timeout,
                // the simulator runs on this machine
                allow_internal: true,
                daily_recheck: opts.hubspot_daily_recheck,
                ..Default::default()
            },
            token,
        )?
        .with_throttle(lb_pipeline::throttle::Throttle::new(
            ledger.clone(),
            "hubspot",
            lb_config::Throttling::default(),
        ));
        let crm: Arc<dyn lb_pipeline::Connections> = match &config {
            None => Arc::new(hubspot),
            Some(cfg) => Arc::new(
                lb_crm::connections::from_config(
                    cfg,
                    secrets.clone(),
                    Duration::from_secs(30),
                    Some(lb_crm::connections::Shared::through(ledger.clone())),
                )
                .map_err(|e| anyhow::anyhow!(e))?,
            ),
        };
        let worker_app = Arc::new(WorkerApp {
            ledger: ledger.clone(),
            queue: queue.clone(),
            crm,
            alerts: alerts.clone(),
            policy: opts.policy,
            safety_margin: opts
                .safety_margin
                .unwrap_or(opts.hubspot_timeout + Duration::from_secs(2)),
            hooks: opts.worker_hooks.clone(),
        });
        // As the function's init does (`lambdas/worker/src/main.rs`).
        worker_app.warm_up().await;
        let alerter_app = Arc::new(AlerterApp {
            ledger: ledger.clone(),
            queue: queue.clone(),
            alerts,
        });

        let (stop, stop_rx) = watch::channel(false);
        let ingest_addr = crate::server::start(
            ingest_app,
            SocketAddr::from(([127, 0, 0, 1], opts.ingest_port)),
            stop_rx.clone(),
        )
        .await
        .context("starting the ingest server")?;

        let arn = |url: &str| {
            let name = url.rsplit('/').next().unwrap_or_default();
            format!("arn:aws:sqs:{}:123456789012:{name}", opts.region)
        };
        let worker_stats = Arc::new(EsmStats::default());
        let alerter_stats = Arc::new(EsmStats::default());
        let mut tasks = Vec::new();
        let (worker_paused, paused_rx) = watch::channel(opts.worker_paused);
        let worker_parked = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        // The real-time lane (`worker_concurrency` pollers of 10), and the bulk lane
        // (one poller of 100 with a batching window), as the template's two events.
        let lanes = (0..opts.worker_concurrency.max(1))
            .map(|_| (created.queue_url.clone(), settings::BATCH_SIZE, None))
            .chain(std::iter::once((
                created.bulk_queue_url.clone(),
                settings::BULK_BATCH_SIZE,
                Some(opts.bulk_window),
            )));
        for (queue_url, batch_size, batching_window) in lanes {
            let mapping = Mapping {
                sqs: sqs.clone(),
                queue_arn: arn(&queue_url),
                queue_url,
                region: opts.region.clone(),
                batch_size,
                timeout: opts.worker_timeout,
                stats: worker_stats.clone(),
                paused: Some(paused_rx.clone()),
                parked: worker_parked.clone(),
                batching_window,
            };
            let app = worker_app.clone();
            tasks.push(tokio::spawn(esm::run(
                mapping,
                stop_rx.clone(),
                move |ev| {
                    let app = app.clone();
                    async move {
                        match worker::handle(app, ev).await {
                            Ok(r) => BatchResult::Partial(r),
                            Err(_) => BatchResult::Failed,
                        }
                    }
                },
            )));
        }
        for dlq_url in [created.dlq_url.clone(), created.bulk_dlq_url.clone()] {
            let mapping = Mapping {
                sqs: sqs.clone(),
                queue_arn: arn(&dlq_url),
                queue_url: dlq_url,
                region: opts.region.clone(),
                batch_size: settings::BATCH_SIZE,
                timeout: Duration::from_secs(settings::ALERTER_TIMEOUT_SECS),
                stats: alerter_stats.clone(),
                paused: None,
                parked: Arc::default(),
                batching_window: None,
            };
            let app = alerter_app.clone();
            tasks.push(tokio::spawn(esm::run(mapping, stop_rx.clone(), move |ev| {
                let app = app.clone();
                async move {
                    match dlq_alerter::handle(app, ev).await {
                        Ok(r) => BatchResult::Partial(r),
                        Err(e) => {
                            tracing::warn!(error = %e, "dlq-alerter failed; the batch will be retried");
                            BatchResult::Failed
                        }
                    }
                }
            })));
        }

        let info = StackInfo {
            ingest_url: format!("http://{ingest_addr}"),
            webhook_secret: opts.webhook_secret.clone(),
            aws_endpoint: moto.endpoint.clone(),
            region: opts.region.clone(),
            queue_url: created.queue_url,
            dlq_url: created.dlq_url,
            bulk_queue_url: created.bulk_queue_url,
            table_name: created.table_name,
            topic_arn: created.topic_arn,
            alerts_queue_url: created.alerts_queue_url,
            webhook_secret_id: names.webhook_secret(),
            hubspot_secret_id: names.hubspot_secret(),
            crm: CrmInfo {
                hubspot: CrmEndpoint {
                    base_url: sim.base_url.clone(),
                    token: sim.token.clone(),
                },
                webhook: Some(WebhookTarget {
                    base_url: webhook_sim.base_url.clone(),
                }),
                pipedrive: Some(PipedriveEndpoint {
                    base_url: pipedrive_sim.base_url.clone(),
                    token: pipedrive_sim.token.clone(),
                    secret_id: pipedrive_secret.clone(),
                }),
                zoho: Some(ZohoEndpoint {
                    base_url: zoho_sim.base_url.clone(),
                    accounts_url: zoho_sim.accounts_url.clone(),
                    client_id: zoho_sim.client_id.clone(),
                    client_secret: zoho_sim.client_secret.clone(),
                    refresh_token: zoho_sim.refresh_token.clone(),
                    secret_id: zoho_secret.clone(),
                }),
                salesforce: Some(SalesforceEndpoint {
                    login_url: salesforce_sim.login_url.clone(),
                    instance_url: salesforce_sim.instance_url.clone(),
                    client_id: salesforce_sim.client_id.clone(),
                    client_secret: salesforce_sim.client_secret.clone(),
                    refresh_token: salesforce_sim.refresh_token.clone(),
                    secret_id: salesforce_secret.clone(),
                }),
            },
            status_api_key: opts.status_api_key.clone(),
            status_api_key_secret_id: names.status_api_key_secret(),
            sources: crate::sources::infos(
                &source_list,
                &format!("http://{ingest_addr}"),
                &secret_values,
            ),
        };
        Ok(LocalStack {
            info,
            moto,
            sim,
            webhook_sim,
            pipedrive_sim,
            zoho_sim,
            salesforce_sim,
            config,
            sdk,
            ledger,
            dynamodb_requests: counter,
            sqs_requests: sqs_counter,
            worker_stats,
            alerter_stats,
            stop,
            worker_paused,
            worker_parked,
            worker_pollers: opts.worker_concurrency.max(1) + 1,
            worker_app,
            tasks,
        })
    }

    pub fn write_stack_file(&self, path: &Path) -> anyhow::Result<()> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        std::fs::write(path, serde_json::to_string_pretty(&self.info)?)?;
        Ok(())
    }

    pub fn ledger(&self) -> Arc<dyn Ledger> {
        self.ledger.clone()
    }

    /// The connections another worker instance would build from `config`: its
    /// own adapters (caches, tokens, limits learned), sharing only what
    /// instances share through this stack's ledger table and secrets.
    pub fn another_instance(
        &self,
        config: &lb_config::Config,
    ) -> anyhow::Result<lb_pipeline::CrmSet> {
        let secrets = Arc::new(lb_aws::SecretsManagerStore::new(
            aws_sdk_secretsmanager::Client::new(&self.sdk),
        ));
        let ledger = Arc::new(DynamoLedger::new(
            aws_sdk_dynamodb::Client::from_conf(
                aws_sdk_dynamodb::config::Builder::from(&self.sdk)
                    .endpoint_url(&self.moto.dynamodb_endpoint)
                    .build(),
            ),
            &self.info.table_name,
        ));
        lb_crm::connections::from_config(
            config,
            secrets,
            Duration::from_secs(60),
            Some(lb_crm::connections::Shared::through(ledger)),
        )
        .map_err(|e| anyhow::anyhow!(e))
    }

    /// Stops pollers and servers and waits for the pollers to finish their batch.
    /// What the template's hourly schedule does (EventBridge → the worker):
    /// every connection's schema and quota checked, drifts alerted once.
    pub async fn run_hourly_check(&self) -> Vec<serde_json::Value> {
        worker::check(&self.worker_app).await
    }

    /// Stops the worker's pollers (Lambda's event source mappings disabled)
    /// and returns once every one is parked: no batch in hand, none receiving;
    /// messages sent from then on arrive together after [`Self::resume_worker`].
    pub async fn pause_worker(&self) {
        self.worker_paused.send_replace(true);
        let deadline = std::time::Instant::now() + Duration::from_secs(120);
        while self.worker_parked.load(std::sync::atomic::Ordering::SeqCst) < self.worker_pollers {
            assert!(
                std::time::Instant::now() < deadline,
                "the worker's pollers did not stop within two minutes"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Lets a worker started with [`StackOptions::worker_paused`] poll.
    pub fn resume_worker(&self) {
        self.worker_paused.send_replace(false);
    }

    pub async fn shutdown(mut self) {
        let _ = self.stop.send(true);
        for t in self.tasks.drain(..) {
            let _ = tokio::time::timeout(Duration::from_secs(5), t).await;
        }
    }
}

impl Drop for LocalStack {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
        for t in &self.tasks {
            t.abort();
        }
    }
}
