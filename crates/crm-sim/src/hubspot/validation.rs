//! Validation of written property values against the schema, the way HubSpot
//! rejects writes: unknown, read-only, wrong type, bad option, bad email.

use std::collections::BTreeMap;

use chrono::{DateTime, NaiveDate, NaiveDateTime, SecondsFormat, TimeZone, Utc};
use serde_json::{json, Map, Value};

use super::error::ApiError;
use super::objects::ObjectType;
use super::schema::{PropertyDef, PropertyType, Schema};

/// HubSpot's limit on a string property value (and on `hs_note_body`).
pub(crate) const MAX_VALUE_CHARS: usize = 65_536;

/// Validated writes: `None` clears the property (HubSpot clears on `""`).
pub(crate) type PropertyWrites = BTreeMap<String, Option<String>>;

/// Why one property value was rejected.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct PropertyError {
    pub name: String,
    pub message: String,
    /// HubSpot's code, e.g. `PROPERTY_DOESNT_EXIST`, `READ_ONLY_VALUE`, `INVALID_EMAIL`.
    pub code: &'static str,
}

impl PropertyError {
    pub(crate) fn new(name: &str, message: String, code: &'static str) -> PropertyError {
        PropertyError {
            name: name.to_owned(),
            message,
            code,
        }
    }

    pub(crate) fn required(name: &str) -> PropertyError {
        PropertyError::new(
            name,
            format!("Property \"{name}\" is required"),
            "REQUIRED_PROPERTY",
        )
    }

    fn detail(&self) -> Value {
        json!({"message": self.message, "in": self.name, "code": self.code})
    }
}

/// The single-request error: 400 VALIDATION_ERROR with HubSpot's
/// `Property values were not valid: [{"isValid":false,...}]` message.
pub(crate) fn invalid_properties(errors: &[PropertyError]) -> ApiError {
    let items: Vec<Value> = errors
        .iter()
        .map(|e| json!({"isValid": false, "message": e.message, "error": e.code, "name": e.name}))
        .collect();
    let message = format!("Property values were not valid: {}", Value::Array(items));
    ApiError::validation(message).with_errors(errors.iter().map(PropertyError::detail).collect())
}

/// The message of a batch item error: the inner messages themselves
/// (`Property "foo" does not exist`), joined when there are several.
pub(crate) fn batch_item_message(errors: &[PropertyError]) -> String {
    errors
        .iter()
        .map(|e| e.message.as_str())
        .collect::<Vec<_>>()
        .join("; ")
}

pub(crate) fn batch_item_details(errors: &[PropertyError]) -> Vec<Value> {
    errors.iter().map(PropertyError::detail).collect()
}

/// Validates every written property of `object`, returning normalised values.
pub(crate) fn validate_properties(
    schema: &Schema,
    object: ObjectType,
    input: &Map<String, Value>,
) -> Result<PropertyWrites, Vec<PropertyError>> {
    let mut writes = PropertyWrites::new();
    let mut errors = Vec::new();
    for (name, value) in input {
        let Some(def) = schema.get(object, name) else {
            errors.push(PropertyError::new(
                name,
                format!("Property \"{name}\" does not exist"),
                "PROPERTY_DOESNT_EXIST",
            ));
            continue;
        };
        if def.read_only_value {
            errors.push(PropertyError::new(
                name,
                format!("\"{name}\" is a read only property; its value cannot be set."),
                "READ_ONLY_VALUE",
            ));
            continue;
        }
        match value_text(value) {
            Err(()) => errors.push(PropertyError::new(
                name,
                format!("Property \"{name}\" must be a string, number or boolean"),
                "INVALID_TYPE",
            )),
            Ok(None) => {
                writes.insert(name.clone(), None);
            }
            Ok(Some(text)) => match normalise_value(object, def, &text) {
                Ok(v) => {
                    writes.insert(name.clone(), Some(v));
                }
                Err(e) => errors.push(e),
            },
        }
    }
    if errors.is_empty() {
        Ok(writes)
    } else {
        Err(errors)
    }
}

