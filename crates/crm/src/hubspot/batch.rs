//! HubSpot's batch calls: many leads per request, each with its own answer.
//!
//! - People with an email and no remembered record: one
//!   `POST /crm/v3/objects/contacts/batch/upsert` (`idProperty=email`) for all
//!   of them; HubSpot answers 200, or 207 with the refused inputs in `errors`
//!   (each naming its `objectWriteTraceId`, the event id), so one refused lead
//!   fails alone with HubSpot's own message.
//! - Notes and deals: one `POST /crm/v3/objects/{notes,deals}/batch/create`
//!   with each input's association inline. The answer's order is not promised,
//!   so each created object is matched back by the event tag its body carries.
//! - Phone and WhatsApp numbers: one search with an `IN` filter per phone
//!   property instead of one search per number.
//!
//! Batches hold at most 100 inputs ("batch endpoints are limited to 100
//! inputs", HubSpot usage guidelines). A batch HubSpot refuses as a whole with
//! a 4xx (for example two inputs that resolve to one record, which HubSpot
//! refuses as non-retryable) is sent again one input at a time, so the bad
//! input fails alone; a throttled or failed batch is every input's failure.

// One `Result<_, CrmError>` per batch item is the port's shape; the error is
// the port's own type, shared by every adapter (boxing it is a port change).
#![allow(clippy::result_large_err)]

use std::collections::BTreeMap;

use lb_domain::{note, EventId, Phone, QueuedLead};
use lb_pipeline::{ContactRef, ContactUpsert, ContactWrite, CrmError, ErrorClass};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use super::schema::check_writes;
use super::{
    association, error_message, id_of, rejected_for_schema, same_number, HubSpotCrm,
    DEAL_TO_CONTACT, NOTE_MAX_CHARS, NOTE_TO_CONTACT,
};

/// HubSpot's batch size limit (usage guidelines: "limited to 100 inputs").
pub(super) const BATCH_LIMIT: usize = 100;
/// The phone properties a number is looked for in.
const PHONE_PROPS: [&str; 3] = ["phone", "mobilephone", "hs_whatsapp_phone_number"];
/// Results per search page (the search API's maximum `limit`).
const SEARCH_PAGE: usize = 200;

type Answer<T> = Result<T, CrmError>;

/// One contact write, ready to send.
pub(super) struct Prepared<'a> {
    pub(super) at: usize,
    pub(super) lead: &'a QueuedLead,
    pub(super) known_id: Option<&'a str>,
    pub(super) props: BTreeMap<String, String>,
}

impl HubSpotCrm {
    /// The records holding each lead's phone and WhatsApp numbers, as
    /// [`lb_pipeline::Crm::find_contacts`] answers for one lead.
    pub(super) async fn find_batch(
        &self,
        leads: &[QueuedLead],
    ) -> Vec<Answer<Vec<(usize, String)>>> {
        crate::lookup::find_by_numbers(
            leads,
            |all| async move { self.search_by_phones(&all).await },
        )
        .await
    }

    /// Contacts whose `phone`, `mobilephone` or `hs_whatsapp_phone_number` is
    /// one of `numbers`. HubSpot matches phone values on the area code and local
    /// number only ("You should refrain from including the country code in your
    /// search", CRM search guide, Limits), so the search is by national number,
    /// one filter group per property with the numbers `IN` it (at most 100
    /// values each), every page read; each candidate is checked against the
    /// full number here.
    async fn search_by_phones(&self, numbers: &[Phone]) -> Answer<Vec<(Phone, String)>> {
        let mut nationals: Vec<String> = numbers.iter().map(Phone::national_number).collect();
        nationals.sort();
        nationals.dedup();
        let mut out: Vec<(Phone, String)> = Vec::new();
        for chunk in nationals.chunks(BATCH_LIMIT) {
            let groups: Vec<Value> = PHONE_PROPS
                .iter()
                .map(|p| json!({"filters": [{"propertyName": p, "operator": "IN", "values": chunk}]}))
                .collect();
            let mut after: Option<String> = None;
            loop {
                let mut body = json!({"filterGroups": groups, "properties": PHONE_PROPS, "limit": SEARCH_PAGE});
                if let Some(a) = &after {
                    body["after"] = json!(a);
                }
                let (_, v) = self
                    .call(Method::POST, "/crm/v3/objects/contacts/search", Some(&body))
                    .await?;
                for r in v["results"].as_array().into_iter().flatten() {
                    let Some(id) = id_of(r) else { continue };
                    for number in numbers {
                        let holds = PHONE_PROPS.iter().any(|p| {
                            r["properties"][*p]
                                .as_str()
                                .is_some_and(|stored| same_number(stored, number))
                        });
                        if holds && !out.iter().any(|(p, i)| p == number && *i == id) {
                            out.push((number.clone(), id.clone()));
                        }
                    }
                }
                match v["paging"]["next"]["after"].as_str() {
                    Some(a) if !a.is_empty() && after.as_deref() != Some(a) => {
                        after = Some(a.to_string())
                    }
                    _ => break,
                }
            }
        }
        Ok(out)
    }

