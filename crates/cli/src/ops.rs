//! Operator commands: `leadbridge status EVENT_ID`, `leadbridge list`, `leadbridge replay`.
//! They read and write the ledger and the queue directly (a running local stack by
//! default, or a deployed one with `--aws`). Tables show masked identities only;
//! `--json` prints machine output.

use std::path::PathBuf;

use anyhow::{bail, Context};
use chrono::{DateTime, Duration, Utc};
use clap::Args;
use lb_domain::QueuedLead;
use lb_local::ops::{Ops, OpsTarget};
use lb_local::text::table;
use lb_pipeline::replay::ReplayReport;
use lb_pipeline::status::EventStatus;
use lb_pipeline::{LedgerRecord, LedgerStatus, ListFilter};
use serde::Serialize;

/// Which stack to operate on.
#[derive(Args, Debug, Clone)]
pub struct TargetArgs {
    /// The stack file of a running `leadbridge dev` (ignored with --aws).
    #[arg(long, default_value = "target/leadbridge-local.json")]
    stack_file: PathBuf,
    /// Use the standard AWS environment (credentials, region) and --table/--queue-url.
    #[arg(long)]
    aws: bool,
    /// A deployed stack, found by its CloudFormation name: its outputs give the
    /// table and queues (implies --aws; --table/--queue-url still win).
    #[arg(long, env = "LEADBRIDGE_STACK")]
    stack: Option<String>,
    /// The ledger table (with --aws).
    #[arg(long, env = "LEDGER_TABLE")]
    table: Option<String>,
    /// The leads queue (with --aws; replay needs it).
    #[arg(long, env = "LEADS_QUEUE_URL")]
    queue_url: Option<String>,
    /// The dead-letter queue (with --aws).
    #[arg(long, env = "LEADS_DLQ_URL")]
    dlq_url: Option<String>,
    /// The bulk lane's queue (with --aws; replaying a bulk lead needs it).
    #[arg(long, env = "BULK_QUEUE_URL")]
    bulk_queue_url: Option<String>,
    /// Machine output (JSON) instead of a table.
    #[arg(long)]
    json: bool,
}

impl TargetArgs {
    async fn target(&self) -> anyhow::Result<OpsTarget> {
        if let Some(name) = &self.stack {
            let sdk = lb_aws::sdk_config().await;
            let mut t = lb_local::deployed::DeployedStack::find(&sdk, name)
                .await?
                .ops_target()?;
            if let Some(table) = &self.table {
                t.table_name = table.clone();
            }
            t.queue_url = self.queue_url.clone().or(t.queue_url);
            t.dlq_url = self.dlq_url.clone().or(t.dlq_url);
            t.bulk_queue_url = self.bulk_queue_url.clone().or(t.bulk_queue_url);
            return Ok(t);
        }
        if self.aws {
            let table = self
                .table
                .clone()
                .context("--aws needs the ledger table: --stack NAME, --table or LEDGER_TABLE")?;
            Ok(OpsTarget::aws(
                table,
                self.queue_url.clone(),
                self.dlq_url.clone(),
                self.bulk_queue_url.clone(),
            ))
        } else {
            OpsTarget::from_stack_file(&self.stack_file)
        }
    }

    async fn connect(&self) -> anyhow::Result<Ops> {
        Ok(self.target().await?.connect().await)
    }
}

/// Which events to list or replay.
#[derive(Args, Debug, Clone)]
pub struct FilterArgs {
    /// Only events updated since: an RFC 3339 time (2026-05-01T00:00:00Z) or an age (90s, 30m, 2h, 7d).
    #[arg(long)]
    since: Option<String>,
    /// Only this bot's events.
    #[arg(long)]
    bot: Option<String>,
    /// Only events whose last error has this code (crm_rejected, retries_exhausted, …).
    #[arg(long)]
    reason: Option<String>,
    /// At most this many events (newest first).
    #[arg(long)]
    limit: Option<usize>,
}

impl FilterArgs {
    fn filter(&self, status: LedgerStatus, now: DateTime<Utc>) -> anyhow::Result<ListFilter> {
        Ok(ListFilter {
            status,
            since: self
                .since
                .as_deref()
                .map(|s| parse_since(s, now))
                .transpose()?,
            bot_id: self.bot.clone(),
            reason: self.reason.clone(),
            limit: self.limit,
        })
    }
}

