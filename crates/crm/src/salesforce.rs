//! Salesforce (REST API, v60.0 by default): people written as Leads (or
//! Contacts) by their Email in one sObject Collections upsert per batch of
//! 200, remembered records updated by id, phone-only people found by SOQL
//! and created, each event's conversation as a Task on the person, tagged
//! with the event id.
//!
//! Auth is OAuth (see `auth`): the secret holds a refresh-token grant
//! (`{"client_id","client_secret","refresh_token"}`) or a JWT bearer grant
//! (`{"client_id","username","private_key"}`, the assertion RS256-signed
//! here with the PEM key); every call goes to the token
//! answer's `instance_url` with `Authorization: Bearer`. A 401
//! `INVALID_SESSION_ID` refreshes once and retries once; a refused grant is
//! `auth_revoked` (permanent) after one refresh attempt.
//!
//! Behaviour and sources (research A.1, `../shared/design/research/
//! crm-and-vendor-apis.md`; the simulator `crm_sim::salesforce` models them):
//! - People with an email: `PATCH /composite/sobjects/{Lead|Contact}/Email`
//!   (≤ 200, `allOrNone: false`), answers matched back **by position** ("The
//!   UpsertResult objects are returned in the same order", [V]). Upserting by
//!   the standard `Email` field relies on its `idLookup` property ([V] SOAP
//!   `upsert()`: "On standard objects, this call can use the name of any field
//!   with the idLookup field property"; checked in `describe` before writing).
//!   A batch of one uses the single-row upsert `PATCH /sobjects/{type}/Email/
//!   {email}` ([V] the REST upsert page's own example), whose **300** (several
//!   records hold the email) is a permanent error listing the candidates —
//!   never a guess; the collections form of it, `DUPLICATE_EXTERNAL_ID` ([D]),
//!   is treated the same.
//! - A person known by id: `PATCH /composite/sobjects` by id (collections
//!   update, ≤ 200, [V]); one the org no longer has (`ENTITY_IS_DELETED`,
//!   `INVALID_CROSS_REFERENCE_KEY`, `NOT_FOUND`, [R]) is written again as not
//!   yet known. A new person without email: `POST /composite/sobjects` (create).
//! - `LastName` (and a Lead's `Company`) are required ([D] crm-apis.md): a
//!   person the event does not name is sent without them; when Salesforce
//!   answers `REQUIRED_FIELD_MISSING` for a new record, the item is sent
//!   again with placeholders (the number or the email's local part;
//!   `[not provided]` for Company) — an existing record keeps its own.
//! - Converted Leads: writing one is `CANNOT_UPDATE_CONVERTED_LEAD` ([D]);
//!   the Lead's `ConvertedContactId` is read by SOQL and the Contact is
//!   written instead (and its id is the person's from then on).
//! - Tasks: `POST /composite/sobjects` with `{"attributes":{"type":"Task"},
//!   "WhoId","Subject","Description","Status":"Completed","ActivityDate"}`
//!   ([V] Task object reference); the Description carries the event's tag
//!   and a retry finds it with `SELECT Id, Description FROM Task WHERE WhoId
//!   = '…'` and an exact tag match here (`evt_1` never matches `evt_10`;
//!   Description is a long text area, which SOQL cannot filter, [V]).
//! - Deals (see `deals`): an Opportunity with the person as its primary
//!   OpportunityContactRole, so Contact connections only (a Lead gets its
//!   Opportunity when converted: `deals_need_contacts`). Before anything is
//!   written, the stage must be one of `StageName`'s active `picklistValues`
//!   in `GET /sobjects/Opportunity/describe` ([D] PicklistEntry; cached like
//!   every describe), else `bad_deal_stage` naming it and the active ones; a
//!   `deal_pipeline` is refused (stages come from a record type's sales
//!   process). Both records in one `POST /composite` with `allOrNone: true`
//!   ([V] resources_composite_composite.htm and
//!   resources_composite_subrequest_result.htm, `@{opp.id}` references; the
//!   fields: [V] OpportunityContactRole object reference, [D]/[V]
//!   Opportunity's, see `deals`), the Description tagged; a retry finds it by its contact roles
//!   and the exact tag, like a Task. No Account is set.
//! - Errors: a per-record `statusCode` / REST `errorCode` is the error's
//!   category; `UNABLE_TO_LOCK_ROW` is transient; 403
//!   `REQUEST_LIMIT_EXCEEDED` is rate-limited for an hour (Salesforce sends
//!   no Retry-After, [D]) and this instance stops calling until then; field
//!   errors are permanent and name the field (values are cut out of
//!   Salesforce's messages); `DUPLICATES_DETECTED` is permanent (with
//!   `allow_duplicates` the `Sforce-Duplicate-Rule-Header: allowSave=true`
//!   header is sent, [V] headers_duplicaterules.htm, and only a blocking
//!   rule still refuses).
//! - Usage: `Sforce-Limit-Info: api-usage=N/M` on every answer ([V] Limit
//!   Info Header page) → [`Crm::take_quota_warning`] once past 70 %.
//! - Schema drift: `GET /sobjects/{type}/describe` (cached 10 minutes):
//!   writing a field that is missing, not createable or not updateable — or
//!   upserting by an Email that is not idLookup — fails the item with
//!   `schema_drift` before anything is written.

