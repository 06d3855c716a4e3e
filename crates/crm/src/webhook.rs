//! Webhook connections: each lead is POSTed once, as one JSON body, to a URL
//! (Zapier, Make, n8n, a customer's own endpoint). The target keeps no records
//! we can find again, so [`Crm::keeps_records`] is `false` and only
//! [`Crm::upsert_contact`] is ever called.
//!
//! The body is the connection's mapping rendered for the lead, at the top level
//! (static values included; each target name is a top-level key, verbatim),
//! plus a `leadbridge` envelope:
//!
//! ```json
//! {"email": "jane@example.com", "source": "Chatbot",
//!  "leadbridge": {"event_id": "evt_1", "event_type": "lead.created",
//!                 "occurred_at": "2026-05-04T11:23:45Z", "bot_id": "bot_1",
//!                 "connection": "zap", "object": "contact", "test": false}}
//! ```
//!
//! A mapped field named `leadbridge` is replaced by the envelope. Every delivery
//! carries the whole body (a target keeps no record leadbridge could update in
//! part); a receiver that cares about order compares `occurred_at`.
//!
//! Headers: `Content-Type: application/json`, `User-Agent: leadbridge/<version>`,
//! `Idempotency-Key: <delivery id>` (the same on every retry of one delivery, so
//! the target can drop repeats), `X-Leadbridge-Event-Id`, the connection's
//! custom headers, and the auth header. Custom headers cannot replace
//! `Content-Type`, `Idempotency-Key`, `X-Leadbridge-*` or the auth header.
//! Redirects are not followed (a POST body does not survive them).
//!
//! Outcome: 2xx is delivered; 408, 425, 429 and 5xx are retried (429 as rate
//! limited), honouring `Retry-After`; 401/403 re-read the secret once (it may
//! have been rotated) and then fail permanently; any other status fails
//! permanently with the target's own answer. Neither errors nor logs carry the
//! body we sent, the URL (hook URLs are often secret), or any credential.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use base64::Engine;
use chrono::{DateTime, SecondsFormat, Utc};
use lb_domain::mapping::Mapping;
use lb_domain::{
    BotId, Delivery, Email, EventId, EventType, LeadContext, LeadEvent, QueuedLead, Visitor,
};
use lb_pipeline::secrets::{secret_values, CachedSecret};
use lb_pipeline::{ContactRef, ContactWrite, Crm, CrmError, ErrorClass};
use reqwest::header::{HeaderMap, HeaderName, HeaderValue, AUTHORIZATION, CONTENT_TYPE};
use reqwest::StatusCode;
use serde_json::{json, Map, Value};
use tracing::debug;

use crate::classify;

/// The key of the envelope in every body.
pub const ENVELOPE_KEY: &str = "leadbridge";
/// The visitor email of a test lead ([`WebhookCrm::send_test`]); `.invalid` never delivers.
pub const TEST_EMAIL: &str = "test@leadbridge.invalid";
pub const TEST_NAME: &str = "leadbridge test lead";
pub const TEST_BOT_ID: &str = "leadbridge-test";
/// How much of the target's answer an error message quotes.
const ERROR_TEXT_CHARS: usize = 500;
/// How much of the target's answer a test reply keeps.
const TEST_REPLY_BYTES: usize = 2048;

/// How a webhook connection authenticates. The credential is in the
/// connection's secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WebhookAuthKind {
    None,
    /// `Authorization: Bearer <token>`; the secret is the token or `{"token": "…"}`.
    Bearer,
    /// `<header>: <key>`; the secret is the key or `{"api_key": "…"}`.
    ApiKey {
        header: String,
    },
    /// `Authorization: Basic …`; the secret is `user:password` or
    /// `{"username": "…", "password": "…"}`.
    Basic,
}

impl WebhookAuthKind {
    fn as_str(&self) -> &'static str {
        match self {
            WebhookAuthKind::None => "no",
            WebhookAuthKind::Bearer => "bearer",
            WebhookAuthKind::ApiKey { .. } => "api_key",
            WebhookAuthKind::Basic => "basic",
        }
    }
}

