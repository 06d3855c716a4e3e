//! Zoho CRM (API v8): people upserted by email in one call per batch
//! (`POST /crm/v8/{module}/upsert`, up to 100 records), phone-only people
//! found by search, notes (up to 100 per call) and deals tagged with the event
//! id, messaging conversations kept as one updatable note.
//!
//! Auth is OAuth: the secret holds the grant (`{"client_id", "client_secret",
//! "refresh_token", "accounts_url"?}`); the access token and the `api_domain`
//! every call goes to come from the accounts server's token answer
//! ("always use the returned api_domain", research A.2), cached and refreshed
//! single-flight ([`oauth`]). Calls carry `Authorization: Zoho-oauthtoken
//! <token>`; a 401 `INVALID_TOKEN` refreshes once and retries once.
//!
//! Sources are cited where each behaviour is used; the facts are those of
//! `../shared/design/research/crm-and-vendor-apis.md` §A.2 and Zoho's
//! OpenAPI spec (`zoho/crm-oas`, v8.0), which the simulator
//! (`crm_sim::zoho`) models.

// `Result<_, CrmError>` is the port's shape (one per batch item); the error is
// the port's own type, shared by every adapter (boxing it is a port change).
#![allow(clippy::result_large_err)]

mod batch;
mod fields;
pub use crate::oauth;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use lb_domain::{conversation, EventId, QueuedLead};
use lb_pipeline::secrets::CachedSecret;
use lb_pipeline::{ContactRef, ContactUpsert, ContactWrite, Crm, CrmError, ErrorClass};
use reqwest::Method;
use serde_json::{json, Value};
use tracing::{debug, warn};

use crate::classify;
use fields::{Fields, FieldsCache};
use oauth::{AccessToken, Grant, TokenCache};

pub use oauth::AUTH_REVOKED;

/// Zoho takes at most 100 records per upsert and 100 notes per create ([V]
/// upsert page "A maximum of 100 records can be inserted/updated per API
/// call"; create-notes page "You can create a maximum of 100 notes per API call").
pub const BATCH_LIMIT: usize = 100;
/// `Note_Content` holds at most 65,535 characters ([V] crm-oas v8 notes).
const NOTE_MAX_CHARS: usize = 65_535;
/// The largest answer read from Zoho (a page of 200 records).
const MAX_ANSWER_BYTES: usize = 16 * 1024 * 1024;
/// Zoho sends no documented `Retry-After` with its 429 (a concurrency or
/// credit limit): wait this long unless it does.
const RATE_LIMIT_WAIT: Duration = Duration::from_secs(30);

#[derive(Debug, Clone)]
pub struct ZohoConfig {
    /// The connection's name: [`Crm::name`], the ledger's `crm` (`zoho`).
    pub name: String,
    /// The accounts server of the org's data centre
    /// (`https://accounts.zoho.com|.eu|.in|.com.au|.jp|.com.cn|.sa`,
    /// `https://accounts.zohocloud.ca`), or a simulator. The secret's
    /// `accounts_url`, when present, wins.
    pub accounts_url: String,
    /// The module people are written to: `Contacts` (default) or `Leads`.
    pub module: String,
    pub timeout: Duration,
    /// A local run: hosts may resolve to this machine (the simulator) and the
    /// API domain may be plain `http`; deployments reach public `https` hosts only.
    pub allow_internal: bool,
    /// The connection's `fields`/`static` tables: more fields written with every
    /// full write, checked against the module's fields like the adapter's own.
    /// The adapter's own fields (identities, name, country) win over a mapped one.
    pub mapping: Option<lb_domain::mapping::Mapping>,
}

impl Default for ZohoConfig {
    fn default() -> Self {
        Self {
            name: "zoho".into(),
            accounts_url: "https://accounts.zoho.com".into(),
            module: "Contacts".into(),
            timeout: Duration::from_secs(10),
            allow_internal: false,
            mapping: None,
        }
    }
}

