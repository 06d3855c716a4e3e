//! The hourly check (an EventBridge schedule invokes the worker): every
//! connection's schema is read afresh and compared with what the connection
//! writes, so that a property an admin deleted or changed is alerted **before**
//! a lead fails on it ("fail loud, not silent"); the reads also tell each CRM's
//! daily quota, alerted past 70% as the worker does.
//!
//! One alert per connection per distinct set of findings (claimed on the
//! ledger across instances, kept 8 days): the same drift is not alerted every
//! hour, a new one is.

use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};
use tracing::{info, warn};

use crate::ports::{Alerts, Connections, Ledger};

/// What one connection's check found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checked {
    pub connection: String,
    /// `Ok(findings)` (empty: all fits), or why the schema could not be read.
    pub findings: Result<Vec<String>, String>,
    /// Whether this run published the alert (`false`: nothing to say, or said before).
    pub alerted: bool,
}

/// Runs the check over every connection.
pub async fn hourly(
    connections: &dyn Connections,
    ledger: &dyn Ledger,
    alerts: &dyn Alerts,
    now: DateTime<Utc>,
) -> Vec<Checked> {
    let mut out = Vec::new();
    for crm in connections.all() {
        let name = crm.name().to_string();
        let findings = crm.schema_findings().await.map_err(|e| e.message);
        let mut alerted = false;
        match &findings {
            Ok(f) if f.is_empty() => {
                info!(connection = %name, "schema check: everything the connection writes fits")
            }
            Ok(f) => {
                let digest = hex::encode(Sha256::digest(f.join("\n").as_bytes()));
                let key = format!("schema-drift#{name}#{}", &digest[..16]);
                match ledger.claim_once(&key, now).await {
                    Ok(true) => {
                        let (subject, message) = render(&name, f);
                        match alerts.publish(&subject, &message).await {
                            Ok(()) => alerted = true,
                            Err(e) => {
                                warn!(connection = %name, error = %e, "schema drift alert not published")
                            }
                        }
                    }
                    Ok(false) => {
                        info!(connection = %name, findings = f.len(), "schema drift already alerted")
                    }
                    Err(e) => {
                        warn!(connection = %name, error = %e, "could not claim the schema drift alert")
                    }
                }
                warn!(connection = %name, findings = f.len(), "schema check: properties the CRM would refuse");
            }
            Err(e) => {
                warn!(connection = %name, error = %e, "schema check: the schema could not be read")
            }
        }
        if let Some(usage) = crm.take_quota_warning() {
            crate::sync::warn_quota_once(ledger, alerts, &name, &usage, now).await;
        }
        out.push(Checked {
            connection: name,
            findings,
            alerted,
        });
    }
    out
}

/// The alert: ASCII subject within SNS's 100 characters, one line per finding.
fn render(connection: &str, findings: &[String]) -> (String, String) {
    let mut subject = format!(
        "[leadbridge] schema drift on {connection}: {} propert{} would be refused",
        findings.len(),
        if findings.len() == 1 { "y" } else { "ies" }
    );
    subject.retain(|c| c.is_ascii() && !c.is_ascii_control());
    subject.truncate(100);
    let message = format!(
        "The hourly check read the CRM schema of the connection {connection}: leads that write \
         these properties would be dead-lettered as schema_drift (none is lost: they can be \
         replayed once it is fixed).\n\n{}\n\nWhat to do: create or fix the properties in the \
         CRM, or change the connection's mapping; details: \
         `leadbridge schema-check --connection {connection} --aws`.",
        findings
            .iter()
            .map(|f| format!("- {f}"))
            .collect::<Vec<_>>()
            .join("\n")
    );
    (subject, message)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fakes::{InMemoryLedger, RecordingAlerts};
    use crate::ports::{ContactRef, ContactWrite, Crm, CrmError, CrmSet};
    use async_trait::async_trait;
    use lb_domain::{EventId, QueuedLead};
    use std::sync::{Arc, Mutex};

    /// A CRM whose schema findings the test sets.
    struct Drifting(&'static str, Mutex<Vec<String>>);

    #[async_trait]
    impl Crm for Drifting {
        fn name(&self) -> &str {
            self.0
        }
        async fn schema_findings(&self) -> Result<Vec<String>, CrmError> {
            Ok(self.1.lock().unwrap().clone())
        }
        async fn upsert_contact(
            &self,
            _: &QueuedLead,
            _: Option<&str>,
            _: ContactWrite,
        ) -> Result<ContactRef, CrmError> {
            unreachable!()
        }
        async fn find_note(&self, _: &str, _: &EventId) -> Result<Option<String>, CrmError> {
            unreachable!()
        }
        async fn add_note(&self, _: &str, _: &QueuedLead) -> Result<String, CrmError> {
            unreachable!()
        }
        async fn find_deal(&self, _: &str, _: &EventId) -> Result<Option<String>, CrmError> {
            unreachable!()
        }
        async fn create_deal(&self, _: &str, _: &QueuedLead) -> Result<String, CrmError> {
            unreachable!()
        }
    }

    #[tokio::test]
    async fn a_drift_is_alerted_once_and_a_new_one_again() {
        let crm = Arc::new(Drifting("hubspot", Mutex::new(Vec::new())));
        let mut set = CrmSet::default();
        set.add(crm.clone());
        let (ledger, alerts) = (InMemoryLedger::default(), RecordingAlerts::default());
        let now = Utc::now();
        let run = || hourly(&set, &ledger, &alerts, now);
        assert!(!run().await[0].alerted, "nothing to say");
        *crm.1.lock().unwrap() =
            vec!["leadbridge_source (lead source): missing: the property does not exist".into()];
        assert!(run().await[0].alerted);
        assert!(
            !run().await[0].alerted,
            "the same drift is not alerted every hour"
        );
        crm.1
            .lock()
            .unwrap()
            .push("company (visitor.company): read_only".into());
        assert!(run().await[0].alerted, "a new drift is");
        let sent = alerts.sent();
        assert_eq!(sent.len(), 2, "{sent:?}");
        assert!(sent[0]
            .0
            .starts_with("[leadbridge] schema drift on hubspot: 1 property"));
        assert!(sent[0].0.len() <= 100 && sent[0].0.is_ascii());
        assert!(sent[0].1.contains("- leadbridge_source"));
        assert!(sent[0]
            .1
            .contains("leadbridge schema-check --connection hubspot"));
    }
}
