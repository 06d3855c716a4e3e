//! Deals as Opportunities, checked before anything of the event is written.
//!
//! - Check ([`lb_pipeline::Crm::check_deal`], before the person and the Task):
//!   an Opportunity's contact is linked by an OpportunityContactRole, which
//!   names a Contact ([V] OpportunityContactRole object reference:
//!   `ContactId` "Refers To Contact"); a Lead gets its Opportunity when it is
//!   converted. A connection that writes Leads refuses the deal
//!   (`deals_need_contacts`). The stage (the event's `crm_target.deal_stage`,
//!   else the connection's default, `Prospecting`, the first stage of a new
//!   org's default sales process [D]) must be one of `StageName`'s active
//!   `picklistValues` in `GET /sobjects/Opportunity/describe` ([D]
//!   PicklistEntry `{value, active}`, as Apex's `isActive()`/`getValue()`;
//!   the describe cache of `schema`, 10 minutes); else `bad_deal_stage`
//!   naming the stage and the active ones. A `deal_pipeline` has no
//!   Salesforce meaning (the stages open to an
//!   Opportunity come from its record type's sales process, not a pipeline
//!   the event could name) and is refused the same way. The fields written
//!   must exist and be createable (`schema_drift`).
//! - Create: one `POST /composite` with `allOrNone: true` ([V]
//!   resources_composite_composite.htm: subrequests, `referenceId`,
//!   `@{opp.id}` references to an earlier answer, one transaction) creating
//!   the Opportunity (`Name`, `StageName`, `CloseDate` required and `Name`
//!   at most 120 characters, [D] integrators citing the Opportunity object
//!   reference; the field types [V] Salesforce Field Reference) and its
//!   OpportunityContactRole (`OpportunityId`, `ContactId`, `IsPrimary`):
//!   both are written or neither. The answer's `compositeResponse[]` carries
//!   each subrequest's `httpStatusCode` and body; with `allOrNone` the one
//!   that failed has its own error and the others 400 ([V]
//!   resources_composite_subrequest_result.htm; their `PROCESSING_HALTED`
//!   code [D]). The event carries no amount nor close date
//!   ([`lb_domain::CrmTarget`] has neither): `CloseDate` is 30 days from
//!   today and `Amount` is not sent. `LeadSource` is `Chat` when the
//!   describe lists the field and would take the value (an open picklist, or
//!   `Chat` among a restricted one's active values).
//! - Find (a retry): `SELECT OpportunityId FROM OpportunityContactRole
//!   WHERE ContactId = '…'`, then `SELECT Id, Description FROM Opportunity
//!   WHERE Id IN (…)`, matched here by the exact tag in the Description (a
//!   long text area, which SOQL cannot filter, [V]), as Tasks are.

use chrono::Utc;
use lb_domain::{note, EventId, QueuedLead};
use lb_pipeline::{CrmError, ErrorClass};
use reqwest::Method;
use serde_json::{json, Map, Value};
use tracing::warn;

use super::schema::{Fields, Writing};
use super::{checked_id, first_error, soql_quote, Person, SalesforceCrm};

const OPPORTUNITY: &str = "Opportunity";
/// `Opportunity.Name`: at most 120 characters ([D]).
pub const DEAL_NAME_MAX: usize = 120;
/// An Opportunity's `CloseDate` when the event names none: today + this many days.
pub const CLOSE_IN_DAYS: i64 = 30;
/// `Opportunity.LeadSource`, when the org's picklist takes it.
pub const LEAD_SOURCE: &str = "Chat";
pub use crate::deal::{BAD_DEAL_STAGE, DEALS_NEED_CONTACTS};
/// The transcript summary's share of the Description.
const SUMMARY_MAX_CHARS: usize = 1000;
/// Opportunity ids per `WHERE Id IN (…)`.
const IDS_PER_QUERY: usize = 200;

impl SalesforceCrm {
    fn refuse(&self, code: &str, message: String) -> CrmError {
        CrmError::refused(&self.cfg.name, code, message)
    }

