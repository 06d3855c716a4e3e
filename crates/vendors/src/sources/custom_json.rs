//! `custom_json`: any bot builder that can only call a URL with headers and a
//! body template it fills with the conversation's variables, and signs
//! nothing:
//! - Typebot's HTTP Request block ("custom body with your collected variables",
//!   e.g. `{"name": "{{Name}}", "email": "{{Email}}"}`,
//!   <https://docs.typebot.io/editor/blocks/integrations/webhook>);
//! - Voiceflow's API step (URL, headers, raw body with `{variables}`,
//!   <https://docs.voiceflow.com/docs/api-step>);
//! - Botpress cards that call an API, Landbot's webhook block (no headers by
//!   default, e.g. `Authorization: Bearer …` can be added,
//!   <https://help.landbot.io/article/nhg13a1hp0-webhook-block-for-advanced-users>),
//!   ManyChat's External Request (headers, JSON body, "Add Full Contact Data").
//!
//! Authentication: a shared token in a header the builder sends. The
//! source's `token_header` (default `authorization`) names it: for
//! `authorization` the request carries `Authorization: Bearer <secret>`, for
//! any other name the header holds the secret verbatim. Constant-time against
//! every secret (rotation); missing → `Missing`, wrong → `Mismatch`
//! ([`verify_token`]).
//!
//! [`SourceKind::verify`] receives no source options, so it cannot know a
//! custom `token_header`: it accepts `Authorization: Bearer <secret>` or any
//! header whose whole value is a secret (still a constant-time comparison
//! with the secret itself; what it loses is only the precise Missing/Mismatch
//! answer for a custom header). Once ingest hands the options to verify, it
//! becomes `verify_token(req, secrets, options.token_header.as_deref())`.
//!
//! Payload: whatever JSON the template makes. The source's `fields` maps
//! canonical fields to JSON pointers (RFC 6901) into it ([`known_targets`]):
//! each pointed value (string, number, boolean, kept as its JSON) is placed at
//! its canonical path; a pointer that resolves to nothing (or `null`) leaves
//! the field absent, and the canonical parser then reports what is missing.
//! `answers.*` points at an object whose scalar members all become answers
//! (an explicit `answers.<key>` wins over it). `occurred_at` and
//! `consent.given_at` given as unix seconds/milliseconds are written as
//! RFC 3339. Defaults: `event_type` `lead.created`, `occurred_at` now, and
//! `event_id` the hash of the raw body (`sha256-<hex>`) when not mapped: an
//! identical redelivery is a duplicate, and two deliveries that differ in any
//! byte are two events (map `event_id` to the builder's own id when it has one).
//! With no `fields` at all (the config checker requires them) the map is
//! `visitor.name` `/name`, `visitor.email` `/email`, `visitor.phone` `/phone`.
//! Reply: the default JSON (the builder can read `status` into a variable).

use chrono::{DateTime, Utc};
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};

use crate::source::{
    credential_matches, json_body, ok_or_mismatch, vendor_time, Inbound, Parsed, Sample,
    SourceContext, SourceKind, SourceOptions, SourceSecrets, VerifyError,
};
use crate::ParseError;

/// The kind `custom_json`.
pub struct CustomJson;

/// The canonical fields a `fields` map may target; `answers.<key>` (any key
/// of 1 to 100 characters) is accepted besides these.
const KNOWN_TARGETS: [&str; 28] = [
    "event_id",
    "event_type",
    "occurred_at",
    "conversation_id",
    "visitor.email",
    "visitor.phone",
    "visitor.wa_id",
    "visitor.name",
    "visitor.first_name",
    "visitor.last_name",
    "visitor.company",
    "visitor.country",
    "visitor.state",
    "context.source_url",
    "context.referrer",
    "context.utm_source",
    "context.utm_medium",
    "context.utm_campaign",
    "context.utm_term",
    "context.utm_content",
    "context.session_id",
    "context.channel",
    "context.ad_click_id",
    "context.ad_id",
    "context.ad_headline",
    "transcript.summary",
    "consent.given_at",
    "answers.*",
];

/// The canonical paths a `fields` map may target (the config checker
/// validates field maps with it); `answers.<key>` is handled by prefix.
pub fn known_targets() -> &'static [&'static str] {
    &KNOWN_TARGETS
}

