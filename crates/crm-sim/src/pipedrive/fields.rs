//! Person fields (`GET /v1/personFields`) and the validation of the
//! `custom_fields` values a person write carries.
//!
//! - A field: `{id, key, name, order_nr, field_type, add_time, update_time,
//!   active_flag, edit_flag, …, options}` (SDK v1 `field.ts` [V]). Custom
//!   fields are keyed by "randomly generated 40-character hashes" (readme,
//!   "Custom fields" [V]); `edit_flag` is true for custom fields (v2 renamed it
//!   `is_custom_field`, migration guide [D]).
//! - The default (system) fields listed here are [U]: no listing of a real
//!   company was read; their keys are the person's own keys.
//! - Value shapes per `field_type` in v2 (migration guide, quoted in an
//!   integrator's notes [D]): text types a string (`varchar`, `varchar_auto`
//!   and `phone` up to 255 characters, `text` up to 65k: readme and SDK
//!   `field.ts` [V]), `double` a number, `monetary` a number or `{value,
//!   currency}`, `enum` one option id, `set` a non-empty array of option ids
//!   ("Sending [] is a validation error"), `user`/`org`/`people` an id, `date`
//!   `YYYY-MM-DD`; `null` clears any field. The error texts are [U] (since
//!   2026-05-21 they name the field's code, per the changelog [D]).
//! - A key that names no active field refuses the whole write: writing a
//!   deleted field's key aborted the request with
//!   `ERR_SCHEMA_VALIDATION_FAILED` (an integrator's code comment [D]).

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::{DateTime, NaiveDate, Utc};
use serde_json::{json, Value};

use super::error::{PdError, PdQuery};
use super::persons::MAX_LIMIT;
use super::state::App;
use super::store::v1_time;

/// The field types a person field may have (SDK v1 `field.ts` [V]).
pub(crate) const FIELD_TYPES: [&str; 17] = [
    "address",
    "date",
    "daterange",
    "double",
    "enum",
    "monetary",
    "org",
    "people",
    "phone",
    "set",
    "text",
    "time",
    "timerange",
    "user",
    "varchar",
    "varchar_auto",
    "visible_to",
];

/// Custom field types whose values search finds (SDK `searchPersons` docs:
/// "address, varchar, text, varchar_auto, double, monetary and phone" [V]).
const SEARCHABLE: [&str; 7] = [
    "address",
    "varchar",
    "text",
    "varchar_auto",
    "double",
    "monetary",
    "phone",
];

#[derive(Clone, Debug)]
pub(crate) struct Field {
    pub id: u64,
    pub key: String,
    pub name: String,
    pub field_type: String,
    /// `(id, label)` for `enum` and `set` fields.
    pub options: Vec<(u64, String)>,
    pub custom: bool,
    pub add_time: DateTime<Utc>,
}

impl Field {
    pub(crate) fn to_json(&self, order_nr: usize) -> Value {
        let options = (!self.options.is_empty()).then(|| {
            self.options
                .iter()
                .map(|(id, label)| json!({"id": id, "label": label}))
                .collect::<Vec<_>>()
        });
        json!({
            "id": self.id,
            "key": self.key,
            "name": self.name,
            "order_nr": order_nr,
            "field_type": self.field_type,
            "add_time": v1_time(self.add_time),
            "update_time": v1_time(self.add_time),
            "last_updated_by_user_id": if self.custom { json!(1) } else { Value::Null },
            "active_flag": true,
            "edit_flag": self.custom,
            "index_visible_flag": true,
            "details_visible_flag": true,
            "add_visible_flag": true,
            "important_flag": false,
            "bulk_edit_allowed": true,
            "searchable_flag": SEARCHABLE.contains(&self.field_type.as_str()),
            "filtering_allowed": true,
            "sortable_flag": true,
            "mandatory_flag": false,
            "options": options,
        })
    }

