//! The scopes each simulated endpoint requires of the token, and the scopes
//! the simulator knows.
//!
//! Sources (HubSpot's public OpenAPI specs, `HubSpot/HubSpot-public-api-spec-collection`
//! @ `99893791`, per-operation `security`; an operation listing several
//! `security` entries accepts any one of them):
//! - contacts (S1) `PublicApiSpecs/CRM/Contacts/Rollouts/424/v3/contacts.json`: list, GET by
//!   id, `batch/read`, `search` → `crm.objects.contacts.read`; create, PATCH,
//!   `batch/create`, `batch/update`, `batch/upsert` → `crm.objects.contacts.write`.
//! - notes (S2) `PublicApiSpecs/CRM/Notes/Rollouts/424/v3/notes.json`: the same contacts
//!   scopes — reads `crm.objects.contacts.read`, writes `crm.objects.contacts.write`.
//! - deals (S3) `PublicApiSpecs/CRM/Deals/Rollouts/424/v3/deals.json`: reads
//!   `crm.objects.deals.read`, writes `crm.objects.deals.write`. HubSpot's own
//!   403 example for reading deals without that scope (D8,
//!   <https://developers.hubspot.com/docs/api-reference/legacy/crm/using-object-apis>,
//!   "Error handling") names four alternatives, which the simulator accepts
//!   and reports in that order: [`DEAL_READ`].
//! - properties (S4) `PublicApiSpecs/CRM/Properties/Rollouts/145899/v3/properties.json`:
//!   `GET /crm/v3/properties/{objectType}` lists ~100 alternatives for every
//!   object type together; which of them HubSpot accepts for one object type is
//!   not documented, so the simulator requires that object's
//!   `crm.schemas.{object}.read` (each is among the listed alternatives).
//!   Unconfirmed whether e.g. `crm.objects.contacts.read` alone also suffices.
//! - v4 associations (S5) `PublicApiSpecs/CRM/Associations/Rollouts/130902/v4/associations.json`:
//!   `GET /crm/v4/objects/{objectType}/{objectId}/associations/{toObjectType}`
//!   likewise lists alternatives for every object type; the simulator requires
//!   the read scope of the *from* object (unconfirmed whether HubSpot also
//!   checks the *to* object's scope).
//!
//! For contacts and notes the simulator accepts only the spec's scope. HubSpot
//! may accept sensitive-data variants too (by analogy with the deals example);
//! that is unconfirmed, and accepting less than HubSpot does is the safe side.

use super::objects::ObjectType;

/// Every scope the simulator knows: the union of what its endpoints accept.
/// A simulator whose `SimConfig::scopes` is this list (the default) lets
/// every call through.
pub const SCOPES: &[&str] = &[
    "crm.objects.contacts.read",
    "crm.objects.contacts.write",
    "crm.objects.deals.read",
    "crm.objects.deals.write",
    "crm.objects.deals.sensitive.read.v2",
    "crm.objects.deals.highly_sensitive.read.v2",
    "crm.schemas.contacts.read",
    "crm.schemas.deals.read",
    "crm.schemas.notes.read",
];

/// Contacts, and notes, read (S1, S2).
const CONTACT_READ: &[&str] = &["crm.objects.contacts.read"];
/// Contacts, and notes, write (S1, S2).
const CONTACT_WRITE: &[&str] = &["crm.objects.contacts.write"];
/// Deals read: the alternatives of HubSpot's 403 example, in its order (D8).
const DEAL_READ: &[&str] = &[
    "crm.schemas.deals.read",
    "crm.objects.deals.sensitive.read.v2",
    "crm.objects.deals.read",
    "crm.objects.deals.highly_sensitive.read.v2",
];
/// Deals write (S3).
const DEAL_WRITE: &[&str] = &["crm.objects.deals.write"];

/// What an endpoint does with its object type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Access {
    Read,
    Write,
    Schema,
}

fn scopes_for(object: &str, access: Access) -> Option<&'static [&'static str]> {
    Some(match (object, access) {
        ("contacts" | "notes", Access::Read) => CONTACT_READ,
        ("contacts" | "notes", Access::Write) => CONTACT_WRITE,
        ("deals", Access::Read) => DEAL_READ,
        ("deals", Access::Write) => DEAL_WRITE,
        ("contacts", Access::Schema) => &["crm.schemas.contacts.read"],
        ("notes", Access::Schema) => &["crm.schemas.notes.read"],
        ("deals", Access::Schema) => &["crm.schemas.deals.read"],
        _ => return None,
    })
}

