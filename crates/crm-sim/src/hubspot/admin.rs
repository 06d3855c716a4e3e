//! `/__admin`: faults, stats, reset, runtime config and schema edits
//! (contracts.md §3). No authentication, not counted, never rate limited.
//!
//! Schema edits (what schema-drift tests need), `{object}` = `contacts`,
//! `notes` or `deals`:
//! - `POST /__admin/properties/{object}` adds a property or replaces it whole →
//!   201 with its definition as `GET /crm/v3/properties/{object}/{name}` shows it:
//!   `{"name", "type": "string|number|enumeration|datetime|date|bool",
//!   "fieldType"?, "label"?, "groupName"?, "options"?: [{"value", "label"?, "hidden"?}],
//!   "readOnly"?, "calculated"?, "hasUniqueValue"?}` (a `bool` without options
//!   gets HubSpot's `true`/`false` ones).
//! - `PATCH /__admin/properties/{object}/{name}` changes the given fields of an
//!   existing property (same fields, all optional; `options` replaces the list)
//!   → 200 with the definition, 404 if there is none.
//! - `DELETE /__admin/properties/{object}/{name}` → 204, 404 if there is none.
//!
//! `POST /__admin/reset` restores the default schema.
//!
//! `PUT /__admin/contacts/{id}/additional-emails` with `{"emails": [..]}` sets a
//! contact's `hs_additional_emails` (what a HubSpot user does in the UI, or a
//! merge does; the API cannot write them) → 200 `{"id", "hs_additional_emails"}`;
//! 404 for an unknown contact, 400 for an invalid address, 409 `CONFLICT`
//! when an address already identifies another contact.
//!
//! `GET|POST /__admin/config` also carry `"scopes": [..]`, the scopes granted
//! to the token (replaced whole when given).

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post, put};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};

use super::error::{ApiError, HsJson, HsPath};
use super::objects::ObjectType;
use super::schema::{NewProperty, PropertyDef, PropertyOption, PropertyType};
use super::state::App;
use super::writes::set_additional_emails;
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
        .route("/__admin/properties/{object}", post(put_property))
        .route(
            "/__admin/properties/{object}/{name}",
            delete(delete_property).patch(patch_property),
        )
        .route(
            "/__admin/contacts/{id}/additional-emails",
            put(put_additional_emails),
        )
}

/// `POST /__admin/faults` → 201 `{"id": n}`.
async fn add_fault(
    State(app): State<App>,
    HsJson(spec): HsJson<FaultSpec>,
) -> Result<Response, ApiError> {
    let id = app.lock().faults.add(spec).map_err(ApiError::validation)?;
    tracing::info!(fault_id = id, "fault added");
    Ok((StatusCode::CREATED, Json(json!({ "id": id }))).into_response())
}

/// `GET /__admin/faults` → `{"faults":[{"id","kind",…,"count"?: remaining}]}`.
async fn list_faults(State(app): State<App>) -> Json<Value> {
    Json(json!({ "faults": app.lock().faults.list() }))
}

/// `DELETE /__admin/faults` → `{"cleared": n}`.
async fn clear_faults(State(app): State<App>) -> Json<Value> {
    let cleared = app.lock().faults.clear();
    Json(json!({ "cleared": cleared }))
}

async fn stats(State(app): State<App>) -> Json<Value> {
    Json(app.lock().stats.to_json())
}

