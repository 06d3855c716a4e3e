//! `make demo`: the sample events through the whole local pipeline, and a report
//! of what reached HubSpot, what was suppressed, what was dead-lettered and the alert.

use std::path::Path;
use std::time::Duration;

use anyhow::Context;
use lb_local::client::{eventually, StackClient};
use lb_local::{LocalStack, StackOptions};
use lb_pipeline::{LedgerRecord, LedgerStatus};
use serde_json::Value;

struct Sent {
    label: String,
    event_id: String,
    status: u16,
    answer: Value,
}

pub async fn run(dir: &Path) -> anyhow::Result<()> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    anyhow::ensure!(!files.is_empty(), "no sample events in {}", dir.display());

    println!(
        "Starting the local stack (moto server, HubSpot simulator, ingest, worker, dlq-alerter)…"
    );
    let stack = LocalStack::start(StackOptions::default().with_env_ports()?).await?;
    let client = StackClient::new(stack.info.clone());

    // The first event is delivered twice, as a chatbot retrying a slow webhook would.
    let mut plan: Vec<(String, Value)> = Vec::new();
    for (i, f) in files.iter().enumerate() {
        let name = f
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .to_string();
        let body: Value = serde_json::from_slice(&std::fs::read(f)?)
            .with_context(|| format!("parsing {name}"))?;
        plan.push((name.clone(), body.clone()));
        if i == 1 {
            let (first, body) = plan[0].clone();
            plan.push((format!("{first} (delivered again)"), body));
        }
    }
    let mut sent = Vec::new();
    for (label, body) in plan {
        let (status, answer) = client.post(&body).await?;
        let event_id = body["event_id"].as_str().unwrap_or("?").to_string();
        sent.push(Sent {
            label,
            event_id,
            status,
            answer,
        });
    }

    let accepted: Vec<&Sent> = sent
        .iter()
        .filter(|s| s.status == 202 && s.answer["duplicate"] != true)
        .collect();
    let mut records: Vec<(String, LedgerRecord)> = Vec::new();
    for s in &accepted {
        let ledger = stack.ledger();
        let rec =
            eventually(
                &format!("{} to be synced or dead", s.event_id),
                Duration::from_secs(90),
                || {
                    let ledger = ledger.clone();
                    let id = s.event_id.clone();
                    async move {
                        ledger.get(&id).await.ok().flatten().filter(|r| {
                            matches!(r.status, LedgerStatus::Synced | LedgerStatus::Dead)
                        })
                    }
                },
            )
            .await?;
        if !records.iter().any(|(id, _)| id == &s.event_id) {
            records.push((s.event_id.clone(), rec));
        }
    }
    let any_dead = records.iter().any(|(_, r)| r.status == LedgerStatus::Dead);
    let sqs = aws_sdk_sqs::Client::new(&stack.sdk);
    let alerts = if any_dead {
        eventually("the dead-letter alert", Duration::from_secs(60), || async {
            client
                .take_alerts(&sqs)
                .await
                .ok()
                .filter(|a| !a.is_empty())
        })
        .await?
    } else {
        vec![]
    };

    print_report(&stack, &client, &sent, &records, &alerts).await?;
    crate::demo_sources::run(&stack, &client).await?;
    crate::demo_crms::run(&stack).await?;
    println!("\nLogs (JSON, PII-masked): target/demo.log");
    stack.shutdown().await;
    Ok(())
}

