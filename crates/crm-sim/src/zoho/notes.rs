//! Notes ([V] create/get/update-notes pages v7, crm-oas v8 `notes.json` and
//! `notes/operations/*/examples`).
//!
//! - `POST /crm/v8/Notes` (or `POST /crm/v8/{module}/{id}/Notes`) with
//!   `{"data":[{"Note_Title","Note_Content","Parent_Id":{"module":{"api_name":"Contacts"},"id":"…"}}]}`,
//!   at most 100 notes per call ([V] "You can create a maximum of 100 notes
//!   per API call"); `Parent_Id` as a bare id with `se_module`/`$se_module`
//!   (the v2 shape, still in the v7 page's Deluge sample) is accepted too.
//!   All created 201, mixed 207, all refused 400 ([V] crm-oas v8
//!   `createNotesModule`). A note needs content or a title
//!   (`EXPECTED_FIELD_MISSING` "should contain either content or title" with
//!   `details.expected_fields`, [V] its 207 example); an unknown parent is
//!   `INVALID_DATA` "the related id given seems to be invalid" ([V] create
//!   page); `Note_Content` ≤ 65535 and `Note_Title` ≤ 120 characters ([V]
//!   crm-oas v8). Results are in input order.
//! - `GET /crm/v8/{module}/{id}/Notes?fields=…` and `GET /crm/v8/Notes?fields=…`:
//!   paged, `fields` mandatory, oldest first by default ("By default, the
//!   notes are sorted … the oldest note is displayed first", [V] get-notes
//!   page); `sort_by`/`sort_order` as for related records ([V]); 204 when none.
//! - `GET /crm/v8/Notes/{id}`; `PUT /crm/v8/Notes/{id}` with
//!   `{"data":[{"Note_Content"}]}` → 200 `{"data":[{"code":"SUCCESS",
//!   "message":"record updated",…}]}` ([V] crm-oas v8 updateNoteById); only
//!   `Note_Title` and `Note_Content` can change ([V] update page). An unknown
//!   note id is `INVALID_DATA` (unconfirmed).
//!
//! Unconfirmed, strict: a key other than the documented ones is refused.

use axum::body::Bytes;
use axum::extract::{Path, Query};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Map, Value};

use super::error::{parse_body, ZohoError};
use super::paging::{self, SortBy};
use super::records::{data_of, one_or_many, write_answer};
use super::schema::{check_value, Module};
use super::state::{App, State as SimState};
use super::store::Note;

fn error(code: &str, message: &str, details: Value) -> Value {
    json!({"code": code, "details": details, "message": message, "status": "error"})
}

/// Checks `Note_Title` / `Note_Content` of one input; errors for bad ones.
fn text_fields(
    state: &SimState,
    i: usize,
    obj: &Map<String, Value>,
    allowed: &[&str],
) -> (Option<String>, Option<String>, Vec<Value>) {
    let mut errors = Vec::new();
    for k in obj.keys() {
        if !allowed.contains(&k.as_str()) {
            errors.push(error(
                "INVALID_DATA",
                "the field api name given seems to be invalid",
                json!({"api_name": k, "json_path": format!("$.data[{i}].{k}")}),
            ));
        }
    }
    let mut text = |name: &str| -> Option<String> {
        let v = obj.get(name)?;
        let def = state.schema.get(Module::Notes, name)?;
        match check_value(def, v, |_, _| true) {
            Ok(Value::String(s)) => Some(s),
            Ok(_) => None,
            Err(issue) => {
                errors.push(issue.to_error(i, name));
                None
            }
        }
    };
    let title = text("Note_Title");
    let content = text("Note_Content");
    (title, content, errors)
}

fn parent_of(
    state: &SimState,
    i: usize,
    obj: &Map<String, Value>,
    path: Option<(Module, &str)>,
) -> Result<(Module, String), Value> {
    let missing = || {
        error(
            "MANDATORY_NOT_FOUND",
            "required field not found",
            json!({"api_name": "Parent_Id", "json_path": format!("$.data[{i}].Parent_Id")}),
        )
    };
    let (module, id) = match path {
        Some((m, id)) => (Some(m), id.to_owned()),
        None => match obj.get("Parent_Id") {
            Some(Value::Object(p)) => {
                let module = p.get("module").and_then(|m| {
                    m.get("api_name")
                        .and_then(Value::as_str)
                        .and_then(Module::parse)
                        .or_else(|| m.get("id").and_then(Value::as_str).and_then(Module::by_id))
                });
                let id = p.get("id").and_then(Value::as_str).ok_or_else(missing)?;
                (module, id.to_owned())
            }
            Some(Value::String(id)) => {
                let module = obj
                    .get("se_module")
                    .or_else(|| obj.get("$se_module"))
                    .and_then(Value::as_str)
                    .and_then(Module::parse);
                (module, id.clone())
            }
            _ => return Err(missing()),
        },
    };
    let invalid = || {
        error(
            "INVALID_DATA",
            "the related id given seems to be invalid",
            json!({"api_name": "Parent_Id", "json_path": format!("$.data[{i}].Parent_Id")}),
        )
    };
    let module = module
        .filter(|m| Module::RECORDS.contains(m))
        .ok_or_else(invalid)?;
    if !state.store.exists(module, &id) {
        return Err(invalid());
    }
    Ok((module, id))
}