/// One webhook connection.
#[derive(Clone)]
pub struct WebhookSettings {
    /// The connection's name (`[connections.<name>]`): the adapter's [`Crm::name`].
    pub name: String,
    pub url: String,
    pub auth: WebhookAuthKind,
    /// Sent with every request (after ours: they cannot replace ours).
    pub headers: Vec<(String, String)>,
    pub timeout: Duration,
    pub mapping: Mapping,
    /// A local run: the URL may resolve to this machine or a private network;
    /// deployments reach public hosts only (`net`).
    pub allow_internal: bool,
}

/// The largest answer read from a webhook target (its `id`, or its error text).
const MAX_ANSWER_BYTES: usize = 64 * 1024;

impl fmt::Debug for WebhookSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Hook URLs and header values are often secrets: show the host and header names only.
        let host = reqwest::Url::parse(&self.url)
            .ok()
            .and_then(|u| u.host_str().map(str::to_string))
            .unwrap_or_else(|| "?".into());
        let headers: Vec<&str> = self.headers.iter().map(|(k, _)| k.as_str()).collect();
        f.debug_struct("WebhookSettings")
            .field("name", &self.name)
            .field("url_host", &host)
            .field("auth", &self.auth)
            .field("headers", &headers)
            .field("timeout", &self.timeout)
            .field("mapping", &self.mapping)
            .finish()
    }
}

/// What the target answered a test lead.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TestReply {
    pub status: u16,
    /// The first 2 KiB of the answer.
    pub body: String,
    pub elapsed: Duration,
    /// What a real lead would have met: `None` delivered, else the error a
    /// delivery would get (its class says retried or dead-lettered).
    pub refused: Option<CrmError>,
}

/// The outbound webhook adapter.
pub struct WebhookCrm {
    http: reqwest::Client,
    settings: WebhookSettings,
    secret: Option<Arc<CachedSecret>>,
    /// The custom headers and the API key header name, checked once; or why
    /// they cannot be sent (every call then fails permanently with it).
    prepared: Result<Prepared, String>,
}

struct Prepared {
    custom: HeaderMap,
    /// `Some` for API key auth.
    api_key_header: Option<HeaderName>,
}

/// One HTTP answer.
struct Reply {
    status: StatusCode,
    headers: HeaderMap,
    text: String,
    elapsed: Duration,
}

impl WebhookCrm {
    /// `secret`: the Secrets Manager secret holding the bearer token, API key or
    /// basic credentials (`None` when auth is [`WebhookAuthKind::None`]).
    pub fn new(
        settings: WebhookSettings,
        secret: Option<Arc<CachedSecret>>,
    ) -> Result<Self, reqwest::Error> {
        let http = crate::net::client(settings.allow_internal, settings.timeout)?;
        let prepared = prepare(&settings);
        Ok(Self {
            http,
            settings,
            secret,
            prepared,
        })
    }

    /// Sends a clearly marked test lead (`leadbridge.test = true`, header
    /// `X-Leadbridge-Test: true`, email [`TEST_EMAIL`]) with the connection's
    /// auth, headers and mapping, and returns what the target answered, whatever
    /// its status. An error only when no answer came back (or the connection
    /// cannot send at all: no usable secret, unusable headers).
    pub async fn send_test(&self) -> Result<TestReply, CrmError> {
        let lead = test_lead(&self.settings.name, Utc::now());
        let body = lead_body(&self.settings.mapping, &lead, &self.settings.name, true);
        let reply = self.post(&lead, &body, true).await?;
        Ok(TestReply {
            status: reply.status.as_u16(),
            body: truncate_bytes(&reply.text, TEST_REPLY_BYTES).to_string(),
            elapsed: reply.elapsed,
            refused: self.answer_error(&reply),
        })
    }

    fn err(&self, class: ErrorClass, status: Option<u16>, message: impl Into<String>) -> CrmError {
        CrmError::new(self.settings.name.clone(), class, status, message)
    }

