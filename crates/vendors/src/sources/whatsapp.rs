//! WhatsApp Cloud API (Meta): the `whatsapp_business_account` messages webhook.
//!
//! Authentication:
//! - Subscription handshake: Meta calls `GET <endpoint>?hub.mode=subscribe&hub.challenge=<n>&hub.verify_token=<token>`
//!   and expects `200` with the challenge as the body when the token is the one configured
//!   (<https://developers.facebook.com/docs/graph-api/webhooks/getting-started/>; the official SDK
//!   `WhatsApp/WhatsApp-Nodejs-SDK:src/api/webhooks.ts`). The token is `secrets.verify_token`.
//!   The challenge is echoed only when it is 1 to [`MAX_CHALLENGE`] ASCII letters or digits
//!   (Meta sends an integer), so the endpoint never reflects arbitrary content.
//! - Every `POST`: `X-Hub-Signature-256: sha256=<lowercase hex HMAC-SHA256(app secret, raw body)>`
//!   (same SDK file, `src/utils.ts` `createHmac('sha256', appSecret).update(body).digest('hex')`).
//!   Meta signs the bytes it sends (non-ASCII escaped as `\uXXXX`), so the raw body is verified as
//!   received. Every configured app secret is tried (rotation). There is no timestamp in the scheme,
//!   so no replay window: redeliveries are absorbed by the stable event id instead.
//!
//! Payload (<https://developers.facebook.com/documentation/business-messaging/whatsapp/webhooks/reference/messages>,
//! text/location message references for `referral`, status reference
//! <https://developers.facebook.com/documentation/business-messaging/whatsapp/webhooks/reference/messages/status/>):
//! `{"object":"whatsapp_business_account","entry":[{"id":…,"changes":[{"field":"messages","value":{
//! "metadata":{"phone_number_id":…},"contacts":[{"profile":{"name":…},"wa_id":…}],
//! "messages":[{"from":…,"id":"wamid…","timestamp":"<unix s>","type":"text","text":{"body":…}}]}}]}]}`.
//! One canonical `message.received` event per inbound message (a delivery can batch several):
//!
//! | WhatsApp | canonical |
//! |---|---|
//! | `messages[].id` (wamid) | `event_id` (`<source>:<wamid>`, hashed when not a valid id) |
//! | `messages[].timestamp` | `occurred_at` (else the receive time) |
//! | `contacts[].wa_id` (the contact whose `wa_id` is `from`), else `from` | `visitor.wa_id` |
//! | `"+" + messages[].from` (E.164 without `+`) | `visitor.phone` |
//! | `contacts[].profile.name` | `visitor.name` |
//! | `metadata.phone_number_id` | `conversation_id` = `whatsapp:<phone_number_id>:<wa_id>` |
//! | — | `context.channel` = `whatsapp` |
//! | `text.body`, button/interactive reply title, `[image] <caption>`, `[location]`, … | `transcript.lines[0].text` |
//! | `referral.ctwa_clid` / `source_id` / `headline` / `source_url` (Click-to-WhatsApp ads) | `context.ad_click_id` / `ad_id` / `ad_headline` / `source_url` |
//!
//! Not leads: `statuses` (delivery receipts of our own outbound messages), `errors`-only values,
//! `system` messages (a number change; they carry no contact), other `field`s (account updates,
//! template status…), messages without any sender identity. A delivery with nothing else is
//! acknowledged as not a lead. Meta retries any non-200 for up to 7 days, so every outcome is
//! answered 200 ([`default_reply`](crate::source::default_reply)).
//!
//! Unconfirmed here: Meta's newer business-scoped user ids (a message without `from`) are not
//! modelled; such a message is skipped unless its contact carries a `wa_id`.

use chrono::{DateTime, Utc};
use serde_json::{json, Map, Value};

use crate::canonical;
use crate::source::{
    any_secret, hmac_sha256, json_body, ok_or_mismatch, same_bytes, vendor_time, Inbound, Parsed,
    Sample, SourceContext, SourceKind, SourceOptions, SourceSecrets, VerifyError,
};
use crate::ParseError;

/// The header Meta signs every delivery with.
pub const SIGNATURE_HEADER: &str = "X-Hub-Signature-256";
/// The longest `hub.challenge` echoed back.
pub const MAX_CHALLENGE: usize = 128;
/// The `object` of WhatsApp Business Account notifications.
const OBJECT: &str = "whatsapp_business_account";

/// The WhatsApp Cloud API source kind (`kind = "whatsapp"`).
#[derive(Debug, Clone, Copy, Default)]
pub struct WhatsApp;

