//! The leadbridge configuration file (`LEADBRIDGE_CONFIG`, TOML): which
//! connections (CRMs, webhooks) exist, which bot's leads go to which of them
//! (routes, fan-out), how fields are mapped, the per-bot policies (consent,
//! countries, phone region, name splitting) and the enumerations applied at
//! ingest.
//!
//! Pure: parsing and validation only, no async, no AWS, no HTTP. Every error of
//! a file is reported at once, each with its key path, line and column (see
//! [`ConfigError`]). The format is documented in docs/configuration.md ("Configuration
//! file") and by `config/leadbridge.example.toml`.

mod error;
mod parse;
mod targets;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use lb_domain::mapping::{FieldPath, Mapping};
use lb_domain::{CountryPolicy, Delivery, EventType, FieldError, Lane, LeadEvent};

pub use error::{ConfigError, ConfigErrors};

/// The environment variable holding the path of the TOML file.
pub const CONFIG_ENV: &str = "LEADBRIDGE_CONFIG";

/// The one file format version this build reads (`version = 1`).
pub const VERSION: i64 = 1;

/// A parsed, valid configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// `[defaults]` (each route's [`Route::policy`] is these with its overrides).
    pub defaults: Policy,
    /// By name (`[connections.<name>]`).
    pub connections: BTreeMap<String, Connection>,
    /// In file order.
    pub routes: Vec<Route>,
    /// `[enums."<field>"]`, in file order.
    pub enums: Vec<EnumRule>,
    /// By name (`[sources.<name>]`): the native inbound endpoints.
    pub sources: BTreeMap<String, Source>,
    /// Things that are allowed but probably not meant (a connection no route
    /// uses), formatted like errors: `line L, column C: key: message`.
    pub warnings: Vec<String>,
}

/// What is asked of a bot's events at ingest (and how names are split on the way out).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Policy {
    /// An event without `consent.given_at` is refused (422 `consent_required`).
    pub require_consent: bool,
    /// A country the tables do not know: refuse it or keep it as sent.
    pub unknown_country: CountryPolicy,
    /// ISO 3166-1 alpha-2 (upper case): the region of national phone numbers
    /// when the visitor's country is unknown.
    pub phone_region: Option<String>,
    /// Derive first/last name from a full name.
    pub split_name: bool,
}

impl Default for Policy {
    fn default() -> Self {
        Self {
            require_consent: false,
            unknown_country: CountryPolicy::Reject,
            phone_region: None,
            split_name: true,
        }
    }
}

/// One `[[routes]]` entry: a bot's (or every other bot's) events and where they go.
#[derive(Debug, Clone, PartialEq)]
pub struct Route {
    /// `None`: the `"*"` route (every bot without its own route).
    pub bot_id: Option<String>,
    /// Connection names, in order: one delivery per connection.
    pub connections: Vec<String>,
    /// `contact` or `lead`.
    pub object: String,
    pub lead_source: Option<String>,
    /// `[defaults]` merged with the route's overrides.
    pub policy: Policy,
    /// Fields an event must carry (never `answers.*`).
    pub required: Vec<FieldPath>,
    /// The lane the route's leads travel (`lane`; default real-time).
    pub lane: Lane,
    /// Per event type overrides of `lane` (`[routes.event_lanes]`).
    pub event_lanes: Vec<(EventType, Lane)>,
    /// The route's own `[routes.enums."<field>"]`: for its bots they replace
    /// the top-level `[enums]` rule of the same field.
    pub enums: Vec<EnumRule>,
}

/// One `[sources.<name>]`: `POST /v1/sources/<name>` speaks one vendor's webhook
/// for one bot.
#[derive(Debug, Clone, PartialEq)]
pub struct Source {
    pub name: String,
    /// A [`lb_vendors::sources::KINDS`] name (`whatsapp`, `intercom`, …).
    pub kind: &'static str,
    /// The bot whose route and policies the source's leads take.
    pub bot_id: String,
    /// Secrets Manager id of the vendor's secret(s) (see [`lb_vendors::source::SourceSecrets`]).
    pub secret: String,
    pub options: lb_vendors::source::SourceOptions,
}

/// One `[connections.<name>]`.
#[derive(Debug, Clone, PartialEq)]
pub struct Connection {
    pub name: String,
    pub kind: ConnectionKind,
    /// `None`: the adapter's built-in mapping (no `fields` table). `Some`: the
    /// `fields` and `static` tables, with `split_name` from `[defaults]`.
    pub mapping: Option<Mapping>,
    /// Per-request timeout (`timeout_ms`, default 10 s, at most 20 s).
    pub timeout: Duration,
    /// Parsed for a local run ([`Config::parse_local`]): the connection may
    /// reach this machine or a private network (the local stack's simulators).
    pub allow_internal: bool,
    /// The shared rate limiter's settings (`rate_limit`, `rate_share_percent`).
    pub throttling: Throttling,
}

