//! Outbound adapters: one module per CRM, each implementing the pipeline's
//! [`lb_pipeline::Crm`] port. Only this crate knows CRM JSON.

pub mod classify;
pub mod hubspot;

pub use hubspot::{
    default_mapping, render_schema_table, HubSpotConfig, HubSpotCrm, SchemaRow, SchemaStatus,
    SCHEMA_DRIFT,
};
