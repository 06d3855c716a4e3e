//! Records, their search-visible history, associations and the email index.
//!
//! Invariant: `emails` maps every contact's (lower-cased) `email` to its id and
//! nothing else. Associations are stored in both directions, each with the
//! sequence number of its creation: association lists are served in creation
//! order and paged by that number.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};

use super::objects::{association_label, ObjectType};
use super::validation::{format_timestamp, PropertyWrites};

/// The first id handed out; ids are one counter across all object types.
const FIRST_ID: u64 = 1001;

/// A record's properties as of one write, with the instant it was written.
#[derive(Clone, Debug)]
pub(crate) struct Snapshot {
    pub written: Instant,
    pub updated_at: DateTime<Utc>,
    pub properties: BTreeMap<String, String>,
}

#[derive(Clone, Debug)]
pub(crate) struct Record {
    pub id: u64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub properties: BTreeMap<String, String>,
    /// Versions the search index may still be serving; oldest first.
    history: Vec<Snapshot>,
}

impl Record {
    /// The version search sees at `cutoff` (= now − search lag), if any.
    pub(crate) fn as_of(&self, cutoff: Instant) -> Option<&Snapshot> {
        self.history.iter().rev().find(|s| s.written <= cutoff)
    }

    fn remember(&mut self, now: Instant, lag: Duration) {
        self.history.push(Snapshot {
            written: now,
            updated_at: self.updated_at,
            properties: self.properties.clone(),
        });
        // Keep the newest snapshot older than the lag and everything after it.
        if let Some(cutoff) = now.checked_sub(lag) {
            if let Some(keep_from) = self.history.iter().rposition(|s| s.written <= cutoff) {
                self.history.drain(..keep_from);
            }
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Association {
    from: ObjectType,
    from_id: u64,
    to: ObjectType,
    to_id: u64,
}

/// One page of a record's associations to one object type.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct AssociationPage {
    /// `(to_id, label)` in creation order.
    pub items: Vec<(u64, String)>,
    /// Where the next page starts (an association sequence number), if any.
    pub next: Option<u64>,
}

#[derive(Debug)]
pub(crate) struct Store {
    next_id: u64,
    records: BTreeMap<ObjectType, BTreeMap<u64, Record>>,
    emails: HashMap<String, u64>,
    /// Each association with the sequence number of its creation.
    associations: BTreeMap<Association, u64>,
    next_association: u64,
}

impl Default for Store {
    fn default() -> Self {
        Store {
            next_id: FIRST_ID,
            records: BTreeMap::new(),
            emails: HashMap::new(),
            associations: BTreeMap::new(),
            next_association: 1,
        }
    }
}

impl Store {
    /// Forgets every record and association. Ids keep increasing, so an id
    /// cached before a reset never names a different record after it.
    pub(crate) fn clear(&mut self) {
        let next_id = self.next_id;
        let next_association = self.next_association;
        *self = Store {
            next_id,
            next_association,
            ..Store::default()
        };
    }

    pub(crate) fn get(&self, object: ObjectType, id: u64) -> Option<&Record> {
        self.records.get(&object).and_then(|r| r.get(&id))
    }

    /// Resolves a path id: a numeric record id, or an email with `idProperty=email`.
    pub(crate) fn resolve(&self, object: ObjectType, id: &str, by_email: bool) -> Option<u64> {
        if by_email {
            if object != ObjectType::Contact {
                return None;
            }
            return self.contact_by_email(id);
        }
        let id: u64 = id.trim().parse().ok()?;
        self.get(object, id).map(|r| r.id)
    }

    pub(crate) fn contact_by_email(&self, email: &str) -> Option<u64> {
        self.emails
            .get(&super::validation::normalise_email(email))
            .copied()
    }

    /// Records of `object` with id ≥ `from`, in id order.
    pub(crate) fn range(&self, object: ObjectType, from: u64) -> impl Iterator<Item = &Record> {
        self.records
            .get(&object)
            .into_iter()
            .flat_map(move |r| r.range(from..).map(|(_, rec)| rec))
    }

    /// Creates a record from validated writes and returns its id.
    pub(crate) fn insert(
        &mut self,
        object: ObjectType,
        writes: PropertyWrites,
        lag: Duration,
    ) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        let now = Utc::now();
        let stamp = format_timestamp(now);
        let mut properties: BTreeMap<String, String> = writes
            .into_iter()
            .filter_map(|(k, v)| v.map(|v| (k, v)))
            .collect();
        properties.insert("hs_object_id".into(), id.to_string());
        properties.insert(object.created_property().into(), stamp.clone());
        properties.insert(object.modified_property().into(), stamp);
        if object == ObjectType::Contact {
            properties.insert("hs_analytics_source".into(), "OFFLINE".into());
            if let Some(email) = properties.get("email") {
                self.emails.insert(email.clone(), id);
            }
        }
        let mut record = Record {
            id,
            created_at: now,
            updated_at: now,
            properties,
            history: Vec::new(),
        };
        record.remember(Instant::now(), lag);
        self.records.entry(object).or_default().insert(id, record);
        id
    }

    /// Merges validated writes into an existing record (`None` clears).
    /// Returns false if there is no such record.
    pub(crate) fn update(
        &mut self,
        object: ObjectType,
        id: u64,
        writes: PropertyWrites,
        lag: Duration,
    ) -> bool {
        let Some(record) = self.records.get_mut(&object).and_then(|r| r.get_mut(&id)) else {
            return false;
        };
        let old_email = record.properties.get("email").cloned();
        for (name, value) in writes {
            match value {
                Some(v) => record.properties.insert(name, v),
                None => record.properties.remove(&name),
            };
        }
        let now = Utc::now();
        record.updated_at = now;
        record
            .properties
            .insert(object.modified_property().into(), format_timestamp(now));
        let new_email = record.properties.get("email").cloned();
        record.remember(Instant::now(), lag);
        if object == ObjectType::Contact && old_email != new_email {
            if let Some(old) = old_email {
                self.emails.remove(&old);
            }
            if let Some(new) = new_email {
                self.emails.insert(new, id);
            }
        }
        true
    }

    /// Associates two records in both directions (idempotent: an existing
    /// association keeps its place in the order).
    pub(crate) fn associate(&mut self, from: ObjectType, from_id: u64, to: ObjectType, to_id: u64) {
        let forward = Association {
            from,
            from_id,
            to,
            to_id,
        };
        if self.associations.contains_key(&forward) {
            return;
        }
        let seq = self.next_association;
        self.next_association += 1;
        self.associations.insert(forward, seq);
        self.associations.insert(
            Association {
                from: to,
                from_id: to_id,
                to: from,
                to_id: from_id,
            },
            seq,
        );
    }

    /// Up to `limit` of the `to` records associated with a record, in creation
    /// order, starting at sequence number `after` (a previous page's `next`).
    pub(crate) fn associations_page(
        &self,
        from: ObjectType,
        from_id: u64,
        to: ObjectType,
        after: u64,
        limit: usize,
    ) -> AssociationPage {
        let start = Association {
            from,
            from_id,
            to,
            to_id: 0,
        };
        let end = Association {
            to_id: u64::MAX,
            ..start
        };
        let mut all: Vec<(u64, u64)> = self
            .associations
            .range(start..=end)
            .map(|(a, seq)| (*seq, a.to_id))
            .filter(|(seq, _)| *seq >= after)
            .collect();
        all.sort_unstable();
        let next = all.get(limit).map(|(seq, _)| *seq);
        let items = all
            .into_iter()
            .take(limit)
            .map(|(_, to_id)| (to_id, association_label(from, to)))
            .collect();
        AssociationPage { items, next }
    }

    /// The contact other than `except` whose primary email or one of whose
    /// `hs_additional_emails` is `email` (compared lower-cased).
    pub(crate) fn contact_identified_by(&self, email: &str, except: u64) -> Option<u64> {
        let email = super::validation::normalise_email(email);
        if let Some(id) = self.contact_by_email(&email).filter(|id| *id != except) {
            return Some(id);
        }
        self.range(ObjectType::Contact, 0)
            .filter(|r| r.id != except)
            .find(|r| {
                r.properties
                    .get(ADDITIONAL_EMAILS)
                    .is_some_and(|list| split_emails(list).any(|e| e == email))
            })
            .map(|r| r.id)
    }
}

/// The contact property listing a contact's additional (secondary) emails.
pub(crate) const ADDITIONAL_EMAILS: &str = "hs_additional_emails";

/// The entries of a `;`-separated `hs_additional_emails` value, lower-cased.
pub(crate) fn split_emails(list: &str) -> impl Iterator<Item = String> + '_ {
    list.split(';')
        .map(super::validation::normalise_email)
        .filter(|e| !e.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn writes(pairs: &[(&str, &str)]) -> PropertyWrites {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), Some((*v).to_owned())))
            .collect()
    }

    #[test]
    fn a_new_record_is_invisible_to_search_until_the_lag_has_passed() {
        let mut store = Store::default();
        let lag = Duration::from_secs(3600);
        let id = store.insert(ObjectType::Contact, writes(&[("email", "a@x.com")]), lag);
        let record = store.get(ObjectType::Contact, id).expect("record");
        assert!(record.as_of(Instant::now()).is_some());
        if let Some(cutoff) = Instant::now().checked_sub(lag) {
            assert!(record.as_of(cutoff).is_none());
        }
    }

    #[test]
    fn changing_an_email_moves_the_index_entry() {
        let mut store = Store::default();
        let id = store.insert(
            ObjectType::Contact,
            writes(&[("email", "a@x.com")]),
            Duration::ZERO,
        );
        assert!(store.update(
            ObjectType::Contact,
            id,
            writes(&[("email", "b@x.com")]),
            Duration::ZERO
        ));
        assert_eq!(store.contact_by_email("A@X.com"), None);
        assert_eq!(store.contact_by_email("B@x.com"), Some(id));
    }

    #[test]
    fn associations_are_visible_from_both_ends() {
        let mut store = Store::default();
        let contact = store.insert(ObjectType::Contact, writes(&[]), Duration::ZERO);
        let note = store.insert(ObjectType::Note, writes(&[]), Duration::ZERO);
        store.associate(ObjectType::Note, note, ObjectType::Contact, contact);
        assert_eq!(
            store
                .associations_page(ObjectType::Contact, contact, ObjectType::Note, 0, 10)
                .items,
            vec![(note, "contact_to_note".to_owned())]
        );
        assert_eq!(
            store
                .associations_page(ObjectType::Note, note, ObjectType::Contact, 0, 10)
                .items,
            vec![(contact, "note_to_contact".to_owned())]
        );
    }

    #[test]
    fn associations_page_in_creation_order_and_stay_put_when_repeated() {
        let mut store = Store::default();
        let contact = store.insert(ObjectType::Contact, writes(&[]), Duration::ZERO);
        let late = store.insert(ObjectType::Note, writes(&[]), Duration::ZERO);
        let early = store.insert(ObjectType::Note, writes(&[]), Duration::ZERO);
        let third = store.insert(ObjectType::Note, writes(&[]), Duration::ZERO);
        // Associated in an order other than id order.
        store.associate(ObjectType::Contact, contact, ObjectType::Note, early);
        store.associate(ObjectType::Note, late, ObjectType::Contact, contact);
        store.associate(ObjectType::Contact, contact, ObjectType::Note, third);
        store.associate(ObjectType::Note, early, ObjectType::Contact, contact);
        let first = store.associations_page(ObjectType::Contact, contact, ObjectType::Note, 0, 2);
        let ids: Vec<u64> = first.items.iter().map(|(id, _)| *id).collect();
        assert_eq!(ids, [early, late]);
        let next = first.next.expect("a second page");
        let second =
            store.associations_page(ObjectType::Contact, contact, ObjectType::Note, next, 2);
        assert_eq!(second.items, vec![(third, "contact_to_note".to_owned())]);
        assert_eq!(second.next, None);
    }

    #[test]
    fn clear_keeps_ids_increasing() {
        let mut store = Store::default();
        let first = store.insert(ObjectType::Deal, writes(&[]), Duration::ZERO);
        store.clear();
        assert!(store.get(ObjectType::Deal, first).is_none());
        assert!(store.insert(ObjectType::Deal, writes(&[]), Duration::ZERO) > first);
    }
}
