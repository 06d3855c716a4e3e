//! `leadbridge import FILE`: a backfill of leads from a CSV file (header row)
//! or JSON Lines of canonical events. Every row is validated first, by the
//! same parser ingest uses; with any bad row nothing is sent (unless
//! `skip_invalid`), and the report names each bad row by its line. Then the
//! rows are sent, signed, to `POST /v1/events`, through the bulk lane by default
//! (`Leadbridge-Lane: bulk`: large batches, many leads per CRM call). Each row's event id is its own
//! `event_id`, or derived from the bot and the row's content, so re-running the
//! same file sends nothing twice: ingest answers the rows it already has as
//! duplicates.

use std::collections::HashMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use lb_vendors::canonical::{self, Normalization};
use lb_vendors::ParseError;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

/// Columns a CSV may name by their short name; any other column that is not
/// a canonical path (`visitor.email`, `context.utm_source`, `answers.budget`)
/// is an answer (`budget` → `answers.budget`).
const ALIASES: &[(&str, &str)] = &[
    ("email", "visitor.email"),
    ("phone", "visitor.phone"),
    ("wa_id", "visitor.wa_id"),
    ("whatsapp", "visitor.wa_id"),
    ("name", "visitor.name"),
    ("first_name", "visitor.first_name"),
    ("last_name", "visitor.last_name"),
    ("company", "visitor.company"),
    ("country", "visitor.country"),
    ("state", "visitor.state"),
    ("source_url", "context.source_url"),
    ("utm_source", "context.utm_source"),
    ("utm_medium", "context.utm_medium"),
    ("utm_campaign", "context.utm_campaign"),
    ("summary", "transcript.summary"),
    ("consent_given_at", "consent.given_at"),
    ("create_deal", "crm_target.create_deal"),
    ("deal_stage", "crm_target.deal_stage"),
    ("deal_pipeline", "crm_target.deal_pipeline"),
    ("deal_amount", "crm_target.deal_amount"),
    ("deal_close_date", "crm_target.deal_close_date"),
];

const TOP: &[&str] = &[
    "event_id",
    "event_type",
    "occurred_at",
    "bot_id",
    "conversation_id",
];

/// What fills a row's missing fields.
#[derive(Debug, Clone)]
pub struct Defaults {
    /// The bot of rows without a `bot_id`.
    pub bot_id: Option<String>,
    /// The capture time of rows without an `occurred_at` (stable across
    /// re-runs: the file's modification time by default).
    pub occurred_at: DateTime<Utc>,
    /// `lead.created` unless given.
    pub event_type: String,
}

/// One row of the file, as the canonical event it becomes.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    /// The file's line the row starts on (1-based; the header is line 1 of a CSV).
    pub line: u64,
    pub event: Value,
}

/// A row that would be refused, with every reason.
#[derive(Debug, Clone, PartialEq)]
pub struct BadRow {
    pub line: u64,
    pub errors: Vec<String>,
}

/// The file read and checked: rows that pass, rows that do not.
#[derive(Debug, Clone, Default)]
pub struct Checked {
    pub valid: Vec<Row>,
    pub invalid: Vec<BadRow>,
}

impl Checked {
    /// The report of bad rows, one line each.
    pub fn report(&self) -> String {
        self.invalid
            .iter()
            .map(|b| format!("line {}: {}\n", b.line, b.errors.join("; ")))
            .collect()
    }
}

fn column_path(name: &str) -> String {
    let n = name.trim();
    let lower = n.to_ascii_lowercase();
    if let Some((_, p)) = ALIASES.iter().find(|(a, _)| *a == lower) {
        return (*p).to_string();
    }
    if TOP.contains(&lower.as_str())
        || [
            "visitor.",
            "context.",
            "answers.",
            "transcript.",
            "consent.",
            "intent.",
            "crm_target.",
        ]
        .iter()
        .any(|p| lower.starts_with(p))
    {
        return lower;
    }
    format!("answers.{n}")
}

fn put(target: &mut Map<String, Value>, path: &str, value: &str) {
    match path.split_once('.') {
        // A CSV cell is text: the one boolean a row may set is read as one
        // (anything else stays text, and the parser names the row's mistake).
        None if path == "create_deal" => {
            let v = match value.to_ascii_lowercase().as_str() {
                "true" | "yes" | "1" => Value::Bool(true),
                "false" | "no" | "0" => Value::Bool(false),
                _ => Value::String(value.to_string()),
            };
            target.insert(path.to_string(), v);
        }
        None => {
            target.insert(path.to_string(), Value::String(value.to_string()));
        }
        Some((head, rest)) => {
            let inner = target
                .entry(head.to_string())
                .or_insert_with(|| Value::Object(Map::new()));
            if let Value::Object(m) = inner {
                // answers keep the rest of the name whole (`answers.budget.eur`)
                if head == "answers" {
                    m.insert(rest.to_string(), Value::String(value.to_string()));
                } else {
                    put(m, rest, value);
                }
            }
        }
    }
}

