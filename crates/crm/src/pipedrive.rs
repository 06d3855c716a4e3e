//! Pipedrive: persons on API v2, notes on API v1 (which has no v2), deals on v2.
//!
//! Pipedrive has no upsert and no batch person or note calls (research notes
//! §A.3; crm-apis.md "Pipedrive"), so every lead is its own calls and
//! [`Crm::batch_limit`] keeps the default of 1:
//! - A person is found by exact search (`GET /api/v2/persons/search?term=
//!   &fields=email|phone&exact_match=true`; "It is not case sensitive", SDK
//!   `searchPersons`), then read (`GET /api/v2/persons/{id}`) and patched, or
//!   created (`POST /api/v2/persons`, `name` required). A PATCH that carries
//!   `emails` or `phones` replaces the whole array ("it replaces the existing
//!   one", a Pipedrive MCP tool's docs), so the person's own addresses and
//!   numbers are read first and kept; nothing is patched when nothing changes.
//! - The search index lags writes (§A.3): a person created moments ago may not
//!   be found, which the ledger's memory of record ids covers (`known_id`).
//! - Notes (`POST /v1/notes {content, person_id}`) carry the event's tag and
//!   are found again by reading every page of the person's notes
//!   (`GET /v1/notes?person_id=&start=&limit=500`). Deals carry the tag in
//!   their title and are found in the person's deals (`GET /api/v2/deals?person_id=`).
//!
//! Errors: 429 is rate limited (a short burst refusal is waited out inside the
//! call, as the rolling window is 2 s), with the wait from `Retry-After`, else
//! `x-ratelimit-reset` (seconds); a spent daily token budget waits for the
//! next hourly check. 5xx and transport failures are transient. 401 re-reads
//! the token secret once, then fails permanently as `auth_revoked`. Other 4xx
//! fail permanently with Pipedrive's own `error` text (never what we sent).
//! A 403 that is not JSON is Cloudflare's block of a client that ignored 429s
//! (readme, "Limiting high volume traffic"): rate limited, for a minute.
//! Logs name routes with ids cut out, never a term, email, phone or token.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, NaiveDate, Utc};
use lb_domain::{conversation, note, EventId, Phone, QueuedLead};
use lb_pipeline::secrets::{secret_values, CachedSecret};
use lb_pipeline::{ContactRef, ContactWrite, Crm, CrmError, ErrorClass, QuotaUsage};
use reqwest::header::{HeaderMap, ACCEPT};
use reqwest::{Method, StatusCode};
use serde_json::{json, Map, Value};
use tracing::{debug, warn};

use crate::classify;

mod deals;
mod fields;

/// The failure code of a call Pipedrive refused for its API token.
pub const AUTH_REVOKED: &str = "auth_revoked";
/// The longest note body written. Pipedrive's notes hold "approximately
/// 100,000 characters (or 100KB per note)" (Notes docs): 30,000 characters
/// stay under 100 KB even when every one takes three bytes.
const NOTE_MAX_CHARS: usize = 30_000;
/// Deal titles are kept to this many characters ([U]: Pipedrive's limit was
/// not found documented; 255 is its text-field size).
const TITLE_MAX_CHARS: usize = 255;
/// Items per page of every list read (the documented maximum).
const PAGE: usize = 500;
/// How many times one call waits out a short burst refusal itself.
const SHORT_WAITS: u32 = 3;
/// The longest wait taken inside a call; longer ones hand the lead back.
const SHORT_WAIT_MAX: Duration = Duration::from_secs(2);
/// A 429 that names no wait: one burst window.
const DEFAULT_RATE_WAIT: Duration = Duration::from_secs(2);
/// How long a Cloudflare block (403 with an HTML page) is waited out.
const BLOCKED_WAIT: Duration = Duration::from_secs(60);
/// When the daily budget is spent, how often one call checks whether it is
/// back: it resets "at midnight at server's timezone" (readme), which
/// leadbridge does not know.
const DAILY_RECHECK: Duration = Duration::from_secs(3600);
/// Usage at which one warning per day is raised.
const WARN_AT_PERCENT: u64 = 70;
/// The largest answer read.
const MAX_ANSWER_BYTES: usize = 16 * 1024 * 1024;

#[derive(Debug, Clone)]
pub struct PipedriveConfig {
    /// The connection's name: [`Crm::name`], the `crm` of ledger rows and alerts.
    pub name: String,
    /// `https://api.pipedrive.com` (or the company's `https://{domain}.pipedrive.com`),
    /// or a simulator; paths `/api/v2/…` and `/v1/…` are appended.
    pub base_url: String,
    pub timeout: Duration,
    /// A local run: `base_url` may resolve to this machine or a private network.
    pub allow_internal: bool,
    /// The connection's `fields`/`static` tables: person custom fields written
    /// with every full write (see [`fields`]).
    pub mapping: Option<lb_domain::mapping::Mapping>,
}

impl Default for PipedriveConfig {
    fn default() -> Self {
        Self {
            name: "pipedrive".into(),
            base_url: "https://api.pipedrive.com".into(),
            timeout: Duration::from_secs(10),
            allow_internal: false,
            mapping: None,
        }
    }
}

pub struct PipedriveCrm {
    http: reqwest::Client,
    cfg: PipedriveConfig,
    token: Arc<CachedSecret>,
    budget: DailyBudget,
    /// The company's pipelines and stages.
    pipelines: deals::PipelineCache,
    /// The person fields (custom fields of the mapping).
    person_fields: fields::PersonFieldCache,
    /// The shared rate limiter (off unless the worker wires one).
    throttle: lb_pipeline::throttle::Throttle,
}

