//! `make bench`: the same leads (a share of them duplicate deliveries, some
//! concurrent with their original) through three contenders, one after the
//! other, on one local stack and one HubSpot simulator with the same enforced
//! rate limit:
//!
//! - **realtime**: leadbridge's real-time lane (signed webhooks → FIFO queue →
//!   worker batches of up to 10);
//! - **bulk**: leadbridge's bulk lane (`Leadbridge-Lane: bulk` → standard queue →
//!   worker batches of up to 100);
//! - **peer**: a naive integration written here the way Zapier/n8n-style
//!   "create or update contact, then add a note" steps work: one lead at a time,
//!   search the contact by email, create or update it, add the note.
//!
//! For each: leads/s sustained under the limit, CRM calls, DynamoDB and SQS
//! requests per lead, AWS cost per million leads, latency (accepted → note in
//! the CRM), duplicates and lost leads; and the ratios leadbridge / peer.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

use anyhow::Context;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use clap::Args;
use lb_local::client::StackClient;
use lb_local::ops::OpsTarget;
use lb_local::{LocalStack, StackOptions};
use lb_pipeline::{LedgerStatus, ListFilter};
use serde_json::{json, Map, Value};
use tokio::sync::{Mutex, Semaphore};

#[derive(Args, Debug)]
pub struct BenchArgs {
    /// Webhook deliveries per contender (duplicates included).
    #[arg(long, default_value_t = 1000)]
    events: usize,
    /// Share of deliveries that repeat an earlier event.
    #[arg(long, default_value_t = 0.2)]
    duplicate_ratio: f64,
    /// Webhook requests in flight at once (leadbridge contenders).
    #[arg(long, default_value_t = 16)]
    concurrency: usize,
    /// Concurrent real-time worker invocations (the template's MaximumConcurrency).
    #[arg(long, default_value_t = 5)]
    worker_concurrency: usize,
    /// The CRM's enforced limit, requests per 10 s (HubSpot Free/Starter: 100;
    /// Pro/Enterprise: 190). Search has its own 5/s, as HubSpot's.
    #[arg(long, alias = "hubspot-rate-limit", default_value_t = 100)]
    crm_limit: u32,
    /// Which contenders to run, in order.
    #[arg(long, value_delimiter = ',', default_value = "realtime,bulk,peer")]
    contenders: Vec<String>,
    #[arg(long, default_value = "target/bench/summary.json")]
    out: PathBuf,
    /// Where the release builds of the functions and of `hello` are (`make
    /// bench` builds them into target/release): their package size and cold
    /// start are measured beside hello world's. Without it, skipped.
    #[arg(long)]
    functions: Option<PathBuf>,
    /// Cold starts per function (the median is reported).
    #[arg(long, default_value_t = 3)]
    cold_starts: usize,
}

/// Public us-east-1 prices (USD per million), as of 2026-11; see `docs/operations.md`.
mod price {
    /// DynamoDB on-demand, per million write request units (every request is
    /// priced as a write: an upper bound, reads cost a fifth).
    pub const DYNAMODB_WRITE: f64 = 0.625;
    /// SQS per million requests: FIFO and standard queues.
    pub const SQS_FIFO: f64 = 0.50;
    pub const SQS_STANDARD: f64 = 0.40;
    /// Lambda (arm64) per million invocations; compute is left out (local
    /// timings do not transfer to Lambda).
    pub const LAMBDA_REQUESTS: f64 = 0.20;
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Contender {
    Realtime,
    Bulk,
    Peer,
}

impl Contender {
    fn parse(s: &str) -> anyhow::Result<Self> {
        Ok(match s.trim() {
            "realtime" => Contender::Realtime,
            "bulk" => Contender::Bulk,
            "peer" => Contender::Peer,
            other => anyhow::bail!("unknown contender {other:?}: realtime, bulk or peer"),
        })
    }
    fn name(self) -> &'static str {
        match self {
            Contender::Realtime => "realtime",
            Contender::Bulk => "bulk",
            Contender::Peer => "peer",
        }
    }
    /// The area code of the contender's people (their phones are its own too).
    fn area(self) -> u32 {
        match self {
            Contender::Realtime => 415,
            Contender::Bulk => 628,
            Contender::Peer => 650,
        }
    }
    /// Event ids and people are the contender's own, so that no contender meets
    /// another's ledger memory (the simulator's ids restart after its reset).
    fn prefix(self) -> &'static str {
        match self {
            Contender::Realtime => "rt",
            Contender::Bulk => "bk",
            Contender::Peer => "pe",
        }
    }
}

