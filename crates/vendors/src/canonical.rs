//! The canonical leadbridge event, v1 (`POST /v1/events`): see docs/contracts.md.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use lb_domain::{
    BotId, Consent, Country, CountryPolicy, CrmTarget, DealAmount, Email, EventId, EventType,
    FieldError, FieldErrors, HttpUrl, Intent, LeadContext, LeadEvent, Phone, ShortText,
    Subdivision, Transcript, TranscriptLine, Visitor, WaId,
};
use serde_json::Value;

use crate::fields::{wrong_type, Reader, MAX_LONG};
use crate::ParseError;

/// The largest body accepted (256 KiB).
pub const MAX_BODY_BYTES: usize = 256 * 1024;
const MAX_TRANSCRIPT_LINES: usize = 2_000;
const MAX_ANSWERS: usize = 200;

const KNOWN_TOP_LEVEL: [&str; 14] = [
    "event_id",
    "event_type",
    "occurred_at",
    "bot_id",
    "conversation_id",
    "visitor",
    "context",
    "intent",
    "answers",
    "transcript",
    "consent",
    "crm_target",
    "schema",
    "v",
];

/// The choices ingest normalization leaves open (the config sets them per
/// route); [`Normalization::default`] is the contract's behaviour.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Normalization {
    /// What an unrecognized `visitor.country` does (default: 422 `unknown_country`).
    pub unknown_country: CountryPolicy,
    /// ISO 3166-1 alpha-2 region for national phone numbers when the visitor's
    /// country is unknown (the bot's region).
    pub phone_region: Option<String>,
    /// The latest `occurred_at` accepted (ingest: now plus [`CLOCK_SKEW`]); a
    /// later one is `in_the_future`. `None`: no bound (pure parsing).
    pub not_after: Option<DateTime<Utc>>,
}

/// How far ahead of ingest's clock a sender's `occurred_at` may be. Further
/// ahead, the event would win every ordering comparison (an older event never
/// overwrites a newer one) and freeze the contact's fields until that time, so
/// it is refused instead.
pub const CLOCK_SKEW: chrono::Duration = chrono::Duration::minutes(5);

/// Parses and validates a canonical event body into a normalized [`LeadEvent`]
/// with the default [`Normalization`].
pub fn parse(body: &[u8]) -> Result<LeadEvent, ParseError> {
    parse_with(body, &Normalization::default())
}

/// Parses, validates and normalizes a canonical event body: every field error
/// is collected; card and national id numbers in free text are redacted.
pub fn parse_with(body: &[u8], norm: &Normalization) -> Result<LeadEvent, ParseError> {
    parse_value_with(&read_json(body)?, norm)
}

/// The body as JSON, read once and strictly (a duplicate key is not JSON we take).
pub fn read_json(body: &[u8]) -> Result<Value, ParseError> {
    crate::json::parse_strict(body).map_err(|e| ParseError::NotJson(e.to_string()))
}

/// The `bot_id` a body claims, when it is a valid id: what picks the signing
/// secrets and the route, and what the event is queued under.
pub fn claimed_bot(value: &Value) -> Option<String> {
    value
        .get("bot_id")
        .and_then(Value::as_str)
        .and_then(|b| BotId::parse(b).ok())
        .map(|b| b.as_str().to_string())
}

