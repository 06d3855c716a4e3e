//! The ingest function: `POST /v1/events` → verify → parse → validate → enqueue → 202,
//! and the status API: `GET /v1/events/{event_id}` (API key) → the event's ledger view.
//! [`handle`] is transport-neutral, so the Lambda (API Gateway) and the local
//! runner (plain HTTP) serve exactly the same code.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use lb_domain::{split_delivery_id, EventId, FieldError, Lane};
use lb_pipeline::accept::{accept_deliveries, AcceptError, Accepted};
use lb_pipeline::intake::{accept_source, admit, rejection_of, Intake, Refusal, SourceError};
use lb_pipeline::reject::record_rejection;
use lb_pipeline::secrets::{CachedSecret, SigningSecrets};
use lb_pipeline::status::StatusKeys;
use lb_pipeline::{env_parse, env_var, Alerts, LeadQueue, Ledger, SecretStore};
use lb_vendors::canonical::{self, MAX_BODY_BYTES};
use lb_vendors::signature::{self, SignatureError};
use lb_vendors::source::{Inbound, SourceSecrets};
use serde_json::json;
use tracing::{info, warn};

mod console;

pub struct Ingest {
    pub ledger: Arc<dyn Ledger>,
    pub queue: Arc<dyn LeadQueue>,
    /// Secret holding the webhook signing secret(s): a string, or `{"secrets": ["current", "previous"]}`,
    /// optionally with per-bot secrets: `{"secrets": [...], "bots": {"bot_acme": ["new", "old"]}}`.
    pub webhook_secret: CachedSecret,
    /// Secret holding the status API key(s): a string, or `{"keys": ["k1", "k2"]}`.
    pub status_api_key: CachedSecret,
    /// Where rejection alerts go (the alerts topic).
    pub alerts: Arc<dyn Alerts>,
    /// One rejection alert per window at most; the rest are counted.
    pub rejection_window: Duration,
    /// The mapping config (`LEADBRIDGE_CONFIG`): routes, policies, enumerations, sources.
    /// `None`: every bot goes to the single default connection (and there are no sources).
    pub config: Option<Arc<lb_config::Config>>,
    /// The native sources (`[sources.<name>]`), by name.
    sources: BTreeMap<String, lb_config::Source>,
    /// One cached secret per source secret id.
    source_secrets: BTreeMap<String, CachedSecret>,
    secrets: Arc<dyn SecretStore>,
    secret_ttl: Duration,
}

/// The settings ingest reads from its environment at cold start.
#[derive(Debug, Clone)]
pub struct IngestEnv {
    pub queue_url: String,
    pub dlq_url: String,
    /// The bulk lane's standard queue (`BULK_QUEUE_URL`); none: bulk leads ride the real-time lane.
    pub bulk_queue_url: Option<String>,
    pub table_name: String,
    pub webhook_secret_id: String,
    pub status_api_key_secret_id: String,
    pub secret_ttl: Duration,
    pub alerts_topic_arn: String,
    pub rejection_window: Duration,
}

impl IngestEnv {
    pub fn from_env() -> Result<Self, String> {
        Ok(Self {
            queue_url: env_var("LEADS_QUEUE_URL")?,
            dlq_url: env_var("LEADS_DLQ_URL")?,
            bulk_queue_url: std::env::var("BULK_QUEUE_URL")
                .ok()
                .filter(|u| !u.is_empty()),
            table_name: env_var("LEDGER_TABLE")?,
            webhook_secret_id: env_var("WEBHOOK_SECRET_ID")?,
            status_api_key_secret_id: env_var("STATUS_API_KEY_SECRET_ID")?,
            secret_ttl: Duration::from_secs(env_parse("SECRET_TTL_SECONDS", 300u64)?),
            alerts_topic_arn: env_var("ALERTS_TOPIC_ARN")?,
            rejection_window: Duration::from_secs(
                env_parse("REJECTION_ALERT_WINDOW_SECONDS", 900u64)?.max(60),
            ),
        })
    }
}

impl Ingest {
    pub fn new(
        ledger: Arc<dyn Ledger>,
        queue: Arc<dyn LeadQueue>,
        secrets: Arc<dyn SecretStore>,
        alerts: Arc<dyn Alerts>,
        config: Option<Arc<lb_config::Config>>,
        env: &IngestEnv,
    ) -> Self {
        let sources = config
            .as_ref()
            .map(|c| c.sources.clone())
            .unwrap_or_default();
        let mut app = Self {
            ledger,
            queue,
            alerts,
            rejection_window: env.rejection_window,
            config,
            sources: BTreeMap::new(),
            source_secrets: BTreeMap::new(),
            secrets: secrets.clone(),
            secret_ttl: env.secret_ttl,
            webhook_secret: CachedSecret::new(
                secrets.clone(),
                &env.webhook_secret_id,
                env.secret_ttl,
            ),
            status_api_key: CachedSecret::new(
                secrets,
                &env.status_api_key_secret_id,
                env.secret_ttl,
            ),
        };
        app.set_sources(sources);
        app
    }

    /// Serves these sources (the config's, or the local stack's defaults when it
    /// runs without a config file).
    pub fn set_sources(&mut self, sources: BTreeMap<String, lb_config::Source>) {
        self.source_secrets = sources
            .values()
            .map(|src| {
                (
                    src.secret.clone(),
                    CachedSecret::new(self.secrets.clone(), &src.secret, self.secret_ttl),
                )
            })
            .collect();
        self.sources = sources;
    }

    /// The sources served, by name.
    pub fn sources(&self) -> &BTreeMap<String, lb_config::Source> {
        &self.sources
    }

    /// Reads every secret and opens the ledger's connection now (during the
    /// Lambda's init), so that the first webhook does not pay for Secrets
    /// Manager and TLS handshakes: vendors time out webhooks (Intercom and
    /// Dialogflow CX after 5 s). Failures are logged only: each request reads
    /// what it needs again. Returns how many secrets were read.
    pub async fn warm_up(&self) -> usize {
        let mut read = 0;
        let all = [&self.webhook_secret, &self.status_api_key]
            .into_iter()
            .chain(self.source_secrets.values());
        for secret in all {
            match secret.get().await {
                Ok(_) => read += 1,
                Err(e) => {
                    warn!(secret = secret.id(), error = %e, "secret not readable at init; requests will try again")
                }
            }
        }
        if let Err(e) = self.ledger.get("warm-up").await {
            warn!(error = %e, "ledger not reachable at init; requests will try again");
        }
        read
    }
}

