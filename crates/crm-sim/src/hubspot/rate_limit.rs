//! Rolling-window rate limits per token.
//!
//! Policy: a request is admitted when fewer than `max` requests were admitted
//! in the last `window`; admitting it takes one slot until it is `window` old.
//! A rejected (429) request takes no slot, so a client that backs off for the
//! window is admitted again — HubSpot does not document this either way.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

/// Outcome of [`RollingWindow::try_acquire`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Admission {
    /// Admitted; this many slots remain in the window.
    Admitted {
        remaining: u32,
    },
    Rejected,
}

#[derive(Debug, Default)]
pub(crate) struct RollingWindow {
    admitted: HashMap<String, VecDeque<Instant>>,
}

impl RollingWindow {
    pub(crate) fn try_acquire(
        &mut self,
        key: &str,
        max: u32,
        window: Duration,
        now: Instant,
    ) -> Admission {
        let hits = self.admitted.entry(key.to_owned()).or_default();
        while hits
            .front()
            .is_some_and(|t| now.saturating_duration_since(*t) >= window)
        {
            hits.pop_front();
        }
        let used = u32::try_from(hits.len()).unwrap_or(u32::MAX);
        if used >= max {
            return Admission::Rejected;
        }
        hits.push_back(now);
        Admission::Admitted {
            remaining: max - used - 1,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_window_admits_max_requests_then_rejects_until_the_oldest_expires() {
        let mut limiter = RollingWindow::default();
        let window = Duration::from_millis(1000);
        let start = Instant::now();
        for expected in (0..3).rev() {
            assert_eq!(
                limiter.try_acquire("t", 3, window, start),
                Admission::Admitted {
                    remaining: expected
                }
            );
        }
        assert_eq!(
            limiter.try_acquire("t", 3, window, start),
            Admission::Rejected
        );
        assert_eq!(
            limiter.try_acquire("other", 3, window, start),
            Admission::Admitted { remaining: 2 }
        );
        // All three were admitted at `start`, so all three slots free up together.
        let later = start + window;
        assert_eq!(
            limiter.try_acquire("t", 3, window, later),
            Admission::Admitted { remaining: 2 }
        );
    }

    #[test]
    fn rejected_requests_take_no_slot() {
        let mut limiter = RollingWindow::default();
        let window = Duration::from_millis(100);
        let start = Instant::now();
        assert!(matches!(
            limiter.try_acquire("t", 1, window, start),
            Admission::Admitted { .. }
        ));
        for i in 1..50 {
            let t = start + Duration::from_millis(i);
            assert_eq!(limiter.try_acquire("t", 1, window, t), Admission::Rejected);
        }
        assert!(matches!(
            limiter.try_acquire("t", 1, window, start + window),
            Admission::Admitted { .. }
        ));
    }
}
