//! Zoho's batch calls: many leads per request, each with its own answer.
//!
//! - People: one `POST /crm/v8/{module}/upsert` for the batch with
//!   `duplicate_check_fields: ["Email"]`: a person with an email is updated
//!   when a record holds it, else inserted; a remembered record is written by
//!   its `id` ([D] crm-oas v8 upsert request example carries `id`); a new
//!   phone-only person has nothing to match and is inserted. Zoho answers one
//!   `data` entry per record **in input order** (error entries name their
//!   input index in `json_path`, `$.data[1].Company`, [V] crm-oas v8
//!   `upsertRecords/examples/response-207-mixedresults.md`): each answer goes
//!   back to its item by position, checked against that index. Overall
//!   status 200 (all done), 207 (mixed) or 400 (all refused) ([V] same).
//! - `Last_Name` is mandatory for Contacts and Leads ([V] insert-records page,
//!   "System-defined mandatory fields"): it is the visitor's name's last word;
//!   a new phone-only person without a name is named after the number. A
//!   person known by email but not by name gets no `Last_Name` (an existing
//!   record keeps its own); if Zoho then says `MANDATORY_NOT_FOUND` for it
//!   (the record is new), the item is sent again named after its number or
//!   email's local part. A remembered id Zoho no longer has (`INVALID_DATA`
//!   on `id`) is sent again without it, as a person not yet known.
//! - Notes and deals: one `POST /crm/v8/Notes` / `POST /crm/v8/Deals` per 100,
//!   answers by position (201 / 207 / 400, [V] crm-oas v8
//!   `createNotesModule`, `createRecords`).
//! - A batch refused as a whole with a 4xx (not 401/403/429) is sent again one
//!   record at a time, so a bad record fails alone; a throttled or failed
//!   batch is every item's failure.
//! - Phone and WhatsApp numbers: one search for the batch,
//!   `criteria=((Phone:in:…)or(Mobile:in:…))` ("in" takes up to 100 values,
//!   [V] search page), each hit checked against the full number here. Search
//!   lags writes ("you may face the 204 NO CONTENT error due to a delay in
//!   indexing", [V] search page): the ledger's memory covers fresh records.

use lb_domain::{note, Phone, QueuedLead};
use lb_pipeline::{ContactRef, ContactUpsert, ContactWrite, CrmError, ErrorClass};
use reqwest::Method;
use serde_json::{json, Map, Value};
use tracing::warn;

use super::{id_of, path_id, ZohoCrm, NOTE_MAX_CHARS};

type Answer<T> = Result<T, CrmError>;

/// How many rounds one contact batch may take (a nameless new person and a
/// vanished remembered record each cost one more).
const MAX_ROUNDS: usize = 3;
/// Numbers per search (each is sent as E.164 and national: ≤ 100 `in` values).
const NUMBERS_PER_SEARCH: usize = 50;
/// The note's title.
const NOTE_TITLE: &str = "Chatbot conversation";
/// `Deal_Name` holds at most 120 characters (standard field length).
const DEAL_NAME_MAX: usize = 120;
/// The stage of a deal when the event names none (the first stage of Zoho's
/// standard pipeline).
pub(super) const DEFAULT_STAGE: &str = "Qualification";

/// One contact item on its way.
struct Pending<'a> {
    at: usize,
    item: &'a ContactUpsert,
    record: Map<String, Value>,
    /// The record carries `Last_Name`.
    named: bool,
}

/// What Zoho answered for one record.
enum RecordAnswer {
    Done(Value),
    Refused(Value, u16),
    Failed(CrmError),
}

impl ZohoCrm {
    pub(super) fn no_answer(&self, what: &str) -> CrmError {
        self.err(
            ErrorClass::Transient,
            None,
            format!("the batch call answered without this lead's {what}"),
        )
    }

