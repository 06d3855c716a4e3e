//! Twilio Programmable Messaging: the incoming-message webhook of an SMS number or a
//! WhatsApp sender (`whatsapp:+E164`), form-encoded.
//!
//! Authentication (<https://www.twilio.com/docs/usage/webhooks/webhooks-security>; the SDK
//! validators `twilio/twilio-python:twilio/request_validator.py` and
//! `twilio/twilio-node:src/webhooks/webhooks.ts`, tested in
//! `twilio/twilio-python:tests/unit/test_request_validator.py` and
//! `twilio/twilio-node:spec/unit/webhooks/webhooks.spec.js`):
//! `X-Twilio-Signature: base64(HMAC-SHA1(auth token, URL + every POST parameter sorted by name,
//! as name + value))`. A name sent several times contributes each distinct value, in sorted
//! order. The URL is the public URL Twilio called, query string included (`req.url`); as the SDKs
//! do, the URL is also tried without its port and with the scheme's default port added
//! (`:443`/`:80`), because Twilio signs either form. A JSON body (Event Streams sinks, some
//! Conversations webhooks) is signed differently: Twilio adds `bodySHA256=<hex SHA-256 of the
//! body>` to the URL's query and signs the URL alone; the hash must match the body. A `GET`
//! webhook carries its parameters in the URL, which is signed as is. Every configured auth token
//! is tried (rotation). No timestamp, so no replay window; redelivery is absorbed by `MessageSid`.
//!
//! Payload (<https://www.twilio.com/docs/messaging/guides/webhook-request>): form parameters
//! `MessageSid`, `SmsSid`, `AccountSid`, `MessagingServiceSid`, `From`, `To`, `Body`, `NumMedia`,
//! `NumSegments`, geographic `FromCity`/`FromState`/`FromZip`/`FromCountry` (SMS), and for
//! WhatsApp `ProfileName`, `WaId`, `ReferralNumMedia` and, for Click-to-WhatsApp ads,
//! `ReferralCtwaClid` (<https://www.twilio.com/en-us/changelog/click-to-whatsapp-ad-click-id-parameter-available-on-event-streams>).
//! Twilio adds parameters without notice: all of them are signed, unknown ones are ignored.
//!
//! | Twilio | canonical |
//! |---|---|
//! | `MessageSid` (else `SmsSid`) | `event_id` |
//! | — (Twilio sends no time) | `occurred_at` = receive time |
//! | `From` without `whatsapp:` | `visitor.phone` |
//! | `WaId` | `visitor.wa_id` |
//! | `ProfileName` | `visitor.name` |
//! | `FromCountry` / `FromState` | `visitor.country` / `visitor.state` |
//! | `whatsapp:` prefix of `From` | `context.channel` = `whatsapp`, else `sms` |
//! | `To`, `From` | `conversation_id` = `twilio:<To>:<From>` (whitespace removed) |
//! | `Body` (+ `[N media]` when `NumMedia` > 0) | `transcript.lines[0].text` |
//! | `ReferralCtwaClid` | `context.ad_click_id` |
//!
//! Not leads: status callbacks (`MessageStatus`/`SmsStatus` other than `received`, or no `Body`),
//! requests without `MessageSid` or `From`, JSON deliveries (Event Streams / Conversations, which
//! this kind does not read). Twilio expects TwiML back: every outcome is answered `200` with an
//! empty `<Response/>` (`text/xml`), so Twilio neither logs an error nor replies to the sender.
//!
//! Unconfirmed here: the `ReferralSourceId`, `ReferralHeadline` and `ReferralSourceUrl` names
//! (mapped to `ad_id`, `ad_headline`, `source_url` when present; no test depends on them); the
//! Node SDK also re-serializes the URL through WHATWG `URL` (which escapes `'` in the query as
//! `%27`), a normalization not reproduced here.

use std::collections::{BTreeMap, BTreeSet};

use base64::Engine;
use chrono::{DateTime, Utc};
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};

use crate::canonical;
use crate::source::{
    credential_matches, hex_matches, hmac_sha1, ok_or_mismatch, Inbound, Outcome, Parsed, Reply,
    Sample, SourceContext, SourceKind, SourceOptions, SourceSecrets, VerifyError,
};
use crate::ParseError;

/// The header Twilio signs every request with.
pub const SIGNATURE_HEADER: &str = "X-Twilio-Signature";
/// The query parameter carrying the hash of a JSON body.
pub const BODY_HASH_PARAM: &str = "bodySHA256";
/// The TwiML that tells Twilio "nothing to answer".
pub const EMPTY_TWIML: &str = r#"<?xml version="1.0" encoding="UTF-8"?><Response></Response>"#;