// `Result<_, CrmError>` is the port's shape (one per batch item).
#![allow(clippy::result_large_err)]

mod auth;
mod deals;
mod people;
mod schema;
mod tasks;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use chrono::Utc;
use lb_domain::{EventId, QueuedLead};
use lb_pipeline::secrets::CachedSecret;
use lb_pipeline::{ContactRef, ContactUpsert, ContactWrite, Crm, CrmError, ErrorClass, QuotaUsage};
use reqwest::Method;
use serde_json::Value;
use tracing::{debug, warn};

use crate::classify;
use crate::oauth::TokenCache;
use auth::{GrantKey, RotationMemory};
use schema::DescribeCache;

pub use crate::oauth::AUTH_REVOKED;

/// Records per sObject Collections call ([V] collections pages: "up to 200").
pub const BATCH_LIMIT: usize = 200;
/// Task.Description is a long text area of 32,000 characters ([V] Task object reference [R length]).
pub const NOTE_MAX_CHARS: usize = 32_000;
/// Salesforce answers a spent daily allocation with 403 and no Retry-After:
/// look again after this long.
pub const REQUEST_LIMIT_WAIT: Duration = Duration::from_secs(3600);
/// Usage at which one warning per day is raised.
pub const WARN_AT_PERCENT: u64 = 70;
/// The largest answer read (a query page of 2,000 records).
const MAX_ANSWER_BYTES: usize = 16 * 1024 * 1024;

#[derive(Debug, Clone)]
pub struct SalesforceConfig {
    /// The connection's name: [`Crm::name`], the ledger's `crm` (`salesforce`).
    pub name: String,
    /// The login server (`https://login.salesforce.com`, a sandbox's
    /// `https://test.salesforce.com`, a My Domain, or a simulator). The
    /// secret's `login_url`, when present, wins.
    pub login_url: String,
    /// The sObject people are written to: `Lead` (default) or `Contact`.
    pub object: String,
    /// `v60.0` (Spring '24) unless set.
    pub api_version: String,
    /// Send `Sforce-Duplicate-Rule-Header: allowSave=true`: duplicate rules
    /// that only alert let the save through.
    pub allow_duplicates: bool,
    pub timeout: Duration,
    /// A local run: hosts may resolve to this machine (the simulator) and the
    /// instance may be plain `http`; deployments reach public `https` hosts only.
    pub allow_internal: bool,
    /// The connection's `fields`/`static` tables: more fields written with every
    /// full write, checked against `describe` like the adapter's own (which win).
    pub mapping: Option<lb_domain::mapping::Mapping>,
    /// An Opportunity's `StageName` when the event's `crm_target` names none:
    /// `Prospecting`, the first stage of a new org's default sales process.
    pub default_deal_stage: String,
}

impl Default for SalesforceConfig {
    fn default() -> Self {
        Self {
            name: "salesforce".into(),
            login_url: "https://login.salesforce.com".into(),
            object: "Lead".into(),
            api_version: "v60.0".into(),
            allow_duplicates: false,
            timeout: Duration::from_secs(10),
            allow_internal: false,
            mapping: None,
            default_deal_stage: "Prospecting".into(),
        }
    }
}

/// The people sObject.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Person {
    Lead,
    Contact,
}

