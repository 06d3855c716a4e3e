//! Native sources: a vendor's own webhook, verified and read as the vendor
//! documents it. Each vendor kind is one module in [`crate::sources`] behind
//! the [`SourceKind`] trait: verify the request, turn the vendor's payload into
//! canonical events (the JSON of `POST /v1/events`, so one parser validates and
//! normalizes every source alike) or a "not a lead" answer, and shape the reply
//! the vendor expects. Everything else (routes, policies, rejection records, the
//! ledger and the queue) is the same for every source and lives in `pipeline`.

use std::collections::BTreeMap;
use std::fmt;

use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use lb_domain::{EventId, FieldError};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::ParseError;

/// One inbound request as a vendor sent it, transport-neutral.
#[derive(Debug, Clone, Copy)]
pub struct Inbound<'a> {
    /// `GET` or `POST` (upper case).
    pub method: &'a str,
    /// The public URL the vendor called, with its query string (Twilio signs it).
    pub url: &'a str,
    /// Header names in lower case.
    pub headers: &'a [(String, String)],
    /// The raw body, exactly as received (every HMAC scheme signs these bytes).
    pub body: &'a [u8],
}

impl<'a> Inbound<'a> {
    /// The first header of that name (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&'a str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The query string's parameters, percent-decoded, in order.
    pub fn query(&self) -> Vec<(String, String)> {
        match self.url.split_once('?') {
            Some((_, q)) => form_urlencoded::parse(q.split('#').next().unwrap_or("").as_bytes())
                .into_owned()
                .collect(),
            None => Vec::new(),
        }
    }

    /// One query parameter (the first of that name).
    pub fn query_param(&self, name: &str) -> Option<String> {
        self.query()
            .into_iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v)
    }

    /// The media type of `Content-Type`, lower case, without parameters.
    pub fn media_type(&self) -> String {
        self.header("content-type")
            .and_then(|c| c.split(';').next())
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase()
    }
}

/// A source's secrets, from its Secrets Manager secret: a plain string (one
/// secret), or `{"secrets": ["current", "previous"], "verify_token": "…"}`.
/// Every secret in the list verifies (rotation without downtime).
#[derive(Clone, Default, PartialEq, Eq)]
pub struct SourceSecrets {
    pub secrets: Vec<String>,
    /// WhatsApp's subscription handshake token (`hub.verify_token`).
    pub verify_token: Option<String>,
}

impl fmt::Debug for SourceSecrets {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SourceSecrets")
            .field("secrets", &format!("[{} redacted]", self.secrets.len()))
            .field(
                "verify_token",
                &self.verify_token.as_ref().map(|_| "redacted"),
            )
            .finish()
    }
}

impl SourceSecrets {
    /// Reads a secret's value (see the type's documentation). Blank entries are dropped.
    pub fn from_secret_string(raw: &str) -> Self {
        let list = |v: &Value| -> Vec<String> {
            match v {
                Value::String(s) => vec![s.clone()],
                Value::Array(a) => a
                    .iter()
                    .filter_map(Value::as_str)
                    .map(str::to_string)
                    .collect(),
                _ => Vec::new(),
            }
        };
        let (secrets, verify_token) = match serde_json::from_str::<Value>(raw) {
            Ok(Value::Object(o)) => (
                o.get("secrets")
                    .or_else(|| o.get("secret"))
                    .map(list)
                    .unwrap_or_default(),
                o.get("verify_token")
                    .and_then(Value::as_str)
                    .map(str::to_string),
            ),
            _ => (vec![raw.to_string()], None),
        };
        Self {
            secrets: secrets
                .into_iter()
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
                .collect(),
            verify_token: verify_token.filter(|t| !t.trim().is_empty()),
        }
    }

    /// These secrets, as given, and no verify token.
    pub fn of(secrets: &[&str]) -> Self {
        Self {
            secrets: secrets.iter().map(|s| s.to_string()).collect(),
            verify_token: None,
        }
    }

    /// The secrets, or [`VerifyError::NoSecret`] when there are none.
    pub fn required(&self) -> Result<&[String], VerifyError> {
        if self.secrets.is_empty() {
            Err(VerifyError::NoSecret)
        } else {
            Ok(&self.secrets)
        }
    }
}

/// Whether `matches` holds for any of `secrets`. Every secret is tried (no
/// early exit), so the time taken does not tell which one matched (rotation).
pub fn any_secret(secrets: &[String], mut matches: impl FnMut(&str) -> bool) -> bool {
    secrets.iter().fold(false, |ok, s| matches(s) | ok)
}