/// One search hit: the person's id with its addresses and numbers as indexed.
struct Hit {
    id: u64,
    emails: Vec<String>,
    phones: Vec<String>,
}

/// What an event writes to a person.
struct Wanted {
    /// The name to set on an existing person (a full write with a name only).
    name: Option<String>,
    /// The name a new person gets: the visitor's, else an identity.
    new_name: String,
    emails: Vec<String>,
    phones: Vec<Phone>,
    /// The mapped custom fields (`custom_fields`, keyed by field key).
    custom: Map<String, Value>,
}

impl PipedriveCrm {
    /// Counts every request in the connection's shared rate limit.
    pub fn with_throttle(mut self, throttle: lb_pipeline::throttle::Throttle) -> Self {
        self.throttle = throttle;
        self
    }

    /// `token` is the secret holding the API token: a plain string, or JSON
    /// `{"api_token": "…"}`.
    pub fn new(cfg: PipedriveConfig, token: Arc<CachedSecret>) -> Result<Self, reqwest::Error> {
        let http = crate::net::client(cfg.allow_internal, cfg.timeout)?;
        Ok(Self {
            throttle: lb_pipeline::throttle::Throttle::off(),
            http,
            cfg,
            token,
            budget: DailyBudget::default(),
            pipelines: deals::PipelineCache::default(),
            person_fields: fields::PersonFieldCache::default(),
        })
    }

    fn err(&self, class: ErrorClass, status: Option<u16>, message: impl Into<String>) -> CrmError {
        CrmError::new(self.cfg.name.clone(), class, status, message)
    }

    async fn api_token(&self) -> Result<String, CrmError> {
        let raw = self.token.get().await.map_err(|e| {
            self.err(
                ErrorClass::Transient,
                None,
                format!("could not read the Pipedrive token secret: {e}"),
            )
        })?;
        secret_values(raw.expose(), "api_token")
            .into_iter()
            .next()
            .ok_or_else(|| {
                self.err(
                    ErrorClass::Permanent,
                    None,
                    format!(
                        "secret {} holds no Pipedrive API token (expected a string or {{\"api_token\": …}})",
                        self.token.id()
                    ),
                )
            })
    }

    /// Sends one request and returns the JSON body of a 2xx answer.
    async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Value, CrmError> {
        if let Some(wait) = self.budget.wait(Utc::now()) {
            let mut e = self.err(
                ErrorClass::RateLimited,
                Some(429),
                "Pipedrive's daily API token budget is spent; waiting for it to reset",
            );
            e.retry_after = Some(wait);
            return Err(e);
        }
        let url = format!("{}{}", self.cfg.base_url.trim_end_matches('/'), path);
        let mut reread = false;
        let mut short_waits = 0;
        loop {
            let token = self.api_token().await?;
            let mut req = self
                .http
                .request(method.clone(), &url)
                .header("x-api-token", token)
                .header(ACCEPT, "application/json");
            if let Some(b) = body {
                req = req.json(b);
            }
            crate::throttling::admit(&self.throttle, &self.cfg.name).await?;
            let resp = req
                .send()
                .await
                .map_err(|e| classify::transport(&self.cfg.name, &e))?;
            let status = resp.status();
            let headers = resp.headers().clone();
            self.budget.observe(&headers);
            let text = match crate::net::read_capped(resp, MAX_ANSWER_BYTES).await {
                Ok(b) => String::from_utf8_lossy(&b).into_owned(),
                Err(crate::net::BodyError::Transport(e)) => {
                    return Err(classify::transport(&self.cfg.name, &e))
                }
                Err(crate::net::BodyError::TooLarge(max)) => {
                    return Err(self.err(
                        ErrorClass::Transient,
                        Some(status.as_u16()),
                        format!("Pipedrive answered more than {max} bytes; not read"),
                    ))
                }
            };
            debug!(crm = %self.cfg.name, %method, route = route_name(path), status = status.as_u16(), "crm call");
            let value: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
            if status == StatusCode::UNAUTHORIZED && !reread {
                // The token may have been regenerated and the secret rotated: read it again once.
                reread = true;
                self.token.invalidate().await;
                continue;
            }
            let daily = status == StatusCode::TOO_MANY_REQUESTS && daily_refusal(&headers);
            if status == StatusCode::TOO_MANY_REQUESTS && !daily && short_waits < SHORT_WAITS {
                let wait = rate_wait(&headers);
                if wait <= SHORT_WAIT_MAX {
                    short_waits += 1;
                    debug!(crm = %self.cfg.name, wait_ms = wait.as_millis() as u64, "burst limit; waiting in the call");
                    tokio::time::sleep(wait).await;
                    continue;
                }
            }
            if status == StatusCode::FORBIDDEN && value.is_null() && !text.trim().is_empty() {
                warn!(crm = %self.cfg.name, "Pipedrive's edge blocked the API token (403 page); backing off");
                let mut e = self.err(
                    ErrorClass::RateLimited,
                    Some(403),
                    "Pipedrive blocked requests for ignoring rate limits (403 from its edge)",
                );
                e.retry_after = Some(BLOCKED_WAIT);
                return Err(e);
            }
            let Some(class) = classify::class_of(status.as_u16(), &[]) else {
                return Ok(value);
            };
            let mut e = self.err(class, Some(status.as_u16()), error_message(status, &value));
            e.category = error_code(&value);
            match status.as_u16() {
                401 => {
                    warn!(crm = %self.cfg.name, "Pipedrive refused the API token after re-reading it");
                    e.message = format!(
                        "Pipedrive refused the API token ({}); it was revoked or regenerated: update secret {}",
                        e.message,
                        self.token.id()
                    );
                    e.code = Some(AUTH_REVOKED.into());
                }
                429 if daily => {
                    warn!(crm = %self.cfg.name, "Pipedrive's daily token budget is spent; leads wait for it");
                    e.retry_after = Some(self.budget.exhaust(Utc::now()));
                }
                429 => e.retry_after = Some(rate_wait(&headers)),
                _ => e.retry_after = classify::retry_after(&headers),
            }
            return Err(e);
        }
    }

