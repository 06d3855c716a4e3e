//! Every REST operation as a function of the state: the routes call
//! [`dispatch`] and so do Composite's subrequests.
//!
//! - `PATCH /sobjects/{type}/{field}/{value}`: upsert by an idLookup or
//!   external-id field. No match → create, 201 `{"id","success":true,
//!   "errors":[],"created":true}`; one match → update, 200 with
//!   `"created":false` (API ≥ 46, [R] for the version boundary); several →
//!   **300** with the matching records' URLs, nothing written ([V]
//!   `resources_sobject_upsert_patch.htm`, `dome_upsert.htm`; body shape [D]).
//!   The body must not carry `Id` or the path's field ([V] same page: "Do not
//!   specify Id or an external ID field in the request body or an error is
//!   generated"; the error's code and message are [R]). Email values match
//!   case-insensitively ([R]); converted Leads still match (their Email is
//!   kept, [R]), and writing one is `CANNOT_UPDATE_CONVERTED_LEAD` "cannot
//!   reference converted lead" ([D] help.salesforce.com 000384333,
//!   kb.commvault.com 67630).
//! - `PATCH /composite/sobjects/{type}/{field}` (API ≥ 46): up to 200 records
//!   of the URI's type, each with `attributes.type`, no `Id`; 200 with one
//!   UpsertResult per record **in order** ([V] collections-upsert page);
//!   per-record errors use `statusCode`. Several matches for one record →
//!   `DUPLICATE_EXTERNAL_ID` "more than one record found for external id
//!   field: [ids]" ([D] myrapidi wiki E2120); one key twice in a request →
//!   `DUPLICATE_VALUE` "Duplicate external id specified: …" ([D] Apex
//!   upsert, salesforce.stackexchange 104048). `allOrNone: true` rolls back
//!   every record when one fails; the others answer
//!   `ALL_OR_NONE_OPERATION_ROLLED_BACK` ([D] research A.1).
//! - `POST /composite/sobjects` (create, mixed types, ≤200) and `PATCH
//!   /composite/sobjects` (update by `id`, ≤200): answers in order ([V]
//!   collections create/update pages). An unknown id on update is
//!   `ENTITY_IS_DELETED` ([R]).
//! - `POST /composite`: up to 25 subrequests, at most 5 of them collections or
//!   queries, with `@{ref.field}` references to earlier answers; always 200
//!   `{"compositeResponse":[{"body","httpHeaders","httpStatusCode",
//!   "referenceId"}]}` ([V] composite page). With `allOrNone`, one failure
//!   rolls everything back and the other subrequests answer
//!   `PROCESSING_HALTED` ([D]). The failed subrequest answers its own
//!   `httpStatusCode` and error array (`[{"message","errorCode","fields"}]`),
//!   every other one 400 ([V] resources_composite_subrequest_result.htm: "If
//!   allOrNone is set to true in the composite request and a subrequest
//!   returns an error, all other subrequests return the 400 HTTP status
//!   code"; the `PROCESSING_HALTED` code is [D]). This is how an Opportunity and its
//!   OpportunityContactRole (`"OpportunityId": "@{opp.id}"`) are created in
//!   one transaction.
//! - `POST /sobjects/{type}` → 201 `{"id","success":true,"errors":[]}`;
//!   `GET /sobjects/{type}/{id}[?fields=]`; `PATCH /sobjects/{type}/{id}` →
//!   204; an unknown record → 404 `NOT_FOUND`.
//! - Writes check, in this order: a row lock (`/__admin/lock_rows`:
//!   `UNABLE_TO_LOCK_ROW`, a standard StatusCode, [R] message), field names
//!   (`INVALID_FIELD` "No such column …", [D]), writability
//!   (`INVALID_FIELD_FOR_INSERT_UPDATE`, [D]), values (see `schema`),
//!   references (`WhoId` must be an existing Lead or Contact:
//!   `INVALID_CROSS_REFERENCE_KEY`, a converted Lead
//!   `CANNOT_UPDATE_CONVERTED_LEAD`, [D]; an OpportunityContactRole's
//!   `OpportunityId`/`ContactId` naming no record is
//!   `INVALID_CROSS_REFERENCE_KEY`, one of another type
//!   `FIELD_INTEGRITY_EXCEPTION` "{label}: id value of incorrect type: {id}",
//!   [D] help.salesforce.com 002890901), required fields
//!   (`REQUIRED_FIELD_MISSING` "Required fields are missing: [LastName,
//!   Company]", [D]) and duplicate rules: an active rule on Lead or Contact
//!   refuses a save whose Email matches another (not converted) Lead or a
//!   Contact with `DUPLICATES_DETECTED` "Use one of these records?", unless
//!   the rule only alerts and the request sends `Sforce-Duplicate-Rule-Header:
//!   allowSave=true` ([V] headers_duplicaterules.htm; the standard rules'
//!   matching is richer than "same email": unconfirmed).