/// Creates notes; `path`: the parent named by the URL.
pub(crate) fn create(
    state: &mut SimState,
    body: &Value,
    path: Option<(Module, &str)>,
) -> Result<Vec<Result<Value, Value>>, ZohoError> {
    let data = data_of(body)?;
    let extra = data.len().div_ceil(10).saturating_sub(1) as u64;
    state.config.credits_used += extra;
    let allowed = [
        "Note_Title",
        "Note_Content",
        "Parent_Id",
        "se_module",
        "$se_module",
    ];
    Ok(data
        .iter()
        .enumerate()
        .map(|(i, input)| {
            let obj = input.as_object().ok_or_else(|| {
                error(
                    "INVALID_DATA",
                    "invalid data",
                    json!({"api_name": "data", "json_path": format!("$.data[{i}]"), "expected_data_type": "jsonobject"}),
                )
            })?;
            let (title, content, mut errors) = text_fields(state, i, obj, &allowed);
            let parent = parent_of(state, i, obj, path);
            if let Err(e) = &parent {
                errors.push(e.clone());
            }
            if errors.is_empty() && title.is_none() && content.is_none() {
                errors.push(error(
                    "EXPECTED_FIELD_MISSING",
                    "should contain either content or title",
                    json!({"expected_fields": [
                        {"api_name": "Note_Content", "json_path": format!("$.data[{i}].Note_Content")},
                        {"api_name": "Note_Title", "json_path": format!("$.data[{i}].Note_Title")},
                    ]}),
                ));
            }
            if !errors.is_empty() {
                return Err(one_or_many(errors));
            }
            let (module, id) = parent.expect("checked above");
            let note = state.store.add_note(module, &id, title, content);
            Ok(json!({
                "code": "SUCCESS",
                "details": note.write_details(),
                "message": "record added",
                "status": "success",
            }))
        })
        .collect())
}

/// Updates one note (`PUT /Notes/{id}`).
pub(crate) fn update(
    state: &mut SimState,
    id: &str,
    body: &Value,
) -> Result<Vec<Result<Value, Value>>, ZohoError> {
    let data = data_of(body)?;
    if data.len() != 1 {
        return Err(ZohoError::invalid_data(
            "only one record can be updated through this URL",
            json!({"maximum_length": 1, "api_name": "data", "json_path": "$.data"}),
        ));
    }
    let result = (|| {
        let obj = data[0].as_object().ok_or_else(|| {
            error(
                "INVALID_DATA",
                "invalid data",
                json!({"api_name": "data", "json_path": "$.data[0]"}),
            )
        })?;
        let (title, content, errors) =
            text_fields(state, 0, obj, &["Note_Title", "Note_Content", "id"]);
        if !errors.is_empty() {
            return Err(one_or_many(errors));
        }
        let note = state.store.notes.get_mut(id).ok_or_else(|| {
            error(
                "INVALID_DATA",
                "the id given seems to be invalid.",
                json!({"api_name": "id", "json_path": "$.data[0].id", "id": id}),
            )
        })?;
        if let Some(t) = title {
            note.title = Some(t);
        }
        if let Some(c) = content {
            note.content = Some(c);
        }
        note.modified = chrono::Utc::now();
        Ok(json!({
            "code": "SUCCESS",
            "details": note.write_details(),
            "message": "record updated",
            "status": "success",
        }))
    })();
    Ok(vec![result])
}

