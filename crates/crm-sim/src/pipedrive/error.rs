//! Pipedrive's error envelopes, and extractors whose rejections use them.
//!
//! - Every error: `{"success": false, "error": "<description>", "error_info":
//!   "<how to solve>", "data": null, "additional_data": null}` (readme,
//!   "Responses" [V]; SDK `call-log-bad-request-response.ts` [V]).
//! - 401: `{"success":false,"error":"unauthorized access","errorCode":401,
//!   "error_info":"Please check developers.pipedrive.com"}`, the same body for
//!   a missing or a wrong token (SDK `unathorized-response.ts` [V] for the
//!   fields; the exact text as the live API answered it, quoted in several
//!   integrators' notes [D]).
//! - v2 validation errors add `"code": "ERR_SCHEMA_VALIDATION_FAILED"` and say
//!   `Validation failed: <field>: <why>` (a real answer quoted in
//!   pipedrive/client-nodejs#651 [D]; that one carried only `success`,
//!   `error` and `code`, so whether v2 also sends `error_info` is [U]).

use axum::extract::rejection::{JsonRejection, PathRejection};
use axum::extract::{FromRequest, FromRequestParts, Json, Path, Query, Request};
use axum::http::request::Parts;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::de::DeserializeOwned;
use serde_json::{json, Map, Value};

/// `error_info` of every error but the gateway's 401 (readme; Go client fixtures [D]).
pub(crate) const ERROR_INFO: &str =
    "Please check developers.pipedrive.com for more information about Pipedrive API.";
/// The v2 validation error code (client-nodejs#651 [D]).
pub(crate) const SCHEMA_VALIDATION_FAILED: &str = "ERR_SCHEMA_VALIDATION_FAILED";

#[derive(Debug, Clone)]
pub(crate) struct PdError {
    pub status: StatusCode,
    pub error: String,
    /// v2's machine code (`ERR_SCHEMA_VALIDATION_FAILED`), or v1's `code` on
    /// an account-limit 403.
    pub code: Option<String>,
}

impl PdError {
    pub(crate) fn new(status: StatusCode, error: impl Into<String>) -> PdError {
        PdError {
            status,
            error: error.into(),
            code: None,
        }
    }

    /// A v1-style refusal: 400 with Pipedrive's sentence.
    pub(crate) fn bad_request(error: impl Into<String>) -> PdError {
        PdError::new(StatusCode::BAD_REQUEST, error)
    }

    /// A v2 schema validation failure of one field:
    /// `Validation failed: <field>: <why>`.
    pub(crate) fn validation(field: &str, why: impl AsRef<str>) -> PdError {
        PdError {
            status: StatusCode::BAD_REQUEST,
            error: format!("Validation failed: {field}: {}", why.as_ref()),
            code: Some(SCHEMA_VALIDATION_FAILED.to_owned()),
        }
    }

    /// A body parameter v2 does not know: "Parameter 'x' is not allowed for
    /// this request" (client-nodejs#651 [D]).
    pub(crate) fn not_allowed(field: &str) -> PdError {
        PdError::validation(
            field,
            format!("Parameter '{field}' is not allowed for this request"),
        )
    }

    /// 404 for a missing record: "Deal not found" is what the v1 API answered
    /// (a Go client's recorded fixture [D]); the other entities' texts follow
    /// it [U].
    pub(crate) fn not_found(entity: &str) -> PdError {
        PdError::new(StatusCode::NOT_FOUND, format!("{entity} not found"))
    }

    /// The body an injected error fault answers with.
    pub(crate) fn for_status(status: StatusCode) -> PdError {
        let text = match status.as_u16() {
            // "Bad request" is v1's answer to a malformed write (client-nodejs#297 [D]).
            400 => "Bad request",
            402 => "Company account is not open",
            403 => "You don't have permission to change this resource.",
            404 => "A resource required for this operation was not found.",
            429 => "Request over limit",
            // v2's 500 (client-php#234 [D]): `{"error":"Internal Server Error","code":"ERR_UNKNOWN"}`.
            500 => "Internal Server Error",
            503 => "Requested service is not available",
            _ => status.canonical_reason().unwrap_or("Error"),
        };
        let mut e = PdError::new(status, text);
        if status == StatusCode::INTERNAL_SERVER_ERROR {
            e.code = Some("ERR_UNKNOWN".to_owned());
        }
        e
    }

