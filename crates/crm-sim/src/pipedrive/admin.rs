//! `/__admin` (contracts.md §3): no authentication, not counted, never rate limited.
//!
//! - `POST /__admin/faults` (the shared fault machinery: `kind`, `status`,
//!   `ms`, `probability`, `count`, `retry_after`, `route`), `GET` lists them,
//!   `DELETE` clears them.
//! - `GET /__admin/stats` → `{"total", "by_route": {"GET /api/v2/persons/search": n, …},
//!   "rate_limited", "faulted"}`.
//! - `POST /__admin/reset`: no records, custom fields, counters, faults or
//!   windows; the config is kept.
//! - `GET|POST /__admin/config`: `token`, `rate_limit_max`,
//!   `rate_limit_window_ms`, `search_rate_max`, `search_lag_ms`,
//!   `daily_budget`, `daily_used` (any subset; `daily_used: 0` is midnight).
//! - `POST /__admin/person-fields` `{"name", "field_type", "options"?: ["label", …]}`
//!   adds a custom person field, as an admin does in Settings → Data fields
//!   (schema drift) → 201 with the field as `GET /v1/personFields` lists it
//!   (its `key` is a fresh 40-character hash); `DELETE
//!   /__admin/person-fields/{key}` deletes one → 204, 404 if there is none.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};

use super::error::{AdminJson, PdError};
use super::fields::FIELD_TYPES;
use super::state::App;
use crate::faults::FaultSpec;

pub(crate) fn routes() -> Router<App> {
    Router::new()
        .route(
            "/__admin/faults",
            post(add_fault).get(list_faults).delete(clear_faults),
        )
        .route("/__admin/stats", get(stats))
        .route("/__admin/reset", post(reset))
        .route("/__admin/config", get(read_config).post(update_config))
        .route("/__admin/person-fields", post(add_field))
        .route("/__admin/person-fields/{key}", delete(delete_field))
}

async fn add_fault(
    State(app): State<App>,
    AdminJson(spec): AdminJson<FaultSpec>,
) -> Result<Response, PdError> {
    let id = app.lock().faults.add(spec).map_err(PdError::bad_request)?;
    tracing::info!(fault_id = id, "fault added");
    Ok((StatusCode::CREATED, Json(json!({ "id": id }))).into_response())
}

async fn list_faults(State(app): State<App>) -> Json<Value> {
    Json(json!({ "faults": app.lock().faults.list() }))
}

async fn clear_faults(State(app): State<App>) -> Json<Value> {
    Json(json!({ "cleared": app.lock().faults.clear() }))
}

async fn stats(State(app): State<App>) -> Json<Value> {
    Json(app.lock().stats.to_json())
}

async fn reset(State(app): State<App>) -> Json<Value> {
    app.lock().reset();
    tracing::info!("state reset");
    Json(json!({ "reset": true }))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ConfigUpdate {
    token: Option<String>,
    rate_limit_max: Option<u32>,
    rate_limit_window_ms: Option<u64>,
    search_rate_max: Option<u32>,
    search_lag_ms: Option<u64>,
    daily_budget: Option<u64>,
    daily_used: Option<u64>,
}

fn config_json(app: &App) -> Value {
    let state = app.lock();
    let c = &state.config;
    json!({
        "token": c.token,
        "rate_limit_max": c.rate_limit_max,
        "rate_limit_window_ms": c.rate_limit_window_ms,
        "search_rate_max": c.search_rate_max,
        "search_lag_ms": c.search_lag_ms,
        "daily_budget": c.daily_budget,
        "daily_used": c.daily_used,
    })
}

async fn read_config(State(app): State<App>) -> Json<Value> {
    Json(config_json(&app))
}

/// Any subset of the fields → the whole config. A new `token` revokes the old one.
async fn update_config(
    State(app): State<App>,
    AdminJson(update): AdminJson<ConfigUpdate>,
) -> Result<Json<Value>, PdError> {
    if update.rate_limit_window_ms == Some(0) {
        return Err(PdError::bad_request(
            "rate_limit_window_ms must be at least 1",
        ));
    }
    if update.token.as_deref().is_some_and(|t| t.trim().is_empty()) {
        return Err(PdError::bad_request("token must not be empty"));
    }
    {
        let mut state = app.lock();
        let c = &mut state.config;
        if let Some(v) = update.token {
            c.token = v.trim().to_owned();
        }
        if let Some(v) = update.rate_limit_max {
            c.rate_limit_max = v;
        }
        if let Some(v) = update.rate_limit_window_ms {
            c.rate_limit_window_ms = v;
        }
        if let Some(v) = update.search_rate_max {
            c.search_rate_max = v;
        }
        if let Some(v) = update.search_lag_ms {
            c.search_lag_ms = v;
        }
        if let Some(v) = update.daily_budget {
            c.daily_budget = v;
        }
        if let Some(v) = update.daily_used {
            c.daily_used = v;
        }
        tracing::info!(
            rate_limit_max = c.rate_limit_max,
            search_lag_ms = c.search_lag_ms,
            daily_budget = c.daily_budget,
            daily_used = c.daily_used,
            "config changed"
        );
    }
    Ok(Json(config_json(&app)))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct NewField {
    name: String,
    field_type: String,
    #[serde(default)]
    options: Vec<String>,
}

async fn add_field(
    State(app): State<App>,
    AdminJson(input): AdminJson<NewField>,
) -> Result<Response, PdError> {
    let name = input.name.trim().to_owned();
    if name.is_empty() {
        return Err(PdError::bad_request("a field needs a \"name\""));
    }
    if !FIELD_TYPES.contains(&input.field_type.as_str()) || input.field_type == "visible_to" {
        return Err(PdError::bad_request(format!(
            "unknown field_type \"{}\"",
            input.field_type
        )));
    }
    let with_options = matches!(input.field_type.as_str(), "enum" | "set");
    if with_options == input.options.is_empty() {
        return Err(PdError::bad_request(
            "\"options\" are required for enum and set fields, and only for them",
        ));
    }
    let mut state = app.lock();
    let order = state.fields.all.len() + 1;
    let field = state.fields.add(name, input.field_type, input.options);
    tracing::info!(key = %field.key, "person field added");
    Ok((StatusCode::CREATED, Json(field.to_json(order))).into_response())
}

async fn delete_field(
    State(app): State<App>,
    Path(key): Path<String>,
) -> Result<StatusCode, PdError> {
    if app.lock().fields.remove(&key) {
        tracing::info!(%key, "person field deleted");
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(PdError::not_found("Field"))
    }
}
