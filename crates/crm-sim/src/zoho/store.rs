//! Records and notes, with the history search reads from (search lags writes).
//!
//! Ids are 19-digit numbers like Zoho's (`5725767000000524157`), one counter
//! for every module, so an id's order is its creation order.

use std::collections::{BTreeMap, VecDeque};
use std::time::Instant;

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{json, Map, Value};

use super::schema::{lookup_id, Module};

/// The user every record is created and modified by.
pub(crate) const USER_ID: &str = "5725767000000411001";
pub(crate) const USER_NAME: &str = "Simulator";

/// How many past versions a record keeps for lagging search.
const MAX_VERSIONS: usize = 16;

#[derive(Clone, Debug)]
pub(crate) struct Record {
    pub id: String,
    pub module: Module,
    pub fields: Map<String, Value>,
    pub created: DateTime<Utc>,
    pub modified: DateTime<Utc>,
    /// The field values as they were from each instant on, oldest first.
    versions: VecDeque<(Instant, Map<String, Value>)>,
}

impl Record {
    /// The values search sees at `cutoff` (`None`: not indexed yet).
    pub(crate) fn as_of(&self, cutoff: Instant) -> Option<&Map<String, Value>> {
        self.versions
            .iter()
            .rev()
            .find(|(t, _)| *t <= cutoff)
            .map(|(_, m)| m)
    }

    /// The record as the API renders it: every field (or only `only`), `id`,
    /// times, owner and, for people, `Full_Name`.
    pub(crate) fn render(&self, only: Option<&[String]>) -> Value {
        let mut out = Map::new();
        out.insert("id".into(), json!(self.id));
        let mut all = self.fields.clone();
        if self.module.has_full_name() {
            let name = [all.get("First_Name"), all.get("Last_Name")]
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .filter(|s| !s.is_empty())
                .collect::<Vec<_>>()
                .join(" ");
            all.insert("Full_Name".into(), json!(name));
        }
        all.insert("Created_Time".into(), json!(zoho_time(&self.created)));
        all.insert("Modified_Time".into(), json!(zoho_time(&self.modified)));
        all.insert("Owner".into(), user());
        all.insert("Created_By".into(), user());
        all.insert("Modified_By".into(), user());
        for (k, v) in all {
            if only.is_none_or(|o| o.contains(&k)) {
                out.insert(k, v);
            }
        }
        Value::Object(out)
    }

    /// `details` of a write's success entry.
    pub(crate) fn write_details(&self) -> Value {
        json!({
            "Modified_Time": zoho_time(&self.modified),
            "Modified_By": {"name": USER_NAME, "id": USER_ID},
            "Created_Time": zoho_time(&self.created),
            "id": self.id,
            "Created_By": {"name": USER_NAME, "id": USER_ID},
        })
    }
}

#[derive(Clone, Debug)]
pub(crate) struct Note {
    pub id: String,
    pub parent_module: Module,
    pub parent_id: String,
    pub title: Option<String>,
    pub content: Option<String>,
    pub created: DateTime<Utc>,
    pub modified: DateTime<Utc>,
}

impl Note {
    pub(crate) fn render(&self, only: Option<&[String]>) -> Value {
        let all = [
            ("Note_Title", json!(self.title)),
            ("Note_Content", json!(self.content)),
            (
                "Parent_Id",
                json!({
                    "module": {"api_name": self.parent_module.api_name(), "id": self.parent_module.id()},
                    "id": self.parent_id,
                }),
            ),
            ("Created_Time", json!(zoho_time(&self.created))),
            ("Modified_Time", json!(zoho_time(&self.modified))),
            ("Owner", user()),
            ("Created_By", user()),
            ("Modified_By", user()),
            ("$editable", json!(true)),
        ];
        let mut out = Map::new();
        out.insert("id".into(), json!(self.id));
        for (k, v) in all {
            if only.is_none_or(|o| o.iter().any(|f| f == k)) {
                out.insert(k.into(), v);
            }
        }
        Value::Object(out)
    }

    pub(crate) fn write_details(&self) -> Value {
        json!({
            "Modified_Time": zoho_time(&self.modified),
            "Modified_By": {"name": USER_NAME, "id": USER_ID},
            "Created_Time": zoho_time(&self.created),
            "id": self.id,
            "Created_By": {"name": USER_NAME, "id": USER_ID},
        })
    }
}

fn user() -> Value {
    json!({"name": USER_NAME, "id": USER_ID, "email": "simulator@example.com"})
}

/// Zoho's time format: ISO 8601 with an offset (`2020-10-14T10:31:43+00:00`).
pub(crate) fn zoho_time(t: &DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, false)
}

#[derive(Debug, Default)]
pub(crate) struct Store {
    next: u64,
    pub records: BTreeMap<String, Record>,
    pub notes: BTreeMap<String, Note>,
}