use std::collections::BTreeMap;

use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::{DateTime, Utc};
use serde_json::{json, Map, Value};

use super::error::{percent_decode, RecordError, SfError};
use super::schema::{FieldType, SObject};
use super::state::{RuleAction, State};
use super::store::{normalize_id, record_url};
use super::{soql, API_VERSION};

/// Records per sObject Collections request ([V] collections pages).
pub(crate) const COLLECTION_LIMIT: usize = 200;
/// Subrequests per Composite request, and how many may be collections or
/// queries ([V] research A.1).
pub(crate) const COMPOSITE_LIMIT: usize = 25;
pub(crate) const COMPOSITE_HEAVY_LIMIT: usize = 5;

/// What a request says besides its body.
#[derive(Clone, Debug)]
pub(crate) struct Ctx {
    /// `Sforce-Duplicate-Rule-Header: allowSave=true`.
    pub allow_save: bool,
    pub now: DateTime<Utc>,
}

impl Ctx {
    pub(crate) fn from_headers(headers: &axum::http::HeaderMap) -> Ctx {
        let allow_save = headers
            .get("sforce-duplicate-rule-header")
            .and_then(|h| h.to_str().ok())
            .is_some_and(|v| {
                v.split(';').any(|p| {
                    p.split_once('=').is_some_and(|(k, v)| {
                        k.trim().eq_ignore_ascii_case("allowSave")
                            && v.trim().eq_ignore_ascii_case("true")
                    })
                })
            });
        Ctx {
            allow_save,
            now: Utc::now(),
        }
    }
}

/// A REST answer: status and JSON (`Null`: no body).
#[derive(Clone, Debug)]
pub(crate) struct Answer {
    pub status: u16,
    pub body: Value,
}

impl Answer {
    fn ok(status: u16, body: Value) -> Answer {
        Answer { status, body }
    }

    fn err(e: SfError) -> Answer {
        Answer {
            status: e.status.as_u16(),
            body: e.body(),
        }
    }
}

impl IntoResponse for Answer {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::OK);
        if self.body.is_null() {
            status.into_response()
        } else {
            (status, Json(self.body)).into_response()
        }
    }
}

fn method_not_allowed(method: &Method, allowed: &str) -> Answer {
    Answer::err(SfError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "METHOD_NOT_ALLOWED",
        format!("HTTP Method '{method}' not allowed. Allowed are {allowed}"),
    ))
}

fn sobject(name: &str) -> Result<SObject, SfError> {
    SObject::parse(name).ok_or_else(SfError::not_found)
}

/// Routes one request (`rest`: the path after `/services/data/v60.0`).
pub(crate) fn dispatch(
    st: &mut State,
    ctx: &Ctx,
    method: &Method,
    rest: &str,
    query: &[(String, String)],
    body: Option<&Value>,
    nested: bool,
) -> Answer {
    let segs: Vec<String> = rest
        .trim_start_matches('/')
        .split('/')
        .map(|s| percent_decode(s, false))
        .collect();
    let segs: Vec<&str> = segs.iter().map(String::as_str).collect();
    let result = match (segs.as_slice(), method.as_str()) {
        (["query"], "GET") => match query.iter().rev().find(|(k, _)| k == "q").map(|(_, v)| v) {
            Some(q) => soql::run(st, q).map(|v| Answer::ok(200, v)),
            None => Err(SfError::bad_request(
                "MALFORMED_QUERY",
                "A query string has to be specified",
            )),
        },
        (["query"], _) => return method_not_allowed(method, "GET"),
        (["composite"], "POST") if !nested => Ok(composite(st, ctx, body)),
        (["composite"], _) => return method_not_allowed(method, "POST"),
        (["composite", "sobjects"], "POST") => collections_create(st, ctx, body),
        (["composite", "sobjects"], "PATCH") => collections_update(st, ctx, body),
        (["composite", "sobjects"], _) => return method_not_allowed(method, "POST,PATCH"),
        (["composite", "sobjects", o, field], "PATCH") => {
            sobject(o).and_then(|o| collections_upsert(st, ctx, o, field, body))
        }
        (["composite", "sobjects", _, _], _) => return method_not_allowed(method, "PATCH"),
        (["sobjects", o, "describe"], "GET") => {
            sobject(o).map(|o| Answer::ok(200, st.schema.describe(o)))
        }
        (["sobjects", _, "describe"], _) => return method_not_allowed(method, "GET"),
        (["sobjects", o], "POST") => sobject(o).and_then(|o| create_one(st, ctx, o, body)),
        (["sobjects", _], _) => return method_not_allowed(method, "POST"),
        (["sobjects", o, id], "GET") => sobject(o).and_then(|o| get_one(st, o, id, query)),
        (["sobjects", o, id], "PATCH") => sobject(o).and_then(|o| update_one(st, ctx, o, id, body)),
        (["sobjects", _, _], _) => return method_not_allowed(method, "GET,PATCH"),
        (["sobjects", o, field, value], "PATCH") => {
            sobject(o).and_then(|o| upsert_one(st, ctx, o, field, value, body))
        }
        (["sobjects", o, field, value], "GET") => {
            sobject(o).and_then(|o| get_by_key(st, o, field, value))
        }
        (["sobjects", _, _, _], _) => return method_not_allowed(method, "GET,PATCH"),
        _ => Err(SfError::not_found()),
    };
    result.unwrap_or_else(Answer::err)
}

