//! Drift (Salesloft) app webhooks ("Webhooks: Subscribing to Drift Events").
//!
//! **Auth** — a static *Verification Token* from the app's App Credentials
//! page, no HMAC. Drift "include[s] this token in every event we send to you
//! as: a `token` field in the body [and] a header called
//! `X-Verification-Token`" (<https://devdocs.drift.com/docs/webhook-events-1>).
//! The docs say both are always sent. We check the header when it is present
//! (constant time, against every configured secret: rotation). If the header
//! is absent, we check the body's top-level `token`, read with the strict JSON
//! parser so a duplicate `token` key is refused. A present header always
//! decides: a wrong header is refused even when the body token matches. The
//! optional IP allow-list on the same page is not checked here.
//!
//! **Payload** — `{"type", "token", "orgId", "data"}`, where `data` is "the
//! data associated with the event (a contact, a message, etc)" (same page).
//! - `contact_identified` ("A contact added their email in chat") →
//!   `lead.created`. `data` is a Drift contact
//!   (<https://devdocs.drift.com/docs/contact-model>):
//!   `{id, createdAt (ms), attributes{email, name, phone, …}}`. The contact API's
//!   response also shows `first_name` and `recent_entrance_page_url` among
//!   the attributes (<https://devdocs.drift.com/docs/retrieving-contact>). Drift
//!   publishes no complete `contact_identified` example. One integrator
//!   (PipedreamHQ/pipedream `components/drift/sources/new-lead-instance`) reads
//!   `data.endUserId` instead and fetches the contact from the API. That shape
//!   is accepted for the id, but it carries no email, so it is answered as "not
//!   a lead" (parse makes no API calls). UNCONFIRMED: which shape Drift sends.
//! - `contact_updated` → `lead.updated`. The documented shape is `data{endUserId,
//!   timestamp (ms), orgId, diff[{name, previous, updated}]}`, and a diff
//!   `name` is `attributes.<field>` for a top-level attribute
//!   (<https://devdocs.drift.com/docs/contact-update-subscriptions>). The
//!   identity comes from the `updated` values of `attributes.email`,
//!   `attributes.phone` and `attributes.name`/`first_name`/`last_name`. An
//!   `attributes` map in `data`, if Drift sends one, is read too. An update
//!   that changes no email or phone is not a lead, because nothing in it names
//!   the person.
//! - `new_message`: a Drift message (<https://devdocs.drift.com/docs/message-model>)
//!   has only `author{type, id}` and no email or phone → not a lead. Any other
//!   `type` → not a lead.
//!
//! **Idempotency** — Drift sends no delivery id (none on the webhook page, and
//! the envelope has only type/token/orgId/data). The vendor id is therefore
//! `<type>:<contact id>:<createdAt | timestamp>`. A redelivery of the same event
//! gets the same id. A second `contact_identified` for the same contact is a
//! duplicate: later changes arrive as `contact_updated`. When the contact id or
//! the time is missing, a SHA-256 of the raw body stands in.
//!
//! **Time** — `occurred_at` is `data.createdAt` for `contact_identified` and
//! `data.timestamp` (or `updatedAt`) for `contact_updated`, all milliseconds.
//! If none is present, the receive time is used.
//!
//! **Reply** — Drift documents no response body: [`default_reply`] (200).

use chrono::{DateTime, Utc};
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};

use crate::canonical::MAX_BODY_BYTES;
use crate::source::{
    same_bytes, vendor_time, Inbound, Parsed, Sample, SourceContext, SourceKind, SourceOptions,
    SourceSecrets, VerifyError,
};
use crate::ParseError;

/// The header as Drift's docs write it.
const HEADER: &str = "X-Verification-Token";
/// Longer than any token Drift generates; anything beyond is refused unread.
const MAX_TOKEN_BYTES: usize = 1024;

/// The `drift` kind.
pub struct Drift;