    /// A per-record error entry as the item's error: Zoho's code, message and
    /// the field it names — never the value. `own`: the record written (a
    /// `DUPLICATE_DATA` naming another record is `taken_by` it).
    pub(super) fn record_error(
        &self,
        entry: &Value,
        status: u16,
        what: &str,
        own: Option<&str>,
    ) -> CrmError {
        let code = entry["code"].as_str().unwrap_or("ERROR");
        let describe = |e: &Value| {
            let mut s = format!(
                "{} \"{}\"",
                e["code"].as_str().unwrap_or("ERROR"),
                e["message"].as_str().unwrap_or("")
            );
            let d = &e["details"];
            if let Some(f) = d["api_name"].as_str() {
                s.push_str(&format!(" on field {f}"));
            }
            if let Some(n) = d["maximum_length"].as_u64() {
                s.push_str(&format!(" (at most {n} characters)"));
            }
            if let Some(t) = d["expected_data_type"].as_str() {
                s.push_str(&format!(" (expected {t})"));
            }
            if let Some(fields) = d["expected_fields"].as_array() {
                let names: Vec<&str> = fields
                    .iter()
                    .filter_map(|f| f["api_name"].as_str())
                    .collect();
                s.push_str(&format!(" (expected one of {})", names.join(", ")));
            }
            s
        };
        let mut message = format!("Zoho refused the {what}: {}", describe(entry));
        if let Some(inner) = entry["details"]["errors"].as_array() {
            let parts: Vec<String> = inner.iter().map(describe).collect();
            message.push_str(&format!(": {}", parts.join("; ")));
        }
        let mut e = self.err(ErrorClass::Permanent, Some(status), message);
        e.category = Some(code.to_string());
        let duplicates: Vec<&Value> = std::iter::once(entry)
            .chain(entry["details"]["errors"].as_array().into_iter().flatten())
            .filter(|e| e["code"] == "DUPLICATE_DATA")
            .collect();
        e.taken_by = duplicates.iter().find_map(|d| {
            let holder = d["details"]["duplicate_record"]["id"]
                .as_str()
                .or_else(|| d["details"]["id"].as_str())?;
            (Some(holder) != own).then(|| holder.to_string())
        });
        e
    }

    /// Sends `records` to `path` (`/Notes`, `/Deals`, `/{module}/upsert`) in
    /// one call: one answer per record, in order. Refused as a whole with a
    /// 4xx: one call per record.
    async fn send_records(
        &self,
        path: &str,
        records: Vec<Value>,
        extra: Option<(&str, Value)>,
    ) -> Vec<RecordAnswer> {
        if records.is_empty() {
            return Vec::new();
        }
        let mut body = json!({ "data": records });
        if let Some((k, v)) = &extra {
            body[*k] = v.clone();
        }
        let n = records_len(&body);
        let answer = match self.call(Method::POST, path, &[], Some(&body), true).await {
            Ok(a) => a,
            Err(e) if n > 1 && refused_as_a_whole(&e) => {
                let mut out = Vec::with_capacity(n);
                let records = body["data"].as_array().cloned().unwrap_or_default();
                for r in records {
                    let single = Box::pin(self.send_records(path, vec![r], extra.clone())).await;
                    out.extend(single);
                }
                return out;
            }
            Err(e) => return (0..n).map(|_| RecordAnswer::Failed(e.clone())).collect(),
        };
        let data = answer.body["data"].as_array().cloned().unwrap_or_default();
        let in_order = data.len() == n
            && data
                .iter()
                .enumerate()
                .all(|(i, entry)| json_path_index(entry).is_none_or(|at| at == i));
        if !in_order {
            warn!(crm = %self.cfg.name, sent = n, answered = data.len(), "a batch answer does not line up with its records");
            return (0..n)
                .map(|_| RecordAnswer::Failed(self.no_answer("result")))
                .collect();
        }
        data.into_iter()
            .map(|entry| {
                if entry["status"] == "success" && entry["code"] == "SUCCESS" {
                    RecordAnswer::Done(entry)
                } else {
                    RecordAnswer::Refused(entry, answer.status)
                }
            })
            .collect()
    }

