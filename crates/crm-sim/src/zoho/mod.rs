//! A Zoho CRM (API v8) simulator: the accounts server's token endpoint and
//! the CRM API on one host — records of Leads, Contacts and Deals (upsert,
//! insert, update, read, list, search), notes, a contact's deals, the fields
//! metadata — with Zoho's paths, bodies, status codes and limits, plus the
//! `/__admin` API of contracts.md §3.
//!
//! Every behaviour cites its source in the module that implements it. Legend
//! (as in `../shared/design/research/crm-and-vendor-apis.md`): [V] read in an
//! official doc, the official OpenAPI spec (`zoho/crm-oas`, v8.0) or the
//! official SDK (`zoho/zohocrm-python-sdk-8.0`); [D] seen through a secondary
//! source (an issue thread, a third-party client); "unconfirmed" marks a
//! choice no source showed — made on the strict side, so that an adapter that
//! passes here does not rely on leniency.
//!
//! Code map:
//! - `routes`: the route table, the token endpoint; `gate`: auth, faults,
//!   concurrency and credits in front of the API; `admin`: `/__admin`.
//! - `oauth`: the grant, minted access tokens, the minting limit.
//! - `records`: record writes (upsert/insert/update) and reads; `notes`;
//!   `search`: the criteria language and lagging search; `paging`: list params.
//! - `schema`: modules and fields and value checks; `store`: records, notes
//!   and their history; `state`: everything behind one `std` mutex;
//!   `error`: Zoho error bodies. Faults and the server are the crate's shared
//!   `faults` and `server`.
//!
//! Deliberately absent: other modules (Accounts, Tasks…), deleting records,
//! `page_token` paging, COQL, the composite API, layouts and layout rules,
//! workflow triggers, scopes, multi-DC accounts servers.
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! use crm_sim::zoho::{RunningZohoSim, ZohoSimConfig};
//! let sim = RunningZohoSim::start("127.0.0.1:0".parse().expect("addr"), ZohoSimConfig::default()).await?;
//! println!("{} {} {}", sim.accounts_url, sim.base_url, sim.refresh_token);
//! sim.shutdown();
//! # Ok(()) }
//! ```

mod admin;
mod error;
mod gate;
mod notes;
mod oauth;
mod paging;
mod records;
mod routes;
mod schema;
mod search;
mod state;
mod store;

#[cfg(test)]
mod tests;

use std::net::SocketAddr;

use state::{Shared, State};

use crate::server::Server;

/// Settings of one simulated Zoho CRM org and its OAuth client.
#[derive(Clone, Debug)]
pub struct ZohoSimConfig {
    pub client_id: String,
    pub client_secret: String,
    /// The one valid refresh token (the grant).
    pub refresh_token: String,
    /// How long a minted access token works (Zoho: 3600 s).
    pub access_token_ttl_s: u64,
    /// Access tokens one refresh token may mint per window (Zoho: 10)…
    pub token_mint_limit: u32,
    /// …per this many seconds (Zoho: 600).
    pub token_mint_window_s: u64,
    /// Search sees each record as it was this long ago (Zoho documents an
    /// indexing delay without a number).
    pub search_lag_ms: u64,
    /// Requests in flight at once (Zoho: Free 5, Standard 10, Professional 15,
    /// Enterprise 20, Ultimate 25).
    pub concurrency_limit: u32,
    /// API credits per rolling 24 h (Zoho Standard: 50,000 + 250 per user).
    pub credits_limit: u64,
    /// Credits used so far (set back through `/__admin/config`).
    pub credits_used: u64,
}

impl Default for ZohoSimConfig {
    fn default() -> Self {
        ZohoSimConfig {
            client_id: "1000.SIMCLIENTID0000000000000000000".to_owned(),
            client_secret: "sim-client-secret".to_owned(),
            refresh_token: "1000.sim-refresh-token.grant".to_owned(),
            access_token_ttl_s: 3600,
            token_mint_limit: 10,
            token_mint_window_s: 600,
            search_lag_ms: 1000,
            concurrency_limit: 10,
            credits_limit: 50_000,
            credits_used: 0,
        }
    }
}

/// The simulator's router, for embedding in another server (token answers
/// then name the request's `Host` as `api_domain`).
pub fn router(config: ZohoSimConfig) -> axum::Router {
    routes::build(Shared::new(State::new(config)))
}

/// A Zoho simulator serving on a local port. Dropping it stops the server too.
pub struct RunningZohoSim {
    /// The API domain, `http://127.0.0.1:PORT` without a trailing slash (what
    /// token answers name as `api_domain`); the API is under `/crm/v8`.
    pub base_url: String,
    /// The accounts server (the same host): `{accounts_url}/oauth/v2/token`.
    pub accounts_url: String,
    pub client_id: String,
    pub client_secret: String,
    /// A valid grant.
    pub refresh_token: String,
    server: Server,
}

impl std::fmt::Debug for RunningZohoSim {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunningZohoSim")
            .field("base_url", &self.base_url)
            .finish_non_exhaustive()
    }
}

impl RunningZohoSim {
    /// Binds `addr` (port 0 picks a free port) and serves on a spawned task.
    pub async fn start(addr: SocketAddr, cfg: ZohoSimConfig) -> std::io::Result<RunningZohoSim> {
        let (client_id, client_secret, refresh_token) = (
            cfg.client_id.clone(),
            cfg.client_secret.clone(),
            cfg.refresh_token.clone(),
        );
        let app = Shared::new(State::new(cfg));
        let shutdown = app.shutdown.clone();
        let server = Server::start(addr, routes::build(app.clone()), shutdown, "Zoho").await?;
        app.lock().api_domain = Some(server.base_url.clone());
        Ok(RunningZohoSim {
            base_url: server.base_url.clone(),
            accounts_url: server.base_url.clone(),
            client_id,
            client_secret,
            refresh_token,
            server,
        })
    }

    /// Stops accepting connections, finishes in-flight requests (requests held
    /// by timeout faults are released) and ends the server task.
    pub fn shutdown(self) {
        // Dropping the server does the work.
    }

    /// Like [`RunningZohoSim::shutdown`], and waits until the server task has
    /// ended (in-flight requests answered, or after a 5 s grace period).
    pub async fn shutdown_and_wait(self) {
        self.server.shutdown_and_wait().await;
    }
}
