//! Persons, API v2: `POST /api/v2/persons`, `PATCH|GET|DELETE
//! /api/v2/persons/{id}`, `GET /api/v2/persons` and `GET
//! /api/v2/persons/search` (SDK `v2/api/persons-api.ts` [V] for paths and
//! parameters).
//!
//! Writes (SDK `add-person-request.ts` [V]; `updatePerson` takes the same body):
//! `name`, `owner_id`, `org_id`, `add_time`, `update_time`, `emails` and
//! `phones` (`[{value, primary, label}]`), `visible_to`, `label_ids`,
//! `marketing_status`, `custom_fields`. Other parameters are refused, as v2
//! does (client-nodejs#651 [D]), except the Contact Sync fields (`notes`,
//! `im`, `birthday`, `job_title`, `postal_address`) which "return 403" without
//! Contact Sync (v2 docs, quoted in an integrator's notes [D]).
//! - `name` is required to create ("Name must be given.", a real v1 answer in
//!   client-nodejs#129 [D]; that v2 words it the same is [U]) and cannot be
//!   emptied by a PATCH [U].
//! - In `emails`/`phones` only `value` is required; `label` defaults to
//!   `work`; when no item is primary the first one is (v2 docs, quoted in an
//!   integrator's notes [D]). A PATCH that carries `emails` or `phones`
//!   replaces the whole array ("provide the complete array (it replaces the
//!   existing one)", a Pipedrive MCP tool's docs on glama.ai [D]). Addresses
//!   and numbers are stored as sent; Pipedrive's own checks of them are [U].
//! - Answers: `{"success": true, "data": <person>}`, status 200 for create as
//!   for update (the v2 collection's "Add a new deal" answers "OK" [D]; for
//!   persons [U]). Unknown or deleted person: 404 "Person not found" (v1's
//!   "Deal not found" wording [D]; [U] for persons).
//!
//! Search (SDK `searchPersons` [V]): `term` (at least 2 characters, or 1 with
//! `exact_match`), `fields` (`custom_fields,email,notes,phone,name`; default
//! all), `exact_match` ("only full exact matches against the given term are
//! returned. It is not case sensitive"), `limit` (default 100, max 500),
//! `cursor`. Answer `{"success":true,"data":{"items":[{"result_score",
//! "item":{"id","type":"person","name","phones":[..],"emails":[..],
//! "visible_to","owner":{"id"},"organization","custom_fields":[..],
//! "notes":[..]}}]},"additional_data":{"next_cursor"}}` (SDK
//! `get-person-search-response*.ts` [V]). The index lags writes (A.3 [R]):
//! search sees each person as it was `search_lag_ms` ago. A bad `term` is
//! answered in the search service's own shape, `{"success":false,"error":
//! {"message","code":400,"failed_fields":["term"]}}` (a recorded answer of
//! the v1 deal search in a Go client's fixtures [D]; for v2 [U]). How a phone
//! term is compared (digits only, or as written) is [U]: here as written,
//! ignoring case, like an email.

use std::time::Instant;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::{DateTime, Utc};
use serde_json::{json, Map, Value};

use super::body;
use super::error::{PdError, PdId, PdJson, PdQuery};
use super::state::{App, State as SimState};
use super::store::{Entry, Person, SearchView};

const PARAMS: [&str; 11] = [
    "name",
    "owner_id",
    "org_id",
    "add_time",
    "update_time",
    "emails",
    "phones",
    "visible_to",
    "label_ids",
    "marketing_status",
    "custom_fields",
];
const CONTACT_SYNC: [&str; 5] = ["notes", "im", "birthday", "job_title", "postal_address"];
const MARKETING_STATUSES: [&str; 4] = ["no_consent", "unsubscribed", "subscribed", "archived"];
const SEARCH_FIELDS: [&str; 5] = ["custom_fields", "email", "notes", "phone", "name"];
/// v2 list and search pages: "If not provided, 100 items will be returned.
/// Please note that a maximum value of 500 is allowed." (SDK [V]).
pub(crate) const DEFAULT_LIMIT: usize = 100;
pub(crate) const MAX_LIMIT: usize = 500;

pub(crate) fn ok(data: Value) -> Response {
    Json(json!({"success": true, "data": data})).into_response()
}

/// `limit` of a v2 list: 1..=500, default 100.
pub(crate) fn limit_of(q: &PdQuery) -> Result<usize, PdError> {
    match q.get("limit") {
        None => Ok(DEFAULT_LIMIT),
        Some(raw) => raw
            .parse::<usize>()
            .ok()
            .filter(|l| (1..=MAX_LIMIT).contains(l))
            .ok_or_else(|| PdError::validation("limit", "must be an integer from 1 to 500")),
    }
}

