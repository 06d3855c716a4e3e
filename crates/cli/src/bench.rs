//! `make bench`: N signed events (a share of them duplicate deliveries, some
//! concurrent with their original) through the whole local stack.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use clap::Args;
use lb_local::client::StackClient;
use lb_local::{LocalStack, StackOptions};
use lb_pipeline::LedgerStatus;
use serde_json::{json, Value};
use tokio::sync::{Mutex, Semaphore};

#[derive(Args, Debug)]
pub struct BenchArgs {
    /// Webhook deliveries in all (duplicates included).
    #[arg(long, default_value_t = 2000)]
    events: usize,
    /// Share of deliveries that repeat an earlier event.
    #[arg(long, default_value_t = 0.2)]
    duplicate_ratio: f64,
    /// Webhook requests in flight at once.
    #[arg(long, default_value_t = 16)]
    concurrency: usize,
    /// Concurrent worker invocations (Lambda MaximumConcurrency).
    #[arg(long, default_value_t = 4)]
    worker_concurrency: usize,
    /// The simulator's limit per 10 s. High by default so the bench measures
    /// leadbridge rather than a HubSpot tier; 100 is Free/Starter, 190 Pro/Enterprise.
    #[arg(long, default_value_t = 1_000_000)]
    hubspot_rate_limit: u32,
    #[arg(long, default_value = "target/bench/summary.json")]
    out: PathBuf,
}

/// Event `i` of `person`; `t0` fixes its time, so that a duplicate delivery is
/// the same payload (a different one would be a 409 conflict, not a duplicate).
fn event(i: usize, person: usize, t0: DateTime<Utc>) -> Value {
    json!({
        "event_id": format!("evt_bench_{i:06}"),
        "event_type": if i.is_multiple_of(3) { "lead.qualified" } else { "lead.created" },
        "occurred_at": (t0 + chrono::Duration::milliseconds(i as i64)).to_rfc3339(),
        "bot_id": "bot_bench",
        "conversation_id": format!("conv_{i}"),
        "visitor": {"email": format!("Person.{person}@Bench-Corp.example"), "name": format!("Person {person}"),
                    "phone": format!("+1 415 555 {:04}", person % 10_000), "country": "US"},
        "context": {"source_url": "https://example.com/pricing", "utm_source": "bench", "utm_campaign": "load"},
        "intent": {"primary": "pricing_inquiry", "qualification_score": (i % 100) as u64},
        "transcript": {"summary": format!("Bench conversation {i}"), "messages": 5},
        "consent": {"given_at": "2026-05-04T11:21:00Z", "text_version": "v3", "purpose": "sales_followup"}
    })
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let idx = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    sorted[idx.min(sorted.len() - 1)]
}

