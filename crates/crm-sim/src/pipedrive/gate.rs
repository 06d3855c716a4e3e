//! The middleware in front of every business route: count → authenticate →
//! injected faults → daily budget → burst windows → handler, then the
//! rate-limit headers on the way out.
//!
//! - Authentication: header `x-api-token` (SDK `setApiKeyToObject(...,
//!   "x-api-token", ...)` [V]; A.3), or the legacy `?api_token=` query
//!   parameter (A.3 [R]; used against `/api/v2/persons/{id}` in
//!   client-nodejs#658 [D]). Anything else is the gateway's 401, which takes no
//!   slot, costs nothing and carries no rate-limit headers [U].
//! - Daily budget (readme, "Token-Based Rate Limiting" [V]): each request
//!   costs tokens; "Once the daily budget is fully depleted, all further API
//!   requests will be rejected with a 429". Costs per the readme's table [V]:
//!   get single entity 2, get list 20, update (and here create) 10, delete 6,
//!   search 40. Pipedrive says v2 endpoints cost less (the OpenAPI
//!   `x-token-cost`, quoted in an integrator's notes [D]: get 1, create or
//!   update 5, list 10, search 20); the simulator charges the readme's generic
//!   costs, the stricter side [U]. Whether a refused (429) request costs
//!   anything is [U]: here it does not; a refusal by the handler (400, 404)
//!   does. A request is refused when its cost does not fit in what is left [U].
//! - Burst windows: see `rate_limit`. A search takes a slot of the search
//!   window and of the general one [U].
//! - Headers on every answer past authentication (readme [V]):
//!   `x-ratelimit-limit`, `x-ratelimit-remaining`, `x-ratelimit-reset`
//!   (seconds), of the search window on search routes [U]; and
//!   `x-daily-requests-left` on POST and PUT ("Applicable only to api_token
//!   requests" [V]; here the budget's tokens left [U]). The budget itself as
//!   `x-daily-ratelimit-token-limit` / `x-daily-ratelimit-token-remaining`:
//!   not in the docs, but reported by Pipedrive staff in the developer
//!   community, sometimes missing (quoted in an integrator's notes [D]).
//! - A 429 carries no `Retry-After` (the 2015 docs promised one, pipedrive.rb#1
//!   [D]; today's readme does not mention it), except on an injected fault
//!   with `retry_after`.

use std::time::Instant;

use axum::extract::{MatchedPath, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::error::{rate_limited, unauthorized, PdError};
use super::rate_limit::WindowState;
use super::state::App;
use crate::faults::{FaultOutcome, Played};

/// The rate-limit headers of one answer.
#[derive(Clone, Copy, Debug)]
struct Limits {
    window: WindowState,
    budget: u64,
    budget_left: u64,
}

impl Limits {
    fn apply(self, method: &Method, headers: &mut HeaderMap) {
        headers.insert("x-ratelimit-limit", HeaderValue::from(self.window.limit));
        headers.insert(
            "x-ratelimit-remaining",
            HeaderValue::from(self.window.remaining),
        );
        headers.insert(
            "x-ratelimit-reset",
            HeaderValue::from(self.window.reset_secs()),
        );
        headers.insert(
            "x-daily-ratelimit-token-limit",
            HeaderValue::from(self.budget),
        );
        headers.insert(
            "x-daily-ratelimit-token-remaining",
            HeaderValue::from(self.budget_left),
        );
        if *method == Method::POST || *method == Method::PUT {
            headers.insert("x-daily-requests-left", HeaderValue::from(self.budget_left));
        }
    }
}

/// The token of a request: the `x-api-token` header, else `?api_token=`.
pub(crate) fn token_of(headers: &HeaderMap, uri: &Uri) -> Option<String> {
    if let Some(t) = headers
        .get("x-api-token")
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|t| !t.is_empty())
    {
        return Some(t.to_owned());
    }
    Query::<Vec<(String, String)>>::try_from_uri(uri)
        .ok()?
        .0
        .into_iter()
        .find(|(k, _)| k == "api_token")
        .map(|(_, v)| v)
        .filter(|v| !v.is_empty())
}

/// Tokens a route costs (readme's table [V]; see the module docs).
fn cost(method: &Method, template: &str) -> u64 {
    if template.ends_with("/search") {
        return 40;
    }
    match *method {
        Method::GET if template.contains('{') => 2,
        Method::GET => 20,
        Method::DELETE => 6,
        _ => 10,
    }
}

