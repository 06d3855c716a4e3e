//! Rolling windows per token that also say when they reset, for Pipedrive's
//! `x-ratelimit-*` headers (readme, "HTTP headers and response codes" [V]):
//! `x-ratelimit-limit` (requests per window), `x-ratelimit-remaining`, and
//! `x-ratelimit-reset`, "the remaining window before the rate limit resets",
//! in seconds (the unit per pipedrive-dotnet#36, confirmed there with
//! Pipedrive [D]; the 2015 docs quoted in pipedrive.rb#1 said the same [D]).
//!
//! Policy: a request is admitted when fewer than `max` were admitted in the
//! last `window`; it holds its slot until it is `window` old. A refused (429)
//! request holds none ([U], as in the HubSpot simulator). The reset is the
//! time until the oldest slot frees, or a whole window when none is taken [U].

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

/// One window's state for one token, as the headers show it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct WindowState {
    pub limit: u32,
    pub remaining: u32,
    pub reset: Duration,
}

impl WindowState {
    /// `x-ratelimit-reset` in whole seconds, rounded up (at least 1 while a slot is taken).
    pub(crate) fn reset_secs(&self) -> u64 {
        let ms = self.reset.as_millis();
        u64::try_from(ms.div_ceil(1000)).unwrap_or(u64::MAX)
    }
}

#[derive(Debug, Default)]
pub(crate) struct RollingWindow {
    admitted: HashMap<String, VecDeque<Instant>>,
}

impl RollingWindow {
    fn hits(&mut self, key: &str, window: Duration, now: Instant) -> &mut VecDeque<Instant> {
        let hits = self.admitted.entry(key.to_owned()).or_default();
        while hits
            .front()
            .is_some_and(|t| now.saturating_duration_since(*t) >= window)
        {
            hits.pop_front();
        }
        hits
    }

    /// The window as it is, without taking a slot.
    pub(crate) fn peek(
        &mut self,
        key: &str,
        max: u32,
        window: Duration,
        now: Instant,
    ) -> WindowState {
        let hits = self.hits(key, window, now);
        let used = u32::try_from(hits.len()).unwrap_or(u32::MAX);
        let reset = hits.front().map_or(window, |oldest| {
            window.saturating_sub(now.saturating_duration_since(*oldest))
        });
        WindowState {
            limit: max,
            remaining: max.saturating_sub(used),
            reset,
        }
    }

    /// Takes a slot (the caller checked [`RollingWindow::peek`] under the same lock).
    pub(crate) fn take(
        &mut self,
        key: &str,
        max: u32,
        window: Duration,
        now: Instant,
    ) -> WindowState {
        self.hits(key, window, now).push_back(now);
        self.peek(key, max, window, now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_window_counts_down_and_says_when_the_oldest_slot_frees() {
        let mut w = RollingWindow::default();
        let window = Duration::from_millis(2000);
        let start = Instant::now();
        let fresh = w.peek("t", 2, window, start);
        assert_eq!((fresh.remaining, fresh.reset_secs()), (2, 2));
        assert_eq!(w.take("t", 2, window, start).remaining, 1);
        let later = start + Duration::from_millis(500);
        let s = w.take("t", 2, window, later);
        assert_eq!(s.remaining, 0);
        assert_eq!(s.reset, Duration::from_millis(1500));
        assert_eq!(s.reset_secs(), 2);
        // Another token has its own window.
        assert_eq!(w.peek("u", 2, window, later).remaining, 2);
        // The first slot frees at start + window.
        assert_eq!(w.peek("t", 2, window, start + window).remaining, 1);
    }
}
