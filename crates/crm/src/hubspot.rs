//! HubSpot CRM v3: contacts upserted by email in one call (batch upsert with
//! `idProperty=email`), phone-only contacts found through the ledger's memory or
//! search, notes and deals associated with the contact and tagged with the event id.
//!
//! The contact gets its identities (written by the adapter) plus what the
//! connection's [`Mapping`] renders; every property is checked against the
//! portal's schema before anything is written (module `schema`).

mod batch;
mod quota;
mod schema;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use lb_domain::conversation;
use lb_domain::mapping::{FieldPath, Mapping, ValueKind};
use lb_domain::{note, EventId, Phone, QueuedLead};
use lb_pipeline::secrets::{secret_values, CachedSecret};
use lb_pipeline::{ContactRef, ContactUpsert, ContactWrite, Crm, CrmError, ErrorClass};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use tracing::{debug, warn};

use crate::classify;
pub use schema::{render_schema_table, SchemaRow, SchemaStatus};
use schema::{ContactSchema, Origin, SchemaCache, Write};

pub use lb_domain::mapping::property_name;

/// The failure code of an event stopped by a schema check.
pub const SCHEMA_DRIFT: &str = "schema_drift";
/// HubSpot-defined association type ids.
const NOTE_TO_CONTACT: u32 = 202;
const DEAL_TO_CONTACT: u32 = 3;
const NOTE_MAX_CHARS: usize = 65_536;
/// HubSpot asks for at least 2 s before retrying a 423 (locked).
const LOCKED_RETRY: Duration = Duration::from_secs(2);

/// The identities the adapter writes itself (all an identity-only write sends:
/// what finds or creates the record), and the canonical field of each.
const IDENTITY_SOURCES: [(&str, FieldPath); 3] = [
    ("email", FieldPath::Email),
    ("phone", FieldPath::Phone),
    ("hs_whatsapp_phone_number", FieldPath::WhatsApp),
];

#[derive(Debug, Clone)]
pub struct HubSpotConfig {
    /// The connection's name: [`Crm::name`], the key of the worker's contact
    /// memory, the `crm` of ledger rows and alerts (`hubspot`).
    pub name: String,
    /// `https://api.hubapi.com`, or a simulator.
    pub base_url: String,
    pub timeout: Duration,
    /// The contact properties written besides the identities (`email`, `phone`,
    /// `hs_whatsapp_phone_number`, which the adapter always writes itself).
    pub mapping: Mapping,
    /// How long the contact schema read for drift checks is reused (0: read
    /// before every contact write).
    pub schema_ttl: Duration,
    pub default_deal_stage: String,
    pub default_deal_pipeline: String,
    /// A local run: `base_url` may resolve to this machine or a private network
    /// (the simulator); deployments reach public hosts only (`net`).
    pub allow_internal: bool,
    /// When the daily quota is spent, how often one call checks whether it is
    /// back (HubSpot resets it at midnight in the account's time zone, which
    /// leadbridge does not know): 1 h.
    pub daily_recheck: Duration,
}

/// How many times one call waits out a short (per-second) rate limit itself.
const SHORT_WAITS: u32 = 3;
/// The longest rate-limit wait taken inside a call; longer ones (the
/// ten-secondly window, the daily quota) hand the lead back to the queue.
const SHORT_WAIT_MAX: Duration = Duration::from_secs(2);

/// The largest answer read from HubSpot (a contact schema of a big portal is a
/// few hundred KB).
const MAX_ANSWER_BYTES: usize = 16 * 1024 * 1024;

impl Default for HubSpotConfig {
    fn default() -> Self {
        Self {
            name: "hubspot".into(),
            base_url: "https://api.hubapi.com".into(),
            timeout: Duration::from_secs(10),
            mapping: default_mapping(Some("leadbridge_source"), true, true),
            schema_ttl: Duration::from_secs(300),
            default_deal_stage: "appointmentscheduled".into(),
            default_deal_pipeline: "default".into(),
            allow_internal: false,
            daily_recheck: Duration::from_secs(3600),
        }
    }
}

/// The mapping of a connection without a config file: first and last name
/// (split from the full name when only that was sent), company, country,
/// state; `lead_source_property` (if any) gets the route's lead source, else
/// `chatbot:<bot_id>`; `context_properties` writes the conversation context to
/// the `leadbridge_*` custom properties (entry page, UTM, intent, score,
/// consent); `answer_properties` writes each answer to the property of its
/// snake-cased key.
pub fn default_mapping(
    lead_source_property: Option<&str>,
    context_properties: bool,
    answer_properties: bool,
) -> Mapping {
    let mut pairs: Vec<(&str, &str)> = vec![
        ("visitor.first_name", "firstname"),
        ("visitor.last_name", "lastname"),
        ("visitor.company", "company"),
        ("visitor.country", "country"),
        ("visitor.state", "state"),
    ];
    if let Some(p) = lead_source_property.filter(|p| !p.trim().is_empty()) {
        pairs.push(("lead_source", p));
    }
    if context_properties {
        pairs.extend([
            ("context.source_url", "leadbridge_entry_page"),
            ("context.utm_source", "leadbridge_utm_source"),
            ("context.utm_medium", "leadbridge_utm_medium"),
            ("context.utm_campaign", "leadbridge_utm_campaign"),
            ("context.utm_term", "leadbridge_utm_term"),
            ("context.utm_content", "leadbridge_utm_content"),
            ("intent.primary", "leadbridge_intent"),
            (
                "intent.qualification_score",
                "leadbridge_qualification_score",
            ),
            ("consent.given_at", "leadbridge_consent_given_at"),
            ("consent.text_version", "leadbridge_consent_text_version"),
            ("consent.purpose", "leadbridge_consent_purpose"),
            ("context.channel", "leadbridge_channel"),
            ("context.ad_click_id", "leadbridge_ad_click_id"),
            ("context.ad_id", "leadbridge_ad_id"),
            ("context.ad_headline", "leadbridge_ad_headline"),
            ("last_inbound_at", "leadbridge_last_inbound_at"),
        ]);
    }
    if answer_properties {
        pairs.push(("answers.*", "{key}"));
    }
    Mapping::from_pairs(&pairs)
}

