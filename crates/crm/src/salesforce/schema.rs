//! The describe of each sObject written (`GET /sobjects/{type}/describe`,
//! `fields[]` with `name, createable, updateable, idLookup, externalId, …`,
//! [R] field list per research A.1, modelled by the simulator), read once and
//! reused for [`DESCRIBE_TTL`]: every field a write names must exist and be
//! writable the way it is written, and the upsert key (`Email`) must be
//! idLookup or an external id — else the item fails with `schema_drift`
//! before anything is written. A picklist's active values (and whether it is
//! restricted) are kept too: `deals` checks an Opportunity's stage by them.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use lb_pipeline::{CrmError, ErrorClass};
use reqwest::Method;
use serde_json::{Map, Value};
use tokio::sync::Mutex;

use super::SalesforceCrm;

/// How long a describe is reused.
pub(super) const DESCRIBE_TTL: Duration = Duration::from_secs(600);

#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct FieldInfo {
    pub createable: bool,
    pub updateable: bool,
    pub key: bool,
    /// A picklist's active values (`picklistValues[]` with `"active": true`,
    /// [D] DescribeFieldResult / PicklistEntry), in the describe's order.
    pub active_values: Vec<String>,
    /// `restrictedPicklist`: only listed values are accepted.
    pub restricted: bool,
}

#[derive(Debug, Clone, Default)]
pub(super) struct Fields {
    by_name: HashMap<String, FieldInfo>,
}

/// How a record is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Writing {
    Create,
    Update,
    /// An upsert may do either.
    Upsert,
}

impl Fields {
    /// From a describe answer; `None` when it lists no fields.
    pub(super) fn from_json(v: &Value) -> Option<Fields> {
        let by_name: HashMap<String, FieldInfo> = v["fields"]
            .as_array()?
            .iter()
            .filter_map(|f| {
                Some((
                    f["name"].as_str()?.to_string(),
                    FieldInfo {
                        createable: f["createable"].as_bool().unwrap_or(false),
                        updateable: f["updateable"].as_bool().unwrap_or(false),
                        key: f["idLookup"].as_bool().unwrap_or(false)
                            || f["externalId"].as_bool().unwrap_or(false),
                        active_values: f["picklistValues"]
                            .as_array()
                            .into_iter()
                            .flatten()
                            .filter(|p| p["active"] == true)
                            .filter_map(|p| p["value"].as_str().map(str::to_string))
                            .collect(),
                        restricted: f["restrictedPicklist"].as_bool().unwrap_or(false),
                    },
                ))
            })
            .collect();
        (!by_name.is_empty()).then_some(Fields { by_name })
    }

    /// A field by its API name.
    pub(super) fn get(&self, name: &str) -> Option<&FieldInfo> {
        self.by_name.get(name)
    }

    /// What is wrong with writing `record`'s fields (and `key`, the upsert key).
    pub(super) fn findings(
        &self,
        sobject: &str,
        record: &Map<String, Value>,
        how: Writing,
        key: Option<&str>,
    ) -> Vec<String> {
        let drift = |f: &str, why: &str| {
            format!("schema drift on Salesforce {sobject} field \"{f}\": {why}")
        };
        let mut out: Vec<String> = Vec::new();
        let names = record
            .keys()
            .map(String::as_str)
            .filter(|k| *k != "attributes" && *k != "id")
            .chain(key);
        for k in names {
            match self.by_name.get(k) {
                None => out.push(drift(k, "the field does not exist")),
                Some(f) => {
                    if matches!(how, Writing::Create | Writing::Upsert) && !f.createable {
                        out.push(drift(k, "the field is not createable"));
                    }
                    if matches!(how, Writing::Update | Writing::Upsert) && !f.updateable {
                        out.push(drift(k, "the field is not updateable"));
                    }
                }
            }
        }
        if let Some(k) = key {
            if self.by_name.get(k).is_some_and(|f| !f.key) {
                out.push(drift(k, "the field is neither idLookup nor an external id, so records cannot be upserted by it"));
            }
        }
        out.sort();
        out.dedup();
        out
    }
}

#[derive(Default)]
pub(super) struct DescribeCache {
    slot: Mutex<HashMap<String, (Instant, Arc<Fields>)>>,
}

impl SalesforceCrm {
    /// The sObject's fields, from the cache while fresh.
    pub(super) async fn fields_of(&self, sobject: &str) -> Result<Arc<Fields>, CrmError> {
        let mut slot = self.describe.slot.lock().await;
        if let Some((at, f)) = slot.get(sobject) {
            if at.elapsed() < DESCRIBE_TTL {
                return Ok(f.clone());
            }
        }
        let a = self
            .call(
                Method::GET,
                &format!("/sobjects/{sobject}/describe"),
                &[],
                None,
            )
            .await?;
        let fields = Arc::new(Fields::from_json(&a.body).ok_or_else(|| {
            self.err(
                ErrorClass::Transient,
                Some(a.status),
                "the describe answered without fields",
            )
        })?);
        slot.insert(sobject.to_string(), (Instant::now(), fields.clone()));
        Ok(fields)
    }

    /// Reads the describes again next time (a field error may mean they changed).
    pub(super) async fn forget_describes(&self) {
        self.describe.slot.lock().await.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn missing_read_only_and_non_key_fields_are_findings() {
        let f = Fields::from_json(&json!({"fields": [
            {"name": "Email", "createable": true, "updateable": true, "idLookup": true},
            {"name": "Phone", "createable": true, "updateable": true, "idLookup": false},
            {"name": "IsConverted", "createable": false, "updateable": false},
            {"name": "TaskSubtype", "createable": true, "updateable": false},
            {"name": "StageName", "createable": true, "updateable": true, "restrictedPicklist": true,
             "picklistValues": [{"value": "Prospecting", "active": false}, {"value": "Qualification", "active": true}]},
        ]}))
        .expect("fields");
        let stage = f.get("StageName").expect("stage");
        assert_eq!(
            (stage.active_values.clone(), stage.restricted),
            (vec!["Qualification".to_string()], true)
        );
        let mut r = Map::new();
        for k in ["Phone", "IsConverted", "MobilePhone"] {
            r.insert(k.into(), json!("x"));
        }
        assert_eq!(
            f.findings("Lead", &r, Writing::Upsert, Some("Email")),
            [
                "schema drift on Salesforce Lead field \"IsConverted\": the field is not createable",
                "schema drift on Salesforce Lead field \"IsConverted\": the field is not updateable",
                "schema drift on Salesforce Lead field \"MobilePhone\": the field does not exist",
            ]
        );
        let mut t = Map::new();
        t.insert("TaskSubtype".into(), json!("Task"));
        assert!(f.findings("Task", &t, Writing::Create, None).is_empty());
        assert_eq!(f.findings("Task", &t, Writing::Update, None).len(), 1);
        assert_eq!(
            f.findings("Lead", &Map::new(), Writing::Upsert, Some("Phone"))
                .len(),
            1
        );
        assert!(Fields::from_json(&json!({"fields": []})).is_none());
    }
}
