//! Records of Leads, Contacts and Deals: insert, update, upsert, read, list,
//! a contact's deals, and the fields metadata.
//!
//! Writes take `{"data": [...]}` with at most 100 records ([V] upsert page, "A
//! maximum of 100 records can be inserted/updated per API call"; more is
//! `INVALID_DATA` with `maximum_length`, the shape of [V] crm-oas v8 notes
//! `InvalidDataLimitExceededError`), and answer one `data` entry per record,
//! **in input order** (the error entries' `json_path` name their input index,
//! `$.data[1].Company`, [V] crm-oas v8 `upsertRecords/examples/
//! response-207-mixedresults.md`). The overall status ([V] crm-oas v8 examples):
//! - insert (`POST /{module}`): all added 201, mixed 207, all refused 400;
//! - update (`PUT /{module}`, `PUT /{module}/{id}`) and upsert: all done 200,
//!   mixed 207, all refused 400.
//!
//! Per-record results: `{"code":"SUCCESS","details":{id, Created_Time,
//! Modified_Time, Created_By, Modified_By},"message":"record added|record
//! updated","status":"success"}`, plus `"action":"insert|update"` and
//! `"duplicate_field"` (the field that matched, `null` on insert) for upsert
//! ([V] upsert page sample). Errors: `INVALID_DATA` (see `schema`),
//! `MANDATORY_NOT_FOUND` "required field not found" with `details.{api_name,
//! json_path}` ([V] upsert page, crm-oas v8 examples), `DUPLICATE_DATA`
//! "duplicate data" with `details.{api_name, json_path, id, duplicate_record,
//! more_records}` for a value a user-defined unique field already holds ([V]
//! crm-oas v8 `createRecords/examples/response-400-duplicatedataerror.md`),
//! `MULTIPLE_OR_MULTI_ERRORS` when one record has several ([V] crm-oas v8
//! `upsertRecords/examples/response-400-multipleerrors.md`).
//!
//! Upsert: a record with an `id` updates that record ([D] crm-oas v8 upsert
//! request example carries `id`, and `MandatoryNotFoundRecordIdError` is
//! "Required field missing during upsert update"; an unknown id is
//! `INVALID_DATA` "the id given seems to be invalid." — unconfirmed). Without
//! one, the duplicate-check order is the listed `duplicate_check_fields`, then
//! the user-defined unique fields; the system field (`Email`) counts only when
//! listed or when nothing is listed ([V] upsert page, "How does the duplicate
//! check work?"); the first existing record with an equal value is updated,
//! else the record is inserted. Emails (and other text) match ignoring case
//! (unconfirmed). A listed field that is neither is refused as a whole
//! (`INVALID_DATA`, unconfirmed).
//!
//! Mandatory fields are checked on insert; an update may not blank one
//! (unconfirmed). Credits: a multi-record write costs 1 credit per 10
//! records (crm-apis.md, unconfirmed).
//!
//! Reads: `GET /{module}/{id}` → `{"data":[record]}`, an unknown id 204
//! (unconfirmed); `GET /{module}?fields=…` (paged, `id desc` by default, [V]
//! search sample `sort_by: id, sort_order: desc`); `GET
//! /Contacts/{id}/Deals?fields=…` (an unknown parent is 404 `INVALID_DATA`
//! "The record does not exist", [V] crm-oas v8
//! `getRelatedRecords/examples/response-404-recordnotfound.md`);
//! `GET /settings/fields?module=…` → `{"fields":[...]}` ([V] crm-oas v8 fields.json).

use std::time::Instant;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Map, Value};

use super::error::{parse_body, ZohoError};
use super::paging::{self, SortBy};
use super::schema::{check_value, is_given, lookup_id, FieldDef, Module};
use super::state::{App, State as SimState};
use super::store::Record;

/// The most records one write takes.
pub(crate) const MAX_RECORDS: usize = 100;