/// How many calls every worker instance together may make to one connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Throttling {
    /// The CRM's limit (`rate_limit`); `None`: learned from the CRM's answers
    /// where it announces it (HubSpot's `X-HubSpot-RateLimit-Max`), else none.
    pub limit: Option<CallLimit>,
    /// The share of the limit leadbridge may use (`rate_share_percent`, default 100):
    /// the rest is left to the other tools on the same app or account.
    pub share_percent: u32,
}

impl Default for Throttling {
    fn default() -> Self {
        Self {
            limit: None,
            share_percent: 100,
        }
    }
}

/// A CRM's rate limit: `requests` per rolling `per`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CallLimit {
    pub requests: u32,
    pub per: Duration,
}

impl Connection {
    /// `hubspot` or `webhook`, as in the file.
    pub fn kind_name(&self) -> &'static str {
        self.kind.as_str()
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum ConnectionKind {
    HubSpot(HubSpotConnection),
    Webhook(WebhookConnection),
    Pipedrive(PipedriveConnection),
    Zoho(ZohoConnection),
    Salesforce(SalesforceConnection),
}

impl ConnectionKind {
    /// `hubspot` or `webhook`, as in the file.
    pub fn as_str(&self) -> &'static str {
        match self {
            ConnectionKind::HubSpot(_) => "hubspot",
            ConnectionKind::Webhook(_) => "webhook",
            ConnectionKind::Pipedrive(_) => "pipedrive",
            ConnectionKind::Zoho(_) => "zoho",
            ConnectionKind::Salesforce(_) => "salesforce",
        }
    }

    /// The Secrets Manager ids the worker reads for this connection.
    pub fn secrets(&self) -> Vec<&str> {
        match self {
            ConnectionKind::HubSpot(h) => vec![h.secret.as_str()],
            ConnectionKind::Webhook(w) => w.auth.secret().into_iter().collect(),
            ConnectionKind::Pipedrive(p) => vec![p.secret.as_str()],
            ConnectionKind::Zoho(z) => vec![z.secret.as_str()],
            ConnectionKind::Salesforce(s) => vec![s.secret.as_str()],
        }
    }
}

/// `kind = "pipedrive"`: persons, notes and deals through Pipedrive's API.
#[derive(Debug, Clone, PartialEq)]
pub struct PipedriveConnection {
    /// Secrets Manager id of the API token (a string or `{"api_token": …}`).
    pub secret: String,
    /// Without a trailing `/` (default `https://api.pipedrive.com`).
    pub base_url: String,
}

/// The default Pipedrive API base URL.
pub const PIPEDRIVE_BASE_URL: &str = "https://api.pipedrive.com";

/// `kind = "zoho"`: records, notes and deals through Zoho CRM's API (OAuth).
#[derive(Debug, Clone, PartialEq)]
pub struct ZohoConnection {
    /// Secrets Manager id of the grant: `{"client_id", "client_secret", "refresh_token"}`.
    pub secret: String,
    /// The data centre's accounts server (default `https://accounts.zoho.com`); the
    /// API domain comes from the token answer.
    pub accounts_url: String,
    /// `Contacts` (default) or `Leads`.
    pub module: String,
}

/// `kind = "salesforce"`: Leads or Contacts and Tasks through Salesforce's REST API (OAuth).
#[derive(Debug, Clone, PartialEq)]
pub struct SalesforceConnection {
    /// Secrets Manager id of the grant: `{"client_id", "client_secret", "refresh_token"}`.
    pub secret: String,
    /// The login server (default `https://login.salesforce.com`; a sandbox's
    /// `https://test.salesforce.com`, or the org's My Domain); the API's
    /// instance comes from the token answer.
    pub login_url: String,
    /// `Lead` (default) or `Contact`.
    pub object: String,
    /// Send `Sforce-Duplicate-Rule-Header: allowSave=true` (an alerting duplicate
    /// rule then lets the write through).
    pub allow_duplicates: bool,
    /// The stage of an Opportunity whose event names none (`None`: the
    /// adapter's default, `Prospecting`).
    pub deal_stage: Option<String>,
}

/// The default Salesforce login server.
pub const SALESFORCE_LOGIN_URL: &str = "https://login.salesforce.com";

/// The default Zoho accounts server (US data centre).
pub const ZOHO_ACCOUNTS_URL: &str = "https://accounts.zoho.com";