impl Person {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Person::Lead => "Lead",
            Person::Contact => "Contact",
        }
    }

    /// The type of a record id, by its key prefix (00Q Lead, 003 Contact).
    pub(crate) fn of_id(id: &str) -> Option<Person> {
        match id.get(..3) {
            Some("00Q") => Some(Person::Lead),
            Some("003") => Some(Person::Contact),
            _ => None,
        }
    }
}

/// The org's daily API usage, as the answers report it.
#[derive(Default)]
struct Usage {
    used: u64,
    limit: u64,
    warned: Option<chrono::NaiveDate>,
    /// A 403 `REQUEST_LIMIT_EXCEEDED` was answered: no calls until then.
    spent_until: Option<Instant>,
}

pub struct SalesforceCrm {
    http: reqwest::Client,
    cfg: SalesforceConfig,
    grant: Arc<CachedSecret>,
    tokens: TokenCache<GrantKey>,
    rotation: RotationMemory,
    describe: DescribeCache,
    usage: Mutex<Usage>,
    /// The shared rate limiter (off unless the worker wires one).
    throttle: lb_pipeline::throttle::Throttle,
}

pub(crate) use crate::net::Answer;

impl SalesforceCrm {
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

    /// `grant` is the secret holding `{"client_id","client_secret",
    /// "refresh_token"}` or `{"client_id","username","private_key"}`
    /// (optionally `"login_url"`).
    pub fn new(cfg: SalesforceConfig, grant: Arc<CachedSecret>) -> Result<Self, reqwest::Error> {
        let http = crate::net::client(cfg.allow_internal, cfg.timeout)?;
        Ok(Self {
            throttle: lb_pipeline::throttle::Throttle::off(),
            http,
            cfg,
            grant,
            tokens: TokenCache::new(),
            rotation: RotationMemory::default(),
            describe: DescribeCache::default(),
            usage: Mutex::new(Usage::default()),
        })
    }

    pub(crate) fn err(
        &self,
        class: ErrorClass,
        status: Option<u16>,
        message: impl Into<String>,
    ) -> CrmError {
        CrmError::new(self.cfg.name.clone(), class, status, message)
    }

    pub(crate) fn no_answer(&self, what: &str) -> CrmError {
        self.err(
            ErrorClass::Transient,
            None,
            format!("the batch call answered without this lead's {what}"),
        )
    }

    /// The people sObject, checked.
    pub(crate) fn person(&self) -> Result<Person, CrmError> {
        match self.cfg.object.trim() {
            "Lead" => Ok(Person::Lead),
            "Contact" => Ok(Person::Contact),
            other => Err(self.err(
                ErrorClass::Permanent,
                None,
                format!("{other:?} is not a Salesforce people object (Lead, Contact)"),
            )),
        }
    }

    fn version(&self) -> Result<&str, CrmError> {
        let v = self.cfg.api_version.trim();
        let ok = v.strip_prefix('v').is_some_and(|n| {
            n.split_once('.').is_some_and(|(a, b)| {
                !a.is_empty()
                    && a.bytes().all(|c| c.is_ascii_digit())
                    && b.bytes().all(|c| c.is_ascii_digit())
            })
        });
        if ok {
            Ok(v)
        } else {
            Err(self.err(
                ErrorClass::Permanent,
                None,
                format!("{v:?} is not a Salesforce API version (v60.0)"),
            ))
        }
    }

    fn observe_usage(&self, headers: &reqwest::header::HeaderMap) {
        let Some(info) = headers
            .get("sforce-limit-info")
            .and_then(|h| h.to_str().ok())
        else {
            return;
        };
        let Some((used, limit)) = parse_limit_info(info) else {
            return;
        };
        let mut u = self.usage.lock().unwrap_or_else(|p| p.into_inner());
        u.used = used;
        u.limit = limit;
    }

