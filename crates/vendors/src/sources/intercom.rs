//! Intercom webhooks (`kind = "intercom"`).
//!
//! **Authentication** — "Signed notifications",
//! <https://developers.intercom.com/intercom-api-reference/v1.0/reference/signed-notifications>
//! and the current webhook reference
//! <https://developers.intercom.com/docs/references/2.16/webhooks/webhook-models>:
//! `X-Hub-Signature: sha1=<hex>`, the hex HMAC-SHA1 (RFC 2104) of the raw JSON
//! body keyed with the app's `client_secret` (Developer Hub → Basic info; legacy
//! subscriptions used a per-subscription `hub_secret`: configure either). Every
//! configured secret is tried. Intercom signs no timestamp: there is no replay
//! window to enforce; redeliveries are caught by the notification id.
//!
//! **Payload** — the notification object (same reference): `type:
//! "notification_event"`, `id` (`notif_…`), `topic`, `app_id`, `created_at` (unix
//! seconds), `delivery_attempts`, `first_sent_at`, `data.item` (the object, with
//! its own `type`). Topics (webhook-models tables, v1.1 and v2.x):
//! - `ping` (always subscribed; its `id` can be null, as in Zulip's capture
//!   `zerver/webhooks/intercom/fixtures/ping.json`) → not a lead;
//! - contacts: `contact.lead.created`, `contact.user.created` (v2.x) and
//!   `contact.created`, `user.created` (v1.x) → `lead.created`;
//!   `contact.lead.updated`, `contact.user.updated`, `contact.lead.added_email`,
//!   `contact.lead.signed_up`, `contact.email.updated` (v2.x) and
//!   `contact.added_email`, `contact.signed_up` (v1.x) → `lead.updated`. The item
//!   is the Contact model (`descriptions/2.11/api.intercom.io.yaml` in
//!   intercom/Intercom-OpenAPI: `id`, `external_id`, `role`, `email`, `phone`,
//!   `name`, `location{country, region, city}`, `custom_attributes`, and in the
//!   API's examples `utm_campaign/content/medium/source/term` and `referrer`);
//!   v1.x items carry `user_id` and `location_data{country_name, region_name}`.
//! - `conversation.user.created` (a contact started a conversation) → `lead.created`;
//!   `conversation.user.replied` → `message.received`. The contact is the
//!   documented `source.author` (Conversation part author: `type`, `id`, `name`,
//!   `email`) or, for the reply, the author of the last contact-written part of
//!   `conversation_parts`; v1.x items carry `user{type, email, name}` and
//!   `conversation_message`. Authors of type `admin`, `bot`, `team` are not the visitor.
//! - every other topic → not a lead.
//!
//! **Mapping** — event id: the notification `id`; occurred_at: its `created_at`
//! (else now); `email`/`phone`/`name` → `visitor.*`; location country and region
//! → `visitor.country`/`visitor.state` (names as Intercom writes them; the
//! canonical parser resolves them); `utm_*`/`referrer` → `context`;
//! `custom_attributes` with a scalar value → `answers`, plus
//! `intercom_contact_id`, `intercom_external_id` and `intercom_role`; conversation
//! id and the message (HTML reduced to text) as a transcript line;
//! `source.url` → `context.source_url`; `context.channel` is `chat`. An item with
//! neither email nor phone (Intercom creates leads before they leave one; the
//! official sample has none) is not a lead yet: `contact.lead.added_email` follows.
//!
//! **Reply** — any 2xx within 5 s acknowledges; 410 would disable the
//! subscription, so the default 200 JSON is used for every outcome.

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{json, Map, Value};

use crate::canonical::read_json;
use crate::source::{
    any_secret, hex_matches, hmac_sha1, id_text, json_body, ok_or_mismatch, text, vendor_time,
    Inbound, Parsed, Sample, SourceContext, SourceKind, SourceOptions, SourceSecrets, VerifyError,
};
use crate::ParseError;

/// The signature header, as Intercom writes it.
const HEADER: &str = "X-Hub-Signature";
const PREFIX: &str = "sha1=";

