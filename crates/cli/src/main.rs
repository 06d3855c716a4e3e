//! `leadbridge`: the local stack runner and operator tools.

mod bench;
mod chaos;
mod config_cmd;
mod crm_cmd;
mod demo;
mod demo_crms;
mod demo_sources;
mod doctor_cmd;
mod events;
mod import_cmd;
mod ops;
mod sign;

use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};
use lb_local::{LocalStack, StackInfo, StackOptions};

#[derive(Parser)]
#[command(
    name = "leadbridge",
    version,
    about = "Chatbot-to-CRM lead pipeline: operator commands and local tools",
    after_help = AFTER_HELP
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

/// The groups `--help` lists the commands in, and the ledger's statuses.
const AFTER_HELP: &str = "\
Operators (a deployment with --stack NAME, else the running `make dev` stack):
  doctor, outputs, status, list, replay, erase, import, config, schema-check, test-connection
Developers: dev, demo, bench, chaos, events, env, sign

Statuses (status, list --status): received, queued, in_progress, retrying, synced, dead, rejected

`leadbridge <command> --help` for one command's options.";

#[derive(Subcommand)]
enum Cmd {
    /// Run the local stack until Ctrl-C (moto, the CRM simulators, the three handlers)
    ///
    /// Writes the stack file (URLs, secrets) when ready.
    #[command(display_order = 20)]
    Dev {
        #[arg(long, default_value = "target/leadbridge-local.json")]
        stack_file: PathBuf,
        /// A config file for the local stack (`make dev CONFIG=FILE`): its URLs and
        /// secret ids may use the stack's placeholders ({hubspot_url},
        /// {pipedrive_url}, {pipedrive_secret}, {zoho_accounts_url}, {zoho_secret},
        /// {salesforce_login_url}, {salesforce_secret}, {webhook_url}).
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Run the pipeline end to end on the sample events and print what happened
    #[command(display_order = 21)]
    Demo {
        #[arg(long, default_value = "events/leads")]
        events_dir: PathBuf,
    },
    /// Measure leadbridge's lanes against a naive peer under one CRM limit
    #[command(display_order = 22)]
    Bench(bench::BenchArgs),
    /// The fault-injection run: nothing lost, duplicated or overwritten out of order
    ///
    /// Faults, throttling, stalls, an outage and crashes, through both lanes and
    /// every CRM.
    #[command(display_order = 23)]
    Chaos(chaos::ChaosArgs),
    /// Regenerate the sample Lambda events under events/, signed now
    #[command(display_order = 24)]
    Events {
        /// Sign with the secret of a running `make dev` stack (else the local default).
        #[arg(long, default_value = "target/leadbridge-local.json")]
        stack_file: PathBuf,
        /// Where the canonical sample bodies are.
        #[arg(long, default_value = "events/leads")]
        leads: PathBuf,
        #[arg(long, default_value = "events")]
        out: PathBuf,
    },
    /// Print `export` lines pointing the Lambda binaries at `make dev` (cargo lambda watch)
    #[command(display_order = 25)]
    Env {
        #[arg(long, default_value = "target/leadbridge-local.json")]
        stack_file: PathBuf,
    },
    /// Sign a body as a chatbot would (Leadbridge-Signature, or a vendor's own scheme)
    ///
    /// With `--source NAME`, a request to that native source signed the way its
    /// vendor signs (a curl command, or `--send` it).
    #[command(display_order = 26)]
    Sign(sign::SignArgs),
    /// Backfill leads from a CSV or JSON Lines file through the bulk lane
    ///
    /// Every row is validated first (bad rows reported by line, nothing sent unless
    /// --skip-invalid), then sent; re-running the same file sends nothing twice.
    #[command(display_order = 6)]
    Import(import_cmd::ImportArgs),
    /// Day-one checks of the local stack or a deployment, each finding with its fix
    ///
    /// Secrets set and not placeholders, each CRM authorized with the scopes it needs
    /// and its schema fitting, sources, alert subscriptions, dead letters, backlog.
    /// Exits 1 when something would lose or stall leads.
    #[command(display_order = 1)]
    Doctor(doctor_cmd::DoctorArgs),
    /// Print a deployed stack's outputs and what to do next
    ///
    /// The webhook URL, the console, the queues and the table of the stack found by
    /// its CloudFormation name.
    #[command(display_order = 1)]
    Outputs {
        /// The CloudFormation stack name.
        #[arg(long, env = "LEADBRIDGE_STACK", default_value = "leadbridge")]
        stack: String,
        /// Machine output (JSON).
        #[arg(long)]
        json: bool,
    },
    /// Print one event's status from the ledger (the status API's view)
    #[command(display_order = 2)]
    Status(ops::StatusArgs),
    /// List ledger events in one status, newest first
    #[command(display_order = 3)]
    List(ops::ListArgs),
    /// Put dead events back on the queue (after their cause is fixed)
    #[command(display_order = 4)]
    Replay(ops::ReplayArgs),
    /// Erase a person's records from the ledger and the DLQ (right to erasure)
    ///
    /// Every ledger record and dead letter of theirs, found by any of their
    /// identities; prints what was removed. The CRM side stays the CRM's.
    #[command(display_order = 5)]
    Erase(ops::EraseArgs),
    /// Configuration file tools: `config check FILE` validates a config file
    #[command(subcommand)]
    #[command(display_order = 7)]
    Config(config_cmd::ConfigCmd),
    /// Check the HubSpot connections' mapped properties against the live schema
    ///
    /// Missing, read-only, wrong type, option not allowed: one row per property.
    #[command(display_order = 8)]
    SchemaCheck(crm_cmd::SchemaCheckArgs),
    /// Send a marked test lead to a webhook connection and print its answer
    ///
    /// A HubSpot connection: its schema check instead.
    #[command(display_order = 9)]
    TestConnection(crm_cmd::TestConnectionArgs),
}

fn log_to_file(path: &str) -> anyhow::Result<()> {
    std::fs::create_dir_all("target")?;
    let file = std::fs::File::create(path).with_context(|| format!("creating {path}"))?;
    tracing_subscriber::fmt()
        .json()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,aws=warn,hyper=warn".into()),
        )
        .with_writer(std::sync::Mutex::new(file))
        .init();
    Ok(())
}