/// What kind of write a request is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum WriteMode {
    Insert,
    /// `PUT /{module}` (ids in the records) or `PUT /{module}/{id}`.
    Update {
        path_id: Option<String>,
    },
    Upsert,
}

/// The `data` array of a write body, or the whole-request refusal.
pub(crate) fn data_of(body: &Value) -> Result<&Vec<Value>, ZohoError> {
    let data = body.get("data").ok_or_else(|| {
        ZohoError::new(
            StatusCode::BAD_REQUEST,
            "MANDATORY_NOT_FOUND",
            "required field not found",
        )
        .with_details(json!({"api_name": "data", "json_path": "$.data"}))
    })?;
    let data = data.as_array().ok_or_else(|| {
        ZohoError::invalid_data(
            "invalid data",
            json!({"api_name": "data", "json_path": "$.data", "expected_data_type": "jsonarray"}),
        )
    })?;
    if data.is_empty() || data.len() > MAX_RECORDS {
        return Err(ZohoError::invalid_data(
            "invalid data",
            json!({"maximum_length": MAX_RECORDS, "api_name": "data", "json_path": "$.data"}),
        ));
    }
    Ok(data)
}

/// The answer of a multi-record write: per-record `data` and the overall status.
pub(crate) fn write_answer(results: Vec<Result<Value, Value>>, all_ok: StatusCode) -> Response {
    let ok = results.iter().filter(|r| r.is_ok()).count();
    let status = if ok == results.len() {
        all_ok
    } else if ok == 0 {
        StatusCode::BAD_REQUEST
    } else {
        StatusCode::MULTI_STATUS
    };
    let data: Vec<Value> = results
        .into_iter()
        .map(|r| match r {
            Ok(v) | Err(v) => v,
        })
        .collect();
    (status, Json(json!({ "data": data }))).into_response()
}

/// Several errors of one record as one entry.
pub(crate) fn one_or_many(mut errors: Vec<Value>) -> Value {
    if errors.len() == 1 {
        return errors.remove(0);
    }
    json!({
        "code": "MULTIPLE_OR_MULTI_ERRORS",
        "details": {"errors": errors},
        "message": "Multiple errors in the request",
        "status": "error",
    })
}

fn record_error(code: &str, message: &str, details: Value) -> Value {
    json!({"code": code, "details": details, "message": message, "status": "error"})
}

/// Whether two stored values are the same for duplicate checks and search.
pub(crate) fn same_value(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::String(x), Value::String(y)) => x.trim().eq_ignore_ascii_case(y.trim()),
        _ => match (lookup_id(a), lookup_id(b)) {
            (Some(x), Some(y)) => x == y,
            _ => a == b,
        },
    }
}

/// The write of a whole request; charges the extra credits.
pub(crate) fn write(
    state: &mut SimState,
    module: Module,
    body: &Value,
    mode: &WriteMode,
    now: Instant,
) -> Result<Vec<Result<Value, Value>>, ZohoError> {
    let data = data_of(body)?;
    if matches!(mode, WriteMode::Update { path_id: Some(_) }) && data.len() != 1 {
        return Err(ZohoError::invalid_data(
            "only one record can be updated through this URL",
            json!({"maximum_length": 1, "api_name": "data", "json_path": "$.data"}),
        ));
    }
    let check = if *mode == WriteMode::Upsert {
        duplicate_check_order(state, module, body)?
    } else {
        Vec::new()
    };
    let extra = data.len().div_ceil(10).saturating_sub(1) as u64;
    state.config.credits_used += extra;
    Ok(data
        .iter()
        .enumerate()
        .map(|(i, input)| write_one(state, module, i, input, mode, &check, now))
        .collect())
}

