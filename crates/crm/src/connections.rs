//! The worker's CRM connections, built from the config file's `[connections.*]`
//! (or, without a config file, the single HubSpot connection of the environment).

use std::sync::Arc;
use std::time::Duration;

use lb_config::{
    Config, Connection, ConnectionKind, HubSpotConnection, PipedriveConnection,
    SalesforceConnection, WebhookAuth, WebhookConnection, ZohoConnection,
};
use lb_domain::mapping::Mapping;
use lb_pipeline::secrets::CachedSecret;
use lb_pipeline::throttle::Throttle;
use lb_pipeline::{CallCounter, Crm, CrmSet, SecretStore, TokenShare};

use crate::hubspot::{HubSpotConfig, HubSpotCrm};
use crate::pipedrive::{PipedriveConfig, PipedriveCrm};
use crate::salesforce::{SalesforceConfig, SalesforceCrm};
use crate::webhook::{WebhookAuthKind, WebhookCrm, WebhookSettings};
use crate::zoho::{ZohoConfig, ZohoCrm};

/// What the worker instances of a deployment share (the ledger table): the
/// calls counted against each connection's rate limit, and OAuth access tokens.
#[derive(Clone)]
pub struct Shared {
    pub calls: Arc<dyn CallCounter>,
    pub tokens: Arc<dyn TokenShare>,
}

impl Shared {
    /// Both through one store (the ledger).
    pub fn through<S: CallCounter + TokenShare + 'static>(store: Arc<S>) -> Self {
        Self {
            calls: store.clone(),
            tokens: store,
        }
    }
}

/// Every connection of the config, by name. With `shared` (the ledger
/// table), every CRM connection's calls are counted in its shared rate limit
/// and OAuth access tokens are shared by the instances.
pub fn from_config(
    config: &Config,
    secrets: Arc<dyn SecretStore>,
    secret_ttl: Duration,
    shared: Option<Shared>,
) -> Result<CrmSet, String> {
    let mut set = CrmSet::default();
    for conn in config.connections.values() {
        set.add(adapter(conn, secrets.clone(), secret_ttl, shared.as_ref())?);
    }
    Ok(set)
}

/// One connection's adapter, sharing nothing with other instances (the CLI's probes).
pub fn connection(
    conn: &Connection,
    secrets: Arc<dyn SecretStore>,
    secret_ttl: Duration,
) -> Result<Arc<dyn Crm>, String> {
    adapter(conn, secrets, secret_ttl, None)
}

fn adapter(
    conn: &Connection,
    secrets: Arc<dyn SecretStore>,
    secret_ttl: Duration,
    shared: Option<&Shared>,
) -> Result<Arc<dyn Crm>, String> {
    let throttle = match shared {
        Some(s) => Throttle::new(s.calls.clone(), &conn.name, conn.throttling),
        None => Throttle::off(),
    };
    Ok(match &conn.kind {
        ConnectionKind::HubSpot(h) => {
            Arc::new(hubspot(conn, h, secrets, secret_ttl)?.with_throttle(throttle))
        }
        ConnectionKind::Webhook(w) => Arc::new(webhook(conn, w, secrets, secret_ttl)?),
        ConnectionKind::Pipedrive(p) => {
            Arc::new(pipedrive(conn, p, secrets, secret_ttl)?.with_throttle(throttle))
        }
        ConnectionKind::Zoho(z) => {
            let mut crm = zoho(conn, z, secrets, secret_ttl)?.with_throttle(throttle);
            if let Some(s) = shared {
                crm = crm.with_token_share(s.tokens.clone());
            }
            Arc::new(crm)
        }
        ConnectionKind::Salesforce(sf) => {
            let mut crm = salesforce(conn, sf, secrets, secret_ttl)?.with_throttle(throttle);
            if let Some(s) = shared {
                crm = crm.with_token_share(s.tokens.clone());
            }
            Arc::new(crm)
        }
    })
}

