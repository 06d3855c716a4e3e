//! `docs/schema/config.schema.json` held to the config parser: every file the
//! repository ships and a file using every key validate against it and parse;
//! and what the schema can express that the parser refuses, it refuses too.

use serde_json::Value;

fn schema() -> jsonschema::Validator {
    let text = include_str!("../../docs/schema/config.schema.json");
    let schema: Value = serde_json::from_str(text).expect("the schema is JSON");
    jsonschema::validator_for(&schema).expect("the schema compiles")
}

/// The TOML file as the JSON the schema describes.
fn json_of(toml_text: &str) -> Value {
    let v: toml::Value = toml::from_str(toml_text).expect("TOML");
    serde_json::to_value(v).expect("JSON")
}

fn schema_errors(v: &jsonschema::Validator, text: &str) -> Vec<String> {
    v.iter_errors(&json_of(text))
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect()
}

/// Uses every key the format has, each kind of connection and source.
const EVERY_KEY: &str = r#"
version = 1

[defaults]
require_consent = false
unknown_country = "pass_through"
phone_region = "GB"
split_name = true

[enums."answers.size"]
allowed = ["small", "large"]
map = { "tiny" = "small" }

[connections.hs]
kind = "hubspot"
secret = "lb/hs"
base_url = "https://api.hubapi.com"
timeout_ms = 5000
schema_ttl_seconds = 60
deal_pipeline = "default"
deal_stage = "qualifiedtobuy"
rate_limit = { requests = 100, per_seconds = 10 }
rate_share_percent = 80

[connections.hs.fields]
"visitor.first_name" = "firstname"
"visitor.company" = { property = "company", truncate = 100, case = "title", values = { "Acme" = "ACME" } }
"answers.*" = "lb_{key}"

[connections.hs.static]
hs_lead_status = "NEW"
score = 3
hot = true

[connections.hook]
kind = "webhook"
url = "https://hooks.example.com/leads"
auth = "api_key"
secret = "lb/hook"
api_key_header = "X-Key"
headers = { "X-Source" = "leadbridge" }
timeout_ms = 3000

[connections.hook.fields]
"visitor.email" = "email"

[connections.pd]
kind = "pipedrive"
secret = "lb/pd"
base_url = "https://api.pipedrive.com"
timeout_ms = 8000
rate_limit = { requests = 80, per_seconds = 2 }

[connections.zo]
kind = "zoho"
secret = "lb/zo"
accounts_url = "https://accounts.zoho.eu"
module = "Leads"
rate_share_percent = 50

[connections.zo.fields]
"intent.primary" = "Chat_Intent"

[connections.zo.static]
Lead_Channel = "chatbot"

[connections.sf]
kind = "salesforce"
secret = "lb/sf"
login_url = "https://test.salesforce.com"
object = "Contact"
allow_duplicates = true

[connections.sf.fields]
"intent.primary" = "Chat_Intent__c"

[connections.sf.static]
LeadSource = "Chatbot"

[[routes]]
bot_id = "sales"
connections = ["hs", "hook"]
object = "contact"
lead_source = "Chatbot"
required = ["visitor.email", "answers.size"]
lane = "realtime"
event_lanes = { "lead.updated" = "bulk", "message.received" = "realtime" }
require_consent = true
unknown_country = "reject"
phone_region = "IN"
split_name = false

[routes.enums."answers.size"]
allowed = ["klein", "gross"]
map = { "small" = "klein" }

[[routes]]
bot_id = "*"
connections = ["pd", "zo", "sf"]
lane = "bulk"

[sources.wa]
kind = "whatsapp"
bot_id = "sales"
secret = "lb/wa"

[sources.tw]
kind = "twilio"
bot_id = "sales"
secret = "lb/tw"
public_url = "https://leads.example.com/v1/sources/tw"

[sources.tb]
kind = "custom_json"
bot_id = "sales"
secret = "lb/tb"
token_header = "x-api-key"

[sources.tb.fields]
"event_id" = "/id"
"visitor.email" = "/email"
"#;