/// The fields an upsert checks for an existing record, in order.
fn duplicate_check_order(
    state: &SimState,
    module: Module,
    body: &Value,
) -> Result<Vec<String>, ZohoError> {
    let system = module.duplicate_check_field();
    let unique: Vec<String> = state
        .schema
        .unique_fields(module)
        .into_iter()
        .map(|f| f.api_name.clone())
        .collect();
    let listed: Vec<String> = match body.get("duplicate_check_fields") {
        None | Some(Value::Null) => {
            let mut order: Vec<String> = system.map(str::to_owned).into_iter().collect();
            order.extend(
                unique
                    .iter()
                    .filter(|u| Some(u.as_str()) != system)
                    .cloned(),
            );
            return Ok(order);
        }
        Some(Value::Array(a)) => a
            .iter()
            .map(|v| v.as_str().unwrap_or_default().to_owned())
            .collect(),
        Some(_) => {
            return Err(ZohoError::invalid_data(
                "invalid data",
                json!({"api_name": "duplicate_check_fields", "json_path": "$.duplicate_check_fields", "expected_data_type": "jsonarray"}),
            ))
        }
    };
    for (k, f) in listed.iter().enumerate() {
        if Some(f.as_str()) != system && !unique.contains(f) {
            return Err(ZohoError::invalid_data(
                "invalid data",
                json!({"api_name": f, "json_path": format!("$.duplicate_check_fields[{k}]")}),
            ));
        }
    }
    let mut order = listed.clone();
    order.extend(unique.into_iter().filter(|u| !listed.contains(u)));
    Ok(order)
}

fn write_one(
    state: &mut SimState,
    module: Module,
    i: usize,
    input: &Value,
    mode: &WriteMode,
    check: &[String],
    now: Instant,
) -> Result<Value, Value> {
    let Some(obj) = input.as_object() else {
        return Err(record_error(
            "INVALID_DATA",
            "invalid data",
            json!({"api_name": "data", "json_path": format!("$.data[{i}]"), "expected_data_type": "jsonobject"}),
        ));
    };
    let (values, field_errors) = checked_values(state, module, i, obj);
    let given_id = obj.get("id").and_then(Value::as_str).map(str::to_owned);
    let target: Option<(String, Option<String>)> = match mode {
        WriteMode::Insert => None,
        WriteMode::Update { path_id } => {
            let id = path_id.clone().or(given_id).ok_or_else(|| {
                record_error(
                    "MANDATORY_NOT_FOUND",
                    "required field not found",
                    json!({"api_name": "id", "json_path": format!("$.data[{i}].id")}),
                )
            })?;
            Some((known_id(state, module, i, &id)?, None))
        }
        WriteMode::Upsert => match given_id {
            Some(id) => Some((known_id(state, module, i, &id)?, None)),
            None => check.iter().find_map(|f| {
                let v = values.get(f).filter(|v| is_given(Some(v)))?;
                state
                    .store
                    .of(module)
                    .find(|r| r.fields.get(f).is_some_and(|stored| same_value(stored, v)))
                    .map(|r| (r.id.clone(), Some(f.clone())))
            }),
        },
    };
    match target {
        Some((id, matched)) => {
            let mut errors = field_errors;
            for def in state
                .schema
                .fields(module)
                .iter()
                .filter(|f| f.system_mandatory)
            {
                if values.contains_key(&def.api_name) && !is_given(values.get(&def.api_name)) {
                    errors.push(mandatory_error(i, &def.api_name));
                }
            }
            errors.extend(unique_errors(state, module, i, &values, Some(&id)));
            if !errors.is_empty() {
                return Err(one_or_many(errors));
            }
            let record = state
                .store
                .update(&id, values, now)
                .expect("the target record exists");
            Ok(success(
                record,
                "record updated",
                mode,
                Some(("update", matched)),
            ))
        }
        None => {
            let missing: Vec<Value> = state
                .schema
                .fields(module)
                .iter()
                .filter(|f| {
                    f.system_mandatory
                        && !is_given(values.get(&f.api_name))
                        && !field_errors
                            .iter()
                            .any(|e| e["details"]["api_name"] == f.api_name.as_str())
                })
                .map(|f| mandatory_error(i, &f.api_name))
                .collect();
            let mut errors = field_errors;
            errors.extend(missing);
            errors.extend(unique_errors(state, module, i, &values, None));
            if !errors.is_empty() {
                return Err(one_or_many(errors));
            }
            let stored: Map<String, Value> =
                values.into_iter().filter(|(_, v)| !v.is_null()).collect();
            let record = state.store.insert(module, stored, now);
            Ok(success(
                record,
                "record added",
                mode,
                Some(("insert", None)),
            ))
        }
    }
}

