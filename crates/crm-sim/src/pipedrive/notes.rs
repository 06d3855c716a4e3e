//! Notes, API v1 (no v2 exists: SDK has `v1/api/notes-api.ts` only [V]):
//! `POST /v1/notes`, `GET /v1/notes`, `GET|PUT /v1/notes/{id}`.
//!
//! - Create body (SDK `add-note-request-all-of.ts` [V]): `content` (required,
//!   HTML) and the parent: `lead_id`, `deal_id`, `person_id`, `org_id` or
//!   `project_id`, each "required unless one of (...) is specified" [V];
//!   A.3 reads it as exactly one; a note with none is refused, one with
//!   several too (the stricter reading, [U]). Optional `user_id`, `add_time`
//!   (UTC `YYYY-MM-DD HH:MM:SS`), `pinned_to_*_flag`. v1 bodies take extra
//!   keys (the SDK model is open: `[key: string]: any`) and ids as numbers or
//!   digit strings.
//! - A parent that does not exist: 400 "Cannot add/update note because deal
//!   does not exist or you have no permissions to access this deal." (a
//!   recorded v1 answer in a Go client's fixtures [D]); the person wording
//!   follows it [U]. Only persons and deals exist here.
//! - "The maximum note size is approximately 100,000 characters (or 100KB per
//!   note)" (Notes docs page; another version of it says 3,000,000 [V]): the
//!   smaller is enforced, on characters; the error text is [U]. An empty
//!   content is refused [U]. The content is stored as sent: Pipedrive's HTML
//!   sanitization is not simulated.
//! - Create answers 201 with `{"success":true,"data":<note>}` (v1 creates
//!   answer "Created" in the v1 collection [D]; for notes [U]); the note
//!   object per SDK `note.ts` [V], times as `YYYY-MM-DD HH:MM:SS`.
//! - List: `person_id`, `deal_id`, `start` (default 0), `limit` (default 100,
//!   "The maximum limit value is 500": readme, "Offset pagination" [V]; more is
//!   refused here [U]); `additional_data.pagination = {start, limit,
//!   more_items_in_collection, next_start?}` (readme [V]); no notes is
//!   `"data": null` (the readme's success example [V]). Order: by id,
//!   oldest first ([U]: the API's default order is not documented).
//! - Unknown note: 404 "Note not found" [U].

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::{NaiveDateTime, Utc};
use serde_json::{json, Map, Value};

use super::body;
use super::error::{PdError, PdId, PdJson, PdQuery};
use super::persons::{ok, DEFAULT_LIMIT, MAX_LIMIT};
use super::state::{App, State as SimState};
use super::store::{v1_time, Note};

/// The documented note size (see the module docs).
pub(crate) const MAX_CONTENT_CHARS: usize = 100_000;
const PARENTS: [&str; 5] = ["lead_id", "deal_id", "person_id", "org_id", "project_id"];

fn note_json(state: &SimState, note: &Note) -> Value {
    let person = note
        .person_id
        .and_then(|id| state.store.persons.get(&id))
        .map(|p| json!({"name": p.name}));
    let deal = note
        .deal_id
        .and_then(|id| state.store.deals.get(&id))
        .map(|d| json!({"title": d.title}));
    json!({
        "id": note.id,
        "active_flag": true,
        "add_time": v1_time(note.add_time),
        "update_time": v1_time(note.update_time),
        "content": note.content,
        "deal": deal,
        "lead_id": null,
        "deal_id": note.deal_id,
        "last_update_user_id": 1,
        "org_id": null,
        "organization": null,
        "person": person,
        "person_id": note.person_id,
        "project_id": null,
        "project": null,
        "pinned_to_deal_flag": false,
        "pinned_to_organization_flag": false,
        "pinned_to_person_flag": false,
        "pinned_to_project_flag": false,
        "pinned_to_lead_flag": false,
        "user": {"email": "owner@sim.pipedrive.invalid", "icon_url": null, "is_you": true, "name": "Sim Owner"},
        "user_id": 1,
    })
}

fn content(body: &Map<String, Value>, required: bool) -> Result<Option<String>, PdError> {
    match body.get("content") {
        None | Some(Value::Null) if !required => Ok(None),
        Some(Value::String(s)) if s.trim().is_empty() => {
            Err(PdError::bad_request("Note content can not be empty."))
        }
        Some(Value::String(s)) if s.chars().count() > MAX_CONTENT_CHARS => {
            Err(PdError::bad_request(
                "Note content is too long (the maximum is about 100,000 characters).",
            ))
        }
        Some(Value::String(s)) => Ok(Some(s.clone())),
        None | Some(Value::Null) => Err(PdError::bad_request("Note content can not be empty.")),
        Some(_) => Err(PdError::bad_request("Invalid content")),
    }
}

