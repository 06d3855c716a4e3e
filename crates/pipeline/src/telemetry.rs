//! Lead-flow metrics, through the `metrics` facade: the Lambdas install a
//! CloudWatch Embedded Metric Format recorder and flush it after each
//! invocation; elsewhere (tests, the local stack) nothing is recorded.
//!
//! Every counter comes twice: with its dimension (`bot` or `connection`), for
//! the dashboard's breakdown, and without (`…Total`), for alarms (an alarm
//! reads one metric, not a search over dimensions).

/// The CloudWatch namespace.
pub const NAMESPACE: &str = "leadbridge";

fn count(name: &'static str, total: &'static str, label: &'static str, value: &str) {
    metrics::counter!(name, label => value.to_string()).increment(1);
    metrics::counter!(total).increment(1);
}

/// A lead durably queued by ingest (not a duplicate delivery).
pub fn accepted(bot: &str) {
    count("LeadsAccepted", "LeadsAcceptedTotal", "bot", bot);
}

/// A lead refused at ingest (validation, policies, size).
pub fn rejected(bot: Option<&str>) {
    count(
        "LeadsRejected",
        "LeadsRejectedTotal",
        "bot",
        bot.unwrap_or("unknown"),
    );
}

/// A delivery written to its connection; `latency_ms`: from ingest's receipt.
pub fn synced(connection: &str, latency_ms: f64) {
    count("LeadsSynced", "LeadsSyncedTotal", "connection", connection);
    metrics::histogram!("SyncLatencyMs", "connection" => connection.to_string()).record(latency_ms);
}

/// A delivery handed back for a later attempt.
pub fn retried(connection: &str) {
    count(
        "LeadsRetried",
        "LeadsRetriedTotal",
        "connection",
        connection,
    );
}

/// A delivery dead-lettered (counted once, by the dlq-alerter).
pub fn dead(connection: &str) {
    count("LeadsDead", "LeadsDeadTotal", "connection", connection);
}