/// The Twilio Messaging source kind (`kind = "twilio"`).
#[derive(Debug, Clone, Copy, Default)]
pub struct Twilio;

impl SourceKind for Twilio {
    fn name(&self) -> &'static str {
        "twilio"
    }

    /// `public_url`: the URL Twilio calls when it is not the one ingest sees
    /// (a custom domain in front of API Gateway): Twilio signs that URL.
    fn option_keys(&self) -> &'static [&'static str] {
        &["public_url"]
    }

    fn verify(
        &self,
        req: &Inbound<'_>,
        secrets: &SourceSecrets,
        _now: DateTime<Utc>,
    ) -> Result<(), VerifyError> {
        let secrets = secrets.required()?;
        let header = req
            .header(SIGNATURE_HEADER)
            .ok_or(VerifyError::Missing(SIGNATURE_HEADER))?;
        let presented = decode_signature(header)?;
        let params = match req.query_param(BODY_HASH_PARAM) {
            Some(hash) => {
                if !hex_matches(&hash, &Sha256::digest(req.body)) {
                    return Err(VerifyError::Mismatch);
                }
                Vec::new()
            }
            None if req.method.eq_ignore_ascii_case("GET") => Vec::new(),
            None => form_params(req.body),
        };
        let data = params_data(&params);
        let data = data.as_bytes();
        // Every form of the URL with every token.
        let expected: Vec<Vec<u8>> = url_variants(req.url)
            .iter()
            .flat_map(|url| {
                secrets
                    .iter()
                    .map(move |s| hmac_sha1(s.as_bytes(), &[url.as_bytes(), data]))
            })
            .collect();
        ok_or_mismatch(credential_matches(&[presented], &expected))
    }

    fn parse(&self, req: &Inbound<'_>, cx: &SourceContext<'_>) -> Result<Parsed, ParseError> {
        let params = if req.method.eq_ignore_ascii_case("GET") {
            req.query()
        } else {
            let body = req.body.trim_ascii();
            if req.media_type() == "application/json" || body.first() == Some(&b'{') {
                canonical::read_json(req.body)?;
                return Ok(Parsed::NotALead(
                    "a JSON delivery (Event Streams or Conversations), not a Messaging webhook"
                        .into(),
                ));
            }
            if !is_form_encoded(body) {
                return Err(ParseError::NotJson(
                    "the body is not application/x-www-form-urlencoded".into(),
                ));
            }
            form_params(body)
        };
        Ok(parse_params(&params, cx))
    }

    fn reply(&self, _outcome: &Outcome) -> Reply {
        Reply {
            status: 200,
            content_type: "text/xml",
            body: EMPTY_TWIML.to_string(),
        }
    }

    fn sign(
        &self,
        url: &str,
        body: &[u8],
        secret: &str,
        _now: DateTime<Utc>,
    ) -> Vec<(String, String)> {
        let probe = Inbound {
            method: "POST",
            url,
            headers: &[],
            body,
        };
        let params = if probe.query_param(BODY_HASH_PARAM).is_some() {
            Vec::new()
        } else {
            form_params(body)
        };
        vec![(
            SIGNATURE_HEADER.to_string(),
            expected_signature(secret, url, &params),
        )]
    }

    fn sample(&self, lead: &Sample<'_>, options: &SourceOptions) -> (String, Vec<u8>) {
        let wa_id: String = lead.phone.chars().filter(char::is_ascii_digit).collect();
        let extra = |k: &str, default: &'static str| {
            options
                .extra
                .get(k)
                .cloned()
                .unwrap_or_else(|| default.to_string())
        };
        // Twilio's WhatsApp sandbox number is the default business side.
        let to = extra("to", "whatsapp:+14155238886");
        let account = extra("account_sid", "AC00000000000000000000000000000000");
        // The parameter set (and order) of a WhatsApp-via-Twilio incoming message.
        let body = form_urlencoded::Serializer::new(String::new())
            .append_pair("SmsMessageSid", lead.vendor_id)
            .append_pair("NumMedia", "0")
            .append_pair("ProfileName", lead.name)
            .append_pair("SmsSid", lead.vendor_id)
            .append_pair("WaId", &wa_id)
            .append_pair("SmsStatus", "received")
            .append_pair("Body", lead.text)
            .append_pair("To", &to)
            .append_pair("NumSegments", "1")
            .append_pair("ReferralNumMedia", "0")
            .append_pair("MessageSid", lead.vendor_id)
            .append_pair("AccountSid", &account)
            .append_pair("From", &format!("whatsapp:{}", lead.phone))
            .append_pair("ApiVersion", "2010-04-01")
            .finish();
        (
            "application/x-www-form-urlencoded".to_string(),
            body.into_bytes(),
        )
    }
}

