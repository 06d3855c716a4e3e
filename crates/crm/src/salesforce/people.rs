//! People: one answer per item, in order (see the adapter's docs).
//!
//! Each item has a target: its email (upsert by `Email`), a known record id
//! (update), or nothing (create). Per round, the email items go in one
//! collections upsert per 200 (a lone one by the single-row upsert), the
//! known ones in one collections update, the new ones in one collections
//! create; answers by position. What Salesforce answers can send an item to
//! another round (at most [`MAX_ROUNDS`]): a new record missing its name
//! (placeholders added), a converted Lead (its Contact written instead), a
//! remembered record gone (written as not yet known), a single-row upsert
//! answered 404 (sent again in a collection: some email domains collide with
//! file extensions in a URL, [V] REST upsert page's note on `.inc`).

use std::collections::BTreeSet;

use lb_domain::{Phone, QueuedLead};
use lb_pipeline::{ContactRef, ContactUpsert, ContactWrite, CrmError, ErrorClass};
use reqwest::Method;
use serde_json::{json, Map, Value};
use tracing::warn;

use super::schema::Writing;
use super::{first_error, soql_quote, Person, SalesforceCrm, BATCH_LIMIT};

type Answer<T> = Result<T, CrmError>;

/// Rounds one batch may take.
const MAX_ROUNDS: usize = 4;
/// Numbers per phone query (each sent as E.164 and national: 100 values).
const NUMBERS_PER_QUERY: usize = 50;
/// A Lead's `Company` when the event names none (Company is required).
pub(super) const NO_COMPANY: &str = "[not provided]";

#[derive(Clone, Debug, PartialEq, Eq)]
enum Target {
    Email(String),
    Id(Person, String),
    Create,
}

struct Pending<'a> {
    at: usize,
    item: &'a ContactUpsert,
    target: Target,
    record: Map<String, Value>,
    /// Placeholders for the required name fields were added.
    named: bool,
    /// A converted Lead was followed, or a vanished record dropped: no second time.
    retargeted: bool,
    /// The single-row upsert answered 404: use a collection.
    no_single: bool,
}

/// What one record's write came to.
enum Outcome {
    Done(String, bool),
    Refused(String, String, Vec<String>, u16),
    Multiple(Vec<String>, u16),
    Failed(CrmError),
}

/// Percent-encodes a path segment (an email in the single-row upsert URL).
fn encode_segment(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' | b'@' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The ids in a `DUPLICATE_EXTERNAL_ID` message (`… [id1, id2]`) or in the
/// 300's record URLs.
fn ids_in(text: &str) -> Vec<String> {
    let mut out: Vec<String> = text
        .split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|w| {
            (w.len() == 15 || w.len() == 18)
                && w.bytes().any(|b| b.is_ascii_digit())
                && w.starts_with("00")
        })
        .map(str::to_string)
        .collect();
    out.dedup();
    out
}

/// Whether a stored phone value is `number` (E.164 with `+`, or the national
/// number with or without a trunk `0` or the country code).
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

/// The `LastName` of a person the event does not name: their number, else
/// the local part of their email.
fn placeholder_last_name(lead: &QueuedLead) -> String {
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
        .unwrap_or_else(|| "Unknown".to_string())
}