pub struct HubSpotCrm {
    http: reqwest::Client,
    cfg: HubSpotConfig,
    token: Arc<CachedSecret>,
    schema: SchemaCache,
    quota: quota::DailyQuota,
    /// The deal pipelines (`GET /crm/v3/pipelines/deals`), read when a deal is
    /// first asked for and kept for `schema_ttl`.
    pipelines: tokio::sync::Mutex<Option<(Instant, Value)>>,
    /// The shared rate limiter (off unless the worker wires one).
    throttle: lb_pipeline::throttle::Throttle,
}

impl HubSpotCrm {
    /// Counts every request in the connection's shared rate limit.
    pub fn with_throttle(mut self, throttle: lb_pipeline::throttle::Throttle) -> Self {
        self.throttle = throttle;
        self
    }

    /// `token` is the secret holding the private-app token (plain, or JSON `{"token": "…"}`).
    pub fn new(cfg: HubSpotConfig, token: Arc<CachedSecret>) -> Result<Self, reqwest::Error> {
        let http = crate::net::client(cfg.allow_internal, cfg.timeout)?;
        Ok(Self {
            throttle: lb_pipeline::throttle::Throttle::off(),
            http,
            quota: quota::DailyQuota::new(cfg.daily_recheck),
            cfg,
            token,
            schema: SchemaCache::default(),
            pipelines: tokio::sync::Mutex::new(None),
        })
    }

    fn err(&self, class: ErrorClass, status: Option<u16>, message: impl Into<String>) -> CrmError {
        CrmError::new(self.cfg.name.clone(), class, status, message)
    }

    async fn bearer(&self) -> Result<String, CrmError> {
        let raw = self.token.get().await.map_err(|e| {
            self.err(
                ErrorClass::Transient,
                None,
                format!("could not read the HubSpot token secret: {e}"),
            )
        })?;
        secret_values(raw.expose(), "token")
            .into_iter()
            .next()
            .ok_or_else(|| {
                self.err(
                    ErrorClass::Permanent,
                    None,
                    format!(
                        "secret {} holds no HubSpot token (expected a string or {{\"token\": …}})",
                        self.token.id()
                    ),
                )
            })
    }

    /// Sends one request; a 401 re-reads the token secret once (it may have been
    /// rotated) before it counts as permanent. Returns status and JSON body of a 2xx.
    async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<(StatusCode, Value), CrmError> {
        let url = format!("{}{}", self.cfg.base_url.trim_end_matches('/'), path);
        if let Some(wait) = self.quota.wait(chrono::Utc::now()) {
            let mut e = self.err(
                ErrorClass::RateLimited,
                Some(429),
                "HubSpot's daily API quota is spent; waiting for it to reset",
            );
            e.retry_after = Some(wait);
            return Err(e);
        }
        let mut short_waits = 0;
        let mut attempt = 0;
        loop {
            let token = self.bearer().await?;
            let mut req = self.http.request(method.clone(), &url).bearer_auth(token);
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
            self.quota.observe(&headers);
            if let Some(limit) = announced_limit(&headers) {
                self.throttle.learn(limit);
            }
            let text = match crate::net::read_capped(resp, MAX_ANSWER_BYTES).await {
                Ok(b) => String::from_utf8_lossy(&b).into_owned(),
                Err(crate::net::BodyError::Transport(e)) => {
                    return Err(classify::transport(&self.cfg.name, &e))
                }
                Err(crate::net::BodyError::TooLarge(max)) => {
                    return Err(self.err(
                        ErrorClass::Transient,
                        Some(status.as_u16()),
                        format!("HubSpot answered more than {max} bytes; not read"),
                    ))
                }
            };
            debug!(crm = %self.cfg.name, %method, route = route_name(path), status = status.as_u16(), "crm call");
            let value: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
            if status == StatusCode::UNAUTHORIZED && attempt == 0 {
                attempt += 1;
                self.token.invalidate().await;
                continue;
            }
            // A per-second limit (search: 5/s) frees up within a second: waiting
            // here is cheaper than handing the whole lead back to the queue.
            if status == StatusCode::TOO_MANY_REQUESTS
                && short_waits < SHORT_WAITS
                && !quota::DailyQuota::is_daily(&value, &headers)
            {
                let wait =
                    classify::retry_after(&headers).unwrap_or_else(|| rate_limit_reset(&headers));
                if wait <= SHORT_WAIT_MAX {
                    short_waits += 1;
                    debug!(crm = %self.cfg.name, wait_ms = wait.as_millis() as u64, "short rate limit; waiting in the call");
                    tokio::time::sleep(wait).await;
                    continue;
                }
            }
            let Some(class) = classify::class_of(status.as_u16(), &[423, 477]) else {
                return Ok((status, value));
            };
            let mut e = self.err(
                class,
                Some(status.as_u16()),
                error_message(status, &value, &text),
            );
            e.category = value
                .get("category")
                .and_then(Value::as_str)
                .map(str::to_string);
            e.retry_after = classify::retry_after(&headers).or(match status.as_u16() {
                429 => Some(rate_limit_reset(&headers)),
                423 => Some(LOCKED_RETRY),
                _ => None,
            });
            if status == StatusCode::TOO_MANY_REQUESTS
                && quota::DailyQuota::is_daily(&value, &headers)
            {
                warn!(crm = %self.cfg.name, "HubSpot's daily API quota is spent; leads wait for it");
                e.retry_after = Some(self.quota.exhaust(chrono::Utc::now()));
            }
            return Err(e);
        }
    }