/// The rows of a CSV (header row; empty cells are absent fields).
pub fn read_csv(text: &str) -> Result<Vec<Row>, String> {
    let mut reader = csv::ReaderBuilder::new()
        .flexible(false)
        .trim(csv::Trim::All)
        .from_reader(text.as_bytes());
    let headers = reader
        .headers()
        .map_err(|e| format!("the header row: {e}"))?
        .clone();
    let paths: Vec<String> = headers.iter().map(column_path).collect();
    let mut rows = Vec::new();
    for record in reader.records() {
        let record = record.map_err(|e| match e.position() {
            Some(p) => format!("line {}: {e}", p.line()),
            None => e.to_string(),
        })?;
        let line = record.position().map_or(0, |p| p.line());
        let mut event = Map::new();
        for (path, cell) in paths.iter().zip(record.iter()) {
            if !cell.is_empty() {
                put(&mut event, path, cell);
            }
        }
        rows.push(Row {
            line,
            event: Value::Object(event),
        });
    }
    Ok(rows)
}

/// The rows of a JSON Lines file of canonical events (blank lines skipped).
/// A line that is not a JSON object is a bad row.
pub fn read_jsonl(text: &str) -> (Vec<Row>, Vec<BadRow>) {
    let mut rows = Vec::new();
    let mut bad = Vec::new();
    for (i, l) in text.lines().enumerate() {
        let line = i as u64 + 1;
        if l.trim().is_empty() {
            continue;
        }
        match lb_vendors::json::parse_strict(l.as_bytes()) {
            Ok(v @ Value::Object(_)) => rows.push(Row { line, event: v }),
            Ok(_) => bad.push(BadRow {
                line,
                errors: vec!["not a JSON object".into()],
            }),
            Err(e) => bad.push(BadRow {
                line,
                errors: vec![format!("not JSON: {e}")],
            }),
        }
    }
    (rows, bad)
}

/// Fills the defaults, derives missing event ids, and validates every row
/// as ingest would (policies of the bot's route are ingest's to apply).
pub fn check(
    rows: Vec<Row>,
    mut invalid: Vec<BadRow>,
    d: &Defaults,
    now: DateTime<Utc>,
) -> Checked {
    let mut valid = Vec::new();
    let mut seen: HashMap<String, u64> = HashMap::new();
    let norm = Normalization {
        not_after: Some(now + canonical::CLOCK_SKEW),
        ..Normalization::default()
    };
    for mut row in rows {
        let Value::Object(m) = &mut row.event else {
            continue;
        };
        if let Some(b) = &d.bot_id {
            m.entry("bot_id")
                .or_insert_with(|| Value::String(b.clone()));
        }
        m.entry("event_type")
            .or_insert_with(|| Value::String(d.event_type.clone()));
        m.entry("occurred_at").or_insert_with(|| {
            Value::String(
                d.occurred_at
                    .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            )
        });
        if !m.contains_key("event_id") {
            // The bot and the row's content: the same row of a re-run is the same event.
            let digest = Sha256::digest(Value::Object(m.clone()).to_string().as_bytes());
            m.insert(
                "event_id".into(),
                Value::String(format!("import-{}", &hex::encode(digest)[..32])),
            );
        }
        let id = m["event_id"].as_str().unwrap_or("").to_string();
        match canonical::parse_value_with(&row.event, &norm) {
            Ok(_) => {
                if let Some(first) = seen.get(&id) {
                    invalid.push(BadRow {
                        line: row.line,
                        errors: vec![format!(
                            "event_id {id:?} is also the event of line {first}; one row per event"
                        )],
                    });
                } else {
                    seen.insert(id, row.line);
                    valid.push(row);
                }
            }
            Err(ParseError::Invalid(errors)) => invalid.push(BadRow {
                line: row.line,
                errors: errors
                    .iter()
                    .map(|e| format!("{} ({}): {}", e.field, e.code, e.message))
                    .collect(),
            }),
            Err(ParseError::NotJson(msg)) => invalid.push(BadRow {
                line: row.line,
                errors: vec![msg],
            }),
        }
    }
    invalid.sort_by_key(|b| b.line);
    Checked { valid, invalid }
}