pub fn read_stack_file(path: &PathBuf) -> anyhow::Result<StackInfo> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading {} (is `make dev` running?)", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.cmd {
        Cmd::Dev { stack_file, config } => {
            tracing_subscriber::fmt()
                .json()
                .with_env_filter(
                    tracing_subscriber::EnvFilter::try_from_default_env()
                        .unwrap_or_else(|_| "info,aws=warn,hyper=warn".into()),
                )
                .init();
            let mut opts = StackOptions::default().with_env_ports()?;
            if let Some(path) = &config {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("reading {}", path.display()))?;
                opts.config_toml = Some(text);
            }
            let stack = LocalStack::start(opts)
                .await
                .with_context(|| match &config {
                    Some(p) => format!("starting the local stack with {}", p.display()),
                    None => "starting the local stack".into(),
                })?;
            stack.write_stack_file(&stack_file)?;
            let sources: String = stack
                .info
                .sources
                .iter()
                .map(|(name, s)| format!("\n    {name:<18} {}", s.url))
                .collect();
            eprintln!(
                "leadbridge local stack is up\n  ingest:  {}/v1/events\n  sources (secrets in the stack file; `leadbridge sign --source NAME`):{sources}\n  moto:    {}\n  hubspot: {} (admin: {}/__admin/stats)\n  stack file: {}\nCtrl-C to stop.",
                stack.info.ingest_url,
                stack.info.aws_endpoint,
                stack.info.crm.hubspot.base_url,
                stack.info.crm.hubspot.base_url,
                stack_file.display()
            );
            tokio::signal::ctrl_c().await?;
            stack.shutdown().await;
            let _ = std::fs::remove_file(&stack_file);
            Ok(())
        }
        Cmd::Demo { events_dir } => {
            log_to_file("target/demo.log")?;
            demo::run(&events_dir).await
        }
        Cmd::Bench(args) => {
            log_to_file("target/bench.log")?;
            bench::run(args).await
        }
        Cmd::Chaos(args) => {
            log_to_file("target/chaos.log")?;
            chaos::run(args).await
        }
        Cmd::Events {
            stack_file,
            leads,
            out,
        } => {
            let secret = read_stack_file(&stack_file)
                .map(|i| i.webhook_secret)
                .unwrap_or_else(|_| StackOptions::default().webhook_secret);
            events::write_all(&leads, &out, &secret)
        }
        Cmd::Env { stack_file } => {
            let i = read_stack_file(&stack_file)?;
            for (k, v) in stack_env(&i) {
                println!("export {k}='{v}'");
            }
            Ok(())
        }
        Cmd::Sign(args) => sign::run(args).await,
        Cmd::Import(args) => import_cmd::run(args).await,
        Cmd::Doctor(args) => doctor_cmd::run(args).await,
        Cmd::Outputs { stack, json } => outputs(&stack, json).await,
        Cmd::Status(args) => ops::status(args).await,
        Cmd::List(args) => ops::list(args).await,
        Cmd::Replay(args) => ops::replay(args).await,
        Cmd::Erase(args) => ops::erase(args).await,
        Cmd::Config(cmd) => config_cmd::run(cmd),
        Cmd::SchemaCheck(args) => crm_cmd::schema_check(args).await,
        Cmd::TestConnection(args) => crm_cmd::test_connection(args).await,
    }
}

