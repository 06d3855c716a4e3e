//! HubSpot's daily API quota, as one adapter instance sees it.
//!
//! Every private-app answer carries `X-HubSpot-RateLimit-Daily` and
//! `X-HubSpot-RateLimit-Daily-Remaining` (HubSpot changelog 2018-11-06; the
//! quota is the account's, shared by every app, and resets "midnight to
//! midnight based on the time zone setting of the account"). Past it, every call
//! is a 429 whose `policyName` is `DAILY` (our crm-apis notes; the exact body is
//! unconfirmed, so a 429 with `Daily-Remaining: 0` counts too).
//!
//! leadbridge does not know the account's time zone, so an exhausted quota is
//! checked again at the next whole `step` (one hour by default: midnight
//! anywhere falls on a whole hour, or on a half or quarter hour that the next
//! check catches within the hour). Until then this instance answers every call
//! itself, as rate-limited, without asking HubSpot: one call per instance per
//! step learns when the quota is back. A lead waits; it is never dead-lettered
//! for it (rate limits do not use up attempts).

use std::sync::Mutex;
use std::time::Duration;

use chrono::{DateTime, NaiveDate, Utc};
use lb_pipeline::QuotaUsage;
use reqwest::header::HeaderMap;
use serde_json::Value;

/// Usage at which one alert per day is raised.
pub const WARN_AT_PERCENT: u64 = 70;

#[derive(Debug, Default)]
struct State {
    limit: Option<u64>,
    remaining: Option<u64>,
    exhausted_until: Option<DateTime<Utc>>,
    warned: Option<NaiveDate>,
}

#[derive(Debug)]
pub struct DailyQuota {
    step: Duration,
    state: Mutex<State>,
}

/// A numeric header (HubSpot's `X-HubSpot-RateLimit-*`).
pub(crate) fn header_u64(h: &HeaderMap, name: &str) -> Option<u64> {
    h.get(name)?.to_str().ok()?.trim().parse().ok()
}

/// The next whole multiple of `step` since the epoch, after `now`.
pub fn next_boundary(now: DateTime<Utc>, step: Duration) -> DateTime<Utc> {
    let step_ms = (step.as_millis() as i64).max(1_000);
    let ms = now.timestamp_millis();
    DateTime::from_timestamp_millis(ms - ms.rem_euclid(step_ms) + step_ms).unwrap_or(now)
}

impl DailyQuota {
    pub fn new(step: Duration) -> Self {
        Self {
            step,
            state: Mutex::new(State::default()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Notes the daily headers of an answer (any status).
    pub fn observe(&self, headers: &HeaderMap) {
        if let (Some(limit), Some(remaining)) = (
            header_u64(headers, "x-hubspot-ratelimit-daily"),
            header_u64(headers, "x-hubspot-ratelimit-daily-remaining"),
        ) {
            let mut s = self.lock();
            s.limit = Some(limit);
            s.remaining = Some(remaining);
            if remaining > 0 {
                s.exhausted_until = None;
            }
        }
    }

    /// Whether a 429 is the daily quota's.
    pub fn is_daily(body: &Value, headers: &HeaderMap) -> bool {
        body.get("policyName").and_then(Value::as_str) == Some("DAILY")
            || header_u64(headers, "x-hubspot-ratelimit-daily-remaining") == Some(0)
    }

    /// The quota ran out: calls wait until the next check. How long from `now`.
    pub fn exhaust(&self, now: DateTime<Utc>) -> Duration {
        let until = next_boundary(now, self.step);
        self.lock().exhausted_until = Some(until);
        (until - now).to_std().unwrap_or_default()
    }

    /// While the quota is known to be spent: how long until the next check.
    pub fn wait(&self, now: DateTime<Utc>) -> Option<Duration> {
        let mut s = self.lock();
        match s.exhausted_until {
            Some(until) if until > now => (until - now).to_std().ok(),
            Some(_) => {
                s.exhausted_until = None;
                None
            }
            None => None,
        }
    }

    /// The day's usage once it reaches [`WARN_AT_PERCENT`], at most once per
    /// (UTC) day per instance; the ledger makes it once per day across instances.
    pub fn take_warning(&self, now: DateTime<Utc>) -> Option<QuotaUsage> {
        let mut s = self.lock();
        let (limit, remaining) = (s.limit?, s.remaining?);
        let used = limit.saturating_sub(remaining);
        let day = now.date_naive();
        if limit == 0 || used * 100 < limit * WARN_AT_PERCENT || s.warned == Some(day) {
            return None;
        }
        s.warned = Some(day);
        Some(QuotaUsage {
            used,
            limit,
            day: day.to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    fn headers(limit: u64, remaining: u64) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert("x-hubspot-ratelimit-daily", HeaderValue::from(limit));
        h.insert(
            "x-hubspot-ratelimit-daily-remaining",
            HeaderValue::from(remaining),
        );
        h
    }

    fn at(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    #[test]
    fn seventy_percent_warns_once_a_day() {
        let q = DailyQuota::new(Duration::from_secs(3600));
        let now = at("2026-11-29T10:00:00Z");
        q.observe(&headers(250_000, 100_000));
        assert_eq!(q.take_warning(now), None, "60% used");
        q.observe(&headers(250_000, 75_000));
        assert_eq!(
            q.take_warning(now),
            Some(QuotaUsage {
                used: 175_000,
                limit: 250_000,
                day: "2026-11-29".into()
            })
        );
        q.observe(&headers(250_000, 10_000));
        assert_eq!(q.take_warning(now), None, "once a day");
        assert!(q.take_warning(at("2026-11-30T00:10:00Z")).is_some());
    }

    #[test]
    fn a_spent_quota_waits_for_the_next_whole_step_and_a_good_answer_clears_it() {
        let q = DailyQuota::new(Duration::from_secs(3600));
        let now = at("2026-11-29T10:20:00Z");
        assert_eq!(q.exhaust(now), Duration::from_secs(40 * 60));
        assert_eq!(
            q.wait(at("2026-11-29T10:50:00Z")),
            Some(Duration::from_secs(600))
        );
        assert_eq!(
            q.wait(at("2026-11-29T11:00:00Z")),
            None,
            "time to ask again"
        );
        q.exhaust(at("2026-11-29T11:00:01Z"));
        q.observe(&headers(250_000, 249_999));
        assert_eq!(
            q.wait(at("2026-11-29T11:00:02Z")),
            None,
            "the quota is back"
        );
    }

    #[test]
    fn a_429_is_the_daily_quotas_by_its_policy_or_its_remaining_header() {
        let daily = serde_json::json!({"policyName": "DAILY", "errorType": "RATE_LIMIT"});
        let burst = serde_json::json!({"policyName": "TEN_SECONDLY_ROLLING"});
        assert!(DailyQuota::is_daily(&daily, &HeaderMap::new()));
        assert!(!DailyQuota::is_daily(&burst, &headers(250_000, 5)));
        assert!(DailyQuota::is_daily(&burst, &headers(250_000, 0)));
    }
}