    /// Every person the search finds by exact `term` in `field`, every page.
    async fn search(&self, field: &str, term: &str) -> Result<Vec<Hit>, CrmError> {
        let mut out = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let mut path = format!(
                "/api/v2/persons/search?term={}&fields={field}&exact_match=true&limit={PAGE}",
                enc(term)
            );
            if let Some(c) = &cursor {
                path.push_str(&format!("&cursor={}", enc(c)));
            }
            let v = self.call(Method::GET, &path, None).await?;
            for entry in v["data"]["items"].as_array().into_iter().flatten() {
                let item = &entry["item"];
                let Some(id) = id_of(&item["id"]) else {
                    continue;
                };
                out.push(Hit {
                    id,
                    emails: strings(&item["emails"]),
                    phones: strings(&item["phones"]),
                });
            }
            match next_cursor(&v, cursor.as_deref()) {
                Some(c) => cursor = Some(c),
                None => return Ok(out),
            }
        }
    }

    /// The person's v2 object; `None` when Pipedrive no longer has it.
    async fn get_person(&self, id: u64) -> Result<Option<Value>, CrmError> {
        match self
            .call(Method::GET, &format!("/api/v2/persons/{id}"), None)
            .await
        {
            Ok(v) => Ok(Some(v["data"].clone())),
            Err(e) if e.http_status == Some(404) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Writes what is missing or different to an existing person; `None` when
    /// the person is gone.
    async fn update_person(
        &self,
        id: u64,
        wanted: &Wanted,
    ) -> Result<Option<ContactRef>, CrmError> {
        let Some(person) = self.get_person(id).await? else {
            return Ok(None);
        };
        let patch = person_patch(&person, wanted);
        if !patch.is_empty() {
            match self
                .call(
                    Method::PATCH,
                    &format!("/api/v2/persons/{id}"),
                    Some(&Value::Object(patch)),
                )
                .await
            {
                Ok(_) => {}
                Err(e) if e.http_status == Some(404) => return Ok(None),
                Err(e) => return Err(e),
            }
        }
        Ok(Some(ContactRef {
            id: id.to_string(),
            created: false,
        }))
    }

    async fn create_person(&self, wanted: &Wanted) -> Result<ContactRef, CrmError> {
        let emails: Vec<Value> = wanted
            .emails
            .iter()
            .enumerate()
            .map(|(i, e)| json!({"value": e, "primary": i == 0, "label": "work"}))
            .collect();
        let phones: Vec<Value> = wanted
            .phones
            .iter()
            .enumerate()
            .map(|(i, p)| json!({"value": p.as_str(), "primary": i == 0, "label": "mobile"}))
            .collect();
        let mut body = json!({"name": wanted.new_name});
        if !emails.is_empty() {
            body["emails"] = Value::Array(emails);
        }
        if !phones.is_empty() {
            body["phones"] = Value::Array(phones);
        }
        if !wanted.custom.is_empty() {
            body["custom_fields"] = Value::Object(wanted.custom.clone());
        }
        let v = self
            .call(Method::POST, "/api/v2/persons", Some(&body))
            .await?;
        let id = id_of(&v["data"]["id"]).ok_or_else(|| {
            self.err(
                ErrorClass::Transient,
                Some(200),
                "person created without an id",
            )
        })?;
        Ok(ContactRef {
            id: id.to_string(),
            created: true,
        })
    }

    /// The person's notes `(id, content)`, every page, oldest first.
    async fn person_notes(&self, person: u64) -> Result<Vec<(u64, String)>, CrmError> {
        let mut out: Vec<(u64, String)> = Vec::new();
        let mut start = 0usize;
        loop {
            let path = format!("/v1/notes?person_id={person}&start={start}&limit={PAGE}");
            let v = self.call(Method::GET, &path, None).await?;
            // An empty page is `"data": null`.
            let page = v["data"].as_array().cloned().unwrap_or_default();
            for n in &page {
                if n["person_id"].as_u64().is_some_and(|p| p != person) {
                    continue;
                }
                if let (Some(id), Some(content)) = (id_of(&n["id"]), n["content"].as_str()) {
                    if !out.iter().any(|(i, _)| *i == id) {
                        out.push((id, content.to_string()));
                    }
                }
            }
            let pagination = &v["additional_data"]["pagination"];
            if page.is_empty() || pagination["more_items_in_collection"] != json!(true) {
                break;
            }
            let next = pagination["next_start"]
                .as_u64()
                .and_then(|n| usize::try_from(n).ok())
                .unwrap_or(start + page.len());
            if next <= start {
                break;
            }
            start = next;
        }
        out.sort_by_key(|(id, _)| *id);
        Ok(out)
    }

    /// The person's deals `(id, title)`, every page.
    async fn person_deals(&self, person: u64) -> Result<Vec<(u64, String)>, CrmError> {
        let mut out = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let mut path = format!("/api/v2/deals?person_id={person}&limit={PAGE}");
            if let Some(c) = &cursor {
                path.push_str(&format!("&cursor={}", enc(c)));
            }
            let v = self.call(Method::GET, &path, None).await?;
            for d in v["data"].as_array().into_iter().flatten() {
                if let (Some(id), Some(title)) = (id_of(&d["id"]), d["title"].as_str()) {
                    out.push((id, title.to_string()));
                }
            }
            match next_cursor(&v, cursor.as_deref()) {
                Some(c) => cursor = Some(c),
                None => return Ok(out),
            }
        }
    }

    async fn post_note(
        &self,
        person: u64,
        content: &str,
        at: DateTime<Utc>,
    ) -> Result<String, CrmError> {
        let body = json!({
            "content": content,
            "person_id": person,
            "add_time": at.format("%Y-%m-%d %H:%M:%S").to_string(),
        });
        let v = self.call(Method::POST, "/v1/notes", Some(&body)).await?;
        id_of(&v["data"]["id"])
            .map(|id| id.to_string())
            .ok_or_else(|| {
                self.err(
                    ErrorClass::Transient,
                    Some(201),
                    "note created without an id",
                )
            })
    }

    // The port's own error type, shared by every adapter (boxing it is a port change).
    #[allow(clippy::result_large_err)]
    fn person_id(&self, contact_id: &str) -> Result<u64, CrmError> {
        contact_id.trim().parse::<u64>().map_err(|_| {
            self.err(
                ErrorClass::Permanent,
                None,
                "the contact id is not a Pipedrive person id (a number)",
            )
        })
    }
}