impl SourceKind for Drift {
    fn name(&self) -> &'static str {
        "drift"
    }

    fn verify(
        &self,
        req: &Inbound<'_>,
        secrets: &SourceSecrets,
        _now: DateTime<Utc>,
    ) -> Result<(), VerifyError> {
        let secrets = secrets.required()?;
        let presented = match req.header(HEADER) {
            Some(h) => h.trim().to_string(),
            None => body_token(req.body)?,
        };
        if presented.is_empty() || presented.len() > MAX_TOKEN_BYTES {
            return Err(VerifyError::Malformed(HEADER));
        }
        // Every secret is compared (no early exit): rotation without timing hints.
        let matched = secrets.iter().fold(false, |ok, s| {
            same_bytes(presented.as_bytes(), s.as_bytes()) | ok
        });
        if matched {
            Ok(())
        } else {
            Err(VerifyError::Mismatch)
        }
    }

    fn parse(&self, req: &Inbound<'_>, cx: &SourceContext<'_>) -> Result<Parsed, ParseError> {
        let v = crate::canonical::read_json(req.body)?;
        let Some(kind) = v.get("type").and_then(Value::as_str) else {
            return Ok(Parsed::NotALead("no Drift event type".into()));
        };
        let data = v.get("data").and_then(Value::as_object);
        match (kind, data) {
            ("contact_identified", Some(d)) => Ok(contact_identified(d, req.body, cx)),
            ("contact_updated", Some(d)) => Ok(contact_updated(d, req.body, cx)),
            ("contact_identified" | "contact_updated", None) => {
                Ok(Parsed::NotALead(format!("{kind} without data")))
            }
            ("new_message", _) => Ok(Parsed::NotALead(
                "new_message: a Drift message carries no contact email or phone".into(),
            )),
            (other, _) => Ok(Parsed::NotALead(format!(
                "Drift event {} is not a lead",
                clip(other)
            ))),
        }
    }

    fn sign(
        &self,
        _url: &str,
        _body: &[u8],
        secret: &str,
        _now: DateTime<Utc>,
    ) -> Vec<(String, String)> {
        vec![(HEADER.to_string(), secret.to_string())]
    }

    fn sample(&self, lead: &Sample<'_>, _options: &SourceOptions) -> (String, Vec<u8>) {
        // A contact_identified delivery shaped like the contact model. The body's
        // `token` is left empty: sample does not know the secret, and `sign`
        // puts the token in the header, which verify checks first.
        let id = lead
            .vendor_id
            .parse::<i64>()
            .map(Value::from)
            .unwrap_or_else(|_| Value::from(lead.vendor_id));
        let mut attributes = json!({
            "events": {},
            "name": lead.name,
            "socialProfiles": {},
            "tags": [],
        });
        if !lead.email.is_empty() {
            attributes["email"] = json!(lead.email);
        }
        if !lead.phone.is_empty() {
            attributes["phone"] = json!(lead.phone);
        }
        let body = json!({
            "type": "contact_identified",
            "token": "",
            "orgId": 1234567,
            "data": {
                "attributes": attributes,
                "createdAt": lead.at.timestamp_millis(),
                "id": id,
            },
        });
        ("application/json".into(), body.to_string().into_bytes())
    }
}

/// The body's `token` when the header is absent (strict JSON: a repeated key is refused).
fn body_token(body: &[u8]) -> Result<String, VerifyError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(VerifyError::Missing(HEADER));
    }
    if body.len() > MAX_BODY_BYTES {
        return Err(VerifyError::Malformed(HEADER));
    }
    let v = crate::json::parse_strict(body).map_err(|_| VerifyError::Malformed(HEADER))?;
    match v.get("token") {
        None | Some(Value::Null) => Err(VerifyError::Missing(HEADER)),
        Some(Value::String(t)) => Ok(t.trim().to_string()),
        Some(_) => Err(VerifyError::Malformed(HEADER)),
    }
}

fn contact_identified(d: &Map<String, Value>, body: &[u8], cx: &SourceContext<'_>) -> Parsed {
    let mut visitor = Map::new();
    if let Some(a) = d.get("attributes").and_then(Value::as_object) {
        for (from, to) in [
            ("email", "email"),
            ("phone", "phone"),
            ("name", "name"),
            ("first_name", "first_name"),
            ("last_name", "last_name"),
        ] {
            put(&mut visitor, to, a.get(from));
        }
    }
    if !has_identity(&visitor) {
        return Parsed::NotALead(match contact_id(d) {
            Some(id) => format!(
                "contact_identified for contact {} carries no email or phone",
                clip(&id)
            ),
            None => "contact_identified carries no email or phone".into(),
        });
    }
    let at = d.get("createdAt");
    let mut e = cx.event(
        &vendor_id("contact_identified", contact_id(d), at, body),
        "lead.created",
        at.and_then(vendor_time).unwrap_or(cx.now),
    );
    finish(&mut e, visitor, d);
    Parsed::Leads(vec![e])
}

