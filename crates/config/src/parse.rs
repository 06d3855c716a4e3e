//! TOML → [`Config`], collecting every error with its key path and position.
//!
//! The file is parsed into toml's spanned document tree ([`DeTable`]: every
//! key and value keeps its byte span) and walked by hand rather than
//! deserialized with serde: serde stops at the first unknown key or wrong
//! type, and an operator fixing a file wants all of its errors at once.

use std::collections::{BTreeMap, HashMap};
use std::ops::Range;
use std::time::Duration;

use lb_domain::mapping::{Case, FieldMap, FieldPath, Mapping, Transform};
use lb_domain::{BotId, CountryPolicy, EventType, Lane};
use toml::de::{DeArray, DeTable, DeValue};
use toml::Spanned;

use crate::error::Lines;

mod sources;
use crate::{
    is_enumerable, Config, ConfigError, ConfigErrors, Connection, ConnectionKind, EnumRule,
    HubSpotConnection, PipedriveConnection, Policy, Route, SalesforceConnection, WebhookAuth,
    WebhookConnection, ZohoConnection, ENUMERABLE, HUBSPOT_BASE_URL, PIPEDRIVE_BASE_URL,
    SALESFORCE_LOGIN_URL, VERSION, ZOHO_ACCOUNTS_URL,
};
use crate::{CallLimit, Throttling};

type Span = Range<usize>;
type Value<'i> = Spanned<DeValue<'i>>;

/// A value and where it is.
struct At<T> {
    v: T,
    span: Span,
}

/// Collects errors and warnings with their positions.
struct Cx<'s> {
    lines: Lines<'s>,
    errors: Vec<ConfigError>,
    warnings: Vec<(usize, usize, String)>,
    /// Connections may point at this machine over plain http (the local stack
    /// and its simulators); a deployment's config may not.
    local_targets: bool,
}

impl Cx<'_> {
    fn error(&mut self, key: impl Into<String>, span: &Span, message: impl Into<String>) {
        let (line, column) = self.lines.locate(span.start);
        self.errors.push(ConfigError {
            key: key.into(),
            line,
            column,
            message: message.into(),
        });
    }

    fn warn(&mut self, key: &str, span: &Span, message: &str) {
        let (line, column) = self.lines.locate(span.start);
        self.warnings.push((
            line,
            column,
            format!("line {line}, column {column}: {key}: {message}"),
        ));
    }

    fn type_error(&mut self, key: &str, v: &Value<'_>, expected: &str) {
        self.error(
            key,
            &v.span(),
            format!("expected {expected}, found {}", v.get_ref().type_str()),
        );
    }

    fn str<'v>(&mut self, key: &str, v: &'v Value<'_>) -> Option<&'v str> {
        match v.get_ref() {
            DeValue::String(s) => Some(s.as_ref()),
            _ => {
                self.type_error(key, v, "a string");
                None
            }
        }
    }

    /// A string that must not be blank.
    fn text(&mut self, key: &str, v: &Value<'_>) -> Option<At<String>> {
        let s = self.str(key, v)?;
        if s.trim().is_empty() {
            self.error(key, &v.span(), "must not be empty");
            return None;
        }
        Some(At {
            v: s.to_string(),
            span: v.span(),
        })
    }

    fn bool(&mut self, key: &str, v: &Value<'_>) -> Option<bool> {
        match v.get_ref() {
            DeValue::Boolean(b) => Some(*b),
            _ => {
                self.type_error(key, v, "true or false");
                None
            }
        }
    }

    fn int(&mut self, key: &str, v: &Value<'_>) -> Option<i64> {
        match v.get_ref() {
            DeValue::Integer(i) => match i64::from_str_radix(i.as_str(), i.radix()) {
                Ok(n) => Some(n),
                Err(_) => {
                    self.error(key, &v.span(), "number out of range");
                    None
                }
            },
            _ => {
                self.type_error(key, v, "an integer");
                None
            }
        }
    }

    fn int_in(&mut self, key: &str, v: &Value<'_>, range: Range<i64>, what: &str) -> Option<i64> {
        let n = self.int(key, v)?;
        if !range.contains(&n) {
            self.error(
                key,
                &v.span(),
                format!(
                    "{n} is out of range: {what} must be between {} and {}",
                    range.start,
                    range.end - 1
                ),
            );
            return None;
        }
        Some(n)
    }

    fn table<'t, 'i>(&mut self, key: &str, v: &'t Value<'i>) -> Option<Tbl<'t, 'i>> {
        match v.get_ref() {
            DeValue::Table(map) => Some(Tbl {
                path: key.to_string(),
                at: v.span(),
                map,
            }),
            _ => {
                self.type_error(key, v, "a table");
                None
            }
        }
    }

    fn array<'t, 'i>(&mut self, key: &str, v: &'t Value<'i>) -> Option<&'t DeArray<'i>> {
        match v.get_ref() {
            DeValue::Array(a) => Some(a),
            _ => {
                self.type_error(key, v, "an array");
                None
            }
        }
    }

    /// An array of non-blank strings (element errors reported, elements dropped).
    fn strings(&mut self, key: &str, v: &Value<'_>) -> Option<Vec<At<String>>> {
        let arr = self.array(key, v)?;
        Some(
            arr.iter()
                .enumerate()
                .filter_map(|(i, e)| self.text(&format!("{key}[{i}]"), e))
                .collect(),
        )
    }
}

/// A table being read.
struct Tbl<'t, 'i> {
    /// Its key path (`connections.hubspot`, `routes[0]`; empty for the root).
    path: String,
    /// Where errors about missing keys point.
    at: Span,
    map: &'t DeTable<'i>,
}

impl<'t, 'i> Tbl<'t, 'i> {
    fn key(&self, k: &str) -> String {
        join(&self.path, k)
    }

    fn get(&self, k: &str) -> Option<&'t Value<'i>> {
        self.map.get(k)
    }