/// The signature Twilio sends for `params` posted to `url` with `token`:
/// base64(HMAC-SHA1(token, url + sorted name+value pairs)).
pub(crate) fn expected_signature(token: &str, url: &str, params: &[(String, String)]) -> String {
    let mac = hmac_sha1(
        token.as_bytes(),
        &[url.as_bytes(), params_data(params).as_bytes()],
    );
    base64::engine::general_purpose::STANDARD.encode(mac)
}

/// The parameters as Twilio concatenates them: sorted by name, each distinct value of a
/// name in sorted order, `name + value`.
fn params_data(params: &[(String, String)]) -> String {
    let mut by_name: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    for (k, v) in params {
        by_name.entry(k).or_default().insert(v);
    }
    let mut out = String::new();
    for (k, values) in by_name {
        for v in values {
            out.push_str(k);
            out.push_str(v);
        }
    }
    out
}

fn form_params(body: &[u8]) -> Vec<(String, String)> {
    form_urlencoded::parse(body).into_owned().collect()
}

/// The base64 of a 20-byte HMAC-SHA1.
fn decode_signature(header: &str) -> Result<Vec<u8>, VerifyError> {
    let malformed = VerifyError::Malformed(SIGNATURE_HEADER);
    let h = header.trim();
    if h.is_empty() || h.len() > 64 {
        return Err(malformed);
    }
    match base64::engine::general_purpose::STANDARD.decode(h) {
        Ok(bytes) if bytes.len() == 20 => Ok(bytes),
        _ => Err(malformed),
    }
}

/// The URL without its port and with it (the scheme's default added when there is none):
/// the two forms Twilio's validators try. The URL as given is always one of them.
fn url_variants(url: &str) -> Vec<String> {
    let Some((scheme, rest)) = url.split_once("://") else {
        return vec![url.to_string()];
    };
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(end);
    let (userinfo, hostport) = match authority.rfind('@') {
        Some(i) => authority.split_at(i + 1),
        None => ("", authority),
    };
    let (host, port) = if hostport.starts_with('[') {
        match hostport.find(']') {
            Some(i) => {
                let (h, p) = hostport.split_at(i + 1);
                (h, p.strip_prefix(':'))
            }
            None => (hostport, None),
        }
    } else {
        match hostport.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (hostport, None),
        }
    };
    let without = format!("{scheme}://{userinfo}{host}{tail}");
    let default_port = match scheme.to_ascii_lowercase().as_str() {
        "https" => Some(443),
        "http" => Some(80),
        _ => None,
    };
    let with = match (port, default_port) {
        (Some(_), _) | (None, None) => url.to_string(),
        (None, Some(p)) => format!("{scheme}://{userinfo}{host}:{p}{tail}"),
    };
    if with == without {
        vec![without]
    } else {
        vec![without, with]
    }
}

/// `application/x-www-form-urlencoded`: only characters a URL query may hold raw (RFC 3986
/// `pchar` plus `/` and `?`: letters, digits, `-._~!$&'()*+,;=:@`), every `%` followed by two
/// hex digits. Twilio's encoder leaves far fewer characters raw.
fn is_form_encoded(body: &[u8]) -> bool {
    let mut i = 0;
    while i < body.len() {
        match body[i] {
            b'%' => {
                let ok = body
                    .get(i + 1..i + 3)
                    .is_some_and(|h| h.iter().all(u8::is_ascii_hexdigit));
                if !ok {
                    return false;
                }
                i += 3;
            }
            b if b.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=:@/?".contains(&b) => i += 1,
            _ => return false,
        }
    }
    true
}