    fn secret_id(&self) -> &str {
        self.secret.as_ref().map_or("(none)", |s| s.id())
    }

    /// The auth header, read from the (cached) secret.
    async fn auth_header(
        &self,
        prepared: &Prepared,
    ) -> Result<Option<(HeaderName, HeaderValue)>, CrmError> {
        let auth = &self.settings.auth;
        if *auth == WebhookAuthKind::None {
            return Ok(None);
        }
        let Some(secret) = &self.secret else {
            return Err(self.err(
                ErrorClass::Permanent,
                None,
                format!(
                    "connection {} uses {} auth but has no secret",
                    self.settings.name,
                    auth.as_str()
                ),
            ));
        };
        let raw = secret.get().await.map_err(|e| {
            self.err(
                ErrorClass::Transient,
                None,
                format!("could not read the secret {}: {e}", secret.id()),
            )
        })?;
        let no_credential = || {
            self.err(
                ErrorClass::Permanent,
                None,
                format!(
                    "secret {} holds no {} credential (expected {})",
                    secret.id(),
                    auth.as_str(),
                    expected_secret(auth)
                ),
            )
        };
        let value = auth_value(auth, raw.expose()).ok_or_else(no_credential)?;
        let mut value = HeaderValue::from_str(&value).map_err(|_| {
            self.err(
                ErrorClass::Permanent,
                None,
                format!(
                    "secret {} holds a value that cannot be sent in an HTTP header",
                    secret.id()
                ),
            )
        })?;
        value.set_sensitive(true);
        let name = prepared.api_key_header.clone().unwrap_or(AUTHORIZATION);
        Ok(Some((name, value)))
    }

    /// POSTs `body` for `lead`; a 401/403 re-reads the secret once (it may have
    /// been rotated) and sends again. Any HTTP answer is `Ok`.
    async fn post(&self, lead: &QueuedLead, body: &Value, test: bool) -> Result<Reply, CrmError> {
        let prepared = self
            .prepared
            .as_ref()
            .map_err(|why| self.err(ErrorClass::Permanent, None, why.clone()))?;
        let bytes = serde_json::to_vec(body).expect("a JSON value always serializes");
        let mut headers = prepared.custom.clone();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        for (name, value) in [
            ("idempotency-key", lead.delivery_id()),
            ("x-leadbridge-event-id", lead.event.event_id.to_string()),
        ] {
            let value = HeaderValue::from_str(&value).map_err(|_| {
                self.err(
                    ErrorClass::Permanent,
                    None,
                    format!("{name} {value:?} cannot be sent in an HTTP header"),
                )
            })?;
            headers.insert(name, value);
        }
        if test {
            headers.insert("x-leadbridge-test", HeaderValue::from_static("true"));
        }
        let can_reread = self.secret.is_some() && self.settings.auth != WebhookAuthKind::None;
        for attempt in 0..2 {
            let mut headers = headers.clone();
            if let Some((name, value)) = self.auth_header(prepared).await? {
                headers.insert(name, value);
            }
            let started = Instant::now();
            let resp = self
                .http
                .post(&self.settings.url)
                .headers(headers)
                .body(bytes.clone())
                .send()
                .await
                .map_err(|e| self.transport(&e))?;
            let status = resp.status();
            let resp_headers = resp.headers().clone();
            let text = match crate::net::read_capped(resp, MAX_ANSWER_BYTES).await {
                Ok(b) => String::from_utf8_lossy(&b).into_owned(),
                Err(crate::net::BodyError::Transport(e)) => return Err(self.transport(&e)),
                // An answer that large is not one we read; the status still counts.
                Err(crate::net::BodyError::TooLarge(max)) => {
                    format!("(an answer of more than {max} bytes, not read)")
                }
            };
            let elapsed = started.elapsed();
            debug!(
                crm = %self.settings.name,
                status = status.as_u16(),
                elapsed_ms = elapsed.as_millis() as u64,
                test,
                "webhook call"
            );
            if matches!(status.as_u16(), 401 | 403) && attempt == 0 && can_reread {
                if let Some(secret) = &self.secret {
                    secret.invalidate().await;
                }
                continue;
            }
            return Ok(Reply {
                status,
                headers: resp_headers,
                text,
                elapsed,
            });
        }
        unreachable!("the loop returns on its second pass")
    }

