//! `leadbridge import FILE`: see `lb_local::import`.

use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use lb_local::import::{self, Defaults, Target};

#[derive(Args, Debug)]
pub struct ImportArgs {
    /// A CSV file with a header row (`.csv`), or JSON Lines of canonical events (`.jsonl`).
    file: PathBuf,
    /// The bot of rows without a `bot_id` (its route and policies apply).
    #[arg(long)]
    bot: Option<String>,
    /// Send the valid rows even when some are invalid (they are listed and skipped).
    #[arg(long)]
    skip_invalid: bool,
    /// Validate only; send nothing.
    #[arg(long)]
    dry_run: bool,
    /// When rows without `occurred_at` were captured (default: the file's
    /// modification time, so that a re-run is the same events).
    #[arg(long)]
    occurred_at: Option<chrono::DateTime<chrono::Utc>>,
    /// `csv` or `jsonl` (default: from the extension).
    #[arg(long)]
    format: Option<String>,
    /// `bulk` (large batches, many leads per CRM call; the default) or
    /// `realtime` (the live chatbots' lane).
    #[arg(long, default_value = "bulk", value_parser = parse_lane)]
    lane: lb_domain::Lane,
    /// Requests in flight at once.
    #[arg(long, default_value_t = 8)]
    concurrency: usize,
    /// A deployment's ingest URL (else the local stack's, from the stack file).
    #[arg(long, requires = "secret")]
    url: Option<String>,
    /// The webhook signing secret (with --url).
    #[arg(long, env = "LEADBRIDGE_WEBHOOK_SECRET")]
    secret: Option<String>,
    #[arg(long, default_value = "target/leadbridge-local.json")]
    stack_file: PathBuf,
}

pub async fn run(a: ImportArgs) -> anyhow::Result<()> {
    let text = std::fs::read_to_string(&a.file)
        .with_context(|| format!("reading {}", a.file.display()))?;
    let format =
        a.format
            .clone()
            .unwrap_or_else(|| match a.file.extension().and_then(|e| e.to_str()) {
                Some("jsonl" | "ndjson") => "jsonl".into(),
                _ => "csv".into(),
            });
    let (rows, bad) = match format.as_str() {
        "csv" => (
            import::read_csv(&text).map_err(|e| anyhow::anyhow!("{}: {e}", a.file.display()))?,
            Vec::new(),
        ),
        "jsonl" => import::read_jsonl(&text),
        other => anyhow::bail!("--format {other:?}: use csv or jsonl"),
    };
    let occurred_at = match a.occurred_at {
        Some(t) => t,
        None => std::fs::metadata(&a.file)
            .and_then(|m| m.modified())
            .map(chrono::DateTime::<chrono::Utc>::from)
            .unwrap_or_else(|_| chrono::Utc::now()),
    };
    let defaults = Defaults {
        bot_id: a.bot.clone(),
        occurred_at,
        event_type: "lead.created".into(),
    };
    let checked = import::check(rows, bad, &defaults, chrono::Utc::now());
    let total = checked.valid.len() + checked.invalid.len();
    if !checked.invalid.is_empty() {
        eprint!("{}", checked.report());
        eprintln!(
            "{} of {total} row(s) are not valid{}",
            checked.invalid.len(),
            if a.skip_invalid {
                "; they are skipped (--skip-invalid)"
            } else {
                ""
            }
        );
        if !a.skip_invalid {
            anyhow::bail!(
                "nothing sent: fix the rows above, or send the others with --skip-invalid"
            );
        }
    }
    if a.dry_run {
        println!(
            "{} row(s) valid; nothing sent (--dry-run)",
            checked.valid.len()
        );
        return Ok(());
    }
    let target = match (&a.url, &a.secret) {
        (Some(url), Some(secret)) => Target {
            ingest_url: url.clone(),
            secret: secret.clone(),
            lane: a.lane,
        },
        _ => {
            let info = crate::read_stack_file(&a.stack_file)?;
            Target {
                ingest_url: info.ingest_url,
                secret: info.webhook_secret,
                lane: a.lane,
            }
        }
    };
    let bar = indicatif::ProgressBar::new(checked.valid.len() as u64);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{bar:40} {pos}/{len} rows sent ({per_sec}, {eta} left)",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let tick = bar.clone();
    let sent = import::send(&target, &checked.valid, a.concurrency, move || tick.inc(1)).await;
    bar.finish_and_clear();
    for (line, why) in &sent.refused {
        eprintln!("line {line}: refused: {why}");
    }
    for (line, why) in &sent.failed {
        eprintln!("line {line}: not accepted: {why}");
    }
    println!(
        "{}: {total} row(s): {}",
        a.file.display(),
        sent.summary(checked.invalid.len())
    );
    if !sent.failed.is_empty() {
        anyhow::bail!("{} row(s) were not accepted; run the import again to send them (the others are not sent twice)", sent.failed.len());
    }
    Ok(())
}

fn parse_lane(s: &str) -> Result<lb_domain::Lane, String> {
    lb_domain::Lane::parse(s).ok_or_else(|| format!("{s:?} is not a lane: bulk or realtime"))
}