/// A request as ingest sees it, whatever carried it.
#[derive(Debug, Clone)]
pub struct WebhookRequest {
    pub method: String,
    /// `https` behind API Gateway; `http` on the local stack.
    pub scheme: &'static str,
    pub path: String,
    /// The raw query string, without `?`.
    pub query: Option<String>,
    /// Header names lowercased.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl WebhookRequest {
    /// From an HTTP request's parts (API Gateway through `lambda_http`, or a local server).
    pub fn from_http(
        method: &http::Method,
        scheme: &'static str,
        uri: &http::Uri,
        headers: &http::HeaderMap,
        body: Vec<u8>,
    ) -> Self {
        Self {
            method: method.to_string(),
            scheme,
            path: uri.path().to_string(),
            query: uri.query().map(str::to_string),
            headers: headers
                .iter()
                .filter_map(|(k, v)| {
                    v.to_str()
                        .ok()
                        .map(|v| (k.as_str().to_string(), v.to_string()))
                })
                .collect(),
            body,
        }
    }

    /// The URL the sender called: scheme, `Host`, path and query.
    pub fn url(&self) -> String {
        let host = self.header("host").unwrap_or("localhost");
        match &self.query {
            Some(q) => format!("{}://{host}{}?{q}", self.scheme, self.path),
            None => format!("{}://{host}{}", self.scheme, self.path),
        }
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct WebhookResponse {
    pub status: u16,
    pub content_type: &'static str,
    pub body: String,
    pub retry_after: Option<u32>,
}

impl WebhookResponse {
    /// As an HTTP response (status, content type, Retry-After, body), whatever carries it.
    pub fn into_http(self) -> http::Response<String> {
        let mut resp = http::Response::builder()
            .status(self.status)
            .header(http::header::CONTENT_TYPE, self.content_type);
        if let Some(s) = self.retry_after {
            resp = resp.header(http::header::RETRY_AFTER, s.to_string());
        }
        for (name, value) in console::headers(self.content_type) {
            resp = resp.header(name, value);
        }
        resp.body(self.body).unwrap_or_else(|_| {
            let mut r = http::Response::new(String::new());
            *r.status_mut() = http::StatusCode::INTERNAL_SERVER_ERROR;
            r
        })
    }

    fn json(status: u16, v: serde_json::Value) -> Self {
        Self {
            status,
            content_type: "application/json",
            body: v.to_string(),
            retry_after: None,
        }
    }
}

/// RFC 9457 problem details.
fn problem(
    status: u16,
    code: &str,
    title: &str,
    detail: impl Into<String>,
    errors: &[FieldError],
) -> WebhookResponse {
    let mut v = json!({
        "type": format!("urn:leadbridge:problem:{code}"),
        "title": title,
        "status": status,
        "detail": detail.into(),
    });
    if !errors.is_empty() {
        v["errors"] = serde_json::to_value(errors).unwrap_or_default();
    }
    WebhookResponse {
        status,
        content_type: "application/problem+json",
        body: v.to_string(),
        retry_after: None,
    }
}

fn is_json_content_type(ct: Option<&str>) -> bool {
    ct.map(|c| {
        c.split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase()
    })
    .is_some_and(|m| {
        m == "application/json" || (m.starts_with("application/") && m.ends_with("+json"))
    })
}

/// Serves one request: the webhook (`POST /v1/events`; 2xx only once the lead is
/// durably queued) or the status API (`GET /v1/events/{event_id}`).
pub async fn handle(app: &Ingest, req: &WebhookRequest, now: DateTime<Utc>) -> WebhookResponse {
    let path = req.path.trim_end_matches('/');
    if path == "/v1/events" {
        return accept_webhook(app, req, now).await;
    }
    if let Some(name) = path
        .strip_prefix("/v1/sources/")
        .filter(|n| !n.is_empty() && !n.contains('/'))
    {
        return serve_source(app, req, name, now).await;
    }
    if let Some(event_id) = path
        .strip_prefix("/v1/events/")
        .filter(|id| !id.is_empty() && !id.contains('/'))
    {
        return serve_status(app, req, event_id).await;
    }
    // The operators' console: `GET /console` and `/v1/console/...`.
    if let Some(r) = console::serve(app, req, path, now).await {
        return r;
    }
    problem(
        404,
        "not_found",
        "Not Found",
        format!(
            "no route {}",
            req.path.chars().take(200).collect::<String>()
        ),
        &[],
    )
}

fn unavailable(detail: &str) -> WebhookResponse {
    let mut r = problem(503, "unavailable", "Service Unavailable", detail, &[]);
    r.retry_after = Some(5);
    r
}

async fn accept_webhook(app: &Ingest, req: &WebhookRequest, now: DateTime<Utc>) -> WebhookResponse {
    if req.method != "POST" {
        let mut r = problem(
            405,
            "method_not_allowed",
            "Method Not Allowed",
            "use POST /v1/events",
            &[],
        );
        r.retry_after = None;
        return r;
    }
    if req.body.len() > MAX_BODY_BYTES {
        return problem(
            413,
            "payload_too_large",
            "Payload Too Large",
            format!(
                "the body is {} bytes; the limit is {MAX_BODY_BYTES}",
                req.body.len()
            ),
            &[],
        );
    }
    // Parsed once, strictly (no duplicate keys): the bot it claims picks the signing
    // secrets, the route and the rejection record, and is the bot the event is queued under.
    let parsed = canonical::read_json(&req.body);
    let claimed = parsed.as_ref().ok().and_then(canonical::claimed_bot);
    let signing = match app.webhook_secret.get().await {
        Ok(s) => SigningSecrets::for_bot(s.expose(), claimed.as_deref()),
        Err(e) => {
            warn!(error = %e, "webhook secret unavailable");
            return unavailable("try again shortly; nothing was accepted");
        }
    };
    let refs: Vec<&str> = signing.secrets.iter().map(String::as_str).collect();
    if let Err(e) = signature::verify(
        req.header(signature::HEADER),
        &req.body,
        &refs,
        now.timestamp(),
    ) {
        let e = match (e, signing.per_bot) {
            // Answer as for any wrong signature: a response never tells which bots exist.
            (SignatureError::NoSecret, true) => {
                warn!("a bot's entry in the webhook secret holds no signing secret; rejecting its requests");
                SignatureError::Mismatch
            }
            (SignatureError::NoSecret, false) => {
                warn!("the webhook secret holds no signing secret; rejecting every request");
                SignatureError::NoSecret
            }
            (e, _) => e,
        };
        info!(status = 401, reason = %e, "webhook rejected");
        return problem(401, "invalid_signature", "Unauthorized", e.to_string(), &[]);
    }
    if !is_json_content_type(req.header("content-type")) {
        return problem(
            400,
            "unsupported_content_type",
            "Bad Request",
            "Content-Type must be application/json",
            &[],
        );
    }
    // A sender may send its own leads through the bulk lane (`leadbridge import`
    // does): they reach the CRM in large batches instead of within seconds. The
    // header wins over the route's `lane`/`event_lanes`.
    let lane = match req.header("leadbridge-lane").map(Lane::parse) {
        None => None,
        Some(Some(lane)) => Some(lane),
        Some(None) => {
            return problem(
                400,
                "invalid_lane",
                "Bad Request",
                "Leadbridge-Lane must be \"realtime\" or \"bulk\"",
                &[],
            )
        }
    };
    let deliveries = match admit(app.config.as_deref(), &parsed, claimed.as_deref(), now) {
        Ok(mut d) => {
            if let Some(lane) = lane {
                d.iter_mut().for_each(|l| l.lane = lane);
            }
            d
        }
        Err(refusal) => {
            let codes: Vec<&str> = refusal.errors.iter().map(|e| e.code.as_str()).collect();
            info!(status = refusal.status, code = refusal.code, codes = ?codes, "webhook rejected");
            let rejection = rejection_of(&req.body, parsed.as_ref().ok(), claimed, &refusal);
            record_rejection(
                app.ledger.as_ref(),
                app.alerts.as_ref(),
                &rejection,
                app.rejection_window,
                now,
            )
            .await;
            return refusal_problem(refusal);
        }
    };
    let Some(lead) = deliveries.first() else {
        return unavailable("no delivery was planned; nothing was accepted");
    };
    let event_id = lead.event.event_id.as_str().to_string();
    match accept_deliveries(app.ledger.as_ref(), app.queue.as_ref(), &deliveries, now).await {
        Ok(accepted) => {
            let duplicate = accepted == Accepted::Duplicate;
            let connections: Vec<&str> = deliveries.iter().filter_map(|d| d.connection()).collect();
            info!(event_id, status = 202, duplicate, contact = %lead.contact_key.hashed(), connections = ?connections, "lead accepted");
            let mut body = json!({"event_id": event_id, "status": "queued"});
            if duplicate {
                body["duplicate"] = json!(true);
            }
            WebhookResponse::json(202, body)
        }
        Err(AcceptError::Conflict) => {
            info!(
                event_id,
                status = 409,
                "event id reused with a different payload"
            );
            problem(
                409,
                "event_id_conflict",
                "Conflict",
                "this event_id was already accepted with a different payload; use a new event_id for a new event",
                &[],
            )
        }
        Err(AcceptError::QueueUnavailable(e)) => {
            warn!(event_id, status = 503, error = %e, "queue unavailable; nothing accepted");
            let mut r = problem(
                503,
                "queue_unavailable",
                "Service Unavailable",
                "the lead was not accepted; retry",
                &[],
            );
            r.retry_after = Some(5);
            r
        }
    }
}

fn refusal_problem(r: Refusal) -> WebhookResponse {
    problem(r.status, r.code, r.title, r.detail, &r.errors)
}

/// `POST /v1/sources/{source}` (and the vendor's `GET` handshake): a vendor's
/// own webhook, verified, read and admitted by `pipeline`'s intake.
async fn serve_source(
    app: &Ingest,
    req: &WebhookRequest,
    name: &str,
    now: DateTime<Utc>,
) -> WebhookResponse {
    let Some(source) = app.sources.get(name) else {
        return problem(404, "not_found", "Not Found", "no such source", &[]);
    };
    if req.body.len() > MAX_BODY_BYTES {
        return problem(
            413,
            "payload_too_large",
            "Payload Too Large",
            format!(
                "the body is {} bytes; the limit is {MAX_BODY_BYTES}",
                req.body.len()
            ),
            &[],
        );
    }
    let secrets = match app.source_secrets.get(&source.secret) {
        Some(cached) => match cached.get().await {
            Ok(s) => SourceSecrets::from_secret_string(s.expose()),
            Err(e) => {
                warn!(source = name, error = %e, "source secret unavailable");
                return unavailable("try again shortly; nothing was accepted");
            }
        },
        None => SourceSecrets::default(),
    };
    let url = source
        .options
        .extra
        .get("public_url")
        .map(|u| match &req.query {
            Some(q) => format!("{u}?{q}"),
            None => u.clone(),
        })
        .unwrap_or_else(|| req.url());
    let inbound = Inbound {
        method: &req.method,
        url: &url,
        headers: &req.headers,
        body: &req.body,
    };
    let intake = Intake {
        ledger: app.ledger.as_ref(),
        queue: app.queue.as_ref(),
        alerts: app.alerts.as_ref(),
        rejection_window: app.rejection_window,
        config: app.config.as_deref(),
    };
    match accept_source(&intake, source, &secrets, &inbound, now).await {
        Ok(reply) => WebhookResponse {
            status: reply.status,
            content_type: reply.content_type,
            body: reply.body,
            retry_after: None,
        },
        Err(SourceError::UnknownSource) => {
            problem(404, "not_found", "Not Found", "no such source", &[])
        }
        Err(SourceError::MethodNotAllowed) => problem(
            405,
            "method_not_allowed",
            "Method Not Allowed",
            format!("use POST /v1/sources/{name}"),
            &[],
        ),
        Err(SourceError::Unauthorized(e)) => {
            problem(401, "invalid_signature", "Unauthorized", e.to_string(), &[])
        }
        Err(SourceError::BadRequest(msg)) => problem(
            400,
            "invalid_body",
            "Bad Request",
            format!("the body is not what this source's vendor sends: {msg}"),
            &[],
        ),
        Err(SourceError::Unavailable(msg)) => {
            let mut r = problem(503, "queue_unavailable", "Service Unavailable", msg, &[]);
            r.retry_after = Some(5);
            r
        }
    }
}

/// `GET /v1/events/{event_id}` with an API key: the event's status as the ledger has it.
async fn serve_status(app: &Ingest, req: &WebhookRequest, raw_id: &str) -> WebhookResponse {
    if req.method != "GET" {
        return problem(
            405,
            "method_not_allowed",
            "Method Not Allowed",
            "use GET /v1/events/{event_id}",
            &[],
        );
    }
    let keys = match app.status_api_key.get().await {
        Ok(s) => StatusKeys::parse(s.expose()),
        Err(e) => {
            warn!(error = %e, "status API key secret unavailable");
            return unavailable("try again shortly");
        }
    };
    if keys.is_empty() {
        warn!("the status API key secret holds no key; rejecting every status request");
    }
    let Some(scope) = presented_api_key(req).and_then(|k| keys.scope_of(k)) else {
        info!(
            status = 401,
            "status request rejected: missing or wrong API key"
        );
        return problem(
            401,
            "unauthorized",
            "Unauthorized",
            "send a valid API key as `Authorization: Bearer <key>` or `x-api-key: <key>`",
            &[],
        );
    };
    let not_found = |id: &str| {
        problem(
            404,
            "event_not_found",
            "Not Found",
            format!(
                "no event {} in the ledger",
                id.chars().take(128).collect::<String>()
            ),
            &[],
        )
    };
    let id = percent_encoding::percent_decode_str(raw_id)
        .decode_utf8_lossy()
        .into_owned();
    // An event id, or one delivery of it: `<event_id>@<connection>`.
    if EventId::parse(split_delivery_id(&id).0).is_err() {
        return not_found(&id);
    }
    let event_id = id.as_str();
    match lb_pipeline::status::event_status(app.ledger.as_ref(), event_id).await {
        // A key limited to some bots learns nothing of another bot's events, not
        // even that they exist: the same 404 as an unknown id.
        Ok(Some(view)) if !scope.may_read(view.bot_id.as_deref()) => {
            info!(
                event_id,
                status = 404,
                "status of an event outside the key's bots"
            );
            not_found(event_id)
        }
        Ok(Some(view)) => {
            info!(
                event_id,
                status = 200,
                delivery = view.status.as_str(),
                "event status served"
            );
            // Serialized from the struct, so the fields keep the documented order.
            match serde_json::to_string(&view) {
                Ok(body) => WebhookResponse {
                    status: 200,
                    content_type: "application/json",
                    body,
                    retry_after: None,
                },
                Err(_) => unavailable("try again shortly"),
            }
        }
        Ok(None) => {
            info!(event_id, status = 404, "status of an unknown event");
            not_found(event_id)
        }
        Err(e) => {
            warn!(event_id, status = 503, error = %e, "ledger unavailable for a status request");
            unavailable("the ledger is unavailable; try again shortly")
        }
    }
}

/// The key from `Authorization: Bearer <key>`, else from `x-api-key`.
fn presented_api_key(req: &WebhookRequest) -> Option<&str> {
    let bearer = req.header("authorization").and_then(|a| {
        let (scheme, key) = a.trim().split_once(' ')?;
        scheme.eq_ignore_ascii_case("bearer").then(|| key.trim())
    });
    bearer
        .or_else(|| req.header("x-api-key").map(str::trim))
        .filter(|k| !k.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;
    use lb_pipeline::fakes::{InMemoryLedger, InMemoryQueue, RecordingAlerts, StaticSecrets};

    struct T {
        app: Ingest,
        queue: Arc<InMemoryQueue>,
        ledger: Arc<InMemoryLedger>,
        secrets: Arc<StaticSecrets>,
        alerts: Arc<RecordingAlerts>,
    }

    fn app() -> T {
        app_with_ttl(Duration::from_secs(60))
    }

    fn app_with_ttl(ttl: Duration) -> T {
        let secrets = Arc::new(StaticSecrets::default());
        secrets.set("wh", r#"{"secrets":["s1","s0"]}"#);
        secrets.set("status", r#"{"keys":["key-new","key-old"]}"#);
        let queue = Arc::new(InMemoryQueue::default());
        let ledger = Arc::new(InMemoryLedger::default());
        let alerts = Arc::new(RecordingAlerts::default());
        let app = Ingest {
            ledger: ledger.clone(),
            queue: queue.clone(),
            webhook_secret: CachedSecret::new(secrets.clone(), "wh", ttl),
            status_api_key: CachedSecret::new(secrets.clone(), "status", ttl),
            alerts: alerts.clone(),
            rejection_window: Duration::from_secs(900),
            config: None,
            sources: BTreeMap::new(),
            source_secrets: BTreeMap::new(),
            secrets: secrets.clone(),
            secret_ttl: ttl,
        };
        T {
            app,
            queue,
            ledger,
            secrets,
            alerts,
        }
    }

    fn app_with_config(toml: &str) -> T {
        let mut t = app();
        t.app.config = Some(Arc::new(
            lb_config::Config::parse(toml).expect("a valid config"),
        ));
        t
    }

    const ROUTED: &str = r#"
version = 1

[enums."answers.company_size"]
allowed = ["1-10", "11-50", "51-200", "201+"]
map = { "just me" = "1-10", "enterprise" = "201+" }

[connections.hubspot]
kind = "hubspot"
secret = "hs"

[connections.zapier]
kind = "webhook"
url = "https://hooks.example.com/x"
auth = "none"

[[routes]]
bot_id = "bot_gdpr"
connections = ["hubspot", "zapier"]
lead_source = "Chatbot"
require_consent = true
phone_region = "IN"
required = ["visitor.email"]

[[routes]]
bot_id = "*"
connections = ["hubspot"]
"#;

    fn routed_body(bot: &str, extra: serde_json::Value) -> Vec<u8> {
        let mut v = json!({
            "event_id": "evt_r1", "event_type": "lead.created", "occurred_at": "2026-05-04T11:23:45Z",
            "bot_id": bot, "visitor": {"email": "priya@acme.in", "phone": "09876543210"},
            "answers": {"company_size": "Just me"}
        });
        if let (Some(o), Some(e)) = (v.as_object_mut(), extra.as_object()) {
            for (k, x) in e {
                o.insert(k.clone(), x.clone());
            }
        }
        serde_json::to_vec(&v).unwrap()
    }

    #[tokio::test]
    async fn warm_up_reads_every_secret_at_init_so_the_first_request_needs_none() {
        let mut t = app();
        t.secrets.set(
            "src/wa",
            r#"{"secrets": ["app-secret"], "verify_token": "tok"}"#,
        );
        let source = lb_config::Source {
            name: "wa".into(),
            kind: "whatsapp",
            bot_id: "bot_wa".into(),
            secret: "src/wa".into(),
            options: Default::default(),
        };
        t.app
            .set_sources(BTreeMap::from([("wa".to_string(), source)]));
        assert_eq!(
            t.app.warm_up().await,
            3,
            "webhook, status key and the source's secret"
        );
        for id in ["wh", "status", "src/wa"] {
            t.secrets.remove(id);
        }
        let now = Utc::now();
        let r = handle(&t.app, &req(body(), "s1", now), now).await;
        assert_eq!(r.status, 202, "{}", r.body);
        let handshake = WebhookRequest {
            method: "GET".into(),
            scheme: "https",
            path: "/v1/sources/wa".into(),
            query: Some("hub.mode=subscribe&hub.challenge=42&hub.verify_token=tok".into()),
            headers: vec![("host".into(), "x.example".into())],
            body: Vec::new(),
        };
        let r = handle(&t.app, &handshake, now).await;
        assert_eq!((r.status, r.body.as_str()), (200, "42"));
    }

    #[tokio::test]
    async fn a_routed_bot_fans_out_one_message_per_connection_with_its_policies_applied() {
        let t = app_with_config(ROUTED);
        let now = Utc::now();
        let consent = json!({"consent": {"given_at": "2026-05-04T11:20:00Z", "text_version": "v3", "purpose": "sales_followup"}});
        let r = handle(
            &t.app,
            &req(routed_body("bot_gdpr", consent), "s1", now),
            now,
        )
        .await;
        assert_eq!(r.status, 202, "{}", r.body);
        let sent = t.queue.enqueued();
        let ids: Vec<String> = sent.iter().map(|l| l.delivery_id()).collect();
        assert_eq!(ids, ["evt_r1@hubspot", "evt_r1@zapier"]);
        let lead = &sent[0];
        assert_eq!(lead.lead_source(), Some("Chatbot"));
        assert_eq!(
            lead.event.visitor.phone.as_ref().unwrap().as_str(),
            "+919876543210",
            "the route's phone region reads the national number"
        );
        assert_eq!(
            lead.event.answers["company_size"], "1-10",
            "value map applied"
        );
        assert_eq!(
            t.ledger.record("evt_r1@zapier").unwrap().status,
            lb_pipeline::LedgerStatus::Queued
        );
    }

    #[tokio::test]
    async fn no_consent_under_a_consent_policy_is_422_consent_required_and_recorded() {
        let t = app_with_config(ROUTED);
        let now = Utc::now();
        let r = handle(
            &t.app,
            &req(routed_body("bot_gdpr", json!({})), "s1", now),
            now,
        )
        .await;
        assert_eq!(r.status, 422, "{}", r.body);
        let v: serde_json::Value = serde_json::from_str(&r.body).unwrap();
        assert_eq!(v["type"], "urn:leadbridge:problem:consent_required");
        assert_eq!(v["errors"][0]["field"], "consent.given_at");
        assert!(t.queue.enqueued().is_empty());
        let rejected = t.ledger.rejections();
        assert_eq!(rejected.len(), 1);
        assert_eq!(rejected[0].event_id, "evt_r1");
        assert_eq!(rejected[0].bot_id.as_deref(), Some("bot_gdpr"));
        let e = rejected[0].last_error.as_ref().unwrap();
        assert_eq!(e.code, "consent_required");
        assert!(e.message.contains("p***@acme.in"), "{}", e.message);
        assert!(!e.message.contains("priya@"), "{}", e.message);
        assert_eq!(t.alerts.sent().len(), 1);
        // The other bots' route does not ask for consent.
        let intl = json!({"visitor": {"email": "priya@acme.in", "phone": "+91 98765-43210"}});
        let r = handle(&t.app, &req(routed_body("bot_other", intl), "s1", now), now).await;
        assert_eq!(r.status, 202, "{}", r.body);
    }

    #[tokio::test]
    async fn a_bot_without_a_route_is_422_no_route_when_the_config_has_no_catch_all() {
        let only_gdpr = ROUTED.replace("bot_id = \"*\"", "bot_id = \"bot_other\"");
        let t = app_with_config(&only_gdpr);
        let now = Utc::now();
        let r = handle(
            &t.app,
            &req(routed_body("bot_unrouted", json!({})), "s1", now),
            now,
        )
        .await;
        assert_eq!(r.status, 422, "{}", r.body);
        let v: serde_json::Value = serde_json::from_str(&r.body).unwrap();
        assert_eq!(v["errors"][0]["field"], "bot_id");
        assert_eq!(v["errors"][0]["code"], "no_route");
        assert!(t.queue.enqueued().is_empty());
        let rejected = t.ledger.rejections();
        assert_eq!(rejected.len(), 1);
        assert_eq!(rejected[0].last_error.as_ref().unwrap().code, "no_route");
    }

    #[tokio::test]
    async fn a_routes_own_enum_decides_for_its_bot_and_the_top_level_one_for_the_others() {
        let config = ROUTED.replace(
            "required = [\"visitor.email\"]\n",
            "required = [\"visitor.email\"]\n\n[routes.enums.\"answers.company_size\"]\n\
             allowed = [\"klein\", \"gross\"]\nmap = { \"just me\" = \"klein\" }\n",
        );
        assert_ne!(config, ROUTED);
        let t = app_with_config(&config);
        let now = Utc::now();
        let consent = json!({"consent": {"given_at": "2026-05-04T11:20:00Z"}});
        let r = handle(
            &t.app,
            &req(routed_body("bot_gdpr", consent), "s1", now),
            now,
        )
        .await;
        assert_eq!(r.status, 202, "{}", r.body);
        assert_eq!(t.queue.enqueued()[0].event.answers["company_size"], "klein");

        // "201+" is the top level's value, not bot_gdpr's; another bot keeps it.
        let big = json!({"answers": {"company_size": "enterprise"}, "event_id": "evt_r2",
            "consent": {"given_at": "2026-05-04T11:20:00Z"},
            "visitor": {"email": "priya@acme.in", "phone": "+919876543210"}});
        let r = handle(
            &t.app,
            &req(routed_body("bot_gdpr", big.clone()), "s1", now),
            now,
        )
        .await;
        assert_eq!(r.status, 422, "{}", r.body);
        assert!(r.body.contains("klein, gross"), "{}", r.body);
        let r = handle(&t.app, &req(routed_body("bot_other", big), "s1", now), now).await;
        assert_eq!(r.status, 202, "{}", r.body);
    }

    #[tokio::test]
    async fn a_value_outside_the_allowlist_names_the_allowed_ones() {
        let t = app_with_config(ROUTED);
        let now = Utc::now();
        let body = routed_body(
            "bot_other",
            json!({"answers": {"company_size": "a few"}, "visitor": {"email": "priya@acme.in"}}),
        );
        let r = handle(&t.app, &req(body, "s1", now), now).await;
        assert_eq!(r.status, 422, "{}", r.body);
        let v: serde_json::Value = serde_json::from_str(&r.body).unwrap();
        assert_eq!(v["errors"][0]["field"], "answers.company_size");
        assert_eq!(v["errors"][0]["code"], "value_not_allowed");
        let msg = v["errors"][0]["message"].as_str().unwrap();
        assert!(msg.contains("51-200"), "{msg}");
    }

    #[tokio::test]
    async fn rejections_are_recorded_every_time_and_alerted_once_per_bot_and_window() {
        let t = app();
        let now = Utc::now();
        for i in 0..3 {
            let body = serde_json::to_vec(&json!({
                "event_id": format!("evt_bad{i}"), "event_type": "lead.created",
                "occurred_at": "2026-05-04T11:23:45Z", "bot_id": "bot_a",
                "visitor": {"email": "not-an-email"}
            }))
            .unwrap();
            assert_eq!(handle(&t.app, &req(body, "s1", now), now).await.status, 422);
        }
        let r = handle(&t.app, &req(b"{oops".to_vec(), "s1", now), now).await;
        assert_eq!(r.status, 400);
        let rejected = t.ledger.rejections();
        assert_eq!(rejected.len(), 4);
        assert!(
            rejected[3].event_id.starts_with("body-"),
            "{}",
            rejected[3].event_id
        );
        assert_eq!(
            rejected[3].last_error.as_ref().unwrap().code,
            "invalid_json"
        );
        // One per bot and window: bot_a's first, and the body that names no bot.
        let sent = t.alerts.sent();
        assert_eq!(sent.len(), 2, "{sent:?}");
        assert!(sent[0].0.contains("bot_a"), "{}", sent[0].0);
        assert!(sent[1].0.contains("unknown bot"), "{}", sent[1].0);
    }

    fn body() -> Vec<u8> {
        serde_json::to_vec(&json!({
            "event_id": "evt_1", "event_type": "lead.created", "occurred_at": "2026-05-04T11:23:45Z",
            "bot_id": "bot_a", "visitor": {"email": "Jane@X.io"}
        }))
        .unwrap()
    }

    fn req(body: Vec<u8>, secret: &str, now: DateTime<Utc>) -> WebhookRequest {
        WebhookRequest {
            method: "POST".into(),
            scheme: "https",
            path: "/v1/events".into(),
            query: None,
            headers: vec![
                ("content-type".into(), "application/json".into()),
                (
                    "leadbridge-signature".into(),
                    signature::sign(secret, now.timestamp(), &body),
                ),
            ],
            body,
        }
    }

    #[test]
    fn a_response_becomes_http_with_its_content_type_and_retry_after() {
        let mut r = unavailable("later");
        r.retry_after = Some(7);
        let h = r.into_http();
        assert_eq!(h.status(), 503);
        assert_eq!(h.headers()["content-type"], "application/problem+json");
        assert_eq!(h.headers()["retry-after"], "7");
        assert!(h.body().contains("urn:leadbridge:problem:unavailable"));
        let ok = WebhookResponse::json(202, json!({"status": "queued"})).into_http();
        assert!(ok.headers().get("retry-after").is_none());
    }

    #[tokio::test]
    async fn a_signed_valid_lead_is_queued_with_202() {
        let t = app();
        let now = Utc::now();
        let r = handle(&t.app, &req(body(), "s1", now), now).await;
        assert_eq!(r.status, 202, "{}", r.body);
        assert_eq!(r.body, r#"{"event_id":"evt_1","status":"queued"}"#);
        assert_eq!(t.queue.enqueued().len(), 1);
        let r = handle(&t.app, &req(body(), "s0", now), now).await;
        assert_eq!(r.status, 202);
        assert!(r.body.contains(r#""duplicate":true"#));
    }

    #[tokio::test]
    async fn bad_signature_is_401_and_queues_nothing() {
        let t = app();
        let now = Utc::now();
        let r = handle(&t.app, &req(body(), "wrong", now), now).await;
        assert_eq!(r.status, 401);
        assert_eq!(r.content_type, "application/problem+json");
        assert!(t.queue.enqueued().is_empty());
    }

    #[tokio::test]
    async fn wrong_content_type_and_bad_json_are_400() {
        let t = app();
        let now = Utc::now();
        let mut r = req(body(), "s1", now);
        r.headers[0].1 = "text/plain".into();
        assert_eq!(handle(&t.app, &r, now).await.status, 400);
        let r = handle(&t.app, &req(b"{oops".to_vec(), "s1", now), now).await;
        assert_eq!(r.status, 400);
        assert!(r.body.contains("invalid_json"));
    }

    #[tokio::test]
    async fn an_oversized_body_is_413() {
        let t = app();
        let now = Utc::now();
        let r = handle(&t.app, &req(vec![b' '; MAX_BODY_BYTES + 1], "s1", now), now).await;
        assert_eq!(r.status, 413);
    }

    #[tokio::test]
    async fn queue_outage_is_503_with_retry_after() {
        let t = app();
        t.queue.set_failing(true);
        let now = Utc::now();
        let r = handle(&t.app, &req(body(), "s1", now), now).await;
        assert_eq!(r.status, 503);
        assert_eq!(r.retry_after, Some(5));
    }

    #[tokio::test]
    async fn other_routes_are_404_and_other_methods_405() {
        let t = app();
        let now = Utc::now();
        let mut r = req(body(), "s1", now);
        r.path = "/v2/events".into();
        assert_eq!(handle(&t.app, &r, now).await.status, 404);
        let mut r = req(body(), "s1", now);
        r.method = "GET".into();
        assert_eq!(handle(&t.app, &r, now).await.status, 405);
    }

    fn body_for_bot(event_id: &str, bot_id: &str) -> Vec<u8> {
        serde_json::to_vec(&json!({
            "event_id": event_id, "event_type": "lead.created", "occurred_at": "2026-05-04T11:23:45Z",
            "bot_id": bot_id, "visitor": {"email": "Jane@X.io"}
        }))
        .unwrap()
    }

    fn per_bot_secrets(t: &T) {
        t.secrets.set(
            "wh",
            r#"{"secrets":["global"],"bots":{"bot_acme":["acme-new","acme-old"],"bot_beta":"beta"}}"#,
        );
    }

    #[tokio::test]
    async fn a_bot_with_its_own_secret_is_verified_by_that_secret() {
        let t = app();
        per_bot_secrets(&t);
        let now = Utc::now();
        let r = handle(
            &t.app,
            &req(body_for_bot("evt_1", "bot_acme"), "acme-new", now),
            now,
        )
        .await;
        assert_eq!(r.status, 202, "{}", r.body);
        let r = handle(
            &t.app,
            &req(body_for_bot("evt_2", "bot_beta"), "beta", now),
            now,
        )
        .await;
        assert_eq!(r.status, 202, "a single string works too: {}", r.body);
    }

    #[tokio::test]
    async fn another_bots_secret_or_the_global_one_does_not_verify_a_bot_with_its_own() {
        let t = app();
        per_bot_secrets(&t);
        let now = Utc::now();
        for secret in ["beta", "global"] {
            let r = handle(
                &t.app,
                &req(body_for_bot("evt_1", "bot_acme"), secret, now),
                now,
            )
            .await;
            assert_eq!(r.status, 401, "signed with {secret}");
        }
        assert!(t.queue.enqueued().is_empty());
    }

    #[tokio::test]
    async fn both_the_old_and_the_new_secret_pass_while_a_bot_rotates() {
        let t = app();
        per_bot_secrets(&t);
        let now = Utc::now();
        for (i, secret) in ["acme-new", "acme-old"].iter().enumerate() {
            let r = handle(
                &t.app,
                &req(body_for_bot(&format!("evt_{i}"), "bot_acme"), secret, now),
                now,
            )
            .await;
            assert_eq!(r.status, 202, "signed with {secret}: {}", r.body);
        }
    }

    #[tokio::test]
    async fn a_bot_without_an_entry_is_verified_by_the_global_secrets() {
        let t = app();
        per_bot_secrets(&t);
        let now = Utc::now();
        let ok = handle(
            &t.app,
            &req(body_for_bot("evt_1", "bot_other"), "global", now),
            now,
        )
        .await;
        assert_eq!(ok.status, 202, "{}", ok.body);
        let bad = handle(
            &t.app,
            &req(body_for_bot("evt_2", "bot_other"), "acme-new", now),
            now,
        )
        .await;
        assert_eq!(bad.status, 401);
    }

    #[tokio::test]
    async fn a_rejection_reads_the_same_whether_or_not_the_bot_has_its_own_secret() {
        let t = app();
        t.secrets.set(
            "wh",
            r#"{"secrets":["global"],"bots":{"bot_acme":["acme"],"bot_locked":[]}}"#,
        );
        let now = Utc::now();
        let mut bodies = Vec::new();
        for bot in ["bot_acme", "bot_locked", "bot_unknown"] {
            let r = handle(&t.app, &req(body_for_bot("evt_1", bot), "wrong", now), now).await;
            assert_eq!(r.status, 401, "{bot}");
            bodies.push(r.body);
        }
        assert!(bodies.windows(2).all(|w| w[0] == w[1]), "{bodies:?}");
        let r = handle(&t.app, &req(b"not json".to_vec(), "wrong", now), now).await;
        assert_eq!(
            r.status, 401,
            "a body that is not JSON is checked with the global secrets"
        );
        assert_eq!(r.body, bodies[0]);
    }

    #[tokio::test]
    async fn a_rotated_secret_is_picked_up_after_the_cache_ttl_without_a_redeploy() {
        let t = app_with_ttl(Duration::ZERO);
        let now = Utc::now();
        let r = handle(
            &t.app,
            &req(body_for_bot("evt_1", "bot_acme"), "acme-new", now),
            now,
        )
        .await;
        assert_eq!(r.status, 401, "not yet configured");
        per_bot_secrets(&t);
        let r = handle(
            &t.app,
            &req(body_for_bot("evt_1", "bot_acme"), "acme-new", now),
            now,
        )
        .await;
        assert_eq!(r.status, 202, "{}", r.body);
    }

    fn status_req(path: &str, headers: &[(&str, &str)]) -> WebhookRequest {
        WebhookRequest {
            method: "GET".into(),
            scheme: "https",
            path: path.into(),
            query: None,
            headers: headers
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            body: vec![],
        }
    }

    async fn synced(t: &T, event_id: &str) {
        let lead = lb_pipeline::fakes::sample_lead(event_id, "priya.sharma@acmecorp.in");
        let now = Utc::now();
        let l = t.ledger.as_ref();
        l.record_received(&lead, &lead.to_json(), now)
            .await
            .unwrap();
        l.begin(
            &lead,
            &lead.to_json(),
            now,
            now + chrono::Duration::seconds(30),
        )
        .await
        .unwrap();
        let outcome = lb_pipeline::SyncOutcome {
            crm: "hubspot".into(),
            contact_id: "1001".into(),
            contact_created: true,
            note_id: Some("2002".into()),
            deal_id: None,
        };
        l.complete(&lead.delivery_id(), &outcome, now)
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn the_status_of_a_synced_event_is_200_with_its_crm_ids() {
        let t = app();
        synced(&t, "evt_1").await;
        let now = Utc::now();
        for headers in [
            [("authorization", "Bearer key-new")],
            [("x-api-key", "key-old")],
        ] {
            let r = handle(&t.app, &status_req("/v1/events/evt_1", &headers), now).await;
            assert_eq!(r.status, 200, "{}", r.body);
            assert_eq!(r.content_type, "application/json");
            let v: serde_json::Value = serde_json::from_str(&r.body).unwrap();
            assert_eq!(v["event_id"], "evt_1");
            assert_eq!(v["status"], "synced");
            assert_eq!(v["attempts"], 1);
            assert_eq!(v["replays"], 0);
            assert_eq!(v["crm"]["name"], "hubspot");
            assert_eq!(v["crm"]["contact_id"], "1001");
            assert_eq!(v["crm"]["note_id"], "2002");
            assert_eq!(v["crm"]["contact_created"], true);
            assert_eq!(v["last_error"], serde_json::Value::Null);
            assert_eq!(v["bot_id"], "bot_test");
            assert!(v["received_at"].is_string() && v["updated_at"].is_string());
        }
    }

    #[tokio::test]
    async fn a_missing_or_wrong_api_key_is_401() {
        let t = app();
        synced(&t, "evt_1").await;
        let now = Utc::now();
        for headers in [
            vec![],
            vec![("authorization", "Bearer nope")],
            vec![("x-api-key", "nope")],
            vec![("authorization", "Basic key-new")],
            vec![("authorization", "Bearer ")],
            vec![("x-api-key", "key-new-but-longer")],
        ] {
            let r = handle(&t.app, &status_req("/v1/events/evt_1", &headers), now).await;
            assert_eq!(r.status, 401, "{headers:?}");
            assert_eq!(r.content_type, "application/problem+json");
            assert!(!r.body.contains("1001"), "nothing of the event leaks");
        }
        let r = handle(&t.app, &status_req("/v1/events/evt_unknown", &[]), now).await;
        assert_eq!(
            r.status, 401,
            "without a key, unknown and known ids look the same"
        );
    }

    #[tokio::test]
    async fn an_unknown_event_is_404() {
        let t = app();
        let now = Utc::now();
        let key = [("x-api-key", "key-new")];
        for path in [
            "/v1/events/evt_unknown",
            "/v1/events/not%20an%20id",
            "/v1/events/%ZZ",
        ] {
            let r = handle(&t.app, &status_req(path, &key), now).await;
            assert_eq!(r.status, 404, "{path}: {}", r.body);
            assert_eq!(r.content_type, "application/problem+json");
        }
    }

    #[tokio::test]
    async fn an_escaped_event_id_in_the_path_is_decoded() {
        let t = app();
        synced(&t, "evt:1").await;
        let r = handle(
            &t.app,
            &status_req("/v1/events/evt%3A1", &[("x-api-key", "key-new")]),
            Utc::now(),
        )
        .await;
        assert_eq!(r.status, 200, "{}", r.body);
    }

    #[tokio::test]
    async fn the_status_endpoint_answers_only_get() {
        let t = app();
        let mut r = status_req("/v1/events/evt_1", &[("x-api-key", "key-new")]);
        r.method = "POST".into();
        assert_eq!(handle(&t.app, &r, Utc::now()).await.status, 405);
        let r = status_req("/v1/events/evt_1/more", &[("x-api-key", "key-new")]);
        assert_eq!(handle(&t.app, &r, Utc::now()).await.status, 404);
    }

    #[tokio::test]
    async fn a_plain_string_secret_is_one_status_api_key() {
        let t = app();
        t.secrets.set("status", "just-one-key\n");
        synced(&t, "evt_1").await;
        let r = handle(
            &t.app,
            &status_req(
                "/v1/events/evt_1",
                &[("authorization", "bearer just-one-key")],
            ),
            Utc::now(),
        )
        .await;
        assert_eq!(r.status, 200, "{}", r.body);
    }

    #[tokio::test]
    async fn a_key_limited_to_bots_reads_only_their_events_and_learns_nothing_of_others() {
        let t = app();
        // sample leads are bot_test's
        t.secrets.set(
            "status",
            r#"{"keys": ["admin"], "bots": {"bot_test": ["test-key"], "bot_other": ["other-key"]}}"#,
        );
        synced(&t, "evt_1").await;
        let get = |path: &'static str, key: &'static str| {
            let t = &t;
            async move { handle(&t.app, &status_req(path, &[("x-api-key", key)]), Utc::now()).await }
        };
        assert_eq!(get("/v1/events/evt_1", "admin").await.status, 200);
        assert_eq!(get("/v1/events/evt_1", "test-key").await.status, 200);
        let other = get("/v1/events/evt_1", "other-key").await;
        let unknown = get("/v1/events/evt_nope", "other-key").await;
        assert_eq!((other.status, unknown.status), (404, 404));
        assert_eq!(
            other.body.replace("evt_1", "ID"),
            unknown.body.replace("evt_nope", "ID"),
            "the same answer whether the event exists or not"
        );
        assert_eq!(get("/v1/events/evt_1", "wrong").await.status, 401);
    }

    #[tokio::test]
    async fn the_crms_message_in_a_status_is_scrubbed_of_the_leads_identities() {
        let t = app();
        let lead = lb_pipeline::fakes::sample_lead("evt_1", "priya.sharma@acmecorp.in");
        let now = Utc::now();
        t.ledger
            .record_received(&lead, &lead.to_json(), now)
            .await
            .unwrap();
        let reason = lb_pipeline::FailureReason {
            message: "Property values were not valid: priya.sharma@acmecorp.in (Priya Sharma)"
                .into(),
            ..lb_pipeline::fakes::permanent("x").reason()
        };
        t.ledger
            .mark_dead("evt_1", &reason, None, now)
            .await
            .unwrap();
        let r = handle(
            &t.app,
            &status_req("/v1/events/evt_1", &[("x-api-key", "key-new")]),
            now,
        )
        .await;
        assert_eq!(r.status, 200, "{}", r.body);
        let v: serde_json::Value = serde_json::from_str(&r.body).unwrap();
        assert_eq!(v["status"], "dead");
        let message = v["last_error"]["message"].as_str().unwrap();
        assert!(!r.body.contains("priya.sharma"), "{}", r.body);
        assert!(!r.body.contains("Priya Sharma"), "{}", r.body);
        assert!(message.contains("p***@acmecorp.in"), "{message}");
        assert_eq!(v["last_error"]["code"], "crm_rejected");
        assert_eq!(v["last_error"]["http_status"], 400);
        assert_eq!(v["crm"], serde_json::Value::Null);
    }

    #[tokio::test]
    async fn a_ledger_outage_makes_the_status_503() {
        let t = app();
        t.ledger.set_failing(true);
        let r = handle(
            &t.app,
            &status_req("/v1/events/evt_1", &[("x-api-key", "key-new")]),
            Utc::now(),
        )
        .await;
        assert_eq!(r.status, 503);
        assert_eq!(r.retry_after, Some(5));
    }
}