fn object_body(body: Option<&Value>) -> Result<&Map<String, Value>, SfError> {
    body.and_then(Value::as_object).ok_or_else(|| {
        SfError::bad_request(
            "JSON_PARSER_ERROR",
            "The request body must be a JSON object",
        )
    })
}

/// Field names a body may carry at all (unknown ones refuse the request).
fn check_names(st: &State, o: SObject, body: &Map<String, Value>) -> Result<(), SfError> {
    for k in body.keys() {
        if k == "attributes" {
            continue;
        }
        if st.schema.get(o, k).is_none() {
            return Err(SfError::bad_request(
                "INVALID_FIELD",
                format!("No such column '{k}' on sobject of type {}", o.name()),
            )
            .with_fields(vec![k.clone()]));
        }
    }
    Ok(())
}

/// Creates (`existing: None`) or updates one record after every check.
pub(crate) fn save(
    st: &mut State,
    ctx: &Ctx,
    o: SObject,
    existing: Option<&str>,
    body: &Map<String, Value>,
) -> Result<String, RecordError> {
    if st.lock_rows > 0 {
        st.lock_rows -= 1;
        return Err(RecordError::new(
            "UNABLE_TO_LOCK_ROW",
            format!(
                "unable to obtain exclusive access to this record or 1 records: {}",
                existing.unwrap_or_default()
            ),
            vec![],
        ));
    }
    let existing_id = match existing {
        Some(id) => {
            let rec = normalize_id(id)
                .and_then(|id| st.store.get(&id))
                .filter(|r| r.sobject == o)
                .ok_or_else(|| {
                    RecordError::new("ENTITY_IS_DELETED", "entity is deleted", vec![])
                })?;
            if rec.is_converted() {
                return Err(RecordError::new(
                    "CANNOT_UPDATE_CONVERTED_LEAD",
                    "cannot reference converted lead",
                    vec![],
                ));
            }
            Some(rec.id.clone())
        }
        None => None,
    };
    let mut values = Map::new();
    for (k, v) in body {
        if k == "attributes" {
            continue;
        }
        let def = st.schema.get(o, k).cloned().ok_or_else(|| {
            RecordError::new(
                "INVALID_FIELD",
                format!("No such column '{k}' on sobject of type {}", o.name()),
                vec![k.clone()],
            )
        })?;
        let writable = if existing_id.is_some() {
            def.updateable
        } else {
            def.createable
        };
        if !writable {
            return Err(RecordError::new(
                "INVALID_FIELD_FOR_INSERT_UPDATE",
                format!(
                    "Unable to create/update fields: {k}. Please check the security settings of this field and verify that it is read/write for your profile or permission set."
                ),
                vec![k.clone()],
            ));
        }
        let v = def.check(v)?;
        if def.ftype == FieldType::Reference && !v.is_null() {
            let target = v.as_str().unwrap_or_default();
            let types = o.reference_targets(k);
            match st.store.get(target) {
                Some(r) if types.is_some_and(|t| !t.contains(&r.sobject)) => {
                    return Err(RecordError::new(
                        "FIELD_INTEGRITY_EXCEPTION",
                        format!("{}: id value of incorrect type: {target}", def.label),
                        vec![k.clone()],
                    ))
                }
                Some(r) if r.is_converted() => {
                    return Err(RecordError::new(
                        "CANNOT_UPDATE_CONVERTED_LEAD",
                        "cannot reference converted lead",
                        vec![k.clone()],
                    ))
                }
                Some(r)
                    if k != "WhoId" || matches!(r.sobject, SObject::Lead | SObject::Contact) => {}
                _ => {
                    return Err(RecordError::new(
                        "INVALID_CROSS_REFERENCE_KEY",
                        "invalid cross reference id",
                        vec![k.clone()],
                    ))
                }
            }
        }
        values.insert(k.clone(), v);
    }
    let mut merged = match &existing_id {
        Some(id) => st
            .store
            .get(id)
            .map(|r| r.fields.clone())
            .unwrap_or_default(),
        None => {
            let mut m = Map::new();
            for f in st.schema.fields(o) {
                if let (true, Some(d)) = (f.defaulted_on_create, &f.default) {
                    if !d.is_null() {
                        m.insert(f.name.clone(), d.clone());
                    }
                }
            }
            m
        }
    };
    for (k, v) in values {
        merged.insert(k, v);
    }
    let missing: Vec<String> = st
        .schema
        .fields(o)
        .iter()
        .filter(|f| f.required_on_create())
        .filter(|f| {
            merged
                .get(&f.name)
                .is_none_or(|v| v.is_null() || v.as_str() == Some(""))
        })
        .map(|f| f.name.clone())
        .collect();
    if !missing.is_empty() {
        return Err(RecordError::new(
            "REQUIRED_FIELD_MISSING",
            format!("Required fields are missing: [{}]", missing.join(", ")),
            missing,
        ));
    }
    if let Some(action) = st.duplicate_rules.get(&o).copied() {
        let email = merged
            .get("Email")
            .and_then(Value::as_str)
            .map(str::to_lowercase)
            .filter(|e| !e.is_empty());
        if let Some(email) = email {
            let dup = [SObject::Lead, SObject::Contact].iter().any(|t| {
                st.store.of_type(*t).any(|r| {
                    Some(&r.id) != existing_id.as_ref()
                        && !r.is_converted()
                        && r.text_lower("Email").as_deref() == Some(email.as_str())
                })
            });
            if dup && !(action == RuleAction::Alert && ctx.allow_save) {
                return Err(RecordError::new(
                    "DUPLICATES_DETECTED",
                    "Use one of these records?",
                    vec![],
                ));
            }
        }
    }
    let primary_of = (o == SObject::OpportunityContactRole
        && merged.get("IsPrimary") == Some(&Value::Bool(true)))
    .then(|| merged.get("OpportunityId").cloned())
    .flatten();
    let id = match existing_id {
        Some(id) => {
            if let Some(r) = st.store.get_mut(&id) {
                r.fields = merged;
                r.modified = ctx.now;
            }
            id
        }
        None => st.store.insert(o, merged, ctx.now),
    };
    if let Some(opportunity) = primary_of {
        // "Each Opportunity has only one primary contact" ([V] OpportunityContactRole
        // reference): a new primary takes the flag from the others ([R] that it is
        // moved rather than refused).
        for r in st.store.all_mut() {
            if r.sobject == SObject::OpportunityContactRole
                && r.id != id
                && r.fields.get("OpportunityId") == Some(&opportunity)
            {
                r.fields.insert("IsPrimary".into(), json!(false));
            }
        }
    }
    Ok(id)
}

