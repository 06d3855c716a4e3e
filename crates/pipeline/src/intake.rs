//! Ingest's admission: from a parsed body to the deliveries to queue, or the
//! refusal to answer and record. Shared by the canonical endpoint
//! (`POST /v1/events`) and every native source (`POST /v1/sources/{name}`), so
//! routes, policies, enumerations, size limits and rejection records are the
//! same whoever sent the lead. Pure of HTTP: ingest converts.

use std::time::Duration;

use chrono::{DateTime, Utc};
use lb_config::{Config, Source};
use lb_domain::queued::MAX_LEAD_MESSAGE_BYTES;
use lb_domain::{mask, EventId, FieldError, QueuedLead};
use lb_vendors::canonical::{self, Normalization};
use lb_vendors::source::{
    Inbound, Outcome, Parsed, Reply, SourceContext, SourceSecrets, VerifyError,
};
use lb_vendors::sources;
use lb_vendors::ParseError;
use serde_json::Value;
use sha2::{Digest, Sha256};
use tracing::{info, warn};

use crate::accept::{accept_deliveries, AcceptError, Accepted};
use crate::ports::{Alerts, LeadQueue, Ledger, PortError, Rejection};
use crate::reject::record_rejection;

/// Why an event is refused: answered (problem+json on the canonical endpoint,
/// the vendor's own reply on a source) and recorded as a rejection.
#[derive(Debug, Clone, PartialEq)]
pub struct Refusal {
    pub status: u16,
    pub code: &'static str,
    pub title: &'static str,
    pub detail: String,
    pub errors: Vec<FieldError>,
}

impl Refusal {
    pub fn invalid(errors: Vec<FieldError>) -> Self {
        let consent_only =
            !errors.is_empty() && errors.iter().all(|e| e.code == "consent_required");
        Self {
            status: 422,
            code: if consent_only {
                "consent_required"
            } else {
                "invalid_lead"
            },
            title: "Unprocessable Content",
            detail: if consent_only {
                "this bot may send personal data only with the visitor's consent".to_string()
            } else {
                format!("{} field(s) are not valid", errors.len())
            },
            errors,
        }
    }

    fn not_json(msg: &str) -> Self {
        Self {
            status: 400,
            code: "invalid_json",
            title: "Bad Request",
            detail: format!("the body is not valid JSON: {msg}"),
            errors: Vec::new(),
        }
    }
}

/// Validates and normalizes a parsed body under its bot's route (the config's
/// policies, enumerations, required fields, consent) and plans one queue
/// message per connection the route names. `claimed`: the bot the body speaks
/// for (what picked the secret that verified it).
pub fn admit(
    config: Option<&Config>,
    parsed: &Result<Value, ParseError>,
    claimed: Option<&str>,
    now: DateTime<Utc>,
) -> Result<Vec<QueuedLead>, Refusal> {
    let route = match (config, claimed) {
        (Some(cfg), Some(bot)) => match cfg.route_for(bot) {
            Some(r) => Some(r),
            None => {
                return Err(Refusal::invalid(vec![FieldError::new(
                    "bot_id",
                    "no_route",
                    "no route for this bot_id in the leadbridge config; add a [[routes]] entry for it (or a \"*\" route)",
                )]))
            }
        },
        _ => None,
    };
    let norm = Normalization {
        not_after: Some(now + canonical::CLOCK_SKEW),
        ..match route {
            Some(r) => Normalization {
                unknown_country: r.policy.unknown_country,
                phone_region: r.policy.phone_region.clone(),
                not_after: None,
            },
            None => Normalization::default(),
        }
    };
    let parsed = match parsed {
        Ok(v) => canonical::parse_value_with(v, &norm),
        Err(e) => Err(e.clone()),
    };
    let mut event = match parsed {
        Ok(e) => e,
        Err(ParseError::NotJson(msg)) => return Err(Refusal::not_json(&msg)),
        Err(ParseError::Invalid(errors)) => return Err(Refusal::invalid(errors)),
    };
    let mut errors = Vec::new();
    if let (Some(cfg), Some(route)) = (config, route) {
        errors.extend(cfg.apply_enums(&mut event));
        errors.extend(route.check(&event));
    }
    if !errors.is_empty() {
        return Err(Refusal::invalid(errors));
    }
    let Some(lead) = QueuedLead::new(event, now) else {
        return Err(Refusal::invalid(vec![FieldError::new(
            "visitor",
            "identity_required",
            "send at least one of visitor.email, visitor.phone, visitor.wa_id",
        )]));
    };
    let deliveries: Vec<QueuedLead> = match route {
        Some(r) => r
            .deliveries()
            .into_iter()
            .map(|d| lead.for_delivery(d))
            .collect(),
        None => vec![lead],
    };
    // Checked on what is stored, not only on what arrived: every queue message
    // (and the ledger item and dead letter made of it) must fit.
    if let Some(size) = deliveries
        .iter()
        .map(|d| d.to_json().len())
        .find(|&n| n > MAX_LEAD_MESSAGE_BYTES)
    {
        return Err(Refusal {
            status: 413,
            code: "payload_too_large",
            title: "Payload Too Large",
            detail: format!(
                "the normalized lead is {size} bytes, more than the {MAX_LEAD_MESSAGE_BYTES} a \
                 queue message may hold; send a shorter transcript (or a transcript_url)"
            ),
            errors: Vec::new(),
        });
    }
    Ok(deliveries)
}

