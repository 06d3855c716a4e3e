//! Standard Webhooks (<https://www.standardwebhooks.com>): any producer that
//! signs its webhooks the Standard Webhooks way (Svix and the services built on
//! it, and every producer using the reference libraries).
//!
//! Authentication (spec `spec/standard-webhooks.md` "Signature scheme" and
//! "Webhook headers", repository `standard-webhooks/standard-webhooks`):
//! - headers `webhook-id` (unique per message, the same on every retry),
//!   `webhook-timestamp` (integer unix seconds of the attempt) and
//!   `webhook-signature`: a space-delimited list of `v1,<base64>` (HMAC-SHA256)
//!   and other versions (`v1a,` ed25519), ignored here; one `v1` entry
//!   matching is enough (zero-downtime rotation on the sender's side);
//! - signed content `{webhook-id}.{timestamp}.{raw body}`, HMAC-SHA256 keyed
//!   with the base64-decoded secret; the secret is written `whsec_<base64>`;
//!   the reference libraries also take it without the prefix
//!   (`libraries/python/standardwebhooks/webhooks.py`, `libraries/javascript/src/index.ts`)
//!   and Python adds missing padding, so both are accepted here;
//! - the timestamp must be within ±5 minutes of the receiver's clock
//!   (`TOLERANCE_IN_SECONDS = 5 * 60` and `verify_timestamp` in
//!   `libraries/rust/src/lib.rs`: `now - ts > 300` or `ts > now + 300` refuse);
//! - the branded `svix-id`/`svix-timestamp`/`svix-signature` names are taken
//!   too, as Svix's own libraries do (`svix/svix-webhooks`, `python/svix/webhooks.py`:
//!   the `svix-*` set first, the `webhook-*` set otherwise). Here the family is
//!   chosen by which names are present: `webhook-*` when any of them is.
//!
//! A secret that is empty or not base64 verifies nothing: with no usable
//! secret the answer is [`VerifyError::NoSecret`] (the reference libraries
//! refuse such a secret when the verifier is built).
//!
//! Payload (spec "Payload structure"): the recommended `{type, timestamp, data}`
//! where `data` may also be "squashed" into the top-level object. `data` is
//! read as a lead:
//! - when it has `visitor`, it is the canonical event body without
//!   id/type/time/bot: `visitor`, `context`, `answers`, `transcript`,
//!   `consent`, `intent`, `conversation_id` are copied as they are;
//! - otherwise flat fields become the visitor: `email`, `phone`, `name`,
//!   `first_name`, `last_name`, `company`, and the camelCase names of the
//!   spec's own `contact.created` example (`fullName`, `phoneNumber`,
//!   `firstName`, `lastName`, `emailAddress`) and their snake_case forms.
//!
//! Event id: the `webhook-id` (stable across retries, so a redelivery is a
//! duplicate). Time: `timestamp` (ISO 8601 / RFC 3339), else the
//! `webhook-timestamp` header, else now. Event type: `type` when it is a
//! canonical type, `lead.created` for a type ending in `.created` (or none),
//! `lead.updated` for any other; a non-canonical type that carries no identity
//! (`invoice.paid`, a thin `contact.created` with only an id) is not a lead.
//! Reply: the default JSON, 200 (the spec: any 2xx is success).
//!
//! The official Rust crate `standardwebhooks` is not used: it needs an
//! `http::HeaderMap` (a new dependency here), reads no `svix-*` names, refuses
//! non-UTF-8 bodies, takes one secret per verifier and folds every failure into
//! a few error kinds; the scheme is 30 lines on `hmac`/`sha2`/`base64`.

use base64::alphabet;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use base64::Engine;
use chrono::{DateTime, Utc};
use lb_domain::EventType;
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};

use crate::source::{
    credential_matches, hmac_sha256, json_body, ok_or_mismatch, vendor_time, Inbound, Parsed,
    Sample, SourceContext, SourceKind, SourceOptions, SourceSecrets, VerifyError,
};
use crate::ParseError;

/// The kind `standard_webhooks`.
pub struct StandardWebhooks;

/// How far the `webhook-timestamp` may be from the receiver's clock, either way.
pub const TOLERANCE_SECONDS: i64 = 5 * 60;