impl SourceKind for WhatsApp {
    fn name(&self) -> &'static str {
        "whatsapp"
    }

    fn handshake(
        &self,
        req: &Inbound<'_>,
        secrets: &SourceSecrets,
    ) -> Option<Result<crate::source::Reply, VerifyError>> {
        Some(handshake(req, secrets))
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
        let presented = parse_signature(header)?;
        ok_or_mismatch(any_secret(secrets, |s| {
            same_bytes(&presented, &hmac_sha256(s.as_bytes(), &[req.body]))
        }))
    }

    fn parse(&self, req: &Inbound<'_>, cx: &SourceContext<'_>) -> Result<Parsed, ParseError> {
        let body = canonical::read_json(req.body)?;
        Ok(parse_notification(&body, cx))
    }

    fn sign(
        &self,
        _url: &str,
        body: &[u8],
        secret: &str,
        _now: DateTime<Utc>,
    ) -> Vec<(String, String)> {
        vec![(
            SIGNATURE_HEADER.to_string(),
            format!(
                "sha256={}",
                hex::encode(hmac_sha256(secret.as_bytes(), &[body]))
            ),
        )]
    }

    fn sample(&self, lead: &Sample<'_>, options: &SourceOptions) -> (String, Vec<u8>) {
        let wa_id: String = lead.phone.chars().filter(char::is_ascii_digit).collect();
        let phone_number_id = options
            .extra
            .get("phone_number_id")
            .map(String::as_str)
            .unwrap_or("106540352242922");
        // Shaped like Meta's messages webhook reference sample (Sheena Nelson).
        let body = json!({
            "object": OBJECT,
            "entry": [{
                "id": "102290129340398",
                "changes": [{
                    "value": {
                        "messaging_product": "whatsapp",
                        "metadata": {
                            "display_phone_number": "15550783881",
                            "phone_number_id": phone_number_id,
                        },
                        "contacts": [{"profile": {"name": lead.name}, "wa_id": wa_id}],
                        "messages": [{
                            "from": wa_id,
                            "id": lead.vendor_id,
                            "timestamp": lead.at.timestamp().to_string(),
                            "type": "text",
                            "text": {"body": lead.text},
                        }],
                    },
                    "field": "messages",
                }],
            }],
        });
        json_body(&body)
    }
}

/// Meta's `GET` subscription check.
fn handshake(
    req: &Inbound<'_>,
    secrets: &SourceSecrets,
) -> Result<crate::source::Reply, VerifyError> {
    let expected = secrets
        .verify_token
        .as_deref()
        .ok_or(VerifyError::NoSecret)?;
    let mut mode = None;
    let mut token = None;
    let mut challenge = None;
    for (k, v) in req.query() {
        match k.as_str() {
            "hub.mode" if mode.is_none() => mode = Some(v),
            "hub.verify_token" if token.is_none() => token = Some(v),
            "hub.challenge" if challenge.is_none() => challenge = Some(v),
            _ => {}
        }
    }
    let token_ok = token
        .as_deref()
        .is_some_and(|t| same_bytes(t.as_bytes(), expected.as_bytes()));
    if mode.as_deref() != Some("subscribe") || !token_ok {
        return Err(VerifyError::Mismatch);
    }
    match challenge {
        None => Err(VerifyError::Missing("hub.challenge")),
        Some(c)
            if !c.is_empty()
                && c.len() <= MAX_CHALLENGE
                && c.bytes().all(|b| b.is_ascii_alphanumeric()) =>
        {
            Ok(crate::source::Reply::text(200, c))
        }
        Some(_) => Err(VerifyError::Malformed("hub.challenge")),
    }
}

/// `sha256=<64 hex>` → the 32 bytes.
fn parse_signature(header: &str) -> Result<Vec<u8>, VerifyError> {
    let malformed = VerifyError::Malformed(SIGNATURE_HEADER);
    let h = header.trim();
    if h.len() != "sha256=".len() + 64 {
        return Err(malformed);
    }
    // `get`, not `split_at`: a multi-byte character across the boundary is malformed, not a panic.
    match (h.get(.."sha256=".len()), h.get("sha256=".len()..)) {
        (Some(scheme), Some(hex_part)) if scheme.eq_ignore_ascii_case("sha256=") => {
            hex::decode(hex_part).map_err(|_| malformed)
        }
        _ => Err(malformed),
    }
}

/// Why a value of the delivery carried no lead, for the "not a lead" reason.
#[derive(Default)]
struct Skipped {
    statuses: bool,
    errors: bool,
    system: bool,
    other_fields: bool,
    anonymous: bool,
}