/// Empties records, associations, counters, faults and rate windows, and
/// restores the default schema. The config is kept.
async fn reset(State(app): State<App>) -> Json<Value> {
    app.lock().reset();
    tracing::info!("state reset");
    Json(json!({ "reset": true }))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ConfigUpdate {
    rate_limit_max: Option<u32>,
    rate_limit_window_ms: Option<u64>,
    search_lag_ms: Option<u64>,
    search_rate_per_s: Option<u32>,
    /// Replaces the granted scopes.
    scopes: Option<Vec<String>>,
    daily_limit: Option<u64>,
    /// Requests counted today (0: midnight passed).
    daily_used: Option<u64>,
}

fn config_json(app: &App) -> Value {
    let state = app.lock();
    let c = &state.config;
    json!({
        "rate_limit_max": c.rate_limit_max,
        "rate_limit_window_ms": c.rate_limit_window_ms,
        "search_lag_ms": c.search_lag_ms,
        "search_rate_per_s": c.search_rate_per_s,
        "scopes": c.scopes,
        "daily_limit": c.daily_limit,
        "daily_used": c.daily_used,
    })
}

async fn read_config(State(app): State<App>) -> Json<Value> {
    Json(config_json(&app))
}

/// `POST /__admin/config` with any subset of the fields → the whole config.
async fn update_config(
    State(app): State<App>,
    HsJson(update): HsJson<ConfigUpdate>,
) -> Result<Json<Value>, ApiError> {
    if update.rate_limit_window_ms == Some(0) {
        return Err(ApiError::validation(
            "rate_limit_window_ms must be at least 1",
        ));
    }
    if let Some(scopes) = &update.scopes {
        if scopes.iter().any(|s| s.trim().is_empty()) {
            return Err(ApiError::validation("scopes must not contain empty names"));
        }
    }
    {
        let mut state = app.lock();
        let c = &mut state.config;
        if let Some(v) = update.rate_limit_max {
            c.rate_limit_max = v;
        }
        if let Some(v) = update.rate_limit_window_ms {
            c.rate_limit_window_ms = v;
        }
        if let Some(v) = update.search_lag_ms {
            c.search_lag_ms = v;
        }
        if let Some(v) = update.search_rate_per_s {
            c.search_rate_per_s = v;
        }
        if let Some(v) = update.scopes {
            c.scopes = v.into_iter().map(|s| s.trim().to_owned()).collect();
        }
        if let Some(v) = update.daily_limit {
            c.daily_limit = v;
        }
        if let Some(v) = update.daily_used {
            c.daily_used = v;
        }
        tracing::info!(config = ?c, "config changed");
    }
    Ok(Json(config_json(&app)))
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct PropertyInput {
    name: String,
    label: Option<String>,
    #[serde(rename = "type")]
    kind: String,
    field_type: Option<String>,
    group_name: Option<String>,
    #[serde(default)]
    options: Vec<OptionInput>,
    #[serde(default)]
    read_only: bool,
    #[serde(default)]
    has_unique_value: bool,
    #[serde(default)]
    calculated: bool,
}

#[derive(Debug, Deserialize)]
struct OptionInput {
    value: String,
    label: Option<String>,
    #[serde(default)]
    hidden: bool,
}

impl From<OptionInput> for PropertyOption {
    fn from(o: OptionInput) -> PropertyOption {
        PropertyOption {
            label: o.label.unwrap_or_else(|| o.value.clone()),
            value: o.value,
            hidden: o.hidden,
        }
    }
}

/// A partial change of one property (`PATCH`): absent fields are kept.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct PropertyPatch {
    label: Option<String>,
    #[serde(rename = "type")]
    kind: Option<String>,
    field_type: Option<String>,
    group_name: Option<String>,
    options: Option<Vec<OptionInput>>,
    read_only: Option<bool>,
    has_unique_value: Option<bool>,
    calculated: Option<bool>,
}

fn property_type(name: &str) -> Result<PropertyType, ApiError> {
    PropertyType::parse(name).ok_or_else(|| {
        ApiError::validation(format!(
            "unknown property type \"{name}\" (string, number, enumeration, datetime, date, bool)"
        ))
    })
}

fn property_not_found(name: &str) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "OBJECT_NOT_FOUND",
        format!("Unable to find property with name: {name}"),
    )
}

fn object_from_path(name: &str) -> Result<ObjectType, ApiError> {
    ObjectType::parse(name).ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "OBJECT_NOT_FOUND",
            format!("Unknown object type \"{name}\" (expected contacts, notes or deals)"),
        )
    })
}