async fn print_report(
    stack: &LocalStack,
    client: &StackClient,
    sent: &[Sent],
    records: &[(String, LedgerRecord)],
    alerts: &[(String, String)],
) -> anyhow::Result<()> {
    println!(
        "\n== 1. Webhooks (POST {}/v1/events, signed) ==",
        stack.info.ingest_url
    );
    for s in sent {
        let what = match s.status {
            202 if s.answer["duplicate"] == true => {
                "202 duplicate delivery: acknowledged, not queued again".to_string()
            }
            202 => "202 queued".to_string(),
            _ => {
                let errs: Vec<String> = s.answer["errors"]
                    .as_array()
                    .map(|e| {
                        e.iter()
                            .map(|e| {
                                format!(
                                    "{} ({})",
                                    e["field"].as_str().unwrap_or(""),
                                    e["code"].as_str().unwrap_or("")
                                )
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                format!(
                    "{} {}: {}",
                    s.status,
                    s.answer["title"].as_str().unwrap_or(""),
                    errs.join(", ")
                )
            }
        };
        println!("  {:<44} {:<15} {}", s.label, s.event_id, what);
    }

    println!("\n== 2. Ledger (DynamoDB: one record per event) ==");
    for (id, r) in records {
        let detail = match (&r.outcome, &r.last_error) {
            (Some(o), _) => format!(
                "contact {} ({}), note {}{}",
                o.contact_id,
                if o.contact_created {
                    "created"
                } else {
                    "updated"
                },
                o.note_id.as_deref().unwrap_or("-"),
                o.deal_id
                    .as_deref()
                    .map(|d| format!(", deal {d}"))
                    .unwrap_or_default()
            ),
            (None, Some(e)) => format!(
                "{} {}{}: {}",
                e.class.as_str(),
                e.code,
                e.http_status
                    .map(|s| format!(" HTTP {s}"))
                    .unwrap_or_default(),
                e.message
            ),
            _ => String::new(),
        };
        println!(
            "  {:<15} {:<7} attempts {}  {}",
            id,
            r.status.as_str(),
            r.attempts,
            detail
        );
    }

    println!(
        "\n== 3. HubSpot (simulator at {}) ==",
        stack.info.crm.hubspot.base_url
    );
    // Before the report's own reads, so that the count is the pipeline's calls only.
    let stats = client.admin(reqwest::Method::GET, "stats", None).await?;
    let contacts = client
        .hubspot_all(
            "contacts",
            "&associations=notes,deals&properties=email,firstname,lastname,phone,hs_whatsapp_phone_number,country,company,leadbridge_source",
        )
        .await?;
    let notes = client.hubspot_all("notes", "").await?;
    let deals = client
        .hubspot_all("deals", "&properties=dealname,dealstage")
        .await?;
    println!(
        "  {} contacts, {} notes, {} deals",
        contacts.len(),
        notes.len(),
        deals.len()
    );
    for c in &contacts {
        let p = &c["properties"];
        let s = |k: &str| p[k].as_str().unwrap_or("").to_string();
        let count = |k: &str| {
            c["associations"][k]["results"]
                .as_array()
                .map_or(0, Vec::len)
        };
        println!(
            "  contact {:<6} {:<26} {:<16} {:<14} {:<3} {:<22} {} note(s), {} deal(s)",
            c["id"].as_str().unwrap_or(""),
            if s("email").is_empty() {
                format!("wa:{}", s("hs_whatsapp_phone_number"))
            } else {
                s("email")
            },
            format!("{} {}", s("firstname"), s("lastname")).trim(),
            s("phone"),
            s("country"),
            s("leadbridge_source"),
            count("notes"),
            count("deals"),
        );
    }
    for d in &deals {
        println!(
            "  deal    {:<6} {} [{}]",
            d["id"].as_str().unwrap_or(""),
            d["properties"]["dealname"].as_str().unwrap_or(""),
            d["properties"]["dealstage"].as_str().unwrap_or("")
        );
    }
    println!(
        "  HubSpot API calls made by the pipeline: {} in all",
        stats["total"]
    );
    if let Some(routes) = stats["by_route"].as_object() {
        for (route, n) in routes {
            println!("    {n:>3}  {route}");
        }
    }

    let duplicates = sent
        .iter()
        .filter(|s| s.answer["duplicate"] == true)
        .count();
    let synced = records
        .iter()
        .filter(|(_, r)| r.status == LedgerStatus::Synced)
        .count();
    let dead = records
        .iter()
        .filter(|(_, r)| r.status == LedgerStatus::Dead)
        .count();
    let rejected = sent.iter().filter(|s| s.status >= 400).count();
    println!("\n== 4. Summary ==");
    println!(
        "  {} webhooks: {} accepted, {} duplicate delivery suppressed, {} rejected at the door",
        sent.len(),
        records.len(),
        duplicates,
        rejected
    );
    println!("  {synced} synced to HubSpot, {dead} dead-lettered (kept in the ledger with the payload, replayable), 0 lost");

    println!("\n== 5. Alert sent to SNS ({}) ==", stack.info.topic_arn);
    if alerts.is_empty() {
        println!("  (none: nothing was dead-lettered)");
    }
    for (subject, message) in alerts {
        println!("  Subject: {subject}");
        for line in message.lines() {
            println!("  | {line}");
        }
    }
    Ok(())
}
