//! The vendor kinds a `[sources.<name>]` may be. Adding a vendor: one module
//! here implementing [`SourceKind`], one line in [`KINDS`], its fixtures in
//! `tests/fixtures/vendors/` (with their sources).

pub mod chatbase;
pub mod crisp;
pub mod custom_json;
pub mod dialogflow_cx;
pub mod drift;
pub mod intercom;
pub mod standard_webhooks;
pub mod tidio;
pub mod twilio;
pub mod whatsapp;

use crate::source::SourceKind;

/// Every kind, by [`SourceKind::name`].
pub static KINDS: &[&dyn SourceKind] = &[
    &custom_json::CustomJson,
    &dialogflow_cx::DialogflowCx,
    &standard_webhooks::StandardWebhooks,
    &chatbase::Chatbase,
    &drift::Drift,
    &tidio::Tidio,
    &intercom::Intercom,
    &whatsapp::WhatsApp,
    &twilio::Twilio,
    &crisp::Crisp,
];

/// The kind of that name (`kind = "…"` in the config file).
pub fn kind(name: &str) -> Option<&'static dyn SourceKind> {
    KINDS.iter().copied().find(|k| k.name() == name)
}

/// The names, for error messages and docs.
pub fn names() -> Vec<&'static str> {
    KINDS.iter().map(|k| k.name()).collect()
}
