//! Modules and their fields (`GET /crm/v8/settings/fields?module=…`), and the
//! checks a written value goes through.
//!
//! Sources (see `mod.rs` for the legend):
//! - System-defined mandatory fields — Leads and Contacts `Last_Name`; Deals
//!   `Deal_Name` and `Stage` ([V] insert-records page, v7, "System-defined
//!   mandatory fields for each module"). Layout-mandatory fields are checked
//!   only when a layout id is given ([V] upsert page), which the simulator
//!   does not model: only system-mandatory fields are enforced.
//! - System-defined duplicate-check fields: Leads and Contacts `Email`, Deals
//!   `Deal_Name` ([V] upsert page, "System-defined Duplicate Check Fields").
//! - Error shapes `INVALID_DATA` with `details.{api_name, json_path}` plus
//!   `maximum_length` (too long), `expected_data_type` (wrong type) or
//!   `supported_values` (a value outside a fixed list) ([V] crm-oas v8
//!   `record/operations/{createRecords,upsertRecords}/examples`); "the
//!   'INVALID_DATA' error is thrown if the field value length exceeds the
//!   maximum length defined for that field" ([V] upsert page).
//! - Field metadata keys (`api_name`, `data_type`, `json_type`, `length`,
//!   `read_only`, `field_read_only`, `system_mandatory`, `custom_field`,
//!   `pick_list_values[{display_value, actual_value, id, sequence_number,
//!   type}]`, `lookup`, `unique`) ([V] crm-oas v8 `fields.json`, schema `fields`).
//! - A Deal's `Stage` must be one of its pipeline's stages: "You can only add a
//!   stage that is available in this list … The system throws an error
//!   otherwise" ([V] insert-records page).
//!
//! Unconfirmed, modelled on the strict side: a field name the module does not
//! have, and a write to a read-only field, are refused with `INVALID_DATA`
//! (Zoho may ignore them); every picklist takes only its listed values; a
//! phone value is at most 30 characters and an email must look like one.

use std::collections::BTreeMap;

use serde_json::{json, Map, Value};

/// A Zoho CRM module the simulator serves.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) enum Module {
    Leads,
    Contacts,
    Deals,
    Notes,
}

impl Module {
    /// The modules with records of their own (`/crm/v8/{module}`).
    pub(crate) const RECORDS: [Module; 3] = [Module::Leads, Module::Contacts, Module::Deals];
    pub(crate) const ALL: [Module; 4] = [
        Module::Leads,
        Module::Contacts,
        Module::Deals,
        Module::Notes,
    ];

    pub(crate) fn api_name(self) -> &'static str {
        match self {
            Module::Leads => "Leads",
            Module::Contacts => "Contacts",
            Module::Deals => "Deals",
            Module::Notes => "Notes",
        }
    }

    /// Module API names are matched as written (`Contacts`, not `contacts`).
    pub(crate) fn parse(name: &str) -> Option<Module> {
        Module::ALL.into_iter().find(|m| m.api_name() == name)
    }

    /// The module's id, as `Parent_Id.module.id` shows it (made up, stable).
    pub(crate) fn id(self) -> &'static str {
        match self {
            Module::Leads => "5725767000000002175",
            Module::Contacts => "5725767000000002179",
            Module::Deals => "5725767000000002181",
            Module::Notes => "5725767000000002195",
        }
    }

    pub(crate) fn by_id(id: &str) -> Option<Module> {
        Module::ALL.into_iter().find(|m| m.id() == id)
    }

    /// The system-defined duplicate-check field ([V] upsert page).
    pub(crate) fn duplicate_check_field(self) -> Option<&'static str> {
        match self {
            Module::Leads | Module::Contacts => Some("Email"),
            Module::Deals => Some("Deal_Name"),
            Module::Notes => None,
        }
    }

    /// Whether the module has a read-only `Full_Name` ("concatenated values of
    /// the First Name and Last Name fields … available only in the Leads,
    /// Contacts, and Users modules", [V] search-records page).
    pub(crate) fn has_full_name(self) -> bool {
        matches!(self, Module::Leads | Module::Contacts)
    }
}