    /// Deals need a connection that writes Contacts.
    fn contacts_only(&self) -> Result<(), CrmError> {
        match self.person()? {
            Person::Contact => Ok(()),
            Person::Lead => Err(self.refuse(
                DEALS_NEED_CONTACTS,
                "Salesforce Opportunities link to Contacts (a Lead gets its Opportunity when it \
                 is converted) and this connection writes Leads: set the connection's object to \
                 Contact, or turn crm_target.create_deal off; nothing was written"
                    .into(),
            )),
        }
    }

    /// The event's stage, else the connection's.
    fn stage_of(&self, lead: &QueuedLead) -> String {
        lead.event
            .crm_target
            .deal_stage
            .clone()
            .unwrap_or_else(|| self.cfg.default_deal_stage.clone())
    }

    /// See the module docs: the connection, the pipeline, the stage and the
    /// Opportunity's fields, before anything is written.
    pub(super) async fn check_opportunity(&self, lead: &QueuedLead) -> Result<(), CrmError> {
        self.contacts_only()?;
        if let Some(p) = &lead.event.crm_target.deal_pipeline {
            return Err(self.refuse(
                BAD_DEAL_STAGE,
                format!(
                    "deal pipeline {p:?} has no meaning in Salesforce (an Opportunity's stages \
                     come from its record type's sales process): leave crm_target.deal_pipeline \
                     unset for this connection; nothing was written"
                ),
            ));
        }
        let stage = self.stage_of(lead);
        let fields = self.fields_of(OPPORTUNITY).await?;
        let Some(stages) = fields.get("StageName") else {
            return Err(self.refuse(
                crate::hubspot::SCHEMA_DRIFT,
                "schema drift on Salesforce Opportunity field \"StageName\": the field does not \
                 exist; nothing was written"
                    .into(),
            ));
        };
        if !stages.active_values.contains(&stage) {
            return Err(self.refuse(
                BAD_DEAL_STAGE,
                format!(
                    "deal stage {stage:?} is not an active Salesforce Opportunity stage (active \
                     stages: {}); nothing was written",
                    stages.active_values.join(", ")
                ),
            ));
        }
        let findings = fields.findings(
            OPPORTUNITY,
            &opportunity_record(lead, &stage, &fields),
            Writing::Create,
            None,
        );
        if !findings.is_empty() {
            return Err(self.refuse(
                crate::hubspot::SCHEMA_DRIFT,
                format!("{}; nothing was written", findings.join("; ")),
            ));
        }
        Ok(())
    }

