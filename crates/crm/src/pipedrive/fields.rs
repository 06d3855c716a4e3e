//! A connection's `fields`/`static` tables on Pipedrive: each target names a
//! person **custom field** by its key (the 40-character hash) or by its name
//! as the admin sees it, resolved through `GET /v1/personFields` (read once,
//! reused for ten minutes; [V] SDK v1 `field.ts`, readme "Custom fields":
//! "randomly generated 40-character hashes"). The person's standard fields
//! (name, emails, phones) are the adapter's own. Values go in the write's
//! `custom_fields` in the shape v2 wants per `field_type` (migration guide
//! [D]): text as a string, `double`/`monetary` a number, `enum` the id of the
//! option whose label matches, `set` an array of one such id, `date`
//! `YYYY-MM-DD`. A target that names no custom field, or a value the field
//! cannot hold, fails the event with `schema_drift` before anything is
//! written (a write naming an unknown key is refused whole, [D]).

use std::time::{Duration, Instant};

use lb_domain::QueuedLead;
use lb_pipeline::CrmError;
use reqwest::Method;
use serde_json::{json, Map, Value};

use super::{PipedriveCrm, PAGE};

const TTL: Duration = Duration::from_secs(600);

#[derive(Debug, Clone)]
pub(super) struct PersonField {
    key: String,
    name: String,
    field_type: String,
    custom: bool,
    /// `(id, label)` of an `enum`/`set` field's options.
    options: Vec<(u64, String)>,
}

#[derive(Default)]
pub(super) struct PersonFieldCache(tokio::sync::Mutex<Option<(Instant, Vec<PersonField>)>>);

impl PersonField {
    fn from_json(v: &Value) -> Option<PersonField> {
        Some(PersonField {
            key: v["key"].as_str()?.to_string(),
            name: v["name"].as_str().unwrap_or_default().to_string(),
            field_type: v["field_type"].as_str().unwrap_or("varchar").to_string(),
            custom: v["edit_flag"].as_bool().unwrap_or(false)
                || v["is_custom_field"].as_bool().unwrap_or(false),
            options: v["options"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|o| Some((o["id"].as_u64()?, o["label"].as_str()?.to_string())))
                .collect(),
        })
    }

    /// The v2 value of `text` for this field, or why it cannot hold it.
    fn value(&self, text: &str) -> Result<Value, String> {
        let option = || {
            self.options
                .iter()
                .find(|(_, label)| label.trim().eq_ignore_ascii_case(text.trim()))
                .map(|(id, _)| *id)
                .ok_or_else(|| {
                    let labels: Vec<&str> = self.options.iter().map(|(_, l)| l.as_str()).collect();
                    format!("{text:?} is not one of its options ({})", labels.join(", "))
                })
        };
        match self.field_type.as_str() {
            "double" | "monetary" => text
                .trim()
                .parse::<f64>()
                .map(|n| json!(n))
                .map_err(|_| format!("{text:?} is not a number")),
            "enum" => option().map(|id| json!(id)),
            "set" => option().map(|id| json!([id])),
            "date" => chrono::NaiveDate::parse_from_str(text.trim(), "%Y-%m-%d")
                .map(|d| json!(d.to_string()))
                .map_err(|_| format!("{text:?} is not a date (YYYY-MM-DD)")),
            "user" | "org" | "people" | "visible_to" => {
                Err(format!("a {} field cannot be mapped", self.field_type))
            }
            _ => Ok(json!(text)),
        }
    }
}

/// The field a target names: its key, else its name (any case).
fn named<'f>(fields: &'f [PersonField], target: &str) -> Option<&'f PersonField> {
    fields.iter().find(|f| f.key == target).or_else(|| {
        fields
            .iter()
            .find(|f| f.name.trim().eq_ignore_ascii_case(target.trim()))
    })
}

fn drift(crm: &PipedriveCrm, findings: Vec<String>) -> CrmError {
    CrmError::refused(
        &crm.cfg.name,
        crate::hubspot::SCHEMA_DRIFT,
        findings.join("; "),
    )
}

