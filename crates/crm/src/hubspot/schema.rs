//! Schema-drift detection: the contact properties an event (or a mapping)
//! writes, checked against the portal's schema as `GET /crm/v3/properties/contacts`
//! reports it, before anything is written.
//!
//! The rules, per written property, first match wins:
//! - **missing**: not in the schema;
//! - **read_only**: `modificationMetadata.readOnlyValue`, or `calculated`;
//! - **wrong_type**: the source can never fit the property's type (a number or
//!   timestamp into a `bool`, a number into a `date`/`datetime`, a timestamp into a
//!   `number` or a `date`), or the value does not parse as the type (`number`,
//!   `bool` = true/false, `date` = `YYYY-MM-DD` or midnight UTC, `datetime` = RFC 3339,
//!   a bare date or epoch milliseconds);
//! - **bad_option**: an `enumeration` (or a `bool` listing options) and the value
//!   is not one of the option values; a multi-select (`checkbox`) takes
//!   `;`-separated values that must each be an option.
//!
//! A visitor's value is never quoted in a finding (it is personal data); a
//! static value from the mapping is.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, NaiveDate, NaiveDateTime, TimeZone, Utc};
use lb_domain::mapping::{FieldPath, TargetSource, ValueKind};
use lb_pipeline::CrmError;
use serde_json::Value;

/// How many option values a finding lists before it cuts the list short.
const OPTIONS_LISTED: usize = 20;

/// What a schema check found for one property.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SchemaStatus {
    Ok,
    /// The property is not in the CRM's schema.
    Missing,
    /// The property exists but the API cannot write it (read-only or calculated).
    ReadOnly,
    /// The value (or the kind of field feeding it) does not fit the property's type.
    WrongType,
    /// The value is not one of the property's options.
    BadOption,
}

impl SchemaStatus {
    pub fn as_str(&self) -> &'static str {
        match self {
            SchemaStatus::Ok => "ok",
            SchemaStatus::Missing => "missing",
            SchemaStatus::ReadOnly => "read_only",
            SchemaStatus::WrongType => "wrong_type",
            SchemaStatus::BadOption => "bad_option",
        }
    }
}

/// One row of [`crate::HubSpotCrm::schema_report`]: a property the mapping
/// writes and how it fits the CRM's schema.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SchemaRow {
    /// The CRM property (for `answers.*`, the target pattern such as `{key}`).
    pub property: String,
    /// Where its value comes from: `visitor.email`, `static "NEW"`, `answers.*`.
    pub source: String,
    /// The property's `type` in the CRM (`None` when it does not exist or is a pattern).
    pub crm_type: Option<String>,
    pub status: SchemaStatus,
    /// Why the status is not `ok`, or what is left to check per event.
    pub detail: String,
}

/// An aligned text table of the rows: PROPERTY, SOURCE, TYPE, STATUS, DETAIL
/// (comfy-table: no borders, two spaces between columns).
pub fn render_schema_table(rows: &[SchemaRow]) -> String {
    use comfy_table::{presets, ContentArrangement, Table};
    let mut t = Table::new();
    t.load_preset(presets::NOTHING)
        .set_content_arrangement(ContentArrangement::Disabled)
        .set_header(["PROPERTY", "SOURCE", "TYPE", "STATUS", "DETAIL"]);
    for r in rows {
        t.add_row([
            r.property.clone(),
            r.source.clone(),
            r.crm_type.clone().unwrap_or_else(|| "-".into()),
            r.status.as_str().to_string(),
            r.detail.clone(),
        ]);
    }
    for column in t.column_iter_mut() {
        column.set_padding((0, 2));
    }
    t.lines().map(|l| l.trim_end().to_string() + "\n").collect()
}

/// One contact property as the properties API describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PropertyDef {
    /// `type`: string, number, date, datetime, enumeration, bool, phone_number, …
    pub kind: String,
    /// `fieldType`: text, select, radio, checkbox, booleancheckbox, …
    pub field_type: String,
    /// The option values (hidden options included: the API accepts them).
    pub options: Vec<String>,
    /// Options come from elsewhere (owners, …): the list is not authoritative.
    pub external_options: bool,
    pub read_only: bool,
    pub calculated: bool,
}

/// The contact schema of one portal.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct ContactSchema {
    props: HashMap<String, PropertyDef>,
}