#[derive(Args, Debug, Clone)]
pub struct StatusArgs {
    event_id: String,
    #[command(flatten)]
    target: TargetArgs,
}

#[derive(Args, Debug, Clone)]
pub struct ListArgs {
    /// The ledger status: received, queued, in_progress (or processing), retrying, synced, dead, rejected.
    #[arg(long, value_parser = parse_status)]
    status: LedgerStatus,
    #[command(flatten)]
    filter: FilterArgs,
    #[command(flatten)]
    target: TargetArgs,
}

#[derive(Args, Debug, Clone)]
pub struct ReplayArgs {
    /// Only dead events are replayed.
    #[arg(long, value_parser = parse_status, default_value = "dead")]
    status: LedgerStatus,
    #[command(flatten)]
    filter: FilterArgs,
    /// List what would be replayed; change nothing.
    #[arg(long)]
    dry_run: bool,
    #[command(flatten)]
    target: TargetArgs,
}

/// Who to erase: one or more of their identities.
#[derive(Args, Debug, Clone)]
pub struct EraseArgs {
    /// The person's email (normalized as ingest does).
    #[arg(long)]
    email: Option<String>,
    /// The person's phone number, with its +country code.
    #[arg(long)]
    phone: Option<String>,
    /// The person's WhatsApp id.
    #[arg(long)]
    wa_id: Option<String>,
    #[command(flatten)]
    target: TargetArgs,
}

pub async fn erase(args: EraseArgs) -> anyhow::Result<()> {
    let mut identities = Vec::new();
    if let Some(e) = &args.email {
        let e =
            lb_domain::Email::parse(e).map_err(|e| anyhow::anyhow!("--email: {}", e.message))?;
        identities.push(lb_domain::ContactKey::Email(e));
    }
    if let Some(p) = &args.phone {
        let p = lb_domain::Phone::parse(p, None)
            .map_err(|e| anyhow::anyhow!("--phone: {}", e.message))?;
        identities.push(lb_domain::ContactKey::Phone(p));
    }
    if let Some(w) = &args.wa_id {
        let w = lb_domain::WaId::parse(w).map_err(|e| anyhow::anyhow!("--wa-id: {}", e.message))?;
        identities.push(lb_domain::ContactKey::WaId(w));
    }
    if identities.is_empty() {
        bail!("name the person: --email, --phone and/or --wa-id");
    }
    let ops = args.target.connect().await?;
    let report = ops.erase(&identities).await?;
    print!("{}", report.render());
    Ok(())
}

fn parse_status(s: &str) -> Result<LedgerStatus, String> {
    match s {
        "processing" => Ok(LedgerStatus::InProgress),
        _ => LedgerStatus::parse(s).ok_or_else(|| {
            format!(
                "unknown status {s:?}: received, queued, in_progress (processing), retrying, synced, dead or rejected"
            )
        }),
    }
}

/// `2026-05-01T00:00:00Z`, or an age before `now`: `90s`, `30m`, `2h`, `7d`, `1w`.
pub fn parse_since(s: &str, now: DateTime<Utc>) -> anyhow::Result<DateTime<Utc>> {
    let s = s.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Ok(t.with_timezone(&Utc));
    }
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (n, unit) = s.split_at(split);
    let n: i64 =
        n.parse().ok().filter(|n| *n <= 100_000).with_context(|| {
            format!("--since {s:?}: expected an RFC 3339 time or an age like 2h")
        })?;
    let age = match unit {
        "s" => Duration::seconds(n),
        "m" => Duration::minutes(n),
        "h" => Duration::hours(n),
        "d" => Duration::days(n),
        "w" => Duration::weeks(n),
        _ => bail!("--since {s:?}: the unit is one of s, m, h, d, w"),
    };
    Ok(now - age)
}

pub async fn status(args: StatusArgs) -> anyhow::Result<()> {
    let ops = args.target.connect().await?;
    let Some(view) = ops.status(&args.event_id).await? else {
        bail!("no event {} in the ledger", args.event_id);
    };
    if args.target.json {
        println!("{}", serde_json::to_string_pretty(&view)?);
    } else {
        print!("{}", render_status(&view));
    }
    Ok(())
}

