//! The ledger as one DynamoDB table (`pk`, `sk`):
//! - `EVENT#<event_id>` / `EVENT` — one event's status and audit trail (sort key
//!   `EVENT#<connection>` for each delivery of an event the config routes to
//!   named connections: one record per connection, all under the event's key);
//! - `REJECTED#<id>#<ms>` / `REJECTED` — an event refused at ingest (no payload);
//! - `REJECTIONS#<window start>` / `COUNT#<bot>` — rejections counted per bot and alert window;
//! - `CONTACT#<crm>#<key hash>` / `CONTACT` — the CRM record id of one identity
//!   of a person (`crm_id`), or a short claim on it while its record is created;
//! - `PERSON#<crm>#<record id>` / `PERSON` — one CRM record: its lease while an
//!   event writes it, and the `occurred_at` of the newest event applied to it;
//! - `CONFLICT#<crm>#<record ids>` / `CONFLICT` — a possible duplicate, once;
//! - `TOKEN#<connection>` / `TOKEN` — the OAuth access token the worker instances
//!   share, and the lease of the one refreshing it;
//! - `CALLS#<connection>#<slice ms>#<slice>` / `CALLS` — calls made to a CRM in one
//!   time slice by every worker instance (the shared rate limiter).

use std::collections::HashMap;

use async_trait::async_trait;
use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::{
    AttributeValue, DeleteRequest, KeysAndAttributes, ReturnValue, WriteRequest,
};
use aws_sdk_dynamodb::Client;
use chrono::{DateTime, Duration, SecondsFormat, Utc};
use lb_domain::{split_delivery_id, QueuedLead};
use lb_pipeline::{
    AttemptRecord, Begin, CallCounter, Erased, FailureReason, IdentityConflict, Ledger,
    LedgerRecord, LedgerStatus, LinkedElsewhere, ListFilter, Locked, PersonLock, PersonRelease,
    PortError, Received, Rejection, RejectionTally, SharedToken, SyncOutcome, TokenShare,
};

use crate::port_err;

/// How long a synced event's record is kept (TTL attribute `expires_at`).
pub const SYNCED_RETENTION_DAYS: i64 = 90;
/// Dead events are kept longer: they are the replay source.
pub const DEAD_RETENTION_DAYS: i64 = 365;
/// A delivery not yet synced or dead (received, queued, retrying, replayed):
/// far beyond the longest retry schedule and the queue's 4-day retention, so
/// only a record that can no longer move (never queued, lost) expires.
pub const PENDING_RETENTION_DAYS: i64 = 30;
/// How long the memory of a person (identity links, a record's newest applied
/// event, a conflict) is kept after its last use.
pub const PERSON_RETENTION_DAYS: i64 = 365;
/// A once-only claim (a day's quota warning).
pub const ONCE_RETENTION_DAYS: i64 = 8;
/// The index that lists events by status (`status` + `updated_at`); contact items have no status.
pub const STATUS_INDEX: &str = "status-updated_at-index";

#[derive(Clone)]
pub struct DynamoLedger {
    client: Client,
    table: String,
}

impl DynamoLedger {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
        }
    }
}

fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}
fn n(v: impl ToString) -> AttributeValue {
    AttributeValue::N(v.to_string())
}
fn ts(t: DateTime<Utc>) -> AttributeValue {
    s(t.to_rfc3339_opts(SecondsFormat::Millis, true))
}
fn event_pk(id: &str) -> AttributeValue {
    s(format!("EVENT#{id}"))
}
/// The key of one delivery (`<event_id>` or `<event_id>@<connection>`).
fn event_key(delivery_id: &str) -> (AttributeValue, AttributeValue) {
    let (event_id, connection) = split_delivery_id(delivery_id);
    let sk = match connection {
        Some(c) => format!("EVENT#{c}"),
        None => "EVENT".into(),
    };
    (event_pk(event_id), s(sk))
}
/// Rounds of a batch call for what DynamoDB leaves unprocessed (it takes part
/// of a batch under load or throttling), with a pause before each resend.
const UNPROCESSED_ROUNDS: u32 = 5;
/// Waits before round `round` of a batch call: none before the first, then
/// 50, 100, 200, 400 ms (AWS: "retry with exponential backoff").
async fn unprocessed_pause(round: u32) {
    if round > 0 {
        tokio::time::sleep(std::time::Duration::from_millis(25 << round)).await;
    }
}
/// Puts an item only if its key is free: `true` when this put wrote it, `false`
/// when the item was there already (a once-only record).
async fn put_if_absent(
    req: aws_sdk_dynamodb::operation::put_item::builders::PutItemFluentBuilder,
    op: &str,
) -> Result<bool, PortError> {
    match req
        .condition_expression("attribute_not_exists(pk)")
        .send()
        .await
    {
        Ok(_) => Ok(true),
        Err(e)
            if matches!(
                e.as_service_error(),
                Some(aws_sdk_dynamodb::operation::put_item::PutItemError::ConditionalCheckFailedException(_))
            ) =>
        {
            Ok(false)
        }
        Err(e) => Err(ddb_err(op, e)),
    }
}

fn identity_key(crm: &str, hash: &str) -> (AttributeValue, AttributeValue) {
    (s(format!("CONTACT#{crm}#{hash}")), s("CONTACT"))
}
fn record_key(crm: &str, record: &str) -> (AttributeValue, AttributeValue) {
    (s(format!("PERSON#{crm}#{record}")), s("PERSON"))
}
fn json<T: serde::Serialize>(v: &T) -> AttributeValue {
    s(serde_json::to_string(v).expect("ledger values serialize"))
}
fn expires(now: DateTime<Utc>, days: i64) -> AttributeValue {
    n((now + Duration::days(days)).timestamp())
}

/// `history` with one attempt appended (`:entry`, `:none`), in the same write.
const APPEND_HISTORY: &str = "history = list_append(if_not_exists(history, :none), :entry)";

fn history_entry(a: &AttemptRecord) -> AttributeValue {
    AttributeValue::L(vec![json(a)])
}

fn is_condition_failure<R>(e: &SdkError<UpdateItemError, R>) -> bool {
    matches!(
        e.as_service_error(),
        Some(UpdateItemError::ConditionalCheckFailedException(_))
    )
}

