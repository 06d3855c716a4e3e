//! Write operations: create, update, batch upsert — validation, HubSpot's
//! per-object rules (required properties, a contact's email/first/last name,
//! unique email), associations; and the admin API's additional emails.

use serde::Deserialize;
use serde_json::{json, Map, Value};

use super::error::ApiError;
use super::objects::{association_target, ObjectType};
use super::state::State;
use super::store::ADDITIONAL_EMAILS;
use super::validation::{
    batch_item_details, batch_item_message, invalid_properties, is_valid_email, normalise_email,
    validate_properties, PropertyError, PropertyWrites,
};

/// `{"to":{"id":"1001"},"types":[{"associationCategory":"HUBSPOT_DEFINED","associationTypeId":202}]}`
#[derive(Debug, Deserialize)]
pub(crate) struct AssociationInput {
    to: AssociationTo,
    #[serde(default)]
    types: Vec<AssociationTypeInput>,
}

#[derive(Debug, Deserialize)]
struct AssociationTo {
    id: Value,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct AssociationTypeInput {
    association_category: String,
    association_type_id: u32,
}

/// The body of a create: `{"properties":{..},"associations":[..]}`.
#[derive(Debug, Deserialize)]
pub(crate) struct CreateInput {
    #[serde(default)]
    pub properties: Map<String, Value>,
    #[serde(default)]
    pub associations: Vec<AssociationInput>,
}

/// A create that passed every check and only needs committing.
#[derive(Debug)]
pub(crate) struct PreparedCreate {
    object: ObjectType,
    writes: PropertyWrites,
    links: Vec<(ObjectType, u64)>,
}

impl PreparedCreate {
    fn email(&self) -> Option<&str> {
        self.writes.get("email").and_then(|v| v.as_deref())
    }
}

/// Checks a create without changing anything.
pub(crate) fn prepare_create(
    state: &State,
    object: ObjectType,
    input: &CreateInput,
) -> Result<PreparedCreate, ApiError> {
    let mut writes = validate_properties(&state.schema, object, &input.properties)
        .map_err(|errors| invalid_properties(&errors))?;
    if object == ObjectType::Deal && !matches!(writes.get("pipeline"), Some(Some(_))) {
        writes.insert("pipeline".into(), Some("default".into()));
    }
    let missing: Vec<PropertyError> = required_properties(object)
        .iter()
        .filter(|name| !matches!(writes.get(**name), Some(Some(_))))
        .map(|name| PropertyError::required(name))
        .collect();
    if !missing.is_empty() {
        return Err(invalid_properties(&missing));
    }
    if object == ObjectType::Contact {
        check_contact_identity(&writes).map_err(|e| invalid_properties(&[e]))?;
    }
    let links = resolve_associations(state, object, &input.associations)?;
    let prepared = PreparedCreate {
        object,
        writes,
        links,
    };
    if let Some(existing) = prepared
        .email()
        .and_then(|e| state.store.contact_by_email(e))
    {
        return Err(ApiError::conflict_existing_contact(existing));
    }
    Ok(prepared)
}

pub(crate) fn commit_create(state: &mut State, prepared: PreparedCreate) -> u64 {
    let lag = state.search_lag();
    let PreparedCreate {
        object,
        writes,
        links,
    } = prepared;
    let id = state.store.insert(object, writes, lag);
    for (to, to_id) in links {
        state.store.associate(object, id, to, to_id);
    }
    id
}

pub(crate) fn create(
    state: &mut State,
    object: ObjectType,
    input: &CreateInput,
) -> Result<u64, ApiError> {
    let prepared = prepare_create(state, object, input)?;
    Ok(commit_create(state, prepared))
}

/// `batch/create`: all inputs are checked first; one failure fails the batch.
pub(crate) fn create_batch(
    state: &mut State,
    object: ObjectType,
    inputs: &[CreateInput],
) -> Result<Vec<u64>, ApiError> {
    let mut prepared = Vec::with_capacity(inputs.len());
    let mut emails = std::collections::HashSet::new();
    for input in inputs {
        let p = prepare_create(state, object, input)?;
        if let Some(email) = p.email() {
            if !emails.insert(email.to_owned()) {
                return Err(ApiError::validation(format!(
                    "Duplicate IDs found in batch input: [{email}]"
                )));
            }
        }
        prepared.push(p);
    }
    Ok(prepared
        .into_iter()
        .map(|p| commit_create(state, p))
        .collect())
}

/// PATCH: merges properties into record `id` (which must exist).
pub(crate) fn update(
    state: &mut State,
    object: ObjectType,
    id: u64,
    properties: &Map<String, Value>,
) -> Result<(), ApiError> {
    let writes = validate_properties(&state.schema, object, properties)
        .map_err(|errors| invalid_properties(&errors))?;
    check_update(state, object, id, &writes).map_err(|e| match e {
        UpdateError::Invalid(errors) => invalid_properties(&errors),
        UpdateError::Conflict(existing) => ApiError::conflict_existing_contact(existing),
    })?;
    let lag = state.search_lag();
    if state.store.update(object, id, writes, lag) {
        Ok(())
    } else {
        Err(ApiError::not_found())
    }
}

enum UpdateError {
    Invalid(Vec<PropertyError>),
    Conflict(u64),
}

fn check_update(
    state: &State,
    object: ObjectType,
    id: u64,
    writes: &PropertyWrites,
) -> Result<(), UpdateError> {
    let cleared: Vec<PropertyError> = required_properties(object)
        .iter()
        .filter(|name| matches!(writes.get(**name), Some(None)))
        .map(|name| PropertyError::required(name))
        .collect();
    if !cleared.is_empty() {
        return Err(UpdateError::Invalid(cleared));
    }
    if object == ObjectType::Contact {
        if let Some(Some(email)) = writes.get("email") {
            if let Some(existing) = state.store.contact_by_email(email).filter(|e| *e != id) {
                return Err(UpdateError::Conflict(existing));
            }
        }
    }
    Ok(())
}

/// The properties of which a new contact needs at least one: "When creating a
/// new contact, it's required to include at least one of the following
/// properties: `email`, `firstname`, `lastname`" (D1, contacts guide,
/// https://developers.hubspot.com/docs/api-reference/legacy/crm/objects/contacts/guide,
/// "Create contacts with property values"). HubSpot's "Using object APIs" page
/// (D8) says "None, but recommended at least one of `email`, `firstname`, or
/// `lastname`"; the simulator enforces the stricter reading, since a simulator
/// more lenient than HubSpot hides failures. HubSpot's error body for it is
/// unconfirmed; the simulator answers its usual 400 `VALIDATION_ERROR`
/// (`Property values were not valid: [...]`, code `REQUIRED_PROPERTY`).
/// Applies to creates only (single and `batch/create`); an upsert that creates
/// always has the email it is keyed by, and a PATCH is not a create.
const CONTACT_IDENTITY: [&str; 3] = ["email", "firstname", "lastname"];

fn check_contact_identity(writes: &PropertyWrites) -> Result<(), PropertyError> {
    if CONTACT_IDENTITY
        .iter()
        .any(|name| matches!(writes.get(*name), Some(Some(_))))
    {
        Ok(())
    } else {
        Err(PropertyError::new(
            "email",
            "At least one of the properties email, firstname or lastname is required \
             to create a contact"
                .to_owned(),
            "REQUIRED_PROPERTY",
        ))
    }
}

fn required_properties(object: ObjectType) -> &'static [&'static str] {
    match object {
        ObjectType::Contact => &[],
        ObjectType::Note => &["hs_timestamp"],
        ObjectType::Deal => &["dealname", "dealstage"],
    }
}

