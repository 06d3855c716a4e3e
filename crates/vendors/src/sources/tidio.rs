//! Tidio webhooks (`kind = "tidio"`).
//!
//! **Authentication** — <https://developers.tidio.com/docs/webhooks-signature-verification>:
//! every delivery carries `x-tidio-signature: t=<unix seconds>,s=<hex>[,s=<hex>…]`,
//! one `s=` per active webhook secret (Tidio's own rotation). Each `s` is the hex
//! HMAC-SHA256, keyed with the webhook secret, of the raw body followed by `_`
//! and the timestamp (Tidio's PHP snippet: `$payload = $body . '_' . $timestamp;
//! hash_hmac('sha256', $payload, $secret)`, the timestamp read with `(int)`).
//! A delivery passes when any `s` equals the HMAC under any configured secret.
//! Tidio documents no timestamp tolerance (its snippet checks none), so none is
//! applied: `t` is only part of the signed text. (Unconfirmed whether Tidio
//! redelivers with a fresh `t`; a window could be added if Tidio documents one.)
//!
//! **Payload** — <https://developers.tidio.com/docs/webhooks-structure>: a JSON
//! envelope `{created_at (unix seconds, when the webhook was sent),
//! project_public_key, topic, version, webhook_id (uuid), content}`;
//! <https://developers.tidio.com/reference/events>: `contact.created` and
//! `contact.updated` carry the contact in `content`: `id` (uuid, never null),
//! `email`, `phone`, `first_name`, `last_name`, `distinct_id` (the contact's id
//! in the customer's own system) — all nullable — and `properties[{name, value}]`.
//! Changes made through Tidio's OpenAPI trigger no webhook.
//!
//! **Mapping** — `contact.created` → `lead.created`, `contact.updated` →
//! `lead.updated`; every other topic (conversation topics carry no contact) is
//! not a lead. Event id: `webhook_id` (stable across redeliveries); occurred_at:
//! `created_at`. `email`/`phone`/`first_name`/`last_name` → `visitor.*` as sent;
//! `properties[].name/value` → `answers`. `content.id` → `answers.tidio_contact_id`
//! and `distinct_id` → `answers.tidio_distinct_id`: `distinct_id` is an external
//! system's contact id, not a browsing session, so it is not `context.session_id`;
//! kept as an answer it lets a CRM mapping match the contact. `context.channel`
//! is `chat`. A contact with neither email nor phone is not a lead yet.
//!
//! **Reply** — Tidio documents no response body: the default 200 JSON.

use chrono::{DateTime, Utc};
use serde_json::{json, Map, Value};

use crate::canonical::read_json;
use crate::source::{
    any_secret, hex_matches, hmac_sha256, json_body, ok_or_mismatch, text, vendor_time, Inbound,
    Parsed, Sample, SourceContext, SourceKind, SourceOptions, SourceSecrets, VerifyError,
};
use crate::ParseError;

/// The signature header, as Tidio writes it.
const HEADER: &str = "x-tidio-signature";
/// Longest header read (a few dozen signatures); longer is malformed.
const MAX_HEADER: usize = 4096;
/// Most `s=` entries compared (Tidio sends one per active secret).
const MAX_SIGNATURES: usize = 16;

pub struct Tidio;

/// The parsed `x-tidio-signature`: the timestamp and every signature.
fn parse_header(raw: &str) -> Result<(u64, Vec<&str>), VerifyError> {
    if raw.len() > MAX_HEADER {
        return Err(VerifyError::Malformed(HEADER));
    }
    let mut t = None;
    let mut sigs = Vec::new();
    for item in raw.split(',') {
        let Some((k, v)) = item.trim().split_once('=') else {
            continue;
        };
        match k.trim() {
            "t" => {
                let v = v.trim();
                if v.is_empty() || v.len() > 19 || !v.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(VerifyError::Malformed(HEADER));
                }
                t = v.parse::<u64>().ok();
            }
            "s" => sigs.push(v.trim()),
            _ => {}
        }
    }
    match t {
        Some(t) if !sigs.is_empty() && sigs.len() <= MAX_SIGNATURES => Ok((t, sigs)),
        _ => Err(VerifyError::Malformed(HEADER)),
    }
}