/// What sending the rows did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Sent {
    pub queued: usize,
    /// Rows ingest already had (an earlier run of the same file).
    pub duplicates: usize,
    /// Refused by the bot's route or policies: `(line, answer)`.
    pub refused: Vec<(u64, String)>,
    /// Not accepted after retries (ingest or the queue unavailable): `(line, why)`.
    pub failed: Vec<(u64, String)>,
}

impl Sent {
    pub fn summary(&self, skipped: usize) -> String {
        format!(
            "{} queued, {} already sent (duplicates), {} refused by the bot's policies, {} failed, {} invalid skipped",
            self.queued,
            self.duplicates,
            self.refused.len(),
            self.failed.len(),
            skipped
        )
    }
}

/// Where to send: the ingest URL and the webhook signing secret.
#[derive(Debug, Clone)]
pub struct Target {
    pub ingest_url: String,
    pub secret: String,
    /// The lane the rows travel (`Leadbridge-Lane`): bulk for a backfill.
    pub lane: lb_domain::Lane,
}

/// Sends the rows, `concurrency` at a time, each retried on 429/5xx/transport
/// errors up to 4 times; `progress` is called after each row.
pub async fn send(
    target: &Target,
    rows: &[Row],
    concurrency: usize,
    progress: impl Fn() + Send + Sync + 'static,
) -> Sent {
    let http = reqwest::Client::new();
    let gate = std::sync::Arc::new(tokio::sync::Semaphore::new(concurrency.max(1)));
    let progress = std::sync::Arc::new(progress);
    let mut tasks = tokio::task::JoinSet::new();
    for row in rows {
        let (http, target, gate, progress) =
            (http.clone(), target.clone(), gate.clone(), progress.clone());
        let (line, event) = (row.line, row.event.clone());
        tasks.spawn(async move {
            let _permit = gate.acquire_owned().await;
            let r = send_one(&http, &target, &event).await;
            progress();
            (line, r)
        });
    }
    let mut results = Vec::with_capacity(rows.len());
    while let Some(done) = tasks.join_next().await {
        match done {
            Ok(r) => results.push(r),
            Err(e) => results.push((0, Err(format!("the sending task failed: {e}")))),
        }
    }
    results.sort_by_key(|(line, _)| *line);
    let mut sent = Sent::default();
    for (line, r) in results {
        match r {
            Ok((202, v)) if v["duplicate"] == true => sent.duplicates += 1,
            Ok((202, _)) => sent.queued += 1,
            Ok((status, v)) => {
                let detail = v["errors"]
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
                            .collect::<Vec<_>>()
                            .join(", ")
                    })
                    .filter(|s| !s.is_empty())
                    .unwrap_or_else(|| v["detail"].as_str().unwrap_or("").to_string());
                sent.refused.push((line, format!("{status}: {detail}")));
            }
            Err(e) => sent.failed.push((line, e)),
        }
    }
    sent
}

