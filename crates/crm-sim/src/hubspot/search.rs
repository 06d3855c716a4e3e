//! `POST /crm/v3/objects/{object}/search` over the lagging search index.
//!
//! The index is modelled per record: search sees the version of each record
//! that was current `search_lag_ms` ago (see `Record::as_of`), so a record
//! created less than the lag ago is not found and updates show up late.
//!
//! Two kinds of contact property match differently from plain text:
//! - phone numbers ([`PHONE_PROPERTIES`]) compare national numbers, so a
//!   filter value with the country code finds nothing, as in HubSpot
//!   ([`searchable_phone`]);
//! - `hs_additional_emails` matches one address of its `;`-separated list.

use std::cmp::Ordering;
use std::time::Instant;

use serde::Deserialize;
use serde_json::{json, Map, Value};

use super::error::ApiError;
use super::objects::ObjectType;
use super::render::{record_json, RecordView, Selection};
use super::schema::{PropertyType, Schema};
use super::state::State;
use super::store::{split_emails, Record, Snapshot, ADDITIONAL_EMAILS};
use super::validation::parse_datetime;

const DEFAULT_LIMIT: usize = 10;
const MAX_LIMIT: usize = 200;
const MAX_GROUPS: usize = 5;
const MAX_FILTERS_PER_GROUP: usize = 6;

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct SearchRequest {
    #[serde(default)]
    filter_groups: Vec<FilterGroup>,
    #[serde(default)]
    properties: Vec<String>,
    limit: Option<Value>,
    after: Option<Value>,
    #[serde(default)]
    sorts: Vec<Value>,
    query: Option<String>,
}