impl PipedriveCrm {
    /// Every person field (v1 offset pagination), from the cache while fresh.
    async fn person_fields(&self, fresh: bool) -> Result<Vec<PersonField>, CrmError> {
        let mut slot = self.person_fields.0.lock().await;
        if let Some((at, f)) = slot.as_ref() {
            if !fresh && at.elapsed() < TTL {
                return Ok(f.clone());
            }
        }
        let mut out = Vec::new();
        let mut start = 0u64;
        loop {
            let v = self
                .call(
                    Method::GET,
                    &format!("/v1/personFields?start={start}&limit={PAGE}"),
                    None,
                )
                .await?;
            out.extend(
                v["data"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter(|f| f["active_flag"] != false)
                    .filter_map(PersonField::from_json),
            );
            let more = &v["additional_data"]["pagination"];
            match more["next_start"].as_u64() {
                Some(next) if more["more_items_in_collection"] == true && next > start => {
                    start = next
                }
                _ => break,
            }
        }
        *slot = Some((Instant::now(), out.clone()));
        Ok(out)
    }

    /// Reads the person fields into the cache (the warm-up).
    pub(super) async fn person_fields_now(&self) -> Result<(), CrmError> {
        self.person_fields(true).await.map(|_| ())
    }

    /// The write's `custom_fields` for `lead` (empty without a mapping).
    pub(super) async fn custom_fields(
        &self,
        lead: &QueuedLead,
    ) -> Result<Map<String, Value>, CrmError> {
        let Some(mapping) = self.cfg.mapping.as_ref() else {
            return Ok(Map::new());
        };
        let pairs = mapping.render_lead(lead);
        if pairs.is_empty() {
            return Ok(Map::new());
        }
        let fields = self.person_fields(false).await?;
        let mut out = Map::new();
        let mut findings = Vec::new();
        for (target, text) in pairs {
            match named(&fields, &target).filter(|f| f.custom) {
                None => findings.push(format!(
                    "schema drift on Pipedrive person field \"{target}\": no custom person field has this key or name"
                )),
                Some(f) => match f.value(&text) {
                    Ok(v) => {
                        out.insert(f.key.clone(), v);
                    }
                    Err(why) => findings.push(format!(
                        "schema drift on Pipedrive person field \"{target}\" ({}): {why}",
                        f.field_type
                    )),
                },
            }
        }
        if findings.is_empty() {
            Ok(out)
        } else {
            Err(drift(self, findings))
        }
    }

    /// Every mapped target against the person fields read afresh (the hourly
    /// check and the doctor).
    pub(super) async fn mapping_findings(&self) -> Result<Vec<String>, CrmError> {
        let Some(mapping) = self.cfg.mapping.as_ref() else {
            return Ok(Vec::new());
        };
        let fields = self.person_fields(true).await?;
        Ok(mapping
            .targets()
            .into_iter()
            .filter(|t| !t.property.contains('{'))
            .filter(|t| named(&fields, &t.property).filter(|f| f.custom).is_none())
            .map(|t| {
                format!(
                    "schema drift on Pipedrive person field \"{}\": no custom person field has this key or name",
                    t.property
                )
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field(v: Value) -> PersonField {
        PersonField::from_json(&v).expect("field")
    }

    #[test]
    fn values_take_the_shape_of_the_fields_type() {
        let size = field(
            json!({"key": "k1", "name": "Team size", "field_type": "enum",
            "edit_flag": true, "options": [{"id": 7, "label": "1-10"}, {"id": 8, "label": "11-50"}]}),
        );
        assert_eq!(size.value("11-50"), Ok(json!(8)));
        assert!(size.value("500+").unwrap_err().contains("1-10, 11-50"));
        let budget = field(
            json!({"key": "k2", "name": "Budget", "field_type": "double", "edit_flag": true}),
        );
        assert_eq!(budget.value(" 1200.5 "), Ok(json!(1200.5)));
        assert!(budget.value("lots").is_err());
        let day =
            field(json!({"key": "k3", "name": "Demo", "field_type": "date", "edit_flag": true}));
        assert_eq!(day.value("2026-12-01"), Ok(json!("2026-12-01")));
        assert!(day.value("tomorrow").is_err());
        let intent = field(
            json!({"key": "k4", "name": "Intent", "field_type": "varchar", "edit_flag": true}),
        );
        assert_eq!(intent.value("pricing"), Ok(json!("pricing")));
        let fields = [size, intent];
        assert_eq!(
            named(&fields, "team SIZE").map(|f| f.key.as_str()),
            Some("k1")
        );
        assert_eq!(named(&fields, "k4").map(|f| f.key.as_str()), Some("k4"));
        assert!(named(&fields, "Nope").is_none());
    }
}
