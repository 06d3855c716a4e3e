//! Local CRM simulators for tests and the local stack (`make dev`).
//!
//! [`hubspot`] simulates the HubSpot CRM v3 API (and the v4 association list)
//! closely enough that the production HubSpot adapter is tested against it:
//! same paths, bodies, status codes, rate-limit headers, token scopes
//! ([`hubspot::SCOPES`]), association paging and eventually consistent search,
//! plus the `/__admin` API (faults, stats, reset, config including the granted
//! scopes, schema edits, a contact's additional emails).
//!
//! [`pipedrive`] simulates Pipedrive (persons, deals, notes, person fields; lagging search) with the same `/__admin` API.
//!
//! [`webhook`] is a generic webhook target (Zapier, Make, n8n, a custom
//! endpoint): it records every POST, can require an auth header, and serves
//! the same fault injection.
//!
//! [`salesforce`] simulates the Salesforce REST API v60.0 and its login server (OAuth refresh with rotation, JWT bearer; upsert by Email, sObject Collections, Composite, SOQL subset, describe, Opportunities with contact roles, converted Leads, duplicate rules, daily allocation) with the same `/__admin` API.
//!
//! [`zoho`] simulates Zoho CRM API v8 and its accounts server (OAuth refresh, records upsert/search, notes, deals, fields; lagging search) with the same `/__admin` API.
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! use crm_sim::{RunningSim, SimConfig};
//! let sim = RunningSim::start("127.0.0.1:0".parse().expect("addr"), SimConfig::default()).await?;
//! println!("{} {}", sim.base_url, sim.token);
//! sim.shutdown();
//! # Ok(()) }
//! ```

mod faults;
pub mod hubspot;
pub mod pipedrive;
pub mod salesforce;
mod server;
pub mod webhook;
pub mod zoho;

pub use hubspot::{router, HubSpotSim, RunningSim, SimConfig};
pub use webhook::RunningWebhookSim;
