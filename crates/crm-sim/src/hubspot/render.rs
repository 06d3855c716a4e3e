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

/// How many associated ids per type a v3 record read lists before paging:
/// "if your request returns more than 100 associations, you will need to use
/// the value of the after field returned in the response to get the next set"
/// (C5, https://developers.hubspot.com/changelog/announcing-a-change-to-how-v3-crm-apis-return-association-data,
/// for `GET /crm/v3/objects/{objectType}` and `/{objectId}`, in force since 18 Jan 2021).
pub(crate) const V3_ASSOCIATIONS_PAGE: usize = 100;

/// Adds `"associations":{"notes":{"results":[{"id","type"}],"paging"?}}` for the
/// requested kinds that have any (`CollectionResponseAssociatedId`, S1
/// `PublicApiSpecs/CRM/Contacts/Rollouts/424/v3/contacts.json`): at most
/// [`V3_ASSOCIATIONS_PAGE`] ids per kind in creation order; when there are more,
/// `paging.next` has an `after` cursor and a `link`. C5 says the link is "the
/// next paginated request URL for that object" with `after` appended; which
/// endpoint HubSpot's link names is not documented, so the simulator's link is
/// the v4 association list (`GET /crm/v4/objects/{from}/{id}/associations/{to}`),
/// which takes the same cursor. `base_url` is `http://host`.
pub(crate) fn add_associations(
    body: &mut Map<String, Value>,
    store: &Store,
    object: ObjectType,
    id: u64,
    kinds: &[ObjectType],
    base_url: &str,
) {
    let mut associations = Map::new();
    for kind in kinds {
        let page = store.associations_page(object, id, *kind, 0, V3_ASSOCIATIONS_PAGE);
        if page.items.is_empty() {
            continue;
        }
        let results: Vec<Value> = page
            .items
            .into_iter()
            .map(|(to_id, label)| json!({"id": to_id.to_string(), "type": label}))
            .collect();
        let mut collection = Map::new();
        collection.insert("results".into(), Value::Array(results));
        if let Some(next) = page.next {
            let after = paging_token(next);
            let link = format!(
                "{base_url}/crm/v4/objects/{}/{id}/associations/{}?after={}",
                object.plural(),
                kind.plural(),
                encode(&after)
            );
            collection.insert(
                "paging".into(),
                json!({"next": {"after": after, "link": link}}),
            );
        }
        associations.insert(kind.plural().into(), Value::Object(collection));
    }
    if !associations.is_empty() {
        body.insert("associations".into(), Value::Object(associations));
    }
}

/// `http://host` of a request, for `paging.next.link`.
pub(crate) fn base_url(headers: &axum::http::HeaderMap) -> String {
    let host = headers
        .get("host")
        .and_then(|h| h.to_str().ok())
        .unwrap_or("127.0.0.1");
    format!("http://{host}")
}

/// An association paging cursor. HubSpot's are opaque base64 strings (e.g.
/// `"after": "MTAtNi0xODQ3MjAxMzg5%3D"` in
/// https://developers.hubspot.com/changelog/bug-fix-batch-read-limit-for-hubspot-associations-api),
/// so clients must echo them, URL-encoded, rather than parse them; the
/// simulator's are base64 too (of the association sequence number).
pub(crate) fn paging_token(seq: u64) -> String {
    base64_encode(seq.to_string().as_bytes())
}

/// The sequence number of a cursor made by [`paging_token`].
pub(crate) fn parse_paging_token(token: &str) -> Option<u64> {
    let bytes = base64_decode(token.trim())?;
    std::str::from_utf8(&bytes).ok()?.parse().ok()
}

const BASE64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

fn base64_encode(input: &[u8]) -> String {
    let mut out = String::with_capacity(input.len().div_ceil(3) * 4);
    for chunk in input.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(BASE64[((n >> (18 - 6 * i)) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

fn base64_decode(input: &str) -> Option<Vec<u8>> {
    let input = input.trim_end_matches('=');
    let mut out = Vec::with_capacity(input.len() * 3 / 4);
    let mut acc: u32 = 0;
    let mut bits = 0;
    for c in input.bytes() {
        let v = BASE64.iter().position(|b| *b == c)?;
        acc = (acc << 6) | u32::try_from(v).ok()?;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push(u8::try_from((acc >> bits) & 0xFF).ok()?);
        }
    }
    Some(out)
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
    fn paging_tokens_are_base64_and_round_trip() {
        assert_eq!(paging_token(100), "MTAw");
        assert_eq!(paging_token(1), "MQ==");
        for seq in [0, 1, 99, 100, 12_345, u64::MAX] {
            assert_eq!(parse_paging_token(&paging_token(seq)), Some(seq));
        }
        assert_eq!(parse_paging_token("not base64!"), None);
        assert_eq!(parse_paging_token("YWJj"), None, "decodes to \"abc\"");
    }

    #[test]
    fn next_link_query_replaces_after_and_encodes() {
        let q = params(&[("limit", "2"), ("after", "1001"), ("properties", "a b")]);
        assert_eq!(q.with_after("1003"), "limit=2&properties=a%20b&after=1003");
    }
}