impl Store {
    fn next_id(&mut self) -> String {
        self.next += 1;
        format!("5725767000{:09}", 100_000 + self.next)
    }

    pub(crate) fn record(&self, module: Module, id: &str) -> Option<&Record> {
        self.records.get(id).filter(|r| r.module == module)
    }

    pub(crate) fn exists(&self, module: Module, id: &str) -> bool {
        self.record(module, id).is_some()
    }

    /// The module's records, oldest first.
    pub(crate) fn of(&self, module: Module) -> impl Iterator<Item = &Record> {
        self.records.values().filter(move |r| r.module == module)
    }

    pub(crate) fn insert(
        &mut self,
        module: Module,
        fields: Map<String, Value>,
        now: Instant,
    ) -> &Record {
        let id = self.next_id();
        let t = Utc::now();
        let mut versions = VecDeque::new();
        versions.push_back((now, fields.clone()));
        let record = Record {
            id: id.clone(),
            module,
            fields,
            created: t,
            modified: t,
            versions,
        };
        self.records.entry(id).or_insert(record)
    }

    /// Sets `changes` on the record (a `null` clears a field).
    pub(crate) fn update(
        &mut self,
        id: &str,
        changes: Map<String, Value>,
        now: Instant,
    ) -> Option<&Record> {
        let record = self.records.get_mut(id)?;
        for (k, v) in changes {
            if v.is_null() {
                record.fields.remove(&k);
            } else {
                record.fields.insert(k, v);
            }
        }
        record.modified = Utc::now();
        record.versions.push_back((now, record.fields.clone()));
        while record.versions.len() > MAX_VERSIONS {
            record.versions.pop_front();
        }
        Some(record)
    }

    pub(crate) fn add_note(
        &mut self,
        parent_module: Module,
        parent_id: &str,
        title: Option<String>,
        content: Option<String>,
    ) -> &Note {
        let id = self.next_id();
        let t = Utc::now();
        let note = Note {
            id: id.clone(),
            parent_module,
            parent_id: parent_id.to_owned(),
            title,
            content,
            created: t,
            modified: t,
        };
        self.notes.entry(id).or_insert(note)
    }

    /// A record's notes, oldest first.
    pub(crate) fn notes_of(&self, module: Module, id: &str) -> Vec<&Note> {
        self.notes
            .values()
            .filter(|n| n.parent_module == module && n.parent_id == id)
            .collect()
    }

    /// The deals whose `Contact_Name` is the contact, oldest first.
    pub(crate) fn deals_of(&self, contact_id: &str) -> Vec<&Record> {
        self.of(Module::Deals)
            .filter(|d| d.fields.get("Contact_Name").and_then(lookup_id) == Some(contact_id))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn ids_are_zoho_like_and_in_creation_order() {
        let mut s = Store::default();
        let now = Instant::now();
        let a = s.insert(Module::Contacts, Map::new(), now).id.clone();
        let n = s
            .add_note(Module::Contacts, &a, None, Some("x".into()))
            .id
            .clone();
        let b = s.insert(Module::Leads, Map::new(), now).id.clone();
        assert_eq!(a.len(), 19);
        assert!(a.bytes().all(|c| c.is_ascii_digit()));
        assert!(a < n && n < b);
        assert!(s.exists(Module::Contacts, &a));
        assert!(!s.exists(Module::Leads, &a));
    }

    #[test]
    fn search_sees_a_record_as_it_was_at_the_cutoff() {
        let mut s = Store::default();
        let t0 = Instant::now();
        let mut f = Map::new();
        f.insert("Email".into(), json!("a@x.io"));
        let id = s.insert(Module::Contacts, f, t0).id.clone();
        let mut change = Map::new();
        change.insert("Email".into(), json!("b@x.io"));
        s.update(&id, change, t0 + Duration::from_secs(5));
        let r = s.record(Module::Contacts, &id).expect("record");
        assert!(r.as_of(t0 - Duration::from_secs(1)).is_none());
        assert_eq!(
            r.as_of(t0 + Duration::from_secs(1)).expect("v1")["Email"],
            "a@x.io"
        );
        assert_eq!(
            r.as_of(t0 + Duration::from_secs(6)).expect("v2")["Email"],
            "b@x.io"
        );
    }

    #[test]
    fn rendering_adds_full_name_and_honours_fields() {
        let mut s = Store::default();
        let mut f = Map::new();
        f.insert("First_Name".into(), json!("Priya"));
        f.insert("Last_Name".into(), json!("Sharma"));
        let r = s.insert(Module::Contacts, f, Instant::now()).clone();
        let all = r.render(None);
        assert_eq!(all["Full_Name"], "Priya Sharma");
        assert!(all["Created_Time"]
            .as_str()
            .expect("time")
            .ends_with("+00:00"));
        let some = r.render(Some(&["Last_Name".to_owned()]));
        assert_eq!(some, json!({"id": r.id, "Last_Name": "Sharma"}));
    }
}
