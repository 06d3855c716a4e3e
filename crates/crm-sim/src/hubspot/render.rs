//! Record JSON as HubSpot returns it, and the query parameters that shape it.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde_json::{json, Map, Value};

use super::error::ApiError;
use super::objects::ObjectType;
use super::schema::Schema;
use super::store::{Record, Snapshot, Store};
use super::validation::format_timestamp;

/// Which properties a response shows.
#[derive(Clone, Debug)]
pub(crate) enum Selection {
    /// Every stored value (write responses).
    Stored,
    /// These names, `null` when unset; always with id and timestamps.
    Named(Vec<String>),
}

impl Selection {
    /// What a read shows: the requested names, or HubSpot's defaults.
    pub(crate) fn for_read(object: ObjectType, requested: Vec<String>) -> Selection {
        if requested.is_empty() {
            Selection::Named(
                object
                    .default_read_properties()
                    .iter()
                    .map(|s| (*s).to_owned())
                    .collect(),
            )
        } else {
            Selection::Named(requested)
        }
    }
}

/// The parts of a record a response is built from (live or as search sees it).
pub(crate) struct RecordView<'a> {
    pub id: u64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub properties: &'a BTreeMap<String, String>,
}

impl<'a> From<&'a Record> for RecordView<'a> {
    fn from(r: &'a Record) -> Self {
        RecordView {
            id: r.id,
            created_at: r.created_at,
            updated_at: r.updated_at,
            properties: &r.properties,
        }
    }
}

impl<'a> RecordView<'a> {
    pub(crate) fn snapshot(record: &Record, snapshot: &'a Snapshot) -> Self {
        RecordView {
            id: record.id,
            created_at: record.created_at,
            updated_at: snapshot.updated_at,
            properties: &snapshot.properties,
        }
    }
}

/// `{"id","properties","createdAt","updatedAt","archived":false}`.
pub(crate) fn record_json(
    schema: &Schema,
    object: ObjectType,
    view: &RecordView<'_>,
    selection: &Selection,
) -> Map<String, Value> {
    let properties: Map<String, Value> = match selection {
        Selection::Stored => view
            .properties
            .iter()
            .map(|(k, v)| (k.clone(), json!(v)))
            .collect(),
        Selection::Named(names) => {
            let always = object.always_read_properties();
            always
                .iter()
                .map(|s| (*s).to_owned())
                .chain(names.iter().cloned())
                .filter(|name| schema.get(object, name).is_some())
                .map(|name| {
                    let value = view.properties.get(&name).map_or(Value::Null, |v| json!(v));
                    (name, value)
                })
                .collect()
        }
    };
    let mut body = Map::new();
    body.insert("id".into(), json!(view.id.to_string()));
    body.insert("properties".into(), Value::Object(properties));
    body.insert("createdAt".into(), json!(format_timestamp(view.created_at)));
    body.insert("updatedAt".into(), json!(format_timestamp(view.updated_at)));
    body.insert("archived".into(), json!(false));
    body
}

/// Adds `"associations":{"notes":{"results":[{"id","type"}]}}` for the requested
/// kinds that have any.
pub(crate) fn add_associations(
    body: &mut Map<String, Value>,
    store: &Store,
    object: ObjectType,
    id: u64,
    kinds: &[ObjectType],
) {
    let mut associations = Map::new();
    for kind in kinds {
        let results: Vec<Value> = store
            .associations_of(object, id, *kind)
            .into_iter()
            .map(|(to_id, label)| json!({"id": to_id.to_string(), "type": label}))
            .collect();
        if !results.is_empty() {
            associations.insert(kind.plural().into(), json!({ "results": results }));
        }
    }
    if !associations.is_empty() {
        body.insert("associations".into(), Value::Object(associations));
    }
}

/// Query parameters as given (repeated keys kept).
pub(crate) struct QueryParams(pub Vec<(String, String)>);

impl QueryParams {
    pub(crate) fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .rev()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// `properties=a,b&properties=c` → `[a, b, c]`.
    pub(crate) fn list(&self, key: &str) -> Vec<String> {
        self.0
            .iter()
            .filter(|(k, _)| k == key)
            .flat_map(|(_, v)| v.split(','))
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect()
    }

    /// `associations=notes,deals` → known object types (unknown names ignored).
    pub(crate) fn association_kinds(&self) -> Vec<ObjectType> {
        let mut kinds: Vec<ObjectType> = self
            .list("associations")
            .iter()
            .filter_map(|s| ObjectType::parse(s))
            .collect();
        kinds.sort();
        kinds.dedup();
        kinds
    }

    pub(crate) fn by_email(&self) -> Result<bool, ApiError> {
        match self.get("idProperty") {
            None | Some("hs_object_id") => Ok(false),
            Some("email") => Ok(true),
            Some(other) => Err(ApiError::validation(format!(
                "idProperty \"{other}\" is not a unique-value property"
            ))),
        }
    }

    /// `limit` within `1..=max`, `default` when absent. Larger values are clamped.
    pub(crate) fn limit(&self, default: usize, max: usize) -> Result<usize, ApiError> {
        match self.get("limit") {
            None => Ok(default),
            Some(raw) => match raw.trim().parse::<usize>() {
                Ok(0) | Err(_) => Err(ApiError::validation(format!(
                    "limit must be a positive integer, got \"{raw}\""
                ))),
                Ok(n) => Ok(n.min(max)),
            },
        }
    }

    /// Rebuilds the query with `after` replaced (for `paging.next.link`).
    pub(crate) fn with_after(&self, after: &str) -> String {
        let mut parts: Vec<String> = self
            .0
            .iter()
            .filter(|(k, _)| k != "after")
            .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
            .collect();
        parts.push(format!("after={}", encode(after)));
        parts.join("&")
    }
}

fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b',' => {
                out.push(char::from(b));
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(pairs: &[(&str, &str)]) -> QueryParams {
        QueryParams(
            pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        )
    }

    #[test]
    fn properties_accept_commas_and_repeats() {
        let q = params(&[("properties", "email, firstname"), ("properties", "phone")]);
        assert_eq!(q.list("properties"), ["email", "firstname", "phone"]);
    }

    #[test]
    fn limit_is_clamped_and_zero_rejected() {
        assert_eq!(params(&[]).limit(10, 100).ok(), Some(10));
        assert_eq!(params(&[("limit", "500")]).limit(10, 100).ok(), Some(100));
        assert!(params(&[("limit", "0")]).limit(10, 100).is_err());
        assert!(params(&[("limit", "x")]).limit(10, 100).is_err());
    }

    #[test]
    fn next_link_query_replaces_after_and_encodes() {
        let q = params(&[("limit", "2"), ("after", "1001"), ("properties", "a b")]);
        assert_eq!(q.with_after("1003"), "limit=2&properties=a%20b&after=1003");
    }
}
