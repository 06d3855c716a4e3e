//! Outbound adapters: one module per CRM, each implementing the pipeline's
//! [`lb_pipeline::Crm`] port. Only this crate knows CRM JSON.
//! [`connections`] builds them from the config file.

pub mod classify;
pub mod connections;
pub mod deal;
pub mod hubspot;
mod lookup;
mod mapped;
pub mod net;
pub mod oauth;
pub mod pipedrive;
pub mod salesforce;
pub mod throttling;
pub mod webhook;
pub mod zoho;

pub use hubspot::{
    default_mapping, render_schema_table, HubSpotConfig, HubSpotCrm, SchemaRow, SchemaStatus,
    SCHEMA_DRIFT,
};
pub use pipedrive::{PipedriveConfig, PipedriveCrm};
pub use salesforce::{SalesforceConfig, SalesforceCrm};
pub use webhook::{WebhookAuthKind, WebhookCrm, WebhookSettings};
pub use zoho::{ZohoConfig, ZohoCrm};