pub async fn run(args: BenchArgs) -> anyhow::Result<()> {
    let mut opts = StackOptions::default().with_env_ports()?;
    opts.prefix = "leadbridge-bench".into();
    opts.worker_concurrency = args.worker_concurrency;
    opts.sim.rate_limit_max = args.hubspot_rate_limit;
    let stack = LocalStack::start(opts).await?;
    let client = StackClient::new(stack.info.clone());

    let distinct = ((args.events as f64) * (1.0 - args.duplicate_ratio))
        .round()
        .max(1.0) as usize;
    let duplicates = args.events.saturating_sub(distinct);
    let persons = ((distinct as f64) * 0.9).ceil() as usize;
    // Deliveries: every distinct event once, and `duplicates` repeats spread over them;
    // a repeat is sent right after its original, so the two are often in flight together.
    let mut deliveries: Vec<usize> = Vec::with_capacity(args.events);
    let every = if duplicates == 0 {
        usize::MAX
    } else {
        distinct.div_ceil(duplicates)
    };
    let mut repeats = 0;
    for i in 0..distinct {
        deliveries.push(i);
        if repeats < duplicates && i.is_multiple_of(every) {
            deliveries.push(i);
            repeats += 1;
        }
    }
    while repeats < duplicates {
        deliveries.push(repeats % distinct);
        repeats += 1;
    }
    println!(
        "bench: {} deliveries ({} distinct events for {} people, {} duplicate deliveries), {} in flight, {} worker(s)",
        deliveries.len(), distinct, persons, duplicates, args.concurrency, args.worker_concurrency
    );

    let accepted_at: Arc<Mutex<HashMap<usize, DateTime<Utc>>>> = Arc::default();
    let statuses: Arc<Mutex<HashMap<u16, usize>>> = Arc::default();
    let sem = Arc::new(Semaphore::new(args.concurrency));
    let t0 = Utc::now() - chrono::Duration::seconds(60);
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for i in deliveries.iter().copied() {
        let permit = sem.clone().acquire_owned().await?;
        let (client, accepted_at, statuses) =
            (client.clone(), accepted_at.clone(), statuses.clone());
        let body = event(i, i % persons, t0);
        tasks.spawn(async move {
            let _permit = permit;
            let status = client.post(&body).await.map(|(s, _)| s).unwrap_or(0);
            *statuses.lock().await.entry(status).or_default() += 1;
            if status == 202 {
                accepted_at.lock().await.entry(i).or_insert_with(Utc::now);
            }
        });
    }
    while tasks.join_next().await.is_some() {}
    let ingest_secs = started.elapsed().as_secs_f64();
    let accepted = accepted_at.lock().await.clone();

    // Wait until every accepted event has its note (or the deadline passes).
    let deadline = Instant::now() + Duration::from_secs(600);
    let mut notes;
    loop {
        notes = client
            .hubspot_all("notes", "&properties=hs_note_body")
            .await?;
        if notes.len() >= accepted.len() || Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let drained_secs = started.elapsed().as_secs_f64();
    // Then every event must be terminal in the ledger.
    let ledger = stack.ledger();
    let (mut synced, mut dead, mut lost) = (0usize, 0usize, 0usize);
    for i in accepted.keys() {
        let rec = ledger.get(&format!("evt_bench_{i:06}")).await?;
        match rec.map(|r| r.status) {
            Some(LedgerStatus::Synced) => synced += 1,
            Some(LedgerStatus::Dead) => dead += 1,
            _ => lost += 1,
        }
    }
    let mut latencies: Vec<f64> = Vec::new();
    let mut notes_per_event: HashMap<usize, usize> = HashMap::new();
    for n in &notes {
        let body = n["properties"]["hs_note_body"].as_str().unwrap_or("");
        let Some(idx) = body
            .split("leadbridge-event:evt_bench_")
            .nth(1)
            .and_then(|s| s.get(..6))
            .and_then(|s| s.parse::<usize>().ok())
        else {
            continue;
        };
        *notes_per_event.entry(idx).or_default() += 1;
        let created = n["createdAt"]
            .as_str()
            .and_then(|t| DateTime::parse_from_rfc3339(t).ok());
        if let (Some(created), Some(acc)) = (created, accepted.get(&idx)) {
            latencies.push(
                (created.with_timezone(&Utc) - *acc)
                    .num_microseconds()
                    .unwrap_or(0) as f64
                    / 1000.0,
            );
        }
    }
    latencies.sort_by(|a, b| a.total_cmp(b));
    let duplicate_notes: usize = notes_per_event.values().map(|n| n.saturating_sub(1)).sum();
    let contacts = client.hubspot_all("contacts", "").await?.len();
    let stats = client.admin(reqwest::Method::GET, "stats", None).await?;
    let crm_calls = stats["total"].as_u64().unwrap_or(0);
    let ddb = stack.dynamodb_requests.get();
    let persons_reached = accepted
        .keys()
        .map(|i| i % persons)
        .collect::<std::collections::HashSet<_>>()
        .len();

    let summary = json!({
        "events": deliveries.len(),
        "distinct_events": distinct,
        "duplicate_deliveries": duplicates,
        "events_per_s": (deliveries.len() as f64 / ingest_secs * 10.0).round() / 10.0,
        "latency_ms_p50": (percentile(&latencies, 50.0) * 10.0).round() / 10.0,
        "latency_ms_p99": (percentile(&latencies, 99.0) * 10.0).round() / 10.0,
        "latency_ms_max": (latencies.last().copied().unwrap_or(0.0) * 10.0).round() / 10.0,
        "crm_calls_per_lead": ((crm_calls as f64 / distinct as f64) * 1000.0).round() / 1000.0,
        "dynamodb_requests_per_lead": ((ddb as f64 / distinct as f64) * 1000.0).round() / 1000.0,
        "crm_duplicates": contacts.saturating_sub(persons_reached),
        "duplicate_notes": duplicate_notes,
        "lost": lost + distinct.saturating_sub(accepted.len()),
        "synced": synced,
        "dead": dead,
        "http_statuses": statuses.lock().await.iter().map(|(k, v)| (k.to_string(), json!(v))).collect::<serde_json::Map<_, _>>(),
        "ingest_seconds": (ingest_secs * 100.0).round() / 100.0,
        "drain_seconds": (drained_secs * 100.0).round() / 100.0,
        "hubspot_rate_limit_per_10s": args.hubspot_rate_limit,
        "worker_concurrency": args.worker_concurrency,
    });
    if let Some(dir) = args.out.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(&args.out, serde_json::to_string_pretty(&summary)? + "\n")?;

    println!("\n{:<30} {:>12}", "metric", "value");
    println!("{}", "-".repeat(43));
    for k in [
        "events",
        "distinct_events",
        "duplicate_deliveries",
        "events_per_s",
        "latency_ms_p50",
        "latency_ms_p99",
        "latency_ms_max",
        "crm_calls_per_lead",
        "dynamodb_requests_per_lead",
        "crm_duplicates",
        "duplicate_notes",
        "lost",
        "synced",
        "dead",
        "ingest_seconds",
        "drain_seconds",
    ] {
        println!("{:<30} {:>12}", k, summary[k].to_string());
    }
    println!("\nwritten to {}", args.out.display());
    stack.shutdown().await;
    anyhow::ensure!(
        summary["lost"] == 0 && summary["crm_duplicates"] == 0 && duplicate_notes == 0,
        "the bench found lost or duplicated leads"
    );
    let refused: Vec<String> = summary["http_statuses"]
        .as_object()
        .map(|m| {
            m.iter()
                .filter(|(k, _)| k.as_str() != "202")
                .map(|(k, v)| format!("{v} × {k}"))
                .collect()
        })
        .unwrap_or_default();
    anyhow::ensure!(
        refused.is_empty(),
        "every delivery (duplicates included) must be answered 202; got {}",
        refused.join(", ")
    );
    Ok(())
}
