//! HubSpot CRM v3: contacts upserted by email in one call (batch upsert with
//! `idProperty=email`), phone-only contacts found through the ledger's memory or
//! search, notes and deals associated with the contact and tagged with the event id.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use lb_domain::{note, ContactKey, EventId, QueuedLead};
use lb_pipeline::secrets::{secret_values, CachedSecret};
use lb_pipeline::{ContactRef, ContactWrite, Crm, CrmError, ErrorClass};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use tracing::debug;

use crate::classify;

const NAME: &str = "hubspot";
/// HubSpot-defined association type ids.
const NOTE_TO_CONTACT: u32 = 202;
const DEAL_TO_CONTACT: u32 = 3;
const NOTE_MAX_CHARS: usize = 65_536;
/// What an identity-only write sends: what finds or creates the record, nothing else.
const IDENTITY_PROPERTIES: [&str; 3] = ["email", "phone", "hs_whatsapp_phone_number"];
/// HubSpot asks for at least 2 s before retrying a 423 (locked).
const LOCKED_RETRY: Duration = Duration::from_secs(2);

#[derive(Debug, Clone)]
pub struct HubSpotConfig {
    /// `https://api.hubapi.com`, or a simulator.
    pub base_url: String,
    pub timeout: Duration,
    /// Contact property that receives `chatbot:<bot_id>`; `None` to skip.
    pub lead_source_property: Option<String>,
    /// Write the conversation context (UTM, entry page, intent, consent) to the
    /// `leadbridge_*` custom contact properties as well as to the note.
    pub context_properties: bool,
    /// Write each answer to the contact property of the same (snake-cased) name.
    pub answer_properties: bool,
    pub default_deal_stage: String,
    pub default_deal_pipeline: String,
}

impl Default for HubSpotConfig {
    fn default() -> Self {
        Self {
            base_url: "https://api.hubapi.com".into(),
            timeout: Duration::from_secs(10),
            lead_source_property: Some("leadbridge_source".into()),
            context_properties: true,
            answer_properties: true,
            default_deal_stage: "appointmentscheduled".into(),
            default_deal_pipeline: "default".into(),
        }
    }
}

pub struct HubSpotCrm {
    http: reqwest::Client,
    cfg: HubSpotConfig,
    token: Arc<CachedSecret>,
}

