//! The operator's connection to a stack's ledger and queue, for `leadbridge
//! status|list|replay`: a running local stack (its stack file) or a deployed one
//! (the standard AWS environment). The end-to-end tests replay through it too.

use std::path::Path;
use std::sync::Arc;

use anyhow::Context;
use chrono::{DateTime, Utc};
use lb_aws::{aws_sdk_dynamodb, aws_sdk_sqs, DynamoLedger, SqsLeadQueue};
use lb_pipeline::erase::{erase_person, ErasureReport};
use lb_pipeline::replay::{replay_dead, ReplayReport};
use lb_pipeline::status::{event_status, EventStatus};
use lb_pipeline::{LeadQueue, Ledger, LedgerRecord, ListFilter, PortError};
use serde::Deserialize;

use crate::stack::StackInfo;

/// Where the ledger table and the leads queue are.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct OpsTarget {
    /// An explicit AWS endpoint (moto); `None`: the standard AWS environment.
    #[serde(default)]
    pub aws_endpoint: Option<String>,
    #[serde(default)]
    pub region: Option<String>,
    pub table_name: String,
    #[serde(default)]
    pub queue_url: Option<String>,
    #[serde(default)]
    pub dlq_url: Option<String>,
    /// The bulk lane's queue (a replayed bulk lead goes back there).
    #[serde(default)]
    pub bulk_queue_url: Option<String>,
}

impl OpsTarget {
    /// The stack file a running `leadbridge dev` wrote (only the fields needed here are read).
    pub fn from_stack_file(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading {} (is `make dev` running?)", path.display()))?;
        serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))
    }

    pub fn from_stack(info: &StackInfo) -> Self {
        Self {
            aws_endpoint: Some(info.aws_endpoint.clone()),
            region: Some(info.region.clone()),
            table_name: info.table_name.clone(),
            queue_url: Some(info.queue_url.clone()),
            dlq_url: Some(info.dlq_url.clone()),
            bulk_queue_url: Some(info.bulk_queue_url.clone()).filter(|u| !u.is_empty()),
        }
    }

    /// A deployed stack, reached with the standard AWS environment (credentials, region).
    pub fn aws(
        table_name: String,
        queue_url: Option<String>,
        dlq_url: Option<String>,
        bulk_queue_url: Option<String>,
    ) -> Self {
        Self {
            aws_endpoint: None,
            region: None,
            table_name,
            queue_url,
            dlq_url,
            bulk_queue_url,
        }
    }

    pub async fn connect(&self) -> Ops {
        let sdk = match &self.aws_endpoint {
            Some(endpoint) => {
                lb_aws::sdk_config_for(endpoint, self.region.as_deref().unwrap_or("us-east-1"))
                    .await
            }
            None => lb_aws::sdk_config().await,
        };
        let ledger: Arc<dyn Ledger> = Arc::new(DynamoLedger::new(
            aws_sdk_dynamodb::Client::new(&sdk),
            &self.table_name,
        ));
        let queue = self.queue_url.as_ref().map(|q| {
            Arc::new(
                SqsLeadQueue::new(
                    aws_sdk_sqs::Client::new(&sdk),
                    q,
                    self.dlq_url.clone().unwrap_or_default(),
                )
                .with_bulk(self.bulk_queue_url.clone()),
            ) as Arc<dyn LeadQueue>
        });
        Ops { ledger, queue }
    }
}

/// The ledger and (for replay) the leads queue of one stack.
pub struct Ops {
    pub ledger: Arc<dyn Ledger>,
    pub queue: Option<Arc<dyn LeadQueue>>,
}

impl Ops {
    /// The same view as `GET /v1/events/{event_id}`.
    pub async fn status(&self, event_id: &str) -> Result<Option<EventStatus>, PortError> {
        event_status(self.ledger.as_ref(), event_id).await
    }

    pub async fn list(&self, filter: &ListFilter) -> Result<Vec<LedgerRecord>, PortError> {
        self.ledger.list(filter).await
    }

    /// [`erase_person`] against this stack (the dead-letter queue needs its URL).
    pub async fn erase(
        &self,
        identities: &[lb_domain::ContactKey],
    ) -> anyhow::Result<ErasureReport> {
        let queue = self
            .queue
            .as_ref()
            .context("erase needs the queue URLs (--queue-url, --dlq-url, or LEADS_*_URL)")?;
        Ok(erase_person(self.ledger.as_ref(), queue.as_ref(), identities).await?)
    }

    /// [`replay_dead`] against this stack.
    pub async fn replay(
        &self,
        filter: &ListFilter,
        dry_run: bool,
        now: DateTime<Utc>,
    ) -> anyhow::Result<ReplayReport> {
        let queue = self
            .queue
            .as_ref()
            .context("replay needs the leads queue URL (--queue-url or LEADS_QUEUE_URL)")?;
        Ok(replay_dead(self.ledger.as_ref(), queue.as_ref(), filter, dry_run, now).await?)
    }

    /// [`Ops::replay`], telling `progress` (done, of total) after each event.
    pub async fn replay_reporting(
        &self,
        filter: &ListFilter,
        dry_run: bool,
        now: DateTime<Utc>,
        progress: &(dyn Fn(usize, usize) + Sync),
    ) -> anyhow::Result<ReplayReport> {
        let queue = self
            .queue
            .as_ref()
            .context("replay needs the leads queue URL (--queue-url or LEADS_QUEUE_URL)")?;
        Ok(lb_pipeline::replay::replay_dead_reporting(
            self.ledger.as_ref(),
            queue.as_ref(),
            filter,
            dry_run,
            now,
            progress,
        )
        .await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stack_file_names_the_table_and_queues_to_operate_on() {
        let dir = std::env::temp_dir().join(format!("lb-ops-{}", rand::random::<u32>()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("stack.json");
        std::fs::write(
            &path,
            r#"{"aws_endpoint":"http://127.0.0.1:5000","region":"eu-west-1","table_name":"p-ledger",
                "queue_url":"http://q/p-leads.fifo","dlq_url":"http://q/p-leads-dlq.fifo","ingest_url":"x"}"#,
        )
        .unwrap();
        let t = OpsTarget::from_stack_file(&path).unwrap();
        assert_eq!(t.aws_endpoint.as_deref(), Some("http://127.0.0.1:5000"));
        assert_eq!(t.region.as_deref(), Some("eu-west-1"));
        assert_eq!(t.table_name, "p-ledger");
        assert_eq!(t.queue_url.as_deref(), Some("http://q/p-leads.fifo"));
        let missing = OpsTarget::from_stack_file(&dir.join("nope.json")).unwrap_err();
        assert!(format!("{missing:#}").contains("make dev"), "{missing:#}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
