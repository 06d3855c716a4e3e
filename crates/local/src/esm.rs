//! An SQS event source mapping, as Lambda runs one: long-poll a queue, hand
//! batches to a handler with a deadline, delete what succeeded, leave the rest
//! to come back after their visibility timeout (and be redriven by the queue
//! after maxReceiveCount).

use std::collections::HashSet;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent, SqsMessage, SqsMessageAttribute};
use aws_sdk_sqs::types::{DeleteMessageBatchRequestEntry, MessageSystemAttributeName};
use lambda_runtime::{Context, LambdaEvent};
use tokio::sync::watch;
use tracing::warn;

#[derive(Debug, Default)]
pub struct EsmStats {
    pub batches: AtomicU64,
    pub messages: AtomicU64,
    pub deleted: AtomicU64,
    pub failed_items: AtomicU64,
    /// Invocations that failed as a whole (an error, or cut off by the timeout).
    pub handler_errors: AtomicU64,
}

#[derive(Clone)]
pub struct Mapping {
    pub sqs: aws_sdk_sqs::Client,
    pub queue_url: String,
    pub queue_arn: String,
    pub region: String,
    pub batch_size: i32,
    /// The function's timeout: the handler's deadline, and when the invocation is cut off.
    pub timeout: Duration,
    pub stats: Arc<EsmStats>,
    /// While this holds `true`, the mapping does not poll (Lambda's mapping
    /// disabled): messages sent meanwhile arrive together in the next batches.
    pub paused: Option<watch::Receiver<bool>>,
    /// How many pollers of the paused group are parked (not polling, no batch
    /// in hand): a pause is complete when all are.
    pub parked: Arc<std::sync::atomic::AtomicUsize>,
    /// Lambda's `MaximumBatchingWindowInSeconds`: after a first message, keep
    /// gathering until the batch is full or this long has passed (`None`: one
    /// receive per batch).
    pub batching_window: Option<Duration>,
}

/// SQS hands out at most 10 messages per receive.
const SQS_MAX_RECEIVE: i32 = 10;

fn to_lambda_message(m: &aws_sdk_sqs::types::Message, mapping: &Mapping) -> SqsMessage {
    let mut out = SqsMessage::default();
    out.message_id = m.message_id.clone();
    out.receipt_handle = m.receipt_handle.clone();
    out.body = m.body.clone();
    out.md5_of_body = m.md5_of_body.clone();
    out.event_source = Some("aws:sqs".into());
    out.event_source_arn = Some(mapping.queue_arn.clone());
    out.aws_region = Some(mapping.region.clone());
    if let Some(a) = &m.attributes {
        for (k, v) in a {
            out.attributes.insert(k.as_str().to_string(), v.clone());
        }
    }
    if let Some(a) = &m.message_attributes {
        for (k, v) in a {
            let mut attr = SqsMessageAttribute::default();
            attr.string_value = v.string_value.clone();
            attr.data_type = Some(v.data_type.clone());
            out.message_attributes.insert(k.clone(), attr);
        }
    }
    out
}

/// What a handler said about a batch.
pub enum BatchResult {
    /// Partial batch response: these message ids failed.
    Partial(SqsBatchResponse),
    /// The invocation failed as a whole: nothing is deleted.
    Failed,
}

async fn receive(
    mapping: &Mapping,
    max: i32,
    wait_secs: i32,
) -> Result<Vec<aws_sdk_sqs::types::Message>, String> {
    mapping
        .sqs
        .receive_message()
        .queue_url(&mapping.queue_url)
        .max_number_of_messages(max)
        .wait_time_seconds(wait_secs)
        .message_system_attribute_names(MessageSystemAttributeName::All)
        .message_attribute_names("All")
        .send()
        .await
        .map(|r| r.messages.unwrap_or_default())
        .map_err(|e| aws_sdk_sqs::error::DisplayErrorContext(&e).to_string())
}

