//! A Pipedrive simulator: persons (API v2), notes (API v1, which has no v2),
//! deals (v2) and person fields (v1), with Pipedrive's paths, envelopes,
//! status codes, burst windows, daily token budget and lagging search, plus
//! the `/__admin` API of contracts.md §3.
//!
//! Sources are cited where each behaviour is modelled, with the research
//! notes' confidence marks: **[V]** read in an official doc or the official
//! SDK (`pipedrive/client-nodejs` v32.2.1, cited as "SDK"), **[D]** seen in a
//! secondary copy (an integrator's code or test fixture, a user's report of a
//! real answer), **[U]** unconfirmed: no source showed it, the simulator picks
//! the documented-looking or the stricter behaviour and the adapter must
//! tolerate both. The research notes are `shared/design/research/crm-and-vendor-apis.md`
//! §A.3 (cited as "A.3") and Pipedrive's readme docs ("Core API concepts":
//! responses, rate limiting, pagination, custom fields; cited as "readme").
//!
//! Code map:
//! - `routes`: the route table; `gate`: authentication, faults, the daily
//!   budget and the burst windows in front of every business route, and the
//!   rate-limit headers on the way out; `admin`: `/__admin`.
//! - `persons`: persons (create, patch, read, list, delete) and their search;
//!   `notes`; `deals` (with pipelines and stages); `fields`: person fields and
//!   the validation of `custom_fields` values.
//! - `store`: records and the search-visible history of persons; `state`:
//!   everything behind one `std` mutex, never held across an await.
//! - `rate_limit`: rolling windows that also tell when they reset; `error`:
//!   Pipedrive's error envelopes and extractors that answer with them; `body`:
//!   strict reading of v2 JSON bodies (v2 rejects unknown parameters and
//!   loosely typed values).
//!
//! Deliberately absent: organizations, leads, projects, activities, users,
//! filters, OAuth, merges, field selectors, `sort` parameters, HTML
//! sanitization of note contents, and the Cloudflare 403 block that follows
//! ignored 429s (readme).

mod admin;
mod body;
mod deals;
mod error;
mod fields;
mod gate;
mod notes;
mod persons;
mod rate_limit;
mod routes;
mod state;
mod store;

#[cfg(test)]
mod tests;

use std::net::SocketAddr;

use state::{Shared, State};

use crate::server::Server;

/// Settings of one simulated Pipedrive company.
#[derive(Clone, Debug)]
pub struct PipedriveSimConfig {
    /// The API token the simulator accepts (header `x-api-token`, or the
    /// legacy `?api_token=` query parameter).
    pub token: String,
    /// Requests per burst window, per token. Readme, "Burst limits" [V]:
    /// API-token limits per 2 s are Essential 20, Advanced 40, Professional 80,
    /// Power 100, Enterprise 120. Default: Professional.
    pub rate_limit_max: u32,
    /// The burst window: "a rolling 2-second window" (readme [V]).
    pub rate_limit_window_ms: u64,
    /// The search endpoints' own limit per window: "10 requests per 2 seconds"
    /// on every plan (readme [V]). Whether a search also takes a slot of the
    /// general window is [U]; here it does (the stricter reading).
    pub search_rate_max: u32,
    /// Search sees each person as it was this long ago (A.3: the search index
    /// is eventually consistent [R]). Default 0; tests of the lag set it.
    pub search_lag_ms: u64,
    /// The company's daily token budget. Readme [V]: "30,000 base tokens ×
    /// subscription plan multiplier × number of seats"; default one
    /// Professional seat (multiplier 3). Past it every call is a 429 until the
    /// budget resets at the server's midnight (here: when `/__admin/config`
    /// sets `daily_used` back).
    pub daily_budget: u64,
    /// Tokens spent today.
    pub daily_used: u64,
}

impl Default for PipedriveSimConfig {
    fn default() -> Self {
        PipedriveSimConfig {
            token: "pd-sim-token".to_owned(),
            rate_limit_max: 80,
            rate_limit_window_ms: 2_000,
            search_rate_max: 10,
            search_lag_ms: 0,
            daily_budget: 90_000,
            daily_used: 0,
        }
    }
}

/// The simulator's router, for embedding in another server. Its timeout
/// faults hold requests until the client gives up.
pub fn router(config: PipedriveSimConfig) -> axum::Router {
    routes::build(Shared::new(State::new(config)))
}

/// A Pipedrive simulator serving on a local port. Dropping it stops the server too.
pub struct RunningPipedriveSim {
    /// `http://127.0.0.1:PORT`, without a trailing slash: the API's
    /// `https://api.pipedrive.com` (paths start with `/api/v2/` or `/v1/`).
    pub base_url: String,
    /// The API token it accepts.
    pub token: String,
    server: Server,
}

impl std::fmt::Debug for RunningPipedriveSim {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunningPipedriveSim")
            .field("base_url", &self.base_url)
            .finish_non_exhaustive()
    }
}

impl RunningPipedriveSim {
    /// Binds `addr` (port 0 picks a free port) and serves on a spawned task.
    pub async fn start(
        addr: SocketAddr,
        cfg: PipedriveSimConfig,
    ) -> std::io::Result<RunningPipedriveSim> {
        let token = cfg.token.clone();
        let app = Shared::new(State::new(cfg));
        let shutdown = app.shutdown.clone();
        let server = Server::start(addr, routes::build(app), shutdown, "Pipedrive").await?;
        Ok(RunningPipedriveSim {
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

    /// Like [`RunningPipedriveSim::shutdown`], and waits until the server task
    /// has ended (in-flight requests answered, or after a 5 s grace period).
    pub async fn shutdown_and_wait(self) {
        self.server.shutdown_and_wait().await;
    }
}
