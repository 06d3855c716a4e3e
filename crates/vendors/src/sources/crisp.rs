//! Crisp web hooks (`kind = "crisp"`).
//!
//! **Authentication** — two kinds of hooks (<https://docs.crisp.chat/guides/web-hooks/quickstart>):
//! - *Plugin hooks* are signed (<https://docs.crisp.chat/references/web-hooks/v1>):
//!   `X-Crisp-Request-Timestamp` and `X-Crisp-Signature` = hex HMAC-SHA256, keyed
//!   with the plugin's signature secret, of `[` + timestamp + `;` + body + `]`.
//!   The docs say the body string is the parsed body re-serialized
//!   (`JSON.stringify`, as node-crisp-api's `__verifySignature` in `lib/crisp.ts`
//!   does); Crisp's Go library (`VerifyHook` in `crisp/events.go`, used by
//!   `examples/events_webhooks/main.go`) verifies over the raw request bytes. Both agree
//!   when Crisp sends compact JSON, so the raw body is tried first; when that
//!   fails (a proxy pretty-printed it), the body with insignificant whitespace
//!   outside strings removed is tried: that equals `JSON.stringify` of the
//!   parsed body except (a) numbers written otherwise than JS would print them
//!   (`1.0`, `1e3`, integers beyond 2^53), (b) string escapes JS would write
//!   otherwise (`\/`, `\u00e9`), (c) duplicate keys. (serde_json's
//!   `preserve_order` is not enabled in this workspace, so a `Value` cannot be
//!   re-serialized in the sender's key order.) Neither library nor the docs
//!   set a timestamp tolerance: none is applied (the timestamp is only part of
//!   the signed text; its unit is not documented).
//! - *Website hooks* are not signed (<https://docs.crisp.chat/guides/web-hooks/website-hooks>):
//!   Crisp recommends a secret `?key=KEY` on the endpoint URL. A request without
//!   `X-Crisp-Signature` passes when its `key` query parameter equals one of the
//!   source's secrets (compared in constant time).
//!
//! **Payload** — `{website_id, event, data, timestamp (ms)}`; `data` is the RTM
//! event (same reference; shapes from node-crisp-api `lib/events/Events.ts` and
//! go-crisp-api `crisp/events.go`): `session:set_email` `{website_id,
//! session_id, email}`, `session:set_phone` `{…, phone}`, `session:set_nickname`
//! `{…, nickname}`, `people:profile:created` `{website_id, people_id, email?}`,
//! `people:profile:updated` `{website_id, people_id, email?, update{updated_at,
//! person{nickname, phone, geolocation{country, region, city}, …}}}`,
//! `message:send` (visitor → operator) `{website_id, session_id, type, content,
//! from: "user", origin, timestamp, fingerprint, user{nickname, user_id}}`.
//!
//! **Mapping** — a chat visitor is only identified when Crisp later sends
//! `session:set_email`/`session:set_phone`: those → `lead.created` with the
//! email or phone, `conversation_id` and `context.session_id` = `session_id`;
//! `people:profile:created` → `lead.created`, `people:profile:updated` →
//! `lead.updated` (email, `person.phone`, `person.nickname` → name,
//! `person.geolocation.country` → country), `people_id` → `answers.crisp_people_id`.
//! `message:send` and `session:set_nickname` carry no identity (the quickstart
//! sample: a nickname and a session id) → not a lead ("no identity yet"); other
//! events → not a lead. `context.channel` is `chat`. Event id:
//! `<event>:<session_id or people_id>:<body timestamp, else data fingerprint>`,
//! which a redelivery of the same body repeats; occurred_at: the body's `timestamp`.
//!
//! **Reply** — Crisp only needs a 2xx: the default 200 JSON.

use chrono::{DateTime, Utc};
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};

use crate::canonical::read_json;
use crate::source::{
    any_secret, hex_matches, hmac_sha256, id_text, json_body, ok_or_mismatch, same_bytes, text,
    vendor_time, Inbound, Parsed, Sample, SourceContext, SourceKind, SourceOptions, SourceSecrets,
    VerifyError,
};
use crate::ParseError;