impl HubSpotCrm {
    /// `token` is the secret holding the private-app token (plain, or JSON `{"token": "…"}`).
    pub fn new(cfg: HubSpotConfig, token: Arc<CachedSecret>) -> Result<Self, reqwest::Error> {
        let http = reqwest::Client::builder()
            .timeout(cfg.timeout)
            .connect_timeout(Duration::from_secs(3))
            .user_agent(concat!("leadbridge/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(Self { http, cfg, token })
    }

    fn err(&self, class: ErrorClass, status: Option<u16>, message: impl Into<String>) -> CrmError {
        CrmError {
            crm: NAME.into(),
            class,
            http_status: status,
            category: None,
            message: message.into(),
            retry_after: None,
            code: None,
        }
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
        for attempt in 0..2 {
            let token = self.bearer().await?;
            let mut req = self.http.request(method.clone(), &url).bearer_auth(token);
            if let Some(b) = body {
                req = req.json(b);
            }
            let resp = req
                .send()
                .await
                .map_err(|e| classify::transport(NAME, &e))?;
            let status = resp.status();
            let headers = resp.headers().clone();
            let text = resp
                .text()
                .await
                .map_err(|e| classify::transport(NAME, &e))?;
            debug!(crm = NAME, %method, route = route_name(path), status = status.as_u16(), "crm call");
            let value: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
            if status == StatusCode::UNAUTHORIZED && attempt == 0 {
                self.token.invalidate().await;
                continue;
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
            return Err(e);
        }
        unreachable!("the loop returns on its second pass")
    }

    fn contact_properties(
        &self,
        lead: &QueuedLead,
        write: ContactWrite,
    ) -> BTreeMap<String, String> {
        let mut p = self.all_contact_properties(lead);
        if write == ContactWrite::IdentityOnly {
            p.retain(|k, _| IDENTITY_PROPERTIES.contains(&k.as_str()));
        }
        p
    }

    fn all_contact_properties(&self, lead: &QueuedLead) -> BTreeMap<String, String> {
        let e = &lead.event;
        let v = &e.visitor;
        let mut p = BTreeMap::new();
        let mut put = |k: &str, val: Option<&str>| {
            if let Some(val) = val.filter(|s| !s.is_empty()) {
                p.insert(k.to_string(), val.to_string());
            }
        };
        put("email", v.email.as_ref().map(|x| x.as_str()));
        let (first, last) = e.first_last_name();
        put("firstname", first.as_deref());
        put("lastname", last.as_deref());
        put("phone", v.phone.as_ref().map(|x| x.as_str()));
        let wa = v.wa_id.as_ref().map(|w| format!("+{}", w.as_str()));
        put("hs_whatsapp_phone_number", wa.as_deref());
        put("company", v.company.as_deref());
        put("country", v.country.as_deref());
        if let Some(prop) = &self.cfg.lead_source_property {
            put(prop, Some(&format!("chatbot:{}", e.bot_id)));
        }
        if self.cfg.context_properties {
            let c = &e.context;
            put("leadbridge_entry_page", c.source_url.as_deref());
            for (k, val) in c.utm() {
                put(&format!("leadbridge_{k}"), Some(val));
            }
            if let Some(i) = &e.intent {
                put("leadbridge_intent", i.primary.as_deref());
                put(
                    "leadbridge_qualification_score",
                    i.qualification_score.map(|s| s.to_string()).as_deref(),
                );
            }
            if let Some(c) = &e.consent {
                let at = c
                    .given_at
                    .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
                put("leadbridge_consent_given_at", Some(&at));
                put("leadbridge_consent_text_version", c.text_version.as_deref());
                put("leadbridge_consent_purpose", c.purpose.as_deref());
            }
        }
        if self.cfg.answer_properties {
            for (k, val) in &e.answers {
                put(&property_name(k), Some(val));
            }
        }
        p
    }

    async fn upsert_by_email(
        &self,
        email: &str,
        lead: &QueuedLead,
        write: ContactWrite,
    ) -> Result<ContactRef, CrmError> {
        let trace = lead.event.event_id.as_str();
        let body = json!({"inputs": [{
            "id": email,
            "idProperty": "email",
            "objectWriteTraceId": trace,
            "properties": self.contact_properties(lead, write),
        }]});
        let (_, v) = self
            .call(
                Method::POST,
                "/crm/v3/objects/contacts/batch/upsert",
                Some(&body),
            )
            .await?;
        // 200, or 207 with our input among the errors.
        if let Some(err) = v["errors"].as_array().and_then(|errs| {
            errs.iter().find(|e| {
                e["context"]["objectWriteTraceId"]
                    .as_array()
                    .is_none_or(|ids| ids.iter().any(|i| i == trace))
            })
        }) {
            let mut e = self.err(
                ErrorClass::Permanent,
                Some(207),
                error_message(StatusCode::MULTI_STATUS, err, ""),
            );
            e.category = err["category"].as_str().map(str::to_string);
            return Err(e);
        }
        let result = v["results"]
            .as_array()
            .and_then(|r| {
                r.iter()
                    .find(|r| r["objectWriteTraceId"] == trace)
                    .or_else(|| r.first())
            })
            .ok_or_else(|| {
                self.err(
                    ErrorClass::Transient,
                    Some(200),
                    "batch upsert answered without a result",
                )
            })?;
        let id = id_of(result)
            .ok_or_else(|| self.err(ErrorClass::Transient, Some(200), "upsert result has no id"))?;
        Ok(ContactRef {
            id,
            created: result["new"].as_bool().unwrap_or(false),
        })
    }

    async fn patch_contact(
        &self,
        id: &str,
        lead: &QueuedLead,
        write: ContactWrite,
    ) -> Result<Option<ContactRef>, CrmError> {
        let body = json!({"properties": self.contact_properties(lead, write)});
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
            Err(e) => Err(e),
        }
    }

    async fn search_by_phone(&self, e164: &str) -> Result<Option<String>, CrmError> {
        let groups: Vec<Value> = ["phone", "mobilephone", "hs_whatsapp_phone_number"]
            .iter()
            .map(|p| json!({"filters": [{"propertyName": p, "operator": "EQ", "value": e164}]}))
            .collect();
        let body = json!({"filterGroups": groups, "properties": ["phone"], "limit": 1});
        let (_, v) = self
            .call(Method::POST, "/crm/v3/objects/contacts/search", Some(&body))
            .await?;
        Ok(v["results"]
            .as_array()
            .and_then(|r| r.first())
            .and_then(id_of))
    }

    async fn create_contact(
        &self,
        lead: &QueuedLead,
        write: ContactWrite,
    ) -> Result<ContactRef, CrmError> {
        let body = json!({"properties": self.contact_properties(lead, write)});
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
                Some(id) => self.patch_contact(&id, lead, write).await?.ok_or(e),
                None => Err(e),
            },
            Err(e) => Err(e),
        }
    }