/// A DynamoDB error as a port error. A `ValidationException` (an item over
/// 400 KB, a value DynamoDB does not take) is the request's own fault: asking
/// again cannot help, so it is permanent, not an outage.
fn ddb_err<E, R>(op: &str, e: SdkError<E, R>) -> PortError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug + Send + Sync + 'static,
{
    let refused = e.code() == Some("ValidationException");
    let p = port_err(op, e);
    if refused {
        PortError::refused(p.0)
    } else {
        p
    }
}

/// Whether a conditional update applied: `Ok(false)` when its condition did not hold.
fn applied<T>(
    res: Result<
        T,
        SdkError<UpdateItemError, aws_smithy_runtime_api::client::orchestrator::HttpResponse>,
    >,
    op: &str,
) -> Result<bool, PortError> {
    match res {
        Ok(_) => Ok(true),
        Err(e) if is_condition_failure(&e) => Ok(false),
        Err(e) => Err(ddb_err(op, e)),
    }
}

type Item = HashMap<String, AttributeValue>;

fn get_s<'a>(item: &'a Item, k: &str) -> Option<&'a str> {
    item.get(k).and_then(|v| v.as_s().ok()).map(String::as_str)
}
fn get_n(item: &Item, k: &str) -> Option<i64> {
    item.get(k)
        .and_then(|v| v.as_n().ok())
        .and_then(|s| s.parse().ok())
}
fn get_ts(item: &Item, k: &str) -> Option<DateTime<Utc>> {
    get_s(item, k)
        .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
        .map(|t| t.with_timezone(&Utc))
}

fn to_record(item: &Item) -> Result<LedgerRecord, PortError> {
    let status = get_s(item, "status")
        .and_then(LedgerStatus::parse)
        .ok_or_else(|| PortError::new("ledger item has no valid status"))?;
    Ok(LedgerRecord {
        event_id: get_s(item, "event_id").unwrap_or_default().to_string(),
        // Derived from the key: a delivery's sort key is `EVENT#<connection>`.
        connection: get_s(item, "sk")
            .and_then(|sk| sk.strip_prefix("EVENT#"))
            .map(str::to_string),
        status,
        bot_id: get_s(item, "bot_id").map(str::to_string),
        contact_key_hash: get_s(item, "contact_key_hash").map(str::to_string),
        payload_hash: get_s(item, "payload_hash").map(str::to_string),
        payload: get_s(item, "payload").map(str::to_string),
        contact: get_s(item, "contact").map(str::to_string),
        attempts: get_n(item, "attempts").unwrap_or(0).max(0) as u32,
        replays: get_n(item, "replays").unwrap_or(0).max(0) as u32,
        lease_until: get_n(item, "lease_until").and_then(DateTime::from_timestamp_millis),
        next_attempt_at: get_ts(item, "next_attempt_at"),
        last_error: get_s(item, "last_error")
            .and_then(|j| serde_json::from_str::<FailureReason>(j).ok()),
        outcome: get_s(item, "outcome").and_then(|j| serde_json::from_str::<SyncOutcome>(j).ok()),
        received_at: get_ts(item, "received_at"),
        updated_at: get_ts(item, "updated_at"),
        history: match item.get("history") {
            Some(AttributeValue::L(entries)) => entries
                .iter()
                .filter_map(|e| e.as_s().ok())
                .filter_map(|j| serde_json::from_str::<AttemptRecord>(j).ok())
                .collect(),
            _ => Vec::new(),
        },
    })
}

impl DynamoLedger {
    /// Releases claims this holder just took (a lock that could not be had
    /// whole). Best effort: a claim left behind runs out at its `until`.
    async fn give_back_claims(&self, crm: &str, holder: &str, hashes: &[String]) {
        for h in hashes {
            let res = self
                .update(identity_key(crm, h))
                .update_expression("REMOVE claim_by, claim_until")
                .condition_expression("claim_by = :h")
                .expression_attribute_values(":h", s(holder))
                .send()
                .await;
            if let Err(e) = applied(res, "dynamodb:UpdateItem(give back claim)") {
                tracing::warn!(error = %e, "a claim was not given back; it runs out at its deadline");
            }
        }
    }

    /// Puts `items` in `BatchWriteItem` requests of up to 25, sending again
    /// what DynamoDB leaves unprocessed (a few rounds).
    async fn put_all(&self, items: Vec<Item>, op: &str) -> Result<(), PortError> {
        for chunk in items.chunks(25) {
            let mut pending: Vec<WriteRequest> = chunk
                .iter()
                .map(|item| {
                    aws_sdk_dynamodb::types::PutRequest::builder()
                        .set_item(Some(item.clone()))
                        .build()
                        .map(|p| WriteRequest::builder().put_request(p).build())
                        .map_err(|e| PortError::new(format!("{op}: {e}")))
                })
                .collect::<Result<_, _>>()?;
            for round in 0..UNPROCESSED_ROUNDS {
                if pending.is_empty() {
                    break;
                }
                unprocessed_pause(round).await;
                let out = self
                    .client
                    .batch_write_item()
                    .request_items(&self.table, pending)
                    .send()
                    .await
                    .map_err(|e| ddb_err(op, e))?;
                pending = out
                    .unprocessed_items
                    .and_then(|mut m| m.remove(&self.table))
                    .unwrap_or_default();
            }
            if !pending.is_empty() {
                return Err(PortError::new(format!("{op}: items left unprocessed")));
            }
        }
        Ok(())
    }

    /// An UpdateItem on one item of the table.
    /// `dead` (see [`Ledger::mark_dead`]); with `sent_at`, only if the delivery
    /// was not replayed after that (see [`Ledger::mark_dead_letter`]).
    async fn dead(
        &self,
        delivery_id: &str,
        reason: &FailureReason,
        payload: Option<&str>,
        sent_at: Option<DateTime<Utc>>,
        now: DateTime<Utc>,
    ) -> Result<bool, PortError> {
        let mut set = String::from(
            "SET #s = :dead, last_error = :err, error_code = :code, updated_at = :now, expires_at = :exp, \
             event_id = if_not_exists(event_id, :id), received_at = if_not_exists(received_at, :now), ",
        );
        set.push_str(APPEND_HISTORY);
        let (event_id, _) = split_delivery_id(delivery_id);
        if payload.is_some() {
            set.push_str(", payload = if_not_exists(payload, :payload)");
        }
        set.push_str(" REMOVE lease_until, next_attempt_at");
        let mut req = self
            .update(event_key(delivery_id))
            .update_expression(set)
            .condition_expression(if sent_at.is_some() {
                // A dead letter sent before the delivery's last replay is late: the
                // replay stands.
                "(attribute_not_exists(pk) OR #s <> :synced) AND \
                 (attribute_not_exists(replayed_at_ms) OR replayed_at_ms < :sent_ms)"
            } else {
                "attribute_not_exists(pk) OR #s <> :synced"
            })
            .expression_attribute_names("#s", "status")
            .expression_attribute_values(":dead", s(LedgerStatus::Dead.as_str()))
            .expression_attribute_values(":synced", s(LedgerStatus::Synced.as_str()))
            .expression_attribute_values(":err", json(reason))
            .expression_attribute_values(":now", ts(now))
            .expression_attribute_values(":exp", expires(now, DEAD_RETENTION_DAYS))
            .expression_attribute_values(":code", s(&reason.code))
            .expression_attribute_values(":id", s(event_id))
            .expression_attribute_values(":none", AttributeValue::L(Vec::new()))
            .expression_attribute_values(
                ":entry",
                history_entry(&AttemptRecord::failed("dead", reason, now)),
            );
        if let Some(p) = payload {
            req = req.expression_attribute_values(":payload", s(p));
        }
        if let Some(at) = sent_at {
            req = req.expression_attribute_values(":sent_ms", n(at.timestamp_millis()));
        }
        applied(req.send().await, "dynamodb:UpdateItem(dead)")
    }

