//! Retry policy: exponential backoff with full jitter, bounded attempts,
//! and the CRM's own "come back after" honoured.

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
            cap: Duration::from_secs(900),
            max_attempts: 8,
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

    /// Full jitter: uniform in `[0, ceiling]`, but never earlier than the CRM asked.
    pub fn delay(
        &self,
        attempt: u32,
        retry_after: Option<Duration>,
        rng: &mut impl Rng,
    ) -> Duration {
        let ceiling = self.ceiling(attempt);
        let jittered = Duration::from_millis(rng.random_range(0..=ceiling.as_millis() as u64));
        jittered
            .max(retry_after.unwrap_or_default())
            .min(SQS_MAX_VISIBILITY)
    }

    pub fn exhausted(&self, attempt: u32) -> bool {
        attempt >= self.max_attempts
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
    fn attempts_are_bounded() {
        let p = RetryPolicy {
            max_attempts: 3,
            ..Default::default()
        };
        assert!(!p.exhausted(2));
        assert!(p.exhausted(3));
    }
}