/// A Salesforce connection's adapter.
pub fn salesforce(
    conn: &Connection,
    s: &SalesforceConnection,
    secrets: Arc<dyn SecretStore>,
    secret_ttl: Duration,
) -> Result<SalesforceCrm, String> {
    let cfg = SalesforceConfig {
        name: conn.name.clone(),
        login_url: s.login_url.clone(),
        object: s.object.clone(),
        allow_duplicates: s.allow_duplicates,
        timeout: conn.timeout,
        allow_internal: conn.allow_internal,
        mapping: conn.mapping.clone(),
        ..SalesforceConfig::default()
    };
    let cfg = SalesforceConfig {
        default_deal_stage: s
            .deal_stage
            .clone()
            .unwrap_or_else(|| cfg.default_deal_stage.clone()),
        ..cfg
    };
    let grant = Arc::new(CachedSecret::new(secrets, &s.secret, secret_ttl));
    SalesforceCrm::new(cfg, grant)
        .map_err(|e| format!("connection {}: HTTP client: {e}", conn.name))
}

/// A Pipedrive connection's adapter.
pub fn pipedrive(
    conn: &Connection,
    p: &PipedriveConnection,
    secrets: Arc<dyn SecretStore>,
    secret_ttl: Duration,
) -> Result<PipedriveCrm, String> {
    let cfg = PipedriveConfig {
        name: conn.name.clone(),
        base_url: p.base_url.clone(),
        timeout: conn.timeout,
        allow_internal: conn.allow_internal,
        mapping: conn.mapping.clone(),
    };
    let token = Arc::new(CachedSecret::new(secrets, &p.secret, secret_ttl));
    PipedriveCrm::new(cfg, token).map_err(|e| format!("connection {}: HTTP client: {e}", conn.name))
}

/// A Zoho CRM connection's adapter.
pub fn zoho(
    conn: &Connection,
    z: &ZohoConnection,
    secrets: Arc<dyn SecretStore>,
    secret_ttl: Duration,
) -> Result<ZohoCrm, String> {
    let cfg = ZohoConfig {
        name: conn.name.clone(),
        accounts_url: z.accounts_url.clone(),
        module: z.module.clone(),
        timeout: conn.timeout,
        allow_internal: conn.allow_internal,
        mapping: conn.mapping.clone(),
    };
    let grant = Arc::new(CachedSecret::new(secrets, &z.secret, secret_ttl));
    ZohoCrm::new(cfg, grant).map_err(|e| format!("connection {}: HTTP client: {e}", conn.name))
}

/// A HubSpot connection's adapter (no `[fields]`: the adapter's built-in mapping).
pub fn hubspot(
    conn: &Connection,
    h: &HubSpotConnection,
    secrets: Arc<dyn SecretStore>,
    secret_ttl: Duration,
) -> Result<HubSpotCrm, String> {
    let defaults = HubSpotConfig::default();
    let cfg = HubSpotConfig {
        name: conn.name.clone(),
        base_url: h.base_url.clone(),
        timeout: conn.timeout,
        mapping: conn.mapping.clone().unwrap_or(defaults.mapping),
        schema_ttl: h.schema_ttl,
        default_deal_stage: h.deal_stage.clone().unwrap_or(defaults.default_deal_stage),
        default_deal_pipeline: h
            .deal_pipeline
            .clone()
            .unwrap_or(defaults.default_deal_pipeline),
        allow_internal: conn.allow_internal,
        daily_recheck: defaults.daily_recheck,
    };
    let token = Arc::new(CachedSecret::new(secrets, &h.secret, secret_ttl));
    HubSpotCrm::new(cfg, token).map_err(|e| format!("connection {}: HTTP client: {e}", conn.name))
}

/// A webhook connection's adapter (no `[fields]`: [`default_webhook_mapping`]).
pub fn webhook(
    conn: &Connection,
    w: &WebhookConnection,
    secrets: Arc<dyn SecretStore>,
    secret_ttl: Duration,
) -> Result<WebhookCrm, String> {
    let (auth, secret) = match &w.auth {
        WebhookAuth::None => (WebhookAuthKind::None, None),
        WebhookAuth::Bearer { secret } => (WebhookAuthKind::Bearer, Some(secret)),
        WebhookAuth::ApiKey { header, secret } => (
            WebhookAuthKind::ApiKey {
                header: header.clone(),
            },
            Some(secret),
        ),
        WebhookAuth::Basic { secret } => (WebhookAuthKind::Basic, Some(secret)),
    };
    let settings = WebhookSettings {
        name: conn.name.clone(),
        url: w.url.clone(),
        auth,
        headers: w.headers.clone(),
        timeout: conn.timeout,
        mapping: conn.mapping.clone().unwrap_or_else(default_webhook_mapping),
        allow_internal: conn.allow_internal,
    };
    let secret = secret.map(|id| Arc::new(CachedSecret::new(secrets, id, secret_ttl)));
    WebhookCrm::new(settings, secret)
        .map_err(|e| format!("connection {}: HTTP client: {e}", conn.name))
}

