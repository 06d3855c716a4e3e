//! A connection's `fields`/`static` tables on a CRM whose adapter writes its
//! own fields too (Zoho, Salesforce): the mapped fields join the record, the
//! adapter's own winning, and the schema check sees both.

use lb_domain::mapping::Mapping;
use lb_domain::QueuedLead;
use serde_json::{json, Map, Value};

/// Adds `mapping`'s fields for `lead` to `record`, where the adapter set none.
pub(crate) fn add_to(
    record: &mut Map<String, Value>,
    mapping: Option<&Mapping>,
    lead: &QueuedLead,
) {
    let Some(mapping) = mapping else { return };
    for (field, value) in mapping.render_lead(lead) {
        record.entry(field).or_insert_with(|| json!(value));
    }
}

/// Every field a write may name: the adapter's `own` and the mapped ones
/// (`answers.*`'s per-answer names are checked at write time), as a record
/// for the schema check.
pub(crate) fn every_field(own: &[&str], mapping: Option<&Mapping>) -> Map<String, Value> {
    let mut record: Map<String, Value> = own
        .iter()
        .map(|f| ((*f).to_string(), Value::Null))
        .collect();
    for t in mapping.map(Mapping::targets).unwrap_or_default() {
        if !t.property.contains('{') {
            record.insert(t.property, Value::Null);
        }
    }
    record
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mapped_fields_join_the_adapters_own_which_win() {
        let mapping = Mapping::from_pairs(&[
            ("intent.primary", "Chat_Intent"),
            ("visitor.company", "Company"),
            ("answers.*", "lb_{key}"),
        ]);
        let event: lb_domain::LeadEvent = serde_json::from_value(json!({
            "event_id": "evt_m", "event_type": "lead.created",
            "occurred_at": "2026-05-04T11:23:45Z", "bot_id": "b",
            "visitor": {"email": "a@b.co", "company": "Acme"},
            "intent": {"primary": "pricing"}
        }))
        .unwrap();
        let lead = QueuedLead::new(event, chrono::Utc::now()).unwrap();
        let mut record = Map::new();
        record.insert("Company".into(), json!("from the adapter"));
        add_to(&mut record, Some(&mapping), &lead);
        assert_eq!(record["Company"], "from the adapter");
        assert_eq!(record["Chat_Intent"], "pricing");
        let every = every_field(&["Email"], Some(&mapping));
        let names: Vec<&str> = every.keys().map(String::as_str).collect();
        assert_eq!(names, ["Chat_Intent", "Company", "Email"]);
        assert_eq!(every_field(&["Email"], None).len(), 1);
    }
}