pub struct ZohoCrm {
    http: reqwest::Client,
    cfg: ZohoConfig,
    grant: Arc<CachedSecret>,
    tokens: TokenCache,
    fields: FieldsCache,
    /// The Deals module's fields (its `Stage` and `Pipeline` picklists).
    deal_fields: FieldsCache,
    /// The shared rate limiter (off unless the worker wires one).
    throttle: lb_pipeline::throttle::Throttle,
}

pub(crate) use crate::net::Answer;

impl ZohoCrm {
    /// Counts every request in the connection's shared rate limit.
    pub fn with_throttle(mut self, throttle: lb_pipeline::throttle::Throttle) -> Self {
        self.throttle = throttle;
        self
    }

    /// Shares the access token with every worker instance (one refresh at a time).
    pub fn with_token_share(mut self, share: std::sync::Arc<dyn lb_pipeline::TokenShare>) -> Self {
        self.tokens = TokenCache::new().shared(share, self.cfg.name.clone());
        self
    }

    /// `grant` is the secret holding `{"client_id","client_secret","refresh_token"}`
    /// (optionally `"accounts_url"`).
    pub fn new(cfg: ZohoConfig, grant: Arc<CachedSecret>) -> Result<Self, reqwest::Error> {
        let http = crate::net::client(cfg.allow_internal, cfg.timeout)?;
        Ok(Self {
            throttle: lb_pipeline::throttle::Throttle::off(),
            http,
            cfg,
            grant,
            tokens: TokenCache::new(),
            fields: FieldsCache::default(),
            deal_fields: FieldsCache::default(),
        })
    }

    fn err(&self, class: ErrorClass, status: Option<u16>, message: impl Into<String>) -> CrmError {
        CrmError::new(self.cfg.name.clone(), class, status, message)
    }