    fn transport(&self, e: &reqwest::Error) -> CrmError {
        if e.is_builder() {
            // Never quote the URL: hook URLs carry their own secret.
            return self.err(
                ErrorClass::Permanent,
                None,
                format!(
                    "connection {}: the request could not be built (check the webhook URL)",
                    self.settings.name
                ),
            );
        }
        classify::transport(&self.settings.name, e)
    }

    /// The error a non-2xx answer means; `None` for 2xx.
    fn answer_error(&self, reply: &Reply) -> Option<CrmError> {
        let code = reply.status.as_u16();
        let class = classify::class_of(code, &[])?;
        let answer = target_answer(code, &reply.text);
        let message = match code {
            401 | 403 if self.settings.auth == WebhookAuthKind::None => format!(
                "the target refused the request ({code}) and the connection sends no credentials: {answer}"
            ),
            401 | 403 => format!(
                "the target refused our credentials ({code}), also after re-reading the secret {}: {answer}",
                self.secret_id()
            ),
            300..=399 => format!(
                "the target redirected ({code}); redirects are not followed: point the connection at the final URL"
            ),
            _ => answer,
        };
        let mut e = self.err(class, Some(code), message);
        if class != ErrorClass::Permanent {
            e.retry_after = classify::retry_after(&reply.headers);
        }
        Some(e)
    }

    fn no_records(&self, what: &str) -> CrmError {
        self.err(
            ErrorClass::Permanent,
            None,
            format!(
                "connection {} is a webhook: it keeps no records, so there are no {what}",
                self.settings.name
            ),
        )
    }
}

#[async_trait]
impl Crm for WebhookCrm {
    fn name(&self) -> &str {
        &self.settings.name
    }

    fn keeps_records(&self) -> bool {
        false
    }

    /// POSTs the lead. The id is the target's `id` when it answers one, else
    /// the delivery id; `created` is always `true` (every delivery is new to
    /// the target).
    async fn upsert_contact(
        &self,
        lead: &QueuedLead,
        _known_id: Option<&str>,
        _write: ContactWrite,
    ) -> Result<ContactRef, CrmError> {
        let body = lead_body(&self.settings.mapping, lead, &self.settings.name, false);
        let reply = self.post(lead, &body, false).await?;
        if let Some(e) = self.answer_error(&reply) {
            return Err(e);
        }
        Ok(ContactRef {
            id: response_id(&reply.text).unwrap_or_else(|| lead.delivery_id()),
            created: true,
        })
    }

    async fn find_note(
        &self,
        _contact_id: &str,
        _event_id: &EventId,
    ) -> Result<Option<String>, CrmError> {
        Err(self.no_records("notes to find"))
    }

    async fn add_note(&self, _contact_id: &str, _lead: &QueuedLead) -> Result<String, CrmError> {
        Err(self.no_records("notes to add"))
    }

    async fn find_deal(
        &self,
        _contact_id: &str,
        _event_id: &EventId,
    ) -> Result<Option<String>, CrmError> {
        Err(self.no_records("deals to find"))
    }

    async fn create_deal(&self, _contact_id: &str, _lead: &QueuedLead) -> Result<String, CrmError> {
        Err(self.no_records("deals to create"))
    }
}

/// The JSON body for one lead: the mapped fields at the top level, then the
/// `leadbridge` envelope (which replaces a mapped field of that name).
/// `connection` names the connection when the lead carries no delivery.
pub fn lead_body(mapping: &Mapping, lead: &QueuedLead, connection: &str, test: bool) -> Value {
    let e = &lead.event;
    let mut body: Map<String, Value> = mapping
        .render_lead(lead)
        .into_iter()
        .map(|(k, v)| (k, Value::String(v)))
        .collect();
    body.insert(
        ENVELOPE_KEY.into(),
        json!({
            "event_id": e.event_id.as_str(),
            "event_type": e.event_type.as_str(),
            "occurred_at": e.occurred_at.to_rfc3339_opts(SecondsFormat::Secs, true),
            "bot_id": e.bot_id.as_str(),
            "connection": lead.connection().unwrap_or(connection),
            "object": lead.delivery.as_ref().map_or("contact", |d| d.object.as_str()),
            "test": test,
        }),
    );
    Value::Object(body)
}