#[async_trait]
impl Crm for PipedriveCrm {
    fn name(&self) -> &str {
        &self.cfg.name
    }

    /// The persons holding the event's phone and WhatsApp numbers, by exact
    /// phone search (E.164), one search per distinct number. An email is
    /// matched by [`Crm::upsert_contact`] itself.
    async fn find_contacts(&self, lead: &QueuedLead) -> Result<Vec<(usize, String)>, CrmError> {
        let numbers = crate::lookup::numbers(lead);
        let mut found: Vec<(Phone, Option<u64>)> = Vec::new();
        for (_, number) in &numbers {
            if found.iter().any(|(p, _)| p == number) {
                continue;
            }
            let hits = self.search("phone", number.as_str()).await?;
            // The oldest holder when the CRM has several: they are its duplicates, not ours to pick.
            let id = hits
                .iter()
                .filter(|h| h.phones.iter().any(|s| same_number(s, number)))
                .map(|h| h.id)
                .min();
            found.push((number.clone(), id));
        }
        Ok(numbers
            .iter()
            .filter_map(|(i, number)| {
                found
                    .iter()
                    .find(|(p, _)| p == number)
                    .and_then(|(_, id)| *id)
                    .map(|id| (*i, id.to_string()))
            })
            .collect())
    }

    /// No native upsert: the known person is updated (a 404 falls back to
    /// finding one); else the person holding the email (exact search) is
    /// updated; else a person is created.
    async fn upsert_contact(
        &self,
        lead: &QueuedLead,
        known_id: Option<&str>,
        write: ContactWrite,
    ) -> Result<ContactRef, CrmError> {
        if let (ContactWrite::IdentityOnly, Some(id)) = (write, known_id) {
            // A newer event already wrote this person: nothing to write.
            return Ok(ContactRef {
                id: id.to_string(),
                created: false,
            });
        }
        let mut wanted = wanted(lead, write);
        if write == ContactWrite::Full {
            wanted.custom = self.custom_fields(lead).await?;
        }
        if let Some(known) = known_id {
            let id = self.person_id(known)?;
            if let Some(c) = self.update_person(id, &wanted).await? {
                return Ok(c);
            }
            warn!(crm = %self.cfg.name, "the remembered person no longer exists; finding or creating it again");
        }
        if let Some(email) = lead.event.visitor.email.as_ref() {
            let holder = self
                .search("email", email.as_str())
                .await?
                .into_iter()
                .filter(|h| {
                    h.emails
                        .iter()
                        .any(|e| e.trim().eq_ignore_ascii_case(email.as_str()))
                })
                .map(|h| h.id)
                .min();
            if let Some(id) = holder {
                if let Some(c) = self.update_person(id, &wanted).await? {
                    return Ok(c);
                }
            }
        }
        self.create_person(&wanted).await
    }

    async fn find_note(
        &self,
        contact_id: &str,
        event_id: &EventId,
    ) -> Result<Option<String>, CrmError> {
        let person = self.person_id(contact_id)?;
        let notes = self.person_notes(person).await?;
        Ok(notes
            .iter()
            .rev()
            .find(|(_, content)| note::carries_tag(content, event_id))
            .map(|(id, _)| id.to_string()))
    }

    async fn add_note(&self, contact_id: &str, lead: &QueuedLead) -> Result<String, CrmError> {
        let person = self.person_id(contact_id)?;
        let content = note::render_html(&lead.event, NOTE_MAX_CHARS);
        self.post_note(person, &content, lead.event.occurred_at)
            .await
    }