impl ContactSchema {
    /// Reads `{"results": [...]}`; `None` when there is no `results` array.
    pub(crate) fn from_json(v: &Value) -> Option<ContactSchema> {
        let props = v["results"]
            .as_array()?
            .iter()
            .filter(|p| p["archived"].as_bool() != Some(true))
            .filter_map(|p| {
                let name = p["name"].as_str()?.to_string();
                let text = |k: &str| p[k].as_str().unwrap_or_default().to_string();
                let def = PropertyDef {
                    kind: text("type"),
                    field_type: text("fieldType"),
                    options: p["options"]
                        .as_array()
                        .map(|o| {
                            o.iter()
                                .filter_map(|o| o["value"].as_str().map(str::to_string))
                                .collect()
                        })
                        .unwrap_or_default(),
                    external_options: p["externalOptions"].as_bool().unwrap_or(false),
                    read_only: p["modificationMetadata"]["readOnlyValue"]
                        .as_bool()
                        .unwrap_or(false),
                    calculated: p["calculated"].as_bool().unwrap_or(false),
                };
                Some((name, def))
            })
            .collect();
        Some(ContactSchema { props })
    }

    pub(crate) fn get(&self, name: &str) -> Option<&PropertyDef> {
        self.props.get(name)
    }

    #[cfg(test)]
    pub(crate) fn with(mut self, name: &str, def: PropertyDef) -> Self {
        self.props.insert(name.to_string(), def);
        self
    }
}

/// Where a written value comes from, as a check sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Origin {
    /// A canonical field of the event: its value is the visitor's, never quoted.
    Field(FieldPath, ValueKind),
    /// A fixed value of the mapping: quoted in findings.
    Static(String),
}

impl Origin {
    pub(crate) fn label(&self) -> String {
        match self {
            Origin::Field(path, _) => path.as_str(),
            Origin::Static(v) => format!("static {v:?}"),
        }
    }

    /// How a finding names the value: never the visitor's value itself.
    fn subject(&self) -> String {
        match self {
            Origin::Field(path, _) => format!("the value for {path}"),
            Origin::Static(v) => format!("the value {v:?}"),
        }
    }
}

impl From<TargetSource> for Origin {
    fn from(s: TargetSource) -> Origin {
        match s {
            TargetSource::Field(path, kind) => Origin::Field(path, kind),
            TargetSource::Static(v) => Origin::Static(v),
        }
    }
}

/// Checks one property. `value` is what the event writes; `None` is the
/// report's static check of a field (only its kind is known). A static
/// origin is checked as its own value.
pub(crate) fn check(
    def: Option<&PropertyDef>,
    origin: &Origin,
    value: Option<&str>,
) -> (SchemaStatus, String) {
    let Some(def) = def else {
        return (SchemaStatus::Missing, "the property does not exist".into());
    };
    if def.calculated {
        return (
            SchemaStatus::ReadOnly,
            "the property is calculated (read-only)".into(),
        );
    }
    if def.read_only {
        return (SchemaStatus::ReadOnly, "the property is read-only".into());
    }
    if let Origin::Field(path, kind) = origin {
        if let Some(why) = kind_conflict(*kind, &def.kind) {
            return (
                SchemaStatus::WrongType,
                format!(
                    "{path} holds {why} values, which a {} property cannot hold",
                    def.kind
                ),
            );
        }
    }
    let value = match origin {
        Origin::Static(v) => Some(v.as_str()),
        Origin::Field(..) => value,
    };
    let Some(value) = value else {
        let typed = matches!(
            def.kind.as_str(),
            "number" | "bool" | "date" | "datetime" | "enumeration"
        );
        let detail = if typed {
            "values are checked per event"
        } else {
            ""
        };
        return (SchemaStatus::Ok, detail.into());
    };
    let subject = origin.subject();
    let not_a = |what: &str| (SchemaStatus::WrongType, format!("{subject} is not {what}"));
    match def.kind.as_str() {
        "number" if !is_number(value) => return not_a("a number"),
        "bool" if !matches!(value.trim().to_ascii_lowercase().as_str(), "true" | "false") => {
            return not_a("true or false")
        }
        "date" if !is_date(value) => return not_a("a date (YYYY-MM-DD, midnight UTC)"),
        "datetime" if parse_datetime(value).is_none() => return not_a("a date-time (RFC 3339)"),
        _ => {}
    }
    let has_options = match def.kind.as_str() {
        "enumeration" => !def.external_options,
        "bool" => !def.options.is_empty(),
        _ => false,
    };
    if has_options {
        let is_option = |v: &str| {
            def.options
                .iter()
                .any(|o| o == v || (def.kind == "bool" && o.eq_ignore_ascii_case(v.trim())))
        };
        let (ok, what) = if def.field_type == "checkbox" {
            (
                value.split(';').all(is_option),
                "is not a ;-separated list of the options",
            )
        } else {
            (is_option(value), "is not one of the options")
        };
        if !ok {
            return (
                SchemaStatus::BadOption,
                format!("{subject} {what}: {}", list_options(&def.options)),
            );
        }
    }
    (SchemaStatus::Ok, String::new())
}