/// A field's `data_type`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum DataType {
    Text,
    TextArea,
    Email,
    Phone,
    Website,
    Picklist,
    Lookup,
    Integer,
    BigInt,
    Double,
    Currency,
    Boolean,
    Date,
    DateTime,
}

impl DataType {
    pub(crate) fn parse(s: &str) -> Option<DataType> {
        Some(match s {
            "text" => DataType::Text,
            "textarea" => DataType::TextArea,
            "email" => DataType::Email,
            "phone" => DataType::Phone,
            "website" => DataType::Website,
            "picklist" => DataType::Picklist,
            "lookup" => DataType::Lookup,
            "integer" => DataType::Integer,
            "bigint" => DataType::BigInt,
            "double" => DataType::Double,
            "currency" => DataType::Currency,
            "boolean" => DataType::Boolean,
            "date" => DataType::Date,
            "datetime" => DataType::DateTime,
            _ => return None,
        })
    }

    pub(crate) fn as_str(self) -> &'static str {
        match self {
            DataType::Text => "text",
            DataType::TextArea => "textarea",
            DataType::Email => "email",
            DataType::Phone => "phone",
            DataType::Website => "website",
            DataType::Picklist => "picklist",
            DataType::Lookup => "lookup",
            DataType::Integer => "integer",
            DataType::BigInt => "bigint",
            DataType::Double => "double",
            DataType::Currency => "currency",
            DataType::Boolean => "boolean",
            DataType::Date => "date",
            DataType::DateTime => "datetime",
        }
    }

    fn json_type(self) -> &'static str {
        match self {
            DataType::Lookup => "jsonobject",
            DataType::Integer | DataType::BigInt => "integer",
            DataType::Double | DataType::Currency => "double",
            DataType::Boolean => "boolean",
            _ => "string",
        }
    }

    /// The length a field of this type gets when none is given.
    pub(crate) fn default_length(self) -> u32 {
        match self {
            DataType::TextArea => 32_000,
            DataType::Email | DataType::Website => 100,
            DataType::Phone => 30,
            DataType::Integer => 9,
            DataType::BigInt => 18,
            DataType::Double | DataType::Currency => 16,
            _ => 255,
        }
    }

    /// Whether values of this type are text compared by searches.
    pub(crate) fn is_textual(self) -> bool {
        matches!(
            self,
            DataType::Text
                | DataType::TextArea
                | DataType::Email
                | DataType::Phone
                | DataType::Website
                | DataType::Picklist
        )
    }
}

/// One field of a module.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct FieldDef {
    pub api_name: String,
    pub label: String,
    pub data_type: DataType,
    pub length: u32,
    pub read_only: bool,
    pub system_mandatory: bool,
    /// "Do not allow duplicate values" (a user-defined unique field).
    pub unique: bool,
    pub custom_field: bool,
    pub pick_list_values: Vec<String>,
    /// The module a lookup points to.
    pub lookup: Option<Module>,
    pub id: String,
}

impl FieldDef {
    fn new(api_name: &str, data_type: DataType) -> FieldDef {
        FieldDef {
            api_name: api_name.to_owned(),
            label: api_name.replace('_', " "),
            data_type,
            length: data_type.default_length(),
            read_only: false,
            system_mandatory: false,
            unique: false,
            custom_field: false,
            pick_list_values: Vec::new(),
            lookup: None,
            id: String::new(),
        }
    }

    fn length(mut self, n: u32) -> FieldDef {
        self.length = n;
        self
    }

    fn mandatory(mut self) -> FieldDef {
        self.system_mandatory = true;
        self
    }

    fn read_only(mut self) -> FieldDef {
        self.read_only = true;
        self
    }

    fn picklist(mut self, values: &[&str]) -> FieldDef {
        self.pick_list_values = values.iter().map(|v| (*v).to_owned()).collect();
        self
    }

    fn lookup(mut self, module: Module) -> FieldDef {
        self.lookup = Some(module);
        self
    }

