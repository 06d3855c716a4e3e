//! The module's fields (`GET /crm/v8/settings/fields?module=…`), read once and
//! reused for [`FIELDS_TTL`]: every field a contact write names must exist
//! and be writable, else the item fails with `schema_drift` before anything
//! is written (Zoho refuses an unknown or read-only field for the whole
//! record, or may drop it silently — either way the event would not say
//! what changed).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Map, Value};
use tokio::sync::Mutex;

/// How long a fields read is reused.
pub(super) const FIELDS_TTL: Duration = Duration::from_secs(600);

#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Field {
    pub read_only: bool,
    /// A picklist's values (`pick_list_values[].actual_value`); empty otherwise.
    pub picklist: Vec<String>,
}

#[derive(Debug, Clone, Default)]
pub(super) struct Fields {
    by_name: HashMap<String, Field>,
}

impl Fields {
    /// From `{"fields":[{"api_name","read_only"|"field_read_only",…}]}`;
    /// `None` when the answer lists no fields.
    pub(super) fn from_json(v: &Value) -> Option<Fields> {
        let list = v["fields"].as_array()?;
        let by_name: HashMap<String, Field> = list
            .iter()
            .filter_map(|f| {
                let name = f["api_name"].as_str()?;
                let read_only = f["read_only"].as_bool().unwrap_or(false)
                    || f["field_read_only"].as_bool().unwrap_or(false);
                let picklist = f["pick_list_values"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|v| {
                        v["actual_value"]
                            .as_str()
                            .or_else(|| v["display_value"].as_str())
                            .map(str::to_string)
                    })
                    .collect();
                Some((
                    name.to_string(),
                    Field {
                        read_only,
                        picklist,
                    },
                ))
            })
            .collect();
        (!by_name.is_empty()).then_some(Fields { by_name })
    }

    /// The field named `name`, if the module has it.
    pub(super) fn get(&self, name: &str) -> Option<&Field> {
        self.by_name.get(name)
    }

    /// What is wrong with writing `record` (its keys) to the module.
    pub(super) fn findings(&self, module: &str, record: &Map<String, Value>) -> Vec<String> {
        record
            .keys()
            .filter(|k| *k != "id" && !k.starts_with('$'))
            .filter_map(|k| match self.by_name.get(k) {
                None => Some(format!(
                    "schema drift on Zoho {module} field \"{k}\": the field does not exist"
                )),
                Some(f) if f.read_only => Some(format!(
                    "schema drift on Zoho {module} field \"{k}\": the field is read-only"
                )),
                Some(_) => None,
            })
            .collect()
    }
}

#[derive(Default)]
pub(super) struct FieldsCache {
    slot: Mutex<Option<(Instant, Arc<Fields>)>>,
}

impl FieldsCache {
    /// The cached fields while younger than the TTL, else `load`'s.
    pub(super) async fn get_or_load<F, Fut, E>(&self, load: F) -> Result<Arc<Fields>, E>
    where
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = Result<Fields, E>>,
    {
        let mut slot = self.slot.lock().await;
        if let Some((at, f)) = slot.as_ref() {
            if at.elapsed() < FIELDS_TTL {
                return Ok(f.clone());
            }
        }
        let fields = Arc::new(load().await?);
        *slot = Some((Instant::now(), fields.clone()));
        Ok(fields)
    }

    pub(super) async fn invalidate(&self) {
        *self.slot.lock().await = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn unknown_and_read_only_fields_are_findings() {
        let f = Fields::from_json(&json!({"fields": [
            {"api_name": "Email", "read_only": false},
            {"api_name": "Full_Name", "read_only": true},
        ]}))
        .expect("fields");
        let mut record = Map::new();
        for k in ["id", "Email", "Full_Name", "Mobile"] {
            record.insert(k.into(), json!("x"));
        }
        let findings = f.findings("Contacts", &record);
        assert_eq!(
            findings,
            [
                "schema drift on Zoho Contacts field \"Full_Name\": the field is read-only",
                "schema drift on Zoho Contacts field \"Mobile\": the field does not exist",
            ]
        );
        assert!(Fields::from_json(&json!({"fields": []})).is_none());
    }
}