/// The record's field values that pass their field's checks, and an error
/// for each one that does not.
fn checked_values(
    state: &SimState,
    module: Module,
    i: usize,
    obj: &Map<String, Value>,
) -> (Map<String, Value>, Vec<Value>) {
    let mut values = Map::new();
    let mut errors = Vec::new();
    for (k, v) in obj {
        if k == "id" || k.starts_with('$') {
            continue;
        }
        let path = format!("$.data[{i}].{k}");
        match state.schema.get(module, k) {
            None => errors.push(record_error(
                "INVALID_DATA",
                "the field api name given seems to be invalid",
                json!({"api_name": k, "json_path": path}),
            )),
            Some(FieldDef {
                read_only: true, ..
            }) => errors.push(record_error(
                "INVALID_DATA",
                "invalid data",
                json!({"api_name": k, "json_path": path}),
            )),
            Some(def) => match check_value(def, v, |m, id| state.store.exists(m, id)) {
                Ok(stored) => {
                    values.insert(k.clone(), stored);
                }
                Err(issue) => errors.push(issue.to_error(i, k)),
            },
        }
    }
    (values, errors)
}

fn known_id(state: &SimState, module: Module, i: usize, id: &str) -> Result<String, Value> {
    if state.store.exists(module, id) {
        Ok(id.to_owned())
    } else {
        Err(record_error(
            "INVALID_DATA",
            "the id given seems to be invalid.",
            json!({"api_name": "id", "json_path": format!("$.data[{i}].id"), "id": id}),
        ))
    }
}

fn mandatory_error(i: usize, api_name: &str) -> Value {
    record_error(
        "MANDATORY_NOT_FOUND",
        "required field not found",
        json!({"api_name": api_name, "json_path": format!("$.data[{i}].{api_name}")}),
    )
}

fn unique_errors(
    state: &SimState,
    module: Module,
    i: usize,
    values: &Map<String, Value>,
    own: Option<&str>,
) -> Vec<Value> {
    state
        .schema
        .unique_fields(module)
        .into_iter()
        .filter_map(|def| {
            let v = values.get(&def.api_name).filter(|v| is_given(Some(v)))?;
            let other = state.store.of(module).find(|r| {
                Some(r.id.as_str()) != own
                    && r.fields
                        .get(&def.api_name)
                        .is_some_and(|stored| same_value(stored, v))
            })?;
            Some(record_error(
                "DUPLICATE_DATA",
                "duplicate data",
                json!({
                    "api_name": def.api_name,
                    "json_path": format!("$.data[{i}].{}", def.api_name),
                    "id": other.id,
                    "duplicate_record": {
                        "id": other.id,
                        "module": {"api_name": module.api_name(), "id": module.id()},
                    },
                    "more_records": false,
                }),
            ))
        })
        .collect()
}

fn success(
    record: &Record,
    message: &str,
    mode: &WriteMode,
    action: Option<(&str, Option<String>)>,
) -> Value {
    let mut v = json!({
        "code": "SUCCESS",
        "details": record.write_details(),
        "message": message,
        "status": "success",
    });
    if *mode == WriteMode::Upsert {
        if let Some((action, matched)) = action {
            v["action"] = json!(action);
            v["duplicate_field"] = json!(matched);
        }
    }
    v
}

/// Sorts records for a list answer.
pub(crate) fn sort_records(records: &mut [&Record], p: &paging::Paging) {
    records.sort_by(|a, b| {
        let ord = match p.sort_by {
            SortBy::Id => a.id.cmp(&b.id),
            SortBy::CreatedTime => a.created.cmp(&b.created).then(a.id.cmp(&b.id)),
            SortBy::ModifiedTime => a.modified.cmp(&b.modified).then(a.id.cmp(&b.id)),
        };
        if p.desc {
            ord.reverse()
        } else {
            ord
        }
    });
}