/// Why a field of this kind can never be written to a property of this type.
fn kind_conflict(kind: ValueKind, crm_type: &str) -> Option<&'static str> {
    match (kind, crm_type) {
        (ValueKind::Number, "bool" | "date" | "datetime") => Some("number"),
        // HubSpot takes dates at midnight UTC only: a timestamp loses its time.
        (ValueKind::DateTime, "number" | "bool" | "date") => Some("date-time"),
        _ => None,
    }
}

fn list_options(options: &[String]) -> String {
    if options.is_empty() {
        return "(none)".into();
    }
    let mut s = options
        .iter()
        .take(OPTIONS_LISTED)
        .map(String::as_str)
        .collect::<Vec<_>>()
        .join(", ");
    if options.len() > OPTIONS_LISTED {
        s.push_str(&format!(", … ({} in all)", options.len()));
    }
    s
}

fn is_number(v: &str) -> bool {
    v.trim().parse::<f64>().is_ok_and(f64::is_finite)
}

/// A bare date, or a date-time / epoch milliseconds at midnight UTC.
fn is_date(v: &str) -> bool {
    parse_datetime(v).is_some_and(|d| d.timestamp_millis() % 86_400_000 == 0)
}

/// What HubSpot takes for a date-time: RFC 3339 (an ISO date-time without
/// offset is UTC), a bare date (midnight UTC), or epoch milliseconds.
fn parse_datetime(text: &str) -> Option<DateTime<Utc>> {
    let text = text.trim();
    if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
        return Utc.timestamp_millis_opt(text.parse().ok()?).single();
    }
    if let Ok(d) = DateTime::parse_from_rfc3339(text) {
        return Some(d.with_timezone(&Utc));
    }
    if let Ok(d) = NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S%.f") {
        return Some(d.and_utc());
    }
    NaiveDate::parse_from_str(text, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|d| d.and_utc())
}

/// One property an event writes: its name, source and value.
#[derive(Debug, Clone)]
pub(crate) struct Write {
    pub property: String,
    pub origin: Origin,
    pub value: String,
}

/// The findings for an event's writes, one message each (empty: all fit).
pub(crate) fn check_writes(schema: &ContactSchema, writes: &[Write]) -> Vec<String> {
    writes
        .iter()
        .filter_map(|w| {
            let (status, detail) = check(schema.get(&w.property), &w.origin, Some(&w.value));
            (status != SchemaStatus::Ok).then(|| finding(&w.property, &w.origin, &detail))
        })
        .collect()
}

fn finding(property: &str, origin: &Origin, detail: &str) -> String {
    format!(
        "schema drift on HubSpot contact property \"{property}\": {detail} (mapped from {})",
        origin.label()
    )
}

/// The report's rows: each `(property, origin)` checked by kind (statics by
/// value), plus one row per `answers.*` pattern.
pub(crate) fn report(
    schema: &ContactSchema,
    targets: &[(String, Origin)],
    answer_patterns: &[String],
) -> Vec<SchemaRow> {
    let mut rows: Vec<SchemaRow> = targets
        .iter()
        .map(|(property, origin)| {
            let def = schema.get(property);
            let (status, detail) = check(def, origin, None);
            SchemaRow {
                property: property.clone(),
                source: origin.label(),
                crm_type: def.map(|d| d.kind.clone()),
                status,
                detail,
            }
        })
        .collect();
    rows.extend(answer_patterns.iter().map(|p| SchemaRow {
        property: p.clone(),
        source: FieldPath::AllAnswers.as_str(),
        crm_type: None,
        status: SchemaStatus::Ok,
        detail: "one property per answer key; checked per event".into(),
    }));
    rows
}

