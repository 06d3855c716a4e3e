//! A HubSpot CRM v3 simulator: contacts, notes and deals with HubSpot's
//! paths, bodies, status codes, rate limits and lagging search, plus the
//! `/__admin` API of contracts.md §3 for fault injection and inspection.
//!
//! Code map:
//! - `routes`: the route table; `gate`: auth, faults and rate limits in front
//!   of every business route; `handlers`: the CRM endpoints; `admin`: `/__admin`.
//! - `writes`: create / update / upsert rules; `validation`: property values
//!   against the `schema`; `search`: the lagging search index.
//! - `store`: records, their history (for search lag) and associations;
//!   `state`: everything behind one `std` mutex that is never held across an await.
//! - `rate_limit`, `error` (HubSpot error bodies), `render` (record JSON and
//!   association paging); the fault machinery and the server are the crate's
//!   shared `faults` and `server`.
//! - `scopes`: which token scopes each endpoint requires ([`SCOPES`],
//!   [`required_scopes`]); `gate` answers 403 `MISSING_SCOPES` when the
//!   configured [`SimConfig::scopes`] grant none of them.
//!
//! The account's daily quota ([`SimConfig::daily_limit`]) is counted on every
//! admitted call; `daily_used` is set back through `/__admin/config` (midnight).
//!
//! Deliberately absent: archiving/deleting records, companies, owners,
//! pipelines API writes (the read serves the deal pipeline), OAuth, merges, and any API write of
//! `hs_additional_emails` (set them with `PUT /__admin/contacts/{id}/additional-emails`).

mod admin;
mod error;
mod gate;
mod handlers;
mod objects;
mod rate_limit;
mod render;
mod routes;
mod schema;
mod scopes;
mod search;
mod state;
mod store;
mod validation;
mod writes;

use std::collections::BTreeSet;
use std::net::SocketAddr;

use state::{Shared, State};

pub use scopes::{required_scopes, SCOPES};

use crate::server::Server;

/// Settings of one simulated HubSpot portal.
#[derive(Clone, Debug)]
pub struct SimConfig {
    /// The bearer token the simulator accepts.
    pub token: String,
    /// Requests per rolling window, per token (HubSpot Free/Starter: 100).
    /// An admitted request holds one slot for the window; a rejected (429)
    /// request holds none, so a client that waits out the window recovers.
    pub rate_limit_max: u32,
    /// The rolling window (HubSpot: 10 s).
    pub rate_limit_window_ms: u64,
    /// Search sees each record as it was this long ago.
    pub search_lag_ms: u64,
    /// The search endpoints' own limit, per second per token; its 429 carries
    /// no rate-limit headers.
    pub search_rate_per_s: u32,
    /// The scopes granted to the token. A call whose endpoint accepts none of
    /// them is answered 403 `MISSING_SCOPES` (see [`required_scopes`]).
    /// Default: every scope in [`SCOPES`], so every call is allowed.
    pub scopes: BTreeSet<String>,
    /// Requests per day for the account (HubSpot Free/Starter: 250,000, shared
    /// by every app of the account — usage guidelines, as quoted in our
    /// hubspot-fidelity research T7/C2; it resets at midnight in the account's
    /// time zone — changelog 2018-11-06 (C3); here when `/__admin/config` sets
    /// `daily_used` back). Past it, every call is a 429 with
    /// `policyName: "DAILY"` (our crm-apis notes; the body's exact text is
    /// unconfirmed). Unconfirmed, modelled on the strict side: that search
    /// calls count too (the guidelines exempt search from the ten-secondly
    /// window only), and that a refused (429) call does not.
    pub daily_limit: u64,
    /// Requests counted against the daily limit so far.
    pub daily_used: u64,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            token: "sim-token".to_owned(),
            rate_limit_max: 100,
            rate_limit_window_ms: 10_000,
            search_lag_ms: 2_000,
            search_rate_per_s: 5,
            scopes: SCOPES.iter().map(|s| (*s).to_owned()).collect(),
            daily_limit: 250_000,
            daily_used: 0,
        }
    }
}

/// The simulator's router, for embedding in another server. Its timeout
/// faults hold requests until the client gives up.
pub fn router(config: SimConfig) -> axum::Router {
    routes::build(Shared::new(State::new(config)))
}

/// The HubSpot simulator: `HubSpotSim::start(addr, config)` is [`RunningSim::start`].
pub type HubSpotSim = RunningSim;

/// A simulator serving on a local port. Dropping it stops the server too.
pub struct RunningSim {
    /// `http://127.0.0.1:PORT`, without a trailing slash.
    pub base_url: String,
    /// The bearer token it accepts.
    pub token: String,
    server: Server,
}

impl std::fmt::Debug for RunningSim {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunningSim")
            .field("base_url", &self.base_url)
            .finish_non_exhaustive()
    }
}

impl RunningSim {
    /// Binds `addr` (port 0 picks a free port) and serves on a spawned task.
    pub async fn start(addr: SocketAddr, config: SimConfig) -> std::io::Result<RunningSim> {
        let token = config.token.clone();
        let app = Shared::new(State::new(config));
        let shutdown = app.shutdown.clone();
        let server = Server::start(addr, routes::build(app), shutdown, "HubSpot").await?;
        Ok(RunningSim {
            base_url: server.base_url.clone(),
            token,
            server,
        })
    }

    /// Stops accepting connections, finishes in-flight requests (requests held
    /// by timeout faults are released) and ends the server task.
    pub fn shutdown(self) {
        // Dropping the server does the work.
    }

    /// Like [`RunningSim::shutdown`], and waits until the server task has ended
    /// (in-flight requests answered, or after a 5 s grace period).
    pub async fn shutdown_and_wait(self) {
        self.server.shutdown_and_wait().await;
    }
}
