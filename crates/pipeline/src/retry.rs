//! Retry policy: exponential backoff with "equal" jitter (each delay between
//! half its ceiling and its ceiling, so that the whole schedule has a floor),
//! bounded attempts, and the CRM's own "come back after" honoured.
//!
//! The defaults ride out hours: the first retries come within seconds, and the
//! 16 attempts span at least 2.5 h (at most 5.1 h) before a lead is dead-lettered,
//! as webhook senders that retry over hours do (BuildMyChatbot: an hour; Svix: a day).

use std::time::Duration;

use rand::Rng;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Delay ceiling of the first retry.
    pub base: Duration,
    /// No retry waits longer than this (SQS caps visibility at 12 h).
    pub cap: Duration,
    /// Attempts in all, the first included; after the last one fails, the event is dead-lettered.
    pub max_attempts: u32,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            base: Duration::from_secs(2),
            cap: Duration::from_secs(3_600),
            max_attempts: 16,
        }
    }
}

pub const SQS_MAX_VISIBILITY: Duration = Duration::from_secs(12 * 60 * 60);

impl RetryPolicy {
    /// The ceiling of the delay after failed attempt `attempt` (1-based): `min(cap, base·2^(attempt-1))`.
    pub fn ceiling(&self, attempt: u32) -> Duration {
        let exp = attempt.saturating_sub(1).min(30);
        self.base.saturating_mul(1u32 << exp).min(self.cap)
    }

    /// Equal jitter: uniform in `[ceiling/2, ceiling]`, but never earlier than the CRM asked.
    pub fn delay(
        &self,
        attempt: u32,
        retry_after: Option<Duration>,
        rng: &mut impl Rng,
    ) -> Duration {
        let ceiling = self.ceiling(attempt).as_millis() as u64;
        let jittered = Duration::from_millis(rng.random_range(ceiling / 2..=ceiling));
        jittered
            .max(retry_after.unwrap_or_default())
            .min(SQS_MAX_VISIBILITY)
    }

    pub fn exhausted(&self, attempt: u32) -> bool {
        attempt >= self.max_attempts
    }

    /// The shortest and longest time from the first attempt to the dead letter
    /// (the sum of the delays after every attempt but the last): an outage
    /// shorter than the first is ridden out without a replay.
    pub fn span(&self) -> (Duration, Duration) {
        let longest: Duration = (1..self.max_attempts).map(|a| self.ceiling(a)).sum();
        let shortest: Duration = (1..self.max_attempts)
            .map(|a| Duration::from_millis(self.ceiling(a).as_millis() as u64 / 2))
            .sum();
        (shortest, longest)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn ceiling_doubles_up_to_the_cap() {
        let p = RetryPolicy {
            base: Duration::from_secs(1),
            cap: Duration::from_secs(10),
            max_attempts: 5,
        };
        let c: Vec<u64> = (1..=6).map(|a| p.ceiling(a).as_secs()).collect();
        assert_eq!(c, vec![1, 2, 4, 8, 10, 10]);
    }

    #[test]
    fn delay_stays_within_the_ceiling_and_honours_retry_after() {
        let p = RetryPolicy {
            base: Duration::from_secs(1),
            cap: Duration::from_secs(10),
            max_attempts: 5,
        };
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        for attempt in 1..8 {
            for _ in 0..50 {
                assert!(p.delay(attempt, None, &mut rng) <= p.ceiling(attempt));
                assert!(
                    p.delay(attempt, Some(Duration::from_secs(30)), &mut rng)
                        >= Duration::from_secs(30)
                );
            }
        }
        assert_eq!(
            p.delay(1, Some(Duration::from_secs(100_000)), &mut rng),
            SQS_MAX_VISIBILITY
        );
    }

    #[test]
    fn the_default_schedule_starts_fast_and_rides_out_a_two_hour_outage() {
        let p = RetryPolicy::default();
        assert!(
            p.ceiling(1) <= Duration::from_secs(2),
            "the first retry comes fast"
        );
        assert!(p.ceiling(3) <= Duration::from_secs(8));
        let (shortest, longest) = p.span();
        assert!(shortest > Duration::from_secs(2 * 3600), "{shortest:?}");
        assert!(longest < Duration::from_secs(6 * 3600), "{longest:?}");
        // and every retry fits SQS's visibility limit
        assert!(p.ceiling(p.max_attempts) <= SQS_MAX_VISIBILITY);
    }

    #[test]
    fn a_delay_is_never_below_half_its_ceiling() {
        let p = RetryPolicy::default();
        let mut rng = rand::rngs::StdRng::seed_from_u64(3);
        for attempt in 1..p.max_attempts {
            for _ in 0..50 {
                let d = p.delay(attempt, None, &mut rng);
                assert!(d * 2 >= p.ceiling(attempt) && d <= p.ceiling(attempt));
            }
        }
    }

    #[test]
    fn attempts_are_bounded() {
        let p = RetryPolicy {
            max_attempts: 3,
            ..Default::default()
        };
        assert!(!p.exhausted(2));
        assert!(p.exhausted(3));
    }
}