async fn send_one(
    http: &reqwest::Client,
    t: &Target,
    event: &Value,
) -> Result<(u16, Value), String> {
    let body = event.to_string().into_bytes();
    let mut last = String::new();
    for attempt in 0..5u32 {
        if attempt > 0 {
            tokio::time::sleep(Duration::from_millis(250 * 2u64.pow(attempt))).await;
        }
        let sig = lb_vendors::signature::sign(&t.secret, Utc::now().timestamp(), &body);
        let resp = http
            .post(format!("{}/v1/events", t.ingest_url.trim_end_matches('/')))
            .header("content-type", "application/json")
            .header(lb_vendors::signature::HEADER, sig)
            .header("leadbridge-lane", t.lane.as_str())
            .body(body.clone())
            .send()
            .await;
        match resp {
            Ok(r) => {
                let status = r.status().as_u16();
                let v: Value = r.json().await.unwrap_or(Value::Null);
                if status == 429 || status >= 500 {
                    last = format!("{status}: {}", v["detail"].as_str().unwrap_or(""));
                    continue;
                }
                return Ok((status, v));
            }
            Err(e) => last = e.to_string(),
        }
    }
    Err(last)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn defaults() -> Defaults {
        Defaults {
            bot_id: Some("bot_import".into()),
            occurred_at: "2026-05-04T10:00:00Z".parse().unwrap(),
            event_type: "lead.created".into(),
        }
    }

    const CSV: &str = "email,phone,name,budget,utm_source\n\
        ada@example.com,+14155552671,Ada Lovelace,50k,google\n\
        not-an-email,,Bad Row,,\n\
        \"grace@example.com\",,\"Hopper, Grace\",\"10k\",\n\
        ,,Nobody,,\n";

    #[test]
    fn a_csv_becomes_canonical_events_and_bad_rows_are_named_by_line() {
        let now: DateTime<Utc> = "2026-11-29T10:00:00Z".parse().unwrap();
        let checked = check(read_csv(CSV).unwrap(), Vec::new(), &defaults(), now);
        assert_eq!(checked.valid.len(), 2);
        let ada = &checked.valid[0].event;
        assert_eq!(ada["visitor"]["email"], "ada@example.com");
        assert_eq!(ada["answers"]["budget"], "50k");
        assert_eq!(ada["context"]["utm_source"], "google");
        assert_eq!(ada["bot_id"], "bot_import");
        assert_eq!(checked.valid[1].event["visitor"]["name"], "Hopper, Grace");
        let lines: Vec<u64> = checked.invalid.iter().map(|b| b.line).collect();
        assert_eq!(lines, vec![3, 5]);
        let report = checked.report();
        assert!(
            report.contains("line 3: visitor.email (invalid_email)"),
            "{report}"
        );
        assert!(
            report.contains("line 5: visitor (identity_required)"),
            "{report}"
        );
    }

    #[test]
    fn a_csv_row_can_ask_for_a_deal_with_its_amount_and_close_date() {
        let now: DateTime<Utc> = "2026-11-29T10:00:00Z".parse().unwrap();
        let csv = "email,create_deal,deal_stage,deal_amount,deal_close_date\n\
            ada@example.com,yes,qualifiedtobuy,1250.50,2026-12-31\n\
            bob@example.com,maybe,,\"1,250\",31/12/2026\n";
        let checked = check(read_csv(csv).unwrap(), Vec::new(), &defaults(), now);
        assert_eq!(checked.valid.len(), 1);
        let deal = &checked.valid[0].event["crm_target"];
        assert_eq!(deal["create_deal"], true);
        assert_eq!(deal["deal_stage"], "qualifiedtobuy");
        assert_eq!(
            deal["deal_amount"], "1250.50",
            "sent as written; ingest normalizes"
        );
        assert_eq!(deal["deal_close_date"], "2026-12-31");
        let report = checked.report();
        for want in [
            "line 3: crm_target.create_deal (invalid_type)",
            "crm_target.deal_amount (invalid_amount)",
            "crm_target.deal_close_date (invalid_date)",
        ] {
            assert!(report.contains(want), "{want}: {report}");
        }
    }

    #[test]
    fn a_rows_event_id_is_stable_across_runs_and_two_equal_rows_are_one_error() {
        let now: DateTime<Utc> = "2026-11-29T10:00:00Z".parse().unwrap();
        let a = check(read_csv(CSV).unwrap(), Vec::new(), &defaults(), now);
        let b = check(read_csv(CSV).unwrap(), Vec::new(), &defaults(), now);
        assert_eq!(a.valid[0].event["event_id"], b.valid[0].event["event_id"]);
        assert!(a.valid[0].event["event_id"]
            .as_str()
            .unwrap()
            .starts_with("import-"));
        let twice = "email\nada@example.com\nada@example.com\n";
        let c = check(read_csv(twice).unwrap(), Vec::new(), &defaults(), now);
        assert_eq!(c.valid.len(), 1);
        assert_eq!(c.invalid[0].line, 3);
        assert!(c.invalid[0].errors[0].contains("also the event of line 2"));
    }

    #[test]
    fn json_lines_are_canonical_events_and_a_broken_line_is_a_bad_row() {
        let now: DateTime<Utc> = "2026-11-29T10:00:00Z".parse().unwrap();
        let text =
            "{\"event_id\":\"e1\",\"visitor\":{\"email\":\"a@b.co\"}}\n\n[1]\n{\"event_id\":\n";
        let (rows, bad) = read_jsonl(text);
        let checked = check(rows, bad, &defaults(), now);
        assert_eq!(checked.valid.len(), 1);
        assert_eq!(checked.valid[0].event["event_id"], "e1");
        let lines: Vec<u64> = checked.invalid.iter().map(|b| b.line).collect();
        assert_eq!(lines, vec![3, 4]);
    }

    #[test]
    fn a_ragged_csv_is_refused_with_its_line() {
        let err = read_csv("email,name\nada@example.com\n").unwrap_err();
        assert!(err.contains("line 2"), "{err}");
    }
}
