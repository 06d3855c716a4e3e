//! The shared rate limiter: every worker instance of a connection together
//! stays under a share of the CRM's rate limit.
//!
//! A CRM counts calls in a rolling window (HubSpot: 100 per 10 s for a
//! private app on Starter; Pipedrive: per 2 s). Lambda runs several worker
//! instances at once, each unaware of the others, so each instance's own
//! backing-off only reacts after the CRM answered 429. The limiter counts calls
//! in the ledger table instead ([`CallCounter`]: one conditional write per call,
//! no read), in fixed time slices of a quarter of the CRM's window. A rolling
//! window of the CRM's length overlaps at most five slices, so with at most
//! `share × limit / 5` calls per slice no rolling window ever holds more than
//! `share × limit`, whatever the instances do; the sustained rate is 80% of the
//! share. (A token bucket would need a read and a write per call; a sliding log,
//! a write per call and a query.)
//!
//! A counter outage does not stop leads: the call goes ahead (the CRM's own 429
//! still stands behind it) and the outage is logged.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use lb_config::{CallLimit, Throttling};
use tracing::warn;

use crate::ports::CallCounter;

/// Slices per CRM window.
const SLICES: u32 = 4;
/// The share of its limit the limiter sustains: a window's worth of slices
/// out of the `SLICES + 1` a rolling window overlaps (80%).
pub const SUSTAINED_SHARE: f64 = SLICES as f64 / (SLICES + 1) as f64;

/// What [`Throttle::try_admit`] answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admit {
    /// The call was counted: make it.
    Go,
    /// This slice is spent: try again after this long.
    Wait(Duration),
}

/// One connection's limiter (cheap to clone; clones share what was learned).
#[derive(Clone)]
pub struct Throttle {
    counter: Option<Arc<dyn CallCounter>>,
    connection: String,
    settings: Throttling,
    /// The limit the CRM announced in its answers, when the config gives none.
    learned: Arc<Mutex<Option<CallLimit>>>,
}

impl Throttle {
    /// No limiter: every call goes ahead.
    pub fn off() -> Self {
        Self {
            counter: None,
            connection: String::new(),
            settings: Throttling::default(),
            learned: Arc::default(),
        }
    }

    pub fn new(counter: Arc<dyn CallCounter>, connection: &str, settings: Throttling) -> Self {
        Self {
            counter: Some(counter),
            connection: connection.to_string(),
            settings,
            learned: Arc::default(),
        }
    }

    /// The CRM announced its limit (HubSpot's `X-HubSpot-RateLimit-Max` and
    /// `-Interval-Milliseconds`); a `rate_limit` in the config wins over it.
    pub fn learn(&self, limit: CallLimit) {
        if limit.requests > 0 && !limit.per.is_zero() {
            *self.learned.lock().expect("throttle lock") = Some(limit);
        }
    }

    /// The limit in force: the config's, else the announced one.
    pub fn limit(&self) -> Option<CallLimit> {
        self.settings
            .limit
            .or(*self.learned.lock().expect("throttle lock"))
    }

    /// Counts one call now, or says how long until the next slice.
    pub async fn try_admit(&self, now: DateTime<Utc>) -> Admit {
        let (Some(counter), Some(limit)) = (&self.counter, self.limit()) else {
            return Admit::Go;
        };
        let (slice, per_slice) = slices(limit, self.settings.share_percent);
        let slice_ms = slice.as_millis().max(1) as i64;
        let now_ms = now.timestamp_millis();
        let index = now_ms.div_euclid(slice_ms);
        let window = format!("{}#{slice_ms}#{index}", self.connection);
        let expires = now + chrono::Duration::milliseconds(slice_ms * 2 + 60_000);
        match counter.count_call(&window, per_slice, expires).await {
            Ok(true) => Admit::Go,
            Ok(false) => Admit::Wait(Duration::from_millis(
                ((index + 1) * slice_ms - now_ms).max(1) as u64,
            )),
            Err(e) => {
                warn!(connection = %self.connection, error = %e, "the shared rate limiter is unavailable; calling without it");
                Admit::Go
            }
        }
    }

    /// Waits for a slot, at most `max_wait` in all: `Err(wait)` (how long until
    /// the next slice) when none comes sooner.
    pub async fn admit(&self, max_wait: Duration) -> Result<(), Duration> {
        let mut waited = Duration::ZERO;
        loop {
            match self.try_admit(Utc::now()).await {
                Admit::Go => return Ok(()),
                Admit::Wait(wait) if waited + wait <= max_wait => {
                    waited += wait;
                    tokio::time::sleep(wait).await;
                }
                Admit::Wait(wait) => return Err(wait),
            }
        }
    }
}

