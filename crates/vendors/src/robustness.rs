//! The fuzz and robustness driver of the native sources ([`crate::sources`]).
//!
//! [`exercise`] turns one byte string into a vendor request and runs it through
//! every [`SourceKind`] entry point (`sign`, `verify`/`verify_with`,
//! `handshake`, `parse`, `reply`, `sample`), asserting that nothing panics plus
//! a few cheap invariants. The `fuzz/` targets `source_<kind>` call it under
//! libFuzzer, and `tests/source_robustness.rs` feeds it the committed seeds
//! (`fuzz/seeds/source_<kind>/`) and deterministic mutations of them, so
//! `cargo test` runs the same checks. Nothing in ingest calls it.
//!
//! # Input
//!
//! `<header values>\n<query or URL>\n<body>`; a missing part is empty.
//! - Header values are separated by `0x1F` ([`HEADER_SEPARATOR`]); the i-th
//!   (lossy UTF-8) is the value of the i-th of [`header_names`]: the headers
//!   the kind's `sign()` sets (without `content-type` and `user-agent`), then
//!   [`EXTRA_HEADERS`]. An empty value leaves that header out (a blank one is
//!   a space). `{sigN}` (N a digit) in a value is replaced by the value of the
//!   N-th header `sign()` returns for this URL and body with [`SECRET`]: the
//!   fuzzer cannot forge an HMAC, this is how accepting paths are reached.
//! - The second line is the query string of `https://leads.example.com/v1/sources/<kind>`
//!   or, when it contains `://`, the whole URL.
//! - The rest is the raw body.
//!
//! # Invariants (beyond "no panic")
//!
//! - `verify` with no secret configured never accepts.
//! - Round trip: the headers `sign()` makes for the body (at the base URL and,
//!   unless it carries Twilio's `bodySHA256`, at the fuzzed URL) verify with
//!   [`SECRET`], also as the second of two secrets (rotation) and through
//!   `verify_with` with default options; with only [`OTHER_SECRET`] they do not.
//!   The same holds for the kind's `sample()` built from the input.
//! - `handshake` never accepts without a `verify_token`; an accepted one is 2xx.
//! - `parse` is deterministic; `Parsed::Leads` is never empty and every lead
//!   has a string `event_id`, prefixed with the source's name, that
//!   [`EventId::parse`] accepts. The leads then go through the canonical parser
//!   (no panic). A kind's own sample is never refused as not JSON.
//! - `reply` for every outcome kind is 2xx (vendors retry anything else) and,
//!   when it says JSON, is JSON.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use lb_domain::{EventId, FieldError};
use serde_json::Value;

use crate::canonical::{parse_value_with, Normalization};
use crate::source::{
    Inbound, Outcome, Parsed, Reply, Sample, SourceContext, SourceKind, SourceOptions,
    SourceSecrets,
};
use crate::sources::twilio::BODY_HASH_PARAM;
use crate::ParseError;

/// The secret requests are signed with (a valid `whsec_` secret, so every kind takes it).
pub const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
/// Another valid secret: never verifies what [`SECRET`] signed.
pub const OTHER_SECRET: &str = "whsec_b3RoZXItc291cmNlLXNlY3JldA==";
/// Secrets a configuration could hold by mistake, tried before [`SECRET`].
pub const ODD_SECRETS: [&str; 3] = ["", " ", "odd:s\u{e9}cret\u{0}"];
/// The `verify_token` of the handshake (WhatsApp's `hub.verify_token`).
pub const VERIFY_TOKEN: &str = "fuzz-verify-token";
/// The fixed clock (2026-05-04T12:00:00Z), unix seconds.
pub const NOW: i64 = 1_777_896_000;
/// The source name every event id is prefixed with.
pub const SOURCE: &str = "fuzz";
/// Separates header values, query and body.
pub const SEPARATOR: u8 = b'\n';
/// Separates the header values.
pub const HEADER_SEPARATOR: u8 = 0x1f;
/// Headers some kind reads besides those its `sign()` sets.
pub const EXTRA_HEADERS: [&str; 8] = [
    "authorization",
    "content-type",
    "x-leadbridge-token",
    "webhook-id",
    "svix-id",
    "svix-timestamp",
    "svix-signature",
    "x-token",
];

/// [`NOW`] as a time.
pub fn now() -> DateTime<Utc> {
    DateTime::from_timestamp(NOW, 0).expect("NOW is a valid time")
}

/// The URL a request goes to when the input names none.
pub fn base_url(kind: &dyn SourceKind) -> String {
    format!("https://leads.example.com/v1/sources/{}", kind.name())
}

