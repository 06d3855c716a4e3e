//! `/__admin` (contracts.md §3): faults, stats, reset, config, plus what the
//! Salesforce tests need. No authentication, not counted, never limited.
//!
//! - `POST /__admin/faults` / `GET` / `DELETE` — the shared fault machinery
//!   (`route` may name `"PATCH /services/data/v60.0/composite/sobjects/{sobject}/{field}"`
//!   or `"POST /services/oauth2/token"`). An injected 409 answers
//!   `UNABLE_TO_LOCK_ROW`, a 403 `REQUEST_LIMIT_EXCEEDED`.
//! - `GET /__admin/stats` → `{"total","by_route":{"METHOD /template": n},"rate_limited","faulted"}`.
//! - `POST /__admin/reset` → records, counters, faults, tokens, rules, locks
//!   and fields back to a fresh start (the config is kept).
//! - `GET|POST /__admin/config` → `{access_token_ttl_s, rotate_refresh_tokens,
//!   daily_api_limit, api_used, jwt_public_key}` (POST takes any subset;
//!   `jwt_public_key` is the connected app's certificate or RSA public key as
//!   PEM, checked on the way in, `""` removes it).
//! - `GET /__admin/oauth` → `{"revoked","reuse_detected","active_access_tokens",
//!   "refreshes","jwt_grants"}`; `POST /__admin/oauth/revoke` (the grant and
//!   its access tokens stop working), `/restore`, `/expire` (every access
//!   token stops working).
//! - `POST /__admin/leads/{id}/convert` → `{"contact_id"}` (see `api::convert_lead`).
//! - `POST /__admin/duplicate_rules` `{"sobject":"Lead"|"Contact","action":
//!   "alert"|"block"|"off"}`; `GET` lists the active ones.
//! - `POST /__admin/lock_rows` `{"count": n}`: the next n record writes fail
//!   with `UNABLE_TO_LOCK_ROW` (per record in collections, 400 alone).
//! - `POST /__admin/fields/{sobject}` adds or changes a field
//!   (`{"name","type"?,"length"?,"createable"?,"updateable"?,…}`, see
//!   `schema::field_from_admin`) → 201 with its describe entry; a picklist's
//!   values with `"picklistValues": [{"value": "Prospecting", "active": false}, …]`
//!   (the whole list; an inactive value is described `"active": false` and
//!   refused by a restricted picklist such as `Opportunity.StageName`);
//!   `DELETE /__admin/fields/{sobject}/{name}` → 204 (404 if absent).

use std::time::Instant;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};

use super::api::convert_lead;
use super::schema::{field_from_admin, SObject};
use super::state::{App, RuleAction};
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
        .route("/__admin/leads/{id}/convert", post(convert))
        .route("/__admin/duplicate_rules", post(set_rule).get(list_rules))
        .route("/__admin/lock_rows", post(lock_rows))
        .route("/__admin/fields/{sobject}", post(put_field))
        .route("/__admin/fields/{sobject}/{name}", delete(delete_field))
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
    rotate_refresh_tokens: Option<bool>,
    daily_api_limit: Option<u64>,
    api_used: Option<u64>,
    jwt_public_key: Option<String>,
}

