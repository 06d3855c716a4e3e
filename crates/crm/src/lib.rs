//! Outbound adapters: one module per CRM, each implementing the pipeline's
//! [`lb_pipeline::Crm`] port. Only this crate knows CRM JSON.

pub mod classify;
pub mod hubspot;
pub mod webhook;

pub use hubspot::{HubSpotConfig, HubSpotCrm};
pub use webhook::{WebhookAuthKind, WebhookCrm, WebhookSettings};