pub(crate) async fn gate(State(app): State<App>, request: Request, next: Next) -> Response {
    let template = request.extensions().get::<MatchedPath>().map_or_else(
        || request.uri().path().to_owned(),
        |m| m.as_str().to_owned(),
    );
    let method = request.method().clone();
    let route = format!("{method} {template}");
    let is_search = template.ends_with("/search");
    let token = token_of(request.headers(), request.uri());

    // Count, authenticate and roll the faults under one lock.
    let faults = {
        let mut state = app.lock();
        state.stats.record(&route);
        if token.as_deref() != Some(state.config.token.as_str()) {
            tracing::debug!(%route, "rejected: no valid API token");
            return unauthorized();
        }
        let outcome = state.faults.roll(&route, rand::random::<f64>);
        if outcome.is_faulted() {
            state.stats.faulted += 1;
        }
        outcome
    };
    let token = token.unwrap_or_default();
    if let Some(response) = apply_fault(&app, &route, &method, &token, is_search, faults).await {
        return response;
    }

    let limits = {
        let mut guard = app.lock();
        let state = &mut *guard;
        let now = Instant::now();
        let window = state.window();
        let (max, search_max) = (state.config.rate_limit_max, state.config.search_rate_max);
        let general = state.limits.peek(&token, max, window, now);
        let search = state.search_limits.peek(&token, search_max, window, now);
        let budget = state.config.daily_budget;
        let left = budget.saturating_sub(state.config.daily_used);
        let shown = if is_search { search } else { general };
        let price = cost(&method, &template);
        let refusal = if price > left {
            Some(true)
        } else if general.remaining == 0 || (is_search && search.remaining == 0) {
            Some(false)
        } else {
            None
        };
        if let Some(daily) = refusal {
            state.stats.rate_limited += 1;
            let full = if is_search && search.remaining == 0 {
                search
            } else {
                general
            };
            drop(guard);
            tracing::info!(%route, daily, "rate limited");
            let mut response = rate_limited(daily).into_response();
            Limits {
                window: if daily { shown } else { full },
                budget,
                budget_left: left,
            }
            .apply(&method, response.headers_mut());
            return response;
        }
        let general = state.limits.take(&token, max, window, now);
        let search = if is_search {
            state.search_limits.take(&token, search_max, window, now)
        } else {
            search
        };
        state.config.daily_used += price;
        Limits {
            window: if is_search { search } else { general },
            budget,
            budget_left: left - price,
        }
    };

    let mut response = next.run(request).await;
    limits.apply(&method, response.headers_mut());
    response
}

/// Sleeps the injected latency, then answers for an error or timeout fault.
/// An injected answer carries the rate-limit headers as they stand (an
/// injected 429 with `x-ratelimit-remaining: 0`), without taking a slot.
async fn apply_fault(
    app: &App,
    route: &str,
    method: &Method,
    token: &str,
    is_search: bool,
    outcome: FaultOutcome,
) -> Option<Response> {
    let (status, retry_after) = match outcome.play(&app.shutdown, route).await? {
        Played::Error {
            status,
            retry_after,
        } => (status, retry_after),
        Played::Held => {
            return Some(PdError::for_status(StatusCode::SERVICE_UNAVAILABLE).into_response())
        }
    };
    let limits = {
        let mut guard = app.lock();
        let state = &mut *guard;
        let now = Instant::now();
        let window = state.window();
        let mut shown = if is_search {
            let max = state.config.search_rate_max;
            state.search_limits.peek(token, max, window, now)
        } else {
            let max = state.config.rate_limit_max;
            state.limits.peek(token, max, window, now)
        };
        if status == StatusCode::TOO_MANY_REQUESTS {
            shown.remaining = 0;
            shown.reset = window;
        }
        Limits {
            window: shown,
            budget: state.config.daily_budget,
            budget_left: state
                .config
                .daily_budget
                .saturating_sub(state.config.daily_used),
        }
    };
    let mut response = PdError::for_status(status).into_response();
    limits.apply(method, response.headers_mut());
    Some(crate::faults::with_retry_after(response, retry_after))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_token_comes_from_the_header_or_the_legacy_query_parameter() {
        let uri = |s: &str| s.parse::<Uri>().expect("uri");
        let mut h = HeaderMap::new();
        assert_eq!(
            token_of(&h, &uri("/v1/notes?api_token=a%2Bb&x=1")).as_deref(),
            Some("a+b")
        );
        h.insert("x-api-token", HeaderValue::from_static(" t1 "));
        assert_eq!(
            token_of(&h, &uri("/v1/notes?api_token=other")).as_deref(),
            Some("t1")
        );
        assert_eq!(token_of(&HeaderMap::new(), &uri("/v1/notes")), None);
    }

    #[test]
    fn costs_follow_the_readme_table() {
        assert_eq!(cost(&Method::GET, "/api/v2/persons/search"), 40);
        assert_eq!(cost(&Method::GET, "/api/v2/persons/{id}"), 2);
        assert_eq!(cost(&Method::GET, "/v1/notes"), 20);
        assert_eq!(cost(&Method::POST, "/v1/notes"), 10);
        assert_eq!(cost(&Method::PATCH, "/api/v2/persons/{id}"), 10);
        assert_eq!(cost(&Method::DELETE, "/api/v2/persons/{id}"), 6);
    }
}