fn config_json(app: &App) -> Value {
    let state = app.lock();
    let c = &state.config;
    json!({
        "access_token_ttl_s": c.access_token_ttl_s,
        "rotate_refresh_tokens": c.rotate_refresh_tokens,
        "daily_api_limit": c.daily_api_limit,
        "api_used": c.api_used,
        "jwt_public_key": c.jwt_public_key,
        "records": state.store.len(),
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
    if u.access_token_ttl_s == Some(0) {
        return bad_request("access_token_ttl_s must be at least 1");
    }
    if let Some(pem) = u.jwt_public_key.as_deref().filter(|p| !p.is_empty()) {
        if let Err(why) = super::oauth::app_public_key(pem) {
            return bad_request(why);
        }
    }
    {
        let mut state = app.lock();
        let c = &mut state.config;
        if let Some(v) = u.access_token_ttl_s {
            c.access_token_ttl_s = v;
        }
        if let Some(v) = u.rotate_refresh_tokens {
            c.rotate_refresh_tokens = v;
        }
        if let Some(v) = u.daily_api_limit {
            c.daily_api_limit = v;
        }
        if let Some(v) = u.api_used {
            c.api_used = v;
        }
        if let Some(pem) = u.jwt_public_key {
            c.jwt_public_key = Some(pem).filter(|p| !p.is_empty());
        }
        tracing::info!("config changed");
    }
    Json(config_json(&app)).into_response()
}

async fn oauth_state(State(app): State<App>) -> Json<Value> {
    let state = app.lock();
    Json(json!({
        "revoked": state.oauth.revoked,
        "reuse_detected": state.oauth.reuse_detected,
        "active_access_tokens": state.oauth.active(Instant::now()),
        "refreshes": state.oauth.refreshes,
        "jwt_grants": state.oauth.jwt_grants,
    }))
}

async fn revoke(State(app): State<App>) -> Json<Value> {
    app.lock().oauth.revoke();
    tracing::info!("grant revoked");
    Json(json!({ "revoked": true }))
}

async fn restore(State(app): State<App>) -> Json<Value> {
    app.lock().oauth.restore();
    tracing::info!("grant restored");
    Json(json!({ "revoked": false }))
}

async fn expire(State(app): State<App>) -> Json<Value> {
    app.lock().oauth.expire_all();
    tracing::info!("access tokens expired");
    Json(json!({ "expired": true }))
}

async fn convert(State(app): State<App>, Path(id): Path<String>) -> Response {
    let result = convert_lead(&mut app.lock(), &id, chrono::Utc::now());
    match result {
        Ok(contact_id) => {
            tracing::info!("lead converted");
            Json(json!({ "contact_id": contact_id })).into_response()
        }
        Err(why) => (StatusCode::NOT_FOUND, Json(json!({"error": why}))).into_response(),
    }
}

fn person_object(name: &str) -> Result<SObject, Box<Response>> {
    match SObject::parse(name) {
        Some(o) => Ok(o),
        None => {
            let known: Vec<&str> = SObject::ALL.iter().map(|o| o.name()).collect();
            Err(Box::new(
                (
                    StatusCode::NOT_FOUND,
                    Json(json!({"error": format!("unknown sObject \"{name}\" ({})", known.join(", "))})),
                )
                    .into_response(),
            ))
        }
    }
}

async fn set_rule(State(app): State<App>, body: Bytes) -> Response {
    let v: Value = match admin_body(&body) {
        Ok(v) => v,
        Err(why) => return bad_request(why),
    };
    let o = match person_object(v["sobject"].as_str().unwrap_or_default()) {
        Ok(o @ (SObject::Lead | SObject::Contact)) => o,
        Ok(_) => return bad_request("duplicate rules apply to Lead and Contact"),
        Err(r) => return *r,
    };
    let action = match v["action"].as_str() {
        Some("alert") => Some(RuleAction::Alert),
        Some("block") => Some(RuleAction::Block),
        Some("off") => None,
        _ => return bad_request("\"action\" is alert, block or off"),
    };
    {
        let mut state = app.lock();
        match action {
            Some(a) => state.duplicate_rules.insert(o, a),
            None => state.duplicate_rules.remove(&o),
        };
    }
    tracing::info!(sobject = o.name(), "duplicate rule set");
    rules_json(&app).into_response()
}

async fn list_rules(State(app): State<App>) -> Json<Value> {
    rules_json(&app)
}

fn rules_json(app: &App) -> Json<Value> {
    let state = app.lock();
    let rules: serde_json::Map<String, Value> = state
        .duplicate_rules
        .iter()
        .map(|(o, a)| {
            (
                o.name().to_owned(),
                json!(if *a == RuleAction::Alert {
                    "alert"
                } else {
                    "block"
                }),
            )
        })
        .collect();
    Json(json!({ "rules": rules }))
}

async fn lock_rows(State(app): State<App>, body: Bytes) -> Response {
    let v: Value = match admin_body(&body) {
        Ok(v) => v,
        Err(why) => return bad_request(why),
    };
    let Some(n) = v["count"].as_u64() else {
        return bad_request("\"count\" is required");
    };
    app.lock().lock_rows = n as u32;
    Json(json!({ "lock_rows": n })).into_response()
}

async fn put_field(State(app): State<App>, Path(sobject): Path<String>, body: Bytes) -> Response {
    let o = match person_object(&sobject) {
        Ok(o) => o,
        Err(r) => return *r,
    };
    let input: Value = match admin_body(&body) {
        Ok(v) => v,
        Err(why) => return bad_request(why),
    };
    let mut state = app.lock();
    let existing = state
        .schema
        .get(o, input["name"].as_str().unwrap_or_default())
        .cloned();
    let def = match field_from_admin(existing.as_ref(), &input) {
        Ok(d) => d,
        Err(why) => return bad_request(why),
    };
    let described = def.describe();
    tracing::info!(sobject = o.name(), field = %def.name, "field put");
    state.schema.put(o, def);
    (StatusCode::CREATED, Json(described)).into_response()
}

async fn delete_field(
    State(app): State<App>,
    Path((sobject, name)): Path<(String, String)>,
) -> Response {
    let o = match person_object(&sobject) {
        Ok(o) => o,
        Err(r) => return *r,
    };
    if app.lock().schema.remove(o, &name) {
        tracing::info!(sobject = o.name(), field = %name, "field removed");
        StatusCode::NO_CONTENT.into_response()
    } else {
        (
            StatusCode::NOT_FOUND,
            Json(json!({"error": format!("no field \"{name}\"")})),
        )
            .into_response()
    }
}