    /// As `GET /crm/v8/settings/fields` lists it.
    pub(crate) fn to_json(&self) -> Value {
        let picklist: Vec<Value> = self
            .pick_list_values
            .iter()
            .enumerate()
            .map(|(i, v)| {
                json!({
                    "display_value": v,
                    "actual_value": v,
                    "id": format!("{}{:03}", self.id, i + 1),
                    "sequence_number": i + 1,
                    "type": "used",
                    "colour_code": null,
                })
            })
            .collect();
        let mut body = json!({
            "api_name": self.api_name,
            "field_label": self.label,
            "display_label": self.label,
            "data_type": self.data_type.as_str(),
            "json_type": self.data_type.json_type(),
            "length": self.length,
            "read_only": self.read_only,
            "field_read_only": self.read_only,
            "system_mandatory": self.system_mandatory,
            "custom_field": self.custom_field,
            "visible": true,
            "id": self.id,
            "pick_list_values": picklist,
            "lookup": match self.lookup {
                Some(m) => json!({"module": {"api_name": m.api_name(), "id": m.id()}}),
                None => json!({}),
            },
        });
        if self.unique {
            body["unique"] = json!({"casesensitive": "false"});
        }
        body
    }
}

/// The fields of every module.
#[derive(Clone, Debug)]
pub(crate) struct Schema {
    modules: BTreeMap<Module, Vec<FieldDef>>,
    next_id: u64,
}

/// Lead sources of a new Zoho CRM account (standard picklist).
const LEAD_SOURCES: [&str; 15] = [
    "-None-",
    "Advertisement",
    "Cold Call",
    "Employee Referral",
    "External Referral",
    "Online Store",
    "Partner",
    "Public Relations",
    "Sales Email Alias",
    "Seminar Partner",
    "Internal Seminar",
    "Trade Show",
    "Web Download",
    "Web Research",
    "Chat",
];

/// The Deals stages of the standard pipeline.
const STAGES: [&str; 10] = [
    "Qualification",
    "Needs Analysis",
    "Value Proposition",
    "Id. Decision Makers",
    "Perception Analysis",
    "Proposal/Price Quote",
    "Negotiation/Review",
    "Closed Won",
    "Closed Lost",
    "Closed Lost to Competition",
];

impl Default for Schema {
    fn default() -> Self {
        use DataType::*;
        let person = |extra: Vec<FieldDef>| {
            let mut v = vec![
                FieldDef::new("First_Name", Text).length(40),
                FieldDef::new("Last_Name", Text).length(80).mandatory(),
                FieldDef::new("Full_Name", Text).length(120).read_only(),
                FieldDef::new("Email", Email),
                FieldDef::new("Secondary_Email", Email),
                FieldDef::new("Phone", Phone),
                FieldDef::new("Mobile", Phone),
                FieldDef::new("Lead_Source", Picklist).picklist(&LEAD_SOURCES),
                FieldDef::new("Description", TextArea),
                FieldDef::new("Email_Opt_Out", Boolean),
            ];
            v.extend(extra);
            v
        };
        let mut modules = BTreeMap::new();
        modules.insert(
            Module::Leads,
            person(vec![
                FieldDef::new("Company", Text).length(200),
                FieldDef::new("Country", Text).length(100),
                FieldDef::new("State", Text).length(100),
            ]),
        );
        modules.insert(
            Module::Contacts,
            person(vec![
                FieldDef::new("Mailing_Country", Text).length(100),
                FieldDef::new("Mailing_State", Text).length(100),
            ]),
        );
        modules.insert(
            Module::Deals,
            vec![
                FieldDef::new("Deal_Name", Text).length(120).mandatory(),
                FieldDef::new("Stage", Picklist)
                    .picklist(&STAGES)
                    .mandatory(),
                FieldDef::new("Contact_Name", Lookup).lookup(Module::Contacts),
                FieldDef::new("Amount", Currency),
                FieldDef::new("Closing_Date", Date),
                FieldDef::new("Lead_Source", Picklist).picklist(&LEAD_SOURCES),
                FieldDef::new("Description", TextArea),
            ],
        );
        // Note_Content: maxLen 65535, Note_Title: maxLen 120 ([V] crm-oas v8
        // notes/operations/createNotesModule).
        modules.insert(
            Module::Notes,
            vec![
                FieldDef::new("Note_Title", Text).length(120),
                FieldDef::new("Note_Content", TextArea).length(65_535),
                FieldDef::new("Parent_Id", Lookup),
            ],
        );
        let mut schema = Schema {
            modules,
            next_id: 1,
        };
        let ids: Vec<(Module, usize)> = schema
            .modules
            .iter()
            .flat_map(|(m, f)| (0..f.len()).map(move |i| (*m, i)))
            .collect();
        for (m, i) in ids {
            let id = schema.field_id();
            if let Some(f) = schema.modules.get_mut(&m).and_then(|f| f.get_mut(i)) {
                f.id = id;
            }
        }
        schema
    }
}