    async fn find_deal(
        &self,
        contact_id: &str,
        event_id: &EventId,
    ) -> Result<Option<String>, CrmError> {
        let person = self.person_id(contact_id)?;
        let deals = self.person_deals(person).await?;
        Ok(deals
            .iter()
            .rev()
            .find(|(_, title)| note::carries_tag(title, event_id))
            .map(|(id, _)| id.to_string()))
    }

    /// Before anything is written for an event that asks for a deal: its
    /// pipeline and stage must be the company's (see [`deals`]).
    async fn check_deal(&self, lead: &QueuedLead) -> Result<(), CrmError> {
        self.deal_target(lead).await.map(|_| ())
    }

    /// A deal titled after the visitor and the bot, with the event's tag in the
    /// title, in the pipeline and stage the event names (by id or name; see
    /// [`deals`]), else Pipedrive's default pipeline's first stage.
    async fn create_deal(&self, contact_id: &str, lead: &QueuedLead) -> Result<String, CrmError> {
        let person = self.person_id(contact_id)?;
        let target = self.deal_target(lead).await?;
        let mut body = json!({"title": deal_title(lead), "person_id": person});
        if let Some(stage) = target.stage {
            body["stage_id"] = json!(stage);
        }
        if let Some(pipeline) = target.pipeline {
            body["pipeline_id"] = json!(pipeline);
        }
        // `value` (a number, in the company's default currency when `currency`
        // is not given) and `expected_close_date` (YYYY-MM-DD): SDK
        // `add-deal-request.ts` [V].
        let asked = &lead.event.crm_target;
        if let Some(a) = &asked.deal_amount {
            body["value"] = a.to_json();
        }
        if let Some(d) = asked.deal_close_date {
            body["expected_close_date"] = json!(d.format("%Y-%m-%d").to_string());
        }
        let v = self
            .call(Method::POST, "/api/v2/deals", Some(&body))
            .await?;
        id_of(&v["data"]["id"])
            .map(|id| id.to_string())
            .ok_or_else(|| {
                self.err(
                    ErrorClass::Transient,
                    Some(200),
                    "deal created without an id",
                )
            })
    }

    /// Reads the token and the person fields once (one TLS handshake).
    async fn warm_up(&self) {
        if let Err(e) = self.person_fields_now().await {
            warn!(crm = %self.cfg.name, error = %e, "could not read the person fields at start");
        }
    }

    /// Every mapped custom field against the person fields read afresh: the
    /// hourly check and the doctor find a drift before a lead fails on it.
    async fn schema_findings(&self) -> Result<Vec<String>, CrmError> {
        self.mapping_findings().await
    }

    fn take_quota_warning(&self) -> Option<QuotaUsage> {
        self.budget.take_warning(Utc::now())
    }

    fn keeps_conversations(&self) -> bool {
        true
    }

    fn note_max_chars(&self) -> usize {
        NOTE_MAX_CHARS
    }

    async fn conversation_notes(
        &self,
        contact_id: &str,
        conversation_tag: &str,
    ) -> Result<Vec<(String, String)>, CrmError> {
        let person = self.person_id(contact_id)?;
        Ok(self
            .person_notes(person)
            .await?
            .into_iter()
            .filter(|(_, content)| conversation::is_note_of(content, conversation_tag))
            .map(|(id, content)| (id.to_string(), content))
            .collect())
    }

    async fn add_note_body(
        &self,
        contact_id: &str,
        body: &str,
        at: DateTime<Utc>,
    ) -> Result<String, CrmError> {
        let person = self.person_id(contact_id)?;
        self.post_note(person, body, at).await
    }

    async fn update_note(&self, note_id: &str, body: &str) -> Result<(), CrmError> {
        let id = note_id.trim().parse::<u64>().map_err(|_| {
            self.err(
                ErrorClass::Permanent,
                None,
                "the note id is not a Pipedrive note id (a number)",
            )
        })?;
        self.call(
            Method::PUT,
            &format!("/v1/notes/{id}"),
            Some(&json!({"content": body})),
        )
        .await?;
        Ok(())
    }
}

/// What the event writes: identities always; the name only on a full write.
fn wanted(lead: &QueuedLead, write: ContactWrite) -> Wanted {
    let v = &lead.event.visitor;
    let emails: Vec<String> = v.email.iter().map(|e| e.as_str().to_string()).collect();
    let mut phones: Vec<Phone> = v.phone.iter().cloned().collect();
    if let Some(w) = v.wa_id.as_ref().and_then(|w| w.as_phone()) {
        if !phones.contains(&w) {
            phones.push(w);
        }
    }
    let given = v
        .name
        .as_deref()
        .map(str::trim)
        .filter(|n| !n.is_empty())
        .map(str::to_string)
        .or_else(|| {
            let joined = [v.first_name.as_deref(), v.last_name.as_deref()]
                .into_iter()
                .flatten()
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .collect::<Vec<_>>()
                .join(" ");
            (!joined.is_empty()).then_some(joined)
        });
    let name = (write == ContactWrite::Full).then_some(given).flatten();
    // A new person needs a name (Pipedrive: "Name must be given."): the
    // visitor's, else the email, else the number, as inboxes show them.
    let new_name = name
        .clone()
        .or_else(|| emails.first().cloned())
        .or_else(|| phones.first().map(|p| p.as_str().to_string()))
        .unwrap_or_else(|| "Chatbot lead".to_string());
    Wanted {
        name,
        new_name,
        emails,
        phones,
        custom: Map::new(),
    }
}

