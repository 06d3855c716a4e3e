//! A Salesforce simulator: the login server's token endpoint and one org's
//! REST API (`/services/data/v60.0`) on one host — Leads, Contacts, Tasks,
//! Opportunities and OpportunityContactRoles (upsert by an idLookup field,
//! create, read, update, sObject Collections, Composite, a SOQL subset,
//! describe), converted Leads, duplicate rules, the daily API allocation,
//! plus the `/__admin` API of contracts.md §3.
//!
//! Every behaviour cites its source where it is implemented. Legend (as in
//! `../shared/design/research/crm-and-vendor-apis.md` §A.1): [V] read in an
//! official Salesforce doc (developer.salesforce.com, help.salesforce.com);
//! [D] seen through a secondary source (a third-party page, an integrator's
//! code, Stack Exchange); [R] recollection not re-verified — modelled on the
//! strict side and marked unconfirmed, so that an adapter that passes here
//! does not rely on leniency.
//!
//! Code map:
//! - `routes`: the route table; `gate`: count, auth (`Authorization: Bearer`),
//!   faults and the daily allocation in front of the API, `Sforce-Limit-Info`
//!   on every answer; `admin`: `/__admin`.
//! - `oauth`: the token endpoint (refresh-token grant with optional rotation,
//!   JWT bearer with its RS256 signature checked), access tokens.
//! - `api`: every REST operation as a function of the state (the routes and
//!   Composite's subrequests both go through it); `soql`: the query subset.
//! - `schema`: sObjects, fields, describe, value checks; `store`: records and
//!   Salesforce-style ids; `state`: everything behind one `std` mutex;
//!   `error`: Salesforce error bodies. Faults and the server are the crate's
//!   shared `faults` and `server`.
//!
//! Deliberately absent: other sObjects (Account, OpportunityStage, …; an
//! Opportunity's `AccountId` can name nothing that exists), sales processes
//! and record types (every Opportunity may take every active stage),
//! Opportunity's derived fields (Probability, ForecastCategory, IsClosed,
//! IsWon), deleting records, query paging (`nextRecordsUrl`), relationship queries, SOSL,
//! the Bulk API, assignment rules, workflow, field-level security, sharing,
//! the certificate's own checks (its expiry, its chain: only its public key
//! verifies JWT bearer assertions).
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! use crm_sim::salesforce::{RunningSalesforceSim, SalesforceSimConfig};
//! let sim = RunningSalesforceSim::start("127.0.0.1:0".parse().expect("addr"), SalesforceSimConfig::default()).await?;
//! println!("{} {} {}", sim.login_url, sim.instance_url, sim.client_id);
//! sim.shutdown();
//! # Ok(()) }
//! ```

mod admin;
mod api;
mod error;
mod gate;
mod oauth;
mod routes;
mod schema;
mod soql;
mod state;
mod store;

#[cfg(test)]
mod tests;

use std::net::SocketAddr;

use state::{Shared, State};

use crate::server::Server;

/// The API version the simulator serves (`/services/data/v60.0`, Spring '24).
pub const API_VERSION: &str = "v60.0";

/// Settings of one simulated org and its connected (external client) app.
#[derive(Clone, Debug)]
pub struct SalesforceSimConfig {
    /// The consumer key.
    pub client_id: String,
    /// The consumer secret.
    pub client_secret: String,
    /// The grant's refresh token (replaced on every refresh when
    /// `rotate_refresh_tokens` is on).
    pub refresh_token: String,
    /// The integration user a JWT bearer assertion names as `sub`.
    pub username: String,
    /// The connected app's certificate ("Use digital signatures"), PEM: the
    /// X.509 `CERTIFICATE` or its RSA `PUBLIC KEY`. JWT bearer assertions
    /// must be RS256-signed with its private key; without one every JWT
    /// bearer grant is refused (`invalid_grant`). Test-only keys:
    /// `crates/crm-sim/testdata/jwt-test-*`.
    pub jwt_public_key: Option<String>,
    /// How long an access token works (the org's session timeout; Salesforce
    /// default two hours [R]).
    pub access_token_ttl_s: u64,
    /// Refresh-token rotation on the app ([V] help.salesforce.com
    /// `remoteaccess_oauth_refresh_token_flow.htm`).
    pub rotate_refresh_tokens: bool,
    /// The org's daily API request allocation (Enterprise: 100,000 + per
    /// license, [D] research A.1).
    pub daily_api_limit: u64,
    /// API requests used in the current 24 h (set through `/__admin/config`).
    pub api_used: u64,
}