    fn update(
        &self,
        (pk, sk): (AttributeValue, AttributeValue),
    ) -> aws_sdk_dynamodb::operation::update_item::builders::UpdateItemFluentBuilder {
        self.client
            .update_item()
            .table_name(&self.table)
            .key("pk", pk)
            .key("sk", sk)
    }

    async fn get_item(
        &self,
        (pk, sk): (AttributeValue, AttributeValue),
    ) -> Result<Option<Item>, PortError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("pk", pk)
            .key("sk", sk)
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| ddb_err("dynamodb:GetItem", e))?;
        Ok(out.item)
    }
}

#[async_trait]
impl Ledger for DynamoLedger {
    async fn record_received(
        &self,
        lead: &QueuedLead,
        body: &str,
        now: DateTime<Utc>,
    ) -> Result<Received, PortError> {
        let id = lead.event.event_id.as_str();
        let delivery = lead.delivery_id();
        let (pk, sk) = event_key(&delivery);
        let res = self
            .client
            .put_item()
            .table_name(&self.table)
            .item("pk", pk)
            .item("sk", sk)
            .item("event_id", s(id))
            .item("status", s(LedgerStatus::Received.as_str()))
            .item("bot_id", s(lead.event.bot_id.as_str()))
            .item("contact_key_hash", s(lead.contact_key.hashed()))
            .item("payload_hash", s(&lead.payload_hash))
            .item("payload", s(body))
            .item("contact", s(lead.contact_key.masked()))
            .item("attempts", n(0))
            .item("received_at", ts(now))
            .item("updated_at", ts(now))
            .item("expires_at", expires(now, PENDING_RETENTION_DAYS))
            .condition_expression("attribute_not_exists(pk)")
            // A duplicate delivery costs this one conditional write: the refusal
            // carries the item the ledger already holds.
            .return_values_on_condition_check_failure(
                aws_sdk_dynamodb::types::ReturnValuesOnConditionCheckFailure::AllOld,
            )
            .send()
            .await;
        match res {
            Ok(_) => Ok(Received::New),
            Err(e) => {
                let held = match e.as_service_error() {
                    Some(aws_sdk_dynamodb::operation::put_item::PutItemError::ConditionalCheckFailedException(c)) => {
                        c.item().cloned()
                    }
                    _ => return Err(ddb_err("dynamodb:PutItem", e)),
                };
                let item = match held {
                    Some(item) => item,
                    // An emulator that leaves the item out: read it.
                    None => self.get_item(event_key(&delivery)).await?.ok_or_else(|| {
                        PortError::new("ledger item vanished between put and get")
                    })?,
                };
                Ok(Received::Existing(Box::new(to_record(&item)?)))
            }
        }
    }

    async fn mark_queued(&self, delivery_id: &str, now: DateTime<Utc>) -> Result<(), PortError> {
        let res = self
            .update(event_key(delivery_id))
            .update_expression("SET #s = :queued, updated_at = :now")
            .condition_expression("#s = :received")
            .expression_attribute_names("#s", "status")
            .expression_attribute_values(":queued", s(LedgerStatus::Queued.as_str()))
            .expression_attribute_values(":received", s(LedgerStatus::Received.as_str()))
            .expression_attribute_values(":now", ts(now))
            .send()
            .await;
        applied(res, "dynamodb:UpdateItem(queued)").map(|_| ())
    }