    /// What the event writes to the contact, with the source of each value:
    /// the mapping's properties (unless identity-only), then the identities.
    fn contact_writes(&self, lead: &QueuedLead, write: ContactWrite) -> Vec<Write> {
        let e = &lead.event;
        let mut out: BTreeMap<String, Write> = BTreeMap::new();
        if write == ContactWrite::Full {
            let targets = self.cfg.mapping.event_targets(e);
            for (property, value) in self.cfg.mapping.render_lead(lead) {
                // The last target of a property is the one whose value the render kept.
                let origin = targets
                    .iter()
                    .rev()
                    .find(|t| t.property == property)
                    .map(|t| Origin::from(t.source.clone()))
                    .unwrap_or(Origin::Field(FieldPath::AllAnswers, ValueKind::Text));
                out.insert(
                    property.clone(),
                    Write {
                        property,
                        origin,
                        value,
                    },
                );
            }
        }
        for (property, path) in IDENTITY_SOURCES {
            if let Some(value) = path.value(e, None, false) {
                out.insert(
                    property.to_string(),
                    Write {
                        property: property.to_string(),
                        origin: Origin::Field(path.clone(), path.kind()),
                        value,
                    },
                );
            }
        }
        out.into_values().collect()
    }

    /// The contact schema, from the cache while it is younger than `schema_ttl`.
    async fn contact_schema(&self, force: bool) -> Result<Arc<ContactSchema>, CrmError> {
        self.schema
            .get_or_load(self.cfg.schema_ttl, Instant::now(), force, || async {
                let (_, v) = self
                    .call(Method::GET, "/crm/v3/properties/contacts", None)
                    .await?;
                ContactSchema::from_json(&v).ok_or_else(|| {
                    self.err(
                        ErrorClass::Transient,
                        Some(200),
                        "the properties API answered without results",
                    )
                })
            })
            .await
    }

    fn drift(&self, findings: &[String]) -> CrmError {
        warn!(crm = %self.cfg.name, findings = findings.len(), "schema drift: contact not written");
        CrmError::refused(&self.cfg.name, SCHEMA_DRIFT, findings.join("; "))
    }

    /// Every property the mapping writes (plus the identities), checked against
    /// the contact schema as it is now (read afresh, and cached): kinds for
    /// fields, values for statics; `answers.*` gets one row (checked per event).
    pub async fn schema_report(&self) -> Result<Vec<SchemaRow>, CrmError> {
        let schema = self.contact_schema(true).await?;
        let mut targets: Vec<(String, Origin)> = IDENTITY_SOURCES
            .iter()
            .map(|(p, path)| (p.to_string(), Origin::Field(path.clone(), path.kind())))
            .collect();
        targets.extend(
            self.cfg
                .mapping
                .targets()
                .into_iter()
                .map(|t| (t.property, Origin::from(t.source))),
        );
        let patterns: Vec<String> = self
            .cfg
            .mapping
            .fields
            .iter()
            .filter(|m| m.source == FieldPath::AllAnswers)
            .map(|m| m.target.clone())
            .collect();
        Ok(schema::report(&schema, &targets, &patterns))
    }

    /// Writes `props` to the record the identity rule chose (`known_id`), or
    /// finds-or-creates one: upsert by email, else create.
    async fn write_contact(
        &self,
        lead: &QueuedLead,
        known_id: Option<&str>,
        props: &BTreeMap<String, String>,
    ) -> Result<ContactRef, CrmError> {
        if let Some(id) = known_id {
            if let Some(c) = self.patch_contact(id, props).await? {
                return Ok(c);
            }
            // 404: the record is gone (deleted, or merged away); write as if unknown.
            warn!(crm = %self.cfg.name, "the remembered contact no longer exists; finding or creating it again");
        }
        match lead.event.visitor.email.as_ref() {
            Some(email) => self.upsert_by_email(email.as_str(), lead, props).await,
            None => {
                let mut props = props.clone();
                name_a_nameless_contact(&mut props);
                self.create_contact(&props).await
            }
        }
    }