impl Schema {
    fn field_id(&mut self) -> String {
        let id = format!("5725767000000{:06}", 300_000 + self.next_id);
        self.next_id += 1;
        id
    }

    pub(crate) fn fields(&self, module: Module) -> &[FieldDef] {
        self.modules.get(&module).map_or(&[], Vec::as_slice)
    }

    pub(crate) fn get(&self, module: Module, api_name: &str) -> Option<&FieldDef> {
        self.fields(module).iter().find(|f| f.api_name == api_name)
    }

    /// Adds a field, or replaces the one with its api name (keeping its id).
    pub(crate) fn put(&mut self, module: Module, mut def: FieldDef) {
        let id = self.field_id();
        let fields = self.modules.entry(module).or_default();
        match fields.iter_mut().find(|f| f.api_name == def.api_name) {
            Some(existing) => {
                def.id = existing.id.clone();
                *existing = def;
            }
            None => {
                def.id = id;
                fields.push(def);
            }
        }
    }

    pub(crate) fn remove(&mut self, module: Module, api_name: &str) -> bool {
        let fields = self.modules.entry(module).or_default();
        let before = fields.len();
        fields.retain(|f| f.api_name != api_name);
        fields.len() != before
    }

    /// The user-defined unique fields of a module.
    pub(crate) fn unique_fields(&self, module: Module) -> Vec<&FieldDef> {
        self.fields(module).iter().filter(|f| f.unique).collect()
    }
}

/// A new or replacing field from the admin API.
pub(crate) fn field_from_admin(input: &Value) -> Result<FieldDef, String> {
    let obj = input.as_object().ok_or("a field is a JSON object")?;
    let api_name = obj
        .get("api_name")
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .ok_or("a field needs \"api_name\"")?;
    let type_name = obj
        .get("data_type")
        .and_then(Value::as_str)
        .ok_or("a field needs \"data_type\"")?;
    let data_type = DataType::parse(type_name).ok_or_else(|| {
        format!(
            "unknown data_type \"{type_name}\" (text, textarea, email, phone, website, \
             picklist, lookup, integer, bigint, double, currency, boolean, date, datetime)"
        )
    })?;
    let mut def = FieldDef::new(api_name, data_type);
    def.custom_field = obj
        .get("custom_field")
        .and_then(Value::as_bool)
        .unwrap_or(api_name.ends_with("__c") || !api_name.contains('_'));
    if let Some(label) = obj.get("field_label").and_then(Value::as_str) {
        def.label = label.to_owned();
    }
    if let Some(n) = obj.get("length").and_then(Value::as_u64) {
        def.length = u32::try_from(n).map_err(|_| "\"length\" is too large")?;
    }
    let flag = |k: &str| obj.get(k).and_then(Value::as_bool).unwrap_or(false);
    def.read_only = flag("read_only");
    def.system_mandatory = flag("system_mandatory");
    def.unique = flag("unique");
    if let Some(values) = obj.get("pick_list_values").and_then(Value::as_array) {
        def.pick_list_values = values
            .iter()
            .filter_map(|v| {
                v.as_str()
                    .or_else(|| v.get("actual_value").and_then(Value::as_str))
                    .map(str::to_owned)
            })
            .collect();
    }
    if let Some(m) = obj.get("lookup_module").and_then(Value::as_str) {
        def.lookup = Some(Module::parse(m).ok_or_else(|| format!("unknown module \"{m}\""))?);
    }
    Ok(def)
}