#[derive(Debug, Deserialize)]
struct FilterGroup {
    #[serde(default)]
    filters: Vec<FilterInput>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct FilterInput {
    property_name: String,
    operator: String,
    value: Option<Value>,
    values: Option<Vec<Value>>,
    high_value: Option<Value>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Operator {
    Eq,
    Neq,
    Lt,
    Lte,
    Gt,
    Gte,
    Between,
    In,
    NotIn,
    HasProperty,
    NotHasProperty,
    ContainsToken,
    NotContainsToken,
}

impl Operator {
    fn parse(s: &str) -> Option<Operator> {
        Some(match s {
            "EQ" => Operator::Eq,
            "NEQ" => Operator::Neq,
            "LT" => Operator::Lt,
            "LTE" => Operator::Lte,
            "GT" => Operator::Gt,
            "GTE" => Operator::Gte,
            "BETWEEN" => Operator::Between,
            "IN" => Operator::In,
            "NOT_IN" => Operator::NotIn,
            "HAS_PROPERTY" => Operator::HasProperty,
            "NOT_HAS_PROPERTY" => Operator::NotHasProperty,
            "CONTAINS_TOKEN" => Operator::ContainsToken,
            "NOT_CONTAINS_TOKEN" => Operator::NotContainsToken,
            _ => return None,
        })
    }
}

/// Contact properties HubSpot searches through its phone-standardising
/// `hs_searchable_calculated_*` properties (D3, see [`searchable_phone`]).
const PHONE_PROPERTIES: [&str; 3] = ["phone", "mobilephone", "hs_whatsapp_phone_number"];

/// How a filter compares its values with a stored value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Matching {
    /// By the property's type; text case-insensitively.
    Typed,
    /// National phone numbers, for `EQ`/`NEQ`/`IN`/`NOT_IN` on phone properties.
    Phone,
    /// One address of a `;`-separated list, for `EQ`/`NEQ`/`IN`/`NOT_IN`/
    /// `CONTAINS_TOKEN`/`NOT_CONTAINS_TOKEN` on `hs_additional_emails`.
    EmailList,
}

/// A checked filter.
struct Filter {
    property: String,
    kind: PropertyType,
    operator: Operator,
    values: Vec<String>,
    matching: Matching,
}

/// What phone search compares a stored number as: "When searching for phone
/// numbers, HubSpot uses special calculated properties to standardize the
/// format. These properties all start with `hs_searchable_calculated_*`. As a
/// part of this standardization, HubSpot only uses the area code and local
/// number. You should refrain from including the country code in your search
/// or filter criteria." (D3, search guide, "Limits",
/// https://developers.hubspot.com/docs/api-reference/legacy/crm/search-the-crm).
/// Modelled as: a stored value in international form (`+…`) becomes its
/// national significant number (E.164 without the country code); any other
/// stored value, and every filter value, becomes its digits. So the filter
/// `4155552671` finds `+14155552671` and `(415) 555-2671`, while
/// `+14155552671` and `14155552671` find neither. How HubSpot standardises a
/// number stored without a country code (the portal's default country?) is
/// unconfirmed; the simulator keeps its digits as written.
fn searchable_phone(stored: &str) -> String {
    let stored = stored.trim();
    if stored.starts_with('+') {
        if let Ok(number) = phonenumber::parse(None, stored) {
            return number.national().to_string();
        }
    }
    phone_digits(stored)
}

fn phone_digits(value: &str) -> String {
    value.chars().filter(char::is_ascii_digit).collect()
}

impl Filter {
    fn compile(
        schema: &Schema,
        object: ObjectType,
        input: &FilterInput,
    ) -> Result<Filter, ApiError> {
        let def = schema.get(object, &input.property_name).ok_or_else(|| {
            ApiError::validation(format!(
                "Property \"{}\" does not exist",
                input.property_name
            ))
        })?;
        let operator = Operator::parse(&input.operator).ok_or_else(|| {
            ApiError::validation(format!("Unknown filter operator \"{}\"", input.operator))
        })?;
        let text = |v: &Value| match v {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        let values: Vec<String> = match operator {
            Operator::HasProperty | Operator::NotHasProperty => Vec::new(),
            Operator::In | Operator::NotIn => input.values.iter().flatten().map(text).collect(),
            Operator::Between => input
                .value
                .iter()
                .chain(input.high_value.iter())
                .map(text)
                .collect(),
            _ => input.value.iter().map(text).collect(),
        };
        let needed = match operator {
            Operator::HasProperty | Operator::NotHasProperty => 0,
            Operator::Between => 2,
            _ => 1,
        };
        if values.len() < needed {
            return Err(ApiError::validation(format!(
                "Filter on \"{}\" with operator {} is missing its value",
                input.property_name, input.operator
            )));
        }
        let matching = match operator {
            Operator::Eq | Operator::Neq | Operator::In | Operator::NotIn
                if object == ObjectType::Contact
                    && PHONE_PROPERTIES.contains(&def.name.as_str()) =>
            {
                Matching::Phone
            }
            Operator::Eq
            | Operator::Neq
            | Operator::In
            | Operator::NotIn
            | Operator::ContainsToken
            | Operator::NotContainsToken
                if object == ObjectType::Contact && def.name == ADDITIONAL_EMAILS =>
            {
                Matching::EmailList
            }
            _ => Matching::Typed,
        };
        let values = match matching {
            Matching::Phone => values.iter().map(|v| phone_digits(v)).collect(),
            Matching::EmailList | Matching::Typed => values,
        };
        Ok(Filter {
            property: def.name.clone(),
            kind: def.kind,
            operator,
            values,
            matching,
        })
    }

    /// Whether the stored value equals one of the filter values, the way this
    /// filter compares.
    fn equals_any(&self, stored: Option<&String>) -> bool {
        let Some(stored) = stored else {
            return false;
        };
        match self.matching {
            Matching::Typed => self
                .values
                .iter()
                .any(|v| compare(self.kind, stored, v) == Ordering::Equal),
            Matching::Phone => {
                let national = searchable_phone(stored);
                !national.is_empty() && self.values.contains(&national)
            }
            Matching::EmailList => split_emails(stored).any(|address| {
                self.values
                    .iter()
                    .any(|v| token_matches(&address, &v.trim().to_lowercase()))
            }),
        }
    }

    fn matches(&self, properties: &std::collections::BTreeMap<String, String>) -> bool {
        let stored = properties.get(&self.property).filter(|v| !v.is_empty());
        let cmp = |v: &str| stored.map(|s| compare(self.kind, s, v));
        let eq_any = || self.equals_any(stored);
        let token = || {
            if self.matching == Matching::EmailList {
                return self.equals_any(stored);
            }
            let needle = self.values[0].trim_matches('*').to_lowercase();
            stored.is_some_and(|s| s.to_lowercase().contains(&needle))
        };
        match self.operator {
            Operator::Eq | Operator::In => eq_any(),
            Operator::Neq | Operator::NotIn => !eq_any(),
            Operator::Lt => cmp(&self.values[0]) == Some(Ordering::Less),
            Operator::Lte => matches!(cmp(&self.values[0]), Some(Ordering::Less | Ordering::Equal)),
            Operator::Gt => cmp(&self.values[0]) == Some(Ordering::Greater),
            Operator::Gte => matches!(
                cmp(&self.values[0]),
                Some(Ordering::Greater | Ordering::Equal)
            ),
            Operator::Between => {
                matches!(
                    cmp(&self.values[0]),
                    Some(Ordering::Greater | Ordering::Equal)
                ) && matches!(cmp(&self.values[1]), Some(Ordering::Less | Ordering::Equal))
            }
            Operator::HasProperty => stored.is_some(),
            Operator::NotHasProperty => stored.is_none(),
            Operator::ContainsToken => token(),
            Operator::NotContainsToken => !token(),
        }
    }
}

/// Whether one token (an address of `hs_additional_emails`, lower-cased)
/// matches a lower-cased filter value: exactly, or with `*` wildcards standing
/// for any run of characters (D3: "you can use wildcards (*) to complete a
/// partial search", e.g. `*@hubspot.com`).
fn token_matches(token: &str, pattern: &str) -> bool {
    if !pattern.contains('*') {
        return token == pattern;
    }
    let parts: Vec<&str> = pattern.split('*').collect();
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if !token.starts_with(first) || !token.ends_with(last) || token.len() < first.len() + last.len()
    {
        return false;
    }
    let mut rest = &token[first.len()..token.len() - last.len()];
    for part in &parts[1..parts.len() - 1] {
        match rest.find(part) {
            Some(at) => rest = &rest[at + part.len()..],
            None => return false,
        }
    }
    true
}

/// Compares a stored value with a filter value by the property's type;
/// text compares case-insensitively.
fn compare(kind: PropertyType, stored: &str, value: &str) -> Ordering {
    let typed = match kind {
        PropertyType::Number => match (stored.trim().parse::<f64>(), value.trim().parse::<f64>()) {
            (Ok(a), Ok(b)) => a.partial_cmp(&b),
            _ => None,
        },
        PropertyType::Datetime | PropertyType::Date => {
            match (parse_datetime(stored), parse_datetime(value)) {
                (Some(a), Some(b)) => Some(a.cmp(&b)),
                _ => None,
            }
        }
        _ => None,
    };
    typed.unwrap_or_else(|| stored.to_lowercase().cmp(&value.to_lowercase()))
}

struct Sort {
    property: String,
    kind: PropertyType,
    descending: bool,
}

fn compile_sorts(
    schema: &Schema,
    object: ObjectType,
    sorts: &[Value],
) -> Result<Vec<Sort>, ApiError> {
    sorts
        .iter()
        .map(|s| {
            let (name, descending) = match s {
                Value::String(s) => match s.strip_prefix('-') {
                    Some(name) => (name.to_owned(), true),
                    None => (s.clone(), false),
                },
                Value::Object(o) => (
                    o.get("propertyName")
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .to_owned(),
                    o.get("direction").and_then(Value::as_str) == Some("DESCENDING"),
                ),
                _ => (String::new(), false),
            };
            let def = schema.get(object, &name).ok_or_else(|| {
                ApiError::validation(format!("Cannot sort by unknown property \"{name}\""))
            })?;
            Ok(Sort {
                property: def.name.clone(),
                kind: def.kind,
                descending,
            })
        })
        .collect()
}

fn parse_usize(v: Option<&Value>, what: &str) -> Result<Option<usize>, ApiError> {
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => n
            .as_u64()
            .and_then(|n| usize::try_from(n).ok())
            .map(Some)
            .ok_or_else(|| ApiError::validation(format!("{what} must be a non-negative integer"))),
        Some(Value::String(s)) => s.trim().parse().map(Some).map_err(|_| {
            ApiError::validation(format!(
                "{what} must be a non-negative integer, got \"{s}\""
            ))
        }),
        Some(other) => Err(ApiError::validation(format!(
            "{what} must be a non-negative integer, got {other}"
        ))),
    }
}

/// Runs a search as the index sees it at `now`.
pub(crate) fn search(
    state: &State,
    object: ObjectType,
    request: &SearchRequest,
    now: Instant,
) -> Result<Value, ApiError> {
    let limit = parse_usize(request.limit.as_ref(), "limit")?.unwrap_or(DEFAULT_LIMIT);
    if limit == 0 || limit > MAX_LIMIT {
        return Err(ApiError::validation(format!(
            "limit must be between 1 and {MAX_LIMIT}, got {limit}"
        )));
    }
    let offset = parse_usize(request.after.as_ref(), "after")?.unwrap_or(0);
    if request.filter_groups.len() > MAX_GROUPS
        || request
            .filter_groups
            .iter()
            .any(|g| g.filters.len() > MAX_FILTERS_PER_GROUP)
    {
        return Err(ApiError::validation(format!(
            "Too many filters: at most {MAX_GROUPS} filterGroups of {MAX_FILTERS_PER_GROUP} filters each"
        )));
    }
    let groups: Vec<Vec<Filter>> = request
        .filter_groups
        .iter()
        .map(|g| {
            g.filters
                .iter()
                .map(|f| Filter::compile(&state.schema, object, f))
                .collect::<Result<Vec<_>, _>>()
        })
        .collect::<Result<_, _>>()?;
    let sorts = compile_sorts(&state.schema, object, &request.sorts)?;
    let query = request
        .query
        .as_deref()
        .map(str::trim)
        .filter(|q| !q.is_empty())
        .map(str::to_lowercase);

    let mut hits: Vec<(&Record, &Snapshot)> = match now.checked_sub(state.search_lag()) {
        None => Vec::new(),
        Some(cutoff) => state
            .store
            .range(object, 0)
            .filter_map(|r| r.as_of(cutoff).map(|s| (r, s)))
            .filter(|(_, s)| {
                groups.is_empty()
                    || groups
                        .iter()
                        .any(|g| g.iter().all(|f| f.matches(&s.properties)))
            })
            .filter(|(_, s)| {
                query.as_ref().is_none_or(|q| {
                    s.properties
                        .values()
                        .any(|v| v.to_lowercase().contains(q.as_str()))
                })
            })
            .collect(),
    };
    if !sorts.is_empty() {
        hits.sort_by(|(ra, a), (rb, b)| {
            sorts
                .iter()
                .map(|s| {
                    let ord = match (a.properties.get(&s.property), b.properties.get(&s.property)) {
                        (Some(x), Some(y)) => compare(s.kind, x, y),
                        (Some(_), None) => Ordering::Less,
                        (None, Some(_)) => Ordering::Greater,
                        (None, None) => Ordering::Equal,
                    };
                    if s.descending {
                        ord.reverse()
                    } else {
                        ord
                    }
                })
                .find(|o| o.is_ne())
                .unwrap_or_else(|| ra.id.cmp(&rb.id))
        });
    }

    let total = hits.len();
    let selection = Selection::for_read(object, request.properties.clone());
    let results: Vec<Value> = hits
        .iter()
        .skip(offset)
        .take(limit)
        .map(|(r, s)| {
            Value::Object(record_json(
                &state.schema,
                object,
                &RecordView::snapshot(r, s),
                &selection,
            ))
        })
        .collect();
    let mut body = Map::new();
    body.insert("total".into(), json!(total));
    body.insert("results".into(), Value::Array(results));
    if offset + limit < total {
        body.insert(
            "paging".into(),
            json!({"next": {"after": (offset + limit).to_string()}}),
        );
    }
    Ok(Value::Object(body))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hubspot::SimConfig;

    fn state_with(emails: &[&str]) -> State {
        let mut state = State::new(SimConfig {
            search_lag_ms: 0,
            ..SimConfig::default()
        });
        for email in emails {
            let writes = [("email".to_owned(), Some((*email).to_owned()))].into();
            state
                .store
                .insert(ObjectType::Contact, writes, std::time::Duration::ZERO);
        }
        state
    }

    fn run(state: &State, request: Value) -> Value {
        let request: SearchRequest = serde_json::from_value(request).expect("request");
        search(state, ObjectType::Contact, &request, Instant::now()).expect("search")
    }

    #[test]
    fn eq_is_case_insensitive_and_groups_are_ored() {
        let state = state_with(&["a@x.com", "b@x.com", "c@x.com"]);
        let body = run(
            &state,
            json!({"filterGroups": [
                {"filters": [{"propertyName": "email", "operator": "EQ", "value": "A@X.COM"}]},
                {"filters": [{"propertyName": "email", "operator": "EQ", "value": "c@x.com"}]}
            ]}),
        );
        assert_eq!(body["total"], 2);
    }

    #[test]
    fn paging_hands_out_an_after_token_until_the_last_page() {
        let state = state_with(&["a@x.com", "b@x.com", "c@x.com"]);
        let first = run(&state, json!({"limit": 2}));
        assert_eq!(first["results"].as_array().map(Vec::len), Some(2));
        assert_eq!(first["paging"]["next"]["after"], "2");
        let last = run(&state, json!({"limit": 2, "after": "2"}));
        assert_eq!(last["results"].as_array().map(Vec::len), Some(1));
        assert!(last.get("paging").is_none());
    }

    #[test]
    fn has_property_and_contains_token_filter_as_hubspot_does() {
        let state = state_with(&["jane@example.com", "joe@other.org"]);
        let body = run(
            &state,
            json!({"filterGroups": [{"filters": [
                {"propertyName": "email", "operator": "HAS_PROPERTY"},
                {"propertyName": "email", "operator": "CONTAINS_TOKEN", "value": "*EXAMPLE*"}
            ]}]}),
        );
        assert_eq!(body["total"], 1);
        let none = run(
            &state,
            json!({"filterGroups": [{"filters": [{"propertyName": "firstname", "operator": "HAS_PROPERTY"}]}]}),
        );
        assert_eq!(none["total"], 0);
    }

    #[test]
    fn phone_numbers_are_compared_as_national_numbers() {
        assert_eq!(searchable_phone("+14155552671"), "4155552671");
        assert_eq!(searchable_phone(" +1 (415) 555-2671 "), "4155552671");
        assert_eq!(
            searchable_phone("+39 06 1234 5678"),
            "0612345678",
            "Italian numbers keep their leading zero"
        );
        assert_eq!(searchable_phone("(415) 555-2671"), "4155552671");
        assert_eq!(searchable_phone("+not a number"), "");
    }

    #[test]
    fn tokens_match_whole_or_by_wildcard() {
        assert!(token_matches("jane@old.example", "jane@old.example"));
        assert!(!token_matches("jane@old.example", "old.example"));
        assert!(token_matches("jane@old.example", "*@old.example"));
        assert!(token_matches("jane@old.example", "jane*"));
        assert!(token_matches("jane@old.example", "j*@*example"));
        assert!(!token_matches("jane@old.example", "j*@*other"));
        assert!(!token_matches("ab", "ab*b"));
        assert!(token_matches("anything", "*"));
    }

    #[test]
    fn unknown_filter_property_is_a_validation_error() {
        let state = state_with(&[]);
        let request: SearchRequest = serde_json::from_value(
            json!({"filterGroups": [{"filters": [{"propertyName": "nope", "operator": "EQ", "value": "x"}]}]}),
        )
        .expect("request");
        let error =
            search(&state, ObjectType::Contact, &request, Instant::now()).expect_err("invalid");
        assert_eq!(error.category, "VALIDATION_ERROR");
    }
}