    async fn upsert_by_email(
        &self,
        email: &str,
        lead: &QueuedLead,
        props: &BTreeMap<String, String>,
    ) -> Result<ContactRef, CrmError> {
        let one = batch::Prepared {
            at: 0,
            lead,
            known_id: None,
            props: props.clone(),
        };
        let answer = self
            .upsert_by_emails(&[(one, email.to_string())])
            .await
            .and_then(|mut answers| answers.pop());
        match answer {
            Some(a) => a,
            None => Err(self.err(ErrorClass::Transient, None, "batch upsert answered nothing")),
        }
    }

    async fn patch_contact(
        &self,
        id: &str,
        props: &BTreeMap<String, String>,
    ) -> Result<Option<ContactRef>, CrmError> {
        let body = json!({"properties": props});
        match self
            .call(
                Method::PATCH,
                &format!("/crm/v3/objects/contacts/{id}"),
                Some(&body),
            )
            .await
        {
            Ok(_) => Ok(Some(ContactRef {
                id: id.to_string(),
                created: false,
            })),
            Err(e) if e.http_status == Some(404) => Ok(None),
            // Another contact already has the email (HubSpot names it in the 409 text).
            Err(mut e) if e.http_status == Some(409) => {
                e.taken_by = existing_id(&e.message).filter(|other| other != id);
                Err(e)
            }
            Err(e) => Err(e),
        }
    }

    async fn create_contact(
        &self,
        props: &BTreeMap<String, String>,
    ) -> Result<ContactRef, CrmError> {
        let body = json!({"properties": props});
        match self
            .call(Method::POST, "/crm/v3/objects/contacts", Some(&body))
            .await
        {
            Ok((_, v)) => {
                let id = id_of(&v).ok_or_else(|| {
                    self.err(
                        ErrorClass::Transient,
                        Some(201),
                        "create answered without an id",
                    )
                })?;
                Ok(ContactRef { id, created: true })
            }
            // HubSpot names the existing record in its 409 text.
            Err(e) if e.http_status == Some(409) => match existing_id(&e.message) {
                Some(id) => self.patch_contact(&id, props).await?.ok_or(e),
                None => Err(e),
            },
            Err(e) => Err(e),
        }
    }

    /// Every id of the contact's associated `kind` (notes, deals), every page.
    /// The v3 object read lists at most 100 associations (HubSpot changelog,
    /// 2021-01-18: "if your request returns more than 100 associations, you
    /// will need to use the value of the after field"); the v4 list pages by
    /// 500 with `after` (`GET /crm/v4/objects/{type}/{id}/associations/{toType}`).
    async fn associated_ids(&self, contact_id: &str, kind: &str) -> Result<Vec<String>, CrmError> {
        let mut ids: Vec<String> = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let mut path =
                format!("/crm/v4/objects/contacts/{contact_id}/associations/{kind}?limit=500");
            if let Some(a) = &after {
                path.push_str(&format!(
                    "&after={}",
                    form_urlencoded::byte_serialize(a.as_bytes()).collect::<String>()
                ));
            }
            let (_, v) = self.call(Method::GET, &path, None).await?;
            for r in v["results"].as_array().into_iter().flatten() {
                let id = match &r["toObjectId"] {
                    Value::Number(n) => n.to_string(),
                    Value::String(s) if !s.is_empty() => s.clone(),
                    _ => continue,
                };
                if !ids.contains(&id) {
                    ids.push(id);
                }
            }
            match v["paging"]["next"]["after"].as_str() {
                Some(a) if !a.is_empty() && after.as_deref() != Some(a) => {
                    after = Some(a.to_string())
                }
                _ => return Ok(ids),
            }
        }
    }

    /// The contact's associated `kind` (notes, deals) whose `property` carries
    /// exactly this event's tag (the tag of `evt_1` is not `evt_10`'s).
    async fn find_tagged(
        &self,
        contact_id: &str,
        kind: &str,
        property: &str,
        event_id: &EventId,
    ) -> Result<Option<String>, CrmError> {
        let ids = self.associated_ids(contact_id, kind).await?;
        // Newest first: a retry looks for what it wrote moments ago.
        for chunk in ids.rchunks(100) {
            let inputs: Vec<Value> = chunk.iter().map(|id| json!({"id": id})).collect();
            let body = json!({"inputs": inputs, "properties": [property]});
            let (_, v) = self
                .call(
                    Method::POST,
                    &format!("/crm/v3/objects/{kind}/batch/read"),
                    Some(&body),
                )
                .await?;
            if let Some(found) = v["results"].as_array().and_then(|r| {
                r.iter().find(|o| {
                    o["properties"][property]
                        .as_str()
                        .is_some_and(|b| note::carries_tag(b, event_id))
                })
            }) {
                return Ok(id_of(found));
            }
        }
        Ok(None)
    }
}

#[async_trait]
impl Crm for HubSpotCrm {
    fn name(&self) -> &str {
        &self.cfg.name
    }

    /// Phone and WhatsApp numbers by search (an upsert by email matches the email itself).
    async fn find_contacts(&self, lead: &QueuedLead) -> Result<Vec<(usize, String)>, CrmError> {
        match self.find_batch(std::slice::from_ref(lead)).await.pop() {
            Some(a) => a,
            None => Ok(Vec::new()),
        }
    }

