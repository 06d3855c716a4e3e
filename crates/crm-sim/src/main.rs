//! `crm-sim hubspot --port 0 --token T --rate-limit 100 --search-lag-ms 2000 --scopes a,b`
//! `crm-sim webhook --port 0`
//!
//! Prints one JSON line `{"base_url":"http://127.0.0.1:PORT","token":"T"}`
//! (no `token` for the webhook target) to stdout once listening, logs JSON to stderr (`RUST_LOG`, default `info`),
//! and runs until SIGINT or SIGTERM.

use std::io::Write;
use std::net::{IpAddr, SocketAddr};

use clap::{Parser, Subcommand};
use crm_sim::{RunningSim, RunningWebhookSim, SimConfig};
use tracing_subscriber::EnvFilter;

#[derive(Debug, Parser)]
#[command(name = "crm-sim", about = "Local CRM simulators with fault injection")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Simulate the HubSpot CRM v3 API.
    Hubspot(HubSpotArgs),
    /// Simulate a webhook target (Zapier, Make, n8n, a custom endpoint).
    Webhook(WebhookArgs),
}

#[derive(Debug, clap::Args)]
struct WebhookArgs {
    /// Address to bind.
    #[arg(long, env = "WEBHOOK_SIM_HOST", default_value = "127.0.0.1")]
    host: IpAddr,
    /// Port to bind; 0 picks a free one.
    #[arg(long, env = "WEBHOOK_SIM_PORT", default_value_t = 0)]
    port: u16,
}

#[derive(Debug, clap::Args)]
struct HubSpotArgs {
    /// Address to bind.
    #[arg(long, env = "CRM_SIM_HOST", default_value = "127.0.0.1")]
    host: IpAddr,
    /// Port to bind; 0 picks a free one.
    #[arg(long, env = "CRM_SIM_PORT", default_value_t = 0)]
    port: u16,
    /// Bearer token to accept.
    #[arg(long, env = "CRM_SIM_TOKEN", default_value = "sim-token")]
    token: String,
    /// Requests per rolling window, per token.
    #[arg(long, default_value_t = 100)]
    rate_limit: u32,
    /// Length of the rolling rate-limit window.
    #[arg(long, default_value_t = 10_000)]
    rate_limit_window_ms: u64,
    /// How far search lags behind writes.
    #[arg(long, default_value_t = 2_000)]
    search_lag_ms: u64,
    /// Search requests per second, per token.
    #[arg(long, default_value_t = 5)]
    search_rate_per_s: u32,
    /// Scopes granted to the token, comma-separated; a call whose endpoint
    /// needs a scope not granted is answered 403 MISSING_SCOPES. Default: every
    /// scope the simulator knows (`crm_sim::hubspot::SCOPES`).
    #[arg(long, env = "CRM_SIM_SCOPES", value_delimiter = ',')]
    scopes: Option<Vec<String>>,
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    tracing_subscriber::fmt()
        .json()
        .with_writer(std::io::stderr)
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .init();
    match Cli::parse().command {
        Command::Hubspot(args) => hubspot(args).await,
        Command::Webhook(args) => webhook(args).await,
    }
}

async fn hubspot(args: HubSpotArgs) -> std::io::Result<()> {
    let defaults = SimConfig::default();
    let config = SimConfig {
        token: args.token,
        rate_limit_max: args.rate_limit,
        rate_limit_window_ms: args.rate_limit_window_ms,
        search_lag_ms: args.search_lag_ms,
        search_rate_per_s: args.search_rate_per_s,
        scopes: args.scopes.map_or(defaults.scopes, |scopes| {
            scopes
                .iter()
                .map(|s| s.trim().to_owned())
                .filter(|s| !s.is_empty())
                .collect()
        }),
        ..defaults
    };
    let sim = RunningSim::start(SocketAddr::new(args.host, args.port), config).await?;
    ready(&serde_json::json!({"base_url": sim.base_url, "token": sim.token}))?;
    wait_for_signal().await?;
    tracing::info!("shutting down");
    sim.shutdown_and_wait().await;
    Ok(())
}

async fn webhook(args: WebhookArgs) -> std::io::Result<()> {
    let sim = RunningWebhookSim::start(SocketAddr::new(args.host, args.port)).await?;
    ready(&serde_json::json!({"base_url": sim.base_url}))?;
    wait_for_signal().await?;
    tracing::info!("shutting down");
    sim.shutdown_and_wait().await;
    Ok(())
}

/// The one stdout line that says the simulator is listening.
fn ready(line: &serde_json::Value) -> std::io::Result<()> {
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "{line}")?;
    stdout.flush()
}

#[cfg(unix)]
async fn wait_for_signal() -> std::io::Result<()> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate())?;
    tokio::select! {
        result = tokio::signal::ctrl_c() => result,
        _ = term.recv() => Ok(()),
    }
}

#[cfg(not(unix))]
async fn wait_for_signal() -> std::io::Result<()> {
    tokio::signal::ctrl_c().await
}