/// An opaque v2 cursor for "the first item on the next page" (readme,
/// "Cursor pagination" [V]); here it wraps a position.
pub(crate) fn cursor_of(q: &PdQuery) -> Result<u64, PdError> {
    match q.get("cursor") {
        None | Some("") => Ok(0),
        Some(raw) => raw
            .strip_prefix("pd_")
            .and_then(|hex| u64::from_str_radix(hex, 16).ok())
            .ok_or_else(|| PdError::validation("cursor", "is not a valid cursor")),
    }
}

pub(crate) fn make_cursor(position: u64) -> String {
    format!("pd_{position:x}")
}

/// `emails` / `phones` of a write: `None` when absent.
fn entries(body: &Map<String, Value>, key: &str) -> Result<Option<Vec<Entry>>, PdError> {
    let items = match body.get(key) {
        None => return Ok(None),
        Some(Value::Null) => return Ok(Some(Vec::new())),
        Some(Value::Array(items)) => items,
        Some(_) => return Err(PdError::validation(key, "must be an array")),
    };
    let mut out: Vec<Entry> = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let at = format!("{key}.{i}");
        let Some(item) = item.as_object() else {
            return Err(PdError::validation(&at, "must be an object"));
        };
        if let Some(k) = item
            .keys()
            .find(|k| !["value", "primary", "label"].contains(&k.as_str()))
        {
            return Err(PdError::not_allowed(&format!("{at}.{k}")));
        }
        let value = body::string(item, "value")
            .map_err(|_| PdError::validation(&format!("{at}.value"), "must be a string"))?
            .ok_or_else(|| PdError::validation(&format!("{at}.value"), "Required"))?;
        let primary = body::boolean(item, "primary")
            .map_err(|_| PdError::validation(&format!("{at}.primary"), "must be a boolean"))?
            .unwrap_or(false);
        let label = body::string(item, "label")
            .map_err(|_| PdError::validation(&format!("{at}.label"), "must be a string"))?
            .unwrap_or("work");
        let value = value.trim();
        if value.is_empty() {
            continue;
        }
        out.push(Entry {
            value: value.to_owned(),
            primary: primary && !out.iter().any(|e| e.primary),
            label: label.to_owned(),
        });
    }
    if !out.iter().any(|e| e.primary) {
        if let Some(first) = out.first_mut() {
            first.primary = true;
        }
    }
    Ok(Some(out))
}

fn time(body: &Map<String, Value>, key: &str) -> Result<Option<DateTime<Utc>>, PdError> {
    body::string(body, key)?
        .map(|s| {
            DateTime::parse_from_rfc3339(s)
                .map(|t| t.with_timezone(&Utc))
                .map_err(|_| PdError::validation(key, "must be an RFC 3339 date-time"))
        })
        .transpose()
}

/// Applies a create (`creating`) or patch body to `person`.
fn apply(
    state: &SimState,
    person: &mut Person,
    body: &Map<String, Value>,
    creating: bool,
) -> Result<(), PdError> {
    if let Some(k) = body.keys().find(|k| CONTACT_SYNC.contains(&k.as_str())) {
        return Err(PdError::new(
            StatusCode::FORBIDDEN,
            format!("The '{k}' field is available only with Contact Sync"),
        ));
    }
    body::only(body, &PARAMS)?;
    let name = body::string(body, "name")?.map(str::trim);
    match name {
        Some(n) if !n.is_empty() => person.name = n.to_owned(),
        Some(_) => return Err(PdError::bad_request("Name must be given.")),
        None if creating => return Err(PdError::bad_request("Name must be given.")),
        None => {}
    }
    body::id(body, "owner_id")?;
    if body::id(body, "org_id")?.is_some() {
        // No organizations are simulated.
        return Err(PdError::bad_request("Organization not found"));
    }
    if let Some(v) = body.get("visible_to").filter(|v| !v.is_null()) {
        if !v.as_u64().is_some_and(|v| [1, 3, 5, 7].contains(&v)) {
            return Err(PdError::validation(
                "visible_to",
                "must be one of 1, 3, 5, 7",
            ));
        }
    }
    match body.get("label_ids") {
        None | Some(Value::Null) => {}
        Some(Value::Array(ids)) if ids.is_empty() => {}
        Some(Value::Array(_)) => return Err(PdError::bad_request("Label not found")),
        Some(_) => return Err(PdError::validation("label_ids", "must be an array")),
    }
    if let Some(m) = body::string(body, "marketing_status")? {
        if !MARKETING_STATUSES.contains(&m) {
            return Err(PdError::validation(
                "marketing_status",
                "must be one of no_consent, unsubscribed, subscribed, archived",
            ));
        }
    }
    if let Some(t) = time(body, "add_time")? {
        person.add_time = t;
    }
    let update_time = time(body, "update_time")?;
    let emails = entries(body, "emails")?;
    let phones = entries(body, "phones")?;
    if let Some(custom) = body.get("custom_fields").filter(|v| !v.is_null()) {
        state.fields.check(custom)?;
        for (key, value) in custom.as_object().into_iter().flatten() {
            if value.is_null() {
                person.custom_fields.remove(key);
            } else {
                person.custom_fields.insert(key.clone(), value.clone());
            }
        }
    }
    if let Some(e) = emails {
        person.emails = e;
    }
    if let Some(p) = phones {
        person.phones = p;
    }
    person.update_time = update_time.unwrap_or_else(Utc::now);
    Ok(())
}