    /// Checks every property the event writes against the contact schema
    /// first: a missing, read-only, mistyped or off-option property fails the
    /// event (`schema_drift`) before anything is written.
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
        match self.upsert_batch(std::slice::from_ref(&item)).await.pop() {
            Some(a) => a,
            None => Err(self.err(ErrorClass::Transient, None, "no answer")),
        }
    }

    fn batch_limit(&self) -> usize {
        batch::BATCH_LIMIT
    }

    /// The event's pipeline (its own, else the connection's default) and stage
    /// must be one of the portal's: checked against the pipelines API before
    /// the contact is written. leadbridge creates one deal per event and never
    /// moves an existing deal, so no deal goes backwards.
    async fn check_deal(&self, lead: &QueuedLead) -> Result<(), CrmError> {
        let t = &lead.event.crm_target;
        let pipeline = t
            .deal_pipeline
            .clone()
            .unwrap_or_else(|| self.cfg.default_deal_pipeline.clone());
        let stage = t
            .deal_stage
            .clone()
            .unwrap_or_else(|| self.cfg.default_deal_stage.clone());
        let pipelines = {
            let mut cached = self.pipelines.lock().await;
            match cached.as_ref() {
                Some((at, v)) if at.elapsed() < self.cfg.schema_ttl => v.clone(),
                _ => {
                    let (_, v) = self
                        .call(Method::GET, "/crm/v3/pipelines/deals", None)
                        .await?;
                    *cached = Some((Instant::now(), v.clone()));
                    v
                }
            }
        };
        let all = pipelines["results"].as_array().cloned().unwrap_or_default();
        let refuse = |message: String| {
            CrmError::refused(&self.cfg.name, crate::deal::BAD_DEAL_STAGE, message)
        };
        let Some(p) = all
            .iter()
            .find(|p| p["id"].as_str() == Some(pipeline.as_str()))
        else {
            let known: Vec<&str> = all.iter().filter_map(|p| p["id"].as_str()).collect();
            return Err(refuse(format!(
                "deal pipeline {pipeline:?} does not exist in HubSpot (pipelines: {}); nothing was written",
                known.join(", ")
            )));
        };
        let stages: Vec<&str> = p["stages"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|s| s["archived"] != true)
            .filter_map(|s| s["id"].as_str())
            .collect();
        if stages.contains(&stage.as_str()) {
            Ok(())
        } else {
            Err(refuse(format!(
                "deal stage {stage:?} is not a stage of pipeline {pipeline:?} (stages: {}); nothing was written",
                stages.join(", ")
            )))
        }
    }

    async fn schema_findings(&self) -> Result<Vec<String>, CrmError> {
        Ok(self
            .schema_report()
            .await?
            .into_iter()
            .filter(|r| r.status != SchemaStatus::Ok)
            .map(|r| format!("{} ({}): {}", r.property, r.source, r.detail))
            .collect())
    }

    /// Reads the token and the contact schema (one TLS handshake to HubSpot).
    async fn warm_up(&self) {
        if let Err(e) = self.contact_schema(false).await {
            warn!(crm = %self.cfg.name, error = %e, "could not read the contact schema at start");
        }
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
        if items.len() > 1 {
            let inputs = items
                .iter()
                .map(|(c, l)| (l.event.event_id.clone(), self.note_input(c, l)))
                .collect();
            if let Some(ids) = self.create_batch("notes", "hs_note_body", inputs).await {
                return ids;
            }
        }
        let mut out = Vec::with_capacity(items.len());
        for (c, l) in items {
            out.push(self.add_note(c, l).await);
        }
        out
    }

    async fn create_deals(&self, items: &[(String, QueuedLead)]) -> Vec<Result<String, CrmError>> {
        if items.len() > 1 {
            let inputs = items
                .iter()
                .map(|(c, l)| (l.event.event_id.clone(), self.deal_input(c, l)))
                .collect();
            if let Some(ids) = self.create_batch("deals", "description", inputs).await {
                return ids;
            }
        }
        let mut out = Vec::with_capacity(items.len());
        for (c, l) in items {
            out.push(self.create_deal(c, l).await);
        }
        out
    }

    async fn find_note(
        &self,
        contact_id: &str,
        event_id: &EventId,
    ) -> Result<Option<String>, CrmError> {
        self.find_tagged(contact_id, "notes", "hs_note_body", event_id)
            .await
    }

    async fn add_note(&self, contact_id: &str, lead: &QueuedLead) -> Result<String, CrmError> {
        let body = self.note_input(contact_id, lead);
        let (_, v) = self
            .call(Method::POST, "/crm/v3/objects/notes", Some(&body))
            .await?;
        id_of(&v).ok_or_else(|| {
            self.err(
                ErrorClass::Transient,
                Some(201),
                "note created without an id",
            )
        })
    }

    async fn find_deal(
        &self,
        contact_id: &str,
        event_id: &EventId,
    ) -> Result<Option<String>, CrmError> {
        self.find_tagged(contact_id, "deals", "description", event_id)
            .await
    }

    fn keeps_conversations(&self) -> bool {
        true
    }

    fn take_quota_warning(&self) -> Option<lb_pipeline::QuotaUsage> {
        self.quota.take_warning(chrono::Utc::now())
    }

    fn note_max_chars(&self) -> usize {
        NOTE_MAX_CHARS
    }

    /// The contact's notes (v4 association list), read 100 at a time, that
    /// carry the conversation's tag, in association order (oldest first).
    async fn conversation_notes(
        &self,
        contact_id: &str,
        conversation_tag: &str,
    ) -> Result<Vec<(String, String)>, CrmError> {
        let ids = self.associated_ids(contact_id, "notes").await?;
        let mut out = Vec::new();
        for chunk in ids.chunks(100) {
            let inputs: Vec<Value> = chunk.iter().map(|id| json!({"id": id})).collect();
            let body = json!({"inputs": inputs, "properties": ["hs_note_body"]});
            let (_, v) = self
                .call(
                    Method::POST,
                    "/crm/v3/objects/notes/batch/read",
                    Some(&body),
                )
                .await?;
            let results = v["results"].as_array().cloned().unwrap_or_default();
            // The batch answer's order is not the input's: put it back in association order.
            for id in chunk {
                let found = results
                    .iter()
                    .find(|o| id_of(o).as_deref() == Some(id.as_str()));
                if let Some(b) = found.and_then(|o| o["properties"]["hs_note_body"].as_str()) {
                    if conversation::is_note_of(b, conversation_tag) {
                        out.push((id.clone(), b.to_string()));
                    }
                }
            }
        }
        Ok(out)
    }

    async fn add_note_body(
        &self,
        contact_id: &str,
        body_html: &str,
        at: chrono::DateTime<chrono::Utc>,
    ) -> Result<String, CrmError> {
        let body = json!({
            "properties": {
                "hs_timestamp": at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
                "hs_note_body": body_html,
            },
            "associations": [association(contact_id, NOTE_TO_CONTACT)],
        });
        let (_, v) = self
            .call(Method::POST, "/crm/v3/objects/notes", Some(&body))
            .await?;
        id_of(&v).ok_or_else(|| {
            self.err(
                ErrorClass::Transient,
                Some(201),
                "note created without an id",
            )
        })
    }

    async fn update_note(&self, note_id: &str, body_html: &str) -> Result<(), CrmError> {
        let body = json!({"properties": {"hs_note_body": body_html}});
        self.call(
            Method::PATCH,
            &format!("/crm/v3/objects/notes/{note_id}"),
            Some(&body),
        )
        .await?;
        Ok(())
    }

    async fn create_deal(&self, contact_id: &str, lead: &QueuedLead) -> Result<String, CrmError> {
        let body = self.deal_input(contact_id, lead);
        let (_, v) = self
            .call(Method::POST, "/crm/v3/objects/deals", Some(&body))
            .await?;
        id_of(&v).ok_or_else(|| {
            self.err(
                ErrorClass::Transient,
                Some(201),
                "deal created without an id",
            )
        })
    }
}

