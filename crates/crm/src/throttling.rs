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
    match throttle.admit(WAIT_IN_PLACE).await {
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