fn create_one(
    st: &mut State,
    ctx: &Ctx,
    o: SObject,
    body: Option<&Value>,
) -> Result<Answer, SfError> {
    let body = object_body(body)?;
    check_names(st, o, body)?;
    match save(st, ctx, o, None, body) {
        Ok(id) => Ok(Answer::ok(
            201,
            json!({"id": id, "success": true, "errors": []}),
        )),
        Err(e) => Err(e.to_sf()),
    }
}

fn update_one(
    st: &mut State,
    ctx: &Ctx,
    o: SObject,
    id: &str,
    body: Option<&Value>,
) -> Result<Answer, SfError> {
    let body = object_body(body)?;
    check_names(st, o, body)?;
    if normalize_id(id)
        .and_then(|id| st.store.get(&id))
        .is_none_or(|r| r.sobject != o)
    {
        return Err(SfError::not_found());
    }
    match save(st, ctx, o, Some(id), body) {
        Ok(_) => Ok(Answer::ok(204, Value::Null)),
        Err(e) => Err(e.to_sf()),
    }
}

fn get_one(
    st: &State,
    o: SObject,
    id: &str,
    query: &[(String, String)],
) -> Result<Answer, SfError> {
    let rec = normalize_id(id)
        .and_then(|id| st.store.get(&id))
        .filter(|r| r.sobject == o)
        .ok_or_else(SfError::not_found)?;
    let only: Option<Vec<String>> = query.iter().find(|(k, _)| k == "fields").map(|(_, v)| {
        v.split(',')
            .map(|s| s.trim().to_owned())
            .filter(|s| !s.is_empty())
            .collect()
    });
    if let Some(names) = &only {
        for n in names {
            if st.schema.get(o, n).is_none() {
                return Err(SfError::bad_request(
                    "INVALID_FIELD",
                    format!("No such column '{n}' on entity '{}'", o.name()),
                ));
            }
        }
    }
    Ok(Answer::ok(200, rec.render(&st.schema, only.as_deref())))
}