/// The signature Tidio computes for `body` at `t` with `secret`.
fn signature(secret: &str, body: &[u8], t: u64) -> Vec<u8> {
    hmac_sha256(secret.as_bytes(), &[body, b"_", t.to_string().as_bytes()])
}

impl SourceKind for Tidio {
    fn name(&self) -> &'static str {
        "tidio"
    }

    fn verify(
        &self,
        req: &Inbound<'_>,
        secrets: &SourceSecrets,
        _now: DateTime<Utc>,
    ) -> Result<(), VerifyError> {
        let header = req.header(HEADER).ok_or(VerifyError::Missing(HEADER))?;
        let (t, sigs) = parse_header(header)?;
        let secrets = secrets.required()?;
        ok_or_mismatch(any_secret(secrets, |secret| {
            let expected = signature(secret, req.body, t);
            // No early exit: every pair is compared.
            sigs.iter()
                .fold(false, |ok, s| hex_matches(s, &expected) | ok)
        }))
    }

    fn parse(&self, req: &Inbound<'_>, cx: &SourceContext<'_>) -> Result<Parsed, ParseError> {
        let body = read_json(req.body)?;
        let Some(topic) = body.get("topic").and_then(Value::as_str) else {
            return Ok(Parsed::NotALead("no topic".into()));
        };
        let event_type = match topic {
            "contact.created" => "lead.created",
            "contact.updated" => "lead.updated",
            other => return Ok(Parsed::NotALead(format!("topic {other}"))),
        };
        let Some(content) = body.get("content").and_then(Value::as_object) else {
            return Ok(Parsed::NotALead("no contact".into()));
        };
        let email = text(content.get("email"));
        let phone = text(content.get("phone"));
        if email.is_none() && phone.is_none() {
            return Ok(Parsed::NotALead("no identity".into()));
        }
        // The webhook's own id; without one (never documented), the contact id
        // and the send time still identify this delivery.
        let vendor_id = match text(body.get("webhook_id")) {
            Some(id) => id.to_string(),
            None => format!(
                "{}:{}",
                text(content.get("id")).unwrap_or("contact"),
                body.get("created_at")
                    .map(Value::to_string)
                    .unwrap_or_default()
            ),
        };
        let occurred_at = body
            .get("created_at")
            .and_then(vendor_time)
            .unwrap_or(cx.now);
        let mut event = cx.event(&vendor_id, event_type, occurred_at);

        let mut visitor = Map::new();
        for (key, value) in [
            ("email", email),
            ("phone", phone),
            ("first_name", text(content.get("first_name"))),
            ("last_name", text(content.get("last_name"))),
        ] {
            if let Some(v) = value {
                visitor.insert(key.into(), json!(v));
            }
        }
        event["visitor"] = Value::Object(visitor);
        event["context"] = json!({"channel": "chat"});

        let mut answers = Map::new();
        if let Some(props) = content.get("properties").and_then(Value::as_array) {
            for p in props {
                let Some(name) = text(p.get("name")) else {
                    continue;
                };
                if let Some(v @ (Value::String(_) | Value::Number(_) | Value::Bool(_))) =
                    p.get("value")
                {
                    answers.insert(name.to_string(), v.clone());
                }
            }
        }
        // Tidio's own ids: kept with the event (`vendor`), not CRM properties.
        let mut ids = Map::new();
        for (key, value) in [
            ("tidio_contact_id", text(content.get("id"))),
            ("tidio_distinct_id", text(content.get("distinct_id"))),
        ] {
            if let Some(v) = value {
                ids.insert(key.into(), json!(v));
            }
        }
        if !ids.is_empty() {
            event["vendor"] = Value::Object(ids);
        }
        if !answers.is_empty() {
            event["answers"] = Value::Object(answers);
        }
        Ok(Parsed::Leads(vec![event]))
    }

    fn sign(
        &self,
        _url: &str,
        body: &[u8],
        secret: &str,
        now: DateTime<Utc>,
    ) -> Vec<(String, String)> {
        let t = u64::try_from(now.timestamp()).unwrap_or(0);
        vec![
            ("content-type".into(), "application/json".into()),
            ("user-agent".into(), "Tidio Webhook".into()),
            (
                HEADER.into(),
                format!("t={t},s={}", hex::encode(signature(secret, body, t))),
            ),
        ]
    }

    fn sample(&self, lead: &Sample<'_>, _options: &SourceOptions) -> (String, Vec<u8>) {
        let (first, last) = match lead.name.trim().split_once(' ') {
            Some((f, l)) => (json!(f), json!(l.trim())),
            None if lead.name.trim().is_empty() => (Value::Null, Value::Null),
            None => (json!(lead.name.trim()), Value::Null),
        };
        let opt = |s: &str| {
            if s.is_empty() {
                Value::Null
            } else {
                json!(s)
            }
        };
        // Shaped like Tidio's documented envelope and `contact.created` content.
        // A contact event carries no message: `lead.text` has no place in it.
        let body = json!({
            "created_at": lead.at.timestamp(),
            "project_public_key": "m8ixolegtgfvo6ckzvmuempdq0obbqsy",
            "topic": "contact.created",
            "version": 1,
            "webhook_id": lead.vendor_id,
            "content": {
                "id": "147ae37d-43bc-42a6-bc7b-c10d1525a2f7",
                "email": opt(lead.email),
                "phone": opt(lead.phone),
                "first_name": first,
                "last_name": last,
                "distinct_id": null,
                "properties": [],
            },
        });
        json_body(&body)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::canonical::{parse_value_with, Normalization};
    use crate::testing::{
        self, ada, assert_signed_verifies, at, canonical_lead, context, fixture, json_headers,
        post, secrets, tampered,
    };

    const URL: &str = "https://leads.example.com/v1/sources/tidio";

    const FIXTURE: &[u8] = fixture!("tidio/contact_created.json");
    const CONVERSATION: &[u8] = fixture!("tidio/conversation_solved_by_operator.CONSTRUCTED.json");
    /// derived_vectors.json (self-consistency, not Tidio-published).
    const DERIVED_SECRET: &str = "test_tidio_secret";
    const DERIVED_HEADER: &str =
        "t=1687177446,s=b2d5703e1fcbe6dbb3c22aae10190d3ffda52418a696e3946d140d0f395fb749";

    fn now() -> DateTime<Utc> {
        at(1_767_225_600)
    }

    fn parse(body: &[u8]) -> Result<Parsed, ParseError> {
        Tidio.parse(&post(URL, &[], body), &context("tidio", "bot_tidio", now()))
    }

    fn one_lead(body: &[u8]) -> Value {
        testing::one_lead(parse(body).unwrap())
    }

    #[test]
    fn derived_vector_verifies() {
        let h = json_headers(HEADER, DERIVED_HEADER);
        assert_eq!(
            Tidio.verify(&post(URL, &h, FIXTURE), &secrets(&[DERIVED_SECRET]), now()),
            Ok(())
        );
        // sign() reproduces it at the same time.
        let at = DateTime::from_timestamp(1_687_177_446, 0).unwrap();
        let signed = Tidio.sign("", FIXTURE, DERIVED_SECRET, at);
        assert!(signed.contains(&(HEADER.to_string(), DERIVED_HEADER.to_string())));
    }

    #[test]
    fn rotation_any_signature_any_secret() {
        // Our second secret verifies.
        let h = json_headers(HEADER, DERIVED_HEADER);
        assert_eq!(
            Tidio.verify(
                &post(URL, &h, FIXTURE),
                &secrets(&["new_secret", DERIVED_SECRET]),
                now()
            ),
            Ok(())
        );
        // Tidio's second `s=` (its own rotation) verifies too.
        let other = hex::encode(signature("other", FIXTURE, 1_687_177_446));
        let good = DERIVED_HEADER.split(",s=").nth(1).unwrap();
        let h = json_headers(HEADER, &format!("t=1687177446,s={other},s={good}"));
        assert_eq!(
            Tidio.verify(&post(URL, &h, FIXTURE), &secrets(&[DERIVED_SECRET]), now()),
            Ok(())
        );
    }

    #[test]
    fn refusals() {
        let s = secrets(&[DERIVED_SECRET]);
        let h = json_headers(HEADER, DERIVED_HEADER);
        assert_eq!(
            Tidio.verify(&post(URL, &h, FIXTURE), &secrets(&["wrong"]), now()),
            Err(VerifyError::Mismatch)
        );
        let tampered = tampered(FIXTURE, b'J', b'K');
        assert_eq!(
            Tidio.verify(&post(URL, &h, &tampered), &s, now()),
            Err(VerifyError::Mismatch)
        );
        // Another timestamp is another signed text.
        let h2 = json_headers(
            HEADER,
            &DERIVED_HEADER.replace("t=1687177446", "t=1687177447"),
        );
        assert_eq!(
            Tidio.verify(&post(URL, &h2, FIXTURE), &s, now()),
            Err(VerifyError::Mismatch)
        );
        assert_eq!(
            Tidio.verify(&post(URL, &[], FIXTURE), &s, now()),
            Err(VerifyError::Missing(HEADER))
        );
        for bad in [
            "",
            "garbage",
            "t=1687177446",
            "s=abcd",
            "t=abc,s=abcd",
            "t=-1,s=abcd",
            "t=99999999999999999999,s=ab",
        ] {
            assert_eq!(
                Tidio.verify(&post(URL, &json_headers(HEADER, bad), FIXTURE), &s, now()),
                Err(VerifyError::Malformed(HEADER)),
                "{bad}"
            );
        }
        let huge = format!("t=1,{}", "s=00,".repeat(2000));
        assert_eq!(
            Tidio.verify(&post(URL, &json_headers(HEADER, &huge), FIXTURE), &s, now()),
            Err(VerifyError::Malformed(HEADER))
        );
        // A signature that is not hex is just not a match.
        assert_eq!(
            Tidio.verify(
                &post(URL, &json_headers(HEADER, "t=1,s=zz"), FIXTURE),
                &s,
                now()
            ),
            Err(VerifyError::Mismatch)
        );
        assert_eq!(
            Tidio.verify(&post(URL, &h, FIXTURE), &secrets(&[]), now()),
            Err(VerifyError::NoSecret)
        );
    }

    #[test]
    fn no_timestamp_window_is_applied() {
        // Tidio documents none: a years-old signature still verifies.
        let far = DateTime::from_timestamp(4_000_000_000, 0).unwrap();
        let h = json_headers(HEADER, DERIVED_HEADER);
        assert_eq!(
            Tidio.verify(&post(URL, &h, FIXTURE), &secrets(&[DERIVED_SECRET]), far),
            Ok(())
        );
    }

    #[test]
    fn official_contact_created_maps() {
        let v = one_lead(FIXTURE);
        assert_eq!(v["event_id"], "tidio:7307ac4d-2c74-4d32-b7f9-f7d037ed2ebb");
        assert_eq!(v["event_type"], "lead.created");
        assert_eq!(v["occurred_at"], "2023-06-19T12:24:05.000Z");
        assert_eq!(v["bot_id"], "bot_tidio");
        assert_eq!(
            v["visitor"],
            json!({"email": "john.doe@example.com", "phone": "123 456 789",
                   "first_name": "John", "last_name": "Doe"})
        );
        assert_eq!(v["context"], json!({"channel": "chat"}));
        assert_eq!(v["answers"], json!({"shoe_size": "44 (EU)"}));
        assert_eq!(
            v["vendor"],
            json!({"tidio_contact_id": "147ae37d-43bc-42a6-bc7b-c10d1525a2f7",
                   "tidio_distinct_id": "123456"})
        );

        // The documented phone is a national number: without a region the
        // canonical parser refuses it (its decision, not ours) ...
        match parse_value_with(&v, &Normalization::default()) {
            Err(ParseError::Invalid(errs)) => {
                assert_eq!(errs.len(), 1, "{errs:?}");
                assert_eq!(errs[0].field, "visitor.phone");
            }
            other => panic!("expected invalid_phone, got {other:?}"),
        }
        // ... and with the bot's region (Tidio's sample reads as Polish) it passes.
        let norm = Normalization {
            phone_region: Some("PL".into()),
            ..Normalization::default()
        };
        let e = parse_value_with(&v, &norm).unwrap();
        assert_eq!(e.visitor.email.unwrap().as_str(), "john.doe@example.com");
        assert_eq!(e.visitor.phone.unwrap().as_str(), "+48123456789");
        assert_eq!(e.visitor.first_name.as_deref(), Some("John"));
        assert_eq!(e.answers["shoe_size"], "44 (EU)");
        assert_eq!(e.context.channel.as_deref(), Some("chat"));
    }

    #[test]
    fn contact_updated_is_lead_updated_and_email_alone_passes() {
        let mut body: Value = serde_json::from_slice(FIXTURE).unwrap();
        body["topic"] = json!("contact.updated");
        body["content"]["phone"] = Value::Null;
        let v = one_lead(body.to_string().as_bytes());
        assert_eq!(v["event_type"], "lead.updated");
        assert!(v["visitor"].get("phone").is_none());
        let e = canonical_lead(&v);
        assert_eq!(e.visitor.email.unwrap().as_str(), "john.doe@example.com");
    }

    #[test]
    fn non_leads() {
        assert_eq!(
            parse(CONVERSATION).unwrap(),
            Parsed::NotALead("topic conversation.solved_by_operator".into())
        );
        let mut body: Value = serde_json::from_slice(FIXTURE).unwrap();
        body["content"]["email"] = Value::Null;
        body["content"]["phone"] = json!("  ");
        assert_eq!(
            parse(body.to_string().as_bytes()).unwrap(),
            Parsed::NotALead("no identity".into())
        );
        assert_eq!(
            parse(br#"{"webhook_id":"x"}"#).unwrap(),
            Parsed::NotALead("no topic".into())
        );
        assert!(matches!(parse(b"not json"), Err(ParseError::NotJson(_))));
        assert!(matches!(
            parse(br#"{"topic":"a","topic":"b"}"#),
            Err(ParseError::NotJson(_))
        ));
    }

    #[test]
    fn redelivery_keeps_the_event_id() {
        let a = one_lead(FIXTURE);
        let b = one_lead(FIXTURE);
        assert_eq!(a["event_id"], b["event_id"]);
    }

    #[test]
    fn sign_and_sample_round_trip() {
        let lead = Sample {
            vendor_id: "0b7c1e3a-5d55-4b8e-9a59-8f2f4d0e1c11",
            ..ada(now())
        };
        let (ct, body) = Tidio.sample(&lead, &SourceOptions::default());
        assert_eq!(ct, "application/json");
        assert_signed_verifies(&Tidio, URL, &body, "s3cret", now());
        let v = one_lead(&body);
        assert_eq!(v["event_id"], "tidio:0b7c1e3a-5d55-4b8e-9a59-8f2f4d0e1c11");
        let e = canonical_lead(&v);
        assert_eq!(e.visitor.email.unwrap().as_str(), "ada@example.com");
        assert_eq!(e.visitor.phone.unwrap().as_str(), "+14155552671");
        assert_eq!(e.visitor.first_name.as_deref(), Some("Ada"));
        assert_eq!(e.visitor.last_name.as_deref(), Some("Lovelace"));
        assert!(!e.answers.contains_key("message"));
        assert_eq!(e.occurred_at, now());
    }
}