pub(crate) async fn create(
    State(app): State<App>,
    PdJson(body): PdJson,
) -> Result<Response, PdError> {
    let mut state = app.lock();
    let id = state.store.next_id();
    let mut person = Person::new(id, Utc::now());
    apply(&state, &mut person, &body, true)?;
    let data = person.to_json();
    state.save_person(person);
    tracing::info!(person_id = id, "person created");
    Ok(ok(data))
}

pub(crate) async fn update(
    State(app): State<App>,
    PdId(id): PdId,
    PdJson(body): PdJson,
) -> Result<Response, PdError> {
    let mut state = app.lock();
    let mut person = state
        .store
        .persons
        .get(&id)
        .cloned()
        .ok_or_else(|| PdError::not_found("Person"))?;
    apply(&state, &mut person, &body, false)?;
    let data = person.to_json();
    state.save_person(person);
    tracing::info!(person_id = id, "person updated");
    Ok(ok(data))
}

pub(crate) async fn read(State(app): State<App>, PdId(id): PdId) -> Result<Response, PdError> {
    let state = app.lock();
    let person = state
        .store
        .persons
        .get(&id)
        .ok_or_else(|| PdError::not_found("Person"))?;
    Ok(ok(person.to_json()))
}

/// `DELETE /api/v2/persons/{id}` → `{"success":true,"data":{"id"}}` (SDK
/// `delete-person-response-data.ts` [V]). A soft delete in Pipedrive ("purged
/// after 30 days" [D]); here the person is gone from reads at once and from
/// search after the lag.
pub(crate) async fn delete(State(app): State<App>, PdId(id): PdId) -> Result<Response, PdError> {
    let mut state = app.lock();
    let mut person = state
        .store
        .persons
        .remove(&id)
        .ok_or_else(|| PdError::not_found("Person"))?;
    let lag = state.search_lag();
    person.remember(None, Instant::now(), lag);
    state.store.deleted_persons.insert(id, person);
    tracing::info!(person_id = id, "person deleted");
    Ok(ok(json!({ "id": id })))
}

/// `GET /api/v2/persons?ids=&limit=&cursor=` in id order, cursor paged
/// (`additional_data.next_cursor`, `null` on the last page: readme [V]).
pub(crate) async fn list(State(app): State<App>, q: PdQuery) -> Result<Response, PdError> {
    let limit = limit_of(&q)?;
    let after = cursor_of(&q)?;
    let ids: Option<Vec<u64>> = match q.get("ids") {
        None | Some("") => None,
        Some(raw) => Some(
            raw.split(',')
                .map(|s| s.trim().parse::<u64>())
                .collect::<Result<Vec<_>, _>>()
                .map_err(|_| PdError::validation("ids", "must be a list of integers"))?,
        ),
    };
    if ids.as_ref().is_some_and(|i| i.len() > 100) {
        return Err(PdError::validation("ids", "at most 100 ids"));
    }
    let state = app.lock();
    let mut page: Vec<Value> = Vec::new();
    let mut next = None;
    for (id, person) in state.store.persons.range(after..) {
        if ids.as_ref().is_some_and(|wanted| !wanted.contains(id)) {
            continue;
        }
        if page.len() == limit {
            next = Some(make_cursor(*id));
            break;
        }
        page.push(person.to_json());
    }
    Ok(Json(json!({
        "success": true,
        "data": page,
        "additional_data": {"next_cursor": next},
    }))
    .into_response())
}

/// The search service's answer to a bad query (see the module docs).
fn bad_search(message: &str, field: &str) -> Response {
    (
        StatusCode::BAD_REQUEST,
        Json(json!({
            "success": false,
            "error": {
                "message": format!("ServerError [ERR_INVALID_INPUT]: Invalid input: {message}"),
                "code": 400,
                "failed_fields": [field],
            },
        })),
    )
        .into_response()
}

fn matches(term: &str, candidate: &str, exact: bool) -> bool {
    let candidate = candidate.trim().to_lowercase();
    if exact {
        candidate == term
    } else {
        candidate.contains(term)
    }
}