#[test]
fn the_shipped_files_and_a_file_with_every_key_validate_and_parse() {
    let v = schema();
    for (name, text) in [
        (
            "config/leadbridge.example.toml",
            include_str!("../../config/leadbridge.example.toml"),
        ),
        (
            "config/local.example.toml",
            include_str!("../../config/local.example.toml"),
        ),
        ("every key", EVERY_KEY),
    ] {
        assert_eq!(schema_errors(&v, text), Vec::<String>::new(), "{name}");
        // The local example's placeholders are URLs only once the stack fills them in.
        let text = text
            .replace("{hubspot_url}", "https://api.hubapi.com")
            .replace("{webhook_url}", "https://hooks.example.com")
            .replace("{pipedrive_url}", "https://api.pipedrive.com")
            .replace("{zoho_accounts_url}", "https://accounts.zoho.com")
            .replace("{salesforce_login_url}", "https://login.salesforce.com");
        if let Err(e) = lb_config::Config::parse(&text) {
            panic!("{name} does not parse:\n{e}");
        }
    }
}

/// Each change to the every-key file is refused by the parser and by the schema.
#[test]
fn what_the_parser_refuses_the_schema_refuses() {
    let v = schema();
    let cases: &[(&str, &str)] = &[
        ("version = 1", "version = 2"),
        (
            "split_name = true\n",
            "split_name = true\ncolour = \"red\"\n",
        ),
        (
            "unknown_country = \"pass_through\"",
            "unknown_country = \"maybe\"",
        ),
        ("phone_region = \"GB\"", "phone_region = \"GBR\""),
        ("kind = \"pipedrive\"", "kind = \"dynamics\""),
        ("timeout_ms = 5000", "timeout_ms = 50"),
        ("timeout_ms = 8000", "timeout_ms = 60000"),
        ("schema_ttl_seconds = 60", "schema_ttl_seconds = -1"),
        ("module = \"Leads\"", "module = \"Accounts\""),
        ("object = \"Contact\"", "object = \"Opportunity\""),
        ("rate_share_percent = 80", "rate_share_percent = 0"),
        (
            "rate_limit = { requests = 80, per_seconds = 2 }",
            "rate_limit = { requests = 80 }",
        ),
        (
            "rate_limit = { requests = 80, per_seconds = 2 }",
            "rate_limit = { requests = 0, per_seconds = 2 }",
        ),
        ("auth = \"api_key\"", "auth = \"oauth\""),
        ("api_key_header = \"X-Key\"\n", ""),
        ("case = \"title\"", "case = \"camel\""),
        ("truncate = 100", "truncate = 0"),
        ("object = \"contact\"", "object = \"deal\""),
        ("lane = \"bulk\"", "lane = \"slow\""),
        ("allowed = [\"klein\", \"gross\"]", "allowed = []"),
        (
            "map = { \"small\" = \"klein\" }",
            "map = { \"small\" = \"klein\" }\nvalues = [\"x\"]",
        ),
        ("\"lead.updated\" = \"bulk\"", "\"lead.deleted\" = \"bulk\""),
        ("connections = [\"pd\", \"zo\", \"sf\"]", "connections = []"),
        (
            "connections = [\"hs\", \"hook\"]",
            "connections = [\"hs\", \"hs\"]",
        ),
        (
            "bot_id = \"sales\"\nconnections",
            "bot_id = \"sales team\"\nconnections",
        ),
        ("kind = \"whatsapp\"", "kind = \"telegram\""),
        (
            "public_url = \"https://leads.example.com/v1/sources/tw\"",
            "public_url = \"http://leads.example.com/tw\"",
        ),
        (
            "token_header = \"x-api-key\"",
            "token_header = \"x-api-key\"\npublic_url = \"https://x.example\"",
        ),
        ("secret = \"lb/wa\"\n", "secret = \"lb/wa\"\nfields = {}\n"),
        ("allow_duplicates = true", "allow_duplicates = \"yes\""),
        ("secret = \"lb/zo\"\n", ""),
    ];
    for (from, to) in cases {
        assert!(
            EVERY_KEY.contains(from),
            "the every-key file has no {from:?}"
        );
        let text = EVERY_KEY.replacen(from, to, 1);
        assert!(
            lb_config::Config::parse(&text).is_err(),
            "the parser accepts {from:?} → {to:?}"
        );
        assert!(
            !schema_errors(&v, &text).is_empty(),
            "docs/schema/config.schema.json accepts {from:?} → {to:?}, which the parser refuses"
        );
    }
}