fn sort_notes(notes: &mut [&Note], p: &paging::Paging) {
    notes.sort_by(|a, b| {
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

fn list_of(
    app: &App,
    q: &[(String, String)],
    parent: Option<(Module, &str)>,
) -> Result<Response, ZohoError> {
    let only = paging::fields(q, true)?;
    let p = paging::paging(q, false)?;
    if paging::beyond_reach(&p) {
        return Err(paging::discrete_limit());
    }
    let state = app.lock();
    let mut notes: Vec<&Note> = match parent {
        Some((m, id)) => {
            if !state.store.exists(m, id) {
                return Err(ZohoError::new(
                    StatusCode::NOT_FOUND,
                    "INVALID_DATA",
                    "The record does not exist",
                ));
            }
            state.store.notes_of(m, id)
        }
        None => state.store.notes.values().collect(),
    };
    sort_notes(&mut notes, &p);
    let items = notes.iter().map(|n| n.render(only.as_deref())).collect();
    Ok(paging::page_of(items, &p))
}

// ---- handlers -------------------------------------------------------------

pub(crate) async fn create_handler(
    app: App,
    parent: Option<(Module, String)>,
    body: Bytes,
) -> Response {
    let body = match parse_body(&body) {
        Ok(b) => b,
        Err(e) => return e.into_response(),
    };
    let results = {
        let mut state = app.lock();
        create(
            &mut state,
            &body,
            parent.as_ref().map(|(m, id)| (*m, id.as_str())),
        )
    };
    match results {
        Ok(r) => write_answer(r, StatusCode::CREATED),
        Err(e) => e.into_response(),
    }
}

pub(crate) async fn update_handler(app: App, Path(id): Path<String>, body: Bytes) -> Response {
    let body = match parse_body(&body) {
        Ok(b) => b,
        Err(e) => return e.into_response(),
    };
    let results = update(&mut app.lock(), &id, &body);
    match results {
        Ok(r) => write_answer(r, StatusCode::OK),
        Err(e) => e.into_response(),
    }
}

pub(crate) async fn related(
    app: App,
    module: Module,
    Path(id): Path<String>,
    Query(q): Query<Vec<(String, String)>>,
) -> Response {
    list_of(&app, &q, Some((module, &id))).unwrap_or_else(IntoResponse::into_response)
}

pub(crate) async fn all(app: App, Query(q): Query<Vec<(String, String)>>) -> Response {
    list_of(&app, &q, None).unwrap_or_else(IntoResponse::into_response)
}

pub(crate) async fn get_one(
    app: App,
    Path(id): Path<String>,
    Query(q): Query<Vec<(String, String)>>,
) -> Response {
    let only = match paging::fields(&q, false) {
        Ok(f) => f,
        Err(e) => return e.into_response(),
    };
    let state = app.lock();
    match state.store.notes.get(&id) {
        Some(n) => Json(json!({"data": [n.render(only.as_deref())]})).into_response(),
        None => StatusCode::NO_CONTENT.into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::zoho::ZohoSimConfig;
    use std::time::Instant;

    fn with_contact() -> (SimState, String) {
        let mut s = SimState::new(ZohoSimConfig::default());
        let mut f = Map::new();
        f.insert("Last_Name".into(), json!("C"));
        let id = s
            .store
            .insert(Module::Contacts, f, Instant::now())
            .id
            .clone();
        (s, id)
    }

    #[test]
    fn notes_are_created_per_item_in_order_with_documented_errors() {
        let (mut s, contact) = with_contact();
        let parent = json!({"module": {"api_name": "Contacts"}, "id": contact});
        let r = create(
            &mut s,
            &json!({"data": [
                {"Note_Content": "one", "Parent_Id": parent},
                {"Parent_Id": parent},
                {"Note_Content": "x", "Parent_Id": {"module": {"api_name": "Contacts"}, "id": "1"}},
                {"Note_Content": "legacy", "Parent_Id": contact, "se_module": "Contacts"},
                {"Note_Content": "y".repeat(65_536), "Parent_Id": parent},
            ]}),
            None,
        )
        .expect("accepted");
        assert!(r[0].is_ok());
        assert_eq!(
            r[1].as_ref().expect_err("empty")["code"],
            "EXPECTED_FIELD_MISSING"
        );
        assert_eq!(
            r[2].as_ref().expect_err("parent")["details"]["api_name"],
            "Parent_Id"
        );
        assert!(r[3].is_ok());
        assert_eq!(
            r[4].as_ref().expect_err("long")["details"]["maximum_length"],
            65_535
        );
        assert_eq!(s.store.notes_of(Module::Contacts, &contact).len(), 2);
    }

    #[test]
    fn a_note_update_replaces_its_content() {
        let (mut s, contact) = with_contact();
        let id = s
            .store
            .add_note(Module::Contacts, &contact, None, Some("a".into()))
            .id
            .clone();
        let r = update(&mut s, &id, &json!({"data": [{"Note_Content": "b"}]})).expect("accepted");
        assert_eq!(r[0].as_ref().expect("updated")["message"], "record updated");
        assert_eq!(s.store.notes[&id].content.as_deref(), Some("b"));
        let r = update(&mut s, "1", &json!({"data": [{"Note_Content": "b"}]})).expect("accepted");
        assert!(r[0].is_err());
    }
}