/// What the ledger keeps of a refused event: ids, codes, fields and a masked
/// identity read leniently from the (canonical) body; never the body itself.
pub fn rejection_of(
    body: &[u8],
    parsed: Option<&Value>,
    claimed: Option<String>,
    refusal: &Refusal,
) -> Rejection {
    let none = Value::Null;
    let v = parsed.unwrap_or(&none);
    let text = |p: &str| v.pointer(p).and_then(|x| x.as_str()).map(str::trim);
    let id = text("/event_id")
        .and_then(|e| EventId::parse(e).ok())
        .map(|e| e.as_str().to_string())
        .unwrap_or_else(|| format!("body-{}", &hex::encode(Sha256::digest(body))[..16]));
    let identity = text("/visitor/email")
        .filter(|e| e.contains('@'))
        .map(|e| mask::email(&e.to_lowercase()))
        .or_else(|| text("/visitor/phone").map(mask::phone))
        .or_else(|| {
            v.pointer("/visitor/wa_id")
                .map(|w| w.to_string().trim_matches('"').to_string())
                .map(|w| mask::phone(&w))
        });
    let errors = if refusal.errors.is_empty() {
        vec![FieldError::new("", refusal.code, refusal.detail.clone())]
    } else {
        refusal.errors.clone()
    };
    Rejection {
        id,
        bot_id: claimed,
        errors,
        identity,
        http_status: refusal.status,
    }
}

/// The ports and settings admission writes through.
pub struct Intake<'a> {
    pub ledger: &'a dyn Ledger,
    pub queue: &'a dyn LeadQueue,
    pub alerts: &'a dyn Alerts,
    /// One rejection alert per window at most.
    pub rejection_window: Duration,
    pub config: Option<&'a Config>,
}

impl Intake<'_> {
    /// Records a refusal (ledger + one alert per window). Never fails.
    pub async fn reject(&self, rejection: &Rejection, now: DateTime<Utc>) {
        record_rejection(
            self.ledger,
            self.alerts,
            rejection,
            self.rejection_window,
            now,
        )
        .await;
    }
}

/// How a source request ended when it was not answered the vendor's way.
#[derive(Debug, Clone, PartialEq)]
pub enum SourceError {
    /// No such source in the config (→ 404, the same answer as any unknown path).
    UnknownSource,
    /// The kind has no handshake, or the method is not one it takes (→ 405).
    MethodNotAllowed,
    /// The vendor's authentication failed (→ 401, nothing written).
    Unauthorized(VerifyError),
    /// Not the vendor's body format at all (→ 400).
    BadRequest(String),
    /// Nothing was accepted; the vendor must retry (→ 503).
    Unavailable(String),
}

