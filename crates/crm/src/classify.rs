//! Turning HTTP outcomes into [`CrmError`]s every CRM adapter agrees on.

use std::time::Duration;

use chrono::{DateTime, NaiveDateTime, Utc};
use lb_pipeline::{CrmError, ErrorClass};
use reqwest::header::HeaderMap;

/// How long a retry waits after a request timed out: the CRM may still apply it,
/// and the retry must find that write (by its tag) rather than make a second one.
pub const TIMED_OUT_WRITE_SETTLE: Duration = Duration::from_secs(30);

/// How long a `Retry-After` header asks us to wait: delta-seconds, or an HTTP
/// date (a date in the past means now). Capped at 12 hours.
pub fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    retry_after_at(headers, Utc::now())
}

const RETRY_AFTER_CAP_SECS: f64 = 43_200.0;

/// [`retry_after`] as seen at `now`.
pub fn retry_after_at(headers: &HeaderMap, now: DateTime<Utc>) -> Option<Duration> {
    let raw = headers
        .get(reqwest::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim();
    let secs = match raw.parse::<f64>() {
        Ok(s) => s,
        Err(_) => {
            let at = http_date(raw)?;
            (at - now).num_milliseconds().max(0) as f64 / 1000.0
        }
    };
    (secs.is_finite() && secs >= 0.0)
        .then(|| Duration::from_secs_f64(secs.min(RETRY_AFTER_CAP_SECS)))
}

/// An HTTP date (RFC 9110 §5.6.7): IMF-fixdate, or the obsolete RFC 850 and asctime forms.
fn http_date(raw: &str) -> Option<DateTime<Utc>> {
    if let Ok(t) = DateTime::parse_from_rfc2822(raw) {
        return Some(t.with_timezone(&Utc));
    }
    ["%A, %d-%b-%y %H:%M:%S GMT", "%a %b %e %H:%M:%S %Y"]
        .iter()
        .find_map(|f| NaiveDateTime::parse_from_str(raw, f).ok())
        .map(|t| t.and_utc())
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
        taken_by: None,
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
    fn retry_after_reads_seconds_and_http_dates() {
        let now = DateTime::parse_from_rfc3339("2026-10-21T07:28:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let at = |v: &str| {
            let mut h = HeaderMap::new();
            h.insert("retry-after", v.parse().unwrap());
            retry_after_at(&h, now)
        };
        assert_eq!(at("7"), Some(Duration::from_secs(7)));
        assert_eq!(at("1.5"), Some(Duration::from_millis(1500)));
        assert_eq!(at("-1"), None);
        assert_eq!(at("soon"), None);
        assert_eq!(
            at("Wed, 21 Oct 2026 07:28:30 GMT"),
            Some(Duration::from_secs(30))
        );
        assert_eq!(
            at("Wednesday, 21-Oct-26 07:29:00 GMT"),
            Some(Duration::from_secs(60))
        );
        assert_eq!(at("Wed Oct 21 07:28:05 2026"), Some(Duration::from_secs(5)));
        assert_eq!(at("Wed, 21 Oct 2026 07:00:00 GMT"), Some(Duration::ZERO));
        assert_eq!(at("999999"), Some(Duration::from_secs(43_200)));
        assert_eq!(retry_after(&HeaderMap::new()), None);
    }
}