    fn entries(&self) -> impl Iterator<Item = (&'t str, Span, &'t Value<'i>)> + 't {
        self.map
            .iter()
            .map(|(k, v)| (k.get_ref().as_ref(), k.span(), v))
    }

    fn span_of_key(&self, k: &str) -> Span {
        self.map
            .get_key_value(k)
            .map(|(k, _)| k.span())
            .unwrap_or_else(|| self.at.clone())
    }

    /// Reports every key not in `allowed`.
    fn only(&self, cx: &mut Cx<'_>, allowed: &[&str], here: &str) {
        for (k, span, _) in self.entries() {
            if !allowed.contains(&k) {
                cx.error(
                    self.key(k),
                    &span,
                    format!(
                        "unknown key {k:?} in {here}; allowed: {}",
                        allowed.join(", ")
                    ),
                );
            }
        }
    }

    fn missing(&self, cx: &mut Cx<'_>, k: &str, message: &str) {
        cx.error(self.key(k), &self.at, format!("missing: {message}"));
    }

    fn text(&self, cx: &mut Cx<'_>, k: &str) -> Option<At<String>> {
        self.get(k).and_then(|v| cx.text(&self.key(k), v))
    }

    fn required_text(&self, cx: &mut Cx<'_>, k: &str, message: &str) -> Option<At<String>> {
        if self.get(k).is_none() {
            self.missing(cx, k, message);
            return None;
        }
        self.text(cx, k)
    }

    fn bool(&self, cx: &mut Cx<'_>, k: &str) -> Option<bool> {
        self.get(k).and_then(|v| cx.bool(&self.key(k), v))
    }

    fn int_in(&self, cx: &mut Cx<'_>, k: &str, range: Range<i64>, what: &str) -> Option<i64> {
        self.get(k)
            .and_then(|v| cx.int_in(&self.key(k), v, range, what))
    }

    fn table(&self, cx: &mut Cx<'_>, k: &str) -> Option<Tbl<'t, 'i>> {
        self.get(k).and_then(|v| cx.table(&self.key(k), v))
    }
}

/// `"realtime"` or `"bulk"`.
fn lane_value(cx: &mut Cx<'_>, key: &str, v: &Value<'_>) -> Option<Lane> {
    let s = cx.str(key, v)?;
    let parsed = Lane::parse(s.trim());
    if parsed.is_none() {
        cx.error(
            key,
            &v.span(),
            format!("unknown lane {s:?}; expected \"realtime\" or \"bulk\""),
        );
    }
    parsed
}

/// `path.key`, quoting the key when it is not a bare TOML key.
fn join(path: &str, key: &str) -> String {
    let bare = !key.is_empty()
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    let key = if bare {
        key.to_string()
    } else {
        format!("{key:?}")
    };
    if path.is_empty() {
        key
    } else {
        format!("{path}.{key}")
    }
}

const TOP_KEYS: &[&str] = &[
    "version",
    "defaults",
    "enums",
    "connections",
    "routes",
    "sources",
];
const POLICY_KEYS: &[&str] = &[
    "require_consent",
    "unknown_country",
    "phone_region",
    "split_name",
];
const COMMON_CONNECTION_KEYS: &[&str] = &["kind", "timeout_ms", "fields", "static"];
/// The shared rate limiter's keys (every CRM kind; not webhook targets).
const THROTTLE_KEYS: &[&str] = &["rate_limit", "rate_share_percent"];
const RATE_LIMIT_KEYS: &[&str] = &["requests", "per_seconds"];
const HUBSPOT_KEYS: &[&str] = &[
    "secret",
    "base_url",
    "schema_ttl_seconds",
    "deal_pipeline",
    "deal_stage",
];
const WEBHOOK_KEYS: &[&str] = &["url", "auth", "secret", "api_key_header", "headers"];
/// Pipedrive, Zoho and Salesforce connections write the identities and the
/// name themselves; `fields`/`static` add the CRM's own (custom) fields.
const PIPEDRIVE_KEYS: &[&str] = &[
    "kind",
    "timeout_ms",
    "secret",
    "base_url",
    "fields",
    "static",
];
const ZOHO_KEYS: &[&str] = &[
    "kind",
    "timeout_ms",
    "secret",
    "accounts_url",
    "module",
    "fields",
    "static",
];
const SALESFORCE_KEYS: &[&str] = &[
    "kind",
    "timeout_ms",
    "secret",
    "login_url",
    "object",
    "allow_duplicates",
    "deal_stage",
    "fields",
    "static",
];
const KINDS_EXPECTED: &str = "\"hubspot\", \"webhook\", \"pipedrive\", \"zoho\" or \"salesforce\"";
const ROUTE_KEYS: &[&str] = &[
    "bot_id",
    "connections",
    "object",
    "lead_source",
    "required",
    "lane",
    "event_lanes",
    "enums",
];
const FIELD_KEYS: &[&str] = &["property", "truncate", "case", "values"];
const MAX_TARGET_CHARS: usize = 100;
const DEFAULT_TIMEOUT_MS: i64 = 10_000;
/// The longest connection timeout: the worker runs 60 s and a sync makes several calls.
const MAX_TIMEOUT_MS: i64 = 20_000;
const DEFAULT_SCHEMA_TTL_SECONDS: i64 = 300;

pub(crate) fn parse(text: &str, local_targets: bool) -> Result<Config, ConfigErrors> {
    let mut cx = Cx {
        lines: Lines::new(text),
        errors: Vec::new(),
        warnings: Vec::new(),
        local_targets,
    };
    let (doc, syntax) = DeTable::parse_recoverable(text);
    if !syntax.is_empty() {
        // The tree after a syntax error is a guess: checking it would report
        // errors that are not there.
        for e in syntax {
            let span = e.span().unwrap_or(0..0);
            cx.error("syntax", &span, e.message().trim().to_string());
        }
        return Err(finish(cx.errors));
    }
    let root = Tbl {
        path: String::new(),
        at: 0..0,
        map: doc.get_ref(),
    };
    root.only(&mut cx, TOP_KEYS, "the top level");

    match root.get("version") {
        None => cx.error(
            "version",
            &(0..0),
            format!("missing: start the file with version = {VERSION}"),
        ),
        Some(v) => match cx.int("version", v) {
            Some(VERSION) | None => {}
            Some(n) => cx.error(
                "version",
                &v.span(),
                format!("unsupported version {n}: this leadbridge reads version {VERSION}"),
            ),
        },
    }

    let defaults = match root.table(&mut cx, "defaults") {
        Some(t) => {
            t.only(&mut cx, POLICY_KEYS, "[defaults]");
            policy(&mut cx, &t, &Policy::default())
        }
        None => Policy::default(),
    };

    let enums = match root.table(&mut cx, "enums") {
        Some(t) => enum_rules(&mut cx, &t),
        None => Vec::new(),
    };

    let conns = root.table(&mut cx, "connections");
    let (connections, kinds) = match &conns {
        Some(t) => connections(&mut cx, t, &defaults),
        None => (BTreeMap::new(), BTreeMap::new()),
    };

    let routes = match root.get("routes") {
        Some(v) => routes(&mut cx, v, &defaults, &kinds),
        None => Vec::new(),
    };
    if routes.is_empty() && root.get("routes").is_none() {
        cx.error(
            "routes",
            &(0..0),
            "no routes: add at least one [[routes]] (bot_id = \"*\" routes every bot)",
        );
    }

    if let Some(conns) = &conns {
        for name in kinds.keys() {
            if !routes.iter().any(|r| r.connections.contains(name)) {
                cx.warn(
                    &conns.key(name),
                    &conns.span_of_key(name),
                    "no route uses this connection: it receives nothing",
                );
            }
        }
    }

    let sources = match root.table(&mut cx, "sources") {
        Some(t) => sources::sources(&mut cx, &t, &routes),
        None => BTreeMap::new(),
    };

    if !cx.errors.is_empty() {
        return Err(finish(cx.errors));
    }
    cx.warnings.sort_by_key(|w| (w.0, w.1));
    Ok(Config {
        defaults,
        connections,
        routes,
        enums,
        sources,
        warnings: cx.warnings.into_iter().map(|w| w.2).collect(),
    })
}

fn finish(mut errors: Vec<ConfigError>) -> ConfigErrors {
    errors.sort_by_key(|e| (e.line, e.column));
    ConfigErrors(errors)
}

/// The policy keys of `t` over `base`.
fn policy(cx: &mut Cx<'_>, t: &Tbl<'_, '_>, base: &Policy) -> Policy {
    let mut p = base.clone();
    if let Some(b) = t.bool(cx, "require_consent") {
        p.require_consent = b;
    }
    if let Some(b) = t.bool(cx, "split_name") {
        p.split_name = b;
    }
    if let Some(s) = t.get("unknown_country").and_then(|v| {
        cx.str(&t.key("unknown_country"), v)
            .map(|s| (s.to_string(), v.span()))
    }) {
        match s.0.as_str() {
            "reject" => p.unknown_country = CountryPolicy::Reject,
            "pass_through" => p.unknown_country = CountryPolicy::PassThrough,
            other => cx.error(
                t.key("unknown_country"),
                &s.1,
                format!("unknown value {other:?}; expected \"reject\" or \"pass_through\""),
            ),
        }
    }
    if let Some(r) = t.get("phone_region").and_then(|v| {
        cx.str(&t.key("phone_region"), v)
            .map(|s| (s.to_string(), v.span()))
    }) {
        let code = r.0.trim().to_ascii_uppercase();
        if code.len() == 2 && rust_iso3166::from_alpha2(&code).is_some() {
            p.phone_region = Some(code);
        } else {
            cx.error(
                t.key("phone_region"),
                &r.1,
                format!(
                    "{:?} is not an ISO 3166-1 alpha-2 country code (such as US, IN, GB, DE)",
                    r.0
                ),
            );
        }
    }
    p
}

fn enum_rules(cx: &mut Cx<'_>, enums: &Tbl<'_, '_>) -> Vec<EnumRule> {
    let mut out: Vec<EnumRule> = Vec::new();
    let mut seen: HashMap<FieldPath, String> = HashMap::new();
    for (name, kspan, v) in enums.entries() {
        let key = enums.key(name);
        let field = match FieldPath::parse(name) {
            Ok(f) if is_enumerable(&f) => Some(f),
            Ok(f) => {
                cx.error(
                    &key,
                    &kspan,
                    format!(
                        "{f} cannot be enumerated; enumerable fields: {}",
                        ENUMERABLE.join(", ")
                    ),
                );
                None
            }
            Err(m) => {
                cx.error(&key, &kspan, m);
                None
            }
        };
        let field = field.filter(|f| match seen.get(f) {
            Some(first) => {
                cx.error(
                    &key,
                    &kspan,
                    format!("{f} is already enumerated by {first}"),
                );
                false
            }
            None => {
                seen.insert(f.clone(), key.clone());
                true
            }
        });
        let Some(t) = cx.table(&key, v) else {
            continue;
        };
        t.only(cx, &["allowed", "map"], &format!("[{key}]"));

        let allowed: Vec<At<String>> = match t.get("allowed") {
            None => {
                t.missing(
                    cx,
                    "allowed",
                    "list the values this field may hold: allowed = [\"a\", \"b\"]",
                );
                Vec::new()
            }
            Some(v) => {
                let list = cx.strings(&t.key("allowed"), v).unwrap_or_default();
                if list.is_empty() && cx.array(&t.key("allowed"), v).is_some_and(|a| a.is_empty()) {
                    cx.error(t.key("allowed"), &v.span(), "must list at least one value");
                }
                list
            }
        };
        for (i, a) in allowed.iter().enumerate() {
            let k = a.v.trim().to_lowercase();
            if allowed[..i].iter().any(|b| b.v.trim().to_lowercase() == k) {
                cx.error(
                    format!("{}[{i}]", t.key("allowed")),
                    &a.span,
                    format!(
                        "{:?} is listed twice (values match case-insensitively)",
                        a.v
                    ),
                );
            }
        }

        let mut map = BTreeMap::new();
        if let Some(m) = t.table(cx, "map") {
            let mut keys: Vec<String> = Vec::new();
            for (from, fspan, to) in m.entries() {
                let mkey = m.key(from);
                let lower = from.trim().to_lowercase();
                if lower.is_empty() {
                    cx.error(&mkey, &fspan, "an empty value cannot be mapped");
                    continue;
                }
                if keys.contains(&lower) {
                    cx.error(
                        &mkey,
                        &fspan,
                        format!("{from:?} is mapped twice (keys match case-insensitively)"),
                    );
                    continue;
                }
                keys.push(lower);
                let Some(to) = cx.str(&mkey, to).map(|s| At {
                    v: s.to_string(),
                    span: to.span(),
                }) else {
                    continue;
                };
                if !allowed.is_empty() && !allowed.iter().any(|a| a.v == to.v) {
                    cx.error(
                        &mkey,
                        &to.span,
                        format!(
                            "{:?} is not an allowed value; allowed: {}",
                            to.v,
                            allowed
                                .iter()
                                .map(|a| a.v.as_str())
                                .collect::<Vec<_>>()
                                .join(", ")
                        ),
                    );
                    continue;
                }
                map.insert(from.to_string(), to.v);
            }
        }
        if let Some(field) = field {
            out.push(EnumRule {
                field,
                allowed: allowed.into_iter().map(|a| a.v).collect(),
                map,
            });
        }
    }
    out
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Kind {
    HubSpot,
    Webhook,
    Pipedrive,
    Zoho,
    Salesforce,
}

/// The connections, and every defined name with its kind (`None`: the kind
/// was invalid) so routes can be checked without repeating those errors.
fn connections(
    cx: &mut Cx<'_>,
    conns: &Tbl<'_, '_>,
    defaults: &Policy,
) -> (BTreeMap<String, Connection>, BTreeMap<String, Option<Kind>>) {
    let mut out = BTreeMap::new();
    let mut kinds = BTreeMap::new();
    for (name, kspan, v) in conns.entries() {
        let key = conns.key(name);
        if !valid_connection_name(name) {
            cx.error(
                &key,
                &kspan,
                format!("invalid connection name {name:?}: use 1 to 40 of a-z, 0-9, _ and -"),
            );
        }
        let Some(t) = cx.table(&key, v) else {
            kinds.insert(name.to_string(), None);
            continue;
        };
        let t = Tbl {
            at: kspan.clone(),
            ..t
        };
        let kind = match t.get("kind") {
            None => {
                t.missing(cx, "kind", &format!("kind = {KINDS_EXPECTED}"));
                None
            }
            Some(v) => match cx.str(&t.key("kind"), v) {
                Some("hubspot") => Some(Kind::HubSpot),
                Some("webhook") => Some(Kind::Webhook),
                Some("pipedrive") => Some(Kind::Pipedrive),
                Some("zoho") => Some(Kind::Zoho),
                Some("salesforce") => Some(Kind::Salesforce),
                Some(other) => {
                    cx.error(
                        t.key("kind"),
                        &v.span(),
                        format!("unknown kind {other:?}; expected {KINDS_EXPECTED}"),
                    );
                    None
                }
                None => None,
            },
        };
        kinds.insert(name.to_string(), kind);
        let (allowed, here): (Vec<&str>, String) = match kind {
            Some(Kind::HubSpot) => (
                [COMMON_CONNECTION_KEYS, HUBSPOT_KEYS, THROTTLE_KEYS].concat(),
                "a hubspot connection".into(),
            ),
            Some(Kind::Webhook) => (
                [COMMON_CONNECTION_KEYS, WEBHOOK_KEYS].concat(),
                "a webhook connection".into(),
            ),
            Some(Kind::Pipedrive) => (
                [PIPEDRIVE_KEYS, THROTTLE_KEYS].concat(),
                "a pipedrive connection".into(),
            ),
            Some(Kind::Zoho) => (
                [ZOHO_KEYS, THROTTLE_KEYS].concat(),
                "a zoho connection".into(),
            ),
            Some(Kind::Salesforce) => (
                [SALESFORCE_KEYS, THROTTLE_KEYS].concat(),
                "a salesforce connection".into(),
            ),
            None => {
                let mut all = [
                    COMMON_CONNECTION_KEYS,
                    HUBSPOT_KEYS,
                    WEBHOOK_KEYS,
                    PIPEDRIVE_KEYS,
                    ZOHO_KEYS,
                    SALESFORCE_KEYS,
                    THROTTLE_KEYS,
                ]
                .concat();
                let mut seen = Vec::new();
                all.retain(|k| {
                    let new = !seen.contains(k);
                    seen.push(k);
                    new
                });
                (all, format!("[{key}]"))
            }
        };
        t.only(cx, &allowed, &here);

        // A sync makes several calls (contact, note, deal…) within the worker's 60 s,
        // which also keeps the slowest timeout plus 2 s free before starting a lead.
        let timeout_ms = t
            .int_in(cx, "timeout_ms", 100..MAX_TIMEOUT_MS + 1, "timeout_ms")
            .unwrap_or(DEFAULT_TIMEOUT_MS);
        let throttling = throttling(cx, &t);
        let mapping = mapping(cx, &t, kind, defaults.split_name);
        let kind = match kind {
            Some(Kind::HubSpot) => hubspot(cx, &t).map(ConnectionKind::HubSpot),
            Some(Kind::Webhook) => webhook(cx, &t).map(ConnectionKind::Webhook),
            Some(Kind::Pipedrive) => pipedrive(cx, &t).map(ConnectionKind::Pipedrive),
            Some(Kind::Zoho) => zoho(cx, &t).map(ConnectionKind::Zoho),
            Some(Kind::Salesforce) => salesforce(cx, &t).map(ConnectionKind::Salesforce),
            None => None,
        };
        if let Some(kind) = kind {
            out.insert(
                name.to_string(),
                Connection {
                    name: name.to_string(),
                    kind,
                    mapping,
                    timeout: Duration::from_millis(timeout_ms as u64),
                    allow_internal: cx.local_targets,
                    throttling,
                },
            );
        }
    }
    (out, kinds)
}

/// `rate_limit = { requests, per_seconds }` and `rate_share_percent`.
fn throttling(cx: &mut Cx<'_>, t: &Tbl<'_, '_>) -> Throttling {
    let limit = t.table(cx, "rate_limit").and_then(|r| {
        r.only(cx, RATE_LIMIT_KEYS, "rate_limit");
        let requests = r.int_in(cx, "requests", 1..1_000_001, "requests");
        let per = r.int_in(cx, "per_seconds", 1..86_401, "per_seconds");
        for (k, what) in [
            ("requests", "requests = <calls the CRM allows per window>"),
            ("per_seconds", "per_seconds = <the window, in seconds>"),
        ] {
            if r.get(k).is_none() {
                r.missing(cx, k, what);
            }
        }
        Some(CallLimit {
            requests: requests? as u32,
            per: Duration::from_secs(per? as u64),
        })
    });
    let share_percent = t
        .int_in(cx, "rate_share_percent", 1..101, "rate_share_percent")
        .unwrap_or(100) as u32;
    Throttling {
        limit,
        share_percent,
    }
}

fn valid_connection_name(name: &str) -> bool {
    (1..=40).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
}

/// A connection's URL: absolute https on a public host. Plain http, loopback,
/// private, link-local (the instance metadata service) and other internal
/// addresses are refused: a config must not be able to point the worker at the
/// Lambda's own runtime API or the VPC. Only a local run (`local_targets`)
/// may use http on loopback, for its simulators.
fn http_url(cx: &mut Cx<'_>, key: &str, v: &At<String>) -> Option<String> {
    match url::Url::parse(v.v.trim()) {
        Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => {
            let host = u.host().expect("checked");
            let loopback = crate::targets::is_loopback(&host);
            let refusal = if loopback && cx.local_targets {
                None
            } else if let Some(why) = crate::targets::internal(&host) {
                Some(format!(
                    "{:?} points at {why}; a connection must reach a public host",
                    v.v
                ))
            } else if u.scheme() != "https" {
                Some(format!(
                    "{:?} is plain http; leads (personal data) and credentials go over https only",
                    v.v
                ))
            } else {
                None
            };
            if let Some(message) = refusal {
                cx.error(key, &v.span, message);
                return None;
            }
            if !u.username().is_empty() || u.password().is_some() {
                cx.error(
                    key,
                    &v.span,
                    "credentials in a URL end up in logs; put them in the connection's secret",
                );
                return None;
            }
            Some(v.v.trim().to_string())
        }
        Ok(u) => {
            cx.error(
                key,
                &v.span,
                format!("{:?} is not an http(s) URL (scheme {:?})", v.v, u.scheme()),
            );
            None
        }
        Err(e) => {
            cx.error(
                key,
                &v.span,
                format!("{:?} is not an absolute URL: {e}", v.v),
            );
            None
        }
    }
}

fn hubspot(cx: &mut Cx<'_>, t: &Tbl<'_, '_>) -> Option<HubSpotConnection> {
    let secret = t.required_text(
        cx,
        "secret",
        "secret = \"<Secrets Manager id of the private-app token>\"",
    );
    let base_url = match t.text(cx, "base_url") {
        Some(u) => {
            http_url(cx, &t.key("base_url"), &u).map(|u| u.trim_end_matches('/').to_string())
        }
        None => Some(HUBSPOT_BASE_URL.to_string()),
    };
    let ttl = t
        .int_in(cx, "schema_ttl_seconds", 0..86_401, "schema_ttl_seconds")
        .unwrap_or(DEFAULT_SCHEMA_TTL_SECONDS);
    let deal_pipeline = t.text(cx, "deal_pipeline").map(|a| a.v);
    let deal_stage = t.text(cx, "deal_stage").map(|a| a.v);
    Some(HubSpotConnection {
        secret: secret?.v,
        base_url: base_url?,
        deal_pipeline,
        deal_stage,
        schema_ttl: Duration::from_secs(ttl as u64),
    })
}

fn pipedrive(cx: &mut Cx<'_>, t: &Tbl<'_, '_>) -> Option<PipedriveConnection> {
    let secret = t.required_text(
        cx,
        "secret",
        "secret = \"<Secrets Manager id of the Pipedrive API token>\"",
    );
    let base_url = match t.text(cx, "base_url") {
        Some(u) => {
            http_url(cx, &t.key("base_url"), &u).map(|u| u.trim_end_matches('/').to_string())
        }
        None => Some(PIPEDRIVE_BASE_URL.to_string()),
    };
    Some(PipedriveConnection {
        secret: secret?.v,
        base_url: base_url?,
    })
}

fn zoho(cx: &mut Cx<'_>, t: &Tbl<'_, '_>) -> Option<ZohoConnection> {
    let secret = t.required_text(
        cx,
        "secret",
        "secret = \"<Secrets Manager id of the grant: client_id, client_secret, refresh_token>\"",
    );
    let accounts_url = match t.text(cx, "accounts_url") {
        Some(u) => {
            http_url(cx, &t.key("accounts_url"), &u).map(|u| u.trim_end_matches('/').to_string())
        }
        None => Some(ZOHO_ACCOUNTS_URL.to_string()),
    };
    let module = match t.text(cx, "module") {
        None => Some("Contacts".to_string()),
        Some(m) if m.v == "Contacts" || m.v == "Leads" => Some(m.v),
        Some(m) => {
            cx.error(
                t.key("module"),
                &m.span,
                format!("module {:?}: expected \"Contacts\" or \"Leads\"", m.v),
            );
            None
        }
    };
    Some(ZohoConnection {
        secret: secret?.v,
        accounts_url: accounts_url?,
        module: module?,
    })
}

fn salesforce(cx: &mut Cx<'_>, t: &Tbl<'_, '_>) -> Option<SalesforceConnection> {
    let secret = t.required_text(
        cx,
        "secret",
        "secret = \"<Secrets Manager id of the grant: client_id, client_secret, refresh_token>\"",
    );
    let login_url = match t.text(cx, "login_url") {
        Some(u) => {
            http_url(cx, &t.key("login_url"), &u).map(|u| u.trim_end_matches('/').to_string())
        }
        None => Some(SALESFORCE_LOGIN_URL.to_string()),
    };
    let object = match t.text(cx, "object") {
        None => Some("Lead".to_string()),
        Some(m) if m.v == "Lead" || m.v == "Contact" => Some(m.v),
        Some(m) => {
            cx.error(
                t.key("object"),
                &m.span,
                format!("object {:?}: expected \"Lead\" or \"Contact\"", m.v),
            );
            None
        }
    };
    let allow_duplicates = match t.get("allow_duplicates") {
        None => Some(false),
        Some(v) => match v.get_ref().as_bool() {
            Some(b) => Some(b),
            None => {
                cx.error(
                    t.key("allow_duplicates"),
                    &v.span(),
                    "allow_duplicates must be true or false",
                );
                None
            }
        },
    };
    let deal_stage = t.text(cx, "deal_stage").map(|a| a.v);
    Some(SalesforceConnection {
        secret: secret?.v,
        login_url: login_url?,
        object: object?,
        allow_duplicates: allow_duplicates?,
        deal_stage,
    })
}

fn header_name(cx: &mut Cx<'_>, key: &str, raw: &str, span: &Span) -> Option<http::HeaderName> {
    match http::HeaderName::from_bytes(raw.as_bytes()) {
        Ok(h) => Some(h),
        Err(_) => {
            cx.error(
                key,
                span,
                format!("{raw:?} is not a valid HTTP header name"),
            );
            None
        }
    }
}

fn webhook(cx: &mut Cx<'_>, t: &Tbl<'_, '_>) -> Option<WebhookConnection> {
    let url = t
        .required_text(
            cx,
            "url",
            "url = \"https://…\" (where the leads are POSTed)",
        )
        .and_then(|u| http_url(cx, &t.key("url"), &u));

    let auth_kind = match t.get("auth") {
        None => Some("none".to_string()),
        Some(v) => match cx.str(&t.key("auth"), v) {
            Some(a @ ("none" | "bearer" | "api_key" | "basic")) => Some(a.to_string()),
            Some(other) => {
                cx.error(
                    t.key("auth"),
                    &v.span(),
                    format!("unknown auth {other:?}; expected none, bearer, api_key or basic"),
                );
                None
            }
            None => None,
        },
    };
    let secret = t.text(cx, "secret");
    let api_key_header = t.text(cx, "api_key_header");
    let mut header_ok = true;
    let mut api_header: Option<http::HeaderName> = None;
    match (auth_kind.as_deref(), &secret) {
        (Some("none"), Some(s)) => {
            cx.error(
                t.key("secret"),
                &s.span,
                "secret is only used with auth = \"bearer\", \"api_key\" or \"basic\" (auth is \"none\")",
            );
        }
        (Some(a), None) if a != "none" && t.get("secret").is_none() => {
            t.missing(
                cx,
                "secret",
                &format!("auth = {a:?} needs secret = \"<Secrets Manager id>\""),
            );
        }
        _ => {}
    }
    match (auth_kind.as_deref(), &api_key_header) {
        (Some("api_key"), None) if t.get("api_key_header").is_none() => {
            t.missing(
                cx,
                "api_key_header",
                "auth = \"api_key\" needs api_key_header = \"<header name>\" (e.g. \"X-API-Key\")",
            );
        }
        (Some("api_key"), Some(h)) => {
            api_header = header_name(cx, &t.key("api_key_header"), h.v.trim(), &h.span);
            header_ok = api_header.is_some();
            if api_header
                .as_ref()
                .is_some_and(|n| *n == http::header::CONTENT_TYPE)
            {
                cx.error(
                    t.key("api_key_header"),
                    &h.span,
                    "leadbridge sets content-type itself: name another header",
                );
                header_ok = false;
            }
        }
        (Some(a), Some(h)) => {
            cx.error(
                t.key("api_key_header"),
                &h.span,
                format!("api_key_header is only used with auth = \"api_key\" (auth is {a:?})"),
            );
        }
        _ => {}
    }

    let mut headers = Vec::new();
    if let Some(h) = t.table(cx, "headers") {
        let mut names: Vec<http::HeaderName> = Vec::new();
        for (name, nspan, v) in h.entries() {
            let key = h.key(name);
            let Some(hn) = header_name(cx, &key, name, &nspan) else {
                continue;
            };
            if hn == http::header::AUTHORIZATION {
                cx.error(
                    &key,
                    &nspan,
                    "leadbridge sets authorization itself: use auth = \"bearer\", \"basic\" or \"api_key\" with a secret",
                );
                continue;
            }
            if hn == http::header::CONTENT_TYPE {
                cx.error(
                    &key,
                    &nspan,
                    "leadbridge sets content-type itself (the body is JSON)",
                );
                continue;
            }
            if api_header.as_ref() == Some(&hn) {
                cx.error(
                    &key,
                    &nspan,
                    format!("{hn} is the api_key_header: leadbridge sets it from the secret"),
                );
                continue;
            }
            if names.contains(&hn) {
                cx.error(
                    &key,
                    &nspan,
                    format!("header {hn} is given twice (names are case-insensitive)"),
                );
                continue;
            }
            names.push(hn);
            let Some(value) = cx.str(&key, v) else {
                continue;
            };
            if http::HeaderValue::from_str(value).is_err() {
                cx.error(
                    &key,
                    &v.span(),
                    "not a valid HTTP header value (visible ASCII, spaces and tabs only)",
                );
                continue;
            }
            headers.push((name.to_string(), value.to_string()));
        }
    }

    let auth = match auth_kind?.as_str() {
        "none" => WebhookAuth::None,
        "bearer" => WebhookAuth::Bearer { secret: secret?.v },
        "basic" => WebhookAuth::Basic { secret: secret?.v },
        _ => {
            if !header_ok {
                return None;
            }
            WebhookAuth::ApiKey {
                header: api_key_header?.v.trim().to_string(),
                secret: secret?.v,
            }
        }
    };
    Some(WebhookConnection {
        url: url?,
        auth,
        headers,
    })
}

/// A target property name: not blank, at most 100 characters.
fn target(cx: &mut Cx<'_>, key: &str, v: &Value<'_>) -> Option<At<String>> {
    let t = cx.text(key, v)?;
    if t.v.chars().count() > MAX_TARGET_CHARS {
        cx.error(
            key,
            &t.span,
            format!("property names are at most {MAX_TARGET_CHARS} characters"),
        );
        return None;
    }
    Some(t)
}

/// `fields` and `static`: `None` when there is no `fields` table (the adapter's default).
fn mapping(
    cx: &mut Cx<'_>,
    t: &Tbl<'_, '_>,
    kind: Option<Kind>,
    split_name: bool,
) -> Option<Mapping> {
    // target → the key that writes it first
    let mut written: HashMap<String, String> = HashMap::new();
    let mut claim = |cx: &mut Cx<'_>, target: &str, key: &str, span: &Span| -> bool {
        if let Some(first) = written.get(target) {
            cx.error(
                key,
                span,
                format!("property {target:?} is already written by {first}"),
            );
            false
        } else {
            written.insert(target.to_string(), key.to_string());
            true
        }
    };

    let mut fields = Vec::new();
    let fields_table = t.table(cx, "fields");
    if let Some(f) = &fields_table {
        for (src, sspan, v) in f.entries() {
            let key = f.key(src);
            let source = match FieldPath::parse(src) {
                Ok(p) => Some(p),
                Err(m) => {
                    cx.error(&key, &sspan, m);
                    None
                }
            };
            if let (
                Some(p),
                Some(k @ (Kind::HubSpot | Kind::Zoho | Kind::Salesforce | Kind::Pipedrive)),
            ) = (&source, kind)
            {
                if p.is_identity() {
                    let name = match k {
                        Kind::HubSpot => "hubspot",
                        Kind::Zoho => "zoho",
                        Kind::Pipedrive => "pipedrive",
                        _ => "salesforce",
                    };
                    cx.error(
                        &key,
                        &sspan,
                        format!("the {name} adapter writes {p} itself (it is how the contact is found): leave it out of the field map"),
                    );
                }
            }
            let (target_at, transform) = match v.get_ref() {
                DeValue::String(_) => (target(cx, &key, v), Some(Transform::default())),
                DeValue::Table(_) => {
                    let ft = cx.table(&key, v).expect("a table");
                    ft.only(cx, FIELD_KEYS, &format!("the field map of {src:?}"));
                    let tgt = match ft.get("property") {
                        None => {
                            ft.missing(cx, "property", "property = \"<target property>\"");
                            None
                        }
                        Some(pv) => target(cx, &ft.key("property"), pv),
                    };
                    (tgt, field_transform(cx, &ft))
                }
                _ => {
                    cx.type_error(&key, v, "a property name or a table { property = … }");
                    (None, None)
                }
            };
            let Some(target_at) = target_at else {
                continue;
            };
            let tkey = if matches!(v.get_ref(), DeValue::Table(_)) {
                join(&key, "property")
            } else {
                key.clone()
            };
            let all_answers = source == Some(FieldPath::AllAnswers);
            if all_answers && !target_at.v.contains("{key}") {
                cx.error(
                    &tkey,
                    &target_at.span,
                    "the answers.* target must contain {key} (each answer's key, snake-cased): e.g. \"lb_{key}\"",
                );
                continue;
            }
            if !all_answers && source.is_some() && target_at.v.contains("{key}") {
                cx.error(
                    &tkey,
                    &target_at.span,
                    "{key} is only replaced in the answers.* target",
                );
                continue;
            }
            if !claim(cx, &target_at.v, &key, &target_at.span) {
                continue;
            }
            if let (Some(source), Some(transform)) = (source, transform) {
                fields.push(FieldMap {
                    source,
                    target: target_at.v,
                    transform,
                });
            }
        }
    }

    let mut statics = BTreeMap::new();
    let static_table = t.table(cx, "static");
    if let Some(s) = &static_table {
        for (name, nspan, v) in s.entries() {
            let key = s.key(name);
            let name_v = Value::new(nspan.clone(), DeValue::String(name.into()));
            let Some(name_at) = target(cx, &key, &name_v) else {
                continue;
            };
            let value = match v.get_ref() {
                DeValue::String(x) => x.to_string(),
                DeValue::Integer(i) => i.to_string(),
                DeValue::Boolean(b) => b.to_string(),
                _ => {
                    cx.type_error(&key, v, "a string, integer or boolean");
                    continue;
                }
            };
            if !claim(cx, &name_at.v, &key, &nspan) {
                continue;
            }
            statics.insert(name_at.v, value);
        }
    }

    match (&fields_table, &static_table) {
        (None, None) => None,
        (None, Some(_)) => {
            cx.error(
                t.key("static"),
                &t.span_of_key("static"),
                format!(
                    "static values need a [{}] table: without one the adapter's built-in mapping is used, and it has no static values",
                    t.key("fields")
                ),
            );
            None
        }
        (Some(_), _) => Some(Mapping {
            fields,
            statics,
            split_name,
        }),
    }
}

fn field_transform(cx: &mut Cx<'_>, ft: &Tbl<'_, '_>) -> Option<Transform> {
    let mut ok = true;
    let mut tr = Transform::default();
    if let Some(v) = ft.get("truncate") {
        match cx.int(&ft.key("truncate"), v) {
            Some(n) if n >= 1 => tr.truncate = Some(n as usize),
            Some(n) => {
                cx.error(
                    ft.key("truncate"),
                    &v.span(),
                    format!("truncate must be at least 1 (characters), not {n}"),
                );
                ok = false;
            }
            None => ok = false,
        }
    }
    if let Some(v) = ft.get("case") {
        match cx.str(&ft.key("case"), v).map(Case::parse) {
            Some(Ok(c)) => tr.case = Some(c),
            Some(Err(m)) => {
                cx.error(ft.key("case"), &v.span(), m);
                ok = false;
            }
            None => ok = false,
        }
    }
    if let Some(m) = ft.table(cx, "values") {
        for (from, _, v) in m.entries() {
            match cx.str(&m.key(from), v) {
                Some(to) => {
                    tr.values.insert(from.to_string(), to.to_string());
                }
                None => ok = false,
            }
        }
    }
    ok.then_some(tr)
}

fn routes(
    cx: &mut Cx<'_>,
    v: &Value<'_>,
    defaults: &Policy,
    kinds: &BTreeMap<String, Option<Kind>>,
) -> Vec<Route> {
    let Some(arr) = cx.array("routes", v) else {
        return Vec::new();
    };
    if arr.is_empty() {
        cx.error(
            "routes",
            &v.span(),
            "no routes: add at least one [[routes]] (bot_id = \"*\" routes every bot)",
        );
    }
    let defined = kinds
        .keys()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .join(", ");
    let defined = if defined.is_empty() {
        "none (add a [connections.<name>] table)".to_string()
    } else {
        defined
    };
    let mut out = Vec::new();
    // bot id ("*" for the catch-all) → the route that has it
    let mut bots: HashMap<String, (String, usize)> = HashMap::new();
    for (i, rv) in arr.iter().enumerate() {
        let path = format!("routes[{i}]");
        let Some(t) = cx.table(&path, rv) else {
            continue;
        };
        t.only(
            cx,
            &[ROUTE_KEYS, POLICY_KEYS].concat(),
            "a [[routes]] entry",
        );

        let bot_id = t
            .required_text(
                cx,
                "bot_id",
                "bot_id = \"<the bot's id>\" (or \"*\" for every bot without its own route)",
            )
            .and_then(|b| {
                let raw = b.v.trim();
                let parsed = if raw == "*" {
                    Ok(None)
                } else {
                    BotId::parse(raw).map(|id| Some(id.as_str().to_string()))
                };
                let parsed = match parsed {
                    Ok(p) => p,
                    Err(e) => {
                        cx.error(t.key("bot_id"), &b.span, e.message);
                        return None;
                    }
                };
                let label = parsed.clone().unwrap_or_else(|| "*".into());
                let (line, _) = cx.lines.locate(b.span.start);
                if let Some((first, first_line)) = bots.get(&label) {
                    let what = if parsed.is_none() {
                        "the \"*\" route".to_string()
                    } else {
                        format!("a route for bot {label:?}")
                    };
                    cx.error(
                        t.key("bot_id"),
                        &b.span,
                        format!("{what} is already defined ({first}, line {first_line})"),
                    );
                    return None;
                }
                bots.insert(label, (path.clone(), line));
                Some(parsed)
            });

        let mut connections = Vec::new();
        let mut conn_ok = true;
        match t.get("connections") {
            None => {
                t.missing(
                    cx,
                    "connections",
                    &format!("connections = [\"<name>\", …]; defined: {defined}"),
                );
                conn_ok = false;
            }
            Some(cv) => match cx.strings(&t.key("connections"), cv) {
                None => conn_ok = false,
                Some(list) => {
                    if cx
                        .array(&t.key("connections"), cv)
                        .is_some_and(|a| a.len() != list.len())
                    {
                        conn_ok = false;
                    }
                    if list.is_empty() && conn_ok {
                        cx.error(
                            t.key("connections"),
                            &cv.span(),
                            format!("name at least one connection; defined: {defined}"),
                        );
                        conn_ok = false;
                    }
                    for (j, c) in list.into_iter().enumerate() {
                        let ckey = format!("{}[{j}]", t.key("connections"));
                        let name = c.v.trim().to_string();
                        if !kinds.contains_key(&name) {
                            cx.error(
                                &ckey,
                                &c.span,
                                format!("unknown connection {name:?}; defined: {defined}"),
                            );
                            conn_ok = false;
                        } else if connections.contains(&name) {
                            cx.error(
                                &ckey,
                                &c.span,
                                format!("connection {name:?} is listed twice"),
                            );
                            conn_ok = false;
                        } else {
                            connections.push(name);
                        }
                    }
                }
            },
        }

        let object = match t.get("object") {
            None => Some("contact".to_string()),
            Some(ov) => match cx.str(&t.key("object"), ov) {
                Some("contact") => Some("contact".to_string()),
                Some("lead") => {
                    let hubspots: Vec<&str> = connections
                        .iter()
                        .filter(|c| kinds.get(*c) == Some(&Some(Kind::HubSpot)))
                        .map(String::as_str)
                        .collect();
                    if hubspots.is_empty() {
                        Some("lead".to_string())
                    } else {
                        cx.error(
                            t.key("object"),
                            &ov.span(),
                            format!(
                                "object = \"lead\" is for webhook connections only: hubspot connections write contacts ({} {})",
                                hubspots.join(", "),
                                if hubspots.len() == 1 { "is hubspot" } else { "are hubspot" }
                            ),
                        );
                        None
                    }
                }
                Some(other) => {
                    cx.error(
                        t.key("object"),
                        &ov.span(),
                        format!("unknown object {other:?}; expected \"contact\" or \"lead\""),
                    );
                    None
                }
                None => None,
            },
        };

        let lead_source = t.text(cx, "lead_source").map(|a| a.v);
        let policy = policy(cx, &t, defaults);

        let mut required = Vec::new();
        if let Some(rv) = t.get("required") {
            let list = cx.strings(&t.key("required"), rv).unwrap_or_default();
            for (j, r) in list.into_iter().enumerate() {
                let rkey = format!("{}[{j}]", t.key("required"));
                match FieldPath::parse(&r.v) {
                    Ok(FieldPath::AllAnswers) => cx.error(
                        &rkey,
                        &r.span,
                        "answers.* cannot be required: name each answer (answers.<key>)",
                    ),
                    Ok(p) if required.contains(&p) => {
                        cx.error(&rkey, &r.span, format!("{p} is listed twice"))
                    }
                    Ok(p) => required.push(p),
                    Err(m) => cx.error(&rkey, &r.span, m),
                }
            }
        }

        let lane = t
            .get("lane")
            .and_then(|v| lane_value(cx, &t.key("lane"), v))
            .unwrap_or_default();
        let mut event_lanes = Vec::new();
        if let Some(lanes) = t.table(cx, "event_lanes") {
            for (k, span, v) in lanes.entries() {
                let key = lanes.key(k);
                let Ok(event_type) = EventType::parse(k) else {
                    cx.error(
                        &key,
                        &span,
                        format!(
                            "unknown event type {k:?}; expected one of {}",
                            EventType::ALL.join(", ")
                        ),
                    );
                    continue;
                };
                if let Some(l) = lane_value(cx, &key, v) {
                    event_lanes.push((event_type, l));
                }
            }
        }

        let enums = match t.table(cx, "enums") {
            Some(e) => enum_rules(cx, &e),
            None => Vec::new(),
        };

        if let (Some(bot_id), Some(object), true) = (bot_id, object, conn_ok) {
            out.push(Route {
                bot_id,
                connections,
                object,
                lead_source,
                policy,
                required,
                lane,
                event_lanes,
                enums,
            });
        }
    }
    out
}