    /// Writes each person (see [`lb_pipeline::Crm::upsert_contact`]): every
    /// property checked against the schema first, new people with an email in
    /// one batch upsert, the rest one call each.
    pub(super) async fn upsert_batch(&self, items: &[ContactUpsert]) -> Vec<Answer<ContactRef>> {
        let mut out: Vec<Option<Answer<ContactRef>>> = items.iter().map(|_| None).collect();
        let mut ready: Vec<(Prepared<'_>, Vec<super::Write>)> = Vec::new();
        for (at, item) in items.iter().enumerate() {
            if let (ContactWrite::IdentityOnly, Some(id)) = (item.write, item.known_id.as_deref()) {
                // The record is known and a newer event wrote its fields: no call at all.
                out[at] = Some(Ok(ContactRef {
                    id: id.to_string(),
                    created: false,
                }));
                continue;
            }
            let writes = self.contact_writes(&item.lead, item.write);
            let props = writes
                .iter()
                .map(|w| (w.property.clone(), w.value.clone()))
                .collect();
            let prepared = Prepared {
                at,
                lead: &item.lead,
                known_id: item.known_id.as_deref(),
                props,
            };
            ready.push((prepared, writes));
        }
        if !ready.is_empty() {
            match self.contact_schema(false).await {
                Ok(schema) => ready.retain(|(p, writes)| {
                    let findings = check_writes(&schema, writes);
                    if findings.is_empty() {
                        return true;
                    }
                    out[p.at] = Some(Err(self.drift(&findings)));
                    false
                }),
                Err(e) => {
                    for (p, _) in ready.drain(..) {
                        out[p.at] = Some(Err(e.clone()));
                    }
                }
            }
        }
        let (writes, prepared): (Vec<_>, Vec<_>) =
            ready.into_iter().map(|(p, w)| ((p.at, w), p)).unzip();
        for (at, answer) in self.write_prepared(prepared).await {
            out[at] = Some(answer);
        }
        // A refusal that looks like a schema change: read the schema again once,
        // so the event says what changed and the next one is stopped up front.
        let stale: Vec<usize> = out
            .iter()
            .enumerate()
            .filter(|(_, a)| matches!(a, Some(Err(e)) if rejected_for_schema(e)))
            .map(|(i, _)| i)
            .collect();
        if !stale.is_empty() {
            match self.contact_schema(true).await {
                Ok(fresh) => {
                    for (at, w) in writes.iter().filter(|(at, _)| stale.contains(at)) {
                        let findings = check_writes(&fresh, w);
                        if findings.is_empty() {
                            continue;
                        }
                        // What changed, then HubSpot's own words for the refusal.
                        let mut drift = self.drift(&findings);
                        if let Some(Err(said)) = &out[*at] {
                            drift.message =
                                format!("{}; HubSpot said: {}", drift.message, said.message);
                        }
                        out[*at] = Some(Err(drift));
                    }
                }
                Err(_) => self.schema.invalidate().await,
            }
        }
        out.into_iter()
            .map(|a| a.unwrap_or_else(|| Err(self.no_answer("contact"))))
            .collect()
    }

    /// Remembered records go in one batch update (what it does not write is
    /// written on its own, where a 404 falls back to an upsert and a 409 names
    /// the record holding the email); new people with an email go in one
    /// batch upsert; people without one are created.
    async fn write_prepared(
        &self,
        prepared: Vec<Prepared<'_>>,
    ) -> Vec<(usize, Answer<ContactRef>)> {
        let mut out = Vec::new();
        let mut by_email: Vec<(Prepared<'_>, String)> = Vec::new();
        let mut singles: Vec<Prepared<'_>> = Vec::new();
        for p in prepared {
            let email = p
                .lead
                .event
                .visitor
                .email
                .as_ref()
                .map(|e| e.as_str().to_string());
            match email {
                // One input per email: two that resolve to one record fail the whole batch.
                Some(email)
                    if p.known_id.is_none() && !by_email.iter().any(|(_, e)| *e == email) =>
                {
                    by_email.push((p, email))
                }
                _ => singles.push(p),
            }
        }
        if !by_email.is_empty() {
            let answers = self.upsert_by_emails(&by_email).await;
            match answers {
                Some(answers) => {
                    out.extend(by_email.iter().map(|(p, _)| p.at).zip(answers));
                }
                // Refused as a whole: one at a time, so the bad input fails alone.
                None => singles.extend(by_email.into_iter().map(|(p, _)| p)),
            }
        }
        // Remembered records: one batch update; any input it did not write
        // (refused, unknown id, email taken) is written on its own below,
        // where a 404 and a 409 have their meaning.
        let (known, mut singles): (Vec<_>, Vec<_>) =
            singles.into_iter().partition(|p| p.known_id.is_some());
        if known.len() > 1 {
            let written = self.update_by_ids(&known).await;
            for (p, answer) in known.into_iter().zip(written) {
                match answer {
                    Some(a) => out.push((p.at, a)),
                    None => singles.push(p),
                }
            }
        } else {
            singles.extend(known);
        }
        for p in singles {
            let answer = self.write_contact(p.lead, p.known_id, &p.props).await;
            out.push((p.at, answer));
        }
        out
    }

    /// One batch update of remembered records by id (`POST
    /// /crm/v3/objects/contacts/batch/update`, up to 100: D1, the contacts
    /// reference, whose 207 answer lists per-input `errors`). Each input's
    /// answer is its result, matched by `objectWriteTraceId` (else by id);
    /// `None` for an input the batch did not write, which the caller writes
    /// on its own (a batch refused as a whole: `None` for every input).
    async fn update_by_ids(&self, items: &[Prepared<'_>]) -> Vec<Option<Answer<ContactRef>>> {
        let inputs: Vec<Value> = items
            .iter()
            .map(|p| {
                json!({
                    "id": p.known_id,
                    "objectWriteTraceId": p.lead.event.event_id.as_str(),
                    "properties": p.props,
                })
            })
            .collect();
        let body = json!({ "inputs": inputs });
        let v = match self
            .call(
                Method::POST,
                "/crm/v3/objects/contacts/batch/update",
                Some(&body),
            )
            .await
        {
            Ok((_, v)) => v,
            Err(e) if refused_as_a_whole(&e) => return items.iter().map(|_| None).collect(),
            Err(e) => return items.iter().map(|_| Some(Err(e.clone()))).collect(),
        };
        let results = v["results"].as_array().cloned().unwrap_or_default();
        items
            .iter()
            .map(|p| {
                let trace = p.lead.event.event_id.as_str();
                results
                    .iter()
                    .find(|r| r["objectWriteTraceId"] == trace)
                    .or_else(|| results.iter().find(|r| r["id"].as_str() == p.known_id))
                    .and_then(id_of)
                    .map(|id| Ok(ContactRef { id, created: false }))
            })
            .collect()
    }

    /// One batch upsert by email: one answer per input, or `None` when HubSpot
    /// refused the batch as a whole with a 4xx and it held more than one input.
    pub(super) async fn upsert_by_emails(
        &self,
        items: &[(Prepared<'_>, String)],
    ) -> Option<Vec<Answer<ContactRef>>> {
        let inputs: Vec<Value> = items
            .iter()
            .map(|(p, email)| {
                json!({
                    "id": email,
                    "idProperty": "email",
                    "objectWriteTraceId": p.lead.event.event_id.as_str(),
                    "properties": p.props,
                })
            })
            .collect();
        let body = json!({ "inputs": inputs });
        let v = match self
            .call(
                Method::POST,
                "/crm/v3/objects/contacts/batch/upsert",
                Some(&body),
            )
            .await
        {
            Ok((_, v)) => v,
            Err(e) if items.len() > 1 && refused_as_a_whole(&e) => return None,
            Err(e) => return Some(items.iter().map(|_| Err(e.clone())).collect()),
        };
        let results = v["results"].as_array().cloned().unwrap_or_default();
        let errors = v["errors"].as_array().cloned().unwrap_or_default();
        let answers = items
            .iter()
            .map(|(p, email)| {
                let trace = p.lead.event.event_id.as_str();
                let result = results
                    .iter()
                    .find(|r| r["objectWriteTraceId"] == trace)
                    .or_else(|| {
                        results.iter().find(|r| {
                            r["properties"]["email"]
                                .as_str()
                                .is_some_and(|e| e.eq_ignore_ascii_case(email))
                        })
                    });
                if let Some(r) = result {
                    return id_of(r)
                        .map(|id| ContactRef {
                            id,
                            created: r["new"].as_bool().unwrap_or(false),
                        })
                        .ok_or_else(|| {
                            self.err(ErrorClass::Transient, Some(200), "upsert result has no id")
                        });
                }
                // Its own error (by trace id); a lone input owns an error without one.
                let own = errors.iter().find(|e| {
                    e["context"]["objectWriteTraceId"]
                        .as_array()
                        .map_or(items.len() == 1, |ids| ids.iter().any(|i| i == trace))
                });
                match own {
                    Some(err) => {
                        let mut e = self.err(
                            ErrorClass::Permanent,
                            Some(207),
                            error_message(StatusCode::MULTI_STATUS, err, ""),
                        );
                        e.category = err["category"].as_str().map(str::to_string);
                        Err(e)
                    }
                    None => Err(self.no_answer("contact")),
                }
            })
            .collect();
        Some(answers)
    }

    /// One batch create of notes or deals (`kind`), each associated with its
    /// contact inline; each created object matched back by the event tag in
    /// `tagged` (its body or description).
    pub(super) async fn create_batch(
        &self,
        kind: &str,
        tagged: &str,
        inputs: Vec<(EventId, Value)>,
    ) -> Option<Vec<Answer<String>>> {
        let body = json!({"inputs": inputs.iter().map(|(_, i)| i).collect::<Vec<_>>()});
        let v = match self
            .call(
                Method::POST,
                &format!("/crm/v3/objects/{kind}/batch/create"),
                Some(&body),
            )
            .await
        {
            Ok((_, v)) => v,
            Err(e) if inputs.len() > 1 && refused_as_a_whole(&e) => return None,
            Err(e) => return Some(inputs.iter().map(|_| Err(e.clone())).collect()),
        };
        let results = v["results"].as_array().cloned().unwrap_or_default();
        let errors = v["errors"].as_array().cloned().unwrap_or_default();
        Some(
            inputs
                .iter()
                .map(|(event_id, _)| {
                    let created = results.iter().find(|r| {
                        r["properties"][tagged]
                            .as_str()
                            .is_some_and(|b| note::carries_tag(b, event_id))
                    });
                    match created.and_then(id_of) {
                        Some(id) => Ok(id),
                        // Refused alone (a 207): HubSpot's own message. Anything else
                        // unaccounted for is looked up by its tag on the next attempt.
                        None if errors.len() == 1 && results.len() + 1 == inputs.len() => Err(self
                            .err(
                                ErrorClass::Permanent,
                                Some(207),
                                error_message(StatusCode::MULTI_STATUS, &errors[0], ""),
                            )),
                        None => Err(self.no_answer(kind)),
                    }
                })
                .collect(),
        )
    }

    /// The body of `POST /crm/v3/objects/notes` (and of one batch input).
    pub(super) fn note_input(&self, contact_id: &str, lead: &QueuedLead) -> Value {
        json!({
            "properties": {
                "hs_timestamp": lead.event.occurred_at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
                "hs_note_body": note::render_html(&lead.event, NOTE_MAX_CHARS),
            },
            "associations": [association(contact_id, NOTE_TO_CONTACT)],
        })
    }

    /// The body of `POST /crm/v3/objects/deals` (and of one batch input).
    pub(super) fn deal_input(&self, contact_id: &str, lead: &QueuedLead) -> Value {
        let e = &lead.event;
        let description = crate::deal::description(lead, usize::MAX);
        let mut input = json!({
            "properties": {
                "dealname": crate::deal::name(lead, usize::MAX),
                "dealstage": e.crm_target.deal_stage.clone().unwrap_or_else(|| self.cfg.default_deal_stage.clone()),
                "pipeline": e.crm_target.deal_pipeline.clone().unwrap_or_else(|| self.cfg.default_deal_pipeline.clone()),
                "description": description,
            },
            "associations": [association(contact_id, DEAL_TO_CONTACT)],
        });
        // `amount` is a number property and `closedate` a datetime one (midnight
        // UTC of the day): HubSpot's default deal properties.
        if let Some(a) = &e.crm_target.deal_amount {
            input["properties"]["amount"] = json!(a.as_str());
        }
        if let Some(d) = e.crm_target.deal_close_date {
            input["properties"]["closedate"] = json!(format!("{d}T00:00:00.000Z"));
        }
        input
    }

    fn no_answer(&self, what: &str) -> CrmError {
        self.err(
            ErrorClass::Transient,
            None,
            format!("the batch call answered without this lead's {what}"),
        )
    }
}

/// A 4xx that is about the request, not about waiting (429) or the token (401).
fn refused_as_a_whole(e: &CrmError) -> bool {
    e.class == ErrorClass::Permanent
        && e.http_status
            .is_some_and(|s| (400..500).contains(&s) && s != 401 && s != 403)
}