/// `leadbridge outputs --stack NAME`.
async fn outputs(name: &str, json: bool) -> anyhow::Result<()> {
    let sdk = lb_aws::sdk_config().await;
    let stack = lb_local::deployed::DeployedStack::find(&sdk, name).await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&stack.outputs)?);
        return Ok(());
    }
    print!("{}", lb_local::deployed::render(&stack)?);
    Ok(())
}

/// A progress bar on stderr for a long command (hidden when stderr is not a terminal).
pub fn progress_bar(unit: &str) -> indicatif::ProgressBar {
    let bar = indicatif::ProgressBar::new(0);
    bar.set_style(
        indicatif::ProgressStyle::with_template(&format!(
            "{{msg:>12}} [{{bar:32}}] {{pos}}/{{len}} {unit} ({{elapsed}})"
        ))
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
        .progress_chars("=> "),
    );
    bar
}

/// The environment that points the Lambda binaries at a local stack.
pub fn stack_env(i: &StackInfo) -> Vec<(String, String)> {
    [
        ("AWS_ENDPOINT_URL", i.aws_endpoint.as_str()),
        ("AWS_REGION", i.region.as_str()),
        ("AWS_ACCESS_KEY_ID", "testing"),
        ("AWS_SECRET_ACCESS_KEY", "testing"),
        ("LEADS_QUEUE_URL", i.queue_url.as_str()),
        ("LEADS_DLQ_URL", i.dlq_url.as_str()),
        ("LEDGER_TABLE", i.table_name.as_str()),
        ("ALERTS_TOPIC_ARN", i.topic_arn.as_str()),
        ("WEBHOOK_SECRET_ID", i.webhook_secret_id.as_str()),
        ("HUBSPOT_SECRET_ID", i.hubspot_secret_id.as_str()),
        (
            "STATUS_API_KEY_SECRET_ID",
            i.status_api_key_secret_id.as_str(),
        ),
        ("HUBSPOT_BASE_URL", i.crm.hubspot.base_url.as_str()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    /// `--help` names every ledger status and every command in its group.
    #[test]
    fn help_lists_the_statuses_and_groups_every_command() {
        let help = Cli::command().render_long_help().to_string();
        for status in [
            lb_pipeline::LedgerStatus::Received,
            lb_pipeline::LedgerStatus::Queued,
            lb_pipeline::LedgerStatus::InProgress,
            lb_pipeline::LedgerStatus::Retrying,
            lb_pipeline::LedgerStatus::Synced,
            lb_pipeline::LedgerStatus::Dead,
            lb_pipeline::LedgerStatus::Rejected,
        ] {
            assert!(AFTER_HELP.contains(status.as_str()), "{}", status.as_str());
        }
        let groups = AFTER_HELP.split("\n\nStatuses").next().unwrap();
        for sub in Cli::command().get_subcommands() {
            let name = sub.get_name();
            assert!(groups.contains(name), "{name} is in no group");
            assert!(help.contains(name));
        }
        // Operator commands come first.
        let at = |n: &str| help.find(&format!("\n  {n} ")).unwrap_or(usize::MAX);
        assert!(
            at("doctor") < at("dev") && at("replay") < at("bench"),
            "{help}"
        );
    }
}
