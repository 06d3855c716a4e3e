//! Salesforce-shaped error answers.
//!
//! - A single-resource error is HTTP 4xx with a JSON **array**
//!   `[{"message","errorCode","fields"}]` ([V] REST API "Status Codes and
//!   Error Responses", errorcodes.htm, per research A.1); `fields` is left
//!   out when it names none (the 401 body `[{"message":"Session expired or
//!   invalid","errorCode":"INVALID_SESSION_ID"}]` has none [D]).
//! - Per-record errors of sObject Collections use `statusCode`, not
//!   `errorCode`: `{"statusCode","message","fields":[]}` ([V]/[D] research A.1).

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};

/// A whole-request error.
#[derive(Clone, Debug)]
pub(crate) struct SfError {
    pub status: StatusCode,
    pub code: String,
    pub message: String,
    pub fields: Vec<String>,
}

impl SfError {
    pub(crate) fn new(status: StatusCode, code: &str, message: impl Into<String>) -> Self {
        SfError {
            status,
            code: code.to_owned(),
            message: message.into(),
            fields: Vec::new(),
        }
    }

    pub(crate) fn bad_request(code: &str, message: impl Into<String>) -> Self {
        SfError::new(StatusCode::BAD_REQUEST, code, message)
    }

    /// 401 for a missing, expired, revoked or unknown access token ([V]
    /// errorcodes page: 401 "The session ID or OAuth token used has expired or
    /// is invalid"; body [D] cloudsundial.com, integrators' fixtures).
    pub(crate) fn invalid_session() -> Self {
        SfError::new(
            StatusCode::UNAUTHORIZED,
            "INVALID_SESSION_ID",
            "Session expired or invalid",
        )
    }

    /// 403 past the org's daily allocation ([V] errorcodes page: "If the
    /// errorCode is REQUEST_LIMIT_EXCEEDED, you've exceeded API request
    /// limits in your org"; message [D] "TotalRequests Limit exceeded.").
    pub(crate) fn request_limit() -> Self {
        SfError::new(
            StatusCode::FORBIDDEN,
            "REQUEST_LIMIT_EXCEEDED",
            "TotalRequests Limit exceeded.",
        )
    }

    /// 404 for an unknown resource or record ([V] errorcodes page: "The
    /// requested resource couldn't be found"; message [D]).
    pub(crate) fn not_found() -> Self {
        SfError::new(
            StatusCode::NOT_FOUND,
            "NOT_FOUND",
            "The requested resource does not exist",
        )
    }

    pub(crate) fn with_fields(mut self, fields: Vec<String>) -> Self {
        self.fields = fields;
        self
    }

    /// The answer of an injected error fault with `status`. A 409 is a row
    /// lock (`UNABLE_TO_LOCK_ROW`, a standard StatusCode [R]; Salesforce's
    /// 409 row reads "the request couldn't be completed due to a conflict
    /// with the current state of the resource" [V]); a 403 is the daily limit.
    pub(crate) fn for_status(status: StatusCode) -> Self {
        let (code, message) = match status.as_u16() {
            400 => ("MALFORMED_QUERY", "the request was malformed (injected)"),
            401 => ("INVALID_SESSION_ID", "Session expired or invalid"),
            403 => ("REQUEST_LIMIT_EXCEEDED", "TotalRequests Limit exceeded."),
            404 => ("NOT_FOUND", "The requested resource does not exist"),
            409 => (
                "UNABLE_TO_LOCK_ROW",
                "unable to obtain exclusive access to this record or 1 records",
            ),
            500 => (
                "UNKNOWN_EXCEPTION",
                "An unexpected error occurred. Please include this ErrorId if you contact support: 1234567890-12345 (-1234567890)",
            ),
            503 => ("SERVER_UNAVAILABLE", "Server temporarily unavailable"),
            _ => ("UNKNOWN_EXCEPTION", status.canonical_reason().unwrap_or("error")),
        };
        SfError::new(status, code, message)
    }

    pub(crate) fn body(&self) -> Value {
        let mut e = json!({"message": self.message, "errorCode": self.code});
        if !self.fields.is_empty() {
            e["fields"] = json!(self.fields);
        }
        json!([e])
    }
}

impl IntoResponse for SfError {
    fn into_response(self) -> Response {
        (self.status, Json(self.body())).into_response()
    }
}

/// A per-record error (a save refused for one record).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct RecordError {
    pub code: String,
    pub message: String,
    pub fields: Vec<String>,
}

impl RecordError {
    pub(crate) fn new(code: &str, message: impl Into<String>, fields: Vec<String>) -> Self {
        RecordError {
            code: code.to_owned(),
            message: message.into(),
            fields,
        }
    }

    /// As an item of a collections answer's `errors`.
    pub(crate) fn collection_json(&self) -> Value {
        json!({"statusCode": self.code, "message": self.message, "fields": self.fields})
    }

    /// As a single-resource answer (400, `errorCode`).
    pub(crate) fn to_sf(&self) -> SfError {
        SfError::bad_request(&self.code, self.message.clone()).with_fields(self.fields.clone())
    }
}

/// Decodes `%XX` escapes (a path segment); `plus`: `+` is a space (a query string).
pub(crate) fn percent_decode(s: &str, plus: bool) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' if plus => out.push(b' '),
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

/// The decoded `key=value` pairs of a form body or query string.
pub(crate) fn form_pairs(raw: &str) -> Vec<(String, String)> {
    raw.split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (percent_decode(k, true), percent_decode(v, true))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rest_errors_are_arrays_and_collection_errors_use_status_code() {
        assert_eq!(
            SfError::invalid_session().body(),
            json!([{"message": "Session expired or invalid", "errorCode": "INVALID_SESSION_ID"}])
        );
        let e = RecordError::new(
            "REQUIRED_FIELD_MISSING",
            "Required fields are missing: [LastName]",
            vec!["LastName".into()],
        );
        assert_eq!(
            e.collection_json(),
            json!({"statusCode": "REQUIRED_FIELD_MISSING", "message": "Required fields are missing: [LastName]", "fields": ["LastName"]})
        );
        assert_eq!(e.to_sf().body()[0]["errorCode"], "REQUIRED_FIELD_MISSING");
    }

    #[test]
    fn escapes_are_decoded() {
        assert_eq!(percent_decode("a%2Bb%40c.io", false), "a+b@c.io");
        assert_eq!(percent_decode("a+b", false), "a+b");
        assert_eq!(percent_decode("a+b%2", true), "a b%2");
        assert_eq!(
            form_pairs("q=SELECT+Id+FROM+Lead&x=%27a%27"),
            vec![
                ("q".to_owned(), "SELECT Id FROM Lead".to_owned()),
                ("x".to_owned(), "'a'".to_owned())
            ]
        );
    }
}