/// The PATCH body for `person` (a v2 person object): a changed name, and the
/// email and phone arrays with the event's identities added to the person's
/// own (which a PATCH would otherwise drop). Empty when nothing changes.
fn person_patch(person: &Value, wanted: &Wanted) -> Map<String, Value> {
    let mut patch = Map::new();
    if let Some(name) = &wanted.name {
        if person["name"].as_str().map(str::trim) != Some(name.as_str()) {
            patch.insert("name".into(), json!(name));
        }
    }
    let emails = merged(&person["emails"], &wanted.emails, "work", |stored, new| {
        stored.trim().eq_ignore_ascii_case(new)
    });
    if let Some(e) = emails {
        patch.insert("emails".into(), Value::Array(e));
    }
    let numbers: Vec<String> = wanted
        .phones
        .iter()
        .map(|p| p.as_str().to_string())
        .collect();
    let phones = merged(&person["phones"], &numbers, "mobile", |stored, new| {
        Phone::parse(new, None).is_ok_and(|p| same_number(stored, &p))
    });
    if let Some(p) = phones {
        patch.insert("phones".into(), Value::Array(p));
    }
    let custom: Map<String, Value> = wanted
        .custom
        .iter()
        .filter(|(k, v)| person["custom_fields"].get(k.as_str()) != Some(*v))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    if !custom.is_empty() {
        patch.insert("custom_fields".into(), Value::Object(custom));
    }
    patch
}

/// The person's entries (`{value, primary, label}` only: v2 refuses other
/// keys) plus each of `adds` it does not hold yet; `None` when none is new.
fn merged(
    existing: &Value,
    adds: &[String],
    label: &str,
    same: impl Fn(&str, &str) -> bool,
) -> Option<Vec<Value>> {
    let mut out: Vec<Value> = existing
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|e| {
            let value = e["value"].as_str().filter(|v| !v.trim().is_empty())?;
            let mut item =
                json!({"value": value, "primary": e["primary"].as_bool().unwrap_or(false)});
            if let Some(l) = e["label"].as_str() {
                item["label"] = json!(l);
            }
            Some(item)
        })
        .collect();
    let before = out.len();
    for add in adds {
        let held = out
            .iter()
            .any(|e| e["value"].as_str().is_some_and(|v| same(v, add)));
        if !held {
            out.push(json!({"value": add, "primary": out.is_empty(), "label": label}));
        }
    }
    (out.len() > before).then_some(out)
}

/// Whether a stored phone value is `number`: the same E.164 number when it is
/// written with its country code, else the same national number (with or
/// without a trunk `0`, or with the country code but no `+`).
fn same_number(stored: &str, number: &Phone) -> bool {
    if stored.trim_start().starts_with('+') {
        return Phone::parse(stored, None).is_ok_and(|p| p == *number);
    }
    let digits: String = stored.chars().filter(char::is_ascii_digit).collect();
    let national = number.national_number();
    let full = number
        .country_code()
        .map(|cc| format!("{cc}{national}"))
        .unwrap_or_default();
    !digits.is_empty() && (digits == national || digits == format!("0{national}") || digits == full)
}

/// `Acme (chatbot bot_acme) leadbridge-event:evt_1`: who and which bot, then
/// the tag that finds the deal again; the start is shortened to fit.
fn deal_title(lead: &QueuedLead) -> String {
    let e = &lead.event;
    let who = crate::deal::who(lead);
    let tail = format!(
        " (chatbot {}) {}",
        e.bot_id.as_str(),
        note::tag(&e.event_id)
    );
    let room = TITLE_MAX_CHARS.saturating_sub(tail.chars().count()).max(1);
    let who: String = if who.chars().count() > room {
        let mut w: String = who.chars().take(room.saturating_sub(1)).collect();
        w.push('…');
        w
    } else {
        who
    };
    format!("{who}{tail}")
}