    /// Creates notes or deals (`path` `/Notes` or `/Deals`): one answer per
    /// record, the created id or Zoho's refusal.
    pub(super) async fn create_many(
        &self,
        path: &str,
        records: Vec<Value>,
        what: &str,
    ) -> Vec<Answer<String>> {
        self.send_records(path, records, None)
            .await
            .into_iter()
            .map(|a| match a {
                RecordAnswer::Done(entry) => {
                    id_of(&entry["details"]).ok_or_else(|| self.no_answer(what))
                }
                RecordAnswer::Refused(entry, status) => {
                    Err(self.record_error(&entry, status, what, None))
                }
                RecordAnswer::Failed(e) => Err(e),
            })
            .collect()
    }

    /// Writes each person (see [`lb_pipeline::Crm::upsert_contact`]).
    pub(super) async fn upsert_batch(&self, items: &[ContactUpsert]) -> Vec<Answer<ContactRef>> {
        let mut out: Vec<Option<Answer<ContactRef>>> = items.iter().map(|_| None).collect();
        let module = match self.module() {
            Ok(m) => m.to_string(),
            Err(e) => return items.iter().map(|_| Err(e.clone())).collect(),
        };
        let mut round: Vec<Pending<'_>> = Vec::new();
        for (at, item) in items.iter().enumerate() {
            if let (ContactWrite::IdentityOnly, Some(id)) = (item.write, item.known_id.as_deref()) {
                // Known, and a newer event wrote its fields: no call at all.
                out[at] = Some(Ok(ContactRef {
                    id: id.to_string(),
                    created: false,
                }));
                continue;
            }
            if let Some(id) = item.known_id.as_deref() {
                if let Err(e) = path_id(id) {
                    out[at] = Some(Err(e));
                    continue;
                }
            }
            let (record, named) =
                self.contact_record(&item.lead, item.known_id.as_deref(), item.write, &module);
            round.push(Pending {
                at,
                item,
                record,
                named,
            });
        }
        if !round.is_empty() {
            match self.module_fields().await {
                Ok(fields) => round.retain(|p| {
                    let findings = fields.findings(&module, &p.record);
                    if findings.is_empty() {
                        return true;
                    }
                    warn!(crm = %self.cfg.name, findings = findings.len(), "schema drift: contact not written");
                    let e = CrmError::refused(
                        &self.cfg.name,
                        crate::hubspot::SCHEMA_DRIFT,
                        findings.join("; "),
                    );
                    out[p.at] = Some(Err(e));
                    false
                }),
                Err(e) => {
                    for p in round.drain(..) {
                        out[p.at] = Some(Err(e.clone()));
                    }
                }
            }
        }
        let path = format!("/{module}/upsert");
        for _ in 0..MAX_ROUNDS {
            if round.is_empty() {
                break;
            }
            let mut next = Vec::new();
            for chunk in chunked(round, super::BATCH_LIMIT) {
                let records: Vec<Value> = chunk
                    .iter()
                    .map(|p| Value::Object(p.record.clone()))
                    .collect();
                let answers = self
                    .send_records(
                        &path,
                        records,
                        Some(("duplicate_check_fields", json!(["Email"]))),
                    )
                    .await;
                for (mut p, a) in chunk.into_iter().zip(answers) {
                    match a {
                        RecordAnswer::Done(entry) => {
                            let id = id_of(&entry["details"]);
                            out[p.at] = Some(
                                id.map(|id| ContactRef {
                                    id,
                                    created: entry["action"] == "insert",
                                })
                                .ok_or_else(|| self.no_answer("contact")),
                            );
                        }
                        RecordAnswer::Refused(entry, status) => {
                            let field = entry["details"]["api_name"].as_str().unwrap_or_default();
                            let code = entry["code"].as_str().unwrap_or_default();
                            if code == "MANDATORY_NOT_FOUND" && field == "Last_Name" && !p.named {
                                if let Some(name) = placeholder_last_name(&p.item.lead) {
                                    p.record.insert("Last_Name".into(), json!(name));
                                    p.named = true;
                                    next.push(p);
                                    continue;
                                }
                            }
                            if code == "INVALID_DATA"
                                && field == "id"
                                && p.record.contains_key("id")
                            {
                                // The remembered record is gone (deleted or merged away).
                                warn!(crm = %self.cfg.name, "the remembered Zoho record no longer exists; writing the person as not yet known");
                                p.record.remove("id");
                                let (record, named) =
                                    self.contact_record(&p.item.lead, None, p.item.write, &module);
                                p.record = record;
                                p.named = named;
                                next.push(p);
                                continue;
                            }
                            if code == "INVALID_DATA" && !field.is_empty() {
                                // A field's definition may have changed: read the fields again next time.
                                self.fields.invalidate().await;
                            }
                            let own = p.item.known_id.as_deref();
                            out[p.at] =
                                Some(Err(self.record_error(&entry, status, "contact", own)));
                        }
                        RecordAnswer::Failed(e) => out[p.at] = Some(Err(e)),
                    }
                }
            }
            round = next;
        }
        for p in round {
            out[p.at] = Some(Err(self.no_answer("contact")));
        }
        out.into_iter()
            .map(|a| a.unwrap_or_else(|| Err(self.no_answer("contact"))))
            .collect()
    }