fn resolve_associations(
    state: &State,
    from: ObjectType,
    inputs: &[AssociationInput],
) -> Result<Vec<(ObjectType, u64)>, ApiError> {
    let mut links = Vec::new();
    for input in inputs {
        let raw_id = match &input.to.id {
            Value::String(s) => s.clone(),
            Value::Number(n) => n.to_string(),
            other => {
                return Err(ApiError::validation(format!(
                    "Invalid association target id: {other}"
                )))
            }
        };
        if input.types.is_empty() {
            return Err(ApiError::validation(format!(
                "Association to {raw_id} has no types"
            )));
        }
        for t in &input.types {
            if t.association_category != "HUBSPOT_DEFINED" {
                return Err(ApiError::validation(format!(
                    "Unsupported associationCategory {} (the simulator knows HUBSPOT_DEFINED only)",
                    t.association_category
                )));
            }
            let to = association_target(from, t.association_type_id).ok_or_else(|| {
                ApiError::validation(format!(
                    "{} is not a valid association type id for {}",
                    t.association_type_id,
                    from.upper()
                ))
            })?;
            let to_id = state.store.resolve(to, &raw_id, false).ok_or_else(|| {
                ApiError::validation(format!(
                    "One or more associations are invalid: no {} with id {raw_id} exists",
                    to.upper()
                ))
                .with_context(json!({"ids": [raw_id]}))
            })?;
            links.push((to, to_id));
        }
    }
    Ok(links)
}

/// One `batch/upsert` input.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct UpsertInput {
    pub id: String,
    pub id_property: Option<String>,
    pub object_write_trace_id: Option<String>,
    #[serde(default)]
    pub properties: Map<String, Value>,
}

/// The result of one upsert input.
pub(crate) enum UpsertOutcome {
    Written { id: u64, new: bool },
    Failed(Value),
}

/// Checks what fails the whole batch: size and duplicate ids.
pub(crate) fn check_upsert_batch(inputs: &[UpsertInput]) -> Result<(), ApiError> {
    if inputs.len() > 100 {
        return Err(ApiError::validation(format!(
            "Batch input size {} exceeds the limit of 100",
            inputs.len()
        )));
    }
    let mut seen = std::collections::HashSet::new();
    let duplicates: Vec<&str> = inputs
        .iter()
        .filter(|i| !seen.insert(normalise_email(&i.id)))
        .map(|i| i.id.as_str())
        .collect();
    if duplicates.is_empty() {
        Ok(())
    } else {
        Err(ApiError::validation(format!(
            "Duplicate IDs found in batch input: [{}]",
            duplicates.join(", ")
        )))
    }
}