/// `sign()`'s headers, names in lower case (as ingest passes them).
fn signed_headers(kind: &dyn SourceKind, url: &str, body: &[u8]) -> Vec<(String, String)> {
    kind.sign(url, body, SECRET, now())
        .into_iter()
        .map(|(k, v)| (k.to_ascii_lowercase(), v))
        .collect()
}

/// The names the input's header values go to, in order (see the module documentation).
pub fn header_names(signed: &[(String, String)]) -> Vec<String> {
    let mut names: Vec<String> = Vec::new();
    let signing = signed
        .iter()
        .map(|(k, _)| k.as_str())
        .filter(|k| *k != "content-type" && *k != "user-agent");
    for name in signing.chain(EXTRA_HEADERS) {
        if !names.iter().any(|n| n == name) {
            names.push(name.to_string());
        }
    }
    names
}

/// The header values of the input on their names, `{sigN}` filled in.
fn fuzzed_headers(head: &[u8], signed: &[(String, String)]) -> Vec<(String, String)> {
    if head.is_empty() {
        return Vec::new();
    }
    header_names(signed)
        .into_iter()
        .zip(head.split(|&b| b == HEADER_SEPARATOR))
        .filter(|(_, value)| !value.is_empty())
        .map(|(name, value)| {
            let mut value = String::from_utf8_lossy(value).into_owned();
            for (i, (_, v)) in signed.iter().enumerate().take(10) {
                let placeholder = format!("{{sig{i}}}");
                if value.contains(&placeholder) {
                    value = value.replace(&placeholder, v);
                }
            }
            (name, value)
        })
        .collect()
}

fn secrets(list: &[&str], verify_token: Option<&str>) -> SourceSecrets {
    SourceSecrets {
        verify_token: verify_token.map(str::to_string),
        ..SourceSecrets::of(list)
    }
}

/// The options a configured source could have: a `custom_json` field map with
/// odd pointers and targets, a custom token header, and the `extra` keys kinds read.
fn configured_options() -> SourceOptions {
    let fields = [
        ("conversation_id", "/id"),
        ("occurred_at", "/last_interaction"),
        ("visitor.first_name", "/first_name"),
        ("visitor.last_name", "/last_name"),
        ("visitor.name", "/name"),
        ("visitor.email", "/email"),
        ("visitor.phone", "/phone"),
        ("transcript.summary", "/last_input_text"),
        ("answers.*", "/custom_fields"),
        ("answers.locale", "/locale"),
        ("event_id", "/event/id"),
        ("event_type", "/type"),
        ("consent.given_at", "/consent/at"),
        ("answers.odd", "/a~1b~0c"),
        ("context.source_url", "/"),
        ("visitor.company", ""),
        ("not.a.target", "/x"),
    ];
    let extra = [
        ("public_url", "https://leads.example.com:443/v1/sources/x"),
        ("phone_number_id", "106540352242922"),
        ("chatbot_id", "fuzz-bot"),
        ("to", "whatsapp:+14155238886"),
        ("account_sid", "AC00000000000000000000000000000000"),
    ];
    SourceOptions {
        fields: fields
            .iter()
            .map(|(t, p)| (t.to_string(), p.to_string()))
            .collect(),
        token_header: Some("x-token".into()),
        extra: extra
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect::<BTreeMap<_, _>>(),
    }
}

/// A fuzz input read as a request (see the module documentation).
#[derive(Debug, Clone)]
pub struct Decoded<'a> {
    pub url: String,
    /// Names in lower case.
    pub headers: Vec<(String, String)>,
    pub body: &'a [u8],
    /// What `sign()` returns for this URL and body with [`SECRET`].
    pub signed: Vec<(String, String)>,
}

impl Decoded<'_> {
    /// The request, sent with `method`.
    pub fn inbound(&self, method: &'static str) -> Inbound<'_> {
        Inbound {
            method,
            url: &self.url,
            headers: &self.headers,
            body: self.body,
        }
    }
}

/// Splits a fuzz input into the request it describes for `kind`.
pub fn decode<'a>(kind: &dyn SourceKind, input: &'a [u8]) -> Decoded<'a> {
    let mut parts = input.splitn(3, |&b| b == SEPARATOR);
    let head = parts.next().unwrap_or_default();
    let query = String::from_utf8_lossy(parts.next().unwrap_or_default());
    let body = parts.next().unwrap_or_default();
    let url = if query.contains("://") {
        query.into_owned()
    } else if query.is_empty() {
        base_url(kind)
    } else {
        format!("{}?{query}", base_url(kind))
    };
    let signed = signed_headers(kind, &url, body);
    let headers = fuzzed_headers(head, &signed);
    Decoded {
        url,
        headers,
        body,
        signed,
    }
}