/// The deliveries: every distinct event once, and the duplicates spread over
/// them, each right after its original (so the two are often in flight together).
struct Plan {
    deliveries: Vec<usize>,
    distinct: usize,
    duplicates: usize,
    persons: usize,
}

impl Plan {
    fn new(events: usize, duplicate_ratio: f64) -> Plan {
        let distinct = ((events as f64) * (1.0 - duplicate_ratio)).round().max(1.0) as usize;
        let duplicates = events.saturating_sub(distinct);
        let persons = ((distinct as f64) * 0.9).ceil() as usize;
        let every = if duplicates == 0 {
            usize::MAX
        } else {
            distinct.div_ceil(duplicates)
        };
        let mut deliveries = Vec::with_capacity(events);
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
        Plan {
            deliveries,
            distinct,
            duplicates,
            persons,
        }
    }
}

/// Event `i` of `person`; `t0` fixes its time, so that a duplicate delivery is
/// the same payload (a different one would be a 409 conflict, not a duplicate).
fn event(c: Contender, i: usize, person: usize, t0: DateTime<Utc>) -> Value {
    let p = c.prefix();
    json!({
        "event_id": format!("evt_{p}_{i:06}"),
        "event_type": if i.is_multiple_of(3) { "lead.qualified" } else { "lead.created" },
        "occurred_at": (t0 + chrono::Duration::milliseconds(i as i64)).to_rfc3339(),
        "bot_id": "bot_bench",
        "conversation_id": format!("conv_{i}"),
        "visitor": {"email": format!("Person.{p}.{person}@Bench-Corp.example"), "name": format!("Person {person}"),
                    "phone": format!("+1 {} 555 {:04}", c.area(), person % 10_000), "country": "US"},
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

fn round(x: f64, places: i32) -> f64 {
    let f = 10f64.powi(places);
    (x * f).round() / f
}

/// What one contender did.
#[derive(Default)]
struct Measured {
    /// When each delivered event was accepted (the peer: when the burst arrived).
    accepted_at: HashMap<usize, DateTime<Utc>>,
    statuses: HashMap<u16, usize>,
    started: Option<DateTime<Utc>>,
    crm_calls: u64,
    /// The CRM calls per route.
    crm_by_route: std::collections::BTreeMap<String, u64>,
    rate_limited: u64,
    dynamodb: u64,
    /// DynamoDB requests per operation (`PutItem`, `Query`, …) during the run.
    dynamodb_by_operation: std::collections::BTreeMap<String, u64>,
    sqs: u64,
    lambda_invocations: u64,
    synced: usize,
    dead: usize,
    /// Accepted events with no terminal ledger status (leadbridge) or no note (peer).
    unfinished: usize,
}

/// Business calls the simulator counted (its list routes, which only the bench
/// reads, left out).
fn crm_calls(stats: &Value) -> u64 {
    crm_calls_by_route(stats).values().sum()
}

/// [`crm_calls`] per route (`POST /crm/v3/objects/contacts/batch/upsert`, …).
fn crm_calls_by_route(stats: &Value) -> std::collections::BTreeMap<String, u64> {
    stats["by_route"]
        .as_object()
        .map(|m| {
            m.iter()
                .filter(|(route, _)| {
                    !matches!(
                        route.as_str(),
                        "GET /crm/v3/objects/notes" | "GET /crm/v3/objects/contacts"
                    )
                })
                .map(|(route, n)| (route.clone(), n.as_u64().unwrap_or(0)))
                .filter(|(_, n)| *n > 0)
                .collect()
        })
        .unwrap_or_default()
}

async fn leadbridge(
    stack: &LocalStack,
    client: &StackClient,
    c: Contender,
    plan: &Plan,
    concurrency: usize,
    bar: &indicatif::ProgressBar,
) -> anyhow::Result<Measured> {
    let watcher = OpsTarget::from_stack(&stack.info).connect().await.ledger;
    let ddb0 = stack.dynamodb_requests.get();
    let ddb_ops0 = stack.dynamodb_requests.by_operation();
    let sqs0 = stack.sqs_requests.get();
    let inv0 = stack
        .worker_stats
        .batches
        .load(std::sync::atomic::Ordering::Relaxed);
    let accepted_at: Arc<Mutex<HashMap<usize, DateTime<Utc>>>> = Arc::default();
    let statuses: Arc<Mutex<HashMap<u16, usize>>> = Arc::default();
    let sem = Arc::new(Semaphore::new(concurrency));
    let t0 = Utc::now() - chrono::Duration::seconds(60);
    let started = Utc::now();
    let lane = if c == Contender::Bulk {
        "bulk"
    } else {
        "realtime"
    };
    let mut tasks = tokio::task::JoinSet::new();
    bar.set_message("sending");
    bar.set_length(plan.deliveries.len() as u64);
    bar.set_position(0);
    for i in plan.deliveries.iter().copied() {
        let permit = sem.clone().acquire_owned().await?;
        bar.inc(1);
        let (client, accepted_at, statuses) =
            (client.clone(), accepted_at.clone(), statuses.clone());
        let body = event(c, i, i % plan.persons, t0);
        tasks.spawn(async move {
            let _permit = permit;
            let status = client
                .post_in_lane(&body, lane)
                .await
                .map(|(s, _)| s)
                .unwrap_or(0);
            *statuses.lock().await.entry(status).or_default() += 1;
            if status == 202 {
                accepted_at.lock().await.entry(i).or_insert_with(Utc::now);
            }
        });
    }
    while tasks.join_next().await.is_some() {}
    let accepted = accepted_at.lock().await.clone();
    // Done when every accepted event is synced or dead (read on a ledger
    // client of its own, so the polling is not counted).
    let deadline = Instant::now() + Duration::from_secs(900);
    let since = Some(started - chrono::Duration::seconds(1));
    let (mut synced, mut dead);
    bar.set_message("syncing");
    bar.set_length(accepted.len() as u64);
    loop {
        let prefix = format!("evt_{}_", c.prefix());
        let count = |recs: Vec<lb_pipeline::LedgerRecord>| {
            recs.iter()
                .filter(|r| r.event_id.starts_with(&prefix))
                .count()
        };
        synced = count(
            watcher
                .list(&ListFilter {
                    since,
                    ..ListFilter::status(LedgerStatus::Synced)
                })
                .await?,
        );
        dead = count(
            watcher
                .list(&ListFilter {
                    since,
                    ..ListFilter::status(LedgerStatus::Dead)
                })
                .await?,
        );
        bar.set_position((synced + dead) as u64);
        if synced + dead >= accepted.len() || Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let stats = client.admin(reqwest::Method::GET, "stats", None).await?;
    let statuses = statuses.lock().await.clone();
    Ok(Measured {
        unfinished: accepted.len().saturating_sub(synced + dead),
        accepted_at: accepted,
        statuses,
        started: Some(started),
        crm_calls: crm_calls(&stats),
        crm_by_route: crm_calls_by_route(&stats),
        rate_limited: stats["rate_limited"].as_u64().unwrap_or(0),
        dynamodb: stack.dynamodb_requests.get() - ddb0,
        dynamodb_by_operation: stack
            .dynamodb_requests
            .by_operation()
            .into_iter()
            .map(|(op, n)| {
                let before = ddb_ops0.get(&op).copied().unwrap_or(0);
                (op, n - before)
            })
            .filter(|(_, n)| *n > 0)
            .collect(),
        sqs: stack.sqs_requests.get() - sqs0,
        // ingest: one per delivery; the worker: one per batch.
        lambda_invocations: plan.deliveries.len() as u64
            + stack
                .worker_stats
                .batches
                .load(std::sync::atomic::Ordering::Relaxed)
            - inv0,
        synced,
        dead,
    })
}

/// The naive peer: for each delivery, in order, search the contact by email,
/// create or update it, add the note; a 429 is waited out and retried.
async fn peer(
    client: &StackClient,
    plan: &Plan,
    bar: &indicatif::ProgressBar,
) -> anyhow::Result<Measured> {
    let hs = client.info.crm.hubspot.clone();
    let http = reqwest::Client::new();
    let call = |method: reqwest::Method, path: String, body: Value| {
        let (http, hs) = (http.clone(), hs.clone());
        async move {
            loop {
                let r = http
                    .request(method.clone(), format!("{}{path}", hs.base_url))
                    .bearer_auth(&hs.token)
                    .json(&body)
                    .send()
                    .await?;
                let status = r.status().as_u16();
                if status == 429 {
                    let wait = r
                        .headers()
                        .get("retry-after")
                        .and_then(|v| v.to_str().ok())
                        .and_then(|v| v.parse::<u64>().ok())
                        .map(Duration::from_secs)
                        .unwrap_or(Duration::from_secs(1));
                    tokio::time::sleep(wait).await;
                    continue;
                }
                let v: Value = r.json().await.unwrap_or(Value::Null);
                return anyhow::Ok((status, v));
            }
        }
    };
    let t0 = Utc::now() - chrono::Duration::seconds(60);
    let started = Utc::now();
    let mut accepted_at = HashMap::new();
    let mut unfinished = 0;
    bar.set_message("one by one");
    bar.set_length(plan.deliveries.len() as u64);
    bar.set_position(0);
    for &i in &plan.deliveries {
        bar.inc(1);
        // The whole burst arrived at the start; the peer works through it.
        accepted_at.entry(i).or_insert(started);
        let ev = event(Contender::Peer, i, i % plan.persons, t0);
        let email = ev["visitor"]["email"]
            .as_str()
            .unwrap_or_default()
            .trim()
            .to_lowercase();
        let props = json!({"email": email, "firstname": "Person", "lastname": format!("{}", i % plan.persons),
                           "phone": format!("+1{}555{:04}", Contender::Peer.area(), (i % plan.persons) % 10_000)});
        let (_, found) = call(
            reqwest::Method::POST,
            "/crm/v3/objects/contacts/search".into(),
            json!({"filterGroups": [{"filters": [{"propertyName": "email", "operator": "EQ", "value": email}]}],
                   "properties": ["email"], "limit": 1}),
        )
        .await?;
        let id = match found["results"][0]["id"].as_str() {
            Some(id) => {
                call(
                    reqwest::Method::PATCH,
                    format!("/crm/v3/objects/contacts/{id}"),
                    json!({"properties": props}),
                )
                .await?;
                Some(id.to_string())
            }
            None => {
                let (status, created) = call(
                    reqwest::Method::POST,
                    "/crm/v3/objects/contacts".into(),
                    json!({"properties": props}),
                )
                .await?;
                match (status, created["id"].as_str()) {
                    (201, Some(id)) => Some(id.to_string()),
                    // Search lagged behind an earlier create: HubSpot names the record.
                    _ => created["message"]
                        .as_str()
                        .and_then(lb_crm::hubspot::existing_id),
                }
            }
        };
        let Some(id) = id else {
            unfinished += 1;
            continue;
        };
        let (status, _) = call(
            reqwest::Method::POST,
            "/crm/v3/objects/notes".into(),
            json!({"properties": {"hs_timestamp": Utc::now().to_rfc3339(),
                                  "hs_note_body": format!("{} Ref: leadbridge-event:{}", ev["transcript"]["summary"], ev["event_id"].as_str().unwrap_or_default())},
                   "associations": [{"to": {"id": id}, "types": [{"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": 202}]}]}),
        )
        .await?;
        if status != 201 {
            unfinished += 1;
        }
    }
    let stats = client.admin(reqwest::Method::GET, "stats", None).await?;
    Ok(Measured {
        accepted_at,
        statuses: HashMap::new(),
        started: Some(started),
        crm_calls: crm_calls(&stats),
        crm_by_route: crm_calls_by_route(&stats),
        rate_limited: stats["rate_limited"].as_u64().unwrap_or(0),
        synced: plan.distinct.saturating_sub(unfinished),
        unfinished,
        ..Measured::default()
    })
}

/// Reads the CRM after a run (notes and contacts) and makes the contender's row.
async fn row(
    client: &StackClient,
    c: Contender,
    plan: &Plan,
    m: &Measured,
    crm_limit: u32,
) -> anyhow::Result<Value> {
    let notes = client
        .hubspot_all("notes", "&properties=hs_note_body")
        .await?;
    let contacts = client.hubspot_all("contacts", "").await?.len();
    let tag = format!("leadbridge-event:evt_{}_", c.prefix());
    let mut latencies: Vec<f64> = Vec::new();
    let mut notes_per_event: HashMap<usize, usize> = HashMap::new();
    let mut last_note: Option<DateTime<Utc>> = None;
    for n in &notes {
        let body = n["properties"]["hs_note_body"].as_str().unwrap_or("");
        let Some(idx) = body
            .split(tag.as_str())
            .nth(1)
            .and_then(|s| s.get(..6))
            .and_then(|s| s.parse::<usize>().ok())
        else {
            continue;
        };
        *notes_per_event.entry(idx).or_default() += 1;
        let created = n["createdAt"]
            .as_str()
            .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
            .map(|t| t.with_timezone(&Utc));
        if let Some(created) = created {
            last_note = last_note.max(Some(created));
            if let Some(acc) = m.accepted_at.get(&idx) {
                latencies.push((created - *acc).num_microseconds().unwrap_or(0) as f64 / 1000.0);
            }
        }
    }
    latencies.sort_by(|a, b| a.total_cmp(b));
    let duplicate_notes: usize = notes_per_event.values().map(|n| n.saturating_sub(1)).sum();
    let persons_reached = m
        .accepted_at
        .keys()
        .map(|i| i % plan.persons)
        .collect::<HashSet<_>>()
        .len();
    let leads = plan.distinct as f64;
    let seconds = match (m.started, last_note) {
        (Some(s), Some(l)) => ((l - s).num_milliseconds().max(1)) as f64 / 1000.0,
        _ => 0.0,
    };
    let sqs_price = if c == Contender::Bulk {
        price::SQS_STANDARD
    } else {
        price::SQS_FIFO
    };
    let cost = (m.dynamodb as f64 * price::DYNAMODB_WRITE
        + m.sqs as f64 * sqs_price
        + m.lambda_invocations as f64 * price::LAMBDA_REQUESTS)
        / leads;
    let crm_rate = m.crm_calls as f64 / seconds.max(0.001);
    let limit_rate = crm_limit as f64 / 10.0;
    let sustained_share = lb_pipeline::throttle::SUSTAINED_SHARE;
    let limit_bound = m.rate_limited > 0 || crm_rate >= sustained_share * limit_rate;
    // What the CRM limit alone would allow at this contender's calls per lead:
    // leadbridge sustains its limiter's share of the limit, the peer all of it
    // (it calls until the CRM answers 429).
    let sustained = if c == Contender::Peer {
        1.0
    } else {
        sustained_share
    };
    let calls_per_lead = m.crm_calls as f64 / leads;
    let at_limit =
        (calls_per_lead > 0.0).then(|| round(sustained * limit_rate / calls_per_lead, 1));
    Ok(json!({
        "contender": c.name(),
        "leads": plan.distinct,
        "deliveries": plan.deliveries.len(),
        "leads_per_s": round(leads / seconds.max(0.001), 2),
        "seconds": round(seconds, 1),
        "leads_per_s_at_crm_limit": at_limit,
        "crm_calls_per_lead": round(calls_per_lead, 3),
        "crm_calls_per_s": round(crm_rate, 2),
        "crm_calls_per_lead_by_route": m
            .crm_by_route
            .iter()
            .map(|(route, n)| (route.clone(), json!(round(*n as f64 / leads, 3))))
            .collect::<Map<_, _>>(),
        "crm_rate_limited": m.rate_limited,
        "dynamodb_requests_per_lead": round(m.dynamodb as f64 / leads, 2),
        "dynamodb_requests_per_lead_by_operation": m
            .dynamodb_by_operation
            .iter()
            .map(|(op, n)| (op.clone(), json!(round(*n as f64 / leads, 2))))
            .collect::<Map<_, _>>(),
        "sqs_requests_per_lead": round(m.sqs as f64 / leads, 2),
        "aws_cost_usd_per_million_leads": round(cost, 2),
        "latency_ms_p50": round(percentile(&latencies, 50.0), 1),
        "latency_ms_p99": round(percentile(&latencies, 99.0), 1),
        "crm_duplicates": contacts.saturating_sub(persons_reached),
        "duplicate_notes": duplicate_notes,
        "lost": m.unfinished + plan.distinct.saturating_sub(m.accepted_at.len()),
        "synced": m.synced,
        "dead": m.dead,
        "limit_bound": limit_bound,
        "http_statuses": m.statuses.iter().map(|(k, v)| (k.to_string(), json!(v))).collect::<Map<_, _>>(),
    }))
}

pub async fn run(args: BenchArgs) -> anyhow::Result<()> {
    let contenders: Vec<Contender> = args
        .contenders
        .iter()
        .map(|s| Contender::parse(s))
        .collect::<anyhow::Result<_>>()?;
    let mut opts = StackOptions::default().with_env_ports()?;
    opts.prefix = "leadbridge-bench".into();
    opts.worker_concurrency = args.worker_concurrency;
    opts.sim.rate_limit_max = args.crm_limit;
    opts.sim.rate_limit_window_ms = 10_000;
    let stack = LocalStack::start(opts).await?;
    let client = StackClient::new(stack.info.clone());
    let plan = Plan::new(args.events, args.duplicate_ratio);
    println!(
        "bench: per contender {} deliveries ({} leads of {} people, {} duplicate deliveries); \
         HubSpot simulator limited to {} requests / 10 s (search 5/s); contenders: {}",
        plan.deliveries.len(),
        plan.distinct,
        plan.persons,
        plan.duplicates,
        args.crm_limit,
        contenders
            .iter()
            .map(|c| c.name())
            .collect::<Vec<_>>()
            .join(", ")
    );
    let mut rows: Vec<Value> = Vec::new();
    for &c in &contenders {
        // An empty CRM and fresh rate windows for each (the config is kept).
        client.admin(reqwest::Method::POST, "reset", None).await?;
        println!("running {} …", c.name());
        let bar = crate::progress_bar("leads");
        let m = match c {
            Contender::Peer => peer(&client, &plan, &bar).await?,
            _ => leadbridge(&stack, &client, c, &plan, args.concurrency, &bar).await?,
        };
        bar.finish_and_clear();
        rows.push(row(&client, c, &plan, &m, args.crm_limit).await?);
    }
    let cold = match &args.functions {
        Some(dir) => Some(cold_starts(&stack, dir, args.cold_starts.max(1)).await?),
        None => None,
    };
    stack.shutdown().await;
    print_table(&rows);
    if let Some(cold) = &cold {
        print_cold_starts(cold);
    }

    let by_name = |n: &str| rows.iter().find(|r| r["contender"] == n);
    let mut summary = match by_name("realtime") {
        // Today's keys, for the real-time lane.
        Some(rt) => json!({
            "events": rt["deliveries"],
            "distinct_events": plan.distinct,
            "duplicate_deliveries": plan.duplicates,
            "leads_per_s": rt["leads_per_s"],
            "latency_ms_p50": rt["latency_ms_p50"],
            "latency_ms_p99": rt["latency_ms_p99"],
            "crm_calls_per_lead": rt["crm_calls_per_lead"],
            "dynamodb_requests_per_lead": rt["dynamodb_requests_per_lead"],
            "crm_duplicates": rt["crm_duplicates"],
            "duplicate_notes": rt["duplicate_notes"],
            "lost": rt["lost"],
            "synced": rt["synced"],
            "dead": rt["dead"],
            "http_statuses": rt["http_statuses"],
            "hubspot_rate_limit_per_10s": args.crm_limit,
            "worker_concurrency": args.worker_concurrency,
        }),
        None => json!({"hubspot_rate_limit_per_10s": args.crm_limit}),
    };
    if let Some(cold) = cold {
        summary["cold_start"] = Value::Array(cold);
    }
    summary["contenders"] = Value::Object(
        rows.iter()
            .map(|r| {
                (
                    r["contender"].as_str().unwrap_or("?").to_string(),
                    r.clone(),
                )
            })
            .collect(),
    );
    if let Some(dir) = args.out.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(&args.out, serde_json::to_string_pretty(&summary)? + "\n")?;
    println!("\nwritten to {}", args.out.display());

    for r in rows.iter().filter(|r| r["contender"] != "peer") {
        anyhow::ensure!(
            r["lost"] == 0 && r["crm_duplicates"] == 0 && r["duplicate_notes"] == 0,
            "leadbridge's {} lane lost or duplicated leads: {r}",
            r["contender"]
        );
        let refused: Vec<String> = r["http_statuses"]
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
    }
    Ok(())
}

fn print_table(rows: &[Value]) {
    let peer = rows.iter().find(|r| r["contender"] == "peer");
    let name = |r: &Value| r["contender"].as_str().unwrap_or("?").to_string();
    let mut header: Vec<String> = vec!["metric".into()];
    header.extend(rows.iter().map(name));
    let others: Vec<&Value> = rows.iter().filter(|r| r["contender"] != "peer").collect();
    if peer.is_some() {
        header.extend(others.iter().map(|r| format!("{}/peer", name(r))));
    }
    let mut lines = Vec::new();
    for k in [
        "leads",
        "deliveries",
        "leads_per_s",
        "leads_per_s_at_crm_limit",
        "seconds",
        "crm_calls_per_lead",
        "crm_calls_per_s",
        "crm_rate_limited",
        "dynamodb_requests_per_lead",
        "sqs_requests_per_lead",
        "aws_cost_usd_per_million_leads",
        "latency_ms_p50",
        "latency_ms_p99",
        "crm_duplicates",
        "duplicate_notes",
        "lost",
    ] {
        let mut line = vec![k.to_string()];
        line.extend(rows.iter().map(|r| r[k].to_string()));
        if let Some(p) = peer {
            line.extend(others.iter().map(|r| match (r[k].as_f64(), p[k].as_f64()) {
                (Some(a), Some(b)) if b != 0.0 => format!("{:.2}×", a / b),
                _ => "–".into(),
            }));
        }
        lines.push(line);
    }
    let header: Vec<&str> = header.iter().map(String::as_str).collect();
    let numeric: Vec<usize> = (1..header.len()).collect();
    println!("\n{}", lb_local::text::table(&header, &lines, &numeric));
    for r in rows {
        if r["limit_bound"] == false {
            println!(
                "note: the CRM limit did not bind the {} run ({} CRM calls/s, none rate-limited): \
                 the local stack did (moto, the worker's concurrency); its leads/s is a floor",
                r["contender"], r["crm_calls_per_s"]
            );
        }
    }
    println!(
        "leads_per_s_at_crm_limit: what the CRM limit alone would allow at each one's CRM calls \
         per lead (leadbridge sustains 80% of the limit under its limiter; the peer calls until \
         the CRM answers 429): the comparison once the emulator is not what binds."
    );
    println!(
        "AWS cost: DynamoDB requests priced as on-demand writes (${}/M, an upper bound), SQS ${}/M \
         (FIFO) or ${}/M (standard), Lambda ${}/M invocations (compute left out); us-east-1, 2026-11.",
        price::DYNAMODB_WRITE,
        price::SQS_FIFO,
        price::SQS_STANDARD,
        price::LAMBDA_REQUESTS
    );
}

/// Package size and cold start of each function and of hello world, built the
/// same way (`--functions DIR`), against the bench's stack (moto, simulators).
async fn cold_starts(stack: &LocalStack, dir: &Path, runs: usize) -> anyhow::Result<Vec<Value>> {
    let events = PathBuf::from("target/bench/events");
    crate::events::write_all_as(
        Path::new("events/leads"),
        &events,
        &stack.info.webhook_secret,
        false,
    )?;
    let read = |p: &str| -> anyhow::Result<Value> {
        let path = events.join(p);
        Ok(serde_json::from_slice(
            &std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?,
        )?)
    };
    let env = crate::stack_env(&stack.info);
    let functions = [
        ("hello", json!({"hello": "world"}), "hello"),
        (
            "ingest",
            read("apigw/post-new-lead.json")?,
            "\"statusCode\":202",
        ),
        (
            "worker",
            read("sqs/worker-batch.json")?,
            "\"batchItemFailures\":[]",
        ),
        (
            "dlq-alerter",
            read("sqs/dlq-batch.json")?,
            "\"batchItemFailures\":[]",
        ),
    ];
    println!(
        "cold starts: {runs} per function, binaries from {}",
        dir.display()
    );
    let mut out = Vec::new();
    for (name, event, expect) in functions {
        let binary = dir.join(name);
        let zipped = lb_local::coldstart::zipped_size(&binary).with_context(|| {
            format!(
                "{}: build it with `make bench` (cargo build --release)",
                binary.display()
            )
        })?;
        let (mut inits, mut firsts) = (Vec::new(), Vec::new());
        for run in 0..runs {
            let log = PathBuf::from(format!("target/bench/coldstart-{name}-{run}.log"));
            let c = lb_local::coldstart::measure(&binary, name, &env, event.clone(), &log).await?;
            let answer = c.response.to_string();
            anyhow::ensure!(
                !c.errored && answer.contains(expect),
                "{name}'s first invocation answered {answer} (expected {expect}; its log: {})",
                log.display()
            );
            inits.push(c.init.as_secs_f64() * 1000.0);
            firsts.push(c.first_invocation.as_secs_f64() * 1000.0);
        }
        let median = |mut v: Vec<f64>| {
            v.sort_by(|a, b| a.total_cmp(b));
            round(v[v.len() / 2], 1)
        };
        out.push(json!({
            "function": name,
            "package_bytes_zipped": zipped,
            "package_mb_zipped": round(zipped as f64 / 1_048_576.0, 2),
            "init_ms_p50": median(inits),
            "first_invocation_ms_p50": median(firsts),
        }));
    }
    Ok(out)
}

fn print_cold_starts(rows: &[Value]) {
    let hello = rows.iter().find(|r| r["function"] == "hello");
    let ratio = |r: &Value, k: &str| match (r[k].as_f64(), hello.and_then(|h| h[k].as_f64())) {
        (Some(a), Some(b)) if b > 0.0 => format!("{:.2}×", a / b),
        _ => "–".into(),
    };
    let lines: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            vec![
                r["function"].as_str().unwrap_or("?").to_string(),
                r["package_mb_zipped"].to_string(),
                r["init_ms_p50"].to_string(),
                ratio(r, "init_ms_p50"),
                r["first_invocation_ms_p50"].to_string(),
            ]
        })
        .collect();
    println!(
        "{}",
        lb_local::text::table(
            &[
                "function",
                "zip MB",
                "init ms",
                "init/hello",
                "1st invocation ms"
            ],
            &lines,
            &[1, 2, 3, 4],
        )
    );
    println!(
        "init: process start → first `next` on a local Runtime API; 1st invocation: against moto \
         and the simulators (x86_64 release builds here; Lambda runs the arm64 ones)."
    );
}