/// What a webhook connection without `[fields]` sends: every canonical field
/// under its own (flat, snake-case) name, each answer as `answer_<key>`.
pub fn default_webhook_mapping() -> Mapping {
    Mapping::from_pairs(&[
        ("visitor.email", "email"),
        ("visitor.phone", "phone"),
        ("visitor.wa_id", "whatsapp"),
        ("visitor.name", "name"),
        ("visitor.first_name", "first_name"),
        ("visitor.last_name", "last_name"),
        ("visitor.company", "company"),
        ("visitor.country", "country"),
        ("visitor.state", "state"),
        ("lead_source", "lead_source"),
        ("conversation_id", "conversation_id"),
        ("context.source_url", "entry_page"),
        ("context.referrer", "referrer"),
        ("context.utm_source", "utm_source"),
        ("context.utm_medium", "utm_medium"),
        ("context.utm_campaign", "utm_campaign"),
        ("context.utm_term", "utm_term"),
        ("context.utm_content", "utm_content"),
        ("intent.primary", "intent"),
        ("intent.qualification_score", "qualification_score"),
        ("transcript.summary", "summary"),
        ("transcript.transcript_url", "transcript_url"),
        ("consent.given_at", "consent_given_at"),
        ("consent.text_version", "consent_text_version"),
        ("consent.purpose", "consent_purpose"),
        ("answers.*", "answer_{key}"),
    ])
}

/// A read that proves a connection works without writing anything: a search
/// for a number nobody has (credentials, the API and its answer shape). The
/// records found, or the CRM's refusal.
pub async fn probe(crm: &dyn Crm) -> Result<usize, lb_pipeline::CrmError> {
    let lead = probe_lead(None);
    crm.find_contacts(&lead).await.map(|found| found.len())
}

/// Whether the deal of an event that asks for one without naming a stage could
/// be written: the connection's own default pipeline and stage exist in the
/// CRM, and it writes records deals can be linked to ([`Crm::check_deal`];
/// reads only).
pub async fn deal_probe(crm: &dyn Crm) -> Result<(), lb_pipeline::CrmError> {
    let lead = probe_lead(Some(
        serde_json::json!({"object": "contact", "create_deal": true}),
    ));
    crm.check_deal(&lead).await
}

/// The probes' lead: a number nobody has, with `crm_target` when given.
fn probe_lead(crm_target: Option<serde_json::Value>) -> lb_domain::QueuedLead {
    let mut event = serde_json::json!({
        "event_id": "leadbridge-probe", "event_type": "lead.created",
        "occurred_at": chrono::Utc::now().to_rfc3339(), "bot_id": "leadbridge_probe",
        "visitor": {"phone": "+12025550100"}
    });
    if let Some(t) = crm_target {
        event["crm_target"] = t;
    }
    let event: lb_domain::LeadEvent =
        serde_json::from_value(event).expect("the probe event is valid");
    lb_domain::QueuedLead::new(event, chrono::Utc::now()).expect("it has an identity")
}

/// The shape of the secret a connection kind reads, for the fix a check prints.
pub fn secret_shape(kind: &ConnectionKind) -> &'static str {
    match kind {
        ConnectionKind::HubSpot(_) => r#"{"token": "pat-…"}"#,
        ConnectionKind::Webhook(_) => r#"{"token": "…"}"#,
        ConnectionKind::Pipedrive(_) => r#"{"api_token": "…"}"#,
        ConnectionKind::Zoho(_) | ConnectionKind::Salesforce(_) => {
            r#"{"client_id": "…", "client_secret": "…", "refresh_token": "…"}"#
        }
    }
}