/// Topics whose item is a contact that was just created.
const CONTACT_CREATED: [&str; 4] = [
    "contact.lead.created",
    "contact.user.created",
    "contact.created",
    "user.created",
];
/// Topics whose item is a contact that changed.
const CONTACT_UPDATED: [&str; 7] = [
    "contact.lead.updated",
    "contact.user.updated",
    "contact.lead.added_email",
    "contact.lead.signed_up",
    "contact.email.updated",
    "contact.added_email",
    "contact.signed_up",
];
/// Conversation author types that are the visitor (not an admin, bot or team).
const CONTACT_AUTHORS: [&str; 3] = ["user", "lead", "contact"];

pub struct Intercom;

fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// Message HTML (`<p>Hi &amp; bye</p>`) as plain text: tags dropped (block
/// tags end a line), the common entities decoded, blank lines removed.
fn html_text(html: &str) -> String {
    let mut out = String::with_capacity(html.len());
    let mut tag: Option<String> = None;
    for c in html.chars() {
        match (&mut tag, c) {
            (Some(t), '>') => {
                let name = t
                    .trim_start_matches('/')
                    .split(|c: char| c.is_whitespace() || c == '/')
                    .next()
                    .unwrap_or("")
                    .to_ascii_lowercase();
                if matches!(name.as_str(), "br" | "p" | "div" | "li") {
                    out.push('\n');
                }
                tag = None;
            }
            (Some(t), c) => {
                if t.len() < 16 {
                    t.push(c);
                }
            }
            (None, '<') => tag = Some(String::new()),
            (None, c) => out.push(c),
        }
    }
    let decoded = out
        .replace("&nbsp;", " ")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&#x27;", "'")
        .replace("&amp;", "&");
    decoded
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join("\n")
}

/// Who the visitor is, read from a contact item or a conversation author.
#[derive(Default)]
struct Person<'a> {
    email: Option<&'a str>,
    phone: Option<&'a str>,
    name: Option<&'a str>,
    country: Option<&'a str>,
    state: Option<&'a str>,
    id: Option<String>,
    external_id: Option<&'a str>,
    role: Option<&'a str>,
}

impl<'a> Person<'a> {
    /// A Contact (v2.x) or a legacy user/lead (v1.x).
    fn from_contact(item: &'a Value) -> Self {
        let location = item.get("location");
        let legacy = item.get("location_data");
        Person {
            email: text(item.get("email")),
            phone: text(item.get("phone")),
            name: text(item.get("name")),
            country: text(location.and_then(|l| l.get("country")))
                .or_else(|| text(legacy.and_then(|l| l.get("country_name")))),
            state: text(location.and_then(|l| l.get("region")))
                .or_else(|| text(legacy.and_then(|l| l.get("region_name")))),
            id: id_text(item.get("id")),
            external_id: text(item.get("external_id")).or_else(|| text(item.get("user_id"))),
            role: text(item.get("role")),
        }
    }

    /// A conversation part author (`type`, `id`, `name`, `email`), or a v1.x `user`.
    fn from_author(author: &'a Value) -> Self {
        Person {
            email: text(author.get("email")),
            name: text(author.get("name")),
            id: id_text(author.get("id")),
            external_id: text(author.get("user_id")),
            role: text(author.get("type")),
            ..Person::default()
        }
    }

    fn has_identity(&self) -> bool {
        self.email.is_some() || self.phone.is_some()
    }

    fn visitor(&self) -> Value {
        let mut v = Map::new();
        for (key, value) in [
            ("email", self.email),
            ("phone", self.phone),
            ("name", self.name),
            ("country", self.country),
            ("state", self.state),
        ] {
            if let Some(x) = value {
                v.insert(key.into(), json!(x));
            }
        }
        Value::Object(v)
    }

    /// Intercom's own ids of the person, kept with the event (`vendor`, passed
    /// on to webhook targets) but not written as CRM properties: an answer
    /// would be one, and a portal without it would refuse every lead.
    fn vendor_ids(&self, event: &mut Value) {
        let mut ids = Map::new();
        for (key, value) in [
            ("intercom_contact_id", self.id.as_deref()),
            ("intercom_external_id", self.external_id),
            ("intercom_role", self.role),
        ] {
            if let Some(x) = value {
                ids.insert(key.into(), json!(x));
            }
        }
        if !ids.is_empty() {
            event["vendor"] = Value::Object(ids);
        }
    }
}