fn parse_params(params: &[(String, String)], cx: &SourceContext<'_>) -> Parsed {
    let raw = |name: &str| {
        params
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.trim())
    };
    let get = |name: &str| raw(name).filter(|v| !v.is_empty());

    let status = get("MessageStatus").or_else(|| get("SmsStatus"));
    if let Some(s) = status.filter(|s| !s.eq_ignore_ascii_case("received")) {
        let s: String = s.chars().take(32).collect();
        return Parsed::NotALead(format!("status callback ({s})"));
    }
    let num_media: u32 = get("NumMedia").and_then(|n| n.parse().ok()).unwrap_or(0);
    let body = raw("Body");
    let location = get("Latitude").is_some();
    if body.is_none() && num_media == 0 && !location {
        return Parsed::NotALead("no message (a status callback or another event)".into());
    }
    let sid = get("MessageSid")
        .or_else(|| get("SmsSid"))
        .or_else(|| get("SmsMessageSid"));
    let (Some(sid), Some(from)) = (sid, get("From")) else {
        return Parsed::NotALead("no MessageSid or From".into());
    };

    let (channel, phone) = match strip_prefix_ci(from, "whatsapp:") {
        Some(p) => ("whatsapp", p.trim()),
        None => ("sms", from),
    };
    let mut ev = cx.event(sid, "message.received", cx.now);

    let mut visitor = Map::new();
    visitor.insert("phone".into(), json!(phone));
    if let Some(w) = get("WaId") {
        visitor.insert("wa_id".into(), json!(w));
    }
    if let Some(n) = get("ProfileName") {
        visitor.insert("name".into(), json!(n));
    }
    if let Some(c) = get("FromCountry") {
        visitor.insert("country".into(), json!(c));
        if let Some(s) = get("FromState") {
            visitor.insert("state".into(), json!(s));
        }
    }
    ev["visitor"] = Value::Object(visitor);

    let compact = |s: &str| s.chars().filter(|c| !c.is_whitespace()).collect::<String>();
    ev["conversation_id"] = json!(match get("To") {
        Some(to) => format!("twilio:{}:{}", compact(to), compact(from)),
        None => format!("twilio:{}", compact(from)),
    });

    let mut context = Map::new();
    context.insert("channel".into(), json!(channel));
    for (vendor, canonical) in [
        ("ReferralCtwaClid", "ad_click_id"),
        // [R] names, see the module documentation.
        ("ReferralSourceId", "ad_id"),
        ("ReferralHeadline", "ad_headline"),
        ("ReferralSourceUrl", "source_url"),
    ] {
        if let Some(v) = get(vendor) {
            context.insert(canonical.into(), json!(v));
        }
    }
    ev["context"] = Value::Object(context);

    let body = body.unwrap_or("");
    let mut text = body.to_string();
    if num_media > 0 {
        let media = format!("[{num_media} media]");
        text = if text.is_empty() {
            media
        } else {
            format!("{text} {media}")
        };
    }
    if text.is_empty() && location {
        text = "[location]".into();
    }
    if !text.is_empty() {
        let at = cx.now.to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        ev["transcript"] = json!({"lines": [{"at": at, "from": "visitor", "text": text}]});
    }
    Parsed::Leads(vec![ev])
}