fn contact_updated(d: &Map<String, Value>, body: &[u8], cx: &SourceContext<'_>) -> Parsed {
    let mut visitor = Map::new();
    // The documented payload: what changed, as `attributes.<field>` names.
    if let Some(diff) = d.get("diff").and_then(Value::as_array) {
        for change in diff {
            let Some(name) = change.get("name").and_then(Value::as_str) else {
                continue;
            };
            let to = match name {
                "attributes.email" => "email",
                "attributes.phone" => "phone",
                "attributes.name" => "name",
                "attributes.first_name" => "first_name",
                "attributes.last_name" => "last_name",
                _ => continue,
            };
            put(&mut visitor, to, change.get("updated"));
        }
    }
    // A contact model in `data` (not documented for this event; read if present).
    if let Some(a) = d.get("attributes").and_then(Value::as_object) {
        for key in ["email", "phone", "name", "first_name", "last_name"] {
            if !visitor.contains_key(key) {
                put(&mut visitor, key, a.get(key));
            }
        }
    }
    if !has_identity(&visitor) {
        return Parsed::NotALead("contact_updated changed no email or phone".into());
    }
    let at = d.get("timestamp").or_else(|| d.get("updatedAt"));
    let mut e = cx.event(
        &vendor_id("contact_updated", contact_id(d), at, body),
        "lead.updated",
        at.and_then(vendor_time).unwrap_or(cx.now),
    );
    finish(&mut e, visitor, d);
    Parsed::Leads(vec![e])
}

/// Visitor, conversation and context on the skeleton.
fn finish(e: &mut Value, visitor: Map<String, Value>, d: &Map<String, Value>) {
    e["visitor"] = Value::Object(visitor);
    let mut context = json!({"channel": "chat"});
    if let Some(url) = d
        .get("attributes")
        .and_then(|a| a.get("recent_entrance_page_url"))
        .and_then(Value::as_str)
    {
        context["source_url"] = json!(url);
    }
    e["context"] = context;
    if let Some(c) = d.get("conversationId").and_then(id_text) {
        e["conversation_id"] = json!(c);
    }
}

/// The contact's Drift id: `data.id` (contact model) or `data.endUserId`.
fn contact_id(d: &Map<String, Value>) -> Option<String> {
    d.get("id")
        .and_then(id_text)
        .or_else(|| d.get("endUserId").and_then(id_text))
}

/// `<type>:<contact id>:<ms>`, or `<type>:b<sha256 of the body>` when either is missing.
fn vendor_id(kind: &str, id: Option<String>, at: Option<&Value>, body: &[u8]) -> String {
    match (id, at.and_then(id_text)) {
        (Some(id), Some(at)) => format!("{kind}:{id}:{at}"),
        _ => format!("{kind}:b{}", &hex::encode(Sha256::digest(body))[..32]),
    }
}

/// A number or non-blank string as text (Drift ids and times are numbers).
fn id_text(v: &Value) -> Option<String> {
    match v {
        Value::Number(n) => Some(n.to_string()),
        Value::String(s) if !s.trim().is_empty() => Some(s.trim().to_string()),
        _ => None,
    }
}

/// Copies a string (or a number, e.g. a phone stored as one) into `visitor`.
/// Validation is the canonical parser's.
fn put(visitor: &mut Map<String, Value>, key: &str, v: Option<&Value>) {
    match v {
        Some(Value::String(s)) if !s.trim().is_empty() => {
            visitor.insert(key.into(), json!(s));
        }
        Some(Value::Number(n)) => {
            visitor.insert(key.into(), json!(n.to_string()));
        }
        _ => {}
    }
}

fn has_identity(visitor: &Map<String, Value>) -> bool {
    visitor.contains_key("email") || visitor.contains_key("phone")
}