impl Skipped {
    fn reason(&self) -> String {
        let mut parts = Vec::new();
        if self.statuses {
            parts.push("delivery receipts (statuses)");
        }
        if self.errors {
            parts.push("errors");
        }
        if self.system {
            parts.push("system messages");
        }
        if self.other_fields {
            parts.push("fields other than messages");
        }
        if self.anonymous {
            parts.push("messages without a sender");
        }
        if parts.is_empty() {
            "no inbound message".to_string()
        } else {
            format!("{} only", parts.join(", "))
        }
    }
}

fn parse_notification(body: &Value, cx: &SourceContext<'_>) -> Parsed {
    if body.get("object").and_then(Value::as_str) != Some(OBJECT) {
        return Parsed::NotALead("not a whatsapp_business_account notification".into());
    }
    let mut leads = Vec::new();
    let mut skipped = Skipped::default();
    for entry in array(body.get("entry")) {
        for change in array(entry.get("changes")) {
            if change.get("field").and_then(Value::as_str) != Some("messages") {
                skipped.other_fields = true;
                continue;
            }
            let Some(value) = change.get("value").and_then(Value::as_object) else {
                continue;
            };
            skipped.statuses |= !array(value.get("statuses")).is_empty();
            skipped.errors |= !array(value.get("errors")).is_empty();
            let phone_number_id = str_of(value.get("metadata"), "phone_number_id");
            let contacts = array(value.get("contacts"));
            for message in array(value.get("messages")) {
                if message.get("type").and_then(Value::as_str) == Some("system") {
                    skipped.system = true;
                    continue;
                }
                match message_event(message, contacts, phone_number_id, cx) {
                    Some(ev) => leads.push(ev),
                    None => skipped.anonymous = true,
                }
            }
        }
    }
    if leads.is_empty() {
        Parsed::NotALead(skipped.reason())
    } else {
        Parsed::Leads(leads)
    }
}

/// One inbound message as a canonical event; `None` without any sender identity.
fn message_event(
    message: &Value,
    contacts: &[Value],
    phone_number_id: Option<&str>,
    cx: &SourceContext<'_>,
) -> Option<Value> {
    let from = non_empty(message.get("from").and_then(Value::as_str));
    // The contact whose wa_id is the sender; a value with a single contact is that
    // sender's even when Meta's wa_id differs from the number ("may not always match").
    let contact = match from {
        Some(f) => contacts
            .iter()
            .find(|c| c.get("wa_id").and_then(Value::as_str) == Some(f)),
        None => None,
    }
    .or(match contacts {
        [only] => Some(only),
        _ => None,
    });
    let wa_id = non_empty(contact.and_then(|c| c.get("wa_id")).and_then(Value::as_str)).or(from)?;

    let vendor_id = match non_empty(message.get("id").and_then(Value::as_str)) {
        Some(id) => id.to_string(),
        // Meta always sends one; without it the message's own JSON is the key (hashed).
        None => message.to_string(),
    };
    let at = message
        .get("timestamp")
        .and_then(vendor_time)
        .unwrap_or(cx.now);
    let mut ev = cx.event(&vendor_id, "message.received", at);

    let mut visitor = Map::new();
    visitor.insert("wa_id".into(), json!(wa_id));
    if let Some(f) = from {
        visitor.insert(
            "phone".into(),
            json!(format!("+{}", f.trim_start_matches('+'))),
        );
    }
    if let Some(name) = non_empty(
        contact
            .and_then(|c| c.get("profile"))
            .and_then(|p| p.get("name"))
            .and_then(Value::as_str),
    ) {
        visitor.insert("name".into(), json!(name));
    }
    ev["visitor"] = Value::Object(visitor);
    ev["conversation_id"] = json!(match phone_number_id {
        Some(p) => format!("whatsapp:{p}:{wa_id}"),
        None => format!("whatsapp:{wa_id}"),
    });

    let mut context = Map::new();
    context.insert("channel".into(), json!("whatsapp"));
    if let Some(referral) = message.get("referral") {
        for (vendor, canonical) in [
            ("ctwa_clid", "ad_click_id"),
            ("source_id", "ad_id"),
            ("headline", "ad_headline"),
            ("source_url", "source_url"),
        ] {
            if let Some(v) = str_of(Some(referral), vendor) {
                context.insert(canonical.into(), json!(v));
            }
        }
    }
    ev["context"] = Value::Object(context);

    let text = message_text(message);
    if !text.is_empty() {
        let at_text = at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        ev["transcript"] = json!({"lines": [{"at": at_text, "from": "visitor", "text": text}]});
    }
    Some(ev)
}

