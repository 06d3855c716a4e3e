//! The chaos suite: many signed events through the local stack while the CRM
//! fails, throttles, stalls and goes down, and the worker crashes between the CRM
//! write and the ledger write. Then it checks what must hold: nothing lost,
//! nothing duplicated, no older event overwriting a newer one.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use lb_pipeline::retry::RetryPolicy;
use lb_pipeline::LedgerStatus;
use rand::seq::SliceRandom;
use reqwest::Method;
use serde::Serialize;
use serde_json::{json, Value};
use tokio::sync::{Mutex, Semaphore};

use crate::client::StackClient;
use crate::moto::Moto;
use crate::{LocalStack, StackOptions};

#[derive(Debug, Clone)]
pub struct ChaosConfig {
    pub prefix: String,
    /// Webhook deliveries in all.
    pub events: usize,
    /// Share of deliveries that repeat an earlier event (half of them concurrently with it).
    pub duplicate_ratio: f64,
    /// Share of distinct events that are a second event for a person, sent in the same second.
    pub same_person_ratio: f64,
    pub concurrency: usize,
    /// Deliveries started per second (`None`: as fast as possible). Pacing keeps the
    /// queue short: moto scans a FIFO queue's whole backlog on every receive.
    pub send_rate: Option<f64>,
    /// Share of CRM requests answered 503.
    pub error_rate: f64,
    /// The CRM's rate limit: this many requests per window (429 bursts above it).
    pub rate_limit: (u32, u64),
    /// Share of CRM requests that stall past the worker's timeout, and for how long.
    pub stall_rate: f64,
    pub stall: Duration,
    /// A total CRM outage, starting this long after the first delivery.
    pub outage_after: Duration,
    pub outage: Duration,
    /// A crash between the CRM write and the ledger write on every n-th sync.
    pub crash_every: u64,
    pub worker_timeout: Duration,
    pub worker_concurrency: usize,
    pub policy: RetryPolicy,
    /// How long to wait for every event to settle.
    pub settle_timeout: Duration,
}

impl ChaosConfig {
    /// `make chaos`: 5,000 deliveries and a 60-second outage.
    pub fn full() -> Self {
        Self {
            prefix: "leadbridge-chaos".into(),
            events: 5_000,
            duplicate_ratio: 0.2,
            same_person_ratio: 0.1,
            concurrency: 16,
            send_rate: Some(3.0),
            error_rate: 0.2,
            rate_limit: (60, 1_000),
            // Rare on purpose: one stall aborts a whole batch of 10, which then waits out
            // the visibility timeout.
            stall_rate: 0.002,
            stall: Duration::from_secs(25),
            outage_after: Duration::from_secs(10),
            outage: Duration::from_secs(60),
            crash_every: 50,
            // Long enough for a whole batch against moto under load (production: 60 s).
            worker_timeout: Duration::from_secs(20),
            worker_concurrency: 4,
            policy: RetryPolicy {
                base: Duration::from_millis(250),
                cap: Duration::from_secs(20),
                max_attempts: 12,
            },
            settle_timeout: Duration::from_secs(1_200),
        }
    }