/// HubSpot property values are strings; numbers and booleans are accepted and
/// stringified, `null` and `""` clear.
fn value_text(value: &Value) -> Result<Option<String>, ()> {
    match value {
        Value::Null => Ok(None),
        Value::String(s) if s.is_empty() => Ok(None),
        Value::String(s) => Ok(Some(s.clone())),
        Value::Number(n) => Ok(Some(n.to_string())),
        Value::Bool(b) => Ok(Some(b.to_string())),
        Value::Array(_) | Value::Object(_) => Err(()),
    }
}

fn normalise_value(
    object: ObjectType,
    def: &PropertyDef,
    text: &str,
) -> Result<String, PropertyError> {
    let name = def.name.as_str();
    if text.chars().count() > MAX_VALUE_CHARS {
        return Err(PropertyError::new(
            name,
            format!(
                "Property \"{name}\" value is too long: {} characters (limit {MAX_VALUE_CHARS})",
                text.chars().count()
            ),
            "MAX_CHARACTERS_EXCEEDED",
        ));
    }
    if object == ObjectType::Contact && name == "email" {
        let email = normalise_email(text);
        return if is_valid_email(&email) {
            Ok(email)
        } else {
            Err(PropertyError::new(
                name,
                format!("Email address {text} is invalid"),
                "INVALID_EMAIL",
            ))
        };
    }
    match def.kind {
        PropertyType::String => Ok(text.to_owned()),
        PropertyType::Number => match text.trim().parse::<f64>() {
            Ok(n) if n.is_finite() => Ok(text.trim().to_owned()),
            _ => Err(PropertyError::new(
                name,
                format!("{text} is not a valid number for property \"{name}\""),
                "INVALID_FLOAT",
            )),
        },
        PropertyType::Bool => match text.trim().to_ascii_lowercase().as_str() {
            v @ ("true" | "false") => Ok(v.to_owned()),
            _ => Err(PropertyError::new(
                name,
                format!("{text} is not a valid boolean for property \"{name}\""),
                "INVALID_BOOLEAN",
            )),
        },
        PropertyType::Datetime => parse_datetime(text).map(format_timestamp).ok_or_else(|| {
            PropertyError::new(
                name,
                format!(
                    "{text} is not a valid datetime for property \"{name}\"; \
                         use ISO 8601 or milliseconds since the epoch"
                ),
                "INVALID_DATETIME",
            )
        }),
        PropertyType::Date => parse_datetime(text)
            .filter(|d| d.timestamp_millis() % 86_400_000 == 0)
            .map(|d| d.format("%Y-%m-%d").to_string())
            .ok_or_else(|| {
                PropertyError::new(
                    name,
                    format!("{text} is not a valid date (midnight UTC) for property \"{name}\""),
                    "INVALID_DATE",
                )
            }),
        PropertyType::Enumeration => {
            let allowed = |v: &str| def.options.iter().any(|o| o.value == v);
            let ok = if def.field_type == "checkbox" {
                text.split(';').all(allowed)
            } else {
                allowed(text)
            };
            if ok {
                Ok(text.to_owned())
            } else {
                let values: Vec<&str> = def.options.iter().map(|o| o.value.as_str()).collect();
                Err(PropertyError::new(
                    name,
                    format!(
                        "{text} was not one of the allowed options: [{}]",
                        values.join(", ")
                    ),
                    "INVALID_OPTION",
                ))
            }
        }
    }
}

/// Emails are matched case-insensitively and stored lower-cased, as HubSpot does.
pub(crate) fn normalise_email(email: &str) -> String {
    email.trim().to_lowercase()
}

/// A plain syntax check: `local@domain.tld`, no spaces, one `@`.
pub(crate) fn is_valid_email(email: &str) -> bool {
    let Some((local, domain)) = email.split_once('@') else {
        return false;
    };
    let labels_ok = domain.split('.').count() >= 2
        && domain.split('.').all(|l| {
            !l.is_empty()
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.chars().all(|c| c.is_alphanumeric() || c == '-')
        });
    !local.is_empty()
        && local.len() <= 64
        && !local.starts_with('.')
        && !local.ends_with('.')
        && !local.contains("..")
        && !email.chars().any(|c| c.is_whitespace() || c.is_control())
        && !local.contains(['(', ')', '<', '>', ',', ';', ':', '\\', '"', '[', ']'])
        && labels_ok
}