    async fn begin(
        &self,
        lead: &QueuedLead,
        body: &str,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
    ) -> Result<Begin, PortError> {
        let id = lead.event.event_id.as_str();
        let delivery = lead.delivery_id();
        let (pk, sk) = event_key(&delivery);
        let res = self
            .update((pk, sk))
            .update_expression(
                "SET #s = :in_progress, lease_until = :lease, updated_at = :now, \
                 attempts = if_not_exists(attempts, :zero) + :one, \
                 event_id = if_not_exists(event_id, :id), bot_id = if_not_exists(bot_id, :bot), \
                 contact_key_hash = if_not_exists(contact_key_hash, :key), \
                 payload_hash = if_not_exists(payload_hash, :hash), payload = if_not_exists(payload, :body), \
                 contact = if_not_exists(contact, :contact), \
                 received_at = if_not_exists(received_at, :now), \
                 expires_at = if_not_exists(expires_at, :pending)",
            )
            .condition_expression(
                "(attribute_not_exists(payload_hash) OR payload_hash = :hash) AND \
                 (attribute_not_exists(#s) OR #s IN (:received, :queued, :retrying) OR \
                  (#s = :in_progress AND lease_until < :now_ms))",
            )
            .expression_attribute_names("#s", "status")
            .expression_attribute_values(":in_progress", s(LedgerStatus::InProgress.as_str()))
            .expression_attribute_values(":received", s(LedgerStatus::Received.as_str()))
            .expression_attribute_values(":queued", s(LedgerStatus::Queued.as_str()))
            .expression_attribute_values(":retrying", s(LedgerStatus::Retrying.as_str()))
            .expression_attribute_values(":lease", n(lease_until.timestamp_millis()))
            .expression_attribute_values(":now_ms", n(now.timestamp_millis()))
            .expression_attribute_values(":now", ts(now))
            .expression_attribute_values(":zero", n(0))
            .expression_attribute_values(":one", n(1))
            .expression_attribute_values(":id", s(id))
            .expression_attribute_values(":bot", s(lead.event.bot_id.as_str()))
            .expression_attribute_values(":key", s(lead.contact_key.hashed()))
            .expression_attribute_values(":hash", s(&lead.payload_hash))
            .expression_attribute_values(":body", s(body))
            .expression_attribute_values(":contact", s(lead.contact_key.masked()))
            .expression_attribute_values(":pending", expires(now, PENDING_RETENTION_DAYS))
            .return_values(ReturnValue::AllNew)
            // A redelivery of a delivery already done costs this one write.
            .return_values_on_condition_check_failure(
                aws_sdk_dynamodb::types::ReturnValuesOnConditionCheckFailure::AllOld,
            )
            .send()
            .await;
        match res {
            Ok(out) => {
                let item = out.attributes.unwrap_or_default();
                let attempt = get_n(&item, "attempts").unwrap_or(1).max(1) as u32;
                Ok(Begin::Proceed {
                    attempt,
                    follows_earlier: attempt > 1
                        || get_n(&item, "replays").unwrap_or(0) > 0
                        || item.contains_key("last_error"),
                    prior: get_s(&item, "outcome")
                        .and_then(|j| serde_json::from_str::<SyncOutcome>(j).ok()),
                })
            }
            Err(e) if is_condition_failure(&e) => {
                let held = match e.as_service_error() {
                    Some(UpdateItemError::ConditionalCheckFailedException(c)) => c.item().cloned(),
                    _ => None,
                };
                let item = match held {
                    Some(item) => Some(item),
                    None => self.get_item(event_key(&delivery)).await?,
                };
                let Some(item) = item else {
                    return Ok(Begin::InProgress {
                        lease_until: now + Duration::seconds(1),
                    });
                };
                let rec = to_record(&item)?;
                if rec
                    .payload_hash
                    .as_deref()
                    .is_some_and(|h| h != lead.payload_hash)
                {
                    return Ok(Begin::Conflict);
                }
                Ok(match rec.status {
                    LedgerStatus::Synced => Begin::AlreadySynced(rec.outcome),
                    LedgerStatus::Dead => Begin::AlreadyDead,
                    _ => Begin::InProgress {
                        lease_until: rec.lease_until.unwrap_or(now + Duration::seconds(1)),
                    },
                })
            }
            Err(e) => Err(ddb_err("dynamodb:UpdateItem(begin)", e)),
        }
    }

    async fn complete(
        &self,
        delivery_id: &str,
        outcome: &SyncOutcome,
        now: DateTime<Utc>,
    ) -> Result<(), PortError> {
        self.update(event_key(delivery_id))
            .update_expression(format!(
                "SET #s = :synced, outcome = :outcome, updated_at = :now, expires_at = :exp, \
                     {APPEND_HISTORY} REMOVE lease_until, next_attempt_at, payload"
            ))
            .condition_expression("attribute_exists(pk)")
            .expression_attribute_names("#s", "status")
            .expression_attribute_values(":synced", s(LedgerStatus::Synced.as_str()))
            .expression_attribute_values(":outcome", json(outcome))
            .expression_attribute_values(":none", AttributeValue::L(Vec::new()))
            .expression_attribute_values(
                ":entry",
                history_entry(&AttemptRecord::synced(outcome, now)),
            )
            .expression_attribute_values(":now", ts(now))
            .expression_attribute_values(":exp", expires(now, SYNCED_RETENTION_DAYS))
            .send()
            .await
            .map_err(|e| ddb_err("dynamodb:UpdateItem(complete)", e))?;
        Ok(())
    }

    async fn fail(
        &self,
        delivery_id: &str,
        reason: &FailureReason,
        next_attempt_at: DateTime<Utc>,
        counted: bool,
        now: DateTime<Utc>,
    ) -> Result<(), PortError> {
        let give_back = if counted {
            ""
        } else {
            ", attempts = attempts - :one"
        };
        let mut req = self
            .update(event_key(delivery_id))
            .update_expression(format!(
            "SET #s = :retrying, last_error = :err, error_code = :code, next_attempt_at = :next, \
                 updated_at = :now, {APPEND_HISTORY}{give_back} REMOVE lease_until"
        ));
        if !counted {
            req = req.expression_attribute_values(":one", n(1));
        }
        let res = req
            .condition_expression("attribute_exists(pk) AND NOT #s IN (:synced, :dead)")
            .expression_attribute_names("#s", "status")
            .expression_attribute_values(":retrying", s(LedgerStatus::Retrying.as_str()))
            .expression_attribute_values(":synced", s(LedgerStatus::Synced.as_str()))
            .expression_attribute_values(":dead", s(LedgerStatus::Dead.as_str()))
            .expression_attribute_values(":err", json(reason))
            .expression_attribute_values(":code", s(&reason.code))
            .expression_attribute_values(":next", ts(next_attempt_at))
            .expression_attribute_values(":now", ts(now))
            .expression_attribute_values(":none", AttributeValue::L(Vec::new()))
            .expression_attribute_values(
                ":entry",
                history_entry(&AttemptRecord::failed("retrying", reason, now)),
            )
            .send()
            .await;
        applied(res, "dynamodb:UpdateItem(fail)").map(|_| ())
    }