/// `custom_attributes` values the contract can hold (strings, numbers, booleans).
fn custom_answers(item: &Value, answers: &mut Map<String, Value>) {
    let Some(attrs) = item.get("custom_attributes").and_then(Value::as_object) else {
        return;
    };
    for (k, v) in attrs {
        let key = k.trim();
        if key.is_empty() || key.chars().count() > 100 {
            continue;
        }
        match v {
            Value::String(s) if !s.trim().is_empty() => {
                answers.insert(key.into(), v.clone());
            }
            Value::Number(_) | Value::Bool(_) => {
                answers.insert(key.into(), v.clone());
            }
            _ => {}
        }
    }
}

/// A contact author type: the visitor wrote it.
fn by_contact(author: &Value) -> bool {
    author
        .get("type")
        .and_then(Value::as_str)
        .is_some_and(|t| CONTACT_AUTHORS.contains(&t))
}

impl Intercom {
    fn contact(&self, item: &Value, event: &mut Value) -> Option<()> {
        let person = Person::from_contact(item);
        if !person.has_identity() {
            return None;
        }
        event["visitor"] = person.visitor();
        let mut context = Map::new();
        context.insert("channel".into(), json!("chat"));
        for key in [
            "utm_source",
            "utm_medium",
            "utm_campaign",
            "utm_term",
            "utm_content",
            "referrer",
        ] {
            if let Some(v) = text(item.get(key)) {
                context.insert(key.into(), json!(v));
            }
        }
        event["context"] = Value::Object(context);
        let mut answers = Map::new();
        custom_answers(item, &mut answers);
        if !answers.is_empty() {
            event["answers"] = Value::Object(answers);
        }
        person.vendor_ids(event);
        Some(())
    }

    /// A conversation's visitor, what they wrote and when, for `conversation.user.*`.
    fn conversation(&self, item: &Value, reply: bool, event: &mut Value) -> Option<()> {
        let legacy_user = item.get("user").filter(|u| u.is_object());
        let source = item
            .get("source")
            .or_else(|| item.get("conversation_message"));
        let source_author = source
            .and_then(|s| s.get("author"))
            .filter(|a| by_contact(a));
        let (author, body, at) = if reply {
            let parts = item
                .get("conversation_parts")
                .and_then(|p| p.get("conversation_parts"))
                .and_then(Value::as_array)?;
            let part = parts.iter().rev().find(|p| {
                p.get("author").is_some_and(by_contact)
                    && p.get("part_type")
                        .and_then(Value::as_str)
                        .is_none_or(|t| t == "comment")
            })?;
            (
                part.get("author"),
                part.get("body"),
                part.get("created_at").and_then(vendor_time),
            )
        } else {
            (
                source_author,
                source.and_then(|s| s.get("body")),
                item.get("created_at").and_then(vendor_time),
            )
        };
        // The author's own email when Intercom wrote it, else the conversation's
        // contact (v1.x `user`, or the source author).
        let mut person = author.map(Person::from_author).unwrap_or_default();
        for fallback in [legacy_user, source_author].into_iter().flatten() {
            if person.has_identity() {
                break;
            }
            let other = Person::from_author(fallback);
            if person.id.is_none() || person.id == other.id {
                person = Person {
                    role: person.role.or(other.role),
                    ..other
                };
            }
        }
        if !person.has_identity() {
            return None;
        }
        event["visitor"] = person.visitor();
        if let Some(id) = id_text(item.get("id")) {
            event["conversation_id"] = json!(id);
        }
        let mut context = Map::new();
        context.insert("channel".into(), json!("chat"));
        if let Some(url) = text(source.and_then(|s| s.get("url"))) {
            context.insert("source_url".into(), json!(url));
        }
        event["context"] = Value::Object(context);
        let said = body
            .and_then(Value::as_str)
            .map(html_text)
            .unwrap_or_default();
        if !said.is_empty() {
            let mut line = json!({"from": "visitor", "text": said});
            if let Some(at) = at {
                line["at"] = json!(rfc3339(at));
            }
            event["transcript"] = json!({"lines": [line]});
        }
        person.vendor_ids(event);
        Some(())
    }
}

