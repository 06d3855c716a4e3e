//! Deals, API v2: `POST /api/v2/deals`, `GET /api/v2/deals`, `GET
//! /api/v2/deals/{id}`; and the read-only `GET /api/v2/pipelines`, `GET
//! /api/v2/stages` (SDK `v2/api/deals-api.ts`, `pipelines-api.ts`,
//! `stages-api.ts` [V]).
//!
//! - Create body (SDK `add-deal-request.ts` [V]): `title` is required; the
//!   other parameters are optional; unknown ones are refused as v2 does
//!   (client-nodejs#651 [D]). A deal "must always have one contact linked"
//!   (readme, "How Pipedrive API works" [V]): `person_id` here (organizations
//!   are not simulated). `stage_id` decides the pipeline; without it the deal
//!   goes to the first stage of `pipeline_id`'s pipeline, or of the default one
//!   (v1 docs of `stage_id`/`pipeline_id`, SDK v1 models [D]). Error texts for
//!   a missing title, an unknown person or stage are [U].
//! - Answer 200 `{"success":true,"data":<deal>}` (the v2 collection's "Add a
//!   new deal" answers "OK" with the deal [D]); the deal object per the v2 spec
//!   example quoted in an integrator's notes [D] (ids are plain integers).
//! - List: `person_id`, `pipeline_id`, `stage_id`, `status` filters, `limit`
//!   (max 500), `cursor`; `additional_data.next_cursor` (SDK `getDeals` [V],
//!   readme "Cursor pagination" [V]). Deleted deals are not simulated.
//! - The one pipeline, "Pipeline", and its stages are Pipedrive's default
//!   pipeline as a new company gets it [R].

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::Utc;
use serde_json::{json, Value};

use super::body;
use super::error::{PdError, PdId, PdJson, PdQuery};
use super::persons::{cursor_of, limit_of, make_cursor, ok};
use super::state::App;
use super::store::{rfc3339, Deal};

const PIPELINE: (u64, &str) = (1, "Pipeline");
const STAGES: [(u64, &str); 5] = [
    (1, "Qualified"),
    (2, "Contact Made"),
    (3, "Demo Scheduled"),
    (4, "Proposal Made"),
    (5, "Negotiations Started"),
];
const PARAMS: [&str; 24] = [
    "title",
    "owner_id",
    "person_id",
    "org_id",
    "pipeline_id",
    "stage_id",
    "value",
    "currency",
    "add_time",
    "update_time",
    "stage_change_time",
    "is_deleted",
    "is_archived",
    "archive_time",
    "status",
    "probability",
    "lost_reason",
    "visible_to",
    "close_time",
    "won_time",
    "lost_time",
    "expected_close_date",
    "label_ids",
    "custom_fields",
];
const STATUSES: [&str; 3] = ["open", "won", "lost"];

fn deal_json(d: &Deal) -> Value {
    json!({
        "id": d.id,
        "title": d.title,
        "creator_user_id": 1,
        "owner_id": 1,
        "value": d.value,
        "person_id": d.person_id,
        "org_id": null,
        "stage_id": d.stage_id,
        "pipeline_id": d.pipeline_id,
        "currency": d.currency,
        "add_time": rfc3339(d.add_time),
        "update_time": rfc3339(d.update_time),
        "stage_change_time": null,
        "status": d.status,
        "is_archived": false,
        "is_deleted": false,
        "probability": null,
        "lost_reason": null,
        "visible_to": 3,
        "close_time": null,
        "won_time": null,
        "lost_time": null,
        "expected_close_date": d.expected_close_date.map(|d| d.format("%Y-%m-%d").to_string()),
        "label_ids": [],
        "origin": "API",
        "origin_id": null,
        "custom_fields": {},
    })
}