    /// Whether `value` is one this field takes; why not otherwise.
    fn check(&self, value: &Value) -> Result<(), String> {
        if value.is_null() {
            return Ok(());
        }
        let text = |max: usize| match value {
            Value::String(s) if s.chars().count() <= max => Ok(()),
            Value::String(_) => Err(format!("must be at most {max} characters")),
            _ => Err("must be a string".to_owned()),
        };
        let option = |v: &Value| {
            v.as_u64()
                .is_some_and(|id| self.options.iter().any(|(o, _)| *o == id))
        };
        match self.field_type.as_str() {
            "varchar" | "varchar_auto" | "phone" => text(255),
            "text" => text(65_536),
            "double" if value.is_number() => Ok(()),
            "double" => Err("must be a number".to_owned()),
            "monetary" if value.is_number() || value.get("value").is_some_and(Value::is_number) => {
                Ok(())
            }
            "monetary" => Err("must be a number or {\"value\", \"currency\"}".to_owned()),
            "enum" if option(value) => Ok(()),
            "enum" => Err("must be the id of one of the field's options".to_owned()),
            "set" => match value.as_array() {
                Some(ids) if !ids.is_empty() && ids.iter().all(option) => Ok(()),
                _ => Err("must be a non-empty array of the field's option ids".to_owned()),
            },
            "user" | "org" | "people" if value.as_u64().is_some_and(|v| v > 0) => Ok(()),
            "user" | "org" | "people" => Err("must be an id".to_owned()),
            "date" => match value.as_str() {
                Some(s) if NaiveDate::parse_from_str(s, "%Y-%m-%d").is_ok() => Ok(()),
                _ => Err("must be a date (YYYY-MM-DD)".to_owned()),
            },
            "address" | "daterange" | "time" | "timerange"
                if value.get("value").is_some() || value.is_string() =>
            {
                Ok(())
            }
            _ => Err("is not a valid value for this field".to_owned()),
        }
    }

    /// The value as search text, when the field is searchable.
    pub(crate) fn search_text(&self, value: &Value) -> Option<String> {
        if !SEARCHABLE.contains(&self.field_type.as_str()) {
            return None;
        }
        match value {
            Value::String(s) => Some(s.clone()),
            Value::Number(n) => Some(n.to_string()),
            Value::Object(o) => o.get("value").map(|v| match v {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            }),
            _ => None,
        }
    }
}

#[derive(Debug)]
pub(crate) struct Fields {
    pub all: Vec<Field>,
    next_id: u64,
}

impl Default for Fields {
    fn default() -> Self {
        let at = Utc::now();
        let system = [
            ("name", "Name", "varchar"),
            ("first_name", "First name", "varchar"),
            ("last_name", "Last name", "varchar"),
            ("label", "Label", "enum"),
            ("org_id", "Organization", "org"),
            ("owner_id", "Owner", "user"),
            ("phone", "Phone", "phone"),
            ("email", "Email", "varchar"),
            ("visible_to", "Visible to", "visible_to"),
            ("add_time", "Person created", "date"),
            ("update_time", "Update time", "date"),
        ];
        let all: Vec<Field> = system
            .iter()
            .zip(9001..)
            .map(|((key, name, kind), id)| Field {
                id,
                key: (*key).to_owned(),
                name: (*name).to_owned(),
                field_type: (*kind).to_owned(),
                options: Vec::new(),
                custom: false,
                add_time: at,
            })
            .collect();
        Fields {
            next_id: 9001 + all.len() as u64,
            all,
        }
    }
}

impl Fields {
    pub(crate) fn custom(&self, key: &str) -> Option<&Field> {
        self.all.iter().find(|f| f.custom && f.key == key)
    }

