//! Strict reading of v2 request bodies. The v2 API rejects parameters it does
//! not know ("Parameter 'x' is not allowed for this request",
//! client-nodejs#651 [D]) and does not convert types: "Booleans are strictly
//! true/false (no 1/0). Numeric fields do not convert strings" (migration
//! guide, quoted in an integrator's notes [D]).

use serde_json::{Map, Value};

use super::error::PdError;

/// Refuses the first parameter not in `allowed`.
pub(crate) fn only(body: &Map<String, Value>, allowed: &[&str]) -> Result<(), PdError> {
    match body.keys().find(|k| !allowed.contains(&k.as_str())) {
        Some(k) => Err(PdError::not_allowed(k)),
        None => Ok(()),
    }
}

/// A string parameter; absent or `null` is `None`.
pub(crate) fn string<'a>(
    body: &'a Map<String, Value>,
    key: &str,
) -> Result<Option<&'a str>, PdError> {
    match body.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(PdError::validation(key, "must be a string")),
    }
}

/// A positive integer id; absent or `null` is `None`. A numeric string is refused.
pub(crate) fn id(body: &Map<String, Value>, key: &str) -> Result<Option<u64>, PdError> {
    match body.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => n
            .as_u64()
            .filter(|v| *v > 0)
            .map(Some)
            .ok_or_else(|| PdError::validation(key, "must be a positive integer")),
        Some(_) => Err(PdError::validation(key, "must be an integer")),
    }
}

/// A number; absent or `null` is `None`.
pub(crate) fn number(body: &Map<String, Value>, key: &str) -> Result<Option<f64>, PdError> {
    match body.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => Ok(n.as_f64()),
        Some(_) => Err(PdError::validation(key, "must be a number")),
    }
}

/// A strict boolean; absent or `null` is `None`.
pub(crate) fn boolean(body: &Map<String, Value>, key: &str) -> Result<Option<bool>, PdError> {
    match body.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(_) => Err(PdError::validation(key, "must be a boolean")),
    }
}

/// An integer id as a v1 body carries it: a number, or a string of digits
/// (v1 "also accepts form-encoded bodies" and converts loosely [D]).
pub(crate) fn v1_id(body: &Map<String, Value>, key: &str) -> Result<Option<u64>, PdError> {
    match body.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => n
            .as_u64()
            .map(Some)
            .ok_or_else(|| PdError::bad_request(format!("Invalid {key}"))),
        Some(Value::String(s)) if s.trim().is_empty() => Ok(None),
        Some(Value::String(s)) => s
            .trim()
            .parse::<u64>()
            .map(Some)
            .map_err(|_| PdError::bad_request(format!("Invalid {key}"))),
        Some(_) => Err(PdError::bad_request(format!("Invalid {key}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn map(v: Value) -> Map<String, Value> {
        v.as_object().cloned().expect("object")
    }

    #[test]
    fn v2_types_are_strict_and_v1_ids_are_loose() {
        let b = map(json!({"a": "1", "b": 1, "c": true, "d": 1.5, "e": null}));
        assert!(id(&b, "a").is_err());
        assert_eq!(id(&b, "b").expect("ok"), Some(1));
        assert_eq!(id(&b, "e").expect("ok"), None);
        assert!(boolean(&b, "b").is_err());
        assert_eq!(boolean(&b, "c").expect("ok"), Some(true));
        assert_eq!(number(&b, "d").expect("ok"), Some(1.5));
        assert!(string(&b, "b").is_err());
        assert_eq!(v1_id(&b, "a").expect("ok"), Some(1));
        assert!(only(&b, &["a", "b", "c", "d"]).is_err());
        assert!(only(&b, &["a", "b", "c", "d", "e"]).is_ok());
    }
}
