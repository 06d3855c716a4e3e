//! Zoho-shaped error answers.
//!
//! A whole-request error is `{"code","details","message","status":"error"}`
//! ([V] crm-oas v8 `API_Exception`; e.g. 401 `{"code":"INVALID_TOKEN",
//! "message":"Invalid OAuth token","status":"error","details":{}}`,
//! `related_records/.../response-401-invalidtoken.md`). Per-record errors sit
//! in the `data` array of a write's answer instead (see `records`).

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};

#[derive(Clone, Debug)]
pub(crate) struct ZohoError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    pub details: Value,
}

impl ZohoError {
    pub(crate) fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ZohoError {
            status,
            code,
            message: message.into(),
            details: json!({}),
        }
    }

    pub(crate) fn with_details(mut self, details: Value) -> Self {
        self.details = details;
        self
    }

    /// 401 for an expired, revoked or unknown access token ([V] crm-oas v8
    /// `API_Exception` message enum "invalid oauth token").
    pub(crate) fn invalid_token() -> Self {
        ZohoError::new(
            StatusCode::UNAUTHORIZED,
            "INVALID_TOKEN",
            "invalid oauth token",
        )
    }

    /// 401 for a request without a `Zoho-oauthtoken` header ([V] crm-oas v8
    /// enums `AUTHENTICATION_FAILURE` / "Authentication failed"; the exact
    /// answer to a missing header is unconfirmed).
    pub(crate) fn authentication_failure() -> Self {
        ZohoError::new(
            StatusCode::UNAUTHORIZED,
            "AUTHENTICATION_FAILURE",
            "Authentication failed",
        )
    }

    pub(crate) fn invalid_module(index: usize) -> Self {
        ZohoError::new(
            StatusCode::BAD_REQUEST,
            "INVALID_MODULE",
            "the module name given seems to be invalid",
        )
        .with_details(json!({"resource_path_index": index}))
    }

    pub(crate) fn invalid_url() -> Self {
        ZohoError::new(
            StatusCode::NOT_FOUND,
            "INVALID_URL_PATTERN",
            "Please check if the URL trying to access is a correct one",
        )
    }

    pub(crate) fn required_param(name: &str) -> Self {
        ZohoError::new(
            StatusCode::BAD_REQUEST,
            "REQUIRED_PARAM_MISSING",
            "required param is missing",
        )
        .with_details(json!({"param_name": name}))
    }

    pub(crate) fn invalid_data(message: impl Into<String>, details: Value) -> Self {
        ZohoError::new(StatusCode::BAD_REQUEST, "INVALID_DATA", message).with_details(details)
    }

    /// 429 when more requests are in flight than the org's concurrency limit
    /// ("Exceeding these returns a TOO_MANY_REQUESTS error", Zoho's Kaizen #203
    /// on help.zoho.com [D]; the body's message is unconfirmed).
    pub(crate) fn too_many_requests() -> Self {
        ZohoError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "TOO_MANY_REQUESTS",
            "too many requests. please try again after some time",
        )
    }

    /// 429 once the rolling 24 h API credits are used up. Status, code and
    /// message are unconfirmed (crm-apis.md names LIMIT_REACHED / LIMIT_EXCEEDED).
    pub(crate) fn credits_exhausted() -> Self {
        ZohoError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "LIMIT_REACHED",
            "API credits for the last 24 hours are used up",
        )
    }

    /// The answer of an injected error fault with `status`.
    pub(crate) fn for_status(status: StatusCode) -> Self {
        let (code, message) = match status.as_u16() {
            400 => ("INVALID_DATA", "invalid data"),
            401 => ("INVALID_TOKEN", "invalid oauth token"),
            403 => ("NO_PERMISSION", "permission denied"),
            404 => (
                "INVALID_URL_PATTERN",
                "Please check if the URL trying to access is a correct one",
            ),
            405 => (
                "INVALID_REQUEST_METHOD",
                "The http request method type is not a valid one",
            ),
            429 => (
                "TOO_MANY_REQUESTS",
                "too many requests. please try again after some time",
            ),
            500 => ("INTERNAL_ERROR", "Internal Server Error"),
            502 => ("BAD_GATEWAY", "Bad Gateway"),
            503 => ("SERVICE_UNAVAILABLE", "Service Unavailable"),
            504 => ("GATEWAY_TIMEOUT", "Gateway Timeout"),
            _ => ("ERROR", status.canonical_reason().unwrap_or("error")),
        };
        ZohoError::new(status, code, message)
    }

    pub(crate) fn body(&self) -> Value {
        json!({
            "code": self.code,
            "details": self.details,
            "message": self.message,
            "status": "error",
        })
    }
}

impl IntoResponse for ZohoError {
    fn into_response(self) -> Response {
        (self.status, Json(self.body())).into_response()
    }
}

/// Parses a JSON request body, or answers as Zoho does for a body it cannot
/// read (the exact answer is unconfirmed: `INVALID_DATA`).
pub(crate) fn parse_body(body: &[u8]) -> Result<Value, ZohoError> {
    serde_json::from_slice(body)
        .map_err(|_| ZohoError::invalid_data("body", json!({"expected_data_type": "jsonobject"})))
}

/// The decoded `key=value` pairs of a form body or query string
/// (`application/x-www-form-urlencoded`: `+` is a space, `%XX` a byte).
pub(crate) fn form_pairs(raw: &str) -> Vec<(String, String)> {
    raw.split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (decode(k), decode(v))
        })
        .collect()
}

fn decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).ok();
                match hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                    Some(b) => {
                        out.push(b);
                        i += 2;
                    }
                    None => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn form_bodies_are_decoded() {
        assert_eq!(
            form_pairs("grant_type=refresh_token&refresh_token=1000.a%2Bb&x=a+b&empty=&bad=%zz%4"),
            vec![
                ("grant_type".to_owned(), "refresh_token".to_owned()),
                ("refresh_token".to_owned(), "1000.a+b".to_owned()),
                ("x".to_owned(), "a b".to_owned()),
                ("empty".to_owned(), String::new()),
                ("bad".to_owned(), "%zz%4".to_owned()),
            ]
        );
    }

    #[test]
    fn errors_have_zohos_shape() {
        let body = ZohoError::invalid_token().body();
        assert_eq!(
            body,
            json!({"code": "INVALID_TOKEN", "details": {}, "message": "invalid oauth token", "status": "error"})
        );
        assert_eq!(
            ZohoError::for_status(StatusCode::TOO_MANY_REQUESTS).code,
            "TOO_MANY_REQUESTS"
        );
    }
}
