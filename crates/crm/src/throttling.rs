//! The shared rate limiter ([`lb_pipeline::throttle`]) as the adapters use it:
//! each request to the CRM waits for a slot first.

use std::time::Duration;

use lb_pipeline::throttle::Throttle;
use lb_pipeline::{CrmError, ErrorClass};
use tracing::debug;

/// How long one request waits in place for a slot before the lead is handed
/// back to the queue instead (a slice is at most a quarter of the CRM's window).
pub const WAIT_IN_PLACE: Duration = Duration::from_secs(3);

/// Waits for a slot of `connection`'s shared limit; past [`WAIT_IN_PLACE`],
/// a rate-limited error that delays the lead (it is not an attempt).
pub async fn admit(throttle: &Throttle, connection: &str) -> Result<(), CrmError> {
    admit_within(throttle, connection, WAIT_IN_PLACE).await
}

async fn admit_within(
    throttle: &Throttle,
    connection: &str,
    wait: Duration,
) -> Result<(), CrmError> {
    match throttle.admit(wait).await {
        Ok(()) => Ok(()),
        Err(wait) => {
            debug!(crm = %connection, wait_ms = wait.as_millis() as u64, "shared rate limit reached; handing the lead back");
            let mut e = CrmError::new(
                connection,
                ErrorClass::RateLimited,
                None,
                "leadbridge's share of the CRM's rate limit is in use by other workers; waiting",
            );
            e.retry_after = Some(wait);
            Err(e)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use async_trait::async_trait;
    use chrono::{DateTime, Utc};
    use lb_pipeline::{CallCounter, PortError};
    use std::sync::Arc;

    /// Another instance took the whole slice.
    struct Spent;

    #[async_trait]
    impl CallCounter for Spent {
        async fn count_call(&self, _: &str, _: u32, _: DateTime<Utc>) -> Result<bool, PortError> {
            Ok(false)
        }
    }

    #[tokio::test]
    async fn a_spent_slice_hands_the_lead_back_rate_limited_until_the_next_one() {
        let throttle = Throttle::new(
            Arc::new(Spent),
            "hubspot",
            lb_config::Throttling {
                limit: Some(lb_config::CallLimit {
                    requests: 100,
                    per: Duration::from_secs(10),
                }),
                share_percent: 100,
            },
        );
        let e = admit_within(&throttle, "hubspot", Duration::ZERO)
            .await
            .expect_err("no slot");
        assert_eq!(e.class, ErrorClass::RateLimited, "a wait, not an attempt");
        assert_eq!(e.crm, "hubspot");
        let wait = e.retry_after.expect("when to come back");
        assert!(
            wait > Duration::ZERO && wait <= Duration::from_millis(2500),
            "{wait:?}"
        );
    }
}
