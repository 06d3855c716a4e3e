//! The CRM object types the simulator knows and the HUBSPOT_DEFINED association
//! types between them.

/// A HubSpot CRM object type served by the simulator.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) enum ObjectType {
    Contact,
    Note,
    Deal,
}

impl ObjectType {
    pub(crate) const ALL: [ObjectType; 3] =
        [ObjectType::Contact, ObjectType::Note, ObjectType::Deal];

    /// Path segment and association key: `contacts`, `notes`, `deals`.
    pub(crate) fn plural(self) -> &'static str {
        match self {
            ObjectType::Contact => "contacts",
            ObjectType::Note => "notes",
            ObjectType::Deal => "deals",
        }
    }

    /// Used in association labels such as `contact_to_note`.
    pub(crate) fn singular(self) -> &'static str {
        match self {
            ObjectType::Contact => "contact",
            ObjectType::Note => "note",
            ObjectType::Deal => "deal",
        }
    }

    /// Used in HubSpot's error messages (`Could not get some CONTACT objects`).
    pub(crate) fn upper(self) -> &'static str {
        match self {
            ObjectType::Contact => "CONTACT",
            ObjectType::Note => "NOTE",
            ObjectType::Deal => "DEAL",
        }
    }

    /// Accepts the names HubSpot accepts in paths and `associations=` lists:
    /// plural, singular and the object type ids.
    pub(crate) fn parse(name: &str) -> Option<ObjectType> {
        match name.trim().to_ascii_lowercase().as_str() {
            "contacts" | "contact" | "0-1" => Some(ObjectType::Contact),
            "notes" | "note" | "0-46" => Some(ObjectType::Note),
            "deals" | "deal" | "0-3" => Some(ObjectType::Deal),
            _ => None,
        }
    }

    /// Property set by the simulator when a record is created.
    pub(crate) fn created_property(self) -> &'static str {
        match self {
            ObjectType::Contact | ObjectType::Deal => "createdate",
            ObjectType::Note => "hs_createdate",
        }
    }

    /// Property set by the simulator on every write.
    pub(crate) fn modified_property(self) -> &'static str {
        match self {
            ObjectType::Contact => "lastmodifieddate",
            ObjectType::Note | ObjectType::Deal => "hs_lastmodifieddate",
        }
    }

    /// Properties returned by reads that do not name any (as HubSpot does).
    pub(crate) fn default_read_properties(self) -> &'static [&'static str] {
        match self {
            ObjectType::Contact => &[
                "createdate",
                "email",
                "firstname",
                "hs_object_id",
                "lastmodifieddate",
                "lastname",
            ],
            ObjectType::Note => &["hs_createdate", "hs_lastmodifieddate", "hs_object_id"],
            ObjectType::Deal => &[
                "amount",
                "closedate",
                "createdate",
                "dealname",
                "dealstage",
                "hs_lastmodifieddate",
                "hs_object_id",
                "pipeline",
            ],
        }
    }

    /// Properties every read returns, requested or not.
    pub(crate) fn always_read_properties(self) -> [&'static str; 3] {
        [
            "hs_object_id",
            self.created_property(),
            self.modified_property(),
        ]
    }
}

/// One HUBSPOT_DEFINED association type: `from` → `to` has id `id`.
struct AssociationType {
    from: ObjectType,
    to: ObjectType,
    id: u32,
}

const ASSOCIATION_TYPES: &[AssociationType] = &[
    AssociationType {
        from: ObjectType::Deal,
        to: ObjectType::Contact,
        id: 3,
    },
    AssociationType {
        from: ObjectType::Contact,
        to: ObjectType::Deal,
        id: 4,
    },
    AssociationType {
        from: ObjectType::Contact,
        to: ObjectType::Note,
        id: 201,
    },
    AssociationType {
        from: ObjectType::Note,
        to: ObjectType::Contact,
        id: 202,
    },
    AssociationType {
        from: ObjectType::Deal,
        to: ObjectType::Note,
        id: 213,
    },
    AssociationType {
        from: ObjectType::Note,
        to: ObjectType::Deal,
        id: 214,
    },
];

/// The object type that association type `type_id` leads to from `from`, if the
/// pair is a known HUBSPOT_DEFINED association.
pub(crate) fn association_target(from: ObjectType, type_id: u32) -> Option<ObjectType> {
    ASSOCIATION_TYPES
        .iter()
        .find(|t| t.from == from && t.id == type_id)
        .map(|t| t.to)
}

/// The HUBSPOT_DEFINED association type id from `from` to `to`, if any
/// (e.g. contact → note is 201).
pub(crate) fn association_type_id(from: ObjectType, to: ObjectType) -> Option<u32> {
    ASSOCIATION_TYPES
        .iter()
        .find(|t| t.from == from && t.to == to)
        .map(|t| t.id)
}

/// The label HubSpot shows on read, e.g. `contact_to_note`.
pub(crate) fn association_label(from: ObjectType, to: ObjectType) -> String {
    format!("{}_to_{}", from.singular(), to.singular())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn note_to_contact_is_type_202_and_contact_to_deal_is_type_4() {
        assert_eq!(
            association_target(ObjectType::Note, 202),
            Some(ObjectType::Contact)
        );
        assert_eq!(
            association_target(ObjectType::Contact, 4),
            Some(ObjectType::Deal)
        );
        assert_eq!(association_target(ObjectType::Contact, 202), None);
        assert_eq!(
            association_type_id(ObjectType::Contact, ObjectType::Note),
            Some(201)
        );
        assert_eq!(
            association_type_id(ObjectType::Contact, ObjectType::Contact),
            None
        );
    }

    #[test]
    fn every_association_type_has_its_reverse() {
        for t in ASSOCIATION_TYPES {
            assert!(ASSOCIATION_TYPES
                .iter()
                .any(|r| r.from == t.to && r.to == t.from));
        }
    }
}