/// Which input of a batch an error entry is about: its `objectWriteTraceId`
/// when it sent one, else its id.
pub(crate) fn item_context(trace: Option<&str>, id: &str) -> Value {
    match trace {
        Some(trace) => json!({"objectWriteTraceId": [trace]}),
        None => json!({"ids": [id]}),
    }
}

/// One entry of a batch answer's `errors` (`details`: the property errors, if any).
pub(crate) fn batch_error(
    category: &str,
    message: &str,
    context: Value,
    details: Vec<Value>,
) -> Value {
    let mut error = json!({
        "status": "error",
        "category": category,
        "message": message,
        "context": context,
    });
    if !details.is_empty() {
        error["errors"] = Value::Array(details);
    }
    error
}

/// Upserts one contact by email; each input stands or fails on its own.
pub(crate) fn upsert_contact(state: &mut State, input: &UpsertInput) -> UpsertOutcome {
    let fail = |category: &str, message: String, details: Vec<Value>| {
        let context = item_context(input.object_write_trace_id.as_deref(), &input.id);
        UpsertOutcome::Failed(batch_error(category, &message, context, details))
    };
    match input.id_property.as_deref() {
        Some("email") => {}
        other => {
            return fail(
                "VALIDATION_ERROR",
                format!(
                    "idProperty {} is not supported; contacts upsert by \"email\"",
                    other.map_or("(missing)".to_owned(), |p| format!("\"{p}\""))
                ),
                Vec::new(),
            )
        }
    }
    let email = normalise_email(&input.id);
    if !is_valid_email(&email) {
        let error = PropertyError::new(
            "email",
            format!("Email address {} is invalid", input.id),
            "INVALID_EMAIL",
        );
        let errors = [error];
        return fail(
            "VALIDATION_ERROR",
            batch_item_message(&errors),
            batch_item_details(&errors),
        );
    }
    let mut writes =
        match validate_properties(&state.schema, ObjectType::Contact, &input.properties) {
            Ok(w) => w,
            Err(errors) => {
                return fail(
                    "VALIDATION_ERROR",
                    batch_item_message(&errors),
                    batch_item_details(&errors),
                )
            }
        };
    let lag = state.search_lag();
    match state.store.contact_by_email(&email) {
        Some(id) => match check_update(state, ObjectType::Contact, id, &writes) {
            Err(UpdateError::Invalid(errors)) => fail(
                "VALIDATION_ERROR",
                batch_item_message(&errors),
                batch_item_details(&errors),
            ),
            Err(UpdateError::Conflict(existing)) => fail(
                "CONFLICT",
                format!("Contact already exists. Existing ID: {existing}"),
                Vec::new(),
            ),
            Ok(()) => {
                state.store.update(ObjectType::Contact, id, writes, lag);
                UpsertOutcome::Written { id, new: false }
            }
        },
        None => {
            // The upsert id is the new contact's email (so the new contact has
            // the email `check_contact_identity` asks for).
            writes.insert("email".into(), Some(email));
            let id = state.store.insert(ObjectType::Contact, writes, lag);
            UpsertOutcome::Written { id, new: true }
        }
    }
}

/// Replaces contact `id`'s `hs_additional_emails` (admin API; HubSpot users
/// add them in the UI and merges add them, D1). "Additional emails are still
/// unique identifiers for contacts, so multiple contacts cannot have the same
/// additional email addresses" (D1, contacts guide, "Additional emails",
/// https://developers.hubspot.com/docs/api-reference/legacy/crm/objects/contacts/guide):
/// an address that is another contact's primary or additional email is a 409.
/// Returns the stored value (`;`-separated, lower-cased), empty when cleared.
pub(crate) fn set_additional_emails(
    state: &mut State,
    id: u64,
    emails: &[String],
) -> Result<String, ApiError> {
    let primary = state
        .store
        .get(ObjectType::Contact, id)
        .ok_or_else(ApiError::not_found)?
        .properties
        .get("email")
        .cloned();
    let mut list: Vec<String> = Vec::new();
    for raw in emails {
        let email = normalise_email(raw);
        if !is_valid_email(&email) {
            return Err(ApiError::validation(format!(
                "Email address {raw} is invalid"
            )));
        }
        if primary.as_deref() == Some(email.as_str()) {
            return Err(ApiError::validation(format!(
                "{email} is the contact's primary email"
            )));
        }
        if let Some(other) = state.store.contact_identified_by(&email, id) {
            return Err(ApiError::new(
                axum::http::StatusCode::CONFLICT,
                "CONFLICT",
                format!("{email} already identifies contact {other}"),
            ));
        }
        if !list.contains(&email) {
            list.push(email);
        }
    }
    let value = list.join(";");
    let write = (!value.is_empty()).then(|| value.clone());
    let lag = state.search_lag();
    state.store.update(
        ObjectType::Contact,
        id,
        [(ADDITIONAL_EMAILS.to_owned(), write)].into(),
        lag,
    );
    Ok(value)
}