/// The note's parent: `(person_id, deal_id)`, checked to exist.
fn parent(
    state: &SimState,
    body: &Map<String, Value>,
) -> Result<(Option<u64>, Option<u64>), PdError> {
    let given: Vec<(&str, Option<u64>)> = PARENTS
        .iter()
        .filter(|k| body.get(**k).is_some_and(|v| !v.is_null() && v != ""))
        .map(|k| Ok((*k, body::v1_id(body, k)?)))
        .collect::<Result<_, PdError>>()?;
    match given.as_slice() {
        [] => Err(PdError::bad_request(
            "Note must be attached to a lead, deal, person, organization or project.",
        )),
        [(key, id)] => {
            let missing = |entity: &str| {
                PdError::bad_request(format!(
                    "Cannot add/update note because {entity} does not exist or you have no permissions to access this {entity}."
                ))
            };
            match *key {
                "person_id" => match id.filter(|i| state.store.persons.contains_key(i)) {
                    Some(i) => Ok((Some(i), None)),
                    None => Err(missing("person")),
                },
                "deal_id" => match id.filter(|i| state.store.deals.contains_key(i)) {
                    Some(i) => Ok((None, Some(i))),
                    None => Err(missing("deal")),
                },
                "org_id" => Err(missing("organization")),
                "lead_id" => Err(missing("lead")),
                _ => Err(missing("project")),
            }
        }
        _ => Err(PdError::bad_request(
            "Only one of lead_id, deal_id, person_id, org_id, project_id can be given.",
        )),
    }
}

fn add_time(body: &Map<String, Value>) -> Result<Option<chrono::DateTime<Utc>>, PdError> {
    match body.get("add_time") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => NaiveDateTime::parse_from_str(s.trim(), "%Y-%m-%d %H:%M:%S")
            .map(|t| Some(t.and_utc()))
            .map_err(|_| PdError::bad_request("Invalid add_time (expected YYYY-MM-DD HH:MM:SS)")),
        Some(_) => Err(PdError::bad_request(
            "Invalid add_time (expected YYYY-MM-DD HH:MM:SS)",
        )),
    }
}

pub(crate) async fn create(
    State(app): State<App>,
    PdJson(body): PdJson,
) -> Result<Response, PdError> {
    let mut state = app.lock();
    let content = content(&body, true)?.unwrap_or_default();
    let (person_id, deal_id) = parent(&state, &body)?;
    let now = Utc::now();
    let at = add_time(&body)?.unwrap_or(now);
    let id = state.store.next_id();
    let note = Note {
        id,
        content,
        person_id,
        deal_id,
        add_time: at,
        update_time: now,
    };
    let data = note_json(&state, &note);
    state.store.notes.insert(id, note);
    tracing::info!(note_id = id, "note created");
    Ok((
        StatusCode::CREATED,
        Json(json!({"success": true, "data": data})),
    )
        .into_response())
}

pub(crate) async fn read(State(app): State<App>, PdId(id): PdId) -> Result<Response, PdError> {
    let state = app.lock();
    let note = state
        .store
        .notes
        .get(&id)
        .ok_or_else(|| PdError::not_found("Note"))?;
    Ok(ok(note_json(&state, note)))
}

/// `PUT /v1/notes/{id}`: `content` and the parent may change.
pub(crate) async fn update(
    State(app): State<App>,
    PdId(id): PdId,
    PdJson(body): PdJson,
) -> Result<Response, PdError> {
    let mut state = app.lock();
    if !state.store.notes.contains_key(&id) {
        return Err(PdError::not_found("Note"));
    }
    let new_content = content(&body, false)?;
    let new_parent = if PARENTS.iter().any(|k| body.contains_key(*k)) {
        Some(parent(&state, &body)?)
    } else {
        None
    };
    let new_time = add_time(&body)?;
    let note = state.store.notes.get_mut(&id).expect("checked above");
    if let Some(c) = new_content {
        note.content = c;
    }
    if let Some((person_id, deal_id)) = new_parent {
        note.person_id = person_id;
        note.deal_id = deal_id;
    }
    if let Some(t) = new_time {
        note.add_time = t;
    }
    note.update_time = Utc::now();
    let note = note.clone();
    tracing::info!(note_id = id, "note updated");
    Ok(ok(note_json(&state, &note)))
}

fn offset(q: &PdQuery, name: &str, default: usize, max: usize) -> Result<usize, PdError> {
    match q.get(name) {
        None | Some("") => Ok(default),
        Some(raw) => raw
            .parse::<usize>()
            .ok()
            .filter(|v| *v <= max)
            .ok_or_else(|| PdError::bad_request(format!("Invalid {name}"))),
    }
}

pub(crate) async fn list(State(app): State<App>, q: PdQuery) -> Result<Response, PdError> {
    let start = offset(&q, "start", 0, usize::MAX)?;
    let limit = offset(&q, "limit", DEFAULT_LIMIT, MAX_LIMIT)?.max(1);
    let filter = |name: &str| -> Result<Option<u64>, PdError> {
        q.get(name)
            .filter(|v| !v.is_empty())
            .map(|v| {
                v.parse::<u64>()
                    .map_err(|_| PdError::bad_request(format!("Invalid {name}")))
            })
            .transpose()
    };
    let (person, deal) = (filter("person_id")?, filter("deal_id")?);
    let state = app.lock();
    let all: Vec<&Note> = state
        .store
        .notes
        .values()
        .filter(|n| person.is_none_or(|p| n.person_id == Some(p)))
        .filter(|n| deal.is_none_or(|d| n.deal_id == Some(d)))
        .collect();
    let page: Vec<Value> = all
        .iter()
        .skip(start)
        .take(limit)
        .map(|n| note_json(&state, n))
        .collect();
    let more = all.len() > start.saturating_add(limit);
    let mut pagination = json!({"start": start, "limit": limit, "more_items_in_collection": more});
    if more {
        pagination["next_start"] = json!(start + limit);
    }
    // An empty list is `"data": null`, as in the readme's success example [V].
    let data = if page.is_empty() {
        Value::Null
    } else {
        Value::Array(page)
    };
    Ok(Json(json!({
        "success": true,
        "data": data,
        "additional_data": {"pagination": pagination},
    }))
    .into_response())
}
