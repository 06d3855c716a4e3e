//! sObjects and their fields: what `describe` answers and what a write is
//! checked against.
//!
//! - `GET /sobjects/{type}/describe` → `{"name","label","keyPrefix",
//!   "createable","updateable","queryable","fields":[{"name","label","type",
//!   "length","createable","updateable","nillable","defaultedOnCreate",
//!   "idLookup","externalId","filterable","picklistValues"}]}` (field list [R]
//!   per research A.1; `idLookup` on Lead.Email / Contact.Email: "On standard
//!   objects, this call can use the name of any field with the idLookup field
//!   property instead of the external ID" [V] SOAP API `upsert()` page, and
//!   the REST upsert page's own example `PATCH …/sobjects/Lead/Email/…` [V]).
//! - Required on create = `createable && !nillable && !defaultedOnCreate`
//!   (crm-apis.md): Lead `LastName`, `Company`; Contact `LastName`
//!   ("Lead needs LastName and Company", crm-apis.md).
//! - Long text areas (`Description`) are not filterable in SOQL ([V] SOQL
//!   `fieldExpression` page: "any field except a long text area field…").
//! - Opportunity (`Name`, `StageName`, `CloseDate` required; StageName a
//!   restricted picklist of the default sales process's stages) and
//!   OpportunityContactRole (`OpportunityId`, `ContactId` required, each
//!   pointing at a record of its own type; `IsPrimary` defaulted false): see
//!   [`OPPORTUNITY_STAGES`] and the field lists below for sources.
//! - Field names in a JSON body are matched exactly (Salesforce may be
//!   lenient about case: unconfirmed, so the simulator is not).
//!
//! Value checks per type, with Salesforce's status codes ([D] error pages,
//! integrators' fixtures): text longer than `length` → `STRING_TOO_LONG`
//! ("{label}: data value too large: {value} (max length={n})"); a bad email →
//! `INVALID_EMAIL_ADDRESS`; a malformed id in a reference → `MALFORMED_ID`;
//! a picklist value outside a restricted list → `INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST`.

use std::collections::BTreeMap;

use serde_json::{json, Value};

use super::error::RecordError;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) enum SObject {
    Lead,
    Contact,
    Task,
    Opportunity,
    OpportunityContactRole,
}

impl SObject {
    pub(crate) const ALL: [SObject; 5] = [
        SObject::Lead,
        SObject::Contact,
        SObject::Task,
        SObject::Opportunity,
        SObject::OpportunityContactRole,
    ];

    pub(crate) fn parse(s: &str) -> Option<SObject> {
        SObject::ALL.into_iter().find(|o| o.name() == s)
    }

    /// Case-insensitive, as SOQL reads object names.
    pub(crate) fn parse_soql(s: &str) -> Option<SObject> {
        SObject::ALL
            .into_iter()
            .find(|o| o.name().eq_ignore_ascii_case(s))
    }