    /// The record an item writes, and whether it carries `Last_Name`.
    fn contact_record(
        &self,
        lead: &QueuedLead,
        known_id: Option<&str>,
        write: ContactWrite,
        module: &str,
    ) -> (Map<String, Value>, bool) {
        let e = &lead.event;
        let v = &e.visitor;
        let mut r = Map::new();
        if let Some(id) = known_id {
            r.insert("id".into(), json!(id));
        }
        if let Some(email) = &v.email {
            r.insert("Email".into(), json!(email.as_str()));
        }
        if let Some(phone) = &v.phone {
            r.insert("Phone".into(), json!(phone.as_str()));
        }
        if let Some(wa) = v.wa_id.as_ref().and_then(|w| w.as_phone()) {
            r.insert("Mobile".into(), json!(wa.as_str()));
        }
        let (first, last) = e.first_last_name();
        // "Mary Ann Lee" → Lee / Mary Ann; "Priya" → Priya.
        let (first, last) = match (first, last) {
            (f, Some(l)) => (f, Some(l)),
            (Some(f), None) => (None, Some(f)),
            (None, None) => (None, None),
        };
        let new_without_email = known_id.is_none() && v.email.is_none();
        if write == ContactWrite::Full {
            if let Some(f) = first.filter(|f| !f.trim().is_empty()) {
                r.insert("First_Name".into(), json!(f));
            }
            let (country, state) = if module == "Leads" {
                if let Some(c) = &v.company {
                    r.insert("Company".into(), json!(c));
                }
                ("Country", "State")
            } else {
                ("Mailing_Country", "Mailing_State")
            };
            if let Some(c) = &v.country {
                r.insert(country.into(), json!(c));
            }
            if let Some(s) = &v.state {
                r.insert(state.into(), json!(s));
            }
        }
        if write == ContactWrite::Full {
            crate::mapped::add_to(&mut r, self.cfg.mapping.as_ref(), lead);
        }
        let last = last.filter(|l| !l.trim().is_empty());
        let name = match (write, last) {
            (ContactWrite::Full, Some(l)) => Some(l),
            // Nothing to match: it is a new record, and Zoho needs a name.
            (_, l) if new_without_email => l.or_else(|| placeholder_last_name(lead)),
            _ => None,
        };
        let named = name.is_some();
        if let Some(n) = name {
            r.insert("Last_Name".into(), json!(n));
        }
        (r, named)
    }

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

