use std::collections::BTreeMap;
use std::time::Duration;

use lb_domain::mapping::{Case, FieldPath, Transform};
use lb_domain::{CountryPolicy, Delivery, LeadEvent};

use crate::*;

const EXAMPLE: &str = include_str!("../../../config/leadbridge.example.toml");

/// The format as docs/configuration.md documents it.
const SPEC: &str = r#"version = 1

[defaults]                     # policy for every route unless the route overrides
require_consent = false
unknown_country = "reject"
phone_region = "US"
split_name = true

[enums."answers.company_size"]
allowed = ["1-10", "11-50", "51-200", "201+"]
map = { "just me" = "1-10", "small" = "1-10", "enterprise" = "201+" }

[connections.hubspot]
kind = "hubspot"
secret = "leadbridge/hubspot"
base_url = "https://api.hubapi.com"
timeout_ms = 10000
schema_ttl_seconds = 300
deal_pipeline = "default"
deal_stage = "appointmentscheduled"

[connections.hubspot.fields]
"visitor.first_name" = "firstname"
"visitor.company" = { property = "company", truncate = 100 }
"answers.company_size" = { property = "company_size", case = "lower", values = { "201+" = "201_plus" } }
"answers.*" = "lb_{key}"

[connections.hubspot.static]
hs_lead_status = "NEW"

[connections.zapier]
kind = "webhook"
url = "https://hooks.zapier.com/hooks/catch/123/abc/"
auth = "bearer"
secret = "leadbridge/zapier"
headers = { "X-Source" = "leadbridge" }
timeout_ms = 10000

[connections.zapier.fields]
"visitor.email" = "email"

[connections.zapier.static]
lead_source = "Chatbot"

[[routes]]
bot_id = "sales-bot"
connections = ["hubspot", "zapier"]
object = "contact"
lead_source = "Chatbot – sales site"
require_consent = true
phone_region = "IN"
unknown_country = "pass_through"
split_name = false
required = ["visitor.email", "answers.company_size"]
"#;

/// A small valid file; validation cases append to it.
const BASE: &str = r#"version = 1

[connections.crm]
kind = "hubspot"
secret = "lb/hubspot"

[connections.hook]
kind = "webhook"
url = "https://example.com/hook"

[[routes]]
bot_id = "*"
connections = ["crm", "hook"]
"#;

fn parse_ok(text: &str) -> Config {
    match Config::parse(text) {
        Ok(c) => c,
        Err(e) => panic!("expected no errors, got:\n{e}"),
    }
}

fn errors(text: &str) -> Vec<ConfigError> {
    match Config::parse(text) {
        Ok(_) => panic!("expected errors, the file parsed:\n{text}"),
        Err(e) => e.0,
    }
}

fn event(json: serde_json::Value) -> LeadEvent {
    let mut base = serde_json::json!({
        "event_id": "evt_1",
        "event_type": "lead.created",
        "occurred_at": "2026-05-01T10:00:00Z",
        "bot_id": "sales-bot",
        "visitor": { "email": "ann@example.com" }
    });
    if let (Some(b), Some(extra)) = (base.as_object_mut(), json.as_object()) {
        for (k, v) in extra {
            b.insert(k.clone(), v.clone());
        }
    }
    serde_json::from_value(base).expect("a valid event")
}

#[test]
fn the_example_file_parses_without_errors_or_warnings() {
    let c = parse_ok(EXAMPLE);
    assert!(c.warnings.is_empty(), "{:?}", c.warnings);
    assert_eq!(
        c.connections
            .values()
            .map(|c| (c.name.as_str(), c.kind_name()))
            .collect::<Vec<_>>(),
        [
            ("hubspot", "hubspot"),
            ("pipedrive", "pipedrive"),
            ("salesforce", "salesforce"),
            ("zapier", "webhook"),
            ("zoho", "zoho")
        ]
    );
    assert_eq!(c.routes.len(), 4);
    assert_eq!(
        c.routes[1].connections,
        ["hubspot", "pipedrive", "zoho", "salesforce"],
        "a bot routed to each CRM"
    );
    assert_eq!(
        c.routes[2].lane_for(lb_domain::EventType::LeadUpdated),
        lb_domain::Lane::Bulk,
        "a bot whose updates go in bulk"
    );
    assert_eq!(c.routes[3].bot_id, None);
    assert_eq!(c.enums.len(), 2);
    let hs = c.connection("hubspot").unwrap().mapping.as_ref().unwrap();
    assert!(hs.identity_targets().is_empty());
}

#[test]
fn the_documented_format_parses_into_the_model() {
    let c = parse_ok(SPEC);
    assert_eq!(
        c.defaults,
        Policy {
            require_consent: false,
            unknown_country: CountryPolicy::Reject,
            phone_region: Some("US".into()),
            split_name: true,
        }
    );
    assert_eq!(
        c.enums,
        vec![EnumRule {
            field: FieldPath::Answer("company_size".into()),
            allowed: vec![
                "1-10".into(),
                "11-50".into(),
                "51-200".into(),
                "201+".into()
            ],
            map: BTreeMap::from([
                ("just me".to_string(), "1-10".to_string()),
                ("small".to_string(), "1-10".to_string()),
                ("enterprise".to_string(), "201+".to_string()),
            ]),
        }]
    );

    let hs = c.connection("hubspot").unwrap();
    assert_eq!(hs.timeout, Duration::from_secs(10));
    assert_eq!(
        hs.kind,
        ConnectionKind::HubSpot(HubSpotConnection {
            secret: "leadbridge/hubspot".into(),
            base_url: "https://api.hubapi.com".into(),
            deal_pipeline: Some("default".into()),
            deal_stage: Some("appointmentscheduled".into()),
            schema_ttl: Duration::from_secs(300),
        })
    );
    let m = hs.mapping.as_ref().unwrap();
    assert!(m.split_name);
    assert_eq!(
        m.statics,
        BTreeMap::from([("hs_lead_status".to_string(), "NEW".to_string())])
    );
    let fields: Vec<(String, &str, &Transform)> = m
        .fields
        .iter()
        .map(|f| (f.source.as_str(), f.target.as_str(), &f.transform))
        .collect();
    assert_eq!(fields.len(), 4);
    // File order is kept.
    assert_eq!(fields[0].0, "visitor.first_name");
    assert_eq!(fields[0].1, "firstname");
    assert_eq!(fields[1].2.truncate, Some(100));
    assert_eq!(fields[2].1, "company_size");
    assert_eq!(fields[2].2.case, Some(Case::Lower));
    assert_eq!(fields[2].2.values.get("201+").unwrap(), "201_plus");
    assert_eq!(fields[3].0, "answers.*");
    assert_eq!(fields[3].1, "lb_{key}");

    let zap = c.connection("zapier").unwrap();
    assert_eq!(
        zap.kind,
        ConnectionKind::Webhook(WebhookConnection {
            url: "https://hooks.zapier.com/hooks/catch/123/abc/".into(),
            auth: WebhookAuth::Bearer {
                secret: "leadbridge/zapier".into()
            },
            headers: vec![("X-Source".into(), "leadbridge".into())],
        })
    );
    assert_eq!(
        zap.mapping.as_ref().unwrap().identity_targets(),
        vec!["email"]
    );

    let r = &c.routes[0];
    assert_eq!(r.bot_id.as_deref(), Some("sales-bot"));
    assert_eq!(r.connections, ["hubspot", "zapier"]);
    assert_eq!(r.object, "contact");
    assert_eq!(r.lead_source.as_deref(), Some("Chatbot – sales site"));
    assert_eq!(
        r.policy,
        Policy {
            require_consent: true,
            unknown_country: CountryPolicy::PassThrough,
            phone_region: Some("IN".into()),
            split_name: false,
        }
    );
    assert_eq!(
        r.required,
        [FieldPath::Email, FieldPath::Answer("company_size".into())]
    );
    assert_eq!(r.policy.phone_region.as_deref(), Some("IN"));
    assert!(c.warnings.is_empty());
}