    /// One API call (`path` under `/services/data/{version}`, or a full
    /// `/services/data/…` path from an answer's `nextRecordsUrl`). A 401
    /// `INVALID_SESSION_ID` drops the token and retries once. A 300 is an
    /// answer (several upsert matches), not a failure.
    pub(crate) async fn call(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, String)],
        body: Option<&Value>,
    ) -> Result<Answer, CrmError> {
        self.call_inner(method, path, query, body, false).await
    }

    /// [`SalesforceCrm::call`] that hands a 4xx refusal back as an answer
    /// (a single record's refusal, read like a collection's), except a 401
    /// and the spent daily allocation.
    pub(crate) async fn call_answer(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, String)],
        body: Option<&Value>,
    ) -> Result<Answer, CrmError> {
        self.call_inner(method, path, query, body, true).await
    }

    async fn call_inner(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, String)],
        body: Option<&Value>,
        refusal_is_answer: bool,
    ) -> Result<Answer, CrmError> {
        let version = self.version()?.to_string();
        if let Some(until) = self
            .usage
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .spent_until
        {
            let now = Instant::now();
            if now < until {
                let mut e = self.err(
                    ErrorClass::RateLimited,
                    Some(403),
                    "REQUEST_LIMIT_EXCEEDED: the org's daily API allocation is spent (not asked again until it may be back)",
                );
                e.category = Some("REQUEST_LIMIT_EXCEEDED".into());
                e.retry_after = Some(until - now);
                return Err(e);
            }
        }
        let mut retried = false;
        loop {
            let token = self.token().await?;
            let base = self.instance(&token)?;
            let url = if path.starts_with("/services/data/") {
                format!("{base}{path}")
            } else {
                format!("{base}/services/data/{version}{path}")
            };
            let mut req = self
                .http
                .request(method.clone(), &url)
                .bearer_auth(&token.value);
            if !query.is_empty() {
                req = req.query(query);
            }
            if let Some(b) = body {
                req = req.json(b);
            }
            if self.cfg.allow_duplicates {
                req = req.header("Sforce-Duplicate-Rule-Header", "allowSave=true");
            }
            crate::throttling::admit(&self.throttle, &self.cfg.name).await?;
            let resp = req
                .send()
                .await
                .map_err(|e| classify::transport(&self.cfg.name, &e))?;
            let status = resp.status().as_u16();
            let headers = resp.headers().clone();
            self.observe_usage(&headers);
            let text = match crate::net::read_capped(resp, MAX_ANSWER_BYTES).await {
                Ok(b) => String::from_utf8_lossy(&b).into_owned(),
                Err(crate::net::BodyError::Transport(e)) => {
                    return Err(classify::transport(&self.cfg.name, &e))
                }
                Err(crate::net::BodyError::TooLarge(max)) => {
                    return Err(self.err(
                        ErrorClass::Transient,
                        Some(status),
                        format!("Salesforce answered more than {max} bytes; not read"),
                    ))
                }
            };
            debug!(crm = %self.cfg.name, %method, route = route_name(path), status, "crm call");
            let v: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
            let (code, message, fields) = first_error(&v);
            if status == 401 && !retried {
                retried = true;
                self.tokens.invalidate(&token.value).await;
                continue;
            }
            let limit = status == 403 && code == "REQUEST_LIMIT_EXCEEDED";
            let refusal =
                refusal_is_answer && (400..500).contains(&status) && status != 401 && !limit;
            if (200..300).contains(&status) || status == 300 || refusal {
                return Ok(Answer { status, body: v });
            }
            let class = if limit {
                ErrorClass::RateLimited
            } else if code == "UNABLE_TO_LOCK_ROW" {
                ErrorClass::Transient
            } else {
                classify::class_of(status, &[]).unwrap_or(ErrorClass::Permanent)
            };
            let text_message = if code.is_empty() {
                let t = text.trim();
                if t.is_empty() || v.is_null() {
                    format!("HTTP {status}")
                } else {
                    format!("HTTP {status}: {}", t.chars().take(300).collect::<String>())
                }
            } else {
                describe_error(&code, &message, &fields)
            };
            let mut e = self.err(class, Some(status), text_message);
            if !code.is_empty() {
                e.category = Some(code.clone());
            }
            if limit {
                let wait = classify::retry_after(&headers).unwrap_or(REQUEST_LIMIT_WAIT);
                e.retry_after = Some(wait);
                self.usage
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .spent_until = Some(Instant::now() + wait);
                warn!(crm = %self.cfg.name, "the org's daily API allocation is spent");
            } else if let Some(after) = classify::retry_after(&headers) {
                e.retry_after = Some(after);
            }
            return Err(e);
        }
    }

    /// The instance every call goes to: the token answer's `instance_url`.
    fn instance(&self, token: &crate::oauth::AccessToken) -> Result<String, CrmError> {
        let Some(base) = token.instance_url() else {
            return Err(self.err(
                ErrorClass::Permanent,
                None,
                "the token answer named no instance_url",
            ));
        };
        let ok = reqwest::Url::parse(base).ok().is_some_and(|u| {
            u.scheme() == "https" || (self.cfg.allow_internal && u.scheme() == "http")
        });
        if ok {
            Ok(base.trim_end_matches('/').to_string())
        } else {
            Err(self.err(
                ErrorClass::Permanent,
                None,
                "the token answer's instance_url is not an https URL",
            ))
        }
    }

    /// Every record a SOQL query answers (following `nextRecordsUrl`, at
    /// most 10 pages).
    pub(crate) async fn query(&self, soql: &str) -> Result<Vec<Value>, CrmError> {
        let mut out = Vec::new();
        let mut a = self
            .call(Method::GET, "/query", &[("q", soql.to_string())], None)
            .await?;
        for _ in 0..10 {
            out.extend(a.body["records"].as_array().cloned().unwrap_or_default());
            match a.body["nextRecordsUrl"].as_str() {
                Some(next)
                    if a.body["done"] == Value::Bool(false)
                        && next.starts_with("/services/data/") =>
                {
                    a = self.call(Method::GET, next, &[], None).await?;
                }
                _ => break,
            }
        }
        Ok(out)
    }
}