impl Default for SalesforceSimConfig {
    fn default() -> Self {
        SalesforceSimConfig {
            client_id: "3MVG9SIMULATORCONSUMERKEY0000000000000000000000000000000000000000000"
                .to_owned(),
            client_secret: "SIMCONSUMERSECRET0000000000000000000000000000000000000000000000"
                .to_owned(),
            refresh_token: "5Aep861SIM.refresh.token.grant".to_owned(),
            username: "integration@sim.example.com".to_owned(),
            jwt_public_key: None,
            access_token_ttl_s: 7200,
            rotate_refresh_tokens: false,
            daily_api_limit: 100_000,
            api_used: 0,
        }
    }
}

/// The simulator's router, for embedding in another server (token answers
/// then name the request's `Host` as `instance_url`).
pub fn router(config: SalesforceSimConfig) -> axum::Router {
    routes::build(Shared::new(State::new(config)))
}

/// A Salesforce simulator serving on a local port. Dropping it stops the server too.
pub struct RunningSalesforceSim {
    /// `http://127.0.0.1:PORT`, without a trailing slash: the login server
    /// and the instance are this one host.
    pub base_url: String,
    /// The login server: `{login_url}/services/oauth2/token`.
    pub login_url: String,
    /// What token answers name as `instance_url`; the API is under
    /// `{instance_url}/services/data/v60.0`.
    pub instance_url: String,
    pub client_id: String,
    pub client_secret: String,
    /// A valid grant (the first one, when tokens rotate).
    pub refresh_token: String,
    /// The JWT bearer flow's `sub`.
    pub username: String,
    server: Server,
}

impl std::fmt::Debug for RunningSalesforceSim {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunningSalesforceSim")
            .field("base_url", &self.base_url)
            .finish_non_exhaustive()
    }
}

impl RunningSalesforceSim {
    /// Binds `addr` (port 0 picks a free port) and serves on a spawned task.
    pub async fn start(
        addr: SocketAddr,
        cfg: SalesforceSimConfig,
    ) -> std::io::Result<RunningSalesforceSim> {
        if let Some(pem) = &cfg.jwt_public_key {
            oauth::app_public_key(pem)
                .map_err(|why| std::io::Error::new(std::io::ErrorKind::InvalidInput, why))?;
        }
        let (client_id, client_secret, refresh_token, username) = (
            cfg.client_id.clone(),
            cfg.client_secret.clone(),
            cfg.refresh_token.clone(),
            cfg.username.clone(),
        );
        let app = Shared::new(State::new(cfg));
        let shutdown = app.shutdown.clone();
        let server =
            Server::start(addr, routes::build(app.clone()), shutdown, "Salesforce").await?;
        app.lock().instance_url = Some(server.base_url.clone());
        Ok(RunningSalesforceSim {
            base_url: server.base_url.clone(),
            login_url: server.base_url.clone(),
            instance_url: server.base_url.clone(),
            client_id,
            client_secret,
            refresh_token,
            username,
            server,
        })
    }

    /// Stops accepting connections, finishes in-flight requests (requests held
    /// by timeout faults are released) and ends the server task.
    pub fn shutdown(self) {
        // Dropping the server does the work.
    }

    /// Like [`RunningSalesforceSim::shutdown`], and waits until the server
    /// task has ended (in-flight requests answered, or after a 5 s grace period).
    pub async fn shutdown_and_wait(self) {
        self.server.shutdown_and_wait().await;
    }
}