    /// Records whose `Phone` or `Mobile` is one of `numbers`, each checked
    /// against the full number (Zoho's matching of stored formats is not
    /// documented, so both the E.164 and the national form are asked for).
    async fn search_by_phones(&self, numbers: &[Phone]) -> Answer<Vec<(Phone, String)>> {
        let module = self.module()?.to_string();
        let path = format!("/{module}/search");
        let mut out: Vec<(Phone, String)> = Vec::new();
        for chunk in numbers.chunks(NUMBERS_PER_SEARCH) {
            let mut values: Vec<String> = chunk
                .iter()
                .flat_map(|p| [p.as_str().to_string(), p.national_number()])
                .map(|v| escape_criteria(&v))
                .collect();
            values.sort();
            values.dedup();
            let list = values.join(",");
            let criteria = format!("((Phone:in:{list})or(Mobile:in:{list}))");
            for page in 1..=10u32 {
                let q = [
                    ("criteria", criteria.clone()),
                    ("fields", "Phone,Mobile".to_string()),
                    ("per_page", "200".to_string()),
                    ("page", page.to_string()),
                ];
                let a = self.call(Method::GET, &path, &q, None, false).await?;
                for r in a.body["data"].as_array().into_iter().flatten() {
                    let Some(id) = id_of(r) else { continue };
                    for number in chunk {
                        let holds = ["Phone", "Mobile"].iter().any(|f| {
                            r[*f]
                                .as_str()
                                .is_some_and(|stored| same_number(stored, number))
                        });
                        if holds && !out.iter().any(|(p, i)| p == number && *i == id) {
                            out.push((number.clone(), id.clone()));
                        }
                    }
                }
                if a.body["info"]["more_records"].as_bool() != Some(true) {
                    break;
                }
            }
        }
        Ok(out)
    }

    /// A note's content for a lead: the tagged HTML summary.
    pub(super) fn note_body(&self, lead: &QueuedLead) -> String {
        note::render_html(&lead.event, NOTE_MAX_CHARS)
    }

    /// One note input of `POST /crm/v8/Notes` ([V] crm-oas v8 createNotesModule request).
    pub(super) fn note_record(&self, contact_id: &str, body: &str) -> Result<Value, CrmError> {
        let module = self.module()?;
        Ok(json!({
            "Note_Title": NOTE_TITLE,
            "Note_Content": body,
            "Parent_Id": {"module": {"api_name": module}, "id": path_id(contact_id)?},
        }))
    }

    /// One deal input of `POST /crm/v8/Deals`: `Deal_Name` and `Stage` are
    /// mandatory ([V] insert-records page), `Contact_Name` links the contact;
    /// the description carries the event's tag.
    pub(super) fn deal_record(
        &self,
        contact_id: &str,
        lead: &QueuedLead,
    ) -> Result<Value, CrmError> {
        if self.module()? != "Contacts" {
            return Err(self.err(
                ErrorClass::Permanent,
                None,
                "Zoho deals link to contacts; this connection writes Leads, so no deal is created",
            ));
        }
        let e = &lead.event;
        let name = crate::deal::name(lead, DEAL_NAME_MAX);
        let description = crate::deal::description(lead, usize::MAX);
        let mut deal = json!({
            "Deal_Name": name,
            "Stage": e.crm_target.deal_stage.clone().unwrap_or_else(|| DEFAULT_STAGE.into()),
            "Contact_Name": {"id": path_id(contact_id)?},
            "Description": description,
        });
        if let Some(p) = &e.crm_target.deal_pipeline {
            deal["Pipeline"] = json!(p);
        }
        // The Deals module's standard `Amount` (currency) and `Closing_Date`
        // (date, yyyy-MM-dd) fields ([D] the v8 insert-records page's Deals
        // module; the simulator's Deals fields, `crm_sim::zoho::schema`).
        if let Some(a) = &e.crm_target.deal_amount {
            deal["Amount"] = a.to_json();
        }
        if let Some(d) = e.crm_target.deal_close_date {
            deal["Closing_Date"] = json!(d.format("%Y-%m-%d").to_string());
        }
        Ok(deal)
    }
}