const SECRET_PREFIX: &str = "whsec_";
/// Longest signature header read (a list of a few dozen signatures at most).
const MAX_SIGNATURE_HEADER: usize = 16 * 1024;
/// Most signature entries compared.
const MAX_SIGNATURES: usize = 64;

/// Standard base64 that takes a value with or without its `=` padding.
const LENIENT_B64: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new()
        .with_decode_padding_mode(DecodePaddingMode::Indifferent)
        .with_decode_allow_trailing_bits(true),
);

/// One family of header names.
struct Names {
    id: &'static str,
    timestamp: &'static str,
    signature: &'static str,
}

const UNBRANDED: Names = Names {
    id: "webhook-id",
    timestamp: "webhook-timestamp",
    signature: "webhook-signature",
};
const SVIX: Names = Names {
    id: "svix-id",
    timestamp: "svix-timestamp",
    signature: "svix-signature",
};

/// The `webhook-*` names when any of them is present, else `svix-*` when any
/// of those is, else `webhook-*` (named in the "missing" answer).
fn names(req: &Inbound<'_>) -> &'static Names {
    let any = |n: &Names| {
        [n.id, n.timestamp, n.signature]
            .iter()
            .any(|h| req.header(h).is_some())
    };
    if !any(&UNBRANDED) && any(&SVIX) {
        &SVIX
    } else {
        &UNBRANDED
    }
}

/// The HMAC key of a `whsec_<base64>` (or bare base64) secret; `None` when
/// it is empty or not base64.
pub fn secret_key(secret: &str) -> Option<Vec<u8>> {
    let s = secret.trim();
    let s = s.strip_prefix(SECRET_PREFIX).unwrap_or(s);
    LENIENT_B64.decode(s).ok().filter(|k| !k.is_empty())
}

/// `v1,<base64>` of HMAC-SHA256(key, `{msg_id}.{timestamp}.{body}`).
pub fn signature(key: &[u8], msg_id: &str, timestamp: i64, body: &[u8]) -> String {
    let ts = timestamp.to_string();
    let mac = hmac_sha256(key, &[msg_id.as_bytes(), b".", ts.as_bytes(), b".", body]);
    format!(
        "v1,{}",
        base64::engine::general_purpose::STANDARD.encode(mac)
    )
}

/// Checks the signature headers against every secret at `now`.
fn verify_headers(
    req: &Inbound<'_>,
    secrets: &SourceSecrets,
    now: DateTime<Utc>,
) -> Result<(), VerifyError> {
    let secrets = secrets.required()?;
    let keys: Vec<Vec<u8>> = secrets.iter().filter_map(|s| secret_key(s)).collect();
    if keys.is_empty() {
        return Err(VerifyError::NoSecret);
    }
    let n = names(req);
    let msg_id = req.header(n.id).ok_or(VerifyError::Missing(n.id))?;
    let ts_raw = req
        .header(n.timestamp)
        .ok_or(VerifyError::Missing(n.timestamp))?;
    let sig_header = req
        .header(n.signature)
        .ok_or(VerifyError::Missing(n.signature))?;
    if msg_id.trim().is_empty() {
        return Err(VerifyError::Malformed(n.id));
    }
    let ts: i64 = ts_raw
        .trim()
        .parse()
        .map_err(|_| VerifyError::Malformed(n.timestamp))?;
    // i128: no overflow whatever the header says.
    let skew = i128::from(now.timestamp()) - i128::from(ts);
    if skew > i128::from(TOLERANCE_SECONDS) || -skew > i128::from(TOLERANCE_SECONDS) {
        return Err(VerifyError::Stale);
    }
    if sig_header.len() > MAX_SIGNATURE_HEADER {
        return Err(VerifyError::Malformed(n.signature));
    }
    let entries: Vec<(&str, &str)> = sig_header
        .split(' ')
        .filter(|e| !e.is_empty())
        .filter_map(|e| e.split_once(','))
        .take(MAX_SIGNATURES)
        .collect();
    if entries.is_empty() {
        return Err(VerifyError::Malformed(n.signature));
    }
    let presented: Vec<Vec<u8>> = entries
        .iter()
        .filter(|(version, _)| *version == "v1")
        .filter_map(|(_, sig)| LENIENT_B64.decode(sig).ok())
        .collect();
    let ts = ts.to_string();
    let expected: Vec<Vec<u8>> = keys
        .iter()
        .map(|key| {
            hmac_sha256(
                key,
                &[msg_id.as_bytes(), b".", ts.as_bytes(), b".", req.body],
            )
        })
        .collect();
    // No early exit: the work does not depend on which entry matches.
    ok_or_mismatch(credential_matches(&presented, &expected))
}

/// The event type of a Standard Webhooks `type`.
fn event_type(t: Option<&str>) -> (&'static str, bool) {
    match t {
        None => ("lead.created", false),
        Some(t) => match EventType::parse(t) {
            Ok(canonical) => (canonical.as_str(), true),
            Err(_) if t.ends_with(".created") => ("lead.created", false),
            Err(_) => ("lead.updated", false),
        },
    }
}

/// Whether a visitor object names someone (email, phone or WhatsApp id).
fn has_identity(visitor: &Map<String, Value>) -> bool {
    ["email", "phone", "wa_id"]
        .iter()
        .any(|k| match visitor.get(*k) {
            None | Some(Value::Null) => false,
            Some(Value::String(s)) => !s.trim().is_empty(),
            Some(_) => true,
        })
}

/// Canonical keys copied from a canonical-shaped `data`.
const CANONICAL_PARTS: [&str; 7] = [
    "visitor",
    "context",
    "answers",
    "transcript",
    "consent",
    "intent",
    "conversation_id",
];

/// Flat `data` fields → visitor field (first present name wins).
const FLAT_FIELDS: [(&str, &[&str]); 6] = [
    ("email", &["email", "emailAddress", "email_address"]),
    ("phone", &["phone", "phoneNumber", "phone_number"]),
    ("name", &["name", "fullName", "full_name"]),
    ("first_name", &["first_name", "firstName"]),
    ("last_name", &["last_name", "lastName"]),
    ("company", &["company"]),
];

impl SourceKind for StandardWebhooks {
    fn name(&self) -> &'static str {
        "standard_webhooks"
    }

    fn verify(
        &self,
        req: &Inbound<'_>,
        secrets: &SourceSecrets,
        now: DateTime<Utc>,
    ) -> Result<(), VerifyError> {
        verify_headers(req, secrets, now)
    }

    fn parse(&self, req: &Inbound<'_>, cx: &SourceContext<'_>) -> Result<Parsed, ParseError> {
        let body =
            crate::json::parse_strict(req.body).map_err(|e| ParseError::NotJson(e.to_string()))?;
        let Value::Object(top) = body else {
            return Ok(Parsed::NotALead(
                "the payload is not a JSON object".to_string(),
            ));
        };
        let n = names(req);
        let msg_id = req
            .header(n.id)
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .unwrap_or_else(|| format!("sha256-{}", hex::encode(Sha256::digest(req.body))));
        let type_name = top.get("type").and_then(Value::as_str);
        let (event_type, canonical_type) = event_type(type_name);
        let occurred_at = top
            .get("timestamp")
            .and_then(vendor_time)
            .or_else(|| {
                req.header(n.timestamp)
                    .and_then(|t| t.trim().parse::<i64>().ok())
                    .and_then(|t| DateTime::from_timestamp(t, 0))
            })
            .unwrap_or(cx.now);
        // `data`, or the top-level object itself when the data is squashed into it.
        let data = match top.get("data") {
            Some(Value::Object(d)) => d,
            Some(_) => {
                return Ok(Parsed::NotALead(
                    "the payload's data is not an object".to_string(),
                ))
            }
            None => &top,
        };
        let mut event = cx.event(&msg_id, event_type, occurred_at);
        let out = event.as_object_mut().expect("cx.event is an object");
        let identified = if data.contains_key("visitor") {
            for key in CANONICAL_PARTS {
                if let Some(v) = data.get(key) {
                    out.insert(key.to_string(), v.clone());
                }
            }
            data.get("visitor")
                .and_then(Value::as_object)
                .is_some_and(has_identity)
        } else {
            let mut visitor = Map::new();
            for (field, names) in FLAT_FIELDS {
                if let Some(v) = names
                    .iter()
                    .filter_map(|n| data.get(*n))
                    .find(|v| !v.is_null())
                {
                    visitor.insert(field.to_string(), v.clone());
                }
            }
            let identified = has_identity(&visitor);
            out.insert("visitor".to_string(), Value::Object(visitor));
            identified
        };
        if !identified && !canonical_type {
            return Ok(Parsed::NotALead(format!(
                "{} carries no email or phone",
                type_name.unwrap_or("the delivery")
            )));
        }
        Ok(Parsed::Leads(vec![event]))
    }

    /// `webhook-id` is `msg_` and a hash of the body (the same body signs to
    /// the same id, as a redelivery would); a secret that is not a usable
    /// `whsec_` secret signs nothing (no `webhook-signature`).
    fn sign(
        &self,
        _url: &str,
        body: &[u8],
        secret: &str,
        now: DateTime<Utc>,
    ) -> Vec<(String, String)> {
        let msg_id = format!("msg_{}", &hex::encode(Sha256::digest(body))[..27]);
        let ts = now.timestamp();
        let mut headers = vec![
            ("webhook-id".to_string(), msg_id.clone()),
            ("webhook-timestamp".to_string(), ts.to_string()),
        ];
        if let Some(key) = secret_key(secret) {
            headers.push((
                "webhook-signature".to_string(),
                signature(&key, &msg_id, ts, body),
            ));
        }
        headers
    }

    /// The spec's recommended payload with a canonical-shaped `data`.
    fn sample(&self, lead: &Sample<'_>, _options: &SourceOptions) -> (String, Vec<u8>) {
        let at = lead.at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        let mut visitor = Map::new();
        if !lead.email.is_empty() {
            visitor.insert("email".into(), json!(lead.email));
        }
        if !lead.phone.is_empty() {
            visitor.insert("phone".into(), json!(lead.phone));
        }
        if !lead.name.is_empty() {
            visitor.insert("name".into(), json!(lead.name));
        }
        let body = json!({
            "type": "lead.created",
            "timestamp": at,
            "data": {
                "id": lead.vendor_id,
                "conversation_id": lead.vendor_id,
                "visitor": visitor,
                "context": {"channel": "chat"},
                "transcript": {"lines": [{"at": at, "from": "visitor", "text": lead.text}]},
            },
        });
        json_body(&body)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::canonical::{parse_value_with, Normalization};
    use crate::source::Outcome;
    use crate::testing::{
        at, canonical_lead, context, fixture, one_lead, post, secrets, HOSTILE_BODIES,
    };

    const URL: &str = "https://leads.example.com/v1/sources/sw";

    const VECTORS: &[u8] = fixture!("standard_webhooks/vectors.json");
    const FULL: &[u8] = fixture!("standard_webhooks/spec_contact_created_full.json");
    const THIN: &[u8] = fixture!("standard_webhooks/spec_contact_created_thin.json");
    const EXAMPLE: &[u8] = fixture!("standard_webhooks/spec_example_event.json");
    const LEAD: &[u8] = fixture!("standard_webhooks/lead_created.CONSTRUCTED.json");

    const SECRET: &str = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD";
    const MSG_ID: &str = "msg_27UH4WbU6Z5A5EzD8u03UvzRbpk";
    const TS: i64 = 1_649_367_553;
    const PAYLOAD: &[u8] = br#"{"email":"test@example.com","username":"test_user"}"#;
    const SIG: &str = "v1,tZ1I4/hDygAJgO5TYxiSd6Sd0kDW6hPenDe+bTa3Kkw=";

    fn headers(id: &str, ts: &str, sig: &str) -> Vec<(String, String)> {
        vec![
            ("webhook-id".into(), id.into()),
            ("webhook-timestamp".into(), ts.into()),
            ("webhook-signature".into(), sig.into()),
        ]
    }

    fn verify(
        h: &[(String, String)],
        body: &[u8],
        s: &[&str],
        now: i64,
    ) -> Result<(), VerifyError> {
        StandardWebhooks.verify(&post(URL, h, body), &secrets(s), at(now))
    }

    fn cx() -> SourceContext<'static> {
        context("sw", "bot_sw", at(1_777_000_000))
    }

    fn parse(h: &[(String, String)], body: &[u8]) -> Parsed {
        StandardWebhooks.parse(&post(URL, h, body), &cx()).unwrap()
    }

    #[test]
    fn official_signing_vectors() {
        let v: Value = serde_json::from_slice(VECTORS).unwrap();
        let signing = v["signing"].as_array().unwrap();
        assert_eq!(signing.len(), 2);
        for s in signing {
            let key = secret_key(s["secret"].as_str().unwrap()).unwrap();
            let got = signature(
                &key,
                s["msg_id"].as_str().unwrap(),
                s["timestamp"].as_i64().unwrap(),
                s["payload"].as_str().unwrap().as_bytes(),
            );
            assert_eq!(got, s["signature"].as_str().unwrap(), "{}", s["name"]);
        }
    }

    #[test]
    fn official_verify_vectors() {
        let v: Value = serde_json::from_slice(VECTORS).unwrap();
        let signing = v["signing"].as_array().unwrap();
        let cases = v["verify"].as_array().unwrap();
        assert!(cases.len() >= 15);
        for c in cases {
            let name = c["name"].as_str().unwrap();
            let vector = &signing[c["vector"].as_u64().unwrap() as usize];
            let secret = c
                .get("secret")
                .or(vector.get("secret"))
                .and_then(Value::as_str)
                .unwrap();
            let ts = vector["timestamp"].as_i64().unwrap();
            let ts_header = c
                .get("timestamp_header")
                .and_then(Value::as_str)
                .map(str::to_string)
                .unwrap_or_else(|| ts.to_string());
            let now = c.get("now").and_then(Value::as_i64).unwrap_or(ts);
            let h = headers(
                vector["msg_id"].as_str().unwrap(),
                &ts_header,
                c["signature_header"].as_str().unwrap(),
            );
            let got = verify(
                &h,
                vector["payload"].as_str().unwrap().as_bytes(),
                &[secret],
                now,
            );
            if c["valid"].as_bool().unwrap() {
                assert_eq!(got, Ok(()), "{name}");
            } else {
                let err = got.expect_err(name);
                let kind = format!("{err:?}");
                assert!(
                    kind.starts_with(c["error"].as_str().unwrap()),
                    "{name}: {kind}"
                );
            }
        }
    }

    #[test]
    fn rotation_and_wrong_secret() {
        let h = headers(MSG_ID, &TS.to_string(), SIG);
        let other = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
        assert_eq!(verify(&h, PAYLOAD, &[other, SECRET], TS), Ok(()));
        assert_eq!(
            verify(&h, PAYLOAD, &[other], TS),
            Err(VerifyError::Mismatch)
        );
        // A secret that is not base64 is skipped, the next one still verifies.
        assert_eq!(verify(&h, PAYLOAD, &["whsec_%%%", SECRET], TS), Ok(()));
    }

    #[test]
    fn tampered_body_and_id_fail() {
        let h = headers(MSG_ID, &TS.to_string(), SIG);
        let mut body = PAYLOAD.to_vec();
        body[10] ^= 1;
        assert_eq!(verify(&h, &body, &[SECRET], TS), Err(VerifyError::Mismatch));
        let h = headers("msg_27UH4WbU6Z5A5EzD8u03UvzRbpl", &TS.to_string(), SIG);
        assert_eq!(
            verify(&h, PAYLOAD, &[SECRET], TS),
            Err(VerifyError::Mismatch)
        );
    }

    #[test]
    fn missing_and_malformed_headers() {
        let full = headers(MSG_ID, &TS.to_string(), SIG);
        for (i, name) in ["webhook-id", "webhook-timestamp", "webhook-signature"]
            .iter()
            .enumerate()
        {
            let mut h = full.clone();
            h.remove(i);
            assert_eq!(
                verify(&h, PAYLOAD, &[SECRET], TS),
                Err(VerifyError::Missing(name))
            );
        }
        assert_eq!(
            verify(&[], PAYLOAD, &[SECRET], TS),
            Err(VerifyError::Missing("webhook-id"))
        );
        let h = headers(MSG_ID, &TS.to_string(), "garbage");
        assert_eq!(
            verify(&h, PAYLOAD, &[SECRET], TS),
            Err(VerifyError::Malformed("webhook-signature"))
        );
        let h = headers(MSG_ID, "99999999999999999999999", SIG);
        assert_eq!(
            verify(&h, PAYLOAD, &[SECRET], TS),
            Err(VerifyError::Malformed("webhook-timestamp"))
        );
        let h = headers(MSG_ID, &i64::MIN.to_string(), SIG);
        assert_eq!(verify(&h, PAYLOAD, &[SECRET], TS), Err(VerifyError::Stale));
        let huge = format!("v1,{}", "A".repeat(MAX_SIGNATURE_HEADER));
        let h = headers(MSG_ID, &TS.to_string(), &huge);
        assert!(verify(&h, PAYLOAD, &[SECRET], TS).is_err());
        let many = vec!["v1,AAAA"; 10_000].join(" ") + " " + SIG;
        let h = headers(MSG_ID, &TS.to_string(), &many);
        assert!(verify(&h, PAYLOAD, &[SECRET], TS).is_err(), "bounded work");
    }

    #[test]
    fn branded_svix_headers_verify() {
        let h = vec![
            ("svix-id".to_string(), MSG_ID.to_string()),
            ("svix-timestamp".to_string(), TS.to_string()),
            ("svix-signature".to_string(), SIG.to_string()),
        ];
        assert_eq!(verify(&h, PAYLOAD, &[SECRET], TS), Ok(()));
        assert_eq!(
            verify(&h[..2], PAYLOAD, &[SECRET], TS),
            Err(VerifyError::Missing("svix-signature"))
        );
    }

    #[test]
    fn no_usable_secret() {
        let h = headers(MSG_ID, &TS.to_string(), SIG);
        assert_eq!(verify(&h, PAYLOAD, &[], TS), Err(VerifyError::NoSecret));
        assert_eq!(
            verify(&h, PAYLOAD, &["whsec_not base64!", "whsec_"], TS),
            Err(VerifyError::NoSecret)
        );
    }

    #[test]
    fn the_spec_full_contact_payload_is_a_lead() {
        let h = headers("msg_2KWPBgLlAfxdpx2AI54pPJ85f4W", "1674087231", "v1,x");
        let v = one_lead(parse(&h, FULL));
        assert_eq!(v["event_id"], "sw:msg_2KWPBgLlAfxdpx2AI54pPJ85f4W");
        assert_eq!(v["event_type"], "lead.created");
        assert_eq!(v["occurred_at"], "2022-11-03T20:26:10.344Z");
        assert_eq!(v["bot_id"], "bot_sw");
        assert_eq!(v["visitor"]["name"], "John Smith");
        assert_eq!(v["visitor"]["phone"], "(281) 332-2575");
        // A national number: the bot's region makes it E.164.
        let us = Normalization {
            phone_region: Some("US".into()),
            ..Normalization::default()
        };
        let e = parse_value_with(&v, &us).unwrap();
        assert_eq!(e.visitor.phone.unwrap().as_str(), "+12813322575");
        assert_eq!(e.visitor.name.as_deref(), Some("John Smith"));
    }

    #[test]
    fn deliveries_without_identity_are_not_leads() {
        let h = headers("msg_thin", "1674087231", "v1,x");
        assert!(matches!(parse(&h, THIN), Parsed::NotALead(r) if r.contains("contact.created")));
        assert!(matches!(parse(&h, EXAMPLE), Parsed::NotALead(_)));
        assert!(matches!(parse(&h, b"[1,2]"), Parsed::NotALead(_)));
        assert!(matches!(
            parse(&h, br#"{"type":"x.y","data":"s"}"#),
            Parsed::NotALead(_)
        ));
    }

    #[test]
    fn a_canonical_type_without_identity_goes_to_validation() {
        let h = headers("msg_1", "1674087231", "v1,x");
        let v = one_lead(parse(
            &h,
            br#"{"type":"lead.created","data":{"name":"Anon"}}"#,
        ));
        assert!(parse_value_with(&v, &Normalization::default()).is_err());
    }

    #[test]
    fn the_canonical_shaped_lead_parses() {
        let h = headers("msg_lead_1", "1777000000", "v1,x");
        let v = one_lead(parse(&h, LEAD));
        assert_eq!(v["event_id"], "sw:msg_lead_1");
        assert_eq!(v["occurred_at"], "2026-05-04T11:23:45.123Z");
        assert_eq!(v["conversation_id"], "conv_8842");
        assert!(v.get("id").is_none(), "data.id is not copied");
        let e = canonical_lead(&v);
        assert_eq!(
            e.visitor.email.unwrap().as_str(),
            "priya.sharma@example.com"
        );
        assert_eq!(e.visitor.phone.unwrap().as_str(), "+919876543210");
        assert_eq!(e.answers["seats"], "25");
        assert_eq!(
            e.intent.unwrap().primary.as_deref(),
            Some("pricing_inquiry")
        );
        assert_eq!(e.context.channel.as_deref(), Some("chat"));
        assert!(e.consent.is_some());
        assert_eq!(e.transcript.unwrap().lines.len(), 1);
    }

    #[test]
    fn event_types_and_times() {
        assert_eq!(event_type(Some("lead.qualified")), ("lead.qualified", true));
        assert_eq!(event_type(Some("contact.created")), ("lead.created", false));
        assert_eq!(event_type(Some("contact.updated")), ("lead.updated", false));
        assert_eq!(event_type(None), ("lead.created", false));
        // Squashed data, no `timestamp`: the webhook-timestamp header is the time.
        let h = headers("msg_sq", "1674087231", "v1,x");
        let v = one_lead(parse(&h, br#"{"type":"contact.updated","email":"a@b.co"}"#));
        assert_eq!(v["event_type"], "lead.updated");
        assert_eq!(v["occurred_at"], "2023-01-19T00:13:51.000Z");
        assert_eq!(v["visitor"]["email"], "a@b.co");
    }

    #[test]
    fn redelivery_keeps_the_event_id_and_garbage_is_not_json() {
        let h1 = headers("msg_same", "1674087231", "v1,x");
        let h2 = headers("msg_same", "1674087999", "v1,y");
        assert_eq!(
            one_lead(parse(&h1, LEAD))["event_id"],
            one_lead(parse(&h2, LEAD))["event_id"]
        );
        assert!(matches!(
            StandardWebhooks.parse(&post(URL, &h1, b"{nope"), &cx()),
            Err(ParseError::NotJson(_))
        ));
        assert!(matches!(
            StandardWebhooks.parse(&post(URL, &h1, br#"{"a":1,"a":2}"#), &cx()),
            Err(ParseError::NotJson(_))
        ));
    }

    #[test]
    fn sign_and_sample_round_trip() {
        let now = at(1_777_000_000);
        let lead = Sample {
            vendor_id: "lead_42",
            name: "Priya Sharma",
            email: "priya@example.com",
            phone: "+919876543210",
            text: "Pricing for 25 seats?",
            at: now,
        };
        let (ct, body) = StandardWebhooks.sample(&lead, &SourceOptions::default());
        assert_eq!(ct, "application/json");
        let h = StandardWebhooks.sign("https://x", &body, SECRET, now);
        assert_eq!(verify(&h, &body, &[SECRET], now.timestamp()), Ok(()));
        let v = one_lead(parse(&h, &body));
        let e = canonical_lead(&v);
        assert_eq!(e.visitor.email.unwrap().as_str(), "priya@example.com");
        assert_eq!(e.visitor.phone.unwrap().as_str(), "+919876543210");
        assert_eq!(e.transcript.unwrap().lines[0].text, "Pricing for 25 seats?");
        // An unusable secret signs nothing.
        let h = StandardWebhooks.sign("https://x", &body, "whsec_", now);
        assert!(h.iter().all(|(k, _)| k != "webhook-signature"));
    }

    #[test]
    fn reply_is_the_default_json() {
        let r = StandardWebhooks.reply(&Outcome::Ignored { reason: "x".into() });
        assert_eq!(r.status, 200);
        assert_eq!(r.content_type, "application/json");
    }

    #[test]
    fn hostile_inputs_never_panic() {
        let weird = [
            "",
            " ",
            ",",
            "v1,",
            "v1,,,,",
            "v1 v1 v1",
            "\u{0}",
            "é,é",
            "-1",
            "1e10",
            "9223372036854775807",
            "-9223372036854775808",
        ];
        for a in weird {
            for b in weird {
                let h = headers(a, b, b);
                let _ = verify(&h, PAYLOAD, &[SECRET, a], TS);
                for body in HOSTILE_BODIES {
                    let _ = StandardWebhooks.parse(&post(URL, &h, body), &cx());
                }
            }
        }
    }
}