fn enc(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

fn id_of(v: &Value) -> Option<u64> {
    match v {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .into_iter()
        .flatten()
        .filter_map(|s| match s {
            Value::String(s) => Some(s.clone()),
            Value::Object(o) => o.get("value").and_then(Value::as_str).map(str::to_string),
            _ => None,
        })
        .collect()
}

/// `additional_data.next_cursor`, unless absent, null, empty or the same again.
fn next_cursor(v: &Value, current: Option<&str>) -> Option<String> {
    v["additional_data"]["next_cursor"]
        .as_str()
        .filter(|c| !c.is_empty() && Some(*c) != current)
        .map(str::to_string)
}

/// Pipedrive's own words: `error` (a string, or the search service's
/// `{"message"}` object); the status when it said nothing. Never the body we sent.
fn error_message(status: StatusCode, v: &Value) -> String {
    let said = match &v["error"] {
        Value::String(s) if !s.trim().is_empty() => Some(s.trim().to_string()),
        Value::Object(o) => o.get("message").and_then(Value::as_str).map(str::to_string),
        _ => None,
    };
    said.unwrap_or_else(|| format!("HTTP {}", status.as_u16()))
}

/// The error's machine code (`ERR_SCHEMA_VALIDATION_FAILED`, `feature_capping_…`).
fn error_code(v: &Value) -> Option<String> {
    v["code"]
        .as_str()
        .or_else(|| v["error"]["code"].as_str())
        .map(str::to_string)
}

fn header_u64(h: &HeaderMap, name: &str) -> Option<u64> {
    h.get(name)?.to_str().ok()?.trim().parse().ok()
}

/// How long a 429 asks us to wait: `Retry-After`, else `x-ratelimit-reset`
/// (seconds until the window frees a slot), else one window.
fn rate_wait(h: &HeaderMap) -> Duration {
    classify::retry_after(h)
        .or_else(|| header_u64(h, "x-ratelimit-reset").map(|s| Duration::from_secs(s.clamp(1, 60))))
        .unwrap_or(DEFAULT_RATE_WAIT)
}

/// Whether a 429 is the daily budget's rather than a burst window's: the
/// budget headers say none is left, or the burst window still had room.
fn daily_refusal(h: &HeaderMap) -> bool {
    header_u64(h, "x-daily-ratelimit-token-remaining") == Some(0)
        || header_u64(h, "x-ratelimit-remaining").is_some_and(|r| r > 0)
}

/// Route shape for logs, with ids and emails cut out and no query (search terms).
fn route_name(path: &str) -> String {
    let path = path.split('?').next().unwrap_or(path);
    path.split('/')
        .map(|seg| {
            if seg.contains('@') || (!seg.is_empty() && seg.bytes().all(|b| b.is_ascii_digit())) {
                "{id}"
            } else {
                seg
            }
        })
        .collect::<Vec<_>>()
        .join("/")
}

/// The company's daily token budget as this instance sees it, from the
/// `x-daily-ratelimit-token-limit` / `-remaining` headers (reported by
/// Pipedrive staff, undocumented, sometimes missing: without them there is no
/// warning). A spent budget is checked again at the next whole hour.
#[derive(Default)]
struct DailyBudget(Mutex<BudgetState>);

#[derive(Default)]
struct BudgetState {
    limit: Option<u64>,
    remaining: Option<u64>,
    exhausted_until: Option<DateTime<Utc>>,
    warned: Option<NaiveDate>,
}

impl DailyBudget {
    fn lock(&self) -> std::sync::MutexGuard<'_, BudgetState> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn observe(&self, h: &HeaderMap) {
        if let (Some(limit), Some(remaining)) = (
            header_u64(h, "x-daily-ratelimit-token-limit"),
            header_u64(h, "x-daily-ratelimit-token-remaining"),
        ) {
            let mut s = self.lock();
            s.limit = Some(limit);
            s.remaining = Some(remaining);
        }
    }

    /// The budget ran out: calls wait until the next whole hour. How long from `now`.
    fn exhaust(&self, now: DateTime<Utc>) -> Duration {
        let step = DAILY_RECHECK.as_millis() as i64;
        let ms = now.timestamp_millis();
        let until = DateTime::from_timestamp_millis(ms - ms.rem_euclid(step) + step).unwrap_or(now);
        self.lock().exhausted_until = Some(until);
        (until - now).to_std().unwrap_or_default()
    }

    fn wait(&self, now: DateTime<Utc>) -> Option<Duration> {
        let mut s = self.lock();
        match s.exhausted_until {
            Some(until) if until > now => (until - now).to_std().ok(),
            Some(_) => {
                s.exhausted_until = None;
                None
            }
            None => None,
        }
    }

    fn take_warning(&self, now: DateTime<Utc>) -> Option<QuotaUsage> {
        let mut s = self.lock();
        let (limit, remaining) = (s.limit?, s.remaining?);
        let used = limit.saturating_sub(remaining);
        let day = now.date_naive();
        if limit == 0 || used * 100 < limit * WARN_AT_PERCENT || s.warned == Some(day) {
            return None;
        }
        s.warned = Some(day);
        Some(QuotaUsage {
            used,
            limit,
            day: day.to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    fn lead(visitor: Value) -> QueuedLead {
        let event: lb_domain::LeadEvent = serde_json::from_value(json!({
            "event_id": "evt_1", "event_type": "lead.created",
            "occurred_at": "2026-05-04T11:23:45Z", "bot_id": "bot_acme", "visitor": visitor
        }))
        .expect("event");
        QueuedLead::new(event, Utc::now()).expect("lead")
    }

    #[test]
    fn a_new_person_is_named_after_the_visitor_else_an_identity() {
        let full = wanted(
            &lead(
                json!({"email": "Priya@Acme.in", "name": " Priya Sharma ", "phone": "+14155552671", "wa_id": "14155552671"}),
            ),
            ContactWrite::Full,
        );
        assert_eq!(full.name.as_deref(), Some("Priya Sharma"));
        assert_eq!(full.emails, ["priya@acme.in"]);
        assert_eq!(full.phones.len(), 1, "the WhatsApp number is the phone");
        let only = wanted(
            &lead(json!({"email": "priya@acme.in", "name": "Priya"})),
            ContactWrite::IdentityOnly,
        );
        assert_eq!(only.name, None);
        assert_eq!(only.new_name, "priya@acme.in");
        let number = wanted(&lead(json!({"wa_id": "14155552671"})), ContactWrite::Full);
        assert_eq!(number.new_name, "+14155552671");
        let split = wanted(
            &lead(json!({"email": "a@b.io", "first_name": "Ann", "last_name": "Lee"})),
            ContactWrite::Full,
        );
        assert_eq!(split.name.as_deref(), Some("Ann Lee"));
    }

    #[test]
    fn a_patch_keeps_the_persons_own_entries_and_adds_the_new_ones() {
        let w = wanted(
            &lead(json!({"email": "priya@acme.in", "name": "Priya", "phone": "+14155552671"})),
            ContactWrite::Full,
        );
        let person = json!({"name": "Priya", "emails": [
            {"value": "PRIYA@ACME.IN", "primary": true, "label": "home"}],
            "phones": [{"value": "+91 98765 43210", "primary": true, "label": "work"}]});
        let patch = person_patch(&person, &w);
        assert!(patch.get("name").is_none(), "same name");
        assert!(
            patch.get("emails").is_none(),
            "the email is held (any case)"
        );
        assert_eq!(
            patch["phones"],
            json!([{"value": "+91 98765 43210", "primary": true, "label": "work"},
                   {"value": "+14155552671", "primary": false, "label": "mobile"}])
        );
        let same = json!({"name": "Priya", "emails": [{"value": "priya@acme.in", "primary": true}],
                          "phones": [{"value": "(415) 555-2671", "primary": true}]});
        assert!(person_patch(&same, &w).is_empty(), "nothing to write");
        let renamed = person_patch(
            &json!({"name": "priya@acme.in", "emails": [], "phones": []}),
            &w,
        );
        assert_eq!(renamed["name"], "Priya");
        assert_eq!(
            renamed["emails"][0],
            json!({"value": "priya@acme.in", "primary": true, "label": "work"})
        );
    }

    #[test]
    fn deal_titles_carry_the_tag_and_fit() {
        let t = deal_title(&lead(json!({"email": "a@b.io", "company": "Acme"})));
        assert_eq!(t, "Acme (chatbot bot_acme) leadbridge-event:evt_1");
        let long = deal_title(&lead(
            json!({"email": "a@b.io", "company": "x".repeat(400)}),
        ));
        assert_eq!(long.chars().count(), TITLE_MAX_CHARS);
        assert!(note::carries_tag(
            &long,
            &EventId::parse("evt_1").expect("id")
        ));
    }

    #[test]
    fn pipedrive_error_text_is_read_from_either_shape() {
        let v = json!({"success": false, "error": "Name must be given.", "error_info": "Please check developers.pipedrive.com"});
        assert_eq!(
            error_message(StatusCode::BAD_REQUEST, &v),
            "Name must be given."
        );
        let search = json!({"success": false, "error": {"message": "term too short", "code": 400}});
        assert_eq!(
            error_message(StatusCode::BAD_REQUEST, &search),
            "term too short"
        );
        assert_eq!(
            error_message(StatusCode::BAD_GATEWAY, &Value::Null),
            "HTTP 502"
        );
        assert_eq!(
            error_code(&json!({"code": "ERR_SCHEMA_VALIDATION_FAILED"})).as_deref(),
            Some("ERR_SCHEMA_VALIDATION_FAILED")
        );
    }

    #[test]
    fn rate_limit_headers_say_how_long_and_which_limit() {
        let mut h = HeaderMap::new();
        assert_eq!(rate_wait(&h), DEFAULT_RATE_WAIT);
        h.insert("x-ratelimit-reset", HeaderValue::from_static("1"));
        h.insert("x-ratelimit-remaining", HeaderValue::from_static("0"));
        assert_eq!(rate_wait(&h), Duration::from_secs(1));
        assert!(!daily_refusal(&h));
        h.insert("retry-after", HeaderValue::from_static("30"));
        assert_eq!(rate_wait(&h), Duration::from_secs(30));
        h.insert(
            "x-daily-ratelimit-token-remaining",
            HeaderValue::from_static("0"),
        );
        assert!(daily_refusal(&h));
    }

    #[test]
    fn the_budget_warns_once_a_day_past_seventy_percent() {
        let b = DailyBudget::default();
        let now: DateTime<Utc> = "2026-11-29T10:20:00Z".parse().expect("t");
        let headers = |limit: u64, left: u64| {
            let mut h = HeaderMap::new();
            h.insert("x-daily-ratelimit-token-limit", HeaderValue::from(limit));
            h.insert("x-daily-ratelimit-token-remaining", HeaderValue::from(left));
            h
        };
        assert_eq!(b.take_warning(now), None, "no headers seen");
        b.observe(&headers(1000, 400));
        assert_eq!(b.take_warning(now), None, "60% used");
        b.observe(&headers(1000, 250));
        assert_eq!(
            b.take_warning(now),
            Some(QuotaUsage {
                used: 750,
                limit: 1000,
                day: "2026-11-29".into()
            })
        );
        assert_eq!(b.take_warning(now), None, "once a day");
        assert_eq!(b.exhaust(now), Duration::from_secs(40 * 60));
        assert!(b.wait(now).is_some());
        assert_eq!(b.wait("2026-11-29T11:00:00Z".parse().expect("t")), None);
    }

    #[test]
    fn numbers_match_however_they_were_stored() {
        let n = Phone::parse("+14155552671", None).expect("phone");
        assert!(same_number("+1 (415) 555-2671", &n));
        assert!(same_number("4155552671", &n));
        assert!(same_number("14155552671", &n));
        assert!(!same_number("+14155552672", &n));
        assert!(!same_number("", &n));
    }

    #[test]
    fn routes_in_logs_carry_no_ids_or_terms() {
        assert_eq!(
            route_name("/api/v2/persons/search?term=priya%40acme.in&fields=email"),
            "/api/v2/persons/search"
        );
        assert_eq!(route_name("/v1/notes/512"), "/v1/notes/{id}");
    }
}