/// The schema of one adapter instance, read again once `ttl` has passed
/// (0: every time). One reader at a time: concurrent events wait for it.
#[derive(Debug, Default)]
pub(crate) struct SchemaCache {
    slot: tokio::sync::Mutex<Option<(Instant, Arc<ContactSchema>)>>,
}

impl SchemaCache {
    /// The cached schema if it is younger than `ttl` at `now` (and `force` is
    /// off), else what `load` reads, cached from `now` on.
    pub(crate) async fn get_or_load<F, Fut>(
        &self,
        ttl: Duration,
        now: Instant,
        force: bool,
        load: F,
    ) -> Result<Arc<ContactSchema>, CrmError>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<ContactSchema, CrmError>>,
    {
        let mut slot = self.slot.lock().await;
        if let Some((at, schema)) = slot.as_ref() {
            if !force && !ttl.is_zero() && now.saturating_duration_since(*at) < ttl {
                return Ok(schema.clone());
            }
        }
        let schema = Arc::new(load().await?);
        *slot = Some((now, schema.clone()));
        Ok(schema)
    }

    /// Forgets the schema: the next event reads it again.
    pub(crate) async fn invalidate(&self) {
        *self.slot.lock().await = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn def(kind: &str, field_type: &str, options: &[&str]) -> PropertyDef {
        PropertyDef {
            kind: kind.into(),
            field_type: field_type.into(),
            options: options.iter().map(|s| s.to_string()).collect(),
            external_options: false,
            read_only: false,
            calculated: false,
        }
    }

    fn field(path: &str) -> Origin {
        let p = FieldPath::parse(path).expect("path");
        let kind = p.kind();
        Origin::Field(p, kind)
    }

    #[test]
    fn each_rule_gives_its_status() {
        use SchemaStatus::*;
        let text = def("string", "text", &[]);
        let number = def("number", "number", &[]);
        let boolean = def("bool", "booleancheckbox", &["true", "false"]);
        let date = def("date", "date", &[]);
        let datetime = def("datetime", "date", &[]);
        let select = def("enumeration", "select", &["NEW", "OPEN"]);
        let multi = def("enumeration", "checkbox", &["a", "b", "c"]);
        let read_only = PropertyDef {
            read_only: true,
            ..text.clone()
        };
        let calculated = PropertyDef {
            calculated: true,
            ..number.clone()
        };
        let external = PropertyDef {
            external_options: true,
            ..def("enumeration", "select", &[])
        };
        let stat = |v: &str| Origin::Static(v.into());
        let cases: Vec<(Option<&PropertyDef>, Origin, Option<&str>, SchemaStatus)> = vec![
            (None, field("visitor.company"), Some("Acme"), Missing),
            (Some(&text), field("visitor.company"), Some("Acme"), Ok),
            (
                Some(&read_only),
                field("visitor.company"),
                Some("Acme"),
                ReadOnly,
            ),
            (Some(&calculated), stat("1"), None, ReadOnly),
            (Some(&number), field("answers.size"), Some(" 42.5 "), Ok),
            (
                Some(&number),
                field("answers.size"),
                Some("lots"),
                WrongType,
            ),
            (
                Some(&number),
                field("consent.given_at"),
                Some("2026-05-01T00:00:00Z"),
                WrongType,
            ),
            (
                Some(&number),
                field("intent.qualification_score"),
                Some("80"),
                Ok,
            ),
            (Some(&boolean), field("answers.opt_in"), Some("TRUE"), Ok),
            (
                Some(&boolean),
                field("answers.opt_in"),
                Some("yes"),
                WrongType,
            ),
            (
                Some(&boolean),
                field("intent.qualification_score"),
                Some("1"),
                WrongType,
            ),
            (Some(&date), field("answers.when"), Some("2026-05-01"), Ok),
            (
                Some(&date),
                field("answers.when"),
                Some("1777593600000"),
                Ok,
            ),
            (
                Some(&date),
                field("answers.when"),
                Some("2026-05-01T10:00:00Z"),
                WrongType,
            ),
            (
                Some(&date),
                field("answers.when"),
                Some("next week"),
                WrongType,
            ),
            (
                Some(&date),
                field("intent.qualification_score"),
                Some("80"),
                WrongType,
            ),
            (
                Some(&date),
                field("consent.given_at"),
                Some("2026-05-01T00:00:00Z"),
                WrongType,
            ),
            (
                Some(&datetime),
                field("consent.given_at"),
                Some("2026-05-01T10:00:00Z"),
                Ok,
            ),
            (
                Some(&datetime),
                field("answers.when"),
                Some("2026-05-01T10:00:00+02:00"),
                Ok,
            ),
            (
                Some(&datetime),
                field("answers.when"),
                Some("tomorrow"),
                WrongType,
            ),
            (
                Some(&datetime),
                field("transcript.messages"),
                Some("12"),
                WrongType,
            ),
            (Some(&select), field("answers.status"), Some("NEW"), Ok),
            (
                Some(&select),
                field("answers.status"),
                Some("new"),
                BadOption,
            ),
            (Some(&select), stat("CLOSED"), None, BadOption),
            (Some(&select), stat("OPEN"), None, Ok),
            (Some(&multi), field("answers.tags"), Some("a;c"), Ok),
            (Some(&multi), field("answers.tags"), Some("b"), Ok),
            (Some(&multi), field("answers.tags"), Some("a;d"), BadOption),
            (
                Some(&select),
                field("answers.tags"),
                Some("NEW;OPEN"),
                BadOption,
            ),
            (Some(&external), field("answers.owner"), Some("123"), Ok),
        ];
        for (i, (d, origin, value, want)) in cases.iter().enumerate() {
            let (got, detail) = check(*d, origin, *value);
            assert_eq!(got, *want, "case {i}: {origin:?} {value:?} → {detail}");
        }
    }

    #[test]
    fn findings_never_quote_a_visitors_value_but_quote_statics() {
        let schema = ContactSchema::default()
            .with("size", def("enumeration", "select", &["small", "large"]))
            .with(
                "hs_lead_status",
                def("enumeration", "radio", &["NEW", "OPEN"]),
            );
        let found = check_writes(
            &schema,
            &[
                Write {
                    property: "size".into(),
                    origin: field("answers.size"),
                    value: "secret-ish".into(),
                },
                Write {
                    property: "hs_lead_status".into(),
                    origin: Origin::Static("NEWW".into()),
                    value: "NEWW".into(),
                },
                Write {
                    property: "company_size".into(),
                    origin: field("answers.company_size"),
                    value: "51-200".into(),
                },
            ],
        );
        assert_eq!(
            found,
            [
                "schema drift on HubSpot contact property \"size\": the value for answers.size \
                 is not one of the options: small, large (mapped from answers.size)",
                "schema drift on HubSpot contact property \"hs_lead_status\": the value \"NEWW\" \
                 is not one of the options: NEW, OPEN (mapped from static \"NEWW\")",
                "schema drift on HubSpot contact property \"company_size\": the property does not \
                 exist (mapped from answers.company_size)",
            ]
        );
        assert!(!found.join(" ").contains("secret-ish"));
        assert!(!found.join(" ").contains("51-200"));
    }

    #[test]
    fn long_option_lists_are_cut_short() {
        let many: Vec<String> = (0..30).map(|i| format!("o{i}")).collect();
        let s = list_options(&many);
        assert!(s.ends_with("o19, … (30 in all)"), "{s}");
    }

    #[test]
    fn the_properties_api_answer_is_read() {
        let v = json!({"results": [
            {"name": "email", "type": "string", "fieldType": "text", "options": [],
             "calculated": false, "modificationMetadata": {"readOnlyValue": false}},
            {"name": "hs_lead_status", "type": "enumeration", "fieldType": "radio",
             "options": [{"label": "New", "value": "NEW", "hidden": false},
                         {"label": "Old", "value": "OLD", "hidden": true}]},
            {"name": "createdate", "type": "datetime", "fieldType": "date",
             "modificationMetadata": {"readOnlyValue": true}},
            {"name": "gone", "type": "string", "archived": true},
            {"type": "string"}
        ]});
        let s = ContactSchema::from_json(&v).expect("schema");
        assert_eq!(s.props.len(), 3);
        assert_eq!(s.get("hs_lead_status").unwrap().options, ["NEW", "OLD"]);
        assert!(s.get("createdate").unwrap().read_only);
        assert!(s.get("gone").is_none());
        assert!(ContactSchema::from_json(&json!({"message": "x"})).is_none());
    }

    #[test]
    fn report_checks_kinds_and_statics_and_notes_answers() {
        let schema = ContactSchema::default()
            .with("email", def("string", "text", &[]))
            .with("score", def("number", "number", &[]))
            .with("seen", def("date", "date", &[]))
            .with("hs_lead_status", def("enumeration", "radio", &["NEW"]));
        let rows = report(
            &schema,
            &[
                ("email".into(), field("visitor.email")),
                ("score".into(), field("answers.score")),
                ("seen".into(), field("consent.given_at")),
                ("hs_lead_status".into(), Origin::Static("NEW".into())),
                ("gone".into(), field("visitor.company")),
            ],
            &["{key}".into()],
        );
        let got: Vec<(&str, &str, Option<&str>, &str)> = rows
            .iter()
            .map(|r| {
                (
                    r.property.as_str(),
                    r.source.as_str(),
                    r.crm_type.as_deref(),
                    r.status.as_str(),
                )
            })
            .collect();
        assert_eq!(
            got,
            [
                ("email", "visitor.email", Some("string"), "ok"),
                ("score", "answers.score", Some("number"), "ok"),
                ("seen", "consent.given_at", Some("date"), "wrong_type"),
                (
                    "hs_lead_status",
                    "static \"NEW\"",
                    Some("enumeration"),
                    "ok"
                ),
                ("gone", "visitor.company", None, "missing"),
                ("{key}", "answers.*", None, "ok"),
            ]
        );
        assert_eq!(rows[1].detail, "values are checked per event");
        let table = render_schema_table(&rows);
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(lines.len(), 7);
        assert!(lines[0].starts_with("PROPERTY        SOURCE            TYPE         STATUS"));
        let status_col = lines[0].find("STATUS").unwrap();
        for l in &lines[1..] {
            assert_eq!(l.chars().nth(status_col - 1), Some(' '), "{l}");
        }
        assert!(lines[3].contains("wrong_type  consent.given_at holds date-time values"));
        assert!(lines[5].contains("gone            visitor.company   -            missing"));
    }

    #[tokio::test]
    async fn the_cache_keeps_the_schema_for_its_ttl_and_reloads_after() {
        let cache = SchemaCache::default();
        let loads = std::sync::atomic::AtomicUsize::new(0);
        let load = || async {
            loads.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            Ok(ContactSchema::default())
        };
        let ttl = Duration::from_secs(300);
        let t0 = Instant::now();
        let count = || loads.load(std::sync::atomic::Ordering::SeqCst);
        cache.get_or_load(ttl, t0, false, load).await.unwrap();
        cache
            .get_or_load(ttl, t0 + Duration::from_secs(299), false, load)
            .await
            .unwrap();
        assert_eq!(count(), 1, "fresh within the ttl");
        cache
            .get_or_load(ttl, t0 + Duration::from_secs(300), false, load)
            .await
            .unwrap();
        assert_eq!(count(), 2, "read again once the ttl passed");
        let t1 = t0 + Duration::from_secs(300);
        cache.get_or_load(ttl, t1, true, load).await.unwrap();
        assert_eq!(count(), 3, "forced");
        cache.invalidate().await;
        cache.get_or_load(ttl, t1, false, load).await.unwrap();
        assert_eq!(count(), 4, "invalidated");
        for _ in 0..2 {
            cache
                .get_or_load(Duration::ZERO, t1, false, load)
                .await
                .unwrap();
        }
        assert_eq!(count(), 6, "ttl 0 reads every time");
        let failing = || async {
            Err(CrmError {
                crm: "hubspot".into(),
                class: lb_pipeline::ErrorClass::Transient,
                http_status: Some(503),
                category: None,
                message: "down".into(),
                retry_after: None,
                code: None,
                taken_by: None,
            })
        };
        assert!(cache
            .get_or_load(Duration::ZERO, t1, false, failing)
            .await
            .is_err());
    }
}