    pub(crate) fn name(self) -> &'static str {
        match self {
            SObject::Lead => "Lead",
            SObject::Contact => "Contact",
            SObject::Task => "Task",
            SObject::Opportunity => "Opportunity",
            SObject::OpportunityContactRole => "OpportunityContactRole",
        }
    }

    /// The id prefix ([V] standard key prefixes: 00Q Lead, 003 Contact, 00T
    /// Task, 006 Opportunity; [D] 00K OpportunityContactRole).
    pub(crate) fn key_prefix(self) -> &'static str {
        match self {
            SObject::Lead => "00Q",
            SObject::Contact => "003",
            SObject::Task => "00T",
            SObject::Opportunity => "006",
            SObject::OpportunityContactRole => "00K",
        }
    }

    /// The sObjects a reference field may point at, where the simulator
    /// checks the type (`FIELD_INTEGRITY_EXCEPTION` for another type); `None`:
    /// any existing record will do.
    pub(crate) fn reference_targets(self, field: &str) -> Option<&'static [SObject]> {
        match (self, field) {
            // [V] OpportunityContactRole object reference: "Refers to: Contact",
            // and OpportunityId is the "ID of an associated Opportunity".
            (SObject::OpportunityContactRole, "ContactId") => Some(&[SObject::Contact]),
            (SObject::OpportunityContactRole, "OpportunityId") => Some(&[SObject::Opportunity]),
            _ => None,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum FieldType {
    Id,
    String,
    Email,
    Phone,
    TextArea,
    Picklist,
    Combobox,
    Boolean,
    Reference,
    Date,
    DateTime,
    /// A number (`Opportunity.Amount`).
    Currency,
}

impl FieldType {
    fn name(self) -> &'static str {
        match self {
            FieldType::Id => "id",
            FieldType::String => "string",
            FieldType::Email => "email",
            FieldType::Phone => "phone",
            FieldType::TextArea => "textarea",
            FieldType::Picklist => "picklist",
            FieldType::Combobox => "combobox",
            FieldType::Boolean => "boolean",
            FieldType::Reference => "reference",
            FieldType::Date => "date",
            FieldType::DateTime => "datetime",
            FieldType::Currency => "currency",
        }
    }

    pub(crate) fn parse(s: &str) -> Option<FieldType> {
        [
            FieldType::Id,
            FieldType::String,
            FieldType::Email,
            FieldType::Phone,
            FieldType::TextArea,
            FieldType::Picklist,
            FieldType::Combobox,
            FieldType::Boolean,
            FieldType::Reference,
            FieldType::Date,
            FieldType::DateTime,
            FieldType::Currency,
        ]
        .into_iter()
        .find(|t| t.name() == s)
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct FieldDef {
    pub name: String,
    pub label: String,
    pub ftype: FieldType,
    pub length: usize,
    pub createable: bool,
    pub updateable: bool,
    pub nillable: bool,
    pub defaulted_on_create: bool,
    pub id_lookup: bool,
    pub external_id: bool,
    pub filterable: bool,
    pub picklist: Vec<String>,
    /// Listed picklist values an admin deactivated: described with
    /// `"active": false` and, on a restricted picklist, refused like an
    /// unknown value ([V] OpportunityStage.IsActive: "Inactive opportunity
    /// stage values are not available in the picklist and are retained for
    /// historical purposes only"; the refusal on write is [U]).
    pub inactive: Vec<String>,
    /// Only listed (active) picklist values are accepted.
    pub restricted: bool,
    /// The value a create without it gets.
    pub default: Option<Value>,
}

impl FieldDef {
    fn new(name: &str, label: &str, ftype: FieldType, length: usize) -> FieldDef {
        FieldDef {
            name: name.to_owned(),
            label: label.to_owned(),
            ftype,
            length,
            createable: true,
            updateable: true,
            nillable: true,
            defaulted_on_create: false,
            id_lookup: false,
            external_id: false,
            filterable: ftype != FieldType::TextArea,
            picklist: Vec::new(),
            inactive: Vec::new(),
            restricted: false,
            default: None,
        }
    }

    fn read_only(mut self) -> FieldDef {
        self.createable = false;
        self.updateable = false;
        self
    }

    fn required(mut self) -> FieldDef {
        self.nillable = false;
        self
    }

    fn id_lookup(mut self) -> FieldDef {
        self.id_lookup = true;
        self
    }

    fn defaulted(mut self, v: Value) -> FieldDef {
        self.defaulted_on_create = true;
        self.nillable = false;
        self.default = Some(v);
        self
    }

    fn picklist(mut self, values: &[&str]) -> FieldDef {
        self.picklist = values.iter().map(|v| (*v).to_owned()).collect();
        self
    }

    fn restricted(mut self) -> FieldDef {
        self.restricted = true;
        self
    }

    /// A value a write may set: listed, and active unless the list is open.
    fn accepts(&self, value: &str) -> bool {
        !self.restricted
            || (self.picklist.iter().any(|p| p == value)
                && !self.inactive.iter().any(|p| p == value))
    }

    /// Must a create carry it?
    pub(crate) fn required_on_create(&self) -> bool {
        self.createable && !self.nillable && !self.defaulted_on_create
    }

    pub(crate) fn describe(&self) -> Value {
        json!({
            "name": self.name,
            "label": self.label,
            "type": self.ftype.name(),
            "length": self.length,
            "createable": self.createable,
            "updateable": self.updateable,
            "nillable": self.nillable,
            "defaultedOnCreate": self.defaulted_on_create,
            "idLookup": self.id_lookup,
            "externalId": self.external_id,
            "filterable": self.filterable,
            // DescribeFieldResult `restrictedPicklist` ([D] gearset's
            // picklist page); entries `{active, defaultValue, label, value}`
            // ([D] PicklistEntry).
            "restrictedPicklist": self.restricted,
            "picklistValues": self.picklist.iter().map(|v| json!({
                "active": !self.inactive.contains(v),
                "defaultValue": self.default.as_ref().and_then(Value::as_str) == Some(v.as_str()),
                "label": v, "value": v,
            })).collect::<Vec<_>>(),
        })
    }

    /// Checks (and normalises) a value written to the field.
    pub(crate) fn check(&self, value: &Value) -> Result<Value, RecordError> {
        let field = || vec![self.name.clone()];
        if value.is_null() {
            return Ok(Value::Null);
        }
        match self.ftype {
            FieldType::Boolean => value.as_bool().map(Value::Bool).ok_or_else(|| {
                RecordError::new(
                    "INVALID_TYPE_ON_FIELD_IN_RECORD",
                    format!("{}: value not of required type: {value}", self.label),
                    field(),
                )
            }),
            FieldType::Reference | FieldType::Id => {
                let s = value.as_str().unwrap_or_default();
                super::store::normalize_id(s)
                    .map(Value::String)
                    .ok_or_else(|| {
                        RecordError::new(
                            "MALFORMED_ID",
                            format!("{}: id value of incorrect type: {s}", self.label),
                            field(),
                        )
                    })
            }
            // A JSON number; the code for anything else is [U].
            FieldType::Currency => {
                if value.is_number() {
                    Ok(value.clone())
                } else {
                    Err(RecordError::new(
                        "INVALID_TYPE_ON_FIELD_IN_RECORD",
                        format!("{}: value not of required type: {value}", self.label),
                        field(),
                    ))
                }
            }
            FieldType::Date | FieldType::DateTime => {
                let s = value.as_str().unwrap_or_default();
                let ok = if self.ftype == FieldType::Date {
                    chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d").is_ok()
                } else {
                    chrono::DateTime::parse_from_rfc3339(s).is_ok()
                        || chrono::DateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f%z").is_ok()
                };
                if ok {
                    Ok(value.clone())
                } else {
                    Err(RecordError::new(
                        "INVALID_TYPE_ON_FIELD_IN_RECORD",
                        format!("{}: value not of required type: {s}", self.label),
                        field(),
                    ))
                }
            }
            _ => {
                let Some(s) = value.as_str() else {
                    return Err(RecordError::new(
                        "INVALID_TYPE_ON_FIELD_IN_RECORD",
                        format!("{}: value not of required type: {value}", self.label),
                        field(),
                    ));
                };
                if s.chars().count() > self.length {
                    return Err(RecordError::new(
                        "STRING_TOO_LONG",
                        format!(
                            "{}: data value too large: {s} (max length={})",
                            self.label, self.length
                        ),
                        field(),
                    ));
                }
                if self.ftype == FieldType::Email && !s.is_empty() && !valid_email(s) {
                    return Err(RecordError::new(
                        "INVALID_EMAIL_ADDRESS",
                        format!("{}: invalid email address: {s}", self.label),
                        field(),
                    ));
                }
                if self.ftype == FieldType::Picklist && !self.accepts(s) {
                    return Err(RecordError::new(
                        "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST",
                        format!(
                            "{}: bad value for restricted picklist field: {s}",
                            self.label
                        ),
                        field(),
                    ));
                }
                Ok(Value::String(s.to_owned()))
            }
        }
    }
}

/// A plausible address: one `@`, something before it, a dotted domain, no spaces.
fn valid_email(s: &str) -> bool {
    let Some((local, domain)) = s.rsplit_once('@') else {
        return false;
    };
    !local.is_empty()
        && !local.contains('@')
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !s.chars().any(char::is_whitespace)
}

/// The Lead Source values of a new org, one picklist for Lead, Contact and
/// Opportunity ([D] the standard Lead Source picklist; open, not restricted).
const LEAD_SOURCES: &[&str] = &[
    "Web",
    "Phone Inquiry",
    "Partner Referral",
    "Purchased List",
    "Other",
];

/// The opportunity stages of a new org's default sales process, in order
/// ([D] the standard Stage picklist; api-evangelist's schema of the
/// Opportunity object lists the same ten). Restricted here: whether
/// Salesforce refuses an unknown or inactive StageName on write, and with
/// `INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST`, is [U], modelled on the strict
/// side. Sales processes and record types (which narrow the stages per
/// record type) are not modelled.
pub(crate) const OPPORTUNITY_STAGES: &[&str] = &[
    "Prospecting",
    "Qualification",
    "Needs Analysis",
    "Value Proposition",
    "Id. Decision Makers",
    "Perception Analysis",
    "Proposal/Price Quote",
    "Negotiation/Review",
    "Closed Won",
    "Closed Lost",
];

/// OpportunityContactRole.Role in a new org ([D]).
const CONTACT_ROLES: &[&str] = &[
    "Business User",
    "Decision Maker",
    "Economic Buyer",
    "Economic Decision Maker",
    "Evaluator",
    "Executive Sponsor",
    "Influencer",
    "Technical Buyer",
    "Other",
];

#[derive(Clone, Debug)]
pub(crate) struct Schema {
    fields: BTreeMap<SObject, Vec<FieldDef>>,
}

fn system_fields() -> Vec<FieldDef> {
    vec![
        FieldDef::new("Id", "Record ID", FieldType::Id, 18)
            .read_only()
            .id_lookup()
            .defaulted(Value::Null),
        FieldDef::new("CreatedDate", "Created Date", FieldType::DateTime, 0)
            .read_only()
            .defaulted(Value::Null),
        FieldDef::new(
            "LastModifiedDate",
            "Last Modified Date",
            FieldType::DateTime,
            0,
        )
        .read_only()
        .defaulted(Value::Null),
    ]
}

impl Default for Schema {
    fn default() -> Self {
        use FieldType as T;
        let person = |company: bool, lead: bool| {
            let mut f = system_fields();
            f.push(FieldDef::new("FirstName", "First Name", T::String, 40));
            f.push(FieldDef::new("LastName", "Last Name", T::String, 80).required());
            if company {
                f.push(FieldDef::new("Company", "Company", T::String, 255).required());
            }
            f.push(FieldDef::new("Email", "Email", T::Email, 80).id_lookup());
            f.push(FieldDef::new("Phone", "Phone", T::Phone, 40));
            f.push(FieldDef::new("MobilePhone", "Mobile Phone", T::Phone, 40));
            let (country, state) = if lead {
                ("Country", "State")
            } else {
                ("MailingCountry", "MailingState")
            };
            f.push(FieldDef::new(country, "Country", T::String, 80));
            f.push(FieldDef::new(state, "State/Province", T::String, 80));
            f.push(
                FieldDef::new("LeadSource", "Lead Source", T::Picklist, 255).picklist(LEAD_SOURCES),
            );
            f.push(FieldDef::new(
                "Description",
                "Description",
                T::TextArea,
                32000,
            ));
            f
        };
        let mut lead = person(true, true);
        lead.push(
            FieldDef::new("Status", "Status", T::Picklist, 255)
                .picklist(&[
                    "Open - Not Contacted",
                    "Working - Contacted",
                    "Closed - Converted",
                    "Closed - Not Converted",
                ])
                .defaulted(json!("Open - Not Contacted")),
        );
        lead.push(
            FieldDef::new("IsConverted", "Converted", T::Boolean, 0)
                .read_only()
                .defaulted(json!(false)),
        );
        lead.push(
            FieldDef::new(
                "ConvertedContactId",
                "Converted Contact ID",
                T::Reference,
                18,
            )
            .read_only(),
        );
        lead.push(FieldDef::new("ConvertedDate", "Converted Date", T::Date, 0).read_only());
        let mut contact = person(false, false);
        contact.push(FieldDef::new("AccountId", "Account ID", T::Reference, 18));
        let mut task = system_fields();
        task.push(FieldDef::new("WhoId", "Name ID", T::Reference, 18));
        task.push(FieldDef::new("WhatId", "Related To ID", T::Reference, 18));
        task.push(FieldDef::new("Subject", "Subject", T::Combobox, 255));
        task.push(FieldDef::new(
            "Description",
            "Description",
            T::TextArea,
            32000,
        ));
        task.push(
            FieldDef::new("Status", "Status", T::Picklist, 255)
                .picklist(&[
                    "Not Started",
                    "In Progress",
                    "Completed",
                    "Waiting on someone else",
                    "Deferred",
                ])
                .defaulted(json!("Not Started")),
        );
        task.push(
            FieldDef::new("Priority", "Priority", T::Picklist, 40)
                .picklist(&["High", "Normal", "Low"])
                .defaulted(json!("Normal")),
        );
        task.push(FieldDef::new("ActivityDate", "Due Date Only", T::Date, 0));
        let mut subtype = FieldDef::new("TaskSubtype", "Task Subtype", T::Picklist, 40)
            .picklist(&["Task", "Email", "ListEmail", "Cadence", "Call", "LinkedIn"]);
        subtype.updateable = false;
        task.push(subtype);
        let mut opportunity = system_fields();
        // Types and lengths [V] Salesforce Field Reference, Opportunity
        // (AccountId reference, Amount currency, CloseDate date, Description
        // textarea 32000, LeadSource picklist 255); Name, StageName and
        // CloseDate required and Name's 120 characters [D] (integrators
        // citing the Opportunity object reference).
        opportunity.push(FieldDef::new("Name", "Name", T::String, 120).required());
        opportunity.push(FieldDef::new("AccountId", "Account ID", T::Reference, 18));
        opportunity.push(
            FieldDef::new("StageName", "Stage", T::Picklist, 255)
                .picklist(OPPORTUNITY_STAGES)
                .restricted()
                .required(),
        );
        opportunity.push(FieldDef::new("CloseDate", "Close Date", T::Date, 0).required());
        opportunity.push(FieldDef::new("Amount", "Amount", T::Currency, 0));
        opportunity.push(
            FieldDef::new("LeadSource", "Lead Source", T::Picklist, 255).picklist(LEAD_SOURCES),
        );
        opportunity.push(FieldDef::new(
            "Description",
            "Description",
            T::TextArea,
            32000,
        ));
        let mut role = system_fields();
        // [V] OpportunityContactRole object reference: OpportunityId
        // ("Required … cannot be updated"), ContactId (Create, Update, not
        // Nillable), IsPrimary (Defaulted on create, false), Role (Nillable).
        let mut opportunity_id =
            FieldDef::new("OpportunityId", "Opportunity ID", T::Reference, 18).required();
        opportunity_id.updateable = false;
        role.push(opportunity_id);
        role.push(FieldDef::new("ContactId", "Contact ID", T::Reference, 18).required());
        role.push(FieldDef::new("IsPrimary", "Primary", T::Boolean, 0).defaulted(json!(false)));
        role.push(FieldDef::new("Role", "Role", T::Picklist, 255).picklist(CONTACT_ROLES));
        let mut fields = BTreeMap::new();
        fields.insert(SObject::Lead, lead);
        fields.insert(SObject::Contact, contact);
        fields.insert(SObject::Task, task);
        fields.insert(SObject::Opportunity, opportunity);
        fields.insert(SObject::OpportunityContactRole, role);
        Schema { fields }
    }
}

impl Schema {
    pub(crate) fn fields(&self, o: SObject) -> &[FieldDef] {
        self.fields.get(&o).map(Vec::as_slice).unwrap_or_default()
    }

    /// A field by its exact name (a JSON body).
    pub(crate) fn get(&self, o: SObject, name: &str) -> Option<&FieldDef> {
        self.fields(o).iter().find(|f| f.name == name)
    }

    /// A field by name, case-insensitively (SOQL).
    pub(crate) fn get_soql(&self, o: SObject, name: &str) -> Option<&FieldDef> {
        self.fields(o)
            .iter()
            .find(|f| f.name.eq_ignore_ascii_case(name))
    }

    pub(crate) fn describe(&self, o: SObject) -> Value {
        json!({
            "name": o.name(),
            "label": o.name(),
            "keyPrefix": o.key_prefix(),
            "createable": true,
            "updateable": true,
            "queryable": true,
            "fields": self.fields(o).iter().map(FieldDef::describe).collect::<Vec<_>>(),
        })
    }

    /// Adds or replaces (by name) a field (`/__admin/fields/{type}`).
    pub(crate) fn put(&mut self, o: SObject, def: FieldDef) {
        let list = self.fields.entry(o).or_default();
        match list.iter_mut().find(|f| f.name == def.name) {
            Some(f) => *f = def,
            None => list.push(def),
        }
    }

    pub(crate) fn remove(&mut self, o: SObject, name: &str) -> bool {
        let list = self.fields.entry(o).or_default();
        let before = list.len();
        list.retain(|f| f.name != name);
        list.len() != before
    }
}

/// A field from the admin API: `{"name","type","length"?,"label"?,
/// "createable"?,"updateable"?,"nillable"?,"idLookup"?,"externalId"?,
/// "picklistValues"?: [..],"restricted"?}`; an existing field's settings are
/// the starting point, so `{"name":"FirstName","length":10}` only shortens it.
/// `picklistValues` replaces the list: each entry a value, or
/// `{"value","active"?}` as describe shows it (`"active": false` deactivates it).
pub(crate) fn field_from_admin(existing: Option<&FieldDef>, v: &Value) -> Result<FieldDef, String> {
    let name = v["name"].as_str().ok_or("a field needs \"name\"")?;
    let mut def = match existing {
        Some(f) => f.clone(),
        None => {
            let t = v["type"].as_str().ok_or("a new field needs \"type\"")?;
            let ftype = FieldType::parse(t).ok_or_else(|| format!("unknown field type \"{t}\""))?;
            FieldDef::new(name, name, ftype, 255)
        }
    };
    if let Some(t) = v["type"].as_str() {
        def.ftype = FieldType::parse(t).ok_or_else(|| format!("unknown field type \"{t}\""))?;
    }
    if let Some(n) = v["length"].as_u64() {
        def.length = n as usize;
    }
    if let Some(l) = v["label"].as_str() {
        def.label = l.to_owned();
    }
    for (key, slot) in [
        ("createable", &mut def.createable),
        ("updateable", &mut def.updateable),
        ("nillable", &mut def.nillable),
        ("idLookup", &mut def.id_lookup),
        ("externalId", &mut def.external_id),
        ("restricted", &mut def.restricted),
    ] {
        if let Some(b) = v[key].as_bool() {
            *slot = b;
        }
    }
    if let Some(list) = v["picklistValues"].as_array() {
        def.picklist = list
            .iter()
            .filter_map(|p| {
                p.as_str()
                    .or_else(|| p["value"].as_str())
                    .map(str::to_owned)
            })
            .collect();
        // `{"value": "Prospecting", "active": false}` deactivates a value.
        def.inactive = list
            .iter()
            .filter(|p| p["active"] == Value::Bool(false))
            .filter_map(|p| p["value"].as_str().map(str::to_owned))
            .collect();
    }
    def.filterable = def.ftype != FieldType::TextArea;
    Ok(def)
}