/// Whether `target` is a field a map may name.
pub fn is_target(target: &str) -> bool {
    KNOWN_TARGETS.contains(&target)
        || target
            .strip_prefix("answers.")
            .is_some_and(|k| !k.is_empty() && k.len() <= 100)
}

/// The header the token travels in when the source sets none.
pub const DEFAULT_TOKEN_HEADER: &str = "authorization";
/// Longest header value compared.
const MAX_TOKEN: usize = 4 * 1024;
/// Most headers looked at when the token header is not known.
const MAX_HEADERS: usize = 100;

const DEFAULT_FIELDS: [(&str, &str); 3] = [
    ("visitor.name", "/name"),
    ("visitor.email", "/email"),
    ("visitor.phone", "/phone"),
];

fn fields(options: &SourceOptions) -> Vec<(String, String)> {
    if options.fields.is_empty() {
        DEFAULT_FIELDS
            .iter()
            .map(|(t, p)| (t.to_string(), p.to_string()))
            .collect()
    } else {
        options.fields.clone()
    }
}

fn bearer(value: &str) -> Option<&str> {
    let (scheme, token) = value.trim().split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

/// Checks the token in `token_header` (`authorization`: `Bearer <secret>`;
/// any other: the secret verbatim). `None`: the header is not known, so
/// `Authorization: Bearer` or any header holding exactly a secret is taken.
pub fn verify_token(
    req: &Inbound<'_>,
    secrets: &SourceSecrets,
    token_header: Option<&str>,
) -> Result<(), VerifyError> {
    let secrets = secrets.required()?;
    match token_header.map(|h| h.trim().to_ascii_lowercase()) {
        Some(h) if h == DEFAULT_TOKEN_HEADER => {
            let value = req
                .header(DEFAULT_TOKEN_HEADER)
                .ok_or(VerifyError::Missing("Authorization"))?;
            let token = bearer(value)
                .filter(|_| value.len() <= MAX_TOKEN)
                .ok_or(VerifyError::Malformed("Authorization"))?;
            ok_or_mismatch(credential_matches(&[token], secrets))
        }
        Some(h) => {
            let value = req.header(&h).ok_or(VerifyError::Missing("token_header"))?;
            if value.len() > MAX_TOKEN {
                return Err(VerifyError::Malformed("token_header"));
            }
            ok_or_mismatch(credential_matches(&[value.trim()], secrets))
        }
        None => {
            let auth = req.header(DEFAULT_TOKEN_HEADER);
            let mut presented: Vec<&str> = Vec::new();
            if let Some(t) = auth.filter(|a| a.len() <= MAX_TOKEN).and_then(bearer) {
                presented.push(t);
            }
            presented.extend(
                req.headers
                    .iter()
                    .take(MAX_HEADERS)
                    .filter(|(k, v)| {
                        !k.eq_ignore_ascii_case(DEFAULT_TOKEN_HEADER) && v.len() <= MAX_TOKEN
                    })
                    .map(|(_, v)| v.trim()),
            );
            if credential_matches(&presented, secrets) {
                Ok(())
            } else {
                match auth {
                    None => Err(VerifyError::Missing("Authorization")),
                    Some(a) if bearer(a).is_none() => Err(VerifyError::Malformed("Authorization")),
                    Some(_) => Err(VerifyError::Mismatch),
                }
            }
        }
    }
}

/// The headers that carry `secret` in `token_header`.
pub fn token_headers(secret: &str, token_header: Option<&str>) -> Vec<(String, String)> {
    match token_header.map(|h| h.trim().to_ascii_lowercase()) {
        Some(h) if h != DEFAULT_TOKEN_HEADER => vec![(h, secret.to_string())],
        _ => vec![(DEFAULT_TOKEN_HEADER.to_string(), format!("Bearer {secret}"))],
    }
}

fn is_scalar(v: &Value) -> bool {
    matches!(v, Value::String(_) | Value::Number(_) | Value::Bool(_))
}

/// A time as RFC 3339 when it reads as one (or as unix seconds/millis);
/// otherwise the value as sent, for the canonical parser to report.
fn time_value(v: &Value) -> Value {
    match vendor_time(v) {
        Some(t) => json!(t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)),
        None => v.clone(),
    }
}