/// `api-usage=N/M` out of a `Sforce-Limit-Info` value.
fn parse_limit_info(info: &str) -> Option<(u64, u64)> {
    info.split(';').find_map(|part| {
        let (k, v) = part.trim().split_once('=')?;
        if k.trim() != "api-usage" {
            return None;
        }
        let (used, limit) = v.trim().split_once('/')?;
        Some((used.trim().parse().ok()?, limit.trim().parse().ok()?))
    })
}

/// The first error of a REST error array (`errorCode`) or a record's
/// `errors` (`statusCode`): code, message, fields.
pub(crate) fn first_error(v: &Value) -> (String, String, Vec<String>) {
    let e = match v {
        Value::Array(a) => a.first().cloned().unwrap_or(Value::Null),
        other => other["errors"][0].clone(),
    };
    let code = e["errorCode"]
        .as_str()
        .or_else(|| e["statusCode"].as_str())
        .unwrap_or_default()
        .to_string();
    let message = e["message"].as_str().unwrap_or_default().to_string();
    let fields = e["fields"]
        .as_array()
        .map(|f| {
            f.iter()
                .filter_map(|x| x.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    (code, message, fields)
}

/// `CODE: message (field X, Y)`.
pub(crate) fn describe_error(code: &str, message: &str, fields: &[String]) -> String {
    let mut m = format!(
        "{code}: {}",
        if message.is_empty() {
            "(no message)"
        } else {
            message
        }
    );
    if !fields.is_empty() {
        m.push_str(&format!(
            " (field{} {})",
            if fields.len() > 1 { "s" } else { "" },
            fields.join(", ")
        ));
    }
    m
}

/// `message` with every value of `values` that appears in it cut out:
/// Salesforce quotes the refused value ("First Name: data value too large:
/// <value> (max length=40)"), and errors go to logs and alerts.
pub(crate) fn redact(message: &str, values: &[String]) -> String {
    let mut out = message.to_string();
    let mut vs: Vec<&String> = values.iter().filter(|v| v.chars().count() >= 2).collect();
    vs.sort_by_key(|v| std::cmp::Reverse(v.len()));
    for v in vs {
        out = out.replace(v.as_str(), "…");
    }
    out
}

/// A SOQL string literal: `'…'` with `\` and `'` escaped ([V] SOQL quoted
/// string escape sequences).
pub(crate) fn soql_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('\'');
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\'' => out.push_str("\\'"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c => out.push(c),
        }
    }
    out.push('\'');
    out
}

/// A Salesforce record id (15 or 18 letters and digits), for paths and SOQL.
pub(crate) fn checked_id<'a>(crm: &str, id: &'a str) -> Result<&'a str, CrmError> {
    if (id.len() == 15 || id.len() == 18) && id.bytes().all(|b| b.is_ascii_alphanumeric()) {
        Ok(id)
    } else {
        Err(CrmError::new(
            crm,
            ErrorClass::Permanent,
            None,
            "a Salesforce record id is 15 or 18 letters and digits",
        ))
    }
}