/// Whether any presented credential equals any expected one (a secret, or
/// what a secret signs). Every pair is compared in constant time (no early
/// exit).
pub fn credential_matches<P, E>(presented: &[P], expected: &[E]) -> bool
where
    P: AsRef<[u8]>,
    E: AsRef<[u8]>,
{
    let mut ok = false;
    for p in presented {
        for e in expected {
            ok |= same_bytes(p.as_ref(), e.as_ref());
        }
    }
    ok
}

/// `Ok` when the request's credentials matched, [`VerifyError::Mismatch`] otherwise.
pub fn ok_or_mismatch(matched: bool) -> Result<(), VerifyError> {
    if matched {
        Ok(())
    } else {
        Err(VerifyError::Mismatch)
    }
}

/// Why a request is not the vendor's (→ 401, nothing written).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    #[error("the {0} header is missing")]
    Missing(&'static str),
    #[error("the {0} header is malformed")]
    Malformed(&'static str),
    #[error("the request's timestamp is outside the accepted window")]
    Stale,
    #[error("no signature matches")]
    Mismatch,
    #[error("the source has no secret configured")]
    NoSecret,
}

/// Per-source settings from the config file that a kind may need.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SourceOptions {
    /// `custom_json`: canonical field (`visitor.email`, `event_id`, …) → JSON
    /// pointer in the vendor's body (`/contact/email`), in file order.
    pub fields: Vec<(String, String)>,
    /// `custom_json`: the header carrying the token (`authorization` means
    /// `Authorization: Bearer <token>`).
    pub token_header: Option<String>,
    /// Anything else a kind documents (`public_url` for Twilio, …).
    pub extra: BTreeMap<String, String>,
}

/// What a kind knows when it reads a request.
#[derive(Debug, Clone, Copy)]
pub struct SourceContext<'a> {
    /// The source's name (`[sources.<name>]`): prefixes every event id it makes.
    pub source: &'a str,
    /// The bot the source speaks for (routes and policies are the bot's).
    pub bot_id: &'a str,
    pub now: DateTime<Utc>,
    pub options: &'a SourceOptions,
}

impl SourceContext<'_> {
    /// The event id for a vendor's own id (message id, notification id):
    /// `<source>:<vendor id>` when that is a valid event id, otherwise
    /// `<source>:h<hash>` of it. Stable, so a vendor's redelivery is a duplicate.
    pub fn event_id(&self, vendor_id: &str) -> String {
        let candidate = format!("{}:{}", self.source, vendor_id);
        if EventId::parse(&candidate).is_ok() {
            candidate
        } else {
            let digest = hex::encode(Sha256::digest(vendor_id.as_bytes()));
            format!("{}:h{}", self.source, &digest[..40])
        }
    }

    /// A canonical event skeleton: id, type, time and bot filled in.
    pub fn event(&self, vendor_id: &str, event_type: &str, occurred_at: DateTime<Utc>) -> Value {
        json!({
            "event_id": self.event_id(vendor_id),
            "event_type": event_type,
            "occurred_at": occurred_at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            "bot_id": self.bot_id,
        })
    }
}

/// What a vendor's request carried.
#[derive(Debug, Clone, PartialEq)]
pub enum Parsed {
    /// One canonical event (the JSON of `POST /v1/events`) per lead the request
    /// carries (a WhatsApp delivery can batch several messages).
    Leads(Vec<Value>),
    /// A genuine delivery that is not a lead (delivery receipts, pings, a topic
    /// leadbridge does not take): acknowledged and counted, nothing written.
    NotALead(String),
}

/// How ingest's handling of a verified request ended, for the vendor's reply.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// Durably queued (or already known): the event ids.
    Accepted {
        event_ids: Vec<String>,
        duplicate: bool,
    },
    /// Not a lead: acknowledged, nothing written.
    Ignored { reason: String },
    /// Refused by validation or the bot's policies: recorded as a rejection.
    /// Answered so that the vendor does not retry it forever.
    Rejected {
        status: u16,
        code: String,
        errors: Vec<FieldError>,
    },
}

/// An HTTP answer to a vendor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub status: u16,
    pub content_type: &'static str,
    pub body: String,
}

impl Reply {
    pub fn json(status: u16, v: &Value) -> Self {
        Self {
            status,
            content_type: "application/json",
            body: v.to_string(),
        }
    }
    pub fn text(status: u16, body: impl Into<String>) -> Self {
        Self {
            status,
            content_type: "text/plain; charset=utf-8",
            body: body.into(),
        }
    }
}

/// The JSON every kind answers with unless the vendor expects something else:
/// 200 for every outcome (a vendor retries any non-2xx for hours or days; a
/// rejection is recorded and alerted on our side, not by the vendor's retries).
pub fn default_reply(outcome: &Outcome) -> Reply {
    let body = match outcome {
        Outcome::Accepted {
            event_ids,
            duplicate,
        } => json!({"status": "queued", "event_ids": event_ids, "duplicate": duplicate}),
        Outcome::Ignored { reason } => json!({"status": "ignored", "reason": reason}),
        Outcome::Rejected { code, errors, .. } => {
            json!({"status": "rejected", "code": code, "errors": errors})
        }
    };
    Reply::json(200, &body)
}

