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
    any_secret, id_text, json_body, ok_or_mismatch, same_bytes, vendor_time, Inbound, Parsed,
    Sample, SourceContext, SourceKind, SourceOptions, SourceSecrets, VerifyError,
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
        ok_or_mismatch(any_secret(secrets, |s| {
            same_bytes(presented.as_bytes(), s.as_bytes())
        }))
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
        json_body(&body)
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
    if let Some(c) = id_text(d.get("conversationId")) {
        e["conversation_id"] = json!(c);
    }
}

/// The contact's Drift id: `data.id` (contact model) or `data.endUserId`.
fn contact_id(d: &Map<String, Value>) -> Option<String> {
    id_text(d.get("id")).or_else(|| id_text(d.get("endUserId")))
}

/// `<type>:<contact id>:<ms>`, or `<type>:b<sha256 of the body>` when either is missing.
fn vendor_id(kind: &str, id: Option<String>, at: Option<&Value>, body: &[u8]) -> String {
    match (id, id_text(at)) {
        (Some(id), Some(at)) => format!("{kind}:{id}:{at}"),
        _ => format!("{kind}:b{}", &hex::encode(Sha256::digest(body))[..32]),
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
    use crate::source::{default_reply, Outcome};
    use crate::testing::{
        self, ada, assert_signed_verifies, at, canonical_lead, context, fixture, json_headers,
        post, secrets,
    };

    const URL: &str = "https://hooks.example.com/v1/sources/drift";

    const TOKEN: &str = "test_drift_verification_token";
    const IDENTIFIED: &[u8] = fixture!("drift/contact_identified.CONSTRUCTED.json");
    const IDENTIFIED_API: &[u8] =
        fixture!("drift/contact_identified_api_attributes.CONSTRUCTED.json");
    const UPDATED: &[u8] = fixture!("drift/contact_updated.CONSTRUCTED.json");
    const UPDATED_NAME_ONLY: &[u8] = fixture!("drift/contact_updated_name_only.CONSTRUCTED.json");
    const NEW_MESSAGE: &[u8] = fixture!("drift/new_message.CONSTRUCTED.json");

    /// 2025-06-01T12:00:00Z.
    fn now() -> DateTime<Utc> {
        at(1_748_779_200)
    }

    fn hdr(token: &str) -> Vec<(String, String)> {
        json_headers("x-verification-token", token)
    }

    fn parse(body: &[u8]) -> Result<Parsed, ParseError> {
        Drift.parse(&post(URL, &[], body), &context("drift", "bot_drift", now()))
    }

    fn one_lead(body: &[u8]) -> Value {
        testing::one_lead(parse(body).unwrap())
    }

    #[test]
    fn header_token_verifies_and_every_secret_rotates() {
        let h = hdr(TOKEN);
        assert_eq!(
            Drift.verify(&post(URL, &h, IDENTIFIED), &secrets(&[TOKEN]), now()),
            Ok(())
        );
        assert_eq!(
            Drift.verify(
                &post(URL, &h, IDENTIFIED),
                &secrets(&["new_token", TOKEN]),
                now()
            ),
            Ok(())
        );
        // Header names arrive lower-cased; case of the lookup does not matter.
        let h = vec![("X-Verification-Token".to_string(), TOKEN.to_string())];
        assert_eq!(
            Drift.verify(&post(URL, &h, b"{}"), &secrets(&[TOKEN]), now()),
            Ok(())
        );
    }

    #[test]
    fn wrong_or_malformed_header_token_is_refused() {
        let s = secrets(&[TOKEN]);
        assert_eq!(
            Drift.verify(&post(URL, &hdr("not_the_token"), IDENTIFIED), &s, now()),
            Err(VerifyError::Mismatch)
        );
        // The token authenticates the sender, not the bytes: Drift signs nothing,
        // so a changed body with the right header still verifies (vendor scheme).
        let edited = String::from_utf8(IDENTIFIED.to_vec())
            .unwrap()
            .replace("Stephen", "Stephan");
        assert_eq!(
            Drift.verify(&post(URL, &hdr(TOKEN), edited.as_bytes()), &s, now()),
            Ok(())
        );
        // A wrong header is refused even when the body's token is right.
        assert_eq!(
            Drift.verify(&post(URL, &hdr("x"), IDENTIFIED), &s, now()),
            Err(VerifyError::Mismatch)
        );
        assert_eq!(
            Drift.verify(&post(URL, &hdr("  "), IDENTIFIED), &s, now()),
            Err(VerifyError::Malformed(HEADER))
        );
        let huge = "a".repeat(100_000);
        assert_eq!(
            Drift.verify(&post(URL, &hdr(&huge), IDENTIFIED), &s, now()),
            Err(VerifyError::Malformed(HEADER))
        );
        assert_eq!(
            Drift.verify(&post(URL, &hdr(TOKEN), IDENTIFIED), &secrets(&[]), now()),
            Err(VerifyError::NoSecret)
        );
    }

    #[test]
    fn without_the_header_the_body_token_is_checked() {
        let s = secrets(&["other", TOKEN]);
        assert_eq!(Drift.verify(&post(URL, &[], IDENTIFIED), &s, now()), Ok(()));
        assert_eq!(
            Drift.verify(&post(URL, &[], IDENTIFIED), &secrets(&["other"]), now()),
            Err(VerifyError::Mismatch)
        );
        // Tampering with the token (one byte) fails.
        let tampered = String::from_utf8(IDENTIFIED.to_vec())
            .unwrap()
            .replace(TOKEN, "test_drift_verification_tokeN");
        assert_eq!(
            Drift.verify(&post(URL, &[], tampered.as_bytes()), &s, now()),
            Err(VerifyError::Mismatch)
        );
        assert_eq!(
            Drift.verify(&post(URL, &[], br#"{"type":"x"}"#), &s, now()),
            Err(VerifyError::Missing(HEADER))
        );
        assert_eq!(
            Drift.verify(&post(URL, &[], b""), &s, now()),
            Err(VerifyError::Missing(HEADER))
        );
        assert_eq!(
            Drift.verify(&post(URL, &[], br#"{"token":12}"#), &s, now()),
            Err(VerifyError::Malformed(HEADER))
        );
        assert_eq!(
            Drift.verify(&post(URL, &[], b"token=abc"), &s, now()),
            Err(VerifyError::Malformed(HEADER))
        );
        // Two `token` keys: refused, whichever one a reader would take.
        let dup = format!(r#"{{"token":"{TOKEN}","token":"evil"}}"#);
        assert_eq!(
            Drift.verify(&post(URL, &[], dup.as_bytes()), &s, now()),
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
        let lead = canonical_lead(&e);
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
        let lead = canonical_lead(&e);
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
        let lead = canonical_lead(&e);
        assert_eq!(
            lead.visitor.email.as_ref().map(|m| m.as_str()),
            Some("jane.doe@example.com")
        );
        assert!(
            matches!(parse(UPDATED_NAME_ONLY).unwrap(), Parsed::NotALead(r) if r.contains("no email"))
        );
    }

    #[test]
    fn non_leads_are_acknowledged() {
        assert!(
            matches!(parse(NEW_MESSAGE).unwrap(), Parsed::NotALead(r) if r.starts_with("new_message"))
        );
        assert!(
            matches!(parse(br#"{"type":"new_conversation","data":{}}"#).unwrap(), Parsed::NotALead(r) if r.contains("new_conversation"))
        );
        assert!(matches!(
            parse(br#"{"data":{}}"#).unwrap(),
            Parsed::NotALead(_)
        ));
        assert!(matches!(
            parse(br#"{"type":"contact_identified"}"#).unwrap(),
            Parsed::NotALead(_)
        ));
        // The integrator-observed shape (endUserId only) names no one.
        assert!(matches!(
            parse(br#"{"type":"contact_identified","data":{"endUserId":5}}"#).unwrap(),
            Parsed::NotALead(r) if r.contains("contact 5")
        ));
        // A blank email is no identity.
        assert!(matches!(
            parse(br#"{"type":"contact_identified","data":{"id":1,"attributes":{"email":" "}}}"#)
                .unwrap(),
            Parsed::NotALead(_)
        ));
    }

    #[test]
    fn garbage_is_not_json() {
        for body in [&b"not json"[..], b"", b"{\"type\":1,\"type\":2}"] {
            assert!(matches!(parse(body), Err(ParseError::NotJson(_))));
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
            phone: "+447400123456",
            text: "I'd like a demo",
            ..ada(now())
        };
        let (ct, body) = Drift.sample(&lead, &SourceOptions::default());
        assert_eq!(ct, "application/json");
        assert_signed_verifies(&Drift, URL, &body, "s3cret", now());
        let e = one_lead(&body);
        assert_eq!(
            e["event_id"],
            format!(
                "drift:contact_identified:349999553:{}",
                now().timestamp_millis()
            )
        );
        let ev = canonical_lead(&e);
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