/// Runs one fuzz input through `kind` (see the module documentation).
pub fn exercise(kind: &dyn SourceKind, input: &[u8]) {
    let name = kind.name();
    let decoded = decode(kind, input);
    let (url, body) = (&decoded.url, decoded.body);
    let post = decoded.inbound("POST");
    let get = decoded.inbound("GET");
    let default = SourceOptions::default();
    let configured = configured_options();
    let bearer = SourceOptions {
        token_header: Some(" Authorization ".into()),
        ..SourceOptions::default()
    };

    // verify: the fuzzed request against no secret, the secret, odd secrets.
    let none = SourceSecrets::default();
    let real = secrets(&[SECRET], None);
    let mut odd_list = ODD_SECRETS.to_vec();
    odd_list.push(SECRET);
    let odd = secrets(&odd_list, None);
    for options in [&default, &configured, &bearer] {
        assert!(
            kind.verify_with(&post, &none, options, now()).is_err(),
            "{name}: verify accepted a request with no secret configured"
        );
        let _ = kind.verify_with(&post, &real, options, now());
    }
    assert!(
        kind.verify(&get, &none, now()).is_err(),
        "{name}: verify accepted a request with no secret configured"
    );
    let _ = kind.verify(&get, &real, now());
    let _ = kind.verify(&post, &odd, now());

    // sign → verify round trip.
    let _ = round_trip(kind, &base_url(kind), body);
    if *url != base_url(kind) && post.query_param(BODY_HASH_PARAM).is_none() {
        let _ = round_trip(kind, url, body);
    }

    // handshake.
    let with_token = secrets(&[SECRET], Some(VERIFY_TOKEN));
    for req in [&get, &post] {
        assert!(
            !matches!(kind.handshake(req, &real), Some(Ok(_))),
            "{name}: handshake accepted without a verify_token"
        );
        if let Some(Ok(reply)) = kind.handshake(req, &with_token) {
            assert!(
                (200..300).contains(&reply.status),
                "{name}: accepted handshake answered {reply:?}"
            );
        }
    }

    // parse, then reply to what it gave.
    for options in [&default, &configured] {
        let cx = SourceContext {
            source: SOURCE,
            bot_id: "bot_fuzz",
            now: now(),
            options,
        };
        for req in [&post, &get] {
            let parsed = kind.parse(req, &cx);
            if std::ptr::eq(req, &post) {
                assert_eq!(
                    parsed,
                    kind.parse(req, &cx),
                    "{name}: parse is not deterministic"
                );
            }
            let errors = check_parsed(kind, &parsed);
            check_replies(kind, &parsed, errors);
        }
    }
    let cx = SourceContext {
        source: SOURCE,
        bot_id: "bot_fuzz",
        now: now(),
        options: &configured,
    };
    check_sample(kind, body, &cx);
}

/// `sign()` at `url`, then `verify` (see the module documentation); the signed headers.
fn round_trip(kind: &dyn SourceKind, url: &str, body: &[u8]) -> Vec<(String, String)> {
    let name = kind.name();
    let signed = signed_headers(kind, url, body);
    let req = Inbound {
        method: "POST",
        url,
        headers: &signed,
        body,
    };
    let real = secrets(&[SECRET], None);
    assert_eq!(
        kind.verify(&req, &real, now()),
        Ok(()),
        "{name}: a request sign() made does not verify\nurl: {url:?}\nheaders: {signed:?}\nbody: {:?}",
        String::from_utf8_lossy(body)
    );
    assert_eq!(
        kind.verify(&req, &secrets(&[OTHER_SECRET, SECRET], None), now()),
        Ok(()),
        "{name}: a signed request does not verify as the second secret (rotation)\nurl: {url:?}"
    );
    assert_eq!(
        kind.verify_with(&req, &real, &SourceOptions::default(), now()),
        Ok(()),
        "{name}: verify_with (default options) refuses what verify accepts\nurl: {url:?}"
    );
    assert!(
        kind.verify(&req, &secrets(&[OTHER_SECRET], None), now())
            .is_err(),
        "{name}: a request signed with one secret verifies with another\nurl: {url:?}"
    );
    signed
}