    /// Adds a custom field with a fresh 40-character key; options get ids.
    pub(crate) fn add(&mut self, name: String, field_type: String, options: Vec<String>) -> &Field {
        let id = self.next_id;
        self.next_id += 1;
        let options = options
            .into_iter()
            .zip(1..)
            .map(|(label, n)| (id * 1000 + n, label))
            .collect();
        self.all.push(Field {
            id,
            key: random_key(),
            name,
            field_type,
            options,
            custom: true,
            add_time: Utc::now(),
        });
        self.all.last().expect("just pushed")
    }

    /// Removes a custom field; whether there was one.
    pub(crate) fn remove(&mut self, key: &str) -> bool {
        let before = self.all.len();
        self.all.retain(|f| !(f.custom && f.key == key));
        self.all.len() != before
    }

    /// Checks a write's `custom_fields` object against the custom fields.
    pub(crate) fn check(&self, custom: &Value) -> Result<(), PdError> {
        let Some(map) = custom.as_object() else {
            return Err(PdError::validation("custom_fields", "must be an object"));
        };
        for (key, value) in map {
            let field = self.custom(key).ok_or_else(|| {
                PdError::validation(
                    &format!("custom_fields.{key}"),
                    format!("Custom field '{key}' does not exist"),
                )
            })?;
            field
                .check(value)
                .map_err(|why| PdError::validation(&format!("custom_fields.{key}"), why))?;
        }
        Ok(())
    }
}

/// `GET /v1/personFields?start=&limit=`: every field, v1 offset pagination
/// (readme, "Offset pagination" [V]).
pub(crate) async fn list(State(app): State<App>, q: PdQuery) -> Result<Response, PdError> {
    let number = |name: &str, default: usize| -> Result<usize, PdError> {
        q.get(name)
            .filter(|v| !v.is_empty())
            .map_or(Ok(default), |v| {
                v.parse::<usize>()
                    .map_err(|_| PdError::bad_request(format!("Invalid {name}")))
            })
    };
    let start = number("start", 0)?;
    let limit = number("limit", MAX_LIMIT)?.clamp(1, MAX_LIMIT);
    let state = app.lock();
    let all = &state.fields.all;
    let page: Vec<Value> = all
        .iter()
        .enumerate()
        .skip(start)
        .take(limit)
        .map(|(i, f)| f.to_json(i + 1))
        .collect();
    let more = all.len() > start.saturating_add(limit);
    let mut pagination = json!({"start": start, "limit": limit, "more_items_in_collection": more});
    if more {
        pagination["next_start"] = json!(start + limit);
    }
    Ok(
        Json(json!({"success": true, "data": page, "additional_data": {"pagination": pagination}}))
            .into_response(),
    )
}

/// 40 lowercase hex characters, like `dcf558aac1ae4e8c4f849ba5e668430d8df9be12`.
fn random_key() -> String {
    let (a, b): (u128, u128) = (rand::random(), rand::random());
    format!("{a:032x}{b:032x}")[..40].to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn custom_values_are_checked_by_field_type() {
        let mut fields = Fields::default();
        let text = fields
            .add("Budget note".into(), "varchar".into(), vec![])
            .key
            .clone();
        let choice = fields
            .add("Size".into(), "enum".into(), vec!["S".into(), "M".into()])
            .clone();
        assert_eq!(text.len(), 40);
        assert!(fields.check(&json!({ text.clone(): "ok" })).is_ok());
        assert!(fields.check(&json!({ text.clone(): null })).is_ok());
        assert!(fields
            .check(&json!({ text.clone(): "x".repeat(256) }))
            .is_err());
        let first_option = choice.options[0].0;
        assert!(fields
            .check(&json!({ choice.key.clone(): first_option }))
            .is_ok());
        assert!(fields.check(&json!({ choice.key.clone(): "S" })).is_err());
        let unknown = fields.check(&json!({"0123456789012345678901234567890123456789": 1}));
        let e = unknown.expect_err("unknown key refused");
        assert!(e.error.contains("does not exist"), "{}", e.error);
        assert!(fields.remove(&text));
        assert!(fields.check(&json!({ text: "ok" })).is_err());
    }
}