#[test]
fn defaults_apply_where_the_file_is_silent() {
    let c = parse_ok(BASE);
    assert_eq!(c.defaults, Policy::default());
    assert_eq!(c.routes[0].policy, Policy::default());
    assert_eq!(c.routes[0].object, "contact");
    assert_eq!(c.routes[0].lead_source, None);
    let crm = c.connection("crm").unwrap();
    assert_eq!(crm.mapping, None);
    assert_eq!(crm.timeout, Duration::from_millis(10_000));
    match &crm.kind {
        ConnectionKind::HubSpot(h) => {
            assert_eq!(h.base_url, HUBSPOT_BASE_URL);
            assert_eq!(h.schema_ttl, Duration::from_secs(300));
            assert_eq!(h.deal_pipeline, None);
        }
        other => panic!("{other:?}"),
    }
    match &c.connection("hook").unwrap().kind {
        ConnectionKind::Webhook(w) => assert_eq!(w.auth, WebhookAuth::None),
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_route_override_merges_with_the_defaults() {
    let c = parse_ok(&format!(
        "{BASE}\n[[routes]]\nbot_id = \"eu-bot\"\nconnections = [\"crm\"]\nrequire_consent = true\n\n[defaults]\nphone_region = \"de\"\nsplit_name = false\n"
    ));
    let eu = c.route_for("eu-bot").unwrap();
    assert_eq!(
        eu.policy,
        Policy {
            require_consent: true,
            unknown_country: CountryPolicy::Reject,
            phone_region: Some("DE".into()),
            split_name: false,
        }
    );
    assert_eq!(c.route_for("other").unwrap().policy, c.defaults);
    assert!(
        eu.deliveries().iter().all(|d| d.split_name == Some(false)),
        "the route's split_name travels with its deliveries to the field maps"
    );
}

/// (appended to BASE, expected key, line within the snippet, part of the message)
const CASES: &[(&str, &str, usize, &str)] = &[
    // defaults
    ("[defaults]\nrequire_consnt = true", "defaults.require_consnt", 2, "unknown key \"require_consnt\" in [defaults]; allowed: require_consent"),
    ("[defaults]\nrequire_consent = \"yes\"", "defaults.require_consent", 2, "expected true or false, found string"),
    ("[defaults]\nunknown_country = \"maybe\"", "defaults.unknown_country", 2, "expected \"reject\" or \"pass_through\""),
    ("[defaults]\nphone_region = \"UK\"", "defaults.phone_region", 2, "not an ISO 3166-1 alpha-2"),
    ("[defaults]\nphone_region = \"USA\"", "defaults.phone_region", 2, "not an ISO 3166-1 alpha-2"),
    ("[defaults]\nsplit_name = 1", "defaults.split_name", 2, "expected true or false, found integer"),
    // connections
    ("[connections.Bad_Name]\nkind = \"webhook\"\nurl = \"https://x.example\"", "connections.Bad_Name", 1, "invalid connection name"),
    ("[connections.k]\nsecret = \"s\"", "connections.k.kind", 1, "missing: kind = \"hubspot\", \"webhook\", \"pipedrive\", \"zoho\" or \"salesforce\""),
    ("[connections.k]\nkind = \"dynamics\"", "connections.k.kind", 2, "unknown kind \"dynamics\"; expected \"hubspot\", \"webhook\", \"pipedrive\", \"zoho\" or \"salesforce\""),
    ("[connections.k]\nkind = \"pipedrive\"\nsecret = \"s\"\n[connections.k.fields]\n\"visitor.email\" = \"Email\"", "connections.k.fields.\"visitor.email\"", 5, "the pipedrive adapter writes visitor.email itself"),
    ("[connections.k]\nkind = \"zoho\"\nsecret = \"s\"\nmodule = \"Deals\"", "connections.k.module", 4, "expected \"Contacts\" or \"Leads\""),
    ("[connections.k]\nkind = \"zoho\"\nsecret = \"s\"\naccounts_url = \"http://accounts.zoho.com\"", "connections.k.accounts_url", 4, "plain http"),
    ("[connections.k]\nkind = \"hubspot\"", "connections.k.secret", 1, "missing: secret ="),
    ("[connections.k]\nkind = \"hubspot\"\nsecret = \"s\"\nurl = \"https://x.example\"", "connections.k.url", 4, "unknown key \"url\" in a hubspot connection"),
    ("[connections.k]\nkind = \"hubspot\"\nsecret = \"\"", "connections.k.secret", 3, "must not be empty"),
    ("[connections.k]\nkind = \"hubspot\"\nsecret = \"s\"\nbase_url = \"api.hubapi.com\"", "connections.k.base_url", 4, "not an absolute URL"),
    ("[connections.k]\nkind = \"hubspot\"\nsecret = \"s\"\ntimeout_ms = 50", "connections.k.timeout_ms", 4, "50 is out of range: timeout_ms must be between 100 and 20000"),
    ("[connections.k]\nkind = \"webhook\"\nurl = \"https://x.example\"\ntimeout_ms = 20001", "connections.k.timeout_ms", 4, "must be between 100 and 20000"),
    // where a connection may point: https, public hosts, no credentials in the URL
    ("[connections.k]\nkind = \"webhook\"\nurl = \"http://hooks.example.com/x\"", "connections.k.url", 3, "is plain http"),
    ("[connections.k]\nkind = \"hubspot\"\nsecret = \"s\"\nbase_url = \"http://api.hubapi.com\"", "connections.k.base_url", 4, "is plain http"),
    ("[connections.k]\nkind = \"webhook\"\nurl = \"https://127.0.0.1:9001/2018-06-01/runtime\"", "connections.k.url", 3, "a loopback address"),
    ("[connections.k]\nkind = \"webhook\"\nurl = \"https://localhost/x\"", "connections.k.url", 3, "this machine (localhost)"),
    ("[connections.k]\nkind = \"webhook\"\nurl = \"https://169.254.169.254/latest/meta-data/\"", "connections.k.url", 3, "a link-local address"),
    ("[connections.k]\nkind = \"webhook\"\nurl = \"https://10.0.12.7/hook\"", "connections.k.url", 3, "a private address"),
    ("[connections.k]\nkind = \"webhook\"\nurl = \"https://[fd00::1]/hook\"", "connections.k.url", 3, "a private (unique local) address"),
    ("[connections.k]\nkind = \"webhook\"\nurl = \"https://[::ffff:192.168.0.1]/hook\"", "connections.k.url", 3, "a private address"),
    ("[connections.k]\nkind = \"webhook\"\nurl = \"https://user:pw@hooks.example.com/x\"", "connections.k.url", 3, "credentials in a URL"),
    ("[connections.k]\nkind = \"webhook\"\nurl = \"https://x.example\"\ntimeout_ms = \"10s\"", "connections.k.timeout_ms", 4, "expected an integer, found string"),
    ("[connections.k]\nkind = \"hubspot\"\nsecret = \"s\"\nschema_ttl_seconds = 86401", "connections.k.schema_ttl_seconds", 4, "must be between 0 and 86400"),
    ("[connections.k]\nkind = \"hubspot\"\nsecret = \"s\"\n[connections.k.fields]\n\"visitor.email\" = \"email\"", "connections.k.fields.\"visitor.email\"", 5, "the hubspot adapter writes visitor.email itself"),
    ("[connections.k]\nkind = \"hubspot\"\nsecret = \"s\"\n[connections.k.fields]\n\"visitor.phone\" = \"phone\"", "connections.k.fields.\"visitor.phone\"", 5, "writes visitor.phone itself"),
    ("[connections.k]\nkind = \"hubspot\"\nsecret = \"s\"\n[connections.k.fields]\n\"visitor.wa_id\" = \"wa\"", "connections.k.fields.\"visitor.wa_id\"", 5, "writes visitor.wa_id itself"),
    ("[connections.k]\nkind = \"webhook\"", "connections.k.url", 1, "missing: url ="),
    ("[connections.k]\nkind = \"webhook\"\nurl = \"/hook\"", "connections.k.url", 3, "\"/hook\" is not an absolute URL"),
    ("[connections.k]\nkind = \"webhook\"\nurl = \"ftp://x.example/\"", "connections.k.url", 3, "is not an http(s) URL"),
    ("[connections.k]\nkind = \"webhook\"\nurl = \"https://x.example\"\nauth = \"oauth\"", "connections.k.auth", 4, "unknown auth \"oauth\"; expected none, bearer, api_key or basic"),
    ("[connections.k]\nkind = \"webhook\"\nurl = \"https://x.example\"\nauth = \"bearer\"", "connections.k.secret", 1, "missing: auth = \"bearer\" needs secret"),
    ("[connections.k]\nkind = \"webhook\"\nurl = \"https://x.example\"\nauth = \"basic\"", "connections.k.secret", 1, "missing: auth = \"basic\" needs secret"),
    ("[connections.k]\nkind = \"webhook\"\nurl = \"https://x.example\"\nsecret = \"s\"", "connections.k.secret", 4, "secret is only used with auth"),
    ("[connections.k]\nkind = \"webhook\"\nurl = \"https://x.example\"\nauth = \"api_key\"\nsecret = \"s\"", "connections.k.api_key_header", 1, "missing: auth = \"api_key\" needs api_key_header"),
    ("[connections.k]\nkind = \"webhook\"\nurl = \"https://x.example\"\nauth = \"bearer\"\nsecret = \"s\"\napi_key_header = \"X-Key\"", "connections.k.api_key_header", 6, "only used with auth = \"api_key\""),
    ("[connections.k]\nkind = \"webhook\"\nurl = \"https://x.example\"\nauth = \"api_key\"\nsecret = \"s\"\napi_key_header = \"X API Key\"", "connections.k.api_key_header", 6, "\"X API Key\" is not a valid HTTP header name"),
    ("[connections.k]\nkind = \"webhook\"\nurl = \"https://x.example\"\nauth = \"api_key\"\nsecret = \"s\"\napi_key_header = \"Content-Type\"", "connections.k.api_key_header", 6, "leadbridge sets content-type itself"),
    ("[connections.k]\nkind = \"webhook\"\nurl = \"https://x.example\"\nheaders = { Authorization = \"Bearer x\" }", "connections.k.headers.Authorization", 4, "leadbridge sets authorization itself"),
    ("[connections.k]\nkind = \"webhook\"\nurl = \"https://x.example\"\nheaders = { \"content-type\" = \"text/plain\" }", "connections.k.headers.content-type", 4, "leadbridge sets content-type itself"),
    ("[connections.k]\nkind = \"webhook\"\nurl = \"https://x.example\"\nheaders = { \"Bad Header\" = \"x\" }", "connections.k.headers.\"Bad Header\"", 4, "not a valid HTTP header name"),
    ("[connections.k]\nkind = \"webhook\"\nurl = \"https://x.example\"\nheaders = { \"X-A\" = \"a\\nb\" }", "connections.k.headers.X-A", 4, "not a valid HTTP header value"),
    ("[connections.k]\nkind = \"webhook\"\nurl = \"https://x.example\"\nheaders = { \"X-A\" = \"a\", \"x-a\" = \"b\" }", "connections.k.headers.x-a", 4, "header x-a is given twice"),
    ("[connections.k]\nkind = \"webhook\"\nurl = \"https://x.example\"\nauth = \"api_key\"\nsecret = \"s\"\napi_key_header = \"X-Key\"\nheaders = { \"x-key\" = \"b\" }", "connections.k.headers.x-key", 7, "x-key is the api_key_header"),
    ("[connections.k]\nkind = \"zoho\"\nsecret = \"s\"\n[connections.k.fields]\n\"visitor.email\" = \"Email\"", "connections.k.fields.\"visitor.email\"", 5, "the zoho adapter writes visitor.email itself"),
    ("[connections.k]\nkind = \"salesforce\"\nsecret = \"s\"\n[connections.k.fields]\n\"visitor.phone\" = \"Phone\"", "connections.k.fields.\"visitor.phone\"", 5, "the salesforce adapter writes visitor.phone itself"),
    // the shared rate limiter
    ("[connections.k]\nkind = \"hubspot\"\nsecret = \"s\"\nrate_limit = { requests = 0, per_seconds = 10 }", "connections.k.rate_limit.requests", 4, "0 is out of range: requests must be between 1 and"),
    ("[connections.k]\nkind = \"hubspot\"\nsecret = \"s\"\nrate_limit = { requests = 10 }", "connections.k.rate_limit.per_seconds", 4, "missing: per_seconds = <the window, in seconds>"),
    ("[connections.k]\nkind = \"hubspot\"\nsecret = \"s\"\nrate_limit = { requests = 10, per_seconds = 2, burst = 3 }", "connections.k.rate_limit.burst", 4, "unknown key \"burst\" in rate_limit; allowed: requests, per_seconds"),
    ("[connections.k]\nkind = \"pipedrive\"\nsecret = \"s\"\nrate_share_percent = 0", "connections.k.rate_share_percent", 4, "0 is out of range: rate_share_percent must be between 1 and 100"),
    ("[connections.k]\nkind = \"webhook\"\nurl = \"https://x.example\"\nrate_limit = { requests = 10, per_seconds = 2 }", "connections.k.rate_limit", 4, "unknown key \"rate_limit\" in a webhook connection"),
    // field maps
    ("[connections.k]\nkind = \"webhook\"\nurl = \"https://x.example\"\n[connections.k.fields]\n\"visitor.emial\" = \"email\"", "connections.k.fields.\"visitor.emial\"", 5, "unknown field \"visitor.emial\"; known fields: event_id"),
    ("[connections.k]\nkind = \"webhook\"\nurl = \"https://x.example\"\n[connections.k.fields]\n\"visitor.email\" = \"\"", "connections.k.fields.\"visitor.email\"", 5, "must not be empty"),
    ("[connections.k]\nkind = \"webhook\"\nurl = \"https://x.example\"\n[connections.k.fields]\n\"visitor.email\" = \"eeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeee\"", "connections.k.fields.\"visitor.email\"", 5, "at most 100 characters"),
    ("[connections.k]\nkind = \"webhook\"\nurl = \"https://x.example\"\n[connections.k.fields]\n\"visitor.name\" = \"name\"\n\"visitor.company\" = \"name\"", "connections.k.fields.\"visitor.company\"", 6, "property \"name\" is already written by connections.k.fields.\"visitor.name\""),
    ("[connections.k]\nkind = \"webhook\"\nurl = \"https://x.example\"\n[connections.k.fields]\n\"visitor.name\" = \"name\"\n[connections.k.static]\nname = \"x\"", "connections.k.static.name", 7, "already written by connections.k.fields.\"visitor.name\""),
    ("[connections.k]\nkind = \"webhook\"\nurl = \"https://x.example\"\n[connections.k.fields]\n\"answers.*\" = \"answers\"", "connections.k.fields.\"answers.*\"", 5, "the answers.* target must contain {key}"),
    ("[connections.k]\nkind = \"webhook\"\nurl = \"https://x.example\"\n[connections.k.fields]\n\"answers.*\" = { property = \"a\" }", "connections.k.fields.\"answers.*\".property", 5, "must contain {key}"),
    ("[connections.k]\nkind = \"webhook\"\nurl = \"https://x.example\"\n[connections.k.fields]\n\"visitor.name\" = \"x_{key}\"", "connections.k.fields.\"visitor.name\"", 5, "{key} is only replaced in the answers.* target"),
    ("[connections.k]\nkind = \"webhook\"\nurl = \"https://x.example\"\n[connections.k.fields]\n\"visitor.name\" = { property = \"n\", truncate = 0 }", "connections.k.fields.\"visitor.name\".truncate", 5, "truncate must be at least 1"),
    ("[connections.k]\nkind = \"webhook\"\nurl = \"https://x.example\"\n[connections.k.fields]\n\"visitor.name\" = { property = \"n\", case = \"camel\" }", "connections.k.fields.\"visitor.name\".case", 5, "unknown case \"camel\"; expected lower, upper or title"),
    ("[connections.k]\nkind = \"webhook\"\nurl = \"https://x.example\"\n[connections.k.fields]\n\"visitor.name\" = { truncate = 5 }", "connections.k.fields.\"visitor.name\".property", 5, "missing: property ="),
    ("[connections.k]\nkind = \"webhook\"\nurl = \"https://x.example\"\n[connections.k.fields]\n\"visitor.name\" = { property = \"n\", trunc = 5 }", "connections.k.fields.\"visitor.name\".trunc", 5, "unknown key \"trunc\" in the field map of \"visitor.name\"; allowed: property, truncate, case, values"),
    ("[connections.k]\nkind = \"webhook\"\nurl = \"https://x.example\"\n[connections.k.fields]\n\"visitor.name\" = 3", "connections.k.fields.\"visitor.name\"", 5, "expected a property name or a table { property = … }, found integer"),
    ("[connections.k]\nkind = \"webhook\"\nurl = \"https://x.example\"\n[connections.k.static]\nsource = \"x\"", "connections.k.static", 4, "static values need a [connections.k.fields] table"),
    ("[connections.k]\nkind = \"webhook\"\nurl = \"https://x.example\"\n[connections.k.fields]\n[connections.k.static]\nsource = [\"x\"]", "connections.k.static.source", 6, "expected a string, integer or boolean, found array"),
    // routes
    ("[[routes]]\nbot_id = \"bad bot!\"\nconnections = [\"crm\"]", "routes[1].bot_id", 2, "bot_id may contain only letters, digits"),
    ("[[routes]]\nbot_id = \"*\"\nconnections = [\"crm\"]", "routes[1].bot_id", 2, "the \"*\" route is already defined (routes[0], line 12)"),
    ("[[routes]]\nconnections = [\"crm\"]", "routes[1].bot_id", 1, "missing: bot_id ="),
    ("[[routes]]\nbot_id = \"b\"", "routes[1].connections", 1, "missing: connections = [\"<name>\", …]; defined: crm, hook"),
    ("[[routes]]\nbot_id = \"b\"\nconnections = []", "routes[1].connections", 3, "name at least one connection; defined: crm, hook"),
    ("[[routes]]\nbot_id = \"b\"\nconnections = [\"crm\", \"hubsopt\"]", "routes[1].connections[1]", 3, "unknown connection \"hubsopt\"; defined: crm, hook"),
    ("[[routes]]\nbot_id = \"b\"\nconnections = [\"crm\", \"crm\"]", "routes[1].connections[1]", 3, "connection \"crm\" is listed twice"),
    ("[[routes]]\nbot_id = \"b\"\nconnections = \"crm\"", "routes[1].connections", 3, "expected an array, found string"),
    ("[[routes]]\nbot_id = \"b\"\nconnections = [\"crm\"]\nobject = \"deal\"", "routes[1].object", 4, "unknown object \"deal\"; expected \"contact\" or \"lead\""),
    ("[[routes]]\nbot_id = \"b\"\nconnections = [\"crm\"]\nlane = \"slow\"", "routes[1].lane", 4, "unknown lane \"slow\"; expected \"realtime\" or \"bulk\""),
    ("[[routes]]\nbot_id = \"b\"\nconnections = [\"crm\"]\nlane = 1", "routes[1].lane", 4, "expected a string, found integer"),
    ("[[routes]]\nbot_id = \"b\"\nconnections = [\"crm\"]\nevent_lanes = { \"lead.deleted\" = \"bulk\" }", "routes[1].event_lanes.\"lead.deleted\"", 4, "unknown event type \"lead.deleted\"; expected one of lead.created"),
    ("[[routes]]\nbot_id = \"b\"\nconnections = [\"crm\"]\nevent_lanes = { \"lead.updated\" = \"later\" }", "routes[1].event_lanes.\"lead.updated\"", 4, "unknown lane \"later\""),
    ("[[routes]]\nbot_id = \"b\"\nconnections = [\"crm\"]\nevent_lanes = \"bulk\"", "routes[1].event_lanes", 4, "expected a table, found string"),
    ("[[routes]]\nbot_id = \"b\"\nconnections = [\"hook\", \"crm\"]\nobject = \"lead\"", "routes[1].object", 4, "hubspot connections write contacts (crm is hubspot)"),
    ("[[routes]]\nbot_id = \"b\"\nconnections = [\"crm\"]\nphone_region = \"XX\"", "routes[1].phone_region", 4, "not an ISO 3166-1 alpha-2"),
    ("[[routes]]\nbot_id = \"b\"\nconnections = [\"crm\"]\nunknown_country = \"keep\"", "routes[1].unknown_country", 4, "expected \"reject\" or \"pass_through\""),
    ("[[routes]]\nbot_id = \"b\"\nconnections = [\"crm\"]\nrequired = [\"answers.*\"]", "routes[1].required[0]", 4, "answers.* cannot be required"),
    ("[[routes]]\nbot_id = \"b\"\nconnections = [\"crm\"]\nrequired = [\"visitor.email\", \"visitor.mail\"]", "routes[1].required[1]", 4, "unknown field \"visitor.mail\""),
    ("[[routes]]\nbot_id = \"b\"\nconnections = [\"crm\"]\nrequired = [\"visitor.email\", \"visitor.email\"]", "routes[1].required[1]", 4, "visitor.email is listed twice"),
    ("[[routes]]\nbot_id = \"b\"\nconnections = [\"crm\"]\npriority = 1", "routes[1].priority", 4, "unknown key \"priority\" in a [[routes]] entry; allowed: bot_id, connections, object, lead_source, required, lane, event_lanes, enums, require_consent"),
    ("[[routes]]\nbot_id = \"b\"\nconnections = [\"crm\"]\nlead_source = \" \"", "routes[1].lead_source", 4, "must not be empty"),
    // enums
    ("[enums.\"visitor.email\"]\nallowed = [\"a\"]", "enums.\"visitor.email\"", 1, "visitor.email cannot be enumerated; enumerable fields: answers.<key>, visitor.company, intent.primary"),
    ("[enums.\"answers.*\"]\nallowed = [\"a\"]", "enums.\"answers.*\"", 1, "answers.* cannot be enumerated"),
    ("[enums.\"answers.size\"]\nallowed = []", "enums.\"answers.size\".allowed", 2, "must list at least one value"),
    ("[enums.\"answers.size\"]\nmap = { a = \"b\" }", "enums.\"answers.size\".allowed", 1, "missing: list the values"),
    ("[enums.\"answers.size\"]\nallowed = [\"small\", \"large\"]\nmap = { tiny = \"smal\" }", "enums.\"answers.size\".map.tiny", 3, "\"smal\" is not an allowed value; allowed: small, large"),
    ("[enums.\"answers.size\"]\nallowed = [\"small\", \"Small\"]", "enums.\"answers.size\".allowed[1]", 2, "\"Small\" is listed twice"),
    ("[enums.\"answers.size\"]\nallowed = [\"small\"]\nmap = { tiny = \"small\", TINY = \"small\" }", "enums.\"answers.size\".map.TINY", 3, "\"TINY\" is mapped twice"),
    ("[enums.\"answers.size\"]\nallowed = [\"small\"]\nvalues = [\"x\"]", "enums.\"answers.size\".values", 3, "unknown key \"values\" in [enums.\"answers.size\"]; allowed: allowed, map"),
    ("[enums.\"context.utm_medium\"]\nallowed = [\"cpc\"]\n[enums.\"intent.nope\"]\nallowed = [\"x\"]", "enums.\"intent.nope\"", 3, "unknown field \"intent.nope\""),
];

#[test]
fn every_validation_rule_names_its_key_line_and_problem() {
    let base_lines = BASE.lines().count();
    for (snippet, key, line, message) in CASES {
        let text = format!("{BASE}{snippet}\n");
        let errs = errors(&text);
        assert_eq!(
            errs.len(),
            1,
            "one error expected for:\n{snippet}\ngot:\n{}",
            ConfigErrors(errs.clone())
        );
        let e = &errs[0];
        assert_eq!(e.key, *key, "key, for:\n{snippet}\n{e}");
        assert!(
            e.message.contains(message),
            "message, for:\n{snippet}\nwanted {message:?} in:\n{e}"
        );
        assert_eq!(e.line, base_lines + line, "line, for:\n{snippet}\n{e}");
        assert!(e.column >= 1);
    }
}

#[test]
fn unknown_top_level_keys_are_named_with_what_is_allowed() {
    let e = errors(&BASE.replace("version = 1\n", "version = 1\ncolour = \"red\"\n"));
    assert_eq!(e.len(), 1);
    assert_eq!(
        e[0].to_string(),
        "line 2, column 1: colour: unknown key \"colour\" in the top level; allowed: version, defaults, enums, connections, routes, sources"
    );
}

#[test]
fn the_version_is_required_and_must_be_1() {
    let no_version = BASE.replace("version = 1\n", "");
    let e = errors(&no_version);
    assert_eq!(
        (e[0].key.as_str(), e[0].line, e[0].column),
        ("version", 1, 1)
    );
    assert!(e[0].message.contains("version = 1"), "{}", e[0]);

    let e = errors(&BASE.replace("version = 1", "version = 2"));
    assert_eq!(
        (e[0].key.as_str(), e[0].line, e[0].column),
        ("version", 1, 11)
    );
    assert!(e[0].message.contains("unsupported version 2"), "{}", e[0]);

    let e = errors(&BASE.replace("version = 1", "version = \"1\""));
    assert!(e[0].message.contains("expected an integer, found string"));
}

#[test]
fn a_file_without_routes_is_refused() {
    let text = BASE.split("[[routes]]").next().unwrap();
    let e = errors(text);
    assert_eq!(e.len(), 1, "{}", ConfigErrors(e.clone()));
    assert_eq!(e[0].key, "routes");
    assert!(e[0].message.contains("add at least one [[routes]]"));
}

#[test]
fn a_connection_no_route_uses_is_a_warning() {
    let text =
        format!("{BASE}\n[connections.spare]\nkind = \"webhook\"\nurl = \"https://x.example\"\n");
    let c = parse_ok(&text);
    assert_eq!(
        c.warnings,
        [format!(
            "line {}, column 14: connections.spare: no route uses this connection: it receives nothing",
            BASE.lines().count() + 2
        )]
    );
}

#[test]
fn an_error_on_line_7_says_line_7_and_its_column() {
    let text = "version = 1\n\n[connections.crm]\nkind = \"hubspot\"\nsecret = \"lb/hs\"\n\ntimeout_ms =    5\n\n[[routes]]\nbot_id = \"*\"\nconnections = [\"crm\"]\n";
    let e = errors(text);
    assert_eq!(e.len(), 1);
    assert_eq!(
        e[0].to_string(),
        "line 7, column 17: connections.crm.timeout_ms: 5 is out of range: timeout_ms must be between 100 and 20000"
    );
}

#[test]
fn all_errors_are_collected_in_file_order() {
    let text = r#"version = 1
colour = "red"

[defaults]
phone_region = "Atlantis"

[connections.crm]
kind = "hubspot"

[connections.hook]
kind = "webhook"
url = "https://example.com"
auth = "api_key"
secret = "lb/hook"

[[routes]]
bot_id = "sales"
connections = ["crm", "hubsopt"]
object = "lead"

[enums."visitor.email"]
allowed = []
"#;
    let e = errors(text);
    let got: Vec<(usize, &str)> = e.iter().map(|e| (e.line, e.key.as_str())).collect();
    assert_eq!(
        got,
        [
            (2, "colour"),
            (5, "defaults.phone_region"),
            (7, "connections.crm.secret"),
            (10, "connections.hook.api_key_header"),
            (18, "routes[0].connections[1]"),
            (19, "routes[0].object"),
            (21, "enums.\"visitor.email\""),
            (22, "enums.\"visitor.email\".allowed"),
        ],
        "{}",
        ConfigErrors(e.clone())
    );
    let unknown = &e[4];
    assert_eq!(
        unknown.to_string(),
        "line 18, column 23: routes[0].connections[1]: unknown connection \"hubsopt\"; defined: crm, hook"
    );
}

#[test]
fn toml_syntax_errors_have_positions_too() {
    let text = "version = 1\n\n[connections.crm]\nkind = \"hubspot\nsecret = \"x\"\n";
    let e = errors(text);
    assert_eq!(e[0].key, "syntax");
    assert_eq!(e[0].line, 4, "{}", e[0]);

    let dup = "version = 1\nversion = 1\n";
    let e = errors(dup);
    assert_eq!((e[0].key.as_str(), e[0].line), ("syntax", 2), "{}", e[0]);
}

#[test]
fn webhook_auth_variants() {
    let conn = |extra: &str| {
        let text = format!(
            "version = 1\n[connections.w]\nkind = \"webhook\"\nurl = \"https://hooks.example.com/x\"\n{extra}\n[[routes]]\nbot_id = \"*\"\nconnections = [\"w\"]\n"
        );
        match parse_ok(&text).connection("w").unwrap().kind.clone() {
            ConnectionKind::Webhook(w) => w.auth,
            other => panic!("{other:?}"),
        }
    };
    assert_eq!(conn("auth = \"none\""), WebhookAuth::None);
    assert_eq!(
        conn("auth = \"basic\"\nsecret = \"lb/b\""),
        WebhookAuth::Basic {
            secret: "lb/b".into()
        }
    );
    let api = conn("auth = \"api_key\"\nsecret = \"lb/k\"\napi_key_header = \"X-API-Key\"");
    assert_eq!(
        api,
        WebhookAuth::ApiKey {
            header: "X-API-Key".into(),
            secret: "lb/k".into()
        }
    );
    assert_eq!(api.secret(), Some("lb/k"));
}

#[test]
fn static_values_may_be_numbers_and_booleans_and_fields_may_be_empty() {
    let text = format!(
        "{BASE}\n[connections.hook.fields]\n[connections.hook.static]\npriority = 1\nhot = true\n"
    );
    let c = parse_ok(&text);
    let m = c.connection("hook").unwrap().mapping.clone().unwrap();
    assert!(m.fields.is_empty());
    assert_eq!(m.statics["priority"], "1");
    assert_eq!(m.statics["hot"], "true");
}

#[test]
fn route_for_prefers_the_bots_own_route_then_the_star_route() {
    let text = format!("{BASE}\n[[routes]]\nbot_id = \"sales-bot\"\nconnections = [\"hook\"]\n");
    let c = parse_ok(&text);
    assert_eq!(c.route_for("sales-bot").unwrap().connections, ["hook"]);
    assert_eq!(c.route_for("other-bot").unwrap().bot_id, None);
    assert_eq!(c.route_for("other-bot").unwrap().bot_label(), "*");

    let only_sales = parse_ok(&BASE.replace("bot_id = \"*\"", "bot_id = \"sales-bot\""));
    assert!(only_sales.route_for("sales-bot").is_some());
    assert!(only_sales.route_for("other-bot").is_none());
    assert!(only_sales.connection("crm").is_some());
    assert!(only_sales.connection("nope").is_none());
}

#[test]
fn a_route_picks_the_lane_per_event_type_then_its_own_then_real_time() {
    use lb_domain::{EventType, Lane};
    let c = parse_ok(&format!(
        "{BASE}\n[[routes]]\nbot_id = \"backfill\"\nconnections = [\"crm\"]\nlane = \"bulk\"\n\
         event_lanes = {{ \"lead.qualified\" = \"realtime\" }}\n\n\
         [[routes]]\nbot_id = \"chat\"\nconnections = [\"crm\"]\n\
         event_lanes = {{ \"lead.updated\" = \"bulk\", \"conversation.ended\" = \"bulk\" }}\n"
    ));
    let backfill = c.route_for("backfill").unwrap();
    assert_eq!(backfill.lane_for(EventType::LeadCreated), Lane::Bulk);
    assert_eq!(backfill.lane_for(EventType::LeadQualified), Lane::Realtime);
    let chat = c.route_for("chat").unwrap();
    assert_eq!(chat.lane_for(EventType::LeadCreated), Lane::Realtime);
    assert_eq!(chat.lane_for(EventType::LeadUpdated), Lane::Bulk);
    assert_eq!(chat.lane_for(EventType::ConversationEnded), Lane::Bulk);
    let star = c.route_for("other").unwrap();
    assert_eq!(star.lane_for(EventType::LeadUpdated), Lane::Realtime);
}

#[test]
fn a_connection_reads_its_rate_limit_and_share() {
    let c = parse_ok(&BASE.replace(
        "secret = \"lb/hubspot\"\n",
        "secret = \"lb/hubspot\"\nrate_limit = { requests = 100, per_seconds = 10 }\nrate_share_percent = 60\n",
    ));
    assert_eq!(
        c.connection("crm").unwrap().throttling,
        Throttling {
            limit: Some(CallLimit {
                requests: 100,
                per: Duration::from_secs(10)
            }),
            share_percent: 60
        }
    );
    assert_eq!(
        c.connection("hook").unwrap().throttling,
        Throttling::default(),
        "no limit of its own: the CRM's announced one, at 100%"
    );
}

#[test]
fn deliveries_follow_the_routes_connection_order() {
    let c = parse_ok(SPEC);
    let r = c.route_for("sales-bot").unwrap();
    let want = |c: &str| Delivery {
        connection: c.into(),
        lead_source: Some("Chatbot – sales site".into()),
        object: "contact".into(),
        split_name: Some(false), // the sales-bot route overrides [defaults]
    };
    assert_eq!(r.deliveries(), [want("hubspot"), want("zapier")]);

    let reversed = parse_ok(&BASE.replace("[\"crm\", \"hook\"]", "[\"hook\", \"crm\"]"));
    let d = reversed.route_for("x").unwrap().deliveries();
    assert_eq!(
        d.iter().map(|d| d.connection.as_str()).collect::<Vec<_>>(),
        ["hook", "crm"]
    );
    assert_eq!(d[0].lead_source, None);
    assert_eq!(d[0].object, "contact");
}

fn enums_config() -> Config {
    parse_ok(&format!(
        "{BASE}\n[enums.\"answers.company_size\"]\nallowed = [\"1-10\", \"11-50\", \"201+\"]\nmap = {{ \"just me\" = \"1-10\", \"Enterprise\" = \"201+\" }}\n\n[enums.\"context.utm_medium\"]\nallowed = [\"cpc\", \"email\"]\nmap = {{ ppc = \"cpc\" }}\n\n[enums.\"visitor.company\"]\nallowed = [\"Acme\"]\n\n[enums.\"intent.primary\"]\nallowed = [\"demo\"]\n\n[enums.\"transcript.sentiment\"]\nallowed = [\"positive\", \"negative\"]\n"
    ))
}

#[test]
fn enums_map_then_allow_case_insensitively() {
    let c = enums_config();
    let mut e = event(serde_json::json!({
        "answers": { "company_size": "  JUST ME ", "other": "anything" },
        "context": { "utm_medium": "PPC" },
        "visitor": { "email": "ann@example.com", "company": "acme" },
        "intent": { "primary": "Demo" },
        "transcript": { "sentiment": "positive" }
    }));
    assert_eq!(
        c.apply_enums_for(c.route_for("any-bot").unwrap(), &mut e),
        []
    );
    assert_eq!(e.answers["company_size"], "1-10");
    assert_eq!(e.answers["other"], "anything");
    assert_eq!(e.context.utm_medium.as_deref(), Some("cpc"));
    assert_eq!(e.visitor.company.as_deref(), Some("Acme"));
    assert_eq!(e.intent.as_ref().unwrap().primary.as_deref(), Some("demo"));

    let mut e = event(serde_json::json!({ "answers": { "company_size": "enterprise" } }));
    assert_eq!(
        c.apply_enums_for(c.route_for("any-bot").unwrap(), &mut e),
        []
    );
    assert_eq!(e.answers["company_size"], "201+");
    let mut e = event(serde_json::json!({ "answers": { "company_size": "11-50" } }));
    assert_eq!(
        c.apply_enums_for(c.route_for("any-bot").unwrap(), &mut e),
        []
    );
    assert_eq!(e.answers["company_size"], "11-50");
}

#[test]
fn enums_refuse_a_value_outside_the_allowlist_and_ignore_absent_fields() {
    let c = enums_config();
    let mut e = event(serde_json::json!({
        "answers": { "company_size": "huge" },
        "transcript": { "sentiment": "meh" }
    }));
    let errs = c.apply_enums_for(c.route_for("any-bot").unwrap(), &mut e);
    assert_eq!(errs.len(), 2);
    assert_eq!(errs[0].field, "answers.company_size");
    assert_eq!(errs[0].code, "value_not_allowed");
    assert_eq!(
        errs[0].message,
        "answers.company_size is not one of: 1-10, 11-50, 201+"
    );
    assert_eq!(errs[1].field, "transcript.sentiment");
    assert_eq!(e.answers["company_size"], "huge", "left as sent");

    let mut bare = event(serde_json::json!({}));
    let before = bare.clone();
    assert_eq!(
        c.apply_enums_for(c.route_for("any-bot").unwrap(), &mut bare),
        []
    );
    assert_eq!(bare, before);
}

#[test]
fn a_routes_own_enums_replace_the_top_level_rule_of_their_field_for_its_bots() {
    let c = parse_ok(&format!(
        "{BASE}\n[[routes]]\nbot_id = \"eu-bot\"\nconnections = [\"crm\"]\n\n\
         [routes.enums.\"answers.company_size\"]\nallowed = [\"klein\", \"gross\"]\nmap = {{ small = \"klein\" }}\n\n\
         [enums.\"answers.company_size\"]\nallowed = [\"small\", \"large\"]\n\n\
         [enums.\"context.utm_medium\"]\nallowed = [\"cpc\"]\n"
    ));
    let eu = c.route_for("eu-bot").unwrap();
    assert_eq!(eu.enums.len(), 1);
    let mut e = event(serde_json::json!({
        "answers": { "company_size": "Small" },
        "context": { "utm_medium": "CPC" }
    }));
    assert_eq!(c.apply_enums_for(eu, &mut e), []);
    assert_eq!(e.answers["company_size"], "klein", "the route's map");
    assert_eq!(
        e.context.utm_medium.as_deref(),
        Some("cpc"),
        "the top level's"
    );
    let mut e = event(serde_json::json!({ "answers": { "company_size": "large" } }));
    let errs = c.apply_enums_for(eu, &mut e);
    assert_eq!(errs.len(), 1);
    assert_eq!(
        errs[0].message,
        "answers.company_size is not one of: klein, gross"
    );

    // Another bot keeps the top-level rule.
    let other = c.route_for("any-bot").unwrap();
    assert!(other.enums.is_empty());
    let mut e = event(serde_json::json!({ "answers": { "company_size": "large" } }));
    assert_eq!(c.apply_enums_for(other, &mut e), []);
}

#[test]
fn a_routes_enums_are_checked_like_the_top_level_ones() {
    let errs = errors(&format!(
        "{BASE}\n[routes.enums.\"visitor.email\"]\nallowed = [\"a\"]\n"
    ));
    assert_eq!(errs.len(), 1, "{errs:?}");
    assert_eq!(errs[0].key, "routes[0].enums.\"visitor.email\"", "{errs:?}");
    assert!(errs[0].message.contains("cannot be enumerated"), "{errs:?}");
}

#[test]
fn check_requires_consent_when_the_policy_says_so() {
    let c = parse_ok(SPEC);
    let r = c.route_for("sales-bot").unwrap();
    let no_consent = event(serde_json::json!({ "answers": { "company_size": "1-10" } }));
    let errs = r.check(&no_consent);
    assert_eq!(errs.len(), 1);
    assert_eq!(errs[0].field, "consent.given_at");
    assert_eq!(errs[0].code, "consent_required");
    assert_eq!(
        errs[0].message,
        "this bot requires the visitor's consent: send consent.given_at (and text_version, purpose)"
    );

    let consented = event(serde_json::json!({
        "answers": { "company_size": "1-10" },
        "consent": { "given_at": "2026-05-01T09:59:00Z", "text_version": "v3" }
    }));
    assert_eq!(r.check(&consented), []);
}

#[test]
fn check_lists_every_missing_required_field() {
    let text = format!(
        "{BASE}\n[[routes]]\nbot_id = \"b\"\nconnections = [\"crm\"]\nrequired = [\"visitor.first_name\", \"visitor.phone\", \"answers.budget\", \"consent.given_at\"]\nrequire_consent = true\n"
    );
    let c = parse_ok(&text);
    let r = c.route_for("b").unwrap();
    let e = event(serde_json::json!({
        "bot_id": "b",
        "visitor": { "email": "ann@example.com", "name": "Ann Lee" },
        "answers": { "budget": "  " }
    }));
    let errs = r.check(&e);
    let got: Vec<(&str, &str)> = errs
        .iter()
        .map(|e| (e.field.as_str(), e.code.as_str()))
        .collect();
    // first_name comes from the full name (split_name); consent is said once.
    assert_eq!(
        got,
        [
            ("visitor.phone", "required"),
            ("answers.budget", "required"),
            ("consent.given_at", "consent_required"),
        ]
    );
    assert_eq!(errs[0].message, "visitor.phone is required for this bot");

    // The "*" route of BASE asks nothing.
    assert_eq!(c.route_for("other").unwrap().check(&e), []);
}

#[test]
fn load_prefixes_every_error_with_the_path() {
    let dir = std::env::temp_dir().join(format!("lb-config-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let bad = dir.join("bad.toml");
    std::fs::write(
        &bad,
        "version = 1\n\n[[routes]]\nbot_id = \"*\"\nconnections = [\"hubsopt\"]\nobject = \"x\"\n",
    )
    .unwrap();
    let msg = Config::load(&bad).unwrap_err();
    let p = bad.display();
    assert_eq!(
        msg,
        format!(
            "{p}: line 5, column 16: routes[0].connections[0]: unknown connection \"hubsopt\"; defined: none (add a [connections.<name>] table)\n{p}: line 6, column 10: routes[0].object: unknown object \"x\"; expected \"contact\" or \"lead\""
        )
    );

    let good = dir.join("good.toml");
    std::fs::write(&good, BASE).unwrap();
    assert_eq!(Config::load(&good).unwrap().routes.len(), 1);

    let missing = Config::load(&dir.join("nope.toml")).unwrap_err();
    assert!(missing.starts_with(&format!("{}: ", dir.join("nope.toml").display())));

    // from_env: the only test that touches LEADBRIDGE_CONFIG.
    std::env::remove_var(CONFIG_ENV);
    assert_eq!(Config::from_env(), Ok(None));
    std::env::set_var(CONFIG_ENV, "");
    assert_eq!(Config::from_env(), Ok(None));
    std::env::set_var(CONFIG_ENV, &good);
    assert_eq!(Config::from_env().unwrap().unwrap().routes.len(), 1);
    std::env::set_var(CONFIG_ENV, &bad);
    assert!(Config::from_env().unwrap_err().starts_with(&p.to_string()));
    std::env::remove_var(CONFIG_ENV);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn the_documented_example_is_the_example_file_and_parses() {
    let doc = include_str!("../../../docs/configuration.md");
    let section = doc
        .split("## Configuration file")
        .nth(1)
        .expect("docs/configuration.md's configuration file section");
    let block = section
        .split("```toml\n")
        .nth(1)
        .and_then(|b| b.split("\n```").next())
        .expect("a toml block");
    let inline = parse_ok(block);
    assert_eq!(inline, parse_ok(EXAMPLE));
}

#[test]
fn a_local_run_may_point_connections_at_this_machine_over_http_and_a_deployment_may_not() {
    let text = "version = 1\n[connections.sim]\nkind = \"webhook\"\nurl = \"http://127.0.0.1:8082/hook\"\n\
                [connections.hs]\nkind = \"hubspot\"\nsecret = \"s\"\nbase_url = \"http://localhost:8081\"\n\
                [[routes]]\nbot_id = \"*\"\nconnections = [\"sim\", \"hs\"]\n";
    let local = Config::parse_local(text).expect("a local config");
    assert!(local.connections.values().all(|c| c.allow_internal));
    // still no private networks or plain http elsewhere, even locally
    assert!(Config::parse_local(&text.replace("127.0.0.1:8082", "10.0.0.1")).is_err());
    assert!(Config::parse_local(&text.replace("127.0.0.1:8082", "hooks.example.com")).is_err());
    let errors = Config::parse(text).expect_err("not for a deployment");
    assert_eq!(errors.iter().count(), 2, "{errors}");
    let deployed = Config::parse(
        &text
            .replace("http://127.0.0.1:8082", "https://hooks.example.com")
            .replace("http://localhost:8081", "https://api.hubapi.com"),
    )
    .expect("https on public hosts");
    assert!(deployed.connections.values().all(|c| !c.allow_internal));
}

#[test]
fn sources_are_read_with_their_kind_bot_secret_and_options() {
    let cfg = parse_ok(&format!(
        r#"{BASE}
[sources.whatsapp]
kind = "whatsapp"
bot_id = "bot_wa"
secret = "lb/sources/whatsapp"

[sources.twilio-sms]
kind = "twilio"
bot_id = "bot_sms"
secret = "lb/sources/twilio"
public_url = "https://leads.example.com/v1/sources/twilio-sms"

[sources.typebot]
kind = "custom_json"
bot_id = "bot_typebot"
secret = "lb/sources/typebot"
token_header = "X-Api-Key"

[sources.typebot.fields]
"visitor.email" = "/email"
"visitor.name" = "/contact/name"
"answers.*" = "/answers"
"#
    ));
    let wa = &cfg.sources["whatsapp"];
    assert_eq!(
        (wa.kind, wa.bot_id.as_str(), wa.secret.as_str()),
        ("whatsapp", "bot_wa", "lb/sources/whatsapp")
    );
    assert_eq!(
        cfg.sources["twilio-sms"].options.extra["public_url"],
        "https://leads.example.com/v1/sources/twilio-sms"
    );
    let tb = &cfg.sources["typebot"].options;
    assert_eq!(tb.token_header.as_deref(), Some("x-api-key"));
    assert_eq!(
        tb.fields,
        vec![
            ("visitor.email".to_string(), "/email".to_string()),
            ("visitor.name".to_string(), "/contact/name".to_string()),
            ("answers.*".to_string(), "/answers".to_string()),
        ]
    );
}

#[test]
fn a_bad_source_is_reported_at_its_line_with_what_is_allowed() {
    let cases: &[(&str, &str, &str)] = &[
        (
            "[sources.x]\nkind = \"wechat\"\nbot_id = \"b\"\nsecret = \"s\"\n",
            "sources.x.kind",
            "unknown source kind \"wechat\"; expected one of",
        ),
        (
            "[sources.x]\nkind = \"whatsapp\"\nsecret = \"s\"\n",
            "sources.x.bot_id",
            "missing: bot_id",
        ),
        (
            "[sources.x]\nkind = \"whatsapp\"\nbot_id = \"b\"\n",
            "sources.x.secret",
            "missing: secret",
        ),
        (
            "[sources.x]\nkind = \"whatsapp\"\nbot_id = \"b\"\nsecret = \"s\"\nfields = {}\n",
            "sources.x.fields",
            "unknown key \"fields\"",
        ),
        (
            "[sources.x]\nkind = \"custom_json\"\nbot_id = \"b\"\nsecret = \"s\"\n",
            "sources.x.fields",
            "missing: a [sources.<name>.fields] table",
        ),
        (
            "[sources.x]\nkind = \"custom_json\"\nbot_id = \"b\"\nsecret = \"s\"\n[sources.x.fields]\n\"visitor.mail\" = \"/email\"\n",
            "sources.x.fields.\"visitor.mail\"",
            "is not a canonical field",
        ),
        (
            "[sources.x]\nkind = \"custom_json\"\nbot_id = \"b\"\nsecret = \"s\"\n[sources.x.fields]\n\"visitor.email\" = \"email\"\n",
            "sources.x.fields.\"visitor.email\"",
            "is not a JSON pointer",
        ),
        (
            "[sources.Bad]\nkind = \"whatsapp\"\nbot_id = \"b\"\nsecret = \"s\"\n",
            "sources.Bad",
            "invalid source name",
        ),
    ];
    for (snippet, key, message) in cases {
        let text = format!("{BASE}\n{snippet}");
        let errs = errors(&text);
        assert!(
            errs.iter()
                .any(|e| e.key == *key && e.message.contains(message)),
            "wanted {key}: {message:?} for:\n{snippet}\ngot:\n{}",
            errs.iter()
                .map(|e| e.to_string())
                .collect::<Vec<_>>()
                .join("\n")
        );
        assert!(
            errs.iter().all(|e| e.line > BASE.lines().count()),
            "{errs:?}"
        );
    }
}

#[test]
fn a_source_needs_a_route_for_its_bot() {
    let text = BASE.replace("bot_id = \"*\"", "bot_id = \"sales-bot\"")
        + "\n[sources.wa]\nkind = \"whatsapp\"\nbot_id = \"bot_wa\"\nsecret = \"s\"\n";
    let errs = errors(&text);
    assert_eq!(errs.len(), 1, "{errs:?}");
    assert_eq!(errs[0].key, "sources.wa.bot_id");
    assert!(
        errs[0].message.contains("no route for bot \"bot_wa\""),
        "{}",
        errs[0]
    );
}

#[test]
fn a_salesforce_connection_names_its_default_opportunity_stage() {
    let c = parse_ok(
        "version = 1\n[connections.sf]\nkind = \"salesforce\"\nsecret = \"s\"\nobject = \"Contact\"\n\
         deal_stage = \"Qualification\"\n[connections.sf2]\nkind = \"salesforce\"\nsecret = \"s\"\n\
         [[routes]]\nbot_id = \"*\"\nconnections = [\"sf\", \"sf2\"]\n",
    );
    let stage = |name: &str| match &c.connection(name).expect("connection").kind {
        crate::ConnectionKind::Salesforce(s) => s.deal_stage.clone(),
        other => panic!("{other:?}"),
    };
    assert_eq!(stage("sf").as_deref(), Some("Qualification"));
    assert_eq!(stage("sf2"), None, "the adapter's default");
}