/// The `/a/b` tokens of a JSON pointer, unescaped (`~1` → `/`, `~0` → `~`).
fn pointer_tokens(pointer: &str) -> Option<Vec<String>> {
    let rest = pointer.strip_prefix('/')?;
    Some(
        rest.split('/')
            .map(|t| t.replace("~1", "/").replace("~0", "~"))
            .collect(),
    )
}

/// Puts `value` at `pointer` in `root`, creating objects on the way.
fn put(root: &mut Value, pointer: &str, value: Value) {
    let Some(tokens) = pointer_tokens(pointer) else {
        return;
    };
    let mut node = root;
    for (i, token) in tokens.iter().enumerate() {
        if !node.is_object() {
            *node = Value::Object(Map::new());
        }
        let map = node.as_object_mut().expect("made an object above");
        if i + 1 == tokens.len() {
            map.insert(token.clone(), value);
            return;
        }
        node = map
            .entry(token.clone())
            .or_insert_with(|| Value::Object(Map::new()));
    }
}

impl SourceKind for CustomJson {
    fn name(&self) -> &'static str {
        "custom_json"
    }

    fn option_keys(&self) -> &'static [&'static str] {
        &["fields", "token_header"]
    }

    fn verify(
        &self,
        req: &Inbound<'_>,
        secrets: &SourceSecrets,
        _now: DateTime<Utc>,
    ) -> Result<(), VerifyError> {
        verify_token(req, secrets, None)
    }

    fn verify_with(
        &self,
        req: &Inbound<'_>,
        secrets: &SourceSecrets,
        options: &SourceOptions,
        _now: DateTime<Utc>,
    ) -> Result<(), VerifyError> {
        verify_token(req, secrets, options.token_header.as_deref())
    }

    fn parse(&self, req: &Inbound<'_>, cx: &SourceContext<'_>) -> Result<Parsed, ParseError> {
        let body =
            crate::json::parse_strict(req.body).map_err(|e| ParseError::NotJson(e.to_string()))?;
        let mut vendor_id: Option<String> = None;
        let mut event_type: Option<Value> = None;
        let mut occurred_at: Option<Value> = None;
        let mut top = Map::new();
        let mut groups: [(&str, Map<String, Value>); 4] = [
            ("visitor", Map::new()),
            ("context", Map::new()),
            ("transcript", Map::new()),
            ("consent", Map::new()),
        ];
        let mut answers = Map::new();
        let mut wildcard = Map::new();
        for (target, pointer) in fields(cx.options) {
            let Some(v) = body.pointer(&pointer).filter(|v| !v.is_null()) else {
                continue;
            };
            match target.as_str() {
                "event_id" => {
                    vendor_id = match v {
                        Value::String(s) if !s.trim().is_empty() => Some(s.trim().to_string()),
                        Value::Number(n) => Some(n.to_string()),
                        _ => None,
                    }
                }
                "event_type" => event_type = Some(v.clone()),
                "occurred_at" => occurred_at = Some(v.clone()),
                "conversation_id" => {
                    top.insert(target.clone(), v.clone());
                }
                "answers.*" => {
                    if let Value::Object(m) = v {
                        for (k, x) in m.iter().filter(|(_, x)| is_scalar(x)) {
                            wildcard.insert(k.clone(), x.clone());
                        }
                    }
                }
                t if !is_target(t) => {}
                t => {
                    if let Some(key) = t.strip_prefix("answers.") {
                        answers.insert(key.to_string(), v.clone());
                    } else if let Some((group, key)) = t.split_once('.') {
                        let value = if t == "consent.given_at" {
                            time_value(v)
                        } else {
                            v.clone()
                        };
                        if let Some((_, m)) = groups.iter_mut().find(|(g, _)| *g == group) {
                            m.insert(key.to_string(), value);
                        }
                    }
                }
            }
        }
        for (k, v) in wildcard {
            answers.entry(k).or_insert(v);
        }
        let vendor_id = vendor_id
            .unwrap_or_else(|| format!("sha256-{}", hex::encode(Sha256::digest(req.body))));
        let type_str = match &event_type {
            None => "lead.created",
            Some(Value::String(s)) => s.as_str(),
            Some(_) => "lead.created",
        };
        let parsed_time = occurred_at.as_ref().and_then(vendor_time);
        let mut event = cx.event(&vendor_id, type_str, parsed_time.unwrap_or(cx.now));
        let out = event.as_object_mut().expect("cx.event is an object");
        if let Some(t @ (Value::Bool(_) | Value::Number(_) | Value::Array(_) | Value::Object(_))) =
            event_type
        {
            // Not a string: left as sent for the canonical parser to report.
            out.insert("event_type".into(), t);
        }
        if let (Some(raw), None) = (occurred_at, parsed_time) {
            out.insert("occurred_at".into(), raw);
        }
        out.extend(top);
        for (group, map) in groups {
            if group == "visitor" || !map.is_empty() {
                out.insert(group.to_string(), Value::Object(map));
            }
        }
        if !answers.is_empty() {
            out.insert("answers".into(), Value::Object(answers));
        }
        Ok(Parsed::Leads(vec![event]))
    }

    /// `Authorization: Bearer <secret>` (the default `token_header`).
    fn sign(
        &self,
        _url: &str,
        _body: &[u8],
        secret: &str,
        _now: DateTime<Utc>,
    ) -> Vec<(String, String)> {
        token_headers(secret, None)
    }

    /// A body with the lead's values at the mapped pointers.
    fn sample(&self, lead: &Sample<'_>, options: &SourceOptions) -> (String, Vec<u8>) {
        let at = lead.at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        let (first, last) = lead.name.split_once(' ').unwrap_or((lead.name, ""));
        let mut body = Value::Object(Map::new());
        for (target, pointer) in fields(options) {
            let value = match target.as_str() {
                "event_id" | "conversation_id" => lead.vendor_id,
                "event_type" => "lead.created",
                "occurred_at" | "consent.given_at" => at.as_str(),
                "visitor.email" => lead.email,
                "visitor.phone" => lead.phone,
                "visitor.name" => lead.name,
                "visitor.first_name" => first,
                "visitor.last_name" => last,
                "transcript.summary" => lead.text,
                "context.channel" => "chat",
                _ => "",
            };
            if !value.is_empty() {
                put(&mut body, &pointer, json!(value));
            }
        }
        json_body(&body)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::canonical::{parse_value_with, Normalization};
    use crate::testing::{
        self, assert_signed_verifies, at, canonical_lead, context, fixture, pairs, pairs_of, post,
        secrets, HOSTILE_BODIES,
    };
    use crate::ParseError;

    const URL: &str = "https://leads.example.com/v1/sources/tb";

    const TEMPLATE: &[u8] = fixture!("custom_json/typebot_custom_body.template.json");
    const TYPEBOT: &[u8] = fixture!("custom_json/typebot_custom_body.filled.CONSTRUCTED.json");
    const MANYCHAT: &[u8] = fixture!("custom_json/manychat_full_contact.CONSTRUCTED.json");
    const MAPS: &[u8] = fixture!("custom_json/field_maps.json");

    fn now() -> DateTime<Utc> {
        at(1_777_000_000)
    }

    fn map(name: &str) -> SourceOptions {
        let v: Value = serde_json::from_slice(MAPS).unwrap();
        with_fields(pairs_of(&v[name]))
    }

    fn with(list: &[(&str, &str)]) -> SourceOptions {
        with_fields(pairs(list))
    }

    fn with_fields(fields: Vec<(String, String)>) -> SourceOptions {
        SourceOptions {
            fields,
            ..SourceOptions::default()
        }
    }

    fn parse(body: &[u8], o: &SourceOptions) -> Result<Parsed, ParseError> {
        let cx = SourceContext {
            options: o,
            ..context("tb", "bot_tb", now())
        };
        CustomJson.parse(&post(URL, &[], body), &cx)
    }

    fn one_lead(body: &[u8], o: &SourceOptions) -> Value {
        testing::one_lead(parse(body, o).unwrap())
    }

    #[test]
    fn bearer_token_in_authorization() {
        let v = |hs: &[(&str, &str)], s: &[&str]| {
            verify_token(
                &post(URL, &pairs(hs), b"{}"),
                &secrets(s),
                Some("authorization"),
            )
        };
        assert_eq!(v(&[("authorization", "Bearer tok_1")], &["tok_1"]), Ok(()));
        assert_eq!(
            v(&[("authorization", "Bearer tok_1")], &["tok_0", "tok_1"]),
            Ok(())
        );
        assert_eq!(
            v(&[("authorization", "Bearer tok_2")], &["tok_1"]),
            Err(VerifyError::Mismatch)
        );
        assert_eq!(
            v(&[], &["tok_1"]),
            Err(VerifyError::Missing("Authorization"))
        );
        assert_eq!(
            v(&[("authorization", "tok_1")], &["tok_1"]),
            Err(VerifyError::Malformed("Authorization"))
        );
        assert_eq!(
            v(&[("authorization", "Bearer tok_1")], &[]),
            Err(VerifyError::NoSecret)
        );
    }

    #[test]
    fn a_named_header_holds_the_secret_verbatim() {
        let v = |hs: &[(&str, &str)], s: &[&str]| {
            verify_token(
                &post(URL, &pairs(hs), b"{}"),
                &secrets(s),
                Some("X-Typebot-Token"),
            )
        };
        assert_eq!(v(&[("x-typebot-token", "tok_1")], &["tok_1"]), Ok(()));
        assert_eq!(
            v(&[("x-typebot-token", "tok_1")], &["new", "tok_1"]),
            Ok(())
        );
        assert_eq!(
            v(&[("x-typebot-token", "Bearer tok_1")], &["tok_1"]),
            Err(VerifyError::Mismatch)
        );
        assert_eq!(
            v(&[("authorization", "Bearer tok_1")], &["tok_1"]),
            Err(VerifyError::Missing("token_header"))
        );
        let long = "a".repeat(MAX_TOKEN + 1);
        assert_eq!(
            v(&[("x-typebot-token", &long)], &["tok_1"]),
            Err(VerifyError::Malformed("token_header"))
        );
    }

    #[test]
    fn the_kind_verify_takes_bearer_or_any_header_holding_a_secret() {
        let v = |hs: &[(&str, &str)], s: &[&str]| {
            CustomJson.verify(&post(URL, &pairs(hs), b"{}"), &secrets(s), now())
        };
        assert_eq!(v(&[("authorization", "Bearer tok_1")], &["tok_1"]), Ok(()));
        assert_eq!(
            v(
                &[("x-api-key", "tok_1"), ("content-type", "application/json")],
                &["x", "tok_1"]
            ),
            Ok(())
        );
        assert_eq!(
            v(&[("x-api-key", "tok_2")], &["tok_1"]),
            Err(VerifyError::Missing("Authorization"))
        );
        assert_eq!(
            v(&[("authorization", "Bearer tok_2")], &["tok_1"]),
            Err(VerifyError::Mismatch)
        );
        assert_eq!(
            v(&[("authorization", "Basic dG9rXzE=")], &["tok_1"]),
            Err(VerifyError::Malformed("Authorization"))
        );
        // The raw Authorization value is not a token: only its Bearer part is.
        assert_eq!(
            v(&[("authorization", "tok_1")], &["tok_1"]),
            Err(VerifyError::Malformed("Authorization"))
        );
        assert_eq!(
            v(&[("x-api-key", "tok_1")], &[]),
            Err(VerifyError::NoSecret)
        );
        let many: Vec<(String, String)> = (0..10_000)
            .map(|i| (format!("x-{i}"), "v".repeat(10)))
            .collect();
        assert!(CustomJson
            .verify(&post(URL, &many, b"{}"), &secrets(&["tok_1"]), now())
            .is_err());
    }

    #[test]
    fn typebot_body_with_its_field_map() {
        let o = map("typebot");
        let v = one_lead(TYPEBOT, &o);
        assert_eq!(v["event_type"], "lead.created");
        assert_eq!(v["occurred_at"], "2026-04-24T03:06:40.000Z");
        assert_eq!(v["bot_id"], "bot_tb");
        let id = v["event_id"].as_str().unwrap();
        assert_eq!(
            id,
            format!("tb:sha256-{}", hex::encode(Sha256::digest(TYPEBOT)))
        );
        assert_eq!(
            one_lead(TYPEBOT, &o)["event_id"],
            id,
            "a redelivery is a duplicate"
        );
        let e = canonical_lead(&v);
        assert_eq!(
            e.visitor.email.unwrap().as_str(),
            "priya.sharma@example.com"
        );
        assert_eq!(e.visitor.name.as_deref(), Some("Priya Sharma"));
    }

    #[test]
    fn an_unfilled_typebot_template_is_refused_by_validation() {
        let v = one_lead(TEMPLATE, &map("typebot"));
        assert_eq!(v["visitor"]["email"], "{{Email}}");
        match parse_value_with(&v, &Normalization::default()) {
            Err(ParseError::Invalid(e)) => assert_eq!(e[0].field, "visitor.email"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn manychat_full_contact_with_its_field_map() {
        let v = one_lead(MANYCHAT, &map("manychat"));
        assert_eq!(v["conversation_id"], "5234567890123456");
        assert_eq!(v["occurred_at"], "2026-05-04T11:20:01.000Z");
        assert_eq!(v["answers"]["budget"], 2500);
        assert!(v["answers"].get("interests").is_none(), "not a scalar");
        assert!(v["answers"].get("address").is_none());
        assert!(v["answers"].get("notes").is_none());
        let e = canonical_lead(&v);
        assert_eq!(
            e.visitor.email.unwrap().as_str(),
            "maria.garcia@example.com"
        );
        assert_eq!(e.visitor.phone.unwrap().as_str(), "+34612345678");
        assert_eq!(e.visitor.first_name.as_deref(), Some("Maria"));
        assert_eq!(e.visitor.last_name.as_deref(), Some("Garcia"));
        assert_eq!(e.answers["company_size"], "11-50");
        assert_eq!(e.answers["wants_demo"], "true");
        assert_eq!(e.answers["locale"], "es_ES");
        assert_eq!(
            e.transcript.unwrap().summary.as_deref(),
            Some("I want a quote for 10 licences")
        );
    }

    #[test]
    fn mapped_ids_types_times_and_explicit_answers() {
        let o = with(&[
            ("event_id", "/meta/id"),
            ("event_type", "/meta/kind"),
            ("occurred_at", "/meta/at"),
            ("visitor.wa_id", "/wa"),
            ("context.utm_source", "/utm/source"),
            ("consent.given_at", "/consent"),
            ("answers.*", "/vars"),
            ("answers.plan", "/chosen"),
            ("visitor.email", "/missing/pointer"),
        ]);
        let body = br#"{"meta":{"id":987,"kind":"lead.qualified","at":1777000000},"wa":16505551234,
            "utm":{"source":"google"},"consent":"1777000000000","vars":{"plan":"Basic","seats":3},"chosen":"Pro"}"#;
        let v = one_lead(body, &o);
        assert_eq!(v["event_id"], "tb:987");
        assert_eq!(v["event_type"], "lead.qualified");
        assert_eq!(v["occurred_at"], "2026-04-24T03:06:40.000Z");
        assert_eq!(v["consent"]["given_at"], "2026-04-24T03:06:40.000Z");
        assert_eq!(v["answers"]["plan"], "Pro", "the explicit answer wins");
        assert!(v["visitor"].get("email").is_none());
        let e = canonical_lead(&v);
        assert_eq!(e.visitor.wa_id.unwrap().as_str(), "16505551234");
        assert_eq!(e.context.utm_source.as_deref(), Some("google"));
        assert_eq!(e.answers["seats"], "3");
        // A time that is not one is left for validation to refuse.
        let v = one_lead(br#"{"meta":{"at":"yesterday"},"wa":"1650"}"#, &o);
        assert_eq!(v["occurred_at"], "yesterday");
        assert!(parse_value_with(&v, &Normalization::default()).is_err());
    }

    #[test]
    fn nothing_mapped_reports_missing_identity_and_garbage_is_not_json() {
        let v = one_lead(br#"{"other": 1}"#, &map("typebot"));
        match parse_value_with(&v, &Normalization::default()) {
            Err(ParseError::Invalid(e)) => assert_eq!(e[0].code, "identity_required"),
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            parse(b"name=x", &map("typebot")),
            Err(ParseError::NotJson(_))
        ));
        assert!(matches!(
            parse(br#"{"a":1,"a":2}"#, &map("typebot")),
            Err(ParseError::NotJson(_))
        ));
        // A non-object body is still read by pointer.
        let v = one_lead(br#"["a@b.co"]"#, &with(&[("visitor.email", "/0")]));
        assert_eq!(v["visitor"]["email"], "a@b.co");
    }

    #[test]
    fn known_targets_cover_the_canonical_paths() {
        assert!(known_targets().contains(&"visitor.email"));
        assert!(known_targets().contains(&"answers.*"));
        assert!(known_targets().contains(&"context.ad_headline"));
        assert!(is_target("answers.budget"));
        assert!(!is_target("answers."));
        assert!(!is_target("visitor.ssn"));
        assert!(!is_target("bot_id"));
    }

    #[test]
    fn sign_and_sample_round_trip() {
        let lead = Sample {
            vendor_id: "tb-result-42",
            name: "Priya Sharma",
            email: "priya@example.com",
            phone: "+919876543210",
            text: "Wants a demo",
            at: now(),
        };
        let o = with(&[
            ("event_id", "/result/id"),
            ("visitor.first_name", "/contact/first"),
            ("visitor.last_name", "/contact/last"),
            ("visitor.email", "/contact/email"),
            ("visitor.phone", "/contact/phone"),
            ("transcript.summary", "/a~1b"),
        ]);
        let (ct, body) = CustomJson.sample(&lead, &o);
        assert_eq!(ct, "application/json");
        let raw: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(raw["contact"]["first"], "Priya");
        assert_eq!(raw["a/b"], "Wants a demo");
        assert_signed_verifies(&CustomJson, URL, &body, "tok_1", now());
        let v = one_lead(&body, &o);
        assert_eq!(v["event_id"], "tb:tb-result-42");
        let e = canonical_lead(&v);
        assert_eq!(e.visitor.email.unwrap().as_str(), "priya@example.com");
        assert_eq!(e.visitor.phone.unwrap().as_str(), "+919876543210");
        assert_eq!(e.visitor.last_name.as_deref(), Some("Sharma"));
        assert_eq!(
            e.transcript.unwrap().summary.as_deref(),
            Some("Wants a demo")
        );
        // The default map (no fields) round-trips too.
        let (_, body) = CustomJson.sample(&lead, &SourceOptions::default());
        let v = one_lead(&body, &SourceOptions::default());
        let e = canonical_lead(&v);
        assert_eq!(e.visitor.email.unwrap().as_str(), "priya@example.com");
        // A custom token header round-trips through verify_token.
        let headers = token_headers("tok_1", Some("x-api-key"));
        assert_eq!(
            verify_token(
                &post(URL, &headers, &body),
                &secrets(&["tok_1"]),
                Some("x-api-key")
            ),
            Ok(())
        );
    }

    #[test]
    fn hostile_inputs_never_panic() {
        let weird = ["", " ", "Bearer", "Bearer ", "\u{0}", "é é", "bearer  x "];
        for a in weird {
            for b in weird {
                let hs = pairs(&[("authorization", a), ("x-k", b)]);
                for th in [
                    None,
                    Some("authorization"),
                    Some("x-k"),
                    Some(""),
                    Some("é"),
                ] {
                    let _ = verify_token(&post(URL, &hs, b"{}"), &secrets(&[a, "x"]), th);
                }
            }
        }
        let o = with(&[
            ("event_id", "/0"),
            ("event_type", "/data"),
            ("occurred_at", "/type"),
            ("answers.*", ""),
            ("answers.x", "/a~2/~"),
            ("visitor.email", "/sessionInfo/parameters/email/name"),
            ("bogus", "/x"),
            ("visitor.", "/"),
        ]);
        for body in HOSTILE_BODIES {
            let _ = parse(body, &o);
            let _ = parse(body, &SourceOptions::default());
        }
        let lead = Sample {
            vendor_id: "",
            name: "",
            email: "",
            phone: "",
            text: "",
            at: now(),
        };
        let _ = CustomJson.sample(&lead, &o);
        let lead = Sample {
            email: "a@b.co",
            phone: "+15551234567",
            ..lead
        };
        // The second pointer goes through the first one's string.
        let (_, body) = CustomJson.sample(
            &lead,
            &with(&[("visitor.email", "/a"), ("visitor.phone", "/a/b")]),
        );
        let v: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["a"]["b"], "+15551234567");
    }
}