/// [`parse_with`] on a body already read by [`read_json`].
pub fn parse_value_with(value: &Value, norm: &Normalization) -> Result<LeadEvent, ParseError> {
    let Value::Object(map) = value else {
        return Err(ParseError::Invalid(vec![FieldError::new(
            "",
            "invalid_type",
            "the body must be a JSON object",
        )]));
    };
    let r = Reader::root(map);
    let mut errs = FieldErrors::default();

    let event_id = r
        .required_string("event_id", 256, &mut errs)
        .and_then(|s| errs.take(EventId::parse(&s)));
    let event_type = r
        .required_string("event_type", 64, &mut errs)
        .and_then(|s| errs.take(EventType::parse(&s)));
    let occurred_at = r.timestamp("occurred_at", true, &mut errs);
    if let (Some(t), Some(limit)) = (occurred_at, norm.not_after) {
        if t > limit {
            errs.push(FieldError::new(
                "occurred_at",
                "in_the_future",
                format!(
                    "occurred_at is more than {} minutes ahead of the receiver's clock; send the time the lead was captured",
                    CLOCK_SKEW.num_minutes()
                ),
            ));
        }
    }
    let bot_id = r
        .required_string("bot_id", 256, &mut errs)
        .and_then(|s| errs.take(BotId::parse(&s)));
    let conversation_id = r.string("conversation_id", 256, &mut errs);

    let visitor = match r.object("visitor", &mut errs) {
        Some(v) => visitor(&v, norm, &mut errs),
        None => {
            if !map.contains_key("visitor") || map["visitor"].is_null() {
                errs.push(FieldError::new(
                    "visitor",
                    "required",
                    "visitor is required",
                ));
            }
            Visitor::default()
        }
    };
    if visitor.email.is_none()
        && visitor.phone.is_none()
        && visitor.wa_id.is_none()
        && !errs
            .as_slice()
            .iter()
            .any(|e| e.field == "visitor" || e.field.starts_with("visitor."))
    {
        errs.push(FieldError::new(
            "visitor",
            "identity_required",
            "at least one of visitor.email, visitor.phone or visitor.wa_id is required",
        ));
    }

    let context = r
        .object("context", &mut errs)
        .map(|c| context(&c, &mut errs))
        .unwrap_or_default();
    let intent = r.object("intent", &mut errs).map(|i| intent(&i, &mut errs));
    let answers = answers(&r, &mut errs);
    let transcript = r
        .object("transcript", &mut errs)
        .map(|t| transcript(&t, &mut errs));
    let consent = r
        .object("consent", &mut errs)
        .and_then(|c| consent(&c, &mut errs));
    let crm_target = r
        .object("crm_target", &mut errs)
        .map(|c| crm_target(&c, &mut errs))
        .unwrap_or_default();

    let extra = map
        .iter()
        .filter(|(k, _)| !KNOWN_TOP_LEVEL.contains(&k.as_str()))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();

    match (event_id, event_type, occurred_at, bot_id) {
        (Some(event_id), Some(event_type), Some(occurred_at), Some(bot_id)) if errs.is_empty() => {
            let mut event = LeadEvent {
                event_id,
                event_type,
                occurred_at,
                bot_id,
                conversation_id,
                visitor,
                context,
                intent,
                answers,
                transcript,
                consent,
                crm_target,
                redactions: Vec::new(),
                extra,
            };
            event.redact_free_text();
            Ok(event)
        }
        _ => Err(ParseError::Invalid(errs.into_vec())),
    }
}

fn visitor(v: &Reader<'_>, norm: &Normalization, errs: &mut FieldErrors) -> Visitor {
    let country = v.parsed("country", errs, |f, raw| {
        Country::parse(f, raw, norm.unknown_country)
    });
    // `visitor.region` is accepted as another name for `visitor.state`.
    let subdivision = |key: &str, errs: &mut FieldErrors| {
        v.parsed(key, errs, |f, raw| {
            Subdivision::parse(f, raw, country.as_ref())
        })
    };
    let state = match (subdivision("state", errs), subdivision("region", errs)) {
        (Some(s), Some(r)) if s != r => {
            errs.push(FieldError::new(
                v.field("region"),
                "conflicting_values",
                "visitor.state and visitor.region name different places; send one",
            ));
            Some(s)
        }
        (s, r) => s.or(r),
    };
    let region = country
        .as_ref()
        .and_then(Country::alpha2)
        .or(norm.phone_region.as_deref());
    let email = v
        .string("email", 320, errs)
        .and_then(|s| errs.take(Email::parse(&s)));
    let phone = v
        .string("phone", 64, errs)
        .and_then(|s| errs.take(Phone::parse(&s, region)));
    let wa_id = match v.map.get("wa_id") {
        Some(Value::Number(n)) => errs.take(WaId::parse(&n.to_string())),
        _ => v
            .string("wa_id", 64, errs)
            .and_then(|s| errs.take(WaId::parse(&s))),
    };
    Visitor {
        email,
        phone,
        wa_id,
        name: v.name("name", errs),
        first_name: v.name("first_name", errs),
        last_name: v.name("last_name", errs),
        company: v.name("company", errs),
        country: country.map(String::from),
        state: state.map(String::from),
    }
}

fn url(r: &Reader<'_>, key: &str, errs: &mut FieldErrors) -> Option<String> {
    r.parsed(key, errs, HttpUrl::parse).map(String::from)
}