/// The scopes one call requires — any one of them is enough — or `None` for a
/// path the simulator does not serve. `path` is a request path
/// (`/crm/v3/objects/contacts/search`, `/crm/v4/objects/contacts/1001/associations/notes`)
/// or a route template (`/crm/v3/objects/contacts/{id}`); `method` is upper case.
///
/// ```
/// use crm_sim::hubspot::required_scopes;
/// assert_eq!(
///     required_scopes("POST", "/crm/v3/objects/contacts/search"),
///     Some(&["crm.objects.contacts.read"][..])
/// );
/// ```
pub fn required_scopes(method: &str, path: &str) -> Option<&'static [&'static str]> {
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    match segments.as_slice() {
        ["crm", "v3", "objects", object, rest @ ..] => {
            let access = match (method, rest) {
                ("GET", [] | [_]) | ("POST", ["search"] | ["batch", "read"]) => Access::Read,
                ("POST", [] | ["batch", _]) | ("PATCH" | "DELETE", [_]) => Access::Write,
                _ => return None,
            };
            scopes_for(object, access)
        }
        ["crm", "v3", "properties", object] | ["crm", "v3", "properties", object, _]
            if method == "GET" =>
        {
            scopes_for(object, Access::Schema)
        }
        // The pipelines API: the object's read scope (unconfirmed: HubSpot's
        // pipelines guide names no scope per endpoint; the strictest plausible).
        ["crm", "v3", "pipelines", object] if method == "GET" => scopes_for(object, Access::Read),
        // `{fromObjectType}` may be plural, singular or an object type id here.
        ["crm", "v4", "objects", from, _, "associations", _] if method == "GET" => {
            ObjectType::parse(from).and_then(|o| scopes_for(o.plural(), Access::Read))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_accepted_scope_is_listed_in_scopes() {
        for object in ["contacts", "notes", "deals"] {
            for access in [Access::Read, Access::Write, Access::Schema] {
                for scope in scopes_for(object, access).expect("known object") {
                    assert!(SCOPES.contains(scope), "{scope} missing from SCOPES");
                }
            }
        }
    }

    #[test]
    fn every_listed_scope_is_accepted_somewhere() {
        for scope in SCOPES {
            let used = ["contacts", "notes", "deals"].iter().any(|object| {
                [Access::Read, Access::Write, Access::Schema]
                    .iter()
                    .any(|a| scopes_for(object, *a).is_some_and(|s| s.contains(scope)))
            });
            assert!(used, "{scope} is accepted by no endpoint");
        }
    }

    #[test]
    fn every_business_route_requires_a_scope() {
        for object in ObjectType::ALL {
            let base = format!("/crm/v3/objects/{}", object.plural());
            let props = format!("/crm/v3/properties/{}", object.plural());
            let routes = [
                ("GET", base.clone()),
                ("POST", base.clone()),
                ("GET", format!("{base}/{{id}}")),
                ("PATCH", format!("{base}/{{id}}")),
                ("POST", format!("{base}/search")),
                ("POST", format!("{base}/batch/read")),
                ("POST", format!("{base}/batch/create")),
                ("GET", props.clone()),
                ("GET", format!("{props}/{{name}}")),
            ];
            for (method, path) in routes {
                assert!(required_scopes(method, &path).is_some(), "{method} {path}");
            }
            for to in ObjectType::ALL {
                let path = format!(
                    "/crm/v4/objects/{}/1001/associations/{}",
                    object.singular(),
                    to.plural()
                );
                assert!(required_scopes("GET", &path).is_some(), "{path}");
            }
        }
        assert!(required_scopes("POST", "/crm/v3/objects/contacts/batch/upsert").is_some());
    }

    #[test]
    fn routes_map_to_the_spec_scopes() {
        let check = |method: &str, path: &str| required_scopes(method, path).map(<[_]>::to_vec);
        assert_eq!(
            check("GET", "/crm/v3/objects/contacts/{id}"),
            Some(vec!["crm.objects.contacts.read"])
        );
        assert_eq!(
            check("POST", "/crm/v3/objects/contacts/batch/upsert"),
            Some(vec!["crm.objects.contacts.write"])
        );
        assert_eq!(
            check("PATCH", "/crm/v3/objects/contacts/1001"),
            Some(vec!["crm.objects.contacts.write"])
        );
        assert_eq!(
            check("POST", "/crm/v3/objects/notes"),
            Some(vec!["crm.objects.contacts.write"])
        );
        assert_eq!(
            check("POST", "/crm/v3/objects/notes/batch/read"),
            Some(vec!["crm.objects.contacts.read"])
        );
        assert_eq!(
            check("POST", "/crm/v3/objects/deals"),
            Some(vec!["crm.objects.deals.write"])
        );
        assert!(check("POST", "/crm/v3/objects/deals/batch/read")
            .is_some_and(|s| s.contains(&"crm.objects.deals.read")));
        assert_eq!(
            check("GET", "/crm/v3/properties/contacts"),
            Some(vec!["crm.schemas.contacts.read"])
        );
        assert_eq!(
            check("GET", "/crm/v4/objects/contact/1001/associations/notes"),
            Some(vec!["crm.objects.contacts.read"])
        );
        assert_eq!(check("GET", "/crm/v3/objects/companies"), None);
        assert_eq!(check("GET", "/__admin/stats"), None);
    }
}