#[derive(Debug, Clone, PartialEq)]
pub struct HubSpotConnection {
    /// Secrets Manager id of the private-app token.
    pub secret: String,
    /// Without a trailing `/` (default `https://api.hubapi.com`).
    pub base_url: String,
    pub deal_pipeline: Option<String>,
    pub deal_stage: Option<String>,
    /// How long a fetched property schema is trusted (default 300 s).
    pub schema_ttl: Duration,
}

/// The default HubSpot API base URL.
pub const HUBSPOT_BASE_URL: &str = "https://api.hubapi.com";

#[derive(Debug, Clone, PartialEq)]
pub struct WebhookConnection {
    /// Absolute `http` or `https` URL.
    pub url: String,
    pub auth: WebhookAuth,
    /// Extra request headers, as written (never `authorization` or `content-type`).
    pub headers: Vec<(String, String)>,
}

/// How a webhook request authenticates. Every `secret` is a Secrets Manager id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WebhookAuth {
    None,
    /// `Authorization: Bearer <secret>`.
    Bearer {
        secret: String,
    },
    /// `<header>: <secret>`.
    ApiKey {
        header: String,
        secret: String,
    },
    /// `Authorization: Basic …` (the secret holds `user:password`).
    Basic {
        secret: String,
    },
}

impl WebhookAuth {
    /// The Secrets Manager id this auth reads, if any.
    pub fn secret(&self) -> Option<&str> {
        match self {
            WebhookAuth::None => None,
            WebhookAuth::Bearer { secret }
            | WebhookAuth::ApiKey { secret, .. }
            | WebhookAuth::Basic { secret } => Some(secret),
        }
    }
}

/// `[enums."<field>"]`: a value map and an allowlist for one field, applied at ingest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnumRule {
    pub field: FieldPath,
    /// The values the field may hold after mapping (as spelled here).
    pub allowed: Vec<String>,
    /// Sent value → allowed value (keys matched trimmed and case-insensitively).
    pub map: BTreeMap<String, String>,
}

impl EnumRule {
    /// The allowed value `raw` stands for: a map key first, then an allowed
    /// value (both trimmed and case-insensitive). `None`: not allowed.
    pub fn resolve(&self, raw: &str) -> Option<&str> {
        let k = raw.trim().to_lowercase();
        self.map
            .iter()
            .find(|(from, _)| from.trim().to_lowercase() == k)
            .map(|(_, to)| to.as_str())
            .or_else(|| {
                self.allowed
                    .iter()
                    .find(|a| a.trim().to_lowercase() == k)
                    .map(String::as_str)
            })
    }
}

/// The fields an `[enums.*]` table may name: answers and the free-text fields
/// whose value is really a choice.
pub const ENUMERABLE: &[&str] = &[
    "answers.<key>",
    "visitor.company",
    "intent.primary",
    "transcript.sentiment",
    "context.utm_source",
    "context.utm_medium",
    "context.utm_campaign",
];

/// Whether `[enums.*]` may name this field.
pub fn is_enumerable(field: &FieldPath) -> bool {
    matches!(
        field,
        FieldPath::Answer(_)
            | FieldPath::Company
            | FieldPath::IntentPrimary
            | FieldPath::Sentiment
            | FieldPath::UtmSource
            | FieldPath::UtmMedium
            | FieldPath::UtmCampaign
    )
}

/// The value of an enumerable field, to rewrite in place (`None`: absent).
fn enum_slot<'e>(event: &'e mut LeadEvent, field: &FieldPath) -> Option<&'e mut String> {
    match field {
        FieldPath::Answer(k) => event.answers.get_mut(k),
        FieldPath::Company => event.visitor.company.as_mut(),
        FieldPath::IntentPrimary => event.intent.as_mut().and_then(|i| i.primary.as_mut()),
        FieldPath::Sentiment => event.transcript.as_mut().and_then(|t| t.sentiment.as_mut()),
        FieldPath::UtmSource => event.context.utm_source.as_mut(),
        FieldPath::UtmMedium => event.context.utm_medium.as_mut(),
        FieldPath::UtmCampaign => event.context.utm_campaign.as_mut(),
        _ => None,
    }
}

impl Config {
    /// Parses and validates a whole file; every error found is returned, in
    /// file order. Connections must be https on public hosts.
    pub fn parse(text: &str) -> Result<Config, ConfigErrors> {
        parse::parse(text, false)
    }

    /// [`Config::parse`] for a local run: connections may also point at this
    /// machine over plain http (the local stack's simulators).
    pub fn parse_local(text: &str) -> Result<Config, ConfigErrors> {
        parse::parse(text, true)
    }

