//! Persons (with the versions the lagging search still serves), notes and deals.
//!
//! Ids come from one counter across every record type and keep increasing
//! across `/__admin/reset`, so an id never names two records (Pipedrive's ids
//! are per-entity integers [V SDK]; sharing the counter only makes a mix-up of
//! a note id for a person id fail loudly in tests).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use serde_json::{json, Value};

const FIRST_ID: u64 = 1;

/// One email or phone of a person: `{value, primary, label}` (SDK
/// `add-person-request-emails-inner.ts` [V]).
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Entry {
    pub value: String,
    pub primary: bool,
    pub label: String,
}

impl Entry {
    pub(crate) fn to_json(&self) -> Value {
        json!({"value": self.value, "primary": self.primary, "label": self.label})
    }
}

/// What the search index holds of a person at one time.
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct SearchView {
    pub name: String,
    pub emails: Vec<String>,
    pub phones: Vec<String>,
    /// Values of the person's searchable custom fields, as text.
    pub custom: Vec<String>,
}

#[derive(Clone, Debug)]
pub(crate) struct Person {
    pub id: u64,
    pub name: String,
    pub emails: Vec<Entry>,
    pub phones: Vec<Entry>,
    pub custom_fields: BTreeMap<String, Value>,
    pub add_time: DateTime<Utc>,
    pub update_time: DateTime<Utc>,
    /// Versions search may still serve, oldest first, each with when it was written.
    history: Vec<(Instant, Option<SearchView>)>,
}

impl Person {
    pub(crate) fn new(id: u64, now: DateTime<Utc>) -> Person {
        Person {
            id,
            name: String::new(),
            emails: Vec::new(),
            phones: Vec::new(),
            custom_fields: BTreeMap::new(),
            add_time: now,
            update_time: now,
            history: Vec::new(),
        }
    }

    /// What search sees at `cutoff` (= now − lag): `None` before the first
    /// write reached the index, or once a deletion has.
    pub(crate) fn as_of(&self, cutoff: Instant) -> Option<&SearchView> {
        self.history
            .iter()
            .rev()
            .find(|(at, _)| *at <= cutoff)
            .and_then(|(_, view)| view.as_ref())
    }

    /// Records the person's current state (`None`: deleted) for search.
    pub(crate) fn remember(&mut self, view: Option<SearchView>, now: Instant, lag: Duration) {
        self.history.push((now, view));
        // Keep the newest version older than the lag and everything after it.
        if let Some(cutoff) = now.checked_sub(lag) {
            if let Some(keep_from) = self.history.iter().rposition(|(at, _)| *at <= cutoff) {
                self.history.drain(..keep_from);
            }
        }
    }

    /// `first_name`/`last_name` as Pipedrive derives them from `name` [U].
    fn split_name(&self) -> (Value, Value) {
        let name = self.name.trim();
        match name.split_once(' ') {
            Some((first, last)) => (json!(first), json!(last.trim())),
            None if name.is_empty() => (Value::Null, Value::Null),
            None => (json!(name), Value::Null),
        }
    }

    /// The v2 person object (spec example, quoted in an integrator's notes [D];
    /// the Contact Sync fields `notes`, `im`, `birthday`, `job_title`,
    /// `postal_address` are left out, as for a company without Contact Sync).
    pub(crate) fn to_json(&self) -> Value {
        let (first, last) = self.split_name();
        json!({
            "id": self.id,
            "name": self.name,
            "first_name": first,
            "last_name": last,
            "owner_id": 1,
            "org_id": null,
            "add_time": rfc3339(self.add_time),
            "update_time": rfc3339(self.update_time),
            "emails": self.emails.iter().map(Entry::to_json).collect::<Vec<_>>(),
            "phones": self.phones.iter().map(Entry::to_json).collect::<Vec<_>>(),
            "is_deleted": false,
            "visible_to": 3,
            "label_ids": [],
            "picture_id": null,
            "custom_fields": self.custom_fields,
        })
    }
}

#[derive(Clone, Debug)]
pub(crate) struct Note {
    pub id: u64,
    pub content: String,
    pub person_id: Option<u64>,
    pub deal_id: Option<u64>,
    pub add_time: DateTime<Utc>,
    pub update_time: DateTime<Utc>,
}

#[derive(Clone, Debug)]
pub(crate) struct Deal {
    pub id: u64,
    pub title: String,
    pub person_id: Option<u64>,
    pub pipeline_id: u64,
    pub stage_id: u64,
    pub status: String,
    pub value: f64,
    pub currency: String,
    pub expected_close_date: Option<chrono::NaiveDate>,
    pub add_time: DateTime<Utc>,
    pub update_time: DateTime<Utc>,
}

#[derive(Debug)]
pub(crate) struct Store {
    next_id: u64,
    pub persons: BTreeMap<u64, Person>,
    /// Deleted persons: gone from reads and (after the lag) from search, but
    /// still in the index history until then.
    pub deleted_persons: BTreeMap<u64, Person>,
    pub notes: BTreeMap<u64, Note>,
    pub deals: BTreeMap<u64, Deal>,
}

impl Default for Store {
    fn default() -> Self {
        Store {
            next_id: FIRST_ID,
            persons: BTreeMap::new(),
            deleted_persons: BTreeMap::new(),
            notes: BTreeMap::new(),
            deals: BTreeMap::new(),
        }
    }
}

impl Store {
    pub(crate) fn next_id(&mut self) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        id
    }

    /// Forgets every record; ids keep increasing.
    pub(crate) fn clear(&mut self) {
        *self = Store {
            next_id: self.next_id,
            ..Store::default()
        };
    }
}

/// v2 timestamps: RFC 3339 (migration guide [D]).
pub(crate) fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// v1 timestamps: `YYYY-MM-DD HH:MM:SS` in UTC (readme, "Date format" [V]).
pub(crate) fn v1_time(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M:%S").to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn search_sees_a_person_only_once_the_lag_has_passed() {
        let lag = Duration::from_millis(100);
        let t0 = Instant::now();
        let mut p = Person::new(1, Utc::now());
        p.remember(
            Some(SearchView {
                name: "A".into(),
                ..SearchView::default()
            }),
            t0,
            lag,
        );
        assert!(p.as_of(t0 - Duration::from_millis(1)).is_none());
        assert_eq!(p.as_of(t0).map(|v| v.name.as_str()), Some("A"));
        p.remember(
            Some(SearchView {
                name: "B".into(),
                ..SearchView::default()
            }),
            t0 + Duration::from_millis(50),
            lag,
        );
        assert_eq!(
            p.as_of(t0 + Duration::from_millis(60))
                .map(|v| v.name.as_str()),
            Some("B")
        );
        p.remember(None, t0 + Duration::from_millis(300), lag);
        assert!(p.as_of(t0 + Duration::from_millis(300)).is_none());
    }

    #[test]
    fn names_split_into_first_and_last() {
        let mut p = Person::new(1, Utc::now());
        p.name = "Priya Anand Sharma".into();
        let v = p.to_json();
        assert_eq!(v["first_name"], "Priya");
        assert_eq!(v["last_name"], "Anand Sharma");
        assert_eq!(
            v1_time("2026-05-04T11:23:45Z".parse().expect("t")),
            "2026-05-04 11:23:45"
        );
    }
}