/// `POST /__admin/properties/{object}`: adds or replaces one definition → 201.
async fn put_property(
    State(app): State<App>,
    HsPath(object): HsPath<String>,
    HsJson(input): HsJson<PropertyInput>,
) -> Result<Response, ApiError> {
    let object = object_from_path(&object)?;
    let name = input.name.trim().to_owned();
    if name.is_empty() {
        return Err(ApiError::validation("property \"name\" must not be empty"));
    }
    let kind = property_type(&input.kind)?;
    let def = PropertyDef::from(NewProperty {
        name,
        label: input.label,
        kind,
        field_type: input.field_type,
        group_name: input.group_name,
        options: input
            .options
            .into_iter()
            .map(PropertyOption::from)
            .collect(),
        read_only: input.read_only,
        has_unique_value: input.has_unique_value,
        calculated: input.calculated,
    });
    let body = def.to_json();
    tracing::info!(object = object.plural(), property = %def.name, "schema property put");
    app.lock().schema.put(object, def);
    Ok((StatusCode::CREATED, Json(body)).into_response())
}

/// `DELETE /__admin/properties/{object}/{name}` → 204, or 404 if absent.
async fn delete_property(
    State(app): State<App>,
    HsPath((object, name)): HsPath<(String, String)>,
) -> Result<StatusCode, ApiError> {
    let object = object_from_path(&object)?;
    if app.lock().schema.remove(object, &name) {
        tracing::info!(object = object.plural(), property = %name, "schema property removed");
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(property_not_found(&name))
    }
}

/// `PATCH /__admin/properties/{object}/{name}`: changes the given fields → 200.
async fn patch_property(
    State(app): State<App>,
    HsPath((object, name)): HsPath<(String, String)>,
    HsJson(patch): HsJson<PropertyPatch>,
) -> Result<Json<Value>, ApiError> {
    let object = object_from_path(&object)?;
    let kind = patch.kind.as_deref().map(property_type).transpose()?;
    let mut state = app.lock();
    let def = state
        .schema
        .get_mut(object, &name)
        .ok_or_else(|| property_not_found(&name))?;
    if let Some(kind) = kind {
        if kind != def.kind && patch.field_type.is_none() {
            def.field_type = kind.default_field_type().to_owned();
        }
        def.kind = kind;
    }
    if let Some(v) = patch.label {
        def.label = v;
    }
    if let Some(v) = patch.field_type {
        def.field_type = v;
    }
    if let Some(v) = patch.group_name {
        def.group_name = v;
    }
    if let Some(options) = patch.options {
        def.options = options.into_iter().map(PropertyOption::from).collect();
    }
    if let Some(v) = patch.has_unique_value {
        def.has_unique_value = v;
    }
    if let Some(v) = patch.calculated {
        def.calculated = v;
    }
    if let Some(v) = patch.read_only {
        def.read_only_value = v;
    }
    // A calculated property is never writable.
    def.read_only_value |= def.calculated;
    tracing::info!(object = object.plural(), property = %name, "schema property changed");
    Ok(Json(def.to_json()))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AdditionalEmails {
    emails: Vec<String>,
}

/// `PUT /__admin/contacts/{id}/additional-emails`: replaces the list → 200.
async fn put_additional_emails(
    State(app): State<App>,
    HsPath(id): HsPath<String>,
    HsJson(input): HsJson<AdditionalEmails>,
) -> Result<Json<Value>, ApiError> {
    let mut state = app.lock();
    let id = state
        .store
        .resolve(ObjectType::Contact, &id, false)
        .ok_or_else(ApiError::not_found)?;
    let stored = set_additional_emails(&mut state, id, &input.emails)?;
    tracing::info!(contact_id = id, "additional emails set");
    Ok(Json(
        json!({"id": id.to_string(), "hs_additional_emails": stored}),
    ))
}
