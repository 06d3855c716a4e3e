//! `make chaos`: the full fault-injection run (5,000 deliveries, a 60-second outage).

use std::path::PathBuf;

use clap::Args;
use lb_local::chaos::{run as run_chaos, ChaosConfig};

#[derive(Args, Debug)]
pub struct ChaosArgs {
    /// Webhook deliveries in all.
    #[arg(long, default_value_t = 5000)]
    events: usize,
    /// Length of the total CRM outage, in seconds.
    #[arg(long, default_value_t = 60)]
    outage_secs: u64,
    /// Deliveries per second (0: as fast as possible).
    #[arg(long, default_value_t = 3.0)]
    rate: f64,
    #[arg(long, default_value = "target/chaos/summary.json")]
    out: PathBuf,
}

/// The injected crashes are panics by design: count them, don't print each one.
fn quiet_injected_crashes() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let msg = info
            .payload()
            .downcast_ref::<&str>()
            .copied()
            .or_else(|| info.payload().downcast_ref::<String>().map(String::as_str))
            .unwrap_or("");
        if !msg.starts_with("injected crash") {
            default(info);
        }
    }));
}

pub async fn run(args: ChaosArgs) -> anyhow::Result<()> {
    quiet_injected_crashes();
    let cfg = ChaosConfig {
        events: args.events,
        outage: std::time::Duration::from_secs(args.outage_secs),
        send_rate: (args.rate > 0.0).then_some(args.rate),
        progress: crate::progress_bar("deliveries"),
        ..ChaosConfig::full()
    };
    println!(
        "chaos: {} deliveries at {}/s of people known by email, phone and/or WhatsApp, {:.0}% CRM 503s, \
         429 bursts over {}/{} ms, {:.1}% stalls of {:?} (worker timeout {:?}), a {:?} outage, \
         a crash after every {}th CRM write, {} refused writes per route, dead events replayed mid-run, \
         {:.0}% of the events as vendors' own webhooks, {:.0}% through the bulk lane",
        cfg.events,
        cfg.send_rate.map_or("max".to_string(), |r| format!("{r}")),
        cfg.error_rate * 100.0,
        cfg.rate_limit.0,
        cfg.rate_limit.1,
        cfg.stall_rate * 100.0,
        cfg.stall,
        cfg.worker_timeout,
        cfg.outage,
        cfg.crash_every,
        cfg.refused_writes * 2,
        cfg.vendor_ratio * 100.0,
        cfg.bulk_ratio * 100.0
    );
    let report = run_chaos(cfg, None).await?;
    println!("\n{}", report.table());
    if let Some(dir) = args.out.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(&args.out, serde_json::to_string_pretty(&report)? + "\n")?;
    println!("written to {}", args.out.display());
    let broken = report.broken();
    anyhow::ensure!(
        broken.is_empty(),
        "the chaos run broke its promises: {}",
        broken.join("; ")
    );
    Ok(())
}