/// The clearly marked lead [`WebhookCrm::send_test`] sends.
fn test_lead(connection: &str, now: DateTime<Utc>) -> QueuedLead {
    let event_id = format!("test_{}", uuid::Uuid::new_v4().simple());
    let event = LeadEvent {
        event_id: EventId::parse(&event_id).expect("test_<hex> is a valid event id"),
        event_type: EventType::LeadCreated,
        occurred_at: now,
        bot_id: BotId::parse(TEST_BOT_ID).expect("a valid bot id"),
        conversation_id: None,
        visitor: Visitor {
            email: Some(Email::parse(TEST_EMAIL).expect("a valid email")),
            name: Some(TEST_NAME.into()),
            ..Visitor::default()
        },
        context: LeadContext::default(),
        intent: None,
        answers: Default::default(),
        transcript: None,
        consent: None,
        crm_target: Default::default(),
        redactions: Vec::new(),
        extra: Map::new(),
    };
    QueuedLead::new(event, now)
        .expect("the test lead has an email")
        .for_delivery(Delivery {
            connection: connection.to_string(),
            lead_source: None,
            object: "contact".into(),
            split_name: None,
        })
}

/// The custom headers as a header map, and the API key header's name; or why
/// they cannot be sent (naming the header, never its value).
fn prepare(settings: &WebhookSettings) -> Result<Prepared, String> {
    let name_of = |raw: &str| {
        HeaderName::from_bytes(raw.trim().as_bytes())
            .map_err(|_| format!("{:?} is not a valid HTTP header name", raw.trim()))
    };
    let mut custom = HeaderMap::new();
    for (name, value) in &settings.headers {
        let name = name_of(name)?;
        let mut value = HeaderValue::from_str(value.trim())
            .map_err(|_| format!("the value of header {name} cannot be sent in an HTTP header"))?;
        value.set_sensitive(true);
        custom.append(name, value);
    }
    let api_key_header = match &settings.auth {
        WebhookAuthKind::ApiKey { header } => Some(name_of(header)?),
        _ => None,
    };
    Ok(Prepared {
        custom,
        api_key_header,
    })
}

/// The auth header's value for `auth` from a secret's raw text; `None` when
/// the secret holds no usable credential.
fn auth_value(auth: &WebhookAuthKind, raw: &str) -> Option<String> {
    let first = |fields: &[&str]| {
        fields
            .iter()
            .find_map(|f| secret_values(raw, f).into_iter().next())
    };
    match auth {
        WebhookAuthKind::None => None,
        WebhookAuthKind::Bearer => first(&["token", "api_key"]).map(|t| format!("Bearer {t}")),
        WebhookAuthKind::ApiKey { .. } => first(&["api_key", "token"]),
        WebhookAuthKind::Basic => basic_credentials(raw).map(|(user, password)| {
            let encoded =
                base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
            format!("Basic {encoded}")
        }),
    }
}

fn expected_secret(auth: &WebhookAuthKind) -> &'static str {
    match auth {
        WebhookAuthKind::None => "nothing",
        WebhookAuthKind::Bearer => "a token, or {\"token\": …}",
        WebhookAuthKind::ApiKey { .. } => "a key, or {\"api_key\": …}",
        WebhookAuthKind::Basic => "user:password, or {\"username\": …, \"password\": …}",
    }
}

