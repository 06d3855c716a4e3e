//! HubSpot-shaped error responses and extractors whose rejections use them.

use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Path, Query, Request};
use axum::http::request::Parts;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::de::DeserializeOwned;
use serde_json::{json, Map, Value};

/// Where HubSpot's `MISSING_SCOPES` answers point (D8).
const SCOPES_URL: &str = "https://developers.hubspot.com/scopes";

/// A HubSpot error:
/// `{"status":"error","message","correlationId","category","errors"?,"context"?,"links"?}`.
#[derive(Debug, Clone)]
pub(crate) struct ApiError {
    pub status: StatusCode,
    pub category: String,
    pub message: String,
    /// Detail items `{"message","in","code"}`; omitted from the body when empty.
    pub errors: Vec<Value>,
    pub context: Option<Value>,
    /// Adds `"links": {"scopes": SCOPES_URL}` (on `MISSING_SCOPES`).
    pub scopes_link: bool,
}

impl ApiError {
    pub(crate) fn new(status: StatusCode, category: &str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            category: category.to_owned(),
            message: message.into(),
            errors: Vec::new(),
            context: None,
            scopes_link: false,
        }
    }

    pub(crate) fn validation(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, "VALIDATION_ERROR", message)
    }

    pub(crate) fn not_found() -> ApiError {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "OBJECT_NOT_FOUND",
            "resource not found",
        )
    }

    pub(crate) fn unauthenticated() -> ApiError {
        ApiError::new(
            StatusCode::UNAUTHORIZED,
            "INVALID_AUTHENTICATION",
            "Authentication credentials not found. This API supports OAuth 2.0 authentication \
             and you can find more details at \
             https://developers.hubspot.com/docs/methods/auth/oauth-overview",
        )
    }

    pub(crate) fn conflict_existing_contact(existing_id: u64) -> ApiError {
        ApiError::new(
            StatusCode::CONFLICT,
            "CONFLICT",
            format!("Contact already exists. Existing ID: {existing_id}"),
        )
    }

    /// 403 for a token without any of `any_of`. Body as in HubSpot's example of
    /// reading deals without `crm.objects.deals.read` (D8,
    /// https://developers.hubspot.com/docs/api-reference/legacy/crm/using-object-apis,
    /// "Error handling"): `requiredGranularScopes` lists alternatives, any one
    /// of which is enough ("One or more of the following scopes are required.").
    pub(crate) fn missing_scopes(any_of: &[&str]) -> ApiError {
        let mut error = ApiError::new(
            StatusCode::FORBIDDEN,
            "MISSING_SCOPES",
            format!(
                "This app hasn't been granted all required scopes to make this call. \
                 Read more about required scopes here: {SCOPES_URL}."
            ),
        )
        .with_errors(vec![json!({
            "message": "One or more of the following scopes are required.",
            "context": {"requiredGranularScopes": any_of},
        })]);
        error.scopes_link = true;
        error
    }

    /// The body an injected error fault answers with for `status`.
    pub(crate) fn for_status(status: StatusCode) -> ApiError {
        let (category, message) = match status.as_u16() {
            400 => ("VALIDATION_ERROR", "Bad Request"),
            401 => (
                "INVALID_AUTHENTICATION",
                "Authentication credentials not found.",
            ),
            403 => (
                "MISSING_SCOPES",
                "This app hasn't been granted all required scopes.",
            ),
            404 => ("OBJECT_NOT_FOUND", "resource not found"),
            409 => ("CONFLICT", "Conflict"),
            423 => ("LOCKED", "The resource is locked, try again later."),
            477 => ("MIGRATION_IN_PROGRESS", "Migration in progress"),
            500 => ("INTERNAL_ERROR", "Internal Server Error"),
            502 => ("BAD_GATEWAY", "Bad Gateway"),
            503 => ("SERVICE_UNAVAILABLE", "Service Unavailable"),
            504 => ("GATEWAY_TIMEOUT", "Gateway Timeout"),
            524 => ("TIMEOUT", "A timeout occurred"),
            _ => ("ERROR", status.canonical_reason().unwrap_or("Error")),
        };
        ApiError::new(status, category, message)
    }

    pub(crate) fn with_errors(mut self, errors: Vec<Value>) -> ApiError {
        self.errors = errors;
        self
    }

    pub(crate) fn with_context(mut self, context: Value) -> ApiError {
        self.context = Some(context);
        self
    }

    pub(crate) fn body(&self) -> Value {
        let mut body = Map::new();
        body.insert("status".into(), json!("error"));
        body.insert("message".into(), json!(self.message));
        body.insert("correlationId".into(), json!(correlation_id()));
        body.insert("category".into(), json!(self.category));
        if !self.errors.is_empty() {
            body.insert("errors".into(), Value::Array(self.errors.clone()));
        }
        if let Some(context) = &self.context {
            body.insert("context".into(), context.clone());
        }
        if self.scopes_link {
            body.insert("links".into(), json!({ "scopes": SCOPES_URL }));
        }
        Value::Object(body)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, Json(self.body())).into_response()
    }
}

