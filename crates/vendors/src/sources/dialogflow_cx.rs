//! Dialogflow CX (Conversational Agents): the agent calls its webhook as
//! fulfillment, on every turn a route, page or parameter is configured to.
//!
//! Authentication: CX signs no body. Its webhook resource (`GenericWebService`,
//! <https://cloud.google.com/python/docs/reference/dialogflow-cx/1.6.0/google.cloud.dialogflowcx_v3.types.Webhook.GenericWebService>,
//! <https://cloud.google.com/php/docs/reference/cloud-dialogflow-cx/latest/V3.Webhook.GenericWebService>)
//! sends what the agent owner configures: `username`/`password` ("The user
//! name/password for HTTP Basic authentication") and `requestHeaders` ("The
//! HTTP request headers to send together with webhook requests"). Accepted,
//! each compared in constant time with every secret (rotation):
//! - `Authorization: Basic base64(user:password)` where `user:password` is a secret;
//! - `x-leadbridge-token: <secret>`, a request header set in the webhook's settings;
//! - `Authorization: Bearer <secret>` (a static request header).
//!
//! Any one matching is enough: with Google service-agent auth switched on, CX
//! puts its own ID token in `Authorization` and the secret travels in
//! `x-leadbridge-token`. Google ID tokens themselves are not verified here.
//!
//! Payload: `WebhookRequest`
//! (<https://cloud.google.com/dialogflow/cx/docs/reference/rest/v3/WebhookRequest>;
//! "You may see undocumented fields … should be ignored"):
//! - identity from `sessionInfo.parameters` (keyed by the parameters' display
//!   names) and `pageInfo.formInfo.parameterInfo[]` (`displayName` → `value`;
//!   a session parameter wins over a form parameter of the same name). Names
//!   are matched case-insensitively, ignoring `-`, `_` and spaces:
//!   `email`/`email_address` → email, `phone`/`phone_number` → phone,
//!   `name`/`full_name`/`person` → name, `first_name`/`given-name` → first name,
//!   `last_name`/`last-name`/`family_name` → last name, `company`/`company_name`
//!   → company. A value is a string (`@sys.email`, `@sys.phone-number`), a
//!   number (stringified) or an object with `name` (`@sys.person`; its exact
//!   shape is not in Google's reference, `original` is read as a fallback);
//! - every other string, number, boolean (or list of them) parameter →
//!   `answers`, except the `leadbridge_*` parameters this kind sets itself;
//! - event id `<session id>:<detectIntentResponseId>` (session id = last path
//!   segment of `sessionInfo.session`; `detectIntentResponseId` is "always
//!   present", one per turn; a request without it falls back to a hash of the
//!   body), time = now, `conversation_id` and `context.session_id` = session
//!   id, `context.channel` = `chat`, one transcript line from `text` (or the
//!   speech `transcript`), `intent.primary` = `intentInfo.displayName`.
//!
//! A turn where no email or phone has been collected yet is not a lead. Every
//! turn after one has is a `lead.created` event of its own (the contact is
//! matched on its email/phone): attach the webhook where the lead is complete
//! (the end of the contact form), not to every turn.
//!
//! Reply: CX needs a `WebhookResponse` with 200 for the flow to go on
//! (<https://cloud.google.com/dialogflow/cx/docs/reference/rest/v3/WebhookResponse>:
//! `fulfillmentResponse` "can be omitted"; `sessionInfo.parameters` are set on
//! the session). Every outcome answers
//! `{"fulfillmentResponse": {"messages": []}, "sessionInfo": {"parameters":
//! {"leadbridge_status": "queued" | "ignored" | "rejected"}}}` (and
//! `leadbridge_code` for a rejection), so the agent can branch on it.

use base64::alphabet;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use base64::Engine;
use chrono::{DateTime, Utc};
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};

use crate::source::{
    credential_matches, json_body, Inbound, Outcome, Parsed, Reply, Sample, SourceContext,
    SourceKind, SourceOptions, SourceSecrets, VerifyError,
};
use crate::ParseError;

/// The kind `dialogflow_cx`.
pub struct DialogflowCx;