fn utm(r: &Reader<'_>, key: &str, errs: &mut FieldErrors) -> Option<String> {
    r.parsed(key, errs, ShortText::parse).map(String::from)
}

fn context(c: &Reader<'_>, errs: &mut FieldErrors) -> LeadContext {
    LeadContext {
        source_url: url(c, "source_url", errs),
        referrer: url(c, "referrer", errs),
        utm_source: utm(c, "utm_source", errs),
        utm_medium: utm(c, "utm_medium", errs),
        utm_campaign: utm(c, "utm_campaign", errs),
        utm_term: utm(c, "utm_term", errs),
        utm_content: utm(c, "utm_content", errs),
        session_id: c.string("session_id", 256, errs),
        channel: c.string("channel", 32, errs),
        ad_click_id: c.string("ad_click_id", 256, errs),
        ad_id: c.string("ad_id", 256, errs),
        ad_headline: utm(c, "ad_headline", errs),
    }
}

fn intent(i: &Reader<'_>, errs: &mut FieldErrors) -> Intent {
    Intent {
        primary: i.string("primary", 256, errs),
        labels: i.string_list("labels", errs),
        qualification_score: i.uint("qualification_score", 100, errs).map(|v| v as u8),
        competitor_mentions: i.string_list("competitor_mentions", errs),
    }
}

fn answers(r: &Reader<'_>, errs: &mut FieldErrors) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let Some(a) = r.object("answers", errs) else {
        return out;
    };
    if a.map.len() > MAX_ANSWERS {
        errs.push(FieldError::new(
            "answers",
            "too_many",
            format!("at most {MAX_ANSWERS} answers"),
        ));
        return out;
    }
    for (k, v) in a.map {
        let field = a.field(k);
        if k.trim().is_empty() || k.len() > 100 {
            errs.push(FieldError::new(
                field,
                "invalid_key",
                "answer keys must be 1 to 100 characters",
            ));
            continue;
        }
        let text = match v {
            Value::Null => continue,
            Value::String(s) => s.trim().to_string(),
            Value::Number(n) => n.to_string(),
            Value::Bool(b) => b.to_string(),
            Value::Array(items) => {
                let mut parts = Vec::new();
                for (i, it) in items.iter().enumerate() {
                    match it {
                        Value::String(s) => parts.push(s.trim().to_string()),
                        Value::Number(n) => parts.push(n.to_string()),
                        Value::Bool(b) => parts.push(b.to_string()),
                        other => errs.push(wrong_type(
                            &format!("{field}[{i}]"),
                            "a string or number",
                            other,
                        )),
                    }
                }
                parts.join(";")
            }
            other => {
                errs.push(wrong_type(
                    &field,
                    "a string, number, boolean or list of them",
                    other,
                ));
                continue;
            }
        };
        if text.chars().count() > MAX_LONG {
            errs.push(FieldError::new(
                field,
                "too_long",
                format!("longer than {MAX_LONG} characters"),
            ));
            continue;
        }
        if !text.is_empty() {
            out.insert(k.trim().to_string(), text);
        }
    }
    out
}

fn transcript(t: &Reader<'_>, errs: &mut FieldErrors) -> Transcript {
    let raw_lines = t.array("lines", errs);
    if raw_lines.len() > MAX_TRANSCRIPT_LINES {
        errs.push(FieldError::new(
            t.field("lines"),
            "too_many",
            format!("at most {MAX_TRANSCRIPT_LINES} transcript lines"),
        ));
    }
    let mut lines = Vec::new();
    for (i, l) in raw_lines.iter().take(MAX_TRANSCRIPT_LINES).enumerate() {
        let path = format!("{}[{i}]", t.field("lines"));
        match l {
            Value::Object(m) => {
                let lr = Reader { path, map: m };
                let from = lr
                    .string("from", 64, errs)
                    .unwrap_or_else(|| "unknown".into());
                let text = lr.string("text", MAX_LONG, errs).unwrap_or_default();
                let at: Option<DateTime<Utc>> = lr.timestamp("at", false, errs);
                lines.push(TranscriptLine { at, from, text });
            }
            other => errs.push(wrong_type(&path, "an object", other)),
        }
    }
    Transcript {
        summary: t.string("summary", MAX_LONG, errs),
        messages: t.uint("messages", u32::MAX as u64, errs).map(|v| v as u32),
        duration_seconds: t
            .uint("duration_seconds", u32::MAX as u64, errs)
            .map(|v| v as u32),
        transcript_url: url(t, "transcript_url", errs),
        sentiment: t.string("sentiment", 64, errs),
        lines,
    }
}