/// The key field of an upsert: an idLookup or external-id field.
fn key_field(st: &State, o: SObject, field: &str) -> Result<FieldType, SfError> {
    match st.schema.get(o, field) {
        Some(f) if (f.id_lookup || f.external_id) && f.name != "Id" => Ok(f.ftype),
        _ => Err(SfError::new(
            StatusCode::NOT_FOUND,
            "NOT_FOUND",
            format!("Provided external ID field does not exist or is not accessible: {field}"),
        )),
    }
}

/// The records whose `field` holds `value` (text: case-insensitively).
fn matches(st: &State, o: SObject, field: &str, value: &str) -> Vec<String> {
    let lower = value.to_lowercase();
    st.store
        .of_type(o)
        .filter(|r| r.text_lower(field).as_deref() == Some(lower.as_str()))
        .map(|r| r.id.clone())
        .collect()
}

enum UpsertFailure {
    Multiple(Vec<String>),
    Record(RecordError),
}

fn upsert(
    st: &mut State,
    ctx: &Ctx,
    o: SObject,
    field: &str,
    value: &str,
    body: &Map<String, Value>,
) -> Result<(String, bool), UpsertFailure> {
    let found = matches(st, o, field, value);
    match found.as_slice() {
        [] => {
            let mut b = body.clone();
            b.insert(field.to_owned(), json!(value));
            save(st, ctx, o, None, &b)
                .map(|id| (id, true))
                .map_err(UpsertFailure::Record)
        }
        [one] => save(st, ctx, o, Some(one), body)
            .map(|id| (id, false))
            .map_err(UpsertFailure::Record),
        _ => Err(UpsertFailure::Multiple(found)),
    }
}

fn upsert_one(
    st: &mut State,
    ctx: &Ctx,
    o: SObject,
    field: &str,
    value: &str,
    body: Option<&Value>,
) -> Result<Answer, SfError> {
    key_field(st, o, field)?;
    let body = object_body(body)?;
    if body
        .keys()
        .any(|k| k == field || k.eq_ignore_ascii_case("Id"))
    {
        return Err(SfError::bad_request(
            "INVALID_FIELD",
            format!("Don't specify Id or the external ID field {field} in the request body: it is given in the URL"),
        ));
    }
    check_names(st, o, body)?;
    match upsert(st, ctx, o, field, value, body) {
        Ok((id, created)) => Ok(Answer::ok(
            if created { 201 } else { 200 },
            json!({"id": id, "success": true, "errors": [], "created": created}),
        )),
        Err(UpsertFailure::Multiple(ids)) => Ok(Answer::ok(
            300,
            json!(ids.iter().map(|id| record_url(o, id)).collect::<Vec<_>>()),
        )),
        Err(UpsertFailure::Record(e)) => Err(e.to_sf()),
    }
}

fn get_by_key(st: &State, o: SObject, field: &str, value: &str) -> Result<Answer, SfError> {
    key_field(st, o, field)?;
    let found = matches(st, o, field, value);
    match found.as_slice() {
        [] => Err(SfError::not_found()),
        [one] => Ok(Answer::ok(
            200,
            st.store
                .get(one)
                .map(|r| r.render(&st.schema, None))
                .unwrap_or(Value::Null),
        )),
        _ => Ok(Answer::ok(
            300,
            json!(found.iter().map(|id| record_url(o, id)).collect::<Vec<_>>()),
        )),
    }
}

/// `{"allOrNone"?, "records": [...]}` of a collections request.
fn collection(body: Option<&Value>) -> Result<(bool, Vec<Map<String, Value>>), SfError> {
    let body = object_body(body)?;
    let all_or_none = body
        .get("allOrNone")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let records = body
        .get("records")
        .and_then(Value::as_array)
        .ok_or_else(|| SfError::bad_request("JSON_PARSER_ERROR", "records is required"))?;
    if records.len() > COLLECTION_LIMIT {
        // The code and message are unconfirmed.
        return Err(SfError::bad_request(
            "EXCEEDED_ID_LIMIT",
            format!("Record limit exceeded. Max number of records allowed is {COLLECTION_LIMIT}"),
        ));
    }
    let mut out = Vec::with_capacity(records.len());
    for r in records {
        out.push(r.as_object().cloned().ok_or_else(|| {
            SfError::bad_request("JSON_PARSER_ERROR", "a record must be an object")
        })?);
    }
    Ok((all_or_none, out))
}