    /// The module people are written to, checked to be a bare API name.
    fn module(&self) -> Result<&str, CrmError> {
        let m = self.cfg.module.trim();
        if !m.is_empty() && m.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            Ok(m)
        } else {
            Err(self.err(
                ErrorClass::Permanent,
                None,
                format!(
                    "{:?} is not a Zoho module API name (Contacts, Leads)",
                    self.cfg.module
                ),
            ))
        }
    }

    /// The grant from the secret.
    async fn read_grant(&self) -> Result<Grant, CrmError> {
        let raw = self.grant.get().await.map_err(|e| {
            self.err(
                ErrorClass::Transient,
                None,
                format!("could not read the Zoho grant secret: {e}"),
            )
        })?;
        let v: Value = serde_json::from_str(raw.expose()).unwrap_or(Value::Null);
        let field = |k: &str| {
            v[k].as_str()
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_string)
        };
        let (Some(client_id), Some(client_secret), Some(refresh_token)) = (
            field("client_id"),
            field("client_secret"),
            field("refresh_token"),
        ) else {
            return Err(self.err(
                ErrorClass::Permanent,
                None,
                format!(
                    "secret {} holds no Zoho grant (expected JSON with client_id, client_secret \
                     and refresh_token)",
                    self.grant.id()
                ),
            ));
        };
        let accounts = field("accounts_url").unwrap_or_else(|| self.cfg.accounts_url.clone());
        Ok(Grant {
            token_url: format!("{}/oauth/v2/token", accounts.trim_end_matches('/')),
            client_id,
            client_secret,
            refresh_token,
        })
    }

    /// The access token (cached; refreshed single-flight when stale).
    async fn token(&self) -> Result<AccessToken, CrmError> {
        let grant = self.read_grant().await?;
        self.tokens
            .get(&grant, || async {
                let t = oauth::refresh(&self.http, &self.cfg.name, &grant).await;
                match &t {
                    Ok(_) => debug!(crm = %self.cfg.name, "access token refreshed"),
                    Err(e) => {
                        warn!(crm = %self.cfg.name, class = e.class.as_str(), code = e.code.as_deref().unwrap_or(""), "access token refresh refused")
                    }
                }
                t
            })
            .await
    }

    /// The API base (`{api_domain}/crm/v8`) for a token: the token answer's
    /// domain, else the one of the accounts server's data centre.
    async fn api_base(&self, token: &AccessToken) -> Result<String, CrmError> {
        let domain = match &token.api_domain {
            Some(d) => d.clone(),
            None => api_domain_for(&self.read_grant().await?.token_url).ok_or_else(|| {
                self.err(
                    ErrorClass::Permanent,
                    None,
                    "the token answer named no api_domain and the accounts server's is unknown",
                )
            })?,
        };
        let parsed = reqwest::Url::parse(&domain)
            .ok()
            .filter(|u| u.scheme() == "https" || (self.cfg.allow_internal && u.scheme() == "http"));
        if parsed.is_none() {
            return Err(self.err(
                ErrorClass::Permanent,
                None,
                "the token answer's api_domain is not an https URL",
            ));
        }
        Ok(format!("{}/crm/v8", domain.trim_end_matches('/')))
    }

    /// One API call (`path` under `/crm/v8`). A 401 `INVALID_TOKEN` (or
    /// `AUTHENTICATION_FAILURE`, which Zoho sometimes answers for a stale
    /// token, rikas/zoho_hub#34 [D]) drops the token and retries once.
    /// `per_record`: a 400 whose body lists per-record results (`data`) is an
    /// answer to read, not a failure (an all-refused batch, [V] crm-oas v8).
    pub(crate) async fn call(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, String)],
        body: Option<&Value>,
        per_record: bool,
    ) -> Result<Answer, CrmError> {
        let mut retried = false;
        loop {
            let token = self.token().await?;
            let url = format!("{}{path}", self.api_base(&token).await?);
            let mut req = self
                .http
                .request(method.clone(), &url)
                .header("authorization", format!("Zoho-oauthtoken {}", token.value));
            if !query.is_empty() {
                req = req.query(query);
            }
            if let Some(b) = body {
                req = req.json(b);
            }
            crate::throttling::admit(&self.throttle, &self.cfg.name).await?;
            let resp = req
                .send()
                .await
                .map_err(|e| classify::transport(&self.cfg.name, &e))?;
            let status = resp.status().as_u16();
            let headers = resp.headers().clone();
            let text = match crate::net::read_capped(resp, MAX_ANSWER_BYTES).await {
                Ok(b) => String::from_utf8_lossy(&b).into_owned(),
                Err(crate::net::BodyError::Transport(e)) => {
                    return Err(classify::transport(&self.cfg.name, &e))
                }
                Err(crate::net::BodyError::TooLarge(max)) => {
                    return Err(self.err(
                        ErrorClass::Transient,
                        Some(status),
                        format!("Zoho answered more than {max} bytes; not read"),
                    ))
                }
            };
            debug!(crm = %self.cfg.name, %method, route = route_name(path), status, "crm call");
            let v: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
            let code = v["code"].as_str().unwrap_or_default();
            if status == 401
                && !retried
                && matches!(code, "INVALID_TOKEN" | "AUTHENTICATION_FAILURE")
            {
                retried = true;
                self.tokens.invalidate(&token.value).await;
                continue;
            }
            if status == 204 {
                return Ok(Answer {
                    status,
                    body: Value::Null,
                });
            }
            if (200..300).contains(&status) || (per_record && status == 400 && v["data"].is_array())
            {
                return Ok(Answer { status, body: v });
            }
            let class = classify::class_of(status, &[]).unwrap_or(ErrorClass::Permanent);
            let mut e = self.err(class, Some(status), error_message(status, &v, &text));
            e.category = v["code"].as_str().map(str::to_string);
            if class == ErrorClass::RateLimited {
                e.retry_after = Some(classify::retry_after(&headers).unwrap_or(RATE_LIMIT_WAIT));
            } else if let Some(after) = classify::retry_after(&headers) {
                e.retry_after = Some(after);
            }
            return Err(e);
        }
    }

    /// The module's fields, from the cache while fresh.
    async fn module_fields(&self) -> Result<Arc<Fields>, CrmError> {
        self.fields_of(&self.fields, self.module()?).await
    }

    /// `module`'s fields (`GET /settings/fields?module=`), from `cache` while fresh.
    async fn fields_of(&self, cache: &FieldsCache, module: &str) -> Result<Arc<Fields>, CrmError> {
        let module = module.to_string();
        cache
            .get_or_load(|| async {
                let a = self
                    .call(
                        Method::GET,
                        "/settings/fields",
                        &[("module", module.clone())],
                        None,
                        false,
                    )
                    .await?;
                Fields::from_json(&a.body).ok_or_else(|| {
                    self.err(
                        ErrorClass::Transient,
                        Some(a.status),
                        "the fields API answered without fields",
                    )
                })
            })
            .await
    }

    /// The record's notes (`Note_Content`), every page, newest first or oldest
    /// first, as `(id, content)`; stops early when `stop` says so.
    async fn notes_of(
        &self,
        contact_id: &str,
        newest_first: bool,
        mut stop: impl FnMut(&str) -> bool,
    ) -> Result<Vec<(String, String)>, CrmError> {
        let module = self.module()?;
        let path = format!("/{module}/{}/Notes", path_id(contact_id)?);
        let order = if newest_first { "desc" } else { "asc" };
        let mut out = Vec::new();
        // `page` reaches the first 2000 ([V] get-records page: page_token beyond).
        for page in 1..=10u32 {
            let q = [
                ("fields", "Note_Content".to_string()),
                ("sort_by", "Created_Time".to_string()),
                ("sort_order", order.to_string()),
                ("per_page", "200".to_string()),
                ("page", page.to_string()),
            ];
            let a = self.call(Method::GET, &path, &q, None, false).await?;
            for n in a.body["data"].as_array().into_iter().flatten() {
                let (Some(id), Some(content)) = (id_of(n), n["Note_Content"].as_str()) else {
                    continue;
                };
                let done = stop(content);
                out.push((id, content.to_string()));
                if done {
                    return Ok(out);
                }
            }
            if a.body["info"]["more_records"].as_bool() != Some(true) {
                break;
            }
        }
        Ok(out)
    }
}