    /// Reads and parses `path`. The error is one line per problem, each
    /// starting with the path: `cfg.toml: line 3, column 1: routes[0].connections[0]: …`.
    pub fn load(path: &Path) -> Result<Config, String> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            format!(
                "{}: cannot read the configuration file: {e}",
                path.display()
            )
        })?;
        Config::parse(&text).map_err(|errs| {
            errs.iter()
                .map(|e| format!("{}: {e}", path.display()))
                .collect::<Vec<_>>()
                .join("\n")
        })
    }

    /// The file named by `LEADBRIDGE_CONFIG`; `Ok(None)` when it is unset or empty.
    pub fn from_env() -> Result<Option<Config>, String> {
        match std::env::var_os(CONFIG_ENV) {
            Some(p) if !p.is_empty() => Config::load(Path::new(&p)).map(Some),
            _ => Ok(None),
        }
    }

    /// The bot's own route, else the `"*"` route, else `None`.
    pub fn route_for(&self, bot_id: &str) -> Option<&Route> {
        self.routes
            .iter()
            .find(|r| r.bot_id.as_deref() == Some(bot_id))
            .or_else(|| self.routes.iter().find(|r| r.bot_id.is_none()))
    }

    pub fn connection(&self, name: &str) -> Option<&Connection> {
        self.connections.get(name)
    }

    /// Value maps + allowlists for an event of `route`'s bots (the route's own
    /// rules, and the top-level ones for the fields the route does not name):
    /// rewrites each enumerated field of the event to its allowed value
    /// (matched trimmed and case-insensitively against the map keys, then
    /// against the allowed values). A value that matches neither is a
    /// `value_not_allowed` error for that field; absent fields are fine. The
    /// error does not quote the value (it may be personal data).
    pub fn apply_enums_for(&self, route: &Route, event: &mut LeadEvent) -> Vec<FieldError> {
        let top = self
            .enums
            .iter()
            .filter(|r| !route.enums.iter().any(|own| own.field == r.field));
        apply_enum_rules(route.enums.iter().chain(top), event)
    }
}

fn apply_enum_rules<'a>(
    rules: impl Iterator<Item = &'a EnumRule>,
    event: &mut LeadEvent,
) -> Vec<FieldError> {
    let mut errors = Vec::new();
    for rule in rules {
        let Some(slot) = enum_slot(event, &rule.field) else {
            continue;
        };
        if slot.trim().is_empty() {
            continue;
        }
        match rule.resolve(slot) {
            Some(v) => *slot = v.to_string(),
            None => errors.push(FieldError::new(
                rule.field.as_str(),
                "value_not_allowed",
                format!("{} is not one of: {}", rule.field, rule.allowed.join(", ")),
            )),
        }
    }
    errors
}

impl Route {
    /// The route's rules for one event: every `required` field present
    /// (`required`), and consent when the policy requires it
    /// (`consent.given_at`, `consent_required`).
    pub fn check(&self, event: &LeadEvent) -> Vec<FieldError> {
        let mut errors = Vec::new();
        let consent_missing = self.policy.require_consent && event.consent.is_none();
        for path in &self.required {
            if consent_missing && *path == FieldPath::ConsentGivenAt {
                continue; // said below, once
            }
            if path
                .value(event, self.lead_source.as_deref(), self.policy.split_name)
                .is_none()
            {
                errors.push(FieldError::new(
                    path.as_str(),
                    "required",
                    format!("{path} is required for this bot"),
                ));
            }
        }
        if consent_missing {
            errors.push(FieldError::new(
                "consent.given_at",
                "consent_required",
                "this bot requires the visitor's consent: send consent.given_at (and text_version, purpose)",
            ));
        }
        errors
    }

    /// One delivery per connection, in order.
    pub fn deliveries(&self) -> Vec<Delivery> {
        self.connections
            .iter()
            .map(|c| Delivery {
                connection: c.clone(),
                lead_source: self.lead_source.clone(),
                object: self.object.clone(),
                split_name: Some(self.policy.split_name),
            })
            .collect()
    }

    /// The lane an event of this type travels: its `event_lanes` entry, else
    /// the route's `lane`.
    pub fn lane_for(&self, event_type: EventType) -> Lane {
        self.event_lanes
            .iter()
            .find(|(t, _)| *t == event_type)
            .map(|(_, l)| *l)
            .unwrap_or(self.lane)
    }

    /// `"*"` for the catch-all route, else the bot id.
    pub fn bot_label(&self) -> &str {
        self.bot_id.as_deref().unwrap_or("*")
    }
}

#[cfg(test)]
mod tests;