/// The request header a CX webhook can be configured to send with the secret.
pub const TOKEN_HEADER: &str = "x-leadbridge-token";
/// Longest credential read.
const MAX_CREDENTIAL: usize = 4 * 1024;

const LENIENT_B64: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// Identity fields and the parameter names (normalized: lower case, no `-`,
/// `_` or spaces) read for each.
const IDENTITY: [(&str, &[&str]); 6] = [
    ("email", &["email", "emailaddress"]),
    ("phone", &["phone", "phonenumber"]),
    ("name", &["name", "fullname", "person"]),
    ("first_name", &["firstname", "givenname"]),
    ("last_name", &["lastname", "familyname"]),
    ("company", &["company", "companyname"]),
];

fn normalized(key: &str) -> String {
    key.chars()
        .filter(|c| !matches!(c, '-' | '_' | ' '))
        .flat_map(char::to_lowercase)
        .collect()
}

fn identity_field(key: &str) -> Option<&'static str> {
    let n = normalized(key);
    IDENTITY
        .iter()
        .find(|(_, names)| names.contains(&n.as_str()))
        .map(|(field, _)| *field)
}

/// The text of an identity parameter's value.
fn identity_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) if !s.trim().is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Object(o) => ["name", "original"]
            .iter()
            .filter_map(|k| o.get(*k).and_then(Value::as_str))
            .find(|s| !s.trim().is_empty())
            .map(str::to_string),
        _ => None,
    }
}

fn is_answer(v: &Value) -> bool {
    match v {
        Value::String(_) | Value::Number(_) | Value::Bool(_) => true,
        Value::Array(items) => {
            !items.is_empty()
                && items
                    .iter()
                    .all(|i| matches!(i, Value::String(_) | Value::Number(_) | Value::Bool(_)))
        }
        _ => false,
    }
}

/// The session id: the last path segment of `sessionInfo.session`.
pub fn session_id(request: &Value) -> Option<&str> {
    request
        .pointer("/sessionInfo/session")
        .and_then(Value::as_str)
        .and_then(|s| s.trim().rsplit('/').next())
        .filter(|s| !s.is_empty())
}

/// Every parameter: session parameters, then form parameters not already there.
fn parameters(request: &Value) -> Vec<(String, Value)> {
    let mut out: Vec<(String, Value)> = Vec::new();
    if let Some(p) = request
        .pointer("/sessionInfo/parameters")
        .and_then(Value::as_object)
    {
        out.extend(p.iter().map(|(k, v)| (k.clone(), v.clone())));
    }
    if let Some(list) = request
        .pointer("/pageInfo/formInfo/parameterInfo")
        .and_then(Value::as_array)
    {
        for item in list {
            let (Some(name), Some(value)) = (
                item.get("displayName").and_then(Value::as_str),
                item.get("value"),
            ) else {
                continue;
            };
            if !out.iter().any(|(k, _)| k == name) {
                out.push((name.to_string(), value.clone()));
            }
        }
    }
    out
}

