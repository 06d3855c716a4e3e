//! Business route handlers (CRM v3 objects and properties). Each locks the
//! state once, does its work without awaiting, and renders the answer.

use std::time::Instant;

use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::Utc;
use serde::Deserialize;
use serde_json::{json, Map, Value};

use super::error::ApiError;
use super::objects::{association_type_id, ObjectType};
use super::render::{
    add_associations, base_url, paging_token, parse_paging_token, record_json, QueryParams,
    RecordView, Selection,
};
use super::search::{search, SearchRequest};
use super::state::{App, State};
use super::validation::format_timestamp;
use super::writes::{self, CreateInput, UpsertInput, UpsertOutcome};

/// HubSpot's batch size limit.
const MAX_BATCH: usize = 100;
const LIST_DEFAULT_LIMIT: usize = 10;
const LIST_MAX_LIMIT: usize = 100;
/// v4 association list page size: "Limit 500 per call", `limit` default 500
/// (S5 `PublicApiSpecs/CRM/Associations/Rollouts/130902/v4/associations.json`,
/// `GET /crm/v4/objects/{objectType}/{objectId}/associations/{toObjectType}`).
const V4_ASSOCIATIONS_LIMIT: usize = 500;

type HandlerResult = Result<Response, ApiError>;

#[derive(Debug, Deserialize)]
pub(crate) struct BatchInputs<T> {
    inputs: Vec<T>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct PatchInput {
    #[serde(default)]
    properties: Map<String, Value>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct BatchReadInput {
    inputs: Vec<BatchReadId>,
    #[serde(default)]
    properties: Vec<String>,
    id_property: Option<String>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct BatchReadId {
    id: Value,
}

fn check_batch_size(n: usize) -> Result<(), ApiError> {
    if n > MAX_BATCH {
        Err(ApiError::validation(format!(
            "Batch input size {n} exceeds the limit of {MAX_BATCH}"
        )))
    } else {
        Ok(())
    }
}

/// A stored record rendered with every stored property (write responses).
fn written_record(
    state: &State,
    object: ObjectType,
    id: u64,
) -> Result<Map<String, Value>, ApiError> {
    let record = state
        .store
        .get(object, id)
        .ok_or_else(ApiError::not_found)?;
    Ok(record_json(
        &state.schema,
        object,
        &RecordView::from(record),
        &Selection::Stored,
    ))
}

/// `POST /crm/v3/objects/{object}`
pub(crate) async fn create(app: App, object: ObjectType, input: CreateInput) -> HandlerResult {
    let mut state = app.lock();
    let id = writes::create(&mut state, object, &input)?;
    let body = written_record(&state, object, id)?;
    Ok((StatusCode::CREATED, Json(body)).into_response())
}

/// `GET /crm/v3/objects/{object}/{id}` (or `{email}?idProperty=email`)
pub(crate) async fn read(
    app: App,
    object: ObjectType,
    id: String,
    query: QueryParams,
    headers: HeaderMap,
) -> HandlerResult {
    let state = app.lock();
    let id = state
        .store
        .resolve(object, &id, query.by_email()?)
        .ok_or_else(ApiError::not_found)?;
    let record = state
        .store
        .get(object, id)
        .ok_or_else(ApiError::not_found)?;
    let selection = Selection::for_read(object, query.list("properties"));
    let mut body = record_json(&state.schema, object, &RecordView::from(record), &selection);
    add_associations(
        &mut body,
        &state.store,
        object,
        id,
        &query.association_kinds(),
        &base_url(&headers),
    );
    Ok(Json(body).into_response())
}

/// `PATCH /crm/v3/objects/{object}/{id}` (or `{email}?idProperty=email`)
pub(crate) async fn update(
    app: App,
    object: ObjectType,
    id: String,
    query: QueryParams,
    input: PatchInput,
) -> HandlerResult {
    let mut state = app.lock();
    let id = state
        .store
        .resolve(object, &id, query.by_email()?)
        .ok_or_else(ApiError::not_found)?;
    writes::update(&mut state, object, id, &input.properties)?;
    Ok(Json(written_record(&state, object, id)?).into_response())
}

/// `GET /crm/v3/objects/{object}?limit=&after=&properties=&associations=`:
/// records in id order; `after` is the id the next page starts at.
pub(crate) async fn list(
    app: App,
    object: ObjectType,
    query: QueryParams,
    headers: HeaderMap,
) -> HandlerResult {
    let limit = query.limit(LIST_DEFAULT_LIMIT, LIST_MAX_LIMIT)?;
    let after = match query.get("after") {
        None => 0,
        Some(raw) => raw
            .trim()
            .parse::<u64>()
            .map_err(|_| ApiError::validation(format!("Invalid paging token after=\"{raw}\"")))?,
    };
    let archived = query.get("archived") == Some("true");
    let base = base_url(&headers);
    let state = app.lock();
    let selection = Selection::for_read(object, query.list("properties"));
    let kinds = query.association_kinds();
    let mut page = state
        .store
        .range(object, after)
        .take(limit + 1)
        .collect::<Vec<_>>();
    if archived {
        // The simulator never archives records.
        page.clear();
    }
    let next = (page.len() > limit).then(|| page[limit].id);
    let results: Vec<Value> = page
        .iter()
        .take(limit)
        .map(|r| {
            let mut body = record_json(&state.schema, object, &RecordView::from(*r), &selection);
            add_associations(&mut body, &state.store, object, r.id, &kinds, &base);
            Value::Object(body)
        })
        .collect();
    let mut body = Map::new();
    body.insert("results".into(), Value::Array(results));
    if let Some(next) = next {
        let link = format!(
            "{base}/crm/v3/objects/{}?{}",
            object.plural(),
            query.with_after(&next.to_string())
        );
        body.insert(
            "paging".into(),
            json!({"next": {"after": next.to_string(), "link": link}}),
        );
    }
    Ok(Json(body).into_response())
}

/// `GET /crm/v4/objects/{fromObjectType}/{objectId}/associations/{toObjectType}?limit=&after=`
/// (S5 `PublicApiSpecs/CRM/Associations/Rollouts/130902/v4/associations.json`):
/// `{"results":[{"toObjectId":1002,"associationTypes":[{"category":"HUBSPOT_DEFINED",
/// "typeId":201,"label":null}]}],"paging"?:{"next":{"after","link"}}}` in
/// association creation order; `limit` defaults to 500 and is capped at 500.
/// `toObjectId` is a JSON number as in HubSpot's examples (D6,
/// https://developers.hubspot.com/docs/api-reference/legacy/crm/associations/associate-records/guide,
/// "Retrieve associated records"; the 130902 spec types it `string`, the 50914
/// v4 spec `integer`); unlabeled default associations have `"label": null` (D6).
/// Object types may be plural, singular or ids (`contacts`, `contact`, `0-1`).
/// An unknown `objectId` answers 404 (HubSpot's answer is unconfirmed).
pub(crate) async fn list_associations(
    app: App,
    (from, object_id, to): (String, String, String),
    query: QueryParams,
    headers: HeaderMap,
) -> HandlerResult {
    let object_type = |name: &str| {
        // Wording of HubSpot's answer for an unknown type unconfirmed.
        ObjectType::parse(name).ok_or_else(|| {
            ApiError::validation(format!("Unable to infer object type from: {name}"))
        })
    };
    let from = object_type(&from)?;
    let to = object_type(&to)?;
    let limit = query.limit(V4_ASSOCIATIONS_LIMIT, V4_ASSOCIATIONS_LIMIT)?;
    let after = match query.get("after") {
        None => 0,
        Some(raw) => parse_paging_token(raw)
            .ok_or_else(|| ApiError::validation(format!("Invalid paging token after=\"{raw}\"")))?,
    };
    let state = app.lock();
    let id = state
        .store
        .resolve(from, &object_id, false)
        .ok_or_else(ApiError::not_found)?;
    let type_id = association_type_id(from, to);
    let page = state.store.associations_page(from, id, to, after, limit);
    let results: Vec<Value> = page
        .items
        .iter()
        .map(|(to_id, _)| {
            json!({
                "toObjectId": to_id,
                "associationTypes": type_id
                    .map(|t| vec![json!({"category": "HUBSPOT_DEFINED", "typeId": t, "label": null})])
                    .unwrap_or_default(),
            })
        })
        .collect();
    let mut body = Map::new();
    body.insert("results".into(), Value::Array(results));
    if let Some(next) = page.next {
        let token = paging_token(next);
        let link = format!(
            "{}/crm/v4/objects/{}/{id}/associations/{}?{}",
            base_url(&headers),
            from.plural(),
            to.plural(),
            query.with_after(&token)
        );
        body.insert(
            "paging".into(),
            json!({"next": {"after": token, "link": link}}),
        );
    }
    Ok(Json(body).into_response())
}

/// `POST /crm/v3/objects/{object}/search`
pub(crate) async fn search_objects(
    app: App,
    object: ObjectType,
    request: SearchRequest,
) -> HandlerResult {
    let state = app.lock();
    let body = search(&state, object, &request, Instant::now())?;
    Ok(Json(body).into_response())
}

/// `POST /crm/v3/objects/{object}/batch/read`: 200, or 207 listing missing ids.
pub(crate) async fn batch_read(
    app: App,
    object: ObjectType,
    input: BatchReadInput,
) -> HandlerResult {
    check_batch_size(input.inputs.len())?;
    let started = format_timestamp(Utc::now());
    let state = app.lock();
    let by_email = match input.id_property.as_deref() {
        None | Some("hs_object_id") => false,
        Some("email") => true,
        Some(other) => {
            return Err(ApiError::validation(format!(
                "idProperty \"{other}\" is not a unique-value property"
            )))
        }
    };
    let selection = Selection::for_read(object, input.properties);
    let mut results = Vec::new();
    let mut missing = Vec::new();
    for item in &input.inputs {
        let raw = match &item.id {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        match state
            .store
            .resolve(object, &raw, by_email)
            .and_then(|id| state.store.get(object, id))
        {
            Some(r) => results.push(Value::Object(record_json(
                &state.schema,
                object,
                &RecordView::from(r),
                &selection,
            ))),
            None => missing.push(raw),
        }
    }
    // Every missing id in one entry.
    let errors = if missing.is_empty() {
        Vec::new()
    } else {
        vec![writes::batch_error(
            "OBJECT_NOT_FOUND",
            &format!(
                "Could not get some {} objects, they may be deleted or not exist. Check that ids are valid.",
                object.upper()
            ),
            json!({"ids": missing}),
            Vec::new(),
        )]
    };
    Ok(batch_answer(results, errors, &started))
}

/// `POST /crm/v3/objects/{object}/batch/create`: all or nothing, 201.
pub(crate) async fn batch_create(
    app: App,
    object: ObjectType,
    input: BatchInputs<CreateInput>,
) -> HandlerResult {
    check_batch_size(input.inputs.len())?;
    let started = format_timestamp(Utc::now());
    let mut state = app.lock();
    let ids = writes::create_batch(&mut state, object, &input.inputs)?;
    let results = ids
        .into_iter()
        .map(|id| written_record(&state, object, id).map(Value::Object))
        .collect::<Result<Vec<_>, _>>()?;
    let body = json!({
        "status": "COMPLETE",
        "results": results,
        "startedAt": started,
        "completedAt": format_timestamp(Utc::now()),
    });
    Ok((StatusCode::CREATED, Json(body)).into_response())
}

/// `POST /crm/v3/objects/contacts/batch/upsert`: each input stands alone;
/// 200 if all were written, 207 if some failed, 400 if all failed.
pub(crate) async fn batch_upsert(app: App, input: BatchInputs<UpsertInput>) -> HandlerResult {
    writes::check_upsert_batch(&input.inputs)?;
    let started = format_timestamp(Utc::now());
    let mut state = app.lock();
    let mut results = Vec::new();
    let mut errors = Vec::new();
    for item in &input.inputs {
        match writes::upsert_contact(&mut state, item) {
            UpsertOutcome::Written { id, new } => {
                let mut body = written_record(&state, ObjectType::Contact, id)?;
                body.insert("new".into(), json!(new));
                if let Some(trace) = &item.object_write_trace_id {
                    body.insert("objectWriteTraceId".into(), json!(trace));
                }
                results.push(Value::Object(body));
            }
            UpsertOutcome::Failed(error) => errors.push(error),
        }
    }
    if results.is_empty() {
        if let Some(first) = errors.first() {
            let message = first["message"]
                .as_str()
                .unwrap_or("Invalid input")
                .to_owned();
            let mut error = ApiError::validation(message);
            if let Some(details) = first.get("errors").and_then(Value::as_array) {
                error = error.with_errors(details.clone());
            }
            if let Some(context) = first.get("context") {
                error = error.with_context(context.clone());
            }
            return Err(error);
        }
    }
    Ok(batch_answer(results, errors, &started))
}

/// A batch call's answer: 200 with `results`, or 207 with `errors` too.
fn batch_answer(results: Vec<Value>, errors: Vec<Value>, started: &str) -> Response {
    let mut body = Map::new();
    body.insert("status".into(), json!("COMPLETE"));
    body.insert("results".into(), Value::Array(results));
    let status = if errors.is_empty() {
        StatusCode::OK
    } else {
        body.insert("numErrors".into(), json!(errors.len()));
        body.insert("errors".into(), Value::Array(errors));
        StatusCode::MULTI_STATUS
    };
    body.insert("startedAt".into(), json!(started));
    body.insert("completedAt".into(), json!(format_timestamp(Utc::now())));
    (status, Json(body)).into_response()
}

/// One `batch/update` input: a record id and the properties to set.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct UpdateInput {
    id: String,
    id_property: Option<String>,
    object_write_trace_id: Option<String>,
    #[serde(default)]
    properties: Map<String, Value>,
}

/// `POST /crm/v3/objects/{object}/batch/update` (D1: the contacts reference,
/// "Update a batch of contacts by ID (`contactId`) or unique property value
/// (`idProperty`)"; its answers are `BatchResponseSimplePublicObject` (200)
/// and `...WithErrors` (207)). Each input is checked and written as a PATCH
/// of that record would be (`writes::update`); a refused one becomes an
/// entry of `errors` with HubSpot's category and `context.ids` (or
/// `context.objectWriteTraceId`), the rest are written: 200 when none
/// failed, 207 when some did, and the first error as the answer when all
/// did (as `batch/upsert`). How HubSpot answers an id it does not have inside
/// a batch is not documented (U): here it is that input's `OBJECT_NOT_FOUND`.
/// Inputs name records by id: an `idProperty` (even `email`) is refused
/// whole, as HubSpot answered a batch update by email (R:
/// HubSpot/hubspot-api-nodejs#548, "Unable to perform update/upsert by
/// non-unique 0-1 property"; unique custom properties are not modelled).
/// Two inputs for one record fail the batch.
pub(crate) async fn batch_update(
    app: App,
    object: ObjectType,
    input: BatchInputs<UpdateInput>,
) -> HandlerResult {
    check_batch_size(input.inputs.len())?;
    let started = format_timestamp(Utc::now());
    let mut state = app.lock();
    // What fails the whole batch is found before anything is written.
    let mut seen = std::collections::HashSet::new();
    let mut targets = Vec::with_capacity(input.inputs.len());
    for item in &input.inputs {
        if let Some(other) = item.id_property.as_deref().filter(|p| *p != "hs_object_id") {
            return Err(ApiError::validation(format!(
                "Unable to perform update/upsert by non-unique 0-1 property {other}"
            )));
        }
        let resolved = state.store.resolve(object, &item.id, false);
        if let Some(id) = resolved {
            if !seen.insert(id) {
                return Err(ApiError::validation(format!(
                    "Duplicate IDs found in batch input: [{}]",
                    item.id
                )));
            }
        }
        targets.push(resolved);
    }
    let mut results = Vec::new();
    let mut errors: Vec<(ApiError, Value)> = Vec::new();
    for (item, resolved) in input.inputs.iter().zip(targets) {
        let outcome = resolved
            .ok_or_else(ApiError::not_found)
            .and_then(|id| writes::update(&mut state, object, id, &item.properties).map(|()| id));
        let context = writes::item_context(item.object_write_trace_id.as_deref(), &item.id);
        match outcome {
            Ok(id) => {
                let mut body = written_record(&state, object, id)?;
                if let Some(trace) = &item.object_write_trace_id {
                    body.insert("objectWriteTraceId".into(), json!(trace));
                }
                results.push(Value::Object(body));
            }
            Err(e) => errors.push((e, context)),
        }
    }
    if results.is_empty() && !errors.is_empty() {
        let (first, context) = errors.swap_remove(0);
        return Err(first.with_context(context));
    }
    let entries: Vec<Value> = errors
        .into_iter()
        .map(|(e, context)| writes::batch_error(&e.category, &e.message, context, e.errors))
        .collect();
    Ok(batch_answer(results, entries, &started))
}

/// `GET /crm/v3/properties/{object}`
pub(crate) async fn list_properties(app: App, object: ObjectType) -> HandlerResult {
    let state = app.lock();
    let results: Vec<Value> = state.schema.all(object).map(|d| d.to_json()).collect();
    Ok(Json(json!({ "results": results })).into_response())
}

/// `GET /crm/v3/pipelines/deals`: the deal pipelines and their stages
/// (pipelines API guide, "Retrieve pipelines": `results[]` of `id`, `label`,
/// `displayOrder`, `archived`, `stages[]` with `id`, `label`, `displayOrder`,
/// `metadata.isClosed`/`probability` as strings). The simulator has the
/// pipelines the `pipeline` property lists, each with every `dealstage`
/// option (a portal's pipelines each have their own stages; one pipeline is
/// what leadbridge's tests need).
pub(crate) async fn deal_pipelines(app: App) -> HandlerResult {
    let state = app.lock();
    let options = |name: &str| {
        state
            .schema
            .get(ObjectType::Deal, name)
            .map(|d| d.options.clone())
            .unwrap_or_default()
    };
    let stages: Vec<Value> = options("dealstage")
        .iter()
        .enumerate()
        .map(|(i, o)| {
            let closed = o.value.starts_with("closed");
            json!({
                "id": o.value, "label": o.label, "displayOrder": i, "archived": false,
                "metadata": {"isClosed": closed.to_string(),
                             "probability": if o.value == "closedwon" { "1.0" } else if closed { "0.0" } else { "0.2" }},
            })
        })
        .collect();
    let results: Vec<Value> = options("pipeline")
        .iter()
        .enumerate()
        .map(|(i, o)| json!({"id": o.value, "label": o.label, "displayOrder": i, "archived": false, "stages": stages}))
        .collect();
    Ok(Json(json!({ "results": results })).into_response())
}

/// `GET /crm/v3/properties/{object}/{name}`
pub(crate) async fn read_property(app: App, object: ObjectType, name: String) -> HandlerResult {
    let state = app.lock();
    let def = state.schema.get(object, &name).ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "OBJECT_NOT_FOUND",
            format!("Unable to find property with name: {name}"),
        )
    })?;
    Ok(Json(def.to_json()).into_response())
}