/// The slice length and the calls each slice may hold: `SLICES` slices per
/// window (fewer when the share is too small for that many), at most
/// `share / (slices + 1)` of the limit each.
pub fn slices(limit: CallLimit, share_percent: u32) -> (Duration, u32) {
    let allowed = (limit.requests as u64 * share_percent.clamp(1, 100) as u64 / 100).max(1);
    for k in (1..=SLICES).rev() {
        let per = allowed / (k as u64 + 1);
        if per >= 1 {
            return (limit.per / k, per as u32);
        }
    }
    // One call allowed per window: slices of a whole window, one call each
    // (a rolling window then sees at most two).
    (limit.per, 1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ports::PortError;
    use async_trait::async_trait;
    use std::collections::HashMap;

    #[derive(Default)]
    struct Counts(Mutex<HashMap<String, u32>>, Mutex<bool>);

    #[async_trait]
    impl CallCounter for Counts {
        async fn count_call(
            &self,
            window: &str,
            limit: u32,
            _expires: DateTime<Utc>,
        ) -> Result<bool, PortError> {
            if *self.1.lock().unwrap() {
                return Err(PortError::new("dynamodb down"));
            }
            let mut m = self.0.lock().unwrap();
            let n = m.entry(window.to_string()).or_default();
            if *n >= limit {
                return Ok(false);
            }
            *n += 1;
            Ok(true)
        }
    }

    fn limit(requests: u32, secs: u64) -> CallLimit {
        CallLimit {
            requests,
            per: Duration::from_secs(secs),
        }
    }

    #[test]
    fn the_sustained_rate_is_the_sustained_share_of_the_limit() {
        let (slice, per) = slices(limit(100, 10), 100);
        let per_second = per as f64 / slice.as_secs_f64();
        assert!(
            (per_second - SUSTAINED_SHARE * 10.0).abs() < 1e-9,
            "{per_second}/s"
        );
    }

    #[test]
    fn a_rolling_window_never_holds_more_than_the_share() {
        for (requests, secs, share) in [(100, 10, 100), (100, 10, 50), (7, 2, 100), (3, 10, 100)] {
            let l = limit(requests, secs);
            let (slice, per) = slices(l, share);
            let k = (l.per.as_millis() / slice.as_millis()) as u32;
            let allowed = (requests * share / 100).max(1);
            // A rolling window of the CRM's length overlaps k + 1 slices.
            assert!(
                (k + 1) * per <= allowed.max(2),
                "{requests}/{secs}s at {share}%: {k} slices of {per}"
            );
        }
        assert_eq!(
            slices(limit(100, 10), 100),
            (Duration::from_millis(2500), 20)
        );
        assert_eq!(
            slices(limit(100, 10), 50),
            (Duration::from_millis(2500), 10)
        );
    }

    /// Two instances share one counter: together they get one slice's calls.
    #[tokio::test]
    async fn instances_share_the_slice_and_wait_for_the_next() {
        let counts: Arc<dyn CallCounter> = Arc::new(Counts::default());
        let settings = Throttling {
            limit: Some(limit(100, 10)),
            share_percent: 100,
        };
        let a = Throttle::new(counts.clone(), "hubspot", settings);
        let b = Throttle::new(counts, "hubspot", settings);
        let t0: DateTime<Utc> = "2026-11-30T10:00:00.500Z".parse().unwrap();
        let mut go = 0;
        for i in 0..30 {
            let who = if i % 2 == 0 { &a } else { &b };
            if who.try_admit(t0).await == Admit::Go {
                go += 1;
            }
        }
        assert_eq!(go, 20, "one slice holds 100 / 5 calls");
        assert_eq!(
            a.try_admit(t0).await,
            Admit::Wait(Duration::from_millis(2000))
        );
        let next = t0 + chrono::Duration::milliseconds(2000);
        assert_eq!(b.try_admit(next).await, Admit::Go);
    }

    #[tokio::test]
    async fn without_a_limit_or_a_counter_every_call_goes_and_an_outage_lets_calls_through() {
        let t0 = Utc::now();
        assert_eq!(Throttle::off().try_admit(t0).await, Admit::Go);
        let counts = Arc::new(Counts::default());
        let unknown = Throttle::new(counts.clone(), "hubspot", Throttling::default());
        assert_eq!(unknown.try_admit(t0).await, Admit::Go);
        assert!(
            counts.0.lock().unwrap().is_empty(),
            "nothing counted without a limit"
        );
        // HubSpot announced its limit: from now on calls are counted.
        unknown.learn(limit(10, 10));
        assert_eq!(unknown.limit(), Some(limit(10, 10)));
        assert_eq!(unknown.try_admit(t0).await, Admit::Go);
        assert_eq!(counts.0.lock().unwrap().len(), 1);
        // The config's limit wins over an announced one.
        let configured = Throttle::new(
            counts.clone(),
            "hubspot",
            Throttling {
                limit: Some(limit(50, 10)),
                share_percent: 100,
            },
        );
        configured.learn(limit(10, 10));
        assert_eq!(configured.limit(), Some(limit(50, 10)));
        *counts.1.lock().unwrap() = true;
        assert_eq!(configured.try_admit(t0).await, Admit::Go);
    }
}