/// Route shape for logs: emails, ids and queries cut out.
fn route_name(path: &str) -> String {
    let path = path.split('?').next().unwrap_or(path);
    path.split('/')
        .map(|seg| {
            let id_like = (seg.len() == 15 || seg.len() == 18)
                && seg.bytes().all(|b| b.is_ascii_alphanumeric())
                && seg.bytes().any(|b| b.is_ascii_digit());
            if seg.contains('@') || seg.contains('%') || id_like {
                "{value}"
            } else {
                seg
            }
        })
        .collect::<Vec<_>>()
        .join("/")
}

#[async_trait]
impl Crm for SalesforceCrm {
    fn name(&self) -> &str {
        &self.cfg.name
    }

    /// Every field a write may name (the adapter's own and the mapped ones),
    /// against a fresh `describe`: the hourly check and the doctor find a
    /// drift before a lead fails on it.
    async fn schema_findings(&self) -> Result<Vec<String>, CrmError> {
        let person = self.person()?;
        self.forget_describes().await;
        let fields = self.fields_of(person.name()).await?;
        let own: &[&str] = match person {
            Person::Lead => &[
                "Phone",
                "MobilePhone",
                "FirstName",
                "LastName",
                "Company",
                "Country",
                "State",
            ],
            Person::Contact => &[
                "Phone",
                "MobilePhone",
                "FirstName",
                "LastName",
                "MailingCountry",
                "MailingState",
            ],
        };
        let record = crate::mapped::every_field(own, self.cfg.mapping.as_ref());
        Ok(fields.findings(
            person.name(),
            &record,
            schema::Writing::Upsert,
            Some("Email"),
        ))
    }