/// What the visitor wrote, or a placeholder for what they sent.
fn message_text(message: &Value) -> String {
    let kind = message.get("type").and_then(Value::as_str).unwrap_or("");
    let part = |key: &str, field: &str| str_of(message.get(key), field).map(str::to_string);
    let with_caption = |label: &str| match part(kind, "caption") {
        Some(c) => format!("[{label}] {c}"),
        None => format!("[{label}]"),
    };
    match kind {
        "text" => part("text", "body").unwrap_or_default(),
        "button" => part("button", "text")
            .or_else(|| part("button", "payload"))
            .unwrap_or_else(|| "[button]".into()),
        "interactive" => {
            let i = message.get("interactive");
            str_of(i.and_then(|i| i.get("button_reply")), "title")
                .or_else(|| str_of(i.and_then(|i| i.get("list_reply")), "title"))
                .map(str::to_string)
                .unwrap_or_else(|| "[interactive reply]".into())
        }
        "image" | "video" | "document" => with_caption(kind),
        "audio" | "sticker" | "contacts" | "order" => format!("[{kind}]"),
        "location" => "[location]".into(),
        "reaction" => match part("reaction", "emoji") {
            Some(e) => format!("[reaction] {e}"),
            None => "[reaction]".into(),
        },
        "" => "[message]".into(),
        other
            if other.len() <= 32
                && other
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_') =>
        {
            format!("[{other}]")
        }
        _ => "[message]".into(),
    }
}

fn array(v: Option<&Value>) -> &[Value] {
    v.and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or(&[])
}

fn str_of<'v>(v: Option<&'v Value>, key: &str) -> Option<&'v str> {
    non_empty(v.and_then(|v| v.get(key)).and_then(Value::as_str))
}