fn strip_prefix_ci<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    let head = s.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| &s[prefix.len()..])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::canonical::{parse_value_with, Normalization};
    use crate::testing::{
        self, ada, assert_signed_verifies, at, canonical_lead, context, fixture, pairs, pairs_of,
        post, secrets, tampered,
    };

    const SMS: &[u8] = fixture!("twilio/inbound_sms.CONSTRUCTED.txt");
    const WHATSAPP: &[u8] = fixture!("twilio/inbound_whatsapp.CONSTRUCTED.txt");
    const STATUS: &[u8] = fixture!("twilio/status_callback_delivered.CONSTRUCTED.txt");
    const VECTORS: &[u8] = fixture!("twilio/vectors.json");

    const URL: &str = "https://mycompany.com/myapp.php?foo=1&bar=2";
    const FORM: &str = "application/x-www-form-urlencoded";

    /// 2026-05-04T12:00:00Z.
    fn now() -> DateTime<Utc> {
        at(1_777_896_000)
    }

    fn cx() -> SourceContext<'static> {
        context("tw", "bot_tw", now())
    }

    fn hdrs(sig: Option<&str>, content_type: &str) -> Vec<(String, String)> {
        let mut h = vec![("content-type".to_string(), content_type.to_string())];
        if let Some(s) = sig {
            h.push(("x-twilio-signature".to_string(), s.to_string()));
        }
        h
    }

    fn sdk_params() -> Vec<(String, String)> {
        pairs(&[
            ("CallSid", "CA1234567890ABCDE"),
            ("Caller", "+14158675309"),
            ("Digits", "1234"),
            ("From", "+14158675309"),
            ("To", "+18005551212"),
        ])
    }

    fn encode(params: &[(String, String)]) -> String {
        let mut s = form_urlencoded::Serializer::new(String::new());
        for (k, v) in params {
            s.append_pair(k, v);
        }
        s.finish()
    }

    fn verify(url: &str, sig: &str, body: &[u8], tokens: &[&str]) -> Result<(), VerifyError> {
        let h = hdrs(Some(sig), FORM);
        Twilio.verify(&post(url, &h, body), &secrets(tokens), now())
    }

    // ---- signatures ----

    #[test]
    fn official_sdk_vectors_through_expected_signature() {
        // twilio-python tests/unit/test_request_validator.py (token 12345).
        let p = sdk_params();
        assert_eq!(
            expected_signature("12345", URL, &p),
            "RSOYDt4T1cUTdK1PDd93/VVr8B8="
        );
        assert_eq!(
            expected_signature(
                "12345",
                "https://mycompany.com:443/myapp.php?foo=1&bar=2",
                &p
            ),
            "kvajT1Ptam85bY51eRf/AJRuM3w="
        );
        assert_eq!(
            expected_signature(
                "12345",
                "http://mycompany.com:1234/myapp.php?foo=1&bar=2",
                &p
            ),
            "Zmvh+3yNM1Phv2jhDCwEM3q5ebU="
        );
        assert_eq!(
            expected_signature("12345", "http://mycompany.com:80/myapp.php?foo=1&bar=2", &p),
            "0ZXoZLH/DfblKGATFgpif+LLRf4="
        );
        let dup = pairs(&[
            ("Sid", "CA123"),
            ("SidAccount", "AC123"),
            ("Digits", "5678"),
            ("Digits", "1234"),
        ]);
        assert_eq!(
            expected_signature("12345", URL, &dup),
            "IK+Dwps556ElfBT0I3Rgjkr1wJU="
        );
        let body = r#"{"property": "value", "boolean": true}"#;
        let hash = hex::encode(Sha256::digest(body.as_bytes()));
        assert_eq!(
            hash,
            "0a1ff7634d9ab3b95db5c9a2dfe9416e41502b283a80c7cf19632632f96e6620"
        );
        assert_eq!(
            expected_signature("12345", &format!("{URL}&bodySHA256={hash}"), &[]),
            "a9nBmqA0ju/hNViExpshrM61xv4="
        );
        // The older Twilio security-docs example (same URL, +12349013030).
        let older = pairs(&[
            ("CallSid", "CA1234567890ABCDE"),
            ("Caller", "+12349013030"),
            ("Digits", "1234"),
            ("From", "+12349013030"),
            ("To", "+18005551212"),
        ]);
        assert_eq!(
            expected_signature("12345", URL, &older),
            "0/KCTR6DLpKmkAf8muzZqo1nDgQ="
        );
    }

    #[test]
    fn vectors_file_matches_expected_signature() {
        let v: Value = serde_json::from_slice(VECTORS).unwrap();
        let list = v["vectors"].as_array().unwrap();
        assert!(list.len() >= 7);
        for t in list {
            let params = pairs_of(&t["params"]);
            assert_eq!(
                expected_signature(
                    t["token"].as_str().unwrap(),
                    t["url"].as_str().unwrap(),
                    &params
                ),
                t["signature"].as_str().unwrap(),
                "{}",
                t["name"]
            );
            assert!(t["source"].as_str().unwrap().contains("twilio"));
        }
    }

    #[test]
    fn verify_takes_the_sdk_vectors_with_their_port_rules() {
        let body = encode(&sdk_params());
        let b = body.as_bytes();
        assert_eq!(
            verify(URL, "RSOYDt4T1cUTdK1PDd93/VVr8B8=", b, &["12345"]),
            Ok(())
        );
        // test_validation_adds_port_on_https: signed with :443, called without.
        assert_eq!(
            verify(URL, "kvajT1Ptam85bY51eRf/AJRuM3w=", b, &["12345"]),
            Ok(())
        );
        // ... and the other way round.
        assert_eq!(
            verify(
                "https://mycompany.com:443/myapp.php?foo=1&bar=2",
                "RSOYDt4T1cUTdK1PDd93/VVr8B8=",
                b,
                &["12345"]
            ),
            Ok(())
        );
        // test_validation_removes_port_on_https.
        assert_eq!(
            verify(
                "https://mycompany.com:1234/myapp.php?foo=1&bar=2",
                "RSOYDt4T1cUTdK1PDd93/VVr8B8=",
                b,
                &["12345"]
            ),
            Ok(())
        );
        // test_validation_removes_port_on_http: http with :1234, signed with it.
        assert_eq!(
            verify(
                "http://mycompany.com:1234/myapp.php?foo=1&bar=2",
                "Zmvh+3yNM1Phv2jhDCwEM3q5ebU=",
                b,
                &["12345"]
            ),
            Ok(())
        );
        // test_validation_adds_port_on_http.
        assert_eq!(
            verify(
                "http://mycompany.com/myapp.php?foo=1&bar=2",
                "0ZXoZLH/DfblKGATFgpif+LLRf4=",
                b,
                &["12345"]
            ),
            Ok(())
        );
        // Duplicate names, sent in any order.
        assert_eq!(
            verify(
                URL,
                "IK+Dwps556ElfBT0I3Rgjkr1wJU=",
                b"Sid=CA123&SidAccount=AC123&Digits=5678&Digits=1234",
                &["12345"]
            ),
            Ok(())
        );
        assert_eq!(
            verify(
                URL,
                "IK+Dwps556ElfBT0I3Rgjkr1wJU=",
                b"Digits=1234&Sid=CA123&Digits=5678&SidAccount=AC123",
                &["12345"]
            ),
            Ok(())
        );
        // Another URL is another signature (twilio-node spec).
        assert_eq!(
            verify(
                "https://mycompany.com/myapp.php?foo=1&bar=3",
                "RSOYDt4T1cUTdK1PDd93/VVr8B8=",
                b,
                &["12345"]
            ),
            Err(VerifyError::Mismatch)
        );
    }

    #[test]
    fn verify_json_bodies_by_body_hash() {
        let body = br#"{"property": "value", "boolean": true}"#;
        let url = format!(
            "{URL}&bodySHA256=0a1ff7634d9ab3b95db5c9a2dfe9416e41502b283a80c7cf19632632f96e6620"
        );
        let h = hdrs(Some("a9nBmqA0ju/hNViExpshrM61xv4="), "application/json");
        assert_eq!(
            Twilio.verify(&post(&url, &h, body), &secrets(&["12345"]), now()),
            Ok(())
        );
        let mut tampered = body.to_vec();
        tampered[3] = b'P';
        assert_eq!(
            Twilio.verify(&post(&url, &h, &tampered), &secrets(&["12345"]), now()),
            Err(VerifyError::Mismatch)
        );
        assert_eq!(
            Twilio.sign(&url, body, "12345", now()),
            vec![(
                SIGNATURE_HEADER.to_string(),
                "a9nBmqA0ju/hNViExpshrM61xv4=".to_string()
            )]
        );
    }

    #[test]
    fn verify_refusals_and_rotation() {
        let url = "https://hooks.example.com/v1/sources/tw";
        let sig = Twilio.sign(url, WHATSAPP, "current-token", now())[0]
            .1
            .clone();
        assert_eq!(
            verify(url, &sig, WHATSAPP, &["old-token", "current-token"]),
            Ok(())
        );
        assert_eq!(
            verify(url, &sig, WHATSAPP, &["other"]),
            Err(VerifyError::Mismatch)
        );
        let tampered = tampered(WHATSAPP, b'J', b'K');
        assert_eq!(
            verify(url, &sig, &tampered, &["current-token"]),
            Err(VerifyError::Mismatch)
        );
        let h = hdrs(None, FORM);
        assert_eq!(
            Twilio.verify(
                &post(url, &h, WHATSAPP),
                &secrets(&["current-token"]),
                now()
            ),
            Err(VerifyError::Missing(SIGNATURE_HEADER))
        );
        for bad in [
            "",
            "not base64!",
            "AAAA",
            &"A".repeat(10_000),
            "RSOYDt4T1cUTdK1PDd93/VVr8B8",
        ] {
            assert_eq!(
                verify(url, bad, WHATSAPP, &["current-token"]),
                Err(VerifyError::Malformed(SIGNATURE_HEADER)),
                "{bad:.20}"
            );
        }
        let h = hdrs(Some(&sig), FORM);
        assert_eq!(
            Twilio.verify(&post(url, &h, WHATSAPP), &SourceSecrets::default(), now()),
            Err(VerifyError::NoSecret)
        );
    }

    #[test]
    fn url_variants_cover_ports_userinfo_and_ipv6() {
        assert_eq!(
            url_variants("https://a.example/x?y=1"),
            ["https://a.example/x?y=1", "https://a.example:443/x?y=1"]
        );
        assert_eq!(
            url_variants("http://u:p@a.example:8080"),
            ["http://u:p@a.example", "http://u:p@a.example:8080"]
        );
        assert_eq!(
            url_variants("https://[::1]:8443/x"),
            ["https://[::1]/x", "https://[::1]:8443/x"]
        );
        assert_eq!(url_variants("nonsense"), ["nonsense"]);
        assert_eq!(url_variants("ftp://a/x"), ["ftp://a/x"]);
    }

    #[test]
    fn odd_urls_headers_and_bodies_never_panic() {
        for url in [
            "",
            "://",
            "https://",
            "https://[",
            "https://a:b:c@d:e/f",
            "h\u{e9}llo://w\u{f6}rld:\u{fc}/",
            "https://[::1",
            "https://@/",
            "https://x?bodySHA256=zz",
        ] {
            let _ = url_variants(url);
            for body in [&b""[..], b"\xff\x00", b"a=%", b"&&==&"] {
                let _ = verify(url, "RSOYDt4T1cUTdK1PDd93/VVr8B8=", body, &["12345"]);
                let _ = verify(url, "\u{e9}\u{e9}\u{e9}", body, &["12345"]);
                let _ = parse(body, FORM);
                let _ = Twilio.sign(url, body, "t", now());
            }
        }
    }

    // ---- parse ----

    fn parse(body: &[u8], content_type: &str) -> Result<Parsed, ParseError> {
        let h = hdrs(None, content_type);
        Twilio.parse(&post("https://h.example/tw", &h, body), &cx())
    }

    fn lead(body: &[u8]) -> Value {
        testing::one_lead(parse(body, FORM).unwrap())
    }

    fn not_a_lead(body: &[u8]) -> String {
        testing::not_a_lead(parse(body, FORM).unwrap())
    }

    #[test]
    fn whatsapp_via_twilio_maps() {
        let v = lead(WHATSAPP);
        assert_eq!(v["event_id"], "tw:SM1f0e8ae6ade43cb3c0ce4525424e404f");
        assert_eq!(v["event_type"], "message.received");
        assert_eq!(v["bot_id"], "bot_tw");
        assert_eq!(v["occurred_at"], "2026-05-04T12:00:00.000Z");
        assert_eq!(
            v["visitor"],
            json!({"phone": "+14155550123", "wa_id": "14155550123", "name": "Jane Doe"})
        );
        assert_eq!(v["context"], json!({"channel": "whatsapp"}));
        assert_eq!(
            v["conversation_id"],
            "twilio:whatsapp:+14155238886:whatsapp:+14155550123"
        );
        assert_eq!(
            v["transcript"]["lines"],
            json!([{"at": "2026-05-04T12:00:00.000Z", "from": "visitor", "text": "Hi, do you ship to Canada?"}])
        );
        let e = canonical_lead(&v);
        assert_eq!(e.visitor.phone.as_ref().unwrap().as_str(), "+14155550123");
        assert_eq!(e.visitor.wa_id.as_ref().unwrap().as_str(), "14155550123");
        assert_eq!(e.visitor.name.as_deref(), Some("Jane Doe"));
        assert_eq!(e.context.channel.as_deref(), Some("whatsapp"));
    }

    #[test]
    fn inbound_sms_maps_and_the_canonical_parser_judges_the_number() {
        let v = lead(SMS);
        assert_eq!(v["event_id"], "tw:SM0000000000000000000000000000001");
        assert_eq!(v["visitor"], json!({"phone": "+11234567890"}));
        assert_eq!(v["context"], json!({"channel": "sms"}));
        assert_eq!(v["conversation_id"], "twilio:+12345678901:+11234567890");
        assert_eq!(v["transcript"]["lines"][0]["text"], "Ahoy!");
        // The research's constructed number (+1 123…) has no valid US area code: the kind
        // passes it through and the canonical parser refuses it.
        match parse_value_with(&v, &Normalization::default()) {
            Err(ParseError::Invalid(errs)) => {
                assert!(errs.iter().any(|e| e.field == "visitor.phone"), "{errs:?}")
            }
            other => panic!("expected invalid phone, got {other:?}"),
        }
        // The same delivery from a valid number, with Twilio's geographic parameters.
        let body = String::from_utf8(SMS.to_vec())
            .unwrap()
            .replace("%2B11234567890", "%2B14158675309")
            .replace("NumMedia=0", "NumMedia=2")
            + "&FromCountry=US&FromState=CA&FromCity=SAN+FRANCISCO";
        let v = lead(body.as_bytes());
        assert_eq!(v["transcript"]["lines"][0]["text"], "Ahoy! [2 media]");
        let e = canonical_lead(&v);
        assert_eq!(e.visitor.phone.as_ref().unwrap().as_str(), "+14158675309");
        assert_eq!(e.visitor.country.as_deref(), Some("US"));
        assert_eq!(e.visitor.state.as_deref(), Some("US-CA"));
        assert_eq!(e.context.channel.as_deref(), Some("sms"));
        assert!(e.visitor.wa_id.is_none());
    }

    #[test]
    fn media_only_and_ad_click_messages() {
        let body = "MessageSid=SM1&From=whatsapp%3A%2B14155550123&To=whatsapp%3A%2B14155238886&Body=&NumMedia=1&WaId=14155550123&ReferralCtwaClid=ARAkLkA8rmlFeiCktEJQ-QTwRiyYHAFDLMNDBH0CD3qpjd0HR4irJ6LEkR7JwFF4XvnO2E4Nx0-eM-ZABCDEF";
        let v = lead(body.as_bytes());
        assert_eq!(v["transcript"]["lines"][0]["text"], "[1 media]");
        assert_eq!(
            v["context"]["ad_click_id"],
            "ARAkLkA8rmlFeiCktEJQ-QTwRiyYHAFDLMNDBH0CD3qpjd0HR4irJ6LEkR7JwFF4XvnO2E4Nx0-eM-ZABCDEF"
        );
        assert!(canonical_lead(&v).context.ad_click_id.is_some());
    }

    #[test]
    fn status_callbacks_and_incomplete_requests_are_not_leads() {
        assert_eq!(not_a_lead(STATUS), "status callback (delivered)");
        assert_eq!(
            not_a_lead(b"MessageSid=SM1&From=%2B14158675309&To=%2B18005551212&AccountSid=AC1"),
            "no message (a status callback or another event)"
        );
        assert_eq!(
            not_a_lead(b"From=%2B14158675309&Body=hi"),
            "no MessageSid or From"
        );
        assert_eq!(
            not_a_lead(b"MessageSid=SM1&Body=hi"),
            "no MessageSid or From"
        );
        assert_eq!(
            not_a_lead(b""),
            "no message (a status callback or another event)"
        );
        match parse(
            br#"{"specversion":"1.0","type":"com.twilio.messaging.inbound-message.v1"}"#,
            "application/json",
        )
        .unwrap()
        {
            Parsed::NotALead(r) => assert!(r.contains("JSON")),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn garbage_is_not_form_encoded() {
        for body in [
            &b"\xff\xfe\x00garbage"[..],
            b"Body=hello world",
            b"Body=%zz",
            b"Body=%4",
            b"<Response/>",
            b"{not json",
        ] {
            assert!(
                matches!(parse(body, FORM), Err(ParseError::NotJson(_))),
                "{:?}",
                String::from_utf8_lossy(body)
            );
        }
    }

    #[test]
    fn get_webhooks_read_and_sign_the_query() {
        let url =
            "https://h.example/tw?MessageSid=SM9&From=%2B14158675309&To=%2B18005551212&Body=Hi";
        let sig = expected_signature("tok", url, &[]);
        let h = hdrs(Some(&sig), "");
        let r = Inbound {
            method: "GET",
            url,
            headers: &h,
            body: b"",
        };
        assert_eq!(Twilio.verify(&r, &secrets(&["tok"]), now()), Ok(()));
        match Twilio.parse(&r, &cx()).unwrap() {
            Parsed::Leads(l) => assert_eq!(l[0]["visitor"]["phone"], "+14158675309"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn redelivery_gives_the_same_event_id() {
        assert_eq!(lead(WHATSAPP)["event_id"], lead(WHATSAPP)["event_id"]);
        // SmsSid stands in for a missing MessageSid.
        let v = lead(b"SmsSid=SM77&From=%2B14158675309&Body=hi");
        assert_eq!(v["event_id"], "tw:SM77");
    }

    #[test]
    fn reply_is_empty_twiml_for_every_outcome() {
        for o in [
            Outcome::Accepted {
                event_ids: vec!["tw:x".into()],
                duplicate: true,
            },
            Outcome::Ignored {
                reason: "status callback".into(),
            },
            Outcome::Rejected {
                status: 422,
                code: "invalid".into(),
                errors: vec![],
            },
        ] {
            let r = Twilio.reply(&o);
            assert_eq!(r.status, 200);
            assert_eq!(r.content_type, "text/xml");
            assert_eq!(
                r.body,
                r#"<?xml version="1.0" encoding="UTF-8"?><Response></Response>"#
            );
        }
        assert_eq!(Twilio.name(), "twilio");
    }

    #[test]
    fn sample_round_trip() {
        let lead_in = Sample {
            vendor_id: "SM0123456789abcdef0123456789abcdef",
            email: "",
            phone: "+14155550123",
            text: "Do you have a free trial? 50% off & more",
            ..ada(now())
        };
        let (ct, body) = Twilio.sample(&lead_in, &SourceOptions::default());
        assert_eq!(ct, FORM);
        let url = "https://hooks.example.com/v1/sources/tw";
        assert_signed_verifies(&Twilio, url, &body, "auth-token", now());
        let v = lead(&body);
        assert_eq!(v["event_id"], "tw:SM0123456789abcdef0123456789abcdef");
        assert_eq!(
            v["transcript"]["lines"][0]["text"],
            "Do you have a free trial? 50% off & more"
        );
        let e = canonical_lead(&v);
        assert_eq!(e.visitor.phone.as_ref().unwrap().as_str(), "+14155550123");
        assert_eq!(e.visitor.wa_id.as_ref().unwrap().as_str(), "14155550123");
        assert_eq!(e.visitor.name.as_deref(), Some("Ada Lovelace"));
    }
}