/// Why one field value was refused: a per-record `INVALID_DATA`.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct FieldIssue {
    pub message: &'static str,
    /// Extra `details` keys (`maximum_length`, `expected_data_type`, `supported_values`).
    pub details: Map<String, Value>,
}

impl FieldIssue {
    fn new(message: &'static str) -> FieldIssue {
        FieldIssue {
            message,
            details: Map::new(),
        }
    }

    fn with(mut self, key: &str, value: Value) -> FieldIssue {
        self.details.insert(key.to_owned(), value);
        self
    }

    /// The per-record error body, `json_path` = `$.data[i].<api_name>`.
    pub(crate) fn to_error(&self, index: usize, api_name: &str) -> Value {
        let mut details = self.details.clone();
        details.insert("api_name".into(), json!(api_name));
        details.insert(
            "json_path".into(),
            json!(format!("$.data[{index}].{api_name}")),
        );
        json!({
            "code": "INVALID_DATA",
            "details": details,
            "message": self.message,
            "status": "error",
        })
    }
}

/// A lookup value's record id: `{"id": "…"}` or the id itself.
pub(crate) fn lookup_id(value: &Value) -> Option<&str> {
    match value {
        Value::String(s) => Some(s.as_str()),
        Value::Object(o) => o.get("id").and_then(Value::as_str),
        _ => None,
    }
    .filter(|s| !s.trim().is_empty())
}

/// Checks one value against its field; `Ok` holds the value as stored.
/// `exists` tells whether a lookup's target record exists.
pub(crate) fn check_value(
    def: &FieldDef,
    value: &Value,
    exists: impl Fn(Module, &str) -> bool,
) -> Result<Value, FieldIssue> {
    if value.is_null() {
        return Ok(Value::Null);
    }
    let expected = || {
        FieldIssue::new("invalid data").with("expected_data_type", json!(def.data_type.as_str()))
    };
    let too_long = || FieldIssue::new("invalid data").with("maximum_length", json!(def.length));
    match def.data_type {
        DataType::Text
        | DataType::TextArea
        | DataType::Email
        | DataType::Phone
        | DataType::Website
        | DataType::Picklist => {
            let s = value.as_str().ok_or_else(expected)?;
            if s.chars().count() > def.length as usize {
                return Err(too_long());
            }
            if def.data_type == DataType::Email && !s.is_empty() && !looks_like_email(s) {
                return Err(expected());
            }
            if def.data_type == DataType::Picklist
                && !def.pick_list_values.is_empty()
                && !def.pick_list_values.iter().any(|v| v == s)
            {
                return Err(FieldIssue::new("invalid data")
                    .with("supported_values", json!(def.pick_list_values)));
            }
            Ok(value.clone())
        }
        DataType::Integer | DataType::BigInt => {
            let n = value.as_i64().ok_or_else(expected)?;
            if n.unsigned_abs().to_string().len() > def.length as usize {
                return Err(too_long());
            }
            Ok(value.clone())
        }
        DataType::Double | DataType::Currency => {
            value.as_f64().ok_or_else(expected)?;
            Ok(value.clone())
        }
        DataType::Boolean => {
            value.as_bool().ok_or_else(expected)?;
            Ok(value.clone())
        }
        DataType::Date => {
            let s = value.as_str().ok_or_else(expected)?;
            chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d").map_err(|_| expected())?;
            Ok(value.clone())
        }
        DataType::DateTime => {
            let s = value.as_str().ok_or_else(expected)?;
            chrono::DateTime::parse_from_rfc3339(s).map_err(|_| expected())?;
            Ok(value.clone())
        }
        DataType::Lookup => {
            let id = lookup_id(value).ok_or_else(expected)?;
            match def.lookup {
                Some(m) if !exists(m, id) => {
                    Err(FieldIssue::new("the related id given seems to be invalid"))
                }
                _ => Ok(json!({ "id": id })),
            }
        }
    }
}

