//! `[sources.<name>]`: the native inbound endpoints (`POST /v1/sources/<name>`).

use std::collections::BTreeMap;

use lb_vendors::source::SourceOptions;
use lb_vendors::sources;

use super::{header_name, valid_connection_name, Cx, Tbl};
use crate::{Route, Source};

const COMMON_KEYS: &[&str] = &["kind", "bot_id", "secret"];

/// Every source of the `[sources]` table, by name. `routes` decide whether a
/// source's bot has somewhere to go.
pub(super) fn sources(
    cx: &mut Cx<'_>,
    table: &Tbl<'_, '_>,
    routes: &[Route],
) -> BTreeMap<String, Source> {
    let mut out = BTreeMap::new();
    for (name, kspan, v) in table.entries() {
        let key = table.key(name);
        if !valid_connection_name(name) {
            cx.error(
                &key,
                &kspan,
                format!("invalid source name {name:?}: use 1 to 40 of a-z, 0-9, _ and -"),
            );
        }
        let Some(t) = cx.table(&key, v) else {
            continue;
        };
        let t = Tbl {
            at: kspan.clone(),
            ..t
        };
        let known = sources::names().join(", ");
        let kind = match t.get("kind") {
            None => {
                t.missing(cx, "kind", &format!("kind = one of {known}"));
                None
            }
            Some(v) => match cx.str(&t.key("kind"), v) {
                Some(k) => match sources::kind(k) {
                    Some(kind) => Some(kind),
                    None => {
                        cx.error(
                            t.key("kind"),
                            &v.span(),
                            format!("unknown source kind {k:?}; expected one of {known}"),
                        );
                        None
                    }
                },
                None => None,
            },
        };
        let allowed: Vec<&str> = match kind {
            Some(k) => [COMMON_KEYS, k.option_keys()].concat(),
            None => COMMON_KEYS.to_vec(),
        };
        if let Some(k) = kind {
            t.only(cx, &allowed, &format!("a {} source", k.name()));
        }
        let bot_id = t.required_text(
            cx,
            "bot_id",
            "bot_id = \"…\": the bot this source speaks for (its route and policies apply)",
        );
        if let Some(b) = &bot_id {
            if let Err(e) = lb_domain::BotId::parse(&b.v) {
                cx.error(t.key("bot_id"), &b.span, e.message);
            } else if !routes
                .iter()
                .any(|r| r.bot_id.as_deref().is_none_or(|id| id == b.v))
            {
                cx.error(
                    t.key("bot_id"),
                    &b.span,
                    format!(
                        "no route for bot {:?}: add a [[routes]] entry with bot_id = {:?} (or \"*\")",
                        b.v, b.v
                    ),
                );
            }
        }
        let secret = t.required_text(
            cx,
            "secret",
            "secret = \"<Secrets Manager id>\": the secret the vendor signs or authenticates with",
        );
        let mut options = SourceOptions::default();
        if let Some(kind) = kind {
            for (opt, _, ov) in t.entries() {
                if COMMON_KEYS.contains(&opt) || !kind.option_keys().contains(&opt) {
                    continue;
                }
                let okey = t.key(opt);
                match opt {
                    "fields" => {
                        if let Some(ft) = cx.table(&okey, ov) {
                            options.fields = field_map(cx, &ft);
                        }
                    }
                    "token_header" => {
                        if let Some(h) = cx.text(&okey, ov) {
                            if header_name(cx, &okey, h.v.trim(), &h.span).is_some() {
                                options.token_header = Some(h.v.trim().to_ascii_lowercase());
                            }
                        }
                    }
                    "public_url" => {
                        if let Some(u) = cx.text(&okey, ov) {
                            match url::Url::parse(u.v.trim()) {
                                Ok(p) if p.scheme() == "https" && p.host().is_some() && p.query().is_none() => {
                                    options.extra.insert(opt.to_string(), u.v.trim().to_string());
                                }
                                _ => cx.error(
                                    &okey,
                                    &u.span,
                                    "public_url must be the https URL the vendor calls, without a query string",
                                ),
                            }
                        }
                    }
                    _ => {
                        if let Some(s) = cx.text(&okey, ov) {
                            options
                                .extra
                                .insert(opt.to_string(), s.v.trim().to_string());
                        }
                    }
                }
            }
            if kind.option_keys().contains(&"fields") && t.get("fields").is_none() {
                t.missing(
                    cx,
                    "fields",
                    "a [sources.<name>.fields] table: canonical field = \"/json/pointer\"",
                );
            }
        }
        if let (Some(kind), Some(bot_id), Some(secret)) = (kind, bot_id, secret) {
            out.insert(
                name.to_string(),
                Source {
                    name: name.to_string(),
                    kind: kind.name(),
                    bot_id: bot_id.v.trim().to_string(),
                    secret: secret.v.trim().to_string(),
                    options,
                },
            );
        }
    }
    out
}

/// `"visitor.email" = "/contact/email"`: canonical field → JSON pointer.
fn field_map(cx: &mut Cx<'_>, t: &Tbl<'_, '_>) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for (target, kspan, v) in t.entries() {
        let key = t.key(target);
        if !is_target(target) {
            cx.error(
                &key,
                &kspan,
                format!(
                    "{target:?} is not a canonical field; use one of {} or answers.<key>",
                    sources::custom_json::known_targets().join(", ")
                ),
            );
            continue;
        }
        let Some(p) = cx.str(&key, v) else { continue };
        if !(p.is_empty() || p.starts_with('/')) {
            cx.error(
                &key,
                &v.span(),
                format!("{p:?} is not a JSON pointer: start it with / (\"/contact/email\")"),
            );
            continue;
        }
        out.push((target.to_string(), p.to_string()));
    }
    if out.is_empty() && !t.map.is_empty() {
        return out;
    }
    if !out.iter().any(|(k, _)| k.starts_with("visitor.")) {
        cx.error(
            t.path.clone(),
            &t.at,
            "map at least one of visitor.email, visitor.phone, visitor.wa_id",
        );
    }
    out
}

fn is_target(target: &str) -> bool {
    sources::custom_json::known_targets().contains(&target)
        || target
            .strip_prefix("answers.")
            .is_some_and(|k| !k.is_empty() && k.len() <= 100)
}
