//! The middleware in front of the REST API, in this order: count →
//! authenticate (`Authorization: Bearer`) → roll the injected faults →
//! apply the fault → the daily allocation → handler; every answer of the API
//! (refusals included) carries `Sforce-Limit-Info: api-usage=<used>/<max>`
//! ("This response header is returned in each request to REST API", [V]
//! REST API "Limit Info Header" page).
//!
//! - Daily allocation: each admitted request uses one call of
//!   `daily_api_limit` (Composite and Collections count as one, [V] research
//!   A.1); past it, 403 `REQUEST_LIMIT_EXCEEDED` ([V] errorcodes page; no
//!   429 and no `Retry-After`, [D] research A.1). A refused request uses no
//!   call (unconfirmed), nor does a 401 (unconfirmed).
//! - The token endpoint (login server) is only counted and faulted.

use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::HeaderValue;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::error::SfError;
use super::oauth::bearer;
use super::state::App;
use crate::faults::{FaultOutcome, Played};

fn route_of(request: &Request) -> String {
    let template = request.extensions().get::<MatchedPath>().map_or_else(
        || request.uri().path().to_owned(),
        |m| m.as_str().to_owned(),
    );
    format!("{} {template}", request.method())
}

fn with_usage(app: &App, mut response: Response) -> Response {
    let value = {
        let state = app.lock();
        format!(
            "api-usage={}/{}",
            state.config.api_used, state.config.daily_api_limit
        )
    };
    if let Ok(v) = HeaderValue::from_str(&value) {
        response.headers_mut().insert("sforce-limit-info", v);
    }
    response
}

pub(crate) async fn api_gate(State(app): State<App>, request: Request, next: Next) -> Response {
    let route = route_of(&request);
    let token = bearer(request.headers()).map(str::to_owned);
    let outcome = {
        let mut state = app.lock();
        state.stats.record(&route);
        let valid = token
            .as_deref()
            .is_some_and(|t| state.oauth.valid(t, Instant::now()));
        if !valid {
            drop(state);
            tracing::debug!(%route, "rejected: missing, invalid or expired session");
            return with_usage(&app, SfError::invalid_session().into_response());
        }
        let outcome = state.faults.roll(&route, rand::random::<f64>);
        if outcome.is_faulted() {
            state.stats.faulted += 1;
        }
        outcome
    };
    if let Some(response) = apply_fault(&app, &route, outcome).await {
        return with_usage(&app, response);
    }
    {
        let mut state = app.lock();
        if state.config.api_used >= state.config.daily_api_limit {
            state.stats.rate_limited += 1;
            drop(state);
            tracing::info!(%route, "daily API allocation used up");
            return with_usage(&app, SfError::request_limit().into_response());
        }
        state.config.api_used += 1;
    }
    let response = next.run(request).await;
    with_usage(&app, response)
}

/// The login server's routes: counted and faulted, nothing else.
pub(crate) async fn login_gate(State(app): State<App>, request: Request, next: Next) -> Response {
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
            if matches!(status.as_u16(), 403 | 429) {
                app.lock().stats.rate_limited += 1;
            }
            let response = SfError::for_status(status).into_response();
            Some(crate::faults::with_retry_after(response, retry_after))
        }
        Played::Held => {
            Some(SfError::for_status(axum::http::StatusCode::SERVICE_UNAVAILABLE).into_response())
        }
    }
}