    async fn mark_dead(
        &self,
        delivery_id: &str,
        reason: &FailureReason,
        payload: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<bool, PortError> {
        self.dead(delivery_id, reason, payload, None, now).await
    }

    async fn mark_dead_letter(
        &self,
        delivery_id: &str,
        reason: &FailureReason,
        payload: Option<&str>,
        sent_at: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<bool, PortError> {
        self.dead(delivery_id, reason, payload, Some(sent_at), now)
            .await
    }

    async fn get(&self, delivery_id: &str) -> Result<Option<LedgerRecord>, PortError> {
        self.get_item(event_key(delivery_id))
            .await?
            .map(|i| to_record(&i))
            .transpose()
    }

    async fn deliveries(&self, event_id: &str) -> Result<Vec<LedgerRecord>, PortError> {
        let mut out = Vec::new();
        let mut start: Option<Item> = None;
        loop {
            let page = self
                .client
                .query()
                .table_name(&self.table)
                .key_condition_expression("pk = :pk AND begins_with(sk, :event)")
                .expression_attribute_values(":pk", event_pk(event_id))
                .expression_attribute_values(":event", s("EVENT"))
                .consistent_read(true)
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(|e| ddb_err("dynamodb:Query(deliveries)", e))?;
            for item in page.items() {
                out.push(to_record(item)?);
            }
            match page.last_evaluated_key {
                Some(k) if !k.is_empty() => start = Some(k),
                _ => break,
            }
        }
        Ok(out)
    }

    async fn erase_person(&self, key_hashes: &[String]) -> Result<Erased, PortError> {
        // One scan of the table's keys (an operator's command, not the hot path):
        // identity links, record items, conflicts and deliveries.
        struct Link {
            pk: String,
            crm: String,
            hash: String,
            record: Option<String>,
        }
        let mut links: Vec<Link> = Vec::new();
        let mut persons: Vec<(String, String, String)> = Vec::new(); // pk, crm, record
        let mut conflicts: Vec<(String, String, Vec<String>)> = Vec::new(); // pk, crm, records
        let mut events: Vec<(String, String, String)> = Vec::new(); // pk, sk, contact hash
        let mut start: Option<Item> = None;
        loop {
            let page = self
                .client
                .scan()
                .table_name(&self.table)
                .projection_expression("pk, sk, crm, crm_id, contact_key_hash, #r")
                .expression_attribute_names("#r", "records")
                .consistent_read(true)
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(|e| ddb_err("dynamodb:Scan(erase)", e))?;
            for item in page.items() {
                let (Some(pk), Some(sk)) = (get_s(item, "pk"), get_s(item, "sk")) else {
                    continue;
                };
                if let Some(rest) = pk.strip_prefix("CONTACT#") {
                    if let Some((crm, hash)) = rest.split_once('#') {
                        links.push(Link {
                            pk: pk.to_string(),
                            crm: crm.to_string(),
                            hash: hash.to_string(),
                            record: get_s(item, "crm_id").map(str::to_string),
                        });
                    }
                } else if let Some(rest) = pk.strip_prefix("PERSON#") {
                    if let Some((crm, record)) = rest.split_once('#') {
                        persons.push((pk.to_string(), crm.to_string(), record.to_string()));
                    }
                } else if pk.starts_with("CONFLICT#") {
                    let records = item
                        .get("records")
                        .and_then(|v| v.as_ss().ok())
                        .cloned()
                        .unwrap_or_default();
                    conflicts.push((
                        pk.to_string(),
                        get_s(item, "crm").unwrap_or_default().to_string(),
                        records,
                    ));
                } else if pk.starts_with("EVENT#") {
                    if let Some(h) = get_s(item, "contact_key_hash") {
                        events.push((pk.to_string(), sk.to_string(), h.to_string()));
                    }
                }
            }
            match page.last_evaluated_key {
                Some(k) if !k.is_empty() => start = Some(k),
                _ => break,
            }
        }
        let linked: Vec<(String, String, String)> = links
            .iter()
            .filter_map(|l| Some((l.crm.clone(), l.hash.clone(), l.record.clone()?)))
            .collect();
        let (hashes, owned) = lb_pipeline::erase::person_of(&linked, key_hashes);
        let mut out = Erased::default();
        let mut keys: Vec<(String, String)> = Vec::new();
        for l in links.iter().filter(|l| hashes.contains(&l.hash)) {
            keys.push((l.pk.clone(), "CONTACT".into()));
            out.identity_links += 1;
        }
        for (pk, crm, record) in &persons {
            if owned.contains(&(crm.clone(), record.clone())) {
                keys.push((pk.clone(), "PERSON".into()));
                out.records += 1;
            }
        }
        for (pk, crm, records) in &conflicts {
            if records
                .iter()
                .any(|r| owned.contains(&(crm.clone(), r.clone())))
            {
                keys.push((pk.clone(), "CONFLICT".into()));
                out.conflicts += 1;
            }
        }
        for (pk, sk, h) in &events {
            if hashes.contains(h) {
                keys.push((pk.clone(), sk.clone()));
                let event_id = pk.trim_start_matches("EVENT#");
                let connection = sk.strip_prefix("EVENT#");
                out.deliveries
                    .push(lb_domain::delivery_id(event_id, connection));
            }
        }
        for chunk in keys.chunks(25) {
            let mut writes = Vec::with_capacity(chunk.len());
            for (pk, sk) in chunk {
                let del = DeleteRequest::builder()
                    .key("pk", s(pk))
                    .key("sk", s(sk))
                    .build()
                    .map_err(|e| PortError::new(format!("dynamodb:DeleteRequest: {e}")))?;
                writes.push(WriteRequest::builder().delete_request(del).build());
            }
            let mut pending = Some(HashMap::from([(self.table.clone(), writes)]));
            for round in 0..UNPROCESSED_ROUNDS {
                let Some(items) = pending.take().filter(|m| m.values().any(|v| !v.is_empty()))
                else {
                    break;
                };
                unprocessed_pause(round).await;
                let res = self
                    .client
                    .batch_write_item()
                    .set_request_items(Some(items))
                    .send()
                    .await
                    .map_err(|e| ddb_err("dynamodb:BatchWriteItem(erase)", e))?;
                pending = res.unprocessed_items;
            }
            if pending.is_some_and(|m| m.values().any(|v| !v.is_empty())) {
                return Err(PortError::new(
                    "dynamodb:BatchWriteItem left items unprocessed; run the erasure again",
                ));
            }
        }
        out.deliveries.sort();
        out.key_hashes = hashes.into_iter().collect();
        Ok(out)
    }

    async fn list(&self, filter: &ListFilter) -> Result<Vec<LedgerRecord>, PortError> {
        let mut out = Vec::new();
        let mut start: Option<HashMap<String, AttributeValue>> = None;
        let mut key_cond = "#s = :s".to_string();
        if filter.since.is_some() {
            key_cond.push_str(" AND updated_at >= :since");
        }
        let mut filters = Vec::new();
        if filter.bot_id.is_some() {
            filters.push("bot_id = :bot");
        }
        if filter.reason.is_some() {
            filters.push("error_code = :code");
        }
        loop {
            let mut q = self
                .client
                .query()
                .table_name(&self.table)
                .index_name(STATUS_INDEX)
                .key_condition_expression(&key_cond)
                .expression_attribute_names("#s", "status")
                .expression_attribute_values(":s", s(filter.status.as_str()))
                .scan_index_forward(false)
                .set_exclusive_start_key(start.take());
            if let Some(t) = filter.since {
                q = q.expression_attribute_values(":since", ts(t));
            }
            if let Some(b) = &filter.bot_id {
                q = q.expression_attribute_values(":bot", s(b));
            }
            if let Some(c) = &filter.reason {
                q = q.expression_attribute_values(":code", s(c));
            }
            if !filters.is_empty() {
                q = q.filter_expression(filters.join(" AND "));
            }
            let page = q
                .send()
                .await
                .map_err(|e| ddb_err("dynamodb:Query(status)", e))?;
            for item in page.items() {
                out.push(to_record(item)?);
                if filter.limit.is_some_and(|l| out.len() >= l) {
                    return Ok(out);
                }
            }
            match page.last_evaluated_key {
                Some(k) if !k.is_empty() => start = Some(k),
                _ => return Ok(out),
            }
        }
    }

    async fn requeue(
        &self,
        delivery_id: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<u32>, PortError> {
        let res = self
            .update(event_key(delivery_id))
            .update_expression(
                "SET #s = :queued, attempts = :zero, replays = if_not_exists(replays, :zero) + :one, \
                 updated_at = :now, replayed_at_ms = :now_ms, expires_at = :pending \
                 REMOVE lease_until, next_attempt_at",
            )
            .condition_expression("#s = :dead AND attribute_exists(payload)")
            .expression_attribute_names("#s", "status")
            .expression_attribute_values(":queued", s(LedgerStatus::Queued.as_str()))
            .expression_attribute_values(":dead", s(LedgerStatus::Dead.as_str()))
            .expression_attribute_values(":zero", n(0))
            .expression_attribute_values(":one", n(1))
            .expression_attribute_values(":now", ts(now))
            .expression_attribute_values(":pending", expires(now, PENDING_RETENTION_DAYS))
            .expression_attribute_values(":now_ms", n(now.timestamp_millis()))
            .return_values(ReturnValue::UpdatedNew)
            .send()
            .await;
        match res {
            Ok(out) => Ok(Some(
                out.attributes
                    .as_ref()
                    .and_then(|a| get_n(a, "replays"))
                    .unwrap_or(1)
                    .max(1) as u32,
            )),
            Err(e) if is_condition_failure(&e) => Ok(None),
            Err(e) => Err(ddb_err("dynamodb:UpdateItem(requeue)", e)),
        }
    }

    async fn record_rejected(
        &self,
        r: &Rejection,
        window_start: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<RejectionTally, PortError> {
        let reason = r.reason();
        let mut put = self
            .client
            .put_item()
            .table_name(&self.table)
            .item(
                "pk",
                s(format!("REJECTED#{}#{}", r.id, now.timestamp_millis())),
            )
            .item("sk", s("REJECTED"))
            .item("event_id", s(&r.id))
            .item("status", s(LedgerStatus::Rejected.as_str()))
            .item("error_code", s(&reason.code))
            .item("last_error", json(&reason))
            .item("received_at", ts(now))
            .item("updated_at", ts(now))
            .item("expires_at", expires(now, SYNCED_RETENTION_DAYS));
        if let Some(b) = &r.bot_id {
            put = put.item("bot_id", s(b));
        }
        put.send()
            .await
            .map_err(|e| ddb_err("dynamodb:PutItem(rejected)", e))?;
        let window = format!(
            "REJECTIONS#{}",
            window_start.to_rfc3339_opts(SecondsFormat::Secs, true)
        );
        // Counted per bot: each bot's first rejection of a window is alerted
        // (a body too broken to name its bot counts under `COUNT`).
        let count = match &r.bot_id {
            Some(b) => format!("COUNT#{b}"),
            None => "COUNT".to_string(),
        };
        let out = self
            .update((s(window), s(count)))
            .update_expression("ADD rejections :one SET expires_at = :exp")
            .expression_attribute_values(":one", n(1))
            .expression_attribute_values(":exp", expires(now, 7))
            .return_values(ReturnValue::UpdatedNew)
            .send()
            .await
            .map_err(|e| ddb_err("dynamodb:UpdateItem(rejections)", e))?;
        Ok(RejectionTally {
            in_window: out
                .attributes
                .as_ref()
                .and_then(|a| get_n(a, "rejections"))
                .unwrap_or(1)
                .max(1) as u64,
        })
    }

    async fn identities(
        &self,
        crm: &str,
        key_hashes: &[String],
    ) -> Result<Vec<Option<String>>, PortError> {
        if key_hashes.is_empty() {
            return Ok(Vec::new());
        }
        // BatchGetItem refuses a request that names one key twice, and takes
        // at most 100 keys: distinct keys, in requests of 100.
        let mut distinct: Vec<&String> = key_hashes.iter().collect();
        distinct.sort();
        distinct.dedup();
        let mut found: HashMap<String, String> = HashMap::new();
        for chunk in distinct.chunks(100) {
            let keys = chunk
                .iter()
                .map(|h| {
                    let (pk, sk) = identity_key(crm, h);
                    HashMap::from([("pk".to_string(), pk), ("sk".to_string(), sk)])
                })
                .collect();
            let mut pending = Some(
                KeysAndAttributes::builder()
                    .set_keys(Some(keys))
                    .consistent_read(true)
                    .build()
                    .map_err(|e| PortError::new(format!("dynamodb:KeysAndAttributes: {e}")))?,
            );
            // BatchGetItem may leave keys unprocessed; a few rounds take them all.
            for round in 0..UNPROCESSED_ROUNDS {
                let Some(request) = pending.take() else { break };
                unprocessed_pause(round).await;
                let out = self
                    .client
                    .batch_get_item()
                    .request_items(&self.table, request)
                    .send()
                    .await
                    .map_err(|e| ddb_err("dynamodb:BatchGetItem(identities)", e))?;
                for item in out
                    .responses
                    .unwrap_or_default()
                    .remove(&self.table)
                    .unwrap_or_default()
                {
                    if let (Some(pk), Some(id)) = (get_s(&item, "pk"), get_s(&item, "crm_id")) {
                        found.insert(pk.to_string(), id.to_string());
                    }
                }
                pending = out
                    .unprocessed_keys
                    .and_then(|mut m| m.remove(&self.table))
                    .filter(|k| !k.keys().is_empty());
            }
            if pending.is_some() {
                return Err(PortError::new(
                    "dynamodb:BatchGetItem left keys unprocessed",
                ));
            }
        }
        Ok(key_hashes
            .iter()
            .map(|h| found.get(&format!("CONTACT#{crm}#{h}")).cloned())
            .collect())
    }

    /// The claims one by one in a fixed order (sorted hashes), then the
    /// record's lease: a refused step gives back what this call took, so the
    /// lock is all or nothing as others see it. (Not a TransactWriteItems: the
    /// same guarantee without a transaction's cost; moto, the local emulator,
    /// deep-copies every table on each transaction.)
    async fn lock_person(
        &self,
        lock: &PersonLock,
        now: DateTime<Utc>,
    ) -> Result<Locked, PortError> {
        let holder = s(&lock.holder);
        let now_ms = n(now.timestamp_millis());
        let until = n(lock.until.timestamp_millis());
        let mut claims = lock.claim.clone();
        claims.sort();
        claims.dedup();
        let mut taken: Vec<String> = Vec::new();
        for h in &claims {
            let res = self
                .update(identity_key(&lock.crm, h))
                .update_expression(
                    "SET claim_by = :h, claim_until = :until, updated_at = :now, expires_at = :exp",
                )
                .condition_expression(
                    "attribute_not_exists(crm_id) AND (attribute_not_exists(claim_until) OR \
                     claim_until < :now_ms OR claim_by = :h)",
                )
                .expression_attribute_values(":h", holder.clone())
                .expression_attribute_values(":until", until.clone())
                .expression_attribute_values(":now_ms", now_ms.clone())
                .expression_attribute_values(":now", ts(now))
                .expression_attribute_values(":exp", expires(now, PERSON_RETENTION_DAYS))
                .send()
                .await;
            match applied(res, "dynamodb:UpdateItem(claim)") {
                Ok(true) => taken.push(h.clone()),
                Ok(false) => {
                    self.give_back_claims(&lock.crm, &lock.holder, &taken).await;
                    return Ok(Locked::Busy);
                }
                Err(e) => {
                    self.give_back_claims(&lock.crm, &lock.holder, &taken).await;
                    return Err(e);
                }
            }
        }
        let Some(record) = &lock.record else {
            return Ok(Locked::Held { last_applied: None });
        };
        // One conditional update takes the lease and reads the record's state.
        let res = self
            .update(record_key(&lock.crm, record))
            .update_expression(
                "SET lease_by = :h, lease_until = :until, updated_at = :now, expires_at = :exp",
            )
            .condition_expression(
                "attribute_not_exists(lease_until) OR lease_until < :now_ms OR lease_by = :h",
            )
            .expression_attribute_values(":h", holder)
            .expression_attribute_values(":until", until)
            .expression_attribute_values(":now_ms", now_ms)
            .expression_attribute_values(":now", ts(now))
            .expression_attribute_values(":exp", expires(now, PERSON_RETENTION_DAYS))
            .return_values(ReturnValue::AllNew)
            .send()
            .await;
        match res {
            Ok(out) => Ok(Locked::Held {
                last_applied: out
                    .attributes
                    .as_ref()
                    .and_then(|a| get_n(a, "last_applied_ms"))
                    .and_then(DateTime::from_timestamp_millis),
            }),
            Err(e) if is_condition_failure(&e) => {
                self.give_back_claims(&lock.crm, &lock.holder, &taken).await;
                Ok(Locked::Busy)
            }
            Err(e) => {
                self.give_back_claims(&lock.crm, &lock.holder, &taken).await;
                Err(ddb_err("dynamodb:UpdateItem(lease record)", e))
            }
        }
    }

    async fn release_person(
        &self,
        release: &PersonRelease,
        now: DateTime<Utc>,
    ) -> Result<Vec<LinkedElsewhere>, PortError> {
        let crm = release.crm.as_str();
        let holder = s(&release.holder);
        let mut elsewhere = Vec::new();
        let mut linked: Vec<&str> = Vec::new();
        if let Some(w) = release.written.as_ref().filter(|w| {
            // A record just created under this holder's claims, still held:
            // nobody else can know it or link its identities (see `Written::created`).
            w.created
                && w.replaces.is_none()
                && release.records.is_empty()
                && w.link.iter().all(|h| release.claims.contains(h))
                && now + Duration::seconds(2) < release.held_until
        }) {
            let mut puts = Vec::with_capacity(w.link.len() + 1);
            for h in &w.link {
                let (pk, sk) = identity_key(crm, h);
                puts.push(HashMap::from([
                    ("pk".to_string(), pk),
                    ("sk".to_string(), sk),
                    ("crm".to_string(), s(crm)),
                    ("crm_id".to_string(), s(&w.record)),
                    ("updated_at".to_string(), ts(now)),
                    (
                        "expires_at".to_string(),
                        expires(now, PERSON_RETENTION_DAYS),
                    ),
                ]));
                linked.push(h);
            }
            if let Some(t) = w.applied {
                let (pk, sk) = record_key(crm, &w.record);
                puts.push(HashMap::from([
                    ("pk".to_string(), pk),
                    ("sk".to_string(), sk),
                    ("last_applied_ms".to_string(), n(t.timestamp_millis())),
                    ("last_applied_at".to_string(), ts(t)),
                    ("updated_at".to_string(), ts(now)),
                    (
                        "expires_at".to_string(),
                        expires(now, PERSON_RETENTION_DAYS),
                    ),
                ]));
            }
            self.put_all(puts, "dynamodb:BatchWriteItem(link new record)")
                .await?;
        } else if let Some(w) = &release.written {
            // A record the CRM no longer has gives its identities up to the new one.
            let gone = w.replaces.as_deref().unwrap_or(&w.record);
            for h in &w.link {
                let res = self
                    .update(identity_key(crm, h))
                    .update_expression(
                        "SET crm = :crm, crm_id = :rec, updated_at = :now, expires_at = :exp \
                         REMOVE claim_by, claim_until",
                    )
                    .condition_expression(
                        "attribute_not_exists(crm_id) OR crm_id = :rec OR crm_id = :gone",
                    )
                    .expression_attribute_values(":gone", s(gone))
                    .expression_attribute_values(":crm", s(crm))
                    .expression_attribute_values(":rec", s(&w.record))
                    .expression_attribute_values(":now", ts(now))
                    .expression_attribute_values(":exp", expires(now, PERSON_RETENTION_DAYS))
                    .send()
                    .await;
                if applied(res, "dynamodb:UpdateItem(link identity)")? {
                    linked.push(h);
                } else if let Some(other) = self
                    .get_item(identity_key(crm, h))
                    .await?
                    .and_then(|i| get_s(&i, "crm_id").map(str::to_string))
                {
                    elsewhere.push(LinkedElsewhere {
                        key_hash: h.clone(),
                        record: other,
                    });
                }
            }
            if let Some(t) = w.applied {
                // Moves forward only; the lease goes with it.
                let res = self
                    .update(record_key(crm, &w.record))
                    .update_expression(
                        "SET last_applied_ms = :t, last_applied_at = :at, updated_at = :now, \
                         expires_at = :exp REMOVE lease_by, lease_until",
                    )
                    .condition_expression(
                        "(attribute_not_exists(last_applied_ms) OR last_applied_ms <= :t) AND \
                         (attribute_not_exists(lease_by) OR lease_by = :h)",
                    )
                    .expression_attribute_values(":t", n(t.timestamp_millis()))
                    .expression_attribute_values(":at", ts(t))
                    .expression_attribute_values(":h", holder.clone())
                    .expression_attribute_values(":now", ts(now))
                    .expression_attribute_values(":exp", expires(now, PERSON_RETENTION_DAYS))
                    .send()
                    .await;
                applied(res, "dynamodb:UpdateItem(record applied)")?;
            }
        }
        // Whatever is still held: leases of records, claims not turned into links.
        for record in &release.records {
            let res = self
                .update(record_key(crm, record))
                .update_expression("REMOVE lease_by, lease_until")
                .condition_expression("lease_by = :h")
                .expression_attribute_values(":h", holder.clone())
                .send()
                .await;
            applied(res, "dynamodb:UpdateItem(release record)")?;
        }
        for h in release
            .claims
            .iter()
            .filter(|h| !linked.contains(&h.as_str()))
        {
            let res = self
                .update(identity_key(crm, h))
                .update_expression("REMOVE claim_by, claim_until")
                .condition_expression("claim_by = :h")
                .expression_attribute_values(":h", holder.clone())
                .send()
                .await;
            applied(res, "dynamodb:UpdateItem(release claim)")?;
        }
        Ok(elsewhere)
    }

    async fn record_conflict(
        &self,
        conflict: &IdentityConflict,
        now: DateTime<Utc>,
    ) -> Result<bool, PortError> {
        let records = conflict.records();
        let req = self
            .client
            .put_item()
            .table_name(&self.table)
            .item(
                "pk",
                s(format!("CONFLICT#{}#{}", conflict.crm, records.join("+"))),
            )
            .item("sk", s("CONFLICT"))
            .item("crm", s(&conflict.crm))
            .item("records", AttributeValue::Ss(records))
            .item("written_to", s(&conflict.written_to))
            .item("delivery_id", s(&conflict.delivery_id))
            .item("detail", s(&conflict.detail))
            .item("received_at", ts(now))
            .item("updated_at", ts(now))
            .item("expires_at", expires(now, PERSON_RETENTION_DAYS));
        put_if_absent(req, "dynamodb:PutItem(conflict)").await
    }

    async fn claim_once(&self, key: &str, now: DateTime<Utc>) -> Result<bool, PortError> {
        let req = self
            .client
            .put_item()
            .table_name(&self.table)
            .item("pk", s(format!("ONCE#{key}")))
            .item("sk", s("ONCE"))
            .item("updated_at", ts(now))
            .item("expires_at", expires(now, ONCE_RETENTION_DAYS));
        put_if_absent(req, "dynamodb:PutItem(once)").await
    }

    async fn record_progress(
        &self,
        delivery_id: &str,
        progress: &SyncOutcome,
        now: DateTime<Utc>,
    ) -> Result<(), PortError> {
        let res = self
            .update(event_key(delivery_id))
            .update_expression("SET outcome = :outcome, updated_at = :now")
            .condition_expression("attribute_exists(pk) AND #s <> :synced")
            .expression_attribute_names("#s", "status")
            .expression_attribute_values(":synced", s(LedgerStatus::Synced.as_str()))
            .expression_attribute_values(":outcome", json(progress))
            .expression_attribute_values(":now", ts(now))
            .send()
            .await;
        applied(res, "dynamodb:UpdateItem(progress)").map(|_| ())
    }
}

#[async_trait]
impl CallCounter for DynamoLedger {
    /// `CALLS#<connection>#<slice>`: one conditional `ADD` per call, no read.
    async fn count_call(
        &self,
        window: &str,
        limit: u32,
        expires: DateTime<Utc>,
    ) -> Result<bool, PortError> {
        let res = self
            .update((s(format!("CALLS#{window}")), s("CALLS")))
            .update_expression("ADD calls :one SET expires_at = :exp")
            .condition_expression("attribute_not_exists(calls) OR calls < :limit")
            .expression_attribute_values(":one", n(1))
            .expression_attribute_values(":limit", n(limit))
            .expression_attribute_values(":exp", n(expires.timestamp()))
            .send()
            .await;
        applied(res, "dynamodb:UpdateItem(calls)")
    }
}

fn token_key(key: &str) -> (AttributeValue, AttributeValue) {
    (s(format!("TOKEN#{key}")), s("TOKEN"))
}

#[async_trait]
impl TokenShare for DynamoLedger {
    async fn shared_token(&self, key: &str) -> Result<Option<SharedToken>, PortError> {
        let (pk, sk) = token_key(key);
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("pk", pk)
            .key("sk", sk)
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| ddb_err("dynamodb:GetItem(token)", e))?;
        Ok(out
            .item()
            .and_then(|i| get_s(i, "token"))
            .and_then(|t| serde_json::from_str(t).ok()))
    }

    async fn lease_refresh(&self, key: &str, until: DateTime<Utc>) -> Result<bool, PortError> {
        let now = Utc::now();
        let res = self
            .update(token_key(key))
            .update_expression(
                "SET lease_until = :until, expires_at = if_not_exists(expires_at, :exp)",
            )
            .condition_expression("attribute_not_exists(lease_until) OR lease_until < :now")
            .expression_attribute_values(":until", n(until.timestamp_millis()))
            .expression_attribute_values(":now", n(now.timestamp_millis()))
            .expression_attribute_values(":exp", expires(now, 1))
            .send()
            .await;
        applied(res, "dynamodb:UpdateItem(token lease)")
    }

    async fn share_token(&self, key: &str, token: &SharedToken) -> Result<(), PortError> {
        let res = self
            .update(token_key(key))
            .update_expression("SET #t = :token, expires_at = :exp REMOVE lease_until")
            .expression_attribute_names("#t", "token")
            .expression_attribute_values(":token", json(token))
            .expression_attribute_values(":exp", expires(token.expires_at, 1))
            .send()
            .await;
        applied(res, "dynamodb:UpdateItem(token)").map(|_| ())
    }
}