// ---- handlers -------------------------------------------------------------

pub(crate) async fn write_handler(
    app: App,
    module: Module,
    mode: WriteMode,
    body: Bytes,
) -> Response {
    let body = match parse_body(&body) {
        Ok(b) => b,
        Err(e) => return e.into_response(),
    };
    let all_ok = if mode == WriteMode::Insert {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    let results = {
        let mut state = app.lock();
        write(&mut state, module, &body, &mode, Instant::now())
    };
    match results {
        Ok(results) => {
            let ok = results.iter().filter(|r| r.is_ok()).count();
            tracing::debug!(
                module = module.api_name(),
                ?mode,
                ok,
                refused = results.len() - ok,
                "records written"
            );
            write_answer(results, all_ok)
        }
        Err(e) => e.into_response(),
    }
}

pub(crate) async fn get_one(
    app: App,
    module: Module,
    Path(id): Path<String>,
    Query(q): Query<Vec<(String, String)>>,
) -> Response {
    let only = match paging::fields(&q, false) {
        Ok(f) => f,
        Err(e) => return e.into_response(),
    };
    let state = app.lock();
    match state.store.record(module, &id) {
        Some(r) => Json(json!({"data": [r.render(only.as_deref())]})).into_response(),
        None => StatusCode::NO_CONTENT.into_response(),
    }
}

pub(crate) async fn list(
    app: App,
    module: Module,
    Query(q): Query<Vec<(String, String)>>,
) -> Response {
    let result = (|| {
        let only = paging::fields(&q, true)?;
        let p = paging::paging(&q, true)?;
        if paging::beyond_reach(&p) {
            return Err(paging::discrete_limit());
        }
        let state = app.lock();
        let mut records: Vec<&Record> = state.store.of(module).collect();
        sort_records(&mut records, &p);
        let items = records.iter().map(|r| r.render(only.as_deref())).collect();
        Ok(paging::page_of(items, &p))
    })();
    result.unwrap_or_else(IntoResponse::into_response)
}

/// `GET /crm/v8/Contacts/{id}/Deals?fields=…`.
pub(crate) async fn contact_deals(
    app: App,
    Path(id): Path<String>,
    Query(q): Query<Vec<(String, String)>>,
) -> Response {
    let result = (|| {
        let only = paging::fields(&q, true)?;
        let p = paging::paging(&q, true)?;
        if paging::beyond_reach(&p) {
            return Err(paging::discrete_limit());
        }
        let state = app.lock();
        if !state.store.exists(Module::Contacts, &id) {
            return Err(ZohoError::new(
                StatusCode::NOT_FOUND,
                "INVALID_DATA",
                "The record does not exist",
            ));
        }
        let mut deals = state.store.deals_of(&id);
        sort_records(&mut deals, &p);
        let items = deals.iter().map(|r| r.render(only.as_deref())).collect();
        Ok(paging::page_of(items, &p))
    })();
    result.unwrap_or_else(IntoResponse::into_response)
}

/// `GET /crm/v8/settings/fields?module=…`.
pub(crate) async fn fields_meta(
    State(app): State<App>,
    Query(q): Query<Vec<(String, String)>>,
) -> Response {
    let Some(name) = paging::param(&q, "module") else {
        return ZohoError::required_param("module").into_response();
    };
    let Some(module) = Module::parse(name) else {
        return ZohoError::new(
            StatusCode::BAD_REQUEST,
            "INVALID_MODULE",
            "the module name given seems to be invalid",
        )
        .with_details(json!({"param_name": "module"}))
        .into_response();
    };
    let state = app.lock();
    let fields: Vec<Value> = state
        .schema
        .fields(module)
        .iter()
        .map(FieldDef::to_json)
        .collect();
    Json(json!({ "fields": fields })).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::zoho::ZohoSimConfig;

    fn state() -> SimState {
        SimState::new(ZohoSimConfig::default())
    }

    fn upsert(s: &mut SimState, body: Value) -> Vec<Result<Value, Value>> {
        write(
            s,
            Module::Contacts,
            &body,
            &WriteMode::Upsert,
            Instant::now(),
        )
        .expect("request accepted")
    }

    #[test]
    fn upsert_inserts_then_updates_by_email_ignoring_case() {
        let mut s = state();
        let r = upsert(
            &mut s,
            json!({"data": [{"Last_Name": "Sharma", "Email": "priya@acme.in"}], "duplicate_check_fields": ["Email"]}),
        );
        let first = r[0].as_ref().expect("inserted");
        assert_eq!(
            (first["action"].as_str(), first["duplicate_field"].is_null()),
            (Some("insert"), true)
        );
        assert_eq!(first["message"], "record added");
        let id = first["details"]["id"].clone();
        let r = upsert(
            &mut s,
            json!({"data": [{"Email": "Priya@ACME.in", "First_Name": "Priya"}], "duplicate_check_fields": ["Email"]}),
        );
        let second = r[0].as_ref().expect("updated");
        assert_eq!(second["action"], "update");
        assert_eq!(second["duplicate_field"], "Email");
        assert_eq!(second["details"]["id"], id);
        assert_eq!(s.store.of(Module::Contacts).count(), 1);
    }

    #[test]
    fn a_mixed_batch_answers_in_input_order_with_each_error_at_its_index() {
        let mut s = state();
        let body = json!({"data": [
            {"Last_Name": "A", "Email": "a@x.io"},
            {"Email": "b@x.io"},
            {"Last_Name": "C", "First_Name": "x".repeat(41)},
            {"Last_Name": "D", "Nope": 1},
        ]});
        let r = upsert(&mut s, body);
        assert!(r[0].is_ok());
        let missing = r[1].as_ref().expect_err("no last name");
        assert_eq!(missing["code"], "MANDATORY_NOT_FOUND");
        assert_eq!(missing["details"]["json_path"], "$.data[1].Last_Name");
        let long = r[2].as_ref().expect_err("too long");
        assert_eq!(
            (long["code"].as_str(), long["details"]["api_name"].as_str()),
            (Some("INVALID_DATA"), Some("First_Name"))
        );
        assert_eq!(long["details"]["maximum_length"], 40);
        let unknown = r[3].as_ref().expect_err("unknown field");
        assert_eq!(unknown["details"]["api_name"], "Nope");
        let response = write_answer(r, StatusCode::OK);
        assert_eq!(response.status(), StatusCode::MULTI_STATUS);
    }

    #[test]
    fn all_refused_is_400_and_all_inserted_is_201() {
        assert_eq!(
            write_answer(vec![Err(json!({}))], StatusCode::OK).status(),
            StatusCode::BAD_REQUEST
        );
        assert_eq!(
            write_answer(vec![Ok(json!({}))], StatusCode::CREATED).status(),
            StatusCode::CREATED
        );
    }

    #[test]
    fn upsert_by_id_updates_that_record_and_an_unknown_id_is_invalid_data() {
        let mut s = state();
        let r = upsert(
            &mut s,
            json!({"data": [{"Last_Name": "Phone", "Phone": "+14155552671"}]}),
        );
        let id = r[0].as_ref().expect("inserted")["details"]["id"]
            .as_str()
            .expect("id")
            .to_owned();
        let r = upsert(
            &mut s,
            json!({"data": [{"id": id, "Email": "p@x.io"}, {"id": "5725767000999999999", "Email": "q@x.io"}]}),
        );
        assert_eq!(r[0].as_ref().expect("updated")["details"]["id"], id);
        let bad = r[1].as_ref().expect_err("unknown id");
        assert_eq!(
            (bad["code"].as_str(), bad["details"]["api_name"].as_str()),
            (Some("INVALID_DATA"), Some("id"))
        );
        assert_eq!(
            s.store.record(Module::Contacts, &id).expect("r").fields["Email"],
            "p@x.io"
        );
    }

    #[test]
    fn a_unique_field_refuses_a_duplicate_and_names_the_holder() {
        let mut s = state();
        let mut email = s
            .schema
            .get(Module::Contacts, "Email")
            .expect("field")
            .clone();
        email.unique = true;
        s.schema.put(Module::Contacts, email);
        let a = write(
            &mut s,
            Module::Contacts,
            &json!({"data": [{"Last_Name": "A", "Email": "a@x.io"}]}),
            &WriteMode::Insert,
            Instant::now(),
        )
        .expect("ok")[0]
            .clone()
            .expect("inserted");
        let b = write(
            &mut s,
            Module::Contacts,
            &json!({"data": [{"Last_Name": "B", "Email": "b@x.io"}]}),
            &WriteMode::Insert,
            Instant::now(),
        )
        .expect("ok")[0]
            .clone()
            .expect("inserted");
        let b_id = b["details"]["id"].as_str().expect("id").to_owned();
        let r = write(
            &mut s,
            Module::Contacts,
            &json!({"data": [{"id": b_id, "Email": "A@x.io"}]}),
            &WriteMode::Update { path_id: None },
            Instant::now(),
        )
        .expect("ok");
        let e = r[0].as_ref().expect_err("duplicate");
        assert_eq!(e["code"], "DUPLICATE_DATA");
        assert_eq!(e["details"]["duplicate_record"]["id"], a["details"]["id"]);
    }

    #[test]
    fn upsert_checks_only_documented_duplicate_fields_and_caps_the_batch() {
        let mut s = state();
        let e = write(
            &mut s,
            Module::Contacts,
            &json!({"data": [{"Last_Name": "A"}], "duplicate_check_fields": ["Phone"]}),
            &WriteMode::Upsert,
            Instant::now(),
        )
        .expect_err("Phone is not unique");
        assert_eq!(e.code, "INVALID_DATA");
        let many: Vec<Value> = (0..101)
            .map(|i| json!({"Last_Name": format!("L{i}")}))
            .collect();
        let e = write(
            &mut s,
            Module::Contacts,
            &json!({"data": many}),
            &WriteMode::Upsert,
            Instant::now(),
        )
        .expect_err("over 100");
        assert_eq!(e.details["maximum_length"], 100);
        let before = s.config.credits_used;
        let batch: Vec<Value> = (0..25)
            .map(|i| json!({"Last_Name": format!("L{i}")}))
            .collect();
        write(
            &mut s,
            Module::Contacts,
            &json!({"data": batch}),
            &WriteMode::Insert,
            Instant::now(),
        )
        .expect("ok");
        assert_eq!(
            s.config.credits_used - before,
            2,
            "3 credits for 25 records, 1 taken by the gate"
        );
    }

    #[test]
    fn a_deal_needs_its_name_a_listed_stage_and_an_existing_contact() {
        let mut s = state();
        let contact = upsert(&mut s, json!({"data": [{"Last_Name": "C"}]}))[0]
            .clone()
            .expect("ok")["details"]["id"]
            .clone();
        let r = write(
            &mut s,
            Module::Deals,
            &json!({"data": [
                {"Deal_Name": "D", "Stage": "Qualification", "Contact_Name": {"id": contact}},
                {"Deal_Name": "E", "Stage": "appointmentscheduled"},
                {"Stage": "Qualification", "Contact_Name": {"id": "1"}},
            ]}),
            &WriteMode::Insert,
            Instant::now(),
        )
        .expect("ok");
        assert!(r[0].is_ok());
        assert!(r[1].as_ref().expect_err("stage")["details"]["supported_values"].is_array());
        let multi = r[2].as_ref().expect_err("two problems");
        assert_eq!(multi["code"], "MULTIPLE_OR_MULTI_ERRORS");
        assert_eq!(s.store.deals_of(contact.as_str().expect("id")).len(), 1);
    }
}