impl SalesforceCrm {
    /// The fields an item writes to a record of `obj`. `with_email`: the
    /// email goes in the body (not for an upsert by Email: it is the key).
    fn person_record(
        &self,
        lead: &QueuedLead,
        obj: Person,
        write: ContactWrite,
        with_email: bool,
    ) -> Map<String, Value> {
        let e = &lead.event;
        let v = &e.visitor;
        let mut r = Map::new();
        if with_email {
            if let Some(email) = &v.email {
                r.insert("Email".into(), json!(email.to_ascii()));
            }
        }
        if let Some(p) = &v.phone {
            r.insert("Phone".into(), json!(p.as_str()));
        }
        if let Some(wa) = v.wa_id.as_ref().and_then(|w| w.as_phone()) {
            r.insert("MobilePhone".into(), json!(wa.as_str()));
        }
        if write == ContactWrite::Full {
            let (first, last) = e.first_last_name();
            // "Mary Ann Lee" → Lee / Mary Ann; "Priya" → Priya.
            let (first, last) = match (first, last) {
                (f, Some(l)) => (f, Some(l)),
                (Some(f), None) => (None, Some(f)),
                (None, None) => (None, None),
            };
            if let Some(f) = first.filter(|f| !f.trim().is_empty()) {
                r.insert("FirstName".into(), json!(f));
            }
            if let Some(l) = last.filter(|l| !l.trim().is_empty()) {
                r.insert("LastName".into(), json!(l));
            }
            let (country, state) = match obj {
                Person::Lead => {
                    if let Some(c) = v.company.as_ref().filter(|c| !c.trim().is_empty()) {
                        r.insert("Company".into(), json!(c));
                    }
                    ("Country", "State")
                }
                Person::Contact => ("MailingCountry", "MailingState"),
            };
            if let Some(c) = &v.country {
                r.insert(country.into(), json!(c));
            }
            if let Some(s) = &v.state {
                r.insert(state.into(), json!(s));
            }
            crate::mapped::add_to(&mut r, self.cfg.mapping.as_ref(), lead);
        }
        r
    }

    /// Adds what a new record of `obj` must have and the event does not say.
    fn add_placeholders(&self, p: &mut Pending<'_>, obj: Person) {
        if !p.record.contains_key("LastName") {
            p.record.insert(
                "LastName".into(),
                json!(placeholder_last_name(&p.item.lead)),
            );
        }
        if obj == Person::Lead && !p.record.contains_key("Company") {
            p.record.insert("Company".into(), json!(NO_COMPANY));
        }
        p.named = true;
    }

    /// The values an item sends (cut out of Salesforce's messages).
    fn sent_values(p: &Pending<'_>) -> Vec<String> {
        let mut v: Vec<String> = p
            .record
            .values()
            .filter_map(|x| x.as_str().map(str::to_string))
            .collect();
        if let Target::Email(e) = &p.target {
            v.push(e.clone());
        }
        if let Some(e) = &p.item.lead.event.visitor.email {
            v.push(e.as_str().to_string());
        }
        v
    }

    fn target_object(&self, p: &Pending<'_>, person: Person) -> Person {
        match &p.target {
            Target::Id(o, _) => *o,
            _ => person,
        }
    }