fn non_empty(s: Option<&str>) -> Option<&str> {
    s.map(str::trim).filter(|s| !s.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::{Outcome, Reply, SourceKind};
    use crate::testing::{
        self, ada, assert_signed_verifies, at, canonical_lead, context, fixture, headers, post,
        tampered,
    };
    use chrono::TimeZone;

    const URL: &str = "https://hooks.example.com/v1/sources/wa";

    const SHEENA: &[u8] = fixture!("whatsapp/text_message.json");
    const SHEENA_MIN: &[u8] = fixture!("whatsapp/text_message.min.json");
    const DASHBOARD: &[u8] = fixture!("whatsapp/dashboard_test_message.min.json");
    const STATUS: &[u8] = fixture!("whatsapp/status_delivered.CONSTRUCTED.json");
    const REFERRAL: &[u8] = fixture!("whatsapp/referral_message.CONSTRUCTED.json");

    /// 2026-05-04T12:00:00Z.
    fn now() -> DateTime<Utc> {
        at(1_777_896_000)
    }

    fn cx() -> SourceContext<'static> {
        context("wa", "bot_wa", now())
    }

    /// The app secrets, and the handshake's verify token.
    fn secrets(list: &[&str]) -> SourceSecrets {
        SourceSecrets {
            verify_token: Some("my-verify-token".into()),
            ..SourceSecrets::of(list)
        }
    }

    fn get(url: &str) -> Inbound<'_> {
        Inbound {
            method: "GET",
            url,
            headers: &[],
            body: b"",
        }
    }

    fn parse(body: &[u8]) -> Result<Parsed, ParseError> {
        WhatsApp.parse(&post(URL, &[], body), &cx())
    }

    fn leads(body: &[u8]) -> Vec<Value> {
        match parse(body).unwrap() {
            Parsed::Leads(l) => l,
            other => panic!("expected leads, got {other:?}"),
        }
    }

    fn not_a_lead(body: &[u8]) -> String {
        testing::not_a_lead(parse(body).unwrap())
    }

    // ---- handshake ----

    #[test]
    fn handshake_echoes_the_challenge_for_the_right_token() {
        let s = secrets(&["app"]);
        let r = WhatsApp
            .handshake(
                &get("https://h.example/wa?hub.mode=subscribe&hub.challenge=1158201444&hub.verify_token=my-verify-token"),
                &s,
            )
            .unwrap()
            .unwrap();
        assert_eq!(r.status, 200);
        assert_eq!(r.body, "1158201444");
    }

    #[test]
    fn handshake_refuses_wrong_token_mode_challenge_and_missing_token() {
        let s = secrets(&["app"]);
        let hs = |url: &str, s: &SourceSecrets| WhatsApp.handshake(&get(url), s).unwrap();
        assert_eq!(
            hs(
                "https://h/wa?hub.mode=subscribe&hub.challenge=1&hub.verify_token=nope",
                &s
            ),
            Err(VerifyError::Mismatch)
        );
        assert_eq!(
            hs("https://h/wa?hub.mode=unsubscribe&hub.challenge=1&hub.verify_token=my-verify-token", &s),
            Err(VerifyError::Mismatch)
        );
        assert_eq!(
            hs("https://h/wa?hub.mode=subscribe&hub.challenge=1", &s),
            Err(VerifyError::Mismatch)
        );
        assert_eq!(
            hs(
                "https://h/wa?hub.mode=subscribe&hub.verify_token=my-verify-token",
                &s
            ),
            Err(VerifyError::Missing("hub.challenge"))
        );
        // Arbitrary content is never reflected.
        assert_eq!(
            hs(
                "https://h/wa?hub.mode=subscribe&hub.challenge=%3Cscript%3E&hub.verify_token=my-verify-token",
                &s
            ),
            Err(VerifyError::Malformed("hub.challenge"))
        );
        let long = format!(
            "https://h/wa?hub.mode=subscribe&hub.challenge={}&hub.verify_token=my-verify-token",
            "1".repeat(MAX_CHALLENGE + 1)
        );
        assert_eq!(hs(&long, &s), Err(VerifyError::Malformed("hub.challenge")));
        let no_token = SourceSecrets {
            secrets: vec!["app".into()],
            verify_token: None,
        };
        assert_eq!(
            hs(
                "https://h/wa?hub.mode=subscribe&hub.challenge=1&hub.verify_token=x",
                &no_token
            ),
            Err(VerifyError::NoSecret)
        );
    }

    // ---- signatures ----

    #[test]
    fn official_sdk_vector() {
        // WhatsApp/WhatsApp-Nodejs-SDK src/__tests__/utils.test.ts with jest.config.ts
        // globals M4D_APP_SECRET = 'TEST_APP_SECRET'.
        assert_eq!(
            hex::encode(hmac_sha256(b"TEST_APP_SECRET", &[b"test"])),
            "0c61947b610d4f45e65f3d680e26027121ec2413e77598bcb6cfc6e0d9888221"
        );
        let h = headers(&[(
            SIGNATURE_HEADER,
            "sha256=0c61947b610d4f45e65f3d680e26027121ec2413e77598bcb6cfc6e0d9888221",
        )]);
        assert_eq!(
            WhatsApp.verify(
                &post(URL, &h, b"test"),
                &secrets(&["TEST_APP_SECRET"]),
                now()
            ),
            Ok(())
        );
    }

    #[test]
    fn derived_vector_over_the_meta_sample() {
        // research/fixtures/derived_vectors.json (self-consistency, not vendor-published).
        let sig = "sha256=ded1d1d9621cffa39832ccf2b330fa476b4dc8ec2a5d102e1e554312b3f21d42";
        let h = headers(&[(SIGNATURE_HEADER, sig)]);
        assert_eq!(
            WhatsApp.verify(
                &post(URL, &h, SHEENA_MIN),
                &secrets(&["test_app_secret"]),
                now()
            ),
            Ok(())
        );
        assert_eq!(
            WhatsApp.sign("", SHEENA_MIN, "test_app_secret", now()),
            vec![(SIGNATURE_HEADER.to_string(), sig.to_string())]
        );
        // Upper-case hex verifies too (hex decoding is case-insensitive).
        let upper = headers(&[(
            SIGNATURE_HEADER,
            &sig.to_ascii_uppercase().replace("SHA256=", "sha256="),
        )]);
        assert_eq!(
            WhatsApp.verify(
                &post(URL, &upper, SHEENA_MIN),
                &secrets(&["test_app_secret"]),
                now()
            ),
            Ok(())
        );
    }

    #[test]
    fn verify_refusals_and_rotation() {
        let body = SHEENA_MIN;
        let signed = WhatsApp.sign("", body, "current", now());
        let h = headers(&[(SIGNATURE_HEADER, &signed[0].1)]);
        // Rotation: the second secret of the list verifies.
        assert_eq!(
            WhatsApp.verify(&post(URL, &h, body), &secrets(&["old", "current"]), now()),
            Ok(())
        );
        // Wrong secret.
        assert_eq!(
            WhatsApp.verify(&post(URL, &h, body), &secrets(&["other"]), now()),
            Err(VerifyError::Mismatch)
        );
        // Tampered body (one byte).
        let tampered = tampered(body, b'D', b'd');
        assert_eq!(
            WhatsApp.verify(&post(URL, &h, &tampered), &secrets(&["current"]), now()),
            Err(VerifyError::Mismatch)
        );
        // Missing header.
        assert_eq!(
            WhatsApp.verify(&post(URL, &[], body), &secrets(&["current"]), now()),
            Err(VerifyError::Missing(SIGNATURE_HEADER))
        );
        // Malformed headers.
        for bad in [
            "ded1d1d9621cffa39832ccf2b330fa476b4dc8ec2a5d102e1e554312b3f21d42",
            "sha1=ded1d1d9621cffa39832ccf2b330fa476b4dc8ec2a5d102e1e554312b3f21d4",
            "sha256=zzd1d1d9621cffa39832ccf2b330fa476b4dc8ec2a5d102e1e554312b3f21d42",
            "sha256=",
            "",
            "sha256éded1d1d9621cffa39832ccf2b330fa476b4dc8ec2a5d102e1e554312b3f21d4",
        ] {
            let h = headers(&[(SIGNATURE_HEADER, bad)]);
            assert_eq!(
                WhatsApp.verify(&post(URL, &h, body), &secrets(&["current"]), now()),
                Err(VerifyError::Malformed(SIGNATURE_HEADER)),
                "{bad}"
            );
        }
        let huge = format!("sha256={}", "a".repeat(1 << 20));
        let h = headers(&[(SIGNATURE_HEADER, &huge)]);
        assert_eq!(
            WhatsApp.verify(&post(URL, &h, body), &secrets(&["current"]), now()),
            Err(VerifyError::Malformed(SIGNATURE_HEADER))
        );
        // No secret configured.
        assert_eq!(
            WhatsApp.verify(&post(URL, &h, body), &SourceSecrets::default(), now()),
            Err(VerifyError::NoSecret)
        );
    }

    // ---- parse ----

    #[test]
    fn meta_sample_maps_to_one_message_event() {
        let l = leads(SHEENA);
        assert_eq!(l.len(), 1);
        let v = &l[0];
        assert_eq!(v["event_type"], "message.received");
        assert_eq!(v["bot_id"], "bot_wa");
        assert_eq!(
            v["event_id"],
            cx().event_id("wamid.HBgLMTY1MDM4Nzk0MzkVAgASGBQzQTRBNjU5OUFFRTAzODEwMTQ0RgA=")
        );
        assert_eq!(v["occurred_at"], "2025-06-08T20:59:43.000Z");
        assert_eq!(v["visitor"]["wa_id"], "16505551234");
        assert_eq!(v["visitor"]["phone"], "+16505551234");
        assert_eq!(v["visitor"]["name"], "Sheena Nelson");
        assert_eq!(v["conversation_id"], "whatsapp:106540352242922:16505551234");
        assert_eq!(v["context"]["channel"], "whatsapp");
        assert_eq!(
            v["transcript"]["lines"],
            json!([{"at": "2025-06-08T20:59:43.000Z", "from": "visitor", "text": "Does it come in another color?"}])
        );
        let e = canonical_lead(v);
        assert_eq!(e.visitor.wa_id.as_ref().unwrap().as_str(), "16505551234");
        assert_eq!(e.visitor.phone.as_ref().unwrap().as_str(), "+16505551234");
        assert_eq!(e.visitor.name.as_deref(), Some("Sheena Nelson"));
        assert_eq!(e.context.channel.as_deref(), Some("whatsapp"));
        // The pretty and minified copies are the same delivery: same event.
        assert_eq!(leads(SHEENA_MIN), l);
    }

    #[test]
    fn dashboard_test_sample_maps() {
        let l = leads(DASHBOARD);
        assert_eq!(l.len(), 1);
        let v = &l[0];
        assert_eq!(v["event_id"], "wa:ABGGFlA5Fpa");
        assert_eq!(v["visitor"]["wa_id"], "16315551181");
        assert_eq!(v["visitor"]["phone"], "+16315551181");
        assert_eq!(v["visitor"]["name"], "test user name");
        assert_eq!(v["conversation_id"], "whatsapp:123456123:16315551181");
        assert_eq!(v["occurred_at"], "2017-09-08T20:36:28.000Z");
        assert_eq!(
            v["transcript"]["lines"][0]["text"],
            "this is a text message"
        );
        let e = canonical_lead(v);
        assert_eq!(e.visitor.wa_id.as_ref().unwrap().as_str(), "16315551181");
        assert_eq!(e.visitor.phone.as_ref().unwrap().as_str(), "+16315551181");
    }

    #[test]
    fn referral_maps_to_ad_attribution() {
        let l = leads(REFERRAL);
        assert_eq!(l.len(), 1);
        let c = &l[0]["context"];
        assert_eq!(c["channel"], "whatsapp");
        assert_eq!(c["ad_id"], "120226305854810726");
        assert_eq!(c["ad_headline"], "Chat with us");
        assert_eq!(c["source_url"], "https://fb.me/3cr4Wqqkv");
        assert!(c["ad_click_id"]
            .as_str()
            .unwrap()
            .starts_with("Aff-n8ZTODiE79d22"));
        let e = canonical_lead(&l[0]);
        assert_eq!(e.context.ad_id.as_deref(), Some("120226305854810726"));
        assert_eq!(e.context.ad_headline.as_deref(), Some("Chat with us"));
        assert_eq!(
            e.context.source_url.as_deref(),
            Some("https://fb.me/3cr4Wqqkv")
        );
        assert!(e.context.ad_click_id.is_some());
    }

    #[test]
    fn statuses_errors_system_and_other_fields_are_not_leads() {
        assert_eq!(not_a_lead(STATUS), "delivery receipts (statuses) only");
        let errors = json!({"object": "whatsapp_business_account", "entry": [{"id": "1", "changes": [{
            "field": "messages",
            "value": {"messaging_product": "whatsapp",
                      "metadata": {"display_phone_number": "15550783881", "phone_number_id": "106540352242922"},
                      "errors": [{"code": 131051, "title": "Message type unknown"}]}}]}]});
        assert_eq!(not_a_lead(errors.to_string().as_bytes()), "errors only");
        let system = json!({"object": "whatsapp_business_account", "entry": [{"id": "1", "changes": [{
            "field": "messages",
            "value": {"messaging_product": "whatsapp",
                      "metadata": {"display_phone_number": "15550783881", "phone_number_id": "106540352242922"},
                      "messages": [{"from": "16505551234", "id": "wamid.sys", "timestamp": "1749416383",
                                    "type": "system",
                                    "system": {"body": "NAME changed from 16505551234 to 16505550000",
                                               "wa_id": "16505550000", "type": "user_changed_number"}}]}}]}]});
        assert_eq!(
            not_a_lead(system.to_string().as_bytes()),
            "system messages only"
        );
        let template = json!({"object": "whatsapp_business_account", "entry": [{"id": "1", "changes": [{
            "field": "message_template_status_update",
            "value": {"event": "APPROVED", "message_template_id": 1}}]}]});
        assert_eq!(
            not_a_lead(template.to_string().as_bytes()),
            "fields other than messages only"
        );
        let anonymous = json!({"object": "whatsapp_business_account", "entry": [{"id": "1", "changes": [{
            "field": "messages",
            "value": {"messages": [{"id": "wamid.x", "type": "text", "text": {"body": "hi"}}]}}]}]});
        assert_eq!(
            not_a_lead(anonymous.to_string().as_bytes()),
            "messages without a sender only"
        );
        assert_eq!(
            not_a_lead(br#"{"object":"page","entry":[]}"#),
            "not a whatsapp_business_account notification"
        );
        assert_eq!(
            not_a_lead(b"[1,2]"),
            "not a whatsapp_business_account notification"
        );
        assert_eq!(
            not_a_lead(br#"{"object":"whatsapp_business_account"}"#),
            "no inbound message"
        );
    }

    #[test]
    fn garbage_and_duplicate_keys_are_not_json() {
        for body in [
            &b"not json"[..],
            b"",
            b"{\"object\":\"a\",\"object\":\"b\"}",
            b"\xff\xfe",
        ] {
            assert!(matches!(parse(body), Err(ParseError::NotJson(_))));
        }
    }

    #[test]
    fn a_batch_gives_one_event_per_message_and_skips_receipts() {
        let batch = json!({"object": "whatsapp_business_account", "entry": [{"id": "1", "changes": [{
        "field": "messages",
        "value": {
            "messaging_product": "whatsapp",
            "metadata": {"display_phone_number": "15550783881", "phone_number_id": "106540352242922"},
            "contacts": [{"profile": {"name": "Sheena Nelson"}, "wa_id": "16505551234"},
                         {"profile": {"name": "Test User"}, "wa_id": "16315551181"}],
            "messages": [
                {"from": "16505551234", "id": "wamid.A", "timestamp": "1749416383", "type": "image",
                 "image": {"caption": "this one", "mime_type": "image/jpeg", "id": "1"}},
                {"from": "16315551181", "id": "wamid.B", "timestamp": "1749416384", "type": "location",
                 "location": {"latitude": 1.0, "longitude": 2.0}},
                {"from": "16505551234", "id": "wamid.C", "timestamp": "1749416385", "type": "button",
                 "button": {"payload": "PAYLOAD", "text": "Yes please"}},
                {"from": "16505551234", "id": "wamid.D", "timestamp": "1749416386", "type": "interactive",
                 "interactive": {"type": "list_reply", "list_reply": {"id": "1", "title": "Pro plan"}}},
                {"from": "16505551234", "id": "wamid.E", "timestamp": "1749416387", "type": "audio",
                 "audio": {"id": "2"}}
            ],
            "statuses": [{"id": "wamid.S", "status": "read", "timestamp": "1", "recipient_id": "16505551234"}]
        }}]}]});
        let l = leads(batch.to_string().as_bytes());
        let texts: Vec<&str> = l
            .iter()
            .map(|v| v["transcript"]["lines"][0]["text"].as_str().unwrap())
            .collect();
        assert_eq!(
            texts,
            [
                "[image] this one",
                "[location]",
                "Yes please",
                "Pro plan",
                "[audio]"
            ]
        );
        assert_eq!(l[1]["visitor"]["name"], "Test User");
        assert_eq!(
            l[1]["conversation_id"],
            "whatsapp:106540352242922:16315551181"
        );
        let ids: std::collections::BTreeSet<String> = l
            .iter()
            .map(|v| v["event_id"].as_str().unwrap().to_string())
            .collect();
        assert_eq!(ids.len(), 5);
        for v in &l {
            canonical_lead(v);
        }
    }

    #[test]
    fn a_sender_without_a_matching_contact_falls_back_to_from() {
        let body = json!({"object": "whatsapp_business_account", "entry": [{"id": "1", "changes": [{
            "field": "messages",
            "value": {"metadata": {"phone_number_id": "106540352242922"},
                      "messages": [{"from": "16505551234", "id": "wamid.Z", "timestamp": "1749416383",
                                    "type": "text", "text": {"body": "hello"}}]}}]}]});
        let l = leads(body.to_string().as_bytes());
        assert_eq!(
            l[0]["visitor"],
            json!({"wa_id": "16505551234", "phone": "+16505551234"})
        );
        // No timestamp: the receive time.
        let body = body.to_string().replace(r#","timestamp":"1749416383""#, "");
        let l = leads(body.as_bytes());
        assert_eq!(l[0]["occurred_at"], "2026-05-04T12:00:00.000Z");
    }

    #[test]
    fn redelivery_gives_the_same_event_id() {
        assert_eq!(leads(SHEENA)[0]["event_id"], leads(SHEENA)[0]["event_id"]);
        assert_eq!(leads(SHEENA)[0]["event_id"], leads(REFERRAL)[0]["event_id"]);
    }

    // ---- sign + sample ----

    #[test]
    fn sample_round_trip() {
        let lead = Sample {
            vendor_id: "wamid.SAMPLE1",
            email: "",
            phone: "+16505551234",
            text: "Do you have a free trial?",
            ..ada(Utc.with_ymd_and_hms(2026, 5, 4, 11, 0, 0).unwrap())
        };
        let (ct, body) = WhatsApp.sample(&lead, &SourceOptions::default());
        assert_eq!(ct, "application/json");
        assert_signed_verifies(&WhatsApp, URL, &body, "app-secret", now());
        let l = leads(&body);
        assert_eq!(l.len(), 1);
        assert_eq!(l[0]["event_id"], "wa:wamid.SAMPLE1");
        assert_eq!(l[0]["occurred_at"], "2026-05-04T11:00:00.000Z");
        let e = canonical_lead(&l[0]);
        assert_eq!(e.visitor.phone.as_ref().unwrap().as_str(), "+16505551234");
        assert_eq!(e.visitor.wa_id.as_ref().unwrap().as_str(), "16505551234");
        assert_eq!(e.visitor.name.as_deref(), Some("Ada Lovelace"));
        assert_eq!(
            e.transcript.unwrap().lines[0].text,
            "Do you have a free trial?"
        );
    }

    #[test]
    fn reply_is_200_for_every_outcome() {
        for o in [
            Outcome::Accepted {
                event_ids: vec!["wa:x".into()],
                duplicate: false,
            },
            Outcome::Ignored {
                reason: "delivery receipts only".into(),
            },
            Outcome::Rejected {
                status: 422,
                code: "invalid".into(),
                errors: vec![],
            },
        ] {
            let r: Reply = WhatsApp.reply(&o);
            assert_eq!(r.status, 200);
        }
        assert_eq!(WhatsApp.name(), "whatsapp");
    }
}
