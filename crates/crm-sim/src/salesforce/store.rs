//! Records and Salesforce-style ids.
//!
//! Ids are 18 characters: a 3-character key prefix (`00Q` Lead, `003`
//! Contact, `00T` Task), the rest of the 15-character case-sensitive id, and
//! a 3-character suffix that encodes which of the 15 are upper case, so that
//! the 18-character id is case-insensitive ([V] Salesforce's documented
//! 15→18 conversion; both forms are accepted in paths, bodies and SOQL).
//! Answers always carry the 18-character form.

use std::collections::BTreeMap;

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{json, Map, Value};

use super::schema::{SObject, Schema};
use super::API_VERSION;

const SUFFIX: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ012345";
const BASE62: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// The 3-character suffix of a 15-character id.
fn suffix(id15: &str) -> String {
    id15.as_bytes()
        .chunks(5)
        .map(|chunk| {
            let flags = chunk
                .iter()
                .enumerate()
                .filter(|(_, b)| b.is_ascii_uppercase())
                .fold(0usize, |acc, (i, _)| acc | (1 << i));
            SUFFIX[flags] as char
        })
        .collect()
}

/// The 18-character form of a 15- or 18-character id (`None`: not an id).
pub(crate) fn normalize_id(s: &str) -> Option<String> {
    if !s.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return None;
    }
    match s.len() {
        15 => Some(format!("{s}{}", suffix(s))),
        18 => {
            let id15 = &s[..15];
            suffix(id15)
                .eq_ignore_ascii_case(&s[15..])
                .then(|| format!("{id15}{}", suffix(id15)))
        }
        _ => None,
    }
}

/// The API path of a record.
pub(crate) fn record_url(o: SObject, id: &str) -> String {
    format!("/services/data/{API_VERSION}/sobjects/{}/{id}", o.name())
}

pub(crate) fn sf_time(t: &DateTime<Utc>) -> String {
    // Salesforce renders `2026-05-04T11:23:45.000+0000`.
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
        .replace('Z', "+0000")
}

#[derive(Clone, Debug)]
pub(crate) struct Record {
    pub id: String,
    pub sobject: SObject,
    /// Field values by the schema's names (system fields not included).
    pub fields: Map<String, Value>,
    pub created: DateTime<Utc>,
    pub modified: DateTime<Utc>,
    /// Creation order (ties of `CreatedDate`).
    pub seq: u64,
}

impl Record {
    /// A field's value, system fields included (`Null` when unset).
    pub(crate) fn value(&self, name: &str) -> Value {
        match name {
            "Id" => json!(self.id),
            "CreatedDate" => json!(sf_time(&self.created)),
            "LastModifiedDate" => json!(sf_time(&self.modified)),
            _ => self.fields.get(name).cloned().unwrap_or(Value::Null),
        }
    }

    /// The record as `GET /sobjects/{type}/{id}` renders it: `attributes`, then
    /// every field of the schema (or only `only`, by name).
    pub(crate) fn render(&self, schema: &Schema, only: Option<&[String]>) -> Value {
        let mut out = Map::new();
        out.insert(
            "attributes".into(),
            json!({"type": self.sobject.name(), "url": record_url(self.sobject, &self.id)}),
        );
        match only {
            Some(names) => {
                for n in names {
                    out.insert(n.clone(), self.value(n));
                }
            }
            None => {
                for f in schema.fields(self.sobject) {
                    out.insert(f.name.clone(), self.value(&f.name));
                }
            }
        }
        Value::Object(out)
    }

    pub(crate) fn is_converted(&self) -> bool {
        self.sobject == SObject::Lead && self.fields.get("IsConverted") == Some(&Value::Bool(true))
    }

    /// A text field, lower-cased (idLookup and SOQL comparisons).
    pub(crate) fn text_lower(&self, name: &str) -> Option<String> {
        self.fields
            .get(name)
            .and_then(Value::as_str)
            .map(str::to_lowercase)
    }
}

#[derive(Clone, Debug, Default)]
pub(crate) struct Store {
    records: BTreeMap<String, Record>,
    next: u64,
}

impl Store {
    /// A new record's id.
    fn new_id(&mut self, o: SObject) -> String {
        self.next += 1;
        let mut n = self.next;
        let mut digits = [b'0'; 7];
        for d in digits.iter_mut().rev() {
            *d = BASE62[(n % 62) as usize];
            n /= 62;
        }
        let id15 = format!(
            "{}5g000{}",
            o.key_prefix(),
            std::str::from_utf8(&digits).unwrap_or("0000000")
        );
        format!("{id15}{}", suffix(&id15))
    }

    pub(crate) fn insert(
        &mut self,
        o: SObject,
        fields: Map<String, Value>,
        now: DateTime<Utc>,
    ) -> String {
        let id = self.new_id(o);
        let seq = self.next;
        self.records.insert(
            id.clone(),
            Record {
                id: id.clone(),
                sobject: o,
                fields,
                created: now,
                modified: now,
                seq,
            },
        );
        id
    }

    /// A record by a 15- or 18-character id.
    pub(crate) fn get(&self, id: &str) -> Option<&Record> {
        self.records.get(&normalize_id(id)?)
    }

    pub(crate) fn get_mut(&mut self, id: &str) -> Option<&mut Record> {
        self.records.get_mut(&normalize_id(id)?)
    }

    pub(crate) fn of_type(&self, o: SObject) -> impl Iterator<Item = &Record> {
        self.records.values().filter(move |r| r.sobject == o)
    }

    pub(crate) fn all_mut(&mut self) -> impl Iterator<Item = &mut Record> {
        self.records.values_mut()
    }

    pub(crate) fn len(&self) -> usize {
        self.records.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_carry_their_case_suffix_and_both_forms_are_accepted() {
        // Salesforce's documented example pair.
        assert_eq!(
            normalize_id("001A0000006Vm9r").as_deref(),
            Some("001A0000006Vm9rIAC")
        );
        assert_eq!(
            normalize_id("001a0000006vm9riac").as_deref(),
            None,
            "the 15 characters are case-sensitive"
        );
        assert_eq!(
            normalize_id("001A0000006Vm9riac").as_deref(),
            Some("001A0000006Vm9rIAC"),
            "the suffix is not"
        );
        assert_eq!(normalize_id("../x"), None);
        let mut s = Store::default();
        let id = s.insert(SObject::Lead, Map::new(), Utc::now());
        assert!(id.starts_with("00Q") && id.len() == 18, "{id}");
        assert!(s.get(&id[..15]).is_some());
    }
}
