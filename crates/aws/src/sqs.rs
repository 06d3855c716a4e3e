use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_sqs::types::MessageAttributeValue;
use aws_sdk_sqs::Client;
use lb_domain::{Lane, QueuedLead};
use lb_pipeline::alert::{attrs, dead_letter_attributes};
use lb_pipeline::{DeadLetter, LeadQueue, PortError};
use sha2::Digest;

use crate::port_err;

pub const SQS_MAX_VISIBILITY_SECS: u64 = 12 * 60 * 60;

/// [`LeadQueue`] over the SQS FIFO leads queue (the real-time lane), its FIFO
/// dead-letter queue, and the standard bulk queue when the deployment has one
/// (without it, bulk leads travel the real-time lane).
#[derive(Clone)]
pub struct SqsLeadQueue {
    client: Client,
    queue_url: String,
    dlq_url: String,
    bulk_url: Option<String>,
}

impl SqsLeadQueue {
    pub fn new(client: Client, queue_url: impl Into<String>, dlq_url: impl Into<String>) -> Self {
        Self {
            client,
            queue_url: queue_url.into(),
            dlq_url: dlq_url.into(),
            bulk_url: None,
        }
    }

    /// The bulk lane's standard queue.
    pub fn with_bulk(mut self, bulk_url: Option<String>) -> Self {
        self.bulk_url = bulk_url.filter(|u| !u.is_empty());
        self
    }

    /// The bulk queue's url when `lane` is bulk and there is one.
    fn bulk(&self, lane: Lane) -> Option<&str> {
        match lane {
            Lane::Bulk => self.bulk_url.as_deref(),
            Lane::Realtime => None,
        }
    }

    async fn send(
        &self,
        lead: &QueuedLead,
        dedup: String,
        what: &'static str,
    ) -> Result<(), PortError> {
        let req = self
            .client
            .send_message()
            .message_body(lead.to_json())
            .message_attributes(attrs::EVENT_ID, string_attr(lead.event.event_id.as_str()));
        // A standard queue takes no group or deduplication id: the ledger keeps
        // exactly-once there, and the ordering guard orders a person's events.
        let req = match self.bulk(lead.lane) {
            Some(url) => req.queue_url(url),
            None => req
                .queue_url(&self.queue_url)
                .message_group_id(short_id(&lead.group_id()))
                .message_deduplication_id(short_id(&dedup)),
        };
        req.send().await.map_err(|e| port_err(what, e))?;
        Ok(())
    }
}

fn string_attr(v: &str) -> MessageAttributeValue {
    MessageAttributeValue::builder()
        .data_type("String")
        .string_value(v)
        .build()
        .expect("data type and value are set")
}

#[async_trait]
impl LeadQueue for SqsLeadQueue {
    async fn enqueue(&self, lead: &QueuedLead) -> Result<(), PortError> {
        self.send(lead, lead.delivery_id(), "sqs:SendMessage").await
    }

    async fn requeue(&self, lead: &QueuedLead, replay: u32) -> Result<(), PortError> {
        let dedup = format!("{}#replay{replay}", lead.delivery_id());
        self.send(lead, dedup, "sqs:SendMessage(replay)").await
    }

    async fn dead_letter(&self, letter: &DeadLetter) -> Result<(), PortError> {
        let mut req = self
            .client
            .send_message()
            .queue_url(&self.dlq_url)
            .message_body(&letter.body)
            .message_group_id(short_id(&letter.group_id))
            .message_deduplication_id(short_id(&letter.dedup_id));
        for (k, v) in dead_letter_attributes(letter) {
            if !v.is_empty() {
                req = req.message_attributes(k, string_attr(&v));
            }
        }
        req.send()
            .await
            .map_err(|e| port_err("sqs:SendMessage(dlq)", e))?;
        Ok(())
    }

    /// Reads the whole DLQ: matching messages are deleted; the others are
    /// handed back at once (a FIFO group shows its next messages only once the
    /// earlier ones are back). Stops when a round brings nothing not seen yet.
    async fn erase_dead_letters(&self, key_hashes: &[String]) -> Result<usize, PortError> {
        let mut seen = std::collections::HashSet::new();
        let mut erased = 0;
        let mut idle_rounds = 0;
        while idle_rounds < 3 {
            let out = self
                .client
                .receive_message()
                .queue_url(&self.dlq_url)
                .max_number_of_messages(10)
                .visibility_timeout(30)
                .wait_time_seconds(1)
                .send()
                .await
                .map_err(|e| port_err("sqs:ReceiveMessage(dlq)", e))?;
            let messages = out.messages.unwrap_or_default();
            let mut new = 0;
            for m in &messages {
                let Some(handle) = m.receipt_handle() else {
                    continue;
                };
                if m.message_id().is_some_and(|id| seen.insert(id.to_string())) {
                    new += 1;
                }
                if lb_pipeline::erase::carries_any(m.body().unwrap_or_default(), key_hashes) {
                    self.client
                        .delete_message()
                        .queue_url(&self.dlq_url)
                        .receipt_handle(handle)
                        .send()
                        .await
                        .map_err(|e| port_err("sqs:DeleteMessage(dlq)", e))?;
                    erased += 1;
                } else {
                    self.client
                        .change_message_visibility()
                        .queue_url(&self.dlq_url)
                        .receipt_handle(handle)
                        .visibility_timeout(0)
                        .send()
                        .await
                        .map_err(|e| port_err("sqs:ChangeMessageVisibility(dlq)", e))?;
                }
            }
            idle_rounds = if new == 0 { idle_rounds + 1 } else { 0 };
        }
        Ok(erased)
    }

    async fn retry_later(
        &self,
        lane: Lane,
        receipt_handle: &str,
        delay: Duration,
    ) -> Result<(), PortError> {
        let secs = delay.as_secs_f64().ceil() as u64;
        self.client
            .change_message_visibility()
            .queue_url(self.bulk(lane).unwrap_or(&self.queue_url))
            .receipt_handle(receipt_handle)
            .visibility_timeout(secs.min(SQS_MAX_VISIBILITY_SECS) as i32)
            .send()
            .await
            .map_err(|e| port_err("sqs:ChangeMessageVisibility", e))?;
        Ok(())
    }
}

/// SQS group and deduplication ids are at most 128 printable ASCII characters;
/// a longer id is replaced by its SHA-256.
fn short_id(s: &str) -> String {
    if s.len() <= 128 && s.bytes().all(|b| b.is_ascii_graphic()) {
        s.to_string()
    } else {
        hex::encode(sha2::Sha256::digest(s.as_bytes()))
    }
}