/// A source's request, whole: verify, parse, admit and queue every lead it
/// carries, record refusals, and answer the way the vendor expects. `Err` only
/// for what is answered generically (401, 400, 404/405, 503).
pub async fn accept_source(
    intake: &Intake<'_>,
    source: &Source,
    secrets: &SourceSecrets,
    req: &Inbound<'_>,
    now: DateTime<Utc>,
) -> Result<Reply, SourceError> {
    let kind = sources::kind(source.kind).ok_or(SourceError::UnknownSource)?;
    if req.method == "GET" {
        return match kind.handshake(req, secrets) {
            Some(Ok(reply)) => {
                info!(source = %source.name, kind = kind.name(), "source handshake answered");
                Ok(reply)
            }
            Some(Err(e)) => {
                info!(source = %source.name, kind = kind.name(), status = 401, reason = %e, "source handshake refused");
                Err(SourceError::Unauthorized(e))
            }
            None => Err(SourceError::MethodNotAllowed),
        };
    }
    if req.method != "POST" {
        return Err(SourceError::MethodNotAllowed);
    }
    if let Err(e) = kind.verify_with(req, secrets, &source.options, now) {
        if e == VerifyError::NoSecret {
            warn!(source = %source.name, "the source's secret holds no usable value; rejecting its requests");
        }
        info!(source = %source.name, kind = kind.name(), status = 401, reason = %e, "source request rejected");
        return Err(SourceError::Unauthorized(e));
    }
    let cx = SourceContext {
        source: &source.name,
        bot_id: &source.bot_id,
        now,
        options: &source.options,
    };
    let leads = match kind.parse(req, &cx) {
        Ok(Parsed::Leads(leads)) => leads,
        Ok(Parsed::NotALead(reason)) => {
            info!(source = %source.name, kind = kind.name(), reason = %reason, "source delivery is not a lead; acknowledged");
            return Ok(kind.reply(&Outcome::Ignored { reason }));
        }
        Err(ParseError::NotJson(msg)) => {
            info!(source = %source.name, kind = kind.name(), status = 400, "source body unreadable");
            return Err(SourceError::BadRequest(msg));
        }
        Err(ParseError::Invalid(errors)) => {
            let refusal = Refusal::invalid(errors);
            let rejection = rejection_of(req.body, None, Some(source.bot_id.clone()), &refusal);
            intake.reject(&rejection, now).await;
            return Ok(kind.reply(&rejected(&refusal)));
        }
    };
    let mut event_ids = Vec::new();
    let mut all_duplicates = true;
    let mut first_refusal = None;
    for value in &leads {
        let parsed = Ok(value.clone());
        let deliveries = match admit(intake.config, &parsed, Some(&source.bot_id), now) {
            Ok(d) => d,
            Err(refusal) => {
                let codes: Vec<&str> = refusal.errors.iter().map(|e| e.code.as_str()).collect();
                info!(source = %source.name, status = refusal.status, code = refusal.code, codes = ?codes, "source lead rejected");
                let body = value.to_string();
                let rejection = rejection_of(
                    body.as_bytes(),
                    Some(value),
                    Some(source.bot_id.clone()),
                    &refusal,
                );
                intake.reject(&rejection, now).await;
                first_refusal.get_or_insert(refusal);
                continue;
            }
        };
        let Some(first) = deliveries.first() else {
            continue;
        };
        let event_id = first.event.event_id.as_str().to_string();
        match accept_deliveries(intake.ledger, intake.queue, &deliveries, now).await {
            Ok(accepted) => {
                let duplicate = accepted == Accepted::Duplicate;
                all_duplicates &= duplicate;
                info!(event_id, source = %source.name, kind = kind.name(), duplicate, contact = %first.contact_key.hashed(), "lead accepted");
            }
            // A vendor's id names one message: the same id again is that message
            // again (a redelivery read at another time), never a new event.
            Err(AcceptError::Conflict) => {
                info!(event_id, source = %source.name, "vendor redelivery with other derived values; kept the first");
            }
            Err(AcceptError::QueueUnavailable(e)) => {
                warn!(event_id, source = %source.name, status = 503, error = %e, "queue unavailable; the vendor will retry");
                return Err(SourceError::Unavailable(unavailable_text(&e)));
            }
        }
        event_ids.push(event_id);
    }
    if event_ids.is_empty() {
        if let Some(refusal) = first_refusal {
            return Ok(kind.reply(&rejected(&refusal)));
        }
        return Ok(kind.reply(&Outcome::Ignored {
            reason: "nothing to queue".into(),
        }));
    }
    Ok(kind.reply(&Outcome::Accepted {
        event_ids,
        duplicate: all_duplicates,
    }))
}

fn rejected(refusal: &Refusal) -> Outcome {
    Outcome::Rejected {
        status: refusal.status,
        code: refusal.code.to_string(),
        errors: if refusal.errors.is_empty() {
            vec![FieldError::new("", refusal.code, refusal.detail.clone())]
        } else {
            refusal.errors.clone()
        },
    }
}

fn unavailable_text(_e: &PortError) -> String {
    "the lead was not accepted; retry".to_string()
}