/// A vendor string, shortened for a reason text.
fn clip(s: &str) -> String {
    s.chars().take(64).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::canonical::{parse_value_with, Normalization};
    use crate::source::{default_reply, Outcome};

    const TOKEN: &str = "test_drift_verification_token";
    const IDENTIFIED: &[u8] = include_bytes!(
        "../../../../tests/fixtures/vendors/drift/contact_identified.CONSTRUCTED.json"
    );
    const IDENTIFIED_API: &[u8] = include_bytes!(
        "../../../../tests/fixtures/vendors/drift/contact_identified_api_attributes.CONSTRUCTED.json"
    );
    const UPDATED: &[u8] =
        include_bytes!("../../../../tests/fixtures/vendors/drift/contact_updated.CONSTRUCTED.json");
    const UPDATED_NAME_ONLY: &[u8] = include_bytes!(
        "../../../../tests/fixtures/vendors/drift/contact_updated_name_only.CONSTRUCTED.json"
    );
    const NEW_MESSAGE: &[u8] =
        include_bytes!("../../../../tests/fixtures/vendors/drift/new_message.CONSTRUCTED.json");

    fn now() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2025-06-01T12:00:00Z")
            .unwrap()
            .with_timezone(&Utc)
    }

    fn secrets(list: &[&str]) -> SourceSecrets {
        SourceSecrets {
            secrets: list.iter().map(|s| s.to_string()).collect(),
            verify_token: None,
        }
    }

    fn req<'a>(headers: &'a [(String, String)], body: &'a [u8]) -> Inbound<'a> {
        Inbound {
            method: "POST",
            url: "https://hooks.example.com/v1/sources/drift",
            headers,
            body,
        }
    }

    fn hdr(token: &str) -> Vec<(String, String)> {
        vec![
            ("content-type".into(), "application/json".into()),
            ("x-verification-token".into(), token.into()),
        ]
    }

    fn parse(body: &[u8]) -> Parsed {
        let opts = SourceOptions::default();
        let cx = SourceContext {
            source: "drift",
            bot_id: "bot_drift",
            now: now(),
            options: &opts,
        };
        Drift.parse(&req(&[], body), &cx).unwrap()
    }

    fn one_lead(body: &[u8]) -> Value {
        match parse(body) {
            Parsed::Leads(mut v) => {
                assert_eq!(v.len(), 1);
                v.remove(0)
            }
            other => panic!("expected a lead, got {other:?}"),
        }
    }

    #[test]
    fn header_token_verifies_and_every_secret_rotates() {
        let h = hdr(TOKEN);
        assert_eq!(
            Drift.verify(&req(&h, IDENTIFIED), &secrets(&[TOKEN]), now()),
            Ok(())
        );
        assert_eq!(
            Drift.verify(&req(&h, IDENTIFIED), &secrets(&["new_token", TOKEN]), now()),
            Ok(())
        );
        // Header names arrive lower-cased; case of the lookup does not matter.
        let h = vec![("X-Verification-Token".to_string(), TOKEN.to_string())];
        assert_eq!(
            Drift.verify(&req(&h, b"{}"), &secrets(&[TOKEN]), now()),
            Ok(())
        );
    }

    #[test]
    fn wrong_or_malformed_header_token_is_refused() {
        let s = secrets(&[TOKEN]);
        assert_eq!(
            Drift.verify(&req(&hdr("not_the_token"), IDENTIFIED), &s, now()),
            Err(VerifyError::Mismatch)
        );
        // The token authenticates the sender, not the bytes: Drift signs nothing,
        // so a changed body with the right header still verifies (vendor scheme).
        let edited = String::from_utf8(IDENTIFIED.to_vec())
            .unwrap()
            .replace("Stephen", "Stephan");
        assert_eq!(
            Drift.verify(&req(&hdr(TOKEN), edited.as_bytes()), &s, now()),
            Ok(())
        );
        // A wrong header is refused even when the body's token is right.
        assert_eq!(
            Drift.verify(&req(&hdr("x"), IDENTIFIED), &s, now()),
            Err(VerifyError::Mismatch)
        );
        assert_eq!(
            Drift.verify(&req(&hdr("  "), IDENTIFIED), &s, now()),
            Err(VerifyError::Malformed(HEADER))
        );
        let huge = "a".repeat(100_000);
        assert_eq!(
            Drift.verify(&req(&hdr(&huge), IDENTIFIED), &s, now()),
            Err(VerifyError::Malformed(HEADER))
        );
        assert_eq!(
            Drift.verify(&req(&hdr(TOKEN), IDENTIFIED), &secrets(&[]), now()),
            Err(VerifyError::NoSecret)
        );
    }

    #[test]
    fn without_the_header_the_body_token_is_checked() {
        let s = secrets(&["other", TOKEN]);
        assert_eq!(Drift.verify(&req(&[], IDENTIFIED), &s, now()), Ok(()));
        assert_eq!(
            Drift.verify(&req(&[], IDENTIFIED), &secrets(&["other"]), now()),
            Err(VerifyError::Mismatch)
        );
        // Tampering with the token (one byte) fails.
        let tampered = String::from_utf8(IDENTIFIED.to_vec())
            .unwrap()
            .replace(TOKEN, "test_drift_verification_tokeN");
        assert_eq!(
            Drift.verify(&req(&[], tampered.as_bytes()), &s, now()),
            Err(VerifyError::Mismatch)
        );
        assert_eq!(
            Drift.verify(&req(&[], br#"{"type":"x"}"#), &s, now()),
            Err(VerifyError::Missing(HEADER))
        );
        assert_eq!(
            Drift.verify(&req(&[], b""), &s, now()),
            Err(VerifyError::Missing(HEADER))
        );
        assert_eq!(
            Drift.verify(&req(&[], br#"{"token":12}"#), &s, now()),
            Err(VerifyError::Malformed(HEADER))
        );
        assert_eq!(
            Drift.verify(&req(&[], b"token=abc"), &s, now()),
            Err(VerifyError::Malformed(HEADER))
        );
        // Two `token` keys: refused, whichever one a reader would take.
        let dup = format!(r#"{{"token":"{TOKEN}","token":"evil"}}"#);
        assert_eq!(
            Drift.verify(&req(&[], dup.as_bytes()), &s, now()),
            Err(VerifyError::Malformed(HEADER))
        );
    }

    #[test]
    fn contact_identified_is_a_created_lead() {
        let e = one_lead(IDENTIFIED);
        assert_eq!(
            e["event_id"],
            "drift:contact_identified:349999553:1506971031434"
        );
        assert_eq!(e["event_type"], "lead.created");
        assert_eq!(e["occurred_at"], "2017-10-02T19:03:51.434Z");
        assert_eq!(e["bot_id"], "bot_drift");
        assert_eq!(e["visitor"]["email"], "stephen.webel@example.com");
        assert_eq!(e["visitor"]["name"], "Stephen Webel");
        assert_eq!(e["context"]["channel"], "chat");
        let lead = parse_value_with(&e, &Normalization::default()).unwrap();
        assert_eq!(
            lead.visitor.email.as_ref().map(|m| m.as_str()),
            Some("stephen.webel@example.com")
        );
        assert_eq!(lead.visitor.name.as_deref(), Some("Stephen Webel"));
        assert_eq!(lead.context.channel.as_deref(), Some("chat"));
    }

    #[test]
    fn contact_identified_with_api_attributes_maps_phone_first_name_and_page() {
        let e = one_lead(IDENTIFIED_API);
        assert_eq!(
            e["event_id"],
            "drift:contact_identified:1234567890:1617825403810"
        );
        assert_eq!(e["visitor"]["first_name"], "Bruce Wayne");
        assert_eq!(e["visitor"]["phone"], "+14155552671");
        assert_eq!(e["context"]["source_url"], "http://www.yoursite.com");
        let lead = parse_value_with(&e, &Normalization::default()).unwrap();
        assert_eq!(
            lead.visitor.email.as_ref().map(|m| m.as_str()),
            Some("bruce.wayne@example.com")
        );
        assert_eq!(
            lead.visitor.phone.as_ref().map(|p| p.as_str()),
            Some("+14155552671")
        );
        assert_eq!(
            lead.context.source_url.as_deref(),
            Some("http://www.yoursite.com/")
        );
    }

    #[test]
    fn contact_updated_takes_the_identity_from_the_diff() {
        let e = one_lead(UPDATED);
        assert_eq!(
            e["event_id"],
            "drift:contact_updated:12345678:1538591450493"
        );
        assert_eq!(e["event_type"], "lead.updated");
        assert_eq!(e["occurred_at"], "2018-10-03T18:30:50.493Z");
        let lead = parse_value_with(&e, &Normalization::default()).unwrap();
        assert_eq!(
            lead.visitor.email.as_ref().map(|m| m.as_str()),
            Some("jane.doe@example.com")
        );
        assert!(matches!(parse(UPDATED_NAME_ONLY), Parsed::NotALead(r) if r.contains("no email")));
    }

    #[test]
    fn non_leads_are_acknowledged() {
        assert!(matches!(parse(NEW_MESSAGE), Parsed::NotALead(r) if r.starts_with("new_message")));
        assert!(
            matches!(parse(br#"{"type":"new_conversation","data":{}}"#), Parsed::NotALead(r) if r.contains("new_conversation"))
        );
        assert!(matches!(parse(br#"{"data":{}}"#), Parsed::NotALead(_)));
        assert!(matches!(
            parse(br#"{"type":"contact_identified"}"#),
            Parsed::NotALead(_)
        ));
        // The integrator-observed shape (endUserId only) names no one.
        assert!(matches!(
            parse(br#"{"type":"contact_identified","data":{"endUserId":5}}"#),
            Parsed::NotALead(r) if r.contains("contact 5")
        ));
        // A blank email is no identity.
        assert!(matches!(
            parse(br#"{"type":"contact_identified","data":{"id":1,"attributes":{"email":" "}}}"#),
            Parsed::NotALead(_)
        ));
    }

    #[test]
    fn garbage_is_not_json() {
        let opts = SourceOptions::default();
        let cx = SourceContext {
            source: "drift",
            bot_id: "bot_drift",
            now: now(),
            options: &opts,
        };
        for body in [&b"not json"[..], b"", b"{\"type\":1,\"type\":2}"] {
            assert!(matches!(
                Drift.parse(&req(&[], body), &cx),
                Err(ParseError::NotJson(_))
            ));
        }
    }

    #[test]
    fn redelivery_has_the_same_event_id_and_missing_ids_fall_back_to_the_body() {
        assert_eq!(
            one_lead(IDENTIFIED)["event_id"],
            one_lead(IDENTIFIED)["event_id"]
        );
        let no_time = br#"{"type":"contact_identified","data":{"id":7,"attributes":{"email":"a@example.com"}}}"#;
        let e = one_lead(no_time);
        assert_eq!(e["occurred_at"], "2025-06-01T12:00:00.000Z");
        assert!(e["event_id"]
            .as_str()
            .unwrap()
            .starts_with("drift:contact_identified:b"));
        assert_eq!(e["event_id"], one_lead(no_time)["event_id"]);
        // conversationId, when Drift sends one, becomes the conversation id.
        let with_conv = br#"{"type":"contact_identified","data":{"id":7,"createdAt":1,"conversationId":42,"attributes":{"email":"a@example.com"}}}"#;
        assert_eq!(one_lead(with_conv)["conversation_id"], "42");
    }

    #[test]
    fn sign_and_sample_round_trip() {
        let lead = Sample {
            vendor_id: "349999553",
            name: "Ada Lovelace",
            email: "ada@example.com",
            phone: "+447400123456",
            text: "I'd like a demo",
            at: now(),
        };
        let (ct, body) = Drift.sample(&lead, &SourceOptions::default());
        assert_eq!(ct, "application/json");
        let headers: Vec<(String, String)> = Drift
            .sign("https://x.example/hook", &body, "s3cret", now())
            .into_iter()
            .map(|(k, v)| (k.to_ascii_lowercase(), v))
            .collect();
        assert_eq!(
            Drift.verify(&req(&headers, &body), &secrets(&["s3cret"]), now()),
            Ok(())
        );
        let e = one_lead(&body);
        assert_eq!(
            e["event_id"],
            format!(
                "drift:contact_identified:349999553:{}",
                now().timestamp_millis()
            )
        );
        let ev = parse_value_with(&e, &Normalization::default()).unwrap();
        assert_eq!(
            ev.visitor.email.as_ref().map(|m| m.as_str()),
            Some("ada@example.com")
        );
        assert_eq!(
            ev.visitor.phone.as_ref().map(|p| p.as_str()),
            Some("+447400123456")
        );
        assert_eq!(ev.visitor.name.as_deref(), Some("Ada Lovelace"));
    }

    #[test]
    fn reply_is_the_default() {
        let o = Outcome::Ignored { reason: "x".into() };
        assert_eq!(Drift.reply(&o), default_reply(&o));
    }
}