pub(crate) async fn search(State(app): State<App>, q: PdQuery) -> Result<Response, PdError> {
    let exact = match q.get("exact_match") {
        None | Some("false") => false,
        Some("true") => true,
        Some(_) => {
            return Ok(bad_search(
                "\"exact_match\" must be a boolean",
                "exact_match",
            ))
        }
    };
    let term = q.get("term").unwrap_or("").trim().to_lowercase();
    if term.is_empty() {
        return Ok(bad_search("\"term\" is not allowed to be empty", "term"));
    }
    if term.chars().count() < 2 && !exact {
        return Ok(bad_search(
            "\"term\" length must be at least 2 characters long",
            "term",
        ));
    }
    let fields: Vec<&str> = match q.get("fields") {
        None | Some("") => SEARCH_FIELDS.to_vec(),
        Some(raw) => raw.split(',').map(str::trim).collect(),
    };
    if let Some(bad) = fields.iter().find(|f| !SEARCH_FIELDS.contains(f)) {
        return Ok(bad_search(
            &format!("\"fields\" must be one of [custom_fields, email, notes, phone, name], got \"{bad}\""),
            "fields",
        ));
    }
    if q.get("organization_id").is_some() {
        // No organizations are simulated: nothing belongs to one.
        return Ok(Json(json!({"success": true, "data": {"items": []},
            "additional_data": {"next_cursor": null}}))
        .into_response());
    }
    let limit = limit_of(&q)?;
    let start = usize::try_from(cursor_of(&q)?).unwrap_or(usize::MAX);

    let state = app.lock();
    let cutoff = Instant::now().checked_sub(state.search_lag());
    let hit = |view: &SearchView| {
        (fields.contains(&"name") && matches(&term, &view.name, exact))
            || (fields.contains(&"email") && view.emails.iter().any(|e| matches(&term, e, exact)))
            || (fields.contains(&"phone") && view.phones.iter().any(|p| matches(&term, p, exact)))
            || (fields.contains(&"custom_fields")
                && view.custom.iter().any(|c| matches(&term, c, exact)))
    };
    let mut found: Vec<(u64, &SearchView)> = state
        .store
        .persons
        .values()
        .chain(state.store.deleted_persons.values())
        .filter_map(|p| {
            let view = p.as_of(cutoff?)?;
            hit(view).then_some((p.id, view))
        })
        .collect();
    found.sort_by_key(|(id, _)| *id);
    let items: Vec<Value> = found
        .iter()
        .skip(start)
        .take(limit)
        .map(|(id, view)| {
            json!({
                "result_score": 1.0,
                "item": {
                    "id": id,
                    "type": "person",
                    "name": view.name,
                    "phones": view.phones,
                    "emails": view.emails,
                    "visible_to": 3,
                    "owner": {"id": 1},
                    "organization": null,
                    "custom_fields": view.custom,
                    "notes": [],
                },
            })
        })
        .collect();
    let next =
        (found.len() > start.saturating_add(limit)).then(|| make_cursor((start + limit) as u64));
    Ok(Json(json!({
        "success": true,
        "data": {"items": items},
        "additional_data": {"next_cursor": next},
    }))
    .into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(v: Value) -> Map<String, Value> {
        v.as_object().cloned().expect("object")
    }

    #[test]
    fn entries_default_their_label_and_keep_one_primary() {
        let b = map(json!({"emails": [
            {"value": " a@x.io "}, {"value": "b@x.io", "primary": true, "label": "home"},
            {"value": "c@x.io", "primary": true}, {"value": ""}
        ]}));
        let e = entries(&b, "emails").expect("valid").expect("present");
        assert_eq!(e.len(), 3);
        assert_eq!(e[0].value, "a@x.io");
        assert_eq!(e[0].label, "work");
        assert_eq!(
            e.iter().map(|e| e.primary).collect::<Vec<_>>(),
            [false, true, false]
        );
        let none_primary = map(json!({"phones": [{"value": "+1"}, {"value": "+2"}]}));
        let p = entries(&none_primary, "phones")
            .expect("valid")
            .expect("present");
        assert!(p[0].primary && !p[1].primary);
        assert!(entries(&map(json!({"emails": [{"primary": true}]})), "emails").is_err());
        assert!(entries(
            &map(json!({"emails": [{"value": "a", "primary": "1"}]})),
            "emails"
        )
        .is_err());
        assert!(entries(&map(json!({"emails": [{"value": "a", "x": 1}]})), "emails").is_err());
    }

    #[test]
    fn cursors_round_trip_and_junk_is_refused() {
        let q = PdQuery(vec![("cursor".into(), make_cursor(42))]);
        assert_eq!(cursor_of(&q).expect("valid"), 42);
        assert!(cursor_of(&PdQuery(vec![("cursor".into(), "zzz".into())])).is_err());
        assert!(limit_of(&PdQuery(vec![("limit".into(), "501".into())])).is_err());
        assert_eq!(limit_of(&PdQuery(vec![])).expect("default"), 100);
    }
}