    /// Ids of the contact's associated `kind` (notes, deals) whose `property` holds the event's tag.
    async fn find_tagged(
        &self,
        contact_id: &str,
        kind: &str,
        property: &str,
        event_id: &EventId,
    ) -> Result<Option<String>, CrmError> {
        let (_, v) = self
            .call(
                Method::GET,
                &format!("/crm/v3/objects/contacts/{contact_id}?associations={kind}"),
                None,
            )
            .await?;
        let ids: Vec<Value> = v["associations"][kind]["results"]
            .as_array()
            .map(|r| {
                r.iter()
                    .filter_map(id_of)
                    .map(|id| json!({"id": id}))
                    .collect()
            })
            .unwrap_or_default();
        if ids.is_empty() {
            return Ok(None);
        }
        let tag = note::tag(event_id);
        for chunk in ids.chunks(100) {
            let body = json!({"inputs": chunk, "properties": [property]});
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
                        .is_some_and(|b| b.contains(&tag))
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
        NAME
    }

    async fn upsert_contact(
        &self,
        lead: &QueuedLead,
        known_id: Option<&str>,
        write: ContactWrite,
    ) -> Result<ContactRef, CrmError> {
        match &lead.contact_key {
            ContactKey::Email(email) => self.upsert_by_email(email.as_str(), lead, write).await,
            ContactKey::Phone(_) | ContactKey::WaId(_) => {
                if let Some(id) = known_id {
                    if write == ContactWrite::IdentityOnly {
                        return Ok(ContactRef {
                            id: id.to_string(),
                            created: false,
                        });
                    }
                    if let Some(c) = self.patch_contact(id, lead, write).await? {
                        return Ok(c);
                    }
                }
                let e164 = match &lead.contact_key {
                    ContactKey::Phone(p) => p.as_str().to_string(),
                    other => format!("+{}", other.value()),
                };
                // Search lags writes by seconds; the ledger's memory covers what it cannot see yet.
                if let Some(id) = self.search_by_phone(&e164).await? {
                    if let Some(c) = self.patch_contact(&id, lead, write).await? {
                        return Ok(c);
                    }
                }
                self.create_contact(lead, write).await
            }
        }
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
        let body = json!({
            "properties": {
                "hs_timestamp": lead.event.occurred_at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
                "hs_note_body": note::render_html(&lead.event, NOTE_MAX_CHARS),
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

    async fn find_deal(
        &self,
        contact_id: &str,
        event_id: &EventId,
    ) -> Result<Option<String>, CrmError> {
        self.find_tagged(contact_id, "deals", "description", event_id)
            .await
    }

    async fn create_deal(&self, contact_id: &str, lead: &QueuedLead) -> Result<String, CrmError> {
        let e = &lead.event;
        let who = e
            .visitor
            .company
            .clone()
            .or_else(|| e.visitor.name.clone())
            .unwrap_or_else(|| "Chatbot lead".into());
        let mut description = format!("Created by leadbridge from a {} conversation.", e.bot_id);
        if let Some(s) = e.transcript.as_ref().and_then(|t| t.summary.as_deref()) {
            description.push_str(&format!(" Summary: {s}"));
        }
        description.push_str(&format!(" Ref: {}", note::tag(&e.event_id)));
        let body = json!({
            "properties": {
                "dealname": format!("{who} (chatbot {})", e.bot_id),
                "dealstage": e.crm_target.deal_stage.clone().unwrap_or_else(|| self.cfg.default_deal_stage.clone()),
                "pipeline": e.crm_target.deal_pipeline.clone().unwrap_or_else(|| self.cfg.default_deal_pipeline.clone()),
                "description": description,
            },
            "associations": [association(contact_id, DEAL_TO_CONTACT)],
        });
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
    }
    msg
}

/// When the rolling window frees a slot again: the interval header, else 10 s.
/// The search endpoint's 429 carries no headers; one second covers its per-second limit.
fn rate_limit_reset(h: &reqwest::header::HeaderMap) -> Duration {
    let get = |k: &str| {
        h.get(k)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
    };
    match get("x-hubspot-ratelimit-interval-milliseconds") {
        Some(ms) => Duration::from_millis(ms.min(60_000)),
        None if get("x-hubspot-ratelimit-max").is_none() => Duration::from_secs(1),
        None => Duration::from_secs(10),
    }
}

/// `"Company Size"` → `company_size`: HubSpot's internal property names.
pub fn property_name(key: &str) -> String {
    let mut out = String::with_capacity(key.len());
    for c in key.trim().chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c.to_ascii_lowercase());
        } else if !out.ends_with('_') {
            out.push('_');
        }
    }
    out.trim_matches('_').to_string()
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