/// HubSpot creates a contact only with an email, a first name or a last name
/// ("When creating a new contact, it's required to include at least one of the
/// following properties: email, firstname, lastname", contacts guide). A lead
/// known only by its phone or WhatsApp number is named after the number, as
/// messaging inboxes show it; a later event with a name replaces it.
fn name_a_nameless_contact(props: &mut BTreeMap<String, String>) {
    if ["email", "firstname", "lastname"]
        .iter()
        .any(|p| props.get(*p).is_some_and(|v| !v.trim().is_empty()))
    {
        return;
    }
    let number = props
        .get("phone")
        .or_else(|| props.get("hs_whatsapp_phone_number"))
        .cloned();
    if let Some(n) = number {
        props.insert("firstname".into(), n);
    }
}

/// Whether a stored phone value is `number`: the same E.164 number when it is
/// written with its country code, else the same national number (with or
/// without a trunk `0`).
fn same_number(stored: &str, number: &Phone) -> bool {
    let digits: String = stored.chars().filter(char::is_ascii_digit).collect();
    let national = number.national_number();
    if stored.trim_start().starts_with('+') {
        return Phone::parse(stored, None).is_ok_and(|p| p == *number);
    }
    let full = number
        .country_code()
        .map(|cc| format!("{cc}{national}"))
        .unwrap_or_default();
    digits == national || digits == format!("0{national}") || digits == full
}

fn association(to_id: &str, type_id: u32) -> Value {
    json!({"to": {"id": to_id}, "types": [{"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": type_id}]})
}