const SIGNATURE: &str = "X-Crisp-Signature";
const TIMESTAMP: &str = "X-Crisp-Request-Timestamp";
/// The website hooks' secret query parameter.
const KEY_PARAM: &str = "key";
/// The website id of Crisp's own samples.
const SAMPLE_WEBSITE: &str = "42286ab3-b29a-4fde-8538-da0ae501d825";

pub struct Crisp;

/// The hex signature Crisp sends for `body` at `timestamp` with `secret`.
fn signature(secret: &str, timestamp: &str, body: &[u8]) -> Vec<u8> {
    hmac_sha256(
        secret.as_bytes(),
        &[b"[", timestamp.as_bytes(), b";", body, b"]"],
    )
}

/// `body` without the whitespace JSON allows between tokens (strings are
/// copied as they are, escapes included): what `JSON.stringify` of the parsed
/// body gives for JSON laid out differently, within the limits in the module
/// documentation. `None` when there is nothing to remove.
fn compact(body: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(body.len());
    let (mut in_string, mut escaped, mut removed) = (false, false, false);
    for &b in body {
        if in_string {
            out.push(b);
            if escaped {
                escaped = false;
            } else if b == b'\\' {
                escaped = true;
            } else if b == b'"' {
                in_string = false;
            }
        } else if matches!(b, b' ' | b'\t' | b'\n' | b'\r') {
            removed = true;
        } else {
            in_string = b == b'"';
            out.push(b);
        }
    }
    removed.then_some(out)
}