pub async fn list(args: ListArgs) -> anyhow::Result<()> {
    let filter = args.filter.filter(args.status, Utc::now())?;
    let ops = args.target.connect().await?;
    let records = ops.list(&filter).await?;
    if args.target.json {
        let rows: Vec<ListedEvent> = records.iter().map(ListedEvent::of).collect();
        println!("{}", serde_json::to_string_pretty(&rows)?);
    } else {
        print!("{}", render_list(&records));
    }
    Ok(())
}

pub async fn replay(args: ReplayArgs) -> anyhow::Result<()> {
    if args.status != LedgerStatus::Dead {
        bail!(
            "only dead events are replayed (--status dead), not {}",
            args.status.as_str()
        );
    }
    let filter = args.filter.filter(LedgerStatus::Dead, Utc::now())?;
    let ops = args.target.connect().await?;
    let bar = crate::progress_bar("dead events");
    bar.set_message(if args.dry_run {
        "checking"
    } else {
        "replaying"
    });
    let report = ops
        .replay_reporting(&filter, args.dry_run, Utc::now(), &|done, total| {
            bar.set_length(total as u64);
            bar.set_position(done as u64);
        })
        .await?;
    bar.finish_and_clear();
    if args.target.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", render_replay(&report));
    }
    if report.failed() > 0 {
        bail!(
            "{} event(s) could not be replayed; they are dead again",
            report.failed()
        );
    }
    Ok(())
}

/// One row of `list --json`: the status API's view plus the masked contact.
#[derive(Serialize)]
struct ListedEvent {
    #[serde(flatten)]
    view: EventStatus,
    contact: Option<String>,
}

impl ListedEvent {
    fn of(r: &LedgerRecord) -> Self {
        Self {
            view: EventStatus::from_record(r),
            contact: masked_contact(r),
        }
    }
}

fn masked_contact(r: &LedgerRecord) -> Option<String> {
    r.contact.clone().or_else(|| {
        r.payload
            .as_deref()
            .and_then(|p| QueuedLead::from_json(p).ok())
            .map(|l| l.contact_key.masked())
    })
}

fn time(t: Option<DateTime<Utc>>) -> String {
    t.map(|t| t.format("%Y-%m-%d %H:%M:%SZ").to_string())
        .unwrap_or_else(|| "-".into())
}

fn or_dash(s: Option<&str>) -> String {
    s.unwrap_or("-").to_string()
}

fn truncate(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_string()
    } else {
        s.chars().take(max.saturating_sub(1)).collect::<String>() + "…"
    }
}

/// `crm_rejected (HTTP 400): hubspot said: Property "x" does not exist`, already scrubbed.
fn error_line(view: &EventStatus) -> String {
    match &view.last_error {
        None => "-".into(),
        Some(e) => {
            let status = e
                .http_status
                .map(|s| format!(", HTTP {s}"))
                .unwrap_or_default();
            let who = e
                .crm
                .as_deref()
                .map(|c| format!("{c} said: "))
                .unwrap_or_default();
            format!(
                "{} ({}{}): {}{}",
                e.code,
                e.class.as_str(),
                status,
                who,
                e.message
            )
        }
    }
}

fn render_status(v: &EventStatus) -> String {
    let crm = v
        .crm
        .as_ref()
        .map(|c| {
            format!(
                "{} contact {}{}, note {}, deal {}",
                c.name,
                c.contact_id,
                if c.contact_created { " (created)" } else { "" },
                or_dash(c.note_id.as_deref()),
                or_dash(c.deal_id.as_deref())
            )
        })
        .unwrap_or_else(|| "-".into());
    let mut rows = vec![
        ("event_id", v.event_id.clone()),
        ("connection", or_dash(v.connection.as_deref())),
        ("status", v.status.as_str().to_string()),
        ("attempts", v.attempts.to_string()),
        ("replays", v.replays.to_string()),
        ("next_attempt_at", time(v.next_attempt_at)),
        ("last_error", error_line(v)),
        ("crm", crm),
        ("bot_id", or_dash(v.bot_id.as_deref())),
        ("received_at", time(v.received_at)),
        ("updated_at", time(v.updated_at)),
    ];
    // A routed event: one line per connection, least done first in the status above.
    for d in &v.deliveries {
        let what = match (&d.crm, &d.last_error) {
            (Some(c), _) if d.status.as_str() == "synced" => format!("{} {}", c.name, c.contact_id),
            (_, Some(_)) => error_line(d),
            _ => String::new(),
        };
        rows.push((
            "delivery",
            format!(
                "{} {} (attempts {}) {what}",
                or_dash(d.connection.as_deref()),
                d.status.as_str(),
                d.attempts
            )
            .trim_end()
            .to_string(),
        ));
    }
    rows.iter().map(|(k, v)| format!("{k:<16}{v}\n")).collect()
}