impl SourceKind for Intercom {
    fn name(&self) -> &'static str {
        "intercom"
    }

    fn verify(
        &self,
        req: &Inbound<'_>,
        secrets: &SourceSecrets,
        _now: DateTime<Utc>,
    ) -> Result<(), VerifyError> {
        let header = req.header(HEADER).ok_or(VerifyError::Missing(HEADER))?;
        let hex_sig = header
            .trim()
            .strip_prefix(PREFIX)
            .filter(|h| h.len() == 40 && h.bytes().all(|b| b.is_ascii_hexdigit()))
            .ok_or(VerifyError::Malformed(HEADER))?;
        ok_or_mismatch(any_secret(secrets.required()?, |s| {
            hex_matches(hex_sig, &hmac_sha1(s.as_bytes(), &[req.body]))
        }))
    }

    fn parse(&self, req: &Inbound<'_>, cx: &SourceContext<'_>) -> Result<Parsed, ParseError> {
        let body = read_json(req.body)?;
        let Some(topic) = text(body.get("topic")) else {
            return Ok(Parsed::NotALead("no topic".into()));
        };
        if topic == "ping" {
            return Ok(Parsed::NotALead("ping".into()));
        }
        let event_type = if CONTACT_CREATED.contains(&topic) {
            "lead.created"
        } else if CONTACT_UPDATED.contains(&topic) {
            "lead.updated"
        } else if topic == "conversation.user.created" {
            "lead.created"
        } else if topic == "conversation.user.replied" {
            "message.received"
        } else {
            return Ok(Parsed::NotALead(format!("topic {topic}")));
        };
        let Some(item) = body
            .get("data")
            .and_then(|d| d.get("item"))
            .filter(|i| i.is_object())
        else {
            return Ok(Parsed::NotALead("no item".into()));
        };
        let occurred_at = body
            .get("created_at")
            .and_then(vendor_time)
            .unwrap_or(cx.now);
        // The notification id; Intercom always sends one for these topics, but
        // should it not, the topic, item and time still identify the delivery.
        let vendor_id = text(body.get("id")).map(str::to_string).unwrap_or_else(|| {
            format!(
                "{topic}:{}:{}",
                id_text(item.get("id")).unwrap_or_default(),
                body.get("created_at")
                    .map(Value::to_string)
                    .unwrap_or_default()
            )
        });
        let mut event = cx.event(&vendor_id, event_type, occurred_at);
        let found = if topic.starts_with("conversation.") {
            self.conversation(item, event_type == "message.received", &mut event)
        } else {
            self.contact(item, &mut event)
        };
        match found {
            Some(()) => Ok(Parsed::Leads(vec![event])),
            None => Ok(Parsed::NotALead("no identity".into())),
        }
    }

    fn sign(
        &self,
        _url: &str,
        body: &[u8],
        secret: &str,
        _now: DateTime<Utc>,
    ) -> Vec<(String, String)> {
        vec![
            ("content-type".into(), "application/json".into()),
            (
                "user-agent".into(),
                "intercom-parrot-service-client/1.0".into(),
            ),
            (
                HEADER.to_ascii_lowercase(),
                format!(
                    "{PREFIX}{}",
                    hex::encode(hmac_sha1(secret.as_bytes(), &[body]))
                ),
            ),
        ]
    }

    fn sample(&self, lead: &Sample<'_>, _options: &SourceOptions) -> (String, Vec<u8>) {
        let opt = |s: &str| {
            if s.trim().is_empty() {
                Value::Null
            } else {
                json!(s)
            }
        };
        let at = lead.at.timestamp();
        // A v2.x `contact.lead.created` notification (the documented Contact
        // model, shaped like a real delivery). A contact carries no message:
        // `lead.text` has no place in it.
        let body = json!({
            "type": "notification_event",
            "app_id": "a86dr8yl",
            "data": {
                "type": "notification_event_data",
                "item": {
                    "type": "contact",
                    "id": "6762f0d11bb69f9f2193bba1",
                    "workspace_id": "a86dr8yl",
                    "external_id": null,
                    "role": "lead",
                    "email": opt(lead.email),
                    "phone": opt(lead.phone),
                    "name": opt(lead.name),
                    "created_at": at,
                    "updated_at": at,
                    "location": {"type": "location", "country": null, "region": null, "city": null},
                    "custom_attributes": {},
                    "utm_campaign": null,
                    "utm_content": null,
                    "utm_medium": null,
                    "utm_source": null,
                    "utm_term": null,
                    "referrer": null,
                },
            },
            "links": {},
            "id": lead.vendor_id,
            "topic": "contact.lead.created",
            "delivery_status": "pending",
            "delivery_attempts": 1,
            "delivered_at": 0,
            "first_sent_at": at,
            "created_at": at,
            "self": null,
        });
        json_body(&body)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{
        self, ada, assert_signed_verifies, at, canonical_lead, context, fixture, json_headers,
        post, secrets, tampered,
    };

    const URL: &str = "https://leads.example.com/v1/sources/intercom";

    const OFFICIAL: &[u8] = fixture!("intercom/user_created.signed_notifications.json");
    const PING: &[u8] = fixture!("intercom/ping.zulip.json");
    const LEAD_CAPTURE: &[u8] = fixture!("intercom/contact_lead_created.zulip.json");
    const LEAD_FULL: &[u8] = fixture!("intercom/contact_lead_created.CONSTRUCTED.json");
    const CONVERSATION: &[u8] = fixture!("intercom/conversation_user_created.CONSTRUCTED.json");
    const CONVERSATION_V1: &[u8] = fixture!("intercom/conversation_user_created.v1.zulip.json");
    const REPLY_V1: &[u8] = fixture!("intercom/conversation_user_replied.v1.zulip.json");
    /// derived_vectors.json (self-consistency, not Intercom-published).
    const DERIVED_SECRET: &str = "test_client_secret";
    const DERIVED_SIG: &str = "sha1=fe8cbed1a218f1fbb00c841f40957d5b8ddc9aad";

    fn now() -> DateTime<Utc> {
        at(1_767_225_600)
    }

    fn headers(sig: &str) -> Vec<(String, String)> {
        json_headers("x-hub-signature", sig)
    }

    fn parse(body: &[u8]) -> Result<Parsed, ParseError> {
        Intercom.parse(&post(URL, &[], body), &context("intercom", "bot_ic", now()))
    }

    fn one_lead(body: &[u8]) -> Value {
        testing::one_lead(parse(body).unwrap())
    }

    #[test]
    fn derived_vector_verifies_and_sign_reproduces_it() {
        let h = headers(DERIVED_SIG);
        assert_eq!(
            Intercom.verify(&post(URL, &h, OFFICIAL), &secrets(&[DERIVED_SECRET]), now()),
            Ok(())
        );
        let signed = Intercom.sign("", OFFICIAL, DERIVED_SECRET, now());
        assert!(signed.contains(&("x-hub-signature".into(), DERIVED_SIG.into())));
        // Hex in upper case is the same signature.
        let upper = format!("sha1={}", DERIVED_SIG[5..].to_ascii_uppercase());
        assert_eq!(
            Intercom.verify(
                &post(URL, &headers(&upper), OFFICIAL),
                &secrets(&[DERIVED_SECRET]),
                now()
            ),
            Ok(())
        );
    }

    #[test]
    fn rotation_second_secret_verifies() {
        let h = headers(DERIVED_SIG);
        assert_eq!(
            Intercom.verify(
                &post(URL, &h, OFFICIAL),
                &secrets(&["current_secret", DERIVED_SECRET]),
                now()
            ),
            Ok(())
        );
    }

    #[test]
    fn refusals() {
        let s = secrets(&[DERIVED_SECRET]);
        let h = headers(DERIVED_SIG);
        let long = format!("sha1={}", "a".repeat(100_000));
        assert_eq!(
            Intercom.verify(&post(URL, &h, OFFICIAL), &secrets(&["wrong"]), now()),
            Err(VerifyError::Mismatch)
        );
        let tampered = tampered(OFFICIAL, b'H', b'J');
        assert_eq!(
            Intercom.verify(&post(URL, &h, &tampered), &s, now()),
            Err(VerifyError::Mismatch)
        );
        assert_eq!(
            Intercom.verify(&post(URL, &[], OFFICIAL), &s, now()),
            Err(VerifyError::Missing(HEADER))
        );
        for bad in [
            "",
            "fe8cbed1a218f1fbb00c841f40957d5b8ddc9aad",
            "sha256=fe8cbed1a218f1fbb00c841f40957d5b8ddc9aad",
            "sha1=fe8cbed1",
            "sha1=zz8cbed1a218f1fbb00c841f40957d5b8ddc9aad",
            long.as_str(),
        ] {
            assert_eq!(
                Intercom.verify(&post(URL, &headers(bad), OFFICIAL), &s, now()),
                Err(VerifyError::Malformed(HEADER)),
                "{}",
                &bad[..bad.len().min(40)]
            );
        }
        assert_eq!(
            Intercom.verify(&post(URL, &h, OFFICIAL), &secrets(&[]), now()),
            Err(VerifyError::NoSecret)
        );
    }

    #[test]
    fn official_sample_has_no_identity_and_ping_is_not_a_lead() {
        assert_eq!(
            parse(OFFICIAL).unwrap(),
            Parsed::NotALead("no identity".into())
        );
        assert_eq!(parse(PING).unwrap(), Parsed::NotALead("ping".into()));
        assert_eq!(
            parse(CONVERSATION_V1).unwrap(),
            Parsed::NotALead("no identity".into())
        );
    }

    #[test]
    fn captured_contact_lead_created_maps() {
        let v = one_lead(LEAD_CAPTURE);
        assert_eq!(
            v["event_id"],
            "intercom:notif_204d32ad-f47a-4276-8074-e5ce789d2987"
        );
        assert_eq!(v["event_type"], "lead.created");
        assert_eq!(v["occurred_at"], "2026-01-10T04:41:59.000Z");
        assert_eq!(
            v["visitor"],
            json!({"email": "shuz@example.com", "name": "shuuuuz"})
        );
        assert_eq!(v["context"], json!({"channel": "chat"}));
        assert_eq!(
            v["vendor"],
            json!({"intercom_contact_id": "6961d897719c606240178da8",
                   "intercom_external_id": "c3ca7689-a3c1-4a05-b81d-6cdf995cea85",
                   "intercom_role": "lead"})
        );
        let e = canonical_lead(&v);
        assert_eq!(e.visitor.email.unwrap().as_str(), "shuz@example.com");
        assert_eq!(e.visitor.name.as_deref(), Some("shuuuuz"));
    }

    #[test]
    fn constructed_contact_maps_every_documented_field() {
        let v = one_lead(LEAD_FULL);
        assert_eq!(
            v["visitor"],
            json!({"email": "maria.garcia@example.com", "phone": "+353 87 555 1234",
                   "name": "Maria Garcia", "country": "Ireland", "state": "Dublin"})
        );
        assert_eq!(
            v["context"],
            json!({"channel": "chat", "utm_source": "google", "utm_medium": "cpc",
                   "utm_campaign": "spring_launch", "utm_term": "crm software",
                   "utm_content": "banner_a", "referrer": "https://www.google.com/"})
        );
        assert_eq!(
            v["answers"],
            json!({"plan_interest": "Pro", "team_size": 12, "wants_demo": true})
        );
        assert_eq!(
            v["vendor"],
            json!({"intercom_contact_id": "6762f0d11bb69f9f2193bba1",
                   "intercom_external_id": "crm-7781", "intercom_role": "lead"})
        );
        let e = canonical_lead(&v);
        assert_eq!(
            e.visitor.email.unwrap().as_str(),
            "maria.garcia@example.com"
        );
        assert_eq!(e.visitor.phone.unwrap().as_str(), "+353875551234");
        assert_eq!(e.visitor.country.as_deref(), Some("IE"));
        assert_eq!(e.context.utm_source.as_deref(), Some("google"));
        assert_eq!(e.answers["team_size"], "12");
    }

    #[test]
    fn update_topics_are_lead_updated() {
        for topic in [
            "contact.lead.added_email",
            "contact.added_email",
            "contact.user.updated",
        ] {
            let mut body: Value = serde_json::from_slice(LEAD_CAPTURE).unwrap();
            body["topic"] = json!(topic);
            assert_eq!(
                one_lead(body.to_string().as_bytes())["event_type"],
                "lead.updated"
            );
        }
        let mut body: Value = serde_json::from_slice(LEAD_CAPTURE).unwrap();
        body["topic"] = json!("contact.lead.tag.created");
        assert_eq!(
            parse(body.to_string().as_bytes()).unwrap(),
            Parsed::NotALead("topic contact.lead.tag.created".into())
        );
        body["topic"] = json!("contact.lead.created");
        body["data"]["item"]["email"] = json!("");
        assert_eq!(
            parse(body.to_string().as_bytes()).unwrap(),
            Parsed::NotALead("no identity".into())
        );
    }

    #[test]
    fn conversation_started_by_a_contact_maps() {
        let v = one_lead(CONVERSATION);
        assert_eq!(
            v["event_id"],
            "intercom:notif_9a8b7c6d-1e2f-4a3b-8c4d-5e6f7a8b9c0d"
        );
        assert_eq!(v["event_type"], "lead.created");
        assert_eq!(v["conversation_id"], "215472621209999");
        assert_eq!(
            v["visitor"],
            json!({"email": "sam.lee@example.com", "name": "Sam Lee"})
        );
        assert_eq!(
            v["context"],
            json!({"channel": "chat", "source_url": "https://www.example.com/pricing"})
        );
        assert_eq!(
            v["transcript"]["lines"][0],
            json!({"from": "visitor", "text": "Hi! Do you offer annual billing & invoices?",
                   "at": "2024-12-18T16:06:40.000Z"})
        );
        let e = canonical_lead(&v);
        assert_eq!(e.visitor.email.unwrap().as_str(), "sam.lee@example.com");
        assert_eq!(e.conversation_id.as_deref(), Some("215472621209999"));
        assert_eq!(e.transcript.unwrap().lines.len(), 1);

        // Started by an admin: not the visitor.
        let mut body: Value = serde_json::from_slice(CONVERSATION).unwrap();
        body["data"]["item"]["source"]["author"]["type"] = json!("admin");
        assert_eq!(
            parse(body.to_string().as_bytes()).unwrap(),
            Parsed::NotALead("no identity".into())
        );
    }

    #[test]
    fn legacy_reply_is_a_message() {
        let v = one_lead(REPLY_V1);
        assert_eq!(v["event_type"], "message.received");
        assert_eq!(v["conversation_id"], "21322009097");
        assert_eq!(v["visitor"]["email"], "eeshan@example.com");
        assert_eq!(
            v["transcript"]["lines"][0]["text"],
            "Well, I need some help getting access to a developer account."
        );
        assert_eq!(v["context"]["source_url"], "http://localhost:9991/api/");
        let e = canonical_lead(&v);
        assert_eq!(e.visitor.email.unwrap().as_str(), "eeshan@example.com");
    }

    #[test]
    fn garbage_and_odd_bodies() {
        assert!(matches!(parse(b"<xml/>"), Err(ParseError::NotJson(_))));
        assert!(matches!(
            parse(br#"{"topic":"ping","topic":"contact.lead.created"}"#),
            Err(ParseError::NotJson(_))
        ));
        assert_eq!(parse(b"[]").unwrap(), Parsed::NotALead("no topic".into()));
        assert_eq!(
            parse(br#"{"topic":"contact.lead.created","data":{"item":"x"}}"#).unwrap(),
            Parsed::NotALead("no item".into())
        );
        // No notification id: still one stable id.
        let body = br#"{"topic":"contact.lead.created","data":{"item":{"id":"c1","email":"a@example.com"}}}"#;
        let a = one_lead(body);
        assert_eq!(a["event_id"], one_lead(body)["event_id"]);
        assert_eq!(a["occurred_at"], rfc3339(now()));
    }

    #[test]
    fn html_is_reduced_to_text() {
        assert_eq!(
            html_text("<p>One &lt;two&gt;</p><p>Three<br/>four&nbsp;&amp;&quot;five&quot;</p>"),
            "One <two>\nThree\nfour &\"five\""
        );
        assert_eq!(html_text("<p unterminated"), "");
        assert_eq!(html_text("plain"), "plain");
    }

    #[test]
    fn redelivery_keeps_the_event_id() {
        assert_eq!(
            one_lead(LEAD_FULL)["event_id"],
            one_lead(LEAD_FULL)["event_id"]
        );
    }

    #[test]
    fn sign_and_sample_round_trip() {
        let lead = Sample {
            vendor_id: "notif_0b7c1e3a-5d55-4b8e-9a59-8f2f4d0e1c11",
            ..ada(now())
        };
        let (ct, body) = Intercom.sample(&lead, &SourceOptions::default());
        assert_eq!(ct, "application/json");
        assert_signed_verifies(&Intercom, URL, &body, "client_secret", now());
        let v = one_lead(&body);
        assert_eq!(
            v["event_id"],
            "intercom:notif_0b7c1e3a-5d55-4b8e-9a59-8f2f4d0e1c11"
        );
        let e = canonical_lead(&v);
        assert_eq!(e.visitor.email.unwrap().as_str(), "ada@example.com");
        assert_eq!(e.visitor.phone.unwrap().as_str(), "+14155552671");
        assert_eq!(e.visitor.name.as_deref(), Some("Ada Lovelace"));
        assert_eq!(e.occurred_at, now());
    }
}