impl SourceKind for Crisp {
    fn name(&self) -> &'static str {
        "crisp"
    }

    fn verify(
        &self,
        req: &Inbound<'_>,
        secrets: &SourceSecrets,
        _now: DateTime<Utc>,
    ) -> Result<(), VerifyError> {
        let Some(sig) = req.header(SIGNATURE) else {
            // A website hook: the secret rides in the URL.
            let key = req
                .query_param(KEY_PARAM)
                .ok_or(VerifyError::Missing(SIGNATURE))?;
            let presented = Sha256::digest(key.as_bytes());
            return ok_or_mismatch(any_secret(secrets.required()?, |s| {
                same_bytes(&presented, &Sha256::digest(s.as_bytes()))
            }));
        };
        let sig = sig.trim();
        if sig.len() != 64 || !sig.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(VerifyError::Malformed(SIGNATURE));
        }
        let ts = req
            .header(TIMESTAMP)
            .ok_or(VerifyError::Missing(TIMESTAMP))?
            .trim();
        if ts.is_empty() || ts.len() > 20 || !ts.bytes().all(|b| b.is_ascii_digit()) {
            return Err(VerifyError::Malformed(TIMESTAMP));
        }
        let secrets = secrets.required()?;
        let signed =
            |body: &[u8]| any_secret(secrets, |s| hex_matches(sig, &signature(s, ts, body)));
        // The raw body first; the compact form only when that fails.
        ok_or_mismatch(signed(req.body) || compact(req.body).is_some_and(|body| signed(&body)))
    }

    fn parse(&self, req: &Inbound<'_>, cx: &SourceContext<'_>) -> Result<Parsed, ParseError> {
        let body = read_json(req.body)?;
        let Some(name) = text(body.get("event")) else {
            return Ok(Parsed::NotALead("no event".into()));
        };
        let Some(data) = body.get("data").filter(|d| d.is_object()) else {
            return Ok(Parsed::NotALead("no data".into()));
        };
        let (event_type, email, phone) = match name {
            "session:set_email" => ("lead.created", text(data.get("email")), None),
            "session:set_phone" => ("lead.created", None, text(data.get("phone"))),
            "people:profile:created" => ("lead.created", text(data.get("email")), None),
            "people:profile:updated" => (
                "lead.updated",
                text(data.get("email")),
                text(data.pointer("/update/person/phone")),
            ),
            "message:send" if data.get("from").and_then(Value::as_str) != Some("user") => {
                return Ok(Parsed::NotALead("not from the visitor".into()));
            }
            "message:send" | "session:set_nickname" => {
                return Ok(Parsed::NotALead("no identity yet".into()));
            }
            other => return Ok(Parsed::NotALead(format!("event {other}"))),
        };
        if email.is_none() && phone.is_none() {
            return Ok(Parsed::NotALead("no identity yet".into()));
        }

        let session = text(data.get("session_id"));
        let people = text(data.get("people_id"));
        let stamp = id_text(body.get("timestamp"))
            .or_else(|| id_text(data.get("fingerprint")))
            .unwrap_or_else(|| hex::encode(&Sha256::digest(req.body)[..16]));
        let vendor_id = format!("{name}:{}:{stamp}", session.or(people).unwrap_or("-"));
        let occurred_at = body
            .get("timestamp")
            .and_then(vendor_time)
            .unwrap_or(cx.now);
        let mut event = cx.event(&vendor_id, event_type, occurred_at);

        let person = data.pointer("/update/person");
        let mut visitor = Map::new();
        for (key, value) in [
            ("email", email),
            ("phone", phone),
            ("name", text(person.and_then(|p| p.get("nickname")))),
            (
                "country",
                text(person.and_then(|p| p.pointer("/geolocation/country"))),
            ),
        ] {
            if let Some(v) = value {
                visitor.insert(key.into(), json!(v));
            }
        }
        event["visitor"] = Value::Object(visitor);
        let mut context = Map::new();
        context.insert("channel".into(), json!("chat"));
        if let Some(s) = session {
            event["conversation_id"] = json!(s);
            context.insert("session_id".into(), json!(s));
        }
        event["context"] = Value::Object(context);
        if let Some(p) = people {
            // Crisp's own id: kept with the event (`vendor`), not a CRM property.
            event["vendor"] = json!({"crisp_people_id": p});
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
        // The header's unit is not documented; seconds, as in the research vector.
        let ts = now.timestamp().to_string();
        vec![
            ("content-type".into(), "application/json".into()),
            (TIMESTAMP.to_ascii_lowercase(), ts.clone()),
            (
                SIGNATURE.to_ascii_lowercase(),
                hex::encode(signature(secret, &ts, body)),
            ),
        ]
    }

    fn sample(&self, lead: &Sample<'_>, _options: &SourceOptions) -> (String, Vec<u8>) {
        // Crisp sends each identity in its own event when the visitor gives
        // it: the email's `session:set_email` (or, without one, the phone's
        // `session:set_phone`). Neither carries a name or a message.
        let session = if lead.vendor_id.starts_with("session_") {
            lead.vendor_id.to_string()
        } else {
            format!("session_{}", lead.vendor_id)
        };
        let (name, data) = if lead.email.trim().is_empty() {
            (
                "session:set_phone",
                json!({"website_id": SAMPLE_WEBSITE, "session_id": session, "phone": lead.phone}),
            )
        } else {
            (
                "session:set_email",
                json!({"website_id": SAMPLE_WEBSITE, "session_id": session, "email": lead.email}),
            )
        };
        let body = json!({
            "website_id": SAMPLE_WEBSITE,
            "event": name,
            "data": data,
            "timestamp": lead.at.timestamp_millis(),
        });
        json_body(&body)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{
        self, ada, assert_signed_verifies, at, canonical_lead, context, fixture, post, secrets,
        tampered,
    };

    const QUICKSTART: &[u8] = fixture!("crisp/message_send.quickstart.json");
    const QUICKSTART_PRETTY: &[u8] = fixture!("crisp/message_send.quickstart.pretty.json");
    const SET_EMAIL: &[u8] = fixture!("crisp/session_set_email.CONSTRUCTED.json");
    const SET_PHONE: &[u8] = fixture!("crisp/session_set_phone.CONSTRUCTED.json");
    const PROFILE_UPDATED: &[u8] = fixture!("crisp/people_profile_updated.CONSTRUCTED.json");
    /// derived_vectors.json (self-consistency, not Crisp-published).
    const DERIVED_SECRET: &str = "test_crisp_secret";
    const DERIVED_TS: &str = "1506985697";
    const DERIVED_SIG: &str = "f793af2b5e396badb7959089616648b4348b97cf8bb4992f4b8b07c56de9f291";
    const URL: &str = "https://leads.example.com/v1/sources/crisp";

    fn now() -> DateTime<Utc> {
        at(1_767_225_600)
    }

    fn headers(ts: Option<&str>, sig: Option<&str>) -> Vec<(String, String)> {
        let mut h = vec![("content-type".to_string(), "application/json".to_string())];
        if let Some(ts) = ts {
            h.push(("x-crisp-request-timestamp".into(), ts.into()));
        }
        if let Some(sig) = sig {
            h.push(("x-crisp-signature".into(), sig.into()));
        }
        h
    }

    fn parse(body: &[u8]) -> Result<Parsed, ParseError> {
        Crisp.parse(&post(URL, &[], body), &context("crisp", "bot_crisp", now()))
    }

    fn one_lead(body: &[u8]) -> Value {
        testing::one_lead(parse(body).unwrap())
    }

    #[test]
    fn derived_vector_verifies_on_the_raw_body() {
        let h = headers(Some(DERIVED_TS), Some(DERIVED_SIG));
        assert_eq!(
            Crisp.verify(
                &post(URL, &h, QUICKSTART),
                &secrets(&[DERIVED_SECRET]),
                now()
            ),
            Ok(())
        );
        let at = DateTime::from_timestamp(1_506_985_697, 0).unwrap();
        let signed = Crisp.sign(URL, QUICKSTART, DERIVED_SECRET, at);
        assert!(signed.contains(&("x-crisp-signature".into(), DERIVED_SIG.into())));
        assert!(signed.contains(&("x-crisp-request-timestamp".into(), DERIVED_TS.into())));
    }

    #[test]
    fn a_pretty_printed_body_verifies_as_json_stringify_of_it() {
        // The quickstart as the docs lay it out: the signature is over the
        // compact form, as JSON.stringify(parsed body) gives it.
        assert_eq!(compact(QUICKSTART_PRETTY).as_deref(), Some(QUICKSTART));
        assert_eq!(compact(QUICKSTART), None);
        let h = headers(Some(DERIVED_TS), Some(DERIVED_SIG));
        assert_eq!(
            Crisp.verify(
                &post(URL, &h, QUICKSTART_PRETTY),
                &secrets(&[DERIVED_SECRET]),
                now()
            ),
            Ok(())
        );
        // Whitespace inside strings is signed content.
        assert_eq!(
            compact(b"{ \"a\" : \"x \\\" y\" ,\n \"b\": [1, 2] }").unwrap(),
            b"{\"a\":\"x \\\" y\",\"b\":[1,2]}".to_vec()
        );
    }

    #[test]
    fn rotation_second_secret_verifies() {
        let h = headers(Some(DERIVED_TS), Some(DERIVED_SIG));
        assert_eq!(
            Crisp.verify(
                &post(URL, &h, QUICKSTART),
                &secrets(&["new_secret", DERIVED_SECRET]),
                now()
            ),
            Ok(())
        );
    }

    #[test]
    fn signed_refusals() {
        let s = secrets(&[DERIVED_SECRET]);
        let h = headers(Some(DERIVED_TS), Some(DERIVED_SIG));
        assert_eq!(
            Crisp.verify(&post(URL, &h, QUICKSTART), &secrets(&["wrong"]), now()),
            Err(VerifyError::Mismatch)
        );
        let tampered = tampered(QUICKSTART, b'H', b'J');
        assert_eq!(
            Crisp.verify(&post(URL, &h, &tampered), &s, now()),
            Err(VerifyError::Mismatch)
        );
        let other_ts = headers(Some("1506985698"), Some(DERIVED_SIG));
        assert_eq!(
            Crisp.verify(&post(URL, &other_ts, QUICKSTART), &s, now()),
            Err(VerifyError::Mismatch)
        );
        assert_eq!(
            Crisp.verify(
                &post(URL, &headers(Some(DERIVED_TS), None), QUICKSTART),
                &s,
                now()
            ),
            Err(VerifyError::Missing(SIGNATURE))
        );
        assert_eq!(
            Crisp.verify(
                &post(URL, &headers(None, Some(DERIVED_SIG)), QUICKSTART),
                &s,
                now()
            ),
            Err(VerifyError::Missing(TIMESTAMP))
        );
        for bad in [
            "",
            "xyz",
            &DERIVED_SIG[..63],
            "g793af2b5e396badb7959089616648b4348b97cf8bb4992f4b8b07c56de9f291",
        ] {
            assert_eq!(
                Crisp.verify(
                    &post(URL, &headers(Some(DERIVED_TS), Some(bad)), QUICKSTART),
                    &s,
                    now()
                ),
                Err(VerifyError::Malformed(SIGNATURE)),
                "{bad}"
            );
        }
        for bad in ["", "soon", "-1", "1.5", "123456789012345678901"] {
            assert_eq!(
                Crisp.verify(
                    &post(URL, &headers(Some(bad), Some(DERIVED_SIG)), QUICKSTART),
                    &s,
                    now()
                ),
                Err(VerifyError::Malformed(TIMESTAMP)),
                "{bad}"
            );
        }
        assert_eq!(
            Crisp.verify(&post(URL, &h, QUICKSTART), &secrets(&[]), now()),
            Err(VerifyError::NoSecret)
        );
    }

    #[test]
    fn no_timestamp_window_is_applied() {
        // Neither Crisp's docs nor its libraries set one.
        let h = headers(Some(DERIVED_TS), Some(DERIVED_SIG));
        assert_eq!(
            Crisp.verify(
                &post(URL, &h, QUICKSTART),
                &secrets(&[DERIVED_SECRET]),
                now()
            ),
            Ok(())
        );
    }

    #[test]
    fn website_hooks_use_the_key_parameter() {
        let s = secrets(&["old_key", "k3y+with/odd=chars"]);
        let h = headers(None, None);
        let ok_url = format!("{URL}?key=k3y%2Bwith%2Fodd%3Dchars");
        assert_eq!(
            Crisp.verify(&post(&ok_url, &h, SET_EMAIL), &s, now()),
            Ok(())
        );
        let ok_first = format!("{URL}?x=1&key=old_key");
        assert_eq!(
            Crisp.verify(&post(&ok_first, &h, SET_EMAIL), &s, now()),
            Ok(())
        );
        let wrong = format!("{URL}?key=old_ke");
        assert_eq!(
            Crisp.verify(&post(&wrong, &h, SET_EMAIL), &s, now()),
            Err(VerifyError::Mismatch)
        );
        assert_eq!(
            Crisp.verify(&post(URL, &h, SET_EMAIL), &s, now()),
            Err(VerifyError::Missing(SIGNATURE))
        );
        assert_eq!(
            Crisp.verify(&post(&ok_first, &h, SET_EMAIL), &secrets(&[]), now()),
            Err(VerifyError::NoSecret)
        );
        // A signature header, when present, is what is checked.
        let signed = headers(Some(DERIVED_TS), Some(DERIVED_SIG));
        assert_eq!(
            Crisp.verify(&post(&ok_first, &signed, SET_EMAIL), &s, now()),
            Err(VerifyError::Mismatch)
        );
    }

    #[test]
    fn quickstart_message_has_no_identity_yet() {
        assert_eq!(
            parse(QUICKSTART).unwrap(),
            Parsed::NotALead("no identity yet".into())
        );
        let mut body: Value = serde_json::from_slice(QUICKSTART).unwrap();
        body["data"]["from"] = json!("operator");
        assert_eq!(
            parse(body.to_string().as_bytes()).unwrap(),
            Parsed::NotALead("not from the visitor".into())
        );
        body["event"] = json!("session:set_nickname");
        assert_eq!(
            parse(body.to_string().as_bytes()).unwrap(),
            Parsed::NotALead("no identity yet".into())
        );
        body["event"] = json!("message:received");
        assert_eq!(
            parse(body.to_string().as_bytes()).unwrap(),
            Parsed::NotALead("event message:received".into())
        );
    }

    #[test]
    fn set_email_maps() {
        let v = one_lead(SET_EMAIL);
        assert_eq!(
            v["event_id"],
            "crisp:session:set_email:session_36ba3566-9651-4790-afc8-ffedbccc317f:1506985711024"
        );
        assert_eq!(v["event_type"], "lead.created");
        assert_eq!(v["occurred_at"], "2017-10-02T23:08:31.024Z");
        assert_eq!(
            v["conversation_id"],
            "session_36ba3566-9651-4790-afc8-ffedbccc317f"
        );
        assert_eq!(v["visitor"], json!({"email": "visitor493603@example.com"}));
        assert_eq!(
            v["context"],
            json!({"channel": "chat", "session_id": "session_36ba3566-9651-4790-afc8-ffedbccc317f"})
        );
        let e = canonical_lead(&v);
        assert_eq!(
            e.visitor.email.unwrap().as_str(),
            "visitor493603@example.com"
        );
        assert_eq!(
            e.context.session_id.as_deref(),
            Some("session_36ba3566-9651-4790-afc8-ffedbccc317f")
        );
    }

    #[test]
    fn set_phone_maps() {
        let v = one_lead(SET_PHONE);
        assert_eq!(v["visitor"], json!({"phone": "+33 6 12 34 56 78"}));
        let e = canonical_lead(&v);
        assert_eq!(e.visitor.phone.unwrap().as_str(), "+33612345678");
        assert!(e.visitor.email.is_none());
    }

    #[test]
    fn profile_update_maps() {
        let v = one_lead(PROFILE_UPDATED);
        assert_eq!(v["event_type"], "lead.updated");
        assert_eq!(
            v["visitor"],
            json!({"email": "valerian@example.com", "phone": "+33612345678",
                   "name": "Valerian Saliou", "country": "FR"})
        );
        assert_eq!(
            v["vendor"],
            json!({"crisp_people_id": "c0ad6e6d-0ae8-4a8c-95c9-6b61a1a2e1f0"})
        );
        assert!(v.get("conversation_id").is_none());
        let e = canonical_lead(&v);
        assert_eq!(e.visitor.email.unwrap().as_str(), "valerian@example.com");
        assert_eq!(e.visitor.country.as_deref(), Some("FR"));
    }

    #[test]
    fn garbage_and_odd_bodies() {
        assert!(matches!(parse(b"key=value"), Err(ParseError::NotJson(_))));
        assert!(matches!(
            parse(br#"{"event":"a","event":"b"}"#),
            Err(ParseError::NotJson(_))
        ));
        assert_eq!(parse(b"{}").unwrap(), Parsed::NotALead("no event".into()));
        assert_eq!(
            parse(br#"{"event":"session:set_email"}"#).unwrap(),
            Parsed::NotALead("no data".into())
        );
        assert_eq!(
            parse(br#"{"event":"session:set_email","data":{"email":" "}}"#).unwrap(),
            Parsed::NotALead("no identity yet".into())
        );
        // No timestamp, no session: still one stable id.
        let body = br#"{"event":"people:profile:created","data":{"email":"a@example.com"}}"#;
        let a = one_lead(body);
        assert_eq!(a["event_id"], one_lead(body)["event_id"]);
    }

    #[test]
    fn redelivery_keeps_the_event_id() {
        assert_eq!(
            one_lead(SET_EMAIL)["event_id"],
            one_lead(SET_EMAIL)["event_id"]
        );
    }

    #[test]
    fn sign_and_sample_round_trip() {
        let lead = Sample {
            vendor_id: "session_0b7c1e3a-5d55-4b8e-9a59-8f2f4d0e1c11",
            ..ada(now())
        };
        let (ct, body) = Crisp.sample(&lead, &SourceOptions::default());
        assert_eq!(ct, "application/json");
        assert_signed_verifies(&Crisp, URL, &body, "plugin_secret", now());
        let v = one_lead(&body);
        let e = canonical_lead(&v);
        assert_eq!(e.visitor.email.unwrap().as_str(), "ada@example.com");
        assert_eq!(
            e.conversation_id.as_deref(),
            Some("session_0b7c1e3a-5d55-4b8e-9a59-8f2f4d0e1c11")
        );
        assert_eq!(e.occurred_at, now());

        // Without an email, the phone's own event.
        let phone_only = Sample { email: "", ..lead };
        let (_, body) = Crisp.sample(&phone_only, &SourceOptions::default());
        let e = canonical_lead(&one_lead(&body));
        assert_eq!(e.visitor.phone.unwrap().as_str(), "+14155552671");
    }
}
