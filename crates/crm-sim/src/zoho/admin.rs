//! `/__admin` (contracts.md §3): faults, stats, reset, config, plus what the
//! Zoho tests need: the grant (revoke, restore, expire tokens) and field edits.
//! No authentication, not counted, never limited.
//!
//! - `POST /__admin/faults` / `GET` / `DELETE` — the shared fault machinery
//!   (`route` may name `"POST /crm/v8/Contacts/upsert"` or `"POST /oauth/v2/token"`).
//! - `GET /__admin/stats` → `{"total","by_route":{"METHOD /template": n},"rate_limited","faulted"}`.
//! - `POST /__admin/reset` → records, notes, counters, faults, tokens and the
//!   schema back to a fresh start (the config and the grant are kept).
//! - `GET|POST /__admin/config` → `{access_token_ttl_s, token_mint_limit,
//!   token_mint_window_s, search_lag_ms, concurrency_limit, credits_limit,
//!   credits_used}` (POST takes any subset).
//! - `POST /__admin/oauth/revoke` revokes the refresh token (its access tokens
//!   stop working); `POST /__admin/oauth/restore` makes it valid again;
//!   `POST /__admin/oauth/expire` expires every access token; `GET
//!   /__admin/oauth` → `{"revoked","active_access_tokens","mints_in_window"}`.
//! - `POST /__admin/fields/{module}` adds or replaces (by `api_name`) a field:
//!   `{"api_name","data_type","length"?,"read_only"?,"system_mandatory"?,
//!   "unique"?,"pick_list_values"?: [..],"lookup_module"?,"field_label"?}` → 201
//!   with the field as `GET /crm/v8/settings/fields` lists it;
//!   `DELETE /__admin/fields/{module}/{api_name}` → 204 (404 if absent).

use std::time::Instant;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};

use super::schema::{field_from_admin, Module};
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
        .route("/__admin/oauth", get(oauth_state))
        .route("/__admin/oauth/revoke", post(revoke))
        .route("/__admin/oauth/restore", post(restore))
        .route("/__admin/oauth/expire", post(expire))
        .route("/__admin/fields/{module}", post(put_field))
        .route("/__admin/fields/{module}/{api_name}", delete(delete_field))
}

fn bad_request(message: impl Into<String>) -> Response {
    (
        StatusCode::BAD_REQUEST,
        Json(json!({"error": message.into()})),
    )
        .into_response()
}

fn admin_body<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, String> {
    serde_json::from_slice(body).map_err(|e| format!("invalid body: {e}"))
}

async fn add_fault(State(app): State<App>, body: Bytes) -> Response {
    let spec: FaultSpec = match admin_body(&body) {
        Ok(s) => s,
        Err(why) => return bad_request(why),
    };
    match app.lock().faults.add(spec) {
        Ok(id) => {
            tracing::info!(fault_id = id, "fault added");
            (StatusCode::CREATED, Json(json!({ "id": id }))).into_response()
        }
        Err(why) => bad_request(why),
    }
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
    access_token_ttl_s: Option<u64>,
    token_mint_limit: Option<u32>,
    token_mint_window_s: Option<u64>,
    search_lag_ms: Option<u64>,
    concurrency_limit: Option<u32>,
    credits_limit: Option<u64>,
    credits_used: Option<u64>,
}

fn config_json(app: &App) -> Value {
    let state = app.lock();
    let c = &state.config;
    json!({
        "access_token_ttl_s": c.access_token_ttl_s,
        "token_mint_limit": c.token_mint_limit,
        "token_mint_window_s": c.token_mint_window_s,
        "search_lag_ms": c.search_lag_ms,
        "concurrency_limit": c.concurrency_limit,
        "credits_limit": c.credits_limit,
        "credits_used": c.credits_used,
    })
}

async fn read_config(State(app): State<App>) -> Json<Value> {
    Json(config_json(&app))
}

async fn update_config(State(app): State<App>, body: Bytes) -> Response {
    let u: ConfigUpdate = match admin_body(&body) {
        Ok(u) => u,
        Err(why) => return bad_request(why),
    };
    if u.access_token_ttl_s == Some(0) || u.token_mint_window_s == Some(0) {
        return bad_request("access_token_ttl_s and token_mint_window_s must be at least 1");
    }
    {
        let mut state = app.lock();
        let c = &mut state.config;
        macro_rules! set {
            ($($f:ident),*) => { $( if let Some(v) = u.$f { c.$f = v; } )* };
        }
        set!(
            access_token_ttl_s,
            token_mint_limit,
            token_mint_window_s,
            search_lag_ms,
            concurrency_limit,
            credits_limit,
            credits_used
        );
        tracing::info!("config changed");
    }
    Json(config_json(&app)).into_response()
}

async fn oauth_state(State(app): State<App>) -> Json<Value> {
    let state = app.lock();
    let now = Instant::now();
    Json(json!({
        "revoked": state.oauth.revoked,
        "active_access_tokens": state.oauth.active(now),
        "mints_in_window": state.oauth.mints_in_window(&state.config, now),
    }))
}

async fn revoke(State(app): State<App>) -> Json<Value> {
    app.lock().oauth.revoke();
    tracing::info!("grant revoked");
    Json(json!({ "revoked": true }))
}

async fn restore(State(app): State<App>) -> Json<Value> {
    app.lock().oauth.revoked = false;
    tracing::info!("grant restored");
    Json(json!({ "revoked": false }))
}

async fn expire(State(app): State<App>) -> Json<Value> {
    app.lock().oauth.expire_all();
    tracing::info!("access tokens expired");
    Json(json!({ "expired": true }))
}

fn unknown_module(name: &str) -> Response {
    (
        StatusCode::NOT_FOUND,
        Json(
            json!({"error": format!("unknown module \"{name}\" (Leads, Contacts, Deals, Notes)")}),
        ),
    )
        .into_response()
}

async fn put_field(State(app): State<App>, Path(module): Path<String>, body: Bytes) -> Response {
    let Some(module) = Module::parse(&module) else {
        return unknown_module(&module);
    };
    let input: Value = match admin_body(&body) {
        Ok(v) => v,
        Err(why) => return bad_request(why),
    };
    let def = match field_from_admin(&input) {
        Ok(d) => d,
        Err(why) => return bad_request(why),
    };
    let name = def.api_name.clone();
    let mut state = app.lock();
    state.schema.put(module, def);
    let body = state
        .schema
        .get(module, &name)
        .map(|f| f.to_json())
        .unwrap_or(Value::Null);
    tracing::info!(module = module.api_name(), field = %name, "field put");
    (StatusCode::CREATED, Json(body)).into_response()
}

async fn delete_field(
    State(app): State<App>,
    Path((module, api_name)): Path<(String, String)>,
) -> Response {
    let Some(module) = Module::parse(&module) else {
        return unknown_module(&module);
    };
    if app.lock().schema.remove(module, &api_name) {
        tracing::info!(module = module.api_name(), field = %api_name, "field removed");
        StatusCode::NO_CONTENT.into_response()
    } else {
        (
            StatusCode::NOT_FOUND,
            Json(json!({"error": format!("no field \"{api_name}\"")})),
        )
            .into_response()
    }
}
