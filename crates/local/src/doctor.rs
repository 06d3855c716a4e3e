//! `leadbridge doctor`: the day-one checks of a stack (a running local one, or a
//! deployment reached with the standard AWS environment): AWS reachable, every
//! secret present and not a placeholder, every HubSpot connection authorized and
//! its mapping accepted by the portal's schema, every source's secret, the
//! alerts topic's subscriptions, the dead-letter queue and the backlog. Each
//! finding says what to run to fix it; an `Error` is something that would
//! lose or stall leads.

use std::sync::Arc;
use std::time::Duration;

use lb_aws::{aws_sdk_sns, aws_sdk_sqs};
use lb_config::{Config, ConnectionKind};
use lb_crm::SchemaStatus;
use lb_pipeline::SecretStore;
use lb_vendors::source::SourceSecrets;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    Ok,
    Warning,
    /// Leads would be lost, refused or stall.
    Error,
}

impl Severity {
    pub fn label(self) -> &'static str {
        match self {
            Severity::Ok => "ok",
            Severity::Warning => "warning",
            Severity::Error => "ERROR",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub severity: Severity,
    pub what: String,
    /// The command (or step) that fixes it; empty when all is well.
    pub fix: String,
}

fn ok(what: impl Into<String>) -> Finding {
    Finding {
        severity: Severity::Ok,
        what: what.into(),
        fix: String::new(),
    }
}
fn warning(what: impl Into<String>, fix: impl Into<String>) -> Finding {
    Finding {
        severity: Severity::Warning,
        what: what.into(),
        fix: fix.into(),
    }
}
fn error(what: impl Into<String>, fix: impl Into<String>) -> Finding {
    Finding {
        severity: Severity::Error,
        what: what.into(),
        fix: fix.into(),
    }
}

/// What the doctor looks at.
pub struct Patient {
    pub sdk: lb_aws::aws_config::SdkConfig,
    /// `--aws` (a deployment: fixes name `aws` commands) or a local stack.
    pub deployed: bool,
    pub prefix: String,
    /// The connections, routes and sources (the local default without a file).
    pub config: Config,
    /// The alerts topic (local: from the stack file; deployed: found by name).
    pub topic_arn: Option<String>,
}

impl Patient {
    fn put_secret(&self, id: &str, value: &str) -> String {
        let put = format!(
            "aws secretsmanager put-secret-value --secret-id {id} --secret-string '{value}'"
        );
        if self.deployed {
            put
        } else {
            format!("AWS_ENDPOINT_URL=$(jq -r .aws_endpoint target/leadbridge-local.json) {put}")
        }
    }
}

/// Every check, in order; never fails itself (what cannot be checked is a finding).
pub async fn examine(p: &Patient) -> Vec<Finding> {
    let mut out = Vec::new();
    let secrets: Arc<dyn SecretStore> = Arc::new(lb_aws::SecretsManagerStore::new(
        lb_aws::aws_sdk_secretsmanager::Client::new(&p.sdk),
    ));
    let sqs = aws_sdk_sqs::Client::new(&p.sdk);

    // AWS: credentials, region, the queues.
    let queue = |name: String| {
        let sqs = sqs.clone();
        async move {
            sqs.get_queue_url()
                .queue_name(&name)
                .send()
                .await
                .map(|o| o.queue_url().unwrap_or_default().to_string())
        }
    };
    let leads = queue(format!("{}-leads.fifo", p.prefix)).await;
    let dlq = queue(format!("{}-leads-dlq.fifo", p.prefix)).await;
    match (&leads, &dlq) {
        (Ok(_), Ok(_)) => out.push(ok(format!(
            "AWS reachable; queues {0}-leads.fifo and {0}-leads-dlq.fifo found",
            p.prefix
        ))),
        (Err(e), _) | (_, Err(e)) => {
            out.push(error(
                format!("AWS: the queues of prefix {:?} are not reachable: {}", p.prefix, lb_aws::port_err_text(e)),
                if p.deployed {
                    "check the credentials and region (`aws sts get-caller-identity`, AWS_PROFILE, AWS_REGION; SSO: `aws sso login`) and --prefix".to_string()
                } else {
                    "start the local stack: `make dev`".to_string()
                },
            ));
            return out;
        }
    }

    // The canonical webhook's signing secret.
    let webhook_id = format!("{}/webhook", p.prefix);
    match secrets.get_secret(&webhook_id).await {
        Ok(v) if !lb_pipeline::secrets::secret_values(&v, "secrets").is_empty() => out.push(ok(
            format!("{webhook_id}: the webhook signing secret is set"),
        )),
        Ok(_) => out.push(error(
            format!("{webhook_id} holds no signing secret: every POST /v1/events is refused (401)"),
            p.put_secret(&webhook_id, r#"{"secrets": ["<a long random string>"]}"#),
        )),
        Err(e) => out.push(error(
            format!("{webhook_id} cannot be read: {e}"),
            p.put_secret(&webhook_id, r#"{"secrets": ["<a long random string>"]}"#),
        )),
    }

    // Each HubSpot connection: token, authorization, schema.
    for conn in p.config.connections.values() {
        let h = match &conn.kind {
            ConnectionKind::HubSpot(h) => h,
            ConnectionKind::Webhook(_) => {
                out.push(ok(format!(
                    "connection {}: a webhook target (try it with `leadbridge test-connection {}`)",
                    conn.name, conn.name
                )));
                continue;
            }
            // Pipedrive, Zoho, Salesforce: the secret is there, and a read is authorized.
            kind => {
                out.extend(check_by_probe(p, secrets.clone(), conn, kind).await);
                continue;
            }
        };
        let token = secrets.get_secret(&h.secret).await.ok().and_then(|v| {
            lb_pipeline::secrets::secret_values(&v, "token")
                .into_iter()
                .next()
        });
        let set_token = p.put_secret(&h.secret, r#"{"token": "pat-…"}"#);
        match token {
            None => {
                out.push(error(
                    format!(
                        "connection {}: {} holds no HubSpot token: every lead would fail",
                        conn.name, h.secret
                    ),
                    set_token,
                ));
                continue;
            }
            // HubSpot private-app tokens start with `pat-`; the template generates a random placeholder.
            Some(t) if !t.starts_with("pat-") => {
                out.push(error(
                    format!(
                        "connection {}: {} still holds a generated placeholder, not a HubSpot private-app token (pat-…): every lead would fail with 401",
                        conn.name, h.secret
                    ),
                    set_token,
                ));
                continue;
            }
            Some(_) => {}
        }
        let crm =
            match lb_crm::connections::hubspot(conn, h, secrets.clone(), Duration::from_secs(60)) {
                Ok(c) => c,
                Err(e) => {
                    out.push(error(
                        format!("connection {}: {e}", conn.name),
                        "check the connection in the config file",
                    ));
                    continue;
                }
            };
        match crm.schema_report().await {
            Ok(rows) => {
                let bad: Vec<String> = rows
                    .iter()
                    .filter(|r| r.status != SchemaStatus::Ok)
                    .map(|r| format!("{} ({})", r.property, r.detail))
                    .collect();
                if bad.is_empty() {
                    out.push(ok(format!(
                        "connection {}: the token is accepted and all {} mapped properties fit the portal's schema",
                        conn.name,
                        rows.len()
                    )));
                } else {
                    out.push(error(
                        format!(
                            "connection {}: {} mapped propert(y/ies) would be refused (leads dead-lettered as schema_drift): {}",
                            conn.name,
                            bad.len(),
                            bad.join("; ")
                        ),
                        format!(
                            "create them in HubSpot or change the mapping; details: `leadbridge schema-check --connection {}{}`",
                            conn.name,
                            if p.deployed { " --aws" } else { "" }
                        ),
                    ));
                }
            }
            Err(e) if e.http_status == Some(401) => out.push(error(
                format!(
                    "connection {}: HubSpot refused the token (401): every lead would fail",
                    conn.name
                ),
                set_token,
            )),
            Err(e) if e.http_status == Some(403) => out.push(error(
                format!(
                    "connection {}: the token lacks a scope: {}",
                    conn.name, e.message
                ),
                "add the scopes docs/configuration.md lists to the private app, then put its new token",
            )),
            Err(e) => out.push(warning(
                format!("connection {}: HubSpot could not be asked: {e}", conn.name),
                format!("`leadbridge test-connection {}`", conn.name),
            )),
        }
        if out.last().is_some_and(|f| f.severity == Severity::Ok) {
            out.extend(check_deals(conn, &crm).await);
        }
    }

    // Each source's secret.
    for s in p.config.sources.values() {
        let fix = p.put_secret(
            &s.secret,
            r#"{"secrets": ["<what the vendor signs with>"]}"#,
        );
        match secrets.get_secret(&s.secret).await {
            Ok(v) => {
                let parsed = SourceSecrets::from_secret_string(&v);
                if parsed.secrets.is_empty() {
                    out.push(error(
                        format!(
                            "source {} ({}): {} holds no secret: every request is refused (401)",
                            s.name, s.kind, s.secret
                        ),
                        fix,
                    ));
                } else if s.kind == "whatsapp" && parsed.verify_token.is_none() {
                    out.push(error(
                        format!("source {}: {} has no verify_token: Meta's webhook setup (GET) is refused", s.name, s.secret),
                        p.put_secret(&s.secret, r#"{"secrets": ["<app secret>"], "verify_token": "<yours>"}"#),
                    ));
                } else {
                    out.push(ok(format!(
                        "source {} ({}): its secret is set",
                        s.name, s.kind
                    )));
                }
            }
            Err(e) => out.push(error(
                format!(
                    "source {} ({}): {} cannot be read: {e}",
                    s.name, s.kind, s.secret
                ),
                fix,
            )),
        }
    }

    // Who reads the alerts.
    if let Some(topic) = &p.topic_arn {
        let sns = aws_sdk_sns::Client::new(&p.sdk);
        match sns
            .list_subscriptions_by_topic()
            .topic_arn(topic)
            .send()
            .await
        {
            Ok(o) => {
                let subs = o.subscriptions();
                let confirmed = subs
                    .iter()
                    .filter(|s| s.subscription_arn().is_some_and(|a| a.starts_with("arn:")))
                    .count();
                let pending = subs.len() - confirmed;
                if confirmed == 0 {
                    out.push(error(
                        format!("alerts: no confirmed subscription on {topic}{}: dead letters would go unnoticed", if pending > 0 { format!(" ({pending} pending confirmation)") } else { String::new() }),
                        format!("aws sns subscribe --topic-arn {topic} --protocol email --notification-endpoint you@example.com (then click the link in the email)"),
                    ));
                } else if pending > 0 {
                    out.push(warning(
                        format!("alerts: {pending} subscription(s) pending confirmation"),
                        "click the confirmation link AWS sent to each address",
                    ));
                } else {
                    out.push(ok(format!("alerts: {confirmed} confirmed subscription(s)")));
                }
            }
            Err(e) => out.push(warning(
                format!(
                    "alerts: the subscriptions cannot be listed: {}",
                    lb_aws::port_err_text(&e)
                ),
                "",
            )),
        }
    }

    // Dead letters and backlog: waiting and in flight alike.
    let depth = |url: String| {
        let sqs = sqs.clone();
        async move {
            use aws_sdk_sqs::types::QueueAttributeName as A;
            let attrs = sqs
                .get_queue_attributes()
                .queue_url(url)
                .attribute_names(A::ApproximateNumberOfMessages)
                .attribute_names(A::ApproximateNumberOfMessagesNotVisible)
                .send()
                .await
                .ok()?;
            let map = attrs.attributes()?;
            let n = |a: A| map.get(&a).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
            Some(n(A::ApproximateNumberOfMessages) + n(A::ApproximateNumberOfMessagesNotVisible))
        }
    };
    if let Ok(url) = dlq {
        match depth(url).await {
            Some(0) => out.push(ok("dead-letter queue: empty")),
            Some(n) => out.push(warning(
                format!("dead-letter queue: {n} message(s) waiting for (or with) the dlq-alerter"),
                "they are alerted and recorded as dead; see them with `leadbridge list --status dead`",
            )),
            None => {}
        }
    }
    if let Ok(url) = leads {
        match depth(url).await {
            Some(n) if n > 1_000 => out.push(warning(
                format!("leads queue: {n} leads waiting (a CRM outage or a spent quota?)"),
                "`leadbridge list --status retrying` shows why they wait",
            )),
            Some(n) => out.push(ok(format!("leads queue: {n} waiting"))),
            None => {}
        }
    }
    out
}

/// The findings as text, worst first within their order, and whether any is an error.
pub fn render(findings: &[Finding]) -> (String, bool) {
    let mut s = String::new();
    for f in findings {
        s.push_str(&format!("{:<8} {}\n", f.severity.label(), f.what));
        if !f.fix.is_empty() {
            s.push_str(&format!("         fix: {}\n", f.fix));
        }
    }
    let errors = findings
        .iter()
        .filter(|f| f.severity == Severity::Error)
        .count();
    let warnings = findings
        .iter()
        .filter(|f| f.severity == Severity::Warning)
        .count();
    s.push_str(&format!("{errors} error(s), {warnings} warning(s)\n"));
    (s, errors > 0)
}

/// A Pipedrive, Zoho or Salesforce connection: its secret can be read, and the
/// CRM answers a read (a search for a number nobody has) with it.
async fn check_by_probe(
    p: &Patient,
    secrets: Arc<dyn SecretStore>,
    conn: &lb_config::Connection,
    kind: &ConnectionKind,
) -> Vec<Finding> {
    let secret = kind
        .secrets()
        .first()
        .map(|s| s.to_string())
        .unwrap_or_default();
    let set_secret = p.put_secret(&secret, lb_crm::connections::secret_shape(kind));
    if secrets.get_secret(&secret).await.is_err() {
        return vec![error(
            format!(
                "connection {}: {secret} cannot be read: every lead to {} would fail",
                conn.name,
                conn.kind_name()
            ),
            set_secret,
        )];
    }
    let crm = match lb_crm::connections::connection(conn, secrets, Duration::from_secs(60)) {
        Ok(c) => c,
        Err(e) => {
            return vec![error(
                format!("connection {}: {e}", conn.name),
                "check the connection in the config file",
            )]
        }
    };
    match lb_crm::connections::probe(crm.as_ref()).await {
        Ok(_) => {
            let mut found = vec![ok(format!(
                "connection {} ({}): the credentials are accepted and a search answers",
                conn.name,
                conn.kind_name()
            ))];
            found.extend(check_deals(conn, crm.as_ref()).await);
            found
        }
        Err(e) => vec![error(
            format!(
                "connection {} ({}): {} — leads to it would be {}",
                conn.name,
                conn.kind_name(),
                e.message,
                if e.class == lb_pipeline::ErrorClass::Permanent {
                    "dead-lettered"
                } else {
                    "retried"
                }
            ),
            set_secret,
        )],
    }
}

/// The deals of events that ask for one without naming a stage: the
/// connection's default pipeline and stage must exist in the CRM (else each
/// such event is dead-lettered as `bad_deal_stage`), and a connection that
/// writes Leads makes no deals (`deals_need_contacts`: a warning, since not
/// every bot asks for deals).
async fn check_deals(conn: &lb_config::Connection, crm: &dyn lb_pipeline::Crm) -> Option<Finding> {
    let e = lb_crm::connections::deal_probe(crm).await.err()?;
    // Only HubSpot and Salesforce connections have a default stage of their
    // own to set; Pipedrive's and Zoho's come from the CRM.
    let fix = match conn.kind {
        ConnectionKind::HubSpot(_) => format!(
            "set deal_pipeline and deal_stage in [connections.{}] to a pipeline and stage the CRM has",
            conn.name
        ),
        ConnectionKind::Salesforce(_) => format!(
            "set deal_stage in [connections.{}] to an active StageName of the org",
            conn.name
        ),
        _ => "have the events that ask for a deal name crm_target.deal_stage (and \
              deal_pipeline) as the CRM has them"
            .to_string(),
    };
    Some(match e.code.as_deref() {
        Some(lb_crm::deal::DEALS_NEED_CONTACTS) => warning(
            format!(
                "connection {}: events that ask for a deal would be dead-lettered as deals_need_contacts: {}",
                conn.name, e.message
            ),
            format!(
                "if your bots ask for deals, set {} in [connections.{}]",
                if matches!(conn.kind, ConnectionKind::Zoho(_)) {
                    "module = \"Contacts\""
                } else {
                    "object = \"Contact\""
                },
                conn.name
            ),
        ),
        Some(lb_crm::deal::BAD_DEAL_STAGE) => error(
            format!(
                "connection {}: events that ask for a deal without naming a stage would be dead-lettered as bad_deal_stage: {}",
                conn.name, e.message
            ),
            fix,
        ),
        _ => warning(
            format!("connection {}: its deal stages could not be read: {}", conn.name, e.message),
            format!("`leadbridge test-connection {}`", conn.name),
        ),
    })
}