    /// The reduced run in `make test`: the same faults, small and quick.
    pub fn reduced() -> Self {
        Self {
            prefix: format!("chaos{}", rand::random::<u32>()),
            events: 150,
            send_rate: None,
            outage_after: Duration::from_millis(500),
            outage: Duration::from_secs(3),
            crash_every: 25,
            stall_rate: 0.02,
            stall: Duration::from_secs(4),
            worker_timeout: Duration::from_secs(3),
            worker_concurrency: 3,
            rate_limit: (40, 1_000),
            policy: RetryPolicy {
                base: Duration::from_millis(100),
                cap: Duration::from_secs(2),
                max_attempts: 12,
            },
            // A deadline, not a wait: it settles in about a minute, but shares one moto
            // with the rest of the e2e binary, and a loaded CI host has taken 150 s.
            settle_timeout: Duration::from_secs(420),
            ..Self::full()
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct ChaosReport {
    pub sent: usize,
    pub distinct_events: usize,
    pub people: usize,
    pub accepted: usize,
    pub synced: usize,
    pub dead: usize,
    pub dead_by_reason: BTreeMap<String, usize>,
    pub lost: usize,
    pub crm_duplicates: usize,
    pub duplicate_notes: usize,
    pub out_of_order_overwrites: usize,
    pub crashes_injected: u64,
    /// Worker invocations (batches).
    pub worker_invocations: u64,
    pub crm_requests: u64,
    pub crm_faulted: u64,
    pub crm_rate_limited: u64,
    pub attempts: BTreeMap<u32, usize>,
    pub latency_ms_p50: f64,
    pub latency_ms_p99: f64,
    pub latency_ms_max: f64,
    pub seconds: f64,
    /// Events that did not settle: id, ledger status, attempts, last error code (first 20).
    pub unsettled: Vec<String>,
    /// Messages left on the queues (visible + in flight): leads, DLQ.
    pub left_on_queues: (u64, u64),
}

struct Planned {
    event_id: String,
    person: usize,
    body: Value,
}

fn plan(cfg: &ChaosConfig) -> (Vec<Planned>, Vec<usize>, usize) {
    let distinct = ((cfg.events as f64) * (1.0 - cfg.duplicate_ratio))
        .round()
        .max(1.0) as usize;
    let pairs = ((distinct as f64) * cfg.same_person_ratio / 2.0).round() as usize;
    let people = distinct - pairs;
    let base: DateTime<Utc> = Utc::now() - chrono::Duration::hours(1);
    let mut rng = rand::rng();
    let mut events = Vec::with_capacity(distinct);
    for i in 0..distinct {
        // The first `pairs` people get two events each, sent back to back; within a pair
        // the older event is sent second half of the time.
        let person = if i < 2 * pairs { i / 2 } else { i - pairs };
        let mut occurred = base + chrono::Duration::seconds(i as i64);
        if i < 2 * pairs && i % 2 == 1 && rand::random_bool(0.5) {
            occurred = base + chrono::Duration::seconds(i as i64 - 2);
        }
        let event_id = format!("evt_chaos_{i:06}");
        let body = json!({
            "event_id": event_id,
            "event_type": "lead.created",
            "occurred_at": occurred.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            "bot_id": "bot_chaos",
            "visitor": {"email": format!("chaos.p{person}@example.com"), "name": format!("Chaos Person{person}"),
                        "company": format!("Co {event_id}")},
            "context": {"source_url": "https://example.com/chaos", "utm_source": "chaos"},
            "transcript": {"summary": format!("chaos event {i}")}
        });
        events.push(Planned {
            event_id,
            person,
            body,
        });
    }
    let duplicates = cfg.events.saturating_sub(distinct);
    let mut order: Vec<usize> = (0..distinct).collect();
    // Shuffle whole blocks of 2 so that pairs stay within the same second.
    let mut blocks: Vec<Vec<usize>> = order.chunks(2).map(<[usize]>::to_vec).collect();
    blocks.shuffle(&mut rng);
    order = blocks.concat();
    let mut deliveries = Vec::with_capacity(cfg.events);
    let every = if duplicates == 0 {
        usize::MAX
    } else {
        distinct.div_ceil(duplicates)
    };
    let mut dups = 0;
    for (n, i) in order.iter().copied().enumerate() {
        deliveries.push(i);
        if dups < duplicates && n % every == 0 {
            // Half right behind the original (concurrent), half later.
            if dups % 2 == 0 {
                deliveries.push(i);
            } else {
                let at = deliveries.len() / 2;
                deliveries.insert(at, i);
            }
            dups += 1;
        }
    }
    (events, deliveries, people)
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    sorted[(((p / 100.0) * (sorted.len() - 1) as f64).round() as usize).min(sorted.len() - 1)]
}

async fn set_faults(client: &StackClient, cfg: &ChaosConfig) -> anyhow::Result<()> {
    client.admin(Method::DELETE, "faults", None).await?;
    client
        .admin(
            Method::POST,
            "faults",
            Some(json!({"kind": "error", "status": 503, "probability": cfg.error_rate})),
        )
        .await?;
    client
        .admin(Method::POST, "faults", Some(json!({"kind": "latency", "ms": cfg.stall.as_millis() as u64, "probability": cfg.stall_rate})))
        .await?;
    Ok(())
}

/// Runs the suite on its own stack (on `moto` if given) and returns the report.
pub async fn run(cfg: ChaosConfig, moto: Option<Arc<Moto>>) -> anyhow::Result<ChaosReport> {
    let (hooks, crash) = lb_pipeline::hooks::Hooks::crash_every(cfg.crash_every);
    let mut opts = StackOptions {
        worker_hooks: hooks,
        prefix: cfg.prefix.clone(),
        moto,
        worker_concurrency: cfg.worker_concurrency,
        worker_timeout: cfg.worker_timeout,
        // The CRM client waits longer than the function lives: a stalled call is cut off
        // by the function's timeout, as in Lambda.
        hubspot_timeout: cfg.worker_timeout + Duration::from_secs(5),
        safety_margin: Some(Duration::from_millis(500)),
        // As in AWS (360 s against a 60 s function), a message comes back only after
        // anything its last invocation sent can have landed.
        leads_visibility_secs: Some((cfg.worker_timeout + cfg.stall).as_secs() + 2),
        policy: cfg.policy,
        ..StackOptions::default()
    };
    opts.sim.rate_limit_max = cfg.rate_limit.0;
    opts.sim.rate_limit_window_ms = cfg.rate_limit.1;
    let stack = LocalStack::start(opts).await?;
    let client = StackClient::new(stack.info.clone());
    let started = Instant::now();
    set_faults(&client, &cfg).await?;

    let (events, deliveries, people) = plan(&cfg);
    let events = Arc::new(events);
    let accepted_at: Arc<Mutex<HashMap<usize, DateTime<Utc>>>> = Arc::default();

    // The outage: everything 503 for a while, then the usual faults again.
    let outage = {
        let (client, cfg) = (client.clone(), cfg.clone());
        tokio::spawn(async move {
            tokio::time::sleep(cfg.outage_after).await;
            let _ = client.admin(Method::DELETE, "faults", None).await;
            let _ = client
                .admin(
                    Method::POST,
                    "faults",
                    Some(json!({"kind": "error", "status": 503, "probability": 1.0})),
                )
                .await;
            tokio::time::sleep(cfg.outage).await;
            set_faults(&client, &cfg).await
        })
    };

    let sem = Arc::new(Semaphore::new(cfg.concurrency));
    let mut tasks = tokio::task::JoinSet::new();
    let mut pace = cfg
        .send_rate
        .map(|r| tokio::time::interval(Duration::from_secs_f64(1.0 / r.max(0.1))));
    for i in deliveries.iter().copied() {
        if let Some(p) = pace.as_mut() {
            p.tick().await;
        }
        let permit = sem.clone().acquire_owned().await?;
        let (client, events, accepted_at) = (client.clone(), events.clone(), accepted_at.clone());
        tasks.spawn(async move {
            let _permit = permit;
            // A sender retries until it gets a 2xx, as chatbot platforms do.
            for _ in 0..20 {
                if let Ok((202, _)) = client.post(&events[i].body).await {
                    accepted_at.lock().await.entry(i).or_insert_with(Utc::now);
                    return;
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        });
    }
    while tasks.join_next().await.is_some() {}
    outage.await??;

    // Settle: every accepted event synced or dead.
    let accepted = accepted_at.lock().await.clone();
    let ledger = stack.ledger();
    let mut pending: Vec<usize> = accepted.keys().copied().collect();
    let mut records: HashMap<usize, lb_pipeline::LedgerRecord> = HashMap::new();
    let deadline = Instant::now() + cfg.settle_timeout;
    while !pending.is_empty() && Instant::now() < deadline {
        let mut still = Vec::new();
        for i in pending {
            match ledger.get(&events[i].event_id).await? {
                Some(r) if matches!(r.status, LedgerStatus::Synced | LedgerStatus::Dead) => {
                    records.insert(i, r);
                }
                _ => still.push(i),
            }
        }
        pending = still;
        if !pending.is_empty() {
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
    client.admin(Method::DELETE, "faults", None).await?;
    let mut unsettled = Vec::new();
    for &i in pending.iter().take(20) {
        let r = ledger.get(&events[i].event_id).await?;
        unsettled.push(match r {
            Some(r) => format!(
                "{} {} attempts={} lease={:?} next={:?} error={:?}",
                events[i].event_id,
                r.status.as_str(),
                r.attempts,
                r.lease_until,
                r.next_attempt_at,
                r.last_error.map(|e| e.code)
            ),
            None => format!("{} not in the ledger", events[i].event_id),
        });
    }
    let sqs = aws_sdk_sqs::Client::new(&stack.sdk);
    let depth = |url: String| {
        let sqs = sqs.clone();
        async move {
            let a = sqs
                .get_queue_attributes()
                .queue_url(url)
                .attribute_names(aws_sdk_sqs::types::QueueAttributeName::All)
                .send()
                .await
                .ok()
                .and_then(|o| o.attributes)
                .unwrap_or_default();
            let n = |k: aws_sdk_sqs::types::QueueAttributeName| {
                a.get(&k).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0)
            };
            n(aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessages)
                + n(aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
        }
    };
    let left_on_queues = (
        depth(stack.info.queue_url.clone()).await,
        depth(stack.info.dlq_url.clone()).await,
    );

    // What the CRM holds.
    let stats = client.admin(Method::GET, "stats", None).await?;
    let contacts = client
        .hubspot_all("contacts", "&properties=email,company")
        .await?;
    let notes = client
        .hubspot_all("notes", "&properties=hs_note_body")
        .await?;
    let mut per_email: HashMap<String, Vec<&Value>> = HashMap::new();
    for c in &contacts {
        per_email
            .entry(c["properties"]["email"].as_str().unwrap_or("").to_string())
            .or_default()
            .push(c);
    }
    let crm_duplicates = per_email.values().map(|v| v.len().saturating_sub(1)).sum();
    let mut notes_per_event: HashMap<usize, usize> = HashMap::new();
    let mut note_created: HashMap<usize, DateTime<Utc>> = HashMap::new();
    for n in &notes {
        let body = n["properties"]["hs_note_body"].as_str().unwrap_or("");
        let Some(idx) = body
            .split("leadbridge-event:evt_chaos_")
            .nth(1)
            .and_then(|s| s.get(..6))
            .and_then(|s| s.parse::<usize>().ok())
        else {
            continue;
        };
        *notes_per_event.entry(idx).or_default() += 1;
        if let Some(t) = n["createdAt"]
            .as_str()
            .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
        {
            note_created.entry(idx).or_insert(t.with_timezone(&Utc));
        }
    }
    let duplicate_notes = notes_per_event.values().map(|n| n.saturating_sub(1)).sum();

    // An out-of-order overwrite: the contact holds the fields of event E while a
    // newer event F of the same person was synced.
    let occurred = |i: usize| {
        events[i].body["occurred_at"]
            .as_str()
            .unwrap_or("")
            .to_string()
    };
    let mut by_person: HashMap<usize, Vec<usize>> = HashMap::new();
    for (i, r) in &records {
        if r.status == LedgerStatus::Synced {
            by_person.entry(events[*i].person).or_default().push(*i);
        }
    }
    let index_of: HashMap<&str, usize> = events
        .iter()
        .enumerate()
        .map(|(i, e)| (e.event_id.as_str(), i))
        .collect();
    let mut out_of_order = 0;
    for (person, synced) in &by_person {
        let Some(c) = per_email
            .get(&format!("chaos.p{person}@example.com"))
            .and_then(|v| v.first())
        else {
            continue;
        };
        let holder = c["properties"]["company"]
            .as_str()
            .and_then(|co| co.strip_prefix("Co "))
            .and_then(|id| index_of.get(id));
        if let Some(&e) = holder {
            if synced.iter().any(|&f| occurred(f) > occurred(e)) {
                out_of_order += 1;
            }
        }
    }

    let synced = records
        .values()
        .filter(|r| r.status == LedgerStatus::Synced)
        .count();
    let mut dead_by_reason: BTreeMap<String, usize> = BTreeMap::new();
    let mut attempts: BTreeMap<u32, usize> = BTreeMap::new();
    for r in records.values() {
        *attempts.entry(r.attempts).or_default() += 1;
        if r.status == LedgerStatus::Dead {
            let code = r
                .last_error
                .as_ref()
                .map(|e| e.code.clone())
                .unwrap_or_else(|| "unknown".into());
            *dead_by_reason.entry(code).or_default() += 1;
        }
    }
    let mut latencies: Vec<f64> = note_created
        .iter()
        .filter_map(|(i, created)| {
            accepted
                .get(i)
                .map(|a| (*created - *a).num_milliseconds() as f64)
        })
        .collect();
    latencies.sort_by(|a, b| a.total_cmp(b));
    let distinct = events.len();
    let seen: HashSet<usize> = deliveries.iter().copied().collect();
    let report = ChaosReport {
        sent: deliveries.len(),
        distinct_events: distinct,
        people,
        accepted: accepted.len(),
        synced,
        dead: records.len() - synced,
        dead_by_reason,
        lost: seen.len() - records.len(),
        crm_duplicates,
        duplicate_notes,
        out_of_order_overwrites: out_of_order,
        crashes_injected: crash.crashes(),
        worker_invocations: stack
            .worker_stats
            .batches
            .load(std::sync::atomic::Ordering::Relaxed),
        crm_requests: stats["total"].as_u64().unwrap_or(0),
        crm_faulted: stats["faulted"].as_u64().unwrap_or(0),
        crm_rate_limited: stats["rate_limited"].as_u64().unwrap_or(0),
        attempts,
        latency_ms_p50: percentile(&latencies, 50.0),
        latency_ms_p99: percentile(&latencies, 99.0),
        latency_ms_max: latencies.last().copied().unwrap_or(0.0),
        seconds: (started.elapsed().as_secs_f64() * 10.0).round() / 10.0,
        unsettled,
        left_on_queues,
    };
    stack.shutdown().await;
    Ok(report)
}

impl ChaosReport {
    /// The zeros the suite exists to prove.
    pub fn holds(&self) -> bool {
        self.lost == 0
            && self.crm_duplicates == 0
            && self.duplicate_notes == 0
            && self.out_of_order_overwrites == 0
    }

    pub fn table(&self) -> String {
        let mut t = String::new();
        let mut row = |k: &str, v: String| t.push_str(&format!("  {k:<28} {v:>10}\n"));
        row("events sent", self.sent.to_string());
        row("distinct events", self.distinct_events.to_string());
        row("people", self.people.to_string());
        row("accepted (202)", self.accepted.to_string());
        row("synced", self.synced.to_string());
        row("dead", self.dead.to_string());
        for (reason, n) in &self.dead_by_reason {
            row(&format!("  dead: {reason}"), n.to_string());
        }
        row("lost", self.lost.to_string());
        row("CRM duplicates", self.crm_duplicates.to_string());
        row("duplicate notes", self.duplicate_notes.to_string());
        row(
            "out-of-order overwrites",
            self.out_of_order_overwrites.to_string(),
        );
        row("crashes injected", self.crashes_injected.to_string());
        row("worker invocations", self.worker_invocations.to_string());
        row("CRM requests", self.crm_requests.to_string());
        row("  answered with a fault", self.crm_faulted.to_string());
        row("  rate-limited (429)", self.crm_rate_limited.to_string());
        for (a, n) in &self.attempts {
            row(&format!("events with {a} attempt(s)"), n.to_string());
        }
        row("latency p50 (ms)", format!("{:.0}", self.latency_ms_p50));
        row("latency p99 (ms)", format!("{:.0}", self.latency_ms_p99));
        row("latency max (ms)", format!("{:.0}", self.latency_ms_max));
        row("wall time (s)", format!("{:.1}", self.seconds));
        row(
            "left on queue / DLQ",
            format!("{} / {}", self.left_on_queues.0, self.left_on_queues.1),
        );
        for u in &self.unsettled {
            t.push_str(&format!("  unsettled: {u}\n"));
        }
        t
    }
}