/// A lead to dress as a vendor's delivery ([`SourceKind::sample`]).
#[derive(Debug, Clone, Copy)]
pub struct Sample<'a> {
    /// The vendor's own id of the delivery or message (the idempotency key).
    pub vendor_id: &'a str,
    pub name: &'a str,
    /// Kinds whose vendor carries no email (WhatsApp, Twilio) leave it out.
    pub email: &'a str,
    /// E.164.
    pub phone: &'a str,
    /// What the visitor wrote.
    pub text: &'a str,
    pub at: DateTime<Utc>,
}

/// One vendor's webhook: how it authenticates, what it sends, what it expects back.
pub trait SourceKind: Send + Sync {
    /// The `kind` in the config file (`whatsapp`, `intercom`, …).
    fn name(&self) -> &'static str;

    /// The keys a `[sources.<name>]` of this kind may set beyond `kind`,
    /// `bot_id` and `secret` (`fields` and `token_header` fill
    /// [`SourceOptions::fields`]/[`SourceOptions::token_header`]; any other is a
    /// string in [`SourceOptions::extra`]).
    fn option_keys(&self) -> &'static [&'static str] {
        &[]
    }

    /// A `GET` the vendor makes to set the endpoint up (WhatsApp's
    /// `hub.challenge`). `None`: the kind has no handshake (→ 405).
    fn handshake(
        &self,
        _req: &Inbound<'_>,
        _secrets: &SourceSecrets,
    ) -> Option<Result<Reply, VerifyError>> {
        None
    }

    /// Checks the vendor's authentication on the raw request, exactly as the
    /// vendor documents it. Constant-time comparisons only.
    fn verify(
        &self,
        req: &Inbound<'_>,
        secrets: &SourceSecrets,
        now: DateTime<Utc>,
    ) -> Result<(), VerifyError>;

    /// [`SourceKind::verify`] with the source's options (a kind whose scheme a
    /// user configures, like `custom_json`'s token header, reads them here).
    fn verify_with(
        &self,
        req: &Inbound<'_>,
        secrets: &SourceSecrets,
        _options: &SourceOptions,
        now: DateTime<Utc>,
    ) -> Result<(), VerifyError> {
        self.verify(req, secrets, now)
    }

    /// The vendor's payload as canonical events, or "not a lead".
    /// `ParseError::NotJson` → 400; `ParseError::Invalid` → a rejection.
    fn parse(&self, req: &Inbound<'_>, cx: &SourceContext<'_>) -> Result<Parsed, ParseError>;

    /// The answer the vendor expects for an outcome.
    fn reply(&self, outcome: &Outcome) -> Reply {
        default_reply(outcome)
    }

    /// The headers that sign (or authenticate) `body` sent to `url` the way this
    /// vendor would with `secret`, for `leadbridge sign --source` and the tests.
    fn sign(
        &self,
        url: &str,
        body: &[u8],
        secret: &str,
        now: DateTime<Utc>,
    ) -> Vec<(String, String)>;

    /// A delivery of this vendor carrying one lead as described: content type
    /// and body (for `make demo`, `leadbridge sign --source` and the tests).
    fn sample(&self, lead: &Sample<'_>, options: &SourceOptions) -> (String, Vec<u8>);
}

/// What a source of `kind` makes of `body` sent to `url`, signed as its vendor
/// signs with `secret` (the tools' and tests' view of a delivery: the event ids
/// ingest will give it).
pub fn read_signed(
    kind: &dyn SourceKind,
    cx: &SourceContext<'_>,
    url: &str,
    secret: &str,
    content_type: &str,
    body: &[u8],
) -> Result<Parsed, ParseError> {
    let mut headers = kind.sign(url, body, secret, cx.now);
    headers.push(("content-type".into(), content_type.to_string()));
    let req = Inbound {
        method: "POST",
        url,
        headers: &headers,
        body,
    };
    kind.parse(&req, cx)
}

/// HMAC-SHA256 of `parts` (concatenated) with `key`.
pub fn hmac_sha256(key: &[u8], parts: &[&[u8]]) -> Vec<u8> {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes a key of any length");
    for p in parts {
        mac.update(p);
    }
    mac.finalize().into_bytes().to_vec()
}

/// HMAC-SHA1 of `parts` (concatenated) with `key` (Intercom, Twilio, Chatbase).
pub fn hmac_sha1(key: &[u8], parts: &[&[u8]]) -> Vec<u8> {
    let mut mac = Hmac::<sha1::Sha1>::new_from_slice(key).expect("HMAC takes a key of any length");
    for p in parts {
        mac.update(p);
    }
    mac.finalize().into_bytes().to_vec()
}

