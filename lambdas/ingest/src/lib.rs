//! The ingest function: `POST /v1/events` → verify → parse → validate → enqueue → 202.
//! [`handle`] is transport-neutral, so the Lambda (API Gateway) and the local
//! runner (plain HTTP) serve exactly the same code.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use lb_domain::{FieldError, QueuedLead};
use lb_pipeline::accept::{accept_lead, AcceptError, Accepted};
use lb_pipeline::secrets::{secret_values, CachedSecret};
use lb_pipeline::{env_parse, env_var, LeadQueue, Ledger, SecretStore};
use lb_vendors::canonical::{self, MAX_BODY_BYTES};
use lb_vendors::signature::{self, SignatureError};
use lb_vendors::ParseError;
use serde_json::json;
use tracing::{info, warn};

pub struct Ingest {
    pub ledger: Arc<dyn Ledger>,
    pub queue: Arc<dyn LeadQueue>,
    /// Secret holding the webhook signing secret(s): a string, or `{"secrets": ["current", "previous"]}`.
    pub webhook_secret: CachedSecret,
}

/// The settings ingest reads from its environment at cold start.
#[derive(Debug, Clone)]
pub struct IngestEnv {
    pub queue_url: String,
    pub dlq_url: String,
    pub table_name: String,
    pub webhook_secret_id: String,
    pub secret_ttl: Duration,
}

impl IngestEnv {
    pub fn from_env() -> Result<Self, String> {
        Ok(Self {
            queue_url: env_var("LEADS_QUEUE_URL")?,
            dlq_url: env_var("LEADS_DLQ_URL")?,
            table_name: env_var("LEDGER_TABLE")?,
            webhook_secret_id: env_var("WEBHOOK_SECRET_ID")?,
            secret_ttl: Duration::from_secs(env_parse("SECRET_TTL_SECONDS", 300u64)?),
        })
    }
}

impl Ingest {
    pub fn new(
        ledger: Arc<dyn Ledger>,
        queue: Arc<dyn LeadQueue>,
        secrets: Arc<dyn SecretStore>,
        env: &IngestEnv,
    ) -> Self {
        Self {
            ledger,
            queue,
            webhook_secret: CachedSecret::new(secrets, &env.webhook_secret_id, env.secret_ttl),
        }
    }
}

/// A request as ingest sees it, whatever carried it.
#[derive(Debug, Clone)]
pub struct WebhookRequest {
    pub method: String,
    pub path: String,
    /// Header names lowercased.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl WebhookRequest {
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

/// Serves one webhook request. 2xx only once the lead is durably queued.
pub async fn handle(app: &Ingest, req: &WebhookRequest, now: DateTime<Utc>) -> WebhookResponse {
    let path = req.path.trim_end_matches('/');
    if path != "/v1/events" {
        return problem(
            404,
            "not_found",
            "Not Found",
            format!(
                "no route {}",
                req.path.chars().take(200).collect::<String>()
            ),
            &[],
        );
    }
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
    let secrets = match app.webhook_secret.get().await {
        Ok(s) => secret_values(s.expose(), "secrets"),
        Err(e) => {
            warn!(error = %e, "webhook secret unavailable");
            let mut r = problem(
                503,
                "unavailable",
                "Service Unavailable",
                "try again shortly; nothing was accepted",
                &[],
            );
            r.retry_after = Some(5);
            return r;
        }
    };
    let refs: Vec<&str> = secrets.iter().map(String::as_str).collect();
    if let Err(e) = signature::verify(
        req.header(signature::HEADER),
        &req.body,
        &refs,
        now.timestamp(),
    ) {
        if e == SignatureError::NoSecret {
            warn!("the webhook secret holds no signing secret; rejecting every request");
        }
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
    let event = match canonical::parse(&req.body) {
        Ok(e) => e,
        Err(ParseError::NotJson(msg)) => {
            return problem(
                400,
                "invalid_json",
                "Bad Request",
                format!("the body is not valid JSON: {msg}"),
                &[],
            )
        }
        Err(ParseError::Invalid(errors)) => {
            let codes: Vec<&str> = errors.iter().map(|e| e.code.as_str()).collect();
            info!(status = 422, codes = ?codes, "webhook rejected: invalid lead");
            return problem(
                422,
                "invalid_lead",
                "Unprocessable Content",
                format!("{} field(s) are not valid", errors.len()),
                &errors,
            );
        }
    };
    let event_id = event.event_id.as_str().to_string();
    let Some(lead) = QueuedLead::new(event, now) else {
        return problem(
            422,
            "invalid_lead",
            "Unprocessable Content",
            "no identity",
            &[],
        );
    };
    match accept_lead(app.ledger.as_ref(), app.queue.as_ref(), &lead, now).await {
        Ok(accepted) => {
            let duplicate = accepted == Accepted::Duplicate;
            info!(event_id, status = 202, duplicate, contact = %lead.contact_key.hashed(), "lead accepted");
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

#[cfg(test)]
mod tests {
    use super::*;
    use lb_pipeline::fakes::{InMemoryLedger, InMemoryQueue, StaticSecrets};

    struct T {
        app: Ingest,
        queue: Arc<InMemoryQueue>,
    }

    fn app() -> T {
        let secrets = Arc::new(StaticSecrets::default());
        secrets.set("wh", r#"{"secrets":["s1","s0"]}"#);
        let queue = Arc::new(InMemoryQueue::default());
        let app = Ingest {
            ledger: Arc::new(InMemoryLedger::default()),
            queue: queue.clone(),
            webhook_secret: CachedSecret::new(secrets, "wh", Duration::from_secs(60)),
        };
        T { app, queue }
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
            path: "/v1/events".into(),
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
}