fn looks_like_email(s: &str) -> bool {
    match s.rsplit_once('@') {
        Some((local, domain)) => {
            !local.is_empty()
                && domain.contains('.')
                && !domain.starts_with('.')
                && !domain.ends_with('.')
                && !s.chars().any(char::is_whitespace)
        }
        None => false,
    }
}

/// Whether a value counts as given (mandatory checks): not null, not blank.
pub(crate) fn is_given(value: Option<&Value>) -> bool {
    match value {
        None | Some(Value::Null) => false,
        Some(Value::String(s)) => !s.trim().is_empty(),
        Some(_) => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn none(_: Module, _: &str) -> bool {
        false
    }

    #[test]
    fn the_default_schema_has_the_documented_mandatory_and_duplicate_check_fields() {
        let s = Schema::default();
        for m in [Module::Leads, Module::Contacts] {
            let mandatory: Vec<&str> = s
                .fields(m)
                .iter()
                .filter(|f| f.system_mandatory)
                .map(|f| f.api_name.as_str())
                .collect();
            assert_eq!(mandatory, ["Last_Name"]);
            assert_eq!(m.duplicate_check_field(), Some("Email"));
        }
        let deal: Vec<&str> = s
            .fields(Module::Deals)
            .iter()
            .filter(|f| f.system_mandatory)
            .map(|f| f.api_name.as_str())
            .collect();
        assert_eq!(deal, ["Deal_Name", "Stage"]);
        // Every field has an id of its own.
        let mut ids: Vec<&str> = Module::ALL
            .iter()
            .flat_map(|m| s.fields(*m).iter().map(|f| f.id.as_str()))
            .collect();
        let n = ids.len();
        ids.sort();
        ids.dedup();
        assert_eq!(ids.len(), n);
    }

    #[test]
    fn values_are_checked_by_type_length_and_list() {
        let s = Schema::default();
        let first = s.get(Module::Contacts, "First_Name").expect("field");
        assert!(check_value(first, &json!("Priya"), none).is_ok());
        let long = check_value(first, &json!("x".repeat(41)), none).expect_err("too long");
        assert_eq!(long.details["maximum_length"], json!(40));
        let typed = check_value(first, &json!(5), none).expect_err("not text");
        assert_eq!(typed.details["expected_data_type"], json!("text"));
        let email = s.get(Module::Contacts, "Email").expect("field");
        assert!(check_value(email, &json!("not-an-email"), none).is_err());
        assert!(check_value(email, &json!("a@b.io"), none).is_ok());
        let stage = s.get(Module::Deals, "Stage").expect("field");
        let off = check_value(stage, &json!("appointmentscheduled"), none).expect_err("listed");
        assert!(off.details.contains_key("supported_values"));
        let contact = s.get(Module::Deals, "Contact_Name").expect("field");
        assert!(check_value(contact, &json!({"id": "1"}), none).is_err());
        assert_eq!(
            check_value(contact, &json!("1"), |_, _| true).expect("exists"),
            json!({"id": "1"})
        );
        let e = long.to_error(3, "First_Name");
        assert_eq!(e["details"]["json_path"], "$.data[3].First_Name");
        assert_eq!(e["code"], "INVALID_DATA");
    }

    #[test]
    fn admin_fields_replace_by_api_name_and_keep_their_id() {
        let mut s = Schema::default();
        let id = s
            .get(Module::Contacts, "First_Name")
            .expect("field")
            .id
            .clone();
        let def =
            field_from_admin(&json!({"api_name": "First_Name", "data_type": "text", "length": 5}))
                .expect("valid");
        s.put(Module::Contacts, def);
        let f = s.get(Module::Contacts, "First_Name").expect("field");
        assert_eq!((f.length, f.id.as_str()), (5, id.as_str()));
        assert!(field_from_admin(&json!({"api_name": "X", "data_type": "blob"})).is_err());
        assert!(s.remove(Module::Contacts, "First_Name"));
        assert!(!s.remove(Module::Contacts, "First_Name"));
    }
}