fn record_type(st: &State, r: &Map<String, Value>) -> Result<SObject, SfError> {
    let t = r
        .get("attributes")
        .and_then(|a| a.get("type"))
        .and_then(Value::as_str)
        .ok_or_else(|| {
            SfError::bad_request(
                "INVALID_TYPE",
                "Each record in a collection must carry attributes.type",
            )
        })?;
    let o = SObject::parse(t).ok_or_else(|| {
        SfError::bad_request(
            "INVALID_TYPE",
            format!("sObject type '{t}' is not supported."),
        )
    })?;
    let _ = st;
    Ok(o)
}

/// Runs `items` one by one; with `all_or_none`, one failure undoes them all.
fn run_collection(
    st: &mut State,
    all_or_none: bool,
    n: usize,
    mut each: impl FnMut(&mut State, usize) -> Result<Value, RecordError>,
) -> Answer {
    // Records only: a row lock met is spent, rollback or not (else an
    // all-or-none request would meet the same lock forever).
    let snapshot = all_or_none.then(|| st.store.clone());
    let results: Vec<Result<Value, RecordError>> = (0..n).map(|i| each(st, i)).collect();
    let failed = results.iter().any(Result::is_err);
    if let (true, Some(store)) = (failed, snapshot) {
        st.store = store;
        let body = results
            .into_iter()
            .map(|r| match r {
                Ok(_) => json!({"success": false, "errors": [RecordError::new(
                    "ALL_OR_NONE_OPERATION_ROLLED_BACK",
                    "Record rolled back because not all records were valid and the request was using AllOrNone header",
                    vec![],
                ).collection_json()]}),
                Err(e) => json!({"success": false, "errors": [e.collection_json()]}),
            })
            .collect::<Vec<_>>();
        return Answer::ok(200, json!(body));
    }
    let body = results
        .into_iter()
        .map(|r| match r {
            Ok(v) => v,
            Err(e) => json!({"success": false, "errors": [e.collection_json()]}),
        })
        .collect::<Vec<_>>();
    Answer::ok(200, json!(body))
}

fn collections_create(st: &mut State, ctx: &Ctx, body: Option<&Value>) -> Result<Answer, SfError> {
    let (all_or_none, records) = collection(body)?;
    let mut types = Vec::with_capacity(records.len());
    for r in &records {
        let o = record_type(st, r)?;
        check_names(st, o, r)?;
        types.push(o);
    }
    Ok(run_collection(st, all_or_none, records.len(), |st, i| {
        if records[i].contains_key("Id") || records[i].contains_key("id") {
            return Err(RecordError::new(
                "INVALID_FIELD",
                "cannot specify Id in an insert call",
                vec!["Id".into()],
            ));
        }
        save(st, ctx, types[i], None, &records[i])
            .map(|id| json!({"id": id, "success": true, "errors": []}))
    }))
}

fn collections_update(st: &mut State, ctx: &Ctx, body: Option<&Value>) -> Result<Answer, SfError> {
    let (all_or_none, mut records) = collection(body)?;
    let mut types = Vec::with_capacity(records.len());
    let mut ids = Vec::with_capacity(records.len());
    for r in records.iter_mut() {
        let o = record_type(st, r)?;
        let id = r
            .remove("id")
            .or_else(|| r.remove("Id"))
            .and_then(|v| v.as_str().map(str::to_owned));
        check_names(st, o, r)?;
        types.push(o);
        ids.push(id);
    }
    Ok(run_collection(st, all_or_none, records.len(), |st, i| {
        let Some(id) = ids[i].as_deref() else {
            return Err(RecordError::new(
                "MISSING_ARGUMENT",
                "Id not specified in an update call",
                vec![],
            ));
        };
        if normalize_id(id).is_none() {
            return Err(RecordError::new(
                "MALFORMED_ID",
                format!("malformed id {id}"),
                vec!["Id".into()],
            ));
        }
        save(st, ctx, types[i], Some(id), &records[i])
            .map(|id| json!({"id": id, "success": true, "errors": []}))
    }))
}

