//! The middleware in front of the business routes, in this order: count →
//! authenticate (`Zoho-oauthtoken`) → roll the injected faults → take a
//! concurrency slot → apply the fault → API credits → handler.
//!
//! - Concurrency: at most `concurrency_limit` requests in flight per org
//!   (Free 5, Standard 10, Professional 15, Enterprise 20, Ultimate 25);
//!   past it, 429 `TOO_MANY_REQUESTS` (Zoho's Kaizen #203, help.zoho.com
//!   community [D]). A request held by a latency or timeout fault holds its slot.
//! - Credits: each call costs 1 credit from a rolling 24 h budget (most calls
//!   cost 1, [V] api-limits v4 page per research A.2; multi-record writes cost
//!   1 per 10 records, crm-apis.md, unconfirmed — charged by the handlers);
//!   `credits_used` is set back through `/__admin/config`. Past the budget:
//!   429 `LIMIT_REACHED` (status and body unconfirmed).
//! - No rate-limit headers: the `X-RATELIMIT-*` names in research A.2 are
//!   unconfirmed, so none are sent; an injected 429 carries `Retry-After` only
//!   when the fault asks for it.
//! - A 401 uses no slot and no credit (unconfirmed).
//!
//! The accounts routes (`/oauth/v2/token…`) are only counted and faulted.

use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::error::ZohoError;
use super::oauth::zoho_token;
use super::state::App;
use crate::faults::{FaultOutcome, Played};

fn route_of(request: &Request) -> String {
    let template = request.extensions().get::<MatchedPath>().map_or_else(
        || request.uri().path().to_owned(),
        |m| m.as_str().to_owned(),
    );
    format!("{} {template}", request.method())
}

pub(crate) async fn api_gate(State(app): State<App>, request: Request, next: Next) -> Response {
    let route = route_of(&request);
    let token = zoho_token(request.headers()).map(str::to_owned);
    let (faults, limit) = {
        let mut state = app.lock();
        state.stats.record(&route);
        match token.as_deref() {
            None => {
                tracing::debug!(%route, "rejected: no Zoho-oauthtoken header");
                return ZohoError::authentication_failure().into_response();
            }
            Some(t) if !state.oauth.valid(t, Instant::now()) => {
                tracing::debug!(%route, "rejected: invalid or expired access token");
                return ZohoError::invalid_token().into_response();
            }
            Some(_) => {}
        }
        let outcome = state.faults.roll(&route, rand::random::<f64>);
        if outcome.is_faulted() {
            state.stats.faulted += 1;
        }
        (outcome, state.config.concurrency_limit)
    };
    let Some(_slot) = app.try_enter(limit) else {
        app.lock().stats.rate_limited += 1;
        tracing::info!(%route, "concurrency limit reached");
        return ZohoError::too_many_requests().into_response();
    };
    if let Some(response) = apply_fault(&app, &route, faults).await {
        return response;
    }
    {
        let mut state = app.lock();
        if state.config.credits_used >= state.config.credits_limit {
            state.stats.rate_limited += 1;
            drop(state);
            tracing::info!(%route, "API credits used up");
            return ZohoError::credits_exhausted().into_response();
        }
        state.config.credits_used += 1;
    }
    next.run(request).await
}

/// The accounts server's routes: counted and faulted, nothing else.
pub(crate) async fn accounts_gate(
    State(app): State<App>,
    request: Request,
    next: Next,
) -> Response {
    let route = route_of(&request);
    let outcome = {
        let mut state = app.lock();
        state.stats.record(&route);
        let outcome = state.faults.roll(&route, rand::random::<f64>);
        if outcome.is_faulted() {
            state.stats.faulted += 1;
        }
        outcome
    };
    if let Some(response) = apply_fault(&app, &route, outcome).await {
        return response;
    }
    next.run(request).await
}

/// Sleeps the injected latency, then answers for an error or timeout fault.
async fn apply_fault(app: &App, route: &str, outcome: FaultOutcome) -> Option<Response> {
    match outcome.play(&app.shutdown, route).await? {
        Played::Error {
            status,
            retry_after,
        } => {
            if status.as_u16() == 429 {
                app.lock().stats.rate_limited += 1;
            }
            let response = ZohoError::for_status(status).into_response();
            Some(crate::faults::with_retry_after(response, retry_after))
        }
        Played::Held => {
            Some(ZohoError::for_status(axum::http::StatusCode::SERVICE_UNAVAILABLE).into_response())
        }
    }
}