    pub(crate) fn body(&self) -> Value {
        let mut body = Map::new();
        body.insert("success".into(), json!(false));
        body.insert("error".into(), json!(self.error));
        body.insert("error_info".into(), json!(ERROR_INFO));
        body.insert("data".into(), Value::Null);
        body.insert("additional_data".into(), Value::Null);
        if let Some(code) = &self.code {
            body.insert("code".into(), json!(code));
        }
        Value::Object(body)
    }
}

impl IntoResponse for PdError {
    fn into_response(self) -> Response {
        (self.status, Json(self.body())).into_response()
    }
}

/// The gateway's 401 (see the module docs): the same for every cause.
pub(crate) fn unauthorized() -> Response {
    (
        StatusCode::UNAUTHORIZED,
        Json(json!({
            "success": false,
            "error": "unauthorized access",
            "errorCode": 401,
            "error_info": "Please check developers.pipedrive.com",
        })),
    )
        .into_response()
}

/// A 429's body. Readme [V]: past the daily budget "all further API requests
/// will be rejected with a 429"; A.3 saw the body start with `{"succ`, i.e.
/// the error envelope. Its text is [U].
pub(crate) fn rate_limited(daily: bool) -> PdError {
    PdError::new(
        StatusCode::TOO_MANY_REQUESTS,
        if daily {
            "Daily API token budget exceeded"
        } else {
            "Request over limit"
        },
    )
}

/// A JSON body, as an object. A body that is not JSON is v1's "Bad request"
/// (client-nodejs#297 [D]); v2 accepts JSON bodies only (migration guide,
/// quoted in an integrator's notes [D]).
pub(crate) struct PdJson(pub Map<String, Value>);

impl<S: Send + Sync> FromRequest<S> for PdJson {
    type Rejection = PdError;

    async fn from_request(req: Request, state: &S) -> Result<Self, PdError> {
        match Json::<Value>::from_request(req, state).await {
            Ok(Json(Value::Object(map))) => Ok(PdJson(map)),
            Ok(Json(_)) => Err(PdError::bad_request("Bad request")),
            Err(JsonRejection::MissingJsonContentType(_)) => Err(PdError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "Unsupported Media Type: send Content-Type: application/json",
            )),
            Err(_) => Err(PdError::bad_request("Bad request")),
        }
    }
}

/// Query parameters as sent, in order.
pub(crate) struct PdQuery(pub Vec<(String, String)>);

impl<S: Send + Sync> FromRequestParts<S> for PdQuery {
    type Rejection = PdError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, PdError> {
        Query::<Vec<(String, String)>>::from_request_parts(parts, state)
            .await
            .map(|Query(q)| PdQuery(q))
            .map_err(|_| PdError::bad_request("Bad request"))
    }
}

impl PdQuery {
    pub(crate) fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// A numeric path id; anything else is a validation error (v2 types ids as
/// integers [V SDK]).
pub(crate) struct PdId(pub u64);

impl<S: Send + Sync> FromRequestParts<S> for PdId {
    type Rejection = PdError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, PdError> {
        let Path(raw) = Path::<String>::from_request_parts(parts, state)
            .await
            .map_err(|r: PathRejection| PdError::bad_request(r.body_text()))?;
        raw.parse::<u64>()
            .ok()
            .filter(|id| *id > 0)
            .map(PdId)
            .ok_or_else(|| PdError::validation("id", "must be a positive integer"))
    }
}

/// Parses a deserializable admin body, answering 400 in Pipedrive's envelope.
pub(crate) struct AdminJson<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for AdminJson<T> {
    type Rejection = PdError;

    async fn from_request(req: Request, state: &S) -> Result<Self, PdError> {
        Json::<T>::from_request(req, state)
            .await
            .map(|Json(v)| AdminJson(v))
            .map_err(|r| PdError::bad_request(format!("invalid admin body: {}", r.body_text())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_use_the_documented_envelope() {
        let body = PdError::bad_request("Name must be given.").body();
        assert_eq!(body["success"], json!(false));
        assert_eq!(body["error"], "Name must be given.");
        assert_eq!(body["error_info"], ERROR_INFO);
        assert_eq!(body["data"], Value::Null);
        assert!(body.get("code").is_none());
        let v2 = PdError::not_allowed("foo").body();
        assert_eq!(
            v2["error"],
            "Validation failed: foo: Parameter 'foo' is not allowed for this request"
        );
        assert_eq!(v2["code"], SCHEMA_VALIDATION_FAILED);
    }
}