/// Polls until `stop` turns true. `handler` is the Lambda handler under test.
pub async fn run<F, Fut>(mapping: Mapping, mut stop: watch::Receiver<bool>, handler: F)
where
    F: Fn(LambdaEvent<SqsEvent>) -> Fut,
    Fut: Future<Output = BatchResult>,
{
    loop {
        if *stop.borrow() {
            return;
        }
        if let Some(paused) = &mapping.paused {
            let mut paused = paused.clone();
            if *paused.borrow_and_update() {
                mapping
                    .parked
                    .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                tokio::select! {
                    _ = paused.changed() => {}
                    _ = stop.changed() => return,
                }
                mapping
                    .parked
                    .fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
                continue;
            }
        }
        let recv = receive(&mapping, mapping.batch_size.min(SQS_MAX_RECEIVE), 1);
        let resp = tokio::select! {
            r = recv => r,
            _ = stop.changed() => return,
        };
        let mut messages = match resp {
            Ok(m) => m,
            Err(e) => {
                warn!(error = %e, "poll failed");
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            }
        };
        if messages.is_empty() {
            continue;
        }
        if let Some(window) = mapping.batching_window {
            // As Lambda does: a batch goes out when full or when the window closes.
            let closes = tokio::time::Instant::now() + window;
            while (messages.len() as i32) < mapping.batch_size {
                let left = closes.saturating_duration_since(tokio::time::Instant::now());
                if left.is_zero() || *stop.borrow() {
                    break;
                }
                let want = (mapping.batch_size - messages.len() as i32).min(SQS_MAX_RECEIVE);
                let wait = left.as_secs().min(1) as i32;
                match receive(&mapping, want, wait).await {
                    Ok(more) if more.is_empty() && wait == 0 => {
                        tokio::time::sleep(left.min(Duration::from_millis(100))).await
                    }
                    Ok(more) => messages.extend(more),
                    Err(e) => {
                        warn!(error = %e, "poll failed");
                        break;
                    }
                }
            }
        }
        mapping.stats.batches.fetch_add(1, Ordering::Relaxed);
        mapping
            .stats
            .messages
            .fetch_add(messages.len() as u64, Ordering::Relaxed);
        let mut event = SqsEvent::default();
        event.records = messages
            .iter()
            .map(|m| to_lambda_message(m, &mapping))
            .collect();
        let mut ctx = Context::default();
        ctx.request_id = uuid::Uuid::new_v4().to_string();
        ctx.deadline = (chrono::Utc::now()
            + chrono::Duration::from_std(mapping.timeout).unwrap_or_default())
        .timestamp_millis() as u64;
        // A Lambda invocation that runs past its timeout is cut off: nothing deleted.
        let result = match tokio::time::timeout(
            mapping.timeout,
            handler(LambdaEvent::new(event, ctx)),
        )
        .await
        {
            Ok(r) => r,
            Err(_) => BatchResult::Failed,
        };
        let failed: HashSet<String> = match result {
            BatchResult::Partial(r) => r
                .batch_item_failures
                .into_iter()
                .map(|f| f.item_identifier)
                .collect(),
            BatchResult::Failed => {
                mapping.stats.handler_errors.fetch_add(1, Ordering::Relaxed);
                continue;
            }
        };
        mapping
            .stats
            .failed_items
            .fetch_add(failed.len() as u64, Ordering::Relaxed);
        let entries: Vec<DeleteMessageBatchRequestEntry> = messages
            .iter()
            .filter(|m| m.message_id.as_ref().is_some_and(|id| !failed.contains(id)))
            .enumerate()
            .filter_map(|(i, m)| {
                DeleteMessageBatchRequestEntry::builder()
                    .id(i.to_string())
                    .set_receipt_handle(m.receipt_handle.clone())
                    .build()
                    .ok()
            })
            .collect();
        if entries.is_empty() {
            continue;
        }
        let n = entries.len() as u64;
        match mapping
            .sqs
            .delete_message_batch()
            .queue_url(&mapping.queue_url)
            .set_entries(Some(entries))
            .send()
            .await
        {
            Ok(_) => {
                mapping.stats.deleted.fetch_add(n, Ordering::Relaxed);
            }
            Err(e) => warn!(error = %aws_sdk_sqs::error::DisplayErrorContext(&e), "delete failed"),
        }
    }
}