impl SourceKind for DialogflowCx {
    fn name(&self) -> &'static str {
        "dialogflow_cx"
    }

    fn verify(
        &self,
        req: &Inbound<'_>,
        secrets: &SourceSecrets,
        _now: DateTime<Utc>,
    ) -> Result<(), VerifyError> {
        let secrets = secrets.required()?;
        let auth = req.header("authorization");
        let token = req.header(TOKEN_HEADER);
        if auth.is_none() && token.is_none() {
            return Err(VerifyError::Missing("Authorization"));
        }
        let mut presented: Vec<Vec<u8>> = Vec::new();
        if let Some(t) = token {
            if t.len() > MAX_CREDENTIAL {
                return Err(VerifyError::Malformed(TOKEN_HEADER));
            }
            presented.push(t.trim().as_bytes().to_vec());
        }
        let mut auth_malformed = false;
        if let Some(a) = auth {
            let a = a.trim();
            let parsed = if a.len() > MAX_CREDENTIAL {
                None
            } else {
                match a.split_once(' ') {
                    Some((scheme, rest)) if scheme.eq_ignore_ascii_case("basic") => LENIENT_B64
                        .decode(rest.trim())
                        .ok()
                        .filter(|userpass| userpass.contains(&b':')),
                    Some((scheme, rest)) if scheme.eq_ignore_ascii_case("bearer") => {
                        Some(rest.trim().as_bytes().to_vec())
                    }
                    _ => None,
                }
            };
            match parsed {
                Some(p) => presented.push(p),
                None => auth_malformed = true,
            }
        }
        if credential_matches(&presented, secrets) {
            Ok(())
        } else if presented.is_empty() && auth_malformed {
            Err(VerifyError::Malformed("Authorization"))
        } else {
            Err(VerifyError::Mismatch)
        }
    }

    fn parse(&self, req: &Inbound<'_>, cx: &SourceContext<'_>) -> Result<Parsed, ParseError> {
        let request =
            crate::json::parse_strict(req.body).map_err(|e| ParseError::NotJson(e.to_string()))?;
        if !request.is_object() {
            return Ok(Parsed::NotALead(
                "not a Dialogflow CX WebhookRequest".to_string(),
            ));
        }
        let mut visitor = Map::new();
        let mut answers = Map::new();
        for (key, value) in parameters(&request) {
            match identity_field(&key) {
                Some(field) if visitor.contains_key(field) => {}
                Some(field) => {
                    if let Some(text) = identity_text(&value) {
                        visitor.insert(field.to_string(), Value::String(text));
                    }
                }
                None if key.starts_with("leadbridge_") => {}
                None if is_answer(&value) => {
                    answers.insert(key, value);
                }
                None => {}
            }
        }
        if !visitor.contains_key("email") && !visitor.contains_key("phone") {
            return Ok(Parsed::NotALead("no identity collected yet".to_string()));
        }
        let session = session_id(&request);
        let turn = request
            .get("detectIntentResponseId")
            .and_then(Value::as_str)
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .unwrap_or_else(|| format!("sha256-{}", hex::encode(Sha256::digest(req.body))));
        let vendor_id = match session {
            Some(s) => format!("{s}:{turn}"),
            None => turn,
        };
        let mut event = cx.event(&vendor_id, "lead.created", cx.now);
        let out = event.as_object_mut().expect("cx.event is an object");
        out.insert("visitor".into(), Value::Object(visitor));
        let mut context = Map::new();
        context.insert("channel".into(), json!("chat"));
        if let Some(s) = session {
            out.insert("conversation_id".into(), json!(s));
            context.insert("session_id".into(), json!(s));
        }
        out.insert("context".into(), Value::Object(context));
        if let Some(intent) = request
            .pointer("/intentInfo/displayName")
            .and_then(Value::as_str)
            .filter(|s| !s.trim().is_empty())
        {
            out.insert("intent".into(), json!({ "primary": intent }));
        }
        if !answers.is_empty() {
            out.insert("answers".into(), Value::Object(answers));
        }
        if let Some(text) = ["text", "transcript"]
            .iter()
            .filter_map(|k| request.get(*k).and_then(Value::as_str))
            .find(|s| !s.trim().is_empty())
        {
            let at = cx.now.to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
            out.insert(
                "transcript".into(),
                json!({"lines": [{"at": at, "from": "visitor", "text": text}]}),
            );
        }
        Ok(Parsed::Leads(vec![event]))
    }

    fn reply(&self, outcome: &Outcome) -> Reply {
        let mut params = Map::new();
        let status = match outcome {
            Outcome::Accepted { .. } => "queued",
            Outcome::Ignored { .. } => "ignored",
            Outcome::Rejected { code, .. } => {
                params.insert("leadbridge_code".into(), json!(code));
                "rejected"
            }
        };
        params.insert("leadbridge_status".into(), json!(status));
        Reply::json(
            200,
            &json!({
                "fulfillmentResponse": {"messages": []},
                "sessionInfo": {"parameters": params},
            }),
        )
    }

    /// A secret `user:password` is sent as Basic authentication, any other as
    /// the `x-leadbridge-token` request header.
    fn sign(
        &self,
        _url: &str,
        _body: &[u8],
        secret: &str,
        _now: DateTime<Utc>,
    ) -> Vec<(String, String)> {
        if secret.contains(':') {
            vec![(
                "authorization".to_string(),
                format!(
                    "Basic {}",
                    base64::engine::general_purpose::STANDARD.encode(secret)
                ),
            )]
        } else {
            vec![(TOKEN_HEADER.to_string(), secret.to_string())]
        }
    }

    /// A `WebhookRequest` from the last page of a contact form.
    fn sample(&self, lead: &Sample<'_>, _options: &SourceOptions) -> (String, Vec<u8>) {
        let agent =
            "projects/leadbridge-demo/locations/global/agents/7623161c-adfd-4acc-9de7-66946d751595";
        let mut params = Map::new();
        let mut form = Vec::new();
        for (key, value) in [("email", lead.email), ("phone_number", lead.phone)] {
            if !value.is_empty() {
                params.insert(key.into(), json!(value));
                form.push(json!({"displayName": key, "required": true, "state": "FILLED", "value": value}));
            }
        }
        if !lead.name.is_empty() {
            params.insert("person".into(), json!({ "name": lead.name }));
        }
        let body = json!({
            "detectIntentResponseId": lead.vendor_id,
            "intentInfo": {
                "lastMatchedIntent": format!("{agent}/intents/3f1c2b9e-8a4d-4e6f-b1a2-9c8d7e6f5a4b"),
                "displayName": "provide.contact_details",
                "confidence": 1.0,
            },
            "pageInfo": {
                "currentPage": format!("{agent}/flows/00000000-0000-0000-0000-000000000000/pages/928b3fb4-d1c0-4fd1-a254-46fa460373ec"),
                "displayName": "Contact details",
                "formInfo": {"parameterInfo": form},
            },
            "sessionInfo": {
                "session": format!("{agent}/sessions/demo-session-1"),
                "parameters": params,
            },
            "fulfillmentInfo": {"tag": "leadbridge"},
            "text": lead.text,
            "languageCode": "en",
        });
        json_body(&body)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::canonical::{parse_value_with, Normalization};
    use crate::testing::{
        self, assert_signed_verifies, at, canonical_lead, context, fixture, pairs, post, secrets,
        HOSTILE_BODIES,
    };

    const URL: &str = "https://leads.example.com/v1/sources/cx";

    const PHONELINE: &[u8] = fixture!("dialogflow_cx/python_docs_samples_validate_phoneline.json");
    const SESSION: &[u8] = fixture!("dialogflow_cx/python_docs_samples_log_session_info.json");
    const SESSION_ENV: &[u8] =
        fixture!("dialogflow_cx/python_docs_samples_log_session_info_env.json");
    const WELCOME: &[u8] = fixture!("dialogflow_cx/python_docs_samples_default_welcome.json");
    const NULLS: &[u8] = fixture!("dialogflow_cx/python_docs_samples_default_tag.json");
    const LEAD: &[u8] = fixture!("dialogflow_cx/lead_capture.CONSTRUCTED.json");

    fn now() -> DateTime<Utc> {
        at(1_777_000_000)
    }

    fn verify(headers: &[(String, String)], s: &[&str]) -> Result<(), VerifyError> {
        DialogflowCx.verify(&post(URL, headers, b"{}"), &secrets(s), now())
    }

    fn parse(body: &[u8]) -> Result<Parsed, ParseError> {
        DialogflowCx.parse(&post(URL, &[], body), &context("cx", "bot_cx", now()))
    }

    fn one_lead(body: &[u8]) -> Value {
        testing::one_lead(parse(body).unwrap())
    }

    fn basic(userpass: &str) -> String {
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(userpass)
        )
    }

    #[test]
    fn basic_auth_bearer_and_token_header_verify() {
        let s = ["cx-user:s3cret-pass"];
        assert_eq!(
            verify(
                &pairs(&[("authorization", &basic("cx-user:s3cret-pass"))]),
                &s
            ),
            Ok(())
        );
        assert_eq!(
            verify(&pairs(&[("authorization", "Bearer tok_123")]), &["tok_123"]),
            Ok(())
        );
        assert_eq!(
            verify(&pairs(&[("authorization", "bearer tok_123")]), &["tok_123"]),
            Ok(())
        );
        assert_eq!(
            verify(&pairs(&[(TOKEN_HEADER, "tok_123")]), &["tok_123"]),
            Ok(())
        );
        // Google's ID token in Authorization, the secret in the custom header.
        assert_eq!(
            verify(
                &pairs(&[
                    ("authorization", "Bearer eyJhbGciOi.x.y"),
                    (TOKEN_HEADER, "tok_123")
                ]),
                &["tok_123"]
            ),
            Ok(())
        );
    }

    #[test]
    fn rotation_and_refusals() {
        assert_eq!(
            verify(&pairs(&[(TOKEN_HEADER, "old")]), &["new", "old"]),
            Ok(())
        );
        assert_eq!(
            verify(&pairs(&[(TOKEN_HEADER, "olds")]), &["new", "old"]),
            Err(VerifyError::Mismatch)
        );
        assert_eq!(
            verify(
                &pairs(&[("authorization", &basic("cx-user:wrong"))]),
                &["cx-user:s3cret"]
            ),
            Err(VerifyError::Mismatch)
        );
        assert_eq!(
            verify(&pairs(&[]), &["x"]),
            Err(VerifyError::Missing("Authorization"))
        );
        assert_eq!(
            verify(&pairs(&[("authorization", "Negotiate abc")]), &["x"]),
            Err(VerifyError::Malformed("Authorization"))
        );
        assert_eq!(
            verify(&pairs(&[("authorization", "Basic %%%")]), &["x"]),
            Err(VerifyError::Malformed("Authorization"))
        );
        assert_eq!(
            verify(
                &pairs(&[("authorization", &basic("nocolon"))]),
                &["nocolon"]
            ),
            Err(VerifyError::Malformed("Authorization"))
        );
        let huge = "Bearer ".to_string() + &"a".repeat(100_000);
        assert!(verify(&pairs(&[("authorization", &huge)]), &["x"]).is_err());
        assert_eq!(
            verify(&pairs(&[(TOKEN_HEADER, "x")]), &[]),
            Err(VerifyError::NoSecret)
        );
    }

    #[test]
    fn the_constructed_lead_request_maps_identity_answers_and_context() {
        let v = one_lead(LEAD);
        assert_eq!(
            v["event_id"],
            "cx:da0a27-077-9f8-cf7-56abf3b65:5a1f8c2e-7d3b-4c9a-9e21-0b6f4d8a3c71"
        );
        assert_eq!(v["event_type"], "lead.created");
        assert_eq!(v["conversation_id"], "da0a27-077-9f8-cf7-56abf3b65");
        assert_eq!(v["visitor"]["name"], "Jordan Lee");
        assert_eq!(v["visitor"]["first_name"], "Jordan");
        assert_eq!(v["visitor"]["last_name"], "Lee");
        assert_eq!(v["answers"]["seats"], 25);
        assert!(v["answers"].get("leadbridge_status").is_none());
        assert!(v["answers"].get("email").is_none());
        let e = canonical_lead(&v);
        assert_eq!(e.visitor.email.unwrap().as_str(), "jordan.lee@example.com");
        assert_eq!(e.visitor.phone.unwrap().as_str(), "+442079460958");
        assert_eq!(e.visitor.company.as_deref(), Some("Globex Ltd"));
        assert_eq!(e.answers["budget"], "5000");
        assert_eq!(e.answers["newsletter"], "true");
        assert_eq!(e.answers["plan"], "Pro");
        assert_eq!(e.context.channel.as_deref(), Some("chat"));
        assert_eq!(
            e.context.session_id.as_deref(),
            Some("da0a27-077-9f8-cf7-56abf3b65")
        );
        assert_eq!(
            e.intent.unwrap().primary.as_deref(),
            Some("provide.contact_details")
        );
        let t = e.transcript.unwrap();
        assert_eq!(t.lines[0].text, "my email is jordan.lee@example.com");
        assert_eq!(t.lines[0].from, "visitor");
        // The same turn again is the same event.
        assert_eq!(one_lead(LEAD)["event_id"], v["event_id"]);
    }

    #[test]
    fn the_official_phone_line_request_is_a_phone_lead() {
        let v = one_lead(PHONELINE);
        assert_eq!(v["visitor"]["phone"], "5105105100");
        assert!(v["event_id"].as_str().unwrap().starts_with("cx:sha256-"));
        assert_eq!(one_lead(PHONELINE)["event_id"], v["event_id"]);
        // A national number: refused without the bot's region, E.164 with it.
        assert!(parse_value_with(&v, &Normalization::default()).is_err());
        let us = Normalization {
            phone_region: Some("US".into()),
            ..Normalization::default()
        };
        let e = parse_value_with(&v, &us).unwrap();
        assert_eq!(e.visitor.phone.unwrap().as_str(), "+15105105100");
    }

    #[test]
    fn official_requests_without_identity_are_not_leads() {
        for body in [SESSION, SESSION_ENV, WELCOME, NULLS, b"{}".as_slice()] {
            assert_eq!(
                parse(body).unwrap(),
                Parsed::NotALead("no identity collected yet".into())
            );
        }
        assert!(matches!(parse(b"[]").unwrap(), Parsed::NotALead(_)));
        let s: Value = serde_json::from_slice(SESSION_ENV).unwrap();
        assert_eq!(session_id(&s), Some("d0bdaa0c-0d00-0000-b0eb-b00b0db000b0"));
        let s: Value = serde_json::from_slice(SESSION).unwrap();
        assert_eq!(session_id(&s), Some("d0bdaa0c-0d00-0000-b0eb-b00b0db000b0"));
    }

    #[test]
    fn garbage_is_not_json() {
        assert!(matches!(parse(b"{nope"), Err(ParseError::NotJson(_))));
        assert!(matches!(parse(&[0xff, 0x00]), Err(ParseError::NotJson(_))));
    }

    #[test]
    fn every_outcome_answers_a_webhook_response() {
        let cases = [
            (
                Outcome::Accepted {
                    event_ids: vec!["cx:a".into()],
                    duplicate: false,
                },
                "queued",
            ),
            (
                Outcome::Ignored {
                    reason: "no identity collected yet".into(),
                },
                "ignored",
            ),
            (
                Outcome::Rejected {
                    status: 422,
                    code: "invalid_event".into(),
                    errors: vec![],
                },
                "rejected",
            ),
        ];
        for (outcome, status) in cases {
            let r = DialogflowCx.reply(&outcome);
            assert_eq!((r.status, r.content_type), (200, "application/json"));
            let v: Value = serde_json::from_str(&r.body).unwrap();
            assert_eq!(v["fulfillmentResponse"]["messages"], json!([]));
            assert_eq!(v["sessionInfo"]["parameters"]["leadbridge_status"], status);
        }
    }

    #[test]
    fn sign_and_sample_round_trip() {
        let lead = Sample {
            vendor_id: "5a1f8c2e-0000-4c9a-9e21-0b6f4d8a3c71",
            name: "Priya Sharma",
            email: "priya@example.com",
            phone: "+919876543210",
            text: "I'd like a demo",
            at: now(),
        };
        let (ct, body) = DialogflowCx.sample(&lead, &SourceOptions::default());
        assert_eq!(ct, "application/json");
        for secret in ["tok_abc", "cx-user:pw:with:colons"] {
            assert_signed_verifies(&DialogflowCx, URL, &body, secret, now());
        }
        let v = one_lead(&body);
        assert_eq!(
            v["event_id"],
            "cx:demo-session-1:5a1f8c2e-0000-4c9a-9e21-0b6f4d8a3c71"
        );
        let e = canonical_lead(&v);
        assert_eq!(e.visitor.email.unwrap().as_str(), "priya@example.com");
        assert_eq!(e.visitor.phone.unwrap().as_str(), "+919876543210");
        assert_eq!(e.visitor.name.as_deref(), Some("Priya Sharma"));
        assert_eq!(e.transcript.unwrap().lines[0].text, "I'd like a demo");
    }

    #[test]
    fn hostile_inputs_never_panic() {
        let weird = [
            "",
            " ",
            "Basic",
            "Basic ",
            "Bearer",
            "Basic Og==",
            "Basic ::::",
            "\u{0}",
            "é é",
            "Bearer \u{0}",
        ];
        for a in weird {
            for b in weird {
                let _ = verify(
                    &pairs(&[("authorization", a), (TOKEN_HEADER, b)]),
                    &[a, "x:y"],
                );
            }
        }
        for body in HOSTILE_BODIES {
            let _ = parse(body);
        }
    }
}