fn collections_upsert(
    st: &mut State,
    ctx: &Ctx,
    o: SObject,
    field: &str,
    body: Option<&Value>,
) -> Result<Answer, SfError> {
    key_field(st, o, field)?;
    let (all_or_none, records) = collection(body)?;
    for r in &records {
        if record_type(st, r)? != o {
            return Err(SfError::bad_request(
                "INVALID_TYPE",
                format!("every record must be of the type in the URI ({})", o.name()),
            ));
        }
        check_names(st, o, r)?;
    }
    let keys: Vec<Option<String>> = records
        .iter()
        .map(|r| {
            r.get(field)
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
        })
        .collect();
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    for k in keys.iter().flatten() {
        *seen.entry(k.to_lowercase()).or_default() += 1;
    }
    Ok(run_collection(st, all_or_none, records.len(), |st, i| {
        let r = &records[i];
        if r.contains_key("Id") || r.contains_key("id") {
            return Err(RecordError::new(
                "INVALID_FIELD",
                "Only external ids are supported: don't set Id",
                vec!["Id".into()],
            ));
        }
        let Some(key) = keys[i].as_deref() else {
            return Err(RecordError::new(
                "MISSING_ARGUMENT",
                format!("{field} not specified"),
                vec![field.to_owned()],
            ));
        };
        if seen.get(&key.to_lowercase()).copied().unwrap_or(0) > 1 {
            return Err(RecordError::new(
                "DUPLICATE_VALUE",
                format!("Duplicate external id specified: {key}"),
                vec![field.to_owned()],
            ));
        }
        let mut b = r.clone();
        b.remove(field);
        match upsert(st, ctx, o, field, key, &b) {
            Ok((id, created)) => {
                Ok(json!({"id": id, "success": true, "errors": [], "created": created}))
            }
            Err(UpsertFailure::Multiple(ids)) => Err(RecordError::new(
                "DUPLICATE_EXTERNAL_ID",
                format!(
                    "{field}: more than one record found for external id field: [{}]",
                    ids.join(", ")
                ),
                vec![field.to_owned()],
            )),
            Err(UpsertFailure::Record(e)) => Err(e),
        }
    }))
}

