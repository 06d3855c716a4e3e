//! The middleware in front of every business route, in HubSpot's order:
//! count → authenticate → scopes → injected faults → rate limit → handler,
//! then the rate-limit headers on the way out (none on search, as in HubSpot).
//! Faulted requests never reach the rate limiter, so they use no slot and an
//! injected error carries no rate-limit headers (an injected 429 carries them
//! with `Remaining: 0`). A 403 for missing scopes, like a 401, uses no slot
//! and carries no rate-limit headers (whether HubSpot counts it is unconfirmed).

use std::time::{Duration, Instant};

use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Json;

use super::error::{rate_limit_body, ApiError, RateLimitPolicy};
use super::rate_limit::Admission;
use super::scopes::required_scopes;
use super::state::App;
use crate::faults::{FaultOutcome, Played};

/// The values of the `X-HubSpot-RateLimit-*` headers for one response.
#[derive(Clone, Copy, Debug)]
struct RateHeaders {
    max: u32,
    remaining: u32,
    interval_ms: u64,
}

/// `X-HubSpot-RateLimit-Daily` and `-Daily-Remaining` (HubSpot changelog
/// 2018-11-06: "midnight to midnight based on the time zone setting of the
/// account"; present for private-app calls, absent for OAuth ones).
#[derive(Clone, Copy, Debug)]
struct DailyHeaders {
    limit: u64,
    remaining: u64,
}

impl DailyHeaders {
    fn apply(self, headers: &mut HeaderMap) {
        headers.insert("x-hubspot-ratelimit-daily", HeaderValue::from(self.limit));
        headers.insert(
            "x-hubspot-ratelimit-daily-remaining",
            HeaderValue::from(self.remaining),
        );
    }
}

impl RateHeaders {
    fn apply(self, headers: &mut HeaderMap) {
        headers.insert("x-hubspot-ratelimit-max", HeaderValue::from(self.max));
        headers.insert(
            "x-hubspot-ratelimit-remaining",
            HeaderValue::from(self.remaining),
        );
        headers.insert(
            "x-hubspot-ratelimit-interval-milliseconds",
            HeaderValue::from(self.interval_ms),
        );
    }
}

pub(crate) async fn gate(State(app): State<App>, request: Request, next: Next) -> Response {
    let template = request.extensions().get::<MatchedPath>().map_or_else(
        || request.uri().path().to_owned(),
        |m| m.as_str().to_owned(),
    );
    let route = format!("{} {template}", request.method());
    let is_search = template.ends_with("/search");
    let token = bearer_token(request.headers()).map(str::to_owned);
    let needed = required_scopes(request.method().as_str(), request.uri().path());

    // Count, authenticate and roll the faults under one lock.
    let faults = {
        let mut state = app.lock();
        state.stats.record(&route);
        if token.as_deref() != Some(state.config.token.as_str()) {
            tracing::debug!(%route, "rejected: no valid bearer token");
            return ApiError::unauthenticated().into_response();
        }
        if let Some(any_of) = needed {
            if !any_of.iter().any(|s| state.config.scopes.contains(*s)) {
                tracing::info!(%route, required = ?any_of, "rejected: missing scopes");
                return ApiError::missing_scopes(any_of).into_response();
            }
        }
        let outcome = state.faults.roll(&route, rand::random::<f64>);
        if outcome.is_faulted() {
            state.stats.faulted += 1;
        }
        outcome
    };
    let token = token.unwrap_or_default();
    if let Some(response) = apply_fault(&app, &route, faults).await {
        return response;
    }

    // The account's daily quota comes first: past it, nothing is admitted.
    let daily = {
        let mut state = app.lock();
        let (limit, used) = (state.config.daily_limit, state.config.daily_used);
        if used >= limit {
            state.stats.rate_limited += 1;
            drop(state);
            tracing::info!(%route, "daily limit reached");
            let mut response = rate_limited(RateLimitPolicy::Daily, None);
            DailyHeaders {
                limit,
                remaining: 0,
            }
            .apply(response.headers_mut());
            return response;
        }
        // Taken now (one lock for check and count); given back if the
        // ten-secondly window refuses the request below.
        state.config.daily_used += 1;
        DailyHeaders {
            limit,
            remaining: limit - used - 1,
        }
    };

    let admitted = {
        let mut state = app.lock();
        let now = Instant::now();
        if is_search {
            let max = state.config.search_rate_per_s;
            match state
                .search_limits
                .try_acquire(&token, max, Duration::from_secs(1), now)
            {
                Admission::Admitted { .. } => Ok(None),
                Admission::Rejected => {
                    state.stats.rate_limited += 1;
                    Err(rate_limited(RateLimitPolicy::Secondly, None))
                }
            }
        } else {
            let max = state.config.rate_limit_max;
            let interval_ms = state.config.rate_limit_window_ms;
            let window = Duration::from_millis(interval_ms);
            match state.limits.try_acquire(&token, max, window, now) {
                Admission::Admitted { remaining } => Ok(Some(RateHeaders {
                    max,
                    remaining,
                    interval_ms,
                })),
                Admission::Rejected => {
                    state.stats.rate_limited += 1;
                    let headers = RateHeaders {
                        max,
                        remaining: 0,
                        interval_ms,
                    };
                    Err(rate_limited(
                        RateLimitPolicy::TenSecondlyRolling,
                        Some(headers),
                    ))
                }
            }
        }
    };
    let headers = match admitted {
        Ok(headers) => headers,
        Err(response) => {
            let mut state = app.lock();
            state.config.daily_used = state.config.daily_used.saturating_sub(1);
            drop(state);
            tracing::info!(%route, "rate limited");
            return response;
        }
    };

    let mut response = next.run(request).await;
    if let Some(h) = headers {
        h.apply(response.headers_mut());
        daily.apply(response.headers_mut());
    }
    response
}

/// Sleeps the injected latency, then answers for an error or timeout fault.
async fn apply_fault(app: &App, route: &str, outcome: FaultOutcome) -> Option<Response> {
    // A held request waits until the client gives up (the connection future
    // is then dropped) or the simulator shuts down.
    let (status, retry_after) = match outcome.play(&app.shutdown, route).await? {
        Played::Error {
            status,
            retry_after,
        } => (status, retry_after),
        Played::Held => {
            return Some(ApiError::for_status(StatusCode::SERVICE_UNAVAILABLE).into_response())
        }
    };
    let response = if status == StatusCode::TOO_MANY_REQUESTS {
        let headers = {
            let state = app.lock();
            RateHeaders {
                max: state.config.rate_limit_max,
                remaining: 0,
                interval_ms: state.config.rate_limit_window_ms,
            }
        };
        rate_limited(RateLimitPolicy::TenSecondlyRolling, Some(headers))
    } else {
        ApiError::for_status(status).into_response()
    };
    Some(crate::faults::with_retry_after(response, retry_after))
}

fn rate_limited(policy: RateLimitPolicy, headers: Option<RateHeaders>) -> Response {
    let mut response =
        (StatusCode::TOO_MANY_REQUESTS, Json(rate_limit_body(policy))).into_response();
    if let Some(h) = headers {
        h.apply(response.headers_mut());
    }
    response
}

/// The token of an `Authorization: Bearer <token>` header.
fn bearer_token(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get("authorization")?.to_str().ok()?.trim();
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}
