//! The local stack's native sources: without a config file, one source of each
//! vendor kind, named after it, for bot `bot_<kind>` (routed like every bot to
//! the HubSpot simulator), each with a local secret, listed in the stack file.

use std::collections::BTreeMap;

use base64::Engine as _;
use lb_config::Source;
use lb_vendors::source::{SourceOptions, SourceSecrets};
use lb_vendors::sources;
use serde::{Deserialize, Serialize};

/// What a tool needs to send to one source: `"sources": {"<name>": {...}}` in the stack file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceInfo {
    pub kind: String,
    pub bot_id: String,
    pub url: String,
    /// The value the vendor signs (or authenticates) with.
    pub secret: String,
    /// WhatsApp's subscription handshake token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verify_token: Option<String>,
}

/// The WhatsApp handshake token of the local defaults.
pub const LOCAL_VERIFY_TOKEN: &str = "lb-local-verify-token";

/// The secret value a local source of `kind` gets.
pub fn local_secret(kind: &str) -> String {
    match kind {
        // Standard Webhooks secrets are `whsec_` + base64 of 24 to 64 bytes.
        "standard_webhooks" => format!(
            "whsec_{}",
            base64::engine::general_purpose::STANDARD.encode(b"leadbridge-local-standard-webhooks")
        ),
        other => format!("{other}-local-secret"),
    }
}

/// The field map of the local `custom_json` source: a Typebot-style body
/// `{"id", "email", "phone", "name", "answers": {...}}`.
pub fn local_custom_fields() -> Vec<(String, String)> {
    [
        ("event_id", "/id"),
        ("visitor.email", "/email"),
        ("visitor.phone", "/phone"),
        ("visitor.name", "/name"),
        ("answers.*", "/answers"),
    ]
    .into_iter()
    .map(|(a, b)| (a.to_string(), b.to_string()))
    .collect()
}

/// One source of every kind, with its secret id under `prefix`.
pub fn defaults(prefix: &str) -> BTreeMap<String, Source> {
    sources::KINDS
        .iter()
        .map(|k| {
            let name = k.name().to_string();
            let options = SourceOptions {
                fields: if k.option_keys().contains(&"fields") {
                    local_custom_fields()
                } else {
                    Vec::new()
                },
                ..SourceOptions::default()
            };
            let src = Source {
                name: name.clone(),
                kind: k.name(),
                bot_id: format!("bot_{name}"),
                secret: format!("{prefix}/sources/{name}"),
                options,
            };
            (name, src)
        })
        .collect()
}

/// The Secrets Manager value of a local default source.
pub fn default_secret_value(kind: &str) -> String {
    let mut v = serde_json::json!({"secrets": [local_secret(kind)]});
    if kind == "whatsapp" {
        v["verify_token"] = LOCAL_VERIFY_TOKEN.into();
    }
    v.to_string()
}

/// The stack file's entry of each source: the secret values come from
/// `values` (secret id → Secrets Manager value).
pub fn infos(
    sources: &BTreeMap<String, Source>,
    ingest_url: &str,
    values: &BTreeMap<String, String>,
) -> BTreeMap<String, SourceInfo> {
    sources
        .values()
        .map(|s| {
            let secrets = values
                .get(&s.secret)
                .map(|v| SourceSecrets::from_secret_string(v))
                .unwrap_or_default();
            (
                s.name.clone(),
                SourceInfo {
                    kind: s.kind.to_string(),
                    bot_id: s.bot_id.clone(),
                    url: format!("{ingest_url}/v1/sources/{}", s.name),
                    secret: secrets.secrets.first().cloned().unwrap_or_default(),
                    verify_token: secrets.verify_token,
                },
            )
        })
        .collect()
}