    /// The Opportunity and its primary contact role in one Composite
    /// transaction; the Opportunity's id.
    pub(super) async fn create_opportunity(
        &self,
        contact_id: &str,
        lead: &QueuedLead,
    ) -> Result<String, CrmError> {
        self.contacts_only()?;
        let contact = checked_id(&self.cfg.name, contact_id)?;
        let fields = self.fields_of(OPPORTUNITY).await?;
        let record = opportunity_record(lead, &self.stage_of(lead), &fields);
        let sent: Vec<String> = ["Name", "Description"]
            .iter()
            .filter_map(|k| record.get(*k).and_then(Value::as_str).map(str::to_string))
            .collect();
        let base = format!("/services/data/{}", self.version()?);
        let body = json!({
            "allOrNone": true,
            "compositeRequest": [
                {
                    "method": "POST",
                    "url": format!("{base}/sobjects/Opportunity"),
                    "referenceId": "opp",
                    "body": Value::Object(record),
                },
                {
                    "method": "POST",
                    "url": format!("{base}/sobjects/OpportunityContactRole"),
                    "referenceId": "role",
                    "body": {"OpportunityId": "@{opp.id}", "ContactId": contact, "IsPrimary": true},
                },
            ],
        });
        let a = self
            .call(Method::POST, "/composite", &[], Some(&body))
            .await?;
        let answers = a.body["compositeResponse"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let answer = |r: &str| answers.iter().find(|x| x["referenceId"] == r);
        let (Some(opp), Some(role)) = (answer("opp"), answer("role")) else {
            return Err(self.no_answer("opportunity"));
        };
        let status = |x: &Value| x["httpStatusCode"].as_u64().unwrap_or(0) as u16;
        let ok = |x: &Value| (200..300).contains(&status(x));
        if ok(opp) && ok(role) {
            return opp["body"]["id"]
                .as_str()
                .map(str::to_string)
                .ok_or_else(|| self.no_answer("opportunity"));
        }
        // With allOrNone the one that failed says why; the other was rolled back.
        let failed = [(opp, "opportunity"), (role, "opportunity's contact role")]
            .into_iter()
            .find(|(x, _)| !ok(x) && first_error(&x["body"]).0 != "PROCESSING_HALTED");
        let Some((x, what)) = failed else {
            let mut e = self.err(
                ErrorClass::Transient,
                Some(status(opp)),
                "Salesforce rolled the opportunity back without naming a cause",
            );
            e.category = Some("PROCESSING_HALTED".into());
            return Err(e);
        };
        let mut e = self.record_error(&x["body"], status(x), what, &sent);
        if status(x) >= 500 {
            e.class = ErrorClass::Transient;
        }
        let (code, _, fields) = first_error(&x["body"]);
        if matches!(
            code.as_str(),
            "INVALID_FIELD"
                | "INVALID_FIELD_FOR_INSERT_UPDATE"
                | "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST"
                | "REQUIRED_FIELD_MISSING"
        ) {
            // The describe this was checked against may be out of date.
            self.forget_describes().await;
        }
        if fields.iter().any(|f| f == "StageName") {
            e.code = Some(BAD_DEAL_STAGE.into());
        }
        warn!(crm = %self.cfg.name, category = e.category.as_deref().unwrap_or(""), "opportunity refused");
        Err(e)
    }

    /// The Opportunity of the contact's roles that carries the event's tag.
    pub(super) async fn find_opportunity(
        &self,
        contact_id: &str,
        event_id: &EventId,
    ) -> Result<Option<String>, CrmError> {
        let contact = checked_id(&self.cfg.name, contact_id)?;
        if Person::of_id(contact) == Some(Person::Lead) {
            // A Lead has no contact roles.
            return Ok(None);
        }
        let q = format!(
            "SELECT OpportunityId FROM OpportunityContactRole WHERE ContactId = {} ORDER BY \
             CreatedDate DESC",
            soql_quote(contact)
        );
        let mut ids: Vec<String> = Vec::new();
        for r in self.query(&q).await? {
            // Newest first: a retry looks for what it wrote moments ago.
            if let Some(id) = r["OpportunityId"].as_str() {
                if checked_id(&self.cfg.name, id).is_ok() && !ids.iter().any(|i| i == id) {
                    ids.push(id.to_string());
                }
            }
        }
        for chunk in ids.chunks(IDS_PER_QUERY) {
            let list: Vec<String> = chunk.iter().map(|i| soql_quote(i)).collect();
            let q = format!(
                "SELECT Id, Description FROM Opportunity WHERE Id IN ({})",
                list.join(", ")
            );
            let found = self.query(&q).await?.into_iter().find(|r| {
                r["Description"]
                    .as_str()
                    .is_some_and(|d| note::carries_tag(d, event_id))
            });
            if let Some(id) = found.and_then(|r| r["Id"].as_str().map(str::to_string)) {
                return Ok(Some(id));
            }
        }
        Ok(None)
    }
}

/// The Opportunity's fields (see the module docs).
fn opportunity_record(lead: &QueuedLead, stage: &str, fields: &Fields) -> Map<String, Value> {
    let name = crate::deal::name(lead, DEAL_NAME_MAX);
    let description = crate::deal::description(lead, SUMMARY_MAX_CHARS);
    let target = &lead.event.crm_target;
    let close = target
        .deal_close_date
        .unwrap_or_else(|| Utc::now().date_naive() + chrono::Duration::days(CLOSE_IN_DAYS));
    let mut r = Map::new();
    r.insert("Name".into(), json!(name));
    r.insert("StageName".into(), json!(stage));
    r.insert(
        "CloseDate".into(),
        json!(close.format("%Y-%m-%d").to_string()),
    );
    r.insert("Description".into(), json!(description));
    if let Some(a) = &target.deal_amount {
        r.insert("Amount".into(), a.to_json());
    }
    let takes_chat = fields.get("LeadSource").is_some_and(|f| {
        f.createable && (!f.restricted || f.active_values.iter().any(|v| v == LEAD_SOURCE))
    });
    if takes_chat {
        r.insert("LeadSource".into(), json!(LEAD_SOURCE));
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lead(visitor: Value) -> QueuedLead {
        let event: lb_domain::LeadEvent = serde_json::from_value(json!({
            "event_id": "evt_d1",
            "event_type": "lead.created",
            "occurred_at": "2026-05-04T11:23:45Z",
            "bot_id": "bot_acme",
            "visitor": visitor,
            "transcript": {"summary": "Asked about pricing"}
        }))
        .expect("event");
        QueuedLead::new(event, Utc::now()).expect("identity")
    }

    #[test]
    fn the_opportunity_is_named_tagged_and_sourced_only_where_the_org_takes_it() {
        let open = Fields::from_json(&json!({"fields": [
            {"name": "LeadSource", "createable": true, "picklistValues": [{"value": "Web", "active": true}]},
        ]}))
        .expect("fields");
        let l = lead(json!({"email": "a@x.io", "name": "Priya", "company": "Acme"}));
        let today = Utc::now().date_naive();
        let r = opportunity_record(&l, "Prospecting", &open);
        let today_after = Utc::now().date_naive();
        assert_eq!(r["Name"], "Acme (chatbot bot_acme)");
        assert_eq!(r["StageName"], "Prospecting");
        assert_eq!(r["LeadSource"], LEAD_SOURCE, "an open picklist takes it");
        let d = r["Description"].as_str().expect("description");
        assert!(
            note::carries_tag(d, &EventId::parse("evt_d1").expect("id")),
            "{d}"
        );
        assert!(d.contains("Summary: Asked about pricing"), "{d}");
        let close =
            chrono::NaiveDate::parse_from_str(r["CloseDate"].as_str().expect("date"), "%Y-%m-%d")
                .expect("a date");
        // `CLOSE_IN_DAYS` after the day it was built on (midnight may pass).
        let days = chrono::Duration::days(CLOSE_IN_DAYS);
        assert!(
            close == today + days || close == today_after + days,
            "{close} is {CLOSE_IN_DAYS} days after {today}"
        );
        assert!(!r.contains_key("Amount"), "the event carries no amount");

        let mut priced = l.clone();
        priced.event.crm_target.deal_amount =
            lb_domain::DealAmount::parse("a", "1250.50").expect("amount");
        priced.event.crm_target.deal_close_date = chrono::NaiveDate::from_ymd_opt(2027, 1, 15);
        let r = opportunity_record(&priced, "Prospecting", &open);
        assert_eq!(
            (&r["Amount"], &r["CloseDate"]),
            (&json!(1250.5), &json!("2027-01-15"))
        );

        let restricted = Fields::from_json(&json!({"fields": [
            {"name": "LeadSource", "createable": true, "restrictedPicklist": true,
             "picklistValues": [{"value": "Web", "active": true}, {"value": "Chat", "active": false}]},
        ]}))
        .expect("fields");
        let nameless = lead(json!({"phone": "+14155552671"}));
        let r = opportunity_record(&nameless, "Prospecting", &restricted);
        assert_eq!(r["Name"], "Chatbot lead (chatbot bot_acme)");
        assert!(
            !r.contains_key("LeadSource"),
            "an inactive value is not sent"
        );
        let none = Fields::from_json(&json!({"fields": [{"name": "Name", "createable": true}]}))
            .expect("fields");
        assert!(!opportunity_record(&l, "Prospecting", &none).contains_key("LeadSource"));

        let long = lead(json!({"email": "a@x.io", "company": "A".repeat(300)}));
        let r = opportunity_record(&long, "Prospecting", &open);
        assert_eq!(
            r["Name"].as_str().expect("name").chars().count(),
            DEAL_NAME_MAX
        );
    }
}