/// The `Last_Name` of a person the event does not name: their number, else
/// the local part of their email (what messaging inboxes show).
fn placeholder_last_name(lead: &QueuedLead) -> Option<String> {
    let v = &lead.event.visitor;
    v.phone
        .as_ref()
        .map(|p| p.as_str().to_string())
        .or_else(|| {
            v.wa_id
                .as_ref()
                .and_then(|w| w.as_phone())
                .map(|p| p.as_str().to_string())
        })
        .or_else(|| {
            v.email
                .as_ref()
                .and_then(|e| e.as_str().split('@').next().map(str::to_string))
        })
        .filter(|s| !s.is_empty())
}

/// Escapes `(`, `)`, `,` and `\` in a criteria value ([V] search page).
fn escape_criteria(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for c in v.chars() {
        if matches!(c, '(' | ')' | ',' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// Whether a stored phone value is `number`: the same E.164 number when
/// written with its country code, else the same national number (with or
/// without a trunk `0`, or the country code without `+`).
fn same_number(stored: &str, number: &Phone) -> bool {
    if stored.trim_start().starts_with('+') {
        return Phone::parse(stored, None).is_ok_and(|p| p == *number);
    }
    let digits: String = stored.chars().filter(char::is_ascii_digit).collect();
    let national = number.national_number();
    let full = number
        .country_code()
        .map(|cc| format!("{cc}{national}"))
        .unwrap_or_default();
    !digits.is_empty() && (digits == national || digits == format!("0{national}") || digits == full)
}

/// The input index an error entry names in `json_path` (`$.data[3].Email`).
fn json_path_index(entry: &Value) -> Option<usize> {
    let path = entry["details"]["json_path"].as_str()?;
    let rest = path.strip_prefix("$.data[")?;
    rest.split(']').next()?.parse().ok()
}

fn records_len(body: &Value) -> usize {
    body["data"].as_array().map_or(0, Vec::len)
}

/// A 4xx about the request, not about waiting (429) or the token (401, 403).
fn refused_as_a_whole(e: &CrmError) -> bool {
    e.class == ErrorClass::Permanent
        && e.http_status
            .is_some_and(|s| (400..500).contains(&s) && s != 401 && s != 403)
}

fn chunked<T>(items: Vec<T>, size: usize) -> Vec<Vec<T>> {
    let mut out = Vec::new();
    let mut it = items.into_iter().peekable();
    while it.peek().is_some() {
        out.push(it.by_ref().take(size).collect());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn criteria_values_are_escaped() {
        assert_eq!(escape_criteria("+14155552671"), "+14155552671");
        assert_eq!(escape_criteria(r"a,b(c)\"), r"a\,b\(c\)\\");
    }

    #[test]
    fn stored_numbers_match_in_any_usual_format() {
        let n = Phone::parse("+14155552671", None).expect("phone");
        assert!(same_number("+1 415-555-2671", &n));
        assert!(same_number("(415) 555-2671", &n));
        assert!(same_number("14155552671", &n));
        assert!(!same_number("+44 415 555 2671", &n));
        assert!(!same_number("", &n));
    }

    #[test]
    fn json_paths_name_the_input_index() {
        assert_eq!(
            json_path_index(&json!({"details": {"json_path": "$.data[12].Email"}})),
            Some(12)
        );
        assert_eq!(
            json_path_index(&json!({"details": {"json_path": "$.duplicate_check_fields[0]"}})),
            None
        );
        assert_eq!(json_path_index(&json!({"details": {}})), None);
    }

    #[test]
    fn chunks_keep_order() {
        assert_eq!(
            chunked(vec![1, 2, 3, 4, 5], 2),
            vec![vec![1, 2], vec![3, 4], vec![5]]
        );
        assert!(chunked(Vec::<u8>::new(), 2).is_empty());
    }
}