/// Replaces every `@{ref.path}` in `s` from earlier answers.
fn resolve_refs(s: &str, done: &BTreeMap<String, Value>) -> Result<String, String> {
    let mut out = String::new();
    let mut rest = s;
    while let Some(at) = rest.find("@{") {
        out.push_str(&rest[..at]);
        let after = &rest[at + 2..];
        let end = after
            .find('}')
            .ok_or_else(|| format!("unterminated reference in {s}"))?;
        let expr = &after[..end];
        let (refid, path) = expr
            .split_once('.')
            .ok_or_else(|| format!("Invalid reference specified: {expr}"))?;
        let mut v = done.get(refid).ok_or_else(|| {
            format!("Invalid reference specified. No value for {path} found in {refid}")
        })?;
        for part in path.split('.') {
            let (name, index) = match part.split_once('[') {
                Some((n, i)) => (n, i.trim_end_matches(']').parse::<usize>().ok()),
                None => (part, None),
            };
            v = &v[name];
            if let Some(i) = index {
                v = &v[i];
            }
        }
        match v {
            Value::String(x) => out.push_str(x),
            Value::Number(n) => out.push_str(&n.to_string()),
            Value::Bool(b) => out.push_str(&b.to_string()),
            _ => {
                return Err(format!(
                    "Invalid reference specified. No value for {path} found in {refid}"
                ))
            }
        }
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

fn resolve_value(v: &Value, done: &BTreeMap<String, Value>) -> Result<Value, String> {
    Ok(match v {
        Value::String(s) => Value::String(resolve_refs(s, done)?),
        Value::Array(a) => Value::Array(
            a.iter()
                .map(|x| resolve_value(x, done))
                .collect::<Result<_, _>>()?,
        ),
        Value::Object(m) => {
            let mut out = Map::new();
            for (k, x) in m {
                out.insert(k.clone(), resolve_value(x, done)?);
            }
            Value::Object(out)
        }
        other => other.clone(),
    })
}

fn halted(message: &str) -> Value {
    json!([{"errorCode": "PROCESSING_HALTED", "message": message}])
}

fn composite(st: &mut State, ctx: &Ctx, body: Option<&Value>) -> Answer {
    let run = || -> Result<Answer, SfError> {
        let body = object_body(body)?;
        let subs = body
            .get("compositeRequest")
            .and_then(Value::as_array)
            .ok_or_else(|| {
                SfError::bad_request("JSON_PARSER_ERROR", "compositeRequest is required")
            })?;
        if subs.len() > COMPOSITE_LIMIT {
            return Err(SfError::bad_request(
                "LIMIT_EXCEEDED",
                format!("Composite requests may have at most {COMPOSITE_LIMIT} subrequests"),
            ));
        }
        let prefix = format!("/services/data/{API_VERSION}");
        let heavy = subs
            .iter()
            .filter(|s| {
                let url = s["url"].as_str().unwrap_or_default();
                let rest = url.strip_prefix(&prefix).unwrap_or(url);
                rest.starts_with("/composite/sobjects") || rest.starts_with("/query")
            })
            .count();
        if heavy > COMPOSITE_HEAVY_LIMIT {
            return Err(SfError::bad_request(
                "LIMIT_EXCEEDED",
                format!("at most {COMPOSITE_HEAVY_LIMIT} subrequests may be sObject Collections or queries"),
            ));
        }
        Ok(Answer::ok(200, Value::Null))
    };
    if let Err(e) = run() {
        return Answer::err(e);
    }
    let body = body.and_then(Value::as_object).cloned().unwrap_or_default();
    let all_or_none = body
        .get("allOrNone")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let subs = body
        .get("compositeRequest")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let prefix = format!("/services/data/{API_VERSION}");
    // Records only: a row lock met is spent (see `run_collection`).
    let snapshot = all_or_none.then(|| st.store.clone());
    let mut done: BTreeMap<String, Value> = BTreeMap::new();
    let mut out: Vec<(String, Answer)> = Vec::new();
    let mut failed = false;
    for s in &subs {
        let refid = s["referenceId"].as_str().unwrap_or_default().to_owned();
        if failed && all_or_none {
            out.push((refid, Answer::ok(400, halted("The transaction was rolled back since another operation in the same transaction failed."))));
            continue;
        }
        let method = s["method"]
            .as_str()
            .unwrap_or("GET")
            .parse::<Method>()
            .unwrap_or(Method::GET);
        let answer =
            match resolve_refs(s["url"].as_str().unwrap_or_default(), &done).and_then(|url| {
                s.get("body")
                    .map(|b| resolve_value(b, &done))
                    .transpose()
                    .map(|b| (url, b))
            }) {
                Err(why) => Answer::ok(400, halted(&why)),
                Ok((url, sub_body)) => {
                    let (path, query) = url.split_once('?').unwrap_or((url.as_str(), ""));
                    match path.strip_prefix(&prefix) {
                        Some(rest) => dispatch(
                            st,
                            ctx,
                            &method,
                            rest,
                            &super::error::form_pairs(query),
                            sub_body.as_ref(),
                            true,
                        ),
                        None => Answer::err(SfError::not_found()),
                    }
                }
            };
        if answer.status >= 400 {
            failed = true;
        } else if !refid.is_empty() {
            done.insert(refid.clone(), answer.body.clone());
        }
        out.push((refid, answer));
    }
    if let (true, Some(store)) = (failed, snapshot) {
        st.store = store;
        for (_, a) in out.iter_mut() {
            if a.status < 400 {
                *a = Answer::ok(400, halted("The transaction was rolled back since another operation in the same transaction failed."));
            }
        }
    }
    let responses: Vec<Value> = out
        .into_iter()
        .map(|(refid, a)| {
            json!({"body": a.body, "httpHeaders": {}, "httpStatusCode": a.status, "referenceId": refid})
        })
        .collect();
    Answer::ok(200, json!({"compositeResponse": responses}))
}

/// Converts a Lead (`/__admin/leads/{id}/convert`): a Contact is created from
/// its fields, the Lead gets `IsConverted`, `ConvertedContactId` and
/// `ConvertedDate`, and its Tasks move to the Contact (conversion carries
/// open activities over, [R]). No Account is modelled.
pub(crate) fn convert_lead(st: &mut State, id: &str, now: DateTime<Utc>) -> Result<String, String> {
    let lead = normalize_id(id)
        .and_then(|id| st.store.get(&id))
        .filter(|r| r.sobject == SObject::Lead)
        .cloned()
        .ok_or("no such Lead")?;
    if lead.is_converted() {
        return Err("the Lead is already converted".into());
    }
    let mut contact = Map::new();
    for (from, to) in [
        ("FirstName", "FirstName"),
        ("LastName", "LastName"),
        ("Email", "Email"),
        ("Phone", "Phone"),
        ("MobilePhone", "MobilePhone"),
        ("Country", "MailingCountry"),
        ("State", "MailingState"),
        ("LeadSource", "LeadSource"),
        ("Description", "Description"),
    ] {
        if let Some(v) = lead.fields.get(from).filter(|v| !v.is_null()) {
            contact.insert(to.into(), v.clone());
        }
    }
    let contact_id = st.store.insert(SObject::Contact, contact, now);
    if let Some(l) = st.store.get_mut(&lead.id) {
        l.fields.insert("IsConverted".into(), json!(true));
        l.fields
            .insert("ConvertedContactId".into(), json!(contact_id));
        l.fields.insert(
            "ConvertedDate".into(),
            json!(now.format("%Y-%m-%d").to_string()),
        );
        l.fields
            .insert("Status".into(), json!("Closed - Converted"));
        l.modified = now;
    }
    for r in st.store.all_mut() {
        if r.sobject == SObject::Task
            && r.fields.get("WhoId").and_then(Value::as_str) == Some(lead.id.as_str())
        {
            r.fields.insert("WhoId".into(), json!(contact_id));
        }
    }
    Ok(contact_id)
}
