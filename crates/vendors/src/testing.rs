//! What the tests of the vendor kinds ([`crate::sources`]) share: requests,
//! secrets, a parse context, and the canonical parser's verdict on a lead.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use lb_domain::LeadEvent;
use serde_json::Value;

use crate::canonical::{parse_value_with, Normalization};
use crate::source::{
    Inbound, Parsed, Sample, SourceContext, SourceKind, SourceOptions, SourceSecrets,
};

/// The bytes of the fixture `tests/fixtures/vendors/<path>` (the repository's
/// vendor payloads), built into the test binary.
macro_rules! fixture {
    ($path:literal) => {
        include_bytes!(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../tests/fixtures/vendors/",
            $path
        ))
    };
}
pub(crate) use fixture;

/// A source's options when the config file sets none.
static NO_OPTIONS: SourceOptions = SourceOptions {
    fields: Vec::new(),
    token_header: None,
    extra: BTreeMap::new(),
};

/// Bodies no kind may panic on (empty, not JSON, odd shapes, bad UTF-8, deep nesting).
pub(crate) const HOSTILE_BODIES: [&[u8]; 12] = [
    b"",
    b"null",
    b"\"text\"",
    b"[]",
    b"{}",
    b"{\"data\":null}",
    b"{\"type\":7,\"timestamp\":{},\"data\":{\"visitor\":[]}}",
    b"{\"sessionInfo\":{\"session\":\"/\",\"parameters\":[1]},\"pageInfo\":{\"formInfo\":{\"parameterInfo\":[1,{\"displayName\":3}]}}}",
    b"{\"sessionInfo\":{\"parameters\":{\"email\":{\"name\":5},\"phone\":[1],\"\":1}}}",
    &[0xff, 0xfe, 0x00],
    b"{\"a\":\"\\ud800\"}",
    b"[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]",
];

/// The time `secs` unix seconds (a test's fixed clock).
pub(crate) fn at(secs: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(secs, 0).expect("a valid unix time")
}

/// These secrets, no verify token.
pub(crate) fn secrets(list: &[&str]) -> SourceSecrets {
    SourceSecrets::of(list)
}

/// The pairs as owned strings, as given (form parameters, field maps).
pub(crate) fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// A JSON array of `[name, value]` string pairs (a field map, signed parameters).
pub(crate) fn pairs_of(v: &Value) -> Vec<(String, String)> {
    let text = |p: &Value| p.as_str().expect("a string").to_string();
    v.as_array()
        .expect("an array of pairs")
        .iter()
        .map(|p| (text(&p[0]), text(&p[1])))
        .collect()
}

/// Request headers, names in lower case (as ingest passes them).
pub(crate) fn headers(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter()
        .map(|(k, v)| (k.to_ascii_lowercase(), v.to_string()))
        .collect()
}

/// `content-type: application/json` and one more header.
pub(crate) fn json_headers(name: &str, value: &str) -> Vec<(String, String)> {
    vec![
        ("content-type".into(), "application/json".into()),
        (name.into(), value.into()),
    ]
}

/// `body` with its first byte `from` changed to `to` (one tampered byte).
pub(crate) fn tampered(body: &[u8], from: u8, to: u8) -> Vec<u8> {
    let mut out = body.to_vec();
    let i = out
        .iter()
        .position(|&b| b == from)
        .expect("the byte to tamper with is in the body");
    out[i] = to;
    out
}

/// A `POST` of `body` with `headers` to `url`.
pub(crate) fn post<'a>(
    url: &'a str,
    headers: &'a [(String, String)],
    body: &'a [u8],
) -> Inbound<'a> {
    Inbound {
        method: "POST",
        url,
        headers,
        body,
    }
}

/// What the source `source` of `bot_id`, with no options, reads a request with at `now`.
pub(crate) fn context<'a>(
    source: &'a str,
    bot_id: &'a str,
    now: DateTime<Utc>,
) -> SourceContext<'a> {
    SourceContext {
        source,
        bot_id,
        now,
        options: &NO_OPTIONS,
    }
}

/// Signs `body` the way `kind` does for `url` with `secret`, and checks that
/// the signed request verifies with that secret (header names in lower case,
/// as ingest passes them).
pub(crate) fn assert_signed_verifies(
    kind: &dyn SourceKind,
    url: &str,
    body: &[u8],
    secret: &str,
    now: DateTime<Utc>,
) {
    let signed: Vec<(String, String)> = kind
        .sign(url, body, secret, now)
        .into_iter()
        .map(|(k, v)| (k.to_ascii_lowercase(), v))
        .collect();
    assert_eq!(
        kind.verify(&post(url, &signed, body), &secrets(&[secret]), now),
        Ok(()),
        "{} verifies what it signs",
        kind.name()
    );
}

/// The one lead a request carried; any other outcome panics.
pub(crate) fn one_lead(parsed: Parsed) -> Value {
    match parsed {
        Parsed::Leads(mut v) if v.len() == 1 => v.remove(0),
        other => panic!("expected one lead, got {other:?}"),
    }
}

/// Why a request carried no lead; a lead panics.
pub(crate) fn not_a_lead(parsed: Parsed) -> String {
    match parsed {
        Parsed::NotALead(r) => r,
        other => panic!("expected not a lead, got {other:?}"),
    }
}

/// The lead event the canonical parser makes of a kind's output (default
/// normalization); panics when it refuses it.
pub(crate) fn canonical_lead(v: &Value) -> LeadEvent {
    parse_value_with(v, &Normalization::default())
        .unwrap_or_else(|e| panic!("canonical parser refused {v}: {e:?}"))
}

/// Ada Lovelace's lead at `at`: email, a US phone and a question (a test
/// overrides what its vendor sends otherwise, and sets `vendor_id`).
pub(crate) fn ada(at: DateTime<Utc>) -> Sample<'static> {
    Sample {
        vendor_id: "",
        name: "Ada Lovelace",
        email: "ada@example.com",
        phone: "+14155552671",
        text: "Do you ship to Canada?",
        at,
    }
}