/// Which HubSpot rate-limit policy rejected a request.
#[derive(Clone, Copy, Debug)]
pub(crate) enum RateLimitPolicy {
    /// The general per-token rolling window.
    TenSecondlyRolling,
    /// The separate per-second limit of the search endpoints.
    Secondly,
    /// The account's daily quota.
    Daily,
}

/// HubSpot's 429 body (note: `errorType` and `policyName`, no `category`).
pub(crate) fn rate_limit_body(policy: RateLimitPolicy) -> Value {
    let (message, policy_name) = match policy {
        RateLimitPolicy::TenSecondlyRolling => (
            "You have reached your ten_secondly_rolling limit.",
            "TEN_SECONDLY_ROLLING",
        ),
        RateLimitPolicy::Secondly => ("You have reached your secondly limit.", "SECONDLY"),
        RateLimitPolicy::Daily => ("You have reached your daily limit.", "DAILY"),
    };
    json!({
        "status": "error",
        "message": message,
        "errorType": "RATE_LIMIT",
        "correlationId": correlation_id(),
        "policyName": policy_name,
    })
}

/// A random UUID-v4-shaped id, like HubSpot's `correlationId`.
pub(crate) fn correlation_id() -> String {
    let n: u128 = rand::random();
    let hex = format!("{n:032x}");
    format!(
        "{}-{}-4{}-a{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[13..16],
        &hex[17..20],
        &hex[20..32]
    )
}

/// `Json` whose rejections are HubSpot-shaped (400 for bad JSON, 415 for a
/// missing `Content-Type: application/json`).
pub(crate) struct HsJson<T>(pub T);

impl<S, T> FromRequest<S> for HsJson<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        match Json::<T>::from_request(req, state).await {
            Ok(Json(value)) => Ok(HsJson(value)),
            Err(JsonRejection::MissingJsonContentType(_)) => Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "VALIDATION_ERROR",
                "Unsupported Media Type: expected Content-Type: application/json",
            )),
            Err(rejection) => Err(ApiError::validation(format!(
                "Invalid input JSON: {}",
                rejection.body_text()
            ))),
        }
    }
}

/// `Query` with HubSpot-shaped rejections.
pub(crate) struct HsQuery<T>(pub T);

impl<S, T> FromRequestParts<S> for HsQuery<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        Query::<T>::from_request_parts(parts, state)
            .await
            .map(|Query(v)| HsQuery(v))
            .map_err(|r: QueryRejection| {
                ApiError::validation(format!("Invalid query string: {}", r.body_text()))
            })
    }
}

/// `Path` with HubSpot-shaped rejections.
pub(crate) struct HsPath<T>(pub T);

impl<S, T> FromRequestParts<S> for HsPath<T>
where
    S: Send + Sync,
    T: DeserializeOwned + Send,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        Path::<T>::from_request_parts(parts, state)
            .await
            .map(|Path(v)| HsPath(v))
            .map_err(|r: PathRejection| {
                ApiError::validation(format!("Invalid path: {}", r.body_text()))
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn correlation_ids_look_like_uuids() {
        let id = correlation_id();
        assert_eq!(id.len(), 36);
        assert_eq!(id.matches('-').count(), 4);
        assert_ne!(id, correlation_id());
    }

    #[test]
    fn error_body_omits_empty_errors_and_context() {
        let body = ApiError::not_found().body();
        assert_eq!(body["category"], "OBJECT_NOT_FOUND");
        assert_eq!(body["status"], "error");
        assert!(body.get("errors").is_none());
        assert!(body.get("context").is_none());
    }
}
