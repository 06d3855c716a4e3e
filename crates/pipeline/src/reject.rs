//! Ingest's other use case: an event refused with 422 is not lost from sight.
//! The rejection (reason codes, bot, masked identity; never the payload) is
//! recorded in the ledger and counted per bot and alert window; a bot's first
//! rejection of a window raises one alert, the rest of its window is only counted.

use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use tracing::{info, warn};

use crate::ports::{Alerts, Ledger, Rejection};

/// The start of the alert window `now` falls in (windows are aligned to the epoch).
pub fn window_start(now: DateTime<Utc>, window: Duration) -> DateTime<Utc> {
    let w = window.as_millis().max(1000) as i64;
    let ms = now.timestamp_millis();
    DateTime::from_timestamp_millis(ms - ms.rem_euclid(w)).unwrap_or(now)
}

/// What recording one rejection did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Recorded {
    /// Rejections in this window so far (0 when the ledger could not count it).
    pub in_window: u64,
    pub alerted: bool,
}

/// Records the rejection and, when it is the first of its window, publishes one
/// alert. Failures are logged, never raised: the sender's 422 does not depend on them.
pub async fn record_rejection(
    ledger: &dyn Ledger,
    alerts: &dyn Alerts,
    rejection: &Rejection,
    window: Duration,
    now: DateTime<Utc>,
) -> Recorded {
    let start = window_start(now, window);
    crate::telemetry::rejected(rejection.bot_id.as_deref());
    let in_window = match ledger.record_rejected(rejection, start, now).await {
        Ok(t) => t.in_window,
        Err(e) => {
            warn!(event_id = %rejection.id, error = %e, "rejection not recorded in the ledger");
            0
        }
    };
    info!(
        event_id = %rejection.id,
        code = %rejection.reason().code,
        in_window,
        "rejection recorded"
    );
    if in_window != 1 {
        return Recorded {
            in_window,
            alerted: false,
        };
    }
    let (subject, message) = alert_text(rejection, start, window);
    let alerted = match alerts.publish(&subject, &message).await {
        Ok(()) => true,
        Err(e) => {
            warn!(error = %e, "rejection alert not published");
            false
        }
    };
    Recorded { in_window, alerted }
}

fn alert_text(r: &Rejection, start: DateTime<Utc>, window: Duration) -> (String, String) {
    let bot = r.bot_id.as_deref().unwrap_or("unknown bot");
    let reason = r.reason();
    let minutes = window.as_secs() / 60;
    let since = start.to_rfc3339_opts(SecondsFormat::Secs, true);
    let subject = format!("leadbridge: leads rejected at ingest ({bot})");
    let message = format!(
        "A lead was refused at ingest ({status}) and its sender was told why.\n\
         \n\
         Bot: {bot}\n\
         Event: {id}\n\
         Reasons: {why}\n\
         \n\
         This is {bot}'s first rejection of the {minutes}-minute window that began at {since}; \
         its further rejections in this window are recorded and counted, not alerted.\n\
         See them all: leadbridge list --status rejected --since {since}\n",
        id = r.id,
        why = reason.message,
        status = r.http_status,
    );
    (subject, message)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fakes::{InMemoryLedger, RecordingAlerts};
    use crate::ports::{LedgerStatus, ListFilter};
    use lb_domain::FieldError;

    fn rejection(id: &str) -> Rejection {
        Rejection {
            id: id.into(),
            bot_id: Some("sales-bot".into()),
            errors: vec![
                FieldError::new(
                    "consent.given_at",
                    "consent_required",
                    "consent is required",
                ),
                FieldError::new("visitor.email", "invalid_email", "not an email"),
            ],
            identity: Some("p***@a***.in".into()),
            http_status: 422,
        }
    }

    #[tokio::test]
    async fn every_rejection_is_recorded_and_one_alert_goes_out_per_bot_and_window() {
        let (ledger, alerts) = (InMemoryLedger::default(), RecordingAlerts::default());
        let window = Duration::from_secs(900);
        let t0 = DateTime::parse_from_rfc3339("2026-11-21T10:01:00Z")
            .unwrap()
            .with_timezone(&Utc);
        for (i, minutes) in [0i64, 3, 9, 16].iter().enumerate() {
            let now = t0 + chrono::Duration::minutes(*minutes);
            record_rejection(
                &ledger,
                &alerts,
                &rejection(&format!("evt_{i}")),
                window,
                now,
            )
            .await;
        }
        let listed = ledger
            .list(&ListFilter::status(LedgerStatus::Rejected))
            .await
            .unwrap();
        assert_eq!(listed.len(), 4, "every rejection is in the ledger");
        let e = listed[0].last_error.as_ref().unwrap();
        assert_eq!(e.code, "consent_required");
        assert!(
            e.message.contains("invalid_email (visitor.email)"),
            "{}",
            e.message
        );
        let sent = alerts.sent();
        assert_eq!(sent.len(), 2, "10:00–10:15 and 10:15–10:30: one alert each");
        assert!(sent[0].0.contains("sales-bot"));
        assert!(sent[0].1.contains("consent_required (consent.given_at)"));
        assert!(sent[0].1.contains("p***@a***.in"));
        assert!(sent[0].1.contains("2026-11-21T10:00:00Z"), "{}", sent[0].1);
        assert!(
            sent[0].1.contains("This is sales-bot's first rejection"),
            "{}",
            sent[0].1
        );

        // Another bot in the same window gets its own alert; its second does not.
        for id in ["evt_o1", "evt_o2"] {
            let other = Rejection {
                bot_id: Some("support-bot".into()),
                ..rejection(id)
            };
            record_rejection(&ledger, &alerts, &other, window, t0).await;
        }
        let sent = alerts.sent();
        assert_eq!(sent.len(), 3, "one more, for support-bot: {sent:?}");
        assert!(sent[2].0.contains("support-bot"), "{}", sent[2].0);
    }

    #[tokio::test]
    async fn a_ledger_or_topic_outage_does_not_fail_the_caller() {
        let (ledger, alerts) = (InMemoryLedger::default(), RecordingAlerts::default());
        alerts.set_failing(true);
        let r = record_rejection(
            &ledger,
            &alerts,
            &rejection("evt_1"),
            Duration::from_secs(60),
            Utc::now(),
        )
        .await;
        assert_eq!((r.in_window, r.alerted), (1, false));
        ledger.set_failing(true);
        let r = record_rejection(
            &ledger,
            &alerts,
            &rejection("evt_2"),
            Duration::from_secs(60),
            Utc::now(),
        )
        .await;
        assert_eq!(r.in_window, 0);
    }
}