/// Basic credentials from a secret: `user:password` (split at the first `:`),
/// or JSON `{"username": "…", "password": "…"}`. The user must not be empty;
/// the password may be (API keys sent as the user name).
pub fn basic_credentials(raw: &str) -> Option<(String, String)> {
    let (user, password) = match serde_json::from_str::<Value>(raw) {
        Ok(Value::Object(m)) => (
            m.get("username")?.as_str()?.to_string(),
            m.get("password")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string(),
        ),
        _ => {
            let (user, password) = raw.trim().split_once(':')?;
            (user.to_string(), password.to_string())
        }
    };
    (!user.is_empty()).then_some((user, password))
}

/// The id in a target's JSON answer (`{"id": "…"}` or `{"id": 12}`).
fn response_id(text: &str) -> Option<String> {
    match serde_json::from_str::<Value>(text).ok()?.get("id")? {
        Value::String(s) if !s.trim().is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// The target's own answer for an error message: status and the first 500 characters.
fn target_answer(status: u16, text: &str) -> String {
    let t = text.trim();
    if t.is_empty() {
        format!("HTTP {status}")
    } else {
        format!(
            "HTTP {status}: {}",
            t.chars().take(ERROR_TEXT_CHARS).collect::<String>()
        )
    }
}

/// At most `max` bytes of `s`, cut at a character boundary.
fn truncate_bytes(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn lead(delivery: Option<Delivery>) -> QueuedLead {
        let event: LeadEvent = serde_json::from_value(json!({
            "event_id": "evt_1",
            "event_type": "lead.qualified",
            "occurred_at": "2026-05-04T11:23:45Z",
            "bot_id": "bot_1",
            "visitor": {"email": "jane@example.com", "name": "Jane Doe"},
            "answers": {"Budget": "5000"},
        }))
        .expect("valid event");
        let q = QueuedLead::new(event, Utc::now()).expect("has an identity");
        match delivery {
            Some(d) => q.for_delivery(d),
            None => q,
        }
    }

    #[test]
    fn the_body_is_the_mapped_fields_plus_the_envelope() {
        let mut mapping = Mapping::from_pairs(&[
            ("visitor.email", "email"),
            ("visitor.first_name", "first"),
            ("answers.*", "q_{key}"),
            ("lead_source", "source"),
        ]);
        mapping.statics = BTreeMap::from([("origin".to_string(), "chatbot".to_string())]);
        let l = lead(Some(Delivery {
            connection: "zap".into(),
            lead_source: Some("Website bot".into()),
            object: "lead".into(),
            split_name: None,
        }));
        let body = lead_body(&mapping, &l, "ignored", false);
        assert_eq!(
            body,
            json!({
                "email": "jane@example.com",
                "first": "Jane",
                "q_budget": "5000",
                "source": "Website bot",
                "origin": "chatbot",
                "leadbridge": {
                    "event_id": "evt_1",
                    "event_type": "lead.qualified",
                    "occurred_at": "2026-05-04T11:23:45Z",
                    "bot_id": "bot_1",
                    "connection": "zap",
                    "object": "lead",
                    "test": false,
                }
            })
        );
    }

    #[test]
    fn the_envelope_wins_over_a_mapped_field_of_its_name_and_defaults_its_connection() {
        let mapping = Mapping::from_pairs(&[("visitor.email", "leadbridge")]);
        let body = lead_body(&mapping, &lead(None), "hook", true);
        let envelope = &body["leadbridge"];
        assert_eq!(envelope["connection"], "hook");
        assert_eq!(envelope["object"], "contact");
        assert_eq!(envelope["test"], true);
        assert_eq!(body.as_object().map(Map::len), Some(1));
    }

    #[test]
    fn basic_credentials_come_from_user_colon_password_or_json() {
        let pair = |u: &str, p: &str| Some((u.to_string(), p.to_string()));
        assert_eq!(basic_credentials("ann:pa:ss"), pair("ann", "pa:ss"));
        assert_eq!(basic_credentials(" key_123: \n"), pair("key_123", ""));
        assert_eq!(
            basic_credentials(r#"{"username":"ann","password":"pw"}"#),
            pair("ann", "pw")
        );
        assert_eq!(basic_credentials(r#"{"username":"ann"}"#), pair("ann", ""));
        assert_eq!(basic_credentials("no-colon"), None);
        assert_eq!(basic_credentials(":pw"), None);
        assert_eq!(basic_credentials(r#"{"password":"pw"}"#), None);
    }

    #[test]
    fn auth_values_read_plain_and_json_secrets() {
        assert_eq!(
            auth_value(&WebhookAuthKind::Bearer, "tok").as_deref(),
            Some("Bearer tok")
        );
        assert_eq!(
            auth_value(&WebhookAuthKind::Bearer, r#"{"token":["new","old"]}"#).as_deref(),
            Some("Bearer new")
        );
        let api_key = WebhookAuthKind::ApiKey {
            header: "x-api-key".into(),
        };
        assert_eq!(
            auth_value(&api_key, r#"{"api_key":"k"}"#).as_deref(),
            Some("k")
        );
        assert_eq!(
            auth_value(&api_key, r#"{"token":"t"}"#).as_deref(),
            Some("t")
        );
        assert_eq!(auth_value(&api_key, r#"{"other":"x"}"#), None);
        assert_eq!(
            auth_value(&WebhookAuthKind::Basic, "ann:pw").as_deref(),
            Some("Basic YW5uOnB3")
        );
        assert_eq!(auth_value(&WebhookAuthKind::None, "x"), None);
    }

    #[test]
    fn response_ids_are_strings_or_numbers() {
        assert_eq!(response_id(r#"{"id":"r_1"}"#).as_deref(), Some("r_1"));
        assert_eq!(response_id(r#"{"id":42}"#).as_deref(), Some("42"));
        assert_eq!(response_id(r#"{"id":""}"#), None);
        assert_eq!(response_id("Accepted"), None);
        assert_eq!(response_id(r#"[1]"#), None);
    }

    #[test]
    fn target_answers_and_test_replies_are_cut() {
        assert_eq!(target_answer(400, "  "), "HTTP 400");
        let long = "é".repeat(600);
        assert_eq!(
            target_answer(400, &long).chars().count(),
            "HTTP 400: ".len() + 500
        );
        assert_eq!(truncate_bytes("aé", 2), "a");
        assert_eq!(truncate_bytes("abc", 5), "abc");
    }

    #[test]
    fn bad_custom_headers_are_named_without_their_value() {
        let settings = |headers: Vec<(String, String)>, auth| WebhookSettings {
            name: "hook".into(),
            url: "https://hooks.example.com/x".into(),
            auth,
            headers,
            timeout: Duration::from_secs(5),
            mapping: Mapping::default(),
            allow_internal: false,
        };
        let why = prepare(&settings(
            vec![("x-token".into(), "bad\nvalue".into())],
            WebhookAuthKind::None,
        ))
        .err()
        .expect("refused");
        assert!(why.contains("x-token") && !why.contains("bad"), "{why}");
        assert!(prepare(&settings(
            vec![("bad name".into(), "v".into())],
            WebhookAuthKind::None
        ))
        .is_err());
        assert!(prepare(&settings(
            vec![],
            WebhookAuthKind::ApiKey {
                header: "no good".into()
            }
        ))
        .is_err());
        let s = settings(
            vec![("x-a".into(), "secret-value".into())],
            WebhookAuthKind::Basic,
        );
        let debug = format!("{s:?}");
        assert!(
            debug.contains("hooks.example.com")
                && !debug.contains("secret-value")
                && !debug.contains("/x"),
            "{debug}"
        );
    }

    #[test]
    fn the_test_lead_is_marked_and_addressed_to_the_connection() {
        let l = test_lead("zap", Utc::now());
        assert!(l.event.event_id.as_str().starts_with("test_"));
        assert_eq!(l.event.event_id.as_str().len(), 5 + 32);
        assert_eq!(l.event.bot_id.as_str(), TEST_BOT_ID);
        assert_eq!(
            l.event.visitor.email.as_ref().map(|e| e.as_str()),
            Some(TEST_EMAIL)
        );
        assert_eq!(l.connection(), Some("zap"));
    }
}
