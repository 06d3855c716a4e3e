//! Turning HTTP outcomes into [`CrmError`]s every CRM adapter agrees on.

use std::time::Duration;

use lb_pipeline::{CrmError, ErrorClass};
use reqwest::header::HeaderMap;

/// How long a retry waits after a request timed out: the CRM may still apply it,
/// and the retry must find that write (by its tag) rather than make a second one.
pub const TIMED_OUT_WRITE_SETTLE: Duration = Duration::from_secs(30);

/// Seconds from a `Retry-After` header (delta-seconds form; an HTTP date is ignored).
pub fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    headers
        .get(reqwest::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim()
        .parse::<f64>()
        .ok()
        .filter(|s| s.is_finite() && *s >= 0.0)
        .map(|s| Duration::from_secs_f64(s.min(43_200.0)))
}

/// The class of an HTTP status for a CRM API: 408, 425, 429, 5xx and the given
/// extra codes (HubSpot's 423 and 477) are worth retrying; other 4xx are not.
pub fn class_of(status: u16, extra_transient: &[u16]) -> Option<ErrorClass> {
    match status {
        200..=299 => None,
        429 => Some(ErrorClass::RateLimited),
        408 | 425 | 500..=599 => Some(ErrorClass::Transient),
        s if extra_transient.contains(&s) => Some(ErrorClass::Transient),
        _ => Some(ErrorClass::Permanent),
    }
}

/// A transport failure (timeout, refused connection, broken body): always transient.
pub fn transport(crm: &str, e: &reqwest::Error) -> CrmError {
    let what = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "could not connect"
    } else {
        "request failed"
    };
    CrmError {
        crm: crm.to_string(),
        class: ErrorClass::Transient,
        http_status: None,
        category: None,
        message: format!("{crm} {what}: {}", without_url(e)),
        // A timed-out write may still land: give it time before a retry looks for it.
        retry_after: e.is_timeout().then_some(TIMED_OUT_WRITE_SETTLE),
        code: None,
    }
}

fn without_url(e: &reqwest::Error) -> String {
    // The URL can carry an email (`/contacts/jane@x.com?idProperty=email`): keep it out of errors.
    let mut s = e.to_string();
    if let Some(u) = e.url() {
        s = s.replace(u.as_str(), "<url>");
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_are_classified_like_the_crm_docs_say() {
        assert_eq!(class_of(200, &[]), None);
        assert_eq!(class_of(207, &[]), None);
        assert_eq!(class_of(429, &[]), Some(ErrorClass::RateLimited));
        for s in [408, 500, 502, 503, 504, 524] {
            assert_eq!(class_of(s, &[]), Some(ErrorClass::Transient), "{s}");
        }
        assert_eq!(class_of(423, &[423, 477]), Some(ErrorClass::Transient));
        for s in [400, 401, 403, 404, 409, 422] {
            assert_eq!(class_of(s, &[423, 477]), Some(ErrorClass::Permanent), "{s}");
        }
    }

    #[test]
    fn retry_after_reads_seconds_only() {
        let mut h = HeaderMap::new();
        h.insert("retry-after", "7".parse().unwrap());
        assert_eq!(retry_after(&h), Some(Duration::from_secs(7)));
        h.insert(
            "retry-after",
            "Wed, 21 Oct 2026 07:28:00 GMT".parse().unwrap(),
        );
        assert_eq!(retry_after(&h), None);
    }
}