/// Constant-time equality of two byte strings (length is not secret).
pub fn same_bytes(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && bool::from(a.ct_eq(b))
}

/// A hex signature (any case) equal to `expected` bytes, in constant time.
pub fn hex_matches(presented: &str, expected: &[u8]) -> bool {
    match hex::decode(presented.trim()) {
        Ok(p) => same_bytes(&p, expected),
        Err(_) => false,
    }
}

/// A JSON delivery's content type and bytes ([`SourceKind::sample`]).
pub fn json_body(body: &Value) -> (String, Vec<u8>) {
    (
        "application/json".to_string(),
        body.to_string().into_bytes(),
    )
}

/// A string value, trimmed; blank or not a string is absent.
pub fn text(v: Option<&Value>) -> Option<&str> {
    v.and_then(Value::as_str)
        .map(str::trim)
        .filter(|s| !s.is_empty())
}

/// An id a vendor may write as a string or a number, as text (a string trimmed;
/// blank or any other value is absent).
pub fn id_text(v: Option<&Value>) -> Option<String> {
    match v? {
        Value::String(s) if !s.trim().is_empty() => Some(s.trim().to_string()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// Parses an RFC 3339 time or a unix timestamp (seconds, or milliseconds when
/// larger than 10^11) as vendors send them.
pub fn vendor_time(v: &Value) -> Option<DateTime<Utc>> {
    let from_number = |n: i64| {
        if n.abs() > 100_000_000_000 {
            DateTime::from_timestamp_millis(n)
        } else {
            DateTime::from_timestamp(n, 0)
        }
    };
    match v {
        Value::Number(n) => n.as_i64().and_then(from_number),
        Value::String(s) => s
            .trim()
            .parse::<i64>()
            .ok()
            .and_then(from_number)
            .or_else(|| {
                DateTime::parse_from_rfc3339(s.trim())
                    .ok()
                    .map(|d| d.with_timezone(&Utc))
            }),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_read_plain_and_json_forms() {
        assert_eq!(
            SourceSecrets::from_secret_string("abc").secrets,
            vec!["abc".to_string()]
        );
        let s = SourceSecrets::from_secret_string(
            r#"{"secrets": ["new", " ", "old"], "verify_token": "tok"}"#,
        );
        assert_eq!(s.secrets, vec!["new".to_string(), "old".to_string()]);
        assert_eq!(s.verify_token.as_deref(), Some("tok"));
        assert_eq!(
            SourceSecrets::from_secret_string(r#"{"secrets": []}"#).required(),
            Err(VerifyError::NoSecret)
        );
        assert!(
            !format!("{s:?}").contains("new"),
            "Debug never shows a secret"
        );
    }

    #[test]
    fn event_ids_are_prefixed_by_the_source_and_always_valid() {
        let opts = SourceOptions::default();
        let cx = SourceContext {
            source: "whatsapp",
            bot_id: "bot_wa",
            now: Utc::now(),
            options: &opts,
        };
        assert_eq!(cx.event_id("ABGGFlA5Fpa"), "whatsapp:ABGGFlA5Fpa");
        let odd = cx.event_id("wamid.HBgLMTY1MDM4Nzk0MzkVAgASGBQzQTRBNjU5OUFFRTAzODEwMTQ0RgA=");
        assert!(odd.starts_with("whatsapp:h") && EventId::parse(&odd).is_ok());
        assert_eq!(
            odd,
            cx.event_id("wamid.HBgLMTY1MDM4Nzk0MzkVAgASGBQzQTRBNjU5OUFFRTAzODEwMTQ0RgA=")
        );
        assert!(EventId::parse(&cx.event_id(&"x".repeat(300))).is_ok());
    }

    #[test]
    fn query_parameters_are_decoded() {
        let req = Inbound {
            method: "GET",
            url: "https://x.example/v1/sources/wa?hub.mode=subscribe&hub.challenge=1158201444&hub.verify_token=a%20b",
            headers: &[],
            body: b"",
        };
        assert_eq!(req.query_param("hub.verify_token").as_deref(), Some("a b"));
        assert_eq!(req.query_param("nope"), None);
    }

    #[test]
    fn vendor_times_take_seconds_millis_and_rfc3339() {
        let s = vendor_time(&json!("1749416383")).unwrap();
        assert_eq!(s.timestamp(), 1_749_416_383);
        assert_eq!(
            vendor_time(&json!(1506985696616i64))
                .unwrap()
                .timestamp_millis(),
            1_506_985_696_616
        );
        assert!(vendor_time(&json!("2025-01-01T00:00:00.000Z")).is_some());
        assert!(vendor_time(&json!("soon")).is_none());
    }
}