/// Accepts what HubSpot accepts for datetimes: ISO 8601 (with or without
/// offset; no offset means UTC), a bare date (midnight UTC), or epoch millis.
pub(crate) fn parse_datetime(text: &str) -> Option<DateTime<Utc>> {
    let text = text.trim();
    if !text.is_empty() && text.chars().all(|c| c.is_ascii_digit()) {
        let millis: i64 = text.parse().ok()?;
        return Utc.timestamp_millis_opt(millis).single();
    }
    if let Ok(d) = DateTime::parse_from_rfc3339(text) {
        return Some(d.with_timezone(&Utc));
    }
    if let Ok(d) = NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S%.f") {
        return Some(d.and_utc());
    }
    NaiveDate::parse_from_str(text, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|d| d.and_utc())
}

/// ISO 8601 UTC with milliseconds: `2026-05-01T10:00:00.000Z`.
pub(crate) fn format_timestamp(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn props(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap_or_default()
    }

    fn codes(result: Result<PropertyWrites, Vec<PropertyError>>) -> Vec<&'static str> {
        result
            .err()
            .unwrap_or_default()
            .iter()
            .map(|e| e.code)
            .collect()
    }

    #[test]
    fn unknown_property_is_reported_by_name() {
        let errors = validate_properties(
            &Schema::default(),
            ObjectType::Contact,
            &props(json!({"foo": "x"})),
        )
        .expect_err("invalid");
        assert_eq!(errors[0].message, "Property \"foo\" does not exist");
        let body = invalid_properties(&errors).body();
        let message = body["message"].as_str().unwrap_or_default();
        assert!(message.starts_with("Property values were not valid: [{"));
        assert!(message.contains(r#"Property \"foo\" does not exist"#));
    }

    #[test]
    fn read_only_number_enum_and_email_errors_have_hubspot_codes() {
        let schema = Schema::default();
        let check = |v: Value| codes(validate_properties(&schema, ObjectType::Contact, &props(v)));
        assert_eq!(check(json!({"hs_object_id": "1"})), ["READ_ONLY_VALUE"]);
        assert_eq!(
            check(json!({"leadbridge_qualification_score": "high"})),
            ["INVALID_FLOAT"]
        );
        assert_eq!(check(json!({"lifecyclestage": "hot"})), ["INVALID_OPTION"]);
        assert_eq!(check(json!({"email": "not-an-email"})), ["INVALID_EMAIL"]);
        assert_eq!(check(json!({"firstname": ["a"]})), ["INVALID_TYPE"]);
    }

    #[test]
    fn values_are_normalised_and_empty_strings_clear() {
        let writes = validate_properties(
            &Schema::default(),
            ObjectType::Contact,
            &props(json!({"email": " Jane@X.com ", "firstname": "", "leadbridge_qualification_score": 7})),
        )
        .expect("valid");
        assert_eq!(writes["email"].as_deref(), Some("jane@x.com"));
        assert_eq!(writes["firstname"], None);
        assert_eq!(
            writes["leadbridge_qualification_score"].as_deref(),
            Some("7")
        );
    }

    #[test]
    fn datetimes_accept_iso_and_epoch_millis() {
        assert_eq!(
            parse_datetime("2026-05-01T10:00:00Z")
                .map(format_timestamp)
                .as_deref(),
            Some("2026-05-01T10:00:00.000Z")
        );
        assert_eq!(
            parse_datetime("1777629600000")
                .map(format_timestamp)
                .as_deref(),
            Some("2026-05-01T10:00:00.000Z")
        );
        assert!(parse_datetime("yesterday").is_none());
    }

    #[test]
    fn email_syntax_check_accepts_plus_addresses_and_rejects_garbage() {
        assert!(is_valid_email("jane+leads@example.co.uk"));
        assert!(!is_valid_email("jane@"));
        assert!(!is_valid_email("jane@example"));
        assert!(!is_valid_email("ja ne@example.com"));
        assert!(!is_valid_email("a@b@example.com"));
    }
}