    /// Phone and WhatsApp numbers by SOQL (the upsert matches the email itself).
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
            .unwrap_or_else(|| Err(self.no_answer("contact")))
    }

    async fn find_note(
        &self,
        contact_id: &str,
        event_id: &EventId,
    ) -> Result<Option<String>, CrmError> {
        let tasks = self.tasks_of(contact_id, true).await?;
        Ok(tasks
            .into_iter()
            .find(|(_, d)| lb_domain::note::carries_tag(d, event_id))
            .map(|(id, _)| id))
    }

    async fn add_note(&self, contact_id: &str, lead: &QueuedLead) -> Result<String, CrmError> {
        self.add_notes(&[(contact_id.to_string(), lead.clone())])
            .await
            .pop()
            .unwrap_or_else(|| Err(self.no_answer("task")))
    }

    /// The Opportunity of one of the contact's roles that carries the event's tag.
    async fn find_deal(
        &self,
        contact_id: &str,
        event_id: &EventId,
    ) -> Result<Option<String>, CrmError> {
        self.find_opportunity(contact_id, event_id).await
    }

    /// The Opportunity and its primary contact role, in one Composite transaction.
    async fn create_deal(&self, contact_id: &str, lead: &QueuedLead) -> Result<String, CrmError> {
        self.create_opportunity(contact_id, lead).await
    }

    /// One [`Crm::create_deal`] per item: each deal is its own Composite
    /// transaction (an Opportunity with its contact role, all or none), so a
    /// batch loops rather than sharing one request whose rollback would take
    /// the other deals with it.
    async fn create_deals(&self, items: &[(String, QueuedLead)]) -> Vec<Result<String, CrmError>> {
        let mut out = Vec::with_capacity(items.len());
        for (contact, lead) in items {
            out.push(self.create_opportunity(contact, lead).await);
        }
        out
    }

    /// A Contact connection, a stage among the org's active Opportunity
    /// stages, no pipeline: before the person and the Task are written.
    async fn check_deal(&self, lead: &QueuedLead) -> Result<(), CrmError> {
        self.check_opportunity(lead).await
    }

    /// Refreshes the token and reads the people and Task describes once.
    async fn warm_up(&self) {
        let person = match self.person() {
            Ok(p) => p.name(),
            Err(_) => return,
        };
        for o in [person, "Task"] {
            if let Err(e) = self.fields_of(o).await {
                warn!(crm = %self.cfg.name, class = e.class.as_str(), code = e.code.as_deref().unwrap_or(""), "could not read the Salesforce describe at start");
                return;
            }
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
        let bodies: Vec<(String, String, chrono::DateTime<Utc>)> = items
            .iter()
            .map(|(c, l)| (c.clone(), tasks::note_text(l), l.event.occurred_at))
            .collect();
        self.create_tasks(&bodies).await
    }

    fn take_quota_warning(&self) -> Option<QuotaUsage> {
        let mut u = self.usage.lock().unwrap_or_else(|p| p.into_inner());
        let today = Utc::now().date_naive();
        if u.limit == 0 || u.used * 100 < u.limit * WARN_AT_PERCENT || u.warned == Some(today) {
            return None;
        }
        u.warned = Some(today);
        Some(QuotaUsage {
            used: u.used,
            limit: u.limit,
            day: today.format("%Y-%m-%d").to_string(),
        })
    }

    fn keeps_conversations(&self) -> bool {
        true
    }

    fn note_max_chars(&self) -> usize {
        NOTE_MAX_CHARS
    }

    /// The person's Tasks carrying the conversation's tag, oldest first.
    async fn conversation_notes(
        &self,
        contact_id: &str,
        conversation_tag: &str,
    ) -> Result<Vec<(String, String)>, CrmError> {
        Ok(self
            .tasks_of(contact_id, false)
            .await?
            .into_iter()
            .filter(|(_, d)| lb_domain::conversation::is_note_of(d, conversation_tag))
            .collect())
    }

    async fn add_note_body(
        &self,
        contact_id: &str,
        body: &str,
        at: chrono::DateTime<Utc>,
    ) -> Result<String, CrmError> {
        self.create_tasks(&[(contact_id.to_string(), body.to_string(), at)])
            .await
            .pop()
            .unwrap_or_else(|| Err(self.no_answer("task")))
    }

    /// `PATCH /sobjects/Task/{id}` with the new Description (204).
    async fn update_note(&self, note_id: &str, body: &str) -> Result<(), CrmError> {
        let id = checked_id(&self.cfg.name, note_id)?;
        let payload = serde_json::json!({ "Description": body });
        self.call(
            Method::PATCH,
            &format!("/sobjects/Task/{id}"),
            &[],
            Some(&payload),
        )
        .await
        .map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limit_info_is_read() {
        assert_eq!(
            parse_limit_info("api-usage=10018/100000"),
            Some((10018, 100000))
        );
        assert_eq!(
            parse_limit_info("api-usage=25/5000; per-app-api-usage=17/250(appName=x)"),
            Some((25, 5000))
        );
        assert_eq!(parse_limit_info("nonsense"), None);
    }

    #[test]
    fn errors_are_read_from_both_shapes_and_values_cut_out() {
        let rest = serde_json::json!([{"message": "Session expired or invalid", "errorCode": "INVALID_SESSION_ID"}]);
        assert_eq!(first_error(&rest).0, "INVALID_SESSION_ID");
        let rec = serde_json::json!({"success": false, "errors": [{"statusCode": "STRING_TOO_LONG", "message": "First Name: data value too large: Bartholomew (max length=10)", "fields": ["FirstName"]}]});
        let (code, message, fields) = first_error(&rec);
        assert_eq!(
            (code.as_str(), fields.clone()),
            ("STRING_TOO_LONG", vec!["FirstName".to_string()])
        );
        let text = describe_error(&code, &redact(&message, &["Bartholomew".into()]), &fields);
        assert_eq!(text, "STRING_TOO_LONG: First Name: data value too large: … (max length=10) (field FirstName)");
    }

    #[test]
    fn soql_strings_are_escaped_and_ids_checked() {
        assert_eq!(soql_quote("o'brien\\x@y.io"), "'o\\'brien\\\\x@y.io'");
        assert!(checked_id("sf", "00Q5g00000ABCDEFGH").is_ok());
        assert!(checked_id("sf", "00Q5g00000ABCDE").is_ok());
        assert!(checked_id("sf", "x' OR Id != '").is_err());
        assert_eq!(
            route_name("/sobjects/Lead/Email/a@b.io"),
            "/sobjects/Lead/Email/{value}"
        );
        assert_eq!(
            route_name("/sobjects/Task/00T5g00000ABCDEFGH"),
            "/sobjects/Task/{value}"
        );
        assert_eq!(route_name("/composite/sobjects"), "/composite/sobjects");
    }
}