/// The invariants of a parse result; the canonical parser's errors of its leads.
fn check_parsed(kind: &dyn SourceKind, parsed: &Result<Parsed, ParseError>) -> Vec<FieldError> {
    let name = kind.name();
    let Ok(Parsed::Leads(leads)) = parsed else {
        return Vec::new();
    };
    assert!(!leads.is_empty(), "{name}: Parsed::Leads without a lead");
    let mut errors = Vec::new();
    for lead in leads {
        let id = lead
            .get("event_id")
            .and_then(Value::as_str)
            .unwrap_or_else(|| panic!("{name}: a lead without a string event_id: {lead}"));
        assert!(
            EventId::parse(id).is_ok(),
            "{name}: event_id {id:?} is not a valid event id"
        );
        assert!(
            id.starts_with(&format!("{SOURCE}:")),
            "{name}: event_id {id:?} is not prefixed with the source's name"
        );
        if let Err(ParseError::Invalid(e)) = parse_value_with(lead, &Normalization::default()) {
            errors.extend(e);
        }
    }
    errors
}

/// `reply` for every outcome kind, fed what `parse` gave where it can be.
fn check_replies(
    kind: &dyn SourceKind,
    parsed: &Result<Parsed, ParseError>,
    mut errors: Vec<FieldError>,
) {
    let (event_ids, reason) = match parsed {
        Ok(Parsed::Leads(leads)) => (
            leads
                .iter()
                .filter_map(|l| l.get("event_id").and_then(Value::as_str))
                .map(str::to_string)
                .collect(),
            "duplicate".to_string(),
        ),
        Ok(Parsed::NotALead(reason)) => (vec![format!("{SOURCE}:x")], reason.clone()),
        Err(e) => {
            if let ParseError::Invalid(e) = e {
                errors.extend(e.iter().cloned());
            }
            (vec![format!("{SOURCE}:x")], e.to_string())
        }
    };
    let outcomes = [
        Outcome::Accepted {
            event_ids: event_ids.clone(),
            duplicate: false,
        },
        Outcome::Accepted {
            event_ids: Vec::new(),
            duplicate: true,
        },
        Outcome::Ignored { reason },
        Outcome::Rejected {
            status: 422,
            code: "invalid".into(),
            errors,
        },
        Outcome::Rejected {
            status: 403,
            code: "policy".into(),
            errors: Vec::new(),
        },
    ];
    for outcome in &outcomes {
        check_reply(kind, outcome, &kind.reply(outcome));
    }
}

fn check_reply(kind: &dyn SourceKind, outcome: &Outcome, reply: &Reply) {
    let name = kind.name();
    assert!(
        (200..300).contains(&reply.status),
        "{name}: {outcome:?} answered {}, vendors retry non-2xx",
        reply.status
    );
    if reply.content_type.starts_with("application/json") {
        assert!(
            serde_json::from_str::<Value>(&reply.body).is_ok(),
            "{name}: a JSON reply is not JSON: {reply:?}"
        );
    }
}

/// `sample()` of a lead made of the input's body: signed, it verifies, and
/// `parse` reads it as JSON (or form data) it understands.
fn check_sample(kind: &dyn SourceKind, body: &[u8], cx: &SourceContext<'_>) {
    let name = kind.name();
    let text = String::from_utf8_lossy(body);
    let mut fields = text
        .splitn(6, '\n')
        .map(|s| s.chars().take(200).collect::<String>());
    let mut next = || fields.next().unwrap_or_default();
    let (vendor_id, person, email, phone, said) = (next(), next(), next(), next(), next());
    let at = body
        .first_chunk::<8>()
        .and_then(|b| DateTime::from_timestamp(i64::from_le_bytes(*b), 0))
        .unwrap_or_else(now);
    let lead = Sample {
        vendor_id: &vendor_id,
        name: &person,
        email: &email,
        phone: &phone,
        text: &said,
        at,
    };
    let (content_type, sample) = kind.sample(&lead, cx.options);
    let url = base_url(kind);
    let mut headers = round_trip(kind, &url, &sample);
    headers.retain(|(k, _)| k != "content-type");
    headers.push(("content-type".into(), content_type));
    let req = Inbound {
        method: "POST",
        url: &url,
        headers: &headers,
        body: &sample,
    };
    let parsed = kind.parse(&req, cx);
    assert!(
        !matches!(parsed, Err(ParseError::NotJson(_))),
        "{name}: parse refuses its own sample: {parsed:?}\nsample: {}",
        String::from_utf8_lossy(&sample)
    );
    check_parsed(kind, &parsed);
}