/// Left-aligned columns, two spaces apart.
fn render_list(records: &[LedgerRecord]) -> String {
    if records.is_empty() {
        return "no events\n".into();
    }
    let rows: Vec<Vec<String>> = records
        .iter()
        .map(|r| {
            let v = EventStatus::from_record(r);
            vec![
                v.event_id.clone(),
                v.status.as_str().to_string(),
                or_dash(v.bot_id.as_deref()),
                masked_contact(r).unwrap_or_else(|| "-".into()),
                v.attempts.to_string(),
                v.replays.to_string(),
                time(v.updated_at),
                truncate(&error_line(&v), 100),
            ]
        })
        .collect();
    let mut out = table(
        &[
            "EVENT_ID",
            "STATUS",
            "BOT",
            "CONTACT",
            "ATTEMPTS",
            "REPLAYS",
            "UPDATED",
            "LAST_ERROR",
        ],
        &rows,
        &[4, 5],
    );
    out.push_str(&format!("{} event(s)\n", records.len()));
    out
}

fn render_replay(report: &ReplayReport) -> String {
    if report.entries.is_empty() {
        return "no dead events to replay\n".into();
    }
    let rows: Vec<Vec<String>> = report
        .entries
        .iter()
        .map(|e| {
            vec![
                e.event_id.clone(),
                or_dash(e.bot_id.as_deref()),
                e.who.clone().unwrap_or_else(|| "-".into()),
                e.action.to_string(),
            ]
        })
        .collect();
    let mut out = table(&["EVENT_ID", "BOT", "CONTACT", "ACTION"], &rows, &[]);
    if report.dry_run {
        out.push_str(&format!(
            "dry run: {} would be replayed, {} skipped; nothing changed\n",
            report.would_replay(),
            report.skipped()
        ));
    } else {
        out.push_str(&format!(
            "{} replayed, {} skipped, {} failed\n",
            report.replayed(),
            report.skipped(),
            report.failed()
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use lb_pipeline::replay::{ReplayAction, ReplayEntry};
    use lb_pipeline::{ErrorClass, FailureReason};

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 5, 4, 12, 0, 0).unwrap()
    }

    #[test]
    fn since_takes_an_rfc3339_time_or_an_age() {
        assert_eq!(
            parse_since("2026-05-01T00:00:00Z", now()).unwrap(),
            Utc.with_ymd_and_hms(2026, 5, 1, 0, 0, 0).unwrap()
        );
        assert_eq!(
            parse_since("2h", now()).unwrap(),
            now() - Duration::hours(2)
        );
        assert_eq!(
            parse_since("30m", now()).unwrap(),
            now() - Duration::minutes(30)
        );
        assert_eq!(parse_since("7d", now()).unwrap(), now() - Duration::days(7));
        for bad in ["yesterday", "2x", "h", "", "99999999999d"] {
            assert!(parse_since(bad, now()).is_err(), "{bad}");
        }
    }

    #[test]
    fn statuses_are_the_ledgers_with_processing_as_an_alias() {
        assert_eq!(parse_status("dead"), Ok(LedgerStatus::Dead));
        assert_eq!(parse_status("processing"), Ok(LedgerStatus::InProgress));
        assert!(parse_status("gone").is_err());
    }

    fn dead_record() -> LedgerRecord {
        let lead = lb_pipeline::fakes::sample_lead("evt_1", "priya.sharma@acmecorp.in");
        LedgerRecord {
            event_id: "evt_1".into(),
            connection: None,
            status: LedgerStatus::Dead,
            bot_id: Some("bot_test".into()),
            contact_key_hash: None,
            payload_hash: None,
            payload: Some(lead.to_json()),
            contact: None,
            attempts: 1,
            replays: 0,
            lease_until: None,
            next_attempt_at: None,
            last_error: Some(FailureReason {
                class: ErrorClass::Permanent,
                code: "crm_rejected".into(),
                message: "priya.sharma@acmecorp.in is not valid for Priya Sharma".into(),
                crm: Some("hubspot".into()),
                http_status: Some(400),
            }),
            outcome: None,
            received_at: Some(now()),
            updated_at: Some(now()),
            history: Vec::new(),
        }
    }

    #[test]
    fn the_list_table_shows_masked_identities_only() {
        let out = render_list(&[dead_record()]);
        assert!(out.starts_with("EVENT_ID"), "{out}");
        assert!(out.contains("evt_1") && out.contains("dead") && out.contains("bot_test"));
        assert!(out.contains("p***@acmecorp.in"), "{out}");
        assert!(out.contains("crm_rejected (permanent, HTTP 400)"), "{out}");
        assert!(!out.contains("priya.sharma"), "{out}");
        assert!(!out.contains("Priya Sharma"), "{out}");
    }

    #[test]
    fn list_json_is_the_status_view_plus_the_masked_contact() {
        let v = serde_json::to_value(ListedEvent::of(&dead_record())).unwrap();
        assert_eq!(v["event_id"], "evt_1");
        assert_eq!(v["status"], "dead");
        assert_eq!(v["contact"], "p***@acmecorp.in");
        assert!(!v.to_string().contains("priya.sharma"), "{v}");
    }

    #[test]
    fn a_synced_delivery_without_its_payload_still_lists_the_masked_person() {
        let synced = LedgerRecord {
            status: LedgerStatus::Synced,
            payload: None,
            contact: Some("p***@acmecorp.in".into()),
            last_error: None,
            ..dead_record()
        };
        assert_eq!(
            ListedEvent::of(&synced).contact.as_deref(),
            Some("p***@acmecorp.in")
        );
    }

    #[test]
    fn a_routed_event_prints_one_line_per_delivery() {
        let dead = LedgerRecord {
            connection: Some("zapier".into()),
            ..dead_record()
        };
        let synced = LedgerRecord {
            connection: Some("hubspot".into()),
            status: LedgerStatus::Synced,
            last_error: None,
            outcome: Some(lb_pipeline::SyncOutcome {
                crm: "hubspot".into(),
                contact_id: "101".into(),
                ..Default::default()
            }),
            ..dead_record()
        };
        let v = EventStatus::from_deliveries(&[synced, dead]).unwrap();
        let out = render_status(&v);
        let lines: Vec<&str> = out.lines().filter(|l| l.starts_with("delivery")).collect();
        assert_eq!(lines.len(), 2, "{out}");
        assert!(
            lines[0].ends_with("hubspot synced (attempts 1) hubspot 101"),
            "{out}"
        );
        assert!(lines[1].contains("zapier dead (attempts 1)"), "{out}");
        assert!(
            out.lines()
                .any(|l| l.starts_with("status") && l.ends_with("dead")),
            "{out}"
        );
        assert!(!out.contains("priya.sharma"), "{out}");
    }

    #[test]
    fn the_status_view_prints_every_field_of_the_api() {
        let out = render_status(&EventStatus::from_record(&dead_record()));
        for key in lb_pipeline::status::FIELDS {
            assert!(out.lines().any(|l| l.starts_with(key)), "{key}: {out}");
        }
        assert!(!out.contains("priya.sharma"), "{out}");
    }

    #[test]
    fn the_replay_table_names_each_action_and_sums_them_up() {
        let report = ReplayReport {
            dry_run: false,
            entries: vec![
                ReplayEntry {
                    event_id: "evt_1".into(),
                    bot_id: Some("bot_a".into()),
                    who: Some("p***@acme.in".into()),
                    action: ReplayAction::Replayed { replay: 1 },
                },
                ReplayEntry {
                    event_id: "evt_2".into(),
                    bot_id: None,
                    who: None,
                    action: ReplayAction::Skipped {
                        reason: "no stored payload".into(),
                    },
                },
            ],
        };
        let out = render_replay(&report);
        assert!(out.contains("replayed (replay #1)"), "{out}");
        assert!(out.contains("skipped: no stored payload"), "{out}");
        assert!(out.ends_with("1 replayed, 1 skipped, 0 failed\n"), "{out}");
    }
}