pub(crate) async fn create(
    State(app): State<App>,
    PdJson(body): PdJson,
) -> Result<Response, PdError> {
    body::only(&body, &PARAMS)?;
    let title = body::string(&body, "title")?
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .ok_or_else(|| PdError::validation("title", "Required"))?
        .to_owned();
    let person_id = body::id(&body, "person_id")?;
    if body::id(&body, "org_id")?.is_some() {
        return Err(PdError::bad_request("Organization not found"));
    }
    let pipeline_id = body::id(&body, "pipeline_id")?;
    let stage_id = body::id(&body, "stage_id")?;
    let value = body::number(&body, "value")?.unwrap_or(0.0);
    let currency = body::string(&body, "currency")?.unwrap_or("USD").to_owned();
    // A date, YYYY-MM-DD (SDK `add-deal-request.ts` [V]; the error text is [U]).
    let expected_close_date = body::string(&body, "expected_close_date")?
        .map(|d| {
            chrono::NaiveDate::parse_from_str(d, "%Y-%m-%d")
                .ok()
                .filter(|_| d.len() == 10)
                .ok_or_else(|| {
                    PdError::validation("expected_close_date", "must be a date (YYYY-MM-DD)")
                })
        })
        .transpose()?;
    let status = body::string(&body, "status")?.unwrap_or("open").to_owned();
    if !STATUSES.contains(&status.as_str()) {
        return Err(PdError::validation(
            "status",
            "must be one of open, won, lost",
        ));
    }
    body::boolean(&body, "is_deleted")?;
    body::boolean(&body, "is_archived")?;
    if body
        .get("custom_fields")
        .and_then(Value::as_object)
        .is_some_and(|m| !m.is_empty())
    {
        // No deal fields are simulated: every key is unknown.
        let key = body["custom_fields"]
            .as_object()
            .and_then(|m| m.keys().next())
            .cloned()
            .unwrap_or_default();
        return Err(PdError::validation(
            &format!("custom_fields.{key}"),
            format!("Custom field '{key}' does not exist"),
        ));
    }
    if pipeline_id.is_some_and(|p| p != PIPELINE.0) {
        return Err(PdError::bad_request("Pipeline not found"));
    }
    let stage_id = match stage_id {
        Some(s) if STAGES.iter().any(|(id, _)| *id == s) => s,
        Some(_) => return Err(PdError::bad_request("Stage not found")),
        None => STAGES[0].0,
    };

    let mut state = app.lock();
    let Some(person_id) = person_id else {
        return Err(PdError::bad_request(
            "A deal must be linked to a person or an organization.",
        ));
    };
    if !state.store.persons.contains_key(&person_id) {
        return Err(PdError::bad_request("Person not found"));
    }
    let id = state.store.next_id();
    let now = Utc::now();
    let deal = Deal {
        id,
        title,
        person_id: Some(person_id),
        pipeline_id: PIPELINE.0,
        stage_id,
        status,
        value,
        currency,
        expected_close_date,
        add_time: now,
        update_time: now,
    };
    let data = deal_json(&deal);
    state.store.deals.insert(id, deal);
    tracing::info!(deal_id = id, "deal created");
    Ok(ok(data))
}

pub(crate) async fn read(State(app): State<App>, PdId(id): PdId) -> Result<Response, PdError> {
    let state = app.lock();
    let deal = state
        .store
        .deals
        .get(&id)
        .ok_or_else(|| PdError::not_found("Deal"))?;
    Ok(ok(deal_json(deal)))
}

pub(crate) async fn list(State(app): State<App>, q: PdQuery) -> Result<Response, PdError> {
    let limit = limit_of(&q)?;
    let after = cursor_of(&q)?;
    let filter = |name: &str| -> Result<Option<u64>, PdError> {
        q.get(name)
            .filter(|v| !v.is_empty())
            .map(|v| {
                v.parse::<u64>()
                    .map_err(|_| PdError::validation(name, "must be an integer"))
            })
            .transpose()
    };
    let (person, pipeline, stage) = (
        filter("person_id")?,
        filter("pipeline_id")?,
        filter("stage_id")?,
    );
    let statuses: Option<Vec<&str>> = q.get("status").map(|s| s.split(',').collect());
    let state = app.lock();
    let mut page = Vec::new();
    let mut next = None;
    for (id, d) in state.store.deals.range(after..) {
        let keep = person.is_none_or(|p| d.person_id == Some(p))
            && pipeline.is_none_or(|p| d.pipeline_id == p)
            && stage.is_none_or(|s| d.stage_id == s)
            && statuses
                .as_ref()
                .is_none_or(|s| s.contains(&d.status.as_str()));
        if !keep {
            continue;
        }
        if page.len() == limit {
            next = Some(make_cursor(*id));
            break;
        }
        page.push(deal_json(d));
    }
    Ok(Json(json!({
        "success": true,
        "data": page,
        "additional_data": {"next_cursor": next},
    }))
    .into_response())
}

pub(crate) async fn pipelines() -> Response {
    Json(json!({
        "success": true,
        "data": [{"id": PIPELINE.0, "name": PIPELINE.1, "order_nr": 1, "is_deleted": false,
                  "is_deal_probability_enabled": false, "is_selected": true}],
        "additional_data": {"next_cursor": null},
    }))
    .into_response()
}

pub(crate) async fn stages(q: PdQuery) -> Result<Response, PdError> {
    if let Some(p) = q.get("pipeline_id") {
        if p.parse::<u64>().ok() != Some(PIPELINE.0) {
            return Ok(Json(json!({"success": true, "data": [],
                "additional_data": {"next_cursor": null}}))
            .into_response());
        }
    }
    let data: Vec<Value> = STAGES
        .iter()
        .zip(1..)
        .map(|((id, name), order)| {
            json!({"id": id, "order_nr": order, "name": name, "is_deleted": false,
                   "deal_probability": 100, "pipeline_id": PIPELINE.0,
                   "is_deal_rot_enabled": false, "days_to_rotten": null})
        })
        .collect();
    Ok(
        Json(json!({"success": true, "data": data, "additional_data": {"next_cursor": null}}))
            .into_response(),
    )
}