fn consent(c: &Reader<'_>, errs: &mut FieldErrors) -> Option<Consent> {
    let given_at = c.timestamp("given_at", true, errs);
    let text_version = c.string("text_version", 64, errs);
    let purpose = c.string("purpose", 256, errs);
    given_at.map(|given_at| Consent {
        given_at,
        text_version,
        purpose,
    })
}

fn crm_target(c: &Reader<'_>, errs: &mut FieldErrors) -> CrmTarget {
    let object = c
        .string("object", 32, errs)
        .unwrap_or_else(|| "contact".into());
    if object != "contact" && object != "lead" {
        errs.push(FieldError::new(
            c.field("object"),
            "invalid_value",
            "crm_target.object must be contact or lead",
        ));
    }
    CrmTarget {
        object,
        create_deal: c.boolean("create_deal", errs).unwrap_or(false),
        deal_stage: c.string("deal_stage", 128, errs),
        deal_pipeline: c.string("deal_pipeline", 128, errs),
        deal_amount: deal_amount(c, errs),
        deal_close_date: c.parsed("deal_close_date", errs, lb_domain::deal::parse_close_date),
    }
}

/// `deal_amount`: a JSON number, or a string of digits (what form builders send).
fn deal_amount(c: &Reader<'_>, errs: &mut FieldErrors) -> Option<DealAmount> {
    let field = c.field("deal_amount");
    let raw = match c.map.get("deal_amount")? {
        Value::Null => return None,
        Value::Number(n) => n.to_string(),
        Value::String(s) => s.clone(),
        other => {
            errs.push(wrong_type(&field, "a number or a string of digits", other));
            return None;
        }
    };
    errs.take(DealAmount::parse(&field, &raw)).flatten()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn base() -> Value {
        json!({
            "event_id": "evt_01HQ8X9F2K3M5N7P9R1S3T5V7W",
            "event_type": "lead.created",
            "occurred_at": "2026-05-04T11:23:45.123Z",
            "bot_id": "bot_acme_pricing",
            "conversation_id": "conv_1",
            "visitor": {"email": "Priya.Sharma@AcmeCorp.in ", "phone": "+91 98765 43210", "name": "  Priya   Sharma ",
                        "company": "AcmeCorp Industries", "country": "in", "wa_id": null},
            "context": {"source_url": "https://example.com/pricing", "utm_source": "google"},
            "intent": {"primary": "pricing_inquiry", "labels": ["pricing"], "qualification_score": 78},
            "answers": {"budget": "50k", "seats": 25, "modules": ["crm", "chat"]},
            "transcript": {"summary": "Asked about Pro", "messages": 14,
                           "lines": [{"at": "2026-05-04T11:20:01Z", "from": "visitor", "text": "hi"}]},
            "consent": {"given_at": "2026-05-04T11:21:00Z", "text_version": "v3", "purpose": "sales_followup"},
            "crm_target": {"object": "contact", "create_deal": true, "deal_stage": "appointmentscheduled"},
            "custom_field": {"kept": true}
        })
    }

    fn parse_value(v: &Value) -> Result<LeadEvent, ParseError> {
        parse(serde_json::to_vec(v).unwrap().as_slice())
    }

    fn errors(v: &Value) -> Vec<FieldError> {
        match parse_value(v) {
            Err(ParseError::Invalid(e)) => e,
            other => panic!("expected field errors, got {other:?}"),
        }
    }

    #[test]
    fn the_contract_example_parses_and_normalizes() {
        let e = parse_value(&base()).unwrap();
        assert_eq!(
            e.visitor.email.as_ref().unwrap().as_str(),
            "priya.sharma@acmecorp.in"
        );
        assert_eq!(e.visitor.phone.as_ref().unwrap().as_str(), "+919876543210");
        assert_eq!(e.visitor.name.as_deref(), Some("Priya Sharma"));
        assert_eq!(e.visitor.country.as_deref(), Some("IN"));
        assert_eq!(e.answers["seats"], "25");
        assert_eq!(e.answers["modules"], "crm;chat");
        assert!(e.crm_target.create_deal);
        assert_eq!(e.extra["custom_field"], json!({"kept": true}));
        assert_eq!(e.contact_key().unwrap().kind(), "email");
    }

    #[test]
    fn not_json_is_not_a_field_error() {
        assert!(matches!(parse(b"{nope"), Err(ParseError::NotJson(_))));
        assert!(matches!(parse(&[0xff, 0xfe]), Err(ParseError::NotJson(_))));
    }

    #[test]
    fn a_lead_without_identity_is_rejected() {
        let mut v = base();
        v["visitor"] = json!({"name": "Anon"});
        let e = errors(&v);
        assert_eq!(e.len(), 1);
        assert_eq!(e[0].code, "identity_required");
    }

    #[test]
    fn every_field_error_is_reported_at_once() {
        let mut v = base();
        v["event_type"] = json!("lead.deleted");
        v["occurred_at"] = json!("yesterday");
        v["bot_id"] = json!(42);
        v["visitor"]["email"] = json!("not-an-email");
        v["intent"]["qualification_score"] = json!(150);
        let e = errors(&v);
        let fields: Vec<&str> = e.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(
            fields,
            vec![
                "event_type",
                "occurred_at",
                "bot_id",
                "visitor.email",
                "intent.qualification_score"
            ],
            "{e:?}"
        );
    }

    #[test]
    fn required_fields_are_named() {
        let e = errors(&json!({"visitor": {"email": "a@b.co"}}));
        let fields: Vec<&str> = e.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(
            fields,
            vec!["event_id", "event_type", "occurred_at", "bot_id"]
        );
        assert!(e.iter().all(|e| e.code == "required"));
    }

    #[test]
    fn a_json_array_body_is_a_field_error() {
        assert!(matches!(parse(b"[]"), Err(ParseError::Invalid(_))));
    }

    #[test]
    fn nested_objects_in_answers_are_rejected() {
        let mut v = base();
        v["answers"]["deep"] = json!({"x": 1});
        assert_eq!(errors(&v)[0].field, "answers.deep");
    }

    #[test]
    fn phone_without_country_code_uses_the_visitor_country() {
        let mut v = base();
        v["visitor"] = json!({"phone": "09876543210", "country": "IN"});
        let e = parse_value(&v).unwrap();
        assert_eq!(e.visitor.phone.as_ref().unwrap().as_str(), "+919876543210");
        assert_eq!(e.contact_key().unwrap().kind(), "phone");
    }

    #[test]
    fn a_country_name_sets_the_region_of_a_national_phone() {
        let mut v = base();
        v["visitor"] = json!({"phone": "098765 43210", "country": "India", "state": "Maharashtra"});
        let e = parse_value(&v).unwrap();
        assert_eq!(e.visitor.country.as_deref(), Some("IN"));
        assert_eq!(e.visitor.state.as_deref(), Some("IN-MH"));
        assert_eq!(e.visitor.phone.as_ref().unwrap().as_str(), "+919876543210");
    }

    #[test]
    fn region_is_another_name_for_state_and_they_must_agree() {
        let mut v = base();
        v["visitor"]["country"] = json!("USA");
        v["visitor"]["region"] = json!("California");
        assert_eq!(
            parse_value(&v).unwrap().visitor.state.as_deref(),
            Some("US-CA")
        );
        v["visitor"]["state"] = json!("CA");
        assert_eq!(
            parse_value(&v).unwrap().visitor.state.as_deref(),
            Some("US-CA")
        );
        v["visitor"]["state"] = json!("Texas");
        let e = errors(&v);
        assert_eq!(
            (e[0].field.as_str(), e[0].code.as_str()),
            ("visitor.region", "conflicting_values")
        );
    }

    #[test]
    fn an_occurred_at_beyond_the_clock_skew_is_in_the_future() {
        let v = base();
        let at: DateTime<Utc> = v["occurred_at"].as_str().unwrap().parse().unwrap();
        let bound = |not_after| Normalization {
            not_after: Some(not_after),
            ..Normalization::default()
        };
        let body = serde_json::to_vec(&v).unwrap();
        assert!(
            parse_with(&body, &bound(at)).is_ok(),
            "at the bound is fine"
        );
        match parse_with(&body, &bound(at - chrono::Duration::milliseconds(1))) {
            Err(ParseError::Invalid(e)) => assert_eq!(
                (e[0].field.as_str(), e[0].code.as_str()),
                ("occurred_at", "in_the_future")
            ),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn an_unknown_country_is_refused_unless_the_policy_passes_it_through() {
        let mut v = base();
        v["visitor"]["country"] = json!("Narnia");
        v["visitor"]["state"] = json!("Ontario");
        let e = errors(&v);
        assert_eq!(e.len(), 1, "{e:?}");
        assert_eq!(
            (e[0].field.as_str(), e[0].code.as_str()),
            ("visitor.country", "unknown_country")
        );
        let pass = Normalization {
            unknown_country: CountryPolicy::PassThrough,
            ..Normalization::default()
        };
        let e = parse_with(&serde_json::to_vec(&v).unwrap(), &pass).unwrap();
        assert_eq!(e.visitor.country.as_deref(), Some("Narnia"));
        assert_eq!(e.visitor.state.as_deref(), Some("Ontario"));
    }

    #[test]
    fn a_national_phone_takes_the_bots_region_when_the_country_is_unknown() {
        let mut v = base();
        v["visitor"].as_object_mut().unwrap().remove("country");
        v["visitor"]["phone"] = json!("09876543210");
        let india = Normalization {
            phone_region: Some("IN".into()),
            ..Normalization::default()
        };
        let e = parse_with(&serde_json::to_vec(&v).unwrap(), &india).unwrap();
        assert_eq!(e.visitor.phone.unwrap().as_str(), "+919876543210");
        // The visitor's own country wins over the bot's region.
        v["visitor"]["country"] = json!("United Kingdom");
        v["visitor"]["phone"] = json!("020 7946 0958");
        let e = parse_with(&serde_json::to_vec(&v).unwrap(), &india).unwrap();
        assert_eq!(e.visitor.phone.unwrap().as_str(), "+442079460958");
    }

    #[test]
    fn a_state_of_another_country_is_an_error_next_to_the_others() {
        let mut v = base();
        v["visitor"]["state"] = json!("California");
        v["context"]["source_url"] = json!("example.com/pricing");
        v["context"]["utm_source"] = json!("x".repeat(300));
        let e = errors(&v);
        let got: Vec<(&str, &str)> = e
            .iter()
            .map(|e| (e.field.as_str(), e.code.as_str()))
            .collect();
        assert_eq!(
            got,
            vec![
                ("visitor.state", "unknown_state"),
                ("context.source_url", "invalid_url"),
                ("context.utm_source", "too_long"),
            ]
        );
    }

    #[test]
    fn card_and_ssn_numbers_are_redacted_and_recorded_before_queueing() {
        let mut v = base();
        v["transcript"]["summary"] = json!("Paid with 4111 1111 1111 1111");
        v["transcript"]["lines"][0]["text"] = json!("my ssn is 123-45-6789");
        v["answers"]["id"] = json!("AB123456C");
        let e = parse_value(&v).unwrap();
        let t = e.transcript.as_ref().unwrap();
        assert_eq!(t.summary.as_deref(), Some("Paid with [card]"));
        assert_eq!(t.lines[0].text, "my ssn is [id no.]");
        assert_eq!(e.answers["id"], "[id no.]");
        let json = serde_json::to_string(&e).unwrap();
        assert!(!json.contains("4111") && !json.contains("6789") && !json.contains("AB123456C"));
        assert_eq!(
            serde_json::to_value(&e.redactions).unwrap(),
            json!([
                {"field": "transcript.summary", "kind": "card"},
                {"field": "transcript.lines[0].text", "kind": "national_id"},
                {"field": "answers.id", "kind": "national_id"}
            ])
        );
    }

    #[test]
    fn an_event_without_redactions_serializes_without_the_field_and_old_messages_parse() {
        let e = parse_value(&base()).unwrap();
        let mut json = serde_json::to_value(&e).unwrap();
        assert!(json.get("redactions").is_none());
        assert!(json["visitor"].get("state").is_none());
        json["visitor"]["country"] = json!("Germany");
        let back: LeadEvent = serde_json::from_value(json).unwrap();
        assert!(back.redactions.is_empty());
        assert_eq!(back.visitor.country.as_deref(), Some("Germany"));
    }

    #[test]
    fn deeply_nested_json_is_refused_without_a_crash() {
        let deep = "[".repeat(10_000) + &"]".repeat(10_000);
        assert!(parse(deep.as_bytes()).is_err());
    }
}
