//! Property definitions per object type, as `GET /crm/v3/properties/{object}`
//! reports them, and the default schema of a portal a leadbridge user set up.

use std::collections::BTreeMap;

use serde_json::{json, Value};

use super::objects::ObjectType;

/// HubSpot's property value types (the `type` field).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum PropertyType {
    String,
    Number,
    Enumeration,
    Datetime,
    Date,
    Bool,
}

impl PropertyType {
    pub(crate) fn parse(name: &str) -> Option<PropertyType> {
        match name {
            "string" | "phone_number" => Some(PropertyType::String),
            "number" => Some(PropertyType::Number),
            "enumeration" => Some(PropertyType::Enumeration),
            "datetime" => Some(PropertyType::Datetime),
            "date" => Some(PropertyType::Date),
            "bool" => Some(PropertyType::Bool),
            _ => None,
        }
    }

    pub(crate) fn as_str(self) -> &'static str {
        match self {
            PropertyType::String => "string",
            PropertyType::Number => "number",
            PropertyType::Enumeration => "enumeration",
            PropertyType::Datetime => "datetime",
            PropertyType::Date => "date",
            PropertyType::Bool => "bool",
        }
    }

    /// The `fieldType` HubSpot uses for this type when none is given.
    pub(crate) fn default_field_type(self) -> &'static str {
        match self {
            PropertyType::String => "text",
            PropertyType::Number => "number",
            PropertyType::Enumeration => "select",
            PropertyType::Datetime | PropertyType::Date => "date",
            PropertyType::Bool => "booleancheckbox",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct PropertyOption {
    pub label: String,
    pub value: String,
    /// Hidden from forms and the UI; the API still accepts the value.
    pub hidden: bool,
}

/// One property definition.
#[derive(Clone, Debug)]
pub(crate) struct PropertyDef {
    pub name: String,
    pub label: String,
    pub kind: PropertyType,
    pub field_type: String,
    pub group_name: String,
    pub options: Vec<PropertyOption>,
    pub has_unique_value: bool,
    pub calculated: bool,
    /// Writes to this property are rejected.
    pub read_only_value: bool,
    /// The definition itself cannot be changed (HubSpot-defined properties).
    pub read_only_definition: bool,
}

impl PropertyDef {
    fn new(name: &str, label: &str, kind: PropertyType, group: &str) -> PropertyDef {
        PropertyDef {
            name: name.to_owned(),
            label: label.to_owned(),
            kind,
            field_type: kind.default_field_type().to_owned(),
            group_name: group.to_owned(),
            options: Vec::new(),
            has_unique_value: false,
            calculated: false,
            read_only_value: false,
            read_only_definition: true,
        }
    }

    fn field(mut self, field_type: &str) -> Self {
        self.field_type = field_type.to_owned();
        self
    }

    fn options(mut self, options: &[(&str, &str)]) -> Self {
        self.options = options
            .iter()
            .map(|(value, label)| PropertyOption {
                label: (*label).to_owned(),
                value: (*value).to_owned(),
                hidden: false,
            })
            .collect();
        self
    }

    fn read_only(mut self) -> Self {
        self.read_only_value = true;
        self
    }

    fn calculated(mut self) -> Self {
        self.calculated = true;
        self.read_only_value = true;
        self
    }

    fn unique(mut self) -> Self {
        self.has_unique_value = true;
        self
    }

    /// A property a portal user created (its definition can be edited).
    fn custom(mut self) -> Self {
        self.read_only_definition = false;
        self
    }

    /// The JSON shape of `GET /crm/v3/properties/{object}` results.
    pub(crate) fn to_json(&self) -> Value {
        let options: Vec<Value> = self
            .options
            .iter()
            .enumerate()
            .map(|(i, o)| {
                json!({
                    "label": o.label,
                    "value": o.value,
                    "displayOrder": i,
                    "hidden": o.hidden,
                })
            })
            .collect();
        json!({
            "name": self.name,
            "label": self.label,
            "type": self.kind.as_str(),
            "fieldType": self.field_type,
            "groupName": self.group_name,
            "description": "",
            "options": options,
            "displayOrder": -1,
            "hasUniqueValue": self.has_unique_value,
            "hidden": false,
            "calculated": self.calculated,
            "externalOptions": false,
            "formField": !self.read_only_value,
            "archived": false,
            "modificationMetadata": {
                "archivable": true,
                "readOnlyDefinition": self.read_only_definition,
                "readOnlyValue": self.read_only_value,
            },
        })
    }
}

/// The property definitions of every object type.
#[derive(Clone, Debug)]
pub(crate) struct Schema {
    objects: BTreeMap<ObjectType, BTreeMap<String, PropertyDef>>,
}

impl Default for Schema {
    fn default() -> Self {
        let mut objects = BTreeMap::new();
        for object in ObjectType::ALL {
            let defs = default_properties(object)
                .into_iter()
                .map(|d| (d.name.clone(), d))
                .collect();
            objects.insert(object, defs);
        }
        Schema { objects }
    }
}

impl Schema {
    pub(crate) fn get(&self, object: ObjectType, name: &str) -> Option<&PropertyDef> {
        self.objects.get(&object).and_then(|defs| defs.get(name))
    }

    pub(crate) fn all(&self, object: ObjectType) -> impl Iterator<Item = &PropertyDef> {
        self.objects
            .get(&object)
            .into_iter()
            .flat_map(|d| d.values())
    }

    pub(crate) fn get_mut(&mut self, object: ObjectType, name: &str) -> Option<&mut PropertyDef> {
        self.objects
            .get_mut(&object)
            .and_then(|defs| defs.get_mut(name))
    }

    /// Adds or replaces a definition (schema-drift tests).
    pub(crate) fn put(&mut self, object: ObjectType, def: PropertyDef) {
        self.objects
            .entry(object)
            .or_default()
            .insert(def.name.clone(), def);
    }

    /// Removes a definition; false if there was none.
    pub(crate) fn remove(&mut self, object: ObjectType, name: &str) -> bool {
        self.objects
            .get_mut(&object)
            .is_some_and(|defs| defs.remove(name).is_some())
    }
}

/// Builds a property definition from the admin API's input.
pub(crate) struct NewProperty {
    pub name: String,
    pub label: Option<String>,
    pub kind: PropertyType,
    pub field_type: Option<String>,
    pub group_name: Option<String>,
    pub options: Vec<PropertyOption>,
    pub read_only: bool,
    pub has_unique_value: bool,
    pub calculated: bool,
}

impl From<NewProperty> for PropertyDef {
    fn from(p: NewProperty) -> PropertyDef {
        let label = p.label.unwrap_or_else(|| p.name.clone());
        let group = p.group_name.unwrap_or_else(|| "leadbridge".to_owned());
        let mut def = PropertyDef::new(&p.name, &label, p.kind, &group).custom();
        if let Some(field_type) = p.field_type {
            def.field_type = field_type;
        }
        def.options = if p.options.is_empty() && p.kind == PropertyType::Bool {
            bool_options()
        } else {
            p.options
        };
        def.read_only_value = p.read_only || p.calculated;
        def.has_unique_value = p.has_unique_value;
        def.calculated = p.calculated;
        def
    }
}

/// The options HubSpot lists for a `bool` property.
fn bool_options() -> Vec<PropertyOption> {
    [("true", "Yes"), ("false", "No")]
        .iter()
        .map(|(value, label)| PropertyOption {
            label: (*label).to_owned(),
            value: (*value).to_owned(),
            hidden: false,
        })
        .collect()
}

const LIFECYCLE_STAGES: &[(&str, &str)] = &[
    ("subscriber", "Subscriber"),
    ("lead", "Lead"),
    ("marketingqualifiedlead", "Marketing Qualified Lead"),
    ("salesqualifiedlead", "Sales Qualified Lead"),
    ("opportunity", "Opportunity"),
    ("customer", "Customer"),
    ("evangelist", "Evangelist"),
    ("other", "Other"),
];

const LEAD_STATUSES: &[(&str, &str)] = &[
    ("NEW", "New"),
    ("OPEN", "Open"),
    ("IN_PROGRESS", "In Progress"),
    ("OPEN_DEAL", "Open Deal"),
    ("UNQUALIFIED", "Unqualified"),
    ("ATTEMPTED_TO_CONTACT", "Attempted to Contact"),
    ("CONNECTED", "Connected"),
    ("BAD_TIMING", "Bad Timing"),
];

const ANALYTICS_SOURCES: &[(&str, &str)] = &[
    ("ORGANIC_SEARCH", "Organic Search"),
    ("PAID_SEARCH", "Paid Search"),
    ("EMAIL_MARKETING", "Email Marketing"),
    ("SOCIAL_MEDIA", "Organic Social"),
    ("REFERRALS", "Referrals"),
    ("OTHER_CAMPAIGNS", "Other Campaigns"),
    ("DIRECT_TRAFFIC", "Direct Traffic"),
    ("OFFLINE", "Offline Sources"),
    ("PAID_SOCIAL", "Paid Social"),
];

/// The stages of the default sales pipeline (HubSpot's internal stage ids).
const DEAL_STAGES: &[(&str, &str)] = &[
    ("appointmentscheduled", "Appointment Scheduled"),
    ("qualifiedtobuy", "Qualified To Buy"),
    ("presentationscheduled", "Presentation Scheduled"),
    ("decisionmakerboughtin", "Decision Maker Bought-In"),
    ("contractsent", "Contract Sent"),
    ("closedwon", "Closed Won"),
    ("closedlost", "Closed Lost"),
];

fn default_properties(object: ObjectType) -> Vec<PropertyDef> {
    use PropertyType::{Datetime, Enumeration, Number, String as Str};
    match object {
        ObjectType::Contact => {
            let info = "contactinformation";
            let mut defs = vec![
                PropertyDef::new("email", "Email", Str, info).unique(),
                PropertyDef::new("firstname", "First Name", Str, info),
                PropertyDef::new("lastname", "Last Name", Str, info),
                PropertyDef::new("phone", "Phone Number", Str, info).field("phonenumber"),
                PropertyDef::new("mobilephone", "Mobile Phone Number", Str, info)
                    .field("phonenumber"),
                PropertyDef::new(
                    "hs_whatsapp_phone_number",
                    "WhatsApp Phone Number",
                    Str,
                    info,
                )
                .field("phonenumber"),
                PropertyDef::new("company", "Company Name", Str, info),
                PropertyDef::new("jobtitle", "Job Title", Str, info),
                PropertyDef::new("website", "Website URL", Str, info),
                PropertyDef::new("country", "Country/Region", Str, info),
                PropertyDef::new("state", "State/Region", Str, info),
                PropertyDef::new("city", "City", Str, info),
                PropertyDef::new("zip", "Postal Code", Str, info),
                PropertyDef::new("address", "Street Address", Str, info),
                PropertyDef::new("message", "Message", Str, info).field("textarea"),
                PropertyDef::new("hs_language", "Preferred language", Str, info),
                PropertyDef::new("hubspot_owner_id", "Contact owner", Str, info),
                PropertyDef::new("lifecyclestage", "Lifecycle Stage", Enumeration, info)
                    .field("radio")
                    .options(LIFECYCLE_STAGES),
                PropertyDef::new(
                    "hs_lead_status",
                    "Lead Status",
                    Enumeration,
                    "sales_properties",
                )
                .field("radio")
                .options(LEAD_STATUSES),
                // Searchable by default (D3, "Default searchable properties");
                // added in the UI or by merges, not by API writes (D1,
                // "Additional emails") — read-only here, set through
                // `PUT /__admin/contacts/{id}/additional-emails`. Type from
                // third-party property dumps (`enumeration`); read-only unconfirmed.
                PropertyDef::new(
                    "hs_additional_emails",
                    "Additional email addresses",
                    Enumeration,
                    info,
                )
                .read_only(),
                PropertyDef::new("hs_object_id", "Record ID", Number, info).read_only(),
                PropertyDef::new("createdate", "Create Date", Datetime, info).read_only(),
                PropertyDef::new("lastmodifieddate", "Last Modified Date", Datetime, info)
                    .read_only(),
                PropertyDef::new(
                    "hs_analytics_source",
                    "Original Traffic Source",
                    Enumeration,
                    "analyticsinformation",
                )
                .options(ANALYTICS_SOURCES)
                .calculated(),
            ];
            defs.extend(leadbridge_contact_properties());
            defs
        }
        ObjectType::Note => {
            let info = "engagement";
            vec![
                PropertyDef::new("hs_timestamp", "Activity date", Datetime, info),
                PropertyDef::new("hs_note_body", "Note body", Str, info).field("html"),
                PropertyDef::new("hubspot_owner_id", "Activity assigned to", Str, info),
                PropertyDef::new("hs_object_id", "Record ID", Number, info).read_only(),
                PropertyDef::new("hs_createdate", "Create date", Datetime, info).read_only(),
                PropertyDef::new("hs_lastmodifieddate", "Last modified date", Datetime, info)
                    .read_only(),
            ]
        }
        ObjectType::Deal => {
            let info = "dealinformation";
            vec![
                PropertyDef::new("dealname", "Deal Name", Str, info),
                PropertyDef::new("dealstage", "Deal Stage", Enumeration, info)
                    .field("radio")
                    .options(DEAL_STAGES),
                PropertyDef::new("pipeline", "Pipeline", Enumeration, info)
                    .options(&[("default", "Sales Pipeline")]),
                PropertyDef::new("amount", "Amount", Number, info),
                PropertyDef::new("closedate", "Close Date", Datetime, info),
                PropertyDef::new("description", "Deal Description", Str, info).field("textarea"),
                PropertyDef::new("hubspot_owner_id", "Deal owner", Str, info),
                PropertyDef::new("hs_object_id", "Record ID", Number, info).read_only(),
                PropertyDef::new("createdate", "Create Date", Datetime, info).read_only(),
                PropertyDef::new("hs_lastmodifieddate", "Last Modified Date", Datetime, info)
                    .read_only(),
            ]
        }
    }
}

/// Custom contact properties as a leadbridge user creates them (group `leadbridge`).
fn leadbridge_contact_properties() -> Vec<PropertyDef> {
    let strings = [
        ("leadbridge_source", "Leadbridge source"),
        ("leadbridge_bot_id", "Leadbridge bot id"),
        ("leadbridge_conversation_id", "Leadbridge conversation id"),
        ("leadbridge_intent", "Leadbridge intent"),
        ("leadbridge_utm_source", "Leadbridge UTM source"),
        ("leadbridge_utm_medium", "Leadbridge UTM medium"),
        ("leadbridge_utm_campaign", "Leadbridge UTM campaign"),
        ("leadbridge_utm_term", "Leadbridge UTM term"),
        ("leadbridge_utm_content", "Leadbridge UTM content"),
        ("leadbridge_entry_page", "Leadbridge entry page"),
        ("leadbridge_consent_given_at", "Leadbridge consent given at"),
        (
            "leadbridge_consent_text_version",
            "Leadbridge consent text version",
        ),
        ("leadbridge_consent_purpose", "Leadbridge consent purpose"),
        ("leadbridge_channel", "Leadbridge channel"),
        ("leadbridge_ad_click_id", "Leadbridge ad click id"),
        ("leadbridge_ad_id", "Leadbridge ad id"),
        ("leadbridge_ad_headline", "Leadbridge ad headline"),
        ("budget", "Budget"),
        ("timeline", "Timeline"),
        ("company_size", "Company size"),
    ];
    let mut defs: Vec<PropertyDef> = strings
        .iter()
        .map(|(name, label)| {
            PropertyDef::new(name, label, PropertyType::String, "leadbridge").custom()
        })
        .collect();
    defs.push(
        PropertyDef::new(
            "leadbridge_last_inbound_at",
            "Leadbridge last inbound message at",
            PropertyType::Datetime,
            "leadbridge",
        )
        .custom(),
    );
    defs.push(
        PropertyDef::new(
            "leadbridge_qualification_score",
            "Leadbridge qualification score",
            PropertyType::Number,
            "leadbridge",
        )
        .custom(),
    );
    defs
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_contact_schema_has_email_unique_and_object_id_read_only() {
        let schema = Schema::default();
        let email = schema.get(ObjectType::Contact, "email").expect("email");
        assert!(email.has_unique_value);
        let id = schema.get(ObjectType::Contact, "hs_object_id").expect("id");
        assert!(id.read_only_value);
        assert!(schema
            .get(ObjectType::Contact, "leadbridge_qualification_score")
            .is_some_and(|d| d.kind == PropertyType::Number));
    }

    #[test]
    fn removing_a_property_makes_it_unknown() {
        let mut schema = Schema::default();
        assert!(schema.remove(ObjectType::Contact, "budget"));
        assert!(schema.get(ObjectType::Contact, "budget").is_none());
        assert!(!schema.remove(ObjectType::Contact, "budget"));
    }
}