fn id_of(v: &Value) -> Option<String> {
    match &v["id"] {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// `Contact already exists. Existing ID: 512` → `512` (undocumented, but what clients parse).
pub fn existing_id(message: &str) -> Option<String> {
    let re = regex::Regex::new(r"Existing ID:\s*(\d+)").expect("static regex");
    re.captures(message).map(|c| c[1].to_string())
}

/// HubSpot's own words: `message`, plus the messages of `errors[]` when they add detail.
fn error_message(status: StatusCode, v: &Value, raw: &str) -> String {
    let mut msg = v["message"]
        .as_str()
        .map(str::to_string)
        .unwrap_or_else(|| {
            let t = raw.trim();
            if t.is_empty() {
                format!("HTTP {}", status.as_u16())
            } else {
                format!(
                    "HTTP {}: {}",
                    status.as_u16(),
                    t.chars().take(500).collect::<String>()
                )
            }
        });
    if let Some(errs) = v["errors"].as_array() {
        let details: Vec<&str> = errs
            .iter()
            .filter_map(|e| e["message"].as_str())
            .filter(|m| !msg.contains(m))
            .collect();
        if !details.is_empty() {
            msg = format!("{msg} ({})", details.join("; "));
        }
        // A 403 MISSING_SCOPES names the scopes in `context.requiredGranularScopes`:
        // say which one the token lacks, so the fix is one step.
        let scopes: Vec<&str> = errs
            .iter()
            .filter_map(|e| e["context"]["requiredGranularScopes"].as_array())
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        if !scopes.is_empty() {
            msg = format!("{msg} [token needs one of: {}]", scopes.join(", "));
        }
    }
    msg
}

/// When the rolling window frees a slot again: the interval header, else 10 s.
/// The search endpoint's 429 carries no headers; one second covers its per-second limit.
/// The burst limit HubSpot announces on its answers (`X-HubSpot-RateLimit-Max`
/// calls per `-Interval-Milliseconds`; search answers carry neither,
/// hubspot-fidelity J4), for the shared rate limiter.
fn announced_limit(h: &reqwest::header::HeaderMap) -> Option<lb_config::CallLimit> {
    let max = quota::header_u64(h, "x-hubspot-ratelimit-max")?;
    let ms = quota::header_u64(h, "x-hubspot-ratelimit-interval-milliseconds")?;
    (max > 0 && ms > 0).then(|| lb_config::CallLimit {
        requests: max.min(u32::MAX as u64) as u32,
        per: Duration::from_millis(ms.min(3_600_000)),
    })
}

fn rate_limit_reset(h: &reqwest::header::HeaderMap) -> Duration {
    let get = |k: &str| quota::header_u64(h, k);
    match get("x-hubspot-ratelimit-interval-milliseconds") {
        Some(ms) => Duration::from_millis(ms.min(60_000)),
        None if get("x-hubspot-ratelimit-max").is_none() => Duration::from_secs(1),
        None => Duration::from_secs(10),
    }
}

/// Whether HubSpot refused a contact write over a property it does not have
/// or a value the property does not take: the cached schema may be stale.
fn rejected_for_schema(e: &CrmError) -> bool {
    const MARKERS: [&str; 8] = [
        "PROPERTY_DOESNT_EXIST",
        "does not exist",
        "INVALID_OPTION",
        "allowed options",
        "READ_ONLY_VALUE",
        "read only property",
        "INVALID_FLOAT",
        "INVALID_BOOLEAN",
    ];
    e.class == ErrorClass::Permanent
        && matches!(e.http_status, Some(400 | 207))
        && MARKERS.iter().any(|m| e.message.contains(m))
}

/// Route shape for logs, with ids and emails cut out (never log an email).
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_burst_limit_hubspot_announces_is_read_for_the_shared_limiter() {
        let mut h = reqwest::header::HeaderMap::new();
        assert_eq!(announced_limit(&h), None, "search answers carry none");
        h.insert("x-hubspot-ratelimit-max", "190".parse().unwrap());
        h.insert(
            "x-hubspot-ratelimit-interval-milliseconds",
            "10000".parse().unwrap(),
        );
        assert_eq!(
            announced_limit(&h),
            Some(lb_config::CallLimit {
                requests: 190,
                per: Duration::from_secs(10)
            })
        );
        h.insert("x-hubspot-ratelimit-max", "0".parse().unwrap());
        assert_eq!(announced_limit(&h), None);
    }
    use lb_pipeline::{PortError, SecretStore};

    struct NoSecrets;

    #[async_trait]
    impl SecretStore for NoSecrets {
        async fn get_secret(&self, _: &str) -> Result<String, PortError> {
            Err(PortError::new("no secrets in unit tests"))
        }
    }

    fn adapter(cfg: HubSpotConfig) -> HubSpotCrm {
        let token = Arc::new(CachedSecret::new(
            Arc::new(NoSecrets),
            "t",
            Duration::from_secs(1),
        ));
        HubSpotCrm::new(cfg, token).expect("client")
    }

    fn rich_lead(lead_source: Option<&str>) -> QueuedLead {
        let event: lb_domain::LeadEvent = serde_json::from_value(json!({
            "event_id": "evt_map_1",
            "event_type": "lead.created",
            "occurred_at": "2026-05-04T11:23:45Z",
            "bot_id": "bot_acme",
            "visitor": {"email": "priya@acme.in", "phone": "+14155552671", "wa_id": "14155552671",
                        "name": "Priya Anand Sharma", "company": "Acme", "country": "IN", "state": "IN-MH"},
            "context": {"source_url": "https://acme.in/pricing", "referrer": "https://google.com",
                        "utm_source": "google", "utm_medium": "cpc", "utm_campaign": "spring",
                        "utm_term": "crm", "utm_content": "ad1", "session_id": "s1"},
            "intent": {"primary": "pricing", "labels": ["a", "b"], "qualification_score": 80},
            "answers": {"Company Size": "51-200", "budget": "10k", "empty": ""},
            "consent": {"given_at": "2026-05-04T11:20:00Z", "text_version": "v3", "purpose": "sales"},
            "transcript": {"summary": "Asked about pricing", "messages": 12}
        }))
        .expect("event");
        let lead = QueuedLead::new(event, chrono::Utc::now()).expect("lead");
        match lead_source {
            None => lead,
            Some(src) => lead.for_delivery(lb_domain::Delivery {
                connection: "hs2".into(),
                lead_source: Some(src.into()),
                object: "contact".into(),
                split_name: None,
            }),
        }
    }

    fn written(
        crm: &HubSpotCrm,
        lead: &QueuedLead,
        write: ContactWrite,
    ) -> BTreeMap<String, String> {
        crm.contact_writes(lead, write)
            .into_iter()
            .map(|w| (w.property, w.value))
            .collect()
    }

    #[test]
    fn the_default_mapping_writes_what_the_adapter_always_wrote_plus_state() {
        let crm = adapter(HubSpotConfig::default());
        let got = written(&crm, &rich_lead(None), ContactWrite::Full);
        let want: BTreeMap<String, String> = [
            ("email", "priya@acme.in"),
            ("phone", "+14155552671"),
            ("hs_whatsapp_phone_number", "+14155552671"),
            ("firstname", "Priya Anand"),
            ("lastname", "Sharma"),
            ("company", "Acme"),
            ("country", "IN"),
            ("state", "IN-MH"),
            ("leadbridge_source", "chatbot:bot_acme"),
            ("leadbridge_entry_page", "https://acme.in/pricing"),
            ("leadbridge_utm_source", "google"),
            ("leadbridge_utm_medium", "cpc"),
            ("leadbridge_utm_campaign", "spring"),
            ("leadbridge_utm_term", "crm"),
            ("leadbridge_utm_content", "ad1"),
            ("leadbridge_intent", "pricing"),
            ("leadbridge_qualification_score", "80"),
            ("leadbridge_consent_given_at", "2026-05-04T11:20:00Z"),
            ("leadbridge_consent_text_version", "v3"),
            ("leadbridge_consent_purpose", "sales"),
            ("company_size", "51-200"),
            ("budget", "10k"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        assert_eq!(got, want);

        let routed = written(&crm, &rich_lead(Some("Website chat")), ContactWrite::Full);
        assert_eq!(routed["leadbridge_source"], "Website chat");

        let ids = written(&crm, &rich_lead(None), ContactWrite::IdentityOnly);
        assert_eq!(
            ids.keys().collect::<Vec<_>>(),
            ["email", "hs_whatsapp_phone_number", "phone"]
        );
    }

    #[test]
    fn the_default_mapping_switches_drop_their_properties() {
        let bare = adapter(HubSpotConfig {
            mapping: default_mapping(None, false, false),
            ..HubSpotConfig::default()
        });
        let got = written(&bare, &rich_lead(None), ContactWrite::Full);
        assert_eq!(
            got.keys().collect::<Vec<_>>(),
            [
                "company",
                "country",
                "email",
                "firstname",
                "hs_whatsapp_phone_number",
                "lastname",
                "phone",
                "state"
            ]
        );
        assert_eq!(
            default_mapping(Some(" "), false, false),
            default_mapping(None, false, false)
        );
    }

    #[test]
    fn the_connection_name_is_the_crm_name() {
        let crm = adapter(HubSpotConfig {
            name: "hubspot_eu".into(),
            ..HubSpotConfig::default()
        });
        assert_eq!(crm.name(), "hubspot_eu");
        assert_eq!(crm.drift(&["x".into()]).reason().code, "schema_drift");
        assert_eq!(crm.drift(&["x".into()]).crm, "hubspot_eu");
    }

    #[test]
    fn validation_errors_about_the_schema_trigger_a_reread() {
        let e = |status, msg: &str| CrmError {
            crm: "hubspot".into(),
            class: ErrorClass::Permanent,
            http_status: Some(status),
            category: Some("VALIDATION_ERROR".into()),
            message: msg.into(),
            retry_after: None,
            code: None,
            taken_by: None,
        };
        assert!(rejected_for_schema(&e(
            207,
            "Property \"budget\" does not exist"
        )));
        assert!(rejected_for_schema(&e(
            400,
            "Property values were not valid: [{\"error\":\"INVALID_OPTION\"}]"
        )));
        assert!(!rejected_for_schema(&e(
            401,
            "Authentication credentials not found"
        )));
        assert!(!rejected_for_schema(&e(400, "Email address x is invalid")));
    }

    #[test]
    fn existing_id_is_read_from_the_409_text() {
        assert_eq!(
            existing_id("Contact already exists. Existing ID: 512").as_deref(),
            Some("512")
        );
        assert_eq!(existing_id("Conflict"), None);
    }

    #[test]
    fn answer_keys_become_hubspot_property_names() {
        assert_eq!(property_name("Company Size"), "company_size");
        assert_eq!(property_name(" budget "), "budget");
        assert_eq!(property_name("Favourite-Colour!"), "favourite_colour");
    }

    #[test]
    fn routes_in_logs_carry_no_ids_or_emails() {
        assert_eq!(
            route_name("/crm/v3/objects/contacts/jane@x.com?idProperty=email"),
            "/crm/v3/objects/contacts/{id}"
        );
        assert_eq!(
            route_name("/crm/v3/objects/contacts/512"),
            "/crm/v3/objects/contacts/{id}"
        );
    }

    #[test]
    fn hubspot_error_text_is_kept_verbatim() {
        let v = json!({"status": "error", "message": "Property values were not valid: Property \"foo\" does not exist",
                       "category": "VALIDATION_ERROR", "errors": [{"message": "Property \"foo\" does not exist"}]});
        assert_eq!(
            error_message(StatusCode::BAD_REQUEST, &v, ""),
            "Property values were not valid: Property \"foo\" does not exist"
        );
        assert_eq!(
            error_message(StatusCode::BAD_GATEWAY, &Value::Null, ""),
            "HTTP 502"
        );
    }
}