    /// Writes each person (see [`lb_pipeline::Crm::upsert_contact`]).
    pub(super) async fn upsert_batch(&self, items: &[ContactUpsert]) -> Vec<Answer<ContactRef>> {
        let mut out: Vec<Option<Answer<ContactRef>>> = items.iter().map(|_| None).collect();
        let person = match self.person() {
            Ok(p) => p,
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
            let email = item.lead.event.visitor.email.as_ref().map(|e| e.to_ascii());
            let target = match (item.known_id.as_deref(), email) {
                (Some(id), _) => match super::checked_id(&self.cfg.name, id) {
                    Ok(id) => Target::Id(Person::of_id(id).unwrap_or(person), id.to_string()),
                    Err(e) => {
                        out[at] = Some(Err(e));
                        continue;
                    }
                },
                (None, Some(e)) => Target::Email(e),
                (None, None) => Target::Create,
            };
            let obj = match &target {
                Target::Id(o, _) => *o,
                _ => person,
            };
            let record = self.person_record(
                &item.lead,
                obj,
                item.write,
                !matches!(target, Target::Email(_)),
            );
            let mut p = Pending {
                at,
                item,
                target,
                record,
                named: false,
                retargeted: false,
                no_single: false,
            };
            if p.target == Target::Create {
                // Nothing to match: a new record, which needs its name.
                self.add_placeholders(&mut p, person);
            }
            round.push(p);
        }
        for _ in 0..MAX_ROUNDS {
            if round.is_empty() {
                break;
            }
            round = self.drift_check(round, person, &mut out).await;
            let (by_email, rest): (Vec<_>, Vec<_>) = round
                .into_iter()
                .partition(|p| matches!(p.target, Target::Email(_)));
            let (by_id, to_create): (Vec<_>, Vec<_>) = rest
                .into_iter()
                .partition(|p| matches!(p.target, Target::Id(..)));
            let mut answered: Vec<(Pending<'_>, Outcome)> = Vec::new();
            answered.extend(self.send_upserts(by_email, person).await);
            answered.extend(self.send_updates(by_id).await);
            answered.extend(self.send_creates(to_create, person).await);
            round = self.settle(answered, person, &mut out).await;
        }
        for p in round {
            out[p.at] = Some(Err(self.no_answer("contact")));
        }
        out.into_iter()
            .map(|a| a.unwrap_or_else(|| Err(self.no_answer("contact"))))
            .collect()
    }

    /// Drops (with `schema_drift`) the items whose write the describe says
    /// Salesforce would refuse.
    async fn drift_check<'a>(
        &self,
        round: Vec<Pending<'a>>,
        person: Person,
        out: &mut [Option<Answer<ContactRef>>],
    ) -> Vec<Pending<'a>> {
        let mut keep = Vec::with_capacity(round.len());
        for p in round {
            let obj = self.target_object(&p, person);
            let fields = match self.fields_of(obj.name()).await {
                Ok(f) => f,
                Err(e) => {
                    out[p.at] = Some(Err(e));
                    continue;
                }
            };
            let (how, key) = match &p.target {
                Target::Email(_) => (Writing::Upsert, Some("Email")),
                Target::Id(..) => (Writing::Update, None),
                Target::Create => (Writing::Create, None),
            };
            let findings = fields.findings(obj.name(), &p.record, how, key);
            if findings.is_empty() {
                keep.push(p);
            } else {
                warn!(crm = %self.cfg.name, findings = findings.len(), "schema drift: contact not written");
                let e = CrmError::refused(
                    &self.cfg.name,
                    crate::hubspot::SCHEMA_DRIFT,
                    findings.join("; "),
                );
                out[p.at] = Some(Err(e));
            }
        }
        keep
    }

    /// Upserts by Email: a lone item by the single-row upsert, else collections.
    async fn send_upserts<'a>(
        &self,
        items: Vec<Pending<'a>>,
        person: Person,
    ) -> Vec<(Pending<'a>, Outcome)> {
        if items.is_empty() {
            return Vec::new();
        }
        let obj = person.name();
        if items.len() == 1 && !items[0].no_single {
            let p = items.into_iter().next().expect("one");
            let Target::Email(email) = &p.target else {
                unreachable!("partitioned by target")
            };
            let path = format!("/sobjects/{obj}/Email/{}", encode_segment(email));
            let body = Value::Object(p.record.clone());
            let outcome = match self
                .call_answer(Method::PATCH, &path, &[], Some(&body))
                .await
            {
                Err(e) => Outcome::Failed(e),
                Ok(a) if a.status == 300 => {
                    let urls: Vec<String> = a
                        .body
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter_map(|u| {
                            u.as_str().or_else(|| u["url"].as_str()).map(str::to_string)
                        })
                        .collect();
                    Outcome::Multiple(ids_in(&urls.join(" ")), 300)
                }
                Ok(a) if (200..300).contains(&a.status) => match a.body["id"].as_str() {
                    Some(id) => {
                        Outcome::Done(id.to_string(), a.status == 201 || a.body["created"] == true)
                    }
                    None => Outcome::Failed(self.no_answer("contact")),
                },
                Ok(a) => {
                    let (code, message, fields) = first_error(&a.body);
                    Outcome::Refused(code, message, fields, a.status)
                }
            };
            return vec![(p, outcome)];
        }
        let mut out = Vec::with_capacity(items.len());
        for chunk in chunked(items, BATCH_LIMIT) {
            let records: Vec<Value> = chunk
                .iter()
                .map(|p| {
                    let mut r = p.record.clone();
                    r.insert("attributes".into(), json!({"type": obj}));
                    if let Target::Email(e) = &p.target {
                        r.insert("Email".into(), json!(e));
                    }
                    Value::Object(r)
                })
                .collect();
            let body = json!({"allOrNone": false, "records": records});
            let path = format!("/composite/sobjects/{obj}/Email");
            let answers = self
                .collection_outcomes(Method::PATCH, &path, &body, chunk.len())
                .await;
            out.extend(chunk.into_iter().zip(answers));
        }
        out
    }

    /// Updates known records by id (collections update, mixed types).
    async fn send_updates<'a>(&self, items: Vec<Pending<'a>>) -> Vec<(Pending<'a>, Outcome)> {
        let mut out = Vec::with_capacity(items.len());
        for chunk in chunked(items, BATCH_LIMIT) {
            let records: Vec<Value> = chunk
                .iter()
                .map(|p| {
                    let mut r = p.record.clone();
                    if let Target::Id(o, id) = &p.target {
                        r.insert("attributes".into(), json!({"type": o.name()}));
                        r.insert("id".into(), json!(id));
                    }
                    Value::Object(r)
                })
                .collect();
            let body = json!({"allOrNone": false, "records": records});
            let answers = self
                .collection_outcomes(Method::PATCH, "/composite/sobjects", &body, chunk.len())
                .await;
            out.extend(chunk.into_iter().zip(answers.into_iter().map(|o| match o {
                Outcome::Done(id, _) => Outcome::Done(id, false),
                other => other,
            })));
        }
        out
    }

    /// Creates new records (collections create).
    async fn send_creates<'a>(
        &self,
        items: Vec<Pending<'a>>,
        person: Person,
    ) -> Vec<(Pending<'a>, Outcome)> {
        let mut out = Vec::with_capacity(items.len());
        for chunk in chunked(items, BATCH_LIMIT) {
            let records: Vec<Value> = chunk
                .iter()
                .map(|p| {
                    let mut r = p.record.clone();
                    r.insert("attributes".into(), json!({"type": person.name()}));
                    Value::Object(r)
                })
                .collect();
            let body = json!({"allOrNone": false, "records": records});
            let answers = self
                .collection_outcomes(Method::POST, "/composite/sobjects", &body, chunk.len())
                .await;
            out.extend(chunk.into_iter().zip(answers.into_iter().map(|o| match o {
                Outcome::Done(id, _) => Outcome::Done(id, true),
                other => other,
            })));
        }
        out
    }

    /// One collections call: one outcome per record, by position.
    async fn collection_outcomes(
        &self,
        method: Method,
        path: &str,
        body: &Value,
        n: usize,
    ) -> Vec<Outcome> {
        let a = match self.call(method, path, &[], Some(body)).await {
            Ok(a) => a,
            Err(e) => return (0..n).map(|_| Outcome::Failed(e.clone())).collect(),
        };
        let results = a.body.as_array().cloned().unwrap_or_default();
        if results.len() != n {
            warn!(crm = %self.cfg.name, sent = n, answered = results.len(), "a collections answer does not line up with its records");
            return (0..n)
                .map(|_| Outcome::Failed(self.no_answer("result")))
                .collect();
        }
        results
            .into_iter()
            .map(|r| {
                if r["success"] == true {
                    match r["id"].as_str() {
                        Some(id) => Outcome::Done(id.to_string(), r["created"] == true),
                        None => Outcome::Failed(self.no_answer("contact")),
                    }
                } else {
                    let (code, message, fields) = first_error(&r);
                    if code == "DUPLICATE_EXTERNAL_ID" {
                        Outcome::Multiple(ids_in(&message), a.status)
                    } else {
                        Outcome::Refused(code, message, fields, a.status)
                    }
                }
            })
            .collect()
    }

    /// Records each outcome, or sends the item to the next round.
    async fn settle<'a>(
        &self,
        answered: Vec<(Pending<'a>, Outcome)>,
        person: Person,
        out: &mut [Option<Answer<ContactRef>>],
    ) -> Vec<Pending<'a>> {
        let mut next = Vec::new();
        let mut converted: Vec<Pending<'a>> = Vec::new();
        for (mut p, outcome) in answered {
            match outcome {
                Outcome::Done(id, created) => out[p.at] = Some(Ok(ContactRef { id, created })),
                Outcome::Failed(e) => out[p.at] = Some(Err(e)),
                Outcome::Multiple(ids, status) => {
                    out[p.at] = Some(Err(self.several(&p, person, ids, status).await));
                }
                Outcome::Refused(code, message, fields, status) => {
                    let obj = self.target_object(&p, person);
                    let name_fields = !fields.is_empty()
                        && fields.iter().all(|f| f == "LastName" || f == "Company");
                    match code.as_str() {
                        "REQUIRED_FIELD_MISSING" if name_fields && !p.named => {
                            self.add_placeholders(&mut p, obj);
                            next.push(p);
                        }
                        "CANNOT_UPDATE_CONVERTED_LEAD" if obj == Person::Lead && !p.retargeted => {
                            converted.push(p);
                        }
                        "ENTITY_IS_DELETED"
                        | "INVALID_CROSS_REFERENCE_KEY"
                        | "NOT_FOUND"
                        | "MALFORMED_ID"
                            if matches!(p.target, Target::Id(..)) && !p.retargeted =>
                        {
                            warn!(crm = %self.cfg.name, "the remembered Salesforce record no longer exists; writing the person as not yet known");
                            let email = p
                                .item
                                .lead
                                .event
                                .visitor
                                .email
                                .as_ref()
                                .map(|e| e.to_ascii());
                            p.target = match email {
                                Some(e) => Target::Email(e),
                                None => Target::Create,
                            };
                            p.record = self.person_record(
                                &p.item.lead,
                                person,
                                p.item.write,
                                p.target == Target::Create,
                            );
                            p.retargeted = true;
                            p.named = false;
                            if p.target == Target::Create {
                                self.add_placeholders(&mut p, person);
                            }
                            next.push(p);
                        }
                        "NOT_FOUND" if matches!(p.target, Target::Email(_)) && !p.no_single => {
                            p.no_single = true;
                            next.push(p);
                        }
                        "DUPLICATE_VALUE" => {
                            let mut e = self.err(
                                ErrorClass::Transient,
                                Some(status),
                                "DUPLICATE_VALUE: the email was sent twice in one batch; sent again alone",
                            );
                            e.category = Some(code);
                            out[p.at] = Some(Err(e));
                        }
                        _ => {
                            if matches!(
                                code.as_str(),
                                "INVALID_FIELD" | "INVALID_FIELD_FOR_INSERT_UPDATE"
                            ) {
                                self.forget_describes().await;
                            }
                            let sent = Self::sent_values(&p);
                            let result = json!({"errors": [{"statusCode": code, "message": message, "fields": fields}]});
                            out[p.at] =
                                Some(Err(self.record_error(&result, status, "contact", &sent)));
                        }
                    }
                }
            }
        }
        if !converted.is_empty() {
            next.extend(self.follow_converted(converted, out).await);
        }
        next
    }

    /// A permanent error naming every record that holds the item's email.
    async fn several(
        &self,
        p: &Pending<'_>,
        person: Person,
        mut ids: Vec<String>,
        status: u16,
    ) -> CrmError {
        if ids.is_empty() {
            if let Target::Email(email) = &p.target {
                let q = format!(
                    "SELECT Id FROM {} WHERE Email = {}",
                    person.name(),
                    soql_quote(email)
                );
                if let Ok(records) = self.query(&q).await {
                    ids = records
                        .iter()
                        .filter_map(|r| r["Id"].as_str().map(str::to_string))
                        .collect();
                }
            }
        }
        ids.sort();
        ids.dedup();
        let mut e = self.err(
            ErrorClass::Permanent,
            Some(status),
            format!(
                "{} Salesforce {} records hold this email ({}); leadbridge does not pick one: merge \
                 them in Salesforce, then replay the event",
                if ids.is_empty() { "several".to_string() } else { ids.len().to_string() },
                person.name(),
                if ids.is_empty() { "ids not named".to_string() } else { ids.join(", ") }
            ),
        );
        e.category = Some(if status == 300 {
            "MULTIPLE_CHOICES".into()
        } else {
            "DUPLICATE_EXTERNAL_ID".into()
        });
        e
    }

    /// Items whose Lead is converted: their Contact is written instead.
    async fn follow_converted<'a>(
        &self,
        items: Vec<Pending<'a>>,
        out: &mut [Option<Answer<ContactRef>>],
    ) -> Vec<Pending<'a>> {
        let mut emails = BTreeSet::new();
        let mut ids = BTreeSet::new();
        for p in &items {
            match &p.target {
                Target::Email(e) => {
                    emails.insert(soql_quote(e));
                }
                Target::Id(_, id) => {
                    ids.insert(soql_quote(id));
                }
                Target::Create => {}
            }
        }
        let mut found: Vec<Value> = Vec::new();
        let mut failure: Option<CrmError> = None;
        for (field, set) in [("Email", &emails), ("Id", &ids)] {
            if set.is_empty() {
                continue;
            }
            let q = format!(
                "SELECT Id, Email, ConvertedContactId FROM Lead WHERE IsConverted = true AND {field} IN ({})",
                set.iter().cloned().collect::<Vec<_>>().join(", ")
            );
            match self.query(&q).await {
                Ok(r) => found.extend(r),
                Err(e) => failure = Some(e),
            }
        }
        let mut next = Vec::new();
        for mut p in items {
            if let Some(e) = &failure {
                out[p.at] = Some(Err(e.clone()));
                continue;
            }
            let contacts: BTreeSet<String> = found
                .iter()
                .filter(|r| match &p.target {
                    Target::Email(e) => r["Email"]
                        .as_str()
                        .is_some_and(|x| x.eq_ignore_ascii_case(e)),
                    Target::Id(_, id) => r["Id"]
                        .as_str()
                        .is_some_and(|x| x.get(..15) == id.get(..15)),
                    Target::Create => false,
                })
                .filter_map(|r| r["ConvertedContactId"].as_str().map(str::to_string))
                .collect();
            match contacts.len() {
                1 => {
                    let contact = contacts.into_iter().next().expect("one");
                    if p.item.write == ContactWrite::IdentityOnly && p.item.known_id.is_some() {
                        out[p.at] = Some(Ok(ContactRef {
                            id: contact,
                            created: false,
                        }));
                        continue;
                    }
                    p.record =
                        self.person_record(&p.item.lead, Person::Contact, p.item.write, true);
                    p.target = Target::Id(Person::Contact, contact);
                    p.retargeted = true;
                    next.push(p);
                }
                0 => {
                    let mut e = self.err(
                        ErrorClass::Permanent,
                        Some(400),
                        "CANNOT_UPDATE_CONVERTED_LEAD: cannot reference converted lead, and no converted Lead names its Contact",
                    );
                    e.category = Some("CANNOT_UPDATE_CONVERTED_LEAD".into());
                    out[p.at] = Some(Err(e));
                }
                _ => {
                    let mut e = self.err(
                        ErrorClass::Permanent,
                        Some(400),
                        format!(
                            "CANNOT_UPDATE_CONVERTED_LEAD: the email's converted Leads point at {} Contacts ({}); leadbridge does not pick one",
                            contacts.len(),
                            contacts.into_iter().collect::<Vec<_>>().join(", ")
                        ),
                    );
                    e.category = Some("CANNOT_UPDATE_CONVERTED_LEAD".into());
                    out[p.at] = Some(Err(e));
                }
            }
        }
        next
    }

    /// The records holding each lead's phone and WhatsApp numbers, as
    /// [`lb_pipeline::Crm::find_contacts`] answers for one lead (a converted
    /// Lead answers its Contact).
    pub(super) async fn find_batch(
        &self,
        leads: &[QueuedLead],
    ) -> Vec<Answer<Vec<(usize, String)>>> {
        crate::lookup::find_by_numbers(leads, |all| async move { self.query_phones(&all).await })
            .await
    }

    /// Records whose `Phone` or `MobilePhone` is one of `numbers` (SOQL
    /// compares text: the E.164 and the national form are both asked for,
    /// each hit checked against the full number here).
    async fn query_phones(&self, numbers: &[Phone]) -> Answer<Vec<(Phone, String)>> {
        let person = self.person()?;
        let extra = if person == Person::Lead {
            ", IsConverted, ConvertedContactId"
        } else {
            ""
        };
        let mut out: Vec<(Phone, String)> = Vec::new();
        for chunk in numbers.chunks(NUMBERS_PER_QUERY) {
            let mut values: Vec<String> = chunk
                .iter()
                .flat_map(|p| [p.as_str().to_string(), p.national_number()])
                .map(|v| soql_quote(&v))
                .collect();
            values.sort();
            values.dedup();
            let list = values.join(", ");
            let q = format!(
                "SELECT Id, Phone, MobilePhone{extra} FROM {} WHERE Phone IN ({list}) OR MobilePhone IN ({list})",
                person.name()
            );
            for r in self.query(&q).await? {
                let id = if r["IsConverted"] == true {
                    r["ConvertedContactId"].as_str()
                } else {
                    r["Id"].as_str()
                };
                let Some(id) = id.map(str::to_string) else {
                    continue;
                };
                for number in chunk {
                    let holds = ["Phone", "MobilePhone"]
                        .iter()
                        .any(|f| r[*f].as_str().is_some_and(|s| same_number(s, number)));
                    if holds && !out.iter().any(|(p, i)| p == number && *i == id) {
                        out.push((number.clone(), id.clone()));
                    }
                }
            }
        }
        Ok(out)
    }
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
    fn candidate_ids_are_read_from_messages_and_urls() {
        assert_eq!(
            ids_in("Email: more than one record found for external id field: [00Q5g00000ABCDEFGH, 00Q5g00000ABCDEFGI]"),
            vec!["00Q5g00000ABCDEFGH".to_string(), "00Q5g00000ABCDEFGI".to_string()]
        );
        assert_eq!(
            ids_in("/services/data/v60.0/sobjects/Lead/00Q5g0000000001AAA /services/data/v60.0/sobjects/Lead/00Q5g0000000002AAA"),
            vec!["00Q5g0000000001AAA".to_string(), "00Q5g0000000002AAA".to_string()]
        );
        assert!(ids_in("no ids here").is_empty());
    }

    #[test]
    fn emails_in_paths_are_encoded() {
        assert_eq!(encode_segment("a+b/c@x.io"), "a%2Bb%2Fc@x.io");
    }

    #[test]
    fn stored_numbers_match_in_usual_formats() {
        let n = Phone::parse("+14155552671", None).expect("phone");
        assert!(same_number("+1 415-555-2671", &n));
        assert!(same_number("(415) 555-2671", &n));
        assert!(!same_number("+44 415 555 2671", &n));
    }
}
