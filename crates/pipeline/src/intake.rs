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
use crate::ports::{Alerts, LeadQueue, Ledger, Rejection};
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
        errors.extend(cfg.apply_enums_for(route, &mut event));
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
        Some(r) => {
            // The route (or its entry for this event type) picks the lane.
            let lane = r.lane_for(lead.event.event_type);
            r.deliveries()
                .into_iter()
                .map(|d| {
                    let mut l = lead.for_delivery(d);
                    l.lane = lane;
                    l
                })
                .collect()
        }
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
    /// One rejection alert per bot and window at most.
    pub rejection_window: Duration,
    pub config: Option<&'a Config>,
}

impl Intake<'_> {
    /// Records a refusal (ledger + one alert per bot and window). Never fails.
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
        let mut outcome = accept_deliveries(intake.ledger, intake.queue, &deliveries, now).await;
        if matches!(outcome, Err(AcceptError::Conflict)) {
            // A vendor's id names one message, so the same id again is that message
            // again. A kind whose vendor sends no time reads it at its receipt: read
            // the redelivery as of the first receipt, and it is the same payload
            // (queued again if the first never reached the queue).
            if let Some(again) = as_first_received(intake, source, req, &event_id, first).await {
                outcome = accept_deliveries(intake.ledger, intake.queue, &again, now).await;
            }
        }
        match outcome {
            Ok(accepted) => {
                let duplicate = accepted == Accepted::Duplicate;
                all_duplicates &= duplicate;
                info!(event_id, source = %source.name, kind = kind.name(), duplicate, contact = %first.contact_key.hashed(), "lead accepted");
            }
            Err(AcceptError::Conflict) => {
                info!(event_id, source = %source.name, "vendor id reused with another payload; kept the first");
            }
            Err(AcceptError::QueueUnavailable(e)) => {
                warn!(event_id, source = %source.name, status = 503, error = %e, "queue unavailable; the vendor will retry");
                return Err(SourceError::Unavailable(
                    "the lead was not accepted; retry".into(),
                ));
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

/// The deliveries of `event_id` as the request reads at the first receipt of
/// that event (the ledger's `received_at` as the reading time), or `None`.
async fn as_first_received(
    intake: &Intake<'_>,
    source: &Source,
    req: &Inbound<'_>,
    event_id: &str,
    first: &QueuedLead,
) -> Option<Vec<QueuedLead>> {
    let received_at = intake
        .ledger
        .get(&first.delivery_id())
        .await
        .ok()
        .flatten()?
        .received_at?;
    let kind = sources::kind(source.kind)?;
    let cx = SourceContext {
        source: &source.name,
        bot_id: &source.bot_id,
        now: received_at,
        options: &source.options,
    };
    let Ok(Parsed::Leads(leads)) = kind.parse(req, &cx) else {
        return None;
    };
    let value = leads
        .into_iter()
        .find(|v| v["event_id"].as_str() == Some(event_id))?;
    admit(intake.config, &Ok(value), Some(&source.bot_id), received_at).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fakes::{InMemoryLedger, InMemoryQueue, RecordingAlerts};
    use lb_domain::Lane;
    use lb_vendors::source::{Sample, SourceKind, SourceOptions};

    struct Env {
        ledger: InMemoryLedger,
        queue: InMemoryQueue,
        alerts: RecordingAlerts,
        source: Source,
    }

    fn env() -> Env {
        Env {
            ledger: InMemoryLedger::default(),
            queue: InMemoryQueue::default(),
            alerts: RecordingAlerts::default(),
            source: Source {
                name: "chatbase".into(),
                kind: "chatbase",
                bot_id: "bot_cb".into(),
                secret: "cb".into(),
                options: SourceOptions::default(),
            },
        }
    }

    impl Env {
        async fn send(
            &self,
            method: &str,
            body: &[u8],
            secret: &str,
            configured: &[&str],
            now: DateTime<Utc>,
        ) -> Result<Reply, SourceError> {
            let kind = sources::kind("chatbase").unwrap();
            let url = "https://x.example/v1/sources/chatbase";
            let mut headers = kind.sign(url, body, secret, now);
            headers.push(("content-type".into(), "application/json".into()));
            let req = Inbound {
                method,
                url,
                headers: &headers,
                body,
            };
            let intake = Intake {
                ledger: &self.ledger,
                queue: &self.queue,
                alerts: &self.alerts,
                rejection_window: Duration::from_secs(900),
                config: None,
            };
            accept_source(
                &intake,
                &self.source,
                &SourceSecrets::of(configured),
                &req,
                now,
            )
            .await
        }
    }

    fn t0() -> DateTime<Utc> {
        "2026-11-29T10:00:00Z".parse().unwrap()
    }

    fn lead() -> Vec<u8> {
        let (_, body) = lb_vendors::sources::chatbase::Chatbase.sample(
            &Sample {
                vendor_id: "c1",
                name: "Ada Lovelace",
                email: "ada@example.com",
                phone: "+14155552671",
                text: "hi",
                at: t0(),
            },
            &SourceOptions::default(),
        );
        body
    }

    #[tokio::test]
    async fn a_queue_outage_accepts_nothing_and_the_vendor_is_told_to_retry() {
        let e = env();
        e.queue.set_failing(true);
        let r = e.send("POST", &lead(), "s3cret", &["s3cret"], t0()).await;
        assert!(matches!(r, Err(SourceError::Unavailable(_))), "{r:?}");
        e.queue.set_failing(false);
        // The vendor's retry comes later and reads (without a time of its own) later.
        let later = t0() + chrono::Duration::seconds(30);
        let r = e
            .send("POST", &lead(), "s3cret", &["s3cret"], later)
            .await
            .unwrap();
        assert_eq!(r.status, 200);
        assert_eq!(
            e.queue.enqueued().len(),
            1,
            "the vendor's retry is queued once"
        );
    }

    #[tokio::test]
    async fn methods_secrets_and_bodies_the_source_does_not_take_write_nothing() {
        let e = env();
        let put = e.send("PUT", &lead(), "s3cret", &["s3cret"], t0()).await;
        assert_eq!(put, Err(SourceError::MethodNotAllowed));
        let get = e.send("GET", b"", "s3cret", &["s3cret"], t0()).await;
        assert_eq!(
            get,
            Err(SourceError::MethodNotAllowed),
            "chatbase has no handshake"
        );
        let none = e.send("POST", &lead(), "s3cret", &[], t0()).await;
        assert_eq!(none, Err(SourceError::Unauthorized(VerifyError::NoSecret)));
        let wrong = e.send("POST", &lead(), "other", &["s3cret"], t0()).await;
        assert_eq!(wrong, Err(SourceError::Unauthorized(VerifyError::Mismatch)));
        let garbage = e
            .send("POST", b"not json", "s3cret", &["s3cret"], t0())
            .await;
        assert!(
            matches!(garbage, Err(SourceError::BadRequest(_))),
            "{garbage:?}"
        );
        assert!(e.queue.enqueued().is_empty());
        assert!(e.alerts.sent().is_empty());
    }

    #[tokio::test]
    async fn a_redelivery_that_derives_other_values_keeps_the_first() {
        let e = env();
        let first = e
            .send("POST", &lead(), "s3cret", &["s3cret"], t0())
            .await
            .unwrap();
        // Chatbase sends no time: the same submission read a second later has
        // another occurred_at, hence another payload hash, under the same id.
        let later = t0() + chrono::Duration::seconds(1);
        let again = e
            .send("POST", &lead(), "s3cret", &["s3cret"], later)
            .await
            .unwrap();
        assert_eq!((first.status, again.status), (200, 200));
        assert!(again.body.contains("chatbase:"), "{}", again.body);
        assert_eq!(e.queue.enqueued().len(), 1);
    }

    #[test]
    fn the_route_picks_each_deliverys_lane_by_event_type() {
        let cfg = Config::parse(
            "version = 1\n[connections.a]\nkind = \"hubspot\"\nsecret = \"s\"\n\
             [connections.b]\nkind = \"pipedrive\"\nsecret = \"p\"\n\
             [[routes]]\nbot_id = \"*\"\nconnections = [\"a\", \"b\"]\n\
             event_lanes = { \"lead.updated\" = \"bulk\" }\n",
        )
        .expect("config");
        let event = |t: &str| {
            Ok(serde_json::json!({
                "event_id": "evt_l1", "event_type": t, "occurred_at": "2026-11-29T09:00:00Z",
                "bot_id": "b1", "visitor": {"email": "a@b.co"}
            }))
        };
        let lanes = |t: &str| -> Vec<Lane> {
            admit(Some(&cfg), &event(t), Some("b1"), t0())
                .expect("admitted")
                .iter()
                .map(|d| d.lane)
                .collect()
        };
        assert_eq!(lanes("lead.updated"), [Lane::Bulk, Lane::Bulk]);
        assert_eq!(lanes("lead.created"), [Lane::Realtime, Lane::Realtime]);
    }
}