/// The API domain of a known accounts server (`accounts.zoho.eu` →
/// `https://www.zohoapis.eu`, [V] multi-DC pages per research A.2).
fn api_domain_for(token_url: &str) -> Option<String> {
    let host = reqwest::Url::parse(token_url).ok()?.host_str()?.to_string();
    let tld = host
        .strip_prefix("accounts.zoho.")
        .map(str::to_string)
        .or_else(|| host.strip_prefix("accounts.zohocloud.").map(str::to_string))?;
    Some(format!("https://www.zohoapis.{tld}"))
}

/// A record id for a path: Zoho ids are digits.
fn path_id(id: &str) -> Result<&str, CrmError> {
    if !id.is_empty() && id.bytes().all(|b| b.is_ascii_digit()) {
        Ok(id)
    } else {
        Err(CrmError::new(
            "zoho",
            ErrorClass::Permanent,
            None,
            "a Zoho record id is a number",
        ))
    }
}

pub(crate) fn id_of(v: &Value) -> Option<String> {
    match &v["id"] {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// Zoho's own words for a whole-request error: `CODE: message`, plus the
/// field or parameter `details` names. Never the request's values.
fn error_message(status: u16, v: &Value, raw: &str) -> String {
    match (v["code"].as_str(), v["message"].as_str()) {
        (Some(code), message) => {
            let mut m = format!("{code}: {}", message.unwrap_or("(no message)"));
            for key in ["api_name", "param_name"] {
                if let Some(name) = v["details"][key].as_str() {
                    m.push_str(&format!(" ({key} {name})"));
                }
            }
            m
        }
        (None, _) => {
            let t = raw.trim();
            if t.is_empty() || v.is_null() {
                format!("HTTP {status}")
            } else {
                format!("HTTP {status}: {}", t.chars().take(300).collect::<String>())
            }
        }
    }
}

/// Route shape for logs: record ids cut out (`/Contacts/{id}/Notes`).
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

#[async_trait]
impl Crm for ZohoCrm {
    fn name(&self) -> &str {
        &self.cfg.name
    }

    /// Every field a write may name (the adapter's own and the mapped ones),
    /// against the module's fields read afresh: the hourly check and the doctor
    /// find a drift before a lead fails on it.
    async fn schema_findings(&self) -> Result<Vec<String>, CrmError> {
        let module = self.module()?.to_string();
        self.fields.invalidate().await;
        let fields = self.module_fields().await?;
        let own: &[&str] = if module == "Leads" {
            &[
                "Email",
                "Phone",
                "Mobile",
                "First_Name",
                "Last_Name",
                "Company",
                "Country",
                "State",
            ]
        } else {
            &[
                "Email",
                "Phone",
                "Mobile",
                "First_Name",
                "Last_Name",
                "Mailing_Country",
                "Mailing_State",
            ]
        };
        let record = crate::mapped::every_field(own, self.cfg.mapping.as_ref());
        Ok(fields.findings(&module, &record))
    }

    /// Phone and WhatsApp numbers by search (the upsert matches the email itself).
    async fn find_contacts(&self, lead: &QueuedLead) -> Result<Vec<(usize, String)>, CrmError> {
        self.find_batch(std::slice::from_ref(lead))
            .await
            .pop()
            .unwrap_or_else(|| Ok(Vec::new()))
    }

    async fn upsert_contact(
        &self,
        lead: &QueuedLead,
        known_id: Option<&str>,
        write: ContactWrite,
    ) -> Result<ContactRef, CrmError> {
        let item = ContactUpsert {
            lead: lead.clone(),
            known_id: known_id.map(str::to_string),
            write,
        };
        self.upsert_batch(std::slice::from_ref(&item))
            .await
            .pop()
            .unwrap_or_else(|| Err(self.err(ErrorClass::Transient, None, "no answer")))
    }

    async fn find_note(
        &self,
        contact_id: &str,
        event_id: &EventId,
    ) -> Result<Option<String>, CrmError> {
        let found = self
            .notes_of(contact_id, true, |c| {
                lb_domain::note::carries_tag(c, event_id)
            })
            .await?;
        Ok(found
            .into_iter()
            .find(|(_, c)| lb_domain::note::carries_tag(c, event_id))
            .map(|(id, _)| id))
    }

    async fn add_note(&self, contact_id: &str, lead: &QueuedLead) -> Result<String, CrmError> {
        let record = self.note_record(contact_id, &self.note_body(lead))?;
        self.create_many("/Notes", vec![record], "note")
            .await
            .pop()
            .unwrap_or_else(|| Err(self.no_answer("note")))
    }

    async fn find_deal(
        &self,
        contact_id: &str,
        event_id: &EventId,
    ) -> Result<Option<String>, CrmError> {
        if self.module()? != "Contacts" {
            return Ok(None);
        }
        let path = format!("/Contacts/{}/Deals", path_id(contact_id)?);
        for page in 1..=10u32 {
            let q = [
                ("fields", "Description".to_string()),
                ("sort_by", "Created_Time".to_string()),
                ("sort_order", "desc".to_string()),
                ("per_page", "200".to_string()),
                ("page", page.to_string()),
            ];
            let a = self.call(Method::GET, &path, &q, None, false).await?;
            if let Some(d) = a.body["data"].as_array().into_iter().flatten().find(|d| {
                d["Description"]
                    .as_str()
                    .is_some_and(|t| lb_domain::note::carries_tag(t, event_id))
            }) {
                return Ok(id_of(d));
            }
            if a.body["info"]["more_records"].as_bool() != Some(true) {
                break;
            }
        }
        Ok(None)
    }

    /// Before anything is written for an event that asks for a deal: the
    /// connection must write Contacts (Zoho deals link to a contact through
    /// `Contact_Name`), and the deal's `Stage` (the event's, else
    /// Qualification) must be one of the Deals module's `Stage` picklist
    /// values, its pipeline one of the `Pipeline` picklist's, as the org's
    /// admin set them up (`GET /settings/fields?module=Deals`, cached 10
    /// minutes; Zoho refuses an off-list picklist value with `INVALID_DATA`,
    /// [V] crm-oas v8 records). A deal is created once per event and never
    /// moved, so none goes backwards.
    async fn check_deal(&self, lead: &QueuedLead) -> Result<(), CrmError> {
        let refuse = |code: &str, message: String| CrmError::refused(&self.cfg.name, code, message);
        if self.module()? != "Contacts" {
            return Err(refuse(
                crate::deal::DEALS_NEED_CONTACTS,
                format!(
                    "Zoho deals link to contacts and this connection writes {}: set its module \
                     to Contacts or turn crm_target.create_deal off; nothing was written",
                    self.module()?
                ),
            ));
        }
        let deals = self.fields_of(&self.deal_fields, "Deals").await?;
        let t = &lead.event.crm_target;
        let stage = t.deal_stage.as_deref().unwrap_or(batch::DEFAULT_STAGE);
        let stages = deals
            .get("Stage")
            .map(|f| f.picklist.as_slice())
            .unwrap_or_default();
        if !stages.iter().any(|s| s == stage) {
            return Err(refuse(
                crate::deal::BAD_DEAL_STAGE,
                format!(
                    "deal stage {stage:?} is not a Stage of Zoho's Deals (stages: {}); nothing was written",
                    stages.join(", ")
                ),
            ));
        }
        if let Some(pipeline) = t.deal_pipeline.as_deref() {
            let Some(field) = deals.get("Pipeline") else {
                return Err(refuse(
                    crate::deal::BAD_DEAL_STAGE,
                    format!(
                        "deal pipeline {pipeline:?} was asked for but Zoho's Deals have no \
                         Pipeline field in this org; nothing was written"
                    ),
                ));
            };
            if !field.picklist.iter().any(|p| p == pipeline) {
                return Err(refuse(
                    crate::deal::BAD_DEAL_STAGE,
                    format!(
                        "deal pipeline {pipeline:?} is not a Pipeline of Zoho's Deals (pipelines: {}); nothing was written",
                        field.picklist.join(", ")
                    ),
                ));
            }
        }
        Ok(())
    }

    async fn create_deal(&self, contact_id: &str, lead: &QueuedLead) -> Result<String, CrmError> {
        let record = self.deal_record(contact_id, lead)?;
        self.create_many("/Deals", vec![record], "deal")
            .await
            .pop()
            .unwrap_or_else(|| Err(self.no_answer("deal")))
    }

    /// Refreshes the token and reads the module's fields once.
    async fn warm_up(&self) {
        if let Err(e) = self.module_fields().await {
            warn!(crm = %self.cfg.name, class = e.class.as_str(), code = e.code.as_deref().unwrap_or(""), "could not read the Zoho fields at start");
        }
    }

    fn batch_limit(&self) -> usize {
        BATCH_LIMIT
    }

    async fn find_contacts_batch(
        &self,
        leads: &[QueuedLead],
    ) -> Vec<Result<Vec<(usize, String)>, CrmError>> {
        self.find_batch(leads).await
    }

    async fn upsert_contacts(&self, items: &[ContactUpsert]) -> Vec<Result<ContactRef, CrmError>> {
        self.upsert_batch(items).await
    }

    async fn add_notes(&self, items: &[(String, QueuedLead)]) -> Vec<Result<String, CrmError>> {
        let mut out = Vec::with_capacity(items.len());
        for chunk in items.chunks(BATCH_LIMIT) {
            let mut records = Vec::new();
            let mut slots = Vec::new();
            for (contact, lead) in chunk {
                match self.note_record(contact, &self.note_body(lead)) {
                    Ok(r) => {
                        slots.push(None);
                        records.push(r);
                    }
                    Err(e) => slots.push(Some(Err(e))),
                }
            }
            let mut answers = self
                .create_many("/Notes", records, "note")
                .await
                .into_iter();
            for slot in slots {
                out.push(slot.unwrap_or_else(|| {
                    answers
                        .next()
                        .unwrap_or_else(|| Err(self.no_answer("note")))
                }));
            }
        }
        out
    }

    async fn create_deals(&self, items: &[(String, QueuedLead)]) -> Vec<Result<String, CrmError>> {
        let mut out = Vec::with_capacity(items.len());
        for chunk in items.chunks(BATCH_LIMIT) {
            let mut records = Vec::new();
            let mut slots = Vec::new();
            for (contact, lead) in chunk {
                match self.deal_record(contact, lead) {
                    Ok(r) => {
                        slots.push(None);
                        records.push(r);
                    }
                    Err(e) => slots.push(Some(Err(e))),
                }
            }
            let mut answers = self
                .create_many("/Deals", records, "deal")
                .await
                .into_iter();
            for slot in slots {
                out.push(slot.unwrap_or_else(|| {
                    answers
                        .next()
                        .unwrap_or_else(|| Err(self.no_answer("deal")))
                }));
            }
        }
        out
    }

    fn keeps_conversations(&self) -> bool {
        true
    }

    fn note_max_chars(&self) -> usize {
        NOTE_MAX_CHARS
    }

    /// The contact's notes carrying the conversation's tag, oldest first.
    async fn conversation_notes(
        &self,
        contact_id: &str,
        conversation_tag: &str,
    ) -> Result<Vec<(String, String)>, CrmError> {
        let all = self.notes_of(contact_id, false, |_| false).await?;
        Ok(all
            .into_iter()
            .filter(|(_, body)| conversation::is_note_of(body, conversation_tag))
            .collect())
    }

    /// A note with this body. Zoho sets a note's time itself: `_at` is not sent.
    async fn add_note_body(
        &self,
        contact_id: &str,
        body: &str,
        _at: chrono::DateTime<chrono::Utc>,
    ) -> Result<String, CrmError> {
        let record = self.note_record(contact_id, body)?;
        self.create_many("/Notes", vec![record], "note")
            .await
            .pop()
            .unwrap_or_else(|| Err(self.no_answer("note")))
    }

    /// `PUT /crm/v8/Notes/{id}` with the new `Note_Content` ([V] update-notes page).
    async fn update_note(&self, note_id: &str, body: &str) -> Result<(), CrmError> {
        let path = format!("/Notes/{}", path_id(note_id)?);
        let payload = json!({"data": [{"Note_Content": body}]});
        let a = self
            .call(Method::PUT, &path, &[], Some(&payload), true)
            .await?;
        match a.body["data"].as_array().and_then(|d| d.first()) {
            Some(r) if r["status"] == "success" => Ok(()),
            Some(r) => Err(self.record_error(r, a.status, "note", None)),
            None => Err(self.no_answer("note")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_in_logs_carry_no_ids() {
        assert_eq!(
            route_name("/Contacts/5725767000000524157/Notes"),
            "/Contacts/{id}/Notes"
        );
        assert_eq!(route_name("/Contacts/upsert"), "/Contacts/upsert");
    }

    #[test]
    fn api_domains_follow_the_accounts_data_centre() {
        assert_eq!(
            api_domain_for("https://accounts.zoho.eu/oauth/v2/token").as_deref(),
            Some("https://www.zohoapis.eu")
        );
        assert_eq!(
            api_domain_for("https://accounts.zohocloud.ca/oauth/v2/token").as_deref(),
            Some("https://www.zohoapis.ca")
        );
        assert_eq!(api_domain_for("http://127.0.0.1:9/oauth/v2/token"), None);
    }

    #[test]
    fn zoho_error_text_is_kept_with_the_field_it_names() {
        let v = json!({"code": "INVALID_DATA", "message": "invalid data", "details": {"api_name": "Email"}, "status": "error"});
        assert_eq!(
            error_message(400, &v, ""),
            "INVALID_DATA: invalid data (api_name Email)"
        );
        assert_eq!(error_message(502, &Value::Null, ""), "HTTP 502");
    }

    #[test]
    fn record_ids_in_paths_are_digits() {
        assert!(path_id("5725767000000524157").is_ok());
        assert!(path_id("../settings").is_err());
        assert!(path_id("").is_err());
    }
}
